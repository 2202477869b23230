/*
 * test_wal_writer.c — the WAL writer: append and read back, segment
 * rollover with SWITCH records, group commit from 16 threads, on_durable
 * order, both I/O backends, durability modes, reopening at the end of the
 * log, and poisoning after an injected I/O failure. Direct I/O: segments
 * written with O_DIRECT (an O_DIRECT descriptor in /proc/self/fdinfo, and
 * the pages of large writes not in the page cache, checked with mincore),
 * writes at unaligned LSNs (partial blocks buffered, whole blocks of large
 * writes direct) across many commits and a segment switch, reopening in the
 * middle of a block (bytes already in the file stay byte for byte), the
 * buffered path (CAIRN_WAL_BUFFERED=1), SHORT faults on O_DIRECT writes,
 * and a power loss that garbles every unsynced sector (the crash simulator)
 * leaving every synced record intact: no write covers a durable byte.
 */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/io.h"
#include "common/util.h"
#include "wal/wal.h"

#include "testutil.h"

#define DB_ID 0xC0FFEE1234ull

static char g_dir[512];

static int setup_dir(void **state)
{
    (void)state;
    return tu_tmpbase(g_dir, sizeof g_dir, "wal_writer");
}

static int teardown_dir(void **state)
{
    (void)state;
    cio_fault_set(NULL);
    tu_rm_rf(g_dir);
    return 0;
}

/* ---- log sink: errors are expected in the fault tests ------------------- */

static int g_log_errors;
static char g_log_last[1024];

static void log_sink(void *ctx, cairn_log_level level, const char *msg)
{
    (void)ctx;
    if (level >= CAIRN_LOG_ERROR) {
        __atomic_add_fetch(&g_log_errors, 1, __ATOMIC_RELAXED);
        snprintf(g_log_last, sizeof g_log_last, "%s", msg);
    }
}

/* ---- on_durable bookkeeping ------------------------------------------- */

struct dur_ctx {
    pthread_mutex_t mu;
    uint64_t last;
    uint64_t calls;
    int out_of_order;
    int inside;     /* threads in on_dur now */
    int overlapped; /* calls that found another one running */
};

/* on_durable contract (wal.h): calls come in increasing LSN order and never
 * overlap; they may come from the flusher or from a committing thread that
 * led the flush. Overlap is counted before taking the mutex, and the yield
 * widens the window in which a second caller would show. */
static void on_dur(void *ctx, uint64_t lsn)
{
    struct dur_ctx *d = ctx;
    if (__atomic_add_fetch(&d->inside, 1, __ATOMIC_ACQ_REL) != 1)
        __atomic_add_fetch(&d->overlapped, 1, __ATOMIC_RELAXED);
    sched_yield();
    pthread_mutex_lock(&d->mu);
    if (lsn <= d->last)
        d->out_of_order++;
    d->last = lsn;
    d->calls++;
    pthread_mutex_unlock(&d->mu);
    __atomic_sub_fetch(&d->inside, 1, __ATOMIC_ACQ_REL);
}

static struct wal_writer_opts opts(uint32_t shift, cairn_io_backend io,
                                   cairn_durability dur, struct dur_ctx *d)
{
    struct wal_writer_opts o = {
        .waldir = g_dir,
        .timeline = 1,
        .seg_shift = shift,
        .db_id = DB_ID,
        .io = io,
        .durability = dur,
        .async_flush_ms = 5,
        .on_durable = d ? on_dur : NULL,
        .ctx = d,
    };
    return o;
}

/* ---- reading back ------------------------------------------------------ */

struct rd {
    uint64_t *lsn;
    uint64_t *end;
    uint64_t *id; /* UPSERT/DELETE id, COMMIT txn */
    uint8_t *type;
    size_t n, cap;
    struct wal_end wend;
};

static void rd_free(struct rd *r)
{
    free(r->lsn);
    free(r->end);
    free(r->id);
    free(r->type);
    memset(r, 0, sizeof *r);
}

/* Reads the whole log; checks each UPSERT's payload and vector against
 * its id. */
static cairn_status read_all(struct rd *out)
{
    memset(out, 0, sizeof *out);
    wal_reader *r = NULL;
    cairn_status st = wal_reader_open(g_dir, 1, 0, &r);
    if (st)
        return st;
    assert_int_equal(wal_reader_db_id(r), DB_ID);
    for (;;) {
        struct wal_record rec;
        bool end = false;
        st = wal_reader_next(r, &rec, &end);
        if (st || end)
            break;
        if (out->n == out->cap) {
            out->cap = out->cap ? out->cap * 2 : 1024;
            out->lsn = realloc(out->lsn, out->cap * sizeof *out->lsn);
            out->end = realloc(out->end, out->cap * sizeof *out->end);
            out->id = realloc(out->id, out->cap * sizeof *out->id);
            out->type = realloc(out->type, out->cap);
        }
        assert_int_not_equal(rec.type, WAL_REC_SWITCH);
        uint64_t id = 0;
        if (rec.type == WAL_REC_UPSERT) {
            struct wal_upsert u;
            assert_int_equal(wal_dec_upsert(&rec, &u), CAIRN_OK);
            id = u.id;
            for (uint32_t i = 0; i < u.dim && i < 8; i++)
                assert_true(u.vec[i] == (float)(id + i));
            if (u.payload_len) {
                char want[32];
                int k = snprintf(want, sizeof want, "{\"id\":%llu}", (unsigned long long)id);
                if (u.payload_len < 1000) {
                    assert_int_equal(u.payload_len, k);
                    assert_memory_equal(u.payload, want, (size_t)k);
                }
            }
        } else if (rec.type == WAL_REC_DELETE) {
            assert_int_equal(wal_dec_delete(&rec, &id), CAIRN_OK);
        } else if (rec.type == WAL_REC_COMMIT) {
            struct wal_commit c;
            assert_int_equal(wal_dec_commit(&rec, &c), CAIRN_OK);
            id = rec.txn_id;
        }
        assert_true(rec.durable_hint <= rec.lsn);
        out->lsn[out->n] = rec.lsn;
        out->end[out->n] = rec.lsn + CAIRN_ALIGN_UP(rec.len, 8u);
        out->id[out->n] = id;
        out->type[out->n] = rec.type;
        out->n++;
    }
    if (!st)
        out->wend = *wal_reader_end(r);
    wal_reader_close(r);
    return st;
}

/* The writer's position after a flush of a log whose last record ends at
 * `end`: the end of the PAD closing its block. */
static uint64_t padded(uint64_t end)
{
    return wal_pad_to(end);
}

/* Where a reader finds the end of a log whose last record ends at `end`
 * after a flush: past the PAD (in the next segment when the PAD fills its
 * segment). */
static uint64_t read_end(uint64_t end)
{
    return wal_after_flush(end, 21);
}

/* Whether the log may go on at `next` after a record ending at `end`: right
 * after it, after a PAD closing its block, or at the first record position
 * of the next segment (after a SWITCH, or a PAD reaching the segment end). */
static bool may_follow(uint64_t end, uint64_t next, uint64_t seg)
{
    if (next == end || (next == wal_pad_to(end) && next % seg != 0))
        return true;
    return next % seg == WAL_SEG_DATA && next / seg == end / seg + 1 &&
           end % seg + WAL_REC_HDR <= seg;
}

/* LSNs strictly increasing and contiguous within segments, but for PADs
 * to a block boundary; a gap only to the first record position of the next
 * segment. */
static void check_contiguous(const struct rd *r, uint32_t shift, uint64_t first)
{
    uint64_t seg = 1ull << shift;
    uint64_t expect = first;
    for (size_t i = 0; i < r->n; i++) {
        if (!may_follow(expect, r->lsn[i], seg))
            fail_msg("record %zu at LSN %" PRIu64 " cannot follow the one ending at %" PRIu64,
                     i, r->lsn[i], expect);
        expect = r->end[i];
    }
    if (r->n && !may_follow(expect, r->wend.end_lsn, seg))
        fail_msg("the log ends at %" PRIu64 " after a record ending at %" PRIu64,
                 r->wend.end_lsn, expect);
}

/* One unit: UPSERT(id) + COMMIT(txn = id). Returns its size. */
static size_t enc_unit(uint8_t *b, uint64_t id, uint32_t dim)
{
    float v[64];
    for (uint32_t i = 0; i < dim; i++)
        v[i] = (float)(id + i);
    char pl[32];
    int k = snprintf(pl, sizeof pl, "{\"id\":%llu}", (unsigned long long)id);
    size_t n = wal_enc_upsert(b, 1, id, id, v, dim, pl, (uint32_t)k);
    n += wal_enc_commit(b + n, id, (int64_t)id, 1);
    return n;
}

/* ---- tests --------------------------------------------------------------- */

static void basic_backend(cairn_io_backend io)
{
    struct dur_ctx d = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct wal_writer_opts o = opts(21, io, CAIRN_DURABILITY_SYNC, &d);
    wal_writer *w = NULL;
    assert_int_equal(wal_writer_open(&o, 0, &w), CAIRN_OK);
    if (io == CAIRN_IO_URING)
        assert_string_equal(wal_writer_io_name(w), "io_uring");
    if (io == CAIRN_IO_POSIX)
        assert_string_equal(wal_writer_io_name(w), "posix");
    assert_int_equal(wal_writer_end_lsn(w), WAL_SEG_DATA);
    assert_int_equal(wal_writer_durable_lsn(w), WAL_SEG_DATA);

    uint8_t b[4096];
    size_t n = wal_enc_create_coll(b, 1, 1, 4, 1, "c1", 2);
    n += wal_enc_commit(b + n, 1, 1, 1);
    uint64_t first, last, end;
    assert_int_equal(wal_writer_append(w, b, n, &first, &last, &end), CAIRN_OK);
    assert_int_equal(first, WAL_SEG_DATA);
    assert_int_equal(end, WAL_SEG_DATA + n);
    assert_int_equal(last, end - wal_enc_commit(NULL, 0, 0, 0));
    assert_int_equal(wal_writer_wait(w, end), CAIRN_OK);
    assert_true(wal_writer_durable_lsn(w) >= end);
    assert_true(d.last >= end);

    uint64_t prev_end = end;
    for (uint64_t id = 10; id < 110; id++) {
        n = enc_unit(b, id, 4);
        assert_int_equal(wal_writer_append(w, b, n, &first, &last, &end), CAIRN_OK);
        assert_int_equal(first, read_end(prev_end)); /* after the last flush's PAD */
        assert_int_equal(wal_writer_wait(w, end), CAIRN_OK);
        prev_end = end;
    }
    n = wal_enc_delete(b, 1, 200, 42);
    n += wal_enc_drop_coll(b + n, 1, 200);
    n += wal_enc_restore_point(b + n, 77, "rp1", 3);
    assert_int_equal(wal_writer_append(w, b, n, &first, &last, &end), CAIRN_OK);
    assert_int_equal(wal_writer_flush(w), CAIRN_OK);
    assert_true(wal_writer_disk_bytes(w) >= (2u << 20));
    assert_false(wal_writer_poisoned(w));
    uint64_t wend = wal_writer_end_lsn(w);
    assert_int_equal(wal_writer_close(w), CAIRN_OK);
    assert_int_equal(d.out_of_order, 0);
    assert_int_equal(d.overlapped, 0);
    assert_int_equal(d.last, padded(wend));

    struct rd r;
    assert_int_equal(read_all(&r), CAIRN_OK);
    assert_int_equal(r.n, 2 + 200 + 3);
    assert_int_equal(r.type[0], WAL_REC_CREATE_COLL);
    assert_int_equal(r.type[2], WAL_REC_UPSERT);
    assert_int_equal(r.id[2], 10);
    assert_int_equal(r.type[r.n - 1], WAL_REC_RESTORE_POINT);
    assert_int_equal(r.wend.end_lsn, read_end(wend));
    assert_false(r.wend.torn);
    assert_int_equal(r.wend.garbage_bytes, 0);
    assert_int_equal(r.wend.segments_after, 0);
    check_contiguous(&r, 21, WAL_SEG_DATA);
    rd_free(&r);

    /* end_lsn 0 on an existing log is refused */
    assert_int_equal(wal_writer_open(&o, 0, &w), CAIRN_EEXIST);
}

static void test_basic_posix(void **state)
{
    (void)state;
    basic_backend(CAIRN_IO_POSIX);
}

static void test_basic_uring(void **state)
{
    (void)state;
    if (!cio_uring_available())
        skip();
    basic_backend(CAIRN_IO_URING);
}

static void test_rollover(void **state)
{
    (void)state;
    struct dur_ctx d = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct wal_writer_opts o = opts(21, CAIRN_IO_DEFAULT, CAIRN_DURABILITY_SYNC, &d);
    wal_writer *w = NULL;
    assert_int_equal(wal_writer_open(&o, 0, &w), CAIRN_OK);
    size_t bigcap = WAL_REC_MAX;
    uint8_t *big = malloc(bigcap * 10 + 64);
    static float vec[65536];
    static char pl[1u << 20];
    uint8_t small[512];
    uint64_t id = 1, first, last, end;
    size_t nrec = 0;
    /* Small records fill ~6 segments, with near-max records in between. */
    for (int round = 0; round < 6; round++) {
        for (int i = 0; i < 3000; i++) {
            size_t n = enc_unit(small, id++, 8 + (uint32_t)(i % 50));
            assert_int_equal(wal_writer_append(w, small, n, &first, &last, &end), CAIRN_OK);
            nrec += 2;
        }
        /* one near-max record (a little under WAL_REC_MAX, varying) */
        for (uint32_t i = 0; i < 8; i++)
            vec[i] = (float)(id + i);
        uint32_t plen = (1u << 20) - (uint32_t)round * 4093u;
        memset(pl, 'p', plen);
        size_t n = wal_enc_upsert(big, 1, id, id, vec, 65536, pl, plen);
        id++;
        assert_int_equal(wal_writer_append(w, big, n, &first, &last, &end), CAIRN_OK);
        nrec++;
        if (round % 2)
            assert_int_equal(wal_writer_wait(w, end), CAIRN_OK);
    }
    /* One unit of ten max-size records (12.5 MiB): it switches segments
     * several times in the middle, outrunning the preallocator. */
    size_t n = 0;
    for (int k = 0; k < 10; k++) {
        for (uint32_t i = 0; i < 8; i++)
            vec[i] = (float)(id + i);
        memset(pl, 'q', sizeof pl);
        n += wal_enc_upsert(big + n, 1, 999999, id, vec, 65536, pl, sizeof pl);
        id++;
    }
    assert_int_equal(wal_writer_append(w, big, n, &first, &last, &end), CAIRN_OK);
    nrec += 10;
    assert_true(end - first > (12u << 20));
    assert_int_equal(wal_writer_wait(w, end), CAIRN_OK);
    uint64_t wend = wal_writer_end_lsn(w);
    assert_int_equal(wal_writer_close(w), CAIRN_OK);
    assert_int_equal(d.out_of_order, 0);
    free(big);

    uint64_t *starts = NULL;
    size_t nseg = 0;
    assert_int_equal(wal_seg_list(g_dir, 1, &starts, &nseg), CAIRN_OK);
    assert_true(nseg >= 8);
    for (size_t i = 0; i < nseg; i++)
        assert_int_equal(starts[i], (uint64_t)i << 21);
    free(starts);

    struct rd r;
    assert_int_equal(read_all(&r), CAIRN_OK);
    assert_int_equal(r.n, nrec);
    assert_int_equal(r.wend.end_lsn, read_end(wend));
    assert_false(r.wend.torn);
    check_contiguous(&r, 21, WAL_SEG_DATA);
    /* ids in append order */
    uint64_t want = 1;
    for (size_t i = 0; i < r.n; i++) {
        if (r.type[i] == WAL_REC_UPSERT) {
            assert_int_equal(r.id[i], want);
            want++;
        }
    }
    rd_free(&r);
}

/* ---- 16 threads --------------------------------------------------------- */

#define NTHREADS 16
#define PER_THREAD 400

struct gc_arg {
    wal_writer *w;
    int t;
    uint64_t ends[PER_THREAD];
    struct dur_ctx *d;
    int bad;
};

static void *gc_thread(void *p)
{
    struct gc_arg *a = p;
    uint8_t b[1024];
    for (int i = 0; i < PER_THREAD; i++) {
        uint64_t id = (uint64_t)a->t * 1000000 + (uint64_t)i + 1;
        size_t n = enc_unit(b, id, 16);
        uint64_t first, last, end;
        if (wal_writer_append(a->w, b, n, &first, &last, &end) != CAIRN_OK)
            a->bad++;
        if (wal_writer_wait(a->w, end) != CAIRN_OK)
            a->bad++;
        pthread_mutex_lock(&a->d->mu);
        if (a->d->last < end) /* applied (on_durable) before acknowledged */
            a->bad++;
        pthread_mutex_unlock(&a->d->mu);
        a->ends[i] = end;
    }
    return NULL;
}

static void group_commit(cairn_io_backend io, cairn_durability mode)
{
    struct dur_ctx d = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct wal_writer_opts o = opts(21, io, mode, &d);
    wal_writer *w = NULL;
    assert_int_equal(wal_writer_open(&o, 0, &w), CAIRN_OK);
    static struct gc_arg args[NTHREADS];
    pthread_t th[NTHREADS];
    uint64_t t0 = cairn_mono_us();
    for (int t = 0; t < NTHREADS; t++) {
        args[t] = (struct gc_arg){.w = w, .t = t, .d = &d};
        pthread_create(&th[t], NULL, gc_thread, &args[t]);
    }
    for (int t = 0; t < NTHREADS; t++)
        pthread_join(th[t], NULL);
    uint64_t us = cairn_mono_us() - t0;
    for (int t = 0; t < NTHREADS; t++)
        assert_int_equal(args[t].bad, 0);
    uint64_t calls = d.calls;
    assert_int_equal(wal_writer_close(w), CAIRN_OK);
    assert_int_equal(d.out_of_order, 0);
    assert_int_equal(d.overlapped, 0);
    print_message("%s, %s: %d threads x %d commits (append+wait): %.0f commits/s, "
                  "%.1f commits per group write\n",
                  io == CAIRN_IO_POSIX ? "posix" : "io_uring",
                  mode == CAIRN_DURABILITY_SYNC    ? "sync"
                  : mode == CAIRN_DURABILITY_ASYNC ? "async"
                                                   : "none",
                  NTHREADS, PER_THREAD,
                  NTHREADS * PER_THREAD * 1e6 / (double)us,
                  (double)(NTHREADS * PER_THREAD) / (double)(calls ? calls : 1));

    struct rd r;
    assert_int_equal(read_all(&r), CAIRN_OK);
    assert_int_equal(r.n, 2 * NTHREADS * PER_THREAD);
    check_contiguous(&r, 21, WAL_SEG_DATA);
    /* every unit present exactly once, UPSERT directly followed by its
     * COMMIT, and each thread's units in its own order */
    int *seen = calloc(NTHREADS * PER_THREAD, sizeof *seen);
    int last_i[NTHREADS];
    for (int t = 0; t < NTHREADS; t++)
        last_i[t] = -1;
    for (size_t i = 0; i < r.n; i += 2) {
        assert_int_equal(r.type[i], WAL_REC_UPSERT);
        assert_int_equal(r.type[i + 1], WAL_REC_COMMIT);
        assert_int_equal(r.id[i], r.id[i + 1]);
        int t = (int)(r.id[i] / 1000000);
        int k = (int)(r.id[i] % 1000000) - 1;
        assert_true(t >= 0 && t < NTHREADS && k >= 0 && k < PER_THREAD);
        assert_true(k > last_i[t]);
        last_i[t] = k;
        seen[t * PER_THREAD + k]++;
        assert_int_equal(r.end[i + 1], args[t].ends[k]);
    }
    for (int i = 0; i < NTHREADS * PER_THREAD; i++)
        assert_int_equal(seen[i], 1);
    free(seen);
    rd_free(&r);
}

static void test_group_commit_uring(void **state)
{
    (void)state;
    if (!cio_uring_available())
        skip();
    group_commit(CAIRN_IO_URING, CAIRN_DURABILITY_SYNC);
}

static void test_group_commit_posix(void **state)
{
    (void)state;
    group_commit(CAIRN_IO_POSIX, CAIRN_DURABILITY_SYNC);
}

/* Waiters in the other modes: a wait kicks the flusher. */
static void test_group_commit_async_none(void **state)
{
    (void)state;
    group_commit(CAIRN_IO_DEFAULT, CAIRN_DURABILITY_ASYNC);
    teardown_dir(state);
    setup_dir(state);
    group_commit(CAIRN_IO_DEFAULT, CAIRN_DURABILITY_NONE);
}

/* ---- reopen -------------------------------------------------------------- */

static void test_reopen(void **state)
{
    (void)state;
    struct wal_writer_opts o = opts(21, CAIRN_IO_DEFAULT, CAIRN_DURABILITY_SYNC, NULL);
    uint8_t b[1024];
    uint64_t id = 1, first, last, end = 0;
    for (int round = 0; round < 4; round++) {
        uint64_t at = 0;
        if (round > 0) {
            struct rd r;
            assert_int_equal(read_all(&r), CAIRN_OK);
            assert_int_equal(r.n, 2 * (id - 1));
            assert_int_equal(r.wend.end_lsn, read_end(end));
            assert_false(r.wend.torn);
            at = r.wend.end_lsn;
            rd_free(&r);
        }
        wal_writer *w = NULL;
        assert_int_equal(wal_writer_open(&o, at, &w), CAIRN_OK);
        if (at)
            assert_int_equal(wal_writer_end_lsn(w), at);
        /* round 2 crosses a segment boundary */
        int count = round == 2 ? 9000 : 700;
        for (int i = 0; i < count; i++) {
            size_t n = enc_unit(b, id++, 32);
            assert_int_equal(wal_writer_append(w, b, n, &first, &last, &end), CAIRN_OK);
            if (at && i == 0)
                assert_int_equal(first, at);
        }
        assert_int_equal(wal_writer_wait(w, end), CAIRN_OK);
        assert_int_equal(wal_writer_close(w), CAIRN_OK);
    }
    struct rd r;
    assert_int_equal(read_all(&r), CAIRN_OK);
    assert_int_equal(r.n, 2 * (id - 1));
    check_contiguous(&r, 21, WAL_SEG_DATA);
    for (size_t i = 0; i < r.n; i += 2)
        assert_int_equal(r.id[i], i / 2 + 1);
    rd_free(&r);

    /* a wrong end LSN: not a record position / segment missing */
    wal_writer *w = NULL;
    assert_int_equal(wal_writer_open(&o, end + 4, &w), CAIRN_EINVAL);
    assert_int_equal(wal_writer_open(&o, (40ull << 21) + 128, &w), CAIRN_EINVAL);
    assert_int_equal(wal_writer_open(&o, (40ull << 21) + WAL_SEG_DATA + 128, &w),
                     CAIRN_ENOTFOUND);
    /* wrong database id */
    struct wal_writer_opts o2 = o;
    o2.db_id = 1;
    assert_int_equal(wal_writer_open(&o2, end, &w), CAIRN_ECORRUPT);
}

/* wal_writer_switch closes the current segment (SWITCH written and synced)
 * so an archiver can take it; an empty segment is left alone. */
static void test_switch(void **state)
{
    (void)state;
    struct wal_writer_opts o = opts(21, CAIRN_IO_DEFAULT, CAIRN_DURABILITY_SYNC, NULL);
    wal_writer *w = NULL;
    assert_int_equal(wal_writer_open(&o, 0, &w), CAIRN_OK);
    bool sw = true;
    /* a fresh log: nothing to close */
    assert_int_equal(wal_writer_switch(w, &sw), CAIRN_OK);
    assert_false(sw);
    uint8_t b[1024];
    uint64_t first, last, end = 0, id = 1;
    uint64_t seg = 1ull << 21;
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 50; i++) {
            size_t n = enc_unit(b, id++, 32);
            assert_int_equal(wal_writer_append(w, b, n, &first, &last, &end), CAIRN_OK);
            if (i == 0)
                assert_int_equal(first, (uint64_t)round * seg + WAL_SEG_DATA);
        }
        assert_int_equal(wal_writer_switch(w, &sw), CAIRN_OK);
        assert_true(sw);
        /* durable and complete: the next segment's data offset is where
         * the log goes on */
        assert_int_equal(wal_writer_durable_lsn(w), (uint64_t)(round + 1) * seg + WAL_SEG_DATA);
        assert_int_equal(wal_writer_end_lsn(w), end);
        /* twice in a row: the new segment is empty */
        assert_int_equal(wal_writer_switch(w, &sw), CAIRN_OK);
        assert_false(sw);
    }
    assert_int_equal(wal_writer_close(w), CAIRN_OK);
    struct rd r;
    assert_int_equal(read_all(&r), CAIRN_OK);
    assert_int_equal(r.n, 2 * (id - 1));
    check_contiguous(&r, 21, WAL_SEG_DATA);
    assert_int_equal(r.wend.end_lsn, 3 * seg + WAL_SEG_DATA);
    rd_free(&r);
    /* each closed segment ends with a SWITCH right after its last record */
    for (int k = 0; k < 3; k++) {
        char name[64], path[600];
        wal_seg_name(name, sizeof name, 1, (uint64_t)k * seg);
        snprintf(path, sizeof path, "%s/%s", g_dir, name);
        size_t len = 0;
        unsigned char *data = tu_read_file(path, &len);
        assert_non_null(data);
        assert_int_equal(len, seg);
        struct wal_seg_header h;
        assert_int_equal(wal_seg_header_decode(data, &h, path), CAIRN_OK);
        uint64_t off = WAL_SEG_DATA;
        struct wal_record rec;
        int nrec = 0;
        while (wal_rec_check(data + off, seg - off, (uint64_t)k * seg + off, h.salt, &rec) &&
               rec.type != WAL_REC_SWITCH) {
            off += CAIRN_ALIGN_UP(rec.len, 8u);
            nrec += rec.type != WAL_REC_PAD;
        }
        assert_int_equal(rec.type, WAL_REC_SWITCH);
        assert_int_equal(nrec, 100);
        free(data);
    }
    /* a closed writer refuses */
    assert_int_equal(wal_writer_switch(NULL, &sw), CAIRN_EINVAL);
}

/* ---- durability modes ---------------------------------------------------- */

static void test_async_none(void **state)
{
    (void)state;
    uint8_t b[1024];
    uint64_t first, last, end, id = 1;
    struct dur_ctx d = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct wal_writer_opts o = opts(21, CAIRN_IO_DEFAULT, CAIRN_DURABILITY_ASYNC, &d);
    wal_writer *w = NULL;
    assert_int_equal(wal_writer_open(&o, 0, &w), CAIRN_OK);
    size_t n = enc_unit(b, id++, 8);
    assert_int_equal(wal_writer_append(w, b, n, &first, &last, &end), CAIRN_OK);
    /* the timer (5 ms) makes it durable without anyone waiting */
    for (int i = 0; i < 2000 && wal_writer_durable_lsn(w) < end; i++)
        usleep(1000);
    assert_int_equal(wal_writer_durable_lsn(w), padded(end));
    for (int i = 0; i < 500; i++) {
        n = enc_unit(b, id++, 8);
        assert_int_equal(wal_writer_append(w, b, n, &first, &last, &end), CAIRN_OK);
    }
    assert_int_equal(wal_writer_wait(w, end), CAIRN_OK);
    assert_int_equal(wal_writer_close(w), CAIRN_OK);
    assert_int_equal(d.out_of_order, 0);

    struct rd r;
    assert_int_equal(read_all(&r), CAIRN_OK);
    end = r.wend.end_lsn;
    rd_free(&r);
    memset(&d, 0, sizeof d);
    pthread_mutex_init(&d.mu, NULL);
    o = opts(21, CAIRN_IO_DEFAULT, CAIRN_DURABILITY_NONE, &d);
    assert_int_equal(wal_writer_open(&o, end, &w), CAIRN_OK);
    for (int i = 0; i < 6000; i++) { /* > one segment, > one write batch */
        n = enc_unit(b, id++, 32);
        assert_int_equal(wal_writer_append(w, b, n, &first, &last, &end), CAIRN_OK);
    }
    assert_int_equal(wal_writer_wait(w, end), CAIRN_OK); /* written, not synced */
    assert_true(wal_writer_durable_lsn(w) >= end);
    for (int i = 0; i < 100; i++) {
        n = enc_unit(b, id++, 32);
        assert_int_equal(wal_writer_append(w, b, n, &first, &last, &end), CAIRN_OK);
    }
    assert_int_equal(wal_writer_flush(w), CAIRN_OK);
    assert_int_equal(wal_writer_durable_lsn(w), padded(end));
    for (int i = 0; i < 100; i++) {
        n = enc_unit(b, id++, 32);
        assert_int_equal(wal_writer_append(w, b, n, &first, &last, &end), CAIRN_OK);
    }
    assert_int_equal(wal_writer_close(w), CAIRN_OK); /* writes and syncs */
    assert_int_equal(d.out_of_order, 0);
    assert_int_equal(d.last, padded(end));

    assert_int_equal(read_all(&r), CAIRN_OK);
    assert_int_equal(r.n, 2 * (id - 1));
    assert_int_equal(r.wend.end_lsn, read_end(end));
    check_contiguous(&r, 21, WAL_SEG_DATA);
    rd_free(&r);
}

/* ---- faults -------------------------------------------------------------- */

static void fault_case(cairn_io_backend io, unsigned ops, enum cio_fault_kind kind,
                       cairn_status want)
{
    struct dur_ctx d = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct wal_writer_opts o = opts(21, io, CAIRN_DURABILITY_SYNC, &d);
    wal_writer *w = NULL;
    assert_int_equal(wal_writer_open(&o, 0, &w), CAIRN_OK);
    uint8_t b[1024];
    uint64_t first, last, end, id = 1;
    for (int i = 0; i < 50; i++) {
        size_t n = enc_unit(b, id++, 8);
        assert_int_equal(wal_writer_append(w, b, n, &first, &last, &end), CAIRN_OK);
        assert_int_equal(wal_writer_wait(w, end), CAIRN_OK);
    }
    uint64_t good_end = end;
    /* Every matching operation fails from now on (the preallocator may
     * take the first one). */
    struct cio_fault_plan plan = {.ops = ops, .nth = 1, .kind = kind, .persistent = 1};
    cio_fault_set(&plan);
    size_t n = enc_unit(b, id++, 8);
    assert_int_equal(wal_writer_append(w, b, n, &first, &last, &end), CAIRN_OK);
    cairn_status st = wal_writer_wait(w, end);
    assert_int_equal(st, want);
    char orig[1024];
    snprintf(orig, sizeof orig, "%s", cairn_last_error());
    assert_non_null(strstr(orig, "could not"));
    assert_true(wal_writer_poisoned(w));
    assert_true(cio_fault_fired() >= 1);
    assert_true(g_log_errors >= 1); /* the poisoning is logged */
    assert_non_null(strstr(g_log_last, "poisoned"));
    cio_fault_set(NULL);
    /* no retry, no recovery: every later write is refused */
    n = enc_unit(b, id++, 8);
    assert_int_equal(wal_writer_append(w, b, n, &first, &last, &end), CAIRN_EPOISONED);
    assert_non_null(strstr(cairn_last_error(), orig));
    /* the failed batch's waiters keep its status; durable data stays so */
    assert_int_equal(wal_writer_wait(w, end), want);
    assert_int_equal(wal_writer_wait(w, good_end), CAIRN_OK);
    assert_int_equal(wal_writer_flush(w), want);
    assert_int_equal(wal_writer_durable_lsn(w), padded(good_end));
    assert_int_equal(wal_writer_close(w), CAIRN_EPOISONED);
    assert_int_equal(d.last, padded(good_end));

    /* the log still reads up to the last durable record */
    struct rd r;
    assert_int_equal(read_all(&r), CAIRN_OK);
    assert_true(r.n >= 100);
    assert_true(r.wend.end_lsn >= good_end);
    rd_free(&r);
    tu_rm_rf(g_dir);
    mkdir(g_dir, 0755);
}

static void test_fault_sync_eio(void **state)
{
    (void)state;
    fault_case(CAIRN_IO_POSIX, CIO_FOP_SYNC, CIO_FAULT_EIO, CAIRN_EIO);
    if (cio_uring_available())
        fault_case(CAIRN_IO_URING, CIO_FOP_SYNC, CIO_FAULT_EIO, CAIRN_EIO);
}

static void test_fault_write_enospc(void **state)
{
    (void)state;
    fault_case(CAIRN_IO_POSIX, CIO_FOP_WRITE, CIO_FAULT_ENOSPC, CAIRN_ENOSPC);
    if (cio_uring_available())
        fault_case(CAIRN_IO_URING, CIO_FOP_WRITE, CIO_FAULT_ENOSPC, CAIRN_ENOSPC);
}

/* A short write is resubmitted by the I/O layer: no failure. */
static void test_fault_short_write(void **state)
{
    (void)state;
    struct wal_writer_opts o = opts(21, CAIRN_IO_DEFAULT, CAIRN_DURABILITY_SYNC, NULL);
    wal_writer *w = NULL;
    assert_int_equal(wal_writer_open(&o, 0, &w), CAIRN_OK);
    struct cio_fault_plan plan = {
        .ops = CIO_FOP_WRITE, .nth = 1, .kind = CIO_FAULT_SHORT, .persistent = 1};
    cio_fault_set(&plan);
    uint8_t b[1024];
    uint64_t first, last, end;
    for (uint64_t id = 1; id <= 20; id++) {
        size_t n = enc_unit(b, id, 8);
        assert_int_equal(wal_writer_append(w, b, n, &first, &last, &end), CAIRN_OK);
        assert_int_equal(wal_writer_wait(w, end), CAIRN_OK);
    }
    cio_fault_set(NULL);
    assert_int_equal(wal_writer_close(w), CAIRN_OK);
    struct rd r;
    assert_int_equal(read_all(&r), CAIRN_OK);
    assert_int_equal(r.n, 40);
    assert_int_equal(r.wend.end_lsn, read_end(end));
    rd_free(&r);
}

/* A segment that cannot be preallocated fails the append that needs it,
 * without poisoning; the next append retries. */
static void test_prealloc_enospc(void **state)
{
    (void)state;
    /* META ops: creating segment 0 opens its .tmp with O_CREAT (1) and
     * renames it (2); the preallocator's create of segment 1 is the 3rd. */
    struct cio_fault_plan plan = {
        .ops = CIO_FOP_META, .nth = 3, .kind = CIO_FAULT_ENOSPC, .persistent = 1};
    cio_fault_set(&plan);
    struct wal_writer_opts o = opts(21, CAIRN_IO_DEFAULT, CAIRN_DURABILITY_SYNC, NULL);
    wal_writer *w = NULL;
    assert_int_equal(wal_writer_open(&o, 0, &w), CAIRN_OK);
    static uint8_t b[8192];
    uint64_t first, last, end, id = 1;
    cairn_status st = CAIRN_OK;
    size_t placed = 0;
    while (st == CAIRN_OK && placed < 20000) {
        size_t n = enc_unit(b, id, 64);
        st = wal_writer_append(w, b, n, &first, &last, &end);
        if (st == CAIRN_OK) {
            id++;
            placed++;
        }
    }
    assert_int_equal(st, CAIRN_ENOSPC);
    assert_non_null(strstr(cairn_last_error(), "could not"));
    assert_false(wal_writer_poisoned(w));
    assert_true(wal_writer_end_lsn(w) < (2u << 20));
    assert_int_equal(wal_writer_wait(w, wal_writer_end_lsn(w)), CAIRN_OK);
    cio_fault_set(NULL);
    for (int i = 0; i < 100; i++) {
        size_t n = enc_unit(b, id++, 64);
        assert_int_equal(wal_writer_append(w, b, n, &first, &last, &end), CAIRN_OK);
    }
    assert_true(end > (2u << 20));
    assert_int_equal(wal_writer_wait(w, end), CAIRN_OK);
    assert_int_equal(wal_writer_close(w), CAIRN_OK);
    struct rd r;
    assert_int_equal(read_all(&r), CAIRN_OK);
    assert_int_equal(r.n, 2 * (id - 1));
    check_contiguous(&r, 21, WAL_SEG_DATA);
    rd_free(&r);
}

static void test_bad_input(void **state)
{
    (void)state;
    struct wal_writer_opts o = opts(21, CAIRN_IO_DEFAULT, CAIRN_DURABILITY_SYNC, NULL);
    wal_writer *w = NULL;
    struct wal_writer_opts bad = o;
    bad.seg_shift = 20;
    assert_int_equal(wal_writer_open(&bad, 0, &w), CAIRN_EINVAL);
    bad = o;
    bad.waldir = NULL;
    assert_int_equal(wal_writer_open(&bad, 0, &w), CAIRN_EINVAL);
    assert_int_equal(wal_writer_open(&o, 0, &w), CAIRN_OK);
    uint8_t b[256] = {0};
    uint64_t f, l, e;
    assert_int_equal(wal_writer_append(w, b, 0, &f, &l, &e), CAIRN_EINVAL);
    assert_int_equal(wal_writer_append(w, b, 48, &f, &l, &e), CAIRN_EINVAL); /* zeros */
    size_t n = wal_enc_switch(b);
    assert_int_equal(wal_writer_append(w, b, n, &f, &l, &e), CAIRN_EINVAL);
    n = wal_enc_delete(b, 1, 1, 1);
    assert_int_equal(wal_writer_append(w, b, n - 8, &f, &l, &e), CAIRN_EINVAL);
    assert_int_equal(wal_writer_append(w, b, n + 4, &f, &l, &e), CAIRN_EINVAL);
    assert_int_equal(wal_writer_append(w, b, n, &f, &l, &e), CAIRN_OK);
    assert_int_equal(wal_writer_close(w), CAIRN_OK);
    assert_int_equal(wal_writer_close(NULL), CAIRN_OK);
}

/* ---- direct I/O ----------------------------------------------------------- */

#define DIO_BLOCK 4096u

/* Whether files in g_dir can be opened with O_DIRECT (ext4: yes; a file
 * system that refuses it makes the writer fall back to buffered I/O). */
static bool dir_takes_odirect(void)
{
    char p[600];
    snprintf(p, sizeof p, "%s/odirect.probe", g_dir);
    int fd = open(p, O_RDWR | O_CREAT | O_DIRECT, 0644);
    if (fd >= 0)
        close(fd);
    unlink(p);
    return fd >= 0;
}

static void seg_path(char *out, size_t cap, uint64_t start)
{
    int k = snprintf(out, cap, "%s/", g_dir);
    wal_seg_name(out + k, cap - (size_t)k, 1, start);
}

/* Whether this process writes segment `start` with O_DIRECT: 1 if one of
 * its descriptors on it has O_DIRECT, 0 if none has, -1 if no descriptor is
 * open on it. (The writer keeps a buffered descriptor for the partial
 * blocks and an O_DIRECT one for whole blocks.) */
static int seg_fd_direct(uint64_t start)
{
    char want[600], link[600], p[300];
    seg_path(want, sizeof want, start);
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int found = -1;
    struct dirent *de;
    while ((de = readdir(d)) != NULL && found < 1) {
        snprintf(p, sizeof p, "/proc/self/fd/%s", de->d_name);
        ssize_t n = readlink(p, link, sizeof link - 1);
        if (n <= 0)
            continue;
        link[n] = '\0';
        if (strcmp(link, want) != 0)
            continue;
        snprintf(p, sizeof p, "/proc/self/fdinfo/%s", de->d_name);
        FILE *f = fopen(p, "r");
        if (!f)
            continue;
        char line[128];
        while (fgets(line, sizeof line, f)) {
            unsigned long fl;
            if (sscanf(line, "flags: %lo", &fl) == 1) {
                found = (fl & O_DIRECT) ? 1 : 0;
                break;
            }
        }
        fclose(f);
    }
    closedir(d);
    return found;
}

/* Appends one unit of exactly `size` bytes (a multiple of 8, >= 56) made
 * of RESTORE_POINT records; returns its end LSN. */
static uint64_t append_exact(wal_writer *w, size_t size)
{
    static uint8_t b[1u << 18];
    assert_true(size % 8 == 0 && size >= 56 && size <= sizeof b);
    char name[256];
    memset(name, 'n', sizeof name);
    size_t n = 0, rem = size;
    while (rem > 0) {
        size_t piece = rem <= 312 ? rem : (rem - 312 >= 56 ? 312 : rem - 56);
        size_t nl = piece - 56 > 255 ? 255 : piece - 56;
        size_t got = wal_enc_restore_point(b + n, (int64_t)n, name, (uint8_t)nl);
        assert_int_equal(got, piece);
        n += got;
        rem -= piece;
    }
    uint64_t first, last, end;
    assert_int_equal(wal_writer_append(w, b, n, &first, &last, &end), CAIRN_OK);
    if (first >> 21 == end >> 21) /* else a SWITCH and a segment header between */
        assert_int_equal(end - first, size);
    return end;
}

/* Appends a unit that ends exactly on a DIO_BLOCK boundary, so that the
 * flush of it needs no PAD: after a flush the log's next record starts on
 * a block boundary (the PAD closed the block), and the unit is one block. */
static uint64_t append_to_block_end(wal_writer *w)
{
    assert_int_equal(wal_writer_flush(w), CAIRN_OK);
    uint64_t end = append_exact(w, DIO_BLOCK);
    assert_int_equal(end % DIO_BLOCK, 0);
    return end;
}

/* Pages of segment `start` in [0, len) that are not in the page cache. The
 * segment is created with O_DIRECT and only the whole blocks of large
 * writes go out with O_DIRECT: with direct I/O some written pages are not
 * cached; with buffered I/O all are. (Call before reading the file.) */
static size_t seg_uncached_pages(uint64_t start, uint64_t len)
{
    char p[600];
    seg_path(p, sizeof p, start);
    int fd = open(p, O_RDONLY);
    assert_true(fd >= 0);
    void *m = mmap(NULL, (size_t)len, PROT_READ, MAP_SHARED, fd, 0);
    assert_true(m != MAP_FAILED);
    long pg = sysconf(_SC_PAGESIZE);
    size_t n = ((size_t)len + (size_t)pg - 1) / (size_t)pg, out = 0;
    unsigned char *vec = malloc(n);
    assert_non_null(vec);
    assert_int_equal(mincore(m, (size_t)len, vec), 0);
    for (size_t i = 0; i < n; i++)
        out += !(vec[i] & 1);
    free(vec);
    munmap(m, (size_t)len);
    close(fd);
    return out;
}

/* Everything of segment `start` from segment offset `from` to its end is
 * zero, and the file has the segment size. */
static void check_zero_after(uint64_t start, uint64_t from, uint32_t shift)
{
    char p[600];
    seg_path(p, sizeof p, start);
    size_t len = 0;
    unsigned char *data = tu_read_file(p, &len);
    assert_non_null(data);
    assert_int_equal(len, 1ull << shift);
    for (size_t i = (size_t)from; i < len; i++) {
        if (data[i] != 0) {
            print_error("segment %s: nonzero byte at offset %zu (log ends at %llu)\n", p, i,
                        (unsigned long long)from);
            fail();
        }
    }
    free(data);
}

/* The rest of the segment after the PAD closing a log whose last record
 * ends at `end` is zero (nothing to check when the PAD fills it). */
static void check_zero_after_log(uint64_t end)
{
    uint64_t p = padded(end), mask = (1ull << 21) - 1;
    if (p & mask)
        check_zero_after(p & ~mask, p & mask, 21);
}

/* Seeded units of 56 bytes to ~40 KB, most ending at an unaligned LSN, a
 * few exactly on a block boundary; waits after single units and after
 * groups; crosses into a second segment. Checks O_DIRECT as `want_direct`
 * says (-1: do not check). Returns the end LSN. */
static uint64_t unaligned_run(wal_writer *w, int want_direct, uint64_t seed)
{
    uint64_t s = seed;
    static uint8_t b[1024];
    uint64_t id = 1, first, last, end = wal_writer_end_lsn(w);
    if (want_direct >= 0)
        assert_int_equal(seg_fd_direct(0), want_direct);
    int commits = 0;
    while (end < (2ull << 20) + (300u << 10)) {
        uint64_t r = tu_splitmix(&s);
        if (r % 13 == 0)
            append_to_block_end(w);
        if (r % 5 == 0) {
            /* a big unit, 20..150 KB of RESTORE_POINT records: its whole
             * blocks go out with O_DIRECT from WAL_DIRECT_MIN (64 KiB) on */
            size_t size = CAIRN_ALIGN_UP((size_t)(20000 + (r >> 8) % 130000), 8u);
            end = append_exact(w, size);
        } else {
            size_t n = enc_unit(b, id++, 1 + (uint32_t)((r >> 16) % 64));
            assert_int_equal(wal_writer_append(w, b, n, &first, &last, &end), CAIRN_OK);
        }
        if ((r >> 40) % 3 != 0) {
            assert_int_equal(wal_writer_wait(w, end), CAIRN_OK);
            assert_true(wal_writer_durable_lsn(w) >= end);
        }
        commits++;
    }
    assert_int_equal(wal_writer_flush(w), CAIRN_OK);
    if (want_direct >= 0) {
        /* the second segment came from the preallocator */
        assert_int_equal(seg_fd_direct(1ull << 21), want_direct);
    }
    assert_true(commits > 100);
    return end;
}

/* Counts the records of the log; checks it ends at `log_end`, untorn. */
static size_t read_back(uint64_t log_end)
{
    struct rd r;
    assert_int_equal(read_all(&r), CAIRN_OK);
    assert_int_equal(r.wend.end_lsn, log_end);
    assert_false(r.wend.torn);
    assert_int_equal(r.wend.garbage_bytes, 0);
    check_contiguous(&r, 21, WAL_SEG_DATA);
    size_t n = r.n;
    rd_free(&r);
    return n;
}

static void direct_unaligned(cairn_io_backend io, int want_direct)
{
    struct dur_ctx d = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct wal_writer_opts o = opts(21, io, CAIRN_DURABILITY_SYNC, &d);
    wal_writer *w = NULL;
    assert_int_equal(wal_writer_open(&o, 0, &w), CAIRN_OK);
    uint64_t end = unaligned_run(w, want_direct, tu_seed("direct_unaligned", 0xD10));
    assert_int_equal(wal_writer_close(w), CAIRN_OK);
    assert_int_equal(d.out_of_order, 0);
    assert_int_equal(d.last, padded(end));
    if (want_direct >= 0) {
        size_t unc = seg_uncached_pages(0, 2ull << 20);
        print_message("segment 0 (all written): %zu of 512 pages not in the page cache\n", unc);
        if (want_direct)
            assert_true(unc > 16);
        else
            assert_int_equal(unc, 0);
    }
    assert_true(read_back(read_end(end)) > 200);
    /* the pad of the last write and the preallocated rest are zeros */
    check_zero_after_log(end);
}

static void test_direct_unaligned(void **state)
{
    (void)state;
    int want = dir_takes_odirect() ? 1 : 0;
    print_message("test directory %s: O_DIRECT %s\n", g_dir, want ? "used" : "refused");
    direct_unaligned(CAIRN_IO_POSIX, want);
    tu_rm_rf(g_dir);
    mkdir(g_dir, 0755);
    if (cio_uring_available())
        direct_unaligned(CAIRN_IO_URING, want);
}

/* The buffered path (as on a file system that refuses O_DIRECT), forced by
 * CAIRN_WAL_BUFFERED=1: the same writes, all through the page cache. */
static void test_buffered_env(void **state)
{
    (void)state;
    setenv("CAIRN_WAL_BUFFERED", "1", 1);
    direct_unaligned(CAIRN_IO_DEFAULT, 0);
    unsetenv("CAIRN_WAL_BUFFERED");
}

/* Zeroes the PAD closing a log whose last record ends at `end`, as when
 * power was lost before the last flush's final sector was written: the log
 * then ends inside a block. */
static void strip_pad(uint64_t end)
{
    uint64_t p = padded(end), mask = (1ull << 21) - 1;
    if (p == end)
        return;
    char path[600];
    seg_path(path, sizeof path, end & ~mask);
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    static const uint8_t zeros[2 * WAL_BLOCK];
    assert_int_equal(pwrite(fd, zeros, (size_t)(p - end), (off_t)(end & mask)),
                     (ssize_t)(p - end));
    close(fd);
}

/* Reopens the log at ends in the middle of block 1 (the first record
 * block), in the middle of a later block, exactly on a block boundary, and
 * in a second segment. Each mid-block end is made by removing the PAD of
 * the last flush (strip_pad): the writer then pads that block and syncs
 * before anything else, writing only from the end of the log on, so the
 * bytes already in the file stay exactly as they were; the log reads
 * whole. */
static void reopen_mid_block(void)
{
    struct wal_writer_opts o = opts(21, CAIRN_IO_DEFAULT, CAIRN_DURABILITY_SYNC, NULL);
    uint8_t b[1024];
    uint64_t id = 1, first, last, end = 0;
    size_t nrec = 0;
    for (int round = 0; round < 6; round++) {
        uint64_t at = 0;
        unsigned char *before = NULL;
        size_t before_len = 0;
        char p[600];
        if (round > 0) {
            at = end;
            strip_pad(at);
            assert_int_equal(read_back(at), nrec);
            seg_path(p, sizeof p, at & ~((1ull << 21) - 1));
            before = tu_read_file(p, &before_len);
            assert_non_null(before);
        }
        wal_writer *w = NULL;
        assert_int_equal(wal_writer_open(&o, at, &w), CAIRN_OK);
        assert_int_equal(wal_writer_end_lsn(w), at ? at : WAL_SEG_DATA);
        switch (round) {
        case 0: /* one small unit: the log ends inside block 1 */
            end = append_exact(w, 120);
            assert_true(end < 2 * DIO_BLOCK);
            break;
        case 1: /* opened inside block 1; end in the middle of a later block */
            for (int i = 0; i < 40; i++) {
                size_t n = enc_unit(b, id++, 8);
                assert_int_equal(wal_writer_append(w, b, n, &first, &last, &end),
                                 CAIRN_OK);
                nrec += 2;
                if (i % 7 == 0)
                    assert_int_equal(wal_writer_wait(w, end), CAIRN_OK);
            }
            assert_true(end % DIO_BLOCK != 0);
            break;
        case 2: /* opened mid-block; end exactly on a block boundary */
            end = append_to_block_end(w);
            break;
        case 3: /* opened on a block boundary; cross into segment 1 */
            while (end < (2ull << 20) + 5000) {
                size_t n = enc_unit(b, id++, 60);
                assert_int_equal(wal_writer_append(w, b, n, &first, &last, &end),
                                 CAIRN_OK);
                nrec += 2;
            }
            break;
        default: /* opened in segment 1, mid-block */
            for (int i = 0; i < 30; i++) {
                size_t n = enc_unit(b, id++, 3 + (uint32_t)i);
                assert_int_equal(wal_writer_append(w, b, n, &first, &last, &end),
                                 CAIRN_OK);
                nrec += 2;
                assert_int_equal(wal_writer_wait(w, end), CAIRN_OK);
            }
            break;
        }
        assert_int_equal(wal_writer_wait(w, end), CAIRN_OK);
        assert_int_equal(wal_writer_close(w), CAIRN_OK);
        if (round == 0 || round == 2) {
            /* RESTORE_POINT pieces: take the count from the log */
            struct rd r;
            assert_int_equal(read_all(&r), CAIRN_OK);
            nrec = r.n;
            rd_free(&r);
        }
        if (before) {
            size_t after_len = 0;
            unsigned char *after = tu_read_file(p, &after_len);
            assert_non_null(after);
            assert_int_equal(after_len, before_len);
            uint64_t keep = at & ((1ull << 21) - 1);
            assert_memory_equal(after, before, (size_t)keep);
            free(after);
            free(before);
        }
    }
    assert_int_equal(read_back(read_end(end)), nrec);
    check_zero_after_log(end);
}

static void test_reopen_mid_block(void **state)
{
    (void)state;
    reopen_mid_block();
    tu_rm_rf(g_dir);
    mkdir(g_dir, 0755);
    setenv("CAIRN_WAL_BUFFERED", "1", 1);
    reopen_mid_block();
    unsetenv("CAIRN_WAL_BUFFERED");
}

/* SHORT on every O_DIRECT write (single blocks and multi-block groups,
 * both backends): common/io.c resubmits the rest, which stays aligned (the
 * seam keeps 512/4096 multiples, as the kernel does); nothing is lost. */
static void test_direct_short_write(void **state)
{
    (void)state;
    int want = dir_takes_odirect() ? 1 : 0;
    cairn_io_backend ios[2] = {CAIRN_IO_POSIX, CAIRN_IO_URING};
    for (int k = 0; k < 2; k++) {
        if (ios[k] == CAIRN_IO_URING && !cio_uring_available())
            continue;
        struct wal_writer_opts o = opts(21, ios[k], CAIRN_DURABILITY_SYNC, NULL);
        wal_writer *w = NULL;
        assert_int_equal(wal_writer_open(&o, 0, &w), CAIRN_OK);
        assert_int_equal(seg_fd_direct(0), want);
        struct cio_fault_plan plan = {
            .ops = CIO_FOP_WRITE, .nth = 1, .kind = CIO_FAULT_SHORT, .persistent = 1};
        cio_fault_set(&plan);
        uint64_t end = unaligned_run(w, -1, 0x5D10 + (uint64_t)k);
        assert_true(cio_fault_fired() > 100);
        cio_fault_set(NULL);
        assert_false(wal_writer_poisoned(w));
        assert_int_equal(wal_writer_close(w), CAIRN_OK);
        assert_true(read_back(read_end(end)) > 200);
        check_zero_after_log(end);
        tu_rm_rf(g_dir);
        mkdir(g_dir, 0755);
    }
}

/* Power lost with every sector of every unsynced write garbled (the crash
 * simulator's GARBAGE policy), and with `torn` the whole of each sector such
 * a write touches, durable bytes beside it included (no powersafe
 * overwrite): the WAL must never write into a sector holding durable
 * bytes, or a torn write would destroy acknowledged records. NONE mode
 * makes the writes and the syncs separate steps: units with unaligned ends
 * are written and synced (wal_writer_flush: the PAD closes each block),
 * some of them spanning whole blocks (O_DIRECT), then a few are written
 * unsynced and the power fails. Every record synced before stays readable,
 * for 512-byte and 4 KiB sectors. */
static void no_durable_rewrite(unsigned sector, bool torn)
{
    char stash[600];
    snprintf(stash, sizeof stash, "%s/stash", g_dir);
    assert_int_equal(mkdir(stash, 0755), 0); /* not a segment name: the reader skips it */
    struct wal_writer_opts o = opts(21, CAIRN_IO_DEFAULT, CAIRN_DURABILITY_NONE, NULL);
    wal_writer *w = NULL;
    assert_int_equal(wal_writer_open(&o, 0, &w), CAIRN_OK);
    assert_int_equal(wal_writer_flush(w), CAIRN_OK);
    struct cio_sim_config cfg = {
        .seed = 7 + sector,
        .sector = sector,
        .stash_dir = stash,
        .exit_code = 75,
        .data = CIO_SIM_DATA_GARBAGE,
        .dir = CIO_SIM_DIR_KEEP,
        .torn_neighbours = torn,
    };
    assert_int_equal(cio_sim_start(&cfg), CAIRN_OK);
    uint8_t b[1024];
    uint64_t id = 1, first, last, end = 0, s = sector;
    size_t nrec = 0;
    for (int round = 0; round < 40; round++) {
        uint64_t r = tu_splitmix(&s);
        int units = 1 + (int)(r % 4);
        for (int i = 0; i < units; i++) {
            size_t n = enc_unit(b, id++, 1 + (uint32_t)((r >> (8 + i)) % 64));
            assert_int_equal(wal_writer_append(w, b, n, &first, &last, &end), CAIRN_OK);
            nrec += 2;
        }
        if (round % 4 == 1) /* whole blocks in the middle: the O_DIRECT part */
            end = append_exact(w, CAIRN_ALIGN_UP((size_t)(70000 + (r >> 20) % 70000), 8u));
        assert_int_equal(wal_writer_flush(w), CAIRN_OK); /* written and synced */
    }
    uint64_t durable = read_end(end);
    struct rd r0;
    assert_int_equal(read_all(&r0), CAIRN_OK);
    assert_int_equal(r0.wend.end_lsn, durable);
    size_t ndur = r0.n;
    assert_true(ndur >= nrec);
    /* written, not synced: each in blocks of its own after the durable ones */
    for (int i = 0; i < 12; i++) {
        size_t n = enc_unit(b, id++, 40);
        assert_int_equal(wal_writer_append(w, b, n, &first, &last, &end), CAIRN_OK);
        assert_int_equal(wal_writer_wait(w, end), CAIRN_OK);
    }
    assert_int_equal(cio_sim_crash_apply(), CAIRN_OK);
    assert_int_equal(wal_writer_close(w), CAIRN_OK);
    struct rd r1;
    assert_int_equal(read_all(&r1), CAIRN_OK);
    assert_true(r1.wend.end_lsn >= durable);
    assert_true(r1.n >= ndur);
    for (size_t i = 0; i < ndur; i++) {
        assert_int_equal(r1.lsn[i], r0.lsn[i]);
        assert_int_equal(r1.id[i], r0.id[i]);
    }
    rd_free(&r0);
    rd_free(&r1);
}

static void test_no_durable_rewrite(void **state)
{
    (void)state;
    unsigned sectors[2] = {512, 4096};
    for (int k = 0; k < 4; k++) {
        no_durable_rewrite(sectors[k % 2], k >= 2);
        tu_rm_rf(g_dir);
        mkdir(g_dir, 0755);
    }
}

int main(void)
{
    cairn_set_log(log_sink, NULL, CAIRN_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_basic_posix, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_basic_uring, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_rollover, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_group_commit_uring, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_group_commit_posix, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_group_commit_async_none, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(test_reopen, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_switch, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_async_none, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_fault_sync_eio, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_fault_write_enospc, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_fault_short_write, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_prealloc_enospc, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_bad_input, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_direct_unaligned, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_buffered_env, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_reopen_mid_block, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_direct_short_write, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_no_durable_rewrite, setup_dir, teardown_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
