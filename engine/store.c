/*
 * store.c — the in-memory point store of one collection.
 *
 * Points live in dense arrays (vectors, norms, ids, payloads) so that an
 * exact scan streams through memory. An open-addressing hash maps id -> slot
 * (linear probing; deletion shifts later entries back, so no tombstones).
 * Payload text is copied; its parsed tree is built only when a filter asks.
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
    for (size_t i = 0; i < s->n; i++) {
        free(s->ptext[i]);
        json_decref(atomic_load(&s->pjson[i]));
    }
    free(s->vecs);
    free(s->norms);
    free(s->ids);
    free(s->ptext);
    free((void *)s->pjson);
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
    char **p = realloc(s->ptext, ncap * sizeof(char *));
    if (p) s->ptext = p;
    uint32_t *pl = realloc(s->plens, ncap * sizeof(uint32_t));
    if (pl) s->plens = pl;
    json_t *_Atomic *pj = realloc((void *)s->pjson, ncap * sizeof(*pj));
    if (pj) s->pjson = pj;
    if (!v || !nr || !ids || !p || !pl || !pj)
        return cerr_set(CAIRN_ENOMEM, "could not grow a point store to %zu points", ncap);
    s->cap = ncap;
    return CAIRN_OK;
}

cairn_status store_upsert(struct store *s, uint64_t id, const float *vec,
                          const char *payload, uint32_t payload_len) {
    char *text = NULL;
    if (payload_len) {
        text = malloc((size_t)payload_len + 1);
        if (!text)
            return cerr_set(CAIRN_ENOMEM, "could not copy a payload of %u bytes", payload_len);
        memcpy(text, payload, payload_len);
        text[payload_len] = 0;
    }
    size_t slot = store_find(s, id);
    if (slot == SIZE_MAX) {
        cairn_status st = CAIRN_OK;
        if (s->n == s->cap) st = grow(s);
        if (!st && (s->n + 1) * 4 > s->hcap * 3) st = hgrow(s); /* load <= 0.75 */
        if (st) {
            free(text);
            return st;
        }
        slot = s->n++;
        s->ptext[slot] = NULL;
        s->plens[slot] = 0;
        atomic_store(&s->pjson[slot], NULL);
        s->ids[slot] = id;
        hinsert(s, id, (uint32_t)slot);
    }
    memcpy(s->vecs + slot * s->dim, vec, (size_t)s->dim * sizeof(float));
    s->norms[slot] = vec_norm(vec, s->dim);
    s->payload_bytes -= s->plens[slot];
    free(s->ptext[slot]);
    json_decref(atomic_exchange(&s->pjson[slot], NULL));
    s->ptext[slot] = text;
    s->plens[slot] = payload_len;
    s->payload_bytes += payload_len;
    return CAIRN_OK;
}

void store_delete(struct store *s, uint64_t id) {
    size_t slot = store_find(s, id);
    if (slot == SIZE_MAX) return;
    hremove(s, id);
    s->payload_bytes -= s->plens[slot];
    free(s->ptext[slot]);
    json_decref(atomic_load(&s->pjson[slot]));
    size_t last = s->n - 1;
    if (slot != last) {
        memcpy(s->vecs + slot * s->dim, s->vecs + last * s->dim,
               (size_t)s->dim * sizeof(float));
        s->norms[slot] = s->norms[last];
        s->ids[slot] = s->ids[last];
        s->ptext[slot] = s->ptext[last];
        s->plens[slot] = s->plens[last];
        atomic_store(&s->pjson[slot], atomic_load(&s->pjson[last]));
        s->hslots[hpos(s, s->ids[slot])] = (uint32_t)slot;
    }
    s->n--;
}

const json_t *store_payload_json(struct store *s, size_t slot) {
    json_t *j = atomic_load_explicit(&s->pjson[slot], memory_order_acquire);
    if (j || !s->ptext[slot]) return j;
    /* The text was validated at commit (common/json.h accepts only what
     * jansson accepts), so this parse succeeds unless memory runs out;
     * then the point simply matches no condition. */
    json_t *parsed = json_loadb(s->ptext[slot], s->plens[slot], 0, NULL);
    if (!parsed) return NULL;
    json_t *expected = NULL;
    if (!atomic_compare_exchange_strong_explicit(&s->pjson[slot], &expected, parsed,
                                                 memory_order_acq_rel,
                                                 memory_order_acquire)) {
        json_decref(parsed); /* another reader won */
        return expected;
    }
    return parsed;
}

uint64_t store_bytes(const struct store *s) {
    return (uint64_t)s->n * (s->dim * sizeof(float) + sizeof(uint64_t)) +
           s->payload_bytes;
}
