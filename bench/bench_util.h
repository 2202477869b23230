/*
 * bench_util.h — pieces shared by the benchmarks under bench/: the seeded
 * data generator, the latency histogram, the CPU-noise sampler, the disk's
 * own sequential write and read bounds, and small helpers (clock, report
 * header, directory removal).
 *
 * cairn_bench_ingest (ingest.c, ingest_disk.c) and cairn_bench_pages
 * (pages.c) both link bench_util.c, so the two report their disk bound and
 * their noise the same way.
 */
#ifndef CAIRN_BENCH_UTIL_H
#define CAIRN_BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define BENCH_DIM 128u
#define BENCH_VEC_BYTES (BENCH_DIM * sizeof(float)) /* 512 */
#define BENCH_PAYLOAD_BYTES 64u
#define BENCH_DEFAULT_SEED 0x636169726eULL /* "cairn" */

/* ---- clock ---------------------------------------------------------- */

uint64_t mono_ns(void);
void sleep_s(double s);

/* ---- seeded data ---------------------------------------------------- */

uint64_t splitmix64(uint64_t *s);
/* Uniform in (0, 1]. */
double unit_open(uint64_t *s);

/* A pool of n points from seed: n x BENCH_DIM float32 N(0,1) (Box-Muller)
 * and n payloads of BENCH_PAYLOAD_BYTES bytes of JSON object text (no NUL:
 * {"cat":"c07","score":0.123456,"tag":"..."}). The same seed gives the same
 * bytes. Returns 0, or -1 when out of memory (nothing allocated). */
int bench_pool_make(uint64_t seed, size_t n, float **vec, char **payload);

/* ---- latency histogram: log2 buckets of 32 linear sub-buckets (ns),
 * ~3 % resolution ------------------------------------------------------ */

#define HSUB_BITS 5
#define HSUB (1u << HSUB_BITS)
#define HBUCKETS ((64 - HSUB_BITS) * HSUB)

struct hist {
    uint64_t n[HBUCKETS];
};

unsigned hist_index(uint64_t v);
double hist_value(unsigned idx);
/* The value at quantile q (0..1) in the histogram's unit; 0 when empty. */
double hist_quantile(const struct hist *h, double q);

/* ---- noise: what other processes and the hypervisor took ------------ */

/* CPU accounting over a window, to show how much of the machine other
 * processes took: figures taken while that is high are noise. Only user
 * time is compared (all CPUs' user + nice from /proc/stat less this
 * process's own user time, every thread included, and that of its waited-
 * for children), so that the kernel's own work for our I/O (writeback, the
 * ext4 journal, interrupts), which counts as system time, is not mistaken
 * for a neighbour. Steal: time the hypervisor gave to other guests. */
struct cpu_sample {
    unsigned long long user, steal, total; /* /proc/stat "cpu", ticks */
    unsigned long long self_user;          /* this process, ticks */
    int ok;
};

void cpu_sample(struct cpu_sample *c);
/* *other: others' user time, % of all cores; *steal: % stolen; -1 when
 * unknown. */
void cpu_noise(const struct cpu_sample *a, const struct cpu_sample *b,
               double *other, double *steal);

/* Waits (at most max_s seconds) until other processes have used at most
 * pct % of the CPUs (user time) over half a second. Returns the last share
 * seen. */
double cpu_wait_quiet(double pct, double max_s);

/* ---- the disk's own bounds ------------------------------------------ */

/* Writes bytes of zeros into fd from offset 0 in 1 MiB pieces and fsyncs
 * it: a "preallocated, zero-filled" file, the fast case for an overwrite
 * (LIMITS.md). Returns 0 or -1 with a message naming path in err. */
int disk_prefill(int fd, const char *path, uint64_t bytes, char *err,
                 size_t errlen);
/* pwrite()s all len bytes at off (retrying short writes and EINTR).
 * Returns 0 or -1 with a message naming path and offset in err. */
int disk_pwrite_all(int fd, const void *buf, size_t len, uint64_t off,
                    const char *path, char *err, size_t errlen);
/* pread()s up to len bytes at off; *got receives how many (fewer only at
 * the end of the file). Returns 0 or -1 with a message in err. */
int disk_pread_all(int fd, void *buf, size_t len, uint64_t off,
                   size_t *got, const char *path, char *err, size_t errlen);

/* How one sequential write bound is taken (disk_write_bw). */
enum disk_write_mode {
    /* 1 MiB buffered pwrite + fdatasync per op over a file first written
     * full of zeros and fsync'd (cairn_bench_ingest's batch disk bound) */
    DISK_W_SYNC_EACH_OVERWRITE,
    /* 1 MiB O_DIRECT pwrites appended to a new file, one fdatasync at the
     * end (the pattern of a checkpoint writing a new page file) */
    DISK_W_DIRECT_APPEND,
    /* the same over a file first written full of zeros and fsync'd (a
     * checkpoint reusing free pages of its file) */
    DISK_W_DIRECT_OVERWRITE,
};

/* Writes bytes (rounded up to 1 MiB) of fill (>= 1 MiB of nonzero bytes)
 * into a new file dir/name as mode says, removes it, and returns the
 * timed bytes per second (prefill not timed), or -1 with a message. */
double disk_write_bw(const char *dir, const char *name, uint64_t bytes,
                     enum disk_write_mode mode, const void *fill, char *err,
                     size_t errlen);

/* Reads the n files whole with O_DIRECT in 1 MiB reads, split over
 * nthreads threads (thread t reads every nthreads-th MiB of each file,
 * so nthreads reads are in flight: queue depth nthreads). *bytes receives
 * the bytes read. Returns bytes per second, or -1 with a message. */
double disk_read_bw(const char *const *paths, size_t n, unsigned nthreads,
                    uint64_t *bytes, char *err, size_t errlen);

/* ---- files and report helpers --------------------------------------- */

void rm_tree(const char *path);
/* "ext2/3/4", "tmpfs", ... for a statfs f_type. */
const char *fs_name(long type);
void cpu_model(char *out, size_t len);
/* Appends arg to buf (space separated), quoted for a POSIX shell if it
 * needs it. */
void shell_append(char *buf, size_t len, const char *arg);

/* ---- command lines and reports ------------------------------------------- */

/* 0, or -1 when s is not a whole number (in range). */
int parse_u64(const char *s, uint64_t *out);
int parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *out);
int parse_double(const char *s, double lo, double hi, double *out);
/* "12%", "12%+3st" (hypervisor steal of 1% or more), "?" when unknown. */
void fmt_noise(char *out, size_t len, double other, double steal);

#endif
