/*
 * db.c — opening and closing a database: the directory, its lock, the meta
 * file, crash recovery through the replay engine, the WAL writer.
 *
 * META FILE (DB/meta, 64 bytes, replaced atomically with
 * cairn_durable_replace; little-endian):
 *   off size field
 *     0    8 magic "CAIRNDB\0"
 *     8    4 format version (DB_FORMAT_VERSION); newer -> CAIRN_EVERSION
 *    12    4 log2(WAL segment size)
 *    16    8 database id (random at creation; in every WAL segment header)
 *    24    4 current timeline
 *    28    4 reserved 0
 *    32    8 creation time (us since epoch)
 *    40   20 reserved 0
 *    60    4 crc32c of bytes 0..59
 *
 * Open = lock DB/LOCK (flock; held -> CAIRN_EBUSY), refuse a directory
 * holding DB/restore-incomplete (a point-in-time restore into it began and
 * did not finish: engine/restore.c), read or create meta, load the last
 * checkpoint and replay the WAL from its redo LSN, truncate a torn tail,
 * start the WAL writer at the end of the valid log. A restore opens the
 * same way up to the checkpoint (db_open_for_restore) and replays itself.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/crc32c.h"
#include "common/err.h"
#include "common/io.h"
#include "common/log.h"
#include "common/util.h"
#include "engine/engine_int.h"

#define DB_FORMAT_VERSION 1u
#define DB_META_SIZE 64u
#define DB_MAGIC "CAIRNDB"

void engine_on_durable(void *ctx, uint64_t durable_lsn);

CAIRN_API void cairn_options_init(cairn_options *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->create_if_missing = 1;
    o->durability = CAIRN_DURABILITY_SYNC;
    o->async_flush_ms = 10;
    o->wal_segment_size = CAIRN_WAL_SEGMENT_DEFAULT;
    o->io_backend = CAIRN_IO_DEFAULT;
    o->replay_jobs = 0;
    o->checkpoint_wal_bytes = 0;   /* 64 MiB */
    o->checkpoint_interval_s = 300;
}

struct meta {
    uint32_t version, seg_shift, timeline;
    uint64_t db_id;
    int64_t created_us;
};

static void meta_encode(uint8_t out[DB_META_SIZE], const struct meta *m) {
    memset(out, 0, DB_META_SIZE);
    memcpy(out, DB_MAGIC, 8);
    st32(out + 8, m->version);
    st32(out + 12, m->seg_shift);
    st64(out + 16, m->db_id);
    st32(out + 24, m->timeline);
    st64(out + 32, (uint64_t)m->created_us);
    st32(out + 60, crc32c(0, out, 60));
}

static cairn_status meta_decode(const uint8_t *in, size_t len, struct meta *m,
                                const char *path) {
    if (len != DB_META_SIZE)
        return cerr_set(CAIRN_ECORRUPT, "meta file \"%s\" is %zu bytes, expected %u",
                        path, len, DB_META_SIZE);
    if (memcmp(in, DB_MAGIC, 8) != 0)
        return cerr_set(CAIRN_ECORRUPT, "meta file \"%s\" has a bad magic at offset 0",
                        path);
    if (crc32c(0, in, 60) != ld32(in + 60))
        return cerr_set(CAIRN_ECORRUPT, "meta file \"%s\" fails its checksum at offset 60",
                        path);
    m->version = ld32(in + 8);
    if (m->version > DB_FORMAT_VERSION)
        return cerr_set(CAIRN_EVERSION,
                        "database \"%s\" has format version %u; this library reads up to %u",
                        path, m->version, DB_FORMAT_VERSION);
    m->seg_shift = ld32(in + 12);
    m->db_id = ld64(in + 16);
    m->timeline = ld32(in + 24);
    m->created_us = (int64_t)ld64(in + 32);
    if (m->seg_shift < 21 || m->seg_shift > 30 || m->timeline == 0)
        return cerr_set(CAIRN_ECORRUPT,
                        "meta file \"%s\" has invalid fields (segment shift %u, timeline %u)",
                        path, m->seg_shift, m->timeline);
    return CAIRN_OK;
}

/* Reads and decodes DB/meta; *mpath_out (if given) gets its path. */
static cairn_status meta_load(const char *dbpath, struct meta *m, char **mpath_out) {
    char *mpath = cairn_path_join(dbpath, "meta");
    if (!mpath) return cerr_set(CAIRN_ENOMEM, "out of memory");
    char *data = NULL;
    size_t len = 0;
    cairn_status st = cfs_read_file(mpath, &data, &len);
    if (st == CAIRN_OK) st = meta_decode((const uint8_t *)data, len, m, mpath);
    free(data);
    if (st == CAIRN_OK && mpath_out)
        *mpath_out = mpath;
    else
        free(mpath);
    return st;
}

cairn_status db_meta_read(const char *dbpath, uint64_t *db_id, uint32_t *seg_shift,
                          uint32_t *timeline) {
    struct meta m = {0};
    cairn_status st = meta_load(dbpath, &m, NULL);
    if (st) return st;
    *db_id = m.db_id;
    *seg_shift = m.seg_shift;
    *timeline = m.timeline;
    return CAIRN_OK;
}

static cairn_status check_options(const cairn_options *o, uint32_t *shift) {
    if (o->durability != CAIRN_DURABILITY_SYNC && o->durability != CAIRN_DURABILITY_ASYNC &&
        o->durability != CAIRN_DURABILITY_NONE)
        return cerr_set(CAIRN_EINVAL, "invalid option durability %d", (int)o->durability);
    if (o->io_backend != CAIRN_IO_DEFAULT && o->io_backend != CAIRN_IO_URING &&
        o->io_backend != CAIRN_IO_POSIX)
        return cerr_set(CAIRN_EINVAL, "invalid option io_backend %d", (int)o->io_backend);
    uint64_t s = o->wal_segment_size;
    if (s < CAIRN_WAL_SEGMENT_MIN || s > CAIRN_WAL_SEGMENT_MAX || (s & (s - 1)))
        return cerr_set(CAIRN_EINVAL,
                        "invalid option wal_segment_size %llu: must be a power of two "
                        "from %u to %u",
                        (unsigned long long)s, CAIRN_WAL_SEGMENT_MIN,
                        CAIRN_WAL_SEGMENT_MAX);
    if (o->durability == CAIRN_DURABILITY_ASYNC &&
        (o->async_flush_ms == 0 || o->async_flush_ms > 60000))
        return cerr_set(CAIRN_EINVAL, "invalid option async_flush_ms %u: must be 1..60000",
                        o->async_flush_ms);
    *shift = (uint32_t)__builtin_ctzll(s);
    return CAIRN_OK;
}

/* Segment files of any timeline in waldir (0 if it does not exist). */
static size_t count_segments(const char *waldir) {
    DIR *d = opendir(waldir);
    if (!d) return 0;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += wal_seg_parse_name(e->d_name, NULL, NULL);
    closedir(d);
    return n;
}

/* Reads DB/meta, or creates a new database when the directory holds none.
 * Creation order makes every crash point recoverable: meta is published
 * first (atomically), then the WAL directory. So meta without wal/ is a
 * creation cut short (wal/ is made now), and wal/ without meta is corrupt
 * only if it holds segments. */
static cairn_status load_or_create_meta(cairn_db *db, uint32_t want_shift, bool create) {
    char *mpath = cairn_path_join(db->path, "meta");
    if (!mpath) return cerr_set(CAIRN_ENOMEM, "out of memory");
    struct meta m = {0};
    cairn_status st;
    struct stat sb;
    if (stat(mpath, &sb) == 0) {
        st = meta_load(db->path, &m, NULL);
    } else if (errno != ENOENT) {
        st = cerr_errno(errno, "could not stat meta file \"%s\"", mpath);
    } else if (!create) {
        st = cerr_set(CAIRN_ENOTFOUND, "database directory \"%s\" has no meta file \"%s\"",
                      db->path, mpath);
    } else {
        st = CAIRN_OK;
        if (count_segments(db->waldir) > 0) {
            st = cerr_set(CAIRN_ECORRUPT,
                          "database \"%s\" has WAL segments but no meta file \"%s\"",
                          db->path, mpath);
        }
        if (st == CAIRN_OK) {
            m.version = DB_FORMAT_VERSION;
            m.seg_shift = want_shift;
            m.timeline = 1;
            m.created_us = cairn_now_us();
            if (getrandom(&m.db_id, sizeof m.db_id, 0) != sizeof m.db_id)
                m.db_id = (uint64_t)m.created_us ^ ((uint64_t)getpid() << 32);
            uint8_t buf[DB_META_SIZE];
            meta_encode(buf, &m);
            st = cairn_durable_replace(mpath, buf, sizeof buf);
        }
    }
    free(mpath);
    if (st) return st;
    if (stat(db->waldir, &sb) != 0) {
        st = cfs_mkdir_durable(db->waldir, 0755);
        if (st) return st;
    }
    db->db_id = m.db_id;
    db->seg_shift = m.seg_shift;
    db->timeline = m.timeline;
    return CAIRN_OK;
}

unsigned db_default_jobs(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    if (n > 16) n = 16;
    return (unsigned)n;
}

void db_note_replay(cairn_db *db, const struct replay_result *res) {
    if (res->max_txn_id >= atomic_load(&db->next_txn_id))
        atomic_store(&db->next_txn_id, res->max_txn_id + 1);
    if (res->max_coll_id >= db->next_coll_id) db->next_coll_id = res->max_coll_id + 1;
    if (res->last_commit_time_us > db->last_commit_us)
        db->last_commit_us = res->last_commit_time_us;
    if (res->txns_applied) db->applied_txn = res->last_txn_id;
}

/* Crash recovery: loads the last checkpoint, replays the log from its redo
 * LSN; returns the end of the valid log. */
static cairn_status recover(cairn_db *db, uint64_t *end_lsn, uint64_t *rec_end) {
    uint64_t t0 = cairn_mono_us();
    cairn_recovery_report *rep = &db->recovery;
    memset(rep, 0, sizeof *rep);
    *end_lsn = *rec_end = 0;
    uint64_t redo = 0;
    cairn_status cst = ckpt_open(db, &redo);
    if (cst) return cst;
    rep->start_lsn = redo;
    *end_lsn = *rec_end = redo;

    uint64_t *starts = NULL;
    size_t nseg = 0;
    cairn_status st = wal_seg_list(db->waldir, db->timeline, &starts, &nseg);
    if (st) return st;
    free(starts);
    if (nseg == 0) {
        if (redo)
            return cerr_set(CAIRN_ECORRUPT,
                            "database \"%s\": checkpoint %llu starts replay at LSN %llu, "
                            "but \"%s\" holds no WAL segment",
                            db->path, (unsigned long long)rep->checkpoint,
                            (unsigned long long)redo, db->waldir);
        rep->duration_us = cairn_mono_us() - t0;
        return CAIRN_OK; /* a new log */
    }

    wal_reader *r = NULL;
    st = wal_reader_open(db->waldir, db->timeline, redo, &r);
    if (st) return st;
    unsigned jobs = db->opts.replay_jobs ? db->opts.replay_jobs : db_default_jobs();
    struct replay_result res;
    st = replay_run(db, r, NULL, jobs, &res);
    if (st) {
        wal_reader_close(r);
        return cerr_wrap(st, "could not recover database \"%s\"", db->path);
    }
    const struct wal_end *end = wal_reader_end(r);
    rep->end_lsn = end->end_lsn;
    rep->records_replayed = res.records;
    rep->txns_applied = res.txns_applied;
    rep->txns_discarded = res.txns_discarded;
    rep->jobs = jobs;
    if (end->torn || end->segments_after) {
        rep->bytes_truncated = end->garbage_bytes;
        rep->truncated_at = end->end_lsn;
        snprintf(rep->truncated_file, sizeof rep->truncated_file, "%s", end->seg_path);
        clog_warn("database \"%s\": torn WAL tail in \"%s\" at offset %llu (LSN %llu): "
                  "%llu bytes truncated, %llu transaction(s) without commit discarded",
                  db->path, end->seg_path, (unsigned long long)end->seg_offset,
                  (unsigned long long)end->end_lsn,
                  (unsigned long long)end->garbage_bytes,
                  (unsigned long long)res.txns_discarded);
        st = wal_truncate_tail(db->waldir, db->timeline, end);
    }
    *end_lsn = end->end_lsn;
    *rec_end = end->rec_end; /* before the PADs at the end */
    wal_reader_close(r);
    if (st) return st;

    db_note_replay(db, &res);
    db->applied_end = *rec_end;
    rep->duration_us = cairn_mono_us() - t0;
    return CAIRN_OK;
}

static void db_free(cairn_db *db) {
    ckpt_close(db);
    cat_free_all(db);
    txn_pool_free(db);
    pthread_mutex_destroy(&db->pool_mu);
    pthread_mutex_destroy(&db->commit_mu);
    pthread_mutex_destroy(&db->apply_mu);
    pthread_cond_destroy(&db->apply_cv);
    pthread_rwlock_destroy(&db->cat_lock);
    pthread_rwlock_destroy(&db->gate);
    if (db->lock_fd >= 0) cfs_unlock(db->lock_fd);
    free(db->path);
    free(db->waldir);
    free(db);
}

/* A handle with its paths and locks initialized; nothing opened yet. */
static cairn_status db_alloc(const char *path, const cairn_options *o, cairn_db **out) {
    *out = NULL;
    cairn_db *db = calloc(1, sizeof *db);
    if (!db) return cerr_set(CAIRN_ENOMEM, "out of memory");
    db->lock_fd = -1;
    db->opts = *o;
    pthread_mutex_init(&db->commit_mu, NULL);
    pthread_mutex_init(&db->apply_mu, NULL);
    pthread_mutex_init(&db->pool_mu, NULL);
    pthread_cond_init(&db->apply_cv, NULL);
    pthread_rwlock_init(&db->cat_lock, NULL);
    pthread_rwlock_init(&db->gate, NULL);
    atomic_store(&db->next_txn_id, 1);
    db->next_coll_id = 1;
    db->path = strdup(path);
    db->waldir = cairn_path_join(path, "wal");
    if (!db->path || !db->waldir) {
        db_free(db);
        return cerr_set(CAIRN_ENOMEM, "out of memory");
    }
    *out = db;
    return CAIRN_OK;
}

cairn_status db_restore_marker_check(const char *dbpath) {
    char *mk = cairn_path_join(dbpath, DB_RESTORE_MARKER);
    if (!mk) return cerr_set(CAIRN_ENOMEM, "out of memory");
    struct stat sb;
    cairn_status st = CAIRN_OK;
    if (lstat(mk, &sb) == 0)
        st = cerr_set(CAIRN_ECORRUPT,
                      "database \"%s\" is an unfinished restore (\"%s\" exists: the "
                      "restore failed or was cut short); remove the directory and restore "
                      "again", dbpath, mk);
    else if (errno != ENOENT)
        st = cerr_errno(errno, "could not stat \"%s\"", mk);
    free(mk);
    return st;
}

/* Takes DB/LOCK, refuses an unfinished restore, reads (or creates) meta. */
static cairn_status db_lock_meta(cairn_db *db, uint32_t want_shift, bool create) {
    char *lockpath = cairn_path_join(db->path, "LOCK");
    if (!lockpath) return cerr_set(CAIRN_ENOMEM, "out of memory");
    cairn_status st = cfs_lock(lockpath, &db->lock_fd);
    free(lockpath);
    if (!st) st = db_restore_marker_check(db->path);
    if (!st) st = load_or_create_meta(db, want_shift, create);
    return st;
}

void engine_set_ext(cairn_db *db, void (*stop)(void *ctx), void *ctx) {
    db->ext_stop = stop;
    db->ext_ctx = ctx;
}

cairn_status engine_open(const char *path, const cairn_options *opts, cairn_db **out) {
    cerr_clear();
    if (!path || !out) return cerr_set(CAIRN_EINVAL, "cairn_open: NULL argument");
    *out = NULL;
    cairn_options o;
    if (opts) o = *opts;
    else cairn_options_init(&o);
    uint32_t want_shift = 0;
    cairn_status st = check_options(&o, &want_shift);
    if (st) return st;

    struct stat sb;
    if (stat(path, &sb) != 0) {
        if (errno != ENOENT)
            return cerr_errno(errno, "could not stat database directory \"%s\"", path);
        if (!o.create_if_missing)
            return cerr_set(CAIRN_ENOTFOUND, "database directory \"%s\" does not exist",
                            path);
        /* Durable: a power cut must not lose the directory, and with it
         * commits acknowledged later. */
        st = cfs_mkdir_durable(path, 0755);
        if (st) return st;
    } else if (!S_ISDIR(sb.st_mode)) {
        return cerr_set(CAIRN_EINVAL, "\"%s\" is not a directory", path);
    }

    cairn_db *db = NULL;
    st = db_alloc(path, &o, &db);
    if (st) return db_named(path, st);
    st = db_lock_meta(db, want_shift, true);
    if (st) goto fail;

    uint64_t end_lsn = 0, rec_end = 0;
    st = recover(db, &end_lsn, &rec_end);
    if (st) goto fail;

    struct wal_writer_opts wo = {
        .waldir = db->waldir,
        .timeline = db->timeline,
        .seg_shift = db->seg_shift,
        .db_id = db->db_id,
        .io = o.io_backend,
        .durability = o.durability,
        .async_flush_ms = o.async_flush_ms,
        .on_durable = o.durability == CAIRN_DURABILITY_SYNC ? engine_on_durable : NULL,
        .ctx = db,
        .rec_end = rec_end,
    };
    st = wal_writer_open(&wo, end_lsn, &db->wal);
    if (st) goto fail;
    db->applied_lsn = wal_writer_durable_lsn(db->wal);
    if (!db->applied_end) db->applied_end = wal_writer_end_lsn(db->wal);
    st = ckpt_start(db);
    if (st) goto fail;
    *out = db;
    return CAIRN_OK;

fail:
    db_free(db);
    return db_named(path, st);
}

cairn_status db_open_for_restore(const char *path, cairn_db **out, uint64_t *redo_lsn) {
    *out = NULL;
    *redo_lsn = 0;
    struct stat sb;
    if (stat(path, &sb) != 0)
        return errno == ENOENT
                   ? cerr_set(CAIRN_ENOTFOUND, "database directory \"%s\" does not exist",
                              path)
                   : cerr_errno(errno, "could not stat database directory \"%s\"", path);
    if (!S_ISDIR(sb.st_mode)) return cerr_set(CAIRN_EINVAL, "\"%s\" is not a directory", path);
    cairn_options o;
    cairn_options_init(&o);
    o.create_if_missing = 0;
    /* SYNC: the restore's checkpoint then never asks a WAL writer (there
     * is none) to flush. */
    o.durability = CAIRN_DURABILITY_SYNC;
    cairn_db *db = NULL;
    cairn_status st = db_alloc(path, &o, &db);
    if (st) return st;
    st = db_lock_meta(db, 0, false);
    if (!st) st = ckpt_open(db, redo_lsn);
    if (st) {
        db_free(db);
        return st;
    }
    *out = db;
    return CAIRN_OK;
}

void db_discard(cairn_db *db) {
    if (db) db_free(db);
}

cairn_status db_meta_set_timeline(const char *dbpath, uint32_t timeline) {
    struct meta m = {0};
    char *mpath = NULL;
    cairn_status st = meta_load(dbpath, &m, &mpath);
    if (st) return st;
    uint8_t buf[DB_META_SIZE];
    m.timeline = timeline;
    meta_encode(buf, &m);
    st = cairn_durable_replace(mpath, buf, sizeof buf);
    free(mpath);
    return st;
}

void db_apply_failed(cairn_db *db, const char *what) {
    pthread_mutex_lock(&db->apply_mu);
    if (!atomic_load(&db->apply_failed)) {
        snprintf(db->apply_msg, sizeof db->apply_msg, "%s is durable but could not be "
                 "applied in memory: %s", what, cairn_last_error());
        atomic_store(&db->apply_failed, true);
        clog_error("database \"%s\": %s; reads, writes and checkpoints are refused until "
                   "it is reopened (the reopen applies it from the WAL)", db->path,
                   db->apply_msg);
    }
    pthread_mutex_unlock(&db->apply_mu);
}

cairn_status db_usable(cairn_db *db) {
    if (!atomic_load(&db->apply_failed)) return CAIRN_OK;
    pthread_mutex_lock(&db->apply_mu);
    cairn_status st = cerr_set(CAIRN_EPOISONED, "database \"%s\" must be reopened: %s",
                               db->path, db->apply_msg);
    pthread_mutex_unlock(&db->apply_mu);
    return st;
}

cairn_status db_named(const char *path, cairn_status st) {
    if (st && path && !strstr(cairn_last_error(), path))
        cerr_wrap(st, "database \"%s\"", path);
    return st;
}

static cairn_status close_db(cairn_db *db) {
    cerr_clear();
    /* The checkpointer first (a checkpoint in progress completes; it asks
     * the archiver's retention hook), then the archiver's last pass. */
    ckpt_close(db);
    if (db->ext_stop) db->ext_stop(db->ext_ctx);
    cairn_status st = wal_writer_close(db->wal);
    db_free(db);
    return st;
}

CAIRN_API cairn_status cairn_close(cairn_db *db) {
    if (!db) return CAIRN_OK;
    return close_db(db);
}

cairn_status db_close_keep_lock(cairn_db *db, int *lock_fd) {
    *lock_fd = db->lock_fd;
    db->lock_fd = -1;
    return close_db(db);
}

CAIRN_API cairn_status cairn_wal_switch(cairn_db *db, uint64_t *lsn_out) {
    cerr_clear();
    if (!db) return cerr_set(CAIRN_EINVAL, "cairn_wal_switch: NULL argument");
    cairn_status st = db_usable(db);
    if (st) return st;
    bool switched = false;
    st = wal_writer_switch(db->wal, &switched);
    if (!st && lsn_out) *lsn_out = switched ? wal_writer_durable_lsn(db->wal) : 0;
    return st;
}

CAIRN_API cairn_status cairn_stats_get(cairn_db *db, cairn_stats *out) {
    cerr_clear();
    if (!db || !out) return cerr_set(CAIRN_EINVAL, "cairn_stats_get: NULL argument");
    memset(out, 0, sizeof *out);
    out->last_lsn = wal_writer_end_lsn(db->wal);
    out->durable_lsn = wal_writer_durable_lsn(db->wal);
    out->next_txn_id = atomic_load(&db->next_txn_id);
    out->wal_bytes = wal_writer_disk_bytes(db->wal);
    out->commits = atomic_load(&db->commits);
    out->timeline = db->timeline;
    out->io_backend = wal_writer_io_name(db->wal);
    out->recovery = db->recovery;
    return CAIRN_OK;
}
