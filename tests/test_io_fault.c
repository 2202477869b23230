/*
 * test_io_fault.c — the fault seam of common/io.c, on both backends: every
 * injected failure surfaces as the right status and message, short writes
 * and EAGAIN/EINTR are absorbed into complete writes, a failed sync is never
 * retried, and the composite file operations clean up after a failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cairn.h"
#include "common/err.h"
#include "common/io.h"

#include "testutil.h"

static char tmpdir[4096];
static int name_seq;

struct fx {
    cairn_io_backend backend;
    cio *c;
    char path[4300];
    int fd;
};

static int group_setup(void **state)
{
    (void)state;
    if (tu_tmpbase(tmpdir, sizeof tmpdir, "io_fault") != 0) {
        fprintf(stderr, "io_fault: temporary directory: %s\n", strerror(errno));
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    cio_fault_set(NULL);
    tu_rm_rf(tmpdir);
    return 0;
}

/* Per test: a context of the backend named by the prestate and a fresh
 * empty file. */
static int fx_setup(void **state)
{
    cairn_io_backend want = (cairn_io_backend)(intptr_t)*state;
    struct fx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    f->backend = want;
    f->fd = -1;
    snprintf(f->path, sizeof f->path, "%s/f%03d", tmpdir, ++name_seq);
    if (want == CAIRN_IO_URING && !cio_uring_available()) {
        *state = f; /* the test skips */
        return 0;
    }
    if (cio_ctx_open(&f->c, want, 8) != CAIRN_OK)
        return -1;
    if (cfs_open(f->path, O_RDWR | O_CREAT | O_TRUNC, 0644, &f->fd) != CAIRN_OK)
        return -1;
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;
    cio_fault_set(NULL);
    if (f) {
        if (f->fd >= 0)
            close(f->fd);
        cio_ctx_close(f->c);
        free(f);
    }
    return 0;
}

static struct fx *fx_get(void **state)
{
    struct fx *f = *state;
    if (!f->c)
        skip();
    return f;
}

static void plan(unsigned ops, uint64_t nth, enum cio_fault_kind kind, int persistent)
{
    struct cio_fault_plan p = {.ops = ops, .nth = nth, .kind = kind, .persistent = persistent};
    cio_fault_set(&p);
}

static size_t file_bytes(const char *path, unsigned char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    size_t n = 0;
    ssize_t r;
    while (n < cap && (r = read(fd, buf + n, cap - n)) > 0)
        n += (size_t)r;
    close(fd);
    return n;
}

static int exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

static void fill(unsigned char *b, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)(i * 31 + seed + (i >> 8));
}

static void expect_msg(const char *verb, const char *path, long long off, int e)
{
    char want[5000];
    if (off >= 0)
        snprintf(want, sizeof want, "could not %s file \"%s\" at offset %lld: %s", verb, path,
                 off, strerror(e));
    else
        snprintf(want, sizeof want, "could not %s file \"%s\": %s", verb, path, strerror(e));
    assert_string_equal(cairn_last_error(), want);
}

/* ---- writes ------------------------------------------------------------ */

static void write_fails(void **state, enum cio_fault_kind kind, cairn_status want, int e,
                        int with_sync)
{
    struct fx *f = fx_get(state);
    unsigned char buf[8192];
    fill(buf, sizeof buf, 1);
    assert_int_equal(cio_write(f->c, f->fd, buf, 4096, 0, f->path), CAIRN_OK);
    /* Counting both kinds proves the sync is not issued after a failed write. */
    plan(CIO_FOP_WRITE | CIO_FOP_SYNC, 1, kind, 0);
    cairn_status st = with_sync ? cio_write_sync(f->c, f->fd, buf, 4096, 4096, f->path)
                                : cio_write(f->c, f->fd, buf, 4096, 4096, f->path);
    assert_int_equal(st, want);
    expect_msg("write", f->path, 4096, e);
    assert_int_equal(cio_fault_count(), 1);
    assert_int_equal(cio_fault_fired(), 1);
    /* Nothing was written. */
    unsigned char back[10000];
    assert_int_equal(file_bytes(f->path, back, sizeof back), 4096);
    /* Once: the next write goes through. */
    assert_int_equal(cio_write_sync(f->c, f->fd, buf, 4096, 4096, f->path), CAIRN_OK);
    assert_int_equal(file_bytes(f->path, back, sizeof back), 8192);
    assert_memory_equal(back + 4096, buf, 4096);
}

static void test_write_eio(void **state)
{
    write_fails(state, CIO_FAULT_EIO, CAIRN_EIO, EIO, 0);
}
static void test_write_enospc(void **state)
{
    write_fails(state, CIO_FAULT_ENOSPC, CAIRN_ENOSPC, ENOSPC, 0);
}
static void test_write_sync_eio(void **state)
{
    write_fails(state, CIO_FAULT_EIO, CAIRN_EIO, EIO, 1);
}
static void test_write_sync_enospc(void **state)
{
    write_fails(state, CIO_FAULT_ENOSPC, CAIRN_ENOSPC, ENOSPC, 1);
}

/* SHORT: half is really written and the layer completes the rest. */
static void short_write(void **state, int persistent, int with_sync)
{
    struct fx *f = fx_get(state);
    enum { N = 100000 };
    static unsigned char buf[N], back[N + 2000];
    fill(buf, N, 2);
    plan(CIO_FOP_WRITE, 1, CIO_FAULT_SHORT, persistent);
    cairn_status st = with_sync ? cio_write_sync(f->c, f->fd, buf, N, 1000, f->path)
                                : cio_write(f->c, f->fd, buf, N, 1000, f->path);
    assert_int_equal(st, CAIRN_OK);
    if (persistent) {
        /* N/2, N/4 ... down to a last single byte, written whole. */
        assert_true(cio_fault_count() > 10);
        assert_int_equal(cio_fault_fired(), cio_fault_count());
    } else {
        assert_int_equal(cio_fault_count(), 2);
        assert_int_equal(cio_fault_fired(), 1);
    }
    assert_int_equal(file_bytes(f->path, back, sizeof back), N + 1000);
    assert_memory_equal(back + 1000, buf, N);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(back[i], 0);
}

static void test_short_once(void **state)
{
    short_write(state, 0, 0);
}
static void test_short_persistent(void **state)
{
    short_write(state, 1, 0);
}
static void test_short_sync_once(void **state)
{
    short_write(state, 0, 1);
}
static void test_short_sync_persistent(void **state)
{
    short_write(state, 1, 1);
}

static void test_short_one_byte(void **state)
{
    struct fx *f = fx_get(state);
    plan(CIO_FOP_WRITE, 1, CIO_FAULT_SHORT, 1);
    assert_int_equal(cio_write(f->c, f->fd, "z", 1, 0, f->path), CAIRN_OK);
    unsigned char back[4];
    assert_int_equal(file_bytes(f->path, back, sizeof back), 1);
    assert_int_equal(back[0], 'z');
}

/* SHORT keeps O_DIRECT requests aligned, so the resubmission is valid. */
static void test_short_direct(void **state)
{
    struct fx *f = fx_get(state);
    char p[4400];
    snprintf(p, sizeof p, "%s.direct", f->path);
    int fd = open(p, O_RDWR | O_CREAT | O_DIRECT, 0644);
    if (fd < 0)
        skip(); /* file system without O_DIRECT */
    enum { N = 65536 + 4096 };
    unsigned char *buf = aligned_alloc(4096, N), *back = aligned_alloc(4096, N);
    assert_non_null(buf);
    assert_non_null(back);
    fill(buf, N, 9);
    plan(CIO_FOP_WRITE | CIO_FOP_READ, 1, CIO_FAULT_SHORT, 1);
    assert_int_equal(cio_write_sync(f->c, fd, buf, N, 8192, p), CAIRN_OK);
    assert_int_equal(cio_write(f->c, fd, buf, 1024, 0, p), CAIRN_OK); /* 512-aligned */
    size_t got;
    assert_int_equal(cio_read(f->c, fd, back, N, 8192, p, &got), CAIRN_OK);
    assert_int_equal(got, N);
    assert_memory_equal(back, buf, N);
    assert_true(cio_fault_fired() > 5);
    close(fd);
    free(buf);
    free(back);
}

/* EAGAIN/EINTR: reported once, retried to success. */
static void retried(void **state, enum cio_fault_kind kind, unsigned ops, int op_sel)
{
    struct fx *f = fx_get(state);
    unsigned char buf[5000], back[6000];
    fill(buf, sizeof buf, 3);
    plan(ops, 1, kind, 0);
    cairn_status st;
    switch (op_sel) {
    case 0:
        st = cio_write(f->c, f->fd, buf, sizeof buf, 0, f->path);
        break;
    case 1:
        st = cio_write_sync(f->c, f->fd, buf, sizeof buf, 0, f->path);
        break;
    default:
        st = cio_write(f->c, f->fd, buf, sizeof buf, 0, f->path);
        assert_int_equal(st, CAIRN_OK);
        st = cio_fdatasync(f->c, f->fd, f->path);
        break;
    }
    assert_int_equal(st, CAIRN_OK);
    assert_int_equal(cio_fault_fired(), 1);
    assert_int_equal(cio_fault_count(), 2);
    assert_int_equal(file_bytes(f->path, back, sizeof back), sizeof buf);
    assert_memory_equal(back, buf, sizeof buf);
}

static void test_eagain_write(void **state)
{
    retried(state, CIO_FAULT_EAGAIN, CIO_FOP_WRITE, 0);
}
static void test_eintr_write(void **state)
{
    retried(state, CIO_FAULT_EINTR, CIO_FOP_WRITE, 0);
}
static void test_eagain_write_sync(void **state)
{
    retried(state, CIO_FAULT_EAGAIN, CIO_FOP_WRITE, 1);
}
static void test_eintr_sync(void **state)
{
    retried(state, CIO_FAULT_EINTR, CIO_FOP_SYNC, 2);
}
static void test_eintr_sync_linked(void **state)
{
    /* The sync half of a linked pair is interrupted: reissued alone. */
    retried(state, CIO_FAULT_EINTR, CIO_FOP_SYNC, 1);
}

static void test_eagain_persistent(void **state)
{
    struct fx *f = fx_get(state);
    plan(CIO_FOP_WRITE, 1, CIO_FAULT_EAGAIN, 1);
    assert_int_equal(cio_write(f->c, f->fd, "abc", 3, 10, f->path), CAIRN_EIO);
    assert_int_equal(cio_fault_count(), 1001); /* first try + 1000 retries */
    assert_non_null(strstr(cairn_last_error(), "at offset 10 after 1000 retries"));
    unsigned char back[4];
    assert_int_equal(file_bytes(f->path, back, sizeof back), 0);
}

/* ---- syncs: reported, never retried ------------------------------------ */

static void sync_fails(void **state, enum cio_fault_kind kind, cairn_status want, int e,
                       int which)
{
    struct fx *f = fx_get(state);
    unsigned char buf[3000], back[4000];
    fill(buf, sizeof buf, 4);
    plan(CIO_FOP_SYNC, 1, kind, 0);
    cairn_status st;
    const char *verb = "fdatasync";
    switch (which) {
    case 0:
        st = cio_fdatasync(f->c, f->fd, f->path);
        break;
    case 1:
        st = cio_fsync(f->c, f->fd, f->path);
        verb = "fsync";
        break;
    default:
        st = cio_write_sync(f->c, f->fd, buf, sizeof buf, 0, f->path);
        break;
    }
    assert_int_equal(st, want);
    expect_msg(verb, f->path, -1, e);
    /* Never retried: exactly one sync was attempted. */
    assert_int_equal(cio_fault_count(), 1);
    assert_int_equal(cio_fault_fired(), 1);
    if (which == 2) {
        /* The write itself went through; only its durability failed. */
        assert_int_equal(file_bytes(f->path, back, sizeof back), sizeof buf);
        assert_memory_equal(back, buf, sizeof buf);
    }
}

static void test_fdatasync_eio(void **state)
{
    sync_fails(state, CIO_FAULT_EIO, CAIRN_EIO, EIO, 0);
}
static void test_fsync_eio(void **state)
{
    sync_fails(state, CIO_FAULT_EIO, CAIRN_EIO, EIO, 1);
}
static void test_fdatasync_enospc(void **state)
{
    sync_fails(state, CIO_FAULT_ENOSPC, CAIRN_ENOSPC, ENOSPC, 0);
}
static void test_write_sync_sync_eio(void **state)
{
    sync_fails(state, CIO_FAULT_EIO, CAIRN_EIO, EIO, 2);
}
static void test_write_sync_sync_enospc(void **state)
{
    sync_fails(state, CIO_FAULT_ENOSPC, CAIRN_ENOSPC, ENOSPC, 2);
}

/* ---- once vs persistent, counters ------------------------------------- */

static void test_once_vs_persistent(void **state)
{
    struct fx *f = fx_get(state);
    for (int persistent = 0; persistent < 2; persistent++) {
        plan(CIO_FOP_WRITE, 2, CIO_FAULT_EIO, persistent);
        assert_int_equal(cio_write(f->c, f->fd, "a", 1, 0, f->path), CAIRN_OK);
        assert_int_equal(cio_write(f->c, f->fd, "b", 1, 1, f->path), CAIRN_EIO);
        expect_msg("write", f->path, 1, EIO);
        assert_int_equal(cio_write(f->c, f->fd, "c", 1, 2, f->path),
                         persistent ? CAIRN_EIO : CAIRN_OK);
        assert_int_equal(cio_write(f->c, f->fd, "d", 1, 3, f->path),
                         persistent ? CAIRN_EIO : CAIRN_OK);
        assert_int_equal(cio_fault_count(), 4);
        assert_int_equal(cio_fault_fired(), persistent ? 3 : 1);
    }
    /* Removing the plan stops injection and counting; counters stay. */
    cio_fault_set(NULL);
    assert_int_equal(cio_write(f->c, f->fd, "e", 1, 4, f->path), CAIRN_OK);
    assert_int_equal(cio_fault_count(), 4);
    assert_int_equal(cio_fault_fired(), 3);
}

static void test_counters_by_kind(void **state)
{
    struct fx *f = fx_get(state);
    char buf[100] = {0};
    size_t got;
    /* A plan that never fires just counts its kind of operation. */
    plan(CIO_FOP_SYNC, 1000, CIO_FAULT_EIO, 0);
    assert_int_equal(cio_write(f->c, f->fd, buf, 10, 0, f->path), CAIRN_OK);
    assert_int_equal(cio_read(f->c, f->fd, buf, 10, 0, f->path, &got), CAIRN_OK);
    assert_int_equal(cio_fault_count(), 0);
    assert_int_equal(cio_write_sync(f->c, f->fd, buf, 10, 0, f->path), CAIRN_OK);
    assert_int_equal(cio_fault_count(), 1);
    assert_int_equal(cio_fdatasync(f->c, f->fd, f->path), CAIRN_OK);
    assert_int_equal(cio_fsync(f->c, f->fd, f->path), CAIRN_OK);
    assert_int_equal(cfs_fsync_dir(tmpdir), CAIRN_OK);
    assert_int_equal(cio_fault_count(), 4);

    plan(CIO_FOP_READ, 1000, CIO_FAULT_EIO, 0);
    assert_int_equal(cio_read(f->c, f->fd, buf, 10, 0, f->path, &got), CAIRN_OK);
    assert_int_equal(cio_read(f->c, f->fd, buf, 10, 100, f->path, &got), CAIRN_OK);
    assert_int_equal(cio_fault_count(), 2);

    plan(CIO_FOP_META, 1000, CIO_FAULT_EIO, 0);
    int fd2;
    char p2[4400];
    snprintf(p2, sizeof p2, "%s.meta", f->path);
    assert_int_equal(cfs_open(f->path, O_RDONLY, 0, &fd2), CAIRN_OK); /* not counted */
    close(fd2);
    assert_int_equal(cio_fault_count(), 0);
    assert_int_equal(cfs_open(p2, O_RDWR | O_CREAT, 0644, &fd2), CAIRN_OK);
    assert_int_equal(cfs_ftruncate(fd2, 100, p2), CAIRN_OK);
    close(fd2);
    assert_int_equal(cfs_rename(p2, p2), CAIRN_OK);
    assert_int_equal(cfs_unlink(p2), CAIRN_OK);
    assert_int_equal(cio_fault_count(), 4);
    assert_int_equal(cio_fault_fired(), 0);
    /* SHORT does not apply to syncs: counted, not fired. */
    plan(CIO_FOP_SYNC, 1, CIO_FAULT_SHORT, 1);
    assert_int_equal(cio_fdatasync(f->c, f->fd, f->path), CAIRN_OK);
    assert_int_equal(cio_fault_count(), 1);
    assert_int_equal(cio_fault_fired(), 0);
}

/* ---- reads ------------------------------------------------------------- */

static void test_read_faults(void **state)
{
    struct fx *f = fx_get(state);
    enum { N = 50000 };
    static unsigned char buf[N], back[N];
    fill(buf, N, 5);
    assert_int_equal(cio_write(f->c, f->fd, buf, N, 0, f->path), CAIRN_OK);
    size_t got = 99;
    plan(CIO_FOP_READ, 1, CIO_FAULT_EIO, 0);
    assert_int_equal(cio_read(f->c, f->fd, back, 100, 500, f->path, &got), CAIRN_EIO);
    expect_msg("read", f->path, 500, EIO);
    plan(CIO_FOP_READ, 1, CIO_FAULT_SHORT, 1);
    assert_int_equal(cio_read(f->c, f->fd, back, N, 0, f->path, &got), CAIRN_OK);
    assert_int_equal(got, N);
    assert_memory_equal(back, buf, N);
    plan(CIO_FOP_READ, 1, CIO_FAULT_EINTR, 0);
    assert_int_equal(cio_read(f->c, f->fd, back, N, 0, f->path, &got), CAIRN_OK);
    assert_int_equal(got, N);
    assert_memory_equal(back, buf, N);
}

/* ---- file operations --------------------------------------------------- */

static void test_rename_fault(void **state)
{
    struct fx *f = fx_get(state);
    char to[4400];
    snprintf(to, sizeof to, "%s.renamed", f->path);
    plan(CIO_FOP_META, 1, CIO_FAULT_EIO, 0);
    assert_int_equal(cfs_rename(f->path, to), CAIRN_EIO);
    char want[9000];
    snprintf(want, sizeof want, "could not rename file \"%s\" to \"%s\": %s", f->path, to,
             strerror(EIO));
    assert_string_equal(cairn_last_error(), want);
    assert_true(exists(f->path));
    assert_false(exists(to));
    plan(CIO_FOP_META, 1, CIO_FAULT_EINTR, 0);
    assert_int_equal(cfs_rename(f->path, to), CAIRN_OK);
    assert_false(exists(f->path));
    assert_true(exists(to));
    assert_int_equal(cfs_rename(to, f->path), CAIRN_OK);
}

static void test_meta_faults(void **state)
{
    struct fx *f = fx_get(state);
    char p[4400];
    snprintf(p, sizeof p, "%s.d", f->path);
    int fd;
    plan(CIO_FOP_META, 1, CIO_FAULT_ENOSPC, 1);
    assert_int_equal(cfs_open(p, O_RDWR | O_CREAT, 0644, &fd), CAIRN_ENOSPC);
    assert_false(exists(p));
    assert_int_equal(cfs_mkdir(p, 0755), CAIRN_ENOSPC);
    assert_int_equal(cfs_ftruncate(f->fd, 10, f->path), CAIRN_ENOSPC);
    assert_int_equal(cfs_unlink(f->path), CAIRN_ENOSPC);
    assert_true(exists(f->path));
    int lfd;
    assert_int_equal(cfs_lock(p, &lfd), CAIRN_ENOSPC);
    plan(CIO_FOP_SYNC, 1, CIO_FAULT_EIO, 0);
    assert_int_equal(cfs_fsync_dir(tmpdir), CAIRN_EIO);
    char want[5000];
    snprintf(want, sizeof want, "could not fsync directory \"%s\": %s", tmpdir, strerror(EIO));
    assert_string_equal(cairn_last_error(), want);
}

static void check_zero_file(const char *path, uint64_t size, const char *head, size_t hl)
{
    unsigned char *b = malloc(size + 1);
    assert_non_null(b);
    assert_int_equal(file_bytes(path, b, size + 1), size);
    assert_memory_equal(b, head, hl);
    for (size_t i = hl; i < size; i++)
        if (b[i])
            fail_msg("byte %zu is %d", i, b[i]);
    free(b);
}

static void test_create_zeroed_faults(void **state)
{
    struct fx *f = fx_get(state);
    char seg[4400], tmp[4500];
    snprintf(seg, sizeof seg, "%s.seg", f->path);
    snprintf(tmp, sizeof tmp, "%s.tmp", seg);
    const char head[] = "HEAD";
    uint64_t size = (2u << 20) + 4096;
    struct {
        unsigned ops;
        uint64_t nth;
        enum cio_fault_kind kind;
        cairn_status want;
        const char *msg; /* substring of the message */
    } cases[] = {
        {CIO_FOP_META, 1, CIO_FAULT_EIO, CAIRN_EIO, "could not open file"},
        {CIO_FOP_WRITE, 1, CIO_FAULT_EIO, CAIRN_EIO, "at offset 0: "},      /* the head */
        {CIO_FOP_WRITE, 3, CIO_FAULT_ENOSPC, CAIRN_ENOSPC, "at offset 1048576: "},
        {CIO_FOP_SYNC, 1, CIO_FAULT_EIO, CAIRN_EIO, "could not fdatasync file"},
        {CIO_FOP_META, 2, CIO_FAULT_EIO, CAIRN_EIO, "could not rename file"},
        {CIO_FOP_SYNC, 2, CIO_FAULT_EIO, CAIRN_EIO, "could not fsync directory"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unlink(seg);
        plan(cases[i].ops, cases[i].nth, cases[i].kind, 0);
        cairn_status st = cfs_create_zeroed(f->c, seg, size, head, 4);
        if (st != cases[i].want)
            fail_msg("case %zu: got %s, want %s (%s)", i, cairn_status_name(st),
                     cairn_status_name(cases[i].want), cairn_last_error());
        if (!strstr(cairn_last_error(), cases[i].msg))
            fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, cairn_last_error(),
                     cases[i].msg);
        assert_int_equal(cio_fault_fired(), 1);
        assert_false(exists(tmp));
        /* Only a failure after the rename leaves the (complete) target. */
        if (i < 5)
            assert_false(exists(seg));
        else
            check_zero_file(seg, size, head, 4);
    }
    /* Short writes and EAGAIN everywhere still give a complete file. */
    plan(CIO_FOP_WRITE, 1, CIO_FAULT_SHORT, 1);
    assert_int_equal(cfs_create_zeroed(f->c, seg, size, head, 4), CAIRN_OK);
    check_zero_file(seg, size, head, 4);
    plan(CIO_FOP_WRITE | CIO_FOP_SYNC | CIO_FOP_META, 1, CIO_FAULT_EAGAIN, 0);
    assert_int_equal(cfs_create_zeroed(f->c, seg, size, head, 4), CAIRN_OK);
    check_zero_file(seg, size, head, 4);
}

static void test_durable_replace_faults(void **state)
{
    struct fx *f = fx_get(state);
    char p[4400], tmp[4500];
    snprintf(p, sizeof p, "%s.manifest", f->path);
    snprintf(tmp, sizeof tmp, "%s.tmp", p);
    assert_int_equal(cairn_durable_replace(p, "old", 3), CAIRN_OK);
    const unsigned ops[] = {CIO_FOP_WRITE, CIO_FOP_SYNC, CIO_FOP_META, CIO_FOP_META};
    const uint64_t nth[] = {1, 1, 1, 2};
    for (int i = 0; i < 4; i++) {
        plan(ops[i], nth[i], CIO_FAULT_EIO, 0);
        assert_int_equal(cairn_durable_replace(p, "new content", 11), CAIRN_EIO);
        assert_int_equal(cio_fault_fired(), 1);
        assert_false(exists(tmp));
        char *data;
        size_t len;
        cio_fault_set(NULL);
        assert_int_equal(cfs_read_file(p, &data, &len), CAIRN_OK);
        assert_string_equal(data, "old"); /* the old version survives */
        cairn_free(data);
    }
    plan(CIO_FOP_WRITE, 1, CIO_FAULT_SHORT, 1);
    assert_int_equal(cairn_durable_replace(p, "new content", 11), CAIRN_OK);
    char *data;
    size_t len;
    assert_int_equal(cfs_read_file(p, &data, &len), CAIRN_OK);
    assert_string_equal(data, "new content");
    cairn_free(data);
    /* cfs_read_file goes through the seam too. */
    plan(CIO_FOP_READ, 1, CIO_FAULT_EIO, 0);
    assert_int_equal(cfs_read_file(p, &data, &len), CAIRN_EIO);
    assert_null(data);
    assert_non_null(strstr(cairn_last_error(), "could not read file"));
}

/* ---- batches ------------------------------------------------------------ */

#define BREQ 20 /* more than the queue depth of 8: several submissions */
#define BLEN 3000

/* Writes BREQ requests of BLEN bytes at scattered offsets (in reverse
 * order), each filled with its index, with the given fault plan; returns the
 * batch's status. */
static cairn_status batch_write(struct fx *f, const struct cio_fault_plan *p,
                                unsigned char *bufs)
{
    struct cio_req q[BREQ];
    for (int i = 0; i < BREQ; i++) {
        memset(bufs + (size_t)i * BLEN, 'A' + i, BLEN);
        q[i] = (struct cio_req){.fd = f->fd, .buf = bufs + (size_t)i * BLEN, .len = BLEN,
                                .off = (uint64_t)(BREQ - 1 - i) * 2 * BLEN, .path = f->path};
    }
    cio_fault_set(p);
    cairn_status st = cio_write_batch(f->c, q, BREQ);
    cio_fault_set(NULL);
    for (int i = 0; i < BREQ && st == CAIRN_OK; i++)
        assert_int_equal(q[i].got, BLEN);
    return st;
}

/* Request i landed (1) or is all zeros (0) in the file. */
static int landed(struct fx *f, int i)
{
    unsigned char b[BLEN];
    assert_int_equal(pread(f->fd, b, BLEN, (off_t)(BREQ - 1 - i) * 2 * BLEN), BLEN);
    int all = 1, none = 1;
    for (int k = 0; k < BLEN; k++) {
        all &= b[k] == 'A' + i;
        none &= b[k] == 0;
    }
    assert_true(all || none);
    return all;
}

static void test_batch_write(void **state)
{
    struct fx *f = fx_get(state);
    static unsigned char bufs[BREQ * BLEN];
    /* no fault; then short writes and EAGAIN everywhere: all absorbed */
    assert_int_equal(batch_write(f, NULL, bufs), CAIRN_OK);
    for (int i = 0; i < BREQ; i++)
        assert_true(landed(f, i));
    struct cio_fault_plan p = {.ops = CIO_FOP_WRITE, .nth = 1, .kind = CIO_FAULT_SHORT,
                               .persistent = 1};
    assert_int_equal(ftruncate(f->fd, 0), 0);
    assert_int_equal(batch_write(f, &p, bufs), CAIRN_OK);
    for (int i = 0; i < BREQ; i++)
        assert_true(landed(f, i));
    p = (struct cio_fault_plan){.ops = CIO_FOP_WRITE, .nth = 3, .kind = CIO_FAULT_EAGAIN};
    assert_int_equal(ftruncate(f->fd, 0), 0);
    assert_int_equal(batch_write(f, &p, bufs), CAIRN_OK);
    for (int i = 0; i < BREQ; i++)
        assert_true(landed(f, i));
    /* EIO on request 11 (in the second submission): that one fails, named by
     * its offset; every other request is still written */
    p = (struct cio_fault_plan){.ops = CIO_FOP_WRITE, .nth = 12, .kind = CIO_FAULT_EIO};
    assert_int_equal(ftruncate(f->fd, 0), 0);
    assert_int_equal(batch_write(f, &p, bufs), CAIRN_EIO);
    char want[64];
    snprintf(want, sizeof want, "at offset %d", (BREQ - 1 - 11) * 2 * BLEN);
    if (!strstr(cairn_last_error(), want))
        fail_msg("want \"%s\" in: %s", want, cairn_last_error());
    assert_non_null(strstr(cairn_last_error(), f->path));
    for (int i = 0; i < BREQ; i++)
        assert_int_equal(landed(f, i), i != 11);
    /* ENOSPC from the 5th on: the first failure is reported */
    p = (struct cio_fault_plan){.ops = CIO_FOP_WRITE, .nth = 5, .kind = CIO_FAULT_ENOSPC,
                                .persistent = 1};
    assert_int_equal(ftruncate(f->fd, 0), 0);
    assert_int_equal(batch_write(f, &p, bufs), CAIRN_ENOSPC);
    snprintf(want, sizeof want, "at offset %d", (BREQ - 1 - 4) * 2 * BLEN);
    assert_non_null(strstr(cairn_last_error(), want));
    for (int i = 0; i < BREQ; i++)
        assert_int_equal(landed(f, i), i < 4);
}

static void check_read_pass(int pass, cairn_status st, const struct cio_req *q,
                            const unsigned char *in, const unsigned char *bufs);

static void test_batch_read(void **state)
{
    struct fx *f = fx_get(state);
    static unsigned char bufs[BREQ * BLEN], in[BREQ * BLEN];
    assert_int_equal(batch_write(f, NULL, bufs), CAIRN_OK);
    struct cio_req q[BREQ + 1];
    for (int pass = 0; pass < 4; pass++) {
        memset(in, 0, sizeof in);
        for (int i = 0; i < BREQ; i++)
            q[i] = (struct cio_req){.fd = f->fd, .buf = in + (size_t)i * BLEN, .len = BLEN,
                                    .off = (uint64_t)(BREQ - 1 - i) * 2 * BLEN,
                                    .path = f->path};
        /* one more, past the end of the file: got 0, not an error */
        static unsigned char past[16];
        q[BREQ] = (struct cio_req){.fd = f->fd, .buf = past, .len = sizeof past,
                                   .off = (uint64_t)BREQ * 2 * BLEN + 5000, .path = f->path};
        struct cio_fault_plan p[4] = {
            {0},
            {.ops = CIO_FOP_READ, .nth = 1, .kind = CIO_FAULT_SHORT, .persistent = 1},
            {.ops = CIO_FOP_READ, .nth = 2, .kind = CIO_FAULT_EINTR, .persistent = 0},
            {.ops = CIO_FOP_READ, .nth = 9, .kind = CIO_FAULT_EIO, .persistent = 0},
        };
        /* in batches of 7 (within the queue depth), each in two halves */
        cio_fault_set(pass ? &p[pass] : NULL);
        cairn_status st = CAIRN_OK;
        for (int b = 0; b < BREQ + 1; b += 7) {
            size_t k = (size_t)(BREQ + 1 - b < 7 ? BREQ + 1 - b : 7);
            assert_int_equal(cio_read_batch_begin(f->c, q + b, k), CAIRN_OK);
            cairn_status e = cio_read_batch_end(f->c, q + b, k);
            if (e && !st)
                st = e;
        }
        cio_fault_set(NULL);
        check_read_pass(pass, st, q, in, bufs);
    }
    /* one batch in flight at a time, within the queue depth */
    if (f->backend == CAIRN_IO_URING) {
        assert_int_equal(cio_read_batch_begin(f->c, q, 2), CAIRN_OK);
        assert_int_equal(cio_read_batch_begin(f->c, q + 2, 2), CAIRN_EINVAL);
        assert_int_equal(cio_read_batch_end(f->c, q, 3), CAIRN_EINVAL);
        assert_int_equal(cio_read_batch_end(f->c, q, 2), CAIRN_OK);
        assert_int_equal(cio_read_batch_begin(f->c, q, 9), CAIRN_EINVAL);
    }
}

static void check_read_pass(int pass, cairn_status st, const struct cio_req *q,
                            const unsigned char *in, const unsigned char *bufs)
{
    assert_int_equal(q[BREQ].got, 0);
    for (int i = 0; i < BREQ; i++) {
        if (pass == 3 && i == 8)
            continue;
        assert_int_equal(q[i].got, BLEN);
        assert_memory_equal(in + (size_t)i * BLEN, bufs + (size_t)i * BLEN, BLEN);
    }
    if (pass < 3) {
        assert_int_equal(st, CAIRN_OK);
    } else {
        assert_int_equal(st, CAIRN_EIO);
        assert_non_null(strstr(cairn_last_error(), "could not read file"));
    }
}

#define T(fn)                                                                      \
    cmocka_unit_test_prestate_setup_teardown(fn, fx_setup, fx_teardown,            \
                                             (void *)(intptr_t)CAIRN_IO_POSIX),    \
        cmocka_unit_test_prestate_setup_teardown(fn, fx_setup, fx_teardown,        \
                                                 (void *)(intptr_t)CAIRN_IO_URING)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_write_eio),
        T(test_write_enospc),
        T(test_write_sync_eio),
        T(test_write_sync_enospc),
        T(test_short_once),
        T(test_short_persistent),
        T(test_short_sync_once),
        T(test_short_sync_persistent),
        T(test_short_one_byte),
        T(test_short_direct),
        T(test_eagain_write),
        T(test_eintr_write),
        T(test_eagain_write_sync),
        T(test_eintr_sync),
        T(test_eintr_sync_linked),
        T(test_eagain_persistent),
        T(test_fdatasync_eio),
        T(test_fsync_eio),
        T(test_fdatasync_enospc),
        T(test_write_sync_sync_eio),
        T(test_write_sync_sync_enospc),
        T(test_once_vs_persistent),
        T(test_counters_by_kind),
        T(test_read_faults),
        T(test_rename_fault),
        T(test_meta_faults),
        T(test_create_zeroed_faults),
        T(test_durable_replace_faults),
        T(test_batch_write),
        T(test_batch_read),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
