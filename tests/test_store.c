/*
 * test_store.c — the paged point store (engine/store.c).
 *
 * Seeded random upserts and deletes against an oracle (id -> vector,
 * payload), for dimensions around every layout boundary (1, 3, 128, 784,
 * 2040 = one vector per page, 2041 = the first spanning one, 5000) and
 * payloads of every size class (none, small, ~5 KB, just over a heap page,
 * 100 KB, 1 MiB). At checkpoints of each sequence:
 *   - every point read back (vector, payload, parsed payload) equals the
 *     oracle, and the pages decode, by this file's own reading of the byte
 *     tables in docs/format.md, to the same points (so the documented format
 *     is the real one), with the heap's quarter-live bound holding;
 *   - store_search equals flat_search over the oracle's points for the three
 *     metrics, with and without an accept callback (same hits, same distance
 *     bits, same accept calls);
 *   - store_check finds nothing;
 *   - a copy of every live page installed into a fresh pager loads
 *     (store_load) to the same points, and the same further operations on
 *     both give byte-identical pages (the in-memory state is rebuilt
 *     exactly: hash, open heap page, free page numbers).
 * Also: checkpoint snapshots (frames frozen at pager_snap_begin stay as they
 * were while mutations go on), atomicity under injected ENOMEM at every
 * fallible step of an operation (struct store.fault_in), damaged pages
 * (CAIRN_ECORRUPT naming collection, space and page; store_check reports
 * every problem), page LSNs from commits and from replay, bulk mode (the
 * replay's: the same pages as one change at a time, broken after a
 * failure halfway).
 *
 * Seed: CAIRN_SEED overrides the default; it is printed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <pthread.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/crc32c.h"
#include "common/util.h"
#include "engine/engine_int.h"
#include "engine/pager.h"
#include "index/index.h"

#include "testutil.h"

#define COLL 7u
#define NOPG UINT32_MAX

static uint64_t g_seed;
static uint64_t g_rng;

static uint64_t rnd(void) { return tu_splitmix(&g_rng); }
static uint32_t below(uint32_t n) { return (uint32_t)(rnd() % n); }
static float rfloat(void) { return (float)(tu_unit(&g_rng) * 2.0 - 1.0); }

/* ---- the documented layout, computed here independently ------------------- */

struct lay {
    uint32_t dim, vpp, ppv, spg, g;
};

static struct lay lay_of(uint32_t dim) {
    struct lay l = {.dim = dim};
    uint32_t vb = 4 * dim;
    if (vb <= 8160) {
        l.vpp = 8160 / vb > 340 ? 340 : 8160 / vb;
        l.spg = 340 / l.vpp * l.vpp;
        l.g = 1 + l.spg / l.vpp;
    } else {
        l.ppv = (vb + 8159) / 8160;
        l.spg = 340;
        l.g = 1 + 340 * l.ppv;
    }
    return l;
}

static uint32_t l_slot_page(const struct lay *l, size_t i) { return 1 + (uint32_t)(i / l->spg) * l->g; }
static uint32_t l_vec_page(const struct lay *l, size_t i) {
    size_t j = i % l->spg;
    return l_slot_page(l, i) + 1 + (uint32_t)(l->vpp ? j / l->vpp : j * l->ppv);
}

/* ---- oracle ---------------------------------------------------------------- */

struct opt {
    bool present;
    float *vec;
    char *pl;
    uint32_t len;
    uint32_t version;     /* bumped at every upsert */
    uint32_t seen_page;   /* last observed record position (small payloads) */
    uint32_t seen_off;
    uint32_t seen_version;
};

struct oracle {
    uint32_t dim;
    uint32_t nkeys;
    struct opt *p;
    size_t n;
    uint64_t pbytes;
    uint64_t moved;       /* records seen to move without an upsert */
    uint64_t heap_drops;  /* heap page numbers seen free */
};

static uint64_t id_of(uint32_t k) { return (uint64_t)k * 0x9E3779B97F4A7C15ull; }

static void oracle_init(struct oracle *o, uint32_t dim, uint32_t nkeys) {
    memset(o, 0, sizeof *o);
    o->dim = dim;
    o->nkeys = nkeys;
    o->p = calloc(nkeys, sizeof *o->p);
    assert_non_null(o->p);
}

static void oracle_free(struct oracle *o) {
    for (uint32_t k = 0; k < o->nkeys; k++) {
        free(o->p[k].vec);
        free(o->p[k].pl);
    }
    free(o->p);
}

static int key_of(const struct oracle *o, uint64_t id) {
    /* id = k * odd constant: invert by search over the (small) key space */
    for (uint32_t k = 0; k < o->nkeys; k++)
        if (id_of(k) == id) return (int)k;
    return -1;
}

/* ---- payloads ---------------------------------------------------------------- */

enum { PL_NONE, PL_SMALL, PL_MID, PL_EDGE, PL_BIG, PL_HUGE };

static uint32_t pick_len(int cls) {
    switch (cls) {
    case PL_SMALL: return 64 + below(300);
    case PL_MID: return 4000 + below(2000);
    case PL_EDGE: {
        static const uint32_t edge[] = {8135, 8136, 8137, 8144, 8145, 8160, 8200};
        return below(3) ? 8137 + below(300) : edge[below(7)];
    }
    case PL_BIG: return 95000 + below(10000);
    case PL_HUGE: return CAIRN_MAX_PAYLOAD - below(2) * below(5000);
    default: return 0;
    }
}

/* A JSON object of exactly len bytes (len >= 64). */
static char *make_payload(uint64_t id, uint32_t ver, uint32_t len) {
    char *t = malloc(len + 1);
    assert_non_null(t);
    int h = snprintf(t, len + 1, "{\"i\":\"%" PRIu64 "\",\"v\":%u,\"x\":\"", id, ver);
    assert_true(h > 0 && (uint32_t)h + 2 <= len);
    for (uint32_t i = (uint32_t)h; i < len - 2; i++) t[i] = (char)('a' + rnd() % 26);
    t[len - 2] = '"';
    t[len - 1] = '}';
    t[len] = 0;
    return t;
}

/* ---- operations ---------------------------------------------------------------- */

struct op {
    bool del;
    uint32_t k;
    float *vec;   /* owned by the op until applied to the oracle */
    char *pl;
    uint32_t len;
};

static void op_make(struct oracle *o, struct op *op, bool del, uint32_t k, int cls) {
    memset(op, 0, sizeof *op);
    op->del = del;
    op->k = k;
    if (del) return;
    op->vec = malloc(sizeof(float) * o->dim);
    assert_non_null(op->vec);
    for (uint32_t i = 0; i < o->dim; i++) op->vec[i] = rfloat() * 4.0f;
    if (below(50) == 0) memset(op->vec, 0, sizeof(float) * o->dim); /* zero norm */
    if (below(40) == 0 && o->p[k].present) /* same vector again: ties */
        memcpy(op->vec, o->p[k].vec, sizeof(float) * o->dim);
    op->len = cls == PL_NONE ? 0 : pick_len(cls);
    if (op->len && op->len < 64) op->len = 64;
    if (op->len) op->pl = make_payload(id_of(k), o->p[k].version + 1, op->len);
}

static cairn_status op_apply(struct store *s, const struct op *op, uint64_t lsn) {
    if (op->del) return store_delete(s, id_of(op->k), lsn);
    return store_upsert(s, id_of(op->k), op->vec, op->pl, op->len, lsn);
}

/* The same through the entry the replay uses (the norm computed by the
 * caller); the store must be in bulk mode. */
static cairn_status op_apply_bulk(struct store *s, const struct op *op, uint64_t lsn) {
    assert_true(s->bulk);
    if (op->del) return store_delete(s, id_of(op->k), lsn);
    return store_upsert_norm(s, id_of(op->k), op->vec, vec_norm(op->vec, s->dim), op->pl,
                             op->len, lsn);
}

static void op_commit_oracle(struct oracle *o, struct op *op) {
    struct opt *p = &o->p[op->k];
    if (op->del) {
        if (p->present) {
            o->n--;
            o->pbytes -= p->len;
            free(p->vec);
            free(p->pl);
            p->vec = NULL;
            p->pl = NULL;
            p->len = 0;
            p->present = false;
        }
        return;
    }
    if (!p->present) o->n++;
    else o->pbytes -= p->len;
    free(p->vec);
    free(p->pl);
    p->present = true;
    p->vec = op->vec;
    p->pl = op->pl;
    p->len = op->len;
    p->version++;
    o->pbytes += op->len;
    op->vec = NULL;
    op->pl = NULL;
}

/* ---- an independent decoder of the documented format ------------------------------ */

static const uint8_t *page(const struct store *s, unsigned sp, uint32_t pno) {
    return pager_read(&s->pg, sp, pno);
}

static void decode_check(const struct store *s, struct oracle *o) {
    struct lay l = lay_of(o->dim);
    const uint8_t *h = page(s, PSPACE_GROUP, 0);
    assert_non_null(h);
    assert_int_equal(ld16(h + 4), PT_COLL);
    assert_int_equal(ld32(h + 8), COLL);
    const uint8_t *b = h + 32;
    assert_int_equal(ld32(b + 0), 1);
    assert_int_equal(ld32(b + 4), o->dim);
    assert_int_equal(ld32(b + 8), l.vpp);
    assert_int_equal(ld32(b + 12), l.ppv);
    assert_int_equal(ld32(b + 16), l.spg);
    assert_int_equal(ld32(b + 20), l.g);
    assert_int_equal(ld64(b + 24), o->n);
    assert_int_equal(ld64(b + 32), o->pbytes);
    uint32_t open = ld32(b + 40);
    uint32_t nheap = pager_count(&s->pg, PSPACE_HEAP);
    uint32_t *live = calloc(nheap + 1, sizeof *live);
    uint8_t *ovseen = calloc(nheap + 1, 1);
    assert_true(live && ovseen);
    size_t group_pages = 1;
    uint8_t *seen = calloc(o->nkeys, 1);
    float *v = malloc(4 * (size_t)o->dim);
    char *text = malloc(CAIRN_MAX_PAYLOAD);
    assert_true(seen && v && text);
    for (size_t i = 0; i < o->n; i++) {
        size_t j = i % l.spg;
        if (j == 0) group_pages++;
        const uint8_t *sp = page(s, PSPACE_GROUP, l_slot_page(&l, i));
        assert_non_null(sp);
        assert_int_equal(ld16(sp + 4), PT_SLOT);
        const uint8_t *e = sp + 32 + 24 * j;
        int k = key_of(o, ld64(e));
        assert_true(k >= 0);
        assert_false(seen[k]);
        seen[k] = 1;
        struct opt *p = &o->p[k];
        assert_true(p->present);
        /* vector at its documented place */
        if (l.vpp) {
            if (j % l.vpp == 0) group_pages++;
            const uint8_t *vp = page(s, PSPACE_GROUP, l_vec_page(&l, i));
            assert_non_null(vp);
            assert_int_equal(ld16(vp + 4), PT_VEC);
            memcpy(v, vp + 32 + (j % l.vpp) * 4 * o->dim, 4 * (size_t)o->dim);
        } else {
            for (uint32_t t = 0; t < l.ppv; t++) {
                const uint8_t *vp = page(s, PSPACE_GROUP, l_vec_page(&l, i) + t);
                assert_non_null(vp);
                assert_int_equal(ld16(vp + 4), PT_VEC);
                uint32_t rest = 4 * o->dim - t * 8160;
                memcpy((uint8_t *)v + (size_t)t * 8160, vp + 32, rest < 8160 ? rest : 8160);
                group_pages++;
            }
        }
        assert_memory_equal(v, p->vec, 4 * (size_t)o->dim);
        float norm = vec_norm(p->vec, o->dim);
        assert_memory_equal(e + 8, &norm, 4);
        assert_int_equal(ld32(e + 12), p->len);
        uint16_t flags = ld16(e + 22);
        uint32_t pp = ld32(e + 16), off = ld16(e + 20);
        if (p->len == 0) {
            assert_int_equal(flags, 1);
            assert_int_equal(pp, 0);
            assert_int_equal(off, 0);
        } else if (p->len <= 8136) {
            assert_int_equal(flags, 1);
            const uint8_t *hp = page(s, PSPACE_HEAP, pp);
            assert_non_null(hp);
            assert_int_equal(ld16(hp + 4), PT_HEAP);
            assert_int_equal(off % 8, 0);
            assert_true(off >= 8 && off + 16 + p->len <= ld32(hp + 32));
            const uint8_t *rec = hp + 32 + off;
            assert_int_equal(ld64(rec), id_of((uint32_t)k));
            assert_int_equal(ld32(rec + 8), p->len);
            assert_int_equal(ld32(rec + 12), 0);
            assert_memory_equal(rec + 16, p->pl, p->len);
            live[pp] += 16 + ((p->len + 7) & ~7u);
            if (p->seen_version == p->version && (p->seen_page != pp || p->seen_off != off))
                o->moved++;
            p->seen_version = p->version;
            p->seen_page = pp;
            p->seen_off = off;
        } else {
            assert_int_equal(flags, 3);
            assert_int_equal(off, 0);
            uint32_t done = 0;
            while (done < p->len) {
                const uint8_t *op = page(s, PSPACE_HEAP, pp);
                assert_non_null(op);
                assert_int_equal(ld16(op + 4), PT_OVFL);
                assert_false(ovseen[pp]);
                ovseen[pp] = 1;
                uint32_t here = ld32(op + 36);
                assert_int_equal(ld64(op + 40), id_of((uint32_t)k));
                assert_true(here == 8144 || done + here == p->len);
                memcpy(text + done, op + 48, here);
                done += here;
                pp = ld32(op + 32);
            }
            assert_int_equal(done, p->len);
            assert_int_equal(pp, NOPG);
            assert_memory_equal(text, p->pl, p->len);
        }
    }
    /* heap pages: live counts, the quarter-live bound */
    size_t heap_pages = 0;
    for (uint32_t q = 0; q < nheap; q++) {
        const uint8_t *hp = page(s, PSPACE_HEAP, q);
        if (!hp) {
            o->heap_drops++;
            continue;
        }
        heap_pages++;
        if (ld16(hp + 4) == PT_OVFL) {
            assert_true(ovseen[q]);
            continue;
        }
        assert_int_equal(ld16(hp + 4), PT_HEAP);
        assert_int_equal(ld32(hp + 36), live[q]);
        assert_true(live[q] > 0);
        if (q != open) assert_true(live[q] >= 8160 / 4);
    }
    if (open != NOPG) {
        assert_non_null(page(s, PSPACE_HEAP, open));
        assert_int_equal(ld16(page(s, PSPACE_HEAP, open) + 4), PT_HEAP);
    }
    /* exactly the pages the points need */
    assert_int_equal(s->pg.live_pages, group_pages + heap_pages);
    free(live);
    free(ovseen);
    free(seen);
    free(v);
    free(text);
}

/* ---- reading through the API ------------------------------------------------------- */

static void check_reads(struct store *s, const struct oracle *o, bool parse) {
    assert_int_equal(store_count(s), o->n);
    assert_int_equal(store_bytes(s), (uint64_t)o->n * (4 * o->dim + 8) + o->pbytes);
    float *v = malloc(4 * (size_t)o->dim);
    assert_non_null(v);
    for (uint32_t k = 0; k < o->nkeys; k++) {
        const struct opt *p = &o->p[k];
        size_t slot = store_find(s, id_of(k));
        if (!p->present) {
            assert_int_equal(slot, SIZE_MAX);
            continue;
        }
        assert_true(slot < o->n);
        assert_int_equal(store_get_id(s, slot), id_of(k));
        store_get_vector(s, slot, v);
        assert_memory_equal(v, p->vec, 4 * (size_t)o->dim);
        char *pl = (char *)0x1;
        assert_int_equal(store_get_payload(s, slot, &pl), CAIRN_OK);
        if (p->len == 0) {
            assert_null(pl);
        } else {
            assert_non_null(pl);
            assert_int_equal(strlen(pl), p->len);
            assert_memory_equal(pl, p->pl, p->len);
            free(pl);
        }
        if (parse && (p->len < 20000 || below(8) == 0)) {
            bool failed = false;
            const json_t *j = store_payload_json(s, slot, &failed);
            assert_false(failed);
            assert_true((j != NULL) == (p->len != 0));
            if (j) {
                assert_true(json_is_object(j));
                char want[24];
                snprintf(want, sizeof want, "%" PRIu64, id_of(k));
                assert_string_equal(json_string_value(json_object_get(j, "i")), want);
                assert_int_equal(json_integer_value(json_object_get(j, "v")), p->version);
                assert_ptr_equal(store_payload_json(s, slot, &failed), j); /* cached */
            }
        }
    }
    free(v);
}

/* accept callbacks: the same decision by id parity, and a log of the calls */
struct acc {
    const struct store *s;
    const uint64_t *ids;
    size_t *log;
    size_t nlog, cap;
};

static bool acc_store(void *ctx, size_t slot) {
    struct acc *a = ctx;
    assert_true(a->nlog < a->cap);
    a->log[a->nlog++] = slot;
    return store_get_id(a->s, slot) % 3 != 0;
}

static bool acc_flat(void *ctx, size_t slot) {
    struct acc *a = ctx;
    assert_true(a->nlog < a->cap);
    a->log[a->nlog++] = slot;
    return a->ids[slot] % 3 != 0;
}

static void check_search(struct store *s, const struct oracle *o) {
    size_t n = o->n, dim = o->dim;
    float *vecs = malloc(sizeof(float) * (n ? n : 1) * dim);
    float *norms = malloc(sizeof(float) * (n ? n : 1));
    uint64_t *ids = malloc(sizeof(uint64_t) * (n ? n : 1));
    float *q = malloc(sizeof(float) * dim);
    uint32_t kmax = (uint32_t)n + 3;
    cairn_hit *h1 = malloc(sizeof *h1 * kmax), *h2 = malloc(sizeof *h2 * kmax);
    size_t *log1 = malloc(sizeof(size_t) * (n + 1)), *log2 = malloc(sizeof(size_t) * (n + 1));
    assert_true(vecs && norms && ids && q && h1 && h2 && log1 && log2);
    /* the oracle's points in the store's slot order (accept sees slots) */
    for (size_t i = 0; i < n; i++) {
        ids[i] = store_get_id(s, i);
        int k = key_of(o, ids[i]);
        assert_true(k >= 0);
        memcpy(vecs + i * dim, o->p[k].vec, sizeof(float) * dim);
        norms[i] = vec_norm(o->p[k].vec, (uint32_t)dim);
    }
    static const cairn_metric ms[] = {CAIRN_METRIC_L2, CAIRN_METRIC_COSINE, CAIRN_METRIC_DOT};
    for (int qi = 0; qi < 2; qi++) {
        if (qi == 0 || n == 0)
            for (size_t i = 0; i < dim; i++) q[i] = rfloat() * 4.0f;
        else
            memcpy(q, vecs + below((uint32_t)n) * dim, sizeof(float) * dim);
        for (int mi = 0; mi < 3; mi++) {
            uint32_t ks[] = {1, 10, kmax};
            for (int ki = 0; ki < 3; ki++) {
                for (int fi = 0; fi < 2; fi++) {
                    struct acc a1 = {.s = s, .log = log1, .cap = n + 1};
                    struct acc a2 = {.ids = ids, .log = log2, .cap = n + 1};
                    uint32_t n1 = 0;
                    assert_int_equal(store_search(s, ms[mi], q, ks[ki], fi ? acc_store : NULL,
                                                  &a1, h1, &n1),
                                     CAIRN_OK);
                    uint32_t n2 = flat_search(vecs, norms, ids, n, (uint32_t)dim, ms[mi], q,
                                              ks[ki], fi ? acc_flat : NULL, &a2, h2);
                    assert_int_equal(n1, n2);
                    for (uint32_t i = 0; i < n1; i++) {
                        assert_int_equal(h1[i].id, h2[i].id);
                        assert_memory_equal(&h1[i].distance, &h2[i].distance, sizeof(float));
                    }
                    assert_int_equal(a1.nlog, a2.nlog);
                    if (a1.nlog) assert_memory_equal(log1, log2, a1.nlog * sizeof(size_t));
                }
            }
        }
    }
    uint32_t nh = 7;
    assert_int_equal(store_search(s, CAIRN_METRIC_L2, q, 0, NULL, NULL, h1, &nh), CAIRN_OK);
    assert_int_equal(nh, 0);
    free(vecs);
    free(norms);
    free(ids);
    free(q);
    free(h1);
    free(h2);
    free(log1);
    free(log2);
}

static bool collect(void *ctx, const char *line) {
    print_message("problem: %s\n", line);
    ++*(int *)ctx;
    return true;
}

static void check_clean(const struct store *s) {
    int lines = 0;
    uint64_t problems = 99;
    cairn_status st = store_check(s, collect, &lines, &problems);
    if (st) print_error("%s\n", cairn_last_error());
    assert_int_equal(st, CAIRN_OK);
    assert_int_equal(problems, 0);
    assert_int_equal(lines, 0);
}

/* The free heap page numbers (in memory) are exactly the numbers below
 * heap_next of no live page, and nothing above is marked. */
static void check_free_map(const struct store *s) {
    uint32_t nfree = 0;
    assert_true(s->heap_next >= pager_count(&s->pg, PSPACE_HEAP) ||
                pager_read(&s->pg, PSPACE_HEAP, pager_count(&s->pg, PSPACE_HEAP) - 1) == NULL);
    for (size_t w = 0; w < s->hfree_words; w++) {
        for (unsigned b = 0; b < 64; b++) {
            uint64_t p = w * 64 + b;
            bool bit = (s->hfree[w] >> b) & 1;
            if (p >= s->heap_next) {
                assert_false(bit);
                continue;
            }
            bool live = p < pager_count(&s->pg, PSPACE_HEAP) &&
                        pager_read(&s->pg, PSPACE_HEAP, (uint32_t)p) != NULL;
            if (bit == live) print_error("heap number %" PRIu64 ": free bit %d, live %d\n", p, bit, live);
            assert_true(bit != live);
            nfree += bit;
            if (bit) assert_true(w >= s->hfree_lo);
        }
    }
    for (uint32_t p = s->heap_next; p < pager_count(&s->pg, PSPACE_HEAP); p++)
        assert_null(pager_read(&s->pg, PSPACE_HEAP, p));
    assert_int_equal(nfree, s->hfree_n);
}

/* ---- copies of the pages ------------------------------------------------------------ */

/* A fresh store holding copies of every live page of s (not yet loaded). */
static void clone_pages(const struct store *s, struct store *r) {
    store_prepare(r, s->coll_id, s->dim);
    for (unsigned sp = 0; sp < PSPACE_N; sp++) {
        for (uint32_t p = 0; p < pager_count(&s->pg, sp); p++) {
            const uint8_t *f = pager_read(&s->pg, sp, p);
            if (!f) continue;
            uint8_t *c = page_frame_alloc();
            assert_non_null(c);
            memcpy(c, f, PAGE_SIZE);
            assert_int_equal(pager_install(&r->pg, sp, p, c), CAIRN_OK);
        }
    }
}

/* Every live page of a and b byte-identical, the same set. */
static void same_pages(const struct store *a, const struct store *b) {
    for (unsigned sp = 0; sp < PSPACE_N; sp++) {
        uint32_t n = CAIRN_MAX(pager_count(&a->pg, sp), pager_count(&b->pg, sp));
        for (uint32_t p = 0; p < n; p++) {
            const uint8_t *x = p < pager_count(&a->pg, sp) ? pager_read(&a->pg, sp, p) : NULL;
            const uint8_t *y = p < pager_count(&b->pg, sp) ? pager_read(&b->pg, sp, p) : NULL;
            if (!x || !y) {
                if (x || y) print_error("space %u page %u: in one store only\n", sp, p);
                assert_true(!x && !y);
                continue;
            }
            if (memcmp(x, y, PAGE_SIZE) != 0) print_error("space %u page %u differs\n", sp, p);
            assert_memory_equal(x, y, PAGE_SIZE);
        }
    }
}

/* An image of the live pages (a crc32c of each, header included) and the
 * in-memory state, to prove a failed operation changed nothing. */
struct image {
    struct {
        unsigned sp;
        uint32_t pno;
        uint32_t crc;
        const uint8_t *frame;
    } *pg;
    size_t n;
    size_t points;
    uint64_t pbytes;
    uint32_t open, next, nfree;
};

static void image_take(const struct store *s, struct image *im) {
    memset(im, 0, sizeof *im);
    im->pg = malloc(sizeof *im->pg * (s->pg.live_pages + 1));
    assert_non_null(im->pg);
    for (unsigned sp = 0; sp < PSPACE_N; sp++)
        for (uint32_t p = 0; p < pager_count(&s->pg, sp); p++) {
            const uint8_t *f = pager_read(&s->pg, sp, p);
            if (!f) continue;
            im->pg[im->n].sp = sp;
            im->pg[im->n].pno = p;
            im->pg[im->n].crc = crc32c(0, f, PAGE_SIZE);
            im->pg[im->n].frame = f;
            im->n++;
        }
    im->points = s->n;
    im->pbytes = s->payload_bytes;
    im->open = s->heap_open;
    im->next = s->heap_next;
    im->nfree = s->hfree_n;
}

static void image_check(const struct store *s, const struct image *im) {
    assert_int_equal(s->pg.live_pages, im->n);
    for (size_t i = 0; i < im->n; i++) {
        const uint8_t *f = pager_read(&s->pg, im->pg[i].sp, im->pg[i].pno);
        assert_non_null(f);
        if (crc32c(0, f, PAGE_SIZE) != im->pg[i].crc)
            print_error("space %u page %u changed\n", im->pg[i].sp, im->pg[i].pno);
        assert_int_equal(crc32c(0, f, PAGE_SIZE), im->pg[i].crc);
    }
    assert_int_equal(s->n, im->points);
    assert_int_equal(s->payload_bytes, im->pbytes);
    assert_int_equal(s->heap_open, im->open);
    assert_int_equal(s->heap_next, im->next);
    assert_int_equal(s->hfree_n, im->nfree);
    check_free_map(s);
}

static void image_check_free(const struct store *s, struct image *im) {
    image_check(s, im);
    free(im->pg);
}

/* Runs op with a failure injected at each fallible step in turn: each
 * failure must leave everything as it was; finally runs it for real.
 * Returns the number of failures injected. */
static unsigned fault_every_step(struct store *s, const struct oracle *o, const struct op *op,
                                 uint64_t lsn) {
    struct image im;
    image_take(s, &im);
    unsigned k = 1;
    for (;; k++) {
        s->fault_in = k;
        cairn_status st = op_apply(s, op, lsn);
        if (s->fault_in != 0) { /* never reached step k: it ran through */
            s->fault_in = 0;
            assert_int_equal(st, CAIRN_OK);
            free(im.pg);
            return k - 1;
        }
        assert_int_equal(st, CAIRN_ENOMEM);
        image_check(s, &im);
        if (k % 7 == 1) check_reads(s, o, false);
    }
}

/* ---- the random sequences ------------------------------------------------------------ */

struct plan {
    uint32_t dim;
    uint32_t nkeys;   /* key space */
    unsigned ops;
    bool huge;        /* 100 KB and 1 MiB payloads too */
};

static int pick_class(bool huge, bool small_only) {
    uint32_t r = below(100);
    if (small_only) return r < 15 ? PL_NONE : r < 90 ? PL_SMALL : PL_MID;
    if (r < 15) return PL_NONE;
    if (r < 55) return PL_SMALL;
    if (r < 75) return PL_MID;
    if (r < 90) return PL_EDGE;
    if (!huge) return PL_SMALL;
    return r < 98 ? PL_BIG : PL_HUGE;
}

static uint32_t pick_key(const struct oracle *o, bool want_present) {
    for (int tries = 0; tries < 64; tries++) {
        uint32_t k = below(o->nkeys);
        if (o->p[k].present == want_present) return k;
    }
    return below(o->nkeys);
}

static void full_check(struct store *s, struct oracle *o, uint64_t *lsn, bool with_reload) {
    check_reads(s, o, true);
    check_free_map(s);
    decode_check(s, o);
    check_clean(s);
    check_search(s, o);
    if (!with_reload) return;
    struct store r;
    clone_pages(s, &r);
    assert_int_equal(store_check(&r, NULL, NULL, NULL), CAIRN_OK); /* before load too */
    cairn_status st = store_load(&r);
    if (st) print_error("%s\n", cairn_last_error());
    assert_int_equal(st, CAIRN_OK);
    check_reads(&r, o, false);
    check_free_map(&r);
    assert_int_equal(r.heap_open, s->heap_open);
    assert_int_equal(r.payload_bytes, s->payload_bytes);
    /* the same operations on both give the same pages; the reloaded store
     * takes them in bulk mode (runs of 1..8 between store_bulk_begin and
     * store_bulk_end, the norm passed in, as the replay does), which must
     * give the same bytes as one change at a time */
    for (int i = 0; i < 40;) {
        int run = 1 + (int)below(8);
        store_bulk_begin(&r);
        for (int j = 0; j < run && i < 40; j++, i++) {
            struct op op;
            bool del = o->n > 0 && below(2) == 0;
            op_make(o, &op, del, pick_key(o, del), pick_class(false, below(2)));
            ++*lsn;
            assert_int_equal(op_apply(s, &op, *lsn), CAIRN_OK);
            assert_int_equal(op_apply_bulk(&r, &op, *lsn), CAIRN_OK);
            op_commit_oracle(o, &op);
        }
        assert_int_equal(store_bulk_end(&r), CAIRN_OK);
    }
    assert_false(r.broken);
    same_pages(s, &r);
    check_reads(&r, o, false);
    store_free(&r);
}

static void run_plan(const struct plan *pl) {
    struct oracle o;
    oracle_init(&o, pl->dim, pl->nkeys);
    struct store s;
    uint64_t lsn = 100;
    assert_int_equal(store_init(&s, COLL, pl->dim, lsn), CAIRN_OK);
    assert_int_equal(page_lsn(pager_read(&s.pg, PSPACE_GROUP, 0)), lsn);
    full_check(&s, &o, &lsn, true);
    unsigned faults = 0, snaps = 0;
    /* phases: grow, churn (small payloads: compaction), shrink to empty,
     * grow again with everything */
    unsigned quarter = pl->ops / 4;
    for (unsigned i = 0; i < pl->ops; i++) {
        unsigned phase = i / quarter;
        bool del;
        if (phase == 0) del = below(10) < 2;
        else if (phase == 1) del = below(2) == 0;
        else if (phase == 2) del = below(10) < 8;
        else del = below(10) < 3;
        if (o.n == 0) del = false;
        struct op op;
        op_make(&o, &op, del, pick_key(&o, del ? true : below(3) == 0),
                pick_class(pl->huge && phase != 1, phase == 1));
        lsn++;
        bool snap = i % 97 == 13;
        size_t nsnap = 0;
        uint8_t **copies = NULL;
        if (snap) { /* a checkpoint starts: freeze, mutate, compare */
            assert_int_equal(pager_snap_begin(&s.pg), CAIRN_OK);
            nsnap = pager_snap_count(&s.pg);
            copies = calloc(nsnap + 1, sizeof *copies);
            for (size_t j = 0; j < nsnap; j++) {
                unsigned sp;
                uint32_t pno;
                const uint8_t *f = pager_snap_page(&s.pg, j, &sp, &pno);
                if (!f) continue;
                copies[j] = malloc(PAGE_SIZE);
                memcpy(copies[j], f, PAGE_SIZE);
            }
        }
        uint64_t hdr_lsn = page_lsn(pager_read(&s.pg, PSPACE_GROUP, 0));
        bool changes = !op.del || o.p[op.k].present;
        if (i % 13 == 5 && (op.len < 20000 || i % 5 == 0))
            faults += fault_every_step(&s, &o, &op, lsn);
        else
            assert_int_equal(op_apply(&s, &op, lsn), CAIRN_OK);
        op_commit_oracle(&o, &op);
        /* the header is rewritten by every change, and only by a change */
        assert_int_equal(page_lsn(pager_read(&s.pg, PSPACE_GROUP, 0)), changes ? lsn : hdr_lsn);
        if (snap) {
            /* more changes while the snapshot is held, then compare */
            for (int m = 0; m < 12; m++) {
                struct op op2;
                bool d2 = o.n > 0 && below(2) == 0;
                op_make(&o, &op2, d2, pick_key(&o, d2), pick_class(false, false));
                lsn++;
                if (m % 4 == 0)
                    faults += fault_every_step(&s, &o, &op2, lsn);
                else
                    assert_int_equal(op_apply(&s, &op2, lsn), CAIRN_OK);
                op_commit_oracle(&o, &op2);
            }
            for (size_t j = 0; j < nsnap; j++) {
                unsigned sp;
                uint32_t pno;
                const uint8_t *f = pager_snap_page(&s.pg, j, &sp, &pno);
                assert_true((f == NULL) == (copies[j] == NULL));
                if (f) assert_memory_equal(f, copies[j], PAGE_SIZE);
                free(copies[j]);
            }
            free(copies);
            pager_snap_end(&s.pg, snaps++ % 2 == 0);
            check_reads(&s, &o, false);
        }
        if ((i + 1) % (quarter / 2) == 0) full_check(&s, &o, &lsn, (i + 1) % quarter == 0);
    }
    /* everything deleted: only the header page is left */
    for (uint32_t k = 0; k < o.nkeys; k++) {
        if (!o.p[k].present) continue;
        struct op op;
        op_make(&o, &op, true, k, PL_NONE);
        assert_int_equal(op_apply(&s, &op, ++lsn), CAIRN_OK);
        op_commit_oracle(&o, &op);
    }
    assert_int_equal(s.pg.live_pages, 1);
    full_check(&s, &o, &lsn, true);
    print_message("dim %u: %u faults injected, %" PRIu64 " records moved, %" PRIu64
                  " free heap numbers seen, %u snapshots\n",
                  pl->dim, faults, o.moved, o.heap_drops, snaps);
    assert_true(faults > 0);
    assert_true(o.heap_drops > 0);
    assert_true(o.moved > 0);
    store_free(&s);
    oracle_free(&o);
}

static void test_dim_1(void **st) {
    (void)st;
    run_plan(&(struct plan){.dim = 1, .nkeys = 900, .ops = 2400, .huge = true});
}
static void test_dim_3(void **st) {
    (void)st;
    run_plan(&(struct plan){.dim = 3, .nkeys = 900, .ops = 2400, .huge = true});
}
static void test_dim_128(void **st) {
    (void)st;
    run_plan(&(struct plan){.dim = 128, .nkeys = 900, .ops = 2400, .huge = true});
}
static void test_dim_784(void **st) {
    (void)st;
    run_plan(&(struct plan){.dim = 784, .nkeys = 800, .ops = 2000, .huge = true});
}
static void test_dim_2040(void **st) {
    (void)st;
    run_plan(&(struct plan){.dim = 2040, .nkeys = 800, .ops = 2000, .huge = false});
}
static void test_dim_2041(void **st) {
    (void)st;
    run_plan(&(struct plan){.dim = 2041, .nkeys = 800, .ops = 2000, .huge = false});
}
static void test_dim_5000(void **st) {
    (void)st;
    run_plan(&(struct plan){.dim = 5000, .nkeys = 800, .ops = 1600, .huge = true});
}

/* ---- layout edges -------------------------------------------------------------------- */

static void test_layout(void **st) {
    (void)st;
    static const uint32_t dims[] = {1, 5, 6, 7, 128, 784, 1020, 2040, 2041, 4080, 4081, 65536};
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(dims); i++) {
        struct store s;
        store_prepare(&s, COLL, dims[i]);
        struct lay l = lay_of(dims[i]);
        assert_int_equal(s.vpp, l.vpp);
        assert_int_equal(s.ppv, l.ppv);
        assert_int_equal(s.spg, l.spg);
        assert_int_equal(s.gpages, l.g);
        assert_true(s.spg * 24 <= 8160);
        if (s.vpp) assert_true((size_t)s.vpp * 4 * dims[i] <= 8160 && s.spg % s.vpp == 0);
        else assert_true((size_t)s.ppv * 8160 >= 4 * (size_t)dims[i] &&
                         (size_t)(s.ppv - 1) * 8160 < 4 * (size_t)dims[i]);
        store_free(&s);
    }
    /* the largest dimension: one point, a group of 11221 pages, read back */
    struct store s;
    uint32_t dim = CAIRN_MAX_DIM;
    float *v = malloc(4 * (size_t)dim), *w = malloc(4 * (size_t)dim);
    assert_true(v && w);
    for (uint32_t i = 0; i < dim; i++) v[i] = (float)i * 0.5f;
    assert_int_equal(store_init(&s, COLL, dim, 1), CAIRN_OK);
    assert_int_equal(s.ppv, 33);
    assert_int_equal(store_upsert(&s, 42, v, "{}", 2, 2), CAIRN_OK);
    assert_int_equal(store_upsert(&s, 43, w, NULL, 0, 3), CAIRN_OK);
    store_get_vector(&s, store_find(&s, 42), w);
    assert_memory_equal(v, w, 4 * (size_t)dim);
    assert_int_equal(s.pg.live_pages, 1 + 1 + 2 * 33 + 1);
    check_clean(&s);
    assert_int_equal(store_delete(&s, 42, 4), CAIRN_OK);
    assert_int_equal(s.pg.live_pages, 1 + 1 + 33);
    check_clean(&s);
    store_free(&s);
    free(v);
    free(w);
}

/* ---- small direct cases ---------------------------------------------------------------- */

static void test_basics(void **st) {
    (void)st;
    struct store s;
    float v[3] = {1, 2, 3}, w[3];
    assert_int_equal(store_init(&s, COLL, 3, 10), CAIRN_OK);
    /* delete of an absent id: nothing changes, not even the LSN */
    assert_int_equal(store_delete(&s, 5, 11), CAIRN_OK);
    assert_int_equal(page_lsn(pager_read(&s.pg, PSPACE_GROUP, 0)), 10);
    assert_int_equal(store_upsert(&s, 5, v, "{\"a\":1}", 7, 12), CAIRN_OK);
    assert_int_equal(store_upsert(&s, 6, v, NULL, 0, 13), CAIRN_OK);
    /* pages an operation changes get its LSN; others keep theirs */
    assert_int_equal(page_lsn(pager_read(&s.pg, PSPACE_GROUP, 0)), 13);
    assert_int_equal(page_lsn(pager_read(&s.pg, PSPACE_GROUP, 1)), 13);
    assert_int_equal(page_lsn(pager_read(&s.pg, PSPACE_HEAP, 0)), 12);
    /* an oversized payload is refused, nothing changes */
    struct image im;
    image_take(&s, &im);
    assert_int_equal(store_upsert(&s, 7, v, "{}", CAIRN_MAX_PAYLOAD + 1, 14), CAIRN_EPAYLOAD);
    image_check_free(&s, &im);
    /* payload replaced by none, vector replaced */
    w[0] = 9;
    w[1] = w[2] = 0;
    assert_int_equal(store_upsert(&s, 5, w, NULL, 0, 15), CAIRN_OK);
    assert_null(pager_read(&s.pg, PSPACE_HEAP, 0)); /* emptied: dropped */
    char *pl = (char *)1;
    assert_int_equal(store_get_payload(&s, store_find(&s, 5), &pl), CAIRN_OK);
    assert_null(pl);
    bool failed = false;
    assert_null(store_payload_json(&s, store_find(&s, 5), &failed));
    assert_false(failed);
    store_get_vector(&s, store_find(&s, 5), v);
    assert_memory_equal(v, w, sizeof w);
    assert_int_equal(store_bytes(&s), 2 * (12 + 8));
    check_clean(&s);
    store_free(&s);
    store_free(&s); /* a zeroed store: no-op */
    store_free(NULL);
}

/* Bulk mode (store_bulk_begin): the header page is written once, at the
 * end, with the last change's LSN; a refusal before any change leaves the
 * store usable; a change failing halfway, or the header write at the end
 * failing, leaves it broken: every later change is refused, naming the
 * collection. */
static void test_bulk(void **st) {
    (void)st;
    struct store s;
    float v[3] = {1, 2, 3};
    assert_int_equal(store_init(&s, COLL, 3, 10), CAIRN_OK);
    assert_int_equal(store_upsert(&s, 1, v, "{\"a\":1}", 7, 11), CAIRN_OK);
    uint8_t hdr[PAGE_SIZE];
    memcpy(hdr, pager_read(&s.pg, PSPACE_GROUP, 0), PAGE_SIZE);

    store_bulk_begin(&s);
    assert_int_equal(store_upsert_norm(&s, 2, v, vec_norm(v, 3), NULL, 0, 12), CAIRN_OK);
    assert_int_equal(store_upsert(&s, 3, v, "{}", 2, 13), CAIRN_OK);
    assert_int_equal(store_delete(&s, 1, 14), CAIRN_OK);
    assert_int_equal(store_delete(&s, 99, 15), CAIRN_OK); /* absent: no change */
    /* refusals before any change: nothing happens, the store stays usable */
    struct image im;
    image_take(&s, &im);
    assert_int_equal(store_upsert(&s, 7, v, "{}", CAIRN_MAX_PAYLOAD + 1, 16), CAIRN_EPAYLOAD);
    image_check_free(&s, &im);
    assert_false(s.broken);
    /* the header is behind until the end */
    assert_memory_equal(pager_read(&s.pg, PSPACE_GROUP, 0), hdr, PAGE_SIZE);
    assert_int_equal(store_bulk_end(&s), CAIRN_OK);
    assert_false(s.bulk);
    assert_int_equal(page_lsn(pager_read(&s.pg, PSPACE_GROUP, 0)), 14);
    assert_int_equal(store_count(&s), 2);
    check_clean(&s); /* store_check: the header matches the points */
    /* a bulk run without a change leaves the header as it was */
    memcpy(hdr, pager_read(&s.pg, PSPACE_GROUP, 0), PAGE_SIZE);
    store_bulk_begin(&s);
    assert_int_equal(store_delete(&s, 99, 20), CAIRN_OK);
    assert_int_equal(store_bulk_end(&s), CAIRN_OK);
    assert_memory_equal(pager_read(&s.pg, PSPACE_GROUP, 0), hdr, PAGE_SIZE);

    /* a change failing halfway: its error, then the store is broken */
    store_bulk_begin(&s);
    s.fault_in = 2; /* past the first step: pages are being changed */
    assert_int_equal(store_upsert(&s, 4, v, "{\"b\":2}", 7, 21), CAIRN_ENOMEM);
    assert_true(s.broken);
    assert_int_equal(store_bulk_end(&s), CAIRN_OK); /* the failure was reported */
    assert_int_equal(store_upsert(&s, 5, v, NULL, 0, 22), CAIRN_ECORRUPT);
    assert_non_null(strstr(cairn_last_error(), "collection 7"));
    assert_non_null(strstr(cairn_last_error(), "halfway"));
    assert_int_equal(store_delete(&s, 2, 23), CAIRN_ECORRUPT);
    assert_non_null(strstr(cairn_last_error(), "accepts no change"));
    store_free(&s);

    /* the header write at the end failing */
    assert_int_equal(store_init(&s, COLL, 3, 10), CAIRN_OK);
    store_bulk_begin(&s);
    assert_int_equal(store_upsert(&s, 1, v, NULL, 0, 11), CAIRN_OK);
    s.fault_in = 1;
    assert_int_equal(store_bulk_end(&s), CAIRN_ENOMEM);
    assert_non_null(strstr(cairn_last_error(), "collection 7"));
    assert_true(s.broken);
    assert_int_equal(store_upsert(&s, 2, v, NULL, 0, 12), CAIRN_ECORRUPT);
    store_free(&s);
}

/* The relocation paths, constructed: a non-open heap page falls under a
 * quarter live and its records move (to the open page, or to a fresh page
 * taking the open page's records too), each under injected failures. */
static void test_relocation(void **st) {
    (void)st;
    struct oracle o;
    oracle_init(&o, 4, 64);
    struct store s;
    uint64_t lsn = 1;
    assert_int_equal(store_init(&s, COLL, 4, lsn), CAIRN_OK);
    /* page 0: eight records of ~1000 bytes (8 * 1016 = 8128 bytes) */
    struct op op;
    for (uint32_t k = 0; k < 8; k++) {
        op_make(&o, &op, false, k, PL_NONE);
        op.len = 1000;
        op.pl = make_payload(id_of(k), 1, 1000);
        o.p[k].version = 0;
        assert_int_equal(op_apply(&s, &op, ++lsn), CAIRN_OK);
        op_commit_oracle(&o, &op);
    }
    /* the next goes to page 1, which becomes the open one */
    op_make(&o, &op, false, 8, PL_NONE);
    op.len = 300;
    op.pl = make_payload(id_of(8), 1, 300);
    assert_int_equal(op_apply(&s, &op, ++lsn), CAIRN_OK);
    op_commit_oracle(&o, &op);
    assert_int_equal(s.heap_open, 1);
    /* delete six of page 0's points: at two left (2032 < 2040) it moves */
    for (uint32_t k = 0; k < 6; k++) {
        op_make(&o, &op, true, k, PL_NONE);
        unsigned f = fault_every_step(&s, &o, &op, ++lsn);
        assert_true(f > 0);
        op_commit_oracle(&o, &op);
    }
    assert_null(pager_read(&s.pg, PSPACE_HEAP, 0));
    assert_int_equal(s.heap_open, 1);
    decode_check(&s, &o);
    assert_true(o.moved == 0); /* first observation */
    check_clean(&s);
    /* fill page 1 nearly full with one big dead record: the open page is
     * then mostly dead, and a record that does not fit moves its records */
    op_make(&o, &op, false, 9, PL_NONE);
    op.len = 5000;
    op.pl = make_payload(id_of(9), 1, 5000);
    assert_int_equal(op_apply(&s, &op, ++lsn), CAIRN_OK);
    op_commit_oracle(&o, &op);
    decode_check(&s, &o);
    for (uint32_t k = 9; k >= 8; k--) { /* 5000 bytes dead, then 320 more */
        op_make(&o, &op, true, k, PL_NONE);
        assert_int_equal(op_apply(&s, &op, ++lsn), CAIRN_OK);
        op_commit_oracle(&o, &op);
    }
    assert_int_equal(ld32(pager_read(&s.pg, PSPACE_HEAP, s.heap_open) + 36), 2 * 1016);
    uint32_t open_before = s.heap_open;
    op_make(&o, &op, false, 10, PL_NONE);
    op.len = 4000;
    op.pl = make_payload(id_of(10), 1, 4000);
    assert_true(fault_every_step(&s, &o, &op, ++lsn) > 0);
    op_commit_oracle(&o, &op);
    assert_true(s.heap_open != open_before);
    assert_null(pager_read(&s.pg, PSPACE_HEAP, open_before));
    decode_check(&s, &o);
    assert_true(o.moved > 0);
    check_clean(&s);
    full_check(&s, &o, &lsn, true);
    store_free(&s);
    oracle_free(&o);
}

/* ---- damaged pages ------------------------------------------------------------------------ */

static struct store g_base;
static struct oracle g_bo;

/* A store with two groups (dim 128: 330 slots per group), small and large
 * payloads. */
static void build_base(void) {
    oracle_init(&g_bo, 128, 400);
    assert_int_equal(store_init(&g_base, COLL, 128, 1), CAIRN_OK);
    uint64_t lsn = 1;
    for (uint32_t k = 0; k < 400; k++) {
        struct op op;
        op_make(&g_bo, &op, false, k, k % 50 == 7 ? PL_BIG : k % 3 ? PL_SMALL : PL_NONE);
        assert_int_equal(op_apply(&g_base, &op, ++lsn), CAIRN_OK);
        op_commit_oracle(&g_bo, &op);
    }
    check_clean(&g_base);
}

static struct store *damaged(void) {
    static struct store r;
    clone_pages(&g_base, &r);
    return &r;
}

static uint8_t *wpage(struct store *r, unsigned sp, uint32_t pno) {
    uint8_t *f = (uint8_t *)pager_read(&r->pg, sp, pno);
    assert_non_null(f);
    return f;
}

/* store_load fails with want, its message holding each of the texts;
 * store_check reports at least `min` problems. */
static void expect_corrupt(struct store *r, cairn_status want, const char *t1, const char *t2,
                           unsigned min) {
    int lines = 0;
    uint64_t problems = 0;
    cairn_status st = store_check(r, collect, &lines, &problems);
    assert_int_equal(st, want);
    assert_true(problems >= min);
    assert_int_equal(lines, (int)problems);
    st = store_load(r);
    const char *msg = cairn_last_error();
    print_message("load: %s\n", msg);
    assert_int_equal(st, want);
    assert_non_null(strstr(msg, "collection 7: "));
    if (t1) assert_non_null(strstr(msg, t1));
    if (t2) assert_non_null(strstr(msg, t2));
    assert_int_equal(store_count(r), 0);
    store_free(r);
}

static void test_corrupt(void **state) {
    (void)state;
    build_base();
    struct lay l = lay_of(128);
    struct store *r;
    size_t slot5 = store_find(&g_base, id_of(5)), slot6 = store_find(&g_base, id_of(6));

    /* an undamaged copy loads and checks clean */
    r = damaged();
    assert_int_equal(store_load(r), CAIRN_OK);
    check_reads(r, &g_bo, false);
    store_free(r);

    /* header fields */
    r = damaged();
    st64(wpage(r, PSPACE_GROUP, 0) + 32 + 24, 401); /* n */
    expect_corrupt(r, CAIRN_ECORRUPT, "group page ", NULL, 1);
    r = damaged();
    st32(wpage(r, PSPACE_GROUP, 0) + 32 + 4, 129); /* dim */
    expect_corrupt(r, CAIRN_ECORRUPT, "group page 0: dimension 129", NULL, 1);
    r = damaged();
    st32(wpage(r, PSPACE_GROUP, 0) + 32 + 16, 331); /* SPG */
    expect_corrupt(r, CAIRN_ECORRUPT, "group page 0: layout", NULL, 1);
    r = damaged();
    st64(wpage(r, PSPACE_GROUP, 0) + 32 + 32, 1); /* payload bytes */
    expect_corrupt(r, CAIRN_ECORRUPT, "group page 0: payload bytes 1", NULL, 1);
    r = damaged();
    st32(wpage(r, PSPACE_GROUP, 0) + 32 + 40, 999); /* open heap page */
    expect_corrupt(r, CAIRN_ECORRUPT, "group page 0: the open heap page 999", NULL, 1);
    r = damaged();
    st32(wpage(r, PSPACE_GROUP, 0) + 32, 2); /* a newer version */
    expect_corrupt(r, CAIRN_EVERSION, "group page 0: format version 2", NULL, 1);
    r = damaged();
    st32(wpage(r, PSPACE_GROUP, 0) + 8, 8); /* page header: another collection */
    expect_corrupt(r, CAIRN_ECORRUPT, "group page 0: its header says collection 8", NULL, 1);

    /* slot entries */
    char want[128];
    r = damaged();
    assert_true(slot5 < slot6);
    uint8_t *e5 = wpage(r, PSPACE_GROUP, l_slot_page(&l, slot6)) + 32 + 24 * (slot6 % l.spg);
    st64(e5, id_of(5)); /* duplicate id */
    snprintf(want, sizeof want, "group page %u: slot %zu holds point %" PRIu64 ", as slot %zu",
             l_slot_page(&l, slot6), slot6, id_of(5), slot5);
    expect_corrupt(r, CAIRN_ECORRUPT, want, NULL, 1);
    r = damaged();
    e5 = wpage(r, PSPACE_GROUP, l_slot_page(&l, slot5)) + 32 + 24 * (slot5 % l.spg);
    assert_true(ld32(e5 + 12) > 0);
    st16(e5 + 20, (uint16_t)(ld16(e5 + 20) + 8)); /* record offset */
    snprintf(want, sizeof want, "group page %u: slot %zu", l_slot_page(&l, slot5), slot5);
    expect_corrupt(r, CAIRN_ECORRUPT, want, "no record there", 2 /* + live count */);
    r = damaged();
    e5 = wpage(r, PSPACE_GROUP, l_slot_page(&l, slot5)) + 32 + 24 * (slot5 % l.spg);
    st16(e5 + 22, 0); /* not present */
    expect_corrupt(r, CAIRN_ECORRUPT, "has flags 0x0", NULL, 1);
    r = damaged();
    e5 = wpage(r, PSPACE_GROUP, l_slot_page(&l, slot5)) + 32 + 24 * (slot5 % l.spg);
    float nan = NAN;
    memcpy(e5 + 8, &nan, 4);
    expect_corrupt(r, CAIRN_ECORRUPT, "has norm nan", NULL, 1);

    /* a vector page removed, a stray page added */
    r = damaged();
    uint32_t vp = l_vec_page(&l, 350);
    pager_drop(&r->pg, PSPACE_GROUP, vp);
    snprintf(want, sizeof want, "group page %u: missing (the vector page of slot", vp);
    expect_corrupt(r, CAIRN_ECORRUPT, want, NULL, 1);
    r = damaged();
    uint32_t stray = l_slot_page(&l, 2 * l.spg);
    uint8_t *f = page_frame_alloc();
    struct page_hdr ph = {.type = PT_SLOT, .coll_id = COLL, .space = PSPACE_GROUP, .page_no = stray};
    page_hdr_put(f, &ph);
    assert_int_equal(pager_install(&r->pg, PSPACE_GROUP, stray, f), CAIRN_OK);
    snprintf(want, sizeof want, "group page %u: in use, but no slot uses it", stray);
    expect_corrupt(r, CAIRN_ECORRUPT, want, NULL, 1);
    r = damaged();
    st16(wpage(r, PSPACE_GROUP, vp) + 4, PT_SLOT); /* wrong type */
    snprintf(want, sizeof want, "group page %u: has type 6", vp);
    expect_corrupt(r, CAIRN_ECORRUPT, want, NULL, 1);
    r = damaged();
    float inf = INFINITY;
    memcpy(wpage(r, PSPACE_GROUP, l_vec_page(&l, 0)) + 32 + 4 * 3, &inf, 4);
    snprintf(want, sizeof want, "group page %u: vector of slot 0", l_vec_page(&l, 0));
    expect_corrupt(r, CAIRN_ECORRUPT, want, "element 3 is not finite", 1);

    /* heap: a record's owner, a page removed, a chain broken */
    const uint8_t *be =
        pager_read(&g_base.pg, PSPACE_GROUP, l_slot_page(&l, slot5)) + 32 + 24 * (slot5 % l.spg);
    uint32_t hp = ld32(be + 16), hoff = ld16(be + 20);
    r = damaged();
    st64(wpage(r, PSPACE_HEAP, hp) + 32 + hoff, 12345);
    snprintf(want, sizeof want, "heap page %u: record at offset %u belongs to point 12345", hp,
             hoff);
    expect_corrupt(r, CAIRN_ECORRUPT, want, NULL, 2);
    r = damaged();
    pager_drop(&r->pg, PSPACE_HEAP, hp);
    snprintf(want, sizeof want, "references heap page %u, not in use", hp);
    expect_corrupt(r, CAIRN_ECORRUPT, want, NULL, 1);
    r = damaged();
    st32(wpage(r, PSPACE_HEAP, hp) + 32 + 4, 4); /* live count */
    snprintf(want, sizeof want, "heap page %u: live bytes 4", hp);
    expect_corrupt(r, CAIRN_ECORRUPT, want, NULL, 1);
    r = damaged();
    uint8_t *hpw = wpage(r, PSPACE_HEAP, hp);
    st32(hpw + 32, ld32(hpw + 32) - 8); /* used: cuts the last record */
    snprintf(want, sizeof want, "heap page %u: malformed record", hp);
    expect_corrupt(r, CAIRN_ECORRUPT, want, NULL, 2 /* + bytes after used */);
    size_t slot7 = store_find(&g_base, id_of(7)); /* a 100 KB payload */
    const uint8_t *e7 =
        pager_read(&g_base.pg, PSPACE_GROUP, l_slot_page(&l, slot7)) + 32 + 24 * (slot7 % l.spg);
    assert_int_equal(ld16(e7 + 22), 3);
    uint32_t first = ld32(e7 + 16);
    uint32_t second = ld32(pager_read(&g_base.pg, PSPACE_HEAP, first) + 32);
    r = damaged();
    st32(wpage(r, PSPACE_HEAP, first) + 32, first); /* a loop */
    snprintf(want, sizeof want, "heap page %u: overflow page in two chains", first);
    expect_corrupt(r, CAIRN_ECORRUPT, want, NULL, 2 /* + the orphaned rest */);
    r = damaged();
    pager_drop(&r->pg, PSPACE_HEAP, second);
    snprintf(want, sizeof want, "heap page %u: piece 1 of the payload of point %" PRIu64, second,
             id_of(7));
    expect_corrupt(r, CAIRN_ECORRUPT, want, NULL, 2);
    r = damaged();
    wpage(r, PSPACE_HEAP, second)[32 + 16 + 5] = 0x01; /* not JSON any more: check only */
    {
        int lines = 0;
        uint64_t problems = 0;
        assert_int_equal(store_check(r, collect, &lines, &problems), CAIRN_ECORRUPT);
        assert_int_equal(problems, 1);
        assert_int_equal(store_load(r), CAIRN_OK); /* load does not parse payloads */
        store_free(r);
    }

    /* several problems at once: load names the first, check finds all */
    r = damaged();
    st32(wpage(r, PSPACE_HEAP, hp) + 32 + 4, 4);
    memcpy(wpage(r, PSPACE_GROUP, l_vec_page(&l, 0)) + 32, &inf, 4);
    pager_drop(&r->pg, PSPACE_GROUP, vp);
    {
        int lines = 0;
        uint64_t problems = 0;
        assert_int_equal(store_check(r, collect, &lines, &problems), CAIRN_ECORRUPT);
        assert_int_equal(problems, 3);
        snprintf(want, sizeof want, "group page %u: missing", vp);
        assert_int_equal(store_load(r), CAIRN_ECORRUPT);
        assert_non_null(strstr(cairn_last_error(), want));
        store_free(r);
    }
    /* no header page at all */
    r = damaged();
    pager_drop(&r->pg, PSPACE_GROUP, 0);
    expect_corrupt(r, CAIRN_ECORRUPT, "group page 0: missing (the collection header)", NULL, 1);

    store_free(&g_base);
    oracle_free(&g_bo);
}

/* ---- page LSNs through commit and replay -------------------------------------------------- */

static const uint8_t *coll_header(cairn_db *db) {
    struct coll *c = cat_find_name(db, "c");
    assert_non_null(c);
    return pager_read(&c->st.pg, PSPACE_GROUP, 0);
}

static void test_commit_lsn(void **state) {
    (void)state;
    char dir[512];
    assert_int_equal(tu_tmpbase(dir, sizeof dir, "store_lsn"), 0);
    for (int mode = 0; mode < 2; mode++) {
        cairn_options o = tu_opts(mode ? CAIRN_DURABILITY_SYNC : CAIRN_DURABILITY_NONE,
                                  CAIRN_IO_DEFAULT, 2);
        char path[600];
        snprintf(path, sizeof path, "%s/db%d", dir, mode);
        cairn_db *db;
        assert_int_equal(cairn_open(path, &o, &db), CAIRN_OK);
        assert_int_equal(cairn_collection_create(db, "c", 4, CAIRN_METRIC_L2), CAIRN_OK);
        cairn_stats stt;
        assert_int_equal(cairn_stats_get(db, &stt), CAIRN_OK);
        uint64_t create_lsn = stt.last_lsn - wal_enc_commit(NULL, 0, 0, 0);
        assert_int_equal(page_lsn(coll_header(db)), create_lsn);
        float v[4] = {1, 2, 3, 4};
        cairn_point pts[3] = {{1, v, "{\"a\":1}", 7}, {2, v, NULL, 0}, {3, v, "{}", 2}};
        cairn_commit_info ci;
        assert_int_equal(cairn_upsert_batch(db, "c", pts, 3, 4, &ci), CAIRN_OK);
        assert_int_equal(page_lsn(coll_header(db)), ci.commit_lsn);
        uint64_t del = 2;
        cairn_commit_info ci2;
        assert_int_equal(cairn_delete_batch(db, "c", &del, 1, &ci2), CAIRN_OK);
        assert_int_equal(page_lsn(coll_header(db)), ci2.commit_lsn);
        const uint8_t *heap0 = pager_read(&cat_find_name(db, "c")->st.pg, PSPACE_HEAP, 0);
        assert_int_equal(page_lsn(heap0), ci.commit_lsn); /* untouched by the delete */
        assert_int_equal(cairn_close(db), CAIRN_OK);
        /* replay stamps the same LSNs */
        assert_int_equal(cairn_open(path, &o, &db), CAIRN_OK);
        assert_int_equal(page_lsn(coll_header(db)), ci2.commit_lsn);
        heap0 = pager_read(&cat_find_name(db, "c")->st.pg, PSPACE_HEAP, 0);
        assert_int_equal(page_lsn(heap0), ci.commit_lsn);
        assert_int_equal(cairn_close(db), CAIRN_OK);
    }
    tu_rm_rf(dir);
}

/* Memory running out when a new chunk of frames must be mapped
 * (page_frame_fail_map): the frame allocation is NULL and the next works;
 * in a store, the change that needed a new page fails whole with
 * CAIRN_ENOMEM naming the collection and the page, nothing changed, and
 * the same change succeeds after. */
static void test_frame_map_fails(void **state) {
    (void)state;
    enum { MAXF = 4096 };
    uint8_t **v = calloc(MAXF, sizeof *v);
    assert_non_null(v);
    page_frame_fail_map(1);
    int n = 0;
    while (n < MAXF && (v[n] = page_frame_alloc()) != NULL) n++;
    assert_true(n < MAXF); /* a chunk had to be mapped within 2 MiB of frames */
    assert_null(v[n]);
    v[n] = page_frame_alloc(); /* the next mapping works */
    assert_non_null(v[n]);
    for (int i = 0; i <= n; i++) page_frame_free(v[i]);
    free(v);

    struct store s;
    assert_int_equal(store_init(&s, COLL, 128, 10), CAIRN_OK);
    float vec[128];
    for (int i = 0; i < 128; i++) vec[i] = (float)i;
    uint64_t lsn = 11;
    unsigned failed = 0;
    for (uint64_t id = 1; id <= 50000 && !failed; id++) {
        struct image im;
        image_take(&s, &im);
        page_frame_fail_map(1);
        cairn_status st = store_upsert(&s, id, vec, "{\"k\":1}", 7, lsn++);
        if (st == CAIRN_OK) {
            free(im.pg);
            continue;
        }
        assert_int_equal(st, CAIRN_ENOMEM);
        assert_non_null(strstr(cairn_last_error(), "collection 7"));
        assert_non_null(strstr(cairn_last_error(), "page"));
        image_check_free(&s, &im);
        assert_int_equal(store_find(&s, id), SIZE_MAX);
        assert_int_equal(store_upsert(&s, id, vec, "{\"k\":1}", 7, lsn++), CAIRN_OK);
        failed = 1;
    }
    page_frame_fail_map(0);
    assert_true(failed); /* new pages needed a new chunk within 50000 points */
    check_clean(&s);
    store_free(&s);
}

/* Each test starts from the seed: a test's data does not depend on which
 * tests ran before it. */
static int reseed(void **state) {
    (void)state;
    g_rng = g_seed;
    return 0;
}


/* ---- the frame allocator (engine/frame.c) ---------------------------------------------- */

struct frame_worker {
    uint64_t seed;
    unsigned rounds;
    int bad;
};

/* Each thread holds up to 600 frames (more than two chunks), freeing and
 * allocating at random; every frame is aligned, zero when handed out, and
 * keeps the pattern written into it while held (no two holders share one). */
static void *frame_worker_main(void *arg) {
    struct frame_worker *fw = arg;
    enum { HOLD = 600 };
    uint8_t *held[HOLD] = {0};
    uint64_t rng = fw->seed;
    for (unsigned r = 0; r < fw->rounds; r++) {
        unsigned i = (unsigned)(tu_splitmix(&rng) % HOLD);
        if (held[i]) {
            for (unsigned k = 0; k < PAGE_SIZE; k += 512)
                if (held[i][k] != (uint8_t)(i | 1)) fw->bad++;
            page_frame_free(held[i]);
            held[i] = NULL;
        } else {
            uint8_t *f = (r & 1) ? page_frame_alloc() : page_frame_alloc_raw();
            if (!f || ((uintptr_t)f % PAGE_SIZE)) { fw->bad++; continue; }
            if (r & 1)
                for (unsigned k = 0; k < PAGE_SIZE; k++)
                    if (f[k]) { fw->bad++; break; }
            memset(f, (int)(i | 1), PAGE_SIZE);
            held[i] = f;
        }
    }
    for (unsigned i = 0; i < HOLD; i++) page_frame_free(held[i]);
    return NULL;
}

static void test_frames(void **state) {
    (void)state;
    size_t live0 = 0, chunks0 = 0;
    page_frame_stats(&live0, &chunks0);
    struct frame_worker fw[3];
    pthread_t th[3];
    for (int t = 0; t < 3; t++) {
        fw[t] = (struct frame_worker){.seed = rnd(), .rounds = 200000};
        assert_int_equal(pthread_create(&th[t], NULL, frame_worker_main, &fw[t]), 0);
    }
    for (int t = 0; t < 3; t++) {
        assert_int_equal(pthread_join(th[t], NULL), 0);
        assert_int_equal(fw[t].bad, 0);
    }
    size_t live = 0, chunks = 0;
    page_frame_stats(&live, &chunks);
    assert_int_equal(live, live0);
    /* chunks whose frames all came back are unmapped, but for one spare */
    assert_true(chunks <= chunks0 + 1);

    /* a run of fresh frames, then all freed: one spare chunk stays */
    enum { N = 2000 };
    uint8_t **v = malloc(N * sizeof *v);
    assert_non_null(v);
    for (int i = 0; i < N; i++) {
        v[i] = page_frame_alloc();
        assert_non_null(v[i]);
        assert_int_equal(v[i][0] | v[i][PAGE_SIZE - 1], 0);
        v[i][0] = 1;
    }
    page_frame_stats(&live, &chunks);
    assert_int_equal(live, live0 + N);
    assert_true(chunks >= N / 255);
    for (int i = N - 1; i >= 0; i--) page_frame_free(v[i]);
    free(v);
    page_frame_stats(&live, &chunks);
    assert_int_equal(live, live0);
    assert_true(chunks <= chunks0 + 1);
    page_frame_free(NULL);
}

int main(void) {
    g_seed = tu_seed("test_store", 0x73746f7265ull);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_frames, reseed),
        cmocka_unit_test_setup(test_frame_map_fails, reseed),
        cmocka_unit_test_setup(test_layout, reseed),
        cmocka_unit_test_setup(test_basics, reseed),
        cmocka_unit_test_setup(test_bulk, reseed),
        cmocka_unit_test_setup(test_relocation, reseed),
        cmocka_unit_test_setup(test_corrupt, reseed),
        cmocka_unit_test_setup(test_commit_lsn, reseed),
        cmocka_unit_test_setup(test_dim_1, reseed),
        cmocka_unit_test_setup(test_dim_3, reseed),
        cmocka_unit_test_setup(test_dim_128, reseed),
        cmocka_unit_test_setup(test_dim_784, reseed),
        cmocka_unit_test_setup(test_dim_2040, reseed),
        cmocka_unit_test_setup(test_dim_2041, reseed),
        cmocka_unit_test_setup(test_dim_5000, reseed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
