/*
 * simio.c — the crash simulator (tests only): a power-loss model of the
 * file system under io.c. API: io.h (cio_sim_*); hooks called by io.c:
 * simio.h. Design notes and the recipe of a power-loss test:
 * common/README.md and tests/test_powerloss.c.
 *
 * MODEL
 *   While a simulation runs, io.c hands every system call that reads or
 *   changes a file to the hooks below, which run one at a time under one
 *   mutex. Each operation is done for real on the real files (so later reads
 *   see it: the real files play the page cache), after the simulator has
 *   recorded what it needs to undo it:
 *     write      the bytes it overwrites (captured through the simulator's own
 *                descriptor, opened from /proc/self/fd/N without O_DIRECT)
 *                and the file size before it;
 *     ftruncate  the bytes it cuts off (or the range it adds);
 *     open       O_CREAT of a new name: a create entry; O_TRUNC of an existing
 *                file: its old contents;
 *     unlink     a hard link of the file in stash_dir, so it can come back;
 *     rename     the same for a target it replaces;
 *     mkdir      a mkdir entry.
 *   Files are known by inode (st_dev, st_ino): a name can change, and the
 *   simulator holds a descriptor on every inode it has seen, so inode
 *   numbers are not reused while it runs. A file seen first by a write is
 *   taken as durable up to that moment.
 *
 *   O_DIRECT. A write or read on a descriptor opened with O_DIRECT must be
 *   aligned as the kernel wants it (offset, length and buffer address
 *   multiples of SIM_DIO_ALIGN, 512 bytes: the smallest logical block), or it
 *   fails with EINVAL as it would; it is then done through the simulator's
 *   own buffered descriptor, so that simulated runs stay in the page cache
 *   instead of sending every write to the device.
 *
 *   Durability. fdatasync/fsync of a file makes all its recorded writes and
 *   size changes durable (their undo records are dropped). An fsync of a
 *   directory makes the entry changes in it durable (create, mkdir, unlink,
 *   both names of a rename). Nothing else does: closing a file or syncing it
 *   does not make its name durable. Syncs are modeled, not issued (the real
 *   machine does not lose power), which also keeps the tests fast.
 *
 *   Operations are counted, 1-based, in the order the simulator runs them:
 *   each write system call (one per cio_write chunk; a resubmitted short
 *   write is another), fdatasync, fsync, open with O_CREAT or O_TRUNC,
 *   ftruncate, rename, unlink, mkdir, directory fsync. Reads and plain
 *   opens (cfs_open without O_CREAT/O_TRUNC) take the mutex but are not
 *   counted; closes, stat and readdir do neither. With several threads
 *   doing I/O the order is the order in which they took the mutex.
 *
 *   Crash at op N. The power fails while op N is in flight: a write or an
 *   entry change of op N is done and then treated like every other
 *   undurable change (so it may survive in whole, in part or not at all); a
 *   sync at op N never completes. Then, deterministically from
 *   (seed, N) (N = ops done + 1 for cio_sim_crash()):
 *     1. the sector size is picked (512 or 4096; or the one configured);
 *     2. files, in the order the simulator first saw them: each file with
 *        undurable changes is kept whole (1/4), reverted whole (1/4) or mixed
 *        (1/2). Mixed: its size becomes the durable or the current one, and
 *        each sector touched by an undurable change gets one fate: kept
 *        (35%), reverted to its durable bytes (30%), reverted to an
 *        intermediate version (10%: the changes to it up to a random one
 *        stay) or garbage (25%). A sector's fate applies to all the
 *        undurable bytes in it. Garbage replaces only the bytes that
 *        undurable writes touched ("powersafe overwrite": a device does not
 *        damage bytes outside a write), unless torn_neighbours is set: then
 *        the whole sector, durable bytes beside the write included.
 *        Reverted bytes beyond the size a file had before a write read as
 *        zeros (a hole). With atomic_sectors the random policy never draws
 *        garbage (its share is reverted): a device that writes a sector
 *        whole or not at all.
 *     3. entry changes, oldest first: each undurable one is kept or lost
 *        (1/2 each), and it is lost whatever the draw if it depends on an
 *        earlier lost one: it names the same entry (directory inode + name),
 *        is about the same inode, or sits in a directory whose mkdir was
 *        lost. So a lost create also loses a later rename or unlink of that
 *        file; its data goes with it. Lost changes are undone newest first
 *        (create: unlink; mkdir: remove the tree; rename: back, and the
 *        replaced target returns; unlink: the file returns from stash_dir).
 *     4. _exit(exit_code), with the mutex held, so no other thread does
 *        any I/O through this layer after the crash began. Other threads
 *        keep running until the _exit, though, and can see the crash
 *        happen through system calls that bypass this layer (stat,
 *        readdir, open(2) called directly): a test reports from such a thread only
 *        after calling cio_sim_ops(), which blocks while a crash is applied.
 *   The data, size and entry policies can be forced (unit tests).
 *
 *   An internal failure of the simulator (a capture or an undo that cannot
 *   be done) prints "cio sim: ..." and abort()s: a test must not pass on a
 *   crash that was not simulated.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cairn.h"
#include "common/err.h"
#include "common/io.h"
#include "common/simio.h"

#define SIM_DIO_ALIGN 512u

int cio_sim_running;
static pthread_mutex_t sim_mu = PTHREAD_MUTEX_INITIALIZER;

/* One undurable change of a file's bytes or size: [off, off+len) was
 * changed; before it the file was old_size bytes and the range held old
 * (the part below old_size; the rest read as zeros). */
struct sim_undo {
    uint64_t off, len, old_size;
    unsigned char *old;
};

struct sim_file {
    dev_t dev;
    ino_t ino;
    int fd; /* the simulator's own, O_RDWR, never O_DIRECT */
    uint64_t durable_size;
    char *name; /* its latest name, for traces */
    struct sim_undo *u;
    size_t nu, capu;
};

enum { DOP_CREATE = 1, DOP_MKDIR, DOP_RENAME, DOP_UNLINK };
static const char *const dop_name[] = {"?", "create", "mkdir", "rename", "unlink"};

/* A directory entry: the directory's inode and the name in it. */
struct sim_name {
    dev_t ddev;
    ino_t dino;
    char *base;
    bool pending; /* the directory was not fsynced since */
};

struct sim_dop {
    int kind;
    char *path, *path2; /* rename: from, to */
    struct sim_name nm[2];
    int nnm;
    dev_t fdev; /* the file or directory the change is about */
    ino_t fino;
    bool replaced; /* rename over an existing file */
    dev_t rdev;
    ino_t rino;
    char *stash; /* unlink: the file; rename: the replaced target */
    bool lost;
};

static struct {
    struct cio_sim_config cfg;
    char *stash_dir;
    uint64_t ops, stash_seq;
    struct sim_file *f;
    size_t nf, capf;
    struct sim_dop *d;
    size_t nd, capd;
    char desc[600]; /* the op in flight, for the crash report */
} S;

/* ------------------------------------------------------------------------
 * Small helpers
 * ---------------------------------------------------------------------- */
__attribute__((format(printf, 1, 2), noreturn)) static void sim_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("cio sim: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

static void *sim_alloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        sim_fail("out of memory (%zu bytes)", n);
    return p;
}

static char *sim_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = sim_alloc(n);
    memcpy(p, s, n);
    return p;
}

/* Grows *v (elements of size sz) to hold one more; returns the new slot. */
static void *sim_push(void *pv, size_t *n, size_t *cap, size_t sz)
{
    void **v = pv;
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        void *nv = realloc(*v, nc * sz);
        if (!nv)
            sim_fail("out of memory");
        *v = nv;
        *cap = nc;
    }
    unsigned char *slot = (unsigned char *)*v + (*n)++ * sz;
    memset(slot, 0, sz);
    return slot;
}

static uint64_t sim_rand(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static const char *pname(const char *p)
{
    return p ? p : "(unnamed)";
}

static void full_pread(int fd, unsigned char *b, size_t n, uint64_t off, const char *what)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, b + got, n - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            sim_fail("could not read \"%s\" at offset %" PRIu64 ": %s", what, off + got,
                     strerror(errno));
        if (r == 0) { /* shorter than we thought: the rest reads as zeros */
            memset(b + got, 0, n - got);
            return;
        }
        got += (size_t)r;
    }
}

static void full_pwrite(int fd, const unsigned char *b, size_t n, uint64_t off,
                        const char *what)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = pwrite(fd, b + done, n - done, (off_t)(off + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            sim_fail("could not write \"%s\" at offset %" PRIu64 ": %s", what, off + done,
                     r < 0 ? strerror(errno) : "no progress");
        done += (size_t)r;
    }
}

static uint64_t fd_size(int fd, const char *what)
{
    struct stat sb;
    if (fstat(fd, &sb) != 0)
        sim_fail("could not stat \"%s\": %s", what, strerror(errno));
    return (uint64_t)sb.st_size;
}

/* ------------------------------------------------------------------------
 * Files and their undo records
 * ---------------------------------------------------------------------- */
static struct sim_file *file_find(dev_t dev, ino_t ino)
{
    for (size_t i = 0; i < S.nf; i++)
        if (S.f[i].dev == dev && S.f[i].ino == ino)
            return &S.f[i];
    return NULL;
}

/* The file open as fd, registered now if new. A new file's durable size is
 * its size now, or durable_size when that is not UINT64_MAX. NULL when fd
 * is not a regular file. */
static struct sim_file *file_of_fd(int fd, const char *path, uint64_t durable_size)
{
    struct stat sb;
    if (fstat(fd, &sb) != 0)
        return NULL;
    if (!S_ISREG(sb.st_mode))
        return NULL;
    struct sim_file *f = file_find(sb.st_dev, sb.st_ino);
    if (f)
        return f;
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    int own = open(proc, O_RDWR | O_CLOEXEC);
    if (own < 0)
        sim_fail("could not reopen \"%s\" (%s): %s", pname(path), proc, strerror(errno));
    f = sim_push(&S.f, &S.nf, &S.capf, sizeof *S.f);
    f->dev = sb.st_dev;
    f->ino = sb.st_ino;
    f->fd = own;
    f->durable_size = durable_size != UINT64_MAX ? durable_size : (uint64_t)sb.st_size;
    f->name = sim_strdup(pname(path));
    return f;
}

/* Records that [off, off+len) of f is about to change while the file is
 * old_size bytes: captures the bytes below old_size. */
static void file_record(struct sim_file *f, uint64_t off, uint64_t len, uint64_t old_size)
{
    struct sim_undo *u = sim_push(&f->u, &f->nu, &f->capu, sizeof *f->u);
    u->off = off;
    u->len = len;
    u->old_size = old_size;
    uint64_t cap = off < old_size ? (old_size - off < len ? old_size - off : len) : 0;
    u->old = cap ? sim_alloc((size_t)cap) : NULL;
    if (cap)
        full_pread(f->fd, u->old, (size_t)cap, off, f->name);
}

static void file_durable(struct sim_file *f)
{
    for (size_t i = 0; i < f->nu; i++)
        free(f->u[i].old);
    f->nu = 0;
    f->durable_size = fd_size(f->fd, f->name);
}

/* ------------------------------------------------------------------------
 * Directory entries
 * ---------------------------------------------------------------------- */
static void name_of(const char *path, struct sim_name *nm)
{
    const char *slash = strrchr(path, '/');
    char *dir;
    if (!slash) {
        dir = sim_strdup(".");
    } else if (slash == path) {
        dir = sim_strdup("/");
    } else {
        dir = sim_alloc((size_t)(slash - path) + 1);
        memcpy(dir, path, (size_t)(slash - path));
        dir[slash - path] = '\0';
    }
    struct stat sb;
    if (stat(dir, &sb) != 0)
        sim_fail("could not stat directory \"%s\": %s", dir, strerror(errno));
    free(dir);
    nm->ddev = sb.st_dev;
    nm->dino = sb.st_ino;
    nm->base = sim_strdup(slash ? slash + 1 : path);
    nm->pending = true;
}

static struct sim_dop *dop_add(int kind, const char *path, const char *path2)
{
    struct sim_dop *d = sim_push(&S.d, &S.nd, &S.capd, sizeof *S.d);
    d->kind = kind;
    d->path = sim_strdup(path);
    name_of(path, &d->nm[0]);
    d->nnm = 1;
    if (path2) {
        d->path2 = sim_strdup(path2);
        name_of(path2, &d->nm[1]);
        d->nnm = 2;
    }
    return d;
}

static void dop_free(struct sim_dop *d)
{
    if (d->stash)
        unlink(d->stash);
    free(d->stash);
    free(d->path);
    free(d->path2);
    for (int i = 0; i < d->nnm; i++)
        free(d->nm[i].base);
}

/* An entry change about the file sb describes (stat before the change). */
static struct sim_dop *dop_about(int kind, const char *path, const char *path2,
                                 const struct stat *sb)
{
    struct sim_dop *d = dop_add(kind, path, path2);
    d->fdev = sb->st_dev;
    d->fino = sb->st_ino;
    return d;
}

static void stash_drop(char *stash)
{
    if (stash) {
        unlink(stash);
        free(stash);
    }
}

/* A hard link of path in the stash directory (its name, malloc'd), or NULL
 * when path is not a regular file. */
static char *stash_link(const char *path)
{
    struct stat sb;
    if (lstat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
        return NULL;
    size_t n = strlen(S.stash_dir) + 32;
    char *s = sim_alloc(n);
    snprintf(s, n, "%s/%" PRIu64, S.stash_dir, ++S.stash_seq);
    if (link(path, s) != 0)
        sim_fail("could not keep \"%s\" as \"%s\": %s", path, s, strerror(errno));
    return s;
}

/* ------------------------------------------------------------------------
 * The crash
 * ---------------------------------------------------------------------- */
enum { FATE_KEEP, FATE_REVERT, FATE_MID, FATE_GARBAGE };

struct pair {
    uint64_t sector;
    size_t rec;
    bool revert;
};

static int pair_by_sector(const void *a, const void *b)
{
    const struct pair *x = a, *y = b;
    if (x->sector != y->sector)
        return x->sector < y->sector ? -1 : 1;
    return x->rec < y->rec ? -1 : x->rec > y->rec;
}

static int pair_by_rec_desc(const void *a, const void *b)
{
    const struct pair *x = a, *y = b;
    if (x->rec != y->rec)
        return x->rec > y->rec ? -1 : 1;
    return x->sector < y->sector ? -1 : x->sector > y->sector;
}

struct range {
    uint64_t lo, hi;
};

/* Puts back the bytes [lo, hi) of undo record u. */
static void undo_bytes(struct sim_file *f, const struct sim_undo *u, uint64_t lo, uint64_t hi)
{
    uint64_t old_end = u->old_size > u->off ? u->old_size : u->off;
    if (lo < old_end) {
        uint64_t e = hi < old_end ? hi : old_end;
        full_pwrite(f->fd, u->old + (lo - u->off), (size_t)(e - lo), lo, f->name);
        lo = e;
    }
    static const unsigned char zeros[4096];
    while (lo < hi) {
        uint64_t e = hi - lo > sizeof zeros ? lo + sizeof zeros : hi;
        full_pwrite(f->fd, zeros, (size_t)(e - lo), lo, f->name);
        lo = e;
    }
}

static void fill_garbage(struct sim_file *f, uint64_t lo, uint64_t hi, uint64_t *rs)
{
    unsigned char buf[4096];
    while (lo < hi) {
        size_t n = hi - lo > sizeof buf ? sizeof buf : (size_t)(hi - lo);
        for (size_t i = 0; i < n; i += 8) {
            uint64_t r = sim_rand(rs);
            memcpy(buf + i, &r, n - i < 8 ? n - i : 8);
        }
        full_pwrite(f->fd, buf, n, lo, f->name);
        lo += n;
    }
}

static void crash_file(struct sim_file *f, unsigned ss, uint64_t *rs)
{
    if (f->nu == 0)
        return;
    uint64_t cur = fd_size(f->fd, f->name);
    int mode; /* 0 keep, 1 revert, 2 mixed, 3 garbage */
    switch (S.cfg.data) {
    case CIO_SIM_DATA_KEEP:
        mode = 0;
        break;
    case CIO_SIM_DATA_REVERT:
        mode = 1;
        break;
    case CIO_SIM_DATA_GARBAGE:
        mode = 3;
        break;
    default: {
        uint64_t r = sim_rand(rs) % 4;
        mode = r == 0 ? 0 : r == 1 ? 1 : 2;
    }
    }
    uint64_t final = mode == 1 ? f->durable_size : cur;
    if (mode == 2 && (sim_rand(rs) & 1))
        final = f->durable_size;

    struct pair *p = NULL;
    size_t np = 0, capp = 0;
    for (size_t i = 0; i < f->nu; i++) {
        const struct sim_undo *u = &f->u[i];
        if (u->len == 0)
            continue;
        for (uint64_t s = u->off / ss; s <= (u->off + u->len - 1) / ss; s++) {
            struct pair *q = sim_push(&p, &np, &capp, sizeof *p);
            q->sector = s;
            q->rec = i;
        }
    }
    if (np > 1)
        qsort(p, np, sizeof *p, pair_by_sector);
    struct range *g = NULL;
    size_t ng = 0, capg = 0;
    size_t counts[4] = {0, 0, 0, 0};
    for (size_t a = 0; a < np;) {
        size_t b = a;
        while (b < np && p[b].sector == p[a].sector)
            b++;
        int fate = mode == 0 ? FATE_KEEP : mode == 1 ? FATE_REVERT : FATE_GARBAGE;
        if (mode == 2) {
            uint64_t r = sim_rand(rs) % 100;
            fate = r < 35 ? FATE_KEEP : r < 65 ? FATE_REVERT : r < 75 ? FATE_MID : FATE_GARBAGE;
            if (fate == FATE_GARBAGE && S.cfg.atomic_sectors)
                fate = FATE_REVERT;
        }
        size_t keep_upto = a; /* pairs [a, keep_upto) keep their change */
        if (fate == FATE_KEEP)
            keep_upto = b;
        else if (fate == FATE_MID && b - a > 1)
            keep_upto = a + 1 + (size_t)(sim_rand(rs) % (b - a - 1));
        else if (fate == FATE_MID)
            fate = FATE_REVERT;
        counts[fate]++;
        for (size_t k = a; k < b; k++)
            p[k].revert = k >= keep_upto;
        if (fate == FATE_GARBAGE) {
            uint64_t slo = p[a].sector * ss, shi = slo + ss;
            if (S.cfg.torn_neighbours) {
                struct range *r = sim_push(&g, &ng, &capg, sizeof *g);
                r->lo = slo;
                r->hi = shi;
            } else {
                for (size_t k = a; k < b; k++) {
                    const struct sim_undo *u = &f->u[p[k].rec];
                    struct range *r = sim_push(&g, &ng, &capg, sizeof *g);
                    r->lo = u->off > slo ? u->off : slo;
                    r->hi = u->off + u->len < shi ? u->off + u->len : shi;
                }
            }
        }
        a = b;
    }
    /* Newest change first, so each sector ends at the version chosen. */
    if (np > 1)
        qsort(p, np, sizeof *p, pair_by_rec_desc);
    for (size_t k = 0; k < np; k++) {
        if (!p[k].revert)
            continue;
        const struct sim_undo *u = &f->u[p[k].rec];
        uint64_t slo = p[k].sector * ss, shi = slo + ss;
        undo_bytes(f, u, u->off > slo ? u->off : slo,
                   u->off + u->len < shi ? u->off + u->len : shi);
    }
    for (size_t k = 0; k < ng; k++)
        fill_garbage(f, g[k].lo, g[k].hi, rs);
    if (ftruncate(f->fd, (off_t)final) != 0)
        sim_fail("could not truncate \"%s\" to %" PRIu64 ": %s", f->name, final,
                 strerror(errno));
    if (S.cfg.verbose)
        fprintf(stderr,
                "cio sim:   file \"%s\": %zu undurable change(s), %s; sectors kept %zu, "
                "reverted %zu, intermediate %zu, garbage %zu; size %" PRIu64 " -> %" PRIu64
                " (durable %" PRIu64 ")\n",
                f->name, f->nu,
                mode == 0 ? "kept" : mode == 1 ? "reverted" : mode == 2 ? "mixed" : "garbage",
                counts[FATE_KEEP], counts[FATE_REVERT], counts[FATE_MID],
                counts[FATE_GARBAGE], cur, final, f->durable_size);
    free(p);
    free(g);
}

static bool same_name(const struct sim_name *a, const struct sim_name *b)
{
    return a->ddev == b->ddev && a->dino == b->dino && strcmp(a->base, b->base) == 0;
}

/* Does b (later) depend on a (earlier)? */
static bool dop_depends(const struct sim_dop *b, const struct sim_dop *a)
{
    for (int i = 0; i < b->nnm; i++) {
        for (int j = 0; j < a->nnm; j++)
            if (same_name(&b->nm[i], &a->nm[j]))
                return true;
        if (a->kind == DOP_MKDIR && b->nm[i].ddev == a->fdev && b->nm[i].dino == a->fino)
            return true;
    }
    /* deeper below a created directory (paths as the caller spelled them) */
    size_t an = strlen(a->path);
    if (a->kind == DOP_MKDIR && strncmp(b->path, a->path, an) == 0 && b->path[an] == '/')
        return true;
    dev_t bd[2] = {b->fdev, b->rdev}, ad[2] = {a->fdev, a->rdev};
    ino_t bi[2] = {b->fino, b->rino}, ai[2] = {a->fino, a->rino};
    for (int i = 0; i < (b->replaced ? 2 : 1); i++)
        for (int j = 0; j < (a->replaced ? 2 : 1); j++)
            if (bd[i] == ad[j] && bi[i] == ai[j])
                return true;
    return false;
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    if (remove(p) != 0)
        sim_fail("could not remove \"%s\": %s", p, strerror(errno));
    return 0;
}

static void dop_undo(const struct sim_dop *d)
{
    struct stat sb;
    switch (d->kind) {
    case DOP_CREATE:
        if (lstat(d->path, &sb) != 0) {
            if (errno == ENOENT)
                return; /* removed outside the simulator (cleanup after a failure) */
            sim_fail("could not stat \"%s\": %s", d->path, strerror(errno));
        }
        if (sb.st_ino != d->fino || sb.st_dev != d->fdev)
            sim_fail("cannot lose the create of \"%s\": the name holds another file",
                     d->path);
        if (unlink(d->path) != 0)
            sim_fail("could not unlink \"%s\": %s", d->path, strerror(errno));
        return;
    case DOP_MKDIR:
        if (lstat(d->path, &sb) == 0 &&
            nftw(d->path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
            sim_fail("could not remove \"%s\"", d->path);
        return;
    case DOP_RENAME:
        if (rename(d->path2, d->path) != 0)
            sim_fail("could not rename \"%s\" back to \"%s\": %s", d->path2, d->path,
                     strerror(errno));
        if (d->stash && link(d->stash, d->path2) != 0)
            sim_fail("could not bring back \"%s\": %s", d->path2, strerror(errno));
        return;
    case DOP_UNLINK:
        if (d->stash && link(d->stash, d->path) != 0)
            sim_fail("could not bring back \"%s\": %s", d->path, strerror(errno));
        return;
    }
}

static void crash_dirs(uint64_t *rs)
{
    for (size_t i = 0; i < S.nd; i++) {
        struct sim_dop *d = &S.d[i];
        bool lost = S.cfg.dir == CIO_SIM_DIR_LOSE;
        if (S.cfg.dir == CIO_SIM_DIR_RANDOM)
            lost = sim_rand(rs) & 1;
        for (size_t j = 0; j < i && !lost; j++)
            lost = S.d[j].lost && dop_depends(d, &S.d[j]);
        d->lost = lost;
        if (S.cfg.verbose)
            fprintf(stderr, "cio sim:   %s \"%s\"%s%s: %s\n", dop_name[d->kind], d->path,
                    d->path2 ? " -> " : "", d->path2 ? d->path2 : "", lost ? "lost" : "kept");
    }
    for (size_t i = S.nd; i-- > 0;)
        if (S.d[i].lost)
            dop_undo(&S.d[i]);
}

static void sim_clear(void)
{
    for (size_t i = 0; i < S.nf; i++) {
        struct sim_file *f = &S.f[i];
        for (size_t k = 0; k < f->nu; k++)
            free(f->u[k].old);
        free(f->u);
        free(f->name);
        close(f->fd);
    }
    free(S.f);
    for (size_t i = 0; i < S.nd; i++)
        dop_free(&S.d[i]);
    free(S.d);
    free(S.stash_dir);
    memset(&S, 0, sizeof S);
}

/* Applies the crash at point n (under sim_mu). */
static void crash_apply(uint64_t n)
{
    uint64_t rs = S.cfg.seed ^ (n * UINT64_C(0xd6e8feb86659fd93));
    sim_rand(&rs);
    unsigned ss = S.cfg.sector ? S.cfg.sector : (sim_rand(&rs) & 1) ? 4096u : 512u;
    if (S.cfg.verbose)
        fprintf(stderr, "cio sim: power cut at op %" PRIu64 " (%s), seed %" PRIu64
                        ", %u-byte sectors\n",
                n, n <= S.ops ? S.desc : "after the last op", S.cfg.seed, ss);
    for (size_t i = 0; i < S.nf; i++)
        crash_file(&S.f[i], ss, &rs);
    crash_dirs(&rs);
}

_Noreturn static void crash_now(uint64_t n)
{
    crash_apply(n);
    fflush(stderr);
    _exit(S.cfg.exit_code);
}

/* Counts an op (under sim_mu) and describes it. Returns its number. */
__attribute__((format(printf, 1, 2))) static uint64_t op_begin(const char *fmt, ...)
{
    uint64_t n = ++S.ops;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(S.desc, sizeof S.desc, fmt, ap);
    va_end(ap);
    if (S.cfg.verbose >= 2)
        fprintf(stderr, "cio sim: op %" PRIu64 ": %s\n", n, S.desc);
    return n;
}

/* After a write or entry change: the power fails now if this is the op. */
static void op_done(uint64_t n)
{
    if (n == S.cfg.crash_at)
        crash_now(n);
}

/* ------------------------------------------------------------------------
 * Test API (io.h)
 * ---------------------------------------------------------------------- */
cairn_status cio_sim_start(const struct cio_sim_config *cfg)
{
    if (!cfg || !cfg->stash_dir || !cfg->stash_dir[0])
        return cerr_set(CAIRN_EINVAL,
                        "could not start the crash simulator: no stash directory");
    if (cfg->sector != 0 && cfg->sector != 512 && cfg->sector != 4096)
        return cerr_set(CAIRN_EINVAL,
                        "could not start the crash simulator: sector size %u is not 512 or "
                        "4096",
                        cfg->sector);
    pthread_mutex_lock(&sim_mu);
    if (cio_sim_running) {
        pthread_mutex_unlock(&sim_mu);
        return cerr_set(CAIRN_EBUSY, "could not start the crash simulator: it runs already");
    }
    memset(&S, 0, sizeof S);
    S.cfg = *cfg;
    S.stash_dir = sim_strdup(cfg->stash_dir);
    S.cfg.stash_dir = S.stash_dir;
    __atomic_store_n(&cio_sim_running, 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&sim_mu);
    return CAIRN_OK;
}

uint64_t cio_sim_ops(void)
{
    pthread_mutex_lock(&sim_mu);
    uint64_t n = S.ops;
    pthread_mutex_unlock(&sim_mu);
    return n;
}

_Noreturn void cio_sim_crash(void)
{
    pthread_mutex_lock(&sim_mu);
    if (!cio_sim_running)
        sim_fail("cio_sim_crash without a simulation");
    crash_now(S.ops + 1);
}

cairn_status cio_sim_crash_apply(void)
{
    pthread_mutex_lock(&sim_mu);
    if (!cio_sim_running) {
        pthread_mutex_unlock(&sim_mu);
        return cerr_set(CAIRN_EINVAL, "could not simulate a crash: no simulation runs");
    }
    crash_apply(S.ops + 1);
    __atomic_store_n(&cio_sim_running, 0, __ATOMIC_RELEASE);
    sim_clear();
    pthread_mutex_unlock(&sim_mu);
    return CAIRN_OK;
}

void cio_sim_stop(void)
{
    pthread_mutex_lock(&sim_mu);
    if (cio_sim_running) {
        __atomic_store_n(&cio_sim_running, 0, __ATOMIC_RELEASE);
        sim_clear();
    }
    pthread_mutex_unlock(&sim_mu);
}

/* ------------------------------------------------------------------------
 * Hooks (simio.h). Each takes sim_mu; a hook called after the simulation
 * ended (a race with cio_sim_stop) just does the system call.
 * ---------------------------------------------------------------------- */
#define SIM_ENTER()                                                                        \
    pthread_mutex_lock(&sim_mu);                                                           \
    bool live_ = cio_sim_running

#define SIM_LEAVE(ret)                                                                     \
    do {                                                                                   \
        pthread_mutex_unlock(&sim_mu);                                                     \
        return (ret);                                                                      \
    } while (0)

/* Whether an I/O on fd goes around the page cache (O_DIRECT). */
static bool fd_direct(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl >= 0 && (fl & O_DIRECT);
}

static bool dio_aligned(const void *buf, size_t n, uint64_t off)
{
    return off % SIM_DIO_ALIGN == 0 && n % SIM_DIO_ALIGN == 0 &&
           (uintptr_t)buf % SIM_DIO_ALIGN == 0;
}

int64_t sim_pwrite(int fd, const void *buf, size_t n, uint64_t off, const char *path)
{
    SIM_ENTER();
    uint64_t op = 0;
    struct sim_file *f = NULL;
    bool direct = fd_direct(fd);
    if (live_) {
        op = op_begin("write \"%s\" at offset %" PRIu64 ", %zu bytes%s", pname(path), off, n,
                      direct ? " (O_DIRECT)" : "");
        f = file_of_fd(fd, path, UINT64_MAX);
        if (f && n > 0)
            file_record(f, off, n, fd_size(f->fd, f->name));
    }
    ssize_t r;
    if (live_ && direct && !dio_aligned(buf, n, off)) {
        r = -1;
        errno = EINVAL;
    } else {
        r = pwrite(live_ && direct && f ? f->fd : fd, buf, n, (off_t)off);
    }
    int e = errno;
    if (f && n > 0) {
        struct sim_undo *u = &f->u[f->nu - 1];
        if (r <= 0) { /* nothing changed */
            free(u->old);
            f->nu--;
        } else {
            u->len = (uint64_t)r;
        }
    }
    if (live_)
        op_done(op);
    SIM_LEAVE(r < 0 ? -(int64_t)e : (int64_t)r);
}

int64_t sim_pread(int fd, void *buf, size_t n, uint64_t off, const char *path)
{
    SIM_ENTER();
    struct sim_file *f = NULL;
    if (live_ && fd_direct(fd)) {
        if (!dio_aligned(buf, n, off))
            SIM_LEAVE(-(int64_t)EINVAL);
        f = file_of_fd(fd, path, UINT64_MAX);
    }
    ssize_t r = pread(f ? f->fd : fd, buf, n, (off_t)off);
    int e = errno;
    SIM_LEAVE(r < 0 ? -(int64_t)e : (int64_t)r);
}

int sim_sync(int fd, int datasync, const char *path)
{
    SIM_ENTER();
    if (!live_) {
        int r = datasync ? fdatasync(fd) : fsync(fd);
        int e = errno;
        SIM_LEAVE(r < 0 ? -e : 0);
    }
    uint64_t op = op_begin("%s \"%s\"", datasync ? "fdatasync" : "fsync", pname(path));
    if (op == S.cfg.crash_at)
        crash_now(op); /* the sync never completes */
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        SIM_LEAVE(-e);
    }
    struct sim_file *f = file_find(sb.st_dev, sb.st_ino);
    if (f)
        file_durable(f);
    SIM_LEAVE(0);
}

int sim_open(const char *path, int flags, mode_t mode)
{
    SIM_ENTER();
    if (!live_ || !(flags & (O_CREAT | O_TRUNC))) { /* not an op, but not during a crash */
        int fd = open(path, flags | O_CLOEXEC, mode);
        int e = errno;
        SIM_LEAVE(fd < 0 ? -e : fd);
    }
    uint64_t op = op_begin("open \"%s\"%s%s", pname(path), (flags & O_CREAT) ? " O_CREAT" : "",
                           (flags & O_TRUNC) ? " O_TRUNC" : "");
    struct stat before;
    bool existed = lstat(path, &before) == 0;
    /* O_TRUNC of an existing file: keep its bytes before they go. */
    unsigned char *old = NULL;
    uint64_t old_size = 0;
    struct sim_file *known = existed ? file_find(before.st_dev, before.st_ino) : NULL;
    bool trunc = existed && (flags & O_TRUNC) && S_ISREG(before.st_mode) &&
                 (flags & O_ACCMODE) != O_RDONLY;
    if (trunc) {
        int rfd = open(path, O_RDONLY | O_CLOEXEC);
        if (rfd < 0)
            sim_fail("could not read \"%s\" before truncating it: %s", path, strerror(errno));
        old_size = fd_size(rfd, path);
        old = sim_alloc((size_t)old_size);
        full_pread(rfd, old, (size_t)old_size, 0, path);
        close(rfd);
    }
    int fd = open(path, flags | O_CLOEXEC, mode);
    int e = errno;
    if (fd >= 0 && !existed) {
        file_of_fd(fd, path, 0);
        struct stat sb;
        if (fstat(fd, &sb) != 0)
            sim_fail("could not stat \"%s\": %s", path, strerror(errno));
        dop_about(DOP_CREATE, path, NULL, &sb);
    } else if (fd >= 0 && trunc && old_size > 0) {
        struct sim_file *f =
            file_of_fd(fd, path, known ? UINT64_MAX : old_size); /* durable: what was there */
        if (!f)
            sim_fail("\"%s\" is no longer a regular file", path);
        struct sim_undo *u = sim_push(&f->u, &f->nu, &f->capu, sizeof *f->u);
        u->off = 0;
        u->len = old_size;
        u->old_size = old_size;
        u->old = old;
        old = NULL;
    }
    free(old);
    op_done(op);
    SIM_LEAVE(fd < 0 ? -e : fd);
}

int sim_ftruncate(int fd, uint64_t size, const char *path)
{
    SIM_ENTER();
    uint64_t op = 0;
    if (live_) {
        op = op_begin("ftruncate \"%s\" to %" PRIu64, pname(path), size);
        struct sim_file *f = file_of_fd(fd, path, UINT64_MAX);
        if (f) {
            uint64_t cur = fd_size(f->fd, f->name);
            if (size < cur)
                file_record(f, size, cur - size, cur);
            else if (size > cur)
                file_record(f, cur, size - cur, cur);
        }
    }
    int r = ftruncate(fd, (off_t)size);
    int e = errno;
    /* A failed ftruncate changed nothing; its record reverts to the same
     * bytes, so it may stay. */
    if (live_)
        op_done(op);
    SIM_LEAVE(r < 0 ? -e : 0);
}

int sim_rename(const char *from, const char *to)
{
    SIM_ENTER();
    if (!live_) {
        int r = rename(from, to);
        int e = errno;
        SIM_LEAVE(r < 0 ? -e : 0);
    }
    uint64_t op = op_begin("rename \"%s\" -> \"%s\"", from, to);
    struct stat fs, ts;
    bool have_from = lstat(from, &fs) == 0;
    bool have_to = lstat(to, &ts) == 0;
    char *stash = NULL;
    if (have_from && have_to && (fs.st_ino != ts.st_ino || fs.st_dev != ts.st_dev))
        stash = stash_link(to);
    int r = rename(from, to);
    int e = errno;
    if (r == 0 && have_from && !(have_to && fs.st_ino == ts.st_ino && fs.st_dev == ts.st_dev)) {
        struct sim_file *f = file_find(fs.st_dev, fs.st_ino);
        if (f) { /* traces name a file by its latest name */
            free(f->name);
            f->name = sim_strdup(to);
        }
        struct sim_dop *d = dop_about(DOP_RENAME, from, to, &fs);
        if (have_to) {
            d->replaced = true;
            d->rdev = ts.st_dev;
            d->rino = ts.st_ino;
            d->stash = stash;
            stash = NULL;
        }
    }
    stash_drop(stash);
    op_done(op);
    SIM_LEAVE(r < 0 ? -e : 0);
}

int sim_unlink(const char *path)
{
    SIM_ENTER();
    if (!live_) {
        int r = unlink(path);
        int e = errno;
        SIM_LEAVE(r < 0 ? -e : 0);
    }
    uint64_t op = op_begin("unlink \"%s\"", path);
    struct stat sb;
    bool have = lstat(path, &sb) == 0;
    char *stash = have ? stash_link(path) : NULL;
    int r = unlink(path);
    int e = errno;
    if (r == 0) {
        dop_about(DOP_UNLINK, path, NULL, &sb)->stash = stash;
        stash = NULL;
    }
    stash_drop(stash);
    op_done(op);
    SIM_LEAVE(r < 0 ? -e : 0);
}

int sim_mkdir(const char *path, mode_t mode)
{
    SIM_ENTER();
    if (!live_) {
        int r = mkdir(path, mode);
        int e = errno;
        SIM_LEAVE(r < 0 ? -e : 0);
    }
    uint64_t op = op_begin("mkdir \"%s\"", path);
    int r = mkdir(path, mode);
    int e = errno;
    if (r == 0) {
        struct stat sb;
        if (lstat(path, &sb) != 0)
            sim_fail("could not stat \"%s\": %s", path, strerror(errno));
        dop_about(DOP_MKDIR, path, NULL, &sb);
    }
    op_done(op);
    SIM_LEAVE(r < 0 ? -e : 0);
}

int sim_fsync_dir(int dirfd, const char *dir)
{
    SIM_ENTER();
    if (!live_) {
        int r = fsync(dirfd);
        int e = errno;
        SIM_LEAVE(r < 0 ? -e : 0);
    }
    uint64_t op = op_begin("fsync directory \"%s\"", pname(dir));
    if (op == S.cfg.crash_at)
        crash_now(op);
    struct stat sb;
    if (fstat(dirfd, &sb) != 0) {
        int e = errno;
        SIM_LEAVE(-e);
    }
    size_t keep = 0;
    for (size_t i = 0; i < S.nd; i++) {
        struct sim_dop *d = &S.d[i];
        bool pending = false;
        for (int k = 0; k < d->nnm; k++) {
            if (d->nm[k].ddev == sb.st_dev && d->nm[k].dino == sb.st_ino)
                d->nm[k].pending = false;
            pending |= d->nm[k].pending;
        }
        if (pending)
            S.d[keep++] = *d;
        else
            dop_free(d);
    }
    S.nd = keep;
    SIM_LEAVE(0);
}
