/*
 * fs.c — composite file operations built on io.c: atomic publish
 * (cairn_durable_replace), zero-filled preallocation (cfs_create_zeroed),
 * whole-file reads and the directory lock. Every system call that can fail
 * goes through cio_* or cfs_* so the fault seam sees it; only the cleanup
 * of a temporary file after a failure calls unlink() directly (best effort,
 * not counted).
 *
 * Publish recipe (both durable_replace and create_zeroed):
 *   1. open "<path>.tmp" (O_CREAT|O_TRUNC), write everything;
 *   2. fsync/fdatasync it, close it;
 *   3. rename it over <path>;
 *   4. fsync the directory holding <path>.
 * A crash at any step leaves either the old <path> or the new one, plus
 * possibly a stale "<path>.tmp" that the next publish truncates.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cairn.h"
#include "common/err.h"
#include "common/io.h"
#include "common/util.h"

#define ZERO_CHUNK ((size_t)1 << 20)

static const char *pname(const char *path)
{
    return path ? path : "(unnamed)";
}

/* "<path>.tmp" in a malloc'd string, or NULL (message set). */
static char *tmp_name(const char *path)
{
    size_t n = strlen(path);
    char *t = malloc(n + 5);
    if (!t) {
        cerr_set(CAIRN_ENOMEM, "could not publish file \"%s\": out of memory", path);
        return NULL;
    }
    memcpy(t, path, n);
    memcpy(t + n, ".tmp", 5);
    return t;
}

/* The directory holding path ("." when there is no slash). */
static char *dir_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *d;
    if (!slash) {
        d = strdup(".");
    } else if (slash == path) {
        d = strdup("/");
    } else {
        size_t n = (size_t)(slash - path);
        d = malloc(n + 1);
        if (d) {
            memcpy(d, path, n);
            d[n] = '\0';
        }
    }
    if (!d)
        cerr_set(CAIRN_ENOMEM, "could not name the directory of \"%s\": out of memory", path);
    return d;
}

/* Steps 2b-4 of the recipe, after tmp was written and synced. Closes fd. */
static cairn_status publish(int fd, const char *tmp, const char *path)
{
    cairn_status st = cfs_close(fd, tmp);
    if (st)
        return st;
    st = cfs_rename(tmp, path);
    return st ? st : cfs_fsync_parent(path);
}

cairn_status cfs_fsync_parent(const char *path)
{
    char *dir = dir_name(path);
    if (!dir)
        return CAIRN_ENOMEM;
    cairn_status st = cfs_fsync_dir(dir);
    free(dir);
    return st;
}

cairn_status cfs_mkdir_durable(const char *path, mode_t mode)
{
    cairn_status st = cfs_mkdir(path, mode);
    return st ? st : cfs_fsync_parent(path);
}

static int check_path(const char *path, const char *verb)
{
    if (path && path[0])
        return 0;
    cerr_set(CAIRN_EINVAL, "could not %s file: empty path", verb);
    return 1;
}

cairn_status cairn_durable_replace(const char *path, const void *data, size_t len)
{
    if (check_path(path, "publish"))
        return CAIRN_EINVAL;
    if (len > 0 && !data)
        return cerr_set(CAIRN_EINVAL, "could not publish file \"%s\": no data", path);
    char *tmp = tmp_name(path);
    if (!tmp)
        return CAIRN_ENOMEM;
    cio *c = NULL;
    int fd = -1;
    cairn_status st = cio_ctx_open(&c, CAIRN_IO_POSIX, 0);
    if (st)
        goto out;
    st = cfs_open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644, &fd);
    if (st)
        goto out;
    st = cio_write(c, fd, data, len, 0, tmp);
    if (!st)
        st = cio_fsync(c, fd, tmp);
    if (st) {
        close(fd);
        unlink(tmp);
        goto out;
    }
    st = publish(fd, tmp, path);
    if (st)
        unlink(tmp); /* ENOENT after a successful rename is harmless */
out:
    cio_ctx_close(c);
    free(tmp);
    return st;
}

/* One zero-filled buffer for the process, made once and never written. */
static const unsigned char *zero_buf;
static pthread_once_t zero_once = PTHREAD_ONCE_INIT;

static void zero_make(void)
{
    zero_buf = calloc(1, ZERO_CHUNK);
}

cairn_status cfs_create_zeroed(cio *c, const char *path, uint64_t size, const void *head,
                               size_t head_len)
{
    if (check_path(path, "create"))
        return CAIRN_EINVAL;
    if (head_len > size)
        return cerr_set(CAIRN_EINVAL,
                        "could not create file \"%s\": head of %zu bytes is larger than "
                        "the file size %llu",
                        path, head_len, (unsigned long long)size);
    if (head_len > 0 && !head)
        return cerr_set(CAIRN_EINVAL, "could not create file \"%s\": no head data", path);
    pthread_once(&zero_once, zero_make);
    if (!zero_buf)
        return cerr_set(CAIRN_ENOMEM, "could not create file \"%s\": out of memory", path);
    char *tmp = tmp_name(path);
    if (!tmp)
        return CAIRN_ENOMEM;
    cio *own = NULL;
    int fd = -1;
    cairn_status st = CAIRN_OK;
    if (!c) {
        st = cio_ctx_open(&own, CAIRN_IO_POSIX, 0);
        if (st)
            goto out;
        c = own;
    }
    st = cfs_open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644, &fd);
    if (st)
        goto out;
    if (head_len > 0)
        st = cio_write(c, fd, head, head_len, 0, tmp);
    /* Zeros from head_len to size; chunks end on 1 MiB boundaries. */
    for (uint64_t off = head_len; !st && off < size;) {
        uint64_t end = CAIRN_MIN(size, (off / ZERO_CHUNK + 1) * ZERO_CHUNK);
        st = cio_write(c, fd, zero_buf, (size_t)(end - off), off, tmp);
        off = end;
    }
    if (!st)
        st = cio_fdatasync(c, fd, tmp);
    if (st) {
        close(fd);
        unlink(tmp);
        goto out;
    }
    st = publish(fd, tmp, path);
    if (st)
        unlink(tmp);
out:
    cio_ctx_close(own);
    free(tmp);
    return st;
}

cairn_status cfs_read_file_into(const char *path, char **buf, size_t *cap, size_t *len)
{
    if (!buf || !cap || !len)
        return cerr_set(CAIRN_EINVAL, "could not read file \"%s\": no output pointer",
                        pname(path));
    *len = 0;
    if (check_path(path, "read"))
        return CAIRN_EINVAL;
    int fd = -1;
    cairn_status st = cfs_open(path, O_RDONLY, 0, &fd);
    if (st)
        return st;
    cio *c = NULL;
    size_t want = 0, used = 0;
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        st = cerr_errno(errno, "could not stat file \"%s\"", path);
        goto out;
    }
    st = cio_ctx_open(&c, CAIRN_IO_POSIX, 0);
    if (st)
        goto out;
    want = (size_t)(sb.st_size > 0 ? sb.st_size : 0) + 1;
    /* Read until a short read proves end of file (the file may have grown). */
    for (;;) {
        if (*cap < want + 1) {
            char *nb = realloc(*buf, want + 1);
            if (!nb) {
                st = cerr_set(CAIRN_ENOMEM, "could not read file \"%s\": out of memory", path);
                goto out;
            }
            *buf = nb;
            *cap = want + 1;
        }
        size_t got = 0;
        st = cio_read(c, fd, *buf + used, want - used, used, path, &got);
        if (st)
            goto out;
        used += got;
        if (used < want)
            break;
        want *= 2;
    }
    (*buf)[used] = '\0';
    *len = used;
out:
    cio_ctx_close(c);
    close(fd);
    return st;
}

cairn_status cfs_read_file(const char *path, char **data, size_t *len)
{
    if (!data || !len)
        return cerr_set(CAIRN_EINVAL, "could not read file \"%s\": no output pointer",
                        pname(path));
    *data = NULL;
    char *buf = NULL;
    size_t cap = 0;
    cairn_status st = cfs_read_file_into(path, &buf, &cap, len);
    if (st)
        free(buf);
    else
        *data = buf;
    return st;
}

cairn_status cfs_lock(const char *path, int *fd_out)
{
    return cfs_lock_how(path, LOCK_EX | LOCK_NB, fd_out);
}

cairn_status cfs_lock_how(const char *path, int how, int *fd_out)
{
    if (!fd_out)
        return cerr_set(CAIRN_EINVAL, "could not lock file \"%s\": no output pointer",
                        pname(path));
    *fd_out = -1;
    if (check_path(path, "lock"))
        return CAIRN_EINVAL;
    int fd;
    cairn_status st = cfs_open(path, O_RDWR | O_CREAT, 0644, &fd);
    if (st)
        return st;
    int r;
    do
        r = flock(fd, how);
    while (r != 0 && errno == EINTR);
    if (r != 0) {
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK)
            return cerr_set(CAIRN_EBUSY,
                            "could not lock file \"%s\": it is held by another handle or "
                            "process",
                            path);
        return cerr_errno(e, "could not lock file \"%s\"", path);
    }
    *fd_out = fd;
    return CAIRN_OK;
}

void cfs_unlock(int fd)
{
    if (fd < 0)
        return;
    flock(fd, LOCK_UN);
    close(fd);
}

/* Best effort: a half-built directory that is about to be rebuilt or was
 * abandoned (no fsync: whatever a crash leaves is removed again). */
void cfs_remove_tree(const char *root)
{
    DIR *d = opendir(root);
    if (!d) {
        unlink(root);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char *p = cairn_path_join(root, e->d_name);
        if (!p)
            continue;
        struct stat sb;
        if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode))
            cfs_remove_tree(p);
        else
            unlink(p);
        free(p);
    }
    closedir(d);
    rmdir(root);
}
