/*
 * store.c — the point store of one collection, in pages.
 *
 * Every point lives in the pages of the collection's buffer pool
 * (engine/pager.h), so that a checkpoint writes exactly what the store
 * holds. Two page spaces: PSPACE_GROUP (the header, slots and vectors) and
 * PSPACE_HEAP (payload text). Offsets below are from the start of the page
 * body (PAGE_HDR = 32 bytes into the page); all integers little-endian.
 * Format version 1 (STORE_VERSION); docs/format.md, "Point pages", has the
 * same tables.
 *
 * Header page (PSPACE_GROUP page 0, PT_COLL), rewritten by every mutation:
 *   off size field
 *     0    4 format version (1)
 *     4    4 dim
 *     8    4 VPP: vectors per vector page (0 when a vector spans pages)
 *    12    4 PPV: pages per vector when it spans (0 otherwise)
 *    16    4 SPG: slots per group
 *    20    4 G: pages per group (1 + vector pages of a group)
 *    24    8 n: number of points (slots [0, n) are in use)
 *    32    8 payload bytes: sum of the payload lengths of all points
 *    40    4 open heap page (UINT32_MAX: none)
 *    44    4 reserved, 0 (the rest of the body is 0 as well)
 *
 * Layout (a function of dim only). With B = PAGE_BODY = 8160 and a vector
 * of 4*dim bytes:
 *   4*dim <= B:  VPP = min(floor(B / (4*dim)), 340), PPV = 0,
 *                SPG = floor(340 / VPP) * VPP, G = 1 + SPG / VPP;
 *   4*dim >  B:  VPP = 0, PPV = ceil(4*dim / B), SPG = 340, G = 1 + 340*PPV.
 * (340 = floor(B / 24) slot entries fit a slot page; the cap of VPP at 340
 * only matters for dim <= 5, whose vector page is then partly unused.)
 * Slot s belongs to group g = s / SPG at index j = s % SPG. Group g holds
 * PSPACE_GROUP pages [1 + g*G, 1 + (g+1)*G): first its PT_SLOT page (entry j
 * at offset 24*j), then its PT_VEC pages: when vectors fit, vector j is in
 * vector page j / VPP of the group at offset (j % VPP) * 4*dim; when they
 * span, vector j is in the PPV pages starting at vector page j*PPV of the
 * group, its bytes [t*B, min((t+1)*B, 4*dim)) in the t-th. A page exists
 * exactly when a slot < n uses it; bytes of slots >= n (slot entries,
 * vectors) are 0.
 *
 * Slot entry (24 bytes):
 *     0    8 point id
 *     8    4 norm |v| (float32; vec_norm(), used by cosine)
 *    12    4 payload length in bytes (0: no payload)
 *    16    4 payload page: heap page of the record, or first overflow page
 *    20    2 record offset in the heap page body (0 for none / large)
 *    22    2 flags: 1 present (always set), 2 large (overflow chain)
 * No payload: length, page, offset 0 and flag 2 clear.
 *
 * Heap page (PT_HEAP) body: u32 used (bytes of the body in use, from 8),
 * u32 live (bytes of the records some slot references), then records from
 * offset 8, each at an 8-aligned offset:
 *     0    8 owner point id
 *     8    4 length (>= 1)
 *    12    4 reserved, 0
 *    16    -  payload bytes, zero-padded to a multiple of 8
 * A record is live when its owner's slot entry points at it (same page and
 * offset); other records are dead space. Bytes [used, B) are 0. A payload
 * is a record when 16 + align8(length) fits an empty page (length <= 8136);
 * a longer one is a chain of PT_OVFL pages, each body: u32 next page
 * (UINT32_MAX: last), u32 bytes here, u64 owner id, data (8144 bytes in
 * every page but the last), then 0.
 *
 * Heap space management. New records are appended to the open heap page; a
 * page's live count goes down when a record dies (payload replaced or point
 * deleted), and a page with no live record is dropped. Dropped heap page
 * numbers are reused lowest first (a bitmap, rebuilt at load); group pages
 * need no free list (their set is fixed by n). Bound: every heap page other
 * than the open one is at least a quarter live (live >= B/4), so the small
 * payloads take at most 4x their bytes plus one page; the rules keeping it:
 *   - a record that does not fit the open page O: if O is under a quarter
 *     live, O's live records move to a fresh page N (O is dropped), and the
 *     record goes to N, or to a page of its own when N cannot take it (it is
 *     then over 6112 bytes, well over a quarter); otherwise the record goes
 *     to a fresh page that becomes the open one;
 *   - a record dying on a page P other than O that leaves P under a quarter
 *     live moves P's live records to O if they fit, otherwise to a fresh page
 *     that becomes the open one (taking O's records too when O is under a
 *     quarter live); P is dropped.
 * Moving a record updates its owner's slot entry (found through the hash).
 *
 * Mutations are all-or-nothing. Each runs as an "op": every page is
 * obtained with pager_write() right before it is first changed (recording
 * whether the op created it, and its old LSN and type), every change of a
 * page that existed is logged with its before-image (or as "was zero"), and
 * pages to drop are only listed. On a failure the log is undone in reverse,
 * created pages are dropped, old LSNs restored: the pages hold what they
 * held (a page may stay marked dirty: harmless). On success the listed pages
 * are dropped and the in-memory state (hash, cache, n) changes; nothing in
 * that last step can fail. Frames are used only within one call: a
 * checkpoint snapshot may freeze a frame between calls.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/json.h"
#include "common/util.h"
#include "engine/engine_int.h"
#include "index/index.h"

#define STORE_VERSION 1u
#define NO_PAGE UINT32_MAX
#define EMPTY_SLOT UINT32_MAX
#define BODY(f) ((f) + PAGE_HDR)

/* slot entries */
#define SLOT_SIZE 24u
#define SLOTS_MAX (PAGE_BODY / SLOT_SIZE) /* 340 */
#define SE_ID 0
#define SE_NORM 8
#define SE_PLEN 12
#define SE_PPAGE 16
#define SE_POFF 20
#define SE_FLAGS 22
#define SF_PRESENT 1u
#define SF_LARGE 2u

/* header page body */
#define H_VERSION 0
#define H_DIM 4
#define H_VPP 8
#define H_PPV 12
#define H_SPG 16
#define H_GPAGES 20
#define H_N 24
#define H_PBYTES 32
#define H_OPEN 40
#define H_RESERVED 44
#define H_SIZE 48

/* heap pages */
#define HP_USED 0
#define HP_LIVE 4
#define HP_FIRST 8u
#define REC_HDR 16u
#define HEAP_QUARTER (PAGE_BODY / 4)           /* 2040 */
#define SMALL_MAX (PAGE_BODY - HP_FIRST - REC_HDR) /* 8136 */

/* overflow pages */
#define OV_NEXT 0
#define OV_BYTES 4
#define OV_OWNER 8
#define OV_DATA 16u
#define OV_CAP (PAGE_BODY - OV_DATA) /* 8144 */
#define OV_MAX_PAGES ((CAIRN_MAX_PAYLOAD + OV_CAP - 1) / OV_CAP)

/* heap pages one op may create at most (a large payload, plus two) */
#define OP_MAX_NEW_HEAP (OV_MAX_PAGES + 3)

struct store_op_page {
    uint8_t *frame;
    uint64_t old_lsn;
    uint32_t pno;
    uint16_t old_type;
    uint8_t space;
    bool created;
};

struct store_op_undo {
    uint8_t *ptr;
    uint32_t len;
    uint32_t at; /* offset of the before-image in op.bytes; UINT32_MAX: zeros */
};

struct store_op_drop {
    uint32_t pno;
    uint8_t space;
};

static inline uint32_t rec_size(uint32_t len) { return REC_HDR + CAIRN_ALIGN_UP(len, 8u); }
static inline float ldf(const uint8_t *p) {
    float f;
    memcpy(&f, p, 4);
    return f;
}

/* ---- id -> slot hash ------------------------------------------------------ */

static inline size_t hash_u64(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return (size_t)k;
}

static size_t hfind(const uint64_t *keys, const uint32_t *slots, size_t cap, uint64_t id) {
    if (cap == 0) return SIZE_MAX;
    size_t mask = cap - 1;
    for (size_t i = hash_u64(id) & mask;; i = (i + 1) & mask) {
        if (slots[i] == EMPTY_SLOT) return SIZE_MAX;
        if (keys[i] == id) return slots[i];
    }
}

size_t store_find(const struct store *s, uint64_t id) {
    return hfind(s->hkeys, s->hslots, s->hcap, id);
}

void store_prefetch(const struct store *s, uint64_t id) {
    if (s->hcap == 0) return;
    size_t i = hash_u64(id) & (s->hcap - 1);
    __builtin_prefetch(&s->hslots[i]);
    __builtin_prefetch(&s->hkeys[i]);
}

/* Position in the hash table of id (must be present). */
static size_t hpos(const struct store *s, uint64_t id) {
    size_t mask = s->hcap - 1;
    size_t i = hash_u64(id) & mask;
    while (s->hkeys[i] != id || s->hslots[i] == EMPTY_SLOT) i = (i + 1) & mask;
    return i;
}

static void hinsert_into(uint64_t *keys, uint32_t *slots, size_t cap, uint64_t id,
                         uint32_t slot) {
    size_t mask = cap - 1;
    size_t i = hash_u64(id) & mask;
    while (slots[i] != EMPTY_SLOT) i = (i + 1) & mask;
    keys[i] = id;
    slots[i] = slot;
}

static void hremove(struct store *s, uint64_t id) {
    size_t mask = s->hcap - 1;
    size_t i = hpos(s, id);
    /* backward-shift: pull later entries of the same run into the hole */
    size_t j = i;
    for (;;) {
        s->hslots[i] = EMPTY_SLOT;
        for (;;) {
            j = (j + 1) & mask;
            if (s->hslots[j] == EMPTY_SLOT) return;
            size_t home = hash_u64(s->hkeys[j]) & mask;
            /* entry at j may move to i iff home is not in (i, j] cyclically */
            bool stays = (i <= j) ? (i < home && home <= j) : (i < home || home <= j);
            if (!stays) break;
        }
        s->hkeys[i] = s->hkeys[j];
        s->hslots[i] = s->hslots[j];
        i = j;
    }
}

/* A table of a power-of-two capacity for n entries at load <= 0.75. */
static size_t hcap_for(size_t n) {
    size_t cap = 64;
    while (n * 4 > cap * 3) cap *= 2;
    return cap;
}

static cairn_status halloc(size_t cap, uint64_t **keys, uint32_t **slots) {
    *keys = malloc(cap * sizeof **keys);
    *slots = malloc(cap * sizeof **slots);
    if (!*keys || !*slots) {
        free(*keys);
        free(*slots);
        *keys = NULL;
        *slots = NULL;
        return cerr_set(CAIRN_ENOMEM, "could not allocate an id map of %zu entries", cap);
    }
    for (size_t i = 0; i < cap; i++) (*slots)[i] = EMPTY_SLOT;
    return CAIRN_OK;
}

static cairn_status hgrow(struct store *s, size_t ncap) {
    uint64_t *nk;
    uint32_t *ns;
    cairn_status st = halloc(ncap, &nk, &ns);
    if (st) return st;
    for (size_t i = 0; i < s->hcap; i++)
        if (s->hslots[i] != EMPTY_SLOT) hinsert_into(nk, ns, ncap, s->hkeys[i], s->hslots[i]);
    free(s->hkeys);
    free(s->hslots);
    s->hkeys = nk;
    s->hslots = ns;
    s->hcap = ncap;
    return CAIRN_OK;
}

/* ---- layout --------------------------------------------------------------- */

static void layout(uint32_t dim, uint32_t *vpp, uint32_t *ppv, uint32_t *spg,
                   uint32_t *gpages) {
    size_t vb = 4 * (size_t)dim;
    if (vb <= PAGE_BODY) {
        uint32_t v = (uint32_t)(PAGE_BODY / vb);
        if (v > SLOTS_MAX) v = SLOTS_MAX;
        *vpp = v;
        *ppv = 0;
        *spg = SLOTS_MAX / v * v;
        *gpages = 1 + *spg / v;
    } else {
        *vpp = 0;
        *ppv = (uint32_t)((vb + PAGE_BODY - 1) / PAGE_BODY);
        *spg = SLOTS_MAX;
        *gpages = 1 + SLOTS_MAX * *ppv;
    }
}

static inline uint32_t vbytes(const struct store *s) { return 4 * s->dim; }

/* Page number of the slot page of slot (valid slots only: range-checked
 * when the slot was added, and at load). */
static inline uint32_t slot_page(const struct store *s, size_t slot) {
    return (uint32_t)(1 + (uint64_t)(slot / s->spg) * s->gpages);
}
static inline uint32_t slot_off(const struct store *s, size_t slot) {
    return PAGE_HDR + (uint32_t)(slot % s->spg) * SLOT_SIZE;
}
/* Vector page of slot (the first of PPV when vectors span). */
static inline uint32_t vec_page(const struct store *s, size_t slot) {
    size_t j = slot % s->spg;
    return slot_page(s, slot) + 1 + (uint32_t)(s->vpp ? j / s->vpp : j * s->ppv);
}
static inline uint32_t vec_off(const struct store *s, size_t slot) {
    return s->vpp ? PAGE_HDR + (uint32_t)(slot % s->vpp) * vbytes(s) : PAGE_HDR;
}
/* Bytes of piece t of a spanning vector. */
static inline uint32_t piece_len(const struct store *s, uint32_t t) {
    uint32_t rest = vbytes(s) - t * PAGE_BODY;
    return rest < PAGE_BODY ? rest : PAGE_BODY;
}
/* true if slot may exist: all of its group's pages have numbers < UINT32_MAX. */
static inline bool slot_addressable(const struct store *s, size_t slot) {
    return (uint64_t)(slot / s->spg + 1) * s->gpages < UINT32_MAX;
}

static const uint8_t *slot_entry(const struct store *s, size_t slot) {
    return pager_read(&s->pg, PSPACE_GROUP, slot_page(s, slot)) + slot_off(s, slot);
}

static void hdr_image(const struct store *s, uint64_t n, uint64_t pbytes, uint32_t open,
                      uint8_t out[H_SIZE]) {
    memset(out, 0, H_SIZE);
    st32(out + H_VERSION, STORE_VERSION);
    st32(out + H_DIM, s->dim);
    st32(out + H_VPP, s->vpp);
    st32(out + H_PPV, s->ppv);
    st32(out + H_SPG, s->spg);
    st32(out + H_GPAGES, s->gpages);
    st64(out + H_N, n);
    st64(out + H_PBYTES, pbytes);
    st32(out + H_OPEN, open);
}

/* ---- lifecycle ------------------------------------------------------------ */

void store_prepare(struct store *s, uint32_t coll_id, uint32_t dim) {
    memset(s, 0, sizeof *s);
    s->coll_id = coll_id;
    s->dim = dim;
    layout(dim, &s->vpp, &s->ppv, &s->spg, &s->gpages);
    s->heap_open = NO_PAGE;
    pager_init(&s->pg, coll_id);
}

cairn_status store_init(struct store *s, uint32_t coll_id, uint32_t dim, uint64_t lsn) {
    store_prepare(s, coll_id, dim);
    uint8_t *f = pager_write(&s->pg, PSPACE_GROUP, 0, PT_COLL, lsn);
    if (!f) {
        pager_free(&s->pg);
        return cerr_wrap(CAIRN_ENOMEM, "could not create the header page of collection %u",
                         coll_id);
    }
    hdr_image(s, 0, 0, NO_PAGE, BODY(f));
    return CAIRN_OK;
}

static void cache_clear(struct store *s) {
    if (s->pjson)
        for (size_t i = 0; i < s->n; i++) json_decref(atomic_load(&s->pjson[i]));
}

void store_free(struct store *s) {
    if (!s) return;
    cache_clear(s);
    free((void *)s->pjson);
    free(s->hkeys);
    free(s->hslots);
    free(s->hfree);
    free(s->op.pages);
    free(s->op.undo);
    free(s->op.bytes);
    free(s->op.drops);
    pager_free(&s->pg);
    memset(s, 0, sizeof *s);
}

uint64_t store_bytes(const struct store *s) {
    return (uint64_t)s->n * (s->dim * sizeof(float) + sizeof(uint64_t)) + s->payload_bytes;
}

/* ---- the op: write set and undo log ---------------------------------------- */

static cairn_status grow_buf(void **p, size_t *cap, size_t need, size_t elem,
                             size_t first) {
    if (need <= *cap) return CAIRN_OK;
    size_t ncap = *cap ? *cap : first;
    while (ncap < need) ncap *= 2;
    void *n = realloc(*p, ncap * elem);
    if (!n) return cerr_set(CAIRN_ENOMEM, "out of memory for a point store change");
    *p = n;
    *cap = ncap;
    return CAIRN_OK;
}

/* The test seam (struct store.fault_in): true if this step must fail. */
static bool fault(struct store *s) {
    return s->fault_in && --s->fault_in == 0;
}

static cairn_status fault_status(struct store *s) {
    return cerr_set(CAIRN_ENOMEM, "collection %u: out of memory (injected)", s->coll_id);
}

static void op_begin(struct store *s, uint64_t lsn) {
    struct store_op *o = &s->op;
    o->lsn = lsn;
    o->npages = o->nundo = o->nbytes = o->ndrops = 0;
    o->heap_open = s->heap_open;
    o->heap_next = s->heap_next;
    o->hfree_n = s->hfree_n;
    o->hfree_lo = s->hfree_lo;
}

/* Logs the before-image of ptr[0..len) (was_zero: it is all zero). */
static cairn_status op_log(struct store *s, uint8_t *ptr, uint32_t len, bool was_zero) {
    struct store_op *o = &s->op;
    if (s->bulk) return CAIRN_OK; /* nothing is taken back in bulk mode */
    if (fault(s)) return fault_status(s);
    cairn_status st = grow_buf((void **)&o->undo, &o->capundo, o->nundo + 1, sizeof *o->undo, 64);
    if (!st && !was_zero) st = grow_buf((void **)&o->bytes, &o->capbytes, o->nbytes + len, 1, 4096);
    if (st) return st;
    struct store_op_undo *u = &o->undo[o->nundo++];
    u->ptr = ptr;
    u->len = len;
    if (was_zero) {
        u->at = UINT32_MAX;
    } else {
        u->at = (uint32_t)o->nbytes;
        memcpy(o->bytes + o->nbytes, ptr, len);
        o->nbytes += len;
    }
    return CAIRN_OK;
}

/* The writable frame of a page for this op: index into op.pages in *pi. */
static cairn_status op_frame(struct store *s, unsigned space, uint32_t pno, uint16_t type,
                             size_t *pi) {
    struct store_op *o = &s->op;
    for (size_t i = o->npages; i-- > 0;) {
        if (o->pages[i].pno == pno && o->pages[i].space == space) {
            *pi = i;
            return CAIRN_OK;
        }
    }
    cairn_status st = grow_buf((void **)&o->pages, &o->cappages, o->npages + 1, sizeof *o->pages, 16);
    if (st) return st;
    if (fault(s)) return fault_status(s);
    const uint8_t *old = pager_read(&s->pg, space, pno);
    struct store_op_page e = {
        .pno = pno,
        .space = (uint8_t)space,
        .created = old == NULL,
        .old_lsn = old ? page_lsn(old) : 0,
        .old_type = old ? page_type(old) : 0,
    };
    e.frame = pager_write(&s->pg, space, pno, type, o->lsn);
    if (!e.frame) return CAIRN_ENOMEM; /* the pager said why */
    *pi = o->npages;
    o->pages[o->npages++] = e;
    return CAIRN_OK;
}

/* Writes src (NULL: zeros) at frame offset off of op page pi. was_zero:
 * the bytes being replaced are all zero (undo zeroes them). */
static cairn_status op_put(struct store *s, size_t pi, uint32_t off, const void *src,
                           uint32_t len, bool was_zero) {
    struct store_op_page *pg = &s->op.pages[pi];
    if (!pg->created) {
        cairn_status st = op_log(s, pg->frame + off, len, was_zero);
        if (st) return st;
    }
    if (src)
        memmove(pg->frame + off, src, len);
    else
        memset(pg->frame + off, 0, len);
    return CAIRN_OK;
}

static cairn_status op_put32(struct store *s, size_t pi, uint32_t off, uint32_t v) {
    uint8_t b[4];
    st32(b, v);
    return op_put(s, pi, off, b, 4, false);
}

static cairn_status op_drop(struct store *s, unsigned space, uint32_t pno) {
    struct store_op *o = &s->op;
    if (fault(s)) return fault_status(s);
    cairn_status st = grow_buf((void **)&o->drops, &o->capdrops, o->ndrops + 1, sizeof *o->drops, 16);
    if (st) return st;
    o->drops[o->ndrops++] = (struct store_op_drop){.pno = pno, .space = (uint8_t)space};
    return CAIRN_OK;
}

static void op_abort(struct store *s) {
    struct store_op *o = &s->op;
    if (s->bulk) {
        /* no before-images: what the op changed stays, so the store is
         * inconsistent from here on (store_bulk_begin) */
        s->broken = true;
        o->npages = o->nundo = o->nbytes = o->ndrops = 0;
        return;
    }
    for (size_t i = o->nundo; i-- > 0;) {
        struct store_op_undo *u = &o->undo[i];
        if (u->at == UINT32_MAX)
            memset(u->ptr, 0, u->len);
        else
            memcpy(u->ptr, o->bytes + u->at, u->len);
    }
    for (size_t i = o->npages; i-- > 0;) {
        struct store_op_page *pg = &o->pages[i];
        if (pg->created) {
            pager_drop(&s->pg, pg->space, pg->pno);
        } else {
            st16(pg->frame + 4, pg->old_type);
            st64(pg->frame + 24, pg->old_lsn);
        }
    }
    s->heap_open = o->heap_open;
    s->heap_next = o->heap_next;
    s->hfree_n = o->hfree_n;
    s->hfree_lo = o->hfree_lo;
    o->npages = o->nundo = o->nbytes = o->ndrops = 0;
}

static void free_set(struct store *s, uint32_t pno) {
    s->hfree[pno / 64] |= (uint64_t)1 << (pno % 64);
    s->hfree_n++;
    if (pno / 64 < s->hfree_lo) s->hfree_lo = pno / 64;
}

/* Ends a successful op: drops the listed pages (cannot fail). */
static void op_commit(struct store *s) {
    struct store_op *o = &s->op;
    for (size_t i = 0; i < o->ndrops; i++) {
        pager_drop(&s->pg, o->drops[i].space, o->drops[i].pno);
        if (o->drops[i].space == PSPACE_HEAP) free_set(s, o->drops[i].pno);
    }
    o->npages = o->nundo = o->nbytes = o->ndrops = 0;
}

/* Room in the heap number bitmap for every number an op may take. */
static cairn_status reserve_heap_numbers(struct store *s) {
    size_t need = ((size_t)s->heap_next + OP_MAX_NEW_HEAP) / 64 + 1;
    if (need <= s->hfree_words) return CAIRN_OK;
    if (fault(s)) return fault_status(s);
    size_t ncap = s->hfree_words ? s->hfree_words : 16;
    while (ncap < need) ncap *= 2;
    uint64_t *n = realloc(s->hfree, ncap * sizeof *n);
    if (!n) return cerr_set(CAIRN_ENOMEM, "out of memory for the heap page map of collection %u",
                            s->coll_id);
    memset(n + s->hfree_words, 0, (ncap - s->hfree_words) * sizeof *n);
    s->hfree = n;
    s->hfree_words = ncap;
    return CAIRN_OK;
}

/* ---- heap ------------------------------------------------------------------- */

static inline uint32_t hp_used(const uint8_t *f) { return ld32(BODY(f) + HP_USED); }
static inline uint32_t hp_live(const uint8_t *f) { return ld32(BODY(f) + HP_LIVE); }
static inline const uint8_t *heap_read(const struct store *s, uint32_t pno) {
    return pager_read(&s->pg, PSPACE_HEAP, pno);
}

/* Takes the lowest free heap page number. */
static cairn_status heap_take(struct store *s, uint32_t *pno) {
    if (s->hfree_n) {
        size_t w = s->hfree_lo;
        while (!s->hfree[w]) w++;
        cairn_status st = op_log(s, (uint8_t *)&s->hfree[w], sizeof s->hfree[w], false);
        if (st) return st;
        uint64_t word = s->hfree[w];
        *pno = (uint32_t)(w * 64 + (unsigned)__builtin_ctzll(word));
        s->hfree[w] = word & (word - 1);
        s->hfree_n--;
        s->hfree_lo = (uint32_t)w;
        return CAIRN_OK;
    }
    if (s->heap_next >= UINT32_MAX - 1)
        return cerr_set(CAIRN_ENOSPC, "collection %u: the payload heap has no free page number",
                        s->coll_id);
    *pno = s->heap_next++;
    return CAIRN_OK;
}

/* A fresh, empty heap page (op index in *pi). */
static cairn_status heap_new_page(struct store *s, size_t *pi, uint32_t *pno) {
    cairn_status st = heap_take(s, pno);
    if (!st) st = op_frame(s, PSPACE_HEAP, *pno, PT_HEAP, pi);
    if (!st) st = op_put32(s, *pi, PAGE_HDR + HP_USED, HP_FIRST);
    return st;
}

/* Appends a record (header + text, or a whole record copied from another
 * page when rec != NULL) to op page pi, which has room. */
static cairn_status heap_append(struct store *s, size_t pi, uint64_t owner, const void *text,
                                uint32_t len, const uint8_t *rec, uint32_t *off) {
    const uint8_t *f = s->op.pages[pi].frame;
    uint32_t used = hp_used(f), live = hp_live(f), size = rec_size(len);
    cairn_status st;
    if (rec) {
        st = op_put(s, pi, PAGE_HDR + used, rec, size, true);
    } else {
        uint8_t h[REC_HDR] = {0};
        st64(h, owner);
        st32(h + 8, len);
        st = op_put(s, pi, PAGE_HDR + used, h, REC_HDR, true);
        if (!st) st = op_put(s, pi, PAGE_HDR + used + REC_HDR, text, len, true);
    }
    if (st) return st;
    uint8_t ul[8];
    st32(ul, used + size);
    st32(ul + 4, live + size);
    st = op_put(s, pi, PAGE_HDR + HP_USED, ul, 8, false);
    *off = used;
    return st;
}

/* Moves the live records of heap page src to op page dst (which has room
 * for them) and points their owners' slot entries at the copies. */
static cairn_status heap_move(struct store *s, uint32_t src, size_t dst) {
    const uint8_t *sf = heap_read(s, src);
    uint32_t used = hp_used(sf);
    uint32_t dst_pno = s->op.pages[dst].pno;
    for (uint32_t off = HP_FIRST; off < used;) {
        const uint8_t *rec = BODY(sf) + off;
        uint64_t owner = ld64(rec);
        uint32_t len = ld32(rec + 8);
        uint32_t size = rec_size(len);
        off += size;
        size_t slot = store_find(s, owner);
        if (slot == SIZE_MAX) continue;
        const uint8_t *e = slot_entry(s, slot);
        if (!ld32(e + SE_PLEN) || (ld16(e + SE_FLAGS) & SF_LARGE) ||
            ld32(e + SE_PPAGE) != src || ld16(e + SE_POFF) != off - size)
            continue; /* dead */
        const uint8_t *df = s->op.pages[dst].frame;
        if (hp_used(df) + size > PAGE_BODY)
            return cerr_set(CAIRN_ECORRUPT,
                            "collection %u: heap page %u: live records do not fit where "
                            "the live count says they do",
                            s->coll_id, src);
        uint32_t noff;
        cairn_status st = heap_append(s, dst, owner, NULL, len, rec, &noff);
        size_t spi;
        if (!st) st = op_frame(s, PSPACE_GROUP, slot_page(s, slot), PT_SLOT, &spi);
        if (st) return st;
        uint8_t ref[6];
        st32(ref, dst_pno);
        st16(ref + 4, (uint16_t)noff);
        st = op_put(s, spi, slot_off(s, slot) + SE_PPAGE, ref, 6, false);
        if (st) return st;
    }
    return CAIRN_OK;
}

/* Page src (not the open one) fell under a quarter live (live bytes):
 * moves its records to the open page or a fresh one, and drops it. */
static cairn_status heap_relocate(struct store *s, uint32_t src, uint32_t live) {
    uint32_t open = s->heap_open;
    const uint8_t *of = open != NO_PAGE ? heap_read(s, open) : NULL;
    size_t dst;
    cairn_status st;
    if (of && PAGE_BODY - hp_used(of) >= live) {
        st = op_frame(s, PSPACE_HEAP, open, PT_HEAP, &dst);
        if (st) return st;
    } else {
        uint32_t npno;
        st = heap_new_page(s, &dst, &npno);
        if (st) return st;
        if (of && hp_live(of) < HEAP_QUARTER) {
            st = heap_move(s, open, dst);
            if (!st) st = op_drop(s, PSPACE_HEAP, open);
            if (st) return st;
        }
        s->heap_open = npno;
    }
    st = heap_move(s, src, dst);
    if (!st) st = op_drop(s, PSPACE_HEAP, src);
    return st;
}

/* The payload referenced by slot entry e dies. */
static cairn_status heap_remove(struct store *s, const uint8_t *e) {
    uint32_t len = ld32(e + SE_PLEN), pno = ld32(e + SE_PPAGE);
    if (len == 0) return CAIRN_OK;
    cairn_status st;
    if (ld16(e + SE_FLAGS) & SF_LARGE) {
        for (uint32_t t = 0, pages = (len + OV_CAP - 1) / OV_CAP; t < pages; t++) {
            const uint8_t *f = heap_read(s, pno);
            if (!f)
                return cerr_set(CAIRN_ECORRUPT, "collection %u: heap page %u is missing",
                                s->coll_id, pno);
            st = op_drop(s, PSPACE_HEAP, pno);
            if (st) return st;
            pno = ld32(BODY(f) + OV_NEXT);
        }
        return CAIRN_OK;
    }
    size_t pi;
    st = op_frame(s, PSPACE_HEAP, pno, PT_HEAP, &pi);
    if (st) return st;
    uint32_t live = hp_live(s->op.pages[pi].frame) - rec_size(len);
    st = op_put32(s, pi, PAGE_HDR + HP_LIVE, live);
    if (st) return st;
    if (live == 0) {
        if (pno == s->heap_open) s->heap_open = NO_PAGE;
        return op_drop(s, PSPACE_HEAP, pno);
    }
    if (pno != s->heap_open && live < HEAP_QUARTER) return heap_relocate(s, pno, live);
    return CAIRN_OK;
}

/* Stores a payload for owner: its reference in *pno, *off, *flags. */
static cairn_status heap_insert(struct store *s, uint64_t owner, const char *text,
                                uint32_t len, uint32_t *pno, uint32_t *off, uint16_t *flags) {
    cairn_status st;
    *off = 0;
    if (len > SMALL_MAX) {
        uint32_t pages = (len + OV_CAP - 1) / OV_CAP, nums[OV_MAX_PAGES];
        for (uint32_t t = 0; t < pages; t++) {
            st = heap_take(s, &nums[t]);
            if (st) return st;
        }
        for (uint32_t t = 0; t < pages; t++) {
            size_t pi;
            uint32_t here = t + 1 < pages ? OV_CAP : len - t * OV_CAP;
            uint8_t h[OV_DATA];
            st32(h + OV_NEXT, t + 1 < pages ? nums[t + 1] : NO_PAGE);
            st32(h + OV_BYTES, here);
            st64(h + OV_OWNER, owner);
            st = op_frame(s, PSPACE_HEAP, nums[t], PT_OVFL, &pi);
            if (!st) st = op_put(s, pi, PAGE_HDR, h, OV_DATA, true);
            if (!st) st = op_put(s, pi, PAGE_HDR + OV_DATA, text + (size_t)t * OV_CAP, here, true);
            if (st) return st;
        }
        *pno = nums[0];
        *flags = SF_PRESENT | SF_LARGE;
        return CAIRN_OK;
    }
    *flags = SF_PRESENT;
    uint32_t size = rec_size(len), open = s->heap_open;
    const uint8_t *of = open != NO_PAGE ? heap_read(s, open) : NULL;
    size_t pi;
    if (of && PAGE_BODY - hp_used(of) >= size) {
        *pno = open;
        st = op_frame(s, PSPACE_HEAP, open, PT_HEAP, &pi);
    } else if (of && hp_live(of) < HEAP_QUARTER) {
        /* the open page is mostly dead: its records move to a fresh page */
        st = heap_new_page(s, &pi, pno);
        if (!st) st = heap_move(s, open, pi);
        if (!st) st = op_drop(s, PSPACE_HEAP, open);
        if (st) return st;
        s->heap_open = *pno;
        if (PAGE_BODY - hp_used(s->op.pages[pi].frame) < size)
            st = heap_new_page(s, &pi, pno); /* a page of its own, over 3/4 full */
    } else {
        st = heap_new_page(s, &pi, pno);
        if (!st) s->heap_open = *pno;
    }
    if (st) return st;
    return heap_append(s, pi, owner, text, len, NULL, off);
}

/* ---- mutations -------------------------------------------------------------- */

static cairn_status put_header(struct store *s, uint64_t n, uint64_t pbytes) {
    if (s->bulk) { /* store_bulk_end writes it from s->n and s->payload_bytes */
        s->hdr_due = true;
        if (s->op.lsn > s->hdr_lsn) s->hdr_lsn = s->op.lsn;
        return CAIRN_OK;
    }
    size_t pi;
    cairn_status st = op_frame(s, PSPACE_GROUP, 0, PT_COLL, &pi);
    if (st) return st;
    uint8_t h[H_SIZE];
    hdr_image(s, n, pbytes, s->heap_open, h);
    return op_put(s, pi, PAGE_HDR, h, H_SIZE, false);
}

/* Writes vector bytes v (NULL: zeros) of slot; was_zero as op_put. */
static cairn_status put_vector(struct store *s, size_t slot, const uint8_t *v, bool was_zero) {
    size_t pi;
    cairn_status st;
    if (s->vpp) {
        st = op_frame(s, PSPACE_GROUP, vec_page(s, slot), PT_VEC, &pi);
        if (!st) st = op_put(s, pi, vec_off(s, slot), v, vbytes(s), was_zero);
        return st;
    }
    uint32_t first = vec_page(s, slot);
    for (uint32_t t = 0; t < s->ppv; t++) {
        st = op_frame(s, PSPACE_GROUP, first + t, PT_VEC, &pi);
        if (!st)
            st = op_put(s, pi, PAGE_HDR, v ? v + (size_t)t * PAGE_BODY : NULL, piece_len(s, t),
                        was_zero);
        if (st) return st;
    }
    return CAIRN_OK;
}

/* Copies the vector of slot `from` over that of slot `to`. */
static cairn_status copy_vector(struct store *s, size_t from, size_t to) {
    if (s->vpp) {
        const uint8_t *f = pager_read(&s->pg, PSPACE_GROUP, vec_page(s, from));
        return put_vector(s, to, f + vec_off(s, from), false);
    }
    uint32_t a = vec_page(s, from), b = vec_page(s, to);
    for (uint32_t t = 0; t < s->ppv; t++) {
        size_t pi;
        const uint8_t *f = pager_read(&s->pg, PSPACE_GROUP, a + t);
        cairn_status st = op_frame(s, PSPACE_GROUP, b + t, PT_VEC, &pi);
        if (!st) st = op_put(s, pi, PAGE_HDR, BODY(f), piece_len(s, t), false);
        if (st) return st;
    }
    return CAIRN_OK;
}

static cairn_status reserve_cache(struct store *s, size_t n) {
    if (n <= s->pjcap) return CAIRN_OK;
    if (fault(s)) return fault_status(s);
    size_t ncap = s->pjcap ? s->pjcap * 2 : 64;
    while (ncap < n) ncap *= 2;
    json_t *_Atomic *pj = realloc((void *)s->pjson, ncap * sizeof *pj);
    if (!pj) return cerr_set(CAIRN_ENOMEM, "could not grow a point store to %zu points", ncap);
    s->pjson = pj;
    s->pjcap = ncap;
    return CAIRN_OK;
}

/* The payload of slot dies: its entry stops referencing it first (so that
 * heap_move sees the record as dead), then the heap lets it go. */
static cairn_status drop_payload(struct store *s, size_t slot, uint64_t *pbytes) {
    uint8_t e[SLOT_SIZE];
    memcpy(e, slot_entry(s, slot), SLOT_SIZE);
    if (ld32(e + SE_PLEN) == 0) return CAIRN_OK;
    *pbytes -= ld32(e + SE_PLEN);
    uint8_t none[SLOT_SIZE - SE_PLEN] = {0};
    st16(none + SE_FLAGS - SE_PLEN, SF_PRESENT);
    size_t spi;
    cairn_status st = op_frame(s, PSPACE_GROUP, slot_page(s, slot), PT_SLOT, &spi);
    if (!st) st = op_put(s, spi, slot_off(s, slot) + SE_PLEN, none, sizeof none, false);
    if (!st) st = heap_remove(s, e);
    return st;
}

static cairn_status upsert_pages(struct store *s, uint64_t id, size_t slot, bool fresh,
                                 const float *vec, float norm, const char *payload,
                                 uint32_t len, uint64_t *pbytes) {
    cairn_status st;
    size_t spi;
    uint8_t e[SLOT_SIZE] = {0};
    if (!fresh) {
        st = drop_payload(s, slot, pbytes);
        if (st) return st;
    }
    uint32_t ppage = 0, poff = 0;
    uint16_t flags = SF_PRESENT;
    if (len) {
        st = heap_insert(s, id, payload, len, &ppage, &poff, &flags);
        if (st) return st;
    }
    *pbytes += len;
    st64(e + SE_ID, id);
    memcpy(e + SE_NORM, &norm, 4);
    st32(e + SE_PLEN, len);
    st32(e + SE_PPAGE, ppage);
    st16(e + SE_POFF, (uint16_t)poff);
    st16(e + SE_FLAGS, flags);
    st = op_frame(s, PSPACE_GROUP, slot_page(s, slot), PT_SLOT, &spi);
    if (!st) st = op_put(s, spi, slot_off(s, slot), e, SLOT_SIZE, fresh);
    if (!st) st = put_vector(s, slot, (const uint8_t *)vec, fresh);
    if (!st) st = put_header(s, s->n + fresh, *pbytes);
    return st;
}

static cairn_status refuse_broken(const struct store *s) {
    return cerr_set(CAIRN_ECORRUPT,
                    "collection %u: an earlier change failed halfway in bulk mode; the point "
                    "store accepts no change",
                    s->coll_id);
}

cairn_status store_upsert(struct store *s, uint64_t id, const float *vec,
                          const char *payload, uint32_t payload_len, uint64_t lsn) {
    return store_upsert_norm(s, id, vec, vec_norm(vec, s->dim), payload, payload_len, lsn);
}

cairn_status store_upsert_norm(struct store *s, uint64_t id, const float *vec, float norm,
                               const char *payload, uint32_t payload_len, uint64_t lsn) {
    if (s->broken) return refuse_broken(s);
    if (payload_len > CAIRN_MAX_PAYLOAD)
        return cerr_set(CAIRN_EPAYLOAD, "payload is %u bytes, limit is %u", payload_len,
                        CAIRN_MAX_PAYLOAD);
    size_t slot = store_find(s, id);
    bool fresh = slot == SIZE_MAX;
    cairn_status st;
    if (fresh) {
        slot = s->n;
        if (slot >= EMPTY_SLOT - 1 || !slot_addressable(s, slot))
            return cerr_set(CAIRN_ENOSPC, "collection %u is full (%zu points of dimension %u)",
                            s->coll_id, s->n, s->dim);
        if ((s->n + 1) * 4 > s->hcap * 3) { /* load <= 0.75 */
            if (fault(s)) return fault_status(s);
            st = hgrow(s, s->hcap ? s->hcap * 2 : 64);
            if (st) return st;
        }
        st = reserve_cache(s, s->n + 1);
        if (st) return st;
    }
    st = reserve_heap_numbers(s);
    if (st) return st;

    op_begin(s, lsn);
    uint64_t pbytes = s->payload_bytes;
    st = upsert_pages(s, id, slot, fresh, vec, norm, payload, payload_len, &pbytes);
    if (st) {
        op_abort(s);
        return st;
    }
    op_commit(s);
    s->payload_bytes = pbytes;
    /* The payload cache is written by readers only under the read lock;
     * this holds the write lock, whose release orders these stores: a
     * relaxed access is enough (a seq_cst store is an xchg, which waited
     * for the op's page writes to drain: 0.1 s of a restore's apply). */
    if (fresh) {
        hinsert_into(s->hkeys, s->hslots, s->hcap, id, (uint32_t)slot);
        atomic_store_explicit(&s->pjson[slot], NULL, memory_order_relaxed);
        s->n++;
    } else {
        json_decref(atomic_load_explicit(&s->pjson[slot], memory_order_relaxed));
        atomic_store_explicit(&s->pjson[slot], NULL, memory_order_relaxed);
    }
    return CAIRN_OK;
}

/* Deletes slot: its payload dies, the last slot moves into it, and the
 * last slot's bytes are zeroed or its pages dropped. */
static cairn_status delete_pages(struct store *s, size_t slot, uint64_t *pbytes) {
    uint8_t e[SLOT_SIZE];
    cairn_status st = drop_payload(s, slot, pbytes);
    if (st) return st;
    size_t last = s->n - 1, pi;
    if (slot != last) {
        /* read after heap_remove: a record of the last point may have moved */
        memcpy(e, slot_entry(s, last), SLOT_SIZE);
        st = op_frame(s, PSPACE_GROUP, slot_page(s, slot), PT_SLOT, &pi);
        if (!st) st = op_put(s, pi, slot_off(s, slot), e, SLOT_SIZE, false);
        if (!st) st = copy_vector(s, last, slot);
        if (st) return st;
    }
    /* the last slot goes away */
    size_t j = last % s->spg;
    if (j == 0) {
        st = op_drop(s, PSPACE_GROUP, slot_page(s, last));
    } else {
        st = op_frame(s, PSPACE_GROUP, slot_page(s, last), PT_SLOT, &pi);
        if (!st) st = op_put(s, pi, slot_off(s, last), NULL, SLOT_SIZE, false);
    }
    if (st) return st;
    if (s->vpp && j % s->vpp != 0) {
        st = put_vector(s, last, NULL, false);
    } else {
        uint32_t first = vec_page(s, last);
        for (uint32_t t = 0; t < (s->vpp ? 1 : s->ppv) && !st; t++)
            st = op_drop(s, PSPACE_GROUP, first + t);
    }
    if (!st) st = put_header(s, last, *pbytes);
    return st;
}

cairn_status store_delete(struct store *s, uint64_t id, uint64_t lsn) {
    if (s->broken) return refuse_broken(s);
    size_t slot = store_find(s, id);
    if (slot == SIZE_MAX) return CAIRN_OK;
    cairn_status st = reserve_heap_numbers(s);
    if (st) return st;
    op_begin(s, lsn);
    uint64_t pbytes = s->payload_bytes;
    st = delete_pages(s, slot, &pbytes);
    if (st) {
        op_abort(s);
        return st;
    }
    op_commit(s);
    s->payload_bytes = pbytes;
    size_t last = s->n - 1;
    hremove(s, id);
    /* relaxed: see store_upsert_norm */
    json_decref(atomic_load_explicit(&s->pjson[slot], memory_order_relaxed));
    if (slot != last) {
        uint64_t moved = ld64(slot_entry(s, slot) + SE_ID);
        s->hslots[hpos(s, moved)] = (uint32_t)slot;
        atomic_store_explicit(&s->pjson[slot],
                              atomic_load_explicit(&s->pjson[last], memory_order_relaxed),
                              memory_order_relaxed);
    }
    atomic_store_explicit(&s->pjson[last], NULL, memory_order_relaxed);
    s->n = last;
    return CAIRN_OK;
}

void store_bulk_begin(struct store *s) {
    s->bulk = true;
    s->hdr_due = false;
    s->hdr_lsn = 0;
}

cairn_status store_bulk_end(struct store *s) {
    s->bulk = false;
    if (!s->hdr_due || s->broken) return CAIRN_OK; /* a broken store's failure was reported */
    s->hdr_due = false;
    op_begin(s, s->hdr_lsn);
    cairn_status st = put_header(s, s->n, s->payload_bytes);
    if (st) {
        op_abort(s);
        s->broken = true; /* the header stays behind the points */
        return st;
    }
    op_commit(s);
    return CAIRN_OK;
}

/* ---- reads ------------------------------------------------------------------ */

uint64_t store_get_id(const struct store *s, size_t slot) {
    return ld64(slot_entry(s, slot) + SE_ID);
}

void store_get_vector(const struct store *s, size_t slot, float *out) {
    if (s->vpp) {
        const uint8_t *f = pager_read(&s->pg, PSPACE_GROUP, vec_page(s, slot));
        memcpy(out, f + vec_off(s, slot), vbytes(s));
        return;
    }
    uint32_t first = vec_page(s, slot);
    for (uint32_t t = 0; t < s->ppv; t++) {
        const uint8_t *f = pager_read(&s->pg, PSPACE_GROUP, first + t);
        memcpy((uint8_t *)out + (size_t)t * PAGE_BODY, BODY(f), piece_len(s, t));
    }
}

/* Copies the len payload bytes referenced by slot entry e to out. */
static void payload_copy(const struct store *s, const uint8_t *e, char *out) {
    uint32_t len = ld32(e + SE_PLEN), pno = ld32(e + SE_PPAGE);
    if (!(ld16(e + SE_FLAGS) & SF_LARGE)) {
        memcpy(out, BODY(heap_read(s, pno)) + ld16(e + SE_POFF) + REC_HDR, len);
        return;
    }
    for (uint32_t done = 0; done < len;) {
        const uint8_t *f = heap_read(s, pno);
        uint32_t here = ld32(BODY(f) + OV_BYTES);
        memcpy(out + done, BODY(f) + OV_DATA, here);
        done += here;
        pno = ld32(BODY(f) + OV_NEXT);
    }
}

cairn_status store_get_payload(const struct store *s, size_t slot, char **out) {
    *out = NULL;
    const uint8_t *e = slot_entry(s, slot);
    uint32_t len = ld32(e + SE_PLEN);
    if (len == 0) return CAIRN_OK;
    char *text = malloc((size_t)len + 1);
    if (!text) return cerr_set(CAIRN_ENOMEM, "could not copy a payload of %u bytes", len);
    payload_copy(s, e, text);
    text[len] = 0;
    *out = text;
    return CAIRN_OK;
}

const json_t *store_payload_json(struct store *s, size_t slot, bool *failed) {
    json_t *j = atomic_load_explicit(&s->pjson[slot], memory_order_acquire);
    if (j) return j;
    const uint8_t *e = slot_entry(s, slot);
    uint32_t len = ld32(e + SE_PLEN);
    if (len == 0) return NULL;
    /* The text was validated at commit (common/json.h accepts only what
     * jansson accepts), so this parse fails only when memory runs out. */
    json_t *parsed = NULL;
    cairn_status st;
    if (!(ld16(e + SE_FLAGS) & SF_LARGE)) {
        const uint8_t *f = heap_read(s, ld32(e + SE_PPAGE));
        st = cjson_parse_object((const char *)BODY(f) + ld16(e + SE_POFF) + REC_HDR, len,
                                &parsed, NULL);
    } else {
        char *text = malloc(len);
        if (!text) {
            *failed = true;
            return NULL;
        }
        payload_copy(s, e, text);
        st = cjson_parse_object(text, len, &parsed, NULL);
        free(text);
    }
    if (st) {
        cerr_clear(); /* the caller says what failed */
        *failed = true;
        return NULL;
    }
    json_t *expected = NULL;
    if (!atomic_compare_exchange_strong_explicit(&s->pjson[slot], &expected, parsed,
                                                 memory_order_acq_rel,
                                                 memory_order_acquire)) {
        json_decref(parsed); /* another reader won */
        return expected;
    }
    return parsed;
}

/* Frames are scattered in memory, and hardware prefetchers stop at 4 KiB
 * boundaries: the scan starts fetching the head of each half of the next
 * vector page while it reads this one. A macro, not a function: GCC deletes
 * calls to a static function whose only effect is a prefetch. */
#define PREFETCH_PAGE(f)                                   \
    do {                                                   \
        const uint8_t *pf_ = (f);                          \
        if (pf_)                                           \
            for (unsigned l_ = 0; l_ < 4; l_++) {          \
                __builtin_prefetch(pf_ + PAGE_HDR + 64 * l_); \
                __builtin_prefetch(pf_ + 4096 + 64 * l_);  \
            }                                              \
    } while (0)

/* The vector page after vector page `vpage` of the group at slot g0 (cnt
 * slots used): the group's next one, or the next group's first; NO_PAGE at
 * the end. */
static inline uint32_t next_vec_page(const struct store *s, uint32_t sp, size_t vpage,
                                     size_t g0, size_t cnt) {
    if (vpage * s->vpp < cnt) return sp + 1 + (uint32_t)vpage;
    if (g0 + s->spg < s->n) return slot_page(s, g0 + s->spg) + 1;
    return NO_PAGE;
}

/* One candidate, exactly as flat_search() ranks it. */
static inline void consider(struct topk *t, cairn_metric m, const float *q, float qnorm,
                            const float *v, const uint8_t *e, uint32_t dim, size_t slot,
                            bool (*accept)(void *, size_t), void *ctx) {
    float vnorm = m == CAIRN_METRIC_COSINE ? ldf(e + SE_NORM) : 0.0f;
    float d = dist_metric(m, q, qnorm, v, vnorm, dim);
    if (isnan(d)) d = INFINITY;
    uint64_t id = ld64(e + SE_ID);
    if (t->n == t->k) {
        const cairn_hit *w = &t->hits[0];
        if (!(w->distance > d || (w->distance == d && w->id > id))) return;
    }
    if (accept && !accept(ctx, slot)) return;
    topk_push(t, id, d);
}

cairn_status store_search(const struct store *s, cairn_metric m, const float *query,
                          uint32_t k, bool (*accept)(void *ctx, size_t slot), void *ctx,
                          cairn_hit *hits, uint32_t *n_hits) {
    *n_hits = 0;
    if (k == 0 || s->n == 0) return CAIRN_OK;
    /* A spanning vector is gathered into one buffer so that the kernel
     * sums exactly as over a dense array (same bits as flat_search). */
    float *whole = NULL;
    if (!s->vpp && !(whole = malloc(vbytes(s))))
        return cerr_set(CAIRN_ENOMEM, "out of memory for a search of dimension %u", s->dim);
    struct topk t;
    topk_init(&t, hits, k);
    float qnorm = m == CAIRN_METRIC_COSINE ? vec_norm(query, s->dim) : 0.0f;
    for (size_t g0 = 0; g0 < s->n; g0 += s->spg) {
        uint32_t sp = slot_page(s, g0);
        const uint8_t *entries = BODY(pager_read(&s->pg, PSPACE_GROUP, sp));
        size_t cnt = CAIRN_MIN((size_t)s->spg, s->n - g0);
        if (s->vpp) {
            for (size_t j = 0; j < cnt;) {
                const uint8_t *vp = BODY(pager_read(&s->pg, PSPACE_GROUP, sp + 1 + (uint32_t)(j / s->vpp)));
                size_t end = CAIRN_MIN(cnt, (j / s->vpp + 1) * s->vpp);
                uint32_t np = next_vec_page(s, sp, j / s->vpp + 1, g0, cnt);
                if (np != NO_PAGE) PREFETCH_PAGE(pager_read(&s->pg, PSPACE_GROUP, np));
                for (; j < end; j++)
                    consider(&t, m, query, qnorm,
                             (const float *)(const void *)(vp + (j % s->vpp) * vbytes(s)),
                             entries + j * SLOT_SIZE, s->dim, g0 + j, accept, ctx);
            }
        } else {
            for (size_t j = 0; j < cnt; j++) {
                uint32_t first = sp + 1 + (uint32_t)j * s->ppv;
                if (j + 1 < cnt)
                    for (uint32_t p = 0; p < s->ppv; p++)
                        PREFETCH_PAGE(pager_read(&s->pg, PSPACE_GROUP, first + s->ppv + p));
                for (uint32_t p = 0; p < s->ppv; p++)
                    memcpy((uint8_t *)whole + (size_t)p * PAGE_BODY,
                           BODY(pager_read(&s->pg, PSPACE_GROUP, first + p)), piece_len(s, p));
                consider(&t, m, query, qnorm, whole, entries + j * SLOT_SIZE, s->dim, g0 + j,
                         accept, ctx);
            }
        }
    }
    free(whole);
    *n_hits = topk_finish(&t);
    return CAIRN_OK;
}

/* ---- load and check ---------------------------------------------------------- */

/*
 * One walker serves store_load (stops at the first problem) and store_check
 * (reports them all). It trusts nothing: every offset, length and page
 * reference is range-checked before use, chains are bounded by the payload
 * length, and a damaged header stops the walk (nothing else can be
 * located). Order: header; every group page (present exactly when a slot
 * uses it, of the right type); every heap page (record structure); every
 * slot (flags, unique id, finite vector and norm, payload reference); then
 * the heap totals (live counts, the quarter-live bound, unreferenced
 * overflow pages, the open page, the payload byte total).
 */
struct walk {
    const struct store *s;
    store_report_fn report;
    void *ctx;
    bool full;      /* store_check: also JSON and norms */
    bool stop;
    uint64_t problems;
    size_t n;       /* points the walk covers */
    uint32_t open;
    uint64_t hdr_pbytes;
    uint64_t *hkeys;
    uint32_t *hslots;
    size_t hcap;
    uint32_t nheap;
    uint32_t *hlive;  /* live bytes referenced, per heap page */
    uint8_t *starts;  /* record start bitmap: (PAGE_BODY / 8) bits per heap page */
    uint8_t *ovref;   /* references to each overflow page (saturating) */
    char *text;       /* payload scratch (full walk) */
    float *vec;       /* vector scratch */
};

#define START_BYTES (PAGE_BODY / 8 / 8 + 1)

static const char *space_name(unsigned space) {
    return space == PSPACE_GROUP ? "group" : "heap";
}

static void problem(struct walk *w, unsigned space, uint32_t pno, const char *fmt, ...)
    CAIRN_PRINTF(4, 5);
static void problem(struct walk *w, unsigned space, uint32_t pno, const char *fmt, ...) {
    if (w->stop) return; /* the reader asked for no more */
    char what[400], line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(line, sizeof line, "collection %u: %s page %u: %s", w->s->coll_id,
             space_name(space), pno, what);
    w->problems++;
    if (!w->report(w->ctx, line)) w->stop = true;
}

/* The page if present, of type `type` and with a matching header. */
static const uint8_t *walk_page(struct walk *w, unsigned space, uint32_t pno, uint16_t type,
                                const char *what) {
    const uint8_t *f = pager_read(&w->s->pg, space, pno);
    if (!f) {
        problem(w, space, pno, "missing (%s)", what);
        return NULL;
    }
    struct page_hdr h;
    page_hdr_get(f, &h);
    if (h.type != type) {
        problem(w, space, pno, "has type %u, %s needs type %u", h.type, what, type);
        return NULL;
    }
    if (h.coll_id != w->s->coll_id || h.space != space || h.page_no != pno) {
        problem(w, space, pno,
                "its header says collection %u, space %u, page %llu", h.coll_id, h.space,
                (unsigned long long)h.page_no);
        return NULL;
    }
    return f;
}

static bool all_zero(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i]) return false;
    return true;
}

static bool walk_header(struct walk *w, cairn_status *version_st) {
    const struct store *s = w->s;
    const uint8_t *f = walk_page(w, PSPACE_GROUP, 0, PT_COLL, "the collection header");
    if (!f) return false;
    const uint8_t *b = BODY(f);
    uint32_t version = ld32(b + H_VERSION);
    if (version != STORE_VERSION) {
        if (version > STORE_VERSION) *version_st = CAIRN_EVERSION;
        problem(w, PSPACE_GROUP, 0, "format version %u, this library reads %u", version,
                STORE_VERSION);
        return false;
    }
    if (ld32(b + H_DIM) != s->dim) {
        problem(w, PSPACE_GROUP, 0, "dimension %u, the catalog says %u", ld32(b + H_DIM), s->dim);
        return false;
    }
    if (ld32(b + H_VPP) != s->vpp || ld32(b + H_PPV) != s->ppv || ld32(b + H_SPG) != s->spg ||
        ld32(b + H_GPAGES) != s->gpages) {
        problem(w, PSPACE_GROUP, 0,
                "layout (VPP %u, PPV %u, SPG %u, G %u) is not that of dimension %u "
                "(%u, %u, %u, %u)",
                ld32(b + H_VPP), ld32(b + H_PPV), ld32(b + H_SPG), ld32(b + H_GPAGES), s->dim,
                s->vpp, s->ppv, s->spg, s->gpages);
        return false;
    }
    if (!all_zero(b + H_RESERVED, PAGE_BODY - H_RESERVED))
        problem(w, PSPACE_GROUP, 0, "reserved bytes are not zero");
    uint64_t n = ld64(b + H_N);
    /* the slots the present page numbers can hold */
    uint32_t count = pager_count(&s->pg, PSPACE_GROUP);
    uint64_t groups = count > 1 ? ((uint64_t)count - 1 + s->gpages - 1) / s->gpages : 0;
    uint64_t cap = groups * s->spg;
    if (cap >= EMPTY_SLOT) cap = EMPTY_SLOT - 1;
    if (n > cap) {
        problem(w, PSPACE_GROUP, 0,
                "counts %llu points, the group space has pages for at most %llu",
                (unsigned long long)n, (unsigned long long)cap);
        n = cap;
    }
    w->n = (size_t)n;
    w->hdr_pbytes = ld64(b + H_PBYTES);
    w->open = ld32(b + H_OPEN);
    return true;
}

/* Every group page: present exactly when a slot < n uses it. */
static void walk_group_pages(struct walk *w) {
    const struct store *s = w->s;
    uint32_t count = pager_count(&s->pg, PSPACE_GROUP);
    for (uint32_t p = 1; p < count && !w->stop; p++) {
        uint64_t g = (p - 1) / s->gpages, r = (p - 1) % s->gpages;
        uint64_t first; /* first slot using page p */
        uint16_t type = r == 0 ? PT_SLOT : PT_VEC;
        if (r == 0)
            first = g * s->spg;
        else if (s->vpp)
            first = g * s->spg + (r - 1) * s->vpp;
        else
            first = g * s->spg + (r - 1) / s->ppv;
        bool used = first < w->n;
        const uint8_t *f = pager_read(&s->pg, PSPACE_GROUP, p);
        if (!used) {
            if (f)
                problem(w, PSPACE_GROUP, p, "in use, but no slot uses it (%zu points)", w->n);
            continue;
        }
        char what[64];
        snprintf(what, sizeof what, "the %s page of slot %llu", r == 0 ? "slot" : "vector",
                 (unsigned long long)first);
        walk_page(w, PSPACE_GROUP, p, type, what);
    }
}

/* Every heap page's own structure. */
static void walk_heap_pages(struct walk *w) {
    const struct store *s = w->s;
    for (uint32_t p = 0; p < w->nheap && !w->stop; p++) {
        const uint8_t *f = pager_read(&s->pg, PSPACE_HEAP, p);
        if (!f) continue;
        uint16_t type = page_type(f);
        if (type != PT_HEAP && type != PT_OVFL) {
            problem(w, PSPACE_HEAP, p, "has type %u, not a heap (%u) or overflow (%u) page", type,
                    PT_HEAP, PT_OVFL);
            continue;
        }
        if (!walk_page(w, PSPACE_HEAP, p, type, "a payload page")) continue;
        if (type == PT_OVFL) continue; /* checked through its chain */
        const uint8_t *b = BODY(f);
        uint32_t used = ld32(b + HP_USED);
        if (used < HP_FIRST || used > PAGE_BODY || used % 8) {
            problem(w, PSPACE_HEAP, p, "used bytes %u out of range", used);
            continue;
        }
        uint8_t *st = w->starts + (size_t)p * START_BYTES;
        for (uint32_t off = HP_FIRST; off < used;) {
            uint32_t len = ld32(b + off + 8);
            if (used - off < REC_HDR || len == 0 || len > SMALL_MAX ||
                rec_size(len) > used - off || ld32(b + off + 12) != 0) {
                problem(w, PSPACE_HEAP, p, "malformed record at offset %u", off);
                break;
            }
            st[off / 8 / 8] |= (uint8_t)(1u << (off / 8 % 8));
            off += rec_size(len);
        }
        if (!all_zero(b + used, PAGE_BODY - used))
            problem(w, PSPACE_HEAP, p, "bytes after the used %u are not zero", used);
    }
}

/* The payload of slot (entry e, point id) against the heap. */
static void walk_payload(struct walk *w, size_t slot, uint64_t id, const uint8_t *e,
                         uint32_t sp) {
    const struct store *s = w->s;
    uint32_t len = ld32(e + SE_PLEN), pno = ld32(e + SE_PPAGE), off = ld16(e + SE_POFF);
    uint16_t flags = ld16(e + SE_FLAGS);
    if (len == 0) {
        if (pno || off || (flags & SF_LARGE))
            problem(w, PSPACE_GROUP, sp, "slot %zu (point %llu) has no payload but a reference",
                    slot, (unsigned long long)id);
        return;
    }
    if (len > CAIRN_MAX_PAYLOAD) {
        problem(w, PSPACE_GROUP, sp, "slot %zu (point %llu) has a payload of %u bytes", slot,
                (unsigned long long)id, len);
        return;
    }
    bool large = flags & SF_LARGE;
    if (large != (len > SMALL_MAX)) {
        problem(w, PSPACE_GROUP, sp,
                "slot %zu (point %llu): a payload of %u bytes must %sbe an overflow chain",
                slot, (unsigned long long)id, len, large ? "not " : "");
        return;
    }
    if (pno >= w->nheap || !pager_read(&s->pg, PSPACE_HEAP, pno)) {
        problem(w, PSPACE_GROUP, sp, "slot %zu (point %llu) references heap page %u, not in use",
                slot, (unsigned long long)id, pno);
        return;
    }
    char *text = w->text;
    if (!large) {
        const uint8_t *f = pager_read(&s->pg, PSPACE_HEAP, pno);
        if (page_type(f) != PT_HEAP || off % 8 || off >= PAGE_BODY ||
            !(w->starts[(size_t)pno * START_BYTES + off / 8 / 8] & (1u << (off / 8 % 8)))) {
            problem(w, PSPACE_GROUP, sp,
                    "slot %zu (point %llu) references heap page %u offset %u: no record there",
                    slot, (unsigned long long)id, pno, off);
            return;
        }
        const uint8_t *rec = BODY(f) + off;
        if (ld64(rec) != id || ld32(rec + 8) != len) {
            problem(w, PSPACE_HEAP, pno,
                    "record at offset %u belongs to point %llu (%u bytes), slot %zu says "
                    "point %llu (%u bytes)",
                    off, (unsigned long long)ld64(rec), ld32(rec + 8), slot,
                    (unsigned long long)id, len);
            return;
        }
        w->hlive[pno] += rec_size(len);
        if (text) memcpy(text, rec + REC_HDR, len);
    } else {
        if (off) {
            problem(w, PSPACE_GROUP, sp, "slot %zu (point %llu): a chain with offset %u", slot,
                    (unsigned long long)id, off);
            return;
        }
        uint32_t pages = (len + OV_CAP - 1) / OV_CAP;
        for (uint32_t t = 0; t < pages; t++) {
            const uint8_t *f = pno < w->nheap ? pager_read(&s->pg, PSPACE_HEAP, pno) : NULL;
            if (!f || page_type(f) != PT_OVFL) {
                problem(w, PSPACE_HEAP, pno,
                        "piece %u of the payload of point %llu: %s", t, (unsigned long long)id,
                        f ? "not an overflow page" : "not in use");
                return;
            }
            const uint8_t *b = BODY(f);
            uint32_t here = ld32(b + OV_BYTES), want = t + 1 < pages ? OV_CAP : len - t * OV_CAP;
            uint32_t next = ld32(b + OV_NEXT);
            if (w->ovref[pno]) {
                problem(w, PSPACE_HEAP, pno, "overflow page in two chains (point %llu)",
                        (unsigned long long)id);
                return;
            }
            w->ovref[pno] = 1;
            if (ld64(b + OV_OWNER) != id || here != want || (t + 1 == pages) != (next == NO_PAGE)) {
                problem(w, PSPACE_HEAP, pno,
                        "overflow page %u of point %llu: owner %llu, %u bytes, next %u",
                        t, (unsigned long long)id, (unsigned long long)ld64(b + OV_OWNER), here,
                        next);
                return;
            }
            if (!all_zero(b + OV_DATA + here, OV_CAP - here))
                problem(w, PSPACE_HEAP, pno, "bytes after the data are not zero");
            if (text) memcpy(text + (size_t)t * OV_CAP, b + OV_DATA, here);
            pno = next;
        }
    }
    if (text) {
        struct cjson_error je;
        if (!cjson_validate_object(text, len, &je))
            problem(w, PSPACE_GROUP, sp, "slot %zu (point %llu): payload is not a JSON object: "
                    "%s at offset %zu", slot, (unsigned long long)id, je.what, je.offset);
    }
}

static void walk_slots(struct walk *w) {
    const struct store *s = w->s;
    uint64_t pbytes = 0;
    for (size_t g0 = 0; g0 < w->n && !w->stop; g0 += s->spg) {
        uint32_t sp = slot_page(s, g0);
        const uint8_t *f = pager_read(&s->pg, PSPACE_GROUP, sp);
        if (!f || page_type(f) != PT_SLOT) continue; /* reported */
        size_t cnt = CAIRN_MIN((size_t)s->spg, w->n - g0);
        for (size_t j = 0; j < cnt && !w->stop; j++) {
            size_t slot = g0 + j;
            const uint8_t *e = BODY(f) + j * SLOT_SIZE;
            uint64_t id = ld64(e + SE_ID);
            uint16_t flags = ld16(e + SE_FLAGS);
            if (!(flags & SF_PRESENT) || (flags & ~(SF_PRESENT | SF_LARGE))) {
                problem(w, PSPACE_GROUP, sp, "slot %zu has flags 0x%x", slot, flags);
                continue;
            }
            size_t other = hfind(w->hkeys, w->hslots, w->hcap, id);
            if (other != SIZE_MAX) {
                problem(w, PSPACE_GROUP, sp, "slot %zu holds point %llu, as slot %zu does", slot,
                        (unsigned long long)id, other);
                continue;
            }
            hinsert_into(w->hkeys, w->hslots, w->hcap, id, (uint32_t)slot);
            float norm = ldf(e + SE_NORM);
            if (!isfinite(norm) || norm < 0)
                problem(w, PSPACE_GROUP, sp, "slot %zu (point %llu) has norm %g", slot,
                        (unsigned long long)id, (double)norm);
            /* the vector, if its pages are there (reported otherwise) */
            bool have = true;
            uint32_t vp = vec_page(s, slot);
            for (uint32_t t = 0; t < (s->vpp ? 1 : s->ppv); t++) {
                const uint8_t *v = pager_read(&s->pg, PSPACE_GROUP, vp + t);
                if (!v || page_type(v) != PT_VEC) {
                    have = false;
                    break;
                }
                if (s->vpp)
                    memcpy(w->vec, v + vec_off(s, slot), vbytes(s));
                else
                    memcpy((uint8_t *)w->vec + (size_t)t * PAGE_BODY, BODY(v), piece_len(s, t));
            }
            if (have) {
                for (uint32_t i = 0; i < s->dim; i++) {
                    if (!isfinite(w->vec[i])) {
                        problem(w, PSPACE_GROUP, vp + (s->vpp ? 0 : i * 4 / PAGE_BODY),
                                "vector of slot %zu (point %llu): element %u is not finite",
                                slot, (unsigned long long)id, i);
                        have = false;
                        break;
                    }
                }
            }
            if (have && w->full) {
                float want = vec_norm(w->vec, s->dim);
                if (fabsf(want - norm) > 1e-4f * (want > 1.0f ? want : 1.0f))
                    problem(w, PSPACE_GROUP, sp,
                            "slot %zu (point %llu) has norm %g, its vector %g", slot,
                            (unsigned long long)id, (double)norm, (double)want);
            }
            walk_payload(w, slot, id, e, sp);
            pbytes += ld32(e + SE_PLEN);
        }
        /* bytes of unused slots in the last group are zero */
        if (cnt < s->spg && !all_zero(BODY(f) + cnt * SLOT_SIZE, (s->spg - cnt) * SLOT_SIZE))
            problem(w, PSPACE_GROUP, sp, "entries of unused slots are not zero");
        if (cnt < s->spg && s->vpp && cnt % s->vpp) {
            uint32_t vp = vec_page(s, g0 + cnt);
            const uint8_t *v = pager_read(&s->pg, PSPACE_GROUP, vp);
            if (v && page_type(v) == PT_VEC &&
                !all_zero(v + vec_off(s, g0 + cnt), PAGE_SIZE - vec_off(s, g0 + cnt)))
                problem(w, PSPACE_GROUP, vp, "vectors of unused slots are not zero");
        }
    }
    if (!w->stop && pbytes != w->hdr_pbytes)
        problem(w, PSPACE_GROUP, 0, "payload bytes %llu, the points hold %llu",
                (unsigned long long)w->hdr_pbytes, (unsigned long long)pbytes);
}

static void walk_heap_totals(struct walk *w) {
    const struct store *s = w->s;
    if (w->open != NO_PAGE) {
        const uint8_t *f = w->open < w->nheap ? pager_read(&s->pg, PSPACE_HEAP, w->open) : NULL;
        if (!f || page_type(f) != PT_HEAP)
            problem(w, PSPACE_GROUP, 0, "the open heap page %u is %s", w->open,
                    f ? "not a heap page" : "not in use");
    }
    for (uint32_t p = 0; p < w->nheap && !w->stop; p++) {
        const uint8_t *f = pager_read(&s->pg, PSPACE_HEAP, p);
        if (!f) continue;
        if (page_type(f) == PT_OVFL) {
            if (!w->ovref[p]) problem(w, PSPACE_HEAP, p, "overflow page of no payload");
            continue;
        }
        if (page_type(f) != PT_HEAP) continue;
        uint32_t live = hp_live(f);
        if (live != w->hlive[p])
            problem(w, PSPACE_HEAP, p, "live bytes %u, the slots reference %u", live, w->hlive[p]);
        else if (live == 0)
            problem(w, PSPACE_HEAP, p, "holds no live record");
        else if (p != w->open && live < HEAP_QUARTER)
            problem(w, PSPACE_HEAP, p, "under a quarter live (%u bytes) and not the open page",
                    live);
    }
}

static void walk_free(struct walk *w) {
    free(w->hkeys);
    free(w->hslots);
    free(w->hlive);
    free(w->starts);
    free(w->ovref);
    free(w->text);
    free(w->vec);
}

/* Runs the walk; CAIRN_ENOMEM if it could not. *version_st: EVERSION if
 * the header is newer than this library. */
static cairn_status walk_run(struct walk *w, cairn_status *version_st) {
    const struct store *s = w->s;
    *version_st = CAIRN_OK;
    if (!walk_header(w, version_st)) return CAIRN_OK;
    w->hcap = hcap_for(w->n);
    w->nheap = pager_count(&s->pg, PSPACE_HEAP);
    size_t nh = w->nheap ? w->nheap : 1;
    if (halloc(w->hcap, &w->hkeys, &w->hslots) ||
        !(w->hlive = calloc(nh, sizeof *w->hlive)) ||
        !(w->starts = calloc(nh, START_BYTES)) || !(w->ovref = calloc(nh, 1)) ||
        !(w->vec = malloc(vbytes(s))) || (w->full && !(w->text = malloc(CAIRN_MAX_PAYLOAD))))
        return cerr_set(CAIRN_ENOMEM, "out of memory to check collection %u (%zu points)",
                        s->coll_id, w->n);
    walk_group_pages(w);
    if (!w->stop) walk_heap_pages(w);
    if (!w->stop) walk_slots(w);
    if (!w->stop) walk_heap_totals(w);
    return CAIRN_OK;
}

struct first_problem {
    char msg[512];
};

static bool keep_first(void *ctx, const char *line) {
    snprintf(((struct first_problem *)ctx)->msg, sizeof ((struct first_problem *)ctx)->msg,
             "%s", line);
    return false;
}

cairn_status store_load(struct store *s) {
    struct first_problem fp = {{0}};
    struct walk w = {.s = s, .report = keep_first, .ctx = &fp};
    cairn_status vst;
    cairn_status st = walk_run(&w, &vst);
    if (!st && w.problems)
        st = cerr_set(vst ? vst : CAIRN_ECORRUPT, "could not load the points of %s", fp.msg);
    uint32_t nheap = w.nheap;
    if (!st && nheap) {
        s->hfree_words = (size_t)nheap / 64 + 1;
        s->hfree = calloc(s->hfree_words, sizeof *s->hfree);
        if (!s->hfree) st = cerr_set(CAIRN_ENOMEM, "out of memory to load collection %u", s->coll_id);
    }
    if (!st && w.n) {
        s->pjcap = w.n;
        s->pjson = calloc(w.n, sizeof *s->pjson);
        if (!s->pjson) st = cerr_set(CAIRN_ENOMEM, "out of memory to load collection %u", s->coll_id);
    }
    if (st) {
        free(s->hfree);
        free((void *)s->pjson);
        s->hfree = NULL;
        s->pjson = NULL;
        s->hfree_words = s->pjcap = 0;
        walk_free(&w);
        return st;
    }
    for (uint32_t p = 0; p < nheap; p++)
        if (!pager_read(&s->pg, PSPACE_HEAP, p)) free_set(s, p);
    s->heap_next = nheap;
    s->heap_open = w.open;
    s->n = w.n;
    s->payload_bytes = w.hdr_pbytes;
    s->hkeys = w.hkeys;
    s->hslots = w.hslots;
    s->hcap = w.hcap;
    w.hkeys = NULL;
    w.hslots = NULL;
    walk_free(&w);
    return CAIRN_OK;
}

struct check_ctx {
    store_report_fn report;
    void *ctx;
    struct first_problem first;
    bool have_first;
};

static bool check_report(void *ctx, const char *line) {
    struct check_ctx *c = ctx;
    if (!c->have_first) {
        snprintf(c->first.msg, sizeof c->first.msg, "%s", line);
        c->have_first = true;
    }
    return c->report ? c->report(c->ctx, line) : true;
}

cairn_status store_check(const struct store *s, store_report_fn report, void *ctx,
                         uint64_t *problems) {
    struct check_ctx cc = {.report = report, .ctx = ctx};
    struct walk w = {.s = s, .report = check_report, .ctx = &cc, .full = true};
    cairn_status vst;
    cairn_status st = walk_run(&w, &vst);
    walk_free(&w);
    if (problems) *problems = w.problems;
    if (st) return st;
    if (w.problems)
        return cerr_set(vst ? vst : CAIRN_ECORRUPT, "%llu problems in the points of %s",
                        (unsigned long long)w.problems, cc.first.msg);
    return CAIRN_OK;
}
