/*
 * pin.c — checkpoint pins: a reader outside the engine (another process,
 * pitrctl backup, or a thread of this one) keeps one checkpoint readable
 * while it copies it, and the copy itself.
 *
 * A pin is a file DB/pins/<pid>-<random>.pin (byte table in docs/format.md,
 * "Pin files"): a 64-byte header and the superblock page of the pinned
 * checkpoint, so the image stays describable after both superblock slots
 * have moved on. Its holder keeps a shared flock on it for as long as the
 * pin lives. A pin file nobody holds a lock on is stale (its process died,
 * or the power went): the next scan removes it. Pins are never fsynced:
 * after a crash no pin holder is left.
 *
 * What a pin holds back, for as long as it lives (ckpt.c):
 *   - no checkpoint reuses a page of the pinned image (a page replaced by
 *     checkpoint g is reused only when no pin holds a generation below g);
 *   - the page file of a collection dropped after it is not deleted;
 *   - no WAL segment holding LSNs at or after its redo LSN is removed.
 *
 * Why no race can let a page of the pinned image be reused: the pinner
 * holds an exclusive flock on the DB/pins directory from reading the
 * superblock until its pin file is visible (written as *.tmp, locked, then
 * renamed), and each checkpoint reads the pins under the same lock before
 * it allocates a page. A checkpoint g+1 never writes over a page of g (the
 * current image) with or without pins; so a pin of g taken while g+1 runs
 * is safe, and the next checkpoint, which may reuse pages g+1 replaced,
 * starts after the pin is visible and honours it. A superblock slot read
 * torn while it is being written fails its checksum, so the pinner pins
 * the other (older) slot, whose pages are protected the same way.
 *
 * The copy (cairn_pin_copy) writes a new database directory holding just
 * the pinned checkpoint: meta, a superblock with the pinned slot, the
 * catalog and collection page files with every page of the image at the
 * same physical position (the rest are holes), the WAL segment holding
 * the redo LSN cut at it, the timeline history files of wal/, so the copy opens to exactly the checkpoint's
 * state and continues its log from there. Every page is verified (crc,
 * header, page LSN) as it is read. The directory is built as
 * "<target>.partial" and renamed into place once everything is durable.
 * What the image holds, and the verified reading of its pages, are the
 * backup source's (bsrc.c): the copy and pitr/ backups walk it the same way.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/crc32c.h"
#include "common/err.h"
#include "common/io.h"
#include "common/log.h"
#include "common/util.h"
#include "engine/bsrc.h"
#include "engine/ckpt_int.h"
#include "engine/engine_int.h"
#include "engine/pfile.h"
#include "wal/wal.h"

#define PIN_MAGIC "CAIRNPIN"
#define PIN_VERSION 1u
#define PIN_HDR 64u
#define PIN_SIZE (PIN_HDR + PAGE_SIZE)

struct cairn_pin {
    char *dbpath;
    char *pinpath;
    int fd;            /* the pin file, flock LOCK_SH while the pin lives */
    struct super sb;
    uint8_t *img;      /* PAGE_SIZE: the superblock page of the pinned checkpoint */
    uint32_t slot;
    uint32_t seg_shift, timeline;
    uint64_t db_id;
};

static int flock_retry(int fd, int op)
{
    int r;
    do
        r = flock(fd, op);
    while (r != 0 && errno == EINTR);
    return r;
}

/* Opens DB/pins (created if `create`) and locks it exclusively. *dfd -1
 * and CAIRN_OK: there is no pins directory. */
static cairn_status pins_dir_lock(const char *dbpath, bool create, int *dfd)
{
    *dfd = -1;
    char *dir = cairn_path_join(dbpath, "pins");
    if (!dir)
        return cerr_set(CAIRN_ENOMEM, "out of memory");
    cairn_status st = CAIRN_OK;
    if (create)
        st = cfs_mkdir(dir, 0755);
    int fd = -1;
    if (!st) {
        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 && !(errno == ENOENT && !create))
            st = cerr_errno(errno, "could not open pin directory \"%s\"", dir);
    }
    if (!st && fd >= 0 && flock_retry(fd, LOCK_EX) != 0) {
        st = cerr_errno(errno, "could not lock pin directory \"%s\"", dir);
        close(fd);
        fd = -1;
    }
    free(dir);
    *dfd = fd;
    return st;
}

static void pins_dir_unlock(int dfd)
{
    if (dfd >= 0) {
        flock(dfd, LOCK_UN);
        close(dfd);
    }
}

/* ---- pin file ---------------------------------------------------------------- */

static void pin_encode(uint8_t *b, const struct super *s, uint32_t slot, const uint8_t *img)
{
    memset(b, 0, PIN_HDR);
    memcpy(b, PIN_MAGIC, 8);
    st32(b + 8, PIN_VERSION);
    st32(b + 12, PIN_HDR);
    st32(b + 16, (uint32_t)getpid());
    st32(b + 20, slot);
    st64(b + 24, (uint64_t)cairn_now_us());
    st64(b + 32, s->gen);
    st64(b + 40, s->redo);
    st64(b + 48, s->db_id);
    st32(b + 60, crc32c(0, b, 60));
    memcpy(b + PIN_HDR, img, PAGE_SIZE);
}

/* The checkpoint a pin file holds; a message naming the file and field
 * when it cannot be used. */
static cairn_status pin_decode(const uint8_t *b, size_t len, const char *path, uint64_t db_id,
                               struct super *s)
{
    if (len != PIN_SIZE)
        return cerr_set(CAIRN_ECORRUPT, "pin file \"%s\" is %zu bytes, expected %u", path, len,
                        PIN_SIZE);
    if (memcmp(b, PIN_MAGIC, 8) != 0)
        return cerr_set(CAIRN_ECORRUPT, "pin file \"%s\" has a bad magic at offset 0", path);
    if (crc32c(0, b, 60) != ld32(b + 60))
        return cerr_set(CAIRN_ECORRUPT, "pin file \"%s\" fails its checksum at offset 60",
                        path);
    if (ld32(b + 8) > PIN_VERSION)
        return cerr_set(CAIRN_EVERSION, "pin file \"%s\" has format version %" PRIu32, path,
                        ld32(b + 8));
    uint32_t slot = ld32(b + 20);
    const char *why = "has an invalid slot number";
    if (slot > 1 || super_decode(b + PIN_HDR, slot, s, &why) != 1)
        return cerr_set(CAIRN_ECORRUPT, "pin file \"%s\": the superblock at offset %u %s",
                        path, PIN_HDR, why);
    if (s->gen != ld64(b + 32) || s->redo != ld64(b + 40) || s->db_id != ld64(b + 48) ||
        s->db_id != db_id)
        return cerr_set(CAIRN_ECORRUPT, "pin file \"%s\": its header (offset 32) does not "
                        "match its superblock or this database", path);
    return CAIRN_OK;
}

static bool has_suffix(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a > b && strcmp(s + a - b, suf) == 0;
}

cairn_status pins_scan(const char *dbpath, uint64_t db_id, struct pin_set *out)
{
    memset(out, 0, sizeof *out);
    out->min_gen = out->min_redo = UINT64_MAX;
    int dfd = -1;
    cairn_status st = pins_dir_lock(dbpath, false, &dfd);
    if (st || dfd < 0)
        return st;
    char *dir = cairn_path_join(dbpath, "pins");
    DIR *d = dir ? fdopendir(dup(dfd)) : NULL;
    if (!d) {
        st = dir ? cerr_errno(errno, "could not list pin directory \"%s\"", dir)
                 : cerr_set(CAIRN_ENOMEM, "out of memory");
        free(dir);
        pins_dir_unlock(dfd);
        return st;
    }
    uint8_t *buf = malloc(PIN_SIZE + 1);
    size_t cap = 0;
    struct dirent *e;
    while (!st && buf && (e = readdir(d))) {
        bool tmp = has_suffix(e->d_name, ".pin.tmp");
        if (!tmp && !has_suffix(e->d_name, ".pin"))
            continue;
        char *p = cairn_path_join(dir, e->d_name);
        if (!p) {
            st = cerr_set(CAIRN_ENOMEM, "out of memory");
            break;
        }
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            if (errno != ENOENT)
                st = cerr_errno(errno, "could not open pin file \"%s\"", p);
            free(p);
            continue;
        }
        /* A *.tmp is never seen half made under the directory lock: its
         * pinner died. A *.pin no one holds is stale the same way. */
        if (tmp || flock_retry(fd, LOCK_EX | LOCK_NB) == 0) {
            clog_info("database \"%s\": removing stale pin \"%s\"", dbpath, p);
            st = cfs_unlink(p);
            if (st == CAIRN_ENOTFOUND)
                st = CAIRN_OK;
        } else if (errno != EWOULDBLOCK) {
            st = cerr_errno(errno, "could not test the lock of pin file \"%s\"", p);
        } else {
            ssize_t got = pread(fd, buf, PIN_SIZE + 1, 0);
            struct super s;
            cairn_status dst = got < 0 ? cerr_errno(errno, "could not read pin file \"%s\"", p)
                                       : pin_decode(buf, (size_t)got, p, db_id, &s);
            if (dst) {
                /* held by someone, but unreadable: hold everything back */
                clog_warn("database \"%s\": %s; no page is reused and no WAL removed while "
                          "it is held", dbpath, cairn_last_error());
                out->min_gen = out->min_redo = 0;
            } else {
                if (out->n == cap) {
                    size_t nc = cap ? cap * 2 : 4;
                    struct super *ni = realloc(out->img, nc * sizeof *ni);
                    if (!ni) {
                        st = cerr_set(CAIRN_ENOMEM, "out of memory");
                        close(fd);
                        free(p);
                        break;
                    }
                    out->img = ni;
                    cap = nc;
                }
                out->img[out->n++] = s;
                out->min_gen = CAIRN_MIN(out->min_gen, s.gen);
                out->min_redo = CAIRN_MIN(out->min_redo, s.redo);
            }
        }
        close(fd);
        free(p);
    }
    if (!buf && !st)
        st = cerr_set(CAIRN_ENOMEM, "out of memory");
    free(buf);
    closedir(d);
    free(dir);
    pins_dir_unlock(dfd);
    if (st)
        pins_free(out);
    return st;
}

void pins_free(struct pin_set *p)
{
    free(p->img);
    p->img = NULL;
    p->n = 0;
}

/* ---- taking and releasing a pin ---------------------------------------------- */

CAIRN_API cairn_status cairn_pin_open(const char *path, cairn_pin **out, cairn_pin_info *info)
{
    cerr_clear();
    if (!path || !out)
        return cerr_set(CAIRN_EINVAL, "cairn_pin_open: NULL argument");
    *out = NULL;
    if (info)
        memset(info, 0, sizeof *info);
    cairn_pin *pin = calloc(1, sizeof *pin);
    void *imgv = NULL, *scr = NULL;
    if (!pin || posix_memalign(&imgv, PAGE_SIZE, PAGE_SIZE) ||
        posix_memalign(&scr, PAGE_SIZE, PAGE_SIZE)) {
        free(pin);
        free(imgv);
        return cerr_set(CAIRN_ENOMEM, "out of memory");
    }
    pin->fd = -1;
    pin->img = imgv;
    pin->dbpath = strdup(path);
    char *super_path = cairn_path_join(path, "superblock");
    char *tmp = NULL;
    cio *io = NULL;
    int dfd = -1;
    cairn_status st = pin->dbpath && super_path ? CAIRN_OK
                                                : cerr_set(CAIRN_ENOMEM, "out of memory");
    if (!st)
        st = db_meta_read(path, &pin->db_id, &pin->seg_shift, &pin->timeline);
    if (!st)
        st = cio_ctx_open(&io, CAIRN_IO_POSIX, 1);
    if (!st)
        st = pins_dir_lock(path, true, &dfd);
    if (!st) {
        const char *why[2];
        bool zero[2];
        struct stat sb;
        if (stat(super_path, &sb) != 0)
            st = errno == ENOENT
                     ? cerr_set(CAIRN_ENOTFOUND, "database \"%s\" has no checkpoint to pin "
                                "yet (no \"%s\")", path, super_path)
                     : cerr_errno(errno, "could not stat \"%s\"", super_path);
        else
            st = super_read(io, super_path, pin->db_id, scr, &pin->sb, pin->img, why, zero);
        if (!st && pin->sb.gen == 0)
            st = cerr_set(CAIRN_ENOTFOUND, "database \"%s\" has no checkpoint to pin (slot 0 "
                          "%s, slot 1 %s)", path, why[0], why[1]);
        if (!st && pin->sb.timeline != pin->timeline)
            st = cerr_set(CAIRN_ECORRUPT, "superblock \"%s\": checkpoint %" PRIu64 " is on "
                          "timeline %" PRIu32 ", the database on %" PRIu32, super_path,
                          pin->sb.gen, pin->sb.timeline, pin->timeline);
    }
    if (!st) {
        pin->slot = (uint32_t)(pin->sb.gen % 2);
        uint64_t rnd = 0;
        if (getrandom(&rnd, sizeof rnd, 0) != sizeof rnd)
            rnd = (uint64_t)cairn_now_us();
        char name[64];
        snprintf(name, sizeof name, "pins/%ld-%016" PRIx64 ".pin", (long)getpid(), rnd);
        pin->pinpath = cairn_path_join(path, name);
        tmp = pin->pinpath ? malloc(strlen(pin->pinpath) + 5) : NULL;
        if (!tmp)
            st = cerr_set(CAIRN_ENOMEM, "out of memory");
        else
            sprintf(tmp, "%s.tmp", pin->pinpath);
    }
    if (!st)
        st = cfs_open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644, &pin->fd);
    if (!st) {
        uint8_t *b = malloc(PIN_SIZE);
        if (!b) {
            st = cerr_set(CAIRN_ENOMEM, "out of memory");
        } else {
            pin_encode(b, &pin->sb, pin->slot, pin->img);
            st = cio_write(io, pin->fd, b, PIN_SIZE, 0, tmp);
            free(b);
        }
        /* locked before it is visible as a pin: never seen unheld */
        if (!st && flock_retry(pin->fd, LOCK_SH) != 0)
            st = cerr_errno(errno, "could not lock pin file \"%s\"", tmp);
        if (!st)
            st = cfs_rename(tmp, pin->pinpath);
        if (st)
            unlink(tmp);
    }
    pins_dir_unlock(dfd);
    cio_ctx_close(io);
    free(super_path);
    free(tmp);
    free(scr);
    if (st) {
        if (pin->fd >= 0)
            close(pin->fd);
        free(pin->pinpath);
        free(pin->dbpath);
        free(pin->img);
        free(pin);
        return st;
    }
    if (info) {
        info->generation = pin->sb.gen;
        info->redo_lsn = pin->sb.redo;
        info->time_us = pin->sb.time_us;
        info->last_txn_id = pin->sb.last_txn;
        info->timeline = pin->sb.timeline;
        info->collections = pin->sb.ncolls;
        info->db_id = pin->sb.db_id;
    }
    *out = pin;
    return CAIRN_OK;
}

CAIRN_API cairn_status cairn_pin_close(cairn_pin *pin)
{
    cerr_clear();
    if (!pin)
        return CAIRN_OK;
    /* Removed before the lock goes: a scan never sees it stale and alive. */
    cairn_status st = cfs_unlink(pin->pinpath);
    close(pin->fd);
    free(pin->pinpath);
    free(pin->dbpath);
    free(pin->img);
    free(pin);
    return st;
}

/* ---- what a pin holds ------------------------------------------------------------ */

void pin_view(const cairn_pin *pin, struct pin_view *v)
{
    *v = (struct pin_view){.dbpath = pin->dbpath, .sb = &pin->sb, .img = pin->img,
                           .slot = pin->slot, .seg_shift = pin->seg_shift};
}

/* ---- the copy ------------------------------------------------------------------ */

struct copy {
    cairn_pin *pin;
    cio *io;
    const char *root; /* "<target>.partial" */
    cairn_progress_fn progress;
    void *ctx;
    uint64_t done, total;
};

static cairn_status tick(struct copy *cp, uint64_t bytes)
{
    cp->done += bytes;
    if (cp->progress && cp->progress(cp->ctx, cp->done, cp->total))
        return cerr_set(CAIRN_ECANCELED, "copy of checkpoint %" PRIu64 " of \"%s\" canceled "
                        "by the caller", cp->pin->sb.gen, cp->pin->dbpath);
    return CAIRN_OK;
}

static cairn_status sync_close(struct copy *cp, int *fd, const char *path, cairn_status st)
{
    if (*fd < 0)
        return st;
    if (!st)
        st = cio_fdatasync(cp->io, *fd, path);
    close(*fd);
    *fd = -1;
    return st;
}

/* The WAL segment holding the redo LSN, cut at it: the copy's log goes on
 * from the checkpoint and holds nothing after it. */
static cairn_status copy_wal(struct copy *cp)
{
    uint64_t redo = cp->pin->sb.redo;
    if (redo == 0)
        return CAIRN_OK; /* nothing was ever logged: the copy starts a new log */
    uint64_t seg = (uint64_t)1 << cp->pin->seg_shift;
    uint64_t start = (redo - 1) & ~(seg - 1);
    char name[64];
    wal_seg_name(name, sizeof name, cp->pin->timeline, start);
    char sub[80];
    snprintf(sub, sizeof sub, "wal/%s", name);
    char *spath = cairn_path_join(cp->pin->dbpath, sub), *dpath = cairn_path_join(cp->root, sub);
    uint8_t *chunk = malloc((size_t)1 << 20);
    int sfd = -1, dfd = -1;
    cairn_status st = spath && dpath && chunk ? CAIRN_OK
                                              : cerr_set(CAIRN_ENOMEM, "out of memory");
    if (!st) {
        sfd = open(spath, O_RDONLY | O_CLOEXEC);
        if (sfd < 0)
            st = cerr_errno(errno, "could not open WAL segment \"%s\", which holds the redo "
                            "LSN %" PRIu64 " of checkpoint %" PRIu64, spath, redo,
                            cp->pin->sb.gen);
    }
    if (!st)
        st = cfs_open(dpath, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644, &dfd);
    if (!st)
        st = cfs_ftruncate(dfd, seg, dpath);
    for (uint64_t off = 0; !st && off < redo - start;) {
        size_t n = (size_t)CAIRN_MIN((uint64_t)1 << 20, redo - start - off), got = 0;
        st = cio_read(cp->io, sfd, chunk, n, off, spath, &got);
        if (!st && got < n)
            st = cerr_set(CAIRN_ECORRUPT, "WAL segment \"%s\" is cut short at offset %" PRIu64,
                          spath, off + got);
        if (!st)
            st = cio_write(cp->io, dfd, chunk, n, off, dpath);
        if (!st)
            st = tick(cp, n);
        off += n;
    }
    st = sync_close(cp, &dfd, dpath, st);
    if (sfd >= 0)
        close(sfd);
    free(chunk);
    free(spath);
    free(dpath);
    return st;
}

static cairn_status copy_small(struct copy *cp, const char *name, const void *data, size_t len,
                               uint64_t size)
{
    char *dpath = cairn_path_join(cp->root, name);
    if (!dpath)
        return cerr_set(CAIRN_ENOMEM, "out of memory");
    int fd = -1;
    cairn_status st = cfs_open(dpath, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644, &fd);
    if (!st && size > len)
        st = cfs_ftruncate(fd, size, dpath);
    if (!st && len)
        st = cio_write(cp->io, fd, data, len, 0, dpath);
    st = sync_close(cp, &fd, dpath, st);
    free(dpath);
    return st;
}


/* The timeline history files of the source's wal/ (a copy of a database
 * on timeline 2 or later keeps its ancestry, which a restore into it, or
 * its own archive, reads). */
static cairn_status copy_histories(struct copy *cp)
{
    char *sw = cairn_path_join(cp->pin->dbpath, "wal");
    if (!sw)
        return cerr_set(CAIRN_ENOMEM, "out of memory");
    DIR *d = opendir(sw);
    cairn_status st = d ? CAIRN_OK
                        : cerr_errno(errno, "could not open WAL directory \"%s\"", sw);
    struct dirent *e;
    while (!st && (e = readdir(d))) {
        uint32_t tl;
        if (!wal_history_parse_name(e->d_name, &tl))
            continue;
        char *from = cairn_path_join(sw, e->d_name), sub[64];
        char *text = NULL;
        size_t len = 0;
        memcpy(sub, "wal/", 4);
        wal_history_name(sub + 4, sizeof sub - 4, tl);
        st = from ? cfs_read_file(from, &text, &len) : cerr_set(CAIRN_ENOMEM, "out of memory");
        if (!st)
            st = copy_small(cp, sub, text, len, 0);
        free(text);
        free(from);
    }
    if (d)
        closedir(d);
    free(sw);
    return st;
}

struct page_sink {
    struct copy *cp;
    int fd;
    const char *path;
};

/* Writes each verified page at its physical position in the copy. */
static cairn_status write_page(void *vctx, const struct page_ref *r, const uint8_t *page,
                               cairn_status st)
{
    struct page_sink *ps = vctx;
    if (!st)
        st = cio_write(ps->cp->io, ps->fd, page, PAGE_SIZE, (uint64_t)r->phys * PAGE_SIZE,
                       ps->path);
    return st ? st : tick(ps->cp, PAGE_SIZE);
}

/* File i of the image: the same length, every page of the image at its
 * physical position, holes elsewhere. */
static cairn_status copy_pages(struct copy *cp, struct bsrc *b, size_t i)
{
    struct bsrc_file *f = &b->files[i];
    char *dst = cairn_path_join(cp->root, f->name);
    if (!dst)
        return cerr_set(CAIRN_ENOMEM, "out of memory");
    int fd = -1;
    cairn_status st = cfs_open(dst, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644, &fd);
    if (!st)
        st = cfs_ftruncate(fd, (uint64_t)f->npages * PAGE_SIZE, dst);
    struct page_sink ps = {.cp = cp, .fd = fd, .path = dst};
    if (!st)
        st = bsrc_read(b, i, f->refs, f->nrefs, write_page, &ps);
    st = sync_close(cp, &fd, dst, st);
    free(dst);
    return st;
}

/* The image, as the backup source describes it (one walk serves the copy
 * and pitr/ backups), into the new directory. */
static cairn_status do_copy(struct copy *cp)
{
    cairn_pin *pin = cp->pin;
    const struct super *s = &pin->sb;
    struct bsrc *b = NULL;
    /* 1. what the image holds: the catalog, then every map */
    cairn_status st = bsrc_open(pin, &b);
    if (!st) {
        for (size_t i = 0; i < b->nfiles; i++)
            cp->total += (uint64_t)b->files[i].nrefs * PAGE_SIZE;
        if (s->redo)
            cp->total += s->redo - ((s->redo - 1) & ~(((uint64_t)1 << pin->seg_shift) - 1));
    }
    /* 2. the new directory */
    if (!st)
        st = cfs_mkdir(cp->root, 0755);
    for (int i = 0; !st && i < 2; i++) {
        char *sub = cairn_path_join(cp->root, i ? "wal" : "collections");
        st = sub ? cfs_mkdir(sub, 0755) : cerr_set(CAIRN_ENOMEM, "out of memory");
        free(sub);
    }
    if (!st)
        st = copy_small(cp, "meta", b->meta, b->meta_len, 0);
    for (size_t i = 0; !st && i < b->nfiles; i++)
        st = copy_pages(cp, b, i);
    if (!st)
        st = copy_wal(cp);
    if (!st)
        st = copy_histories(cp);
    if (!st)
        st = copy_small(cp, "superblock", b->super, b->super_len, 0);
    for (int i = 0; !st && i < 3; i++) {
        char *d = i == 0 ? cairn_path_join(cp->root, "collections")
                  : i == 1 ? cairn_path_join(cp->root, "wal") : strdup(cp->root);
        st = d ? cfs_fsync_dir(d) : cerr_set(CAIRN_ENOMEM, "out of memory");
        free(d);
    }
    bsrc_free(b);
    return st;
}

CAIRN_API cairn_status cairn_pin_copy(cairn_pin *pin, const char *target,
                                      cairn_progress_fn progress, void *ctx)
{
    cerr_clear();
    if (!pin || !target || !*target)
        return cerr_set(CAIRN_EINVAL, "cairn_pin_copy: NULL argument");
    struct stat sb;
    if (lstat(target, &sb) == 0)
        return cerr_set(CAIRN_EEXIST, "cairn_pin_copy: target \"%s\" already exists", target);
    size_t tl = strlen(target);
    char *root = malloc(tl + 9);
    if (!root)
        return cerr_set(CAIRN_ENOMEM, "out of memory");
    memcpy(root, target, tl);
    memcpy(root + tl, ".partial", 9);
    if (lstat(root, &sb) == 0) {
        cairn_status st = cerr_set(CAIRN_EEXIST, "cairn_pin_copy: \"%s\" exists (left by a "
                                   "copy that did not finish?): remove it first", root);
        free(root);
        return st;
    }
    struct copy cp = {.pin = pin, .root = root, .progress = progress, .ctx = ctx};
    cairn_status st = cio_ctx_open(&cp.io, CAIRN_IO_DEFAULT, PFILE_RUNS);
    if (!st)
        st = do_copy(&cp);
    if (!st)
        st = cfs_rename(root, target);
    if (!st)
        st = cfs_fsync_parent(target); /* the new name is durable */
    if (st) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", cairn_last_error());
        cfs_remove_tree(root);
        st = cerr_set(st, "could not copy checkpoint %" PRIu64 " of \"%s\" to \"%s\": %s",
                      pin->sb.gen, pin->dbpath, target, msg);
    }
    cio_ctx_close(cp.io);
    free(root);
    return st;
}
