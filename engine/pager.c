/*
 * pager.c — page headers and the in-memory buffer pool of a collection
 * (see pager.h for the model: every live page resident, dirty tracking,
 * copy-on-write snapshots for the checkpointer).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/crc32c.h"
#include "common/err.h"
#include "engine/pager.h"

enum { PD_DIRTY = 1, PD_SNAP = 2 };

void page_hdr_get(const uint8_t *page, struct page_hdr *h)
{
    h->crc = ld32(page);
    h->type = ld16(page + 4);
    h->flags = ld16(page + 6);
    h->coll_id = ld32(page + 8);
    h->space = ld32(page + 12);
    h->page_no = ld64(page + 16);
    h->lsn = ld64(page + 24);
}

void page_hdr_put(uint8_t *page, const struct page_hdr *h)
{
    st16(page + 4, h->type);
    st16(page + 6, h->flags);
    st32(page + 8, h->coll_id);
    st32(page + 12, h->space);
    st64(page + 16, h->page_no);
    st64(page + 24, h->lsn);
}

void page_seal(uint8_t *page)
{
    st32(page, crc32c(0, page + 4, PAGE_SIZE - 4));
}

bool page_crc_ok(const uint8_t *page)
{
    uint16_t t = ld16(page + 4);
    return t > 0 && t < PT_MAX_ && ld32(page) == crc32c(0, page + 4, PAGE_SIZE - 4);
}

static bool point_type(uint16_t t)
{
    return t == PT_COLL || t == PT_SLOT || t == PT_VEC || t == PT_HEAP || t == PT_OVFL;
}

cairn_status page_verify(const uint8_t *page, const char *file, uint32_t phys,
                         uint32_t coll_id, uint16_t type, uint32_t space,
                         uint64_t page_no, uint64_t lsn)
{
    struct page_hdr h;
    page_hdr_get(page, &h);
    const char *why = NULL;
    char buf[160];
    if (h.crc != crc32c(0, page + 4, PAGE_SIZE - 4)) {
        why = "fails its checksum";
    } else if (type ? h.type != type : !point_type(h.type)) {
        snprintf(buf, sizeof buf, "has type %u, expected %u", h.type, type);
        why = buf;
    } else if (h.coll_id != coll_id || h.space != space || h.page_no != page_no) {
        snprintf(buf, sizeof buf,
                 "is collection %u space %u page %llu, expected collection %u space %u "
                 "page %llu",
                 h.coll_id, h.space, (unsigned long long)h.page_no, coll_id, space,
                 (unsigned long long)page_no);
        why = buf;
    } else if (lsn != UINT64_MAX && h.lsn != lsn) {
        snprintf(buf, sizeof buf, "has page LSN %llu, its map says %llu",
                 (unsigned long long)h.lsn, (unsigned long long)lsn);
        why = buf;
    } else if (point_type(h.type) && h.flags != 0) {
        why = "has nonzero reserved flags";
    }
    if (!why)
        return CAIRN_OK;
    return cerr_set(CAIRN_ECORRUPT, "page file \"%s\": page %u (offset %llu) %s", file, phys,
                    (unsigned long long)phys * PAGE_SIZE, why);
}

void pager_init(struct pager *p, uint32_t coll_id)
{
    memset(p, 0, sizeof *p);
    p->coll_id = coll_id;
}

void pager_free(struct pager *p)
{
    if (!p)
        return;
    for (unsigned s = 0; s < PSPACE_N; s++) {
        struct pspace *sp = &p->sp[s];
        for (uint32_t i = 0; i < sp->n; i++) {
            struct pdesc *d = &sp->pd[i];
            if (d->snap && d->snap != d->frame)
                page_frame_free(d->snap);
            page_frame_free(d->frame);
        }
        free(sp->pd);
    }
    free(p->snap);
    memset(p, 0, sizeof *p);
}

static cairn_status space_reserve(struct pager *p, unsigned space, uint32_t pno)
{
    struct pspace *sp = &p->sp[space];
    if (pno < sp->cap)
        return CAIRN_OK;
    if (pno == UINT32_MAX)
        return cerr_set(CAIRN_ENOSPC, "collection %u: page space %u has no free page number", p->coll_id,
                        space);
    size_t ncap = sp->cap ? sp->cap : 64;
    while (ncap <= pno)
        ncap *= 2;
    if (ncap > UINT32_MAX)
        ncap = UINT32_MAX;
    struct pdesc *nd = realloc(sp->pd, ncap * sizeof *nd);
    if (!nd)
        return cerr_set(CAIRN_ENOMEM, "collection %u: could not grow the page table to %zu pages",
                        p->coll_id, ncap);
    memset(nd + sp->cap, 0, (ncap - sp->cap) * sizeof *nd);
    sp->pd = nd;
    sp->cap = (uint32_t)ncap;
    return CAIRN_OK;
}

const uint8_t *pager_read(const struct pager *p, unsigned space, uint32_t pno)
{
    const struct pspace *sp = &p->sp[space];
    return pno < sp->n ? sp->pd[pno].frame : NULL;
}

static void mark_dirty(struct pager *p, struct pdesc *d)
{
    if (!(d->flags & PD_DIRTY)) {
        d->flags |= PD_DIRTY;
        p->ndirty++;
    }
}

uint8_t *pager_write(struct pager *p, unsigned space, uint32_t pno, uint16_t type,
                     uint64_t lsn)
{
    if (space_reserve(p, space, pno))
        return NULL;
    struct pspace *sp = &p->sp[space];
    struct pdesc *d = &sp->pd[pno];
    if (!d->frame) {
        uint8_t *f = page_frame_alloc();
        if (!f) {
            cerr_set(CAIRN_ENOMEM, "collection %u: out of memory for page %u", p->coll_id, pno);
            return NULL;
        }
        struct page_hdr h = {.type = type, .coll_id = p->coll_id, .space = space,
                             .page_no = pno, .lsn = lsn};
        page_hdr_put(f, &h);
        d->frame = f;
        p->live_pages++;
    } else if ((d->flags & PD_SNAP) && d->snap == d->frame) {
        uint8_t *f = page_frame_alloc_raw();
        if (!f) {
            cerr_set(CAIRN_ENOMEM, "collection %u: out of memory for page %u", p->coll_id, pno);
            return NULL;
        }
        memcpy(f, d->frame, PAGE_SIZE);
        d->frame = f;
    }
    st16(d->frame + 4, type);
    if (lsn > ld64(d->frame + 24))
        st64(d->frame + 24, lsn);
    if (pno >= sp->n)
        sp->n = pno + 1;
    mark_dirty(p, d);
    return d->frame;
}

void pager_drop(struct pager *p, unsigned space, uint32_t pno)
{
    struct pspace *sp = &p->sp[space];
    if (pno >= sp->n || !sp->pd[pno].frame)
        return;
    struct pdesc *d = &sp->pd[pno];
    if (!(d->flags & PD_SNAP) || d->snap != d->frame)
        page_frame_free(d->frame);
    d->frame = NULL;
    p->live_pages--;
    mark_dirty(p, d);
}

cairn_status pager_install(struct pager *p, unsigned space, uint32_t pno, uint8_t *frame)
{
    cairn_status st = space_reserve(p, space, pno);
    if (st)
        return st;
    struct pspace *sp = &p->sp[space];
    struct pdesc *d = &sp->pd[pno];
    if (d->frame)
        page_frame_free(d->frame);
    else
        p->live_pages++;
    d->frame = frame;
    if (pno >= sp->n)
        sp->n = pno + 1;
    return CAIRN_OK;
}

cairn_status pager_snap_begin(struct pager *p)
{
    return pager_snap_begin_cold(p, UINT64_MAX, NULL);
}

cairn_status pager_snap_begin_cold(struct pager *p, uint64_t below, uint64_t *newest)
{
    p->nsnap = 0;
    if (p->ndirty > p->capsnap) {
        size_t ncap = p->capsnap ? p->capsnap : 64;
        while (ncap < p->ndirty)
            ncap *= 2;
        struct snap_ref *ns = realloc(p->snap, ncap * sizeof *ns);
        if (!ns)
            return cerr_set(CAIRN_ENOMEM,
                            "collection %u: out of memory for a checkpoint of %llu pages",
                            p->coll_id, (unsigned long long)p->ndirty);
        p->snap = ns;
        p->capsnap = ncap;
    }
    uint64_t top = 0;
    for (unsigned s = 0; s < PSPACE_N; s++) {
        struct pspace *sp = &p->sp[s];
        for (uint32_t i = 0; i < sp->n; i++) {
            struct pdesc *d = &sp->pd[i];
            if (!(d->flags & PD_DIRTY))
                continue;
            uint64_t lsn = d->frame ? page_lsn(d->frame) : 0;
            if (lsn > top)
                top = lsn;
            if (lsn >= below)
                continue; /* still changing: it stays dirty */
            d->flags = (uint8_t)((d->flags & ~PD_DIRTY) | PD_SNAP);
            d->snap = d->frame;
            p->snap[p->nsnap++] = (struct snap_ref){.space = s, .pno = i, .frame = d->snap};
        }
        p->snap_n[s] = sp->n;
    }
    p->ndirty -= p->nsnap;
    p->in_snap = true;
    if (newest)
        *newest = top;
    return CAIRN_OK;
}

const uint8_t *pager_snap_page(const struct pager *p, size_t i, unsigned *space,
                               uint32_t *pno)
{
    const struct snap_ref *r = &p->snap[i];
    *space = r->space;
    *pno = r->pno;
    return r->frame;
}

void pager_snap_end(struct pager *p, bool ok)
{
    for (size_t i = 0; i < p->nsnap; i++) {
        struct pdesc *d = &p->sp[p->snap[i].space].pd[p->snap[i].pno];
        if (d->snap && d->snap != d->frame)
            page_frame_free(d->snap);
        d->snap = NULL;
        d->flags &= (uint8_t)~PD_SNAP;
        if (!ok)
            mark_dirty(p, d);
    }
    p->nsnap = 0;
    p->in_snap = false;
}
