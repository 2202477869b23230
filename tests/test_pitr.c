/*
 * test_pitr.c — point-in-time recovery end to end (pitr/): the WAL
 * archive, full and incremental backups and the restore planner, checked
 * against an oracle of every state the database went through.
 *
 * The workload (built once, group setup): a SYNC database with 2 MiB WAL
 * segments and no background checkpoint runs tu_mix_create and then seeded
 * tu_mix_txn transactions over ~20 segments, with restore points every few
 * dozen commits (one name used twice: the newest wins), explicit
 * checkpoints, a full backup after the first one, an incremental, another
 * full and another incremental later, and pitr_archive every few dozen
 * commits (continuous archiving; the retention hook keeps what is not
 * archived yet) and once after close. The oracle records each commit's
 * transaction id, LSN and time and the SHA-256 of tu_state_digest(db, 0)
 * after it (and before the first commit), each restore point's LSN, each
 * backup's redo LSN.
 *
 * 1. targets: random targets of every kind (LSN, time and transaction,
 *    inclusive and exclusive; restore point names) inside the archived
 *    range, each restored into a fresh directory: the plan's cut and base
 *    (the newest backup at or before the cut) are the expected ones, the
 *    restored database opens on a new, increasing timeline with exactly
 *    the oracle's state at the target.
 * 2. special: the state right after tu_mix_create (before the first
 *    commit) by each kind of target; --latest; replay with 1 and with 4
 *    jobs; a restore to each backup's own state; the planner's choice at
 *    each backup's redo LSN and one byte before it, the chain of an
 *    incremental; --backup (an older base; one past the target refused).
 * 3. timelines: a restore to a middle target starts timeline 2, which
 *    commits more (restore points, a checkpoint and a backup of its own)
 *    and is archived into the same repository; restores along timeline 2
 *    (the default: the latest) equal the oracle of the branch point plus
 *    the new commits, and timeline 1 named explicitly still gives the old
 *    future; targets only on the abandoned part are refused.
 * 4. refusals, each with its status, the words of its message, and no
 *    target (nor "<target>.partial") left; all but the corrupt pack and
 *    segment are the planner's (a dry run says the same): a target before
 *    the earliest backup, past the end of the archive (LSN, time,
 *    transaction), across a gap in the archive, a missing pack, a corrupt
 *    pack (found while writing pages), a corrupt archived segment late in
 *    the plan (found by the WAL fetch, which runs ahead of the replay;
 *    the dry run passes), an unknown restore point name, an existing
 *    target directory (left as it was), --backup after the target, a
 *    manifest naming a file outside the database directory (nothing
 *    written outside); the repository is unchanged by them. And a history
 *    file that cannot be published fails the restore before its target
 *    appears. (Unknown and wrong timelines: in 3.)
 * 5. crash: a restore in a child process killed with SIGKILL at random
 *    moments leaves no target (only, at most, "<target>.partial", or a
 *    target that is already whole), and the next restore to the same
 *    directory succeeds and equals the oracle.
 *
 * Seeded: CAIRN_SEED replays a run. Options: --targets N (per kind,
 * default 50), --segments N (WAL segments of workload, default 20),
 * --kills N (default 6).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cairn.h"
#include "common/codec.h"
#include "pitr/pitr.h"
#include "wal/format.h"
#include "testutil.h"
#include "testutil_cmocka.h"

#define SEG_SIZE ((uint64_t)2 << 20) /* tu_opts: the smallest WAL segment */
#define HLEN CODEC_SHA256_LEN
#define DUP_NAME "twice"

static char tmpbase[512];
static int dircount;
static uint64_t g_seed;
static unsigned g_targets = 50, g_segments = 20, g_kills = 6;
/* where the time of restore_check goes (seconds) */
static struct {
    double pages, fetch, replay, other, check;
    uint64_t segs;
} g_time;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
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

static bool partial_exists(const char *target)
{
    char p[800];
    snprintf(p, sizeof p, "%s.partial", target);
    return exists(p);
}

static uint64_t rnd(uint64_t *s, uint64_t n)
{
    return n ? tu_splitmix(s) % n : 0;
}

/* ---- the oracle -------------------------------------------------------------- */

struct ocommit {
    uint64_t txn, lsn;
    int64_t time_us;
};
struct orp {
    char name[32];
    uint64_t lsn;
    size_t k; /* commits before it */
};
struct obackup {
    char id[64], parent[64];
    uint64_t redo, last_txn;
    bool incr;
    size_t k; /* commits folded into it: those before its redo LSN */
    unsigned used; /* restores that used it as their base */
};

/* A run of commits on one timeline, and the state hash after each: h[0]
 * is the state before c[0] (right after tu_mix_create, or at the branch
 * point of a timeline), h[i + 1] the state after c[i]. */
struct history {
    struct ocommit *c;
    size_t n, cap;
    uint8_t (*h)[HLEN];
    struct orp *rp;
    size_t nrp, caprp;
};

static struct world {
    char db[600], repo[600], clean[600];
    struct history t1;
    struct obackup bk[8];
    size_t nbk;
    uint64_t create_txn_first, create_txn_last;
    int64_t time_before_create;
    uint64_t seg_start[256], seg_end[256]; /* archived segments of timeline 1 */
    size_t nseg;
    uint64_t arch_end; /* end of the last record archived (timeline 1) */
    size_t narch;      /* commits archived: c[0..narch) */
    uint32_t last_tl;  /* newest timeline a restore into `repo` made */
    bool ok;
} W;

static atomic_uint_fast64_t g_retain; /* the archive reaches here */

static uint64_t retain_hook(void *ctx)
{
    (void)ctx;
    return atomic_load(&g_retain);
}

static void state_hash(cairn_db *db, uint8_t out[HLEN])
{
    struct tu_dig d = {0};
    if (tu_state_digest(db, &d, 0) != 0)
        fail_msg("digest: %s", tu_error());
    codec_sha256(d.b, d.len, out);
    tu_dig_free(&d);
}

static void hist_init(struct history *h, const uint8_t first[HLEN])
{
    memset(h, 0, sizeof *h);
    h->cap = 256;
    h->c = malloc(h->cap * sizeof *h->c);
    h->h = malloc((h->cap + 1) * sizeof *h->h);
    assert_non_null(h->c);
    assert_non_null(h->h);
    memcpy(h->h[0], first, HLEN);
}

static void hist_commit(struct history *h, const cairn_commit_info *ci, cairn_db *db)
{
    if (h->n == h->cap) {
        h->cap *= 2;
        h->c = realloc(h->c, h->cap * sizeof *h->c);
        h->h = realloc(h->h, (h->cap + 1) * sizeof *h->h);
        assert_non_null(h->c);
        assert_non_null(h->h);
    }
    if (h->n) {
        assert_true(ci->commit_lsn > h->c[h->n - 1].lsn);
        assert_true(ci->txn_id > h->c[h->n - 1].txn);
    }
    h->c[h->n] = (struct ocommit){ci->txn_id, ci->commit_lsn, ci->commit_time_us};
    state_hash(db, h->h[h->n + 1]);
    h->n++;
}

static void hist_rpoint(struct history *h, cairn_db *db, const char *name)
{
    if (h->nrp == h->caprp) {
        h->caprp = h->caprp ? 2 * h->caprp : 64;
        h->rp = realloc(h->rp, h->caprp * sizeof *h->rp);
        assert_non_null(h->rp);
    }
    struct orp *p = &h->rp[h->nrp++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    must(cairn_restore_point(db, name, &p->lsn), "restore point");
    p->k = h->n;
}

static void hist_free(struct history *h)
{
    free(h->c);
    free(h->h);
    free(h->rp);
    memset(h, 0, sizeof *h);
}

/* Commits whose COMMIT record is at or before (inclusive) / before lsn. */
static size_t count_lsn(const struct history *h, uint64_t lsn, bool inclusive)
{
    size_t k = 0;
    while (k < h->n && (inclusive ? h->c[k].lsn <= lsn : h->c[k].lsn < lsn))
        k++;
    return k;
}

/* Index of the first commit past time t: later (inclusive target) / at or
 * later (exclusive); h->n when none. The replay stops there. */
static size_t first_past(const struct history *h, int64_t t, bool inclusive)
{
    size_t k = 0;
    while (k < h->n && (inclusive ? h->c[k].time_us <= t : h->c[k].time_us < t))
        k++;
    return k;
}

/* The newest backup of the main run whose redo LSN is at or before stop. */
static const struct obackup *base_for(uint64_t stop)
{
    const struct obackup *b = NULL;
    for (size_t i = 0; i < W.nbk; i++)
        if (W.bk[i].redo <= stop)
            b = &W.bk[i];
    return b;
}

/* Which state of h a hash is (for messages), or -1. */
static long which_state(const struct history *h, const uint8_t got[HLEN])
{
    for (size_t k = h->n + 1; k-- > 0;)
        if (!memcmp(h->h[k], got, HLEN))
            return (long)k;
    return -1;
}

/* ---- repository helpers -------------------------------------------------------- */

static repo *must_repo(const char *dir, bool create)
{
    repo *r = NULL;
    struct repo_open_opts o = {.create = create};
    must(repo_open(dir, &o, &r), "repo open");
    return r;
}

static void archive(const char *db, repo *r, struct pitr_archive_result *out)
{
    struct pitr_archive_result res;
    must(pitr_archive(db, r, 0, &res), "archive");
    if (res.archived_to > atomic_load(&g_retain))
        atomic_store(&g_retain, res.archived_to);
    if (out)
        *out = res;
}

/* ---- restores --------------------------------------------------------------------- */

static const char *kind_name(enum pitr_target_kind k)
{
    static const char *n[] = {"latest", "time", "lsn", "txn", "name", "backup"};
    return k <= PITR_TARGET_BACKUP ? n[k] : "?";
}

static void describe(const struct pitr_restore_opts *o, char *out, size_t n)
{
    char v[128] = "";
    switch (o->kind) {
    case PITR_TARGET_TIME:
        snprintf(v, sizeof v, " %" PRId64, o->time_us);
        break;
    case PITR_TARGET_LSN:
        snprintf(v, sizeof v, " %016" PRIX64, o->lsn);
        break;
    case PITR_TARGET_TXN:
        snprintf(v, sizeof v, " %" PRIu64, o->txn);
        break;
    case PITR_TARGET_NAME:
        snprintf(v, sizeof v, " \"%s\"", o->name);
        break;
    case PITR_TARGET_BACKUP:
        snprintf(v, sizeof v, " %s", o->backup);
        break;
    default:
        break;
    }
    bool base = o->backup && o->kind != PITR_TARGET_BACKUP;
    snprintf(out, n, "%s%s%s timeline %u%s%s (seed %" PRIu64 ")", kind_name(o->kind), v,
             o->exclusive ? " exclusive" : "", o->timeline, base ? " from backup " : "",
             base ? o->backup : "", g_seed);
}

/* Restores o into a fresh directory and checks it: the plan's base and cut
 * when given, then that it opens on the new timeline (above *last_tl,
 * which it advances) with state `want` (a state of h, for messages). The
 * directory is removed afterwards unless keep is given (its path). */
static void restore_check(repo *r, const struct pitr_restore_opts *o, const struct history *h,
                          size_t want, const char *want_base, uint64_t want_stop,
                          uint32_t *last_tl, char *keep, size_t keepn,
                          struct pitr_restore_result *out)
{
    char target[700], what[300];
    new_dir(target, sizeof target, "r");
    describe(o, what, sizeof what);
    struct pitr_restore_result res;
    double t0 = now_s();
    cairn_status st = pitr_restore(r, target, o, &res);
    if (st)
        fail_msg("restore to %s: %s: %s", what, cairn_status_name(st), cairn_last_error());
    double t1 = now_s();
    g_time.pages += (double)res.pages_us / 1e6;
    g_time.fetch += (double)res.fetch_us / 1e6;
    g_time.replay += (double)res.replay_us / 1e6;
    /* the WAL fetch overlaps the pages and the replay: not subtracted */
    g_time.other += t1 - t0 - (double)(res.pages_us + res.replay_us) / 1e6;
    /* the replay's split: loading the base, the redo, the checkpoint after */
    assert_true(res.load_us > 0 && res.redo_us > 0);
    assert_true(res.load_us + res.redo_us <= res.replay_us);
    g_time.segs += res.plan.nsegs;
    if (want_base && strcmp(res.plan.base, want_base) != 0)
        fail_msg("restore to %s: base %s, want %s", what, res.plan.base, want_base);
    if (want_stop != UINT64_MAX && res.plan.stop_lsn != want_stop)
        fail_msg("restore to %s: cut %016" PRIX64 ", want %016" PRIX64, what,
                 res.plan.stop_lsn, want_stop);
    assert_false(partial_exists(target));
    if (last_tl) {
        if (res.new_timeline <= *last_tl)
            fail_msg("restore to %s: new timeline %u, not above %u", what, res.new_timeline,
                     *last_tl);
        *last_tl = res.new_timeline;
    }
    cairn_db *db = must_open(target);
    cairn_stats s;
    must(cairn_stats_get(db, &s), "stats");
    assert_int_equal(s.timeline, res.new_timeline);
    uint8_t got[HLEN];
    state_hash(db, got);
    must(cairn_close(db), "close restored");
    if (memcmp(got, h->h[want], HLEN) != 0)
        fail_msg("restore to %s (base %s, cut %016" PRIX64 ", %" PRIu64 " commits applied, "
                 "last txn %" PRIu64 "): state differs from the oracle's after %zu commits "
                 "(it equals the state after %ld)",
                 what, res.plan.base, res.plan.stop_lsn, res.txns_applied, res.last_txn_id, want,
                 which_state(h, got));
    if (keep)
        snprintf(keep, keepn, "%s", target);
    else
        tu_rm_rf(target);
    g_time.check += now_s() - t1;
    pitr_plan_free(&res.plan);
    if (out)
        *out = res;
}

/* A refusal: status want and every word of `words` (NULL-terminated) in
 * the message; no target and no "<target>.partial" afterwards. planned:
 * the planner refuses it, so a dry run gives the same answer. */
static void refused(repo *r, const struct pitr_restore_opts *o, const char *target,
                    cairn_status want, bool planned, const char *const *words)
{
    char what[300];
    describe(o, what, sizeof what);
    struct pitr_restore_result res;
    for (int dry = planned ? 1 : 0; dry >= 0; dry--) {
        struct pitr_restore_opts d = *o;
        d.dry_run = dry;
        cairn_status st = pitr_restore(r, target, &d, &res);
        pitr_plan_free(&res.plan);
        if (st != want)
            fail_msg("%srestore to %s into %s: %s (%s), want %s", dry ? "dry run of a " : "",
                     what, target, cairn_status_name(st), cairn_last_error(),
                     cairn_status_name(want));
        for (size_t i = 0; words[i]; i++)
            if (!strstr(cairn_last_error(), words[i]))
                fail_msg("restore to %s: message lacks \"%s\": %s", what, words[i],
                         cairn_last_error());
        if (partial_exists(target))
            fail_msg("restore to %s: %s.partial left behind", what, target);
        if (exists(target))
            fail_msg("restore to %s: %s made", what, target);
    }
    printf("  refused %-9s %s: %s\n", cairn_status_name(want), what, cairn_last_error());
}

/* ---- the workload (group setup) ---------------------------------------------------- */

static void take_backup(repo *r, bool incr, cairn_db *db)
{
    assert_true(W.nbk < sizeof W.bk / sizeof W.bk[0]);
    struct pitr_backup_opts bo = {.incremental = incr};
    struct pitr_backup_result br;
    must(pitr_backup(W.db, r, &bo, &br), "backup");
    struct obackup *b = &W.bk[W.nbk++];
    memset(b, 0, sizeof *b);
    snprintf(b->id, sizeof b->id, "%s", br.id);
    snprintf(b->parent, sizeof b->parent, "%s", br.parent);
    b->redo = br.redo_lsn;
    b->last_txn = br.last_txn_id;
    b->incr = incr;
    b->k = count_lsn(&W.t1, br.redo_lsn, false);
    /* the checkpoint folded in every commit so far (nothing commits meanwhile) */
    assert_int_equal(b->k, W.t1.n);
    assert_int_equal(br.timeline, 1);
    cairn_stats s;
    must(cairn_stats_get(db, &s), "stats");
    printf("  backup %s%s: redo %016" PRIX64 " after %zu commits, %" PRIu64 " pages (%" PRIu64
           " new), %" PRIu64 " bytes stored\n",
           br.id, incr ? " (incremental)" : "", br.redo_lsn, b->k, br.pages, br.pages_new,
           br.bytes_stored);
}

static int setup_world(void **state)
{
    (void)state;
    double t0 = now_s();
    uint64_t rng = g_seed;
    snprintf(W.db, sizeof W.db, "%s/db", tmpbase);
    snprintf(W.repo, sizeof W.repo, "%s/repo", tmpbase);
    snprintf(W.clean, sizeof W.clean, "%s/repo-clean", tmpbase);
    repo *r = must_repo(W.repo, true);
    cairn_options o = opts();
    o.wal_retain = retain_hook;
    cairn_db *db = must_open_o(W.db, &o);
    cairn_stats s;
    must(cairn_stats_get(db, &s), "stats");
    W.create_txn_first = s.next_txn_id;
    W.time_before_create = wall_us();
    must(tu_mix_create(db), "mix create");
    must(cairn_stats_get(db, &s), "stats");
    W.create_txn_last = s.next_txn_id - 1;
    uint8_t h0[HLEN];
    state_hash(db, h0);
    hist_init(&W.t1, h0);

    /* checkpoint 1 and the first full backup, before any workload commit:
     * the state right after tu_mix_create is a target too */
    must(cairn_checkpoint(db, NULL), "checkpoint 1");
    archive(W.db, r, NULL);
    take_backup(r, false, db);

    const uint64_t goal = (uint64_t)g_segments * SEG_SIZE;
    /* where (fractions of goal) the run checkpoints and backs up, and
     * where the name used twice goes: both between backups 2 and 3, so the
     * base of a restore to it precedes both */
    const double at_incr = 0.25, at_full = 0.55, at_incr2 = 0.75, at_ckpt = 0.85;
    const double at_dup1 = 0.35, at_dup2 = 0.45;
    int stage = 0, dup = 0;
    unsigned until_rp = 5, until_arch = 30, archives = 0, rps = 0;
    cairn_commit_info ci;
    for (;;) {
        must(cairn_stats_get(db, &s), "stats");
        if (s.last_lsn >= goal)
            break;
        double f = (double)s.last_lsn / (double)goal;
        if (stage == 0 && f >= at_incr) {
            must(cairn_checkpoint(db, NULL), "checkpoint 2");
            take_backup(r, true, db);
            stage++;
        } else if (stage == 1 && f >= at_full) {
            must(cairn_checkpoint(db, NULL), "checkpoint 3");
            take_backup(r, false, db);
            stage++;
        } else if (stage == 2 && f >= at_incr2) {
            must(cairn_checkpoint(db, NULL), "checkpoint 4");
            take_backup(r, true, db);
            stage++;
        } else if (stage == 3 && f >= at_ckpt) {
            must(cairn_checkpoint(db, NULL), "checkpoint 5 (no backup)");
            stage++;
        }
        if ((dup == 0 && f >= at_dup1) || (dup == 1 && f >= at_dup2)) {
            hist_rpoint(&W.t1, db, DUP_NAME);
            dup++;
        }
        must(tu_mix_txn(db, &rng, &ci), "mix txn");
        hist_commit(&W.t1, &ci, db);
        if (--until_rp == 0) {
            char name[32];
            snprintf(name, sizeof name, "rp-%04u", rps++);
            hist_rpoint(&W.t1, db, name);
            until_rp = 10 + (unsigned)rnd(&rng, 40);
        }
        if (--until_arch == 0) {
            archive(W.db, r, NULL);
            archives++;
            until_arch = 40 + (unsigned)rnd(&rng, 40);
        }
    }
    assert_int_equal(stage, 4);
    assert_int_equal(dup, 2);
    must(cairn_close(db), "close");
    struct pitr_archive_result ar;
    archive(W.db, r, &ar);
    assert_false(ar.waiting);
    struct pitr_archive_result again;
    archive(W.db, r, &again); /* idempotent */
    assert_int_equal(again.archived, 0);
    assert_int_equal(again.archived_to, ar.archived_to);

    /* the archived range of timeline 1: contiguous from the first segment */
    uint64_t *starts = NULL;
    size_t n = 0;
    must(repo_wal_list(r, 1, &starts, &n), "wal list");
    assert_true(n >= g_segments - 1 && n <= sizeof W.seg_start / sizeof W.seg_start[0]);
    for (size_t i = 0; i < n; i++) {
        struct repo_seg_summary sum;
        must(repo_seg_summary_get(r, 1, starts[i], &sum), "summary");
        W.seg_start[i] = sum.start;
        W.seg_end[i] = sum.end_lsn;
        assert_int_equal(sum.start, starts[0] + i * SEG_SIZE);
        repo_seg_summary_free(&sum);
    }
    W.nseg = n;
    W.arch_end = W.seg_end[n - 1];
    assert_int_equal(ar.archived_to, W.seg_start[n - 1] + SEG_SIZE);
    free(starts);
    W.narch = count_lsn(&W.t1, W.arch_end, false);
    /* the last segment is incomplete: its commits are not archived */
    assert_true(W.narch < W.t1.n);
    assert_true(W.narch > W.t1.n * 3 / 4);
    for (size_t i = 1; i < W.t1.n; i++)
        if (W.t1.c[i].time_us <= W.t1.c[i - 1].time_us)
            fail_msg("commit times not increasing at commit %zu: the time targets assume so", i);
    repo_close(r);
    must_link_tree(W.repo, W.clean);
    W.last_tl = 1;
    W.ok = true;
    printf("workload: %zu commits (%zu archived) over %zu archived segments, %zu restore "
           "points, %zu backups, %u archive runs: %.1f s\n",
           W.t1.n, W.narch, W.nseg, W.t1.nrp, W.nbk, archives + 3, now_s() - t0);
    return 0;
}

static int teardown_world(void **state)
{
    (void)state;
    hist_free(&W.t1);
    return 0;
}

/* ---- 1. random targets of every kind --------------------------------------------------- */

enum { K_LSN_IN, K_LSN_EX, K_TIME_IN, K_TIME_EX, K_TXN_IN, K_TXN_EX, K_NAME, K_N };
static const char *const kname[K_N] = {"lsn",  "lsn-excl", "time",    "time-excl",
                                       "txn",  "txn-excl", "name"};

/* The newest restore point of that name in the archived range. */
static const struct orp *newest_rp(const char *name)
{
    const struct orp *p = NULL;
    for (size_t i = 0; i < W.t1.nrp; i++)
        if (!strcmp(W.t1.rp[i].name, name) && W.t1.rp[i].lsn < W.arch_end)
            p = &W.t1.rp[i];
    return p;
}

/* A random target of kind `kind` whose WAL is archived and whose cut is at
 * or after the first backup: the options, the state it must give (*k) and
 * the cut (*stop). Returns false for a draw outside that range (redraw). */
static bool pick(int kind, uint64_t *rng, struct pitr_restore_opts *o, size_t *k, uint64_t *stop,
                 int forced)
{
    const struct history *h = &W.t1;
    const uint64_t r1 = W.bk[0].redo;
    memset(o, 0, sizeof *o);
    o->timeline = 1;
    o->jobs = 1 + (unsigned)rnd(rng, 3);
    size_t i = rnd(rng, W.narch);
    switch (kind) {
    case K_LSN_IN:
    case K_LSN_EX: {
        bool in = kind == K_LSN_IN;
        uint64_t L;
        switch (rnd(rng, 5)) {
        case 0:
            L = h->c[i].lsn;
            break;
        case 1:
            L = h->c[i].lsn - 1;
            break;
        case 2:
            L = h->c[i].lsn + 1;
            break;
        case 3: { /* after a segment's last record, in its SWITCH or padding */
            size_t s = rnd(rng, W.nseg - 1);
            L = W.seg_end[s] + rnd(rng, W.seg_start[s] + SEG_SIZE - W.seg_end[s]);
            break;
        }
        default:
            L = r1 + rnd(rng, W.arch_end - r1);
            break;
        }
        o->kind = PITR_TARGET_LSN;
        o->lsn = L;
        o->exclusive = !in;
        *stop = in ? L + 1 : L;
        *k = count_lsn(h, L, in);
        return *stop >= r1 && *stop <= W.arch_end;
    }
    case K_TIME_IN:
    case K_TIME_EX: {
        bool in = kind == K_TIME_IN;
        int64_t T;
        switch (rnd(rng, 4)) {
        case 0:
            T = h->c[i].time_us;
            break;
        case 1:
            T = h->c[i].time_us - 1;
            break;
        case 2:
            T = h->c[i].time_us + 1;
            break;
        default: {
            int64_t lo = h->c[0].time_us - 1, hi = h->c[W.narch - 1].time_us;
            T = lo + (int64_t)rnd(rng, (uint64_t)(hi - lo));
            break;
        }
        }
        o->kind = PITR_TARGET_TIME;
        o->time_us = T;
        o->exclusive = !in;
        size_t j = first_past(h, T, in);
        if (j >= W.narch)
            return false;
        *k = j;
        *stop = h->c[j].lsn;
        return true;
    }
    case K_TXN_IN:
    case K_TXN_EX:
        o->kind = PITR_TARGET_TXN;
        o->txn = h->c[i].txn;
        o->exclusive = kind == K_TXN_EX;
        *k = o->exclusive ? i : i + 1;
        *stop = o->exclusive ? h->c[i].lsn : h->c[i].lsn + 1;
        return true;
    default: {
        const struct orp *p = &h->rp[rnd(rng, h->nrp)];
        if (forced)
            p = newest_rp(DUP_NAME);
        else if (p->lsn >= W.arch_end)
            return false;
        p = newest_rp(p->name);
        o->kind = PITR_TARGET_NAME;
        o->name = p->name;
        *k = p->k;
        *stop = p->lsn;
        return true;
    }
    }
}

static void test_targets(void **state)
{
    (void)state;
    assert_true(W.ok);
    repo *r = must_repo(W.repo, false);
    uint64_t rng = g_seed ^ 0x7461726765747321ull;
    memset(&g_time, 0, sizeof g_time);
    double total = 0;
    unsigned all = 0;
    for (int kind = 0; kind < K_N; kind++) {
        double t0 = now_s();
        unsigned done = 0, draws = 0;
        while (done < g_targets) {
            struct pitr_restore_opts o;
            size_t k;
            uint64_t stop;
            assert_true(++draws < 100 * g_targets);
            if (!pick(kind, &rng, &o, &k, &stop, kind == K_NAME && done == 0))
                continue;
            const struct obackup *b = base_for(stop);
            assert_non_null(b);
            restore_check(r, &o, &W.t1, k, b->id, stop, &W.last_tl, NULL, 0, NULL);
            ((struct obackup *)b)->used++;
            done++;
        }
        double dt = now_s() - t0;
        total += dt;
        all += done;
        printf("  %-9s %u restores passed, %.1f s (%.2f s each)\n", kname[kind], done, dt,
               dt / done);
    }
    printf("targets: %u restores passed in %.1f s (pages %.1f s, WAL fetch %.1f s of %" PRIu64
           " segments beside the pages and the replay, replay and new timeline %.1f s, "
           "planning and waiting for the first segment %.1f s; open, digest and removal "
           "%.1f s)\n",
           all, total, g_time.pages, g_time.fetch, g_time.segs, g_time.replay, g_time.other,
           g_time.check);
    for (size_t i = 0; i < W.nbk; i++) {
        printf("  base %s%s: %u restores\n", W.bk[i].id, W.bk[i].incr ? " (incremental)" : "",
               W.bk[i].used);
        if (g_targets >= 20) /* each base is the newest for a quarter of the log or so */
            assert_true(W.bk[i].used > 0);
    }
    repo_close(r);
}

/* ---- 2. latest, jobs, backups' own states, the planner's choice --------------------------- */

static void test_special(void **state)
{
    (void)state;
    assert_true(W.ok);
    repo *r = must_repo(W.repo, false);
    const struct history *h = &W.t1;
    struct pitr_restore_result res;

    /* the state before the first commit, from the first backup */
    const struct pitr_restore_opts first[] = {
        {.kind = PITR_TARGET_TXN, .txn = h->c[0].txn, .exclusive = true},
        {.kind = PITR_TARGET_LSN, .lsn = h->c[0].lsn, .exclusive = true},
        {.kind = PITR_TARGET_LSN, .lsn = h->c[0].lsn - 1},
        {.kind = PITR_TARGET_TIME, .time_us = h->c[0].time_us, .exclusive = true},
        {.kind = PITR_TARGET_TIME, .time_us = h->c[0].time_us - 1},
    };
    for (size_t i = 0; i < sizeof first / sizeof first[0]; i++) {
        struct pitr_restore_opts o = first[i];
        o.timeline = 1;
        restore_check(r, &o, h, 0, W.bk[0].id, UINT64_MAX, &W.last_tl, NULL, 0, &res);
        assert_int_equal(res.txns_applied, 0);
    }

    /* --latest: every archived commit */
    struct pitr_restore_opts o = {.kind = PITR_TARGET_LATEST, .timeline = 1};
    restore_check(r, &o, h, W.narch, W.bk[W.nbk - 1].id, UINT64_MAX, &W.last_tl, NULL, 0, &res);
    assert_int_equal(res.last_txn_id, h->c[W.narch - 1].txn);
    assert_int_equal(res.last_commit_lsn, h->c[W.narch - 1].lsn);

    /* one job and four from the first backup over the whole archive: the
     * same state, the oracle's */
    size_t i = W.narch - 1 - W.narch / 10;
    char dirs[2][700];
    for (int j = 0; j < 2; j++) {
        o = (struct pitr_restore_opts){.kind = PITR_TARGET_TXN, .txn = h->c[i].txn,
                                       .timeline = 1, .backup = W.bk[0].id,
                                       .jobs = j ? 4 : 1};
        restore_check(r, &o, h, i + 1, W.bk[0].id, h->c[i].lsn + 1, &W.last_tl, dirs[j],
                      sizeof dirs[j], &res);
        assert_int_equal(res.txns_applied, i + 1);
    }
    struct tu_dig d[2] = {{0}, {0}};
    for (int j = 0; j < 2; j++) {
        cairn_db *db = must_open(dirs[j]);
        if (tu_state_digest(db, &d[j], TU_DIG_ID_BYTES) != 0)
            fail_msg("digest: %s", tu_error());
        must(cairn_close(db), "close");
        tu_rm_rf(dirs[j]);
    }
    assert_true(tu_dig_eq(&d[0], &d[1]));
    tu_dig_free(&d[0]);
    tu_dig_free(&d[1]);

    for (size_t b = 0; b < W.nbk; b++) {
        const struct obackup *bk = &W.bk[b];
        /* the manifest says what the backup result said */
        struct pitr_manifest m;
        must(pitr_manifest_load(r, bk->id, &m), "manifest");
        assert_int_equal(m.redo_lsn, bk->redo);
        assert_int_equal(m.last_txn_id, bk->k ? h->c[bk->k - 1].txn : W.create_txn_last);
        assert_int_equal(m.incremental, bk->incr);
        if (bk->incr)
            assert_string_equal(m.parent, W.bk[b - 1].id);
        assert_int_equal(m.timeline, 1);
        pitr_manifest_free(&m);

        /* its own state */
        o = (struct pitr_restore_opts){.kind = PITR_TARGET_BACKUP, .backup = bk->id};
        restore_check(r, &o, h, bk->k, bk->id, bk->redo, &W.last_tl, NULL, 0, &res);
        assert_int_equal(res.txns_applied, 0);

        /* the planner: a cut at the redo LSN takes this backup, one byte
         * earlier the one before (dry runs) */
        for (int before = 0; before < 2 && b > 0; before++) {
            o = (struct pitr_restore_opts){.kind = PITR_TARGET_LSN, .timeline = 1,
                                           .lsn = bk->redo - (uint64_t)before, .exclusive = true,
                                           .dry_run = true};
            char t[700];
            new_dir(t, sizeof t, "dry");
            must(pitr_restore(r, t, &o, &res), "dry run");
            assert_false(exists(t));
            assert_false(partial_exists(t));
            assert_string_equal(res.plan.base, W.bk[b - (size_t)before].id);
            const struct obackup *c = &W.bk[b - (size_t)before];
            /* the chain: the base, then (incremental) its parents */
            assert_string_equal(res.plan.chain[0], c->id);
            assert_int_equal(res.plan.nchain, c->incr ? 2 : 1);
            if (c->incr)
                assert_string_equal(res.plan.chain[1], c->parent);
            pitr_plan_free(&res.plan);
        }
    }

    /* --backup: an older base than the planner would take gives the same
     * state; one after the target is refused, naming its redo LSN */
    size_t late = W.bk[W.nbk - 1].k + (W.narch - W.bk[W.nbk - 1].k) / 2;
    o = (struct pitr_restore_opts){.kind = PITR_TARGET_TXN, .txn = h->c[late].txn,
                                   .timeline = 1, .backup = W.bk[1].id};
    restore_check(r, &o, h, late + 1, W.bk[1].id, h->c[late].lsn + 1, &W.last_tl, NULL, 0, NULL);
    size_t early = W.bk[1].k / 2;
    o = (struct pitr_restore_opts){.kind = PITR_TARGET_TXN, .txn = h->c[early].txn,
                                   .timeline = 1, .backup = W.bk[2].id};
    char t[700], redo[32];
    new_dir(t, sizeof t, "r");
    snprintf(redo, sizeof redo, "%016" PRIX64, W.bk[2].redo);
    refused(r, &o, t, CAIRN_EINVAL, true,
            (const char *const[]){W.bk[2].id, "not at or before the target", redo, NULL});
    repo_close(r);
}

/* ---- 3. timelines ------------------------------------------------------------------------ */

static void test_timelines(void **state)
{
    (void)state;
    assert_true(W.ok);
    uint64_t rng = g_seed ^ 0x74696d656c696e65ull;
    char rdir[600];
    snprintf(rdir, sizeof rdir, "%s/repo-tl", tmpbase);
    must_link_tree(W.clean, rdir);
    repo *r = must_repo(rdir, false);
    const struct history *h1 = &W.t1;
    uint32_t last_tl = 1;

    /* the branch: a transaction between backups 2 and 3 (the planner must
     * not take backup 3, past the switch on timeline 1) */
    size_t m = W.bk[1].k + (W.bk[2].k - W.bk[1].k) / 2;
    /* the next commit (abandoned) in the same segment: see the time
     * target at the branch point below */
    while (h1->c[m + 1].lsn / SEG_SIZE != h1->c[m].lsn / SEG_SIZE)
        m--;
    assert_true(m > W.bk[1].k);
    struct pitr_restore_opts o = {.kind = PITR_TARGET_TXN, .txn = h1->c[m].txn};
    char t2[700];
    struct pitr_restore_result res;
    restore_check(r, &o, h1, m + 1, W.bk[1].id, h1->c[m].lsn + 1, &last_tl, t2, sizeof t2, &res);
    assert_int_equal(res.new_timeline, 2);
    uint64_t sw = res.switch_lsn;
    assert_true(sw > h1->c[m].lsn && sw <= h1->c[m + 1].lsn);
    printf("  timeline 2 branches from 1 at %016" PRIX64 " (after transaction %" PRIu64 ")\n", sw,
           h1->c[m].txn);

    /* timeline 2 goes on: commits, restore points, a checkpoint and a full
     * backup of its own, then it is archived into the same repository */
    struct history h2;
    hist_init(&h2, h1->h[m + 1]);
    cairn_options opt = opts();
    atomic_store(&g_retain, 0);
    opt.wal_retain = retain_hook;
    cairn_db *db = must_open_o(t2, &opt);
    cairn_stats s;
    must(cairn_stats_get(db, &s), "stats");
    assert_int_equal(s.timeline, 2);
    uint64_t start2 = s.last_lsn;
    assert_true(start2 >= sw);
    const uint64_t goal = start2 + 5 * SEG_SIZE / 2;
    struct obackup b2 = {0};
    unsigned until_rp = 7, rps = 0;
    cairn_commit_info ci;
    for (;;) {
        must(cairn_stats_get(db, &s), "stats");
        if (s.last_lsn >= goal)
            break;
        if (!b2.id[0] && s.last_lsn >= start2 + SEG_SIZE) {
            must(cairn_checkpoint(db, NULL), "checkpoint on timeline 2");
            struct pitr_backup_opts bo = {0};
            struct pitr_backup_result br;
            must(pitr_backup(t2, r, &bo, &br), "backup of timeline 2");
            assert_int_equal(br.timeline, 2);
            snprintf(b2.id, sizeof b2.id, "%s", br.id);
            b2.redo = br.redo_lsn;
            b2.k = h2.n;
        }
        must(tu_mix_txn(db, &rng, &ci), "mix txn on timeline 2");
        hist_commit(&h2, &ci, db);
        if (--until_rp == 0) {
            char name[32];
            snprintf(name, sizeof name, "tl2-%03u", rps++);
            hist_rpoint(&h2, db, name);
            until_rp = 10 + (unsigned)rnd(&rng, 30);
        }
    }
    assert_true(b2.id[0]);
    must(cairn_close(db), "close timeline 2");
    struct pitr_archive_result ar;
    must(pitr_archive(t2, r, 0, &ar), "archive timeline 2");
    assert_int_equal(ar.timeline, 2);
    assert_true(ar.archived >= 2);
    uint64_t *starts = NULL;
    size_t n = 0;
    must(repo_wal_list(r, 2, &starts, &n), "wal list 2");
    struct repo_seg_summary sum;
    must(repo_seg_summary_get(r, 2, starts[n - 1], &sum), "summary");
    uint64_t end2 = sum.end_lsn;
    repo_seg_summary_free(&sum);
    free(starts);
    size_t narch2 = count_lsn(&h2, end2, false);
    assert_true(narch2 > 10 && narch2 < h2.n && b2.k < narch2);
    printf("  timeline 2: %zu commits (%zu archived), %zu restore points, backup %s\n", h2.n,
           narch2, h2.nrp, b2.id);

    /* along timeline 2, the default (latest): a time target between the
     * branch point and the first commit of timeline 2, inclusive of the
     * last commit kept: nothing of timeline 2 applies, and the commits of
     * timeline 1's abandoned future (later than it, in the same segment,
     * whose summary counts them) must not be taken for the cut */
    o = (struct pitr_restore_opts){.kind = PITR_TARGET_TIME, .time_us = h1->c[m].time_us};
    restore_check(r, &o, &h2, 0, W.bk[1].id, h2.c[0].lsn, &last_tl, NULL, 0, &res);
    assert_int_equal(res.plan.target_timeline, 2);
    assert_int_equal(res.plan.nhops, 2);
    assert_int_equal(res.plan.hops[0].timeline, 1);
    assert_int_equal(res.plan.hops[1].timeline, 2);
    unsigned passed = 1;

    /* the first transaction of timeline 2, whose id timeline 1's
     * abandoned future may hold too (in that same segment), and one before
     * timeline 2's backup (base: backup 2 of timeline 1) */
    if (h2.c[0].txn <= h1->c[h1->n - 1].txn)
        printf("  timeline 2 reuses transaction ids of timeline 1's abandoned future (from "
               "%" PRIu64 ")\n", h2.c[0].txn);
    size_t js[2] = {0, b2.k / 2};
    for (int x = 0; x < 2; x++) {
        size_t j = js[x];
        o = (struct pitr_restore_opts){.kind = PITR_TARGET_TXN, .timeline = 2,
                                       .txn = h2.c[j].txn};
        restore_check(r, &o, &h2, j + 1, W.bk[1].id, h2.c[j].lsn + 1, &last_tl, NULL, 0, NULL);
        passed++;
    }

    /* timeline 2 named (the latest is now the one just made): random
     * targets of each kind after the branch */
    for (int kind = 0; kind < K_N; kind++) {
        for (int rep = 0; rep < 3; rep++) {
            size_t i = rnd(&rng, narch2), k;
            uint64_t stop;
            o = (struct pitr_restore_opts){.timeline = 2, .exclusive = kind & 1};
            switch (kind) {
            case K_LSN_IN:
            case K_LSN_EX:
                o.kind = PITR_TARGET_LSN;
                o.lsn = h2.c[i].lsn - (rep == 2);
                o.exclusive = kind == K_LSN_EX;
                stop = o.exclusive ? o.lsn : o.lsn + 1;
                k = count_lsn(&h2, o.lsn, !o.exclusive);
                break;
            case K_TIME_IN:
            case K_TIME_EX:
                o.kind = PITR_TARGET_TIME;
                o.time_us = h2.c[i].time_us - (rep == 2);
                o.exclusive = kind == K_TIME_EX;
                k = first_past(&h2, o.time_us, !o.exclusive);
                if (k >= narch2)
                    continue;
                stop = h2.c[k].lsn;
                break;
            case K_TXN_IN:
            case K_TXN_EX:
                o.kind = PITR_TARGET_TXN;
                o.txn = h2.c[i].txn;
                o.exclusive = kind == K_TXN_EX;
                k = o.exclusive ? i : i + 1;
                stop = o.exclusive ? h2.c[i].lsn : h2.c[i].lsn + 1;
                break;
            default: {
                const struct orp *p = &h2.rp[rnd(&rng, h2.nrp)];
                if (p->lsn >= end2)
                    continue;
                o.kind = PITR_TARGET_NAME;
                o.name = p->name;
                k = p->k;
                stop = p->lsn;
                break;
            }
            }
            const char *base = b2.redo <= stop ? b2.id : W.bk[1].id;
            restore_check(r, &o, &h2, k, base, stop, &last_tl, NULL, 0, NULL);
            passed++;
        }
    }

    printf("  along timeline 2: %u restores passed\n", passed);

    /* timeline 1 named: the old future, past the branch point */
    size_t late = W.bk[2].k + (W.narch - W.bk[2].k) / 3;
    o = (struct pitr_restore_opts){.kind = PITR_TARGET_TXN, .txn = h1->c[late].txn,
                                   .timeline = 1};
    restore_check(r, &o, h1, late + 1, base_for(h1->c[late].lsn + 1)->id, h1->c[late].lsn + 1,
                  &last_tl, NULL, 0, NULL);
    o = (struct pitr_restore_opts){.kind = PITR_TARGET_LATEST, .timeline = 1};
    restore_check(r, &o, h1, W.narch, W.bk[W.nbk - 1].id, UINT64_MAX, &last_tl, NULL, 0, NULL);

    /* what only timeline 1's abandoned future holds is not on timeline 2 */
    char t[700];
    new_dir(t, sizeof t, "r");
    o = (struct pitr_restore_opts){.kind = PITR_TARGET_LSN, .timeline = 2, .lsn = sw + 8};
    assert_true(o.lsn < start2);
    refused(r, &o, t, CAIRN_EINVAL, true, (const char *const[]){"not on the path", NULL});
    const struct orp *gone = NULL;
    for (size_t i = 0; i < h1->nrp && !gone; i++)
        if (h1->rp[i].lsn > sw && strcmp(h1->rp[i].name, DUP_NAME) != 0)
            gone = &h1->rp[i];
    assert_non_null(gone);
    o = (struct pitr_restore_opts){.kind = PITR_TARGET_NAME, .timeline = 2, .name = gone->name};
    refused(r, &o, t, CAIRN_ENOTFOUND, true,
            (const char *const[]){"no restore point named", gone->name, NULL});
    o = (struct pitr_restore_opts){.kind = PITR_TARGET_LSN, .timeline = 2, .lsn = end2 + 64};
    refused(r, &o, t, CAIRN_ENOTFOUND, true,
            (const char *const[]){"past the end of the archive of timeline 2", NULL});
    o = (struct pitr_restore_opts){.kind = PITR_TARGET_LATEST, .timeline = 4000};
    refused(r, &o, t, CAIRN_ENOTFOUND, true, (const char *const[]){"knows no timeline 4000", NULL});
    o = (struct pitr_restore_opts){.kind = PITR_TARGET_NAME, .timeline = 2, .name = "tl2-999"};
    refused(r, &o, t, CAIRN_ENOTFOUND, true,
            (const char *const[]){"no restore point named \"tl2-999\"", NULL});
    /* expire keeping every backup: timeline 2's WAL before its own backup
     * stays, since restores along timeline 2 from timeline 1's backups
     * (taken before the branch) read it; a target there still restores */
    char rx[700];
    snprintf(rx, sizeof rx, "%s-expired", rdir);
    must_link_tree(rdir, rx);
    repo *rr = must_repo(rx, false);
    struct pitr_expire_opts eo = {.keep_full = 1000};
    struct pitr_expire_result er;
    must(pitr_expire(rr, &eo, &er), "expire keeping every backup");
    assert_int_equal(er.backups_deleted, 0);
    uint32_t ltx = last_tl;
    o = (struct pitr_restore_opts){.kind = PITR_TARGET_TXN, .timeline = 2,
                                   .txn = h2.c[js[1]].txn};
    restore_check(rr, &o, &h2, js[1] + 1, W.bk[1].id, h2.c[js[1]].lsn + 1, &ltx, NULL, 0, NULL);
    printf("  expire keeping every backup kept timeline 2's WAL before its backup (%" PRIu64
           " segment(s) of timeline 1 deleted)\n", er.segments_deleted);
    repo_close(rr);
    tu_rm_rf(rx);
    tu_rm_rf(t2);
    hist_free(&h2);
    repo_close(r);
}

/* ---- 4. refusals ------------------------------------------------------------------------- */

/* A fresh hard-linked copy of the clean repository. */
static repo *copy_repo(char *dir, size_t n, const char *what)
{
    new_dir(dir, n, what);
    must_link_tree(W.clean, dir);
    return must_repo(dir, false);
}

static void test_refusals(void **state)
{
    (void)state;
    assert_true(W.ok);
    const struct history *h = &W.t1;
    char rdir[700], t[700], buf[1200];
    repo *r = copy_repo(rdir, sizeof rdir, "repo-ref");
    new_dir(t, sizeof t, "r");
    struct pitr_restore_opts o;
    struct tu_tree before_tree, after_tree;
    assert_int_equal(tu_tree_take(&before_tree, rdir), 0);

    /* before the earliest backup: the collections' creation */
    o = (struct pitr_restore_opts){.kind = PITR_TARGET_TXN, .txn = W.create_txn_first};
    refused(r, &o, t, CAIRN_ENOTFOUND, true,
            (const char *const[]){"before the earliest backup", W.bk[0].id, NULL});
    o = (struct pitr_restore_opts){.kind = PITR_TARGET_TIME, .time_us = W.time_before_create};
    refused(r, &o, t, CAIRN_ENOTFOUND, true, (const char *const[]){"before the earliest", NULL});
    o = (struct pitr_restore_opts){.kind = PITR_TARGET_LSN, .lsn = W.bk[0].redo - 1,
                                   .exclusive = true};
    refused(r, &o, t, CAIRN_ENOTFOUND, true, (const char *const[]){"before the earliest", NULL});

    /* past the end of the archive: the commits of the last segment */
    o = (struct pitr_restore_opts){.kind = PITR_TARGET_LSN, .lsn = W.arch_end + 64};
    snprintf(buf, sizeof buf, "%016" PRIX64, W.arch_end);
    refused(r, &o, t, CAIRN_ENOTFOUND, true,
            (const char *const[]){"past the end of the archive", buf, NULL});
    o = (struct pitr_restore_opts){.kind = PITR_TARGET_TIME,
                                   .time_us = h->c[W.narch - 1].time_us};
    snprintf(buf, sizeof buf, "%016" PRIX64, h->c[W.narch - 1].lsn);
    refused(r, &o, t, CAIRN_ENOTFOUND, true,
            (const char *const[]){"past the end of the archive", buf, NULL});
    o = (struct pitr_restore_opts){.kind = PITR_TARGET_TXN, .txn = h->c[h->n - 1].txn};
    refused(r, &o, t, CAIRN_ENOTFOUND, true,
            (const char *const[]){"has no COMMIT in the archived WAL", NULL});
    o = (struct pitr_restore_opts){.kind = PITR_TARGET_NAME, .name = "no-such-point"};
    refused(r, &o, t, CAIRN_ENOTFOUND, true,
            (const char *const[]){"no restore point named \"no-such-point\"", NULL});

    /* the target exists: refused, left as it was */
    char existing[700], marker[800];
    new_dir(existing, sizeof existing, "exists");
    assert_int_equal(mkdir(existing, 0755), 0);
    snprintf(marker, sizeof marker, "%s/mine", existing);
    FILE *f = fopen(marker, "w");
    assert_non_null(f);
    fputs("keep", f);
    fclose(f);
    o = (struct pitr_restore_opts){.kind = PITR_TARGET_LATEST, .timeline = 1};
    struct pitr_restore_result res;
    assert_int_equal(pitr_restore(r, existing, &o, &res), CAIRN_EEXIST);
    pitr_plan_free(&res.plan);
    assert_non_null(strstr(cairn_last_error(), "exists"));
    assert_non_null(strstr(cairn_last_error(), existing));
    assert_false(partial_exists(existing));
    struct tu_tree tree;
    assert_int_equal(tu_tree_take(&tree, existing), 0);
    assert_int_equal(tree.n, 1);
    tu_tree_free(&tree);
    repo_close(r);
    /* and the repository is as it was */
    assert_int_equal(tu_tree_take(&after_tree, rdir), 0);
    if (tu_tree_diff(&before_tree, &after_tree, buf, sizeof buf))
        fail_msg("refused restores changed the repository: %s", buf);
    tu_tree_free(&before_tree);
    tu_tree_free(&after_tree);

    /* a gap: a segment between backup 2 and the target gone (object and
     * summary); a target before it still restores */
    r = copy_repo(rdir, sizeof rdir, "repo-gap");
    size_t gs = 0;
    while (gs < W.nseg && W.seg_start[gs] < W.bk[1].redo + SEG_SIZE)
        gs++;
    assert_true(gs + 1 < W.nseg && W.seg_start[gs + 1] + SEG_SIZE <= W.bk[2].redo);
    char name[128];
    for (int js = 0; js < 2; js++) {
        repo_wal_obj_name(1, W.seg_start[gs], js, name, sizeof name);
        snprintf(buf, sizeof buf, "%s/%s", rdir, name);
        assert_int_equal(unlink(buf), 0);
    }
    size_t after = count_lsn(h, W.seg_start[gs + 1] + SEG_SIZE / 2, false);
    assert_true(W.t1.c[after].lsn < W.bk[2].redo);
    o = (struct pitr_restore_opts){.kind = PITR_TARGET_TXN, .txn = h->c[after].txn};
    char segname[64];
    repo_wal_obj_name(1, W.seg_start[gs], false, name, sizeof name);
    snprintf(segname, sizeof segname, "%s", strrchr(name, '/') + 1);
    refused(r, &o, t, CAIRN_ENOTFOUND, true,
            (const char *const[]){"gap in the WAL archive", segname, W.bk[1].id, NULL});
    o = (struct pitr_restore_opts){.kind = PITR_TARGET_TIME, .time_us = h->c[after].time_us};
    refused(r, &o, t, CAIRN_ENOTFOUND, true, (const char *const[]){"gap", segname, NULL});
    size_t before = count_lsn(h, W.seg_start[gs], false) - 1;
    assert_true(h->c[before].lsn > W.bk[1].redo);
    o = (struct pitr_restore_opts){.kind = PITR_TARGET_TXN, .txn = h->c[before].txn,
                                   .timeline = 1};
    uint32_t tl = 1;
    restore_check(r, &o, h, before + 1, W.bk[1].id, h->c[before].lsn + 1, &tl, NULL, 0, NULL);
    repo_close(r);

    /* a pack of backup 1 missing: refused by the planner, naming it */
    r = copy_repo(rdir, sizeof rdir, "repo-nopack");
    struct pitr_manifest m;
    must(pitr_manifest_load(r, W.bk[0].id, &m), "manifest");
    assert_true(m.npacks > 0);
    repo_blob_name(m.packs[m.npacks - 1], name, sizeof name);
    pitr_manifest_free(&m);
    snprintf(buf, sizeof buf, "%s/%s", rdir, name);
    assert_int_equal(unlink(buf), 0);
    size_t k1 = W.bk[1].k / 2;
    o = (struct pitr_restore_opts){.kind = PITR_TARGET_TXN, .txn = h->c[k1].txn};
    refused(r, &o, t, CAIRN_ENOTFOUND, true,
            (const char *const[]){strrchr(name, '/') + 1, W.bk[0].id, NULL});
    repo_close(r);

    /* a byte of a pack of backup 3 flipped: found while its pages are
     * written, CAIRN_ECORRUPT naming the object; nothing left */
    r = copy_repo(rdir, sizeof rdir, "repo-badpack");
    must(pitr_manifest_load(r, W.bk[2].id, &m), "manifest");
    uint64_t rng = g_seed ^ 0x6261647061636bull;
    repo_blob_name(m.packs[rnd(&rng, m.npacks)], name, sizeof name);
    pitr_manifest_free(&m);
    snprintf(buf, sizeof buf, "%s/%s", rdir, name);
    struct stat sb;
    assert_int_equal(stat(buf, &sb), 0);
    must_flip_byte(buf, 96 + rnd(&rng, (uint64_t)sb.st_size - 96));
    size_t k3 = W.bk[2].k + 3;
    o = (struct pitr_restore_opts){.kind = PITR_TARGET_TXN, .txn = h->c[k3].txn};
    refused(r, &o, t, CAIRN_ECORRUPT, false,
            (const char *const[]){strrchr(name, '/') + 1, NULL});
    repo_close(r);

    /* a byte of an archived segment late in the plan flipped: the planner
     * reads no segment for an LSN target (its dry run passes), so it is
     * the WAL fetch, running ahead of the replay, that finds it:
     * CAIRN_ECORRUPT naming the segment's object; the replay stops,
     * nothing left */
    r = copy_repo(rdir, sizeof rdir, "repo-badseg");
    uint64_t cut = h->c[W.narch - 2].lsn;
    uint64_t badseg = (cut & ~(SEG_SIZE - 1)) - SEG_SIZE;
    assert_true(badseg > W.bk[0].redo + 4 * SEG_SIZE);
    repo_wal_obj_name(1, badseg, false, name, sizeof name);
    snprintf(buf, sizeof buf, "%s/%s", rdir, name);
    assert_int_equal(stat(buf, &sb), 0);
    must_flip_byte(buf, 96 + rnd(&rng, (uint64_t)sb.st_size - 96));
    o = (struct pitr_restore_opts){.kind = PITR_TARGET_LSN, .lsn = cut, .backup = W.bk[0].id,
                                   .timeline = 1};
    struct pitr_restore_opts dry = o;
    dry.dry_run = true;
    must(pitr_restore(r, t, &dry, &res), "dry run with a damaged segment");
    size_t badidx = res.plan.nsegs;
    for (size_t i = 0; i < res.plan.nsegs; i++)
        if (res.plan.segs[i].start == badseg)
            badidx = i;
    printf("  damaged segment: %zu of the plan's %zu\n", badidx + 1, res.plan.nsegs);
    assert_true(badidx + 1 < res.plan.nsegs && badidx >= 4);
    pitr_plan_free(&res.plan);
    refused(r, &o, t, CAIRN_ECORRUPT, false,
            (const char *const[]){strrchr(name, '/') + 1, NULL});
    repo_close(r);

    /* a record in the middle of an archived segment damaged, and the
     * segment archived so (its SHA-256 and summary match: the archive
     * kept what the database had): the replay finds the invalid record,
     * later records prove it was durable, the reader reads its segment a
     * second time (the fetch gets it again: the replay had given it back)
     * and refuses: CAIRN_ECORRUPT naming the archived object; nothing
     * left */
    r = copy_repo(rdir, sizeof rdir, "repo-badrec");
    {
        repo_wal_obj_name(1, badseg, false, name, sizeof name);
        struct repo_seg_summary sum;
        must(repo_seg_summary_get(r, 1, badseg, &sum), "summary of the segment");
        uint8_t *img = NULL;
        size_t len = 0;
        must(repo_obj_get(r, name, REPO_OBJ_WAL, sum.sha, &img, &len), "segment");
        assert_int_equal(len, SEG_SIZE);
        /* the record holding the segment's middle: walk the records by
         * their lengths; its LSN field (header offset 16) flipped */
        uint64_t off = WAL_SEG_DATA;
        for (;;) {
            uint32_t rl = (uint32_t)img[off + 4] | (uint32_t)img[off + 5] << 8 |
                          (uint32_t)img[off + 6] << 16 | (uint32_t)img[off + 7] << 24;
            assert_true(rl >= WAL_REC_HDR && off + rl < len);
            uint64_t next = off + ((rl + WAL_REC_ALIGN - 1) & ~(uint64_t)(WAL_REC_ALIGN - 1));
            if (next > len / 2)
                break;
            off = next;
        }
        assert_true(off < sum.end_lsn - badseg);
        img[off + 16] ^= 0x5A;
        codec_sha256(img, len, sum.sha);
        must(repo_obj_put(r, name, REPO_OBJ_WAL, img, len, sum.sha, false, NULL),
             "put the damaged segment");
        must(repo_seg_summary_put(r, &sum), "put its summary");
        free(img);
        repo_seg_summary_free(&sum);
        refused(r, &o, t, CAIRN_ECORRUPT, false,
                (const char *const[]){name, "invalid record followed by durable records", NULL});
    }
    repo_close(r);

    /* the new timeline's history cannot be published (a directory sits
     * where it goes): the restore fails as a whole, leaving no database on
     * a timeline the repository does not know */
    r = copy_repo(rdir, sizeof rdir, "repo-nohist");
    snprintf(buf, sizeof buf, "%s/history", rdir);
    mkdir(buf, 0755);
    snprintf(buf, sizeof buf, "%s/history/00000002.history", rdir);
    assert_int_equal(mkdir(buf, 0755), 0);
    o = (struct pitr_restore_opts){.kind = PITR_TARGET_TXN, .txn = h->c[k3].txn};
    assert_int_not_equal(pitr_restore(r, t, &o, &res), CAIRN_OK);
    pitr_plan_free(&res.plan);
    printf("  history not publishable: %s\n", cairn_last_error());
    assert_non_null(strstr(cairn_last_error(), "00000002.history"));
    assert_false(exists(t));
    assert_false(partial_exists(t));
    assert_int_equal(rmdir(buf), 0);
    uint32_t tl2 = 1;
    restore_check(r, &o, h, k3 + 1, W.bk[2].id, h->c[k3].lsn + 1, &tl2, NULL, 0, &res);
    assert_int_equal(res.new_timeline, 2);
    repo_close(r);

    /* a manifest naming files outside the database directory: refused,
     * nothing written outside (nor anything left inside) */
    r = copy_repo(rdir, sizeof rdir, "repo-escape");
    static const char *const bad[] = {"../x", "collections/../../x", "/tmp/cairn-escape-x",
                                      "a//b", "./x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *text = NULL;
        size_t len = 0;
        must(repo_manifest_get(r, W.bk[0].id, &text, &len), "manifest get");
        json_error_t jerr;
        json_t *j = json_loadb(text, len, 0, &jerr);
        free(text);
        assert_non_null(j);
        char id[96];
        snprintf(id, sizeof id, "%s-bad%zu", W.bk[0].id, i);
        json_object_set_new(j, "id", json_string(id));
        json_t *files = json_object_get(j, "files");
        json_t *f0 = json_array_get(files, json_array_size(files) - 1);
        json_object_set_new(f0, "name", json_string(bad[i]));
        char *out = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        must(repo_manifest_put(r, id, out, strlen(out)), "manifest put");
        free(out);
        o = (struct pitr_restore_opts){.kind = PITR_TARGET_BACKUP, .backup = id};
        refused(r, &o, t, CAIRN_ECORRUPT, true,
                (const char *const[]){"outside the database directory", bad[i], NULL});
        snprintf(buf, sizeof buf, "%s/x", tmpbase);
        assert_false(exists(buf));
        assert_false(exists("/tmp/cairn-escape-x"));
    }
    repo_close(r);
    assert_false(exists(t));
}

/* ---- 5. a restore killed at random moments ------------------------------------------------ */

static void test_crash(void **state)
{
    (void)state;
    assert_true(W.ok);
    const struct history *h = &W.t1;
    char rdir[700];
    repo *r = copy_repo(rdir, sizeof rdir, "repo-crash");
    uint64_t rng = g_seed ^ 0x637261736821ull;
    /* a long one: from backup 1 over several segments */
    size_t i = W.bk[1].k - 1;
    struct pitr_restore_opts o = {.kind = PITR_TARGET_TXN, .txn = h->c[i].txn, .jobs = 2};
    uint32_t tl = 1;
    double t0 = now_s();
    restore_check(r, &o, h, i + 1, W.bk[0].id, h->c[i].lsn + 1, &tl, NULL, 0, NULL);
    double full = now_s() - t0;
    char target[700];
    new_dir(target, sizeof target, "crash");
    unsigned killed = 0, finished = 0, partial_left = 0, whole = 0;
    for (unsigned kill_i = 0; kill_i < g_kills; kill_i++) {
        /* the child does what pitrctl restore does; the delay covers the
         * whole restore, and a bit past it (the first: its first half) */
        uint64_t delay_us = rnd(&rng, (uint64_t)(full * (kill_i ? 1.1e6 : 0.5e6)) + 1);
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            repo *cr = NULL;
            struct repo_open_opts ro = {0};
            struct pitr_restore_result res;
            cairn_status st = repo_open(rdir, &ro, &cr);
            if (!st)
                st = pitr_restore(cr, target, &o, &res);
            _exit(st ? 1 : 0);
        }
        usleep((useconds_t)delay_us);
        kill(pid, SIGKILL);
        int ws = 0;
        assert_int_equal(waitpid(pid, &ws, 0), pid);
        bool was_killed = WIFSIGNALED(ws);
        if (!was_killed) {
            assert_true(WIFEXITED(ws));
            assert_int_equal(WEXITSTATUS(ws), 0);
            finished++;
        } else {
            killed++;
        }
        partial_left += partial_exists(target);
        if (exists(target)) {
            /* a kill after the rename: the target is whole already, on a
             * timeline the repository knows (the next restore takes a
             * newer one) */
            if (was_killed)
                whole++;
            assert_false(partial_exists(target));
            cairn_db *db = must_open(target);
            uint8_t got[HLEN];
            state_hash(db, got);
            cairn_stats s;
            must(cairn_stats_get(db, &s), "stats");
            must(cairn_close(db), "close");
            assert_memory_equal(got, h->h[i + 1], HLEN);
            assert_true(s.timeline > tl);
            tl = s.timeline;
            tu_rm_rf(target);
        }
        /* the next restore to the same directory succeeds */
        struct pitr_restore_result res;
        must(pitr_restore(r, target, &o, &res), "restore after a killed one");
        pitr_plan_free(&res.plan);
        assert_false(partial_exists(target));
        if (res.new_timeline <= tl)
            fail_msg("restore after a killed one: timeline %u, not above %u", res.new_timeline,
                     tl);
        tl = res.new_timeline;
        cairn_db *db = must_open(target);
        uint8_t got[HLEN];
        state_hash(db, got);
        must(cairn_close(db), "close");
        assert_memory_equal(got, h->h[i + 1], HLEN);
        tu_rm_rf(target);
    }
    printf("crash: %u restores killed (%u left a .partial, %u after the rename), %u finished "
           "first; every next restore passed (a whole restore: %.2f s)\n",
           killed, partial_left, whole, finished, full);
    assert_true(killed > 0);
    repo_close(r);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        unsigned *v = !strcmp(argv[i], "--targets")    ? &g_targets
                      : !strcmp(argv[i], "--segments") ? &g_segments
                      : !strcmp(argv[i], "--kills")    ? &g_kills
                                                       : NULL;
        if (!v || i + 1 == argc || atoi(argv[i + 1]) <= 0) {
            fprintf(stderr, "usage: %s [--targets N] [--segments N] [--kills N]\n", argv[0]);
            return 2;
        }
        *v = (unsigned)atoi(argv[++i]);
    }
    if (g_segments < 12 || g_segments > 200) {
        fprintf(stderr, "--segments: 12..200\n");
        return 2;
    }
    tu_quiet_log();
    g_seed = tu_seed("pitr", 20261207);
    if (tu_tmpbase(tmpbase, sizeof tmpbase, "pitr") != 0) {
        perror("tmpbase");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_targets),   cmocka_unit_test(test_special),
        cmocka_unit_test(test_timelines), cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_crash),
    };
    int rc = cmocka_run_group_tests(tests, setup_world, teardown_world);
    if (rc == 0)
        tu_rm_rf(tmpbase);
    return rc;
}
