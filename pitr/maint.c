/*
 * maint.c — checking a repository (pitr_verify) and retention
 * (pitr_expire).
 *
 * verify reads everything a restore could need and checks it as a restore
 * would: every manifest (checksum line, fields), every pack and small file
 * it names (header, authenticity, decompression, SHA-256 equal to the
 * name), every archived segment against its summary's SHA-256, every
 * history file; and reports each missing LSN range of a timeline's
 * archive. It changes nothing and goes on after a problem, so one run
 * lists them all.
 *
 * expire keeps the newest `keep_full` full backups and every incremental
 * whose chain leads to one of them, and deletes the other manifests; then
 * the blobs no kept manifest names; then, on each timeline that has a kept
 * backup, the archived segments that end at or before the oldest kept
 * backup's redo LSN there, unless a kept backup on one of its ancestors was
 * taken before the timeline's path left that ancestor (a restore along it
 * from that backup reads all of its WAL): no restore from a kept backup
 * reads what goes. Timelines without a kept backup keep all their WAL: a
 * restore along a child timeline may still need it. Manifests go first
 * (newest first: an incremental before its parent), then blobs, then each
 * segment's summary before the segment, so an expire cut short leaves a
 * repository that verifies clean, and the next run removes the rest
 * (segments whose summary went already included).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "pitr/pitr.h"
#include "wal/wal.h"

struct vctx {
    repo *r;
    pitr_verify_fn fn;
    void *ctx;
    struct pitr_verify_result *res;
};

static void problem(struct vctx *v, const char *fmt, ...) CAIRN_PRINTF(2, 3);
static void problem(struct vctx *v, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    v->res->problems++;
    if (v->fn)
        v->fn(v->ctx, msg);
}

/* Blob shas already checked (sorted array, binary search). */
struct shaset {
    uint8_t (*v)[CODEC_SHA256_LEN];
    size_t n, cap;
};

static bool shaset_has(const struct shaset *s, const uint8_t *sha, size_t *pos)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = memcmp(s->v[mid], sha, CODEC_SHA256_LEN);
        if (c < 0)
            lo = mid + 1;
        else if (c > 0)
            hi = mid;
        else {
            *pos = mid;
            return true;
        }
    }
    *pos = lo;
    return false;
}

static cairn_status shaset_add(struct shaset *s, const uint8_t *sha)
{
    size_t pos;
    if (shaset_has(s, sha, &pos))
        return CAIRN_OK;
    if (s->n == s->cap) {
        size_t nc = s->cap ? 2 * s->cap : 256;
        void *nv = realloc(s->v, nc * CODEC_SHA256_LEN);
        if (!nv)
            return cerr_set(CAIRN_ENOMEM, "out of memory");
        s->v = nv;
        s->cap = nc;
    }
    memmove(s->v[pos + 1], s->v[pos], (s->n - pos) * CODEC_SHA256_LEN);
    memcpy(s->v[pos], sha, CODEC_SHA256_LEN);
    s->n++;
    return CAIRN_OK;
}

static void check_blob(struct vctx *v, struct shaset *seen, const uint8_t *sha, const char *id,
                       const char *what)
{
    size_t pos;
    if (shaset_has(seen, sha, &pos))
        return;
    if (shaset_add(seen, sha) != 0) {
        problem(v, "out of memory");
        return;
    }
    uint8_t *data = NULL;
    size_t len = 0;
    cairn_status st = repo_blob_get(v->r, sha, &data, &len);
    free(data);
    v->res->blobs++;
    if (!st) {
        v->res->bytes += len;
        return;
    }
    char hex[CODEC_SHA256_HEX];
    codec_hex(sha, hex);
    problem(v, "backup %s: %s blob %s: %s", id, what, hex, cairn_last_error());
}

cairn_status pitr_verify(repo *r, pitr_verify_fn fn, void *ctx, struct pitr_verify_result *res)
{
    memset(res, 0, sizeof *res);
    struct vctx v = {r, fn, ctx, res};
    struct shaset seen = {0};
    char **ids = NULL;
    size_t nids = 0;
    cairn_status st = repo_backup_ids(r, &ids, &nids);
    if (st)
        return st;
    for (size_t i = 0; i < nids; i++) {
        struct pitr_manifest m;
        res->backups++;
        if (pitr_manifest_load(r, ids[i], &m) != 0) {
            problem(&v, "backup %s: %s", ids[i], cairn_last_error());
            continue;
        }
        if (m.db_id != r->db_id)
            problem(&v, "backup %s is of database %016" PRIx64 ", the repository of %016" PRIx64,
                    ids[i], m.db_id, r->db_id);
        if (m.incremental) {
            bool found = false;
            for (size_t k = 0; k < nids; k++)
                found |= !strcmp(ids[k], m.parent);
            if (!found)
                problem(&v, "backup %s: its parent %s is not in the repository (restores from "
                        "it still work: a manifest names every pack it needs)", ids[i], m.parent);
        }
        check_blob(&v, &seen, m.meta_sha, ids[i], "meta");
        check_blob(&v, &seen, m.super_sha, ids[i], "superblock");
        if (m.have_wal_head)
            check_blob(&v, &seen, m.wal_head_sha, ids[i], "WAL head");
        for (size_t k = 0; k < m.npacks; k++)
            check_blob(&v, &seen, m.packs[k], ids[i], "page pack");
        pitr_manifest_free(&m);
    }
    repo_strv_free(ids, nids);
    free(seen.v);
    uint32_t *tls = NULL;
    size_t ntl = 0;
    st = repo_timelines(r, &tls, &ntl);
    if (st)
        return st;
    uint64_t seg = r->seg_shift ? (uint64_t)1 << r->seg_shift : 0;
    for (size_t t = 0; t < ntl; t++) {
        res->timelines++;
        struct wal_hist_line *b = NULL;
        size_t nb = 0;
        if (repo_history_get(r, tls[t], &b, &nb) != 0)
            problem(&v, "timeline %u: %s", tls[t], cairn_last_error());
        free(b);
        uint64_t *starts = NULL;
        size_t n = 0;
        if (repo_wal_list(r, tls[t], &starts, &n) != 0) {
            problem(&v, "timeline %u: %s", tls[t], cairn_last_error());
            continue;
        }
        for (size_t i = 0; i < n; i++) {
            if (i && starts[i] != starts[i - 1] + seg) {
                res->gaps++;
                problem(&v, "timeline %u: WAL from LSN %016" PRIX64 " to %016" PRIX64 " is not "
                        "archived (gap)", tls[t], starts[i - 1] + seg, starts[i]);
            }
            struct repo_seg_summary s;
            if (repo_seg_summary_get(r, tls[t], starts[i], &s) != 0) {
                problem(&v, "timeline %u: %s", tls[t], cairn_last_error());
                continue;
            }
            char name[128];
            repo_wal_obj_name(tls[t], starts[i], false, name, sizeof name);
            uint8_t *data = NULL;
            size_t len = 0;
            res->segments++;
            if (repo_obj_get(r, name, REPO_OBJ_WAL, s.sha, &data, &len) != 0)
                problem(&v, "timeline %u: %s", tls[t], cairn_last_error());
            else
                res->bytes += len;
            free(data);
            repo_seg_summary_free(&s);
        }
        free(starts);
    }
    free(tls);
    return CAIRN_OK;
}

/* ---- expire ------------------------------------------------------------------------ */

struct blobset_ctx {
    repo *r;
    const struct shaset *keep;
    struct pitr_expire_result *res;
    bool dry;
    cairn_status st;
};

static cairn_status sweep_blob(void *vctx, const char *name, uint64_t size)
{
    struct blobset_ctx *c = vctx;
    const char *base = strrchr(name, '/');
    uint8_t sha[CODEC_SHA256_LEN];
    size_t pos;
    if (!base || !codec_unhex(base + 1, sha) || shaset_has(c->keep, sha, &pos))
        return CAIRN_OK;
    c->res->blobs_deleted++;
    c->res->bytes_freed += size;
    return c->dry ? CAIRN_OK : store_del(c->r->st, name);
}

/* Segment objects of a timeline below the cut whose summary is gone: an
 * expire cut short between the two deletions (the summary goes first, so
 * the archive never names a missing segment) left them; the next expire
 * finishes them. */
struct orphans {
    repo *r;
    uint64_t cut, seg;
    char (*names)[128];
    size_t n, cap;
};

static cairn_status find_orphan(void *vctx, const char *name, uint64_t size)
{
    (void)size;
    struct orphans *c = vctx;
    const char *base = strrchr(name, '/');
    uint32_t tl;
    uint64_t start;
    if (!base || !wal_seg_parse_name(base + 1, &tl, &start) || start + c->seg > c->cut)
        return CAIRN_OK;
    char sum[160];
    uint64_t sz;
    snprintf(sum, sizeof sum, "%s.json", name);
    cairn_status st = store_stat(c->r->st, sum, &sz);
    if (st != CAIRN_ENOTFOUND)
        return st;
    cerr_clear();
    if (c->n == c->cap) {
        size_t ncap = c->cap ? 2 * c->cap : 8;
        void *nn = realloc(c->names, ncap * sizeof *c->names);
        if (!nn)
            return cerr_set(CAIRN_ENOMEM, "out of memory");
        c->names = nn;
        c->cap = ncap;
    }
    snprintf(c->names[c->n++], sizeof *c->names, "%s", name);
    return CAIRN_OK;
}

static cairn_status sweep_orphans(repo *r, uint32_t tl, uint64_t cut, uint64_t seg, bool dry,
                                  struct pitr_expire_result *res)
{
    struct orphans c = {.r = r, .cut = cut, .seg = seg};
    char prefix[32];
    snprintf(prefix, sizeof prefix, "wal/%08X/", tl);
    cairn_status st = store_list(r->st, prefix, find_orphan, &c);
    for (size_t i = 0; !st && i < c.n; i++) {
        res->segments_deleted++;
        res->bytes_freed += seg;
        if (!dry)
            st = store_del(r->st, c.names[i]);
    }
    free(c.names);
    return st;
}

static cairn_status expire_locked(repo *r, const struct pitr_expire_opts *o,
                                  struct pitr_expire_result *res)
{
    memset(res, 0, sizeof *res);
    if (o->keep_full == 0)
        return cerr_set(CAIRN_EINVAL, "--keep-full must be at least 1");
    char **ids = NULL;
    size_t nids = 0;
    cairn_status st = repo_backup_ids(r, &ids, &nids);
    if (st)
        return st;
    struct pitr_manifest *m = calloc(nids ? nids : 1, sizeof *m);
    bool *keep = calloc(nids ? nids : 1, sizeof *keep);
    if (!m || !keep)
        st = cerr_set(CAIRN_ENOMEM, "out of memory");
    for (size_t i = 0; !st && i < nids; i++)
        st = pitr_manifest_load(r, ids[i], &m[i]);
    /* the newest keep_full fulls, then incrementals whose chain reaches a
     * kept backup (ids sort by time: parents come first) */
    uint32_t fulls = 0;
    for (size_t i = nids; !st && i-- > 0;)
        if (!m[i].incremental && fulls < o->keep_full) {
            keep[i] = true;
            fulls++;
        }
    for (size_t i = 0; !st && i < nids; i++)
        for (size_t k = 0; m[i].incremental && k < i; k++)
            if (keep[k] && !strcmp(m[k].id, m[i].parent))
                keep[i] = true;
    /* the manifests of the backups not kept, newest first: an incremental
     * goes before its parent, so an expire cut short never leaves a
     * backup whose parent is gone */
    for (size_t i = nids; !st && i-- > 0;) {
        if (keep[i])
            continue;
        res->backups_deleted++;
        if (!o->dry_run) {
            char name[128];
            snprintf(name, sizeof name, "backups/%s/manifest", ids[i]);
            st = store_del(r->st, name);
        }
    }
    struct shaset live = {0};
    for (size_t i = 0; !st && i < nids; i++) {
        if (!keep[i])
            continue;
        res->backups_kept++;
        st = shaset_add(&live, m[i].meta_sha);
        if (!st)
            st = shaset_add(&live, m[i].super_sha);
        /* the segment holding the redo LSN: a restore with no archived WAL
         * past the base (or none at all) opens the image with it */
        if (!st && m[i].have_wal_head)
            st = shaset_add(&live, m[i].wal_head_sha);
        for (size_t k = 0; !st && k < m[i].npacks; k++)
            st = shaset_add(&live, m[i].packs[k]);
    }
    if (!st) {
        struct blobset_ctx c = {r, &live, res, o->dry_run, CAIRN_OK};
        st = store_list(r->st, "blobs/", sweep_blob, &c);
    }
    /* WAL no kept backup's restore reads */
    uint32_t *tls = NULL;
    size_t ntl = 0;
    if (!st)
        st = repo_timelines(r, &tls, &ntl);
    uint64_t seg = r->seg_shift ? (uint64_t)1 << r->seg_shift : 0;
    for (size_t t = 0; !st && t < ntl; t++) {
        uint64_t oldest = UINT64_MAX;
        for (size_t i = 0; i < nids; i++)
            if (keep[i] && m[i].timeline == tls[t] && m[i].redo_lsn < oldest)
                oldest = m[i].redo_lsn;
        if (oldest == UINT64_MAX)
            continue;
        /* a kept backup on an ancestor, taken before the path to this
         * timeline left it, restores along this timeline from its start:
         * all of its WAL stays */
        struct wal_hist_line *br = NULL;
        size_t nb = 0;
        st = repo_history_get(r, tls[t], &br, &nb);
        for (size_t b = 0; !st && b < nb; b++)
            for (size_t i = 0; i < nids; i++)
                if (keep[i] && m[i].timeline == br[b].parent &&
                    m[i].redo_lsn <= br[b].switch_lsn)
                    oldest = 0;
        free(br);
        if (st || oldest == 0)
            continue;
        uint64_t *starts = NULL;
        size_t n = 0;
        st = repo_wal_list(r, tls[t], &starts, &n);
        for (size_t i = 0; !st && i < n; i++) {
            if (starts[i] + seg > oldest)
                break;
            res->segments_deleted++;
            res->bytes_freed += seg;
            if (o->dry_run)
                continue;
            char name[128];
            /* the summary first: without it the segment is not archived */
            repo_wal_obj_name(tls[t], starts[i], true, name, sizeof name);
            st = store_del(r->st, name);
            repo_wal_obj_name(tls[t], starts[i], false, name, sizeof name);
            if (!st)
                st = store_del(r->st, name);
        }
        free(starts);
        if (!st)
            st = sweep_orphans(r, tls[t], oldest, seg, o->dry_run, res);
    }
    free(tls);
    free(live.v);
    for (size_t i = 0; m && i < nids; i++)
        pitr_manifest_free(&m[i]);
    free(m);
    free(keep);
    repo_strv_free(ids, nids);
    return st;
}

/* Under the repository's lock, exclusive (shared for a dry run): it waits
 * for running backups and archiving (repo_lock). */
cairn_status pitr_expire(repo *r, const struct pitr_expire_opts *o, struct pitr_expire_result *res)
{
    int fd = -1;
    cairn_status st = repo_lock(r, !o->dry_run, &fd);
    if (!st)
        st = expire_locked(r, o, res);
    repo_unlock(fd);
    return st;
}
