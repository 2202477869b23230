/*
 * restore.c — the restore planner and the restore (pitr_restore).
 *
 * Planning reads only manifests, WAL summaries and history files (and, for
 * a time or transaction target, the one archived segment that holds the
 * cut), and refuses before writing anything a target it cannot reach:
 *
 *   1. The timeline path: the target timeline (--timeline, else the
 *      newest the repository knows) and its ancestors from its history
 *      file, each followed from where it starts up to where the next one
 *      branched off (its switch LSN).
 *   2. The cut: the target resolved on that path to an LSN, `stop`: no
 *      commit whose COMMIT record starts at or after it is applied
 *      (UINT64_MAX for --latest: everything archived). A name resolves to
 *      its restore point; a transaction to its COMMIT; a time to the first
 *      commit past it, found in the segment whose summary brackets it.
 *   3. The base: the newest backup on the path whose checkpoint (redo LSN)
 *      lies at or before the cut on its timeline; none: "too early".
 *   4. The WAL: every segment from the base's redo LSN to the cut along
 *      the path must be archived ("gap" otherwise), and the archive must
 *      reach the cut ("past the end of the archive").
 *
 * The restore then builds "<target>.partial": meta, superblock and every
 * page of the base's image from its packs (each pack's SHA-256 checked);
 * beside them, from the start, its own thread fetches the target
 * timeline's history file into wal/ and the segments (each checked
 * against its summary's SHA-256) into memory. engine_restore starts as
 * soon as the pages and the history file are there: it replays the path
 * to the target through the replay engine while the fetch goes on ahead
 * of it (its WAL readers read the segments through a source that waits
 * for one not fetched yet: the pipeline, above struct seg_fetch), and
 * starts the new timeline; the new history file goes to the repository;
 * the directory is fsynced and renamed to the target. A crash at any
 * point leaves the target absent (only the .partial directory, which the
 * next restore removes) or whole.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/io.h"
#include "common/log.h"
#include "common/util.h"
#include "engine/pager.h"
#include "engine/restore.h"
#include "pitr/pitr.h"
#include "wal/wal.h"

#define MAX_HOPS 16

void pitr_plan_free(struct pitr_plan *p)
{
    free(p->segs);
    p->segs = NULL;
    p->nsegs = 0;
}

struct hop {
    uint32_t tl;
    uint64_t start, until; /* start 0 for the first hop: from the base */
};

struct planner {
    repo *r;
    const struct pitr_restore_opts *o;
    struct hop hops[MAX_HOPS];
    size_t nhops;
    struct pitr_manifest *mans;
    size_t nmans;
    uint64_t seg_size;
    uint32_t max_tl;
};

static uint64_t seg_of(const struct planner *p, uint64_t lsn)
{
    return lsn & ~(p->seg_size - 1);
}

static void free_mans(struct planner *p)
{
    for (size_t i = 0; i < p->nmans; i++)
        pitr_manifest_free(&p->mans[i]);
    free(p->mans);
    p->mans = NULL;
    p->nmans = 0;
}

static cairn_status load_mans(struct planner *p)
{
    char **ids = NULL;
    size_t n = 0;
    cairn_status st = repo_backup_ids(p->r, &ids, &n);
    if (!st) {
        p->mans = calloc(n ? n : 1, sizeof *p->mans);
        if (!p->mans)
            st = cerr_set(CAIRN_ENOMEM, "out of memory");
    }
    for (size_t i = 0; !st && i < n; i++) {
        st = pitr_manifest_load(p->r, ids[i], &p->mans[p->nmans]);
        if (!st) {
            if (p->mans[p->nmans].timeline > p->max_tl)
                p->max_tl = p->mans[p->nmans].timeline;
            p->nmans++;
        }
    }
    repo_strv_free(ids, n);
    return st;
}

/* The path of timelines ending at tl (1. above). */
static cairn_status build_path(struct planner *p, uint32_t tl)
{
    struct wal_hist_line *b = NULL;
    size_t nb = 0;
    cairn_status st = repo_history_get(p->r, tl, &b, &nb);
    if (st)
        return st;
    if (nb + 1 > MAX_HOPS) {
        free(b);
        return cerr_set(CAIRN_ENOTSUP, "timeline %u descends from %zu others; a restore follows "
                        "at most %d", tl, nb, MAX_HOPS - 1);
    }
    p->nhops = 0;
    for (size_t i = 0; i < nb; i++) {
        uint32_t child = i + 1 < nb ? b[i + 1].parent : tl;
        if (child <= b[i].parent || (i && b[i].switch_lsn < p->hops[i - 1].start)) {
            st = cerr_set(CAIRN_ECORRUPT, "history of timeline %u in repository \"%s\": line %zu "
                          "(parent %u at %016" PRIX64 ") does not continue the lines before it",
                          tl, p->r->dir, i + 1, b[i].parent, b[i].switch_lsn);
            free(b);
            return st;
        }
        p->hops[p->nhops++] = (struct hop){b[i].parent, i ? b[i - 1].start_lsn : 0,
                                           b[i].switch_lsn};
    }
    p->hops[p->nhops++] = (struct hop){tl, nb ? b[nb - 1].start_lsn : 0, UINT64_MAX};
    free(b);
    return CAIRN_OK;
}

/* Index of the hop whose range holds lsn, or -1. */
static int hop_of(const struct planner *p, uint64_t lsn)
{
    for (size_t i = 0; i < p->nhops; i++)
        if (lsn >= p->hops[i].start && lsn < p->hops[i].until)
            return (int)i;
    return -1;
}

/* Calls fn for each archived segment summary of the path, in log order,
 * from the first hop; fn returns 1 to stop. */
typedef int (*sum_fn)(void *ctx, size_t hop, const struct repo_seg_summary *s);

static cairn_status walk_summaries(struct planner *p, sum_fn fn, void *ctx, bool *stopped)
{
    *stopped = false;
    cairn_status st = CAIRN_OK;
    for (size_t h = 0; !st && !*stopped && h < p->nhops; h++) {
        uint64_t *starts = NULL;
        size_t n = 0;
        st = repo_wal_list(p->r, p->hops[h].tl, &starts, &n);
        for (size_t i = 0; !st && !*stopped && i < n; i++) {
            if (starts[i] + p->seg_size <= p->hops[h].start || starts[i] >= p->hops[h].until)
                continue;
            struct repo_seg_summary s;
            st = repo_seg_summary_get(p->r, p->hops[h].tl, starts[i], &s);
            if (!st && fn(ctx, h, &s))
                *stopped = true;
            repo_seg_summary_free(&s);
        }
        free(starts);
    }
    return st;
}

/* Reads an archived segment, checked against its summary (with the
 * buffers of ru when not NULL). */
static cairn_status fetch_seg(repo *r, uint32_t tl, uint64_t start, struct repo_reuse *ru,
                              uint8_t **data, size_t *len)
{
    struct repo_seg_summary s;
    cairn_status st = repo_seg_summary_get(r, tl, start, &s);
    if (st == CAIRN_ENOTFOUND) {
        char name[64];
        wal_seg_name(name, sizeof name, tl, start);
        return cerr_set(CAIRN_ENOTFOUND, "WAL segment %s is not in the archive of repository "
                        "\"%s\"", name, r->dir);
    }
    if (st)
        return st;
    char name[128];
    repo_wal_obj_name(tl, start, false, name, sizeof name);
    st = ru ? repo_obj_get_reuse(r, name, REPO_OBJ_WAL, s.sha, ru, data, len)
            : repo_obj_get(r, name, REPO_OBJ_WAL, s.sha, data, len);
    repo_seg_summary_free(&s);
    return st;
}

/* ---- resolving the target (2. above) --------------------------------------------- */

struct find {
    const struct pitr_restore_opts *o;
    const struct planner *p;
    size_t hop;
    uint32_t tl;
    uint64_t seg;
    uint64_t lsn;   /* what was found: the restore point / commit LSN */
    bool found;
    uint64_t last_end; /* end of the archive seen so far on the path */
    uint32_t last_tl;
    int64_t last_time;
    uint64_t last_lsn;
    /* find_segment: skip segments up to (hop, seg) included (a segment
     * whose summary matched only through records outside its hop) */
    bool resume;
    size_t resume_hop;
    uint64_t resume_seg;
};

static int find_name(void *ctx, size_t hop, const struct repo_seg_summary *s)
{
    struct find *f = ctx;
    for (size_t i = 0; i < s->nrpoints; i++)
        if (!strcmp(s->rpoints[i].name, f->o->name) && s->rpoints[i].lsn >= f->p->hops[hop].start &&
            s->rpoints[i].lsn < f->p->hops[hop].until) {
            /* the newest of that name on the path wins: keep looking (the
             * restore stops at this one's LSN: see pitr_restore) */
            f->found = true;
            f->hop = hop;
            f->tl = s->timeline;
            f->lsn = s->rpoints[i].lsn;
        }
    return 0;
}

static int find_segment(void *ctx, size_t hop, const struct repo_seg_summary *s)
{
    struct find *f = ctx;
    if (f->resume && (hop < f->resume_hop || (hop == f->resume_hop && s->start <= f->resume_seg)))
        return 0;
    bool hit;
    if (f->o->kind == PITR_TARGET_TIME)
        hit = s->commits && (f->o->exclusive ? s->last.time_us >= f->o->time_us
                                             : s->last.time_us > f->o->time_us);
    else
        hit = s->commits && s->min_txn <= f->o->txn && f->o->txn <= s->max_txn;
    if (hit) {
        f->found = true;
        f->hop = hop;
        f->tl = s->timeline;
        f->seg = s->start;
        return 1;
    }
    return 0;
}

/* In the segment found, the exact commit: the first past the time, or the
 * transaction's. *lsn gets its COMMIT record's LSN. */
static cairn_status exact_commit(struct planner *p, struct find *f, uint64_t *lsn, bool *ok)
{
    uint8_t *seg = NULL;
    size_t len = 0;
    *ok = false;
    cairn_status st = fetch_seg(p->r, f->tl, f->seg, NULL, &seg, &len);
    if (st)
        return st;
    struct wal_seg_header h;
    st = wal_seg_header_decode(seg, &h, "archived segment");
    for (uint64_t off = WAL_SEG_DATA; !st && off < len;) {
        struct wal_record rec;
        if (!wal_rec_check(seg + off, len - off, h.start_lsn + off, h.salt, &rec))
            break;
        if (rec.type == WAL_REC_COMMIT) {
            struct wal_commit c;
            st = wal_dec_commit(&rec, &c);
            bool hit = p->o->kind == PITR_TARGET_TIME
                           ? (p->o->exclusive ? c.time_us >= p->o->time_us
                                              : c.time_us > p->o->time_us)
                           : rec.txn_id == p->o->txn;
            if (!st && hit && rec.lsn >= p->hops[f->hop].start && rec.lsn < p->hops[f->hop].until) {
                *lsn = rec.lsn;
                *ok = true;
                break;
            }
        }
        off += (rec.len + WAL_REC_ALIGN - 1) & ~(uint64_t)(WAL_REC_ALIGN - 1);
    }
    free(seg);
    return st;
}

static int find_end(void *ctx, size_t hop, const struct repo_seg_summary *s)
{
    (void)hop;
    struct find *f = ctx;
    f->last_end = s->end_lsn;
    f->last_tl = s->timeline;
    if (s->commits) {
        f->last_time = s->last.time_us;
        f->last_lsn = s->last.lsn;
    }
    return 0;
}

static void fmt_time(int64_t us, char *out, size_t n)
{
    time_t t = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char b[32];
    strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, n, "%s.%06dZ", b, (int)(us % 1000000));
}

/* The cut (stop LSN) of the target, on the path. */
static cairn_status resolve(struct planner *p, uint64_t *stop)
{
    const struct pitr_restore_opts *o = p->o;
    struct find f = {.o = o, .p = p};
    bool stopped = false;
    cairn_status st = walk_summaries(p, find_end, &f, &stopped);
    if (st)
        return st;
    uint32_t ttl = p->hops[p->nhops - 1].tl;
    switch (o->kind) {
    case PITR_TARGET_LATEST:
        *stop = UINT64_MAX;
        return CAIRN_OK;
    case PITR_TARGET_BACKUP:
        return CAIRN_OK; /* *stop set by the caller */
    case PITR_TARGET_LSN:
        if (hop_of(p, o->lsn) < 0)
            return cerr_set(CAIRN_EINVAL, "LSN %016" PRIX64 " is not on the path of timeline %u "
                            "(it lies in a part of an ancestor's log that timeline %u abandoned)",
                            o->lsn, ttl, ttl);
        /* the cut falls after every commit at or before it (inclusive) */
        *stop = o->exclusive ? o->lsn : o->lsn + 1;
        if (*stop > f.last_end && f.last_tl == ttl)
            return cerr_set(CAIRN_ENOTFOUND, "target LSN %016" PRIX64 " is past the end of the "
                            "archive of timeline %u (%016" PRIX64 "): archive more WAL (pitrctl "
                            "archive) or choose an earlier target", o->lsn, ttl, f.last_end);
        if (*stop > f.last_end)
            return cerr_set(CAIRN_ENOTFOUND, "target LSN %016" PRIX64 " is past the end of the "
                            "archive on the path of timeline %u (%016" PRIX64 " on timeline %u)",
                            o->lsn, ttl, f.last_end, f.last_tl);
        return CAIRN_OK;
    case PITR_TARGET_NAME:
        st = walk_summaries(p, find_name, &f, &stopped);
        if (!st && !f.found)
            st = cerr_set(CAIRN_ENOTFOUND, "no restore point named \"%s\" in the archived WAL on "
                          "the path of timeline %u", o->name, ttl);
        if (!st)
            *stop = f.lsn; /* commits before the marker */
        return st;
    case PITR_TARGET_TIME:
    case PITR_TARGET_TXN: {
        st = walk_summaries(p, find_segment, &f, &stopped);
        if (st)
            return st;
        if (!f.found) {
            char tb[48];
            fmt_time(f.last_time, tb, sizeof tb);
            if (o->kind == PITR_TARGET_TXN)
                return cerr_set(CAIRN_ENOTFOUND, "transaction %" PRIu64 " has no COMMIT in the "
                                "archived WAL on the path of timeline %u", o->txn, ttl);
            return cerr_set(CAIRN_ENOTFOUND, "target time is past the end of the archive on the "
                            "path of timeline %u: its last commit is at %s (LSN %016" PRIX64 "); "
                            "use --latest, or archive more WAL", ttl, tb, f.last_lsn);
        }
        bool ok = false;
        uint64_t lsn = 0;
        st = exact_commit(p, &f, &lsn, &ok);
        /* A segment holding the point where the next timeline branched
         * off has a summary that also counts the commits after it, which
         * that timeline abandoned (and whose transaction ids it may use
         * again): when the match was only there, look further on. */
        while (!st && !ok) {
            f.resume = true;
            f.resume_hop = f.hop;
            f.resume_seg = f.seg;
            f.found = false;
            st = walk_summaries(p, find_segment, &f, &stopped);
            if (st || !f.found)
                break;
            st = exact_commit(p, &f, &lsn, &ok);
        }
        if (!st && !ok && o->kind == PITR_TARGET_TIME) {
            char tb[48];
            fmt_time(f.last_time, tb, sizeof tb);
            st = cerr_set(CAIRN_ENOTFOUND, "target time is past the end of the archive on the "
                          "path of timeline %u: its last commit is at %s (LSN %016" PRIX64 "); "
                          "use --latest, or archive more WAL", ttl, tb, f.last_lsn);
        } else if (!st && !ok)
            st = cerr_set(CAIRN_ENOTFOUND, "transaction %" PRIu64 " has no COMMIT in the archived "
                          "WAL on the path of timeline %u", o->txn, ttl);
        if (!st)
            *stop = o->kind == PITR_TARGET_TXN && !o->exclusive ? lsn + 1 : lsn;
        return st;
    }
    }
    return cerr_set(CAIRN_EINVAL, "unknown target kind %d", (int)o->kind);
}

/* ---- the plan ---------------------------------------------------------------------- */

static cairn_status safe_name(const char *name, const char *id);

/* The base can be materialized: every file name stays inside the target,
 * and every blob it needs is in the repository (their contents are
 * checked as they are read). */
static cairn_status check_base(repo *r, const struct pitr_manifest *m)
{
    for (size_t i = 0; i < m->nfiles; i++) {
        cairn_status st = safe_name(m->files[i].name, m->id);
        if (st)
            return st;
    }
    for (size_t i = 0; i < m->npacks + 3; i++) {
        if (i == m->npacks + 2 && !m->have_wal_head)
            break;
        const uint8_t *sha = i == 0                ? m->meta_sha
                             : i == 1              ? m->super_sha
                             : i == m->npacks + 2 ? m->wal_head_sha
                                                   : m->packs[i - 2];
        char name[128];
        repo_blob_name(sha, name, sizeof name);
        uint64_t size = 0;
        cairn_status st = store_stat(r->st, name, &size);
        if (st == CAIRN_ENOTFOUND)
            return cerr_set(CAIRN_ENOTFOUND, "backup \"%s\" needs %s \"%s\", which is missing "
                            "from repository \"%s\"", m->id,
                            i == 0                ? "the blob of its meta"
                            : i == 1              ? "the blob of its superblock"
                            : i == m->npacks + 2 ? "the blob of its WAL head"
                                                  : "pack",
                            name, r->dir);
        if (st)
            return st;
    }
    return CAIRN_OK;
}

static cairn_status plan(struct planner *p, struct pitr_plan *pl, const struct pitr_manifest **base)
{
    const struct pitr_restore_opts *o = p->o;
    memset(pl, 0, sizeof *pl);
    cairn_status st = load_mans(p);
    uint32_t *tls = NULL;
    size_t ntl = 0;
    if (!st)
        st = repo_timelines(p->r, &tls, &ntl);
    if (st) {
        free(tls);
        return st;
    }
    for (size_t i = 0; i < ntl; i++)
        if (tls[i] > p->max_tl)
            p->max_tl = tls[i];
    free(tls);
    if (!p->nmans)
        return cerr_set(CAIRN_ENOTFOUND, "repository \"%s\" holds no backup: take one first "
                        "(pitrctl backup)", p->r->dir);
    p->seg_size = (uint64_t)1 << p->r->seg_shift;
    /* the default: the newest timeline that has archived WAL or a backup
     * (a restore reserves its timeline number with a history file at once;
     * until that database archives, following it adds nothing past its
     * branch point and would hide the parent's later WAL) */
    uint32_t ttl = o->timeline;
    for (uint32_t t = p->max_tl; !ttl && t > 0; t--) {
        bool has = false;
        for (size_t i = 0; i < p->nmans && !has; i++)
            has = p->mans[i].timeline == t;
        uint64_t *starts = NULL;
        size_t n = 0;
        if (!has && repo_wal_list(p->r, t, &starts, &n) == CAIRN_OK)
            has = n > 0;
        free(starts);
        if (has)
            ttl = t;
    }
    if (!ttl)
        ttl = 1;
    if (o->backup) {
        const struct pitr_manifest *m = NULL;
        for (size_t i = 0; i < p->nmans; i++)
            if (!strcmp(p->mans[i].id, o->backup))
                m = &p->mans[i];
        if (!m)
            return cerr_set(CAIRN_ENOTFOUND, "repository \"%s\" has no backup \"%s\"", p->r->dir,
                            o->backup);
        if (!o->timeline && o->kind == PITR_TARGET_BACKUP)
            ttl = m->timeline;
    }
    if (o->timeline && o->timeline > p->max_tl)
        return cerr_set(CAIRN_ENOTFOUND, "repository \"%s\" knows no timeline %u (the newest is "
                        "%u)", p->r->dir, o->timeline, p->max_tl);
    st = build_path(p, ttl);
    if (st)
        return st;
    uint64_t stop = UINT64_MAX;
    const struct pitr_manifest *b = NULL;
    if (o->kind == PITR_TARGET_BACKUP) {
        for (size_t i = 0; i < p->nmans; i++)
            if (!strcmp(p->mans[i].id, o->backup))
                b = &p->mans[i];
        stop = b->redo_lsn;
    }
    st = resolve(p, &stop);
    if (st)
        return st;
    /* 3. the base: newest on the path whose redo is at or before the cut */
    int stop_hop = stop == UINT64_MAX ? (int)p->nhops - 1 : hop_of(p, stop - (stop > 0));
    if (o->kind == PITR_TARGET_BACKUP)
        stop_hop = hop_of(p, stop ? stop - 1 : 0);
    for (size_t i = 0; !b && i < p->nmans; i++) {
        const struct pitr_manifest *m = &p->mans[p->nmans - 1 - i];
        if (o->backup && strcmp(m->id, o->backup) != 0)
            continue;
        int h = -1;
        for (size_t k = 0; k < p->nhops; k++)
            if (p->hops[k].tl == m->timeline && m->redo_lsn <= p->hops[k].until &&
                (k == 0 || m->redo_lsn >= p->hops[k].start))
                h = (int)k;
        if (h < 0 || h > stop_hop || m->redo_lsn > stop)
            continue;
        b = m;
    }
    if (!b) {
        if (o->backup) {
            const struct pitr_manifest *m = NULL;
            for (size_t i = 0; i < p->nmans; i++)
                if (!strcmp(p->mans[i].id, o->backup))
                    m = &p->mans[i];
            return cerr_set(CAIRN_EINVAL, "backup \"%s\" is not at or before the target on the "
                            "path of timeline %u: its checkpoint (redo LSN %016" PRIX64 " on "
                            "timeline %u) is past the cut (%016" PRIX64 ") or off the path",
                            o->backup, ttl, m->redo_lsn, m->timeline, stop);
        }
        const struct pitr_manifest *e = &p->mans[0];
        return cerr_set(CAIRN_ENOTFOUND, "the target is before the earliest backup usable on the "
                        "path of timeline %u (the earliest backup, %s, is at LSN %016" PRIX64
                        "): nothing to restore from", ttl, e->id, e->redo_lsn);
    }
    if (b->db_id != p->r->db_id)
        return cerr_set(CAIRN_ECORRUPT, "backup \"%s\" is of database %016" PRIx64 ", the "
                        "repository of %016" PRIx64, b->id, b->db_id, p->r->db_id);
    st = check_base(p->r, b);
    if (st)
        return st;
    /* trim the path: it begins at the base's hop */
    size_t first = 0;
    for (size_t k = 0; k < p->nhops; k++)
        if (p->hops[k].tl == b->timeline && b->redo_lsn <= p->hops[k].until &&
            (k == 0 || b->redo_lsn >= p->hops[k].start))
            first = k;
    memmove(p->hops, p->hops + first, (p->nhops - first) * sizeof *p->hops);
    p->nhops -= first;
    p->hops[0].start = b->redo_lsn;
    if (stop_hop >= 0)
        stop_hop -= (int)first;
    /* 4. the segments, each archived: on each hop from the segment holding
     * its start to the one holding its end (the cut on the last hop: the
     * replay must see the commit or marker that ends it; --latest: every
     * archived segment from the start on) */
    size_t cap = 0;
    size_t last_hop = stop == UINT64_MAX ? p->nhops - 1 : (size_t)(stop_hop < 0 ? 0 : stop_hop);
    for (size_t h = 0; h <= last_hop && h < p->nhops; h++) {
        uint64_t lo = p->hops[h].start;
        uint64_t *have = NULL;
        size_t nhave = 0;
        st = repo_wal_list(p->r, p->hops[h].tl, &have, &nhave);
        if (st)
            return st;
        uint64_t first_seg = seg_of(p, lo), last_seg;
        if (h < last_hop)
            last_seg = seg_of(p, p->hops[h].until > lo ? p->hops[h].until - 1 : lo);
        else if (stop != UINT64_MAX)
            last_seg = seg_of(p, stop > lo ? stop : lo);
        else {
            last_seg = first_seg; /* extended below over what is archived */
            size_t i = 0;
            while (i < nhave && have[i] < first_seg)
                i++;
            for (uint64_t s = first_seg; i < nhave && have[i] == s; i++, s += p->seg_size)
                last_seg = s;
        }
        size_t i = 0;
        for (uint64_t s = first_seg; s <= last_seg; s += p->seg_size) {
            while (i < nhave && have[i] < s)
                i++;
            bool from_backup = false;
            if ((i >= nhave || have[i] != s) && h == 0 && s == first_seg && b->have_wal_head &&
                (stop == b->redo_lsn || (stop == UINT64_MAX && last_seg == first_seg)))
                from_backup = true; /* nothing past the base is needed (or archived) */
            if (!from_backup && (i >= nhave || have[i] != s)) {
                free(have);
                char nm[64];
                wal_seg_name(nm, sizeof nm, p->hops[h].tl, s);
                if (s == last_seg && h == last_hop)
                    return cerr_set(CAIRN_ENOTFOUND, "the archive ends before the target: segment "
                                    "%s (timeline %u, LSN %016" PRIX64 "..%016" PRIX64 "), which "
                                    "holds the cut, is not archived yet", nm, p->hops[h].tl, s,
                                    s + p->seg_size);
                return cerr_set(CAIRN_ENOTFOUND, "gap in the WAL archive: segment %s (timeline %u, "
                                "LSN %016" PRIX64 "..%016" PRIX64 ") is missing between backup %s "
                                "and the target", nm, p->hops[h].tl, s, s + p->seg_size, b->id);
            }
            if (pl->nsegs == cap) {
                cap = cap ? 2 * cap : 16;
                struct pitr_plan_seg *ns = realloc(pl->segs, cap * sizeof *ns);
                if (!ns) {
                    free(have);
                    return cerr_set(CAIRN_ENOMEM, "out of memory");
                }
                pl->segs = ns;
            }
            pl->segs[pl->nsegs++] = (struct pitr_plan_seg){p->hops[h].tl, s, from_backup};
            pl->wal_bytes += p->seg_size;
        }
        free(have);
    }
    p->nhops = last_hop + 1 <= p->nhops ? last_hop + 1 : p->nhops;
    p->hops[p->nhops - 1].until = UINT64_MAX;
    /* what the plan says */
    snprintf(pl->base, sizeof pl->base, "%s", b->id);
    const struct pitr_manifest *c = b;
    while (c && pl->nchain < 8) {
        snprintf(pl->chain[pl->nchain++], sizeof pl->chain[0], "%s", c->id);
        const struct pitr_manifest *n = NULL;
        for (size_t i = 0; c->incremental && i < p->nmans; i++)
            if (!strcmp(p->mans[i].id, c->parent))
                n = &p->mans[i];
        c = n;
    }
    pl->base_timeline = b->timeline;
    pl->target_timeline = ttl;
    pl->new_timeline = p->max_tl + 1;
    pl->base_redo = b->redo_lsn;
    pl->stop_lsn = stop;
    for (size_t i = 0; i < b->nfiles; i++)
        pl->pages += b->files[i].npages_img;
    pl->page_bytes = pl->pages * PAGE_SIZE;
    pl->blobs = b->npacks;
    for (size_t k = 0; k < p->nhops && k < 16; k++) {
        pl->hops[k].timeline = p->hops[k].tl;
        pl->hops[k].start_lsn = p->hops[k].start;
        pl->hops[k].until_lsn = p->hops[k].until;
    }
    pl->nhops = p->nhops;
    /* rough: pages at 200 MB/s, WAL at 100 MB/s on this machine kind */
    pl->est_seconds = (double)pl->page_bytes / 200e6 + (double)pl->wal_bytes / 100e6;
    *base = b;
    return CAIRN_OK;
}

/* ---- materializing --------------------------------------------------------------- */

static cairn_status write_all(int fd, const void *b, size_t n, uint64_t off, const char *path)
{
    const uint8_t *p = b;
    while (n) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return cerr_errno(w < 0 ? errno : EIO, "could not write \"%s\" at offset %" PRIu64,
                              path, off);
        p += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return CAIRN_OK;
}

/* sync false: a file the restore deletes before it finishes (the fetched
 * WAL segments: engine_restore removes every segment of the old
 * timelines once replayed), whose fsync would buy nothing. */
static cairn_status write_file(const char *dir, const char *name, const void *data, size_t len,
                               bool sync)
{
    char *path = cairn_path_join(dir, name);
    if (!path)
        return cerr_set(CAIRN_ENOMEM, "out of memory");
    int fd = -1;
    cairn_status st = cfs_open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644, &fd);
    if (!st)
        st = write_all(fd, data, len, 0, path);
    if (!st && sync && fsync(fd) != 0)
        st = cerr_errno(errno, "could not fsync \"%s\"", path);
    if (fd >= 0)
        close(fd);
    free(path);
    return st;
}

/* A manifest file name must stay inside the target: relative, no "..",
 * no empty part; the parts are made as plain directories. */
static cairn_status safe_name(const char *name, const char *id)
{
    size_t n = strlen(name);
    bool bad = n == 0 || name[0] == '/' || name[n - 1] == '/' || strstr(name, "//") ||
               strchr(name, '\\');
    for (const char *p = name; !bad && *p;) {
        const char *e = strchr(p, '/');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if ((l == 1 && p[0] == '.') || (l == 2 && p[0] == '.' && p[1] == '.'))
            bad = true;
        p = e ? e + 1 : p + l;
    }
    if (bad)
        return cerr_set(CAIRN_ECORRUPT, "backup \"%s\" names a file \"%s\" outside the database "
                        "directory: refused", id, name);
    return CAIRN_OK;
}

static cairn_status make_parents(const char *root, const char *name)
{
    char buf[512];
    if (snprintf(buf, sizeof buf, "%s/%s", root, name) >= (int)sizeof buf)
        return cerr_set(CAIRN_EINVAL, "path too long: \"%s/%s\"", root, name);
    for (char *p = buf + strlen(root) + 1; (p = strchr(p, '/')); p++) {
        *p = 0;
        struct stat sb;
        if (lstat(buf, &sb) == 0 && !S_ISDIR(sb.st_mode)) {
            return cerr_set(CAIRN_ECORRUPT, "\"%s\" exists and is not a directory", buf);
        }
        cairn_status st = cfs_mkdir_durable(buf, 0755);
        *p = '/';
        if (st)
            return st;
    }
    return CAIRN_OK;
}

struct pages_job {
    repo *r;
    const struct pitr_manifest *m;
    const char *root;
    int *fds;
    char **paths;
    /* work list: one item per (pack) with the pages to write from it */
    size_t next, npacks;
    pthread_mutex_t mu;
    cairn_status st;
    char err[512];
    uint64_t done, total;
    const struct pitr_restore_opts *o;
};

/* Writes every page that comes from pack k. */
static cairn_status restore_pack(struct pages_job *j, size_t k)
{
    uint8_t *data = NULL;
    size_t len = 0;
    cairn_status st = repo_blob_get(j->r, j->m->packs[k], &data, &len);
    if (st)
        return st;
    uint64_t n = 0;
    for (size_t f = 0; !st && f < j->m->nfiles; f++) {
        const struct pitr_mfile *mf = &j->m->files[f];
        for (size_t i = 0; !st && i < mf->npages_img; i++) {
            const struct pitr_page_loc *pl = &mf->pages[i];
            if (pl->pack != k)
                continue;
            if ((uint64_t)(pl->idx + 1) * PAGE_SIZE > len) {
                st = cerr_set(CAIRN_ECORRUPT, "backup \"%s\": page %u of \"%s\" is page %u of a "
                              "pack of %zu pages", j->m->id, pl->phys, mf->name, pl->idx,
                              len / PAGE_SIZE);
                break;
            }
            st = write_all(j->fds[f], data + (size_t)pl->idx * PAGE_SIZE, PAGE_SIZE,
                           (uint64_t)pl->phys * PAGE_SIZE, j->paths[f]);
            n++;
        }
    }
    free(data);
    pthread_mutex_lock(&j->mu);
    j->done += n * PAGE_SIZE;
    if (j->o->progress)
        j->o->progress(j->o->progress_ctx, 0, j->done, j->total, 0, 0);
    pthread_mutex_unlock(&j->mu);
    return st;
}

static void *pages_worker(void *arg)
{
    struct pages_job *j = arg;
    for (;;) {
        pthread_mutex_lock(&j->mu);
        size_t k = j->next++;
        bool stop = j->st != CAIRN_OK || k >= j->npacks;
        pthread_mutex_unlock(&j->mu);
        if (stop)
            break;
        cairn_status st = restore_pack(j, k);
        if (st) {
            pthread_mutex_lock(&j->mu);
            if (!j->st) {
                j->st = st;
                snprintf(j->err, sizeof j->err, "%s", cairn_last_error());
            }
            pthread_mutex_unlock(&j->mu);
        }
    }
    return NULL;
}

static unsigned jobs_of(const struct pitr_restore_opts *o)
{
    if (o->jobs)
        return o->jobs;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

static cairn_status materialize(repo *r, const struct pitr_manifest *m, const char *root,
                                const struct pitr_restore_opts *o)
{
    uint8_t *meta = NULL, *super = NULL;
    size_t ml = 0, sl = 0;
    cairn_status st = repo_blob_get(r, m->meta_sha, &meta, &ml);
    if (!st)
        st = repo_blob_get(r, m->super_sha, &super, &sl);
    if (!st)
        st = write_file(root, "meta", meta, ml, true);
    if (!st)
        st = write_file(root, "superblock", super, sl, true);
    free(meta);
    free(super);
    struct pages_job j = {.r = r, .m = m, .root = root, .npacks = m->npacks, .o = o};
    j.fds = calloc(m->nfiles, sizeof *j.fds);
    j.paths = calloc(m->nfiles, sizeof *j.paths);
    if (!st && (!j.fds || !j.paths))
        st = cerr_set(CAIRN_ENOMEM, "out of memory");
    for (size_t f = 0; j.fds && f < m->nfiles; f++)
        j.fds[f] = -1;
    for (size_t f = 0; !st && f < m->nfiles; f++) {
        st = safe_name(m->files[f].name, m->id);
        if (!st)
            st = make_parents(root, m->files[f].name);
        j.paths[f] = st ? NULL : cairn_path_join(root, m->files[f].name);
        if (!st && !j.paths[f])
            st = cerr_set(CAIRN_ENOMEM, "out of memory");
        if (!st)
            st = cfs_open(j.paths[f], O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644,
                          &j.fds[f]);
        if (!st)
            st = cfs_ftruncate(j.fds[f], (uint64_t)m->files[f].npages * PAGE_SIZE, j.paths[f]);
        j.total += (uint64_t)m->files[f].npages_img * PAGE_SIZE;
    }
    if (!st) {
        pthread_mutex_init(&j.mu, NULL);
        unsigned nt = jobs_of(o);
        if (nt > 16)
            nt = 16;
        pthread_t th[16];
        unsigned started = 0;
        for (unsigned i = 1; i < nt; i++)
            if (pthread_create(&th[started], NULL, pages_worker, &j) == 0)
                started++;
        pages_worker(&j);
        for (unsigned i = 0; i < started; i++)
            pthread_join(th[i], NULL);
        pthread_mutex_destroy(&j.mu);
        st = j.st;
        if (st)
            cerr_set(st, "%s", j.err);
    }
    for (size_t f = 0; j.fds && f < m->nfiles; f++) {
        if (j.fds[f] >= 0) {
            if (!st && fsync(j.fds[f]) != 0)
                st = cerr_errno(errno, "could not fsync \"%s\"", j.paths[f]);
            close(j.fds[f]);
        }
        if (j.paths)
            free(j.paths[f]);
    }
    free(j.fds);
    free(j.paths);
    return st;
}

/* The caller's progress callback, called from the page writers and the
 * WAL fetcher: one at a time. */
struct locked_progress {
    const struct pitr_restore_opts *o;
    pthread_mutex_t mu;
};

static void progress_locked(void *ctx, int phase, uint64_t done, uint64_t total, uint64_t lsn,
                            int64_t time_us)
{
    struct locked_progress *lp = ctx;
    pthread_mutex_lock(&lp->mu);
    lp->o->progress(lp->o->progress_ctx, phase, done, total, lsn, time_us);
    pthread_mutex_unlock(&lp->mu);
}

/*
 * The WAL fetch runs ahead of the replay (a pipeline). Its thread
 * (wal_job_main) makes wal/ and writes the target timeline's history file
 * there (the head: engine_restore reads history files before it
 * replays), then runs up to `jobs` fetchers (seg_fetch_main) that take the
 * planned segments in plan order, the next index handed out in turn, so
 * the one the replay needs next comes soonest: each reads, decrypts,
 * decompresses and checks (SHA-256 against its summary) one segment and
 * publishes its image in memory (slot i READY). Reading, decrypting,
 * decompressing and hashing is CPU work that the replay's apply does not
 * share.
 *
 * The segments never become files: engine_restore's readers read them
 * through a segment source (wal.h, struct wal_seg_source; fetch_list,
 * fetch_get, fetch_put). The list is the plan's segments of the timeline
 * asked for (all that will come, without waiting); get blocks on the
 * condition variable until that slot is READY, or returns its failure
 * (the message names the segment), or the first failure of the fetch when
 * the slot will never be fetched (the fetchers stopped); put frees the
 * image. A segment got again after its put (the end-of-log decision reads
 * the segment it ended in once more) is fetched again by the reader's
 * thread. Writing each segment into wal/ and reading it back, only for
 * engine_restore to delete it after the replay, cost a copy into the page
 * cache and one out (about a sixth of the restore's CPU time), and the
 * kernel's writeback of them.
 *
 * Memory: the fetchers stay within `ahead` slots of the oldest one not
 * yet put (as many segments as 256 MiB holds, 16 of the default 16 MiB,
 * but never fewer than one per fetcher and one more), except that a slot
 * a reader is waiting for is always fetched; so the images held are
 * bounded whatever the length of the path. A window of 4 segments had the
 * fetchers wait while the pages were written and loaded, with a core
 * idle; 16 let them fetch a quarter of the benchmark's WAL by then, and
 * its replay took a fifth less (cold cache, 6 alternating restores each:
 * median 1.52 s -> 1.21 s; the restore's total the same or less).
 * Buffers are reused, not freed and allocated again (fresh memory for
 * every segment cost the fetchers a fifth of their time in page faults):
 * each fetcher keeps its object read buffer (repo_reuse), and a put image
 * goes to a list of spares (at most one per fetcher) that the fetchers
 * decompress into.
 *
 * engine_restore starts once the pages are written and the head is
 * there. When it returns, the fetchers stop taking segments and are
 * joined; a failure on a segment the replay never asked for (one past a
 * target reached early) is not the restore's.
 */
enum seg_state { SEG_WAIT, SEG_FETCHING, SEG_READY, SEG_FAILED, SEG_PUT };

struct seg_slot {
    enum seg_state state;
    uint8_t *img;
    size_t len;
    cairn_status st; /* SEG_FAILED: status and message */
    char *err;
};

struct seg_fetch {
    repo *r;
    const struct pitr_plan *pl;
    const struct pitr_manifest *base;
    const struct pitr_restore_opts *o;
    char *waldir;
    char *where;            /* names the segments in the readers' messages */
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* broadcast at each change below */
    size_t next;            /* the next plan index to hand out */
    struct seg_slot *slot;  /* per plan index */
    size_t low;             /* slots [0, low) are put (or never will be needed) */
    size_t ahead;           /* fetchers stay below low + ahead ... */
    size_t wanted;          /* ... or at or below a slot a reader waits for (+1; 0: none) */
    bool head;              /* wal/ and the history file are there */
    bool stop;              /* the restore is done with the fetch: hand out no more */
    bool unbounded;         /* no window (no fetch thread: everything first) */
    uint64_t done;          /* bytes fetched */
    uint64_t wait_us;       /* the replay's time blocked in get */
    uint64_t busy_us;       /* time spent fetching segments, summed */
    size_t hint;            /* plan_index's last find (the readers' thread only) */
    uint8_t **spare;        /* put images to reuse, each spare_cap bytes */
    size_t nspare, maxspare, spare_cap;
    cairn_status st;        /* the first failure */
    char err[1024];
};

/* Records a failure (the first one wins) and wakes the waiters; mu held. */
static void fetch_failed(struct seg_fetch *f, cairn_status st)
{
    if (!f->st) {
        f->st = st;
        snprintf(f->err, sizeof f->err, "%s", cairn_last_error());
    }
    pthread_cond_broadcast(&f->cv);
}

/* Reads, checks and decompresses plan[i] (no lock held); ru: a fetcher's
 * buffers, or NULL. */
static cairn_status fetch_one(struct seg_fetch *f, size_t i, struct repo_reuse *ru,
                              uint8_t **img, size_t *len)
{
    const struct pitr_plan_seg *ps = &f->pl->segs[i];
    if (ps->from_backup)
        return repo_blob_get(f->r, f->base->wal_head_sha, img, len);
    return fetch_seg(f->r, ps->timeline, ps->start, ru, img, len);
}

/* Publishes the outcome of fetching slot i; mu held. */
static void slot_done(struct seg_fetch *f, size_t i, cairn_status st, uint8_t *img, size_t len)
{
    struct seg_slot *s = &f->slot[i];
    if (st) {
        s->state = SEG_FAILED;
        s->st = st;
        s->err = strdup(cairn_last_error());
        fetch_failed(f, st);
    } else {
        s->state = SEG_READY;
        s->img = img;
        s->len = len;
        f->done += len;
    }
    pthread_cond_broadcast(&f->cv);
}

static void *seg_fetch_main(void *arg)
{
    struct seg_fetch *f = arg;
    struct repo_reuse ru = {.sha_only = true};
    pthread_mutex_lock(&f->mu);
    for (;;) {
        size_t i = f->next;
        if (f->st || f->stop || i >= f->pl->nsegs)
            break;
        if (i >= f->low + f->ahead && i >= f->wanted) {
            pthread_cond_wait(&f->cv, &f->mu);
            continue;
        }
        f->next++;
        if (f->slot[i].state != SEG_WAIT)
            continue; /* a reader fetched it itself */
        f->slot[i].state = SEG_FETCHING;
        if (!ru.img && f->nspare) {
            ru.img = f->spare[--f->nspare];
            ru.img_cap = f->spare_cap;
        }
        pthread_mutex_unlock(&f->mu);
        uint8_t *img = NULL;
        size_t len = 0;
        uint64_t t0 = cairn_mono_us();
        cairn_status st = fetch_one(f, i, &ru, &img, &len);
        uint64_t dt = cairn_mono_us() - t0;
        pthread_mutex_lock(&f->mu);
        f->busy_us += dt;
        slot_done(f, i, st, img, len);
        if (!st && f->o->progress)
            f->o->progress(f->o->progress_ctx, 1, f->done, f->pl->wal_bytes, 0, 0);
    }
    pthread_mutex_unlock(&f->mu);
    repo_reuse_free(&ru);
    return NULL;
}

/* wal/ and the head, then every planned segment (above). */
static cairn_status fetch_wal(struct seg_fetch *f)
{
    const struct pitr_plan *pl = f->pl;
    cairn_status st = cfs_mkdir_durable(f->waldir, 0755);
    /* the target timeline's history: the new timeline's history continues
     * it (its name is made durable by engine_restore's fsyncs of wal/ when
     * it writes the new timeline's history) */
    if (!st && pl->target_timeline) {
        char hname[64];
        repo_history_obj_name(pl->target_timeline, hname, sizeof hname);
        uint8_t *h = NULL;
        size_t hl = 0;
        cairn_status s2 = store_get(f->r->st, hname, &h, &hl);
        if (!s2)
            st = write_file(f->waldir, hname + strlen("history/"), h, hl, true);
        else if (s2 != CAIRN_ENOTFOUND)
            st = s2;
        else
            cerr_clear();
        free(h);
    }
    pthread_mutex_lock(&f->mu);
    if (st)
        fetch_failed(f, st);
    f->head = true;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    if (st)
        return st;
    unsigned nt = jobs_of(f->o);
    if (nt > 16)
        nt = 16;
    if (nt > pl->nsegs)
        nt = pl->nsegs ? (unsigned)pl->nsegs : 1;
    pthread_mutex_lock(&f->mu);
    uint64_t seg = f->r->seg_shift ? (uint64_t)1 << f->r->seg_shift : 0;
    size_t cap = seg ? (size_t)(((uint64_t)256 << 20) / seg) : 4;
    f->ahead = f->unbounded ? SIZE_MAX / 2 : CAIRN_MAX((size_t)nt + 1, cap);
    f->spare = seg ? calloc(nt, sizeof *f->spare) : NULL;
    f->maxspare = f->spare ? nt : 0; /* without the list, images are freed */
    f->spare_cap = (size_t)seg;
    pthread_mutex_unlock(&f->mu);
    pthread_t th[16];
    unsigned started = 0;
    for (unsigned i = 1; i < nt; i++)
        if (pthread_create(&th[started], NULL, seg_fetch_main, f) == 0)
            started++;
    seg_fetch_main(f);
    for (unsigned i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    return CAIRN_OK;
}

/* Blocks until the head is there, or the fetch failed: its status and
 * message. */
static cairn_status fetch_wait_head(struct seg_fetch *f)
{
    pthread_mutex_lock(&f->mu);
    while (!f->st && !f->head)
        pthread_cond_wait(&f->cv, &f->mu);
    cairn_status st = f->st;
    char err[sizeof f->err];
    if (st)
        memcpy(err, f->err, sizeof err);
    pthread_mutex_unlock(&f->mu);
    if (st)
        return cerr_set(st, "%s", err);
    return CAIRN_OK;
}

/* The plan index of segment (tl, start); SIZE_MAX when not planned. The
 * readers go through the plan in order: the last index found (`hint`,
 * the readers' thread's own) or the next one is it, but for the end
 * decision's look back and ahead (a path can have thousands of
 * segments: no scan per segment). */
static size_t plan_index(const struct pitr_plan *pl, size_t *hint, uint32_t tl, uint64_t start)
{
    for (size_t i = *hint; i < pl->nsegs && i <= *hint + 1; i++)
        if (pl->segs[i].timeline == tl && pl->segs[i].start == start)
            return *hint = i;
    for (size_t i = 0; i < pl->nsegs; i++)
        if (pl->segs[i].timeline == tl && pl->segs[i].start == start)
            return *hint = i;
    return SIZE_MAX;
}

/* The source's list (wal.h): the planned segments of tl. */
static cairn_status fetch_list(void *ctx, uint32_t tl, uint64_t **starts, size_t *n)
{
    struct seg_fetch *f = ctx;
    *starts = NULL;
    *n = 0;
    size_t k = 0;
    for (size_t i = 0; i < f->pl->nsegs; i++)
        k += f->pl->segs[i].timeline == tl;
    uint64_t *v = malloc((k ? k : 1) * sizeof *v);
    if (!v)
        return cerr_set(CAIRN_ENOMEM, "out of memory");
    k = 0;
    for (size_t i = 0; i < f->pl->nsegs; i++)
        if (f->pl->segs[i].timeline == tl)
            v[k++] = f->pl->segs[i].start;
    *starts = v;
    *n = k;
    return CAIRN_OK;
}

/* The source's name (wal.h): the archived object's path. */
static void fetch_name(void *ctx, uint32_t tl, uint64_t start, char *buf, size_t n)
{
    struct seg_fetch *f = ctx;
    char obj[128];
    repo_wal_obj_name(tl, start, false, obj, sizeof obj);
    snprintf(buf, n, "%s/%s", f->r->dir, obj);
}

/* The source's get (wal.h): waits for the slot (and lets the fetchers past
 * the window for it), fetches it here when it was put before. */
static cairn_status fetch_get(void *ctx, uint32_t tl, uint64_t start, const uint8_t **img,
                              size_t *len)
{
    struct seg_fetch *f = ctx;
    *img = NULL;
    *len = 0;
    size_t i = plan_index(f->pl, &f->hint, tl, start);
    if (i == SIZE_MAX)
        return CAIRN_OK; /* not planned: no such segment */
    uint64_t t0 = cairn_mono_us();
    pthread_mutex_lock(&f->mu);
    struct seg_slot *s = &f->slot[i];
    if (i + 1 > f->wanted) {
        f->wanted = i + 1;
        pthread_cond_broadcast(&f->cv);
    }
    for (;;) {
        if (s->state == SEG_READY || s->state == SEG_FAILED)
            break;
        if (s->state == SEG_PUT || (s->state == SEG_WAIT && (f->st || f->stop))) {
            /* no fetcher will bring it: fetch it here */
            s->state = SEG_FETCHING;
            pthread_mutex_unlock(&f->mu);
            uint8_t *im = NULL;
            size_t l = 0;
            cairn_status st = fetch_one(f, i, NULL, &im, &l);
            pthread_mutex_lock(&f->mu);
            slot_done(f, i, st, im, l);
            break;
        }
        pthread_cond_wait(&f->cv, &f->mu);
    }
    f->wait_us += cairn_mono_us() - t0;
    cairn_status st = CAIRN_OK;
    if (s->state == SEG_FAILED) {
        st = cerr_set(s->st, "%s", s->err ? s->err : "out of memory");
    } else {
        *img = s->img;
        *len = s->len;
    }
    pthread_mutex_unlock(&f->mu);
    return st;
}

/* The source's put (wal.h): the image is freed, or kept as a spare; the
 * window moves on. */
static void fetch_put(void *ctx, uint32_t tl, uint64_t start)
{
    struct seg_fetch *f = ctx;
    size_t i = plan_index(f->pl, &f->hint, tl, start);
    if (i == SIZE_MAX)
        return;
    pthread_mutex_lock(&f->mu);
    struct seg_slot *s = &f->slot[i];
    uint8_t *img = s->img;
    size_t len = s->len;
    if (s->state == SEG_READY) {
        s->state = SEG_PUT;
        s->img = NULL;
        s->len = 0;
    } else {
        img = NULL;
    }
    if (img && len == f->spare_cap && f->nspare < f->maxspare) {
        f->spare[f->nspare++] = img; /* a fetcher decompresses into it next */
        img = NULL;
    }
    size_t low = f->low;
    while (f->low < f->pl->nsegs && f->slot[f->low].state == SEG_PUT)
        f->low++;
    if (f->low != low)
        pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    free(img);
}

static cairn_status fetch_init(struct seg_fetch *f, repo *r, const struct pitr_plan *pl,
                               const struct pitr_manifest *base,
                               const struct pitr_restore_opts *o, const char *root)
{
    memset(f, 0, sizeof *f);
    f->r = r;
    f->pl = pl;
    f->base = base;
    f->o = o;
    f->ahead = 4;
    f->waldir = cairn_path_join(root, "wal");
    f->where = cairn_path_join(r->dir, "wal");
    f->slot = calloc(pl->nsegs ? pl->nsegs : 1, sizeof *f->slot);
    if (!f->waldir || !f->where || !f->slot) {
        free(f->waldir);
        free(f->where);
        free(f->slot);
        return cerr_set(CAIRN_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    return CAIRN_OK;
}

/* The restore is done with the fetch: the fetchers take no further
 * segment (each finishes the one it holds). */
static void fetch_stop(struct seg_fetch *f)
{
    pthread_mutex_lock(&f->mu);
    f->stop = true;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static void fetch_fini(struct seg_fetch *f)
{
    pthread_cond_destroy(&f->cv);
    pthread_mutex_destroy(&f->mu);
    for (size_t i = 0; i < f->pl->nsegs; i++) {
        free(f->slot[i].img);
        free(f->slot[i].err);
    }
    free(f->slot);
    for (size_t i = 0; i < f->nspare; i++)
        free(f->spare[i]);
    free(f->spare);
    free(f->waldir);
    free(f->where);
}

struct wal_job {
    struct seg_fetch f;
    pthread_t thr;
    uint64_t us;
};

static void *wal_job_main(void *arg)
{
    struct wal_job *j = arg;
    uint64_t t0 = cairn_mono_us();
    (void)fetch_wal(&j->f); /* its status is in j->f.st */
    j->us = cairn_mono_us() - t0;
    return NULL;
}


struct rprog {
    const struct pitr_restore_opts *o;
};

static int replay_progress(void *ctx, uint64_t records, uint64_t wal_bytes, uint64_t lsn,
                           int64_t time_us)
{
    struct rprog *rp = ctx;
    if (rp->o->progress)
        rp->o->progress(rp->o->progress_ctx, 2, records, wal_bytes, lsn, time_us);
    return 0;
}

cairn_status pitr_publish_history(repo *r, const char *dbdir, uint32_t tl)
{
    char name[64], *hp = NULL, *text = NULL;
    size_t len = 0;
    memcpy(name, "wal/", 4);
    wal_history_name(name + 4, sizeof name - 4, tl);
    hp = cairn_path_join(dbdir, name);
    cairn_status st = hp ? cfs_read_file(hp, &text, &len)
                         : cerr_set(CAIRN_ENOMEM, "out of memory");
    if (!st)
        st = repo_history_put(r, tl, text, len);
    free(text);
    free(hp);
    return st;
}

static cairn_status restore_locked(repo *r, const char *target_dir,
                                   const struct pitr_restore_opts *o,
                                   struct pitr_restore_result *res)
{
    if (o->into_existing)
        return pitr_replace(r, target_dir, o, res);
    memset(res, 0, sizeof *res);
    uint64_t t0 = cairn_mono_us();
    if (o->kind == PITR_TARGET_NAME && (!o->name || !*o->name))
        return cerr_set(CAIRN_EINVAL, "--target-name needs a name");
    if (o->kind == PITR_TARGET_BACKUP && !o->backup)
        return cerr_set(CAIRN_EINVAL, "a restore to a backup's own state needs its id");
    if (o->ncollections && !o->collections)
        return cerr_set(CAIRN_EINVAL, "a partial restore needs its collection names");
    for (size_t i = 0; i < o->ncollections; i++) {
        /* checked before the plan, so that a dry run refuses it too */
        cairn_status cst = cat_check_name(o->collections[i], "collection");
        if (cst)
            return cerr_wrap(cst, "--collection");
    }
    struct planner p = {.r = r, .o = o};
    const struct pitr_manifest *base = NULL;
    cairn_status st = plan(&p, &res->plan, &base);
    char *partial = NULL;
    struct stat sb;
    if (!st && lstat(target_dir, &sb) == 0)
        st = cerr_set(CAIRN_EEXIST, "target directory \"%s\" exists: a restore creates it",
                      target_dir);
    if (st || o->dry_run) {
        free_mans(&p);
        return st;
    }
    if (asprintf(&partial, "%s.partial", target_dir) < 0) {
        free_mans(&p);
        return cerr_set(CAIRN_ENOMEM, "out of memory");
    }
    /* a .partial left by a crashed restore is ours to remove */
    if (lstat(partial, &sb) == 0)
        cfs_remove_tree(partial);
    st = cfs_mkdir_durable(partial, 0755);
    /* The WAL is fetched (read, decrypted, decompressed, checked) by its
     * own thread while the pages are written, and goes on while the replay
     * reads what it fetched (the pipeline: above struct seg_fetch): they
     * share the repository, the segments' images (through the source) and
     * the progress callback (serialized). */
    struct locked_progress lp = {.o = o};
    pthread_mutex_init(&lp.mu, NULL);
    struct pitr_restore_opts oo = *o;
    if (o->progress) {
        oo.progress = progress_locked;
        oo.progress_ctx = &lp;
    }
    struct wal_job wj;
    memset(&wj, 0, sizeof wj);
    struct wal_seg_source src = {.list = fetch_list, .get = fetch_get, .put = fetch_put,
                                 .name = fetch_name, .ctx = &wj.f};
    bool fetching = false, wal_thread = false, renamed = false;
    if (!st) {
        st = fetch_init(&wj.f, r, &res->plan, base, &oo, partial);
        fetching = !st;
        src.where = wj.f.where;
    }
    uint64_t t1 = cairn_mono_us();
    if (!st)
        wal_thread = pthread_create(&wj.thr, NULL, wal_job_main, &wj) == 0;
    if (!st)
        st = materialize(r, base, partial, &oo);
    uint64_t t2 = cairn_mono_us();
    if (!st && !wal_thread) {
        wj.f.unbounded = true;
        wal_job_main(&wj); /* no thread: the whole fetch first, as it can */
    }
    /* The replay starts as soon as what engine_restore reads before its
     * readers do is there (restore.h, wal_src): the history file; a
     * failed fetch is reported from here on. */
    if (!st)
        st = fetch_wait_head(&wj.f);
    uint64_t t3 = cairn_mono_us();
    struct engine_restore_result er;
    memset(&er, 0, sizeof er);
    if (!st) {
        struct engine_tl_hop hops[MAX_HOPS];
        for (size_t i = 0; i < p.nhops; i++)
            hops[i] = (struct engine_tl_hop){p.hops[i].tl, p.hops[i].start, p.hops[i].until};
        struct replay_target t = {.kind = REPLAY_TO_END, .inclusive = !o->exclusive};
        switch (o->kind) {
        case PITR_TARGET_TIME:
            t.kind = REPLAY_TO_TIME;
            t.time_us = o->time_us;
            break;
        case PITR_TARGET_LSN:
            t.kind = REPLAY_TO_LSN;
            t.lsn = o->lsn;
            break;
        case PITR_TARGET_TXN:
            t.kind = REPLAY_TO_TXN;
            t.txn = o->txn;
            break;
        case PITR_TARGET_NAME:
            /* The planner resolved the name to its newest marker on the
             * path; the replay's REPLAY_TO_NAME would stop at the first
             * marker of that name after the base, an older one when the
             * name was used twice since. Stopping before the first commit
             * at or after the resolved marker's LSN applies exactly the
             * commits before that marker. */
            t.kind = REPLAY_TO_LSN;
            t.lsn = res->plan.stop_lsn;
            t.inclusive = false;
            break;
        case PITR_TARGET_BACKUP:
            t.kind = REPLAY_TO_LSN;
            t.lsn = base->redo_lsn;
            t.inclusive = false;
            break;
        default:
            break;
        }
        struct rprog rp = {&oo}; /* serialized with the fetch's progress */
        struct engine_restore_opts eo = {.hops = hops,
                                         .nhops = p.nhops,
                                         .target = t,
                                         .jobs = o->jobs,
                                         .new_timeline = res->plan.new_timeline,
                                         .progress = replay_progress,
                                         .progress_ctx = &rp,
                                         .only_names = o->collections,
                                         .nonly = o->ncollections,
                                         .on_replayed = o->on_replayed,
                                         .on_replayed_ctx = o->on_replayed_ctx};
        eo.wal_src = &src;
        eo.prewrite = true; /* partial is ours, removed on failure */
        st = engine_restore(partial, &eo, &er);
        /* an LSN target is met once the log was read past it, even when
         * no later commit was there to stop at */
        bool lsn_met = o->kind == PITR_TARGET_LSN && er.replay.stop_lsn > o->lsn;
        if (!st && !er.target_reached && !lsn_met && o->kind != PITR_TARGET_LATEST &&
            o->kind != PITR_TARGET_BACKUP)
            st = cerr_set(CAIRN_ENOTFOUND, "the replay reached the end of the fetched WAL "
                          "(LSN %016" PRIX64 ") without reaching the target",
                          er.replay.stop_lsn);
    }
    uint64_t t4 = cairn_mono_us();
    if (fetching) {
        /* engine_restore returned (its readers closed) or was never
         * called: the fetchers stop taking segments and are joined before
         * anything of theirs goes. */
        fetch_stop(&wj.f);
        if (wal_thread)
            pthread_join(wj.thr, NULL);
        clog_info("restore into \"%s\": WAL fetch %.3f s of work in %.3f s (%zu "
                  "segment(s)), the replay waited %.3f s for it", partial,
                  (double)wj.f.busy_us / 1e6, (double)wj.us / 1e6, res->plan.nsegs,
                  (double)wj.f.wait_us / 1e6);
        fetch_fini(&wj.f);
    }
    pthread_mutex_destroy(&lp.mu);
    if (o->on_replayed) {
        /* handed over: the scratch directory has served (replace.c) */
        if (!st)
            cfs_remove_tree(partial);
        goto handed;
    }
    if (!st) {
        /* The new timeline's history, for later restores along it, goes
         * to the repository before the directory appears: a restore cut
         * between the two must not leave a whole database on a timeline
         * the repository does not know (the next restore would take the
         * same number, and archiving both would mix their WAL). Cut
         * before the rename, it only leaves a number unused. */
        st = pitr_publish_history(r, partial, res->plan.new_timeline);
    }
    if (!st) {
        st = cfs_rename(partial, target_dir);
        renamed = !st;
    }
    if (!st)
        st = cfs_fsync_parent(target_dir);
handed:
    if (st) {
        struct cerr_saved msg;
        cerr_save(&msg);
        /* The rename is not known durable when the directory's fsync
         * failed: the restore failed, and its target must not stay. It is
         * renamed back and removed; if even that rename fails, the target
         * is removed where it is (a crash meanwhile may leave either
         * name, the target whole: docs/pitr.md). The removals are best
         * effort, not counted by the fault seam; the rename back is, so
         * that a fault that persists reaches the last resort
         * (test_pitr_fault). */
        if (renamed && cfs_rename(target_dir, partial) != CAIRN_OK) {
            clog_warn("restore: could not take back \"%s\" after its directory's fsync "
                      "failed (%s): removing it", target_dir, cairn_last_error());
            cfs_remove_tree(target_dir);
        }
        cfs_remove_tree(partial);
        cerr_restore(&msg, st);
    }
    if (!st) {
        res->records = er.replay.records;
        res->txns_applied = er.replay.txns_applied;
        res->last_commit_lsn = er.replay.last_commit_lsn;
        res->last_commit_time_us = er.replay.last_commit_time_us;
        res->last_txn_id = er.replay.last_txn_id;
        res->target_reached = er.target_reached;
        res->new_timeline = res->plan.new_timeline;
        res->switch_lsn = er.switch_lsn;
        res->collections = er.collections;
        res->points = er.points;
        res->load_us = er.load_us;
        res->redo_us = er.redo_us;
    }
    /* pages_us: writing the base's pages. fetch_us: the fetchers' time
     * fetching segments (reading, decrypting, decompressing, checking),
     * summed over the fetchers, overlapping the pages and the replay.
     * replay_us: engine_restore (loading the base, the replay, waits for
     * segments still being fetched included, the new timeline's
     * checkpoint), from the moment the pages and the history file were
     * there. */
    res->pages_us = t2 - t1;
    res->fetch_us = wj.f.busy_us;
    res->replay_us = t4 - t3;
    res->duration_us = cairn_mono_us() - t0;
    free(partial);
    free_mans(&p);
    return st;
}

/* Under the repository's lock, shared (repo_lock): an expire does not
 * delete what the restore is reading. */
cairn_status pitr_restore(repo *r, const char *target_dir, const struct pitr_restore_opts *o,
                          struct pitr_restore_result *res)
{
    int fd = -1;
    cairn_status st = repo_lock(r, false, &fd);
    if (!st)
        st = restore_locked(r, target_dir, o, res);
    else
        memset(res, 0, sizeof *res);
    repo_unlock(fd);
    return repo_named(r, "restore into", target_dir, st);
}
