/*
 * catalog.c — the collection table, the validation rules shared by the API
 * and by replay, and the apply step of point records.
 *
 * The table is changed only by applying CREATE_COLL/DROP_COLL records (at
 * commit or in replay), under db->cat_lock held exclusively.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/json.h"
#include "common/util.h"
#include "engine/engine_int.h"

struct coll *cat_find_name(cairn_db *db, const char *name) {
    for (size_t i = 0; i < db->ncolls; i++)
        if (strcmp(db->colls[i]->name, name) == 0) return db->colls[i];
    return NULL;
}

struct coll *cat_find_id(cairn_db *db, uint32_t id) {
    for (size_t i = 0; i < db->ncolls; i++)
        if (db->colls[i]->id == id) return db->colls[i];
    return NULL;
}

cairn_status cat_check_name(const char *name, const char *what) {
    if (!name) return cerr_set(CAIRN_ENAME, "invalid %s name: NULL", what);
    size_t n = strnlen(name, CAIRN_MAX_NAME + 1);
    if (n == 0) return cerr_set(CAIRN_ENAME, "invalid %s name: empty", what);
    if (n > CAIRN_MAX_NAME)
        return cerr_set(CAIRN_ENAME, "invalid %s name: longer than %u bytes",
                        what, CAIRN_MAX_NAME);
    if (memchr(name, '/', n))
        return cerr_set(CAIRN_ENAME, "invalid %s name \"%s\": contains '/'", what,
                        name);
    if (!cairn_utf8_valid(name, n))
        return cerr_set(CAIRN_ENAME, "invalid %s name: not valid UTF-8", what);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
            return cerr_set(CAIRN_ENAME,
                            "invalid %s name: control character at byte %zu",
                            what, i);
    return CAIRN_OK;
}

cairn_status check_vector(const float *v, uint32_t dim, uint32_t want_dim,
                          const char *coll_name) {
    if (!v) return cerr_set(CAIRN_EINVAL, "vector is NULL");
    if (dim != want_dim)
        return cerr_set(CAIRN_EDIM,
                        "vector has dimension %u, collection \"%s\" has %u", dim,
                        coll_name, want_dim);
    /* An all-ones exponent is NaN or infinity: one integer test per element
     * that the compiler vectorizes; the slow path only names the element. */
    uint32_t bad = 0;
    for (uint32_t i = 0; i < dim; i++) {
        uint32_t bits;
        memcpy(&bits, &v[i], 4);
        bad |= (uint32_t)((bits & 0x7f800000u) == 0x7f800000u);
    }
    if (!bad) return CAIRN_OK;
    for (uint32_t i = 0; i < dim; i++)
        if (!isfinite(v[i]))
            return cerr_set(CAIRN_EVECTOR, "vector element %u is %s", i,
                            isnan(v[i]) ? "NaN" : "infinite");
    return CAIRN_OK;
}

cairn_status check_payload(const char *text, size_t len) {
    if (!text || len == 0) return CAIRN_OK;
    if (len > CAIRN_MAX_PAYLOAD)
        return cerr_set(CAIRN_EPAYLOAD, "payload is %zu bytes, limit is %u", len,
                        CAIRN_MAX_PAYLOAD);
    struct cjson_error je;
    if (cjson_validate_object(text, len, &je)) return CAIRN_OK;
    if (strcmp(je.what, "not a JSON object") == 0)
        return cerr_set(CAIRN_EPAYLOAD,
                        "payload is not a JSON object (offset %zu holds another value)",
                        je.offset);
    return cerr_set(CAIRN_EPAYLOAD, "payload is not valid JSON at offset %zu: %s",
                    je.offset, je.what);
}

cairn_status cat_apply_create(cairn_db *db, uint32_t id, uint32_t dim,
                              cairn_metric metric, const char *name,
                              size_t name_len, uint64_t lsn) {
    struct coll *c = calloc(1, sizeof *c);
    if (!c) return cerr_set(CAIRN_ENOMEM, "could not allocate a collection");
    c->id = id;
    c->dim = dim;
    c->metric = metric;
    memcpy(c->name, name, name_len);
    c->name[name_len] = 0;
    cairn_status st = store_init(&c->st, id, dim, lsn);
    if (st) {
        free(c);
        return st;
    }
    pthread_rwlock_init(&c->lock, NULL);

    pthread_rwlock_wrlock(&db->cat_lock);
    if (db->ncolls == db->capcolls) {
        size_t ncap = db->capcolls ? db->capcolls * 2 : 8;
        struct coll **n = realloc(db->colls, ncap * sizeof *n);
        if (!n) {
            pthread_rwlock_unlock(&db->cat_lock);
            pthread_rwlock_destroy(&c->lock);
            store_free(&c->st);
            free(c);
            return cerr_set(CAIRN_ENOMEM, "could not grow the catalog");
        }
        db->colls = n;
        db->capcolls = ncap;
    }
    db->colls[db->ncolls++] = c;
    pthread_rwlock_unlock(&db->cat_lock);
    return CAIRN_OK;
}

void cat_coll_free(struct coll *c) {
    store_free(&c->st);
    pthread_rwlock_destroy(&c->lock);
    free(c);
}

cairn_status cat_load_coll(cairn_db *db, uint32_t id, uint32_t dim, cairn_metric metric,
                           const char *name, struct coll **out) {
    struct coll *c = calloc(1, sizeof *c);
    if (!c) return cerr_set(CAIRN_ENOMEM, "could not allocate a collection");
    c->id = id;
    c->dim = dim;
    c->metric = metric;
    snprintf(c->name, sizeof c->name, "%s", name);
    store_prepare(&c->st, id, dim);
    pthread_rwlock_init(&c->lock, NULL);
    if (db->ncolls == db->capcolls) {
        size_t ncap = db->capcolls ? db->capcolls * 2 : 8;
        struct coll **n = realloc(db->colls, ncap * sizeof *n);
        if (!n) {
            cat_coll_free(c);
            return cerr_set(CAIRN_ENOMEM, "could not grow the catalog");
        }
        db->colls = n;
        db->capcolls = ncap;
    }
    db->colls[db->ncolls++] = c;
    *out = c;
    return CAIRN_OK;
}

void cat_apply_drop(cairn_db *db, uint32_t id) {
    pthread_rwlock_wrlock(&db->cat_lock);
    struct coll *victim = NULL;
    for (size_t i = 0; i < db->ncolls; i++) {
        if (db->colls[i]->id == id) {
            victim = db->colls[i];
            memmove(&db->colls[i], &db->colls[i + 1],
                    (db->ncolls - i - 1) * sizeof *db->colls);
            db->ncolls--;
            break;
        }
    }
    /* A running checkpoint still reads its snapshot: it frees the victim. */
    if (victim && victim->ckpt_hold) {
        victim->dropped = true;
        victim = NULL;
    }
    pthread_rwlock_unlock(&db->cat_lock);
    /* No reader can hold it: readers hold cat_lock while using a coll. */
    if (victim) cat_coll_free(victim);
}

void cat_free_all(cairn_db *db) {
    for (size_t i = 0; i < db->ncolls; i++) cat_coll_free(db->colls[i]);
    free(db->colls);
    db->colls = NULL;
    db->ncolls = db->capcolls = 0;
}
