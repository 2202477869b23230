/*
 * store.c — the in-memory point store of one collection.
 *
 * Points live in dense arrays (vectors, norms, ids, payloads) so that an
 * exact scan streams through memory. An open-addressing hash maps id -> slot
 * (linear probing; deletion shifts later entries back, so no tombstones).
 * Deleting a point moves the last slot into its hole. Arrays grow by
 * doubling and are never shrunk while the collection lives.
 */
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "engine/engine_int.h"
#include "index/index.h"

#define EMPTY_SLOT UINT32_MAX

static inline size_t hash_u64(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return (size_t)k;
}

void store_init(struct store *s, uint32_t dim) {
    memset(s, 0, sizeof *s);
    s->dim = dim;
}

void store_free(struct store *s) {
    if (!s) return;
    for (size_t i = 0; i < s->n; i++) json_decref(s->payloads[i]);
    free(s->vecs);
    free(s->norms);
    free(s->ids);
    free(s->payloads);
    free(s->plens);
    free(s->hkeys);
    free(s->hslots);
    memset(s, 0, sizeof *s);
}

size_t store_find(const struct store *s, uint64_t id) {
    if (s->hcap == 0) return SIZE_MAX;
    size_t mask = s->hcap - 1;
    for (size_t i = hash_u64(id) & mask;; i = (i + 1) & mask) {
        if (s->hslots[i] == EMPTY_SLOT) return SIZE_MAX;
        if (s->hkeys[i] == id) return s->hslots[i];
    }
}

/* Position in the hash table of id (must be present). */
static size_t hpos(const struct store *s, uint64_t id) {
    size_t mask = s->hcap - 1;
    size_t i = hash_u64(id) & mask;
    while (s->hkeys[i] != id || s->hslots[i] == EMPTY_SLOT) i = (i + 1) & mask;
    return i;
}

static void hinsert(struct store *s, uint64_t id, uint32_t slot) {
    size_t mask = s->hcap - 1;
    size_t i = hash_u64(id) & mask;
    while (s->hslots[i] != EMPTY_SLOT) i = (i + 1) & mask;
    s->hkeys[i] = id;
    s->hslots[i] = slot;
}

static void hremove(struct store *s, uint64_t id) {
    size_t mask = s->hcap - 1;
    size_t i = hpos(s, id);
    /* backward-shift: pull later entries of the same run into the hole */
    size_t j = i;
    for (;;) {
        s->hslots[i] = EMPTY_SLOT;
        for (;;) {
            j = (j + 1) & mask;
            if (s->hslots[j] == EMPTY_SLOT) return;
            size_t home = hash_u64(s->hkeys[j]) & mask;
            /* entry at j may move to i iff home is not in (i, j] cyclically */
            bool stays = (i <= j) ? (i < home && home <= j)
                                  : (i < home || home <= j);
            if (!stays) break;
        }
        s->hkeys[i] = s->hkeys[j];
        s->hslots[i] = s->hslots[j];
        i = j;
    }
}

static cairn_status hgrow(struct store *s) {
    size_t ncap = s->hcap ? s->hcap * 2 : 64;
    uint64_t *nk = malloc(ncap * sizeof *nk);
    uint32_t *ns = malloc(ncap * sizeof *ns);
    if (!nk || !ns) {
        free(nk);
        free(ns);
        return cerr_set(CAIRN_ENOMEM, "could not grow the id map to %zu entries", ncap);
    }
    for (size_t i = 0; i < ncap; i++) ns[i] = EMPTY_SLOT;
    uint64_t *ok = s->hkeys;
    uint32_t *os = s->hslots;
    size_t ocap = s->hcap;
    s->hkeys = nk;
    s->hslots = ns;
    s->hcap = ncap;
    for (size_t i = 0; i < ocap; i++)
        if (os[i] != EMPTY_SLOT) hinsert(s, ok[i], os[i]);
    free(ok);
    free(os);
    return CAIRN_OK;
}

static cairn_status grow(struct store *s) {
    size_t ncap = s->cap ? s->cap * 2 : 64;
    float *v = realloc(s->vecs, ncap * s->dim * sizeof(float));
    if (v) s->vecs = v;
    float *nr = realloc(s->norms, ncap * sizeof(float));
    if (nr) s->norms = nr;
    uint64_t *ids = realloc(s->ids, ncap * sizeof(uint64_t));
    if (ids) s->ids = ids;
    json_t **p = realloc(s->payloads, ncap * sizeof(json_t *));
    if (p) s->payloads = p;
    uint32_t *pl = realloc(s->plens, ncap * sizeof(uint32_t));
    if (pl) s->plens = pl;
    if (!v || !nr || !ids || !p || !pl)
        return cerr_set(CAIRN_ENOMEM, "could not grow a point store to %zu points", ncap);
    s->cap = ncap;
    return CAIRN_OK;
}

cairn_status store_upsert(struct store *s, uint64_t id, const float *vec,
                          json_t *payload, uint32_t payload_len) {
    size_t slot = store_find(s, id);
    if (slot == SIZE_MAX) {
        if (s->n == s->cap) {
            cairn_status st = grow(s);
            if (st) {
                json_decref(payload);
                return st;
            }
        }
        if ((s->n + 1) * 4 > s->hcap * 3) { /* load factor <= 0.75 */
            cairn_status st = hgrow(s);
            if (st) {
                json_decref(payload);
                return st;
            }
        }
        slot = s->n++;
        s->payloads[slot] = NULL;
        s->plens[slot] = 0;
        s->ids[slot] = id;
        hinsert(s, id, (uint32_t)slot);
    }
    memcpy(s->vecs + slot * s->dim, vec, (size_t)s->dim * sizeof(float));
    s->norms[slot] = vec_norm(vec, s->dim);
    s->payload_bytes -= s->plens[slot];
    json_decref(s->payloads[slot]);
    s->payloads[slot] = payload;
    s->plens[slot] = payload_len;
    s->payload_bytes += payload_len;
    return CAIRN_OK;
}

void store_delete(struct store *s, uint64_t id) {
    size_t slot = store_find(s, id);
    if (slot == SIZE_MAX) return;
    hremove(s, id);
    s->payload_bytes -= s->plens[slot];
    json_decref(s->payloads[slot]);
    size_t last = s->n - 1;
    if (slot != last) {
        memcpy(s->vecs + slot * s->dim, s->vecs + last * s->dim,
               (size_t)s->dim * sizeof(float));
        s->norms[slot] = s->norms[last];
        s->ids[slot] = s->ids[last];
        s->payloads[slot] = s->payloads[last];
        s->plens[slot] = s->plens[last];
        s->hslots[hpos(s, s->ids[slot])] = (uint32_t)slot;
    }
    s->n--;
}

uint64_t store_bytes(const struct store *s) {
    return (uint64_t)s->n * (s->dim * sizeof(float) + sizeof(uint64_t)) +
           s->payload_bytes;
}
