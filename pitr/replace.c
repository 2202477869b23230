/*
 * replace.c — a partial restore into an existing database (pitr_replace,
 * `pitrctl restore REPO DB --collection NAME... --into-existing`): the
 * named collections come back as they were at the target, the others
 * stay as they are, and the database goes on on a new timeline.
 *
 * The database must be one of this repository's (same database id) and
 * closed: this process holds it open from the first step to the swap, so
 * nothing else can write it meanwhile (another open gets CAIRN_EBUSY).
 *
 *   1. Checks that change nothing: the names, the directory (a cairn
 *      database of this repository, not a symbolic link), the plan (the
 *      planner's refusals, as for any restore).
 *   2. The database is opened (crash recovery as at any open; the lock),
 *      and only then the work directory "<DB>.replace" looked at (a
 *      running replace holds the lock and owns it): removed when a crashed
 *      run left it, refused when it is not ours; made again with its
 *      marker, and a probe that the file system swaps directories (two
 *      empty ones exchanged), so that a refusal comes before the work.
 *   3. The collections at the target are restored into a scratch
 *      directory "<DB>.replace/src" (pages, WAL, the one replay engine,
 *      with the partial restore's collection filter) and handed over in
 *      memory (engine/restore.h, "Hand-over"): nothing of them is written
 *      but the base's pages and the WAL fetched for the replay. A name
 *      with no collection at the target is refused here, with nothing
 *      changed.
 *   4. The database's current WAL segment is closed (a SWITCH), a
 *      checkpoint taken, and its complete WAL archived into the repository
 *      (pitr_archive, idempotent), so the archive of its timeline reaches
 *      the branch point: restores along the old timeline and, through the
 *      new history file, along the new one stay possible.
 *   5. A copy of the database "<DB>.replace/new" from that checkpoint
 *      (cairn_pin_copy: every page verified) with its history files;
 *      engine_restore ends the copy on the new timeline with the graft
 *      (engine/restore.h, "Graft"): one transaction dropping the
 *      collections of those names and creating them with their points at
 *      the target, logged and then applied through the replay engine,
 *      then a checkpoint. The new timeline branches from the database's
 *      timeline at its checkpoint's redo LSN (the end of its last commit).
 *   6. The new timeline's history file goes to the repository; the handle
 *      is closed with its lock kept (db_close_keep_lock: no thread or file
 *      of it touches the directory any more, no other open gets in); the
 *      copy and the database swap names in one atomic step (renameat2
 *      RENAME_EXCHANGE), both parent directories are fsynced, the lock is
 *      released and the work directory, now holding the old database,
 *      removed.
 *
 * So the database is its old self or its new self at every moment: a
 * failure or a crash before the swap leaves it as it was (its data
 * unchanged; step 4's segment switch, checkpoint and archiving are what
 * any open database does), one after the swap leaves the new one in
 * place; either way only "<DB>.replace" is left, which the next run
 * removes (or remove it by hand). The copy costs the database's size in
 * disk space and a read and write of it; the graft's transaction holds
 * every point of the replaced collections (memory: engine/restore.h).
 * The new timeline's number is above every timeline of the repository and
 * of the database's wal/.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/io.h"
#include "common/log.h"
#include "common/util.h"
#include "engine/engine_int.h"
#include "engine/restore.h"
#include "pitr/pitr.h"
#include "wal/wal.h"

#define WORK_MARK "replace-in-progress"

/* The highest timeline in dir's wal/: segment files and history files. */
static cairn_status max_timeline(const char *dbdir, uint32_t *out)
{
    *out = 0;
    char *waldir = cairn_path_join(dbdir, "wal");
    if (!waldir)
        return cerr_set(CAIRN_ENOMEM, "out of memory");
    DIR *d = opendir(waldir);
    if (!d) {
        cairn_status st = cerr_errno(errno, "could not open WAL directory \"%s\"", waldir);
        free(waldir);
        return st;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        uint32_t tl = 0;
        if ((wal_seg_parse_name(e->d_name, &tl, NULL) ||
             wal_history_parse_name(e->d_name, &tl)) &&
            tl > *out)
            *out = tl;
    }
    closedir(d);
    free(waldir);
    return CAIRN_OK;
}

struct replace {
    repo *r;
    const char *dbdir;
    const struct pitr_restore_opts *o;
    cairn_db *db;          /* the database, open (its lock) */
    char *work, *newdir;
    uint32_t new_timeline;
    struct engine_restore_result er;
    uint64_t t_graft;
};

/* Steps 4 and 5, with the state at the target in memory (src). */
static cairn_status graft_cb(void *ctx, cairn_db *src)
{
    struct replace *x = ctx;
    uint64_t t0 = cairn_mono_us();
    cairn_status st = cairn_wal_switch(x->db, NULL);
    cairn_checkpoint_info ci;
    if (!st)
        st = cairn_checkpoint(x->db, &ci);
    if (st)
        return cerr_wrap(st, "could not close the WAL of \"%s\" before replacing collections",
                         x->dbdir);
    cairn_stats s;
    st = cairn_stats_get(x->db, &s);
    struct pitr_archive_result ar;
    if (!st)
        st = pitr_archive(x->dbdir, x->r, s.durable_lsn, &ar);
    if (st)
        return cerr_wrap(st, "could not archive the WAL of \"%s\" up to where its new timeline "
                         "branches", x->dbdir);
    cairn_pin *pin = NULL;
    cairn_pin_info pi;
    st = cairn_pin_open(x->dbdir, &pin, &pi);
    if (!st)
        st = cairn_pin_copy(pin, x->newdir, NULL, NULL); /* history files included */
    if (pin) {
        struct cerr_saved msg; /* the close clears the copy's message */
        cerr_save(&msg);
        cairn_pin_close(pin);
        cerr_restore(&msg, st);
    }
    if (st)
        return cerr_wrap(st, "could not copy \"%s\" to replace collections in it", x->dbdir);
    struct engine_tl_hop hop = {.timeline = pi.timeline, .start_lsn = 0,
                                .until_lsn = UINT64_MAX};
    struct engine_restore_opts eo = {.hops = &hop,
                                     .nhops = 1,
                                     .target = {.kind = REPLAY_TO_END},
                                     .jobs = x->o->jobs,
                                     .new_timeline = x->new_timeline,
                                     .graft_src = src,
                                     .graft_names = x->o->collections,
                                     .ngraft = x->o->ncollections};
    st = engine_restore(x->newdir, &eo, &x->er);
    x->t_graft = cairn_mono_us() - t0;
    return st;
}

/* Step 1: what the database directory must be. */
static cairn_status check_db(repo *r, const char *dbdir, uint32_t *timeline)
{
    struct stat sb;
    if (lstat(dbdir, &sb) != 0)
        return cerr_errno(errno, "could not replace collections in \"%s\"", dbdir);
    if (S_ISLNK(sb.st_mode))
        return cerr_set(CAIRN_EINVAL, "could not replace collections in \"%s\": it is a "
                        "symbolic link (give the database directory itself: it is swapped "
                        "with a new one)", dbdir);
    if (!S_ISDIR(sb.st_mode))
        return cerr_set(CAIRN_EINVAL, "could not replace collections in \"%s\": not a "
                        "directory", dbdir);
    uint64_t db_id = 0;
    uint32_t shift = 0;
    cairn_status st = db_meta_read(dbdir, &db_id, &shift, timeline);
    if (st)
        return cerr_wrap(st, "could not replace collections in \"%s\": not a cairn database",
                         dbdir);
    if (r->db_id && db_id != r->db_id)
        return cerr_set(CAIRN_EINVAL, "could not replace collections in \"%s\": it is database "
                        "%016" PRIX64 ", the repository holds database %016" PRIX64 " (restore "
                        "into a new directory instead)", dbdir, db_id, r->db_id);
    if (!r->db_id)
        return cerr_set(CAIRN_ENOTFOUND, "could not replace collections in \"%s\": the "
                        "repository holds no backup or WAL yet", dbdir);
    return st;
}

/* Is the work directory one a run left? It holds the marker, or it is a
 * directory a run was killed in before the marker was there: empty, or
 * holding only the marker's temporary file (cairn_durable_replace). */
static bool work_is_ours(const char *work)
{
    DIR *d = opendir(work);
    if (!d)
        return false;
    bool mark = false, other = false;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
            !strcmp(e->d_name, WORK_MARK ".tmp"))
            continue;
        if (!strcmp(e->d_name, WORK_MARK))
            mark = true;
        else
            other = true;
    }
    closedir(d);
    return mark || !other;
}

/* Removes the work directory, its marker last: a run killed meanwhile
 * leaves a directory still recognized as ours. */
static void remove_work(const char *work)
{
    DIR *d = opendir(work);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
            !strcmp(e->d_name, WORK_MARK))
            continue;
        char *p = cairn_path_join(work, e->d_name);
        if (p)
            cfs_remove_tree(p);
        free(p);
    }
    closedir(d);
    cfs_remove_tree(work);
}

static cairn_status not_ours(const char *work)
{
    return cerr_set(CAIRN_EEXIST, "\"%s\" exists and was not left by a restore into an "
                    "existing database (no \"%s\" in it): move it away", work, WORK_MARK);
}

/* Step 1: the work directory; a crashed run's is removed. */
static cairn_status clear_work(const char *work)
{
    struct stat sb;
    if (lstat(work, &sb) != 0)
        return CAIRN_OK;
    if (!S_ISDIR(sb.st_mode) || !work_is_ours(work))
        return not_ours(work);
    clog_info("removing \"%s\", left by a restore into an existing database that did not "
              "finish", work);
    remove_work(work);
    if (lstat(work, &sb) == 0)
        return cerr_set(CAIRN_EIO, "could not remove \"%s\", left by an earlier restore", work);
    return cfs_fsync_parent(work);
}

/* The work directory with its marker, and a probe that the file system
 * swaps directories (two empty ones in it), so a refusal comes before the
 * expensive work rather than at the end. */
static cairn_status make_work(const char *work, const char *dbdir, uint32_t old_tl, uint32_t tl)
{
    cairn_status st = cfs_mkdir_durable(work, 0755);
    char *mark = cairn_path_join(work, WORK_MARK);
    char *pa = cairn_path_join(work, "probe-a"), *pb = cairn_path_join(work, "probe-b");
    if (!st && (!mark || !pa || !pb))
        st = cerr_set(CAIRN_ENOMEM, "out of memory");
    if (!st) {
        char text[512];
        int n = snprintf(text, sizeof text, "restore of collections into \"%s\" (timeline %"
                         PRIu32 " -> %" PRIu32 ")\n", dbdir, old_tl, tl);
        st = cairn_durable_replace(mark, text, (size_t)n);
    }
    if (!st)
        st = cfs_mkdir(pa, 0755);
    if (!st)
        st = cfs_mkdir(pb, 0755);
    if (!st)
        st = cfs_exchange(pa, pb);
    if (pa && pb) {
        rmdir(pa);
        rmdir(pb);
    }
    free(mark);
    free(pa);
    free(pb);
    return st;
}

cairn_status pitr_replace(repo *r, const char *dbdir, const struct pitr_restore_opts *o,
                          struct pitr_restore_result *res)
{
    memset(res, 0, sizeof *res);
    uint64_t t0 = cairn_mono_us();
    if (!o->ncollections || !o->collections)
        return cerr_set(CAIRN_EINVAL, "--into-existing needs --collection NAME: a whole "
                        "database is restored into a new directory");
    for (size_t i = 0; i < o->ncollections; i++) {
        cairn_status cst = cat_check_name(o->collections[i], "collection");
        if (cst)
            return cerr_wrap(cst, "--collection");
        for (size_t j = 0; j < i; j++)
            if (strcmp(o->collections[i], o->collections[j]) == 0)
                return cerr_set(CAIRN_EINVAL, "--collection \"%s\" is given twice",
                                o->collections[i]);
    }
    uint32_t old_tl = 0, db_max = 0;
    cairn_status st = check_db(r, dbdir, &old_tl);
    if (!st)
        st = max_timeline(dbdir, &db_max);
    if (st)
        return st;

    /* the plan (and its refusals): a dry run of the restore itself */
    struct pitr_restore_opts po = *o;
    po.into_existing = false;
    po.dry_run = true;
    char *work = NULL, *src = NULL, *newdir = NULL;
    if (asprintf(&work, "%s.replace", dbdir) < 0)
        return cerr_set(CAIRN_ENOMEM, "out of memory");
    src = cairn_path_join(work, "src");
    newdir = cairn_path_join(work, "new");
    if (!src || !newdir) {
        st = cerr_set(CAIRN_ENOMEM, "out of memory");
        goto out;
    }
    st = pitr_restore(r, src, &po, res);
    if (st)
        goto out;
    uint32_t tl = res->plan.new_timeline;
    if (tl <= db_max)
        tl = db_max + 1;
    if (tl <= old_tl)
        tl = old_tl + 1;
    res->plan.new_timeline = tl;
    res->old_timeline = old_tl;
    if (o->dry_run) {
        struct stat sb;
        if (lstat(work, &sb) == 0 && (!S_ISDIR(sb.st_mode) || !work_is_ours(work)))
            st = not_ours(work);
        goto out;
    }
    /* 2. the database, open (its lock held) until the swap: before the
     * work directory is looked at, which a running replace owns */
    cairn_options opts;
    cairn_options_init(&opts);
    struct replace x = {.r = r, .dbdir = dbdir, .o = o, .work = work, .newdir = newdir,
                        .new_timeline = tl};
    st = cairn_open(dbdir, &opts, &x.db);
    if (st) {
        st = cerr_wrap(st, "could not open \"%s\" to replace collections in it", dbdir);
        goto out;
    }
    int lock_fd = -1;
    bool swapped = false, made = false;
    st = clear_work(work);
    if (!st) {
        made = true; /* from here the work directory is ours to remove */
        st = make_work(work, dbdir, old_tl, tl);
    }

    /* 3-5. the state at the target, handed over to the graft */
    struct pitr_restore_opts so = *o;
    so.into_existing = false;
    so.on_replayed = graft_cb;
    so.on_replayed_ctx = &x;
    pitr_plan_free(&res->plan);
    if (!st) {
        st = pitr_restore(r, src, &so, res);
        if (st)
            st = cerr_wrap(st, "could not replace collections in \"%s\" (it is as it was)",
                           dbdir);
    }
    res->plan.new_timeline = tl;
    res->old_timeline = old_tl;

    /* 6. the history; the handle closed, its lock kept; the swap */
    if (!st)
        st = pitr_publish_history(r, newdir, tl);
    {
        /* closing clears the message of an error already there: kept */
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", st ? cairn_last_error() : "");
        cairn_status cst = db_close_keep_lock(x.db, &lock_fd);
        if (st)
            cerr_set(st, "%s", msg);
        else
            st = cst;
    }
    if (!st) {
        st = cfs_exchange(dbdir, newdir);
        swapped = st == CAIRN_OK;
    }
    if (!st)
        st = cfs_fsync_parent(dbdir);
    if (!st)
        st = cfs_fsync_dir(work);
    if (lock_fd >= 0)
        cfs_unlock(lock_fd);
    if (st) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", cairn_last_error());
        if (made && !swapped)
            remove_work(work);
        cerr_set(st, "%s%s", msg, swapped ? " (the new database is in place; its old self "
                 "is in the work directory, which may be removed)" : "");
        goto out;
    }
    /* the old database, now in the work directory, is removed */
    remove_work(work);
    if (cfs_fsync_parent(work))
        clog_warn("%s", cairn_last_error());
    res->new_timeline = tl;
    res->switch_lsn = x.er.switch_lsn;
    res->collections = x.er.collections;
    res->points = x.er.points;
    res->replaced = x.er.graft_replaced;
    res->graft_points = x.er.graft_points;
    res->graft_bytes = x.er.graft_bytes;
    res->graft_us = x.t_graft;
    res->duration_us = cairn_mono_us() - t0;
out:
    free(work);
    free(src);
    free(newdir);
    return st;
}
