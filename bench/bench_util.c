/*
 * bench_util.c — see bench_util.h.
 */
#include "bench_util.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MIB (1u << 20)

/* ------------------------------------------------------------------ */
/* Clock                                                               */
/* ------------------------------------------------------------------ */

uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ------------------------------------------------------------------ */
/* Seeded data                                                         */
/* ------------------------------------------------------------------ */

uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

double unit_open(uint64_t *s) {
    return ((double)(splitmix64(s) >> 11) + 1.0) / 9007199254740992.0;
}

int bench_pool_make(uint64_t seed, size_t n, float **vec_out,
                    char **payload_out) {
    float *vec = malloc(n * BENCH_VEC_BYTES);
    char *payload = malloc(n * BENCH_PAYLOAD_BYTES);
    if (!vec || !payload) {
        free(vec);
        free(payload);
        return -1;
    }
    uint64_t s = seed;
    for (size_t i = 0; i < n * BENCH_DIM; i += 2) {
        double r = sqrt(-2.0 * log(unit_open(&s)));
        double th = 2.0 * M_PI * unit_open(&s);
        vec[i] = (float)(r * cos(th));
        if (i + 1 < n * BENCH_DIM)
            vec[i + 1] = (float)(r * sin(th));
    }
    static const char tagchars[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    for (size_t i = 0; i < n; i++) {
        char buf[BENCH_PAYLOAD_BYTES + 1];
        uint64_t r = splitmix64(&s);
        int len = snprintf(buf, sizeof(buf),
                           "{\"cat\":\"c%02u\",\"score\":0.%06u,\"tag\":\"",
                           (unsigned)(r % 16), (unsigned)((r >> 8) % 1000000));
        while (len < (int)BENCH_PAYLOAD_BYTES - 2)
            buf[len++] = tagchars[splitmix64(&s) % (sizeof(tagchars) - 1)];
        buf[len++] = '"';
        buf[len++] = '}';
        memcpy(payload + i * BENCH_PAYLOAD_BYTES, buf, BENCH_PAYLOAD_BYTES);
    }
    *vec_out = vec;
    *payload_out = payload;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Latency histogram                                                   */
/* ------------------------------------------------------------------ */

unsigned hist_index(uint64_t v) {
    if (v < HSUB)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* >= HSUB_BITS */
    unsigned sub = (unsigned)(v >> (e - HSUB_BITS)) & (HSUB - 1);
    return (e - HSUB_BITS + 1) * HSUB + sub;
}

double hist_value(unsigned idx) {
    if (idx < HSUB)
        return idx;
    unsigned e = idx / HSUB + HSUB_BITS - 1, sub = idx % HSUB;
    double width = (double)(1ULL << (e - HSUB_BITS));
    return (double)(HSUB + sub) * width + width / 2;
}

double hist_quantile(const struct hist *h, double q) {
    uint64_t total = 0;
    for (unsigned i = 0; i < HBUCKETS; i++)
        total += h->n[i];
    if (!total)
        return 0;
    uint64_t want = (uint64_t)ceil(q * (double)total), seen = 0;
    if (want == 0)
        want = 1;
    for (unsigned i = 0; i < HBUCKETS; i++) {
        seen += h->n[i];
        if (seen >= want)
            return hist_value(i);
    }
    return hist_value(HBUCKETS - 1);
}

/* ------------------------------------------------------------------ */
/* Noise                                                               */
/* ------------------------------------------------------------------ */

void cpu_sample(struct cpu_sample *c) {
    memset(c, 0, sizeof(*c));
    unsigned long long v[8] = {0};
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return;
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0],
                   &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n != 8)
        return;
    /* user nice system idle iowait irq softirq steal */
    c->user = v[0] + v[1];
    c->steal = v[7];
    for (int i = 0; i < 8; i++)
        c->total += v[i];
    char buf[1024];
    f = fopen("/proc/self/stat", "r");
    if (!f)
        return;
    size_t len = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[len] = 0;
    char *p = strrchr(buf, ')');
    unsigned long long ut, cut;
    /* after ")": state ppid pgrp session tty tpgid flags minflt cminflt
     * majflt cmajflt utime stime cutime */
    if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
                            "%llu %*u %llu", &ut, &cut) != 2)
        return;
    c->self_user = ut + cut;
    c->ok = 1;
}

void cpu_noise(const struct cpu_sample *a, const struct cpu_sample *b,
               double *other, double *steal) {
    *other = *steal = -1;
    if (!a->ok || !b->ok || b->total <= a->total)
        return;
    double total = (double)(b->total - a->total);
    double user = (double)(b->user - a->user) -
                  (double)(b->self_user - a->self_user);
    *other = user > 0 ? 100.0 * user / total : 0;
    *steal = 100.0 * (double)(b->steal - a->steal) / total;
}

double cpu_wait_quiet(double pct, double max_s) {
    uint64_t deadline = mono_ns() + (uint64_t)(max_s * 1e9);
    for (;;) {
        struct cpu_sample a, b;
        double other, steal;
        cpu_sample(&a);
        sleep_s(0.5);
        cpu_sample(&b);
        cpu_noise(&a, &b, &other, &steal);
        if (other <= pct || mono_ns() > deadline)
            return other;
    }
}

/* ------------------------------------------------------------------ */
/* The disk's own bounds                                               */
/* ------------------------------------------------------------------ */

int disk_pwrite_all(int fd, const void *buf, size_t len, uint64_t off,
                    const char *path, char *err, size_t errlen) {
    size_t done = 0;
    while (done < len) {
        ssize_t w = pwrite(fd, (const char *)buf + done, len - done,
                           (off_t)(off + done));
        if (w < 0) {
            if (errno == EINTR)
                continue;
            snprintf(err, errlen,
                     "could not write file \"%s\" at offset %llu: %s", path,
                     (unsigned long long)(off + done), strerror(errno));
            return -1;
        }
        done += (size_t)w;
    }
    return 0;
}

int disk_pread_all(int fd, void *buf, size_t len, uint64_t off, size_t *got,
                   const char *path, char *err, size_t errlen) {
    size_t done = 0;
    while (done < len) {
        ssize_t r = pread(fd, (char *)buf + done, len - done,
                          (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            snprintf(err, errlen,
                     "could not read file \"%s\" at offset %llu: %s", path,
                     (unsigned long long)(off + done), strerror(errno));
            return -1;
        }
        if (r == 0)
            break;
        done += (size_t)r;
    }
    *got = done;
    return 0;
}

int disk_prefill(int fd, const char *path, uint64_t bytes, char *err,
                 size_t errlen) {
    static const char zeros[MIB];
    for (uint64_t off = 0; off < bytes; off += sizeof(zeros)) {
        size_t len = sizeof(zeros);
        if (bytes - off < len)
            len = (size_t)(bytes - off);
        if (disk_pwrite_all(fd, zeros, len, off, path, err, errlen) != 0)
            return -1;
    }
    if (fsync(fd) != 0) {
        snprintf(err, errlen, "could not fsync file \"%s\": %s", path,
                 strerror(errno));
        return -1;
    }
    return 0;
}

static void fsync_dir(const char *dir) {
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
}

double disk_write_bw(const char *dir, const char *name, uint64_t bytes,
                     enum disk_write_mode mode, const void *fill, char *err,
                     size_t errlen) {
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    bytes = (bytes + MIB - 1) / MIB * MIB;
    if (!bytes)
        bytes = MIB;
    int direct = mode != DISK_W_SYNC_EACH_OVERWRITE;
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "could not create file \"%s\": %s", path,
                 strerror(errno));
        return -1;
    }
    double bw = -1;
    void *buf = NULL;
    if (posix_memalign(&buf, 4096, MIB) != 0) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    memcpy(buf, fill, MIB);
    if (mode != DISK_W_DIRECT_APPEND) {
        if (disk_prefill(fd, path, bytes, err, errlen) != 0)
            goto out;
        fsync_dir(dir);
    }
    if (direct) {
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl | O_DIRECT) != 0) {
            snprintf(err, errlen, "could not set O_DIRECT on \"%s\": %s", path,
                     strerror(errno));
            goto out;
        }
    }
    uint64_t t0 = mono_ns();
    for (uint64_t off = 0; off < bytes; off += MIB) {
        if (disk_pwrite_all(fd, buf, MIB, off, path, err, errlen) != 0)
            goto out;
        if (!direct && fdatasync(fd) != 0) {
            snprintf(err, errlen, "could not fdatasync file \"%s\": %s", path,
                     strerror(errno));
            goto out;
        }
    }
    if (direct && fdatasync(fd) != 0) {
        snprintf(err, errlen, "could not fdatasync file \"%s\": %s", path,
                 strerror(errno));
        goto out;
    }
    bw = (double)bytes / ((double)(mono_ns() - t0) / 1e9);
out:
    free(buf);
    close(fd);
    unlink(path);
    return bw;
}

struct read_job {
    pthread_t th;
    const char *const *paths;
    size_t n;
    unsigned t, nthreads;
    uint64_t bytes;
    int failed;
    char err[1024];
};

static void *read_main(void *arg) {
    struct read_job *j = arg;
    void *buf = NULL;
    if (posix_memalign(&buf, 4096, MIB) != 0) {
        snprintf(j->err, sizeof(j->err), "out of memory");
        j->failed = 1;
        return NULL;
    }
    for (size_t i = 0; i < j->n && !j->failed; i++) {
        int fd = open(j->paths[i], O_RDONLY | O_DIRECT | O_CLOEXEC);
        if (fd < 0) {
            snprintf(j->err, sizeof(j->err),
                     "could not open file \"%s\" with O_DIRECT: %s",
                     j->paths[i], strerror(errno));
            j->failed = 1;
            break;
        }
        for (uint64_t off = (uint64_t)j->t * MIB;; off += (uint64_t)j->nthreads * MIB) {
            size_t got = 0;
            if (disk_pread_all(fd, buf, MIB, off, &got, j->paths[i], j->err,
                               sizeof(j->err)) != 0) {
                j->failed = 1;
                break;
            }
            j->bytes += got;
            if (got < MIB)
                break;
        }
        close(fd);
    }
    free(buf);
    return NULL;
}

double disk_read_bw(const char *const *paths, size_t n, unsigned nthreads,
                    uint64_t *bytes, char *err, size_t errlen) {
    struct read_job *jobs = calloc(nthreads, sizeof(*jobs));
    *bytes = 0;
    if (!jobs) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    uint64_t t0 = mono_ns();
    unsigned started = 0;
    for (; started < nthreads; started++) {
        jobs[started] = (struct read_job){.paths = paths, .n = n,
                                          .t = started, .nthreads = nthreads};
        if (pthread_create(&jobs[started].th, NULL, read_main,
                           &jobs[started]) != 0)
            break;
    }
    int failed = started < nthreads;
    if (failed)
        snprintf(err, errlen, "could not start a reading thread");
    for (unsigned i = 0; i < started; i++) {
        pthread_join(jobs[i].th, NULL);
        *bytes += jobs[i].bytes;
        if (jobs[i].failed && !failed) {
            snprintf(err, errlen, "%s", jobs[i].err);
            failed = 1;
        }
    }
    double secs = (double)(mono_ns() - t0) / 1e9;
    free(jobs);
    return failed ? -1 : (double)*bytes / secs;
}

/* ------------------------------------------------------------------ */
/* Files and report helpers                                            */
/* ------------------------------------------------------------------ */

static int rm_entry(const char *path, const struct stat *sb, int flag,
                    struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    if (remove(path) != 0 && errno != ENOENT)
        fprintf(stderr, "could not remove \"%s\": %s\n", path, strerror(errno));
    return 0;
}

void rm_tree(const char *path) {
    nftw(path, rm_entry, 32, FTW_DEPTH | FTW_PHYS);
}

const char *fs_name(long type) {
    switch ((unsigned long)type) {
    case 0xEF53: return "ext2/3/4";
    case 0x58465342: return "xfs";
    case 0x9123683E: return "btrfs";
    case 0x01021994: return "tmpfs";
    case 0x858458f6: return "ramfs";
    case 0x794c7630: return "overlayfs";
    default: return "other";
    }
}

void cpu_model(char *out, size_t len) {
    snprintf(out, len, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *p = strchr(line, ':');
            if (p) {
                p++;
                while (*p == ' ')
                    p++;
                p[strcspn(p, "\n")] = 0;
                snprintf(out, len, "%s", p);
            }
            break;
        }
    }
    fclose(f);
}

void shell_append(char *buf, size_t len, const char *arg) {
    size_t used = strlen(buf);
    int plain = *arg != 0;
    for (const char *p = arg; *p; p++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                    "0123456789-_./=,:+@%", *p))
            plain = 0;
    if (used && used + 1 < len)
        buf[used++] = ' ', buf[used] = 0;
    if (plain) {
        snprintf(buf + used, len - used, "%s", arg);
        return;
    }
    size_t o = used;
    if (o + 1 < len)
        buf[o++] = '\'';
    for (const char *p = arg; *p && o + 5 < len; p++) {
        if (*p == '\'') {
            memcpy(buf + o, "'\\''", 4);
            o += 4;
        } else {
            buf[o++] = *p;
        }
    }
    if (o + 1 < len)
        buf[o++] = '\'';
    buf[o] = 0;
}

/* ---- command lines and reports ------------------------------------------- */

int parse_u64(const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || end == s || *end)
        return -1;
    *out = v;
    return 0;
}

int parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *out) {
    uint64_t v;
    if (parse_u64(s, &v) != 0 || v < lo || v > hi)
        return -1;
    *out = (unsigned)v;
    return 0;
}

int parse_double(const char *s, double lo, double hi, double *out) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v >= lo && v <= hi))
        return -1;
    *out = v;
    return 0;
}

void fmt_noise(char *out, size_t len, double other, double steal) {
    if (other < 0)
        snprintf(out, len, "?");
    else if (steal >= 1)
        snprintf(out, len, "%.0f%%+%.0fst", other, steal);
    else
        snprintf(out, len, "%.0f%%", other);
}
