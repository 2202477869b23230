/*
 * test_crash_kill.c — SIGKILL at a random instant, reopen, compare with the
 * oracle.
 *
 * A forked child opens the database (running crash recovery itself, so a
 * kill can land inside recovery too), then runs a seeded random workload on
 * T threads: transactions of 1..6 upserts/deletes spread over 3 collections,
 * some aborted, some restore points. Thread t owns ids [t*R, (t+1)*R), so
 * each thread's history is a sequence the parent can replay on its own.
 * Before a commit the thread appends an intent line (the operations) to the
 * oracle file, after the commit returns an ack line (txn id, commit LSN).
 *
 * The parent SIGKILLs the child after a random delay, reopens, and checks,
 * per thread, that the id range equals the model after all acked
 * transactions, or after those plus the one in flight: every acknowledged
 * commit present, no partial transaction, nothing else. Collections hold no
 * other points. The matched state becomes the model for the next round. The
 * database is recreated every ROUNDS_PER_DB rounds so logs of many
 * recoveries are replayed too.
 *
 *   test_crash_kill [--kills N] [--seed S] [--threads T]
 *   (env CAIRN_CRASH_KILLS overrides the default of 200)
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cairn.h"

#include "testutil.h"

#define NCOLL 3
#define DIM 16
#define RANGE 64          /* ids per thread */
#define MAXT 8
#define ROUNDS_PER_DB 25
#define MAXOPS 6

static const char *coll_names[NCOLL] = {"alpha", "beta", "gamma"};

static int nthreads = 4;
static char dbdir[512], oracle_path[512];

/* ---- deterministic generators --------------------------------------- */

static void gen_vector(uint32_t vseed, float *v) {
    uint64_t s = vseed * 0x100000001b3ULL + 7;
    tu_fill_vec(&s, v, DIM, -1.0, 1.0);
}

static int gen_payload(uint32_t vseed, char *buf, size_t n) {
    return snprintf(buf, n, "{\"s\":%u}", vseed);
}

static void die(const char *what, cairn_status st) {
    fprintf(stderr, "crash_kill: %s: %s (%s)\n", what, cairn_status_name(st),
            cairn_last_error());
    exit(1);
}

/* ---- the child -------------------------------------------------------- */

struct child_arg {
    cairn_db *db;
    int t;
    uint64_t seed;
    int fd;
};

static void oracle_write(int fd, const char *line, size_t len) {
    if (write(fd, line, len) != (ssize_t)len) _exit(3);
}

static void *child_thread(void *p) {
    struct child_arg *a = p;
    uint64_t rs = a->seed;
    float vec[DIM];
    char payload[64], line[1024];
    for (uint64_t seq = 0;; seq++) {
        uint64_t r = tu_splitmix(&rs);
        if (r % 97 == 0) { /* a restore point now and then */
            char name[32];
            snprintf(name, sizeof name, "rp-%d-%" PRIu64, a->t, seq);
            cairn_status st = cairn_restore_point(a->db, name, NULL);
            if (st) die("restore point", st);
            continue;
        }
        int nops = 1 + (int)(tu_splitmix(&rs) % MAXOPS);
        bool abort_it = tu_splitmix(&rs) % 13 == 0;
        cairn_txn *txn;
        cairn_status st = cairn_txn_begin(a->db, &txn);
        if (st) die("begin", st);
        int off = snprintf(line, sizeof line, "I %d %" PRIu64 " %d", a->t, seq, nops);
        for (int i = 0; i < nops; i++) {
            int c = (int)(tu_splitmix(&rs) % NCOLL);
            uint64_t id = (uint64_t)a->t * RANGE + tu_splitmix(&rs) % RANGE;
            if (tu_splitmix(&rs) % 100 < 85) {
                uint32_t vs = (uint32_t)tu_splitmix(&rs);
                gen_vector(vs, vec);
                int pl = gen_payload(vs, payload, sizeof payload);
                st = cairn_txn_upsert(txn, coll_names[c], id, vec, DIM, payload, (size_t)pl);
                off += snprintf(line + off, sizeof line - off, " u %d %" PRIu64 " %u", c, id, vs);
            } else {
                st = cairn_txn_delete(txn, coll_names[c], id);
                off += snprintf(line + off, sizeof line - off, " d %d %" PRIu64, c, id);
            }
            if (st) die("txn op", st);
        }
        if (abort_it) {
            st = cairn_txn_abort(txn);
            if (st) die("abort", st);
            cairn_txn_free(txn);
            continue;
        }
        line[off++] = '\n';
        oracle_write(a->fd, line, (size_t)off);
        cairn_commit_info ci;
        st = cairn_txn_commit(txn, &ci);
        if (st) die("commit", st);
        cairn_txn_free(txn);
        off = snprintf(line, sizeof line, "A %d %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", a->t,
                       seq, ci.txn_id, ci.commit_lsn);
        oracle_write(a->fd, line, (size_t)off);
    }
    return NULL;
}

static void child_main(uint64_t seed) {
    int fd = open(oracle_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
    if (fd < 0) _exit(4);
    cairn_options o = tu_opts(CAIRN_DURABILITY_SYNC, CAIRN_IO_DEFAULT, 2);
    /* Background checkpoints every 128 KiB of WAL: kills land in them. */
    o.checkpoint_wal_bytes = (uint64_t)128 << 10;
    cairn_db *db;
    cairn_status st = cairn_open(dbdir, &o, &db);
    if (st) die("child open", st);
    for (int c = 0; c < NCOLL; c++) {
        cairn_collection_info info;
        if (cairn_collection_stat(db, coll_names[c], &info) == CAIRN_ENOTFOUND) {
            st = cairn_collection_create(db, coll_names[c], DIM, CAIRN_METRIC_L2);
            if (st) die("create", st);
        }
    }
    oracle_write(fd, "S\n", 2); /* collections exist from here on */
    pthread_t thr[MAXT];
    struct child_arg args[MAXT];
    for (int t = 0; t < nthreads; t++) {
        args[t] = (struct child_arg){db, t, seed * 1000003ULL + (uint64_t)t, fd};
        pthread_create(&thr[t], NULL, child_thread, &args[t]);
    }
    for (int t = 0; t < nthreads; t++) pthread_join(thr[t], NULL);
    _exit(0);
}

/* ---- the parent's model ------------------------------------------------ */

struct cell {
    bool present;
    uint32_t vs;
};
/* model[c][id] for all ids of all threads */
static struct cell model[NCOLL][MAXT * RANGE];

struct op {
    char kind;
    int c;
    uint64_t id;
    uint32_t vs;
};
struct txnrec {
    uint64_t seq;
    int nops;
    struct op ops[MAXOPS];
    bool acked;
};

struct thread_log {
    struct txnrec *v;
    size_t n, cap;
};

static void apply_ops(struct cell m[NCOLL][MAXT * RANGE], const struct txnrec *r) {
    for (int i = 0; i < r->nops; i++) {
        const struct op *o = &r->ops[i];
        m[o->c][o->id].present = o->kind == 'u';
        m[o->c][o->id].vs = o->vs;
    }
}

static bool parse_oracle(struct thread_log logs[MAXT], bool *started) {
    FILE *f = fopen(oracle_path, "r");
    if (!f) return errno == ENOENT; /* killed before it was created */
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        size_t L = strlen(line);
        if (L == 0 || line[L - 1] != '\n') break; /* torn last line */
        if (line[0] == 'S') {
            *started = true;
        } else if (line[0] == 'I') {
            int t, nops, n;
            uint64_t seq;
            char *p = line + 2;
            if (sscanf(p, "%d %" SCNu64 " %d%n", &t, &seq, &nops, &n) != 3) abort();
            p += n;
            struct thread_log *lg = &logs[t];
            if (lg->n == lg->cap) {
                lg->cap = lg->cap ? lg->cap * 2 : 64;
                lg->v = realloc(lg->v, lg->cap * sizeof *lg->v);
            }
            struct txnrec *r = &lg->v[lg->n++];
            memset(r, 0, sizeof *r);
            r->seq = seq;
            r->nops = nops;
            for (int i = 0; i < nops; i++) {
                struct op *o = &r->ops[i];
                if (sscanf(p, " %c %d %" SCNu64 "%n", &o->kind, &o->c, &o->id, &n) != 3) abort();
                p += n;
                if (o->kind == 'u') {
                    if (sscanf(p, " %u%n", &o->vs, &n) != 1) abort();
                    p += n;
                }
            }
        } else if (line[0] == 'A') {
            int t;
            uint64_t seq;
            if (sscanf(line + 2, "%d %" SCNu64, &t, &seq) != 2) abort();
            struct thread_log *lg = &logs[t];
            if (lg->n == 0 || lg->v[lg->n - 1].seq != seq) {
                fprintf(stderr, "crash_kill: oracle ack without intent\n");
                exit(1);
            }
            lg->v[lg->n - 1].acked = true;
        }
    }
    fclose(f);
    return true;
}

/* Does the database hold exactly cand for the ids of thread t? */
static bool range_matches(cairn_db *db, int t, struct cell cand[NCOLL][MAXT * RANGE],
                          char *why, size_t whyn) {
    float want[DIM], got[DIM];
    char pw[64];
    for (int c = 0; c < NCOLL; c++) {
        for (uint64_t id = (uint64_t)t * RANGE; id < (uint64_t)(t + 1) * RANGE; id++) {
            char *payload = NULL;
            cairn_status st = cairn_get(db, coll_names[c], id, got, DIM, &payload);
            bool present = st == CAIRN_OK;
            if (st != CAIRN_OK && st != CAIRN_ENOTFOUND) die("get", st);
            if (present != cand[c][id].present) {
                snprintf(why, whyn, "%s id %" PRIu64 ": %s, expected %s", coll_names[c], id,
                         present ? "present" : "absent",
                         cand[c][id].present ? "present" : "absent");
                cairn_free(payload);
                return false;
            }
            if (present) {
                gen_vector(cand[c][id].vs, want);
                gen_payload(cand[c][id].vs, pw, sizeof pw);
                bool ok = memcmp(want, got, sizeof want) == 0 && payload &&
                          strcmp(payload, pw) == 0;
                if (!ok) {
                    snprintf(why, whyn, "%s id %" PRIu64 ": wrong vector/payload (%s vs %s)",
                             coll_names[c], id, payload ? payload : "null", pw);
                    cairn_free(payload);
                    return false;
                }
            }
            cairn_free(payload);
        }
    }
    return true;
}

static void rm_rf(const char *dir) {
    if (tu_rm_rf(dir) != 0) fprintf(stderr, "crash_kill: could not remove %s\n", dir);
}

int main(int argc, char **argv) {
    long kills = 200;
    const char *env = getenv("CAIRN_CRASH_KILLS");
    if (env) kills = atol(env);
    uint64_t seed = tu_seed_env("CAIRN_SEED", (uint64_t)time(NULL));
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--kills") && i + 1 < argc) kills = atol(argv[++i]);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) nthreads = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--kills N] [--seed S] [--threads T]\n", argv[0]);
            return 2;
        }
    }
    if (nthreads < 1 || nthreads > MAXT) nthreads = 4;
    printf("crash_kill: seed=%" PRIu64 " kills=%ld threads=%d (rerun: --seed %" PRIu64 ")\n",
           seed, kills, nthreads, seed);
    fflush(stdout);

    char base[400];
    if (tu_tmpbase(base, sizeof base, "crash_kill") != 0) {
        perror("crash_kill: temporary directory");
        return 1;
    }
    snprintf(oracle_path, sizeof oracle_path, "%s/oracle", base);

    uint64_t rng = seed;
    long in_flight_kept = 0, acked_total = 0, recovered_torn = 0, from_ckpt = 0;
    for (long k = 0; k < kills; k++) {
        if (k % ROUNDS_PER_DB == 0) {
            snprintf(dbdir, sizeof dbdir, "%s/db%ld", base, k / ROUNDS_PER_DB);
            memset(model, 0, sizeof model);
            if (k > 0) {
                char old[512];
                snprintf(old, sizeof old, "%s/db%ld", base, k / ROUNDS_PER_DB - 1);
                rm_rf(old);
            }
        }
        uint64_t round_seed = tu_splitmix(&rng);
        /* a quarter of the kills come early, inside open/recovery */
        uint64_t delay_us = tu_splitmix(&rng) % 4 == 0 ? tu_splitmix(&rng) % 8000
                                                       : 2000 + tu_splitmix(&rng) % 60000;
        unlink(oracle_path);
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        if (pid == 0) child_main(round_seed);
        usleep((useconds_t)delay_us);
        kill(pid, SIGKILL);
        int wst;
        waitpid(pid, &wst, 0);
        if (WIFEXITED(wst)) {
            fprintf(stderr, "crash_kill: round %ld: child exited with %d before the kill\n", k,
                    WEXITSTATUS(wst));
            return 1;
        }

        struct thread_log logs[MAXT];
        memset(logs, 0, sizeof logs);
        bool started = false;
        if (!parse_oracle(logs, &started)) {
            fprintf(stderr, "crash_kill: no oracle file\n");
            return 1;
        }

        cairn_options o =
            tu_opts(CAIRN_DURABILITY_SYNC, CAIRN_IO_DEFAULT, 1 + (unsigned)(k % 3));
        cairn_db *db;
        cairn_status st = cairn_open(dbdir, &o, &db);
        if (st) {
            fprintf(stderr, "crash_kill: round %ld (seed %" PRIu64 "): reopen failed: %s: %s\n",
                    k, seed, cairn_status_name(st), cairn_last_error());
            return 1;
        }
        cairn_stats stats;
        cairn_stats_get(db, &stats);
        if (stats.recovery.bytes_truncated) recovered_torn++;
        if (stats.recovery.checkpoint) from_ckpt++;

        static struct cell cand_a[NCOLL][MAXT * RANGE], cand_b[NCOLL][MAXT * RANGE];
        memcpy(cand_a, model, sizeof model);
        for (int t = 0; t < nthreads; t++) {
            struct thread_log *lg = &logs[t];
            size_t nacked = 0;
            for (size_t i = 0; i < lg->n; i++) {
                if (lg->v[i].acked) {
                    if (nacked != i) {
                        fprintf(stderr, "crash_kill: thread %d acked out of order\n", t);
                        return 1;
                    }
                    nacked++;
                    apply_ops(cand_a, &lg->v[i]);
                }
            }
            acked_total += (long)nacked;
        }
        memcpy(cand_b, cand_a, sizeof cand_a);
        for (int t = 0; t < nthreads; t++) {
            struct thread_log *lg = &logs[t];
            if (lg->n && !lg->v[lg->n - 1].acked) apply_ops(cand_b, &lg->v[lg->n - 1]);
        }
        for (int t = 0; t < nthreads; t++) {
            char why_a[256], why_b[256];
            if (range_matches(db, t, cand_a, why_a, sizeof why_a)) {
                for (int c = 0; c < NCOLL; c++)
                    memcpy(&model[c][t * RANGE], &cand_a[c][t * RANGE], RANGE * sizeof(struct cell));
            } else if (range_matches(db, t, cand_b, why_b, sizeof why_b)) {
                in_flight_kept++;
                for (int c = 0; c < NCOLL; c++)
                    memcpy(&model[c][t * RANGE], &cand_b[c][t * RANGE], RANGE * sizeof(struct cell));
            } else {
                fprintf(stderr,
                        "crash_kill: round %ld (seed %" PRIu64 ") thread %d: state matches "
                        "neither the acked commits (%s) nor acked + in-flight (%s)\n",
                        k, seed, t, why_a, why_b);
                return 1;
            }
        }
        /* no stray points */
        for (int c = 0; c < NCOLL && started; c++) {
            cairn_collection_info info;
            st = cairn_collection_stat(db, coll_names[c], &info);
            if (st) die("stat", st);
            uint64_t want = 0;
            for (int i = 0; i < MAXT * RANGE; i++) want += model[c][i].present;
            if (info.points != want) {
                fprintf(stderr, "crash_kill: round %ld: %s holds %" PRIu64 " points, model %" PRIu64 "\n",
                        k, coll_names[c], info.points, want);
                return 1;
            }
        }
        st = cairn_close(db);
        if (st) die("close", st);
        for (int t = 0; t < MAXT; t++) free(logs[t].v);
    }
    rm_rf(base);
    printf("crash_kill: %ld kills survived; %ld acknowledged commits checked; "
           "%ld in-flight commits found durable; %ld recoveries truncated a torn tail; "
           "%ld started from a checkpoint\n",
           kills, acked_total, in_flight_kept, recovered_torn, from_ckpt);
    printf("%ld passed, 0 failed\n", kills);
    return 0;
}
