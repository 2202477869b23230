/*
 * testutil_cmocka.h — assertions over cairn calls for the cmocka tests of
 * the page store (test_ckpt, test_check, test_pin). Include after
 * <cmocka.h> and testutil.h.
 */
#ifndef CAIRN_TESTUTIL_CMOCKA_H
#define CAIRN_TESTUTIL_CMOCKA_H

/* Fails the test with the status and message when st is not CAIRN_OK. */
static inline void must(cairn_status st, const char *what)
{
    if (st != CAIRN_OK)
        fail_msg("%s: %s: %s", what, cairn_status_name(st), cairn_last_error());
}

/* Test options with checkpoints only when a test asks for one. */
static inline cairn_options opts(void)
{
    cairn_options o = tu_opts(CAIRN_DURABILITY_SYNC, CAIRN_IO_DEFAULT, 2);
    o.checkpoint_wal_bytes = UINT64_MAX;
    o.checkpoint_interval_s = 0;
    return o;
}

static inline cairn_db *must_open_o(const char *dir, const cairn_options *o)
{
    cairn_db *db = NULL;
    cairn_status st = cairn_open(dir, o, &db);
    if (st != CAIRN_OK)
        fail_msg("open %s: %s: %s", dir, cairn_status_name(st), cairn_last_error());
    return db;
}

static inline cairn_db *must_open(const char *dir)
{
    cairn_options o = opts();
    return must_open_o(dir, &o);
}

/* tu_link_tree, tu_flip_byte, tu_write_file, failing the test on error. */
static inline void must_link_tree(const char *from, const char *to)
{
    if (tu_link_tree(from, to) != 0)
        fail_msg("%s", tu_error());
}

static inline void must_flip_byte(const char *path, size_t off)
{
    if (tu_flip_byte(path, off) != 0)
        fail_msg("%s", tu_error());
}

static inline void must_write_file(const char *path, const void *data, size_t len)
{
    if (tu_write_file(path, data, len) != 0)
        fail_msg("%s", tu_error());
}

/* FNV-1a over tu_state_digest(db, flags): oracles keep hashes, not states. */
static inline uint64_t must_state_hash(cairn_db *db, unsigned flags)
{
    struct tu_dig d = {0};
    if (tu_state_digest(db, &d, flags) != 0)
        fail_msg("digest: %s", tu_error());
    uint64_t h = 1469598103934665603ull ^ d.len;
    for (size_t i = 0; i < d.len; i++)
        h = (h ^ d.b[i]) * 1099511628211ull;
    tu_dig_free(&d);
    return h;
}

#endif
