/*
 * pages.c — page store benchmarks (issue 3): reopen after a crash,
 * checkpoint write throughput, and commit latency under checkpoints, each
 * against the disk's own bandwidth measured in the same process run.
 *
 * One run (all on fresh directories under --dir, on the work disk):
 *
 *   build (a child process that ends in SIGKILL: a real crash)
 *     open a new database (SYNC; no automatic checkpoints:
 *     checkpoint_wal_bytes = UINT64_MAX, checkpoint_interval_s = 0), one
 *     collection "bench" (128-d, L2); upsert ids 0..--points-1 in batches
 *     of --batch; cairn_checkpoint() #1 (full: every page is new); upsert
 *     --update-frac of the points (random existing ids); cairn_checkpoint()
 *     #2; then commit batches (half random existing ids, half new ids)
 *     until --tail-mb of WAL lie after checkpoint #2's redo LSN; then
 *     kill(getpid(), SIGKILL) right after the last commit returned.
 *     After each checkpoint, the disk's sequential write bandwidth is
 *     measured on the same number of bytes (bench_util.c, disk_write_bw):
 *     1 MiB pwrite + fdatasync per op over a zero-filled file (the bound
 *     of cairn_bench_ingest), and 1 MiB O_DIRECT writes with one
 *     fdatasync at the end, to a new file and over a zero-filled one (a
 *     checkpoint's own pattern: O_DIRECT page runs of <= 1 MiB, one
 *     fdatasync per file).
 *
 *   reopen, --open-repeat times, cold then warm
 *     cold: every file of the database is fdatasync'd and dropped from the
 *     page cache (posix_fadvise DONTNEED; mincore() checks what is left;
 *     --drop-caches also writes /proc/sys/vm/drop_caches when that is not
 *     enough), then a fresh child process times cairn_open(), reads the
 *     recovery report, checks the point count and --verify points against
 *     what the build committed (untimed), and kills itself (no close: the
 *     next open finds the same crashed state). Then, with the cache
 *     dropped again, the disk's sequential read bandwidth is measured on
 *     the files that open reads (the page files and the WAL segments from
 *     the redo LSN on): O_DIRECT 1 MiB reads, 1 in flight (qd1) and 4.
 *     The target (issue 3): open time <= 2x (bytes the open needs /
 *     bandwidth), bytes = pages read x 8 KiB + WAL bytes replayed.
 *     warm: the same files read buffered first (page cache hot).
 *
 *   commit latency (in this process, on the recovered database)
 *     for --repeat repetitions x --threads counts x {no checkpoint,
 *     checkpoints back to back}: first --dirty-frac of the points are
 *     upserted in batches (many dirty pages: the first checkpoint of the
 *     window is large), then K threads commit one-point upserts of random
 *     existing ids (SYNC) for --seconds after --warmup, each latency in a
 *     histogram; in the checkpoint case a thread runs cairn_checkpoint()
 *     in a loop meanwhile (which mode goes first alternates). Reported:
 *     p50/p99/p99.9/max and commits/s, and the p99 ratio with/without
 *     checkpoints within each repetition.
 *
 * Noise: each row carries the user CPU that other processes took in its
 * window and the hypervisor's steal (bench_util.h, cpu_sample), and the
 * report the load average at start and end.
 *
 * Data: a pool of --pool points from --seed (bench_pool_make: N(0,1)
 * vectors, 64-byte JSON payloads); the k-th write of a run uses pool slot
 * splitmix64(seed') mod pool; the build remembers the last slot of every
 * id for the reopen check.
 */
#include "bench_util.h"
#include "cairn.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define COLL "bench"
/* Bytes of one store page (engine/pager.h PAGE_SIZE, docs/format.md): the
 * public API counts pages, the report shows bytes. */
#define PAGE_BYTES 8192u
#define MIB (1u << 20)
#define ERRLEN 2048
#define MAX_REPEAT 15
#define MAX_THREADS_LIST 4
#define MAX_OPEN_REPEAT 9
#define MAX_FILES 4096

/* ------------------------------------------------------------------ */
/* Options                                                             */
/* ------------------------------------------------------------------ */

static struct {
    uint64_t points;
    double tail_mb;
    double update_frac;
    double dirty_frac;
    unsigned batch;
    unsigned pool;
    uint64_t seed;
    const char *dir;
    unsigned open_repeat;
    unsigned verify;
    double seconds;
    double warmup;
    unsigned repeat;
    unsigned threads[MAX_THREADS_LIST];
    unsigned n_threads;
    int do_commit;
    int drop_caches;
    double quiet;
    int perf;
    int keep;
    const char *command;
    const char *open_only;
    int cold;
} opt = {
    .points = 1000000,
    .tail_mb = 64,
    .update_frac = 0.10,
    .dirty_frac = 0.10,
    .batch = 1000,
    .pool = 65536,
    .seed = BENCH_DEFAULT_SEED,
    .open_repeat = 3,
    .verify = 2000,
    .seconds = 4,
    .warmup = 0.5,
    .repeat = 3,
    .threads = {1, 4},
    .n_threads = 2,
    .do_commit = 1,
};

static void usage(FILE *f) {
    fprintf(f,
"usage: cairn_bench_pages [options]\n"
"  --points N        points in the collection (default 1000000)\n"
"  --tail-mb M       WAL after the last checkpoint at the crash (default 64)\n"
"  --update-frac F   share of points updated before checkpoint #2 (0.10)\n"
"  --batch N         points per transaction when building (default 1000)\n"
"  --dir PATH        parent of the run directory (default $TMPDIR, else\n"
"                    /var/tmp); must not be tmpfs\n"
"  --seed N          data seed (default 0x636169726e); printed\n"
"  --pool N          points in the pregenerated data pool (default 65536)\n"
"  --open-repeat N   cold and warm reopens each (default 3, median shown)\n"
"  --verify N        points checked after each reopen (default 2000)\n"
"  --drop-caches     also write /proc/sys/vm/drop_caches (root) when\n"
"                    posix_fadvise leaves the files cached (affects the\n"
"                    whole machine)\n"
"  --seconds S       measured seconds per commit-latency run (default 4)\n"
"  --warmup S        unmeasured seconds before each (default 0.5)\n"
"  --threads LIST    committing threads, comma list (default 1,4)\n"
"  --dirty-frac F    share of points upserted before each commit run (0.10)\n"
"  --repeat N        interleaved commit-latency repetitions (default 3)\n"
"  --no-commit       skip the commit-latency part\n"
"  --quiet P         before the build, each checkpoint, each reopen and each\n"
"                    commit run, wait (<= 10 s) until other processes use\n"
"                    <= P %% of the CPUs (default 0: off)\n"
"  --perf            after the reopens, profile one more cold reopen of the\n"
"                    crashed database (perf record --call-graph dwarf on\n"
"                    --open-only) and add the top of perf report\n"
"  --keep            keep the run directory (for --open-only)\n"
"  --command STR     command line to print at the top (wrapper scripts)\n"
"  --open-only DIR   time one cairn_open() of the crashed database DIR in\n"
"                    this process (for perf), print its report, and _exit\n"
"                    without closing (DIR stays crashed); with --cold,\n"
"                    drop DIR from the page cache first\n");
}

static int parse_threads(const char *arg) {
    char *copy = strdup(arg), *save = NULL;
    opt.n_threads = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        unsigned v;
        if (opt.n_threads == MAX_THREADS_LIST || parse_uint(tok, 1, 256, &v)) {
            free(copy);
            return -1;
        }
        opt.threads[opt.n_threads++] = v;
    }
    free(copy);
    return opt.n_threads ? 0 : -1;
}

/* ------------------------------------------------------------------ */
/* Data                                                                */
/* ------------------------------------------------------------------ */

static float *pool_vec;
static char *pool_payload;
static void *disk_fill; /* 1 MiB of vector bytes (nonzero) */

static const float *vec_of(uint32_t slot) {
    return pool_vec + (size_t)slot * BENCH_DIM;
}

static const char *payload_of(uint32_t slot) {
    return pool_payload + (size_t)slot * BENCH_PAYLOAD_BYTES;
}

static void point_set(cairn_point *p, uint64_t id, uint32_t slot) {
    p->id = id;
    p->vector = vec_of(slot);
    p->payload = payload_of(slot);
    p->payload_len = BENCH_PAYLOAD_BYTES;
}

/* ------------------------------------------------------------------ */
/* Results shared with child processes (MAP_SHARED, set up before fork) */
/* ------------------------------------------------------------------ */

enum { DW_SYNC_EACH, DW_DIRECT_APPEND, DW_DIRECT_OVERWRITE, DW_N };
static const char *const dw_label[DW_N] = {
    "1 MiB pwrite+fdatasync, zero-filled file",
    "1 MiB O_DIRECT, new file, 1 fdatasync",
    "1 MiB O_DIRECT, zero-filled file, 1 fdatasync",
};
static const enum disk_write_mode dw_mode[DW_N] = {
    DISK_W_SYNC_EACH_OVERWRITE, DISK_W_DIRECT_APPEND, DISK_W_DIRECT_OVERWRITE,
};

struct ckpt_row {
    int ran;
    uint64_t generation;
    uint64_t pages;       /* pages_written */
    uint64_t dur_us;      /* the checkpoint's own duration_us */
    uint64_t redo_lsn;
    double wall_s;        /* cairn_checkpoint() call */
    double disk[DW_N];    /* bytes/s of the disk bound, same bytes */
    double other, steal;  /* over the checkpoint and the disk bounds */
};

struct build_res {
    int ok;
    char err[ERRLEN];
    uint64_t n_initial, n_final;
    double ingest_s, ingest_other, ingest_steal;
    uint64_t ingest_wal;
    uint64_t update_points;
    double update_s;
    uint64_t tail_commits, tail_points, tail_new, tail_wal;
    double tail_s;
    uint64_t redo_lsn, end_lsn; /* of checkpoint #2 / the last commit */
    struct ckpt_row ck[2];
    char io_backend[32];
};

struct open_res {
    int ok;
    char err[ERRLEN];
    double open_s, cpu_user, cpu_sys;
    cairn_recovery_report rep;
    uint64_t points;
    unsigned checked, mismatched;
    uint64_t first_bad;
};

/* What the parent adds to each reopen. */
struct open_row {
    struct open_res r;
    double other, steal;     /* around the child */
    double resident_mb;      /* page-cache-resident MB of the DB at open */
    double disk_bw[2];       /* qd1, qd4; cold rows only */
    uint64_t disk_bytes;
};

struct shared {
    struct build_res build;
    struct open_res open;
    uint32_t *slot_of; /* last pool slot written per id (shared too) */
    uint64_t slot_cap;
};

static struct shared *sh;

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

static void cfail(char *err, cairn_status s, const char *what) {
    const char *detail = cairn_last_error();
    snprintf(err, ERRLEN, "%s: %s (%s)%s%s", what, cairn_strerror(s),
             cairn_status_name(s), detail[0] ? ": " : "", detail);
}

static void wait_quiet(void) {
    if (opt.quiet > 0)
        (void)cpu_wait_quiet(opt.quiet, 10.0);
}

static void opts_fixed(cairn_options *o) {
    cairn_options_init(o);
    o->durability = CAIRN_DURABILITY_SYNC;
    /* Checkpoints only when this program asks: the WAL after the last one
     * stays a tail of known size. */
    o->checkpoint_wal_bytes = UINT64_MAX;
    o->checkpoint_interval_s = 0;
}

static double secs_since(uint64_t t0) {
    return (double)(mono_ns() - t0) / 1e9;
}

static void loadavg(char *out, size_t len) {
    snprintf(out, len, "?");
    FILE *f = fopen("/proc/loadavg", "r");
    if (!f)
        return;
    double a, b, c;
    if (fscanf(f, "%lf %lf %lf", &a, &b, &c) == 3)
        snprintf(out, len, "%.2f %.2f %.2f", a, b, c);
    fclose(f);
}

static void sort_d(double *v, unsigned n) {
    for (unsigned i = 1; i < n; i++)
        for (unsigned j = i; j > 0 && v[j] < v[j - 1]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
}

static double median_d(const double *in, unsigned n) {
    double v[64];
    if (!n)
        return 0;
    if (n > 64)
        n = 64;
    memcpy(v, in, n * sizeof(*v));
    sort_d(v, n);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Runs fn in a child process. crash: the child must end by SIGKILL (it
 * kills itself); otherwise it must exit 0. Returns 0 when it did. */
static int run_child(void (*fn)(void *), void *arg, int crash,
                     const char *what) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "%s: fork failed: %s\n", what, strerror(errno));
        return -1;
    }
    if (pid == 0) {
        fn(arg);
        if (crash)
            kill(getpid(), SIGKILL);
        _exit(0);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            fprintf(stderr, "%s: waitpid failed: %s\n", what, strerror(errno));
            return -1;
        }
    if (crash && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        return 0;
    if (!crash && WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    fprintf(stderr, "%s: child ended with status 0x%x (expected %s)\n", what,
            status, crash ? "SIGKILL" : "exit 0");
    return -1;
}

/* ------------------------------------------------------------------ */
/* Files of the database                                               */
/* ------------------------------------------------------------------ */

struct file_list {
    char *path[MAX_FILES];
    uint64_t size[MAX_FILES];
    size_t n;
};

static void files_free(struct file_list *fl) {
    for (size_t i = 0; i < fl->n; i++)
        free(fl->path[i]);
    fl->n = 0;
}

static void files_add(struct file_list *fl, const char *path, uint64_t size) {
    if (fl->n < MAX_FILES) {
        fl->path[fl->n] = strdup(path);
        fl->size[fl->n++] = size;
    }
}

/* Regular files directly in dir (not recursing), whose name passes keep. */
static void files_scan(struct file_list *fl, const char *dir,
                       int (*keep)(const char *name, uint64_t size, void *),
                       void *ctx) {
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        char p[8192 + sizeof(e->d_name) + 2];
        struct stat sb;
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        if (stat(p, &sb) != 0 || !S_ISREG(sb.st_mode))
            continue;
        if (!keep || keep(e->d_name, (uint64_t)sb.st_size, ctx))
            files_add(fl, p, (uint64_t)sb.st_size);
    }
    closedir(d);
}

/* Every file of the database (top level, collections/, wal/). */
static void files_all(struct file_list *fl, const char *db) {
    char p[8192];
    files_scan(fl, db, NULL, NULL);
    snprintf(p, sizeof(p), "%s/collections", db);
    files_scan(fl, p, NULL, NULL);
    snprintf(p, sizeof(p), "%s/wal", db);
    files_scan(fl, p, NULL, NULL);
}

static int keep_pages(const char *name, uint64_t size, void *ctx) {
    (void)size;
    (void)ctx;
    size_t n = strlen(name);
    return n > 6 && strcmp(name + n - 6, ".pages") == 0;
}

/* WAL segments "TTTTTTTT-LLLLLLLLLLLLLLLL.wal" holding any of [lo, hi). */
static int keep_wal_range(const char *name, uint64_t size, void *ctx) {
    const uint64_t *range = ctx;
    unsigned tl;
    unsigned long long start;
    char tail[8];
    if (sscanf(name, "%8X-%16llX.%7s", &tl, &start, tail) != 3 ||
        strcmp(tail, "wal") != 0)
        return 0;
    return start < range[1] && start + size > range[0];
}

/* The files an open reads: the page files (catalog, collections) and the
 * WAL segments holding [redo, end). */
static void files_open_reads(struct file_list *fl, const char *db,
                             uint64_t redo, uint64_t end) {
    char p[8192];
    files_scan(fl, db, keep_pages, NULL);
    snprintf(p, sizeof(p), "%s/collections", db);
    files_scan(fl, p, keep_pages, NULL);
    uint64_t range[2] = {redo, end > redo ? end : redo + 1};
    snprintf(p, sizeof(p), "%s/wal", db);
    files_scan(fl, p, keep_wal_range, range);
}

/* Bytes of fl's files resident in the page cache (mincore). */
static uint64_t resident_bytes(const struct file_list *fl) {
    long pg = sysconf(_SC_PAGESIZE);
    uint64_t res = 0;
    for (size_t i = 0; i < fl->n; i++) {
        if (!fl->size[i])
            continue;
        int fd = open(fl->path[i], O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        void *m = mmap(NULL, fl->size[i], PROT_READ, MAP_SHARED, fd, 0);
        close(fd);
        if (m == MAP_FAILED)
            continue;
        size_t npg = (fl->size[i] + (uint64_t)pg - 1) / (uint64_t)pg;
        unsigned char *vec = malloc(npg);
        if (vec && mincore(m, fl->size[i], vec) == 0)
            for (size_t k = 0; k < npg; k++)
                if (vec[k] & 1)
                    res += (uint64_t)pg;
        free(vec);
        munmap(m, fl->size[i]);
    }
    return res;
}

/* The database's files right after the crash, for the report. */
static uint64_t crash_page_bytes, crash_wal_bytes, crash_other_bytes;
static unsigned crash_segments;

static void crash_files(const char *db) {
    struct file_list fl = {0};
    files_all(&fl, db);
    for (size_t i = 0; i < fl.n; i++) {
        size_t l = strlen(fl.path[i]);
        if (l > 6 && strcmp(fl.path[i] + l - 6, ".pages") == 0)
            crash_page_bytes += fl.size[i];
        else if (l > 4 && strcmp(fl.path[i] + l - 4, ".wal") == 0) {
            crash_wal_bytes += fl.size[i];
            crash_segments++;
        } else
            crash_other_bytes += fl.size[i];
    }
    files_free(&fl);
}

/* How the page cache was emptied, for the report. */
static char cache_how[256] = "not tried";

/* Drops the database's files from the page cache: fdatasync then
 * posix_fadvise(DONTNEED) on each; with --drop-caches, when more than 1%
 * stays resident, also sync + /proc/sys/vm/drop_caches = 1. Returns the
 * bytes still resident. */
static uint64_t cache_drop(const char *db) {
    struct file_list fl = {0};
    files_all(&fl, db);
    uint64_t total = 0;
    for (size_t i = 0; i < fl.n; i++) {
        total += fl.size[i];
        int fd = open(fl.path[i], O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        (void)fdatasync(fd);
        (void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        close(fd);
    }
    uint64_t res = resident_bytes(&fl);
    snprintf(cache_how, sizeof(cache_how),
             "fdatasync + posix_fadvise(DONTNEED) per file: %.1f of %.1f MB "
             "still resident (mincore)",
             (double)res / 1e6, (double)total / 1e6);
    if (opt.drop_caches && res * 100 > total) {
        sync();
        int fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
        int ok = fd >= 0 && write(fd, "1\n", 2) == 2;
        if (fd >= 0)
            close(fd);
        uint64_t res2 = resident_bytes(&fl);
        size_t l = strlen(cache_how);
        snprintf(cache_how + l, sizeof(cache_how) - l,
                 "; /proc/sys/vm/drop_caches %s: %.1f MB resident",
                 ok ? "written" : "not writable", (double)res2 / 1e6);
        res = res2;
    }
    files_free(&fl);
    return res;
}

/* Reads every file of the database buffered (page cache hot). */
static void cache_warm(const char *db) {
    struct file_list fl = {0};
    files_all(&fl, db);
    char *buf = malloc(MIB);
    for (size_t i = 0; buf && i < fl.n; i++) {
        int fd = open(fl.path[i], O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        while (read(fd, buf, MIB) > 0)
            ;
        close(fd);
    }
    free(buf);
    files_free(&fl);
}

static double db_resident_mb(const char *db) {
    struct file_list fl = {0};
    files_all(&fl, db);
    uint64_t r = resident_bytes(&fl);
    files_free(&fl);
    return (double)r / 1e6;
}

/* ------------------------------------------------------------------ */
/* Build: a child process that ends in a crash                         */
/* ------------------------------------------------------------------ */

struct writer {
    cairn_db *db;
    cairn_point *pts;
    uint64_t rng;
};

/* Upserts n points, ids from idf(k), in transactions of opt.batch. */
static int write_points(struct writer *w, uint64_t n,
                        uint64_t (*idf)(struct writer *, uint64_t k, void *),
                        void *ctx, uint64_t *commits, char *err) {
    for (uint64_t k = 0; k < n;) {
        size_t m = n - k < opt.batch ? (size_t)(n - k) : opt.batch;
        for (size_t i = 0; i < m; i++) {
            uint64_t id = idf(w, k + i, ctx);
            uint32_t slot = (uint32_t)(splitmix64(&w->rng) % opt.pool);
            point_set(&w->pts[i], id, slot);
            if (id < sh->slot_cap)
                sh->slot_of[id] = slot; /* in order: the last write wins */
        }
        cairn_status s = cairn_upsert_batch(w->db, COLL, w->pts, m, BENCH_DIM,
                                            NULL);
        if (s != CAIRN_OK) {
            cfail(err, s, "cairn_upsert_batch");
            return -1;
        }
        if (commits)
            (*commits)++;
        k += m;
    }
    return 0;
}

static uint64_t id_seq(struct writer *w, uint64_t k, void *ctx) {
    (void)w;
    return *(const uint64_t *)ctx + k;
}

static uint64_t id_random(struct writer *w, uint64_t k, void *ctx) {
    (void)k;
    return splitmix64(&w->rng) % *(const uint64_t *)ctx;
}

struct tail_ctx {
    uint64_t existing; /* ids below this exist */
    uint64_t next_new; /* next new id */
};

/* Even k: a random existing id; odd k: a new one. */
static uint64_t id_tail(struct writer *w, uint64_t k, void *ctx) {
    struct tail_ctx *t = ctx;
    if (k % 2 == 0)
        return splitmix64(&w->rng) % t->existing;
    return t->next_new++;
}

static uint64_t last_lsn(cairn_db *db) {
    cairn_stats st;
    return cairn_stats_get(db, &st) == CAIRN_OK ? st.last_lsn : 0;
}

static int checkpoint_row(cairn_db *db, const char *dir, struct ckpt_row *row,
                          char *err) {
    wait_quiet();
    struct cpu_sample c0, c1;
    cpu_sample(&c0);
    cairn_checkpoint_info info;
    uint64_t t0 = mono_ns();
    cairn_status s = cairn_checkpoint(db, &info);
    row->wall_s = secs_since(t0);
    if (s != CAIRN_OK) {
        cfail(err, s, "cairn_checkpoint");
        return -1;
    }
    row->generation = info.generation;
    row->pages = info.pages_written;
    row->dur_us = info.duration_us;
    row->redo_lsn = info.redo_lsn;
    uint64_t bytes = info.pages_written * PAGE_BYTES;
    if (bytes > (1ull << 30))
        bytes = 1ull << 30;
    for (int m = 0; m < DW_N; m++) {
        row->disk[m] = disk_write_bw(dir, "disk-bound.dat", bytes, dw_mode[m],
                                     disk_fill, err, ERRLEN);
        if (row->disk[m] < 0)
            return -1;
        sync();
    }
    cpu_sample(&c1);
    cpu_noise(&c0, &c1, &row->other, &row->steal);
    row->ran = 1;
    return 0;
}

struct build_arg {
    const char *db;
    const char *base;
};

static void build_child(void *argp) {
    struct build_arg *a = argp;
    struct build_res *b = &sh->build;
    struct writer w = {.rng = opt.seed ^ 0xb1d5eedULL};
    w.pts = calloc(opt.batch, sizeof(*w.pts));
    cairn_options o;
    opts_fixed(&o);
    cairn_status s = cairn_open(a->db, &o, &w.db);
    if (s != CAIRN_OK) {
        cfail(b->err, s, "cairn_open");
        return;
    }
    cairn_stats st;
    if (cairn_stats_get(w.db, &st) == CAIRN_OK && st.io_backend)
        snprintf(b->io_backend, sizeof(b->io_backend), "%s", st.io_backend);
    s = cairn_collection_create(w.db, COLL, BENCH_DIM, CAIRN_METRIC_L2);
    if (s != CAIRN_OK) {
        cfail(b->err, s, "cairn_collection_create");
        return;
    }

    /* 1. ingest */
    struct cpu_sample c0, c1;
    cpu_sample(&c0);
    uint64_t zero = 0, t0 = mono_ns();
    fprintf(stderr, "build: ingesting %" PRIu64 " points...\n", opt.points);
    if (write_points(&w, opt.points, id_seq, &zero, NULL, b->err) != 0)
        return;
    b->ingest_s = secs_since(t0);
    cpu_sample(&c1);
    cpu_noise(&c0, &c1, &b->ingest_other, &b->ingest_steal);
    b->ingest_wal = last_lsn(w.db);
    b->n_initial = opt.points;

    /* 2. checkpoint #1: every page */
    fprintf(stderr, "build: %.1f s; checkpoint #1...\n", b->ingest_s);
    if (checkpoint_row(w.db, a->base, &b->ck[0], b->err) != 0)
        return;

    /* 3. update, checkpoint #2 */
    b->update_points = (uint64_t)(opt.update_frac * (double)opt.points);
    fprintf(stderr, "build: checkpoint #1 %.1f s; updating %" PRIu64
            " points...\n", b->ck[0].wall_s, b->update_points);
    uint64_t n = opt.points;
    t0 = mono_ns();
    if (write_points(&w, b->update_points, id_random, &n, NULL, b->err) != 0)
        return;
    b->update_s = secs_since(t0);
    fprintf(stderr, "build: checkpoint #2...\n");
    if (checkpoint_row(w.db, a->base, &b->ck[1], b->err) != 0)
        return;

    /* 4. the tail: --tail-mb of WAL after checkpoint #2's redo LSN */
    b->redo_lsn = b->ck[1].redo_lsn;
    uint64_t want = (uint64_t)(opt.tail_mb * 1e6);
    struct tail_ctx tc = {.existing = opt.points, .next_new = opt.points};
    fprintf(stderr, "build: writing a %.0f MB WAL tail...\n", opt.tail_mb);
    t0 = mono_ns();
    while (last_lsn(w.db) - b->redo_lsn < want) {
        uint64_t before = tc.next_new;
        if (write_points(&w, opt.batch, id_tail, &tc, &b->tail_commits,
                         b->err) != 0)
            return;
        b->tail_points += opt.batch;
        b->tail_new += tc.next_new - before;
    }
    b->tail_s = secs_since(t0);
    b->end_lsn = last_lsn(w.db);
    b->tail_wal = b->end_lsn - b->redo_lsn;
    b->n_final = tc.next_new;
    b->ok = 1;
    fprintf(stderr, "build: done; crashing (SIGKILL) with %" PRIu64
            " points and %.1f MB of WAL after checkpoint #2\n",
            b->n_final, (double)b->tail_wal / 1e6);
    /* run_child kills this process now: no close, no final flush. Every
     * commit above returned, so it is durable (SYNC). */
}

/* ------------------------------------------------------------------ */
/* Reopen: a fresh child process per open                              */
/* ------------------------------------------------------------------ */

static double tv_s(struct timeval tv) {
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* Opens db, times it, checks what it holds. Leaves the handle open. */
static cairn_db *open_and_check(const char *db, struct open_res *r) {
    memset(r, 0, sizeof(*r));
    cairn_options o;
    opts_fixed(&o);
    cairn_db *h = NULL;
    struct rusage u0, u1;
    getrusage(RUSAGE_SELF, &u0);
    uint64_t t0 = mono_ns();
    cairn_status s = cairn_open(db, &o, &h);
    r->open_s = secs_since(t0);
    getrusage(RUSAGE_SELF, &u1);
    r->cpu_user = tv_s(u1.ru_utime) - tv_s(u0.ru_utime);
    r->cpu_sys = tv_s(u1.ru_stime) - tv_s(u0.ru_stime);
    if (s != CAIRN_OK) {
        cfail(r->err, s, "cairn_open");
        return NULL;
    }
    cairn_stats st;
    if (cairn_stats_get(h, &st) == CAIRN_OK)
        r->rep = st.recovery;
    cairn_collection_info ci;
    s = cairn_collection_stat(h, COLL, &ci);
    if (s != CAIRN_OK) {
        cfail(r->err, s, "cairn_collection_stat");
        return h;
    }
    r->points = ci.points;
    /* Spot check against what the build committed (not timed). */
    uint64_t n = sh->build.n_final ? sh->build.n_final : ci.points;
    if (sh->build.ok && n <= sh->slot_cap) {
        uint64_t rng = opt.seed ^ 0xc4ec4ULL;
        float v[BENCH_DIM];
        for (unsigned k = 0; k < opt.verify && n; k++) {
            uint64_t id = splitmix64(&rng) % n;
            char *pl = NULL;
            s = cairn_get(h, COLL, id, v, BENCH_DIM, &pl);
            uint32_t slot = sh->slot_of[id];
            int same = s == CAIRN_OK &&
                       memcmp(v, vec_of(slot), BENCH_VEC_BYTES) == 0 && pl &&
                       strlen(pl) == BENCH_PAYLOAD_BYTES &&
                       memcmp(pl, payload_of(slot), BENCH_PAYLOAD_BYTES) == 0;
            cairn_free(pl);
            r->checked++;
            if (!same && r->mismatched++ == 0)
                r->first_bad = id;
        }
    }
    r->ok = 1;
    return h;
}

static void open_child(void *argp) {
    (void)open_and_check(argp, &sh->open);
    /* run_child kills this process: the database stays crashed. */
}

static int open_row(const char *db, int cold, struct open_row *row) {
    memset(row, 0, sizeof(*row));
    if (cold)
        cache_drop(db);
    else
        cache_warm(db);
    row->resident_mb = db_resident_mb(db);
    wait_quiet();
    struct cpu_sample c0, c1;
    cpu_sample(&c0);
    memset(&sh->open, 0, sizeof(sh->open));
    int rc = run_child(open_child, (void *)db, 1, "reopen");
    cpu_sample(&c1);
    cpu_noise(&c0, &c1, &row->other, &row->steal);
    row->r = sh->open;
    if (rc != 0 || !row->r.ok) {
        fprintf(stderr, "reopen failed: %s\n", row->r.err);
        return -1;
    }
    if (row->r.mismatched || (sh->build.ok && row->r.points != sh->build.n_final)) {
        fprintf(stderr,
                "reopen: WRONG STATE: %" PRIu64 " points (expected %" PRIu64
                "), %u of %u checked points differ (first id %" PRIu64 ")\n",
                row->r.points, sh->build.n_final, row->r.mismatched,
                row->r.checked, row->r.first_bad);
        return -1;
    }
    if (cold) {
        /* The disk's own read bandwidth over the files this open read. */
        struct file_list fl = {0};
        files_open_reads(&fl, db, row->r.rep.start_lsn, row->r.rep.end_lsn);
        char err[ERRLEN];
        unsigned qd[2] = {1, 4};
        for (int q = 0; q < 2; q++) {
            cache_drop(db);
            row->disk_bw[q] = disk_read_bw((const char *const *)fl.path, fl.n,
                                           qd[q], &row->disk_bytes, err,
                                           sizeof(err));
            if (row->disk_bw[q] < 0) {
                fprintf(stderr, "disk read bound: %s\n", err);
                files_free(&fl);
                return -1;
            }
        }
        files_free(&fl);
    }
    return 0;
}

/* Bytes an open needs: the pages it loaded and the WAL it replayed. */
static uint64_t open_bytes(const struct open_res *r) {
    return r->rep.pages_read * PAGE_BYTES + (r->rep.end_lsn - r->rep.start_lsn);
}

/* ------------------------------------------------------------------ */
/* Commit latency                                                      */
/* ------------------------------------------------------------------ */

enum { PH_WARMUP, PH_MEASURE, PH_STOP };

struct crun {
    cairn_db *db;
    uint64_t npoints;
    uint64_t seed; /* of this run: --seed and the run's number */
    atomic_int phase;
    atomic_int failed;
    pthread_barrier_t start;
    char err[ERRLEN];
    /* checkpointer */
    uint64_t ckpts, ckpt_pages, ckpt_us;
    double ckpt_max_s;
};

struct cworker {
    pthread_t th;
    struct crun *run;
    unsigned tid;
    uint64_t commits, max_ns;
    struct hist hist;
    char err[ERRLEN];
};

static void *cworker_main(void *arg) {
    struct cworker *w = arg;
    struct crun *run = w->run;
    uint64_t rng = run->seed ^ (0x9e3779b97f4a7c15ULL * (w->tid + 1));
    cairn_point p;
    pthread_barrier_wait(&run->start);
    for (;;) {
        int ph = atomic_load(&run->phase);
        if (ph == PH_STOP)
            break;
        uint64_t id = splitmix64(&rng) % run->npoints;
        point_set(&p, id, (uint32_t)(splitmix64(&rng) % opt.pool));
        uint64_t t0 = mono_ns();
        cairn_status s = cairn_upsert_batch(run->db, COLL, &p, 1, BENCH_DIM,
                                            NULL);
        uint64_t dt = mono_ns() - t0;
        if (s != CAIRN_OK) {
            cfail(w->err, s, "cairn_upsert_batch");
            atomic_store(&run->failed, 1);
            atomic_store(&run->phase, PH_STOP);
            break;
        }
        if (ph == PH_MEASURE && atomic_load(&run->phase) == PH_MEASURE) {
            w->commits++;
            w->hist.n[hist_index(dt)]++;
            if (dt > w->max_ns)
                w->max_ns = dt;
        }
    }
    return NULL;
}

/* Checkpoints back to back until the stop; counts those that finished
 * while measuring. */
static void *ckpt_main(void *arg) {
    struct crun *run = arg;
    pthread_barrier_wait(&run->start);
    while (atomic_load(&run->phase) != PH_STOP) {
        cairn_checkpoint_info info;
        int ph0 = atomic_load(&run->phase);
        uint64_t t0 = mono_ns();
        cairn_status s = cairn_checkpoint(run->db, &info);
        double dt = secs_since(t0);
        if (s != CAIRN_OK) {
            cfail(run->err, s, "cairn_checkpoint");
            atomic_store(&run->failed, 1);
            atomic_store(&run->phase, PH_STOP);
            break;
        }
        if (ph0 != PH_STOP && atomic_load(&run->phase) == PH_MEASURE) {
            run->ckpts++;
            run->ckpt_pages += info.pages_written;
            run->ckpt_us += info.duration_us;
        }
        if (dt > run->ckpt_max_s)
            run->ckpt_max_s = dt;
    }
    return NULL;
}

struct crow {
    int ran;
    double secs, rate;
    uint64_t commits;
    double p50, p99, p999, max; /* µs */
    double other, steal;
    uint64_t ckpts, ckpt_pages;
    double ckpt_max_s;
    double dirty_s;
};

/* Upserts dirty_frac of the points (random existing ids) in batches. */
static int dirty_points(cairn_db *db, uint64_t npoints, uint64_t seed,
                        double *secs, char *err) {
    struct writer w = {.db = db, .rng = seed ^ 0xd1e7ULL};
    w.pts = calloc(opt.batch, sizeof(*w.pts));
    uint64_t t0 = mono_ns();
    int rc = write_points(&w, (uint64_t)(opt.dirty_frac * (double)npoints),
                          id_random, &npoints, NULL, err);
    *secs = secs_since(t0);
    free(w.pts);
    return rc;
}

/* run_no numbers the runs of this process, so that each draws other ids
 * (and the same ones again with the same --seed). */
static int commit_run(cairn_db *db, uint64_t npoints, unsigned nthreads,
                      int with_ckpt, unsigned run_no, struct crow *row) {
    memset(row, 0, sizeof(*row));
    char err[ERRLEN];
    uint64_t s = opt.seed + run_no;
    uint64_t seed = splitmix64(&s);
    if (dirty_points(db, npoints, seed, &row->dirty_s, err) != 0) {
        fprintf(stderr, "dirtying points: %s\n", err);
        return -1;
    }
    sync();
    sleep_s(0.2);
    wait_quiet();
    struct crun *run = calloc(1, sizeof(*run));
    struct cworker *ws = calloc(nthreads, sizeof(*ws));
    if (!run || !ws) {
        free(run);
        free(ws);
        return -1;
    }
    run->db = db;
    run->npoints = npoints;
    run->seed = seed;
    atomic_init(&run->phase, PH_WARMUP);
    atomic_init(&run->failed, 0);
    pthread_barrier_init(&run->start, NULL, nthreads + 1 + (with_ckpt ? 1 : 0));
    pthread_t ck = 0;
    if (with_ckpt && pthread_create(&ck, NULL, ckpt_main, run) != 0) {
        fprintf(stderr, "could not start the checkpoint thread\n");
        exit(1);
    }
    for (unsigned i = 0; i < nthreads; i++) {
        ws[i].run = run;
        ws[i].tid = i;
        if (pthread_create(&ws[i].th, NULL, cworker_main, &ws[i]) != 0) {
            fprintf(stderr, "could not start worker thread %u\n", i);
            exit(1);
        }
    }
    pthread_barrier_wait(&run->start);
    sleep_s(opt.warmup);
    struct cpu_sample c0, c1;
    cpu_sample(&c0);
    uint64_t t0 = mono_ns();
    atomic_store(&run->phase, PH_MEASURE);
    while (!atomic_load(&run->failed) && secs_since(t0) < opt.seconds)
        sleep_s(0.01);
    atomic_store(&run->phase, PH_STOP);
    row->secs = secs_since(t0);
    cpu_sample(&c1);
    for (unsigned i = 0; i < nthreads; i++)
        pthread_join(ws[i].th, NULL);
    if (with_ckpt)
        pthread_join(ck, NULL);
    pthread_barrier_destroy(&run->start);
    cpu_noise(&c0, &c1, &row->other, &row->steal);

    struct hist *h = calloc(1, sizeof(*h));
    uint64_t max_ns = 0;
    for (unsigned i = 0; i < nthreads; i++) {
        row->commits += ws[i].commits;
        if (ws[i].max_ns > max_ns)
            max_ns = ws[i].max_ns;
        for (unsigned b = 0; h && b < HBUCKETS; b++)
            h->n[b] += ws[i].hist.n[b];
        if (ws[i].err[0])
            fprintf(stderr, "commit thread %u: %s\n", i, ws[i].err);
    }
    if (run->err[0])
        fprintf(stderr, "checkpoint thread: %s\n", run->err);
    row->rate = (double)row->commits / row->secs;
    row->p50 = h ? hist_quantile(h, 0.50) / 1e3 : 0;
    row->p99 = h ? hist_quantile(h, 0.99) / 1e3 : 0;
    row->p999 = h ? hist_quantile(h, 0.999) / 1e3 : 0;
    row->max = (double)max_ns / 1e3;
    row->ckpts = run->ckpts;
    row->ckpt_pages = run->ckpt_pages;
    row->ckpt_max_s = run->ckpt_max_s;
    row->ran = !atomic_load(&run->failed);
    free(h);
    free(ws);
    free(run);
    /* Leave the next run clean: with checkpoints, the one after it sees
     * only its own dirty pages plus dirty_frac. */
    sync();
    return row->ran ? 0 : -1;
}

/* ------------------------------------------------------------------ */
/* Profile of one cold reopen (--perf)                                 */
/* ------------------------------------------------------------------ */

static int perf_done;

/* Runs this program's --open-only --cold on db under perf record (DWARF
 * call graphs: the release build keeps no frame pointers), then writes
 * base/perf-open.txt (that run's line), base/perf-self.txt and
 * base/perf-children.txt (the top of perf report) for the report. */
static void perf_open(const char *base, const char *db) {
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0) {
        fprintf(stderr, "--perf: could not read /proc/self/exe\n");
        return;
    }
    exe[n] = 0;
    if (strchr(exe, '\'') || strchr(base, '\'')) {
        fprintf(stderr, "--perf: a path holds a quote; not profiling\n");
        return;
    }
    static const char report[] =
        "perf report -i '%s/perf.data' --stdio --sort symbol -g none %s "
        "2>/dev/null | grep -v '^#' | sed -e '/^$/d' -e 's/[ -]*$//' | "
        "head -n 40 > '%s/%s'";
    char cmd[32768];
    snprintf(cmd, sizeof(cmd),
             "perf record --call-graph dwarf,16384 -F 499 -o '%s/perf.data' "
             "-- '%s' --open-only '%s' --cold > '%s/perf-open.txt' 2>/dev/null",
             base, exe, db, base);
    fprintf(stderr, "perf: profiling one cold reopen...\n");
    if (system(cmd) != 0) {
        fprintf(stderr, "--perf: perf record failed (%s)\n", cmd);
        return;
    }
    snprintf(cmd, sizeof(cmd), report, base, "--no-children --percent-limit 1",
             base, "perf-self.txt");
    int rc = system(cmd);
    snprintf(cmd, sizeof(cmd), report, base, "--children --percent-limit 3",
             base, "perf-children.txt");
    rc |= system(cmd);
    perf_done = rc == 0;
}

static void print_file(const char *base, const char *name) {
    char p[8192];
    snprintf(p, sizeof(p), "%s/%s", base, name);
    FILE *f = fopen(p, "r");
    if (!f)
        return;
    char line[1024];
    while (fgets(line, sizeof(line), f))
        fputs(line, stdout);
    fclose(f);
}

/* ------------------------------------------------------------------ */
/* Report                                                              */
/* ------------------------------------------------------------------ */

static struct open_row cold_rows[MAX_OPEN_REPEAT], warm_rows[MAX_OPEN_REPEAT];
static unsigned n_cold, n_warm;
static struct crow crows[MAX_REPEAT][MAX_THREADS_LIST][2];

/* Index of the row with the median open time. */
static unsigned median_open(const struct open_row *rows, unsigned n) {
    unsigned idx[MAX_OPEN_REPEAT];
    for (unsigned i = 0; i < n; i++)
        idx[i] = i;
    for (unsigned i = 1; i < n; i++)
        for (unsigned j = i; j > 0 && rows[idx[j]].r.open_s < rows[idx[j - 1]].r.open_s; j--) {
            unsigned t = idx[j];
            idx[j] = idx[j - 1];
            idx[j - 1] = t;
        }
    return idx[(n - 1) / 2];
}

static void print_open_table(const char *title, const struct open_row *rows,
                             unsigned n, int cold) {
    if (!n)
        return;
    printf("\n### %s (%u opens, each a fresh process after SIGKILL)\n\n", title, n);
    printf("| # | open s | pages read | pages MB | pages s | other recovery s"
           " | WAL MB replayed | records | CPU s (user+sys) | cached MB at open"
           " | other CPU |\n"
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (unsigned i = 0; i < n; i++) {
        const struct open_row *o = &rows[i];
        const cairn_recovery_report *rp = &o->r.rep;
        char nz[32];
        fmt_noise(nz, sizeof(nz), o->other, o->steal);
        double pages_s = (double)rp->pages_us / 1e6;
        double other_s = (double)rp->duration_us / 1e6 - pages_s;
        printf("| %u | %.3f | %" PRIu64 " | %.1f | %.3f (%.0f%%) | %.3f (%.0f%%)"
               " | %.1f | %" PRIu64 " | %.2f+%.2f | %.1f | %s |\n",
               i + 1, o->r.open_s, rp->pages_read,
               (double)(rp->pages_read * PAGE_BYTES) / 1e6, pages_s,
               100 * pages_s / o->r.open_s, other_s,
               100 * other_s / o->r.open_s,
               (double)(rp->end_lsn - rp->start_lsn) / 1e6,
               rp->records_replayed, o->r.cpu_user, o->r.cpu_sys,
               o->resident_mb, nz);
    }
    if (!cold)
        return;
    printf("\n| # | bytes the open needs (MB) | disk read MB/s qd1 | qd4 "
           "| ideal s at qd1 | open / ideal qd1 | open / ideal qd4 "
           "| target <= 2x (qd1) |\n"
           "|---|---:|---:|---:|---:|---:|---:|---|\n");
    double r1[MAX_OPEN_REPEAT], r4[MAX_OPEN_REPEAT];
    for (unsigned i = 0; i < n; i++) {
        const struct open_row *o = &rows[i];
        double bytes = (double)open_bytes(&o->r);
        double ideal1 = bytes / o->disk_bw[0], ideal4 = bytes / o->disk_bw[1];
        r1[i] = o->r.open_s / ideal1;
        r4[i] = o->r.open_s / ideal4;
        printf("| %u | %.1f | %.0f | %.0f | %.3f | %.2fx | %.2fx | %s |\n",
               i + 1, bytes / 1e6, o->disk_bw[0] / 1e6, o->disk_bw[1] / 1e6,
               ideal1, r1[i], r4[i], r1[i] <= 2.0 ? "yes" : "**NO**");
    }
    double m1 = median_d(r1, n), m4 = median_d(r4, n);
    sort_d(r1, n);
    printf("| median | | | | | %.2fx (worst %.2fx) | %.2fx | %s |\n", m1,
           r1[n - 1], m4, m1 <= 2.0 ? "yes" : "**NO**");
}

static void print_report(const char *invocation, const char *base,
                         const char *fstype, const char *load0,
                         const char *load1, double total_s) {
    struct utsname un;
    uname(&un);
    char cpu[256], date[64];
    cpu_model(cpu, sizeof(cpu));
    time_t now = time(NULL);
    strftime(date, sizeof(date), "%Y-%m-%d %H:%M UTC", gmtime(&now));
    const struct build_res *b = &sh->build;

    printf("## Page store (issue 3)\n\n");
    if (opt.command)
        printf("Command: `%s`\n\n(runs `%s`)\n\n", opt.command, invocation);
    else
        printf("Command: `%s`\n\n", invocation);
    printf("- %s, %ld CPUs, kernel %s; run directory on %s (%s); %s; "
           "cairn %s, WAL I/O %s\n",
           cpu, sysconf(_SC_NPROCESSORS_ONLN), un.release, fstype, base, date,
           cairn_version(), b->io_backend[0] ? b->io_backend : "?");
    printf("- seed=0x%llx points=%" PRIu64 " batch=%u pool=%u update-frac=%.2f "
           "tail-mb=%.0f open-repeat=%u quiet=%.0f%%; load average %s at start, "
           "%s at end; whole run %.0f s\n",
           (unsigned long long)opt.seed, opt.points, opt.batch, opt.pool,
           opt.update_frac, opt.tail_mb, opt.open_repeat, opt.quiet, load0,
           load1, total_s);
    printf("- point = 128 x float32 + 64 B JSON payload; MB = 10^6 B; page = "
           "%u B; durability SYNC; checkpoints only when asked "
           "(checkpoint_wal_bytes = UINT64_MAX, interval 0)\n",
           PAGE_BYTES);
    printf("- other CPU: user time of other processes in the row's window, "
           "%% of all cores (+Nst: hypervisor steal)\n");

    printf("\n### Build (one child process, killed with SIGKILL at the end)\n\n"
           "| step | points | seconds | points/s | WAL MB | other CPU |\n"
           "|---|---:|---:|---:|---:|---:|\n");
    char nz[32];
    fmt_noise(nz, sizeof(nz), b->ingest_other, b->ingest_steal);
    printf("| ingest, batches of %u | %" PRIu64 " | %.1f | %.0f | %.1f | %s |\n",
           opt.batch, b->n_initial, b->ingest_s,
           (double)b->n_initial / b->ingest_s, (double)b->ingest_wal / 1e6, nz);
    printf("| update (random existing ids) | %" PRIu64 " | %.1f | %.0f | - | - |\n",
           b->update_points, b->update_s,
           (double)b->update_points / b->update_s);
    printf("| tail after checkpoint #2 (half existing, half new ids) | %" PRIu64
           " (%" PRIu64 " new) | %.1f | %.0f | %.1f | - |\n",
           b->tail_points, b->tail_new, b->tail_s,
           (double)b->tail_points / b->tail_s, (double)b->tail_wal / 1e6);
    printf("\nAt the crash: %" PRIu64 " points; checkpoint #2's redo LSN %" PRIu64
           ", last commit ends at LSN %" PRIu64 ".\n",
           b->n_final, b->redo_lsn, b->end_lsn);

    printf("\n### Checkpoint write throughput vs the disk (same bytes, "
           "measured right after each checkpoint)\n\n"
           "| checkpoint | pages written | MB | seconds | MB/s | disk: %s | "
           "ratio | disk: %s | ratio | disk: %s | ratio | other CPU |\n"
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
           dw_label[0], dw_label[1], dw_label[2]);
    static const char *const ck_label[2] = {
        "#1, full (after the ingest)", "#2, after updating the points"};
    for (int i = 0; i < 2; i++) {
        const struct ckpt_row *c = &b->ck[i];
        if (!c->ran)
            continue;
        double mb = (double)(c->pages * PAGE_BYTES) / 1e6;
        double mbs = mb / c->wall_s;
        fmt_noise(nz, sizeof(nz), c->other, c->steal);
        printf("| %s | %" PRIu64 " | %.1f | %.2f | %.0f", ck_label[i], c->pages,
               mb, c->wall_s, mbs);
        for (int m = 0; m < DW_N; m++)
            printf(" | %.0f | %.2fx", c->disk[m] / 1e6, mbs / (c->disk[m] / 1e6));
        printf(" | %s |\n", nz);
    }

    printf("\n### Reopen after the crash\n\nFiles at the crash: page files "
           "(catalog + collection) %.1f MB, WAL %.1f MB in %u segments, "
           "other %.1f MB. Page cache: %s.\n",
           (double)crash_page_bytes / 1e6, (double)crash_wal_bytes / 1e6,
           crash_segments, (double)crash_other_bytes / 1e6, cache_how);
    print_open_table("Cold: database files dropped from the page cache",
                     cold_rows, n_cold, 1);
    print_open_table("Warm: database files read into the page cache first",
                     warm_rows, n_warm, 0);
    if (n_cold) {
        const struct open_row *o = &cold_rows[median_open(cold_rows, n_cold)];
        printf("\npages s: `pages_us` of the recovery report (reading, "
               "verifying and installing the checkpoint's pages, and "
               "rebuilding the id hash); other recovery s: `duration_us` - "
               "`pages_us` (superblock, page maps, WAL read and replay); "
               "open s: the whole cairn_open() call. Median cold open: "
               "%.3f s for %.1f MB (%.0f MB/s).\n",
               o->r.open_s, (double)open_bytes(&o->r) / 1e6,
               (double)open_bytes(&o->r) / 1e6 / o->r.open_s);
    }
    if (perf_done) {
        printf("\n### perf: one more cold reopen of the crashed database\n\n"
               "`perf record --call-graph dwarf -F 499` of `--open-only DB "
               "--cold` (percentages of on-CPU samples, all threads):\n\n```\n");
        print_file(base, "perf-open.txt");
        printf("```\n\nSelf time (`perf report --no-children --sort symbol`, "
               ">= 1%%):\n\n```\n");
        print_file(base, "perf-self.txt");
        printf("```\n\nIncluding callees (`--children`, >= 3%%):\n\n```\n");
        print_file(base, "perf-children.txt");
        printf("```\n");
    }

    if (!opt.do_commit)
        return;
    printf("\n### Commit latency with and without a running checkpoint\n\n"
           "One-point upserts of random existing ids, SYNC (the default "
           "durability; concurrent commits share a WAL fsync), %.0f s "
           "measured after %.1f s of warm-up, %u interleaved repetitions, "
           "the repetition with the median p99 shown. Before every run "
           "%.0f%% of the points are upserted in batches (dirty pages for "
           "the checkpoints).\n\n"
           "| threads | checkpoints | commits/s | p50 µs | p99 µs | p99.9 µs "
           "| max µs | checkpoints done | MB checkpointed | longest ckpt s "
           "| other CPU |\n"
           "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
           opt.seconds, opt.warmup, opt.repeat, 100 * opt.dirty_frac);
    for (unsigned t = 0; t < opt.n_threads; t++)
        for (int m = 0; m < 2; m++) {
            double p[MAX_REPEAT];
            unsigned idx[MAX_REPEAT], n = 0;
            for (unsigned r = 0; r < opt.repeat; r++)
                if (crows[r][t][m].ran) {
                    p[n] = crows[r][t][m].p99;
                    idx[n++] = r;
                }
            if (!n)
                continue;
            for (unsigned i = 1; i < n; i++)
                for (unsigned j = i; j > 0 && p[j] < p[j - 1]; j--) {
                    double x = p[j];
                    p[j] = p[j - 1];
                    p[j - 1] = x;
                    unsigned y = idx[j];
                    idx[j] = idx[j - 1];
                    idx[j - 1] = y;
                }
            const struct crow *c = &crows[idx[(n - 1) / 2]][t][m];
            fmt_noise(nz, sizeof(nz), c->other, c->steal);
            char ck[32] = "-", ckmb[32] = "-", cks[32] = "-";
            if (m) {
                snprintf(ck, sizeof(ck), "%" PRIu64, c->ckpts);
                snprintf(ckmb, sizeof(ckmb), "%.0f",
                         (double)(c->ckpt_pages * PAGE_BYTES) / 1e6);
                snprintf(cks, sizeof(cks), "%.2f", c->ckpt_max_s);
            }
            printf("| %u | %s | %.0f | %.0f | %.0f | %.0f | %.0f | %s | %s | %s"
                   " | %s |\n",
                   opt.threads[t], m ? "back to back" : "none", c->rate, c->p50,
                   c->p99, c->p999, c->max, ck, ckmb, cks, nz);
        }
    printf("\n| threads | p99 with / without checkpoints | commits/s with / "
           "without | per repetition (p99 ratio) |\n|---:|---:|---:|---|\n");
    for (unsigned t = 0; t < opt.n_threads; t++) {
        double rp[MAX_REPEAT], rr[MAX_REPEAT];
        unsigned n = 0;
        char each[256] = "";
        for (unsigned r = 0; r < opt.repeat; r++) {
            const struct crow *a = &crows[r][t][0], *c = &crows[r][t][1];
            if (!a->ran || !c->ran || a->p99 <= 0 || a->rate <= 0)
                continue;
            rp[n] = c->p99 / a->p99;
            rr[n] = c->rate / a->rate;
            size_t l = strlen(each);
            snprintf(each + l, sizeof(each) - l, "%s%.2fx", n ? ", " : "",
                     rp[n]);
            n++;
        }
        if (!n)
            continue;
        double mp = median_d(rp, n), mr = median_d(rr, n);
        sort_d(rp, n);
        printf("| %u | %.2fx (worst %.2fx) | %.2fx | %s |\n", opt.threads[t],
               mp, rp[n - 1], mr, each);
    }
}

/* ------------------------------------------------------------------ */

static int open_only(const char *db) {
    struct open_res r;
    if (opt.cold)
        cache_drop(db);
    printf("cache: %s\n", opt.cold ? cache_how : "as found");
    cairn_db *h = open_and_check(db, &r);
    if (!h || !r.ok) {
        fprintf(stderr, "%s\n", r.err);
        return 1;
    }
    const cairn_recovery_report *rp = &r.rep;
    printf("open %.3f s (CPU %.2f user + %.2f sys): checkpoint %" PRIu64
           ", %" PRIu64 " pages (%.1f MB) in %.3f s, WAL %" PRIu64 "..%" PRIu64
           " (%.1f MB, %" PRIu64 " records, %" PRIu64 " txns) , recovery %.3f s,"
           " %u jobs; %" PRIu64 " points\n",
           r.open_s, r.cpu_user, r.cpu_sys, rp->checkpoint, rp->pages_read,
           (double)(rp->pages_read * PAGE_BYTES) / 1e6,
           (double)rp->pages_us / 1e6, rp->start_lsn, rp->end_lsn,
           (double)(rp->end_lsn - rp->start_lsn) / 1e6, rp->records_replayed,
           rp->txns_applied, (double)rp->duration_us / 1e6, rp->jobs, r.points);
    fflush(stdout);
    fflush(stderr);
    _exit(0); /* no close: DIR stays crashed, for the next run */
}

int main(int argc, char **argv) {
    enum {
        O_POINTS = 256, O_TAIL, O_UPD, O_BATCH, O_DIR, O_SEED, O_POOL, O_OREP,
        O_VERIFY, O_DROP, O_SECONDS, O_WARMUP, O_THREADS, O_DIRTY, O_REPEAT,
        O_NOCOMMIT, O_KEEP, O_COMMAND, O_OPENONLY, O_COLD, O_QUIET, O_PERF,
        O_HELP
    };
    static const struct option lo[] = {
        {"points", required_argument, NULL, O_POINTS},
        {"tail-mb", required_argument, NULL, O_TAIL},
        {"update-frac", required_argument, NULL, O_UPD},
        {"batch", required_argument, NULL, O_BATCH},
        {"dir", required_argument, NULL, O_DIR},
        {"seed", required_argument, NULL, O_SEED},
        {"pool", required_argument, NULL, O_POOL},
        {"open-repeat", required_argument, NULL, O_OREP},
        {"verify", required_argument, NULL, O_VERIFY},
        {"drop-caches", no_argument, NULL, O_DROP},
        {"seconds", required_argument, NULL, O_SECONDS},
        {"warmup", required_argument, NULL, O_WARMUP},
        {"threads", required_argument, NULL, O_THREADS},
        {"dirty-frac", required_argument, NULL, O_DIRTY},
        {"repeat", required_argument, NULL, O_REPEAT},
        {"no-commit", no_argument, NULL, O_NOCOMMIT},
        {"keep", no_argument, NULL, O_KEEP},
        {"command", required_argument, NULL, O_COMMAND},
        {"open-only", required_argument, NULL, O_OPENONLY},
        {"cold", no_argument, NULL, O_COLD},
        {"quiet", required_argument, NULL, O_QUIET},
        {"perf", no_argument, NULL, O_PERF},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    char invocation[4096] = "";
    for (int i = 0; i < argc; i++)
        shell_append(invocation, sizeof(invocation), argv[i]);
    int c;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case O_POINTS:
            bad = parse_u64(optarg, &opt.points) || opt.points < 1000 ||
                  opt.points > (1ull << 32);
            break;
        case O_TAIL: bad = parse_double(optarg, 0.1, 1e6, &opt.tail_mb); break;
        case O_UPD: bad = parse_double(optarg, 0, 1, &opt.update_frac); break;
        case O_DIRTY: bad = parse_double(optarg, 0, 1, &opt.dirty_frac); break;
        case O_BATCH: bad = parse_uint(optarg, 2, 100000, &opt.batch); break;
        case O_DIR: opt.dir = optarg; break;
        case O_SEED: bad = parse_u64(optarg, &opt.seed); break;
        case O_POOL: bad = parse_uint(optarg, 1024, 1u << 24, &opt.pool); break;
        case O_OREP:
            bad = parse_uint(optarg, 0, MAX_OPEN_REPEAT, &opt.open_repeat);
            break;
        case O_VERIFY: bad = parse_uint(optarg, 0, 1u << 24, &opt.verify); break;
        case O_DROP: opt.drop_caches = 1; break;
        case O_SECONDS: bad = parse_double(optarg, 0.1, 3600, &opt.seconds); break;
        case O_WARMUP: bad = parse_double(optarg, 0, 60, &opt.warmup); break;
        case O_THREADS: bad = parse_threads(optarg); break;
        case O_REPEAT: bad = parse_uint(optarg, 1, MAX_REPEAT, &opt.repeat); break;
        case O_NOCOMMIT: opt.do_commit = 0; break;
        case O_KEEP: opt.keep = 1; break;
        case O_COMMAND: opt.command = optarg; break;
        case O_OPENONLY: opt.open_only = optarg; break;
        case O_COLD: opt.cold = 1; break;
        case O_QUIET: bad = parse_double(optarg, 0, 100, &opt.quiet); break;
        case O_PERF: opt.perf = 1; break;
        case O_HELP:
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
        if (bad) {
            fprintf(stderr, "bad --%s \"%s\"\n", lo[c - O_POINTS].name, optarg);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return 2;
    }

    sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) {
        fprintf(stderr, "mmap failed: %s\n", strerror(errno));
        return 1;
    }
    memset(sh, 0, sizeof(*sh));
    /* Before the data pool: a profile of the open should hold only it. */
    if (opt.open_only)
        return open_only(opt.open_only);

    if (bench_pool_make(opt.seed, opt.pool, &pool_vec, &pool_payload) != 0 ||
        !(disk_fill = malloc(MIB))) {
        fprintf(stderr, "out of memory for the data pool\n");
        return 1;
    }
    for (size_t off = 0; off < MIB; off += BENCH_VEC_BYTES)
        memcpy((char *)disk_fill + off, pool_vec + (off / BENCH_VEC_BYTES % opt.pool) * BENCH_DIM,
               BENCH_VEC_BYTES);
    /* New ids of the tail: at most one per 2 x 512 B of WAL, plus a batch. */
    sh->slot_cap = opt.points + (uint64_t)(opt.tail_mb * 1e6 / 1024) + opt.batch;
    sh->slot_of = mmap(NULL, sh->slot_cap * sizeof(uint32_t),
                       PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh->slot_of == MAP_FAILED) {
        fprintf(stderr, "mmap failed: %s\n", strerror(errno));
        return 1;
    }

    if (!opt.dir) {
        const char *t = getenv("TMPDIR");
        opt.dir = t && *t ? t : "/var/tmp";
    }
    if (mkdir(opt.dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "could not create directory \"%s\": %s\n", opt.dir,
                strerror(errno));
        return 1;
    }
    struct statfs sfs;
    if (statfs(opt.dir, &sfs) != 0) {
        fprintf(stderr, "could not statfs \"%s\": %s\n", opt.dir, strerror(errno));
        return 1;
    }
    const char *fstype = fs_name(sfs.f_type);
    if (strcmp(fstype, "tmpfs") == 0 || strcmp(fstype, "ramfs") == 0) {
        fprintf(stderr, "\"%s\" is on %s: pass --dir on the work disk\n",
                opt.dir, fstype);
        return 1;
    }
    char base[4096], db[4200];
    snprintf(base, sizeof(base), "%s/cairn-pages-XXXXXX", opt.dir);
    if (!mkdtemp(base)) {
        fprintf(stderr, "could not create a directory under \"%s\": %s\n",
                opt.dir, strerror(errno));
        return 1;
    }
    snprintf(db, sizeof(db), "%s/db", base);
    fprintf(stderr, "seed=0x%llx dir=%s (%s)\n", (unsigned long long)opt.seed,
            base, fstype);
    char load0[64], load1[64];
    loadavg(load0, sizeof(load0));
    uint64_t t_run = mono_ns();
    int failures = 0;

    /* 1-2. build, checkpoints, tail, crash */
    wait_quiet();
    struct build_arg ba = {.db = db, .base = base};
    if (run_child(build_child, &ba, 1, "build") != 0 || !sh->build.ok) {
        fprintf(stderr, "build failed: %s\n", sh->build.err);
        return 1;
    }

    crash_files(db);

    /* 3. reopen: cold then warm */
    for (unsigned i = 0; i < opt.open_repeat; i++) {
        fprintf(stderr, "reopen: cold %u/%u\n", i + 1, opt.open_repeat);
        if (open_row(db, 1, &cold_rows[n_cold]) == 0)
            n_cold++;
        else
            failures++;
    }
    for (unsigned i = 0; i < opt.open_repeat; i++) {
        fprintf(stderr, "reopen: warm %u/%u\n", i + 1, opt.open_repeat);
        if (open_row(db, 0, &warm_rows[n_warm]) == 0)
            n_warm++;
        else
            failures++;
    }

    if (opt.perf)
        perf_open(base, db);

    /* 4. commit latency, in this process */
    if (opt.do_commit) {
        struct open_res r;
        cairn_db *h = open_and_check(db, &r);
        if (!h || !r.ok) {
            fprintf(stderr, "open for the commit runs: %s\n", r.err);
            return 1;
        }
        for (unsigned rep = 0; rep < opt.repeat; rep++)
            for (unsigned t = 0; t < opt.n_threads; t++)
                for (int k = 0; k < 2; k++) {
                    /* Alternate which mode goes first, so that a drift
                     * within a repetition does not always favour one. */
                    int m = (int)((rep + t) % 2) ^ k;
                    struct crow *row = &crows[rep][t][m];
                    unsigned run_no = (rep * opt.n_threads + t) * 2 + (unsigned)k;
                    if (commit_run(h, r.points, opt.threads[t], m, run_no,
                                   row) != 0)
                        failures++;
                    char nz[32];
                    fmt_noise(nz, sizeof(nz), row->other, row->steal);
                    fprintf(stderr,
                            "commit [%u/%u] %u thread(s) %-12s %7.0f/s p50 "
                            "%.0f p99 %.0f p99.9 %.0f max %.0f us, %" PRIu64
                            " ckpts, other CPU %s\n",
                            rep + 1, opt.repeat, opt.threads[t],
                            m ? "checkpoints" : "none", row->rate, row->p50,
                            row->p99, row->p999, row->max, row->ckpts, nz);
                }
        cairn_status s = cairn_close(h);
        if (s != CAIRN_OK) {
            fprintf(stderr, "cairn_close: %s\n", cairn_last_error());
            failures++;
        }
    }
    loadavg(load1, sizeof(load1));
    double total_s = secs_since(t_run);
    print_report(invocation, base, fstype, load0, load1, total_s);
    if (!opt.keep)
        rm_tree(base);
    return failures ? 1 : 0;
}
