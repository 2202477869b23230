/*
 * fuzz/wal_record.c — contract: for ANY bytes at any LSN and salt,
 * wal_rec_check and the body decoders of the record's type never read out
 * of bounds, never crash, and a record that checks and decodes re-encodes
 * to the same bytes. The first 64 bytes also go through the segment header
 * decoder.
 *
 * Input layout: u64 lsn (aligned down to 8), u32 salt, then record bytes.
 * fuzz_generate() makes valid records of every type, mutates them, and
 * re-seals most of them so that a wrong body layout passes the crc and
 * reaches the decoders.
 */
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "fuzz/fuzz.h"
#include "wal/wal.h"

static volatile uint64_t sink;

static void touch(const void *p, size_t n) {
    const uint8_t *b = p;
    uint64_t s = 0;
    for (size_t i = 0; i < n; i++) s += b[i];
    sink += s;
}

static void check_reencode(const struct wal_record *r, const uint8_t *rec) {
    uint8_t *buf = malloc(r->len + 64);
    if (!buf) abort();
    size_t n = 0;
    switch (r->type) {
    case WAL_REC_UPSERT: {
        struct wal_upsert u;
        if (wal_dec_upsert(r, &u) != CAIRN_OK) goto out;
        touch(u.vec, (size_t)u.dim * 4);
        touch(u.payload, u.payload_len);
        n = wal_enc_upsert(buf, r->coll_id, r->txn_id, u.id, u.vec, u.dim, u.payload,
                           u.payload_len);
        break;
    }
    case WAL_REC_DELETE: {
        uint64_t id;
        if (wal_dec_delete(r, &id) != CAIRN_OK) goto out;
        n = wal_enc_delete(buf, r->coll_id, r->txn_id, id);
        break;
    }
    case WAL_REC_COMMIT: {
        struct wal_commit c;
        if (wal_dec_commit(r, &c) != CAIRN_OK) goto out;
        n = wal_enc_commit(buf, r->txn_id, c.time_us, c.nrecords);
        break;
    }
    case WAL_REC_CREATE_COLL: {
        struct wal_create_coll c;
        if (wal_dec_create_coll(r, &c) != CAIRN_OK) goto out;
        touch(c.name, c.name_len);
        goto out; /* index params are not re-encodable through the API */
    }
    case WAL_REC_RESTORE_POINT: {
        struct wal_restore_point p;
        if (wal_dec_restore_point(r, &p) != CAIRN_OK) goto out;
        touch(p.name, p.name_len);
        n = wal_enc_restore_point(buf, p.time_us, p.name, p.name_len);
        break;
    }
    default:
        goto out;
    }
    /* same length, type and body bytes (header fields a type does not use,
     * such as the txn of a restore point, are not part of its content) */
    if (n < r->len || memcmp(buf + 4, rec + 4, 5) != 0 ||
        memcmp(buf + WAL_REC_HDR, rec + WAL_REC_HDR, r->len - WAL_REC_HDR) != 0)
        abort();
out:
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 12) return 0;
    uint64_t lsn = ld64(data) & ~(uint64_t)7;
    uint32_t salt = ld32(data + 8);
    size_t n = size - 12;
    /* records sit 8-aligned in memory, as in the reader's buffers */
    uint8_t *copy = aligned_alloc(8, CAIRN_ALIGN_UP(n + 1, (size_t)8));
    if (!copy) abort();
    memcpy(copy, data + 12, n);
    struct wal_record r;
    if (wal_rec_check(copy, n, lsn, salt, &r)) {
        if (r.lsn != lsn || r.len > n || r.body != copy + WAL_REC_HDR) abort();
        check_reencode(&r, copy);
    }
    if (n >= WAL_SEG_HDR) {
        struct wal_seg_header h;
        (void)wal_seg_header_decode(copy, &h, "fuzz-input");
    }
    free(copy);
    return 0;
}

size_t fuzz_generate(uint64_t *rng, uint8_t *out, size_t cap) {
    uint64_t lsn = (fuzz_rand(rng) % (1u << 30)) & ~(uint64_t)7;
    uint32_t salt = (uint32_t)fuzz_rand(rng);
    uint8_t *rec = out + 12;
    size_t room = cap - 12;
    size_t n = 0;
    float vec[64];
    char text[200];
    uint32_t dim = (uint32_t)(fuzz_rand(rng) % 64);
    for (uint32_t i = 0; i < dim; i++) vec[i] = (float)(fuzz_rand(rng) % 1000) / 7.0f;
    uint32_t tl = (uint32_t)(fuzz_rand(rng) % 120);
    for (uint32_t i = 0; i < tl; i++) text[i] = (char)('a' + fuzz_rand(rng) % 26);
    switch (fuzz_rand(rng) % 6) {
    case 0: n = wal_enc_upsert(rec, 3, 9, fuzz_rand(rng), vec, dim, text, tl); break;
    case 1: n = wal_enc_delete(rec, 3, 9, fuzz_rand(rng)); break;
    case 2: n = wal_enc_commit(rec, 9, (int64_t)fuzz_rand(rng), (uint32_t)fuzz_rand(rng)); break;
    case 3: n = wal_enc_create_coll(rec, 3, 9, dim + 1, 1, text, (uint8_t)(tl ? tl : 1)); break;
    case 4: n = wal_enc_restore_point(rec, 5, text, (uint8_t)(tl ? tl : 1)); break;
    default: n = wal_enc_drop_coll(rec, 3, 9); break;
    }
    if (n > room) abort();
    /* mutate: flip bytes, bend length fields, truncate */
    unsigned muts = (unsigned)(fuzz_rand(rng) % 4);
    for (unsigned i = 0; i < muts; i++) {
        size_t at = fuzz_rand(rng) % n;
        switch (fuzz_rand(rng) % 3) {
        case 0: rec[at] ^= (uint8_t)(1u << (fuzz_rand(rng) % 8)); break;
        case 1: rec[at] = (uint8_t)fuzz_rand(rng); break;
        default: if (n > WAL_REC_HDR + 16) st32(rec + WAL_REC_HDR + 8, (uint32_t)fuzz_rand(rng) % 200); break;
        }
    }
    if (fuzz_rand(rng) % 8 == 0) n = fuzz_rand(rng) % n;
    if (fuzz_rand(rng) % 4 != 0 && n >= WAL_REC_HDR && ld32(rec + 4) >= WAL_REC_HDR &&
        ld32(rec + 4) <= n)
        wal_rec_seal(rec, lsn, lsn, salt);
    st64(out, lsn);
    st32(out + 8, salt);
    return n + 12;
}
