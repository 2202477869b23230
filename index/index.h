/*
 * index.h — distance kernels and exact (flat) top-k search.
 *
 * Kernels: AVX2+FMA versions chosen at first use when the CPU has them,
 * scalar versions otherwise; both are exported for tests. Results of the two
 * may differ in the last bits (summation order), never more than a relative
 * 1e-5.
 *
 * Distances (lower is nearer), matching cairn_metric:
 *   L2      squared euclidean distance
 *   COSINE  1 - dot(a,b) / (|a| |b|)   (0-norm vectors: distance 1)
 *   DOT     -dot(a,b)
 * The index never owns points: it reads the caller's arrays. The HNSW graph
 * (a later issue) is derived data that can always be rebuilt from points.
 */
#ifndef CAIRN_INDEX_INDEX_H
#define CAIRN_INDEX_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn.h"

float dist_l2sq(const float *a, const float *b, uint32_t dim);
float dist_dot(const float *a, const float *b, uint32_t dim); /* plain dot */
float dist_l2sq_scalar(const float *a, const float *b, uint32_t dim);
float dist_dot_scalar(const float *a, const float *b, uint32_t dim);
float dist_l2sq_avx2(const float *a, const float *b, uint32_t dim);
float dist_dot_avx2(const float *a, const float *b, uint32_t dim);
bool dist_avx2_available(void);
/* Euclidean norm |v|. */
float vec_norm(const float *v, uint32_t dim);
/* Its square, summed in double; the two builds give the same bits. */
double vec_norm_sq_scalar(const float *v, uint32_t dim);
double vec_norm_sq_simd(const float *v, uint32_t dim);
/* Distance under metric m; norms of a and b are passed for COSINE. */
float dist_metric(cairn_metric m, const float *a, float norm_a, const float *b,
                  float norm_b, uint32_t dim);

/* Bounded top-k collector: keeps the k nearest (distance, then id) seen. */
struct topk {
    cairn_hit *hits; /* caller's buffer of k entries, used as a max-heap */
    uint32_t k;
    uint32_t n;
};
void topk_init(struct topk *t, cairn_hit *buf, uint32_t k);
void topk_push(struct topk *t, uint64_t id, float distance);
/* Sorts the kept hits nearest first (ties by ascending id); returns n. */
uint32_t topk_finish(struct topk *t);

/* Accept callback for filtered search: true if slot may be returned. */
typedef bool (*flat_accept_fn)(void *ctx, size_t slot);

/* Exact search over n points stored densely: vecs[slot*dim ..], norms[slot]
 * (used for COSINE, may be NULL otherwise), ids[slot]. Returns the number of
 * hits written to out (<= k), sorted nearest first. accept may be NULL. */
uint32_t flat_search(const float *vecs, const float *norms, const uint64_t *ids,
                     size_t n, uint32_t dim, cairn_metric m, const float *query,
                     uint32_t k, flat_accept_fn accept, void *ctx,
                     cairn_hit *out);

#endif
