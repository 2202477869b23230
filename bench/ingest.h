/*
 * ingest.h — the durable-ingest benchmark's engine interface.
 *
 * The harness (ingest.c) drives every engine through this table; each
 * engine lives in its own file (ingest_cairn.c, ingest_sqlite.c,
 * ingest_rocksdb.c, ingest_disk.c). One run of an engine:
 *
 *     open(dir, cfg)                      fresh, empty directory
 *       thread_open(tid) x nthreads       before the start barrier
 *         commit(points, n) ...           timed; one durable transaction
 *       thread_close()                    after the stop
 *     close()
 *
 * commit() returns only once the transaction is durable (fsync'd); it
 * returns 0 or -1 with a message in the buffer given to open/thread_open.
 */
#ifndef CAIRN_BENCH_INGEST_H
#define CAIRN_BENCH_INGEST_H

#include <stddef.h>
#include <stdint.h>

#define INGEST_DIM 128u
#define INGEST_VEC_BYTES (INGEST_DIM * sizeof(float)) /* 512 */
#define INGEST_PAYLOAD_BYTES 64u
#define INGEST_POINT_BYTES (INGEST_VEC_BYTES + INGEST_PAYLOAD_BYTES)
#define INGEST_ERRLEN 8192

/* One point as the harness hands it out: borrowed from the data pool. */
struct ingest_point {
    uint64_t id;
    const float *vector;  /* INGEST_DIM floats */
    const char *payload;  /* INGEST_PAYLOAD_BYTES bytes of JSON object text */
};

struct ingest_cfg {
    unsigned nthreads;   /* worker threads that will call commit */
    unsigned batch;      /* points per commit (1 or e.g. 1000) */
    int sqlite_mutex;    /* sqlite: serialize writers with a process mutex */
    uint64_t disk_file_bytes; /* disk: size of each preallocated file */
    const void *fill;    /* disk: nonzero bytes to write (>= 1 MiB) */
};

struct ingest_engine {
    const char *name;  /* column label */
    /* Opens an engine on the fresh directory dir. *state receives the
     * engine's handle. */
    int (*open)(const char *dir, const struct ingest_cfg *cfg, void **state,
                char *err);
    int (*thread_open)(void *state, unsigned tid, void **tstate, char *err);
    int (*commit)(void *tstate, const struct ingest_point *pts, size_t n,
                  char *err);
    void (*thread_close)(void *tstate);
    int (*close)(void *state, char *err);
    /* Bytes one commit of n points counts for MB/s; NULL = n points of
     * vector + payload (INGEST_POINT_BYTES each). */
    uint64_t (*commit_bytes)(void *state, size_t n);
    const char *(*version)(void);
};

extern const struct ingest_engine ingest_engine_cairn;
extern const struct ingest_engine ingest_engine_sqlite;
extern const struct ingest_engine ingest_engine_sqlite_mx;
extern const struct ingest_engine ingest_engine_rocksdb;
extern const struct ingest_engine ingest_engine_disk;

#endif
