/*
 * store.c — the local-directory backend of the repository store (store.h):
 * an object "a/b/c" is the file DIR/a/b/c.
 *
 * Put recipe (atomic publish; every step through common/io.h, so the fault
 * seam and the crash simulator see it):
 *   1. each missing directory level of the name, top down: mkdir, fsync of
 *      the directory holding it (cfs_mkdir_durable), so the object's path
 *      survives a crash once step 5 is done;
 *   2. open "<name>.tmp-<16 random hex digits>" beside the object
 *      (O_CREAT|O_EXCL: two puts never share a temporary), write it all;
 *   3. fsync it, close it;
 *   4. rename it over the object's name;
 *   5. fsync the object's directory.
 * A failure in steps 2-4 removes the temporary (best effort, with a plain
 * unlink() that the seam does not count, as fs.c does) and leaves the old
 * object, or none. A failure in step 5 leaves the whole new object whose
 * durability is unknown, and is reported. A crash leaves either object and
 * perhaps a temporary, which store_local_open removes (unless told not to
 * look: STORE_NO_SWEEP) and list never shows.
 *
 * Names: store_name_check enforces store.h's rules, and two that keep the
 * recipe sound: a part is at most STORE_PART_MAX bytes (its temporary name,
 * 21 bytes longer, must fit the file system's 255-byte NAME_MAX), and no
 * part looks like a temporary ("<x>.tmp-" + 16 lower-case hex digits), so
 * that an object can never be mistaken for one and removed at open.
 *
 * A directory is not an object: get/stat of a name that is a directory
 * say CAIRN_ENOTFOUND, del of one does nothing. Empty directories left by
 * del stay (blobs/xx directories are reused).
 *
 * Threads: no state is shared between calls (each opens its own posix I/O
 * context), so one store may be used by several threads at once for
 * different names. store_local_open removes every temporary it finds: only
 * one process may write a repository at a time (the caller's lock).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cairn.h"
#include "common/err.h"
#include "common/io.h"
#include "common/log.h"
#include "common/util.h"
#include "pitr/store.h"

#define STORE_NAME_MAX 255u
#define STORE_TMP_MARK ".tmp-"
/* A temporary file untouched for this long belongs to a put that died. */
#define STORE_TMP_STALE_S 3600
#define STORE_TMP_HEX 16u
/* ".tmp-" + 16 hex digits */
#define STORE_TMP_SUFFIX (sizeof STORE_TMP_MARK - 1 + STORE_TMP_HEX)
#define STORE_PART_MAX (255u - STORE_TMP_SUFFIX)

struct local_store {
    pitr_store base; /* first: callers hold &base */
};

static const char *repo(const pitr_store *s)
{
    return s->where;
}

/* ------------------------------------------------------------------------
 * Names
 * ---------------------------------------------------------------------- */

/* Whether the n bytes at part end in ".tmp-" + 16 lower-case hex digits
 * after at least one byte: the shape of the temporaries put makes. */
static bool is_tmp_part(const char *part, size_t n)
{
    if (n <= STORE_TMP_SUFFIX)
        return false;
    const char *m = part + n - STORE_TMP_SUFFIX;
    if (memcmp(m, STORE_TMP_MARK, sizeof STORE_TMP_MARK - 1) != 0)
        return false;
    for (const char *h = m + sizeof STORE_TMP_MARK - 1; h < part + n; h++)
        if (!((*h >= '0' && *h <= '9') || (*h >= 'a' && *h <= 'f')))
            return false;
    return true;
}

static cairn_status bad_name(const char *name, const char *why)
{
    /* The name may be long or odd: show at most 80 bytes of it. */
    size_t n = strlen(name);
    return cerr_set(CAIRN_EINVAL, "could not use object name \"%.80s%s\": %s", name,
                    n > 80 ? "..." : "", why);
}

cairn_status store_name_check(const char *name)
{
    if (!name)
        return cerr_set(CAIRN_EINVAL, "could not use object name: none given");
    if (!name[0])
        return bad_name(name, "it is empty");
    if (strnlen(name, STORE_NAME_MAX + 1) > STORE_NAME_MAX)
        return bad_name(name, "it is longer than 255 bytes");
    if (name[0] == '/')
        return bad_name(name, "it starts with '/' (names are relative)");
    if (strchr(name, '\\'))
        return bad_name(name, "it holds a backslash");
    for (const char *p = name;;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 0)
            return bad_name(name, slash ? "it has an empty part (\"//\" or a leading '/')"
                                        : "it ends with '/'");
        if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return bad_name(name, "it has a \".\" or \"..\" part");
        if (n > STORE_PART_MAX)
            return bad_name(name, "a part is longer than 234 bytes");
        if (is_tmp_part(p, n))
            return bad_name(name, "a part has the form of a temporary file "
                                  "(\"<x>.tmp-\" and 16 hex digits)");
        if (!slash)
            return CAIRN_OK;
        p = slash + 1;
    }
}

/* "<repo>/<name>" or NULL with the message set. */
static char *obj_path(pitr_store *s, const char *verb, const char *name)
{
    char *p = cairn_path_join(repo(s), name);
    if (!p)
        cerr_set(CAIRN_ENOMEM, "could not %s object \"%s\" in repository \"%s\": out of memory",
                 verb, name, repo(s));
    return p;
}

/* ------------------------------------------------------------------------
 * Directories
 * ---------------------------------------------------------------------- */

static bool is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* Creates every missing directory of path[0..len) whose level starts at or
 * after `from` (the part before is known to exist), each durably: mkdir,
 * then fsync of its parent. path is modified and restored. */
static cairn_status mkdirs_durable(char *path, size_t from, size_t len)
{
    for (size_t i = from; i <= len; i++) {
        if (i < len && path[i] != '/')
            continue;
        if (i == 0 || path[i - 1] == '/')
            continue; /* the root, or a repeated slash */
        char keep = path[i];
        path[i] = '\0';
        cairn_status st = is_dir(path) ? CAIRN_OK : cfs_mkdir_durable(path, 0755);
        path[i] = keep;
        if (st)
            return st;
    }
    return CAIRN_OK;
}

/* The directories of an object path (everything before its last '/'):
 * already there in the common case, one stat. */
static cairn_status ensure_parent(pitr_store *s, char *path)
{
    char *slash = strrchr(path, '/');
    size_t len = (size_t)(slash - path);
    *slash = '\0';
    bool there = is_dir(path);
    *slash = '/';
    if (there)
        return CAIRN_OK;
    /* The repository's own directory exists (open checked it); create
     * the levels of the name below it. */
    return mkdirs_durable(path, strlen(repo(s)) + 1, len);
}

/* ------------------------------------------------------------------------
 * Tree walk (list, and the removal of temporaries at open)
 * ---------------------------------------------------------------------- */

struct entry {
    char *name;
    uint64_t size;
};

struct walk {
    pitr_store *s;
    const char *prefix; /* list: names must start with it; NULL: cleanup */
    size_t plen;
    struct entry *e;
    size_t n, cap;
};

static cairn_status walk_add(struct walk *w, const char *name, uint64_t size)
{
    if (w->n == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 64;
        struct entry *ne = realloc(w->e, cap * sizeof *ne);
        if (!ne)
            return CAIRN_ENOMEM;
        w->e = ne;
        w->cap = cap;
    }
    char *copy = strdup(name);
    if (!copy)
        return CAIRN_ENOMEM;
    w->e[w->n].name = copy;
    w->e[w->n].size = size;
    w->n++;
    return CAIRN_OK;
}

/* Whether a directory whose names start with "rel/" can hold names that
 * start with the prefix: one of the two starts with the other. */
static bool dir_may_match(const struct walk *w, const char *rel, size_t rlen)
{
    size_t n = CAIRN_MIN(rlen, w->plen);
    return memcmp(rel, w->prefix, n) == 0;
}

/*
 * Visits the directory abs, whose objects are named "rel<entry>" (rel is
 * "" or ends with '/'). List mode collects the matching objects; cleanup
 * mode removes temporaries. rel and abs are buffers of PATH_MAX-ish size
 * that are extended and restored.
 */
static cairn_status walk_dir(struct walk *w, char *abs, size_t alen, char *rel, size_t rlen,
                             size_t cap)
{
    DIR *d = opendir(abs);
    if (!d) {
        int e = errno;
        if ((e == ENOENT || e == ENOTDIR) && w->prefix)
            return CAIRN_OK; /* nothing under this prefix */
        return cerr_errno(e, "could not read directory \"%s\"", abs);
    }
    cairn_status st = CAIRN_OK;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de) {
            if (errno)
                st = cerr_errno(errno, "could not read directory \"%s\"", abs);
            break;
        }
        const char *nm = de->d_name;
        if (strcmp(nm, ".") == 0 || strcmp(nm, "..") == 0)
            continue;
        size_t nl = strlen(nm);
        if (alen + 1 + nl + 1 >= cap || rlen + nl + 2 >= cap)
            continue; /* longer than any valid name: not an object */
        struct stat sb;
        if (fstatat(dirfd(d), nm, &sb, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno == ENOENT)
                continue; /* went away meanwhile */
            st = cerr_errno(errno, "could not stat \"%s/%s\"", abs, nm);
            break;
        }
        abs[alen] = '/';
        memcpy(abs + alen + 1, nm, nl + 1);
        memcpy(rel + rlen, nm, nl + 1);
        if (S_ISDIR(sb.st_mode)) {
            rel[rlen + nl] = '/';
            rel[rlen + nl + 1] = '\0';
            if (!w->prefix || dir_may_match(w, rel, rlen + nl + 1))
                st = walk_dir(w, abs, alen + 1 + nl, rel, rlen + nl + 1, cap);
        } else if (S_ISREG(sb.st_mode)) {
            bool tmp = is_tmp_part(nm, nl);
            if (!w->prefix) {
                /* Only temporaries no put can still be writing: another
                 * process (a cron archive beside a backup) may have one
                 * open right now. A put writes one object in seconds. */
                if (tmp && sb.st_mtime + STORE_TMP_STALE_S < time(NULL) && cfs_unlink(abs)) {
                    /* not fatal: a read-only copy of a repository opens
                     * (and restores) with its leftovers */
                    clog_warn("%s", cairn_last_error());
                    cerr_clear();
                }
            } else if (!tmp && strncmp(rel, w->prefix, w->plen) == 0) {
                if (walk_add(w, rel, (uint64_t)sb.st_size))
                    st = cerr_set(CAIRN_ENOMEM, "could not list repository \"%s\": out of "
                                                "memory",
                                  repo(w->s));
            }
        }
        /* Anything else (links, sockets, ...) is not an object. */
        abs[alen] = '\0';
        rel[rlen] = '\0';
        if (st)
            break;
    }
    closedir(d);
    return st;
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const struct entry *)a)->name, ((const struct entry *)b)->name);
}

/* Walks the tree below "<repo>/<start>" (start "" or ending with '/').
 * The caller frees w->e. */
static cairn_status walk_tree(struct walk *w, const char *start)
{
    size_t cap = strlen(repo(w->s)) + 2 * STORE_NAME_MAX + 64;
    char *abs = malloc(cap), *rel = malloc(cap);
    if (!abs || !rel) {
        free(abs);
        free(rel);
        return cerr_set(CAIRN_ENOMEM, "could not walk repository \"%s\": out of memory",
                        repo(w->s));
    }
    size_t sl = strlen(start);
    int alen = snprintf(abs, cap, "%s%s%.*s", repo(w->s), sl ? "/" : "",
                        (int)(sl ? sl - 1 : 0), start);
    memcpy(rel, start, sl + 1);
    cairn_status st = walk_dir(w, abs, (size_t)alen, rel, sl, cap);
    free(abs);
    free(rel);
    return st;
}

/* ------------------------------------------------------------------------
 * Operations
 * ---------------------------------------------------------------------- */

static cairn_status tmp_path(const char *path, char **out)
{
    uint8_t r[STORE_TMP_HEX / 2];
    for (size_t got = 0; got < sizeof r;) {
        ssize_t k = getrandom(r + got, sizeof r - got, 0);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return cerr_errno(errno, "could not name a temporary file for \"%s\"", path);
        }
        got += (size_t)k;
    }
    size_t n = strlen(path);
    char *t = malloc(n + STORE_TMP_SUFFIX + 1);
    if (!t)
        return cerr_set(CAIRN_ENOMEM, "could not name a temporary file for \"%s\": out of "
                                      "memory",
                        path);
    memcpy(t, path, n);
    memcpy(t + n, STORE_TMP_MARK, sizeof STORE_TMP_MARK - 1);
    char *h = t + n + sizeof STORE_TMP_MARK - 1;
    for (size_t i = 0; i < sizeof r; i++)
        sprintf(h + 2 * i, "%02x", r[i]);
    *out = t;
    return CAIRN_OK;
}

static cairn_status local_put(pitr_store *s, const char *name, const void *data, size_t len)
{
    cairn_status st = store_name_check(name);
    if (st)
        return cerr_wrap(st, "could not put object in repository \"%s\"", repo(s));
    if (len > 0 && !data)
        return cerr_set(CAIRN_EINVAL, "could not put object \"%s\" in repository \"%s\": no "
                                      "data",
                        name, repo(s));
    char *path = obj_path(s, "put", name), *tmp = NULL;
    if (!path)
        return CAIRN_ENOMEM;
    cio *c = NULL;
    int fd = -1;
    if ((st = ensure_parent(s, path)) || (st = tmp_path(path, &tmp)) ||
        (st = cio_ctx_open(&c, CAIRN_IO_POSIX, 0)))
        goto out;
    st = cfs_open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0644, &fd);
    if (st)
        goto out;
    st = cio_write(c, fd, data, len, 0, tmp);
    if (!st)
        st = cio_fsync(c, fd, tmp);
    if (!st) {
        st = cfs_close(fd, tmp);
        fd = -1;
    }
    if (!st)
        st = cfs_rename(tmp, path);
    if (st) {
        if (fd >= 0)
            close(fd);
        unlink(tmp); /* cleanup, not counted by the seam */
        goto out;
    }
    /* Published; a failure from here on leaves the new object whole. */
    st = cfs_fsync_parent(path);
out:
    if (st)
        cerr_wrap(st, "could not put object \"%s\" in repository \"%s\"", name, repo(s));
    cio_ctx_close(c);
    free(tmp);
    free(path);
    return st;
}

/* Size of the object at path; CAIRN_ENOTFOUND (message set) when there is
 * none, a directory included. */
static cairn_status obj_stat(pitr_store *s, const char *verb, const char *name,
                             const char *path, uint64_t *size)
{
    struct stat sb;
    if (stat(path, &sb) != 0) {
        int e = errno;
        if (e == ENOENT || e == ENOTDIR)
            return cerr_set(CAIRN_ENOTFOUND,
                            "could not %s object \"%s\" in repository \"%s\": no such object",
                            verb, name, repo(s));
        return cerr_errno(e, "could not %s object \"%s\" in repository \"%s\": stat \"%s\"",
                          verb, name, repo(s), path);
    }
    if (!S_ISREG(sb.st_mode))
        return cerr_set(CAIRN_ENOTFOUND,
                        "could not %s object \"%s\" in repository \"%s\": no such object "
                        "(\"%s\" is not a regular file)",
                        verb, name, repo(s), path);
    *size = (uint64_t)sb.st_size;
    return CAIRN_OK;
}

static cairn_status local_get(pitr_store *s, const char *name, uint8_t **buf, size_t *cap,
                              size_t *len)
{
    if (!buf || !cap || !len)
        return cerr_set(CAIRN_EINVAL, "could not get object from repository \"%s\": no "
                                      "output pointer",
                        repo(s));
    *len = 0;
    cairn_status st = store_name_check(name);
    if (st)
        return cerr_wrap(st, "could not get object from repository \"%s\"", repo(s));
    char *path = obj_path(s, "get", name);
    if (!path)
        return CAIRN_ENOMEM;
    uint64_t size;
    st = obj_stat(s, "get", name, path, &size);
    if (!st) {
        char *b = (char *)*buf;
        st = cfs_read_file_into(path, &b, cap, len);
        *buf = (uint8_t *)b;
        if (st)
            cerr_wrap(st, "could not get object \"%s\" from repository \"%s\"", name, repo(s));
    }
    free(path);
    return st;
}

static cairn_status local_stat(pitr_store *s, const char *name, uint64_t *size)
{
    if (!size)
        return cerr_set(CAIRN_EINVAL, "could not stat object in repository \"%s\": no output "
                                      "pointer",
                        repo(s));
    *size = 0;
    cairn_status st = store_name_check(name);
    if (st)
        return cerr_wrap(st, "could not stat object in repository \"%s\"", repo(s));
    char *path = obj_path(s, "stat", name);
    if (!path)
        return CAIRN_ENOMEM;
    st = obj_stat(s, "stat", name, path, size);
    free(path);
    return st;
}

static cairn_status local_list(pitr_store *s, const char *prefix, pitr_store_list_fn fn,
                               void *ctx)
{
    if (!prefix || !fn)
        return cerr_set(CAIRN_EINVAL, "could not list repository \"%s\": no prefix or "
                                      "callback",
                        repo(s));
    /* The walk starts at the directory the prefix names in full ("wal/"
     * for "wal/0000", "blobs/" for "blobs/ab"); that part must be a valid
     * name so that it cannot leave the repository. The rest only filters. */
    const char *slash = strrchr(prefix, '/');
    size_t dlen = slash ? (size_t)(slash - prefix) + 1 : 0;
    if (strnlen(prefix, STORE_NAME_MAX + 1) > STORE_NAME_MAX)
        return cerr_set(CAIRN_EINVAL, "could not list repository \"%s\": prefix \"%.80s...\" "
                                      "is longer than 255 bytes",
                        repo(s), prefix);
    char start[STORE_NAME_MAX + 1];
    memcpy(start, prefix, dlen);
    start[dlen] = '\0';
    if (dlen) {
        start[dlen - 1] = '\0';
        cairn_status st = store_name_check(start);
        if (st)
            return cerr_wrap(st, "could not list repository \"%s\" under prefix \"%s\"",
                             repo(s), prefix);
        start[dlen - 1] = '/';
    }
    struct walk w = {.s = s, .prefix = prefix, .plen = strlen(prefix)};
    cairn_status st = walk_tree(&w, start);
    if (st) {
        cerr_wrap(st, "could not list repository \"%s\" under prefix \"%s\"", repo(s), prefix);
    } else {
        if (w.n > 1)
            qsort(w.e, w.n, sizeof *w.e, entry_cmp);
        for (size_t i = 0; i < w.n && !st; i++)
            st = fn(ctx, w.e[i].name, w.e[i].size);
    }
    for (size_t i = 0; i < w.n; i++)
        free(w.e[i].name);
    free(w.e);
    return st;
}

static cairn_status local_del(pitr_store *s, const char *name)
{
    cairn_status st = store_name_check(name);
    if (st)
        return cerr_wrap(st, "could not delete object from repository \"%s\"", repo(s));
    char *path = obj_path(s, "delete", name);
    if (!path)
        return CAIRN_ENOMEM;
    struct stat sb;
    if (lstat(path, &sb) != 0) {
        int e = errno;
        st = e == ENOENT || e == ENOTDIR ? CAIRN_ENOTFOUND
                                         : cerr_errno(e, "could not stat \"%s\"", path);
    } else if (S_ISDIR(sb.st_mode)) {
        free(path); /* a directory is not an object: nothing to delete */
        return CAIRN_OK;
    } else {
        st = cfs_unlink(path);
    }
    if (st == CAIRN_ENOTFOUND) {
        /* Missing is fine, but its directory is still synced when it is
         * there: an earlier delete may have unlinked it and failed before
         * its own fsync, and a retry must not report success over an
         * unlink that a crash could undo. */
        char *slash = strrchr(path, '/');
        *slash = '\0';
        bool there = is_dir(path);
        *slash = '/';
        st = there ? cfs_fsync_parent(path) : CAIRN_OK;
    } else if (!st) {
        st = cfs_fsync_parent(path);
    }
    if (st)
        cerr_wrap(st, "could not delete object \"%s\" from repository \"%s\"", name, repo(s));
    free(path);
    return st;
}

static void local_close(pitr_store *s)
{
    free(s->where);
    free((struct local_store *)s);
}

static const struct pitr_store_ops local_ops = {
    .put = local_put,
    .get = local_get,
    .stat = local_stat,
    .list = local_list,
    .del = local_del,
    .close = local_close,
};

cairn_status store_local_open(const char *dir, unsigned flags, pitr_store **out)
{
    if (!out)
        return cerr_set(CAIRN_EINVAL, "could not open repository: no output pointer");
    *out = NULL;
    if (!dir || !dir[0])
        return cerr_set(CAIRN_EINVAL, "could not open repository: empty directory name");
    struct local_store *ls = calloc(1, sizeof *ls);
    char *where = strdup(dir);
    if (!ls || !where) {
        free(ls);
        free(where);
        return cerr_set(CAIRN_ENOMEM, "could not open repository \"%s\": out of memory", dir);
    }
    /* Trailing slashes off ("repo/" and "repo" give the same messages and
     * paths); "/" stays. */
    size_t n = strlen(where);
    while (n > 1 && where[n - 1] == '/')
        where[--n] = '\0';
    ls->base.ops = &local_ops;
    ls->base.where = where;
    cairn_status st = CAIRN_OK;
    struct stat sb;
    if (stat(where, &sb) != 0) {
        int e = errno;
        if (e != ENOENT)
            st = cerr_errno(e, "could not open repository \"%s\"", where);
        else if (!(flags & STORE_CREATE))
            st = cerr_set(CAIRN_ENOTFOUND, "could not open repository \"%s\": no such "
                                           "directory",
                          where);
        else if ((st = mkdirs_durable(where, 0, n)))
            cerr_wrap(st, "could not create repository \"%s\"", where);
    } else if (!S_ISDIR(sb.st_mode)) {
        st = cerr_set(CAIRN_ENOTFOUND, "could not open repository \"%s\": not a directory",
                      where);
    }
    if (!st && !(flags & STORE_NO_SWEEP)) {
        /* Temporaries of puts that a crash (or a failed cleanup) left. */
        struct walk w = {.s = &ls->base};
        if ((st = walk_tree(&w, "")))
            cerr_wrap(st, "could not open repository \"%s\": removing temporary files",
                      where);
    }
    if (st) {
        local_close(&ls->base);
        return st;
    }
    *out = &ls->base;
    return CAIRN_OK;
}
