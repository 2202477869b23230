/*
 * test_pitr_store.c — pitr/store.c, the local-directory repository store:
 * put/get/stat/list/del round trips, nested names, replacement, list order
 * and prefixes, temporaries (never listed, removed at open), every kind of
 * bad name refused before anything is touched, missing objects and
 * repositories; then the atomic publish itself: the exact operation
 * sequence of a put seen through the fault seam, a failure injected at
 * every one of those operations (old object or none, never a partial one,
 * no temporary left), and a power failure simulated at every operation of
 * a put and a delete (common/simio.c, in forked children) and right after
 * they return.
 *
 * And the repository's compression levels (pitr/repo.c, repo.json's
 * "compression"): the exact repo.json of a new repository ("wal_level":
 * -1), levels given at creation recorded, options on an existing one
 * applied to what that process writes and not recorded (not even by the
 * rewrite that binds the repository); a repo.json without "wal_level" (an
 * older repository) compresses WAL at its level; every malformed
 * "wal_level" and every out-of-range option refused, nothing changed. The
 * level an object was written at is proven by its bytes: zstd is
 * deterministic, so the payload equals codec_compress of the content at
 * that level, and differs from the one at the other level. WAL segments
 * come from a real database through pitr_archive.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "cairn.h"
#include "common/codec.h"
#include "common/io.h"
#include "pitr/pitr.h"
#include "pitr/repo.h"
#include "pitr/store.h"

#include "testutil.h"

#define CRASH_EXIT 75

struct fx {
    char base[4096];
    char repo[4300];
    char stash[4300];
    pitr_store *s;
};

static int fx_setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    if (!f || tu_tmpbase(f->base, sizeof f->base, "pitr_store") != 0)
        return -1;
    snprintf(f->repo, sizeof f->repo, "%s/repo", f->base);
    snprintf(f->stash, sizeof f->stash, "%s/stash", f->base);
    if (mkdir(f->stash, 0755) != 0)
        return -1;
    if (store_local_open(f->repo, STORE_CREATE, &f->s) != CAIRN_OK)
        return -1;
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;
    cio_fault_set(NULL);
    cio_sim_stop();
    store_close(f->s);
    tu_rm_rf(f->base);
    free(f);
    return 0;
}

static void reopen(struct fx *f)
{
    store_close(f->s);
    f->s = NULL;
    assert_int_equal(store_local_open(f->repo, 0, &f->s), CAIRN_OK);
}

static void pattern(uint8_t *b, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(seed * 131u + i * 7u + (i >> 8));
}

static void put_str(pitr_store *s, const char *name, const char *text)
{
    cairn_status st = store_put(s, name, text, strlen(text));
    if (st)
        fail_msg("put %s: %s", name, cairn_last_error());
}

static void expect_get(pitr_store *s, const char *name, const void *want, size_t n)
{
    uint8_t *d = NULL;
    size_t len = 0;
    cairn_status st = store_get(s, name, &d, &len);
    if (st)
        fail_msg("get %s: %s", name, cairn_last_error());
    assert_int_equal(len, n);
    if (n)
        assert_memory_equal(d, want, n);
    assert_int_equal(d[n], 0); /* the spare NUL */
    free(d);
    uint64_t size = 0;
    assert_int_equal(store_stat(s, name, &size), CAIRN_OK);
    assert_int_equal(size, n);
}

static void expect_missing(struct fx *f, const char *name)
{
    uint8_t *d = (uint8_t *)1;
    size_t len = 1;
    assert_int_equal(store_get(f->s, name, &d, &len), CAIRN_ENOTFOUND);
    assert_null(d);
    if (!strstr(cairn_last_error(), name) || !strstr(cairn_last_error(), f->repo))
        fail_msg("message \"%s\" does not name \"%s\" and the repository", cairn_last_error(),
                 name);
    uint64_t size;
    assert_int_equal(store_stat(f->s, name, &size), CAIRN_ENOTFOUND);
}

static int exists(const char *path)
{
    struct stat sb;
    return lstat(path, &sb) == 0;
}

/* ---- list helpers ---------------------------------------------------------- */

struct names {
    char buf[8192]; /* "name:size,..." */
    int calls, stop_at;
};

static cairn_status collect(void *ctx, const char *name, uint64_t size)
{
    struct names *n = ctx;
    size_t at = strlen(n->buf);
    snprintf(n->buf + at, sizeof n->buf - at, "%s%s:%llu", at ? "," : "", name,
             (unsigned long long)size);
    if (++n->calls == n->stop_at)
        return CAIRN_ECANCELED;
    return CAIRN_OK;
}

static void expect_list(pitr_store *s, const char *prefix, const char *want)
{
    struct names n = {0};
    cairn_status st = store_list(s, prefix, collect, &n);
    if (st)
        fail_msg("list \"%s\": %s", prefix, cairn_last_error());
    if (strcmp(n.buf, want) != 0)
        fail_msg("list \"%s\": got \"%s\", want \"%s\"", prefix, n.buf, want);
}

/* Every entry below a directory (files and directories), sorted, as one
 * string: proves that an operation created or removed nothing. */
static char g_tree[65536];
static const char *g_tree_root;

static int tree_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)flag;
    (void)ftw;
    size_t at = strlen(g_tree);
    snprintf(g_tree + at, sizeof g_tree - at, "%s%s|", p + strlen(g_tree_root),
             S_ISDIR(sb->st_mode) ? "/" : "");
    return 0;
}

static char *tree_listing(const char *dir)
{
    g_tree[0] = '\0';
    g_tree_root = dir;
    assert_int_equal(nftw(dir, tree_entry, 16, FTW_PHYS), 0);
    return strdup(g_tree);
}

static int tmp_count(const char *dir)
{
    char *t = tree_listing(dir);
    int n = 0;
    /* entries ending in ".tmp-" and 16 lower-case hex digits */
    for (const char *p = t; (p = strstr(p, ".tmp-")); p++) {
        const char *h = p + 5;
        int k = 0;
        while (k < 16 && ((h[k] >= '0' && h[k] <= '9') || (h[k] >= 'a' && h[k] <= 'f')))
            k++;
        if (k == 16 && h[16] == '|' && p[-1] != '/')
            n++;
    }
    free(t);
    return n;
}

static void touch(const char *dir, const char *rel, const char *text)
{
    char p[4400];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

/* Sets a file's times `secs` seconds into the past. */
static void age(const char *dir, const char *rel, long secs)
{
    char p[4400];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    struct timespec ts[2];
    clock_gettime(CLOCK_REALTIME, &ts[0]);
    ts[0].tv_sec -= secs;
    ts[1] = ts[0];
    assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
}

/* ---- round trips ------------------------------------------------------------- */

static void test_roundtrip(void **state)
{
    struct fx *f = *state;
    put_str(f->s, "a", "hello");
    expect_get(f->s, "a", "hello", 5);
    assert_int_equal(store_put(f->s, "empty", NULL, 0), CAIRN_OK);
    expect_get(f->s, "empty", "", 0);
    /* binary data with NULs, 1 MiB + 3 */
    size_t n = (1u << 20) + 3;
    uint8_t *b = malloc(n);
    assert_non_null(b);
    pattern(b, n, 1);
    assert_int_equal(store_put(f->s, "big", b, n), CAIRN_OK);
    expect_get(f->s, "big", b, n);
    free(b);

    assert_int_equal(store_del(f->s, "a"), CAIRN_OK);
    expect_missing(f, "a");
    assert_int_equal(store_del(f->s, "a"), CAIRN_OK); /* missing is fine */
    char p[4400];
    snprintf(p, sizeof p, "%s/a", f->repo);
    assert_false(exists(p));
    assert_int_equal(tmp_count(f->repo), 0);

    /* everything survives a reopen */
    reopen(f);
    expect_get(f->s, "empty", "", 0);
    expect_missing(f, "a");
    assert_string_equal(f->s->where, f->repo);
}

static void test_nested(void **state)
{
    struct fx *f = *state;
    const char *names[] = {
        "blobs/ab/ab12cd",
        "blobs/ab/ab99",
        "blobs/cd/cd00",
        "backups/20261121T101500Z-0001/manifest",
        "wal/00000001/0000000000000000.wal",
        ".hidden/..x/...",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        put_str(f->s, names[i], names[i]);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        expect_get(f->s, names[i], names[i], strlen(names[i]));
        char p[4400];
        snprintf(p, sizeof p, "%s/%s", f->repo, names[i]);
        struct stat sb;
        assert_int_equal(stat(p, &sb), 0); /* really DIR/<name> */
        assert_true(S_ISREG(sb.st_mode));
    }
    /* A directory is not an object; an object is not a directory. */
    expect_missing(f, "blobs");
    expect_missing(f, "blobs/ab");
    expect_missing(f, "blobs/ab/ab12cd/x");
    assert_int_equal(store_del(f->s, "blobs/ab"), CAIRN_OK);
    expect_get(f->s, "blobs/ab/ab99", "blobs/ab/ab99", 13);
    assert_int_equal(store_del(f->s, "blobs/ab/ab12cd/x"), CAIRN_OK);
    /* a name under an object cannot be put */
    assert_int_not_equal(store_put(f->s, "blobs/ab/ab99/x", "x", 1), CAIRN_OK);
    assert_non_null(strstr(cairn_last_error(), "blobs/ab/ab99/x"));
    expect_get(f->s, "blobs/ab/ab99", "blobs/ab/ab99", 13);
    assert_int_equal(tmp_count(f->repo), 0);
}

static void test_replace(void **state)
{
    struct fx *f = *state;
    size_t n = 100000;
    uint8_t *b = malloc(n);
    assert_non_null(b);
    pattern(b, n, 7);
    assert_int_equal(store_put(f->s, "x/obj", b, n), CAIRN_OK);
    put_str(f->s, "x/obj", "short");
    expect_get(f->s, "x/obj", "short", 5);
    assert_int_equal(store_put(f->s, "x/obj", b, n), CAIRN_OK);
    expect_get(f->s, "x/obj", b, n);
    assert_int_equal(store_put(f->s, "x/obj", NULL, 0), CAIRN_OK);
    expect_get(f->s, "x/obj", "", 0);
    free(b);
    expect_list(f->s, "", "x/obj:0");
    assert_int_equal(tmp_count(f->repo), 0);
}

static void test_list(void **state)
{
    struct fx *f = *state;
    /* In byte order '-' < '/' < '0': a walk that finishes a directory
     * before its siblings would put "a/b" after "a0" or before "a-b". */
    const char *names[] = {"wal/0002", "a0", "blobs/ab/1", "a/b", "wal/00010", "blobs/abc",
                           "a-b", "blobs/b", "repo.json", "wal/0001", "a/c/d", "B"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        put_str(f->s, names[i], names[i] + strlen(names[i]) / 2);
    expect_list(f->s, "",
                "B:1,a-b:2,a/b:2,a/c/d:3,a0:1,blobs/ab/1:5,blobs/abc:5,blobs/b:4,"
                "repo.json:5,wal/0001:4,wal/00010:5,wal/0002:4");
    expect_list(f->s, "a", "a-b:2,a/b:2,a/c/d:3,a0:1");
    expect_list(f->s, "a/", "a/b:2,a/c/d:3");
    expect_list(f->s, "a/c", "a/c/d:3");
    expect_list(f->s, "blobs/ab", "blobs/ab/1:5,blobs/abc:5");
    expect_list(f->s, "blobs/ab/", "blobs/ab/1:5");
    expect_list(f->s, "wal/0001", "wal/0001:4,wal/00010:5");
    expect_list(f->s, "wal/0002", "wal/0002:4");
    expect_list(f->s, "wal/00020", "");
    expect_list(f->s, "nothing/", "");
    expect_list(f->s, "nothing/deeper/", "");
    expect_list(f->s, "repo.json/", ""); /* an object, not a directory */
    expect_list(f->s, "b", "blobs/ab/1:5,blobs/abc:5,blobs/b:4");
    expect_list(f->s, "A", ""); /* bytes, no case folding */

    /* The callback's status stops the walk and is returned. */
    struct names n = {.stop_at = 2};
    assert_int_equal(store_list(f->s, "", collect, &n), CAIRN_ECANCELED);
    assert_int_equal(n.calls, 2);
    assert_string_equal(n.buf, "B:1,a-b:2");

    /* A prefix cannot leave the repository. */
    const char *bad[] = {"../", "/", "a//", "./", "a/../", "../x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct names m = {0};
        assert_int_equal(store_list(f->s, bad[i], collect, &m), CAIRN_EINVAL);
        assert_int_equal(m.calls, 0);
    }
}

static void test_tmp_files(void **state)
{
    struct fx *f = *state;
    put_str(f->s, "wal/seg", "s");
    put_str(f->s, "top", "t");
    /* Temporaries of cut puts, and names that only resemble them. */
    touch(f->repo, "top.tmp-0123456789abcdef", "partial");
    touch(f->repo, "wal/seg.tmp-fedcba9876543210", "partial");
    touch(f->repo, "wal/x.tmp-01", "kept");
    touch(f->repo, "wal/y.tmp-0123456789ABCDEF", "kept");
    touch(f->repo, "wal/.tmp-0123456789abcdef", "kept");
    expect_list(f->s, "",
                "top:1,wal/.tmp-0123456789abcdef:4,wal/seg:1,wal/x.tmp-01:4,"
                "wal/y.tmp-0123456789ABCDEF:4");
    expect_list(f->s, "wal/seg", "wal/seg:1");
    /* Stale ones (untouched for two hours) belong to puts that died; a
     * fresh one may be another process's put in progress and stays. */
    age(f->repo, "top.tmp-0123456789abcdef", 7200);
    age(f->repo, "wal/seg.tmp-fedcba9876543210", 7200);
    touch(f->repo, "wal/live.tmp-00112233445566aa", "writing");
    assert_int_equal(tmp_count(f->repo), 3);
    /* an open that does not sweep (a reader's) leaves them all */
    store_close(f->s);
    assert_int_equal(store_local_open(f->repo, STORE_NO_SWEEP, &f->s), CAIRN_OK);
    assert_int_equal(tmp_count(f->repo), 3);
    expect_list(f->s, "",
                "top:1,wal/.tmp-0123456789abcdef:4,wal/seg:1,wal/x.tmp-01:4,"
                "wal/y.tmp-0123456789ABCDEF:4");
    reopen(f);
    assert_int_equal(tmp_count(f->repo), 1);
    char p[4400];
    snprintf(p, sizeof p, "%s/top.tmp-0123456789abcdef", f->repo);
    assert_false(exists(p));
    snprintf(p, sizeof p, "%s/wal/seg.tmp-fedcba9876543210", f->repo);
    assert_false(exists(p));
    expect_list(f->s, "",
                "top:1,wal/.tmp-0123456789abcdef:4,wal/seg:1,wal/x.tmp-01:4,"
                "wal/y.tmp-0123456789ABCDEF:4");
    expect_get(f->s, "wal/x.tmp-01", "kept", 4);
    /* The store refuses names of that shape, so none of its objects can
     * ever be taken for a temporary. */
    assert_int_equal(store_put(f->s, "wal/z.tmp-0123456789abcdef", "x", 1), CAIRN_EINVAL);
}

static void test_bad_names(void **state)
{
    struct fx *f = *state;
    put_str(f->s, "a/b", "keep");
    char n256[300], part235[300], deep[300];
    memset(n256, 'n', 256);
    n256[256] = '\0';
    memset(part235, 'p', 235);
    part235[235] = '\0';
    /* 255 bytes in all but parts of at most 234: valid (below); one more
     * byte: not */
    memset(deep, 'd', 256);
    deep[100] = '/';
    deep[200] = '/';
    deep[256] = '\0';
    const char *bad[] = {"",       "/a",     "a//b",  "a/./b",    "../x",  "a/..",
                         "a/",     "a\\b",   n256,    ".",        "..",    "./a",
                         "a/b/",   "/",      "//",    part235,    deep,    "x/..",
                         "a/b/..", "\\",     "a/.",   "y.tmp-0123456789abcdef"};
    char *before = tree_listing(f->repo);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *nm = bad[i];
        assert_int_equal(store_name_check(nm), CAIRN_EINVAL);
        if (!strstr(cairn_last_error(), "could not use object name"))
            fail_msg("name %zu: message \"%s\"", i, cairn_last_error());
        assert_int_equal(store_put(f->s, nm, "x", 1), CAIRN_EINVAL);
        assert_non_null(strstr(cairn_last_error(), f->repo));
        uint8_t *d = NULL;
        size_t len;
        assert_int_equal(store_get(f->s, nm, &d, &len), CAIRN_EINVAL);
        uint64_t size;
        assert_int_equal(store_stat(f->s, nm, &size), CAIRN_EINVAL);
        assert_int_equal(store_del(f->s, nm), CAIRN_EINVAL);
    }
    assert_int_equal(store_name_check(NULL), CAIRN_EINVAL);
    assert_int_equal(store_put(f->s, NULL, "x", 1), CAIRN_EINVAL);
    char *after = tree_listing(f->repo);
    assert_string_equal(before, after);
    free(before);
    free(after);
    expect_get(f->s, "a/b", "keep", 4); /* "a/b/.." and friends deleted nothing */

    /* The limits themselves are fine. */
    deep[255] = '\0';
    assert_int_equal(store_name_check(deep), CAIRN_OK);
    put_str(f->s, deep, "deep");
    expect_get(f->s, deep, "deep", 4);
    part235[234] = '\0';
    put_str(f->s, part235, "part");
    expect_get(f->s, part235, "part", 4);
    const char *good[] = {"...", "..a", "a..", ".a/.b", "a b/c\td", "x.tmp-0123", "é/ü"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        put_str(f->s, good[i], good[i]);
        expect_get(f->s, good[i], good[i], strlen(good[i]));
    }
    assert_int_equal(tmp_count(f->repo), 0);
}

static void test_open(void **state)
{
    struct fx *f = *state;
    char p[4400];
    pitr_store *s = (pitr_store *)1;
    snprintf(p, sizeof p, "%s/missing", f->base);
    assert_int_equal(store_local_open(p, 0, &s), CAIRN_ENOTFOUND);
    assert_null(s);
    assert_non_null(strstr(cairn_last_error(), p));
    assert_false(exists(p));
    /* create makes every missing level */
    snprintf(p, sizeof p, "%s/r1/r2/r3/", f->base);
    assert_int_equal(store_local_open(p, STORE_CREATE, &s), CAIRN_OK);
    p[strlen(p) - 1] = '\0';
    assert_string_equal(s->where, p); /* trailing '/' dropped */
    put_str(s, "x", "y");
    store_close(s);
    assert_int_equal(store_local_open(p, 0, &s), CAIRN_OK);
    expect_get(s, "x", "y", 1);
    store_close(s);
    store_close(NULL);
    /* a regular file is not a repository, create or not */
    snprintf(p, sizeof p, "%s/file", f->base);
    touch(f->base, "file", "z");
    assert_int_equal(store_local_open(p, 0, &s), CAIRN_ENOTFOUND);
    assert_int_equal(store_local_open(p, STORE_CREATE, &s), CAIRN_ENOTFOUND);
    assert_non_null(strstr(cairn_last_error(), p));
    assert_int_equal(store_local_open("", STORE_CREATE, &s), CAIRN_EINVAL);
    assert_int_equal(store_local_open(NULL, STORE_CREATE, &s), CAIRN_EINVAL);
}

/* ---- the fault seam ------------------------------------------------------------ */

#define ALL_OPS (CIO_FOP_WRITE | CIO_FOP_SYNC | CIO_FOP_META | CIO_FOP_READ)

static void plan(uint64_t nth, enum cio_fault_kind kind)
{
    struct cio_fault_plan p = {.ops = ALL_OPS, .nth = nth, .kind = kind};
    cio_fault_set(&p);
}

/* Which operation a put's message says failed. */
static const char *failed_op(const char *msg)
{
    static const struct {
        const char *text, *op;
    } map[] = {
        {"could not create directory", "mkdir"}, {"could not fsync directory", "dirsync"},
        {"could not open file", "create"},       {"could not write file", "write"},
        {"could not fsync file", "fsync"},       {"could not rename file", "rename"},
        {"could not remove file", "unlink"},
    };
    const char *inner = strstr(msg, ": could not ");
    for (size_t i = 0; inner && i < sizeof map / sizeof map[0]; i++)
        if (strncmp(inner + 2, map[i].text, strlen(map[i].text)) == 0)
            return map[i].op;
    return "?";
}

/* A fresh repository (outside any plan); with `old`, "d/obj" holds it. */
static void fresh(struct fx *f, const uint8_t *old, size_t old_len)
{
    store_close(f->s);
    f->s = NULL;
    assert_int_equal(tu_rm_rf(f->repo), 0);
    /* the simulator's stash holds links of the last run's replaced files */
    assert_int_equal(tu_rm_rf(f->stash), 0);
    assert_int_equal(mkdir(f->stash, 0755), 0);
    assert_int_equal(store_local_open(f->repo, STORE_CREATE, &f->s), CAIRN_OK);
    if (old)
        assert_int_equal(store_put(f->s, "d/obj", old, old_len), CAIRN_OK);
}

/*
 * Fails operation k = 1, 2, ... of one put until a put sees no failure,
 * and returns the operations in the order they failed ("mkdir,dirsync,...").
 * After each failure: the status is the injected one, the message names
 * object and repository, the object is the old one (or none), except after
 * the final directory fsync, where it is the whole new one, and no
 * temporary is left, before or after a reopen.
 */
static void fail_each_op(struct fx *f, const char *name, const uint8_t *old, size_t old_len,
                         const uint8_t *data, size_t len, enum cio_fault_kind kind,
                         char *seq, size_t cap)
{
    cairn_status want = kind == CIO_FAULT_ENOSPC ? CAIRN_ENOSPC : CAIRN_EIO;
    seq[0] = '\0';
    for (uint64_t k = 1;; k++) {
        assert_true(k < 50);
        fresh(f, old, old_len);
        plan(k, kind);
        cairn_status st = store_put(f->s, name, data, len);
        uint64_t fired = cio_fault_fired();
        cio_fault_set(NULL);
        if (fired == 0) {
            assert_int_equal(st, CAIRN_OK);
            expect_get(f->s, name, data, len);
            break;
        }
        assert_int_equal(st, want);
        const char *msg = cairn_last_error();
        if (!strstr(msg, name) || !strstr(msg, f->repo))
            fail_msg("op %llu: message \"%s\" does not name object and repository",
                     (unsigned long long)k, msg);
        const char *op = failed_op(msg);
        size_t at = strlen(seq);
        snprintf(seq + at, cap - at, "%s%s", at ? "," : "", op);
        assert_int_equal(tmp_count(f->repo), 0);
        reopen(f);
        assert_int_equal(tmp_count(f->repo), 0);
        uint8_t *d = NULL;
        size_t dl = 0;
        cairn_status g = store_get(f->s, name, &d, &dl);
        if (g == CAIRN_ENOTFOUND) {
            assert_null(old);
        } else {
            assert_int_equal(g, CAIRN_OK);
            bool is_old = old && dl == old_len && memcmp(d, old, dl) == 0;
            bool is_new = dl == len && memcmp(d, data, dl) == 0;
            if (!is_old && !is_new)
                fail_msg("op %llu (%s) failed: object of %zu bytes is neither old nor new",
                         (unsigned long long)k, op, dl);
            /* new only once renamed: the failure was the last step */
            if (is_new && !is_old) {
                char p[4400];
                snprintf(p, sizeof p, "%s/%s", f->repo, name);
                char *slash = strrchr(p, '/');
                *slash = '\0';
                char fsync_dir[4500];
                snprintf(fsync_dir, sizeof fsync_dir, "could not fsync directory \"%s\"", p);
                if (!strstr(msg, fsync_dir))
                    fail_msg("op %llu (%s): new object published by a put that failed "
                             "before its final directory fsync: %s",
                             (unsigned long long)k, op, msg);
            }
        }
        free(d);
    }
}

static void test_fault_put_sequence(void **state)
{
    struct fx *f = *state;
    size_t n = 20000;
    uint8_t *oldb = malloc(n), *newb = malloc(n + 5);
    assert_true(oldb && newb);
    pattern(oldb, n, 3);
    pattern(newb, n + 5, 4);
    char seq[1024];
    /* A new object in new directories: each level durably, then the
     * publish recipe. */
    for (int kind = CIO_FAULT_EIO; kind <= CIO_FAULT_ENOSPC; kind++) {
        fail_each_op(f, "n1/n2/obj", NULL, 0, newb, n + 5, kind, seq, sizeof seq);
        assert_string_equal(seq, "mkdir,dirsync,mkdir,dirsync,create,write,fsync,rename,"
                                 "dirsync");
        /* replacing an object: the old one or the whole new one */
        fail_each_op(f, "d/obj", oldb, n, newb, n + 5, kind, seq, sizeof seq);
        assert_string_equal(seq, "create,write,fsync,rename,dirsync");
    }
    /* An empty object has no write. */
    fail_each_op(f, "d/obj", oldb, n, newb, 0, CIO_FAULT_EIO, seq, sizeof seq);
    assert_string_equal(seq, "create,fsync,rename,dirsync");
    free(oldb);
    free(newb);
}

/* Short writes and EAGAIN/EINTR are absorbed by the I/O layer: the put
 * succeeds whole whichever operation they hit. */
static void test_fault_absorbed(void **state)
{
    struct fx *f = *state;
    size_t n = 3 * 4096 + 17;
    uint8_t *b = malloc(n);
    assert_non_null(b);
    pattern(b, n, 9);
    enum cio_fault_kind kinds[] = {CIO_FAULT_SHORT, CIO_FAULT_EAGAIN, CIO_FAULT_EINTR};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        for (uint64_t k = 1; k <= 10; k++) {
            fresh(f, NULL, 0);
            plan(k, kinds[i]);
            cairn_status st = store_put(f->s, "n/obj", b, n);
            cio_fault_set(NULL);
            if (st)
                fail_msg("kind %d at op %llu: %s", (int)kinds[i], (unsigned long long)k,
                         cairn_last_error());
            expect_get(f->s, "n/obj", b, n);
            assert_int_equal(tmp_count(f->repo), 0);
        }
    free(b);
}

static void test_fault_get_del(void **state)
{
    struct fx *f = *state;
    put_str(f->s, "d/obj", "content");
    uint8_t *d = NULL;
    size_t len;
    plan(1, CIO_FAULT_EIO);
    assert_int_equal(store_get(f->s, "d/obj", &d, &len), CAIRN_EIO);
    cio_fault_set(NULL);
    assert_null(d);
    assert_non_null(strstr(cairn_last_error(), "d/obj"));
    assert_non_null(strstr(cairn_last_error(), f->repo));
    /* delete: the unlink fails (object kept) or the directory fsync
     * (object gone, not known durable); both are reported */
    plan(1, CIO_FAULT_EIO);
    assert_int_equal(store_del(f->s, "d/obj"), CAIRN_EIO);
    cio_fault_set(NULL);
    assert_string_equal(failed_op(cairn_last_error()), "unlink");
    expect_get(f->s, "d/obj", "content", 7);
    plan(2, CIO_FAULT_EIO);
    assert_int_equal(store_del(f->s, "d/obj"), CAIRN_EIO);
    cio_fault_set(NULL);
    assert_string_equal(failed_op(cairn_last_error()), "dirsync");
    expect_missing(f, "d/obj");
    /* the retry, with the object already gone, still syncs the directory */
    plan(1, CIO_FAULT_EIO);
    assert_int_equal(store_del(f->s, "d/obj"), CAIRN_EIO);
    cio_fault_set(NULL);
    assert_string_equal(failed_op(cairn_last_error()), "dirsync");
    assert_int_equal(store_del(f->s, "d/obj"), CAIRN_OK);
    /* a missing directory: nothing to sync */
    plan(1, CIO_FAULT_EIO);
    assert_int_equal(store_del(f->s, "nodir/obj"), CAIRN_OK);
    assert_int_equal(cio_fault_fired(), 0);
    cio_fault_set(NULL);
}

/* ---- power failure (crash simulator) ----------------------------------------------- */

enum crash_op { DO_PUT, DO_DEL };

/*
 * In a forked child: opens the store, starts the simulator (crash at op
 * `at`; 0: right after the operation returned), runs the put or delete.
 * Returns the child's exit status (CRASH_EXIT when the power failed).
 */
static int crash_run(struct fx *f, enum crash_op what, const char *name, const uint8_t *data,
                     size_t len, uint64_t seed, uint64_t at, enum cio_sim_dir_policy dir)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        pitr_store *s;
        if (store_local_open(f->repo, 0, &s) != CAIRN_OK)
            _exit(1);
        struct cio_sim_config cfg = {.seed = seed,
                                     .crash_at = at,
                                     .stash_dir = f->stash,
                                     .exit_code = CRASH_EXIT,
                                     .dir = dir};
        if (cio_sim_start(&cfg) != CAIRN_OK)
            _exit(2);
        cairn_status st = what == DO_PUT ? store_put(s, name, data, len) : store_del(s, name);
        if (at == 0 && st == CAIRN_OK)
            cio_sim_crash();
        _exit(3); /* the crash point was never reached */
    }
    int wst;
    assert_int_equal(waitpid(pid, &wst, 0), pid);
    assert_true(WIFEXITED(wst));
    return WEXITSTATUS(wst);
}

/* Operations one put or delete counts in the simulator (done for real,
 * then the repository is made fresh again by the caller). */
static uint64_t count_ops(struct fx *f, enum crash_op what, const char *name,
                          const uint8_t *data, size_t len)
{
    struct cio_sim_config cfg = {.seed = 1, .stash_dir = f->stash};
    assert_int_equal(cio_sim_start(&cfg), CAIRN_OK);
    cairn_status st = what == DO_PUT ? store_put(f->s, name, data, len) : store_del(f->s, name);
    uint64_t n = cio_sim_ops();
    cio_sim_stop();
    assert_int_equal(st, CAIRN_OK);
    return n;
}

static int age_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    if (type == FTW_F && strstr(path, ".tmp-")) {
        struct timespec ts[2];
        clock_gettime(CLOCK_REALTIME, &ts[0]);
        ts[0].tv_sec -= 7200;
        ts[1] = ts[0];
        if (utimensat(AT_FDCWD, path, ts, 0) != 0)
            return -1;
    }
    return 0;
}

/* Ages every temporary file under dir by two hours. */
static void age_tmps(const char *dir)
{
    assert_int_equal(nftw(dir, age_one, 16, FTW_PHYS), 0);
}

/* After a crash: the object is old (or absent) or whole new; `must_new`
 * after a put that returned, `must_gone` after a delete that returned. */
static void check_after_crash(struct fx *f, const char *name, const uint8_t *old,
                              size_t old_len, const uint8_t *data, size_t len, bool must_new,
                              bool must_gone, const char *where)
{
    /* the temporaries a crash left are removed once stale (an hour) */
    age_tmps(f->repo);
    reopen(f);
    assert_int_equal(tmp_count(f->repo), 0);
    uint8_t *d = NULL;
    size_t dl = 0;
    cairn_status g = store_get(f->s, name, &d, &dl);
    if (g == CAIRN_ENOTFOUND) {
        if (old || must_new)
            fail_msg("%s: object missing", where);
        return;
    }
    assert_int_equal(g, CAIRN_OK);
    if (must_gone)
        fail_msg("%s: deleted object came back", where);
    bool is_old = old && dl == old_len && memcmp(d, old, dl) == 0;
    bool is_new = data && dl == len && memcmp(d, data, dl) == 0;
    free(d);
    if (!is_old && !is_new)
        fail_msg("%s: object of %zu bytes is neither the old nor the new one", where, dl);
    if (must_new && !is_new)
        fail_msg("%s: a put that returned was lost", where);
}

static void crash_put_case(struct fx *f, const char *name, const uint8_t *old, size_t old_len,
                           const uint8_t *data, size_t len, uint64_t seed0)
{
    fresh(f, old, old_len);
    uint64_t n = count_ops(f, DO_PUT, name, data, len);
    assert_true(n >= 5);
    char where[256];
    for (uint64_t at = 1; at <= n; at++)
        for (uint64_t seed = seed0; seed < seed0 + 6; seed++) {
            fresh(f, old, old_len);
            int rc = crash_run(f, DO_PUT, name, data, len, seed, at, CIO_SIM_DIR_RANDOM);
            snprintf(where, sizeof where, "put %s, crash at op %llu of %llu, seed %llu", name,
                     (unsigned long long)at, (unsigned long long)n, (unsigned long long)seed);
            if (rc != CRASH_EXIT)
                fail_msg("%s: child exited %d", where, rc);
            check_after_crash(f, name, old, old_len, data, len, false, false, where);
        }
    /* Right after it returned: durable, even when every entry change not
     * yet synced is lost. */
    for (uint64_t seed = seed0; seed < seed0 + 8; seed++)
        for (int lose = 0; lose <= 1; lose++) {
            fresh(f, old, old_len);
            int rc = crash_run(f, DO_PUT, name, data, len, seed, 0,
                               lose ? CIO_SIM_DIR_LOSE : CIO_SIM_DIR_RANDOM);
            snprintf(where, sizeof where, "put %s returned, then crash (seed %llu, %s)", name,
                     (unsigned long long)seed, lose ? "lose" : "random");
            if (rc != CRASH_EXIT)
                fail_msg("%s: child exited %d", where, rc);
            check_after_crash(f, name, old, old_len, data, len, true, false, where);
        }
}

static void test_crash_put(void **state)
{
    struct fx *f = *state;
    uint64_t seed0 = tu_seed_env("CAIRN_SEED", 0x57023) & 0xffffffffu;
    size_t n = 9000; /* several sectors: parts can survive alone */
    uint8_t *oldb = malloc(n), *newb = malloc(n + 700);
    assert_true(oldb && newb);
    pattern(oldb, n, 5);
    pattern(newb, n + 700, 6);
    crash_put_case(f, "n1/n2/obj", NULL, 0, newb, n + 700, seed0);
    crash_put_case(f, "d/obj", oldb, n, newb, n + 700, seed0 + 100);
    free(oldb);
    free(newb);
}

static void test_crash_del(void **state)
{
    struct fx *f = *state;
    const uint8_t old[] = "the old object";
    fresh(f, old, sizeof old);
    uint64_t n = count_ops(f, DO_DEL, "d/obj", NULL, 0);
    assert_int_equal(n, 2); /* unlink, directory fsync */
    char where[256];
    for (uint64_t at = 1; at <= n; at++)
        for (uint64_t seed = 1; seed <= 6; seed++) {
            fresh(f, old, sizeof old);
            int rc = crash_run(f, DO_DEL, "d/obj", NULL, 0, seed, at, CIO_SIM_DIR_RANDOM);
            snprintf(where, sizeof where, "delete, crash at op %llu, seed %llu",
                     (unsigned long long)at, (unsigned long long)seed);
            if (rc != CRASH_EXIT)
                fail_msg("%s: child exited %d", where, rc);
            reopen(f);
            uint8_t *d = NULL;
            size_t dl;
            cairn_status g = store_get(f->s, "d/obj", &d, &dl);
            if (g == CAIRN_OK) {
                assert_int_equal(dl, sizeof old);
                assert_memory_equal(d, old, dl);
                free(d);
            } else {
                assert_int_equal(g, CAIRN_ENOTFOUND);
            }
        }
    for (int lose = 0; lose <= 1; lose++) {
        fresh(f, old, sizeof old);
        int rc = crash_run(f, DO_DEL, "d/obj", NULL, 0, 3, 0,
                           lose ? CIO_SIM_DIR_LOSE : CIO_SIM_DIR_RANDOM);
        assert_int_equal(rc, CRASH_EXIT);
        check_after_crash(f, "d/obj", NULL, 0, NULL, 0, false, true, "delete returned");
    }
}


/* ---- repo.json: compression levels ------------------------------------------- */

#define OBJ_HDR 96 /* pitr/repo.c: the object header before the zstd frame */

static repo *open_repo(const char *dir, bool create, int level, int wal_level)
{
    struct repo_open_opts o = {.create = create, .level = level, .wal_level = wal_level};
    repo *r = NULL;
    cairn_status st = repo_open(dir, &o, &r);
    if (st)
        fail_msg("repo_open %s: %s", dir, cairn_last_error());
    return r;
}

static char *slurp(const char *dir, const char *rel)
{
    char p[4400];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    size_t n = 0;
    char *t = (char *)tu_read_file(p, &n);
    if (!t)
        fail_msg("read %s", p);
    t[n] = 0;
    return t;
}

/* File rel of dir holds exactly want (a string slurp gave before). */
static void expect_file(const char *dir, const char *rel, const char *want)
{
    char *got = slurp(dir, rel);
    assert_string_equal(got, want);
    free(got);
}

/* Object `name` of the repository in dir (not encrypted) holds content
 * compressed at `level`, and not at `other` (which gives other bytes:
 * asserted, so the check tells the two apart). */
static void expect_level(const char *dir, const char *name, const void *content, size_t len,
                         int level, int other)
{
    char p[4400];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    size_t olen = 0;
    uint8_t *obj = tu_read_file(p, &olen);
    assert_non_null(obj);
    assert_true(olen > OBJ_HDR);
    uint8_t *z = NULL, *zo = NULL;
    size_t zl = 0, zol = 0;
    bool sh;
    assert_int_equal(codec_compress(content, len, level, false, &z, &zl, &sh, "want"), CAIRN_OK);
    assert_int_equal(codec_compress(content, len, other, false, &zo, &zol, &sh, "other"),
                     CAIRN_OK);
    assert_false(zl == zol && memcmp(z, zo, zl) == 0);
    if (olen - OBJ_HDR != zl || memcmp(obj + OBJ_HDR, z, zl) != 0)
        fail_msg("%s: payload of %zu bytes is not the level %d frame (%zu bytes; level %d: "
                 "%zu)", name, olen - OBJ_HDR, level, zl, other, zol);
    free(z);
    free(zo);
    free(obj);
}

/* tu_record_bytes from seed: levels -1 and 3 give other frames of it. */
static uint8_t *records(uint64_t seed, size_t *len)
{
    uint8_t *b = tu_record_bytes(&seed, len);
    assert_non_null(b);
    return b;
}

/* n floats of a seeded random walk, as vectors are. */
static float *walk(uint64_t seed, size_t n)
{
    float *v = malloc(n * sizeof *v);
    assert_non_null(v);
    double x = 0.5;
    for (size_t i = 0; i < n; i++) {
        x += (tu_unit(&seed) - 0.5) * 0.02;
        v[i] = (float)x;
    }
    return v;
}

/* Puts content as object name of kind k and reads it back. */
static void put_get(repo *r, const char *name, enum repo_obj_kind k, const void *content,
                    size_t len)
{
    uint8_t sha[CODEC_SHA256_LEN];
    codec_sha256(content, len, sha);
    uint64_t stored = 0;
    cairn_status st = repo_obj_put(r, name, k, content, len, sha, false, &stored);
    if (st)
        fail_msg("put %s: %s", name, cairn_last_error());
    assert_true(stored > OBJ_HDR);
    uint8_t *back = NULL;
    size_t blen = 0;
    st = repo_obj_get(r, name, k, sha, &back, &blen);
    if (st)
        fail_msg("get %s: %s", name, cairn_last_error());
    assert_int_equal(blen, len);
    assert_memory_equal(back, content, len);
    free(back);
}

static const char NEW_REPO_JSON[] =
    "{\n"
    "  \"format\": \"cairn-repository\",\n"
    "  \"version\": 1,\n"
    "  \"db_id\": null,\n"
    "  \"wal_segment_shift\": 0,\n"
    "  \"compression\": {\n"
    "    \"algorithm\": \"zstd\",\n"
    "    \"level\": 3,\n"
    "    \"wal_level\": -1\n"
    "  },\n"
    "  \"cipher\": \"none\",\n"
    "  \"key_id\": null\n"
    "}\n";

/* repo.json as a build without "wal_level" wrote it, at level `level`. */
static void old_repo(const char *dir, int level, const char *extra)
{
    char text[512];
    snprintf(text, sizeof text,
             "{\"format\": \"cairn-repository\", \"version\": 1, \"db_id\": null, "
             "\"wal_segment_shift\": 0, \"compression\": {\"algorithm\": \"zstd\", "
             "\"level\": %d%s}, \"cipher\": \"none\", \"key_id\": null}\n",
             level, extra);
    mkdir(dir, 0755);
    touch(dir, "repo.json", text);
}

static void test_repo_levels_new(void **state)
{
    struct fx *f = *state;
    char d1[4200], d2[4200], d3[4200];
    snprintf(d1, sizeof d1, "%s/r-default", f->base);
    snprintf(d2, sizeof d2, "%s/r-given", f->base);
    snprintf(d3, sizeof d3, "%s/r-fastest", f->base);

    /* a new repository: level 3, WAL -1, both recorded */
    repo *r = open_repo(d1, true, 0, 0);
    assert_int_equal(r->level, 3);
    assert_int_equal(r->wal_level, -1);
    char *t = slurp(d1, "repo.json");
    assert_string_equal(t, NEW_REPO_JSON);
    free(t);
    /* WAL objects at -1, the others at 3; both read back */
    size_t len = 256 * 1024;
    uint8_t *v = records(0x3a11, &len);
    put_get(r, "wal/00000001/seg", REPO_OBJ_WAL, v, len);
    put_get(r, "blobs/pack", REPO_OBJ_PACK, v, len);
    put_get(r, "blobs/small", REPO_OBJ_SMALL, v, 4000);
    expect_level(d1, "wal/00000001/seg", v, len, -1, 3);
    expect_level(d1, "blobs/pack", v, len, 3, -1);
    expect_level(d1, "blobs/small", v, 4000, 3, -1);
    repo_close(r);
    /* reopened without options: repo.json's levels */
    r = open_repo(d1, false, 0, 0);
    assert_int_equal(r->level, 3);
    assert_int_equal(r->wal_level, -1);
    repo_close(r);

    /* levels given at creation are recorded */
    r = open_repo(d2, true, 7, -5);
    assert_int_equal(r->level, 7);
    assert_int_equal(r->wal_level, -5);
    repo_close(r);
    t = slurp(d2, "repo.json");
    assert_non_null(strstr(t, "\"level\": 7,\n"));
    assert_non_null(strstr(t, "\"wal_level\": -5\n"));
    r = open_repo(d2, false, 0, 0);
    assert_int_equal(r->level, 7);
    assert_int_equal(r->wal_level, -5);
    repo_close(r);
    /* options on an existing repository: this process's objects only */
    r = open_repo(d2, false, 2, 4);
    assert_int_equal(r->level, 2);
    assert_int_equal(r->wal_level, 4);
    put_get(r, "wal/00000001/seg", REPO_OBJ_WAL, v, len);
    expect_level(d2, "wal/00000001/seg", v, len, 4, -5);
    repo_close(r);
    r = open_repo(d2, false, 5, 0);
    assert_int_equal(r->level, 5);
    assert_int_equal(r->wal_level, -5); /* recorded: it does not follow --level */
    repo_close(r);
    char *t2 = slurp(d2, "repo.json");
    assert_string_equal(t2, t);
    free(t2);
    free(t);

    /* the fastest level: written, read back */
    r = open_repo(d3, true, 0, -7);
    put_get(r, "wal/00000001/seg", REPO_OBJ_WAL, v, len);
    expect_level(d3, "wal/00000001/seg", v, len, -7, -1);
    repo_close(r);
    free(v);
}

static void test_repo_levels_old(void **state)
{
    struct fx *f = *state;
    char d[4200];
    snprintf(d, sizeof d, "%s/r-old", f->base);
    old_repo(d, 6, "");
    char *before = slurp(d, "repo.json");
    /* no "wal_level": WAL follows the level, the option's if one is given */
    repo *r = open_repo(d, false, 0, 0);
    assert_int_equal(r->level, 6);
    assert_int_equal(r->wal_level, 6);
    size_t len = 256 * 1024;
    uint8_t *v = records(0x01d, &len);
    put_get(r, "wal/00000001/seg", REPO_OBJ_WAL, v, len);
    expect_level(d, "wal/00000001/seg", v, len, 6, -1);
    repo_close(r);
    r = open_repo(d, false, 9, 0);
    assert_int_equal(r->level, 9);
    assert_int_equal(r->wal_level, 9);
    repo_close(r);
    r = open_repo(d, false, 0, -2);
    assert_int_equal(r->level, 6);
    assert_int_equal(r->wal_level, -2);
    repo_close(r);
    /* an object an older build wrote (same format, its level) still reads */
    r = open_repo(d, false, 0, 0);
    uint8_t sha[CODEC_SHA256_LEN], *back = NULL;
    size_t blen = 0;
    codec_sha256(v, len, sha);
    assert_int_equal(repo_obj_get(r, "wal/00000001/seg", REPO_OBJ_WAL, sha, &back, &blen),
                     CAIRN_OK);
    assert_int_equal(blen, len);
    assert_memory_equal(back, v, blen);
    free(back);
    repo_close(r);
    expect_file(d, "repo.json", before);
    free(before);
    free(v);
}

/* A database with one complete WAL segment of float vectors (switched,
 * closed), for pitr_archive. */
static void make_db(const char *path)
{
    cairn_options o = tu_opts(CAIRN_DURABILITY_SYNC, CAIRN_IO_POSIX, 1);
    cairn_db *db = NULL;
    if (cairn_open(path, &o, &db))
        fail_msg("open %s: %s", path, cairn_last_error());
    assert_int_equal(cairn_collection_create(db, "v", 64, CAIRN_METRIC_L2), CAIRN_OK);
    float *vec = walk(0xdb, 100 * 64);
    cairn_point pts[100];
    for (int b = 0; b < 4; b++) {
        for (int i = 0; i < 100; i++)
            pts[i] = (cairn_point){.id = (uint64_t)(b * 100 + i), .vector = vec + i * 64};
        if (cairn_upsert_batch(db, "v", pts, 100, 64, NULL))
            fail_msg("upsert: %s", cairn_last_error());
    }
    free(vec);
    uint64_t at = 0;
    assert_int_equal(cairn_wal_switch(db, &at), CAIRN_OK);
    assert_true(at > 0);
    assert_int_equal(cairn_close(db), CAIRN_OK);
}

/* Archives db into the repository at dir (opened with the options given)
 * and checks every archived segment: readable, and its payload the frame
 * at `level` (not at `other`). */
static void archive_check(const char *db, const char *dir, int o_level, int o_wal, int level,
                          int other)
{
    repo *r = open_repo(dir, true, o_level, o_wal);
    struct pitr_archive_result res;
    if (pitr_archive(db, r, 0, &res))
        fail_msg("archive into %s: %s", dir, cairn_last_error());
    assert_true(res.archived >= 1);
    uint64_t *starts = NULL;
    size_t n = 0;
    assert_int_equal(repo_wal_list(r, res.timeline, &starts, &n), CAIRN_OK);
    assert_int_equal(n, res.archived);
    for (size_t i = 0; i < n; i++) {
        struct repo_seg_summary sum;
        assert_int_equal(repo_seg_summary_get(r, res.timeline, starts[i], &sum), CAIRN_OK);
        char name[128];
        repo_wal_obj_name(res.timeline, starts[i], false, name, sizeof name);
        uint8_t *seg = NULL;
        size_t len = 0;
        if (repo_obj_get(r, name, REPO_OBJ_WAL, sum.sha, &seg, &len))
            fail_msg("get %s: %s", name, cairn_last_error());
        assert_int_equal(len, CAIRN_WAL_SEGMENT_MIN);
        expect_level(dir, name, seg, len, level, other);
        free(seg);
        repo_seg_summary_free(&sum);
    }
    free(starts);
    repo_close(r);
}

static void test_repo_levels_archive(void **state)
{
    struct fx *f = *state;
    char db[4200], dn[4200], dold[4200], dopt[4200];
    snprintf(db, sizeof db, "%s/db", f->base);
    snprintf(dn, sizeof dn, "%s/r-new", f->base);
    snprintf(dold, sizeof dold, "%s/r-old", f->base);
    snprintf(dopt, sizeof dopt, "%s/r-opt", f->base);
    make_db(db);

    /* a new repository: segments at -1 */
    archive_check(db, dn, 0, 0, -1, 3);
    char *t = slurp(dn, "repo.json");
    assert_non_null(strstr(t, "\"level\": 3,\n    \"wal_level\": -1\n"));
    assert_non_null(strstr(t, "\"wal_segment_shift\": 21,"));
    free(t);

    /* an older repository (no "wal_level", level 6): segments at 6; the
     * rewrite that binds it keeps it without one */
    old_repo(dold, 6, "");
    archive_check(db, dold, 0, 0, 6, -1);
    t = slurp(dold, "repo.json");
    assert_null(strstr(t, "wal_level"));
    assert_non_null(strstr(t, "\"level\": 6\n"));
    assert_non_null(strstr(t, "\"wal_segment_shift\": 21,"));
    free(t);

    /* options given to the command that binds an existing repository:
     * its objects at them, repo.json keeps its own */
    repo_close(open_repo(dopt, true, 0, 0));
    archive_check(db, dopt, 9, 4, 4, -1);
    t = slurp(dopt, "repo.json");
    assert_non_null(strstr(t, "\"level\": 3,\n    \"wal_level\": -1\n"));
    assert_non_null(strstr(t, "\"wal_segment_shift\": 21,"));
    free(t);
}

static void test_repo_levels_bad(void **state)
{
    struct fx *f = *state;
    char d[4200];
    snprintf(d, sizeof d, "%s/r-bad", f->base);
    static const char *const bad[] = {"0",    "-8",    "20",  "100",   "-1000000",
                                      "\"fast\"", "\"-1\"", "1.5", "-1.0", "null",
                                      "true", "[]",    "{}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char extra[64];
        snprintf(extra, sizeof extra, ", \"wal_level\": %s", bad[i]);
        old_repo(d, 3, extra);
        char *before = tree_listing(d);
        char *text = slurp(d, "repo.json");
        for (int create = 0; create <= 1; create++) {
            struct repo_open_opts o = {.create = create != 0};
            repo *r = (repo *)1;
            assert_int_equal(repo_open(d, &o, &r), CAIRN_EFORMAT);
            assert_null(r);
            const char *m = cairn_last_error();
            if (!strstr(m, "\"wal_level\"") || !strstr(m, "-7..-1 or 1..19") || !strstr(m, d))
                fail_msg("wal_level %s: message \"%s\" does not name the field, its range and "
                         "the repository", bad[i], m);
        }
        char *after = tree_listing(d);
        assert_string_equal(after, before);
        expect_file(d, "repo.json", text);
        free(after);
        free(before);
        free(text);
    }
    /* the valid extremes are read */
    static const int good[] = {-7, -1, 1, 19};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char extra[64];
        snprintf(extra, sizeof extra, ", \"wal_level\": %d", good[i]);
        old_repo(d, 3, extra);
        repo *r = open_repo(d, false, 0, 0);
        assert_int_equal(r->wal_level, good[i]);
        assert_int_equal(r->level, 3);
        repo_close(r);
    }

    /* options out of range: refused before anything is made */
    char nd[4200];
    snprintf(nd, sizeof nd, "%s/r-none", f->base);
    static const int badopt[] = {-8, 20, -100};
    for (size_t i = 0; i < sizeof badopt / sizeof badopt[0]; i++) {
        struct repo_open_opts o = {.create = true, .wal_level = badopt[i]};
        repo *r = (repo *)1;
        assert_int_equal(repo_open(nd, &o, &r), CAIRN_EINVAL);
        assert_null(r);
        char want[64];
        snprintf(want, sizeof want, "WAL compression level %d is out of range (-7..-1 or 1..19)",
                 badopt[i]);
        if (!strstr(cairn_last_error(), want))
            fail_msg("message \"%s\" lacks \"%s\"", cairn_last_error(), want);
        assert_false(exists(nd));
    }
    /* the other level stays 1..19 */
    struct repo_open_opts o = {.create = true, .level = -1};
    repo *r = (repo *)1;
    assert_int_equal(repo_open(nd, &o, &r), CAIRN_EINVAL);
    assert_null(r);
    assert_false(exists(nd));
}

/* repo_wal_has, the archiver's one look per segment: true for an archived
 * segment, false (no error) for one never archived; a second archive skips
 * them all by it. A look the file system refuses (the timeline's directory
 * a symbolic link to itself: ELOOP) is an error naming the object, and the
 * archive pass stops on it, archiving nothing. */
static void test_wal_has(void **state)
{
    struct fx *f = *state;
    char db[4200], d[4200];
    snprintf(db, sizeof db, "%s/db-has", f->base);
    snprintf(d, sizeof d, "%s/r-has", f->base);
    make_db(db);
    repo *r = open_repo(d, true, 0, 0);
    struct pitr_archive_result res;
    if (pitr_archive(db, r, 0, &res))
        fail_msg("archive: %s", cairn_last_error());
    assert_true(res.archived >= 1);
    uint64_t *starts = NULL;
    size_t n = 0;
    assert_int_equal(repo_wal_list(r, res.timeline, &starts, &n), CAIRN_OK);
    assert_int_equal(n, res.archived);
    bool has = false;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(repo_wal_has(r, res.timeline, starts[i], &has), CAIRN_OK);
        assert_true(has);
    }
    uint64_t past = starts[n - 1] + 64 * (uint64_t)CAIRN_WAL_SEGMENT_MIN;
    assert_int_equal(repo_wal_has(r, res.timeline, past, &has), CAIRN_OK);
    assert_false(has);
    assert_int_equal(repo_wal_has(r, res.timeline + 1, starts[0], &has), CAIRN_OK);
    assert_false(has);
    struct pitr_archive_result again;
    assert_int_equal(pitr_archive(db, r, 0, &again), CAIRN_OK);
    assert_int_equal(again.archived, 0);
    assert_int_equal(again.already, n);

    char tl[4400], real[4410], name[16];
    snprintf(name, sizeof name, "%08X", res.timeline);
    snprintf(tl, sizeof tl, "%s/wal/%s", d, name);
    snprintf(real, sizeof real, "%s.real", tl);
    assert_int_equal(rename(tl, real), 0);
    assert_int_equal(symlink(name, tl), 0);
    cairn_status st = repo_wal_has(r, res.timeline, starts[0], &has);
    assert_true(st != CAIRN_OK && st != CAIRN_ENOTFOUND);
    char obj[128];
    repo_wal_obj_name(res.timeline, starts[0], true, obj, sizeof obj);
    if (!strstr(cairn_last_error(), obj) || !strstr(cairn_last_error(), "stat"))
        fail_msg("message \"%s\" does not name \"%s\"", cairn_last_error(), obj);
    struct pitr_archive_result bad;
    assert_int_equal(pitr_archive(db, r, 0, &bad), st);
    assert_int_equal(bad.archived, 0);
    assert_non_null(strstr(cairn_last_error(), obj));
    assert_int_equal(unlink(tl), 0);
    assert_int_equal(rename(real, tl), 0);
    assert_int_equal(repo_wal_has(r, res.timeline, starts[0], &has), CAIRN_OK);
    assert_true(has);
    free(starts);
    repo_close(r);
}

/* ---- binding a repository to its database (repo_bind) ----------------------- */

/* Two handles opened on one new repository (two processes backing up two
 * databases into it): the second bind sees the first one's repo.json, not
 * the unbound state its handle was opened with; a bind of the same
 * database through the stale handle adopts it. */
static void test_bind_stale(void **state)
{
    struct fx *f = *state;
    char d[4200];
    snprintf(d, sizeof d, "%s/r-bind", f->base);
    repo *a = open_repo(d, true, 0, 0), *b = open_repo(d, false, 0, 0);
    assert_int_equal(repo_bind(b, 0xb0b0, 21), CAIRN_OK);
    char *before = slurp(d, "repo.json");
    assert_non_null(strstr(before, "000000000000b0b0"));
    assert_int_equal(repo_bind(a, 0xa0a0, 21), CAIRN_EINVAL);
    const char *m = cairn_last_error();
    if (!strstr(m, "000000000000b0b0") || !strstr(m, "000000000000a0a0") || !strstr(m, d))
        fail_msg("message \"%s\" does not name both databases and the repository", m);
    expect_file(d, "repo.json", before);
    /* another segment size: refused the same way */
    assert_int_equal(repo_bind(a, 0xb0b0, 22), CAIRN_EINVAL);
    assert_non_null(strstr(cairn_last_error(), "2^21"));
    expect_file(d, "repo.json", before);
    assert_int_equal(repo_bind(a, 0xb0b0, 21), CAIRN_OK);
    assert_int_equal(a->db_id, 0xb0b0);
    expect_file(d, "repo.json", before);
    free(before);
    repo_close(a);
    repo_close(b);
    /* a third handle sees the bind at open */
    repo *c = open_repo(d, false, 0, 0);
    assert_int_equal(c->db_id, 0xb0b0);
    assert_int_equal(repo_bind(c, 0xa0a0, 21), CAIRN_EINVAL);
    repo_close(c);
}

/* A bind that cannot write repo.json fails with the I/O status, leaves it
 * unbound (the handle too: the next bind writes it); one that finds
 * repo.json damaged since the open refuses it and writes nothing; one
 * whose repository directory went away fails naming it. */
static void test_bind_fails(void **state)
{
    struct fx *f = *state;
    char d[4200], gone[4300];
    snprintf(d, sizeof d, "%s/r-bindf", f->base);
    repo *a = open_repo(d, true, 0, 0);
    char *before = slurp(d, "repo.json");
    struct cio_fault_plan p = {.ops = CIO_FOP_WRITE, .nth = 1, .kind = CIO_FAULT_ENOSPC};
    cio_fault_set(&p);
    cairn_status st = repo_bind(a, 0xa0a0, 21);
    cio_fault_set(NULL);
    assert_int_equal(st, CAIRN_ENOSPC);
    assert_non_null(strstr(cairn_last_error(), "repo.json"));
    assert_int_equal(a->db_id, 0);
    expect_file(d, "repo.json", before);
    /* repo.json damaged since the open: the bind reads it again and
     * refuses it, naming the field, and writes nothing */
    char bad[4400];
    snprintf(bad, sizeof bad, "%s/repo.json", d);
    static const char garbled[] = "{\"format\": \"cairn-repository\", \"version\": 1, "
                                  "\"db_id\": \"xyz\"}\n";
    assert_int_equal(tu_write_file(bad, garbled, sizeof garbled - 1), 0);
    st = repo_bind(a, 0xa0a0, 21);
    assert_int_equal(st, CAIRN_EFORMAT);
    if (!strstr(cairn_last_error(), "db_id") || !strstr(cairn_last_error(), d))
        fail_msg("message \"%s\" does not name the field and the repository",
                 cairn_last_error());
    expect_file(d, "repo.json", garbled);
    assert_int_equal(tu_write_file(bad, before, strlen(before)), 0);
    free(before);
    assert_int_equal(repo_bind(a, 0xa0a0, 21), CAIRN_OK);
    char *after = slurp(d, "repo.json");
    assert_non_null(strstr(after, "000000000000a0a0"));
    free(after);
    repo_close(a);

    repo *b = open_repo(d, false, 0, 0);
    b->db_id = 0; /* as a handle opened before the bind above */
    snprintf(gone, sizeof gone, "%s.gone", d);
    assert_int_equal(rename(d, gone), 0);
    st = repo_bind(b, 0xa0a0, 21);
    assert_int_equal(rename(gone, d), 0);
    assert_true(st != CAIRN_OK);
    if (!strstr(cairn_last_error(), d) || !strstr(cairn_last_error(), "directory"))
        fail_msg("message \"%s\" does not name the repository's directory", cairn_last_error());
    repo_close(b);
}

/* ---- buffers kept across gets (store_get_into, repo_obj_get_reuse) ------ */

/* One buffer through gets of objects of several sizes: grown only when
 * needed, the content and its NUL each time; a missing object and a bad
 * name leave the buffer the caller's (freed once, at the end). */
static void test_get_into(void **state)
{
    struct fx *f = *state;
    static uint8_t big[20000];
    pattern(big, sizeof big, 5);
    assert_int_equal(store_put(f->s, "k/a", big, 100), CAIRN_OK);
    assert_int_equal(store_put(f->s, "k/b", big + 7, 50), CAIRN_OK);
    assert_int_equal(store_put(f->s, "k/c", big, sizeof big), CAIRN_OK);
    uint8_t *buf = NULL;
    size_t cap = 0, len = 0;
    assert_int_equal(store_get_into(f->s, "k/a", &buf, &cap, &len), CAIRN_OK);
    assert_int_equal(len, 100);
    assert_true(cap >= 101);
    assert_memory_equal(buf, big, 100);
    assert_int_equal(buf[100], 0);
    uint8_t *was = buf;
    size_t wcap = cap;
    assert_int_equal(store_get_into(f->s, "k/b", &buf, &cap, &len), CAIRN_OK);
    assert_int_equal(len, 50);
    assert_ptr_equal(buf, was); /* it fitted: no new buffer */
    assert_int_equal(cap, wcap);
    assert_memory_equal(buf, big + 7, 50);
    assert_int_equal(buf[50], 0);
    assert_int_equal(store_get_into(f->s, "k/c", &buf, &cap, &len), CAIRN_OK);
    assert_int_equal(len, sizeof big);
    assert_true(cap > sizeof big);
    assert_memory_equal(buf, big, sizeof big);
    assert_int_equal(store_get_into(f->s, "k/none", &buf, &cap, &len), CAIRN_ENOTFOUND);
    assert_non_null(strstr(cairn_last_error(), "k/none"));
    assert_int_equal(len, 0);
    assert_int_equal(store_get_into(f->s, "../k/a", &buf, &cap, &len), CAIRN_EINVAL);
    assert_int_equal(store_get_into(f->s, "k/a", NULL, &cap, &len), CAIRN_EINVAL);
    assert_int_equal(store_get(f->s, "k/a", NULL, &len), CAIRN_EINVAL);
    assert_int_equal(store_get_into(f->s, "k/b", &buf, &cap, &len), CAIRN_OK);
    assert_memory_equal(buf, big + 7, 50);
    free(buf);
}

/* repo_obj_get_reuse: the content goes into the caller's image buffer
 * when it fits (handed over), else into a new one (the small buffer
 * stays the caller's); the object read buffer is kept; a damaged object
 * is refused as repo_obj_get refuses it, the caller's image buffer back
 * in ru. ASan checks that nothing leaks or is freed twice. */
/* A new repository <base>/<sub> (d: its path) holding one WAL object
 * `name` of about *len bytes of records (seeded): its content, *len and
 * sha set. */
static repo *repo_with_wal_obj(struct fx *f, const char *sub, char *d, size_t dn,
                               const char *name, uint64_t seed, size_t *len, uint8_t **v,
                               uint8_t sha[CODEC_SHA256_LEN])
{
    snprintf(d, dn, "%s/%s", f->base, sub);
    repo *r = open_repo(d, true, 0, 0);
    *v = records(seed, len);
    codec_sha256(*v, *len, sha);
    put_get(r, name, REPO_OBJ_WAL, *v, *len);
    return r;
}

static void test_obj_get_reuse(void **state)
{
    char d[4200];
    size_t len = 128 * 1024;
    uint8_t *v, sha[CODEC_SHA256_LEN];
    repo *r = repo_with_wal_obj(*state, "r-reuse", d, sizeof d, "wal/00000001/s1", 0x7e5e, &len,
                                &v, sha);
    struct repo_reuse ru = {0};
    uint8_t *img = malloc(len);
    assert_non_null(img);
    ru.img = img;
    ru.img_cap = len;
    uint8_t *data = NULL;
    size_t dl = 0;
    assert_int_equal(repo_obj_get_reuse(r, "wal/00000001/s1", REPO_OBJ_WAL, sha, &ru, &data,
                                        &dl), CAIRN_OK);
    assert_ptr_equal(data, img);
    assert_null(ru.img);
    assert_int_equal(ru.img_cap, 0);
    assert_int_equal(dl, len);
    assert_memory_equal(data, v, len);
    assert_non_null(ru.obj);
    uint8_t *objbuf = ru.obj;
    /* no image buffer: a new one; the read buffer is the same */
    uint8_t *d2 = NULL;
    assert_int_equal(repo_obj_get_reuse(r, "wal/00000001/s1", REPO_OBJ_WAL, sha, &ru, &d2, &dl),
                     CAIRN_OK);
    assert_true(d2 != data);
    assert_ptr_equal(ru.obj, objbuf);
    assert_memory_equal(d2, v, len);
    free(d2);
    /* too small: a new one, and the small buffer stays in ru */
    uint8_t *small = malloc(16);
    assert_non_null(small);
    ru.img = small;
    ru.img_cap = 16;
    assert_int_equal(repo_obj_get_reuse(r, "wal/00000001/s1", REPO_OBJ_WAL, sha, &ru, &d2, &dl),
                     CAIRN_OK);
    assert_true(d2 != small);
    assert_ptr_equal(ru.img, small);
    assert_memory_equal(d2, v, len);
    free(d2);
    free(small);
    /* damaged: refused, naming the object; the given buffer back in ru */
    ru.img = data;
    ru.img_cap = len;
    char obj[4400];
    snprintf(obj, sizeof obj, "%s/wal/00000001/s1", d);
    assert_int_equal(tu_flip_byte(obj, 200), 0);
    d2 = (uint8_t *)1;
    assert_int_equal(repo_obj_get_reuse(r, "wal/00000001/s1", REPO_OBJ_WAL, sha, &ru, &d2, &dl),
                     CAIRN_ECORRUPT);
    assert_null(d2);
    assert_int_equal(dl, 0);
    assert_non_null(strstr(cairn_last_error(), "wal/00000001/s1"));
    assert_ptr_equal(ru.img, data);
    assert_int_equal(ru.img_cap, len);
    /* missing: the store's refusal */
    assert_int_equal(repo_obj_get_reuse(r, "wal/00000001/none", REPO_OBJ_WAL, sha, &ru, &d2,
                                        &dl), CAIRN_ENOTFOUND);
    assert_ptr_equal(ru.img, data);
    repo_reuse_free(&ru);
    assert_null(ru.img);
    assert_null(ru.obj);
    free(v);
    repo_close(r);
}

/* ru.sha_only (a restore's fetch): the content's SHA-256 is the check.
 * zstd's own checksum damaged (the object's last byte): repo_obj_get,
 * which verify uses, refuses the object; a restore's get takes it, the
 * content being intact. A content byte damaged: both refuse it, naming
 * the object. */
static void test_obj_get_sha_only(void **state)
{
    char d[4200], obj[4400];
    size_t len = 64 * 1024;
    uint8_t *v, sha[CODEC_SHA256_LEN];
    repo *r = repo_with_wal_obj(*state, "r-shaonly", d, sizeof d, "wal/00000001/s2", 0x5a0e,
                                &len, &v, sha);
    snprintf(obj, sizeof obj, "%s/wal/00000001/s2", d);
    struct stat sb;
    assert_int_equal(stat(obj, &sb), 0);
    assert_int_equal(tu_flip_byte(obj, (size_t)sb.st_size - 1), 0);
    uint8_t *data = (uint8_t *)1;
    size_t dl = 1;
    assert_int_equal(repo_obj_get(r, "wal/00000001/s2", REPO_OBJ_WAL, sha, &data, &dl),
                     CAIRN_ECORRUPT);
    assert_null(data);
    assert_non_null(strstr(cairn_last_error(), "wal/00000001/s2"));
    assert_non_null(strstr(cairn_last_error(), "checksum"));
    struct repo_reuse ru = {.sha_only = true};
    assert_int_equal(repo_obj_get_reuse(r, "wal/00000001/s2", REPO_OBJ_WAL, sha, &ru, &data,
                                        &dl), CAIRN_OK);
    assert_int_equal(dl, len);
    assert_memory_equal(data, v, len);
    free(data);
    assert_int_equal(tu_flip_byte(obj, (size_t)sb.st_size - 1), 0); /* back */
    assert_int_equal(tu_flip_byte(obj, (size_t)sb.st_size / 2), 0);
    data = (uint8_t *)1;
    assert_int_equal(repo_obj_get_reuse(r, "wal/00000001/s2", REPO_OBJ_WAL, sha, &ru, &data,
                                        &dl), CAIRN_ECORRUPT);
    assert_null(data);
    assert_non_null(strstr(cairn_last_error(), "wal/00000001/s2"));
    assert_int_equal(repo_obj_get(r, "wal/00000001/s2", REPO_OBJ_WAL, sha, &data, &dl),
                     CAIRN_ECORRUPT);
    repo_reuse_free(&ru);
    free(v);
    repo_close(r);
}

/* History files in the repository are read as the engine reads them
 * (wal_history_parse): the lines of a good one come back; a malformed line,
 * or one that does not follow from the lines before it, is CAIRN_ECORRUPT
 * naming the object and the line; a timeline without one has no lines. */
static void test_history_objects(void **state)
{
    struct fx *f = *state;
    char d[4200];
    snprintf(d, sizeof d, "%s/r-hist", f->base);
    repo *r = open_repo(d, true, 0, 0);
    assert_int_equal(repo_bind(r, 0x1234, 24), CAIRN_OK); /* 16 MiB segments */
    struct wal_hist_line *l = NULL;
    size_t n = 9;
    assert_int_equal(repo_history_get(r, 1, &l, &n), CAIRN_OK);
    assert_int_equal(n, 0);
    assert_null(l);
    const char good[] = "1 0000000000A3F0C8 0000000001001000\n"
                        "2 0000000001400000 0000000002001000\n";
    assert_int_equal(repo_history_put(r, 3, good, strlen(good)), CAIRN_OK);
    assert_int_equal(repo_history_get(r, 3, &l, &n), CAIRN_OK);
    assert_int_equal(n, 2);
    assert_int_equal(l[0].parent, 1);
    assert_int_equal(l[0].switch_lsn, 0xA3F0C8);
    assert_int_equal(l[0].start_lsn, 0x1001000);
    assert_int_equal(l[1].parent, 2);
    free(l);
    static const struct {
        const char *text, *why;
    } bad[] = {
        {"1 0000000000A3F0C8 0000000001001000\n2 00000001400000 0000000002001000\n",
         "line 2 is not"},
        {"1 0000000000A3F0C8 0000000001001000", "line 1 is not"}, /* no newline */
        {"01 0000000000A3F0C8 0000000001001000\n", "line 1 is not"},
        {"2 0000000000A3F0C8 0000000001001000\n1 0000000001400000 0000000002001000\n",
         "does not follow"}, /* parents not increasing */
        {"1 0000000000A3F0C8 0000000001002000\n", "does not follow"}, /* not a data offset */
        {"1 0000000002000000 0000000001001000\n", "does not follow"}, /* starts before */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(repo_history_put(r, 5, bad[i].text, strlen(bad[i].text)), CAIRN_OK);
        l = (struct wal_hist_line *)1;
        assert_int_equal(repo_history_get(r, 5, &l, &n), CAIRN_ECORRUPT);
        assert_null(l);
        if (!strstr(cairn_last_error(), "history/00000005.history") ||
            !strstr(cairn_last_error(), bad[i].why))
            fail_msg("case %zu: %s", i, cairn_last_error());
    }
    repo_close(r);
}

/* The repository's JSON files are read with cjson_parse_object (not
 * json_loadb): a repo.json, WAL summary or manifest that is not one JSON
 * object (cut short, an array, a key twice) is CAIRN_EFORMAT naming the
 * file, the repository and where the text goes wrong; a good summary
 * reads back as it was put. */
static void test_json_not_json(void **state)
{
    struct fx *f = *state;
    char d[4200];
    snprintf(d, sizeof d, "%s/r-json", f->base);
    static const char *const bad[] = {
        "{\"format\": \"cairn-repository\", \"version\": ",
        "[{\"format\": \"cairn-repository\"}]",
        "{\"format\": \"cairn-repository\", \"format\": \"cairn-repository\"}",
    };
    static const char *const why[] = {"unexpected end of input", "not a JSON object",
                                      "duplicate key"};
    mkdir(d, 0755);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        touch(d, "repo.json", bad[i]);
        struct repo_open_opts o = {0};
        repo *r = (repo *)1;
        assert_int_equal(repo_open(d, &o, &r), CAIRN_EFORMAT);
        assert_null(r);
        const char *m = cairn_last_error();
        if (!strstr(m, "repo.json is not a JSON object") || !strstr(m, d) || !strstr(m, why[i]))
            fail_msg("repo.json case %zu: %s", i, m);
    }
    assert_int_equal(tu_rm_rf(d), 0);
    repo *r = open_repo(d, true, 0, 0);
    assert_int_equal(repo_bind(r, 0x1234, 24), CAIRN_OK);

    struct repo_seg_summary s = {.timeline = 1, .start = 0, .end_lsn = 4096, .records = 3,
                                 .commits = 1, .min_txn = 7, .max_txn = 7};
    s.sha[0] = 0xab;
    s.first = s.last = (struct repo_commit_ref){.lsn = 64, .end = 128, .time_us = 5, .txn = 7};
    assert_int_equal(repo_seg_summary_put(r, &s), CAIRN_OK);
    struct repo_seg_summary got;
    assert_int_equal(repo_seg_summary_get(r, 1, 0, &got), CAIRN_OK);
    assert_int_equal(got.end_lsn, 4096);
    assert_int_equal(got.last.txn, 7);
    assert_int_equal(got.sha[0], 0xab);
    repo_seg_summary_free(&got);
    char name[128];
    repo_wal_obj_name(1, 0, true, name, sizeof name);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        touch(d, name, bad[i]);
        assert_int_equal(repo_seg_summary_get(r, 1, 0, &got), CAIRN_EFORMAT);
        const char *m = cairn_last_error();
        if (!strstr(m, name) || !strstr(m, d) || !strstr(m, "is not JSON") || !strstr(m, why[i]))
            fail_msg("summary case %zu: %s", i, m);
    }

    /* a manifest's own checksum holds, its text is not JSON */
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(repo_manifest_put(r, "m1", bad[i], strlen(bad[i])), CAIRN_OK);
        struct pitr_manifest man;
        memset(&man, 0, sizeof man);
        assert_int_equal(pitr_manifest_load(r, "m1", &man), CAIRN_EFORMAT);
        const char *m = cairn_last_error();
        if (!strstr(m, "manifest of backup \"m1\"") || !strstr(m, "is not JSON") ||
            !strstr(m, d) || !strstr(m, why[i]))
            fail_msg("manifest case %zu: %s", i, m);
        pitr_manifest_free(&man);
    }
    repo_close(r);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void)
{
    tu_quiet_log();
    const struct CMUnitTest tests[] = {
        T(test_roundtrip),       T(test_nested),          T(test_replace),
        T(test_list),            T(test_tmp_files),       T(test_bad_names),
        T(test_open),            T(test_fault_put_sequence), T(test_fault_absorbed),
        T(test_fault_get_del),   T(test_crash_put),       T(test_crash_del),
        T(test_repo_levels_new), T(test_repo_levels_old), T(test_repo_levels_archive),
        T(test_repo_levels_bad), T(test_get_into),        T(test_obj_get_reuse),
        T(test_obj_get_sha_only), T(test_wal_has),        T(test_bind_stale),
        T(test_bind_fails),       T(test_history_objects), T(test_json_not_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
