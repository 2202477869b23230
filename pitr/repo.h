/*
 * repo.h — a backup repository (format: docs/format.md, "Backup
 * repository"): repo.json, content-addressed objects (page packs and
 * archived WAL segments, zstd, optionally AES-256-GCM, each with the
 * SHA-256 of its content), backup manifests, WAL segment summaries and
 * timeline history files, all kept through the storage interface of
 * store.h (every object published atomically).
 */
#ifndef CAIRN_PITR_REPO_H
#define CAIRN_PITR_REPO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "cairn.h"
#include "common/codec.h"
#include "pitr/store.h"
#include "wal/wal.h"

#define REPO_FORMAT_VERSION 1u
#define REPO_MAX_TIMELINES 4096u

/* Object kinds (the header says which; a mismatch is corruption). */
enum repo_obj_kind { REPO_OBJ_PACK = 1, REPO_OBJ_WAL = 2, REPO_OBJ_SMALL = 3 };

typedef struct repo {
    pitr_store *st;
    char *dir;             /* for messages */
    uint64_t db_id;        /* 0 until the first backup or archive binds it */
    uint32_t seg_shift;    /* the database's WAL segment size, 0 until bound */
    int level;             /* zstd level of the objects this process writes, but WAL */
    int wal_level;         /* zstd level of the archived WAL segments it writes */
    /* repo.json's "level" and "wal_level" (0: absent there, WAL follows
     * "level"): what a rewrite of repo.json (repo_bind) keeps, so options
     * given to one process do not become the repository's */
    int json_level, json_wal_level;
    bool encrypted;
    uint8_t key[CODEC_KEY_LEN];
    char key_id[17];
} repo;

struct repo_open_opts {
    bool create;           /* make the repository if missing */
    int level;             /* zstd level (1..19) for new objects other than WAL segments,
                              0: repo.json's (3 at creation) */
    int wal_level;         /* zstd level (-7..-1 or 1..19) for new archived WAL segments,
                              0: repo.json's (-1 at creation; a repo.json without one:
                              the level this process uses, as before). Either option given to an existing
                              repository applies to what this process writes, and
                              repo.json keeps its own; at creation it is recorded. */
    const char *key_file;  /* AES-256 key (64 hex digits); required iff the repo is encrypted,
                              and at creation it makes the repo encrypted */
    bool no_sweep;         /* the open only reads or adds a few files (list, verify,
                              restore): temporaries of cut puts are left for the next
                              writer to remove (STORE_NO_SWEEP: no walk of every file) */
};

/* Opens (or creates) the repository in directory dir. A level option out
 * of range: CAIRN_EINVAL; a repo.json of another format version:
 * CAIRN_EVERSION; malformed: CAIRN_EFORMAT naming the field; an encrypted
 * repository without its key, or with another key (key id mismatch):
 * CAIRN_EINVAL saying so. */
cairn_status repo_open(const char *dir, const struct repo_open_opts *o, repo **out);
/* The range check of repo_open_opts' level (0..19) and wal_level (0,
 * -7..-1 or 1..19): CAIRN_EINVAL naming the value by the names given
 * (repo_open's own, or the option a caller took it from). */
cairn_status repo_levels_check(int level, int wal_level, const char *level_name,
                               const char *wal_level_name);
void repo_close(repo *r);
/* Binds the repository to database db_id (first use), or checks it is
 * that database's (CAIRN_EINVAL naming both ids otherwise). */
cairn_status repo_bind(repo *r, uint64_t db_id, uint32_t seg_shift);

/* A JSON object's integer member: true when key is there and an integer
 * (for u64: not negative). The one reading of manifests, summaries and
 * repo.json fields. */
bool repo_json_u64(json_t *o, const char *key, uint64_t *v);
/* o as JSON text (json_dumps with flags) in a malloc'd *text. Any failed
 * allocation in the dump (common/jalloc.h: jansson may ignore one and
 * write a key in part) is CAIRN_ENOMEM naming `what`: never text that is
 * not o's. */
cairn_status repo_json_dump(json_t *o, size_t flags, const char *what, char **text);
/* The tree of a JSON object (cjson_parse_object: not json_loadb, unsafe
 * when memory runs out), with running out of memory told apart from text
 * that is not one: CAIRN_ENOMEM naming `what` (and *o NULL), or CAIRN_OK
 * with *o the tree, or NULL with *err saying why the text is not one. */
struct cjson_error;
cairn_status repo_json_parse(const void *data, size_t len, const char *what, json_t **o,
                             struct cjson_error *err);
bool repo_json_i64(json_t *o, const char *key, int64_t *v);

/* The repository's lock (REPO/lock, flock): what adds objects that a
 * manifest or summary will name (a backup, archiving) holds it shared,
 * expire (which deletes what no manifest names yet) exclusive, so an expire
 * never deletes a blob a running backup has stored or found stored and is
 * about to name. Waits for the lock. *fd: release with repo_unlock. */
/* st, with "<what> \"<path>\" (repository \"<dir>\")" before the
 * thread's message unless it names the path or the repository already (an
 * allocation failure deep down names neither): for the exits of the
 * repository's operations. */
cairn_status repo_named(repo *r, const char *what, const char *path, cairn_status st);
cairn_status repo_lock(repo *r, bool exclusive, int *fd);
void repo_unlock(int fd);

/* ---- objects ------------------------------------------------------------ */
/* Stores data (len bytes, whose SHA-256 the caller has computed: sha) as
 * object `name`, compressed (at wal_level for kind REPO_OBJ_WAL, at level
 * for the others; with a trial byte shuffle when shuffle),
 * encrypted when the repo is. *stored: bytes written. */
cairn_status repo_obj_put(repo *r, const char *name, enum repo_obj_kind kind,
                          const void *data, size_t len, const uint8_t sha[CODEC_SHA256_LEN],
                          bool shuffle, uint64_t *stored);
/* Reads object name, checks its header, kind, authenticity and the
 * SHA-256 of its content (and, when want_sha is not NULL, that it is
 * want_sha); the content in a malloc'd *data. Every mismatch is
 * CAIRN_ECORRUPT naming the object and what is wrong (an object version
 * this build does not read: CAIRN_EVERSION). */
cairn_status repo_obj_get(repo *r, const char *name, enum repo_obj_kind kind,
                          const uint8_t *want_sha, uint8_t **data, size_t *len);
/* Buffers a caller reading many objects keeps (a restore's WAL fetcher):
 * the stored object is read into obj (grown as needed), and the content
 * goes into img when it fits img_cap (then *data is img, handed over:
 * img becomes NULL), else into a new malloc'd buffer. {0} to start; free
 * with repo_reuse_free. */
struct repo_reuse {
    uint8_t *obj, *img;
    size_t obj_cap, img_cap;
    /* The content's SHA-256 (always checked) is the only check of it:
     * zstd's own checksum is not verified (codec_decompress_sha256). A
     * restore sets it; verify does not, so that it reports any damaged
     * byte of an object, also one that leaves the content intact. */
    bool sha_only;
};
/* repo_obj_get with the buffers of ru (the same checks and messages). */
cairn_status repo_obj_get_reuse(repo *r, const char *name, enum repo_obj_kind kind,
                                const uint8_t *want_sha, struct repo_reuse *ru, uint8_t **data,
                                size_t *len);
void repo_reuse_free(struct repo_reuse *ru);

/* Content-addressed packs: blobs/<first 2 hex>/<64 hex>. Put is skipped
 * when the blob exists (dedup); *added tells. */
void repo_blob_name(const uint8_t sha[CODEC_SHA256_LEN], char *out, size_t n);
cairn_status repo_blob_put(repo *r, const void *data, size_t len, bool shuffle,
                           uint8_t sha_out[CODEC_SHA256_LEN], bool *added, uint64_t *stored);
cairn_status repo_blob_get(repo *r, const uint8_t sha[CODEC_SHA256_LEN], uint8_t **data,
                           size_t *len);

/* ---- manifests: JSON text + "sha256:<hex>\n" of everything before it ---- */
/* Publishes text as backups/<id>/manifest with its checksum line. */
cairn_status repo_manifest_put(repo *r, const char *id, const char *text, size_t len);
/* Reads and checks it; *text: the JSON part, NUL-terminated. */
cairn_status repo_manifest_get(repo *r, const char *id, char **text, size_t *len);
/* Backup ids, sorted (ids sort by time). *ids: malloc'd array of malloc'd
 * strings; repo_strv_free frees it. */
cairn_status repo_backup_ids(repo *r, char ***ids, size_t *n);
void repo_strv_free(char **v, size_t n);

/* ---- archived WAL ---------------------------------------------------------
 * wal/TTTTTTTT/<segment name>: the segment, as object kind WAL;
 * wal/TTTTTTTT/<segment name>.json: its summary, published after the
 * segment (its presence is what "archived" means). */
struct repo_commit_ref {
    uint64_t lsn;          /* of the COMMIT record */
    uint64_t end;          /* end of the COMMIT record (where a cut after it falls) */
    int64_t time_us;
    uint64_t txn;
};
struct repo_rpoint {
    char name[CAIRN_MAX_NAME + 1];
    uint64_t lsn, end;
    int64_t time_us;
};
struct repo_seg_summary {
    uint32_t timeline;
    uint64_t start;        /* segment start LSN */
    uint64_t end_lsn;      /* end of its last real record (records end before it) */
    uint8_t sha[CODEC_SHA256_LEN]; /* of the segment bytes */
    uint64_t commits, records;
    struct repo_commit_ref first, last; /* commits: lsn 0 when none */
    uint64_t min_txn, max_txn;          /* committed in it (0, 0: none) */
    struct repo_rpoint *rpoints;
    size_t nrpoints;
};
void repo_seg_summary_free(struct repo_seg_summary *s);
cairn_status repo_seg_summary_put(repo *r, const struct repo_seg_summary *s);
cairn_status repo_seg_summary_get(repo *r, uint32_t timeline, uint64_t start,
                                  struct repo_seg_summary *out);
/* Archived segment starts of a timeline, sorted. */
cairn_status repo_wal_list(repo *r, uint32_t timeline, uint64_t **starts, size_t *n);
/* Whether one segment is archived (its summary is there: the mark
 * repo_wal_list goes by), without listing the timeline. */
cairn_status repo_wal_has(repo *r, uint32_t timeline, uint64_t start, bool *has);
void repo_wal_obj_name(uint32_t timeline, uint64_t start, bool summary, char *out, size_t n);

/* ---- timelines -------------------------------------------------------------
 * history/TTTTTTTT.history: the history file of timeline T (engine/restore.h
 * gives its lines), copied from the database that started T. */
/* Parses the text of timeline tl's history file (wal_history_parse: the
 * engine's reading, with the segment size of the repository's database
 * when it is bound); CAIRN_ECORRUPT naming `what`, the offset and line. */
cairn_status repo_history_parse(repo *r, const char *text, size_t len, uint32_t tl,
                                const char *what, struct wal_hist_line **out, size_t *n);
/* The ancestry of timeline tl (oldest first; empty for a timeline without
 * a history file, e.g. 1). */
cairn_status repo_history_get(repo *r, uint32_t tl, struct wal_hist_line **out, size_t *n);
cairn_status repo_history_put(repo *r, uint32_t tl, const char *text, size_t len);
/* "history/TTTTTTTT.history" (wal_history_name) into out. */
void repo_history_obj_name(uint32_t tl, char *out, size_t n);
/* Every timeline with archived WAL or a history file in the repository
 * (a backup's timeline is not looked for: callers that need it read the
 * manifests, as the planner and pitrctl list do). */
cairn_status repo_timelines(repo *r, uint32_t **tls, size_t *n);

#endif
