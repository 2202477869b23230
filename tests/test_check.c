/*
 * test_check.c — cairn_check(): a clean database (collections of three
 * layouts, payloads spanning pages, deletes, a two-level map, checkpoints,
 * a WAL tail) checks clean with the counts it holds; a database without a
 * checkpoint too; then each kind of damage, done to the files under the
 * open database (the check must read them, not the buffer pool) or to its
 * memory, is reported as CAIRN_ECORRUPT with a message naming the file and
 * the page or offset; a torn superblock slot that is not the current one
 * is a warning, not a problem; and checks while writers commit and
 * checkpoints run find nothing.
 *
 * Seeded: CAIRN_SEED replays a run.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cairn.h"
#include "common/crc32c.h"
#include "engine/engine_int.h"
#include "testutil.h"
#include "testutil_cmocka.h"

#define PG 8192u
#define BODY 32u

static char tmpbase[512];
static int dbcounter;
static uint64_t g_seed;

static void new_dir(char *out, size_t n)
{
    snprintf(out, n, "%s/db%d", tmpbase, dbcounter++);
}

/* ---- findings -------------------------------------------------------------- */

struct findings {
    char **msg;
    int *problem;
    size_t n;
};

static void collect(void *ctx, int problem, const char *message)
{
    struct findings *f = ctx;
    f->msg = realloc(f->msg, (f->n + 1) * sizeof *f->msg);
    f->problem = realloc(f->problem, (f->n + 1) * sizeof *f->problem);
    assert_non_null(f->msg);
    assert_non_null(f->problem);
    f->msg[f->n] = strdup(message);
    f->problem[f->n++] = problem;
}

static void findings_free(struct findings *f)
{
    for (size_t i = 0; i < f->n; i++)
        free(f->msg[i]);
    free(f->msg);
    free(f->problem);
    memset(f, 0, sizeof *f);
}

static void findings_print(const struct findings *f)
{
    for (size_t i = 0; i < f->n && i < 20; i++)
        fprintf(stderr, "  %s: %s\n", f->problem[i] ? "problem" : "warning", f->msg[i]);
}

/* A check that must find nothing. */
static void check_clean(cairn_db *db, cairn_check_report *r, const char *what)
{
    struct findings f = {0};
    cairn_status st = cairn_check_ex(db, r, collect, &f);
    if (st != CAIRN_OK || r->problems || r->warnings || f.n) {
        findings_print(&f);
        fail_msg("%s: check gave %s, %u problems, %u warnings: %s", what,
                 cairn_status_name(st), r->problems, r->warnings, r->first_problem);
    }
    findings_free(&f);
}

/* A check that must fail with CAIRN_ECORRUPT and a first problem holding
 * every needle (NULL-terminated list). */
static void expect_problem(cairn_db *db, const char *what, ...)
{
    cairn_check_report r;
    struct findings f = {0};
    cairn_status st = cairn_check_ex(db, &r, collect, &f);
    bool ok = st == CAIRN_ECORRUPT && r.problems >= 1 && f.n >= 1 && f.problem[0] &&
              strcmp(f.msg[0], r.first_problem) == 0 &&
              strcmp(cairn_last_error(), r.first_problem) == 0;
    va_list ap;
    va_start(ap, what);
    const char *needle, *missing = NULL;
    while ((needle = va_arg(ap, const char *)))
        if (!missing && !strstr(r.first_problem, needle))
            missing = needle;
    va_end(ap);
    if (!ok || missing) {
        findings_print(&f);
        fail_msg("%s: check gave %s (%u problems), first \"%s\"; want CAIRN_ECORRUPT "
                 "naming \"%s\"", what, cairn_status_name(st), r.problems, r.first_problem,
                 missing ? missing : "(all present)");
    }
    findings_free(&f);
}

/* A check that must fail with CAIRN_ECORRUPT, one of its problems (not
 * necessarily the first) holding every needle. */
static void expect_finding(cairn_db *db, const char *what, ...)
{
    cairn_check_report r;
    struct findings f = {0};
    cairn_status st = cairn_check_ex(db, &r, collect, &f);
    bool found = false;
    for (size_t i = 0; i < f.n && !found; i++) {
        if (!f.problem[i])
            continue;
        va_list ap;
        va_start(ap, what);
        const char *needle;
        bool all = true;
        while ((needle = va_arg(ap, const char *)))
            all &= strstr(f.msg[i], needle) != NULL;
        va_end(ap);
        found = all;
    }
    if (st != CAIRN_ECORRUPT || !found || r.problems != f.n - r.warnings) {
        findings_print(&f);
        fail_msg("%s: check gave %s (%u problems); no problem names all of the needles",
                 what, cairn_status_name(st), r.problems);
    }
    findings_free(&f);
}

/* ---- a seeded workload ---------------------------------------------------------- */

static void run_txns(cairn_db *db, uint64_t *rng, int n, cairn_commit_info *last)
{
    for (int i = 0; i < n; i++)
        must(tu_mix_txn(db, rng, last), "commit");
}

/* 300 points of "wide" in one transaction: its group space needs 602
 * pages, so its map has two levels. */
static void fill_wide(cairn_db *db, uint64_t *rng)
{
    enum { N = 300 };
    float *v = malloc((size_t)N * 2100 * sizeof *v);
    cairn_point *p = calloc(N, sizeof *p);
    assert_non_null(v);
    assert_non_null(p);
    for (int i = 0; i < N; i++) {
        tu_fill_vec(rng, v + (size_t)i * 2100, 2100, -1, 1);
        p[i] = (cairn_point){.id = 1000 + (uint64_t)i, .vector = v + (size_t)i * 2100};
    }
    must(cairn_upsert_batch(db, "wide", p, N, 2100, NULL), "upsert wide");
    free(v);
    free(p);
}

struct built {
    cairn_db *db;
    cairn_checkpoint_info ci;    /* the last checkpoint */
    cairn_commit_info last;      /* the last commit */
};

/* Three collections, two checkpoints, a WAL tail after the second. */
static void build(char *dir, size_t n, uint64_t seed, struct built *b)
{
    new_dir(dir, n);
    uint64_t rng = seed;
    b->db = must_open(dir);
    must(tu_mix_create(b->db), "create");
    run_txns(b->db, &rng, 150, &b->last);
    fill_wide(b->db, &rng);
    must(cairn_checkpoint(b->db, &b->ci), "checkpoint 1");
    run_txns(b->db, &rng, 100, &b->last);
    must(cairn_checkpoint(b->db, &b->ci), "checkpoint 2");
    run_txns(b->db, &rng, 30, &b->last);
}

static uint64_t total_points(cairn_db *db)
{
    cairn_collection_info *cl = NULL;
    size_t n = 0;
    must(cairn_collection_list(db, &cl, &n), "list");
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += cl[i].points;
    cairn_free(cl);
    return sum;
}

/* ---- reading and damaging the files (docs/format.md) ------------------------------ */

static void path_of(char *out, size_t n, const char *dir, const char *rel)
{
    snprintf(out, n, "%s/%s", dir, rel);
}

static void rd_page(const char *dir, const char *rel, uint64_t pno, uint8_t *pg)
{
    char p[700];
    path_of(p, sizeof p, dir, rel);
    int fd = open(p, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, pg, PG, (off_t)(pno * PG)), (ssize_t)PG);
    close(fd);
}

/* Writes the page back; reseal: recompute its crc (damage only the field
 * checks can see). */
static void wr_page(const char *dir, const char *rel, uint64_t pno, uint8_t *pg, bool reseal)
{
    if (reseal) {
        uint32_t crc = crc32c(0, pg + 4, PG - 4);
        memcpy(pg, &crc, 4);
    }
    char p[700];
    path_of(p, sizeof p, dir, rel);
    int fd = open(p, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, pg, PG, (off_t)(pno * PG)), (ssize_t)PG);
    close(fd);
}

static void flip(const char *dir, const char *rel, uint64_t off)
{
    char p[700];
    path_of(p, sizeof p, dir, rel);
    int fd = open(p, O_RDWR);
    assert_true(fd >= 0);
    unsigned char b;
    assert_int_equal(pread(fd, &b, 1, (off_t)off), 1);
    b ^= 0x5a;
    assert_int_equal(pwrite(fd, &b, 1, (off_t)off), 1);
    close(fd);
}

static uint32_t ld32le(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t ld64le(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

/* Where a collection of checkpoint `gen` is: its catalog entry, its maps. */
struct loc {
    uint32_t id;
    char file[64];      /* "collections/<id>.pages" */
    uint32_t cat_page;  /* physical page of its catalog entry */
    uint32_t cat_k;     /* entry index there */
    uint32_t root[2], depth[2], n[2];
};

static void locate(const char *dir, uint64_t gen, const char *name, struct loc *l)
{
    uint8_t pg[PG];
    rd_page(dir, "superblock", gen % 2, pg);
    assert_int_equal(ld64le(pg + BODY + 16), gen);
    uint32_t phys = ld32le(pg + BODY + 72);
    memset(l, 0, sizeof *l);
    while (phys) {
        rd_page(dir, "catalog.pages", phys, pg);
        uint32_t next = ld32le(pg + BODY), cnt = ld32le(pg + BODY + 4);
        for (uint32_t k = 0; k < cnt; k++) {
            const uint8_t *e = pg + BODY + 8 + k * 184;
            if (e[9] != strlen(name) || memcmp(e + 24, name, e[9]) != 0)
                continue;
            l->id = ld32le(e);
            l->cat_page = phys;
            l->cat_k = k;
            for (int s = 0; s < 2; s++) {
                l->root[s] = ld32le(e + 152 + 12 * s);
                l->depth[s] = ld32le(e + 156 + 12 * s);
                l->n[s] = ld32le(e + 160 + 12 * s);
            }
            snprintf(l->file, sizeof l->file, "collections/%u.pages", l->id);
            return;
        }
        phys = next;
    }
    fail_msg("collection %s not in the catalog of checkpoint %" PRIu64, name, gen);
}

/* Entry k of a one-level map (the root is the leaf). */
static void leaf_entry(const char *dir, const struct loc *l, unsigned space, uint32_t k,
                       uint32_t *phys, uint64_t *lsn)
{
    assert_int_equal(l->depth[space], 1);
    uint8_t pg[PG];
    rd_page(dir, l->file, l->root[space], pg);
    *phys = ld32le(pg + BODY + 16 * k);
    *lsn = ld64le(pg + BODY + 16 * k + 8);
}

/* printf into one of 8 rotating buffers: needles for expect_problem. */
static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char fmtbuf[8][256];
static int fmtn;
static char *fmt(const char *f, ...)
{
    char *b = fmtbuf[fmtn++ % 8];
    va_list ap;
    va_start(ap, f);
    vsnprintf(b, 256, f, ap);
    va_end(ap);
    return b;
}

/* ---- tests ------------------------------------------------------------------------ */

/* A clean database checks clean, with the counts it holds; so it does
 * after a reopen and after a checkpoint with nothing changed since (then
 * every page in memory is compared with the files). */
static void test_clean(void **state)
{
    (void)state;
    char dir[600];
    struct built b;
    build(dir, sizeof dir, g_seed, &b);
    cairn_check_report r;
    check_clean(b.db, &r, "built");
    assert_int_equal(r.generation, 2);
    assert_int_equal(r.collections_checked, 3);
    assert_int_equal(r.points_checked, total_points(b.db));
    assert_true(r.disk_points_checked >= 300);
    /* 2 superblock slots, a catalog page, the maps (wide's has 2 levels:
     * 3 nodes at least) and its 602 group pages at least */
    assert_true(r.pages_checked > 2 + 1 + 3 + 602);
    assert_true(r.wal_bytes_checked > 0);
    assert_true(r.wal_records_checked >= 30);
    struct loc w;
    locate(dir, 2, "wide", &w);
    assert_int_equal(w.depth[0], 2);
    cairn_stats s;
    must(cairn_stats_get(b.db, &s), "stats");
    assert_int_equal(r.wal_bytes_checked, s.durable_lsn - b.ci.redo_lsn);
    printf("check: clean: %" PRIu64 " pages, %" PRIu64 " points (%" PRIu64 " on disk), %"
           PRIu64 " WAL bytes, %" PRIu64 " us\n", r.pages_checked, r.points_checked,
           r.disk_points_checked, r.wal_bytes_checked, r.duration_us);

    /* nothing changed since a checkpoint: memory compared page by page */
    must(cairn_checkpoint(b.db, &b.ci), "checkpoint 3");
    check_clean(b.db, &r, "after checkpoint 3");
    assert_int_equal(r.generation, 3);
    /* only the PAD closing the last flush follows the redo LSN */
    assert_int_equal(r.wal_records_checked, 0);
    assert_true(r.wal_bytes_checked < 2 * WAL_BLOCK);
    assert_int_equal(r.disk_points_checked, r.points_checked);

    /* a dropped collection (its file stays one checkpoint), then reopen */
    uint64_t rng = g_seed ^ 5;
    must(cairn_collection_drop(b.db, "small"), "drop");
    for (int i = 0; i < 10; i++) {
        float v[128];
        tu_fill_vec(&rng, v, 128, -1, 1);
        cairn_point p = {.id = 5000 + (uint64_t)i, .vector = v};
        must(cairn_upsert_batch(b.db, "mid", &p, 1, 128, NULL), "upsert");
    }
    check_clean(b.db, &r, "after a drop");
    must(cairn_checkpoint(b.db, NULL), "checkpoint 4");
    check_clean(b.db, &r, "after checkpoint 4");
    assert_int_equal(r.collections_checked, 2);
    must(cairn_close(b.db), "close");
    cairn_db *db = must_open(dir);
    check_clean(db, &r, "reopened");
    assert_int_equal(r.generation, 4);
    assert_int_equal(cairn_check(NULL, &r), CAIRN_EINVAL);
    must(cairn_check(db, NULL), "check without a report");
    must(cairn_close(db), "close");
}

/* Without a checkpoint: the WAL from LSN 0 and memory are checked. */
static void test_no_checkpoint(void **state)
{
    (void)state;
    char dir[600];
    new_dir(dir, sizeof dir);
    cairn_db *db = must_open(dir);
    cairn_check_report r;
    check_clean(db, &r, "empty");
    assert_int_equal(r.generation, 0);
    assert_int_equal(r.pages_checked, 0);
    assert_int_equal(r.points_checked, 0);
    uint64_t rng = g_seed ^ 9;
    must(tu_mix_create(db), "create");
    run_txns(db, &rng, 60, NULL);
    check_clean(db, &r, "no checkpoint");
    assert_int_equal(r.generation, 0);
    assert_int_equal(r.pages_checked, 0);
    assert_int_equal(r.collections_checked, 0);
    assert_int_equal(r.points_checked, total_points(db));
    assert_true(r.points_checked > 0);
    cairn_stats s;
    must(cairn_stats_get(db, &s), "stats");
    assert_int_equal(r.wal_bytes_checked, s.durable_lsn);
    assert_true(r.wal_records_checked >= 63);
    must(cairn_close(db), "close");
    /* reopened: the same */
    db = must_open(dir);
    check_clean(db, &r, "no checkpoint, reopened");
    must(cairn_close(db), "close");
}

/* Damage to point, map and catalog pages under the open database. */
static void test_damaged_pages(void **state)
{
    (void)state;
    for (int kind = 0; kind < 7; kind++) {
        char dir[600];
        struct built b;
        build(dir, sizeof dir, g_seed ^ (uint64_t)kind, &b);
        uint64_t gen = b.ci.generation;
        struct loc m;
        locate(dir, gen, "mid", &m);
        uint32_t p0, p1, p2;
        uint64_t l0, l1, l2;
        leaf_entry(dir, &m, 0, 0, &p0, &l0);
        leaf_entry(dir, &m, 0, 1, &p1, &l1);
        leaf_entry(dir, &m, 0, 2, &p2, &l2);
        assert_true(p0 && p1 && p2);
        char file[700];
        path_of(file, sizeof file, dir, m.file);
        uint8_t pg[PG];
        switch (kind) {
        case 0: /* a byte of a point page (the collection's header page) */
            flip(dir, m.file, (uint64_t)p0 * PG + 100);
            expect_problem(b.db, "point page", file,
                           fmt("page %u (offset %" PRIu64 ") fails its checksum", p0,
                               (uint64_t)p0 * PG), NULL);
            break;
        case 1: /* a byte of the group map's root */
            flip(dir, m.file, (uint64_t)m.root[0] * PG + 4000);
            expect_problem(b.db, "map page", file,
                           fmt("page %u (offset %" PRIu64 ") fails its checksum", m.root[0],
                               (uint64_t)m.root[0] * PG), NULL);
            break;
        case 2: { /* a byte of the catalog page */
            char cat[700];
            path_of(cat, sizeof cat, dir, "catalog.pages");
            flip(dir, "catalog.pages", (uint64_t)m.cat_page * PG + 200);
            expect_problem(b.db, "catalog page", cat,
                           fmt("page %u (offset %" PRIu64 ") fails its checksum", m.cat_page,
                               (uint64_t)m.cat_page * PG), NULL);
            break;
        }
        case 3: /* a map entry pointing outside the file */
            rd_page(dir, m.file, m.root[0], pg);
            memcpy(pg + BODY + 16, &(uint32_t){0x00ffffffu}, 4);
            wr_page(dir, m.file, m.root[0], pg, true);
            expect_problem(b.db, "map entry out of range", file,
                           "the group page 1 is at page 16777215, outside the file", NULL);
            break;
        case 4: /* two map entries at one physical page */
            rd_page(dir, m.file, m.root[0], pg);
            memcpy(pg + BODY + 32, &p1, 4);
            wr_page(dir, m.file, m.root[0], pg, true);
            expect_problem(b.db, "page mapped twice", file,
                           fmt("page %u (offset %" PRIu64 ") is referenced twice: by the "
                               "group page 1 and by the group page 2", p1, (uint64_t)p1 * PG),
                           NULL);
            break;
        case 5: { /* a point page whose LSN is not its map entry's (crc valid) */
            rd_page(dir, m.file, p1, pg);
            uint64_t lsn = l1 + 8;
            memcpy(pg + 24, &lsn, 8);
            wr_page(dir, m.file, p1, pg, true);
            expect_problem(b.db, "page LSN", file,
                           fmt("page %u (offset %" PRIu64 ") has page LSN %" PRIu64
                               ", its map says %" PRIu64, p1, (uint64_t)p1 * PG, lsn, l1),
                           NULL);
            break;
        }
        case 6: { /* a point structure: the header counts more points than
                   * the pages hold (crc valid: only the walk sees it) */
            rd_page(dir, m.file, p0, pg);
            uint64_t n = ld64le(pg + BODY + 24) + 100000;
            memcpy(pg + BODY + 24, &n, 8);
            wr_page(dir, m.file, p0, pg, true);
            expect_problem(b.db, "point structure",
                           fmt("page file \"%s\", checkpoint %" PRIu64 ": collection %u: "
                               "group page 0 (physical page %u, offset %" PRIu64 "): counts",
                               file, gen, m.id, p0, (uint64_t)p0 * PG), NULL);
            break;
        }
        }
        must(cairn_close(b.db), "close");
    }
}

/* Catalog entries, a missing page file, and the checkpointer's own map
 * against a file that is self-consistent but not what it wrote. */
static void test_damaged_catalog_and_files(void **state)
{
    (void)state;
    for (int kind = 0; kind < 3; kind++) {
        char dir[600];
        struct built b;
        build(dir, sizeof dir, g_seed ^ (0x100u + (uint64_t)kind), &b);
        uint64_t gen = b.ci.generation;
        struct loc m;
        locate(dir, gen, "mid", &m);
        uint8_t pg[PG];
        char file[700];
        path_of(file, sizeof file, dir, m.file);
        switch (kind) {
        case 0: { /* a catalog entry with dimension 0 */
            char cat[700];
            path_of(cat, sizeof cat, dir, "catalog.pages");
            rd_page(dir, "catalog.pages", m.cat_page, pg);
            memset(pg + BODY + 8 + m.cat_k * 184 + 4, 0, 4);
            wr_page(dir, "catalog.pages", m.cat_page, pg, true);
            expect_problem(b.db, "catalog entry", cat,
                           fmt("page %u entry %u has invalid fields", m.cat_page, m.cat_k),
                           NULL);
            break;
        }
        case 1: { /* the page file is gone */
            char moved[800];
            snprintf(moved, sizeof moved, "%s.moved", file);
            assert_int_equal(rename(file, moved), 0);
            expect_problem(b.db, "missing page file", file, "could not be opened", NULL);
            assert_int_equal(rename(moved, file), 0);
            cairn_check_report r;
            check_clean(b.db, &r, "page file back");
            break;
        }
        case 2: { /* a consistent change on disk (map entry and page LSN
                   * both lowered): only the checkpointer's map tells */
            uint32_t p1;
            uint64_t l1;
            leaf_entry(dir, &m, 0, 1, &p1, &l1);
            uint64_t lsn = l1 - 8;
            rd_page(dir, m.file, m.root[0], pg);
            memcpy(pg + BODY + 16 + 8, &lsn, 8);
            wr_page(dir, m.file, m.root[0], pg, true);
            rd_page(dir, m.file, p1, pg);
            memcpy(pg + 24, &lsn, 8);
            wr_page(dir, m.file, p1, pg, true);
            expect_problem(b.db, "checkpointer map", file,
                           fmt("the checkpointer maps group page 1 to page %u (LSN %" PRIu64
                               "), checkpoint %" PRIu64 " to page %u (LSN %" PRIu64 ")", p1,
                               l1, gen, p1, lsn), NULL);
            break;
        }
        }
        must(cairn_close(b.db), "close");
    }
}

/* The superblock: the current slot damaged is a problem; the other slot
 * damaged (what a crash while writing the next checkpoint leaves) is a
 * warning, until the next checkpoint rewrites it. */
static void test_superblock(void **state)
{
    (void)state;
    char dir[600], sb[700];
    struct built b;
    build(dir, sizeof dir, g_seed ^ 0x5b, &b);
    path_of(sb, sizeof sb, dir, "superblock");
    uint64_t gen = b.ci.generation, cur = gen % 2, other = 1 - cur;

    flip(dir, "superblock", other * PG + 60);
    cairn_check_report r;
    struct findings f = {0};
    must(cairn_check_ex(b.db, &r, collect, &f), "check, other slot torn");
    assert_int_equal(r.problems, 0);
    assert_int_equal(r.warnings, 1);
    assert_int_equal(f.n, 1);
    assert_int_equal(f.problem[0], 0);
    if (!strstr(f.msg[0], sb) || !strstr(f.msg[0], fmt("slot %" PRIu64, other)) ||
        !strstr(f.msg[0], "not the current checkpoint, fails its checksum"))
        fail_msg("warning does not name the slot: %s", f.msg[0]);
    findings_free(&f);
    /* reopened: the current slot is used, the warning stays */
    must(cairn_close(b.db), "close");
    b.db = must_open(dir);
    must(cairn_check(b.db, &r), "check after reopen");
    assert_int_equal(r.warnings, 1);
    /* the next checkpoint writes that slot: clean again */
    must(cairn_checkpoint(b.db, &b.ci), "checkpoint");
    check_clean(b.db, &r, "after the torn slot was rewritten");

    /* now the current slot */
    gen = b.ci.generation;
    flip(dir, "superblock", (gen % 2) * PG + 60);
    expect_problem(b.db, "current slot", sb,
                   fmt("slot %" PRIu64 " (offset %" PRIu64 "), the current checkpoint %" PRIu64
                       ", fails its checksum", gen % 2, (gen % 2) * PG, gen), NULL);
    must(cairn_close(b.db), "close");
}

/* The segment file holding lsn, and lsn's offset in it. */
static void wal_at(const char *dir, uint64_t lsn, char *rel, size_t n, uint64_t *off)
{
    uint64_t size = 2u << 20; /* tu_opts: the smallest segment */
    snprintf(rel, n, "wal/%08X-%016" PRIX64 ".wal", 1u, lsn & ~(size - 1));
    *off = lsn & (size - 1);
}

/* WAL records after the redo LSN damaged while the database is open: one
 * followed by durable records, and the last one. */
static void test_damaged_wal(void **state)
{
    (void)state;
    for (int kind = 0; kind < 2; kind++) {
        char dir[600], rel[128], seg[800];
        struct built b;
        build(dir, sizeof dir, g_seed ^ (0x200u + (uint64_t)kind), &b);
        uint64_t lsn = kind == 0 ? b.ci.redo_lsn : b.last.commit_lsn, off;
        wal_at(dir, lsn, rel, sizeof rel, &off);
        path_of(seg, sizeof seg, dir, rel);
        flip(dir, rel, off + 24); /* the transaction id: covered by the crc */
        cairn_stats s;
        must(cairn_stats_get(b.db, &s), "stats");
        if (kind == 0)
            expect_problem(b.db, "WAL record followed by durable ones", seg,
                           fmt("at offset %" PRIu64 ": invalid record followed by durable "
                               "records", off), NULL);
        else
            expect_problem(b.db, "last WAL record", seg,
                           fmt("at offset %" PRIu64 " (LSN %" PRIu64 "): the log ends there "
                               "(invalid record), before the durable LSN %" PRIu64, off, lsn,
                               s.durable_lsn), NULL);
        flip(dir, rel, off + 24); /* undo, or close would leave it corrupt */
        cairn_check_report r;
        check_clean(b.db, &r, "WAL repaired");
        must(cairn_close(b.db), "close");
    }
}

/* The WAL the older checkpoint would replay from, deleted: the open could
 * no longer fall back to it when the current superblock slot tears. */
static void test_fallback_wal(void **state)
{
    (void)state;
    char dir[600], rel[128];
    struct built b;
    new_dir(dir, sizeof dir);
    uint64_t rng = g_seed ^ 0x250;
    b.db = must_open(dir);
    must(tu_mix_create(b.db), "create");
    run_txns(b.db, &rng, 50, NULL);
    cairn_checkpoint_info c1, c2;
    must(cairn_checkpoint(b.db, &c1), "checkpoint 1");
    fill_wide(b.db, &rng); /* 2.5 MB: the next redo LSN is in a later segment */
    run_txns(b.db, &rng, 10, NULL);
    must(cairn_checkpoint(b.db, &c2), "checkpoint 2");
    uint64_t off1, off2;
    char rel2[128];
    wal_at(dir, c1.redo_lsn, rel, sizeof rel, &off1);
    wal_at(dir, c2.redo_lsn, rel2, sizeof rel2, &off2);
    assert_string_not_equal(rel, rel2);
    cairn_check_report r;
    check_clean(b.db, &r, "before");
    char p[800];
    path_of(p, sizeof p, dir, rel);
    assert_int_equal(unlink(p), 0);
    expect_problem(b.db, "fallback WAL", fmt("the log from LSN %" PRIu64 ", the redo LSN of "
                   "the older checkpoint 1", c1.redo_lsn), "is gone", NULL);
    must(cairn_close(b.db), "close");
}

/* Damage in memory (through the internals): store_check of live
 * collections, and memory against the checkpoint's image. */
static void test_damaged_memory(void **state)
{
    (void)state;
    char dir[600];
    struct built b;
    build(dir, sizeof dir, g_seed ^ 0x300, &b);
    must(cairn_checkpoint(b.db, &b.ci), "checkpoint"); /* nothing dirty after it */
    struct coll *small = cat_find_id(b.db, 1);
    assert_non_null(small);
    assert_string_equal(small->name, "small");
    assert_true(store_count(&small->st) > 0);

    /* the flags of slot 0 (slot page: group page 1, entry 0 at body 0) */
    uint8_t *sp = (uint8_t *)pager_read(&small->st.pg, PSPACE_GROUP, 1);
    assert_non_null(sp);
    uint16_t saved;
    memcpy(&saved, sp + BODY + 22, 2);
    memset(sp + BODY + 22, 0, 2);
    /* (the first problem: the page differs from the files, as below) */
    expect_finding(b.db, "slot flags in memory", "in memory: collection 1: group page 1: "
                   "slot 0 has flags 0x0", NULL);
    memcpy(sp + BODY + 22, &saved, 2);

    /* the lowest bit of a vector element: every rule still holds (the norm
     * within its tolerance), only the image in the files differs */
    uint8_t *vp = (uint8_t *)pager_read(&small->st.pg, PSPACE_GROUP, 2);
    assert_non_null(vp);
    vp[BODY] ^= 1;
    struct loc l;
    locate(dir, b.ci.generation, "small", &l);
    uint32_t phys;
    uint64_t lsn;
    leaf_entry(dir, &l, 0, 2, &phys, &lsn);
    expect_problem(b.db, "memory against the files",
                   fmt("collection 1 \"small\": group page 2 in memory differs from its "
                       "image in checkpoint %" PRIu64, b.ci.generation),
                   fmt("physical page %u, offset %" PRIu64 ")", phys, (uint64_t)phys * PG),
                   NULL);
    vp[BODY] ^= 1;

    /* the id hash: a slot whose id the hash does not know */
    uint64_t id0;
    memcpy(&id0, sp + BODY, 8);
    size_t h = SIZE_MAX;
    for (size_t i = 0; i < small->st.hcap; i++)
        if (small->st.hslots[i] == 0 && small->st.hkeys[i] == id0)
            h = i;
    assert_true(h != SIZE_MAX);
    small->st.hkeys[h] ^= (uint64_t)1 << 40;
    expect_problem(b.db, "id hash", "in memory: collection 1 \"small\": the id hash",
                   fmt("point %" PRIu64 " at its slot 0", id0), NULL);
    small->st.hkeys[h] ^= (uint64_t)1 << 40;

    cairn_check_report r;
    check_clean(b.db, &r, "memory restored");
    must(cairn_close(b.db), "close");
}

/* After faults a reopen repairs (a torn WAL tail, a torn superblock slot
 * written by a checkpoint that never completed): the check then passes. */
static void test_after_crash_states(void **state)
{
    (void)state;
    char dir[600];
    struct built b;
    build(dir, sizeof dir, g_seed ^ 0x400, &b);
    cairn_stats s;
    must(cairn_stats_get(b.db, &s), "stats");
    uint64_t end = wal_after_flush(s.last_lsn, b.db->seg_shift); /* after the PAD */
    must(cairn_close(b.db), "close");
    char rel[128];
    uint64_t off;
    wal_at(dir, end, rel, sizeof rel, &off);
    char p[800];
    path_of(p, sizeof p, dir, rel);
    int fd = open(p, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, "garbage!garbage!", 16, (off_t)off), 16);
    close(fd);
    cairn_db *db = must_open(dir);
    must(cairn_stats_get(db, &s), "stats");
    assert_int_equal(s.recovery.bytes_truncated, 16);
    cairn_check_report r;
    check_clean(db, &r, "after a torn tail");
    must(cairn_close(db), "close");
}

/* Checks while writers commit and checkpoints run (explicit and in the
 * background): never a problem. Every durability mode. */
struct wargs {
    cairn_db *db;
    uint64_t seed;
    _Atomic int *stop;
    int done;
    bool failed;
};

static void *writer(void *arg)
{
    struct wargs *a = arg;
    uint64_t rng = a->seed;
    while (!*a->stop) {
        cairn_status st = tu_mix_txn(a->db, &rng, NULL);
        if (st) {
            fprintf(stderr, "writer: %s: %s\n", cairn_status_name(st), cairn_last_error());
            a->failed = true;
            return NULL;
        }
        a->done++;
    }
    return NULL;
}

static void *checkpointer(void *arg)
{
    struct wargs *a = arg;
    while (!*a->stop) {
        cairn_status st = cairn_checkpoint(a->db, NULL);
        if (st) {
            fprintf(stderr, "checkpoint: %s: %s\n", cairn_status_name(st), cairn_last_error());
            a->failed = true;
            return NULL;
        }
        a->done++;
        usleep(20000);
    }
    return NULL;
}

static void test_concurrent(void **state)
{
    (void)state;
    const cairn_durability modes[] = {CAIRN_DURABILITY_SYNC, CAIRN_DURABILITY_ASYNC,
                                      CAIRN_DURABILITY_NONE};
    for (int mi = 0; mi < 3; mi++) {
        char dir[600];
        new_dir(dir, sizeof dir);
        cairn_options o = tu_opts(modes[mi], CAIRN_IO_DEFAULT, 2);
        o.checkpoint_wal_bytes = 512u << 10; /* background checkpoints too */
        o.checkpoint_interval_s = 0;
        cairn_db *db = must_open_o(dir, &o);
        must(tu_mix_create(db), "create");
        _Atomic int stop = 0;
        struct wargs w[3];
        pthread_t t[3];
        for (int i = 0; i < 3; i++) {
            w[i] = (struct wargs){.db = db, .seed = g_seed ^ (0x500u + (uint64_t)i),
                                  .stop = &stop};
            assert_int_equal(pthread_create(&t[i], NULL, i < 2 ? writer : checkpointer,
                                            &w[i]), 0);
        }
        int checks = 0;
        cairn_check_report r;
        struct findings f = {0};
        cairn_status st = CAIRN_OK;
        while (checks < 25 && st == CAIRN_OK) {
            st = cairn_check_ex(db, &r, collect, &f);
            checks++;
        }
        stop = 1;
        for (int i = 0; i < 3; i++)
            pthread_join(t[i], NULL);
        if (st != CAIRN_OK || f.n) {
            findings_print(&f);
            fail_msg("mode %d: check %d while committing: %s: %s", mi, checks,
                     cairn_status_name(st), r.first_problem);
        }
        findings_free(&f);
        for (int i = 0; i < 3; i++)
            assert_false(w[i].failed);
        printf("check: mode %d: %d checks beside %d + %d commits and %d checkpoints "
               "(last: checkpoint %" PRIu64 ", %" PRIu64 " WAL bytes)\n", mi, checks,
               w[0].done, w[1].done, w[2].done, r.generation, r.wal_bytes_checked);
        assert_true(w[0].done + w[1].done > 0);
        check_clean(db, &r, "after the writers stopped");
        must(cairn_close(db), "close");
        db = must_open_o(dir, &o);
        check_clean(db, &r, "reopened");
        must(cairn_close(db), "close");
    }
}

int main(void)
{
    tu_quiet_log();
    g_seed = tu_seed("check", 20261201);
    if (tu_tmpbase(tmpbase, sizeof tmpbase, "check") != 0) {
        perror("tmpdir");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clean),
        cmocka_unit_test(test_no_checkpoint),
        cmocka_unit_test(test_damaged_pages),
        cmocka_unit_test(test_damaged_catalog_and_files),
        cmocka_unit_test(test_superblock),
        cmocka_unit_test(test_damaged_wal),
        cmocka_unit_test(test_fallback_wal),
        cmocka_unit_test(test_damaged_memory),
        cmocka_unit_test(test_after_crash_states),
        cmocka_unit_test(test_concurrent),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (rc == 0)
        tu_rm_rf(tmpbase);
    return rc;
}
