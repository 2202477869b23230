/*
 * test_engine_tail.c — the WAL tail corpus at the engine level (invariant 2:
 * a torn or corrupt record at the tail ends recovery there; corruption
 * anywhere else is an error naming file and offset). The WAL layer has its
 * own corpus (test_wal_tail.c); this one goes through cairn_open and checks
 * the state a reader sees.
 *
 * The base database: three collections and a sequence of known transactions
 * (multi-op, multi-collection, deletes, a drop and re-create, an empty
 * commit, restore points) written in SYNC mode, then three more written in
 * NONE mode (so their records carry the same durable hint: damage to any of
 * them is a torn tail, never "corruption before the durable point"). After
 * every commit the test keeps a digest of everything a reader can see; the
 * COMMIT records found in the log with the WAL reader map 1:1 onto those
 * digests. The last three records are COMMIT(T2), UPSERT(T3), COMMIT(T3),
 * and T2's upsert is sized so that COMMIT(T2)'s header straddles a 512-byte
 * sector boundary.
 *
 * Each damage is applied to a fresh copy of the database. The expectation is
 * computed from the bytes: the first record whose bytes changed is where
 * the log must end (P; the PAD records closing each flush on a block
 * boundary count, and last_lsn must be the end of the last other record
 * before P); the state must be the digest after the last COMMIT
 * before P; bytes_truncated must be the nonzero bytes left from P to the end
 * of the segment; then a second reopen finds nothing to truncate and the
 * same state, and a new commit survives a third reopen. (If some intact
 * record after P carried a durable hint > P, the expectation would be
 * CAIRN_ECORRUPT instead; the second test makes exactly that happen.)
 *
 * Damages on the last three records: zero-fill from every byte offset;
 * ftruncate at a few offsets; a flipped bit at every byte; length 0;
 * oversized lengths; stale bytes of an older record; the record resealed
 * with another segment's salt (stale bytes of an older use of the file);
 * the header straddling a sector boundary with the second (or the first)
 * sector zeroed.
 *
 * Corruption in the middle: damage a record of an early SYNC transaction,
 * followed by later durable commits: cairn_open gives CAIRN_ECORRUPT naming
 * the segment file and offset, and no file changes. The same records
 * rewritten and sealed again (a payload that is not JSON, a wrong
 * dimension, an unknown collection: damage no CRC sees): CAIRN_ECORRUPT
 * naming the record's LSN, no file changes.
 *
 *   env CAIRN_SEED=<n>   vectors and payloads (printed)
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "cairn.h"
#include "wal/wal.h"

#include "testutil.h"

#define SEG_SIZE ((uint64_t)CAIRN_WAL_SEGMENT_MIN)
#define ALIGN8(x) (((x) + 7u) & ~(uint64_t)7u)

static char tmpbase[512];
static char basedir[600];
static uint64_t g_seed;
static int casecounter; /* which test: names the case directories */

/* ---- helpers ------------------------------------------------------------------- */

/* Cases run in forked workers (the disk's fsync latency dominates; several
 * cases in flight overlap it). In a worker a failure prints and exits; in
 * the cmocka process it is a cmocka failure. */
static bool in_worker;

static void fail_here(const char *file, int line, const char *fmt, ...) {
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (in_worker) {
        fprintf(stderr, "engine_tail: FAILED at %s:%d: %s\n", file, line, buf);
        fflush(stderr);
        _exit(1);
    }
    fail_msg("%s:%d: %s", file, line, buf);
}
#define FAIL(...) fail_here(__FILE__, __LINE__, __VA_ARGS__)
#define REQ(c)                                 \
    do {                                       \
        if (!(c)) FAIL("requirement: %s", #c); \
    } while (0)

#define CHECK_OK(call)                                                                   \
    do {                                                                                 \
        cairn_status st_ = (call);                                                       \
        if (st_ != CAIRN_OK)                                                             \
            FAIL("%s: %s: %s", #call, cairn_status_name(st_), cairn_last_error());  \
    } while (0)

static cairn_db *open_db(const char *dir, cairn_durability d, unsigned jobs) {
    cairn_options o = tu_opts(d, CAIRN_IO_DEFAULT, jobs);
    cairn_db *db = NULL;
    cairn_status st = cairn_open(dir, &o, &db);
    if (st) FAIL("open %s: %s: %s", dir, cairn_status_name(st), cairn_last_error());
    return db;
}

static void copy_tree(const char *from, const char *to) {
    if (tu_copy_tree(from, to) != 0) FAIL("%s", tu_error());
}

static unsigned char *read_whole(const char *path, size_t *len) {
    unsigned char *b = tu_read_file(path, len);
    if (!b) FAIL("%s", tu_error());
    return b;
}

static void write_whole(const char *path, const unsigned char *b, size_t len) {
    int fd = open(path, O_WRONLY | O_TRUNC);
    REQ(fd >= 0);
    REQ(pwrite(fd, b, len, 0) == (ssize_t)len);
    close(fd);
}

/* ---- state digest ------------------------------------------------------------- */

/* Everything a reader can see (collection ids and bytes left out). */
static void state_digest(cairn_db *db, struct tu_dig *d) {
    if (tu_state_digest(db, d, 0) != 0) FAIL("%s", tu_error());
}

/* ---- the base database and its oracle ------------------------------------------ */

#define MAXCOMMITS 64
static struct tu_dig oracle[MAXCOMMITS + 1]; /* [i]: state after the i-th COMMIT */
static int ncommits_oracle;

struct rec {
    uint64_t lsn;
    uint32_t len;
    uint8_t type;
    uint64_t txn;
    uint64_t hint;
};
static struct rec recs[512];
static int nrecs;
/* recs and the PAD records between and after them (format.h, BLOCKS), in
 * LSN order: damage to a PAD ends the log too */
static struct rec all[1024];
static int nall;
static char segpath[800]; /* the (only) data segment of the base */
static unsigned char *seg_orig;
static size_t seg_len;
static uint32_t seg_salt;
static int a_first, a_last; /* records of the early SYNC transaction "A" */

static void note_commit(cairn_db *db) {
    REQ(ncommits_oracle < MAXCOMMITS);
    state_digest(db, &oracle[++ncommits_oracle]);
}

static void vec(uint64_t *rs, float *v, uint32_t dim) { tu_fill_vec(rs, v, dim, -2.0, 2.0); }

static void upsert(cairn_txn *t, const char *c, uint64_t id, uint32_t dim, uint64_t *rs,
                   const char *payload) {
    float v[16];
    vec(rs, v, dim);
    CHECK_OK(cairn_txn_upsert(t, c, id, v, dim, payload, payload ? strlen(payload) : 0));
}

static void commit(cairn_db *db, cairn_txn *t) {
    CHECK_OK(cairn_txn_commit(t, NULL));
    cairn_txn_free(t);
    note_commit(db);
}

static int build_base(void **state) {
    (void)state;
    snprintf(basedir, sizeof basedir, "%s/base", tmpbase);
    uint64_t rs = g_seed;
    cairn_db *db = open_db(basedir, CAIRN_DURABILITY_SYNC, 1);
    state_digest(db, &oracle[0]);
    ncommits_oracle = 0;
    CHECK_OK(cairn_collection_create(db, "a", 4, CAIRN_METRIC_L2));
    note_commit(db);
    CHECK_OK(cairn_collection_create(db, "b", 3, CAIRN_METRIC_COSINE));
    note_commit(db);
    CHECK_OK(cairn_collection_create(db, "c", 6, CAIRN_METRIC_DOT));
    note_commit(db);
    cairn_txn *t;
    /* A: the early transaction damaged by the corruption test */
    CHECK_OK(cairn_txn_begin(db, &t));
    upsert(t, "a", 1, 4, &rs, "{\"n\":1}");
    upsert(t, "b", 1, 3, &rs, NULL);
    commit(db, t);
    for (int i = 0; i < 8; i++) {
        CHECK_OK(cairn_txn_begin(db, &t));
        char pl[64];
        snprintf(pl, sizeof pl, "{\"i\":%d,\"tag\":\"t%d\"}", i, i % 3);
        upsert(t, "a", 10 + (uint64_t)i, 4, &rs, pl);
        upsert(t, "c", 10 + (uint64_t)i, 6, &rs, i % 2 ? pl : NULL);
        if (i % 3 == 2) CHECK_OK(cairn_txn_delete(t, "a", 10 + (uint64_t)i - 2));
        if (i == 5) upsert(t, "b", 2, 3, &rs, "{\"b\":[1,2,3]}");
        commit(db, t);
    }
    CHECK_OK(cairn_restore_point(db, "middle", NULL));
    /* an empty transaction: a COMMIT without records */
    CHECK_OK(cairn_txn_begin(db, &t));
    commit(db, t);
    /* drop and re-create with another dimension */
    CHECK_OK(cairn_collection_drop(db, "b"));
    note_commit(db);
    CHECK_OK(cairn_collection_create(db, "b", 2, CAIRN_METRIC_L2));
    note_commit(db);
    CHECK_OK(cairn_txn_begin(db, &t));
    upsert(t, "b", 5, 2, &rs, "{\"new\":true}");
    upsert(t, "a", 11, 4, &rs, NULL); /* overwrite */
    commit(db, t);
    cairn_point p[3];
    float pv[3][6];
    for (int i = 0; i < 3; i++) {
        vec(&rs, pv[i], 6);
        p[i] = (cairn_point){.id = 100 + (uint64_t)i, .vector = pv[i]};
    }
    CHECK_OK(cairn_upsert_batch(db, "c", p, 3, 6, NULL));
    note_commit(db);
    uint64_t del[2] = {100, 12};
    CHECK_OK(cairn_delete_batch(db, "c", del, 2, NULL));
    note_commit(db);
    CHECK_OK(cairn_close(db));

    /* The tail, in NONE mode: records appended without a sync in between
     * carry the same durable hint. */
    db = open_db(basedir, CAIRN_DURABILITY_NONE, 1);
    struct tu_dig chk = {0};
    state_digest(db, &chk);
    REQ(tu_dig_eq(&chk, &oracle[ncommits_oracle]));
    tu_dig_free(&chk);
    /* T1: upsert + delete over two collections */
    CHECK_OK(cairn_txn_begin(db, &t));
    upsert(t, "a", 200, 4, &rs, "{\"t\":1}");
    CHECK_OK(cairn_txn_delete(t, "b", 5));
    commit(db, t);
    /* T2: one upsert sized so that COMMIT(T2)'s header straddles a 512-byte
     * sector boundary (starts 16 bytes before it) */
    cairn_stats s;
    CHECK_OK(cairn_stats_get(db, &s));
    uint64_t p1 = s.last_lsn;
    uint64_t want = (496 + 1024 - (p1 % 512)) % 512; /* size of UPSERT(T2) mod 512 */
    while (want < WAL_REC_HDR + 16 + 4 * 6 + 8) want += 512;
    size_t plen = (size_t)(want - (WAL_REC_HDR + 16 + 4 * 6));
    char *pl = malloc(plen + 1);
    REQ((pl) != NULL);
    memcpy(pl, "{\"p\":\"", 6);
    memset(pl + 6, 'x', plen - 8);
    memcpy(pl + plen - 2, "\"}", 2);
    pl[plen] = 0;
    CHECK_OK(cairn_txn_begin(db, &t));
    upsert(t, "c", 300, 6, &rs, pl);
    commit(db, t);
    free(pl);
    /* T3: one upsert */
    CHECK_OK(cairn_txn_begin(db, &t));
    upsert(t, "a", 301, 4, &rs, "{\"last\":\"the final transaction\",\"k\":[1,2]}");
    commit(db, t);
    CHECK_OK(cairn_close(db));

    /* The records, as the reader sees them. */
    char waldir[700];
    snprintf(waldir, sizeof waldir, "%s/wal", basedir);
    wal_reader *r = NULL;
    CHECK_OK(wal_reader_open(waldir, 1, 0, &r));
    nrecs = 0;
    int ncommit_recs = 0;
    for (;;) {
        struct wal_record wr;
        bool end = false;
        CHECK_OK(wal_reader_next(r, &wr, &end));
        if (end) break;
        REQ(nrecs < (int)(sizeof recs / sizeof recs[0]));
        recs[nrecs++] = (struct rec){wr.lsn, wr.len, wr.type, wr.txn_id, wr.durable_hint};
        ncommit_recs += wr.type == WAL_REC_COMMIT;
    }
    REQ(!(wal_reader_end(r)->torn));
    uint64_t stop = wal_reader_end(r)->end_lsn;
    wal_reader_close(r);
    /* every commit made one COMMIT record */
    REQ((ncommit_recs) == (ncommits_oracle));
    /* all in the first segment */
    REQ(recs[nrecs - 1].lsn + recs[nrecs - 1].len < SEG_SIZE);
    char name[64];
    wal_seg_name(name, sizeof name, 1, 0);
    snprintf(segpath, sizeof segpath, "%s/%s", waldir, name);
    seg_orig = read_whole(segpath, &seg_len);
    REQ((seg_len) == (SEG_SIZE));
    memcpy(&seg_salt, seg_orig + 40, 4);
    /* the PADs, from the bytes: each gap between records holds one */
    nall = 0;
    uint64_t at = WAL_SEG_DATA;
    for (int i = 0; i <= nrecs; i++) {
        uint64_t next = i < nrecs ? recs[i].lsn : stop;
        if (at < next) {
            uint32_t plen;
            uint64_t plsn, phint;
            memcpy(&plen, seg_orig + at + 4, 4);
            memcpy(&plsn, seg_orig + at + 16, 8);
            memcpy(&phint, seg_orig + at + 32, 8);
            REQ(seg_orig[at + 8] == WAL_REC_PAD && plen == next - at && plsn == at);
            REQ(next % WAL_BLOCK == 0);
            all[nall++] = (struct rec){at, plen, WAL_REC_PAD, 0, phint};
        }
        if (i < nrecs) {
            REQ(nall < (int)(sizeof all / sizeof all[0]));
            all[nall++] = recs[i];
            at = ALIGN8(recs[i].lsn + recs[i].len);
        }
    }
    REQ(all[nall - 1].type == WAL_REC_PAD); /* the close's flush ended with one */
    /* the tail: COMMIT(T2), UPSERT(T3), COMMIT(T3), with one hint */
    const struct rec *l3 = &recs[nrecs - 3];
    REQ((l3[0].type) == (WAL_REC_COMMIT));
    REQ((l3[1].type) == (WAL_REC_UPSERT));
    REQ((l3[2].type) == (WAL_REC_COMMIT));
    REQ(l3[0].lsn % 512 == 496);
    for (int i = 0; i < 3; i++) REQ(l3[i].hint <= recs[nrecs - 6].lsn);
    /* transaction A: the records of the 4th commit (the first point txn) */
    int commits = 0;
    a_first = a_last = -1;
    for (int i = 0; i < nrecs; i++) {
        if (commits == 3 && a_first < 0) a_first = i;
        if (recs[i].type == WAL_REC_COMMIT && ++commits == 4) {
            a_last = i;
            break;
        }
    }
    REQ(a_first >= 0 && a_last == a_first + 2);
    printf("engine_tail: base: %d records, %d commits, log end %" PRIu64
           ", last three at %" PRIu64 "..%" PRIu64 "\n",
           nrecs, ncommits_oracle, recs[nrecs - 1].lsn + recs[nrecs - 1].len, l3[0].lsn,
           l3[2].lsn + l3[2].len);
    fflush(stdout);
    return 0;
}

/* ---- one damage case ------------------------------------------------------------- */

struct expect {
    bool corrupt;
    uint64_t end;      /* LSN where the log must end */
    uint64_t rec_end;  /* end of the last record before it (PADs excluded) */
    int state;         /* oracle index */
    uint64_t garbage;  /* nonzero bytes from end to the end of the segment */
    bool discarded;    /* a transaction cut at the end */
    uint64_t q_hint_lsn;
};

static uint64_t log_end(void) {
    return ALIGN8(recs[nrecs - 1].lsn + recs[nrecs - 1].len);
}

/* Computes the expectation from the damaged segment image. */
static void expect_for(const unsigned char *img, size_t img_len, struct expect *e) {
    memset(e, 0, sizeof *e);
    int p = -1;
    for (int i = 0; i < nall && p < 0; i++) {
        uint64_t a = all[i].lsn, b = all[i].lsn + all[i].len;
        for (uint64_t x = a; x < b; x++) {
            unsigned char now = x < img_len ? img[x] : 0;
            if (now != seg_orig[x]) {
                p = i;
                break;
            }
        }
    }
    e->end = p < 0 ? all[nall - 1].lsn + all[nall - 1].len : all[p].lsn;
    int commits = 0;
    e->rec_end = WAL_SEG_DATA;
    for (int i = 0; i < (p < 0 ? nall : p); i++) {
        commits += all[i].type == WAL_REC_COMMIT;
        if (all[i].type != WAL_REC_PAD) e->rec_end = ALIGN8(all[i].lsn + all[i].len);
    }
    e->state = commits;
    if (p >= 0) {
        for (int i = p + 1; i < nall; i++) {
            bool intact = true;
            for (uint64_t x = all[i].lsn; x < all[i].lsn + all[i].len && intact; x++)
                intact = (x < img_len ? img[x] : 0) == seg_orig[x];
            if (intact && all[i].hint > all[p].lsn) e->corrupt = true;
        }
        e->discarded = p > 0 && all[p].txn != 0 && all[p - 1].txn == all[p].txn &&
                       all[p - 1].type != WAL_REC_COMMIT;
    }
    for (uint64_t x = e->end; x < img_len; x++) e->garbage += img[x] != 0;
}

/* Files of a directory tree with their bytes, to prove a failed open changed
 * nothing. */
static void tree_take(struct tu_tree *t, const char *dir) {
    if (tu_tree_take(t, dir) != 0) FAIL("%s", tu_error());
}

static void tree_same(const struct tu_tree *a, const struct tu_tree *b) {
    char why[1200];
    if (tu_tree_diff(a, b, why, sizeof why)) FAIL("failed open %s", why);
}

/* counters shared with the workers (MAP_SHARED) */
struct tally {
    long cases, torn, clean, corrupt, short_file, discarded;
};
static struct tally *tally;
#define TALLY(field, n) __atomic_fetch_add(&tally->field, (n), __ATOMIC_RELAXED)

/* Runs one case: `img` (img_len bytes; shorter than the segment = the file
 * was truncated) replaces the segment in a fresh copy of the base. */
static void run_case(int idx, const char *label, const unsigned char *img, size_t img_len) {
    char dir[700], seg[800];
    snprintf(dir, sizeof dir, "%s/case%d.%d", tmpbase, casecounter, idx);
    copy_tree(basedir, dir);
    snprintf(seg, sizeof seg, "%s/wal/%s", dir, strrchr(segpath, '/') + 1);
    write_whole(seg, img, img_len);
    struct expect e;
    expect_for(img, img_len, &e);
    TALLY(cases, 1);
    unsigned jobs = 1 + (unsigned)(idx % 3);

    cairn_options o = tu_opts(CAIRN_DURABILITY_SYNC, CAIRN_IO_DEFAULT, jobs);
    cairn_db *db = NULL;
    /* A segment file of another size than the segment size is damage, not a
     * torn tail (segments are created full size, wal/reader.c): refused. */
    bool short_file = img_len != seg_len;
    if (e.corrupt || short_file) {
        TALLY(corrupt, 1);
        TALLY(short_file, short_file);
        struct tu_tree before, after;
        tree_take(&before, dir);
        cairn_status st = cairn_open(dir, &o, &db);
        if (st != CAIRN_ECORRUPT)
            FAIL("%s: open gave %s (%s), expected CAIRN_ECORRUPT", label,
                     cairn_status_name(st), cairn_last_error());
        char off[64];
        snprintf(off, sizeof off, "offset %" PRIu64, short_file ? 0 : e.end % SEG_SIZE);
        if (!strstr(cairn_last_error(), strrchr(segpath, '/') + 1) ||
            !strstr(cairn_last_error(), off))
            FAIL("%s: message does not name the segment and %s: %s", label, off,
                     cairn_last_error());
        tree_take(&after, dir);
        tree_same(&before, &after);
        tu_tree_free(&before);
        tu_tree_free(&after);
        tu_rm_rf(dir);
        return;
    }
    cairn_status st = cairn_open(dir, &o, &db);
    if (st)
        FAIL("%s: open failed: %s: %s", label, cairn_status_name(st), cairn_last_error());
    cairn_stats s;
    CHECK_OK(cairn_stats_get(db, &s));
    struct tu_dig d = {0};
    state_digest(db, &d);
    if (!tu_dig_eq(&d, &oracle[e.state]))
        FAIL("%s: state after recovery is not the state after commit %d of %d", label,
                 e.state, ncommits_oracle);
    if (s.last_lsn != e.rec_end)
        FAIL("%s: last record ends at %" PRIu64 ", expected %" PRIu64, label, s.last_lsn,
             e.rec_end);
    if (s.recovery.end_lsn != e.end)
        FAIL("%s: recovery end_lsn %" PRIu64 ", expected %" PRIu64, label,
                 s.recovery.end_lsn, e.end);
    if (s.recovery.bytes_truncated != e.garbage)
        FAIL("%s: bytes_truncated %" PRIu64 ", expected %" PRIu64 " (nonzero bytes left "
                 "after LSN %" PRIu64 ")",
                 label, s.recovery.bytes_truncated, e.garbage, e.end);
    if (e.garbage) {
        TALLY(torn, 1);
        if (s.recovery.truncated_at != e.end || !strstr(s.recovery.truncated_file, "/wal/"))
            FAIL("%s: truncated_at %" PRIu64 " file \"%s\", expected %" PRIu64, label,
                     s.recovery.truncated_at, s.recovery.truncated_file, e.end);
    } else {
        TALLY(clean, 1);
    }
    if (s.recovery.txns_discarded != (e.discarded ? 1u : 0u))
        FAIL("%s: txns_discarded %" PRIu64 ", expected %d", label,
                 s.recovery.txns_discarded, e.discarded);
    TALLY(discarded, e.discarded);
    CHECK_OK(cairn_close(db));

    /* second reopen: nothing more to truncate, same state */
    o.replay_jobs = 4 - jobs;
    CHECK_OK(cairn_open(dir, &o, &db));
    CHECK_OK(cairn_stats_get(db, &s));
    if (s.recovery.bytes_truncated != 0 || s.recovery.truncated_at != 0)
        FAIL("%s: second reopen truncated %" PRIu64 " bytes at %" PRIu64, label,
                 s.recovery.bytes_truncated, s.recovery.truncated_at);
    if (s.last_lsn != e.rec_end)
        FAIL("%s: second reopen's last record ends at %" PRIu64, label, s.last_lsn);
    state_digest(db, &d);
    if (!tu_dig_eq(&d, &oracle[e.state]))
        FAIL("%s: state changed at the second reopen", label);

    /* new commits work and survive another reopen */
    cairn_collection_info *list = NULL;
    size_t n = 0;
    CHECK_OK(cairn_collection_list(db, &list, &n));
    REQ(n > 0);
    cairn_txn *t;
    CHECK_OK(cairn_txn_begin(db, &t));
    uint64_t rs = (uint64_t)idx;
    for (size_t i = 0; i < n; i++) {
        float v[16];
        vec(&rs, v, list[i].dim);
        CHECK_OK(cairn_txn_upsert(t, list[i].name, 777, v, list[i].dim, "{\"after\":1}", 11));
    }
    cairn_free(list);
    CHECK_OK(cairn_txn_commit(t, NULL));
    cairn_txn_free(t);
    CHECK_OK(cairn_restore_point(db, "after-recovery", NULL));
    struct tu_dig d2 = {0};
    state_digest(db, &d2);
    CHECK_OK(cairn_close(db));
    CHECK_OK(cairn_open(dir, &o, &db));
    CHECK_OK(cairn_stats_get(db, &s));
    if (s.recovery.bytes_truncated != 0)
        FAIL("%s: third reopen truncated %" PRIu64 " bytes", label,
                 s.recovery.bytes_truncated);
    state_digest(db, &d);
    if (!tu_dig_eq(&d, &d2)) FAIL("%s: the commit after recovery did not survive", label);
    CHECK_OK(cairn_close(db));
    tu_dig_free(&d);
    tu_dig_free(&d2);
    tu_rm_rf(dir);
}

/* ---- damages: case generators and the worker pool ------------------------------- */

/* Fills w (seg_len bytes, a copy of the original segment) with case i of a
 * family; *len is the file length to write (seg_len unless the file is cut
 * short). Returns false when i is past the last case. */
typedef bool (*gen_fn)(int i, unsigned char *w, size_t *len, char *label, size_t lsz);

static int nworkers(void) {
    const char *e = getenv("CAIRN_TAIL_JOBS");
    int n = e ? atoi(e) : 4;
    return n < 1 ? 1 : n > 16 ? 16 : n;
}

/* Runs every case of gen, spread over forked workers; returns the count. */
static int run_all(gen_fn gen) {
    casecounter++;
    int n = nworkers();
    pid_t pids[16];
    fflush(stdout);
    fflush(stderr);
    for (int k = 0; k < n; k++) {
        pids[k] = fork();
        REQ(pids[k] >= 0);
        if (pids[k] == 0) {
            in_worker = true;
            unsigned char *w = malloc(seg_len);
            if (!w) _exit(2);
            char label[200];
            for (int i = k;; i += n) {
                size_t len = seg_len;
                memcpy(w, seg_orig, seg_len);
                if (!gen(i, w, &len, label, sizeof label)) break;
                run_case(i, label, w, len);
            }
            free(w);
            _exit(0);
        }
    }
    bool ok = true;
    for (int k = 0; k < n; k++) {
        int wst = 0;
        REQ(waitpid(pids[k], &wst, 0) == pids[k]);
        if (!WIFEXITED(wst) || WEXITSTATUS(wst) != 0) {
            fprintf(stderr, "engine_tail: worker %d failed (status 0x%x)\n", k, wst);
            ok = false;
        }
    }
    if (!ok) FAIL("a damage case failed (see above)");
    int count = 0;
    unsigned char *w = malloc(seg_len);
    char label[200];
    for (size_t len = seg_len; gen(count, w, &len, label, sizeof label); len = seg_len) count++;
    free(w);
    return count;
}

static void set_len(unsigned char *w, uint64_t lsn, uint32_t len) { memcpy(w + lsn + 4, &len, 4); }

static const struct rec *last3(void) { return &recs[nrecs - 3]; }

/* Zero-fill from every byte offset of the last three records; then the
 * file cut short at a few offsets. */
static bool gen_truncation(int i, unsigned char *w, size_t *len, char *label, size_t lsz) {
    const struct rec *l3 = last3();
    uint64_t from = l3[0].lsn, to = log_end();
    if ((uint64_t)i < to - from) {
        uint64_t x = from + (uint64_t)i;
        memset(w + x, 0, seg_len - x);
        snprintf(label, lsz, "zero-fill from offset %" PRIu64, x);
        return true;
    }
    i -= (int)(to - from);
    uint64_t cuts[] = {l3[0].lsn, l3[0].lsn + 20, l3[1].lsn, l3[1].lsn + l3[1].len / 2,
                       l3[2].lsn + 7, to, 1u << 20};
    if (i >= (int)(sizeof cuts / sizeof cuts[0])) return false;
    *len = (size_t)cuts[i];
    snprintf(label, lsz, "file cut short to %" PRIu64 " bytes", cuts[i]);
    return true;
}

/* A flipped bit at every byte of the last three records. */
static bool gen_bitflips(int i, unsigned char *w, size_t *len, char *label, size_t lsz) {
    (void)len;
    for (int r = nrecs - 3; r < nrecs; r++) {
        if ((uint32_t)i < recs[r].len) {
            uint64_t x = recs[r].lsn + (uint64_t)i;
            unsigned bit = (unsigned)(x * 5 + (uint64_t)r) % 8;
            w[x] ^= (unsigned char)(1u << bit);
            snprintf(label, lsz, "bit %u flipped at offset %" PRIu64 " (record %d)", bit, x, r);
            return true;
        }
        i -= (int)recs[r].len;
    }
    return false;
}

#define NLENS 11
static bool gen_lengths(int i, unsigned char *w, size_t *len, char *label, size_t lsz) {
    (void)len;
    if (i >= 3 * NLENS) return false;
    int r = nrecs - 3 + i / NLENS;
    uint64_t at = recs[r].lsn;
    uint32_t lens[NLENS] = {0,
                            1,
                            WAL_REC_HDR - 1,
                            recs[r].len - 1,
                            recs[r].len + 8,
                            (uint32_t)(SEG_SIZE - at),
                            (uint32_t)(SEG_SIZE - at + 8),
                            WAL_REC_MAX,
                            WAL_REC_MAX + 1,
                            0x7fffffffu,
                            0xffffffffu};
    set_len(w, at, lens[i % NLENS]);
    snprintf(label, lsz, "record %d length %" PRIu32, r, lens[i % NLENS]);
    return true;
}

/* Stale bytes: an older record of the same type copied over (as is, and
 * with the LSN field patched to the position); the right record sealed
 * with another segment's salt (an older use of the file); an older header
 * patched to the position. */
static bool gen_stale(int i, unsigned char *w, size_t *len, char *label, size_t lsz) {
    (void)len;
    if (i >= 3 * 4) return false;
    int r = nrecs - 3 + i / 4;
    int old = -1;
    for (int k = 0; k < nrecs - 6; k++)
        if (recs[k].type == recs[r].type) old = k;
    REQ(old >= 0);
    uint64_t at = recs[r].lsn;
    switch (i % 4) {
    case 0:
    case 1: {
        uint32_t n = recs[old].len;
        if (at + n > seg_len) n = (uint32_t)(seg_len - at);
        memmove(w + at, seg_orig + recs[old].lsn, n);
        if (i % 4 == 1) memcpy(w + at + 16, &at, 8);
        snprintf(label, lsz, "stale record %d%s over record %d", old,
                 i % 4 ? " with its LSN patched" : "", r);
        break;
    }
    case 2:
        wal_rec_seal(w + at, at, recs[r].hint, seg_salt ^ 0x5a5a5a5au);
        snprintf(label, lsz, "record %d sealed with another salt", r);
        break;
    default:
        memcpy(w + at, seg_orig + recs[old].lsn, WAL_REC_HDR);
        memcpy(w + at + 16, &at, 8);
        snprintf(label, lsz, "stale header of record %d over record %d", old, r);
        break;
    }
    return true;
}

/* A record header straddling a 512-byte sector boundary, with the second
 * sector zeroed (a torn sector write), the first zeroed, or the second
 * holding stale bytes. */
static int sector_records(int *out) {
    int n = 0;
    for (int r = nrecs - 3; r < nrecs; r++) {
        uint64_t boundary = (recs[r].lsn / 512 + 1) * 512;
        if (boundary < recs[r].lsn + WAL_REC_HDR) out[n++] = r;
    }
    return n;
}

static bool gen_sector(int i, unsigned char *w, size_t *len, char *label, size_t lsz) {
    (void)len;
    int rs[3];
    int n = sector_records(rs);
    if (i >= 3 * n) return false;
    int r = rs[i / 3];
    uint64_t boundary = (recs[r].lsn / 512 + 1) * 512;
    static const char *what[3] = {"second sector zeroed", "first sector zeroed",
                                  "second sector stale"};
    if (i % 3 == 0) memset(w + boundary, 0, 512);
    else if (i % 3 == 1) memset(w + boundary - 512, 0, 512);
    else memcpy(w + boundary, seg_orig + 2048, 512);
    snprintf(label, lsz, "record %d header split at %" PRIu64 ", %s", r, boundary,
             what[i % 3]);
    return true;
}

/* Damage to the records of transaction A (an early SYNC commit), with
 * durable commits after it. */
#define NMIDDLE 8
static bool gen_middle(int i, unsigned char *w, size_t *len, char *label, size_t lsz) {
    (void)len;
    if (i >= (a_last - a_first + 1) * NMIDDLE) return false;
    int r = a_first + i / NMIDDLE;
    const struct rec *rc = &recs[r];
    uint64_t xs[5] = {rc->lsn, rc->lsn + 3, rc->lsn + 16, rc->lsn + WAL_REC_HDR,
                      rc->lsn + rc->len - 1};
    int v = i % NMIDDLE;
    if (v < 5) {
        w[xs[v]] ^= 0x10;
        snprintf(label, lsz, "middle: bit flipped at %" PRIu64 " (record %d)", xs[v], r);
    } else if (v == 5) {
        set_len(w, rc->lsn, 0);
        snprintf(label, lsz, "middle: record %d length 0", r);
    } else if (v == 6) {
        memset(w + rc->lsn, 0, rc->len);
        snprintf(label, lsz, "middle: record %d zeroed", r);
    } else {
        memmove(w + rc->lsn, seg_orig + recs[0].lsn,
                recs[0].len < rc->len ? recs[0].len : rc->len);
        snprintf(label, lsz, "middle: stale record 0 over record %d", r);
    }
    return true;
}

static void test_tail_truncation(void **state) {
    (void)state;
    long c0 = tally->short_file;
    int n = run_all(gen_truncation);
    REQ(n > (int)(log_end() - last3()[0].lsn));
    REQ(tally->short_file - c0 == 7);
}

static void test_tail_bitflips(void **state) {
    (void)state;
    int n = run_all(gen_bitflips);
    REQ(n == (int)(recs[nrecs - 3].len + recs[nrecs - 2].len + recs[nrecs - 1].len));
}

static void test_tail_lengths(void **state) {
    (void)state;
    REQ(run_all(gen_lengths) == 3 * NLENS);
}

static void test_tail_stale(void **state) {
    (void)state;
    REQ(run_all(gen_stale) == 12);
}

static void test_tail_sector_split(void **state) {
    (void)state;
    int rs[3];
    REQ(sector_records(rs) >= 1);
    REQ(run_all(gen_sector) >= 3);
}

static void test_middle_corruption(void **state) {
    (void)state;
    long c0 = tally->corrupt;
    int n = run_all(gen_middle);
    REQ(n == 3 * NMIDDLE);
    /* every one of them refused as corruption (a later record proves A
     * durable) */
    REQ(tally->corrupt - c0 == n);
    REQ(recs[nrecs - 1].hint > recs[a_last].lsn);
}

/* Damage the CRC cannot see: records of transaction A rewritten and
 * sealed again with the segment's salt, so that they read as intact and
 * only the replay's own checks can refuse them: an upsert whose payload is
 * no longer JSON, one whose dimension is not its collection's, one naming
 * a collection that does not exist. With 1 to 3 replay jobs (the checks
 * are split between the reading thread and the workers that apply):
 * CAIRN_ECORRUPT naming the record's LSN and what is wrong, no file
 * changed. */
static void test_resealed_records(void **state) {
    (void)state;
    const struct rec *up_a = &recs[a_first], *up_b = &recs[a_first + 1];
    REQ(up_a->type == WAL_REC_UPSERT && up_b->type == WAL_REC_UPSERT);
    uint32_t coll_a;
    memcpy(&coll_a, seg_orig + up_a->lsn + 12, 4);
    REQ(seg_orig[up_a->lsn + up_a->len - 1] == '}'); /* {"n":1} ends the record */
    static const char *const what[3] = {"payload is not valid JSON", "has dimension 3",
                                        "names collection 999"};
    unsigned char *w = malloc(seg_len);
    REQ(w != NULL);
    for (int k = 0; k < 3; k++) {
        memcpy(w, seg_orig, seg_len);
        const struct rec *r = k == 1 ? up_b : up_a;
        if (k == 0) w[r->lsn + r->len - 1] = ']';
        uint32_t coll = k == 1 ? coll_a : 999;
        if (k > 0) memcpy(w + r->lsn + 12, &coll, 4);
        wal_rec_seal(w + r->lsn, r->lsn, r->hint, seg_salt);
        for (unsigned jobs = 1; jobs <= 3; jobs++) {
            char dir[700], seg[800], want[64];
            snprintf(dir, sizeof dir, "%s/resealed%d.%u", tmpbase, k, jobs);
            copy_tree(basedir, dir);
            snprintf(seg, sizeof seg, "%s/wal/%s", dir, strrchr(segpath, '/') + 1);
            write_whole(seg, w, seg_len);
            struct tu_tree before, after;
            tree_take(&before, dir);
            cairn_options o = tu_opts(CAIRN_DURABILITY_SYNC, CAIRN_IO_DEFAULT, jobs);
            cairn_db *db = NULL;
            cairn_status st = cairn_open(dir, &o, &db);
            if (st != CAIRN_ECORRUPT)
                FAIL("resealed case %d, %u jobs: open gave %s (%s), expected CAIRN_ECORRUPT", k,
                     jobs, cairn_status_name(st), cairn_last_error());
            snprintf(want, sizeof want, "record at LSN %" PRIu64, r->lsn);
            if (!strstr(cairn_last_error(), want) || !strstr(cairn_last_error(), what[k]))
                FAIL("resealed case %d, %u jobs: message lacks \"%s\" or \"%s\": %s", k, jobs,
                     want, what[k], cairn_last_error());
            tree_take(&after, dir);
            tree_same(&before, &after);
            tu_tree_free(&before);
            tu_tree_free(&after);
            tu_rm_rf(dir);
        }
    }
    free(w);
}

int main(void) {
    g_seed = tu_seed_env("CAIRN_SEED", 0x7a11ULL);
    printf("engine_tail: seed=%" PRIu64 " (rerun: CAIRN_SEED=%" PRIu64 "), %d workers\n",
           g_seed, g_seed, nworkers());
    fflush(stdout);
    if (tu_tmpbase(tmpbase, sizeof tmpbase, "engine_tail") != 0) {
        perror("engine_tail: temporary directory");
        return 1;
    }
    tally = mmap(NULL, sizeof *tally, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (tally == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    memset(tally, 0, sizeof *tally);
    tu_quiet_log(); /* torn tails are logged as warnings by design */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tail_truncation),
        cmocka_unit_test(test_tail_bitflips),
        cmocka_unit_test(test_tail_lengths),
        cmocka_unit_test(test_tail_stale),
        cmocka_unit_test(test_tail_sector_split),
        cmocka_unit_test(test_middle_corruption),
        cmocka_unit_test(test_resealed_records),
    };
    int rc = cmocka_run_group_tests(tests, build_base, NULL);
    printf("engine_tail: %ld cases: %ld torn tails truncated, %ld clean ends, %ld refused as "
           "corrupt (%ld of them a segment file cut short); %ld cut transactions discarded\n",
           tally->cases, tally->torn, tally->clean, tally->corrupt, tally->short_file,
           tally->discarded);
    for (int i = 0; i <= ncommits_oracle; i++) tu_dig_free(&oracle[i]);
    free(seg_orig);
    tu_rm_rf(tmpbase);
    return rc;
}
