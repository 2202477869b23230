/*
 * test_common.c — common/: crc32c, status table, per-thread messages,
 * logging, UTF-8 validation, I/O contexts on both backends, file helpers,
 * the directory lock.
 *
 * Random inputs come from a seeded generator; the seed is printed and can be
 * overridden with CAIRN_TEST_SEED.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "cairn.h"
#include "common/crc32c.h"
#include "common/err.h"
#include "common/io.h"
#include "common/log.h"
#include "common/util.h"

#include "testutil.h"

static char tmpdir[4096];
static uint64_t rng_state;

static uint64_t rng(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

static void path_in(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", tmpdir, name);
}

static int group_setup(void **state)
{
    (void)state;
    if (tu_tmpbase(tmpdir, sizeof tmpdir, "common") != 0) {
        fprintf(stderr, "common: temporary directory: %s\n", strerror(errno));
        return -1;
    }
    rng_state = tu_seed_env("CAIRN_TEST_SEED", 0x5eed0c0ffee1234ull);
    if (rng_state == 0)
        rng_state = 1;
    printf("# seed %llu (CAIRN_TEST_SEED to override)\n", (unsigned long long)rng_state);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    tu_rm_rf(tmpdir);
    return 0;
}

static size_t slurp(const char *path, unsigned char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, cap - n);
        assert_true(r >= 0);
        if (r == 0)
            break;
        n += (size_t)r;
        if (n == cap)
            break;
    }
    close(fd);
    return n;
}

static int exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* ---- crc32c ------------------------------------------------------------ */

static void test_crc_vectors(void **state)
{
    (void)state;
    unsigned char b[32];
    assert_int_equal(crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(crc32c_sw(0, "123456789", 9), 0xE3069283u);
    memset(b, 0, sizeof b);
    assert_int_equal(crc32c(0, b, 32), 0x8A9136AAu);
    memset(b, 0xFF, sizeof b);
    assert_int_equal(crc32c(0, b, 32), 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        b[i] = (unsigned char)i;
    assert_int_equal(crc32c(0, b, 32), 0x46DD794Eu);
    for (int i = 0; i < 32; i++)
        b[i] = (unsigned char)(31 - i);
    assert_int_equal(crc32c(0, b, 32), 0x113FDB5Cu);
    assert_int_equal(crc32c(0, NULL, 0), 0u);
    assert_int_equal(crc32c(0x12345678u, NULL, 0), 0x12345678u);
    /* Continuing a running CRC. */
    uint32_t a = crc32c(0, "1234", 4);
    assert_int_equal(crc32c(a, "56789", 5), 0xE3069283u);
    assert_int_equal(crc32c_sw(crc32c_sw(0, "12345", 5), "6789", 4), 0xE3069283u);
    if (crc32c_hw_available()) {
        assert_int_equal(crc32c_hw(0, "123456789", 9), 0xE3069283u);
        assert_int_equal(crc32c_hw(crc32c_hw(0, "1", 1), "23456789", 8), 0xE3069283u);
    }
}

static void test_crc_hw_matches_sw(void **state)
{
    (void)state;
    if (!crc32c_hw_available())
        skip();
    /* the three-stream build around its block sizes (3 x 128 and 3 x 1024
     * bytes), every alignment, and the check value */
    if (crc32c_hw3_available()) {
        assert_int_equal(crc32c_hw3(0, "123456789", 9), 0xE3069283u);
        static unsigned char blk[2 * 3 * 1024 + 64];
        for (size_t i = 0; i < sizeof blk; i++)
            blk[i] = (unsigned char)rng();
        const size_t lens[] = {383, 384, 385, 767, 768, 769, 3071, 3072, 3073, 3072 + 384,
                               6143, 6144, 6145};
        for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++)
            for (size_t a = 0; a < 16; a++)
                assert_int_equal(crc32c_hw3(0x1234u, blk + a, lens[l]),
                                 crc32c_sw(0x1234u, blk + a, lens[l]));
    }
    enum { MAX = 70000 };
    unsigned char *buf = malloc(MAX + 16);
    assert_non_null(buf);
    for (size_t i = 0; i < MAX + 16; i++)
        buf[i] = (unsigned char)rng();
    for (int it = 0; it < 2000; it++) {
        size_t align = rng() % 16;
        size_t len = it < 300 ? (size_t)it : rng() % MAX;
        uint32_t seed = it % 3 == 0 ? 0 : (uint32_t)rng();
        uint32_t s = crc32c_sw(seed, buf + align, len);
        uint32_t h = crc32c_hw(seed, buf + align, len);
        assert_int_equal(s, h);
        if (crc32c_hw3_available())
            assert_int_equal(crc32c_hw3(seed, buf + align, len), s);
        assert_int_equal(crc32c(seed, buf + align, len), s);
        /* chaining at a random split equals one pass */
        size_t cut = len ? rng() % (len + 1) : 0;
        assert_int_equal(crc32c_hw(crc32c_sw(seed, buf + align, cut), buf + align + cut,
                                   len - cut),
                         s);
        assert_int_equal(crc32c_sw(crc32c_hw(seed, buf + align, cut), buf + align + cut,
                                   len - cut),
                         s);
    }
    free(buf);
}

/* ---- status table and messages ---------------------------------------- */

static void test_status_table(void **state)
{
    (void)state;
#define CHECK_ROW(name, value, msg)                               \
    assert_int_equal((int)name, value);                           \
    assert_string_equal(cairn_status_name(name), #name);          \
    assert_string_equal(cairn_strerror(name), msg);
    CAIRN_ERRORS(CHECK_ROW)
#undef CHECK_ROW
    assert_string_equal(cairn_status_name((cairn_status)999), "CAIRN_UNKNOWN");
    assert_string_equal(cairn_status_name(CAIRN_STATUS_COUNT_), "CAIRN_UNKNOWN");
    assert_string_equal(cairn_status_name((cairn_status)-1), "CAIRN_UNKNOWN");
    assert_non_null(cairn_strerror((cairn_status)999));
    assert_string_equal(cairn_version(), CAIRN_VERSION_STRING);
    cairn_free(NULL);
    cairn_free(malloc(10));
}

static void test_cerr(void **state)
{
    (void)state;
    cerr_clear();
    assert_string_equal(cairn_last_error(), "");
    assert_int_equal(cerr_set(CAIRN_EDIM, "bad %s %d", "dim", 7), CAIRN_EDIM);
    assert_string_equal(cairn_last_error(), "bad dim 7");
    assert_int_equal(cerr_errno(ENOSPC, "could not write file \"%s\" at offset %d", "f", 8),
                     CAIRN_ENOSPC);
    char want[256];
    snprintf(want, sizeof want, "could not write file \"f\" at offset 8: %s", strerror(ENOSPC));
    assert_string_equal(cairn_last_error(), want);
    assert_int_equal(cerr_wrap(CAIRN_EIO, "could not open database \"%s\"", "db"), CAIRN_EIO);
    snprintf(want, sizeof want,
             "could not open database \"db\": could not write file \"f\" at offset 8: %s",
             strerror(ENOSPC));
    assert_string_equal(cairn_last_error(), want);
    assert_int_equal(cerr_from_errno(EIO), CAIRN_EIO);
    assert_int_equal(cerr_from_errno(ENOSPC), CAIRN_ENOSPC);
    assert_int_equal(cerr_from_errno(ENOMEM), CAIRN_ENOMEM);
    assert_int_equal(cerr_from_errno(EROFS), CAIRN_EIO);
    assert_int_equal(cerr_from_errno(ENOENT), CAIRN_ENOTFOUND);
    assert_int_equal(cerr_from_errno(EEXIST), CAIRN_EEXIST);
    /* A message longer than the buffer is truncated, not overflowed. */
    char big[3000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    cerr_set(CAIRN_EINVAL, "%s", big);
    assert_true(strlen(cairn_last_error()) < sizeof big - 1);
    assert_true(strlen(cairn_last_error()) > 500);
    cerr_wrap(CAIRN_EINVAL, "%s", big);
    cerr_errno(EIO, "%s", big);
    /* Arguments may point into the current message. */
    cerr_set(CAIRN_EIO, "inner");
    cerr_set(CAIRN_EIO, "outer: %s", cairn_last_error());
    assert_string_equal(cairn_last_error(), "outer: inner");
    cerr_wrap(CAIRN_EIO, "wrap %s", cairn_last_error());
    assert_string_equal(cairn_last_error(), "wrap outer: inner: outer: inner");
    cerr_clear();
    cerr_wrap(CAIRN_EIO, "alone");
    assert_string_equal(cairn_last_error(), "alone");
    cerr_clear();
    assert_string_equal(cairn_last_error(), "");
    /* A message kept across a cleanup that clears it (a public function)
     * and sets another: restored whole, with the status given back. */
    struct cerr_saved keep;
    cerr_set(CAIRN_ENOSPC, "could not write file \"%s\"", "w");
    cerr_save(&keep);
    cairn_pin_close(NULL); /* clears the message, as every public call */
    assert_string_equal(cairn_last_error(), "");
    cerr_set(CAIRN_EIO, "cleanup's own");
    assert_int_equal(cerr_restore(&keep, CAIRN_ENOSPC), CAIRN_ENOSPC);
    assert_string_equal(cairn_last_error(), "could not write file \"w\"");
    /* the longest message survives it too */
    cerr_set(CAIRN_EINVAL, "%s", big);
    char longest[CERR_MAX];
    snprintf(longest, sizeof longest, "%s", cairn_last_error());
    cerr_save(&keep);
    cerr_clear();
    cerr_restore(&keep, CAIRN_EINVAL);
    assert_string_equal(cairn_last_error(), longest);
    cerr_clear();
}

static void *thread_err(void *arg)
{
    (void)arg;
    /* A new thread starts with no message. */
    if (strcmp(cairn_last_error(), "") != 0)
        return (void *)1;
    cerr_set(CAIRN_EIO, "thread message");
    if (strcmp(cairn_last_error(), "thread message") != 0)
        return (void *)2;
    return NULL;
}

static void test_last_error_per_thread(void **state)
{
    (void)state;
    cerr_set(CAIRN_EINVAL, "main message");
    pthread_t t;
    void *ret = (void *)9;
    assert_int_equal(pthread_create(&t, NULL, thread_err, NULL), 0);
    assert_int_equal(pthread_join(t, &ret), 0);
    assert_null(ret);
    assert_string_equal(cairn_last_error(), "main message");
}

/* ---- logging ----------------------------------------------------------- */

struct log_cap {
    int n;
    cairn_log_level last_level;
    char last[256];
};

static void log_fn(void *ctx, cairn_log_level level, const char *msg)
{
    struct log_cap *cap = ctx;
    cap->n++;
    cap->last_level = level;
    snprintf(cap->last, sizeof cap->last, "%s", msg);
}

static void test_log(void **state)
{
    (void)state;
    struct log_cap cap = {0};
    cairn_set_log(log_fn, &cap, CAIRN_LOG_INFO);
    clog_debug("dropped %d", 1);
    assert_int_equal(cap.n, 0);
    clog_info("kept %d", 2);
    assert_int_equal(cap.n, 1);
    assert_int_equal(cap.last_level, CAIRN_LOG_INFO);
    assert_string_equal(cap.last, "kept 2");
    clog_error("bad %s", "thing");
    assert_int_equal(cap.n, 2);
    assert_string_equal(cap.last, "bad thing");
    cairn_set_log(log_fn, &cap, CAIRN_LOG_DEBUG);
    clog_debug("now kept");
    assert_int_equal(cap.n, 3);
    cairn_set_log(NULL, NULL, CAIRN_LOG_WARN); /* default: stderr */
    clog_info("not shown");
    assert_int_equal(cap.n, 3);
}

/* ---- UTF-8 ------------------------------------------------------------- */

static void test_utf8(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t n;
        int ok;
    } cases[] = {
        {"", 0, 1},
        {"plain ascii", 11, 1},
        {"caf\xc3\xa9", 5, 1},                  /* é */
        {"\xe2\x82\xac", 3, 1},                 /* € */
        {"\xf0\x9f\x98\x80", 4, 1},             /* U+1F600 */
        {"\xef\xbf\xbf", 3, 1},                 /* U+FFFF */
        {"\xf4\x8f\xbf\xbf", 4, 1},             /* U+10FFFF */
        {"\xed\x9f\xbf", 3, 1},                 /* U+D7FF */
        {"\xee\x80\x80", 3, 1},                 /* U+E000 */
        {"a\0b", 3, 1},                         /* NUL is UTF-8 */
        {"\x80", 1, 0},                         /* lone continuation */
        {"\xc3", 1, 0},                         /* truncated */
        {"\xe2\x82", 2, 0},                     /* truncated */
        {"\xf0\x9f\x98", 3, 0},                 /* truncated */
        {"\xc0\xaf", 2, 0},                     /* overlong '/' */
        {"\xc1\xbf", 2, 0},                     /* overlong */
        {"\xe0\x80\xaf", 3, 0},                 /* overlong */
        {"\xe0\x9f\xbf", 3, 0},                 /* overlong */
        {"\xf0\x80\x80\xaf", 4, 0},             /* overlong */
        {"\xf0\x8f\xbf\xbf", 4, 0},             /* overlong */
        {"\xed\xa0\x80", 3, 0},                 /* surrogate D800 */
        {"\xed\xbf\xbf", 3, 0},                 /* surrogate DFFF */
        {"\xf4\x90\x80\x80", 4, 0},             /* U+110000 */
        {"\xf5\x80\x80\x80", 4, 0},
        {"\xff", 1, 0},
        {"\xfe", 1, 0},
        {"\xc3\x28", 2, 0},                     /* bad continuation */
        {"\xe2\x28\xa1", 3, 0},
        {"\xe2\x82\x28", 3, 0},
        {"\xf0\x9f\x98\x28", 4, 0},
        {"ok\xc3\xa9ok\xe2\x82", 9, 0},         /* good then truncated */
    };
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(cases); i++) {
        int got = cairn_utf8_valid(cases[i].s, cases[i].n);
        if (got != cases[i].ok)
            fail_msg("utf8 case %zu: got %d want %d", i, got, cases[i].ok);
    }
    /* Only the first n bytes are looked at. */
    assert_true(cairn_utf8_valid("ab\xff", 2));
}

/* ---- I/O contexts ------------------------------------------------------ */

static cio *open_backend(cairn_io_backend want)
{
    cio *c = NULL;
    cairn_status st = cio_ctx_open(&c, want, 8);
    if (want == CAIRN_IO_URING && !cio_uring_available()) {
        assert_int_equal(st, CAIRN_ENOTSUP);
        assert_null(c);
        return NULL;
    }
    assert_int_equal(st, CAIRN_OK);
    assert_non_null(c);
    return c;
}

static void io_round_trip(cairn_io_backend want, const char *name)
{
    cio *c = open_backend(want);
    if (!c)
        skip();
    assert_string_equal(cio_name(c), want == CAIRN_IO_URING ? "io_uring" : "posix");
    char path[4200];
    path_in(path, sizeof path, name);
    int fd;
    assert_int_equal(cfs_open(path, O_RDWR | O_CREAT | O_TRUNC, 0644, &fd), CAIRN_OK);

    enum { N = 300000 };
    unsigned char *a = malloc(N), *b = malloc(N + 100);
    assert_non_null(a);
    assert_non_null(b);
    for (size_t i = 0; i < N; i++)
        a[i] = (unsigned char)rng();
    assert_int_equal(cio_write(c, fd, a, 5000, 0, path), CAIRN_OK);
    assert_int_equal(cio_write_sync(c, fd, a + 5000, 7001, 5000, path), CAIRN_OK);
    assert_int_equal(cio_write(c, fd, a + 12001, N - 12001, 12001, path), CAIRN_OK);
    assert_int_equal(cio_fdatasync(c, fd, path), CAIRN_OK);
    assert_int_equal(cio_fsync(c, fd, path), CAIRN_OK);
    assert_int_equal(cio_write_sync(c, fd, a, 0, 0, path), CAIRN_OK); /* sync only */

    size_t got = 0;
    assert_int_equal(cio_read(c, fd, b, N, 0, path, &got), CAIRN_OK);
    assert_int_equal(got, N);
    assert_memory_equal(a, b, N);
    /* Read at an offset. */
    assert_int_equal(cio_read(c, fd, b, 1000, 4321, path, &got), CAIRN_OK);
    assert_int_equal(got, 1000);
    assert_memory_equal(a + 4321, b, 1000);
    /* Read across end of file: short count. */
    assert_int_equal(cio_read(c, fd, b, N + 100, 0, path, &got), CAIRN_OK);
    assert_int_equal(got, N);
    assert_int_equal(cio_read(c, fd, b, 10, N - 4, path, &got), CAIRN_OK);
    assert_int_equal(got, 4);
    /* Read at or past end of file: zero. */
    assert_int_equal(cio_read(c, fd, b, 10, N, path, &got), CAIRN_OK);
    assert_int_equal(got, 0);
    assert_int_equal(cio_read(c, fd, b, 10, N + 100000, path, &got), CAIRN_OK);
    assert_int_equal(got, 0);
    /* Overwrite in the middle, write past the end (hole). */
    assert_int_equal(cio_write_sync(c, fd, "XYZ", 3, 100, path), CAIRN_OK);
    assert_int_equal(cio_write(c, fd, "END", 3, N + 50, path), CAIRN_OK);
    assert_int_equal(cio_read(c, fd, b, N + 100, 0, path, &got), CAIRN_OK);
    assert_int_equal(got, N + 53);
    assert_memory_equal(b + 100, "XYZ", 3);
    assert_memory_equal(b + N + 50, "END", 3);
    for (int i = 0; i < 50; i++)
        assert_int_equal(b[N + i], 0);

    /* Errors name the path and offset. */
    int rfd;
    assert_int_equal(cfs_open(path, O_RDONLY, 0, &rfd), CAIRN_OK);
    assert_int_equal(cio_write(c, rfd, "x", 1, 77, path), CAIRN_EIO);
    char want_msg[4400];
    snprintf(want_msg, sizeof want_msg, "could not write file \"%s\" at offset 77: %s", path,
             strerror(EBADF));
    assert_string_equal(cairn_last_error(), want_msg);
    assert_int_equal(cio_write_sync(c, rfd, "x", 1, 78, path), CAIRN_EIO);
    assert_non_null(strstr(cairn_last_error(), "at offset 78"));
    assert_int_equal(cfs_close(rfd, path), CAIRN_OK);
    /* The context stays usable after an error. */
    assert_int_equal(cio_write_sync(c, fd, "ok", 2, 0, path), CAIRN_OK);

    assert_int_equal(cfs_close(fd, path), CAIRN_OK);
    free(a);
    free(b);
    cio_ctx_close(c);
}

static void test_io_posix(void **state)
{
    (void)state;
    io_round_trip(CAIRN_IO_POSIX, "rt-posix");
}

static void test_io_uring(void **state)
{
    (void)state;
    io_round_trip(CAIRN_IO_URING, "rt-uring");
}

static void test_io_default(void **state)
{
    (void)state;
    cio *c = open_backend(CAIRN_IO_DEFAULT);
    assert_string_equal(cio_name(c), cio_uring_available() ? "io_uring" : "posix");
    cio_ctx_close(c);
    cio_ctx_close(NULL);
    assert_int_equal(cio_ctx_open(&c, (cairn_io_backend)42, 8), CAIRN_EINVAL);
    /* Depth 0 and 1 are raised to a usable depth. */
    assert_int_equal(cio_ctx_open(&c, CAIRN_IO_DEFAULT, 1), CAIRN_OK);
    char path[4200];
    path_in(path, sizeof path, "depth1");
    int fd;
    assert_int_equal(cfs_open(path, O_RDWR | O_CREAT | O_TRUNC, 0644, &fd), CAIRN_OK);
    assert_int_equal(cio_write_sync(c, fd, "abc", 3, 0, path), CAIRN_OK);
    cfs_close(fd, path);
    cio_ctx_close(c);
}

static void fallback_log(void *ctx, cairn_log_level level, const char *msg)
{
    struct log_cap *cap = ctx;
    if (level == CAIRN_LOG_WARN && strstr(msg, "io_uring unavailable") &&
        strstr(msg, "using posix I/O"))
        cap->n++;
}

/* In a child where io_uring is switched off: DEFAULT falls back with one
 * warning, URING fails with CAIRN_ENOTSUP. */
static void test_io_fallback(void **state)
{
    (void)state;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setenv("CAIRN_NO_URING", "1", 1);
        struct log_cap cap = {0};
        cairn_set_log(fallback_log, &cap, CAIRN_LOG_DEBUG);
        if (cio_uring_available())
            _exit(10);
        cio *c = NULL;
        if (cio_ctx_open(&c, CAIRN_IO_DEFAULT, 8) != CAIRN_OK || !c)
            _exit(11);
        if (strcmp(cio_name(c), "posix") != 0)
            _exit(12);
        cio_ctx_close(c);
        if (cio_ctx_open(&c, CAIRN_IO_DEFAULT, 8) != CAIRN_OK)
            _exit(13);
        cio_ctx_close(c);
        if (cap.n != 1)
            _exit(14); /* one warning per process */
        c = (cio *)1;
        if (cio_ctx_open(&c, CAIRN_IO_URING, 8) != CAIRN_ENOTSUP || c != NULL)
            _exit(15);
        if (!strstr(cairn_last_error(), "io_uring"))
            _exit(16);
        _exit(0);
    }
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFEXITED(ws));
    assert_int_equal(WEXITSTATUS(ws), 0);
}

/* ---- file helpers ------------------------------------------------------ */

static void test_durable_replace(void **state)
{
    (void)state;
    char path[4200], tmp[4300];
    path_in(path, sizeof path, "manifest");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    assert_int_equal(cairn_durable_replace(path, "first version", 13), CAIRN_OK);
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(cfs_read_file(path, &data, &len), CAIRN_OK);
    assert_int_equal(len, 13);
    assert_string_equal(data, "first version");
    cairn_free(data);
    assert_false(exists(tmp));
    /* Replacing with shorter content leaves no old bytes. */
    assert_int_equal(cairn_durable_replace(path, "v2", 2), CAIRN_OK);
    assert_int_equal(cfs_read_file(path, &data, &len), CAIRN_OK);
    assert_int_equal(len, 2);
    assert_string_equal(data, "v2");
    cairn_free(data);
    /* Empty content. */
    assert_int_equal(cairn_durable_replace(path, NULL, 0), CAIRN_OK);
    assert_int_equal(cfs_read_file(path, &data, &len), CAIRN_OK);
    assert_int_equal(len, 0);
    assert_string_equal(data, "");
    cairn_free(data);
    /* A large file read back whole. */
    enum { BIG = 3 << 20 };
    unsigned char *big = malloc(BIG);
    assert_non_null(big);
    for (size_t i = 0; i < BIG; i++)
        big[i] = (unsigned char)(i * 7 + (i >> 9));
    assert_int_equal(cairn_durable_replace(path, big, BIG), CAIRN_OK);
    assert_int_equal(cfs_read_file(path, &data, &len), CAIRN_OK);
    assert_int_equal(len, BIG);
    assert_memory_equal(data, big, BIG);
    assert_int_equal(data[BIG], '\0');
    cairn_free(data);
    free(big);
    /* Missing file / missing directory. */
    char missing[4200];
    path_in(missing, sizeof missing, "no-such-file");
    data = (char *)1;
    assert_int_equal(cfs_read_file(missing, &data, &len), CAIRN_ENOTFOUND);
    assert_null(data);
    assert_non_null(strstr(cairn_last_error(), missing));
    path_in(missing, sizeof missing, "no-such-dir/file");
    assert_int_equal(cairn_durable_replace(missing, "x", 1), CAIRN_ENOTFOUND);
    assert_non_null(strstr(cairn_last_error(), "no-such-dir/file.tmp"));
    assert_int_equal(cairn_durable_replace("", "x", 1), CAIRN_EINVAL);
}

static void check_zeroed(const char *path, uint64_t size, const void *head, size_t head_len)
{
    unsigned char *b = malloc(size + 10);
    assert_non_null(b);
    size_t n = slurp(path, b, size + 10);
    assert_int_equal(n, size);
    if (head_len)
        assert_memory_equal(b, head, head_len);
    for (size_t i = head_len; i < size; i++)
        if (b[i] != 0)
            fail_msg("byte %zu of %s is %d", i, path, b[i]);
    free(b);
}

static void test_create_zeroed(void **state)
{
    (void)state;
    char path[4200], tmp[4300];
    path_in(path, sizeof path, "seg.wal");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    for (int b = 0; b < 3; b++) {
        cio *c = NULL;
        if (b < 2) {
            c = open_backend(b == 0 ? CAIRN_IO_POSIX : CAIRN_IO_URING);
            if (!c)
                continue;
        }
        const char head[] = "CAIRNWAL header bytes";
        uint64_t size = (3u << 20) + 123;
        /* Leftover garbage where the temporary and the target go. */
        assert_int_equal(cairn_durable_replace(tmp, "garbage garbage", 15), CAIRN_OK);
        assert_int_equal(cfs_create_zeroed(c, path, size, head, sizeof head), CAIRN_OK);
        assert_false(exists(tmp));
        check_zeroed(path, size, head, sizeof head);
        /* No head; exactly one chunk; size 0. */
        assert_int_equal(cfs_create_zeroed(c, path, 1u << 20, NULL, 0), CAIRN_OK);
        check_zeroed(path, 1u << 20, NULL, 0);
        assert_int_equal(cfs_create_zeroed(c, path, 0, NULL, 0), CAIRN_OK);
        check_zeroed(path, 0, NULL, 0);
        /* Head fills the whole file. */
        assert_int_equal(cfs_create_zeroed(c, path, 4, "abcd", 4), CAIRN_OK);
        check_zeroed(path, 4, "abcd", 4);
        /* Head larger than the file. */
        assert_int_equal(cfs_create_zeroed(c, path, 3, "abcd", 4), CAIRN_EINVAL);
        assert_non_null(strstr(cairn_last_error(), path));
        cio_ctx_close(c);
    }
}

static void test_fs_ops(void **state)
{
    (void)state;
    char d[4200], a[4300], b[4300];
    path_in(d, sizeof d, "sub");
    assert_int_equal(cfs_mkdir(d, 0755), CAIRN_OK);
    assert_int_equal(cfs_mkdir(d, 0755), CAIRN_OK); /* EEXIST is OK */
    snprintf(a, sizeof a, "%s/a", d);
    snprintf(b, sizeof b, "%s/b", d);
    int fd;
    assert_int_equal(cfs_open(a, O_RDWR | O_CREAT | O_EXCL, 0644, &fd), CAIRN_OK);
    assert_int_equal(cfs_ftruncate(fd, 12345, a), CAIRN_OK);
    struct stat sb;
    assert_int_equal(fstat(fd, &sb), 0);
    assert_int_equal(sb.st_size, 12345);
    assert_int_equal(cfs_close(fd, a), CAIRN_OK);
    assert_int_equal(cfs_open(a, O_RDWR | O_CREAT | O_EXCL, 0644, &fd), CAIRN_EEXIST);
    assert_int_equal(fd, -1);
    assert_int_equal(cfs_mkdir(a, 0755), CAIRN_EEXIST); /* a file, not a dir */
    assert_int_equal(cfs_rename(a, b), CAIRN_OK);
    assert_false(exists(a));
    assert_true(exists(b));
    assert_int_equal(cfs_fsync_dir(d), CAIRN_OK);
    assert_int_equal(cfs_unlink(b), CAIRN_OK);
    assert_int_equal(cfs_unlink(b), CAIRN_ENOTFOUND);
    assert_non_null(strstr(cairn_last_error(), "could not remove file"));
    assert_int_equal(cfs_rename(a, b), CAIRN_ENOTFOUND);
    char want[9000];
    snprintf(want, sizeof want, "could not rename file \"%s\" to \"%s\": %s", a, b,
             strerror(ENOENT));
    assert_string_equal(cairn_last_error(), want);
    assert_int_equal(cfs_fsync_dir(a), CAIRN_ENOTFOUND);
    assert_int_equal(cfs_close(-1, "x"), CAIRN_OK);
}

/* ---- lock -------------------------------------------------------------- */

/* cfs_remove_tree: nested directories and files go; a symlink is removed,
 * not followed (what it points to stays). */
static void test_remove_tree(void **state)
{
    (void)state;
    char root[4200], sub[4300], f[4400], keep[4200], link[4300];
    path_in(root, sizeof root, "tree");
    path_in(keep, sizeof keep, "outside");
    snprintf(sub, sizeof sub, "%s/a/b", root);
    assert_int_equal(mkdir(root, 0755), 0);
    snprintf(f, sizeof f, "%s/a", root);
    assert_int_equal(mkdir(f, 0755), 0);
    assert_int_equal(mkdir(sub, 0755), 0);
    assert_int_equal(cairn_durable_replace(keep, "k", 1), CAIRN_OK);
    snprintf(f, sizeof f, "%s/file", sub);
    assert_int_equal(cairn_durable_replace(f, "x", 1), CAIRN_OK);
    snprintf(link, sizeof link, "%s/a/to-outside", root);
    assert_int_equal(symlink(keep, link), 0);
    cfs_remove_tree(root);
    struct stat sb;
    assert_int_equal(lstat(root, &sb), -1);
    assert_int_equal(stat(keep, &sb), 0);
    cfs_remove_tree(root); /* already gone: nothing happens */
    unlink(keep);
}

static void test_lock(void **state)
{
    (void)state;
    char path[4200];
    path_in(path, sizeof path, "LOCK");
    int fd1 = -1, fd2 = 7;
    assert_int_equal(cfs_lock(path, &fd1), CAIRN_OK);
    assert_true(fd1 >= 0);
    assert_int_equal(cfs_lock(path, &fd2), CAIRN_EBUSY);
    assert_int_equal(fd2, -1);
    assert_non_null(strstr(cairn_last_error(), path));

    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int f = -1;
        cairn_status st = cfs_lock(path, &f);
        _exit(st == CAIRN_EBUSY && f == -1 && strstr(cairn_last_error(), path) ? 0 : 1);
    }
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFEXITED(ws));
    assert_int_equal(WEXITSTATUS(ws), 0);

    cfs_unlock(fd1);
    cfs_unlock(-1);
    assert_int_equal(cfs_lock(path, &fd2), CAIRN_OK);

    /* After this process unlocks, a child can take it. */
    cfs_unlock(fd2);
    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int f = -1;
        _exit(cfs_lock(path, &f) == CAIRN_OK ? 0 : 1);
    }
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFEXITED(ws));
    assert_int_equal(WEXITSTATUS(ws), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc_vectors),
        cmocka_unit_test(test_crc_hw_matches_sw),
        cmocka_unit_test(test_status_table),
        cmocka_unit_test(test_cerr),
        cmocka_unit_test(test_last_error_per_thread),
        cmocka_unit_test(test_log),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_io_posix),
        cmocka_unit_test(test_io_uring),
        cmocka_unit_test(test_io_default),
        cmocka_unit_test(test_io_fallback),
        cmocka_unit_test(test_durable_replace),
        cmocka_unit_test(test_create_zeroed),
        cmocka_unit_test(test_fs_ops),
        cmocka_unit_test(test_lock),
        cmocka_unit_test(test_remove_tree),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
