/*
 * ingest_rocksdb.c — RocksDB (C API) as a durable-ingest peer.
 *
 * One DB per run, shared by all worker threads (RocksDB's write path does
 * its own group commit: concurrent sync writers share one WAL fsync).
 * Options: create_if_missing, everything else default (64 MiB memtable,
 * background flush/compaction, fdatasync rather than fsync). Writes:
 * WriteOptions.sync = 1.
 *
 * Key: the point id as 8 bytes big-endian. Value: the 512 vector bytes
 * followed by the 64 payload bytes (one 576-byte value, written with
 * rocksdb_writebatch_putv from the two pieces). One commit is one
 * rocksdb_write() of a WriteBatch holding n puts.
 */
#include "ingest.h"

#include <rocksdb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef INGEST_ROCKSDB_VERSION
#define INGEST_ROCKSDB_VERSION "unknown"
#endif

struct rdb_state {
    rocksdb_options_t *opts;
    rocksdb_writeoptions_t *wopts;
    rocksdb_t *db;
    char path[4200];
};

struct rdb_thread {
    struct rdb_state *st;
    rocksdb_writebatch_t *wb;
};

static int rdb_open(const char *dir, const struct ingest_cfg *cfg,
                    void **state, char *err) {
    (void)cfg;
    struct rdb_state *st = calloc(1, sizeof(*st));
    if (!st) {
        snprintf(err, INGEST_ERRLEN, "out of memory");
        return -1;
    }
    snprintf(st->path, sizeof(st->path), "%s/rocksdb", dir);
    st->opts = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(st->opts, 1);
    st->wopts = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(st->wopts, 1);
    char *e = NULL;
    st->db = rocksdb_open(st->opts, st->path, &e);
    if (e) {
        snprintf(err, INGEST_ERRLEN, "could not open database \"%s\": %s",
                 st->path, e);
        rocksdb_free(e);
        rocksdb_writeoptions_destroy(st->wopts);
        rocksdb_options_destroy(st->opts);
        free(st);
        return -1;
    }
    *state = st;
    return 0;
}

static int rdb_thread_open(void *state, unsigned tid, void **tstate,
                           char *err) {
    (void)tid;
    struct rdb_thread *t = calloc(1, sizeof(*t));
    if (!t) {
        snprintf(err, INGEST_ERRLEN, "out of memory");
        return -1;
    }
    t->st = state;
    t->wb = rocksdb_writebatch_create();
    *tstate = t;
    return 0;
}

static int rdb_commit(void *tstate, const struct ingest_point *pts, size_t n,
                      char *err) {
    struct rdb_thread *t = tstate;
    for (size_t i = 0; i < n; i++) {
        unsigned char key[8];
        for (int b = 0; b < 8; b++)
            key[b] = (unsigned char)(pts[i].id >> (56 - 8 * b));
        const char *kl[1] = {(const char *)key};
        const size_t ks[1] = {sizeof(key)};
        const char *vl[2] = {(const char *)pts[i].vector, pts[i].payload};
        const size_t vs[2] = {INGEST_VEC_BYTES, INGEST_PAYLOAD_BYTES};
        rocksdb_writebatch_putv(t->wb, 1, kl, ks, 2, vl, vs);
    }
    char *e = NULL;
    rocksdb_write(t->st->db, t->st->wopts, t->wb, &e);
    rocksdb_writebatch_clear(t->wb);
    if (e) {
        snprintf(err, INGEST_ERRLEN, "could not write to \"%s\": %s",
                 t->st->path, e);
        rocksdb_free(e);
        return -1;
    }
    return 0;
}

static void rdb_thread_close(void *tstate) {
    struct rdb_thread *t = tstate;
    if (!t)
        return;
    rocksdb_writebatch_destroy(t->wb);
    free(t);
}

static int rdb_close(void *state, char *err) {
    (void)err;
    struct rdb_state *st = state;
    rocksdb_close(st->db);
    rocksdb_writeoptions_destroy(st->wopts);
    rocksdb_options_destroy(st->opts);
    free(st);
    return 0;
}

static const char *rdb_version(void) { return INGEST_ROCKSDB_VERSION; }

const struct ingest_engine ingest_engine_rocksdb = {
    .name = "rocksdb",
    .open = rdb_open,
    .thread_open = rdb_thread_open,
    .commit = rdb_commit,
    .thread_close = rdb_thread_close,
    .close = rdb_close,
    .version = rdb_version,
};
