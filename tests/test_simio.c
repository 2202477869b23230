/*
 * test_simio.c — the crash simulator of common/simio.c on its own: an
 * unsynced write kept, reverted or garbled (only its own bytes, or the whole
 * sector with torn_neighbours), a sync making writes durable, lost creates,
 * renames, unlinks and mkdirs (and what depends on them), truncation undone,
 * the op count and the crash at op N (in a forked child), determinism from
 * the seed, io_uring bypassed, and the fault seam still working beside it.
 *
 * Files written before cio_sim_start() count as durable; cio_sim_crash_apply()
 * applies a crash in this process and ends the simulation.
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
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "cairn.h"
#include "common/io.h"

#include "testutil.h"

#define FSIZE 16384

struct fx {
    char dir[4096];
    char stash[4200];
    char a[4200], b[4200];
    cio *c;
};

static int fx_setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    if (!f || tu_tmpbase(f->dir, sizeof f->dir, "simio") != 0)
        return -1;
    snprintf(f->stash, sizeof f->stash, "%s/stash", f->dir);
    snprintf(f->a, sizeof f->a, "%s/a", f->dir);
    snprintf(f->b, sizeof f->b, "%s/b", f->dir);
    if (mkdir(f->stash, 0755) != 0 || cio_ctx_open(&f->c, CAIRN_IO_POSIX, 0) != CAIRN_OK)
        return -1;
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;
    cio_sim_stop();
    cio_fault_set(NULL);
    cio_ctx_close(f->c);
    tu_rm_rf(f->dir);
    free(f);
    return 0;
}

static void pattern(unsigned char *b, size_t n, unsigned char seed)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)(seed + i * 7 + (i >> 9));
}

/* A durable file holding b (written before the simulation). */
static void put_file(const char *path, const unsigned char *b, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, b, n), (ssize_t)n);
    close(fd);
}

/* A durable file of n bytes of pattern(seed). */
static void make_file(const char *path, size_t n, unsigned char seed)
{
    unsigned char *b = malloc(n);
    assert_non_null(b);
    pattern(b, n, seed);
    put_file(path, b, n);
    free(b);
}

static unsigned char *slurp(const char *path, size_t *len)
{
    unsigned char *b = tu_read_file(path, len);
    if (!b)
        fail_msg("%s", tu_error());
    return b;
}

/* path holds n bytes of pattern(seed), with plen bytes of patch at poff. */
static void expect_file(const char *path, size_t n, unsigned char seed, size_t poff,
                        const void *patch, size_t plen)
{
    size_t len;
    unsigned char *b = slurp(path, &len), *want = malloc(n);
    assert_non_null(want);
    pattern(want, n, seed);
    if (plen)
        memcpy(want + poff, patch, plen);
    assert_int_equal(len, n);
    assert_memory_equal(b, want, n);
    free(b);
    free(want);
}

static int exists(const char *path)
{
    struct stat sb;
    return lstat(path, &sb) == 0;
}

static void start(struct fx *f, enum cio_sim_data_policy data, enum cio_sim_dir_policy dir,
                  unsigned sector, int torn)
{
    struct cio_sim_config cfg = {
        .seed = 42,
        .sector = sector,
        .stash_dir = f->stash,
        .exit_code = 75,
        .data = data,
        .dir = dir,
        .torn_neighbours = torn,
    };
    assert_int_equal(cio_sim_start(&cfg), CAIRN_OK);
}

static int open_rw(const char *path)
{
    int fd;
    assert_int_equal(cfs_open(path, O_RDWR, 0, &fd), CAIRN_OK);
    return fd;
}

/* Writes 100 bytes of pattern(9) at 1000 into durable a (pattern(1)),
 * crashes under the policy, returns a's bytes. */
static unsigned char *crash_one_write(struct fx *f, enum cio_sim_data_policy data,
                                      unsigned sector, int torn, size_t *len)
{
    make_file(f->a, FSIZE, 1);
    start(f, data, CIO_SIM_DIR_KEEP, sector, torn);
    int fd = open_rw(f->a);
    unsigned char w[100];
    pattern(w, sizeof w, 9);
    assert_int_equal(cio_write(f->c, fd, w, sizeof w, 1000, f->a), CAIRN_OK);
    /* Reads see the write before the crash (the real files are the cache). */
    unsigned char r[100];
    size_t got;
    assert_int_equal(cio_read(f->c, fd, r, sizeof r, 1000, f->a, &got), CAIRN_OK);
    assert_memory_equal(r, w, sizeof w);
    assert_int_equal(cio_sim_crash_apply(), CAIRN_OK);
    close(fd);
    return slurp(f->a, len);
}

static void test_write_kept(void **state)
{
    struct fx *f = *state;
    size_t len;
    free(crash_one_write(f, CIO_SIM_DATA_KEEP, 512, 0, &len));
    unsigned char w[100];
    pattern(w, sizeof w, 9);
    expect_file(f->a, FSIZE, 1, 1000, w, sizeof w);
}

static void test_write_reverted(void **state)
{
    struct fx *f = *state;
    size_t len;
    free(crash_one_write(f, CIO_SIM_DATA_REVERT, 512, 0, &len));
    expect_file(f->a, FSIZE, 1, 0, NULL, 0);
}

/* Garbage replaces the written bytes only: the rest of the sector holds. */
static void test_write_garbage(void **state)
{
    struct fx *f = *state;
    size_t len;
    unsigned char *b = crash_one_write(f, CIO_SIM_DATA_GARBAGE, 4096, 0, &len);
    unsigned char old[FSIZE], w[100];
    pattern(old, FSIZE, 1);
    pattern(w, sizeof w, 9);
    assert_int_equal(len, FSIZE);
    assert_memory_equal(b, old, 1000);
    assert_memory_equal(b + 1100, old + 1100, FSIZE - 1100);
    assert_memory_not_equal(b + 1000, old + 1000, 100);
    assert_memory_not_equal(b + 1000, w, 100);
    free(b);
}

/* torn_neighbours: the whole 512-byte sector [512, 1024) and [1024, 1536)
 * is garbage, durable bytes included; other sectors hold. */
static void test_write_garbage_torn_neighbours(void **state)
{
    struct fx *f = *state;
    size_t len;
    unsigned char *b = crash_one_write(f, CIO_SIM_DATA_GARBAGE, 512, 1, &len);
    unsigned char old[FSIZE];
    pattern(old, FSIZE, 1);
    assert_int_equal(len, FSIZE);
    assert_memory_equal(b, old, 512);
    assert_memory_equal(b + 1536, old + 1536, FSIZE - 1536);
    assert_memory_not_equal(b + 512, old + 512, 488); /* before the write */
    assert_memory_not_equal(b + 1100, old + 1100, 436); /* after it */
    free(b);
}

/* A write past the end: reverted, the file gets its durable size back. */
static void test_extend_reverted(void **state)
{
    struct fx *f = *state;
    make_file(f->a, 4096, 1);
    start(f, CIO_SIM_DATA_REVERT, CIO_SIM_DIR_KEEP, 0, 0);
    int fd = open_rw(f->a);
    unsigned char w[8192];
    pattern(w, sizeof w, 3);
    assert_int_equal(cio_write(f->c, fd, w, sizeof w, 2048, f->a), CAIRN_OK);
    assert_int_equal(cio_sim_crash_apply(), CAIRN_OK);
    close(fd);
    expect_file(f->a, 4096, 1, 0, NULL, 0);
}

/* fdatasync makes what was written before it durable, not what follows. */
static void test_sync_makes_durable(void **state)
{
    struct fx *f = *state;
    make_file(f->a, FSIZE, 1);
    start(f, CIO_SIM_DATA_REVERT, CIO_SIM_DIR_KEEP, 0, 0);
    int fd = open_rw(f->a);
    unsigned char w1[300], w2[300];
    pattern(w1, sizeof w1, 5);
    pattern(w2, sizeof w2, 6);
    assert_int_equal(cio_write_sync(f->c, fd, w1, sizeof w1, 0, f->a), CAIRN_OK);
    assert_int_equal(cio_write(f->c, fd, w2, sizeof w2, 8000, f->a), CAIRN_OK);
    assert_int_equal(cio_sim_crash_apply(), CAIRN_OK);
    close(fd);
    expect_file(f->a, FSIZE, 1, 0, w1, sizeof w1);
}

/* Several writes to one sector: with random fates, each sector ends at one
 * of its versions (durable, after write 1, after write 2) or garbage. */
static void test_sector_versions(void **state)
{
    struct fx *f = *state;
    unsigned char v0[512], v1[512], v2[512];
    pattern(v0, 512, 1);
    memcpy(v1, v0, 512);
    pattern(v1 + 100, 50, 20);
    memcpy(v2, v1, 512);
    pattern(v2 + 300, 50, 30);
    int seen[4] = {0};
    unsigned char img[512 * 16];
    for (int s = 0; s < 16; s++)
        memcpy(img + s * 512, v0, 512);
    for (uint64_t seed = 1; seed <= 200; seed++) {
        put_file(f->a, img, sizeof img);
        struct cio_sim_config cfg = {.seed = seed, .sector = 512, .stash_dir = f->stash};
        assert_int_equal(cio_sim_start(&cfg), CAIRN_OK);
        int fd = open_rw(f->a);
        for (int s = 0; s < 16; s++) {
            assert_int_equal(cio_write(f->c, fd, v1 + 100, 50, (uint64_t)s * 512 + 100, f->a),
                             CAIRN_OK);
            assert_int_equal(cio_write(f->c, fd, v2 + 300, 50, (uint64_t)s * 512 + 300, f->a),
                             CAIRN_OK);
        }
        assert_int_equal(cio_sim_crash_apply(), CAIRN_OK);
        close(fd);
        size_t len;
        unsigned char *b = slurp(f->a, &len);
        assert_int_equal(len, 512 * 16);
        for (int s = 0; s < 16; s++) {
            const unsigned char *p = b + s * 512;
            /* bytes no write touched never change */
            assert_memory_equal(p, v0, 100);
            assert_memory_equal(p + 150, v0 + 150, 150);
            assert_memory_equal(p + 350, v0 + 350, 162);
            int k = !memcmp(p, v0, 512)   ? 0
                    : !memcmp(p, v1, 512) ? 1
                    : !memcmp(p, v2, 512) ? 2
                                          : 3;
            seen[k]++;
        }
        free(b);
    }
    for (int k = 0; k < 4; k++)
        if (seen[k] == 0)
            fail_msg("outcome %d never seen (durable, after write 1, after both, garbage)", k);
}

/* The disk after a crash of one 16 KiB write, with this seed. */
static unsigned char *crash_image(struct fx *f, uint64_t seed)
{
    make_file(f->a, FSIZE, 1);
    struct cio_sim_config cfg = {.seed = seed, .stash_dir = f->stash};
    assert_int_equal(cio_sim_start(&cfg), CAIRN_OK);
    int fd = open_rw(f->a);
    unsigned char w[FSIZE];
    pattern(w, FSIZE, 2);
    assert_int_equal(cio_write(f->c, fd, w, FSIZE, 0, f->a), CAIRN_OK);
    assert_int_equal(cio_sim_crash_apply(), CAIRN_OK);
    close(fd);
    size_t len;
    unsigned char *b = slurp(f->a, &len);
    assert_int_equal(len, FSIZE);
    return b;
}

/* The same seed gives the same disk; other seeds, other ones. */
static void test_deterministic(void **state)
{
    struct fx *f = *state;
    unsigned char *a = crash_image(f, 7), *b = crash_image(f, 7);
    assert_memory_equal(a, b, FSIZE);
    int differ = 0;
    for (uint64_t seed = 8; seed < 16; seed++) {
        unsigned char *c = crash_image(f, seed);
        differ += memcmp(a, c, FSIZE) != 0;
        free(c);
    }
    assert_true(differ > 0);
    free(a);
    free(b);
}

/* ---- directory entries -------------------------------------------------- */

static void test_create_lost(void **state)
{
    struct fx *f = *state;
    start(f, CIO_SIM_DATA_KEEP, CIO_SIM_DIR_LOSE, 0, 0);
    int fd;
    assert_int_equal(cfs_open(f->a, O_RDWR | O_CREAT, 0644, &fd), CAIRN_OK);
    assert_int_equal(cio_write_sync(f->c, fd, "data", 4, 0, f->a), CAIRN_OK);
    assert_int_equal(cio_sim_crash_apply(), CAIRN_OK);
    close(fd);
    assert_false(exists(f->a)); /* synced data, but its name was never durable */
}

static void test_create_durable_after_dir_fsync(void **state)
{
    struct fx *f = *state;
    start(f, CIO_SIM_DATA_KEEP, CIO_SIM_DIR_LOSE, 0, 0);
    int fd;
    assert_int_equal(cfs_open(f->a, O_RDWR | O_CREAT, 0644, &fd), CAIRN_OK);
    assert_int_equal(cio_write_sync(f->c, fd, "data", 4, 0, f->a), CAIRN_OK);
    assert_int_equal(cfs_fsync_dir(f->dir), CAIRN_OK);
    assert_int_equal(cio_sim_crash_apply(), CAIRN_OK);
    close(fd);
    expect_file(f->a, 4, 0, 0, "data", 4);
}

static void test_rename_lost(void **state)
{
    struct fx *f = *state;
    make_file(f->a, 100, 1);
    make_file(f->b, 200, 2);
    start(f, CIO_SIM_DATA_KEEP, CIO_SIM_DIR_LOSE, 0, 0);
    assert_int_equal(cfs_rename(f->a, f->b), CAIRN_OK);
    assert_false(exists(f->a));
    assert_int_equal(cio_sim_crash_apply(), CAIRN_OK);
    expect_file(f->a, 100, 1, 0, NULL, 0); /* both back as they were */
    expect_file(f->b, 200, 2, 0, NULL, 0);
}

static void test_rename_kept(void **state)
{
    struct fx *f = *state;
    make_file(f->a, 100, 1);
    make_file(f->b, 200, 2);
    start(f, CIO_SIM_DATA_KEEP, CIO_SIM_DIR_KEEP, 0, 0);
    assert_int_equal(cfs_rename(f->a, f->b), CAIRN_OK);
    assert_int_equal(cio_sim_crash_apply(), CAIRN_OK);
    assert_false(exists(f->a));
    expect_file(f->b, 100, 1, 0, NULL, 0);
}

static void test_unlink_lost(void **state)
{
    struct fx *f = *state;
    make_file(f->a, 1000, 4);
    start(f, CIO_SIM_DATA_KEEP, CIO_SIM_DIR_LOSE, 0, 0);
    assert_int_equal(cfs_unlink(f->a), CAIRN_OK);
    assert_false(exists(f->a));
    assert_int_equal(cio_sim_crash_apply(), CAIRN_OK);
    expect_file(f->a, 1000, 4, 0, NULL, 0);
}

static void test_unlink_durable(void **state)
{
    struct fx *f = *state;
    make_file(f->a, 1000, 4);
    start(f, CIO_SIM_DATA_KEEP, CIO_SIM_DIR_LOSE, 0, 0);
    assert_int_equal(cfs_unlink(f->a), CAIRN_OK);
    assert_int_equal(cfs_fsync_dir(f->dir), CAIRN_OK);
    assert_int_equal(cio_sim_crash_apply(), CAIRN_OK);
    assert_false(exists(f->a));
}

/* A lost mkdir takes what was created inside it, durable there or not. */
static void test_mkdir_lost(void **state)
{
    struct fx *f = *state;
    char d[4300], p[4400];
    snprintf(d, sizeof d, "%s/sub", f->dir);
    snprintf(p, sizeof p, "%s/file", d);
    start(f, CIO_SIM_DATA_KEEP, CIO_SIM_DIR_LOSE, 0, 0);
    assert_int_equal(cfs_mkdir(d, 0755), CAIRN_OK);
    int fd;
    assert_int_equal(cfs_open(p, O_RDWR | O_CREAT, 0644, &fd), CAIRN_OK);
    close(fd);
    assert_int_equal(cfs_fsync_dir(d), CAIRN_OK);
    assert_int_equal(cio_sim_crash_apply(), CAIRN_OK);
    assert_false(exists(d));
}

/* create tmp + rename over the target, entries undurable, random fates:
 * the rename depends on the create, so the outcomes are the old target
 * (with or without the new tmp) or the new target, never a target and a
 * tmp at once when the rename was kept, nor a half of each. */
static void test_dependent_entries(void **state)
{
    struct fx *f = *state;
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp", f->b);
    int seen[3] = {0};
    for (uint64_t seed = 1; seed <= 64; seed++) {
        unlink(tmp);
        make_file(f->b, 10, 1); /* the old version, durable */
        struct cio_sim_config cfg = {.seed = seed, .stash_dir = f->stash};
        assert_int_equal(cio_sim_start(&cfg), CAIRN_OK);
        int fd;
        assert_int_equal(cfs_open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644, &fd), CAIRN_OK);
        assert_int_equal(cio_write_sync(f->c, fd, "new version", 11, 0, tmp), CAIRN_OK);
        close(fd);
        assert_int_equal(cfs_rename(tmp, f->b), CAIRN_OK);
        assert_int_equal(cio_sim_crash_apply(), CAIRN_OK);
        size_t len;
        unsigned char *b = slurp(f->b, &len);
        if (len == 10) {
            seen[exists(tmp) ? 1 : 0]++;
        } else {
            assert_int_equal(len, 11);
            assert_memory_equal(b, "new version", 11);
            assert_false(exists(tmp));
            seen[2]++;
        }
        free(b);
    }
    assert_true(seen[0] && seen[1] && seen[2]);
}

/* O_TRUNC and ftruncate are undone like writes. */
static void test_truncate_reverted(void **state)
{
    struct fx *f = *state;
    make_file(f->a, 5000, 1);
    make_file(f->b, 6000, 2);
    start(f, CIO_SIM_DATA_REVERT, CIO_SIM_DIR_KEEP, 0, 0);
    int fd;
    assert_int_equal(cfs_open(f->a, O_WRONLY | O_TRUNC, 0, &fd), CAIRN_OK);
    assert_int_equal(cio_write(f->c, fd, "x", 1, 0, f->a), CAIRN_OK);
    close(fd);
    fd = open_rw(f->b);
    assert_int_equal(cfs_ftruncate(fd, 10, f->b), CAIRN_OK);
    close(fd);
    assert_int_equal(cio_sim_crash_apply(), CAIRN_OK);
    expect_file(f->a, 5000, 1, 0, NULL, 0);
    expect_file(f->b, 6000, 2, 0, NULL, 0);
}

/* ---- counting and the crash at op N ------------------------------------ */

static void test_op_count(void **state)
{
    struct fx *f = *state;
    make_file(f->a, 100, 1);
    start(f, CIO_SIM_DATA_KEEP, CIO_SIM_DIR_KEEP, 0, 0);
    int fd;
    assert_int_equal(cfs_open(f->a, O_RDWR, 0, &fd), CAIRN_OK); /* not counted */
    char buf[10];
    size_t got;
    assert_int_equal(cio_read(f->c, fd, buf, 10, 0, f->a, &got), CAIRN_OK); /* not counted */
    assert_int_equal(cio_sim_ops(), 0);
    assert_int_equal(cio_write(f->c, fd, "x", 1, 0, f->a), CAIRN_OK);
    assert_int_equal(cio_sim_ops(), 1);
    assert_int_equal(cio_write_sync(f->c, fd, "y", 1, 0, f->a), CAIRN_OK);
    assert_int_equal(cio_sim_ops(), 3);
    assert_int_equal(cio_fsync(f->c, fd, f->a), CAIRN_OK);
    assert_int_equal(cfs_ftruncate(fd, 50, f->a), CAIRN_OK);
    close(fd);
    assert_int_equal(cfs_open(f->b, O_RDWR | O_CREAT, 0644, &fd), CAIRN_OK);
    close(fd);
    assert_int_equal(cfs_rename(f->b, f->a), CAIRN_OK);
    assert_int_equal(cfs_unlink(f->a), CAIRN_OK);
    char d[4300];
    snprintf(d, sizeof d, "%s/d", f->dir);
    assert_int_equal(cfs_mkdir(d, 0755), CAIRN_OK);
    assert_int_equal(cfs_fsync_dir(f->dir), CAIRN_OK);
    assert_int_equal(cio_sim_ops(), 10);
    /* the fault seam is asked first: an injected failure is not an op */
    struct cio_fault_plan p = {.ops = CIO_FOP_META, .nth = 1, .kind = CIO_FAULT_EIO};
    cio_fault_set(&p);
    assert_int_equal(cfs_unlink(d), CAIRN_EIO);
    cio_fault_set(NULL);
    assert_int_equal(cio_sim_ops(), 10);
    cio_sim_stop();
}

/* The power fails at op 3 (the fdatasync, which never completes): the
 * child exits with exit_code; both writes were unsynced, so REVERT loses
 * them; op 4 never runs. */
static void test_crash_at_op(void **state)
{
    struct fx *f = *state;
    make_file(f->a, 4096, 1);
    for (int data = CIO_SIM_DATA_KEEP; data <= CIO_SIM_DATA_REVERT; data++) {
        make_file(f->a, 4096, 1);
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            struct cio_sim_config cfg = {.seed = 1, .crash_at = 3, .stash_dir = f->stash,
                                         .exit_code = 75, .data = data};
            if (cio_sim_start(&cfg) != CAIRN_OK)
                _exit(1);
            int fd;
            if (cfs_open(f->a, O_RDWR, 0, &fd) != CAIRN_OK)
                _exit(1);
            cio_write(f->c, fd, "AAAA", 4, 0, f->a);
            cio_write(f->c, fd, "BBBB", 4, 2048, f->a);
            cio_fdatasync(f->c, fd, f->a);
            cio_write(f->c, fd, "CCCC", 4, 3000, f->a);
            _exit(2); /* not reached */
        }
        int wst;
        assert_int_equal(waitpid(pid, &wst, 0), pid);
        assert_true(WIFEXITED(wst));
        assert_int_equal(WEXITSTATUS(wst), 75);
        unsigned char want[4096];
        pattern(want, sizeof want, 1);
        if (data == CIO_SIM_DATA_KEEP) {
            memcpy(want, "AAAA", 4);
            memcpy(want + 2048, "BBBB", 4);
        }
        expect_file(f->a, 4096, 1, 0, want, sizeof want);
    }
}

/* An io_uring context opened before the simulation is bypassed too. */
static void test_uring_bypassed(void **state)
{
    struct fx *f = *state;
    if (!cio_uring_available())
        skip();
    cio *u;
    assert_int_equal(cio_ctx_open(&u, CAIRN_IO_URING, 8), CAIRN_OK);
    make_file(f->a, 4096, 1);
    start(f, CIO_SIM_DATA_REVERT, CIO_SIM_DIR_KEEP, 0, 0);
    int fd = open_rw(f->a);
    assert_int_equal(cio_write_sync(u, fd, "zz", 2, 10, f->a), CAIRN_OK);
    assert_int_equal(cio_write(u, fd, "qq", 2, 20, f->a), CAIRN_OK);
    assert_int_equal(cio_sim_ops(), 3);
    assert_int_equal(cio_sim_crash_apply(), CAIRN_OK);
    close(fd);
    cio_ctx_close(u);
    expect_file(f->a, 4096, 1, 10, "zz", 2);
}

static void test_start_twice(void **state)
{
    struct fx *f = *state;
    start(f, CIO_SIM_DATA_KEEP, CIO_SIM_DIR_KEEP, 0, 0);
    struct cio_sim_config cfg = {.stash_dir = f->stash};
    assert_int_equal(cio_sim_start(&cfg), CAIRN_EBUSY);
    cio_sim_stop();
    cfg.sector = 1000;
    assert_int_equal(cio_sim_start(&cfg), CAIRN_EINVAL);
    assert_int_equal(cio_sim_crash_apply(), CAIRN_EINVAL);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void)
{
    tu_quiet_log();
    const struct CMUnitTest tests[] = {
        T(test_write_kept),
        T(test_write_reverted),
        T(test_write_garbage),
        T(test_write_garbage_torn_neighbours),
        T(test_extend_reverted),
        T(test_sync_makes_durable),
        T(test_sector_versions),
        T(test_deterministic),
        T(test_create_lost),
        T(test_create_durable_after_dir_fsync),
        T(test_rename_lost),
        T(test_rename_kept),
        T(test_unlink_lost),
        T(test_unlink_durable),
        T(test_mkdir_lost),
        T(test_dependent_entries),
        T(test_truncate_reverted),
        T(test_op_count),
        T(test_crash_at_op),
        T(test_uring_bypassed),
        T(test_start_twice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
