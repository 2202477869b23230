/*
 * test_powerloss.c — power lost at every I/O operation of a workload, with
 * the crash simulator of common/simio.c (model: top of that file), checked
 * against an oracle.
 *
 * A forked child runs the workload (steps[], built by build_workload(); 32
 * steps, about 160 I/O ops): collections created; commits; checkpoint
 * 1 (creates collections/, the page files, the catalog and the
 * superblock); transactions spanning collections with upserts and
 * deletes, payloads in heap records and in overflow chains, a batch, an
 * aborted transaction, a restore point; a collection dropped and created
 * again under the same name with another shape; wide vectors that roll the
 * WAL into its next 2 MiB segment; checkpoint 2 (redo LSN in segment 1);
 * overflow chains freed; checkpoint 3 (writes into the pages checkpoint 2
 * replaced, deletes the dropped collection's page file, removes WAL
 * segment 0); a close and reopen; checkpoint 4 (page reuse after an open).
 * So crash points land in every step of a checkpoint: page and map page
 * writes, catalog, fdatasyncs, superblock creation, write and sync, the
 * deletion of a page file and of a WAL segment. It runs on one thread in
 * SYNC durability, with checkpoints only by its steps (or also in the
 * background, see --bg-checkpoints), with the simulator told to cut the
 * power at op N. It writes "B k" to the oracle file before step k and
 * "A k" once step k returned, "C g" when a checkpoint step returned
 * generation g, with plain write(2), which the simulator does not see. At
 * op N the simulator applies the crash to the files and _exit()s the
 * child. The dry run also checks that the workload still covers what is
 * listed above (four checkpoints, a WAL segment and a page file deleted).
 *
 * The parent then opens the database with the normal I/O layer and checks
 * that it opens and that everything a reader sees (tu_state_digest) is the
 * model after the last acknowledged step or after the one in flight (a
 * commit may be durable before it is acknowledged): every acknowledged
 * commit is there, no transaction is there in part, nothing else is. A
 * checkpoint changes nothing in the model, and one that the crash cut is
 * not acknowledged; but the open must start from the last acknowledged
 * checkpoint (cairn_stats recovery.checkpoint), or from the next one if a
 * checkpoint step was in flight (or any later one, with background
 * checkpoints). The counts printed include how many points recovered from
 * a checkpoint; the exhaustive run fails if none did.
 *
 * Chained crashes (--only N,M; a third of the random points): after the crash
 * at N a second child opens the crashed database under the simulator (so
 * crash recovery itself runs under it), checks what it finds like the
 * parent would, writes "K g" (the checkpoint it started from) and "R k"
 * (the step it found; acknowledged from then on: a recovered commit must
 * not disappear later, nor the open go back to an older checkpoint), goes
 * on from step k+1 and loses power at its op M. The parent checks the end
 * state as above.
 *
 *   test_powerloss [--exhaustive] [--random R] [--seed S] [--sector 512|4096]
 *                  [--only N[,M]] [--verbose]... [--keep]
 *                  [--torn-neighbours] [--atomic-sectors] [--bg-checkpoints]
 *   --exhaustive   a dry run counts the T ops of the workload and is itself
 *                  a crash point (power lost after the last op); then every
 *                  N in 1..T.
 *   --random R     R points drawn from the seed: point i has its own seed s_i
 *                  and N_i in 1..T+1; a third are chained, with M_i in 1..T+1;
 *                  a quarter have background checkpoints (T counted by a
 *                  second dry run with them, 200-280 ops), a quarter
 *                  (drawn apart) torn neighbours.
 *   --only N[,M]   one point: what a failure message tells to rerun. N may
 *                  be "end": power lost after the last op (the dry run).
 *   --seed S       default 1, or env CAIRN_SEED. The simulator draws every
 *                  choice from (S, N), stage 2 from (S ^ STAGE2_SALT, M).
 *   --sector B     512 or 4096 for every point (default: drawn per point).
 *   --verbose      show the children's logs (the simulator's report of each
 *                  crash: op cut, fate of every undurable change) for every
 *                  point, not only for a failed one; twice: also every op.
 *   --keep         keep the directory of a failed point.
 *   --torn-neighbours  garbage may also hit durable bytes beside an unsynced
 *                  write in the same sector (a device without powersafe
 *                  overwrite), see common/README.md, for every point (else
 *                  a quarter of the random points have it). Nothing may
 *                  fail under it: the WAL pads every flush to a 4 KiB block
 *                  and keeps its segment header alone in block 0
 *                  (wal/README.md), checkpoint files write whole pages.
 *   --atomic-sectors  no garbage: each sector is kept or reverted whole (a
 *                  device that writes sectors atomically).
 *   --bg-checkpoints  every point (the exhaustive ones too) also has
 *                  background checkpoints, every 512 KiB of WAL
 *                  (checkpoint_wal_bytes): they run on the checkpointer
 *                  thread, beside the steps.
 * Without flags (meson test): --exhaustive --random 500 (about 160 + 501 points
 * with the bg dry run, about 100 s under ASan on 2 loaded cores).
 *
 * Threads. The WAL flusher and the segment preallocator do I/O too; their
 * ops take turns with the committer's in the order they reach the
 * simulator's mutex, so which op is number N may change between runs (the
 * preallocator races the first commits after an open and the commits after
 * a segment switch). Every crash point must pass whatever the order. The
 * count varies too: the workload can end (and the power go) while the
 * preallocator still creates a segment, so the exhaustive loop runs to the
 * largest count a run reported, and a child that ends its workload before
 * its N loses power after its last op instead. A failure prints what the
 * children logged (the op cut and the fate of every undurable change) with
 * its seed, its point and the line to rerun it; if the rerun cuts another
 * op (another thread order), run it a few times in a loop. Background
 * checkpoints are one more such thread: a commit past the WAL threshold
 * wakes the checkpointer, whose ops then interleave with the next steps';
 * the checks hold whatever the order (a background checkpoint changes
 * nothing in the model either), only the upper bound on the generation an
 * open may start from is gone.
 *
 * Adding a step: an enum value, a case in run_step() (what the child does)
 * and in model_step() (what it does to the model: nothing, for a
 * checkpoint), and its place in build_workload(); if it is meant to
 * exercise something, a check in the dry run that it still does.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cairn.h"
#include "common/io.h"

#include "testutil.h"

#define EXIT_CRASHED 75  /* the simulator cut the power */
#define EXIT_FAILED 76   /* the child found something wrong (message on stderr) */
#define STAGE2_SALT UINT64_C(0x5ca1ab1e0ddba11)
#define MAXOPS 6
#define MAXSTEPS 64
#define DEFAULT_RANDOM 500

/* ---- the workload ------------------------------------------------------- */

enum step_kind {
    ST_CREATE,        /* coll */
    ST_DROP,          /* coll */
    ST_TXN,           /* ops, across collections */
    ST_ABORT,         /* ops, then abort: changes nothing */
    ST_BATCH,         /* ops (upserts, all in coll) with cairn_upsert_batch */
    ST_RESTORE_POINT, /* name */
    ST_REOPEN,        /* close and open again */
    ST_CHECKPOINT     /* cairn_checkpoint: changes nothing a reader sees */
};

struct wop {
    bool del;
    int coll;
    uint64_t id;
    uint32_t vseed, pad;
};

struct step {
    enum step_kind kind;
    int coll;
    int nops;
    struct wop ops[MAXOPS];
    char name[32];
};

/* Collections by index; "alpha" comes back with another shape after its
 * drop; "wide" (128 KiB vectors) fills the log cheaply (replaying big
 * payloads costs JSON validation, vectors only a finiteness check). */
static const struct {
    const char *name;
    uint32_t dim;
    cairn_metric metric;
} colls[] = {
    {"alpha", 16, CAIRN_METRIC_L2},
    {"beta", 48, CAIRN_METRIC_DOT},
    {"gamma", 8, CAIRN_METRIC_COSINE},
    {"alpha", 24, CAIRN_METRIC_DOT},
    {"wide", 32768, CAIRN_METRIC_L2},
};
#define WIDE 4
#define MAXDIM 32768

static struct step steps[MAXSTEPS + 1]; /* 1-based */
static int nsteps;
static uint64_t wl_rng = 20240611;

static struct step *add_step(enum step_kind kind)
{
    if (nsteps == MAXSTEPS) {
        fprintf(stderr, "powerloss: too many steps\n");
        exit(2);
    }
    struct step *s = &steps[++nsteps];
    memset(s, 0, sizeof *s);
    s->kind = kind;
    return s;
}

static void add_op(struct step *s, bool del, int coll, uint64_t id, uint32_t pad)
{
    struct wop *o = &s->ops[s->nops++];
    o->del = del;
    o->coll = coll;
    o->id = id;
    o->vseed = (uint32_t)tu_splitmix(&wl_rng);
    o->pad = pad;
}

static uint32_t small_pad(void)
{
    uint64_t r = tu_splitmix(&wl_rng) % 8;
    return r == 0 ? TU_NO_PAYLOAD : (uint32_t)(r * 9);
}

static uint32_t mid_pad(void)
{
    return 1000 + (uint32_t)(tu_splitmix(&wl_rng) % 3000);
}

/* Over a page body (8136 bytes): an overflow chain of 2 or 3 pages. */
static uint32_t big_pad(void)
{
    return 9000 + (uint32_t)(tu_splitmix(&wl_rng) % 8000);
}

/* Transaction i of the wide series: two wide vectors (about 260 KiB of
 * WAL), a heap record in alpha (collection a: 0 before its drop, 3 after)
 * or beta, upserts and deletes in beta and gamma. */
static void wide_txn(int i, int a)
{
    struct step *s = add_step(ST_TXN);
    add_op(s, false, i % 2 ? 1 : a, 10 + (uint64_t)i, mid_pad());
    add_op(s, false, WIDE, 10 + (uint64_t)i, small_pad());
    add_op(s, false, 2, 20 + (uint64_t)i, small_pad());
    add_op(s, false, WIDE, 2 + (uint64_t)(i % 3), small_pad());
    add_op(s, i % 3 == 0, 1, 1 + (uint64_t)(i % 4), small_pad());
    if (i % 4 == 1)
        add_op(s, true, 2, 20 + (uint64_t)i - 1, 0);
}

static void build_workload(void)
{
    struct step *s;
    add_step(ST_CREATE)->coll = 0;
    add_step(ST_CREATE)->coll = 1;
    add_step(ST_CREATE)->coll = WIDE;
    s = add_step(ST_TXN);
    add_op(s, false, 0, 1, small_pad());
    add_op(s, false, 0, 2, small_pad());
    add_op(s, false, 1, 1, small_pad());
    snprintf(add_step(ST_RESTORE_POINT)->name, sizeof steps[0].name, "before-wide");
    s = add_step(ST_TXN);
    add_op(s, false, 0, 3, mid_pad());
    add_op(s, false, WIDE, 1, small_pad());
    add_op(s, false, 1, 2, small_pad());
    add_op(s, true, 0, 1, 0);
    s = add_step(ST_ABORT);
    add_op(s, false, 0, 9, small_pad());
    add_op(s, true, 1, 1, 0);
    add_step(ST_CREATE)->coll = 2;
    /* Checkpoint 1: creates collections/, four page files, the catalog
     * and the superblock file. */
    add_step(ST_CHECKPOINT);
    for (int i = 0; i < 4; i++)
        wide_txn(i, 0);
    /* Overflow chains; a heap record dies. */
    s = add_step(ST_TXN);
    add_op(s, false, 0, 50, big_pad());
    add_op(s, false, 1, 51, big_pad());
    add_op(s, true, 0, 3, 0);
    add_op(s, false, 2, 22, mid_pad());
    s = add_step(ST_BATCH);
    s->coll = 1;
    for (int i = 0; i < 4; i++)
        add_op(s, false, 1, 30 + (uint64_t)i, small_pad());
    add_step(ST_DROP)->coll = 0;
    s = add_step(ST_TXN);
    add_op(s, true, 1, 31, 0);
    add_op(s, false, 2, 21, small_pad());
    add_op(s, false, 1, 40, small_pad());
    add_step(ST_CREATE)->coll = 3; /* alpha again, another id and shape */
    s = add_step(ST_TXN);
    add_op(s, false, 3, 1, big_pad());
    add_op(s, true, 1, 2, 0);
    add_op(s, false, 2, 5, small_pad());
    add_op(s, false, 3, 2, small_pad());
    /* 19 wide vectors in all by now: the WAL rolls into segment 1. */
    for (int i = 4; i < 9; i++)
        wide_txn(i, 3);
    /* Checkpoint 2: redo LSN in segment 1; the first alpha is not in its
     * catalog (its page file goes at the next checkpoint). */
    add_step(ST_CHECKPOINT);
    /* Overflow chains die: replaced by a small payload, deleted. */
    s = add_step(ST_TXN);
    add_op(s, false, 3, 1, small_pad());
    add_op(s, true, 1, 51, 0);
    add_op(s, false, 3, 3, mid_pad());
    wide_txn(9, 3);
    /* Checkpoint 3: writes into pages that checkpoint 2 replaced, deletes
     * the first alpha's page file, removes WAL segment 0 (below the redo
     * LSN of checkpoint 2). */
    add_step(ST_CHECKPOINT);
    add_step(ST_REOPEN);
    s = add_step(ST_TXN);
    add_op(s, false, 3, 4, mid_pad());
    add_op(s, false, WIDE, 3, small_pad());
    add_op(s, true, 2, 5, 0);
    /* Checkpoint 4, after the reopen: free pages rebuilt from the catalog
     * of checkpoint 3. */
    add_step(ST_CHECKPOINT);
    s = add_step(ST_TXN);
    add_op(s, false, 3, 1, small_pad());
}

/* ---- what a step does to the database and to the model ------------------- */

static char dbdir[512], stashdir[512], oracle_path[512], log_path[2][512], basedir[400];
static int sim_verbose;
static unsigned opt_sector;
static bool opt_torn, opt_atomic, opt_bg;
static bool cur_bg;   /* the point being run has background checkpoints */
static bool cur_torn; /* and its crashes may tear durable neighbours */

#define BG_WAL_BYTES ((uint64_t)512 << 10)

/* Checkpoints only by the workload's steps (none by size or time), or
 * also in the background every BG_WAL_BYTES of WAL (about every second
 * wide transaction). */
static cairn_options child_opts(void)
{
    cairn_options o = tu_opts(CAIRN_DURABILITY_SYNC, CAIRN_IO_DEFAULT, 1);
    o.checkpoint_wal_bytes = cur_bg ? BG_WAL_BYTES : UINT64_MAX;
    o.checkpoint_interval_s = 0;
    return o;
}

static float vbuf[MAXOPS][MAXDIM];

static cairn_status do_upsert(cairn_txn *t, const struct wop *o)
{
    float *v = vbuf[0];
    size_t len = 0;
    char *pl = tu_gen_payload(o->vseed, o->pad, &len);
    if (o->pad != TU_NO_PAYLOAD && !pl)
        return CAIRN_ENOMEM;
    tu_gen_vector(o->vseed, v, colls[o->coll].dim);
    cairn_status st =
        cairn_txn_upsert(t, colls[o->coll].name, o->id, v, colls[o->coll].dim, pl, len);
    free(pl);
    return st;
}

static cairn_status run_txn(cairn_db *db, const struct step *s)
{
    cairn_txn *t;
    cairn_status st = cairn_txn_begin(db, &t);
    if (st)
        return st;
    for (int i = 0; i < s->nops && !st; i++)
        st = s->ops[i].del ? cairn_txn_delete(t, colls[s->ops[i].coll].name, s->ops[i].id)
                           : do_upsert(t, &s->ops[i]);
    if (!st)
        st = s->kind == ST_ABORT ? cairn_txn_abort(t) : cairn_txn_commit(t, NULL);
    cairn_txn_free(t);
    return st;
}

static cairn_status run_batch(cairn_db *db, const struct step *s)
{
    uint32_t dim = colls[s->coll].dim;
    float (*v)[MAXDIM] = vbuf;
    char *pl[MAXOPS] = {0};
    cairn_point pts[MAXOPS];
    cairn_status st = CAIRN_OK;
    for (int i = 0; i < s->nops; i++) {
        const struct wop *o = &s->ops[i];
        size_t len = 0;
        pl[i] = tu_gen_payload(o->vseed, o->pad, &len);
        tu_gen_vector(o->vseed, v[i], dim);
        pts[i] = (cairn_point){o->id, v[i], pl[i], len};
    }
    st = cairn_upsert_batch(db, colls[s->coll].name, pts, (size_t)s->nops, dim, NULL);
    for (int i = 0; i < s->nops; i++)
        free(pl[i]);
    return st;
}

/* Runs step s in the child; *ck receives what a checkpoint step did. */
static cairn_status run_step(cairn_db **db, const struct step *s, cairn_checkpoint_info *ck)
{
    switch (s->kind) {
    case ST_CREATE:
        return cairn_collection_create(*db, colls[s->coll].name, colls[s->coll].dim,
                                       colls[s->coll].metric);
    case ST_DROP:
        return cairn_collection_drop(*db, colls[s->coll].name);
    case ST_TXN:
    case ST_ABORT:
        return run_txn(*db, s);
    case ST_BATCH:
        return run_batch(*db, s);
    case ST_RESTORE_POINT:
        return cairn_restore_point(*db, s->name, NULL);
    case ST_REOPEN: {
        cairn_status st = cairn_close(*db);
        *db = NULL;
        if (st)
            return st;
        cairn_options o = child_opts();
        return cairn_open(dbdir, &o, db);
    }
    case ST_CHECKPOINT:
        return cairn_checkpoint(*db, ck);
    }
    return CAIRN_EINVAL;
}

/* Applies step s to the model. 0, or -1 (tu_error()). */
static int model_step(struct tu_model *m, const struct step *s)
{
    switch (s->kind) {
    case ST_CREATE:
        return tu_model_create(m, colls[s->coll].name, colls[s->coll].dim,
                               colls[s->coll].metric);
    case ST_DROP:
        return tu_model_drop(m, colls[s->coll].name);
    case ST_TXN:
    case ST_BATCH:
        for (int i = 0; i < s->nops; i++) {
            const struct wop *o = &s->ops[i];
            int rc = o->del ? tu_model_delete(m, colls[o->coll].name, o->id)
                            : tu_model_upsert(m, colls[o->coll].name, o->id, o->vseed, o->pad);
            if (rc)
                return rc;
        }
        return 0;
    case ST_ABORT:
    case ST_RESTORE_POINT:
    case ST_REOPEN:
    case ST_CHECKPOINT:
        return 0;
    }
    return -1;
}

/* The digest of the model after steps 1..k, made once per process (and
 * inherited by the children forked after): NULL on failure (tu_error()). */
static const struct tu_dig *model_digest(int k)
{
    static struct tu_dig cache[MAXSTEPS + 1];
    static bool made[MAXSTEPS + 1];
    if (made[k])
        return &cache[k];
    struct tu_model m = {0};
    int rc = 0;
    for (int i = 1; i <= k && !rc; i++)
        rc = model_step(&m, &steps[i]);
    if (!rc)
        rc = tu_model_digest(&m, &cache[k]);
    tu_model_free(&m);
    made[k] = rc == 0;
    return made[k] ? &cache[k] : NULL;
}

/* ---- the oracle ------------------------------------------------------------ */

struct oracle {
    int acked;      /* last step acknowledged (A) or found by a recovery (R) */
    int begun;      /* last step begun (B) */
    uint64_t total; /* ops of a run that reached its end (T), else 0 */
    uint64_t ckpt;  /* highest checkpoint generation acknowledged (C) or
                       loaded by a recovery under the simulator (K) */
    /* what the checkpoint steps did (the dry run checks the workload
     * still covers it): WAL segments removed (W), times the count of
     * page files went down after one (P: a dropped collection's file
     * deleted) */
    uint64_t wal_removed, files_deleted;
};

static int oracle_fd = -1;

static void oracle_put(char tag, uint64_t v)
{
    cio_sim_ops(); /* blocks while the power is being cut (see io.h) */
    char line[48];
    int n = snprintf(line, sizeof line, "%c %" PRIu64 "\n", tag, v);
    if (write(oracle_fd, line, (size_t)n) != n) {
        fprintf(stderr, "powerloss: child: could not write the oracle %s: %s\n", oracle_path,
                strerror(errno));
        _exit(EXIT_FAILED);
    }
}

/* 0, or -1 with why. */
static int oracle_read(struct oracle *o, char *why, size_t n)
{
    memset(o, 0, sizeof *o);
    FILE *f = fopen(oracle_path, "r");
    if (!f) {
        if (errno == ENOENT)
            return 0;
        snprintf(why, n, "oracle %s: %s", oracle_path, strerror(errno));
        return -1;
    }
    char tag;
    uint64_t v, files = UINT64_MAX;
    while (fscanf(f, " %c %" SCNu64, &tag, &v) == 2) {
        if (tag == 'B')
            o->begun = (int)v;
        else if (tag == 'A')
            o->acked = (int)v;
        else if (tag == 'R') /* what recovery found is settled: a step in */
            o->acked = o->begun = (int)v; /* flight that it dropped stays out */
        else if (tag == 'T')
            o->total = v;
        else if (tag == 'C' || tag == 'K')
            o->ckpt = v > o->ckpt ? v : o->ckpt;
        else if (tag == 'W')
            o->wal_removed += v;
        else if (tag == 'P') {
            o->files_deleted += files != UINT64_MAX && v < files;
            files = v;
        }
    }
    fclose(f);
    if (o->begun > o->acked + 1 || o->acked > nsteps) {
        snprintf(why, n, "oracle inconsistent: begun %d, acknowledged %d", o->begun, o->acked);
        return -1;
    }
    return 0;
}

/* Whether an open that loaded checkpoint generation gen fits the oracle.
 * An acknowledged checkpoint is durable (its superblock slot is only
 * overwritten two generations later), and so is one that a recovery
 * loaded: an open starts from it or from a later one. A later one only
 * when a checkpoint step was in flight, unless checkpoints also run in the
 * background. 0, or -1 with why. */
static int check_ckpt(const struct oracle *o, uint64_t gen, char *why, size_t n)
{
    bool in_flight = o->begun == o->acked + 1 && steps[o->begun].kind == ST_CHECKPOINT;
    uint64_t hi = cur_bg ? UINT64_MAX : o->ckpt + in_flight;
    if (gen >= o->ckpt && gen <= hi)
        return 0;
    if (gen < o->ckpt)
        snprintf(why, n,
                 "recovery started from checkpoint %" PRIu64 " (0: none), but checkpoint %" PRIu64
                 " was acknowledged",
                 gen, o->ckpt);
    else
        snprintf(why, n,
                 "recovery started from checkpoint %" PRIu64 ", but the last acknowledged one is "
                 "%" PRIu64 " and %s",
                 gen, o->ckpt, in_flight ? "only one more was in flight" : "none was in flight");
    return -1;
}

/* The step whose model db holds: the acknowledged one or the one in
 * flight (preferred when both look alike). -1 with why if neither. */
static int match_state(cairn_db *db, const struct oracle *o, char *why, size_t n)
{
    struct tu_dig have = {0};
    int found = -1;
    if (tu_state_digest(db, &have, 0) != 0) {
        snprintf(why, n, "%s", tu_error());
        goto out;
    }
    int lo = o->acked, hi = o->begun == o->acked + 1 ? o->begun : o->acked;
    for (int k = hi; k >= lo && found < 0; k--) {
        const struct tu_dig *want = model_digest(k);
        if (!want) {
            snprintf(why, n, "%s", tu_error());
            goto out;
        }
        if (tu_dig_eq(&have, want))
            found = k;
    }
    if (found < 0) {
        struct tu_model m = {0};
        for (int i = 1; i <= lo; i++)
            model_step(&m, &steps[i]);
        char d[400];
        tu_model_explain(db, &m, d, sizeof d);
        tu_model_free(&m);
        snprintf(why, n,
                 "the state is neither the one after the last acknowledged step %d nor %s "
                 "(against step %d: %s)",
                 lo, hi > lo ? "after the step in flight" : "(none in flight)", lo, d);
    }
out:
    tu_dig_free(&have);
    return found;
}

/* ---- the child ----------------------------------------------------------- */

__attribute__((noreturn)) static void child_fail(int step, const char *what, cairn_status st)
{
    /* An error seen while another thread cuts the power (a file vanishing
     * under a plain open) is the crash, not a failure: wait for the _exit. */
    cio_sim_ops();
    fprintf(stderr, "powerloss: child: step %d: %s: %s (%s)\n", step, what,
            cairn_status_name(st), cairn_last_error());
    _exit(EXIT_FAILED);
}

/* The page files in collections/ (0 if it does not exist). */
static uint64_t count_page_files(void)
{
    char path[600];
    snprintf(path, sizeof path, "%s/collections", dbdir);
    DIR *d = opendir(path);
    if (!d)
        return 0;
    uint64_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        n += l > 6 && !strcmp(e->d_name + l - 6, ".pages");
    }
    closedir(d);
    return n;
}

/* The checkpoint generation the last open of db loaded. */
static uint64_t loaded_ckpt(cairn_db *db)
{
    cairn_stats stats;
    if (cairn_stats_get(db, &stats) != CAIRN_OK)
        return UINT64_MAX;
    return stats.recovery.checkpoint;
}

/* stage 1: a fresh database; stage 2: recover the crashed one, check it,
 * go on. Never returns. */
__attribute__((noreturn)) static void child_main(int stage, uint64_t sim_seed,
                                                 uint64_t crash_at)
{
    tu_quiet_log();
    /* Messages (the simulator's report of the crash included) go to a log
     * that the parent shows when the point fails. */
    int logfd = open(log_path[stage - 1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (logfd < 0 || dup2(logfd, STDERR_FILENO) < 0)
        _exit(EXIT_FAILED);
    close(logfd);
    oracle_fd = open(oracle_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (oracle_fd < 0)
        _exit(EXIT_FAILED);
    struct oracle before;
    char why[1024];
    if (stage == 2 && oracle_read(&before, why, sizeof why) != 0) {
        fprintf(stderr, "powerloss: child: %s\n", why);
        _exit(EXIT_FAILED);
    }
    struct cio_sim_config cfg = {
        .seed = sim_seed,
        .crash_at = crash_at,
        .sector = opt_sector,
        .stash_dir = stashdir,
        .exit_code = EXIT_CRASHED,
        .torn_neighbours = cur_torn,
        .atomic_sectors = opt_atomic,
        .verbose = sim_verbose > 1 ? sim_verbose : 1,
    };
    cairn_status st = cio_sim_start(&cfg);
    if (st)
        child_fail(0, "cio_sim_start", st);
    cairn_options o = child_opts();
    cairn_db *db = NULL;
    st = cairn_open(dbdir, &o, &db);
    if (st)
        child_fail(0, stage == 2 ? "open after the crash" : "open", st);
    int k = 0;
    uint64_t gen = loaded_ckpt(db); /* the latest checkpoint this process knows */
    if (stage == 2) {
        k = match_state(db, &before, why, sizeof why);
        if (k >= 0 && check_ckpt(&before, gen, why, sizeof why) != 0)
            k = -1;
        if (k < 0) {
            fprintf(stderr, "powerloss: child: after recovery under the simulator: %s\n", why);
            _exit(EXIT_FAILED);
        }
        oracle_put('K', gen);
        oracle_put('R', (uint64_t)k);
    }
    for (int i = k + 1; i <= nsteps; i++) {
        cairn_checkpoint_info info;
        oracle_put('B', (uint64_t)i);
        st = run_step(&db, &steps[i], &info);
        if (st)
            child_fail(i, "step", st);
        if (steps[i].kind == ST_CHECKPOINT) {
            /* Generations count up by one (background ones add more). */
            if (cur_bg ? info.generation <= gen : info.generation != gen + 1) {
                fprintf(stderr, "powerloss: child: step %d: checkpoint generation %" PRIu64
                        " after %" PRIu64 "\n", i, info.generation, gen);
                _exit(EXIT_FAILED);
            }
            gen = info.generation;
            oracle_put('C', gen);
            oracle_put('W', info.wal_segments_removed);
            if (!cur_bg)
                oracle_put('P', count_page_files());
        } else if (steps[i].kind == ST_REOPEN) {
            /* A clean close and open: the latest checkpoint, no other. */
            uint64_t g = loaded_ckpt(db);
            if (cur_bg ? g < gen : g != gen) {
                fprintf(stderr, "powerloss: child: step %d: the reopen loaded checkpoint %" PRIu64
                        ", the last one taken is %" PRIu64 "\n", i, g, gen);
                _exit(EXIT_FAILED);
            }
            gen = g;
        }
        oracle_put('A', (uint64_t)i);
    }
    oracle_put('T', cio_sim_ops());
    cio_sim_crash();
}

/* ---- the parent ------------------------------------------------------------ */

struct point {
    uint64_t seed;
    uint64_t n, m; /* n == 0: after the last op; m == 0: not chained */
    bool bg;       /* background checkpoints too */
    bool torn;     /* the simulator's torn_neighbours */
};

struct tally {
    long points, chained, in_flight_found, truncated, from_ckpt, bg, torn;
};

/* "N", "end" or "N,M" */
static void point_label(const struct point *p, char *buf, size_t n)
{
    int k = p->n ? snprintf(buf, n, "%" PRIu64, p->n) : snprintf(buf, n, "end");
    if (p->m)
        snprintf(buf + k, n - (size_t)k, ",%" PRIu64, p->m);
}

/* The children's logs, on stderr. */
static void show_logs(void)
{
    for (int i = 0; i < 2; i++) {
        size_t len = 0;
        unsigned char *b = tu_read_file(log_path[i], &len);
        if (!b)
            continue;
        if (len)
            fprintf(stderr, "  stage %d:\n%.*s", i + 1, (int)len, (const char *)b);
        free(b);
    }
}

static const char *argv0 = "test_powerloss";
static bool opt_keep;

static int fail_point(const struct point *p, const char *fmt, ...)
{
    char label[64], why[1600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    point_label(p, label, sizeof label);
    const char *sector = opt_sector == 4096  ? " --sector 4096"
                         : opt_sector == 512 ? " --sector 512"
                                             : "";
    show_logs();
    fprintf(stderr,
            "powerloss: FAIL at crash point %s, seed %" PRIu64 ": %s\n"
            "  rerun: %s --seed %" PRIu64 " --only %s%s%s%s%s --verbose\n",
            label, p->seed, why, argv0, p->seed, label, sector,
            p->torn ? " --torn-neighbours" : "", opt_atomic ? " --atomic-sectors" : "",
            p->bg ? " --bg-checkpoints" : "");
    if (opt_keep)
        fprintf(stderr, "  kept: %s\n", basedir);
    return -1;
}

/* Runs one child; 0 if it lost power as planned, else -1 with why. */
static int run_child(int stage, uint64_t sim_seed, uint64_t crash_at, char *why, size_t n)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(why, n, "fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0)
        child_main(stage, sim_seed, crash_at);
    int wst;
    while (waitpid(pid, &wst, 0) < 0) {
        if (errno != EINTR) {
            snprintf(why, n, "waitpid: %s", strerror(errno));
            return -1;
        }
    }
    if (WIFEXITED(wst) && WEXITSTATUS(wst) == EXIT_CRASHED)
        return 0;
    if (WIFEXITED(wst))
        snprintf(why, n, "stage %d child exited with %d (its log is above)", stage,
                 WEXITSTATUS(wst));
    else
        snprintf(why, n, "stage %d child killed by signal %d", stage,
                 WIFSIGNALED(wst) ? WTERMSIG(wst) : 0);
    return -1;
}

static int fresh_dirs(void)
{
    if (tu_rm_rf(dbdir) != 0 || tu_rm_rf(stashdir) != 0 || mkdir(stashdir, 0755) != 0)
        return -1;
    const char *files[] = {oracle_path, log_path[0], log_path[1]};
    for (int i = 0; i < 3; i++)
        if (unlink(files[i]) != 0 && errno != ENOENT)
            return -1;
    /* cairn_open creates the database directory (durably) under the
     * simulator: a lost mkdir is one of the crash outcomes. */
    return 0;
}

/* One crash point (chained when p->m). 0, or -1 after printing why.
 * *out (if not NULL) receives the oracle of the first stage: its op count
 * (total) if it reached its end, what its checkpoints did. */
static int run_point(const struct point *p, struct tally *t, struct oracle *out)
{
    char why[1400];
    cur_bg = p->bg;
    cur_torn = p->torn;
    if (fresh_dirs() != 0)
        return fail_point(p, "could not prepare %s: %s", basedir, strerror(errno));
    if (run_child(1, p->seed, p->n, why, sizeof why) != 0)
        return fail_point(p, "%s", why);
    struct oracle o;
    if (oracle_read(&o, why, sizeof why) != 0)
        return fail_point(p, "%s", why);
    if (out)
        *out = o;
    if (p->m) {
        if (tu_rm_rf(stashdir) != 0 || mkdir(stashdir, 0755) != 0)
            return fail_point(p, "could not prepare %s: %s", stashdir, strerror(errno));
        if (run_child(2, p->seed ^ STAGE2_SALT, p->m, why, sizeof why) != 0)
            return fail_point(p, "%s", why);
        if (oracle_read(&o, why, sizeof why) != 0)
            return fail_point(p, "%s", why);
        t->chained++;
    }
    cairn_options opts = tu_opts(CAIRN_DURABILITY_SYNC, CAIRN_IO_DEFAULT,
                                 1 + (unsigned)((p->n + p->m) % 3));
    opts.checkpoint_wal_bytes = UINT64_MAX; /* the check changes nothing */
    opts.checkpoint_interval_s = 0;
    cairn_db *db = NULL;
    cairn_status st = cairn_open(dbdir, &opts, &db);
    if (st)
        return fail_point(p, "the database does not open: %s: %s", cairn_status_name(st),
                          cairn_last_error());
    cairn_stats stats;
    cairn_stats_get(db, &stats);
    if (stats.recovery.bytes_truncated)
        t->truncated++;
    int k = match_state(db, &o, why, sizeof why);
    if (k >= 0 && check_ckpt(&o, stats.recovery.checkpoint, why, sizeof why) != 0)
        k = -1;
    st = cairn_close(db);
    if (k < 0)
        return fail_point(p, "%s", why);
    if (st)
        return fail_point(p, "close: %s: %s", cairn_status_name(st), cairn_last_error());
    /* (a step that changes nothing a reader sees matches either way) */
    if (k > o.acked && steps[k].kind != ST_ABORT && steps[k].kind != ST_RESTORE_POINT &&
        steps[k].kind != ST_REOPEN && steps[k].kind != ST_CHECKPOINT)
        t->in_flight_found++;
    if (stats.recovery.checkpoint)
        t->from_ckpt++;
    t->bg += p->bg;
    t->torn += p->torn;
    t->points++;
    if (sim_verbose)
        show_logs();
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: %s [--exhaustive] [--random R] [--seed S] [--sector 512|4096]\n"
            "       [--only N[,M]] [--verbose]... [--keep] [--torn-neighbours]\n"
            "       [--atomic-sectors] [--bg-checkpoints]\n",
            argv0);
    exit(2);
}

int main(int argc, char **argv)
{
    argv0 = argv[0];
    bool exhaustive = false, only = false;
    long nrandom = -1;
    struct point one = {0};
    uint64_t seed = tu_seed_env("CAIRN_SEED", 1);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool more = i + 1 < argc;
        if (!strcmp(a, "--exhaustive"))
            exhaustive = true;
        else if (!strcmp(a, "--random") && more)
            nrandom = atol(argv[++i]);
        else if (!strcmp(a, "--seed") && more)
            seed = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(a, "--sector") && more)
            opt_sector = (unsigned)atoi(argv[++i]);
        else if (!strcmp(a, "--only") && more) {
            char *end = argv[++i];
            only = true;
            if (!strncmp(end, "end", 3))
                end += 3; /* n = 0 */
            else if ((one.n = strtoull(end, &end, 0)) == 0)
                usage();
            one.m = *end == ',' ? strtoull(end + 1, NULL, 0) : 0;
        } else if (!strcmp(a, "--verbose"))
            sim_verbose++;
        else if (!strcmp(a, "--keep"))
            opt_keep = true;
        else if (!strcmp(a, "--torn-neighbours"))
            opt_torn = true;
        else if (!strcmp(a, "--atomic-sectors"))
            opt_atomic = true;
        else if (!strcmp(a, "--bg-checkpoints"))
            opt_bg = true;
        else
            usage();
    }
    if (opt_sector != 0 && opt_sector != 512 && opt_sector != 4096)
        usage();
    if (!exhaustive && nrandom < 0 && !only) {
        exhaustive = true;
        nrandom = DEFAULT_RANDOM;
    }
    tu_quiet_log();
    build_workload();
    printf("powerloss: seed=%" PRIu64 " (rerun: --seed %" PRIu64 "), %d steps\n", seed, seed,
           nsteps);
    fflush(stdout);

    if (tu_tmpbase(basedir, sizeof basedir, "powerloss") != 0) {
        perror("powerloss: temporary directory");
        return 1;
    }
    snprintf(dbdir, sizeof dbdir, "%s/db", basedir);
    snprintf(stashdir, sizeof stashdir, "%s/stash", basedir);
    snprintf(oracle_path, sizeof oracle_path, "%s/oracle", basedir);
    snprintf(log_path[0], sizeof log_path[0], "%s/log1", basedir);
    snprintf(log_path[1], sizeof log_path[1], "%s/log2", basedir);

    struct tally t = {0};
    int rc = 0;
    double t0 = now_s();
    if (only) {
        one.seed = seed;
        one.bg = opt_bg;
        one.torn = opt_torn;
        rc = run_point(&one, &t, NULL);
        goto done;
    }

    /* The dry runs: the power goes after the last op; they count them
     * (total[1]: with background checkpoints, for the random points that
     * have them). */
    uint64_t total[2] = {0, 0};
    long dry_ckpt = 0; /* the exhaustive run's dry run recovered from a checkpoint */
    for (int bg = opt_bg; bg < 2 && !rc; bg++) {
        if (bg && !opt_bg && nrandom <= 0)
            break;
        struct oracle o;
        struct point dry = {seed, 0, 0, bg, opt_torn};
        long before = t.from_ckpt;
        rc = run_point(&dry, &t, &o);
        if (bg == opt_bg)
            dry_ckpt = t.from_ckpt - before;
        if (rc)
            break;
        total[bg] = o.total;
        if (o.total == 0)
            rc = fail_point(&dry, "the dry run did not reach the end of the workload");
        /* What the workload is there to cover, with checkpoints by its
         * steps only (a workload edit must not lose it silently). */
        else if (!bg && (o.ckpt < 4 || !o.wal_removed || !o.files_deleted))
            rc = fail_point(&dry,
                            "the workload no longer covers its checkpoints: %" PRIu64
                            " acknowledged (4 expected), %" PRIu64 " WAL segments removed, "
                            "%" PRIu64 " dropped collections' page files deleted",
                            o.ckpt, o.wal_removed, o.files_deleted);
        else
            printf("powerloss: the workload does %" PRIu64 " I/O operations%s\n", o.total,
                   bg ? " with background checkpoints" : "");
        fflush(stdout);
    }
    if (rc)
        goto done;
    if (exhaustive) {
        /* A run whose preallocator was slower may do more ops: the loop
         * goes on to the largest count a run reported. */
        uint64_t n_total = total[opt_bg];
        long from_ckpt = t.from_ckpt;
        for (uint64_t n = 1; n <= n_total && !rc; n++) {
            struct point p = {seed, n, 0, opt_bg, opt_torn};
            struct oracle o;
            rc = run_point(&p, &t, &o);
            if (!rc && o.total > n_total)
                n_total = o.total;
        }
        if (rc)
            goto done;
        from_ckpt = t.from_ckpt - from_ckpt + dry_ckpt;
        printf("powerloss: exhaustive: %" PRIu64 " crash points (after each of the %" PRIu64
               " ops, and after the last) passed in %.1f s; %ld recovered from a checkpoint\n",
               n_total + 1, n_total, now_s() - t0, from_ckpt);
        fflush(stdout);
        if (from_ckpt == 0) {
            struct point p = {seed, 1, 0, opt_bg, opt_torn};
            rc = fail_point(&p, "no crash point recovered from a checkpoint");
            goto done;
        }
    }
    double t1 = now_s();
    uint64_t rng = seed;
    for (long i = 0; i < nrandom && !rc; i++) {
        uint64_t s = tu_splitmix(&rng);
        bool bg = opt_bg || (s >> 32) % 4 == 0;
        /* A quarter tear durable neighbours (not with --atomic-sectors,
         * whose sectors are never garbled). */
        bool torn = opt_torn || (!opt_atomic && (s >> 40) % 4 == 0);
        struct point p = {s, 1 + s % (total[bg] + 1), 0, bg, torn};
        if ((s >> 20) % 3 == 0)
            p.m = 1 + (s >> 24) % (total[bg] + 1);
        rc = run_point(&p, &t, NULL);
    }
    if (!rc && nrandom > 0)
        printf("powerloss: random: %ld crash points passed in %.1f s\n", nrandom, now_s() - t1);

done:
    if (rc == 0 || !opt_keep)
        tu_rm_rf(basedir);
    printf("powerloss: %ld points (%ld chained, %ld with background checkpoints, %ld with torn "
           "neighbours) in %.1f s; %ld recovered from a checkpoint; %ld found the commit in "
           "flight durable; %ld recoveries truncated a torn tail\n",
           t.points, t.chained, t.bg, t.torn, now_s() - t0, t.from_ckpt, t.in_flight_found,
           t.truncated);
    printf("%ld passed, %d failed\n", t.points, rc ? 1 : 0);
    return rc ? 1 : 0;
}
