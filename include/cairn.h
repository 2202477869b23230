/*
 * cairn.h — the one public header of libcairn, an embedded vector storage
 * engine whose write-ahead log is the source of truth.
 *
 * Lifecycle: cairn_open() -> use -> cairn_close(). Every handle is opaque;
 * every *_free()/close() accepts NULL as a no-op. Functions return a
 * cairn_status; on failure cairn_last_error() holds a message for the calling
 * thread naming the file, offset or field at fault ("could not <verb>
 * <object> "<path>" at offset <n>: <reason>").
 *
 * Memory: buffers passed in are borrowed for the duration of the call only.
 * Memory returned through a `char **`/pointer out-parameter is owned by the
 * caller and released with cairn_free() (or the matching *_free()).
 *
 * Thread safety: a cairn_db may be used from many threads at once. A
 * cairn_txn belongs to one thread at a time.
 *
 * Out of memory: a call that cannot allocate returns CAIRN_ENOMEM and
 * changes nothing. libcairn uses jansson for JSON trees; the first time it
 * writes JSON (a backup, an archive) it wraps jansson's allocator
 * (json_set_alloc_funcs) around the one installed then, to see failures
 * jansson's writer would not report. An application that installs its own
 * allocator should do so before that, and not while other threads use
 * jansson.
 *
 * The header compiles as C11 with -pedantic and as C++.
 */
#ifndef CAIRN_H
#define CAIRN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(CAIRN_BUILDING) && defined(__GNUC__)
#define CAIRN_API __attribute__((visibility("default")))
#else
#define CAIRN_API
#endif

#define CAIRN_VERSION_MAJOR 0
#define CAIRN_VERSION_MINOR 1
#define CAIRN_VERSION_PATCH 0
#define CAIRN_VERSION_STRING "0.1.0"

/* ---------------------------------------------------------------------
 * Status codes. One table defines the enum, the names and the messages.
 * Values never change once released; new codes are appended.
 * ------------------------------------------------------------------- */
#define CAIRN_ERRORS(X)                                                      \
    X(CAIRN_OK, 0, "success")                                                \
    X(CAIRN_EINVAL, 1, "invalid argument")                                   \
    X(CAIRN_ENOMEM, 2, "out of memory")                                      \
    X(CAIRN_EIO, 3, "input/output error")                                    \
    X(CAIRN_ENOSPC, 4, "no space left on device")                            \
    X(CAIRN_ECORRUPT, 5, "data is corrupt")                                  \
    X(CAIRN_EBUSY, 6, "database is in use by another process")               \
    X(CAIRN_EPOISONED, 7,                                                    \
      "handle refuses writes after a failed write or fsync; reopen it")      \
    X(CAIRN_ENOTFOUND, 8, "not found")                                       \
    X(CAIRN_EEXIST, 9, "already exists")                                     \
    X(CAIRN_EDIM, 10, "vector dimension does not match")                     \
    X(CAIRN_EVECTOR, 11, "vector holds NaN or infinity")                     \
    X(CAIRN_EPAYLOAD, 12, "payload is not a JSON object or is too large")    \
    X(CAIRN_ENAME, 13, "invalid collection name")                            \
    X(CAIRN_ETXN, 14, "transaction is not active")                           \
    X(CAIRN_EVERSION, 15, "format version is newer than this library")       \
    X(CAIRN_EFILTER, 16, "invalid filter")                                   \
    X(CAIRN_ENOTSUP, 17, "operation not supported")                          \
    X(CAIRN_EFORMAT, 18, "malformed input")                                  \
    X(CAIRN_ECLOSED, 19, "database is closing")                             \
    X(CAIRN_ECANCELED, 20, "operation canceled by the caller")

typedef enum cairn_status {
#define CAIRN_X_ENUM(name, value, msg) name = value,
    CAIRN_ERRORS(CAIRN_X_ENUM)
#undef CAIRN_X_ENUM
    CAIRN_STATUS_COUNT_
} cairn_status;

/* "CAIRN_EIO" etc.; "CAIRN_UNKNOWN" for values outside the table. */
CAIRN_API const char *cairn_status_name(cairn_status s);
/* The fixed message of a status ("input/output error"). */
CAIRN_API const char *cairn_strerror(cairn_status s);
/* Detailed message of the last failure in the calling thread; "" if none.
 * Valid until the next cairn call in this thread. */
CAIRN_API const char *cairn_last_error(void);

CAIRN_API const char *cairn_version(void);

/* ---------------------------------------------------------------------
 * Logging: process-wide. Default: warnings and errors to stderr.
 * ------------------------------------------------------------------- */
typedef enum cairn_log_level {
    CAIRN_LOG_DEBUG = 0,
    CAIRN_LOG_INFO = 1,
    CAIRN_LOG_WARN = 2,
    CAIRN_LOG_ERROR = 3
} cairn_log_level;

typedef void (*cairn_log_fn)(void *ctx, cairn_log_level level, const char *msg);
/* fn NULL restores the default; min_level filters before fn is called. */
CAIRN_API void cairn_set_log(cairn_log_fn fn, void *ctx, cairn_log_level min_level);

/* ---------------------------------------------------------------------
 * Opening a database
 * ------------------------------------------------------------------- */
typedef struct cairn_db cairn_db;
typedef struct cairn_txn cairn_txn;
typedef struct cairn_filter cairn_filter;

typedef enum cairn_durability {
    CAIRN_DURABILITY_SYNC = 0,  /* commit returns after its WAL is durable */
    CAIRN_DURABILITY_ASYNC = 1, /* WAL flushed every async_flush_ms */
    CAIRN_DURABILITY_NONE = 2   /* written on close or when buffers fill */
} cairn_durability;

typedef enum cairn_io_backend {
    CAIRN_IO_DEFAULT = 0, /* io_uring, posix if io_uring is unavailable */
    CAIRN_IO_URING = 1,   /* io_uring; open fails if unavailable */
    CAIRN_IO_POSIX = 2    /* plain pwrite/fdatasync */
} cairn_io_backend;

typedef enum cairn_metric {
    CAIRN_METRIC_L2 = 1,     /* distance = squared euclidean */
    CAIRN_METRIC_COSINE = 2, /* distance = 1 - cos(a, b) */
    CAIRN_METRIC_DOT = 3     /* distance = -dot(a, b) */
} cairn_metric;

#define CAIRN_MAX_DIM 65536u
#define CAIRN_MAX_NAME 128u            /* bytes, UTF-8, no '/' or NUL */
#define CAIRN_MAX_PAYLOAD (1u << 20)   /* bytes of JSON text */
#define CAIRN_WAL_SEGMENT_MIN (2u << 20)
#define CAIRN_WAL_SEGMENT_MAX (1u << 30)
#define CAIRN_WAL_SEGMENT_DEFAULT (16u << 20)

typedef struct cairn_options {
    int create_if_missing;       /* default 1 */
    cairn_durability durability; /* default SYNC */
    uint32_t async_flush_ms;     /* default 10 (ASYNC mode) */
    uint64_t wal_segment_size;   /* power of two within MIN..MAX; default 16 MiB;
                                    fixed at creation, ignored afterwards */
    cairn_io_backend io_backend; /* default CAIRN_IO_DEFAULT */
    uint32_t replay_jobs;        /* recovery workers; 0 = number of CPUs */
    /* Checkpoints fold the WAL into the page store so that an open replays
     * only the log written since the last one. A background checkpoint
     * starts when this many WAL bytes were written since the last one
     * (default 64 MiB; UINT64_MAX: never by size)... */
    uint64_t checkpoint_wal_bytes;
    /* ...or when this many seconds passed since the last one and something
     * changed (default 300; 0: never by time). cairn_checkpoint() runs one
     * now. */
    uint32_t checkpoint_interval_s;
    /* WAL retention hook (the WAL archiver plugs in here): called after a
     * checkpoint, it returns the lowest LSN whose segment must be kept
     * (UINT64_MAX: no constraint). Segments wholly below both that and the
     * checkpoint's redo LSN are removed. NULL: no constraint. */
    uint64_t (*wal_retain)(void *ctx);
    void *wal_retain_ctx;
    /* Continuous WAL archiving (docs/pitr.md): a backup repository
     * directory (created if missing) into which a background thread copies
     * every complete WAL segment, as `pitrctl archive` does; a segment is
     * removed by checkpoints only once archived. NULL: no archiving. */
    const char *archive_repo;
    const char *archive_key_file; /* key of an encrypted repository (64 hex digits) */
    /* Closes the current segment when it holds records this many seconds
     * old, so the archive is never further behind (0: only full segments
     * are archived). */
    uint32_t archive_timeout_s;
    /* zstd levels of what the archiver writes: WAL segments (-7..-1 fast,
     * or 1..19) and other objects (1..19). 0: the repository's own (-1 and
     * 3 for a repository the archiver creates, which records the levels
     * given here). Out of range: cairn_open fails with CAIRN_EINVAL before
     * anything is created. */
    int archive_wal_level;
    int archive_level;
} cairn_options;

CAIRN_API void cairn_options_init(cairn_options *opts);

/* Opens (or creates) the database directory `path`. Runs crash recovery.
 * A directory held open by another handle or process gives CAIRN_EBUSY. */
CAIRN_API cairn_status cairn_open(const char *path, const cairn_options *opts,
                                  cairn_db **out);
/* Flushes and closes. NULL is a no-op returning CAIRN_OK. The handle is
 * freed even when the final flush fails (the status says so). */
CAIRN_API cairn_status cairn_close(cairn_db *db);

/* ---------------------------------------------------------------------
 * Collections
 * ------------------------------------------------------------------- */
typedef struct cairn_collection_info {
    char name[CAIRN_MAX_NAME + 1];
    uint32_t id;
    uint32_t dim;
    cairn_metric metric;
    uint64_t points;
    uint64_t bytes; /* vectors + payloads held */
} cairn_collection_info;

CAIRN_API cairn_status cairn_collection_create(cairn_db *db, const char *name,
                                               uint32_t dim, cairn_metric metric);
CAIRN_API cairn_status cairn_collection_drop(cairn_db *db, const char *name);
CAIRN_API cairn_status cairn_collection_stat(cairn_db *db, const char *name,
                                             cairn_collection_info *out);
/* *out is an array of *n entries sorted by name; free with cairn_free(). */
CAIRN_API cairn_status cairn_collection_list(cairn_db *db,
                                             cairn_collection_info **out,
                                             size_t *n);

/* ---------------------------------------------------------------------
 * Transactions. Operations are validated when added; nothing is visible
 * or logged before commit. commit/abort end the transaction; the handle
 * stays valid (later calls give CAIRN_ETXN) until cairn_txn_free(). Free
 * every transaction before cairn_close() of its database (freeing returns
 * its buffers to the database for reuse).
 * ------------------------------------------------------------------- */
typedef struct cairn_commit_info {
    uint64_t txn_id;
    uint64_t commit_lsn;     /* LSN of the commit record */
    int64_t commit_time_us;  /* microseconds since the Unix epoch */
} cairn_commit_info;

CAIRN_API cairn_status cairn_txn_begin(cairn_db *db, cairn_txn **out);
/* payload: JSON object text of payload_len bytes, or NULL for none. */
CAIRN_API cairn_status cairn_txn_upsert(cairn_txn *txn, const char *collection,
                                        uint64_t id, const float *vector,
                                        uint32_t dim, const char *payload,
                                        size_t payload_len);
CAIRN_API cairn_status cairn_txn_delete(cairn_txn *txn, const char *collection,
                                        uint64_t id);
/* info may be NULL. After a failed commit nothing of the transaction is
 * visible; whether it reached the WAL is unknown only for CAIRN_EIO/
 * CAIRN_ENOSPC/CAIRN_EPOISONED (with CAIRN_EPOISONED from the commit that
 * poisoned the handle, the message says the transaction is durable but
 * could not be applied in memory: the reopen applies it). Any other
 * status (CAIRN_ENOMEM included) means the log never got it. */
CAIRN_API cairn_status cairn_txn_commit(cairn_txn *txn, cairn_commit_info *info);
CAIRN_API cairn_status cairn_txn_abort(cairn_txn *txn);
CAIRN_API void cairn_txn_free(cairn_txn *txn);

typedef struct cairn_point {
    uint64_t id;
    const float *vector;  /* dim floats */
    const char *payload;  /* JSON object text or NULL */
    size_t payload_len;
} cairn_point;

/* One transaction each. */
CAIRN_API cairn_status cairn_upsert_batch(cairn_db *db, const char *collection,
                                          const cairn_point *points, size_t n,
                                          uint32_t dim, cairn_commit_info *info);
CAIRN_API cairn_status cairn_delete_batch(cairn_db *db, const char *collection,
                                          const uint64_t *ids, size_t n,
                                          cairn_commit_info *info);

/* ---------------------------------------------------------------------
 * Reading
 * ------------------------------------------------------------------- */
/* vector_out: dim floats (dim must equal the collection's), may be NULL.
 * payload_out: set to a NUL-terminated copy of the payload text exactly as
 * it was committed (or NULL if the point has none); free with cairn_free().
 * May be NULL. */
CAIRN_API cairn_status cairn_get(cairn_db *db, const char *collection,
                                 uint64_t id, float *vector_out, uint32_t dim,
                                 char **payload_out);

typedef struct cairn_hit {
    uint64_t id;
    float distance; /* lower is nearer, see cairn_metric */
} cairn_hit;

/* Filter JSON (Qdrant-like):
 *   {"must": [COND...], "should": [COND...], "must_not": [COND...]}
 *   COND = {"key": "field", "match": {"value": "red" | 7 | true}}
 *        | {"key": "field", "range": {"gt"|"gte"|"lt"|"lte": number, ...}}
 *        | a nested filter object
 * must: all hold; should: at least one holds (when non-empty); must_not: none
 * holds. A point whose payload lacks the field does not match the COND. */
CAIRN_API cairn_status cairn_filter_parse(const char *json, size_t len,
                                          cairn_filter **out);
CAIRN_API void cairn_filter_free(cairn_filter *filter);

/* Exact top-k. hits has room for k entries; *n_hits receives how many were
 * found, nearest first (ties by ascending id). filter may be NULL. */
CAIRN_API cairn_status cairn_search(cairn_db *db, const char *collection,
                                    const float *query, uint32_t dim, uint32_t k,
                                    const cairn_filter *filter, cairn_hit *hits,
                                    uint32_t *n_hits);

/* ---------------------------------------------------------------------
 * Restore points and statistics
 * ------------------------------------------------------------------- */
/* A named marker in the WAL (name rules as collection names), durable on
 * return in SYNC mode. lsn_out may be NULL. */
CAIRN_API cairn_status cairn_restore_point(cairn_db *db, const char *name,
                                           uint64_t *lsn_out);

typedef struct cairn_recovery_report {
    uint64_t checkpoint;       /* generation of the checkpoint opened, 0 = none */
    uint64_t pages_read;       /* pages loaded from the page store */
    uint64_t pages_us;         /* time spent loading pages */
    uint64_t start_lsn;        /* where replay began (the checkpoint's redo LSN) */
    uint64_t end_lsn;          /* end of the valid log */
    uint64_t records_replayed; /* records read and validated */
    uint64_t txns_applied;     /* committed transactions applied */
    uint64_t txns_discarded;   /* transactions cut by the crash */
    uint64_t bytes_truncated;  /* torn bytes removed at the tail */
    uint64_t truncated_at;     /* LSN of the torn tail, 0 if none */
    char truncated_file[256];  /* segment holding the torn tail, "" if none */
    uint64_t duration_us;
    uint32_t jobs;             /* replay workers used */
} cairn_recovery_report;

typedef struct cairn_stats {
    uint64_t last_lsn;     /* end of the last record appended */
    uint64_t durable_lsn;  /* everything before this is on stable storage */
    uint64_t next_txn_id;
    uint64_t wal_bytes;    /* bytes of WAL segments on disk */
    uint64_t commits;      /* transactions committed by this handle */
    uint32_t timeline;
    const char *io_backend; /* "io_uring" or "posix"; static string */
    cairn_recovery_report recovery;
} cairn_stats;

CAIRN_API cairn_status cairn_stats_get(cairn_db *db, cairn_stats *out);

/* ---------------------------------------------------------------------
 * Checkpoints
 * ------------------------------------------------------------------- */
typedef struct cairn_checkpoint_info {
    uint64_t generation;    /* 1, 2, ...: the checkpoint's number */
    uint64_t redo_lsn;      /* replay after a crash starts here */
    int64_t time_us;        /* when it was taken */
    uint64_t last_txn_id;   /* highest transaction folded into it */
    uint32_t timeline;
    uint64_t pages_written; /* data + map + catalog pages it wrote */
    uint64_t wal_segments_removed;
    uint64_t duration_us;
} cairn_checkpoint_info;

/* Runs a checkpoint now (waiting for one in progress first) and returns
 * when its superblock is durable. info may be NULL. Writers keep
 * committing meanwhile. */
CAIRN_API cairn_status cairn_checkpoint(cairn_db *db, cairn_checkpoint_info *info);

/* ---------------------------------------------------------------------
 * Checkpoint pins: reading a consistent image from outside the engine
 * ------------------------------------------------------------------- */
typedef struct cairn_pin cairn_pin;
typedef struct cairn_pin_info {
    uint64_t generation;  /* the pinned checkpoint */
    uint64_t redo_lsn;    /* its state is the log up to here */
    int64_t time_us;
    uint64_t last_txn_id;
    uint32_t timeline;
    uint32_t collections;
    uint64_t db_id;
} cairn_pin_info;

/* Pins the newest checkpoint of the database in directory path, open in
 * another process, in this one, or not at all (no database lock is taken).
 * Until cairn_pin_close, no checkpoint reuses its pages or deletes its
 * files, and no WAL from its redo LSN on is removed. A pin whose process
 * dies is released by the next checkpoint. CAIRN_ENOTFOUND: no checkpoint
 * yet. info may be NULL. */
CAIRN_API cairn_status cairn_pin_open(const char *path, cairn_pin **out, cairn_pin_info *info);

/* Called as a long operation goes; a nonzero return cancels it
 * (CAIRN_ECANCELED). */
typedef int (*cairn_progress_fn)(void *ctx, uint64_t done_bytes, uint64_t total_bytes);

/* Copies the pinned checkpoint into a new database directory `target`
 * (which must not exist): every page verified as it is read, written to
 * "<target>.partial", made durable, then renamed to target. Opening the
 * copy gives exactly the state of the checkpoint. progress may be NULL. */
CAIRN_API cairn_status cairn_pin_copy(cairn_pin *pin, const char *target,
                                      cairn_progress_fn progress, void *ctx);

/* Releases the pin. */
CAIRN_API cairn_status cairn_pin_close(cairn_pin *pin);

/* ---------------------------------------------------------------------
 * WAL segments and backups (point-in-time recovery: docs/pitr.md)
 * ------------------------------------------------------------------- */
/* Closes the current WAL segment now (written and synced), so an archiver
 * can copy it; *lsn_out (may be NULL) gets where the log goes on, or 0
 * when the segment held no record and nothing was done. */
CAIRN_API cairn_status cairn_wal_switch(cairn_db *db, uint64_t *lsn_out);

typedef struct cairn_backup_options {
    int incremental;        /* only pages changed since the parent */
    const char *parent;     /* NULL: the newest backup of the same timeline */
    const char *key_file;   /* an encrypted repository's key; creates one encrypted */
    int level;              /* zstd level 1..19 for new objects; 0: the repository's */
    int wal_level;          /* zstd level -7..-1 or 1..19 of archived WAL segments, recorded
                               by a repository this call creates (a backup archives no
                               segment itself); 0: the repository's (-1 at creation) */
} cairn_backup_options;

typedef struct cairn_backup_info {
    char id[64];
    char parent[64];        /* "" for a full backup */
    uint64_t generation;    /* the checkpoint backed up */
    uint64_t redo_lsn;
    uint64_t last_txn_id;
    uint32_t timeline;
    uint64_t pages, pages_new;
    uint64_t bytes_stored;  /* written to the repository by this backup */
    uint64_t duration_us;
} cairn_backup_info;

/* Backs up db's newest checkpoint into the repository directory repo
 * (created if missing), online: writers keep committing meanwhile.
 * opts and info may be NULL. CAIRN_ENOTFOUND: no checkpoint yet (run
 * cairn_checkpoint first). */
CAIRN_API cairn_status cairn_backup(cairn_db *db, const char *repo,
                                    const cairn_backup_options *opts, cairn_backup_info *info);

/* ---------------------------------------------------------------------
 * Checking a database
 * ------------------------------------------------------------------- */
typedef struct cairn_check_report {
    uint64_t generation;        /* checkpoint checked (0: none yet) */
    uint64_t pages_checked;     /* on-disk pages read and verified (superblock,
                                   maps, catalog, point pages) */
    uint64_t points_checked;    /* live points walked in memory */
    uint64_t wal_bytes_checked; /* WAL from the redo LSN to the end, decoded */
    uint32_t problems;          /* how many problems were found */
    char first_problem[512];    /* the first, naming file and page/offset */
    uint32_t warnings;          /* findings that are not damage (a torn
                                   superblock slot that is not the current
                                   one); not counted in problems */
    uint32_t collections_checked;  /* collections of the checkpoint walked */
    uint64_t disk_points_checked;  /* points of the checkpoint's image walked */
    uint64_t wal_records_checked;  /* WAL records decoded */
    uint64_t duration_us;
} cairn_check_report;

/* Receives each finding of a check, in the order found: problem 1 for
 * damage (counted in problems), 0 for a warning. message names the file
 * and the page or offset; it lives until fn returns. */
typedef void (*cairn_check_fn)(void *ctx, int problem, const char *message);

/* Walks every page and structure of an open database: returns CAIRN_OK when
 * nothing is wrong, CAIRN_ECORRUPT (message: the first problem) otherwise
 * (CAIRN_EIO when the first problem is a file that could not be read).
 * Reads only; commits may run meanwhile, checkpoints wait. report may be
 * NULL. What is checked: docs/recovery.md, "Checking a database". */
CAIRN_API cairn_status cairn_check(cairn_db *db, cairn_check_report *report);
/* The same, handing every finding to fn (may be NULL). */
CAIRN_API cairn_status cairn_check_ex(cairn_db *db, cairn_check_report *report,
                                      cairn_check_fn fn, void *ctx);

/* Frees memory returned by cairn (payload copies, collection lists). */
CAIRN_API void cairn_free(void *p);

#ifdef __cplusplus
}
#endif
#endif /* CAIRN_H */
