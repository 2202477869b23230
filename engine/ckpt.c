/*
 * ckpt.c — checkpoints: fold the applied state into the copy-on-write page
 * store, publish it with a superblock, remove the WAL it makes unneeded;
 * and at open, load the newest checkpoint back.
 *
 * Files (byte tables in docs/format.md):
 *   DB/superblock            two PT_SUPER slots; checkpoint g goes to slot
 *                            g % 2, so the slot of the last completed one is
 *                            never overwritten
 *   DB/catalog.pages         the catalog: a chain of PT_CATALOG pages, one
 *                            entry per collection (name, dimension, metric,
 *                            map roots)
 *   DB/collections/<id>.pages every page of a collection plus its maps
 *
 * A checkpoint of generation g (one at a time, run_mu):
 *   1. snapshot: under commit_mu and the gate held exclusively (no unit
 *      half-applied, none appended), note the redo LSN R = end of the last
 *      applied unit, the counters, the catalog, and freeze every
 *      collection's dirty pages (pager_snap_begin: in-memory copy on
 *      write); then writers go on;
 *   2. the WAL up to R is made durable (already so in sync mode): a page
 *      never reaches disk before the WAL covering it;
 *   3. each frozen page is written to a free physical page (never one of
 *      checkpoint g-1, nor of a pinned one), then the map pages above it,
 *      then a new catalog chain; every touched file is fdatasynced (and the
 *      collections directory when a file was created);
 *   4. the superblock of g is written to slot g % 2 and fdatasynced: from
 *      here on an open finds g;
 *   5. the pages g replaced become free (for checkpoint g+1, unless a pin
 *      holds an older image); page files of collections dropped before R
 *      are deleted (unless pinned); WAL segments wholly below the redo LSN
 *      of checkpoint g-1 (and below the retention hook's LSN and every
 *      pinned redo LSN) are deleted: so an open that finds slot g damaged
 *      can still fall back to g-1 and replay.
 * The pins (pin.c) are read at the start of step 3, under the lock of the
 * pins directory, before any page is allocated.
 * A failure in 1-3 changes nothing on disk that an open would read: the
 * checkpoint is undone in memory (the frozen pages are dirty again) and
 * the next one retries. A failure in 4 may or may not have published g:
 * the checkpointer is then poisoned (no more checkpoints, no page reuse)
 * until the database is reopened, and commits go on in the WAL.
 *
 * Pre-writes (ckpt_prewrite, engine_int.h) begin step 3 before step 1:
 * they read the pins, then freeze (pager_snap_begin_cold) and write the
 * cold dirty pages of a collection at a time, as step 3 writes a
 * snapshot's, leaving the allocations and the replaced pages pending; the
 * next ckpt_run goes on with them (no pfile_begin, the same pins) and ends
 * them in its step 5 (or undoes them on failure). No superblock is
 * involved, so no barrier is needed: a page changed after its pre-write is
 * dirty again and written again by the checkpoint. Since pre-written pages
 * are clean in memory, a failure once one was written poisons the
 * checkpointer.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "common/io.h"
#include "common/log.h"
#include "common/util.h"
#include "engine/ckpt_int.h"
#include "engine/engine_int.h"
#include "engine/pfile.h"

#define DEFAULT_WAL_BYTES ((uint64_t)64 << 20)
#define DEFAULT_INTERVAL_S 300u
#define CKPT_MSG 512

/* Page store state of one collection, kept by the checkpointer (it
 * outlives a dropped collection until a checkpoint deletes its file). */
struct cdisk {
    uint32_t id;
    struct pfile pf;
    struct pmap map[PSPACE_N];
    bool in_snap; /* in the running checkpoint's catalog */
    bool pre;     /* pages of it pre-written (ckpt_prewrite) */
    uint64_t gone_at; /* first checkpoint without it (0: in the last one) */
};

/* One collection as the snapshot saw it. */
struct snap_coll {
    struct coll *c;
    uint32_t id, dim;
    cairn_metric metric;
    char name[CAIRN_MAX_NAME + 1];
    struct cdisk *d;
};

struct ckpt {
    pthread_mutex_t run_mu; /* one checkpoint at a time; first in the lock order */
    pthread_mutex_t mu;     /* thread wake-up state below */
    pthread_cond_t cv;
    pthread_t thr;
    bool started, stop, wake;
    uint64_t wal_bytes;
    uint32_t interval_s;

    /* under run_mu */
    cio *io;
    uint8_t *scratch;       /* one aligned page */
    char *super_path, *coll_dir, *cat_path;
    bool have_super_file, have_coll_dir;
    struct super cur;       /* last completed checkpoint (gen 0: none) */
    struct pfile cat;
    uint32_t *cat_pages;    /* physical pages of the current catalog chain */
    size_t ncat;
    struct cdisk **disks;
    size_t ndisks, capdisks;
    bool poisoned;
    cairn_status poison_st;
    char poison_msg[CKPT_MSG];

    /* pre-writes (ckpt_prewrite): step 3 of the next checkpoint begun;
     * the next ckpt_run goes on from there */
    bool pre;
    bool pre_created;       /* a page file created meanwhile */
    uint64_t pre_min_pin;   /* the pins read when it began */

    _Atomic uint64_t redo_lsn; /* of cur, for ckpt_note_wal */
    _Atomic bool requested;
};

/* ---- superblock ---------------------------------------------------------- */

void super_encode(uint8_t *page, const struct super *s, uint32_t slot)
{
    memset(page, 0, PAGE_SIZE);
    struct page_hdr h = {.type = PT_SUPER, .page_no = slot, .lsn = s->redo};
    page_hdr_put(page, &h);
    uint8_t *b = page + PAGE_HDR;
    st32(b + 0, SUPER_VERSION);
    st32(b + 4, PAGE_SIZE);
    st64(b + 8, s->db_id);
    st64(b + 16, s->gen);
    st64(b + 24, s->redo);
    st64(b + 32, (uint64_t)s->time_us);
    st64(b + 40, (uint64_t)s->last_commit_us);
    st64(b + 48, s->last_txn);
    st64(b + 56, s->next_txn);
    st32(b + 64, s->timeline);
    st32(b + 68, s->next_coll);
    st32(b + 72, s->cat_head);
    st32(b + 76, s->ncolls);
    page_seal(page);
}

int super_decode(const uint8_t *page, uint32_t slot, struct super *s, const char **why)
{
    struct page_hdr h;
    page_hdr_get(page, &h);
    if (!page_crc_ok(page) || h.type != PT_SUPER) {
        *why = "fails its checksum";
        return 0;
    }
    if (h.page_no != slot || h.coll_id || h.space || h.flags) {
        *why = "has a header for another slot";
        return 0;
    }
    const uint8_t *b = page + PAGE_HDR;
    if (ld32(b) > SUPER_VERSION) {
        cerr_set(CAIRN_EVERSION, "superblock slot %u has format version %u; this library "
                 "reads up to %u", slot, ld32(b), SUPER_VERSION);
        return -1;
    }
    if (ld32(b + 4) != PAGE_SIZE) {
        *why = "has another page size";
        return 0;
    }
    s->db_id = ld64(b + 8);
    s->gen = ld64(b + 16);
    s->redo = ld64(b + 24);
    s->time_us = (int64_t)ld64(b + 32);
    s->last_commit_us = (int64_t)ld64(b + 40);
    s->last_txn = ld64(b + 48);
    s->next_txn = ld64(b + 56);
    s->timeline = ld32(b + 64);
    s->next_coll = ld32(b + 68);
    s->cat_head = ld32(b + 72);
    s->ncolls = ld32(b + 76);
    if (s->gen == 0 || s->gen >= PF_USED || s->redo != h.lsn || s->timeline == 0 ||
        (s->ncolls == 0) != (s->cat_head == 0)) {
        *why = "has inconsistent fields";
        return 0;
    }
    return 1;
}

cairn_status super_read(cio *io, const char *path, uint64_t db_id, uint8_t *scratch,
                        struct super *best, uint8_t *img, const char *why[2], bool zero[2])
{
    memset(best, 0, sizeof *best);
    int fd = -1;
    cairn_status st = cfs_open(path, O_RDONLY, 0, &fd);
    if (st)
        return st;
    for (uint32_t slot = 0; slot < 2 && !st; slot++) {
        why[slot] = "is missing";
        zero[slot] = false;
        size_t got = 0;
        st = cio_read(io, fd, scratch, PAGE_SIZE, (uint64_t)slot * PAGE_SIZE, path, &got);
        if (st || got < PAGE_SIZE)
            continue;
        zero[slot] = true;
        for (size_t i = 0; i < PAGE_SIZE && zero[slot]; i++)
            zero[slot] = scratch[i] == 0;
        struct super s;
        int r = super_decode(scratch, slot, &s, &why[slot]);
        if (r < 0)
            st = CAIRN_EVERSION;
        else if (r > 0 && s.db_id != db_id)
            st = cerr_set(CAIRN_ECORRUPT, "superblock \"%s\" slot %" PRIu32
                          " belongs to database %016" PRIx64 ", not %016" PRIx64,
                          path, slot, s.db_id, db_id);
        else if (r > 0 && s.gen > best->gen) {
            *best = s;
            if (img)
                memcpy(img, scratch, PAGE_SIZE);
        }
    }
    close(fd);
    return st;
}

/* ---- collection page files ------------------------------------------------ */

static struct cdisk *disk_find(struct ckpt *ck, uint32_t id)
{
    for (size_t i = 0; i < ck->ndisks; i++)
        if (ck->disks[i]->id == id)
            return ck->disks[i];
    return NULL;
}

static void disk_free(struct cdisk *d)
{
    if (!d)
        return;
    pfile_close(&d->pf);
    for (unsigned s = 0; s < PSPACE_N; s++)
        pmap_free(&d->map[s]);
    free(d);
}

static void coll_file(const struct ckpt *ck, uint32_t id, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%" PRIu32 ".pages", ck->coll_dir, id);
}

static cairn_status ensure_coll_dir(struct ckpt *ck)
{
    if (ck->have_coll_dir)
        return CAIRN_OK;
    cairn_status st = cfs_mkdir_durable(ck->coll_dir, 0755);
    if (!st)
        ck->have_coll_dir = true;
    return st;
}

/* The disk state of collection id, opened (and its file created) if new;
 * *created says whether the collections directory needs an fsync. */
static cairn_status disk_get(struct ckpt *ck, uint32_t id, bool create,
                             struct cdisk **out, bool *created)
{
    struct cdisk *d = disk_find(ck, id);
    if (d) {
        *out = d;
        return CAIRN_OK;
    }
    cairn_status st = create ? ensure_coll_dir(ck) : CAIRN_OK;
    if (st)
        return st;
    if (ck->ndisks == ck->capdisks) {
        size_t ncap = ck->capdisks ? ck->capdisks * 2 : 8;
        struct cdisk **nd = realloc(ck->disks, ncap * sizeof *nd);
        if (!nd)
            return cerr_set(CAIRN_ENOMEM, "checkpoint: out of memory");
        ck->disks = nd;
        ck->capdisks = ncap;
    }
    d = calloc(1, sizeof *d);
    if (!d)
        return cerr_set(CAIRN_ENOMEM, "checkpoint: out of memory");
    d->id = id;
    char path[4096];
    coll_file(ck, id, path, sizeof path);
    st = pfile_open(&d->pf, path, id, create);
    if (st) {
        free(d);
        return st;
    }
    for (unsigned s = 0; s < PSPACE_N; s++)
        pmap_init(&d->map[s]);
    ck->disks[ck->ndisks++] = d;
    if (create)
        *created = true;
    *out = d;
    return CAIRN_OK;
}

static void disk_remove(struct ckpt *ck, size_t i)
{
    disk_free(ck->disks[i]);
    ck->disks[i] = ck->disks[--ck->ndisks];
}

/* ---- catalog pages --------------------------------------------------------- */

static void cat_entry_put(uint8_t *e, const struct snap_coll *s)
{
    memset(e, 0, CAT_ENTRY);
    size_t nl = strlen(s->name);
    st32(e + 0, s->id);
    st32(e + 4, s->dim);
    e[8] = (uint8_t)s->metric;
    e[9] = (uint8_t)nl;
    memcpy(e + 24, s->name, nl);
    for (unsigned sp = 0; sp < PSPACE_N; sp++) {
        const struct pmap *m = &s->d->map[sp];
        st32(e + 152 + 12 * sp, pmap_root(m));
        st32(e + 156 + 12 * sp, m->depth);
        st32(e + 160 + 12 * sp, m->n);
    }
}

static cairn_status cat_entry_get(const uint8_t *e, struct cat_entry *o, const char *file,
                                  uint32_t phys, uint32_t k)
{
    memset(o, 0, sizeof *o);
    o->id = ld32(e);
    o->dim = ld32(e + 4);
    o->metric = (cairn_metric)e[8];
    uint8_t nl = e[9];
    bool zero = true;
    for (unsigned i = 10; i < 24; i++)
        zero &= e[i] == 0;
    for (unsigned i = 24u + nl; i < 152; i++)
        zero &= e[i] == 0;
    for (unsigned i = 176; i < CAT_ENTRY; i++)
        zero &= e[i] == 0;
    if (o->id == 0 || o->dim == 0 || o->dim > CAIRN_MAX_DIM || nl == 0 ||
        nl > CAIRN_MAX_NAME || (o->metric != CAIRN_METRIC_L2 &&
                                o->metric != CAIRN_METRIC_COSINE &&
                                o->metric != CAIRN_METRIC_DOT) || !zero)
        return cerr_set(CAIRN_ECORRUPT,
                        "catalog \"%s\": page %" PRIu32 " entry %" PRIu32
                        " has invalid fields (id %" PRIu32 ", dimension %" PRIu32
                        ", metric %u, name length %u)",
                        file, phys, k, o->id, o->dim, (unsigned)o->metric, nl);
    memcpy(o->name, e + 24, nl);
    if (memchr(o->name, 0, nl) || cat_check_name(o->name, "collection"))
        return cerr_set(CAIRN_ECORRUPT,
                        "catalog \"%s\": page %" PRIu32 " entry %" PRIu32 " has an invalid name",
                        file, phys, k);
    for (unsigned sp = 0; sp < PSPACE_N; sp++) {
        o->root[sp] = ld32(e + 152 + 12 * sp);
        o->depth[sp] = ld32(e + 156 + 12 * sp);
        o->n[sp] = ld32(e + 160 + 12 * sp);
    }
    return CAIRN_OK;
}

cairn_status cat_walk(struct pfile *cat, cio *io, const struct super *s, uint32_t mark,
                      uint8_t *pg, uint32_t *pages, size_t *npages, cat_entry_fn fn,
                      void *ctx)
{
    size_t maxcat = cat_chain_max(s);
    uint32_t phys = s->cat_head;
    uint32_t seen = 0;
    cairn_status st = CAIRN_OK;
    *npages = 0;
    for (uint64_t pi = 0; phys && !st; pi++) {
        if (pi == maxcat)
            return cerr_set(CAIRN_ECORRUPT, "catalog \"%s\": the chain is longer than the "
                            "%zu pages %" PRIu32 " collections need (page %" PRIu32 ")",
                            cat->path, maxcat, s->ncolls, phys);
        if ((st = pfile_mark(cat, phys, mark)))
            return st;
        pages[(*npages)++] = phys;
        if ((st = pfile_read(cat, io, phys, pg, PT_CATALOG, 0, pi, s->redo)))
            return st;
        uint32_t next = ld32(pg + PAGE_HDR), cnt = ld32(pg + PAGE_HDR + 4);
        if (cnt == 0 || cnt > CAT_PER_PAGE || seen + cnt > s->ncolls)
            return cerr_set(CAIRN_ECORRUPT, "catalog \"%s\": page %" PRIu32 " holds %" PRIu32
                            " entries (expected %" PRIu32 " in all)",
                            cat->path, phys, cnt, s->ncolls);
        for (uint32_t k = 0; k < cnt && !st; k++) {
            struct cat_entry e;
            st = cat_entry_get(pg + PAGE_HDR + 8 + k * CAT_ENTRY, &e, cat->path, phys, k);
            if (!st && e.id >= s->next_coll)
                st = cerr_set(CAIRN_ECORRUPT, "catalog \"%s\": page %" PRIu32 " entry %"
                              PRIu32 " has collection id %" PRIu32 ", not below the next "
                              "id %" PRIu32, cat->path, phys, k, e.id, s->next_coll);
            if (!st)
                st = fn(ctx, &e, phys, k);
        }
        seen += cnt;
        phys = next;
    }
    if (!st && seen != s->ncolls)
        st = cerr_set(CAIRN_ECORRUPT, "catalog \"%s\" holds %" PRIu32 " collections, the "
                      "superblock says %" PRIu32, cat->path, seen, s->ncolls);
    return st;
}

/* Writes the catalog chain of the snapshot (last page first, so each page
 * can name the next) into *pages (in chain order). */
static cairn_status write_catalog(struct ckpt *ck, const struct snap_coll *sc, size_t n,
                                  uint64_t lsn, uint64_t min_pin, uint32_t **pages,
                                  size_t *npages)
{
    size_t np = (n + CAT_PER_PAGE - 1) / CAT_PER_PAGE;
    uint32_t *out = calloc(np ? np : 1, sizeof *out);
    if (!out)
        return cerr_set(CAIRN_ENOMEM, "checkpoint: out of memory");
    cairn_status st = CAIRN_OK;
    uint32_t next = 0;
    for (size_t pi = np; pi-- > 0;) {
        uint8_t *pg = ck->scratch;
        memset(pg, 0, PAGE_SIZE);
        struct page_hdr h = {.type = PT_CATALOG, .page_no = pi, .lsn = lsn};
        page_hdr_put(pg, &h);
        size_t lo = pi * CAT_PER_PAGE, cnt = CAIRN_MIN(CAT_PER_PAGE, n - lo);
        st32(pg + PAGE_HDR, next);
        st32(pg + PAGE_HDR + 4, (uint32_t)cnt);
        for (size_t k = 0; k < cnt; k++)
            cat_entry_put(pg + PAGE_HDR + 8 + k * CAT_ENTRY, &sc[lo + k]);
        if ((st = pfile_put(&ck->cat, ck->io, min_pin, pg, &out[pi])))
            break;
        next = out[pi];
    }
    if (st) {
        free(out);
        return st;
    }
    *pages = out;
    *npages = np;
    return CAIRN_OK;
}

/* ---- the checkpoint --------------------------------------------------------- */

static cairn_status poisoned_st(struct ckpt *ck)
{
    return cerr_set(ck->poison_st, "checkpoints are disabled until the database is reopened: %s",
                    ck->poison_msg);
}

/* Deletes WAL segments wholly below limit (never the one holding it). */
/* A pre-write failed, or a checkpoint failed after pre-writes: pages are
 * clean in memory that no disk image holds. Until the database is
 * reopened, no checkpoint runs (commits go on in the WAL). */
static void pre_poison(cairn_db *db, cairn_status st, const char *msg)
{
    struct ckpt *ck = db->ck;
    ck->poisoned = true;
    ck->poison_st = st;
    snprintf(ck->poison_msg, sizeof ck->poison_msg, "pre-writing pages failed: %.400s", msg);
    clog_error("database \"%s\": %s", db->path, ck->poison_msg);
}

static cairn_status remove_wal(cairn_db *db, uint64_t limit, uint64_t *removed)
{
    uint64_t *starts = NULL;
    size_t n = 0;
    cairn_status st = wal_seg_list(db->waldir, db->timeline, &starts, &n);
    if (st)
        return st;
    uint64_t seg = (uint64_t)1 << db->seg_shift;
    size_t k = 0;
    for (size_t i = 0; i < n && !st; i++) {
        if (starts[i] + seg > limit)
            break;
        char name[64];
        wal_seg_name(name, sizeof name, db->timeline, starts[i]);
        char *p = cairn_path_join(db->waldir, name);
        if (!p) {
            st = cerr_set(CAIRN_ENOMEM, "out of memory");
            break;
        }
        st = cfs_unlink(p);
        free(p);
        if (!st)
            k++;
    }
    free(starts);
    if (k && !st)
        st = cfs_fsync_dir(db->waldir);
    *removed = k;
    return st;
}

/* Step 3 for the frozen pages of one collection: each to a free physical
 * page, its map entry updated; *pages counts the pages written. */
static cairn_status write_snap(struct ckpt *ck, struct cdisk *d, const struct pager *pg,
                               uint64_t min_pin, uint64_t *pages)
{
    cairn_status st = CAIRN_OK;
    for (size_t k = 0; !st && k < pager_snap_count(pg); k++) {
        unsigned space;
        uint32_t pno;
        const uint8_t *fr = pager_snap_page(pg, k, &space, &pno);
        st = pmap_put_page(&d->map[space], &d->pf, ck->io, min_pin, pno, fr);
        *pages += fr != NULL;
    }
    return st;
}

static void snap_release(cairn_db *db, struct snap_coll *sc, size_t n, bool ok)
{
    for (size_t i = 0; i < n; i++) {
        struct coll *c = sc[i].c;
        pthread_rwlock_wrlock(&c->lock);
        pager_snap_end(&c->st.pg, ok);
        pthread_rwlock_unlock(&c->lock);
    }
    pthread_rwlock_wrlock(&db->cat_lock);
    for (size_t i = 0; i < n; i++) {
        struct coll *c = sc[i].c;
        c->ckpt_hold = false;
        if (c->dropped)
            cat_coll_free(c);
    }
    pthread_rwlock_unlock(&db->cat_lock);
}

cairn_status ckpt_run(cairn_db *db, cairn_checkpoint_info *info)
{
    struct ckpt *ck = db->ck;
    if (info)
        memset(info, 0, sizeof *info);
    pthread_mutex_lock(&ck->run_mu);
    atomic_store(&ck->requested, false);
    if (ck->poisoned) {
        cairn_status st = poisoned_st(ck);
        pthread_mutex_unlock(&ck->run_mu);
        return st;
    }
    if (ck->cur.gen + 1 >= PF_USED) {
        pthread_mutex_unlock(&ck->run_mu);
        return cerr_set(CAIRN_ENOSPC, "checkpoint: generation counter exhausted");
    }
    uint64_t t0 = cairn_mono_us();
    struct super ns = {0};
    struct snap_coll *sc = NULL;
    size_t nsc = 0;
    cairn_status st = CAIRN_OK;

    /* 1. snapshot. cat_lock exclusively: the holds are read by drops. */
    pthread_mutex_lock(&db->commit_mu);
    pthread_rwlock_wrlock(&db->gate);
    pthread_rwlock_wrlock(&db->cat_lock);
    /* memory that is not a state of the log must never reach the pages */
    st = db_usable(db);
    ns.gen = ck->cur.gen + 1;
    ns.redo = db->applied_end;
    ns.db_id = db->db_id;
    ns.last_txn = db->applied_txn;
    ns.next_txn = atomic_load(&db->next_txn_id);
    ns.time_us = cairn_now_us();
    ns.last_commit_us = db->last_commit_us;
    ns.timeline = db->timeline;
    ns.next_coll = db->next_coll_id;
    ns.ncolls = (uint32_t)db->ncolls;
    sc = calloc(db->ncolls ? db->ncolls : 1, sizeof *sc);
    if (!sc)
        st = cerr_set(CAIRN_ENOMEM, "checkpoint: out of memory");
    for (size_t i = 0; !st && i < db->ncolls; i++) {
        struct coll *c = db->colls[i];
        st = pager_snap_begin(&c->st.pg);
        if (st)
            break;
        c->ckpt_hold = true;
        sc[nsc++] = (struct snap_coll){.c = c, .id = c->id, .dim = c->dim, .metric = c->metric};
        memcpy(sc[i].name, c->name, sizeof sc[i].name);
    }
    pthread_rwlock_unlock(&db->cat_lock);
    pthread_rwlock_unlock(&db->gate);
    pthread_mutex_unlock(&db->commit_mu);
    if (st) {
        snap_release(db, sc, nsc, false);
        free(sc);
        pthread_mutex_unlock(&ck->run_mu);
        return st;
    }

    /* 2. the WAL covering the snapshot is durable before any page */
    if (db->opts.durability != CAIRN_DURABILITY_SYNC)
        st = wal_writer_flush(db->wal);

    /* 3. pages, maps, catalog; then sync. The pins are read before the
     * first page is allocated (pin.c says why that is enough). */
    struct pin_set pins = {.min_gen = UINT64_MAX, .min_redo = UINT64_MAX};
    if (!st)
        st = pins_scan(db->path, db->db_id, &pins);
    pins_free(&pins);
    uint64_t min_pin = pins.min_gen;
    uint64_t pages = 0;
    bool created = false;
    uint32_t *cat_pages = NULL;
    size_t ncat = 0;
    if (ck->pre) {
        /* go on from the pre-writes: their pages are allocated already */
        if (ck->pre_min_pin < min_pin)
            min_pin = ck->pre_min_pin;
        created = ck->pre_created;
    }
    for (size_t i = 0; i < ck->ndisks; i++) {
        ck->disks[i]->in_snap = false;
        if (!ck->pre)
            pfile_begin(&ck->disks[i]->pf);
    }
    pfile_begin(&ck->cat);
    for (size_t i = 0; !st && i < nsc; i++) {
        st = disk_get(ck, sc[i].id, true, &sc[i].d, &created);
        if (st)
            break;
        struct cdisk *d = sc[i].d;
        d->in_snap = true;
        struct pager *pg = &sc[i].c->st.pg;
        st = write_snap(ck, d, pg, min_pin, &pages);
        for (unsigned s = 0; !st && s < PSPACE_N; s++) {
            size_t before = d->pf.nalloc;
            st = pmap_flush(&d->map[s], &d->pf, ck->io, min_pin, pg->snap_n[s], s, ns.redo,
                            ck->scratch);
            pages += d->pf.nalloc - before;
        }
    }
    if (!st)
        st = write_catalog(ck, sc, nsc, ns.redo, min_pin, &cat_pages, &ncat);
    if (!st) {
        pages += ncat;
        ns.cat_head = ncat ? cat_pages[0] : 0;
        for (size_t i = 0; i < ck->ncat && !st; i++)
            st = pfile_retire(&ck->cat, ck->cat_pages[i]);
    }
    for (size_t i = 0; !st && i < nsc; i++)
        st = pfile_sync(&sc[i].d->pf, ck->io);
    if (!st)
        st = pfile_sync(&ck->cat, ck->io);
    if (!st && created)
        st = cfs_fsync_dir(ck->coll_dir);
    if (!st && !ck->have_super_file) {
        st = cfs_create_zeroed(ck->io, ck->super_path, 2 * (uint64_t)PAGE_SIZE, NULL, 0);
        if (!st)
            ck->have_super_file = true;
    }
    if (st) {
        char msg[CKPT_MSG];
        snprintf(msg, sizeof msg, "%s", cairn_last_error());
        for (size_t i = 0; i < ck->ndisks; i++) {
            struct cdisk *d = ck->disks[i];
            if (!d->in_snap && !d->pre)
                continue;
            d->pre = false;
            pfile_end(&d->pf, 0, false);
            for (unsigned s = 0; s < PSPACE_N; s++)
                pmap_end(&d->map[s], false);
        }
        pfile_end(&ck->cat, 0, false);
        free(cat_pages);
        snap_release(db, sc, nsc, false);
        if (ck->pre) {
            /* the pre-written pages are clean in memory and now not on
             * disk: no checkpoint may be published from this memory */
            ck->pre = false;
            pre_poison(db, st, msg);
        }
        free(sc);
        pthread_mutex_unlock(&ck->run_mu);
        return cerr_set(st, "checkpoint %" PRIu64 " of \"%s\" failed (nothing published): %s",
                        ns.gen, db->path, msg);
    }

    /* 4. publish */
    {
        uint32_t slot = (uint32_t)(ns.gen % 2);
        super_encode(ck->scratch, &ns, slot);
        int fd = -1;
        st = cfs_open(ck->super_path, O_RDWR, 0, &fd);
        if (!st) {
            st = cio_write_sync(ck->io, fd, ck->scratch, PAGE_SIZE, (uint64_t)slot * PAGE_SIZE,
                                ck->super_path);
            close(fd);
        }
        if (st) {
            ck->poisoned = true;
            ck->pre = false;
            ck->poison_st = st;
            snprintf(ck->poison_msg, sizeof ck->poison_msg,
                     "writing superblock %" PRIu64 " failed: %s", ns.gen, cairn_last_error());
            clog_error("database \"%s\": %s", db->path, ck->poison_msg);
            free(cat_pages);
            snap_release(db, sc, nsc, true);
            free(sc);
            pthread_mutex_unlock(&ck->run_mu);
            return cerr_set(st, "checkpoint %" PRIu64 " of \"%s\": %s", ns.gen, db->path,
                            ck->poison_msg);
        }
    }

    /* 5. g is the checkpoint now */
    for (size_t i = 0; i < ck->ndisks; i++) {
        struct cdisk *d = ck->disks[i];
        if (!d->in_snap && !d->pre)
            continue;
        d->pre = false;
        pfile_end(&d->pf, (uint32_t)ns.gen, true);
        for (unsigned s = 0; s < PSPACE_N; s++)
            pmap_end(&d->map[s], true);
    }
    pfile_end(&ck->cat, (uint32_t)ns.gen, true);
    ck->pre = false;
    free(ck->cat_pages);
    ck->cat_pages = cat_pages;
    ck->ncat = ncat;
    /* WAL is kept from the previous checkpoint's redo LSN, so that an open
     * that finds this superblock slot damaged can fall back to the other
     * one (whose pages this checkpoint did not overwrite). */
    uint64_t limit = ck->cur.gen ? ck->cur.redo : 0;
    ck->cur = ns;
    atomic_store(&ck->redo_lsn, ns.redo);
    snap_release(db, sc, nsc, true);
    free(sc);

    /* Page files of collections no longer in the catalog: deleted one
     * checkpoint later (the fallback to the other superblock slot may need
     * them), and not while a pin holds an image that has them. */
    bool unlinked = false;
    for (size_t i = 0; i < ck->ndisks;) {
        struct cdisk *d = ck->disks[i];
        if (d->in_snap || !d->gone_at || d->gone_at == ns.gen || min_pin < d->gone_at) {
            if (!d->in_snap && !d->gone_at)
                d->gone_at = ns.gen;
            i++;
            continue;
        }
        char path[4096];
        coll_file(ck, d->id, path, sizeof path);
        disk_remove(ck, i);
        cairn_status u = cfs_unlink(path);
        if (u && u != CAIRN_ENOTFOUND)
            clog_warn("checkpoint %" PRIu64 ": %s", ns.gen, cairn_last_error());
        unlinked = true;
    }
    if (unlinked && cfs_fsync_dir(ck->coll_dir))
        clog_warn("checkpoint %" PRIu64 ": %s", ns.gen, cairn_last_error());

    if (pins.min_redo < limit)
        limit = pins.min_redo;
    if (db->opts.wal_retain) {
        uint64_t keep = db->opts.wal_retain(db->opts.wal_retain_ctx);
        if (keep < limit)
            limit = keep;
    }
    uint64_t removed = 0;
    if (remove_wal(db, limit, &removed))
        clog_warn("checkpoint %" PRIu64 ": could not remove old WAL: %s", ns.gen,
                  cairn_last_error());
    uint64_t dur = cairn_mono_us() - t0;
    clog_info("database \"%s\": checkpoint %" PRIu64 " at redo LSN %" PRIu64 ": %" PRIu64
              " pages in %" PRIu64 " us, %" PRIu64 " WAL segment(s) removed",
              db->path, ns.gen, ns.redo, pages, dur, removed);
    if (info) {
        info->generation = ns.gen;
        info->redo_lsn = ns.redo;
        info->time_us = ns.time_us;
        info->last_txn_id = ns.last_txn;
        info->timeline = ns.timeline;
        info->pages_written = pages;
        info->wal_segments_removed = removed;
        info->duration_us = dur;
    }
    pthread_mutex_unlock(&ck->run_mu);
    return CAIRN_OK;
}

/* ---- pre-writes ---------------------------------------------------------------- */

cairn_status ckpt_prewrite(cairn_db *db, uint64_t cold_below, size_t min_dirty,
                           uint64_t *newest, uint64_t *pages)
{
    struct ckpt *ck = db->ck;
    *newest = 0;
    *pages = 0;
    pthread_mutex_lock(&ck->run_mu);
    if (ck->poisoned) {
        cairn_status st = poisoned_st(ck);
        pthread_mutex_unlock(&ck->run_mu);
        return st;
    }
    cairn_status st = CAIRN_OK;
    if (!ck->pre) {
        /* step 3 begins: pins first, as in ckpt_run */
        struct pin_set pins = {.min_gen = UINT64_MAX, .min_redo = UINT64_MAX};
        st = pins_scan(db->path, db->db_id, &pins);
        pins_free(&pins);
        if (st) {
            pthread_mutex_unlock(&ck->run_mu);
            return st;
        }
        ck->pre_min_pin = pins.min_gen;
        ck->pre_created = false;
        for (size_t i = 0; i < ck->ndisks; i++) {
            ck->disks[i]->pre = false;
            pfile_begin(&ck->disks[i]->pf);
        }
        ck->pre = true;
    }

    /* the cold dirty pages of the collections with enough dirty pages,
     * frozen as a checkpoint's snapshot freezes them (the holds keep a
     * dropped collection's frames until the release) */
    struct snap_coll *sc = NULL;
    size_t nsc = 0;
    pthread_rwlock_wrlock(&db->cat_lock);
    sc = calloc(db->ncolls ? db->ncolls : 1, sizeof *sc);
    if (!sc)
        st = cerr_set(CAIRN_ENOMEM, "pre-write: out of memory");
    for (size_t i = 0; !st && i < db->ncolls; i++) {
        struct coll *c = db->colls[i];
        pthread_rwlock_wrlock(&c->lock);
        uint64_t top = 0;
        bool take = c->st.pg.ndirty >= min_dirty;
        if (take)
            st = pager_snap_begin_cold(&c->st.pg, cold_below, &top);
        pthread_rwlock_unlock(&c->lock);
        if (!take || st)
            continue;
        if (top > *newest)
            *newest = top;
        c->ckpt_hold = true;
        sc[nsc++] = (struct snap_coll){.c = c, .id = c->id};
    }
    pthread_rwlock_unlock(&db->cat_lock);

    /* written without a lock: the writers copy a frozen page first */
    for (size_t i = 0; !st && i < nsc; i++) {
        struct cdisk *d = NULL;
        st = disk_get(ck, sc[i].id, true, &d, &ck->pre_created);
        if (st)
            break;
        d->pre = true;
        st = write_snap(ck, d, &sc[i].c->st.pg, ck->pre_min_pin, pages);
        if (!st)
            st = pfile_flush(&d->pf, ck->io);
    }
    if (st) {
        char msg[CKPT_MSG];
        snprintf(msg, sizeof msg, "%s", cairn_last_error());
        pre_poison(db, st, msg);
        cerr_set(st, "%s", ck->poison_msg);
    }
    snap_release(db, sc, nsc, true);
    free(sc);
    pthread_mutex_unlock(&ck->run_mu);
    return st;
}

/* ---- background thread -------------------------------------------------------- */

static void *ckpt_main(void *arg)
{
    cairn_db *db = arg;
    struct ckpt *ck = db->ck;
    uint64_t last = cairn_mono_us();
    pthread_mutex_lock(&ck->mu);
    while (!ck->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t wait_ms = ck->interval_s ? 1000u : 60000u;
        ts.tv_sec += (time_t)(wait_ms / 1000);
        if (!ck->wake)
            pthread_cond_timedwait(&ck->cv, &ck->mu, &ts);
        if (ck->stop)
            break;
        bool by_time = ck->interval_s &&
                       cairn_mono_us() - last >= (uint64_t)ck->interval_s * 1000000u;
        bool go = ck->wake || by_time;
        ck->wake = false;
        if (!go)
            continue;
        /* Nothing new since the last checkpoint: skip a timed one. */
        if (!atomic_load(&ck->requested) && by_time &&
            wal_writer_end_lsn(db->wal) <= atomic_load(&ck->redo_lsn)) {
            last = cairn_mono_us();
            continue;
        }
        pthread_mutex_unlock(&ck->mu);
        if (ckpt_run(db, NULL))
            clog_warn("database \"%s\": background checkpoint: %s", db->path,
                      cairn_last_error());
        last = cairn_mono_us();
        pthread_mutex_lock(&ck->mu);
    }
    pthread_mutex_unlock(&ck->mu);
    return NULL;
}

void ckpt_note_wal(cairn_db *db, uint64_t end_lsn)
{
    struct ckpt *ck = db->ck;
    if (!ck || !ck->started || ck->wal_bytes == UINT64_MAX)
        return;
    if (end_lsn - atomic_load(&ck->redo_lsn) < ck->wal_bytes || atomic_load(&ck->requested))
        return;
    atomic_store(&ck->requested, true);
    pthread_mutex_lock(&ck->mu);
    ck->wake = true;
    pthread_cond_signal(&ck->cv);
    pthread_mutex_unlock(&ck->mu);
}

cairn_status ckpt_start(cairn_db *db)
{
    struct ckpt *ck = db->ck;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_destroy(&ck->cv);
    pthread_cond_init(&ck->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&ck->thr, NULL, ckpt_main, db) != 0)
        return cerr_set(CAIRN_ENOMEM, "could not start the checkpointer thread");
    ck->started = true;
    return CAIRN_OK;
}

void ckpt_close(cairn_db *db)
{
    struct ckpt *ck = db->ck;
    if (!ck)
        return;
    if (ck->started) {
        pthread_mutex_lock(&ck->mu);
        ck->stop = true;
        pthread_cond_signal(&ck->cv);
        pthread_mutex_unlock(&ck->mu);
        pthread_join(ck->thr, NULL);
    }
    for (size_t i = 0; i < ck->ndisks; i++)
        disk_free(ck->disks[i]);
    free(ck->disks);
    pfile_close(&ck->cat);
    free(ck->cat_pages);
    free(ck->scratch);
    free(ck->super_path);
    free(ck->coll_dir);
    free(ck->cat_path);
    cio_ctx_close(ck->io);
    pthread_mutex_destroy(&ck->run_mu);
    pthread_mutex_destroy(&ck->mu);
    pthread_cond_destroy(&ck->cv);
    free(ck);
    db->ck = NULL;
}

/* ---- open --------------------------------------------------------------------- */

/* Reads the physical pages `phys` (sorted) of a file in runs and installs
 * each, verified, into pager space `space`. */
/* Installs each page read into the collection's pager; the first page that
 * cannot be read or verified stops the load. */
struct install_ctx {
    struct pager *pg;
    uint32_t coll_id;
    uint64_t *pages;
};

static cairn_status install_page(void *vctx, const struct page_ref *r, const uint8_t *page,
                                 cairn_status st)
{
    struct install_ctx *ic = vctx;
    if (st)
        return st;
    uint8_t *fr = page_frame_alloc_raw();
    if (!fr)
        return cerr_set(CAIRN_ENOMEM, "could not load collection %" PRIu32 ": out of memory",
                        ic->coll_id);
    memcpy(fr, page, PAGE_SIZE);
    st = pager_install(ic->pg, r->space, r->pno, fr);
    if (st)
        page_frame_free(fr);
    else
        (*ic->pages)++;
    return st;
}

/* Reads, verifies and installs every page of one space. */
static cairn_status load_space(struct ckpt *ck, struct cdisk *d, struct pager *pg,
                               unsigned space, uint8_t *buf, uint64_t *pages)
{
    struct pmap *m = &d->map[space];
    size_t n = 0;
    for (uint32_t i = 0; i < m->n; i++)
        n += m->phys[i] != 0;
    if (!n)
        return CAIRN_OK;
    struct page_ref *r = malloc(n * sizeof *r);
    if (!r)
        return cerr_set(CAIRN_ENOMEM, "could not load collection %" PRIu32 ": out of memory",
                        d->id);
    size_t k = 0;
    for (uint32_t i = 0; i < m->n; i++)
        if (m->phys[i])
            r[k++] = (struct page_ref){.phys = m->phys[i], .pno = i, .lsn = m->lsn[i],
                                       .space = (uint16_t)space};
    struct install_ctx ic = {.pg = pg, .coll_id = d->id, .pages = pages};
    cairn_status st = pfile_read_refs(ck->io, d->pf.fd, d->pf.path, d->id, d->pf.npages, r, n,
                                      buf, install_page, &ic);
    free(r);
    return st;
}

/* Deletes collection page files that the checkpoint does not reference
 * (a collection created after it, or dropped by it). */
static cairn_status remove_orphans(cairn_db *db, struct ckpt *ck)
{
    DIR *dir = opendir(ck->coll_dir);
    if (!dir)
        return errno == ENOENT ? CAIRN_OK
                               : cerr_errno(errno, "could not list \"%s\"", ck->coll_dir);
    ck->have_coll_dir = true;
    cairn_status st = CAIRN_OK;
    bool any = false;
    struct dirent *e;
    while (!st && (e = readdir(dir))) {
        unsigned long id;
        char tail[16];
        if (sscanf(e->d_name, "%lu.%15s", &id, tail) != 2 || strcmp(tail, "pages") != 0)
            continue;
        if (id && id <= UINT32_MAX && disk_find(ck, (uint32_t)id))
            continue;
        char *p = cairn_path_join(ck->coll_dir, e->d_name);
        if (!p) {
            st = cerr_set(CAIRN_ENOMEM, "out of memory");
            break;
        }
        clog_info("database \"%s\": removing \"%s\", which no checkpoint references", db->path, p);
        st = cfs_unlink(p);
        free(p);
        any = true;
    }
    closedir(dir);
    if (!st && any)
        st = cfs_fsync_dir(ck->coll_dir);
    return st;
}

struct load_ctx {
    cairn_db *db;
    struct ckpt *ck;
    uint8_t *buf; /* 2 x PFILE_READ_BATCH pages: the batches being read */
};

static cairn_status load_entry(void *vctx, const struct cat_entry *e, uint32_t phys, uint32_t k)
{
    struct load_ctx *lc = vctx;
    struct ckpt *ck = lc->ck;
    cairn_db *db = lc->db;
    if (disk_find(ck, e->id) || cat_find_name(db, e->name))
        return cerr_set(CAIRN_ECORRUPT, "catalog \"%s\": page %" PRIu32 " entry %" PRIu32
                        " repeats collection id %" PRIu32 " / name \"%s\"",
                        ck->cat_path, phys, k, e->id, e->name);
    struct cdisk *d = NULL;
    bool created = false;
    cairn_status st = disk_get(ck, e->id, false, &d, &created);
    for (unsigned sp = 0; !st && sp < PSPACE_N; sp++)
        st = pmap_load(&d->map[sp], &d->pf, ck->io, e->root[sp], e->depth[sp], e->n[sp], sp,
                       ck->scratch);
    struct coll *c = NULL;
    if (!st)
        st = cat_load_coll(db, e->id, e->dim, e->metric, e->name, &c);
    uint64_t t0 = cairn_mono_us();
    for (unsigned sp = 0; !st && sp < PSPACE_N; sp++)
        st = load_space(ck, d, &c->st.pg, sp, lc->buf, &db->recovery.pages_read);
    if (!st)
        st = store_load(&c->st);
    db->recovery.pages_us += cairn_mono_us() - t0;
    return st;
}

static cairn_status load_checkpoint(cairn_db *db, struct ckpt *ck, const struct super *s)
{
    cairn_status st = pfile_open(&ck->cat, ck->cat_path, 0, false);
    if (st)
        return cerr_wrap(st, "could not open the catalog of checkpoint %" PRIu64, s->gen);
    void *bufv = NULL, *catv = NULL;
    size_t maxcat = cat_chain_max(s);
    ck->cat_pages = calloc(maxcat ? maxcat : 1, sizeof *ck->cat_pages);
    if (!ck->cat_pages || posix_memalign(&bufv, PAGE_SIZE, 2 * (size_t)PFILE_READ_BATCH * PAGE_SIZE) ||
        posix_memalign(&catv, PAGE_SIZE, PAGE_SIZE)) {
        free(bufv);
        return cerr_set(CAIRN_ENOMEM, "out of memory");
    }
    struct load_ctx lc = {.db = db, .ck = ck, .buf = bufv};
    st = cat_walk(&ck->cat, ck->io, s, PF_USED, catv, ck->cat_pages, &ck->ncat, load_entry,
                  &lc);
    free(bufv);
    free(catv);
    return st;
}

/* Pinned checkpoints other than the loaded one: their pages stay
 * unreusable (marked gen + 1: free only once no pin holds gen or older)
 * and the files of their collections are kept. */
struct mark_ctx {
    struct ckpt *ck;
    uint32_t mark;
    uint64_t cur_gen;
};

static cairn_status mark_entry(void *vctx, const struct cat_entry *e, uint32_t phys, uint32_t k)
{
    (void)phys;
    (void)k;
    struct mark_ctx *mc = vctx;
    struct ckpt *ck = mc->ck;
    struct cdisk *d = disk_find(ck, e->id);
    cairn_status st = CAIRN_OK;
    if (!d) {
        bool created = false;
        if ((st = disk_get(ck, e->id, false, &d, &created)))
            return st;
        d->gone_at = mc->cur_gen; /* dropped since: not in the current image */
    }
    for (unsigned sp = 0; !st && sp < PSPACE_N; sp++) {
        struct pmap m;
        pmap_init(&m);
        st = pmap_load_as(&m, &d->pf, ck->io, e->root[sp], e->depth[sp], e->n[sp], sp,
                          ck->scratch, mc->mark);
        pmap_free(&m);
    }
    return st;
}

static cairn_status protect_pins(cairn_db *db, struct ckpt *ck)
{
    struct pin_set ps;
    cairn_status st = pins_scan(db->path, db->db_id, &ps);
    if (st)
        return cerr_wrap(st, "could not read the pins of \"%s\"", db->path);
    uint32_t *pages = NULL;
    void *pgv = NULL; /* the catalog page walked (ck->scratch: its maps) */
    if (ps.n && posix_memalign(&pgv, PAGE_SIZE, PAGE_SIZE)) {
        pins_free(&ps);
        return cerr_set(CAIRN_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < ps.n; i++) {
        const struct super *img = &ps.img[i];
        if (img->gen == ck->cur.gen)
            continue; /* its pages are the loaded checkpoint's */
        free(pages);
        size_t np = 0, maxcat = cat_chain_max(img);
        pages = calloc(maxcat ? maxcat : 1, sizeof *pages);
        struct mark_ctx mc = {.ck = ck, .mark = (uint32_t)img->gen + 1, .cur_gen = ck->cur.gen};
        cairn_status ist = pages ? cat_walk(&ck->cat, ck->io, img, mc.mark, pgv, pages, &np,
                                            mark_entry, &mc)
                                 : cerr_set(CAIRN_ENOMEM, "out of memory");
        /* A broken pinned image must not keep the database closed: its
         * reader verifies every page it copies and will fail. */
        if (ist)
            clog_warn("database \"%s\": pinned checkpoint %" PRIu64 " cannot be read whole, "
                      "some of its pages may be reused: %s",
                      db->path, img->gen, cairn_last_error());
    }
    free(pages);
    free(pgv);
    pins_free(&ps);
    return CAIRN_OK;
}

cairn_status ckpt_open(cairn_db *db, uint64_t *redo_lsn)
{
    *redo_lsn = 0;
    struct ckpt *ck = calloc(1, sizeof *ck);
    if (!ck)
        return cerr_set(CAIRN_ENOMEM, "out of memory");
    pthread_mutex_init(&ck->run_mu, NULL);
    pthread_mutex_init(&ck->mu, NULL);
    pthread_cond_init(&ck->cv, NULL);
    ck->cat.fd = -1;
    db->ck = ck;
    ck->wal_bytes = db->opts.checkpoint_wal_bytes ? db->opts.checkpoint_wal_bytes
                                                  : DEFAULT_WAL_BYTES;
    ck->interval_s = db->opts.checkpoint_interval_s;
    void *scr = NULL;
    ck->super_path = cairn_path_join(db->path, "superblock");
    ck->coll_dir = cairn_path_join(db->path, "collections");
    ck->cat_path = cairn_path_join(db->path, "catalog.pages");
    if (!ck->super_path || !ck->coll_dir || !ck->cat_path ||
        posix_memalign(&scr, PAGE_SIZE, PAGE_SIZE) != 0)
        return cerr_set(CAIRN_ENOMEM, "out of memory");
    ck->scratch = scr;
    cairn_status st = cio_ctx_open(&ck->io, db->opts.io_backend, PFILE_RUNS);
    if (st)
        return st;

    /* The superblock: the valid slot of the highest generation. */
    struct super best = {0};
    struct stat sb;
    if (stat(ck->super_path, &sb) != 0) {
        if (errno != ENOENT)
            return cerr_errno(errno, "could not stat \"%s\"", ck->super_path);
    } else {
        ck->have_super_file = true;
        const char *why[2];
        bool zero[2];
        st = super_read(ck->io, ck->super_path, db->db_id, ck->scratch, &best, NULL, why, zero);
        if (st)
            return st;
        if (best.gen == 0 && !(zero[0] && zero[1]))
            clog_warn("database \"%s\": superblock \"%s\" holds no valid checkpoint (slot 0 "
                      "%s, slot 1 %s); replaying the whole WAL",
                      db->path, ck->super_path, why[0], why[1]);
    }
    if (best.gen == 0) {
        /* Without a checkpoint the log must start at its beginning: a later
         * start means checkpoints removed the first segments and the
         * superblock that covered them is damaged. Refuse before removing
         * anything: replaying from there would lose data. */
        uint64_t *starts = NULL;
        size_t nseg = 0;
        st = wal_seg_list(db->waldir, db->timeline, &starts, &nseg);
        if (st)
            return st;
        uint64_t oldest = nseg ? starts[0] : 0;
        free(starts);
        if (oldest != 0)
            return cerr_set(CAIRN_ECORRUPT,
                            "database \"%s\": no valid checkpoint in \"%s\", and the WAL "
                            "begins at LSN %" PRIu64 ", not 0: the log before it was folded "
                            "into a checkpoint that cannot be read",
                            db->path, ck->super_path, oldest);
        /* No checkpoint: every page file is left over from one that never
         * completed. */
        st = remove_orphans(db, ck);
        if (!st && stat(ck->cat_path, &sb) == 0)
            st = cfs_unlink(ck->cat_path);
        if (st)
            return st;
        st = pfile_open(&ck->cat, ck->cat_path, 0, true);
        /* The new catalog file's name must be durable before a superblock
         * can point into it. */
        if (!st)
            st = cfs_fsync_dir(db->path);
        return st;
    }
    if (best.timeline != db->timeline)
        return cerr_set(CAIRN_ECORRUPT, "superblock \"%s\": checkpoint %" PRIu64
                        " is on timeline %" PRIu32 ", the database on %" PRIu32,
                        ck->super_path, best.gen, best.timeline, db->timeline);
    st = load_checkpoint(db, ck, &best);
    if (st)
        return cerr_wrap(st, "could not load checkpoint %" PRIu64 " of \"%s\"", best.gen,
                         db->path);
    ck->cur = best;
    st = protect_pins(db, ck);
    if (!st)
        st = remove_orphans(db, ck);
    if (st)
        return st;
    atomic_store(&ck->redo_lsn, best.redo);
    if (best.next_txn > atomic_load(&db->next_txn_id))
        atomic_store(&db->next_txn_id, best.next_txn);
    if (best.next_coll > db->next_coll_id)
        db->next_coll_id = best.next_coll;
    db->last_commit_us = best.last_commit_us;
    db->applied_end = best.redo;
    db->applied_txn = best.last_txn;
    db->recovery.checkpoint = best.gen;
    *redo_lsn = best.redo;
    return CAIRN_OK;
}

CAIRN_API cairn_status cairn_checkpoint(cairn_db *db, cairn_checkpoint_info *info)
{
    cerr_clear();
    if (!db)
        return cerr_set(CAIRN_EINVAL, "cairn_checkpoint: NULL database");
    return db_named(db->path, ckpt_run(db, info));
}

/* ---- cairn check (engine/check.c) -------------------------------------------- */

cairn_status ckpt_check_hold(cairn_db *db, ckpt_check_fn fn, void *ctx)
{
    struct ckpt *ck = db->ck;
    pthread_mutex_lock(&ck->run_mu);
    struct ckpt_view v = {.super_path = ck->super_path, .cat_path = ck->cat_path,
                          .coll_dir = ck->coll_dir, .cur = &ck->cur,
                          .poisoned = ck->poisoned, .pending = ck->pre,
                          .cat = &ck->cat,
                          .cat_pages = ck->cat_pages, .ncat = ck->ncat, .ck = ck};
    cairn_status st = fn(db, &v, ctx);
    pthread_mutex_unlock(&ck->run_mu);
    return st;
}

const struct pfile *ckpt_view_disk(const struct ckpt_view *v, uint32_t id,
                                   const struct pmap **maps)
{
    struct cdisk *d = disk_find(v->ck, id);
    if (!d)
        return NULL;
    *maps = d->map;
    return &d->pf;
}

cairn_status ckpt_cat_entry_decode(const uint8_t *e, struct cat_entry *o, const char *file,
                                   uint32_t phys, uint32_t k)
{
    return cat_entry_get(e, o, file, phys, k);
}
