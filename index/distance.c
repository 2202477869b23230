/*
 * distance.c — distance kernels: scalar and AVX2+FMA, chosen once.
 *
 * Two kernels (squared L2, plain dot) exist in two builds each (and the
 * squared norm, summed in double, in a portable and an SSE2 build that
 * agree to the bit: see norm_sq_finish):
 *
 *   *_scalar  four independent float accumulators (element i goes to
 *             accumulator i % 4), summed as (s0 + s1) + (s2 + s3). Portable;
 *             the reference the AVX2 build is checked against.
 *   *_avx2    four 8-lane FMA accumulators (32 floats per iteration), then
 *             8-float steps, then a scalar tail of at most 7 floats. Loads
 *             are unaligned: callers' arrays need only float alignment.
 *             Compiled with __attribute__((target("avx2,fma"))) so the rest
 *             of the library needs no -mavx2; calling one on a CPU without
 *             AVX2/FMA is an illegal instruction, so callers outside this
 *             file check dist_avx2_available() first.
 *
 * dist_l2sq()/dist_dot() dispatch through a function pointer resolved at the
 * first call (__builtin_cpu_supports checks the CPU and that the OS saves
 * the YMM state). Resolution is idempotent, so a race between two first
 * calls stores the same pointer twice; the pointer is an atomic so the race
 * is also well-defined.
 *
 * Accuracy: the two builds sum in different orders. Against the exact sum,
 * each is within a relative 1e-5 of sum(|a_i * b_i|) (for L2 that is the
 * result itself) for the dimensions cairn allows in practice; the tests
 * check this for every dimension 1..1031 on random data.
 *
 * Non-x86 builds compile only the scalar kernels; the *_avx2 symbols still
 * exist (forwarding to scalar) and dist_avx2_available() is false.
 */
#include "index/index.h"

#include <math.h>
#include <stdatomic.h>

#if defined(__x86_64__) || defined(__i386__)
#define CAIRN_HAVE_X86 1
#include <immintrin.h>
#else
#define CAIRN_HAVE_X86 0
#endif

typedef float (*dist_kernel_fn)(const float *a, const float *b, uint32_t dim);

/* ------------------------------------------------------------------ */
/* Scalar                                                              */
/* ------------------------------------------------------------------ */

float dist_l2sq_scalar(const float *a, const float *b, uint32_t dim) {
    float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
    uint32_t i = 0;
    for (; i + 4 <= dim; i += 4) {
        float d0 = a[i] - b[i];
        float d1 = a[i + 1] - b[i + 1];
        float d2 = a[i + 2] - b[i + 2];
        float d3 = a[i + 3] - b[i + 3];
        s0 += d0 * d0;
        s1 += d1 * d1;
        s2 += d2 * d2;
        s3 += d3 * d3;
    }
    for (; i < dim; i++) {
        float d = a[i] - b[i];
        s0 += d * d;
    }
    return (s0 + s1) + (s2 + s3);
}

float dist_dot_scalar(const float *a, const float *b, uint32_t dim) {
    float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
    uint32_t i = 0;
    for (; i + 4 <= dim; i += 4) {
        s0 += a[i] * b[i];
        s1 += a[i + 1] * b[i + 1];
        s2 += a[i + 2] * b[i + 2];
        s3 += a[i + 3] * b[i + 3];
    }
    for (; i < dim; i++)
        s0 += a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

/* The tail of a squared norm: elements i..dim-1 (fewer than 16) go to
 * accumulator i % 16, and the sixteen are summed pairwise: k with k + 8,
 * then those with k + 4, then ((0 + 1) + (2 + 3)). Every step is one
 * IEEE double addition in a fixed order, and a float's square is exact in
 * double: the scalar and AVX2 sums are the same bits. */
static inline double norm_sq_finish(double acc[16], const float *v, uint32_t i,
                                    uint32_t dim) {
    for (; i < dim; i++)
        acc[i % 16] += (double)v[i] * v[i];
    double t[8], u[4];
    for (int k = 0; k < 8; k++)
        t[k] = acc[k] + acc[k + 8];
    for (int k = 0; k < 4; k++)
        u[k] = t[k] + t[k + 4];
    return (u[0] + u[1]) + (u[2] + u[3]);
}

double vec_norm_sq_scalar(const float *v, uint32_t dim) {
    double acc[16] = {0};
    uint32_t i = 0;
    for (; i + 16 <= dim; i += 16)
        for (int k = 0; k < 16; k++)
            acc[k] += (double)v[i + k] * v[i + k];
    return norm_sq_finish(acc, v, i, dim);
}

/* The same sum with SSE2 (every x86-64 CPU has it: no dispatch): eight
 * 2-lane double accumulators holding accumulators 0-1, 2-3, ..., 14-15.
 * 128-bit code on purpose: an AVX2 build, called once per stored vector
 * from the SSE code around it, measured slower than this in the replay
 * (its samples piled up on the transitions). */
double vec_norm_sq_simd(const float *v, uint32_t dim) {
#if defined(__SSE2__)
    __m128d a[8];
    for (int k = 0; k < 8; k++)
        a[k] = _mm_setzero_pd();
    uint32_t i = 0;
    for (; i + 16 <= dim; i += 16) {
        for (int q = 0; q < 4; q++) {
            __m128 x = _mm_loadu_ps(v + i + 4 * q);
            __m128d lo = _mm_cvtps_pd(x);
            __m128d hi = _mm_cvtps_pd(_mm_movehl_ps(x, x));
            a[2 * q] = _mm_add_pd(a[2 * q], _mm_mul_pd(lo, lo));
            a[2 * q + 1] = _mm_add_pd(a[2 * q + 1], _mm_mul_pd(hi, hi));
        }
    }
    double acc[16];
    for (int k = 0; k < 8; k++)
        _mm_storeu_pd(acc + 2 * k, a[k]);
    return norm_sq_finish(acc, v, i, dim);
#else
    return vec_norm_sq_scalar(v, dim);
#endif
}

/* ------------------------------------------------------------------ */
/* AVX2 + FMA                                                          */
/* ------------------------------------------------------------------ */

#if CAIRN_HAVE_X86

#define AVX2_FN __attribute__((target("avx2,fma")))

/* Sum of the 8 lanes of v. */
static AVX2_FN inline float hsum256(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v);
    __m128 hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);                       /* 4 lanes */
    __m128 sh = _mm_movehdup_ps(lo);               /* (1,1,3,3) */
    __m128 sm = _mm_add_ps(lo, sh);                /* 0+1, _, 2+3, _ */
    sh = _mm_movehl_ps(sh, sm);                    /* 2+3 in lane 0 */
    sm = _mm_add_ss(sm, sh);
    return _mm_cvtss_f32(sm);
}

AVX2_FN float dist_l2sq_avx2(const float *a, const float *b, uint32_t dim) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    uint32_t i = 0;
    for (; i + 32 <= dim; i += 32) {
        __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
        __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8),
                                  _mm256_loadu_ps(b + i + 8));
        __m256 d2 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 16),
                                  _mm256_loadu_ps(b + i + 16));
        __m256 d3 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 24),
                                  _mm256_loadu_ps(b + i + 24));
        s0 = _mm256_fmadd_ps(d0, d0, s0);
        s1 = _mm256_fmadd_ps(d1, d1, s1);
        s2 = _mm256_fmadd_ps(d2, d2, s2);
        s3 = _mm256_fmadd_ps(d3, d3, s3);
    }
    for (; i + 8 <= dim; i += 8) {
        __m256 d = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
        s0 = _mm256_fmadd_ps(d, d, s0);
    }
    float sum = hsum256(_mm256_add_ps(_mm256_add_ps(s0, s1),
                                      _mm256_add_ps(s2, s3)));
    for (; i < dim; i++) {
        float d = a[i] - b[i];
        sum += d * d;
    }
    return sum;
}

AVX2_FN float dist_dot_avx2(const float *a, const float *b, uint32_t dim) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    uint32_t i = 0;
    for (; i + 32 <= dim; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8),
                             _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16),
                             _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24),
                             _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i + 8 <= dim; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float sum = hsum256(_mm256_add_ps(_mm256_add_ps(s0, s1),
                                      _mm256_add_ps(s2, s3)));
    for (; i < dim; i++)
        sum += a[i] * b[i];
    return sum;
}

static bool cpu_has_avx2_fma(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

#else /* !CAIRN_HAVE_X86 */

float dist_l2sq_avx2(const float *a, const float *b, uint32_t dim) {
    return dist_l2sq_scalar(a, b, dim);
}

float dist_dot_avx2(const float *a, const float *b, uint32_t dim) {
    return dist_dot_scalar(a, b, dim);
}

static bool cpu_has_avx2_fma(void) { return false; }

#endif

/* ------------------------------------------------------------------ */
/* Dispatch                                                            */
/* ------------------------------------------------------------------ */

static _Atomic(dist_kernel_fn) l2sq_impl;
static _Atomic(dist_kernel_fn) dot_impl;

static void resolve(void) {
    bool avx2 = cpu_has_avx2_fma();
    atomic_store_explicit(&l2sq_impl, avx2 ? dist_l2sq_avx2 : dist_l2sq_scalar,
                          memory_order_relaxed);
    atomic_store_explicit(&dot_impl, avx2 ? dist_dot_avx2 : dist_dot_scalar,
                          memory_order_relaxed);
}

bool dist_avx2_available(void) {
    static _Atomic int cached = -1; /* -1 unknown, 0 no, 1 yes */
    int v = atomic_load_explicit(&cached, memory_order_relaxed);
    if (v < 0) {
        v = cpu_has_avx2_fma() ? 1 : 0;
        atomic_store_explicit(&cached, v, memory_order_relaxed);
    }
    return v == 1;
}

float dist_l2sq(const float *a, const float *b, uint32_t dim) {
    dist_kernel_fn f = atomic_load_explicit(&l2sq_impl, memory_order_relaxed);
    if (__builtin_expect(f == NULL, 0)) {
        resolve();
        f = atomic_load_explicit(&l2sq_impl, memory_order_relaxed);
    }
    return f(a, b, dim);
}

float dist_dot(const float *a, const float *b, uint32_t dim) {
    dist_kernel_fn f = atomic_load_explicit(&dot_impl, memory_order_relaxed);
    if (__builtin_expect(f == NULL, 0)) {
        resolve();
        f = atomic_load_explicit(&dot_impl, memory_order_relaxed);
    }
    return f(a, b, dim);
}

/* ------------------------------------------------------------------ */
/* Norms and metrics                                                   */
/* ------------------------------------------------------------------ */

/* Summed in double (vec_norm_sq_*): a norm is stored with every vector and
 * used by every cosine distance, so it is worth its exactness, and squares
 * of large finite floats (up to ~1.8e19) cannot overflow. The replay
 * computes one per upsert, so it is vectorized too, in an order that gives
 * the same bits on every CPU. */
float vec_norm(const float *v, uint32_t dim) {
    return (float)sqrt(vec_norm_sq_simd(v, dim));
}

float dist_metric(cairn_metric m, const float *a, float norm_a, const float *b,
                  float norm_b, uint32_t dim) {
    switch (m) {
    case CAIRN_METRIC_L2:
        return dist_l2sq(a, b, dim);
    case CAIRN_METRIC_DOT:
        return -dist_dot(a, b, dim);
    case CAIRN_METRIC_COSINE: {
        if (norm_a == 0.0f || norm_b == 0.0f)
            return 1.0f;
        /* The denominator in double: norm_a * norm_b may overflow float. */
        double cos = (double)dist_dot(a, b, dim) / ((double)norm_a * norm_b);
        return (float)(1.0 - cos);
    }
    }
    /* Not a metric: callers validate metrics at collection creation, so this
     * is a bug; rank such points last rather than crash. */
    return INFINITY;
}
