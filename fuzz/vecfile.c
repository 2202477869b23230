/*
 * fuzz/vecfile.c — contract: for ANY bytes read as JSONL, fvecs, npy or IDX
 * (the import formats of `cairn import`, cli/vecfile.c), opening either
 * fails with a message or succeeds, and reading then yields rows of the
 * announced dimension until the end or an error with a message: never a
 * crash, an out-of-bounds read or a row of another length.
 *
 * Input: byte 0 picks the format, the rest is the file. fuzz_generate()
 * writes small valid files of each format (rows of a few floats, headers
 * with fitting and lying shapes) and mutates some bytes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cli/vecfile.h"
#include "common/util.h"
#include "fuzz/fuzz.h"

static const enum vf_format formats[] = {VF_JSONL, VF_FVECS, VF_NPY, VF_IDX};
static volatile float sink; /* every element of every row is read */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    static int fd = -1;
    if (fd < 0) {
        fd = memfd_create("cairn-fuzz-vecfile", 0);
        if (fd < 0) abort();
    }
    if (ftruncate(fd, 0) != 0 || pwrite(fd, data + 1, size - 1, 0) != (ssize_t)(size - 1))
        abort();
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    struct vf_opts o = {.format = formats[data[0] % 4], .start_id = 5, .labels = false};
    vf_reader *r = NULL;
    char err[512] = "";
    if (!vf_open(path, &o, &r, err, sizeof err)) {
        if (r || !err[0]) abort();
        return 0;
    }
    struct vf_row row;
    int rc;
    uint32_t dim = 0;
    for (int n = 0; n < 100000 && (rc = vf_next(r, &row)) == 1; n++) {
        if (!row.vec || row.dim == 0) abort();
        if (dim == 0) dim = row.dim;
        if (row.dim != dim || (vf_dim(r) && vf_dim(r) != dim)) abort();
        float sum = 0;
        for (uint32_t i = 0; i < row.dim; i++) sum += row.vec[i];
        sink = sum;
        if (row.payload && strlen(row.payload) != row.payload_len) abort();
    }
    if (rc < 0 && (!vf_error(r) || !vf_error(r)[0])) abort();
    vf_close(r, err, sizeof err);
    return 0;
}

static void put_be32(struct fuzz_gen *g, uint32_t v) {
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    fuzz_put(g, b, 4);
}

size_t fuzz_generate(uint64_t *rng, uint8_t *out, size_t cap) {
    struct fuzz_gen g = {rng, out, cap, 0};
    uint8_t kind = (uint8_t)(fuzz_rand(rng) % 4);
    fuzz_put(&g, &kind, 1);
    uint32_t rows = (uint32_t)(fuzz_rand(rng) % 5), dim = 1 + (uint32_t)(fuzz_rand(rng) % 6);
    /* sometimes a header that lies about the shape */
    uint32_t hdim = fuzz_rand(rng) % 6 ? dim : (uint32_t)fuzz_rand(rng);
    uint32_t hrows = fuzz_rand(rng) % 6 ? rows : (uint32_t)fuzz_rand(rng);
    char buf[256];
    switch (kind) {
    case 0: /* jsonl */
        for (uint32_t r = 0; r < rows; r++) {
            snprintf(buf, sizeof buf, "{\"id\":%u,\"vector\":[", r);
            fuzz_puts(&g, buf);
            uint32_t d = fuzz_rand(rng) % 8 ? dim : dim + 1;
            for (uint32_t i = 0; i < d; i++) {
                snprintf(buf, sizeof buf, "%s%d.5", i ? "," : "", (int)(fuzz_rand(rng) % 100) - 50);
                fuzz_puts(&g, buf);
            }
            fuzz_puts(&g, fuzz_rand(rng) % 2 ? "],\"payload\":{\"k\":1}}\n" : "]}\n");
            if (fuzz_rand(rng) % 10 == 0) fuzz_puts(&g, "\n");
        }
        break;
    case 1: /* fvecs */
        for (uint32_t r = 0; r < rows; r++) {
            uint32_t d = fuzz_rand(rng) % 8 ? hdim : dim + 1;
            fuzz_put(&g, &d, 4);
            for (uint32_t i = 0; i < dim; i++) {
                float f = (float)(fuzz_rand(rng) % 1000) / 8.0f;
                fuzz_put(&g, &f, 4);
            }
        }
        break;
    case 2: { /* npy */
        fuzz_puts(&g, "\x93NUMPY");
        uint8_t ver[2] = {(uint8_t)(fuzz_rand(rng) % 8 ? 1 : 1 + fuzz_rand(rng) % 3), 0};
        fuzz_put(&g, ver, 2);
        static const char *const descr[] = {"'<f4'", "'<f4'", "'<f8'", "'>f4'", "'|u1'"};
        int hl = snprintf(buf, sizeof buf, "{'descr': %s, 'fortran_order': %s, 'shape': (%u, %u), }",
                          descr[fuzz_rand(rng) % 5], fuzz_rand(rng) % 6 ? "False" : "True", hrows, hdim);
        size_t total = CAIRN_ALIGN_UP((size_t)(10 + hl + 1), (size_t)64);
        uint16_t hlen = (uint16_t)(total - 10);
        fuzz_put(&g, &hlen, 2);
        fuzz_put(&g, buf, (size_t)hl);
        while (g.n - 1 < total - 1) fuzz_puts(&g, " ");
        fuzz_puts(&g, "\n");
        for (uint32_t i = 0; i < rows * dim; i++) {
            float f = (float)(fuzz_rand(rng) % 1000) / 8.0f;
            fuzz_put(&g, &f, 4);
        }
        break;
    }
    default: { /* idx */
        uint8_t magic[4] = {0, 0, 8, (uint8_t)(fuzz_rand(rng) % 8 ? 3 : fuzz_rand(rng) % 5)};
        fuzz_put(&g, magic, 4);
        put_be32(&g, hrows);
        put_be32(&g, hdim);
        if (magic[3] >= 3) put_be32(&g, 1);
        for (uint32_t i = 0; i < rows * dim; i++) {
            uint8_t b = (uint8_t)fuzz_rand(rng);
            fuzz_put(&g, &b, 1);
        }
    }
    }
    if (fuzz_rand(rng) % 8 == 0 && g.n > 2) g.n = 1 + fuzz_rand(rng) % (g.n - 1); /* cut short */
    unsigned muts = fuzz_rand(rng) % 3 == 0 ? (unsigned)(1 + fuzz_rand(rng) % 2) : 0;
    for (unsigned i = 0; i < muts && g.n > 1; i++)
        out[1 + fuzz_rand(rng) % (g.n - 1)] = (uint8_t)fuzz_rand(rng);
    return g.n;
}
