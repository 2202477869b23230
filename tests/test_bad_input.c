/*
 * test_bad_input.c — invariant 7, second half: bad input gets a clear status
 * and a message naming the field, file or offset, and changes nothing.
 *
 * Every case runs against a populated database. "Changes nothing" is proved
 * by a state digest (the collection list, then every point's id, vector and
 * payload, found with an exact search for all points and read back with
 * cairn_get) and cairn_stats' last/durable LSN, taken before the bad call,
 * after it, and again after close + reopen (which also must find no torn
 * tail). Cases that fail at open (a locked directory, a bad segment header,
 * a newer format, bad options, a regular file) also prove that the failed
 * open changed no byte of any file, then repair the damage and reopen.
 *
 *   env CAIRN_SEED=<n>   the data of the fixture (printed at start)
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "cairn.h"
#include "common/crc32c.h"
#include "wal/wal.h"

#include "testutil.h"

static char tmpbase[512];
static int dbcounter;
static uint64_t g_seed;

/* ---- small helpers ------------------------------------------------------ */

static float rnd_float(uint64_t *s) {
    /* in [-1, 1), never exactly zero-ish vectors overall */
    return (float)(tu_unit(s) * 2.0 - 1.0);
}

static cairn_options default_opts(void) {
    return tu_opts(CAIRN_DURABILITY_SYNC, CAIRN_IO_DEFAULT, 2);
}

/* Status check plus substrings the message must hold (NULL-terminated). */
static void check_err(cairn_status got, cairn_status want, const char *expr, int line,
                      ...) {
    char msg[1100];
    snprintf(msg, sizeof msg, "%s", cairn_last_error());
    if (got != want)
        fail_msg("line %d: %s returned %s, expected %s (message: \"%s\")", line, expr,
                 cairn_status_name(got), cairn_status_name(want), msg);
    if (want == CAIRN_OK) return;
    if (getenv("CAIRN_TEST_VERBOSE"))
        printf("  line %d: %s -> %s: %s\n", line, expr, cairn_status_name(got), msg);
    if (!msg[0]) fail_msg("line %d: %s: %s with an empty message", line, expr,
                          cairn_status_name(got));
    va_list ap;
    va_start(ap, line);
    for (const char *s = va_arg(ap, const char *); s; s = va_arg(ap, const char *)) {
        if (!strstr(msg, s))
            fail_msg("line %d: %s: message \"%s\" does not name \"%s\"", line, expr, msg, s);
    }
    va_end(ap);
}
#define EXPECT(call, want, ...) check_err((call), (want), #call, __LINE__, __VA_ARGS__, NULL)
#define EXPECT_OK(call) check_err((call), CAIRN_OK, #call, __LINE__, NULL)

/* ---- state digest ------------------------------------------------------- */

/* Everything a reader can see, in a canonical byte string (collection ids
 * and bytes included). */
static void state_digest(cairn_db *db, struct tu_dig *d) {
    if (tu_state_digest(db, d, TU_DIG_ID_BYTES) != 0) fail_msg("%s", tu_error());
}

/* ---- fixture ------------------------------------------------------------- */

struct fx {
    char dir[600];
    cairn_db *db;
    struct tu_dig before, now;
    uint64_t last_lsn, durable_lsn;
};

#define DIM_A 4
#define DIM_B 3
#define DIM_C 8

static void fill_coll(cairn_db *db, const char *name, uint32_t dim, int npts, uint64_t *rs) {
    float v[DIM_C];
    char pl[96];
    for (int i = 0; i < npts; i++) {
        for (uint32_t j = 0; j < dim; j++) v[j] = rnd_float(rs) + 2.0f;
        int pn = snprintf(pl, sizeof pl, "{\"i\":%d,\"tag\":\"%s-%d\",\"x\":[1,2]}", i, name,
                          (int)(tu_splitmix(rs) % 1000));
        bool with_payload = tu_splitmix(rs) % 4 != 0;
        cairn_point p = {.id = (uint64_t)i * 7 + 1,
                         .vector = v,
                         .payload = with_payload ? pl : NULL,
                         .payload_len = with_payload ? (size_t)pn : 0};
        EXPECT_OK(cairn_upsert_batch(db, name, &p, 1, dim, NULL));
    }
    /* one multi-point transaction and a delete */
    cairn_txn *t;
    EXPECT_OK(cairn_txn_begin(db, &t));
    for (int i = 0; i < 3; i++) {
        for (uint32_t j = 0; j < dim; j++) v[j] = rnd_float(rs) - 2.0f;
        EXPECT_OK(cairn_txn_upsert(t, name, 1000 + (uint64_t)i, v, dim, "{\"m\":true}", 10));
    }
    EXPECT_OK(cairn_txn_delete(t, name, 8));
    EXPECT_OK(cairn_txn_commit(t, NULL));
    cairn_txn_free(t);
}

static int fx_setup(void **state) {
    struct fx *f = calloc(1, sizeof *f);
    if (!f) return -1;
    snprintf(f->dir, sizeof f->dir, "%s/db%d", tmpbase, dbcounter++);
    cairn_options o = default_opts();
    if (cairn_open(f->dir, &o, &f->db) != CAIRN_OK) {
        fprintf(stderr, "open %s: %s\n", f->dir, cairn_last_error());
        free(f);
        return -1;
    }
    uint64_t rs = g_seed;
    EXPECT_OK(cairn_collection_create(f->db, "alpha", DIM_A, CAIRN_METRIC_L2));
    EXPECT_OK(cairn_collection_create(f->db, "beta", DIM_B, CAIRN_METRIC_COSINE));
    EXPECT_OK(cairn_collection_create(f->db, "gamma", DIM_C, CAIRN_METRIC_DOT));
    fill_coll(f->db, "alpha", DIM_A, 12, &rs);
    fill_coll(f->db, "beta", DIM_B, 9, &rs);
    fill_coll(f->db, "gamma", DIM_C, 5, &rs);
    EXPECT_OK(cairn_restore_point(f->db, "fixture-done", NULL));
    *state = f;
    return 0;
}

static int fx_teardown(void **state) {
    struct fx *f = *state;
    if (!f) return 0;
    cairn_close(f->db);
    tu_rm_rf(f->dir);
    tu_dig_free(&f->before);
    tu_dig_free(&f->now);
    free(f);
    return 0;
}

static void fx_lsns(struct fx *f, uint64_t *last, uint64_t *durable) {
    cairn_stats s;
    EXPECT_OK(cairn_stats_get(f->db, &s));
    *last = s.last_lsn;
    *durable = s.durable_lsn;
}

/* Records the state that must not change. */
static void fx_snapshot(struct fx *f) {
    state_digest(f->db, &f->before);
    fx_lsns(f, &f->last_lsn, &f->durable_lsn);
    assert_true(f->durable_lsn >= f->last_lsn); /* SYNC: all durable (PAD included) */
}

static void fx_compare(struct fx *f, const char *when) {
    state_digest(f->db, &f->now);
    uint64_t last, durable;
    fx_lsns(f, &last, &durable);
    if (!tu_dig_eq(&f->now, &f->before))
        fail_msg("state changed (%s)", when);
    if (last != f->last_lsn || durable != f->durable_lsn)
        fail_msg("LSNs changed (%s): last %" PRIu64 " -> %" PRIu64 ", durable %" PRIu64
                 " -> %" PRIu64,
                 when, f->last_lsn, last, f->durable_lsn, durable);
}

static void fx_reopen(struct fx *f) {
    if (f->db) EXPECT_OK(cairn_close(f->db));
    f->db = NULL;
    cairn_options o = default_opts();
    EXPECT_OK(cairn_open(f->dir, &o, &f->db));
    cairn_stats s;
    EXPECT_OK(cairn_stats_get(f->db, &s));
    assert_int_equal(s.recovery.bytes_truncated, 0);
    assert_int_equal(s.recovery.truncated_at, 0);
}

/* Unchanged now, and after close + reopen. */
static void fx_check_unchanged(struct fx *f) {
    fx_compare(f, "after the bad calls");
    fx_reopen(f);
    fx_compare(f, "after reopen");
}

/* ---- whole-directory byte snapshots (failed opens) ----------------------- */

static void img_take(struct tu_tree *img, const char *dir) {
    if (tu_tree_take(img, dir) != 0) fail_msg("%s", tu_error());
}

static void img_assert_same(const struct tu_tree *a, const struct tu_tree *b) {
    char why[1200];
    if (!tu_tree_diff(a, b, why, sizeof why)) return;
    if (a->n != b->n) {
        for (size_t i = 0; i < a->n; i++) fprintf(stderr, "  before: %s\n", a->f[i].path);
        for (size_t i = 0; i < b->n; i++) fprintf(stderr, "  after:  %s\n", b->f[i].path);
    }
    fail_msg("failed open changed the files: %s", why);
}

/* ---- cases: vectors ------------------------------------------------------ */

static void test_wrong_dimension(void **state) {
    struct fx *f = *state;
    fx_snapshot(f);
    float v[16];
    for (int i = 0; i < 16; i++) v[i] = 1.0f + (float)i;
    cairn_txn *t;
    EXPECT_OK(cairn_txn_begin(f->db, &t));
    EXPECT(cairn_txn_upsert(t, "alpha", 500, v, DIM_A + 1, NULL, 0), CAIRN_EDIM,
           "dimension 5", "\"alpha\"", "has 4");
    EXPECT(cairn_txn_upsert(t, "alpha", 500, v, DIM_A - 1, NULL, 0), CAIRN_EDIM,
           "dimension 3", "\"alpha\"");
    EXPECT(cairn_txn_upsert(t, "beta", 500, v, 0, NULL, 0), CAIRN_EDIM, "dimension 0",
           "\"beta\"");
    EXPECT_OK(cairn_txn_abort(t));
    cairn_txn_free(t);

    cairn_point p = {.id = 500, .vector = v};
    EXPECT(cairn_upsert_batch(f->db, "gamma", &p, 1, DIM_C * 2, NULL), CAIRN_EDIM,
           "dimension 16", "\"gamma\"", "point 0");

    cairn_hit hits[4];
    uint32_t nh = 99;
    EXPECT(cairn_search(f->db, "alpha", v, DIM_A + 1, 4, NULL, hits, &nh), CAIRN_EDIM,
           "dimension 5", "\"alpha\"");
    assert_int_equal(nh, 0);
    EXPECT(cairn_search(f->db, "gamma", v, 1, 4, NULL, hits, &nh), CAIRN_EDIM,
           "dimension 1", "\"gamma\"");

    /* get: the output buffer's dimension (point 1 exists in every collection) */
    float out[16];
    for (int i = 0; i < 16; i++) out[i] = -7.0f;
    char *pl = (char *)0x1;
    EXPECT(cairn_get(f->db, "alpha", 1, out, DIM_A + 1, &pl), CAIRN_EDIM, "dimension 5",
           "\"alpha\"");
    assert_null(pl);
    EXPECT(cairn_get(f->db, "beta", 1, out, DIM_B - 1, NULL), CAIRN_EDIM, "dimension 2",
           "\"beta\"");
    for (int i = 0; i < 16; i++) assert_true(out[i] == -7.0f); /* not written */
    /* without a vector buffer the dimension is not looked at */
    EXPECT_OK(cairn_get(f->db, "alpha", 1, NULL, 12345, NULL));
    fx_check_unchanged(f);
}

static void test_nonfinite(void **state) {
    struct fx *f = *state;
    fx_snapshot(f);
    const float bad[3] = {NAN, INFINITY, -INFINITY};
    const char *word[3] = {"NaN", "infinite", "infinite"};
    const uint32_t dims[3] = {DIM_A, DIM_B, DIM_C};
    const char *names[3] = {"alpha", "beta", "gamma"};
    for (int c = 0; c < 3; c++) {
        uint32_t dim = dims[c];
        uint32_t where[3] = {0, dim / 2, dim - 1};
        for (int b = 0; b < 3; b++) {
            for (int w = 0; w < 3; w++) {
                float v[DIM_C];
                for (uint32_t i = 0; i < dim; i++) v[i] = 0.25f * (float)(i + 1);
                v[where[w]] = bad[b];
                char el[32];
                snprintf(el, sizeof el, "element %u ", where[w]);
                cairn_txn *t;
                EXPECT_OK(cairn_txn_begin(f->db, &t));
                EXPECT(cairn_txn_upsert(t, names[c], 77, v, dim, "{\"a\":1}", 7),
                       CAIRN_EVECTOR, el, word[b]);
                /* the transaction stays usable and empty; abort it */
                EXPECT_OK(cairn_txn_abort(t));
                cairn_txn_free(t);
                cairn_point p = {.id = 77, .vector = v};
                EXPECT(cairn_upsert_batch(f->db, names[c], &p, 1, dim, NULL), CAIRN_EVECTOR,
                       el, word[b], "point 0");
                cairn_hit hits[2];
                uint32_t nh = 5;
                EXPECT(cairn_search(f->db, names[c], v, dim, 2, NULL, hits, &nh),
                       CAIRN_EVECTOR, el, word[b]);
                assert_int_equal(nh, 0);
            }
        }
    }
    /* a NULL vector */
    cairn_txn *t;
    EXPECT_OK(cairn_txn_begin(f->db, &t));
    EXPECT(cairn_txn_upsert(t, "alpha", 5, NULL, DIM_A, NULL, 0), CAIRN_EINVAL, "vector");
    EXPECT_OK(cairn_txn_abort(t));
    cairn_txn_free(t);
    fx_check_unchanged(f);
}

/* ---- cases: collections and names ---------------------------------------- */

static void test_create_dimension(void **state) {
    struct fx *f = *state;
    fx_snapshot(f);
    EXPECT(cairn_collection_create(f->db, "zero", 0, CAIRN_METRIC_L2), CAIRN_EDIM,
           "dimension 0", "\"zero\"");
    EXPECT(cairn_collection_create(f->db, "huge", CAIRN_MAX_DIM + 1, CAIRN_METRIC_L2),
           CAIRN_EDIM, "dimension 65537", "\"huge\"");
    EXPECT(cairn_collection_create(f->db, "huge", UINT32_MAX, CAIRN_METRIC_COSINE),
           CAIRN_EDIM, "\"huge\"");
    EXPECT(cairn_collection_create(f->db, "m", 4, (cairn_metric)0), CAIRN_EINVAL,
           "metric 0", "\"m\"");
    EXPECT(cairn_collection_create(f->db, "m", 4, (cairn_metric)9), CAIRN_EINVAL,
           "metric 9");
    cairn_collection_info info;
    EXPECT(cairn_collection_stat(f->db, "zero", &info), CAIRN_ENOTFOUND, "\"zero\"");
    EXPECT(cairn_collection_stat(f->db, "huge", &info), CAIRN_ENOTFOUND, "\"huge\"");
    fx_check_unchanged(f);
}

static void test_unknown_collection(void **state) {
    struct fx *f = *state;
    fx_snapshot(f);
    float v[DIM_A] = {1, 2, 3, 4};
    cairn_txn *t;
    EXPECT_OK(cairn_txn_begin(f->db, &t));
    EXPECT(cairn_txn_upsert(t, "nope", 1, v, DIM_A, NULL, 0), CAIRN_ENOTFOUND, "\"nope\"");
    EXPECT(cairn_txn_delete(t, "nope", 1), CAIRN_ENOTFOUND, "\"nope\"");
    EXPECT(cairn_txn_upsert(t, "Alpha", 1, v, DIM_A, NULL, 0), CAIRN_ENOTFOUND,
           "\"Alpha\""); /* names are case-sensitive */
    EXPECT_OK(cairn_txn_abort(t));
    cairn_txn_free(t);
    cairn_point p = {.id = 1, .vector = v};
    EXPECT(cairn_upsert_batch(f->db, "nope", &p, 1, DIM_A, NULL), CAIRN_ENOTFOUND,
           "\"nope\"");
    uint64_t id = 1;
    EXPECT(cairn_delete_batch(f->db, "nope", &id, 1, NULL), CAIRN_ENOTFOUND, "\"nope\"");
    cairn_hit hits[2];
    uint32_t nh;
    EXPECT(cairn_search(f->db, "nope", v, DIM_A, 2, NULL, hits, &nh), CAIRN_ENOTFOUND,
           "\"nope\"");
    EXPECT(cairn_get(f->db, "nope", 1, v, DIM_A, NULL), CAIRN_ENOTFOUND, "\"nope\"");
    EXPECT(cairn_collection_drop(f->db, "nope"), CAIRN_ENOTFOUND, "\"nope\"");
    cairn_collection_info info;
    EXPECT(cairn_collection_stat(f->db, "nope", &info), CAIRN_ENOTFOUND, "\"nope\"");
    /* an unknown point of a known collection */
    EXPECT(cairn_get(f->db, "alpha", 999999, v, DIM_A, NULL), CAIRN_ENOTFOUND, "999999",
           "\"alpha\"");
    fx_check_unchanged(f);
}

static void test_duplicate_collection(void **state) {
    struct fx *f = *state;
    fx_snapshot(f);
    EXPECT(cairn_collection_create(f->db, "alpha", DIM_A, CAIRN_METRIC_L2), CAIRN_EEXIST,
           "\"alpha\"");
    /* another dimension/metric does not make it a different collection */
    EXPECT(cairn_collection_create(f->db, "beta", 99, CAIRN_METRIC_DOT), CAIRN_EEXIST,
           "\"beta\"");
    fx_check_unchanged(f);
}

struct bad_name {
    const char *name;
    const char *why; /* substring of the message */
};

static const struct bad_name bad_names[] = {
    {"", "empty"},
    {"a/b", "'/'"},
    {"/", "'/'"},
    {"x\x01y", "control character at byte 1"},
    {"tab\there", "control character at byte 3"},
    {"\x7f", "control character at byte 0"},
    {"line\n", "control character at byte 4"},
    {"\xff", "UTF-8"},
    {"ok\xfe", "UTF-8"},
    {"\xc0\x80", "UTF-8"},          /* overlong NUL */
    {"\xe0\x80\xaf", "UTF-8"},      /* overlong '/' */
    {"\xed\xa0\x80", "UTF-8"},      /* lone high surrogate */
    {"\xed\xbf\xbf", "UTF-8"},      /* lone low surrogate */
    {"\xf4\x90\x80\x80", "UTF-8"},  /* above U+10FFFF */
    {"abc\xe2\x82", "UTF-8"},       /* truncated sequence */
    {"\x80", "UTF-8"},              /* stray continuation byte */
};

static void make_name(char *buf, size_t len, char c) {
    memset(buf, c, len);
    buf[len] = 0;
}

static void test_collection_names(void **state) {
    struct fx *f = *state;
    /* 128 bytes is the limit: accepted (ASCII and multi-byte UTF-8) */
    char n128[CAIRN_MAX_NAME + 2], n129[CAIRN_MAX_NAME + 2], u128[CAIRN_MAX_NAME + 8];
    make_name(n128, CAIRN_MAX_NAME, 'n');
    make_name(n129, CAIRN_MAX_NAME + 1, 'n');
    u128[0] = 0;
    for (int i = 0; i < 42; i++) strcat(u128, "\xe2\x82\xac"); /* 126 bytes of euro signs */
    strcat(u128, "ab");
    assert_int_equal(strlen(u128), CAIRN_MAX_NAME);
    EXPECT_OK(cairn_collection_create(f->db, n128, 2, CAIRN_METRIC_L2));
    EXPECT_OK(cairn_collection_create(f->db, u128, 2, CAIRN_METRIC_L2));
    cairn_collection_info info;
    EXPECT_OK(cairn_collection_stat(f->db, n128, &info));
    assert_string_equal(info.name, n128);
    float v2[2] = {1, 2};
    cairn_point p = {.id = 3, .vector = v2};
    EXPECT_OK(cairn_upsert_batch(f->db, n128, &p, 1, 2, NULL));

    fx_snapshot(f);
    EXPECT(cairn_collection_create(f->db, n129, 2, CAIRN_METRIC_L2), CAIRN_ENAME,
           "collection name", "longer than 128 bytes");
    char u129[CAIRN_MAX_NAME + 8];
    snprintf(u129, sizeof u129, "%sc", u128);
    EXPECT(cairn_collection_create(f->db, u129, 2, CAIRN_METRIC_L2), CAIRN_ENAME,
           "longer than 128 bytes");
    EXPECT(cairn_collection_create(f->db, NULL, 2, CAIRN_METRIC_L2), CAIRN_ENAME,
           "collection name");
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
        EXPECT(cairn_collection_create(f->db, bad_names[i].name, 2, CAIRN_METRIC_L2),
               CAIRN_ENAME, "collection name", bad_names[i].why);
    }
    /* A name is checked before its dimension: both bad gives ENAME. */
    EXPECT(cairn_collection_create(f->db, "a/b", 0, CAIRN_METRIC_L2), CAIRN_ENAME, "'/'");
    fx_check_unchanged(f);
    EXPECT_OK(cairn_collection_stat(f->db, u128, &info));
    EXPECT_OK(cairn_get(f->db, n128, 3, v2, 2, NULL));
}

static void test_restore_point_names(void **state) {
    struct fx *f = *state;
    char n128[CAIRN_MAX_NAME + 2], n129[CAIRN_MAX_NAME + 2];
    make_name(n128, CAIRN_MAX_NAME, 'r');
    make_name(n129, CAIRN_MAX_NAME + 1, 'r');
    uint64_t lsn = 0;
    EXPECT_OK(cairn_restore_point(f->db, n128, &lsn));
    assert_true(lsn > 0);
    fx_snapshot(f);
    EXPECT(cairn_restore_point(f->db, n129, &lsn), CAIRN_ENAME, "restore point name",
           "longer than 128 bytes");
    EXPECT(cairn_restore_point(f->db, NULL, &lsn), CAIRN_ENAME, "restore point name");
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++)
        EXPECT(cairn_restore_point(f->db, bad_names[i].name, NULL), CAIRN_ENAME,
               "restore point name", bad_names[i].why);
    fx_check_unchanged(f);
}

/* ---- cases: payloads ----------------------------------------------------- */

struct bad_payload {
    const char *text;
    size_t len; /* 0: strlen */
    const char *why;
};

static const struct bad_payload bad_payloads[] = {
    {"[1,2,3]", 0, "not a JSON object"},
    {"[]", 0, "not a JSON object"},
    /* scalars: jansson refuses them as documents ("'[' or '{' expected") */
    {"\"str\"", 0, "payload is not"},
    {"42", 0, "payload is not"},
    {"-1.5e3", 0, "payload is not"},
    {"true", 0, "payload is not"},
    {"null", 0, "payload is not"},
    {"{", 0, "not valid JSON"},
    {"{\"a\":}", 0, "not valid JSON"},
    {"{'a':1}", 0, "not valid JSON"},
    {"{\"a\":1} x", 0, "not valid JSON"},   /* trailing garbage */
    {"{\"a\":1}{}", 0, "not valid JSON"},   /* two values */
    {"{\"a\":1,\"a\":2}", 0, "not valid JSON"}, /* duplicate key */
    {"{\"a\":\"\xff\"}", 0, "not valid JSON"},  /* invalid UTF-8 in a string */
    {"{\"a\":1}\0{}", 10, "not valid JSON"},    /* embedded NUL inside the length */
    {"   ", 0, "not valid JSON"},
};

static void test_payloads(void **state) {
    struct fx *f = *state;
    float v[DIM_A] = {1, 2, 3, 4};

    /* Exactly 1 MiB of valid object text is accepted and round-trips. */
    size_t max = CAIRN_MAX_PAYLOAD;
    char *big = malloc(max + 2);
    assert_non_null(big);
    memcpy(big, "{\"k\":\"", 6);
    memset(big + 6, 'z', max - 8);
    memcpy(big + max - 2, "\"}", 2);
    big[max] = 0;
    cairn_point p = {.id = 4242, .vector = v, .payload = big, .payload_len = max};
    EXPECT_OK(cairn_upsert_batch(f->db, "alpha", &p, 1, DIM_A, NULL));
    char *got = NULL;
    EXPECT_OK(cairn_get(f->db, "alpha", 4242, NULL, 0, &got));
    assert_non_null(got);
    assert_int_equal(strlen(got), max);
    assert_memory_equal(got, big, max);
    cairn_free(got);

    fx_snapshot(f);
    /* 1 MiB + 1: refused, even though it is a valid object */
    char *big1 = malloc(max + 2);
    assert_non_null(big1);
    memcpy(big1, "{\"k\":\"", 6);
    memset(big1 + 6, 'z', max - 7);
    memcpy(big1 + max - 1, "\"}", 2);
    big1[max + 1] = 0;
    cairn_txn *t;
    EXPECT_OK(cairn_txn_begin(f->db, &t));
    EXPECT(cairn_txn_upsert(t, "alpha", 4243, v, DIM_A, big1, max + 1), CAIRN_EPAYLOAD,
           "1048577 bytes", "1048576");
    EXPECT(cairn_txn_upsert(t, "alpha", 4242, v, DIM_A, big1, (size_t)64 << 20),
           CAIRN_EPAYLOAD, "limit");
    for (size_t i = 0; i < sizeof bad_payloads / sizeof bad_payloads[0]; i++) {
        const struct bad_payload *b = &bad_payloads[i];
        size_t len = b->len ? b->len : strlen(b->text);
        EXPECT(cairn_txn_upsert(t, "alpha", 1, v, DIM_A, b->text, len), CAIRN_EPAYLOAD,
               "payload", b->why);
    }
    /* NULL text with a nonzero length */
    EXPECT(cairn_txn_upsert(t, "alpha", 1, v, DIM_A, NULL, 5), CAIRN_EINVAL, "payload",
           "5");
    EXPECT_OK(cairn_txn_abort(t));
    cairn_txn_free(t);
    /* the same through a batch */
    cairn_point bp = {.id = 1, .vector = v, .payload = "[1]", .payload_len = 3};
    EXPECT(cairn_upsert_batch(f->db, "alpha", &bp, 1, DIM_A, NULL), CAIRN_EPAYLOAD,
           "point 0", "not a JSON object");
    bp.payload = NULL;
    bp.payload_len = 1;
    EXPECT(cairn_upsert_batch(f->db, "alpha", &bp, 1, DIM_A, NULL), CAIRN_EINVAL,
           "point 0", "payload");
    free(big);
    free(big1);
    fx_check_unchanged(f);
    /* the 1 MiB payload survived the reopen */
    EXPECT_OK(cairn_get(f->db, "alpha", 4242, NULL, 0, &got));
    assert_int_equal(strlen(got), max);
    cairn_free(got);
}

/* ---- cases: transactions ------------------------------------------------- */

static void test_txn_state(void **state) {
    struct fx *f = *state;
    float v[DIM_A] = {1, 2, 3, 4};
    cairn_txn *done;
    EXPECT_OK(cairn_txn_begin(f->db, &done));
    EXPECT_OK(cairn_txn_upsert(done, "alpha", 9001, v, DIM_A, NULL, 0));
    EXPECT_OK(cairn_txn_commit(done, NULL));
    /* a transaction whose collection is dropped before it commits */
    cairn_txn *orphan;
    float v8[DIM_C] = {1, 2, 3, 4, 5, 6, 7, 8};
    EXPECT_OK(cairn_txn_begin(f->db, &orphan));
    EXPECT_OK(cairn_txn_upsert(orphan, "alpha", 9005, v, DIM_A, NULL, 0));
    EXPECT_OK(cairn_txn_upsert(orphan, "gamma", 9005, v8, DIM_C, NULL, 0));
    EXPECT_OK(cairn_collection_drop(f->db, "gamma"));
    fx_snapshot(f);
    EXPECT(cairn_txn_commit(orphan, NULL), CAIRN_ENOTFOUND, "dropped", "transaction");
    EXPECT(cairn_txn_commit(orphan, NULL), CAIRN_ETXN, "failed");
    EXPECT(cairn_txn_upsert(orphan, "alpha", 9006, v, DIM_A, NULL, 0), CAIRN_ETXN, "failed");
    cairn_txn_free(orphan);

    cairn_txn *ab;
    EXPECT_OK(cairn_txn_begin(f->db, &ab));
    EXPECT_OK(cairn_txn_upsert(ab, "alpha", 9002, v, DIM_A, "{\"a\":1}", 7));
    EXPECT_OK(cairn_txn_delete(ab, "alpha", 1));
    EXPECT_OK(cairn_txn_abort(ab));
    /* commit after abort */
    EXPECT(cairn_txn_commit(ab, NULL), CAIRN_ETXN, "transaction", "aborted");
    EXPECT(cairn_txn_upsert(ab, "alpha", 9003, v, DIM_A, NULL, 0), CAIRN_ETXN, "aborted");
    EXPECT(cairn_txn_delete(ab, "alpha", 1), CAIRN_ETXN, "aborted");
    EXPECT(cairn_txn_abort(ab), CAIRN_ETXN, "transaction");
    cairn_txn_free(ab);

    /* abort / upsert / commit after commit */
    EXPECT(cairn_txn_abort(done), CAIRN_ETXN, "transaction");
    EXPECT(cairn_txn_upsert(done, "alpha", 9004, v, DIM_A, NULL, 0), CAIRN_ETXN,
           "committed");
    EXPECT(cairn_txn_delete(done, "alpha", 9001), CAIRN_ETXN, "committed");
    EXPECT(cairn_txn_commit(done, NULL), CAIRN_ETXN, "committed");
    cairn_txn_free(done);

    EXPECT(cairn_txn_commit(NULL, NULL), CAIRN_EINVAL, "transaction");
    EXPECT(cairn_txn_abort(NULL), CAIRN_EINVAL, "transaction");
    fx_check_unchanged(f);
    EXPECT_OK(cairn_get(f->db, "alpha", 9001, NULL, 0, NULL));
    EXPECT(cairn_get(f->db, "alpha", 9002, NULL, 0, NULL), CAIRN_ENOTFOUND, "9002");
    EXPECT(cairn_get(f->db, "alpha", 9005, NULL, 0, NULL), CAIRN_ENOTFOUND, "9005");
}

/* A batch whose third point is bad applies nothing of the batch. */
static void test_batch_third_bad(void **state) {
    struct fx *f = *state;
    fx_snapshot(f);
    float good[3][DIM_B] = {{1, 2, 3}, {4, 5, 6}, {7, 8, 9}};
    float badv[DIM_B] = {1, NAN, 3};
    float infv[DIM_B] = {1, 2, -INFINITY};
    struct {
        cairn_point third;
        cairn_status want;
        const char *why;
    } cases[] = {
        {{.id = 3, .vector = badv}, CAIRN_EVECTOR, "NaN"},
        {{.id = 3, .vector = infv}, CAIRN_EVECTOR, "infinite"},
        {{.id = 3, .vector = good[2], .payload = "[\"x\"]", .payload_len = 5}, CAIRN_EPAYLOAD,
         "not a JSON object"},
        {{.id = 3, .vector = good[2], .payload = "{\"x\"", .payload_len = 4}, CAIRN_EPAYLOAD,
         "not valid JSON"},
        {{.id = 3, .vector = good[2], .payload = NULL, .payload_len = 2}, CAIRN_EINVAL,
         "payload"},
        {{.id = 3, .vector = NULL}, CAIRN_EINVAL, "vector"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        /* ids 1 and 2 exist in beta (fixture) with other vectors: an overwrite
         * that must not happen, and new ids 50.. that must not appear */
        cairn_point pts[5] = {
            {.id = 1, .vector = good[0], .payload = "{\"new\":1}", .payload_len = 9},
            {.id = 50, .vector = good[1]},
            cases[c].third,
            {.id = 51, .vector = good[2]},
            {.id = 52, .vector = good[0]},
        };
        EXPECT(cairn_upsert_batch(f->db, "beta", pts, 5, DIM_B, NULL), cases[c].want,
               "point 2 (id 3)", cases[c].why);
        fx_compare(f, "after a bad batch");
    }
    /* delete batch on an unknown collection, and NULL arrays */
    EXPECT(cairn_upsert_batch(f->db, "beta", NULL, 3, DIM_B, NULL), CAIRN_EINVAL, "NULL");
    EXPECT(cairn_delete_batch(f->db, "beta", NULL, 3, NULL), CAIRN_EINVAL, "NULL");
    fx_check_unchanged(f);
}

/* ---- cases: opening ------------------------------------------------------ */

static void seg_path_of(const struct fx *f, uint64_t start, char *out, size_t n) {
    char name[64];
    wal_seg_name(name, sizeof name, 1, start);
    snprintf(out, n, "%s/wal/%s", f->dir, name);
}

static void test_locked_by_other_process(void **state) {
    struct fx *f = *state;
    fx_snapshot(f);
    EXPECT_OK(cairn_close(f->db));
    f->db = NULL;
    int ready[2], release[2];
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(release), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(ready[0]);
        close(release[1]);
        cairn_options o = default_opts();
        cairn_db *db = NULL;
        /* Quiesce before saying ready: the open makes the WAL preallocator
         * reuse or create the segment after the current one (created: a .tmp
         * file renamed into place); wait until it is there at full size with
         * no .tmp pending so the parent's images are stable. The segment
         * after the end of the fixture's log is known. */
        uint64_t seg = CAIRN_WAL_SEGMENT_MIN;
        char next[700], tmpf[720];
        seg_path_of(f, (f->last_lsn & ~(seg - 1)) + seg, next, sizeof next);
        snprintf(tmpf, sizeof tmpf, "%s.tmp", next);
        struct stat sb;
        char c = cairn_open(f->dir, &o, &db) == CAIRN_OK ? 'y' : 'n';
        for (int i = 0; c == 'y' && i < 10000; i++) {
            if (stat(next, &sb) == 0 && (uint64_t)sb.st_size == seg && stat(tmpf, &sb) != 0)
                break;
            usleep(1000);
        }
        usleep(20000); /* the directory fsync after the rename */
        if (write(ready[1], &c, 1) != 1) _exit(2);
        char x;
        while (read(release[0], &x, 1) > 0) {
        }
        _exit(cairn_close(db) == CAIRN_OK && c == 'y' ? 0 : 1);
    }
    close(ready[1]);
    close(release[0]);
    char c = 0;
    assert_int_equal(read(ready[0], &c, 1), 1);
    assert_int_equal(c, 'y');
    struct tu_tree before, after;
    img_take(&before, f->dir);
    cairn_options o = default_opts();
    cairn_db *db = (cairn_db *)0x1;
    EXPECT(cairn_open(f->dir, &o, &db), CAIRN_EBUSY, f->dir);
    assert_null(db);
    EXPECT(cairn_open(f->dir, NULL, &db), CAIRN_EBUSY, f->dir);
    img_take(&after, f->dir);
    img_assert_same(&before, &after);
    tu_tree_free(&before);
    tu_tree_free(&after);
    close(release[1]); /* the child closes and exits */
    int wst = 0;
    assert_int_equal(waitpid(pid, &wst, 0), pid);
    assert_true(WIFEXITED(wst));
    assert_int_equal(WEXITSTATUS(wst), 0);
    close(ready[0]);
    fx_reopen(f);
    fx_compare(f, "after the lock was released");
}

static void file_rw(const char *path, void *buf, size_t len, uint64_t off, bool write_it) {
    int fd = open(path, write_it ? O_WRONLY : O_RDONLY);
    assert_true(fd >= 0);
    ssize_t r = write_it ? pwrite(fd, buf, len, (off_t)off) : pread(fd, buf, len, (off_t)off);
    assert_int_equal(r, (ssize_t)len);
    close(fd);
}

/* Damages a file region, asserts the open fails with want naming `names`,
 * that the failed open changed no byte, then repairs and reopens. */
typedef void (*damage_fn)(unsigned char *buf, size_t len);

static void open_must_fail(struct fx *f, const char *path, uint64_t off, size_t len,
                           damage_fn damage, cairn_status want, const char *name1,
                           const char *name2) {
    unsigned char orig[256], dmg[256];
    assert_true(len <= sizeof orig);
    file_rw(path, orig, len, off, false);
    memcpy(dmg, orig, len);
    damage(dmg, len);
    assert_memory_not_equal(dmg, orig, len);
    file_rw(path, dmg, len, off, true);

    struct tu_tree before, after;
    img_take(&before, f->dir);
    cairn_options o = default_opts();
    for (int round = 0; round < 2; round++) { /* the same answer twice */
        cairn_db *db = (cairn_db *)0x1;
        o.replay_jobs = round ? 1 : 3;
        check_err(cairn_open(f->dir, &o, &db), want, "cairn_open", __LINE__, name1, name2,
                  NULL);
        assert_null(db);
    }
    img_take(&after, f->dir);
    img_assert_same(&before, &after);
    tu_tree_free(&before);
    tu_tree_free(&after);

    file_rw(path, orig, len, off, true);
    fx_reopen(f);
    fx_compare(f, "after repairing the damage");
}

static void fix_seg_crc(unsigned char *h) {
    uint32_t c = crc32c(0, h, 60);
    memcpy(h + 60, &c, 4);
}
static void dmg_magic(unsigned char *h, size_t n) { (void)n; h[3] ^= 0x20; }
static void dmg_crc(unsigned char *h, size_t n) { (void)n; h[61] ^= 0x01; }
static void dmg_body_bit(unsigned char *h, size_t n) { (void)n; h[33] ^= 0x80; } /* db id */
static void dmg_shift_range(unsigned char *h, size_t n) {
    (void)n;
    uint32_t s = 40;
    memcpy(h + 20, &s, 4);
    fix_seg_crc(h);
}
static void dmg_shift_other(unsigned char *h, size_t n) {
    (void)n;
    uint32_t s = 22; /* valid, but not this log's segment size */
    memcpy(h + 20, &s, 4);
    fix_seg_crc(h);
}
static void dmg_wal_version(unsigned char *h, size_t n) {
    (void)n;
    uint32_t v = WAL_FORMAT_VERSION + 1;
    memcpy(h + 8, &v, 4);
    fix_seg_crc(h);
}
/* a segment of the development format without block padding */
static void dmg_wal_old_version(unsigned char *h, size_t n) {
    (void)n;
    uint32_t v = 1;
    memcpy(h + 8, &v, 4);
    fix_seg_crc(h);
}
static void dmg_meta_version(unsigned char *m, size_t n) {
    (void)n;
    uint32_t v = 2;
    memcpy(m + 8, &v, 4);
    uint32_t c = crc32c(0, m, 60);
    memcpy(m + 60, &c, 4);
}
static void dmg_meta_crc(unsigned char *m, size_t n) { (void)n; m[20] ^= 0x04; }

static void bad_segment_header(struct fx *f, uint64_t seg_start, damage_fn d,
                               cairn_status want, const char *why) {
    char path[700], base[64];
    seg_path_of(f, seg_start, path, sizeof path);
    wal_seg_name(base, sizeof base, 1, seg_start);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    open_must_fail(f, path, 0, WAL_SEG_HDR, d, want, base, why);
}

static void close_fixture(struct fx *f) {
    fx_snapshot(f);
    EXPECT_OK(cairn_close(f->db));
    f->db = NULL;
}

static void test_bad_segment_header_first(void **state) {
    struct fx *f = *state;
    close_fixture(f);
    bad_segment_header(f, 0, dmg_magic, CAIRN_ECORRUPT, "magic");
    EXPECT_OK(cairn_close(f->db));
    f->db = NULL;
    bad_segment_header(f, 0, dmg_crc, CAIRN_ECORRUPT, "checksum");
    EXPECT_OK(cairn_close(f->db));
    f->db = NULL;
    bad_segment_header(f, 0, dmg_body_bit, CAIRN_ECORRUPT, "checksum");
    EXPECT_OK(cairn_close(f->db));
    f->db = NULL;
    bad_segment_header(f, 0, dmg_shift_range, CAIRN_ECORRUPT, "segment size");
    EXPECT_OK(cairn_close(f->db));
    f->db = NULL;
    bad_segment_header(f, 0, dmg_shift_other, CAIRN_ECORRUPT, "offset 0");
    EXPECT_OK(cairn_close(f->db));
    f->db = NULL;
    bad_segment_header(f, 0, dmg_wal_version, CAIRN_EVERSION, "version 3 is newer");
    EXPECT_OK(cairn_close(f->db));
    f->db = NULL;
    bad_segment_header(f, 0, dmg_wal_old_version, CAIRN_EVERSION,
                       "format version 1 (records not padded");
}

/* A log of several segments: damage a middle one and the preallocated one
 * after the end of the log. */
static void test_bad_segment_header_later(void **state) {
    struct fx *f = *state;
    /* ~2.5 segments of data */
    float v[DIM_C];
    char pl[2048];
    memset(pl, 0, sizeof pl);
    int pn = snprintf(pl, sizeof pl, "{\"fill\":\"");
    memset(pl + pn, 'q', 1500);
    pn += 1500;
    pn += snprintf(pl + pn, sizeof pl - (size_t)pn, "\"}");
    cairn_point pts[64];
    uint64_t rs = g_seed ^ 0xabcdef;
    for (int b = 0; b < 64; b++) {
        for (int i = 0; i < 64; i++) {
            for (int j = 0; j < DIM_C; j++) v[j] = rnd_float(&rs);
            pts[i] = (cairn_point){.id = 100000 + (uint64_t)(b * 64 + i) % 1500,
                                   .vector = v,
                                   .payload = pl,
                                   .payload_len = (size_t)pn};
        }
        EXPECT_OK(cairn_upsert_batch(f->db, "gamma", pts, 64, DIM_C, NULL));
    }
    cairn_stats s;
    EXPECT_OK(cairn_stats_get(f->db, &s));
    uint64_t seg = CAIRN_WAL_SEGMENT_MIN;
    uint64_t last_seg = s.last_lsn & ~(seg - 1);
    assert_true(last_seg >= 2 * seg);
    close_fixture(f);
    char p[700];
    seg_path_of(f, last_seg + seg, p, sizeof p);
    struct stat sb;
    bool have_prealloc = stat(p, &sb) == 0;

    bad_segment_header(f, seg, dmg_magic, CAIRN_ECORRUPT, "magic");
    EXPECT_OK(cairn_close(f->db));
    f->db = NULL;
    bad_segment_header(f, last_seg, dmg_crc, CAIRN_ECORRUPT, "checksum");
    EXPECT_OK(cairn_close(f->db));
    f->db = NULL;
    bad_segment_header(f, seg, dmg_wal_version, CAIRN_EVERSION, "version 3 is newer");
    EXPECT_OK(cairn_close(f->db));
    f->db = NULL;
    bad_segment_header(f, seg, dmg_wal_old_version, CAIRN_EVERSION, "version 1");
    EXPECT_OK(cairn_close(f->db));
    f->db = NULL;
    if (have_prealloc) {
        /* the (empty) segment after the end of the log */
        bad_segment_header(f, last_seg + seg, dmg_crc, CAIRN_ECORRUPT, "checksum");
    } else {
        fx_reopen(f);
    }
}

static void test_newer_db_version(void **state) {
    struct fx *f = *state;
    close_fixture(f);
    char mpath[700];
    snprintf(mpath, sizeof mpath, "%s/meta", f->dir);
    open_must_fail(f, mpath, 0, 64, dmg_meta_version, CAIRN_EVERSION, mpath, "version 2");
    EXPECT_OK(cairn_close(f->db));
    f->db = NULL;
    open_must_fail(f, mpath, 0, 64, dmg_meta_crc, CAIRN_ECORRUPT, mpath, "checksum");
}

static void test_bad_options(void **state) {
    struct fx *f = *state;
    close_fixture(f);
    char fresh[700];
    snprintf(fresh, sizeof fresh, "%s.fresh", f->dir);
    struct {
        uint64_t seg;
        int durability;
        int io;
        uint32_t flush_ms;
        const char *why;
    } cases[] = {
        {3u << 20, 0, 0, 10, "wal_segment_size 3145728"},
        {CAIRN_WAL_SEGMENT_MIN + 4096, 0, 0, 10, "wal_segment_size"},
        {CAIRN_WAL_SEGMENT_MIN / 2, 0, 0, 10, "wal_segment_size 1048576"},
        {4096, 0, 0, 10, "wal_segment_size 4096"},
        {0, 0, 0, 10, "wal_segment_size 0"},
        {(uint64_t)CAIRN_WAL_SEGMENT_MAX * 2, 0, 0, 10, "wal_segment_size"},
        {CAIRN_WAL_SEGMENT_MIN, 3, 0, 10, "durability 3"},
        {CAIRN_WAL_SEGMENT_MIN, -1, 0, 10, "durability -1"},
        {CAIRN_WAL_SEGMENT_MIN, 0, 7, 10, "io_backend 7"},
        {CAIRN_WAL_SEGMENT_MIN, CAIRN_DURABILITY_ASYNC, 0, 0, "async_flush_ms 0"},
    };
    struct tu_tree before, after;
    img_take(&before, f->dir);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cairn_options o = default_opts();
        o.wal_segment_size = cases[i].seg;
        o.durability = (cairn_durability)cases[i].durability;
        o.io_backend = (cairn_io_backend)cases[i].io;
        o.async_flush_ms = cases[i].flush_ms;
        cairn_db *db = (cairn_db *)0x1;
        /* on an existing database and on a path that does not exist yet */
        check_err(cairn_open(f->dir, &o, &db), CAIRN_EINVAL, "cairn_open", __LINE__,
                  cases[i].why, NULL);
        assert_null(db);
        check_err(cairn_open(fresh, &o, &db), CAIRN_EINVAL, "cairn_open", __LINE__,
                  cases[i].why, NULL);
        assert_null(db);
        struct stat sb;
        assert_int_not_equal(stat(fresh, &sb), 0); /* nothing created */
    }
    EXPECT(cairn_open(NULL, NULL, NULL), CAIRN_EINVAL, "NULL");
    img_take(&after, f->dir);
    img_assert_same(&before, &after);
    tu_tree_free(&before);
    tu_tree_free(&after);
    fx_reopen(f);
    fx_compare(f, "after bad options");
}

static void test_open_regular_file(void **state) {
    struct fx *f = *state;
    close_fixture(f);
    char path[700];
    snprintf(path, sizeof path, "%s.file", f->dir);
    const char content[] = "not a database\n";
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, sizeof content - 1), (ssize_t)(sizeof content - 1));
    close(fd);
    cairn_options o = default_opts();
    cairn_db *db = (cairn_db *)0x1;
    EXPECT(cairn_open(path, &o, &db), CAIRN_EINVAL, path, "not a directory");
    assert_null(db);
    o.create_if_missing = 0;
    EXPECT(cairn_open(path, &o, &db), CAIRN_EINVAL, path, "not a directory");
    /* unchanged, and nothing created beside it */
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_true(S_ISREG(sb.st_mode));
    assert_int_equal(sb.st_size, sizeof content - 1);
    char buf[64] = {0};
    fd = open(path, O_RDONLY);
    assert_int_equal(read(fd, buf, sizeof buf), (ssize_t)(sizeof content - 1));
    close(fd);
    assert_string_equal(buf, content);
    char side[720];
    snprintf(side, sizeof side, "%s/LOCK", path);
    assert_int_not_equal(stat(side, &sb), 0);
    unlink(path);
    /* a database path below a regular file */
    snprintf(side, sizeof side, "%s/db", path);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    close(fd);
    cairn_status st = cairn_open(side, &o, &db);
    assert_int_not_equal(st, CAIRN_OK);
    assert_null(db);
    assert_non_null(strstr(cairn_last_error(), side));
    unlink(path);
    fx_reopen(f);
    fx_compare(f, "after opening a regular file");
}

int main(void) {
    g_seed = tu_seed("bad_input", 0x5eedbad1ULL);
    if (tu_tmpbase(tmpbase, sizeof tmpbase, "bad_input") != 0) {
        perror("bad_input: temporary directory");
        return 1;
    }
    cairn_set_log(NULL, NULL, CAIRN_LOG_ERROR + 1); /* expected failures are noisy */
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
    const struct CMUnitTest tests[] = {
        T(test_wrong_dimension),
        T(test_nonfinite),
        T(test_create_dimension),
        T(test_unknown_collection),
        T(test_duplicate_collection),
        T(test_collection_names),
        T(test_restore_point_names),
        T(test_payloads),
        T(test_txn_state),
        T(test_batch_third_bad),
        T(test_locked_by_other_process),
        T(test_bad_segment_header_first),
        T(test_bad_segment_header_later),
        T(test_newer_db_version),
        T(test_bad_options),
        T(test_open_regular_file),
    };
#undef T
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    tu_rm_rf(tmpbase);
    return rc;
}
