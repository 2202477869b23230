/*
 * bsrc.h — the backup source: a pinned checkpoint described file by file
 * and page by page, and its pages read and verified, for pitr/ (full and
 * incremental backups). cairn_pin_copy is built on the same walk, so the
 * copy and a backup hold exactly the same image.
 *
 * The image of a checkpoint is: DB/meta (bytes), the superblock file as a
 * copy writes it (bytes: the pinned slot, the other one zero), and page
 * files (catalog.pages, collections/<id>.pages) of which the image uses
 * some physical pages (the rest are holes in a copy). Writing every listed
 * page at its physical position (phys * PAGE_SIZE) into files of the
 * listed lengths, plus meta and superblock, gives a database directory
 * that opens to exactly the checkpoint's state once the WAL segment
 * holding its redo LSN is there too (cut at the redo LSN, as the copy
 * writes it; or any later bytes of the same log).
 *
 * Incremental backups: a page is the same as in an earlier image of the
 * same database iff the same file holds, at the same physical number, a
 * page with the same LSN, page space, logical page number and type
 * (pitr/backup.c compares all five): a page with LSN L is written by the
 * first checkpoint after L and a later change gives it a larger LSN, but
 * pages rewritten unchanged keep their LSN and may move, so two pages of
 * one LSN can trade physical places; space and page number tell them
 * apart. bsrc_read sorts the caller's refs array in place.
 * Map and catalog pages have no LSN in a map: their lsn is UINT64_MAX
 * (always taken); they are few.
 */
#ifndef CAIRN_ENGINE_BSRC_H
#define CAIRN_ENGINE_BSRC_H

#include <stddef.h>
#include <stdint.h>

#include "cairn.h"
#include "engine/pfile.h"

struct bsrc_file {
    char name[64];          /* relative to the database directory */
    uint32_t coll_id;       /* 0: the catalog */
    uint32_t npages;        /* length of the file in pages */
    struct page_ref *refs;  /* the image's pages in it, sorted by phys */
    size_t nrefs;
};

struct bsrc_coll {
    uint32_t id, dim;
    cairn_metric metric;
    char name[CAIRN_MAX_NAME + 1];
    uint64_t points;        /* live points in the image */
    size_t file;            /* index in files[] */
};

struct bsrc {
    cairn_pin_info info;    /* generation, redo LSN, time, txn, timeline, db id */
    int64_t last_commit_us; /* commit time of the last transaction in the image (0: none) */
    uint32_t seg_shift;     /* log2 of the WAL segment size */
    uint8_t *meta;          /* DB/meta */
    size_t meta_len;
    uint8_t *super;         /* the superblock file of a copy */
    size_t super_len;
    struct bsrc_file *files; /* [0] the catalog, then one per collection */
    size_t nfiles;
    struct bsrc_coll *colls;
    size_t ncolls;
    void *priv;             /* bsrc.c */
};

/* Describes the image pinned by pin (which must stay open until bsrc_free).
 * Reads the catalog and every map (verified); CAIRN_ECORRUPT naming file
 * and page on any damage. */
cairn_status bsrc_open(cairn_pin *pin, struct bsrc **out);

/* Reads pages refs[0..n) of files[file] (any subset of its refs, any
 * order; sorted here) and calls fn for each with the verified page (crc,
 * header, LSN: as pfile_read_refs); a page that fails verification stops
 * the read with CAIRN_ECORRUPT naming file and page. */
cairn_status bsrc_read(struct bsrc *b, size_t file, struct page_ref *refs, size_t n,
                       page_ref_fn fn, void *ctx);

void bsrc_free(struct bsrc *b);

#endif
