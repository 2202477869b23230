/*
 * test_fault_loop.c — invariant 7 over checkpoints and recovery: the Nth I/O
 * operation fails (common/io.c fault seam, cio_fault_set), or the Nth
 * memory allocation (tests/oom.h: the program is linked with the
 * allocators wrapped), for n = 1, 2, ... until a run in which no fault
 * fires, and after each run a clean reopen holds exactly what was
 * acknowledged and passes cairn_check().
 *
 * Two phases, each run on a fresh copy of a directory prepared without
 * faults (prepare()):
 *
 *   work      open a database whose log is near the end of its first 2 MiB
 *             segment (one collection, "b", of 2100-d vectors: a vector
 *             spans pages); create two collections; commit (multi-op
 *             transactions, batches, deletes, payloads up to 20 KB: heap
 *             overflow chains), rolling the WAL into its second segment;
 *             checkpoint; commit, drop a collection and create it again
 *             under the same name with another dimension; checkpoint (it
 *             removes the first WAL segment and the dropped collection's
 *             page file is kept for one more); commit; close.
 *   recover   cairn_open of a database holding two checkpoints, a WAL tail
 *             after the second (a collection created and filled, commits),
 *             two page files no checkpoint references (the dropped
 *             collection's, and one written by a checkpoint that failed) and
 *             garbage after the end of the log (a torn tail): the open reads
 *             the meta file, superblock, catalog, every page and the WAL,
 *             zeroes the garbage, fsyncs, removes the files; then close.
 *
 * Faults at the Nth operation of all kinds the seam counts (write, sync,
 * metadata, read: one index space; SHORT fires on writes and reads only, so
 * its loops count those). Default (meson test), per phase: every n with a
 * fault once and with a fault from n on (persistent), EIO and ENOSPC taking
 * turns (n = 1, 4, 5, 8, ...: EIO; 2, 3, 6, 7, ...: ENOSPC), and every n
 * with a SHORT write or read once and persistent; odd n on the posix
 * backend, even n on the default one (io_uring where the machine has it).
 * --full: each of {EIO, ENOSPC, SHORT} x {once, persistent} at every n on
 * both backends, in the index space of all ops and of each op kind alone
 * (write, sync, meta, read). In both: ENOMEM, once and persistent, at
 * every allocation of the library's (jansson's included) in the work and
 * recover phases, and in a third phase, reads: a filter parse, a filtered
 * exact search and a get with payload on each collection of the fixture
 * (fresh open each run: payload trees are cached), then the rows of a
 * JSON-lines file through the cairn tool's import reader (cli/vecfile.c);
 * they must give the fault-free answers or fail with CAIRN_ENOMEM, never
 * a shorter answer (a point whose payload could not be parsed for the
 * filter fails the search). Reads at every n to the 256th and for 48
 * from the start of each part (a collection's search, its get, the
 * import), every 7th
 * elsewhere (every n with --full).
 *
 * Each call of a run either succeeds or fails cleanly: the injected status
 * (CAIRN_EIO / CAIRN_ENOSPC / CAIRN_ENOMEM), CAIRN_EPOISONED after a
 * failed WAL write or sync or a durable change that could not be applied
 * in memory, or CAIRN_ENOTFOUND / CAIRN_EEXIST / CAIRN_EDIM for an operation
 * that an earlier failed create or drop left without its premise; with a
 * message naming the database path (the collection, for those three). A
 * SHORT fault never fails anything (the I/O layer resubmits the rest). An
 * open under a fault that succeeds must show exactly the fixture. Then,
 * without faults: the reopen must succeed and show the model of the
 * acknowledged steps plus some subset of the steps that failed with the
 * injected status (a commit whose fsync failed may be durable: whole or not
 * at all), and no other state; steps that failed otherwise must be absent
 * (CAIRN_ENOMEM promises the log never got the change: cairn.h), except
 * the first CAIRN_EPOISONED of an ENOMEM run, the call whose durable
 * change could not be applied in memory (in doubt here; present).
 * cairn_check() passes; after recovery the page files are exactly those of
 * checkpoint 2. The recovered database then takes a commit and a
 * checkpoint, and a second reopen shows them.
 *
 * A run that hangs is stopped by an alarm naming it (no run takes seconds).
 * A failure prints the line to rerun that one run (--phase ... --only ...).
 *
 *   test_fault_loop [--full] [--phase work|recover|reads] [--kind KIND]
 *                   [--only KIND,once|persist,N[,MASK[,posix|default]]]
 *                   [--verbose]... [--keep]
 *   --kind     only the loops of one fault kind (EIO, ENOSPC, SHORT, ENOMEM)
 *   --only     one run, e.g. --phase recover --only ENOSPC,once,17,all,posix
 *   --keep     keep the test's directory when a run fails
 *   env CAIRN_SEED      the workload's data (printed)
 *   env CAIRN_NTH_MAX   safety bound of each loop (default 5000)
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cairn.h"
#include "cli/vecfile.h"
#include "common/io.h"
#include "oom.h"
#include "testutil.h"

static char tmpbase[512];
static uint64_t g_seed;
static int g_verbose;
static bool g_keep;
static const char *g_kind; /* --kind: only the loops of this fault kind */

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("fault_loop: FAIL: ", stdout);
    vprintf(fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
    cio_fault_set(NULL);
    oom_clear();
    if (!g_keep)
        tu_rm_rf(tmpbase);
    else
        printf("fault_loop: kept %s\n", tmpbase);
    exit(1);
}

/* ---- the run being done, for failure messages and the watchdog ---------- */

static char g_run[160];

static void on_alarm(int sig)
{
    (void)sig;
    char m[256];
    int n = snprintf(m, sizeof m, "fault_loop: FAIL: run %s hung (no progress in 120 s)\n",
                     g_run);
    if (n > 0)
        (void)!write(1, m, (size_t)n);
    _exit(1);
}

/* ---- copying a prepared directory ----------------------------------------- */

static void copy_tree(const char *from, const char *to)
{
    if (tu_copy_tree(from, to) != 0)
        die("copy %s to %s: %s", from, to, tu_error());
}

/* Page files in dir/collections. */
static size_t count_page_files(const char *dir)
{
    char p[700];
    snprintf(p, sizeof p, "%s/collections", dir);
    DIR *d = opendir(p);
    size_t files = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        files += strstr(e->d_name, ".pages") != NULL;
    if (d)
        closedir(d);
    return files;
}

/* ---- the workload ----------------------------------------------------------- */

#define MAXOPS 24
#define MAXSTEPS 64

enum step_kind { SK_CREATE, SK_DROP, SK_TX, SK_BATCH, SK_DELETES, SK_CKPT };

struct sop {
    const char *coll;
    uint32_t dim;
    bool del;
    uint64_t id;
    uint32_t vseed, pad; /* pad TU_NO_PAYLOAD: none */
};

struct step {
    enum step_kind kind;
    const char *coll; /* DDL, batches */
    uint32_t dim;
    cairn_metric metric;
    int n;
    struct sop op[MAXOPS];
};

struct workload {
    struct step s[MAXSTEPS];
    int n;
};

/* Collections while the workload is generated: name and current dimension. */
struct gcoll {
    const char *name;
    uint32_t dim;
    uint32_t ids;
    bool live;
};

static uint32_t gen_pad(uint64_t *r)
{
    uint64_t x = tu_splitmix(r) % 16;
    if (x < 4)
        return TU_NO_PAYLOAD;
    if (x < 14)
        return (uint32_t)(tu_splitmix(r) % 300);
    return 9000 + (uint32_t)(tu_splitmix(r) % 11000); /* spans heap pages */
}

static struct step *add(struct workload *w, enum step_kind k)
{
    if (w->n == MAXSTEPS)
        die("workload: more than %d steps", MAXSTEPS);
    struct step *s = &w->s[w->n++];
    memset(s, 0, sizeof *s);
    s->kind = k;
    return s;
}

static void add_ddl(struct workload *w, enum step_kind k, struct gcoll *c, uint32_t dim,
                    cairn_metric m)
{
    struct step *s = add(w, k);
    s->coll = c->name;
    s->dim = dim;
    s->metric = m;
    if (k == SK_CREATE)
        c->dim = dim;
    c->live = k == SK_CREATE;
}

/* A transaction of 1..6 operations over the live collections. */
static void add_mixed(struct workload *w, uint64_t *r, struct gcoll *gc, int ngc)
{
    struct step *s = add(w, SK_TX);
    s->n = 1 + (int)(tu_splitmix(r) % 6);
    for (int i = 0; i < s->n; i++) {
        struct gcoll *c;
        do
            c = &gc[tu_splitmix(r) % (uint64_t)ngc];
        while (!c->live);
        struct sop *o = &s->op[i];
        o->coll = c->name;
        o->dim = c->dim;
        o->id = tu_splitmix(r) % c->ids;
        o->del = tu_splitmix(r) % 5 == 0;
        o->vseed = (uint32_t)tu_splitmix(r);
        o->pad = gen_pad(r);
    }
}

/* A batch of n upserts (ids spread over the collection; `same`: ids 0..n-1,
 * so that repeated batches replace the same points) or n deletes. */
static void add_batch(struct workload *w, uint64_t *r, struct gcoll *c, int n, bool del,
                      bool same)
{
    struct step *s = add(w, del ? SK_DELETES : SK_BATCH);
    s->coll = c->name;
    s->dim = c->dim;
    s->n = n;
    for (int i = 0; i < n; i++) {
        struct sop *o = &s->op[i];
        o->coll = c->name;
        o->dim = c->dim;
        o->id = del ? tu_splitmix(r) % c->ids
              : same ? (uint64_t)i
                     : (uint64_t)i * 3 + tu_splitmix(r) % 3;
        o->del = del;
        o->vseed = (uint32_t)tu_splitmix(r);
        o->pad = gen_pad(r);
    }
}

/* WAL bytes a batch step will take, roughly (vectors, payloads, headers). */
static uint64_t step_bytes(const struct step *s)
{
    uint64_t b = 64;
    for (int i = 0; i < s->n; i++)
        b += 64 + (uint64_t)s->op[i].dim * 4 +
             (s->op[i].pad == TU_NO_PAYLOAD ? 0 : s->op[i].pad + 24);
    return b;
}

/* The three workloads, from one seed:
 *   pre   (the work phase's starting database, run without faults): "b"
 *         created and the same 24 points upserted again and again, ~1.75
 *         MB of WAL, so that the work phase rolls the log into its second
 *         2 MiB segment without writing megabytes in every run (and the
 *         state stays small: every run reads it back a few times);
 *   work  the phase under faults (see the top of the file);
 *   tail  the recovery fixture's steps after the work: a collection created
 *         and filled, a checkpoint that fails on purpose (leaving that
 *         collection's page file behind), more commits. */
static void build_all(struct workload *pre, struct workload *work, struct workload *tail,
                      uint64_t seed)
{
    uint64_t r = seed;
    struct gcoll gc[3] = {{"a", 16, 40, false}, {"b", 2100, 72, false}, {"c", 8, 30, false}};
    struct gcoll late = {"late", 4, 10, false};
    pre->n = work->n = tail->n = 0;

    add_ddl(pre, SK_CREATE, &gc[1], 2100, CAIRN_METRIC_DOT);
    for (uint64_t bytes = 0; bytes < 1750000;) {
        add_batch(pre, &r, &gc[1], MAXOPS, false, true);
        bytes += step_bytes(&pre->s[pre->n - 1]);
    }

    add_ddl(work, SK_CREATE, &gc[0], 16, CAIRN_METRIC_L2);
    add_ddl(work, SK_CREATE, &gc[2], 8, CAIRN_METRIC_COSINE);
    add_batch(work, &r, &gc[1], MAXOPS, false, false); /* into the second segment */
    add_batch(work, &r, &gc[1], MAXOPS, false, false);
    for (int i = 0; i < 4; i++)
        add_mixed(work, &r, gc, 3);
    add_batch(work, &r, &gc[0], 4, true, false);
    add(work, SK_CKPT);
    for (int i = 0; i < 2; i++)
        add_mixed(work, &r, gc, 3);
    add_ddl(work, SK_DROP, &gc[2], 0, 0);
    add_mixed(work, &r, gc, 3);
    add_ddl(work, SK_CREATE, &gc[2], 12, CAIRN_METRIC_L2);
    for (int i = 0; i < 2; i++)
        add_mixed(work, &r, gc, 3);
    add(work, SK_CKPT); /* removes the first WAL segment */
    for (int i = 0; i < 2; i++)
        add_mixed(work, &r, gc, 3);
    add_batch(work, &r, &gc[1], 3, true, false);

    add_ddl(tail, SK_CREATE, &late, 4, CAIRN_METRIC_L2);
    add_batch(tail, &r, &late, 5, false, false);
    add(tail, SK_CKPT); /* fails on purpose: see prepare() */
    for (int i = 0; i < 6; i++)
        add_mixed(tail, &r, gc, 3);
    add_batch(tail, &r, &gc[1], 6, false, false);
}

static float *vbuf[MAXOPS];
static char *pbuf[MAXOPS];
static size_t plen[MAXOPS];

static void gen_point(const struct sop *o, int i)
{
    tu_gen_vector(o->vseed, vbuf[i], o->dim);
    free(pbuf[i]);
    pbuf[i] = NULL;
    plen[i] = 0;
    if (o->pad != TU_NO_PAYLOAD) {
        oom_pause(); /* the test's data, not the library's allocation */
        pbuf[i] = tu_gen_payload(o->vseed, o->pad, &plen[i]);
        oom_resume();
        if (!pbuf[i])
            die("out of memory");
    }
}

/* Runs one step; on failure msg gets cairn_last_error(). */
static cairn_status run_step(cairn_db *db, const struct step *s, char *msg, size_t msz)
{
    cairn_status st = CAIRN_OK;
    msg[0] = 0;
    switch (s->kind) {
    case SK_CREATE:
        st = cairn_collection_create(db, s->coll, s->dim, s->metric);
        break;
    case SK_DROP:
        st = cairn_collection_drop(db, s->coll);
        break;
    case SK_CKPT:
        st = cairn_checkpoint(db, NULL);
        break;
    case SK_BATCH: {
        cairn_point pts[MAXOPS];
        for (int i = 0; i < s->n; i++) {
            gen_point(&s->op[i], i);
            pts[i] = (cairn_point){.id = s->op[i].id, .vector = vbuf[i], .payload = pbuf[i],
                                   .payload_len = plen[i]};
        }
        st = cairn_upsert_batch(db, s->coll, pts, (size_t)s->n, s->dim, NULL);
        break;
    }
    case SK_DELETES: {
        uint64_t ids[MAXOPS];
        for (int i = 0; i < s->n; i++)
            ids[i] = s->op[i].id;
        st = cairn_delete_batch(db, s->coll, ids, (size_t)s->n, NULL);
        break;
    }
    case SK_TX: {
        cairn_txn *t = NULL;
        st = cairn_txn_begin(db, &t);
        for (int i = 0; i < s->n && !st; i++) {
            const struct sop *o = &s->op[i];
            if (o->del) {
                st = cairn_txn_delete(t, o->coll, o->id);
            } else {
                gen_point(o, i);
                st = cairn_txn_upsert(t, o->coll, o->id, vbuf[i], o->dim, pbuf[i], plen[i]);
            }
        }
        if (!st)
            st = cairn_txn_commit(t, NULL);
        if (st)
            snprintf(msg, msz, "%s", cairn_last_error());
        cairn_txn_free(t);
        return st;
    }
    }
    if (st)
        snprintf(msg, msz, "%s", cairn_last_error());
    return st;
}

/* What a step does to the model (a step the database could not have
 * applied, e.g. into a collection that does not exist there, changes
 * nothing: the model mirrors that). */
static void model_step(struct tu_model *m, const struct step *s)
{
    switch (s->kind) {
    case SK_CREATE:
        (void)tu_model_create(m, s->coll, s->dim, s->metric);
        break;
    case SK_DROP:
        (void)tu_model_drop(m, s->coll);
        break;
    case SK_CKPT:
        break;
    case SK_BATCH:
    case SK_DELETES:
    case SK_TX: {
        /* all or nothing: every collection it names must exist (with the
         * dimension the step was made for) */
        for (int i = 0; i < s->n; i++) {
            bool ok = false;
            for (size_t c = 0; c < m->n; c++)
                ok |= !strcmp(m->c[c].name, s->op[i].coll) && m->c[c].dim == s->op[i].dim;
            if (!ok)
                return;
        }
        for (int i = 0; i < s->n; i++) {
            const struct sop *o = &s->op[i];
            if (o->del)
                (void)tu_model_delete(m, o->coll, o->id);
            else
                (void)tu_model_upsert(m, o->coll, o->id, o->vseed, o->pad);
        }
        break;
    }
    }
}

/* ---- outcomes and the oracle -------------------------------------------------- */

enum outcome { OC_NOTRUN = 0, OC_ACK, OC_DOUBT, OC_ABSENT };

/* Workloads run in order (w[0], w[1], w[2]; NULL: none) and what became
 * of each step. */
#define NPARTS 3
struct history {
    const struct workload *w[NPARTS];
    enum outcome oc[NPARTS][MAXSTEPS];
};

/* Appends workload w with every step acknowledged. */
static void history_acked(struct history *h, const struct workload *w)
{
    int p = 0;
    while (h->w[p])
        p++;
    h->w[p] = w;
    for (int i = 0; i < w->n; i++)
        h->oc[p][i] = OC_ACK;
}

static void model_build(struct tu_model *m, const struct history *h, uint32_t doubt_mask)
{
    tu_model_free(m);
    unsigned k = 0;
    for (int p = 0; p < NPARTS; p++) {
        if (!h->w[p])
            continue;
        for (int i = 0; i < h->w[p]->n; i++) {
            enum outcome o = h->oc[p][i];
            bool apply = o == OC_ACK;
            if (o == OC_DOUBT)
                apply = (doubt_mask >> k++) & 1u;
            if (apply)
                model_step(m, &h->w[p]->s[i]);
        }
    }
}

static unsigned count_doubts(const struct history *h)
{
    unsigned k = 0;
    for (int p = 0; p < NPARTS; p++)
        for (int i = 0; h->w[p] && i < h->w[p]->n; i++)
            k += h->oc[p][i] == OC_DOUBT;
    return k;
}

/* Which doubt subset the database shows (-1: none of them; why says how it
 * differs from the acknowledged-only model). */
static int match_model(cairn_db *db, const struct history *h, struct tu_model *found, char *why,
                       size_t wn)
{
    struct tu_dig got = {0}, want = {0};
    if (tu_state_digest(db, &got, 0) != 0)
        die("run %s: state digest: %s", g_run, tu_error());
    unsigned k = count_doubts(h);
    if (k > 8)
        die("run %s: %u steps in doubt", g_run, k);
    int hit = -1;
    for (uint32_t mask = 0; mask < (1u << k) && hit < 0; mask++) {
        model_build(found, h, mask);
        if (tu_model_digest(found, &want) != 0)
            die("model digest: %s", tu_error());
        if (tu_dig_eq(&got, &want))
            hit = (int)mask;
    }
    if (hit < 0) {
        model_build(found, h, 0);
        tu_model_explain(db, found, why, wn);
    }
    tu_dig_free(&got);
    tu_dig_free(&want);
    return hit;
}

/* ---- faults -------------------------------------------------------------------- */

struct fkind {
    const char *name;
    enum cio_fault_kind kind;
    cairn_status st; /* CAIRN_OK: must never fail anything */
    bool alloc;      /* not an I/O fault: the n-th allocation fails (oom.h) */
};

static const struct fkind fkinds[] = {
    {"EIO", CIO_FAULT_EIO, CAIRN_EIO, false},
    {"ENOSPC", CIO_FAULT_ENOSPC, CAIRN_ENOSPC, false},
    {"SHORT", CIO_FAULT_SHORT, CAIRN_OK, false},
    {"ENOMEM", CIO_FAULT_EIO, CAIRN_ENOMEM, true},
};

struct mask {
    const char *name;
    unsigned ops;
};

static const struct mask masks[] = {
    {"all", CIO_FOP_WRITE | CIO_FOP_SYNC | CIO_FOP_META | CIO_FOP_READ},
    {"write", CIO_FOP_WRITE},
    {"sync", CIO_FOP_SYNC},
    {"meta", CIO_FOP_META},
    {"read", CIO_FOP_READ},
};

enum phase { PH_WORK, PH_RECOVER, PH_READS /* read_loop, ENOMEM only */ };
static const char *phase_name[] = {"work", "recover"};

struct pstats {
    uint64_t runs, fired, clean;
    uint64_t failed_open, failed_ddl, failed_commit, failed_ckpt, failed_close;
    uint64_t doubt_present, doubt_absent;
    uint64_t max_ops;
    double secs;
};

static struct pstats g_stats[2];

struct run {
    enum phase ph;
    const struct fkind *fk;
    const struct mask *mk;
    int persistent;
    uint64_t n;
    cairn_io_backend io;
};

static cairn_options make_opts(cairn_io_backend io)
{
    cairn_options o = tu_opts(CAIRN_DURABILITY_SYNC, io, 2);
    o.checkpoint_wal_bytes = UINT64_MAX; /* only the workload's checkpoints */
    o.checkpoint_interval_s = 0;
    return o;
}

/* Dies unless a call's failure is clean (see the top of the file);
 * ddl_failed: a create or drop of this run failed before. */
static void check_failure(const struct run *r, const char *dir, const char *what,
                          cairn_status st, const char *msg, bool ddl_failed)
{
    bool ok = false;
    if (r->fk->st != CAIRN_OK)
        ok = st == r->fk->st || st == CAIRN_EPOISONED ||
             ((st == CAIRN_ENOTFOUND || st == CAIRN_EEXIST || st == CAIRN_EDIM) && ddl_failed);
    if (!ok)
        die("run %s: %s failed with %s: %s", g_run, what, cairn_status_name(st), msg);
    if (!msg[0])
        die("run %s: %s failed with %s and an empty message", g_run, what,
            cairn_status_name(st));
    bool validation = st == CAIRN_ENOTFOUND || st == CAIRN_EEXIST || st == CAIRN_EDIM;
    if (!validation && !strstr(msg, dir))
        die("run %s: %s failed with %s; the message does not name the database \"%s\": %s",
            g_run, what, cairn_status_name(st), dir, msg);
}

/* The fault-free checks after a run: reopen, oracle, cairn_check, then a
 * commit and a checkpoint on the recovered database survive a reopen. */
static void verify(const struct run *r, const char *dir, const struct history *h,
                   struct pstats *ps)
{
    cairn_options o = make_opts(CAIRN_IO_DEFAULT);
    cairn_db *db = NULL;
    cairn_status st = cairn_open(dir, &o, &db);
    if (st)
        die("run %s: clean reopen failed: %s: %s", g_run, cairn_status_name(st),
            cairn_last_error());
    struct tu_model m = {0};
    char why[512];
    int hit = match_model(db, h, &m, why, sizeof why);
    if (hit < 0)
        die("run %s: after reopen the database is not the acknowledged state plus a subset "
            "of the %u step(s) in doubt: %s",
            g_run, count_doubts(h), why);
    unsigned k = count_doubts(h);
    unsigned present = (unsigned)__builtin_popcount((unsigned)hit);
    ps->doubt_present += present;
    ps->doubt_absent += k - present;
    cairn_check_report rep;
    memset(&rep, 0, sizeof rep);
    st = cairn_check(db, &rep);
    if (st || rep.problems)
        die("run %s: cairn_check: %s (%u problems): %s / %s", g_run, cairn_status_name(st),
            rep.problems, rep.first_problem, cairn_last_error());
    if (r->ph == PH_RECOVER) {
        /* the page files of checkpoint 2 (a, b and the second c) and no
         * other: the first c's (dropped before checkpoint 2) and late's
         * (written by the checkpoint that failed) were removed by an open */
        size_t files = count_page_files(dir);
        if (files != 3)
            die("run %s: %zu page files after recovery, expected 3", g_run, files);
    }
    /* the recovered database works: a commit, a checkpoint, a reopen */
    static struct step post;
    post = (struct step){.kind = SK_TX, .n = 2};
    post.op[0] = (struct sop){.coll = "post", .dim = 3, .id = 1, .vseed = 11, .pad = 20};
    post.op[1] = (struct sop){.coll = "post", .dim = 3, .id = 2, .vseed = 12,
                              .pad = TU_NO_PAYLOAD};
    char msg[1024];
    st = cairn_collection_create(db, "post", 3, CAIRN_METRIC_L2);
    if (st)
        die("run %s: create after recovery: %s: %s", g_run, cairn_status_name(st),
            cairn_last_error());
    (void)tu_model_create(&m, "post", 3, CAIRN_METRIC_L2);
    st = run_step(db, &post, msg, sizeof msg);
    if (st)
        die("run %s: commit after recovery: %s: %s", g_run, cairn_status_name(st), msg);
    model_step(&m, &post);
    st = cairn_checkpoint(db, NULL);
    if (st)
        die("run %s: checkpoint after recovery: %s: %s", g_run, cairn_status_name(st),
            cairn_last_error());
    st = cairn_close(db);
    if (st)
        die("run %s: close after recovery: %s: %s", g_run, cairn_status_name(st),
            cairn_last_error());
    db = NULL;
    st = cairn_open(dir, &o, &db);
    if (st)
        die("run %s: second reopen failed: %s: %s", g_run, cairn_status_name(st),
            cairn_last_error());
    struct tu_dig got = {0}, want = {0};
    if (tu_state_digest(db, &got, 0) != 0 || tu_model_digest(&m, &want) != 0)
        die("run %s: digest: %s", g_run, tu_error());
    if (!tu_dig_eq(&got, &want)) {
        tu_model_explain(db, &m, why, sizeof why);
        die("run %s: after the post-recovery commit, checkpoint and reopen: %s", g_run, why);
    }
    tu_dig_free(&got);
    tu_dig_free(&want);
    tu_model_free(&m);
    st = cairn_close(db);
    if (st)
        die("run %s: close: %s: %s", g_run, cairn_status_name(st), cairn_last_error());
}

/* ---- the phases ------------------------------------------------------------------- */

static struct workload g_pre, g_work, g_tail;
static char g_template[600], g_fixture[600];
static struct history g_fixture_hist; /* pre, work, tail: all acknowledged */
static struct tu_model g_fixture_model;

static void install(const struct run *r)
{
    if (r->fk->alloc) {
        oom_set(r->n, r->persistent);
        return;
    }
    struct cio_fault_plan plan = {
        .ops = r->mk->ops, .nth = r->n, .kind = r->fk->kind, .persistent = r->persistent};
    if (r->fk->kind == CIO_FAULT_SHORT)
        plan.ops &= CIO_FOP_WRITE | CIO_FOP_READ;
    cio_fault_set(&plan);
}

/* Runs the steps of w under the plan and records what became of each. */
static void run_steps(const struct run *r, const char *dir, cairn_db *db,
                      const struct workload *w, enum outcome *oc, bool *ddl_failed,
                      struct pstats *ps, bool *any_failed)
{
    char msg[1100];
    bool poisoned = false;
    for (int i = 0; i < w->n; i++) {
        const struct step *s = &w->s[i];
        cairn_status st = run_step(db, s, msg, sizeof msg);
        if (st == CAIRN_OK) {
            oc[i] = OC_ACK;
            continue;
        }
        char what[64];
        snprintf(what, sizeof what, "step %d (%s)", i,
                 s->kind == SK_CKPT     ? "checkpoint"
                 : s->kind == SK_CREATE ? "create"
                 : s->kind == SK_DROP   ? "drop"
                                        : "commit");
        check_failure(r, dir, what, st, msg, *ddl_failed);
        if (!*any_failed) {
            *any_failed = true;
            if (s->kind == SK_CKPT)
                ps->failed_ckpt++;
            else if (s->kind == SK_CREATE || s->kind == SK_DROP)
                ps->failed_ddl++;
            else
                ps->failed_commit++;
        }
        if (s->kind == SK_CREATE || s->kind == SK_DROP)
            *ddl_failed = true;
        /* the injected I/O status: maybe durable; anything else: never
         * logged. ENOMEM: never logged (cairn.h); the handle is poisoned
         * only by a durable change that could not be applied in memory,
         * which its own call reports as the first CAIRN_EPOISONED (durable:
         * present after the reopen; counted as in doubt), later ones being
         * refusals before the log. */
        if (r->fk->alloc)
            oc[i] = (s->kind != SK_CKPT && st == CAIRN_EPOISONED && !poisoned) ? OC_DOUBT
                                                                             : OC_ABSENT;
        else
            oc[i] = (s->kind != SK_CKPT && st == r->fk->st) ? OC_DOUBT : OC_ABSENT;
        poisoned |= st == CAIRN_EPOISONED;
        if (g_verbose > 1)
            printf("    %s: %s: %s\n", what, cairn_status_name(st), msg);
    }
}

/* One run; returns whether a fault fired, and the ops counted in *ops. */
static bool one_run(const struct run *r, uint64_t *ops_out)
{
    struct pstats *ps = &g_stats[r->ph];
    snprintf(g_run, sizeof g_run, "--phase %s --only %s,%s,%" PRIu64 ",%s,%s",
             phase_name[r->ph], r->fk->name, r->persistent ? "persist" : "once", r->n,
             r->mk->name, r->io == CAIRN_IO_POSIX ? "posix" : "default");
    alarm(120);
    char dir[600];
    snprintf(dir, sizeof dir, "%s/run", tmpbase);
    tu_rm_rf(dir);
    copy_tree(r->ph == PH_WORK ? g_template : g_fixture, dir);

    static struct history h;
    memset(&h, 0, sizeof h);
    bool ddl_failed = false, any_failed = false;
    cairn_options o = make_opts(r->io);
    const char *failed_in = "nothing";
    char msg[1100];

    install(r);
    cairn_db *db = NULL;
    cairn_status st = cairn_open(dir, &o, &db);
    if (st) {
        snprintf(msg, sizeof msg, "%s", cairn_last_error());
        check_failure(r, dir, "open", st, msg, false);
        if (db)
            die("run %s: a failed open returned a handle", g_run);
        ps->failed_open++;
        any_failed = true;
        failed_in = "open";
        if (g_verbose > 1)
            printf("    open: %s: %s\n", cairn_status_name(st), msg);
    } else if (r->ph == PH_WORK) {
        run_steps(r, dir, db, &g_work, h.oc[1], &ddl_failed, ps, &any_failed);
        if (any_failed)
            failed_in = "workload";
    } else {
        /* what the open recovered (read under the plan: no I/O, all in
         * memory) is exactly the fixture */
        struct tu_dig got = {0}, want = {0};
        if (r->fk->alloc)
            oom_pause(); /* the check reads through the library's allocations */
        if (tu_state_digest(db, &got, 0) != 0 || tu_model_digest(&g_fixture_model, &want) != 0)
            die("run %s: digest: %s", g_run, tu_error());
        if (!tu_dig_eq(&got, &want)) {
            char why[512];
            tu_model_explain(db, &g_fixture_model, why, sizeof why);
            die("run %s: the open under the fault succeeded with another state: %s", g_run,
                why);
        }
        tu_dig_free(&got);
        tu_dig_free(&want);
        if (r->fk->alloc)
            oom_resume();
    }
    if (db) {
        st = cairn_close(db);
        if (st) {
            snprintf(msg, sizeof msg, "%s", cairn_last_error());
            check_failure(r, dir, "close", st, msg, ddl_failed);
            if (!any_failed) {
                ps->failed_close++;
                failed_in = "close";
            }
            any_failed = true;
        }
    }
    uint64_t fired = r->fk->alloc ? oom_fired() : cio_fault_fired();
    uint64_t ops = r->fk->alloc ? oom_count() : cio_fault_count();
    cio_fault_set(NULL);
    oom_clear();
    *ops_out = ops;
    if (ops > ps->max_ops)
        ps->max_ops = ops;
    ps->runs++;
    ps->fired += fired;
    if (any_failed && !fired)
        die("run %s: a call failed without an injected fault", g_run);
    if (!any_failed)
        ps->clean++;
    if (g_verbose)
        printf("  run %s: %" PRIu64 " ops, %" PRIu64 " fired, failure in %s\n", g_run, ops,
               fired, failed_in);

    if (r->ph == PH_WORK) {
        h.w[0] = &g_pre;
        for (int i = 0; i < g_pre.n; i++)
            h.oc[0][i] = OC_ACK;
        h.w[1] = &g_work; /* outcomes recorded by run_steps; OC_NOTRUN: absent */
        verify(r, dir, &h, ps);
    } else {
        verify(r, dir, &g_fixture_hist, ps); /* nothing in doubt */
    }
    tu_rm_rf(dir);
    alarm(0);
    return fired > 0;
}

/* ---- preparing the template and the fixture ---------------------------------------- */

static void must(cairn_status st, const char *what)
{
    if (st)
        die("%s: %s: %s", what, cairn_status_name(st), cairn_last_error());
}

static void run_all(cairn_db *db, const struct workload *w, const char *what)
{
    char msg[1100];
    for (int i = 0; i < w->n; i++)
        if (run_step(db, &w->s[i], msg, sizeof msg))
            die("%s, step %d: %s", what, i, msg);
}

static uint64_t last_lsn(cairn_db *db)
{
    cairn_stats s;
    must(cairn_stats_get(db, &s), "stats");
    return s.last_lsn;
}

static void expect_state(cairn_db *db, const struct tu_model *m, const char *what)
{
    struct tu_dig got = {0}, want = {0};
    if (tu_state_digest(db, &got, 0) != 0 || tu_model_digest(m, &want) != 0)
        die("%s: digest: %s", what, tu_error());
    if (!tu_dig_eq(&got, &want)) {
        char why[512];
        tu_model_explain(db, m, why, sizeof why);
        die("%s: the database is not the model: %s", what, why);
    }
    tu_dig_free(&got);
    tu_dig_free(&want);
}

static void prepare(void)
{
    build_all(&g_pre, &g_work, &g_tail, g_seed);
    for (int i = 0; i < MAXOPS; i++) {
        vbuf[i] = malloc(2100 * sizeof(float));
        if (!vbuf[i])
            die("out of memory");
    }
    cairn_options o = make_opts(CAIRN_IO_DEFAULT);
    cairn_db *db = NULL;
    const uint64_t seg = CAIRN_WAL_SEGMENT_MIN;

    /* the work phase's starting point: "b" filled, the log near the end of
     * its first segment */
    snprintf(g_template, sizeof g_template, "%s/template", tmpbase);
    must(cairn_open(g_template, &o, &db), "create template");
    run_all(db, &g_pre, "template");
    uint64_t pre_end = last_lsn(db);
    must(cairn_close(db), "close template");
    if (pre_end >= seg || pre_end < seg / 2)
        die("template: the log ends at LSN %" PRIu64 ", not in the second half of the first "
            "segment",
            pre_end);

    /* the recovery fixture: the work phase without faults, then the tail
     * with a checkpoint that fails at its first sync (the new collection's
     * page file is written and stays behind, referenced by no checkpoint),
     * then garbage where the next record would go (a torn tail) */
    snprintf(g_fixture, sizeof g_fixture, "%s/fixture", tmpbase);
    copy_tree(g_template, g_fixture);
    must(cairn_open(g_fixture, &o, &db), "open fixture");
    run_all(db, &g_work, "fixture work");
    uint64_t work_end = last_lsn(db);
    char msg[1100];
    for (int i = 0; i < g_tail.n; i++) {
        const struct step *s = &g_tail.s[i];
        if (s->kind != SK_CKPT) {
            must(run_step(db, s, msg, sizeof msg), "fixture tail");
            continue;
        }
        struct cio_fault_plan plan = {
            .ops = CIO_FOP_SYNC, .nth = 1, .kind = CIO_FAULT_EIO, .persistent = 0};
        cio_fault_set(&plan);
        cairn_status st = run_step(db, s, msg, sizeof msg);
        cio_fault_set(NULL);
        if (st != CAIRN_EIO)
            die("fixture: the checkpoint meant to fail gave %s: %s", cairn_status_name(st),
                msg);
    }
    uint64_t end = last_lsn(db);
    cairn_collection_info late;
    must(cairn_collection_stat(db, "late", &late), "stat late");
    must(cairn_close(db), "close fixture");
    char p[1024];
    snprintf(p, sizeof p, "%s/collections/%u.pages", g_fixture, late.id);
    struct stat sb;
    if (stat(p, &sb) != 0)
        die("fixture: the failed checkpoint left no page file \"%s\"", p);
    /* a, b, the second c (checkpoint 2), the first c (dropped before it, kept
     * for one more checkpoint), late (written by the failed checkpoint) */
    size_t files = count_page_files(g_fixture);
    if (files != 5)
        die("fixture: %zu page files, expected 5", files);
    if (work_end < seg + seg / 8)
        die("fixture: the work phase ends at LSN %" PRIu64 ", not in the second segment",
            work_end);
    snprintf(p, sizeof p, "%s/wal/00000001-0000000000000000.wal", g_fixture);
    if (stat(p, &sb) == 0)
        die("fixture: checkpoint 2 did not remove the first WAL segment \"%s\"", p);

    uint64_t start = end & ~(seg - 1);
    snprintf(p, sizeof p, "%s/wal/%08x-%016" PRIx64 ".wal", g_fixture, 1u, start);
    int fd = open(p, O_WRONLY);
    if (fd < 0)
        die("open %s: %s", p, strerror(errno));
    unsigned char junk[300];
    uint64_t jr = g_seed ^ 0x7011;
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (unsigned char)(tu_splitmix(&jr) | 1u);
    if (pwrite(fd, junk, sizeof junk, (off_t)(end - start)) != (ssize_t)sizeof junk)
        die("write garbage to %s: %s", p, strerror(errno));
    close(fd);

    /* the fixture opens (on a copy) to its model, from checkpoint 2, with a
     * torn tail truncated and the WAL after the checkpoint replayed */
    memset(&g_fixture_hist, 0, sizeof g_fixture_hist);
    history_acked(&g_fixture_hist, &g_pre);
    history_acked(&g_fixture_hist, &g_work);
    history_acked(&g_fixture_hist, &g_tail);
    model_build(&g_fixture_model, &g_fixture_hist, 0);
    char probe[600];
    snprintf(probe, sizeof probe, "%s/probe", tmpbase);
    copy_tree(g_fixture, probe);
    must(cairn_open(probe, &o, &db), "open fixture copy");
    cairn_stats ps;
    must(cairn_stats_get(db, &ps), "stats");
    if (ps.recovery.checkpoint != 2 || ps.recovery.bytes_truncated == 0 ||
        ps.recovery.txns_applied == 0)
        die("fixture: recovery from checkpoint %" PRIu64 ", %" PRIu64
            " bytes truncated, %" PRIu64 " transactions replayed: not the fixture meant",
            ps.recovery.checkpoint, ps.recovery.bytes_truncated, ps.recovery.txns_applied);
    expect_state(db, &g_fixture_model, "fixture");
    must(cairn_close(db), "close probe");
    tu_rm_rf(probe);
    printf("fault_loop: %d + %d + %d steps; template log ends at LSN %" PRIu64
           "; fixture: checkpoint 2 at redo LSN %" PRIu64 ", %" PRIu64
           " transactions after it, %zu bytes of garbage at LSN %" PRIu64
           ", %zu page files of which checkpoint 2 references 3\n",
           g_pre.n, g_work.n, g_tail.n, pre_end, ps.recovery.start_lsn,
           ps.recovery.txns_applied, sizeof junk, end, files);
    fflush(stdout);
}

/* ---- reads under ENOMEM ------------------------------------------------------------------ */

/* Rows for the import reader (cli/vecfile.c, the cairn tool's import): ids,
 * vectors and payloads with strings long enough to make jansson's lexer
 * and dumper grow their buffers. */
static void write_jsonl(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        die("create %s: %s", path, strerror(errno));
    uint64_t r = g_seed ^ 0x150a;
    /* first, a row whose payload makes the JSON reader allocate for itself:
     * more keys than the validator's stack room (32), escaped keys longer
     * than its stack arena (256 bytes), a real it must hand to strtod that
     * is longer than its stack buffer and the builder's (64 bytes) */
    fprintf(f, "{\"id\": 24, \"vector\": [1, 2, 3, 4, 5, 6], \"payload\": {\"r\": 1");
    for (int k = 0; k < 70; k++)
        fputc('0' + k % 10, f);
    fputs("e230", f);
    for (int k = 0; k < 40; k++)
        fprintf(f, ", \"key%02d\\u00e9abcdef\": %d", k, k);
    fputs("}}\n", f);
    for (int i = 0; i < 24; i++) {
        fprintf(f, "{\"id\": %d, \"vector\": [", i);
        for (int j = 0; j < 6; j++)
            fprintf(f, "%s%.4f", j ? ", " : "", tu_unit(&r) * 8 - 4);
        fprintf(f, "], \"payload\": {\"s\": %d, \"name\": \"", i);
        for (int k = (int)(tu_splitmix(&r) % 90); k > 0; k--)
            fputc('a' + (int)(tu_splitmix(&r) % 26), f);
        fprintf(f, "\", \"tags\": [\"t%d\", \"u\"], \"m\": {\"x\": %.3f}}}\n", i % 5,
                tu_unit(&r));
    }
    if (fclose(f) != 0)
        die("write %s: %s", path, strerror(errno));
}

/* Reads every row of the import file at path into d; a failure is
 * CAIRN_ENOMEM when the reader says it ran out of memory (the only failure
 * the file can meet), else CAIRN_EIO; its message in msg. */
static cairn_status import_pass(const char *path, struct tu_dig *d, char *msg, size_t msz)
{
    struct vf_opts vo = {.format = VF_JSONL};
    vf_reader *vr = NULL;
    char err[512];
    const char *why = NULL;
    if (!vf_open(path, &vo, &vr, err, sizeof err)) {
        why = err;
    } else {
        struct vf_row row;
        int rc;
        while ((rc = vf_next(vr, &row)) == 1) {
            oom_pause();
            if (tu_dig_add(d, &row.id, sizeof row.id) != 0 ||
                tu_dig_add(d, row.vec, row.dim * sizeof *row.vec) != 0 ||
                tu_dig_add(d, row.payload ? row.payload : "-",
                           row.payload ? row.payload_len : 1) != 0)
                die("digest: %s", tu_error());
            oom_resume();
        }
        if (rc < 0) {
            snprintf(err, sizeof err, "%s", vf_error(vr));
            why = err;
        }
        vf_close(vr, NULL, 0);
    }
    if (!why)
        return CAIRN_OK;
    snprintf(msg, msz, "%s", why);
    return strstr(why, "out of memory") ? CAIRN_ENOMEM : CAIRN_EIO;
}

/* Where each part of a read pass starts, in allocations counted since
 * the seam was armed (filled by the fault-free pass, which counts): the
 * loop fails every allocation near each, as it does at the start. */
#define READ_MARKS 16
static uint64_t g_read_marks[READ_MARKS];
static size_t g_nread_marks;
static bool g_marking;

static void read_mark(void)
{
    if (g_marking && g_nread_marks < READ_MARKS)
        g_read_marks[g_nread_marks++] = oom_count();
}

/* One read pass over every collection of an open copy of the fixture:
 * parse a filter on the payloads, a filtered exact search, a get of the
 * nearest hit with its payload; then the import file's rows. Returns the
 * first failure's status (its message in msg), or CAIRN_OK with the
 * answers digested into d. */
static cairn_status read_pass(cairn_db *db, const char *jsonl, struct tu_dig *d, char *msg,
                              size_t msz)
{
    static const char fj[] = "{\"must\":[{\"key\":\"s\",\"range\":{\"gte\":40}}]}";
    static const char *const names[] = {"a", "b", "c", "late"};
    d->len = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        read_mark();
        cairn_collection_info ci;
        cairn_status st = cairn_collection_stat(db, names[i], &ci);
        cairn_filter *f = NULL;
        if (!st)
            st = cairn_filter_parse(fj, sizeof fj - 1, &f);
        cairn_hit hits[16];
        uint32_t nh = 0;
        if (!st) {
            oom_pause(); /* the query: the test's data */
            float *q = malloc(ci.dim * sizeof *q);
            oom_resume();
            if (!q)
                die("out of memory");
            tu_gen_vector(7 + (uint32_t)i, q, ci.dim);
            st = cairn_search(db, names[i], q, ci.dim, 16, f, hits, &nh);
            if (!st && nh) {
                read_mark();
                char *pl = NULL;
                st = cairn_get(db, names[i], hits[0].id, q, ci.dim, &pl);
                oom_pause();
                if (!st && (tu_dig_add(d, pl ? pl : "-", pl ? strlen(pl) + 1 : 2) != 0 ||
                            tu_dig_add(d, q, ci.dim * sizeof *q) != 0))
                    die("digest: %s", tu_error());
                oom_resume();
                cairn_free(pl);
            }
            free(q);
        }
        cairn_filter_free(f);
        if (st) {
            snprintf(msg, msz, "%s", cairn_last_error());
            return st;
        }
        oom_pause();
        for (uint32_t j = 0; j < nh; j++) /* field by field: the struct has padding */
            if (tu_dig_add(d, &hits[j].id, sizeof hits[j].id) != 0 ||
                tu_dig_add(d, &hits[j].distance, sizeof hits[j].distance) != 0)
                die("digest: %s", tu_error());
        if (tu_dig_add(d, &nh, sizeof nh) != 0)
            die("digest: %s", tu_error());
        oom_resume();
    }
    read_mark();
    return import_pass(jsonl, d, msg, msz);
}

/* Reads when memory runs out: on a fresh open of a copy of the fixture
 * (payload trees are parsed once and cached), read_pass with the n-th
 * allocation failing, for n = 1, 2, ... until one in which none failed.
 * Each pass gives the answers of a pass without faults, or CAIRN_ENOMEM
 * (a filter the parse could not build; a search: a point the filter could
 * not be tested on fails it, never a silently shorter answer; the import
 * reader: a row it could not read), naming the database (the import
 * file, under it) unless it was the filter's parse, which has none. */
static bool near_read_mark(uint64_t n)
{
    for (size_t i = 0; i < g_nread_marks; i++)
        if (n > g_read_marks[i] && n <= g_read_marks[i] + 48)
            return true;
    return false;
}

static void read_loop(int persistent, uint64_t only_n, bool full)
{
    char dir[600];
    snprintf(dir, sizeof dir, "%s/reads", tmpbase);
    tu_rm_rf(dir);
    copy_tree(g_fixture, dir);
    char jsonl[700];
    snprintf(jsonl, sizeof jsonl, "%s/rows.jsonl", dir);
    write_jsonl(jsonl);
    cairn_options o = make_opts(CAIRN_IO_DEFAULT);
    cairn_db *db = NULL;
    must(cairn_open(dir, &o, &db), "open for reads");
    struct tu_dig want = {0}, got = {0};
    char msg[1100];
    g_marking = true;
    g_nread_marks = 0;
    oom_set(UINT64_MAX, false); /* counts, never fails */
    cairn_status st = read_pass(db, jsonl, &want, msg, sizeof msg);
    oom_clear();
    g_marking = false;
    if (st)
        die("reads without faults: %s: %s", cairn_status_name(st), msg);
    must(cairn_close(db), "close after reads");
    uint64_t n = only_n ? only_n : 1, failed = 0, max = tu_seed_env("CAIRN_NTH_MAX", 5000);
    /* unless full: every allocation up to the 256th and the first 48 of
     * each part of the pass (each collection's filter, search and get, the
     * import's first rows: each kind of step once), every 7th elsewhere
     * (the same steps again for the other points and rows) */
    for (;; n += full || n < 256 || near_read_mark(n) ? 1 : 7) {
        if (n > max && !only_n)
            die("reads: no end of the loop in %" PRIu64 " runs (CAIRN_NTH_MAX)", max);
        snprintf(g_run, sizeof g_run, "--phase reads --only ENOMEM,%s,%" PRIu64,
                 persistent ? "persist" : "once", n);
        alarm(120);
        must(cairn_open(dir, &o, &db), "open for reads");
        oom_set(n, persistent);
        st = read_pass(db, jsonl, &got, msg, sizeof msg);
        uint64_t fired = oom_fired();
        oom_clear();
        must(cairn_close(db), "close after reads");
        if (g_verbose) {
            printf("  run %s: %s%s%s\n", g_run, cairn_status_name(st), st ? ": " : "", st ? msg : "");
            fflush(stdout);
        }
        if (st) {
            failed++;
            if (st != CAIRN_ENOMEM || !fired)
                die("run %s: a read failed with %s (%s a fault): %s", g_run,
                    cairn_status_name(st), fired ? "after" : "without", msg);
            if (!strstr(msg, dir) && !strstr(msg, "filter"))
                die("run %s: CAIRN_ENOMEM names neither the database \"%s\" nor the filter: %s",
                    g_run, dir, msg);
        } else if (!tu_dig_eq(&got, &want)) {
            die("run %s: the reads succeeded under the fault with other answers", g_run);
        }
        alarm(0);
        if (!fired || only_n)
            break;
    }
    tu_dig_free(&want);
    tu_dig_free(&got);
    tu_rm_rf(dir);
    printf("fault_loop: reads   ENOMEM       %-10s          : n = 1..%" PRIu64 " (%s), %" PRIu64
           " passes failed with CAIRN_ENOMEM, the others gave the fault-free answers\n",
           persistent ? "persistent" : "once", n,
           full ? "every n" : "every n to 256 and near each part's start, else every 7th",
           failed);
    fflush(stdout);
}

/* ---- loops ------------------------------------------------------------------------------ */

/* n = 1, 2, ... with the fault kind kinds[(n / 2) % nk] (so that with two
 * kinds each meets both backends), until a run in which no fault fired
 * with n past the op count of a run without faults (a dry run first) and
 * of every "once" run (background threads make the count vary a little). */
static void loop(enum phase ph, const struct fkind *const *kinds, int nk, int persistent,
                 const struct mask *mk, bool both_backends)
{
    bool wanted = !g_kind;
    for (int k = 0; k < nk; k++)
        wanted |= g_kind && !strcmp(kinds[k]->name, g_kind);
    if (!wanted)
        return;
    uint64_t max = tu_seed_env("CAIRN_NTH_MAX", 5000);
    struct run dry = {.ph = ph, .fk = kinds[0], .mk = mk, .n = UINT64_MAX,
                      .io = CAIRN_IO_DEFAULT};
    uint64_t seen = 0, ops = 0;
    if (one_run(&dry, &seen))
        die("a dry run saw a fault");
    uint64_t n = 1, runs = 0, fired_runs = 0;
    for (; n <= max; n++) {
        bool any = false;
        for (int b = 0; b < (both_backends ? 2 : 1); b++) {
            struct run r = {.ph = ph, .fk = kinds[(n / 2) % (uint64_t)nk], .mk = mk,
                            .persistent = persistent, .n = n};
            if (both_backends)
                r.io = b ? CAIRN_IO_DEFAULT : CAIRN_IO_POSIX;
            else
                r.io = (n & 1) ? CAIRN_IO_POSIX : CAIRN_IO_DEFAULT;
            bool f = one_run(&r, &ops);
            if (!persistent && ops > seen)
                seen = ops;
            any |= f;
            runs++;
            fired_runs += f;
        }
        if (!any && n > seen)
            break;
    }
    if (n > max)
        die("phase %s: no end of the loop in %" PRIu64 " runs (CAIRN_NTH_MAX)", phase_name[ph],
            max);
    char kn[32];
    snprintf(kn, sizeof kn, "%s%s%s", kinds[0]->name, nk > 1 ? "/" : "",
             nk > 1 ? kinds[1]->name : "");
    printf("fault_loop: %-7s %-12s %-10s mask %-5s: n = 1..%" PRIu64 " (%" PRIu64
           " ops without a fault), %" PRIu64 " runs, a fault fired in %" PRIu64 "\n",
           phase_name[ph], kn, persistent ? "persistent" : "once", mk->name, n, seen, runs,
           fired_runs);
    fflush(stdout);
}

static void run_phase(enum phase ph, bool full)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    const struct fkind *eio = &fkinds[0], *nospc = &fkinds[1], *shrt = &fkinds[2],
                       *nomem = &fkinds[3];
    if (!full) {
        /* every n with a once and with a persistent fault, EIO and ENOSPC
         * taking turns; SHORT at every write and read; ENOMEM at every
         * allocation (where the link could wrap the allocators) */
        const struct fkind *both[2] = {eio, nospc};
        for (int p = 0; p < 2; p++)
            loop(ph, both, 2, p, &masks[0], false);
        for (int p = 0; p < 2; p++)
            loop(ph, &shrt, 1, p, &masks[0], false);
        for (int p = 0; p < 2 && oom_wrapped(); p++)
            loop(ph, &nomem, 1, p, &masks[0], false);
    } else {
        /* every kind at every n on both backends, in the index space of
         * all ops and of each op kind alone */
        for (size_t m = 0; m < sizeof masks / sizeof masks[0]; m++)
            for (size_t k = 0; k < sizeof fkinds / sizeof fkinds[0]; k++)
                for (int p = 0; p < 2; p++) {
                    const struct fkind *fk = &fkinds[k];
                    if (!fk->alloc && fk->kind == CIO_FAULT_SHORT &&
                        !(masks[m].ops & (CIO_FOP_WRITE | CIO_FOP_READ)))
                        continue;
                    if (fk->alloc && (m > 0 || !oom_wrapped()))
                        continue; /* allocations are one index space */
                    loop(ph, &fk, 1, p, &masks[m], true);
                }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    struct pstats *s = &g_stats[ph];
    s->secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("fault_loop: phase %s: %" PRIu64 " runs, %" PRIu64 " faults fired, %" PRIu64
           " runs without a failed call; first failure in open %" PRIu64 ", DDL %" PRIu64
           ", commit %" PRIu64 ", checkpoint %" PRIu64 ", close %" PRIu64
           "; steps in doubt present after reopen %" PRIu64 ", absent %" PRIu64
           "; most ops in a run %" PRIu64 "; %.1f s\n",
           phase_name[ph], s->runs, s->fired, s->clean, s->failed_open, s->failed_ddl,
           s->failed_commit, s->failed_ckpt, s->failed_close, s->doubt_present,
           s->doubt_absent, s->max_ops, s->secs);
    fflush(stdout);
}

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s [--full] [--phase work|recover|reads] [--kind EIO|ENOSPC|SHORT|ENOMEM] "
            "[--only KIND,once|persist,N[,MASK[,posix|default]]] [--verbose]... [--keep]\n",
            argv0);
    exit(2);
}

int main(int argc, char **argv)
{
    bool full = false;
    int only_phase = -1;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--full")) {
            full = true;
        } else if (!strcmp(argv[i], "--verbose")) {
            g_verbose++;
        } else if (!strcmp(argv[i], "--keep")) {
            g_keep = true;
        } else if (!strcmp(argv[i], "--phase") && i + 1 < argc) {
            i++;
            only_phase = !strcmp(argv[i], "work")      ? PH_WORK
                         : !strcmp(argv[i], "recover") ? PH_RECOVER
                         : !strcmp(argv[i], "reads")   ? PH_READS
                                                       : -2;
            if (only_phase == -2)
                usage(argv[0]);
        } else if (!strcmp(argv[i], "--kind") && i + 1 < argc) {
            g_kind = argv[++i];
        } else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
            only = argv[++i];
        } else {
            usage(argv[0]);
        }
    }
    g_seed = tu_seed("fault_loop", 0xfa1100bULL);
    if (tu_tmpbase(tmpbase, sizeof tmpbase, "fault_loop") != 0) {
        perror("fault_loop: temporary directory");
        return 1;
    }
    tu_quiet_log(); /* injected failures log errors by design */
    signal(SIGALRM, on_alarm);
    prepare();
    if (only) {
        char kname[16], pname[16], mname[16] = "all", bname[16] = "";
        unsigned long long n;
        if (sscanf(only, "%15[^,],%15[^,],%llu,%15[^,],%15s", kname, pname, &n, mname,
                   bname) < 3)
            usage(argv[0]);
        if (only_phase == PH_READS) {
            if (strcmp(kname, "ENOMEM") || !n)
                usage(argv[0]);
            read_loop(!strcmp(pname, "persist"), n, true);
            printf("fault_loop: run %s passed\n", g_run);
            goto done;
        }
        struct run r = {.ph = only_phase < 0 ? PH_WORK : (enum phase)only_phase,
                        .persistent = !strcmp(pname, "persist"),
                        .n = n};
        for (size_t k = 0; k < sizeof fkinds / sizeof fkinds[0]; k++)
            if (!strcmp(fkinds[k].name, kname))
                r.fk = &fkinds[k];
        for (size_t m = 0; m < sizeof masks / sizeof masks[0]; m++)
            if (!strcmp(masks[m].name, mname))
                r.mk = &masks[m];
        if (!r.fk || !r.mk)
            usage(argv[0]);
        r.io = !strcmp(bname, "posix")     ? CAIRN_IO_POSIX
               : !strcmp(bname, "default") ? CAIRN_IO_DEFAULT
               : (n & 1)                   ? CAIRN_IO_POSIX
                                           : CAIRN_IO_DEFAULT;
        g_verbose += 2;
        uint64_t ops;
        one_run(&r, &ops);
        printf("fault_loop: run %s passed\n", g_run);
    } else {
        for (int ph = 0; ph < 2; ph++)
            if (only_phase < 0 || only_phase == ph)
                run_phase((enum phase)ph, full);
        /* reads do no I/O: only allocations can fail them */
        bool reads = (only_phase < 0 || only_phase == PH_READS) &&
                     (!g_kind || !strcmp(g_kind, "ENOMEM"));
        for (int p = 0; p < 2 && reads && oom_wrapped(); p++)
            read_loop(p, 0, full);
    }
done:
    for (int i = 0; i < MAXOPS; i++) {
        free(vbuf[i]);
        free(pbuf[i]);
    }
    tu_model_free(&g_fixture_model);
    tu_rm_rf(tmpbase);
    return 0;
}
