/*
 * restore.h — the engine's half of a point-in-time restore (pitr/ does the
 * other: planning, fetching pages and WAL from a repository).
 *
 * pitr/ materializes a checkpoint image in a new directory (bsrc.h: meta,
 * superblock, page files) and puts in its wal/ the segments the replay
 * needs, of every timeline on the way (and, when it has them, the history
 * files of those timelines). engine_restore then opens that directory
 * without a writer, loads the checkpoint exactly as cairn_open does, and
 * replays through the one replay engine (replay_run_ex) along a path of
 * timelines up to the target; then it ends the restored database on a new
 * timeline:
 *
 *   - the switch LSN is where the restored history stops: the end of the
 *     last commit applied (its COMMIT record's end), or the checkpoint's
 *     redo LSN when nothing was applied; the parent timeline is the one
 *     whose own log holds it: the timeline of the last hop that applied a
 *     commit (hop 0's when none did). So a restore whose target falls
 *     before the first commit of the last hop's timeline branches from the
 *     hop before it, and every branch point lies in its parent's own log;
 *   - the new timeline's log starts in a fresh segment, at the data offset
 *     (WAL_SEG_DATA) of the first segment boundary after the switch LSN,
 *     so no byte of the old timeline's future is in any file of the new
 *     one; every segment of other timelines is removed from wal/ (history
 *     files stay);
 *   - the history file wal/TTTTTTTT.history (T = new timeline, 8 hex
 *     digits upper case) lists the ancestry, oldest first, one line per
 *     branch: "<parent timeline, decimal> <switch LSN, 16 hex digits>
 *     <new start LSN, 16 hex digits>\n" (hex upper case, single spaces,
 *     no leading zero in the parent; pitr/repo.c parses the same). The
 *     lines before this branch's are the parent's own history file when
 *     wal/ has one; otherwise the checkpoint timeline's history file (when
 *     wal/ has one) followed by the branches the hops take (hop k's
 *     timeline, its until_lsn, hop k+1's start_lsn) up to the parent.
 *     Written durably (temp, fsync, rename, dir fsync);
 *   - a checkpoint is taken on the new timeline (redo LSN = the new start
 *     LSN), then meta gets the new timeline, so an open afterwards starts
 *     from the restored state, replays nothing, and reads only the new
 *     timeline's log; new commits go on there.
 *
 * The path. hops[0].timeline must be the checkpoint's (and meta's)
 * timeline, and hops[0].until_lsn at or after its redo LSN (else the
 * checkpoint holds changes the path abandons); hops[0].start_lsn is not
 * used. Timelines strictly increase along the path; every hop but the
 * last has an until_lsn, and hop k+1 starts at its timeline's first record
 * position (a multiple of the segment size plus WAL_SEG_DATA), at or after
 * hop k's until_lsn, and ends (until_lsn) at or after it starts. A history
 * file in wal/ of a timeline of the path must say the same: it ends with
 * the branches the hops take to reach that timeline (and begins with the
 * checkpoint timeline's history, when that file is there too). Each
 * violation is CAIRN_EINVAL (a damaged history file CAIRN_ECORRUPT) with a
 * message naming hop, timeline and LSN (or the file), and changes nothing.
 *
 * A hop with an until_lsn must reach it: its log is read from its start;
 * records at or after until_lsn are never read (that is the timeline's
 * abandoned future: commits there, restore points, transaction ids), and
 * the log must hold valid records (or padding) up to until_lsn, unless the
 * target is reached first. A log that ends before (a segment missing from
 * the one holding until_lsn on, or cut short) is CAIRN_ENOTFOUND
 * (CAIRN_ECORRUPT when it ends in garbage) naming the timeline, the LSN
 * where it ends, the segment and until_lsn; a segment missing before later
 * ones is the reader's CAIRN_ECORRUPT naming the missing file. An
 * until_lsn inside a COMMIT record is CAIRN_EINVAL. So a restore never
 * yields an earlier state of a timeline with the later timelines' commits
 * on top of it.
 *
 * The target: REPLAY_TO_END applies everything on the path. Any other
 * target must be reached on the path (a commit beyond it seen, the
 * transaction or restore point found; for REPLAY_TO_LSN also: the log read
 * extends past the LSN), else CAIRN_ENOTFOUND "target ... not reached"
 * naming where the path ends and the last commit applied: the log may be
 * missing, and a restore never silently stops short of what was asked (a
 * time after the last commit of an idle database is this case too: ask
 * for the end instead). LSNs and times compare along the path; transaction
 * ids may repeat across timelines (a new timeline goes on from the
 * restored state's), but not along one path.
 *
 * What a failure leaves. A refusal of the options, an error while loading
 * the checkpoint or replaying (missing or damaged WAL, target not reached,
 * out of memory, a cancel) changes nothing: the replay is in memory only
 * (the load only removes what any open removes: page files of an
 * unfinished checkpoint, stale pins). With prewrite (below), the replay
 * also writes pages into free physical pages and new page files: the
 * directory then opens, and restores, exactly as before, but its bytes
 * changed. The first change on disk is
 * DB/restore-incomplete (durable); from then until the last step removes
 * it, cairn_open and engine_restore refuse the directory with
 * CAIRN_ECORRUPT naming that file, so an error (or a crash) while ending
 * on the new timeline never leaves a directory that opens as if restored
 * (nor one that opens on the old timeline): remove it and restore again.
 * Everything is fsynced before it returns; pitr/ builds the directory as
 * "<target>.partial" anyway.
 *
 * Partial restore (only_names, nonly > 0). Only the collections carrying
 * one of the names in the restored state (at the target) come back; the
 * others are absent. Names resolve at the target: a collection of that
 * name dropped after the target (and perhaps recreated later) is the one
 * at the target; one created after the checkpoint is found through its
 * CREATE during the replay. The replay is the same one, with a collection
 * filter (replay_opts.only_names): the other collections' point records
 * are skipped, DDL always applies (so ids, names and the next collection
 * id are exact), and a transaction spanning collections applies its
 * selected part whole. A name (valid, else CAIRN_ENAME) that carries no
 * collection at the target is CAIRN_ENOTFOUND naming it, found after the
 * replay and before the first write: nothing changed. The collections not
 * selected are then dropped by the new timeline's first transactions (one
 * DROP_COLL each, logged through a WAL writer on the new timeline at the
 * new start LSN, while DB/restore-incomplete is there), and the checkpoint
 * follows them: the new timeline's log replayed on its parent's state at
 * the switch LSN yields the restored database exactly, so archives and
 * later restores through the new timeline agree with the directory.
 * Their page files are materialized and loaded anyway (pitr/ does not
 * know the ids before the replay); the restore's checkpoint no longer
 * references them, and the next checkpoint deletes their files, as after
 * any drop (the previous checkpoint, the fallback slot, still has them).
 *
 * Hand-over (on_replayed). With it, engine_restore stops after the replay
 * and the partial restore's name check: it calls on_replayed with the
 * restored database, in memory (read it only; it is freed on return), and
 * returns the callback's status, having written nothing (no marker, no
 * new timeline). pitr/ replaces collections of an existing database this
 * way: the state at the target is a source, never a directory.
 *
 * Graft (graft_src, graft_names). The collections carrying these names in
 * graft_src (a database in memory, such as the one on_replayed hands over;
 * each name must carry one there: CAIRN_ENOTFOUND before anything is
 * written) replace the collections of those names in the restored
 * database (added where it has none), the others staying as they are. It
 * is the new timeline's first transaction, one transaction (so the cut of
 * a later restore along the new timeline never falls inside it): a
 * DROP_COLL of each collection replaced, then per name a CREATE_COLL with
 * a fresh id and the source's dimension and metric, followed by an UPSERT
 * of each of its points (id, vector, payload), and the COMMIT. It is
 * logged through a WAL writer on the new timeline (in pieces of about 4
 * MiB: a crash before the COMMIT leaves a transaction cut short, which
 * never applies) and applied by reading it back through the replay
 * engine, so the log and the directory agree by construction; the
 * checkpoint follows. Memory: the replay holds the whole transaction (the
 * grafted collections' records) until its COMMIT, as any replay of it
 * later does. Not with only_names (CAIRN_EINVAL).
 *
 * Segments from a source (wal_src). pitr/ decompresses the path's
 * archived segments into memory while the replay reads them: every reader
 * of the replay is opened over the source (wal.h, struct wal_seg_source),
 * so it waits for a segment that is coming and fails with the source's
 * status when its producer failed (a segment that could not be fetched:
 * the restore fails as any missing or damaged segment makes it, nothing
 * written). No segment of the path is then ever a file in wal/ (step 6
 * has nothing of theirs to remove). Everything else read before the
 * replay must be in place when engine_restore is called: meta, the
 * checkpoint, the history files of the path. Without a source wal/ holds
 * the path's segments.
 */
#ifndef CAIRN_ENGINE_RESTORE_H
#define CAIRN_ENGINE_RESTORE_H

#include <stddef.h>
#include <stdint.h>

#include "cairn.h"
#include "engine/engine_int.h"

/* One timeline on the replay path: replay its log up to until_lsn
 * (exclusive; commits whose COMMIT record starts before it), where the next
 * hop's timeline branched from it (the switch LSN of its history line);
 * UINT64_MAX for the last hop (up to the target or the end of its log).
 * hops[0].timeline is the checkpoint's, and hop k+1 starts reading at
 * start_lsn (hop 0: the checkpoint's redo LSN). Rules: above, "The path". */
struct engine_tl_hop {
    uint32_t timeline;
    uint64_t start_lsn;
    uint64_t until_lsn;
};

/* Progress of a restore replay, called about every 64 MiB of WAL or once a
 * second (whichever comes first; checked every 256 records) and once at
 * the end of the replay, before anything is written; nonzero: cancel
 * (CAIRN_ECANCELED, nothing changed). records: read so far (all hops);
 * wal_bytes: log read so far, as LSN distance along the path; lsn: of the
 * record just read (at the end: where the replay stopped); commit_time_us:
 * of the last commit applied (0: none yet). */
typedef int (*engine_restore_progress_fn)(void *ctx, uint64_t records, uint64_t wal_bytes,
                                          uint64_t lsn, int64_t commit_time_us);

struct engine_restore_opts {
    const struct engine_tl_hop *hops;
    size_t nhops;
    struct replay_target target; /* REPLAY_TO_END: everything on the path */
    unsigned jobs;               /* replay workers (0: number of CPUs) */
    uint32_t new_timeline;       /* > every timeline of the path */
    engine_restore_progress_fn progress;
    void *progress_ctx;
    /* A partial restore (see "Partial restore" above); NULL/0: all. */
    const char *const *only_names;
    size_t nonly;
    /* Hand-over (above): called instead of ending on a new timeline. */
    cairn_status (*on_replayed)(void *ctx, cairn_db *restored);
    void *on_replayed_ctx;
    /* A graft (above); NULL/0: none. */
    cairn_db *graft_src;
    const char *const *graft_names;
    size_t ngraft;
    /* The path's segments from a source (above); NULL: from wal/. Must
     * outlive the call. */
    const struct wal_seg_source *wal_src;
    /* Pre-write the pages the replay has finished with while it runs
     * (ckpt_prewrite), so that the checkpoint on the new timeline writes
     * only what changed since. For a directory made for the restore: a
     * failure then leaves pages in free physical pages and new page files,
     * which no open reads, the next open removing the files (the directory
     * opens as before, but is not byte for byte what it was). Ignored with
     * on_replayed (the hand-over writes nothing). */
    bool prewrite;
    /* How often the pre-writer looks for such pages, microseconds (0: 40
     * ms); a page is written once no change reached it for one period.
     * A period given (tests) also looks at every collection, where the
     * default waits for 256 dirty pages in one. */
    uint32_t prewrite_period_us;
    /* Tests: after the replay the pre-writer runs two more rounds before
     * it stops, so that pre-writes happen however short the replay was
     * (one round finds the pages cold, the next writes them). */
    bool prewrite_drain;
};

struct engine_restore_result {
    struct replay_result replay; /* summed over the hops (last_*: the last
                                    commit applied; stop_lsn: last hop's) */
    bool target_reached;         /* false only for REPLAY_TO_END */
    uint32_t parent_timeline;    /* the timeline holding the switch LSN (above) */
    uint64_t switch_lsn;
    uint64_t new_start_lsn;
    uint64_t checkpoint;         /* generation of the checkpoint taken */
    uint32_t collections;        /* in the restored database */
    uint64_t points;             /* live points, all collections */
    uint32_t graft_replaced;     /* collections a graft dropped */
    uint64_t graft_points;       /* points it logged */
    uint64_t graft_bytes;        /* WAL bytes of its transaction */
    uint64_t prewritten;         /* pages pre-written during the replay */
    /* Where the time went: load_us opening the directory (the base's pages
     * into memory, checks against the path), redo_us the replay of the
     * path from there to the target (waits for WAL not there yet
     * included); the rest (the new timeline's checkpoint) is the
     * caller's total minus these two. */
    uint64_t load_us, redo_us;
};

/* Restores the database directory dir in place (see the top of this file).
 * dir must hold meta, a checkpoint (or none: then the log from LSN 0) and
 * the WAL of the path; no handle may have it open (CAIRN_EBUSY). The new
 * timeline must be unused in wal/ (no segment, no history file:
 * CAIRN_EEXIST). res is filled on success (partly on failure). */
cairn_status engine_restore(const char *dir, const struct engine_restore_opts *o,
                            struct engine_restore_result *res);

#endif
