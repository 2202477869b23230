/*
 * testutil.h — helpers shared by the test programs (compiled into every one,
 * see tests/meson.build). Free of cmocka: some tests are plain programs.
 * A helper that can fail returns a status (0 = success) and leaves the
 * verdict to its caller; tu_error() says what went wrong where a message
 * helps.
 */
#ifndef CAIRN_TESTUTIL_H
#define CAIRN_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn.h"

/* ---- seeded generators --------------------------------------------------- */

/* splitmix64: advances *s and returns the next value. */
uint64_t tu_splitmix(uint64_t *s);

/* Uniform in [0, 1): the top 53 bits of the next tu_splitmix value. */
double tu_unit(uint64_t *s);

/* dim floats uniform in [lo, hi), from tu_unit(s) each. */
void tu_fill_vec(uint64_t *s, float *v, uint32_t dim, double lo, double hi);

/* About *len bytes shaped like WAL records (a 16-byte header with a
 * counter, 64 floats on a 1/1024 grid from tu_unit(s), a small JSON
 * payload): compressible at every zstd level, more at the slower ones.
 * *len gets the bytes made. malloc'd; NULL when out of memory. */
uint8_t *tu_record_bytes(uint64_t *s, size_t *len);

/* The value of environment variable `var` (strtoull, base 0), or `def` when
 * it is not set. */
uint64_t tu_seed_env(const char *var, uint64_t def);

/* The seed from env CAIRN_SEED (or `def`), printed (and flushed) as
 * "<name>: seed=<n> (rerun: CAIRN_SEED=<n>)". */
uint64_t tu_seed(const char *name, uint64_t def);

/* ---- files and directories ------------------------------------------------ */

/* Creates a fresh directory "<base>/<name>.XXXXXX" (mkdtemp), base being
 * $CAIRN_TEST_TMP (created if missing) or /tmp when that is unset or
 * empty, and writes its path to out. 0, or -1 with errno set. */
int tu_tmpbase(char *out, size_t cap, const char *name);

/* Removes path and everything below it, not following links (nftw). A path
 * that does not exist is no error. 0, or -1. */
int tu_rm_rf(const char *path);

/* The whole file, in a malloc'd buffer (one spare byte); *len its size.
 * NULL on failure. */
unsigned char *tu_read_file(const char *path, size_t *len);
/* Replaces path by a new file holding data (unlink, then write: a file
 * hard-linked elsewhere is left as it was). 0, or -1. */
int tu_write_file(const char *path, const void *data, size_t len);
/* Replaces path by a copy with byte `off` flipped (tu_write_file). 0, or -1. */
int tu_flip_byte(const char *path, size_t off);
/* A copy of the tree `from` at `to` (which must not exist) made of hard
 * links: for stores that never write a file in place (a backup
 * repository), so a copy can be damaged with tu_write_file/tu_flip_byte or
 * by unlinking without touching the original. 0, or -1. */
int tu_link_tree(const char *from, const char *to);
/* A copy of the tree `from` at `to` (which must not exist): directories
 * and regular files (others are skipped), holes where whole 4 KiB blocks
 * are zero (WAL segments are mostly preallocated zeros). For a database
 * a test damages or writes to. 0, or -1. */
int tu_copy_tree(const char *from, const char *to);

/* Every regular file below a directory with its bytes, sorted by path: to
 * prove that something changed no file. */
struct tu_tree_file {
    char *path;
    unsigned char *data;
    size_t len;
};
struct tu_tree {
    struct tu_tree_file *f;
    size_t n;
};

/* 0, or -1 (tu_error() says why); t is valid for tu_tree_free either way. */
int tu_tree_take(struct tu_tree *t, const char *dir);
/* 0 when a and b hold the same paths with the same bytes; otherwise 1 and
 * `why` (n bytes) names the first difference. */
int tu_tree_diff(const struct tu_tree *a, const struct tu_tree *b, char *why, size_t n);
void tu_tree_free(struct tu_tree *t);

/* ---- database state ------------------------------------------------------- */

/* Options for a test database: the smallest WAL segment size and the given
 * durability, I/O backend and replay jobs; the rest as cairn_options_init. */
cairn_options tu_opts(cairn_durability d, cairn_io_backend io, unsigned jobs);

/* A growable byte string. */
struct tu_dig {
    unsigned char *b;
    size_t len, cap;
};

/* tu_state_digest flag: include each collection's id and bytes. */
#define TU_DIG_ID_BYTES 1u

/* Everything a reader can see, as a canonical byte string in d (replacing
 * its contents): the number of collections, then per collection (in list
 * order) its name, [id,] dim, metric, points[, bytes] (TU_DIG_ID_BYTES),
 * then every point by ascending id (found with an exact search for all
 * points) with its vector and payload as cairn_get returns them. 0, or -1
 * (tu_error() says why). */
int tu_state_digest(cairn_db *db, struct tu_dig *d, unsigned flags);
/* The collection `name` of `from` (found with an exact search for all
 * points, read with cairn_get) replaces the one of that name in `to`
 * (created where `to` has none): drop, create, one upsert per point, all
 * through the public API. 0, or -1 (tu_error() says why). */
int tu_copy_collection(cairn_db *from, cairn_db *to, const char *name);
/* Appends n bytes of p to d. 0, or -1 (out of memory). */
int tu_dig_add(struct tu_dig *d, const void *p, size_t n);
bool tu_dig_eq(const struct tu_dig *a, const struct tu_dig *b);
void tu_dig_free(struct tu_dig *d);

/* ---- a model of the database (oracle) ------------------------------------- */

/* A point is described by a seed: its vector and payload are generated from
 * it (and the payload's padding length), so a model is small. */

/* dim floats in [-1, 1) from vseed. */
void tu_gen_vector(uint32_t vseed, float *v, uint32_t dim);

/* TU_NO_PAYLOAD as pad: a point without payload. */
#define TU_NO_PAYLOAD UINT32_MAX

/* The payload of (vseed, pad): the JSON object {"s":<vseed>,"p":"<pad
 * letters>"}, in a malloc'd NUL-terminated buffer, *len its length (pad +
 * about 20 bytes). NULL when out of memory or pad == TU_NO_PAYLOAD. */
char *tu_gen_payload(uint32_t vseed, uint32_t pad, size_t *len);

struct tu_mpoint {
    uint64_t id;
    uint32_t vseed, pad;
};
struct tu_mcoll {
    char name[CAIRN_MAX_NAME + 1];
    uint32_t dim;
    cairn_metric metric;
    struct tu_mpoint *p; /* sorted by id */
    size_t n, cap;
};
/* What a reader should see: collections sorted by name (as
 * cairn_collection_list gives them). Zero-initialized is empty. */
struct tu_model {
    struct tu_mcoll *c;
    size_t n, cap;
};

/* 0, or -1 (tu_error() says why: exists / unknown collection / memory). */
int tu_model_create(struct tu_model *m, const char *name, uint32_t dim, cairn_metric metric);
int tu_model_drop(struct tu_model *m, const char *name);
int tu_model_upsert(struct tu_model *m, const char *coll, uint64_t id, uint32_t vseed,
                    uint32_t pad);
int tu_model_delete(struct tu_model *m, const char *coll, uint64_t id);
void tu_model_free(struct tu_model *m);

/* The model as tu_state_digest(db, d, 0) renders a database holding
 * exactly it. 0, or -1. */
int tu_model_digest(const struct tu_model *m, struct tu_dig *d);

/* Says (in why, n bytes) where the database first differs from the model:
 * a collection missing, extra or different, a point missing, extra or with
 * other contents. For messages after the digests differ. */
void tu_model_explain(cairn_db *db, const struct tu_model *m, char *why, size_t n);

/* ---- a mixed workload over three collections ------------------------------- */

/* "small" (4-d, L2), "mid" (128-d, cosine), "wide" (2100-d, dot: a vector
 * spans pages). */
#define TU_MIX_N 3
extern const char *const tu_mix_name[TU_MIX_N];
extern const uint32_t tu_mix_dim[TU_MIX_N];
extern const cairn_metric tu_mix_metric[TU_MIX_N];

/* Creates the three collections (status of the first failure). */
cairn_status tu_mix_create(cairn_db *db);

/* One transaction of 1..8 operations over the three collections, drawn
 * from rng: upserts (payloads from none to ~20 KB: heap records and
 * overflow chains) and deletes, ids in a small range so that updates and
 * deletes hit existing points. ci: the commit info (may be NULL). */
cairn_status tu_mix_txn(cairn_db *db, uint64_t *rng, cairn_commit_info *ci);

/* ---- messages --------------------------------------------------------------- */

/* What the last failing helper of this thread reported. */
const char *tu_error(void);

/* Logs below errors are silenced (unless env CAIRN_TEST_VERBOSE is set,
 * then warnings and up show): the fault and tail tests log by design. */
void tu_quiet_log(void);

#endif
