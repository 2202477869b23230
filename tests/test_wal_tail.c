/*
 * test_wal_tail.c — the torn-tail corpus (after PostgreSQL's
 * 039_end_of_wal): a log is written, then damaged in one way at a time;
 * the reader must end exactly at the damaged record with the torn tail
 * reported, wal_truncate_tail must leave a log that reads cleanly to that
 * point and takes new appends; damage before the durable point must be
 * CAIRN_ECORRUPT naming the segment file and offset.
 *
 * The log (seg_shift 21, durability NONE so that the writer syncs only
 * when told to):
 *   A  filler over ~2.2 MiB (two segments), flushed
 *   B  units up to a chosen distance from a segment end, flushed
 *   C  60 single records of varying sizes, written in one batch at close
 * Records of B carry durable hint = end of A, records of C = end of B:
 * damage in C is a torn tail, damage in A or B is corruption.
 * Layout "inside": C lies inside one segment. Layout "cross": C starts
 * ~6 KiB before a segment end and continues in the next segment.
 */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/io.h"
#include "common/util.h"
#include "wal/wal.h"

#include "testutil.h"

#define SHIFT 21u
#define SEG (1ull << SHIFT)
#define DB_ID 0x7A11ull
#define NC 60

static char g_dir[256];

struct lrec {
    uint64_t lsn, end; /* end: padded */
    uint32_t len;
    uint64_t id;
};

static struct lrec recs[40000];
static size_t nrecs;
static size_t c_first; /* index of C's first record */
static unsigned g_cases, g_truncated;
static size_t g_cmp_limit = SIZE_MAX; /* records read_log compares */
static uint64_t end_a, end_b, log_end; /* record ends */
static uint64_t log_stop; /* where the reader ends the undamaged log (after C's PAD) */

/* a copy of every file of the directory */
struct snapfile {
    char name[64];
    uint8_t *data;
    size_t len;
};
static struct snapfile snap[16];
static size_t nsnap;

static void make_dir(void)
{
    assert_int_equal(tu_tmpbase(g_dir, sizeof g_dir, "wal_tail"), 0);
}

static void seg_file(char *buf, size_t n, uint64_t lsn)
{
    char name[64];
    wal_seg_name(name, sizeof name, 1, lsn & ~(SEG - 1));
    snprintf(buf, n, "%s/%s", g_dir, name);
}

/* Ranges changed since the last restore (restored from the snapshot). */
static struct {
    uint64_t lsn, n;
} dirty[64];
static size_t ndirty;
static bool dirty_all; /* files were truncated, removed or appended to */

static void write_at(uint64_t lsn, const void *p, size_t n)
{
    char path[1024];
    seg_file(path, sizeof path, lsn);
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, p, n, (off_t)(lsn & (SEG - 1))), (ssize_t)n);
    close(fd);
}

/* ---- building the log ------------------------------------------------- */

static struct wal_writer_opts writer_opts(cairn_durability dur)
{
    struct wal_writer_opts o = {
        .waldir = g_dir,
        .timeline = 1,
        .seg_shift = SHIFT,
        .db_id = DB_ID,
        .io = CAIRN_IO_DEFAULT,
        .durability = dur,
    };
    return o;
}

static void append_one(wal_writer *w, const uint8_t *b, size_t n, uint64_t id)
{
    uint64_t first, last, end;
    assert_int_equal(wal_writer_append(w, b, n, &first, &last, &end), CAIRN_OK);
    assert_int_equal(first, last);
    assert_true(nrecs < CAIRN_ARRAY_LEN(recs));
    recs[nrecs++] = (struct lrec){.lsn = first, .end = end, .len = ld32(b + 4), .id = id};
}

static size_t enc_upsert(uint8_t *b, uint64_t id, uint32_t dim, uint32_t plen)
{
    float v[512];
    char pl[4096];
    for (uint32_t i = 0; i < dim; i++)
        v[i] = (float)(id * 3 + i);
    for (uint32_t i = 0; i < plen; i++)
        pl[i] = (char)('a' + (id + i) % 26);
    return wal_enc_upsert(b, 1, id, id, v, dim, pl, plen);
}

static uint64_t seg_left(uint64_t pos)
{
    return SEG - WAL_REC_HDR - (pos & (SEG - 1));
}

/* layout: 0 inside a segment, 1 crossing into the next one */
static void build_log(int layout)
{
    nrecs = 0;
    struct wal_writer_opts o = writer_opts(CAIRN_DURABILITY_NONE);
    wal_writer *w = NULL;
    assert_int_equal(wal_writer_open(&o, 0, &w), CAIRN_OK);
    static uint8_t b[8192];
    uint64_t id = 1;
    /* A */
    while (wal_writer_end_lsn(w) < SEG + SEG / 10) {
        size_t n = enc_upsert(b, id, 64, (uint32_t)(id % 300));
        append_one(w, b, n, id++);
    }
    assert_int_equal(wal_writer_flush(w), CAIRN_OK);
    end_a = wal_writer_end_lsn(w);
    /* B: up to `target` bytes before the end of the segment */
    uint64_t target = layout == 0 ? SEG / 4 : 6000;
    for (int i = 0; i < 50 || seg_left(wal_writer_end_lsn(w)) > target; i++) {
        uint64_t left = seg_left(wal_writer_end_lsn(w));
        size_t n;
        if (i >= 50 && left - target < 4096)
            n = wal_enc_delete(b, 1, id, id); /* 48 bytes: fine steps */
        else
            n = enc_upsert(b, id, 16, (uint32_t)(id % 97));
        append_one(w, b, n, id++);
    }
    assert_int_equal(wal_writer_flush(w), CAIRN_OK);
    end_b = wal_writer_end_lsn(w);
    /* C: one batch, written at close */
    c_first = nrecs;
    for (int i = 0; i < NC; i++) {
        size_t n = enc_upsert(b, id, (uint32_t)(i % 5) * 8, (uint32_t)(i * 11 % 173));
        append_one(w, b, n, id++);
    }
    log_end = wal_writer_end_lsn(w);
    log_stop = wal_after_flush(log_end, SHIFT);
    assert_int_equal(wal_writer_close(w), CAIRN_OK);
    if (layout == 1)
        assert_true(recs[nrecs - 1].lsn >> SHIFT == (recs[c_first].lsn >> SHIFT) + 1);
    else
        assert_true(recs[nrecs - 1].lsn >> SHIFT == recs[c_first].lsn >> SHIFT);
}

static void snapshot(void)
{
    nsnap = 0;
    DIR *d = opendir(g_dir);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        assert_true(nsnap < CAIRN_ARRAY_LEN(snap));
        struct snapfile *f = &snap[nsnap++];
        snprintf(f->name, sizeof f->name, "%.63s", de->d_name);
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", g_dir, f->name);
        f->data = tu_read_file(p, &f->len);
        if (!f->data)
            fail_msg("%s", tu_error());
    }
    closedir(d);
}

static void snapshot_free(void)
{
    for (size_t i = 0; i < nsnap; i++)
        free(snap[i].data);
    nsnap = 0;
}

static const uint8_t *snap_at(uint64_t lsn);

static void restore(void)
{
    if (!dirty_all) {
        for (size_t i = 0; i < ndirty; i++)
            write_at(dirty[i].lsn, snap_at(dirty[i].lsn), dirty[i].n);
        ndirty = 0;
        return;
    }
    ndirty = 0;
    dirty_all = false;
    DIR *d = opendir(g_dir);
    struct dirent *de;
    char p[1024];
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        snprintf(p, sizeof p, "%s/%s", g_dir, de->d_name);
        unlink(p);
    }
    closedir(d);
    for (size_t i = 0; i < nsnap; i++) {
        snprintf(p, sizeof p, "%s/%.63s", g_dir, snap[i].name);
        FILE *fp = fopen(p, "wb");
        assert_non_null(fp);
        assert_int_equal(fwrite(snap[i].data, 1, snap[i].len, fp), snap[i].len);
        fclose(fp);
    }
}

/* The snapshot's copy of the byte range [lsn, lsn + n). */
static const uint8_t *snap_at(uint64_t lsn)
{
    char name[64];
    wal_seg_name(name, sizeof name, 1, lsn & ~(SEG - 1));
    for (size_t i = 0; i < nsnap; i++)
        if (strcmp(snap[i].name, name) == 0)
            return snap[i].data + (lsn & (SEG - 1));
    fail_msg("no segment for LSN %llu", (unsigned long long)lsn);
    return NULL;
}

/* ---- damaging ----------------------------------------------------------- */

static void put_bytes(uint64_t lsn, const void *p, size_t n)
{
    assert_true((lsn & (SEG - 1)) + n <= SEG);
    if (ndirty < CAIRN_ARRAY_LEN(dirty)) {
        dirty[ndirty].lsn = lsn;
        dirty[ndirty].n = n;
        ndirty++;
    } else {
        dirty_all = true;
    }
    write_at(lsn, p, n);
}

/* Zeroes the log from lsn to its end (everything after is zero anyway). */
static void zero_from(uint64_t lsn)
{
    static const uint8_t zeros[SEG];
    for (uint64_t s = lsn & ~(SEG - 1); s < log_stop; s += SEG) {
        uint64_t a = CAIRN_MAX(lsn, s + WAL_SEG_DATA), b = CAIRN_MIN(log_stop, s + SEG);
        if (a < b)
            put_bytes(a, zeros, b - a);
    }
}

/* Nonzero bytes from lsn on (its segment's rest, later segments after
 * their header): an independent count of what the reader calls garbage. */
static uint64_t nonzero_from(uint64_t lsn, uint32_t *segs_with_data)
{
    uint64_t n = 0;
    *segs_with_data = 0;
    uint8_t *buf = malloc(SEG);
    for (uint64_t s = lsn & ~(SEG - 1);; s += SEG) {
        char path[1024];
        seg_file(path, sizeof path, s);
        FILE *fp = fopen(path, "rb");
        if (!fp)
            break;
        size_t got = fread(buf, 1, SEG, fp);
        fclose(fp);
        uint64_t from = s == (lsn & ~(SEG - 1)) ? (lsn & (SEG - 1)) : WAL_SEG_DATA;
        uint64_t k = 0;
        for (uint64_t i = from; i < got; i++)
            k += buf[i] != 0;
        if (k && s != (lsn & ~(SEG - 1)))
            (*segs_with_data)++;
        n += k;
    }
    free(buf);
    return n;
}

/* ---- checking ----------------------------------------------------------- */

/* LSN of the first record with a nonzero byte (within its len) in
 * [a, a + n): the first one zeroing that range damages. */
static uint64_t first_hit(uint64_t a, uint64_t n)
{
    for (size_t i = 0; i < nrecs; i++) {
        uint64_t lo = CAIRN_MAX(a, recs[i].lsn), hi = CAIRN_MIN(a + n, recs[i].lsn + recs[i].len);
        for (uint64_t x = lo; x < hi; x++)
            if (snap_at(x)[0])
                return recs[i].lsn;
    }
    fail_msg("no record hit by [%llu, +%llu)", (unsigned long long)a, (unsigned long long)n);
    return 0;
}

/* Reads the log; returns the status; *n records read, *end filled. */
static cairn_status read_log(size_t *n, struct wal_end *end)
{
    wal_reader *r = NULL;
    cairn_status st = wal_reader_open(g_dir, 1, 0, &r);
    if (st)
        return st;
    *n = 0;
    for (;;) {
        struct wal_record rec;
        bool e = false;
        st = wal_reader_next(r, &rec, &e);
        if (st || e)
            break;
        if (*n < nrecs && *n < g_cmp_limit) {
            assert_int_equal(rec.lsn, recs[*n].lsn);
            if (rec.len != recs[*n].len) fail_msg("case %u: record %zu at LSN %llu: len %u, expected %u", g_cases, *n, (unsigned long long)rec.lsn, rec.len, recs[*n].len);
        }
        (*n)++;
    }
    if (!st)
        *end = *wal_reader_end(r);
    wal_reader_close(r);
    return st;
}

/* Index of the first record at or after lsn (nrecs if none). */
static size_t rec_index(uint64_t lsn)
{
    size_t i = 0;
    while (i < nrecs && recs[i].lsn < lsn)
        i++;
    return i;
}


/* The damaged log must end exactly at `at` (a record position), with torn
 * reported iff any nonzero byte lies at/after it. With `full`, the tail is
 * truncated, the log re-read and appended to. Restores the log after. */
static void expect_end(uint64_t at, bool full, const char *what)
{
    g_cases++;
    size_t n = 0;
    struct wal_end e;
    cairn_status st = read_log(&n, &e);
    if (st)
        fail_msg("%s: reader failed: %s: %s", what, cairn_status_name(st),
                 cairn_last_error());
    uint32_t segs = 0;
    uint64_t garbage = nonzero_from(at, &segs);
    if (e.end_lsn != at)
        fail_msg("%s: log ends at %llu, expected %llu", what,
                 (unsigned long long)e.end_lsn, (unsigned long long)at);
    assert_int_equal(n, rec_index(at));
    assert_int_equal(e.torn, garbage > 0);
    assert_int_equal(e.garbage_bytes, garbage);
    assert_int_equal(e.segments_after, segs);
    assert_int_equal(e.seg_offset, at & (SEG - 1));
    char path[1024];
    seg_file(path, sizeof path, at);
    assert_string_equal(e.seg_path, path);
    if (full) {
        g_truncated++;
        dirty_all = true;
        assert_int_equal(wal_truncate_tail(g_dir, 1, &e), CAIRN_OK);
        struct wal_end e2;
        size_t n2 = 0;
        assert_int_equal(read_log(&n2, &e2), CAIRN_OK);
        assert_int_equal(n2, n);
        assert_int_equal(e2.end_lsn, at);
        assert_false(e2.torn);
        assert_int_equal(e2.garbage_bytes, 0);
        assert_int_equal(e2.segments_after, 0);
        /* and it takes appends where it ended */
        struct wal_writer_opts o = writer_opts(CAIRN_DURABILITY_SYNC);
        wal_writer *w = NULL;
        assert_int_equal(wal_writer_open(&o, at, &w), CAIRN_OK);
        uint8_t b[1024];
        size_t len = enc_upsert(b, 999999, 8, 40);
        len += wal_enc_commit(b + len, 999999, 1, 1);
        uint64_t first, last, end;
        assert_int_equal(wal_writer_append(w, b, len, &first, &last, &end), CAIRN_OK);
        /* the open padded the block the log ended in */
        assert_int_equal(first, wal_after_flush(at, SHIFT));
        assert_int_equal(wal_writer_wait(w, end), CAIRN_OK);
        assert_int_equal(wal_writer_close(w), CAIRN_OK);
        g_cmp_limit = n;
        assert_int_equal(read_log(&n2, &e2), CAIRN_OK);
        g_cmp_limit = SIZE_MAX;
        assert_int_equal(n2, n + 2);
        assert_int_equal(e2.end_lsn, wal_after_flush(end, SHIFT));
        assert_false(e2.torn);
    }
    restore();
}

static void expect_corrupt(uint64_t at, const char *what)
{
    g_cases++;
    size_t n = 0;
    struct wal_end e;
    cairn_status st = read_log(&n, &e);
    if (st != CAIRN_ECORRUPT)
        fail_msg("%s: expected CAIRN_ECORRUPT, got %s (end %llu)", what,
                 cairn_status_name(st), (unsigned long long)(st ? 0 : e.end_lsn));
    char path[1024], want[1200];
    seg_file(path, sizeof path, at);
    snprintf(want, sizeof want, "\"%s\" at offset %llu: invalid record followed by durable "
             "records; run pitrctl verify", path, (unsigned long long)(at & (SEG - 1)));
    if (!strstr(cairn_last_error(), want))
        fail_msg("%s: message \"%s\" lacks \"%s\"", what, cairn_last_error(), want);
    assert_int_equal(n, rec_index(at));
    restore();
}

/* ---- the corpus ----------------------------------------------------------- */

static void damage_record(size_t k, bool full)
{
    const struct lrec *r = &recs[k];
    char what[128];
    uint32_t v;

    snprintf(what, sizeof what, "record %zu: zero length", k);
    v = 0;
    put_bytes(r->lsn + 4, &v, 4);
    expect_end(r->lsn, full, what);

    snprintf(what, sizeof what, "record %zu: short length", k);
    v = WAL_REC_HDR - 8;
    put_bytes(r->lsn + 4, &v, 4);
    expect_end(r->lsn, false, what);
    v = r->len - 8;
    put_bytes(r->lsn + 4, &v, 4);
    expect_end(r->lsn, false, what);

    snprintf(what, sizeof what, "record %zu: oversized length", k);
    v = WAL_REC_MAX + 8;
    put_bytes(r->lsn + 4, &v, 4);
    expect_end(r->lsn, false, what);
    v = (uint32_t)(SEG - (r->lsn & (SEG - 1)) + 8); /* beyond its segment */
    put_bytes(r->lsn + 4, &v, 4);
    expect_end(r->lsn, full, what);

    snprintf(what, sizeof what, "record %zu: bad crc", k);
    uint8_t x = snap_at(r->lsn + r->len - 1)[0] ^ 0x40;
    put_bytes(r->lsn + r->len - 1, &x, 1); /* last byte covered by the crc */
    expect_end(r->lsn, full, what);
    x = snap_at(r->lsn)[0] ^ 0x01;
    put_bytes(r->lsn, &x, 1);
    expect_end(r->lsn, false, what);

    snprintf(what, sizeof what, "record %zu: stale record from another LSN", k);
    /* a valid record of the first segment, copied over this one */
    const struct lrec *old = &recs[3];
    put_bytes(r->lsn, snap_at(old->lsn),
              CAIRN_MIN(old->end - old->lsn, SEG - (r->lsn & (SEG - 1))));
    expect_end(r->lsn, full, what);

    snprintf(what, sizeof what, "record %zu: stale record of an older segment", k);
    /* the same record at the same LSN, sealed with another salt: what an
     * earlier use of this segment file would have left */
    {
        uint8_t *copy = malloc(r->end - r->lsn);
        memcpy(copy, snap_at(r->lsn), r->end - r->lsn);
        wal_rec_seal(copy, r->lsn, ld64(copy + 32), 0x12345678u);
        put_bytes(r->lsn, copy, r->end - r->lsn);
        free(copy);
    }
    expect_end(r->lsn, false, what);
}

static void run_corpus(int layout)
{
    make_dir();
    build_log(layout);
    snapshot();
    g_cases = g_truncated = 0;

    /* the undamaged log */
    expect_end(log_stop, false, "undamaged");

    /* the PAD closing the last flush lost or damaged (its flush never
     * completed): the log ends inside a block, at the last record; the
     * writer opening there pads that block before anything else */
    assert_true(wal_pad_to(log_end) != log_end);
    zero_from(log_end);
    expect_end(log_end, true, "closing PAD lost");
    uint8_t px = snap_at(log_end + 1)[0] ^ 0x20; /* its crc */
    put_bytes(log_end + 1, &px, 1);
    expect_end(log_end, true, "closing PAD damaged");
    {
        /* a whole, sealed PAD that does not end on a block boundary */
        size_t plen = (size_t)(wal_pad_to(log_end) - log_end);
        uint8_t *pad = malloc(plen);
        memcpy(pad, snap_at(log_end), plen);
        st32(pad + 4, (uint32_t)plen - 8);
        wal_rec_seal(pad, log_end, ld64(pad + 32), ld32(snap_at(log_end & ~(SEG - 1)) + 40));
        put_bytes(log_end, pad, plen);
        free(pad);
        expect_end(log_end, true, "closing PAD ends off a block boundary");
    }

    /* each kind of damage on each of the last three records and on C's
     * first record (its later records carry hints that do not exceed it) */
    damage_record(nrecs - 1, true);
    damage_record(nrecs - 2, true);
    damage_record(nrecs - 3, false);
    damage_record(c_first, true);
    damage_record(c_first + NC / 2, false);

    /* a record header split across a 512-byte sector boundary, the second
     * sector lost */
    unsigned split = 0;
    for (size_t k = c_first; k < nrecs; k++) {
        uint64_t off = recs[k].lsn & 511;
        if (off + WAL_REC_HDR <= 512)
            continue;
        uint64_t boundary = (recs[k].lsn | 511) + 1;
        static const uint8_t zeros[512];
        put_bytes(boundary, zeros, 512);
        char what[96];
        snprintf(what, sizeof what, "record %zu: header split at sector %llu", k,
                 (unsigned long long)boundary);
        expect_end(first_hit(boundary, 512), split == 0, what);
        split++;
    }
    assert_true(split >= 1);

    /* truncation at every byte of the last three records */
    for (size_t k = nrecs - 3; k < nrecs; k++) {
        for (uint64_t x = recs[k].lsn; x < recs[k].end; x++) {
            zero_from(x);
            char what[96];
            snprintf(what, sizeof what, "record %zu: zeroed from byte %llu", k,
                     (unsigned long long)(x - recs[k].lsn));
            /* zeroing only the padding leaves the record whole */
            uint64_t at = x < recs[k].lsn + recs[k].len ? recs[k].lsn : recs[k].end;
            expect_end(at, (x - recs[k].lsn) % 37 == 5, what);
        }
    }

    /* corruption before the durable point */
    for (size_t k = 0; k < c_first; k += c_first / 7) {
        uint8_t x = snap_at(recs[k].lsn + recs[k].len - 1)[0] ^ 0x04;
        put_bytes(recs[k].lsn + recs[k].len - 1, &x, 1);
        char what[64];
        snprintf(what, sizeof what, "record %zu (durable): flipped byte", k);
        expect_corrupt(recs[k].lsn, what);
    }
    /* the last record of B: C's records say it was durable */
    {
        size_t k = c_first - 1;
        uint32_t v = 0;
        put_bytes(recs[k].lsn + 4, &v, 4);
        expect_corrupt(recs[k].lsn, "last record of B zeroed length");
        uint64_t sector = recs[k].lsn & ~511ull;
        static const uint8_t zeros[512];
        put_bytes(sector, zeros, 512);
        expect_corrupt(first_hit(sector, 512), "sector of B zeroed");
    }
    print_message("layout %s: %u damaged logs checked, %u truncated and appended to\n",
                  layout ? "cross" : "inside", g_cases, g_truncated);
    snapshot_free();
    tu_rm_rf(g_dir);
}

static void test_corpus_inside(void **state)
{
    (void)state;
    run_corpus(0);
}

static void test_corpus_cross(void **state)
{
    (void)state;
    run_corpus(1);
}

/* Segment-level damage: missing segments, bad headers. */
static void test_segments(void **state)
{
    (void)state;
    make_dir();
    build_log(1);
    snapshot();
    char path[1024];
    uint64_t last_seg = recs[nrecs - 1].lsn & ~(SEG - 1);

    /* The segment C continues in is lost: the log ends after the SWITCH, at
     * that segment's first record position, and takes appends there. */
    seg_file(path, sizeof path, last_seg);
    dirty_all = true;
    unlink(path);
    {
        char next[1024];
        seg_file(next, sizeof next, last_seg + SEG);
        unlink(next); /* the preallocated one after it too */
    }
    expect_end(last_seg + WAL_SEG_DATA, true, "last segment missing");

    /* A segment in the middle is missing while later ones hold data. */
    seg_file(path, sizeof path, SEG);
    dirty_all = true;
    unlink(path);
    size_t n;
    struct wal_end e;
    assert_int_equal(read_log(&n, &e), CAIRN_ECORRUPT);
    assert_non_null(strstr(cairn_last_error(), path));
    assert_non_null(strstr(cairn_last_error(), "missing"));
    restore();

    /* A bad header in the middle of the log names its file. The byte is
     * flipped, not set: the header crc depends on the random salt, so any
     * fixed value would already be there one time in 256. */
    seg_file(path, sizeof path, SEG);
    uint8_t junk = (uint8_t)(snap_at(SEG + 61)[0] ^ 0x5A);
    put_bytes(SEG + 61, &junk, 1);
    assert_int_equal(read_log(&n, &e), CAIRN_ECORRUPT);
    assert_non_null(strstr(cairn_last_error(), path));
    restore();

    /* A newer format version. */
    {
        uint8_t hb[WAL_SEG_HDR];
        memcpy(hb, snap_at(SEG), WAL_SEG_HDR);
        struct wal_seg_header h;
        assert_int_equal(wal_seg_header_decode(hb, &h, "x"), CAIRN_OK);
        h.version = WAL_FORMAT_VERSION + 1;
        wal_seg_header_encode(hb, &h);
        put_bytes(SEG, hb, WAL_SEG_HDR);
        assert_int_equal(read_log(&n, &e), CAIRN_EVERSION);
        assert_non_null(strstr(cairn_last_error(), path));
        restore();
    }

    /* Reading from a given LSN. */
    {
        wal_reader *r = NULL;
        size_t k = c_first;
        assert_int_equal(wal_reader_open(g_dir, 1, recs[k].lsn, &r), CAIRN_OK);
        assert_int_equal(wal_reader_seg_shift(r), SHIFT);
        struct wal_record rec;
        bool end = false;
        assert_int_equal(wal_reader_next(r, &rec, &end), CAIRN_OK);
        assert_false(end);
        assert_int_equal(rec.lsn, recs[k].lsn);
        wal_reader_close(r);
        assert_int_equal(wal_reader_open(g_dir, 1, 40 * SEG + 64, &r), CAIRN_ENOTFOUND);
        assert_int_equal(wal_reader_open(g_dir, 2, 0, &r), CAIRN_ENOTFOUND);
    }
    snapshot_free();
    tu_rm_rf(g_dir);
}

int main(void)
{
    /* every truncation logs a warning; keep the output readable */
    cairn_set_log(NULL, NULL, CAIRN_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_corpus_inside),
        cmocka_unit_test(test_corpus_cross),
        cmocka_unit_test(test_segments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
