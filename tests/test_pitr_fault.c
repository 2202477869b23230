/*
 * test_pitr_fault.c — invariant 7 over the point-in-time recovery
 * operations: the Nth I/O operation fails (common/io.c fault seam,
 * cio_fault_set) for n = 1, 2, ... until a run in which no fault fires,
 * in each of four phases, each run on fresh copies of a fixture made
 * without faults:
 *
 *   backup       pitr_backup, full, of a closed database into a repository
 *                holding a full backup and the archived WAL after it;
 *   incremental  the same, incremental (parent: that full backup);
 *   archive      pitr_archive of the database into a repository holding
 *                only the full backup;
 *   restore      pitr_restore into a new directory from the repository
 *                with the backup and the archive: --latest on even n, to
 *                the restore point "rp" on odd n;
 *   replace      pitr_restore --into-existing of collection "small" at
 *                "rp" into (a copy of) the database, from that repository.
 *
 * The fixture: a SYNC database (2 MiB WAL segments, checkpoints only when
 * asked, every segment kept) with tu_mix's three collections; commits, a
 * checkpoint, the full backup (database closed), commits, restore point
 * "rp", commits, a checkpoint, commits, a WAL switch; then the archive.
 * What a restore must give (--latest, and at "rp") comes from restores of
 * the fixture without faults; --latest must equal the database itself.
 *
 * Per run, the faulted call either succeeds or fails with the injected
 * status (CAIRN_EIO / CAIRN_ENOSPC) and a message naming a path of the
 * run. Then, without faults:
 *   - pitr_verify finds no problem in the repository (a backup, segment
 *     or history file is there whole or not at all);
 *   - a failed restore left no target directory (a "<target>.partial" may
 *     stay: the next restore removes it); a restore that succeeded holds
 *     the expected state;
 *   - a replace left the database its old self or its new self (with
 *     "small" as at "rp"), as it said: the new one only if it succeeded
 *     or failed after the swap;
 *   - the call again succeeds (a restore into the same target), and a
 *     restore then gives the expected state: a failure left nothing in the
 *     way of the next attempt;
 *   - backup and archive: the database still opens to its own state.
 *
 * A failure that leaves a replace's work directory ("<DB>.replace") is
 * allowed: the next replace removes it.
 *
 * Faults at the Nth operation of every kind the seam counts (write, sync,
 * metadata, read: one index space): for every n, once and persistent (n
 * and all later), EIO and ENOSPC taking turns; then short writes from the
 * Nth write on (each writes half of its bytes, really, and the I/O layer
 * must resubmit the rest), for which the call must succeed and give what
 * it gives without faults; then the Nth memory allocation (tests/oom.h:
 * the library's and jansson's), once and persistent, the call failing
 * with CAIRN_ENOMEM and held to the same checks (no manifest, summary or
 * history published that does not read back; no crash, no leak), at every
 * allocation up to the 64th and every 29th after (every one with --full);
 * the replace, which does
 * several times the operations of the others (a restore, a checkpoint, a
 * copy of the database), at every 4th n (1, 5, 9, ...) unless --full. A
 * restore's WAL fetchers run in threads of their own, so which operation
 * is the Nth can differ between two runs of the same n; every outcome is
 * held to the same checks. A run that hangs is stopped by an alarm naming
 * it. A failure prints the line to rerun that one run.
 *
 *   test_pitr_fault [--full] [--phase backup|incremental|archive|restore|replace]
 *                   [--kind EIO|ENOSPC|SHORT|ENOMEM]
 *                   [--only EIO|ENOSPC|ENOMEM,once|persist,N|SHORT,persist,N] [--keep]
 *                   [--verbose]
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cairn.h"
#include "common/io.h"
#include "oom.h"
#include "pitr/pitr.h"
#include "testutil.h"

enum phase { PH_BACKUP, PH_INCR, PH_ARCHIVE, PH_RESTORE, PH_REPLACE, PH_N };
static const char *const phase_name[PH_N] = {"backup", "incremental", "archive", "restore",
                                             "replace"};
static const char *const g_replaced[] = {"small"};

static char g_tmp[512];
static char g_run[200];
static int g_verbose;
static bool g_keep;
static const char *g_kind; /* --kind: only the passes of this fault kind */

/* the fixture */
static char g_db[700], g_repo_base[700], g_repo_full[700];
static struct tu_dig g_latest, g_at_rp, g_replaced_state;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    cio_fault_set(NULL);
    oom_clear();
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "test_pitr_fault: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (g_run[0])
        fprintf(stderr, "rerun: test_pitr_fault %s\n", g_run);
    if (!g_keep)
        tu_rm_rf(g_tmp);
    else
        fprintf(stderr, "kept: %s\n", g_tmp);
    exit(1);
}

static void on_alarm(int sig)
{
    (void)sig;
    static const char m[] = "test_pitr_fault: a run hung (alarm); rerun: test_pitr_fault ";
    ssize_t w = write(2, m, sizeof m - 1);
    w = write(2, g_run, strlen(g_run));
    w = write(2, "\n", 1);
    (void)w;
    _exit(1);
}

static void must(cairn_status st, const char *what)
{
    if (st)
        die("%s: %s: %s", what, cairn_status_name(st), cairn_last_error());
}

static uint64_t keep_all(void *ctx)
{
    (void)ctx;
    return 0; /* every segment stays: the archive is made after close */
}

static cairn_options db_opts(void)
{
    cairn_options o = tu_opts(CAIRN_DURABILITY_SYNC, CAIRN_IO_POSIX, 1);
    o.checkpoint_wal_bytes = UINT64_MAX;
    o.checkpoint_interval_s = 0;
    o.wal_retain = keep_all;
    return o;
}

static repo *open_repo(const char *dir, bool create)
{
    repo *r = NULL;
    struct repo_open_opts o = {.create = create};
    must(repo_open(dir, &o, &r), dir);
    return r;
}

static void txns(cairn_db *db, uint64_t *rng, int n)
{
    for (int i = 0; i < n; i++)
        must(tu_mix_txn(db, rng, NULL), "commit");
}

static void digest_dir(const char *dir, struct tu_dig *d, const char *what)
{
    cairn_options o = db_opts();
    cairn_db *db = NULL;
    cairn_status st = cairn_open(dir, &o, &db);
    if (st)
        die("%s: open \"%s\": %s: %s", what, dir, cairn_status_name(st), cairn_last_error());
    if (tu_state_digest(db, d, 0) != 0)
        die("%s: digest of \"%s\": %s", what, dir, tu_error());
    must(cairn_close(db), "close");
}

static void restore_opts(struct pitr_restore_opts *o, bool at_rp)
{
    memset(o, 0, sizeof *o);
    o->kind = at_rp ? PITR_TARGET_NAME : PITR_TARGET_LATEST;
    o->name = at_rp ? "rp" : NULL;
    o->jobs = 2;
}

static void replace_opts(struct pitr_restore_opts *o)
{
    restore_opts(o, true);
    o->collections = g_replaced;
    o->ncollections = 1;
    o->into_existing = true;
}

/* pitr_restore with o from repodir into dir, without faults: it must
 * succeed; *d gets the state of dir after it. */
static void restored_digest(const char *repodir, const char *dir,
                            const struct pitr_restore_opts *o, struct tu_dig *d, const char *what)
{
    repo *r = open_repo(repodir, false);
    struct pitr_restore_result res;
    cairn_status st = pitr_restore(r, dir, o, &res);
    pitr_plan_free(&res.plan);
    repo_close(r);
    if (st)
        die("%s: %s into \"%s\": %s: %s", what, o->into_existing ? "replace" : "restore", dir,
            cairn_status_name(st), cairn_last_error());
    digest_dir(dir, d, what);
}

/* A restore without faults into target (removed after) equals want. */
static void restore_check(const char *repodir, const char *target, bool at_rp,
                          const struct tu_dig *want, const char *what)
{
    struct pitr_restore_opts o;
    restore_opts(&o, at_rp);
    struct tu_dig got = {0};
    restored_digest(repodir, target, &o, &got, what);
    if (!tu_dig_eq(&got, want))
        die("%s: the restore %s differs from the fixture's", what,
            at_rp ? "to \"rp\"" : "--latest");
    tu_dig_free(&got);
    if (tu_rm_rf(target) != 0)
        die("%s: remove %s: %s", what, target, tu_error());
}

static void verify_problem(void *ctx, const char *problem)
{
    (void)ctx;
    fprintf(stderr, "  verify: %s\n", problem);
}

static void verify_clean(const char *repodir, const char *what)
{
    repo *r = open_repo(repodir, false);
    struct pitr_verify_result vr;
    cairn_status st = pitr_verify(r, verify_problem, NULL, &vr);
    repo_close(r);
    if (st || vr.problems)
        die("%s: verify: %s, %" PRIu64 " problem(s) (above)", what, cairn_status_name(st),
            vr.problems);
}

static void prepare(void)
{
    uint64_t rng = tu_seed("test_pitr_fault", 0x9173);
    snprintf(g_db, sizeof g_db, "%s/fixture-db", g_tmp);
    snprintf(g_repo_base, sizeof g_repo_base, "%s/fixture-repo-base", g_tmp);
    snprintf(g_repo_full, sizeof g_repo_full, "%s/fixture-repo-full", g_tmp);
    cairn_options o = db_opts();
    cairn_db *db = NULL;
    must(cairn_open(g_db, &o, &db), "create the fixture");
    must(tu_mix_create(db), "collections");
    txns(db, &rng, 12);
    must(cairn_checkpoint(db, NULL), "checkpoint");
    must(cairn_close(db), "close");
    repo *r = open_repo(g_repo_base, true);
    struct pitr_backup_opts bo = {0};
    struct pitr_backup_result br;
    must(pitr_backup(g_db, r, &bo, &br), "full backup");
    repo_close(r);
    must(cairn_open(g_db, &o, &db), "reopen the fixture");
    txns(db, &rng, 10);
    must(cairn_restore_point(db, "rp", NULL), "restore point");
    txns(db, &rng, 10);
    must(cairn_checkpoint(db, NULL), "checkpoint");
    txns(db, &rng, 6);
    must(cairn_wal_switch(db, NULL), "WAL switch");
    must(cairn_close(db), "close");
    if (tu_link_tree(g_repo_base, g_repo_full) != 0)
        die("link %s: %s", g_repo_full, tu_error());
    r = open_repo(g_repo_full, false);
    struct pitr_archive_result ar;
    must(pitr_archive(g_db, r, 0, &ar), "archive");
    repo_close(r);
    if (ar.archived == 0)
        die("the fixture archived no segment");

    /* the expected states, from restores without faults (from a linked
     * copy: a restore adds its timeline's history to the repository) */
    char probe[800], scratch[800];
    snprintf(probe, sizeof probe, "%s/probe", g_tmp);
    snprintf(scratch, sizeof scratch, "%s/probe-repo", g_tmp);
    struct tu_dig own = {0};
    struct pitr_restore_opts ro;
    for (int at_rp = 0; at_rp < 2; at_rp++) {
        if (tu_link_tree(g_repo_full, scratch) != 0)
            die("link %s: %s", scratch, tu_error());
        restore_opts(&ro, at_rp);
        restored_digest(scratch, probe, &ro, at_rp ? &g_at_rp : &g_latest, "fixture");
        if (tu_rm_rf(probe) != 0 || tu_rm_rf(scratch) != 0)
            die("remove %s: %s", probe, tu_error());
    }
    char copy[800];
    snprintf(copy, sizeof copy, "%s/dbcopy", g_tmp);
    if (tu_copy_tree(g_db, copy) != 0)
        die("copy: %s", tu_error());
    digest_dir(copy, &own, "fixture");
    /* and the state a replace of "small" at "rp" gives */
    if (tu_link_tree(g_repo_full, scratch) != 0)
        die("link %s: %s", scratch, tu_error());
    replace_opts(&ro);
    restored_digest(scratch, copy, &ro, &g_replaced_state, "fixture");
    tu_rm_rf(copy);
    tu_rm_rf(scratch);
    if (tu_dig_eq(&g_replaced_state, &own))
        die("the fixture's replace changed nothing: \"small\" is the same at \"rp\"");
    if (!tu_dig_eq(&own, &g_latest))
        die("the fixture's --latest restore differs from the database");
    if (tu_dig_eq(&g_latest, &g_at_rp))
        die("the fixture's restore point is at its end: nothing to tell them apart");
    tu_dig_free(&own);
}

struct run {
    enum phase ph;
    cairn_status kind; /* CAIRN_EIO, CAIRN_ENOSPC or CAIRN_ENOMEM (the Nth
                          allocation fails: oom.h); ignored with short_writes */
    int persistent;
    uint64_t n;
    bool short_writes; /* the Nth write and every later one writes half of
                          its bytes (persistent): the call must succeed */
};

static const char *kind_name(const struct run *r)
{
    return r->short_writes ? "SHORT" : r->kind == CAIRN_EIO ? "EIO"
                                   : r->kind == CAIRN_ENOSPC ? "ENOSPC" : "ENOMEM";
}

/* A failure of the faulted call must be the injected status with a
 * message naming a path of this run. */
static void check_failure(const struct run *r, const char *dir, const char *what,
                          cairn_status st)
{
    const char *msg = cairn_last_error();
    if (st != r->kind)
        die("%s failed with %s, not the injected %s: %s", what, cairn_status_name(st),
            cairn_status_name(r->kind), msg);
    if (!msg || !strstr(msg, dir))
        die("%s failed with %s; the message names no path under \"%s\": %s", what,
            cairn_status_name(st), dir, msg ? msg : "(none)");
}

/* One run; *fired: whether the fault fired. */
static void one_run(const struct run *ru, bool *fired)
{
    snprintf(g_run, sizeof g_run, "--phase %s --only %s,%s,%" PRIu64, phase_name[ru->ph],
             kind_name(ru), ru->persistent ? "persist" : "once", ru->n);
    alarm(120);
    char dir[800], db[900], rp[900], target[900], what[300];
    snprintf(dir, sizeof dir, "%s/run", g_tmp);
    snprintf(db, sizeof db, "%s/db", dir);
    snprintf(rp, sizeof rp, "%s/repo", dir);
    snprintf(target, sizeof target, "%s/restored", dir);
    snprintf(what, sizeof what, "run %s", g_run);
    if (mkdir(dir, 0755) != 0)
        die("mkdir %s: %s", dir, strerror(errno));
    if (ru->ph != PH_RESTORE && tu_copy_tree(g_db, db) != 0)
        die("copy: %s", tu_error());
    if (tu_link_tree(ru->ph == PH_ARCHIVE ? g_repo_base : g_repo_full, rp) != 0)
        die("link: %s", tu_error());
    bool at_rp = ru->ph == PH_RESTORE && (ru->n & 1);
    const struct tu_dig *want = at_rp ? &g_at_rp : &g_latest;

    repo *r = open_repo(rp, false);
    struct cio_fault_plan fp = {.ops = CIO_FOP_WRITE | CIO_FOP_SYNC | CIO_FOP_READ | CIO_FOP_META,
                                .nth = ru->n,
                                .kind = ru->kind == CAIRN_EIO ? CIO_FAULT_EIO : CIO_FAULT_ENOSPC,
                                .persistent = ru->persistent};
    if (ru->short_writes)
        fp = (struct cio_fault_plan){.ops = CIO_FOP_WRITE, .nth = ru->n,
                                     .kind = CIO_FAULT_SHORT, .persistent = 1};
    struct pitr_backup_opts bo = {.incremental = ru->ph == PH_INCR};
    struct pitr_backup_result br;
    struct pitr_archive_result ar;
    struct pitr_restore_opts ro;
    struct pitr_restore_result res;
    memset(&res, 0, sizeof res);
    if (ru->ph == PH_REPLACE)
        replace_opts(&ro);
    else
        restore_opts(&ro, at_rp);
    cairn_status st;
    bool alloc = ru->kind == CAIRN_ENOMEM && !ru->short_writes;
    if (alloc)
        oom_set(ru->n, ru->persistent);
    else
        cio_fault_set(&fp);
    switch (ru->ph) {
    case PH_BACKUP:
    case PH_INCR:
        st = pitr_backup(db, r, &bo, &br);
        break;
    case PH_ARCHIVE:
        st = pitr_archive(db, r, 0, &ar);
        break;
    case PH_REPLACE:
        st = pitr_restore(r, db, &ro, &res);
        break;
    default:
        st = pitr_restore(r, target, &ro, &res);
        break;
    }
    *fired = (alloc ? oom_fired() : cio_fault_fired()) > 0;
    cio_fault_set(NULL);
    oom_clear();
    pitr_plan_free(&res.plan);
    if (st && ru->short_writes)
        die("%s: %s failed under short writes, which the I/O layer must resubmit: %s: %s",
            what, phase_name[ru->ph], cairn_status_name(st), cairn_last_error());
    if (st)
        check_failure(ru, dir, phase_name[ru->ph], st);
    if (!*fired && st)
        die("%s: %s failed without a fault: %s", what, phase_name[ru->ph],
            cairn_last_error());
    if (g_verbose)
        printf("  %s: %s%s%s\n", g_run, st ? cairn_status_name(st) : "ok", st ? ": " : "",
               st ? cairn_last_error() : "");

    /* without faults from here on */
    verify_clean(rp, what);
    struct stat sb;
    if (ru->ph == PH_RESTORE) {
        if (st) {
            if (lstat(target, &sb) == 0)
                die("%s: the failed restore left its target \"%s\"", what, target);
        } else {
            struct tu_dig got = {0};
            digest_dir(target, &got, what);
            if (!tu_dig_eq(&got, want))
                die("%s: the restore succeeded under the fault with another state", what);
            tu_dig_free(&got);
            if (tu_rm_rf(target) != 0)
                die("remove %s: %s", target, tu_error());
        }
        /* again, into the same target (a .partial left is removed) */
        repo_close(r);
        restore_check(rp, target, at_rp, want, what);
    } else if (ru->ph == PH_REPLACE) {
        struct tu_dig got = {0};
        digest_dir(db, &got, what);
        if (tu_dig_eq(&got, &g_replaced_state)) {
            if (st && g_verbose)
                printf("  %s: failed after the swap: the new database\n", g_run);
        } else if (!tu_dig_eq(&got, &g_latest)) {
            die("%s: after the replace the database is neither its old nor its new self", what);
        } else if (!st) {
            die("%s: the replace succeeded but the database is its old self", what);
        }
        tu_dig_free(&got);
        st = pitr_restore(r, db, &ro, &res);
        pitr_plan_free(&res.plan);
        repo_close(r);
        if (st)
            die("%s: replace again without faults: %s: %s", what, cairn_status_name(st),
                cairn_last_error());
        verify_clean(rp, what);
        digest_dir(db, &got, what);
        if (!tu_dig_eq(&got, &g_replaced_state))
            die("%s: the replace again without faults gave another state", what);
        tu_dig_free(&got);
    } else {
        switch (ru->ph) {
        case PH_ARCHIVE:
            st = pitr_archive(db, r, 0, &ar);
            break;
        default:
            st = pitr_backup(db, r, &bo, &br);
            break;
        }
        repo_close(r);
        if (st)
            die("%s: %s again without faults: %s: %s", what, phase_name[ru->ph],
                cairn_status_name(st), cairn_last_error());
        verify_clean(rp, what);
        restore_check(rp, target, false, &g_latest, what);
        struct tu_dig got = {0};
        digest_dir(db, &got, what);
        if (!tu_dig_eq(&got, &g_latest))
            die("%s: the database no longer opens to its own state", what);
        tu_dig_free(&got);
    }
    if (tu_rm_rf(dir) != 0)
        die("remove %s: %s", dir, tu_error());
    alarm(0);
    g_run[0] = 0;
}

/* The allocations a pass of ENOMEM fails, unless --full: every one of the
 * first OOM_DENSE (the set-up of each step, where most distinct failure
 * paths are), then every OOM_SPARSE-th (the loops over pages, blobs and
 * records repeat the same few). */
#define OOM_DENSE 64u
#define OOM_SPARSE 29u

/* stride: the loop fails operations 1, 1 + stride, 1 + 2 stride, ... (an
 * ENOMEM pass: as above, or every allocation with full) */
static void loop(enum phase ph, uint64_t stride, bool full)
{
    uint64_t runs = 0, failed_runs = 0;
    /* pass 0: once, 1: persistent, 2: short writes from the Nth write on;
     * 3 and 4: the Nth allocation fails, once and persistent (where the
     * link could wrap the allocators) */
    int passes = oom_wrapped() ? 5 : 3;
    for (int pass = 0; pass < passes; pass++) {
        const char *pk = pass >= 3 ? "ENOMEM" : pass == 2 ? "SHORT" : "EIO/ENOSPC";
        if (g_kind && !strstr(pk, g_kind))
            continue;
        uint64_t n = 1;
        for (uint64_t k = 0;; k++) {
            struct run ru = {ph, pass >= 3 ? CAIRN_ENOMEM : (k & 1) ? CAIRN_ENOSPC : CAIRN_EIO,
                             pass == 1 || pass == 2 || pass == 4, n, pass == 2};
            bool fired;
            one_run(&ru, &fired);
            runs++;
            if (!fired)
                break;
            failed_runs++;
            if (n > 100000)
                die("phase %s: no end to the operations", phase_name[ph]);
            n += pass < 3 ? stride : full || n < OOM_DENSE ? 1 : OOM_SPARSE;
        }
    }
    printf("phase %s: %" PRIu64 " runs (every %" PRIu64 " operation(s); allocations: %s), %" PRIu64
           " with a fault\n",
           phase_name[ph], runs, stride,
           !oom_wrapped() ? "not wrapped, skipped" : full ? "every one"
                                                       : "the first 64, then every 29th",
           failed_runs);
}

int main(int argc, char **argv)
{
    int only_phase = -1;
    bool full = false;
    struct run only = {0};
    bool have_only = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--phase") && i + 1 < argc) {
            const char *p = argv[++i];
            for (int k = 0; k < PH_N; k++)
                if (!strcmp(p, phase_name[k]))
                    only_phase = k;
            if (only_phase < 0) {
                fprintf(stderr, "test_pitr_fault: unknown phase \"%s\"\n", p);
                return 2;
            }
        } else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
            char kind[16], how[16];
            unsigned long long n;
            if (sscanf(argv[++i], "%15[^,],%15[^,],%llu", kind, how, &n) != 3 ||
                (strcmp(kind, "EIO") && strcmp(kind, "ENOSPC") && strcmp(kind, "SHORT") &&
                 strcmp(kind, "ENOMEM")) ||
                (strcmp(how, "once") && strcmp(how, "persist")) || n == 0 ||
                (!strcmp(kind, "SHORT") && strcmp(how, "persist"))) {
                fprintf(stderr, "test_pitr_fault: --only wants EIO|ENOSPC|ENOMEM,once|persist,N "
                                "or SHORT,persist,N\n");
                return 2;
            }
            only.kind = !strcmp(kind, "EIO")      ? CAIRN_EIO
                        : !strcmp(kind, "ENOMEM") ? CAIRN_ENOMEM
                                                  : CAIRN_ENOSPC;
            only.short_writes = !strcmp(kind, "SHORT");
            only.persistent = !strcmp(how, "persist");
            only.n = n;
            have_only = true;
        } else if (!strcmp(argv[i], "--kind") && i + 1 < argc) {
            g_kind = argv[++i];
        } else if (!strcmp(argv[i], "--full")) {
            full = true;
        } else if (!strcmp(argv[i], "--keep")) {
            g_keep = true;
        } else if (!strcmp(argv[i], "--verbose")) {
            g_verbose++;
        } else {
            fprintf(stderr, "usage: test_pitr_fault [--full] [--phase backup|incremental|archive|"
                            "restore|replace] [--kind EIO|ENOSPC|SHORT|ENOMEM] [--only EIO|ENOSPC|ENOMEM,once|persist,N|"
                            "SHORT,persist,N] [--keep] [--verbose]\n");
            return 2;
        }
    }
    if (have_only && only_phase < 0) {
        fprintf(stderr, "test_pitr_fault: --only needs --phase\n");
        return 2;
    }
    tu_quiet_log();
    signal(SIGALRM, on_alarm);
    if (tu_tmpbase(g_tmp, sizeof g_tmp, "pitr_fault") != 0) {
        perror("test_pitr_fault: temporary directory");
        return 1;
    }
    prepare();
    if (have_only) {
        only.ph = (enum phase)only_phase;
        bool fired;
        one_run(&only, &fired);
        printf("run: the fault %s\n", fired ? "fired" : "did not fire");
    } else {
        for (int k = 0; k < PH_N; k++)
            if (only_phase < 0 || only_phase == k)
                loop((enum phase)k, full || k != PH_REPLACE ? 1 : 4, full);
    }
    tu_dig_free(&g_latest);
    tu_dig_free(&g_at_rp);
    tu_dig_free(&g_replaced_state);
    tu_rm_rf(g_tmp);
    printf("test_pitr_fault: ok\n");
    return 0;
}
