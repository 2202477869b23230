/*
 * ingest_cairn.c — cairn through its public API (include/cairn.h) only.
 *
 * cairn_options_init, durability = CAIRN_DURABILITY_SYNC, everything else
 * default; one collection "bench" (dim 128, L2). One commit is one
 * cairn_upsert_batch() of n points from the calling thread, sharing one
 * cairn_db across all worker threads.
 */
#include "ingest.h"

#include "cairn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CAIRN_BENCH_COLLECTION "bench"

/* "0.1.0, WAL I/O io_uring" once a database has been opened. */
static char cb_description[96];

struct cb_state {
    cairn_db *db;
    size_t batch;
};

struct cb_thread {
    struct cb_state *st;
    cairn_point *pts;
};

static int cb_fail(cairn_status s, const char *what, char *err) {
    const char *detail = cairn_last_error();
    snprintf(err, INGEST_ERRLEN, "%s: %s (%s)%s%s", what, cairn_strerror(s),
             cairn_status_name(s), detail[0] ? ": " : "", detail);
    return -1;
}

static int cb_open(const char *dir, const struct ingest_cfg *cfg, void **state,
                   char *err) {
    struct cb_state *st = calloc(1, sizeof(*st));
    if (!st) {
        snprintf(err, INGEST_ERRLEN, "out of memory");
        return -1;
    }
    st->batch = cfg->batch;
    cairn_options opts;
    cairn_options_init(&opts);
    opts.durability = CAIRN_DURABILITY_SYNC;
    /* CAIRN_BENCH_IO=posix|uring picks the WAL I/O backend (default: the
     * library's default) to compare the two in the same harness. */
    const char *io = getenv("CAIRN_BENCH_IO");
    if (io && strcmp(io, "posix") == 0) opts.io_backend = CAIRN_IO_POSIX;
    else if (io && strcmp(io, "uring") == 0) opts.io_backend = CAIRN_IO_URING;
    cairn_status s = cairn_open(dir, &opts, &st->db);
    if (s != CAIRN_OK) {
        free(st);
        return cb_fail(s, "cairn_open", err);
    }
    cairn_stats stats;
    if (cairn_stats_get(st->db, &stats) == CAIRN_OK && stats.io_backend)
        snprintf(cb_description, sizeof(cb_description), "%s, WAL I/O %s",
                 cairn_version(), stats.io_backend);
    s = cairn_collection_create(st->db, CAIRN_BENCH_COLLECTION, INGEST_DIM,
                                CAIRN_METRIC_L2);
    if (s != CAIRN_OK) {
        cb_fail(s, "cairn_collection_create", err);
        cairn_close(st->db);
        free(st);
        return -1;
    }
    *state = st;
    return 0;
}

static int cb_thread_open(void *state, unsigned tid, void **tstate,
                          char *err) {
    struct cb_state *st = state;
    (void)tid;
    struct cb_thread *t = calloc(1, sizeof(*t));
    if (t)
        t->pts = calloc(st->batch, sizeof(*t->pts));
    if (!t || !t->pts) {
        free(t);
        snprintf(err, INGEST_ERRLEN, "out of memory");
        return -1;
    }
    t->st = st;
    *tstate = t;
    return 0;
}

static int cb_commit(void *tstate, const struct ingest_point *pts, size_t n,
                     char *err) {
    struct cb_thread *t = tstate;
    for (size_t i = 0; i < n; i++) {
        t->pts[i].id = pts[i].id;
        t->pts[i].vector = pts[i].vector;
        t->pts[i].payload = pts[i].payload;
        t->pts[i].payload_len = INGEST_PAYLOAD_BYTES;
    }
    cairn_status s = cairn_upsert_batch(t->st->db, CAIRN_BENCH_COLLECTION,
                                        t->pts, n, INGEST_DIM, NULL);
    if (s != CAIRN_OK)
        return cb_fail(s, "cairn_upsert_batch", err);
    return 0;
}

static void cb_thread_close(void *tstate) {
    struct cb_thread *t = tstate;
    if (!t)
        return;
    free(t->pts);
    free(t);
}

static int cb_close(void *state, char *err) {
    struct cb_state *st = state;
    cairn_status s = cairn_close(st->db);
    free(st);
    if (s != CAIRN_OK)
        return cb_fail(s, "cairn_close", err);
    return 0;
}

static const char *cb_version(void) {
    return cb_description[0] ? cb_description : cairn_version();
}

const struct ingest_engine ingest_engine_cairn = {
    .name = "cairn",
    .open = cb_open,
    .thread_open = cb_thread_open,
    .commit = cb_commit,
    .thread_close = cb_thread_close,
    .close = cb_close,
    .version = cb_version,
};
