/*
 * check.c — cairn_check(): walks every page and structure of an open
 * database and reports what is wrong, changing nothing.
 *
 * Three parts, all under the checkpointer's run_mu (no checkpoint runs
 * meanwhile, so the files of the current checkpoint and the WAL from its
 * redo LSN stay put; commits go on):
 *
 *   1. On disk, the checkpoint the database stands on, read from the files
 *      (never from the buffer pool): both superblock slots; the catalog
 *      chain (crc, header, chain length and termination, entry fields,
 *      unique ids and names); for every collection in it, its page file:
 *      every map node (crc, type, level, collection, space, node index,
 *      zero entries beyond the map's pages), every mapped page (crc, header
 *      type/collection/space/page number, page LSN equal to the map entry's
 *      and not after the redo LSN), every physical page number inside the
 *      file and referenced at most once across all maps of the file; then
 *      the pages are installed into a scratch store and store_check() walks
 *      the point structures of the image. The image is also compared with
 *      what the process holds: the checkpointer's maps and page states
 *      (a page of the image must be "in use", and every page in use must
 *      belong to the image), and, for a collection with no page changed
 *      since, every page in memory byte for byte.
 *   2. In memory, every live collection under its read lock: store_check()
 *      and the id hash against the slots (every point found at its slot, no
 *      other entry), and the header's counters against the store's.
 *   3. The WAL from the redo LSN to the durable LSN noted at the start:
 *      every segment header and record through the engine's reader (crc,
 *      LSN, lengths; an invalid record before the durable LSN is reported),
 *      every body decoded, and the replay rules (transaction ids, COMMIT
 *      record counts, collections existing with the record's dimension,
 *      payloads being JSON objects) for every committed transaction.
 *
 * A finding is a problem (damage: counted, CAIRN_ECORRUPT) or a warning
 * (something a crash leaves behind legitimately and the next checkpoint
 * rewrites, such as a torn superblock slot that is not the current one).
 * Messages name the file and the page or offset.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/io.h"
#include "common/json.h"
#include "common/util.h"
#include "engine/ckpt_int.h"
#include "engine/engine_int.h"
#include "engine/pfile.h"

#define CHK_MSG 1024

/* Header page body offsets (docs/format.md, "Header page"). */
#define HDR_N 24
#define HDR_PBYTES 32
#define HDR_OPEN 40

struct chk {
    cairn_db *db;
    const struct ckpt_view *v;
    const struct super *cur;
    cairn_check_report *rep;
    cairn_check_fn fn;
    void *ctx;
    cairn_status first_st; /* of the first problem */
    cio *io;
    uint8_t *buf;          /* 2 * PFILE_READ_BATCH aligned pages (pfile_read_refs) */
    /* the collections of the checkpoint (for the WAL's replay rules) */
    struct chk_coll {
        uint32_t id, dim;
    } *colls;
    size_t ncolls, capcolls;
    bool catalog_ok;       /* colls is the checkpoint's whole catalog */
    bool have_prev;        /* the other slot holds an older checkpoint */
    uint64_t prev_gen, prev_redo;
};

static void vfinding(struct chk *k, bool is_problem, cairn_status st, const char *fmt,
                     va_list ap)
{
    char msg[CHK_MSG];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (is_problem) {
        if (k->rep->problems == 0) {
            size_t n = strnlen(msg, sizeof k->rep->first_problem - 1);
            memcpy(k->rep->first_problem, msg, n);
            k->rep->first_problem[n] = 0;
            k->first_st = st;
        }
        if (k->rep->problems < UINT32_MAX)
            k->rep->problems++;
    } else if (k->rep->warnings < UINT32_MAX) {
        k->rep->warnings++;
    }
    if (k->fn)
        k->fn(k->ctx, is_problem, msg);
}

static void problem(struct chk *k, const char *fmt, ...) CAIRN_PRINTF(2, 3);
static void problem(struct chk *k, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfinding(k, true, CAIRN_ECORRUPT, fmt, ap);
    va_end(ap);
}

/* A problem of status st (CAIRN_EIO: a file could not be read). */
static void problem_st(struct chk *k, cairn_status st, const char *fmt, ...)
    CAIRN_PRINTF(3, 4);
static void problem_st(struct chk *k, cairn_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfinding(k, true, st, fmt, ap);
    va_end(ap);
}

static void warning(struct chk *k, const char *fmt, ...) CAIRN_PRINTF(2, 3);
static void warning(struct chk *k, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfinding(k, false, CAIRN_OK, fmt, ap);
    va_end(ap);
}

/* The failure just set by an internal call, as a problem. ENOMEM is not a
 * finding: the walk could not run (the caller stops). */
static void problem_last(struct chk *k, cairn_status st)
{
    if (st == CAIRN_ECORRUPT || st == CAIRN_EVERSION)
        problem(k, "%s", cairn_last_error());
    else
        problem_st(k, st, "%s", cairn_last_error());
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

/* Reads `count` pages from physical page `first` into k->buf; *got: whole
 * pages read (fewer at the end of the file). A read error is a problem. */
static bool read_pages(struct chk *k, int fd, const char *path, uint32_t first, uint32_t count,
                       uint32_t *got)
{
    size_t n = 0;
    cairn_status st = cio_read(k->io, fd, k->buf, (size_t)count * PAGE_SIZE,
                               (uint64_t)first * PAGE_SIZE, path, &n);
    *got = (uint32_t)(n / PAGE_SIZE);
    if (st) {
        problem_last(k, st);
        return false;
    }
    return true;
}

/* Opens a file of the checkpoint read-only; *npages its whole pages. */
static bool open_file(struct chk *k, const char *path, const char *what, int *fd,
                      uint32_t *npages)
{
    *fd = -1;
    cairn_status st = cfs_open(path, O_RDONLY, 0, fd);
    if (st) {
        problem_st(k, st == CAIRN_ENOTFOUND ? CAIRN_ECORRUPT : st,
                   "%s \"%s\" of checkpoint %" PRIu64 " could not be opened: %s", what, path,
                   k->cur->gen, cairn_last_error());
        return false;
    }
    struct stat sb;
    if (fstat(*fd, &sb) != 0) {
        problem_st(k, cerr_from_errno(errno), "could not stat %s \"%s\": %s", what, path,
                   strerror(errno));
        close(*fd);
        *fd = -1;
        return false;
    }
    if (sb.st_size % PAGE_SIZE)
        warning(k, "%s \"%s\" is %lld bytes, not a whole number of pages (the partial page "
                "at the end is unused)", what, path, (long long)sb.st_size);
    uint64_t np = (uint64_t)sb.st_size / PAGE_SIZE;
    *npages = np > UINT32_MAX ? UINT32_MAX : (uint32_t)np;
    return true;
}

/* ---- superblock --------------------------------------------------------------- */

static bool super_same(const struct super *a, const struct super *b)
{
    return a->gen == b->gen && a->redo == b->redo && a->db_id == b->db_id &&
           a->last_txn == b->last_txn && a->next_txn == b->next_txn &&
           a->time_us == b->time_us && a->last_commit_us == b->last_commit_us &&
           a->timeline == b->timeline && a->next_coll == b->next_coll &&
           a->cat_head == b->cat_head && a->ncolls == b->ncolls;
}

/* Both slots: the current one must hold exactly the checkpoint the
 * checkpointer stands on (whose copy in memory is what the rest of the walk
 * follows, so that damage here does not hide the rest); the other one an
 * older checkpoint, or be empty or torn (a warning). */
static void check_super(struct chk *k)
{
    const struct ckpt_view *v = k->v;
    const struct super *cur = k->cur;
    uint32_t cur_slot = (uint32_t)(cur->gen % 2);
    int fd = -1;
    cairn_status st = cfs_open(v->super_path, O_RDONLY, 0, &fd);
    if (st) {
        if (cur->gen)
            problem_st(k, st == CAIRN_ENOTFOUND ? CAIRN_ECORRUPT : st,
                       "superblock \"%s\" could not be opened, yet the database stands on "
                       "checkpoint %" PRIu64 ": %s", v->super_path, cur->gen,
                       cairn_last_error());
        return; /* none yet: no checkpoint ever completed */
    }
    struct stat sb;
    if (fstat(fd, &sb) == 0 && sb.st_size != 2 * (off_t)PAGE_SIZE)
        problem(k, "superblock \"%s\" is %lld bytes, expected %u", v->super_path,
                (long long)sb.st_size, 2 * PAGE_SIZE);
    for (uint32_t slot = 0; slot < 2; slot++) {
        uint32_t got = 0;
        if (!read_pages(k, fd, v->super_path, slot, 1, &got))
            continue;
        k->rep->pages_checked++;
        bool current = cur->gen && slot == cur_slot;
        const char *why = NULL;
        struct super s;
        int r = got < 1 ? 0 : super_decode(k->buf, slot, &s, &why);
        if (got < 1)
            why = "is missing (the file is short)";
        else if (r == 0 && all_zero(k->buf, PAGE_SIZE))
            why = "is empty";
        if (r < 0) {
            problem_st(k, CAIRN_EVERSION, "superblock \"%s\" slot %" PRIu32 " (offset %" PRIu64
                       "): %s", v->super_path, slot, (uint64_t)slot * PAGE_SIZE,
                       cairn_last_error());
            continue;
        }
        if (r == 0) {
            if (current)
                problem(k, "superblock \"%s\" slot %" PRIu32 " (offset %" PRIu64 "), the "
                        "current checkpoint %" PRIu64 ", %s", v->super_path, slot,
                        (uint64_t)slot * PAGE_SIZE, cur->gen, why);
            else if (strcmp(why, "is empty") != 0)
                /* A crash while the next checkpoint wrote this slot leaves
                 * it torn: legitimate, and the next checkpoint rewrites
                 * it. Until then an open cannot fall back to it. */
                warning(k, "superblock \"%s\" slot %" PRIu32 " (offset %" PRIu64 "), not the "
                        "current checkpoint, %s: no fallback checkpoint until the next one "
                        "is written", v->super_path, slot, (uint64_t)slot * PAGE_SIZE, why);
            continue;
        }
        if (s.db_id != k->db->db_id) {
            problem(k, "superblock \"%s\" slot %" PRIu32 " (offset %" PRIu64 ") belongs to "
                    "database %016" PRIx64 ", not %016" PRIx64, v->super_path, slot,
                    (uint64_t)slot * PAGE_SIZE, s.db_id, k->db->db_id);
            continue;
        }
        if (current) {
            if (!super_same(&s, cur))
                problem(k, "superblock \"%s\" slot %" PRIu32 " (offset %" PRIu64 ") holds "
                        "checkpoint %" PRIu64 " (redo LSN %" PRIu64 ", catalog page %" PRIu32
                        ", %" PRIu32 " collections), the database stands on checkpoint %"
                        PRIu64 " (redo LSN %" PRIu64 ", catalog page %" PRIu32 ", %" PRIu32
                        " collections)", v->super_path, slot, (uint64_t)slot * PAGE_SIZE,
                        s.gen, s.redo, s.cat_head, s.ncolls, cur->gen, cur->redo,
                        cur->cat_head, cur->ncolls);
            continue;
        }
        if (s.gen % 2 != slot) {
            problem(k, "superblock \"%s\" slot %" PRIu32 " (offset %" PRIu64 ") holds "
                    "checkpoint %" PRIu64 ", which belongs in slot %" PRIu64, v->super_path,
                    slot, (uint64_t)slot * PAGE_SIZE, s.gen, s.gen % 2);
            continue;
        }
        if (s.gen >= cur->gen) {
            /* An open would load this one, not the one in use. After a
             * failed superblock write (poisoned checkpointer) that is
             * possible: the write may have reached the disk. */
            if (v->poisoned)
                warning(k, "superblock \"%s\" slot %" PRIu32 " holds checkpoint %" PRIu64
                        ", newer than checkpoint %" PRIu64 " in use: its write was reported "
                        "failed (checkpoints are disabled until reopen)", v->super_path, slot,
                        s.gen, cur->gen);
            else
                problem(k, "superblock \"%s\" slot %" PRIu32 " (offset %" PRIu64 ") holds "
                        "checkpoint %" PRIu64 ", but the database stands on checkpoint %"
                        PRIu64, v->super_path, slot, (uint64_t)slot * PAGE_SIZE, s.gen,
                        cur->gen);
            continue;
        }
        /* (an older checkpoint of another timeline: from before a branch) */
        if (s.timeline == cur->timeline && s.redo > cur->redo)
            problem(k, "superblock \"%s\" slot %" PRIu32 " (offset %" PRIu64 "): the older "
                    "checkpoint %" PRIu64 " has redo LSN %" PRIu64 ", after checkpoint %" PRIu64
                    "'s %" PRIu64, v->super_path, slot, (uint64_t)slot * PAGE_SIZE, s.gen,
                    s.redo, cur->gen, cur->redo);
        else if (s.timeline == cur->timeline) {
            k->have_prev = true;
            k->prev_gen = s.gen;
            k->prev_redo = s.redo;
        }
    }
    close(fd);
}

/* ---- page references of one page file ------------------------------------------ */

/* Who references a physical page: kind (1 map node, 2 mapped page), space,
 * map level, index. */
#define REF_NODE 1u
#define REF_PAGE 2u
static uint64_t ref_tag(unsigned kind, unsigned space, unsigned level, uint32_t idx)
{
    return (uint64_t)kind << 40 | (uint64_t)space << 36 | (uint64_t)level << 32 | idx;
}

static const char *space_name(unsigned space)
{
    return space == PSPACE_GROUP ? "group" : "heap";
}

static void ref_name(uint64_t tag, char *out, size_t n)
{
    unsigned kind = (unsigned)(tag >> 40), space = (unsigned)(tag >> 36) & 15;
    unsigned level = (unsigned)(tag >> 32) & 15;
    uint32_t idx = (uint32_t)tag;
    if (kind == REF_NODE)
        snprintf(out, n, "%s map node %" PRIu32 " of level %u", space_name(space), idx, level);
    else
        snprintf(out, n, "%s page %" PRIu32, space_name(space), idx);
}

struct pfile_refs {
    const char *path;
    uint32_t npages;
    uint64_t *tag; /* npages: who references each page (0: nobody) */
};

/* Records that `tag` references phys: inside the file, and the first one. */
static bool claim(struct chk *k, struct pfile_refs *r, uint32_t phys, uint64_t tag)
{
    char who[96], other[96];
    ref_name(tag, who, sizeof who);
    if (phys == 0 || phys >= r->npages) {
        problem(k, "page file \"%s\": the %s is at page %" PRIu32 ", outside the file (%"
                PRIu32 " pages; page 0 is never used)", r->path, who, phys, r->npages);
        return false;
    }
    if (r->tag[phys]) {
        ref_name(r->tag[phys], other, sizeof other);
        problem(k, "page file \"%s\": page %" PRIu32 " (offset %" PRIu64 ") is referenced "
                "twice: by the %s and by the %s", r->path, phys, (uint64_t)phys * PAGE_SIZE,
                other, who);
        return false;
    }
    r->tag[phys] = tag;
    return true;
}

/* ---- one collection of the checkpoint ----------------------------------------- */

/* A map as read from disk. */
struct dmap {
    bool ok;          /* walked without a problem in its nodes */
    uint32_t n, depth, root;
    uint32_t *phys;   /* n */
    uint64_t *lsn;    /* n */
    uint32_t *node[MAP_MAX_DEPTH];
    uint32_t nnode[MAP_MAX_DEPTH];
};

static void dmap_free(struct dmap *m)
{
    free(m->phys);
    free(m->lsn);
    for (unsigned l = 0; l < MAP_MAX_DEPTH; l++)
        free(m->node[l]);
    memset(m, 0, sizeof *m);
}

/* Reads the map of one space; false only when out of memory. */
static bool walk_map(struct chk *k, int fd, struct pfile_refs *r, const struct cat_entry *e,
                     unsigned space, struct dmap *m)
{
    memset(m, 0, sizeof *m);
    m->n = e->n[space];
    m->depth = e->depth[space];
    m->root = e->root[space];
    if (m->depth != pmap_depth_for(m->n) || (m->depth == 0) != (m->root == 0)) {
        problem(k, "catalog \"%s\": collection %" PRIu32 " has a %s map of depth %" PRIu32
                " and root %" PRIu32 " for %" PRIu32 " pages", k->v->cat_path, e->id,
                space_name(space), m->depth, m->root, m->n);
        return true;
    }
    m->ok = true;
    if (m->depth == 0)
        return true;
    m->phys = calloc(m->n, sizeof *m->phys);
    m->lsn = calloc(m->n, sizeof *m->lsn);
    if (!m->phys || !m->lsn)
        return false;
    uint32_t cnt[MAP_MAX_DEPTH] = {0};
    for (unsigned l = 0; l < m->depth; l++) {
        cnt[l] = l == 0 ? (m->n + MAP_LEAF_N - 1) / MAP_LEAF_N
                        : (cnt[l - 1] + MAP_INNER_N - 1) / MAP_INNER_N;
        m->node[l] = calloc(cnt[l], sizeof *m->node[l]);
        if (!m->node[l])
            return false;
        m->nnode[l] = cnt[l];
    }
    m->node[m->depth - 1][0] = m->root;
    const uint64_t redo = k->cur->redo;
    for (unsigned l = m->depth; l-- > 0;) {
        for (uint32_t i = 0; i < cnt[l]; i++) {
            uint32_t phys = m->node[l][i], got = 0;
            if (phys == 0)
                continue; /* nothing mapped below */
            if (!claim(k, r, phys, ref_tag(REF_NODE, space, l, i))) {
                m->ok = false;
                continue;
            }
            if (!read_pages(k, fd, r->path, phys, 1, &got) || got < 1) {
                if (got < 1)
                    problem(k, "page file \"%s\": page %" PRIu32 " is cut short", r->path, phys);
                m->ok = false;
                continue;
            }
            k->rep->pages_checked++;
            const uint8_t *pg = k->buf;
            cairn_status st = page_verify(pg, r->path, phys, e->id,
                                          l == 0 ? PT_MAP_LEAF : PT_MAP_INNER, space, i,
                                          UINT64_MAX);
            if (st) {
                problem_last(k, st);
                m->ok = false;
                continue;
            }
            char where[4352]; /* a path, and what is at the page */
            snprintf(where, sizeof where, "page file \"%s\": %s map page %" PRIu32
                     " (offset %" PRIu64 ")", r->path, space_name(space), phys,
                     (uint64_t)phys * PAGE_SIZE);
            if (ld16(pg + 6) != l) {
                problem(k, "%s has level %u, expected %u", where, ld16(pg + 6), l);
                m->ok = false;
                continue;
            }
            if (page_lsn(pg) > redo)
                problem(k, "%s has page LSN %" PRIu64 ", after the checkpoint's redo LSN %"
                        PRIu64, where, page_lsn(pg), redo);
            const uint8_t *b = pg + PAGE_HDR;
            if (l == 0) {
                uint32_t lo = i * MAP_LEAF_N;
                for (uint32_t q = 0; q < MAP_LEAF_N; q++) {
                    const uint8_t *en = b + 16 * q;
                    if (lo + q >= m->n) {
                        if (!all_zero(en, 16)) {
                            problem(k, "%s entry %" PRIu32 " is beyond the map's %" PRIu32
                                    " pages but not zero", where, q, m->n);
                            m->ok = false;
                        }
                        continue;
                    }
                    uint32_t p = ld32(en);
                    uint64_t lsn = ld64(en + 8);
                    if (ld32(en + 4) != 0 || (p == 0 && lsn != 0)) {
                        problem(k, "%s entry %" PRIu32 " (%s page %" PRIu32 ") has a nonzero "
                                "reserved field or an LSN without a page", where, q,
                                space_name(space), lo + q);
                        m->ok = false;
                        continue;
                    }
                    if (lsn > redo)
                        problem(k, "%s entry %" PRIu32 ": %s page %" PRIu32 " has page LSN %"
                                PRIu64 ", after the checkpoint's redo LSN %" PRIu64, where, q,
                                space_name(space), lo + q, lsn, redo);
                    if (p && !claim(k, r, p, ref_tag(REF_PAGE, space, 0, lo + q))) {
                        m->ok = false;
                        continue;
                    }
                    m->phys[lo + q] = p;
                    m->lsn[lo + q] = lsn;
                }
            } else {
                uint32_t lo = i * MAP_INNER_N;
                for (uint32_t q = 0; q < MAP_INNER_N; q++) {
                    uint32_t p = ld32(b + 4 * q);
                    if (lo + q < cnt[l - 1])
                        m->node[l - 1][lo + q] = p;
                    else if (p) {
                        problem(k, "%s entry %" PRIu32 " is beyond the %" PRIu32 " nodes of "
                                "level %u but not zero", where, q, cnt[l - 1], l - 1);
                        m->ok = false;
                    }
                }
            }
        }
    }
    return true;
}

/* Installs each good page of the image into the scratch store; a page
 * that cannot be read or verified is a problem, and the walk goes on. */
struct image_load {
    struct chk *k;
    struct store *tmp;
    uint64_t bad;
};

static cairn_status image_page(void *vctx, const struct page_ref *r, const uint8_t *page,
                               cairn_status st)
{
    struct image_load *il = vctx;
    if (page || st == CAIRN_ECORRUPT)
        il->k->rep->pages_checked++;
    if (st) {
        problem_last(il->k, st);
        il->bad++;
        return CAIRN_OK;
    }
    uint8_t *fr = page_frame_alloc_raw();
    if (!fr)
        return CAIRN_ENOMEM;
    memcpy(fr, page, PAGE_SIZE);
    st = pager_install(&il->tmp->pg, r->space, r->pno, fr);
    if (st)
        page_frame_free(fr);
    return st;
}

/* Reads and verifies every mapped page of both spaces, installing the good
 * ones into the scratch store. *bad: pages that failed. false: no memory. */
static bool load_pages(struct chk *k, int fd, const struct pfile_refs *r, uint32_t coll_id,
                       const struct dmap *dm, struct store *tmp, uint64_t *bad)
{
    size_t n = 0;
    for (unsigned sp = 0; sp < PSPACE_N; sp++)
        for (uint32_t i = 0; i < dm[sp].n; i++)
            n += dm[sp].phys[i] != 0;
    if (!n)
        return true;
    struct page_ref *refs = malloc(n * sizeof *refs);
    if (!refs)
        return false;
    size_t q = 0;
    for (unsigned sp = 0; sp < PSPACE_N; sp++)
        for (uint32_t i = 0; i < dm[sp].n; i++)
            if (dm[sp].phys[i])
                refs[q++] = (struct page_ref){.phys = dm[sp].phys[i], .pno = i,
                                              .lsn = dm[sp].lsn[i], .space = (uint16_t)sp};
    struct image_load il = {.k = k, .tmp = tmp};
    cairn_status st = pfile_read_refs(k->io, fd, r->path, coll_id, r->npages, refs, n, k->buf,
                                      image_page, &il);
    free(refs);
    *bad = il.bad;
    return st != CAIRN_ENOMEM;
}

/* store_check lines about the image ("collection C: <space> page P: ...")
 * get the file and the physical page. */
struct image_ctx {
    struct chk *k;
    const char *path;
    const struct dmap *dm;
};

static bool image_line(void *vctx, const char *line)
{
    struct image_ctx *ic = vctx;
    unsigned coll = 0, pno = 0;
    char sp[8] = "";
    int rest = 0;
    if (sscanf(line, "collection %u: %7s page %u: %n", &coll, sp, &pno, &rest) == 3 && rest) {
        unsigned space = strcmp(sp, "heap") == 0 ? PSPACE_HEAP : PSPACE_GROUP;
        const struct dmap *m = &ic->dm[space];
        uint32_t phys = pno < m->n ? m->phys[pno] : 0;
        problem(ic->k, "page file \"%s\", checkpoint %" PRIu64 ": collection %u: %s page %u "
                "(physical page %" PRIu32 ", offset %" PRIu64 "): %s", ic->path,
                ic->k->cur->gen, coll, sp, pno, phys, (uint64_t)phys * PAGE_SIZE, line + rest);
    } else {
        problem(ic->k, "page file \"%s\", checkpoint %" PRIu64 ": %s", ic->path,
                ic->k->cur->gen, line);
    }
    return true;
}

/* The checkpointer's view of the file against the image: its maps equal
 * the disk's, every page of the image is "in use" there, and no other
 * page is (pages in use are never reused: one outside the image is lost). */
static void compare_ckpt(struct chk *k, const struct cat_entry *e, const struct pfile_refs *r,
                         const struct dmap *dm)
{
    const struct pmap *maps = NULL;
    const struct pfile *pf = ckpt_view_disk(k->v, e->id, &maps);
    if (!pf) {
        problem(k, "page file \"%s\": collection %" PRIu32 " of checkpoint %" PRIu64 " is "
                "unknown to the checkpointer", r->path, e->id, k->cur->gen);
        return;
    }
    for (unsigned sp = 0; sp < PSPACE_N; sp++) {
        const struct pmap *m = &maps[sp];
        const struct dmap *d = &dm[sp];
        if (!d->ok)
            continue;
        if (m->n != d->n || m->depth != d->depth || pmap_root(m) != d->root) {
            problem(k, "page file \"%s\": the checkpointer's %s map has %" PRIu32 " pages, "
                    "depth %" PRIu32 ", root %" PRIu32 "; checkpoint %" PRIu64 "'s has %"
                    PRIu32 ", %" PRIu32 ", %" PRIu32, r->path, space_name(sp), m->n, m->depth,
                    pmap_root(m), k->cur->gen, d->n, d->depth, d->root);
            continue;
        }
        for (uint32_t i = 0; i < d->n; i++) {
            if (m->phys[i] != d->phys[i] || (d->phys[i] && m->lsn[i] != d->lsn[i])) {
                problem(k, "page file \"%s\": the checkpointer maps %s page %" PRIu32 " to "
                        "page %" PRIu32 " (LSN %" PRIu64 "), checkpoint %" PRIu64 " to page %"
                        PRIu32 " (LSN %" PRIu64 ")", r->path, space_name(sp), i, m->phys[i],
                        m->lsn[i], k->cur->gen, d->phys[i], d->lsn[i]);
                break;
            }
        }
    }
    uint32_t lim = pf->npages < r->npages ? r->npages : pf->npages;
    for (uint32_t p = 1; p < lim; p++) {
        bool in_image = p < r->npages && r->tag[p];
        bool used = p < pf->npages && pf->state[p] == PF_USED;
        if (in_image && !used)
            problem(k, "page file \"%s\": page %" PRIu32 " (offset %" PRIu64 ") belongs to "
                    "checkpoint %" PRIu64 ", but the checkpointer counts it free (the next "
                    "checkpoint could overwrite it)", r->path, p, (uint64_t)p * PAGE_SIZE,
                    k->cur->gen);
        else if (used && !in_image)
            problem(k, "page file \"%s\": page %" PRIu32 " (offset %" PRIu64 ") is in use "
                    "for the checkpointer, but checkpoint %" PRIu64 " does not reference it "
                    "(it is never reused)", r->path, p, (uint64_t)p * PAGE_SIZE, k->cur->gen);
    }
}

/* The live collection against the image: same name, dimension and metric;
 * and when none of its pages changed since the checkpoint, every page the
 * same bytes (the crc field aside: frames carry it only once written). */
static void compare_live(struct chk *k, const struct cat_entry *e, const char *path,
                         const struct store *img, const struct dmap *dm)
{
    cairn_db *db = k->db;
    pthread_rwlock_rdlock(&db->cat_lock);
    struct coll *c = cat_find_id(db, e->id);
    if (!c) {
        pthread_rwlock_unlock(&db->cat_lock); /* dropped since */
        return;
    }
    if (c->dim != e->dim || c->metric != e->metric || strcmp(c->name, e->name) != 0) {
        problem(k, "catalog \"%s\": collection %" PRIu32 " is \"%s\" (dimension %" PRIu32
                ", metric %d) in checkpoint %" PRIu64 ", \"%s\" (%" PRIu32 ", %d) in memory",
                k->v->cat_path, e->id, e->name, e->dim, (int)e->metric, k->cur->gen, c->name,
                c->dim, (int)c->metric);
        pthread_rwlock_unlock(&db->cat_lock);
        return;
    }
    pthread_rwlock_rdlock(&c->lock);
    const struct pager *live = &c->st.pg;
    if (live->ndirty == 0) {
        bool reported = false;
        for (unsigned sp = 0; sp < PSPACE_N && !reported; sp++) {
            uint32_t n = pager_count(live, sp);
            if (pager_count(&img->pg, sp) > n)
                n = pager_count(&img->pg, sp);
            for (uint32_t p = 0; p < n && !reported; p++) {
                const uint8_t *a = pager_read(live, sp, p), *b = pager_read(&img->pg, sp, p);
                if (!a && !b)
                    continue;
                if (a && b && memcmp(a + 4, b + 4, PAGE_SIZE - 4) == 0)
                    continue;
                uint32_t phys = p < dm[sp].n ? dm[sp].phys[p] : 0;
                problem(k, "collection %" PRIu32 " \"%s\": %s page %" PRIu32 " in memory %s "
                        "its image in checkpoint %" PRIu64 " (page file \"%s\", physical page %" PRIu32
                        ", offset %" PRIu64 "), yet no page of the collection changed since",
                        e->id, c->name, space_name(sp), p,
                        !a ? "is absent, unlike" : !b ? "exists, unlike" : "differs from",
                        k->cur->gen, path, phys, (uint64_t)phys * PAGE_SIZE);
                reported = true;
            }
        }
    }
    pthread_rwlock_unlock(&c->lock);
    pthread_rwlock_unlock(&db->cat_lock);
}

/* One collection of the checkpoint's catalog. false: out of memory. */
static bool check_coll_disk(struct chk *k, const struct cat_entry *e)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%" PRIu32 ".pages", k->v->coll_dir, e->id);
    int fd = -1;
    uint32_t npages = 0;
    if (!open_file(k, path, "page file", &fd, &npages))
        return true;
    bool ok = true;
    struct pfile_refs r = {.path = path, .npages = npages};
    struct dmap dm[PSPACE_N] = {0};
    struct store tmp;
    store_prepare(&tmp, e->id, e->dim);
    r.tag = calloc(npages ? npages : 1, sizeof *r.tag);
    if (!r.tag)
        ok = false;
    for (unsigned sp = 0; ok && sp < PSPACE_N; sp++)
        ok = walk_map(k, fd, &r, e, sp, &dm[sp]);
    uint64_t bad = 0;
    if (ok)
        ok = load_pages(k, fd, &r, e->id, dm, &tmp, &bad);
    if (ok && !bad && dm[0].ok && dm[1].ok) {
        /* the point structures of the image (not walked over pages that
         * failed: every consequence would be reported again) */
        struct image_ctx ic = {.k = k, .path = path, .dm = dm};
        uint64_t np = 0;
        cairn_status st = store_check(&tmp, image_line, &ic, &np);
        if (st == CAIRN_ENOMEM)
            ok = false;
        if (ok && pager_read(&tmp.pg, PSPACE_GROUP, 0) && !np)
            k->rep->disk_points_checked += ld64(pager_read(&tmp.pg, PSPACE_GROUP, 0) +
                                                PAGE_HDR + HDR_N);
        /* after a failure or pre-writes, memory is ahead of the files */
        if (ok && !k->v->poisoned && !k->v->pending)
            compare_ckpt(k, e, &r, dm);
        if (ok && !k->v->poisoned && !k->v->pending)
            compare_live(k, e, path, &tmp, dm);
    }
    store_free(&tmp);
    for (unsigned sp = 0; sp < PSPACE_N; sp++)
        dmap_free(&dm[sp]);
    free(r.tag);
    close(fd);
    return ok;
}

/* ---- catalog -------------------------------------------------------------------- */

static bool coll_add(struct chk *k, uint32_t id, uint32_t dim)
{
    if (k->ncolls == k->capcolls) {
        size_t ncap = k->capcolls ? k->capcolls * 2 : 16;
        struct chk_coll *n = realloc(k->colls, ncap * sizeof *n);
        if (!n)
            return false;
        k->colls = n;
        k->capcolls = ncap;
    }
    k->colls[k->ncolls++] = (struct chk_coll){.id = id, .dim = dim};
    return true;
}

static struct chk_coll *coll_get(struct chk *k, uint32_t id)
{
    for (size_t i = 0; i < k->ncolls; i++)
        if (k->colls[i].id == id)
            return &k->colls[i];
    return NULL;
}

/* The catalog chain and every collection in it. false: out of memory. */
static bool check_catalog(struct chk *k)
{
    const struct ckpt_view *v = k->v;
    const struct super *cur = k->cur;
    k->catalog_ok = true;
    if (cur->gen == 0)
        return true; /* the WAL alone holds the database */
    if (cur->ncolls == 0)
        return true;
    int fd = -1;
    uint32_t npages = 0;
    if (!open_file(k, v->cat_path, "catalog", &fd, &npages)) {
        k->catalog_ok = false;
        return true;
    }
    size_t maxcat = cat_chain_max(cur);
    uint32_t *chain = calloc(maxcat + 1, sizeof *chain);
    struct cat_entry *ents = calloc(cur->ncolls, sizeof *ents);
    uint8_t *pg = NULL;
    void *pgv = NULL;
    if (posix_memalign(&pgv, PAGE_SIZE, PAGE_SIZE) == 0)
        pg = pgv;
    if (!chain || !ents || !pg) {
        free(chain);
        free(ents);
        free(pg);
        close(fd);
        return false;
    }
    size_t nchain = 0, nents = 0;
    uint32_t seen = 0, phys = cur->cat_head;
    bool chain_ok = true;
    for (uint64_t pi = 0; phys; pi++) {
        if (pi == maxcat) {
            problem(k, "catalog \"%s\": the chain is longer than the %zu pages %" PRIu32
                    " collections need (page %" PRIu32 " follows)", v->cat_path, maxcat,
                    cur->ncolls, phys);
            chain_ok = false;
            break;
        }
        bool again = false;
        for (size_t i = 0; i < nchain; i++)
            again |= chain[i] == phys;
        if (phys >= npages || again) {
            problem(k, "catalog \"%s\": chain page %" PRIu64 " is page %" PRIu32 ", %s",
                    v->cat_path, pi, phys, again ? "already in the chain (a loop)"
                                                 : "outside the file");
            chain_ok = false;
            break;
        }
        chain[nchain++] = phys;
        size_t got = 0;
        cairn_status st = cio_read(k->io, fd, pg, PAGE_SIZE, (uint64_t)phys * PAGE_SIZE,
                                   v->cat_path, &got);
        if (!st && got < PAGE_SIZE)
            st = cerr_set(CAIRN_ECORRUPT, "catalog \"%s\": page %" PRIu32 " is cut short",
                          v->cat_path, phys);
        if (!st) {
            k->rep->pages_checked++;
            st = page_verify(pg, v->cat_path, phys, 0, PT_CATALOG, 0, pi, cur->redo);
        }
        if (st) {
            problem_last(k, st);
            chain_ok = false;
            break;
        }
        uint32_t next = ld32(pg + PAGE_HDR), cnt = ld32(pg + PAGE_HDR + 4);
        if (cnt == 0 || cnt > CAT_PER_PAGE || seen + cnt > cur->ncolls) {
            problem(k, "catalog \"%s\": page %" PRIu32 " (offset %" PRIu64 ") holds %" PRIu32
                    " entries (%" PRIu32 " before it, %" PRIu32 " in all)", v->cat_path, phys,
                    (uint64_t)phys * PAGE_SIZE, cnt, seen, cur->ncolls);
            chain_ok = false;
            break;
        }
        if (!all_zero(pg + PAGE_HDR + 8 + (size_t)cnt * CAT_ENTRY,
                      PAGE_BODY - 8 - (size_t)cnt * CAT_ENTRY))
            problem(k, "catalog \"%s\": page %" PRIu32 " (offset %" PRIu64 ") has bytes after "
                    "its %" PRIu32 " entries", v->cat_path, phys, (uint64_t)phys * PAGE_SIZE,
                    cnt);
        for (uint32_t q = 0; q < cnt; q++) {
            struct cat_entry e;
            cairn_status est = ckpt_cat_entry_decode(pg + PAGE_HDR + 8 + q * CAT_ENTRY, &e,
                                                     v->cat_path, phys, q);
            if (est) {
                problem_last(k, est);
                chain_ok = false;
                continue;
            }
            bool dup = false;
            for (size_t i = 0; i < nents; i++)
                dup |= ents[i].id == e.id || strcmp(ents[i].name, e.name) == 0;
            if (dup || e.id >= cur->next_coll) {
                problem(k, "catalog \"%s\": page %" PRIu32 " entry %" PRIu32 " (collection %"
                        PRIu32 " \"%s\") %s", v->cat_path, phys, q, e.id, e.name,
                        dup ? "repeats an id or name" : "is not below the next collection id");
                chain_ok = false;
                continue;
            }
            ents[nents++] = e;
        }
        seen += cnt;
        phys = next;
    }
    if (chain_ok && seen != cur->ncolls) {
        problem(k, "catalog \"%s\" holds %" PRIu32 " collections, superblock \"%s\" says %"
                PRIu32, v->cat_path, seen, v->super_path, cur->ncolls);
        chain_ok = false;
    }
    /* The checkpointer's copy of the chain and page states. */
    if (chain_ok && !v->poisoned) {
        bool same = v->ncat == nchain;
        for (size_t i = 0; same && i < nchain; i++)
            same = v->cat_pages[i] == chain[i];
        if (!same)
            problem(k, "catalog \"%s\": the checkpointer holds a chain of %zu pages from page %"
                    PRIu32 ", checkpoint %" PRIu64 " one of %zu from page %" PRIu32,
                    v->cat_path, v->ncat, v->ncat ? v->cat_pages[0] : 0, cur->gen, nchain,
                    cur->cat_head);
        const struct pfile *cf = v->cat;
        uint32_t lim = cf->npages > npages ? cf->npages : npages;
        for (uint32_t p = 1; p < lim; p++) {
            bool in_chain = false;
            for (size_t i = 0; i < nchain; i++)
                in_chain |= chain[i] == p;
            bool used = p < cf->npages && cf->state[p] == PF_USED;
            if (in_chain != used)
                problem(k, "catalog \"%s\": page %" PRIu32 " (offset %" PRIu64 ") is %s "
                        "checkpoint %" PRIu64 "'s chain but %s for the checkpointer",
                        v->cat_path, p, (uint64_t)p * PAGE_SIZE, in_chain ? "in" : "not in",
                        cur->gen, used ? "in use" : "free");
        }
    }
    free(pg);
    close(fd);
    k->catalog_ok = chain_ok;
    bool ok = true;
    for (size_t i = 0; ok && i < nents; i++) {
        ok = coll_add(k, ents[i].id, ents[i].dim);
        if (ok)
            ok = check_coll_disk(k, &ents[i]);
        if (ok)
            k->rep->collections_checked++;
    }
    free(ents);
    free(chain);
    return ok;
}

/* ---- memory ------------------------------------------------------------------- */

struct mem_ctx {
    struct chk *k;
};

static bool memory_line(void *vctx, const char *line)
{
    problem(((struct mem_ctx *)vctx)->k, "in memory: %s", line);
    return true;
}

/* store_check and the id hash of every live collection. false: no memory. */
static bool check_memory(struct chk *k)
{
    cairn_db *db = k->db;
    bool ok = true;
    pthread_rwlock_rdlock(&db->cat_lock);
    for (size_t i = 0; ok && i < db->ncolls; i++) {
        struct coll *c = db->colls[i];
        pthread_rwlock_rdlock(&c->lock);
        const struct store *s = &c->st;
        struct mem_ctx mc = {.k = k};
        uint64_t np = 0;
        cairn_status st = store_check(s, memory_line, &mc, &np);
        if (st == CAIRN_ENOMEM)
            ok = false;
        /* The in-memory state store_load built and mutations keep: the
         * counters against the header page, the id hash against the slots. */
        const uint8_t *h = pager_read(&s->pg, PSPACE_GROUP, 0);
        if (ok && h && !np) {
            const uint8_t *b = h + PAGE_HDR;
            if (ld64(b + HDR_N) != s->n || ld64(b + HDR_PBYTES) != s->payload_bytes ||
                ld32(b + HDR_OPEN) != s->heap_open)
                problem(k, "in memory: collection %" PRIu32 " \"%s\": the header page counts "
                        "%" PRIu64 " points, %" PRIu64 " payload bytes, open heap page %"
                        PRIu32 "; the store %zu, %" PRIu64 ", %" PRIu32, c->id, c->name,
                        ld64(b + HDR_N), ld64(b + HDR_PBYTES), ld32(b + HDR_OPEN), s->n,
                        s->payload_bytes, s->heap_open);
        }
        if (ok && !np) {
            size_t bad = SIZE_MAX, used = 0;
            for (size_t slot = 0; slot < s->n && bad == SIZE_MAX; slot++)
                if (store_find(s, store_get_id(s, slot)) != slot)
                    bad = slot;
            for (size_t j = 0; j < s->hcap; j++)
                used += s->hslots[j] != UINT32_MAX;
            if (bad != SIZE_MAX)
                problem(k, "in memory: collection %" PRIu32 " \"%s\": the id hash does not "
                        "find point %" PRIu64 " at its slot %zu", c->id, c->name,
                        store_get_id(s, bad), bad);
            else if (used != s->n)
                problem(k, "in memory: collection %" PRIu32 " \"%s\": the id hash holds %zu "
                        "ids for %zu points", c->id, c->name, used, s->n);
        }
        k->rep->points_checked += s->n;
        pthread_rwlock_unlock(&c->lock);
    }
    pthread_rwlock_unlock(&db->cat_lock);
    return ok;
}

/* ---- WAL ----------------------------------------------------------------------- */

/* A record of the open transaction, judged at its COMMIT (as replay does). */
struct pend {
    uint8_t type;
    uint32_t coll, dim;
    uint64_t lsn;
    bool payload_ok;
};

static void wal_where(const struct chk *k, uint64_t lsn, char *out, size_t n)
{
    uint64_t size = (uint64_t)1 << k->db->seg_shift;
    char name[64];
    wal_seg_name(name, sizeof name, k->db->timeline, lsn & ~(size - 1));
    snprintf(out, n, "WAL segment \"%s/%s\" at offset %" PRIu64 " (LSN %" PRIu64 ")",
             k->db->waldir, name, lsn & (size - 1), lsn);
}

static void wal_problem(struct chk *k, uint64_t lsn, const char *fmt, ...) CAIRN_PRINTF(3, 4);
static void wal_problem(struct chk *k, uint64_t lsn, const char *fmt, ...)
{
    char where[400], what[512];
    wal_where(k, lsn, where, sizeof where);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    problem(k, "%s: %s", where, what);
}

/* The records of a committed transaction against the collections, in
 * order (DDL included), as replay applies them. */
static bool wal_apply(struct chk *k, const struct pend *p, size_t n, bool rules)
{
    for (size_t i = 0; i < n; i++) {
        if (!rules)
            continue;
        struct chk_coll *c = coll_get(k, p[i].coll);
        switch (p[i].type) {
        case WAL_REC_CREATE_COLL:
            if (c)
                wal_problem(k, p[i].lsn, "creates collection %" PRIu32 ", which exists",
                            p[i].coll);
            else if (!coll_add(k, p[i].coll, p[i].dim))
                return false;
            break;
        case WAL_REC_DROP_COLL:
            if (c)
                *c = k->colls[--k->ncolls];
            break;
        default:
            if (!c)
                wal_problem(k, p[i].lsn, "names collection %" PRIu32 ", which does not exist",
                            p[i].coll);
            else if (p[i].type == WAL_REC_UPSERT && p[i].dim != c->dim)
                wal_problem(k, p[i].lsn, "has dimension %" PRIu32 ", collection %" PRIu32
                            " has %" PRIu32, p[i].dim, p[i].coll, c->dim);
            else if (!p[i].payload_ok)
                wal_problem(k, p[i].lsn, "holds a payload that is not a JSON object");
            break;
        }
    }
    return true;
}

/* false: out of memory. */
static bool check_wal(struct chk *k)
{
    cairn_db *db = k->db;
    const uint64_t start = k->cur->redo;
    const uint64_t limit = wal_writer_durable_lsn(db->wal);
    /* Without a checkpoint the log must begin at LSN 0, as the open needs. */
    uint64_t *starts = NULL;
    size_t nseg = 0;
    cairn_status st = wal_seg_list(db->waldir, db->timeline, &starts, &nseg);
    if (st) {
        problem_last(k, st);
        return true;
    }
    uint64_t oldest = nseg ? starts[0] : 0;
    free(starts);
    if (nseg == 0) {
        if (limit > WAL_SEG_DATA || start)
            problem(k, "WAL \"%s\" holds no segment of timeline %" PRIu32 ", yet the log "
                    "is durable to LSN %" PRIu64, db->waldir, db->timeline, limit);
        return true;
    }
    /* The open falls back to the older checkpoint when the current slot
     * is torn: the WAL from its redo LSN is kept for that. */
    uint64_t seg_mask = ~(((uint64_t)1 << db->seg_shift) - 1);
    if (k->have_prev && oldest > (k->prev_redo & seg_mask))
        problem(k, "WAL \"%s\" begins at LSN %" PRIu64 ": the log from LSN %" PRIu64 ", the "
                "redo LSN of the older checkpoint %" PRIu64 " (superblock \"%s\"), is gone, so "
                "an open could not fall back to it", db->waldir, oldest, k->prev_redo,
                k->prev_gen, k->v->super_path);
    if (start == 0 && oldest != 0) {
        problem(k, "WAL \"%s\" begins at LSN %" PRIu64 ", not 0, and no checkpoint covers "
                "the log before it", db->waldir, oldest);
        return true;
    }
    wal_reader *r = NULL;
    st = wal_reader_open(db->waldir, db->timeline, start, &r);
    if (st) {
        problem_st(k, st == CAIRN_ENOTFOUND ? CAIRN_ECORRUPT : st,
                   "could not read the WAL from checkpoint %" PRIu64 "'s redo LSN %" PRIu64
                   ": %s", k->cur->gen, start, cairn_last_error());
        return true;
    }
    struct pend *pend = NULL;
    size_t npend = 0, cappend = 0;
    uint64_t open_txn = 0, reached = start;
    bool ok = true, rules = k->catalog_ok;
    for (;;) {
        struct wal_record rec;
        bool end = false;
        st = wal_reader_next(r, &rec, &end);
        if (st) {
            problem_last(k, st);
            break;
        }
        if (end) {
            const struct wal_end *e = wal_reader_end(r);
            reached = e->end_lsn;
            if (e->end_lsn < limit)
                problem(k, "WAL segment \"%s\" at offset %" PRIu64 " (LSN %" PRIu64 "): the "
                        "log ends there (invalid record), before the durable LSN %" PRIu64,
                        e->seg_path, e->seg_offset, e->end_lsn, limit);
            break;
        }
        if (rec.lsn >= limit) {
            reached = rec.lsn; /* written after the check began */
            break;
        }
        reached = rec.lsn + CAIRN_ALIGN_UP((uint64_t)rec.len, (uint64_t)WAL_REC_ALIGN);
        k->rep->wal_records_checked++;
        struct pend p = {.type = rec.type, .coll = rec.coll_id, .lsn = rec.lsn,
                         .payload_ok = true};
        cairn_status dst = CAIRN_OK;
        switch (rec.type) {
        case WAL_REC_UPSERT: {
            struct wal_upsert u;
            dst = wal_dec_upsert(&rec, &u);
            if (!dst) {
                p.dim = u.dim;
                p.payload_ok = check_payload(u.payload, u.payload_len) == CAIRN_OK;
            }
            break;
        }
        case WAL_REC_DELETE: {
            uint64_t id;
            dst = wal_dec_delete(&rec, &id);
            break;
        }
        case WAL_REC_CREATE_COLL: {
            struct wal_create_coll cc;
            dst = wal_dec_create_coll(&rec, &cc);
            if (!dst)
                p.dim = cc.dim;
            break;
        }
        case WAL_REC_RESTORE_POINT: {
            struct wal_restore_point rp;
            dst = wal_dec_restore_point(&rec, &rp);
            break;
        }
        default:
            break;
        }
        if (dst) {
            wal_problem(k, rec.lsn, "%s", cairn_last_error());
            continue;
        }
        if (rec.type == WAL_REC_RESTORE_POINT || rec.type == WAL_REC_SWITCH)
            continue;
        if (rec.type != WAL_REC_COMMIT) {
            if (rec.txn_id == 0) {
                wal_problem(k, rec.lsn, "%s record without a transaction id",
                            wal_rec_type_name(rec.type));
                continue;
            }
            if (open_txn && rec.txn_id != open_txn)
                npend = 0; /* a transaction cut by a crash: replay discards it */
            open_txn = rec.txn_id;
            if (npend == cappend) {
                size_t ncap = cappend ? cappend * 2 : 64;
                struct pend *np = realloc(pend, ncap * sizeof *np);
                if (!np) {
                    ok = false;
                    break;
                }
                pend = np;
                cappend = ncap;
            }
            pend[npend++] = p;
            continue;
        }
        struct wal_commit cm;
        if ((dst = wal_dec_commit(&rec, &cm))) {
            wal_problem(k, rec.lsn, "%s", cairn_last_error());
            continue;
        }
        if (open_txn && rec.txn_id != open_txn)
            npend = 0;
        if (cm.nrecords != npend)
            wal_problem(k, rec.lsn, "the commit of transaction %" PRIu64 " counts %" PRIu32
                        " records, the log holds %zu", rec.txn_id, cm.nrecords, npend);
        else if (!(ok = wal_apply(k, pend, npend, rules)))
            break;
        npend = 0;
        open_txn = 0;
    }
    free(pend);
    wal_reader_close(r);
    if (reached > start)
        k->rep->wal_bytes_checked = (reached < limit ? reached : limit) - start;
    return ok;
}

/* ---- the entry point -------------------------------------------------------------- */

static cairn_status run_check(cairn_db *db, const struct ckpt_view *v, void *vctx)
{
    struct chk *k = vctx;
    k->db = db;
    k->v = v;
    k->cur = v->cur;
    k->rep->generation = v->cur->gen;
    cairn_status st = cio_ctx_open(&k->io, CAIRN_IO_DEFAULT, PFILE_RUNS);
    if (st)
        return st;
    void *bufv = NULL;
    if (posix_memalign(&bufv, PAGE_SIZE, 2 * (size_t)PFILE_READ_BATCH * PAGE_SIZE) != 0) {
        cio_ctx_close(k->io);
        return cerr_set(CAIRN_ENOMEM, "cairn_check: out of memory");
    }
    k->buf = bufv;
    if (v->poisoned)
        warning(k, "checkpoints of \"%s\" are disabled until it is reopened (a superblock "
                "write or a pre-write failed): the checkpointer's state is not compared "
                "with the files", db->path);
    else if (v->pending)
        warning(k, "pages of \"%s\" are pre-written for the next checkpoint: the "
                "checkpointer's state and the live pages are not compared with the files",
                db->path);
    check_super(k);
    bool ok = check_catalog(k);
    if (ok)
        ok = check_memory(k);
    if (ok)
        ok = check_wal(k);
    free(k->buf);
    cio_ctx_close(k->io);
    free(k->colls);
    if (!ok)
        return cerr_set(CAIRN_ENOMEM, "cairn_check of \"%s\": out of memory", db->path);
    return CAIRN_OK;
}

CAIRN_API cairn_status cairn_check_ex(cairn_db *db, cairn_check_report *report,
                                      cairn_check_fn fn, void *ctx)
{
    cerr_clear();
    cairn_check_report local;
    if (!report)
        report = &local;
    memset(report, 0, sizeof *report);
    if (!db)
        return cerr_set(CAIRN_EINVAL, "cairn_check: NULL database");
    uint64_t t0 = cairn_mono_us();
    struct chk k = {.rep = report, .fn = fn, .ctx = ctx};
    cairn_status st = ckpt_check_hold(db, run_check, &k);
    report->duration_us = cairn_mono_us() - t0;
    if (st)
        return st;
    if (report->problems)
        return cerr_set(k.first_st ? k.first_st : CAIRN_ECORRUPT, "%s",
                        report->first_problem);
    cerr_clear();
    return CAIRN_OK;
}

CAIRN_API cairn_status cairn_check(cairn_db *db, cairn_check_report *report)
{
    return cairn_check_ex(db, report, NULL, NULL);
}
