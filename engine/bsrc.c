/*
 * bsrc.c — the backup source (bsrc.h): a pinned checkpoint described file
 * by file and page by page from its catalog and maps, and its pages read
 * and verified. cairn_pin_copy (pin.c) and pitr/ backups are built on it,
 * so both hold exactly the same image.
 *
 * The walk (bsrc_open): DB/meta as it is now; the superblock file as a copy
 * writes it (the pinned slot's page, the other slot zero); the catalog
 * chain of the pinned superblock (cat_walk, each page verified with the
 * checkpoint's redo LSN); then, per collection of the catalog, both page
 * space maps (pmap_load: every map page verified), whose nodes and mapped
 * pages are the refs of its file. Every page of a file is marked in its
 * pfile as it is found, so an image that references a page twice is
 * refused as corrupt, as the open refuses it. Last, each collection's
 * header page (group page 0) is read through bsrc_read for its point count.
 *
 * Verification (bsrc_read): each page as pfile_read_refs checks it (crc,
 * type, collection, space, page number, and for point pages the LSN its
 * map records); catalog pages, whose ref lsn is UINT64_MAX for the
 * incremental rule of bsrc.h, are checked once more against the pinned
 * redo LSN, which every page of the chain carries (the catalog is written
 * whole by each checkpoint): as strong as the copy was before it used this
 * walk. Map pages carry the redo LSN of whichever checkpoint wrote them,
 * which nothing records: they are checked for everything but the LSN, as
 * the open checks them.
 *
 * One bsrc reads with one I/O context and one read buffer (priv): calls on
 * the same bsrc are not concurrent; threads that read in parallel open a
 * bsrc each on the same pin.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/io.h"
#include "common/util.h"
#include "engine/bsrc.h"
#include "engine/ckpt_int.h"
#include "engine/pager.h"
#include "engine/pfile.h"

/* store.c, docs/format.md "Header page": body offsets */
#define HDR_VERSION 0u
#define HDR_DIM 4u
#define HDR_N 24u
#define STORE_VERSION 1u

struct bsrc_priv {
    cio *io;
    uint8_t *rbuf;        /* 2 * PFILE_READ_BATCH pages, aligned: pfile_read_refs */
    uint8_t *pg;          /* one aligned page: the catalog and map walks */
    struct pfile *pf;     /* per file: open read-only; pf[i].fd reads files[i] */
    size_t npf;           /* opened so far */
    uint64_t redo;        /* every catalog page of the image carries it */
    struct cat_entry *ents;
    size_t nents, capents;
};

static int cmp_phys(const void *a, const void *b)
{
    const struct page_ref *x = a, *y = b;
    return x->phys < y->phys ? -1 : x->phys > y->phys;
}

static cairn_status add_ref(struct bsrc_file *f, size_t *cap, struct page_ref r)
{
    if (f->nrefs == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        struct page_ref *nr = realloc(f->refs, nc * sizeof *nr);
        if (!nr)
            return cerr_set(CAIRN_ENOMEM, "out of memory");
        f->refs = nr;
        *cap = nc;
    }
    f->refs[f->nrefs++] = r;
    return CAIRN_OK;
}

static cairn_status keep_entry(void *vctx, const struct cat_entry *e, uint32_t phys, uint32_t k)
{
    (void)phys;
    (void)k;
    struct bsrc_priv *p = vctx;
    if (p->nents == p->capents) {
        size_t nc = p->capents ? p->capents * 2 : 8;
        struct cat_entry *ne = realloc(p->ents, nc * sizeof *ne);
        if (!ne)
            return cerr_set(CAIRN_ENOMEM, "out of memory");
        p->ents = ne;
        p->capents = nc;
    }
    p->ents[p->nents++] = *e;
    return CAIRN_OK;
}

/* The pages of collection e in file f (open as pf): its map nodes and every
 * mapped page; *hdr gets the physical page of its header (group page 0). */
static cairn_status collection_refs(struct bsrc_priv *p, struct pfile *pf,
                                    const struct cat_entry *e, struct bsrc_file *f,
                                    uint32_t *hdr)
{
    cairn_status st = CAIRN_OK;
    size_t cap = 0;
    *hdr = 0;
    for (unsigned sp = 0; !st && sp < PSPACE_N; sp++) {
        struct pmap m;
        pmap_init(&m);
        st = pmap_load(&m, pf, p->io, e->root[sp], e->depth[sp], e->n[sp], sp, p->pg);
        for (unsigned l = 0; !st && l < m.depth; l++)
            for (uint32_t i = 0; !st && i < m.nnode[l]; i++)
                if (m.node[l][i])
                    st = add_ref(f, &cap, (struct page_ref){
                                              .phys = m.node[l][i], .pno = i,
                                              .lsn = UINT64_MAX,
                                              .type = l == 0 ? PT_MAP_LEAF : PT_MAP_INNER,
                                              .space = (uint16_t)sp});
        for (uint32_t i = 0; !st && i < m.n; i++)
            if (m.phys[i])
                st = add_ref(f, &cap, (struct page_ref){.phys = m.phys[i], .pno = i,
                                                        .lsn = m.lsn[i],
                                                        .space = (uint16_t)sp});
        if (!st && sp == PSPACE_GROUP && m.n)
            *hdr = m.phys[0];
        pmap_free(&m);
    }
    return st;
}

/* ---- reading ------------------------------------------------------------------ */

struct read_ctx {
    struct bsrc *b;
    size_t file;
    page_ref_fn fn;
    void *ctx;
};

static cairn_status read_one(void *vctx, const struct page_ref *r, const uint8_t *page,
                             cairn_status st)
{
    struct read_ctx *rc = vctx;
    struct bsrc_priv *p = rc->b->priv;
    if (st)
        return st; /* the page failed: the read stops, its message stands */
    if (rc->file == 0 && r->type == PT_CATALOG && r->lsn == UINT64_MAX) {
        const struct pfile *pf = &p->pf[0];
        st = page_verify(page, pf->path, r->phys, 0, PT_CATALOG, r->space, r->pno, p->redo);
        if (st)
            return st;
    }
    return rc->fn(rc->ctx, r, page, CAIRN_OK);
}

cairn_status bsrc_read(struct bsrc *b, size_t file, struct page_ref *refs, size_t n,
                       page_ref_fn fn, void *ctx)
{
    if (!b || !fn || (n && !refs))
        return cerr_set(CAIRN_EINVAL, "bsrc_read: NULL argument");
    if (file >= b->nfiles)
        return cerr_set(CAIRN_EINVAL, "bsrc_read: file %zu of %zu", file, b->nfiles);
    if (n == 0)
        return CAIRN_OK;
    struct bsrc_priv *p = b->priv;
    const struct pfile *pf = &p->pf[file];
    struct read_ctx rc = {.b = b, .file = file, .fn = fn, .ctx = ctx};
    return pfile_read_refs(p->io, pf->fd, pf->path, pf->coll_id, pf->npages, refs, n, p->rbuf,
                           read_one, &rc);
}

/* ---- the point count of a collection ------------------------------------------ */

struct hdr_ctx {
    const char *path;
    uint32_t dim, id;
    uint64_t n;
};

static cairn_status read_header(void *vctx, const struct page_ref *r, const uint8_t *page,
                                cairn_status st)
{
    struct hdr_ctx *h = vctx;
    if (st)
        return st;
    const uint8_t *body = page + PAGE_HDR;
    uint32_t version = ld32(body + HDR_VERSION), dim = ld32(body + HDR_DIM);
    if (version != STORE_VERSION)
        return cerr_set(version > STORE_VERSION ? CAIRN_EVERSION : CAIRN_ECORRUPT,
                        "page file \"%s\": page %" PRIu32 " (offset %" PRIu64 "), the header "
                        "of collection %" PRIu32 ", has format version %" PRIu32 ", this "
                        "library reads %u", h->path, r->phys, (uint64_t)r->phys * PAGE_SIZE,
                        h->id, version, STORE_VERSION);
    if (dim != h->dim)
        return cerr_set(CAIRN_ECORRUPT,
                        "page file \"%s\": page %" PRIu32 " (offset %" PRIu64 "), the header "
                        "of collection %" PRIu32 ", has dimension %" PRIu32 ", the catalog "
                        "says %" PRIu32, h->path, r->phys, (uint64_t)r->phys * PAGE_SIZE,
                        h->id, dim, h->dim);
    h->n = ld64(body + HDR_N);
    return CAIRN_OK;
}

static cairn_status count_points(struct bsrc *b, size_t c, uint32_t hdr)
{
    struct bsrc_coll *bc = &b->colls[c];
    struct bsrc_priv *p = b->priv;
    struct hdr_ctx h = {.path = p->pf[bc->file].path, .dim = bc->dim, .id = bc->id};
    if (hdr == 0)
        return cerr_set(CAIRN_ECORRUPT, "page file \"%s\": collection %" PRIu32 " (\"%s\") "
                        "has no header page (group page 0 is not in its map)", h.path, bc->id,
                        bc->name);
    struct page_ref r = {.phys = hdr, .pno = 0, .lsn = UINT64_MAX, .type = PT_COLL,
                         .space = PSPACE_GROUP};
    /* the LSN its map records: the ref of group page 0 */
    const struct bsrc_file *f = &b->files[bc->file];
    for (size_t i = 0; i < f->nrefs; i++)
        if (f->refs[i].phys == hdr)
            r.lsn = f->refs[i].lsn;
    cairn_status st = bsrc_read(b, bc->file, &r, 1, read_header, &h);
    if (!st)
        bc->points = h.n;
    return st;
}

/* ---- open and free -------------------------------------------------------------- */

cairn_status bsrc_open(cairn_pin *pin, struct bsrc **out)
{
    if (!pin || !out)
        return cerr_set(CAIRN_EINVAL, "bsrc_open: NULL argument");
    *out = NULL;
    struct pin_view v;
    pin_view(pin, &v);
    const struct super *s = v.sb;
    struct bsrc *b = calloc(1, sizeof *b);
    struct bsrc_priv *p = calloc(1, sizeof *p);
    void *rbuf = NULL, *pg = NULL;
    if (!b || !p || posix_memalign(&rbuf, PAGE_SIZE, 2 * (size_t)PFILE_READ_BATCH * PAGE_SIZE) ||
        posix_memalign(&pg, PAGE_SIZE, PAGE_SIZE)) {
        free(b);
        free(p);
        free(rbuf);
        return cerr_set(CAIRN_ENOMEM, "out of memory");
    }
    b->priv = p;
    p->rbuf = rbuf;
    p->pg = pg;
    p->redo = s->redo;
    b->info = (cairn_pin_info){.generation = s->gen, .redo_lsn = s->redo,
                               .time_us = s->time_us, .last_txn_id = s->last_txn,
                               .timeline = s->timeline, .collections = s->ncolls,
                               .db_id = s->db_id};
    b->last_commit_us = s->last_commit_us;
    b->seg_shift = v.seg_shift;

    char *meta_path = cairn_path_join(v.dbpath, "meta");
    char *cat_path = cairn_path_join(v.dbpath, "catalog.pages");
    size_t maxcat = cat_chain_max(s), ncat = 0;
    uint32_t *cat_pages = calloc(maxcat ? maxcat : 1, sizeof *cat_pages);
    cairn_status st = meta_path && cat_path && cat_pages ? CAIRN_OK
                                                         : cerr_set(CAIRN_ENOMEM, "out of memory");
    if (!st)
        st = cio_ctx_open(&p->io, CAIRN_IO_DEFAULT, PFILE_RUNS);
    /* 1. meta and the superblock file of a copy */
    if (!st) {
        char *meta = NULL;
        st = cfs_read_file(meta_path, &meta, &b->meta_len);
        b->meta = (uint8_t *)meta;
    }
    if (!st) {
        b->super_len = 2 * (size_t)PAGE_SIZE;
        b->super = calloc(2, PAGE_SIZE);
        if (!b->super)
            st = cerr_set(CAIRN_ENOMEM, "out of memory");
        else /* the pinned slot only: the other stays zero (no checkpoint) */
            memcpy(b->super + (size_t)v.slot * PAGE_SIZE, v.img, PAGE_SIZE);
    }
    /* 2. the catalog: its chain, and the collections it lists */
    if (!st) {
        b->files = calloc(1, sizeof *b->files);
        p->pf = calloc(1, sizeof *p->pf);
        st = b->files && p->pf ? pfile_open_ro(&p->pf[0], cat_path, 0)
                               : cerr_set(CAIRN_ENOMEM, "out of memory");
    }
    if (!st) {
        p->npf = b->nfiles = 1;
        snprintf(b->files[0].name, sizeof b->files[0].name, "catalog.pages");
        b->files[0].npages = p->pf[0].npages;
        st = cat_walk(&p->pf[0], p->io, s, PF_USED, p->pg, cat_pages, &ncat, keep_entry, p);
    }
    size_t cap = 0;
    for (size_t i = 0; !st && i < ncat; i++)
        st = add_ref(&b->files[0], &cap,
                     (struct page_ref){.phys = cat_pages[i], .pno = (uint32_t)i,
                                       .lsn = UINT64_MAX, .type = PT_CATALOG});
    if (!st && p->nents) {
        struct bsrc_file *nf = realloc(b->files, (1 + p->nents) * sizeof *nf);
        struct pfile *npf = nf ? realloc(p->pf, (1 + p->nents) * sizeof *npf) : NULL;
        if (nf)
            b->files = nf;
        if (npf)
            p->pf = npf;
        b->colls = calloc(p->nents, sizeof *b->colls);
        st = nf && npf && b->colls ? CAIRN_OK : cerr_set(CAIRN_ENOMEM, "out of memory");
    }
    /* 3. per collection: its page file and every page its maps hold */
    uint32_t *hdr = calloc(p->nents ? p->nents : 1, sizeof *hdr);
    if (!st && !hdr)
        st = cerr_set(CAIRN_ENOMEM, "out of memory");
    for (size_t i = 0; !st && i < p->nents; i++) {
        const struct cat_entry *e = &p->ents[i];
        struct bsrc_file *f = &b->files[1 + i];
        memset(f, 0, sizeof *f);
        snprintf(f->name, sizeof f->name, "collections/%" PRIu32 ".pages", e->id);
        f->coll_id = e->id;
        char *path = cairn_path_join(v.dbpath, f->name);
        st = path ? pfile_open_ro(&p->pf[1 + i], path, e->id)
                  : cerr_set(CAIRN_ENOMEM, "out of memory");
        free(path);
        if (st)
            break;
        p->npf = b->nfiles = 2 + i;
        f->npages = p->pf[1 + i].npages;
        struct bsrc_coll *c = &b->colls[i];
        c->id = e->id;
        c->dim = e->dim;
        c->metric = e->metric;
        memcpy(c->name, e->name, sizeof c->name);
        c->file = 1 + i;
        b->ncolls = i + 1;
        st = collection_refs(p, &p->pf[1 + i], e, f, &hdr[i]);
    }
    for (size_t i = 0; !st && i < b->nfiles; i++)
        if (b->files[i].nrefs > 1)
            qsort(b->files[i].refs, b->files[i].nrefs, sizeof *b->files[i].refs, cmp_phys);
    /* 4. the point count of each collection, from its header page */
    for (size_t i = 0; !st && i < b->ncolls; i++)
        st = count_points(b, i, hdr[i]);
    free(hdr);
    free(cat_pages);
    free(cat_path);
    free(meta_path);
    if (st) {
        bsrc_free(b);
        return st;
    }
    *out = b;
    return CAIRN_OK;
}

void bsrc_free(struct bsrc *b)
{
    if (!b)
        return;
    struct bsrc_priv *p = b->priv;
    if (p) {
        for (size_t i = 0; i < p->npf; i++)
            pfile_close(&p->pf[i]);
        free(p->pf);
        free(p->ents);
        free(p->rbuf);
        free(p->pg);
        cio_ctx_close(p->io);
        free(p);
    }
    for (size_t i = 0; i < b->nfiles; i++)
        free(b->files[i].refs);
    free(b->files);
    free(b->colls);
    free(b->meta);
    free(b->super);
    free(b);
}
