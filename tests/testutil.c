/* testutil.c — helpers shared by the test programs; see testutil.h. */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static _Thread_local char tu_err[1024];

static void set_err(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tu_err, sizeof tu_err, fmt, ap);
    va_end(ap);
}

const char *tu_error(void) { return tu_err; }

/* ---- seeded generators --------------------------------------------------- */

uint64_t tu_splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

double tu_unit(uint64_t *s) { return (double)(tu_splitmix(s) >> 11) / (double)(1ULL << 53); }

void tu_fill_vec(uint64_t *s, float *v, uint32_t dim, double lo, double hi) {
    for (uint32_t i = 0; i < dim; i++) v[i] = (float)(tu_unit(s) * (hi - lo) + lo);
}

uint8_t *tu_record_bytes(uint64_t *s, size_t *len) {
    size_t cap = *len;
    uint8_t *b = malloc(cap ? cap : 1);
    if (!b) return NULL;
    size_t at = 0;
    for (uint64_t id = 0; at + 16 + 256 + 48 <= cap; id++) {
        memcpy(b + at, "REC", 4);
        memcpy(b + at + 4, &id, 8);
        memset(b + at + 12, 0, 4);
        at += 16;
        for (int k = 0; k < 64; k++, at += 4) {
            float f = (float)((int)(tu_unit(s) * 2048) - 1024) / 1024.0f;
            memcpy(b + at, &f, 4);
        }
        at += (size_t)snprintf((char *)b + at, 48, "{\"row\":%llu,\"tag\":\"t%llu\"}",
                               (unsigned long long)id, (unsigned long long)(id % 7));
    }
    *len = at;
    return b;
}

uint64_t tu_seed_env(const char *var, uint64_t def) {
    const char *s = getenv(var);
    return s ? strtoull(s, NULL, 0) : def;
}

uint64_t tu_seed(const char *name, uint64_t def) {
    uint64_t seed = tu_seed_env("CAIRN_SEED", def);
    printf("%s: seed=%" PRIu64 " (rerun: CAIRN_SEED=%" PRIu64 ")\n", name, seed, seed);
    fflush(stdout);
    return seed;
}

/* ---- files and directories ------------------------------------------------ */

int tu_tmpbase(char *out, size_t cap, const char *name) {
    const char *base = getenv("CAIRN_TEST_TMP");
    if (!base || !base[0]) base = "/tmp";
    mkdir(base, 0755); /* may exist */
    int n = snprintf(out, cap, "%s/%s.XXXXXX", base, name);
    if (n < 0 || (size_t)n >= cap) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return mkdtemp(out) ? 0 : -1;
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

int tu_rm_rf(const char *path) {
    struct stat sb;
    if (lstat(path, &sb) != 0) return errno == ENOENT ? 0 : -1;
    return nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : -1;
}

int tu_write_file(const char *path, const void *data, size_t len) {
    if (unlink(path) != 0 && errno != ENOENT) {
        set_err("unlink %s: %s", path, strerror(errno));
        return -1;
    }
    FILE *f = fopen(path, "wb");
    if (!f) {
        set_err("create %s: %s", path, strerror(errno));
        return -1;
    }
    size_t put = fwrite(data, 1, len, f);
    if (fclose(f) != 0 || put != len) {
        set_err("write %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

int tu_flip_byte(const char *path, size_t off) {
    size_t len = 0;
    unsigned char *b = tu_read_file(path, &len);
    if (!b) return -1;
    int rc = -1;
    if (off >= len)
        set_err("flip %s: offset %zu past its end (%zu bytes)", path, off, len);
    else {
        b[off] ^= 0x5a;
        rc = tu_write_file(path, b, len);
    }
    free(b);
    return rc;
}

/* Copies a regular file, leaving holes where whole 4 KiB blocks are zero
 * (WAL segments are mostly preallocated zeros). */
static int copy_file(const char *from, const char *to) {
    int in = open(from, O_RDONLY), out = -1, rc = -1;
    if (in < 0) {
        set_err("open %s: %s", from, strerror(errno));
        return -1;
    }
    out = open(to, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (out < 0) {
        set_err("create %s: %s", to, strerror(errno));
        goto out;
    }
    static _Thread_local unsigned char buf[1 << 20];
    static const unsigned char zero[4096];
    off_t off = 0;
    for (;;) {
        ssize_t r = pread(in, buf, sizeof buf, off);
        if (r < 0) {
            set_err("read %s: %s", from, strerror(errno));
            goto out;
        }
        if (r == 0) break;
        /* runs of blocks that are not all zeros, one write each */
        for (ssize_t b = 0; b < r;) {
            ssize_t e = b;
            while (e < r && (r - e < 4096 || memcmp(buf + e, zero, 4096) != 0))
                e += r - e < 4096 ? r - e : 4096;
            if (e > b && pwrite(out, buf + b, (size_t)(e - b), off + b) != e - b) {
                set_err("write %s: %s", to, strerror(errno));
                goto out;
            }
            b = e + 4096;
        }
        off += r;
    }
    if (ftruncate(out, off) != 0) {
        set_err("truncate %s: %s", to, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    close(in);
    if (out >= 0) close(out);
    return rc;
}

/* tu_link_tree and tu_copy_tree: the same walk, a file linked or copied. */
static int clone_tree(const char *from, const char *to, bool copy) {
    if (mkdir(to, 0755) != 0) {
        set_err("mkdir %s: %s", to, strerror(errno));
        return -1;
    }
    DIR *d = opendir(from);
    if (!d) {
        set_err("opendir %s: %s", from, strerror(errno));
        return -1;
    }
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char a[1200], b[1200];
        snprintf(a, sizeof a, "%s/%s", from, e->d_name);
        snprintf(b, sizeof b, "%s/%s", to, e->d_name);
        struct stat sb;
        if (lstat(a, &sb) != 0) {
            set_err("lstat %s: %s", a, strerror(errno));
            rc = -1;
        } else if (S_ISDIR(sb.st_mode)) {
            rc = clone_tree(a, b, copy);
        } else if (copy) {
            if (S_ISREG(sb.st_mode)) rc = copy_file(a, b);
        } else if (link(a, b) != 0) {
            set_err("link %s: %s", b, strerror(errno));
            rc = -1;
        }
    }
    closedir(d);
    return rc;
}

int tu_link_tree(const char *from, const char *to) { return clone_tree(from, to, false); }

int tu_copy_tree(const char *from, const char *to) { return clone_tree(from, to, true); }

unsigned char *tu_read_file(const char *path, size_t *len) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        set_err("open %s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat sb;
    unsigned char *b = NULL;
    if (fstat(fd, &sb) != 0) {
        set_err("fstat %s: %s", path, strerror(errno));
        goto out;
    }
    size_t size = (size_t)sb.st_size;
    b = malloc(size + 1);
    if (!b) {
        set_err("read %s: out of memory", path);
        goto out;
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = pread(fd, b + got, size - got, (off_t)got);
        if (r <= 0) {
            set_err("read %s: %s", path, r < 0 ? strerror(errno) : "file shrank");
            free(b);
            b = NULL;
            goto out;
        }
        got += (size_t)r;
    }
    *len = size;
out:
    close(fd);
    return b;
}

static int tree_add_dir(struct tu_tree *t, const char *dir) {
    DIR *d = opendir(dir);
    if (!d) {
        set_err("opendir %s: %s", dir, strerror(errno));
        return -1;
    }
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        size_t plen = strlen(dir) + strlen(de->d_name) + 2;
        char *p = malloc(plen);
        if (!p) {
            set_err("tree %s: out of memory", dir);
            rc = -1;
            break;
        }
        snprintf(p, plen, "%s/%s", dir, de->d_name);
        struct stat sb;
        if (lstat(p, &sb) != 0) {
            set_err("lstat %s: %s", p, strerror(errno));
            rc = -1;
        } else if (S_ISDIR(sb.st_mode)) {
            rc = tree_add_dir(t, p);
        } else {
            struct tu_tree_file *nf = realloc(t->f, (t->n + 1) * sizeof *t->f);
            if (!nf) {
                set_err("tree %s: out of memory", dir);
                rc = -1;
            } else {
                t->f = nf;
                struct tu_tree_file *fi = &t->f[t->n];
                fi->data = tu_read_file(p, &fi->len);
                if (!fi->data) {
                    rc = -1;
                } else {
                    fi->path = p;
                    p = NULL;
                    t->n++;
                }
            }
        }
        free(p);
    }
    closedir(d);
    return rc;
}

static int cmp_tree_file(const void *a, const void *b) {
    return strcmp(((const struct tu_tree_file *)a)->path,
                  ((const struct tu_tree_file *)b)->path);
}

int tu_tree_take(struct tu_tree *t, const char *dir) {
    t->f = NULL;
    t->n = 0;
    if (tree_add_dir(t, dir) != 0) return -1;
    if (t->n) qsort(t->f, t->n, sizeof *t->f, cmp_tree_file);
    return 0;
}

int tu_tree_diff(const struct tu_tree *a, const struct tu_tree *b, char *why, size_t n) {
    size_t i = 0, j = 0;
    while (i < a->n || j < b->n) {
        int c = i == a->n ? 1 : j == b->n ? -1 : strcmp(a->f[i].path, b->f[j].path);
        if (c < 0) {
            snprintf(why, n, "removed %s (%zu -> %zu files)", a->f[i].path, a->n, b->n);
            return 1;
        }
        if (c > 0) {
            snprintf(why, n, "added %s (%zu -> %zu files)", b->f[j].path, a->n, b->n);
            return 1;
        }
        if (a->f[i].len != b->f[j].len || memcmp(a->f[i].data, b->f[j].data, a->f[i].len)) {
            snprintf(why, n, "changed %s", a->f[i].path);
            return 1;
        }
        i++;
        j++;
    }
    return 0;
}

void tu_tree_free(struct tu_tree *t) {
    for (size_t i = 0; i < t->n; i++) {
        free(t->f[i].path);
        free(t->f[i].data);
    }
    free(t->f);
    t->f = NULL;
    t->n = 0;
}

/* ---- database state ------------------------------------------------------- */

cairn_options tu_opts(cairn_durability d, cairn_io_backend io, unsigned jobs) {
    cairn_options o;
    cairn_options_init(&o);
    o.wal_segment_size = CAIRN_WAL_SEGMENT_MIN;
    o.durability = d;
    o.io_backend = io;
    o.replay_jobs = jobs;
    return o;
}

int tu_dig_add(struct tu_dig *d, const void *p, size_t n) {
    if (d->len + n > d->cap) {
        size_t nc = d->cap ? d->cap * 2 : 4096;
        while (nc < d->len + n) nc *= 2;
        unsigned char *nb = realloc(d->b, nc);
        if (!nb) {
            set_err("state digest: out of memory");
            return -1;
        }
        d->b = nb;
        d->cap = nc;
    }
    memcpy(d->b + d->len, p, n);
    d->len += n;
    return 0;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* One collection's points by ascending id. */
static int digest_points(cairn_db *db, const cairn_collection_info *ci, struct tu_dig *d) {
    uint32_t k = (uint32_t)ci->points;
    float *q = calloc(ci->dim, sizeof *q);
    float *v = calloc(ci->dim, sizeof *v);
    cairn_hit *hits = calloc(k ? k : 1, sizeof *hits);
    uint64_t *ids = calloc(k ? k : 1, sizeof *ids);
    int rc = -1;
    if (!q || !v || !hits || !ids) {
        set_err("state digest: out of memory");
        goto out;
    }
    /* k = all points: the exact search returns every one whatever the query */
    for (uint32_t j = 0; j < ci->dim; j++) q[j] = 0.5f;
    uint32_t nh = 0;
    cairn_status st = cairn_search(db, ci->name, q, ci->dim, k, NULL, hits, &nh);
    if (st != CAIRN_OK) {
        set_err("state digest: cairn_search \"%s\": %s: %s", ci->name, cairn_status_name(st),
                cairn_last_error());
        goto out;
    }
    if (nh != k) {
        set_err("state digest: search of \"%s\" found %" PRIu32 " of %" PRIu32 " points",
                ci->name, nh, k);
        goto out;
    }
    for (uint32_t j = 0; j < nh; j++) ids[j] = hits[j].id;
    qsort(ids, nh, sizeof *ids, cmp_u64);
    for (uint32_t j = 0; j < nh; j++) {
        char *p = NULL;
        st = cairn_get(db, ci->name, ids[j], v, ci->dim, &p);
        if (st != CAIRN_OK) {
            set_err("state digest: cairn_get \"%s\" id %" PRIu64 ": %s: %s", ci->name, ids[j],
                    cairn_status_name(st), cairn_last_error());
            goto out;
        }
        int bad = tu_dig_add(d, &ids[j], sizeof ids[j]) || tu_dig_add(d, v, ci->dim * sizeof *v) ||
                  (p ? tu_dig_add(d, p, strlen(p) + 1) : tu_dig_add(d, "\xff(none)", 8));
        cairn_free(p);
        if (bad) goto out;
    }
    rc = 0;
out:
    free(q);
    free(v);
    free(hits);
    free(ids);
    return rc;
}

int tu_state_digest(cairn_db *db, struct tu_dig *d, unsigned flags) {
    d->len = 0;
    cairn_collection_info *list = NULL;
    size_t n = 0;
    cairn_status st = cairn_collection_list(db, &list, &n);
    if (st != CAIRN_OK) {
        set_err("state digest: cairn_collection_list: %s: %s", cairn_status_name(st),
                cairn_last_error());
        return -1;
    }
    const bool ib = flags & TU_DIG_ID_BYTES;
    int bad = tu_dig_add(d, &n, sizeof n);
    for (size_t i = 0; i < n && !bad; i++) {
        const cairn_collection_info *ci = &list[i];
        bad = tu_dig_add(d, ci->name, strlen(ci->name) + 1) ||
              (ib && tu_dig_add(d, &ci->id, sizeof ci->id)) ||
              tu_dig_add(d, &ci->dim, sizeof ci->dim) ||
              tu_dig_add(d, &ci->metric, sizeof ci->metric) ||
              tu_dig_add(d, &ci->points, sizeof ci->points) ||
              (ib && tu_dig_add(d, &ci->bytes, sizeof ci->bytes)) || digest_points(db, ci, d);
    }
    cairn_free(list);
    return bad ? -1 : 0;
}

int tu_copy_collection(cairn_db *from, cairn_db *to, const char *name) {
    cairn_collection_info ci;
    cairn_status st = cairn_collection_stat(from, name, &ci);
    if (st != CAIRN_OK) {
        set_err("copy \"%s\": stat: %s: %s", name, cairn_status_name(st), cairn_last_error());
        return -1;
    }
    cairn_collection_info old;
    if (cairn_collection_stat(to, name, &old) == CAIRN_OK &&
        (st = cairn_collection_drop(to, name)) != CAIRN_OK) {
        set_err("copy \"%s\": drop: %s: %s", name, cairn_status_name(st), cairn_last_error());
        return -1;
    }
    if ((st = cairn_collection_create(to, name, ci.dim, ci.metric)) != CAIRN_OK) {
        set_err("copy \"%s\": create: %s: %s", name, cairn_status_name(st), cairn_last_error());
        return -1;
    }
    uint32_t k = (uint32_t)ci.points;
    float *q = calloc(ci.dim, sizeof *q);
    float *v = calloc(ci.dim, sizeof *v);
    cairn_hit *hits = calloc(k ? k : 1, sizeof *hits);
    int rc = -1;
    if (!q || !v || !hits) {
        set_err("copy: out of memory");
        goto out;
    }
    uint32_t nh = 0;
    st = cairn_search(from, name, q, ci.dim, k, NULL, hits, &nh);
    if (st != CAIRN_OK || nh != k) {
        set_err("copy \"%s\": search found %" PRIu32 " of %" PRIu32 ": %s", name, nh, k,
                cairn_last_error());
        goto out;
    }
    for (uint32_t j = 0; j < nh; j++) {
        char *p = NULL;
        st = cairn_get(from, name, hits[j].id, v, ci.dim, &p);
        cairn_point pt = {hits[j].id, v, p, p ? strlen(p) : 0};
        if (st == CAIRN_OK) st = cairn_upsert_batch(to, name, &pt, 1, ci.dim, NULL);
        cairn_free(p);
        if (st != CAIRN_OK) {
            set_err("copy \"%s\" id %" PRIu64 ": %s: %s", name, hits[j].id,
                    cairn_status_name(st), cairn_last_error());
            goto out;
        }
    }
    rc = 0;
out:
    free(q);
    free(v);
    free(hits);
    return rc;
}

bool tu_dig_eq(const struct tu_dig *a, const struct tu_dig *b) {
    return a->len == b->len && (a->len == 0 || memcmp(a->b, b->b, a->len) == 0);
}

void tu_dig_free(struct tu_dig *d) {
    free(d->b);
    d->b = NULL;
    d->len = d->cap = 0;
}

/* ---- a model of the database (oracle) ------------------------------------- */

void tu_gen_vector(uint32_t vseed, float *v, uint32_t dim) {
    uint64_t s = vseed * 0x100000001b3ULL + 7;
    tu_fill_vec(&s, v, dim, -1.0, 1.0);
}

char *tu_gen_payload(uint32_t vseed, uint32_t pad, size_t *len) {
    if (pad == TU_NO_PAYLOAD) return NULL;
    size_t cap = (size_t)pad + 40;
    char *b = malloc(cap);
    if (!b) return NULL;
    int k = snprintf(b, cap, "{\"s\":%" PRIu32 ",\"p\":\"", vseed);
    for (uint32_t i = 0, c = vseed % 26u; i < pad; i++) {
        b[k + i] = (char)('a' + c);
        c = c + 7u < 26u ? c + 7u : c + 7u - 26u;
    }
    size_t n = (size_t)k + pad;
    memcpy(b + n, "\"}", 3);
    *len = n + 2;
    return b;
}

/* Room for one more element in *v (n used of *cap, each sz bytes). 0, or
 * -1 when out of memory. */
static int grow(void *pv, size_t n, size_t *cap, size_t sz) {
    void **v = pv;
    if (n < *cap) return 0;
    size_t nc = *cap ? *cap * 2 : 8;
    void *nv = realloc(*v, nc * sz);
    if (!nv) {
        set_err("model: out of memory");
        return -1;
    }
    *v = nv;
    *cap = nc;
    return 0;
}

static struct tu_mcoll *model_find(const struct tu_model *m, const char *name) {
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->c[i].name, name) == 0) return &m->c[i];
    return NULL;
}

int tu_model_create(struct tu_model *m, const char *name, uint32_t dim, cairn_metric metric) {
    if (model_find(m, name)) {
        set_err("model: collection \"%s\" exists", name);
        return -1;
    }
    if (grow(&m->c, m->n, &m->cap, sizeof *m->c)) return -1;
    size_t at = 0; /* sorted by name */
    while (at < m->n && strcmp(m->c[at].name, name) < 0) at++;
    memmove(&m->c[at + 1], &m->c[at], (m->n - at) * sizeof *m->c);
    struct tu_mcoll *c = &m->c[at];
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    c->dim = dim;
    c->metric = metric;
    m->n++;
    return 0;
}

int tu_model_drop(struct tu_model *m, const char *name) {
    struct tu_mcoll *c = model_find(m, name);
    if (!c) {
        set_err("model: no collection \"%s\"", name);
        return -1;
    }
    free(c->p);
    size_t at = (size_t)(c - m->c);
    memmove(&m->c[at], &m->c[at + 1], (m->n - at - 1) * sizeof *m->c);
    m->n--;
    return 0;
}

/* Index of id in c (or where it would go); *found says which. */
static size_t mpoint_at(const struct tu_mcoll *c, uint64_t id, bool *found) {
    size_t lo = 0, hi = c->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->p[mid].id < id) lo = mid + 1;
        else hi = mid;
    }
    *found = lo < c->n && c->p[lo].id == id;
    return lo;
}

/* Collection coll and where point id is (or would go) in it; NULL (error
 * set) when there is no such collection. */
static struct tu_mcoll *model_point(struct tu_model *m, const char *coll, uint64_t id,
                                    size_t *at, bool *found) {
    struct tu_mcoll *c = model_find(m, coll);
    if (!c) {
        set_err("model: no collection \"%s\"", coll);
        return NULL;
    }
    *at = mpoint_at(c, id, found);
    return c;
}

int tu_model_upsert(struct tu_model *m, const char *coll, uint64_t id, uint32_t vseed,
                    uint32_t pad) {
    bool found;
    size_t at;
    struct tu_mcoll *c = model_point(m, coll, id, &at, &found);
    if (!c) return -1;
    if (!found) {
        if (grow(&c->p, c->n, &c->cap, sizeof *c->p)) return -1;
        memmove(&c->p[at + 1], &c->p[at], (c->n - at) * sizeof *c->p);
        c->n++;
    }
    c->p[at] = (struct tu_mpoint){id, vseed, pad};
    return 0;
}

int tu_model_delete(struct tu_model *m, const char *coll, uint64_t id) {
    bool found;
    size_t at;
    struct tu_mcoll *c = model_point(m, coll, id, &at, &found);
    if (!c) return -1;
    if (found) {
        memmove(&c->p[at], &c->p[at + 1], (c->n - at - 1) * sizeof *c->p);
        c->n--;
    }
    return 0;
}

void tu_model_free(struct tu_model *m) {
    for (size_t i = 0; i < m->n; i++) free(m->c[i].p);
    free(m->c);
    memset(m, 0, sizeof *m);
}

/* The same bytes as tu_state_digest (flags 0) and digest_points. */
int tu_model_digest(const struct tu_model *m, struct tu_dig *d) {
    d->len = 0;
    size_t n = m->n;
    if (tu_dig_add(d, &n, sizeof n)) return -1;
    float *v = NULL;
    int rc = -1;
    for (size_t i = 0; i < m->n; i++) {
        const struct tu_mcoll *c = &m->c[i];
        uint64_t points = c->n;
        float *nv = realloc(v, (c->dim ? c->dim : 1) * sizeof *v);
        if (!nv) {
            set_err("model digest: out of memory");
            goto out;
        }
        v = nv;
        if (tu_dig_add(d, c->name, strlen(c->name) + 1) || tu_dig_add(d, &c->dim, sizeof c->dim) ||
            tu_dig_add(d, &c->metric, sizeof c->metric) || tu_dig_add(d, &points, sizeof points))
            goto out;
        for (size_t j = 0; j < c->n; j++) {
            const struct tu_mpoint *p = &c->p[j];
            tu_gen_vector(p->vseed, v, c->dim);
            if (tu_dig_add(d, &p->id, sizeof p->id) || tu_dig_add(d, v, c->dim * sizeof *v)) goto out;
            if (p->pad == TU_NO_PAYLOAD) {
                if (tu_dig_add(d, "\xff(none)", 8)) goto out;
                continue;
            }
            size_t len;
            char *pl = tu_gen_payload(p->vseed, p->pad, &len);
            if (!pl) {
                set_err("model digest: out of memory");
                goto out;
            }
            int bad = tu_dig_add(d, pl, len + 1);
            free(pl);
            if (bad) goto out;
        }
    }
    rc = 0;
out:
    free(v);
    return rc;
}

/* Whether a point of model collection c differs in the database (then
 * why says which). */
static bool explain_coll(cairn_db *db, const struct tu_mcoll *c, char *why, size_t n) {
    bool differs = true;
    float *v = calloc(c->dim, sizeof *v), *want = calloc(c->dim, sizeof *want);
    if (!v || !want) {
        snprintf(why, n, "explain: out of memory");
        goto out;
    }
    for (size_t j = 0; j < c->n; j++) {
        const struct tu_mpoint *p = &c->p[j];
        char *got = NULL;
        cairn_status st = cairn_get(db, c->name, p->id, v, c->dim, &got);
        if (st != CAIRN_OK) {
            snprintf(why, n, "%s id %" PRIu64 ": %s, expected present", c->name, p->id,
                     cairn_status_name(st));
            goto out;
        }
        size_t len = 0;
        char *pl = tu_gen_payload(p->vseed, p->pad, &len);
        tu_gen_vector(p->vseed, want, c->dim);
        bool same_pl = (!pl && !got) || (pl && got && strcmp(pl, got) == 0);
        bool same_v = memcmp(v, want, c->dim * sizeof *v) == 0;
        free(pl);
        cairn_free(got);
        if (!same_pl || !same_v) {
            snprintf(why, n, "%s id %" PRIu64 ": other %s than committed (seed %" PRIu32 ")",
                     c->name, p->id, same_v ? "payload" : "vector", p->vseed);
            goto out;
        }
    }
    differs = false;
out:
    free(v);
    free(want);
    return differs;
}

void tu_model_explain(cairn_db *db, const struct tu_model *m, char *why, size_t n) {
    cairn_collection_info *list = NULL;
    size_t nl = 0;
    cairn_status st = cairn_collection_list(db, &list, &nl);
    if (st != CAIRN_OK) {
        snprintf(why, n, "cairn_collection_list: %s", cairn_status_name(st));
        return;
    }
    snprintf(why, n, "no difference found");
    for (size_t i = 0; i < nl || i < m->n; i++) {
        const cairn_collection_info *ci = i < nl ? &list[i] : NULL;
        const struct tu_mcoll *c = i < m->n ? &m->c[i] : NULL;
        if (!ci || !c || strcmp(ci->name, c->name) != 0) {
            snprintf(why, n, "collection %s in the database, %s in the model",
                     ci ? ci->name : "(none)", c ? c->name : "(none)");
            break;
        }
        if (ci->dim != c->dim || ci->metric != c->metric || ci->points != c->n) {
            snprintf(why, n,
                     "collection %s: dim %" PRIu32 " metric %d points %" PRIu64
                     " in the database, dim %" PRIu32 " metric %d points %zu in the model",
                     c->name, ci->dim, (int)ci->metric, ci->points, c->dim, (int)c->metric,
                     c->n);
            break;
        }
        if (explain_coll(db, c, why, n)) break;
    }
    cairn_free(list);
}

/* ---- messages --------------------------------------------------------------- */

void tu_quiet_log(void) {
    cairn_set_log(NULL, NULL,
                  getenv("CAIRN_TEST_VERBOSE") ? CAIRN_LOG_WARN
                                               : (cairn_log_level)(CAIRN_LOG_ERROR + 1));
}

/* ---- a mixed workload over three collections ------------------------------- */

const char *const tu_mix_name[TU_MIX_N] = {"small", "mid", "wide"};
const uint32_t tu_mix_dim[TU_MIX_N] = {4, 128, 2100};
const cairn_metric tu_mix_metric[TU_MIX_N] = {CAIRN_METRIC_L2, CAIRN_METRIC_COSINE,
                                              CAIRN_METRIC_DOT};

cairn_status tu_mix_create(cairn_db *db) {
    cairn_status st = CAIRN_OK;
    for (int c = 0; c < TU_MIX_N && !st; c++)
        st = cairn_collection_create(db, tu_mix_name[c], tu_mix_dim[c], tu_mix_metric[c]);
    return st;
}

cairn_status tu_mix_txn(cairn_db *db, uint64_t *rng, cairn_commit_info *ci) {
    static _Thread_local float vec[2100];
    static _Thread_local char pay[24000];
    cairn_txn *t = NULL;
    cairn_status st = cairn_txn_begin(db, &t);
    if (st) return st;
    unsigned nops = 1 + (unsigned)(tu_splitmix(rng) % 8);
    for (unsigned i = 0; i < nops && !st; i++) {
        int c = (int)(tu_splitmix(rng) % TU_MIX_N);
        uint64_t id = tu_splitmix(rng) % (c == 2 ? 40 : 400);
        if (tu_splitmix(rng) % 5 == 0) {
            st = cairn_txn_delete(t, tu_mix_name[c], id);
            continue;
        }
        tu_fill_vec(rng, vec, tu_mix_dim[c], -1, 1);
        size_t plen = 0;
        uint64_t r = tu_splitmix(rng) % 20;
        if (r > 2) {
            size_t want = r < 18 ? 10 + tu_splitmix(rng) % 200 : 5000 + tu_splitmix(rng) % 15000;
            plen = (size_t)snprintf(pay, sizeof pay, "{\"k\":%llu,\"s\":\"",
                                    (unsigned long long)(tu_splitmix(rng) % 1000));
            while (plen < want) pay[plen++] = (char)('a' + tu_splitmix(rng) % 26);
            pay[plen++] = '"';
            pay[plen++] = '}';
            pay[plen] = 0;
        }
        st = cairn_txn_upsert(t, tu_mix_name[c], id, vec, tu_mix_dim[c], plen ? pay : NULL,
                              plen);
    }
    if (!st) st = cairn_txn_commit(t, ci);
    else cairn_txn_abort(t);
    cairn_txn_free(t);
    return st;
}
