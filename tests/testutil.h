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
bool tu_dig_eq(const struct tu_dig *a, const struct tu_dig *b);
void tu_dig_free(struct tu_dig *d);

/* ---- messages --------------------------------------------------------------- */

/* What the last failing helper of this thread reported. */
const char *tu_error(void);

/* Logs below errors are silenced (unless env CAIRN_TEST_VERBOSE is set,
 * then warnings and up show): the fault and tail tests log by design. */
void tu_quiet_log(void);

#endif
