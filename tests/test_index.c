/*
 * test_index.c — distance kernels and exact top-k (index/).
 *
 * Kernels are checked against a double-precision reference on seeded random
 * vectors for every dimension 1..1031 (so every tail length of both builds),
 * from unaligned addresses; the AVX2 build is checked against the scalar one;
 * the top-k collector and flat_search() against a brute-force sort.
 *
 * Seed: CAIRN_TEST_SEED (decimal or 0x hex) overrides the default; the seed
 * in use is printed so a failure can be replayed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/index.h"

#include "testutil.h"

#define MAX_DIM 1031
#define KERNEL_RTOL 1e-5

static uint64_t g_seed = 0x5eedca1e2024ull;
static uint64_t g_rng;

static uint64_t rng_next(void) { return tu_splitmix(&g_rng); }

/* Uniform in [-1, 1). */
static float rng_float(void) {
    return (float)((double)(rng_next() >> 40) / (double)(1ull << 23) - 1.0);
}

static uint32_t rng_below(uint32_t n) { return (uint32_t)(rng_next() % n); }

static void fill(float *v, uint32_t dim, float scale) {
    for (uint32_t i = 0; i < dim; i++)
        v[i] = rng_float() * scale;
}

static int reseed(void **state) {
    (void)state;
    g_rng = g_seed;
    return 0;
}

/* Fails unless |got - ref| <= KERNEL_RTOL * mag (mag = sum of |terms|). */
static void check_close(const char *what, uint32_t dim, double got, double ref,
                        double mag) {
    if (!(fabs(got - ref) <= KERNEL_RTOL * mag + 1e-30)) {
        print_error("%s dim=%u: got %.9g, reference %.9g (|terms| %.9g, rel %.3g)\n",
                    what, dim, got, ref, mag, fabs(got - ref) / (mag + 1e-300));
        fail();
    }
}

struct ref {
    double l2, dot, dot_mag;
};

static struct ref reference(const float *a, const float *b, uint32_t dim) {
    struct ref r = {0, 0, 0};
    for (uint32_t i = 0; i < dim; i++) {
        double d = (double)a[i] - b[i];
        r.l2 += d * d;
        r.dot += (double)a[i] * b[i];
        r.dot_mag += fabs((double)a[i] * b[i]);
    }
    return r;
}

/* ------------------------------------------------------------------ */
/* Kernels                                                             */
/* ------------------------------------------------------------------ */

static void kernels_vs_reference(float scale) {
    /* +1 float: every vector starts 4 bytes past a 16-byte boundary. */
    float *abuf = malloc((MAX_DIM + 1) * sizeof(float));
    float *bbuf = malloc((MAX_DIM + 1) * sizeof(float));
    assert_non_null(abuf);
    assert_non_null(bbuf);
    float *a = abuf + 1, *b = bbuf + 1;
    bool avx2 = dist_avx2_available();
    for (uint32_t dim = 1; dim <= MAX_DIM; dim++) {
        fill(a, dim, scale);
        fill(b, dim, scale);
        struct ref r = reference(a, b, dim);
        check_close("l2sq_scalar", dim, dist_l2sq_scalar(a, b, dim), r.l2, r.l2);
        check_close("dot_scalar", dim, dist_dot_scalar(a, b, dim), r.dot, r.dot_mag);
        check_close("l2sq", dim, dist_l2sq(a, b, dim), r.l2, r.l2);
        check_close("dot", dim, dist_dot(a, b, dim), r.dot, r.dot_mag);
        if (avx2) {
            check_close("l2sq_avx2", dim, dist_l2sq_avx2(a, b, dim), r.l2, r.l2);
            check_close("dot_avx2", dim, dist_dot_avx2(a, b, dim), r.dot, r.dot_mag);
        }
    }
    free(abuf);
    free(bbuf);
}

static void test_kernels_vs_reference(void **state) {
    (void)state;
    kernels_vs_reference(1.0f);
    kernels_vs_reference(1000.0f);
    kernels_vs_reference(1e-3f);
}

static void test_kernels_dim0_and_identity(void **state) {
    (void)state;
    float a[MAX_DIM];
    fill(a, MAX_DIM, 1.0f);
    assert_true(dist_l2sq_scalar(a, a, 0) == 0.0f);
    assert_true(dist_dot_scalar(a, a, 0) == 0.0f);
    assert_true(dist_l2sq(a, a, 0) == 0.0f);
    assert_true(dist_dot(a, a, 0) == 0.0f);
    for (uint32_t dim = 1; dim <= MAX_DIM; dim += 37) {
        assert_true(dist_l2sq_scalar(a, a, dim) == 0.0f);
        assert_true(dist_l2sq(a, a, dim) == 0.0f);
    }
    if (dist_avx2_available()) {
        assert_true(dist_l2sq_avx2(a, a, 0) == 0.0f);
        assert_true(dist_dot_avx2(a, a, 0) == 0.0f);
        for (uint32_t dim = 1; dim <= MAX_DIM; dim += 37)
            assert_true(dist_l2sq_avx2(a, a, dim) == 0.0f);
    }
}

static void test_avx2_vs_scalar(void **state) {
    (void)state;
    if (!dist_avx2_available()) {
        print_message("AVX2+FMA not available on this CPU: skipped\n");
        skip();
    }
    float *abuf = malloc((MAX_DIM + 3) * sizeof(float));
    float *bbuf = malloc((MAX_DIM + 3) * sizeof(float));
    assert_non_null(abuf);
    assert_non_null(bbuf);
    for (uint32_t dim = 1; dim <= MAX_DIM; dim++) {
        /* Vary the misalignment of both operands: 0..3 floats. */
        float *a = abuf + dim % 4, *b = bbuf + (dim / 4) % 4;
        fill(a, dim, 1.0f);
        fill(b, dim, 1.0f);
        struct ref r = reference(a, b, dim);
        check_close("l2sq avx2 vs scalar", dim, dist_l2sq_avx2(a, b, dim),
                    dist_l2sq_scalar(a, b, dim), r.l2);
        check_close("dot avx2 vs scalar", dim, dist_dot_avx2(a, b, dim),
                    dist_dot_scalar(a, b, dim), r.dot_mag);
    }
    free(abuf);
    free(bbuf);
}

static void test_dispatch(void **state) {
    (void)state;
    float a[100], b[100];
    fill(a, 100, 1.0f);
    fill(b, 100, 1.0f);
    for (uint32_t dim = 1; dim <= 100; dim++) {
        if (dist_avx2_available()) {
            assert_true(dist_l2sq(a, b, dim) == dist_l2sq_avx2(a, b, dim));
            assert_true(dist_dot(a, b, dim) == dist_dot_avx2(a, b, dim));
        } else {
            assert_true(dist_l2sq(a, b, dim) == dist_l2sq_scalar(a, b, dim));
            assert_true(dist_dot(a, b, dim) == dist_dot_scalar(a, b, dim));
        }
    }
    print_message("dispatch: %s\n", dist_avx2_available() ? "avx2+fma" : "scalar");
}

static void test_norm_and_metrics(void **state) {
    (void)state;
    float a[300], b[300], z[300] = {0};
    for (uint32_t dim = 1; dim <= 300; dim += 7) {
        fill(a, dim, 1.0f);
        fill(b, dim, 1.0f);
        struct ref r = reference(a, b, dim);
        double na = sqrt(reference(a, a, dim).dot);
        double nb = sqrt(reference(b, b, dim).dot);
        float fa = vec_norm(a, dim), fb = vec_norm(b, dim);
        assert_true(fabs(fa - na) <= 1e-6 * na);
        assert_true(fabs(fb - nb) <= 1e-6 * nb);

        assert_true(dist_metric(CAIRN_METRIC_L2, a, fa, b, fb, dim) ==
                    dist_l2sq(a, b, dim));
        assert_true(dist_metric(CAIRN_METRIC_DOT, a, fa, b, fb, dim) ==
                    -dist_dot(a, b, dim));
        float cos_d = dist_metric(CAIRN_METRIC_COSINE, a, fa, b, fb, dim);
        check_close("cosine", dim, cos_d, 1.0 - r.dot / (na * nb),
                    1.0 + r.dot_mag / (na * nb));

        /* Same direction ~0, opposite ~2, zero norm exactly 1. */
        float neg[300];
        for (uint32_t i = 0; i < dim; i++)
            neg[i] = -2.0f * a[i];
        assert_true(fabsf(dist_metric(CAIRN_METRIC_COSINE, a, fa, a, fa, dim)) < 1e-5f);
        assert_true(fabsf(dist_metric(CAIRN_METRIC_COSINE, a, fa, neg,
                                      vec_norm(neg, dim), dim) - 2.0f) < 1e-5f);
        assert_true(vec_norm(z, dim) == 0.0f);
        assert_true(dist_metric(CAIRN_METRIC_COSINE, a, fa, z, 0.0f, dim) == 1.0f);
        assert_true(dist_metric(CAIRN_METRIC_COSINE, z, 0.0f, a, fa, dim) == 1.0f);
        assert_true(dist_metric(CAIRN_METRIC_COSINE, z, 0.0f, z, 0.0f, dim) == 1.0f);
    }
    /* Orthogonal. */
    float x[2] = {3, 0}, y[2] = {0, 5};
    assert_true(dist_metric(CAIRN_METRIC_COSINE, x, 3, y, 5, 2) == 1.0f);
    assert_true(dist_metric(CAIRN_METRIC_L2, x, 3, y, 5, 2) == 34.0f);
    assert_true(dist_metric(CAIRN_METRIC_DOT, x, 3, x, 3, 2) == -9.0f);
    /* Large finite values: the norm is summed in double and does not overflow. */
    float big[4] = {3e19f, 4e19f, 0, 0};
    assert_true(fabsf(vec_norm(big, 4) - 5e19f) <= 5e19f * 1e-6f);
}

/* The squared norm's two builds give the same bits (they add in one
 * order, and squares are exact in double) for every dimension 1..1031 and
 * magnitudes from 1e-30 to 1e19; both are within 1e-13 of a long double
 * sum; vec_norm is the rounded square root of it. */
static void test_norm_builds_agree(void **state) {
    (void)state;
    enum { MAXD = 1031 };
    static float v[MAXD + 7];
    const float scales[] = {1e-30f, 1e-3f, 1.0f, 7.5e6f, 1e19f};
    for (uint32_t dim = 1; dim <= MAXD; dim++) {
        float scale = scales[dim % 5];
        uint32_t off = rng_below(8); /* unaligned starts */
        fill(v + off, dim, scale);
        const float *x = v + off;
        long double ref = 0;
        for (uint32_t i = 0; i < dim; i++)
            ref += (long double)x[i] * x[i];
        double s = vec_norm_sq_scalar(x, dim);
        if (!(fabsl((long double)s - ref) <= 1e-13L * ref)) {
            print_error("dim=%u: scalar squared norm %.17g, reference %.17Lg\n", dim, s, ref);
            fail();
        }
        double a = vec_norm_sq_simd(x, dim);
        if (memcmp(&a, &s, sizeof a) != 0) {
            print_error("dim=%u: SIMD squared norm %.17g, scalar %.17g\n", dim, a, s);
            fail();
        }
        float n = vec_norm(x, dim);
        float want = (float)sqrt(s);
        assert_memory_equal(&n, &want, sizeof n);
    }
}

/* ------------------------------------------------------------------ */
/* Top-k                                                               */
/* ------------------------------------------------------------------ */

static int hit_cmp(const void *pa, const void *pb) {
    const cairn_hit *a = pa, *b = pb;
    if (a->distance != b->distance)
        return a->distance < b->distance ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

static void assert_hits_equal(const cairn_hit *got, uint32_t ngot,
                              const cairn_hit *want, uint32_t nwant) {
    assert_int_equal(ngot, nwant);
    for (uint32_t i = 0; i < nwant; i++) {
        if (got[i].id != want[i].id || got[i].distance != want[i].distance) {
            print_error("hit %u: got (%" PRIu64 ", %.9g), want (%" PRIu64 ", %.9g)\n",
                        i, got[i].id, got[i].distance, want[i].id, want[i].distance);
            fail();
        }
    }
}

static void test_topk_basic(void **state) {
    (void)state;
    cairn_hit buf[5];
    struct topk t;
    topk_init(&t, buf, 5);
    /* Distances 19..0 for ids 0..19, pushed in a scrambled order. */
    for (uint32_t j = 0; j < 20; j++) {
        uint32_t i = (j * 7) % 20;
        topk_push(&t, i, (float)(19 - i));
    }
    assert_int_equal(topk_finish(&t), 5);
    for (uint32_t i = 0; i < 5; i++) {
        assert_int_equal(buf[i].id, 19 - i);
        assert_true(buf[i].distance == (float)i);
    }
}

static void test_topk_ties(void **state) {
    (void)state;
    cairn_hit buf[3];
    struct topk t;

    /* All equal, pushed by descending id: the smallest ids are kept. */
    topk_init(&t, buf, 3);
    for (uint64_t id = 100; id-- > 0;)
        topk_push(&t, id, 1.0f);
    assert_int_equal(topk_finish(&t), 3);
    for (uint32_t i = 0; i < 3; i++) {
        assert_int_equal(buf[i].id, i);
        assert_true(buf[i].distance == 1.0f);
    }

    /* Ascending id push order gives the same answer. */
    topk_init(&t, buf, 3);
    for (uint64_t id = 0; id < 100; id++)
        topk_push(&t, id, 1.0f);
    assert_int_equal(topk_finish(&t), 3);
    for (uint32_t i = 0; i < 3; i++)
        assert_int_equal(buf[i].id, i);

    /* Mixed: ties at the boundary of the kept set. */
    topk_init(&t, buf, 3);
    topk_push(&t, 9, 0.5f);
    topk_push(&t, 8, 1.0f);
    topk_push(&t, 7, 1.0f);
    topk_push(&t, 3, 1.0f);
    topk_push(&t, 5, 0.25f);
    topk_push(&t, 4, 1.0f);
    assert_int_equal(topk_finish(&t), 3);
    cairn_hit want[3] = {{5, 0.25f}, {9, 0.5f}, {3, 1.0f}};
    assert_hits_equal(buf, 3, want, 3);

    /* Negative distances (DOT metric) and -0.0 == 0.0 ties by id. */
    topk_init(&t, buf, 3);
    topk_push(&t, 2, 0.0f);
    topk_push(&t, 1, -0.0f);
    topk_push(&t, 6, -3.0f);
    topk_push(&t, 0, 4.0f);
    assert_int_equal(topk_finish(&t), 3);
    assert_int_equal(buf[0].id, 6);
    assert_int_equal(buf[1].id, 1);
    assert_int_equal(buf[2].id, 2);
}

static void test_topk_small(void **state) {
    (void)state;
    cairn_hit buf[10];
    struct topk t;

    topk_init(&t, NULL, 0); /* k == 0 never touches the buffer */
    topk_push(&t, 1, 1.0f);
    topk_push(&t, 2, 0.0f);
    assert_int_equal(topk_finish(&t), 0);

    topk_init(&t, buf, 10);
    assert_int_equal(topk_finish(&t), 0);

    topk_init(&t, buf, 10); /* fewer pushes than k */
    topk_push(&t, 30, 3.0f);
    topk_push(&t, 10, 1.0f);
    topk_push(&t, 20, 2.0f);
    assert_int_equal(topk_finish(&t), 3);
    cairn_hit want[3] = {{10, 1.0f}, {20, 2.0f}, {30, 3.0f}};
    assert_hits_equal(buf, 3, want, 3);

    /* NaN ranks after everything, infinity included, and keeps the heap sane. */
    topk_init(&t, buf, 3);
    topk_push(&t, 1, NAN);
    topk_push(&t, 2, INFINITY);
    topk_push(&t, 3, 5.0f);
    topk_push(&t, 4, NAN);
    topk_push(&t, 5, 1.0f);
    assert_int_equal(topk_finish(&t), 3);
    assert_int_equal(buf[0].id, 5);
    assert_int_equal(buf[1].id, 3);
    assert_true(buf[2].id == 1 || buf[2].id == 2);
    assert_true(isinf(buf[2].distance));
}

static void test_topk_random_vs_sort(void **state) {
    (void)state;
    enum { N = 2000 };
    cairn_hit *all = malloc(N * sizeof(*all));
    cairn_hit *buf = malloc((N + 10) * sizeof(*buf));
    assert_non_null(all);
    assert_non_null(buf);
    static const uint32_t ks[] = {1, 2, 3, 7, 64, 500, N - 1, N, N + 10};
    for (int round = 0; round < 20; round++) {
        /* Few distinct distances, so ties are everywhere; ids unique. */
        uint32_t levels = 1 + rng_below(round < 10 ? 8 : 100000);
        for (uint32_t i = 0; i < N; i++) {
            all[i].id = (uint64_t)i * 2654435761u % 1000003u + (rng_next() & ~0xfffffull);
            all[i].distance = (float)rng_below(levels) - (float)levels / 2;
        }
        for (size_t ki = 0; ki < sizeof(ks) / sizeof(ks[0]); ki++) {
            uint32_t k = ks[ki];
            struct topk t;
            topk_init(&t, buf, k);
            for (uint32_t i = 0; i < N; i++)
                topk_push(&t, all[i].id, all[i].distance);
            uint32_t n = topk_finish(&t);
            cairn_hit *sorted = malloc(N * sizeof(*sorted));
            assert_non_null(sorted);
            memcpy(sorted, all, N * sizeof(*sorted));
            qsort(sorted, N, sizeof(*sorted), hit_cmp);
            assert_hits_equal(buf, n, sorted, k < N ? k : N);
            free(sorted);
        }
    }
    free(all);
    free(buf);
}

/* ------------------------------------------------------------------ */
/* flat_search                                                         */
/* ------------------------------------------------------------------ */

struct accept_ctx {
    uint32_t mod;     /* accept slot iff slot % mod != 0 (mod 0: all) */
    size_t calls;
    size_t last_slot; /* calls must come in ascending slot order */
    bool ordered;
};

static bool accept_cb(void *vctx, size_t slot) {
    struct accept_ctx *c = vctx;
    if (c->calls > 0 && slot <= c->last_slot)
        c->ordered = false;
    c->calls++;
    c->last_slot = slot;
    return c->mod == 0 || slot % c->mod != 0;
}

static uint32_t brute_force(const float *vecs, const float *norms, const uint64_t *ids,
                            size_t n, uint32_t dim, cairn_metric m, const float *q,
                            uint32_t k, uint32_t mod, cairn_hit *out) {
    cairn_hit *all = malloc((n + 1) * sizeof(*all));
    assert_non_null(all);
    float qn = vec_norm(q, dim);
    size_t cnt = 0;
    for (size_t s = 0; s < n; s++) {
        if (mod != 0 && s % mod == 0)
            continue;
        all[cnt].id = ids[s];
        all[cnt].distance = dist_metric(m, q, qn, vecs + s * dim, norms[s], dim);
        cnt++;
    }
    qsort(all, cnt, sizeof(*all), hit_cmp);
    uint32_t nk = cnt < k ? (uint32_t)cnt : k;
    memcpy(out, all, nk * sizeof(*out));
    free(all);
    return nk;
}

static void test_flat_search_vs_bruteforce(void **state) {
    (void)state;
    static const cairn_metric metrics[] = {CAIRN_METRIC_L2, CAIRN_METRIC_COSINE,
                                           CAIRN_METRIC_DOT};
    static const uint32_t dims[] = {1, 3, 8, 33, 128, 131};
    enum { N = 400 };
    for (size_t di = 0; di < sizeof(dims) / sizeof(dims[0]); di++) {
        uint32_t dim = dims[di];
        float *vecs = malloc((size_t)N * dim * sizeof(float));
        float *norms = malloc(N * sizeof(float));
        uint64_t *ids = malloc(N * sizeof(uint64_t));
        float *q = malloc(dim * sizeof(float));
        cairn_hit *got = malloc((N + 8) * sizeof(cairn_hit));
        cairn_hit *want = malloc((N + 8) * sizeof(cairn_hit));
        assert_true(vecs && norms && ids && q && got && want);

        /* Coarse coordinates so equal distances (ties) are common; some
         * exact duplicates and a zero vector; ids a permutation unrelated
         * to slot order. */
        for (size_t s = 0; s < N; s++) {
            for (uint32_t i = 0; i < dim; i++)
                vecs[s * dim + i] = (float)((int)rng_below(5) - 2);
            if (s % 10 == 9)
                memcpy(vecs + s * dim, vecs + (s - 5) * dim, dim * sizeof(float));
            ids[s] = (uint64_t)((s * 7919u) % N) * 3 + 1000;
        }
        memset(vecs + 17 * dim, 0, dim * sizeof(float));
        for (size_t s = 0; s < N; s++)
            norms[s] = vec_norm(vecs + s * dim, dim);
        for (uint32_t i = 0; i < dim; i++)
            q[i] = (float)((int)rng_below(5) - 2);

        for (size_t mi = 0; mi < 3; mi++) {
            cairn_metric m = metrics[mi];
            static const uint32_t ks[] = {0, 1, 5, 10, 64, N - 1, N, N + 8};
            for (size_t ki = 0; ki < sizeof(ks) / sizeof(ks[0]); ki++) {
                uint32_t k = ks[ki];
                static const uint32_t mods[] = {0, 2, 3, 1}; /* 1: accept none */
                for (size_t fi = 0; fi < 4; fi++) {
                    uint32_t mod = mods[fi];
                    struct accept_ctx ctx = {mod, 0, 0, true};
                    bool filtered = fi > 0;
                    uint32_t nw = brute_force(vecs, norms, ids, N, dim, m, q, k, mod, want);
                    uint32_t ng = flat_search(vecs, norms, ids, N, dim, m, q, k,
                                              filtered ? accept_cb : NULL, &ctx, got);
                    assert_hits_equal(got, ng, want, nw);
                    assert_true(ctx.ordered);
                    assert_true(ctx.calls <= N);
                    if (k == 0)
                        assert_int_equal(ctx.calls, 0);
                    /* Without norms: computed on the fly for COSINE, unused
                     * otherwise; same answer either way. */
                    ctx = (struct accept_ctx){mod, 0, 0, true};
                    ng = flat_search(vecs, NULL, ids, N, dim, m, q, k,
                                     filtered ? accept_cb : NULL, &ctx, got);
                    assert_hits_equal(got, ng, want, nw);
                    assert_true(ctx.ordered);
                }
            }
        }
        free(vecs);
        free(norms);
        free(ids);
        free(q);
        free(got);
        free(want);
    }
}

/* accept() is consulted only for candidates that would enter the heap. */
static void test_flat_accept_lazy(void **state) {
    (void)state;
    enum { N = 100 };
    float vecs[N];
    uint64_t ids[N];
    for (uint32_t s = 0; s < N; s++) {
        vecs[s] = (float)s; /* slot s at distance s^2 from 0 */
        ids[s] = s;
    }
    float q = 0.0f;
    cairn_hit out[3];

    struct accept_ctx all = {0, 0, 0, true};
    uint32_t n = flat_search(vecs, NULL, ids, N, 1, CAIRN_METRIC_L2, &q, 3, accept_cb,
                             &all, out);
    assert_int_equal(n, 3);
    assert_int_equal(all.calls, 3); /* later slots are all farther */

    struct accept_ctx odd = {2, 0, 0, true}; /* rejects even slots */
    n = flat_search(vecs, NULL, ids, N, 1, CAIRN_METRIC_L2, &q, 3, accept_cb, &odd, out);
    assert_int_equal(n, 3);
    assert_int_equal(out[0].id, 1);
    assert_int_equal(out[1].id, 3);
    assert_int_equal(out[2].id, 5);
    assert_int_equal(odd.calls, 6); /* slots 0..5 */

    struct accept_ctx none = {1, 0, 0, true};
    n = flat_search(vecs, NULL, ids, N, 1, CAIRN_METRIC_L2, &q, 3, accept_cb, &none,
                    out);
    assert_int_equal(n, 0);
    assert_int_equal(none.calls, N); /* the heap never fills */

    /* n == 0 and k > n. */
    assert_int_equal(flat_search(vecs, NULL, ids, 0, 1, CAIRN_METRIC_L2, &q, 3, NULL,
                                 NULL, out), 0);
    cairn_hit big[N + 5];
    n = flat_search(vecs, NULL, ids, N, 1, CAIRN_METRIC_DOT, &q, N + 5, NULL, NULL, big);
    assert_int_equal(n, N);
    for (uint32_t i = 0; i < N; i++) /* all distances -0: ties by id */
        assert_int_equal(big[i].id, i);
}

int main(void) {
    const char *s = getenv("CAIRN_TEST_SEED");
    if (s != NULL && *s != '\0')
        g_seed = strtoull(s, NULL, 0);
    printf("# test_index seed: CAIRN_TEST_SEED=0x%016" PRIx64 "\n", g_seed);
    fflush(stdout);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_kernels_vs_reference, reseed),
        cmocka_unit_test_setup(test_kernels_dim0_and_identity, reseed),
        cmocka_unit_test_setup(test_avx2_vs_scalar, reseed),
        cmocka_unit_test_setup(test_dispatch, reseed),
        cmocka_unit_test_setup(test_norm_and_metrics, reseed),
        cmocka_unit_test_setup(test_norm_builds_agree, reseed),
        cmocka_unit_test_setup(test_topk_basic, reseed),
        cmocka_unit_test_setup(test_topk_ties, reseed),
        cmocka_unit_test_setup(test_topk_small, reseed),
        cmocka_unit_test_setup(test_topk_random_vs_sort, reseed),
        cmocka_unit_test_setup(test_flat_search_vs_bruteforce, reseed),
        cmocka_unit_test_setup(test_flat_accept_lazy, reseed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
