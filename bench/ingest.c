/*
 * ingest.c — durable-ingest benchmark: cairn against SQLite, RocksDB and
 * the disk's own bound, side by side in one process run.
 *
 * Every point is a 128-d float32 vector (512 B) with a 64-byte JSON object
 * payload: 576 B of data, the unit of "MB/s" (MB = 10^6 bytes). Every commit
 * is durable on return (cairn SYNC, SQLite synchronous=FULL in WAL mode,
 * RocksDB sync writes, the disk bound's fdatasync).
 *
 * Workloads (each on a fresh directory, each engine in turn):
 *   1t        single-point transactions, 1 thread
 *   1t-busy   the same while a spinning thread keeps the other core busy
 *   4t, 16t   single-point transactions from 4 / 16 threads
 *   batch     transactions of --batch (default 1000) points, 1 thread
 *   batch-busy  the same with the other core busy (not in the default set)
 *   batch4    transactions of --batch points from 4 threads
 *
 * Each run: open, start the worker threads on a barrier, warm up for
 * --warmup seconds, then count for --seconds the commits that complete,
 * with their latency (enqueue to durable return) in a log-linear histogram
 * (~3% resolution). With --repeat N the workloads and engines are
 * interleaved N times and the run with the median commits/s is shown;
 * ratios are medians of within-repetition ratios. Every row also carries
 * the CPU other processes took meanwhile (--quiet waits for and reruns
 * against a busy machine), and a commit still running 30 s after the stop
 * is reported as a hang instead of hanging the benchmark.
 *
 * Data: a pool of --pool points generated from --seed (splitmix64,
 * Box-Muller N(0,1) floats) before any clock starts; thread t's i-th point
 * has id ((t+1) << 40 | i) and pool slot (i * nthreads + t) mod pool.
 */
#include "ingest.h"
#include "bench_util.h"

#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_SEED 0x636169726eULL /* "cairn" */
#define MAX_ENGINES 8
#define MAX_WORKLOADS 8
#define MAX_REPEAT 15
#define HANG_SECONDS 30 /* after the stop, a commit that has not returned */

/* ------------------------------------------------------------------ */
/* Options                                                             */
/* ------------------------------------------------------------------ */

struct workload {
    const char *key;   /* --workloads name */
    const char *label; /* table label */
    unsigned nthreads;
    int batch;         /* 0: single point; 1: --batch points */
    int busy;          /* spin a thread on the other core */
};

static const struct workload all_workloads[] = {
    {"1t", "single, 1 thread", 1, 0, 0},
    {"1t-busy", "single, 1 thread, other core busy", 1, 0, 1},
    {"4t", "single, 4 threads", 4, 0, 0},
    {"16t", "single, 16 threads", 16, 0, 0},
    {"batch", "batch, 1 thread", 1, 1, 0},
    {"batch-busy", "batch, 1 thread, other core busy", 1, 1, 1},
    {"batch4", "batch, 4 threads", 4, 1, 0},
};

static const struct ingest_engine *const all_engines[] = {
#ifndef INGEST_NO_CAIRN
    &ingest_engine_cairn,
#endif
    &ingest_engine_sqlite,
    &ingest_engine_sqlite_mx,
    &ingest_engine_rocksdb,
    &ingest_engine_disk,
};

static struct {
    double seconds;
    double warmup;
    const char *dir;
    uint64_t seed;
    unsigned batch;
    unsigned repeat;
    unsigned pool;
    unsigned disk_single_mb;
    unsigned disk_batch_mb;
    int markdown;
    int keep;
    int allow_tmpfs;
    double quiet;
    const char *command;
    const struct ingest_engine *engines[MAX_ENGINES];
    unsigned n_engines;
    const struct workload *workloads[MAX_WORKLOADS];
    unsigned n_workloads;
} opt = {
    .seconds = 3.0,
    .warmup = 0.5,
    .seed = DEFAULT_SEED,
    .batch = 1000,
    .repeat = 1,
    .pool = 65536,
    .disk_single_mb = 16,
    .disk_batch_mb = 512,
};

static void usage(FILE *f) {
    fprintf(f,
"usage: cairn_bench_ingest [options]\n"
"  --seconds S      measured seconds per run (default 3)\n"
"  --warmup S       unmeasured seconds before each run (default 0.5)\n"
"  --dir PATH       parent of the fresh run directories (default $TMPDIR,\n"
"                   else /var/tmp); must not be tmpfs\n"
"  --seed N         data seed (default 0x636169726e); printed\n"
"  --engines LIST   comma list of:");
    for (size_t i = 0; i < sizeof(all_engines) / sizeof(all_engines[0]); i++)
        fprintf(f, " %s", all_engines[i]->name);
    fprintf(f,
"\n                   (default: all)\n"
"  --workloads LIST comma list of:");
    for (size_t i = 0; i < sizeof(all_workloads) / sizeof(all_workloads[0]); i++)
        fprintf(f, " %s", all_workloads[i].key);
    fprintf(f,
"\n                   (default: 1t,1t-busy,4t,16t,batch,batch4)\n"
"  --batch N        points per batch transaction (default 1000)\n"
"  --repeat N       interleaved repetitions, median shown (default 1)\n"
"  --pool N         points in the pregenerated data pool (default 65536)\n"
"  --disk-file-mb N size of the disk bound's batch file (default 512)\n"
"  --markdown       print the tables as Markdown for bench/RESULTS.md\n"
"  --quiet P        wait (<= 10 s) before each run until other processes\n"
"                   use <= P %% of the CPUs, and rerun once a\n"
"                   run during which they used more; keeps the quieter\n"
"                   (default 0: off)\n"
"  --keep           keep the run directories\n"
"  --allow-tmpfs    run even if --dir is on tmpfs (figures meaningless)\n"
"  --command STR    command line to print at the top (for wrapper scripts)\n");
}

static int parse_engines(const char *arg) {
    char *copy = strdup(arg), *save = NULL;
    opt.n_engines = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        size_t i, n = sizeof(all_engines) / sizeof(all_engines[0]);
        for (i = 0; i < n; i++)
            if (strcmp(tok, all_engines[i]->name) == 0)
                break;
        if (i == n || opt.n_engines == MAX_ENGINES) {
            fprintf(stderr, "unknown engine \"%s\"\n", tok);
            free(copy);
            return -1;
        }
        opt.engines[opt.n_engines++] = all_engines[i];
    }
    free(copy);
    return opt.n_engines ? 0 : -1;
}

static int parse_workloads(const char *arg) {
    char *copy = strdup(arg), *save = NULL;
    opt.n_workloads = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        size_t i, n = sizeof(all_workloads) / sizeof(all_workloads[0]);
        for (i = 0; i < n; i++)
            if (strcmp(tok, all_workloads[i].key) == 0)
                break;
        if (i == n || opt.n_workloads == MAX_WORKLOADS) {
            fprintf(stderr, "unknown workload \"%s\"\n", tok);
            free(copy);
            return -1;
        }
        opt.workloads[opt.n_workloads++] = &all_workloads[i];
    }
    free(copy);
    return opt.n_workloads ? 0 : -1;
}

/* ------------------------------------------------------------------ */
/* Data pool                                                           */
/* ------------------------------------------------------------------ */

static float *pool_vec;    /* pool x INGEST_DIM */
static char *pool_payload; /* pool x INGEST_PAYLOAD_BYTES, no NULs */
static void *disk_fill;    /* 1 MiB of nonzero bytes for the disk bound */

_Static_assert(INGEST_DIM == BENCH_DIM &&
                   INGEST_PAYLOAD_BYTES == BENCH_PAYLOAD_BYTES,
               "the pool comes from bench_pool_make()");

static int pool_generate(void) {
    size_t n = opt.pool;
    disk_fill = malloc(1u << 20);
    if (!disk_fill || bench_pool_make(opt.seed, n, &pool_vec, &pool_payload) != 0)
        return -1;
    /* The disk bound writes vector bytes (random, nonzero). */
    size_t fill = 1u << 20;
    size_t have = n * INGEST_VEC_BYTES;
    for (size_t off = 0; off < fill; off += have)
        memcpy((char *)disk_fill + off, pool_vec,
               fill - off < have ? fill - off : have);
    return 0;
}

/* ------------------------------------------------------------------ */
/* One run                                                             */
/* ------------------------------------------------------------------ */

enum { PHASE_WARMUP, PHASE_MEASURE, PHASE_STOP };

struct result {
    int ran;
    int hung;
    uint64_t commits;
    uint64_t bytes;
    double secs;
    double p50_us, p99_us, max_us;
    double other_cpu; /* % of all cores: other processes' user time */
    double steal;     /* % of all cores stolen by the hypervisor */
};

struct run {
    const struct ingest_engine *eng;
    void *state;
    unsigned nthreads;
    unsigned batch;
    pthread_barrier_t start;
    atomic_int phase;
    atomic_int failed;
    atomic_int spin_stop;
};

struct worker {
    pthread_t th;
    struct run *run;
    unsigned tid;
    void *tstate;
    struct ingest_point *pts;
    uint64_t seq;
    uint64_t commits;
    uint64_t bytes;
    uint64_t max_ns;
    struct hist hist;
    char err[INGEST_ERRLEN];
};

static void *worker_main(void *arg) {
    struct worker *w = arg;
    struct run *run = w->run;
    const struct ingest_engine *eng = run->eng;
    uint64_t per_commit = eng->commit_bytes
                              ? eng->commit_bytes(run->state, run->batch)
                              : (uint64_t)run->batch * INGEST_POINT_BYTES;
    pthread_barrier_wait(&run->start);
    for (;;) {
        int ph = atomic_load_explicit(&run->phase, memory_order_acquire);
        if (ph == PHASE_STOP)
            break;
        for (unsigned i = 0; i < run->batch; i++) {
            uint64_t seq = w->seq++;
            size_t slot = (size_t)((seq * run->nthreads + w->tid) % opt.pool);
            w->pts[i].id = ((uint64_t)(w->tid + 1) << 40) | seq;
            w->pts[i].vector = pool_vec + slot * INGEST_DIM;
            w->pts[i].payload = pool_payload + slot * INGEST_PAYLOAD_BYTES;
        }
        uint64_t t0 = mono_ns();
        if (eng->commit(w->tstate, w->pts, run->batch, w->err) != 0) {
            atomic_store(&run->failed, 1);
            atomic_store(&run->phase, PHASE_STOP);
            break;
        }
        uint64_t dt = mono_ns() - t0;
        if (atomic_load_explicit(&run->phase, memory_order_acquire) ==
            PHASE_MEASURE) {
            w->commits++;
            w->bytes += per_commit;
            w->hist.n[hist_index(dt)]++;
            if (dt > w->max_ns)
                w->max_ns = dt;
        }
    }
    return NULL;
}

static void *spinner_main(void *arg) {
    struct run *run = arg;
    volatile uint64_t spins = 0;
    while (!atomic_load_explicit(&run->spin_stop, memory_order_relaxed))
        spins++;
    return NULL;
}

/* With --quiet P: waits (at most 10 s) until other processes have used at
 * most P % of the CPUs (user time) over half a second. */
static void wait_quiet(void) {
    if (opt.quiet > 0)
        (void)cpu_wait_quiet(opt.quiet, 10.0);
}

/* Runs one engine on one workload in a fresh directory under base. Returns
 * 0, or -1 after printing why. */
static int run_one(const struct ingest_engine *eng, const struct workload *wl,
                   const char *base, unsigned rep, unsigned attempt,
                   struct result *res) {
    char dir[8192], err[INGEST_ERRLEN] = "";
    snprintf(dir, sizeof(dir), "%s/%s-%s-r%u-a%u", base, eng->name, wl->key,
             rep, attempt);
    if (mkdir(dir, 0755) != 0) {
        fprintf(stderr, "could not create directory \"%s\": %s\n", dir,
                strerror(errno));
        return -1;
    }
    struct ingest_cfg cfg = {
        .nthreads = wl->nthreads,
        .batch = wl->batch ? opt.batch : 1,
        .disk_file_bytes = (uint64_t)(wl->batch ? opt.disk_batch_mb
                                                : opt.disk_single_mb) << 20,
        .fill = disk_fill,
    };
    struct run run = {.eng = eng, .nthreads = wl->nthreads, .batch = cfg.batch};
    atomic_init(&run.phase, PHASE_WARMUP);
    atomic_init(&run.failed, 0);
    atomic_init(&run.spin_stop, 0);
    if (eng->open(dir, &cfg, &run.state, err) != 0) {
        fprintf(stderr, "%s: %s\n", eng->name, err);
        return -1;
    }
    struct worker *ws = calloc(wl->nthreads, sizeof(*ws));
    int rc = -1;
    unsigned opened = 0;
    if (!ws) {
        fprintf(stderr, "out of memory\n");
        goto close_engine;
    }
    for (; opened < wl->nthreads; opened++) {
        struct worker *w = &ws[opened];
        w->run = &run;
        w->tid = opened;
        w->pts = calloc(cfg.batch, sizeof(*w->pts));
        if (!w->pts) {
            fprintf(stderr, "out of memory\n");
            goto close_threads;
        }
        if (eng->thread_open(run.state, opened, &w->tstate, w->err) != 0) {
            fprintf(stderr, "%s: %s\n", eng->name, w->err);
            free(w->pts);
            goto close_threads;
        }
    }
    pthread_barrier_init(&run.start, NULL, wl->nthreads + 1);
    pthread_t spinner = 0;
    if (wl->busy && pthread_create(&spinner, NULL, spinner_main, &run) != 0) {
        fprintf(stderr, "could not start the spinning thread\n");
        goto destroy_barrier;
    }
    for (unsigned i = 0; i < wl->nthreads; i++)
        if (pthread_create(&ws[i].th, NULL, worker_main, &ws[i]) != 0) {
            /* Those started wait on the barrier forever: give up. */
            fprintf(stderr, "could not start worker thread %u\n", i);
            exit(1);
        }
    pthread_barrier_wait(&run.start);

    uint64_t until = mono_ns() + (uint64_t)(opt.warmup * 1e9);
    while (!atomic_load(&run.failed) && mono_ns() < until)
        sleep_s(0.01);
    struct cpu_sample cpu0, cpu1;
    cpu_sample(&cpu0);
    uint64_t t_start = mono_ns(), now;
    atomic_store(&run.phase, PHASE_MEASURE);
    until = t_start + (uint64_t)(opt.seconds * 1e9);
    while (!atomic_load(&run.failed) && (now = mono_ns()) < until) {
        double left = (double)(until - now) / 1e9;
        sleep_s(left < 0.01 ? left : 0.01);
    }
    atomic_store(&run.phase, PHASE_STOP);
    uint64_t t_end = mono_ns();
    cpu_sample(&cpu1);
    /* An engine whose commit never returns must not hang the whole
     * benchmark: give the threads HANG_SECONDS to finish their last commit,
     * else report the run as hung and leave it (threads, engine, files) as
     * it is; the caller skips that engine from then on and exits without
     * running exit handlers. */
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += HANG_SECONDS;
    unsigned stuck = 0;
    for (unsigned i = 0; i < wl->nthreads; i++)
        if (pthread_timedjoin_np(ws[i].th, NULL, &deadline) != 0)
            stuck++;
    if (wl->busy) {
        atomic_store(&run.spin_stop, 1);
        pthread_join(spinner, NULL);
    }
    if (stuck) {
        fprintf(stderr,
                "%s, %s: %u of %u threads still inside commit %d s after the "
                "stop; the engine hangs (directory \"%s\" left as is)\n",
                eng->name, wl->key, stuck, wl->nthreads, HANG_SECONDS, dir);
        memset(res, 0, sizeof(*res));
        res->hung = 1;
        return -2;
    }

    memset(res, 0, sizeof(*res));
    struct hist *h = calloc(1, sizeof(*h));
    uint64_t max_ns = 0;
    for (unsigned i = 0; i < wl->nthreads; i++) {
        res->commits += ws[i].commits;
        res->bytes += ws[i].bytes;
        if (ws[i].max_ns > max_ns)
            max_ns = ws[i].max_ns;
        if (h)
            for (unsigned b = 0; b < HBUCKETS; b++)
                h->n[b] += ws[i].hist.n[b];
        if (ws[i].err[0])
            fprintf(stderr, "%s, %s, thread %u: %s\n", eng->name, wl->key, i,
                    ws[i].err);
    }
    res->secs = (double)(t_end - t_start) / 1e9;
    res->p50_us = h ? hist_quantile(h, 0.50) / 1e3 : 0;
    res->p99_us = h ? hist_quantile(h, 0.99) / 1e3 : 0;
    res->max_us = (double)max_ns / 1e3;
    cpu_noise(&cpu0, &cpu1, &res->other_cpu, &res->steal);
    res->ran = !atomic_load(&run.failed);
    free(h);
    rc = res->ran ? 0 : -1;

destroy_barrier:
    pthread_barrier_destroy(&run.start);
close_threads:
    for (unsigned i = 0; i < opened; i++) {
        eng->thread_close(ws[i].tstate);
        free(ws[i].pts);
    }
    free(ws);
close_engine:
    if (eng->close(run.state, err) != 0) {
        fprintf(stderr, "%s: %s\n", eng->name, err);
        rc = -1;
    }
    if (!opt.keep)
        rm_tree(dir);
    sync();
    sleep_s(0.2);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Report                                                              */
/* ------------------------------------------------------------------ */

static struct result results[MAX_REPEAT][MAX_WORKLOADS][MAX_ENGINES];

static double rate(const struct result *r) {
    return r->ran && r->secs > 0 ? (double)r->commits / r->secs : 0;
}

static double mbps(const struct result *r) {
    return r->ran && r->secs > 0 ? (double)r->bytes / r->secs / 1e6 : 0;
}

/* The repetition with the median commits/s (lower median). */
static const struct result *median(unsigned w, unsigned e) {
    const struct result *v[MAX_REPEAT];
    unsigned n = 0;
    for (unsigned r = 0; r < opt.repeat; r++)
        if (results[r][w][e].ran)
            v[n++] = &results[r][w][e];
    if (!n)
        return NULL;
    for (unsigned i = 1; i < n; i++)
        for (unsigned j = i; j > 0 && rate(v[j]) < rate(v[j - 1]); j--) {
            const struct result *t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return v[(n - 1) / 2];
}

static int results_hung(unsigned w, unsigned e) {
    for (unsigned r = 0; r < opt.repeat; r++)
        if (results[r][w][e].hung)
            return 1;
    return 0;
}

static int engine_index(const char *name) {
    for (unsigned e = 0; e < opt.n_engines; e++)
        if (strcmp(opt.engines[e]->name, name) == 0)
            return (int)e;
    return -1;
}

static void fmt_ratio(char *out, size_t len, double ratio) {
    if (ratio > 0)
        snprintf(out, len, "%.2fx", ratio);
    else
        snprintf(out, len, "-");
}

/* "4%", or "4%+9st" when the hypervisor stole time too. */
/* "2.31x (1.90x)": median and worst repetition. */
static void fmt_ratio2(char *out, size_t len, double median, double worst) {
    if (median > 0)
        snprintf(out, len, "%.2fx (%.2fx)", median, worst);
    else
        snprintf(out, len, "-");
}

static void fmt_met(char *out, size_t len, int median_ok, int worst_ok) {
    snprintf(out, len, "%s", !median_ok      ? "NO"
                             : worst_ok      ? "yes, every repetition"
                                             : "yes (median; not every repetition)");
}

static double value(unsigned rep, unsigned w, int e, int use_mb) {
    if (e < 0 || !results[rep][w][e].ran)
        return 0;
    return use_mb ? mbps(&results[rep][w][e]) : rate(&results[rep][w][e]);
}

/* Median over the repetitions of num / den measured in the same
 * repetition (den: the better of den and den_alt), so that slow drifts of a
 * shared machine cancel; 0 when no repetition has both. */
static double ratio_median_min(unsigned w, int num, int den, int den_alt,
                               int use_mb, double *min_out) {
    double v[MAX_REPEAT];
    unsigned n = 0;
    for (unsigned r = 0; r < opt.repeat; r++) {
        double a = value(r, w, num, use_mb), b = value(r, w, den, use_mb);
        double b2 = value(r, w, den_alt, use_mb);
        if (b2 > b)
            b = b2;
        if (a > 0 && b > 0)
            v[n++] = a / b;
    }
    if (min_out)
        *min_out = 0;
    if (!n)
        return 0;
    for (unsigned i = 1; i < n; i++)
        for (unsigned j = i; j > 0 && v[j] < v[j - 1]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    if (min_out)
        *min_out = v[0];
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double ratio_median(unsigned w, int num, int den, int den_alt,
                           int use_mb) {
    return ratio_median_min(w, num, den, den_alt, use_mb, NULL);
}

static void workload_label(const struct workload *wl, char *out, size_t len) {
    if (wl->batch)
        snprintf(out, len, "batch %u, %u thread%s%s", opt.batch, wl->nthreads,
                 wl->nthreads > 1 ? "s" : "", wl->busy ? ", other core busy" : "");
    else
        snprintf(out, len, "%s", wl->label);
}

static void print_report(const char *invocation, const char *base,
                         const char *fstype) {
    int md = opt.markdown;
    struct utsname un;
    uname(&un);
    char cpu[256];
    cpu_model(cpu, sizeof(cpu));
    char date[64];
    time_t now = time(NULL);
    strftime(date, sizeof(date), "%Y-%m-%d %H:%M UTC", gmtime(&now));

    if (md) {
        printf("## Durable ingest\n\n");
        if (opt.command)
            printf("Command: `%s`\n\n(runs `%s`)\n\n", opt.command, invocation);
        else
            printf("Command: `%s`\n\n", invocation);
        printf("- %s, %ld CPUs, kernel %s; run directory on %s (%s); %s\n",
               cpu, sysconf(_SC_NPROCESSORS_ONLN), un.release, fstype, base,
               date);
    } else {
        printf("command: %s\n", opt.command ? opt.command : invocation);
        if (opt.command)
            printf("runs:    %s\n", invocation);
        printf("machine: %s, %ld CPUs, kernel %s; run directory %s (%s); %s\n",
               cpu, sysconf(_SC_NPROCESSORS_ONLN), un.release, base, fstype,
               date);
    }
    printf("%sseed=0x%llx seconds=%.1f warmup=%.1f repeat=%u (median shown) "
           "batch=%u pool=%u quiet=%.0f%%\n",
           md ? "- " : "", (unsigned long long)opt.seed, opt.seconds,
           opt.warmup, opt.repeat, opt.batch, opt.pool, opt.quiet);
    printf("%sengines:", md ? "- " : "");
    for (unsigned e = 0; e < opt.n_engines; e++)
        printf(" %s %s%s", opt.engines[e]->name, opt.engines[e]->version(),
               e + 1 < opt.n_engines ? ";" : "");
    printf("\n%spoint = 128 x float32 + 64 B JSON payload = 576 B; "
           "MB = 10^6 B; latency = one commit call, enqueue to durable "
           "return\n\n",
           md ? "- " : "");

    if (md) {
        printf("| workload | engine | commits/s | MB/s | p50 µs | p99 µs | "
               "max µs | of disk | other CPU |\n"
               "|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
    } else {
        printf("%-34s %-10s %11s %9s %9s %9s %9s %8s %9s\n", "workload",
               "engine", "commits/s", "MB/s", "p50 us", "p99 us", "max us",
               "of disk", "other CPU");
    }
    for (unsigned w = 0; w < opt.n_workloads; w++) {
        const struct workload *wl = opt.workloads[w];
        char label[96];
        workload_label(wl, label, sizeof(label));
        for (unsigned e = 0; e < opt.n_engines; e++) {
            const struct result *r = median(w, e);
            const char *name = opt.engines[e]->name;
            if (!r && strcmp(name, "sqlite-mx") == 0 && wl->nthreads == 1)
                continue; /* identical to sqlite with one thread */
            char c[32], m[32], p50[32], p99[32], mx[32], dk[32] = "-";
            char oc[32] = "-";
            int id = engine_index("disk");
            if (id >= 0 && id != (int)e) {
                /* single point: commits/s; batch: MB/s against the disk's */
                double x = ratio_median(w, (int)e, id, -1, wl->batch);
                if (x > 0 && wl->batch)
                    snprintf(dk, sizeof(dk), "%.0f%%", 100.0 * x);
                else
                    fmt_ratio(dk, sizeof(dk), x);
            }
            if (r) {
                snprintf(c, sizeof(c), "%.0f", rate(r));
                snprintf(m, sizeof(m), "%.1f", mbps(r));
                snprintf(p50, sizeof(p50), "%.0f", r->p50_us);
                snprintf(p99, sizeof(p99), "%.0f", r->p99_us);
                snprintf(mx, sizeof(mx), "%.0f", r->max_us);
                fmt_noise(oc, sizeof(oc), r->other_cpu, r->steal);
            } else if (results_hung(w, e)) {
                snprintf(c, sizeof(c), md ? "**HUNG**" : "HUNG");
                snprintf(m, sizeof(m), "-");
                snprintf(p50, sizeof(p50), "-");
                snprintf(p99, sizeof(p99), "-");
                snprintf(mx, sizeof(mx), "-");
            } else {
                snprintf(c, sizeof(c), "-");
                snprintf(m, sizeof(m), "-");
                snprintf(p50, sizeof(p50), "-");
                snprintf(p99, sizeof(p99), "-");
                snprintf(mx, sizeof(mx), "-");
            }
            if (md)
                printf("| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
                       label, name, c, m, p50, p99, mx, dk, oc);
            else
                printf("%-34s %-10s %11s %9s %9s %9s %9s %8s %9s\n", label,
                       name, c, m, p50, p99, mx, dk, oc);
        }
    }

    /* Ratios: medians of per-repetition ratios. SQLite's figure is the
     * better of its two lock modes in that repetition. */
    int ic = engine_index("cairn"), is = engine_index("sqlite"),
        im = engine_index("sqlite-mx"), ir = engine_index("rocksdb"),
        id = engine_index("disk");
    printf("\n");
    if (md)
        printf("| workload | cairn/SQLite | cairn/RocksDB | cairn/disk "
               "(commits) | cairn/disk (MB/s) | target | met |\n"
               "|---|---:|---:|---:|---:|---|---|\n");
    else
        printf("%-34s %15s %15s %15s %15s  %s\n", "workload", "cairn/SQLite",
               "cairn/RocksDB", "cairn/disk c/s", "cairn/disk MB/s", "target");
    for (unsigned w = 0; w < opt.n_workloads; w++) {
        const struct workload *wl = opt.workloads[w];
        double min_s, min_r, min_dc, min_dm;
        double vs_sqlite = ratio_median_min(w, ic, is, im, 0, &min_s);
        double vs_rocksdb = ratio_median_min(w, ic, ir, -1, 0, &min_r);
        double vs_disk_c = ratio_median_min(w, ic, id, -1, 0, &min_dc);
        double vs_disk_mb = ratio_median_min(w, ic, id, -1, 1, &min_dm);
        char a[48], b[48], d1[48], d2[48], target[96] = "", met[64] = "";
        fmt_ratio2(a, sizeof(a), vs_sqlite, min_s);
        fmt_ratio2(b, sizeof(b), vs_rocksdb, min_r);
        fmt_ratio2(d1, sizeof(d1), vs_disk_c, min_dc);
        snprintf(d2, sizeof(d2), "-");
        if (wl->batch) {
            snprintf(d1, sizeof(d1), "-");
            if (vs_disk_mb > 0)
                snprintf(d2, sizeof(d2), "%.0f%% (%.0f%%)", 100.0 * vs_disk_mb,
                         100.0 * min_dm);
            if (!wl->busy) {
                snprintf(target, sizeof(target), ">= 70%% of disk MB/s");
                if (vs_disk_mb > 0)
                    fmt_met(met, sizeof(met), vs_disk_mb >= 0.70,
                            min_dm >= 0.70);
            }
        } else if (wl->nthreads == 16) {
            snprintf(target, sizeof(target), ">= 3x SQLite, >= 1.5x RocksDB");
            if (vs_sqlite > 0 && vs_rocksdb > 0)
                fmt_met(met, sizeof(met), vs_sqlite >= 3 && vs_rocksdb >= 1.5,
                        min_s >= 3 && min_r >= 1.5);
        }
        char label[96];
        workload_label(wl, label, sizeof(label));
        if (md)
            printf("| %s | %s | %s | %s | %s | %s | %s |\n", label, a, b, d1,
                   d2, target, met);
        else
            printf("%-34s %15s %15s %15s %15s  %s%s%s\n", label, a, b, d1, d2,
                   target, met[0] ? ": " : "", met);
    }
    printf("\n%s"
           "SQLite: the better of \"sqlite\" (one connection per thread, "
           "BEGIN IMMEDIATE/INSERT OR REPLACE/COMMIT, busy_timeout) and "
           "\"sqlite-mx\" (the same, writers serialized by a process mutex "
           "instead of SQLite's sleeping busy handler).\n"
           "%sdisk: 4 KiB pwrite + fdatasync per commit on a preallocated "
           "zero-filled file per thread (single-point rows); 1 MiB pwrite + "
           "fdatasync per op on a fresh preallocated zero-filled file (batch "
           "rows; its commits/s are 1 MiB ops/s). Its MB/s count the bytes "
           "written. cairn/disk (commits) > 1 means group commit shares one "
           "fdatasync between commits.\n"
           "%sother CPU: user time of other processes during the measured "
           "window, as a share of all cores (+Nst: stolen by the "
           "hypervisor). Near 0 on a quiet machine; tens of %% mean the row "
           "was measured on a busy machine and is noise.\n"
           "%sof disk: the engine against the disk bound of the same "
           "repetition (commits/s for single points, MB/s for batches). "
           "Ratios are medians over repetitions of within-repetition ratios, "
           "the worst repetition in parentheses.\n",
           md ? "- " : "", md ? "- " : "", md ? "- " : "", md ? "- " : "");
    for (unsigned e = 0; e < opt.n_engines; e++)
        for (unsigned w = 0; w < opt.n_workloads; w++)
            if (results_hung(w, e))
                printf("%s**HUNG**: a %s commit did not return within %d s of "
                       "the stop (workload %s); %s was not run again, so its "
                       "later rows are empty.\n",
                       md ? "- " : "", opt.engines[e]->name, HANG_SECONDS,
                       opt.workloads[w]->key, opt.engines[e]->name);
}

/* ------------------------------------------------------------------ */

int main(int argc, char **argv) {
    enum {
        O_SECONDS = 256, O_WARMUP, O_DIR, O_SEED, O_ENGINES, O_WORKLOADS,
        O_BATCH, O_REPEAT, O_POOL, O_DISKMB, O_MARKDOWN, O_KEEP, O_TMPFS,
        O_COMMAND, O_QUIET, O_HELP
    };
    static const struct option lo[] = {
        {"seconds", required_argument, NULL, O_SECONDS},
        {"warmup", required_argument, NULL, O_WARMUP},
        {"dir", required_argument, NULL, O_DIR},
        {"seed", required_argument, NULL, O_SEED},
        {"engines", required_argument, NULL, O_ENGINES},
        {"workloads", required_argument, NULL, O_WORKLOADS},
        {"batch", required_argument, NULL, O_BATCH},
        {"repeat", required_argument, NULL, O_REPEAT},
        {"pool", required_argument, NULL, O_POOL},
        {"disk-file-mb", required_argument, NULL, O_DISKMB},
        {"markdown", no_argument, NULL, O_MARKDOWN},
        {"keep", no_argument, NULL, O_KEEP},
        {"allow-tmpfs", no_argument, NULL, O_TMPFS},
        {"command", required_argument, NULL, O_COMMAND},
        {"quiet", required_argument, NULL, O_QUIET},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    char invocation[4096] = "";
    for (int i = 0; i < argc; i++)
        shell_append(invocation, sizeof(invocation), argv[i]);

    int c;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        char *end;
        switch (c) {
        case O_SECONDS:
            opt.seconds = strtod(optarg, &end);
            if (*end || !(opt.seconds > 0)) {
                fprintf(stderr, "bad --seconds \"%s\"\n", optarg);
                return 2;
            }
            break;
        case O_WARMUP:
            opt.warmup = strtod(optarg, &end);
            if (*end || !(opt.warmup >= 0)) {
                fprintf(stderr, "bad --warmup \"%s\"\n", optarg);
                return 2;
            }
            break;
        case O_DIR: opt.dir = optarg; break;
        case O_SEED:
            if (parse_u64(optarg, &opt.seed) != 0) {
                fprintf(stderr, "bad --seed \"%s\"\n", optarg);
                return 2;
            }
            break;
        case O_ENGINES:
            if (parse_engines(optarg) != 0)
                return 2;
            break;
        case O_WORKLOADS:
            if (parse_workloads(optarg) != 0)
                return 2;
            break;
        case O_BATCH:
            if (parse_uint(optarg, 1, 1000000, &opt.batch) != 0) {
                fprintf(stderr, "bad --batch \"%s\"\n", optarg);
                return 2;
            }
            break;
        case O_REPEAT:
            if (parse_uint(optarg, 1, MAX_REPEAT, &opt.repeat) != 0) {
                fprintf(stderr, "bad --repeat \"%s\" (1..%d)\n", optarg,
                        MAX_REPEAT);
                return 2;
            }
            break;
        case O_POOL:
            if (parse_uint(optarg, 1024, 1u << 24, &opt.pool) != 0) {
                fprintf(stderr, "bad --pool \"%s\"\n", optarg);
                return 2;
            }
            break;
        case O_DISKMB:
            if (parse_uint(optarg, 1, 1u << 20, &opt.disk_batch_mb) != 0) {
                fprintf(stderr, "bad --disk-file-mb \"%s\"\n", optarg);
                return 2;
            }
            break;
        case O_MARKDOWN: opt.markdown = 1; break;
        case O_KEEP: opt.keep = 1; break;
        case O_TMPFS: opt.allow_tmpfs = 1; break;
        case O_COMMAND: opt.command = optarg; break;
        case O_QUIET:
            opt.quiet = strtod(optarg, &end);
            if (*end || !(opt.quiet >= 0 && opt.quiet <= 100)) {
                fprintf(stderr, "bad --quiet \"%s\"\n", optarg);
                return 2;
            }
            break;
        case O_HELP:
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (!opt.n_engines)
        for (size_t i = 0; i < sizeof(all_engines) / sizeof(all_engines[0]);
             i++)
            opt.engines[opt.n_engines++] = all_engines[i];
    if (!opt.n_workloads && parse_workloads("1t,1t-busy,4t,16t,batch,batch4") != 0)
        return 2;
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
        fprintf(stderr, "could not statfs \"%s\": %s\n", opt.dir,
                strerror(errno));
        return 1;
    }
    const char *fstype = fs_name(sfs.f_type);
    if ((strcmp(fstype, "tmpfs") == 0 || strcmp(fstype, "ramfs") == 0) &&
        !opt.allow_tmpfs) {
        fprintf(stderr,
                "\"%s\" is on %s: fsync is free there; pass --dir on the work "
                "disk (or --allow-tmpfs)\n",
                opt.dir, fstype);
        return 1;
    }
    char base[4096];
    snprintf(base, sizeof(base), "%s/cairn-ingest-XXXXXX", opt.dir);
    if (!mkdtemp(base)) {
        fprintf(stderr, "could not create a directory under \"%s\": %s\n",
                opt.dir, strerror(errno));
        return 1;
    }
    if (pool_generate() != 0) {
        fprintf(stderr, "out of memory for the data pool\n");
        return 1;
    }
    fprintf(stderr, "seed=0x%llx dir=%s (%s)\n", (unsigned long long)opt.seed,
            base, fstype);

    int failures = 0, hung = 0;
    int disabled[MAX_ENGINES] = {0};
    for (unsigned rep = 0; rep < opt.repeat; rep++)
        for (unsigned w = 0; w < opt.n_workloads; w++)
            for (unsigned e = 0; e < opt.n_engines; e++) {
                const struct workload *wl = opt.workloads[w];
                const struct ingest_engine *eng = opt.engines[e];
                if (strcmp(eng->name, "sqlite-mx") == 0 && wl->nthreads == 1)
                    continue; /* identical to sqlite with one thread */
                if (disabled[e])
                    continue; /* hung earlier */
                struct result *best = &results[rep][w][e];
                unsigned tries = opt.quiet > 0 ? 2 : 1;
                for (unsigned a = 0; a < tries; a++) {
                    struct result r;
                    wait_quiet();
                    int rc = run_one(eng, wl, base, rep, a, &r);
                    if (rc == -2) {
                        /* Its threads stay stuck; the other engines go on. */
                        *best = r;
                        hung = 1;
                        disabled[e] = 1;
                        failures++;
                        break;
                    }
                    if (rc != 0) {
                        failures++;
                        best->ran = 0;
                        break;
                    }
                    fprintf(stderr,
                            "  [%u/%u] %-10s %-10s %9.0f commits/s %8.1f MB/s "
                            "p50 %.0f us p99 %.0f us, other CPU %.0f%% "
                            "steal %.0f%%%s\n",
                            rep + 1, opt.repeat, wl->key, eng->name, rate(&r),
                            mbps(&r), r.p50_us, r.p99_us, r.other_cpu, r.steal,
                            a ? " (retry)" : "");
                    if (!best->ran || r.other_cpu < best->other_cpu)
                        *best = r;
                    if (opt.quiet <= 0 || r.other_cpu <= opt.quiet)
                        break;
                }
            }
    /* After a hang, base still holds the hung run's directory. */
    if (!opt.keep && !hung)
        rm_tree(base);
    print_report(invocation, base, fstype);
    if (hung) {
        fflush(stdout);
        _exit(3); /* threads are stuck inside the engine: no exit handlers */
    }
    return failures ? 1 : 0;
}
