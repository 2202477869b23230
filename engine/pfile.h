/*
 * pfile.h — physical page files and the page map of the checkpointer.
 *
 * A page file (collections/<id>.pages, catalog.pages) is an array of
 * PAGE_SIZE physical pages. Physical page 0 is never used (0 means "none"
 * in every reference). Pages are written copy-on-write: a checkpoint never
 * overwrites a page of the last completed checkpoint (or of a pinned one);
 * it writes changed pages to free physical pages, and the pages they replace
 * become free once the new superblock is durable.
 *
 * Free-space bookkeeping, in memory, one word per physical page:
 *   PF_USED   part of the last completed checkpoint, or being written by
 *             the running one
 *   0         free
 *   g > 0     replaced by checkpoint g: still part of the images before g,
 *             so it may be reused only when no pin holds a generation < g
 * It is rebuilt at open from the maps of the current checkpoint (and of the
 * pinned ones).
 *
 * The map of a collection's page space (logical page -> physical page, page
 * LSN) is a radix tree of map pages, also copy-on-write:
 *   level 0  PT_MAP_LEAF   MAP_LEAF_N entries of {u32 physical, u32 0, u64 LSN}
 *   level 1+ PT_MAP_INNER  MAP_INNER_N u32 physical numbers of level-1 pages
 * The root is the one node of the top level; depth 1 means the root is a
 * leaf. A missing node (physical 0) maps nothing.
 */
#ifndef CAIRN_ENGINE_PFILE_H
#define CAIRN_ENGINE_PFILE_H

#include <stdbool.h>
#include <stdint.h>

#include "cairn.h"
#include "common/io.h"
#include "engine/pager.h"

#define PF_USED UINT32_MAX
#define PFILE_STAGE 256u /* pages staged before a batch of writes (2 MiB) */
#define PFILE_RUNS 16u   /* runs in one batch */
#define PFILE_READ_RUN 128u   /* physical pages one read may span (holes read through) */
#define PFILE_READ_BATCH 512u /* pages per read batch; a reader's buffer holds two */
#define MAP_LEAF_N (PAGE_BODY / 16u)  /* 510 */
#define MAP_INNER_N (PAGE_BODY / 4u)  /* 2040 */
#define MAP_MAX_DEPTH 3u

struct pfile {
    char *path;
    int fd;
    uint32_t coll_id;   /* in every page header; 0 for the catalog */
    uint32_t npages;    /* file size in pages */
    uint32_t *state;    /* per physical page: PF_USED, 0, or a generation */
    uint32_t cap;
    uint32_t hint;      /* no free page below this during a checkpoint */
    /* this checkpoint: pages allocated, pages to free on commit */
    uint32_t *alloc, *tofree;
    size_t nalloc, capalloc, ntofree, captofree;
    /* staged writes: up to PFILE_RUNS runs of consecutive physical pages,
     * written in one batch (one io_uring submission) when the stage fills */
    uint8_t *stage;     /* PFILE_STAGE pages, aligned; only during a checkpoint */
    uint32_t stage_n;   /* pages staged */
    uint32_t run_first[PFILE_RUNS], run_n[PFILE_RUNS];
    unsigned nruns;
    bool dirty;         /* written since the last sync */
};

struct pmap {
    uint32_t n;          /* logical pages covered */
    uint32_t cap;
    uint32_t *phys;      /* n: physical page of each logical page, 0 = none */
    uint64_t *lsn;       /* n: page LSN of what is on disk */
    uint32_t depth;      /* levels; 0 = empty map */
    uint32_t *node[MAP_MAX_DEPTH]; /* physical page of each node per level */
    uint32_t nnode[MAP_MAX_DEPTH];
    uint8_t *ndirty[MAP_MAX_DEPTH];
    /* undo log of this checkpoint: restores the map if it fails */
    struct pmap_undo {
        uint32_t level; /* 0..MAP_MAX_DEPTH-1: node; MAP_MAX_DEPTH: entry */
        uint32_t idx, phys;
        uint64_t lsn;
    } *undo;
    size_t nundo, capundo;
    uint32_t old_n, old_depth;
};

/* Opens (creating if `create`) a page file; O_DIRECT where the filesystem
 * takes it. The state of every page starts as free. */
cairn_status pfile_open(struct pfile *f, const char *path, uint32_t coll_id, bool create);
/* Opens an existing page file for reading only (another process copying a
 * pinned checkpoint). */
cairn_status pfile_open_ro(struct pfile *f, const char *path, uint32_t coll_id);
void pfile_close(struct pfile *f);
/* Marks a physical page as part of a checkpoint: mark PF_USED for the one
 * loaded (a page referenced twice is corrupt), or g for a pinned older
 * image (the page stays unreusable until no pin holds a generation below
 * g; an in-use page stays in use, and of two marks the higher one stays). */
cairn_status pfile_mark(struct pfile *f, uint32_t phys, uint32_t mark);
cairn_status pfile_mark_used(struct pfile *f, uint32_t phys);
/* Begins a checkpoint. */
void pfile_begin(struct pfile *f);
/* Writes a copy of `page` (sealed in the copy) to a fresh physical page;
 * *phys gets its number. A page replaced by generation g is reused only if
 * g <= min_pin, the oldest pinned generation (UINT64_MAX: no pin). */
cairn_status pfile_put(struct pfile *f, cio *c, uint64_t min_pin, const uint8_t *page,
                       uint32_t *phys);
/* The old physical page `phys` is replaced (free once this checkpoint is
 * durable). */
cairn_status pfile_retire(struct pfile *f, uint32_t phys);
/* Writes what is staged (no sync). */
cairn_status pfile_flush(struct pfile *f, cio *c);
/* Writes what is staged and fdatasyncs if anything was written. */
cairn_status pfile_sync(struct pfile *f, cio *c);
/* The checkpoint of generation gen is durable (ok) or failed (!ok). */
void pfile_end(struct pfile *f, uint32_t gen, bool ok);
/* Reads physical page phys into buf (PAGE_SIZE, aligned) and checks its
 * crc and header against what the reference expects (type 0: any point
 * page type). CAIRN_ECORRUPT names file and page. */
cairn_status pfile_read(struct pfile *f, cio *c, uint32_t phys, uint8_t *buf,
                        uint16_t type, uint32_t space, uint64_t page_no, uint64_t lsn);

/* A page to read from a page file, and what its header must say. */
struct page_ref {
    uint32_t phys;  /* physical page */
    uint32_t pno;   /* logical page (point pages), node index (map pages) */
    uint64_t lsn;   /* the page LSN its map records; UINT64_MAX: any */
    uint16_t type;  /* 0: any point page type */
    uint16_t space;
};
/* Gets each page read: verified (st CAIRN_OK), or NULL and why (st, with
 * the message set: not readable, outside or past the end of the file, or
 * failing page_verify). A nonzero return stops the walk and is returned. */
typedef cairn_status (*page_ref_fn)(void *ctx, const struct page_ref *r, const uint8_t *page,
                                    cairn_status st);
/* Reads refs[0..n) (sorted here by physical page) from the page file open
 * as fd (path, coll_id and npages: for verification and messages) in
 * physical order: runs of pages within PFILE_READ_RUN of each other, up to
 * PFILE_RUNS runs or PFILE_READ_BATCH pages per batch, two batches in
 * rotation so that the next is read (io_uring) while fn works on the
 * current one. buf: 2 * PFILE_READ_BATCH pages, aligned. The open, the
 * checker and the copy of a pinned checkpoint all read pages this way. */
cairn_status pfile_read_refs(cio *io, int fd, const char *path, uint32_t coll_id,
                             uint32_t npages, struct page_ref *refs, size_t n, uint8_t *buf,
                             page_ref_fn fn, void *ctx);

/* Levels of a map of n logical pages (0: empty). */
uint32_t pmap_depth_for(uint32_t n);

void pmap_init(struct pmap *m);
void pmap_free(struct pmap *m);
/* Checkpoint: records what the snapshot holds for logical page pno (frame
 * NULL = dropped); writes the page. */
cairn_status pmap_put_page(struct pmap *m, struct pfile *f, cio *c, uint64_t min_pin,
                           uint32_t pno, const uint8_t *frame);
/* Checkpoint: grows the map to n logical pages and writes every changed map
 * node (stamped with coll/space and lsn). */
cairn_status pmap_flush(struct pmap *m, struct pfile *f, cio *c, uint64_t min_pin,
                        uint32_t n, uint32_t space, uint64_t lsn, uint8_t *scratch);
/* Checkpoint end: keep (ok) or undo (!ok) this checkpoint's changes. */
void pmap_end(struct pmap *m, bool ok);
static inline uint32_t pmap_root(const struct pmap *m) {
    return m->depth ? m->node[m->depth - 1][0] : 0;
}
/* Open: reads the tree (root, depth, n) from f and fills the map; marks its
 * pages used in f. */
cairn_status pmap_load(struct pmap *m, struct pfile *f, cio *c, uint32_t root,
                       uint32_t depth, uint32_t n, uint32_t space, uint8_t *scratch);
/* The same, marking its pages with `mark` (pfile_mark) instead of PF_USED. */
cairn_status pmap_load_as(struct pmap *m, struct pfile *f, cio *c, uint32_t root,
                          uint32_t depth, uint32_t n, uint32_t space, uint8_t *scratch,
                          uint32_t mark);

#endif
