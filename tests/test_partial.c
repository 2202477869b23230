/*
 * test_partial.c — partial restore through pitr/ (pitr_restore_opts
 * .collections, `pitrctl restore --collection`): the selected collections
 * come back as they were at the target, the others are absent.
 *
 * The source (SYNC, the smallest WAL segments, no background
 * checkpoint, every segment kept for the archive): tu_mix_create, a
 * checkpoint and a full backup, seeded tu_mix_txn transactions, "extra"
 * created after the backup and written (some transactions span "extra"
 * and "small"), the restore point "mid", "extra" dropped, the restore
 * point "gone", "extra" created again and written; then archived.
 *
 * 1. restore to "mid" with only "extra" and "wide", and to the end with
 *    only "extra" (the second one) and "small": the oracle is a full
 *    restore to the same target (checked against the source's state at
 *    "mid", or at the end) with the other collections dropped; the
 *    partial one has exactly its state (ids included), exactly the
 *    selected collections, opens on a new timeline replaying nothing,
 *    checks clean.
 * 2. a dry run with a selection plans (and writes nothing); an invalid
 *    name is refused by the dry run; names with no collection at the
 *    target ("extra" at "gone", "nope") are CAIRN_ENOTFOUND naming them,
 *    leaving neither the target nor "<target>.partial".
 *
 * 3. into an existing database (pitr_restore_opts.into_existing,
 *    `--into-existing`): "extra" and "wide" at "mid" replace those of the
 *    source database itself; the oracle is a copy of the database with
 *    those collections copied point by point, through the public API,
 *    from a full restore to "mid"; the database is on a new timeline,
 *    checks clean, goes on writing, and the repository restores it along
 *    the new timeline (the graft replayed from the old timeline's base)
 *    and along the old one (its state before). Refusals (no names, a name
 *    twice, a name not at the target, the database open elsewhere,
 *    another database, no database, a symbolic link, a work directory not
 *    ours) leave it as it was; SIGKILLs at random moments of a replace
 *    (CAIRN_KILLS, default 12) leave it as its old or its new self, and the
 *    next run finishes.
 *
 * Seeded: CAIRN_SEED replays a run.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cairn.h"
#include "common/io.h"
#include "pitr/pitr.h"
#include "pitr/repo.h"
#include "testutil.h"
#include "testutil_cmocka.h"

static char tmpbase[512];
static uint64_t g_seed;
static int dircount;

static struct {
    char db[600], repo[600];
    uint64_t h_mid, h_end; /* state hashes of the source at "mid" and at the end */
} W;

static void new_dir(char *out, size_t n, const char *what)
{
    snprintf(out, n, "%s/%s%d", tmpbase, what, dircount++);
}

static bool exists(const char *p)
{
    struct stat sb;
    return lstat(p, &sb) == 0;
}

/* FNV-1a over the state digest (ids and bytes included). */
static uint64_t state_hash(cairn_db *db)
{
    return must_state_hash(db, TU_DIG_ID_BYTES);
}

static uint64_t keep_all(void *ctx)
{
    (void)ctx;
    return 0; /* nothing archived yet: every segment stays */
}

/* A transaction over "extra" and "small". */
static void spanning_txn(cairn_db *db, uint64_t *rng)
{
    cairn_txn *t = NULL;
    must(cairn_txn_begin(db, &t), "begin");
    float v[8], s[4];
    for (int k = 0; k < 3; k++) {
        tu_fill_vec(rng, v, 8, -1, 1);
        must(cairn_txn_upsert(t, "extra", tu_splitmix(rng) % 40, v, 8, "{\"e\":1}", 7),
             "upsert extra");
    }
    tu_fill_vec(rng, s, 4, -1, 1);
    must(cairn_txn_upsert(t, "small", tu_splitmix(rng) % 300, s, 4, NULL, 0), "upsert small");
    must(cairn_txn_delete(t, "small", tu_splitmix(rng) % 300), "delete small");
    must(cairn_txn_commit(t, NULL), "commit");
    cairn_txn_free(t);
}

static int setup(void **state)
{
    (void)state;
    snprintf(W.db, sizeof W.db, "%s/db", tmpbase);
    snprintf(W.repo, sizeof W.repo, "%s/repo", tmpbase);
    repo *r = NULL;
    struct repo_open_opts ro = {.create = true};
    must(repo_open(W.repo, &ro, &r), "repo");
    cairn_options o;
    cairn_options_init(&o);
    o.create_if_missing = 1;
    o.wal_segment_size = CAIRN_WAL_SEGMENT_MIN;
    o.checkpoint_wal_bytes = UINT64_MAX;
    o.wal_retain = keep_all;
    cairn_db *db = must_open_o(W.db, &o);
    uint64_t rng = g_seed;
    must(tu_mix_create(db), "create");
    for (int i = 0; i < 10; i++)
        must(tu_mix_txn(db, &rng, NULL), "txn");
    must(cairn_checkpoint(db, NULL), "checkpoint");
    struct pitr_backup_opts bo = {0};
    struct pitr_backup_result br;
    must(pitr_backup(W.db, r, &bo, &br), "backup");
    for (int i = 0; i < 30; i++)
        must(tu_mix_txn(db, &rng, NULL), "txn");
    must(cairn_collection_create(db, "extra", 8, CAIRN_METRIC_L2), "create extra");
    for (int i = 0; i < 30; i++) {
        if (i % 3 == 0)
            spanning_txn(db, &rng);
        else
            must(tu_mix_txn(db, &rng, NULL), "txn");
    }
    W.h_mid = state_hash(db);
    must(cairn_restore_point(db, "mid", NULL), "restore point");
    for (int i = 0; i < 10; i++)
        spanning_txn(db, &rng);
    must(cairn_collection_drop(db, "extra"), "drop extra");
    must(cairn_restore_point(db, "gone", NULL), "restore point");
    for (int i = 0; i < 10; i++)
        must(tu_mix_txn(db, &rng, NULL), "txn");
    must(cairn_collection_create(db, "extra", 8, CAIRN_METRIC_L2), "create extra again");
    for (int i = 0; i < 10; i++)
        spanning_txn(db, &rng);
    W.h_end = state_hash(db);
    /* the archive takes complete segments: close the last one */
    must(cairn_wal_switch(db, NULL), "switch");
    must(cairn_close(db), "close");
    struct pitr_archive_result ar;
    must(pitr_archive(W.db, r, 0, &ar), "archive");
    repo_close(r);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return 0;
}

static repo *open_repo(void)
{
    repo *r = NULL;
    struct repo_open_opts ro = {0};
    must(repo_open(W.repo, &ro, &r), "repo");
    return r;
}

static bool in(const char *name, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(name, names[i]))
            return true;
    return false;
}

/* ---- 1 ----------------------------------------------------------------------------- */

static void restore_to(repo *r, const char *name, const char *const *colls, size_t n,
                       char *dir, size_t dn, struct pitr_restore_result *res)
{
    new_dir(dir, dn, "t");
    struct pitr_restore_opts o = {.kind = name ? PITR_TARGET_NAME : PITR_TARGET_LATEST,
                                  .name = name,
                                  .jobs = 2,
                                  .collections = colls,
                                  .ncollections = n};
    cairn_status st = pitr_restore(r, dir, &o, res);
    if (st)
        fail_msg("restore to %s: %s: %s", name ? name : "the end", cairn_status_name(st),
                 cairn_last_error());
    pitr_plan_free(&res->plan);
}

static void check_partial(repo *r, const char *target, uint64_t source_hash,
                          const char *const *colls, size_t n)
{
    /* the oracle: everything, then the others dropped */
    char full[600], part[600];
    struct pitr_restore_result res;
    restore_to(r, target, NULL, 0, full, sizeof full, &res);
    cairn_db *db = must_open(full);
    assert_true(state_hash(db) == source_hash);
    cairn_collection_info *list = NULL;
    size_t nl = 0;
    must(cairn_collection_list(db, &list, &nl), "list");
    for (size_t i = 0; i < nl; i++)
        if (!in(list[i].name, colls, n))
            must(cairn_collection_drop(db, list[i].name), "drop");
    cairn_free(list);
    uint64_t want = state_hash(db);
    must(cairn_close(db), "close");

    restore_to(r, target, colls, n, part, sizeof part, &res);
    assert_int_equal(res.collections, n);
    char pp[700];
    snprintf(pp, sizeof pp, "%s.partial", part);
    assert_false(exists(pp));
    db = must_open(part);
    cairn_stats s;
    must(cairn_stats_get(db, &s), "stats");
    assert_int_equal(s.timeline, res.new_timeline);
    assert_int_equal(s.recovery.records_replayed, 0);
    if (state_hash(db) != want)
        fail_msg("partial restore to %s: state differs from the oracle's",
                 target ? target : "the end");
    must(cairn_collection_list(db, &list, &nl), "list");
    assert_int_equal(nl, n);
    for (size_t i = 0; i < nl; i++)
        assert_true(in(list[i].name, colls, n));
    cairn_free(list);
    cairn_check_report rep;
    must(cairn_check(db, &rep), "check");
    must(cairn_close(db), "close");
    print_message("partial restore to %s: %zu collection(s), %" PRIu64 " points, timeline %u\n",
                  target ? target : "the end", n, res.points, res.new_timeline);
    tu_rm_rf(full);
    tu_rm_rf(part);
}

static void test_restores(void **state)
{
    (void)state;
    repo *r = open_repo();
    const char *const mid[] = {"extra", "wide"};
    check_partial(r, "mid", W.h_mid, mid, 2);
    const char *const end[] = {"small", "extra"};
    check_partial(r, NULL, W.h_end, end, 2);
    repo_close(r);
}

/* ---- 2 ----------------------------------------------------------------------------- */

/* st is want, and its message says words (when given); printed. */
static void expect(cairn_status st, cairn_status want, const char *words)
{
    if (st != want)
        fail_msg("expected %s, got %s: %s", cairn_status_name(want), cairn_status_name(st),
                 cairn_last_error());
    if (words && !strstr(cairn_last_error(), words))
        fail_msg("message does not say \"%s\": %s", words, cairn_last_error());
    if (st)
        print_message("refused (%s): %s\n", cairn_status_name(st), cairn_last_error());
}

static void refused(repo *r, const char *target, const char *const *colls, size_t n,
                    bool dry, cairn_status want, const char *words)
{
    char dir[600], pp[700];
    new_dir(dir, sizeof dir, "x");
    snprintf(pp, sizeof pp, "%s.partial", dir);
    struct pitr_restore_opts o = {.kind = target ? PITR_TARGET_NAME : PITR_TARGET_LATEST,
                                  .name = target,
                                  .dry_run = dry,
                                  .collections = colls,
                                  .ncollections = n};
    struct pitr_restore_result res;
    cairn_status st = pitr_restore(r, dir, &o, &res);
    pitr_plan_free(&res.plan);
    expect(st, want, words);
    assert_false(exists(dir));
    assert_false(exists(pp));
}

static void test_refusals(void **state)
{
    (void)state;
    repo *r = open_repo();
    const char *const extra[] = {"extra"};
    const char *const nope[] = {"small", "nope"};
    const char *const bad[] = {"a/b"};
    refused(r, "gone", extra, 1, true, CAIRN_OK, NULL); /* a dry run does not replay */
    refused(r, "gone", extra, 1, false, CAIRN_ENOTFOUND,
            "collection \"extra\" does not exist at the target");
    refused(r, NULL, nope, 2, false, CAIRN_ENOTFOUND, "collection \"nope\" does not exist");
    refused(r, NULL, bad, 1, true, CAIRN_ENAME, "--collection");
    repo_close(r);
}

/* ---- 3: into an existing database ------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* FNV-1a over the state digest without collection ids and bytes: a
 * replaced collection has a new id. */
static uint64_t plain_hash(cairn_db *db)
{
    return must_state_hash(db, 0);
}

static uint64_t dir_hash(const char *dir, bool ids, uint32_t *timeline)
{
    cairn_db *db = must_open(dir);
    uint64_t h = ids ? state_hash(db) : plain_hash(db);
    if (timeline) {
        cairn_stats s;
        must(cairn_stats_get(db, &s), "stats");
        *timeline = s.timeline;
    }
    must(cairn_close(db), "close");
    return h;
}

static cairn_status replace_in(repo *r, const char *db, const char *target,
                               const char *const *colls, size_t n, bool dry,
                               struct pitr_restore_result *res)
{
    struct pitr_restore_opts o = {.kind = target ? PITR_TARGET_NAME : PITR_TARGET_LATEST,
                                  .name = target,
                                  .jobs = 2,
                                  .dry_run = dry,
                                  .collections = colls,
                                  .ncollections = n,
                                  .into_existing = true};
    cairn_status st = pitr_restore(r, db, &o, res);
    pitr_plan_free(&res->plan);
    return st;
}

/* A copy of the closed database dir, from a checkpoint of its state. */
static void copy_db(const char *dir, char *out, size_t n)
{
    new_dir(out, n, "copy");
    cairn_db *db = must_open(dir);
    must(cairn_checkpoint(db, NULL), "checkpoint");
    cairn_pin *pin = NULL;
    must(cairn_pin_open(dir, &pin, NULL), "pin");
    must(cairn_pin_copy(pin, out, NULL, NULL), "copy");
    must(cairn_pin_close(pin), "unpin");
    must(cairn_close(db), "close");
}

/* The oracle of a replace: the database's state with the collections
 * named replaced by those of a full restore to the target, copied point by
 * point through the public API (tu_copy_collection). */
static uint64_t replace_oracle(repo *r, const char *db, const char *target,
                               const char *const *colls, size_t n)
{
    char full[600], cur[600];
    struct pitr_restore_result res;
    restore_to(r, target, NULL, 0, full, sizeof full, &res);
    copy_db(db, cur, sizeof cur);
    cairn_db *from = must_open(full), *to = must_open(cur);
    for (size_t i = 0; i < n; i++)
        if (tu_copy_collection(from, to, colls[i]) != 0)
            fail_msg("oracle: %s", tu_error());
    uint64_t h = plain_hash(to);
    must(cairn_close(from), "close");
    must(cairn_close(to), "close");
    tu_rm_rf(full);
    tu_rm_rf(cur);
    return h;
}

/* The collections come back at the target in the database itself, the
 * others stay; the database is on a new timeline, and the repository
 * restores along it (through the graft) and along the old one. */
static void test_into_existing(void **state)
{
    (void)state;
    repo *r = open_repo();
    const char *const two[] = {"extra", "wide"};
    /* a work directory left by a crashed run is removed first */
    char work[700], junk[760];
    snprintf(work, sizeof work, "%s.replace", W.db);
    assert_int_equal(mkdir(work, 0755), 0);
    snprintf(junk, sizeof junk, "%s/replace-in-progress", work);
    must_write_file(junk, "left by a crash\n", 16);
    snprintf(junk, sizeof junk, "%s/new", work);
    assert_int_equal(mkdir(junk, 0755), 0);

    uint64_t want = replace_oracle(r, W.db, "mid", two, 2);
    uint32_t tl_before = 0;
    uint64_t before = dir_hash(W.db, false, &tl_before);
    assert_true(want != before);
    struct pitr_restore_result res;
    cairn_status st = replace_in(r, W.db, "mid", two, 2, false, &res);
    if (st)
        fail_msg("replace: %s: %s", cairn_status_name(st), cairn_last_error());
    assert_false(exists(work));
    assert_int_equal(res.old_timeline, tl_before);
    assert_true(res.new_timeline > tl_before);
    assert_int_equal(res.replaced, 2);
    cairn_db *db = must_open(W.db);
    cairn_stats s;
    must(cairn_stats_get(db, &s), "stats");
    assert_int_equal(s.timeline, res.new_timeline);
    assert_int_equal(s.recovery.records_replayed, 0);
    if (plain_hash(db) != want)
        fail_msg("the database after the replace differs from the oracle");
    cairn_check_report rep;
    must(cairn_check(db, &rep), "check");
    must(cairn_close(db), "close");
    /* a copy of it keeps its timeline's history (cairn_pin_copy) */
    char cp[600], hist[800];
    copy_db(W.db, cp, sizeof cp);
    snprintf(hist, sizeof hist, "%s/wal/%08X.history", cp, res.new_timeline);
    assert_true(exists(hist));
    tu_rm_rf(cp);
    db = must_open(W.db);
    print_message("replaced %u collection(s) (%" PRIu64 " points, %" PRIu64 " WAL bytes in "
                  "one transaction): timeline %u -> %u at LSN %" PRIu64 "\n",
                  res.replaced, res.graft_points, res.graft_bytes, res.old_timeline,
                  res.new_timeline, res.switch_lsn);

    /* the database goes on; its WAL is archived; restores along the new
     * timeline replay the graft's transaction from the old timeline's base */
    uint64_t rng = g_seed ^ 0x5eed;
    for (int i = 0; i < 10; i++)
        must(tu_mix_txn(db, &rng, NULL), "txn");
    uint64_t h_after = state_hash(db);
    must(cairn_wal_switch(db, NULL), "switch");
    must(cairn_close(db), "close");
    struct pitr_archive_result ar;
    must(pitr_archive(W.db, r, 0, &ar), "archive");
    char along[600];
    restore_to(r, NULL, NULL, 0, along, sizeof along, &res);
    assert_true(dir_hash(along, true, NULL) == h_after);
    tu_rm_rf(along);
    new_dir(along, sizeof along, "old");
    struct pitr_restore_opts oo = {.kind = PITR_TARGET_LATEST, .timeline = tl_before, .jobs = 2};
    must(pitr_restore(r, along, &oo, &res), "restore the old timeline");
    pitr_plan_free(&res.plan);
    assert_true(dir_hash(along, true, NULL) == W.h_end);
    tu_rm_rf(along);
    print_message("restored along the new timeline (graft replayed) and the old one\n");
    repo_close(r);
}

/* Each refusal leaves the database as it was (state, timeline) and no
 * work directory. */
static void refused_into(repo *r, const char *db, const char *target, const char *const *colls,
                         size_t n, bool dry, cairn_status want, const char *words)
{
    uint32_t tl0 = 0, tl1 = 0;
    char meta[700];
    snprintf(meta, sizeof meta, "%s/meta", db);
    bool isdb = exists(meta);
    uint64_t h0 = isdb ? dir_hash(db, true, &tl0) : 0;
    struct pitr_restore_result res;
    cairn_status st = replace_in(r, db, target, colls, n, dry, &res);
    expect(st, want, words);
    if (isdb) {
        assert_true(dir_hash(db, true, &tl1) == h0);
        assert_int_equal(tl1, tl0);
    }
    char work[700];
    snprintf(work, sizeof work, "%s.replace", db);
    assert_false(exists(work));
}

static void test_into_existing_refusals(void **state)
{
    (void)state;
    repo *r = open_repo();
    const char *const extra[] = {"extra"};
    const char *const twice[] = {"extra", "extra"};
    refused_into(r, W.db, "mid", extra, 1, true, CAIRN_OK, NULL); /* a dry run */
    refused_into(r, W.db, "mid", extra, 0, false, CAIRN_EINVAL, "needs --collection");
    refused_into(r, W.db, "mid", twice, 2, false, CAIRN_EINVAL, "given twice");
    refused_into(r, W.db, "gone", extra, 1, false, CAIRN_ENOTFOUND,
                 "collection \"extra\" does not exist at the target");
    /* open elsewhere */
    cairn_db *db = must_open(W.db);
    struct pitr_restore_result res;
    cairn_status st = replace_in(r, W.db, "mid", extra, 1, false, &res);
    expect(st, CAIRN_EBUSY, "to replace collections in it");
    must(cairn_close(db), "close");
    /* another database */
    char other[600];
    new_dir(other, sizeof other, "other");
    cairn_options co = opts();
    co.create_if_missing = 1;
    db = must_open_o(other, &co);
    must(cairn_collection_create(db, "extra", 8, CAIRN_METRIC_L2), "create");
    must(cairn_close(db), "close");
    refused_into(r, other, "mid", extra, 1, false, CAIRN_EINVAL, "the repository holds database");
    /* no database there, a symbolic link, a work directory not ours */
    char none[600], link[600], work[700];
    new_dir(none, sizeof none, "none");
    refused_into(r, none, "mid", extra, 1, false, CAIRN_ENOTFOUND, none);
    new_dir(link, sizeof link, "link");
    assert_int_equal(symlink(W.db, link), 0);
    refused_into(r, link, "mid", extra, 1, false, CAIRN_EINVAL, "symbolic link");
    /* a work directory holding something not ours is refused, by a dry
     * run too (an empty one is what a run killed right after creating it
     * leaves: removed, see test_into_existing_crash) */
    char theirs[760];
    snprintf(work, sizeof work, "%s.replace", W.db);
    assert_int_equal(mkdir(work, 0755), 0);
    snprintf(theirs, sizeof theirs, "%s/notes.txt", work);
    must_write_file(theirs, "someone's\n", 10);
    for (int dry = 0; dry < 2; dry++) {
        st = replace_in(r, W.db, "mid", extra, 1, dry, &res);
        expect(st, CAIRN_EEXIST, "not left by a restore");
    }
    assert_true(exists(theirs));
    assert_int_equal(unlink(theirs), 0);
    assert_int_equal(rmdir(work), 0);
    repo_close(r);
}

/* SIGKILL at random moments of a replace: the database is always its old
 * or its new self, and the next run finishes. */
static void test_into_existing_crash(void **state)
{
    (void)state;
    repo *r = open_repo();
    const char *const two[] = {"small", "extra"};
    char c[600];
    copy_db(W.db, c, sizeof c);
    uint64_t before = dir_hash(c, false, NULL);
    uint64_t want = replace_oracle(r, c, "mid", two, 2);
    /* how long one run takes, on a throwaway copy */
    char t[600];
    copy_db(W.db, t, sizeof t);
    struct pitr_restore_result res;
    double t0 = now_s();
    must(replace_in(r, t, "mid", two, 2, false, &res), "replace");
    double full = now_s() - t0;
    tu_rm_rf(t);
    uint64_t rng = g_seed ^ 0xc4a54;
    unsigned killed = 0, old_seen = 0, new_seen = 0;
    /* CAIRN_KILLS=N: a longer run */
    unsigned kills = (unsigned)tu_seed_env("CAIRN_KILLS", 12);
    for (unsigned i = 0; i < kills; i++) {
        uint64_t delay_us = tu_splitmix(&rng) % ((uint64_t)(full * 1.6e6) + 1);
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            repo *cr = NULL;
            struct repo_open_opts cro = {0};
            cairn_status st = repo_open(W.repo, &cro, &cr);
            struct pitr_restore_result cres;
            if (!st)
                st = replace_in(cr, c, "mid", two, 2, false, &cres);
            if (st)
                fprintf(stderr, "the replace failed: %s: %s\n", cairn_status_name(st),
                        cairn_last_error());
            _exit(st ? 1 : 0);
        }
        usleep((useconds_t)delay_us);
        kill(pid, SIGKILL);
        int ws = 0;
        assert_int_equal(waitpid(pid, &ws, 0), pid);
        if (WIFSIGNALED(ws)) {
            killed++;
        } else {
            assert_true(WIFEXITED(ws));
            assert_int_equal(WEXITSTATUS(ws), 0);
        }
        uint64_t h = dir_hash(c, false, NULL);
        if (h == before)
            old_seen++;
        else if (h == want)
            new_seen++;
        else
            fail_msg("kill %u after %" PRIu64 " us: the database is neither its old nor its "
                     "new self", i, delay_us);
    }
    /* the next run finishes (and removes what a killed one left) */
    must(replace_in(r, c, "mid", two, 2, false, &res), "replace after the kills");
    assert_true(dir_hash(c, false, NULL) == want);
    char work[700];
    snprintf(work, sizeof work, "%s.replace", c);
    assert_false(exists(work));
    print_message("%u of %u runs killed (one run: %.2f s): old state seen %u times, new %u\n",
                  killed, kills, full, old_seen, new_seen);
    tu_rm_rf(c);
    repo_close(r);
}

/* An I/O error (EIO through the fault seam) at operations spread over a
 * whole replace (every one with CAIRN_FAULTS=all): each run fails or
 * finishes; the database is always its old or its new self, opens, and a
 * failure before the swap leaves no work directory. */
static void test_into_existing_faults(void **state)
{
    (void)state;
    repo *r = open_repo();
    const char *const two[] = {"wide", "extra"};
    char c[600], work[700];
    uint64_t before = dir_hash(W.db, false, NULL);
    uint64_t want = replace_oracle(r, W.db, "mid", two, 2);
    const unsigned ops = CIO_FOP_WRITE | CIO_FOP_SYNC | CIO_FOP_META | CIO_FOP_READ;
    /* how many operations one run does (a plan that never fires counts them) */
    char t[600];
    copy_db(W.db, t, sizeof t);
    struct cio_fault_plan count = {.ops = ops, .nth = UINT64_MAX, .kind = CIO_FAULT_EIO};
    struct pitr_restore_result res;
    cio_fault_set(&count);
    cairn_status st = replace_in(r, t, "mid", two, 2, false, &res);
    uint64_t total = cio_fault_count();
    cio_fault_set(NULL);
    must(st, "replace (counting operations)");
    tu_rm_rf(t);
    const char *all = getenv("CAIRN_FAULTS");
    uint64_t step = all && !strcmp(all, "all") ? 1 : total / 40 + 1;
    unsigned failed = 0, finished = 0, old_seen = 0, new_seen = 0;
    /* nth = 1, 1 + step, ... and always total + 1 last (a plan that never
     * fires: the run finishes), whatever total is modulo step */
    for (uint64_t nth = 1, last = 0; !last; nth += step) {
        if (nth >= total + 1) {
            nth = total + 1;
            last = 1;
        }
        copy_db(W.db, c, sizeof c); /* each run from the old state */
        snprintf(work, sizeof work, "%s.replace", c);
        struct cio_fault_plan fp = {.ops = ops, .nth = nth, .kind = CIO_FAULT_EIO};
        cio_fault_set(&fp);
        st = replace_in(r, c, "mid", two, 2, false, &res);
        uint64_t fired = cio_fault_fired();
        cio_fault_set(NULL);
        if (st) {
            if (!fired)
                fail_msg("fault %" PRIu64 ": failed without a fault: %s", nth,
                         cairn_last_error());
            failed++;
        } else {
            finished++;
        }
        uint64_t h = dir_hash(c, false, NULL);
        if (h == before) {
            old_seen++;
        } else if (h == want) {
            new_seen++;
        } else {
            fail_msg("fault at operation %" PRIu64 " (%s): the database is neither its old "
                     "nor its new self", nth, st ? cairn_last_error() : "finished");
        }
        if (st && h == before && exists(work))
            fail_msg("fault at operation %" PRIu64 ": the work directory is left although "
                     "the database was not swapped: %s", nth, cairn_last_error());
        tu_rm_rf(work); /* a failure after the swap says it may be removed */
        tu_rm_rf(c);
    }
    print_message("replace: %" PRIu64 " I/O operations; a fault at every %" PRIu64 ": %u "
                  "failed, %u finished; old state %u times, new %u\n", total, step, failed,
                  finished, old_seen, new_seen);
    assert_true(old_seen > 0 && new_seen > 0);
    repo_close(r);
}

int main(void)
{
    tu_quiet_log();
    g_seed = tu_seed("partial", 20261121);
    if (tu_tmpbase(tmpbase, sizeof tmpbase, "partial") != 0) {
        perror("tmpbase");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_restores),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_into_existing_refusals),
        cmocka_unit_test(test_into_existing_crash),
        cmocka_unit_test(test_into_existing_faults),
        cmocka_unit_test(test_into_existing),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    if (rc == 0)
        tu_rm_rf(tmpbase);
    return rc;
}
