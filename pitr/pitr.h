/*
 * pitr.h — point-in-time recovery over a backup repository (repo.h): the
 * WAL archive, full and incremental backups, listing, and restore. What
 * pitrctl calls; formats in docs/format.md, operation in docs/pitr.md.
 */
#ifndef CAIRN_PITR_PITR_H
#define CAIRN_PITR_PITR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn.h"
#include "pitr/repo.h"

/* ---- WAL archive (archive.c) ------------------------------------------------- */
struct pitr_archive_result {
    uint32_t timeline;
    uint32_t archived;        /* segments archived by this call */
    uint32_t already;         /* complete segments found archived already */
    uint64_t bytes_in, bytes_stored;
    uint64_t archived_to;     /* the archive of this timeline now reaches this LSN */
    uint32_t histories;       /* history files copied */
    bool waiting;             /* a complete segment is not proven durable yet */
};

/* Archives every complete, durable WAL segment of the database directory
 * dbpath (open in another process or not) that the repository lacks, and
 * its timeline history files. Idempotent. A segment is complete when its
 * records end with a SWITCH or a PAD reaching its end, and durable when a
 * record of a later segment carries a durable hint at or past its end, or
 * when no process holds the database open (a closed database never
 * rewrites a complete segment). known_durable (0: unknown): the durable LSN
 * of the database, from inside its process (pitr/api.c): segments ending at
 * or before it are durable, later ones are not looked at. */
cairn_status pitr_archive(const char *dbpath, repo *r, uint64_t known_durable,
                          struct pitr_archive_result *res);

/* Summarizes segment bytes (whole segment file) for the archive: records,
 * commits, restore points, where the records end, whether the segment is
 * complete (ends with SWITCH or a PAD to its end), and the highest durable
 * hint of its records. CAIRN_ECORRUPT naming `path` for a bad header. */
cairn_status pitr_seg_scan(const uint8_t *seg, size_t len, const char *path,
                           struct repo_seg_summary *out, bool *complete, uint64_t *max_hint,
                           uint64_t *db_id);

/* ---- backups (backup.c) -------------------------------------------------------- */
/* Called with bytes of pages read so far and in all; nonzero cancels. */
typedef int (*pitr_progress_fn)(void *ctx, uint64_t done, uint64_t total);

struct pitr_backup_opts {
    bool incremental;         /* only pages changed since the parent */
    const char *parent;       /* parent id; NULL: the newest backup of the same timeline */
    pitr_progress_fn progress;
    void *progress_ctx;
};

struct pitr_backup_result {
    char id[64];
    char parent[64];          /* "" for a full backup */
    uint64_t generation, redo_lsn, last_txn_id;
    int64_t time_us;
    uint32_t timeline, collections;
    uint64_t points;
    uint64_t pages, pages_new;    /* in the image; stored by this backup */
    uint64_t bytes_raw;           /* bytes of the image's pages */
    uint64_t bytes_new_raw;       /* of the pages in new blobs */
    uint64_t bytes_stored;        /* written to the repository (new blobs, compressed) */
    uint64_t blobs, blobs_new;    /* packs referenced / added */
    uint64_t duration_us;
};

/* Backs up the database in directory dbpath (open in another process, in
 * this one, or closed) into r: pins its newest checkpoint, stores the
 * pages (all, or for an incremental those not in the parent's image) in
 * content-addressed packs, then publishes the manifest. Writers keep
 * committing meanwhile. */
cairn_status pitr_backup(const char *dbpath, repo *r, const struct pitr_backup_opts *o,
                         struct pitr_backup_result *res);

/* A manifest, parsed. */
struct pitr_page_loc {
    uint32_t phys;
    uint32_t idx;             /* the page's index in its pack */
    uint64_t lsn;             /* UINT64_MAX: map or catalog page */
    uint32_t pack;            /* index into manifest packs[] */
    uint32_t pno;             /* logical page (engine/pfile.h page_ref) */
    uint16_t space, type;     /* page space, page type (0: any point page) */
};
struct pitr_mfile {
    char name[64];
    uint32_t coll_id, npages;
    struct pitr_page_loc *pages;
    size_t npages_img;
};
struct pitr_mcoll {
    uint32_t id, dim;
    char name[CAIRN_MAX_NAME + 1];
    char metric[8];
    uint64_t points;
};
struct pitr_manifest {
    char id[64], parent[64];
    bool incremental;
    uint64_t db_id;
    uint32_t timeline, seg_shift;
    uint64_t generation, redo_lsn, last_txn_id;
    int64_t time_us, last_commit_us, started_us, finished_us;
    uint8_t meta_sha[CODEC_SHA256_LEN], super_sha[CODEC_SHA256_LEN];
    /* The header block of the WAL segment holding the redo LSN (what the image needs
     * to open by itself); have_wal_head false when redo is 0. */
    bool have_wal_head;
    uint8_t wal_head_sha[CODEC_SHA256_LEN];
    uint8_t (*packs)[CODEC_SHA256_LEN];
    size_t npacks;
    struct pitr_mfile *files;
    size_t nfiles;
    struct pitr_mcoll *colls;
    size_t ncolls;
    uint64_t bytes_raw, bytes_stored;
};
cairn_status pitr_manifest_load(repo *r, const char *id, struct pitr_manifest *m);
void pitr_manifest_free(struct pitr_manifest *m);

/* ---- restore (restore.c) -------------------------------------------------------- */
enum pitr_target_kind {
    PITR_TARGET_LATEST = 0,
    PITR_TARGET_TIME,
    PITR_TARGET_LSN,
    PITR_TARGET_TXN,
    PITR_TARGET_NAME,
    PITR_TARGET_BACKUP       /* the base's own state: no WAL */
};

struct pitr_restore_opts {
    enum pitr_target_kind kind;
    int64_t time_us;
    uint64_t lsn, txn;
    const char *name;
    bool exclusive;
    uint32_t timeline;        /* 0: the latest */
    const char *backup;       /* use this base (NULL: the planner picks) */
    unsigned jobs;            /* replay workers; 0: CPUs */
    bool dry_run;
    /* Partial restore: only the collections carrying these names at the
     * target come back, the others are absent (engine/restore.h, "Partial
     * restore"); NULL/0: all. A name with no collection at the target is
     * CAIRN_ENOTFOUND after the replay, and nothing is left behind. */
    const char *const *collections;
    size_t ncollections;
    /* With collections: target_dir is an existing database of this
     * repository, closed; the named collections in it are replaced by
     * their state at the target (added where it has none), the others
     * stay as they are, and the database goes on on a new timeline
     * (replace.c; docs/pitr.md, "Replacing collections in a database"). */
    bool into_existing;
    /* Internal (replace.c): the restored state handed over in memory
     * instead of written (engine/restore.h, "Hand-over"); target_dir is
     * then a scratch directory, removed at the end. */
    cairn_status (*on_replayed)(void *ctx, cairn_db *restored);
    void *on_replayed_ctx;
    /* Progress: phase 0 pages (done/total bytes), 1 WAL fetch, 2 replay
     * (records, WAL bytes, LSN, commit time). */
    void (*progress)(void *ctx, int phase, uint64_t done, uint64_t total, uint64_t lsn,
                     int64_t time_us);
    void *progress_ctx;
};

/* What the planner decided (printed before anything is written). */
struct pitr_plan_seg {
    uint32_t timeline;
    uint64_t start;
    bool from_backup;         /* the base's own copy (its header block only) */
};
struct pitr_plan {
    char base[64];
    char chain[8][64];        /* the base's ancestry: base, its parent, ... (at most 8 shown) */
    size_t nchain;
    uint32_t base_timeline, target_timeline, new_timeline;
    uint64_t base_redo;
    uint64_t stop_lsn;        /* no commit whose record starts at/after this applies (UINT64_MAX: end) */
    uint64_t pages, page_bytes, blobs;
    struct pitr_plan_seg *segs;
    size_t nsegs;
    uint64_t wal_bytes;       /* segment bytes to replay through (upper bound) */
    double est_seconds;
    struct {
        uint32_t timeline;
        uint64_t start_lsn, until_lsn;
    } hops[16];
    size_t nhops;
};
void pitr_plan_free(struct pitr_plan *p);

struct pitr_restore_result {
    struct pitr_plan plan;
    uint64_t records, txns_applied, last_commit_lsn, last_txn_id;
    int64_t last_commit_time_us;
    bool target_reached;
    uint32_t new_timeline;
    uint64_t switch_lsn;
    uint64_t collections, points;
    uint64_t duration_us, pages_us, fetch_us, replay_us;
    /* replay_us split (engine_restore_result): loading the base, the redo
     * of the WAL to the target; the rest is the new timeline's checkpoint */
    uint64_t load_us, redo_us;
    /* into_existing: the database's timeline before, collections replaced
     * (the others named were added), points and WAL bytes of the graft,
     * and the time of the copy, the graft and the swap */
    uint32_t old_timeline, replaced;
    uint64_t graft_points, graft_bytes, graft_us;
};

/* Plans and (unless dry_run) performs a restore into target_dir, which
 * must not exist: built as "<target_dir>.partial", renamed at the end. A
 * target the repository cannot reach is refused before anything is
 * written, with the reason. With into_existing: pitr_replace. */
cairn_status pitr_restore(repo *r, const char *target_dir, const struct pitr_restore_opts *o,
                          struct pitr_restore_result *res);

/* The history file of timeline tl in dbdir's wal/, put into the repository
 * (a restore does it before its directory appears; restore.c). */
cairn_status pitr_publish_history(repo *r, const char *dbdir, uint32_t tl);

/* ---- replacing collections in a database (replace.c) --------------------------- */
/* The restore of o->collections into the existing database dbdir (the top
 * of replace.c says how, and what a failure or a crash leaves). */
cairn_status pitr_replace(repo *r, const char *dbdir, const struct pitr_restore_opts *o,
                          struct pitr_restore_result *res);

/* ---- verify and expire (maint.c) ---------------------------------------------------- */
/* Called with each problem found (one line, no newline). */
typedef void (*pitr_verify_fn)(void *ctx, const char *problem);
struct pitr_verify_result {
    uint64_t backups, blobs, timelines, segments, gaps, problems;
    uint64_t bytes;            /* content bytes read and checked */
};
/* Checks every manifest, blob, archived segment and history file as a
 * restore would, and every gap in a timeline's archive; reports each
 * problem through fn and counts them. CAIRN_OK even with problems (the
 * count says); an error only when the repository cannot be listed. */
cairn_status pitr_verify(repo *r, pitr_verify_fn fn, void *ctx, struct pitr_verify_result *res);

struct pitr_expire_opts {
    uint32_t keep_full;        /* newest full backups kept, with their incrementals (>= 1) */
    bool dry_run;              /* count only */
};
struct pitr_expire_result {
    uint64_t backups_kept, backups_deleted, blobs_deleted, segments_deleted, bytes_freed;
};
cairn_status pitr_expire(repo *r, const struct pitr_expire_opts *o, struct pitr_expire_result *res);

#endif
