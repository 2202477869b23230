/*
 * test_restore.c — the engine's half of point-in-time restore
 * (engine/restore.h): a checkpoint copied out of a source database plus the
 * source's WAL segments, replayed to a target along a path of timelines,
 * ends on a new timeline and opens to exactly the oracle's state.
 *
 * The source (built once, SYNC mode): the three collections of the mixed
 * workload (tu_mix_*), a checkpoint that is the base (pinned right after
 * it), then ~360 seeded transactions (upserts with payloads up to 20 KB,
 * deletes, some spanning collections), a collection created, written,
 * dropped and created again, restore points, and a second checkpoint. For
 * every change the oracle keeps the commit info and a hash of the whole
 * visible state after it (tu_state_digest). Restore inputs are made as
 * pitr/ would, without it: cairn_pin_copy of the base into a new
 * directory, then the source's WAL segments copied into its wal/.
 *
 * 1. targets: every kind (LSN, time, txn, name; inclusive and exclusive;
 *    an LSN between commits; the end; a target before the first commit
 *    after the base), with 1 and 4 replay jobs: the restored state is the
 *    oracle's at the target, the switch LSN is the end of the last commit
 *    applied (or the base's redo LSN), the new log starts at the data
 *    offset of the next segment, wal/ holds only that segment and the
 *    history file with the branch line, the directory opens on the new
 *    timeline replaying nothing, passes cairn_check, and takes new
 *    commits that survive a reopen.
 * 2. two_hops: restore to timeline 2 in the middle, commit more there, then
 *    restore again from the same base along [1 until the switch, 2 from
 *    its start] to targets on timeline 2 (and one reached before timeline
 *    2's first commit, which branches from timeline 1): the combined
 *    oracle's state, a two-line history; a transaction only in timeline
 *    1's abandoned future is not found; with timeline 1's log lost from
 *    the branch's segment on, the restore is refused (never timeline 2's
 *    commits on an earlier state of timeline 1).
 * 3. refusals: a new timeline not greater, a path that does not start on
 *    the checkpoint's timeline, one that leaves it before the redo LSN, a
 *    start that is not a segment's data offset, a path contradicting a
 *    history file, a target beyond the log, a missing segment in the
 *    middle of a hop (the log ends before the path goes on; a segment
 *    missing before later ones), an unfinished restore: each a clear
 *    status and a message naming timeline and LSN (or file), and not one
 *    byte of the directory changed.
 * 4. faults: an I/O failure (EIO once; ENOSPC from there on) at each write,
 *    sync and metadata operation of a restore in turn: it either completes
 *    (and the directory opens restored) or fails with that status, leaving
 *    the directory either unchanged or refused by cairn_open.
 * 5. progress: the callback is called, last with the totals; a cancel
 *    returns CAIRN_ECANCELED and changes nothing.
 * 6. partial (only_names): at a target where "extra" (created after the
 *    base, dropped after the target and created again later) exists, only
 *    "extra"; only "small" and "wide" (transactions spanning "extra" and
 *    "small" apply their selected part); at the end, "extra" (the second
 *    one) and "mid". The oracle: a full restore to the same target (its
 *    state checked against the source's), opened, the other collections
 *    dropped; the partial restore's state equals it, ids included, and
 *    its new timeline's log starts with one DROP_COLL per collection left
 *    out. A name with no collection at the target (not created yet,
 *    dropped before it, never) is CAIRN_ENOTFOUND naming it, an invalid
 *    one CAIRN_ENAME, and neither changes one byte.
 * 7. pre-writes (o.prewrite, looking every millisecond): restores to the
 *    end and to a transaction in the middle, 1 and 4 jobs, pre-write pages
 *    and give the oracle's state; one that fails after pre-writes (a
 *    target beyond the log) leaves no marker, and the directory is still
 *    the restore's input: restored again, it gives the oracle's state; so
 *    does one whose pre-writes fail (CAIRN_ENOSPC naming them).
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
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cairn.h"
#include "common/io.h"
#include "engine/restore.h"
#include "testutil.h"
#include "testutil_cmocka.h"
#include "wal/wal.h"

static char tmpbase[512];
static int dbcounter;
static uint64_t g_seed;

#define SEG ((uint64_t)CAIRN_WAL_SEGMENT_MIN)
#define NTXN 360
#define EXTRA "extra"

static void new_dir(char *out, size_t n, const char *what)
{
    snprintf(out, n, "%s/%s%d", tmpbase, what, dbcounter++);
}

/* FNV-1a over the state digest: the oracle keeps hashes, not states. */
static uint64_t state_hash(cairn_db *db)
{
    return must_state_hash(db, TU_DIG_ID_BYTES);
}

/* ---- the oracle ---------------------------------------------------------------- */

/* A change of state: a commit (with its info) or DDL (no info). */
struct entry {
    bool commit;
    cairn_commit_info ci;
    uint64_t hash; /* of the state after it */
};

struct history {
    struct entry *e; /* e[0]: the starting state (no change) */
    size_t n, cap;
};

struct rpoint {
    char name[32];
    uint64_t lsn;
    size_t before; /* index of the last entry before it */
};

static void hist_add(struct history *h, bool commit, const cairn_commit_info *ci, uint64_t hash)
{
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 64;
        h->e = realloc(h->e, h->cap * sizeof *h->e);
        assert_non_null(h->e);
    }
    h->e[h->n++] = (struct entry){.commit = commit, .ci = ci ? *ci : (cairn_commit_info){0},
                                  .hash = hash};
}

/* The index of the last entry the target lets apply (DDL between commits
 * applies when the scan reaches the commit after it). */
static size_t expect(const struct history *h, const struct replay_target *t,
                     const struct rpoint *rps, size_t nrp)
{
    if (t->kind == REPLAY_TO_NAME) {
        for (size_t i = 0; i < nrp; i++)
            if (strcmp(rps[i].name, t->name) == 0)
                return rps[i].before;
        fail_msg("no restore point %s", t->name);
    }
    size_t cur = 0;
    for (size_t i = 1; i < h->n; i++) {
        const struct entry *e = &h->e[i];
        if (!e->commit) {
            cur = i;
            continue;
        }
        bool ok = true, last = false;
        switch (t->kind) {
        case REPLAY_TO_LSN:
            ok = t->inclusive ? e->ci.commit_lsn <= t->lsn : e->ci.commit_lsn < t->lsn;
            break;
        case REPLAY_TO_TIME:
            ok = t->inclusive ? e->ci.commit_time_us <= t->time_us
                              : e->ci.commit_time_us < t->time_us;
            break;
        case REPLAY_TO_TXN:
            if (e->ci.txn_id == t->txn) {
                ok = t->inclusive;
                last = true;
            }
            break;
        default:
            break;
        }
        if (!ok)
            break;
        cur = i;
        if (last)
            break;
    }
    return cur;
}

struct source {
    char dir[600];
    cairn_pin *pin;
    cairn_pin_info pi;
    struct history h;
    struct rpoint rp[16];
    size_t nrp;
};
static struct source S;

static size_t commit_size(void)
{
    return wal_enc_commit(NULL, 0, 0, 0);
}

static void restore_point(cairn_db *db, const char *name, const struct history *h,
                          struct rpoint *rp, size_t *nrp)
{
    snprintf(rp[*nrp].name, sizeof rp[*nrp].name, "%s", name);
    must(cairn_restore_point(db, name, &rp[*nrp].lsn), "restore point");
    rp[*nrp].before = h->n - 1;
    (*nrp)++;
}

/* A transaction over "extra" and "small": spans collections. */
static void extra_txn(cairn_db *db, uint64_t *rng, cairn_commit_info *ci)
{
    cairn_txn *t = NULL;
    must(cairn_txn_begin(db, &t), "begin");
    float v[8], s[4];
    for (int k = 0; k < 3; k++) {
        tu_fill_vec(rng, v, 8, -1, 1);
        must(cairn_txn_upsert(t, EXTRA, tu_splitmix(rng) % 50, v, 8, "{\"x\":1}", 7), "upsert");
    }
    tu_fill_vec(rng, s, 4, -1, 1);
    must(cairn_txn_upsert(t, "small", tu_splitmix(rng) % 400, s, 4, NULL, 0), "upsert");
    must(cairn_txn_delete(t, "small", tu_splitmix(rng) % 400), "delete");
    must(cairn_txn_commit(t, ci), "commit");
    cairn_txn_free(t);
}

/* n seeded transactions on db, each recorded in h, with restore points
 * "<prefix><i>" every 37 and the extra collection's life at fixed steps
 * when `ddl`. */
static void workload(cairn_db *db, uint64_t *rng, size_t n, bool ddl, const char *prefix,
                     struct history *h, struct rpoint *rp, size_t *nrp, size_t maxrp)
{
    for (size_t i = 0; i < n; i++) {
        if (i % 37 == 20 && *nrp < maxrp) {
            char name[32];
            snprintf(name, sizeof name, "%s%zu", prefix, i);
            restore_point(db, name, h, rp, nrp);
        }
        if (ddl && (i == 60 || i == 200)) {
            must(cairn_collection_create(db, EXTRA, 8, CAIRN_METRIC_L2), "create extra");
            hist_add(h, false, NULL, state_hash(db));
        }
        if (ddl && i == 150) {
            must(cairn_collection_drop(db, EXTRA), "drop extra");
            hist_add(h, false, NULL, state_hash(db));
        }
        if (ddl && i == 120)
            must(cairn_checkpoint(db, NULL), "second checkpoint");
        cairn_commit_info ci;
        bool extra = ddl && ((i > 60 && i < 150) || i > 200) && i % 5 == 0;
        if (extra)
            extra_txn(db, rng, &ci);
        else
            must(tu_mix_txn(db, rng, &ci), "txn");
        hist_add(h, true, &ci, state_hash(db));
    }
}

static int setup(void **state)
{
    (void)state;
    new_dir(S.dir, sizeof S.dir, "src");
    cairn_db *db = must_open(S.dir);
    uint64_t rng = g_seed;
    must(tu_mix_create(db), "create");
    for (int i = 0; i < 20; i++)
        must(tu_mix_txn(db, &rng, NULL), "txn before the base");
    must(cairn_checkpoint(db, NULL), "base checkpoint");
    must(cairn_pin_open(S.dir, &S.pin, &S.pi), "pin");
    hist_add(&S.h, false, NULL, state_hash(db));
    workload(db, &rng, NTXN, true, "rp", &S.h, S.rp, &S.nrp, 8);
    cairn_stats st;
    must(cairn_stats_get(db, &st), "stats");
    print_message("source: base redo LSN %" PRIu64 ", log ends at LSN %" PRIu64 " (%" PRIu64
                  " segments), %zu changes, %zu restore points\n",
                  S.pi.redo_lsn, st.last_lsn, st.last_lsn / SEG + 1, S.h.n - 1, S.nrp);
    must(cairn_close(db), "close source");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cairn_pin_close(S.pin);
    free(S.h.e);
    return 0;
}

/* ---- files --------------------------------------------------------------------- */

static bool has_suffix(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

/* Copies every file of from/ whose name ends with one of the suffixes into
 * to/ (replacing). */
static void copy_files(const char *from, const char *to, const char *const *suf, size_t nsuf)
{
    DIR *d = opendir(from);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        bool want = false;
        for (size_t i = 0; i < nsuf; i++)
            want |= has_suffix(e->d_name, suf[i]);
        if (!want)
            continue;
        char a[900], b[900];
        snprintf(a, sizeof a, "%s/%s", from, e->d_name);
        snprintf(b, sizeof b, "%s/%s", to, e->d_name);
        size_t len = 0;
        unsigned char *data = tu_read_file(a, &len);
        assert_non_null(data);
        int fd = open(b, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, data, len), (ssize_t)len);
        close(fd);
        free(data);
    }
    closedir(d);
}

static const char *const wal_only[] = {".wal"};
static const char *const wal_and_hist[] = {".wal", ".history"};

/* A restore input as pitr/ makes one: the base, and the source's WAL. */
static void make_input(char *dir, size_t n, const char *what)
{
    new_dir(dir, n, what);
    must(cairn_pin_copy(S.pin, dir, NULL, NULL), "pin copy");
    char from[700], to[700];
    snprintf(from, sizeof from, "%s/wal", S.dir);
    snprintf(to, sizeof to, "%s/wal", dir);
    copy_files(from, to, wal_only, 1);
}

static bool exists(const char *dir, const char *rel)
{
    char p[900];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    struct stat sb;
    return lstat(p, &sb) == 0;
}

static void seg_path(char *buf, size_t n, const char *dir, uint32_t tl, uint64_t lsn)
{
    char name[64];
    wal_seg_name(name, sizeof name, tl, lsn & ~(SEG - 1));
    snprintf(buf, n, "%s/wal/%s", dir, name);
}

/* The tree of a directory with DB/LOCK made first (an open creates it). */
static void take_tree(struct tu_tree *t, const char *dir)
{
    char p[900];
    snprintf(p, sizeof p, "%s/LOCK", dir);
    int fd = open(p, O_WRONLY | O_CREAT, 0644);
    assert_true(fd >= 0);
    close(fd);
    if (tu_tree_take(t, dir) != 0)
        fail_msg("tree: %s", tu_error());
}

static void assert_unchanged(const struct tu_tree *before, const char *dir)
{
    struct tu_tree now;
    if (tu_tree_take(&now, dir) != 0)
        fail_msg("tree: %s", tu_error());
    char why[600];
    if (tu_tree_diff(before, &now, why, sizeof why))
        fail_msg("the directory changed: %s", why);
    tu_tree_free(&now);
}

static void expect_msg(const char *part)
{
    if (!strstr(cairn_last_error(), part))
        fail_msg("message does not say \"%s\": %s", part, cairn_last_error());
}

/* ---- checking a restored directory ---------------------------------------------- */

static uint64_t next_start(uint64_t sw)
{
    return (sw & ~(SEG - 1)) + SEG + WAL_SEG_DATA;
}

/* wal/ holds exactly one segment, the new timeline's first, and the
 * history file `hist`. */
static void check_wal_dir(const char *dir, const struct engine_restore_result *r, uint32_t tl,
                          const char *hist)
{
    char wd[700];
    snprintf(wd, sizeof wd, "%s/wal", dir);
    DIR *d = opendir(wd);
    assert_non_null(d);
    struct dirent *e;
    int segs = 0;
    while ((e = readdir(d))) {
        uint32_t t;
        uint64_t s;
        if (!wal_seg_parse_name(e->d_name, &t, &s))
            continue;
        if (t != tl || s != r->new_start_lsn - WAL_SEG_DATA)
            fail_msg("wal/ holds segment %s after the restore to timeline %" PRIu32, e->d_name,
                     tl);
        segs++;
    }
    closedir(d);
    assert_int_equal(segs, 1);
    char hp[800];
    snprintf(hp, sizeof hp, "%s/%08" PRIX32 ".history", wd, tl);
    size_t len = 0;
    unsigned char *got = tu_read_file(hp, &len);
    assert_non_null(got);
    got[len] = 0;
    if (strcmp((char *)got, hist) != 0)
        fail_msg("history file:\n%s\nexpected:\n%s", (char *)got, hist);
    free(got);
}

/* The directory opens on tl with `want`, from the restore's checkpoint,
 * replaying nothing; checks clean; takes commits that survive a reopen.
 * Returns the hash of the state. */
static uint64_t check_restored(const char *dir, const struct engine_restore_result *r,
                               uint32_t tl, uint64_t want)
{
    assert_false(exists(dir, "restore-incomplete"));
    cairn_db *db = must_open(dir);
    cairn_stats s;
    must(cairn_stats_get(db, &s), "stats");
    assert_int_equal(s.timeline, tl);
    assert_int_equal(s.recovery.checkpoint, r->checkpoint);
    assert_int_equal(s.recovery.start_lsn, r->new_start_lsn);
    assert_int_equal(s.recovery.records_replayed, 0);
    uint64_t h = state_hash(db);
    if (h != want)
        fail_msg("restored state differs from the oracle's at the target");
    cairn_collection_info *list = NULL;
    size_t n = 0;
    must(cairn_collection_list(db, &list, &n), "list");
    uint64_t pts = 0;
    for (size_t i = 0; i < n; i++)
        pts += list[i].points;
    cairn_free(list);
    assert_int_equal(n, r->collections);
    assert_int_equal(pts, r->points);
    cairn_check_report rep;
    must(cairn_check(db, &rep), "check of the restored database");
    assert_int_equal(rep.generation, r->checkpoint);
    /* the new timeline takes commits, after its start */
    uint64_t rng = g_seed ^ 0xabcdef;
    cairn_commit_info ci;
    for (int i = 0; i < 5; i++) {
        must(tu_mix_txn(db, &rng, &ci), "commit on the new timeline");
        assert_true(ci.commit_lsn > r->new_start_lsn);
    }
    uint64_t after = state_hash(db);
    must(cairn_close(db), "close");
    db = must_open(dir);
    must(cairn_stats_get(db, &s), "stats");
    assert_int_equal(s.timeline, tl);
    assert_int_equal(s.recovery.records_replayed > 0, 1);
    if (state_hash(db) != after)
        fail_msg("commits on the new timeline did not survive a reopen");
    must(cairn_close(db), "close");
    return h;
}

static struct engine_restore_opts one_hop(const struct engine_tl_hop *hop,
                                          const struct replay_target *t, unsigned jobs,
                                          uint32_t new_tl)
{
    return (struct engine_restore_opts){.hops = hop, .nhops = 1, .target = *t, .jobs = jobs,
                                        .new_timeline = new_tl};
}

/* The switch LSN the oracle predicts: the end of the last commit applied
 * (a DDL entry's is not known: 0), or the base's redo LSN. */
static uint64_t expect_switch(const struct history *h, size_t idx, uint64_t base_redo)
{
    for (size_t i = idx; i > 0; i--)
        if (h->e[i].commit)
            return i == idx ? h->e[i].ci.commit_lsn + commit_size() : 0;
    return idx == 0 ? base_redo : 0;
}

/* ---- 1 ----------------------------------------------------------------------------- */

/* A commit index k (>= lo) whose neighbours are commits too. */
static size_t plain_commit(size_t lo)
{
    for (size_t k = lo; k + 1 < S.h.n; k++)
        if (S.h.e[k].commit && S.h.e[k - 1].commit && S.h.e[k + 1].commit)
            return k;
    fail_msg("no plain commit after %zu", lo);
    return 0;
}

/* The first such commit at or after LSN lsn. */
static size_t plain_commit_at(uint64_t lsn)
{
    size_t k = 1;
    while (k + 1 < S.h.n && (!S.h.e[k].commit || S.h.e[k].ci.commit_lsn < lsn))
        k++;
    return plain_commit(k);
}

static void test_targets(void **state)
{
    (void)state;
    const struct history *h = &S.h;
    size_t a = plain_commit(40), b = plain_commit(130), c = plain_commit(230);
    size_t first = 1;
    assert_true(h->e[first].commit);
    struct {
        struct replay_target t;
        const char *what;
    } cases[] = {
        {{.kind = REPLAY_TO_END}, "end"},
        {{.kind = REPLAY_TO_LSN, .inclusive = true, .lsn = h->e[a].ci.commit_lsn}, "lsn incl"},
        {{.kind = REPLAY_TO_LSN, .inclusive = false, .lsn = h->e[b].ci.commit_lsn}, "lsn excl"},
        {{.kind = REPLAY_TO_LSN, .inclusive = true, .lsn = h->e[c].ci.commit_lsn + 8},
         "lsn between"},
        {{.kind = REPLAY_TO_TIME, .inclusive = true, .time_us = h->e[b].ci.commit_time_us},
         "time incl"},
        {{.kind = REPLAY_TO_TIME, .inclusive = false, .time_us = h->e[a].ci.commit_time_us},
         "time excl"},
        {{.kind = REPLAY_TO_TXN, .inclusive = true, .txn = h->e[c].ci.txn_id}, "txn incl"},
        {{.kind = REPLAY_TO_TXN, .inclusive = false, .txn = h->e[a].ci.txn_id}, "txn excl"},
        {{.kind = REPLAY_TO_TXN, .inclusive = false, .txn = h->e[first].ci.txn_id},
         "before the first commit"},
        {{.kind = REPLAY_TO_NAME}, "name"},
        {{.kind = REPLAY_TO_NAME}, "name (after DDL)"},
    };
    size_t ncases = sizeof cases / sizeof cases[0];
    snprintf(cases[ncases - 2].t.name, sizeof cases[0].t.name, "%s", S.rp[1].name);
    snprintf(cases[ncases - 1].t.name, sizeof cases[0].t.name, "%s", S.rp[S.nrp - 1].name);

    for (size_t i = 0; i < ncases; i++) {
        const struct replay_target *t = &cases[i].t;
        size_t idx = expect(h, t, S.rp, S.nrp);
        uint64_t hashes[2];
        for (int pass = 0; pass < 2; pass++) {
            unsigned jobs = pass ? 4 : 1;
            /* the slow part: run the second pass for a few targets only */
            if (pass && i % 3 != 0)
                continue;
            char dir[600];
            make_input(dir, sizeof dir, "t");
            struct engine_tl_hop hop = {.timeline = 1, .until_lsn = UINT64_MAX};
            struct engine_restore_opts o = one_hop(&hop, t, jobs, 2);
            struct engine_restore_result r;
            cairn_status st = engine_restore(dir, &o, &r);
            if (st)
                fail_msg("restore to %s: %s: %s", cases[i].what, cairn_status_name(st),
                         cairn_last_error());
            assert_int_equal(r.target_reached, t->kind != REPLAY_TO_END);
            assert_int_equal(r.parent_timeline, 1);
            uint64_t sw = expect_switch(h, idx, S.pi.redo_lsn);
            if (sw)
                assert_int_equal(r.switch_lsn, sw);
            assert_int_equal(r.new_start_lsn, next_start(r.switch_lsn));
            char line[80];
            snprintf(line, sizeof line, "1 %016" PRIX64 " %016" PRIX64 "\n", r.switch_lsn,
                     r.new_start_lsn);
            check_wal_dir(dir, &r, 2, line);
            hashes[pass] = check_restored(dir, &r, 2, h->e[idx].hash);
            print_message("restore to %-24s jobs %u: %zu changes applied, %" PRIu64
                          " records, switch LSN %" PRIu64 ", new start %" PRIu64 "\n",
                          cases[i].what, jobs, idx, r.replay.records, r.switch_lsn,
                          r.new_start_lsn);
            tu_rm_rf(dir);
        }
        if (i % 3 == 0)
            assert_true(hashes[0] == hashes[1]);
    }
}

/* ---- 2 ----------------------------------------------------------------------------- */

static void test_two_hops(void **state)
{
    (void)state;
    /* A: timeline 2 branches from timeline 1 in the middle, in the
     * segment after the base's redo LSN */
    size_t m = plain_commit_at((S.pi.redo_lsn & ~(SEG - 1)) + SEG);
    char A[600];
    make_input(A, sizeof A, "A");
    struct engine_tl_hop h1 = {.timeline = 1, .until_lsn = UINT64_MAX};
    struct replay_target tm = {.kind = REPLAY_TO_TXN, .inclusive = true,
                               .txn = S.h.e[m].ci.txn_id};
    struct engine_restore_opts o = one_hop(&h1, &tm, 2, 2);
    struct engine_restore_result ra;
    must(engine_restore(A, &o, &ra), "restore A");
    const uint64_t swA = ra.switch_lsn, startA = ra.new_start_lsn;
    assert_int_equal(swA, S.h.e[m].ci.commit_lsn + commit_size());
    char hist2[80];
    snprintf(hist2, sizeof hist2, "1 %016" PRIX64 " %016" PRIX64 "\n", swA, startA);
    check_wal_dir(A, &ra, 2, hist2);

    /* commits on timeline 2, with their oracle */
    struct history h2 = {0};
    struct rpoint rp2[8];
    size_t nrp2 = 0;
    cairn_db *db = must_open(A);
    hist_add(&h2, false, NULL, state_hash(db));
    assert_true(h2.e[0].hash == S.h.e[m].hash);
    uint64_t rng = g_seed * 31 + 7;
    workload(db, &rng, 60, false, "tl2-", &h2, rp2, &nrp2, 8);
    must(cairn_close(db), "close A");

    /* B: the base, timeline 1's log, timeline 2's log and history */
    struct engine_tl_hop path[2] = {{.timeline = 1, .until_lsn = swA},
                                    {.timeline = 2, .start_lsn = startA,
                                     .until_lsn = UINT64_MAX}};
    size_t k20 = 0;
    for (size_t i = 1, nc = 0; i < h2.n; i++)
        if (h2.e[i].commit && ++nc == 20)
            k20 = i;
    assert_true(k20 > 0);
    struct {
        struct replay_target t;
        const char *what;
        size_t idx; /* in h2 */
        bool from_tl1;
    } cases[] = {
        {{.kind = REPLAY_TO_TXN, .inclusive = true, .txn = h2.e[k20].ci.txn_id}, "txn on 2",
         k20, false},
        {{.kind = REPLAY_TO_END}, "end of 2", h2.n - 1, false},
        {{.kind = REPLAY_TO_NAME}, "name on 2", rp2[1].before, false},
        {{.kind = REPLAY_TO_LSN, .inclusive = false, .lsn = h2.e[1].ci.commit_lsn},
         "before 2's first commit", 0, true},
    };
    snprintf(cases[2].t.name, sizeof cases[2].t.name, "%s", rp2[1].name);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char B[600], from[700], to[700];
        make_input(B, sizeof B, "B");
        snprintf(from, sizeof from, "%s/wal", A);
        snprintf(to, sizeof to, "%s/wal", B);
        copy_files(from, to, wal_and_hist, 2);
        struct engine_restore_opts ob = {.hops = path, .nhops = 2, .target = cases[i].t,
                                         .jobs = 4, .new_timeline = 3};
        struct engine_restore_result r;
        cairn_status st = engine_restore(B, &ob, &r);
        if (st)
            fail_msg("restore to %s: %s: %s", cases[i].what, cairn_status_name(st),
                     cairn_last_error());
        char hist3[200];
        if (cases[i].from_tl1) {
            /* nothing of timeline 2 applied: the branch is from timeline 1 */
            assert_int_equal(r.parent_timeline, 1);
            assert_int_equal(r.switch_lsn, swA);
            snprintf(hist3, sizeof hist3, "1 %016" PRIX64 " %016" PRIX64 "\n", swA,
                     r.new_start_lsn);
        } else {
            assert_int_equal(r.parent_timeline, 2);
            assert_true(r.switch_lsn > startA);
            snprintf(hist3, sizeof hist3, "%s2 %016" PRIX64 " %016" PRIX64 "\n", hist2,
                     r.switch_lsn, r.new_start_lsn);
        }
        check_wal_dir(B, &r, 3, hist3);
        check_restored(B, &r, 3, h2.e[cases[i].idx].hash);
        print_message("two hops to %-24s: %" PRIu64 " records, %" PRIu64
                      " transactions, switch LSN %" PRIu64 " on timeline %" PRIu32 "\n",
                      cases[i].what, r.replay.records, r.replay.txns_applied, r.switch_lsn,
                      r.parent_timeline);
        tu_rm_rf(B);
    }

    /* timeline 1's abandoned future is never read on this path */
    char B[600], from[700], to[700];
    make_input(B, sizeof B, "B");
    snprintf(from, sizeof from, "%s/wal", A);
    snprintf(to, sizeof to, "%s/wal", B);
    copy_files(from, to, wal_and_hist, 2);
    struct tu_tree before;
    take_tree(&before, B);
    uint64_t max2 = 0;
    for (size_t i = 1; i < h2.n; i++)
        if (h2.e[i].commit && h2.e[i].ci.txn_id > max2)
            max2 = h2.e[i].ci.txn_id;
    const struct entry *fut = &S.h.e[S.h.n - 1];
    assert_true(fut->ci.txn_id > max2);
    struct engine_restore_opts ob = {.hops = path, .nhops = 2,
                                     .target = {.kind = REPLAY_TO_TXN, .inclusive = true,
                                                .txn = fut->ci.txn_id},
                                     .new_timeline = 3};
    struct engine_restore_result r;
    assert_int_equal(engine_restore(B, &ob, &r), CAIRN_ENOTFOUND);
    expect_msg("not reached");
    expect_msg("timeline 2");
    assert_unchanged(&before, B);
    tu_tree_free(&before);

    /* timeline 1's log lost from the segment holding the branch on, while
     * timeline 2's is there: never an earlier state of timeline 1 with
     * timeline 2's commits on top */
    assert_true((swA & ~(SEG - 1)) > (S.pi.redo_lsn & ~(SEG - 1)));
    for (uint64_t s = swA & ~(SEG - 1);; s += SEG) {
        char p[900];
        seg_path(p, sizeof p, B, 1, s);
        if (unlink(p) != 0)
            break;
    }
    take_tree(&before, B);
    ob.target = (struct replay_target){.kind = REPLAY_TO_END};
    assert_int_equal(engine_restore(B, &ob, &r), CAIRN_ENOTFOUND);
    char lsn[64];
    snprintf(lsn, sizeof lsn, "before LSN %" PRIu64 " where the path goes on to timeline 2", swA);
    expect_msg("the log of timeline 1 ends at LSN");
    expect_msg(lsn);
    assert_unchanged(&before, B);
    tu_tree_free(&before);
    tu_rm_rf(B);
    tu_rm_rf(A);
    free(h2.e);
}

/* ---- 3 ----------------------------------------------------------------------------- */

static void refuse(const char *dir, const struct engine_restore_opts *o, cairn_status want,
                   const char *part1, const char *part2)
{
    struct tu_tree before;
    take_tree(&before, dir);
    struct engine_restore_result r;
    cairn_status st = engine_restore(dir, o, &r);
    if (st != want)
        fail_msg("expected %s, got %s: %s", cairn_status_name(want), cairn_status_name(st),
                 cairn_last_error());
    print_message("refused (%s): %s\n", cairn_status_name(st), cairn_last_error());
    expect_msg(part1);
    if (part2)
        expect_msg(part2);
    assert_unchanged(&before, dir);
    tu_tree_free(&before);
}

static void test_refusals(void **state)
{
    (void)state;
    const struct replay_target end = {.kind = REPLAY_TO_END};
    char dir[600];
    make_input(dir, sizeof dir, "r");
    struct engine_tl_hop h1 = {.timeline = 1, .until_lsn = UINT64_MAX};
    struct engine_restore_opts o = one_hop(&h1, &end, 2, 1);
    refuse(dir, &o, CAIRN_EINVAL, "new timeline 1", NULL);

    struct engine_tl_hop h2 = {.timeline = 2, .until_lsn = UINT64_MAX};
    o = one_hop(&h2, &end, 2, 3);
    refuse(dir, &o, CAIRN_EINVAL, "starts on timeline 2", "on timeline 1");

    struct engine_tl_hop early[2] = {
        {.timeline = 1, .until_lsn = S.pi.redo_lsn - 8},
        {.timeline = 2, .start_lsn = next_start(S.pi.redo_lsn), .until_lsn = UINT64_MAX}};
    o = (struct engine_restore_opts){.hops = early, .nhops = 2, .target = end,
                                     .new_timeline = 3};
    refuse(dir, &o, CAIRN_EINVAL, "before the checkpoint's redo LSN", NULL);

    struct engine_tl_hop odd[2] = {
        {.timeline = 1, .until_lsn = S.pi.redo_lsn + 64},
        {.timeline = 2, .start_lsn = next_start(S.pi.redo_lsn) + 8, .until_lsn = UINT64_MAX}};
    o.hops = odd;
    refuse(dir, &o, CAIRN_EINVAL, "not at the data offset", NULL);

    struct engine_tl_hop back[2] = {{.timeline = 2, .until_lsn = 100},
                                    {.timeline = 1, .start_lsn = 4096,
                                     .until_lsn = UINT64_MAX}};
    o.hops = back;
    refuse(dir, &o, CAIRN_EINVAL, "not after hop 0's timeline", NULL);

    struct replay_target far = {.kind = REPLAY_TO_TXN, .inclusive = true, .txn = 1u << 30};
    o = one_hop(&h1, &far, 2, 2);
    refuse(dir, &o, CAIRN_ENOTFOUND, "not reached", "timeline 1");
    struct replay_target late = {.kind = REPLAY_TO_LSN, .inclusive = true, .lsn = 1ull << 40};
    o = one_hop(&h1, &late, 2, 2);
    refuse(dir, &o, CAIRN_ENOTFOUND, "not reached", "LSN");
    struct replay_target noname = {.kind = REPLAY_TO_NAME, .name = "nosuchpoint"};
    o = one_hop(&h1, &noname, 2, 2);
    refuse(dir, &o, CAIRN_ENOTFOUND, "nosuchpoint", NULL);

    /* a path contradicting the history file of its timeline; the branch
     * lies two segments after the base's redo LSN */
    size_t m = plain_commit_at((S.pi.redo_lsn & ~(SEG - 1)) + 2 * SEG);
    uint64_t sw = S.h.e[m].ci.commit_lsn + commit_size();
    char hp[800], text[80];
    snprintf(hp, sizeof hp, "%s/wal/00000002.history", dir);
    snprintf(text, sizeof text, "1 %016" PRIX64 " %016" PRIX64 "\n", sw, next_start(sw));
    FILE *f = fopen(hp, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    struct engine_tl_hop wrong[2] = {
        {.timeline = 1, .until_lsn = sw + 4096},
        {.timeline = 2, .start_lsn = next_start(sw), .until_lsn = UINT64_MAX}};
    o = (struct engine_restore_opts){.hops = wrong, .nhops = 2, .target = end,
                                     .new_timeline = 3};
    refuse(dir, &o, CAIRN_EINVAL, "does not match its history file", "00000002.history");
    /* a damaged history file is named */
    f = fopen(hp, "w");
    fputs("00000001 XYZ\n", f);
    fclose(f);
    wrong[0].until_lsn = sw;
    refuse(dir, &o, CAIRN_ECORRUPT, "00000002.history", "offset 0");
    f = fopen(hp, "w");
    fprintf(f, "1 %016" PRIX64 " %016" PRIX64 "\n", sw, sw + 8);
    fclose(f);
    refuse(dir, &o, CAIRN_ECORRUPT, "00000002.history", "does not follow");
    unlink(hp);

    /* the path goes on to timeline 2, but timeline 1's log ends before the
     * branch: its segments from the one holding the branch on are gone */
    struct engine_tl_hop path[2] = {
        {.timeline = 1, .until_lsn = sw},
        {.timeline = 2, .start_lsn = next_start(sw), .until_lsn = UINT64_MAX}};
    o = (struct engine_restore_opts){.hops = path, .nhops = 2, .target = end,
                                     .new_timeline = 3};
    assert_true((sw & ~(SEG - 1)) > (S.pi.redo_lsn & ~(SEG - 1)) + SEG);
    for (uint64_t s = sw & ~(SEG - 1);; s += SEG) {
        char p[900];
        seg_path(p, sizeof p, dir, 1, s);
        if (unlink(p) != 0)
            break;
    }
    char lsn[40];
    snprintf(lsn, sizeof lsn, "before LSN %" PRIu64, sw);
    refuse(dir, &o, CAIRN_ENOTFOUND, "the log of timeline 1 ends at LSN", lsn);
    /* the same for the last hop: the target lies beyond */
    struct replay_target tx = {.kind = REPLAY_TO_TXN, .inclusive = true,
                               .txn = S.h.e[m].ci.txn_id};
    o = one_hop(&h1, &tx, 2, 2);
    refuse(dir, &o, CAIRN_ENOTFOUND, "not reached", "timeline 1");
    tu_rm_rf(dir);

    /* a segment missing with later ones present: the reader calls it damage */
    make_input(dir, sizeof dir, "r");
    char p[900];
    seg_path(p, sizeof p, dir, 1, (sw & ~(SEG - 1)) - SEG);
    assert_int_equal(unlink(p), 0);
    o = (struct engine_restore_opts){.hops = path, .nhops = 2, .target = end,
                                     .new_timeline = 3};
    refuse(dir, &o, CAIRN_ECORRUPT, strrchr(p, '/') + 1, "timeline 1");

    /* an unfinished restore: cairn_open and another restore refuse it */
    char mk[800];
    snprintf(mk, sizeof mk, "%s/restore-incomplete", dir);
    f = fopen(mk, "w");
    assert_non_null(f);
    fclose(f);
    cairn_db *db = NULL;
    cairn_options oo = opts();
    assert_int_equal(cairn_open(dir, &oo, &db), CAIRN_ECORRUPT);
    expect_msg("restore-incomplete");
    o = one_hop(&h1, &end, 2, 2);
    refuse(dir, &o, CAIRN_ECORRUPT, "restore-incomplete", NULL);
    tu_rm_rf(dir);
}

/* ---- 4 ----------------------------------------------------------------------------- */

static void test_faults(void **state)
{
    (void)state;
    size_t m = plain_commit(150);
    struct replay_target t = {.kind = REPLAY_TO_TXN, .inclusive = true,
                              .txn = S.h.e[m].ci.txn_id};
    struct engine_tl_hop h1 = {.timeline = 1, .until_lsn = UINT64_MAX};
    struct engine_restore_opts o = one_hop(&h1, &t, 2, 2);
    const unsigned mask = CIO_FOP_WRITE | CIO_FOP_SYNC | CIO_FOP_META;
    char dir[600];
    make_input(dir, sizeof dir, "f");
    struct cio_fault_plan count = {.ops = mask, .nth = UINT64_MAX, .kind = CIO_FAULT_EIO};
    cio_fault_set(&count);
    struct engine_restore_result r;
    cairn_status st = engine_restore(dir, &o, &r);
    uint64_t nops = cio_fault_count();
    cio_fault_set(NULL);
    must(st, "restore without faults");
    tu_rm_rf(dir);
    print_message("faults: a restore makes %" PRIu64 " write/sync/metadata operations\n", nops);
    assert_true(nops > 5);
    unsigned done = 0, refused = 0, untouched = 0;
    for (uint64_t nth = 1; nth <= nops; nth++) {
        for (int kind = 0; kind < 2; kind++) {
            if (kind == 1 && nth % 4 != 1)
                continue; /* ENOSPC from there on: a sample */
            make_input(dir, sizeof dir, "f");
            struct tu_tree before;
            take_tree(&before, dir);
            struct cio_fault_plan p = {.ops = mask, .nth = nth,
                                       .kind = kind ? CIO_FAULT_ENOSPC : CIO_FAULT_EIO,
                                       .persistent = kind};
            cio_fault_set(&p);
            st = engine_restore(dir, &o, &r);
            uint64_t fired = cio_fault_fired();
            cio_fault_set(NULL);
            if (st == CAIRN_OK) {
                /* the failure hit an operation whose failure is not one */
                check_restored(dir, &r, 2, S.h.e[m].hash);
                done++;
            } else {
                assert_true(fired > 0);
                assert_int_equal(st, kind ? CAIRN_ENOSPC : CAIRN_EIO);
                assert_true(cairn_last_error()[0] != 0);
                if (exists(dir, "restore-incomplete")) {
                    cairn_db *db = NULL;
                    cairn_options oo = opts();
                    assert_int_equal(cairn_open(dir, &oo, &db), CAIRN_ECORRUPT);
                    expect_msg("restore-incomplete");
                    refused++;
                } else {
                    assert_unchanged(&before, dir);
                    untouched++;
                }
            }
            tu_tree_free(&before);
            tu_rm_rf(dir);
        }
    }
    print_message("faults: %u restores completed, %u failed and refused, %u failed and "
                  "changed nothing\n", done, refused, untouched);
    assert_true(refused > 0 && untouched > 0);
}

/* ---- 5 ----------------------------------------------------------------------------- */

struct prog_log {
    unsigned calls;
    uint64_t records, bytes, lsn;
    int64_t time_us;
    unsigned cancel_at;
};

static int on_progress(void *ctx, uint64_t records, uint64_t wal_bytes, uint64_t lsn,
                       int64_t commit_time_us)
{
    struct prog_log *p = ctx;
    assert_true(records >= p->records);
    p->calls++;
    p->records = records;
    p->bytes = wal_bytes;
    p->lsn = lsn;
    p->time_us = commit_time_us;
    return p->cancel_at && p->calls >= p->cancel_at;
}

static void test_progress(void **state)
{
    (void)state;
    char dir[600];
    make_input(dir, sizeof dir, "p");
    struct engine_tl_hop h1 = {.timeline = 1, .until_lsn = UINT64_MAX};
    struct replay_target end = {.kind = REPLAY_TO_END};
    struct prog_log pl = {.cancel_at = 1};
    struct engine_restore_opts o = one_hop(&h1, &end, 2, 2);
    o.progress = on_progress;
    o.progress_ctx = &pl;
    refuse(dir, &o, CAIRN_ECANCELED, "canceled", NULL);
    assert_int_equal(pl.calls, 1);
    pl = (struct prog_log){0};
    struct engine_restore_result r;
    must(engine_restore(dir, &o, &r), "restore with progress");
    assert_true(pl.calls >= 1);
    assert_int_equal(pl.records, r.replay.records);
    assert_true(pl.bytes > 0);
    assert_true(pl.time_us == r.replay.last_commit_time_us);
    assert_true(pl.time_us == S.h.e[S.h.n - 1].ci.commit_time_us);
    print_message("progress: %u call(s), last: %" PRIu64 " records, %" PRIu64 " bytes\n",
                  pl.calls, pl.records, pl.bytes);
    tu_rm_rf(dir);
}

/* ---- 7 ----------------------------------------------------------------------------- */

/* Pre-writes during the replay, and two more rounds after it (drain):
 * pre-writes happen however short the replay. */
static void with_prewrites(struct engine_restore_opts *o)
{
    o->prewrite = true;
    o->prewrite_period_us = 1000;
    o->prewrite_drain = true;
}

static void test_prewrite(void **state)
{
    (void)state;
    size_t m = plain_commit(200);
    const struct replay_target targets[2] = {
        {.kind = REPLAY_TO_END},
        {.kind = REPLAY_TO_TXN, .inclusive = true, .txn = S.h.e[m].ci.txn_id}};
    struct engine_tl_hop h1 = {.timeline = 1, .until_lsn = UINT64_MAX};
    char dir[600];
    struct engine_restore_result r;
    for (int i = 0; i < 2; i++) {
        make_input(dir, sizeof dir, "w");
        struct engine_restore_opts o = one_hop(&h1, &targets[i], i ? 4 : 1, 2);
        with_prewrites(&o);
        must(engine_restore(dir, &o, &r), "restore with pre-writes");
        print_message("pre-writes: %" PRIu64 " page(s) during and after a replay of %" PRIu64
                      " records, then checkpoint %" PRIu64 "\n", r.prewritten,
                      r.replay.records, r.checkpoint);
        assert_true(r.prewritten > 0);
        check_restored(dir, &r, 2, S.h.e[expect(&S.h, &targets[i], S.rp, S.nrp)].hash);
        tu_rm_rf(dir);
    }

    make_input(dir, sizeof dir, "w");
    struct replay_target far = {.kind = REPLAY_TO_TXN, .inclusive = true, .txn = 1u << 30};
    struct engine_restore_opts o = one_hop(&h1, &far, 2, 2);
    with_prewrites(&o);
    assert_int_equal(engine_restore(dir, &o, &r), CAIRN_ENOTFOUND);
    expect_msg("not reached");
    assert_true(r.prewritten > 0);
    assert_false(exists(dir, "restore-incomplete"));
    o = one_hop(&h1, &targets[1], 2, 2);
    must(engine_restore(dir, &o, &r), "restore after a failed one with pre-writes");
    check_restored(dir, &r, 2, S.h.e[m].hash);
    tu_rm_rf(dir);

    /* a pre-write that fails (every write from the first on: the
     * pre-writer's are the first a restore makes) fails the restore after
     * the replay, naming it, before the marker; the directory still
     * restores to the oracle's state */
    make_input(dir, sizeof dir, "w");
    o = one_hop(&h1, &targets[0], 2, 2);
    with_prewrites(&o);
    struct cio_fault_plan p = {.ops = CIO_FOP_WRITE, .nth = 1, .kind = CIO_FAULT_ENOSPC,
                               .persistent = 1};
    cio_fault_set(&p);
    cairn_status st = engine_restore(dir, &o, &r);
    uint64_t fired = cio_fault_fired();
    cio_fault_set(NULL);
    assert_int_equal(st, CAIRN_ENOSPC);
    assert_true(fired > 0);
    expect_msg("pre-writ");
    assert_false(exists(dir, "restore-incomplete"));
    o = one_hop(&h1, &targets[1], 2, 2);
    must(engine_restore(dir, &o, &r), "restore after a failed pre-write");
    check_restored(dir, &r, 2, S.h.e[m].hash);
    tu_rm_rf(dir);
}

/* ---- 6 ----------------------------------------------------------------------------- */

static const struct rpoint *rp_named(const char *name)
{
    for (size_t i = 0; i < S.nrp; i++)
        if (strcmp(S.rp[i].name, name) == 0)
            return &S.rp[i];
    fail_msg("no restore point %s", name);
    return NULL;
}

static bool name_in(const char *name, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return true;
    return false;
}

/* The oracle of a partial restore: a full restore to t (checked against
 * the source's state), the collections not in names dropped. *left_out:
 * how many were dropped. */
static uint64_t partial_oracle(const struct replay_target *t, const char *const *names,
                               size_t n, uint32_t *left_out)
{
    char dir[600];
    make_input(dir, sizeof dir, "po");
    struct engine_tl_hop hop = {.timeline = 1, .until_lsn = UINT64_MAX};
    struct engine_restore_opts o = one_hop(&hop, t, 2, 2);
    struct engine_restore_result r;
    must(engine_restore(dir, &o, &r), "full restore for the oracle");
    cairn_db *db = must_open(dir);
    assert_true(state_hash(db) == S.h.e[expect(&S.h, t, S.rp, S.nrp)].hash);
    cairn_collection_info *list = NULL;
    size_t nl = 0;
    must(cairn_collection_list(db, &list, &nl), "list");
    *left_out = 0;
    for (size_t i = 0; i < nl; i++)
        if (!name_in(list[i].name, names, n)) {
            must(cairn_collection_drop(db, list[i].name), "drop");
            (*left_out)++;
        }
    cairn_free(list);
    uint64_t h = state_hash(db);
    must(cairn_close(db), "close");
    tu_rm_rf(dir);
    return h;
}

static void test_partial(void **state)
{
    (void)state;
    const char *const only_extra[] = {EXTRA};
    const char *const small_wide[] = {"small", "wide"};
    const char *const extra_mid[] = {"mid", EXTRA};
    struct replay_target at131 = {.kind = REPLAY_TO_NAME};
    snprintf(at131.name, sizeof at131.name, "%s", rp_named("rp131")->name);
    const struct replay_target end = {.kind = REPLAY_TO_END};
    struct {
        const struct replay_target *t;
        const char *const *names;
        size_t n;
        unsigned jobs;
        const char *what;
    } cases[] = {
        {&at131, only_extra, 1, 4, "extra at rp131"},
        {&at131, small_wide, 2, 1, "small+wide at rp131"},
        {&end, extra_mid, 2, 4, "mid+extra at the end"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint32_t left_out = 0;
        uint64_t want = partial_oracle(cases[i].t, cases[i].names, cases[i].n, &left_out);
        char dir[600];
        make_input(dir, sizeof dir, "p");
        struct engine_tl_hop hop = {.timeline = 1, .until_lsn = UINT64_MAX};
        struct engine_restore_opts o = one_hop(&hop, cases[i].t, cases[i].jobs, 2);
        o.only_names = cases[i].names;
        o.nonly = cases[i].n;
        struct engine_restore_result r;
        cairn_status st = engine_restore(dir, &o, &r);
        if (st)
            fail_msg("partial restore %s: %s: %s", cases[i].what, cairn_status_name(st),
                     cairn_last_error());
        assert_int_equal(r.collections, cases[i].n);
        assert_true(r.replay.records_skipped > 0); /* the filter skipped, not applied */
        assert_false(exists(dir, "restore-incomplete"));
        /* the new timeline's log: one DROP_COLL transaction per collection
         * left out, then nothing */
        char waldir[700];
        snprintf(waldir, sizeof waldir, "%s/wal", dir);
        wal_reader *wr = NULL;
        must(wal_reader_open(waldir, 2, r.new_start_lsn, &wr), "reader");
        uint32_t drops = 0, commits = 0, others = 0;
        for (;;) {
            struct wal_record rec;
            bool eol = false;
            must(wal_reader_next(wr, &rec, &eol), "read the new timeline");
            if (eol)
                break;
            if (rec.type == WAL_REC_DROP_COLL)
                drops++;
            else if (rec.type == WAL_REC_COMMIT)
                commits++;
            else if (rec.type != WAL_REC_SWITCH)
                others++;
        }
        wal_reader_close(wr);
        assert_int_equal(drops, left_out);
        assert_int_equal(commits, left_out);
        assert_int_equal(others, 0);
        /* opens from the restore's checkpoint, replaying nothing, with the
         * oracle's state; checks clean; takes commits */
        cairn_db *db = must_open(dir);
        cairn_stats s;
        must(cairn_stats_get(db, &s), "stats");
        assert_int_equal(s.timeline, 2);
        assert_int_equal(s.recovery.checkpoint, r.checkpoint);
        assert_int_equal(s.recovery.records_replayed, 0);
        if (state_hash(db) != want)
            fail_msg("partial restore %s: state differs from the oracle's", cases[i].what);
        cairn_check_report rep;
        must(cairn_check(db, &rep), "check of the partially restored database");
        for (size_t k = 0; k < cases[i].n; k++) {
            cairn_collection_info ci;
            must(cairn_collection_stat(db, cases[i].names[k], &ci), "stat");
        }
        must(cairn_close(db), "close");
        print_message("partial restore %-22s: %" PRIu32 " collection(s), %" PRIu64
                      " points, %" PRIu64 " of %" PRIu64 " records skipped, %" PRIu32
                      " dropped on timeline 2\n", cases[i].what, r.collections, r.points,
                      r.replay.records_skipped, r.replay.records, left_out);
        tu_rm_rf(dir);
    }

    /* names with no collection at the target, and an invalid one */
    struct replay_target at168 = {.kind = REPLAY_TO_NAME}, at57 = {.kind = REPLAY_TO_NAME};
    snprintf(at168.name, sizeof at168.name, "%s", rp_named("rp168")->name);
    snprintf(at57.name, sizeof at57.name, "%s", rp_named("rp57")->name);
    const char *const nope[] = {"small", "nope"};
    const char *const bad[] = {"a/b"};
    char dir[600];
    make_input(dir, sizeof dir, "pr");
    struct engine_tl_hop hop = {.timeline = 1, .until_lsn = UINT64_MAX};
    struct engine_restore_opts o = one_hop(&hop, &at168, 2, 2);
    o.only_names = only_extra;
    o.nonly = 1;
    refuse(dir, &o, CAIRN_ENOTFOUND, "collection \"extra\" does not exist at the target",
           NULL);
    o.target = at57;
    refuse(dir, &o, CAIRN_ENOTFOUND, "collection \"extra\" does not exist at the target",
           NULL);
    o.target = end;
    o.only_names = nope;
    o.nonly = 2;
    refuse(dir, &o, CAIRN_ENOTFOUND, "collection \"nope\" does not exist", NULL);
    o.only_names = bad;
    o.nonly = 1;
    refuse(dir, &o, CAIRN_ENAME, "selected collection 0", NULL);
    tu_rm_rf(dir);
}

int main(void)
{
    tu_quiet_log();
    g_seed = tu_seed("restore", 20261205);
    if (tu_tmpbase(tmpbase, sizeof tmpbase, "restore") != 0) {
        perror("tmpbase");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_targets),
        cmocka_unit_test(test_two_hops),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_faults),
        cmocka_unit_test(test_progress),
        cmocka_unit_test(test_partial),
        cmocka_unit_test(test_prewrite),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    if (rc == 0)
        tu_rm_rf(tmpbase);
    return rc;
}
