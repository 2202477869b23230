/*
 * test_wal_reader.c — the reader over a segment source (wal.h, struct
 * wal_seg_source; what pitr_restore's in-memory WAL fetch relies on): a
 * reader that gets each segment's image from a source reads exactly what a
 * plain reader of a directory holding the same segment files reads
 * (records, where and why the log ends, the same errors, the source's
 * `where` standing for the directory), a source that fails makes it fail
 * with the source's status and message, and it keeps the source's
 * contract: every image it gets it puts back by the time it is closed,
 * it never holds more than two at once and never writes into one.
 *
 * The source log (seg_shift 21, durability NONE, flushed every ~192 KiB so
 * that later records prove earlier ones durable): upserts of varying sizes
 * over about 7 segments, two of them closed early by wal_writer_switch
 * (SWITCH), the others ended by a PAD that fills them; the writer's
 * preallocated (empty) segment after the end is there too. It lies in the
 * directory g_src, which the plain reader reads.
 *
 * Two test sources serve a plan (g_src's segment files, all or all but one
 * skipped) under the name "ARCHIVE-of-test", which is no directory: a
 * reader that opened a path made of it would find nothing.
 *  - lazy: get reads the segment file from g_src into a malloc'd buffer
 *    only when asked, put frees it; a segment not in the plan has no
 *    image. Failures are injected at the nth get of a given segment or
 *    at the nth list.
 *  - feed: a producer thread loads the planned segments in order, ~1 ms
 *    each and at most one past the furthest the reader has asked for, and
 *    get waits on a condition variable until its segment is loaded (a get
 *    after the put loads it again itself): the blocking get of
 *    pitr_restore's pipelined fetch.
 * Both log every call (list, get, put with the start) and check the
 * contract as it comes: a call from another thread than the reader's or
 * for another timeline, a get of an image still held, a put of one not
 * held, or a third image held, fails the test; each image's crc32c taken
 * at get is checked at put (the reader never wrote into it); after
 * wal_reader_close no image is held and there were as many puts as images
 * given, on every path (end, error, close in the middle).
 *
 * 1. same: from LSN 0, from a record in the middle, from a segment's first
 *    record: the same records and end as the plain reader; the open gets
 *    exactly one image, the segment it starts in; a clean read gets every
 *    segment from that one on exactly once, in order (each get may be a
 *    decompression).
 * 2. ends: a record damaged in a segment whose later records do not prove
 *    it durable but the next segment's do (CAIRN_ECORRUPT naming the later
 *    segment; the end decision gets the damaged segment again after the
 *    later one), a segment missing from the plan while later ones hold
 *    data (CAIRN_ECORRUPT, "missing"; through a source with its own
 *    name() the message names both segments by it), a start LSN inside that missing
 *    segment, a torn tail (end, torn, the same garbage count), the empty
 *    preallocated segment at the end: each as the plain reader says.
 * 3. errors: a get failing at a segment in the middle (the records before
 *    it, then its status and message, sticky), at the open, at the
 *    preallocated segment only the end decision touches, at the end
 *    decision's second get of the damaged segment; a list failing at the
 *    open and at the end decision; images of the wrong length (shorter,
 *    longer, shorter than a header; at the open, in the middle, at the end
 *    decision): CAIRN_ECORRUPT naming the segment, as the plain reader
 *    says of such a file.
 * 4. contract: a NULL source, one without list, get or put, or without a
 *    `where`, is CAIRN_EINVAL before any call; closing in the middle of a
 *    segment puts its image back.
 * 5. blocking: reads through the feed whose gets wait (counted) equal the
 *    plain reads (every comparison above runs the feed too), also with a
 *    close while the producer is still loading.
 */
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/crc32c.h"
#include "common/err.h"
#include "common/util.h"
#include "wal/wal.h"

#include "testutil.h"

#define SHIFT 21u
#define SEG (1ull << SHIFT)
#define DB_ID 0x6A7E5ull
#define MAXSEG 32
#define WHERE "ARCHIVE-of-test"
#define NO_SKIP SIZE_MAX

static char g_src[256];
static pthread_t g_main; /* the test's thread: the readers' */

/* the source log as the plain reader reads it */
struct rrec {
    uint64_t lsn, hint;
    uint32_t len;
    uint8_t type;
};
static struct rrec *g_recs;
static size_t g_nrecs;
static uint64_t g_seg[MAXSEG]; /* the source's segment files (start LSNs) */
static size_t g_nseg;

static void seg_file(char *buf, size_t n, const char *dir, uint64_t start)
{
    char name[64];
    wal_seg_name(name, sizeof name, 1, start);
    snprintf(buf, n, "%s/%s", dir, name);
}

static size_t seg_index(uint64_t start)
{
    for (size_t i = 0; i < g_nseg; i++)
        if (g_seg[i] == start)
            return i;
    fail_msg("no segment file starts at %llu", (unsigned long long)start);
    return 0;
}

/* ---- the contract ledger (both sources) ------------------------------------ */

struct call {
    char kind; /* 'L' list, 'G' get, 'P' put */
    uint64_t start;
};

struct held {
    uint64_t start;
    uint8_t *img;
    size_t len;
    uint32_t crc;
};

struct ledger {
    struct call calls[4096];
    size_t ncalls;
    struct held held[MAXSEG];
    size_t nheld, max_held;
    size_t gets, images, puts; /* get calls, images given, puts */
};

static void ledger_log(struct ledger *lg, char kind, uint32_t tl, uint64_t start)
{
    if (!pthread_equal(pthread_self(), g_main))
        fail_msg("%c(%llu) called from another thread than the reader's", kind,
                 (unsigned long long)start);
    if (tl != 1)
        fail_msg("%c(%llu) for timeline %u", kind, (unsigned long long)start, tl);
    assert_true(lg->ncalls < CAIRN_ARRAY_LEN(lg->calls));
    lg->calls[lg->ncalls++] = (struct call){kind, start};
}

static void ledger_hold(struct ledger *lg, uint64_t start, uint8_t *img, size_t len)
{
    for (size_t i = 0; i < lg->nheld; i++)
        if (lg->held[i].start == start)
            fail_msg("get of segment %llu while the reader holds its image",
                     (unsigned long long)start);
    if (lg->nheld == 2)
        fail_msg("get of segment %llu while the reader holds 2 images (%llu, %llu)",
                 (unsigned long long)start, (unsigned long long)lg->held[0].start,
                 (unsigned long long)lg->held[1].start);
    lg->held[lg->nheld++] = (struct held){start, img, len, crc32c(0, img, len)};
    lg->images++;
    if (lg->nheld > lg->max_held)
        lg->max_held = lg->nheld;
}

/* The image of `start` taken back (the caller frees it), its crc checked. */
static uint8_t *ledger_release(struct ledger *lg, uint64_t start)
{
    for (size_t i = 0; i < lg->nheld; i++) {
        if (lg->held[i].start != start)
            continue;
        struct held h = lg->held[i];
        lg->held[i] = lg->held[--lg->nheld];
        lg->puts++;
        if (crc32c(0, h.img, h.len) != h.crc)
            fail_msg("the reader wrote into the image of segment %llu",
                     (unsigned long long)start);
        return h.img;
    }
    fail_msg("put of segment %llu, whose image the reader does not hold",
             (unsigned long long)start);
    return NULL;
}

/* After wal_reader_close (or a failed open): everything given is back. */
static void ledger_check_closed(const struct ledger *lg, const char *what)
{
    if (lg->nheld)
        fail_msg("%s: the reader was closed holding %zu image(s) (segment %llu)", what,
                 lg->nheld, (unsigned long long)lg->held[0].start);
    if (lg->images != lg->puts)
        fail_msg("%s: %zu images given, %zu put", what, lg->images, lg->puts);
    assert_true(lg->max_held <= 2);
}

static size_t ledger_count(const struct ledger *lg, char kind, uint64_t start)
{
    size_t n = 0;
    for (size_t i = 0; i < lg->ncalls; i++)
        n += lg->calls[i].kind == kind && lg->calls[i].start == start;
    return n;
}

/* Index of the first `kind` call for `start` at or after call `from`
 * (SIZE_MAX: none). */
static size_t ledger_find(const struct ledger *lg, char kind, uint64_t start, size_t from)
{
    for (size_t i = from; i < lg->ncalls; i++)
        if (lg->calls[i].kind == kind && lg->calls[i].start == start)
            return i;
    return SIZE_MAX;
}

static size_t plan_init(uint64_t plan[MAXSEG], size_t skip)
{
    size_t n = 0;
    for (size_t i = 0; i < g_nseg; i++)
        if (i != skip)
            plan[n++] = g_seg[i];
    return n;
}

static size_t plan_find(const uint64_t *plan, size_t n, uint64_t start)
{
    for (size_t i = 0; i < n; i++)
        if (plan[i] == start)
            return i;
    return SIZE_MAX;
}

static cairn_status plan_list(const uint64_t *plan, size_t n, uint64_t **starts, size_t *nout)
{
    *starts = malloc((n ? n : 1) * sizeof **starts);
    assert_non_null(*starts);
    memcpy(*starts, plan, n * sizeof *plan);
    *nout = n;
    return CAIRN_OK;
}

static uint8_t *load_seg(uint64_t start, size_t *len)
{
    char p[512];
    seg_file(p, sizeof p, g_src, start);
    return tu_read_file(p, len);
}

/* ---- the lazy source ---------------------------------------------------------- */

struct lazy {
    struct ledger lg;
    uint64_t plan[MAXSEG];
    size_t n;
    cairn_status fail_st;
    uint64_t fail_start; /* its fail_nth-th get fails (0: none) */
    unsigned fail_nth, nget_fail;
    unsigned list_fail_nth, nlist; /* the list_fail_nth-th list fails */
};

static void lazy_init(struct lazy *z, size_t skip)
{
    memset(z, 0, sizeof *z);
    z->n = plan_init(z->plan, skip);
}

static cairn_status lazy_list(void *ctx, uint32_t tl, uint64_t **starts, size_t *n)
{
    struct lazy *z = ctx;
    ledger_log(&z->lg, 'L', tl, 0);
    if (++z->nlist == z->list_fail_nth)
        return cerr_set(z->fail_st, "could not list the archive of timeline %u: failed by "
                        "the test", tl);
    return plan_list(z->plan, z->n, starts, n);
}

static cairn_status lazy_get(void *ctx, uint32_t tl, uint64_t start, const uint8_t **img,
                             size_t *len)
{
    struct lazy *z = ctx;
    ledger_log(&z->lg, 'G', tl, start);
    z->lg.gets++;
    if (z->fail_nth && start == z->fail_start && ++z->nget_fail == z->fail_nth) {
        char name[64];
        wal_seg_name(name, sizeof name, 1, start);
        return cerr_set(z->fail_st, "could not fetch WAL segment %s: failed by the test",
                        name);
    }
    if (plan_find(z->plan, z->n, start) == SIZE_MAX)
        return CAIRN_OK; /* *img stays NULL: no such segment */
    size_t l = 0;
    uint8_t *d = load_seg(start, &l);
    if (!d)
        fail_msg("%s", tu_error());
    ledger_hold(&z->lg, start, d, l);
    *img = d;
    *len = l;
    return CAIRN_OK;
}

static void lazy_put(void *ctx, uint32_t tl, uint64_t start)
{
    struct lazy *z = ctx;
    ledger_log(&z->lg, 'P', tl, start);
    free(ledger_release(&z->lg, start));
}

/* A source's own names for its segments (wal.h, name): here
 * "NAMED/<timeline>/<file name>". */
static void named(void *ctx, uint32_t tl, uint64_t start, char *buf, size_t n)
{
    (void)ctx;
    char f[64];
    wal_seg_name(f, sizeof f, tl, start);
    snprintf(buf, n, "NAMED/%u/%s", tl, f);
}

static struct wal_seg_source lazy_source(struct lazy *z)
{
    return (struct wal_seg_source){
        .list = lazy_list, .get = lazy_get, .put = lazy_put, .ctx = z, .where = WHERE};
}

/* ---- the feed: a producer thread, a blocking get ---------------------------------- */

enum slot_state { SLOT_EMPTY, SLOT_READY, SLOT_TAKEN, SLOT_PUT };

struct feed {
    struct ledger lg; /* the reader's thread only */
    uint64_t plan[MAXSEG];
    size_t n;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* broadcast at each change below */
    enum slot_state state[MAXSEG];
    uint8_t *img[MAXSEG];
    size_t len[MAXSEG];
    size_t asked; /* 1 + the furthest plan index asked for */
    bool stop;
    bool bad; /* the producer could not load a segment */
    size_t loaded, waits;
};

static void *feed_main(void *arg)
{
    struct feed *f = arg;
    for (size_t i = 0; i < f->n; i++) {
        pthread_mutex_lock(&f->mu);
        /* nothing before the first get, then at most one past the
         * furthest asked */
        while (!f->stop && (f->asked == 0 || i > f->asked))
            pthread_cond_wait(&f->cv, &f->mu);
        bool stop = f->stop;
        pthread_mutex_unlock(&f->mu);
        if (stop)
            break;
        nanosleep(&(struct timespec){0, 1000000}, NULL); /* on its way */
        size_t l = 0;
        uint8_t *d = load_seg(f->plan[i], &l);
        pthread_mutex_lock(&f->mu);
        if (d) {
            f->img[i] = d;
            f->len[i] = l;
            f->state[i] = SLOT_READY;
            f->loaded++;
        } else {
            f->bad = true;
        }
        pthread_cond_broadcast(&f->cv);
        pthread_mutex_unlock(&f->mu);
        if (!d)
            break;
    }
    return NULL;
}

static struct feed *feed_start(size_t skip)
{
    struct feed *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->n = plan_init(f->plan, skip);
    assert_int_equal(pthread_mutex_init(&f->mu, NULL), 0);
    assert_int_equal(pthread_cond_init(&f->cv, NULL), 0);
    assert_int_equal(pthread_create(&f->th, NULL, feed_main, f), 0);
    return f;
}

static void feed_stop(struct feed *f)
{
    pthread_mutex_lock(&f->mu);
    f->stop = true;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    assert_int_equal(pthread_join(f->th, NULL), 0);
    for (size_t i = 0; i < f->n; i++)
        if (f->state[i] == SLOT_READY)
            free(f->img[i]); /* loaded, never asked for */
    pthread_cond_destroy(&f->cv);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

static cairn_status feed_list(void *ctx, uint32_t tl, uint64_t **starts, size_t *n)
{
    struct feed *f = ctx;
    ledger_log(&f->lg, 'L', tl, 0);
    return plan_list(f->plan, f->n, starts, n);
}

static cairn_status feed_get(void *ctx, uint32_t tl, uint64_t start, const uint8_t **img,
                             size_t *len)
{
    struct feed *f = ctx;
    ledger_log(&f->lg, 'G', tl, start);
    f->lg.gets++;
    size_t i = plan_find(f->plan, f->n, start);
    if (i == SIZE_MAX)
        return CAIRN_OK;
    pthread_mutex_lock(&f->mu);
    if (i + 1 > f->asked) {
        f->asked = i + 1;
        pthread_cond_broadcast(&f->cv);
    }
    if (f->state[i] == SLOT_EMPTY && !f->bad)
        f->waits++;
    while (f->state[i] == SLOT_EMPTY && !f->bad)
        pthread_cond_wait(&f->cv, &f->mu);
    enum slot_state s = f->state[i];
    bool bad = f->bad;
    uint8_t *d = f->img[i];
    size_t l = f->len[i];
    if (s == SLOT_READY)
        f->state[i] = SLOT_TAKEN;
    pthread_mutex_unlock(&f->mu);
    if (s == SLOT_EMPTY && bad)
        fail_msg("the feed could not load segment %llu", (unsigned long long)start);
    if (s == SLOT_TAKEN)
        fail_msg("get of segment %llu while the reader holds its image",
                 (unsigned long long)start);
    if (s == SLOT_PUT) {
        /* got again after its put: loaded here, as pitr_restore's get
         * fetches such a segment in the reader's thread */
        d = load_seg(start, &l);
        if (!d)
            fail_msg("%s", tu_error());
        pthread_mutex_lock(&f->mu);
        f->img[i] = d;
        f->len[i] = l;
        f->state[i] = SLOT_TAKEN;
        pthread_mutex_unlock(&f->mu);
    }
    ledger_hold(&f->lg, start, d, l);
    *img = d;
    *len = l;
    return CAIRN_OK;
}

static void feed_put(void *ctx, uint32_t tl, uint64_t start)
{
    struct feed *f = ctx;
    ledger_log(&f->lg, 'P', tl, start);
    uint8_t *d = ledger_release(&f->lg, start);
    size_t i = plan_find(f->plan, f->n, start);
    assert_true(i != SIZE_MAX);
    pthread_mutex_lock(&f->mu);
    assert_true(f->state[i] == SLOT_TAKEN && f->img[i] == d);
    f->state[i] = SLOT_PUT;
    f->img[i] = NULL;
    pthread_mutex_unlock(&f->mu);
    free(d);
}

static struct wal_seg_source feed_source(struct feed *f)
{
    return (struct wal_seg_source){
        .list = feed_list, .get = feed_get, .put = feed_put, .ctx = f, .where = WHERE};
}

/* ---- reading ------------------------------------------------------------ */

struct result {
    cairn_status st;
    char msg[1024];
    struct rrec *r;
    size_t n;
    struct wal_end end;
};

static void result_free(struct result *res)
{
    free(res->r);
    memset(res, 0, sizeof *res);
}

/* Reads dir (or src when given) from `from` to the end or the first error. */
static void read_log(const char *dir, const struct wal_seg_source *src, uint64_t from,
                     struct result *res)
{
    memset(res, 0, sizeof *res);
    res->r = calloc(g_nrecs + 64, sizeof *res->r);
    assert_non_null(res->r);
    wal_reader *r = NULL;
    res->st = src ? wal_reader_open_src(src, 1, from, &r) : wal_reader_open(dir, 1, from, &r);
    if (res->st) {
        assert_null(r);
        snprintf(res->msg, sizeof res->msg, "%s", cairn_last_error());
        return;
    }
    assert_int_equal(wal_reader_db_id(r), DB_ID);
    assert_int_equal(wal_reader_seg_shift(r), SHIFT);
    for (;;) {
        struct wal_record rec;
        bool end = false;
        res->st = wal_reader_next(r, &rec, &end);
        if (res->st) {
            snprintf(res->msg, sizeof res->msg, "%s", cairn_last_error());
            /* sticky: the same again */
            bool e2 = false;
            assert_int_equal(wal_reader_next(r, &rec, &e2), res->st);
            assert_string_equal(cairn_last_error(), res->msg);
            break;
        }
        if (end) {
            res->end = *wal_reader_end(r);
            /* and it stays at the end */
            bool e2 = false;
            assert_int_equal(wal_reader_next(r, &rec, &e2), CAIRN_OK);
            assert_true(e2);
            break;
        }
        assert_true(res->n < g_nrecs + 64);
        res->r[res->n++] = (struct rrec){rec.lsn, rec.durable_hint, rec.len, rec.type};
    }
    wal_reader_close(r);
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* The message with every occurrence of dir replaced by "DIR". */
static void neutral(const char *msg, const char *dir, char *out, size_t n)
{
    size_t dl = strlen(dir), k = 0;
    for (const char *p = msg; *p && k + 4 < n;) {
        if (!strncmp(p, dir, dl)) {
            memcpy(out + k, "DIR", 3);
            k += 3;
            p += dl;
        } else {
            out[k++] = *p++;
        }
    }
    out[k] = 0;
}

/* The source's read equals the plain read of g_src. */
static void expect_same(const struct result *plain, const struct result *got, const char *what,
                        const char *how)
{
    if (plain->st != got->st)
        fail_msg("%s: plain reader %s (%s), %s %s (%s)", what, cairn_status_name(plain->st),
                 plain->msg, how, cairn_status_name(got->st), got->msg);
    char a[1100], b[1100];
    neutral(plain->msg, g_src, a, sizeof a);
    neutral(got->msg, WHERE, b, sizeof b);
    if (strcmp(a, b) != 0)
        fail_msg("%s: messages differ:\n  plain: %s\n  %s: %s", what, a, how, b);
    if (plain->n != got->n)
        fail_msg("%s: plain reader read %zu records, %s %zu", what, plain->n, how, got->n);
    for (size_t i = 0; i < plain->n; i++)
        if (memcmp(&plain->r[i], &got->r[i], sizeof plain->r[i]) != 0)
            fail_msg("%s: %s: record %zu differs (LSN %llu vs %llu)", what, how, i,
                     (unsigned long long)plain->r[i].lsn, (unsigned long long)got->r[i].lsn);
    if (plain->st)
        return;
    const struct wal_end *x = &plain->end, *y = &got->end;
    assert_int_equal(x->end_lsn, y->end_lsn);
    assert_int_equal(x->rec_end, y->rec_end);
    assert_int_equal(x->torn, y->torn);
    assert_int_equal(x->garbage_bytes, y->garbage_bytes);
    assert_int_equal(x->seg_offset, y->seg_offset);
    assert_int_equal(x->segments_after, y->segments_after);
    assert_string_equal(base_name(x->seg_path), base_name(y->seg_path));
    /* the source's segment is named "<where>/<file name>" */
    char want[300];
    snprintf(want, sizeof want, "%s/%s", WHERE, base_name(x->seg_path));
    assert_string_equal(y->seg_path, want);
}

/* Reads g_src plainly, then through a fresh lazy source of the plan (all
 * but `skip`; its calls stay in *z) and through a fresh feed of it; both
 * must equal the plain read and keep the contract. */
static void compare(struct lazy *z, size_t skip, uint64_t from, struct result *plain,
                    const char *what)
{
    read_log(g_src, NULL, from, plain);

    lazy_init(z, skip);
    struct wal_seg_source src = lazy_source(z);
    struct result got;
    read_log(NULL, &src, from, &got);
    ledger_check_closed(&z->lg, what);
    expect_same(plain, &got, what, "lazy source");
    result_free(&got);

    struct feed *f = feed_start(skip);
    src = feed_source(f);
    read_log(NULL, &src, from, &got);
    ledger_check_closed(&f->lg, what);
    expect_same(plain, &got, what, "feed");
    result_free(&got);
    printf("  %-44s %s, %zu records; lazy: %zu gets, max %zu held; feed: %zu gets, %zu "
           "waited\n",
           what, plain->st ? cairn_status_name(plain->st) : (plain->end.torn ? "torn end" : "end"),
           plain->n, z->lg.gets, z->lg.max_held, f->lg.gets, f->waits);
    feed_stop(f);
}

/* ---- the source log -------------------------------------------------------- */

static void build_log(void)
{
    assert_int_equal(tu_tmpbase(g_src, sizeof g_src, "wal_reader_src"), 0);
    struct wal_writer_opts o = {
        .waldir = g_src,
        .timeline = 1,
        .seg_shift = SHIFT,
        .db_id = DB_ID,
        .io = CAIRN_IO_DEFAULT,
        .durability = CAIRN_DURABILITY_NONE,
    };
    wal_writer *w = NULL;
    assert_int_equal(wal_writer_open(&o, 0, &w), CAIRN_OK);
    static uint8_t b[16384];
    static float v[256];
    static char pl[8192];
    uint64_t last_flush = 0;
    bool switched[MAXSEG] = {false};
    for (uint64_t id = 1; wal_writer_end_lsn(w) < 7 * SEG + SEG / 3; id++) {
        uint32_t dim = 8 + (uint32_t)(id % 9) * 24;
        uint32_t plen = (uint32_t)((id * 7919) % 5000);
        for (uint32_t i = 0; i < dim; i++)
            v[i] = (float)(id + i);
        for (uint32_t i = 0; i < plen; i++)
            pl[i] = (char)('a' + (id + i) % 26);
        size_t n = wal_enc_upsert(b, 1, id, id, v, dim, pl, plen);
        uint64_t first, last, end;
        assert_int_equal(wal_writer_append(w, b, n, &first, &last, &end), CAIRN_OK);
        if (end - last_flush > (192u << 10)) {
            assert_int_equal(wal_writer_flush(w), CAIRN_OK);
            last_flush = end;
        }
        /* segments 2 and 5 are closed early, two thirds in */
        uint64_t s = end >> SHIFT;
        if ((s == 2 || s == 5) && !switched[s] && (end & (SEG - 1)) > 2 * SEG / 3) {
            bool sw = false;
            assert_int_equal(wal_writer_switch(w, &sw), CAIRN_OK);
            assert_true(sw);
            switched[s] = true;
        }
    }
    assert_int_equal(wal_writer_close(w), CAIRN_OK);

    uint64_t *s = NULL;
    size_t n = 0;
    assert_int_equal(wal_seg_list(g_src, 1, &s, &n), CAIRN_OK);
    assert_true(n >= 8 && n <= MAXSEG);
    memcpy(g_seg, s, n * sizeof *s);
    g_nseg = n;
    free(s);
    assert_int_equal(g_seg[0], 0);

    struct result plain;
    g_nrecs = 200000;
    read_log(g_src, NULL, 0, &plain);
    assert_int_equal(plain.st, CAIRN_OK);
    assert_false(plain.end.torn);
    g_recs = plain.r;
    g_nrecs = plain.n;
    /* the last segment file is the preallocated one, after the end */
    assert_true(g_seg[g_nseg - 1] > plain.end.end_lsn);
    printf("  source: %zu records in %zu segment files, log ends at LSN %llu\n", g_nrecs,
           g_nseg, (unsigned long long)plain.end.end_lsn);
}

static int setup(void **state)
{
    (void)state;
    g_main = pthread_self();
    build_log();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(g_recs);
    tu_rm_rf(g_src);
    return 0;
}

/* Flips the source's byte at lsn (in place; flipping twice restores it). */
static void flip_at(uint64_t lsn)
{
    char p[512];
    seg_file(p, sizeof p, g_src, lsn & ~(SEG - 1));
    int fd = open(p, O_RDWR);
    assert_true(fd >= 0);
    uint8_t c;
    assert_int_equal(pread(fd, &c, 1, (off_t)(lsn & (SEG - 1))), 1);
    c ^= 0x5A;
    assert_int_equal(pwrite(fd, &c, 1, (off_t)(lsn & (SEG - 1))), 1);
    close(fd);
}

static size_t first_in_seg(uint64_t seg_start)
{
    for (size_t i = 0; i < g_nrecs; i++)
        if (g_recs[i].lsn >= seg_start)
            return i;
    fail_msg("no record at or after %llu", (unsigned long long)seg_start);
    return 0;
}

/* A record near the end of segment 1 whose damage nothing after it in its
 * segment proves durable (written before the next flush) but a record of
 * segment 2 does: its index, found once (the last records of segment 1 are
 * tried in turn, newest first) and left undamaged. */
static size_t g_dmg = SIZE_MAX;

static void damage_toggle(void)
{
    flip_at(g_recs[g_dmg].lsn + g_recs[g_dmg].len - 1);
}

static size_t damage_find(void)
{
    if (g_dmg != SIZE_MAX)
        return g_dmg;
    char s2[512];
    seg_file(s2, sizeof s2, g_src, 2 * SEG);
    size_t p = first_in_seg(2 * SEG);
    for (int tries = 0; tries < 64 && p > 0; tries++) {
        p--;
        assert_true(g_recs[p].lsn >> SHIFT == 1);
        g_dmg = p;
        damage_toggle();
        struct result plain;
        read_log(g_src, NULL, 0, &plain);
        bool done = plain.st == CAIRN_ECORRUPT && strstr(plain.msg, s2);
        result_free(&plain);
        damage_toggle();
        if (done)
            return g_dmg;
    }
    g_dmg = SIZE_MAX;
    fail_msg("no record of segment 1 whose damage only segment 2 proves durable");
    return 0;
}

/* Gives segment `start` of g_src a length of `len` bytes (cut, or zeros
 * added); *saved receives its bytes for seg_restore. */
static void seg_resize(uint64_t start, size_t len, unsigned char **saved, size_t *saved_len)
{
    char p[512];
    seg_file(p, sizeof p, g_src, start);
    *saved = tu_read_file(p, saved_len);
    if (!*saved)
        fail_msg("%s", tu_error());
    assert_int_equal(truncate(p, (off_t)len), 0);
}

static void seg_restore(uint64_t start, unsigned char *saved, size_t saved_len)
{
    char p[512];
    seg_file(p, sizeof p, g_src, start);
    assert_int_equal(tu_write_file(p, saved, saved_len), 0);
    free(saved);
}

/* ---- 1. the same log -------------------------------------------------------- */

static void test_same(void **state)
{
    (void)state;
    uint64_t froms[3] = {0, g_recs[first_in_seg(3 * SEG) + 17].lsn, 4 * SEG + WAL_SEG_DATA};
    struct lazy *z = calloc(1, sizeof *z);
    assert_non_null(z);
    for (int k = 0; k < 3; k++) {
        uint64_t from = froms[k];
        uint64_t first_seg = from & ~(SEG - 1);
        char what[96];
        snprintf(what, sizeof what, "same log from LSN %llu", (unsigned long long)from);
        struct result plain;

        /* the open alone gets exactly one image: the segment it starts in */
        lazy_init(z, NO_SKIP);
        struct wal_seg_source src = lazy_source(z);
        wal_reader *r = NULL;
        assert_int_equal(wal_reader_open_src(&src, 1, from, &r), CAIRN_OK);
        assert_int_equal(z->lg.gets, 1);
        assert_int_equal(ledger_count(&z->lg, 'G', first_seg), 1);
        assert_int_equal(z->lg.nheld, 1);
        assert_int_equal(z->lg.puts, 0);
        wal_reader_close(r);
        ledger_check_closed(&z->lg, what);
        assert_int_equal(z->lg.puts, 1);

        compare(z, NO_SKIP, from, &plain, what);
        assert_int_equal(plain.st, CAIRN_OK);
        assert_true(plain.n > 0 && plain.r[plain.n - 1].lsn == g_recs[g_nrecs - 1].lsn);
        assert_int_equal(plain.r[0].lsn, from ? from : g_recs[0].lsn);
        /* a clean read gets each segment from the one it starts in to the
         * preallocated one (the end decision's) once, in order, and none
         * before: in pitr_restore each get may be a decompression */
        size_t j = seg_index(first_seg);
        for (size_t i = 0; i < z->lg.ncalls; i++) {
            if (z->lg.calls[i].kind != 'G')
                continue;
            if (j >= g_nseg || z->lg.calls[i].start != g_seg[j])
                fail_msg("%s: get %zu is of segment %llu, expected %llu", what, i,
                         (unsigned long long)z->lg.calls[i].start,
                         (unsigned long long)(j < g_nseg ? g_seg[j] : UINT64_MAX));
            j++;
        }
        assert_int_equal(j, g_nseg);
        result_free(&plain);
    }
    free(z);
}

/* ---- 2. where the log ends ------------------------------------------------- */

static void test_ends(void **state)
{
    (void)state;
    struct lazy *z = calloc(1, sizeof *z);
    assert_non_null(z);
    struct result plain;
    /* read from the first record */

    /* Damage whose verdict, corruption, needs the later segment (its
     * message names it); the end decision gets the damaged segment again
     * after the later one, to read the record once more. */
    size_t p = damage_find();
    damage_toggle();
    compare(z, NO_SKIP, WAL_SEG_DATA, &plain, "damage proven durable by a later segment");
    damage_toggle();
    assert_int_equal(plain.st, CAIRN_ECORRUPT);
    assert_non_null(strstr(plain.msg, "invalid record followed by durable records"));
    char s2[512];
    seg_file(s2, sizeof s2, g_src, 2 * SEG);
    assert_non_null(strstr(plain.msg, s2));
    assert_int_equal(plain.n, p);
    size_t g2 = ledger_find(&z->lg, 'G', 2 * SEG, 0);
    assert_true(g2 != SIZE_MAX);
    assert_true(ledger_find(&z->lg, 'G', 1 * SEG, g2) != SIZE_MAX);
    result_free(&plain);

    /* Segment 3 not in the plan (the source has no such segment) while
     * later ones hold data: the reader must not take it for the end of the
     * log. */
    size_t k3 = seg_index(3 * SEG);
    char s3[512];
    seg_file(s3, sizeof s3, g_src, 3 * SEG);
    char keep[600];
    snprintf(keep, sizeof keep, "%s.seg3", g_src); /* beside the directory */
    assert_int_equal(rename(s3, keep), 0);
    compare(z, k3, WAL_SEG_DATA, &plain, "a segment missing before later ones");
    assert_int_equal(plain.st, CAIRN_ECORRUPT);
    assert_non_null(strstr(plain.msg, "missing"));
    assert_non_null(strstr(plain.msg, base_name(s3)));
    assert_int_equal(plain.n, first_in_seg(3 * SEG));
    assert_int_equal(ledger_count(&z->lg, 'G', 3 * SEG), 1); /* asked, had none */
    result_free(&plain);

    /* The same through a source that names its segments itself: both
     * segments of the message are named by it, not by `where`. */
    {
        lazy_init(z, k3);
        struct wal_seg_source src = lazy_source(z);
        src.name = named;
        struct result nr;
        read_log(NULL, &src, WAL_SEG_DATA, &nr);
        assert_int_equal(nr.st, CAIRN_ECORRUPT);
        char want[128], f[64];
        wal_seg_name(f, sizeof f, 1, 3 * SEG);
        snprintf(want, sizeof want, "\"NAMED/1/%s\": file is missing", f);
        if (!strstr(nr.msg, want))
            fail_msg("named source: message lacks %s: %s", want, nr.msg);
        wal_seg_name(f, sizeof f, 1, 4 * SEG);
        snprintf(want, sizeof want, "\"NAMED/1/%s\"", f);
        if (!strstr(nr.msg, want))
            fail_msg("named source: message lacks %s: %s", want, nr.msg);
        assert_null(strstr(nr.msg, WHERE "/"));
        result_free(&nr);
    }

    /* Starting inside that missing segment: the open gets the segment
     * before it (the last starting before from_lsn), then fails and puts
     * it back. */
    compare(z, k3, 3 * SEG + WAL_SEG_DATA, &plain, "a start inside a missing segment");
    assert_int_equal(rename(keep, s3), 0);
    assert_int_equal(plain.st, CAIRN_ENOTFOUND);
    assert_non_null(strstr(plain.msg, "is missing"));
    assert_int_equal(z->lg.images, 1);
    assert_int_equal(ledger_count(&z->lg, 'G', 2 * SEG), 1);
    result_free(&plain);

    /* A torn tail: the last record damaged. */
    uint64_t last = g_recs[g_nrecs - 1].lsn;
    flip_at(last + 9);
    compare(z, NO_SKIP, WAL_SEG_DATA, &plain, "torn tail");
    flip_at(last + 9);
    assert_int_equal(plain.st, CAIRN_OK);
    assert_true(plain.end.torn);
    assert_true(plain.end.garbage_bytes > 0);
    assert_int_equal(plain.end.end_lsn, last);
    assert_int_equal(plain.n, g_nrecs - 1);
    result_free(&plain);

    /* The undamaged log: it ends before the preallocated segment, which
     * the end decision gets too. */
    compare(z, NO_SKIP, WAL_SEG_DATA, &plain, "clean end");
    assert_int_equal(plain.st, CAIRN_OK);
    assert_false(plain.end.torn);
    assert_int_equal(plain.end.segments_after, 0);
    assert_int_equal(plain.n, g_nrecs);
    assert_int_equal(ledger_count(&z->lg, 'G', g_seg[g_nseg - 1]), 1);
    result_free(&plain);
    free(z);
}

/* ---- 3. a source that fails ------------------------------------------------ */

/* Reads through z (set up by the caller) from `from`; the contract holds. */
static void read_lazy(struct lazy *z, uint64_t from, struct result *res, const char *what)
{
    struct wal_seg_source src = lazy_source(z);
    read_log(NULL, &src, from, res);
    ledger_check_closed(&z->lg, what);
    printf("  %-44s %zu records, then %s: %s\n", what, res->n, cairn_status_name(res->st),
           res->msg);
}

static void expect_prefix(const struct result *res, size_t from_idx, size_t n)
{
    assert_int_equal(res->n, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(res->r[i].lsn, g_recs[from_idx + i].lsn);
}

static void test_errors(void **state)
{
    (void)state;
    struct lazy *z = calloc(1, sizeof *z);
    assert_non_null(z);
    struct result res;
    char want[256], name[64];

    /* at segment 4: every record before it, then the source's status and
     * message (read_log checks that it sticks) */
    lazy_init(z, NO_SKIP);
    z->fail_start = 4 * SEG;
    z->fail_nth = 1;
    z->fail_st = CAIRN_ECORRUPT;
    read_lazy(z, WAL_SEG_DATA, &res, "get failing at segment 4");
    assert_int_equal(res.st, CAIRN_ECORRUPT);
    wal_seg_name(name, sizeof name, 1, 4 * SEG);
    snprintf(want, sizeof want, "could not fetch WAL segment %s: failed by the test", name);
    assert_string_equal(res.msg, want);
    expect_prefix(&res, 0, first_in_seg(4 * SEG));
    result_free(&res);

    /* at the open: the reader is not made, nothing was given */
    lazy_init(z, NO_SKIP);
    z->fail_start = 0;
    z->fail_nth = 1;
    z->fail_st = CAIRN_EIO;
    read_lazy(z, 0, &res, "get failing at the open");
    assert_int_equal(res.st, CAIRN_EIO);
    assert_non_null(strstr(res.msg, "failed by the test"));
    assert_int_equal(res.n, 0);
    assert_int_equal(z->lg.gets, 1);
    assert_int_equal(z->lg.images, 0);
    result_free(&res);

    /* at the preallocated segment, which only the end decision gets: every
     * record, then no end but the error */
    lazy_init(z, NO_SKIP);
    z->fail_start = g_seg[g_nseg - 1];
    z->fail_nth = 1;
    z->fail_st = CAIRN_ENOTFOUND;
    read_lazy(z, 1 * SEG + WAL_SEG_DATA, &res, "get failing at the end decision");
    assert_int_equal(res.st, CAIRN_ENOTFOUND);
    wal_seg_name(name, sizeof name, 1, g_seg[g_nseg - 1]);
    assert_non_null(strstr(res.msg, name));
    expect_prefix(&res, first_in_seg(1 * SEG), g_nrecs - first_in_seg(1 * SEG));
    result_free(&res);

    /* at the end decision's second get of a damaged segment (after it got
     * the later one that proves the damage durable) */
    size_t p = damage_find();
    damage_toggle();
    lazy_init(z, NO_SKIP);
    z->fail_start = 1 * SEG;
    z->fail_nth = 2;
    z->fail_st = CAIRN_EIO;
    read_lazy(z, WAL_SEG_DATA, &res, "get failing at the re-read of a segment");
    damage_toggle();
    assert_int_equal(res.st, CAIRN_EIO);
    wal_seg_name(name, sizeof name, 1, 1 * SEG);
    snprintf(want, sizeof want, "could not fetch WAL segment %s: failed by the test", name);
    assert_string_equal(res.msg, want);
    expect_prefix(&res, 0, p);
    assert_int_equal(ledger_count(&z->lg, 'G', 1 * SEG), 2);
    size_t g2 = ledger_find(&z->lg, 'G', 2 * SEG, 0);
    assert_true(g2 != SIZE_MAX && ledger_find(&z->lg, 'G', 1 * SEG, g2) != SIZE_MAX);
    result_free(&res);

    /* a list failing at the open (before any get), and at the end
     * decision's (every record, then the error) */
    lazy_init(z, NO_SKIP);
    z->list_fail_nth = 1;
    z->fail_st = CAIRN_EIO;
    read_lazy(z, 0, &res, "list failing at the open");
    assert_int_equal(res.st, CAIRN_EIO);
    assert_non_null(strstr(res.msg, "could not list the archive of timeline 1"));
    assert_int_equal(z->lg.gets, 0);
    result_free(&res);

    lazy_init(z, NO_SKIP);
    z->list_fail_nth = 2;
    z->fail_st = CAIRN_EIO;
    read_lazy(z, WAL_SEG_DATA, &res, "list failing at the end decision");
    assert_int_equal(res.st, CAIRN_EIO);
    assert_non_null(strstr(res.msg, "could not list the archive of timeline 1"));
    expect_prefix(&res, 0, g_nrecs);
    result_free(&res);

    /* images of the wrong length: as the plain reader says of such files
     * (which compare gives the sources, read from the files) */
    struct {
        uint64_t seg;
        long delta; /* bytes added to the segment size (LONG_MIN: 32 in all) */
        uint64_t from;
        const char *what, *says;
        size_t nrecs; /* read before the error */
    } wl[] = {
        {4 * SEG, -4096, WAL_SEG_DATA, "image 4 KiB short, in the middle", "bytes",
         first_in_seg(4 * SEG)},
        {4 * SEG, 1, 4 * SEG + WAL_SEG_DATA, "image a byte long, at the open", "bytes", 0},
        {0, LONG_MIN, 0, "image shorter than a header, at the open", "too short", 0},
        {g_seg[g_nseg - 1], -(long)(SEG / 2), 1 * SEG + WAL_SEG_DATA,
         "image short, at the end decision", "bytes", g_nrecs - first_in_seg(1 * SEG)},
    };
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(wl); i++) {
        unsigned char *saved = NULL;
        size_t saved_len = 0;
        size_t len = wl[i].delta == LONG_MIN ? 32 : (size_t)((long)SEG + wl[i].delta);
        seg_resize(wl[i].seg, len, &saved, &saved_len);
        compare(z, NO_SKIP, wl[i].from, &res, wl[i].what);
        seg_restore(wl[i].seg, saved, saved_len);
        assert_int_equal(res.st, CAIRN_ECORRUPT);
        wal_seg_name(name, sizeof name, 1, wl[i].seg);
        assert_non_null(strstr(res.msg, name));
        assert_non_null(strstr(res.msg, wl[i].says));
        assert_int_equal(res.n, wl[i].nrecs);
        result_free(&res);
    }
    free(z);
}

/* ---- 4. the source contract -------------------------------------------------- */

static void test_contract(void **state)
{
    (void)state;
    struct lazy *z = calloc(1, sizeof *z);
    assert_non_null(z);
    lazy_init(z, NO_SKIP);
    const struct wal_seg_source full = lazy_source(z);
    wal_reader *r = NULL;

    /* an incomplete source is refused before any call */
    assert_int_equal(wal_reader_open_src(NULL, 1, 0, &r), CAIRN_EINVAL);
    assert_null(r);
    for (int k = 0; k < 5; k++) {
        struct wal_seg_source s = full;
        if (k == 0)
            s.list = NULL;
        else if (k == 1)
            s.get = NULL;
        else if (k == 2)
            s.put = NULL;
        else if (k == 3)
            s.where = NULL;
        else
            s.where = "";
        r = NULL;
        assert_int_equal(wal_reader_open_src(&s, 1, 0, &r), CAIRN_EINVAL);
        assert_null(r);
        assert_non_null(strstr(cairn_last_error(), k < 3 ? "lacks" : "(where)"));
        assert_int_equal(z->lg.ncalls, 0);
    }
    assert_int_equal(wal_reader_open_src(&full, 1, 0, NULL), CAIRN_EINVAL);
    assert_int_equal(z->lg.ncalls, 0);

    /* closed in the middle of a segment, after 0, 1, a third and two
     * thirds of the records, and just past segment 5's first record: the
     * image it was in goes back */
    size_t stops[] = {0, 1, g_nrecs / 3, 2 * g_nrecs / 3, first_in_seg(5 * SEG) + 1};
    for (size_t k = 0; k < CAIRN_ARRAY_LEN(stops); k++) {
        lazy_init(z, NO_SKIP);
        struct wal_seg_source src = lazy_source(z);
        r = NULL;
        assert_int_equal(wal_reader_open_src(&src, 1, 0, &r), CAIRN_OK);
        for (size_t i = 0; i < stops[k]; i++) {
            struct wal_record rec;
            bool end = true;
            assert_int_equal(wal_reader_next(r, &rec, &end), CAIRN_OK);
            assert_false(end);
            assert_int_equal(rec.lsn, g_recs[i].lsn);
        }
        uint64_t in = stops[k] ? g_recs[stops[k] - 1].lsn & ~(SEG - 1) : 0;
        assert_int_equal(z->lg.nheld, 1);
        assert_int_equal(z->lg.held[0].start, in);
        wal_reader_close(r);
        ledger_check_closed(&z->lg, "close in the middle");
    }
    free(z);
}

/* ---- 5. a get that blocks ------------------------------------------------------ */

static void test_blocking(void **state)
{
    (void)state;
    uint64_t froms[2] = {0, g_recs[first_in_seg(2 * SEG) + 5].lsn};
    for (int k = 0; k < 2; k++) {
        struct result plain, got;
        read_log(g_src, NULL, froms[k], &plain);
        struct feed *f = feed_start(NO_SKIP);
        struct wal_seg_source src = feed_source(f);
        read_log(NULL, &src, froms[k], &got);
        ledger_check_closed(&f->lg, "feed");
        expect_same(&plain, &got, "blocking get", "feed");
        /* the producer loads nothing before it is asked: the open's get
         * waited at least */
        assert_true(f->waits >= 1);
        printf("  feed from LSN %-12llu %zu records, %zu gets of which %zu waited, %zu "
               "loaded by the producer\n",
               (unsigned long long)froms[k], got.n, f->lg.gets, f->waits, f->loaded);
        feed_stop(f);
        result_free(&plain);
        result_free(&got);
    }

    /* closed while the producer is still loading: it stops, nothing is
     * held */
    struct feed *f = feed_start(NO_SKIP);
    struct wal_seg_source src = feed_source(f);
    wal_reader *r = NULL;
    assert_int_equal(wal_reader_open_src(&src, 1, 0, &r), CAIRN_OK);
    size_t n = first_in_seg(1 * SEG) + 3;
    for (size_t i = 0; i < n; i++) {
        struct wal_record rec;
        bool end = true;
        assert_int_equal(wal_reader_next(r, &rec, &end), CAIRN_OK);
        assert_false(end);
        assert_int_equal(rec.lsn, g_recs[i].lsn);
    }
    wal_reader_close(r);
    ledger_check_closed(&f->lg, "feed closed early");
    feed_stop(f);
}

int main(void)
{
    cairn_set_log(NULL, NULL, CAIRN_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same),     cmocka_unit_test(test_ends),
        cmocka_unit_test(test_errors),   cmocka_unit_test(test_contract),
        cmocka_unit_test(test_blocking),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
