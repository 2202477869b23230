/*
 * io.h — the one I/O layer. Every read, write, sync and file operation of
 * the engine goes through here, so that a test can swap what happens.
 *
 * A `cio` is an I/O context owned by ONE thread at a time (an io_uring ring
 * is not thread-safe). Two backends:
 *   - io_uring: reads/writes/fdatasync submitted as SQEs; a write followed by
 *     a sync is one submission of two linked SQEs (IOSQE_IO_LINK).
 *   - posix: pwrite/pread/fdatasync.
 * cio_ctx_open(CAIRN_IO_DEFAULT) tries io_uring and falls back to posix with
 * one warning log line ("io_uring unavailable (<reason>); using posix I/O").
 *
 * Every completion is checked: short writes/reads are resubmitted for the
 * rest, -EAGAIN/-EINTR are retried (bounded, 1000 times), any other error is
 * returned as a status with a message naming the path and offset. A failed
 * fdatasync is reported and NEVER retried (the caller poisons its handle).
 *
 * Fault seam (tests): a process-wide plan makes the Nth matching operation
 * fail, in both backends and in the file operations below. Kinds:
 *   EIO, ENOSPC   the operation fails with that errno (nothing is written)
 *   SHORT         a write writes only half of its bytes (really, on disk)
 *                 and reports the short count; the layer must resubmit
 *   EAGAIN/EINTR  the operation reports -EAGAIN/-EINTR once; retried
 * once: only the Nth matching op; persistent: the Nth and every later one.
 */
#ifndef CAIRN_COMMON_IO_H
#define CAIRN_COMMON_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cairn.h"

typedef struct cio cio;

/* want: CAIRN_IO_DEFAULT / CAIRN_IO_URING / CAIRN_IO_POSIX.
 * depth: queue depth for io_uring (ignored by posix). */
cairn_status cio_ctx_open(cio **out, cairn_io_backend want, unsigned depth);
void cio_ctx_close(cio *c);
/* "io_uring" or "posix" */
const char *cio_name(const cio *c);
/* Whether io_uring can be set up in this process (cached). */
int cio_uring_available(void);

/* Writes all len bytes at off. path is only used in messages. */
cairn_status cio_write(cio *c, int fd, const void *buf, size_t len, uint64_t off,
                       const char *path);
/* Reads up to len bytes at off; *got < len only at end of file. */
cairn_status cio_read(cio *c, int fd, void *buf, size_t len, uint64_t off,
                      const char *path, size_t *got);
cairn_status cio_fdatasync(cio *c, int fd, const char *path);
cairn_status cio_fsync(cio *c, int fd, const char *path);
/* Write then fdatasync, in one submission on io_uring (linked SQEs). If the
 * write fails the sync is not issued. */
cairn_status cio_write_sync(cio *c, int fd, const void *buf, size_t len,
                            uint64_t off, const char *path);

/* Many reads or writes at once: on io_uring up to the queue depth of them
 * in one submission (one system call), on posix one after the other. Each
 * request is finished like cio_write / cio_read (a short completion is
 * resubmitted for the rest; a read stops early only at end of file, got
 * says how far) and is one operation for the fault seam. Every request is
 * attempted; the first failure is returned, its message naming its path
 * and offset. */
struct cio_req {
    int fd;
    void *buf;
    size_t len;
    uint64_t off;
    const char *path;
    size_t got; /* out: bytes done */
};
cairn_status cio_write_batch(cio *c, struct cio_req *reqs, size_t n);
/* Reads in two halves, so that the caller can work while they run: _begin
 * submits them (at most the queue depth, one batch in flight per context,
 * no other I/O on it until _end) and returns at once; _end waits and
 * finishes them. posix and the simulator read in _end. The fault seam
 * decides each request's fate in _begin. */
cairn_status cio_read_batch_begin(cio *c, struct cio_req *reqs, size_t n);
/* The most requests cio_read_batch_begin takes at once on c. */
unsigned cio_batch_max(const cio *c);
cairn_status cio_read_batch_end(cio *c, struct cio_req *reqs, size_t n);

/* ---- file operations (synchronous, fault seam kind CIO_FOP_META/SYNC) ---- */
cairn_status cfs_open(const char *path, int flags, mode_t mode, int *fd_out);
cairn_status cfs_close(int fd, const char *path);
cairn_status cfs_ftruncate(int fd, uint64_t size, const char *path);
cairn_status cfs_rename(const char *from, const char *to);
/* Swaps the names a and b (both must exist) in one atomic step
 * (renameat2 RENAME_EXCHANGE); not durable until both parents are fsynced. */
cairn_status cfs_exchange(const char *a, const char *b);
cairn_status cfs_unlink(const char *path);
cairn_status cfs_mkdir(const char *path, mode_t mode); /* EEXIST is OK */
/* cfs_mkdir, then fsync of the directory holding path: the new directory's
 * name is durable when this returns. */
cairn_status cfs_mkdir_durable(const char *path, mode_t mode);
/* fsync of a directory (after create/rename/unlink inside it). */
cairn_status cfs_fsync_dir(const char *dir);
/* fsync of the directory holding path: its entry is durable. */
cairn_status cfs_fsync_parent(const char *path);
/* Atomic publish: write path.tmp, fsync it, rename over path, fsync dir. */
cairn_status cairn_durable_replace(const char *path, const void *data, size_t len);
/* Removes a directory tree (files, links and subdirectories; links are
 * not followed), best effort: errors are ignored. For half-built output
 * directories (a copy, a restore) that are removed on failure. */
void cfs_remove_tree(const char *root);
/* Reads a whole (small) file into a malloc'd buffer (+1 NUL byte). */
cairn_status cfs_read_file(const char *path, char **data, size_t *len);
/* The same into *buf, a malloc'd buffer of *cap bytes (NULL and 0 to
 * start) grown with realloc when the file needs more: a caller reading
 * many files keeps one buffer. On failure *buf stays the caller's (its
 * bytes unspecified). */
cairn_status cfs_read_file_into(const char *path, char **buf, size_t *cap, size_t *len);
/* Exclusive advisory lock (flock LOCK_EX|LOCK_NB) on path, created if missing.
 * Held by another handle or process -> CAIRN_EBUSY. */
cairn_status cfs_lock(const char *path, int *fd_out);
/* The same with flock's `how`: LOCK_EX or LOCK_SH, with LOCK_NB or
 * waiting for the lock. */
cairn_status cfs_lock_how(const char *path, int how, int *fd_out);
void cfs_unlock(int fd);
/* Creates `path` of `size` bytes filled with zeros except `head` (head_len
 * bytes at offset 0), via path.tmp + fsync + rename + dir fsync. */
cairn_status cfs_create_zeroed(cio *c, const char *path, uint64_t size,
                               const void *head, size_t head_len);

/* ---- fault seam -------------------------------------------------------- */
enum cio_fault_ops {
    CIO_FOP_WRITE = 1u << 0, /* cio_write, the write half of cio_write_sync */
    CIO_FOP_SYNC = 1u << 1,  /* fdatasync/fsync, dir fsync */
    CIO_FOP_READ = 1u << 2,
    CIO_FOP_META = 1u << 3   /* open(O_CREAT), rename, unlink, ftruncate, mkdir */
};
enum cio_fault_kind {
    CIO_FAULT_EIO = 1,
    CIO_FAULT_ENOSPC = 2,
    CIO_FAULT_SHORT = 3,
    CIO_FAULT_EAGAIN = 4,
    CIO_FAULT_EINTR = 5
};
struct cio_fault_plan {
    unsigned ops;          /* mask of enum cio_fault_ops */
    uint64_t nth;          /* 1-based index among matching ops */
    enum cio_fault_kind kind;
    int persistent;        /* 0: only the nth; 1: nth and all later */
};
/* Installs a plan (copied) and resets the counter; NULL removes it. */
void cio_fault_set(const struct cio_fault_plan *plan);
/* Matching operations counted since the plan was set. */
uint64_t cio_fault_count(void);
/* Faults injected since the plan was set. */
uint64_t cio_fault_fired(void);

/* ---- crash simulator (tests) -------------------------------------------
 * A power-loss simulator for one process (the model and its choices are
 * described at the top of common/simio.c). While it runs, every operation
 * of this layer is serialized under one mutex and done for real on the files
 * (reads see the "page cache"), io_uring is not used, syncs are modeled
 * instead of issued, and the simulator keeps what it needs to undo whatever
 * is not durable yet. Operations are counted (1-based) in the order the
 * simulator sees them: every write system call, fdatasync/fsync, open with
 * O_CREAT or O_TRUNC, ftruncate, rename, unlink, mkdir and directory fsync.
 * Reads, plain opens and closes are not counted.
 *
 * At op number crash_at (or at cio_sim_crash()) the power fails: every
 * write not yet made durable by a sync of its file is kept, reverted (in
 * whole or to an earlier version) or filled with garbage, sector by sector;
 * every create, rename, unlink and mkdir not yet made durable by an fsync of
 * its directory is kept or lost; then the process _exit()s with exit_code.
 * Every choice comes from (seed, crash point).
 */
enum cio_sim_data_policy {
    CIO_SIM_DATA_RANDOM = 0, /* per file and sector, from the seed */
    CIO_SIM_DATA_KEEP,       /* every unsynced write reaches the disk */
    CIO_SIM_DATA_REVERT,     /* every unsynced write is lost */
    CIO_SIM_DATA_GARBAGE     /* every sector of an unsynced write is garbage */
};
enum cio_sim_dir_policy {
    CIO_SIM_DIR_RANDOM = 0, /* each unsynced entry change kept or lost, from the seed */
    CIO_SIM_DIR_KEEP,
    CIO_SIM_DIR_LOSE
};
struct cio_sim_config {
    uint64_t seed;
    uint64_t crash_at;     /* 1-based op index; 0: only cio_sim_crash() */
    unsigned sector;       /* 512 or 4096; 0: picked from the seed */
    const char *stash_dir; /* existing directory on the same file system as the
                              files: keeps unlinked and replaced files (links) */
    int exit_code;         /* _exit status after a crash */
    enum cio_sim_data_policy data;
    enum cio_sim_dir_policy dir;
    int torn_neighbours;   /* garbage covers whole sectors, durable bytes beside
                              an unsynced write included (no powersafe overwrite) */
    int atomic_sectors;    /* a sector is written whole or not at all: the random
                              policy never draws garbage */
    int verbose;           /* 1: the crash and its choices on stderr; 2: every op */
};
/* Starts simulating (CAIRN_EBUSY if one runs already). */
cairn_status cio_sim_start(const struct cio_sim_config *cfg);
/* Operations counted since cio_sim_start. Blocks (until the process exits)
 * while a crash is being applied: a test calls it before reporting a
 * failure from a thread that may have seen the crash half done. */
uint64_t cio_sim_ops(void);
/* The power fails now: the crash is applied and the process _exit()s. */
_Noreturn void cio_sim_crash(void);
/* Applies a crash now and ends the simulation, without exiting (unit tests). */
cairn_status cio_sim_crash_apply(void);
/* Ends the simulation without a crash (everything counts as durable). */
void cio_sim_stop(void);

#endif
