/*
 * store.h — where a backup repository keeps its objects: a small interface
 * of put / get / list / delete with atomic publish, so that object stores
 * can come later behind the same calls. The one backend today is a local
 * directory (store_local_open).
 *
 * Names are relative paths of '/'-separated parts ("blobs/ab/ab12...",
 * "backups/20261121T101500Z-0001/manifest"): no empty part, no "." or "..",
 * no leading '/', no NUL or '\\', at most 255 bytes. Also (local backend:
 * its temporary names must fit, and must never be taken for objects): each
 * part at most 234 bytes, and none of the form "<x>.tmp-" + 16 lower-case
 * hex digits. A bad name is CAIRN_EINVAL naming it, before anything is
 * touched.
 *
 * Atomic publish: after put returns, a reader sees either no object or the
 * whole new one, also after a crash (local: write "<name>.tmp-<random>",
 * fsync, rename, fsync of the directory, which is created durably with its
 * parents when missing). A put over an existing name replaces it.
 */
#ifndef CAIRN_PITR_STORE_H
#define CAIRN_PITR_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "cairn.h"

typedef struct pitr_store pitr_store;

/* Called by list for each object under a prefix; a nonzero status stops
 * the walk and is returned by list. */
typedef cairn_status (*pitr_store_list_fn)(void *ctx, const char *name, uint64_t size);

struct pitr_store_ops {
    cairn_status (*put)(pitr_store *s, const char *name, const void *data, size_t len);
    /* Whole object into *buf, a malloc'd buffer of *cap bytes (NULL and 0
     * to start), grown with realloc as needed (+1 NUL byte not counted in
     * *len): a caller getting many objects keeps one buffer. Missing:
     * CAIRN_ENOTFOUND naming it. On failure *buf stays the caller's. */
    cairn_status (*get)(pitr_store *s, const char *name, uint8_t **buf, size_t *cap,
                        size_t *len);
    /* Size of an object; missing: CAIRN_ENOTFOUND (no message needed by
     * callers that test for existence, but one is set). */
    cairn_status (*stat)(pitr_store *s, const char *name, uint64_t *size);
    /* Every object whose name starts with prefix ("" = all; "wal/" = all
     * under wal/), in byte order of name; temporary files of unfinished
     * puts are not listed. */
    cairn_status (*list)(pitr_store *s, const char *prefix, pitr_store_list_fn fn, void *ctx);
    /* Deletes an object (durably); missing is CAIRN_OK. */
    cairn_status (*del)(pitr_store *s, const char *name);
    void (*close)(pitr_store *s);
};

struct pitr_store {
    const struct pitr_store_ops *ops;
    char *where; /* for messages: the directory, or a URL later */
};

/* store_local_open's flags. */
enum {
    STORE_CREATE = 1u,   /* make the directory (durably) if missing */
    STORE_NO_SWEEP = 2u  /* do not look for temporaries of cut puts: for an open
                            that only reads or adds a few files (list, verify,
                            restore); the next open without it removes them */
};
/* Opens a local directory as a store. Not a directory / missing without
 * STORE_CREATE: CAIRN_ENOTFOUND. Unless STORE_NO_SWEEP, also removes
 * temporary files left by puts that a crash cut (those untouched for an
 * hour: a fresh one may be another process's put in progress), which
 * walks every file of the repository. */
cairn_status store_local_open(const char *dir, unsigned flags, pitr_store **out);

static inline cairn_status store_put(pitr_store *s, const char *n, const void *d, size_t l)
{
    return s->ops->put(s, n, d, l);
}
/* get into a new malloc'd buffer (*d; NULL on failure). */
static inline cairn_status store_get(pitr_store *s, const char *n, uint8_t **d, size_t *l)
{
    if (!d)
        return s->ops->get(s, n, NULL, NULL, l); /* refused, naming the store */
    uint8_t *b = NULL;
    size_t cap = 0;
    cairn_status st = s->ops->get(s, n, &b, &cap, l);
    if (st) {
        free(b);
        b = NULL;
    }
    *d = b;
    return st;
}
/* get into a buffer kept by the caller (see the op). */
static inline cairn_status store_get_into(pitr_store *s, const char *n, uint8_t **buf,
                                          size_t *cap, size_t *l)
{
    return s->ops->get(s, n, buf, cap, l);
}
static inline cairn_status store_stat(pitr_store *s, const char *n, uint64_t *size)
{
    return s->ops->stat(s, n, size);
}
static inline cairn_status store_list(pitr_store *s, const char *prefix, pitr_store_list_fn fn,
                                      void *ctx)
{
    return s->ops->list(s, prefix, fn, ctx);
}
static inline cairn_status store_del(pitr_store *s, const char *n)
{
    return s->ops->del(s, n);
}
static inline void store_close(pitr_store *s)
{
    if (s)
        s->ops->close(s);
}
/* CAIRN_OK if name is a valid object name, else CAIRN_EINVAL with a
 * message naming it and why. */
cairn_status store_name_check(const char *name);

#endif
