/*
 * fuzz/json_payload.c — contract: for ANY bytes, cjson_validate_object
 * accepts exactly when jansson's json_loadb(JSON_REJECT_DUPLICATES) parses
 * them to an object (the commit path validates with the first and filters
 * later parse with the second, which must then never fail). We are stricter
 * in two documented ways, allowed only in that direction: raw NUL bytes
 * between tokens (not JSON; jansson skips them) and nesting deeper than
 * CJSON_MAX_DEPTH. And where both accept, cjson_parse_object (which the
 * library parses with, since jansson's lexer is unsafe when memory runs
 * out) builds a tree json_equal to jansson's; where the validator refuses,
 * it refuses too, with CAIRN_EFORMAT.
 *
 * fuzz_generate() builds random JSON objects (numbers at the int64 and
 * double limits, escapes, surrogate pairs, UTF-8 of every length, duplicate
 * keys, spelled and escaped) and then mutates some bytes.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "fuzz/fuzz.h"

static int depth_of(const uint8_t *d, size_t n) {
    int depth = 0, max = 0;
    for (size_t i = 0; i < n; i++) {
        if (d[i] == '{' || d[i] == '[') {
            if (++depth > max) max = depth;
        } else if (d[i] == '}' || d[i] == ']') {
            depth--;
        }
    }
    return max;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (depth_of(data, size) > CJSON_MAX_DEPTH) return 0;
    struct cjson_error e;
    bool ours = cjson_validate_object((const char *)data, size, &e);
    json_error_t je;
    json_t *j = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &je);
    bool theirs = j && json_is_object(j);
    json_t *t = NULL;
    cairn_status st = cjson_parse_object((const char *)data, size, &t, NULL);
    if ((st == CAIRN_OK) != ours || (!ours && st != CAIRN_EFORMAT) ||
        (ours && theirs && !json_equal(t, j))) {
        fprintf(stderr, "json_payload: validator %s, builder %s, trees %s on %zu bytes: %.*s\n",
                ours ? "accepts" : "rejects", cairn_status_name(st),
                ours && theirs && !json_equal(t, j) ? "differ" : "-", size,
                (int)(size < 200 ? size : 200), (const char *)data);
        abort();
    }
    json_decref(t);
    json_decref(j);
    if (!ours && theirs && memchr(data, 0, size)) return 0; /* stricter on NUL */
    if (ours != theirs) {
        fprintf(stderr, "json_payload: validator %s, jansson %s (%s) on %zu bytes: %.*s\n",
                ours ? "accepts" : "rejects", theirs ? "accepts" : "rejects",
                theirs ? "" : je.text, size, (int)(size < 200 ? size : 200), (const char *)data);
        abort();
    }
    return 0;
}

static const char *const numbers[] = {
    "0", "-0", "7", "-12", "3.25", "1e5", "-2.5E-3", "1e-400", "1e400", "-1e400",
    "9223372036854775807", "-9223372036854775808", "9223372036854775808",
    "-9223372036854775809", "123456789012345678901", "01", "1.", ".5", "-", "1e", "+1",
    "0.0000000000000000000000000001", "17976931348623157e292", "2e308",
    /* around the validator's shortcut (no strtod below 10^300) and the
     * double's limit */
    "1e299", "9.99e299", "1e300", "1.7976931348623157e308", "1.7976931348623159e308",
    "0.00001e305", "0.00001e313", "1234567890e290", "1234567890e299", "-999e306",
    "1e0000000000000000000000308", "1e0000000000000000000000309", "1.5e-99999999999999",
    "0e99999999999999999", "-0.0e400",
};
static const char *const strings[] = {
    "\"\"", "\"a\"", "\"k\"", "\"\\u0061\"", "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"",
    "\"\\ud83d\\ude00\"", "\"\\ud83d\"", "\"\\ude00\"", "\"\\u0000\"", "\"\\uZZZZ\"",
    "\"\xc3\xa9\"", "\"\xe2\x82\xac\"", "\"\xf0\x9f\x98\x80\"", "\"\xc0\x80\"",
    "\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"", "\"\xff\"", "\"tab\there\"", "\"\\x\"",
};

/* A string of up to 80 bytes, mostly plain ASCII (the validator checks
 * those 16 at a time, and the input's last 16 bytes at once), with now and
 * then one byte or sequence it must look at: an escape, UTF-8 (well-formed
 * or not), a control character, a quote. */
static void long_string(struct fuzz_gen *g) {
    static const char *const odd[] = {"\\n", "\\u00e9", "\\\"", "\xc3\xa9", "\xe2\x82\xac",
                                      "\xf0\x9f\x98\x80", "\xc3", "\x80", "\xff", "\t", "\x01",
                                      "\x7f", "\\", "\\q", "\""};
    fuzz_puts(g, "\"");
    unsigned len = (unsigned)(fuzz_rand(g->rng) % 81);
    for (unsigned i = 0; i < len; i++) {
        if (fuzz_rand(g->rng) % 24 == 0) {
            fuzz_puts(g, odd[fuzz_rand(g->rng) % (sizeof odd / sizeof *odd)]);
        } else {
            char c = (char)(0x20 + fuzz_rand(g->rng) % 95); /* ' ' .. '~' */
            if (c == '"' || c == '\\') c = 'x';
            fuzz_put(g, &c, 1);
        }
    }
    fuzz_puts(g, "\"");
}

static void value(struct fuzz_gen *g, int depth);

static void object(struct fuzz_gen *g, int depth) {
    fuzz_puts(g, "{");
    int n = (int)(fuzz_rand(g->rng) % 5);
    for (int i = 0; i < n; i++) {
        if (i) fuzz_puts(g, fuzz_rand(g->rng) % 30 ? "," : " , ");
        /* keys: a small set, so duplicates (also escaped ones) happen */
        static const char *const keys[] = {"\"a\"", "\"b\"", "\"\\u0061\"", "\"c\\n\"", "\"\""};
        unsigned kk = (unsigned)(fuzz_rand(g->rng) % 12);
        if (kk == 0)
            long_string(g);
        else
            fuzz_puts(g, kk % 3 ? keys[fuzz_rand(g->rng) % 5]
                                : strings[fuzz_rand(g->rng) % (sizeof strings / sizeof *strings)]);
        fuzz_puts(g, fuzz_rand(g->rng) % 10 ? ":" : " :\n");
        value(g, depth + 1);
    }
    fuzz_puts(g, "}");
}

static void value(struct fuzz_gen *g, int depth) {
    unsigned k = (unsigned)(fuzz_rand(g->rng) % (depth > 4 ? 5 : 7));
    switch (k) {
    case 0: fuzz_puts(g, numbers[fuzz_rand(g->rng) % (sizeof numbers / sizeof *numbers)]); break;
    case 1:
        if (fuzz_rand(g->rng) % 2)
            long_string(g);
        else
            fuzz_puts(g, strings[fuzz_rand(g->rng) % (sizeof strings / sizeof *strings)]);
        break;
    case 2: fuzz_puts(g, "true"); break;
    case 3: fuzz_puts(g, fuzz_rand(g->rng) % 2 ? "null" : "false"); break;
    case 4: fuzz_puts(g, fuzz_rand(g->rng) % 2 ? "[]" : "{}"); break;
    case 5: object(g, depth); break;
    default:
        fuzz_puts(g, "[");
        for (int i = 0, n = (int)(fuzz_rand(g->rng) % 4); i < n; i++) {
            if (i) fuzz_puts(g, ",");
            value(g, depth + 1);
        }
        fuzz_puts(g, "]");
    }
}

size_t fuzz_generate(uint64_t *rng, uint8_t *out, size_t cap) {
    struct fuzz_gen g = {rng, out, cap, 0};
    if (fuzz_rand(rng) % 10 == 0) value(&g, 0); /* sometimes not an object */
    else object(&g, 0);
    if (fuzz_rand(rng) % 8 == 0) fuzz_puts(&g, fuzz_rand(rng) % 2 ? " \n" : " x");
    unsigned muts = fuzz_rand(rng) % 3 == 0 ? (unsigned)(fuzz_rand(rng) % 3) : 0;
    for (unsigned i = 0; i < muts && g.n; i++)
        out[fuzz_rand(rng) % g.n] = (uint8_t)fuzz_rand(rng);
    return g.n;
}
