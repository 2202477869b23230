/*
 * txn.c — transactions, commit, DDL and restore points.
 *
 * The recipe of a commit (wal/README.md has the WAL's half):
 *   1. validate each operation when it is added (collection, dimension,
 *      finite values, payload), and encode its WAL record into txn->buf;
 *   2. commit: take commit_mu; check that every collection still exists;
 *      stamp the COMMIT record with a time that never goes backwards;
 *      append the whole transaction to the WAL in one piece;
 *   3. SYNC: queue the transaction for apply and release commit_mu; the WAL
 *      the WAL writes + fdatasyncs the group (the first waiting committer
 *      leads, or the flusher thread) and calls on_durable, which
 *      applies queued transactions in LSN order; the committer returns once
 *      its transaction is durable and applied.
 *      ASYNC/NONE: apply while still holding commit_mu (LSN order), return.
 *   4. a failed append/flush leaves nothing applied; the WAL writer is then
 *      poisoned and every later write fails with CAIRN_EPOISONED. A unit
 *      that is logged but fails to apply in memory (ENOMEM) poisons the
 *      whole handle (db_apply_failed): its own call and every later read,
 *      write and checkpoint get CAIRN_EPOISONED until a reopen replays it.
 * DDL (create/drop collection) holds commit_mu until it is applied, so that
 * commits validated under commit_mu always see the catalog of the log.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "engine/engine_int.h"

/* ---- buffers ----------------------------------------------------------- */

static cairn_status buf_reserve(cairn_txn *t, size_t more) {
    if (t->len + more <= t->cap) return CAIRN_OK;
    size_t ncap = t->cap ? t->cap : 1024;
    while (ncap < t->len + more) ncap *= 2;
    uint8_t *n = realloc(t->buf, ncap);
    if (!n)
        return cerr_set(CAIRN_ENOMEM, "database \"%s\": could not grow a transaction to %zu "
                        "bytes", t->db->path, ncap);
    t->buf = n;
    t->cap = ncap;
    return CAIRN_OK;
}

static cairn_status ops_reserve(cairn_txn *t) {
    if (t->nops < t->capops) return CAIRN_OK;
    size_t ncap = t->capops ? t->capops * 2 : 8;
    struct txn_op *n = realloc(t->ops, ncap * sizeof *n);
    if (!n)
        return cerr_set(CAIRN_ENOMEM, "database \"%s\": could not grow a transaction",
                        t->db->path);
    t->ops = n;
    t->capops = ncap;
    return CAIRN_OK;
}

static void txn_release_ops(cairn_txn *t) {
    t->nops = 0;
    t->len = 0;
}

/* ---- lifecycle --------------------------------------------------------- */

CAIRN_API cairn_status cairn_txn_begin(cairn_db *db, cairn_txn **out) {
    cerr_clear();
    if (!db || !out) return cerr_set(CAIRN_EINVAL, "cairn_txn_begin: NULL argument");
    if (db_usable(db)) return CAIRN_EPOISONED;
    cairn_txn *t = calloc(1, sizeof *t);
    if (!t)
        return cerr_set(CAIRN_ENOMEM, "database \"%s\": could not allocate a transaction",
                        db->path);
    t->db = db;
    t->state = TXN_ACTIVE;
    t->txn_id = atomic_fetch_add(&db->next_txn_id, 1);
    pthread_mutex_lock(&db->pool_mu);
    if (db->npool) {
        struct txn_bufs *b = &db->pool[--db->npool];
        t->buf = b->buf;
        t->cap = b->cap;
        t->ops = b->ops;
        t->capops = b->capops;
    }
    pthread_mutex_unlock(&db->pool_mu);
    *out = t;
    return CAIRN_OK;
}

/* Buffers larger than this go back to the allocator, not the pool. */
#define TXN_POOL_MAX_BYTES ((size_t)64 << 20)

CAIRN_API void cairn_txn_free(cairn_txn *t) {
    if (!t) return;
    txn_release_ops(t);
    cairn_db *db = t->db;
    pthread_mutex_lock(&db->pool_mu);
    if (db->npool < CAIRN_ARRAY_LEN(db->pool) && t->cap <= TXN_POOL_MAX_BYTES) {
        db->pool[db->npool++] = (struct txn_bufs){t->buf, t->cap, t->ops, t->capops};
        t->buf = NULL;
        t->ops = NULL;
    }
    pthread_mutex_unlock(&db->pool_mu);
    free(t->buf);
    free(t->ops);
    free(t);
}

void txn_pool_free(cairn_db *db) {
    for (unsigned i = 0; i < db->npool; i++) {
        free(db->pool[i].buf);
        free(db->pool[i].ops);
    }
    db->npool = 0;
}

CAIRN_API cairn_status cairn_txn_abort(cairn_txn *t) {
    cerr_clear();
    if (!t) return cerr_set(CAIRN_EINVAL, "cairn_txn_abort: NULL transaction");
    if (t->state != TXN_ACTIVE)
        return cerr_set(CAIRN_ETXN, "transaction %llu is not active",
                        (unsigned long long)t->txn_id);
    txn_release_ops(t);
    t->state = TXN_ABORTED;
    return CAIRN_OK;
}

static const char *state_word(enum txn_state s) {
    switch (s) {
    case TXN_COMMITTED: return "committed";
    case TXN_ABORTED: return "aborted";
    case TXN_FAILED: return "failed";
    default: return "active";
    }
}

static cairn_status txn_check_active(cairn_txn *t) {
    if (!t) return cerr_set(CAIRN_EINVAL, "NULL transaction");
    if (t->state != TXN_ACTIVE)
        return cerr_set(CAIRN_ETXN, "transaction %llu is %s, not active",
                        (unsigned long long)t->txn_id, state_word(t->state));
    return CAIRN_OK;
}

/* Looks a collection up by name for an operation: id and dim out. */
static cairn_status lookup_coll(cairn_db *db, const char *name, uint32_t *id,
                                uint32_t *dim) {
    if (!name) return cerr_set(CAIRN_EINVAL, "collection name is NULL");
    pthread_rwlock_rdlock(&db->cat_lock);
    struct coll *c = cat_find_name(db, name);
    if (c) {
        *id = c->id;
        *dim = c->dim;
    }
    pthread_rwlock_unlock(&db->cat_lock);
    if (!c) return cerr_set(CAIRN_ENOTFOUND, "collection \"%s\" does not exist", name);
    return CAIRN_OK;
}

/* What every operation starts with: a fresh error message, an active
 * transaction, and the collection's id and dimension. */
static cairn_status txn_op_prepare(cairn_txn *t, const char *collection, uint32_t *cid,
                                   uint32_t *cdim) {
    cerr_clear();
    cairn_status st = txn_check_active(t);
    if (st) return st;
    return lookup_coll(t->db, collection, cid, cdim);
}

/* Adds a validated upsert to t for collection cid (of dimension cdim). */
static cairn_status txn_add_upsert(cairn_txn *t, const char *collection, uint32_t cid,
                                   uint32_t cdim, uint64_t id, const float *vector,
                                   uint32_t dim, const char *payload, size_t payload_len) {
    cairn_status st = check_vector(vector, dim, cdim, collection);
    if (st) return st;
    if (payload == NULL && payload_len != 0)
        return cerr_set(CAIRN_EINVAL, "payload is NULL but payload_len is %zu",
                        payload_len);
    st = check_payload(payload, payload_len);
    if (st) return st;
    size_t need = wal_enc_upsert(NULL, cid, t->txn_id, id, vector, dim, payload,
                                 (uint32_t)payload_len);
    if ((st = buf_reserve(t, need)) || (st = ops_reserve(t))) return st;
    struct txn_op *op = &t->ops[t->nops++];
    op->type = WAL_REC_UPSERT;
    op->coll_id = cid;
    op->id = id;
    op->rec_off = t->len;
    t->len += wal_enc_upsert(t->buf + t->len, cid, t->txn_id, id, vector, dim,
                             payload, (uint32_t)payload_len);
    return CAIRN_OK;
}

CAIRN_API cairn_status cairn_txn_upsert(cairn_txn *t, const char *collection,
                                        uint64_t id, const float *vector,
                                        uint32_t dim, const char *payload,
                                        size_t payload_len) {
    uint32_t cid = 0, cdim = 0;
    cairn_status st = txn_op_prepare(t, collection, &cid, &cdim);
    if (st) return st;
    return txn_add_upsert(t, collection, cid, cdim, id, vector, dim, payload, payload_len);
}

CAIRN_API cairn_status cairn_txn_delete(cairn_txn *t, const char *collection,
                                        uint64_t id) {
    uint32_t cid = 0, cdim = 0;
    cairn_status st = txn_op_prepare(t, collection, &cid, &cdim);
    if (st) return st;
    size_t need = wal_enc_delete(NULL, cid, t->txn_id, id);
    if ((st = buf_reserve(t, need)) || (st = ops_reserve(t))) return st;
    struct txn_op *op = &t->ops[t->nops++];
    op->type = WAL_REC_DELETE;
    op->coll_id = cid;
    op->id = id;
    op->rec_off = t->len;
    t->len += wal_enc_delete(t->buf + t->len, cid, t->txn_id, id);
    return CAIRN_OK;
}

/* ---- apply ------------------------------------------------------------- */

/* Applies a committed transaction's operations. Catalog changes cannot race
 * (DDL holds commit_mu until applied, and this txn was validated under it). */
static void txn_apply(cairn_db *db, cairn_txn *t) {
    /* A collection's write lock is held across a run of operations on it:
     * fewer lock round trips, and a reader never sees part of a
     * transaction's changes to one collection. */
    struct coll *held = NULL;
    /* Pages changed get the commit LSN: the COMMIT record ends the
     * transaction (records never span segments), as replay sees it. */
    uint64_t lsn = t->end_lsn - wal_enc_commit(NULL, 0, 0, 0);
    /* A checkpoint's snapshot never sees a transaction half-applied. */
    pthread_rwlock_rdlock(&db->gate);
    pthread_rwlock_rdlock(&db->cat_lock);
    for (size_t i = 0; i < t->nops; i++) {
        struct txn_op *op = &t->ops[i];
        struct coll *c = held && held->id == op->coll_id ? held : cat_find_id(db, op->coll_id);
        if (!c) continue; /* impossible: checked under commit_mu */
        if (c != held) {
            if (held) pthread_rwlock_unlock(&held->lock);
            pthread_rwlock_wrlock(&c->lock);
            held = c;
        }
        cairn_status st;
        if (op->type == WAL_REC_DELETE) {
            st = store_delete(&c->st, op->id, lsn);
        } else {
            const uint8_t *rec = t->buf + op->rec_off;
            const uint8_t *body = rec + WAL_REC_HDR;
            const float *vec = (const float *)(const void *)(body + 16);
            uint32_t plen = ld32(body + 12);
            const char *ptext = (const char *)(body + 16 + 4 * (size_t)ld32(body + 8));
            st = store_upsert(&c->st, op->id, vec, ptext, plen, lsn);
        }
        if (st) {
            /* Each store op is all-or-nothing, but the transaction is now
             * half in memory: the handle must not be used any more. */
            char what[96];
            snprintf(what, sizeof what, "transaction %llu (point %llu)",
                     (unsigned long long)t->txn_id, (unsigned long long)op->id);
            t->apply_st = st;
            db_apply_failed(db, what);
            break;
        }
    }
    if (held) pthread_rwlock_unlock(&held->lock);
    pthread_rwlock_unlock(&db->cat_lock);
    db->applied_end = t->end_lsn;
    db->applied_txn = t->txn_id;
    pthread_rwlock_unlock(&db->gate);
}

/* WAL on_durable callback (SYNC mode; the flusher or a leading committer
 * runs it, never two at once): apply, in LSN order, every queued
 * transaction that is now durable, then wake the committers. */
void engine_on_durable(void *ctx, uint64_t durable_lsn) {
    cairn_db *db = ctx;
    pthread_mutex_lock(&db->apply_mu);
    cairn_txn *t = db->q_head;
    while (t && t->end_lsn <= durable_lsn) {
        cairn_txn *next = t->q_next;
        /* Unlink first: the committer may free t as soon as applied is set. */
        db->q_head = next;
        if (next) next->q_prev = NULL;
        else db->q_tail = NULL;
        pthread_mutex_unlock(&db->apply_mu);
        txn_apply(db, t);
        pthread_mutex_lock(&db->apply_mu);
        t->applied = true;
        t = db->q_head;
    }
    if (durable_lsn > db->applied_lsn) db->applied_lsn = durable_lsn;
    pthread_cond_broadcast(&db->apply_cv);
    pthread_mutex_unlock(&db->apply_mu);
}

/* Called with commit_mu held, right after t was appended. The WAL may
 * already have made t durable and run on_durable past it before t reaches
 * the queue (the append wakes it before this runs): then nothing would ever
 * apply t. on_durable raises applied_lsn only after draining the queue, so
 * applied_lsn >= t->end_lsn here means exactly that; t is then applied here.
 * LSN order holds: every earlier commit was applied (it was queued before
 * t's append, or applied here itself), and no later one can be appended
 * while commit_mu is held. */
static void queue_push(cairn_db *db, cairn_txn *t) {
    pthread_mutex_lock(&db->apply_mu);
    if (db->applied_lsn >= t->end_lsn) {
        pthread_mutex_unlock(&db->apply_mu);
        txn_apply(db, t);
        pthread_mutex_lock(&db->apply_mu);
        t->applied = true;
        pthread_cond_broadcast(&db->apply_cv);
        pthread_mutex_unlock(&db->apply_mu);
        return;
    }
    t->q_next = NULL;
    t->q_prev = db->q_tail;
    if (db->q_tail) db->q_tail->q_next = t;
    else db->q_head = t;
    db->q_tail = t;
    pthread_mutex_unlock(&db->apply_mu);
}

/* Waits until t is applied; on a WAL failure removes t from the queue. */
static cairn_status wait_applied(cairn_db *db, cairn_txn *t) {
    cairn_status st = wal_writer_wait(db->wal, t->end_lsn);
    pthread_mutex_lock(&db->apply_mu);
    if (st == CAIRN_OK) {
        while (!t->applied) pthread_cond_wait(&db->apply_cv, &db->apply_mu);
    } else if (!t->applied) {
        if (t->q_prev) t->q_prev->q_next = t->q_next;
        else db->q_head = t->q_next;
        if (t->q_next) t->q_next->q_prev = t->q_prev;
        else db->q_tail = t->q_prev;
    } else {
        st = CAIRN_OK; /* applied before the failure was seen */
    }
    pthread_mutex_unlock(&db->apply_mu);
    return st;
}

/* A logged unit (its last record at `lsn`) did not become durable: says
 * which, and where it sits in the log, before the WAL's own reason (a
 * failed fdatasync names only the file). */
static cairn_status not_durable(cairn_db *db, cairn_status st, const char *what,
                                unsigned long long id, uint64_t lsn) {
    uint64_t seg_size = (uint64_t)1 << db->seg_shift;
    char name[64];
    wal_seg_name(name, sizeof name, db->timeline, lsn & ~(seg_size - 1));
    return cerr_wrap(st, "could not make %s %llu durable in WAL segment \"%s/%s\" at "
                     "offset %llu (LSN %llu)",
                     what, id, db->waldir, name,
                     (unsigned long long)(lsn & (seg_size - 1)), (unsigned long long)lsn);
}

int64_t db_next_commit_time(cairn_db *db) {
    int64_t now = cairn_now_us();
    if (now <= db->last_commit_us) now = db->last_commit_us + 1;
    db->last_commit_us = now;
    return now;
}

/* Appends t (records + COMMIT) and makes it durable + applied per the
 * durability mode. Called with commit_mu held; releases it. */
static cairn_status commit_locked(cairn_db *db, cairn_txn *t,
                                  cairn_commit_info *info) {
    cairn_status st = db_usable(db);
    if (!st) st = buf_reserve(t, wal_enc_commit(NULL, 0, 0, 0));
    if (st) {
        pthread_mutex_unlock(&db->commit_mu);
        return st;
    }
    int64_t when = db_next_commit_time(db);
    size_t body = t->len;
    t->len += wal_enc_commit(t->buf + t->len, t->txn_id, when, (uint32_t)t->nops);
    uint64_t first, last, end;
    st = wal_writer_append(db->wal, t->buf, t->len, &first, &last, &end);
    if (st) {
        t->len = body;
        pthread_mutex_unlock(&db->commit_mu);
        return st;
    }
    t->end_lsn = end;
    ckpt_note_wal(db, end);
    if (db->opts.durability == CAIRN_DURABILITY_SYNC) {
        queue_push(db, t);
        pthread_mutex_unlock(&db->commit_mu);
        st = wait_applied(db, t);
    } else {
        txn_apply(db, t);
        pthread_mutex_unlock(&db->commit_mu);
    }
    if (st) return not_durable(db, st, "transaction", (unsigned long long)t->txn_id, last);
    /* Durable, so not CAIRN_ENOMEM (which promises the log never got
     * it): the handle's CAIRN_EPOISONED, whose message says what a reopen
     * applies. */
    if (t->apply_st) return db_usable(db);
    atomic_fetch_add(&db->commits, 1);
    if (info) {
        info->txn_id = t->txn_id;
        info->commit_lsn = last;
        info->commit_time_us = when;
    }
    return CAIRN_OK;
}

CAIRN_API cairn_status cairn_txn_commit(cairn_txn *t, cairn_commit_info *info) {
    cerr_clear();
    cairn_status st = txn_check_active(t);
    if (st) return st;
    cairn_db *db = t->db;
    pthread_mutex_lock(&db->commit_mu);
    /* The catalog cannot change while commit_mu is held (see top). */
    for (size_t i = 0; i < t->nops; i++) {
        if (!cat_find_id(db, t->ops[i].coll_id)) {
            pthread_mutex_unlock(&db->commit_mu);
            txn_release_ops(t);
            t->state = TXN_FAILED;
            return cerr_set(CAIRN_ENOTFOUND,
                            "collection %u was dropped during transaction %llu",
                            t->ops[i].coll_id, (unsigned long long)t->txn_id);
        }
    }
    st = commit_locked(db, t, info);
    if (st) {
        txn_release_ops(t);
        t->state = TXN_FAILED;
        return st;
    }
    t->state = TXN_COMMITTED;
    txn_release_ops(t);
    return CAIRN_OK;
}

/* ---- batch helpers ----------------------------------------------------- */

CAIRN_API cairn_status cairn_upsert_batch(cairn_db *db, const char *collection,
                                          const cairn_point *points, size_t n,
                                          uint32_t dim, cairn_commit_info *info) {
    cerr_clear();
    if (!db || (!points && n)) return cerr_set(CAIRN_EINVAL, "cairn_upsert_batch: NULL argument");
    cairn_txn *t;
    cairn_status st = cairn_txn_begin(db, &t);
    if (st) return st;
    /* One allocation for the whole batch (sizes as the encoder counts). */
    size_t need = wal_enc_commit(NULL, 0, 0, 0);
    for (size_t i = 0; i < n; i++)
        need += wal_enc_upsert(NULL, 0, 0, 0, NULL, dim, NULL,
                               (uint32_t)CAIRN_MIN(points[i].payload_len, (size_t)CAIRN_MAX_PAYLOAD + 1));
    if (need > t->cap) {
        uint8_t *nb = realloc(t->buf, need);
        if (nb) {
            t->buf = nb;
            t->cap = need;
        }
    }
    if (n > t->capops) {
        struct txn_op *no = realloc(t->ops, n * sizeof *no);
        if (no) {
            t->ops = no;
            t->capops = n;
        }
    }
    uint32_t cid = 0, cdim = 0;
    st = lookup_coll(db, collection, &cid, &cdim); /* once for the batch */
    for (size_t i = 0; i < n && st == CAIRN_OK; i++) {
        st = txn_add_upsert(t, collection, cid, cdim, points[i].id, points[i].vector, dim,
                            points[i].payload, points[i].payload_len);
        if (st) cerr_wrap(st, "point %zu (id %llu)", i,
                          (unsigned long long)points[i].id);
    }
    if (st == CAIRN_OK) st = cairn_txn_commit(t, info);
    cairn_txn_free(t);
    return st;
}

CAIRN_API cairn_status cairn_delete_batch(cairn_db *db, const char *collection,
                                          const uint64_t *ids, size_t n,
                                          cairn_commit_info *info) {
    cerr_clear();
    if (!db || (!ids && n)) return cerr_set(CAIRN_EINVAL, "cairn_delete_batch: NULL argument");
    cairn_txn *t;
    cairn_status st = cairn_txn_begin(db, &t);
    if (st) return st;
    for (size_t i = 0; i < n && st == CAIRN_OK; i++)
        st = cairn_txn_delete(t, collection, ids[i]);
    if (st == CAIRN_OK) st = cairn_txn_commit(t, info);
    cairn_txn_free(t);
    return st;
}

/* ---- DDL --------------------------------------------------------------- */

/* Appends a one-record DDL transaction and waits until it is durable (SYNC)
 * and applied; commit_mu is held throughout. */
static cairn_status ddl_commit(cairn_db *db, uint8_t *rec, size_t len,
                               uint64_t txn_id, bool create, uint32_t coll_id,
                               uint32_t dim, cairn_metric metric, const char *name) {
    cairn_status st = db_usable(db);
    if (st) return st;
    uint8_t cbuf[64];
    size_t clen = wal_enc_commit(cbuf, txn_id, db_next_commit_time(db), 1);
    memcpy(rec + len, cbuf, clen);
    uint64_t first, last, end;
    st = wal_writer_append(db->wal, rec, len + clen, &first, &last, &end);
    if (st) return st;
    if (db->opts.durability == CAIRN_DURABILITY_SYNC) {
        st = wal_writer_wait(db->wal, end);
        if (st) return not_durable(db, st, "transaction", (unsigned long long)txn_id, last);
        /* Earlier commits are applied from on_durable; let them land first so
         * that a drop never overtakes a commit before it in the log. */
        pthread_mutex_lock(&db->apply_mu);
        while (db->applied_lsn < end) pthread_cond_wait(&db->apply_cv, &db->apply_mu);
        pthread_mutex_unlock(&db->apply_mu);
    }
    pthread_rwlock_rdlock(&db->gate);
    if (create) {
        st = cat_apply_create(db, coll_id, dim, metric, name, strlen(name), last);
    } else {
        cat_apply_drop(db, coll_id);
    }
    if (!st) {
        db->applied_end = end;
        db->applied_txn = txn_id;
    }
    pthread_rwlock_unlock(&db->gate);
    if (st) {
        char what[96];
        snprintf(what, sizeof what, "the creation of collection \"%.40s\" (transaction %llu)",
                 name, (unsigned long long)txn_id);
        db_apply_failed(db, what);
        return db_usable(db); /* durable: as commit_locked says */
    }
    atomic_fetch_add(&db->commits, 1);
    return CAIRN_OK;
}

CAIRN_API cairn_status cairn_collection_create(cairn_db *db, const char *name,
                                               uint32_t dim, cairn_metric metric) {
    cerr_clear();
    if (!db) return cerr_set(CAIRN_EINVAL, "cairn_collection_create: NULL database");
    cairn_status st = cat_check_name(name, "collection");
    if (st) return st;
    if (dim == 0 || dim > CAIRN_MAX_DIM)
        return cerr_set(CAIRN_EDIM, "invalid dimension %u for collection \"%s\": must be 1..%u",
                        dim, name, CAIRN_MAX_DIM);
    if (metric != CAIRN_METRIC_L2 && metric != CAIRN_METRIC_COSINE &&
        metric != CAIRN_METRIC_DOT)
        return cerr_set(CAIRN_EINVAL, "invalid metric %d for collection \"%s\"",
                        (int)metric, name);
    pthread_mutex_lock(&db->commit_mu);
    if (cat_find_name(db, name)) {
        pthread_mutex_unlock(&db->commit_mu);
        return cerr_set(CAIRN_EEXIST, "collection \"%s\" already exists", name);
    }
    uint32_t id = db->next_coll_id;
    uint64_t txn = atomic_fetch_add(&db->next_txn_id, 1);
    uint8_t rec[WAL_REC_HDR + 24 + CAIRN_MAX_NAME + 8 + 64];
    size_t len = wal_enc_create_coll(rec, id, txn, dim, (uint8_t)metric, name,
                                     (uint8_t)strlen(name));
    st = ddl_commit(db, rec, len, txn, true, id, dim, metric, name);
    if (st == CAIRN_OK) db->next_coll_id++;
    pthread_mutex_unlock(&db->commit_mu);
    return st;
}

CAIRN_API cairn_status cairn_collection_drop(cairn_db *db, const char *name) {
    cerr_clear();
    if (!db || !name) return cerr_set(CAIRN_EINVAL, "cairn_collection_drop: NULL argument");
    pthread_mutex_lock(&db->commit_mu);
    struct coll *c = cat_find_name(db, name);
    if (!c) {
        pthread_mutex_unlock(&db->commit_mu);
        return cerr_set(CAIRN_ENOTFOUND, "collection \"%s\" does not exist", name);
    }
    uint32_t id = c->id;
    uint64_t txn = atomic_fetch_add(&db->next_txn_id, 1);
    uint8_t rec[WAL_REC_HDR + 64 + 64];
    size_t len = wal_enc_drop_coll(rec, id, txn);
    cairn_status st = ddl_commit(db, rec, len, txn, false, id, 0, 0, name);
    pthread_mutex_unlock(&db->commit_mu);
    return st;
}

CAIRN_API cairn_status cairn_restore_point(cairn_db *db, const char *name,
                                           uint64_t *lsn_out) {
    cerr_clear();
    if (!db) return cerr_set(CAIRN_EINVAL, "cairn_restore_point: NULL database");
    cairn_status st = cat_check_name(name, "restore point");
    if (st) return st;
    uint8_t rec[WAL_REC_HDR + 16 + CAIRN_MAX_NAME + 8];
    pthread_mutex_lock(&db->commit_mu);
    st = db_usable(db);
    if (st) {
        pthread_mutex_unlock(&db->commit_mu);
        return st;
    }
    size_t len = wal_enc_restore_point(rec, db_next_commit_time(db), name,
                                       (uint8_t)strlen(name));
    uint64_t first, last, end;
    st = wal_writer_append(db->wal, rec, len, &first, &last, &end);
    pthread_mutex_unlock(&db->commit_mu);
    if (st) return st;
    if (db->opts.durability == CAIRN_DURABILITY_SYNC) {
        st = wal_writer_wait(db->wal, end);
        if (st) return not_durable(db, st, "restore point at LSN", (unsigned long long)first,
                                   first);
    }
    if (lsn_out) *lsn_out = first;
    return CAIRN_OK;
}
