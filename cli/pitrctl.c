/*
 * pitrctl.c — the recovery tool: main, and waldump (archive, backup, list
 * and restore are in pitrctl_pitr.c).
 *
 *   pitrctl waldump DB [--from LSN] [--to LSN] [--collection NAME|ID]
 *                      [--timeline N] [--json]
 *
 * waldump decodes DB/wal with the engine's own reader (wal/reader.c, the one
 * decoder shared by engine and tools) and prints one line per record. It
 * only reads: it never takes the database lock and never truncates a torn
 * tail, so it works on a database that another process has open (the tail
 * that process is writing may show up as a torn tail, which is not an
 * error). Corruption before the durable point (CAIRN_ECORRUPT) is printed
 * and ends the run with status 1.
 *
 * Records shown are those with from <= LSN < to. --collection keeps the
 * records of that collection plus the COMMITs of their transactions;
 * RESTORE_POINT records are global and always shown. A NAME is resolved to
 * ids through the CREATE_COLL records in the WAL itself (every id that ever
 * carried the name); an all-digit argument is an id.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn.h"
#include "cliutil.h"
#include "pitrctl_cmds.h"
#include "wal/format.h"
#include "wal/wal.h"

static int failf(const char *fmt, ...) CLI_PRINTF(1, 2);
static int failf(const char *fmt, ...)
{
    va_list ap;
    fputs("pitrctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return CLI_EXIT_FAIL;
}

static int report(cairn_status st)
{
    const char *m = cairn_last_error();
    if (m != NULL && *m != '\0')
        return failf("%s", m);
    return failf("%s: %s", cairn_status_name(st), cairn_strerror(st));
}

static const char waldump_usage[] =
    "usage: pitrctl waldump DB [--from LSN] [--to LSN] [--collection NAME|ID]\n"
    "                          [--timeline N] [--json]\n";

static const char waldump_help[] =
    "\nPrints the records of DB/wal, one line each: LSN, type, transaction,\n"
    "collection id, length, and per type the point id (UPSERT, DELETE), the\n"
    "time in UTC (COMMIT, RESTORE_POINT), the name (RESTORE_POINT,\n"
    "CREATE_COLL). A summary (records, end LSN, torn tail) goes to stderr.\n"
    "Read-only: works while another process has the database open.\n\n"
    "  --from LSN            first LSN to show (default: the oldest record)\n"
    "  --to LSN              stop before this LSN\n"
    "  --collection NAME|ID  only this collection's records and the COMMITs\n"
    "                        of their transactions (restore points stay)\n"
    "  --timeline N          timeline to read (default: the highest present)\n"
    "  --json                one JSON object per line\n"
    "LSNs are written as 16 hex digits; arguments take that form, 0x..., or\n"
    "decimal.\n";

static void main_usage(FILE *f)
{
    fprintf(f, "usage: pitrctl COMMAND [ARGS...]\n"
               "       pitrctl COMMAND --help\n\n"
               "The cairn recovery tool (libcairn %s).\n\ncommands:\n"
               "  waldump DB [--from LSN] [--to LSN] [--collection NAME|ID]\n"
               "             [--timeline N] [--json]\n"
               "            print the records of a database's write-ahead log\n"
               "  archive DB REPO    copy completed WAL segments into a repository\n"
               "  backup DB REPO [--incremental]\n"
               "            back up the newest checkpoint, online\n"
               "  list REPO          backups, archived WAL, recoverable windows\n"
               "  restore REPO TARGET_DIR (--target-time T | --target-lsn L |\n"
               "            --target-txn X | --target-name N | --latest | --backup ID)\n"
               "            rebuild the database as of the target, on a new timeline\n"
               "  verify REPO        check every backup, pack and archived segment\n"
               "  expire REPO --keep-full N\n"
               "            delete old backups, unused packs, WAL no kept backup needs\n"
               "\nExit status: 0 success, 1 failure, 2 usage error.\n",
            cairn_version());
}

static int usage_error(const char *fmt, ...) CLI_PRINTF(1, 2);
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs("pitrctl waldump: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fputs(waldump_usage, stderr);
    fputs("Try 'pitrctl waldump --help'.\n", stderr);
    return CLI_EXIT_USAGE;
}

/* ------------------------------------------------------------------ */
/* Segments                                                             */
/* ------------------------------------------------------------------ */

struct seglist {
    uint32_t timeline;
    uint64_t *starts; /* sorted start LSNs of that timeline */
    size_t n;
};

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Finds the segments of `want` (0: the highest timeline present). */
static int list_segments(const char *waldir, uint32_t want, struct seglist *out)
{
    memset(out, 0, sizeof(*out));
    DIR *d = opendir(waldir);
    if (d == NULL)
        return failf("could not open WAL directory \"%s\": %s", waldir,
                     strerror(errno));
    uint32_t best = want;
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        uint32_t tl;
        uint64_t start;
        if (!wal_seg_parse_name(e->d_name, &tl, &start))
            continue;
        if (want == 0 && tl > best) {
            best = tl;
            out->n = 0; /* a higher timeline: start over */
        }
        if (tl != best)
            continue;
        if (out->n == cap) {
            cap = cap ? cap * 2 : 16;
            uint64_t *ns = realloc(out->starts, cap * sizeof(uint64_t));
            if (ns == NULL) {
                closedir(d);
                return failf("out of memory");
            }
            out->starts = ns;
        }
        out->starts[out->n++] = start;
    }
    closedir(d);
    if (out->n == 0) {
        if (want)
            return failf("no WAL segments of timeline %u in \"%s\"", want,
                         waldir);
        return failf("no WAL segments in \"%s\"", waldir);
    }
    out->timeline = best;
    qsort(out->starts, out->n, sizeof(uint64_t), cmp_u64);
    return CLI_EXIT_OK;
}

/* Reader position for showing records from `from`: the first record of the
 * segment holding it, so that `from` need not be a record boundary. */
static uint64_t reader_start(const struct seglist *sl, uint64_t from)
{
    if (from == 0 || from <= sl->starts[0] + WAL_SEG_DATA)
        return 0;
    size_t i = sl->n;
    while (i > 0 && sl->starts[i - 1] > from)
        i--;
    return i == 0 ? 0 : sl->starts[i - 1] + WAL_SEG_DATA;
}

/* ------------------------------------------------------------------ */
/* Reading a log that may be live                                       */
/* ------------------------------------------------------------------ */

/* The WAL reader re-reads a record once when a live writer was filling it
 * while it was read (wal/reader.c), so waldump needs no retry of its own. */
struct walscan {
    wal_reader *r;
};

static cairn_status ws_open(struct walscan *w, const char *waldir,
                            uint32_t timeline, const struct seglist *sl,
                            uint64_t start)
{
    (void)sl;
    memset(w, 0, sizeof(*w));
    return wal_reader_open(waldir, timeline, start, &w->r);
}

static cairn_status ws_next(struct walscan *w, struct wal_record *rec,
                            bool *end)
{
    return wal_reader_next(w->r, rec, end);
}

static void ws_close(struct walscan *w)
{
    wal_reader_close(w->r);
    w->r = NULL;
}

/* ------------------------------------------------------------------ */
/* Collection filter                                                    */
/* ------------------------------------------------------------------ */

struct collfilter {
    bool on;
    const char *name; /* NULL: selected by id */
    uint32_t *ids;
    size_t n, cap;
    uint64_t txn;     /* last transaction holding a matching record */
    bool txn_set;
};

static bool cf_has(const struct collfilter *cf, uint32_t id)
{
    for (size_t i = 0; i < cf->n; i++)
        if (cf->ids[i] == id)
            return true;
    return false;
}

static bool cf_add(struct collfilter *cf, uint32_t id)
{
    if (cf_has(cf, id))
        return true;
    if (cf->n == cf->cap) {
        size_t cap = cf->cap ? cf->cap * 2 : 4;
        uint32_t *ni = realloc(cf->ids, cap * sizeof(uint32_t));
        if (ni == NULL)
            return false;
        cf->ids = ni;
        cf->cap = cap;
    }
    cf->ids[cf->n++] = id;
    return true;
}

/* A CREATE_COLL record carrying cf->name adds its id. */
static cairn_status cf_learn(struct collfilter *cf, const struct wal_record *rec)
{
    if (cf->name == NULL || rec->type != WAL_REC_CREATE_COLL)
        return CAIRN_OK;
    struct wal_create_coll cc;
    cairn_status st = wal_dec_create_coll(rec, &cc);
    if (st != CAIRN_OK)
        return st;
    if (cc.name_len == strlen(cf->name) &&
        memcmp(cc.name, cf->name, cc.name_len) == 0 && !cf_add(cf, rec->coll_id))
        return CAIRN_ENOMEM;
    return CAIRN_OK;
}

/* Whether a record passes the filter. */
static bool cf_pass(struct collfilter *cf, const struct wal_record *rec)
{
    if (!cf->on)
        return true;
    switch (rec->type) {
    case WAL_REC_RESTORE_POINT:
        return true;
    case WAL_REC_COMMIT:
        return cf->txn_set && rec->txn_id == cf->txn;
    case WAL_REC_SWITCH:
        return false;
    default:
        if (cf_has(cf, rec->coll_id)) {
            cf->txn = rec->txn_id;
            cf->txn_set = true;
            return true;
        }
        return false;
    }
}

/* Scans from the oldest record until the name has an id and `until` is
 * reached (ids created before `until` must all be known). */
static int cf_resolve(struct collfilter *cf, const char *waldir,
                      const struct seglist *sl, uint64_t until)
{
    struct walscan ws;
    cairn_status st = ws_open(&ws, waldir, sl->timeline, sl, 0);
    if (st != CAIRN_OK) {
        ws_close(&ws);
        return report(st);
    }
    int rc = CLI_EXIT_OK;
    for (;;) {
        struct wal_record rec;
        bool end = false;
        st = ws_next(&ws, &rec, &end);
        if (st != CAIRN_OK) {
            rc = report(st);
            break;
        }
        if (end || (rec.lsn >= until && cf->n > 0))
            break;
        if ((st = cf_learn(cf, &rec)) != CAIRN_OK) {
            rc = report(st);
            break;
        }
    }
    ws_close(&ws);
    if (rc == CLI_EXIT_OK && cf->n == 0)
        rc = failf("no CREATE_COLL record for collection \"%s\" in the WAL of "
                   "timeline %u (it may sit in a removed segment); pass the "
                   "collection id instead ('cairn info' shows it)",
                   cf->name, sl->timeline);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Printing                                                             */
/* ------------------------------------------------------------------ */

static const char *metric_name(uint8_t m)
{
    switch (m) {
    case CAIRN_METRIC_L2: return "l2";
    case CAIRN_METRIC_COSINE: return "cosine";
    case CAIRN_METRIC_DOT: return "dot";
    }
    return "?";
}

static cairn_status print_record(const struct wal_record *rec, bool json)
{
    char lsn[CLI_LSN_LEN], t[CLI_TIME_LEN];
    const char *type = wal_rec_type_name(rec->type);
    cairn_status st = CAIRN_OK;
    cli_fmt_lsn(lsn, rec->lsn);
    if (json)
        printf("{\"lsn\":%llu,\"lsn_hex\":\"%s\",\"type\":\"%s\",\"txn\":%llu,"
               "\"coll\":%u,\"len\":%u",
               (unsigned long long)rec->lsn, lsn, type,
               (unsigned long long)rec->txn_id, rec->coll_id, rec->len);
    else
        printf("%s %-13s txn=%-8llu coll=%-5u len=%-7u", lsn, type,
               (unsigned long long)rec->txn_id, rec->coll_id, rec->len);

    switch (rec->type) {
    case WAL_REC_UPSERT: {
        struct wal_upsert u;
        if ((st = wal_dec_upsert(rec, &u)) != CAIRN_OK)
            break;
        if (json)
            printf(",\"id\":%llu,\"dim\":%u,\"payload_len\":%u",
                   (unsigned long long)u.id, u.dim, u.payload_len);
        else
            printf(" id=%llu dim=%u payload=%u", (unsigned long long)u.id, u.dim,
                   u.payload_len);
        break;
    }
    case WAL_REC_DELETE: {
        uint64_t id;
        if ((st = wal_dec_delete(rec, &id)) != CAIRN_OK)
            break;
        printf(json ? ",\"id\":%llu" : " id=%llu", (unsigned long long)id);
        break;
    }
    case WAL_REC_COMMIT: {
        struct wal_commit cm;
        if ((st = wal_dec_commit(rec, &cm)) != CAIRN_OK)
            break;
        cli_fmt_time_us(t, cm.time_us);
        if (json)
            printf(",\"time\":\"%s\",\"time_us\":%lld,\"records\":%u", t,
                   (long long)cm.time_us, cm.nrecords);
        else
            printf(" time=%s records=%u", t, cm.nrecords);
        break;
    }
    case WAL_REC_CREATE_COLL: {
        struct wal_create_coll cc;
        if ((st = wal_dec_create_coll(rec, &cc)) != CAIRN_OK)
            break;
        if (json) {
            fputs(",\"name\":", stdout);
            cli_json_str(stdout, cc.name, cc.name_len);
            printf(",\"dim\":%u,\"metric\":\"%s\"", cc.dim, metric_name(cc.metric));
        } else {
            fputs(" name=", stdout);
            cli_json_str(stdout, cc.name, cc.name_len);
            printf(" dim=%u metric=%s", cc.dim, metric_name(cc.metric));
        }
        break;
    }
    case WAL_REC_RESTORE_POINT: {
        struct wal_restore_point rp;
        if ((st = wal_dec_restore_point(rec, &rp)) != CAIRN_OK)
            break;
        cli_fmt_time_us(t, rp.time_us);
        if (json) {
            printf(",\"time\":\"%s\",\"time_us\":%lld,\"name\":", t,
                   (long long)rp.time_us);
            cli_json_str(stdout, rp.name, rp.name_len);
        } else {
            printf(" time=%s name=", t);
            cli_json_str(stdout, rp.name, rp.name_len);
        }
        break;
    }
    default:
        break;
    }
    fputs(json ? "}\n" : "\n", stdout);
    return st;
}

/* ------------------------------------------------------------------ */
/* waldump                                                              */
/* ------------------------------------------------------------------ */

static int cmd_waldump(int argc, char **argv)
{
    static const struct option lo[] = {
        {"from", required_argument, NULL, 'f'},
        {"to", required_argument, NULL, 't'},
        {"collection", required_argument, NULL, 'c'},
        {"timeline", required_argument, NULL, 'T'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    uint64_t from = 0, to = UINT64_MAX;
    uint32_t timeline = 0;
    bool json = false;
    const char *coll = NULL;
    int ch;
    optind = 0;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":h", lo, NULL)) != -1) {
        switch (ch) {
        case 'f':
            if (!cli_parse_lsn(optarg, &from))
                return usage_error("--from: '%s' is not an LSN", optarg);
            break;
        case 't':
            if (!cli_parse_lsn(optarg, &to))
                return usage_error("--to: '%s' is not an LSN", optarg);
            break;
        case 'c': coll = optarg; break;
        case 'T':
            if (!cli_parse_u32_range(optarg, 1, UINT32_MAX, &timeline))
                return usage_error("--timeline must be an integer >= 1");
            break;
        case 'j': json = true; break;
        case 'h':
            fputs(waldump_usage, stdout);
            fputs(waldump_help, stdout);
            return CLI_EXIT_OK;
        case ':': return usage_error("option '%s' needs a value", argv[optind - 1]);
        default: return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind != 1)
        return usage_error("expected DB");
    if (from >= to)
        return usage_error("--from must be below --to");

    size_t plen = strlen(argv[optind]);
    char *waldir = malloc(plen + 5);
    if (waldir == NULL)
        return failf("out of memory");
    snprintf(waldir, plen + 5, "%s/wal", argv[optind]);

    struct collfilter cf = {0};
    struct seglist sl;
    struct walscan ws = {0};
    int rc = list_segments(waldir, timeline, &sl);
    if (rc != CLI_EXIT_OK)
        goto out;
    if (coll != NULL) {
        cf.on = true;
        uint32_t id;
        if (cli_parse_u32_range(coll, 0, UINT32_MAX, &id)) {
            if (!cf_add(&cf, id)) {
                rc = failf("out of memory");
                goto out;
            }
        } else {
            cf.name = coll;
            if ((rc = cf_resolve(&cf, waldir, &sl, from)) != CLI_EXIT_OK)
                goto out;
        }
    }

    uint64_t start = reader_start(&sl, from);
    cairn_status st = ws_open(&ws, waldir, sl.timeline, &sl, start);
    if (st != CAIRN_OK) {
        rc = report(st);
        goto out;
    }
    uint64_t shown = 0, read = 0, first = 0, last_end = 0;
    bool end = false, stopped_at_to = false;
    for (;;) {
        struct wal_record rec;
        st = ws_next(&ws, &rec, &end);
        if (st != CAIRN_OK) {
            fflush(stdout);
            rc = report(st);
            break;
        }
        if (end)
            break;
        if (rec.lsn >= to) {
            stopped_at_to = true;
            last_end = rec.lsn;
            break;
        }
        read++;
        last_end = rec.lsn + ((rec.len + WAL_REC_ALIGN - 1) & ~(uint64_t)(WAL_REC_ALIGN - 1));
        if ((st = cf_learn(&cf, &rec)) != CAIRN_OK) {
            fflush(stdout);
            rc = report(st);
            break;
        }
        /* The filter sees every record, so that a COMMIT after `from`
         * is matched to its transaction's records before `from`. */
        bool pass = cf_pass(&cf, &rec);
        if (rec.lsn < from || !pass)
            continue;
        if (shown++ == 0)
            first = rec.lsn;
        if ((st = print_record(&rec, json)) != CAIRN_OK) {
            fflush(stdout);
            rc = report(st);
            break;
        }
    }
    if (fflush(stdout) != 0 && rc == CLI_EXIT_OK)
        rc = failf("could not write the output: %s", strerror(errno));

    char a[CLI_LSN_LEN], b[CLI_LSN_LEN];
    const struct wal_end *we = end ? wal_reader_end(ws.r) : NULL;
    uint64_t end_lsn = we ? we->end_lsn : last_end;
    fprintf(stderr, "pitrctl: timeline %u: %llu records shown (%llu read)",
            sl.timeline, (unsigned long long)shown, (unsigned long long)read);
    if (shown)
        fprintf(stderr, ", first %s", cli_fmt_lsn(a, first));
    if (stopped_at_to)
        fprintf(stderr, "; stopped by --to at %s\n", cli_fmt_lsn(b, end_lsn));
    else if (we)
        fprintf(stderr, "; end LSN %s (%s)\n", cli_fmt_lsn(b, end_lsn),
                we->torn ? "torn tail" : "clean end of log");
    else
        fprintf(stderr, "; stopped by an error after %s\n",
                cli_fmt_lsn(b, end_lsn));
    if (we && we->torn)
        fprintf(stderr, "pitrctl: torn tail at %s: segment \"%s\" offset %llu, "
                        "%llu garbage bytes, %u later segment(s) holding data\n",
                cli_fmt_lsn(a, we->end_lsn), we->seg_path,
                (unsigned long long)we->seg_offset,
                (unsigned long long)we->garbage_bytes, we->segments_after);
out:
    ws_close(&ws);
    free(sl.starts);
    free(cf.ids);
    free(waldir);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        main_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        static const struct {
            const char *name, *usage, *help;
        } cmds[] = {{"archive", pitr_archive_usage, pitr_archive_help},
                    {"backup", pitr_backup_usage, pitr_backup_help},
                    {"list", pitr_list_usage, pitr_list_help},
                    {"restore", pitr_restore_usage, pitr_restore_help},
                    {"verify", pitr_verify_usage, pitr_verify_help},
                    {"expire", pitr_expire_usage, pitr_expire_help}};
        const char *which = argc > 2 && strcmp(argv[1], "help") == 0 ? argv[2] : "";
        bool shown = false;
        for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
            if (!strcmp(which, cmds[i].name)) {
                fputs(cmds[i].usage, stdout);
                fputs(cmds[i].help, stdout);
                shown = true;
            }
        if (shown) {
        } else if (!strcmp(which, "waldump")) {
            fputs(waldump_usage, stdout);
            fputs(waldump_help, stdout);
        } else {
            main_usage(stdout);
        }
        return CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("pitrctl %s\n", cairn_version());
        return CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "waldump") == 0)
        return cmd_waldump(argc - 1, argv + 1);
    if (strcmp(argv[1], "archive") == 0)
        return pitr_cmd_archive(argc - 1, argv + 1);
    if (strcmp(argv[1], "backup") == 0)
        return pitr_cmd_backup(argc - 1, argv + 1);
    if (strcmp(argv[1], "list") == 0)
        return pitr_cmd_list(argc - 1, argv + 1);
    if (strcmp(argv[1], "restore") == 0)
        return pitr_cmd_restore(argc - 1, argv + 1);
    if (strcmp(argv[1], "verify") == 0)
        return pitr_cmd_verify(argc - 1, argv + 1);
    if (strcmp(argv[1], "expire") == 0)
        return pitr_cmd_expire(argc - 1, argv + 1);
    fprintf(stderr, "pitrctl: unknown command '%s'\n", argv[1]);
    main_usage(stderr);
    return CLI_EXIT_USAGE;
}
