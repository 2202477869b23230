/*
 * engine_int.h — internals of the engine layer: the database handle,
 * collections and their point stores, transactions, and the replay engine.
 *
 * Locking order (never take an earlier lock while holding a later one):
 *   ckpt run_mu > db->commit_mu > db->gate > db->cat_lock > coll->lock > db->apply_mu
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

#include "engine/pager.h"

/* The points of a collection, in the pages of its buffer pool (s->pg):
 * PSPACE_GROUP page 0 is the header; slots [0, n) are dense (a delete
 * moves the last slot into the hole) and grouped: a slot page (id, norm,
 * payload reference per slot), then the vector pages of its slots;
 * payload text, kept byte for byte as committed, lives in PSPACE_HEAP
 * (records in heap pages, chains of overflow pages for large ones). Byte
 * tables: the top of engine/store.c and docs/format.md, "Point pages".
 *
 * In memory only, rebuilt by store_load(): the id -> slot hash (open
 * addressing, linear probing, backward-shift deletion), the parsed payload
 * cache (pjson: the tree a filter needs, parsed on first use under the read
 * lock and published by compare-and-swap), the free heap page numbers.
 *
 * Every mutation is all-or-nothing: on failure (CAIRN_ENOMEM, CAIRN_ENOSPC)
 * nothing changed, pages included (outside bulk mode: store_bulk_begin).
 * Mutations hold the collection's write lock, reads its read lock. No
 * frame pointer is kept between calls. */

/* The mutation in progress (store.c): pages written so far, how to undo. */
struct store_op {
    uint64_t lsn;
    struct store_op_page *pages;
    size_t npages, cappages;
    struct store_op_undo *undo;
    size_t nundo, capundo;
    uint8_t *bytes; /* before-images of what undo restores */
    size_t nbytes, capbytes;
    struct store_op_drop *drops; /* pages dropped when the mutation ends */
    size_t ndrops, capdrops;
    uint32_t heap_open, heap_next, hfree_n, hfree_lo; /* saved at begin */
};

struct store {
    uint32_t coll_id;
    uint32_t dim;
    /* layout, a function of dim (store.c) */
    uint32_t vpp;    /* vectors per vector page; 0 when a vector spans pages */
    uint32_t ppv;    /* pages per vector when it spans; 0 otherwise */
    uint32_t spg;    /* slots per group */
    uint32_t gpages; /* pages per group: the slot page + its vector pages */
    size_t n;                 /* points */
    uint64_t payload_bytes;   /* sum of payload lengths */
    uint32_t heap_open;       /* heap page new records go to; UINT32_MAX: none */
    struct pager pg;          /* every page (the checkpointer's view) */
    uint64_t *hkeys;          /* hcap */
    uint32_t *hslots;         /* hcap; UINT32_MAX = empty */
    size_t hcap;              /* power of two */
    json_t *_Atomic *pjson;   /* pjcap; parsed payload per slot, NULL until needed */
    size_t pjcap;
    uint64_t *hfree;          /* bit p: heap page number p < heap_next is free */
    size_t hfree_words;
    uint32_t heap_next;       /* heap page numbers >= this were never used */
    uint32_t hfree_n;         /* free numbers below heap_next */
    uint32_t hfree_lo;        /* no free bit in words below this one */
    struct store_op op;
    /* Bulk mode (store_bulk_begin): changes keep no undo log and the
     * header page is brought up to date once, at store_bulk_end. */
    bool bulk;
    bool hdr_due;             /* bulk: the header page is behind n / payload_bytes */
    uint64_t hdr_lsn;         /* bulk: the LSN the header page gets */
    bool broken;              /* a bulk change failed halfway: no change is accepted */
    /* Test seam: when nonzero, counts fallible steps of mutations down and
     * fails the one that reaches zero with CAIRN_ENOMEM (then stays 0). */
    unsigned fault_in;
};

/* An empty store without pages, for a loader: pager_install() the pages of
 * the collection into s->pg, then store_load(). */
void store_prepare(struct store *s, uint32_t coll_id, uint32_t dim);
/* A new empty store: store_prepare() and the header page, stamped lsn. */
cairn_status store_init(struct store *s, uint32_t coll_id, uint32_t dim, uint64_t lsn);
/* Frees the memory and the pages. NULL or a zeroed store is a no-op. */
void store_free(struct store *s);
/* After pager_install() of every page: validates the header and every
 * structure (CAIRN_ECORRUPT naming collection, space and page of the first
 * problem; CAIRN_EVERSION for a newer header version) and rebuilds the
 * in-memory state. On failure the store holds no points (store_free it). */
cairn_status store_load(struct store *s);
/* One problem found by store_check (a line naming the collection, the page
 * space and the page). Return false to stop the walk. */
typedef bool (*store_report_fn)(void *ctx, const char *problem);
/* Walks every page and structure, as store_load does and more (payloads
 * are JSON objects, norms match vectors), reporting every problem found;
 * *problems (may be NULL) gets their number. CAIRN_OK if none,
 * CAIRN_ECORRUPT (message: the first) otherwise, CAIRN_ENOMEM if the walk
 * could not run. Changes nothing; works on installed pages before
 * store_load as well as after. */
cairn_status store_check(const struct store *s, store_report_fn report, void *ctx,
                         uint64_t *problems);

/* Copies vec (dim floats) and the payload text (NULL/0 = none) into the
 * store; pages changed get page LSN lsn. */
cairn_status store_upsert(struct store *s, uint64_t id, const float *vec,
                          const char *payload, uint32_t payload_len, uint64_t lsn);
/* The same with the vector's norm computed by the caller: it must be
 * vec_norm(vec, dim) (the replay computes it on another thread). */
cairn_status store_upsert_norm(struct store *s, uint64_t id, const float *vec, float norm,
                               const char *payload, uint32_t payload_len, uint64_t lsn);
/* Bulk mode, for a run of changes under one hold of the write lock (the
 * replay): no undo log is kept and the header page is rewritten once, by
 * store_bulk_end, instead of by every change. The price: a change that
 * fails halfway cannot be taken back, so the store is marked broken and
 * refuses every later change (CAIRN_ECORRUPT); its holder must discard it
 * (a failed replay discards the whole database). store_bulk_end must run
 * before the lock is released: nobody else may see the header behind. */
void store_bulk_begin(struct store *s);
cairn_status store_bulk_end(struct store *s);
/* Removes id (absent: CAIRN_OK, nothing changes). */
cairn_status store_delete(struct store *s, uint64_t id, uint64_t lsn);
/* Slot of id or SIZE_MAX. */
size_t store_find(const struct store *s, uint64_t id);
/* A hint: id will be looked up soon (its hash bucket is fetched into the
 * cache meanwhile). Reads no byte; needs the same lock as a lookup. */
void store_prefetch(const struct store *s, uint64_t id);
static inline size_t store_count(const struct store *s) { return s->n; }
/* Vector + id bytes of every point, plus the payload bytes. */
uint64_t store_bytes(const struct store *s);
uint64_t store_get_id(const struct store *s, size_t slot);
/* dim floats. */
void store_get_vector(const struct store *s, size_t slot, float *out);
/* *out: a malloc'd NUL-terminated copy of the payload, NULL if none. */
cairn_status store_get_payload(const struct store *s, size_t slot, char **out);
/* The parsed payload of slot (NULL if none), parsed now if not yet. Safe
 * under the collection's read lock. NULL with *failed set: memory ran out
 * (the text was checked at commit, so nothing else fails the parse). */
const json_t *store_payload_json(struct store *s, size_t slot, bool *failed);
/* Exact top-k over every point, page by page, with the kernels of index/:
 * the same hits, distances and order as flat_search() over the same points
 * in slot order (accept: as flat_search's, may be NULL). */
cairn_status store_search(const struct store *s, cairn_metric m, const float *query,
                          uint32_t k, bool (*accept)(void *ctx, size_t slot), void *ctx,
                          cairn_hit *hits, uint32_t *n_hits);

/* ---- collections ------------------------------------------------------- */

struct coll {
    uint32_t id;
    uint32_t dim;
    cairn_metric metric;
    char name[CAIRN_MAX_NAME + 1];
    pthread_rwlock_t lock;
    struct store st;
    /* checkpointer (under cat_lock held exclusively to change): a running
     * checkpoint reads this collection's snapshot; a drop then leaves the
     * freeing to the checkpointer (dropped). */
    bool ckpt_hold;
    bool dropped;
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
    cairn_status apply_st; /* durable, but applying it in memory failed */
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

    /* checkpoints (engine/ckpt.c). gate: applying a transaction or DDL
     * holds it shared; a checkpoint's snapshot holds it exclusively, so it
     * never sees a unit half-applied. applied_end/applied_txn (under gate):
     * end LSN and txn id of the last unit applied. */
    pthread_rwlock_t gate;
    uint64_t applied_end;
    uint64_t applied_txn;
    struct ckpt *ck;

    /* A change that is durable (or will be, in async mode) could not be
     * applied in memory (out of memory): memory no longer is a state of
     * the log, so reads, writes and checkpoints are refused until a reopen
     * replays it. apply_msg under apply_mu. */
    _Atomic bool apply_failed;
    char apply_msg[384];

    /* An extension above the engine (pitr/api.c: the WAL archiver) that
     * cairn_close stops after the checkpointer (whose retention hook it may
     * serve) and before the WAL. */
    void (*ext_stop)(void *ctx);
    void *ext_ctx;
};

/* The open behind cairn_open (pitr/api.c wraps it to start the archiver
 * when the options name a repository). */
cairn_status engine_open(const char *path, const cairn_options *opts, cairn_db **out);
/* Attaches the extension cairn_close stops (one per handle). */
void engine_set_ext(cairn_db *db, void (*stop)(void *ctx), void *ctx);

/* Poisons db after a failed apply of the durable unit described by what
 * (cairn_last_error() holds the reason); logs it once. */
void db_apply_failed(cairn_db *db, const char *what);
/* CAIRN_EPOISONED (with why) after a failed apply, else CAIRN_OK. */
cairn_status db_usable(cairn_db *db);
/* st, with "database \"<path>\": " before the thread's message unless it
 * names the path already (I/O failures name their file; an allocation
 * failure deep down does not): for the exits of the public calls. */
cairn_status db_named(const char *path, cairn_status st);

void txn_pool_free(cairn_db *db);
/* The WAL writer's on_durable of a handle in SYNC mode (txn.c): applies
 * the queued commits (engine_open and a partial restore's drops use it). */
void engine_on_durable(void *ctx, uint64_t durable_lsn);

/* catalog (engine/catalog.c); callers hold cat_lock as noted */
struct coll *cat_find_name(cairn_db *db, const char *name); /* any lock */
struct coll *cat_find_id(cairn_db *db, uint32_t id);        /* any lock */
/* Apply a CREATE/DROP (writers hold cat_lock exclusively inside). */
/* lsn: the commit LSN of the CREATE (the header page's LSN). */
cairn_status cat_apply_create(cairn_db *db, uint32_t id, uint32_t dim,
                              cairn_metric metric, const char *name,
                              size_t name_len, uint64_t lsn);
void cat_apply_drop(cairn_db *db, uint32_t id);
/* Frees a collection no longer in the table. */
void cat_coll_free(struct coll *c);
/* Open: adds a collection of a checkpoint with an empty store (its pages
 * are installed next, then store_load). Caller is single-threaded. */
cairn_status cat_load_coll(cairn_db *db, uint32_t id, uint32_t dim, cairn_metric metric,
                           const char *name, struct coll **out);
void cat_free_all(cairn_db *db);
/* Validates a collection or restore-point name. */
cairn_status cat_check_name(const char *name, const char *what);

/* Validation shared by the API and replay. */
cairn_status check_vector(const float *v, uint32_t dim, uint32_t want_dim,
                          const char *coll_name);
/* CAIRN_EPAYLOAD unless text is a JSON object of at most the limit (see
 * common/json.h for what is accepted). len 0 is no payload. */
cairn_status check_payload(const char *text, size_t len);

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
    uint64_t records_skipped; /* of collections a partial restore leaves out */
    uint64_t txns_applied;
    uint64_t txns_discarded;/* began but never committed in the range */
    uint64_t last_commit_lsn;
    uint64_t last_commit_end; /* end of that COMMIT record (0: none applied) */
    int64_t last_commit_time_us;
    uint64_t last_txn_id;   /* txn id of the last commit applied */
    uint64_t max_txn_id;    /* highest txn id seen in any record */
    uint32_t max_coll_id;   /* highest collection id seen */
    bool target_reached;
    bool until_reached;     /* stopped at replay_opts.until_lsn */
    uint64_t stop_lsn;      /* LSN where replay stopped (target, bound or end) */
};

/* Reads records from r and applies committed transactions to db's catalog
 * and stores, dispatching by collection to `jobs` workers (jobs <= 1: in
 * the calling thread). Per-collection LSN order is kept; DDL is a barrier;
 * the cut (target) always falls between commits. Crash recovery. */
cairn_status replay_run(cairn_db *db, wal_reader *r,
                        const struct replay_target *target, unsigned jobs,
                        struct replay_result *res);

/* What a point-in-time restore adds to a replay (engine/restore.c). */
struct replay_opts {
    /* bounded: the log is read as if it ended before until_lsn: the first
     * record at or after it is not counted nor applied, and replay stops
     * there with until_reached (a timeline's log past the LSN where a
     * later timeline branched from it is that branch's abandoned future). */
    bool bounded;
    uint64_t until_lsn;
    /* Called with the result so far and the LSN of the record just read,
     * when 64 MiB of log were read since the last call or a second passed
     * (checked every 256 records); nonzero cancels the replay with
     * CAIRN_ECANCELED. NULL: none. */
    int (*progress)(void *ctx, const struct replay_result *sofar, uint64_t lsn);
    void *progress_ctx;
    /* A partial restore: only collections carrying one of these nonly
     * names get their point records applied (NULL or 0: all). The set of
     * selected ids follows the DDL replayed (a CREATE under a selected
     * name selects the new id, its DROP unselects it); DDL itself always
     * applies, so ids and names stay exact. Records of other collections
     * are counted (for the COMMIT's record count) but neither copied nor
     * decoded. */
    const char *const *only_names;
    size_t nonly;
};

/* replay_run with o (NULL: exactly replay_run). */
cairn_status replay_run_ex(cairn_db *db, wal_reader *r, const struct replay_target *target,
                           unsigned jobs, const struct replay_opts *o,
                           struct replay_result *res);

/* ---- checkpoints (engine/ckpt.c) --------------------------------------- */

/* Open: loads the newest valid checkpoint (superblock, catalog, every
 * collection's pages) into db; *redo_lsn = where WAL replay must start (0
 * without a checkpoint). Removes page files no checkpoint references. */
/* Reads and checks DB/meta of the database directory dbpath (db.c). */
cairn_status db_meta_read(const char *dbpath, uint64_t *db_id, uint32_t *seg_shift,
                          uint32_t *timeline);
/* Rewrites DB/meta with another timeline, durably (cairn_durable_replace). */
cairn_status db_meta_set_timeline(const char *dbpath, uint32_t timeline);

/* DB/<this> exists from the first change a restore makes to the directory
 * until its last (engine/restore.c): cairn_open and another restore refuse
 * the directory meanwhile. */
#define DB_RESTORE_MARKER "restore-incomplete"
/* CAIRN_ECORRUPT naming the marker when dbpath holds one. */
cairn_status db_restore_marker_check(const char *dbpath);
/* The open of a restore (db.c): lock, no marker, meta (must exist), the
 * last checkpoint loaded (ckpt_open; *redo_lsn its redo LSN, 0 without
 * one); no replay, no WAL writer (db->wal NULL), no checkpointer thread;
 * durability SYNC, so ckpt_run works without a writer. Free with
 * db_discard. */
cairn_status db_open_for_restore(const char *path, cairn_db **out, uint64_t *redo_lsn);
void db_discard(cairn_db *db);
/* cairn_close, but the database's lock stays held: its descriptor goes to
 * *lock_fd (release it with cfs_unlock). Every thread is stopped and every
 * file closed, so nothing of the handle touches the directory any more,
 * and no other handle can open it until the release (pitr/replace.c swaps
 * the directory meanwhile). */
cairn_status db_close_keep_lock(cairn_db *db, int *lock_fd);
/* After a replay: next txn and collection ids, last commit time and txn
 * from res (shared by recovery and restore). */
void db_note_replay(cairn_db *db, const struct replay_result *res);
/* The time of the next commit: now, or just after the last commit's when
 * the clock went back (commit times strictly increase along the log). */
int64_t db_next_commit_time(cairn_db *db);
/* Replay workers when the caller asks for 0: the CPUs, at most 16. */
unsigned db_default_jobs(void);
cairn_status ckpt_open(cairn_db *db, uint64_t *redo_lsn);
/* Starts the background checkpointer (after recovery). */
cairn_status ckpt_start(cairn_db *db);
/* Stops the thread and frees the checkpointer. */
void ckpt_close(cairn_db *db);
/* A commit ended at `end_lsn`: wakes the checkpointer if the WAL grew by
 * the configured amount since the last checkpoint. */
void ckpt_note_wal(cairn_db *db, uint64_t end_lsn);
cairn_status ckpt_run(cairn_db *db, cairn_checkpoint_info *info);
/* Pre-write: step 3 of the next checkpoint done early for the pages no
 * change has touched lately, so that the checkpoint, when it comes, writes
 * only what changed since (a point-in-time restore calls it while it
 * replays). In each collection with at least min_dirty dirty pages, the
 * dirty pages whose page LSN is below cold_below are written to free
 * physical pages (no sync; nothing an open reads changes) and become
 * clean; *newest gets the highest page LSN of the dirty pages seen (pass
 * it as the next call's cold_below), *pages the pages written. The next
 * ckpt_run goes on from there. A failure poisons the checkpointer (no
 * checkpoint until the database is reopened), and so does a failed
 * checkpoint after pre-writes: pages are clean then that no image on disk
 * holds. */
cairn_status ckpt_prewrite(cairn_db *db, uint64_t cold_below, size_t min_dirty,
                           uint64_t *newest, uint64_t *pages);

/* ---- cairn check (engine/check.c; accessors at the end of ckpt.c) ------ */

struct super;     /* engine/ckpt_int.h */
struct cat_entry; /* engine/ckpt_int.h */
struct pfile;     /* engine/pfile.h */
struct pmap;      /* engine/pfile.h */

/* The checkpointer as a checker sees it while it holds run_mu (no
 * checkpoint runs meanwhile): pointers valid until the callback returns. */
struct ckpt_view {
    const char *super_path, *cat_path, *coll_dir;
    const struct super *cur;   /* the checkpoint in use (gen 0: none) */
    bool poisoned;             /* a superblock write or a pre-write failed:
                                  disk may differ */
    bool pending;              /* pre-writes of the next checkpoint are done
                                  (ckpt_prewrite): maps and live pages are
                                  ahead of the files */
    const struct pfile *cat;   /* catalog.pages: page states */
    const uint32_t *cat_pages; /* the current catalog chain */
    size_t ncat;
    struct ckpt *ck;
};
typedef cairn_status (*ckpt_check_fn)(cairn_db *db, const struct ckpt_view *v, void *ctx);
/* Runs fn(db, view, ctx) holding the checkpointer's run_mu. */
cairn_status ckpt_check_hold(cairn_db *db, ckpt_check_fn fn, void *ctx);
/* The checkpointer's page file of collection id and its PSPACE_N maps
 * (*maps), or NULL when it has none. */
const struct pfile *ckpt_view_disk(const struct ckpt_view *v, uint32_t id,
                                   const struct pmap **maps);
/* Decodes catalog entry k (CAT_ENTRY bytes at e) of catalog page phys:
 * CAIRN_ECORRUPT naming file, page and entry when a field is invalid. */
cairn_status ckpt_cat_entry_decode(const uint8_t *e, struct cat_entry *o, const char *file,
                                   uint32_t phys, uint32_t k);

#endif
