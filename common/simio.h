/*
 * simio.h — the crash simulator's hooks, for io.c only (the test-facing API,
 * cio_sim_*, is in io.h; the model is described at the top of simio.c).
 *
 * While a simulation runs, io.c sends every system call that reads or
 * changes a file through these functions instead of issuing it itself. Each
 * returns what the system call would (a count, a descriptor or 0) or -errno.
 */
#ifndef CAIRN_COMMON_SIMIO_H
#define CAIRN_COMMON_SIMIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Set while a simulation runs (atomic; authoritative under the sim mutex). */
extern int cio_sim_running;

static inline int sim_on(void)
{
    return __atomic_load_n(&cio_sim_running, __ATOMIC_ACQUIRE);
}

int64_t sim_pwrite(int fd, const void *buf, size_t n, uint64_t off, const char *path);
int64_t sim_pread(int fd, void *buf, size_t n, uint64_t off, const char *path);
int sim_sync(int fd, int datasync, const char *path);
/* open(2) with flags | O_CLOEXEC; O_CREAT / O_TRUNC make it a counted op. */
int sim_open(const char *path, int flags, mode_t mode);
int sim_ftruncate(int fd, uint64_t size, const char *path);
int sim_rename(const char *from, const char *to);
int sim_unlink(const char *path);
int sim_mkdir(const char *path, mode_t mode);
/* fsync of the directory open as dirfd (named dir in traces). */
int sim_fsync_dir(int dirfd, const char *dir);

#endif
