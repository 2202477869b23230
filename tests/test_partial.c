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
#include <sys/stat.h>

#include "cairn.h"
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
    struct tu_dig d = {0};
    if (tu_state_digest(db, &d, TU_DIG_ID_BYTES) != 0)
        fail_msg("digest: %s", tu_error());
    uint64_t h = 1469598103934665603ull ^ d.len;
    for (size_t i = 0; i < d.len; i++)
        h = (h ^ d.b[i]) * 1099511628211ull;
    tu_dig_free(&d);
    return h;
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
    repo *r = NULL;
    struct repo_open_opts ro = {0};
    must(repo_open(W.repo, &ro, &r), "repo");
    const char *const mid[] = {"extra", "wide"};
    check_partial(r, "mid", W.h_mid, mid, 2);
    const char *const end[] = {"small", "extra"};
    check_partial(r, NULL, W.h_end, end, 2);
    repo_close(r);
}

/* ---- 2 ----------------------------------------------------------------------------- */

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
    if (st != want)
        fail_msg("expected %s, got %s: %s", cairn_status_name(want), cairn_status_name(st),
                 cairn_last_error());
    if (words && !strstr(cairn_last_error(), words))
        fail_msg("message does not say \"%s\": %s", words, cairn_last_error());
    if (st)
        print_message("refused (%s): %s\n", cairn_status_name(st), cairn_last_error());
    assert_false(exists(dir));
    assert_false(exists(pp));
}

static void test_refusals(void **state)
{
    (void)state;
    repo *r = NULL;
    struct repo_open_opts ro = {0};
    must(repo_open(W.repo, &ro, &r), "repo");
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
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    if (rc == 0)
        tu_rm_rf(tmpbase);
    return rc;
}
