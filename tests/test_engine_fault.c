/*
 * test_engine_fault.c — invariant 7, first half, at the engine level: I/O
 * failures injected through the fault seam of common/io.c (cio_fault_set)
 * surface as errors, poison the handle, and lose nothing acknowledged.
 *
 * The plan is process-wide and counts the operations of every thread: the
 * WAL flusher (which does the commit writes and syncs) and the segment
 * preallocator too. Before a plan is installed the test waits until the
 * database is quiet (the preallocated segment is published and no I/O was
 * counted for a while), so "the Nth matching operation" is the Nth commit's.
 *
 * 1. Matrix: {EIO, ENOSPC} x {write, sync} x {once, persistent} x {1st, 2nd,
 *    3rd op} x {posix, io_uring}: the failing commit returns the injected
 *    status, naming the WAL segment and offset; every later write call gives
 *    CAIRN_EPOISONED; reads still work and show exactly the acknowledged
 *    commits; close returns; a reopen without faults holds every
 *    acknowledged commit, and the failed one whole or not at all (not at all
 *    after a failed write: nothing of it was written).
 * 2. SHORT writes, EAGAIN and EINTR are absorbed by the I/O layer: no commit
 *    fails, and everything is there after reopen.
 * 3. Fail the Nth operation (write, sync or metadata) for n = 1, 2, ...
 *    (EIO once on the default backend; ENOSPC persistent on posix)
 *    during a workload that creates the database, creates collections,
 *    commits across 2-3 segment rollovers and closes; stop at the first run
 *    in which no fault fired. Each run succeeds or fails cleanly; a reopen
 *    without faults holds every acknowledged commit and no partial one.
 *
 *   env CAIRN_SEED=<n>        workload data (printed)
 *   env CAIRN_NTH_MAX=<n>     safety bound of the Nth-op loop (default 2000)
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cairn.h"
#include "common/io.h"
#include "engine/engine_int.h"
#include "wal/wal.h"

#include "testutil.h"

static char tmpbase[512];
static int dbcounter;
static uint64_t g_seed;

/* ---- helpers --------------------------------------------------------------- */

static void new_dir(char *out, size_t n) { snprintf(out, n, "%s/db%d", tmpbase, dbcounter++); }

static cairn_options make_opts(cairn_io_backend io) {
    return tu_opts(CAIRN_DURABILITY_SYNC, io, 2);
}

static cairn_db *must_open(const char *dir, cairn_io_backend io) {
    cairn_options o = make_opts(io);
    cairn_db *db = NULL;
    cairn_status st = cairn_open(dir, &o, &db);
    if (st) fail_msg("open %s: %s: %s", dir, cairn_status_name(st), cairn_last_error());
    return db;
}

#define CHECK_OK(call)                                                                   \
    do {                                                                                 \
        cairn_status st_ = (call);                                                       \
        if (st_ != CAIRN_OK)                                                             \
            fail_msg("%s: %s: %s", #call, cairn_status_name(st_), cairn_last_error());  \
    } while (0)

/* ---- the model ------------------------------------------------------------- */

#define NCOLL 3
#define NIDS 256
#define SMALL_DIM 8
#define BIG_DIM 1024
#define MAXOPS 64

static const char *cname[NCOLL] = {"c0", "c1", "big"};
static const uint32_t cdim[NCOLL] = {SMALL_DIM, SMALL_DIM, BIG_DIM};

struct model {
    bool exists[NCOLL];
    bool has[NCOLL][NIDS];
    uint32_t vs[NCOLL][NIDS];
};

enum tx_kind { TX_MULTI, TX_BATCH, TX_DELETES, TX_CREATE };

struct op {
    int c;
    uint32_t id;
    bool del;
    uint32_t vs;
};

struct tx {
    enum tx_kind kind;
    int coll; /* TX_BATCH/TX_DELETES/TX_CREATE */
    int n;
    struct op ops[MAXOPS];
};

static void gen_vector(uint32_t vs, float *v, uint32_t dim) {
    uint64_t s = vs * 0x100000001b3ULL + 11;
    tu_fill_vec(&s, v, dim, -1.0, 1.0);
}

/* A payload for some seeds, none for others. */
static int gen_payload(uint32_t vs, char *buf, size_t n) {
    if (vs % 5 == 0) return -1;
    return snprintf(buf, n, "{\"s\":%u,\"t\":\"v%u\"}", vs, vs % 97);
}

static void model_apply(struct model *m, const struct tx *t) {
    if (t->kind == TX_CREATE) {
        m->exists[t->coll] = true;
        return;
    }
    for (int i = 0; i < t->n; i++) {
        const struct op *o = &t->ops[i];
        m->has[o->c][o->id] = !o->del;
        m->vs[o->c][o->id] = o->vs;
    }
}

/* Transaction k of a stream: small multi-collection transactions, batches
 * into one collection, delete batches. `big` adds large batches into "big". */
static void gen_tx(uint64_t seed, uint64_t k, bool big, struct tx *t) {
    uint64_t s = seed ^ (k * 0x9E3779B97F4A7C15ULL);
    memset(t, 0, sizeof *t);
    unsigned r = (unsigned)(tu_splitmix(&s) % 10);
    if (big && k % 3 != 2) { /* 2 of 3: 64 points of 4 KiB, ~2.6 segments in all */
        t->kind = TX_BATCH;
        t->coll = 2;
        t->n = MAXOPS;
    } else if (r < 7) {
        t->kind = TX_MULTI;
        t->n = 1 + (int)(tu_splitmix(&s) % 5);
    } else if (r < 9) {
        t->kind = TX_BATCH;
        t->coll = (int)(tu_splitmix(&s) % 2);
        t->n = 1 + (int)(tu_splitmix(&s) % 4);
    } else {
        t->kind = TX_DELETES;
        t->coll = (int)(tu_splitmix(&s) % 2);
        t->n = 1 + (int)(tu_splitmix(&s) % 3);
    }
    for (int i = 0; i < t->n; i++) {
        struct op *o = &t->ops[i];
        o->c = t->kind == TX_MULTI ? (int)(tu_splitmix(&s) % 2) : t->coll;
        o->id = (uint32_t)(tu_splitmix(&s) % (o->c == 2 ? NIDS : 48));
        o->del = t->kind == TX_DELETES || (t->kind == TX_MULTI && tu_splitmix(&s) % 6 == 0);
        o->vs = o->del ? 0 : (uint32_t)tu_splitmix(&s) | 1u;
    }
}

static float vbuf[MAXOPS][BIG_DIM];
static char pbuf[MAXOPS][64];

/* Runs t; msg gets the failure message. */
static cairn_status run_tx(cairn_db *db, const struct tx *t, char *msg, size_t msz) {
    cairn_status st = CAIRN_OK;
    msg[0] = 0;
    if (t->kind == TX_CREATE) {
        st = cairn_collection_create(db, cname[t->coll], cdim[t->coll], CAIRN_METRIC_L2);
    } else if (t->kind == TX_BATCH) {
        cairn_point pts[MAXOPS];
        for (int i = 0; i < t->n; i++) {
            const struct op *o = &t->ops[i];
            gen_vector(o->vs, vbuf[i], cdim[o->c]);
            int pl = gen_payload(o->vs, pbuf[i], sizeof pbuf[i]);
            pts[i] = (cairn_point){.id = o->id,
                                   .vector = vbuf[i],
                                   .payload = pl > 0 ? pbuf[i] : NULL,
                                   .payload_len = pl > 0 ? (size_t)pl : 0};
        }
        st = cairn_upsert_batch(db, cname[t->coll], pts, (size_t)t->n, cdim[t->coll], NULL);
    } else if (t->kind == TX_DELETES) {
        uint64_t ids[MAXOPS];
        for (int i = 0; i < t->n; i++) ids[i] = t->ops[i].id;
        st = cairn_delete_batch(db, cname[t->coll], ids, (size_t)t->n, NULL);
    } else {
        cairn_txn *x;
        st = cairn_txn_begin(db, &x);
        for (int i = 0; i < t->n && st == CAIRN_OK; i++) {
            const struct op *o = &t->ops[i];
            if (o->del) {
                st = cairn_txn_delete(x, cname[o->c], o->id);
            } else {
                gen_vector(o->vs, vbuf[i], cdim[o->c]);
                int pl = gen_payload(o->vs, pbuf[i], sizeof pbuf[i]);
                st = cairn_txn_upsert(x, cname[o->c], o->id, vbuf[i], cdim[o->c],
                                      pl > 0 ? pbuf[i] : NULL, pl > 0 ? (size_t)pl : 0);
            }
        }
        if (st == CAIRN_OK) st = cairn_txn_commit(x, NULL);
        if (st) snprintf(msg, msz, "%s", cairn_last_error());
        cairn_txn_free(x);
        return st;
    }
    if (st) snprintf(msg, msz, "%s", cairn_last_error());
    return st;
}

/* Does the database show exactly m? why gets the first difference. */
static bool db_matches(cairn_db *db, const struct model *m, char *why, size_t wn) {
    cairn_collection_info *list = NULL;
    size_t n = 0;
    cairn_status st = cairn_collection_list(db, &list, &n);
    if (st) {
        snprintf(why, wn, "list: %s", cairn_last_error());
        return false;
    }
    size_t want_n = 0;
    for (int c = 0; c < NCOLL; c++) want_n += m->exists[c];
    bool ok = n == want_n;
    if (!ok) snprintf(why, wn, "%zu collections, expected %zu", n, want_n);
    cairn_free(list);
    static float got[BIG_DIM], want[BIG_DIM];
    for (int c = 0; ok && c < NCOLL; c++) {
        cairn_collection_info info;
        st = cairn_collection_stat(db, cname[c], &info);
        if (!m->exists[c]) {
            if (st != CAIRN_ENOTFOUND) {
                snprintf(why, wn, "collection %s exists", cname[c]);
                ok = false;
            }
            continue;
        }
        if (st || info.dim != cdim[c]) {
            snprintf(why, wn, "collection %s missing or wrong", cname[c]);
            ok = false;
            break;
        }
        uint64_t cnt = 0;
        for (int id = 0; id < NIDS; id++) {
            if (!m->has[c][id]) continue;
            cnt++;
            char *p = NULL;
            st = cairn_get(db, cname[c], (uint64_t)id, got, cdim[c], &p);
            if (st) {
                snprintf(why, wn, "%s/%d: %s", cname[c], id, cairn_status_name(st));
                ok = false;
                break;
            }
            gen_vector(m->vs[c][id], want, cdim[c]);
            char pw[64];
            int pl = gen_payload(m->vs[c][id], pw, sizeof pw);
            if (memcmp(got, want, cdim[c] * sizeof(float)) != 0 ||
                (pl > 0) != (p != NULL) || (p && strcmp(p, pw) != 0)) {
                snprintf(why, wn, "%s/%d has other contents", cname[c], id);
                ok = false;
            }
            cairn_free(p);
            if (!ok) break;
        }
        if (ok && cnt != info.points) {
            snprintf(why, wn, "%s holds %" PRIu64 " points, expected %" PRIu64, cname[c],
                     info.points, cnt);
            ok = false;
        }
    }
    return ok;
}

/* ---- quiescence -------------------------------------------------------------- */

/* Waits until the preallocated segment after the current one is published
 * and no write/sync/meta operation was counted for 30 ms. */
static void quiesce(cairn_db *db, const char *dir) {
    cairn_stats s;
    CHECK_OK(cairn_stats_get(db, &s));
    uint64_t seg = CAIRN_WAL_SEGMENT_MIN;
    char name[64], next[700], tmpf[720];
    wal_seg_name(name, sizeof name, s.timeline, (s.last_lsn & ~(seg - 1)) + seg);
    snprintf(next, sizeof next, "%s/wal/%s", dir, name);
    snprintf(tmpf, sizeof tmpf, "%s.tmp", next);
    struct cio_fault_plan never = {.ops = CIO_FOP_WRITE | CIO_FOP_SYNC | CIO_FOP_META,
                                   .nth = UINT64_MAX,
                                   .kind = CIO_FAULT_EIO};
    cio_fault_set(&never);
    uint64_t last = cio_fault_count();
    int quiet = 0;
    for (int i = 0; i < 10000 && quiet < 30; i++) {
        usleep(1000);
        struct stat sb;
        bool published = stat(next, &sb) == 0 && (uint64_t)sb.st_size == seg &&
                         stat(tmpf, &sb) != 0;
        uint64_t c = cio_fault_count();
        if (c == last && published) {
            quiet++;
        } else {
            quiet = 0;
            last = c;
        }
    }
    cio_fault_set(NULL);
    if (quiet < 30) fail_msg("database %s did not become quiet", dir);
}

/* ---- 1. the matrix ------------------------------------------------------------ */

struct fcase {
    const char *label;
    unsigned ops;
    enum cio_fault_kind kind;
    cairn_status want;
};

static const struct fcase fcases[] = {
    {"EIO/write", CIO_FOP_WRITE, CIO_FAULT_EIO, CAIRN_EIO},
    {"ENOSPC/write", CIO_FOP_WRITE, CIO_FAULT_ENOSPC, CAIRN_ENOSPC},
    {"EIO/sync", CIO_FOP_SYNC, CIO_FAULT_EIO, CAIRN_EIO},
    {"ENOSPC/sync", CIO_FOP_SYNC, CIO_FAULT_ENOSPC, CAIRN_ENOSPC},
};

static int matrix_present, matrix_absent, matrix_same;

/* Every write call on a poisoned handle. */
static void expect_poisoned(cairn_db *db) {
    float v[SMALL_DIM] = {1, 2, 3, 4, 5, 6, 7, 8};
    cairn_txn *t;
    CHECK_OK(cairn_txn_begin(db, &t));
    CHECK_OK(cairn_txn_upsert(t, "c0", 1, v, SMALL_DIM, NULL, 0)); /* validation only */
    assert_int_equal(cairn_txn_commit(t, NULL), CAIRN_EPOISONED);
    assert_non_null(strstr(cairn_last_error(), "wal"));
    assert_int_equal(cairn_txn_commit(t, NULL), CAIRN_ETXN);
    cairn_txn_free(t);
    cairn_point p = {.id = 2, .vector = v};
    assert_int_equal(cairn_upsert_batch(db, "c0", &p, 1, SMALL_DIM, NULL), CAIRN_EPOISONED);
    uint64_t id = 3;
    assert_int_equal(cairn_delete_batch(db, "c1", &id, 1, NULL), CAIRN_EPOISONED);
    assert_int_equal(cairn_collection_create(db, "newcoll", 4, CAIRN_METRIC_L2),
                     CAIRN_EPOISONED);
    assert_int_equal(cairn_collection_drop(db, "c1"), CAIRN_EPOISONED);
    uint64_t lsn = 0;
    assert_int_equal(cairn_restore_point(db, "after-failure", &lsn), CAIRN_EPOISONED);
    /* an empty transaction would only log a COMMIT: still a write */
    CHECK_OK(cairn_txn_begin(db, &t));
    assert_int_equal(cairn_txn_commit(t, NULL), CAIRN_EPOISONED);
    cairn_txn_free(t);
}

static void matrix_case(cairn_io_backend io, const struct fcase *fc, uint64_t nth,
                        int persistent) {
    char dir[600];
    new_dir(dir, sizeof dir);
    char waldir[700];
    snprintf(waldir, sizeof waldir, "%s/wal/", dir);
    uint64_t seed = g_seed + nth * 31 + (uint64_t)persistent * 7 + (uint64_t)fc->ops * 101;
    static struct model acked, with_failed;
    memset(&acked, 0, sizeof acked);
    cairn_db *db = must_open(dir, io);
    char msg[1100];
    for (int c = 0; c < 2; c++) {
        struct tx t = {.kind = TX_CREATE, .coll = c};
        CHECK_OK(run_tx(db, &t, msg, sizeof msg));
        model_apply(&acked, &t);
    }
    uint64_t k = 0;
    for (; k < 5; k++) {
        struct tx t;
        gen_tx(seed, k, false, &t);
        CHECK_OK(run_tx(db, &t, msg, sizeof msg));
        model_apply(&acked, &t);
    }
    quiesce(db, dir);
    struct cio_fault_plan plan = {
        .ops = fc->ops, .nth = nth, .kind = fc->kind, .persistent = persistent};
    cio_fault_set(&plan);
    uint64_t failed_at = 0;
    struct tx failed = {0};
    for (uint64_t i = 1; i <= 12; i++, k++) {
        struct tx t;
        gen_tx(seed, k, false, &t);
        cairn_status st = run_tx(db, &t, msg, sizeof msg);
        if (st == CAIRN_OK) {
            model_apply(&acked, &t);
            continue;
        }
        if (st != fc->want)
            fail_msg("%s nth %" PRIu64 ": commit %" PRIu64 " gave %s, expected %s: %s",
                     fc->label, nth, i, cairn_status_name(st), cairn_status_name(fc->want),
                     msg);
        if (!strstr(msg, waldir) || !strstr(msg, "offset"))
            fail_msg("%s: message does not name the WAL segment and offset: %s", fc->label,
                     msg);
        failed_at = i;
        failed = t;
        k++;
        break;
    }
    if (failed_at != nth)
        fail_msg("%s: the fault on op %" PRIu64 " failed commit %" PRIu64 " (0 = none; %" PRIu64
                 " ops counted, %" PRIu64 " fired)",
                 fc->label, nth, failed_at, cio_fault_count(), cio_fault_fired());
    assert_true(cio_fault_fired() >= 1);

    expect_poisoned(db);
    /* reads work and show exactly what was acknowledged */
    char why[256];
    if (!db_matches(db, &acked, why, sizeof why))
        fail_msg("%s: poisoned handle shows other state: %s", fc->label, why);
    cairn_stats s;
    CHECK_OK(cairn_stats_get(db, &s));
    cairn_hit hits[4];
    uint32_t nh = 0;
    float q[SMALL_DIM] = {0};
    CHECK_OK(cairn_search(db, "c0", q, SMALL_DIM, 4, NULL, hits, &nh));

    cairn_status cst = cairn_close(db); /* the plan is still installed */
    if (cst != CAIRN_EPOISONED && cst != fc->want)
        fail_msg("%s: close of a poisoned handle gave %s: %s", fc->label,
                 cairn_status_name(cst), cairn_last_error());
    cio_fault_set(NULL);

    db = must_open(dir, io);
    with_failed = acked;
    model_apply(&with_failed, &failed);
    bool same = memcmp(&acked, &with_failed, sizeof acked) == 0;
    bool is_acked = db_matches(db, &acked, why, sizeof why);
    bool is_with = !is_acked && db_matches(db, &with_failed, why, sizeof why);
    if (!is_acked && !is_with)
        fail_msg("%s nth %" PRIu64 " %s: after reopen the state is neither the acknowledged "
                 "one nor that plus the failed commit: %s",
                 fc->label, nth, persistent ? "persistent" : "once", why);
    if (fc->ops == CIO_FOP_WRITE && is_with)
        fail_msg("%s: the commit whose write failed is present after reopen", fc->label);
    if (getenv("CAIRN_TEST_VERBOSE"))
        printf("  %s %s nth %" PRIu64 " %s: failed commit %s after reopen\n",
               io == CAIRN_IO_POSIX ? "posix" : "uring", fc->label, nth,
               persistent ? "persistent" : "once",
               same ? "changes nothing (cannot tell)" : is_with ? "present" : "absent");
    if (same) {
        matrix_same++;
    } else if (is_with) {
        matrix_present++;
        acked = with_failed;
    } else {
        matrix_absent++;
    }
    /* the reopened handle writes again, and that survives another reopen */
    for (int i = 0; i < 3; i++, k++) {
        struct tx t;
        gen_tx(seed, k, false, &t);
        CHECK_OK(run_tx(db, &t, msg, sizeof msg));
        model_apply(&acked, &t);
    }
    CHECK_OK(cairn_close(db));
    db = must_open(dir, io);
    if (!db_matches(db, &acked, why, sizeof why))
        fail_msg("%s: after the second reopen: %s", fc->label, why);
    CHECK_OK(cairn_close(db));
    tu_rm_rf(dir);
}

static void run_matrix(cairn_io_backend io) {
    for (size_t f = 0; f < sizeof fcases / sizeof fcases[0]; f++)
        for (int persistent = 0; persistent < 2; persistent++)
            for (uint64_t nth = 1; nth <= 3; nth++)
                matrix_case(io, &fcases[f], nth, persistent);
}

static void test_matrix_posix(void **state) {
    (void)state;
    run_matrix(CAIRN_IO_POSIX);
}

static void test_matrix_uring(void **state) {
    (void)state;
    if (!cio_uring_available()) skip();
    run_matrix(CAIRN_IO_URING);
}

/* ---- 2. absorbed faults --------------------------------------------------------- */

static void absorbed_case(cairn_io_backend io, unsigned ops, enum cio_fault_kind kind,
                          uint64_t nth, int persistent) {
    char dir[600];
    new_dir(dir, sizeof dir);
    uint64_t seed = g_seed * 3 + nth + (uint64_t)kind * 13 + (uint64_t)ops * 5;
    static struct model m;
    memset(&m, 0, sizeof m);
    cairn_db *db = must_open(dir, io);
    char msg[1100];
    for (int c = 0; c < 2; c++) {
        struct tx t = {.kind = TX_CREATE, .coll = c};
        CHECK_OK(run_tx(db, &t, msg, sizeof msg));
        model_apply(&m, &t);
    }
    uint64_t k = 0;
    for (; k < 3; k++) {
        struct tx t;
        gen_tx(seed, k, false, &t);
        CHECK_OK(run_tx(db, &t, msg, sizeof msg));
        model_apply(&m, &t);
    }
    quiesce(db, dir);
    struct cio_fault_plan plan = {.ops = ops, .nth = nth, .kind = kind, .persistent = persistent};
    cio_fault_set(&plan);
    for (int i = 0; i < 8; i++, k++) {
        struct tx t;
        gen_tx(seed, k, false, &t);
        cairn_status st = run_tx(db, &t, msg, sizeof msg);
        if (st)
            fail_msg("kind %d ops %u nth %" PRIu64 "%s: commit %d failed: %s: %s", kind, ops,
                     nth, persistent ? " persistent" : "", i, cairn_status_name(st), msg);
        model_apply(&m, &t);
    }
    /* DDL and a restore point go through the same path */
    CHECK_OK(cairn_restore_point(db, "absorbed", NULL));
    if (cio_fault_fired() == 0)
        fail_msg("kind %d ops %u nth %" PRIu64 ": no fault fired (%" PRIu64 " ops)", kind, ops,
                 nth, cio_fault_count());
    char why[256];
    if (!db_matches(db, &m, why, sizeof why)) fail_msg("before close: %s", why);
    CHECK_OK(cairn_close(db));
    cio_fault_set(NULL);
    db = must_open(dir, io);
    if (!db_matches(db, &m, why, sizeof why))
        fail_msg("kind %d ops %u nth %" PRIu64 ": after reopen: %s", kind, ops, nth, why);
    cairn_stats s;
    CHECK_OK(cairn_stats_get(db, &s));
    assert_int_equal(s.recovery.bytes_truncated, 0);
    CHECK_OK(cairn_close(db));
    tu_rm_rf(dir);
}

static void run_absorbed(cairn_io_backend io) {
    for (uint64_t nth = 1; nth <= 3; nth++) {
        absorbed_case(io, CIO_FOP_WRITE, CIO_FAULT_SHORT, nth, 0);
        absorbed_case(io, CIO_FOP_WRITE, CIO_FAULT_EAGAIN, nth, 0);
        absorbed_case(io, CIO_FOP_WRITE, CIO_FAULT_EINTR, nth, 0);
        absorbed_case(io, CIO_FOP_SYNC, CIO_FAULT_EAGAIN, nth, 0);
        absorbed_case(io, CIO_FOP_SYNC, CIO_FAULT_EINTR, nth, 0);
        absorbed_case(io, CIO_FOP_WRITE | CIO_FOP_SYNC | CIO_FOP_META, CIO_FAULT_EINTR, nth, 0);
    }
    /* every write short: halved again and again, still complete */
    absorbed_case(io, CIO_FOP_WRITE, CIO_FAULT_SHORT, 1, 1);
    absorbed_case(io, CIO_FOP_WRITE | CIO_FOP_SYNC, CIO_FAULT_SHORT, 2, 1);
}

static void test_absorbed_posix(void **state) {
    (void)state;
    run_absorbed(CAIRN_IO_POSIX);
}

static void test_absorbed_uring(void **state) {
    (void)state;
    if (!cio_uring_available()) skip();
    run_absorbed(CAIRN_IO_URING);
}

/* ---- 3. fail the Nth operation ------------------------------------------------------ */

#define NTH_COMMITS 30

struct nth_stats {
    uint64_t runs, clean_ok, failed_open, failed_ddl, failed_commit, failed_close;
    uint64_t indoubt_present, indoubt_absent;
    uint64_t max_ops;
};

/* One run with the plan installed from before the open; returns whether a
 * fault fired. */
static bool nth_run(cairn_io_backend io, uint64_t n, enum cio_fault_kind kind,
                    int persistent, struct nth_stats *ns) {
    char dir[600];
    new_dir(dir, sizeof dir);
    uint64_t seed = g_seed ^ 0xfeedULL;
    static struct model acked, with_failed;
    memset(&acked, 0, sizeof acked);
    struct tx failed = {0};
    bool have_failed = false;
    char msg[1100];
    const char *phase = "none";

    struct cio_fault_plan plan = {.ops = CIO_FOP_WRITE | CIO_FOP_SYNC | CIO_FOP_META,
                                  .nth = n,
                                  .kind = kind,
                                  .persistent = persistent};
    cio_fault_set(&plan);
    cairn_options o = make_opts(io);
    cairn_db *db = NULL;
    cairn_status st = cairn_open(dir, &o, &db);
    if (st) {
        phase = "open";
        ns->failed_open++;
        assert_null(db);
        snprintf(msg, sizeof msg, "%s", cairn_last_error());
        if (!msg[0]) fail_msg("run %" PRIu64 ": open failed with an empty message", n);
        goto verify;
    }
    /* collections "c0" and "big", then commits rolling over segments */
    int colls[2] = {0, 2};
    for (int i = 0; i < 2; i++) {
        struct tx t = {.kind = TX_CREATE, .coll = colls[i]};
        st = run_tx(db, &t, msg, sizeof msg);
        if (st) {
            phase = "create";
            ns->failed_ddl++;
            failed = t;
            have_failed = true;
            goto close;
        }
        model_apply(&acked, &t);
    }
    for (uint64_t k = 0; k < NTH_COMMITS; k++) {
        struct tx t;
        gen_tx(seed, k, true, &t);
        if (t.kind == TX_MULTI || t.kind == TX_DELETES || t.coll != 2) {
            /* only "c0" and "big" exist here */
            for (int i = 0; i < t.n; i++)
                if (t.ops[i].c == 1) t.ops[i].c = 0;
            if (t.coll == 1) t.coll = 0;
        }
        st = run_tx(db, &t, msg, sizeof msg);
        if (st) {
            phase = "commit";
            ns->failed_commit++;
            failed = t;
            have_failed = true;
            break;
        }
        model_apply(&acked, &t);
    }
    if (st == CAIRN_OK) {
        /* the workload rolled over at least twice */
        cairn_stats s;
        CHECK_OK(cairn_stats_get(db, &s));
        if (s.last_lsn < 2 * (uint64_t)CAIRN_WAL_SEGMENT_MIN)
            fail_msg("run %" PRIu64 ": the workload ends at LSN %" PRIu64
                     ", before the third segment",
                     n, s.last_lsn);
    }
close:
    if (st) {
        if (!msg[0]) fail_msg("run %" PRIu64 ": a %s failed with an empty message", n, phase);
        if (st != CAIRN_EIO && st != CAIRN_ENOSPC && st != CAIRN_EPOISONED)
            fail_msg("run %" PRIu64 ": %s failed with %s: %s", n, phase,
                     cairn_status_name(st), msg);
    }
    {
        cairn_status cst = cairn_close(db);
        if (cst && !st) {
            phase = "close";
            ns->failed_close++;
        }
    }
verify:;
    bool fired = cio_fault_fired() > 0;
    uint64_t ops = cio_fault_count();
    if (ops > ns->max_ops) ns->max_ops = ops;
    cio_fault_set(NULL);
    if (!fired && strcmp(phase, "none") != 0)
        fail_msg("run %" PRIu64 ": %s failed without an injected fault: %s", n, phase, msg);
    if (!strcmp(phase, "none")) ns->clean_ok++;
    ns->runs++;
    if (getenv("CAIRN_TEST_VERBOSE"))
        printf("  run %" PRIu64 ": %" PRIu64 " ops, fault in %s: %s\n", n, ops, phase,
               strcmp(phase, "none") ? msg : "");

    /* reopen without faults: acked, or acked + the one in doubt */
    cairn_db *rdb = NULL;
    st = cairn_open(dir, &o, &rdb);
    if (st)
        fail_msg("run %" PRIu64 " (fault in %s): reopen failed: %s: %s", n, phase,
                 cairn_status_name(st), cairn_last_error());
    char why[256], why2[256] = "";
    bool ok = db_matches(rdb, &acked, why, sizeof why);
    if (!ok && have_failed) {
        with_failed = acked;
        model_apply(&with_failed, &failed);
        ok = db_matches(rdb, &with_failed, why2, sizeof why2);
        if (ok) {
            ns->indoubt_present++;
            acked = with_failed;
        }
    } else if (have_failed) {
        ns->indoubt_absent++;
    }
    if (!ok)
        fail_msg("run %" PRIu64 " (fault in %s: %s): state after reopen is not the "
                 "acknowledged one (%s)%s%s",
                 n, phase, msg, why, have_failed ? " nor that plus the failed one: " : "",
                 why2);
    /* the recovered database takes new commits */
    if (!acked.exists[0]) {
        struct tx t = {.kind = TX_CREATE, .coll = 0};
        CHECK_OK(run_tx(rdb, &t, msg, sizeof msg));
        model_apply(&acked, &t);
    }
    struct tx t;
    gen_tx(seed, 1000 + n, false, &t);
    for (int i = 0; i < t.n; i++) t.ops[i].c = 0;
    t.coll = 0;
    CHECK_OK(run_tx(rdb, &t, msg, sizeof msg));
    model_apply(&acked, &t);
    CHECK_OK(cairn_close(rdb));
    rdb = NULL;
    CHECK_OK(cairn_open(dir, &o, &rdb));
    if (!db_matches(rdb, &acked, why, sizeof why))
        fail_msg("run %" PRIu64 ": after the post-recovery commit and reopen: %s", n, why);
    CHECK_OK(cairn_close(rdb));
    tu_rm_rf(dir);
    return fired;
}

static void nth_loop(cairn_io_backend io, enum cio_fault_kind kind, int persistent,
                     const char *label) {
    const char *env = getenv("CAIRN_NTH_MAX");
    uint64_t max = env ? strtoull(env, NULL, 0) : 2000;
    struct nth_stats ns;
    memset(&ns, 0, sizeof ns);
    /* Background threads make the op count of a run vary a little (the
     * preallocator may or may not be creating a segment at close): go on
     * until a run sees no fault AND n is past every run's op count. */
    uint64_t n = 1;
    for (; n <= max; n++)
        if (!nth_run(io, n, kind, persistent, &ns) && n > ns.max_ops) break;
    printf("engine_fault: nth-op loop %s: %" PRIu64 " runs (the last, n=%" PRIu64
           ", saw no fault; most ops counted in a run: %" PRIu64 "): failed open %" PRIu64
           ", create %" PRIu64 ", commit %" PRIu64 ", close %" PRIu64
           "; in-doubt commit present %" PRIu64 ", absent %" PRIu64 "\n",
           label, ns.runs, n, ns.max_ops, ns.failed_open, ns.failed_ddl, ns.failed_commit,
           ns.failed_close, ns.indoubt_present, ns.indoubt_absent);
    fflush(stdout);
    if (n > max) fail_msg("nth-op loop did not reach the end of the workload in %" PRIu64 " runs", max);
    assert_true(ns.failed_open > 0);
    assert_true(ns.failed_commit > 0);
}

static void test_nth_op_eio(void **state) {
    (void)state;
    nth_loop(CAIRN_IO_DEFAULT, CIO_FAULT_EIO, 0, "EIO once");
}

/* Persistent: from the Nth op on, everything fails (the close and the
 * preallocator included), on the posix backend. */
static void test_nth_op_enospc_persistent(void **state) {
    (void)state;
    nth_loop(CAIRN_IO_POSIX, CIO_FAULT_ENOSPC, 1, "ENOSPC persistent, posix");
}

/* 4. A durable change whose apply in memory fails (ENOMEM, through the
 * store's seam) poisons the handle: the commit reports it as
 * CAIRN_EPOISONED (not CAIRN_ENOMEM, which would say the log never got
 * it: cairn.h), saying it is durable, every later
 * read, write and checkpoint is CAIRN_EPOISONED naming it, close works,
 * and a reopen holds the change (replay applies it). In every mode. */
static void apply_failure(cairn_durability d) {
    char dir[600];
    new_dir(dir, sizeof dir);
    cairn_options o = tu_opts(d, CAIRN_IO_DEFAULT, 1);
    cairn_db *db = NULL;
    assert_int_equal(cairn_open(dir, &o, &db), CAIRN_OK);
    assert_int_equal(cairn_collection_create(db, "a", 8, CAIRN_METRIC_L2), CAIRN_OK);
    float v[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    for (uint64_t id = 0; id < 5; id++)
        assert_int_equal(cairn_upsert_batch(db, "a", &(cairn_point){.id = id, .vector = v},
                                            1, 8, NULL), CAIRN_OK);
    assert_int_equal(cairn_checkpoint(db, NULL), CAIRN_OK);
    struct coll *c = cat_find_name(db, "a");
    assert_non_null(c);
    pthread_rwlock_wrlock(&c->lock);
    c->st.fault_in = 1; /* the first fallible step of the next store op */
    pthread_rwlock_unlock(&c->lock);
    cairn_txn *t = NULL;
    assert_int_equal(cairn_txn_begin(db, &t), CAIRN_OK);
    assert_int_equal(cairn_txn_upsert(t, "a", 100, v, 8, "{\"x\":1}", 7), CAIRN_OK);
    assert_int_equal(cairn_txn_upsert(t, "a", 101, v, 8, NULL, 0), CAIRN_OK);
    assert_int_equal(cairn_txn_commit(t, NULL), CAIRN_EPOISONED);
    cairn_txn_free(t);
    assert_non_null(strstr(cairn_last_error(), "durable but could not be applied"));
    assert_non_null(strstr(cairn_last_error(), "point 100"));
    /* everything after is refused, naming the cause */
    float out[8];
    cairn_hit hits[2];
    uint32_t nh = 0;
    assert_int_equal(cairn_get(db, "a", 1, out, 8, NULL), CAIRN_EPOISONED);
    assert_non_null(strstr(cairn_last_error(), "must be reopened"));
    assert_non_null(strstr(cairn_last_error(), "point 100"));
    assert_int_equal(cairn_search(db, "a", v, 8, 2, NULL, hits, &nh), CAIRN_EPOISONED);
    assert_int_equal(cairn_txn_begin(db, &t), CAIRN_EPOISONED);
    assert_int_equal(cairn_upsert_batch(db, "a", &(cairn_point){.id = 7, .vector = v}, 1, 8,
                                        NULL), CAIRN_EPOISONED);
    assert_int_equal(cairn_collection_create(db, "b", 4, CAIRN_METRIC_L2), CAIRN_EPOISONED);
    assert_int_equal(cairn_restore_point(db, "r", NULL), CAIRN_EPOISONED);
    assert_int_equal(cairn_checkpoint(db, NULL), CAIRN_EPOISONED);
    assert_non_null(strstr(cairn_last_error(), "point 100"));
    assert_int_equal(cairn_close(db), CAIRN_OK);
    /* the transaction is durable: whole after the reopen (async and none
     * flushed it at close) */
    assert_int_equal(cairn_open(dir, &o, &db), CAIRN_OK);
    for (uint64_t id = 0; id < 5; id++)
        assert_int_equal(cairn_get(db, "a", id, out, 8, NULL), CAIRN_OK);
    char *pay = NULL;
    assert_int_equal(cairn_get(db, "a", 100, out, 8, &pay), CAIRN_OK);
    assert_string_equal(pay, "{\"x\":1}");
    cairn_free(pay);
    assert_int_equal(cairn_get(db, "a", 101, out, 8, NULL), CAIRN_OK);
    assert_int_equal(cairn_checkpoint(db, NULL), CAIRN_OK);
    assert_int_equal(cairn_close(db), CAIRN_OK);
}

static void test_apply_failure(void **state) {
    (void)state;
    apply_failure(CAIRN_DURABILITY_SYNC);
    apply_failure(CAIRN_DURABILITY_ASYNC);
    apply_failure(CAIRN_DURABILITY_NONE);
}

int main(void) {
    g_seed = tu_seed("engine_fault", 0xfa17ULL);
    if (tu_tmpbase(tmpbase, sizeof tmpbase, "engine_fault") != 0) {
        perror("engine_fault: temporary directory");
        return 1;
    }
    tu_quiet_log(); /* injected failures log errors by design */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matrix_posix),
        cmocka_unit_test(test_matrix_uring),
        cmocka_unit_test(test_absorbed_posix),
        cmocka_unit_test(test_absorbed_uring),
        cmocka_unit_test(test_nth_op_eio),
        cmocka_unit_test(test_nth_op_enospc_persistent),
        cmocka_unit_test(test_apply_failure),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    cio_fault_set(NULL);
    printf("engine_fault: matrix: failed commit durable after reopen %d, not %d, "
           "indistinguishable %d\n",
           matrix_present, matrix_absent, matrix_same);
    tu_rm_rf(tmpbase);
    return rc;
}
