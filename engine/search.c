/*
 * search.c — reads: get by id, exact top-k search with a payload filter,
 * collection info and listing. Readers hold db->cat_lock shared (so a
 * collection cannot be dropped under them) and the collection's lock shared.
 */
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "engine/engine_int.h"
#include "engine/filter.h"
#include "index/index.h"

static void fill_info(const struct coll *c, cairn_collection_info *out) {
    memset(out, 0, sizeof *out);
    memcpy(out->name, c->name, sizeof out->name);
    out->id = c->id;
    out->dim = c->dim;
    out->metric = c->metric;
    out->points = store_count(&c->st);
    out->bytes = store_bytes(&c->st);
}

CAIRN_API cairn_status cairn_collection_stat(cairn_db *db, const char *name,
                                             cairn_collection_info *out) {
    cerr_clear();
    if (!db || !name || !out) return cerr_set(CAIRN_EINVAL, "cairn_collection_stat: NULL argument");
    if (db_usable(db)) return CAIRN_EPOISONED;
    pthread_rwlock_rdlock(&db->cat_lock);
    struct coll *c = cat_find_name(db, name);
    if (c) {
        pthread_rwlock_rdlock(&c->lock);
        fill_info(c, out);
        pthread_rwlock_unlock(&c->lock);
    }
    pthread_rwlock_unlock(&db->cat_lock);
    if (!c) return cerr_set(CAIRN_ENOTFOUND, "collection \"%s\" does not exist", name);
    return CAIRN_OK;
}

static int cmp_info(const void *a, const void *b) {
    return strcmp(((const cairn_collection_info *)a)->name,
                  ((const cairn_collection_info *)b)->name);
}

CAIRN_API cairn_status cairn_collection_list(cairn_db *db, cairn_collection_info **out,
                                             size_t *n) {
    cerr_clear();
    if (!db || !out || !n) return cerr_set(CAIRN_EINVAL, "cairn_collection_list: NULL argument");
    if (db_usable(db)) return CAIRN_EPOISONED;
    pthread_rwlock_rdlock(&db->cat_lock);
    size_t cnt = db->ncolls;
    cairn_collection_info *arr = calloc(cnt ? cnt : 1, sizeof *arr);
    if (!arr) {
        pthread_rwlock_unlock(&db->cat_lock);
        return cerr_set(CAIRN_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < cnt; i++) {
        struct coll *c = db->colls[i];
        pthread_rwlock_rdlock(&c->lock);
        fill_info(c, &arr[i]);
        pthread_rwlock_unlock(&c->lock);
    }
    pthread_rwlock_unlock(&db->cat_lock);
    qsort(arr, cnt, sizeof *arr, cmp_info);
    *out = arr;
    *n = cnt;
    return CAIRN_OK;
}

CAIRN_API cairn_status cairn_get(cairn_db *db, const char *collection, uint64_t id,
                                 float *vector_out, uint32_t dim, char **payload_out) {
    cerr_clear();
    if (payload_out) *payload_out = NULL;
    if (!db || !collection) return cerr_set(CAIRN_EINVAL, "cairn_get: NULL argument");
    cairn_status st = db_usable(db);
    if (st) return st;
    pthread_rwlock_rdlock(&db->cat_lock);
    struct coll *c = cat_find_name(db, collection);
    if (!c) {
        pthread_rwlock_unlock(&db->cat_lock);
        return cerr_set(CAIRN_ENOTFOUND, "collection \"%s\" does not exist", collection);
    }
    pthread_rwlock_rdlock(&c->lock);
    size_t slot = store_find(&c->st, id);
    if (slot == SIZE_MAX) {
        st = cerr_set(CAIRN_ENOTFOUND, "point %llu not found in collection \"%s\"",
                      (unsigned long long)id, collection);
    } else if (vector_out && dim != c->dim) {
        st = cerr_set(CAIRN_EDIM, "buffer has dimension %u, collection \"%s\" has %u",
                      dim, collection, c->dim);
    } else {
        if (vector_out) store_get_vector(&c->st, slot, vector_out);
        if (payload_out) st = store_get_payload(&c->st, slot, payload_out);
    }
    pthread_rwlock_unlock(&c->lock);
    pthread_rwlock_unlock(&db->cat_lock);
    return st == CAIRN_ENOMEM ? db_named(db->path, st) : st;
}

struct accept_ctx {
    const cairn_filter *f;
    struct store *st;
    bool failed; /* a payload could not be parsed: out of memory */
};

static bool accept_slot(void *ctx, size_t slot) {
    struct accept_ctx *a = ctx;
    const json_t *j = store_payload_json(a->st, slot, &a->failed);
    return !a->failed && filter_match(a->f, j);
}

CAIRN_API cairn_status cairn_search(cairn_db *db, const char *collection,
                                    const float *query, uint32_t dim, uint32_t k,
                                    const cairn_filter *filter, cairn_hit *hits,
                                    uint32_t *n_hits) {
    cerr_clear();
    if (n_hits) *n_hits = 0;
    if (!db || !collection || !n_hits || (k && !hits))
        return cerr_set(CAIRN_EINVAL, "cairn_search: NULL argument");
    if (db_usable(db)) return CAIRN_EPOISONED;
    pthread_rwlock_rdlock(&db->cat_lock);
    struct coll *c = cat_find_name(db, collection);
    if (!c) {
        pthread_rwlock_unlock(&db->cat_lock);
        return cerr_set(CAIRN_ENOTFOUND, "collection \"%s\" does not exist", collection);
    }
    cairn_status st = check_vector(query, dim, c->dim, collection);
    if (st == CAIRN_OK) {
        pthread_rwlock_rdlock(&c->lock);
        struct accept_ctx actx = {.f = filter, .st = &c->st};
        st = store_search(&c->st, c->metric, query, k, filter ? accept_slot : NULL, &actx,
                          hits, n_hits);
        /* a point the filter could not be tested on: no answer rather than
         * one that silently left it out */
        if (!st && actx.failed) {
            *n_hits = 0;
            st = cerr_set(CAIRN_ENOMEM, "database \"%s\": search of collection \"%s\": out "
                          "of memory parsing a point's payload for the filter", db->path,
                          collection);
        }
        pthread_rwlock_unlock(&c->lock);
    }
    pthread_rwlock_unlock(&db->cat_lock);
    return st == CAIRN_ENOMEM ? db_named(db->path, st) : st;
}
