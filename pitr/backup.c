/*
 * backup.c — full and incremental backups from a pinned checkpoint
 * (pitr_backup), and manifests (pitr_manifest_load).
 *
 * A backup is the image of one checkpoint (engine/bsrc.h): DB/meta, the
 * superblock file, and the pages of the page files at their physical
 * positions. The pages go into packs: for each page file, the image's
 * pages within a fixed range of PACK_PAGES physical pages, concatenated
 * in physical order, form one pack, stored as a content-addressed blob
 * (named by the SHA-256 of its bytes). Fixed ranges make the packs of an
 * unchanged range byte-identical from one backup to the next, so a full
 * backup stores only the packs that changed (dedup by name) and shares the
 * others. An incremental backup first drops every page its parent's image
 * holds too (same file, physical page and page LSN: bsrc.h says why that
 * means the same bytes), refers to the parent's packs for those, and packs
 * only the rest, by the same ranges.
 *
 * Every manifest lists the whole image (each page: pack, index in the
 * pack, page LSN), so a restore reads one manifest, never a chain; the
 * chain (parent ids) tells what an incremental depends on, for list and
 * expire. The manifest is published last: a backup cut by a crash leaves
 * at most unreferenced blobs, which expire removes.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "common/io.h"
#include "common/json.h"
#include "common/util.h"
#include "engine/bsrc.h"
#include "engine/pager.h"
#include "pitr/pitr.h"
#include "wal/wal.h"

#define PACK_PAGES 256u /* 1 MiB of pages per pack at most */

/* ---- manifest parsing ---------------------------------------------------------- */

void pitr_manifest_free(struct pitr_manifest *m)
{
    for (size_t i = 0; i < m->nfiles; i++)
        free(m->files[i].pages);
    free(m->files);
    free(m->packs);
    free(m->colls);
    memset(m, 0, sizeof *m);
}

static bool jget_str(json_t *o, const char *k, char *out, size_t n)
{
    const char *s = json_string_value(json_object_get(o, k));
    if (!s || strlen(s) >= n)
        return false;
    strcpy(out, s);
    return true;
}

static bool jget_sha(json_t *o, const char *k, uint8_t *out)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s && codec_unhex(s, out);
}

#define BAD(field)                                                                         \
    do {                                                                                   \
        st = cerr_set(CAIRN_EFORMAT, "manifest of backup \"%s\" in repository \"%s\": field " \
                      "\"%s\" is missing or malformed", id, r->dir, field);                 \
        goto out;                                                                          \
    } while (0)

cairn_status pitr_manifest_load(repo *r, const char *id, struct pitr_manifest *m)
{
    memset(m, 0, sizeof *m);
    char *text = NULL;
    size_t len = 0;
    cairn_status st = repo_manifest_get(r, id, &text, &len);
    if (st)
        return st;
    struct cjson_error jerr = {0, NULL};
    json_t *o = NULL;
    char what[600];
    snprintf(what, sizeof what, "the manifest of backup \"%s\" in repository \"%s\"", id, r->dir);
    st = repo_json_parse(text, len, what, &o, &jerr);
    free(text);
    if (st)
        return st;
    if (!o) {
        return cerr_set(CAIRN_EFORMAT, "manifest of backup \"%s\" in repository \"%s\" is not JSON "
                        "(%s at offset %zu)", id, r->dir, jerr.what, jerr.offset);
    }
    const char *fmt = json_string_value(json_object_get(o, "format"));
    uint64_t ver = 0, u = 0;
    char type[8], dbid[20];
    if (!fmt || strcmp(fmt, "cairn-backup") != 0)
        BAD("format");
    if (!repo_json_u64(o, "version", &ver))
        BAD("version");
    if (ver != 1) {
        st = cerr_set(CAIRN_EVERSION, "manifest of backup \"%s\" has version %" PRIu64
                      "; this build reads 1", id, ver);
        goto out;
    }
    if (!jget_str(o, "id", m->id, sizeof m->id) || strcmp(m->id, id) != 0)
        BAD("id");
    if (!jget_str(o, "type", type, sizeof type) ||
        (strcmp(type, "full") != 0 && strcmp(type, "incr") != 0))
        BAD("type");
    m->incremental = !strcmp(type, "incr");
    json_t *par = json_object_get(o, "parent");
    if (m->incremental ? !jget_str(o, "parent", m->parent, sizeof m->parent)
                       : !json_is_null(par))
        BAD("parent");
    if (!jget_str(o, "db_id", dbid, sizeof dbid) || strlen(dbid) != 16 ||
        sscanf(dbid, "%16" SCNx64, &m->db_id) != 1)
        BAD("db_id");
    if (!repo_json_u64(o, "timeline", &u) || u == 0 || u > UINT32_MAX)
        BAD("timeline");
    m->timeline = (uint32_t)u;
    if (!repo_json_u64(o, "wal_segment_shift", &u) || u < 21 || u > 30)
        BAD("wal_segment_shift");
    m->seg_shift = (uint32_t)u;
    if (!repo_json_u64(o, "generation", &m->generation))
        BAD("generation");
    if (!repo_json_u64(o, "redo_lsn", &m->redo_lsn))
        BAD("redo_lsn");
    if (!repo_json_u64(o, "last_txn_id", &m->last_txn_id))
        BAD("last_txn_id");
    if (!repo_json_i64(o, "checkpoint_time_us", &m->time_us))
        BAD("checkpoint_time_us");
    if (!repo_json_i64(o, "last_commit_us", &m->last_commit_us))
        BAD("last_commit_us");
    if (!repo_json_i64(o, "started_us", &m->started_us))
        BAD("started_us");
    if (!repo_json_i64(o, "finished_us", &m->finished_us))
        BAD("finished_us");
    if (!jget_sha(o, "meta", m->meta_sha))
        BAD("meta");
    if (!jget_sha(o, "superblock", m->super_sha))
        BAD("superblock");
    json_t *wh = json_object_get(o, "wal_head");
    m->have_wal_head = wh && !json_is_null(wh);
    if (m->have_wal_head && !jget_sha(o, "wal_head", m->wal_head_sha))
        BAD("wal_head");
    if (!m->have_wal_head && m->redo_lsn)
        BAD("wal_head");
    if (!repo_json_u64(o, "bytes_raw", &m->bytes_raw))
        BAD("bytes_raw");
    if (!repo_json_u64(o, "bytes_stored", &m->bytes_stored))
        BAD("bytes_stored");
    json_t *packs = json_object_get(o, "packs");
    if (!json_is_array(packs))
        BAD("packs");
    m->npacks = json_array_size(packs);
    m->packs = calloc(m->npacks ? m->npacks : 1, CODEC_SHA256_LEN);
    if (!m->packs) {
        st = cerr_set(CAIRN_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < m->npacks; i++) {
        const char *s = json_string_value(json_array_get(packs, i));
        if (!s || !codec_unhex(s, m->packs[i]))
            BAD("packs[]");
    }
    json_t *colls = json_object_get(o, "collections");
    if (!json_is_array(colls))
        BAD("collections");
    m->ncolls = json_array_size(colls);
    m->colls = calloc(m->ncolls ? m->ncolls : 1, sizeof *m->colls);
    if (!m->colls) {
        st = cerr_set(CAIRN_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < m->ncolls; i++) {
        json_t *c = json_array_get(colls, i);
        struct pitr_mcoll *mc = &m->colls[i];
        uint64_t cid, dim;
        if (!repo_json_u64(c, "id", &cid) || cid == 0 || cid > UINT32_MAX ||
            !repo_json_u64(c, "dim", &dim) || dim == 0 || dim > CAIRN_MAX_DIM ||
            !jget_str(c, "name", mc->name, sizeof mc->name) ||
            !jget_str(c, "metric", mc->metric, sizeof mc->metric) ||
            !repo_json_u64(c, "points", &mc->points))
            BAD("collections[]");
        mc->id = (uint32_t)cid;
        mc->dim = (uint32_t)dim;
    }
    json_t *files = json_object_get(o, "files");
    if (!json_is_array(files) || json_array_size(files) == 0)
        BAD("files");
    m->files = calloc(json_array_size(files), sizeof *m->files);
    if (!m->files) {
        st = cerr_set(CAIRN_ENOMEM, "out of memory");
        goto out;
    }
    m->nfiles = json_array_size(files); /* only now: pitr_manifest_free walks them */
    for (size_t i = 0; i < m->nfiles; i++) {
        json_t *f = json_array_get(files, i);
        struct pitr_mfile *mf = &m->files[i];
        uint64_t cid, np;
        json_t *pages = json_object_get(f, "pages");
        if (!jget_str(f, "name", mf->name, sizeof mf->name) || !repo_json_u64(f, "coll_id", &cid) ||
            cid > UINT32_MAX || !repo_json_u64(f, "npages", &np) || np > UINT32_MAX ||
            !json_is_array(pages))
            BAD("files[]");
        mf->coll_id = (uint32_t)cid;
        mf->npages = (uint32_t)np;
        mf->npages_img = json_array_size(pages);
        mf->pages = calloc(mf->npages_img ? mf->npages_img : 1, sizeof *mf->pages);
        if (!mf->pages) {
            st = cerr_set(CAIRN_ENOMEM, "out of memory");
            goto out;
        }
        for (size_t k = 0; k < mf->npages_img; k++) {
            /* [phys, pack, idx, lsn or -1, space, pno, type] */
            json_t *e = json_array_get(pages, k);
            json_t *a = json_array_get(e, 0), *b = json_array_get(e, 1),
                   *c = json_array_get(e, 2), *d = json_array_get(e, 3),
                   *sp = json_array_get(e, 4), *pn = json_array_get(e, 5),
                   *ty = json_array_get(e, 6);
            if (!json_is_array(e) || json_array_size(e) != 7 || !json_is_integer(a) ||
                !json_is_integer(b) || !json_is_integer(c) || !json_is_integer(d) ||
                !json_is_integer(sp) || !json_is_integer(pn) || !json_is_integer(ty) ||
                json_integer_value(sp) < 0 || json_integer_value(sp) > UINT16_MAX ||
                json_integer_value(pn) < 0 || json_integer_value(pn) > UINT32_MAX ||
                json_integer_value(ty) < 0 || json_integer_value(ty) > UINT16_MAX ||
                json_integer_value(a) < 0 || json_integer_value(a) >= (json_int_t)np ||
                json_integer_value(b) < 0 || (size_t)json_integer_value(b) >= m->npacks ||
                json_integer_value(c) < 0 || json_integer_value(c) >= (json_int_t)PACK_PAGES ||
                json_integer_value(d) < -1)
                BAD("files[].pages[]");
            struct pitr_page_loc *pl = &mf->pages[k];
            pl->phys = (uint32_t)json_integer_value(a);
            pl->pack = (uint32_t)json_integer_value(b);
            pl->idx = (uint32_t)json_integer_value(c);
            pl->lsn = json_integer_value(d) < 0 ? UINT64_MAX : (uint64_t)json_integer_value(d);
            pl->space = (uint16_t)json_integer_value(sp);
            pl->pno = (uint32_t)json_integer_value(pn);
            pl->type = (uint16_t)json_integer_value(ty);
            if (k && pl->phys <= mf->pages[k - 1].phys)
                BAD("files[].pages[] (not in increasing physical order)");
        }
    }
out:
    json_decref(o);
    if (st)
        pitr_manifest_free(m);
    return st;
}

/* ---- the backup ------------------------------------------------------------------ */

/* The parent's image, for lookups: per file, pages by phys. */
struct parent_img {
    struct pitr_manifest m;
    bool have;
};

static const struct pitr_mfile *parent_file(const struct parent_img *p, const char *name)
{
    if (!p->have)
        return NULL;
    for (size_t i = 0; i < p->m.nfiles; i++)
        if (!strcmp(p->m.files[i].name, name))
            return &p->m.files[i];
    return NULL;
}

static const struct pitr_page_loc *parent_page(const struct pitr_mfile *f, uint32_t phys)
{
    size_t lo = 0, hi = f ? f->npages_img : 0;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (f->pages[mid].phys < phys)
            lo = mid + 1;
        else
            hi = mid;
    }
    return f && lo < f->npages_img && f->pages[lo].phys == phys ? &f->pages[lo] : NULL;
}

struct packs {
    uint8_t (*sha)[CODEC_SHA256_LEN];
    size_t n, cap;
};

/* Index of sha in the manifest's pack list (added when new). */
static cairn_status pack_index(struct packs *p, const uint8_t *sha, uint32_t *idx)
{
    for (size_t i = p->n; i-- > 0;)
        if (!memcmp(p->sha[i], sha, CODEC_SHA256_LEN)) {
            *idx = (uint32_t)i;
            return CAIRN_OK;
        }
    if (p->n == p->cap) {
        size_t nc = p->cap ? 2 * p->cap : 64;
        void *ns = realloc(p->sha, nc * CODEC_SHA256_LEN);
        if (!ns)
            return cerr_set(CAIRN_ENOMEM, "out of memory");
        p->sha = ns;
        p->cap = nc;
    }
    memcpy(p->sha[p->n], sha, CODEC_SHA256_LEN);
    *idx = (uint32_t)p->n++;
    return CAIRN_OK;
}

struct gather {
    uint8_t *buf;          /* PACK_PAGES pages */
    const struct page_ref *refs;
    size_t n;
};

static cairn_status gather_page(void *ctx, const struct page_ref *r, const uint8_t *page,
                                cairn_status st)
{
    struct gather *g = ctx;
    if (st)
        return st;
    /* refs of a pack are sorted by phys and unique: find r's slot */
    size_t lo = 0, hi = g->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (g->refs[mid].phys < r->phys)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo >= g->n || g->refs[lo].phys != r->phys)
        return cerr_set(CAIRN_EINVAL, "internal: page %u read but not asked for", r->phys);
    memcpy(g->buf + lo * PAGE_SIZE, page, PAGE_SIZE);
    return CAIRN_OK;
}

struct bk {
    repo *r;
    struct bsrc *b;
    const struct pitr_backup_opts *o;
    struct pitr_backup_result *res;
    struct packs packs;
    uint8_t *buf;
    uint64_t done, total;
};

static cairn_status put_blob(struct bk *k, const void *data, size_t len, bool shuffle,
                             uint8_t *sha)
{
    bool added = false;
    uint64_t stored = 0;
    cairn_status st = repo_blob_put(k->r, data, len, shuffle, sha, &added, &stored);
    if (!st && added) {
        k->res->blobs_new++;
        k->res->bytes_stored += stored;
    }
    return st;
}

/* One file of the image: pages as JSON rows, new pages packed. */
static cairn_status backup_file(struct bk *k, size_t fi, const struct parent_img *par,
                                json_t *rows)
{
    const struct bsrc_file *f = &k->b->files[fi];
    const struct pitr_mfile *pf = parent_file(par, f->name);
    struct page_ref *sel = malloc(PACK_PAGES * sizeof *sel);
    if (!sel)
        return cerr_set(CAIRN_ENOMEM, "out of memory");
    cairn_status st = CAIRN_OK;
    size_t i = 0;
    while (!st && i < f->nrefs) {
        uint32_t range = f->refs[i].phys / PACK_PAGES;
        size_t j = i;
        while (j < f->nrefs && f->refs[j].phys / PACK_PAGES == range)
            j++;
        /* refs[i..j): one range; the parent's pages are referred to, the
         * rest packed */
        size_t nsel = 0;
        for (size_t q = i; q < j; q++) {
            const struct pitr_page_loc *pl =
                k->o->incremental && f->refs[q].lsn != UINT64_MAX ? parent_page(pf, f->refs[q].phys)
                                                                   : NULL;
            /* same place, LSN, page space, page number and type: the same
             * bytes (engine/bsrc.h; the extra fields rule out a page
             * rewritten unchanged that landed where another page of the
             * same transaction used to be) */
            const struct page_ref *rf = &f->refs[q];
            if (!pl || pl->lsn != rf->lsn || pl->space != rf->space || pl->pno != rf->pno ||
                pl->type != rf->type)
                sel[nsel++] = *rf;
        }
        uint8_t sha[CODEC_SHA256_LEN];
        uint32_t pidx = 0;
        if (nsel) {
            struct gather g = {.buf = k->buf, .refs = sel, .n = nsel};
            st = bsrc_read(k->b, fi, sel, nsel, gather_page, &g);
            if (!st)
                st = put_blob(k, k->buf, nsel * PAGE_SIZE, true, sha);
            if (!st)
                st = pack_index(&k->packs, sha, &pidx);
            k->res->pages_new += nsel;
            k->res->bytes_new_raw += (uint64_t)nsel * PAGE_SIZE;
        }
        size_t s = 0;
        for (size_t q = i; !st && q < j; q++) {
            const struct page_ref *ref = &f->refs[q];
            uint32_t pack, idx;
            if (s < nsel && sel[s].phys == ref->phys) {
                pack = pidx;
                idx = (uint32_t)s++;
            } else {
                const struct pitr_page_loc *pl = parent_page(pf, ref->phys);
                st = pack_index(&k->packs, par->m.packs[pl->pack], &pack);
                idx = pl->idx;
            }
            json_t *row = json_pack("[I, I, I, I, i, I, i]", (json_int_t)ref->phys,
                                    (json_int_t)pack, (json_int_t)idx,
                                    ref->lsn == UINT64_MAX ? (json_int_t)-1 : (json_int_t)ref->lsn,
                                    (int)ref->space, (json_int_t)ref->pno, (int)ref->type);
            if (!st && (!row || json_array_append_new(rows, row) != 0))
                st = cerr_set(CAIRN_ENOMEM, "out of memory");
        }
        k->res->pages += j - i;
        k->res->bytes_raw += (uint64_t)(j - i) * PAGE_SIZE;
        k->done += (uint64_t)(j - i) * PAGE_SIZE;
        if (!st && k->o->progress && k->o->progress(k->o->progress_ctx, k->done, k->total))
            st = cerr_set(CAIRN_ECANCELED, "backup canceled");
        i = j;
    }
    free(sel);
    return st;
}

static void make_id(char *out, size_t n, int64_t us, bool incr)
{
    time_t t = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char ts[32];
    strftime(ts, sizeof ts, "%Y%m%dT%H%M%S", &tm);
    snprintf(out, n, "%s-%06dZ-%c", ts, (int)(us % 1000000), incr ? 'I' : 'F');
}

static const char *metric_name(cairn_metric m)
{
    return m == CAIRN_METRIC_L2 ? "l2" : m == CAIRN_METRIC_COSINE ? "cosine" : "dot";
}

/* The parent: the given id, or the newest backup of this database on the
 * same timeline taken from an earlier checkpoint generation. */
static cairn_status pick_parent(repo *r, const struct bsrc *b, const char *want,
                                struct parent_img *p)
{
    if (want) {
        cairn_status st = pitr_manifest_load(r, want, &p->m);
        if (st)
            return st;
        p->have = true;
        if (p->m.timeline != b->info.timeline || p->m.generation > b->info.generation)
            return cerr_set(CAIRN_EINVAL, "backup \"%s\" (timeline %u, checkpoint %" PRIu64
                            ") cannot be the parent of a backup of checkpoint %" PRIu64
                            " on timeline %u", want, p->m.timeline, p->m.generation,
                            b->info.generation, b->info.timeline);
        return CAIRN_OK;
    }
    char **ids = NULL;
    size_t n = 0;
    cairn_status st = repo_backup_ids(r, &ids, &n);
    for (size_t i = n; !st && i-- > 0;) {
        struct pitr_manifest m;
        st = pitr_manifest_load(r, ids[i], &m);
        if (st)
            break;
        if (m.timeline == b->info.timeline && m.generation <= b->info.generation) {
            p->m = m;
            p->have = true;
            break;
        }
        pitr_manifest_free(&m);
    }
    repo_strv_free(ids, n);
    if (!st && !p->have)
        st = cerr_set(CAIRN_ENOTFOUND, "repository \"%s\" has no backup of timeline %u to base "
                      "an incremental backup on: take a full backup first", r->dir,
                      b->info.timeline);
    return st;
}

/* The WAL segment holding the redo LSN, reduced to its header block (the
 * rest zeros, which compresses to nothing): the image opens by itself with
 * it, replaying nothing. The pin keeps that segment from removal. */
static cairn_status read_wal_head(const char *dbpath, const struct bsrc *b, uint8_t **out,
                                  size_t *len)
{
    *out = NULL;
    *len = 0;
    uint64_t seg = (uint64_t)1 << b->seg_shift, redo = b->info.redo_lsn;
    uint64_t start = (redo - 1) & ~(seg - 1);
    char name[64], sub[80];
    wal_seg_name(name, sizeof name, b->info.timeline, start);
    snprintf(sub, sizeof sub, "wal/%s", name);
    char *path = cairn_path_join(dbpath, sub);
    if (!path)
        return cerr_set(CAIRN_ENOMEM, "out of memory");
    /* A restore reads this log from the redo LSN on: the records before it
     * are never read, only the header block is; so only that block is
     * read, the rest of the (format's whole-segment) copy is zeros. */
    uint8_t *data = NULL;
    int fd = -1;
    struct stat sb;
    cairn_status st = cfs_open(path, O_RDONLY, 0, &fd);
    if (!st && fstat(fd, &sb) != 0)
        st = cerr_errno(errno, "could not stat WAL segment \"%s\"", path);
    if (!st && (uint64_t)sb.st_size != seg)
        st = cerr_set(CAIRN_ECORRUPT, "WAL segment \"%s\" is %" PRIu64 " bytes, not %" PRIu64,
                      path, (uint64_t)sb.st_size, seg);
    if (!st && !(data = calloc(1, (size_t)seg)))
        st = cerr_set(CAIRN_ENOMEM, "out of memory");
    for (size_t got = 0; !st && got < WAL_SEG_DATA;) {
        ssize_t k = pread(fd, data + got, WAL_SEG_DATA - got, (off_t)got);
        if (k <= 0)
            st = k < 0 ? cerr_errno(errno, "could not read WAL segment \"%s\" at offset %zu",
                                    path, got)
                       : cerr_set(CAIRN_ECORRUPT, "WAL segment \"%s\" ends at offset %zu",
                                  path, got);
        else
            got += (size_t)k;
    }
    if (fd >= 0)
        close(fd);
    if (!st) {
        *out = data;
        *len = (size_t)seg;
        data = NULL;
    } else {
        cerr_wrap(st, "backup: the WAL segment holding the redo LSN %016" PRIX64, redo);
    }
    free(data);
    free(path);
    return st;
}


static cairn_status backup_locked(const char *dbpath, repo *r,
                                  const struct pitr_backup_opts *o,
                                  struct pitr_backup_result *res)
{
    memset(res, 0, sizeof *res);
    int64_t t0 = cairn_now_us();
    uint64_t m0 = cairn_mono_us();
    cairn_pin *pin = NULL;
    struct bsrc *b = NULL;
    struct parent_img par = {0};
    struct bk k = {.r = r, .o = o, .res = res};
    json_t *files = NULL, *colls = NULL, *root = NULL, *packs = NULL;
    char *text = NULL;
    cairn_status st = cairn_pin_open(dbpath, &pin, NULL);
    if (!st)
        st = bsrc_open(pin, &b);
    if (!st)
        st = repo_bind(r, b->info.db_id, b->seg_shift);
    bool incr = o->incremental || o->parent;
    struct pitr_backup_opts oo = *o;
    oo.incremental = incr;
    k.o = &oo;
    k.b = b;
    if (!st && incr)
        st = pick_parent(r, b, o->parent, &par);
    if (!st) {
        k.buf = malloc((size_t)PACK_PAGES * PAGE_SIZE);
        files = json_array();
        colls = json_array();
        if (!k.buf || !files || !colls)
            st = cerr_set(CAIRN_ENOMEM, "out of memory");
    }
    for (size_t i = 0; !st && b && i < b->nfiles; i++)
        k.total += (uint64_t)b->files[i].nrefs * PAGE_SIZE;
    uint8_t meta_sha[CODEC_SHA256_LEN], super_sha[CODEC_SHA256_LEN];
    if (!st)
        st = put_blob(&k, b->meta, b->meta_len, false, meta_sha);
    if (!st)
        st = put_blob(&k, b->super, b->super_len, false, super_sha);
    uint8_t head_sha[CODEC_SHA256_LEN];
    char head_hex[CODEC_SHA256_HEX] = "";
    if (!st && b->info.redo_lsn) {
        uint8_t *head = NULL;
        size_t hl = 0;
        st = read_wal_head(dbpath, b, &head, &hl);
        if (!st)
            st = put_blob(&k, head, hl, false, head_sha);
        free(head);
        if (!st)
            codec_hex(head_sha, head_hex);
    }
    for (size_t i = 0; !st && i < b->nfiles; i++) {
        json_t *rows = json_array();
        if (!rows) {
            st = cerr_set(CAIRN_ENOMEM, "out of memory");
            break;
        }
        st = backup_file(&k, i, &par, rows);
        json_t *f = st ? NULL
                       : json_pack("{s:s, s:I, s:I, s:o}", "name", b->files[i].name, "coll_id",
                                   (json_int_t)b->files[i].coll_id, "npages",
                                   (json_int_t)b->files[i].npages, "pages", rows);
        if (st)
            json_decref(rows);
        else if (!f || json_array_append_new(files, f) != 0)
            st = cerr_set(CAIRN_ENOMEM, "out of memory");
    }
    for (size_t i = 0; !st && i < b->ncolls; i++) {
        const struct bsrc_coll *c = &b->colls[i];
        json_t *e = json_pack("{s:I, s:s, s:I, s:s, s:I}", "id", (json_int_t)c->id, "name",
                              c->name, "dim", (json_int_t)c->dim, "metric",
                              metric_name(c->metric), "points", (json_int_t)c->points);
        if (!e || json_array_append_new(colls, e) != 0)
            st = cerr_set(CAIRN_ENOMEM, "out of memory");
        res->points += c->points;
    }
    if (!st) {
        packs = json_array();
        for (size_t i = 0; packs && i < k.packs.n; i++) {
            char hex[CODEC_SHA256_HEX];
            codec_hex(k.packs.sha[i], hex);
            if (json_array_append_new(packs, json_string(hex)) != 0) {
                json_decref(packs);
                packs = NULL;
            }
        }
        if (!packs)
            st = cerr_set(CAIRN_ENOMEM, "out of memory");
    }
    if (!st) {
        res->blobs = k.packs.n;
        make_id(res->id, sizeof res->id, t0, incr);
        if (incr)
            snprintf(res->parent, sizeof res->parent, "%s", par.m.id);
        char dbid[17], mh[CODEC_SHA256_HEX], sh[CODEC_SHA256_HEX];
        snprintf(dbid, sizeof dbid, "%016" PRIx64, b->info.db_id);
        codec_hex(meta_sha, mh);
        codec_hex(super_sha, sh);
        int64_t t1 = cairn_now_us();
        root = json_pack(
            "{s:s, s:i, s:s, s:s, s:s?, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
            "s:{s:I, s:I}, s:s, s:s, s:s?, s:I, s:I, s:I, s:o, s:o, s:o}",
            "format", "cairn-backup", "version", 1, "id", res->id, "type", incr ? "incr" : "full",
            "parent", incr ? par.m.id : NULL, "db_id", dbid, "timeline",
            (json_int_t)b->info.timeline, "wal_segment_shift", (json_int_t)b->seg_shift,
            "generation", (json_int_t)b->info.generation, "redo_lsn",
            (json_int_t)b->info.redo_lsn, "last_txn_id", (json_int_t)b->info.last_txn_id,
            "checkpoint_time_us", (json_int_t)b->info.time_us, "last_commit_us",
            (json_int_t)b->last_commit_us, "started_us", (json_int_t)t0, "finished_us",
            (json_int_t)t1, "wal", "timeline", (json_int_t)b->info.timeline, "start_lsn",
            (json_int_t)b->info.redo_lsn, "meta", mh, "superblock", sh, "wal_head",
            head_hex[0] ? head_hex : NULL, "pages",
            (json_int_t)res->pages, "bytes_raw", (json_int_t)res->bytes_raw, "bytes_stored",
            (json_int_t)res->bytes_stored, "collections", colls, "packs", packs, "files", files);
        colls = packs = files = NULL;
        char what[600];
        snprintf(what, sizeof what, "the manifest of backup \"%s\" in repository \"%s\"",
                 res->id, r->dir);
        st = repo_json_dump(root, JSON_COMPACT | JSON_PRESERVE_ORDER, what, &text);
    }
    if (!st)
        st = repo_manifest_put(r, res->id, text, strlen(text));
    if (!st) {
        res->generation = b->info.generation;
        res->redo_lsn = b->info.redo_lsn;
        res->last_txn_id = b->info.last_txn_id;
        res->time_us = b->info.time_us;
        res->timeline = b->info.timeline;
        res->collections = (uint32_t)b->ncolls;
    }
    res->duration_us = cairn_mono_us() - m0;
    free(text);
    json_decref(root);
    json_decref(files);
    json_decref(colls);
    json_decref(packs);
    free(k.buf);
    free(k.packs.sha);
    if (par.have)
        pitr_manifest_free(&par.m);
    bsrc_free(b);
    if (pin) {
        /* keep the first failure's message: the close clears it */
        struct cerr_saved msg;
        if (st) {
            cerr_save(&msg);
            cairn_pin_close(pin);
            cerr_restore(&msg, st);
        } else {
            st = cairn_pin_close(pin);
        }
    }
    return st;
}

/* Under the repository's lock, shared (repo_lock): an expire waits until
 * the manifest names every blob this backup stored or reused. */
cairn_status pitr_backup(const char *dbpath, repo *r, const struct pitr_backup_opts *o,
                         struct pitr_backup_result *res)
{
    int fd = -1;
    cairn_status st = repo_lock(r, false, &fd);
    if (!st)
        st = backup_locked(dbpath, r, o, res);
    repo_unlock(fd);
    return repo_named(r, "backup of database", dbpath, st);
}
