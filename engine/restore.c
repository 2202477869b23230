/*
 * restore.c — the engine's half of a point-in-time restore (restore.h has
 * the contract; docs/format.md "Timelines" the files).
 *
 * The recipe, and what a failure at each step leaves in the directory:
 *   1. check the options alone (hops, new timeline, target): a refusal
 *      changes nothing;
 *   2. open for restore (db_open_for_restore: DB/LOCK, no unfinished
 *      restore, meta, the last checkpoint loaded exactly as cairn_open
 *      loads it), then check the options against it: the checkpoint's
 *      timeline, its redo LSN, the segment size, the history files in
 *      wal/, a new timeline no file uses yet. A refusal changes nothing
 *      (the open itself only removes what any open removes: page files of
 *      a checkpoint that never completed, stale pins);
 *   3. replay every hop through replay_run_ex, in memory only: a missing
 *      segment, damage, a target beyond the log, a cancel all return
 *      with nothing changed on disk (with a wal_src, the readers read
 *      the segments from it, waiting for those still being fetched).
 *      With o->prewrite, a thread pre-writes the pages the replay has
 *      finished with meanwhile (ckpt_prewrite): into free physical pages
 *      and new page files, which no open reads (and the next one
 *      removes), so the directory still opens as before, but its files
 *      are not byte for byte what they were;
 *   4. DB/restore-incomplete is written (durably): from here until step 9
 *      cairn_open, and another restore, refuse the directory with
 *      CAIRN_ECORRUPT naming the file, so an error (or a crash) in steps
 *      5-8 can never leave a directory that opens as if restored;
 *   5. the new timeline's first segment, at the data offset of the first
 *      segment boundary after the switch LSN (created zero-filled, header
 *      first, through a temp file, fsynced, renamed, directory fsynced);
 *   6. every segment of another timeline is removed (directory fsynced);
 *   7. the history file wal/TTTTTTTT.history, durably
 *      (cairn_durable_replace);
 *   8. a checkpoint of the restored state on the new timeline (ckpt_run,
 *      redo LSN = the new start LSN), then meta gets the new timeline
 *      (cairn_durable_replace): an open now finds a checkpoint and a meta
 *      of the same timeline, and a log that starts at the redo LSN;
 *   9. DB/restore-incomplete is removed and the directory fsynced: the
 *      directory opens, on the new timeline, with the restored state.
 *
 * Why the switch is at the end of the last commit applied and the new log
 * starts one segment later: pages of the restored image carry LSNs up to
 * the switch LSN, and every LSN of the new timeline is beyond any byte of
 * the parent's log that a file of the new timeline could hold; the
 * abandoned future of the parent (its log after the switch) is never read
 * again, because its segments are gone and the new timeline's segments
 * have another name.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/io.h"
#include "common/log.h"
#include "common/util.h"
#include "engine/restore.h"

struct hist {
    struct wal_hist_line *l;
    size_t n;
    bool present;
};

#define HIST_MAX_BYTES ((size_t)4 << 20)

static void hist_free(struct hist *h)
{
    free(h->l);
    memset(h, 0, sizeof *h);
}

static void hist_path(char *buf, size_t n, const char *waldir, uint32_t tl)
{
    char h[32];
    wal_history_name(h, sizeof h, tl);
    snprintf(buf, n, "%s/%s", waldir, h);
}

/* Reads wal/<tl>.history if it exists (h->present), every line checked
 * (wal_history_parse). */
static cairn_status hist_read(const char *waldir, uint32_t tl, uint64_t seg_size,
                              struct hist *h)
{
    memset(h, 0, sizeof *h);
    char path[4096];
    hist_path(path, sizeof path, waldir, tl);
    struct stat sb;
    if (lstat(path, &sb) != 0) {
        if (errno == ENOENT)
            return CAIRN_OK;
        return cerr_errno(errno, "could not stat history file \"%s\"", path);
    }
    if (sb.st_size > (off_t)HIST_MAX_BYTES)
        return cerr_set(CAIRN_ECORRUPT, "could not read history file \"%s\": %lld bytes is "
                        "more than a history holds", path, (long long)sb.st_size);
    char *data = NULL;
    size_t len = 0;
    cairn_status st = cfs_read_file(path, &data, &len);
    if (st)
        return st;
    h->present = true;
    char what[4200];
    snprintf(what, sizeof what, "history file \"%s\"", path);
    st = wal_history_parse(data, len, tl, seg_size, what, &h->l, &h->n);
    free(data);
    if (st)
        hist_free(h);
    return st;
}

static bool lines_eq(const struct wal_hist_line *a, const struct wal_hist_line *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i].parent != b[i].parent || a[i].switch_lsn != b[i].switch_lsn ||
            a[i].start_lsn != b[i].start_lsn)
            return false;
    return true;
}

/* The line the path says hop k+1's timeline branched with. */
static struct wal_hist_line path_line(const struct engine_restore_opts *o, size_t k)
{
    return (struct wal_hist_line){.parent = o->hops[k].timeline,
                                  .switch_lsn = o->hops[k].until_lsn,
                                  .start_lsn = o->hops[k + 1].start_lsn};
}

/* ---- step 1: the options alone ------------------------------------------------ */

static cairn_status check_graft_opts(const char *dir, const struct engine_restore_opts *o)
{
    if (o->ngraft == 0)
        return CAIRN_OK;
    if (!o->graft_src || !o->graft_names)
        return cerr_set(CAIRN_EINVAL, "could not restore \"%s\": a graft needs its source "
                        "database and names", dir);
    if (o->nonly)
        return cerr_set(CAIRN_EINVAL, "could not restore \"%s\": a graft keeps every "
                        "collection of the database; it is not a partial restore", dir);
    for (size_t i = 0; i < o->ngraft; i++) {
        cairn_status st = cat_check_name(o->graft_names[i], "collection");
        if (st)
            return st;
        for (size_t j = 0; j < i; j++)
            if (strcmp(o->graft_names[i], o->graft_names[j]) == 0)
                return cerr_set(CAIRN_EINVAL, "could not restore \"%s\": collection \"%s\" "
                                "is named twice in the graft", dir, o->graft_names[i]);
    }
    return CAIRN_OK;
}

static cairn_status check_opts(const char *dir, const struct engine_restore_opts *o)
{
    if (!o->hops || o->nhops == 0)
        return cerr_set(CAIRN_EINVAL, "could not restore \"%s\": no timeline to replay "
                        "(nhops 0)", dir);
    cairn_status gst = check_graft_opts(dir, o);
    if (gst)
        return gst;
    for (size_t k = 0; k < o->nhops; k++) {
        const struct engine_tl_hop *h = &o->hops[k];
        if (h->timeline == 0)
            return cerr_set(CAIRN_EINVAL, "could not restore \"%s\": hop %zu has timeline 0",
                            dir, k);
        if (k + 1 < o->nhops && h->until_lsn == UINT64_MAX)
            return cerr_set(CAIRN_EINVAL,
                            "could not restore \"%s\": hop %zu (timeline %" PRIu32 ") has no "
                            "until LSN, but the path goes on to timeline %" PRIu32,
                            dir, k, h->timeline, o->hops[k + 1].timeline);
        if (k > 0) {
            const struct engine_tl_hop *p = &o->hops[k - 1];
            if (h->timeline <= p->timeline)
                return cerr_set(CAIRN_EINVAL,
                                "could not restore \"%s\": hop %zu is on timeline %" PRIu32
                                ", not after hop %zu's timeline %" PRIu32
                                " (a timeline branches into higher ones)",
                                dir, k, h->timeline, k - 1, p->timeline);
            if (h->start_lsn < p->until_lsn)
                return cerr_set(CAIRN_EINVAL,
                                "could not restore \"%s\": hop %zu (timeline %" PRIu32
                                ") starts at LSN %" PRIu64 ", before hop %zu (timeline %" PRIu32
                                ") ends at LSN %" PRIu64,
                                dir, k, h->timeline, h->start_lsn, k - 1, p->timeline,
                                p->until_lsn);
            if (h->until_lsn < h->start_lsn)
                return cerr_set(CAIRN_EINVAL,
                                "could not restore \"%s\": hop %zu (timeline %" PRIu32
                                ") ends at LSN %" PRIu64 ", before it starts at LSN %" PRIu64,
                                dir, k, h->timeline, h->until_lsn, h->start_lsn);
        }
    }
    if (o->nonly && !o->only_names)
        return cerr_set(CAIRN_EINVAL, "could not restore \"%s\": %zu collection name(s) "
                        "selected, but only_names is NULL", dir, o->nonly);
    for (size_t i = 0; i < o->nonly; i++) {
        cairn_status st = cat_check_name(o->only_names[i], "collection");
        if (st)
            return cerr_wrap(st, "could not restore \"%s\": selected collection %zu", dir, i);
    }
    uint32_t last = o->hops[o->nhops - 1].timeline; /* the highest, checked above */
    if (o->new_timeline <= last)
        return cerr_set(CAIRN_EINVAL,
                        "could not restore \"%s\": new timeline %" PRIu32 " is not greater "
                        "than timeline %" PRIu32 " of the path",
                        dir, o->new_timeline, last);
    const struct replay_target *t = &o->target;
    switch (t->kind) {
    case REPLAY_TO_END:
    case REPLAY_TO_LSN:
    case REPLAY_TO_TIME:
    case REPLAY_TO_TXN:
        break;
    case REPLAY_TO_NAME:
        if (!memchr(t->name, 0, sizeof t->name) ||
            cat_check_name(t->name, "restore point") != CAIRN_OK)
            return cerr_set(CAIRN_EINVAL, "could not restore \"%s\": the target restore "
                            "point name is not a valid name", dir);
        break;
    default:
        return cerr_set(CAIRN_EINVAL, "could not restore \"%s\": unknown target kind %d", dir,
                        (int)t->kind);
    }
    return CAIRN_OK;
}

/* ---- step 2: the options against the checkpoint and the files ------------------ */

static cairn_status check_against(cairn_db *db, const struct engine_restore_opts *o,
                                  uint64_t redo, struct hist *base_hist)
{
    const uint64_t seg_size = (uint64_t)1 << db->seg_shift;
    const struct engine_tl_hop *h0 = &o->hops[0];
    if (h0->timeline != db->timeline)
        return cerr_set(CAIRN_EINVAL,
                        "could not restore \"%s\": the path starts on timeline %" PRIu32
                        ", but the checkpoint (generation %" PRIu64 ", redo LSN %" PRIu64
                        ") is on timeline %" PRIu32,
                        db->path, h0->timeline, db->recovery.checkpoint, redo, db->timeline);
    if (h0->until_lsn < redo)
        return cerr_set(CAIRN_EINVAL,
                        "could not restore \"%s\": the path leaves timeline %" PRIu32
                        " at LSN %" PRIu64 ", before the checkpoint's redo LSN %" PRIu64
                        ": the checkpoint holds changes the path abandons",
                        db->path, h0->timeline, h0->until_lsn, redo);
    for (size_t k = 1; k < o->nhops; k++)
        if (o->hops[k].start_lsn % seg_size != WAL_SEG_DATA)
            return cerr_set(CAIRN_EINVAL,
                            "could not restore \"%s\": hop %zu (timeline %" PRIu32
                            ") starts at LSN %" PRIu64 ", not at the data offset %u of a "
                            "segment (segments of %" PRIu64 " bytes)",
                            db->path, k, o->hops[k].timeline, o->hops[k].start_lsn,
                            WAL_SEG_DATA, seg_size);

    /* The new timeline must be unused here. */
    uint64_t *starts = NULL;
    size_t nseg = 0;
    cairn_status st = wal_seg_list(db->waldir, o->new_timeline, &starts, &nseg);
    free(starts);
    if (st)
        return st;
    char path[4096];
    hist_path(path, sizeof path, db->waldir, o->new_timeline);
    struct stat sb;
    if (nseg || lstat(path, &sb) == 0)
        return cerr_set(CAIRN_EEXIST,
                        "could not restore \"%s\": timeline %" PRIu32 " is in use in \"%s\" "
                        "(%zu segment(s)%s)",
                        db->path, o->new_timeline, db->waldir, nseg,
                        nseg ? "" : ", a history file");

    /* History files of the path's timelines (pitr/ may put them in wal/)
     * must tell the same path: each ends with the branches the hops take
     * to reach its timeline, after the ancestry of the checkpoint's. */
    st = hist_read(db->waldir, h0->timeline, seg_size, base_hist);
    if (st)
        return st;
    struct wal_hist_line *pl = calloc(o->nhops, sizeof *pl);
    if (!pl)
        return cerr_set(CAIRN_ENOMEM, "out of memory");
    for (size_t k = 0; k + 1 < o->nhops; k++)
        pl[k] = path_line(o, k);
    for (size_t k = 1; k < o->nhops && !st; k++) {
        struct hist hk;
        st = hist_read(db->waldir, o->hops[k].timeline, seg_size, &hk);
        if (!st && hk.present) {
            /* it ends with the path's branches; it starts with the
             * checkpoint timeline's ancestry when that is known */
            bool ok = hk.n >= k && lines_eq(hk.l + hk.n - k, pl, k) &&
                      (!base_hist->present ||
                       (hk.n == base_hist->n + k && lines_eq(hk.l, base_hist->l, base_hist->n)));
            if (!ok) {
                hist_path(path, sizeof path, db->waldir, o->hops[k].timeline);
                st = cerr_set(CAIRN_EINVAL,
                              "could not restore \"%s\": the path to timeline %" PRIu32
                              " (hop %zu) does not match its history file \"%s\" (the path "
                              "leaves timeline %" PRIu32 " at LSN %" PRIu64
                              " for a log starting at LSN %" PRIu64 ")",
                              db->path, o->hops[k].timeline, k, path, pl[k - 1].parent,
                              pl[k - 1].switch_lsn, pl[k - 1].start_lsn);
            }
        }
        hist_free(&hk);
    }
    free(pl);
    return st;
}

/* ---- step 3: replay ---------------------------------------------------------- */

struct prog {
    const struct engine_restore_opts *o;
    uint64_t records, bytes; /* of the hops before this one */
    uint64_t from;           /* where this hop started */
    int64_t time_us;         /* last commit time before this hop */
};

static int hop_progress(void *ctx, const struct replay_result *sofar, uint64_t lsn)
{
    struct prog *p = ctx;
    int64_t t = sofar->txns_applied ? sofar->last_commit_time_us : p->time_us;
    return p->o->progress(p->o->progress_ctx, p->records + sofar->records,
                          p->bytes + (lsn - p->from), lsn, t);
}

static void sum_result(struct replay_result *s, const struct replay_result *h)
{
    s->records += h->records;
    s->records_skipped += h->records_skipped;
    s->txns_applied += h->txns_applied;
    s->txns_discarded += h->txns_discarded;
    if (h->txns_applied) {
        s->last_commit_lsn = h->last_commit_lsn;
        s->last_commit_end = h->last_commit_end;
        s->last_commit_time_us = h->last_commit_time_us;
        s->last_txn_id = h->last_txn_id;
    }
    if (h->max_txn_id > s->max_txn_id)
        s->max_txn_id = h->max_txn_id;
    if (h->max_coll_id > s->max_coll_id)
        s->max_coll_id = h->max_coll_id;
    s->target_reached = h->target_reached;
    s->until_reached = h->until_reached;
    s->stop_lsn = h->stop_lsn;
}

static void target_text(const struct replay_target *t, char *buf, size_t n)
{
    const char *how = t->inclusive ? "inclusive" : "exclusive";
    switch (t->kind) {
    case REPLAY_TO_LSN:
        snprintf(buf, n, "LSN %" PRIu64 " (%s)", t->lsn, how);
        break;
    case REPLAY_TO_TIME:
        snprintf(buf, n, "time %" PRId64 " us (%s)", t->time_us, how);
        break;
    case REPLAY_TO_TXN:
        snprintf(buf, n, "transaction %" PRIu64 " (%s)", t->txn, how);
        break;
    case REPLAY_TO_NAME:
        snprintf(buf, n, "restore point \"%s\"", t->name);
        break;
    default:
        snprintf(buf, n, "the end of the log");
    }
}

struct replayed {
    uint64_t sw;    /* the switch LSN */
    size_t parent;  /* the hop whose timeline holds it */
    uint64_t bytes; /* of log read, all hops */
};

/* Replays the hops of o from the loaded checkpoint (redo), in memory. */
static cairn_status replay_path(cairn_db *db, const struct engine_restore_opts *o, uint64_t redo,
                                struct engine_restore_result *res, struct replayed *out)
{
    unsigned jobs = o->jobs ? o->jobs : db_default_jobs();
    struct replay_result *sum = &res->replay;
    struct prog pg = {.o = o};
    out->sw = redo;
    out->parent = 0;
    uint64_t path_end = redo; /* how far the log of the path was read */
    for (size_t k = 0; k < o->nhops; k++) {
        const struct engine_tl_hop *h = &o->hops[k];
        bool bounded = h->until_lsn != UINT64_MAX;
        uint64_t from = k ? h->start_lsn : redo;
        wal_reader *r = NULL;
        cairn_status st = o->wal_src ? wal_reader_open_src(o->wal_src, h->timeline, from, &r)
                                     : wal_reader_open(db->waldir, h->timeline, from, &r);
        if (st)
            return cerr_wrap(st, "could not restore \"%s\": the log of timeline %" PRIu32
                             " (hop %zu) from LSN %" PRIu64,
                             db->path, h->timeline, k, from);
        pg.from = from;
        struct replay_opts ro = {.bounded = bounded,
                                 .until_lsn = h->until_lsn,
                                 .progress = o->progress ? hop_progress : NULL,
                                 .progress_ctx = &pg,
                                 .only_names = o->only_names,
                                 .nonly = o->nonly};
        struct replay_result hr;
        st = replay_run_ex(db, r, &o->target, jobs, &ro, &hr);
        struct wal_end end = *wal_reader_end(r);
        wal_reader_close(r);
        if (st)
            return cerr_wrap(st, "could not restore \"%s\": replay of timeline %" PRIu32
                             " (hop %zu) from LSN %" PRIu64,
                             db->path, h->timeline, k, from);
        sum_result(sum, &hr);
        pg.records = sum->records;
        pg.time_us = sum->last_commit_time_us;
        pg.bytes += hr.stop_lsn > from ? hr.stop_lsn - from : 0;
        out->bytes = pg.bytes;
        if (hr.txns_applied) {
            out->sw = hr.last_commit_end;
            out->parent = k;
            if (bounded && hr.last_commit_end > h->until_lsn)
                return cerr_set(CAIRN_EINVAL,
                                "could not restore \"%s\": hop %zu leaves timeline %" PRIu32
                                " at LSN %" PRIu64 ", inside the COMMIT record at LSN %" PRIu64
                                " (a branch point is the end of a commit)",
                                db->path, k, h->timeline, h->until_lsn, hr.last_commit_lsn);
        }
        if (hr.target_reached) {
            res->target_reached = true;
            return CAIRN_OK;
        }
        if (hr.until_reached) {
            path_end = h->until_lsn;
        } else {
            /* The log of this timeline ended. */
            path_end = end.end_lsn;
            if (bounded && end.end_lsn < h->until_lsn) {
                bool last = k + 1 == o->nhops;
                char next[96] = "";
                if (!last)
                    snprintf(next, sizeof next, " where the path goes on to timeline %" PRIu32,
                             o->hops[k + 1].timeline);
                return cerr_set(end.torn ? CAIRN_ECORRUPT : CAIRN_ENOTFOUND,
                                "could not restore \"%s\": the log of timeline %" PRIu32
                                " ends at LSN %" PRIu64 " (\"%s\" at offset %" PRIu64
                                "%s), before LSN %" PRIu64 "%s: a WAL segment of timeline %"
                                PRIu32 " is missing or damaged",
                                db->path, h->timeline, end.end_lsn, end.seg_path,
                                end.seg_offset, end.torn ? ", torn" : "", h->until_lsn, next,
                                h->timeline);
            }
            if (bounded)
                path_end = h->until_lsn;
        }
    }

    /* The path ended before the target said stop. */
    const struct replay_target *t = &o->target;
    const struct engine_tl_hop *hl = &o->hops[o->nhops - 1];
    if (t->kind == REPLAY_TO_END)
        return CAIRN_OK;
    if (t->kind == REPLAY_TO_LSN && (t->inclusive ? path_end > t->lsn : path_end >= t->lsn)) {
        /* every commit at or before the target LSN was in the log read */
        res->target_reached = sum->target_reached = true;
        return CAIRN_OK;
    }
    char what[200];
    target_text(t, what, sizeof what);
    return cerr_set(CAIRN_ENOTFOUND,
                    "could not restore \"%s\": target %s not reached: the path ends on "
                    "timeline %" PRIu32 " at LSN %" PRIu64 " (last commit applied: transaction %"
                    PRIu64 " at LSN %" PRIu64 ", time %" PRId64 " us); the log beyond it is "
                    "missing, or the target is not in it",
                    db->path, what, hl->timeline, path_end, sum->last_txn_id,
                    sum->last_commit_lsn, sum->last_commit_time_us);
}

/* ---- steps 4-9: ending on the new timeline -------------------------------------- */

/* Creates the first segment of the new timeline (zero-filled, a header
 * with a fresh salt), as the WAL writer creates its segments. */
static cairn_status create_segment(cairn_db *db, uint32_t tl, uint64_t start)
{
    char name[64];
    wal_seg_name(name, sizeof name, tl, start);
    char *path = cairn_path_join(db->waldir, name);
    if (!path)
        return cerr_set(CAIRN_ENOMEM, "out of memory");
    uint32_t salt = 0;
    if (getrandom(&salt, sizeof salt, 0) != (ssize_t)sizeof salt)
        salt = (uint32_t)(cairn_mono_us() ^ (uint64_t)cairn_now_us() ^ (uint64_t)getpid());
    struct wal_seg_header h = {.version = WAL_FORMAT_VERSION,
                               .timeline = tl,
                               .seg_shift = db->seg_shift,
                               .start_lsn = start,
                               .db_id = db->db_id,
                               .salt = salt};
    uint8_t hdr[WAL_SEG_HDR];
    wal_seg_header_encode(hdr, &h);
    cio *c = NULL;
    cairn_status st = cio_ctx_open(&c, CAIRN_IO_POSIX, 0);
    if (!st)
        st = cfs_create_zeroed(c, path, (uint64_t)1 << db->seg_shift, hdr, sizeof hdr);
    cio_ctx_close(c);
    free(path);
    return st;
}

/* Removes every segment file of a timeline other than keep. */
static cairn_status remove_other_segments(cairn_db *db, uint32_t keep, uint64_t *removed)
{
    *removed = 0;
    DIR *d = opendir(db->waldir);
    if (!d)
        return cerr_errno(errno, "could not open WAL directory \"%s\"", db->waldir);
    cairn_status st = CAIRN_OK;
    struct dirent *e;
    errno = 0;
    while (!st && (e = readdir(d))) {
        uint32_t tl;
        if (!wal_seg_parse_name(e->d_name, &tl, NULL) || tl == keep)
            continue;
        char *p = cairn_path_join(db->waldir, e->d_name);
        st = p ? cfs_unlink(p) : cerr_set(CAIRN_ENOMEM, "out of memory");
        free(p);
        if (!st)
            (*removed)++;
    }
    closedir(d);
    if (!st && *removed)
        st = cfs_fsync_dir(db->waldir);
    return st;
}

static cairn_status write_history(cairn_db *db, const struct wal_hist_line *l, size_t n,
                                  uint32_t tl)
{
    char *buf = malloc(n * WAL_HIST_LINE_MAX + 1);
    if (!buf)
        return cerr_set(CAIRN_ENOMEM, "out of memory");
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += wal_history_format_line(buf + len, &l[i]);
    char path[4096];
    hist_path(path, sizeof path, db->waldir, tl);
    cairn_status st = cairn_durable_replace(path, buf, len);
    free(buf);
    return st;
}

/* The new timeline's history: the ancestry of the parent's timeline (its
 * own history file when wal/ has one, checked against the path before the
 * replay; else the checkpoint timeline's history and the path's branches),
 * then the branch made now. */
static cairn_status make_history(cairn_db *db, const struct engine_restore_opts *o,
                                 const struct hist *base, const struct replayed *rp,
                                 uint64_t new_start, struct wal_hist_line **out, size_t *n)
{
    size_t j = rp->parent;
    struct hist pj = {0};
    cairn_status st = CAIRN_OK;
    if (j > 0)
        st = hist_read(db->waldir, o->hops[j].timeline, (uint64_t)1 << db->seg_shift, &pj);
    if (st)
        return st;
    size_t cnt = (pj.present ? pj.n : (base->present ? base->n : 0) + j) + 1;
    struct wal_hist_line *l = calloc(cnt, sizeof *l);
    if (!l) {
        hist_free(&pj);
        return cerr_set(CAIRN_ENOMEM, "out of memory");
    }
    size_t k = 0;
    if (pj.present) {
        memcpy(l, pj.l, pj.n * sizeof *l);
        k = pj.n;
    } else {
        if (base->present) {
            memcpy(l, base->l, base->n * sizeof *l);
            k = base->n;
        }
        for (size_t i = 0; i < j; i++)
            l[k++] = path_line(o, i);
    }
    if (!pj.present && !base->present && o->hops[0].timeline != 1)
        clog_warn("database \"%s\": wal/ holds no history file of timeline %" PRIu32
                  ": the history of timeline %" PRIu32 " starts there, without the branches "
                  "before it", db->path, o->hops[0].timeline, o->new_timeline);
    hist_free(&pj);
    l[k++] = (struct wal_hist_line){.parent = o->hops[j].timeline, .switch_lsn = rp->sw,
                                    .start_lsn = new_start};
    *out = l;
    *n = k;
    return CAIRN_OK;
}

/* A partial restore: every selected name must carry a collection in the
 * replayed state (checked before anything is written). */
static cairn_status check_selected(cairn_db *db, const struct engine_restore_opts *o)
{
    for (size_t i = 0; i < o->nonly; i++)
        if (!cat_find_name(db, o->only_names[i]))
            return cerr_set(CAIRN_ENOTFOUND,
                            "could not restore \"%s\": collection \"%s\" does not exist at "
                            "the target (nothing was written)",
                            db->path, o->only_names[i]);
    return CAIRN_OK;
}

static bool selected(const struct engine_restore_opts *o, const char *name)
{
    for (size_t i = 0; i < o->nonly; i++)
        if (strcmp(o->only_names[i], name) == 0)
            return true;
    return false;
}

/* A WAL writer (db->wal) on the new timeline (db->timeline) appending at
 * start, its first segment created already (create_segment). */
static cairn_status open_writer(cairn_db *db, uint64_t start)
{
    struct wal_writer_opts wo = {
        .waldir = db->waldir,
        .timeline = db->timeline,
        .seg_shift = db->seg_shift,
        .db_id = db->db_id,
        .io = CAIRN_IO_POSIX,
        .durability = CAIRN_DURABILITY_SYNC,
        .on_durable = engine_on_durable,
        .ctx = db,
    };
    cairn_status st = wal_writer_open(&wo, start, &db->wal);
    if (!st)
        db->applied_lsn = wal_writer_durable_lsn(db->wal);
    return st;
}

/* ---- the graft (restore.h, "Graft") ------------------------------------------- */

/* Every name of a graft carries a collection in its source (checked
 * before anything is written). */
static cairn_status check_graft(cairn_db *db, const struct engine_restore_opts *o)
{
    for (size_t i = 0; i < o->ngraft; i++)
        if (!cat_find_name(o->graft_src, o->graft_names[i]))
            return cerr_set(CAIRN_ENOTFOUND,
                            "could not restore \"%s\": collection \"%s\" to graft is not in "
                            "the source database \"%s\" (nothing was written)",
                            db->path, o->graft_names[i], o->graft_src->path);
    return CAIRN_OK;
}

#define GRAFT_PIECE ((size_t)4 << 20)

struct graft_buf {
    cairn_db *db;
    uint8_t *b;
    size_t len;
    uint64_t bytes, end;
};

/* Appends what the buffer holds: a piece of the one transaction. */
static cairn_status graft_flush(struct graft_buf *g)
{
    if (g->len == 0)
        return CAIRN_OK;
    uint64_t first, last;
    cairn_status st = wal_writer_append(g->db->wal, g->b, g->len, &first, &last, &g->end);
    g->bytes += g->len;
    g->len = 0;
    return st;
}

/* Room for one more record (at most WAL_REC_MAX bytes): the buffer is
 * appended once it holds a piece. */
static cairn_status graft_room(struct graft_buf *g)
{
    return g->len >= GRAFT_PIECE ? graft_flush(g) : CAIRN_OK;
}

/* Logs the graft's transaction (records above) through db->wal and waits
 * until it is durable. */
static cairn_status graft_log(cairn_db *db, const struct engine_restore_opts *o,
                              struct engine_restore_result *res)
{
    cairn_db *src = o->graft_src;
    struct graft_buf g = {.db = db, .b = malloc(GRAFT_PIECE + WAL_REC_MAX)};
    float *vec = NULL;
    uint32_t vcap = 0;
    uint64_t txn = atomic_fetch_add(&db->next_txn_id, 1), nrec = 0;
    cairn_status st = g.b ? CAIRN_OK : cerr_set(CAIRN_ENOMEM, "out of memory");
    for (size_t i = 0; i < o->ngraft && !st; i++) {
        const char *name = o->graft_names[i];
        struct coll *sc = cat_find_name(src, name);
        struct coll *old = cat_find_name(db, name);
        st = graft_room(&g);
        if (!st && old) {
            g.len += wal_enc_drop_coll(g.b + g.len, old->id, txn);
            nrec++;
            res->graft_replaced++;
        }
        if (!st)
            st = graft_room(&g);
        if (st)
            break;
        /* ids are never reused: the next one of this database */
        uint32_t id = db->next_coll_id++;
        g.len += wal_enc_create_coll(g.b + g.len, id, txn, sc->dim, (uint8_t)sc->metric, name,
                                     (uint8_t)strlen(name));
        nrec++;
        if (sc->dim > vcap) {
            float *nv = realloc(vec, (size_t)sc->dim * sizeof *nv);
            if (!nv) {
                st = cerr_set(CAIRN_ENOMEM, "out of memory");
                break;
            }
            vec = nv;
            vcap = sc->dim;
        }
        size_t n = store_count(&sc->st);
        for (size_t k = 0; k < n && !st; k++) {
            char *payload = NULL;
            st = graft_room(&g);
            if (!st)
                st = store_get_payload(&sc->st, k, &payload);
            if (st)
                break;
            store_get_vector(&sc->st, k, vec);
            g.len += wal_enc_upsert(g.b + g.len, id, txn, store_get_id(&sc->st, k), vec,
                                    sc->dim, payload, payload ? (uint32_t)strlen(payload) : 0);
            free(payload);
            nrec++;
            res->graft_points++;
        }
    }
    if (!st && nrec > UINT32_MAX)
        st = cerr_set(CAIRN_EINVAL, "could not restore \"%s\": the graft holds %" PRIu64
                      " records, more than one transaction can count (%u)",
                      db->path, nrec, UINT32_MAX);
    if (!st)
        st = graft_room(&g);
    if (!st) {
        g.len += wal_enc_commit(g.b + g.len, txn, db_next_commit_time(db), (uint32_t)nrec);
        st = graft_flush(&g);
    }
    if (!st)
        st = wal_writer_wait(db->wal, g.end);
    res->graft_bytes = g.bytes;
    free(vec);
    free(g.b);
    return st;
}

/* The graft: logged on the new timeline at start, then applied by reading
 * it back through the replay engine. */
static cairn_status graft(cairn_db *db, const struct engine_restore_opts *o, uint64_t start,
                          struct engine_restore_result *res)
{
    cairn_status st = open_writer(db, start);
    if (st)
        return st;
    st = graft_log(db, o, res);
    cairn_status cst = wal_writer_close(db->wal);
    db->wal = NULL;
    if (!st)
        st = cst;
    if (st)
        return st;
    wal_reader *r = NULL;
    st = wal_reader_open(db->waldir, db->timeline, start, &r);
    struct replay_result rr;
    if (!st)
        st = replay_run(db, r, NULL, 1, &rr);
    if (!st && rr.txns_applied != 1)
        st = cerr_set(CAIRN_ECORRUPT, "could not restore \"%s\": the graft's transaction "
                      "logged at LSN %" PRIu64 " read back as %" PRIu64 " transaction(s)",
                      db->path, start, rr.txns_applied);
    if (!st) {
        db_note_replay(db, &rr);
        db->applied_end = wal_reader_end(r)->rec_end;
    }
    wal_reader_close(r);
    return st;
}

/* A partial restore: the collections not selected are dropped as the new
 * timeline's first transactions, through a WAL writer on the new
 * timeline and cairn_collection_drop (the drop every handle logs and
 * applies), so that the log of the new timeline, replayed on top of its
 * parent's up to the switch LSN, gives exactly the restored state; the
 * checkpoint taken next then covers them. *dropped: how many. */
static cairn_status drop_unselected(cairn_db *db, const struct engine_restore_opts *o,
                                    uint64_t start, uint32_t *dropped)
{
    *dropped = 0;
    size_t n = 0;
    char(*names)[CAIRN_MAX_NAME + 1] = calloc(db->ncolls ? db->ncolls : 1, sizeof *names);
    if (!names)
        return cerr_set(CAIRN_ENOMEM, "out of memory");
    for (size_t i = 0; i < db->ncolls; i++)
        if (!selected(o, db->colls[i]->name))
            memcpy(names[n++], db->colls[i]->name, sizeof *names);
    if (n == 0) {
        free(names);
        return CAIRN_OK;
    }
    cairn_status st = open_writer(db, start);
    if (!st) {
        for (size_t i = 0; i < n && !st; i++) {
            st = cairn_collection_drop(db, names[i]);
            if (!st)
                (*dropped)++;
        }
        cairn_status cst = wal_writer_close(db->wal);
        db->wal = NULL;
        if (!st)
            st = cst;
    }
    free(names);
    return st;
}

static cairn_status finish(cairn_db *db, const struct engine_restore_opts *o,
                           const struct hist *base, const struct replayed *rp,
                           struct engine_restore_result *res)
{
    const uint64_t seg_size = (uint64_t)1 << db->seg_shift;
    const uint32_t tl = o->new_timeline;
    res->parent_timeline = o->hops[rp->parent].timeline;
    res->switch_lsn = rp->sw;
    res->new_start_lsn = ((rp->sw & ~(seg_size - 1)) + seg_size) + WAL_SEG_DATA;

    struct wal_hist_line *hl = NULL;
    size_t nhl = 0;
    cairn_status st = make_history(db, o, base, rp, res->new_start_lsn, &hl, &nhl);
    if (st)
        return st;

    /* 4. from here on the directory is refused until the end */
    char *marker = cairn_path_join(db->path, DB_RESTORE_MARKER);
    if (!marker) {
        free(hl);
        return cerr_set(CAIRN_ENOMEM, "out of memory");
    }
    char text[160];
    int tn = snprintf(text, sizeof text, "restore to timeline %" PRIu32 " from timeline %" PRIu32
                      " at LSN %016" PRIX64 " did not complete\n", tl, res->parent_timeline,
                      res->switch_lsn);
    st = cairn_durable_replace(marker, text, (size_t)tn);
    /* 5. the new timeline's first segment */
    if (!st)
        st = create_segment(db, tl, res->new_start_lsn - WAL_SEG_DATA);
    /* 6. the other timelines' segments */
    uint64_t removed = 0;
    if (!st)
        st = remove_other_segments(db, tl, &removed);
    /* 7. the history */
    if (!st)
        st = write_history(db, hl, nhl, tl);
    free(hl);
    /* 8. (partial restore: the other collections dropped, logged on the
     * new timeline) the checkpoint of the restored state on the new
     * timeline, then meta */
    cairn_checkpoint_info info = {0};
    uint32_t dropped = 0;
    if (!st) {
        db->timeline = tl;
        db->applied_end = res->new_start_lsn;
        if (o->nonly)
            st = drop_unselected(db, o, res->new_start_lsn, &dropped);
        else if (o->ngraft)
            st = graft(db, o, res->new_start_lsn, res);
    }
    if (!st)
        st = ckpt_run(db, &info);
    if (!st)
        st = db_meta_set_timeline(db->path, tl);
    /* 9. done */
    if (!st)
        st = cfs_unlink(marker);
    if (!st) {
        st = cfs_fsync_dir(db->path);
        if (st) {
            /* The removal may or may not be durable: put the marker back
             * (best effort, plainly), so that an error return always
             * leaves a directory that is refused. */
            char msg[512];
            snprintf(msg, sizeof msg, "%s", cairn_last_error());
            FILE *f = fopen(marker, "w");
            if (f) {
                fputs(text, f);
                fclose(f);
            }
            cerr_set(st, "%s", msg);
        }
    }
    free(marker);
    if (st)
        return cerr_wrap(st, "could not restore \"%s\" (it stays refused: \"%s\" is there)",
                         db->path, DB_RESTORE_MARKER);
    res->checkpoint = info.generation;
    if (o->ngraft)
        clog_info("database \"%s\": %zu collection(s) grafted from \"%s\" on timeline %"
                  PRIu32 " (%" PRIu32 " replaced, %" PRIu64 " point(s), %" PRIu64
                  " bytes of WAL in one transaction)", db->path, o->ngraft,
                  o->graft_src->path, tl, res->graft_replaced, res->graft_points,
                  res->graft_bytes);
    clog_info("database \"%s\": restored to timeline %" PRIu32 " (from timeline %" PRIu32
              " at LSN %" PRIu64 "; log starts at LSN %" PRIu64 "), %" PRIu64
              " transaction(s) replayed, checkpoint %" PRIu64 ", %" PRIu64
              " segment(s) of other timelines removed, %" PRIu32 " collection(s) not "
              "selected dropped",
              db->path, tl, res->parent_timeline, res->switch_lsn, res->new_start_lsn,
              res->replay.txns_applied, info.generation, removed, dropped);
    return CAIRN_OK;
}

/* ---- pre-writes during the replay ------------------------------------------- */

/* How often the pre-writer looks by default, and the dirty pages a
 * collection needs before it is worth a look (the scan walks every page of
 * it). A page is written once no change has reached it for one period: a
 * replay mostly appends, so most pages are finished with soon after they
 * fill. */
#define PREWRITE_PERIOD_US 40000u
#define PREWRITE_MIN_DIRTY 256u

struct prewriter {
    cairn_db *db;
    uint32_t period_us;
    size_t min_dirty;
    pthread_t thr;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_cond_t round_cv; /* a round ended, or the thread did */
    bool stop, exited;
    cairn_status st;
    char msg[512];
    uint64_t pages, rounds;
};

static void *prewriter_main(void *arg)
{
    struct prewriter *pw = arg;
    uint64_t cold = 0;
    pthread_mutex_lock(&pw->mu);
    while (!pw->stop) {
        struct timespec ts;
        cairn_deadline(&ts, CLOCK_REALTIME, pw->period_us);
        pthread_cond_timedwait(&pw->cv, &pw->mu, &ts);
        if (pw->stop)
            break;
        pthread_mutex_unlock(&pw->mu);
        uint64_t newest = 0, n = 0;
        cairn_status st = ckpt_prewrite(pw->db, cold, pw->min_dirty, &newest, &n);
        pthread_mutex_lock(&pw->mu);
        if (st) {
            pw->st = st;
            snprintf(pw->msg, sizeof pw->msg, "%s", cairn_last_error());
            break;
        }
        if (newest > cold)
            cold = newest;
        pw->pages += n;
        pw->rounds++;
        pthread_cond_broadcast(&pw->round_cv);
    }
    pw->exited = true;
    pthread_cond_broadcast(&pw->round_cv);
    pthread_mutex_unlock(&pw->mu);
    return NULL;
}

/* Starts the pre-writer; false (and a warning) if no thread could be had:
 * the restore goes on without (the checkpoint writes every page). */
static bool prewriter_start(struct prewriter *pw, cairn_db *db, uint32_t period_us)
{
    memset(pw, 0, sizeof *pw);
    pw->db = db;
    /* a period given is a test's: every dirty page counts then */
    pw->period_us = period_us ? period_us : PREWRITE_PERIOD_US;
    pw->min_dirty = period_us ? 1 : PREWRITE_MIN_DIRTY;
    pthread_mutex_init(&pw->mu, NULL);
    pthread_cond_init(&pw->cv, NULL);
    pthread_cond_init(&pw->round_cv, NULL);
    int e = pthread_create(&pw->thr, NULL, prewriter_main, pw);
    if (e) {
        clog_warn("database \"%s\": no thread for pre-writes (%s): the restore's checkpoint "
                  "writes every page", db->path, strerror(e));
        pthread_cond_destroy(&pw->round_cv);
        pthread_cond_destroy(&pw->cv);
        pthread_mutex_destroy(&pw->mu);
        return false;
    }
    return true;
}

/* Stops and joins it; its failure, if any (the message set). With drain
 * (engine_restore_opts.prewrite_drain), first lets it run two more rounds:
 * one finds every page the replay changed cold, the next writes them. */
static cairn_status prewriter_stop(struct prewriter *pw, bool drain)
{
    pthread_mutex_lock(&pw->mu);
    uint64_t want = pw->rounds + 2;
    while (drain && !pw->exited && pw->rounds < want)
        pthread_cond_wait(&pw->round_cv, &pw->mu);
    pw->stop = true;
    pthread_cond_signal(&pw->cv);
    pthread_mutex_unlock(&pw->mu);
    pthread_join(pw->thr, NULL);
    pthread_cond_destroy(&pw->round_cv);
    pthread_cond_destroy(&pw->cv);
    pthread_mutex_destroy(&pw->mu);
    clog_debug("database \"%s\": %" PRIu64 " page(s) pre-written in %" PRIu64 " round(s)",
               pw->db->path, pw->pages, pw->rounds);
    if (pw->st)
        return cerr_set(pw->st, "%s", pw->msg);
    return CAIRN_OK;
}

cairn_status engine_restore(const char *dir, const struct engine_restore_opts *o,
                            struct engine_restore_result *res)
{
    cerr_clear();
    if (!dir || !o || !res)
        return cerr_set(CAIRN_EINVAL, "engine_restore: NULL argument");
    memset(res, 0, sizeof *res);
    cairn_status st = check_opts(dir, o);
    if (st)
        return st;
    cairn_db *db = NULL;
    uint64_t redo = 0;
    uint64_t t0 = cairn_mono_us();
    st = db_open_for_restore(dir, &db, &redo);
    if (st)
        return cerr_wrap(st, "could not restore \"%s\"", dir);
    struct hist base = {0};
    struct replayed rp = {0};
    st = check_against(db, o, redo, &base);
    struct prewriter pw;
    bool pre = !st && o->prewrite && !o->on_replayed &&
               prewriter_start(&pw, db, o->prewrite_period_us);
    uint64_t t1 = cairn_mono_us();
    res->load_us = t1 - t0;
    if (!st)
        st = replay_path(db, o, redo, res, &rp);
    res->redo_us = cairn_mono_us() - t1;
    if (pre) {
        cairn_status pst = prewriter_stop(&pw, o->prewrite_drain);
        if (pst && !st)
            st = cerr_wrap(pst, "could not restore \"%s\"", dir);
        res->prewritten = pw.pages;
    }
    if (!st)
        st = check_selected(db, o);
    if (!st)
        st = check_graft(db, o);
    if (!st && o->progress) {
        const struct replay_result *s = &res->replay;
        uint64_t lsn = s->stop_lsn;
        if (o->progress(o->progress_ctx, s->records, rp.bytes, lsn, s->last_commit_time_us))
            st = cerr_set(CAIRN_ECANCELED, "could not restore \"%s\": canceled by the caller "
                          "after the replay (nothing changed)", dir);
    }
    bool handed = false;
    if (!st && o->on_replayed) {
        /* the hand-over: the state at the target goes to the caller only */
        db_note_replay(db, &res->replay);
        st = o->on_replayed(o->on_replayed_ctx, db);
        handed = true;
    } else if (!st) {
        db_note_replay(db, &res->replay);
        st = finish(db, o, &base, &rp, res);
    }
    if (!st && !handed) {
        pthread_rwlock_rdlock(&db->cat_lock);
        res->collections = (uint32_t)db->ncolls;
        for (size_t i = 0; i < db->ncolls; i++)
            res->points += store_count(&db->colls[i]->st);
        pthread_rwlock_unlock(&db->cat_lock);
    }
    hist_free(&base);
    db_discard(db);
    return st;
}
