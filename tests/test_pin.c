/*
 * test_pin.c — checkpoint pins (engine/pin.c): a pinned checkpoint stays
 * readable while checkpoints go on, and its copy opens to exactly its state.
 *
 * 1. protects_pages: with a pin held, checkpoints that rewrite every page
 *    reuse none of the pinned image's, and its copy equals the state at the
 *    pinned checkpoint; the control: the same run with the pin file taken
 *    away under the pinner's feet reuses them, and the copy is refused as
 *    corrupt (naming the file and page), leaving no directory behind.
 * 2. keeps_dropped_and_wal: a collection dropped after the pinned
 *    checkpoint keeps its page file, and the WAL segment holding the
 *    pinned redo LSN stays, while pinned; both go once the pin is released.
 * 3. survives_reopen: the engine closed and reopened while a pin is held
 *    honours it (pages of the pinned image are found from the pin file).
 * 4. stale: a pinner that dies without releasing leaves a file that the
 *    next checkpoint removes (and a *.tmp of one that died half way).
 * 4b. unreadable_pin: a held pin file that cannot be read holds every page
 *    and every WAL segment back; let go, it is stale and removed.
 * 4c. copy_faults: an I/O failure (EIO once, ENOSPC from there on) at each
 *    operation of a copy in turn: the injected status, no directory left
 *    behind, except a whole copy when only the parent fsync after the
 *    rename failed; and a checkpoint of no collection copies and opens.
 *    Taking a pin under the same failures leaves no pin file.
 * 4d. broken_pinned_image: a pinned image that cannot be read whole at open
 *    (a page file it holds is gone) warns, the open goes on, and the copy
 *    of that pin fails naming the file.
 * 5. refusals: no checkpoint yet, target exists, a leftover .partial, a
 *    canceled copy, a corrupt page of the pinned image: each a clear status
 *    and nothing left behind.
 * 6. two_processes: a second process pins and copies checkpoints slowly
 *    (it waits, half way through each copy, until two more checkpoints
 *    completed) while two writer threads commit and background checkpoints
 *    run; every copy opens to exactly the oracle's state at its redo LSN,
 *    replaying nothing, and cairn_check finds nothing wrong in it.
 *
 * Seeded: CAIRN_SEED replays a run. CAIRN_PIN_COPIES: copies in case 6
 * (default 4).
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
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cairn.h"
#include "common/io.h"
#include "testutil.h"
#include "testutil_cmocka.h"

static char tmpbase[512];
static int dbcounter;
static uint64_t g_seed;

static void new_dir(char *out, size_t n, const char *what)
{
    snprintf(out, n, "%s/%s%d", tmpbase, what, dbcounter++);
}

static void digest(cairn_db *db, struct tu_dig *d)
{
    if (tu_state_digest(db, d, TU_DIG_ID_BYTES) != 0)
        fail_msg("digest: %s", tu_error());
}

static bool exists(const char *dir, const char *rel)
{
    char p[800];
    snprintf(p, sizeof p, "%s%s%s", dir, rel ? "/" : "", rel ? rel : "");
    struct stat sb;
    return lstat(p, &sb) == 0;
}

static size_t count_suffix(const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    size_t n = 0, ls = strlen(suffix);
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        n += l > ls && strcmp(e->d_name + l - ls, suffix) == 0;
    }
    closedir(d);
    return n;
}

static off_t file_size(const char *dir, const char *rel)
{
    char p[800];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    struct stat sb;
    return stat(p, &sb) == 0 ? sb.st_size : -1;
}

#define DIM 48

/* Upserts ids [0, n) of coll with vectors and payloads from (salt, id). */
static void fill(cairn_db *db, const char *coll, uint32_t n, uint32_t salt)
{
    float v[DIM];
    for (uint32_t base = 0; base < n; base += 100) {
        cairn_txn *t = NULL;
        must(cairn_txn_begin(db, &t), "begin");
        for (uint32_t id = base; id < n && id < base + 100; id++) {
            tu_gen_vector(salt * 7919u + id, v, DIM);
            size_t plen = 0;
            char *pay = tu_gen_payload(salt + id, id % 7 == 0 ? 3000 : 40, &plen);
            must(cairn_txn_upsert(t, coll, id, v, DIM, pay, plen), "upsert");
            free(pay);
        }
        must(cairn_txn_commit(t, NULL), "commit");
        cairn_txn_free(t);
    }
}

/* Copies the pin to target and checks that it opens to `want`, from the
 * pinned checkpoint, replaying nothing. */
/* The copy at target opens to `want`, from the pinned checkpoint, replaying
 * nothing, checks clean, and takes commits and checkpoints of its own. */
static void check_copy(const cairn_pin_info *pi, const char *target, const struct tu_dig *want)
{
    char partial[700];
    snprintf(partial, sizeof partial, "%s.partial", target);
    assert_false(exists(partial, NULL));
    cairn_db *c = must_open(target);
    struct tu_dig got = {0};
    digest(c, &got);
    if (!tu_dig_eq(want, &got))
        fail_msg("the copy of pinned checkpoint %" PRIu64 " differs from its state",
                 pi->generation);
    tu_dig_free(&got);
    cairn_stats s;
    must(cairn_stats_get(c, &s), "stats");
    assert_int_equal(s.recovery.checkpoint, pi->generation);
    assert_int_equal(s.recovery.records_replayed, 0);
    cairn_check_report rep;
    must(cairn_check(c, &rep), "check of the copy");
    assert_int_equal(rep.generation, pi->generation);
    assert_int_equal(rep.warnings, 0);
    /* the copy is a database of its own: it takes commits and checkpoints */
    fill(c, "a", 10, 99);
    must(cairn_checkpoint(c, NULL), "checkpoint of the copy");
    must(cairn_close(c), "close copy");
}

static void copy_and_check(cairn_pin *pin, const cairn_pin_info *pi, const char *target,
                           const struct tu_dig *want)
{
    must(cairn_pin_copy(pin, target, NULL, NULL), "pin copy");
    check_copy(pi, target, want);
}

/* ---- 1 ----------------------------------------------------------------------- */

static void rewrite_and_checkpoint(cairn_db *db, int rounds, uint32_t n)
{
    for (int r = 0; r < rounds; r++) {
        fill(db, "a", n, 1000u + (uint32_t)r);
        must(cairn_checkpoint(db, NULL), "checkpoint");
    }
}

static void test_protects_pages(void **state)
{
    (void)state;
    for (int control = 0; control < 2; control++) {
        char dir[600], target[700];
        new_dir(dir, sizeof dir, "db");
        snprintf(target, sizeof target, "%s-copy", dir);
        cairn_db *db = must_open(dir);
        must(cairn_collection_create(db, "a", DIM, CAIRN_METRIC_L2), "create");
        fill(db, "a", 600, 1);
        must(cairn_checkpoint(db, NULL), "checkpoint 1");
        struct tu_dig want = {0};
        digest(db, &want);
        cairn_pin *pin = NULL;
        cairn_pin_info pi;
        must(cairn_pin_open(dir, &pin, &pi), "pin");
        assert_int_equal(pi.generation, 1);
        assert_int_equal(pi.collections, 1);
        char pins[700];
        snprintf(pins, sizeof pins, "%s/pins", dir);
        assert_int_equal(count_suffix(pins, ".pin"), 1);
        off_t before = file_size(dir, "collections/1.pages");
        if (control) {
            /* the pinner is still there, but its pin file is gone */
            DIR *d = opendir(pins);
            struct dirent *e;
            while ((e = readdir(d))) {
                if (strstr(e->d_name, ".pin")) {
                    char p[1000];
                    snprintf(p, sizeof p, "%s/%s", pins, e->d_name);
                    assert_int_equal(unlink(p), 0);
                }
            }
            closedir(d);
        }
        /* every page rewritten three times: without the pin, checkpoint 3
         * reuses the pages checkpoint 2 freed, which are checkpoint 1's */
        rewrite_and_checkpoint(db, 3, 600);
        off_t after = file_size(dir, "collections/1.pages");
        if (!control) {
            assert_true(after >= 3 * before - 8192 * 4);
            copy_and_check(pin, &pi, target, &want);
            must(cairn_pin_close(pin), "unpin");
            assert_int_equal(count_suffix(pins, ".pin"), 0);
        } else {
            cairn_status st = cairn_pin_copy(pin, target, NULL, NULL);
            if (st != CAIRN_ECORRUPT)
                fail_msg("copy of an unpinned, overwritten checkpoint: %s (%s)",
                         cairn_status_name(st), cairn_last_error());
            /* the first reused page it meets names itself */
            assert_non_null(strstr(cairn_last_error(), ".pages\": page "));
            assert_false(exists(target, NULL));
            char partial[800];
            snprintf(partial, sizeof partial, "%s.partial", target);
            assert_false(exists(partial, NULL));
            assert_true(after < 3 * before);
            cairn_pin_close(pin); /* its file is gone: ENOTFOUND is fine here */
        }
        tu_dig_free(&want);
        must(cairn_close(db), "close");
    }
}

/* ---- 2 ----------------------------------------------------------------------- */

static void test_keeps_dropped_and_wal(void **state)
{
    (void)state;
    char dir[600], target[700];
    new_dir(dir, sizeof dir, "db");
    snprintf(target, sizeof target, "%s-copy", dir);
    cairn_db *db = must_open(dir);
    must(cairn_collection_create(db, "a", DIM, CAIRN_METRIC_L2), "create a");
    must(cairn_collection_create(db, "b", DIM, CAIRN_METRIC_COSINE), "create b");
    fill(db, "a", 300, 1);
    fill(db, "b", 300, 2);
    must(cairn_checkpoint(db, NULL), "checkpoint 1");
    struct tu_dig want = {0};
    digest(db, &want);
    cairn_pin *pin = NULL;
    cairn_pin_info pi;
    must(cairn_pin_open(dir, &pin, &pi), "pin");
    char wal[700];
    snprintf(wal, sizeof wal, "%s/wal", dir);
    must(cairn_collection_drop(db, "b"), "drop b");
    /* enough WAL for several 2 MiB segments, with checkpoints between */
    for (int r = 0; r < 6; r++) {
        fill(db, "a", 300, 50u + (uint32_t)r);
        fill(db, "a", 300, 60u + (uint32_t)r);
        must(cairn_checkpoint(db, NULL), "checkpoint");
    }
    assert_true(exists(dir, "collections/2.pages"));
    size_t segs_pinned = count_suffix(wal, ".wal");
    assert_true(segs_pinned >= 3);
    copy_and_check(pin, &pi, target, &want);
    must(cairn_pin_close(pin), "unpin");
    must(cairn_checkpoint(db, NULL), "checkpoint after unpin");
    must(cairn_checkpoint(db, NULL), "checkpoint after unpin 2");
    assert_false(exists(dir, "collections/2.pages"));
    assert_true(count_suffix(wal, ".wal") < segs_pinned);
    tu_dig_free(&want);
    must(cairn_close(db), "close");
}

/* ---- 3 ----------------------------------------------------------------------- */

static void test_survives_reopen(void **state)
{
    (void)state;
    char dir[600], target[700];
    new_dir(dir, sizeof dir, "db");
    snprintf(target, sizeof target, "%s-copy", dir);
    cairn_db *db = must_open(dir);
    must(cairn_collection_create(db, "a", DIM, CAIRN_METRIC_L2), "create a");
    must(cairn_collection_create(db, "gone", DIM, CAIRN_METRIC_L2), "create gone");
    fill(db, "a", 600, 1);
    fill(db, "gone", 100, 3);
    must(cairn_checkpoint(db, NULL), "checkpoint 1");
    struct tu_dig want = {0};
    digest(db, &want);
    cairn_pin *pin = NULL;
    cairn_pin_info pi;
    must(cairn_pin_open(dir, &pin, &pi), "pin");
    /* checkpoint 2 replaces every page of 1 and drops "gone"; after the
     * reopen, checkpoints 3 and 4 would reuse what 2 freed */
    must(cairn_collection_drop(db, "gone"), "drop");
    rewrite_and_checkpoint(db, 1, 600);
    must(cairn_close(db), "close");
    db = must_open(dir);
    assert_true(exists(dir, "collections/2.pages"));
    rewrite_and_checkpoint(db, 3, 600);
    assert_true(exists(dir, "collections/2.pages"));
    copy_and_check(pin, &pi, target, &want);
    must(cairn_pin_close(pin), "unpin");
    rewrite_and_checkpoint(db, 2, 600);
    assert_false(exists(dir, "collections/2.pages"));
    tu_dig_free(&want);
    must(cairn_close(db), "close");
}

/* ---- 4 ----------------------------------------------------------------------- */

static void test_stale(void **state)
{
    (void)state;
    char dir[600], pins[700];
    new_dir(dir, sizeof dir, "db");
    snprintf(pins, sizeof pins, "%s/pins", dir);
    cairn_db *db = must_open(dir);
    must(cairn_collection_create(db, "a", DIM, CAIRN_METRIC_L2), "create");
    fill(db, "a", 200, 1);
    must(cairn_checkpoint(db, NULL), "checkpoint 1");
    must(cairn_close(db), "close"); /* no engine thread across the fork */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        cairn_pin *pin = NULL;
        _exit(cairn_pin_open(dir, &pin, NULL) == CAIRN_OK ? 0 : 1); /* dies holding it */
    }
    int ws = 0;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    assert_int_equal(count_suffix(pins, ".pin"), 1);
    char tmp[800];
    snprintf(tmp, sizeof tmp, "%s/1-0000000000000000.pin.tmp", pins);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fputs("half made", f);
    fclose(f);
    /* the open removes both */
    db = must_open(dir);
    assert_int_equal(count_suffix(pins, ".pin"), 0);
    assert_int_equal(count_suffix(pins, ".tmp"), 0);
    /* a live pin, and a copy of its file that nobody holds: the next
     * checkpoint removes only the copy */
    cairn_pin *live = NULL;
    must(cairn_pin_open(dir, &live, NULL), "pin");
    DIR *d = opendir(pins);
    struct dirent *e;
    char src[1100] = "";
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".pin"))
            snprintf(src, sizeof src, "%s/%s", pins, e->d_name);
    closedir(d);
    size_t len = 0;
    unsigned char *bytes = tu_read_file(src, &len);
    assert_non_null(bytes);
    snprintf(tmp, sizeof tmp, "%s/2-0000000000000000.pin", pins);
    f = fopen(tmp, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, len, f), len);
    fclose(f);
    free(bytes);
    assert_int_equal(count_suffix(pins, ".pin"), 2);
    fill(db, "a", 200, 2);
    must(cairn_checkpoint(db, NULL), "checkpoint 2");
    assert_int_equal(count_suffix(pins, ".pin"), 1);
    assert_true(exists(src, NULL));
    must(cairn_pin_close(live), "unpin");
    assert_int_equal(count_suffix(pins, ".pin"), 0);
    must(cairn_close(db), "close");
}

/* 4b. A pin file held by someone but unreadable pins everything: no page
 * is reused and no WAL removed while it is held; once let go it is stale
 * and removed. */
static void test_unreadable_pin(void **state)
{
    (void)state;
    char dir[600], pins[700], bad[800], wal[700];
    new_dir(dir, sizeof dir, "db");
    snprintf(pins, sizeof pins, "%s/pins", dir);
    snprintf(bad, sizeof bad, "%s/1-badbadbadbadbadb.pin", pins);
    snprintf(wal, sizeof wal, "%s/wal", dir);
    cairn_db *db = must_open(dir);
    must(cairn_collection_create(db, "a", DIM, CAIRN_METRIC_L2), "create");
    fill(db, "a", 600, 1);
    must(cairn_checkpoint(db, NULL), "checkpoint 1");
    off_t before = file_size(dir, "collections/1.pages");
    assert_int_equal(mkdir(pins, 0755), 0);
    int fd = open(bad, O_RDWR | O_CREAT, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "not a pin", 9), 9);
    assert_int_equal(flock(fd, LOCK_SH), 0);
    rewrite_and_checkpoint(db, 3, 600);
    /* nothing reused: 4 images' worth of pages */
    assert_true(file_size(dir, "collections/1.pages") >= 3 * before - 8192 * 4);
    /* several segments of WAL, checkpoints between: the first one stays */
    for (int r = 0; r < 6; r++) {
        fill(db, "a", 300, 50u + (uint32_t)r);
        fill(db, "a", 300, 60u + (uint32_t)r);
        must(cairn_checkpoint(db, NULL), "checkpoint");
    }
    assert_true(count_suffix(wal, ".wal") >= 3);
    assert_true(exists(wal, "00000001-0000000000000000.wal"));
    assert_true(exists(bad, NULL));
    close(fd); /* let go: stale */
    must(cairn_checkpoint(db, NULL), "checkpoint after release");
    assert_false(exists(bad, NULL));
    must(cairn_checkpoint(db, NULL), "second checkpoint after release");
    assert_false(exists(wal, "00000001-0000000000000000.wal"));
    must(cairn_close(db), "close");
}

/* 4c. The copy under an I/O failure at each of its operations in turn
 * (EIO once, ENOSPC from there on): it fails with that status and leaves
 * neither the target nor the partial directory, unless only the last
 * step (the fsync of the parent after the rename) failed, and then the
 * target is whole. Also: a checkpoint of no collection copies and opens. */
static void test_copy_faults(void **state)
{
    (void)state;
    char dir[600], target[700], partial[800];
    new_dir(dir, sizeof dir, "db");
    snprintf(target, sizeof target, "%s-copy", dir);
    snprintf(partial, sizeof partial, "%s.partial", target);
    cairn_db *db = must_open(dir);
    must(cairn_checkpoint(db, NULL), "checkpoint of nothing");
    cairn_pin *pin = NULL;
    cairn_pin_info pi;
    must(cairn_pin_open(dir, &pin, &pi), "pin");
    assert_int_equal(pi.collections, 0);
    must(cairn_pin_copy(pin, target, NULL, NULL), "copy of nothing");
    cairn_db *c = must_open(target);
    cairn_collection_info *cl = NULL;
    size_t ncl = 9;
    must(cairn_collection_list(c, &cl, &ncl), "list");
    assert_int_equal(ncl, 0);
    cairn_free(cl);
    must(cairn_close(c), "close copy");
    assert_int_equal(tu_rm_rf(target), 0);
    must(cairn_pin_close(pin), "unpin");

    must(cairn_collection_create(db, "a", DIM, CAIRN_METRIC_L2), "create a");
    must(cairn_collection_create(db, "b", DIM, CAIRN_METRIC_COSINE), "create b");
    fill(db, "a", 700, 1);
    fill(db, "b", 200, 2);
    must(cairn_checkpoint(db, NULL), "checkpoint");
    struct tu_dig want = {0};
    digest(db, &want);
    must(cairn_pin_open(dir, &pin, &pi), "pin");
    must(cairn_close(db), "close"); /* no engine I/O counted by the seam */
    unsigned runs = 0, whole = 0;
    for (int kind = 0; kind < 2; kind++) {
        for (uint64_t n = 1;; n++) {
            struct cio_fault_plan p = {
                .ops = CIO_FOP_WRITE | CIO_FOP_SYNC | CIO_FOP_READ | CIO_FOP_META, .nth = n,
                .kind = kind ? CIO_FAULT_ENOSPC : CIO_FAULT_EIO, .persistent = kind};
            cio_fault_set(&p);
            cairn_status st = cairn_pin_copy(pin, target, NULL, NULL);
            uint64_t fired = cio_fault_fired();
            cio_fault_set(NULL);
            if (!fired) { /* past the copy's last operation: it worked */
                must(st, "copy without a fault");
                check_copy(&pi, target, &want);
                assert_int_equal(tu_rm_rf(target), 0);
                break;
            }
            runs++;
            if (st != (kind ? CAIRN_ENOSPC : CAIRN_EIO))
                fail_msg("copy with fault %d at op %" PRIu64 ": %s (%s)", kind, n,
                         cairn_status_name(st), cairn_last_error());
            assert_non_null(strstr(cairn_last_error(), target));
            assert_false(exists(partial, NULL));
            if (exists(target, NULL)) {
                whole++;
                check_copy(&pi, target, &want);
                assert_int_equal(tu_rm_rf(target), 0);
            }
        }
    }
    print_message("copy faults: %u failed copies, %u of them whole (the parent fsync)\n",
                  runs, whole);
    assert_true(runs > 20);
    tu_dig_free(&want);
    must(cairn_pin_close(pin), "unpin");

    /* taking a pin under the same failures: the status, and no pin file
     * (nor a half-made one) left */
    char pins[700];
    snprintf(pins, sizeof pins, "%s/pins", dir);
    unsigned pruns = 0;
    for (uint64_t n = 1;; n++) {
        struct cio_fault_plan p = {
            .ops = CIO_FOP_WRITE | CIO_FOP_SYNC | CIO_FOP_READ | CIO_FOP_META, .nth = n,
            .kind = CIO_FAULT_EIO};
        cio_fault_set(&p);
        cairn_pin *q = NULL;
        cairn_status st = cairn_pin_open(dir, &q, NULL);
        uint64_t fired = cio_fault_fired();
        cio_fault_set(NULL);
        if (!fired) {
            must(st, "pin without a fault");
            assert_int_equal(count_suffix(pins, ".pin"), 1);
            must(cairn_pin_close(q), "unpin");
            break;
        }
        pruns++;
        assert_int_equal(st, CAIRN_EIO);
        assert_null(q);
        assert_int_equal(count_suffix(pins, ".pin"), 0);
        assert_int_equal(count_suffix(pins, ".tmp"), 0);
    }
    assert_true(pruns >= 3);
}

/* 4d. A pinned image that cannot be read whole at open (here the page
 * file of a collection it holds is gone) does not keep the database
 * closed: the open warns and goes on, and the copy of that pin fails
 * cleanly, naming the file. */
static void test_broken_pinned_image(void **state)
{
    (void)state;
    char dir[600], target[700], gone[800];
    new_dir(dir, sizeof dir, "db");
    snprintf(target, sizeof target, "%s-copy", dir);
    snprintf(gone, sizeof gone, "%s/collections/2.pages", dir);
    cairn_db *db = must_open(dir);
    must(cairn_collection_create(db, "a", DIM, CAIRN_METRIC_L2), "create a");
    must(cairn_collection_create(db, "gone", DIM, CAIRN_METRIC_L2), "create gone");
    fill(db, "a", 200, 1);
    fill(db, "gone", 100, 3);
    must(cairn_checkpoint(db, NULL), "checkpoint 1");
    cairn_pin *pin = NULL;
    must(cairn_pin_open(dir, &pin, NULL), "pin");
    must(cairn_collection_drop(db, "gone"), "drop");
    must(cairn_checkpoint(db, NULL), "checkpoint 2");
    struct tu_dig want = {0};
    digest(db, &want);
    must(cairn_close(db), "close");
    assert_int_equal(unlink(gone), 0);
    db = must_open(dir);
    struct tu_dig got = {0};
    digest(db, &got);
    assert_true(tu_dig_eq(&want, &got));
    rewrite_and_checkpoint(db, 2, 200);
    cairn_status st = cairn_pin_copy(pin, target, NULL, NULL);
    assert_int_not_equal(st, CAIRN_OK);
    assert_non_null(strstr(cairn_last_error(), "collections/2.pages"));
    assert_false(exists(target, NULL));
    must(cairn_pin_close(pin), "unpin");
    tu_dig_free(&want);
    tu_dig_free(&got);
    must(cairn_close(db), "close");
}

/* ---- 5 ----------------------------------------------------------------------- */

static int cancel_at(void *ctx, uint64_t done, uint64_t total)
{
    assert_true(done <= total);
    return done >= *(uint64_t *)ctx;
}

static void test_refusals(void **state)
{
    (void)state;
    char dir[600], target[700], partial[800];
    new_dir(dir, sizeof dir, "db");
    snprintf(target, sizeof target, "%s-copy", dir);
    snprintf(partial, sizeof partial, "%s.partial", target);
    cairn_db *db = must_open(dir);
    cairn_pin *pin = NULL;
    cairn_status st = cairn_pin_open(dir, &pin, NULL);
    assert_int_equal(st, CAIRN_ENOTFOUND);
    assert_non_null(strstr(cairn_last_error(), "no checkpoint"));
    assert_null(pin);
    char nodb[700];
    snprintf(nodb, sizeof nodb, "%s-none", dir);
    assert_int_not_equal(cairn_pin_open(nodb, &pin, NULL), CAIRN_OK);
    assert_non_null(strstr(cairn_last_error(), "meta"));

    must(cairn_collection_create(db, "a", DIM, CAIRN_METRIC_L2), "create");
    fill(db, "a", 400, 1);
    must(cairn_checkpoint(db, NULL), "checkpoint 1");
    must(cairn_pin_open(dir, &pin, NULL), "pin");

    /* target exists */
    assert_int_equal(mkdir(target, 0755), 0);
    assert_int_equal(cairn_pin_copy(pin, target, NULL, NULL), CAIRN_EEXIST);
    assert_non_null(strstr(cairn_last_error(), target));
    assert_int_equal(rmdir(target), 0);
    /* a leftover partial copy */
    assert_int_equal(mkdir(partial, 0755), 0);
    assert_int_equal(cairn_pin_copy(pin, target, NULL, NULL), CAIRN_EEXIST);
    assert_non_null(strstr(cairn_last_error(), ".partial"));
    assert_int_equal(rmdir(partial), 0);
    /* canceled half way: nothing left */
    uint64_t at = 8192 * 5;
    assert_int_equal(cairn_pin_copy(pin, target, cancel_at, &at), CAIRN_ECANCELED);
    assert_false(exists(target, NULL));
    assert_false(exists(partial, NULL));
    /* a damaged page of the pinned image: refused, naming file and page */
    must(cairn_close(db), "close");
    char pf[800];
    snprintf(pf, sizeof pf, "%s/collections/1.pages", dir);
    int fd = open(pf, O_RDWR);
    assert_true(fd >= 0);
    struct stat sb;
    assert_int_equal(fstat(fd, &sb), 0);
    /* every page of the file from 1 on belongs to checkpoint 1 */
    off_t off = (off_t)(sb.st_size / 8192 / 2) * 8192 + 100;
    unsigned char b;
    assert_int_equal(pread(fd, &b, 1, off), 1);
    b ^= 0x40;
    assert_int_equal(pwrite(fd, &b, 1, off), 1);
    close(fd);
    st = cairn_pin_copy(pin, target, NULL, NULL);
    assert_int_equal(st, CAIRN_ECORRUPT);
    assert_non_null(strstr(cairn_last_error(), "collections/1.pages"));
    char pg[64];
    snprintf(pg, sizeof pg, "page %lld", (long long)(off / 8192));
    if (!strstr(cairn_last_error(), pg))
        fail_msg("message does not name %s: %s", pg, cairn_last_error());
    assert_false(exists(target, NULL));
    assert_false(exists(partial, NULL));
    must(cairn_pin_close(pin), "unpin");
}

/* ---- 6 ----------------------------------------------------------------------- */

#define NWRITERS 2
#define IDS 300

struct op {
    uint64_t lsn;    /* commit LSN of its transaction */
    uint64_t seq;    /* order within its writer */
    uint32_t coll;   /* 0 "a", 1 "b" */
    uint64_t id;
    uint32_t vseed;  /* 0: delete */
    uint32_t pad;
};

struct writer {
    cairn_db *db;
    int idx;
    uint64_t rng;
    atomic_bool *stop;
    struct op *ops;
    size_t n, cap;
    cairn_status err;
    char msg[512];
};

static const char *const wcoll[2] = {"a", "b"};

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    float v[DIM];
    struct op pend[6];
    while (!atomic_load(w->stop)) {
        cairn_txn *t = NULL;
        cairn_status st = cairn_txn_begin(w->db, &t);
        unsigned nops = 1 + (unsigned)(tu_splitmix(&w->rng) % 5), k = 0;
        for (; !st && k < nops; k++) {
            struct op *o = &pend[k];
            o->coll = (uint32_t)(tu_splitmix(&w->rng) % 2);
            o->id = (uint64_t)w->idx * 1000 + tu_splitmix(&w->rng) % IDS;
            bool del = tu_splitmix(&w->rng) % 6 == 0;
            o->vseed = del ? 0 : 1 + (uint32_t)(tu_splitmix(&w->rng) % 1000000);
            o->pad = tu_splitmix(&w->rng) % 10 == 0 ? 2500 : 30;
            if (del) {
                st = cairn_txn_delete(t, wcoll[o->coll], o->id);
            } else {
                tu_gen_vector(o->vseed, v, DIM);
                size_t plen = 0;
                char *pay = tu_gen_payload(o->vseed, o->pad, &plen);
                st = pay ? cairn_txn_upsert(t, wcoll[o->coll], o->id, v, DIM, pay, plen)
                         : CAIRN_ENOMEM;
                free(pay);
            }
        }
        cairn_commit_info ci;
        if (!st)
            st = cairn_txn_commit(t, &ci);
        cairn_txn_free(t);
        if (st) {
            w->err = st;
            snprintf(w->msg, sizeof w->msg, "%s", cairn_last_error());
            break;
        }
        for (unsigned i = 0; i < k; i++) {
            if (w->n == w->cap) {
                w->cap = w->cap ? w->cap * 2 : 1024;
                w->ops = realloc(w->ops, w->cap * sizeof *w->ops);
                if (!w->ops)
                    abort();
            }
            pend[i].lsn = ci.commit_lsn;
            pend[i].seq = w->n;
            w->ops[w->n++] = pend[i];
        }
    }
    return NULL;
}

static int cmp_op(const void *a, const void *b)
{
    const struct op *x = a, *y = b;
    if (x->lsn != y->lsn)
        return x->lsn < y->lsn ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The child: copies pinned checkpoints slowly until told to stop. Each
 * line of `results`: "k gen redo checkpoints_during_copy". */
struct slow {
    const char *dir;
    uint64_t pinned, pages;
    bool waited;
};

/* The current checkpoint generation, through a pin of its own. */
static uint64_t current_gen(const char *dir)
{
    cairn_pin *p = NULL;
    cairn_pin_info pi;
    if (cairn_pin_open(dir, &p, &pi) != CAIRN_OK)
        return 0;
    cairn_pin_close(p);
    return pi.generation;
}

/* Slow, and half way through waits until two more checkpoints completed:
 * the second may reuse what the first freed, i.e. pages of the image being
 * copied, if the pin did not hold them. */
static int slow_progress(void *ctx, uint64_t done, uint64_t total)
{
    struct slow *s = ctx;
    if (++s->pages % 4 == 0)
        usleep(1000);
    if (!s->waited && done * 2 >= total) {
        s->waited = true;
        for (int i = 0; i < 3000 && current_gen(s->dir) < s->pinned + 2; i++)
            usleep(10000);
    }
    return 0;
}

static int copier(const char *dir, const char *base, int go_fd, int stop_fd, int copies,
                  const char *results)
{
    char c;
    if (read(go_fd, &c, 1) != 1)
        return 2;
    FILE *out = fopen(results, "w");
    if (!out)
        return 3;
    for (int k = 0; k < copies; k++) {
        cairn_pin *pin = NULL;
        cairn_pin_info pi;
        cairn_status st = cairn_pin_open(dir, &pin, &pi);
        if (st) {
            fprintf(stderr, "copier: pin: %s\n", cairn_last_error());
            return 4;
        }
        char target[800];
        snprintf(target, sizeof target, "%s/copy%d", base, k);
        struct slow s = {.dir = dir, .pinned = pi.generation};
        st = cairn_pin_copy(pin, target, slow_progress, &s);
        if (st) {
            fprintf(stderr, "copier: copy %d of checkpoint %" PRIu64 ": %s\n", k,
                    pi.generation, cairn_last_error());
            return 5;
        }
        /* how many checkpoints completed while this one was copied */
        cairn_pin *now = NULL;
        cairn_pin_info ni;
        if (cairn_pin_open(dir, &now, &ni) != CAIRN_OK)
            return 6;
        cairn_pin_close(now);
        if (ni.generation < pi.generation + 2) {
            fprintf(stderr, "copier: only %" PRIu64 " checkpoints completed during copy %d "
                    "in 30 s\n", ni.generation - pi.generation, k);
            return 7;
        }
        fprintf(out, "%d %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", k, pi.generation,
                pi.redo_lsn, ni.generation - pi.generation);
        fflush(out);
        cairn_pin_close(pin);
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
        (void)stop_fd;
    }
    fclose(out);
    return 0;
}

static void test_two_processes(void **state)
{
    (void)state;
    char dir[600], base[700], results[800];
    new_dir(dir, sizeof dir, "db");
    snprintf(base, sizeof base, "%s-copies", dir);
    snprintf(results, sizeof results, "%s/results", base);
    assert_int_equal(mkdir(base, 0755), 0);
    int copies = (int)tu_seed_env("CAIRN_PIN_COPIES", 4);
    int go[2];
    assert_int_equal(pipe(go), 0);
    /* forked before any engine thread exists */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(go[1]);
        _exit(copier(dir, base, go[0], -1, copies, results));
    }
    close(go[0]);

    cairn_options o = opts();
    o.checkpoint_wal_bytes = 96 * 1024; /* background checkpoints, often */
    cairn_db *db = must_open_o(dir, &o);
    must(cairn_collection_create(db, "a", DIM, CAIRN_METRIC_L2), "create a");
    must(cairn_collection_create(db, "b", DIM, CAIRN_METRIC_COSINE), "create b");
    must(cairn_checkpoint(db, NULL), "first checkpoint");
    atomic_bool stop = false;
    struct writer w[NWRITERS];
    pthread_t th[NWRITERS];
    for (int i = 0; i < NWRITERS; i++) {
        w[i] = (struct writer){.db = db, .idx = i, .rng = g_seed * 31 + (uint64_t)i,
                               .stop = &stop};
        assert_int_equal(pthread_create(&th[i], NULL, writer_main, &w[i]), 0);
    }
    assert_int_equal(write(go[1], "g", 1), 1);
    close(go[1]);
    int ws = 0;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    atomic_store(&stop, true);
    for (int i = 0; i < NWRITERS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < NWRITERS; i++)
        if (w[i].err)
            fail_msg("writer %d: %s: %s", i, cairn_status_name(w[i].err), w[i].msg);
    if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
        fail_msg("the copier process failed (status %d)", ws);
    cairn_stats s;
    must(cairn_stats_get(db, &s), "stats");
    must(cairn_close(db), "close");

    /* every op, in commit order */
    size_t n = 0;
    for (int i = 0; i < NWRITERS; i++)
        n += w[i].n;
    struct op *all = malloc((n ? n : 1) * sizeof *all);
    assert_non_null(all);
    n = 0;
    for (int i = 0; i < NWRITERS; i++) {
        memcpy(all + n, w[i].ops, w[i].n * sizeof *all);
        n += w[i].n;
        free(w[i].ops);
    }
    qsort(all, n, sizeof *all, cmp_op);
    FILE *f = fopen(results, "r");
    assert_non_null(f);
    int k;
    uint64_t gen, redo, during, total_during = 0;
    int seen = 0;
    while (fscanf(f, "%d %" SCNu64 " %" SCNu64 " %" SCNu64, &k, &gen, &redo, &during) == 4) {
        struct tu_model m = {0};
        assert_int_equal(tu_model_create(&m, "a", DIM, CAIRN_METRIC_L2), 0);
        assert_int_equal(tu_model_create(&m, "b", DIM, CAIRN_METRIC_COSINE), 0);
        for (size_t i = 0; i < n && all[i].lsn < redo; i++) {
            const struct op *op = &all[i];
            int r = op->vseed ? tu_model_upsert(&m, wcoll[op->coll], op->id, op->vseed, op->pad)
                              : tu_model_delete(&m, wcoll[op->coll], op->id);
            (void)r; /* deleting an absent id is a no-op */
        }
        char target[800];
        snprintf(target, sizeof target, "%s/copy%d", base, k);
        cairn_db *c = must_open(target);
        struct tu_dig want = {0}, got = {0};
        assert_int_equal(tu_model_digest(&m, &want), 0);
        if (tu_state_digest(c, &got, 0) != 0)
            fail_msg("digest: %s", tu_error());
        if (!tu_dig_eq(&want, &got)) {
            char why[512];
            tu_model_explain(c, &m, why, sizeof why);
            fail_msg("copy %d of checkpoint %" PRIu64 " (redo %" PRIu64 ") is not the state "
                     "at its redo LSN: %s", k, gen, redo, why);
        }
        cairn_stats cs;
        must(cairn_stats_get(c, &cs), "stats");
        assert_int_equal(cs.recovery.checkpoint, gen);
        assert_int_equal(cs.recovery.records_replayed, 0);
        cairn_check_report rep;
        must(cairn_check(c, &rep), "check of a copy");
        must(cairn_close(c), "close copy");
        tu_dig_free(&want);
        tu_dig_free(&got);
        tu_model_free(&m);
        total_during += during;
        seen++;
    }
    fclose(f);
    free(all);
    print_message("two processes: %d copies verified, %" PRIu64 " checkpoints completed "
                  "during them, %" PRIu64 " commits\n", seen, total_during, s.commits);
    assert_int_equal(seen, copies);
    /* the copies were made while checkpoints ran, or the test proves nothing */
    assert_true(total_during >= 2 * (uint64_t)copies);
}

int main(void)
{
    tu_quiet_log();
    g_seed = tu_seed("pin", 20261121);
    if (tu_tmpbase(tmpbase, sizeof tmpbase, "pin") != 0) {
        perror("tmpbase");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_protects_pages),
        cmocka_unit_test(test_keeps_dropped_and_wal),
        cmocka_unit_test(test_survives_reopen),
        cmocka_unit_test(test_stale),
        cmocka_unit_test(test_unreadable_pin),
        cmocka_unit_test(test_copy_faults),
        cmocka_unit_test(test_broken_pinned_image),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_two_processes),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (rc == 0)
        tu_rm_rf(tmpbase);
    return rc;
}
