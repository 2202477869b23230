/*
 * ckpt_int.h — what the checkpointer (ckpt.c), checkpoint pins (pin.c) and
 * the checker share: the superblock and the catalog chain of a checkpoint,
 * read from the files alone (no open database needed). Byte tables in
 * docs/format.md ("Superblock", "Catalog pages", "Pin files").
 */
#ifndef CAIRN_ENGINE_CKPT_INT_H
#define CAIRN_ENGINE_CKPT_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "cairn.h"
#include "common/io.h"
#include "engine/pager.h"
#include "engine/pfile.h"

#define SUPER_VERSION 1u
#define CAT_ENTRY 184u
#define CAT_PER_PAGE ((PAGE_BODY - 8u) / CAT_ENTRY)

/* One checkpoint, as its superblock slot records it. */
struct super {
    uint64_t gen, redo, db_id, last_txn, next_txn;
    int64_t time_us, last_commit_us;
    uint32_t timeline, next_coll, cat_head, ncolls;
};

void super_encode(uint8_t *page, const struct super *s, uint32_t slot);
/* 1: valid; 0: invalid (why in *why). -1: a newer format version
 * (CAIRN_EVERSION set). */
int super_decode(const uint8_t *page, uint32_t slot, struct super *s, const char **why);

/* Reads both slots of the superblock file at path: *best gets the valid
 * slot of the highest generation (gen 0: none valid), img (PAGE_SIZE, may
 * be NULL) its bytes; why and zero describe each slot for messages. A slot
 * of another database is CAIRN_ECORRUPT, a newer version CAIRN_EVERSION.
 * scratch: one aligned page. */
cairn_status super_read(cio *io, const char *path, uint64_t db_id, uint8_t *scratch,
                        struct super *best, uint8_t *img, const char *why[2], bool zero[2]);

/* One collection of a checkpoint's catalog. */
struct cat_entry {
    uint32_t id, dim;
    cairn_metric metric;
    char name[CAIRN_MAX_NAME + 1];
    uint32_t root[PSPACE_N], depth[PSPACE_N], n[PSPACE_N];
};

/* Called for entry k of catalog page phys; a nonzero status stops the walk. */
typedef cairn_status (*cat_entry_fn)(void *ctx, const struct cat_entry *e, uint32_t phys,
                                     uint32_t k);

/* Walks the catalog chain of checkpoint s in the catalog file cat: marks
 * each page (pfile_mark: PF_USED refuses a page seen twice), reads and
 * verifies it, decodes every entry (ids below s->next_coll, the count the
 * superblock gives) and calls fn. pages (room for cat_chain_max(s)
 * numbers) gets the chain in order, *npages its length. pg: one aligned
 * page of scratch. */
cairn_status cat_walk(struct pfile *cat, cio *io, const struct super *s, uint32_t mark,
                      uint8_t *pg, uint32_t *pages, size_t *npages, cat_entry_fn fn,
                      void *ctx);
static inline size_t cat_chain_max(const struct super *s)
{
    return (s->ncolls + CAT_PER_PAGE - 1) / CAT_PER_PAGE;
}

/* ---- pins (pin.c) ----------------------------------------------------------
 * The live pins of a database directory, read at the start of every
 * checkpoint and at open. */
struct pin_set {
    uint64_t min_gen;   /* oldest pinned generation; UINT64_MAX: none */
    uint64_t min_redo;  /* lowest redo LSN among them; UINT64_MAX: none */
    struct super *img;  /* the pinned checkpoints (superblock images) */
    size_t n;
};
/* Reads DB/pins under its directory lock; removes stale pins (their holder
 * is gone). A live pin file that cannot be read pins everything (min_gen
 * and min_redo 0) and is reported in the log. */
cairn_status pins_scan(const char *dbpath, uint64_t db_id, struct pin_set *out);
void pins_free(struct pin_set *p);

/* What a pin holds, for the backup source (bsrc.c); valid while the pin
 * lives. */
struct pin_view {
    const char *dbpath;
    const struct super *sb;  /* the pinned checkpoint */
    const uint8_t *img;      /* PAGE_SIZE: its superblock page, as in its slot */
    uint32_t slot;           /* the superblock slot it was read from */
    uint32_t seg_shift;      /* log2 of the WAL segment size (DB/meta) */
};
void pin_view(const cairn_pin *pin, struct pin_view *v);

#endif
