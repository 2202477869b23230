/*
 * pitrctl_pitr.c — the pitrctl commands over a backup repository:
 * archive, backup, list, restore (pitr/pitr.h does the work; this file
 * parses arguments and prints). Operator's guide: docs/pitr.md.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cairn.h"
#include "cliutil.h"
#include "pitr/pitr.h"
#include "pitrctl_cmds.h"

static int perr(const char *cmd, cairn_status st)
{
    const char *m = cairn_last_error();
    fprintf(stderr, "pitrctl %s: %s\n", cmd,
            m && *m ? m : cairn_strerror(st));
    return CLI_EXIT_FAIL;
}

static int usage(const char *cmd, const char *use, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "pitrctl %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n%sTry 'pitrctl %s --help'.\n", use, cmd);
    return CLI_EXIT_USAGE;
}

/* Options every repository command takes. */
struct repo_args {
    const char *key_file;
    int level, wal_level;
};

struct cmd_info {
    const char *name, *usage, *help;
};

/* The options every repository command shares (--key-file, --level,
 * --wal-level, --help) and an unknown or incomplete one. -1: handled (or
 * not one of them), parsing goes on; otherwise the exit status to return
 * now. */
static int common_opt(int ch, const struct cmd_info *c, struct repo_args *ra, char **argv)
{
    uint32_t lvl;
    switch (ch) {
    case 'k':
        ra->key_file = optarg;
        return -1;
    case 'l':
        if (!cli_parse_u32_range(optarg, 1, 19, &lvl))
            return usage(c->name, c->usage, "--level: '%s' is not 1..19", optarg);
        ra->level = (int)lvl;
        return -1;
    case 'W':
        if (!cli_parse_wal_level(optarg, &ra->wal_level))
            return usage(c->name, c->usage, "--wal-level: '%s' is not -7..-1 or 1..19", optarg);
        return -1;
    case 'h':
        fputs(c->usage, stdout);
        fputs(c->help, stdout);
        return CLI_EXIT_OK;
    default:
        return usage(c->name, c->usage, "unknown or incomplete option '%s'", argv[optind - 1]);
    }
}

/* How a command opens its repository: a writer that may create it
 * (backup, archive), one that may delete (expire), or a reader that reads
 * or adds a few files (list, verify, restore: temporaries of cut puts are
 * left for the next writer, so its open walks no file). */
enum open_how { OPEN_CREATE, OPEN_WRITE, OPEN_READ };

static cairn_status open_repo(const char *dir, const struct repo_args *a, enum open_how how,
                              repo **r)
{
    struct repo_open_opts o = {.create = how == OPEN_CREATE, .no_sweep = how == OPEN_READ,
                               .level = a->level, .wal_level = a->wal_level,
                               .key_file = a->key_file};
    return repo_open(dir, &o, r);
}

/* ---- archive ------------------------------------------------------------------- */

const char pitr_archive_usage[] =
    "usage: pitrctl archive DB REPO [--key-file FILE] [--level N] [--wal-level N]\n"
    "                       [--json]\n";
const char pitr_archive_help[] =
    "\nCopies every complete WAL segment of DB that REPO lacks into REPO\n"
    "(compressed, with its SHA-256 and a summary of its commits and restore\n"
    "points), and the database's timeline history files. Creates REPO on\n"
    "first use. Safe to run while DB is open in another process, and as often\n"
    "as you like (cron): a segment already archived is skipped. A segment is\n"
    "archived once it is complete and proven durable (a later segment's\n"
    "records say so, or the database is closed).\n\n"
    "  --key-file FILE  AES-256 key (64 hex digits): encrypts a new repository,\n"
    "                   and is required by an encrypted one\n"
    "  --level N        zstd level (1..19) for new page packs and files\n"
    "                   (default: the repository's, 3 when created)\n"
    "  --wal-level N    zstd level (-7..-1 fast, or 1..19) for new archived WAL\n"
    "                   segments (default: the repository's, -1 when created:\n"
    "                   WAL of vectors compresses little, and restores read it\n"
    "                   at decompression speed)\n"
    "  --json           print the result as one JSON object\n";

int pitr_cmd_archive(int argc, char **argv)
{
    static const struct option lo[] = {{"key-file", required_argument, NULL, 'k'},
                                       {"level", required_argument, NULL, 'l'},
                                       {"wal-level", required_argument, NULL, 'W'},
                                       {"json", no_argument, NULL, 'j'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
    static const struct cmd_info cmd = {"archive", pitr_archive_usage, pitr_archive_help};
    struct repo_args ra = {0};
    bool json = false;
    int ch;
    optind = 0;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":h", lo, NULL)) != -1) {
        switch (ch) {
        case 'j':
            json = true;
            break;
        default: {
            int rc = common_opt(ch, &cmd, &ra, argv);
            if (rc >= 0)
                return rc;
            break;
        }
        }
    }
    if (argc - optind != 2)
        return usage("archive", pitr_archive_usage, "expected DB and REPO");
    repo *r = NULL;
    cairn_status st = open_repo(argv[optind + 1], &ra, OPEN_CREATE, &r);
    if (st)
        return perr("archive", st);
    struct pitr_archive_result res;
    st = pitr_archive(argv[optind], r, 0, &res);
    repo_close(r);
    if (st)
        return perr("archive", st);
    char lsn[CLI_LSN_LEN];
    if (json)
        printf("{\"timeline\":%u,\"archived\":%u,\"already\":%u,\"bytes\":%" PRIu64
               ",\"stored\":%" PRIu64 ",\"archived_to\":\"%s\",\"histories\":%u,"
               "\"waiting\":%s}\n",
               res.timeline, res.archived, res.already, res.bytes_in, res.bytes_stored,
               cli_fmt_lsn(lsn, res.archived_to), res.histories, res.waiting ? "true" : "false");
    else
        printf("timeline %u: %u segments archived (%" PRIu64 " bytes stored as %" PRIu64
               "), %u already there; the archive reaches LSN %s%s\n",
               res.timeline, res.archived, res.bytes_in, res.bytes_stored, res.already,
               cli_fmt_lsn(lsn, res.archived_to),
               res.waiting ? "; the next complete segment waits for proof that it is durable"
                           : "");
    return CLI_EXIT_OK;
}

/* ---- backup ----------------------------------------------------------------------- */

const char pitr_backup_usage[] =
    "usage: pitrctl backup DB REPO [--incremental] [--parent ID] [--key-file FILE]\n"
    "                      [--level N] [--wal-level N] [--json]\n";
const char pitr_backup_help[] =
    "\nBacks up DB's newest checkpoint into REPO while writers keep committing:\n"
    "pins the checkpoint, stores its pages in content-addressed packs (a pack\n"
    "another backup already stored is shared), then publishes the manifest.\n"
    "Creates REPO on first use. Archive the WAL too (pitrctl archive), or\n"
    "the backup restores only to its own checkpoint.\n\n"
    "  --incremental    store only the pages changed since the parent\n"
    "  --parent ID      the parent (default: the newest backup of DB's timeline)\n"
    "  --key-file FILE  AES-256 key (64 hex digits), see archive --help\n"
    "  --level N        zstd level (1..19) for new page packs and files\n"
    "                   (default: the repository's, 3 when created)\n"
    "  --wal-level N    zstd level (-7..-1 or 1..19) of archived WAL segments,\n"
    "                   recorded in a repository this creates (default -1;\n"
    "                   see archive --help)\n"
    "  --json           print the result as one JSON object\n";

static int bk_progress(void *ctx, uint64_t done, uint64_t total)
{
    struct cli_progress *p = ctx;
    cli_progress_update(p, done / 4096, total / 4096, done, false);
    return 0;
}

int pitr_cmd_backup(int argc, char **argv)
{
    static const struct option lo[] = {{"incremental", no_argument, NULL, 'i'},
                                       {"parent", required_argument, NULL, 'p'},
                                       {"key-file", required_argument, NULL, 'k'},
                                       {"level", required_argument, NULL, 'l'},
                                       {"wal-level", required_argument, NULL, 'W'},
                                       {"json", no_argument, NULL, 'j'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
    static const struct cmd_info cmd = {"backup", pitr_backup_usage, pitr_backup_help};
    struct repo_args ra = {0};
    struct pitr_backup_opts bo = {0};
    bool json = false;
    int ch;
    optind = 0;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":h", lo, NULL)) != -1) {
        switch (ch) {
        case 'i':
            bo.incremental = true;
            break;
        case 'p':
            bo.parent = optarg;
            bo.incremental = true;
            break;
        case 'j':
            json = true;
            break;
        default: {
            int rc = common_opt(ch, &cmd, &ra, argv);
            if (rc >= 0)
                return rc;
            break;
        }
        }
    }
    if (argc - optind != 2)
        return usage("backup", pitr_backup_usage, "expected DB and REPO");
    repo *r = NULL;
    cairn_status st = open_repo(argv[optind + 1], &ra, OPEN_CREATE, &r);
    if (st)
        return perr("backup", st);
    struct cli_progress prog;
    cli_progress_init(&prog);
    if (json)
        prog.enabled = false;
    bo.progress = bk_progress;
    bo.progress_ctx = &prog;
    struct pitr_backup_result res;
    st = pitr_backup(argv[optind], r, &bo, &res);
    cli_progress_clear(&prog);
    repo_close(r);
    if (st)
        return perr("backup", st);
    char lsn[CLI_LSN_LEN], tb[CLI_TIME_LEN];
    if (json) {
        printf("{\"id\":\"%s\",\"type\":\"%s\",\"parent\":", res.id,
               res.parent[0] ? "incr" : "full");
        if (res.parent[0])
            printf("\"%s\"", res.parent);
        else
            fputs("null", stdout);
        printf(",\"timeline\":%u,\"checkpoint\":%" PRIu64 ",\"redo_lsn\":\"%s\",\"time\":\"%s\","
               "\"last_txn_id\":%" PRIu64 ",\"collections\":%u,\"points\":%" PRIu64
               ",\"pages\":%" PRIu64 ",\"pages_new\":%" PRIu64 ",\"bytes\":%" PRIu64
               ",\"bytes_new\":%" PRIu64 ",\"stored\":%" PRIu64 ",\"packs\":%" PRIu64
               ",\"packs_new\":%" PRIu64 ",\"seconds\":%.3f}\n",
               res.timeline, res.generation, cli_fmt_lsn(lsn, res.redo_lsn),
               cli_fmt_time_us(tb, res.time_us), res.last_txn_id, res.collections, res.points,
               res.pages, res.pages_new, res.bytes_raw, res.bytes_new_raw, res.bytes_stored,
               res.blobs, res.blobs_new, (double)res.duration_us / 1e6);
    } else {
        char b1[32], b2[32];
        printf("backup %s (%s%s%s): checkpoint %" PRIu64 " of timeline %u at LSN %s (%s), "
               "%u collections, %" PRIu64 " points; %" PRIu64 " pages, %" PRIu64 " new "
               "(%s raw stored as %s) in %.2f s\n",
               res.id, res.parent[0] ? "incremental on " : "full", res.parent, "",
               res.generation, res.timeline, cli_fmt_lsn(lsn, res.redo_lsn),
               cli_fmt_time_us(tb, res.time_us), res.collections, res.points, res.pages,
               res.pages_new, cli_fmt_bytes(b1, sizeof b1, res.bytes_new_raw),
               cli_fmt_bytes(b2, sizeof b2, res.bytes_stored), (double)res.duration_us / 1e6);
    }
    return CLI_EXIT_OK;
}

/* ---- list ---------------------------------------------------------------------------- */

const char pitr_list_usage[] = "usage: pitrctl list REPO [--key-file FILE] [--json]\n";
const char pitr_list_help[] =
    "\nShows the backups of REPO (id, type, parent, timeline, checkpoint LSN\n"
    "and time, last transaction, collections and points, size), the archived\n"
    "WAL of each timeline with any gap (a missing LSN range), and the window\n"
    "a restore can reach on each timeline: from the earliest backup on it to\n"
    "the end of its archived WAL, as time, LSN and transaction.\n\n"
    "  --json   one JSON object\n"
    "  --key-file FILE  the key of an encrypted repository (see archive --help)\n";

struct tl_info {
    uint32_t tl;
    uint64_t *starts;
    size_t n;
    uint64_t end_lsn;
    struct repo_commit_ref last;
    bool have_last;
    uint64_t gaps;
};

int pitr_cmd_list(int argc, char **argv)
{
    static const struct option lo[] = {{"key-file", required_argument, NULL, 'k'},
                                       {"json", no_argument, NULL, 'j'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
    static const struct cmd_info cmd = {"list", pitr_list_usage, pitr_list_help};
    struct repo_args ra = {0};
    bool json = false;
    int ch;
    optind = 0;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":h", lo, NULL)) != -1) {
        switch (ch) {
        case 'j':
            json = true;
            break;
        default: {
            int rc = common_opt(ch, &cmd, &ra, argv);
            if (rc >= 0)
                return rc;
            break;
        }
        }
    }
    if (argc - optind != 1)
        return usage("list", pitr_list_usage, "expected REPO");
    repo *r = NULL;
    cairn_status st = open_repo(argv[optind], &ra, OPEN_READ, &r);
    if (st)
        return perr("list", st);
    char **ids = NULL;
    size_t nids = 0;
    uint32_t *tls = NULL;
    size_t ntl = 0;
    struct pitr_manifest *m = NULL;
    struct tl_info *ti = NULL;
    st = repo_backup_ids(r, &ids, &nids);
    if (!st) {
        m = calloc(nids ? nids : 1, sizeof *m);
        if (!m)
            st = CAIRN_ENOMEM;
    }
    for (size_t i = 0; !st && i < nids; i++)
        st = pitr_manifest_load(r, ids[i], &m[i]);
    if (!st)
        st = repo_timelines(r, &tls, &ntl);
    /* a backup's timeline is shown (with what it can restore) also when
     * none of its WAL is archived yet: repo_timelines lists only the
     * timelines with archived WAL or a history file */
    for (size_t i = 0; !st && i < nids; i++) {
        size_t at = 0;
        while (at < ntl && tls[at] < m[i].timeline)
            at++;
        if (at < ntl && tls[at] == m[i].timeline)
            continue;
        uint32_t *nt = realloc(tls, (ntl + 1) * sizeof *tls);
        if (!nt) {
            st = CAIRN_ENOMEM;
            break;
        }
        tls = nt;
        memmove(tls + at + 1, tls + at, (ntl - at) * sizeof *tls);
        tls[at] = m[i].timeline;
        ntl++;
    }
    uint64_t seg = r->seg_shift ? (uint64_t)1 << r->seg_shift : 0;
    if (!st) {
        ti = calloc(ntl ? ntl : 1, sizeof *ti);
        if (!ti)
            st = CAIRN_ENOMEM;
    }
    for (size_t t = 0; !st && t < ntl; t++) {
        ti[t].tl = tls[t];
        st = repo_wal_list(r, tls[t], &ti[t].starts, &ti[t].n);
        for (size_t i = 1; !st && i < ti[t].n; i++)
            if (ti[t].starts[i] != ti[t].starts[i - 1] + seg)
                ti[t].gaps++;
        if (!st && ti[t].n) {
            /* the window's end: the last archived segment's summary (and
             * the last one that committed anything) */
            for (size_t i = ti[t].n; !st && i-- > 0 && !ti[t].have_last;) {
                struct repo_seg_summary s;
                st = repo_seg_summary_get(r, tls[t], ti[t].starts[i], &s);
                if (!st && i == ti[t].n - 1)
                    ti[t].end_lsn = s.end_lsn;
                if (!st && s.commits) {
                    ti[t].last = s.last;
                    ti[t].have_last = true;
                }
                if (!st)
                    repo_seg_summary_free(&s);
            }
        }
    }
    if (st) {
        int rc = perr("list", st);
        goto out_err;
    out_err:
        for (size_t i = 0; m && i < nids; i++)
            pitr_manifest_free(&m[i]);
        free(m);
        for (size_t t = 0; ti && t < ntl; t++)
            free(ti[t].starts);
        free(ti);
        free(tls);
        repo_strv_free(ids, nids);
        repo_close(r);
        return rc;
    }
    char l1[CLI_LSN_LEN], l2[CLI_LSN_LEN], t1[CLI_TIME_LEN], t2[CLI_TIME_LEN];
    if (json) {
        printf("{\"repository\":");
        cli_json_str(stdout, argv[optind], strlen(argv[optind]));
        printf(",\"db_id\":\"%016" PRIx64 "\",\"encrypted\":%s,\"backups\":[", r->db_id,
               r->encrypted ? "true" : "false");
        for (size_t i = 0; i < nids; i++) {
            printf("%s{\"id\":\"%s\",\"type\":\"%s\",\"parent\":", i ? "," : "", m[i].id,
                   m[i].incremental ? "incr" : "full");
            if (m[i].incremental)
                printf("\"%s\"", m[i].parent);
            else
                fputs("null", stdout);
            uint64_t pts = 0;
            for (size_t c = 0; c < m[i].ncolls; c++)
                pts += m[i].colls[c].points;
            printf(",\"timeline\":%u,\"checkpoint\":%" PRIu64 ",\"redo_lsn\":\"%s\",\"time\":\"%s\","
                   "\"last_commit_time\":\"%s\",\"last_txn_id\":%" PRIu64 ",\"collections\":%zu,"
                   "\"points\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"stored\":%" PRIu64 "}",
                   m[i].timeline, m[i].generation, cli_fmt_lsn(l1, m[i].redo_lsn),
                   cli_fmt_time_us(t1, m[i].time_us), cli_fmt_time_us(t2, m[i].last_commit_us),
                   m[i].last_txn_id, m[i].ncolls, pts, m[i].bytes_raw, m[i].bytes_stored);
        }
        printf("],\"timelines\":[");
        for (size_t t = 0; t < ntl; t++) {
            const struct pitr_manifest *first = NULL;
            for (size_t i = 0; i < nids && !first; i++)
                if (m[i].timeline == ti[t].tl)
                    first = &m[i];
            printf("%s{\"timeline\":%u,\"segments\":%zu,\"gaps\":%" PRIu64, t ? "," : "", ti[t].tl,
                   ti[t].n, ti[t].gaps);
            if (ti[t].n)
                printf(",\"wal_from\":\"%s\",\"wal_to\":\"%s\"", cli_fmt_lsn(l1, ti[t].starts[0]),
                       cli_fmt_lsn(l2, ti[t].end_lsn));
            if (first)
                printf(",\"earliest\":{\"backup\":\"%s\",\"lsn\":\"%s\",\"time\":\"%s\",\"txn\":%" PRIu64 "}",
                       first->id, cli_fmt_lsn(l1, first->redo_lsn),
                       cli_fmt_time_us(t1, first->last_commit_us), first->last_txn_id);
            if (ti[t].have_last)
                printf(",\"latest\":{\"lsn\":\"%s\",\"time\":\"%s\",\"txn\":%" PRIu64 "}",
                       cli_fmt_lsn(l1, ti[t].last.lsn), cli_fmt_time_us(t1, ti[t].last.time_us),
                       ti[t].last.txn);
            printf("}");
        }
        printf("]}\n");
    } else {
        printf("repository %s: database %016" PRIx64 "%s, %zu backups, %zu timelines\n",
               argv[optind], r->db_id, r->encrypted ? ", encrypted" : "", nids, ntl);
        for (size_t i = 0; i < nids; i++) {
            uint64_t pts = 0;
            for (size_t c = 0; c < m[i].ncolls; c++)
                pts += m[i].colls[c].points;
            char b1[32];
            printf("  backup %s  %-4s tl %u  ckpt %" PRIu64 "  LSN %s  %s  txn %" PRIu64
                   "  %zu colls %" PRIu64 " points  %s%s%s\n",
                   m[i].id, m[i].incremental ? "incr" : "full", m[i].timeline, m[i].generation,
                   cli_fmt_lsn(l1, m[i].redo_lsn), cli_fmt_time_us(t1, m[i].last_commit_us),
                   m[i].last_txn_id, m[i].ncolls, pts,
                   cli_fmt_bytes(b1, sizeof b1, m[i].bytes_stored),
                   m[i].incremental ? "  parent " : "", m[i].incremental ? m[i].parent : "");
        }
        for (size_t t = 0; t < ntl; t++) {
            printf("  timeline %u: %zu WAL segments archived", ti[t].tl, ti[t].n);
            if (ti[t].n)
                printf(", LSN %s .. %s", cli_fmt_lsn(l1, ti[t].starts[0]),
                       cli_fmt_lsn(l2, ti[t].end_lsn));
            if (ti[t].gaps)
                printf(", %" PRIu64 " GAPS", ti[t].gaps);
            printf("\n");
            for (size_t i = 1; i < ti[t].n; i++)
                if (ti[t].starts[i] != ti[t].starts[i - 1] + seg)
                    printf("    gap: LSN %s .. %s is not archived\n",
                           cli_fmt_lsn(l1, ti[t].starts[i - 1] + seg),
                           cli_fmt_lsn(l2, ti[t].starts[i]));
            const struct pitr_manifest *first = NULL;
            for (size_t i = 0; i < nids && !first; i++)
                if (m[i].timeline == ti[t].tl)
                    first = &m[i];
            if (first && (!ti[t].have_last || ti[t].last.end <= first->redo_lsn))
                printf("    recoverable: the state of backup %s only (LSN %s, txn %" PRIu64
                       "): no commit after it is archived yet\n",
                       first->id, cli_fmt_lsn(l1, first->redo_lsn), first->last_txn_id);
            else if (first && ti[t].have_last)
                printf("    recoverable: %s (LSN %s, txn %" PRIu64 ") .. %s (LSN %s, txn %" PRIu64
                       ")\n",
                       cli_fmt_time_us(t1, first->last_commit_us), cli_fmt_lsn(l1, first->redo_lsn),
                       first->last_txn_id, cli_fmt_time_us(t2, ti[t].last.time_us),
                       cli_fmt_lsn(l2, ti[t].last.end), ti[t].last.txn);
        }
    }
    for (size_t i = 0; i < nids; i++)
        pitr_manifest_free(&m[i]);
    free(m);
    for (size_t t = 0; t < ntl; t++)
        free(ti[t].starts);
    free(ti);
    free(tls);
    repo_strv_free(ids, nids);
    repo_close(r);
    return CLI_EXIT_OK;
}

/* ---- restore ------------------------------------------------------------------------ */

const char pitr_restore_usage[] =
    "usage: pitrctl restore REPO TARGET_DIR (--target-time T | --target-lsn L |\n"
    "                       --target-txn X | --target-name NAME | --latest |\n"
    "                       --backup ID) [--inclusive | --exclusive]\n"
    "                       [--timeline N|latest] [--collection NAME]...\n"
    "                       [--into-existing] [--jobs N] [--dry-run] [--json]\n"
    "                       [--key-file FILE]\n";
const char pitr_restore_help[] =
    "\nRebuilds the database as it was at the target into TARGET_DIR (which\n"
    "must not exist): the newest backup at or before the target, then the\n"
    "archived WAL replayed up to it. Prints the plan first and refuses,\n"
    "before writing anything, a target the repository cannot reach (before\n"
    "the earliest backup, past the end of the archive, a gap in it). The\n"
    "restored database starts a new timeline.\n\n"
    "  --target-time T   commits up to time T (UTC, 2026-11-21T10:15:00[.us]Z,\n"
    "                    or @microseconds since the epoch)\n"
    "  --target-lsn L    commits whose COMMIT record is at or before LSN L\n"
    "  --target-txn X    up to and including transaction X's commit\n"
    "  --target-name N   up to the restore point N (cairn_restore_point)\n"
    "  --latest          everything archived\n"
    "  --backup ID       the state of backup ID itself (no WAL replayed past it);\n"
    "                    with another target: use ID as the base\n"
    "  --inclusive       stop after the target (the default)\n"
    "  --exclusive       stop before the target instead of after it\n"
    "  --timeline N      follow timeline N (default: the newest timeline with\n"
    "                    archived WAL or a backup)\n"
    "  --collection NAME restore only the collection NAME (repeatable, at most\n"
    "                    64): the collections of these names at the target, as\n"
    "                    they were then; the others are absent from TARGET_DIR\n"
    "                    (dropped as the first transactions of its new timeline).\n"
    "                    A name with no collection at the target is refused\n"
    "                    after the replay, leaving nothing behind\n"
    "  --into-existing   with --collection: TARGET_DIR is an existing database\n"
    "                    of this repository (closed); those collections in it\n"
    "                    are replaced by their state at the target (added where\n"
    "                    it has none), the others stay as they are, and it goes\n"
    "                    on on a new timeline. Built as a copy in\n"
    "                    TARGET_DIR.replace and swapped in atomically: a failure\n"
    "                    leaves the database as it was\n"
    "  --jobs N          parallel page writers, WAL fetchers and replay workers\n"
    "  --dry-run         print the plan only\n"
    "  --json            the plan and the result as JSON lines, and a progress\n"
    "                    event each second\n"
    "  --key-file FILE   the key of an encrypted repository (see archive --help)\n";

struct rprog {
    bool json;
    struct cli_progress bar;
    double last_json;
    int phase;
};

static void restore_progress(void *ctx, int phase, uint64_t done, uint64_t total, uint64_t lsn,
                             int64_t time_us)
{
    struct rprog *p = ctx;
    if (p->json) {
        double now = cli_now();
        if (now - p->last_json < 1.0 && phase == p->phase)
            return;
        p->last_json = now;
        p->phase = phase;
        char l[CLI_LSN_LEN], t[CLI_TIME_LEN];
        static const char *const names[] = {"pages", "wal", "replay"};
        if (phase == 2)
            printf("{\"event\":\"progress\",\"phase\":\"replay\",\"records\":%" PRIu64
                   ",\"wal_bytes\":%" PRIu64 ",\"lsn\":\"%s\",\"time\":\"%s\"}\n",
                   done, total, cli_fmt_lsn(l, lsn), cli_fmt_time_us(t, time_us));
        else
            printf("{\"event\":\"progress\",\"phase\":\"%s\",\"bytes\":%" PRIu64 ",\"total\":%" PRIu64
                   "}\n", names[phase], done, total);
        fflush(stdout);
        return;
    }
    if (phase == 1)
        return; /* the WAL is fetched beside the pages: the bar follows the pages */
    cli_progress_update(&p->bar, phase == 2 ? done : done / 4096, phase == 2 ? 0 : total / 4096,
                        phase == 2 ? total : done, false);
}

static void print_plan(const struct pitr_plan *pl, const struct pitr_restore_opts *o, bool json,
                       bool dry, uint32_t old_tl)
{
    char l1[CLI_LSN_LEN], l2[CLI_LSN_LEN], b1[32], b2[32];
    if (json) {
        printf("{\"event\":\"plan\",\"dry_run\":%s,\"base\":\"%s\",\"chain\":[", dry ? "true" : "false",
               pl->base);
        for (size_t i = 0; i < pl->nchain; i++)
            printf("%s\"%s\"", i ? "," : "", pl->chain[i]);
        printf("],\"base_timeline\":%u,\"target_timeline\":%u,\"new_timeline\":%u,"
               "\"base_lsn\":\"%s\",\"stop_lsn\":%s%s%s,\"pages\":%" PRIu64 ",\"page_bytes\":%" PRIu64
               ",\"segments\":%zu,\"wal_bytes\":%" PRIu64 ",\"estimated_seconds\":%.1f,"
               "\"collections\":",
               pl->base_timeline, pl->target_timeline, pl->new_timeline,
               cli_fmt_lsn(l1, pl->base_redo), pl->stop_lsn == UINT64_MAX ? "" : "\"",
               pl->stop_lsn == UINT64_MAX ? "null" : cli_fmt_lsn(l2, pl->stop_lsn),
               pl->stop_lsn == UINT64_MAX ? "" : "\"", pl->pages, pl->page_bytes, pl->nsegs,
               pl->wal_bytes, pl->est_seconds);
        /* null: every collection */
        if (!o->ncollections)
            fputs("null", stdout);
        for (size_t i = 0; i < o->ncollections; i++) {
            fputs(i ? "," : "[", stdout);
            cli_json_str(stdout, o->collections[i], strlen(o->collections[i]));
        }
        fputs(o->ncollections ? "]" : "", stdout);
        if (o->into_existing)
            printf(",\"into_existing\":true,\"old_timeline\":%u", old_tl);
        puts("}");
        fflush(stdout);
        return;
    }
    printf("plan%s:\n  base     %s (timeline %u, LSN %s)", dry ? " (dry run)" : "", pl->base,
           pl->base_timeline, cli_fmt_lsn(l1, pl->base_redo));
    if (pl->nchain > 1) {
        printf(", chain");
        for (size_t i = 0; i < pl->nchain; i++)
            printf(" %s%s", pl->chain[i], i + 1 < pl->nchain ? " <-" : "");
    }
    printf("\n  pages    %" PRIu64 " (%s)\n", pl->pages, cli_fmt_bytes(b1, sizeof b1, pl->page_bytes));
    printf("  WAL      %zu segments (%s)", pl->nsegs, cli_fmt_bytes(b2, sizeof b2, pl->wal_bytes));
    for (size_t i = 0; i < pl->nhops; i++)
        printf("%s timeline %u from %s", i ? "," : ":", pl->hops[i].timeline,
               cli_fmt_lsn(l1, pl->hops[i].start_lsn));
    printf("\n  stop     %s\n", pl->stop_lsn == UINT64_MAX ? "at the end of the archive"
                                                           : cli_fmt_lsn(l2, pl->stop_lsn));
    if (o->ncollections) {
        printf("  only    ");
        for (size_t i = 0; i < o->ncollections; i++)
            printf(" \"%s\"%s", o->collections[i], i + 1 < o->ncollections ? "," : "");
        printf(o->into_existing ? " (replaced in the existing database, whose other "
                                  "collections stay; it leaves timeline %u)\n"
                                : " (the other collections are absent)\n", old_tl);
    }
    printf("  new timeline %u, estimated %.1f s\n", pl->new_timeline, pl->est_seconds);
    fflush(stdout);
}

int pitr_cmd_restore(int argc, char **argv)
{
    static const struct option lo[] = {{"target-time", required_argument, NULL, 'T'},
                                       {"target-lsn", required_argument, NULL, 'L'},
                                       {"target-txn", required_argument, NULL, 'X'},
                                       {"target-name", required_argument, NULL, 'N'},
                                       {"latest", no_argument, NULL, 'a'},
                                       {"backup", required_argument, NULL, 'b'},
                                       {"inclusive", no_argument, NULL, 'I'},
                                       {"exclusive", no_argument, NULL, 'E'},
                                       {"timeline", required_argument, NULL, 't'},
                                       {"jobs", required_argument, NULL, 'J'},
                                       {"dry-run", no_argument, NULL, 'd'},
                                       {"json", no_argument, NULL, 'j'},
                                       {"key-file", required_argument, NULL, 'k'},
                                       {"collection", required_argument, NULL, 'C'},
                                       {"into-existing", no_argument, NULL, 'R'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
    static const struct cmd_info cmd = {"restore", pitr_restore_usage, pitr_restore_help};
    struct repo_args ra = {0};
    struct pitr_restore_opts o = {0};
    const char *colls[64]; /* --collection names (into argv) */
    o.collections = colls;
    bool json = false;
    int ntargets = 0, ch;
    uint32_t u;
    optind = 0;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":h", lo, NULL)) != -1) {
        switch (ch) {
        case 'T':
            if (!cli_parse_time_us(optarg, &o.time_us))
                return usage("restore", pitr_restore_usage, "--target-time: '%s' is not a time "
                             "(2026-11-21T10:15:00Z or @microseconds)", optarg);
            o.kind = PITR_TARGET_TIME;
            ntargets++;
            break;
        case 'L':
            if (!cli_parse_lsn(optarg, &o.lsn))
                return usage("restore", pitr_restore_usage, "--target-lsn: '%s' is not an LSN",
                             optarg);
            o.kind = PITR_TARGET_LSN;
            ntargets++;
            break;
        case 'X':
            if (!cli_parse_u64(optarg, &o.txn) || o.txn == 0)
                return usage("restore", pitr_restore_usage, "--target-txn: '%s' is not a "
                             "transaction id", optarg);
            o.kind = PITR_TARGET_TXN;
            ntargets++;
            break;
        case 'N':
            o.name = optarg;
            o.kind = PITR_TARGET_NAME;
            ntargets++;
            break;
        case 'a':
            o.kind = PITR_TARGET_LATEST;
            ntargets++;
            break;
        case 'b':
            o.backup = optarg;
            break;
        case 'I':
            o.exclusive = false;
            break;
        case 'E':
            o.exclusive = true;
            break;
        case 't':
            if (!strcmp(optarg, "latest"))
                o.timeline = 0;
            else if (!cli_parse_u32_range(optarg, 1, UINT32_MAX, &o.timeline))
                return usage("restore", pitr_restore_usage, "--timeline: '%s' is not a "
                             "timeline number or 'latest'", optarg);
            break;
        case 'J':
            if (!cli_parse_u32_range(optarg, 1, 256, &u))
                return usage("restore", pitr_restore_usage, "--jobs: '%s' is not 1..256", optarg);
            o.jobs = u;
            break;
        case 'd':
            o.dry_run = true;
            break;
        case 'j':
            json = true;
            break;
        case 'C':
            if (o.ncollections == sizeof colls / sizeof colls[0])
                return usage("restore", pitr_restore_usage, "--collection: more than %zu names",
                             sizeof colls / sizeof colls[0]);
            colls[o.ncollections++] = optarg;
            break;
        case 'R':
            o.into_existing = true;
            break;
        default: {
            int rc = common_opt(ch, &cmd, &ra, argv);
            if (rc >= 0)
                return rc;
            break;
        }
        }
    }
    if (argc - optind != 2)
        return usage("restore", pitr_restore_usage, "expected REPO and TARGET_DIR");
    if (ntargets > 1)
        return usage("restore", pitr_restore_usage, "give one target");
    if (ntargets == 0 && !o.backup)
        return usage("restore", pitr_restore_usage, "give a target (--target-time, "
                     "--target-lsn, --target-txn, --target-name, --latest or --backup)");
    if (ntargets == 0)
        o.kind = PITR_TARGET_BACKUP;
    if (o.into_existing && !o.ncollections)
        return usage("restore", pitr_restore_usage, "--into-existing needs --collection NAME "
                     "(a whole database is restored into a new directory)");
    repo *r = NULL;
    cairn_status st = open_repo(argv[optind], &ra, OPEN_READ, &r);
    if (st)
        return perr("restore", st);
    struct rprog rp = {.json = json, .phase = -1};
    cli_progress_init(&rp.bar);
    if (json)
        rp.bar.enabled = false;
    o.progress = restore_progress;
    o.progress_ctx = &rp;
    /* the plan is printed first, alone, then the restore runs it */
    struct pitr_restore_opts dry = o;
    dry.dry_run = true;
    struct pitr_restore_result res;
    st = pitr_restore(r, argv[optind + 1], &dry, &res);
    if (!st)
        print_plan(&res.plan, &o, json, o.dry_run, res.old_timeline);
    pitr_plan_free(&res.plan);
    if (!st && !o.dry_run) {
        st = pitr_restore(r, argv[optind + 1], &o, &res);
        cli_progress_clear(&rp.bar);
        pitr_plan_free(&res.plan);
    }
    repo_close(r);
    if (st)
        return perr("restore", st);
    if (o.dry_run)
        return CLI_EXIT_OK;
    char l1[CLI_LSN_LEN], l2[CLI_LSN_LEN], t1[CLI_TIME_LEN];
    if (o.into_existing) {
        if (json)
            printf("{\"event\":\"done\",\"target\":\"%s\",\"into_existing\":true,"
                   "\"old_timeline\":%u,\"timeline\":%u,\"switch_lsn\":\"%s\",\"replaced\":%u,"
                   "\"added\":%zu,\"points_restored\":%" PRIu64 ",\"graft_wal_bytes\":%" PRIu64
                   ",\"last_commit_lsn\":\"%s\",\"last_commit_time\":\"%s\",\"last_txn_id\":%"
                   PRIu64 ",\"collections\":%" PRIu64 ",\"points\":%" PRIu64 ",\"seconds\":%.3f,"
                   "\"graft_seconds\":%.3f}\n",
                   argv[optind + 1], res.old_timeline, res.new_timeline,
                   cli_fmt_lsn(l1, res.switch_lsn), res.replaced,
                   o.ncollections - res.replaced, res.graft_points, res.graft_bytes,
                   cli_fmt_lsn(l2, res.last_commit_lsn),
                   cli_fmt_time_us(t1, res.last_commit_time_us), res.last_txn_id,
                   res.collections, res.points, (double)res.duration_us / 1e6,
                   (double)res.graft_us / 1e6);
        else
            printf("replaced in %s: %u collection(s) replaced, %zu added, %" PRIu64
                   " point(s) as of the target (last commit txn %" PRIu64 " at %s); the "
                   "database left timeline %u at LSN %s and goes on on timeline %u; %" PRIu64
                   " collections, %" PRIu64 " points; %.2f s (copy and graft %.2f)\n",
                   argv[optind + 1], res.replaced, o.ncollections - res.replaced,
                   res.graft_points, res.last_txn_id,
                   cli_fmt_time_us(t1, res.last_commit_time_us), res.old_timeline,
                   cli_fmt_lsn(l1, res.switch_lsn), res.new_timeline, res.collections,
                   res.points, (double)res.duration_us / 1e6, (double)res.graft_us / 1e6);
        return CLI_EXIT_OK;
    }
    if (json)
        printf("{\"event\":\"done\",\"target\":\"%s\",\"timeline\":%u,\"switch_lsn\":\"%s\","
               "\"records\":%" PRIu64 ",\"transactions\":%" PRIu64 ",\"last_commit_lsn\":\"%s\","
               "\"last_commit_time\":\"%s\",\"last_txn_id\":%" PRIu64 ",\"collections\":%" PRIu64
               ",\"points\":%" PRIu64 ",\"seconds\":%.3f,\"pages_seconds\":%.3f,"
               "\"fetch_seconds\":%.3f,\"replay_seconds\":%.3f,\"load_seconds\":%.3f,"
               "\"redo_seconds\":%.3f}\n",
               argv[optind + 1], res.new_timeline, cli_fmt_lsn(l1, res.switch_lsn), res.records,
               res.txns_applied, cli_fmt_lsn(l2, res.last_commit_lsn),
               cli_fmt_time_us(t1, res.last_commit_time_us), res.last_txn_id, res.collections,
               res.points, (double)res.duration_us / 1e6, (double)res.pages_us / 1e6,
               (double)res.fetch_us / 1e6, (double)res.replay_us / 1e6,
               (double)res.load_us / 1e6, (double)res.redo_us / 1e6);
    else if (res.txns_applied == 0)
        printf("restored into %s: timeline %u (branched at LSN %s), the base backup's state (no "
               "transaction replayed after it); %" PRIu64 " collections, %" PRIu64 " points; "
               "%.2f s (pages %.2f, WAL fetch %.2f, replay %.2f)\n",
               argv[optind + 1], res.new_timeline, cli_fmt_lsn(l1, res.switch_lsn),
               res.collections, res.points, (double)res.duration_us / 1e6,
               (double)res.pages_us / 1e6, (double)res.fetch_us / 1e6,
               (double)res.replay_us / 1e6);
    else
        printf("restored into %s: timeline %u (branched at LSN %s), %" PRIu64 " records, %" PRIu64
               " transactions replayed, last commit txn %" PRIu64 " at %s (LSN %s); %" PRIu64
               " collections, %" PRIu64 " points; %.2f s (pages %.2f, WAL fetch %.2f, replay "
               "%.2f: load %.2f, redo %.2f, new timeline %.2f)\n",
               argv[optind + 1], res.new_timeline, cli_fmt_lsn(l1, res.switch_lsn), res.records,
               res.txns_applied, res.last_txn_id, cli_fmt_time_us(t1, res.last_commit_time_us),
               cli_fmt_lsn(l2, res.last_commit_lsn), res.collections, res.points,
               (double)res.duration_us / 1e6, (double)res.pages_us / 1e6,
               (double)res.fetch_us / 1e6, (double)res.replay_us / 1e6,
               (double)res.load_us / 1e6, (double)res.redo_us / 1e6,
               (double)(res.replay_us - res.load_us - res.redo_us) / 1e6);
    return CLI_EXIT_OK;
}

/* ---- verify -------------------------------------------------------------------------- */

const char pitr_verify_usage[] = "usage: pitrctl verify REPO [--key-file FILE] [--json]\n";
const char pitr_verify_help[] =
    "\nReads and checks everything a restore could need: every manifest (its\n"
    "checksum and fields), every pack it names (authenticity, decompression,\n"
    "SHA-256), every archived WAL segment against its recorded SHA-256, every\n"
    "timeline history; and reports every gap (missing LSN range) in a\n"
    "timeline's archive. Prints each problem on stdout; exit status 1 when\n"
    "there is any. Changes nothing.\n\n"
    "  --json   each problem and the summary as JSON lines\n"
    "  --key-file FILE  the key of an encrypted repository (see archive --help)\n";

struct vprint {
    bool json;
};

static void verify_problem(void *ctx, const char *msg)
{
    struct vprint *v = ctx;
    if (v->json) {
        fputs("{\"problem\":", stdout);
        cli_json_str(stdout, msg, strlen(msg));
        fputs("}\n", stdout);
    } else {
        printf("problem: %s\n", msg);
    }
}

int pitr_cmd_verify(int argc, char **argv)
{
    static const struct option lo[] = {{"key-file", required_argument, NULL, 'k'},
                                       {"json", no_argument, NULL, 'j'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
    static const struct cmd_info cmd = {"verify", pitr_verify_usage, pitr_verify_help};
    struct repo_args ra = {0};
    struct vprint vp = {0};
    int ch;
    optind = 0;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":h", lo, NULL)) != -1) {
        switch (ch) {
        case 'j':
            vp.json = true;
            break;
        default: {
            int rc = common_opt(ch, &cmd, &ra, argv);
            if (rc >= 0)
                return rc;
            break;
        }
        }
    }
    if (argc - optind != 1)
        return usage("verify", pitr_verify_usage, "expected REPO");
    repo *r = NULL;
    cairn_status st = open_repo(argv[optind], &ra, OPEN_READ, &r);
    if (st)
        return perr("verify", st);
    struct pitr_verify_result res;
    double t0 = cli_now();
    st = pitr_verify(r, verify_problem, &vp, &res);
    repo_close(r);
    if (st)
        return perr("verify", st);
    if (vp.json)
        printf("{\"backups\":%" PRIu64 ",\"blobs\":%" PRIu64 ",\"timelines\":%" PRIu64
               ",\"segments\":%" PRIu64 ",\"gaps\":%" PRIu64 ",\"bytes\":%" PRIu64
               ",\"problems\":%" PRIu64 ",\"seconds\":%.3f}\n",
               res.backups, res.blobs, res.timelines, res.segments, res.gaps, res.bytes,
               res.problems, cli_now() - t0);
    else
        fprintf(stderr, "pitrctl: verified %" PRIu64 " backups, %" PRIu64 " blobs, %" PRIu64
                " WAL segments on %" PRIu64 " timelines (%" PRIu64 " bytes) in %.2f s: %" PRIu64
                " problems, %" PRIu64 " gaps\n",
                res.backups, res.blobs, res.segments, res.timelines, res.bytes, cli_now() - t0,
                res.problems, res.gaps);
    return res.problems ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

/* ---- expire --------------------------------------------------------------------------- */

const char pitr_expire_usage[] =
    "usage: pitrctl expire REPO --keep-full N [--dry-run] [--key-file FILE] [--json]\n";
const char pitr_expire_help[] =
    "\nRetention: keeps the newest N full backups and the incremental backups\n"
    "built on them, deletes the other backups, the packs no kept backup uses,\n"
    "and on each timeline with a kept backup the archived WAL before the\n"
    "oldest kept backup there. WAL of timelines without a kept backup stays.\n\n"
    "  --keep-full N   full backups to keep (at least 1)\n"
    "  --dry-run       say what would go, delete nothing\n"
    "  --json          the result as one JSON object\n"
    "  --key-file FILE the key of an encrypted repository (see archive --help)\n";

int pitr_cmd_expire(int argc, char **argv)
{
    static const struct option lo[] = {{"keep-full", required_argument, NULL, 'n'},
                                       {"dry-run", no_argument, NULL, 'd'},
                                       {"key-file", required_argument, NULL, 'k'},
                                       {"json", no_argument, NULL, 'j'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
    static const struct cmd_info cmd = {"expire", pitr_expire_usage, pitr_expire_help};
    struct repo_args ra = {0};
    struct pitr_expire_opts eo = {0};
    bool json = false;
    int ch;
    optind = 0;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":h", lo, NULL)) != -1) {
        switch (ch) {
        case 'n':
            if (!cli_parse_u32_range(optarg, 1, UINT32_MAX, &eo.keep_full))
                return usage("expire", pitr_expire_usage, "--keep-full: '%s' is not a count of "
                             "at least 1", optarg);
            break;
        case 'd':
            eo.dry_run = true;
            break;
        case 'j':
            json = true;
            break;
        default: {
            int rc = common_opt(ch, &cmd, &ra, argv);
            if (rc >= 0)
                return rc;
            break;
        }
        }
    }
    if (argc - optind != 1)
        return usage("expire", pitr_expire_usage, "expected REPO");
    if (!eo.keep_full)
        return usage("expire", pitr_expire_usage, "--keep-full N is required");
    repo *r = NULL;
    cairn_status st = open_repo(argv[optind], &ra, OPEN_WRITE, &r);
    if (st)
        return perr("expire", st);
    struct pitr_expire_result res;
    st = pitr_expire(r, &eo, &res);
    repo_close(r);
    if (st)
        return perr("expire", st);
    if (json)
        printf("{\"dry_run\":%s,\"backups_kept\":%" PRIu64 ",\"backups_deleted\":%" PRIu64
               ",\"blobs_deleted\":%" PRIu64 ",\"segments_deleted\":%" PRIu64
               ",\"bytes_freed\":%" PRIu64 "}\n",
               eo.dry_run ? "true" : "false", res.backups_kept, res.backups_deleted,
               res.blobs_deleted, res.segments_deleted, res.bytes_freed);
    else {
        char b[32];
        printf("%s%" PRIu64 " backups kept, %" PRIu64 " deleted; %" PRIu64 " packs and %" PRIu64
               " WAL segments deleted (%s)\n",
               eo.dry_run ? "dry run: " : "", res.backups_kept, res.backups_deleted,
               res.blobs_deleted, res.segments_deleted, cli_fmt_bytes(b, sizeof b, res.bytes_freed));
    }
    return CLI_EXIT_OK;
}
