/*
 * test_archiver.c — continuous WAL archiving from inside the engine
 * (cairn_options.archive_repo, pitr/api.c), in-process backups
 * (cairn_backup), and the repository's maintenance (pitr_verify,
 * pitr_expire) and encryption, end to end on real files.
 *
 * Every test checks restored databases against an oracle: each commit's
 * operations are kept (struct hist), so the state after any prefix of the
 * commits can be rebuilt as a tu_model and compared with
 * tu_state_digest of the restored database.
 *
 * 1. continuous: a SYNC database with 2 MiB segments and archive_repo set
 *    commits over several segments after a checkpoint and a backup; after
 *    close exactly the segments below the one being written are archived,
 *    each verifies, and a restore --latest equals the state after the last
 *    commit of the archived range (found from the summaries and from the
 *    commit LSNs; both must agree).
 * 2. retention: no checkpoint removes a segment from DB/wal before it is
 *    in the repository. With the repository made unwritable (a file where
 *    its wal/ directory goes) the archiver fails, logs it, and checkpoints
 *    remove nothing; once writable again it catches up by itself and
 *    checkpoints remove what it archived. After every checkpoint every
 *    segment missing from DB/wal is archived. A caller's own wal_retain
 *    hook is chained: returning 0 keeps everything although archived,
 *    returning an LSN keeps from that segment on.
 * 3. archive_timeout_s: with 1 s, one commit and ~3 s of quiet get its
 *    segment switched and archived, and a restore --latest holds it;
 *    without a timeout the segment stays unarchived (also after close)
 *    until a cairn_wal_switch. The timeout's switch failing (no file can
 *    be made for the next segment) is logged once over many passes, and
 *    the segment is switched and archived once files can be made again.
 *    The archive levels of cairn_options: recorded by a repository the
 *    archiver creates, refused out of range before anything exists.
 * 4. online backup: cairn_backup while a writer thread keeps committing
 *    (the writer is paused only for the checkpoint before each backup):
 *    commits go on during each backup; a full and an incremental (few new
 *    pages), each restored with PITR_TARGET_BACKUP, equal the state
 *    recorded right after their checkpoint.
 * 5. backup alone: a fresh repository holding one backup and no archived
 *    WAL restores (--backup and --latest) to the checkpoint's state from
 *    the manifest's WAL head; still after expire drops an older full.
 * 6. verify and expire: a flipped byte in a blob (a pack and a WAL head) is
 *    a problem naming that blob; a segment removed from the middle of the
 *    archive is a gap; expire --keep-full 1 after full, incremental, full
 *    deletes the first full and its incremental, their unshared blobs and
 *    the WAL before the kept full's redo LSN, nothing else (a dry run
 *    changes no file and counts the same); the kept full still restores
 *    and verify finds nothing afterwards. Expire failing (EIO through the
 *    fault seam) at each of its deletions and directory fsyncs in turn:
 *    the error names the file, verify finds nothing wrong in what is left,
 *    and the next expire leaves exactly the files of an uninterrupted one.
 * 7. encryption: archive_key_file makes the archiver create an encrypted
 *    repository; backups and restores with the key work; without the key
 *    or with another one the repository is refused naming the key id
 *    (also by cairn_open and cairn_backup); an object read with a wrong key
 *    (a key swapped after open, or a repo.json edited to another key's id)
 *    is CAIRN_ECORRUPT and never data, and a restore with it leaves nothing.
 * 8. close during a background checkpoint: the checkpoint calls the
 *    archiver's retention hook after the archiver's last pass; the
 *    archiver must not be freed before (ASan), and the reopened database
 *    holds every commit.
 *
 * Seeded: CAIRN_SEED replays a run.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cairn.h"
#include "common/codec.h"
#include "common/io.h"
#include "pitr/pitr.h"
#include "testutil.h"
#include "testutil_cmocka.h"
#include "wal/wal.h"

#define SEG ((uint64_t)2 << 20) /* tu_opts: the smallest WAL segment */
#define SEG_OF(lsn) ((lsn) & ~(SEG - 1))
#define OBJ_HDR 96              /* docs/format.md, "Objects" */

static char tmpbase[512];
static int dircount;
static uint64_t g_seed;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void new_dir(char *out, size_t n, const char *what)
{
    snprintf(out, n, "%s/%s%d", tmpbase, what, dircount++);
}

static bool exists(const char *path)
{
    struct stat sb;
    return lstat(path, &sb) == 0;
}

/* ---- the log: the archiver's messages are counted ------------------------------ */

static atomic_uint g_arch_warn, g_arch_again, g_switch_warn, g_switch_again;

static void test_log(void *ctx, cairn_log_level level, const char *msg)
{
    (void)ctx;
    if (strstr(msg, "WAL archiver: could not close the segment"))
        atomic_fetch_add(&g_switch_warn, 1);
    if (strstr(msg, "WAL archiver: closed the segment after"))
        atomic_fetch_add(&g_switch_again, 1);
    if (strstr(msg, "WAL archiver:")) {
        if (level >= CAIRN_LOG_WARN)
            atomic_fetch_add(&g_arch_warn, 1);
        else if (strstr(msg, "archiving again"))
            atomic_fetch_add(&g_arch_again, 1);
    }
    if (level >= CAIRN_LOG_ERROR || (level >= CAIRN_LOG_WARN && getenv("CAIRN_TEST_VERBOSE")))
        fprintf(stderr, "[cairn] %s\n", msg);
}

/* ---- the workload and its oracle ------------------------------------------------- */

/* Two collections; "docs" gets most operations and the big payloads. */
static const char *const cname[2] = {"docs", "tags"};
static const uint32_t cdim[2] = {48, 6};
static const cairn_metric cmetric[2] = {CAIRN_METRIC_L2, CAIRN_METRIC_COSINE};

struct op {
    uint8_t coll, del;
    uint64_t id;
    uint32_t vseed, pad;
};

/* What a transaction draws: the share of big payloads (6..20 KB, to fill
 * segments fast) and the id ranges (small ranges: updates and deletes hit
 * existing points). */
struct prof {
    unsigned big_pct;
    uint32_t docs_ids, tags_ids;
};
static const struct prof P_FILL = {45, 300, 80};
static const struct prof P_LIGHT = {0, 40, 20};

/* Every commit's operations, LSN and transaction id, in commit order. */
struct hist {
    struct op *ops;
    size_t nops, capops;
    size_t *end; /* commit i's operations: ops[end[i-1] .. end[i]) */
    uint64_t *lsn, *txn;
    size_t n, cap;
};

static void hist_free(struct hist *h)
{
    free(h->ops);
    free(h->end);
    free(h->lsn);
    free(h->txn);
    memset(h, 0, sizeof *h);
}

static unsigned gen_txn(uint64_t *rng, const struct prof *p, struct op *ops)
{
    unsigned n = 1 + (unsigned)(tu_splitmix(rng) % 6);
    for (unsigned i = 0; i < n; i++) {
        struct op *o = &ops[i];
        o->coll = tu_splitmix(rng) % 4 == 0;
        o->id = tu_splitmix(rng) % (o->coll ? p->tags_ids : p->docs_ids);
        o->del = tu_splitmix(rng) % 6 == 0;
        o->vseed = (uint32_t)tu_splitmix(rng);
        unsigned r = (unsigned)(tu_splitmix(rng) % 100);
        o->pad = r < p->big_pct        ? 6000 + (uint32_t)(tu_splitmix(rng) % 14000)
                 : r < p->big_pct + 10 ? TU_NO_PAYLOAD
                                       : (uint32_t)(tu_splitmix(rng) % 300);
    }
    return n;
}

static cairn_status run_txn(cairn_db *db, const struct op *ops, unsigned n, cairn_commit_info *ci)
{
    float v[64];
    cairn_txn *t = NULL;
    cairn_status st = cairn_txn_begin(db, &t);
    for (unsigned i = 0; !st && i < n; i++) {
        const struct op *o = &ops[i];
        if (o->del) {
            st = cairn_txn_delete(t, cname[o->coll], o->id);
            continue;
        }
        tu_gen_vector(o->vseed, v, cdim[o->coll]);
        size_t plen = 0;
        char *pay = tu_gen_payload(o->vseed, o->pad, &plen);
        if (o->pad != TU_NO_PAYLOAD && !pay)
            st = CAIRN_ENOMEM;
        if (!st)
            st = cairn_txn_upsert(t, cname[o->coll], o->id, v, cdim[o->coll], pay, plen);
        free(pay);
    }
    if (!st)
        st = cairn_txn_commit(t, ci);
    else
        cairn_txn_abort(t);
    cairn_txn_free(t);
    return st;
}

/* One transaction of profile p, committed and recorded in h. */
static void commit_one(cairn_db *db, struct hist *h, uint64_t *rng, const struct prof *p)
{
    struct op ops[8];
    unsigned n = gen_txn(rng, p, ops);
    cairn_commit_info ci;
    must(run_txn(db, ops, n, &ci), "commit");
    if (h->nops + n > h->capops) {
        h->capops = h->capops ? 2 * h->capops : 1024;
        h->ops = realloc(h->ops, h->capops * sizeof *h->ops);
        assert_non_null(h->ops);
    }
    if (h->n == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 256;
        h->end = realloc(h->end, h->cap * sizeof *h->end);
        h->lsn = realloc(h->lsn, h->cap * sizeof *h->lsn);
        h->txn = realloc(h->txn, h->cap * sizeof *h->txn);
        assert_true(h->end && h->lsn && h->txn);
    }
    if (h->n)
        assert_true(ci.commit_lsn > h->lsn[h->n - 1]);
    memcpy(h->ops + h->nops, ops, n * sizeof *ops);
    h->nops += n;
    h->end[h->n] = h->nops;
    h->lsn[h->n] = ci.commit_lsn;
    h->txn[h->n] = ci.txn_id;
    h->n++;
}

static uint64_t last_lsn(cairn_db *db)
{
    cairn_stats s;
    must(cairn_stats_get(db, &s), "stats");
    return s.last_lsn;
}

/* After a switch the log goes on here (last_lsn stays at the SWITCH). */
static uint64_t durable_lsn(cairn_db *db)
{
    cairn_stats s;
    must(cairn_stats_get(db, &s), "stats");
    return s.durable_lsn;
}

/* Commits until the log reaches `lsn`, then `more` commits. */
static void commit_until(cairn_db *db, struct hist *h, uint64_t *rng, uint64_t lsn, unsigned more)
{
    while (last_lsn(db) < lsn)
        commit_one(db, h, rng, &P_FILL);
    for (unsigned i = 0; i < more; i++)
        commit_one(db, h, rng, &P_FILL);
}

static void create_colls(cairn_db *db)
{
    for (int c = 0; c < 2; c++)
        must(cairn_collection_create(db, cname[c], cdim[c], cmetric[c]), "create collection");
}

/* The state after the first k commits of h, as tu_state_digest renders it. */
static void model_digest(const struct hist *h, size_t k, struct tu_dig *d)
{
    assert_true(k <= h->n);
    struct tu_model m = {0};
    for (int c = 0; c < 2; c++)
        assert_int_equal(tu_model_create(&m, cname[c], cdim[c], cmetric[c]), 0);
    for (size_t i = 0; i < (k ? h->end[k - 1] : 0); i++) {
        const struct op *o = &h->ops[i];
        int rc = o->del ? tu_model_delete(&m, cname[o->coll], o->id)
                        : tu_model_upsert(&m, cname[o->coll], o->id, o->vseed, o->pad);
        if (rc)
            fail_msg("model: %s", tu_error());
    }
    if (tu_model_digest(&m, d) != 0)
        fail_msg("model digest: %s", tu_error());
    tu_model_free(&m);
}

/* Commits of h whose COMMIT record starts before lsn. */
static size_t commits_before(const struct hist *h, uint64_t lsn)
{
    size_t k = 0;
    while (k < h->n && h->lsn[k] < lsn)
        k++;
    return k;
}

static void db_digest(cairn_db *db, struct tu_dig *d)
{
    if (tu_state_digest(db, d, 0) != 0)
        fail_msg("digest: %s", tu_error());
}

static void dir_digest(const char *dir, struct tu_dig *d)
{
    cairn_db *db = must_open(dir);
    db_digest(db, d);
    must(cairn_close(db), "close");
}

/* ---- repositories ------------------------------------------------------------------ */

static repo *must_repo_k(const char *dir, const char *key)
{
    repo *r = NULL;
    struct repo_open_opts o = {.key_file = key};
    must(repo_open(dir, &o, &r), "repo open");
    return r;
}

static repo *must_repo(const char *dir)
{
    return must_repo_k(dir, NULL);
}

/* Archived segment starts of timeline 1. */
static size_t repo_segs(const char *dir, const char *key, uint64_t **starts)
{
    repo *r = must_repo_k(dir, key);
    size_t n = 0;
    must(repo_wal_list(r, 1, starts, &n), "repo wal list");
    repo_close(r);
    return n;
}

static bool has_seg(const uint64_t *v, size_t n, uint64_t s)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] == s)
            return true;
    return false;
}

static bool seg_archived(const char *dir, const char *key, uint64_t s)
{
    uint64_t *v = NULL;
    size_t n = repo_segs(dir, key, &v);
    bool r = has_seg(v, n, s);
    free(v);
    return r;
}

/* Segment starts in DB/wal (timeline 1). */
static size_t db_segs(const char *db, uint64_t **starts)
{
    char w[800];
    snprintf(w, sizeof w, "%s/wal", db);
    size_t n = 0;
    must(wal_seg_list(w, 1, starts, &n), "wal seg list");
    return n;
}

/* Waits (at most max_s) until every segment below `upto` is archived. */
static double wait_archived(const char *dir, const char *key, uint64_t upto, double max_s)
{
    double t0 = now_s();
    for (;;) {
        uint64_t *v = NULL;
        size_t n = repo_segs(dir, key, &v);
        bool all = true;
        for (uint64_t s = 0; s < upto && all; s += SEG)
            all = has_seg(v, n, s);
        free(v);
        if (all)
            return now_s() - t0;
        if (now_s() - t0 > max_s)
            fail_msg("the archiver did not archive the segments below %016" PRIX64 " of \"%s\" "
                     "within %.0f s", upto, dir, max_s);
        sleep_ms(50);
    }
}

struct vcollect {
    char msgs[8][1024];
    unsigned n;
};

static void vcollect_fn(void *ctx, const char *problem)
{
    struct vcollect *c = ctx;
    if (c->n < 8)
        snprintf(c->msgs[c->n], sizeof c->msgs[c->n], "%s", problem);
    c->n++;
    printf("    verify: %s\n", problem);
}

static void verify(repo *r, struct pitr_verify_result *res, struct vcollect *c)
{
    memset(c, 0, sizeof *c);
    must(pitr_verify(r, vcollect_fn, c, res), "verify");
    assert_int_equal(res->problems, c->n);
}

static bool any_msg(const struct vcollect *c, const char *a, const char *b)
{
    for (unsigned i = 0; i < c->n && i < 8; i++)
        if (strstr(c->msgs[i], a) && (!b || strstr(c->msgs[i], b)))
            return true;
    return false;
}

/* Restores o into a fresh directory, checks that nothing partial is left,
 * and returns the restored state (the directory is removed). */
static void restore_dig(repo *r, const struct pitr_restore_opts *o, struct tu_dig *d,
                        struct pitr_restore_result *out)
{
    char target[700], partial[720];
    new_dir(target, sizeof target, "restored");
    struct pitr_restore_result res;
    cairn_status st = pitr_restore(r, target, o, &res);
    if (st)
        fail_msg("restore (kind %d, backup %s) into %s: %s: %s", (int)o->kind,
                 o->backup ? o->backup : "-", target, cairn_status_name(st), cairn_last_error());
    pitr_plan_free(&res.plan);
    snprintf(partial, sizeof partial, "%s.partial", target);
    assert_false(exists(partial));
    dir_digest(target, d);
    tu_rm_rf(target);
    if (out)
        *out = res;
}

static void must_eq(const struct tu_dig *got, const struct tu_dig *want, const char *what)
{
    if (!tu_dig_eq(got, want))
        fail_msg("%s: the restored state differs from the expected one (seed %" PRIu64 ")", what,
                 g_seed);
}

static void blob_path(const char *repo_dir, const uint8_t sha[CODEC_SHA256_LEN], char *out,
                      size_t n, char hex[CODEC_SHA256_HEX])
{
    char name[128];
    repo_blob_name(sha, name, sizeof name);
    snprintf(out, n, "%s/%s", repo_dir, name);
    codec_hex(sha, hex);
}

/* The summaries' view of the archive: the last commit of the newest
 * archived segment that holds one. */
static uint64_t last_archived_commit(repo *r, uint64_t *txn)
{
    uint64_t *v = NULL;
    size_t n = 0;
    must(repo_wal_list(r, 1, &v, &n), "repo wal list");
    uint64_t lsn = 0;
    for (size_t i = n; i-- > 0 && !lsn;) {
        struct repo_seg_summary s;
        must(repo_seg_summary_get(r, 1, v[i], &s), "summary");
        if (s.commits) {
            lsn = s.last.lsn;
            *txn = s.last.txn;
        }
        repo_seg_summary_free(&s);
    }
    free(v);
    return lsn;
}

static cairn_options arch_opts(const char *repo_dir)
{
    cairn_options o = opts();
    o.archive_repo = repo_dir;
    return o;
}

/* ---- 1. continuous archiving ---------------------------------------------------------- */

static void test_continuous(void **state)
{
    (void)state;
    uint64_t rng = g_seed ^ 0x1111;
    char db[600], rp[600];
    new_dir(db, sizeof db, "db");
    new_dir(rp, sizeof rp, "repo");
    cairn_options o = arch_opts(rp);
    cairn_db *d = must_open_o(db, &o);
    create_colls(d);
    struct hist h = {0};
    for (int i = 0; i < 20; i++)
        commit_one(d, &h, &rng, &P_FILL);
    cairn_checkpoint_info ck;
    must(cairn_checkpoint(d, &ck), "checkpoint");
    cairn_backup_info bi;
    must(cairn_backup(d, rp, NULL, &bi), "backup");
    assert_int_equal(bi.generation, ck.generation);
    assert_int_equal(bi.redo_lsn, ck.redo_lsn);
    assert_string_equal(bi.parent, "");
    assert_int_equal(commits_before(&h, bi.redo_lsn), h.n);
    /* into the sixth segment, a few commits there */
    commit_until(d, &h, &rng, 5 * SEG, 4);
    uint64_t end = last_lsn(d);
    uint64_t cur = SEG_OF(end);
    assert_true(cur >= 5 * SEG);
    assert_true(h.lsn[h.n - 1] > cur); /* commits the archive cannot have */
    double t0 = now_s();
    must(cairn_close(d), "close");
    double close_s = now_s() - t0;

    /* exactly the segments below the one being written are archived */
    uint64_t *arch = NULL, *ds = NULL;
    size_t na = repo_segs(rp, NULL, &arch);
    size_t nd = db_segs(db, &ds);
    assert_int_equal(na, cur / SEG);
    for (size_t i = 0; i < na; i++)
        assert_int_equal(arch[i], i * SEG);
    for (size_t i = 0; i < nd; i++)
        if (ds[i] < cur)
            assert_true(has_seg(arch, na, ds[i]));
    assert_true(has_seg(ds, nd, cur));
    assert_false(has_seg(arch, na, cur));
    free(ds);

    repo *r = must_repo(rp);
    struct pitr_verify_result vr;
    struct vcollect vc;
    verify(r, &vr, &vc);
    assert_int_equal(vr.problems, 0);
    assert_int_equal(vr.gaps, 0);
    assert_int_equal(vr.segments, na);
    assert_int_equal(vr.backups, 1);

    /* the last archived commit, by the summaries and by the LSNs */
    uint64_t txn = 0;
    uint64_t lsn = last_archived_commit(r, &txn);
    size_t k = commits_before(&h, cur);
    assert_true(k > 0 && k < h.n);
    assert_int_equal(lsn, h.lsn[k - 1]);
    assert_int_equal(txn, h.txn[k - 1]);

    struct pitr_restore_opts ro = {.kind = PITR_TARGET_LATEST};
    struct pitr_restore_result res;
    struct tu_dig got = {0}, want = {0}, all = {0};
    restore_dig(r, &ro, &got, &res);
    assert_int_equal(res.last_commit_lsn, lsn);
    assert_int_equal(res.last_txn_id, txn);
    assert_string_equal(res.plan.base, bi.id);
    model_digest(&h, k, &want);
    must_eq(&got, &want, "restore --latest after continuous archiving");
    model_digest(&h, h.n, &all);
    assert_false(tu_dig_eq(&got, &all)); /* the unarchived commits are not there */
    printf("  %zu commits over %zu segments archived (close %.2f s); latest = commit %zu of %zu "
           "(txn %" PRIu64 "), %" PRIu64 " records replayed\n",
           h.n, na, close_s, k, h.n, txn, res.records);
    repo_close(r);
    free(arch);
    tu_dig_free(&got);
    tu_dig_free(&want);
    tu_dig_free(&all);
    hist_free(&h);
}

/* ---- 2. retention waits for the archive ------------------------------------------------ */

/* After a checkpoint: every segment DB/wal lacks is archived. Returns how
 * many are gone; *held counts those still in DB/wal, wholly below `limit`
 * (what the checkpoint's own rule would have removed) and not archived. */
static size_t check_removed_archived(const char *db, const char *rp, uint64_t limit, size_t *held)
{
    uint64_t *ds = NULL, *arch = NULL;
    size_t nd = db_segs(db, &ds); /* DB/wal first: the archive only grows */
    size_t na = repo_segs(rp, NULL, &arch);
    assert_true(nd > 0);
    size_t gone = 0;
    for (uint64_t s = 0; s < ds[nd - 1]; s += SEG) {
        if (has_seg(ds, nd, s)) {
            if (s + SEG <= limit && !has_seg(arch, na, s))
                (*held)++;
            continue;
        }
        gone++;
        if (!has_seg(arch, na, s))
            fail_msg("segment %016" PRIX64 " left %s/wal but is not in the archive %s", s, db, rp);
    }
    free(ds);
    free(arch);
    return gone;
}

static atomic_uint_fast64_t g_user_keep;
static atomic_uint g_user_calls;

/* Called on the checkpointing thread: no cmocka assertion here. */
static uint64_t user_retain(void *ctx)
{
    if (ctx == &g_user_keep)
        atomic_fetch_add(&g_user_calls, 1);
    return atomic_load(&g_user_keep);
}

/* The archiver publishes what it reached (the hook's answer) at the end
 * of its pass, a moment after the segments appear in the repository: so
 * a checkpoint (after one more commit) is retried, at most 10 s, until
 * DB/wal starts at `want` or later. After each: every segment gone from
 * DB/wal is archived, and none at or above keep_from is gone. Returns the
 * segments the checkpoints removed. */
static uint64_t ckpt_until_first(cairn_db *d, struct hist *h, uint64_t *rng, const char *db,
                                 const char *rp, uint64_t want, uint64_t keep_from,
                                 unsigned *tries)
{
    uint64_t removed = 0;
    double t0 = now_s();
    for (*tries = 1;; ++*tries) {
        commit_one(d, h, rng, &P_LIGHT);
        cairn_checkpoint_info ck;
        must(cairn_checkpoint(d, &ck), "checkpoint");
        removed += ck.wal_segments_removed;
        size_t held = 0;
        check_removed_archived(db, rp, 0, &held);
        uint64_t *ds = NULL;
        size_t nd = db_segs(db, &ds);
        uint64_t first = ds[0];
        free(ds);
        assert_true(nd > 0);
        if (first > keep_from)
            fail_msg("segment %016" PRIX64 " was removed although the wal_retain hook keeps "
                     "from %016" PRIX64, first - SEG, keep_from);
        if (first >= want)
            return removed;
        if (now_s() - t0 > 10)
            fail_msg("after 10 s of checkpoints %s/wal still starts at %016" PRIX64 ", not %016"
                     PRIX64, db, first, want);
        sleep_ms(100);
    }
}

static void test_retention(void **state)
{
    (void)state;
    uint64_t rng = g_seed ^ 0x2222;
    char db[600], rp[600], blocker[700];
    new_dir(db, sizeof db, "db");
    new_dir(rp, sizeof rp, "repo");
    /* the repository cannot take WAL: a file where its wal/ directory goes */
    assert_int_equal(mkdir(rp, 0755), 0);
    snprintf(blocker, sizeof blocker, "%s/wal", rp);
    must_write_file(blocker, "x", 1);
    unsigned warn0 = atomic_load(&g_arch_warn), again0 = atomic_load(&g_arch_again);
    cairn_options o = arch_opts(rp);
    cairn_db *d = must_open_o(db, &o);
    create_colls(d);
    struct hist h = {0};
    commit_until(d, &h, &rng, 3 * SEG, 2);
    cairn_checkpoint_info ck1, ck2, ck;
    must(cairn_checkpoint(d, &ck1), "checkpoint");
    commit_until(d, &h, &rng, 4 * SEG, 2);
    must(cairn_checkpoint(d, &ck2), "checkpoint");
    assert_true(ck1.redo_lsn >= 3 * SEG);
    assert_int_equal(ck2.wal_segments_removed, 0);
    size_t held = 0;
    assert_int_equal(check_removed_archived(db, rp, ck1.redo_lsn, &held), 0);
    assert_true(held >= 3); /* 0, 1, 2: below the previous redo, kept for the archive */
    for (double t0 = now_s(); atomic_load(&g_arch_warn) == warn0 && now_s() - t0 < 10;)
        sleep_ms(50);
    assert_true(atomic_load(&g_arch_warn) > warn0); /* the failure was logged */
    printf("  archive blocked: %zu segments held by the retention hook, checkpoint removed 0\n",
           held);

    /* writable again: the archiver catches up by itself (next tick) */
    assert_int_equal(unlink(blocker), 0);
    uint64_t cur = SEG_OF(last_lsn(d));
    double caught = wait_archived(rp, NULL, cur, 15);
    unsigned tries = 0;
    uint64_t removed = ckpt_until_first(d, &h, &rng, db, rp, 3 * SEG, UINT64_MAX, &tries);
    assert_true(removed >= 3);
    assert_true(atomic_load(&g_arch_again) > again0);
    printf("  unblocked: archived %016" PRIX64 " within %.2f s; %u checkpoint(s) removed %" PRIu64
           "\n", cur, caught, tries, removed);

    /* rounds of a segment of commits and a checkpoint at once: the archive
     * (one pass a second) is often behind */
    size_t gone = 0;
    must(cairn_checkpoint(d, &ck), "checkpoint");
    uint64_t prev = ck.redo_lsn;
    size_t held_sum = 0;
    for (int round = 0; round < 4; round++) {
        commit_until(d, &h, &rng, SEG_OF(last_lsn(d)) + SEG, 2);
        must(cairn_checkpoint(d, &ck), "checkpoint");
        size_t hr = 0;
        gone = check_removed_archived(db, rp, prev, &hr);
        held_sum += hr;
        prev = ck.redo_lsn;
    }
    printf("  4 rounds: %zu segments gone from DB/wal (all archived), %zu held back at a "
           "checkpoint\n", gone, held_sum);
    must(cairn_close(d), "close");
    /* the archived WAL restores nothing without a backup, but verifies */
    repo *r = must_repo(rp);
    struct pitr_verify_result vr;
    struct vcollect vc;
    verify(r, &vr, &vc);
    assert_int_equal(vr.problems, 0);
    repo_close(r);

    /* a caller's hook is chained: 0 keeps everything, although archived */
    char db2[600], rp2[600];
    new_dir(db2, sizeof db2, "db");
    new_dir(rp2, sizeof rp2, "repo");
    cairn_options o2 = arch_opts(rp2);
    atomic_store(&g_user_keep, 0);
    atomic_store(&g_user_calls, 0);
    o2.wal_retain = user_retain;
    o2.wal_retain_ctx = &g_user_keep;
    d = must_open_o(db2, &o2);
    create_colls(d);
    hist_free(&h);
    commit_until(d, &h, &rng, 3 * SEG, 2);
    must(cairn_checkpoint(d, &ck1), "checkpoint");
    commit_until(d, &h, &rng, 4 * SEG, 2);
    cur = SEG_OF(last_lsn(d));
    wait_archived(rp2, NULL, cur, 15);
    must(cairn_checkpoint(d, &ck2), "checkpoint");
    assert_int_equal(ck1.wal_segments_removed + ck2.wal_segments_removed, 0);
    uint64_t *ds = NULL;
    size_t nd = db_segs(db2, &ds);
    assert_true(nd >= 5 && ds[0] == 0);
    free(ds);
    assert_true(atomic_load(&g_user_calls) >= 2);
    /* keep from segment 2 on: 0 and 1 go (archived, below both limits),
     * never 2 */
    atomic_store(&g_user_keep, 2 * SEG + 4096);
    removed = ckpt_until_first(d, &h, &rng, db2, rp2, 2 * SEG, 2 * SEG, &tries);
    assert_int_equal(removed, 2);
    nd = db_segs(db2, &ds);
    assert_int_equal(ds[0], 2 * SEG);
    free(ds);
    /* no constraint of its own: the archive's and the checkpoint's hold */
    atomic_store(&g_user_keep, UINT64_MAX);
    removed = ckpt_until_first(d, &h, &rng, db2, rp2, 4 * SEG, UINT64_MAX, &tries);
    must(cairn_close(d), "close");
    printf("  user hook 0: nothing removed after %u calls; then segments 0, 1; then %" PRIu64
           " more\n", atomic_load(&g_user_calls), removed);
    hist_free(&h);
}

/* ---- 3. archive timeout ------------------------------------------------------------------ */

static void test_timeout(void **state)
{
    (void)state;
    uint64_t rng = g_seed ^ 0x3333;
    char db[2][600], rp[2][600];
    cairn_db *d[2];
    struct hist h[2] = {{0}};
    char bid[2][64];
    for (int i = 0; i < 2; i++) {
        new_dir(db[i], sizeof db[i], "db");
        new_dir(rp[i], sizeof rp[i], "repo");
        cairn_options o = arch_opts(rp[i]);
        o.archive_timeout_s = i == 0 ? 1 : 0;
        d[i] = must_open_o(db[i], &o);
        create_colls(d[i]);
        for (int k = 0; k < 5; k++)
            commit_one(d[i], &h[i], &rng, &P_LIGHT);
        must(cairn_checkpoint(d[i], NULL), "checkpoint");
        cairn_backup_info bi;
        must(cairn_backup(d[i], rp[i], NULL, &bi), "backup");
        snprintf(bid[i], sizeof bid[i], "%s", bi.id);
    }
    /* one commit each, then quiet */
    for (int i = 0; i < 2; i++)
        commit_one(d[i], &h[i], &rng, &P_LIGHT);
    uint64_t xs[2] = {SEG_OF(h[0].lsn[h[0].n - 1]), SEG_OF(h[1].lsn[h[1].n - 1])};
    double t0 = now_s(), took = -1;
    while (now_s() - t0 < 10) {
        if (seg_archived(rp[0], NULL, xs[0])) {
            took = now_s() - t0;
            break;
        }
        sleep_ms(100);
    }
    if (took < 0)
        fail_msg("archive_timeout_s 1: the segment holding the last commit was not archived "
                 "within 10 s");
    while (now_s() - t0 < 3)
        sleep_ms(100);
    assert_true(durable_lsn(d[0]) >= xs[0] + SEG); /* the archiver switched it */
    assert_false(seg_archived(rp[1], NULL, xs[1]));
    assert_true(durable_lsn(d[1]) < xs[1] + SEG);
    for (int i = 0; i < 2; i++)
        must(cairn_close(d[i]), "close");
    /* closing archives complete segments only: the one being written waits */
    assert_false(seg_archived(rp[1], NULL, xs[1]));
    printf("  timeout 1 s: the last commit's segment archived after %.2f s; without a timeout "
           "not after %.1f s nor after close\n", took, now_s() - t0);

    struct tu_dig got = {0}, want = {0};
    struct pitr_restore_result res;
    struct pitr_restore_opts ro = {.kind = PITR_TARGET_LATEST};
    repo *r = must_repo(rp[0]);
    restore_dig(r, &ro, &got, &res);
    repo_close(r);
    model_digest(&h[0], h[0].n, &want);
    must_eq(&got, &want, "restore --latest after the archive timeout");
    assert_int_equal(res.last_commit_lsn, h[0].lsn[h[0].n - 1]);

    /* without the timeout, --latest is the backup's state ... */
    r = must_repo(rp[1]);
    restore_dig(r, &ro, &got, &res);
    model_digest(&h[1], h[1].n - 1, &want);
    must_eq(&got, &want, "restore --latest, last segment not archived");
    assert_string_equal(res.plan.base, bid[1]);
    repo_close(r);
    /* ... until a switch closes the segment (archived by the close) */
    cairn_options o = arch_opts(rp[1]);
    cairn_db *d1 = must_open_o(db[1], &o);
    uint64_t at = 0;
    must(cairn_wal_switch(d1, &at), "wal switch");
    assert_true(at >= xs[1] + SEG);
    must(cairn_close(d1), "close");
    assert_true(seg_archived(rp[1], NULL, xs[1]));
    r = must_repo(rp[1]);
    restore_dig(r, &ro, &got, &res);
    repo_close(r);
    model_digest(&h[1], h[1].n, &want);
    must_eq(&got, &want, "restore --latest after cairn_wal_switch");
    tu_dig_free(&got);
    tu_dig_free(&want);
    hist_free(&h[0]);
    hist_free(&h[1]);
}

/* A restore --latest of repository rp holds every commit of h, up to its
 * last one. */
static void latest_is_model(const char *rp, const struct hist *h, const char *what)
{
    struct tu_dig got = {0}, want = {0};
    struct pitr_restore_result res;
    struct pitr_restore_opts ro = {.kind = PITR_TARGET_LATEST};
    repo *r = must_repo(rp);
    restore_dig(r, &ro, &got, &res);
    repo_close(r);
    model_digest(h, h->n, &want);
    must_eq(&got, &want, what);
    assert_int_equal(res.last_commit_lsn, h->lsn[h->n - 1]);
    tu_dig_free(&got);
    tu_dig_free(&want);
}

/* A failed assertion leaves the test early: the fault plan must not
 * outlive it. */
static int fault_off(void **state)
{
    (void)state;
    cio_fault_set(NULL);
    return 0;
}

/* The timeout's switch failing: the writer's next segment cannot be made
 * (ENOSPC on every file creation, through the fault seam) once the one it
 * had made ahead is used. The failure is logged once however many passes
 * try again; with space back the segment is closed and archived, and
 * --latest restores the last commit. */
static void test_timeout_switch_fails(void **state)
{
    (void)state;
    uint64_t rng = g_seed ^ 0x3434;
    char db[600], rp[600];
    new_dir(db, sizeof db, "db");
    new_dir(rp, sizeof rp, "repo");
    cairn_options o = arch_opts(rp);
    o.archive_timeout_s = 1;
    struct hist h = {0};
    cairn_db *d = must_open_o(db, &o);
    create_colls(d);
    commit_one(d, &h, &rng, &P_LIGHT);
    must(cairn_checkpoint(d, NULL), "checkpoint");
    must(cairn_backup(d, rp, NULL, NULL), "backup");
    /* the writer makes its next segment ahead: wait for that file */
    uint64_t *v = NULL;
    size_t nsegs = 0;
    double t0 = now_s();
    while ((nsegs = db_segs(db, &v)) < 2 && now_s() - t0 < 10) {
        free(v);
        v = NULL;
        sleep_ms(20);
    }
    free(v);
    assert_true(nsegs >= 2);
    unsigned w0 = atomic_load(&g_switch_warn), a0 = atomic_load(&g_switch_again);
    struct cio_fault_plan fp = {.ops = CIO_FOP_META, .nth = 1, .kind = CIO_FAULT_ENOSPC,
                                .persistent = 1};
    cio_fault_set(&fp);
    /* the first timeout switch takes the segment made ahead ... */
    commit_one(d, &h, &rng, &P_LIGHT);
    uint64_t x = SEG_OF(h.lsn[h.n - 1]);
    for (t0 = now_s(); durable_lsn(d) < x + SEG && now_s() - t0 < 10;)
        sleep_ms(50);
    assert_true(durable_lsn(d) >= x + SEG);
    /* ... the second finds none, and no file can be made */
    commit_one(d, &h, &rng, &P_LIGHT);
    uint64_t y = SEG_OF(h.lsn[h.n - 1]);
    assert_true(y == x + SEG);
    for (t0 = now_s(); atomic_load(&g_switch_warn) == w0 && now_s() - t0 < 10;)
        sleep_ms(50);
    assert_int_equal(atomic_load(&g_switch_warn), w0 + 1);
    sleep_ms(3000); /* three more passes: no more messages */
    assert_int_equal(atomic_load(&g_switch_warn), w0 + 1);
    assert_int_equal(atomic_load(&g_switch_again), a0);
    assert_true(durable_lsn(d) < y + SEG);
    assert_false(seg_archived(rp, NULL, y));
    cio_fault_set(NULL);
    for (t0 = now_s(); !seg_archived(rp, NULL, y) && now_s() - t0 < 10;)
        sleep_ms(50);
    assert_true(seg_archived(rp, NULL, y));
    assert_true(atomic_load(&g_switch_again) > a0);
    must(cairn_close(d), "close");
    latest_is_model(rp, &h, "restore --latest after the failed switches");
    hist_free(&h);
}

/* repo.json of repository rp records these levels. */
static void repo_json_levels_are(const char *rp, int level, int wal_level)
{
    char path[700], want_l[32], want_w[32];
    snprintf(path, sizeof path, "%s/repo.json", rp);
    char *json = NULL;
    size_t len = 0;
    must(cfs_read_file(path, &json, &len), "read repo.json");
    snprintf(want_l, sizeof want_l, "\"level\": %d", level);
    snprintf(want_w, sizeof want_w, "\"wal_level\": %d", wal_level);
    if (!strstr(json, want_l) || !strstr(json, want_w))
        fail_msg("%s has not %s and %s: %s", path, want_l, want_w, json);
    free(json);
}

/* cairn_options' archive levels: a repository the archiver creates records
 * them and its segments are written at them (a restore reads them back);
 * out of range, cairn_open fails naming the option before anything is
 * created. */
static void test_archive_levels(void **state)
{
    (void)state;
    uint64_t rng = g_seed ^ 0x3535;
    char db[600], rp[600];
    new_dir(db, sizeof db, "db");
    new_dir(rp, sizeof rp, "repo");
    cairn_options o = arch_opts(rp);
    o.archive_wal_level = 42;
    cairn_db *d = NULL;
    assert_int_equal(cairn_open(db, &o, &d), CAIRN_EINVAL);
    assert_null(d);
    assert_string_equal(cairn_last_error(), "cairn_options.archive_wal_level 42 is out of range "
                                            "(-7..-1 or 1..19)");
    assert_false(exists(db));
    assert_false(exists(rp));
    o.archive_wal_level = 0;
    o.archive_level = 20;
    assert_int_equal(cairn_open(db, &o, &d), CAIRN_EINVAL);
    assert_string_equal(cairn_last_error(),
                        "cairn_options.archive_level 20 is out of range (1..19)");
    assert_false(exists(db));
    assert_false(exists(rp));

    o.archive_wal_level = -5;
    o.archive_level = 7;
    struct hist h = {0};
    d = must_open_o(db, &o);
    create_colls(d);
    for (int k = 0; k < 3; k++)
        commit_one(d, &h, &rng, &P_LIGHT);
    must(cairn_checkpoint(d, NULL), "checkpoint");
    must(cairn_backup(d, rp, NULL, NULL), "backup");
    commit_one(d, &h, &rng, &P_LIGHT);
    uint64_t x = SEG_OF(h.lsn[h.n - 1]);
    must(cairn_wal_switch(d, NULL), "wal switch");
    must(cairn_close(d), "close");
    assert_true(seg_archived(rp, NULL, x));
    repo_json_levels_are(rp, 7, -5);
    latest_is_model(rp, &h, "restore --latest from segments archived at level -5");
    hist_free(&h);
}

/* cairn_backup_options' levels: a repository the backup creates records
 * both (its WAL level is what archivers then use); out of range, the
 * call fails naming the field before anything is created; given to an
 * existing repository, repo.json keeps its own. */
static void test_backup_levels(void **state)
{
    (void)state;
    uint64_t rng = g_seed ^ 0x3636;
    char db[600], rp[600];
    new_dir(db, sizeof db, "db");
    new_dir(rp, sizeof rp, "repo");
    struct hist h = {0};
    cairn_db *d = must_open(db);
    create_colls(d);
    commit_one(d, &h, &rng, &P_LIGHT);
    must(cairn_checkpoint(d, NULL), "checkpoint");
    cairn_backup_options bo = {.wal_level = 20};
    assert_int_equal(cairn_backup(d, rp, &bo, NULL), CAIRN_EINVAL);
    assert_string_equal(cairn_last_error(), "cairn_backup_options.wal_level 20 is out of range "
                                            "(-7..-1 or 1..19)");
    assert_false(exists(rp));
    bo = (cairn_backup_options){.level = -1};
    assert_int_equal(cairn_backup(d, rp, &bo, NULL), CAIRN_EINVAL);
    assert_string_equal(cairn_last_error(),
                        "cairn_backup_options.level -1 is out of range (1..19)");
    assert_false(exists(rp));
    bo = (cairn_backup_options){.level = 6, .wal_level = -4};
    must(cairn_backup(d, rp, &bo, NULL), "backup creating the repository");
    repo_json_levels_are(rp, 6, -4);
    commit_one(d, &h, &rng, &P_LIGHT);
    must(cairn_checkpoint(d, NULL), "checkpoint");
    bo = (cairn_backup_options){.level = 2, .wal_level = 3, .incremental = 1};
    must(cairn_backup(d, rp, &bo, NULL), "incremental backup, other levels");
    repo_json_levels_are(rp, 6, -4);
    must(cairn_close(d), "close");
    hist_free(&h);
}

/* ---- 4. online backup while a writer commits --------------------------------------------- */

struct writer {
    cairn_db *db;
    pthread_t thr;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop, pause, paused;
    atomic_uint_fast64_t commits;
    uint64_t rng;
    cairn_status err;
    char msg[512];
    double last, max_gap; /* between commits, while `timing` */
    atomic_bool timing;
};

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    for (;;) {
        pthread_mutex_lock(&w->mu);
        while (w->pause && !w->stop) {
            w->paused = true;
            pthread_cond_broadcast(&w->cv);
            pthread_cond_wait(&w->cv, &w->mu);
        }
        w->paused = false;
        bool stop = w->stop;
        pthread_mutex_unlock(&w->mu);
        if (stop)
            break;
        struct op ops[8];
        unsigned n = gen_txn(&w->rng, &P_LIGHT, ops);
        cairn_status st = run_txn(w->db, ops, n, NULL);
        if (st) {
            w->err = st;
            snprintf(w->msg, sizeof w->msg, "%s", cairn_last_error());
            break;
        }
        atomic_fetch_add(&w->commits, 1);
        double t = now_s();
        if (atomic_load(&w->timing) && w->last > 0 && t - w->last > w->max_gap)
            w->max_gap = t - w->last;
        w->last = t;
    }
    return NULL;
}

static void writer_pause(struct writer *w, bool pause)
{
    pthread_mutex_lock(&w->mu);
    w->pause = pause;
    pthread_cond_broadcast(&w->cv);
    while (pause && !w->paused && w->err == CAIRN_OK)
        pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
}

/* Pauses the writer, checkpoints, records the state, resumes. */
static void checkpoint_state(struct writer *w, cairn_checkpoint_info *ck, struct tu_dig *d)
{
    writer_pause(w, true);
    must(cairn_checkpoint(w->db, ck), "checkpoint");
    db_digest(w->db, d);
    writer_pause(w, false);
}

static void test_online(void **state)
{
    (void)state;
    char db[600], rp[600];
    new_dir(db, sizeof db, "db");
    new_dir(rp, sizeof rp, "repo");
    cairn_db *d = must_open(db);
    create_colls(d);
    /* a base the writer barely touches: docs 1000.., 600-byte payloads */
    enum { BASE = 6000, BATCH = 250 };
    static float vec[BATCH][48];
    static char *pay[BATCH];
    static cairn_point pts[BATCH];
    for (uint64_t id = 1000; id < 1000 + BASE; id += BATCH) {
        for (unsigned i = 0; i < BATCH; i++) {
            uint32_t vs = (uint32_t)(id + i) * 2654435761u;
            tu_gen_vector(vs, vec[i], 48);
            pay[i] = tu_gen_payload(vs, 600, &pts[i].payload_len);
            assert_non_null(pay[i]);
            pts[i].id = id + i;
            pts[i].vector = vec[i];
            pts[i].payload = pay[i];
        }
        must(cairn_upsert_batch(d, "docs", pts, BATCH, 48, NULL), "load");
        for (unsigned i = 0; i < BATCH; i++)
            free(pay[i]);
    }
    struct writer w = {.db = d, .rng = g_seed ^ 0x4444};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    assert_int_equal(pthread_create(&w.thr, NULL, writer_main, &w), 0);
    while (atomic_load(&w.commits) < 5 && w.err == CAIRN_OK)
        sleep_ms(5);

    struct tu_dig st_full = {0}, st_incr = {0}, got = {0};
    cairn_checkpoint_info ck1, ck2;
    cairn_backup_info full, incr;
    checkpoint_state(&w, &ck1, &st_full);
    atomic_store(&w.timing, true);
    uint64_t c0 = atomic_load(&w.commits);
    double t0 = now_s();
    must(cairn_backup(d, rp, NULL, &full), "full backup");
    double full_s = now_s() - t0;
    uint64_t during_full = atomic_load(&w.commits) - c0;
    for (uint64_t c = atomic_load(&w.commits); atomic_load(&w.commits) < c + 20 && !w.err;)
        sleep_ms(5);
    checkpoint_state(&w, &ck2, &st_incr);
    c0 = atomic_load(&w.commits);
    t0 = now_s();
    cairn_backup_options bo = {.incremental = 1};
    must(cairn_backup(d, rp, &bo, &incr), "incremental backup");
    double incr_s = now_s() - t0;
    uint64_t during_incr = atomic_load(&w.commits) - c0;
    atomic_store(&w.timing, false);
    pthread_mutex_lock(&w.mu);
    w.stop = true;
    pthread_cond_broadcast(&w.cv);
    pthread_mutex_unlock(&w.mu);
    pthread_join(w.thr, NULL);
    if (w.err)
        fail_msg("writer: %s: %s", cairn_status_name(w.err), w.msg);
    uint64_t total = atomic_load(&w.commits);
    must(cairn_close(d), "close");
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);

    printf("  full: %" PRIu64 " pages in %.3f s, %" PRIu64 " commits meanwhile; incremental: %"
           PRIu64 " of %" PRIu64 " pages new in %.3f s, %" PRIu64 " commits meanwhile; longest "
           "gap between commits %.3f s; %" PRIu64 " commits in all\n",
           full.pages, full_s, during_full, incr.pages_new, incr.pages, incr_s, during_incr,
           w.max_gap, total);
    assert_true(during_full > 0);
    assert_true(during_incr > 0);
    assert_int_equal(full.generation, ck1.generation);
    assert_int_equal(full.redo_lsn, ck1.redo_lsn);
    assert_int_equal(incr.generation, ck2.generation);
    assert_string_equal(incr.parent, full.id);
    assert_int_equal(full.pages_new, full.pages);
    assert_true(incr.pages_new * 5 < incr.pages);
    assert_false(tu_dig_eq(&st_full, &st_incr));

    repo *r = must_repo(rp);
    struct pitr_restore_opts ro = {.kind = PITR_TARGET_BACKUP, .backup = full.id};
    restore_dig(r, &ro, &got, NULL);
    must_eq(&got, &st_full, "restore of the full backup taken under writes");
    ro.backup = incr.id;
    restore_dig(r, &ro, &got, NULL);
    must_eq(&got, &st_incr, "restore of the incremental backup taken under writes");
    repo_close(r);
    tu_dig_free(&st_full);
    tu_dig_free(&st_incr);
    tu_dig_free(&got);
}

/* ---- 5. a backup alone restores ----------------------------------------------------------- */

static void test_backup_alone(void **state)
{
    (void)state;
    uint64_t rng = g_seed ^ 0x5555;
    char db[600], rp[600];
    new_dir(db, sizeof db, "db");
    new_dir(rp, sizeof rp, "repo");
    cairn_db *d = must_open(db);
    create_colls(d);
    struct hist h = {0};
    commit_until(d, &h, &rng, SEG + SEG / 2, 0); /* the redo LSN in segment 1 */
    cairn_checkpoint_info ck;
    must(cairn_checkpoint(d, &ck), "checkpoint");
    assert_true(ck.redo_lsn > SEG);
    struct tu_dig at_ck = {0}, got = {0};
    db_digest(d, &at_ck);
    cairn_backup_info b1, b2;
    must(cairn_backup(d, rp, NULL, &b1), "backup");
    for (int i = 0; i < 10; i++) /* never archived */
        commit_one(d, &h, &rng, &P_LIGHT);
    must(cairn_close(d), "close");
    uint64_t *none = NULL;
    assert_int_equal(repo_segs(rp, NULL, &none), 0);
    free(none);

    repo *r = must_repo(rp);
    struct pitr_restore_result res;
    struct pitr_restore_opts ro = {.kind = PITR_TARGET_BACKUP, .backup = b1.id};
    restore_dig(r, &ro, &got, &res);
    must_eq(&got, &at_ck, "restore --backup with no archived WAL");
    ro = (struct pitr_restore_opts){.kind = PITR_TARGET_LATEST};
    restore_dig(r, &ro, &got, &res);
    must_eq(&got, &at_ck, "restore --latest with no archived WAL");
    assert_string_equal(res.plan.base, b1.id);
    assert_int_equal(res.txns_applied, 0);
    repo_close(r);

    /* a second full backup, and the first expired: the kept one still
     * restores by itself (its WAL head is one of its blobs) */
    d = must_open(db);
    commit_one(d, &h, &rng, &P_LIGHT);
    must(cairn_checkpoint(d, &ck), "checkpoint");
    struct tu_dig at_ck2 = {0};
    db_digest(d, &at_ck2);
    must(cairn_backup(d, rp, NULL, &b2), "backup");
    must(cairn_close(d), "close");
    r = must_repo(rp);
    struct pitr_expire_opts eo = {.keep_full = 1};
    struct pitr_expire_result er;
    must(pitr_expire(r, &eo, &er), "expire");
    assert_int_equal(er.backups_deleted, 1);
    struct pitr_verify_result vr;
    struct vcollect vc;
    verify(r, &vr, &vc);
    assert_int_equal(vr.problems, 0);
    ro = (struct pitr_restore_opts){.kind = PITR_TARGET_BACKUP, .backup = b2.id};
    restore_dig(r, &ro, &got, &res);
    must_eq(&got, &at_ck2, "restore --backup of the kept backup after expire");
    ro = (struct pitr_restore_opts){.kind = PITR_TARGET_LATEST};
    restore_dig(r, &ro, &got, &res);
    must_eq(&got, &at_ck2, "restore --latest of the kept backup after expire");
    repo_close(r);
    printf("  backup %s alone (redo %016" PRIX64 "): --backup and --latest restore its state; "
           "so does %s after expire\n", b1.id, b1.redo_lsn, b2.id);
    tu_dig_free(&at_ck);
    tu_dig_free(&at_ck2);
    tu_dig_free(&got);
    hist_free(&h);
}

/* ---- 6. verify and expire ------------------------------------------------------------------ */

struct blobs {
    uint8_t (*v)[CODEC_SHA256_LEN];
    size_t n;
};

/* Every blob a manifest names: meta, superblock, WAL head, packs. */
static void manifest_blobs(repo *r, const char *id, struct blobs *b)
{
    struct pitr_manifest m;
    must(pitr_manifest_load(r, id, &m), "manifest");
    b->v = realloc(b->v, (b->n + m.npacks + 3) * CODEC_SHA256_LEN);
    assert_non_null(b->v);
    memcpy(b->v[b->n++], m.meta_sha, CODEC_SHA256_LEN);
    memcpy(b->v[b->n++], m.super_sha, CODEC_SHA256_LEN);
    if (m.have_wal_head)
        memcpy(b->v[b->n++], m.wal_head_sha, CODEC_SHA256_LEN);
    for (size_t i = 0; i < m.npacks; i++)
        memcpy(b->v[b->n++], m.packs[i], CODEC_SHA256_LEN);
    pitr_manifest_free(&m);
}

static bool blobs_has(const struct blobs *b, const uint8_t *sha)
{
    for (size_t i = 0; i < b->n; i++)
        if (!memcmp(b->v[i], sha, CODEC_SHA256_LEN))
            return true;
    return false;
}

struct expire_job {
    repo *r;
    pthread_t thr;
    atomic_bool done;
    cairn_status st;
    struct pitr_expire_result res;
};

static void *expire_main(void *arg)
{
    struct expire_job *j = arg;
    struct pitr_expire_opts eo = {.keep_full = 1};
    j->st = pitr_expire(j->r, &eo, &j->res);
    atomic_store(&j->done, true);
    return NULL;
}

static void test_verify_expire(void **state)
{
    (void)state;
    uint64_t rng = g_seed ^ 0x6666;
    char db[600], rp[600];
    new_dir(db, sizeof db, "db");
    new_dir(rp, sizeof rp, "repo");
    cairn_options o = arch_opts(rp);
    cairn_db *d = must_open_o(db, &o);
    create_colls(d);
    struct hist h = {0};
    cairn_backup_info f1, i1, f2;
    commit_until(d, &h, &rng, SEG / 2, 0);
    must(cairn_checkpoint(d, NULL), "checkpoint");
    must(cairn_backup(d, rp, NULL, &f1), "full backup");
    commit_until(d, &h, &rng, SEG + SEG / 2, 0);
    must(cairn_checkpoint(d, NULL), "checkpoint");
    cairn_backup_options bo = {.incremental = 1};
    must(cairn_backup(d, rp, &bo, &i1), "incremental backup");
    assert_string_equal(i1.parent, f1.id);
    commit_until(d, &h, &rng, 3 * SEG + SEG / 4, 0);
    must(cairn_checkpoint(d, NULL), "checkpoint");
    size_t k_f2 = h.n;
    must(cairn_backup(d, rp, NULL, &f2), "second full backup");
    assert_string_equal(f2.parent, "");
    assert_true(f2.redo_lsn > 3 * SEG);
    commit_until(d, &h, &rng, 4 * SEG, 3);
    uint64_t cur = SEG_OF(last_lsn(d));
    must(cairn_close(d), "close");
    assert_int_equal(cur, 4 * SEG);

    repo *r = must_repo(rp);
    struct pitr_verify_result vr;
    struct vcollect vc;
    verify(r, &vr, &vc);
    assert_int_equal(vr.problems, 0);
    assert_int_equal(vr.backups, 3);
    assert_int_equal(vr.segments, 4);
    struct blobs old = {0}, kept = {0};
    manifest_blobs(r, f1.id, &old);
    manifest_blobs(r, i1.id, &old);
    manifest_blobs(r, f2.id, &kept);
    repo_close(r);

    /* a flipped byte in a pack of f2 and in the WAL head of f1: a problem
     * naming each */
    char cp[600], path[1400], hex1[CODEC_SHA256_HEX], hex2[CODEC_SHA256_HEX];
    new_dir(cp, sizeof cp, "repo-damaged");
    must_link_tree(rp, cp);
    struct pitr_manifest m1, m2;
    r = must_repo(cp);
    must(pitr_manifest_load(r, f2.id, &m2), "manifest");
    must(pitr_manifest_load(r, f1.id, &m1), "manifest");
    assert_true(m2.npacks > 0 && m1.have_wal_head);
    blob_path(cp, m2.packs[m2.npacks - 1], path, sizeof path, hex1);
    must_flip_byte(path, OBJ_HDR + 7);
    blob_path(cp, m1.wal_head_sha, path, sizeof path, hex2);
    must_flip_byte(path, OBJ_HDR + 7);
    pitr_manifest_free(&m1);
    pitr_manifest_free(&m2);
    verify(r, &vr, &vc);
    assert_int_equal(vr.problems, 2);
    assert_true(any_msg(&vc, hex1, NULL));
    assert_true(any_msg(&vc, hex2, NULL));
    repo_close(r);
    tu_rm_rf(cp);

    /* a segment removed from the middle: a gap */
    new_dir(cp, sizeof cp, "repo-gap");
    must_link_tree(rp, cp);
    char name[128];
    for (int s = 0; s < 2; s++) {
        repo_wal_obj_name(1, 2 * SEG, s, name, sizeof name);
        snprintf(path, sizeof path, "%s/%s", cp, name);
        assert_int_equal(unlink(path), 0);
    }
    r = must_repo(cp);
    verify(r, &vr, &vc);
    assert_int_equal(vr.gaps, 1);
    assert_int_equal(vr.problems, 1);
    char range[64];
    snprintf(range, sizeof range, "%016" PRIX64 " to %016" PRIX64, 2 * SEG, 3 * SEG);
    assert_true(any_msg(&vc, "gap", range));
    repo_close(r);
    tu_rm_rf(cp);

    /* expire failing at each of its deletions and directory fsyncs (the
     * fault seam, EIO): the error names the file, what is left verifies
     * clean (no kept backup names a missing blob or segment, no gap), and
     * the next expire ends with exactly the files of an expire never
     * interrupted */
    {
        struct pitr_expire_opts fo = {.keep_full = 1};
        struct pitr_expire_result fr;
        char fx[640];
        snprintf(fx, sizeof fx, "%s-fx", rp);
        must_link_tree(rp, fx);
        r = must_repo(fx);
        must(pitr_expire(r, &fo, &fr), "expire (the reference)");
        repo_close(r);
        struct tu_tree ref = {0}, got = {0};
        assert_int_equal(tu_tree_take(&ref, fx), 0);
        tu_rm_rf(fx);
        uint64_t nth = 1;
        for (;; nth++) {
            must_link_tree(rp, fx);
            r = must_repo(fx);
            struct cio_fault_plan fp = {.ops = CIO_FOP_META | CIO_FOP_SYNC, .nth = nth,
                                        .kind = CIO_FAULT_EIO};
            cio_fault_set(&fp);
            cairn_status fst = pitr_expire(r, &fo, &fr);
            uint64_t fired = cio_fault_fired();
            cio_fault_set(NULL);
            if (!fired) {
                must(fst, "expire past the last fault point");
                repo_close(r);
                tu_rm_rf(fx);
                break;
            }
            if (fst != CAIRN_EIO)
                fail_msg("expire, fault at operation %" PRIu64 ": %s: %s", nth,
                         cairn_status_name(fst), cairn_last_error());
            if (!strstr(cairn_last_error(), fx))
                fail_msg("expire, fault at operation %" PRIu64 ": the message names no file "
                         "of the repository: %s", nth, cairn_last_error());
            verify(r, &vr, &vc);
            if (vr.problems || vr.gaps)
                fail_msg("expire, fault at operation %" PRIu64 ": %" PRIu64 " problem(s), %"
                         PRIu64 " gap(s) left (first: %s)", nth, vr.problems, vr.gaps,
                         vc.n ? vc.msgs[0] : "-");
            must(pitr_expire(r, &fo, &fr), "expire after the failure");
            repo_close(r);
            assert_int_equal(tu_tree_take(&got, fx), 0);
            char fwhy[512];
            if (tu_tree_diff(&ref, &got, fwhy, sizeof fwhy) != 0)
                fail_msg("expire, fault at operation %" PRIu64 ", then again: %s", nth, fwhy);
            tu_tree_free(&got);
            tu_rm_rf(fx);
        }
        tu_tree_free(&ref);
        assert_true(nth > 10);
        print_message("expire: a failure at each of its %" PRIu64 " deletions and fsyncs left "
                      "a clean repository, and the next expire finished it\n", nth - 1);
    }

    /* expire waits while the repository's lock is held shared (as a
     * running backup holds it), and then runs */
    {
        char fx[640];
        snprintf(fx, sizeof fx, "%s-lock", rp);
        must_link_tree(rp, fx);
        struct expire_job ej = {.r = must_repo(fx)};
        int fd = -1;
        must(repo_lock(ej.r, false, &fd), "lock shared");
        assert_int_equal(pthread_create(&ej.thr, NULL, expire_main, &ej), 0);
        struct timespec ts = {0, 300 * 1000 * 1000};
        nanosleep(&ts, NULL);
        assert_false(atomic_load(&ej.done));
        repo_unlock(fd);
        assert_int_equal(pthread_join(ej.thr, NULL), 0);
        assert_true(atomic_load(&ej.done));
        must(ej.st, "expire after the lock was released");
        assert_int_equal(ej.res.backups_deleted, 2);
        repo_close(ej.r);
        tu_rm_rf(fx);
    }

    /* expire --keep-full 1: a dry run first (no file changes) */
    r = must_repo(rp);
    struct tu_tree t0 = {0}, t1 = {0};
    assert_int_equal(tu_tree_take(&t0, rp), 0);
    struct pitr_expire_opts eo = {.keep_full = 1, .dry_run = true};
    struct pitr_expire_result dry, er;
    must(pitr_expire(r, &eo, &dry), "expire --dry-run");
    assert_int_equal(tu_tree_take(&t1, rp), 0);
    char why[512];
    if (tu_tree_diff(&t0, &t1, why, sizeof why) != 0)
        fail_msg("expire --dry-run changed the repository: %s", why);
    tu_tree_free(&t0);
    tu_tree_free(&t1);
    eo.dry_run = false;
    must(pitr_expire(r, &eo, &er), "expire");
    assert_int_equal(er.backups_kept, 1);
    assert_int_equal(er.backups_deleted, 2);
    assert_int_equal(dry.backups_deleted, er.backups_deleted);
    assert_int_equal(dry.blobs_deleted, er.blobs_deleted);
    assert_int_equal(dry.segments_deleted, er.segments_deleted);
    assert_int_equal(dry.bytes_freed, er.bytes_freed);
    char **ids = NULL;
    size_t nids = 0;
    must(repo_backup_ids(r, &ids, &nids), "backup ids");
    assert_int_equal(nids, 1);
    assert_string_equal(ids[0], f2.id);
    repo_strv_free(ids, nids);
    /* the blobs only the expired backups used are gone; the kept one's stay */
    size_t unshared = 0;
    for (size_t i = 0; i < old.n; i++) {
        char hex[CODEC_SHA256_HEX];
        blob_path(rp, old.v[i], path, sizeof path, hex);
        bool shared = blobs_has(&kept, old.v[i]);
        bool dup = false;
        for (size_t j = 0; j < i; j++)
            dup |= !memcmp(old.v[j], old.v[i], CODEC_SHA256_LEN);
        unshared += !shared && !dup;
        if (exists(path) != shared)
            fail_msg("blob %s of an expired backup: %s after expire", hex,
                     shared ? "gone although the kept backup uses it" : "still there");
    }
    for (size_t i = 0; i < kept.n; i++) {
        char hex[CODEC_SHA256_HEX];
        blob_path(rp, kept.v[i], path, sizeof path, hex);
        assert_true(exists(path));
    }
    assert_true(unshared > 0);
    assert_int_equal(er.blobs_deleted, unshared);
    /* the WAL before the kept full's redo LSN goes, the rest stays */
    uint64_t *arch = NULL;
    size_t na = repo_segs(rp, NULL, &arch);
    uint64_t first = SEG_OF(f2.redo_lsn - 1);
    assert_int_equal(er.segments_deleted, first / SEG);
    assert_int_equal(na, (cur - first) / SEG);
    for (size_t i = 0; i < na; i++)
        assert_int_equal(arch[i], first + i * SEG);
    free(arch);
    verify(r, &vr, &vc);
    assert_int_equal(vr.problems, 0);
    assert_int_equal(vr.gaps, 0);

    /* the kept full restores, to its own state and to the latest */
    struct tu_dig got = {0}, want = {0};
    struct pitr_restore_result res;
    struct pitr_restore_opts ro = {.kind = PITR_TARGET_BACKUP, .backup = f2.id};
    restore_dig(r, &ro, &got, &res);
    model_digest(&h, k_f2, &want);
    must_eq(&got, &want, "restore of the kept full after expire");
    ro = (struct pitr_restore_opts){.kind = PITR_TARGET_LATEST};
    restore_dig(r, &ro, &got, &res);
    model_digest(&h, commits_before(&h, cur), &want);
    must_eq(&got, &want, "restore --latest after expire");
    repo_close(r);
    printf("  expire: %" PRIu64 " backups, %" PRIu64 " blobs (%zu unshared), %" PRIu64
           " segments deleted, %" PRIu64 " bytes freed; dry run identical\n",
           er.backups_deleted, er.blobs_deleted, unshared, er.segments_deleted, er.bytes_freed);
    free(old.v);
    free(kept.v);
    tu_dig_free(&got);
    tu_dig_free(&want);
    hist_free(&h);
}

/* ---- 7. an encrypted repository ------------------------------------------------------------ */

static void key_file(const char *path, uint64_t *rng)
{
    char hex[66];
    for (int i = 0; i < 64; i++)
        hex[i] = "0123456789abcdef"[tu_splitmix(rng) % 16];
    hex[64] = '\n';
    hex[65] = 0;
    must_write_file(path, hex, 65);
}

static void refused_open(const char *rp, const char *key, const char *words1, const char *words2)
{
    repo *r = NULL;
    struct repo_open_opts ro = {.key_file = key};
    cairn_status st = repo_open(rp, &ro, &r);
    if (st != CAIRN_EINVAL)
        fail_msg("open of the encrypted repository with key %s: %s (%s), want CAIRN_EINVAL",
                 key ? key : "(none)", cairn_status_name(st), cairn_last_error());
    assert_null(r);
    assert_non_null(strstr(cairn_last_error(), words1));
    if (words2)
        assert_non_null(strstr(cairn_last_error(), words2));
    printf("  refused: %s\n", cairn_last_error());
}

static void test_encrypted(void **state)
{
    (void)state;
    uint64_t rng = g_seed ^ 0x7777;
    char db[600], rp[600], k1[700], k2[700];
    new_dir(db, sizeof db, "db");
    new_dir(rp, sizeof rp, "repo");
    snprintf(k1, sizeof k1, "%s.key1", db);
    snprintf(k2, sizeof k2, "%s.key2", db);
    key_file(k1, &rng);
    key_file(k2, &rng);
    uint8_t key1[CODEC_KEY_LEN], key2[CODEC_KEY_LEN];
    char id1[17], id2[17];
    must(codec_key_load(k1, key1), "key 1");
    must(codec_key_load(k2, key2), "key 2");
    codec_key_id(key1, id1);
    codec_key_id(key2, id2);

    cairn_options o = arch_opts(rp);
    o.archive_key_file = k1;
    cairn_db *d = must_open_o(db, &o);
    create_colls(d);
    struct hist h = {0};
    commit_until(d, &h, &rng, SEG / 2, 0);
    must(cairn_checkpoint(d, NULL), "checkpoint");
    struct tu_dig at_ck = {0}, got = {0}, want = {0};
    db_digest(d, &at_ck);
    cairn_backup_info bi;
    cairn_backup_options bo = {.key_file = k1};
    must(cairn_backup(d, rp, &bo, &bi), "encrypted backup");
    /* without the key, or with another: refused */
    bo.key_file = NULL;
    cairn_backup_info bx;
    assert_int_equal(cairn_backup(d, rp, &bo, &bx), CAIRN_EINVAL);
    assert_non_null(strstr(cairn_last_error(), id1));
    bo.key_file = k2;
    assert_int_equal(cairn_backup(d, rp, &bo, &bx), CAIRN_EINVAL);
    assert_non_null(strstr(cairn_last_error(), id1));
    commit_until(d, &h, &rng, SEG + SEG / 4, 2);
    must(cairn_wal_switch(d, NULL), "wal switch");
    must(cairn_close(d), "close");

    /* the archiver of a handle opened without the key is refused too, and
     * leaves the database openable */
    cairn_options o2 = arch_opts(rp);
    cairn_db *dx = NULL;
    assert_int_equal(cairn_open(db, &o2, &dx), CAIRN_EINVAL);
    assert_null(dx);
    assert_non_null(strstr(cairn_last_error(), id1));
    d = must_open(db);
    must(cairn_close(d), "close");

    /* every object is encrypted: flag 2 in its header */
    repo *r = must_repo_k(rp, k1);
    assert_true(r->encrypted);
    struct pitr_manifest m;
    must(pitr_manifest_load(r, bi.id, &m), "manifest");
    char path[1400], hex[CODEC_SHA256_HEX];
    blob_path(rp, m.packs[0], path, sizeof path, hex);
    size_t len = 0;
    unsigned char *obj = tu_read_file(path, &len);
    assert_non_null(obj);
    assert_true(len > OBJ_HDR && (obj[13] & 2));
    free(obj);
    uint64_t *arch = NULL;
    size_t na = repo_segs(rp, k1, &arch);
    assert_int_equal(na, 2);
    free(arch);
    struct pitr_verify_result vr;
    struct vcollect vc;
    verify(r, &vr, &vc);
    assert_int_equal(vr.problems, 0);

    /* restores with the key */
    struct pitr_restore_result res;
    struct pitr_restore_opts ro = {.kind = PITR_TARGET_BACKUP, .backup = bi.id};
    restore_dig(r, &ro, &got, &res);
    must_eq(&got, &at_ck, "encrypted restore --backup");
    ro = (struct pitr_restore_opts){.kind = PITR_TARGET_LATEST};
    restore_dig(r, &ro, &got, &res);
    model_digest(&h, h.n, &want);
    must_eq(&got, &want, "encrypted restore --latest");

    /* a wrong key behind the right key id: nothing decrypts, nothing is
     * returned, a restore leaves nothing */
    memcpy(r->key, key2, CODEC_KEY_LEN);
    uint8_t *data = (uint8_t *)"sentinel";
    size_t dlen = 7;
    assert_int_equal(repo_blob_get(r, m.packs[0], &data, &dlen), CAIRN_ECORRUPT);
    assert_null(data);
    assert_int_equal(dlen, 0);
    printf("  wrong key: %s\n", cairn_last_error());
    char name[128];
    repo_wal_obj_name(1, 0, false, name, sizeof name);
    data = (uint8_t *)"sentinel";
    assert_int_equal(repo_obj_get(r, name, REPO_OBJ_WAL, NULL, &data, &dlen), CAIRN_ECORRUPT);
    assert_null(data);
    char target[700], partial[720];
    new_dir(target, sizeof target, "restored");
    snprintf(partial, sizeof partial, "%s.partial", target);
    ro = (struct pitr_restore_opts){.kind = PITR_TARGET_LATEST};
    assert_int_equal(pitr_restore(r, target, &ro, &res), CAIRN_ECORRUPT);
    pitr_plan_free(&res.plan);
    assert_false(exists(target));
    assert_false(exists(partial));
    verify(r, &vr, &vc);
    assert_true(vr.blobs > 0 && vr.segments > 0);
    assert_int_equal(vr.problems, vr.blobs + vr.segments); /* every object */
    pitr_manifest_free(&m);
    repo_close(r);

    /* without the key, or with another one: refused by key id */
    refused_open(rp, NULL, id1, "key");
    refused_open(rp, k2, id1, id2);

    /* a repo.json edited to name the other key's id: opens, reads nothing */
    char cp[600], rj[700];
    new_dir(cp, sizeof cp, "repo-tampered");
    must_link_tree(rp, cp);
    snprintf(rj, sizeof rj, "%s/repo.json", cp);
    char *text = (char *)tu_read_file(rj, &len);
    assert_non_null(text);
    text[len] = 0;
    char *at = strstr(text, id1);
    assert_non_null(at);
    memcpy(at, id2, 16);
    must_write_file(rj, text, len);
    free(text);
    r = must_repo_k(cp, k2);
    assert_int_equal(pitr_restore(r, target, &ro, &res), CAIRN_ECORRUPT);
    pitr_plan_free(&res.plan);
    assert_false(exists(target));
    assert_false(exists(partial));
    repo_close(r);
    tu_rm_rf(cp);
    printf("  encrypted (key id %s): backup %s, %zu segments; restores with the key only\n", id1,
           bi.id, na);
    tu_dig_free(&at_ck);
    tu_dig_free(&got);
    tu_dig_free(&want);
    hist_free(&h);
}

/* ---- 8. close during a background checkpoint ------------------------------------------ */

/* cairn_close while a background checkpoint runs: the checkpoint calls
 * the archiver's retention hook after the archiver's last pass, so the
 * archiver must outlive the checkpointer. The checkpoint is made long
 * (thousands of new pages) and the last pass short (the archive caught
 * up, the segment being written incomplete), then the handle is closed
 * right after the commit that starts the checkpoint. Under ASan a hook
 * called on a freed archiver aborts. */
static void test_close_in_checkpoint(void **state)
{
    (void)state;
    uint64_t rng = g_seed ^ 0x2323;
    static const struct prof grow = {45, 1000000000u, 80}; /* new points: new pages */
    char db[600], rp[600];
    new_dir(db, sizeof db, "db");
    new_dir(rp, sizeof rp, "repo");
    cairn_options o = arch_opts(rp);
    o.checkpoint_wal_bytes = 9 * SEG + SEG / 2;
    cairn_db *d = must_open_o(db, &o);
    create_colls(d);
    struct hist h = {0};
    while (last_lsn(d) < 9 * SEG + SEG / 4)
        commit_one(d, &h, &rng, &grow);
    wait_archived(rp, NULL, 9 * SEG, 15);
    while (last_lsn(d) < 9 * SEG + SEG / 2 + 8192)
        commit_one(d, &h, &rng, &grow);
    double t0 = now_s();
    must(cairn_close(d), "close");
    double close_s = now_s() - t0;
    d = must_open(db);
    cairn_stats s;
    must(cairn_stats_get(d, &s), "stats");
    struct tu_dig got = {0}, want = {0};
    db_digest(d, &got);
    must(cairn_close(d), "close");
    model_digest(&h, h.n, &want);
    must_eq(&got, &want, "reopen after a close during a background checkpoint");
    printf("  close during a background checkpoint: %.3f s; reopened at checkpoint %" PRIu64
           " with every commit\n", close_s, s.recovery.checkpoint);
    tu_dig_free(&got);
    tu_dig_free(&want);
    hist_free(&h);
}

int main(void)
{
    g_seed = tu_seed("test_archiver", 20261121);
    cairn_set_log(test_log, NULL, CAIRN_LOG_INFO);
    if (tu_tmpbase(tmpbase, sizeof tmpbase, "archiver") != 0) {
        perror("tmpbase");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_continuous),    cmocka_unit_test(test_retention),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test_teardown(test_timeout_switch_fails, fault_off),
        cmocka_unit_test(test_archive_levels),
        cmocka_unit_test(test_backup_levels),
        cmocka_unit_test(test_online),
        cmocka_unit_test(test_backup_alone),  cmocka_unit_test(test_verify_expire),
        cmocka_unit_test(test_encrypted),     cmocka_unit_test(test_close_in_checkpoint),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (rc == 0)
        tu_rm_rf(tmpbase);
    return rc;
}
