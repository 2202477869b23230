/* vecfile.c — see vecfile.h for the formats and the error grammar. */
#include "vecfile.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cairn.h"
#include "common/jalloc.h"
#include "common/json.h"

extern char **environ;

#define VF_MAX_LINE (16u << 20) /* a JSON line longer than this is refused */
#define VF_LOOKAHEAD 64u

/* ------------------------------------------------------------------ */
/* Byte source: a file, or the stdout of `gzip -dc` fed with the file. */
/* ------------------------------------------------------------------ */

struct src {
    FILE *f;
    pid_t pid;          /* gzip child, 0 if none */
    bool reaped;
    int wstatus;
    bool seekable;      /* regular file read directly */
    uint64_t size;      /* regular file size (seekable only) */
    uint64_t off;       /* bytes consumed by the reader */
    bool at_eof;        /* the underlying stream reported end of file */
    bool io_error;
    int err_no;
    uint8_t la[VF_LOOKAHEAD]; /* lookahead bytes not yet consumed */
    size_t la_pos, la_len;
};

static bool src_open(struct src *s, const char *path, bool gz, char *err,
                     size_t errlen)
{
    memset(s, 0, sizeof(*s));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "could not open \"%s\": %s", path, strerror(errno));
        return false;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        snprintf(err, errlen, "could not stat \"%s\": %s", path, strerror(errno));
        close(fd);
        return false;
    }
    if (S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "could not read \"%s\": is a directory", path);
        close(fd);
        return false;
    }
    if (!gz) {
        s->f = fdopen(fd, "rb");
        if (s->f == NULL) {
            snprintf(err, errlen, "could not open \"%s\": %s", path,
                     strerror(errno));
            close(fd);
            return false;
        }
        s->seekable = S_ISREG(st.st_mode);
        s->size = s->seekable ? (uint64_t)st.st_size : 0;
        return true;
    }

    /* gzip -dc < file | us. The child gets SIGPIPE's default action so
     * that it ends quietly when we stop reading early. */
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0) {
        snprintf(err, errlen, "could not create a pipe for \"%s\": %s", path,
                 strerror(errno));
        close(fd);
        return false;
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fd, STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], STDOUT_FILENO);
    posix_spawnattr_init(&attr);
    sigset_t def;
    sigemptyset(&def);
    sigaddset(&def, SIGPIPE);
    posix_spawnattr_setsigdefault(&attr, &def);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
    char *argv[] = {"gzip", "-dc", NULL};
    pid_t pid;
    int rc = posix_spawnp(&pid, "gzip", &fa, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(fd);
    close(pfd[1]);
    if (rc != 0) {
        snprintf(err, errlen, "could not start \"gzip -dc\" for \"%s\": %s",
                 path, strerror(rc));
        close(pfd[0]);
        return false;
    }
    s->f = fdopen(pfd[0], "rb");
    if (s->f == NULL) {
        snprintf(err, errlen, "could not read from gzip for \"%s\": %s", path,
                 strerror(errno));
        close(pfd[0]);
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
        return false;
    }
    s->pid = pid;
    return true;
}

/* Closes the stream; reaps gzip. Returns the child's wait status (0 when
 * there was no child or it exited 0). */
static int src_close(struct src *s)
{
    if (s->f)
        fclose(s->f);
    s->f = NULL;
    if (s->pid > 0 && !s->reaped) {
        int st = 0;
        while (waitpid(s->pid, &st, 0) < 0 && errno == EINTR)
            ;
        s->reaped = true;
        s->wstatus = st;
    }
    return s->pid > 0 ? s->wstatus : 0;
}

static uint64_t src_skip(struct src *s, uint64_t n);

/* At end of stream: for gzip, drains what is left (trailing bytes after the
 * last row are ignored), waits for the child and checks that it succeeded,
 * so that a corrupt or truncated .gz is an error rather than a silently
 * short file. */
static bool src_eof_ok(struct src *s, const char *path, char *err,
                       size_t errlen)
{
    if (s->io_error) {
        snprintf(err, errlen, "could not read \"%s\" at offset %llu: %s", path,
                 (unsigned long long)s->off, strerror(s->err_no));
        return false;
    }
    if (s->pid <= 0)
        return true;
    if (!s->reaped) {
        if (!s->at_eof)
            src_skip(s, UINT64_MAX);
        int st = 0;
        while (waitpid(s->pid, &st, 0) < 0 && errno == EINTR)
            ;
        s->reaped = true;
        s->wstatus = st;
    }
    int st = s->wstatus;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return true;
    if (WIFEXITED(st))
        snprintf(err, errlen,
                 "could not decompress \"%s\" at offset %llu: gzip -dc exited "
                 "with status %d (truncated or corrupt .gz)",
                 path, (unsigned long long)s->off, WEXITSTATUS(st));
    else
        snprintf(err, errlen,
                 "could not decompress \"%s\" at offset %llu: gzip -dc killed "
                 "by signal %d",
                 path, (unsigned long long)s->off,
                 WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    return false;
}

static size_t src_fread(struct src *s, void *dst, size_t n)
{
    size_t got = fread(dst, 1, n, s->f);
    if (got < n) {
        if (ferror(s->f)) {
            s->io_error = true;
            s->err_no = errno ? errno : EIO;
        }
        s->at_eof = true;
    }
    return got;
}

/* Makes at least n (<= VF_LOOKAHEAD) bytes visible in the lookahead;
 * returns how many are (fewer only at end of stream). */
static size_t src_peek(struct src *s, size_t n, const uint8_t **p)
{
    size_t have = s->la_len - s->la_pos;
    if (have < n && !s->at_eof) {
        memmove(s->la, s->la + s->la_pos, have);
        s->la_pos = 0;
        s->la_len = have;
        s->la_len += src_fread(s, s->la + have, VF_LOOKAHEAD - have);
        have = s->la_len;
    }
    *p = s->la + s->la_pos;
    return have < n ? have : n;
}

/* Reads up to n bytes; fewer only at end of stream or on error. */
static size_t src_read(struct src *s, void *dst, size_t n)
{
    uint8_t *d = dst;
    size_t got = 0;
    size_t have = s->la_len - s->la_pos;
    if (have > 0) {
        size_t k = have < n ? have : n;
        memcpy(d, s->la + s->la_pos, k);
        s->la_pos += k;
        got = k;
    }
    if (got < n && !s->at_eof)
        got += src_fread(s, d + got, n - got);
    s->off += got;
    return got;
}

static int src_getc(struct src *s)
{
    if (s->la_pos < s->la_len) {
        s->off++;
        return s->la[s->la_pos++];
    }
    if (s->at_eof)
        return EOF;
    int c = getc_unlocked(s->f);
    if (c == EOF) {
        if (ferror(s->f)) {
            s->io_error = true;
            s->err_no = errno ? errno : EIO;
        }
        s->at_eof = true;
        return EOF;
    }
    s->off++;
    return c;
}

/* Skips n bytes; returns the number skipped. */
static uint64_t src_skip(struct src *s, uint64_t n)
{
    uint64_t done = 0;
    size_t have = s->la_len - s->la_pos;
    if (have > 0) {
        size_t k = have < n ? have : (size_t)n;
        s->la_pos += k;
        s->off += k;
        done = k;
    }
    if (done == n)
        return done;
    if (s->seekable) {
        /* The lookahead is empty now, so the FILE position is s->off. */
        uint64_t left = n - done;
        uint64_t avail = s->size > s->off ? s->size - s->off : 0;
        uint64_t k = left < avail ? left : avail;
        if (fseeko(s->f, (off_t)(s->off + k), SEEK_SET) != 0) {
            s->io_error = true;
            s->err_no = errno;
            return done;
        }
        s->off += k;
        done += k;
        if (k < left)
            s->at_eof = true;
        return done;
    }
    uint8_t buf[65536];
    while (done < n) {
        size_t want = n - done < sizeof(buf) ? (size_t)(n - done) : sizeof(buf);
        size_t got = src_read(s, buf, want);
        done += got;
        if (got < want)
            break;
    }
    return done;
}

/* ------------------------------------------------------------------ */
/* The reader                                                          */
/* ------------------------------------------------------------------ */

struct vf_reader {
    char *path;
    enum vf_format fmt;
    struct src s;
    uint32_t dim;
    uint64_t rows;          /* known row count, 0 if unknown */
    bool rows_known;
    uint64_t row;           /* next row */
    uint64_t line;          /* jsonl: lines read */
    uint64_t start_id;
    uint64_t data_off;      /* binary: offset of row 0 */
    float *vec;
    uint8_t *raw;           /* binary row bytes */
    size_t raw_cap;
    char *linebuf;
    size_t linecap;
    char *payload;          /* jsonl payload (malloc'd by jansson) */
    char pbuf[64];          /* binary payload text */
    uint8_t *labels;
    uint64_t nlabels;
    char *labels_path;
    char warn[1024];
    char err[1024];
};

static const char *const fmt_names[] = {"auto", "jsonl", "fvecs", "npy", "idx"};

const char *vf_format_name(enum vf_format f)
{
    return (unsigned)f < sizeof(fmt_names) / sizeof(fmt_names[0]) ? fmt_names[f]
                                                                   : "?";
}

bool vf_format_parse(const char *s, enum vf_format *out)
{
    for (unsigned i = 0; i < sizeof(fmt_names) / sizeof(fmt_names[0]); i++) {
        if (strcmp(s, fmt_names[i]) == 0) {
            *out = (enum vf_format)i;
            return true;
        }
    }
    return false;
}

enum vf_format vf_format_of(const vf_reader *r) { return r->fmt; }
uint32_t vf_dim(const vf_reader *r) { return r->dim; }
uint64_t vf_rows(const vf_reader *r) { return r->rows_known ? r->rows : 0; }
uint64_t vf_bytes(const vf_reader *r) { return r->s.off; }
const char *vf_labels_path(const vf_reader *r) { return r->labels_path; }
const char *vf_warning(const vf_reader *r) { return r->warn[0] ? r->warn : NULL; }
const char *vf_error(const vf_reader *r) { return r->err; }

static int fail(vf_reader *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int fail(vf_reader *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, sizeof(r->err), fmt, ap);
    va_end(ap);
    return -1;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcasecmp(s + n - k, suffix) == 0;
}

/* Format from the file name (without a .gz suffix); VF_AUTO if unknown. */
static enum vf_format format_by_name(const char *stem)
{
    if (ends_with(stem, ".jsonl") || ends_with(stem, ".ndjson") ||
        ends_with(stem, ".json"))
        return VF_JSONL;
    if (ends_with(stem, ".fvecs"))
        return VF_FVECS;
    if (ends_with(stem, ".npy"))
        return VF_NPY;
    if (ends_with(stem, ".idx") || ends_with(stem, "-ubyte") ||
        ends_with(stem, ".ubyte"))
        return VF_IDX;
    return VF_AUTO;
}

static enum vf_format format_by_content(struct src *s)
{
    const uint8_t *p;
    size_t n = src_peek(s, VF_LOOKAHEAD, &p);
    if (n >= 6 && memcmp(p, "\x93NUMPY", 6) == 0)
        return VF_NPY;
    if (n >= 4 && p[0] == 0 && p[1] == 0 && p[2] >= 0x08 && p[2] <= 0x0E &&
        p[3] >= 1 && p[3] <= 8)
        return VF_IDX;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n')
            continue;
        if (p[i] == '{')
            return VF_JSONL;
        break;
    }
    if (n >= 8) {
        int32_t d;
        memcpy(&d, p, 4);
        if (d >= 1 && (uint32_t)d <= CAIRN_MAX_DIM)
            return VF_FVECS;
    }
    return VF_AUTO;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           (uint32_t)p[3];
}

static bool alloc_row(vf_reader *r, size_t raw_bytes)
{
    r->vec = malloc((size_t)r->dim * sizeof(float));
    if (raw_bytes > 0) {
        r->raw = malloc(raw_bytes);
        r->raw_cap = raw_bytes;
    }
    if (r->vec == NULL || (raw_bytes > 0 && r->raw == NULL))
        return fail(r, "could not read \"%s\": out of memory for a row of %u values",
                    r->path, r->dim), false;
    return true;
}

/* ---- fvecs ---- */

static bool fvecs_open(vf_reader *r)
{
    const uint8_t *p;
    size_t n = src_peek(&r->s, 4, &p);
    if (n == 0) { /* empty file: no rows, dim unknown */
        r->rows_known = true;
        r->rows = 0;
        return true;
    }
    if (n < 4)
        return fail(r, "could not read \"%s\" at row 0 (offset 0): file ends "
                       "inside the dimension field", r->path), false;
    int32_t d;
    memcpy(&d, p, 4);
    if (d < 1 || (uint32_t)d > CAIRN_MAX_DIM)
        return fail(r, "could not read \"%s\" at row 0 (offset 0): dimension %d "
                       "is outside 1..%u (not an .fvecs file?)",
                    r->path, d, CAIRN_MAX_DIM), false;
    r->dim = (uint32_t)d;
    if (r->s.seekable) {
        uint64_t rowb = 4 + 4ull * r->dim;
        r->rows = r->s.size / rowb;
        r->rows_known = true;
    }
    return alloc_row(r, 0);
}

static int fvecs_next(vf_reader *r)
{
    uint64_t off = r->s.off;
    uint8_t hdr[4];
    size_t got = src_read(&r->s, hdr, 4);
    if (got == 0) {
        if (!src_eof_ok(&r->s, r->path, r->err, sizeof(r->err)))
            return -1;
        return 0;
    }
    if (got < 4)
        return fail(r, "could not read \"%s\" at row %llu (offset %llu): file "
                       "ends inside the dimension field",
                    r->path, (unsigned long long)r->row, (unsigned long long)off);
    int32_t d;
    memcpy(&d, hdr, 4);
    if (d < 0 || (uint32_t)d != r->dim)
        return fail(r, "could not read \"%s\" at row %llu (offset %llu): "
                       "dimension %d differs from %u of row 0",
                    r->path, (unsigned long long)r->row, (unsigned long long)off,
                    d, r->dim);
    size_t want = (size_t)r->dim * 4;
    got = src_read(&r->s, r->vec, want);
    if (got < want) {
        if (r->s.io_error)
            return fail(r, "could not read \"%s\" at offset %llu: %s", r->path,
                        (unsigned long long)r->s.off, strerror(r->s.err_no));
        return fail(r, "could not read \"%s\" at row %llu (offset %llu): file "
                       "ends inside the row (%zu of %zu bytes)",
                    r->path, (unsigned long long)r->row, (unsigned long long)off,
                    got, want);
    }
    return 1;
}

/* ---- npy ---- */

struct npy_hdr {
    char descr[32];
    int fortran; /* -1 missing */
    int ndim;    /* -1 missing */
    uint64_t shape[8];
};

static void skip_ws(const char **p, const char *e)
{
    while (*p < e && (**p == ' ' || **p == '\t' || **p == '\n' || **p == '\r'))
        (*p)++;
}

static bool npy_str(const char **p, const char *e, char *out, size_t n)
{
    if (*p >= e || (**p != '\'' && **p != '"'))
        return false;
    char q = **p;
    (*p)++;
    size_t k = 0;
    while (*p < e && **p != q) {
        if (k + 1 < n)
            out[k++] = **p;
        (*p)++;
    }
    if (*p >= e)
        return false;
    (*p)++;
    out[k] = '\0';
    return true;
}

/* Parses the Python dict literal of a .npy header. */
static bool npy_parse_header(const char *h, size_t n, struct npy_hdr *out,
                             char *why, size_t whylen)
{
    const char *p = h, *e = h + n;
    out->descr[0] = '\0';
    out->fortran = -1;
    out->ndim = -1;
    skip_ws(&p, e);
    if (p >= e || *p != '{')
        return snprintf(why, whylen, "header is not a dict"), false;
    p++;
    for (;;) {
        skip_ws(&p, e);
        if (p < e && *p == '}')
            break;
        char key[32];
        if (!npy_str(&p, e, key, sizeof(key)))
            return snprintf(why, whylen, "header dict has a malformed key"), false;
        skip_ws(&p, e);
        if (p >= e || *p != ':')
            return snprintf(why, whylen, "header dict lacks ':' after '%s'", key),
                   false;
        p++;
        skip_ws(&p, e);
        if (strcmp(key, "descr") == 0) {
            if (!npy_str(&p, e, out->descr, sizeof(out->descr)))
                return snprintf(why, whylen, "'descr' is not a string "
                                             "(structured dtypes are not supported)"),
                       false;
        } else if (strcmp(key, "fortran_order") == 0) {
            if (e - p >= 4 && memcmp(p, "True", 4) == 0) {
                out->fortran = 1;
                p += 4;
            } else if (e - p >= 5 && memcmp(p, "False", 5) == 0) {
                out->fortran = 0;
                p += 5;
            } else {
                return snprintf(why, whylen, "'fortran_order' is not True/False"),
                       false;
            }
        } else if (strcmp(key, "shape") == 0) {
            if (p >= e || *p != '(')
                return snprintf(why, whylen, "'shape' is not a tuple"), false;
            p++;
            int nd = 0;
            for (;;) {
                skip_ws(&p, e);
                if (p < e && *p == ')') {
                    p++;
                    break;
                }
                uint64_t v = 0;
                const char *d0 = p;
                while (p < e && *p >= '0' && *p <= '9') {
                    unsigned dg = (unsigned)(*p - '0');
                    if (v > (UINT64_MAX - dg) / 10)
                        return snprintf(why, whylen, "'shape' value overflows"),
                               false;
                    v = v * 10 + dg;
                    p++;
                }
                if (p == d0)
                    return snprintf(why, whylen, "'shape' holds a non-integer"),
                           false;
                if (nd >= 8)
                    return snprintf(why, whylen, "'shape' has more than 8 "
                                                 "dimensions"), false;
                out->shape[nd++] = v;
                skip_ws(&p, e);
                if (p < e && *p == ',')
                    p++;
                else if (p < e && *p == ')') {
                    p++;
                    break;
                } else
                    return snprintf(why, whylen, "'shape' tuple is malformed"),
                           false;
            }
            out->ndim = nd;
        } else {
            return snprintf(why, whylen, "unknown header key '%s'", key), false;
        }
        skip_ws(&p, e);
        if (p < e && *p == ',') {
            p++;
            continue;
        }
        skip_ws(&p, e);
        if (p < e && *p == '}')
            break;
        return snprintf(why, whylen, "header dict is malformed"), false;
    }
    if (out->descr[0] == '\0' || out->fortran < 0 || out->ndim < 0)
        return snprintf(why, whylen, "header lacks one of 'descr', "
                                     "'fortran_order', 'shape'"), false;
    return true;
}

static bool npy_open(vf_reader *r)
{
    uint8_t pre[12];
    size_t got = src_read(&r->s, pre, 10);
    if (got < 10 || memcmp(pre, "\x93NUMPY", 6) != 0)
        return fail(r, "could not read \"%s\" at offset 0: not a .npy file "
                       "(magic \\x93NUMPY missing)", r->path), false;
    unsigned major = pre[6];
    uint32_t hlen;
    if (major == 1) {
        hlen = (uint32_t)pre[8] | (uint32_t)pre[9] << 8;
    } else if (major == 2 || major == 3) {
        if (src_read(&r->s, pre + 10, 2) < 2)
            return fail(r, "could not read \"%s\" at offset 10: file ends in "
                           "the header", r->path), false;
        hlen = (uint32_t)pre[8] | (uint32_t)pre[9] << 8 | (uint32_t)pre[10] << 16 |
               (uint32_t)pre[11] << 24;
    } else {
        return fail(r, "could not read \"%s\" at offset 6: .npy format version "
                       "%u.%u is not supported (1.0, 2.0, 3.0 are)",
                    r->path, major, pre[7]), false;
    }
    if (hlen > (1u << 20))
        return fail(r, "could not read \"%s\" at offset 8: header length %u "
                       "is implausible", r->path, hlen), false;
    uint64_t hoff = r->s.off;
    char *h = malloc((size_t)hlen + 1);
    if (h == NULL)
        return fail(r, "could not read \"%s\": out of memory for its header", r->path), false;
    if (src_read(&r->s, h, hlen) < hlen) {
        free(h);
        return fail(r, "could not read \"%s\" at offset %llu: file ends in "
                       "the header", r->path, (unsigned long long)hoff), false;
    }
    h[hlen] = '\0';
    struct npy_hdr nh;
    char why[160];
    bool ok = npy_parse_header(h, hlen, &nh, why, sizeof(why));
    free(h);
    if (!ok)
        return fail(r, "could not parse \"%s\" at offset %llu: .npy %s", r->path,
                    (unsigned long long)hoff, why), false;
    if (strcmp(nh.descr, "<f4") != 0)
        return fail(r, "could not import \"%s\": .npy dtype '%s' is not "
                       "supported (need little-endian float32, '<f4'; convert "
                       "with arr.astype('<f4'))", r->path, nh.descr), false;
    if (nh.fortran)
        return fail(r, "could not import \"%s\": .npy array is in Fortran order "
                       "(need C order; convert with np.ascontiguousarray)",
                    r->path), false;
    if (nh.ndim != 2)
        return fail(r, "could not import \"%s\": .npy array has %d dimensions "
                       "(need 2: rows x dim)", r->path, nh.ndim), false;
    if (nh.shape[1] < 1 || nh.shape[1] > CAIRN_MAX_DIM)
        return fail(r, "could not import \"%s\": .npy row length %llu is "
                       "outside 1..%u", r->path,
                    (unsigned long long)nh.shape[1], CAIRN_MAX_DIM), false;
    r->dim = (uint32_t)nh.shape[1];
    r->rows = nh.shape[0];
    r->rows_known = true;
    r->data_off = r->s.off;
    if (r->s.seekable) {
        uint64_t need = r->rows * r->dim * 4ull;
        if (r->rows > UINT64_MAX / 4 / r->dim || r->s.size < r->data_off ||
            r->s.size - r->data_off < need)
            return fail(r, "could not read \"%s\" at offset %llu: shape (%llu, "
                           "%u) needs %llu data bytes, the file holds %llu",
                        r->path, (unsigned long long)r->data_off,
                        (unsigned long long)r->rows, r->dim,
                        (unsigned long long)need,
                        (unsigned long long)(r->s.size - r->data_off)), false;
    }
    return alloc_row(r, 0);
}

static int npy_next(vf_reader *r)
{
    if (r->row >= r->rows) {
        if (!src_eof_ok(&r->s, r->path, r->err, sizeof(r->err))) {
            /* A gzip failure after all rows were read: still an error. */
            return -1;
        }
        return 0;
    }
    uint64_t off = r->s.off;
    size_t want = (size_t)r->dim * 4;
    size_t got = src_read(&r->s, r->vec, want);
    if (got < want) {
        if (r->s.pid > 0 && !src_eof_ok(&r->s, r->path, r->err, sizeof(r->err)))
            return -1;
        return fail(r, "could not read \"%s\" at row %llu (offset %llu): file "
                       "ends inside the data (shape says %llu rows)",
                    r->path, (unsigned long long)r->row, (unsigned long long)off,
                    (unsigned long long)r->rows);
    }
    return 1;
}

/* ---- idx ---- */

/* Reads an IDX header; on success *rows and *rowlen are set. */
static bool idx_header(struct src *s, const char *path, uint64_t *rows,
                       uint64_t *rowlen, unsigned *ndims_out, char *err,
                       size_t errlen)
{
    uint8_t m[4];
    if (src_read(s, m, 4) < 4 || m[0] != 0 || m[1] != 0)
        return snprintf(err, errlen, "could not read \"%s\" at offset 0: not an "
                                     "IDX file (bad magic)", path), false;
    if (m[2] != 0x08)
        return snprintf(err, errlen, "could not import \"%s\": IDX element type "
                                     "0x%02X is not supported (only unsigned "
                                     "byte, 0x08)", path, m[2]), false;
    if (m[3] < 1 || m[3] > 8)
        return snprintf(err, errlen, "could not read \"%s\" at offset 3: IDX "
                                     "dimension count %u is outside 1..8",
                        path, m[3]), false;
    uint8_t d[32];
    if (src_read(s, d, 4u * m[3]) < 4u * m[3])
        return snprintf(err, errlen, "could not read \"%s\" at offset 4: file "
                                     "ends in the IDX header", path), false;
    *rows = be32(d);
    uint64_t len = 1;
    for (unsigned i = 1; i < m[3]; i++) {
        len *= be32(d + 4 * i);
        if (len > CAIRN_MAX_DIM)
            break;
    }
    *rowlen = len;
    *ndims_out = m[3];
    return true;
}

/* train-images-idx3-ubyte(.gz) -> train-labels-idx1-ubyte(.gz); NULL if the
 * name has no "images" in it or no such file exists. */
static char *labels_path_for(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *img = NULL;
    for (const char *q = base; (q = strstr(q, "images")) != NULL; q++)
        img = q;
    if (img == NULL)
        return NULL;
    size_t n = strlen(path);
    char *cand = malloc(n + 8);
    if (cand == NULL)
        return NULL;
    size_t pre = (size_t)(img - path);
    memcpy(cand, path, pre);
    memcpy(cand + pre, "labels", 6);
    strcpy(cand + pre + 6, img + 6);
    char *idx3 = strstr(cand + pre, "idx3");
    if (idx3)
        idx3[3] = '1';
    struct stat st;
    if (stat(cand, &st) == 0 && S_ISREG(st.st_mode))
        return cand;
    /* The other compression: add or drop ".gz". */
    size_t cn = strlen(cand);
    if (cn > 3 && strcmp(cand + cn - 3, ".gz") == 0)
        cand[cn - 3] = '\0';
    else
        strcat(cand, ".gz");
    if (stat(cand, &st) == 0 && S_ISREG(st.st_mode))
        return cand;
    free(cand);
    return NULL;
}

static void idx_load_labels(vf_reader *r)
{
    char *lp = labels_path_for(r->path);
    if (lp == NULL)
        return;
    struct src s;
    char err[512];
    uint64_t n = 0, len = 0;
    unsigned nd = 0;
    if (!src_open(&s, lp, ends_with(lp, ".gz"), err, sizeof(err))) {
        snprintf(r->warn, sizeof(r->warn), "%s; payloads get {\"row\": N}", err);
        free(lp);
        return;
    }
    if (!idx_header(&s, lp, &n, &len, &nd, err, sizeof(err))) {
        snprintf(r->warn, sizeof(r->warn), "%s; payloads get {\"row\": N}", err);
    } else if (nd != 1 || !r->rows_known || n != r->rows) {
        snprintf(r->warn, sizeof(r->warn),
                 "labels file \"%s\" holds %llu labels in %u dimension(s), "
                 "\"%s\" has %llu rows; not using it, payloads get {\"row\": N}",
                 lp, (unsigned long long)n, nd, r->path,
                 (unsigned long long)r->rows);
    } else {
        r->labels = malloc(n ? n : 1);
        if (r->labels && src_read(&s, r->labels, n) == n &&
            src_eof_ok(&s, lp, err, sizeof(err))) {
            r->nlabels = n;
            r->labels_path = lp;
            lp = NULL;
        } else {
            if (r->labels == NULL)
                snprintf(err, sizeof(err), "could not read \"%s\": out of memory", lp);
            else if (!s.reaped && !s.io_error)
                snprintf(err, sizeof(err), "could not read \"%s\": file ends "
                                           "before its %llu labels", lp,
                         (unsigned long long)n);
            snprintf(r->warn, sizeof(r->warn), "%s; payloads get {\"row\": N}",
                     err);
            free(r->labels);
            r->labels = NULL;
        }
    }
    src_close(&s);
    free(lp);
}

static bool idx_open(vf_reader *r, bool labels)
{
    uint64_t rows, len;
    unsigned nd;
    if (!idx_header(&r->s, r->path, &rows, &len, &nd, r->err, sizeof(r->err)))
        return false;
    if (len < 1 || len > CAIRN_MAX_DIM)
        return fail(r, "could not import \"%s\": IDX row length %llu is "
                       "outside 1..%u", r->path, (unsigned long long)len,
                    CAIRN_MAX_DIM), false;
    r->dim = (uint32_t)len;
    r->rows = rows;
    r->rows_known = true;
    r->data_off = r->s.off;
    if (r->s.seekable && r->s.size - r->data_off < rows * len)
        return fail(r, "could not read \"%s\" at offset %llu: the IDX header "
                       "says %llu rows of %u bytes, the file holds only %llu "
                       "data bytes", r->path, (unsigned long long)r->data_off,
                    (unsigned long long)rows, r->dim,
                    (unsigned long long)(r->s.size - r->data_off)), false;
    if (labels)
        idx_load_labels(r);
    return alloc_row(r, r->dim);
}

static int idx_next(vf_reader *r)
{
    if (r->row >= r->rows)
        return src_eof_ok(&r->s, r->path, r->err, sizeof(r->err)) ? 0 : -1;
    uint64_t off = r->s.off;
    size_t got = src_read(&r->s, r->raw, r->dim);
    if (got < r->dim) {
        if (r->s.pid > 0 && !src_eof_ok(&r->s, r->path, r->err, sizeof(r->err)))
            return -1;
        return fail(r, "could not read \"%s\" at row %llu (offset %llu): file "
                       "ends inside the data (header says %llu rows)",
                    r->path, (unsigned long long)r->row, (unsigned long long)off,
                    (unsigned long long)r->rows);
    }
    for (uint32_t i = 0; i < r->dim; i++)
        r->vec[i] = (float)r->raw[i];
    return 1;
}

/* ---- jsonl ---- */

/* Reads one line (without '\n', without a trailing '\r') into linebuf.
 * 1 line, 0 end of file, -1 error. */
static int jsonl_getline(vf_reader *r, size_t *len_out)
{
    size_t len = 0;
    int c;
    bool any = false;
    while ((c = src_getc(&r->s)) != EOF) {
        any = true;
        if (c == '\n')
            break;
        if (len + 2 > r->linecap) {
            size_t cap = r->linecap ? r->linecap * 2 : 4096;
            if (cap > VF_MAX_LINE + 2)
                return fail(r, "could not parse \"%s\" at line %llu: line is "
                               "longer than %u bytes",
                            r->path, (unsigned long long)r->line + 1,
                            VF_MAX_LINE);
            char *nb = realloc(r->linebuf, cap);
            if (nb == NULL)
                return fail(r, "out of memory reading \"%s\" at line %llu",
                            r->path, (unsigned long long)r->line + 1);
            r->linebuf = nb;
            r->linecap = cap;
        }
        r->linebuf[len++] = (char)c;
    }
    if (r->s.io_error)
        return fail(r, "could not read \"%s\" at offset %llu: %s", r->path,
                    (unsigned long long)r->s.off, strerror(r->s.err_no));
    if (!any)
        return 0;
    if (len > 0 && r->linebuf[len - 1] == '\r')
        len--;
    if (r->linebuf == NULL) { /* an empty first line */
        r->linebuf = malloc(16);
        if (r->linebuf == NULL)
            return fail(r, "could not read \"%s\": out of memory", r->path);
        r->linecap = 16;
    }
    r->linebuf[len] = '\0';
    *len_out = len;
    return 1;
}

static int jsonl_row(vf_reader *r, const char *line, size_t len,
                     struct vf_row *row)
{
    unsigned long long ln = (unsigned long long)r->line;
    /* not json_loadb: its lexer is unsafe when memory runs out (json.h) */
    struct cjson_error je = {0, NULL};
    json_t *o = NULL;
    cairn_status pst = cjson_parse_object(line, len, &o, &je);
    if (pst == CAIRN_ENOMEM)
        return fail(r, "could not parse \"%s\" at line %llu: out of memory", r->path, ln);
    if (pst)
        return fail(r, "could not parse \"%s\" at line %llu, column %zu: %s",
                    r->path, ln, je.offset + 1, je.what);
    int rc = -1;
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        if (strcmp(key, "id") != 0 && strcmp(key, "vector") != 0 &&
            strcmp(key, "payload") != 0) {
            fail(r, "could not parse \"%s\" at line %llu: unknown key \"%s\" "
                    "(expected \"id\", \"vector\", \"payload\")",
                 r->path, ln, key);
            goto out;
        }
    }
    json_t *id = json_object_get(o, "id");
    if (id == NULL || !json_is_integer(id) || json_integer_value(id) < 0) {
        fail(r, "could not parse \"%s\" at line %llu: \"id\" %s", r->path, ln,
             id == NULL ? "is missing" : "is not an integer in 0..2^63-1");
        goto out;
    }
    json_t *vec = json_object_get(o, "vector");
    if (vec == NULL || !json_is_array(vec) || json_array_size(vec) == 0) {
        fail(r, "could not parse \"%s\" at line %llu: \"vector\" %s", r->path, ln,
             vec == NULL ? "is missing" : "is not a non-empty array");
        goto out;
    }
    size_t d = json_array_size(vec);
    if (d > CAIRN_MAX_DIM) {
        fail(r, "could not parse \"%s\" at line %llu: \"vector\" has %zu "
                "elements, more than %u", r->path, ln, d, CAIRN_MAX_DIM);
        goto out;
    }
    if (r->dim == 0) {
        r->dim = (uint32_t)d;
        r->vec = malloc(d * sizeof(float));
        if (r->vec == NULL) {
            fail(r, "could not parse \"%s\" at line %llu: out of memory", r->path, ln);
            goto out;
        }
    } else if (d != r->dim) {
        fail(r, "could not parse \"%s\" at line %llu: \"vector\" has %zu "
                "elements, the first row had %u", r->path, ln, d, r->dim);
        goto out;
    }
    for (size_t i = 0; i < d; i++) {
        json_t *x = json_array_get(vec, i);
        double dv;
        if (json_is_integer(x))
            dv = (double)json_integer_value(x);
        else if (json_is_real(x))
            dv = json_real_value(x);
        else {
            fail(r, "could not parse \"%s\" at line %llu: \"vector\"[%zu] is "
                    "not a number", r->path, ln, i);
            goto out;
        }
        float f = (float)dv;
        if (!isfinite(f)) {
            fail(r, "could not parse \"%s\" at line %llu: \"vector\"[%zu] = %g "
                    "is outside the float32 range", r->path, ln, i, dv);
            goto out;
        }
        r->vec[i] = f;
    }
    json_t *pl = json_object_get(o, "payload");
    free(r->payload);
    r->payload = NULL;
    if (pl != NULL && !json_is_null(pl)) {
        if (!json_is_object(pl)) {
            fail(r, "could not parse \"%s\" at line %llu: \"payload\" is not a "
                    "JSON object", r->path, ln);
            goto out;
        }
        jalloc_begin();
        r->payload = json_dumps(pl, JSON_COMPACT | JSON_ENCODE_ANY);
        if (r->payload == NULL || jalloc_failed()) { /* text a character short, maybe */
            free(r->payload);
            r->payload = NULL;
            fail(r, "could not parse \"%s\" at line %llu: out of memory", r->path, ln);
            goto out;
        }
        size_t pn = strlen(r->payload);
        if (pn > CAIRN_MAX_PAYLOAD) {
            fail(r, "could not parse \"%s\" at line %llu: \"payload\" is %zu "
                    "bytes, more than %u", r->path, ln, pn, CAIRN_MAX_PAYLOAD);
            goto out;
        }
    }
    row->id = (uint64_t)json_integer_value(id);
    row->payload = r->payload;
    row->payload_len = r->payload ? strlen(r->payload) : 0;
    rc = 1;
out:
    json_decref(o);
    return rc;
}

static int jsonl_next(vf_reader *r, struct vf_row *row)
{
    for (;;) {
        size_t len = 0;
        int rc = jsonl_getline(r, &len);
        if (rc < 0)
            return -1;
        if (rc == 0)
            return src_eof_ok(&r->s, r->path, r->err, sizeof(r->err)) ? 0 : -1;
        r->line++;
        size_t i = 0;
        while (i < len && (r->linebuf[i] == ' ' || r->linebuf[i] == '\t'))
            i++;
        if (i == len)
            continue; /* blank line */
        return jsonl_row(r, r->linebuf, len, row);
    }
}

/* ---- public ---- */

bool vf_open(const char *path, const struct vf_opts *o, vf_reader **out,
             char *err, size_t errlen)
{
    *out = NULL;
    vf_reader *r = calloc(1, sizeof(*r));
    if (r == NULL || (r->path = strdup(path)) == NULL) {
        free(r);
        snprintf(err, errlen, "could not open \"%s\": out of memory", path);
        return false;
    }
    r->start_id = o->start_id;

    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    bool gz = ends_with(base, ".gz");
    char stem[512];
    snprintf(stem, sizeof(stem), "%s", base);
    if (gz && strlen(stem) >= 3)
        stem[strlen(stem) - 3] = '\0';

    if (!src_open(&r->s, path, gz, err, errlen)) {
        free(r->path);
        free(r);
        return false;
    }
    enum vf_format f = o->format;
    if (f == VF_AUTO)
        f = format_by_name(stem);
    if (f == VF_AUTO)
        f = format_by_content(&r->s);
    if (f == VF_AUTO) {
        fail(r, "could not tell the format of \"%s\" from its name or content; "
                "pass --format jsonl|fvecs|npy|idx", path);
        goto bad;
    }
    r->fmt = f;
    bool ok = false;
    switch (f) {
    case VF_FVECS: ok = fvecs_open(r); break;
    case VF_NPY: ok = npy_open(r); break;
    case VF_IDX: ok = idx_open(r, o->labels); break;
    case VF_JSONL: ok = true; break;
    case VF_AUTO: break;
    }
    if (!ok)
        goto bad;
    *out = r;
    return true;
bad:
    snprintf(err, errlen, "%s", r->err);
    vf_close(r, NULL, 0);
    return false;
}

int vf_next(vf_reader *r, struct vf_row *row)
{
    int rc;
    uint64_t off = r->s.off;
    memset(row, 0, sizeof(*row));
    switch (r->fmt) {
    case VF_JSONL: rc = jsonl_next(r, row); break;
    case VF_FVECS: rc = r->dim ? fvecs_next(r) : 0; break;
    case VF_NPY: rc = npy_next(r); break;
    case VF_IDX: rc = idx_next(r); break;
    default: rc = fail(r, "no format"); break;
    }
    if (rc != 1)
        return rc;
    if (r->fmt != VF_JSONL) {
        for (uint32_t i = 0; i < r->dim; i++) {
            if (!isfinite(r->vec[i]))
                return fail(r, "could not read \"%s\" at row %llu (offset "
                               "%llu): element %u is NaN or infinite",
                            r->path, (unsigned long long)r->row,
                            (unsigned long long)off, i);
        }
        row->id = r->start_id + r->row;
        int n;
        if (r->labels && r->row < r->nlabels)
            n = snprintf(r->pbuf, sizeof(r->pbuf), "{\"label\":%u}",
                         (unsigned)r->labels[r->row]);
        else
            n = snprintf(r->pbuf, sizeof(r->pbuf), "{\"row\":%llu}",
                         (unsigned long long)r->row);
        row->payload = r->pbuf;
        row->payload_len = (size_t)n;
    } else {
        row->line = r->line;
    }
    row->row = r->row++;
    row->vec = r->vec;
    row->dim = r->dim;
    return 1;
}

int vf_skip(vf_reader *r, uint64_t n)
{
    if (n == 0)
        return 0;
    if (r->fmt == VF_JSONL || (r->fmt == VF_FVECS && r->dim == 0)) {
        struct vf_row row;
        for (uint64_t i = 0; i < n; i++) {
            int rc = vf_next(r, &row);
            if (rc < 0)
                return -1;
            if (rc == 0)
                return fail(r, "could not find row %llu in \"%s\": it holds %llu "
                               "rows", (unsigned long long)n, r->path,
                            (unsigned long long)i);
        }
        return 0;
    }
    uint64_t rowb = r->fmt == VF_FVECS ? 4 + 4ull * r->dim
                    : r->fmt == VF_NPY ? 4ull * r->dim
                                       : r->dim;
    if (r->rows_known && r->row + n > r->rows && r->fmt != VF_FVECS)
        return fail(r, "could not find row %llu in \"%s\": it holds %llu rows",
                    (unsigned long long)(r->row + n), r->path,
                    (unsigned long long)r->rows);
    uint64_t want = n * rowb;
    uint64_t got = src_skip(&r->s, want);
    if (r->s.io_error)
        return fail(r, "could not read \"%s\" at offset %llu: %s", r->path,
                    (unsigned long long)r->s.off, strerror(r->s.err_no));
    if (got < want)
        return fail(r, "could not find row %llu in \"%s\": it holds %llu rows",
                    (unsigned long long)(r->row + n), r->path,
                    (unsigned long long)(r->row + got / rowb));
    r->row += n;
    return 0;
}

bool vf_close(vf_reader *r, char *err, size_t errlen)
{
    if (r == NULL)
        return true;
    bool ok = true;
    /* A gzip child that already ended is checked; one still running (we
     * stopped early) is only reaped. */
    bool was_reaped = r->s.reaped;
    bool finished = r->s.at_eof;
    int st = src_close(&r->s);
    if (r->s.pid > 0 && finished && !was_reaped &&
        !(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
        ok = false;
        if (err)
            snprintf(err, errlen, "could not decompress \"%s\": gzip -dc "
                                  "failed (status 0x%x)", r->path, st);
    }
    free(r->path);
    free(r->vec);
    free(r->raw);
    free(r->linebuf);
    free(r->payload);
    free(r->labels);
    free(r->labels_path);
    free(r);
    return ok;
}
