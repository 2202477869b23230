/*
 * ingest_disk.c — the disk's own bound, measured by the same harness.
 *
 * Each worker thread owns one file in the run's fresh directory, written
 * full of zeros and fsync'd before the clock starts (a "preallocated,
 * zero-filled" file: the fast case for an overwrite, see LIMITS.md). One
 * commit is one buffered pwrite() + fdatasync() at the next sequential
 * offset, wrapping at the end of the file:
 *
 *     single-point workloads (batch == 1): 4 KiB per op
 *     batch workloads        (batch > 1):  1 MiB per op
 *
 * The bytes written are nonzero (taken from the vector pool) so that no
 * layer below can shortcut zero pages. MB/s counts bytes actually written.
 */
#include "ingest.h"
#include "bench_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DISK_SMALL_OP 4096u
#define DISK_LARGE_OP (1u << 20)

struct disk_state {
    char dir[4096];
    size_t op_bytes;
    uint64_t file_bytes;
    const void *fill;
};

struct disk_thread {
    struct disk_state *ds;
    int fd;
    uint64_t off;
    char path[4200];
};

static int disk_open(const char *dir, const struct ingest_cfg *cfg,
                     void **state, char *err) {
    struct disk_state *ds = calloc(1, sizeof(*ds));
    if (!ds) {
        snprintf(err, INGEST_ERRLEN, "out of memory");
        return -1;
    }
    snprintf(ds->dir, sizeof(ds->dir), "%s", dir);
    ds->op_bytes = cfg->batch > 1 ? DISK_LARGE_OP : DISK_SMALL_OP;
    ds->file_bytes = cfg->disk_file_bytes;
    if (ds->file_bytes < ds->op_bytes)
        ds->file_bytes = ds->op_bytes;
    ds->file_bytes -= ds->file_bytes % ds->op_bytes;
    ds->fill = cfg->fill;
    *state = ds;
    return 0;
}

static int disk_thread_open(void *state, unsigned tid, void **tstate,
                            char *err) {
    struct disk_state *ds = state;
    struct disk_thread *t = calloc(1, sizeof(*t));
    if (!t) {
        snprintf(err, INGEST_ERRLEN, "out of memory");
        return -1;
    }
    t->ds = ds;
    snprintf(t->path, sizeof(t->path), "%s/disk-%02u.dat", ds->dir, tid);
    t->fd = open(t->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (t->fd < 0) {
        snprintf(err, INGEST_ERRLEN, "could not create file \"%s\": %s",
                 t->path, strerror(errno));
        free(t);
        return -1;
    }
    /* Zero-filled and fsync'd, so that the timed overwrites change no
     * metadata but mtime. */
    if (disk_prefill(t->fd, t->path, ds->file_bytes, err, INGEST_ERRLEN) != 0) {
        close(t->fd);
        free(t);
        return -1;
    }
    int dfd = open(ds->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    *tstate = t;
    return 0;
}

static int disk_commit(void *tstate, const struct ingest_point *pts, size_t n,
                       char *err) {
    struct disk_thread *t = tstate;
    struct disk_state *ds = t->ds;
    (void)pts;
    (void)n;
    if (disk_pwrite_all(t->fd, ds->fill, ds->op_bytes, t->off, t->path, err,
                        INGEST_ERRLEN) != 0)
        return -1;
    if (fdatasync(t->fd) != 0) {
        snprintf(err, INGEST_ERRLEN, "could not fdatasync file \"%s\": %s",
                 t->path, strerror(errno));
        return -1;
    }
    t->off += ds->op_bytes;
    if (t->off >= ds->file_bytes)
        t->off = 0;
    return 0;
}

static void disk_thread_close(void *tstate) {
    struct disk_thread *t = tstate;
    if (!t)
        return;
    close(t->fd);
    free(t);
}

static int disk_close(void *state, char *err) {
    (void)err;
    free(state);
    return 0;
}

static uint64_t disk_commit_bytes(void *state, size_t n) {
    (void)n;
    return ((struct disk_state *)state)->op_bytes;
}

static const char *disk_version(void) { return "pwrite+fdatasync"; }

const struct ingest_engine ingest_engine_disk = {
    .name = "disk",
    .open = disk_open,
    .thread_open = disk_thread_open,
    .commit = disk_commit,
    .thread_close = disk_thread_close,
    .close = disk_close,
    .commit_bytes = disk_commit_bytes,
    .version = disk_version,
};
