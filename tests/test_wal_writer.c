/*
 * test_wal_writer.c — the WAL writer: append and read back, segment
 * rollover with SWITCH records, group commit from 16 threads, on_durable
 * order, both I/O backends, durability modes, reopening at the end of the
 * log, and poisoning after an injected I/O failure.
 */
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
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

/* LSNs strictly increasing and contiguous within segments; a gap only to
 * the first record position of a later segment. */
static void check_contiguous(const struct rd *r, uint32_t shift, uint64_t first)
{
    uint64_t seg = 1ull << shift;
    uint64_t expect = first;
    for (size_t i = 0; i < r->n; i++) {
        if (r->lsn[i] != expect) {
            /* crossed a segment: must be the next segment's first record */
            assert_true(r->lsn[i] > expect);
            assert_int_equal(r->lsn[i] % seg, WAL_SEG_HDR);
            assert_int_equal(r->lsn[i] / seg, expect / seg + 1);
            assert_true(expect % seg + WAL_REC_HDR <= seg);
        }
        expect = r->end[i];
    }
    if (r->n)
        assert_true(r->wend.end_lsn == expect ||
                    (r->wend.end_lsn % seg == WAL_SEG_HDR && r->wend.end_lsn > expect));
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
    assert_int_equal(wal_writer_end_lsn(w), WAL_SEG_HDR);
    assert_int_equal(wal_writer_durable_lsn(w), WAL_SEG_HDR);

    uint8_t b[4096];
    size_t n = wal_enc_create_coll(b, 1, 1, 4, 1, "c1", 2);
    n += wal_enc_commit(b + n, 1, 1, 1);
    uint64_t first, last, end;
    assert_int_equal(wal_writer_append(w, b, n, &first, &last, &end), CAIRN_OK);
    assert_int_equal(first, WAL_SEG_HDR);
    assert_int_equal(end, WAL_SEG_HDR + n);
    assert_int_equal(last, end - wal_enc_commit(NULL, 0, 0, 0));
    assert_int_equal(wal_writer_wait(w, end), CAIRN_OK);
    assert_true(wal_writer_durable_lsn(w) >= end);
    assert_true(d.last >= end);

    uint64_t prev_end = end;
    for (uint64_t id = 10; id < 110; id++) {
        n = enc_unit(b, id, 4);
        assert_int_equal(wal_writer_append(w, b, n, &first, &last, &end), CAIRN_OK);
        assert_int_equal(first, prev_end);
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
    assert_int_equal(d.last, wend);

    struct rd r;
    assert_int_equal(read_all(&r), CAIRN_OK);
    assert_int_equal(r.n, 2 + 200 + 3);
    assert_int_equal(r.type[0], WAL_REC_CREATE_COLL);
    assert_int_equal(r.type[2], WAL_REC_UPSERT);
    assert_int_equal(r.id[2], 10);
    assert_int_equal(r.type[r.n - 1], WAL_REC_RESTORE_POINT);
    assert_int_equal(r.wend.end_lsn, wend);
    assert_false(r.wend.torn);
    assert_int_equal(r.wend.garbage_bytes, 0);
    assert_int_equal(r.wend.segments_after, 0);
    check_contiguous(&r, 21, WAL_SEG_HDR);
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
    assert_int_equal(r.wend.end_lsn, wend);
    assert_false(r.wend.torn);
    check_contiguous(&r, 21, WAL_SEG_HDR);
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
    check_contiguous(&r, 21, WAL_SEG_HDR);
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
            assert_int_equal(r.wend.end_lsn, end);
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
    check_contiguous(&r, 21, WAL_SEG_HDR);
    for (size_t i = 0; i < r.n; i += 2)
        assert_int_equal(r.id[i], i / 2 + 1);
    rd_free(&r);

    /* a wrong end LSN: not a record position / segment missing */
    wal_writer *w = NULL;
    assert_int_equal(wal_writer_open(&o, end + 4, &w), CAIRN_EINVAL);
    assert_int_equal(wal_writer_open(&o, (40ull << 21) + 128, &w), CAIRN_ENOTFOUND);
    /* wrong database id */
    struct wal_writer_opts o2 = o;
    o2.db_id = 1;
    assert_int_equal(wal_writer_open(&o2, end, &w), CAIRN_ECORRUPT);
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
    assert_int_equal(wal_writer_durable_lsn(w), end);
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
    assert_int_equal(wal_writer_durable_lsn(w), end);
    for (int i = 0; i < 100; i++) {
        n = enc_unit(b, id++, 32);
        assert_int_equal(wal_writer_append(w, b, n, &first, &last, &end), CAIRN_OK);
    }
    assert_int_equal(wal_writer_close(w), CAIRN_OK); /* writes and syncs */
    assert_int_equal(d.out_of_order, 0);
    assert_int_equal(d.last, end);

    assert_int_equal(read_all(&r), CAIRN_OK);
    assert_int_equal(r.n, 2 * (id - 1));
    assert_int_equal(r.wend.end_lsn, end);
    check_contiguous(&r, 21, WAL_SEG_HDR);
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
    assert_int_equal(wal_writer_durable_lsn(w), good_end);
    assert_int_equal(wal_writer_close(w), CAIRN_EPOISONED);
    assert_int_equal(d.last, good_end);

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
    assert_int_equal(r.wend.end_lsn, end);
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
    check_contiguous(&r, 21, WAL_SEG_HDR);
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
        cmocka_unit_test_setup_teardown(test_async_none, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_fault_sync_eio, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_fault_write_enospc, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_fault_short_write, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_prealloc_enospc, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_bad_input, setup_dir, teardown_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
