/*
 * cairn_tool.c — `cairn`, the data tool: create/drop collections, import
 * vector files, search, show what a database holds and what its recovery
 * did, write restore points. Written only against include/cairn.h; file
 * formats live in vecfile.c. Usage: docs/cli.md.
 *
 * Output discipline: results on stdout (search hits, info, restore-point
 * LSN, cat rows); progress, summaries, warnings and errors on stderr.
 * Exit status: 0 ok, 1 failure ("cairn: <message>"), 2 usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cairn.h"
#include "cliutil.h"
#include "common/jalloc.h"
#include "common/json.h"
#include "vecfile.h"

struct command {
    const char *name;
    int (*run)(const struct command *c, int argc, char **argv);
    const char *synopsis; /* after "usage: cairn " */
    const char *help;     /* options and description */
};

static const struct command *find_command(const char *name);

/* ------------------------------------------------------------------ */
/* Reporting                                                            */
/* ------------------------------------------------------------------ */

/* Prints the failure of a cairn call. Call it before any other cairn call:
 * cairn_last_error() lives only until then. */
static int report(cairn_status st)
{
    const char *m = cairn_last_error();
    if (m != NULL && *m != '\0')
        fprintf(stderr, "cairn: %s\n", m);
    else
        fprintf(stderr, "cairn: %s: %s\n", cairn_status_name(st),
                cairn_strerror(st));
    return CLI_EXIT_FAIL;
}

static int failf(const char *fmt, ...) CLI_PRINTF(1, 2);
static int failf(const char *fmt, ...)
{
    va_list ap;
    fputs("cairn: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return CLI_EXIT_FAIL;
}

static void print_usage(FILE *f, const struct command *c)
{
    fprintf(f, "usage: cairn %s\n", c->synopsis);
}

static int usage_error(const struct command *c, const char *fmt, ...)
    CLI_PRINTF(2, 3);
static int usage_error(const struct command *c, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "cairn %s: ", c->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    print_usage(stderr, c);
    fprintf(stderr, "Try 'cairn %s --help'.\n", c->name);
    return CLI_EXIT_USAGE;
}

static int print_help(const struct command *c)
{
    print_usage(stdout, c);
    fputs(c->help, stdout);
    return CLI_EXIT_OK;
}

static void log_to_stderr(void *ctx, cairn_log_level level, const char *msg)
{
    (void)ctx;
    static const char *const names[] = {"debug", "info", "warning", "error"};
    fprintf(stderr, "cairn: %s: %s\n",
            (unsigned)level < 4 ? names[level] : "log", msg);
}

/* ------------------------------------------------------------------ */
/* Option parsing: GNU getopt_long with permutation, so options may come */
/* before or after the positional arguments.                            */
/* ------------------------------------------------------------------ */

#define OPT_HELP 'h'

/* Runs getopt_long over a subcommand's argv (argv[0] = command name).
 * Returns the option, -1 at the end, or '?' after printing a usage error
 * (then *rc is set). */
static int next_opt(const struct command *c, int argc, char **argv,
                    const char *shortopts, const struct option *longopts,
                    int *rc)
{
    int ch = getopt_long(argc, argv, shortopts, longopts, NULL);
    if (ch == '?' || ch == ':') {
        const char *bad = argv[optind - 1];
        if (ch == ':')
            *rc = usage_error(c, "option '%s' needs a value", bad);
        else
            *rc = usage_error(c, "unknown option '%s'", bad);
        return '?';
    }
    return ch;
}

static void reset_getopt(void)
{
    optind = 0; /* GNU: full reinitialisation */
    opterr = 0;
}

static bool parse_metric(const char *s, cairn_metric *m)
{
    if (strcmp(s, "l2") == 0)
        *m = CAIRN_METRIC_L2;
    else if (strcmp(s, "cosine") == 0)
        *m = CAIRN_METRIC_COSINE;
    else if (strcmp(s, "dot") == 0)
        *m = CAIRN_METRIC_DOT;
    else
        return false;
    return true;
}

static const char *metric_name(cairn_metric m)
{
    switch (m) {
    case CAIRN_METRIC_L2: return "l2";
    case CAIRN_METRIC_COSINE: return "cosine";
    case CAIRN_METRIC_DOT: return "dot";
    }
    return "?";
}

/* ------------------------------------------------------------------ */
/* Database helpers                                                     */
/* ------------------------------------------------------------------ */

/* Global options: continuous WAL archiving for every command that opens
 * the database (cairn --archive REPO import ...). */
static const char *g_archive, *g_archive_key;
static uint32_t g_archive_timeout;
static int g_archive_level, g_archive_wal_level; /* 0: the repository's */

static int db_open(const char *path, bool create, cairn_db **db)
{
    cairn_options o;
    cairn_options_init(&o);
    o.create_if_missing = create ? 1 : 0;
    o.archive_repo = g_archive;
    o.archive_key_file = g_archive_key;
    o.archive_timeout_s = g_archive_timeout;
    o.archive_level = g_archive_level;
    o.archive_wal_level = g_archive_wal_level;
    cairn_status st = cairn_open(path, &o, db);
    if (st != CAIRN_OK) {
        *db = NULL;
        return report(st);
    }
    return CLI_EXIT_OK;
}

/* Closes db; a failing close turns a successful rc into a failure. */
static int db_close(cairn_db *db, int rc)
{
    cairn_status st = cairn_close(db);
    if (st != CAIRN_OK) {
        int r = report(st);
        if (rc == CLI_EXIT_OK)
            rc = r;
    }
    return rc;
}

/* ------------------------------------------------------------------ */
/* create / drop / restore-point                                        */
/* ------------------------------------------------------------------ */

static int cmd_create(const struct command *c, int argc, char **argv)
{
    static const struct option lo[] = {
        {"dim", required_argument, NULL, 'd'},
        {"metric", required_argument, NULL, 'm'},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0}};
    uint32_t dim = 0;
    cairn_metric metric = CAIRN_METRIC_L2;
    int ch, rc = 0;
    reset_getopt();
    while ((ch = next_opt(c, argc, argv, ":h", lo, &rc)) != -1) {
        switch (ch) {
        case 'd':
            if (!cli_parse_u32_range(optarg, 1, CAIRN_MAX_DIM, &dim))
                return usage_error(c, "--dim must be an integer in 1..%u",
                                   CAIRN_MAX_DIM);
            break;
        case 'm':
            if (!parse_metric(optarg, &metric))
                return usage_error(c, "--metric must be l2, cosine or dot");
            break;
        case OPT_HELP: return print_help(c);
        default: return rc;
        }
    }
    if (argc - optind != 2)
        return usage_error(c, "expected DB and COLLECTION");
    if (dim == 0)
        return usage_error(c, "--dim is required");
    const char *path = argv[optind], *name = argv[optind + 1];

    cairn_db *db;
    if ((rc = db_open(path, true, &db)) != 0)
        return rc;
    cairn_status st = cairn_collection_create(db, name, dim, metric);
    if (st != CAIRN_OK)
        return db_close(db, report(st));
    cairn_collection_info ci;
    st = cairn_collection_stat(db, name, &ci);
    if (st != CAIRN_OK)
        return db_close(db, report(st));
    printf("created collection \"%s\" (id %u, dim %u, %s)\n", ci.name, ci.id,
           ci.dim, metric_name(ci.metric));
    return db_close(db, CLI_EXIT_OK);
}

/* The commands that take only positional arguments (drop, restore-point,
 * checkpoint, switch-wal): --help, exactly `nargs` arguments (`expect`
 * names them), then the database (the first) opened. 0 and *db set, or
 * the exit status to return with *db NULL (0 after --help). */
static int open_simple(const struct command *c, int argc, char **argv, int nargs,
                       const char *expect, cairn_db **db)
{
    *db = NULL;
    static const struct option lo[] = {{"help", no_argument, NULL, OPT_HELP},
                                       {NULL, 0, NULL, 0}};
    int ch, rc = 0;
    reset_getopt();
    while ((ch = next_opt(c, argc, argv, ":h", lo, &rc)) != -1) {
        if (ch == OPT_HELP)
            return print_help(c);
        return rc;
    }
    if (argc - optind != nargs)
        return usage_error(c, "expected %s", expect);
    return db_open(argv[optind], false, db);
}

static int cmd_drop(const struct command *c, int argc, char **argv)
{
    cairn_db *db;
    int rc = open_simple(c, argc, argv, 2, "DB and COLLECTION", &db);
    if (rc != 0 || db == NULL) /* a failure, or --help shown */
        return rc;
    cairn_status st = cairn_collection_drop(db, argv[optind + 1]);
    if (st != CAIRN_OK)
        return db_close(db, report(st));
    printf("dropped collection \"%s\"\n", argv[optind + 1]);
    return db_close(db, CLI_EXIT_OK);
}

static int cmd_restore_point(const struct command *c, int argc, char **argv)
{
    cairn_db *db;
    int rc = open_simple(c, argc, argv, 2, "DB and NAME", &db);
    if (rc != 0 || db == NULL) /* a failure, or --help shown */
        return rc;
    uint64_t lsn = 0;
    cairn_status st = cairn_restore_point(db, argv[optind + 1], &lsn);
    if (st != CAIRN_OK)
        return db_close(db, report(st));
    char b[CLI_LSN_LEN];
    printf("%s\n", cli_fmt_lsn(b, lsn));
    return db_close(db, CLI_EXIT_OK);
}

static int cmd_checkpoint(const struct command *c, int argc, char **argv)
{
    cairn_db *db;
    int rc = open_simple(c, argc, argv, 1, "DB", &db);
    if (rc != 0 || db == NULL) /* a failure, or --help shown */
        return rc;
    cairn_checkpoint_info ci;
    cairn_status st = cairn_checkpoint(db, &ci);
    if (st != CAIRN_OK)
        return db_close(db, report(st));
    char b[CLI_LSN_LEN];
    printf("checkpoint %llu at redo LSN %s: %llu pages written in %.3f s\n",
           (unsigned long long)ci.generation, cli_fmt_lsn(b, ci.redo_lsn),
           (unsigned long long)ci.pages_written, (double)ci.duration_us / 1e6);
    return db_close(db, CLI_EXIT_OK);
}

static int cmd_switch_wal(const struct command *c, int argc, char **argv)
{
    cairn_db *db;
    int rc = open_simple(c, argc, argv, 1, "DB", &db);
    if (rc != 0 || db == NULL) /* a failure, or --help shown */
        return rc;
    uint64_t lsn = 0;
    cairn_status st = cairn_wal_switch(db, &lsn);
    if (st != CAIRN_OK)
        return db_close(db, report(st));
    char b[CLI_LSN_LEN];
    if (lsn)
        printf("closed the WAL segment; the log goes on at %s\n", cli_fmt_lsn(b, lsn));
    else
        printf("the current WAL segment holds no record: nothing to close\n");
    return db_close(db, CLI_EXIT_OK);
}

/* ------------------------------------------------------------------ */
/* import                                                               */
/* ------------------------------------------------------------------ */

static volatile sig_atomic_t g_interrupted;

/* Installed with SA_RESETHAND: a second signal ends the process the
 * default way. */
static void on_interrupt(int sig) { g_interrupted = sig; }

struct batch {
    size_t cap;         /* points */
    uint32_t dim;
    size_t n;
    float *vecs;        /* cap * dim */
    uint64_t *ids;
    size_t *poff;       /* payload offset in pay, SIZE_MAX: none */
    size_t *plen;
    char *pay;
    size_t pay_len, pay_cap;
    cairn_point *pts;
    uint64_t first_row, last_row; /* file rows (or lines) of the batch */
};

static bool batch_init(struct batch *b, size_t cap, uint32_t dim)
{
    memset(b, 0, sizeof(*b));
    b->cap = cap;
    b->dim = dim;
    if (dim != 0 && cap > SIZE_MAX / sizeof(float) / dim)
        return false;
    b->vecs = malloc(cap * dim * sizeof(float));
    b->ids = malloc(cap * sizeof(uint64_t));
    b->poff = malloc(cap * sizeof(size_t));
    b->plen = malloc(cap * sizeof(size_t));
    b->pts = malloc(cap * sizeof(cairn_point));
    return b->vecs && b->ids && b->poff && b->plen && b->pts;
}

static void batch_free(struct batch *b)
{
    free(b->vecs);
    free(b->ids);
    free(b->poff);
    free(b->plen);
    free(b->pay);
    free(b->pts);
}

static bool batch_add(struct batch *b, const struct vf_row *row)
{
    size_t i = b->n;
    memcpy(b->vecs + i * b->dim, row->vec, (size_t)b->dim * sizeof(float));
    b->ids[i] = row->id;
    if (row->payload != NULL) {
        if (b->pay_len + row->payload_len > b->pay_cap) {
            size_t cap = b->pay_cap ? b->pay_cap : 65536;
            while (cap < b->pay_len + row->payload_len)
                cap *= 2;
            char *np = realloc(b->pay, cap);
            if (np == NULL)
                return false;
            b->pay = np;
            b->pay_cap = cap;
        }
        memcpy(b->pay + b->pay_len, row->payload, row->payload_len);
        b->poff[i] = b->pay_len;
        b->plen[i] = row->payload_len;
        b->pay_len += row->payload_len;
    } else {
        b->poff[i] = SIZE_MAX;
        b->plen[i] = 0;
    }
    uint64_t where = row->line ? row->line : row->row;
    if (i == 0)
        b->first_row = where;
    b->last_row = where;
    b->n++;
    return true;
}

/* Points the cairn_point array at the (now stable) buffers. */
static void batch_seal(struct batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        b->pts[i].id = b->ids[i];
        b->pts[i].vector = b->vecs + i * b->dim;
        b->pts[i].payload = b->poff[i] == SIZE_MAX ? NULL : b->pay + b->poff[i];
        b->pts[i].payload_len = b->plen[i];
    }
}

static void batch_reset(struct batch *b)
{
    b->n = 0;
    b->pay_len = 0;
}

/* The vector-file options `import` and `cat` share (--format, --start-id,
 * --limit). Returns -1 when ch was one of them and is fine, else the status
 * to exit with: a usage error, or unknown_rc when ch is none of them. */
static int file_opt(const struct command *c, int ch, struct vf_opts *vo,
                    bool *start_id_set, uint64_t *limit, bool *limit_set, int unknown_rc)
{
    switch (ch) {
    case 'f':
        if (!vf_format_parse(optarg, &vo->format))
            return usage_error(c, "--format must be auto, jsonl, fvecs, npy "
                                  "or idx");
        return -1;
    case 's':
        if (!cli_parse_u64(optarg, &vo->start_id))
            return usage_error(c, "--start-id must be an unsigned integer");
        *start_id_set = true;
        return -1;
    case 'l':
        if (!cli_parse_u64(optarg, limit))
            return usage_error(c, "--limit must be an unsigned integer");
        *limit_set = true;
        return -1;
    default:
        return unknown_rc;
    }
}

static int cmd_import(const struct command *c, int argc, char **argv)
{
    static const struct option lo[] = {
        {"batch", required_argument, NULL, 'b'},
        {"format", required_argument, NULL, 'f'},
        {"start-id", required_argument, NULL, 's'},
        {"limit", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0}};
    uint32_t batch_size = 1000;
    struct vf_opts vo = {.format = VF_AUTO, .start_id = 0, .labels = true};
    bool start_id_set = false;
    uint64_t limit = 0;
    bool limit_set = false;
    int ch, rc = 0;
    reset_getopt();
    while ((ch = next_opt(c, argc, argv, ":h", lo, &rc)) != -1) {
        switch (ch) {
        case 'b':
            if (!cli_parse_u32_range(optarg, 1, 10000000, &batch_size))
                return usage_error(c, "--batch must be an integer in 1..10000000");
            break;
        case OPT_HELP: return print_help(c);
        default: {
            int r = file_opt(c, ch, &vo, &start_id_set, &limit, &limit_set, rc);
            if (r >= 0)
                return r;
        }
        }
    }
    if (argc - optind != 3)
        return usage_error(c, "expected DB, COLLECTION and FILE");
    const char *path = argv[optind], *coll = argv[optind + 1],
               *file = argv[optind + 2];

    char err[1200];
    vf_reader *r;
    if (!vf_open(file, &vo, &r, err, sizeof(err)))
        return failf("%s", err);
    if (vf_format_of(r) == VF_JSONL && start_id_set) {
        vf_close(r, NULL, 0);
        return usage_error(c, "--start-id applies to fvecs, npy and idx files; "
                              "JSON lines carry their own ids");
    }
    if (vf_warning(r))
        fprintf(stderr, "cairn: warning: %s\n", vf_warning(r));

    cairn_db *db = NULL;
    struct batch b = {0};
    if ((rc = db_open(path, false, &db)) != 0)
        goto out;
    cairn_collection_info ci;
    cairn_status st = cairn_collection_stat(db, coll, &ci);
    if (st != CAIRN_OK) {
        rc = report(st);
        goto out;
    }
    if (vf_dim(r) != 0 && vf_dim(r) != ci.dim) {
        rc = failf("could not import \"%s\": its rows have %u values, "
                   "collection \"%s\" has dimension %u",
                   file, vf_dim(r), coll, ci.dim);
        goto out;
    }
    uint64_t total = vf_rows(r);
    if (limit_set && (total == 0 || limit < total))
        total = limit;
    fprintf(stderr, "importing %s \"%s\" into \"%s\" (dim %u%s%s%s), %u points "
                    "per transaction\n",
            vf_format_name(vf_format_of(r)), file, coll, ci.dim,
            vf_labels_path(r) ? ", labels from \"" : "",
            vf_labels_path(r) ? vf_labels_path(r) : "",
            vf_labels_path(r) ? "\"" : "", batch_size);

    if (!batch_init(&b, batch_size, ci.dim)) {
        rc = failf("out of memory for a batch of %u points of dimension %u; "
                   "lower --batch", batch_size, ci.dim);
        goto out;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_interrupt;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    struct cli_progress prog;
    cli_progress_init(&prog);
    uint64_t committed = 0, batches = 0, last_lsn = 0;
    const char *unit = vf_format_of(r) == VF_JSONL ? "lines" : "rows";
    bool done = false;
    const char *stop = NULL; /* why the import stopped early */
    while (!done && rc == 0) {
        batch_reset(&b);
        while (b.n < b.cap) {
            if (limit_set && committed + b.n >= limit) {
                done = true;
                break;
            }
            if (g_interrupted) {
                stop = "interrupted";
                break;
            }
            struct vf_row row;
            int got = vf_next(r, &row);
            if (got == 0) {
                done = true;
                break;
            }
            if (got < 0) {
                cli_progress_clear(&prog);
                rc = failf("%s", vf_error(r));
                stop = "malformed input";
                break;
            }
            if (row.dim != ci.dim) {
                cli_progress_clear(&prog);
                rc = failf("could not import \"%s\" at %s %llu: the row has %u "
                           "values, collection \"%s\" has dimension %u",
                           file, row.line ? "line" : "row",
                           (unsigned long long)(row.line ? row.line : row.row),
                           row.dim, coll, ci.dim);
                stop = "malformed input";
                break;
            }
            if (!batch_add(&b, &row)) {
                cli_progress_clear(&prog);
                rc = failf("out of memory for the payloads of a batch");
                stop = "out of memory";
                break;
            }
        }
        if (stop != NULL) {
            if (b.n > 0)
                fprintf(stderr, "cairn: the batch in progress (%zu points, %s "
                                "%llu..%llu) was not applied\n",
                        b.n, unit, (unsigned long long)b.first_row,
                        (unsigned long long)b.last_row);
            break;
        }
        if (b.n == 0)
            break;
        batch_seal(&b);
        cairn_commit_info info;
        st = cairn_upsert_batch(db, coll, b.pts, b.n, ci.dim, &info);
        if (st != CAIRN_OK) {
            cli_progress_clear(&prog);
            rc = report(st);
            bool unknown = st == CAIRN_EIO || st == CAIRN_ENOSPC ||
                           st == CAIRN_EPOISONED;
            fprintf(stderr, "cairn: the failing batch (%zu points, %s %llu..%llu) "
                            "%s\n",
                    b.n, unit, (unsigned long long)b.first_row,
                    (unsigned long long)b.last_row,
                    unknown ? "may or may not have reached the WAL; check with "
                              "'cairn info' after reopening"
                            : "was not applied");
            stop = "commit failed";
            break;
        }
        committed += b.n;
        batches++;
        last_lsn = info.commit_lsn;
        cli_progress_update(&prog, committed, total, vf_bytes(r), false);
    }
    cli_progress_update(&prog, committed, total, vf_bytes(r), true);
    cli_progress_clear(&prog);

    double el = cli_now() - prog.start;
    if (el <= 0)
        el = 1e-9;
    char lsn[CLI_LSN_LEN];
    fprintf(stderr, "%s %llu points into \"%s\" in %llu transaction%s, %.2f s "
                    "(%.0f points/s, %.1f MB/s)%s%s%s\n",
            stop ? "stopped: committed" : "imported",
            (unsigned long long)committed, coll, (unsigned long long)batches,
            batches == 1 ? "" : "s", el,
            (double)committed / el, (double)vf_bytes(r) / el / 1e6,
            batches ? "; last commit LSN " : "",
            batches ? cli_fmt_lsn(lsn, last_lsn) : "",
            stop ? (strcmp(stop, "interrupted") == 0 ? " (interrupted)" : "")
                 : "");
    if (stop != NULL && strcmp(stop, "interrupted") == 0 && rc == 0)
        rc = 128 + (int)g_interrupted;
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
out:
    batch_free(&b);
    if (!vf_close(r, err, sizeof(err)) && rc == 0)
        rc = failf("%s", err);
    if (db != NULL)
        rc = db_close(db, rc);
    return rc;
}

/* ------------------------------------------------------------------ */
/* search                                                               */
/* ------------------------------------------------------------------ */

/* Parses a JSON array of numbers into a malloc'd float vector. */
static bool parse_vector_json(const char *s, float **out, uint32_t *dim,
                              char *err, size_t errlen)
{
    json_error_t je;
    json_t *a = json_loads(s, JSON_DECODE_ANY, &je);
    if (a == NULL) {
        snprintf(err, errlen, "could not parse --vector at column %d: %s",
                 je.column, je.text);
        return false;
    }
    bool ok = false;
    size_t n = json_is_array(a) ? json_array_size(a) : 0;
    if (n == 0 || n > CAIRN_MAX_DIM) {
        snprintf(err, errlen, "could not parse --vector: need a JSON array of "
                              "1..%u numbers", CAIRN_MAX_DIM);
        goto out;
    }
    float *v = malloc(n * sizeof(float));
    if (v == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *x = json_array_get(a, i);
        if (!json_is_number(x)) {
            snprintf(err, errlen, "could not parse --vector: element %zu is not "
                                  "a number", i);
            free(v);
            goto out;
        }
        v[i] = (float)json_number_value(x);
        if (!isfinite(v[i])) {
            snprintf(err, errlen, "could not parse --vector: element %zu is "
                                  "outside the float32 range", i);
            free(v);
            goto out;
        }
    }
    *out = v;
    *dim = (uint32_t)n;
    ok = true;
out:
    json_decref(a);
    return ok;
}

/* Reads row `row` of a vector file into a malloc'd vector. */
static bool read_vector_file(const char *file, enum vf_format fmt, uint64_t row,
                             float **out, uint32_t *dim, char *err,
                             size_t errlen)
{
    struct vf_opts vo = {.format = fmt, .start_id = 0, .labels = false};
    vf_reader *r;
    if (!vf_open(file, &vo, &r, err, errlen))
        return false;
    struct vf_row vr;
    int got = -1;
    if (vf_skip(r, row) == 0)
        got = vf_next(r, &vr);
    if (got <= 0) {
        if (got == 0)
            snprintf(err, errlen, "could not find row %llu in \"%s\": it holds "
                                  "%llu rows", (unsigned long long)row, file,
                     (unsigned long long)row);
        else
            snprintf(err, errlen, "%s", vf_error(r));
        vf_close(r, NULL, 0);
        return false;
    }
    float *v = malloc((size_t)vr.dim * sizeof(float));
    if (v == NULL) {
        snprintf(err, errlen, "out of memory");
        vf_close(r, NULL, 0);
        return false;
    }
    memcpy(v, vr.vec, (size_t)vr.dim * sizeof(float));
    *out = v;
    *dim = vr.dim;
    vf_close(r, NULL, 0); /* stopping early: gzip's status does not matter */
    return true;
}

/* Writes payload JSON text compactly on one line (null if none). A
 * payload is a JSON object (checked at commit): when it cannot be
 * compacted (out of memory; not jansson's parser, unsafe then: json.h),
 * it is written as it is, still JSON. */
static void print_payload(const char *text)
{
    if (text == NULL) {
        fputs("null", stdout);
        return;
    }
    json_t *p = NULL;
    char *s = NULL;
    if (cjson_parse_object(text, strlen(text), &p, NULL) == CAIRN_OK) {
        jalloc_begin();
        s = json_dumps(p, JSON_COMPACT);
        if (s && jalloc_failed()) { /* a key cut short, maybe */
            free(s);
            s = NULL;
        }
    }
    fputs(s ? s : text, stdout);
    free(s);
    json_decref(p);
}

static int cmd_search(const struct command *c, int argc, char **argv)
{
    static const struct option lo[] = {
        {"vector", required_argument, NULL, 'v'},
        {"vector-file", required_argument, NULL, 'F'},
        {"row", required_argument, NULL, 'r'},
        {"format", required_argument, NULL, 'f'},
        {"k", required_argument, NULL, 'k'},
        {"filter", required_argument, NULL, 'q'},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0}};
    const char *vec_json = NULL, *vec_file = NULL, *filter_json = NULL;
    uint64_t row = 0;
    bool row_set = false;
    enum vf_format fmt = VF_AUTO;
    uint32_t k = 10;
    int ch, rc = 0;
    reset_getopt();
    while ((ch = next_opt(c, argc, argv, ":hk:", lo, &rc)) != -1) {
        switch (ch) {
        case 'v': vec_json = optarg; break;
        case 'F': vec_file = optarg; break;
        case 'r':
            if (!cli_parse_u64(optarg, &row))
                return usage_error(c, "--row must be an unsigned integer");
            row_set = true;
            break;
        case 'f':
            if (!vf_format_parse(optarg, &fmt))
                return usage_error(c, "--format must be auto, jsonl, fvecs, npy "
                                      "or idx");
            break;
        case 'k':
            if (!cli_parse_u32_range(optarg, 1, 1000000, &k))
                return usage_error(c, "-k must be an integer in 1..1000000");
            break;
        case 'q': filter_json = optarg; break;
        case OPT_HELP: return print_help(c);
        default: return rc;
        }
    }
    if (argc - optind != 2)
        return usage_error(c, "expected DB and COLLECTION");
    if ((vec_json == NULL) == (vec_file == NULL))
        return usage_error(c, "give exactly one of --vector and --vector-file");
    if (row_set && vec_file == NULL)
        return usage_error(c, "--row goes with --vector-file");
    const char *path = argv[optind], *coll = argv[optind + 1];

    float *q = NULL;
    uint32_t qdim = 0;
    char err[1200];
    bool ok = vec_json ? parse_vector_json(vec_json, &q, &qdim, err, sizeof(err))
                       : read_vector_file(vec_file, fmt, row, &q, &qdim, err,
                                          sizeof(err));
    if (!ok)
        return failf("%s", err);

    cairn_db *db = NULL;
    cairn_filter *filter = NULL;
    cairn_hit *hits = NULL;
    cairn_status st;
    if ((rc = db_open(path, false, &db)) != 0)
        goto out;
    cairn_collection_info ci;
    if ((st = cairn_collection_stat(db, coll, &ci)) != CAIRN_OK) {
        rc = report(st);
        goto out;
    }
    if (qdim != ci.dim) {
        rc = failf("the query has %u values, collection \"%s\" has dimension %u",
                   qdim, coll, ci.dim);
        goto out;
    }
    if (filter_json != NULL &&
        (st = cairn_filter_parse(filter_json, strlen(filter_json), &filter)) !=
            CAIRN_OK) {
        rc = report(st);
        goto out;
    }
    hits = calloc(k, sizeof(*hits));
    if (hits == NULL) {
        rc = failf("out of memory for %u hits", k);
        goto out;
    }
    uint32_t nh = 0;
    if ((st = cairn_search(db, coll, q, qdim, k, filter, hits, &nh)) != CAIRN_OK) {
        rc = report(st);
        goto out;
    }
    for (uint32_t i = 0; i < nh; i++) {
        char *payload = NULL;
        st = cairn_get(db, coll, hits[i].id, NULL, ci.dim, &payload);
        if (st != CAIRN_OK && st != CAIRN_ENOTFOUND) {
            rc = report(st);
            goto out;
        }
        printf("{\"id\":%llu,\"distance\":", (unsigned long long)hits[i].id);
        cli_json_float(stdout, hits[i].distance);
        fputs(",\"payload\":", stdout);
        print_payload(payload);
        fputs("}\n", stdout);
        cairn_free(payload);
    }
    if (fflush(stdout) != 0)
        rc = failf("could not write the results: %s", strerror(errno));
out:
    free(hits);
    cairn_filter_free(filter);
    free(q);
    if (db != NULL)
        rc = db_close(db, rc);
    return rc;
}

/* ------------------------------------------------------------------ */
/* info                                                                 */
/* ------------------------------------------------------------------ */

static json_t *jint(uint64_t v) { return json_integer((json_int_t)v); }

static void info_json(const char *path, const cairn_collection_info *cl,
                      size_t n, const cairn_stats *s)
{
    json_t *root = json_object();
    json_object_set_new(root, "database", json_string(path));
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(cl[i].name));
        json_object_set_new(o, "id", jint(cl[i].id));
        json_object_set_new(o, "dim", jint(cl[i].dim));
        json_object_set_new(o, "metric", json_string(metric_name(cl[i].metric)));
        json_object_set_new(o, "points", jint(cl[i].points));
        json_object_set_new(o, "bytes", jint(cl[i].bytes));
        json_array_append_new(arr, o);
    }
    json_object_set_new(root, "collections", arr);
    json_t *st = json_object();
    json_object_set_new(st, "last_lsn", jint(s->last_lsn));
    json_object_set_new(st, "durable_lsn", jint(s->durable_lsn));
    json_object_set_new(st, "next_txn_id", jint(s->next_txn_id));
    json_object_set_new(st, "wal_bytes", jint(s->wal_bytes));
    json_object_set_new(st, "commits", jint(s->commits));
    json_object_set_new(st, "timeline", jint(s->timeline));
    json_object_set_new(st, "io_backend",
                        json_string(s->io_backend ? s->io_backend : ""));
    json_object_set_new(root, "stats", st);
    const cairn_recovery_report *rr = &s->recovery;
    json_t *rec = json_object();
    json_object_set_new(rec, "checkpoint", jint(rr->checkpoint));
    json_object_set_new(rec, "pages_read", jint(rr->pages_read));
    json_object_set_new(rec, "pages_us", jint(rr->pages_us));
    json_object_set_new(rec, "start_lsn", jint(rr->start_lsn));
    json_object_set_new(rec, "end_lsn", jint(rr->end_lsn));
    json_object_set_new(rec, "records_replayed", jint(rr->records_replayed));
    json_object_set_new(rec, "txns_applied", jint(rr->txns_applied));
    json_object_set_new(rec, "txns_discarded", jint(rr->txns_discarded));
    json_object_set_new(rec, "bytes_truncated", jint(rr->bytes_truncated));
    json_object_set_new(rec, "truncated_at", jint(rr->truncated_at));
    char tf[sizeof(rr->truncated_file) + 1];
    memcpy(tf, rr->truncated_file, sizeof(rr->truncated_file));
    tf[sizeof(rr->truncated_file)] = '\0';
    json_object_set_new(rec, "truncated_file", json_string(tf));
    json_object_set_new(rec, "duration_us", jint(rr->duration_us));
    json_object_set_new(rec, "jobs", jint(rr->jobs));
    json_object_set_new(root, "recovery", rec);
    char *text = json_dumps(root, JSON_COMPACT);
    if (text)
        printf("%s\n", text);
    free(text);
    json_decref(root);
}

static void info_text(const char *path, const cairn_collection_info *cl,
                      size_t n, const cairn_stats *s)
{
    char a[CLI_LSN_LEN], b[CLI_LSN_LEN], hb[32];
    printf("database \"%s\"\n", path);
    printf("collections: %zu\n", n);
    if (n > 0) {
        int w = 4;
        for (size_t i = 0; i < n; i++)
            if ((int)strlen(cl[i].name) > w)
                w = (int)strlen(cl[i].name);
        printf("  %-*s %10s %6s %-6s %12s %14s\n", w, "name", "id", "dim",
               "metric", "points", "bytes");
        for (size_t i = 0; i < n; i++)
            printf("  %-*s %10u %6u %-6s %12llu %14llu (%s)\n", w, cl[i].name,
                   cl[i].id, cl[i].dim, metric_name(cl[i].metric),
                   (unsigned long long)cl[i].points,
                   (unsigned long long)cl[i].bytes,
                   cli_fmt_bytes(hb, sizeof(hb), cl[i].bytes));
    }
    printf("wal:\n");
    printf("  last LSN          %s\n", cli_fmt_lsn(a, s->last_lsn));
    printf("  durable LSN       %s\n", cli_fmt_lsn(a, s->durable_lsn));
    printf("  next txn id       %llu\n", (unsigned long long)s->next_txn_id);
    printf("  WAL bytes         %llu (%s)\n", (unsigned long long)s->wal_bytes,
           cli_fmt_bytes(hb, sizeof(hb), s->wal_bytes));
    printf("  timeline          %u\n", s->timeline);
    printf("  io backend        %s\n", s->io_backend ? s->io_backend : "?");
    const cairn_recovery_report *rr = &s->recovery;
    printf("recovery (this open):\n");
    if (rr->checkpoint)
        printf("  checkpoint        %llu: %llu pages loaded in %.3f s\n",
               (unsigned long long)rr->checkpoint, (unsigned long long)rr->pages_read,
               (double)rr->pages_us / 1e6);
    else
        printf("  checkpoint        none (the WAL from its start)\n");
    printf("  replayed          %llu records, %s .. %s\n",
           (unsigned long long)rr->records_replayed,
           cli_fmt_lsn(a, rr->start_lsn), cli_fmt_lsn(b, rr->end_lsn));
    printf("  transactions      %llu applied, %llu discarded\n",
           (unsigned long long)rr->txns_applied,
           (unsigned long long)rr->txns_discarded);
    if (rr->bytes_truncated > 0 || rr->truncated_at != 0)
        printf("  torn tail         %llu bytes truncated at %s in \"%.*s\"\n",
               (unsigned long long)rr->bytes_truncated,
               cli_fmt_lsn(a, rr->truncated_at),
               (int)sizeof(rr->truncated_file), rr->truncated_file);
    else
        printf("  torn tail         none\n");
    printf("  duration          %.3f s, %u jobs\n",
           (double)rr->duration_us / 1e6, rr->jobs);
}

static int cmd_info(const struct command *c, int argc, char **argv)
{
    static const struct option lo[] = {{"json", no_argument, NULL, 'j'},
                                       {"help", no_argument, NULL, OPT_HELP},
                                       {NULL, 0, NULL, 0}};
    bool json = false;
    int ch, rc = 0;
    reset_getopt();
    while ((ch = next_opt(c, argc, argv, ":h", lo, &rc)) != -1) {
        switch (ch) {
        case 'j': json = true; break;
        case OPT_HELP: return print_help(c);
        default: return rc;
        }
    }
    if (argc - optind != 1)
        return usage_error(c, "expected DB");
    const char *path = argv[optind];
    cairn_db *db;
    if ((rc = db_open(path, false, &db)) != 0)
        return rc;
    cairn_collection_info *cl = NULL;
    size_t n = 0;
    cairn_stats s;
    memset(&s, 0, sizeof(s));
    cairn_status st = cairn_collection_list(db, &cl, &n);
    if (st != CAIRN_OK)
        return db_close(db, report(st));
    if ((st = cairn_stats_get(db, &s)) != CAIRN_OK) {
        rc = report(st);
        cairn_free(cl);
        return db_close(db, rc);
    }
    if (json)
        info_json(path, cl, n, &s);
    else
        info_text(path, cl, n, &s);
    cairn_free(cl);
    if (fflush(stdout) != 0)
        rc = failf("could not write the output: %s", strerror(errno));
    return db_close(db, rc);
}

/* ------------------------------------------------------------------ */
/* check                                                                */
/* ------------------------------------------------------------------ */

struct check_out {
    bool json;
    json_t *problems, *warnings; /* --json: the findings */
};

/* Text: one line per finding on stdout, as found. */
static void check_finding(void *ctx, int problem, const char *message)
{
    struct check_out *o = ctx;
    if (o->json)
        json_array_append_new(problem ? o->problems : o->warnings,
                              json_string(message));
    else
        printf("%s: %s\n", problem ? "problem" : "warning", message);
}

static int cmd_check(const struct command *c, int argc, char **argv)
{
    static const struct option lo[] = {{"json", no_argument, NULL, 'j'},
                                       {"help", no_argument, NULL, OPT_HELP},
                                       {NULL, 0, NULL, 0}};
    struct check_out o = {0};
    int ch, rc = 0;
    reset_getopt();
    while ((ch = next_opt(c, argc, argv, ":h", lo, &rc)) != -1) {
        switch (ch) {
        case 'j': o.json = true; break;
        case OPT_HELP: return print_help(c);
        default: return rc;
        }
    }
    if (argc - optind != 1)
        return usage_error(c, "expected DB");
    const char *path = argv[optind];
    cairn_db *db;
    if ((rc = db_open(path, false, &db)) != 0)
        return rc;
    if (o.json) {
        o.problems = json_array();
        o.warnings = json_array();
    }
    cairn_check_report r;
    cairn_status st = cairn_check_ex(db, &r, check_finding, &o);
    if (st != CAIRN_OK && st != CAIRN_ECORRUPT && st != CAIRN_EIO) {
        rc = report(st); /* the check could not run */
        json_decref(o.problems);
        json_decref(o.warnings);
        return db_close(db, rc);
    }
    if (o.json) {
        json_t *root = json_object();
        json_object_set_new(root, "database", json_string(path));
        json_object_set_new(root, "ok", json_boolean(r.problems == 0));
        json_object_set_new(root, "generation", jint(r.generation));
        json_object_set_new(root, "collections_checked", jint(r.collections_checked));
        json_object_set_new(root, "pages_checked", jint(r.pages_checked));
        json_object_set_new(root, "disk_points_checked", jint(r.disk_points_checked));
        json_object_set_new(root, "points_checked", jint(r.points_checked));
        json_object_set_new(root, "wal_bytes_checked", jint(r.wal_bytes_checked));
        json_object_set_new(root, "wal_records_checked", jint(r.wal_records_checked));
        json_object_set_new(root, "duration_us", jint(r.duration_us));
        json_object_set_new(root, "problem_count", jint(r.problems));
        json_object_set_new(root, "warning_count", jint(r.warnings));
        json_object_set_new(root, "problems", o.problems);
        json_object_set_new(root, "warnings", o.warnings);
        char *text = json_dumps(root, JSON_COMPACT);
        if (text)
            printf("%s\n", text);
        free(text);
        json_decref(root);
    }
    fprintf(stderr,
            "cairn: check of \"%s\": checkpoint %llu (%u collections, %llu pages, "
            "%llu points), %llu points in memory, %llu WAL bytes (%llu records) in "
            "%.3f s: %u problem%s, %u warning%s\n",
            path, (unsigned long long)r.generation, r.collections_checked,
            (unsigned long long)r.pages_checked,
            (unsigned long long)r.disk_points_checked,
            (unsigned long long)r.points_checked,
            (unsigned long long)r.wal_bytes_checked,
            (unsigned long long)r.wal_records_checked, (double)r.duration_us / 1e6,
            r.problems, r.problems == 1 ? "" : "s", r.warnings,
            r.warnings == 1 ? "" : "s");
    rc = r.problems ? CLI_EXIT_FAIL : CLI_EXIT_OK;
    if (fflush(stdout) != 0)
        rc = failf("could not write the output: %s", strerror(errno));
    return db_close(db, rc);
}

/* ------------------------------------------------------------------ */
/* cat: print a vector file as the JSON lines `import` reads            */
/* ------------------------------------------------------------------ */

static int cmd_cat(const struct command *c, int argc, char **argv)
{
    static const struct option lo[] = {
        {"format", required_argument, NULL, 'f'},
        {"start-id", required_argument, NULL, 's'},
        {"row", required_argument, NULL, 'r'},
        {"limit", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0}};
    struct vf_opts vo = {.format = VF_AUTO, .start_id = 0, .labels = true};
    bool start_id_set = false, limit_set = false;
    uint64_t row = 0, limit = 0;
    int ch, rc = 0;
    reset_getopt();
    while ((ch = next_opt(c, argc, argv, ":h", lo, &rc)) != -1) {
        switch (ch) {
        case 'r':
            if (!cli_parse_u64(optarg, &row))
                return usage_error(c, "--row must be an unsigned integer");
            break;
        case OPT_HELP: return print_help(c);
        default: {
            int r = file_opt(c, ch, &vo, &start_id_set, &limit, &limit_set, rc);
            if (r >= 0)
                return r;
        }
        }
    }
    if (argc - optind != 1)
        return usage_error(c, "expected FILE");
    const char *file = argv[optind];
    char err[1200];
    vf_reader *r;
    if (!vf_open(file, &vo, &r, err, sizeof(err)))
        return failf("%s", err);
    if (vf_format_of(r) == VF_JSONL && start_id_set) {
        vf_close(r, NULL, 0);
        return usage_error(c, "--start-id applies to fvecs, npy and idx files; "
                              "JSON lines carry their own ids");
    }
    if (vf_warning(r))
        fprintf(stderr, "cairn: warning: %s\n", vf_warning(r));
    if (vf_skip(r, row) != 0) {
        rc = failf("%s", vf_error(r));
        vf_close(r, NULL, 0);
        return rc;
    }
    uint64_t n = 0;
    while (!limit_set || n < limit) {
        struct vf_row vr;
        int got = vf_next(r, &vr);
        if (got == 0)
            break;
        if (got < 0) {
            fflush(stdout);
            rc = failf("%s", vf_error(r));
            break;
        }
        printf("{\"id\":%llu,\"vector\":[", (unsigned long long)vr.id);
        for (uint32_t i = 0; i < vr.dim; i++) {
            if (i)
                putchar(',');
            cli_json_float(stdout, vr.vec[i]);
        }
        putchar(']');
        if (vr.payload) {
            fputs(",\"payload\":", stdout);
            fwrite(vr.payload, 1, vr.payload_len, stdout);
        }
        fputs("}\n", stdout);
        n++;
    }
    bool finished = rc == 0 && (!limit_set || n < limit);
    if (!vf_close(r, err, sizeof(err)) && rc == 0 && finished)
        rc = failf("%s", err);
    if (fflush(stdout) != 0 && rc == 0)
        rc = failf("could not write the output: %s", strerror(errno));
    return rc;
}

/* ------------------------------------------------------------------ */
/* gen-synthetic: seeded clustered vectors as .fvecs or .npy            */
/* ------------------------------------------------------------------ */

/* splitmix64: tiny, seedable, good enough for test data. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double rng_unit(uint64_t *s) /* [0, 1) */
{
    return (double)(rng_next(s) >> 11) * (1.0 / 9007199254740992.0);
}

static double rng_gauss(uint64_t *s)
{
    double u1 = rng_unit(s), u2 = rng_unit(s);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static bool str_ends(const char *s, const char *suf)
{
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && strcmp(s + n - k, suf) == 0;
}

static int cmd_gen_synthetic(const struct command *c, int argc, char **argv)
{
    static const struct option lo[] = {
        {"n", required_argument, NULL, 'n'},
        {"dim", required_argument, NULL, 'd'},
        {"seed", required_argument, NULL, 's'},
        {"clusters", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0}};
    uint64_t n = 60000, seed = 42;
    uint32_t dim = 784, clusters = 10;
    int ch, rc = 0;
    reset_getopt();
    while ((ch = next_opt(c, argc, argv, ":h", lo, &rc)) != -1) {
        switch (ch) {
        case 'n':
            if (!cli_parse_u64(optarg, &n) || n > 2147483647u)
                return usage_error(c, "--n must be an integer in 0..2^31-1");
            break;
        case 'd':
            if (!cli_parse_u32_range(optarg, 1, CAIRN_MAX_DIM, &dim))
                return usage_error(c, "--dim must be an integer in 1..%u",
                                   CAIRN_MAX_DIM);
            break;
        case 's':
            if (!cli_parse_u64(optarg, &seed))
                return usage_error(c, "--seed must be an unsigned integer");
            break;
        case 'c':
            if (!cli_parse_u32_range(optarg, 1, 100000, &clusters))
                return usage_error(c, "--clusters must be an integer in "
                                      "1..100000");
            break;
        case OPT_HELP: return print_help(c);
        default: return rc;
        }
    }
    if (argc - optind != 1)
        return usage_error(c, "expected OUT.fvecs or OUT.npy");
    const char *out = argv[optind];
    bool npy = str_ends(out, ".npy");
    if (!npy && !str_ends(out, ".fvecs"))
        return usage_error(c, "the output name must end in .fvecs or .npy");
    if ((uint64_t)clusters * dim > (64u << 20))
        return usage_error(c, "--clusters x --dim is too large");

    uint64_t st = seed;
    float *centers = malloc((size_t)clusters * dim * sizeof(float));
    float *v = malloc((size_t)dim * sizeof(float));
    FILE *f = NULL;
    if (centers == NULL || v == NULL) {
        rc = failf("out of memory");
        goto out;
    }
    for (size_t i = 0; i < (size_t)clusters * dim; i++)
        centers[i] = (float)rng_unit(&st);
    f = fopen(out, "wb");
    if (f == NULL) {
        rc = failf("could not create \"%s\": %s", out, strerror(errno));
        goto out;
    }
    if (npy) {
        /* Version 1.0 header, padded with spaces so that the data starts at
         * a multiple of 64, ending in '\n'. */
        char dict[200];
        int dl = snprintf(dict, sizeof(dict),
                          "{'descr': '<f4', 'fortran_order': False, "
                          "'shape': (%llu, %u), }",
                          (unsigned long long)n, dim);
        size_t total = 10 + (size_t)dl + 1;
        size_t pad = (64 - total % 64) % 64;
        size_t hlen = (size_t)dl + pad + 1;
        unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
                                 (unsigned char)(hlen & 0xFF),
                                 (unsigned char)(hlen >> 8)};
        fwrite(pre, 1, sizeof(pre), f);
        fwrite(dict, 1, (size_t)dl, f);
        for (size_t i = 0; i < pad; i++)
            fputc(' ', f);
        fputc('\n', f);
    }
    int32_t d32 = (int32_t)dim;
    for (uint64_t i = 0; i < n; i++) {
        const float *cen = centers + (size_t)(rng_next(&st) % clusters) * dim;
        for (uint32_t j = 0; j < dim; j++)
            v[j] = cen[j] + (float)(0.15 * rng_gauss(&st));
        if (!npy)
            fwrite(&d32, 4, 1, f);
        if (fwrite(v, sizeof(float), dim, f) != dim)
            break;
    }
    if (ferror(f) | (fclose(f) != 0)) {
        f = NULL;
        rc = failf("could not write \"%s\": %s", out, strerror(errno));
        unlink(out);
        goto out;
    }
    f = NULL;
    fprintf(stderr, "wrote %llu vectors of dimension %u (%u clusters, seed %llu) "
                    "to \"%s\"\n",
            (unsigned long long)n, dim, clusters, (unsigned long long)seed, out);
out:
    if (f)
        fclose(f);
    free(centers);
    free(v);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Command table and main                                               */
/* ------------------------------------------------------------------ */

static int cmd_help(const struct command *c, int argc, char **argv);

static const struct command commands[] = {
    {"create", cmd_create, "create DB COLLECTION --dim N [--metric l2|cosine|dot]",
     "\nCreates the collection (and the database directory if missing).\n"
     "  --dim N        vector dimension, 1..65536 (required)\n"
     "  --metric M     l2 (squared euclidean, the default), cosine or dot\n"},
    {"import", cmd_import,
     "import DB COLLECTION FILE [--batch N] [--format F] [--start-id N] "
     "[--limit N]",
     "\nImports vectors from FILE; each batch is one transaction.\n"
     "  --batch N      points per transaction (default 1000)\n"
     "  --format F     auto (default: by name, then content), jsonl, fvecs,\n"
     "                 npy or idx; FILE may be gzip-compressed (NAME.gz)\n"
     "  --start-id N   id of row 0 for fvecs, npy and idx (default 0)\n"
     "  --limit N      import at most N points\n"
     "JSON lines: {\"id\": <u64>, \"vector\": [floats], \"payload\": {...}}.\n"
     "Binary rows get the payload {\"row\": N}; IDX images with a labels\n"
     "file beside them (train-images -> train-labels) get {\"label\": L}.\n"
     "Malformed input stops the import with the file and line or row; the\n"
     "batch in progress is not applied, earlier batches stay committed.\n"},
    {"search", cmd_search,
     "search DB COLLECTION (--vector JSON | --vector-file FILE [--row N] "
     "[--format F]) [-k K] [--filter JSON]",
     "\nExact top-K search; one JSON line per hit, nearest first:\n"
     "  {\"id\":..,\"distance\":..,\"payload\":{..}}\n"
     "  --vector JSON        the query as a JSON array of numbers\n"
     "  --vector-file FILE   take the query from row N (default 0) of a\n"
     "                       jsonl/fvecs/npy/idx file\n"
     "  -k K                 hits to return (default 10)\n"
     "  --filter JSON        payload filter, e.g.\n"
     "     '{\"must\":[{\"key\":\"label\",\"match\":{\"value\":9}}]}'\n"},
    {"info", cmd_info, "info DB [--json]",
     "\nOpens DB (running its crash recovery) and prints its collections,\n"
     "WAL statistics and the recovery report of this open.\n"
     "  --json         one JSON object instead of text\n"},
    {"check", cmd_check, "check DB [--json]",
     "\nOpens DB (running its crash recovery) and walks every page and\n"
     "structure: both superblock slots, the catalog, every map and page of\n"
     "the last checkpoint (read from the files), every collection in memory,\n"
     "the WAL from the checkpoint's redo LSN. Prints each finding on stdout\n"
     "(\"problem: ...\" or \"warning: ...\", naming file and page or offset)\n"
     "and a summary on stderr. Changes nothing beyond what the open does.\n"
     "Exit status 0 when no problem was found (warnings allowed), 1 otherwise.\n"
     "  --json         one JSON object instead of text\n"},
    {"restore-point", cmd_restore_point, "restore-point DB NAME",
     "\nWrites a named restore point into the WAL and prints its LSN\n"
     "(16 hex digits), a target for point-in-time recovery.\n"},
    {"drop", cmd_drop, "drop DB COLLECTION", "\nDrops the collection.\n"},
    {"switch-wal", cmd_switch_wal, "switch-wal DB",
     "\nCloses the current WAL segment (like PostgreSQL's pg_switch_wal), so\n"
     "that an archiver copies it now: with --archive REPO this command's own\n"
     "archiver does before it exits; else run pitrctl archive.\n"},
    {"checkpoint", cmd_checkpoint, "checkpoint DB",
     "\nRuns a checkpoint now (folds the WAL into the page store; a backup\n"
     "copies the newest checkpoint) and prints its generation and redo LSN.\n"},
    {"cat", cmd_cat,
     "cat FILE [--format F] [--start-id N] [--row N] [--limit N]",
     "\nPrints the rows of a vector file as the JSON lines 'import' reads\n"
     "(ids and payloads as 'import' would give them); no database needed.\n"
     "  --row N        start at row N\n"
     "  --limit N      print at most N rows\n"},
    {"gen-synthetic", cmd_gen_synthetic,
     "gen-synthetic OUT.fvecs|OUT.npy [--n N] [--dim D] [--seed S] "
     "[--clusters C]",
     "\nWrites N seeded vectors (default 60000 x 784, seed 42, 10 clusters):\n"
     "cluster centres uniform in [0,1), points = centre + N(0, 0.15).\n"
     "The same seed always gives the same file.\n"},
    {"help", cmd_help, "help [COMMAND]", "\nShows help for a command.\n"},
};

static void print_main_usage(FILE *f)
{
    fprintf(f, "usage: cairn [-v] [--archive REPO [--archive-timeout S] [--key-file F]\n"
               "             [--archive-level N] [--archive-wal-level N]] COMMAND [ARGS...]\n"
               "       cairn COMMAND --help\n\n"
               "The cairn data tool (libcairn %s).\n\ncommands:\n",
            cairn_version());
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "  cairn %s\n", commands[i].synopsis);
    fprintf(f, "\n  -v, --verbose   also print the engine's info messages\n"
               "  --archive REPO  archive the WAL continuously into the backup repository\n"
               "                  REPO while the command has the database open\n"
               "  --archive-timeout S  close a WAL segment whose records are S seconds old\n"
               "  --key-file F    the key of an encrypted repository\n"
               "  --archive-level N      zstd level (1..19) of the packs and files this\n"
               "                  command's archiver writes (default: the repository's)\n"
               "  --archive-wal-level N  zstd level (-7..-1 fast, or 1..19) of the WAL\n"
               "                  segments it archives (default: the repository's)\n"
               "  --version       print the library version\n"
               "Exit status: 0 success, 1 failure, 2 usage error.\n");
}

static const struct command *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static int cmd_help(const struct command *c, int argc, char **argv)
{
    (void)c;
    if (argc < 2) {
        print_main_usage(stdout);
        return CLI_EXIT_OK;
    }
    const struct command *t = find_command(argv[1]);
    if (t == NULL) {
        fprintf(stderr, "cairn: unknown command '%s'\n", argv[1]);
        print_main_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    return print_help(t);
}

int main(int argc, char **argv)
{
    int i = 1;
    cairn_log_level level = CAIRN_LOG_WARN;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "-v") == 0 || strcmp(argv[i], "--verbose") == 0) {
            level = CAIRN_LOG_INFO;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            print_main_usage(stdout);
            return CLI_EXIT_OK;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("cairn %s\n", cairn_version());
            return CLI_EXIT_OK;
        } else if (strcmp(argv[i], "--archive") == 0 && i + 1 < argc) {
            g_archive = argv[++i];
        } else if (strcmp(argv[i], "--key-file") == 0 && i + 1 < argc) {
            g_archive_key = argv[++i];
        } else if (strcmp(argv[i], "--archive-level") == 0 && i + 1 < argc) {
            uint32_t v;
            if (!cli_parse_u32_range(argv[++i], 1, 19, &v)) {
                fprintf(stderr, "cairn: --archive-level: '%s' is not 1..19\n", argv[i]);
                return CLI_EXIT_USAGE;
            }
            g_archive_level = (int)v;
        } else if (strcmp(argv[i], "--archive-wal-level") == 0 && i + 1 < argc) {
            if (!cli_parse_wal_level(argv[++i], &g_archive_wal_level)) {
                fprintf(stderr, "cairn: --archive-wal-level: '%s' is not -7..-1 or 1..19\n",
                        argv[i]);
                return CLI_EXIT_USAGE;
            }
        } else if (strcmp(argv[i], "--archive-timeout") == 0 && i + 1 < argc) {
            if (!cli_parse_u32_range(argv[++i], 1, 86400, &g_archive_timeout)) {
                fprintf(stderr, "cairn: --archive-timeout: '%s' is not 1..86400 seconds\n",
                        argv[i]);
                return CLI_EXIT_USAGE;
            }
        } else {
            fprintf(stderr, "cairn: unknown option '%s'\n", argv[i]);
            print_main_usage(stderr);
            return CLI_EXIT_USAGE;
        }
    }
    if (i >= argc) {
        print_main_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    const struct command *c = find_command(argv[i]);
    if (c == NULL) {
        fprintf(stderr, "cairn: unknown command '%s'\n", argv[i]);
        print_main_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    cairn_set_log(log_to_stderr, NULL, level);
    return c->run(c, argc - i, argv + i);
}
