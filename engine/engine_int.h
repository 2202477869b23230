/*
 * engine_int.h — internals of the engine layer: the database handle,
 * collections and their point stores, transactions, and the replay engine.
 *
 * Locking order (never take an earlier lock while holding a later one):
 *   db->commit_mu  >  db->cat_lock  >  coll->lock  >  db->apply_mu
 * commit_mu serializes appends to the WAL (so WAL order = apply order) and
 * DDL; cat_lock guards the collection table; coll->lock a point store.
 * In SYNC mode committed transactions are applied from the WAL's
 * on_durable callback, run by whichever thread completed the flush: the WAL
 * flusher, or a committer that led the group (possibly holding commit_mu,
 * as DDL does). It takes apply_mu/cat_lock/coll->lock only and never waits
 * for commit_mu.
 */
#ifndef CAIRN_ENGINE_INT_H
#define CAIRN_ENGINE_INT_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "cairn.h"
#include "wal/wal.h"

/* ---- point store (engine/store.c) ------------------------------------- */

/* Dense arrays for a fast flat scan; id -> slot through an open-addressing
 * hash with linear probing and backward-shift deletion. Delete moves the
 * last slot into the hole. Payloads are kept as the validated JSON text that
 * was committed (returned byte for byte by cairn_get); the tree a filter
 * needs is parsed on first use and cached (pjson), under the collection's
 * read lock, by compare-and-swap. */
struct store {
    uint32_t dim;
    size_t n, cap;
    float *vecs;       /* cap * dim */
    float *norms;      /* cap */
    uint64_t *ids;     /* cap */
    char **ptext;      /* cap; NUL-terminated copy, NULL = no payload */
    uint32_t *plens;   /* cap; payload text bytes */
    json_t *_Atomic *pjson; /* cap; parsed payload cache, NULL until needed */
    uint64_t payload_bytes;
    uint64_t *hkeys;   /* hcap */
    uint32_t *hslots;  /* hcap; UINT32_MAX = empty */
    size_t hcap;       /* power of two */
};

void store_init(struct store *s, uint32_t dim);
void store_free(struct store *s);
/* Copies vec and the payload text (NULL/0 = none). */
cairn_status store_upsert(struct store *s, uint64_t id, const float *vec,
                          const char *payload, uint32_t payload_len);
void store_delete(struct store *s, uint64_t id);
/* Slot of id or SIZE_MAX. */
size_t store_find(const struct store *s, uint64_t id);
uint64_t store_bytes(const struct store *s);
/* The parsed payload of slot (NULL if none), parsed now if not yet. Safe
 * under the collection's read lock. */
const json_t *store_payload_json(struct store *s, size_t slot);

/* ---- collections ------------------------------------------------------- */

struct coll {
    uint32_t id;
    uint32_t dim;
    cairn_metric metric;
    char name[CAIRN_MAX_NAME + 1];
    pthread_rwlock_t lock;
    struct store st;
};

/* ---- transactions ------------------------------------------------------ */

enum txn_state { TXN_ACTIVE = 1, TXN_COMMITTED, TXN_ABORTED, TXN_FAILED };

/* One buffered operation; the record bytes live in txn->buf at rec_off. */
struct txn_op {
    uint8_t type;      /* WAL_REC_UPSERT / WAL_REC_DELETE */
    uint32_t coll_id;
    uint64_t id;
    size_t rec_off;
};

struct cairn_txn {
    cairn_db *db;
    enum txn_state state;
    uint64_t txn_id;
    uint8_t *buf;      /* encoded WAL records */
    size_t len, cap;
    struct txn_op *ops;
    size_t nops, capops;
    /* apply queue linkage (SYNC mode) */
    struct cairn_txn *q_next, *q_prev;
    uint64_t end_lsn;
    bool applied;
};

/* ---- the database handle ----------------------------------------------- */

struct cairn_db {
    char *path;
    char *waldir;
    int lock_fd;
    cairn_options opts;
    uint64_t db_id;
    uint32_t timeline;
    uint32_t seg_shift;

    wal_writer *wal;

    pthread_mutex_t commit_mu;
    int64_t last_commit_us;           /* commit times never go backwards */
    _Atomic uint64_t next_txn_id;
    uint32_t next_coll_id;            /* under commit_mu */
    _Atomic uint64_t commits;

    pthread_rwlock_t cat_lock;
    struct coll **colls;              /* by position; NULL holes not kept */
    size_t ncolls, capcolls;

    /* SYNC mode: transactions appended, waiting to be applied in LSN order */
    pthread_mutex_t apply_mu;
    pthread_cond_t apply_cv;
    struct cairn_txn *q_head, *q_tail;
    uint64_t applied_lsn;

    /* Transaction buffers kept for reuse: fresh memory is slow on first
     * touch (LIMITS.md), and a batch of 1000 points needs ~600 KB. */
    pthread_mutex_t pool_mu;
    struct txn_bufs {
        uint8_t *buf;
        size_t cap;
        struct txn_op *ops;
        size_t capops;
    } pool[8];
    unsigned npool;

    cairn_recovery_report recovery;
};

void txn_pool_free(cairn_db *db);

/* catalog (engine/catalog.c); callers hold cat_lock as noted */
struct coll *cat_find_name(cairn_db *db, const char *name); /* any lock */
struct coll *cat_find_id(cairn_db *db, uint32_t id);        /* any lock */
/* Apply a CREATE/DROP (writers hold cat_lock exclusively inside). */
cairn_status cat_apply_create(cairn_db *db, uint32_t id, uint32_t dim,
                              cairn_metric metric, const char *name,
                              size_t name_len);
void cat_apply_drop(cairn_db *db, uint32_t id);
void cat_free_all(cairn_db *db);
/* Validates a collection or restore-point name. */
cairn_status cat_check_name(const char *name, const char *what);

/* Validation shared by the API and replay. */
cairn_status check_vector(const float *v, uint32_t dim, uint32_t want_dim,
                          const char *coll_name);
/* CAIRN_EPAYLOAD unless text is a JSON object of at most the limit (see
 * common/json.h for what is accepted). len 0 is no payload. */
cairn_status check_payload(const char *text, size_t len);

/* Apply one decoded record to a collection (takes coll->lock). */
cairn_status apply_upsert(struct coll *c, uint64_t id, const float *vec,
                          const char *payload, uint32_t payload_len);
void apply_delete(struct coll *c, uint64_t id);

/* ---- replay engine (engine/replay.c) ------------------------------------ */

enum replay_target_kind {
    REPLAY_TO_END = 0,
    REPLAY_TO_LSN,
    REPLAY_TO_TIME,
    REPLAY_TO_TXN,
    REPLAY_TO_NAME
};

struct replay_target {
    enum replay_target_kind kind;
    bool inclusive;        /* default true */
    uint64_t lsn;          /* TO_LSN: commits whose record LSN <= (<) lsn */
    int64_t time_us;       /* TO_TIME: commits with time <= (<) time_us */
    uint64_t txn;          /* TO_TXN: stop after (before) txn's commit */
    char name[CAIRN_MAX_NAME + 1]; /* TO_NAME: commits before the marker */
};

struct replay_result {
    uint64_t records;       /* records read */
    uint64_t txns_applied;
    uint64_t txns_discarded;/* began but never committed in the range */
    uint64_t last_commit_lsn;
    int64_t last_commit_time_us;
    uint64_t max_txn_id;    /* highest txn id seen in any record */
    uint32_t max_coll_id;   /* highest collection id seen */
    bool target_reached;
    uint64_t stop_lsn;      /* LSN where replay stopped (target or end) */
};

/* Reads records from r and applies committed transactions to db's catalog
 * and stores, dispatching by collection to `jobs` workers (jobs <= 1: in
 * the calling thread). Per-collection LSN order is kept; DDL is a barrier;
 * the cut (target) always falls between commits. */
cairn_status replay_run(cairn_db *db, wal_reader *r,
                        const struct replay_target *target, unsigned jobs,
                        struct replay_result *res);

#endif
