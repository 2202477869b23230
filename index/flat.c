/*
 * flat.c — bounded top-k collector and exact (brute-force) search.
 *
 * Order. Hits are ranked by the key (distance, id): a hit is nearer than
 * another when its distance is smaller, or the distances are equal and its
 * id is smaller. The key is a total order over distinct ids, so for a given
 * set of (id, distance) pairs the kept set and its order do not depend on
 * the order of pushes. A NaN distance (only possible from a bug or from
 * overflowing finite inputs) is ranked as +infinity so it cannot break the
 * heap.
 *
 * The collector. struct topk uses the caller's k-entry buffer as a binary
 * max-heap on that key: the root is the worst hit kept. While fewer than k
 * are held a push inserts; afterwards a push replaces the root only if it is
 * strictly nearer than it. topk_finish() heap-sorts in place (the max-heap
 * gives ascending order), after which the collector must be re-initialised
 * before further pushes.
 *
 * Filtered search. flat_search() calls accept() only for a candidate that
 * would enter the heap (heap not full, or nearer than the current worst).
 * This is exact: a candidate refused by the distance test could not have
 * entered whether or not it is accepted, and the worst kept only improves,
 * so the answer is the k nearest accepted points. accept() is therefore
 * called for a subset of slots, in ascending slot order, each at most once.
 */
#include "index/index.h"

#include <assert.h>
#include <math.h>

/* true if (da, ia) ranks strictly after (db, ib). */
static inline bool hit_after(float da, uint64_t ia, float db, uint64_t ib) {
    return da > db || (da == db && ia > ib);
}

static inline bool hit_worse(const cairn_hit *x, const cairn_hit *y) {
    return hit_after(x->distance, x->id, y->distance, y->id);
}

static void sift_down(cairn_hit *h, uint32_t n, uint32_t i) {
    cairn_hit v = h[i];
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && hit_worse(&h[c + 1], &h[c]))
            c++;
        if (!hit_worse(&h[c], &v))
            break;
        h[i] = h[c];
        i = c;
    }
    h[i] = v;
}

static void sift_up(cairn_hit *h, uint32_t i) {
    cairn_hit v = h[i];
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (!hit_worse(&v, &h[p]))
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = v;
}

void topk_init(struct topk *t, cairn_hit *buf, uint32_t k) {
    t->hits = buf;
    t->k = k;
    t->n = 0;
}

void topk_push(struct topk *t, uint64_t id, float distance) {
    if (isnan(distance))
        distance = INFINITY;
    if (t->n < t->k) {
        t->hits[t->n].id = id;
        t->hits[t->n].distance = distance;
        sift_up(t->hits, t->n);
        t->n++;
        return;
    }
    if (t->k == 0 || !hit_after(t->hits[0].distance, t->hits[0].id, distance, id))
        return;
    t->hits[0].id = id;
    t->hits[0].distance = distance;
    sift_down(t->hits, t->n, 0);
}

uint32_t topk_finish(struct topk *t) {
    for (uint32_t end = t->n; end > 1; end--) {
        cairn_hit top = t->hits[0];
        t->hits[0] = t->hits[end - 1];
        t->hits[end - 1] = top;
        sift_down(t->hits, end - 1, 0);
    }
    return t->n;
}

uint32_t flat_search(const float *vecs, const float *norms, const uint64_t *ids,
                     size_t n, uint32_t dim, cairn_metric m, const float *query,
                     uint32_t k, flat_accept_fn accept, void *ctx,
                     cairn_hit *out) {
    if (k == 0 || n == 0)
        return 0;
    assert(vecs != NULL && ids != NULL && query != NULL && out != NULL);

    struct topk t;
    topk_init(&t, out, k);
    float qnorm = m == CAIRN_METRIC_COSINE ? vec_norm(query, dim) : 0.0f;

    for (size_t slot = 0; slot < n; slot++) {
        const float *v = vecs + slot * (size_t)dim;
        float vnorm = 0.0f;
        if (m == CAIRN_METRIC_COSINE)
            vnorm = norms != NULL ? norms[slot] : vec_norm(v, dim);
        float d = dist_metric(m, query, qnorm, v, vnorm, dim);
        if (isnan(d))
            d = INFINITY;
        uint64_t id = ids[slot];
        if (t.n == t.k && !hit_after(t.hits[0].distance, t.hits[0].id, d, id))
            continue;
        if (accept != NULL && !accept(ctx, slot))
            continue;
        topk_push(&t, id, d);
    }
    return topk_finish(&t);
}
