/*
 * fuzz/filter.c — contract: for ANY bytes, cairn_filter_parse returns
 * CAIRN_OK with a filter or CAIRN_EFILTER with a message (never another
 * status, never a crash), and a parsed filter evaluated against any payload
 * object never crashes and gives the same answer twice.
 *
 * fuzz_generate() builds filters from the grammar in include/cairn.h
 * (nested must/should/must_not, match on strings/ints/bools, ranges, dotted
 * keys) and mutates some bytes; the payloads come from a small fixed set
 * (nested objects, arrays, every JSON type, missing keys).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn.h"
#include "engine/filter.h"
#include "fuzz/fuzz.h"

static const char *const payloads[] = {
    "{}",
    "{\"color\":\"red\",\"n\":7,\"ok\":true,\"x\":1.5}",
    "{\"color\":\"blue\",\"n\":-3,\"ok\":false,\"x\":null}",
    "{\"a\":{\"b\":{\"c\":9}},\"n\":9223372036854775807}",
    "{\"n\":[1,2,3],\"color\":[\"red\"],\"a\":\"str\"}",
    "{\"x\":1e300,\"n\":0,\"a\":{\"b\":\"red\"}}",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cairn_filter *f = NULL;
    cairn_status st = cairn_filter_parse((const char *)data, size, &f);
    if (st != CAIRN_OK && st != CAIRN_EFILTER) {
        fprintf(stderr, "filter: unexpected status %s\n", cairn_status_name(st));
        abort();
    }
    if (st == CAIRN_EFILTER && (f != NULL || cairn_last_error()[0] == 0)) abort();
    if (st == CAIRN_OK) {
        if (!f) abort();
        for (size_t i = 0; i < sizeof payloads / sizeof *payloads; i++) {
            json_t *p = json_loads(payloads[i], 0, NULL);
            bool a = filter_match(f, p);
            bool b = filter_match(f, p);
            if (a != b) abort();
            json_decref(p);
        }
        (void)filter_match(f, NULL); /* a point without payload */
    }
    cairn_filter_free(f);
    return 0;
}

static const char *const keys[] = {"\"color\"", "\"n\"", "\"ok\"", "\"x\"", "\"a.b\"",
                                   "\"a.b.c\"", "\"\"", "\"a..b\"", "\"missing\"", "7"};
static const char *const values[] = {"\"red\"", "7", "-3", "true", "false", "1.5", "null",
                                     "[1]", "{}", "9223372036854775807", "\"\""};
static const char *const bounds[] = {"\"gt\"", "\"gte\"", "\"lt\"", "\"lte\"", "\"eq\""};
static const char *const nums[] = {"0", "7", "-3.5", "1e300", "\"7\"", "null", "9223372036854775807"};

static void filter_obj(struct fuzz_gen *g, int depth);

static void cond(struct fuzz_gen *g, int depth) {
    uint64_t r = fuzz_rand(g->rng) % 10;
    if (r < 2 && depth < 5) {
        filter_obj(g, depth + 1);
        return;
    }
    fuzz_puts(g, "{\"key\":");
    fuzz_puts(g, keys[fuzz_rand(g->rng) % (sizeof keys / sizeof *keys)]);
    if (r < 6) {
        fuzz_puts(g, ",\"match\":{\"value\":");
        fuzz_puts(g, values[fuzz_rand(g->rng) % (sizeof values / sizeof *values)]);
        fuzz_puts(g, "}}");
    } else {
        fuzz_puts(g, ",\"range\":{");
        unsigned n = (unsigned)(fuzz_rand(g->rng) % 4);
        for (unsigned i = 0; i < n; i++) {
            if (i) fuzz_puts(g, ",");
            fuzz_puts(g, bounds[fuzz_rand(g->rng) % (sizeof bounds / sizeof *bounds)]);
            fuzz_puts(g, ":");
            fuzz_puts(g, nums[fuzz_rand(g->rng) % (sizeof nums / sizeof *nums)]);
        }
        fuzz_puts(g, "}}");
    }
}

static void filter_obj(struct fuzz_gen *g, int depth) {
    static const char *const clauses[] = {"\"must\"", "\"should\"", "\"must_not\"", "\"other\""};
    fuzz_puts(g, "{");
    unsigned n = (unsigned)(fuzz_rand(g->rng) % 4);
    for (unsigned i = 0; i < n; i++) {
        if (i) fuzz_puts(g, ",");
        fuzz_puts(g, clauses[fuzz_rand(g->rng) % (fuzz_rand(g->rng) % 8 ? 3 : 4)]);
        fuzz_puts(g, ":[");
        unsigned m = (unsigned)(fuzz_rand(g->rng) % 4);
        for (unsigned j = 0; j < m; j++) {
            if (j) fuzz_puts(g, ",");
            cond(g, depth);
        }
        fuzz_puts(g, "]");
    }
    fuzz_puts(g, "}");
}

size_t fuzz_generate(uint64_t *rng, uint8_t *out, size_t cap) {
    struct fuzz_gen g = {rng, out, cap, 0};
    filter_obj(&g, 0);
    unsigned muts = fuzz_rand(rng) % 4 == 0 ? (unsigned)(1 + fuzz_rand(rng) % 2) : 0;
    for (unsigned i = 0; i < muts && g.n; i++)
        out[fuzz_rand(rng) % g.n] = (uint8_t)fuzz_rand(rng);
    return g.n;
}
