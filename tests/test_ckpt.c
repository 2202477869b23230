/*
 * test_ckpt.c — checkpoints and the page store: a checkpoint reopens to the
 * same state with replay bounded by its redo LSN; what a checkpoint holds is
 * exactly the state at its redo LSN even while writers commit; WAL segments
 * go away behind checkpoints unless the retention hook holds them; dropped
 * collections lose their page files; damaged pages and superblocks are
 * reported (file and page) or fallen back from; a failing I/O in a
 * checkpoint publishes nothing and the next one works. Pre-writes
 * (ckpt_prewrite) write the cold dirty pages early and the next checkpoint
 * goes on from them: the same state on reopen; a failure in either
 * disables checkpoints until the reopen, which loses nothing.
 *
 * Seeded: CAIRN_SEED replays a run.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cairn.h"
#include "common/crc32c.h"
#include "common/err.h"
#include "common/io.h"
#include "engine/engine_int.h"
#include "engine/pfile.h"
#include "testutil.h"
#include "testutil_cmocka.h"

static char tmpbase[512];
static int dbcounter;
static uint64_t g_seed;

static void new_dir(char *out, size_t n)
{
    snprintf(out, n, "%s/db%d", tmpbase, dbcounter++);
}

/* ---- a seeded workload ----------------------------------------------------- */

static void run_txns(cairn_db *db, uint64_t *rng, int n)
{
    for (int i = 0; i < n; i++)
        must(tu_mix_txn(db, rng, NULL), "commit");
}

static void digest(cairn_db *db, struct tu_dig *d)
{
    if (tu_state_digest(db, d, TU_DIG_ID_BYTES) != 0)
        fail_msg("digest: %s", tu_error());
}

/* Closes db and reopens dir (o NULL: opts()): every reader-visible byte
 * must be the same. Returns the reopened handle. */
static cairn_db *reopen_same(cairn_db *db, const char *dir, const cairn_options *o,
                             const char *what)
{
    struct tu_dig before = {0}, after = {0};
    digest(db, &before);
    must(cairn_close(db), "close");
    db = o ? must_open_o(dir, o) : must_open(dir);
    digest(db, &after);
    bool same = tu_dig_eq(&before, &after);
    tu_dig_free(&before);
    tu_dig_free(&after);
    if (!same)
        fail_msg("%s: the state after reopen differs from the state before close", what);
    return db;
}

static size_t count_segments(const char *dir)
{
    char p[600];
    snprintf(p, sizeof p, "%s/wal", dir);
    DIR *d = opendir(p);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strstr(e->d_name, ".wal") != NULL && strstr(e->d_name, ".tmp") == NULL;
    closedir(d);
    return n;
}

static bool file_exists(const char *dir, const char *rel)
{
    char p[700];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* ---- tests --------------------------------------------------------------------- */

/* A checkpoint then more commits: reopen equals the state before close,
 * replay starts at the redo LSN and reads only the log after it. */
static void test_reopen_same_state(void **state)
{
    (void)state;
    char dir[600];
    new_dir(dir, sizeof dir);
    uint64_t rng = g_seed;
    cairn_db *db = must_open(dir);
    must(tu_mix_create(db), "create");
    run_txns(db, &rng, 300);
    cairn_checkpoint_info ci;
    must(cairn_checkpoint(db, &ci), "checkpoint");
    assert_int_equal(ci.generation, 1);
    assert_true(ci.redo_lsn > 0);
    assert_true(ci.pages_written > 0);
    run_txns(db, &rng, 50);
    db = reopen_same(db, dir, NULL, "after checkpoint 1");
    cairn_stats s;
    must(cairn_stats_get(db, &s), "stats");
    assert_int_equal(s.recovery.checkpoint, 1);
    assert_int_equal(s.recovery.start_lsn, ci.redo_lsn);
    assert_true(s.recovery.pages_read > 0);
    assert_true(s.recovery.txns_applied <= 50);
    assert_true(s.recovery.txns_applied >= 1);
    /* A second checkpoint on the reopened database, then reopen again. */
    run_txns(db, &rng, 40);
    must(cairn_checkpoint(db, &ci), "checkpoint 2");
    assert_int_equal(ci.generation, 2);
    db = reopen_same(db, dir, NULL, "after checkpoint 2");
    must(cairn_stats_get(db, &s), "stats");
    assert_int_equal(s.recovery.checkpoint, 2);
    assert_int_equal(s.recovery.txns_applied, 0);
    must(cairn_close(db), "close");
}

/* Checkpoints while 3 threads commit: every reopen equals the last state. */
struct wargs {
    cairn_db *db;
    uint64_t seed;
    _Atomic int *stop;
    int done;
};

static void *writer(void *arg)
{
    struct wargs *a = arg;
    uint64_t rng = a->seed;
    while (!*a->stop) {
        cairn_status st = tu_mix_txn(a->db, &rng, NULL);
        if (st) {
            fprintf(stderr, "writer: %s: %s\n", cairn_status_name(st), cairn_last_error());
            return NULL;
        }
        a->done++;
    }
    return NULL;
}

static void test_concurrent_writers(void **state)
{
    (void)state;
    char dir[600];
    new_dir(dir, sizeof dir);
    cairn_db *db = must_open(dir);
    must(tu_mix_create(db), "create");
    _Atomic int stop = 0;
    struct wargs wa[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        wa[i] = (struct wargs){.db = db, .seed = g_seed + 17 * (uint64_t)i + 1, .stop = &stop};
        assert_int_equal(pthread_create(&th[i], NULL, writer, &wa[i]), 0);
    }
    for (int k = 0; k < 12; k++) {
        usleep(20000);
        must(cairn_checkpoint(db, NULL), "checkpoint under load");
    }
    stop = 1;
    int total = 0;
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        total += wa[i].done;
    }
    assert_true(total > 0);
    must(cairn_close(reopen_same(db, dir, NULL, "checkpoints under load")), "close");
}

/* WAL segments go away behind checkpoints (kept from the previous one's
 * redo), unless the retention hook holds them. */
static uint64_t g_retain = UINT64_MAX;
static int g_retain_calls;
static uint64_t retain_hook(void *ctx)
{
    assert_ptr_equal(ctx, &g_retain);
    g_retain_calls++;
    return g_retain;
}

static void test_wal_removal_and_hook(void **state)
{
    (void)state;
    char dir[600];
    new_dir(dir, sizeof dir);
    cairn_options o = opts();
    o.wal_retain = retain_hook;
    o.wal_retain_ctx = &g_retain;
    g_retain = 0; /* a holder that needs everything */
    g_retain_calls = 0;
    uint64_t rng = g_seed ^ 0x55;
    cairn_db *db = must_open_o(dir, &o);
    must(tu_mix_create(db), "create");
    /* ~3 segments of 2 MiB per round */
    cairn_checkpoint_info ci;
    for (int round = 0; round < 3; round++) {
        run_txns(db, &rng, 500);
        must(cairn_checkpoint(db, &ci), "checkpoint");
        assert_int_equal(ci.wal_segments_removed, 0);
    }
    assert_true(g_retain_calls >= 2);
    size_t held = count_segments(dir);
    assert_true(held >= 4);
    g_retain = UINT64_MAX; /* the holder lets go */
    run_txns(db, &rng, 10);
    must(cairn_checkpoint(db, &ci), "checkpoint");
    assert_true(ci.wal_segments_removed > 0);
    assert_true(count_segments(dir) < held);
    must(cairn_close(reopen_same(db, dir, &o, "WAL removed")), "close");
}

/* A dropped collection's page file goes away two checkpoints later. */
static void test_drop_removes_file(void **state)
{
    (void)state;
    char dir[600];
    new_dir(dir, sizeof dir);
    uint64_t rng = g_seed ^ 0x99;
    cairn_db *db = must_open(dir);
    must(tu_mix_create(db), "create");
    run_txns(db, &rng, 50);
    must(cairn_checkpoint(db, NULL), "checkpoint");
    cairn_collection_info info;
    must(cairn_collection_stat(db, "mid", &info), "stat");
    char rel[64];
    snprintf(rel, sizeof rel, "collections/%u.pages", info.id);
    assert_true(file_exists(dir, rel));
    must(cairn_collection_drop(db, "mid"), "drop");
    must(cairn_checkpoint(db, NULL), "checkpoint");
    must(cairn_checkpoint(db, NULL), "checkpoint");
    assert_false(file_exists(dir, rel));
    must(cairn_close(reopen_same(db, dir, NULL, "after a drop")), "close");
}

/* Damage at `off` of file `rel`: the open fails with CAIRN_ECORRUPT naming
 * the file, or (superblock) falls back. */
static void flip(const char *dir, const char *rel, long off)
{
    char p[700];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    int fd = open(p, O_RDWR);
    assert_true(fd >= 0);
    unsigned char b;
    assert_int_equal(pread(fd, &b, 1, off), 1);
    b ^= 0x5a;
    assert_int_equal(pwrite(fd, &b, 1, off), 1);
    close(fd);
}

static void test_corrupt_page_reported(void **state)
{
    (void)state;
    for (int where = 0; where < 3; where++) {
        char dir[600];
        new_dir(dir, sizeof dir);
        uint64_t rng = g_seed ^ 0x77;
        cairn_db *db = must_open(dir);
        must(tu_mix_create(db), "create");
        run_txns(db, &rng, 100);
        must(cairn_checkpoint(db, NULL), "checkpoint");
        cairn_collection_info info;
        must(cairn_collection_stat(db, "mid", &info), "stat");
        must(cairn_close(db), "close");
        char rel[64];
        if (where == 2)
            snprintf(rel, sizeof rel, "catalog.pages");
        else
            snprintf(rel, sizeof rel, "collections/%u.pages", info.id);
        /* page 1 is the first data page written; the last page is a map page */
        long off = 8192 + 100;
        if (where == 1) {
            char p[700];
            snprintf(p, sizeof p, "%s/%s", dir, rel);
            struct stat sb;
            assert_int_equal(stat(p, &sb), 0);
            off = (long)sb.st_size - 8192 + 40;
        }
        flip(dir, rel, off);
        cairn_db *bad = NULL;
        cairn_options o = opts();
        cairn_status st = cairn_open(dir, &o, &bad);
        assert_int_equal(st, CAIRN_ECORRUPT);
        assert_null(bad);
        const char *msg = cairn_last_error();
        if (!strstr(msg, rel) || !strstr(msg, "page"))
            fail_msg("case %d: message does not name the file and page: %s", where, msg);
    }
}

/* The newest superblock slot damaged: the open falls back to the previous
 * checkpoint and replays from its redo LSN to the same state. */
static void test_superblock_fallback(void **state)
{
    (void)state;
    char dir[600];
    new_dir(dir, sizeof dir);
    uint64_t rng = g_seed ^ 0x31;
    cairn_db *db = must_open(dir);
    must(tu_mix_create(db), "create");
    run_txns(db, &rng, 200);
    must(cairn_checkpoint(db, NULL), "checkpoint 1");
    run_txns(db, &rng, 200);
    cairn_checkpoint_info ci;
    must(cairn_checkpoint(db, &ci), "checkpoint 2");
    run_txns(db, &rng, 20);
    struct tu_dig before = {0}, after = {0};
    digest(db, &before);
    must(cairn_close(db), "close");
    flip(dir, "superblock", (long)(ci.generation % 2) * 8192 + 60);
    db = must_open(dir);
    cairn_stats s;
    must(cairn_stats_get(db, &s), "stats");
    assert_int_equal(s.recovery.checkpoint, 1);
    digest(db, &after);
    assert_true(tu_dig_eq(&before, &after));
    must(cairn_close(db), "close");
    tu_dig_free(&before);
    tu_dig_free(&after);
}

/* Changes n bytes at body offset `off` of page `pno` of file `rel` and
 * recomputes the page crc: damage that only the field checks can see. */
static void rewrite_page(const char *dir, const char *rel, long pno, size_t off,
                         const void *bytes, size_t n)
{
    char p[700];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    int fd = open(p, O_RDWR);
    assert_true(fd >= 0);
    unsigned char pg[8192];
    assert_int_equal(pread(fd, pg, sizeof pg, pno * 8192), (ssize_t)sizeof pg);
    memcpy(pg + 32 + off, bytes, n);
    uint32_t crc = crc32c(0, pg + 4, sizeof pg - 4);
    memcpy(pg, &crc, 4);
    assert_int_equal(pwrite(fd, pg, sizeof pg, pno * 8192), (ssize_t)sizeof pg);
    close(fd);
}

/* A database with three checkpoints, the WAL before the second removed. */
static void make_checkpointed(char *dir, size_t n, uint64_t seed, cairn_checkpoint_info *ci)
{
    new_dir(dir, n);
    uint64_t rng = seed;
    cairn_db *db = must_open(dir);
    must(tu_mix_create(db), "create");
    uint64_t removed = 0;
    for (int round = 0; round < 3; round++) {
        run_txns(db, &rng, 500);
        must(cairn_checkpoint(db, ci), "checkpoint");
        removed += ci->wal_segments_removed;
    }
    assert_true(removed > 0);
    must(cairn_close(db), "close");
}

static void expect_refused(const char *dir, cairn_status want, const char *needle)
{
    cairn_db *db = NULL;
    cairn_options o = opts();
    cairn_status st = cairn_open(dir, &o, &db);
    if (st != want || db || !strstr(cairn_last_error(), needle))
        fail_msg("open of %s: %s (want %s) \"%s\" (want it to name \"%s\")", dir,
                 cairn_status_name(st), cairn_status_name(want), cairn_last_error(), needle);
}

/* What an open refuses, and that a refused open changes no file. */
static void test_refusals(void **state)
{
    (void)state;
    char dir[600];
    cairn_checkpoint_info ci;
    const uint64_t seed = g_seed ^ 0x4242;
    long newest;
    struct tu_tree t0 = {0}, t1 = {0};
    char why[256];

    /* both superblock slots damaged after WAL was removed */
    make_checkpointed(dir, sizeof dir, seed, &ci);
    flip(dir, "superblock", 60);
    flip(dir, "superblock", 8192 + 60);
    assert_int_equal(tu_tree_take(&t0, dir), 0);
    expect_refused(dir, CAIRN_ECORRUPT, "superblock");
    assert_int_equal(tu_tree_take(&t1, dir), 0);
    if (tu_tree_diff(&t0, &t1, why, sizeof why))
        fail_msg("a refused open changed files: %s", why);
    tu_tree_free(&t0);
    tu_tree_free(&t1);

    /* a newer superblock format */
    make_checkpointed(dir, sizeof dir, seed, &ci);
    newest = (long)(ci.generation % 2);
    uint32_t v = 2;
    rewrite_page(dir, "superblock", newest, 0, &v, 4);
    expect_refused(dir, CAIRN_EVERSION, "superblock");

    /* a superblock of another database */
    make_checkpointed(dir, sizeof dir, seed, &ci);
    uint64_t other = 0x0123456789abcdefULL;
    rewrite_page(dir, "superblock", (long)(ci.generation % 2), 8, &other, 8);
    expect_refused(dir, CAIRN_ECORRUPT, "belongs to database");

    /* a catalog entry with a valid crc but dimension 0 */
    make_checkpointed(dir, sizeof dir, seed, &ci);
    char cat[700];
    snprintf(cat, sizeof cat, "%s/catalog.pages", dir);
    struct stat sb;
    assert_int_equal(stat(cat, &sb), 0);
    uint32_t zero = 0;
    /* the newest catalog: the only chain whose page header LSN is the redo
     * LSN; try every page, the refused open must name the catalog */
    long pages = (long)(sb.st_size / 8192), hit = 0;
    for (long pno = 1; pno < pages; pno++) {
        unsigned char hdr[32];
        int fd = open(cat, O_RDONLY);
        assert_true(fd >= 0);
        assert_int_equal(pread(fd, hdr, sizeof hdr, pno * 8192), (ssize_t)sizeof hdr);
        close(fd);
        uint64_t lsn;
        memcpy(&lsn, hdr + 24, 8);
        if (lsn == ci.redo_lsn) {
            rewrite_page(dir, "catalog.pages", pno, 8 + 4, &zero, 4);
            hit++;
        }
    }
    assert_int_equal(hit, 1);
    expect_refused(dir, CAIRN_ECORRUPT, "invalid fields");

    /* the WAL the checkpoint replays from is gone */
    make_checkpointed(dir, sizeof dir, seed, &ci);
    char wal[700];
    snprintf(wal, sizeof wal, "%s/wal", dir);
    tu_rm_rf(wal);
    assert_int_equal(mkdir(wal, 0755), 0);
    expect_refused(dir, CAIRN_ECORRUPT, "holds no WAL segment");
}

/* An I/O failure at each operation of a checkpoint: the checkpoint fails
 * (or the fault lands after its publication), the database keeps working,
 * a later checkpoint succeeds (after a reopen if the superblock write
 * failed), and reopening gives the state of the last commit. */
static void test_fault_each_op(void **state)
{
    (void)state;
    int failed = 0, poisoned = 0, ran = 0;
    for (uint64_t nth = 1;; nth++) {
        char dir[600];
        new_dir(dir, sizeof dir);
        uint64_t rng = g_seed ^ nth;
        cairn_options o = opts();
        o.io_backend = (nth & 1) ? CAIRN_IO_POSIX : CAIRN_IO_DEFAULT;
        cairn_db *db = must_open_o(dir, &o);
        must(tu_mix_create(db), "create");
        run_txns(db, &rng, 60);
        must(cairn_checkpoint(db, NULL), "checkpoint 1");
        run_txns(db, &rng, 30);
        struct cio_fault_plan plan = {.ops = CIO_FOP_WRITE | CIO_FOP_SYNC | CIO_FOP_META,
                                      .nth = nth,
                                      .kind = (nth % 3) ? CIO_FAULT_EIO : CIO_FAULT_ENOSPC,
                                      .persistent = 0};
        cio_fault_set(&plan);
        cairn_status st = cairn_checkpoint(db, NULL);
        uint64_t fired = cio_fault_fired();
        cio_fault_set(NULL);
        ran++;
        if (!fired) {
            must(st, "checkpoint without a fault");
            must(cairn_close(db), "close");
            tu_rm_rf(dir);
            break;
        }
        if (st != CAIRN_OK)
            failed++;
        /* the database still commits */
        run_txns(db, &rng, 5);
        st = cairn_checkpoint(db, NULL);
        if (st == CAIRN_EPOISONED || (st != CAIRN_OK && strstr(cairn_last_error(), "disabled"))) {
            poisoned++;
        } else if (st != CAIRN_OK) {
            fail_msg("nth %llu: retry failed: %s: %s", (unsigned long long)nth,
                     cairn_status_name(st), cairn_last_error());
        }
        char what[64];
        snprintf(what, sizeof what, "fault at op %llu", (unsigned long long)nth);
        db = reopen_same(db, dir, &o, what);
        must(cairn_checkpoint(db, NULL), "checkpoint after reopen");
        must(cairn_close(db), "close");
        tu_rm_rf(dir);
        if (nth > 400)
            fail_msg("a checkpoint does more than 400 I/O operations?");
    }
    print_message("fault loop: %d runs, %d checkpoints failed, %d poisoned\n", ran, failed,
                  poisoned);
    assert_true(failed > 3);
}

/* ---- pre-writes --------------------------------------------------------------- */

static uint64_t prewrite(cairn_db *db, uint64_t below, uint64_t *newest)
{
    uint64_t pages = 0, top = 0;
    must(ckpt_prewrite(db, below, 1, &top, &pages), "pre-write");
    if (newest)
        *newest = top;
    return pages;
}

/* Pre-writes between two checkpoints, with changes after them: pages
 * written again, a pre-written collection dropped and one of its name
 * created, more pre-writes, then the checkpoint. A bound keeps the pages
 * changed at or after it dirty. The reopen equals the state before,
 * replays nothing and passes cairn_check; the dropped collection's page
 * file goes as after any drop. */
static void test_prewrite(void **state)
{
    (void)state;
    char dir[600];
    new_dir(dir, sizeof dir);
    uint64_t rng = g_seed ^ 0x5157;
    cairn_db *db = must_open(dir);
    must(tu_mix_create(db), "create");
    run_txns(db, &rng, 80);
    must(cairn_checkpoint(db, NULL), "checkpoint 1");
    run_txns(db, &rng, 120);

    /* a bound of 0: nothing is below it, but the newest page is seen */
    uint64_t newest = 0;
    assert_int_equal(prewrite(db, 0, &newest), 0);
    assert_true(newest > 0);
    cairn_commit_info ci;
    must(tu_mix_txn(db, &rng, &ci), "commit");
    /* the pages below the last commit, then none (what is left is at or
     * after it), then the last commit's pages */
    uint64_t first = prewrite(db, ci.commit_lsn, &newest);
    assert_true(first > 0);
    assert_int_equal(newest, ci.commit_lsn);
    assert_int_equal(prewrite(db, ci.commit_lsn, &newest), 0);
    assert_int_equal(newest, ci.commit_lsn);
    assert_true(prewrite(db, UINT64_MAX, NULL) > 0);
    assert_int_equal(prewrite(db, UINT64_MAX, &newest), 0);
    assert_int_equal(newest, 0);

    cairn_collection_info mid;
    must(cairn_collection_stat(db, "mid", &mid), "stat");
    run_txns(db, &rng, 60);
    must(cairn_collection_drop(db, "mid"), "drop");
    must(cairn_collection_create(db, "mid", tu_mix_dim[1], tu_mix_metric[1]), "create");
    run_txns(db, &rng, 60);
    assert_true(prewrite(db, UINT64_MAX, NULL) > 0);
    /* meanwhile the checker reads the files, which are still checkpoint
     * 1's, and says why it does not compare memory with them */
    cairn_check_report rep;
    must(cairn_check(db, &rep), "check with pre-writes pending");
    assert_int_equal(rep.problems, 0);
    assert_int_equal(rep.generation, 1);
    assert_true(rep.warnings > 0);
    run_txns(db, &rng, 10);
    cairn_checkpoint_info info;
    must(cairn_checkpoint(db, &info), "checkpoint after pre-writes");
    assert_int_equal(info.generation, 2);

    db = reopen_same(db, dir, NULL, "after pre-writes");
    cairn_stats st;
    must(cairn_stats_get(db, &st), "stats");
    assert_true(st.recovery.checkpoint >= 2);
    assert_int_equal(st.recovery.txns_applied, 0);
    must(cairn_check(db, &rep), "check after pre-writes");
    assert_int_equal(rep.problems, 0);
    assert_int_equal(rep.warnings, 0);
    char rel[64];
    snprintf(rel, sizeof rel, "collections/%u.pages", mid.id);
    must(cairn_checkpoint(db, NULL), "checkpoint");
    must(cairn_checkpoint(db, NULL), "checkpoint");
    assert_false(file_exists(dir, rel));
    must(cairn_close(reopen_same(db, dir, NULL, "after the checkpoints")), "close");
    tu_rm_rf(dir);
}

/* An I/O failure at each write, sync and metadata operation of a
 * pre-write and the checkpoint after it in turn: a failed pre-write, or a
 * failed checkpoint after a pre-write, disables checkpoints (the pages it
 * took off the dirty lists are on no disk image); commits go on, and the
 * reopen has every commit. */
static void test_prewrite_faults(void **state)
{
    (void)state;
    int pre_failed = 0, ckpt_failed = 0, ran = 0;
    for (uint64_t nth = 1;; nth++) {
        char dir[600];
        new_dir(dir, sizeof dir);
        uint64_t rng = g_seed ^ (nth << 8);
        cairn_options o = opts();
        o.io_backend = (nth & 1) ? CAIRN_IO_POSIX : CAIRN_IO_DEFAULT;
        cairn_db *db = must_open_o(dir, &o);
        must(tu_mix_create(db), "create");
        run_txns(db, &rng, 40);
        must(cairn_checkpoint(db, NULL), "checkpoint 1");
        run_txns(db, &rng, 40);
        struct cio_fault_plan plan = {.ops = CIO_FOP_WRITE | CIO_FOP_SYNC | CIO_FOP_META,
                                      .nth = nth,
                                      .kind = (nth % 3) ? CIO_FAULT_EIO : CIO_FAULT_ENOSPC};
        cio_fault_set(&plan);
        uint64_t newest = 0, pages = 0;
        cairn_status pst = ckpt_prewrite(db, UINT64_MAX, 1, &newest, &pages);
        cairn_status cst = cairn_checkpoint(db, NULL);
        uint64_t fired = cio_fault_fired();
        cio_fault_set(NULL);
        ran++;
        if (!fired) {
            must(pst, "pre-write without a fault");
            must(cst, "checkpoint without a fault");
            assert_true(pages > 0);
            must(cairn_close(db), "close");
            tu_rm_rf(dir);
            break;
        }
        if (pst) {
            pre_failed++;
            assert_int_equal(pst, plan.kind == CIO_FAULT_EIO ? CAIRN_EIO : CAIRN_ENOSPC);
            /* the checkpoint after it is refused, naming the pre-write */
            assert_int_equal(cst, pst);
            assert_non_null(strstr(cairn_last_error(), "disabled"));
            assert_non_null(strstr(cairn_last_error(), "pre-writ"));
        } else if (cst) {
            ckpt_failed++;
            assert_int_equal(cairn_checkpoint(db, NULL), cst);
            assert_non_null(strstr(cairn_last_error(), "disabled"));
        }
        /* the database still commits */
        run_txns(db, &rng, 5);
        char what[64];
        snprintf(what, sizeof what, "pre-write fault at op %llu", (unsigned long long)nth);
        db = reopen_same(db, dir, &o, what);
        must(cairn_checkpoint(db, NULL), "checkpoint after reopen");
        must(cairn_close(db), "close");
        tu_rm_rf(dir);
        if (nth > 400)
            fail_msg("a pre-write and a checkpoint do more than 400 I/O operations?");
    }
    print_message("pre-write fault loop: %d runs, %d pre-writes failed, %d checkpoints "
                  "failed after one\n", ran, pre_failed, ckpt_failed);
    assert_true(pre_failed > 0 && ckpt_failed > 0);
}

/* ---- the page reader (pfile_read_refs) ------------------------------------- */

#define RR_N 48

struct rr_seen {
    uint32_t phys[RR_N + 4];
    cairn_status st[RR_N + 4];
    char msg[RR_N + 4][160];
    size_t n;
    size_t stop_at; /* return EIO at this call (0: never) */
};

static cairn_status rr_fn(void *ctx, const struct page_ref *r, const uint8_t *page,
                          cairn_status st)
{
    struct rr_seen *s = ctx;
    assert_true(s->n < RR_N + 4);
    assert_true((page != NULL) == (st == CAIRN_OK));
    if (page) {
        /* the body says which page this is */
        uint32_t which;
        memcpy(&which, page + 64, 4);
        assert_int_equal(which, r->phys);
        assert_int_equal(r->pno, r->phys / 3);
    }
    s->phys[s->n] = r->phys;
    s->st[s->n] = st;
    snprintf(s->msg[s->n], sizeof s->msg[0], "%s", st ? cairn_last_error() : "");
    if (++s->n == s->stop_at)
        return cerr_set(CAIRN_EIO, "stopped by the callback");
    return CAIRN_OK;
}

/* Pages spread so that reads form more runs than a batch (and than a
 * queue of depth 2) holds, refs in shuffled order, one page damaged, one
 * reference past the end of the file: every page reaches the callback once,
 * in physical order, verified or with a message naming it; a callback
 * error stops the walk and leaves nothing in flight; a failing read gives
 * its run's pages that failure and the walk goes on. posix and io_uring. */
static void test_read_refs(void **state)
{
    (void)state;
    char dir[600], path[700];
    new_dir(dir, sizeof dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    snprintf(path, sizeof path, "%s/f.pages", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    struct page_ref refs[RR_N + 1], copy[RR_N + 1];
    uint8_t page[8192] __attribute__((aligned(4096)));
    uint32_t maxphys = 0;
    for (uint32_t k = 0; k < RR_N; k++) {
        uint32_t phys = 3 + 150 * k + (k % 3); /* 150 apart: a run each */
        memset(page, 0, sizeof page);
        struct page_hdr h = {.type = PT_VEC, .coll_id = 7, .space = 0, .page_no = phys / 3,
                             .lsn = 1000 + phys};
        page_hdr_put(page, &h);
        memcpy(page + 64, &phys, 4);
        page_seal(page);
        if (k == 20)
            page[5000] ^= 1; /* damaged */
        assert_int_equal(pwrite(fd, page, sizeof page, (off_t)phys * 8192), (ssize_t)sizeof page);
        refs[(k * 17) % RR_N] = (struct page_ref){.phys = phys, .pno = phys / 3,
                                                  .lsn = 1000 + phys, .type = 0, .space = 0};
        maxphys = phys;
    }
    uint32_t npages = maxphys + 1;
    refs[RR_N] = (struct page_ref){.phys = npages + 5, .pno = (npages + 5) / 3, .lsn = 1};
    uint32_t damaged = 3 + 150 * 20 + 20 % 3;
    void *bufv = NULL;
    assert_int_equal(posix_memalign(&bufv, 4096, 2 * (size_t)PFILE_READ_BATCH * 8192), 0);
    for (int be = 0; be < 2; be++) {
        cio *c = NULL;
        if (be == 1 && !cio_uring_available())
            break;
        assert_int_equal(cio_ctx_open(&c, be ? CAIRN_IO_URING : CAIRN_IO_POSIX, 2), CAIRN_OK);
        /* whole walk */
        struct rr_seen sn = {0};
        memcpy(copy, refs, sizeof refs);
        assert_int_equal(pfile_read_refs(c, fd, path, 7, npages, copy, RR_N + 1, bufv, rr_fn,
                                         &sn), CAIRN_OK);
        assert_int_equal(sn.n, RR_N + 1);
        assert_int_equal(sn.phys[0], npages + 5); /* outside the file: said first */
        assert_int_equal(sn.st[0], CAIRN_ECORRUPT);
        assert_non_null(strstr(sn.msg[0], "outside the file"));
        for (size_t i = 1; i < sn.n; i++) {
            if (i > 1)
                assert_true(sn.phys[i] > sn.phys[i - 1]);
            if (sn.phys[i] == damaged) {
                assert_int_equal(sn.st[i], CAIRN_ECORRUPT);
                char want[64];
                snprintf(want, sizeof want, "page %u ", damaged);
                assert_non_null(strstr(sn.msg[i], want));
            } else {
                assert_int_equal(sn.st[i], CAIRN_OK);
            }
        }
        /* stopped by the callback half way: its status, nothing in flight */
        struct rr_seen st2 = {.stop_at = 30};
        memcpy(copy, refs, sizeof refs);
        assert_int_equal(pfile_read_refs(c, fd, path, 7, npages, copy, RR_N + 1, bufv, rr_fn,
                                         &st2), CAIRN_EIO);
        assert_int_equal(st2.n, 30);
        assert_non_null(strstr(cairn_last_error(), "stopped by the callback"));
        struct cio_req q = {.fd = fd, .buf = bufv, .len = 8192, .off = 8192 * 3, .path = path};
        assert_int_equal(cio_read_batch_begin(c, &q, 1), CAIRN_OK);
        assert_int_equal(cio_read_batch_end(c, &q, 1), CAIRN_OK);
        /* the 5th read fails: that run's page gets EIO, the walk goes on */
        struct cio_fault_plan fp = {.ops = CIO_FOP_READ, .nth = 5, .kind = CIO_FAULT_EIO};
        struct rr_seen sf = {0};
        memcpy(copy, refs, sizeof refs);
        cio_fault_set(&fp);
        cairn_status st = pfile_read_refs(c, fd, path, 7, npages, copy, RR_N + 1, bufv, rr_fn,
                                          &sf);
        cio_fault_set(NULL);
        assert_int_equal(st, CAIRN_OK);
        assert_int_equal(sf.n, RR_N + 1);
        size_t eio = 0;
        for (size_t i = 0; i < sf.n; i++)
            if (sf.st[i] == CAIRN_EIO) {
                eio++;
                assert_non_null(strstr(sf.msg[i], "could not read file"));
            }
        assert_int_equal(eio, 1);
        cio_ctx_close(c);
    }
    free(bufv);
    close(fd);
}

int main(void)
{
    tu_quiet_log();
    g_seed = tu_seed("ckpt", 20261121);
    if (tu_tmpbase(tmpbase, sizeof tmpbase, "ckpt") != 0) {
        perror("tmpdir");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reopen_same_state),
        cmocka_unit_test(test_concurrent_writers),
        cmocka_unit_test(test_wal_removal_and_hook),
        cmocka_unit_test(test_drop_removes_file),
        cmocka_unit_test(test_corrupt_page_reported),
        cmocka_unit_test(test_superblock_fallback),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_fault_each_op),
        cmocka_unit_test(test_prewrite),
        cmocka_unit_test(test_prewrite_faults),
        cmocka_unit_test(test_read_refs),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (rc == 0)
        tu_rm_rf(tmpbase);
    return rc;
}
