/*
 * pager.h — pages and the buffer pool of one collection.
 *
 * A page is PAGE_SIZE bytes: a 32-byte header, then PAGE_BODY bytes whose
 * layout belongs to the page's owner (engine/store.c for point pages, the
 * checkpointer for map and catalog pages). Byte tables: docs/format.md.
 *
 *   off size field
 *     0    4 crc32c of bytes 4..PAGE_SIZE-1 (set only when written to disk)
 *     4    2 type (enum page_type; 0 is never valid)
 *     6    2 flags (0; reserved)
 *     8    4 collection id (0 = catalog / superblock pages)
 *    12    4 space (point pages: PSPACE_*) or level (map pages)
 *    16    8 page number (logical, within its space)
 *    24    8 page LSN: the commit LSN of the last change folded into it
 *
 * The buffer pool of a collection holds every live page of its two page
 * spaces in memory, each in its own PAGE_SIZE-aligned frame (a search scans
 * every vector anyway; an evicting pool is future work, see
 * engine/README.md). A page is addressed by (space, logical page number);
 * where it lives on disk is the checkpointer's business (copy-on-write: a
 * changed page is written to a fresh physical page at each checkpoint).
 *
 * Dirty tracking and checkpoint snapshots. pager_write() marks a page
 * dirty. A checkpoint starts with pager_snap_begin(), called while no
 * transaction is half-applied: every dirty page is moved into the snapshot
 * (it is then clean again) and its frame is frozen: the snapshot keeps that
 * frame, and the next pager_write() of the page copies it first (copy on
 * write in memory). So the checkpointer reads the snapshot frames without a
 * lock while writers go on, and what it writes is exactly the state of the
 * snapshot's LSN. pager_snap_end() frees the frames only the snapshot held.
 *
 * Locking: the caller serializes. Writers (pager_write/pager_drop) and
 * pager_snap_begin/end hold the collection's write lock; readers
 * (pager_read) its read lock. pager_snap_page() may be called with no lock
 * between begin and end.
 */
#ifndef CAIRN_ENGINE_PAGER_H
#define CAIRN_ENGINE_PAGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn.h"
#include "common/util.h"

#define PAGE_SIZE 8192u
#define PAGE_HDR 32u
#define PAGE_BODY (PAGE_SIZE - PAGE_HDR)

enum page_type {
    PT_SUPER = 1,     /* superblock slot (superblock file) */
    PT_CATALOG = 2,   /* catalog page (catalog.pages) */
    PT_MAP_LEAF = 3,  /* map: logical -> physical page, page LSN */
    PT_MAP_INNER = 4, /* map: physical numbers of lower map pages */
    PT_COLL = 5,      /* a collection's header page (store) */
    PT_SLOT = 6,      /* point slots: id, norm, payload reference (store) */
    PT_VEC = 7,       /* vectors (store) */
    PT_HEAP = 8,      /* small payloads (store) */
    PT_OVFL = 9,      /* a piece of a large payload (store) */
    PT_FREE = 10,     /* an unused physical page (never read as data) */
    PT_MAX_ = 11
};

/* A collection has two logical page spaces, numbered from 0 each. */
enum { PSPACE_GROUP = 0, PSPACE_HEAP = 1, PSPACE_N = 2 };

struct page_hdr {
    uint32_t crc;
    uint16_t type;
    uint16_t flags;
    uint32_t coll_id;
    uint32_t space;
    uint64_t page_no;
    uint64_t lsn;
};

void page_hdr_get(const uint8_t *page, struct page_hdr *h);
/* Writes every header field except the crc. */
void page_hdr_put(uint8_t *page, const struct page_hdr *h);
/* Sets the crc of a page about to be written. */
void page_seal(uint8_t *page);
/* true if the crc matches and the type is known. */
bool page_crc_ok(const uint8_t *page);
/* Checks a page read from physical page `phys` of `file`: crc, then the
 * header against what its reference expects: type (0: any point page
 * type), collection, space, page number, LSN (UINT64_MAX: any).
 * CAIRN_ECORRUPT names file, physical page and what is wrong. */
cairn_status page_verify(const uint8_t *page, const char *file, uint32_t phys,
                         uint32_t coll_id, uint16_t type, uint32_t space,
                         uint64_t page_no, uint64_t lsn);
static inline uint64_t page_lsn(const uint8_t *page) { return ld64(page + 24); }
static inline uint16_t page_type(const uint8_t *page) { return ld16(page + 4); }

/* A frame: PAGE_SIZE bytes, PAGE_SIZE-aligned, zeroed; _raw leaves the
 * bytes as they are, for a caller that overwrites all of them. NULL on
 * ENOMEM. Frames come from 2 MiB chunks shared by every pager of the
 * process (engine/frame.c); any thread may free any frame. */
uint8_t *page_frame_alloc(void);
uint8_t *page_frame_alloc_raw(void);
void page_frame_free(uint8_t *f);
/* Frames handed out and not freed, and chunks mapped (for tests). */
void page_frame_stats(size_t *live, size_t *chunks);
/* Test seam: the n-th chunk mapping from now fails as mmap does when
 * memory runs out (0: none does). */
void page_frame_fail_map(unsigned n);

struct pdesc {
    uint8_t *frame; /* live contents; NULL = page not in use */
    uint8_t *snap;  /* frozen for the running checkpoint (may == frame) */
    uint8_t flags;  /* PD_* */
};

struct pspace {
    struct pdesc *pd;
    uint32_t n, cap; /* n: 1 + highest page number ever touched */
};

struct pager {
    uint32_t coll_id;
    struct pspace sp[PSPACE_N];
    uint64_t ndirty;
    uint64_t live_pages;
    /* snapshot (between snap_begin and snap_end) */
    struct snap_ref {
        uint32_t space, pno;
        const uint8_t *frame; /* frozen contents, NULL = dropped */
    } *snap;
    uint32_t snap_n[PSPACE_N]; /* pager_count() of each space at snap_begin */
    size_t nsnap, capsnap;
    bool in_snap;
};

void pager_init(struct pager *p, uint32_t coll_id);
void pager_free(struct pager *p);

/* The live frame of a page, or NULL if the page is not in use. */
const uint8_t *pager_read(const struct pager *p, unsigned space, uint32_t pno);
/* The frame of a page about to be changed by the change at `lsn`: created
 * zeroed (header set) if the page is not in use, copied first if a snapshot
 * holds it; marked dirty; its header gets type and lsn. NULL with a message
 * on ENOMEM (nothing changed). */
uint8_t *pager_write(struct pager *p, unsigned space, uint32_t pno, uint16_t type,
                     uint64_t lsn);
/* The page is no longer part of the store (freed at the next checkpoint). */
void pager_drop(struct pager *p, unsigned space, uint32_t pno);
/* 1 + the highest page number ever used in the space. */
static inline uint32_t pager_count(const struct pager *p, unsigned space) {
    return p->sp[space].n;
}
/* Installs a page read from disk at open (clean). Takes ownership of frame.
 * Fails (ENOMEM) without taking it. */
cairn_status pager_install(struct pager *p, unsigned space, uint32_t pno,
                           uint8_t *frame);

/* Dirty page list for a checkpoint (see the top of this file). */
cairn_status pager_snap_begin(struct pager *p);
/* The same for the dirty pages whose page LSN is below `below` only (a
 * dropped page counts as LSN 0); the others stay dirty. *newest (may be
 * NULL) gets the highest page LSN of every dirty page seen, moved or not
 * (0: none). For pre-writes (ckpt_prewrite). */
cairn_status pager_snap_begin_cold(struct pager *p, uint64_t below, uint64_t *newest);
/* The i-th snapshot page: its frame (NULL if the page was dropped). */
const uint8_t *pager_snap_page(const struct pager *p, size_t i, unsigned *space,
                               uint32_t *pno);
static inline size_t pager_snap_count(const struct pager *p) { return p->nsnap; }
/* ok = false: the checkpoint failed; the snapshot's pages become dirty
 * again (they still need writing). */
void pager_snap_end(struct pager *p, bool ok);

#endif
