/*
 * replay.c — the one replay engine: crash recovery at open and
 * point-in-time restore rebuild state only through here.
 *
 * The dispatcher (the calling thread) reads records in LSN order. A
 * transaction's records are appended to the current chunk as they arrive
 * (transactions never interleave in the log: each is appended in one piece).
 * At its COMMIT the target decides: the transaction is either accepted whole
 * or replay stops before it, so the cut always falls between commits. An
 * accepted transaction's records are assigned to workers by collection
 * (worker = collection id mod jobs), which keeps each collection's LSN order;
 * a transaction spanning collections is applied whole because every accepted
 * chunk is applied completely before replay returns. Transactions holding
 * DDL (create/drop collection) are a barrier: the workers drain, and the
 * dispatcher applies the DDL itself.
 *
 * Point-in-time restore (restore.c) runs the same loop once per timeline
 * of its path, with a target and replay_opts: an upper LSN bound (the
 * timeline's log past the point where the path leaves it is never read)
 * and a progress callback. Crash recovery passes neither. A partial
 * restore adds a collection filter (struct coll_filter below): the other
 * collections' point records are skipped, their DDL still applies.
 *
 * Chunks (many small transactions in one buffer) amortize hand-off cost.
 * A transaction without a COMMIT when the log ends is discarded, and so is
 * one followed by another transaction's records (a transaction cut by a
 * crash, after which recovery let the log go on: see discard_cut). A COMMIT
 * without records (an empty transaction) applies nothing.
 */
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "engine/engine_int.h"
#include "index/index.h"

#define CHUNK_TARGET (4u << 20)
#define QUEUE_DEPTH 8

struct chunk {
    uint8_t *buf;
    size_t len, cap;
    size_t **offs; /* per worker: record offsets in buf */
    size_t *noffs, *capoffs;
    _Atomic unsigned refs;
};

struct worker {
    pthread_t thr;
    struct replay *rp;
    unsigned idx;
    struct chunk *q[QUEUE_DEPTH];
    unsigned head, count;
    bool busy;
    pthread_cond_t cv;      /* work arrived / stop */
};

struct replay {
    cairn_db *db;
    unsigned jobs;
    struct worker *w;
    pthread_mutex_t mu;
    pthread_cond_t idle_cv; /* a worker finished an item */
    bool stop;
    cairn_status err;       /* first worker failure */
    char errmsg[512];
};

static struct chunk *chunk_new(unsigned jobs) {
    struct chunk *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->offs = calloc(jobs, sizeof *c->offs);
    c->noffs = calloc(jobs, sizeof *c->noffs);
    c->capoffs = calloc(jobs, sizeof *c->capoffs);
    if (!c->offs || !c->noffs || !c->capoffs) {
        free(c->offs);
        free(c->noffs);
        free(c->capoffs);
        free(c);
        return NULL;
    }
    return c;
}

static void chunk_free(struct chunk *c, unsigned jobs) {
    if (!c) return;
    for (unsigned i = 0; i < jobs; i++) free(c->offs[i]);
    free(c->offs);
    free(c->noffs);
    free(c->capoffs);
    free(c->buf);
    free(c);
}

/*
 * Two fields of a record's copy in a chunk that apply does not read (the
 * CRC, checked by the reader, and the reserved bytes 10..11) carry what
 * the dispatcher found when it appended an upsert: the vector's norm and
 * whether the payload is a valid JSON object. The dispatcher reads every
 * record anyway (the log reader has just checked its CRC, so its bytes are
 * in this core's cache); the workers, which apply, are the replay's
 * critical path, and the norm and the payload scan were a fifth of their
 * time, most of it waiting for the record's bytes to come from the other
 * core. A worker trusts these only for PRE_DONE records, and still checks
 * the dimension against the collection; it checks the payload again to
 * report a failure in its own words. A record that does not decode gets
 * no flags: the worker decodes it and reports why.
 */
#define CHUNK_NORM 0 /* float: vec_norm(vec, dim) of the record's own dim */
#define CHUNK_PRE 10 /* PRE_* */
#define PRE_DONE 1u
#define PRE_PAYLOAD_OK 2u

static void precheck_upsert(uint8_t *dst, const struct wal_record *r) {
    struct wal_upsert u;
    if (wal_dec_upsert(r, &u) != CAIRN_OK) {
        cerr_clear();
        return;
    }
    float norm = vec_norm(u.vec, u.dim);
    memcpy(dst + CHUNK_NORM, &norm, 4);
    uint8_t pre = PRE_DONE;
    if (check_payload(u.payload, u.payload_len) == CAIRN_OK)
        pre |= PRE_PAYLOAD_OK;
    else
        cerr_clear();
    dst[CHUNK_PRE] = pre;
}

static cairn_status chunk_append(struct chunk *c, const struct wal_record *r) {
    size_t need = CAIRN_ALIGN_UP((size_t)r->len, WAL_REC_ALIGN);
    if (c->len + need > c->cap) {
        size_t ncap = c->cap ? c->cap : CHUNK_TARGET + WAL_REC_MAX;
        while (ncap < c->len + need) ncap *= 2;
        uint8_t *nb = realloc(c->buf, ncap);
        if (!nb) return cerr_set(CAIRN_ENOMEM, "could not grow a replay chunk");
        c->buf = nb;
        c->cap = ncap;
    }
    /* Keep the record as it was in the log: header fields are re-read from
     * the decoded view, the body from the copy. Bytes CHUNK_COMMIT_LSN..+8
     * (the durable hint, which apply does not use) get the LSN of the
     * transaction's COMMIT once it is accepted: the LSN of the pages the
     * record changes. */
    uint8_t *dst = c->buf + c->len;
    st32(dst, 0);
    st32(dst + 4, r->len);
    dst[8] = r->type;
    dst[9] = r->flags;
    st16(dst + 10, 0);
    st32(dst + 12, r->coll_id);
    st64(dst + 16, r->lsn);
    st64(dst + 24, r->txn_id);
    st64(dst + 32, r->durable_hint);
    memcpy(dst + WAL_REC_HDR, r->body, r->body_len);
    memset(dst + r->len, 0, need - r->len);
    if (r->type == WAL_REC_UPSERT) precheck_upsert(dst, r);
    c->len += need;
    return CAIRN_OK;
}

static cairn_status chunk_assign(struct chunk *c, unsigned worker, size_t off) {
    if (c->noffs[worker] == c->capoffs[worker]) {
        size_t ncap = c->capoffs[worker] ? c->capoffs[worker] * 2 : 256;
        size_t *n = realloc(c->offs[worker], ncap * sizeof *n);
        if (!n) return cerr_set(CAIRN_ENOMEM, "could not grow a replay chunk");
        c->offs[worker] = n;
        c->capoffs[worker] = ncap;
    }
    c->offs[worker][c->noffs[worker]++] = off;
    return CAIRN_OK;
}

#define CHUNK_COMMIT_LSN 32

/* Decoded view of a record copied into a chunk. */
static void chunk_record(const struct chunk *c, size_t off, struct wal_record *r) {
    const uint8_t *p = c->buf + off;
    r->len = ld32(p + 4);
    r->type = p[8];
    r->flags = p[9];
    r->coll_id = ld32(p + 12);
    r->lsn = ld64(p + 16);
    r->txn_id = ld64(p + 24);
    r->durable_hint = ld64(p + 32);
    r->body = p + WAL_REC_HDR;
    r->body_len = r->len - WAL_REC_HDR;
}

/* The collection of id; *memo (may be NULL) keeps the last one found, so
 * a run of records of one collection (the apply loop's look-ahead) scans
 * the catalog once. The catalog is not changing while workers run (DDL is
 * a barrier), so the lookup needs no lock of its own and a memo stays
 * valid for a chunk. */
static struct coll *find_coll(cairn_db *db, uint32_t id, struct coll **memo) {
    if (memo && *memo && (*memo)->id == id) return *memo;
    struct coll *c = cat_find_id(db, id);
    if (memo && c) *memo = c;
    return c;
}

/*
 * The collection a worker is applying a run of records to: its write lock
 * is held and its store is in bulk mode (store_bulk_begin: no undo log, one
 * header rewrite per run instead of one per record) from the first record
 * of the run until held_release, at the end of the run, after HELD_MAX
 * records (so a pre-write or a reader waits for a few hundred records at
 * most) or when the worker is done with its part of the chunk. A change
 * that fails halfway leaves the store broken, and the replay fails: its
 * caller discards the whole database (cairn_open fails, a restore removes
 * its target).
 */
#define HELD_MAX 512u

struct held {
    struct coll *c;
    unsigned n;
};

static cairn_status held_release(struct held *h) {
    if (!h->c) return CAIRN_OK;
    cairn_status st = store_bulk_end(&h->c->st);
    pthread_rwlock_unlock(&h->c->lock);
    h->c = NULL;
    return st;
}

static cairn_status held_take(struct held *h, struct coll *c) {
    if (h->c == c && h->n < HELD_MAX) {
        h->n++;
        return CAIRN_OK;
    }
    cairn_status st = held_release(h);
    if (st) return st;
    pthread_rwlock_wrlock(&c->lock);
    store_bulk_begin(&c->st);
    h->c = c;
    h->n = 1;
    return CAIRN_OK;
}

/* Applies one point record: raw is its copy in a chunk (the dispatcher's
 * PRE_* findings), h the worker's held collection. */
static cairn_status apply_point_record(cairn_db *db, const struct wal_record *r,
                                       const uint8_t *raw, uint64_t commit_lsn,
                                       struct held *h) {
    struct coll *c = h->c && h->c->id == r->coll_id ? h->c : cat_find_id(db, r->coll_id);
    if (!c)
        return cerr_set(CAIRN_ECORRUPT,
                        "record at LSN %llu names collection %u, which does not exist",
                        (unsigned long long)r->lsn, r->coll_id);
    cairn_status st = held_take(h, c);
    if (st) return st;
    if (r->type == WAL_REC_DELETE) {
        uint64_t id;
        st = wal_dec_delete(r, &id);
        if (st) return st;
        return store_delete(&c->st, id, commit_lsn);
    }
    struct wal_upsert u;
    st = wal_dec_upsert(r, &u);
    if (st) return st;
    if (u.dim != c->dim)
        return cerr_set(CAIRN_ECORRUPT,
                        "record at LSN %llu has dimension %u, collection %u has %u",
                        (unsigned long long)r->lsn, u.dim, c->id, c->dim);
    unsigned pre = raw[CHUNK_PRE];
    if (!(pre & PRE_PAYLOAD_OK)) {
        st = check_payload(u.payload, u.payload_len);
        if (st)
            return cerr_wrap(CAIRN_ECORRUPT, "record at LSN %llu",
                             (unsigned long long)r->lsn);
    }
    float norm;
    if (pre & PRE_DONE)
        memcpy(&norm, raw + CHUNK_NORM, 4);
    else
        norm = vec_norm(u.vec, u.dim);
    return store_upsert_norm(&c->st, u.id, u.vec, norm, u.payload, u.payload_len,
                             commit_lsn);
}

static cairn_status apply_ddl_record(cairn_db *db, const struct wal_record *r,
                                     uint64_t commit_lsn) {
    if (r->type == WAL_REC_CREATE_COLL) {
        struct wal_create_coll cc;
        cairn_status st = wal_dec_create_coll(r, &cc);
        if (st) return st;
        if (cat_find_id(db, r->coll_id))
            return cerr_set(CAIRN_ECORRUPT,
                            "record at LSN %llu creates collection %u, which exists",
                            (unsigned long long)r->lsn, r->coll_id);
        return cat_apply_create(db, r->coll_id, cc.dim, (cairn_metric)cc.metric,
                                cc.name, cc.name_len, commit_lsn);
    }
    cat_apply_drop(db, r->coll_id);
    return CAIRN_OK;
}

/* How many records ahead of the one applied the apply loop asks for the
 * id's hash bucket: ids are random, so each lookup would otherwise wait
 * for memory (a third of an upsert's time on a collection of a million
 * points). It asks for the record's own bytes too (up to APPLY_AHEAD_BYTES):
 * the reader wrote them on another core, and the first touch of each
 * vector (then its norm, now its copy into a page) waited for them (a
 * quarter of the apply's samples in a restore; -30% apply CPU with the
 * prefetch). */
#define APPLY_AHEAD 6
#define APPLY_AHEAD_BYTES 4096u

static void prefetch_record(cairn_db *db, const struct chunk *c, size_t off,
                            struct coll **memo) {
    struct wal_record r;
    chunk_record(c, off, &r);
    if ((r.type != WAL_REC_UPSERT && r.type != WAL_REC_DELETE) || r.body_len < 8) return;
    size_t span = r.len < APPLY_AHEAD_BYTES ? r.len : APPLY_AHEAD_BYTES;
    for (size_t k = 64; k < span; k += 64) __builtin_prefetch(c->buf + off + k);
    struct coll *col = find_coll(db, r.coll_id, memo);
    if (col) store_prefetch(&col->st, ld64(r.body));
}

static cairn_status apply_chunk_part(struct replay *rp, struct chunk *c,
                                     unsigned worker) {
    struct coll *memo = NULL;
    struct held h = {0};
    cairn_status st = CAIRN_OK;
    for (size_t i = 0; i < c->noffs[worker] && !st; i++) {
        if (i + APPLY_AHEAD < c->noffs[worker])
            prefetch_record(rp->db, c, c->offs[worker][i + APPLY_AHEAD], &memo);
        struct wal_record r;
        const uint8_t *raw = c->buf + c->offs[worker][i];
        chunk_record(c, c->offs[worker][i], &r);
        st = apply_point_record(rp->db, &r, raw, ld64(raw + CHUNK_COMMIT_LSN), &h);
    }
    cairn_status rs = held_release(&h);
    return st ? st : rs;
}

static void chunk_release(struct replay *rp, struct chunk *c) {
    if (atomic_fetch_sub(&c->refs, 1) == 1) chunk_free(c, rp->jobs);
}

static void *worker_main(void *arg) {
    struct worker *w = arg;
    struct replay *rp = w->rp;
    pthread_mutex_lock(&rp->mu);
    for (;;) {
        while (w->count == 0 && !rp->stop) pthread_cond_wait(&w->cv, &rp->mu);
        if (w->count == 0 && rp->stop) break;
        struct chunk *c = w->q[w->head];
        w->head = (w->head + 1) % QUEUE_DEPTH;
        w->count--;
        w->busy = true;
        bool failed = rp->err != CAIRN_OK;
        pthread_mutex_unlock(&rp->mu);

        cairn_status st = failed ? CAIRN_OK : apply_chunk_part(rp, c, w->idx);
        const char *msg = st ? cairn_last_error() : NULL;
        char copy[512];
        if (msg) snprintf(copy, sizeof copy, "%s", msg);
        chunk_release(rp, c);

        pthread_mutex_lock(&rp->mu);
        if (st && rp->err == CAIRN_OK) {
            rp->err = st;
            snprintf(rp->errmsg, sizeof rp->errmsg, "%s", copy);
        }
        w->busy = false;
        pthread_cond_broadcast(&rp->idle_cv);
    }
    pthread_mutex_unlock(&rp->mu);
    return NULL;
}

/* Hands a finished chunk to the workers (or applies it inline). */
static cairn_status dispatch(struct replay *rp, struct chunk *c) {
    if (rp->jobs <= 1) {
        cairn_status st = apply_chunk_part(rp, c, 0);
        chunk_free(c, rp->jobs);
        return st;
    }
    unsigned users = 0;
    for (unsigned i = 0; i < rp->jobs; i++) users += c->noffs[i] > 0;
    if (users == 0) {
        chunk_free(c, rp->jobs);
        return CAIRN_OK;
    }
    atomic_store(&c->refs, users);
    pthread_mutex_lock(&rp->mu);
    for (unsigned i = 0; i < rp->jobs; i++) {
        if (c->noffs[i] == 0) continue;
        struct worker *w = &rp->w[i];
        while (w->count == QUEUE_DEPTH) pthread_cond_wait(&rp->idle_cv, &rp->mu);
        w->q[(w->head + w->count) % QUEUE_DEPTH] = c;
        w->count++;
        pthread_cond_signal(&w->cv);
    }
    cairn_status st = rp->err;
    pthread_mutex_unlock(&rp->mu);
    if (st) return cerr_set(st, "%s", rp->errmsg);
    return CAIRN_OK;
}

/* Waits until every worker queue is empty and no worker is busy. */
static cairn_status barrier(struct replay *rp) {
    if (rp->jobs <= 1) return CAIRN_OK;
    pthread_mutex_lock(&rp->mu);
    for (;;) {
        bool idle = true;
        for (unsigned i = 0; i < rp->jobs; i++)
            if (rp->w[i].count || rp->w[i].busy) idle = false;
        if (idle) break;
        pthread_cond_wait(&rp->idle_cv, &rp->mu);
    }
    cairn_status st = rp->err;
    pthread_mutex_unlock(&rp->mu);
    if (st) return cerr_set(st, "%s", rp->errmsg);
    return CAIRN_OK;
}

/* Does the target let this commit apply? */
static bool target_allows(const struct replay_target *t, uint64_t txn,
                          uint64_t commit_lsn, int64_t time_us, bool *last) {
    *last = false;
    switch (t->kind) {
    case REPLAY_TO_LSN:
        return t->inclusive ? commit_lsn <= t->lsn : commit_lsn < t->lsn;
    case REPLAY_TO_TIME:
        return t->inclusive ? time_us <= t->time_us : time_us < t->time_us;
    case REPLAY_TO_TXN:
        if (txn == t->txn) {
            *last = true;
            return t->inclusive;
        }
        return true;
    default:
        return true;
    }
}

/*
 * A record of another transaction while `*open_txn` has no COMMIT yet: the
 * open one never gets its COMMIT (a transaction is appended in one piece),
 * so it was cut by a crash or a failed write, and the log went on after the
 * recovery that followed (which keeps the cut records: they are valid, and
 * new records are appended after them). Its records never apply (format.h);
 * it is dropped like a transaction cut at the end of the log. A COMMIT of
 * the dropped transaction later in the log would fail the record count
 * check, so true interleaving is still reported as corruption.
 */
static void discard_cut(struct chunk *c, uint64_t *open_txn, size_t txn_start,
                        const struct wal_record *rec, struct replay_result *res) {
    clog_info("transaction %llu has no COMMIT before LSN %llu (transaction %llu): "
              "discarded as cut by an earlier crash",
              (unsigned long long)*open_txn, (unsigned long long)rec->lsn,
              (unsigned long long)rec->txn_id);
    res->txns_discarded++;
    c->len = txn_start;
    *open_txn = 0;
}

cairn_status replay_run(cairn_db *db, wal_reader *r,
                        const struct replay_target *target, unsigned jobs,
                        struct replay_result *res) {
    return replay_run_ex(db, r, target, jobs, NULL, res);
}

/*
 * The collection filter of a partial restore (replay_opts.only_names): the
 * ids of the selected collections now, i.e. those whose name is one of the
 * names. Names are unique in the catalog at any moment, so this follows
 * the DDL exactly: a CREATE under a selected name adds its id, a DROP
 * removes it (a collection dropped and recreated under the name later is
 * another id). Point records of a collection the catalog has and the set
 * lacks are skipped when read (the catalog changes only at a DDL commit,
 * which the dispatcher applies itself before reading on); a record of an
 * id not in the catalog yet (created by its own transaction, or damage) is
 * kept and decided when applied, after that transaction's DDL.
 */
struct coll_filter {
    bool on;
    const char *const *names;
    size_t nnames;
    uint32_t *ids;
    size_t n, cap;
};

static bool filter_name(const struct coll_filter *f, const char *name) {
    for (size_t i = 0; i < f->nnames; i++)
        if (strcmp(f->names[i], name) == 0) return true;
    return false;
}

static bool filter_has(const struct coll_filter *f, uint32_t id) {
    for (size_t i = 0; i < f->n; i++)
        if (f->ids[i] == id) return true;
    return false;
}

static cairn_status filter_add(struct coll_filter *f, uint32_t id) {
    if (filter_has(f, id)) return CAIRN_OK;
    if (f->n == f->cap) {
        size_t ncap = f->cap ? f->cap * 2 : 8;
        uint32_t *n = realloc(f->ids, ncap * sizeof *n);
        if (!n) return cerr_set(CAIRN_ENOMEM, "could not grow the collection filter");
        f->ids = n;
        f->cap = ncap;
    }
    f->ids[f->n++] = id;
    return CAIRN_OK;
}

static void filter_remove(struct coll_filter *f, uint32_t id) {
    for (size_t i = 0; i < f->n; i++)
        if (f->ids[i] == id) {
            f->ids[i] = f->ids[--f->n];
            return;
        }
}

/* Applies a point record, unless the filter leaves its collection out. */
static cairn_status apply_point_filtered(cairn_db *db, const struct coll_filter *f,
                                         const struct wal_record *r, const uint8_t *raw,
                                         uint64_t commit_lsn) {
    if (f->on && !filter_has(f, r->coll_id) && cat_find_id(db, r->coll_id)) return CAIRN_OK;
    struct held h = {0};
    cairn_status st = apply_point_record(db, r, raw, commit_lsn, &h);
    cairn_status rs = held_release(&h);
    return st ? st : rs;
}

/* Applies a DDL record and follows it in the filter. */
static cairn_status apply_ddl_filtered(cairn_db *db, struct coll_filter *f,
                                       const struct wal_record *r, uint64_t commit_lsn) {
    cairn_status st = apply_ddl_record(db, r, commit_lsn);
    if (st || !f->on) return st;
    if (r->type == WAL_REC_DROP_COLL) {
        filter_remove(f, r->coll_id);
        return CAIRN_OK;
    }
    struct coll *c = cat_find_id(db, r->coll_id);
    if (c && filter_name(f, c->name)) return filter_add(f, r->coll_id);
    return CAIRN_OK;
}

#define PROGRESS_BYTES ((uint64_t)64 << 20)
#define PROGRESS_US 1000000u
#define PROGRESS_EVERY 256u

cairn_status replay_run_ex(cairn_db *db, wal_reader *r, const struct replay_target *target,
                           unsigned jobs, const struct replay_opts *o,
                           struct replay_result *res) {
    static const struct replay_target to_end = {.kind = REPLAY_TO_END};
    if (!target) target = &to_end;
    if (jobs == 0) jobs = 1;
    memset(res, 0, sizeof *res);

    struct replay rp = {.db = db, .jobs = jobs};
    pthread_mutex_init(&rp.mu, NULL);
    pthread_cond_init(&rp.idle_cv, NULL);
    cairn_status st = CAIRN_OK;
    unsigned started = 0;
    struct coll_filter filt = {.on = o && o->only_names && o->nonly > 0};
    if (filt.on) {
        filt.names = o->only_names;
        filt.nnames = o->nonly;
        for (size_t i = 0; i < db->ncolls && !st; i++)
            if (filter_name(&filt, db->colls[i]->name)) st = filter_add(&filt, db->colls[i]->id);
        if (st) goto out;
    }
    if (jobs > 1) {
        rp.w = calloc(jobs, sizeof *rp.w);
        if (!rp.w) {
            st = cerr_set(CAIRN_ENOMEM, "could not allocate replay workers");
            goto out;
        }
        for (unsigned i = 0; i < jobs; i++) {
            rp.w[i].rp = &rp;
            rp.w[i].idx = i;
            pthread_cond_init(&rp.w[i].cv, NULL);
        }
        for (; started < jobs; started++) {
            if (pthread_create(&rp.w[started].thr, NULL, worker_main,
                               &rp.w[started]) != 0) {
                st = cerr_set(CAIRN_ENOMEM, "could not start replay worker %u",
                              started);
                goto out;
            }
        }
    }

    struct chunk *c = chunk_new(jobs);
    if (!c) {
        st = cerr_set(CAIRN_ENOMEM, "could not allocate a replay chunk");
        goto out;
    }
    uint64_t open_txn = 0;   /* txn whose records sit at c->buf[txn_start..] */
    size_t txn_start = 0;
    uint32_t txn_nrec = 0;
    bool txn_ddl = false;
    bool bounded = o && o->bounded;
    uint64_t until = bounded ? o->until_lsn : UINT64_MAX;
    bool progress = o && o->progress;
    uint64_t prog_lsn = 0, prog_us = progress ? cairn_mono_us() : 0;
    unsigned prog_n = 0;

    for (;;) {
        struct wal_record rec;
        bool end = false;
        st = wal_reader_next(r, &rec, &end);
        if (st) break;
        if (end) {
            res->stop_lsn = wal_reader_end(r)->end_lsn;
            break;
        }
        if (rec.lsn >= until) {
            res->until_reached = true;
            res->stop_lsn = rec.lsn;
            break;
        }
        res->records++;
        if (rec.txn_id > res->max_txn_id) res->max_txn_id = rec.txn_id;
        if (rec.coll_id > res->max_coll_id) res->max_coll_id = rec.coll_id;
        if (progress) {
            if (prog_lsn == 0) prog_lsn = rec.lsn;
            bool due = rec.lsn - prog_lsn >= PROGRESS_BYTES;
            if (!due && ++prog_n >= PROGRESS_EVERY) {
                prog_n = 0;
                due = cairn_mono_us() - prog_us >= PROGRESS_US;
            }
            if (due) {
                prog_lsn = rec.lsn;
                prog_us = cairn_mono_us();
                prog_n = 0;
                if (o->progress(o->progress_ctx, res, rec.lsn)) {
                    st = cerr_set(CAIRN_ECANCELED,
                                  "replay canceled by the caller at LSN %llu",
                                  (unsigned long long)rec.lsn);
                    goto done;
                }
            }
        }

        switch (rec.type) {
        case WAL_REC_SWITCH:
            continue;
        case WAL_REC_RESTORE_POINT:
            if (target->kind == REPLAY_TO_NAME) {
                struct wal_restore_point rpnt;
                st = wal_dec_restore_point(&rec, &rpnt);
                if (st) goto done;
                if (rpnt.name_len == strlen(target->name) &&
                    memcmp(rpnt.name, target->name, rpnt.name_len) == 0) {
                    res->target_reached = true;
                    res->stop_lsn = rec.lsn;
                    goto done;
                }
            }
            continue;
        case WAL_REC_UPSERT:
        case WAL_REC_DELETE:
        case WAL_REC_CREATE_COLL:
        case WAL_REC_DROP_COLL:
            if (rec.txn_id == 0) {
                st = cerr_set(CAIRN_ECORRUPT,
                              "record at LSN %llu has no transaction id",
                              (unsigned long long)rec.lsn);
                goto done;
            }
            if (open_txn != 0 && rec.txn_id != open_txn)
                discard_cut(c, &open_txn, txn_start, &rec, res);
            if (open_txn == 0) {
                open_txn = rec.txn_id;
                txn_start = c->len;
                txn_nrec = 0;
                txn_ddl = false;
            }
            txn_nrec++;
            if (filt.on && (rec.type == WAL_REC_UPSERT || rec.type == WAL_REC_DELETE) &&
                !filter_has(&filt, rec.coll_id) && cat_find_id(db, rec.coll_id)) {
                res->records_skipped++; /* a collection left out (struct coll_filter) */
                continue;
            }
            st = chunk_append(c, &rec);
            if (st) goto done;
            if (rec.type == WAL_REC_CREATE_COLL || rec.type == WAL_REC_DROP_COLL)
                txn_ddl = true;
            continue;
        case WAL_REC_COMMIT:
            break;
        default:
            st = cerr_set(CAIRN_ECORRUPT, "record at LSN %llu has unknown type %u",
                          (unsigned long long)rec.lsn, rec.type);
            goto done;
        }

        /* COMMIT */
        struct wal_commit cm;
        st = wal_dec_commit(&rec, &cm);
        if (st) goto done;
        if (open_txn != 0 && rec.txn_id != open_txn)
            discard_cut(c, &open_txn, txn_start, &rec, res);
        if (open_txn == 0) {
            /* A transaction without records (an empty commit): nothing of
             * an earlier transaction may be counted or applied for it. */
            txn_start = c->len;
            txn_nrec = 0;
            txn_ddl = false;
        }
        if (cm.nrecords != txn_nrec) {
            st = cerr_set(CAIRN_ECORRUPT,
                          "commit at LSN %llu of transaction %llu counts %u records, "
                          "the log holds %u",
                          (unsigned long long)rec.lsn,
                          (unsigned long long)rec.txn_id, cm.nrecords, txn_nrec);
            goto done;
        }
        bool last = false;
        if (!target_allows(target, rec.txn_id, rec.lsn, cm.time_us, &last)) {
            c->len = txn_start; /* drop the rejected transaction's records */
            open_txn = 0;
            res->target_reached = true;
            res->stop_lsn = rec.lsn;
            goto done;
        }
        for (size_t off = txn_start; off < c->len;) {
            st64(c->buf + off + CHUNK_COMMIT_LSN, rec.lsn);
            off += CAIRN_ALIGN_UP((size_t)ld32(c->buf + off + 4), WAL_REC_ALIGN);
        }
        if (txn_ddl) {
            /* Barrier: everything before applies first, then the DDL and the
             * rest of this transaction, in order, here. */
            size_t tail = c->len - txn_start;
            struct chunk *rest = chunk_new(jobs);
            if (!rest) {
                st = cerr_set(CAIRN_ENOMEM, "could not allocate a replay chunk");
                goto done;
            }
            if (tail) {
                rest->buf = malloc(tail);
                if (!rest->buf) {
                    chunk_free(rest, jobs);
                    st = cerr_set(CAIRN_ENOMEM, "could not allocate a replay chunk");
                    goto done;
                }
                memcpy(rest->buf, c->buf + txn_start, tail);
                rest->len = rest->cap = tail;
            }
            c->len = txn_start;
            st = dispatch(&rp, c);
            c = rest;
            if (st) goto done;
            st = barrier(&rp);
            if (st) goto done;
            for (size_t off = 0; off < c->len;) {
                struct wal_record dr;
                chunk_record(c, off, &dr);
                if (dr.type == WAL_REC_CREATE_COLL || dr.type == WAL_REC_DROP_COLL)
                    st = apply_ddl_filtered(db, &filt, &dr, rec.lsn);
                else
                    st = apply_point_filtered(db, &filt, &dr, c->buf + off, rec.lsn);
                if (st) goto done;
                off += CAIRN_ALIGN_UP((size_t)dr.len, WAL_REC_ALIGN);
            }
            c->len = 0;
        } else {
            for (size_t off = txn_start; off < c->len;) {
                struct wal_record pr;
                chunk_record(c, off, &pr);
                st = chunk_assign(c, jobs > 1 ? pr.coll_id % jobs : 0, off);
                if (st) goto done;
                off += CAIRN_ALIGN_UP((size_t)pr.len, WAL_REC_ALIGN);
            }
        }
        open_txn = 0;
        res->txns_applied++;
        res->last_commit_lsn = rec.lsn;
        res->last_commit_end = rec.lsn + CAIRN_ALIGN_UP((uint64_t)rec.len, (uint64_t)WAL_REC_ALIGN);
        res->last_commit_time_us = cm.time_us;
        res->last_txn_id = rec.txn_id;
        if (last) {
            res->target_reached = true;
            res->stop_lsn = rec.lsn;
            goto done;
        }
        if (c->len >= CHUNK_TARGET) {
            st = dispatch(&rp, c);
            c = chunk_new(jobs);
            if (st) goto done;
            if (!c) {
                st = cerr_set(CAIRN_ENOMEM, "could not allocate a replay chunk");
                goto done;
            }
        }
    }

done:
    if (open_txn != 0 && st == CAIRN_OK) {
        res->txns_discarded++;
        c->len = txn_start;
    }
    if (c) {
        if (st == CAIRN_OK) {
            st = dispatch(&rp, c);
        } else {
            chunk_free(c, jobs);
        }
    }
    if (st == CAIRN_OK) st = barrier(&rp);

out:
    if (rp.w) {
        pthread_mutex_lock(&rp.mu);
        rp.stop = true;
        for (unsigned i = 0; i < started; i++) pthread_cond_signal(&rp.w[i].cv);
        pthread_mutex_unlock(&rp.mu);
        for (unsigned i = 0; i < started; i++) pthread_join(rp.w[i].thr, NULL);
        /* Chunks still queued after a failure are released here. */
        for (unsigned i = 0; i < started; i++) {
            struct worker *w = &rp.w[i];
            while (w->count) {
                chunk_release(&rp, w->q[w->head]);
                w->head = (w->head + 1) % QUEUE_DEPTH;
                w->count--;
            }
            pthread_cond_destroy(&w->cv);
        }
        free(rp.w);
    }
    pthread_cond_destroy(&rp.idle_cv);
    pthread_mutex_destroy(&rp.mu);
    free(filt.ids);
    return st;
}
