/*
 * api.c — the public entry points that reach above the engine: cairn_open
 * (the engine's open, plus the continuous WAL archiver when the options
 * name a repository) and cairn_backup.
 *
 * The archiver is a thread beside the engine's, started after the open
 * and stopped by cairn_close before anything else closes (engine_set_ext).
 * Each pass runs pitr_archive with the handle's durable LSN (from inside
 * the process, that is the proof a complete segment is on stable storage),
 * about once a second (and a last time at the close). It holds segments
 * back through the engine's retention hook: a checkpoint removes a segment
 * only below the LSN the archive reaches (and below whatever a caller's
 * own wal_retain hook asks to keep). With archive_timeout_s, a segment
 * holding records older than that is closed early (wal switch), so the
 * archive is never further behind (a switch that fails, the next
 * segment's file not made for a full disk, say, is logged once and tried
 * again each second). A pass that fails (the repository's
 * disk full, say) is logged and retried on the next tick; the WAL is kept
 * meanwhile, as PostgreSQL keeps it while archive_command fails.
 * cairn_close runs one last pass before the engine closes: it archives
 * what is complete; the segment being written is not, and waits for the
 * next open (or a switch).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "engine/engine_int.h"
#include "pitr/pitr.h"
#include "wal/format.h"

struct archiver {
    cairn_db *db;
    char *dbpath;
    repo *r;
    uint64_t (*user_retain)(void *ctx);
    void *user_ctx;
    uint32_t timeout_s;
    _Atomic uint64_t archived_to; /* segments below this are in the archive */
    pthread_t thr;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    uint64_t last_end;            /* the log's end at the last look */
    uint64_t since_us;            /* when the current segment first held a new record */
    bool failing;                 /* the last pass failed (logged once) */
    bool switch_failing;          /* the last timeout switch failed (logged once) */
};

static uint64_t archiver_retain(void *ctx)
{
    struct archiver *a = ctx;
    uint64_t keep = atomic_load(&a->archived_to);
    if (a->user_retain) {
        uint64_t u = a->user_retain(a->user_ctx);
        if (u < keep)
            keep = u;
    }
    return keep;
}

static void archive_pass(struct archiver *a)
{
    cairn_stats s;
    if (cairn_stats_get(a->db, &s) != CAIRN_OK)
        return;
    uint64_t seg = (uint64_t)1 << a->db->seg_shift;
    /* archive_timeout_s: close a segment whose first unarchived record
     * waited long enough */
    if (a->timeout_s) {
        uint64_t now = cairn_mono_us();
        if (s.last_lsn != a->last_end && a->since_us == 0)
            a->since_us = now;
        a->last_end = s.last_lsn;
        uint64_t cur = s.last_lsn & ~(seg - 1);
        bool has_records = s.last_lsn > cur + WAL_SEG_DATA;
        if (has_records && a->since_us && now - a->since_us >= (uint64_t)a->timeout_s * 1000000) {
            uint64_t lsn = 0;
            if (cairn_wal_switch(a->db, &lsn) == CAIRN_OK) {
                a->since_us = 0;
                if (a->switch_failing)
                    clog_info("WAL archiver: closed the segment after the archive timeout");
                a->switch_failing = false;
            } else {
                if (!a->switch_failing)
                    clog_warn("WAL archiver: could not close the segment after the archive "
                              "timeout (%u s): %s (retrying every second)",
                              (unsigned)a->timeout_s, cairn_last_error());
                a->switch_failing = true;
            }
            cairn_stats_get(a->db, &s);
        }
    }
    struct pitr_archive_result res;
    cairn_status st = pitr_archive(a->dbpath, a->r, s.durable_lsn, &res);
    if (st) {
        if (!a->failing)
            clog_warn("WAL archiver: %s (retrying every second; the WAL is kept until it is "
                      "archived)", cairn_last_error());
        a->failing = true;
        return;
    }
    if (a->failing)
        clog_info("WAL archiver: archiving again");
    a->failing = false;
    if (res.archived_to > atomic_load(&a->archived_to))
        atomic_store(&a->archived_to, res.archived_to);
    if (res.archived)
        a->since_us = 0;
}

static void *archiver_main(void *arg)
{
    struct archiver *a = arg;
    pthread_mutex_lock(&a->mu);
    while (!a->stop) {
        pthread_mutex_unlock(&a->mu);
        archive_pass(a);
        pthread_mutex_lock(&a->mu);
        if (a->stop)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&a->cv, &a->mu, &ts);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

static void archiver_free(struct archiver *a)
{
    if (!a)
        return;
    repo_close(a->r);
    free(a->dbpath);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
    free(a);
}

/* cairn_close, after it stopped the checkpointer (so no checkpoint can
 * call archiver_retain any more): the last pass (what is complete and
 * durable), then stop and free. */
static void archiver_stop(void *ctx)
{
    struct archiver *a = ctx;
    if (a->started) {
        pthread_mutex_lock(&a->mu);
        a->stop = true;
        pthread_cond_signal(&a->cv);
        pthread_mutex_unlock(&a->mu);
        pthread_join(a->thr, NULL);
        archive_pass(a);
    }
    archiver_free(a);
}

CAIRN_API cairn_status cairn_open(const char *path, const cairn_options *opts, cairn_db **out)
{
    if (!opts || !opts->archive_repo)
        return engine_open(path, opts, out);
    cerr_clear();
    if (!path || !out)
        return cerr_set(CAIRN_EINVAL, "cairn_open: NULL argument");
    *out = NULL;
    cairn_status st = repo_levels_check(opts->archive_level, opts->archive_wal_level,
                                        "cairn_options.archive_level",
                                        "cairn_options.archive_wal_level");
    if (st)
        return st;
    struct archiver *a = calloc(1, sizeof *a);
    if (!a || !(a->dbpath = strdup(path))) {
        free(a);
        return cerr_set(CAIRN_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    a->timeout_s = opts->archive_timeout_s;
    a->user_retain = opts->wal_retain;
    a->user_ctx = opts->wal_retain_ctx;
    struct repo_open_opts ro = {.create = true, .key_file = opts->archive_key_file,
                                .level = opts->archive_level,
                                .wal_level = opts->archive_wal_level};
    st = repo_open(opts->archive_repo, &ro, &a->r);
    if (st) {
        archiver_free(a);
        return cerr_wrap(st, "could not open the WAL archive");
    }
    /* Until the first pass says what is archived, keep every segment. */
    cairn_options o = *opts;
    o.wal_retain = archiver_retain;
    o.wal_retain_ctx = a;
    cairn_db *db = NULL;
    st = engine_open(path, &o, &db);
    if (st) {
        archiver_free(a);
        return st;
    }
    a->db = db;
    st = repo_bind(a->r, db->db_id, db->seg_shift);
    if (!st && pthread_create(&a->thr, NULL, archiver_main, a) != 0)
        st = cerr_set(CAIRN_ENOMEM, "could not start the WAL archiver thread");
    if (st) {
        struct cerr_saved msg; /* the close clears it */
        cerr_save(&msg);
        cairn_close(db);
        archiver_free(a);
        return cerr_restore(&msg, st);
    }
    a->started = true;
    engine_set_ext(db, archiver_stop, a);
    *out = db;
    return CAIRN_OK;
}

CAIRN_API cairn_status cairn_backup(cairn_db *db, const char *repo_dir,
                                    const cairn_backup_options *opts, cairn_backup_info *info)
{
    cerr_clear();
    if (!db || !repo_dir)
        return cerr_set(CAIRN_EINVAL, "cairn_backup: NULL argument");
    cairn_backup_options o = {0};
    if (opts)
        o = *opts;
    cairn_status lst = repo_levels_check(o.level, o.wal_level, "cairn_backup_options.level",
                                         "cairn_backup_options.wal_level");
    if (lst)
        return lst;
    struct repo_open_opts ro = {.create = true, .key_file = o.key_file, .level = o.level,
                                .wal_level = o.wal_level};
    repo *r = NULL;
    cairn_status st = repo_open(repo_dir, &ro, &r);
    if (st)
        return st;
    struct pitr_backup_opts bo = {.incremental = o.incremental != 0, .parent = o.parent};
    struct pitr_backup_result res;
    st = pitr_backup(db->path, r, &bo, &res);
    repo_close(r);
    if (!st && info) {
        memset(info, 0, sizeof *info);
        snprintf(info->id, sizeof info->id, "%s", res.id);
        snprintf(info->parent, sizeof info->parent, "%s", res.parent);
        info->generation = res.generation;
        info->redo_lsn = res.redo_lsn;
        info->last_txn_id = res.last_txn_id;
        info->timeline = res.timeline;
        info->pages = res.pages;
        info->pages_new = res.pages_new;
        info->bytes_stored = res.bytes_stored;
        info->duration_us = res.duration_us;
    }
    return st;
}
