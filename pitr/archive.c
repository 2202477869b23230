/*
 * archive.c — copying completed WAL segments of a database into the
 * repository (pitr_archive), from inside the engine's process or from
 * outside (pitrctl archive, cron-able: idempotent).
 *
 * A segment is archived once it is complete and durable (pitr.h): the
 * object wal/TTTTTTTT/<segment> first, then its summary
 * wal/TTTTTTTT/<segment>.json, whose presence is what "archived" means;
 * a crash between the two leaves an object the next run rewrites. The
 * summary (first and last commit, transaction ids, restore points, where
 * the records end) is what the restore planner reads to resolve a target
 * without fetching the segments.
 *
 * Why "durable" matters: a segment that is complete on the file system may
 * still sit in the page cache of a database in ASYNC or NONE mode; were the
 * machine to lose power, recovery would cut it and the log would go on
 * differently from the copy in the archive. A record of a later segment
 * whose durable hint is past the segment's end proves the segment was on
 * stable storage first (the hint rule of wal/format.h); a database that no
 * process holds open never rewrites a complete segment.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/io.h"
#include "common/util.h"
#include "engine/engine_int.h"
#include "pitr/pitr.h"
#include "wal/wal.h"

cairn_status pitr_seg_scan(const uint8_t *seg, size_t len, const char *path,
                           struct repo_seg_summary *out, bool *complete, uint64_t *max_hint,
                           uint64_t *db_id)
{
    memset(out, 0, sizeof *out);
    *complete = false;
    *max_hint = 0;
    if (len < WAL_SEG_DATA)
        return cerr_set(CAIRN_ECORRUPT, "WAL segment \"%s\" is %zu bytes, shorter than its "
                        "header block", path, len);
    struct wal_seg_header h;
    cairn_status st = wal_seg_header_decode(seg, &h, path);
    if (st)
        return st;
    uint64_t size = (uint64_t)1 << h.seg_shift;
    if (len != size)
        return cerr_set(CAIRN_ECORRUPT, "WAL segment \"%s\" is %zu bytes; its header says "
                        "%" PRIu64, path, len, size);
    *db_id = h.db_id;
    out->timeline = h.timeline;
    out->start = h.start_lsn;
    out->end_lsn = h.start_lsn + WAL_SEG_DATA;
    size_t cap = 0;
    for (uint64_t off = WAL_SEG_DATA; off < size;) {
        struct wal_record rec;
        if (!wal_rec_check(seg + off, size - off, h.start_lsn + off, h.salt, &rec))
            break;
        uint64_t step = (rec.len + WAL_REC_ALIGN - 1) & ~(uint64_t)(WAL_REC_ALIGN - 1);
        if (rec.durable_hint > *max_hint)
            *max_hint = rec.durable_hint;
        if (rec.type == WAL_REC_SWITCH) {
            *complete = true;
            break;
        }
        if (rec.type == WAL_REC_PAD) {
            off += step;
            if (off == size)
                *complete = true;
            continue;
        }
        out->records++;
        out->end_lsn = rec.lsn + step;
        if (rec.type == WAL_REC_COMMIT) {
            struct wal_commit c;
            st = wal_dec_commit(&rec, &c);
            if (st)
                return cerr_wrap(st, "WAL segment \"%s\"", path);
            struct repo_commit_ref ref = {rec.lsn, rec.lsn + step, c.time_us, rec.txn_id};
            if (!out->commits)
                out->first = ref;
            out->last = ref;
            out->commits++;
            if (!out->min_txn || rec.txn_id < out->min_txn)
                out->min_txn = rec.txn_id;
            if (rec.txn_id > out->max_txn)
                out->max_txn = rec.txn_id;
        } else if (rec.type == WAL_REC_RESTORE_POINT) {
            struct wal_restore_point rp;
            st = wal_dec_restore_point(&rec, &rp);
            if (st)
                return cerr_wrap(st, "WAL segment \"%s\"", path);
            if (out->nrpoints == cap) {
                cap = cap ? 2 * cap : 4;
                struct repo_rpoint *n = realloc(out->rpoints, cap * sizeof *n);
                if (!n) {
                    repo_seg_summary_free(out);
                    return cerr_set(CAIRN_ENOMEM, "out of memory");
                }
                out->rpoints = n;
            }
            struct repo_rpoint *p = &out->rpoints[out->nrpoints++];
            memset(p, 0, sizeof *p);
            memcpy(p->name, rp.name, rp.name_len);
            p->lsn = rec.lsn;
            p->end = rec.lsn + step;
            p->time_us = rp.time_us;
        }
        off += step;
    }
    return CAIRN_OK;
}

/* Reads a whole segment file (cfs_read_file: a file a checkpoint removed
 * under us is CAIRN_ENOTFOUND) and checks its length. */
static cairn_status read_seg(const char *path, uint64_t size, uint8_t **out)
{
    char *data = NULL;
    size_t len = 0;
    cairn_status st = cfs_read_file(path, &data, &len);
    if (!st && len != size) {
        free(data);
        data = NULL;
        st = cerr_set(CAIRN_ECORRUPT, "WAL segment \"%s\" is %zu bytes, not %" PRIu64, path,
                      len, size);
    }
    *out = (uint8_t *)data;
    return st;
}

/* True when no process holds the database open (its LOCK is free). */
static bool db_closed(const char *dbpath)
{
    char *lp = cairn_path_join(dbpath, "LOCK");
    if (!lp)
        return false;
    int fd = open(lp, O_RDONLY | O_CLOEXEC);
    free(lp);
    if (fd < 0)
        return errno == ENOENT;
    bool free_ = flock(fd, LOCK_SH | LOCK_NB) == 0;
    close(fd); /* releases the probe at once */
    return free_;
}

static cairn_status copy_histories(const char *waldir, repo *r, uint32_t *copied)
{
    DIR *d = opendir(waldir);
    if (!d)
        return cerr_errno(errno, "could not open WAL directory \"%s\"", waldir);
    cairn_status st = CAIRN_OK;
    struct dirent *e;
    while (!st && (e = readdir(d))) {
        uint32_t tl = 0;
        if (!wal_history_parse_name(e->d_name, &tl))
            continue;
        char *p = cairn_path_join(waldir, e->d_name);
        char *text = NULL;
        size_t len = 0;
        st = p ? cfs_read_file(p, &text, &len) : cerr_set(CAIRN_ENOMEM, "out of memory");
        struct wal_hist_line *b = NULL;
        size_t nb = 0;
        if (!st) {
            char what[4200];
            snprintf(what, sizeof what, "history file \"%s\"", p);
            st = repo_history_parse(r, text, len, tl, what, &b, &nb);
        }
        free(b);
        char name[64];
        repo_history_obj_name(tl, name, sizeof name);
        uint64_t size;
        if (!st) {
            cairn_status s2 = store_stat(r->st, name, &size);
            if (s2 == CAIRN_ENOTFOUND || (!s2 && size != len)) {
                st = repo_history_put(r, tl, text, len);
                if (!st)
                    (*copied)++;
            } else if (s2) {
                st = s2;
            }
        }
        free(text);
        free(p);
    }
    closedir(d);
    return st;
}

static cairn_status archive_locked(const char *dbpath, repo *r, uint64_t known_durable,
                                   struct pitr_archive_result *res)
{
    memset(res, 0, sizeof *res);
    uint64_t db_id;
    uint32_t shift, tl;
    cairn_status st = db_meta_read(dbpath, &db_id, &shift, &tl);
    if (st)
        return st;
    st = repo_bind(r, db_id, shift);
    if (st)
        return st;
    res->timeline = tl;
    char *waldir = cairn_path_join(dbpath, "wal");
    if (!waldir)
        return cerr_set(CAIRN_ENOMEM, "out of memory");
    uint64_t *segs = NULL;
    size_t nseg = 0;
    st = copy_histories(waldir, r, &res->histories);
    if (!st)
        st = wal_seg_list(waldir, tl, &segs, &nseg);
    bool closed = db_closed(dbpath);
    uint64_t size = (uint64_t)1 << shift;
    /* cur: the segment being considered, scanned; its successor is read to
     * prove it durable. */
    uint8_t *cur = NULL;
    struct repo_seg_summary sum = {0};
    bool complete = false;
    uint64_t hint = 0;
    for (size_t i = 0; !st && i < nseg; i++) {
        /* One look per segment still in the database's wal/ (a handful:
         * checkpoints remove archived ones), never a listing of the
         * timeline's archive, which only grows (the engine's archiver
         * runs a pass a second). */
        bool archived = false;
        st = repo_wal_has(r, tl, segs[i], &archived);
        if (st)
            break;
        if (known_durable && !archived && segs[i] + size > known_durable) {
            /* not durable to its end yet: neither is any later one */
            res->waiting = segs[i] < known_durable;
            break;
        }
        if (archived) {
            /* complete when it was archived, and never rewritten since:
             * not read again (the engine's archiver runs a pass a second
             * over every segment a checkpoint has not removed yet) */
            res->already++;
            res->archived_to = segs[i] + size;
            continue;
        }
        char name[64];
        wal_seg_name(name, sizeof name, tl, segs[i]);
        char *path = cairn_path_join(waldir, name);
        if (!path) {
            st = cerr_set(CAIRN_ENOMEM, "out of memory");
            break;
        }
        st = read_seg(path, size, &cur);
        if (!st) {
            uint64_t seg_db;
            st = pitr_seg_scan(cur, size, path, &sum, &complete, &hint, &seg_db);
            if (!st && seg_db != db_id)
                st = cerr_set(CAIRN_ECORRUPT, "WAL segment \"%s\" belongs to database %016" PRIx64
                              ", not %016" PRIx64, path, seg_db, db_id);
        }
        if (st == CAIRN_ENOTFOUND && i + 1 < nseg) {
            /* removed by a checkpoint since the listing: the next run
             * (or list/verify) shows the gap if it was never archived */
            cerr_clear();
            st = CAIRN_OK;
            free(path);
            continue;
        }
        if (st || !complete) {
            free(path);
            free(cur);
            cur = NULL;
            repo_seg_summary_free(&sum);
            break;
        }
        bool durable = closed || (known_durable && segs[i] + size <= known_durable);
        for (size_t j = i + 1; !durable && j < nseg && j <= i + 2; j++) {
            /* hints are monotone: the next segment or the one after
             * shows it once more commits came */
            char nn[64];
            wal_seg_name(nn, sizeof nn, tl, segs[j]);
            char *np = cairn_path_join(waldir, nn);
            uint8_t *nb = NULL;
            cairn_status s2 = np ? read_seg(np, size, &nb) : CAIRN_ENOMEM;
            if (!s2) {
                struct repo_seg_summary ns;
                bool nc;
                uint64_t nh, ndb;
                if (!pitr_seg_scan(nb, size, np, &ns, &nc, &nh, &ndb) &&
                    nh >= segs[i] + size)
                    durable = true;
                repo_seg_summary_free(&ns);
            }
            cerr_clear();
            free(nb);
            free(np);
        }
        if (durable && closed && !(known_durable && segs[i] + size <= known_durable)) {
            /* No process has the database open, so nothing rewrites the
             * segment; but a process killed in ASYNC or NONE mode may have
             * left it in the page cache only: made durable here before it
             * is archived, so a power loss cannot leave the archive ahead
             * of the database's own log. */
            int sfd = open(path, O_RDONLY | O_CLOEXEC);
            if (sfd < 0 || fdatasync(sfd) != 0)
                st = cerr_errno(errno, "could not sync WAL segment \"%s\" before archiving it",
                                path);
            if (sfd >= 0)
                close(sfd);
            if (st) {
                free(path);
                free(cur);
                cur = NULL;
                repo_seg_summary_free(&sum);
                break;
            }
        }
        if (!durable) {
            res->waiting = true;
            free(path);
            free(cur);
            cur = NULL;
            repo_seg_summary_free(&sum);
            break;
        }
        char oname[128];
        repo_wal_obj_name(tl, segs[i], false, oname, sizeof oname);
        uint64_t stored = 0;
        codec_sha256(cur, size, sum.sha);
        st = repo_obj_put(r, oname, REPO_OBJ_WAL, cur, size, sum.sha, false, &stored);
        if (!st)
            st = repo_seg_summary_put(r, &sum);
        if (!st) {
            res->archived++;
            res->bytes_in += size;
            res->bytes_stored += stored;
            res->archived_to = segs[i] + size;
        }
        free(path);
        free(cur);
        cur = NULL;
        repo_seg_summary_free(&sum);
    }
    free(cur);
    free(segs);
    free(waldir);
    return st;
}

/* Under the repository's lock, shared (repo_lock). */
cairn_status pitr_archive(const char *dbpath, repo *r, uint64_t known_durable,
                          struct pitr_archive_result *res)
{
    int fd = -1;
    cairn_status st = repo_lock(r, false, &fd);
    if (!st)
        st = archive_locked(dbpath, r, known_durable, res);
    repo_unlock(fd);
    return repo_named(r, "archive of database", dbpath, st);
}
