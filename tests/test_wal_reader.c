/*
 * test_wal_reader.c — the reader's segment gate (wal.h, struct
 * wal_seg_gate; what pitr_restore's pipelined WAL fetch relies on): a gated
 * reader of a directory that receives each segment only when the reader
 * asks for it reads exactly what a plain reader of the full directory
 * reads (records, where and why the log ends, the same errors), and a
 * gate that fails makes the reader fail with its status and message.
 *
 * The source log (seg_shift 21, durability NONE, flushed every ~192 KiB so
 * that later records prove earlier ones durable): upserts of varying sizes
 * over about 7 segments, two of them closed early by wal_writer_switch
 * (SWITCH), the others ended by a PAD that fills them; the writer's
 * preallocated (empty) segment after the end is there too. The gated
 * directory starts empty. The test's gate ("the fetch") knows the
 * source's segment files (its plan): asked (timeline, lsn), it copies each
 * planned segment starting at or before lsn that is not copied yet, and
 * logs the call. A reader that looked at a segment before asking would
 * find it missing and end the log early (or report it missing), so equal
 * results prove it asks before every segment; the damaged logs below are
 * ones whose verdict depends on segments after the damage, which the
 * reader only has if it asks before deciding where the log ends.
 *
 * 1. same: from LSN 0, from a record in the middle, from a segment's first
 *    record: same records and end as the plain reader; the open copies only
 *    the segments up to from_lsn; the last call is the end decision's.
 * 2. ends: a record damaged in a segment whose later records do not prove
 *    it durable but the next segment's do (CAIRN_ECORRUPT naming the
 *    later segment), a segment missing from the plan while later ones
 *    hold data (CAIRN_ECORRUPT, "missing"), a torn tail (end, torn, the
 *    same garbage count), the empty preallocated segment: each as the
 *    plain reader says.
 * 3. errors: a gate failing at a segment in the middle (the records before
 *    it, then its status and message, sticky), at the open, and only at
 *    the end decision.
 * 4. none: a NULL gate, or one without a wait function, is the plain
 *    reader.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/err.h"
#include "common/util.h"
#include "wal/wal.h"

#include "testutil.h"

#define SHIFT 21u
#define SEG (1ull << SHIFT)
#define DB_ID 0x6A7E5ull
#define MAXSEG 32

static char g_src[256], g_dst[256];

/* the source log as the plain reader reads it */
struct rrec {
    uint64_t lsn, hint;
    uint32_t len;
    uint8_t type;
};
static struct rrec *g_recs;
static size_t g_nrecs;
static uint64_t g_seg[MAXSEG]; /* the source's segment files (start LSNs) */
static size_t g_nseg;

/* ---- the lazy fetch (the gate) ---------------------------------------- */

struct call {
    uint32_t tl;
    uint64_t lsn;
};

struct lazy {
    uint64_t plan[MAXSEG];
    size_t n;
    bool copied[MAXSEG];
    struct call calls[4096];
    size_t ncalls;
    size_t fail_at;     /* plan index whose fetch fails (SIZE_MAX: none) */
    bool fail_at_end;   /* fail the calls for UINT64_MAX */
    cairn_status fail_st;
};

static void seg_file(char *buf, size_t n, const char *dir, uint64_t start)
{
    char name[64];
    wal_seg_name(name, sizeof name, 1, start);
    snprintf(buf, n, "%s/%s", dir, name);
}

static void copy_seg(uint64_t start)
{
    char a[512], b[512];
    seg_file(a, sizeof a, g_src, start);
    seg_file(b, sizeof b, g_dst, start);
    size_t len = 0;
    unsigned char *d = tu_read_file(a, &len);
    if (!d)
        fail_msg("%s", tu_error());
    FILE *f = fopen(b, "wbx");
    if (!f)
        fail_msg("create %s: %s", b, strerror(errno));
    assert_int_equal(fwrite(d, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    free(d);
}

static cairn_status lazy_wait(void *ctx, uint32_t tl, uint64_t lsn)
{
    struct lazy *z = ctx;
    assert_true(z->ncalls < CAIRN_ARRAY_LEN(z->calls));
    z->calls[z->ncalls++] = (struct call){tl, lsn};
    if (lsn == UINT64_MAX && z->fail_at_end)
        return cerr_set(z->fail_st, "could not fetch the rest of timeline %u: failed by the test",
                        tl);
    if (tl != 1)
        return CAIRN_OK;
    for (size_t i = 0; i < z->n; i++) {
        if (z->copied[i] || z->plan[i] > lsn)
            continue;
        if (i == z->fail_at) {
            char name[64];
            wal_seg_name(name, sizeof name, 1, z->plan[i]);
            return cerr_set(z->fail_st, "could not fetch WAL segment %s: failed by the test",
                            name);
        }
        copy_seg(z->plan[i]);
        z->copied[i] = true;
    }
    return CAIRN_OK;
}

/* A lazy fetch of the source's segments (all, or all but `skip`) into an
 * empty g_dst. */
static void lazy_init(struct lazy *z, size_t skip)
{
    memset(z, 0, sizeof *z);
    z->fail_at = SIZE_MAX;
    for (size_t i = 0; i < g_nseg; i++)
        if (i != skip)
            z->plan[z->n++] = g_seg[i];
    assert_int_equal(tu_rm_rf(g_dst), 0);
    assert_int_equal(mkdir(g_dst, 0755), 0);
}

static size_t dst_count(void)
{
    uint64_t *s = NULL;
    size_t n = 0;
    assert_int_equal(wal_seg_list(g_dst, 1, &s, &n), CAIRN_OK);
    free(s);
    return n;
}

/* ---- reading ------------------------------------------------------------ */

struct result {
    cairn_status st;
    char msg[1024];
    struct rrec *r;
    size_t n;
    struct wal_end end;
};

static void result_free(struct result *res)
{
    free(res->r);
    memset(res, 0, sizeof *res);
}

/* Reads dir from `from` (through gate when given) to the end or the first
 * error. */
static void read_log(const char *dir, const struct wal_seg_gate *gate, uint64_t from,
                     struct result *res)
{
    memset(res, 0, sizeof *res);
    res->r = calloc(g_nrecs + 64, sizeof *res->r);
    assert_non_null(res->r);
    wal_reader *r = NULL;
    res->st = gate ? wal_reader_open_gated(dir, 1, from, gate, &r)
                   : wal_reader_open(dir, 1, from, &r);
    if (res->st) {
        assert_null(r);
        snprintf(res->msg, sizeof res->msg, "%s", cairn_last_error());
        return;
    }
    for (;;) {
        struct wal_record rec;
        bool end = false;
        res->st = wal_reader_next(r, &rec, &end);
        if (res->st) {
            snprintf(res->msg, sizeof res->msg, "%s", cairn_last_error());
            /* sticky: the same again */
            bool e2 = false;
            assert_int_equal(wal_reader_next(r, &rec, &e2), res->st);
            assert_string_equal(cairn_last_error(), res->msg);
            break;
        }
        if (end) {
            res->end = *wal_reader_end(r);
            break;
        }
        assert_true(res->n < g_nrecs + 64);
        res->r[res->n++] = (struct rrec){rec.lsn, rec.durable_hint, rec.len, rec.type};
    }
    wal_reader_close(r);
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* The message with every occurrence of dir replaced by "DIR". */
static void neutral(const char *msg, const char *dir, char *out, size_t n)
{
    size_t dl = strlen(dir), k = 0;
    for (const char *p = msg; *p && k + 4 < n;) {
        if (!strncmp(p, dir, dl)) {
            memcpy(out + k, "DIR", 3);
            k += 3;
            p += dl;
        } else {
            out[k++] = *p++;
        }
    }
    out[k] = 0;
}

/* The gated read of g_dst equals the plain read of g_src. */
static void expect_same(const struct result *plain, const struct result *gated, const char *what)
{
    if (plain->st != gated->st)
        fail_msg("%s: plain reader %s (%s), gated %s (%s)", what, cairn_status_name(plain->st),
                 plain->msg, cairn_status_name(gated->st), gated->msg);
    char a[1100], b[1100];
    neutral(plain->msg, g_src, a, sizeof a);
    neutral(gated->msg, g_dst, b, sizeof b);
    if (strcmp(a, b) != 0)
        fail_msg("%s: messages differ:\n  plain: %s\n  gated: %s", what, a, b);
    if (plain->n != gated->n)
        fail_msg("%s: plain reader read %zu records, gated %zu", what, plain->n, gated->n);
    for (size_t i = 0; i < plain->n; i++)
        if (memcmp(&plain->r[i], &gated->r[i], sizeof plain->r[i]) != 0)
            fail_msg("%s: record %zu differs (LSN %llu vs %llu)", what, i,
                     (unsigned long long)plain->r[i].lsn, (unsigned long long)gated->r[i].lsn);
    if (plain->st)
        return;
    const struct wal_end *x = &plain->end, *y = &gated->end;
    assert_int_equal(x->end_lsn, y->end_lsn);
    assert_int_equal(x->rec_end, y->rec_end);
    assert_int_equal(x->torn, y->torn);
    assert_int_equal(x->garbage_bytes, y->garbage_bytes);
    assert_int_equal(x->seg_offset, y->seg_offset);
    assert_int_equal(x->segments_after, y->segments_after);
    assert_string_equal(base_name(x->seg_path), base_name(y->seg_path));
}

/* Reads g_src plainly and g_dst through a fresh lazy fetch of the plan
 * (all but `skip`); checks they agree. The calls stay in *z. */
static void compare(struct lazy *z, size_t skip, uint64_t from, struct result *plain,
                    const char *what)
{
    read_log(g_src, NULL, from, plain);
    lazy_init(z, skip);
    struct wal_seg_gate gate = {.wait = lazy_wait, .ctx = z};
    struct result gated;
    read_log(g_dst, &gate, from, &gated);
    expect_same(plain, &gated, what);
    result_free(&gated);
    printf("  %-44s %s, %zu records, %zu gate calls\n", what,
           plain->st ? cairn_status_name(plain->st) : (plain->end.torn ? "torn end" : "end"),
           plain->n, z->ncalls);
}

/* ---- the source log -------------------------------------------------------- */

static void build_log(void)
{
    assert_int_equal(tu_tmpbase(g_src, sizeof g_src, "wal_reader_src"), 0);
    assert_int_equal(tu_tmpbase(g_dst, sizeof g_dst, "wal_reader_dst"), 0);
    struct wal_writer_opts o = {
        .waldir = g_src,
        .timeline = 1,
        .seg_shift = SHIFT,
        .db_id = DB_ID,
        .io = CAIRN_IO_DEFAULT,
        .durability = CAIRN_DURABILITY_NONE,
    };
    wal_writer *w = NULL;
    assert_int_equal(wal_writer_open(&o, 0, &w), CAIRN_OK);
    static uint8_t b[16384];
    static float v[256];
    static char pl[8192];
    uint64_t last_flush = 0;
    bool switched[MAXSEG] = {false};
    for (uint64_t id = 1; wal_writer_end_lsn(w) < 7 * SEG + SEG / 3; id++) {
        uint32_t dim = 8 + (uint32_t)(id % 9) * 24;
        uint32_t plen = (uint32_t)((id * 7919) % 5000);
        for (uint32_t i = 0; i < dim; i++)
            v[i] = (float)(id + i);
        for (uint32_t i = 0; i < plen; i++)
            pl[i] = (char)('a' + (id + i) % 26);
        size_t n = wal_enc_upsert(b, 1, id, id, v, dim, pl, plen);
        uint64_t first, last, end;
        assert_int_equal(wal_writer_append(w, b, n, &first, &last, &end), CAIRN_OK);
        if (end - last_flush > (192u << 10)) {
            assert_int_equal(wal_writer_flush(w), CAIRN_OK);
            last_flush = end;
        }
        /* segments 2 and 5 are closed early, two thirds in */
        uint64_t s = end >> SHIFT;
        if ((s == 2 || s == 5) && !switched[s] && (end & (SEG - 1)) > 2 * SEG / 3) {
            bool sw = false;
            assert_int_equal(wal_writer_switch(w, &sw), CAIRN_OK);
            assert_true(sw);
            switched[s] = true;
        }
    }
    assert_int_equal(wal_writer_close(w), CAIRN_OK);

    uint64_t *s = NULL;
    size_t n = 0;
    assert_int_equal(wal_seg_list(g_src, 1, &s, &n), CAIRN_OK);
    assert_true(n >= 8 && n <= MAXSEG);
    memcpy(g_seg, s, n * sizeof *s);
    g_nseg = n;
    free(s);

    struct result plain;
    g_nrecs = 200000;
    read_log(g_src, NULL, 0, &plain);
    assert_int_equal(plain.st, CAIRN_OK);
    assert_false(plain.end.torn);
    g_recs = plain.r;
    g_nrecs = plain.n;
    printf("  source: %zu records in %zu segment files, log ends at LSN %llu\n", g_nrecs,
           g_nseg, (unsigned long long)plain.end.end_lsn);
}

static int setup(void **state)
{
    (void)state;
    build_log();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(g_recs);
    tu_rm_rf(g_src);
    tu_rm_rf(g_dst);
    return 0;
}

/* Flips the source's byte at lsn (in place; flipping twice restores it). */
static void flip_at(uint64_t lsn)
{
    char p[512];
    seg_file(p, sizeof p, g_src, lsn & ~(SEG - 1));
    int fd = open(p, O_RDWR);
    assert_true(fd >= 0);
    uint8_t c;
    assert_int_equal(pread(fd, &c, 1, (off_t)(lsn & (SEG - 1))), 1);
    c ^= 0x5A;
    assert_int_equal(pwrite(fd, &c, 1, (off_t)(lsn & (SEG - 1))), 1);
    close(fd);
}

/* ---- 1. the same log -------------------------------------------------------- */

static size_t first_in_seg(uint64_t seg_start)
{
    for (size_t i = 0; i < g_nrecs; i++)
        if (g_recs[i].lsn >= seg_start)
            return i;
    fail_msg("no record at or after %llu", (unsigned long long)seg_start);
    return 0;
}

static void test_same(void **state)
{
    (void)state;
    uint64_t froms[3] = {0, g_recs[first_in_seg(3 * SEG) + 17].lsn, 4 * SEG + WAL_SEG_DATA};
    for (int k = 0; k < 3; k++) {
        uint64_t from = froms[k];
        char what[96];
        snprintf(what, sizeof what, "same log from LSN %llu", (unsigned long long)from);
        struct lazy *z = calloc(1, sizeof *z);
        struct result plain;

        /* the open alone copies only the segments up to from_lsn */
        lazy_init(z, SIZE_MAX);
        struct wal_seg_gate gate = {.wait = lazy_wait, .ctx = z};
        wal_reader *r = NULL;
        assert_int_equal(wal_reader_open_gated(g_dst, 1, from, &gate, &r), CAIRN_OK);
        assert_int_equal(z->ncalls, 1);
        assert_int_equal(z->calls[0].tl, 1);
        assert_int_equal(z->calls[0].lsn, from ? from : UINT64_MAX);
        size_t want = 0;
        for (size_t i = 0; i < g_nseg; i++)
            want += from == 0 || g_seg[i] <= from;
        assert_int_equal(dst_count(), want);
        wal_reader_close(r);

        compare(z, SIZE_MAX, from, &plain, what);
        assert_int_equal(plain.st, CAIRN_OK);
        assert_true(plain.n > 0 && plain.r[plain.n - 1].lsn == g_recs[g_nrecs - 1].lsn);
        /* every call is for timeline 1; each segment after the first one
         * read was asked for by its start before it was entered; the last
         * call is the end decision's (all of them) */
        uint64_t first_seg = from & ~(SEG - 1);
        for (size_t i = 0; i < z->ncalls; i++)
            assert_int_equal(z->calls[i].tl, 1);
        for (size_t i = 0; i < g_nseg; i++) {
            if (from == 0 || g_seg[i] <= first_seg || g_seg[i] > plain.end.end_lsn)
                continue;
            bool asked = false;
            for (size_t c = 1; c < z->ncalls; c++)
                asked |= z->calls[c].lsn == g_seg[i];
            if (!asked)
                fail_msg("%s: segment %llu entered without a gate call for it", what,
                         (unsigned long long)g_seg[i]);
        }
        assert_int_equal(z->calls[z->ncalls - 1].lsn, UINT64_MAX);
        result_free(&plain);
        free(z);
    }
}

/* ---- 2. where the log ends ------------------------------------------------- */

static void test_ends(void **state)
{
    (void)state;
    struct lazy *z = calloc(1, sizeof *z);
    struct result plain;
    /* read from the first record: the open asks for segment 0 only (from
     * LSN 0 it would ask for all of them) */

    /* A record near the end of segment 1 damaged such that nothing after
     * it in its segment proves it durable (written before the next flush)
     * but a record of segment 2 does: the verdict, corruption, needs the
     * later segment (its message names it). The last records of segment
     * 1 are tried in turn, newest first, for one such. */
    char s2[512];
    seg_file(s2, sizeof s2, g_src, 2 * SEG);
    size_t p = first_in_seg(2 * SEG);
    bool done = false;
    for (int tries = 0; tries < 64 && !done && p > 0; tries++) {
        p--;
        assert_true(g_recs[p].lsn >> SHIFT == 1);
        flip_at(g_recs[p].lsn + g_recs[p].len - 1);
        read_log(g_src, NULL, 0, &plain);
        done = plain.st == CAIRN_ECORRUPT && strstr(plain.msg, s2);
        result_free(&plain);
        if (!done)
            flip_at(g_recs[p].lsn + g_recs[p].len - 1);
    }
    if (!done)
        fail_msg("no record of segment 1 whose damage only segment 2 proves durable");
    compare(z, SIZE_MAX, WAL_SEG_DATA, &plain, "damage proven durable by a later segment");
    assert_int_equal(plain.st, CAIRN_ECORRUPT);
    assert_non_null(strstr(plain.msg, "invalid record followed by durable records"));
    assert_int_equal(plain.n, p);
    flip_at(g_recs[p].lsn + g_recs[p].len - 1);
    result_free(&plain);

    /* Segment 3 not in the plan (never fetched) while later ones hold
     * data: the reader must not take it for the end of the log. */
    size_t k3 = 0;
    while (g_seg[k3] != 3 * SEG)
        k3++;
    char s3[512];
    seg_file(s3, sizeof s3, g_src, 3 * SEG);
    char keep[600];
    snprintf(keep, sizeof keep, "%s.seg3", g_src); /* beside the directory */
    assert_int_equal(rename(s3, keep), 0);
    compare(z, k3, WAL_SEG_DATA, &plain, "a segment missing before later ones");
    assert_int_equal(rename(keep, s3), 0);
    assert_int_equal(plain.st, CAIRN_ECORRUPT);
    assert_non_null(strstr(plain.msg, "missing"));
    assert_non_null(strstr(plain.msg, base_name(s3)));
    result_free(&plain);

    /* A torn tail: the last record damaged. */
    uint64_t last = g_recs[g_nrecs - 1].lsn;
    flip_at(last + 9);
    compare(z, SIZE_MAX, WAL_SEG_DATA, &plain, "torn tail");
    flip_at(last + 9);
    assert_int_equal(plain.st, CAIRN_OK);
    assert_true(plain.end.torn);
    assert_int_equal(plain.end.end_lsn, last);
    assert_int_equal(plain.n, g_nrecs - 1);
    result_free(&plain);

    /* The undamaged log: it ends before the preallocated segment, which
     * the end decision looks at too (all of the plan copied by then). */
    compare(z, SIZE_MAX, WAL_SEG_DATA, &plain, "clean end");
    assert_int_equal(plain.st, CAIRN_OK);
    assert_false(plain.end.torn);
    assert_int_equal(plain.n, g_nrecs);
    for (size_t i = 0; i < z->n; i++)
        assert_true(z->copied[i]);
    result_free(&plain);
    free(z);
}

/* ---- 3. a gate that fails -------------------------------------------------- */

static void test_errors(void **state)
{
    (void)state;
    struct lazy *z = calloc(1, sizeof *z);
    struct wal_seg_gate gate = {.wait = lazy_wait, .ctx = z};
    struct result res;

    /* at segment 4: every record before it, then the gate's status and
     * message (read_log checks that it sticks) */
    size_t k4 = 0;
    while (g_seg[k4] != 4 * SEG)
        k4++;
    lazy_init(z, SIZE_MAX);
    z->fail_at = k4;
    z->fail_st = CAIRN_ECORRUPT;
    read_log(g_dst, &gate, WAL_SEG_DATA, &res); /* from 0 would ask for all at once */
    assert_int_equal(res.st, CAIRN_ECORRUPT);
    char name[64];
    wal_seg_name(name, sizeof name, 1, 4 * SEG);
    assert_non_null(strstr(res.msg, name));
    assert_non_null(strstr(res.msg, "failed by the test"));
    size_t want = first_in_seg(4 * SEG);
    assert_int_equal(res.n, want);
    for (size_t i = 0; i < want; i++)
        assert_int_equal(res.r[i].lsn, g_recs[i].lsn);
    printf("  gate failing at segment 4: %zu records, then %s: %s\n", res.n,
           cairn_status_name(res.st), res.msg);
    result_free(&res);

    /* at the open: the reader is not made */
    lazy_init(z, SIZE_MAX);
    z->fail_at = 0;
    z->fail_st = CAIRN_EIO;
    read_log(g_dst, &gate, 0, &res);
    assert_int_equal(res.st, CAIRN_EIO);
    assert_non_null(strstr(res.msg, "failed by the test"));
    assert_int_equal(res.n, 0);
    assert_int_equal(dst_count(), 0);
    result_free(&res);

    /* only at the end decision: every record, then no end but the error */
    lazy_init(z, SIZE_MAX);
    z->fail_at_end = true;
    z->fail_st = CAIRN_ENOTFOUND;
    read_log(g_dst, &gate, 1 * SEG + WAL_SEG_DATA, &res);
    assert_int_equal(res.st, CAIRN_ENOTFOUND);
    assert_non_null(strstr(res.msg, "the rest of timeline 1"));
    assert_int_equal(res.n, g_nrecs - first_in_seg(1 * SEG));
    result_free(&res);
    free(z);
}

/* ---- 4. no gate ---------------------------------------------------------- */

static void test_none(void **state)
{
    (void)state;
    struct result a, b;
    read_log(g_src, NULL, 0, &a);
    wal_reader *r = NULL;
    /* NULL gate */
    assert_int_equal(wal_reader_open_gated(g_src, 1, 0, NULL, &r), CAIRN_OK);
    wal_reader_close(r);
    struct wal_seg_gate nowait = {.wait = NULL, .ctx = NULL};
    read_log(g_src, &nowait, 0, &b);
    expect_same(&a, &b, "a gate without a wait function");
    /* and a missing segment still ends or fails as without a gate */
    assert_int_equal(wal_reader_open_gated(g_dst, 2, 0, &nowait, &r), CAIRN_ENOTFOUND);
    result_free(&a);
    result_free(&b);
}

int main(void)
{
    cairn_set_log(NULL, NULL, CAIRN_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same),
        cmocka_unit_test(test_ends),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_none),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
