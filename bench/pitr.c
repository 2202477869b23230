/*
 * pitr.c — point-in-time recovery benchmarks (issue 4): WAL replay
 * throughput of a restore, full backup throughput against the disk, the
 * size of an incremental backup against the compressed size of exactly
 * the pages it stored, and the cairn half of the side-by-side run with
 * PostgreSQL 15 (bench/pitr_pg.sh runs the other half and the table).
 *
 *   cairn_bench_pitr [replay] [backup] [options]     parts 1 and 3 (default: both)
 *   cairn_bench_pitr pg-cairn --work DIR --base-rows B --rows R --tail-rows T
 *   cairn_bench_pitr pg-restore --work DIR --target-us T --base-rows B ...
 *   cairn_bench_pitr pg-rows --from A --count N      COPY text for psql
 *   cairn_bench_pitr drop-cache PATH...              evict files from the page cache
 *   cairn_bench_pitr wait-quiet [P]                  wait until other processes are quiet
 *
 * Everything goes through the public API (include/cairn.h) to build and
 * change databases, and through pitr/pitr.h (what pitrctl calls) to
 * archive, back up and restore, in fresh directories under --dir (refused
 * on tmpfs).
 *
 * replay (item 1 of the benchmark list)
 *   For each collection count N of --collections (1,2,4): a new database
 *   (--durability, NONE by default: the build is not what is measured; no
 *   automatic checkpoint: checkpoint_wal_bytes = UINT64_MAX, interval 0),
 *   N collections of 128-d L2 points; transactions of --batch (1000)
 *   points, point id i in collection i mod N, so every transaction spans
 *   all N collections. --base-points new points, cairn_checkpoint() (the
 *   first checkpoint), a full pitr_backup right after it; then
 *   transactions (half new ids, half random existing ones) until --wal-mb
 *   of WAL lie after the checkpoint's redo LSN; cairn_close(); pitr_archive
 *   (every complete segment: the segment being written at the close is
 *   not archived, so the restore replays a little less than --wal-mb).
 *   Then, --repeat times, for each --jobs value: the repository's files
 *   are evicted from the page cache (fdatasync + posix_fadvise DONTNEED),
 *   pitr_restore --latest with that many replay workers into a new
 *   directory, and the restored database is opened and --verify points
 *   are compared byte for byte with what was committed (untimed).
 *   Reported from pitr_restore_result: pages_us, fetch_us, replay_us
 *   (which is: loading the base checkpoint, replaying, the checkpoint on
 *   the new timeline and its fsyncs), records and WAL bytes replayed (the
 *   last progress report of the replay phase), records/s and MB/s over
 *   replay_us (from the moment the pages are written: the WAL fetch runs
 *   ahead of the replay, overlapping it, so fetch_us, the fetchers' work
 *   summed over them, overlaps both); and,
 *   from the time of the replay's last progress report, "end": from it to
 *   the return of pitr_restore (the new timeline's checkpoint, the history
 *   put, the rename), "apply" being replay_us less end (load + replay).
 *
 * backup (item 3)
 *   A new database of --points points in one collection, checkpoint; its
 *   files are evicted from the page cache; a full pitr_backup into a new
 *   repository is timed (MB/s of the image's page bytes, and the process's
 *   CPU time over it); then the same page files are evicted again and read
 *   whole with O_DIRECT 1 MiB reads, 1 and 4 in flight (bench_util.c,
 *   disk_read_bw): the disk's sequential read bound on the very bytes the
 *   backup read. Then --change-frac (1%) of the points (distinct random
 *   ids) get new vectors and payloads, checkpoint, incremental backup. The
 *   reference for its size: the packs the incremental added (those of its
 *   manifest that the parent's lacks) are read back from the repository
 *   (SHA-256 checked), their pages (exactly the pages it stored: the count
 *   and bytes are checked against pages_new and bytes_new_raw) are
 *   concatenated and compressed as ONE zstd frame at the repository's
 *   level with the same byte-shuffle trial (common/codec.h codec_compress).
 *   Ratios: bytes_stored / reference, and (bytes_stored + the manifest) /
 *   reference.
 *
 * pg-cairn and pg-restore (item 2, the cairn side; bench/pitr_pg.sh gives
 *   the same rows to PostgreSQL and interleaves the restores of both):
 *   pg-cairn: in --work, one collection; rows 0..B-1 inserted, checkpoint,
 *   full backup; rows B..B+R-1 then B+R..B+R+T-1 inserted (SYNC,
 *   transactions of --batch rows); close; archive. The target time is the
 *   commit time of the last transaction of the first B+R rows.
 *   pg-restore (once per repetition): the repository evicted from the page
 *   cache, pitr_restore --target-time (inclusive) into a new directory,
 *   which must then hold exactly B + R points, --verify of them sampled
 *   and compared byte for byte, rows of the tail absent. Both print
 *   "key=value" lines for the script.
 *
 * Data: a pool of --pool points from --seed (bench_pool_make: N(0,1)
 * vectors, 64-byte JSON payloads). The w-th write of a run (row w in
 * pg-cairn and pg-rows) uses pool slot mix(seed, w) mod pool, so pg-rows
 * and pg-cairn give PostgreSQL and cairn the very same rows.
 */
#include "bench_util.h"
#include "cairn.h"
#include "common/codec.h"
#include "pitr/pitr.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define MIB (1u << 20)
#define PAGE_BYTES 8192u /* engine/pager.h PAGE_SIZE */
#define MAX_LIST 8
#define MAX_REPEAT 9
#define MAX_FILES 8192

/* ------------------------------------------------------------------ */
/* Options                                                             */
/* ------------------------------------------------------------------ */

static struct {
    const char *dir;
    uint64_t seed;
    unsigned pool;
    unsigned batch;
    int quick;
    /* replay */
    unsigned colls[MAX_LIST], ncolls;
    unsigned jobs[MAX_LIST], njobs;
    uint64_t base_points;
    double wal_mb;
    cairn_durability dur;
    unsigned repeat;
    unsigned verify;
    /* backup */
    uint64_t points;
    double change_frac;
    /* pg-cairn / pg-rows */
    uint64_t base_rows, rows, tail_rows, from, count;
    int64_t target_us;
    unsigned pg_jobs;
    const char *work;
    /* all */
    double quiet;
    int keep;
    const char *command;
} opt = {
    .seed = BENCH_DEFAULT_SEED,
    .pool = 65536,
    .batch = 1000,
    .colls = {1, 2, 4},
    .ncolls = 3,
    .jobs = {1, 2, 3, 4},
    .njobs = 4,
    .base_points = 100000,
    .wal_mb = 256,
    .dur = CAIRN_DURABILITY_NONE,
    .repeat = 3,
    .verify = 2000,
    .points = 1000000,
    .change_frac = 0.01,
    .tail_rows = 40000,
};

static void usage(FILE *f) {
    fprintf(f,
"usage: cairn_bench_pitr [replay] [backup] [options]\n"
"       cairn_bench_pitr pg-cairn --work DIR --base-rows B --rows R --tail-rows T\n"
"       cairn_bench_pitr pg-restore --work DIR --target-us T --base-rows B --rows R\n"
"                                   --tail-rows T [--pg-jobs N --verify N]\n"
"       cairn_bench_pitr pg-rows --from A --count N [--batch N --seed N --pool N]\n"
"       cairn_bench_pitr drop-cache PATH...\n"
"       cairn_bench_pitr wait-quiet [P]   wait (<= 10 s) until others use <= P %% CPU\n"
"common options:\n"
"  --dir PATH          parent of the run directory (default $TMPDIR, else\n"
"                      /var/tmp); must not be tmpfs\n"
"  --seed N            data seed (default 0x636169726e)\n"
"  --pool N            points in the data pool (default 65536)\n"
"  --batch N           points per transaction (default 1000)\n"
"  --quick             small sizes: base 20000, wal 32 MiB, points 100000,\n"
"                      repeat 1, verify 500\n"
"  --quiet P           before each measured step, wait (<= 10 s) until other\n"
"                      processes use <= P %% of the CPUs (default 0: off)\n"
"  --keep              keep the run directory\n"
"  --command STR       command line printed at the top (wrapper scripts)\n"
"replay:\n"
"  --collections LIST  collection counts (default 1,2,4)\n"
"  --jobs LIST         replay workers per restore (default 1,2,3,4)\n"
"  --base-points N     points before the first checkpoint (default 100000)\n"
"  --wal-mb M          WAL (MiB) after it (default 256)\n"
"  --durability D      sync or none while building (default none)\n"
"  --repeat N          restores per (collections, jobs), interleaved (3)\n"
"  --verify N          points checked after each restore (default 2000)\n"
"backup:\n"
"  --points N          points in the database (default 1000000)\n"
"  --change-frac F     share of points changed before the incremental (0.01)\n"
"pg-cairn (build, back up, write, archive; prints key=value lines) and\n"
"pg-restore (one restore to --target-us, verified; key=value lines):\n"
"  --work DIR          their directory (DIR/db, DIR/repo; pg-cairn creates it)\n"
"  --base-rows B --rows R --tail-rows T   rows before the backup, up to the\n"
"                      target, after it (T default 40000)\n"
"  --target-us T       restore target: a commit time, microseconds (inclusive)\n"
"  --pg-jobs N         replay workers of the restore (default 0: CPUs)\n");
}

static int parse_list(const char *arg, unsigned *out, unsigned *n, unsigned lo,
                      unsigned hi) {
    char *copy = strdup(arg), *save = NULL;
    *n = 0;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        unsigned v;
        if (*n == MAX_LIST || parse_uint(t, lo, hi, &v)) {
            free(copy);
            return -1;
        }
        out[(*n)++] = v;
    }
    free(copy);
    return *n ? 0 : -1;
}

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

static float *pool_vec;
static char *pool_payload;

static uint64_t mix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* Pool slot of the w-th write (row w). */
static uint32_t slot_of_write(uint64_t w) {
    return (uint32_t)(mix64(opt.seed ^ mix64(w)) % opt.pool);
}

static const float *vec_of(uint32_t s) { return pool_vec + (size_t)s * BENCH_DIM; }
static const char *payload_of(uint32_t s) {
    return pool_payload + (size_t)s * BENCH_PAYLOAD_BYTES;
}

static double now_s(void) { return (double)mono_ns() / 1e9; }

static int cfail(cairn_status s, const char *what) {
    const char *d = cairn_last_error();
    fprintf(stderr, "cairn_bench_pitr: %s: %s (%s)%s%s\n", what, cairn_strerror(s),
            cairn_status_name(s), d[0] ? ": " : "", d);
    return -1;
}

static void wait_quiet(void) {
    if (opt.quiet > 0)
        (void)cpu_wait_quiet(opt.quiet, 10.0);
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

static double cpu_self_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static double median_d(const double *in, unsigned n) {
    double v[64];
    if (!n)
        return 0;
    if (n > 64)
        n = 64;
    memcpy(v, in, n * sizeof *v);
    for (unsigned i = 1; i < n; i++)
        for (unsigned j = i; j > 0 && v[j] < v[j - 1]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static char *path2(const char *a, const char *b) {
    char *p = NULL;
    if (asprintf(&p, "%s/%s", a, b) < 0) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

/* ---- files of a tree: size, page cache ------------------------------ */

struct tree_acc {
    uint64_t bytes, resident;
    int evict;
    unsigned files;
};
static struct tree_acc *tree_cur;

static uint64_t resident_of(int fd, uint64_t size) {
    if (!size)
        return 0;
    void *m = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED)
        return 0;
    long pg = sysconf(_SC_PAGESIZE);
    size_t npg = (size + (uint64_t)pg - 1) / (uint64_t)pg;
    unsigned char *v = malloc(npg);
    uint64_t res = 0;
    if (v && mincore(m, size, v) == 0)
        for (size_t k = 0; k < npg; k++)
            if (v[k] & 1)
                res += (uint64_t)pg;
    free(v);
    munmap(m, size);
    return res;
}

static int tree_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)ftw;
    if (flag != FTW_F || !S_ISREG(sb->st_mode))
        return 0;
    tree_cur->bytes += (uint64_t)sb->st_size;
    tree_cur->files++;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    if (tree_cur->evict) {
        /* dirty pages are not dropped: write them first */
        (void)fdatasync(fd);
        (void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    }
    tree_cur->resident += resident_of(fd, (uint64_t)sb->st_size);
    close(fd);
    return 0;
}

/* Bytes of the regular files under path; with evict, each is fdatasync'd
 * and dropped from the page cache first. *resident: what stays cached. */
static uint64_t tree_scan(const char *path, int evict, uint64_t *resident) {
    struct tree_acc acc = {.evict = evict};
    tree_cur = &acc;
    nftw(path, tree_entry, 32, FTW_PHYS);
    if (resident)
        *resident = acc.resident;
    return acc.bytes;
}

/* Files whose name ends in suffix, directly in dir. */
static size_t files_with(const char *dir, const char *suffix, char **out, size_t max) {
    DIR *d = opendir(dir);
    size_t n = 0;
    if (!d)
        return 0;
    struct dirent *e;
    size_t sl = strlen(suffix);
    while ((e = readdir(d)) && n < max) {
        size_t l = strlen(e->d_name);
        if (l > sl && !strcmp(e->d_name + l - sl, suffix))
            out[n++] = path2(dir, e->d_name);
    }
    closedir(d);
    return n;
}

static uint64_t file_size(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 ? (uint64_t)sb.st_size : 0;
}

/* ------------------------------------------------------------------ */
/* Writing: transactions of --batch points                            */
/* ------------------------------------------------------------------ */

struct writer {
    cairn_db *db;
    unsigned ncoll;
    char name[MAX_LIST][16];
    uint64_t next_id;        /* ids 0..next_id-1 exist */
    uint64_t writes;         /* w of the next write */
    uint32_t *slot;          /* per id: pool slot of its last write */
    uint64_t *txn;           /* per id: transaction of its last write */
    uint64_t cap;
    uint64_t rng;
    uint64_t *ids;           /* of the batch in progress */
    uint64_t commits;
    cairn_commit_info last;  /* of the last commit */
};

static int writer_init(struct writer *w, cairn_db *db, unsigned ncoll, uint64_t cap) {
    memset(w, 0, sizeof *w);
    w->db = db;
    w->ncoll = ncoll;
    w->cap = cap;
    w->rng = opt.seed ^ 0x77726974ull;
    w->slot = malloc(cap * sizeof *w->slot);
    w->txn = calloc(cap, sizeof *w->txn);
    w->ids = malloc(opt.batch * sizeof *w->ids);
    if (!w->slot || !w->txn || !w->ids) {
        fprintf(stderr, "out of memory (%" PRIu64 " ids)\n", cap);
        return -1;
    }
    for (unsigned c = 0; c < ncoll; c++) {
        snprintf(w->name[c], sizeof w->name[c], "c%u", c);
        cairn_status s = cairn_collection_create(db, w->name[c], BENCH_DIM, CAIRN_METRIC_L2);
        if (s && s != CAIRN_EEXIST)
            return cfail(s, "cairn_collection_create");
    }
    return 0;
}

static void writer_free(struct writer *w) {
    free(w->slot);
    free(w->txn);
    free(w->ids);
}

/* One transaction of n points: each a new id with probability new_frac,
 * else a random existing id (or the ids given in `fixed`). */
static int writer_commit(struct writer *w, unsigned n, double new_frac, const uint64_t *fixed) {
    cairn_txn *t = NULL;
    cairn_status s = cairn_txn_begin(w->db, &t);
    if (s)
        return cfail(s, "cairn_txn_begin");
    uint32_t slots[n];
    for (unsigned i = 0; i < n; i++) {
        uint64_t id;
        if (fixed)
            id = fixed[i];
        else if (!w->next_id || unit_open(&w->rng) <= new_frac)
            id = w->next_id++;
        else
            id = splitmix64(&w->rng) % w->next_id;
        if (id >= w->cap) {
            cairn_txn_free(t);
            fprintf(stderr, "cairn_bench_pitr: more ids than planned (%" PRIu64 ")\n", w->cap);
            return -1;
        }
        uint32_t sl = slot_of_write(w->writes++);
        w->ids[i] = id;
        slots[i] = sl;
        s = cairn_txn_upsert(t, w->name[id % w->ncoll], id, vec_of(sl), BENCH_DIM,
                             payload_of(sl), BENCH_PAYLOAD_BYTES);
        if (s) {
            cairn_txn_free(t);
            return cfail(s, "cairn_txn_upsert");
        }
    }
    s = cairn_txn_commit(t, &w->last);
    cairn_txn_free(t);
    if (s)
        return cfail(s, "cairn_txn_commit");
    for (unsigned i = 0; i < n; i++) {
        w->slot[w->ids[i]] = slots[i];
        w->txn[w->ids[i]] = w->last.txn_id;
    }
    w->commits++;
    return 0;
}

static uint64_t db_last_lsn(cairn_db *db) {
    cairn_stats st;
    return cairn_stats_get(db, &st) == CAIRN_OK ? st.last_lsn : 0;
}

static void db_options(cairn_options *o, cairn_durability d) {
    cairn_options_init(o);
    o->durability = d;
    /* checkpoints only when asked: the WAL after the backup's checkpoint
     * stays whole until it is archived */
    o->checkpoint_wal_bytes = UINT64_MAX;
    o->checkpoint_interval_s = 0;
}

/* Opens the restored database and compares up to n points (ids sampled
 * from the writer) with what was committed up to last_txn: every id whose
 * last write is at or before it must hold exactly that write; ids created
 * after the cut must be absent. Returns mismatches, or -1. */
static long verify_restored(const char *dbdir, const struct writer *w, uint64_t last_txn,
                            unsigned n, uint64_t *checked, uint64_t *points) {
    cairn_options o;
    db_options(&o, CAIRN_DURABILITY_SYNC);
    o.create_if_missing = 0;
    cairn_db *db = NULL;
    cairn_status s = cairn_open(dbdir, &o, &db);
    if (s)
        return cfail(s, "cairn_open of the restored database");
    long bad = 0;
    *checked = 0;
    *points = 0;
    for (unsigned c = 0; c < w->ncoll; c++) {
        cairn_collection_info ci;
        s = cairn_collection_stat(db, w->name[c], &ci);
        if (s) {
            cairn_close(db);
            return cfail(s, "cairn_collection_stat");
        }
        *points += ci.points;
    }
    uint64_t rng = opt.seed ^ 0x766572ull;
    float v[BENCH_DIM];
    for (unsigned k = 0; k < n && w->next_id; k++) {
        uint64_t id = splitmix64(&rng) % w->next_id;
        char *pl = NULL;
        s = cairn_get(db, w->name[id % w->ncoll], id, v, BENCH_DIM, &pl);
        if (w->txn[id] <= last_txn) {
            uint32_t sl = w->slot[id];
            if (s || memcmp(v, vec_of(sl), BENCH_VEC_BYTES) != 0 || !pl ||
                strlen(pl) != BENCH_PAYLOAD_BYTES ||
                memcmp(pl, payload_of(sl), BENCH_PAYLOAD_BYTES) != 0) {
                if (!bad)
                    fprintf(stderr, "verify: id %" PRIu64 " differs (status %s)\n", id,
                            cairn_status_name(s));
                bad++;
            }
            (*checked)++;
        }
        cairn_free(pl);
    }
    s = cairn_close(db);
    if (s)
        return cfail(s, "cairn_close of the restored database");
    return bad;
}

/* ---- restore with timed phases ------------------------------------- */

/* The replay's last progress report: records and WAL bytes replayed. */
struct rcount {
    uint64_t records, wal_bytes;
};

static void restore_progress(void *ctx, int phase, uint64_t done, uint64_t total, uint64_t lsn,
                             int64_t time_us) {
    (void)lsn;
    (void)time_us;
    struct rcount *t = ctx;
    if (phase == 2) {
        t->records = done;
        t->wal_bytes = total;
    }
}

struct rrow {
    int ok;
    struct pitr_restore_result res;
    double wall_s;
    uint64_t records, wal_bytes;
    uint64_t repo_resident;
    double cpu_s;
    double other, steal;
    long bad;
    uint64_t checked, points;
};

static int do_restore(repo *r, const char *target, const struct pitr_restore_opts *base,
                      const char *repodir, struct rrow *row) {
    memset(row, 0, sizeof *row);
    rm_tree(target);
    (void)tree_scan(repodir, 1, &row->repo_resident);
    wait_quiet();
    struct pitr_restore_opts o = *base;
    struct rcount tm = {0};
    o.progress = restore_progress;
    o.progress_ctx = &tm;
    struct cpu_sample a, b;
    cpu_sample(&a);
    double c0 = cpu_self_s();
    double t0 = now_s();
    cairn_status s = pitr_restore(r, target, &o, &row->res);
    double t1 = now_s();
    row->cpu_s = cpu_self_s() - c0;
    cpu_sample(&b);
    cpu_noise(&a, &b, &row->other, &row->steal);
    if (s) {
        pitr_plan_free(&row->res.plan);
        return cfail(s, "pitr_restore");
    }
    pitr_plan_free(&row->res.plan);
    row->wall_s = t1 - t0;
    row->records = tm.records ? tm.records : row->res.records;
    row->wal_bytes = tm.wal_bytes;
    row->ok = 1;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Report header                                                       */
/* ------------------------------------------------------------------ */

static char load0[64], invocation[4096], run_dir[4096];

static void header(const char *title) {
    struct utsname un;
    uname(&un);
    char cpu[256], date[64];
    cpu_model(cpu, sizeof cpu);
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    struct statfs sf;
    const char *fs = statfs(run_dir, &sf) == 0 ? fs_name((long)sf.f_type) : "?";
    printf("## %s\n\n", title);
    if (opt.command)
        printf("Command: `%s`\n\n(runs `%s`)\n\n", opt.command, invocation);
    else
        printf("Command: `%s`\n\n", invocation);
    printf("- %s, %ld CPUs, kernel %s; run directory on %s (%s); %s; cairn %s\n", cpu,
           sysconf(_SC_NPROCESSORS_ONLN), un.release, fs, run_dir, date, cairn_version());
    printf("- seed=0x%llx pool=%u batch=%u quiet=%.0f%%; load average %s at start\n",
           (unsigned long long)opt.seed, opt.pool, opt.batch, opt.quiet, load0);
    printf("- point = 128 x float32 + 64 B JSON payload; MB = 10^6 B, MiB = 2^20 B; "
           "page = %u B\n\n", PAGE_BYTES);
}

/* ------------------------------------------------------------------ */
/* Part 1: replay throughput                                           */
/* ------------------------------------------------------------------ */

struct rcfg {
    unsigned ncoll;
    uint64_t base_points, points, txns, wal_lsn_bytes;
    double build_s, wal_s;
    struct pitr_backup_result bk;
    struct pitr_archive_result ar;
    double archive_s;
    struct rrow rows[MAX_LIST][MAX_REPEAT];
};

static int replay_one(struct rcfg *cf) {
    char name[64];
    snprintf(name, sizeof name, "replay-c%u", cf->ncoll);
    char *root = path2(run_dir, name);
    char *dbdir = path2(root, "db"), *repodir = path2(root, "repo");
    int rc = -1;
    rm_tree(root);
    mkdir(root, 0755);
    cairn_options o;
    db_options(&o, opt.dur);
    cairn_db *db = NULL;
    repo *r = NULL;
    struct writer w;
    memset(&w, 0, sizeof w);
    uint64_t cap = opt.base_points + (uint64_t)((opt.wal_mb + 32) * MIB / 600.0) + 2 * opt.batch;
    cairn_status s = cairn_open(dbdir, &o, &db);
    if (s) {
        cfail(s, "cairn_open");
        goto out;
    }
    if (writer_init(&w, db, cf->ncoll, cap))
        goto out;
    fprintf(stderr, "replay, %u collection(s): building\n", cf->ncoll);
    double t0 = now_s();
    while (w.next_id < opt.base_points) {
        uint64_t left = opt.base_points - w.next_id;
        if (writer_commit(&w, left < opt.batch ? (unsigned)left : opt.batch, 1.0, NULL))
            goto out;
    }
    cairn_checkpoint_info ck;
    s = cairn_checkpoint(db, &ck);
    if (s) {
        cfail(s, "cairn_checkpoint");
        goto out;
    }
    cf->build_s = now_s() - t0;
    cf->base_points = w.next_id;
    struct repo_open_opts ro = {.create = true};
    s = repo_open(repodir, &ro, &r);
    if (!s) {
        struct pitr_backup_opts bo = {0};
        s = pitr_backup(dbdir, r, &bo, &cf->bk);
    }
    if (s) {
        cfail(s, "full backup");
        goto out;
    }
    /* until --wal-mb lie after the redo LSN in complete segments: the
     * segment being written at the close is not archived */
    uint64_t want = (uint64_t)(opt.wal_mb * MIB), seg = o.wal_segment_size;
    uint64_t c0 = w.commits;
    t0 = now_s();
    for (;;) {
        uint64_t end = db_last_lsn(db);
        if (end / seg * seg >= ck.redo_lsn + want)
            break;
        if (writer_commit(&w, opt.batch, 0.5, NULL))
            goto out;
    }
    cf->wal_s = now_s() - t0;
    cf->wal_lsn_bytes = db_last_lsn(db) - ck.redo_lsn;
    cf->points = w.next_id;
    cf->txns = w.commits - c0;
    s = cairn_close(db);
    db = NULL;
    if (s) {
        cfail(s, "cairn_close");
        goto out;
    }
    t0 = now_s();
    s = pitr_archive(dbdir, r, 0, &cf->ar);
    cf->archive_s = now_s() - t0;
    if (s) {
        cfail(s, "pitr_archive");
        goto out;
    }
    /* the restores, interleaved by jobs within each repetition */
    for (unsigned rep = 0; rep < opt.repeat; rep++)
        for (unsigned j = 0; j < opt.njobs; j++) {
            char tn[64];
            snprintf(tn, sizeof tn, "restore-j%u", opt.jobs[j]);
            char *target = path2(root, tn);
            /* the backup's timeline, named: each restore publishes the
             * history of a new timeline, and every repetition must replay
             * the same path */
            struct pitr_restore_opts po = {.kind = PITR_TARGET_LATEST, .jobs = opt.jobs[j],
                                           .timeline = cf->bk.timeline};
            struct rrow *row = &cf->rows[j][rep];
            fprintf(stderr, "replay, %u collection(s): restore --jobs %u (%u/%u)\n",
                    cf->ncoll, opt.jobs[j], rep + 1, opt.repeat);
            if (do_restore(r, target, &po, repodir, row)) {
                free(target);
                goto out;
            }
            row->bad = verify_restored(target, &w, row->res.last_txn_id, opt.verify,
                                       &row->checked, &row->points);
            if (row->bad || row->points != row->res.points) {
                fprintf(stderr, "restore --jobs %u: %ld mismatching points, %" PRIu64
                        " points found, the restore reported %" PRIu64 "\n",
                        opt.jobs[j], row->bad, row->points, row->res.points);
                free(target);
                goto out;
            }
            if (!opt.keep)
                rm_tree(target);
            free(target);
        }
    rc = 0;
out:
    if (db)
        cairn_close(db);
    repo_close(r);
    writer_free(&w);
    if (!opt.keep)
        rm_tree(root);
    free(root);
    free(dbdir);
    free(repodir);
    return rc;
}

static void fmt_s(char *b, size_t n, double v) { snprintf(b, n, "%.2f", v); }

static int part_replay(void) {
    struct rcfg *cfg = calloc(opt.ncolls, sizeof *cfg);
    if (!cfg)
        return -1;
    int rc = 0;
    for (unsigned c = 0; c < opt.ncolls && !rc; c++) {
        cfg[c].ncoll = opt.colls[c];
        rc = replay_one(&cfg[c]);
    }
    if (rc) {
        free(cfg);
        return rc;
    }
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    printf("### Replay throughput of a restore (pitr_restore --latest)\n\n");
    printf("This machine has %ld CPUs: a restore with more than %ld replay workers shares "
           "them with the WAL reader and the other workers, so no gain past %ld jobs is "
           "expected here.\n\n", ncpu, ncpu, ncpu);
    printf("| collections | base points | WAL after checkpoint | build s | WAL gen s | "
           "full backup s | archive s (MB in -> stored) |\n|---:|---:|---:|---:|---:|---:|---|\n");
    for (unsigned c = 0; c < opt.ncolls; c++) {
        struct rcfg *f = &cfg[c];
        printf("| %u | %" PRIu64 " | %.1f MiB, %" PRIu64 " txns, %" PRIu64 " points in all | "
               "%.2f | %.2f | %.2f (%" PRIu64 " pages, %.1f MB stored) | %.2f (%.1f -> %.1f, "
               "%u segments) |\n",
               f->ncoll, f->base_points, (double)f->wal_lsn_bytes / MIB, f->txns, f->points,
               f->build_s, f->wal_s, (double)f->bk.duration_us / 1e6, f->bk.pages,
               (double)f->bk.bytes_stored / 1e6, f->archive_s, (double)f->ar.bytes_in / 1e6,
               (double)f->ar.bytes_stored / 1e6, f->ar.archived);
    }
    printf("\nMedian of %u restores per row (interleaved by jobs); records and WAL bytes are "
           "the replay's own count (the segment being written at the close is not archived). "
           "replay = pitr_restore_result.replay_us, from the moment the pages are written "
           "(the WAL fetch runs ahead of it, overlapping pages and replay), split into load "
           "(load_us: the base's pages into memory), redo (redo_us: the first record to the "
           "last, waits for WAL not fetched yet included) and the new timeline's checkpoint "
           "(the rest). Rates over redo, and over the whole replay in parentheses.\n\n",
           opt.repeat);
    printf("| collections | jobs | records | WAL MB | pages s | fetch s | replay s | load s | "
           "redo s | new timeline s | total s | records/s | WAL MB/s | CPU s | other CPU |\n"
           "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (unsigned c = 0; c < opt.ncolls; c++)
        for (unsigned j = 0; j < opt.njobs; j++) {
            struct rrow *rw = cfg[c].rows[j];
            double pg[MAX_REPEAT], fe[MAX_REPEAT], rp[MAX_REPEAT], ld[MAX_REPEAT],
                rd[MAX_REPEAT], nt[MAX_REPEAT], to[MAX_REPEAT], cpu[MAX_REPEAT],
                oth[MAX_REPEAT], st[MAX_REPEAT];
            for (unsigned k = 0; k < opt.repeat; k++) {
                pg[k] = (double)rw[k].res.pages_us / 1e6;
                fe[k] = (double)rw[k].res.fetch_us / 1e6;
                rp[k] = (double)rw[k].res.replay_us / 1e6;
                ld[k] = (double)rw[k].res.load_us / 1e6;
                rd[k] = (double)rw[k].res.redo_us / 1e6;
                nt[k] = (double)(rw[k].res.replay_us - rw[k].res.load_us - rw[k].res.redo_us) /
                        1e6;
                to[k] = (double)rw[k].res.duration_us / 1e6;
                cpu[k] = rw[k].cpu_s;
                oth[k] = rw[k].other;
                st[k] = rw[k].steal;
            }
            double mrp = median_d(rp, opt.repeat), mrd = median_d(rd, opt.repeat);
            double recs = (double)rw[0].records, wb = (double)rw[0].wal_bytes / 1e6;
            char noise[32];
            fmt_noise(noise, sizeof noise, median_d(oth, opt.repeat), median_d(st, opt.repeat));
            char b1[16], b2[16], b3[16], b4[16], b5[16], b6[16], b7[16];
            fmt_s(b1, sizeof b1, median_d(pg, opt.repeat));
            fmt_s(b2, sizeof b2, median_d(fe, opt.repeat));
            fmt_s(b3, sizeof b3, mrp);
            fmt_s(b4, sizeof b4, median_d(ld, opt.repeat));
            fmt_s(b5, sizeof b5, mrd);
            fmt_s(b6, sizeof b6, median_d(nt, opt.repeat));
            fmt_s(b7, sizeof b7, median_d(to, opt.repeat));
            printf("| %u | %u | %" PRIu64 " | %.1f | %s | %s | %s | %s | %s | %s | %s | "
                   "%.0f (%.0f) | %.0f (%.0f) | %.2f | %s |\n",
                   cfg[c].ncoll, opt.jobs[j], rw[0].records, wb, b1, b2, b3, b4, b5, b6, b7,
                   mrd > 0 ? recs / mrd : 0, recs / mrp, mrd > 0 ? wb / mrd : 0, wb / mrp,
                   median_d(cpu, opt.repeat), noise);
        }
    printf("\nEvery restore was opened afterwards and %u sampled points compared byte for "
           "byte with what was committed up to its last transaction (all equal), and its "
           "point count with the restore's own.\n\n", opt.verify);
    free(cfg);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Part 3: full backup vs the disk, incremental size                  */
/* ------------------------------------------------------------------ */

static bool sha_in(const uint8_t (*list)[CODEC_SHA256_LEN], size_t n, const uint8_t *sha) {
    for (size_t i = 0; i < n; i++)
        if (!memcmp(list[i], sha, CODEC_SHA256_LEN))
            return true;
    return false;
}

struct incr_ref {
    uint64_t packs, pages, raw, packs_stored, ref_bytes, manifest;
    uint64_t per_page; /* each page compressed alone, summed */
    bool shuffled;
    double ref_s;
};

/* The reference for an incremental's size (see the top of the file). */
static int incr_reference(repo *r, const char *repodir, const struct pitr_backup_result *inc,
                          struct incr_ref *out) {
    memset(out, 0, sizeof *out);
    struct pitr_manifest mi, mp;
    cairn_status s = pitr_manifest_load(r, inc->id, &mi);
    if (s)
        return cfail(s, "loading the incremental's manifest");
    s = pitr_manifest_load(r, inc->parent, &mp);
    if (s) {
        pitr_manifest_free(&mi);
        return cfail(s, "loading the parent's manifest");
    }
    uint8_t *all = malloc(inc->bytes_new_raw ? inc->bytes_new_raw : 1);
    int rc = all ? 0 : -1;
    for (size_t i = 0; !rc && i < mi.npacks; i++) {
        if (sha_in((const uint8_t (*)[CODEC_SHA256_LEN])mp.packs, mp.npacks, mi.packs[i]))
            continue;
        uint8_t *data = NULL;
        size_t len = 0;
        s = repo_blob_get(r, mi.packs[i], &data, &len);
        if (s) {
            rc = cfail(s, "reading a pack of the incremental");
            break;
        }
        if (out->raw + len > inc->bytes_new_raw || len % PAGE_BYTES) {
            fprintf(stderr, "incremental: its new packs hold more than bytes_new_raw (%" PRIu64
                    ") or not whole pages\n", inc->bytes_new_raw);
            free(data);
            rc = -1;
            break;
        }
        memcpy(all + out->raw, data, len);
        free(data);
        out->raw += len;
        out->packs++;
        char bn[128];
        repo_blob_name(mi.packs[i], bn, sizeof bn);
        char *bp = path2(repodir, bn);
        out->packs_stored += file_size(bp);
        free(bp);
    }
    out->pages = out->raw / PAGE_BYTES;
    if (!rc && (out->pages != inc->pages_new || out->raw != inc->bytes_new_raw)) {
        fprintf(stderr, "incremental: %" PRIu64 " pages in its new packs, pages_new says %" PRIu64
                "\n", out->pages, inc->pages_new);
        rc = -1;
    }
    if (!rc) {
        uint8_t *z = NULL;
        size_t zl = 0;
        double t0 = now_s();
        s = codec_compress(all, out->raw, r->level, true, &z, &zl, &out->shuffled,
                           "reference frame");
        out->ref_s = now_s() - t0;
        if (s)
            rc = cfail(s, "codec_compress");
        out->ref_bytes = zl;
        free(z);
        for (uint64_t p = 0; !rc && p < out->pages; p++) {
            bool sh;
            s = codec_compress(all + p * PAGE_BYTES, PAGE_BYTES, r->level, true, &z, &zl, &sh,
                               "one page");
            if (s)
                rc = cfail(s, "codec_compress");
            else
                out->per_page += zl;
            free(z);
        }
    }
    char mn[256];
    snprintf(mn, sizeof mn, "%s/backups/%s/manifest", repodir, inc->id);
    out->manifest = file_size(mn);
    free(all);
    pitr_manifest_free(&mi);
    pitr_manifest_free(&mp);
    return rc;
}

static int part_backup(void) {
    char *root = path2(run_dir, "backup");
    char *dbdir = path2(root, "db"), *repodir = path2(root, "repo");
    char *colldir = path2(dbdir, "collections");
    rm_tree(root);
    mkdir(root, 0755);
    int rc = -1;
    cairn_options o;
    db_options(&o, CAIRN_DURABILITY_NONE);
    cairn_db *db = NULL;
    repo *r = NULL;
    struct writer w;
    memset(&w, 0, sizeof w);
    char *files[MAX_FILES];
    size_t nfiles = 0;
    struct pitr_backup_result full, inc;
    struct incr_ref ref;
    double full_s = 0, full_cpu = 0, inc_s = 0, qd[2] = {0, 0}, build_s, change_s;
    double full_other = -1, full_steal = -1;
    uint64_t resident_before = 0, resident_disk = 0, disk_bytes = 0, page_file_bytes = 0;
    uint64_t repo_before = 0, repo_after = 0, nchange = 0;
    cairn_checkpoint_info ck1, ck2;
    cairn_status s = cairn_open(dbdir, &o, &db);
    if (s) {
        cfail(s, "cairn_open");
        goto out;
    }
    if (writer_init(&w, db, 1, opt.points + opt.batch))
        goto out;
    fprintf(stderr, "backup: building %" PRIu64 " points\n", opt.points);
    double t0 = now_s();
    while (w.next_id < opt.points) {
        uint64_t left = opt.points - w.next_id;
        if (writer_commit(&w, left < opt.batch ? (unsigned)left : opt.batch, 1.0, NULL))
            goto out;
    }
    s = cairn_checkpoint(db, &ck1);
    if (s) {
        cfail(s, "cairn_checkpoint");
        goto out;
    }
    build_s = now_s() - t0;
    struct repo_open_opts ro = {.create = true};
    s = repo_open(repodir, &ro, &r);
    if (s) {
        cfail(s, "repo_open");
        goto out;
    }
    /* cold: the database's files out of the page cache */
    (void)tree_scan(dbdir, 1, &resident_before);
    wait_quiet();
    fprintf(stderr, "backup: full backup\n");
    struct cpu_sample a, b;
    cpu_sample(&a);
    double c0 = cpu_self_s();
    t0 = now_s();
    struct pitr_backup_opts bo = {0};
    s = pitr_backup(dbdir, r, &bo, &full);
    full_s = now_s() - t0;
    full_cpu = cpu_self_s() - c0;
    cpu_sample(&b);
    cpu_noise(&a, &b, &full_other, &full_steal);
    if (s) {
        cfail(s, "full backup");
        goto out;
    }
    /* the disk on the same bytes: the page files the backup read */
    char *catp = path2(dbdir, "catalog.pages");
    files[nfiles++] = catp;
    nfiles += files_with(colldir, ".pages", files + nfiles, MAX_FILES - nfiles);
    for (size_t i = 0; i < nfiles; i++)
        page_file_bytes += file_size(files[i]);
    char err[1024];
    for (int k = 0; k < 2; k++) {
        (void)tree_scan(dbdir, 1, &resident_disk);
        wait_quiet();
        qd[k] = disk_read_bw((const char *const *)files, nfiles, k ? 4 : 1, &disk_bytes, err,
                             sizeof err);
        if (qd[k] < 0) {
            fprintf(stderr, "disk read bound: %s\n", err);
            goto out;
        }
    }
    /* change --change-frac of the points (distinct random ids) */
    nchange = (uint64_t)((double)opt.points * opt.change_frac + 0.5);
    uint64_t *perm = malloc(opt.points * sizeof *perm);
    if (!perm)
        goto out;
    for (uint64_t i = 0; i < opt.points; i++)
        perm[i] = i;
    uint64_t rng = opt.seed ^ 0x636867ull;
    for (uint64_t i = 0; i < nchange; i++) {
        uint64_t j = i + splitmix64(&rng) % (opt.points - i);
        uint64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    t0 = now_s();
    for (uint64_t i = 0; i < nchange; i += opt.batch) {
        uint64_t n = nchange - i < opt.batch ? nchange - i : opt.batch;
        if (writer_commit(&w, (unsigned)n, 0, perm + i)) {
            free(perm);
            goto out;
        }
    }
    free(perm);
    s = cairn_checkpoint(db, &ck2);
    change_s = now_s() - t0;
    if (s) {
        cfail(s, "cairn_checkpoint");
        goto out;
    }
    repo_before = tree_scan(repodir, 0, NULL);
    (void)tree_scan(dbdir, 1, NULL);
    wait_quiet();
    fprintf(stderr, "backup: incremental backup\n");
    t0 = now_s();
    bo.incremental = true;
    s = pitr_backup(dbdir, r, &bo, &inc);
    inc_s = now_s() - t0;
    if (s) {
        cfail(s, "incremental backup");
        goto out;
    }
    repo_after = tree_scan(repodir, 0, NULL);
    if (incr_reference(r, repodir, &inc, &ref))
        goto out;

    double mbs = (double)full.bytes_raw / 1e6 / full_s;
    char noise[32];
    fmt_noise(noise, sizeof noise, full_other, full_steal);
    printf("### Full backup throughput against the disk\n\n");
    printf("A database of %" PRIu64 " points in one collection (built in %.1f s, SYNC off), "
           "checkpoint %" PRIu64 ". Before the backup its files were fdatasync'd and dropped "
           "from the page cache with posix_fadvise(DONTNEED) (%.1f MB stayed resident). The "
           "disk bound reads the same page files (%.1f MB, catalog + collection files, "
           "free pages included) with O_DIRECT 1 MiB reads, cache dropped again first. "
           "(/proc/sys/vm/drop_caches is writable here as root, but it empties the cache of "
           "every session on the machine; O_DIRECT needs no dropped cache.)\n\n",
           opt.points, build_s, ck1.generation, (double)resident_before / 1e6,
           (double)page_file_bytes / 1e6);
    printf("| what | pages | MB read | MB stored | seconds | MB/s | CPU s | vs disk qd1 | "
           "vs disk qd4 | other CPU |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    printf("| full backup | %" PRIu64 " | %.1f | %.1f (%.3fx) | %.2f | %.0f | %.2f | %.2fx | "
           "%.2fx | %s |\n",
           full.pages, (double)full.bytes_raw / 1e6, (double)full.bytes_stored / 1e6,
           (double)full.bytes_raw / (double)full.bytes_stored, full_s, mbs, full_cpu,
           mbs / (qd[0] / 1e6), mbs / (qd[1] / 1e6), noise);
    printf("| disk, O_DIRECT 1 MiB, 1 in flight | - | %.1f | - | %.2f | %.0f | - | - | - | - |\n",
           (double)disk_bytes / 1e6, (double)disk_bytes / qd[0], qd[0] / 1e6);
    printf("| disk, O_DIRECT 1 MiB, 4 in flight | - | %.1f | - | %.2f | %.0f | - | - | - | - |\n",
           (double)disk_bytes / 1e6, (double)disk_bytes / qd[1], qd[1] / 1e6);
    double zrate = ref.ref_s > 0 ? (double)ref.raw / ref.ref_s : 0;
    printf("\nThe backup ran on %.2f s of CPU in %.2f s (%.0f%% of one core): reading and "
           "verifying each page, SHA-256 of each pack, zstd level %d of each pack twice (plain "
           "and byte-shuffled, the smaller kept), the write and fsync of each blob. "
           "codec_compress with the shuffle trial, timed on the incremental's reference "
           "below (%.1f MB in one call), runs at %.0f MB/s here: at that rate the full "
           "backup's %.1f MB take %.2f s of compression alone.\n\n",
           full_cpu, full_s, 100 * full_cpu / full_s, r->level, (double)ref.raw / 1e6,
           zrate / 1e6, (double)full.bytes_raw / 1e6,
           zrate > 0 ? (double)full.bytes_raw / zrate : 0);

    double ratio = (double)inc.bytes_stored / (double)ref.ref_bytes;
    double ratio_m = (double)(inc.bytes_stored + ref.manifest) / (double)ref.ref_bytes;
    printf("### Incremental backup after changing %.1f%% of the points\n\n",
           100 * opt.change_frac);
    printf("%" PRIu64 " distinct random ids got new vectors and payloads (%.2f s with the "
           "checkpoint, %" PRIu64 " pages written by checkpoint %" PRIu64 "), then "
           "`pitr_backup --incremental` (parent: the full backup above) took %.2f s.\n\n",
           nchange, change_s, ck2.pages_written, ck2.generation, inc_s);
    printf("Reference: the %" PRIu64 " packs the incremental added (its manifest's packs that "
           "the parent's lacks) were read back from the repository; they hold %" PRIu64
           " pages (%.2f MB), exactly pages_new / bytes_new_raw of the result. Those pages, "
           "concatenated in the same order, compressed as one zstd frame at the repository's "
           "level (%d) with the same shuffle trial (codec_compress, %s kept): %.3f MB. One "
           "frame is the tightest fair reference: it pays one frame header and no object "
           "headers, and its window spans every page.\n\n",
           ref.packs, ref.pages, (double)ref.raw / 1e6, r->level,
           ref.shuffled ? "shuffled" : "plain", (double)ref.ref_bytes / 1e6);
    printf("| what | bytes | vs reference | target | met |\n|---|---:|---:|---|---|\n");
    printf("| reference: changed pages, one zstd frame | %" PRIu64 " | 1.000x | | |\n",
           ref.ref_bytes);
    printf("| for context: each changed page compressed alone, summed | %" PRIu64 " | %.3fx "
           "| | |\n", ref.per_page, (double)ref.per_page / ref.ref_bytes);
    printf("| the incremental's new packs (objects: 96 B header + frame) | %" PRIu64
           " | %.3fx | | |\n", ref.packs_stored, (double)ref.packs_stored / ref.ref_bytes);
    printf("| bytes_stored: new packs + the other new objects (%" PRIu64 " B: superblock, "
           "meta, and the WAL segment holding the redo LSN cut there) | %" PRIu64 " | %.3fx | "
           "<= 1.05x | %s |\n", inc.bytes_stored - ref.packs_stored, inc.bytes_stored, ratio,
           ratio <= 1.05 ? "yes" : "**no**");
    printf("| bytes_stored + manifest (%" PRIu64 " B: every page of the image is listed) | %"
           PRIu64 " | %.3fx | | |\n", ref.manifest, inc.bytes_stored + ref.manifest, ratio_m);
    printf("| repository growth (du of every file) | %" PRIu64 " | %.3fx | | |\n",
           repo_after - repo_before, (double)(repo_after - repo_before) / ref.ref_bytes);
    printf("\nFor scale: the image has %" PRIu64 " pages (%.1f MB); the incremental stored "
           "%" PRIu64 " of them (%.1f%%); the full backup stored %.1f MB.\n\n",
           inc.pages, (double)inc.bytes_raw / 1e6, inc.pages_new,
           100.0 * (double)inc.pages_new / (double)inc.pages, (double)full.bytes_stored / 1e6);
    rc = 0;
out:
    for (size_t i = 0; i < nfiles; i++)
        free(files[i]);
    if (db)
        cairn_close(db);
    repo_close(r);
    writer_free(&w);
    if (!opt.keep)
        rm_tree(root);
    free(root);
    free(dbdir);
    free(repodir);
    free(colldir);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Item 2, cairn side                                                  */
/* ------------------------------------------------------------------ */

static int writer_rows(struct writer *w, uint64_t upto) {
    while (w->next_id < upto) {
        uint64_t left = upto - w->next_id;
        if (writer_commit(w, left < opt.batch ? (unsigned)left : opt.batch, 1.0, NULL))
            return -1;
    }
    return 0;
}

static int part_pg_cairn(void) {
    char *dbdir = path2(run_dir, "db"), *repodir = path2(run_dir, "repo");
    int rc = -1;
    cairn_options o;
    db_options(&o, CAIRN_DURABILITY_SYNC);
    cairn_db *db = NULL;
    repo *r = NULL;
    struct writer w;
    memset(&w, 0, sizeof w);
    struct pitr_backup_result bk;
    struct pitr_archive_result ar;
    uint64_t total = opt.base_rows + opt.rows + opt.tail_rows;
    cairn_checkpoint_info ck;
    cairn_status s = cairn_open(dbdir, &o, &db);
    if (s) {
        cfail(s, "cairn_open");
        goto out;
    }
    if (writer_init(&w, db, 1, total + opt.batch))
        goto out;
    double t0 = now_s();
    if (writer_rows(&w, opt.base_rows))
        goto out;
    double base_s = now_s() - t0;
    s = cairn_checkpoint(db, &ck);
    struct repo_open_opts ro = {.create = true};
    if (!s)
        s = repo_open(repodir, &ro, &r);
    t0 = now_s();
    if (!s) {
        struct pitr_backup_opts bo = {0};
        s = pitr_backup(dbdir, r, &bo, &bk);
    }
    double backup_s = now_s() - t0;
    if (s) {
        cfail(s, "checkpoint and full backup");
        goto out;
    }
    wait_quiet();
    t0 = now_s();
    if (writer_rows(&w, opt.base_rows + opt.rows))
        goto out;
    double gen1_s = now_s() - t0;
    cairn_commit_info tgt = w.last;
    uint64_t lsn_target_end = db_last_lsn(db);
    if (writer_rows(&w, total))
        goto out;
    double gen_s = now_s() - t0;
    uint64_t wal_gen = db_last_lsn(db) - ck.redo_lsn;
    uint64_t wal_main = lsn_target_end - ck.redo_lsn;
    s = cairn_close(db);
    db = NULL;
    if (s) {
        cfail(s, "cairn_close");
        goto out;
    }
    t0 = now_s();
    s = pitr_archive(dbdir, r, 0, &ar);
    double archive_s = now_s() - t0;
    if (s) {
        cfail(s, "pitr_archive");
        goto out;
    }
    if (ar.archived_to <= lsn_target_end) {
        fprintf(stderr, "the archive ends at LSN %" PRIu64 ", before the target's commit (%"
                PRIu64 "): give more --tail-rows\n", ar.archived_to, lsn_target_end);
        goto out;
    }
    uint64_t repo_bytes = tree_scan(repodir, 0, NULL);
    /* key=value lines for bench/pitr_pg.sh */
    printf("cairn_version=%s\n", cairn_version());
    printf("base_load_s=%.3f\nbackup_s=%.3f\nbackup_bytes_raw=%" PRIu64
           "\nbackup_bytes_stored=%" PRIu64 "\n", base_s, backup_s, bk.bytes_raw,
           bk.bytes_stored);
    printf("gen_s=%.3f\ngen_main_s=%.3f\nwal_gen_bytes=%" PRIu64 "\nwal_main_bytes=%" PRIu64
           "\n", gen_s, gen1_s, wal_gen, wal_main);
    printf("archive_s=%.3f\narchive_segments=%u\narchive_bytes_in=%" PRIu64
           "\narchive_bytes_stored=%" PRIu64 "\nrepo_bytes=%" PRIu64 "\n", archive_s,
           ar.archived, ar.bytes_in, ar.bytes_stored, repo_bytes);
    printf("target_time_us=%" PRId64 "\ntarget_txn=%" PRIu64 "\n", tgt.commit_time_us,
           tgt.txn_id);
    rc = 0;
out:
    if (db)
        cairn_close(db);
    repo_close(r);
    writer_free(&w);
    free(dbdir);
    free(repodir);
    return rc;
}

/* The restored database of pg-cairn must hold exactly rows 0..want-1, each
 * as row w was written (pool slot of write w); n sampled ids of 0..all-1
 * are checked, those >= want must be absent. Returns mismatches or -1. */
static long verify_rows(const char *dbdir, uint64_t want, uint64_t all, unsigned n,
                        uint64_t *checked, uint64_t *points) {
    cairn_options o;
    db_options(&o, CAIRN_DURABILITY_SYNC);
    o.create_if_missing = 0;
    cairn_db *db = NULL;
    cairn_status s = cairn_open(dbdir, &o, &db);
    if (s)
        return cfail(s, "cairn_open of the restored database");
    cairn_collection_info ci;
    s = cairn_collection_stat(db, "c0", &ci);
    if (s) {
        cairn_close(db);
        return cfail(s, "cairn_collection_stat");
    }
    *points = ci.points;
    *checked = 0;
    long bad = 0;
    uint64_t rng = opt.seed ^ 0x766572ull;
    float v[BENCH_DIM];
    for (unsigned k = 0; k < n; k++) {
        uint64_t id = splitmix64(&rng) % all;
        char *pl = NULL;
        s = cairn_get(db, "c0", id, v, BENCH_DIM, &pl);
        uint32_t sl = slot_of_write(id);
        bool ok = id < want ? s == CAIRN_OK && !memcmp(v, vec_of(sl), BENCH_VEC_BYTES) && pl &&
                                  strlen(pl) == BENCH_PAYLOAD_BYTES &&
                                  !memcmp(pl, payload_of(sl), BENCH_PAYLOAD_BYTES)
                            : s == CAIRN_ENOTFOUND;
        if (!ok && !bad++)
            fprintf(stderr, "verify: id %" PRIu64 " is wrong (status %s)\n", id,
                    cairn_status_name(s));
        cairn_free(pl);
        (*checked)++;
    }
    s = cairn_close(db);
    if (s)
        return cfail(s, "cairn_close of the restored database");
    return bad;
}

static int part_pg_restore(void) {
    char *repodir = path2(run_dir, "repo"), *target = path2(run_dir, "restored");
    repo *r = NULL;
    int rc = -1;
    struct rrow row;
    struct repo_open_opts ro = {0};
    cairn_status s = repo_open(repodir, &ro, &r);
    if (s) {
        cfail(s, "repo_open");
        goto out;
    }
    struct pitr_restore_opts po = {.kind = PITR_TARGET_TIME, .time_us = opt.target_us,
                                   .jobs = opt.pg_jobs, .timeline = 1};
    if (do_restore(r, target, &po, repodir, &row))
        goto out;
    uint64_t want = opt.base_rows + opt.rows;
    /* --verify 0 (profiling the restore alone): the restore's own count */
    row.points = row.res.points;
    if (opt.verify)
        row.bad = verify_rows(target, want, want + opt.tail_rows, opt.verify, &row.checked,
                              &row.points);
    if (row.bad || row.points != want) {
        fprintf(stderr, "pg-restore: restored %" PRIu64 " points (want %" PRIu64 "), %ld of %"
                PRIu64 " sampled points wrong\n", row.points, want, row.bad, row.checked);
        goto out;
    }
    printf("restore_s=%.3f\npages_s=%.3f\nfetch_s=%.3f\nreplay_s=%.3f\nload_s=%.3f\nredo_s=%.3f"
           "\n", row.wall_s, (double)row.res.pages_us / 1e6, (double)row.res.fetch_us / 1e6,
           (double)row.res.replay_us / 1e6, (double)row.res.load_us / 1e6,
           (double)row.res.redo_us / 1e6);
    printf("replay_records=%" PRIu64 "\nreplay_wal_bytes=%" PRIu64 "\nreplay_txns=%" PRIu64
           "\nrestored_points=%" PRIu64 "\nverified=%" PRIu64 "\nrestore_cpu_s=%.3f\n"
           "repo_resident=%" PRIu64 "\njobs=%u\n", row.records, row.wal_bytes,
           row.res.txns_applied, row.points, row.checked, row.cpu_s, row.repo_resident,
           opt.pg_jobs);
    char noise[32];
    fmt_noise(noise, sizeof noise, row.other, row.steal);
    printf("restore_other_cpu=%s\n", noise);
    rc = 0;
out:
    rm_tree(target);
    repo_close(r);
    free(repodir);
    free(target);
    return rc;
}

/* PostgreSQL COPY text of rows from..from+count-1, one COPY statement per
 * --batch rows (psql runs each as its own transaction): id, the vector as
 * a float4[] literal (%.9g: every float32 reads back exactly), the payload
 * (jsonb input; its text has no character COPY escapes). */
static int part_pg_rows(void) {
    char **txt = calloc(opt.pool, sizeof *txt);
    if (!txt)
        return -1;
    char buf[BENCH_DIM * 20 + 4];
    for (uint64_t i = 0; i < opt.count; i++) {
        uint64_t row = opt.from + i;
        if (i % opt.batch == 0) {
            if (i)
                fputs("\\.\n", stdout);
            fputs("COPY pts (id, vec, payload) FROM STDIN;\n", stdout);
        }
        uint32_t sl = slot_of_write(row);
        if (!txt[sl]) {
            size_t n = 0;
            const float *v = vec_of(sl);
            buf[n++] = '{';
            for (unsigned d = 0; d < BENCH_DIM; d++)
                n += (size_t)snprintf(buf + n, sizeof buf - n, d ? ",%.9g" : "%.9g",
                                      (double)v[d]);
            buf[n++] = '}';
            buf[n] = 0;
            txt[sl] = strdup(buf);
            if (!txt[sl])
                return -1;
        }
        printf("%" PRIu64 "\t%s\t%.*s\n", row, txt[sl], (int)BENCH_PAYLOAD_BYTES,
               payload_of(sl));
    }
    if (opt.count)
        fputs("\\.\n", stdout);
    for (unsigned i = 0; i < opt.pool; i++)
        free(txt[i]);
    free(txt);
    return fflush(stdout) == 0 ? 0 : -1;
}

static int part_drop_cache(int argc, char **argv, int first) {
    int rc = 0;
    for (int i = first; i < argc; i++) {
        uint64_t res = 0;
        uint64_t bytes = tree_scan(argv[i], 1, &res);
        printf("%s: %" PRIu64 " bytes, %" PRIu64 " still cached\n", argv[i], bytes, res);
    }
    return rc;
}

/* ------------------------------------------------------------------ */
/* main                                                                */
/* ------------------------------------------------------------------ */

int main(int argc, char **argv) {
    enum { O_DIR = 256, O_SEED, O_POOL, O_BATCH, O_QUICK, O_COLLS, O_JOBS, O_BASE, O_WAL,
           O_DUR, O_REPEAT, O_VERIFY, O_POINTS, O_CHANGE, O_BROWS, O_ROWS, O_TROWS, O_FROM,
           O_COUNT, O_PGJOBS, O_QUIET, O_KEEP, O_CMD, O_HELP, O_WORK, O_TARGET };
    static const struct option lo[] = {
        {"dir", required_argument, NULL, O_DIR},
        {"seed", required_argument, NULL, O_SEED},
        {"pool", required_argument, NULL, O_POOL},
        {"batch", required_argument, NULL, O_BATCH},
        {"quick", no_argument, NULL, O_QUICK},
        {"collections", required_argument, NULL, O_COLLS},
        {"jobs", required_argument, NULL, O_JOBS},
        {"base-points", required_argument, NULL, O_BASE},
        {"wal-mb", required_argument, NULL, O_WAL},
        {"durability", required_argument, NULL, O_DUR},
        {"repeat", required_argument, NULL, O_REPEAT},
        {"verify", required_argument, NULL, O_VERIFY},
        {"points", required_argument, NULL, O_POINTS},
        {"change-frac", required_argument, NULL, O_CHANGE},
        {"base-rows", required_argument, NULL, O_BROWS},
        {"rows", required_argument, NULL, O_ROWS},
        {"tail-rows", required_argument, NULL, O_TROWS},
        {"from", required_argument, NULL, O_FROM},
        {"count", required_argument, NULL, O_COUNT},
        {"pg-jobs", required_argument, NULL, O_PGJOBS},
        {"quiet", required_argument, NULL, O_QUIET},
        {"keep", no_argument, NULL, O_KEEP},
        {"command", required_argument, NULL, O_CMD},
        {"help", no_argument, NULL, O_HELP},
        {"work", required_argument, NULL, O_WORK},
        {"target-us", required_argument, NULL, O_TARGET},
        {NULL, 0, NULL, 0},
    };
    /* sub-commands: leading words */
    int do_replay = 0, do_backup = 0, do_pg = 0, do_rows = 0, do_drop = 0, do_pgr = 0;
    int first = 1;
    while (first < argc && argv[first][0] != '-') {
        if (!strcmp(argv[first], "replay"))
            do_replay = 1;
        else if (!strcmp(argv[first], "backup"))
            do_backup = 1;
        else if (!strcmp(argv[first], "pg-cairn"))
            do_pg = 1;
        else if (!strcmp(argv[first], "pg-rows"))
            do_rows = 1;
        else if (!strcmp(argv[first], "pg-restore"))
            do_pgr = 1;
        else if (!strcmp(argv[first], "wait-quiet")) {
            /* for scripts: wait (<= 10 s) until others use <= P % of the CPUs */
            double pct = 10;
            if (first + 1 < argc && parse_double(argv[first + 1], 0, 100, &pct)) {
                fprintf(stderr, "cairn_bench_pitr wait-quiet: bad percentage '%s'\n",
                        argv[first + 1]);
                return 2;
            }
            printf("%.0f\n", cpu_wait_quiet(pct, 10.0));
            return 0;
        } else if (!strcmp(argv[first], "drop-cache")) {
            do_drop = 1;
            first++;
            break;
        } else {
            fprintf(stderr, "cairn_bench_pitr: unknown part '%s'\n", argv[first]);
            usage(stderr);
            return 2;
        }
        first++;
    }
    if (do_drop)
        return part_drop_cache(argc, argv, first) ? 1 : 0;
    if (!do_replay && !do_backup && !do_pg && !do_rows && !do_pgr)
        do_replay = do_backup = 1;
    int quick = 0;
    int set_base = 0, set_wal = 0, set_points = 0, set_repeat = 0, set_verify = 0;
    optind = first;
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case O_DIR: opt.dir = optarg; break;
        case O_SEED: bad = parse_u64(optarg, &opt.seed); break;
        case O_POOL: bad = parse_uint(optarg, 1024, 1u << 24, &opt.pool); break;
        case O_BATCH: bad = parse_uint(optarg, 1, 100000, &opt.batch); break;
        case O_QUICK: quick = 1; break;
        case O_COLLS: bad = parse_list(optarg, opt.colls, &opt.ncolls, 1, MAX_LIST); break;
        case O_JOBS: bad = parse_list(optarg, opt.jobs, &opt.njobs, 1, 64); break;
        case O_BASE: bad = parse_u64(optarg, &opt.base_points); set_base = 1; break;
        case O_WAL: bad = parse_double(optarg, 1, 1 << 20, &opt.wal_mb); set_wal = 1; break;
        case O_DUR:
            if (!strcmp(optarg, "sync"))
                opt.dur = CAIRN_DURABILITY_SYNC;
            else if (!strcmp(optarg, "none"))
                opt.dur = CAIRN_DURABILITY_NONE;
            else
                bad = 1;
            break;
        case O_REPEAT:
            bad = parse_uint(optarg, 1, MAX_REPEAT, &opt.repeat);
            set_repeat = 1;
            break;
        case O_VERIFY:
            bad = parse_uint(optarg, 0, 1u << 30, &opt.verify);
            set_verify = 1;
            break;
        case O_POINTS:
            bad = parse_u64(optarg, &opt.points) || opt.points < 1000;
            set_points = 1;
            break;
        case O_CHANGE: bad = parse_double(optarg, 1e-6, 1, &opt.change_frac); break;
        case O_BROWS: bad = parse_u64(optarg, &opt.base_rows); break;
        case O_ROWS: bad = parse_u64(optarg, &opt.rows); break;
        case O_TROWS: bad = parse_u64(optarg, &opt.tail_rows); break;
        case O_FROM: bad = parse_u64(optarg, &opt.from); break;
        case O_COUNT: bad = parse_u64(optarg, &opt.count); break;
        case O_PGJOBS: bad = parse_uint(optarg, 0, 64, &opt.pg_jobs); break;
        case O_QUIET: bad = parse_double(optarg, 0, 100, &opt.quiet); break;
        case O_KEEP: opt.keep = 1; break;
        case O_CMD: opt.command = optarg; break;
        case O_HELP: usage(stdout); return 0;
        case O_WORK: opt.work = optarg; break;
        case O_TARGET: {
            uint64_t v;
            bad = parse_u64(optarg, &v) || v > INT64_MAX;
            opt.target_us = (int64_t)v;
            break;
        }
        default: usage(stderr); return 2;
        }
        if (bad) {
            fprintf(stderr, "cairn_bench_pitr: bad value '%s' for --%s\n", optarg,
                    lo[c - O_DIR].name);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "cairn_bench_pitr: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (quick) {
        opt.quick = 1;
        if (!set_base)
            opt.base_points = 20000;
        if (!set_wal)
            opt.wal_mb = 32;
        if (!set_points)
            opt.points = 100000;
        if (!set_repeat)
            opt.repeat = 1;
        if (!set_verify)
            opt.verify = 500;
    }
    if ((do_pg || do_pgr) && (!opt.rows || opt.base_rows < opt.batch || !opt.work)) {
        fprintf(stderr, "cairn_bench_pitr pg-cairn/pg-restore: give --work, --base-rows "
                "(>= --batch) and --rows\n");
        return 2;
    }
    if (do_pgr && !opt.target_us) {
        fprintf(stderr, "cairn_bench_pitr pg-restore: give --target-us\n");
        return 2;
    }
    if (bench_pool_make(opt.seed, opt.pool, &pool_vec, &pool_payload)) {
        fprintf(stderr, "out of memory for the data pool\n");
        return 1;
    }
    if (do_rows)
        return part_pg_rows() ? 1 : 0;

    cairn_set_log(NULL, NULL, CAIRN_LOG_WARN);
    for (int i = 0; i < argc; i++)
        shell_append(invocation, sizeof invocation, argv[i]);
    const char *base = opt.dir;
    char workparent[2048];
    if (opt.work) {
        snprintf(workparent, sizeof workparent, "%.2000s", opt.work);
        char *sl = strrchr(workparent, '/');
        if (sl && sl != workparent)
            *sl = 0;
        else
            snprintf(workparent, sizeof workparent, ".");
        base = workparent;
    }
    if (!base)
        base = getenv("TMPDIR");
    if (!base || !*base)
        base = "/var/tmp";
    struct statfs sf;
    if (statfs(base, &sf) != 0) {
        fprintf(stderr, "cairn_bench_pitr: --dir \"%s\": %s\n", base, strerror(errno));
        return 2;
    }
    if ((unsigned long)sf.f_type == 0x01021994ul) {
        fprintf(stderr, "cairn_bench_pitr: --dir \"%s\" is tmpfs: use a directory on the disk\n",
                base);
        return 2;
    }
    if (do_pg || do_pgr) {
        /* the script's own directory: pg-cairn makes it, pg-restore uses it */
        snprintf(run_dir, sizeof run_dir, "%s", opt.work);
        if (do_pg) {
            rm_tree(run_dir);
            if (mkdir(run_dir, 0755) != 0) {
                fprintf(stderr, "cairn_bench_pitr: mkdir \"%s\": %s\n", run_dir,
                        strerror(errno));
                return 2;
            }
        }
        int rc = do_pg ? part_pg_cairn() : part_pg_restore();
        free(pool_vec);
        free(pool_payload);
        return rc ? 1 : 0;
    }
    snprintf(run_dir, sizeof run_dir, "%.3000s/cairn-pitr-XXXXXX", base);
    if (!mkdtemp(run_dir)) {
        fprintf(stderr, "cairn_bench_pitr: could not create a directory under \"%s\": %s\n",
                base, strerror(errno));
        return 2;
    }
    loadavg(load0, sizeof load0);
    double t0 = now_s();
    int rc = 0;
    {
        header("Point-in-time recovery (issue 4)");
        printf("- replay: collections %u", opt.colls[0]);
        for (unsigned i = 1; i < opt.ncolls; i++)
            printf(",%u", opt.colls[i]);
        printf(", jobs %u", opt.jobs[0]);
        for (unsigned i = 1; i < opt.njobs; i++)
            printf(",%u", opt.jobs[i]);
        printf(", base %" PRIu64 " points, %.0f MiB of WAL, durability %s while building, "
               "repeat %u; backup: %" PRIu64 " points, change %.2f%%\n\n", opt.base_points,
               opt.wal_mb, opt.dur == CAIRN_DURABILITY_NONE ? "NONE" : "SYNC", opt.repeat,
               opt.points, 100 * opt.change_frac);
        fflush(stdout);
        if (do_replay)
            rc = part_replay();
        fflush(stdout);
        if (!rc && do_backup)
            rc = part_backup();
        char load1[64];
        loadavg(load1, sizeof load1);
        printf("Load average %s at start, %s at end; whole run %.0f s.\n", load0, load1,
               now_s() - t0);
    }
    if (!opt.keep)
        rm_tree(run_dir);
    free(pool_vec);
    free(pool_payload);
    return rc ? 1 : 0;
}
