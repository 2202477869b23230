/*
 * test_bsrc.c — the backup source (engine/bsrc.h): a pinned checkpoint
 * described file by file and page by page, and its pages read verified.
 *
 * 1. image: a database of several collections (4-d, 128-d, 2100-d whose
 *    vectors span pages; payloads from none to ~60 KB: heap records and
 *    overflow chains), deletes, a collection dropped before the pinned
 *    checkpoints and one dropped after the first pin, several checkpoints;
 *    a writer thread keeps committing and checkpointing while each round
 *    pins, opens a bsrc, waits for two more checkpoints, then checks: the
 *    files and collections match the oracle at the redo LSN (names, ids,
 *    dimensions, metrics, point counts); every ref is sorted, in its file,
 *    readable and verified (crc recomputed here, header, page LSN = the
 *    map's and below the redo LSN; any order of refs); meta + superblock +
 *    every page at its physical position + the WAL segment cut at the redo
 *    LSN make a directory byte-identical to cairn_pin_copy's that opens to
 *    exactly the oracle's state at the redo LSN, replaying nothing, and
 *    checks clean. At the end, with the writer stopped, the point counts
 *    equal cairn_collection_list's.
 * 2. incremental: image A (checkpoint g1), a few points changed, image B
 *    (g2), both pinned while more checkpoints rewrite everything: every
 *    page of B whose (file, physical page, LSN) is in A has the same bytes
 *    in A; few of B's pages are not in A (printed); and B rebuilt from A's
 *    pages plus only those opens to B's state.
 * 3. damage: a flipped byte in a data page makes bsrc_read fail with
 *    CAIRN_ECORRUPT naming file and page (the other pages still read); a
 *    point page or catalog page with a wrong LSN (crc fixed up) too; a
 *    damaged map page, header page or catalog page makes bsrc_open fail
 *    with CAIRN_ECORRUPT naming file and page.
 *
 * Seeded: CAIRN_SEED replays a run. CAIRN_BSRC_ROUNDS: pins in case 1
 * (default 3).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cairn.h"
#include "common/crc32c.h"
#include "engine/bsrc.h"
#include "engine/pager.h"
#include "testutil.h"
#include "testutil_cmocka.h"
#include "wal/wal.h"

static char tmpbase[512];
static int dbcounter;
static uint64_t g_seed;

static void new_dir(char *out, size_t n, const char *what)
{
    snprintf(out, n, "%s/%s%d", tmpbase, what, dbcounter++);
}

/* ---- an oracle: every op with the commit LSN of its transaction ------------- */

#define NCOLL 4 /* the model's collections; "late" (3) is dropped in case 1 */
static const char *const cname[NCOLL] = {"small", "mid", "wide", "late"};
static const uint32_t cdim[NCOLL] = {4, 128, 2100, 8};
static const cairn_metric cmet[NCOLL] = {CAIRN_METRIC_L2, CAIRN_METRIC_COSINE,
                                         CAIRN_METRIC_DOT, CAIRN_METRIC_L2};
static const uint64_t cids[NCOLL] = {1500, 700, 60, 80}; /* ids in [0, cids) */
#define MAXDIM 2100

struct op {
    uint64_t lsn, seq;
    uint32_t coll;
    uint64_t id;
    uint32_t vseed; /* 0: delete */
    uint32_t pad;   /* TU_NO_PAYLOAD: none */
};

struct oplog {
    struct op *ops;
    size_t n, cap;
};

static void log_push(struct oplog *l, const struct op *o)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 1024;
        l->ops = realloc(l->ops, l->cap * sizeof *l->ops);
        if (!l->ops)
            abort();
    }
    l->ops[l->n] = *o;
    l->ops[l->n].seq = l->n;
    l->n++;
}

/* A payload size: mostly small, some none, some large (overflow chains). */
static uint32_t draw_pad(uint64_t *rng)
{
    uint64_t r = tu_splitmix(rng) % 20;
    if (r == 0)
        return 20000 + (uint32_t)(tu_splitmix(rng) % 40000);
    if (r < 3)
        return TU_NO_PAYLOAD;
    return 10 + (uint32_t)(tu_splitmix(rng) % 300);
}

/* One transaction of ops (coll < 0: any of the first ncoll, at random);
 * recorded in l (may be NULL) with its commit LSN. */
static cairn_status txn_ops(cairn_db *db, struct op *ops, size_t n, struct oplog *l)
{
    static _Thread_local float v[MAXDIM];
    cairn_txn *t = NULL;
    cairn_status st = cairn_txn_begin(db, &t);
    for (size_t k = 0; !st && k < n; k++) {
        const struct op *o = &ops[k];
        if (!o->vseed) {
            st = cairn_txn_delete(t, cname[o->coll], o->id);
            continue;
        }
        tu_gen_vector(o->vseed, v, cdim[o->coll]);
        size_t plen = 0;
        char *pay = o->pad == TU_NO_PAYLOAD ? NULL : tu_gen_payload(o->vseed, o->pad, &plen);
        if (o->pad != TU_NO_PAYLOAD && !pay)
            st = CAIRN_ENOMEM;
        else
            st = cairn_txn_upsert(t, cname[o->coll], o->id, v, cdim[o->coll], pay, plen);
        free(pay);
    }
    cairn_commit_info ci;
    if (!st)
        st = cairn_txn_commit(t, &ci);
    cairn_txn_free(t);
    for (size_t k = 0; !st && l && k < n; k++) {
        ops[k].lsn = ci.commit_lsn;
        log_push(l, &ops[k]);
    }
    return st;
}

/* A random transaction of 1..6 ops over collections [0, ncoll). */
static cairn_status txn_random(cairn_db *db, uint64_t *rng, unsigned ncoll, struct oplog *l)
{
    struct op ops[6];
    size_t n = 1 + tu_splitmix(rng) % 6;
    for (size_t k = 0; k < n; k++) {
        struct op *o = &ops[k];
        o->coll = (uint32_t)(tu_splitmix(rng) % ncoll);
        o->id = tu_splitmix(rng) % cids[o->coll];
        bool del = tu_splitmix(rng) % 6 == 0;
        o->vseed = del ? 0 : 1 + (uint32_t)(tu_splitmix(rng) % 1000000);
        o->pad = draw_pad(rng);
    }
    return txn_ops(db, ops, n, l);
}

/* Upserts ids [0, n) of collection c, 50 per transaction. */
static void fill(cairn_db *db, uint32_t c, uint64_t n, uint64_t *rng, struct oplog *l)
{
    struct op ops[50];
    for (uint64_t base = 0; base < n; base += 50) {
        size_t k = 0;
        for (uint64_t id = base; id < n && id < base + 50; id++, k++)
            ops[k] = (struct op){.coll = c, .id = id,
                                 .vseed = 1 + (uint32_t)(tu_splitmix(rng) % 1000000),
                                 .pad = draw_pad(rng)};
        must(txn_ops(db, ops, k, l), "fill");
    }
}

static int cmp_op(const void *a, const void *b)
{
    const struct op *x = a, *y = b;
    if (x->lsn != y->lsn)
        return x->lsn < y->lsn ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The state at redo: every op of a transaction that committed before it
 * (ops sorted by cmp_op), over the collections `in` says exist. */
static void model_at(struct tu_model *m, const struct op *all, size_t n, uint64_t redo,
                     const bool in[NCOLL])
{
    for (uint32_t c = 0; c < NCOLL; c++)
        if (in[c])
            assert_int_equal(tu_model_create(m, cname[c], cdim[c], cmet[c]), 0);
    for (size_t i = 0; i < n && all[i].lsn < redo; i++) {
        const struct op *o = &all[i];
        if (!in[o->coll])
            continue;
        int r = o->vseed ? tu_model_upsert(m, cname[o->coll], o->id, o->vseed, o->pad)
                         : tu_model_delete(m, cname[o->coll], o->id);
        (void)r; /* deleting an absent id is a no-op */
    }
}

/* ---- reading and materializing an image ------------------------------------- */

static struct page_ref *refs_dup(const struct bsrc_file *f)
{
    struct page_ref *r = malloc((f->nrefs ? f->nrefs : 1) * sizeof *r);
    assert_non_null(r);
    if (f->nrefs)
        memcpy(r, f->refs, f->nrefs * sizeof *r);
    return r;
}

static const struct bsrc_file *file_named(const struct bsrc *b, const char *name, size_t *idx)
{
    for (size_t i = 0; i < b->nfiles; i++)
        if (strcmp(b->files[i].name, name) == 0) {
            if (idx)
                *idx = i;
            return &b->files[i];
        }
    return NULL;
}

/* The ref of file f at physical page phys, or NULL. */
static const struct page_ref *ref_at(const struct bsrc_file *f, uint32_t phys)
{
    size_t lo = 0, hi = f->nrefs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (f->refs[mid].phys < phys)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < f->nrefs && f->refs[lo].phys == phys ? &f->refs[lo] : NULL;
}

/* What a reader of every page checks, independently of the engine. */
struct verify {
    const struct bsrc *b;
    const struct bsrc_file *f;
    uint64_t pages;
    uint32_t last_phys;
};

static cairn_status verify_page(void *vctx, const struct page_ref *r, const uint8_t *page,
                                cairn_status st)
{
    struct verify *v = vctx;
    assert_int_equal(st, CAIRN_OK);
    assert_non_null(page);
    /* in physical order, whatever the order of the refs given */
    if (v->pages)
        assert_true(r->phys > v->last_phys);
    v->last_phys = r->phys;
    v->pages++;
    struct page_hdr h;
    page_hdr_get(page, &h);
    assert_int_equal(h.crc, crc32c(0, page + 4, PAGE_SIZE - 4));
    assert_int_equal(h.coll_id, v->f->coll_id);
    assert_int_equal(h.space, r->space);
    assert_int_equal(h.page_no, r->pno);
    uint64_t redo = v->b->info.redo_lsn;
    if (v->f->coll_id == 0) {
        assert_int_equal(h.type, PT_CATALOG);
        assert_int_equal(h.lsn, redo); /* the chain is written whole */
    } else if (r->type) {
        assert_true(r->type == PT_MAP_LEAF || r->type == PT_MAP_INNER);
        assert_int_equal(h.type, r->type);
        assert_true(h.lsn <= redo);
    } else {
        assert_true(h.type >= PT_COLL && h.type <= PT_OVFL);
        assert_int_equal(h.lsn, r->lsn);
        assert_true(h.lsn < redo); /* no page of the image is newer than it */
    }
    return CAIRN_OK;
}

/* Every ref of every file: sorted, inside its file, readable, verified;
 * one file read with its refs given in reverse order. Returns the pages. */
static uint64_t read_all(struct bsrc *b)
{
    uint64_t total = 0;
    for (size_t i = 0; i < b->nfiles; i++) {
        const struct bsrc_file *f = &b->files[i];
        for (size_t k = 0; k < f->nrefs; k++) {
            assert_true(f->refs[k].phys > 0 && f->refs[k].phys < f->npages);
            if (k)
                assert_true(f->refs[k].phys > f->refs[k - 1].phys);
        }
        struct page_ref *r = refs_dup(f);
        if (i == b->nfiles - 1) /* any order: reversed */
            for (size_t k = 0; k < f->nrefs / 2; k++) {
                struct page_ref t = r[k];
                r[k] = r[f->nrefs - 1 - k];
                r[f->nrefs - 1 - k] = t;
            }
        struct verify v = {.b = b, .f = f};
        must(bsrc_read(b, i, r, f->nrefs, verify_page, &v), "bsrc_read");
        assert_int_equal(v.pages, f->nrefs);
        total += v.pages;
        free(r);
    }
    return total;
}

static void write_file(const char *dir, const char *name, const void *data, size_t len)
{
    char p[900];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
}

struct sink {
    int fd;
    uint64_t pages;
};

static cairn_status put_page(void *vctx, const struct page_ref *r, const uint8_t *page,
                             cairn_status st)
{
    struct sink *s = vctx;
    assert_int_equal(st, CAIRN_OK);
    assert_int_equal(pwrite(s->fd, page, PAGE_SIZE, (off_t)r->phys * PAGE_SIZE), PAGE_SIZE);
    s->pages++;
    return CAIRN_OK;
}

/* Is ref r of image b also a page of image a (same file and physical
 * page, same LSN, space, page number and type: bsrc.h)? Map and catalog
 * pages never are (UINT64_MAX: always taken). */
static bool in_base(const struct bsrc_file *fa, const struct page_ref *r)
{
    if (!fa || r->lsn == UINT64_MAX)
        return false;
    const struct page_ref *ar = ref_at(fa, r->phys);
    return ar && ar->lsn == r->lsn && ar->space == r->space && ar->pno == r->pno &&
           ar->type == r->type;
}

/* Writes image b into the new directory dir as bsrc.h says: meta,
 * superblock, every page at its physical position in files of the listed
 * lengths, and the WAL segment of srcdb holding the redo LSN, cut at it.
 * With a base image a, each page that is in a is read from a instead
 * (*from_base counts them). */
static void materialize(struct bsrc *b, struct bsrc *a, const char *srcdb, const char *dir,
                        uint64_t *from_base)
{
    char p[900];
    assert_int_equal(mkdir(dir, 0755), 0);
    snprintf(p, sizeof p, "%s/collections", dir);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/wal", dir);
    assert_int_equal(mkdir(p, 0755), 0);
    write_file(dir, "meta", b->meta, b->meta_len);
    write_file(dir, "superblock", b->super, b->super_len);
    for (size_t i = 0; i < b->nfiles; i++) {
        const struct bsrc_file *f = &b->files[i];
        snprintf(p, sizeof p, "%s/%s", dir, f->name);
        struct sink s = {.fd = open(p, O_RDWR | O_CREAT | O_EXCL, 0644)};
        assert_true(s.fd >= 0);
        assert_int_equal(ftruncate(s.fd, (off_t)f->npages * PAGE_SIZE), 0);
        size_t ai = 0;
        const struct bsrc_file *fa = a ? file_named(a, f->name, &ai) : NULL;
        struct page_ref *mine = refs_dup(f), *base = refs_dup(f);
        size_t nm = 0, nb = 0;
        for (size_t k = 0; k < f->nrefs; k++) {
            if (in_base(fa, &f->refs[k]))
                base[nb++] = f->refs[k];
            else
                mine[nm++] = f->refs[k];
        }
        /* B's refs, read from A's file: verified against what B expects */
        if (nb)
            must(bsrc_read(a, ai, base, nb, put_page, &s), "read from the base");
        must(bsrc_read(b, i, mine, nm, put_page, &s), "read");
        assert_int_equal(s.pages, f->nrefs);
        if (from_base)
            *from_base += nb;
        free(mine);
        free(base);
        close(s.fd);
    }
    uint64_t redo = b->info.redo_lsn, seg = (uint64_t)1 << b->seg_shift;
    assert_true(redo > 0);
    uint64_t start = (redo - 1) & ~(seg - 1);
    char name[64];
    wal_seg_name(name, sizeof name, b->info.timeline, start);
    snprintf(p, sizeof p, "%s/wal/%s", srcdb, name);
    int sfd = open(p, O_RDONLY);
    assert_true(sfd >= 0);
    size_t len = (size_t)(redo - start);
    uint8_t *buf = malloc(len);
    assert_non_null(buf);
    assert_int_equal(pread(sfd, buf, len, 0), (ssize_t)len);
    close(sfd);
    snprintf(p, sizeof p, "%s/wal/%s", dir, name);
    int dfd = open(p, O_RDWR | O_CREAT | O_EXCL, 0644);
    assert_true(dfd >= 0);
    assert_int_equal(ftruncate(dfd, (off_t)seg), 0);
    assert_int_equal(pwrite(dfd, buf, len, 0), (ssize_t)len);
    close(dfd);
    free(buf);
}

static bool all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

/* dir a and dir b hold the same files (relative paths) with the same
 * bytes; a page file of b may be longer, by holes only (its length is the
 * file's when b's walk ran, and checkpoints go on growing the source). */
static void same_files(const char *a, const char *b)
{
    struct tu_tree ta, tb;
    if (tu_tree_take(&ta, a) != 0 || tu_tree_take(&tb, b) != 0)
        fail_msg("tree: %s", tu_error());
    size_t la = strlen(a), lb = strlen(b);
    if (ta.n != tb.n)
        fail_msg("%s holds %zu files, %s %zu", a, ta.n, b, tb.n);
    for (size_t i = 0; i < ta.n; i++) {
        const struct tu_tree_file *x = &ta.f[i], *y = &tb.f[i];
        if (strcmp(x->path + la, y->path + lb) != 0)
            fail_msg("%s holds %s where %s holds %s", a, x->path + la, b, y->path + lb);
        size_t pl = strlen(x->path);
        bool pages = pl > 6 && strcmp(x->path + pl - 6, ".pages") == 0;
        if (x->len > y->len || (x->len < y->len && !pages) ||
            memcmp(x->data, y->data, x->len) != 0 ||
            !all_zero(y->data + x->len, y->len - x->len))
            fail_msg("%s differs between %s and %s", x->path + la, a, b);
    }
    tu_tree_free(&ta);
    tu_tree_free(&tb);
}

/* The directory opens to `want` from checkpoint gen, replaying nothing,
 * and checks clean. */
static void check_opens_to(const char *dir, uint64_t gen, const struct tu_dig *want,
                           const struct tu_model *m)
{
    cairn_db *c = must_open(dir);
    struct tu_dig got = {0};
    if (tu_state_digest(c, &got, 0) != 0)
        fail_msg("digest: %s", tu_error());
    if (!tu_dig_eq(want, &got)) {
        char why[512] = "";
        if (m)
            tu_model_explain(c, m, why, sizeof why);
        fail_msg("%s is not the state of checkpoint %" PRIu64 ": %s", dir, gen, why);
    }
    tu_dig_free(&got);
    cairn_stats s;
    must(cairn_stats_get(c, &s), "stats");
    assert_int_equal(s.recovery.checkpoint, gen);
    assert_int_equal(s.recovery.records_replayed, 0);
    cairn_check_report rep;
    must(cairn_check(c, &rep), "check");
    assert_int_equal(rep.problems, 0);
    assert_int_equal(rep.warnings, 0);
    assert_int_equal(rep.generation, gen);
    must(cairn_close(c), "close");
}

/* The current checkpoint generation, through a pin of its own. */
static uint64_t current_gen(const char *dir)
{
    cairn_pin *p = NULL;
    cairn_pin_info pi;
    if (cairn_pin_open(dir, &p, &pi) != CAIRN_OK)
        return 0;
    cairn_pin_close(p);
    return pi.generation;
}

/* ---- 1 ------------------------------------------------------------------------ */

struct writer {
    cairn_db *db;
    uint64_t rng;
    atomic_bool *stop;
    struct oplog log;
    uint64_t txns, checkpoints;
    cairn_status err;
    char msg[512];
};

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    while (!atomic_load(w->stop)) {
        cairn_status st = txn_random(w->db, &w->rng, 3, &w->log);
        if (!st && ++w->txns % 12 == 0) {
            st = cairn_checkpoint(w->db, NULL);
            w->checkpoints++;
        }
        if (st) {
            w->err = st;
            snprintf(w->msg, sizeof w->msg, "%s", cairn_last_error());
            break;
        }
    }
    return NULL;
}

/* The writer of case 1; stopped by the teardown too, so that a failed
 * assertion of the main thread does not leave it running. */
static atomic_bool g_stop;
static pthread_t g_th;
static bool g_running;

static int stop_writer(void **state)
{
    (void)state;
    if (g_running) {
        atomic_store(&g_stop, true);
        pthread_join(g_th, NULL);
        g_running = false;
    }
    return 0;
}

/* Files and collections of b against the model of its redo LSN. */
static void check_layout(const struct bsrc *b, const cairn_pin_info *pi,
                         const struct tu_model *m, const char *dir)
{
    assert_int_equal(b->info.generation, pi->generation);
    assert_int_equal(b->info.redo_lsn, pi->redo_lsn);
    assert_int_equal(b->info.timeline, pi->timeline);
    assert_int_equal(b->info.db_id, pi->db_id);
    assert_int_equal(b->info.collections, pi->collections);
    assert_int_equal(b->info.last_txn_id, pi->last_txn_id);
    assert_true(b->last_commit_us > 0);
    /* meta as on disk; the superblock: the pinned slot, the other zero */
    char p[800];
    snprintf(p, sizeof p, "%s/meta", dir);
    size_t ml = 0;
    unsigned char *meta = tu_read_file(p, &ml);
    assert_non_null(meta);
    assert_int_equal(b->meta_len, ml);
    assert_memory_equal(b->meta, meta, ml);
    uint32_t shift;
    memcpy(&shift, meta + 12, 4);
    assert_int_equal(b->seg_shift, shift);
    free(meta);
    assert_int_equal(b->super_len, 2 * PAGE_SIZE);
    unsigned slot = (unsigned)(pi->generation % 2);
    struct page_hdr h;
    page_hdr_get(b->super + slot * PAGE_SIZE, &h);
    assert_int_equal(h.type, PT_SUPER);
    assert_int_equal(h.page_no, slot);
    assert_int_equal(h.lsn, pi->redo_lsn);
    for (size_t k = 0; k < PAGE_SIZE; k++)
        assert_int_equal(b->super[(1 - slot) * PAGE_SIZE + k], 0);

    assert_int_equal(b->ncolls, m->n);
    assert_int_equal(b->nfiles, b->ncolls + 1);
    assert_string_equal(b->files[0].name, "catalog.pages");
    assert_int_equal(b->files[0].coll_id, 0);
    assert_true(b->files[0].nrefs >= 1);
    for (size_t k = 0; k < b->files[0].nrefs; k++)
        assert_int_equal(b->files[0].refs[k].type, PT_CATALOG);
    for (size_t i = 0; i < b->ncolls; i++) {
        const struct bsrc_coll *c = &b->colls[i];
        const struct bsrc_file *f = &b->files[c->file];
        char name[64];
        snprintf(name, sizeof name, "collections/%" PRIu32 ".pages", c->id);
        assert_string_equal(f->name, name);
        assert_int_equal(f->coll_id, c->id);
        assert_int_equal(c->file, i + 1);
        const struct tu_mcoll *mc = NULL;
        for (size_t k = 0; k < m->n; k++)
            if (strcmp(m->c[k].name, c->name) == 0)
                mc = &m->c[k];
        if (!mc)
            fail_msg("collection \"%s\" of the image is not in the oracle", c->name);
        assert_int_equal(c->dim, mc->dim);
        assert_int_equal(c->metric, mc->metric);
        if (c->points != mc->n)
            fail_msg("collection \"%s\": the image holds %" PRIu64 " points, the oracle %zu",
                     c->name, c->points, mc->n);
        snprintf(p, sizeof p, "%s/%s", dir, f->name);
        struct stat sb;
        assert_int_equal(stat(p, &sb), 0); /* kept while pinned, even if dropped */
        assert_true((uint64_t)sb.st_size / PAGE_SIZE >= f->npages);
    }
}

static void test_image(void **state)
{
    (void)state;
    char dir[600];
    new_dir(dir, sizeof dir, "db");
    uint64_t rng = g_seed;
    struct oplog setup = {0};
    cairn_db *db = must_open(dir);
    for (uint32_t c = 0; c < NCOLL; c++)
        must(cairn_collection_create(db, cname[c], cdim[c], cmet[c]), "create");
    must(cairn_collection_create(db, "gone", 16, CAIRN_METRIC_L2), "create gone");
    for (uint32_t c = 0; c < NCOLL; c++)
        fill(db, c, cids[c], &rng, &setup);
    must(cairn_checkpoint(db, NULL), "checkpoint");
    {
        float v[16];
        cairn_txn *t = NULL;
        must(cairn_txn_begin(db, &t), "begin");
        for (uint64_t id = 0; id < 100; id++) {
            tu_gen_vector((uint32_t)id, v, 16);
            size_t plen = 0;
            char *pay = tu_gen_payload((uint32_t)id, id % 10 ? 50 : 30000, &plen);
            must(cairn_txn_upsert(t, "gone", id, v, 16, pay, plen), "upsert gone");
            free(pay);
        }
        must(cairn_txn_commit(t, NULL), "commit");
        cairn_txn_free(t);
    }
    for (int i = 0; i < 40; i++)
        must(txn_random(db, &rng, NCOLL, &setup), "txn");
    must(cairn_checkpoint(db, NULL), "checkpoint");
    must(cairn_collection_drop(db, "gone"), "drop gone");
    for (int i = 0; i < 40; i++)
        must(txn_random(db, &rng, NCOLL, &setup), "txn");
    must(cairn_checkpoint(db, NULL), "checkpoint");

    static struct writer w;
    w = (struct writer){.db = db, .rng = g_seed * 31 + 7, .stop = &g_stop};
    atomic_store(&g_stop, false);
    assert_int_equal(pthread_create(&g_th, NULL, writer_main, &w), 0);
    g_running = true;
    int rounds = (int)tu_seed_env("CAIRN_BSRC_ROUNDS", 3);
    struct { cairn_pin *pin; cairn_pin_info pi; struct bsrc *b; } r[8];
    assert_true(rounds >= 1 && rounds <= 8);
    uint64_t pages = 0, waited = 0;
    for (int k = 0; k < rounds; k++) {
        must(cairn_pin_open(dir, &r[k].pin, &r[k].pi), "pin");
        if (k == 0) {
            /* dropped after the pinned checkpoint: its file stays while pinned */
            must(cairn_collection_drop(db, "late"), "drop late");
            must(cairn_checkpoint(db, NULL), "checkpoint");
        }
        must(bsrc_open(r[k].pin, &r[k].b), "bsrc_open");
        /* two more checkpoints: the second may reuse what the first freed,
         * i.e. pages of this image, if the pin did not hold them */
        uint64_t g0 = r[k].pi.generation;
        for (int i = 0; i < 3000 && current_gen(dir) < g0 + 2; i++)
            usleep(10000);
        uint64_t g1 = current_gen(dir);
        if (g1 < g0 + 2)
            fail_msg("only %" PRIu64 " checkpoints in 30 s", g1 - g0);
        waited += g1 - g0;
        pages += read_all(r[k].b);
        /* written from the bsrc, and copied: the same walk, byte for byte */
        char mat[700], cp[700];
        snprintf(mat, sizeof mat, "%s-mat%d", dir, k);
        snprintf(cp, sizeof cp, "%s-copy%d", dir, k);
        materialize(r[k].b, NULL, dir, mat, NULL);
        must(cairn_pin_copy(r[k].pin, cp, NULL, NULL), "pin copy");
        same_files(mat, cp);
        assert_int_equal(tu_rm_rf(cp), 0);
    }
    stop_writer(NULL);
    if (w.err)
        fail_msg("writer: %s: %s", cairn_status_name(w.err), w.msg);

    size_t n = setup.n + w.log.n;
    struct op *all = malloc((n ? n : 1) * sizeof *all);
    assert_non_null(all);
    memcpy(all, setup.ops, setup.n * sizeof *all);
    memcpy(all + setup.n, w.log.ops, w.log.n * sizeof *all);
    qsort(all, n, sizeof *all, cmp_op);
    for (int k = 0; k < rounds; k++) {
        bool in[NCOLL] = {true, true, true, k == 0};
        struct tu_model m = {0};
        model_at(&m, all, n, r[k].pi.redo_lsn, in);
        check_layout(r[k].b, &r[k].pi, &m, dir);
        bsrc_free(r[k].b);
        must(cairn_pin_close(r[k].pin), "unpin");
        char mat[700];
        snprintf(mat, sizeof mat, "%s-mat%d", dir, k);
        struct tu_dig want = {0};
        assert_int_equal(tu_model_digest(&m, &want), 0);
        check_opens_to(mat, r[k].pi.generation, &want, &m);
        tu_dig_free(&want);
        tu_model_free(&m);
        assert_int_equal(tu_rm_rf(mat), 0);
    }
    free(all);
    free(setup.ops);
    free(w.log.ops);

    /* quiet: the counts are cairn_collection_list's */
    must(cairn_checkpoint(db, NULL), "checkpoint");
    cairn_pin *pin = NULL;
    struct bsrc *b = NULL;
    must(cairn_pin_open(dir, &pin, NULL), "pin");
    must(bsrc_open(pin, &b), "bsrc_open");
    cairn_collection_info *cl = NULL;
    size_t ncl = 0;
    must(cairn_collection_list(db, &cl, &ncl), "list");
    assert_int_equal(ncl, b->ncolls);
    assert_int_equal(ncl, 3);
    for (size_t i = 0; i < ncl; i++) {
        const struct bsrc_coll *c = NULL;
        for (size_t k = 0; k < b->ncolls; k++)
            if (b->colls[k].id == cl[i].id)
                c = &b->colls[k];
        assert_non_null(c);
        assert_string_equal(c->name, cl[i].name);
        assert_int_equal(c->dim, cl[i].dim);
        assert_int_equal(c->metric, cl[i].metric);
        assert_int_equal(c->points, cl[i].points);
        cairn_collection_info ci;
        must(cairn_collection_stat(db, cl[i].name, &ci), "stat");
        assert_int_equal(c->points, ci.points);
    }
    cairn_free(cl);
    bsrc_free(b);
    must(cairn_pin_close(pin), "unpin");
    must(cairn_close(db), "close");
    print_message("image: %d pinned images, %" PRIu64 " pages read verified, %" PRIu64
                  " checkpoints while they were open, %" PRIu64 " writer commits\n",
                  rounds, pages, waited, w.txns);
}

/* ---- 2 ------------------------------------------------------------------------ */

struct keep {
    uint8_t *pages; /* n pages, by index in the (sorted) refs */
    const struct page_ref *base;
};

static cairn_status keep_page(void *vctx, const struct page_ref *r, const uint8_t *page,
                              cairn_status st)
{
    struct keep *k = vctx;
    assert_int_equal(st, CAIRN_OK);
    memcpy(k->pages + (size_t)(r - k->base) * PAGE_SIZE, page, PAGE_SIZE);
    return CAIRN_OK;
}

static void test_incremental(void **state)
{
    (void)state;
    char dir[600], mat[700];
    new_dir(dir, sizeof dir, "db");
    snprintf(mat, sizeof mat, "%s-incr", dir);
    uint64_t rng = g_seed ^ 0x5bd1e995u;
    cairn_db *db = must_open(dir);
    for (uint32_t c = 0; c < 3; c++) {
        must(cairn_collection_create(db, cname[c], cdim[c], cmet[c]), "create");
        fill(db, c, cids[c] * 2, &rng, NULL);
    }
    cairn_pin *pa = NULL, *pb = NULL;
    struct bsrc *a = NULL, *b = NULL;
    must(cairn_checkpoint(db, NULL), "checkpoint g1");
    must(cairn_pin_open(dir, &pa, NULL), "pin A");
    /* a few points: two upserts (one with a large payload), a delete, a
     * new point */
    struct op few[] = {
        {.coll = 1, .id = 17, .vseed = 4242, .pad = 40},
        {.coll = 2, .id = 3, .vseed = 4243, .pad = 45000},
        {.coll = 0, .id = 600, .vseed = 0},
        {.coll = 0, .id = 100000, .vseed = 4244, .pad = TU_NO_PAYLOAD},
    };
    must(txn_ops(db, few, CAIRN_ARRAY_LEN(few), NULL), "few");
    must(cairn_checkpoint(db, NULL), "checkpoint g2");
    struct tu_dig want = {0};
    if (tu_state_digest(db, &want, 0) != 0)
        fail_msg("digest: %s", tu_error());
    must(cairn_pin_open(dir, &pb, NULL), "pin B");
    /* both pinned while checkpoints rewrite most pages */
    for (int i = 0; i < 3; i++) {
        fill(db, 1, cids[1], &rng, NULL);
        fill(db, 0, cids[0] / 2, &rng, NULL);
        must(cairn_checkpoint(db, NULL), "checkpoint");
    }
    must(bsrc_open(pa, &a), "bsrc A");
    must(bsrc_open(pb, &b), "bsrc B");
    assert_int_equal(b->info.generation, a->info.generation + 1);
    uint64_t gen_b = b->info.generation;

    uint64_t total = 0, same = 0, always = 0;
    for (size_t i = 0; i < b->nfiles; i++) {
        const struct bsrc_file *fb = &b->files[i];
        size_t ai = 0;
        const struct bsrc_file *fa = file_named(a, fb->name, &ai);
        assert_non_null(fa);
        struct page_ref *m = refs_dup(fb);
        size_t nm = 0;
        for (size_t k = 0; k < fb->nrefs; k++) {
            total++;
            always += fb->refs[k].lsn == UINT64_MAX;
            if (!in_base(fa, &fb->refs[k]))
                continue;
            /* the same page: the same logical page of the same space */
            const struct page_ref *ar = ref_at(fa, fb->refs[k].phys);
            assert_int_equal(ar->pno, fb->refs[k].pno);
            assert_int_equal(ar->space, fb->refs[k].space);
            assert_int_equal(ar->type, fb->refs[k].type);
            m[nm++] = fb->refs[k];
        }
        same += nm;
        struct keep ka = {.pages = malloc((nm ? nm : 1) * (size_t)PAGE_SIZE), .base = m};
        struct keep kb = {.pages = malloc((nm ? nm : 1) * (size_t)PAGE_SIZE), .base = m};
        assert_non_null(ka.pages);
        assert_non_null(kb.pages);
        must(bsrc_read(a, ai, m, nm, keep_page, &ka), "read A");
        must(bsrc_read(b, i, m, nm, keep_page, &kb), "read B");
        for (size_t k = 0; k < nm; k++)
            if (memcmp(ka.pages + k * PAGE_SIZE, kb.pages + k * PAGE_SIZE, PAGE_SIZE) != 0)
                fail_msg("%s: page %" PRIu32 " (LSN %" PRIu64 ") differs between the images",
                         fb->name, m[k].phys, m[k].lsn);
        free(ka.pages);
        free(kb.pages);
        free(m);
    }
    uint64_t fresh = total - same;
    print_message("incremental: image B holds %" PRIu64 " pages, %" PRIu64 " of them not in "
                  "image A (%" PRIu64 " map and catalog pages, always taken)\n", total, fresh,
                  always);
    assert_true(fresh > always);     /* the changed points' pages */
    assert_true(fresh * 10 < total); /* and few others */

    /* B from A's pages plus only B's new ones */
    uint64_t from_a = 0;
    materialize(b, a, dir, mat, &from_a);
    assert_int_equal(from_a, same);
    bsrc_free(a);
    bsrc_free(b);
    must(cairn_pin_close(pa), "unpin A");
    must(cairn_pin_close(pb), "unpin B");
    must(cairn_close(db), "close");
    check_opens_to(mat, gen_b, &want, NULL);
    tu_dig_free(&want);
}

/* ---- 3 ------------------------------------------------------------------------ */

static void flip(const char *path, uint64_t off)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    unsigned char c;
    assert_int_equal(pread(fd, &c, 1, (off_t)off), 1);
    c ^= 0x40;
    assert_int_equal(pwrite(fd, &c, 1, (off_t)off), 1);
    close(fd);
}

/* Sets the page LSN of page phys and fixes its crc: a whole page that is
 * not the one its reference expects. Returns the old LSN. */
static uint64_t set_lsn(const char *path, uint32_t phys, uint64_t lsn)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t pg[PAGE_SIZE];
    assert_int_equal(pread(fd, pg, PAGE_SIZE, (off_t)phys * PAGE_SIZE), PAGE_SIZE);
    uint64_t old;
    memcpy(&old, pg + 24, 8);
    memcpy(pg + 24, &lsn, 8);
    uint32_t crc = crc32c(0, pg + 4, PAGE_SIZE - 4);
    memcpy(pg, &crc, 4);
    assert_int_equal(pwrite(fd, pg, PAGE_SIZE, (off_t)phys * PAGE_SIZE), PAGE_SIZE);
    close(fd);
    return old;
}

static cairn_status ignore_page(void *vctx, const struct page_ref *r, const uint8_t *page,
                                cairn_status st)
{
    (void)r;
    assert_int_equal(st, CAIRN_OK);
    assert_non_null(page);
    ++*(uint64_t *)vctx;
    return CAIRN_OK;
}

/* bsrc_read of all refs of file i, or all but `skip` (a physical page). */
static cairn_status read_file(struct bsrc *b, size_t i, uint32_t skip)
{
    const struct bsrc_file *f = &b->files[i];
    struct page_ref *r = refs_dup(f);
    size_t n = 0;
    for (size_t k = 0; k < f->nrefs; k++)
        if (f->refs[k].phys != skip)
            r[n++] = f->refs[k];
    uint64_t got = 0;
    cairn_status st = bsrc_read(b, i, r, n, ignore_page, &got);
    if (!st)
        assert_int_equal(got, n);
    free(r);
    return st;
}

static void expect_named(cairn_status st, const char *what, const char *file, uint32_t phys,
                         const char *also)
{
    if (st != CAIRN_ECORRUPT)
        fail_msg("%s: %s, expected CAIRN_ECORRUPT (%s)", what, cairn_status_name(st),
                 cairn_last_error());
    char pg[64];
    snprintf(pg, sizeof pg, "page %" PRIu32 " ", phys);
    if (!strstr(cairn_last_error(), file) || !strstr(cairn_last_error(), pg) ||
        (also && !strstr(cairn_last_error(), also)))
        fail_msg("%s: the message does not name %s, %s%s: %s", what, file, pg,
                 also ? also : "", cairn_last_error());
}

static void test_damage(void **state)
{
    (void)state;
    char dir[600], pf[800], cat[800];
    new_dir(dir, sizeof dir, "db");
    uint64_t rng = g_seed + 99;
    cairn_db *db = must_open(dir);
    for (uint32_t c = 0; c < 2; c++) {
        must(cairn_collection_create(db, cname[c], cdim[c], cmet[c]), "create");
        fill(db, c, cids[c] / 2, &rng, NULL);
    }
    must(cairn_checkpoint(db, NULL), "checkpoint");
    cairn_pin *pin = NULL;
    must(cairn_pin_open(dir, &pin, NULL), "pin");
    must(cairn_close(db), "close");
    struct bsrc *b = NULL;
    must(bsrc_open(pin, &b), "bsrc_open");
    const struct bsrc_coll *mid = NULL;
    for (size_t i = 0; i < b->ncolls; i++)
        if (strcmp(b->colls[i].name, "mid") == 0)
            mid = &b->colls[i];
    assert_non_null(mid);
    size_t fi = mid->file;
    const struct bsrc_file *f = &b->files[fi];
    snprintf(pf, sizeof pf, "%s/%s", dir, f->name);
    snprintf(cat, sizeof cat, "%s/catalog.pages", dir);
    /* a vector page, a map leaf, the header page */
    uint32_t data = 0, leaf = 0, hdr = 0;
    for (size_t k = 0; k < f->nrefs; k++) {
        const struct page_ref *r = &f->refs[k];
        if (r->type == PT_MAP_LEAF && !leaf)
            leaf = r->phys;
        if (!r->type && r->space == 0 && r->pno == 0)
            hdr = r->phys;
        if (!r->type && r->space == 0 && r->pno == 2 && !data)
            data = r->phys;
    }
    assert_true(data && leaf && hdr);
    assert_int_equal(read_file(b, fi, 0), CAIRN_OK);
    assert_int_equal(bsrc_read(b, b->nfiles, NULL, 0, ignore_page, NULL), CAIRN_EINVAL);

    /* a flipped byte in a data page: that page, named; the others read */
    flip(pf, (uint64_t)data * PAGE_SIZE + 300);
    expect_named(read_file(b, fi, 0), "damaged data page", f->name, data, NULL);
    assert_int_equal(read_file(b, fi, data), CAIRN_OK);
    flip(pf, (uint64_t)data * PAGE_SIZE + 300);
    assert_int_equal(read_file(b, fi, 0), CAIRN_OK);

    /* a whole page with another LSN than its map records */
    uint64_t old = set_lsn(pf, data, 12345);
    expect_named(read_file(b, fi, 0), "data page LSN", f->name, data, "page LSN");
    set_lsn(pf, data, old);

    /* a catalog page with another LSN than the pinned redo LSN */
    uint32_t c0 = b->files[0].refs[0].phys;
    assert_int_equal(read_file(b, 0, 0), CAIRN_OK);
    old = set_lsn(cat, c0, b->info.redo_lsn - 8);
    expect_named(read_file(b, 0, 0), "catalog page LSN", "catalog.pages", c0, "page LSN");
    struct bsrc *b2 = NULL;
    expect_named(bsrc_open(pin, &b2), "open, catalog LSN", "catalog.pages", c0, NULL);
    assert_null(b2);
    set_lsn(cat, c0, old);
    flip(cat, (uint64_t)c0 * PAGE_SIZE + 200);
    expect_named(bsrc_open(pin, &b2), "open, damaged catalog", "catalog.pages", c0, NULL);
    flip(cat, (uint64_t)c0 * PAGE_SIZE + 200);

    /* a damaged map page: the image cannot be described */
    flip(pf, (uint64_t)leaf * PAGE_SIZE + 100);
    expect_named(bsrc_open(pin, &b2), "open, damaged map", f->name, leaf, NULL);
    assert_null(b2);
    flip(pf, (uint64_t)leaf * PAGE_SIZE + 100);

    /* a damaged header page: the point count cannot be read */
    flip(pf, (uint64_t)hdr * PAGE_SIZE + PAGE_HDR + 24);
    expect_named(bsrc_open(pin, &b2), "open, damaged header", f->name, hdr, NULL);
    flip(pf, (uint64_t)hdr * PAGE_SIZE + PAGE_HDR + 24);

    /* all whole again */
    must(bsrc_open(pin, &b2), "bsrc_open after repair");
    assert_int_equal(b2->ncolls, b->ncolls);
    for (size_t i = 0; i < b->ncolls; i++)
        assert_int_equal(b2->colls[i].points, b->colls[i].points);
    assert_int_equal(mid->points, cids[1] / 2);
    read_all(b2);
    bsrc_free(b2);
    bsrc_free(b);
    must(cairn_pin_close(pin), "unpin");
}

int main(void)
{
    tu_quiet_log();
    g_seed = tu_seed("bsrc", 20261121);
    if (tu_tmpbase(tmpbase, sizeof tmpbase, "bsrc") != 0) {
        perror("tmpbase");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_image, stop_writer),
        cmocka_unit_test(test_incremental),
        cmocka_unit_test(test_damage),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (rc == 0)
        tu_rm_rf(tmpbase);
    return rc;
}
