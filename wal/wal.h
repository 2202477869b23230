/*
 * wal.h — the write-ahead log: record codec, segments, writer with group
 * commit, reader with torn-tail detection. Format: wal/format.h.
 * This layer knows records, not collections or points.
 */
#ifndef CAIRN_WAL_WAL_H
#define CAIRN_WAL_WAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn.h"
#include "wal/format.h"

/* ======================= record codec (wal/record.c) ==================== */

/* A decoded record; body points into the reader's buffer and lives until the
 * next wal_reader_next() call. */
struct wal_record {
    uint64_t lsn;
    uint32_t len;       /* header + body */
    uint8_t type;
    uint8_t flags;
    uint32_t coll_id;
    uint64_t txn_id;
    uint64_t durable_hint;
    const uint8_t *body;
    uint32_t body_len;
};

struct wal_upsert {
    uint64_t id;
    uint32_t dim;
    uint32_t payload_len;
    const float *vec;     /* may be unaligned-safe: 4-aligned within record */
    const char *payload;  /* not NUL-terminated; NULL if payload_len == 0 */
};
struct wal_commit {
    int64_t time_us;
    uint32_t nrecords;
};
struct wal_create_coll {
    uint32_t dim;
    uint8_t metric;
    uint32_t index_kind, hnsw_m, hnsw_ef;
    uint8_t name_len;
    const char *name; /* not NUL-terminated */
};
struct wal_restore_point {
    int64_t time_us;
    uint8_t name_len;
    const char *name;
};

/* Encoders append one record (header with crc/lsn/durable zero, body, zero
 * padding to 8) to dst and return the bytes used (a multiple of 8). With
 * dst == NULL they only return the size. The writer fills lsn, durable hint
 * and crc when the record is appended. */
size_t wal_enc_upsert(uint8_t *dst, uint32_t coll, uint64_t txn, uint64_t id,
                      const float *vec, uint32_t dim, const char *payload,
                      uint32_t payload_len);
size_t wal_enc_delete(uint8_t *dst, uint32_t coll, uint64_t txn, uint64_t id);
size_t wal_enc_commit(uint8_t *dst, uint64_t txn, int64_t time_us,
                      uint32_t nrecords);
size_t wal_enc_create_coll(uint8_t *dst, uint32_t coll, uint64_t txn,
                           uint32_t dim, uint8_t metric, const char *name,
                           uint8_t name_len);
size_t wal_enc_drop_coll(uint8_t *dst, uint32_t coll, uint64_t txn);
size_t wal_enc_restore_point(uint8_t *dst, int64_t time_us, const char *name,
                             uint8_t name_len);
/* CREATE_COLL with explicit index parameters (wal_enc_create_coll writes
 * kind 0 = flat, M 0, ef_construction 0). */
size_t wal_enc_create_coll_ex(uint8_t *dst, uint32_t coll, uint64_t txn,
                              uint32_t dim, uint8_t metric, uint32_t index_kind,
                              uint32_t hnsw_m, uint32_t hnsw_ef,
                              const char *name, uint8_t name_len);
/* SWITCH (header only, WAL_REC_HDR bytes) and PAD: only the writer appends
 * these; wal_writer_append() refuses them. */
size_t wal_enc_switch(uint8_t *dst);
/* A PAD record of `len` bytes in all (>= WAL_REC_HDR, a multiple of
 * WAL_REC_ALIGN), body zero. */
size_t wal_enc_pad(uint8_t *dst, size_t len);
/* Where the PAD closing a flush whose last record ends at `end` ends
 * (format.h, BLOCKS): the next block boundary, or the one after when fewer
 * than WAL_REC_HDR bytes are left; `end` itself on a boundary. */
uint64_t wal_pad_to(uint64_t end);
/* Where the log goes on after such a flush: wal_pad_to(end), or the first
 * record position of the next segment when the PAD fills its segment. */
uint64_t wal_after_flush(uint64_t end, uint32_t seg_shift);

/* Body decoders: check the body length against the type's layout; a
 * mismatch is CAIRN_ECORRUPT with the record's LSN in the message. */
cairn_status wal_dec_upsert(const struct wal_record *r, struct wal_upsert *out);
cairn_status wal_dec_delete(const struct wal_record *r, uint64_t *id);
cairn_status wal_dec_commit(const struct wal_record *r, struct wal_commit *out);
cairn_status wal_dec_create_coll(const struct wal_record *r,
                                 struct wal_create_coll *out);
cairn_status wal_dec_restore_point(const struct wal_record *r,
                                   struct wal_restore_point *out);

const char *wal_rec_type_name(uint8_t type); /* "UPSERT", ..., "?" */

/* Validates the record at buf[0..avail) (which sits at LSN `lsn` of a segment
 * with `salt`); fills *out on success. Returns true if valid. */
bool wal_rec_check(const uint8_t *buf, size_t avail, uint64_t lsn,
                   uint32_t salt, struct wal_record *out);
/* Finishes an encoded record in place: sets lsn, durable hint and crc. */
void wal_rec_seal(uint8_t *rec, uint64_t lsn, uint64_t durable, uint32_t salt);

/* ======================= segments (wal/segment.c) ======================= */

struct wal_seg_header {
    uint32_t version;
    uint32_t timeline;
    uint32_t seg_shift;   /* log2(segment size) */
    uint64_t start_lsn;
    uint64_t db_id;
    uint32_t salt;
};

/* "TTTTTTTT-LLLLLLLLLLLLLLLL.wal" into buf (>= 32 bytes). */
void wal_seg_name(char *buf, size_t n, uint32_t timeline, uint64_t start_lsn);
/* Parses a segment file name; false if it is not one. */
bool wal_seg_parse_name(const char *name, uint32_t *timeline, uint64_t *start_lsn);
/* A timeline's history file name, "TTTTTTTT.history" (8 upper-case hex
 * digits), into buf (>= 17 bytes); and its parse (false if name is not
 * one, or names timeline 0). */
void wal_history_name(char *buf, size_t n, uint32_t timeline);
bool wal_history_parse_name(const char *name, uint32_t *timeline);
/* One line of a timeline's history file (docs/format.md, "Timelines and
 * history files"): `parent` branched into the next timeline (the next
 * line's parent, or the file's own timeline) at switch_lsn; the child's
 * log starts at start_lsn. */
struct wal_hist_line {
    uint32_t parent;
    uint64_t switch_lsn, start_lsn;
};
/* "<parent, decimal> <switch, 16 hex> <start, 16 hex>\n": 36 to 45 bytes. */
#define WAL_HIST_LINE_MAX 45u
/* Writes line l into buf (>= WAL_HIST_LINE_MAX + 1 bytes); its length. */
size_t wal_history_format_line(char *buf, const struct wal_hist_line *l);
/* The one reading of a history file, for the engine (wal/) and the backup
 * repository alike: the text of timeline tl's history, every line checked:
 * the exact layout, parents increasing and below their child, each
 * child's log starting after its switch LSN (at a segment's data offset,
 * when seg_size is not 0), each switch at or after the start of the log
 * it lies in. Failures are CAIRN_ECORRUPT "could not read <what> at offset
 * O: line L is not ..." or "...: line L (...) does not follow from the
 * lines before it", or CAIRN_ENOMEM. *out is malloc'd (NULL on failure). */
cairn_status wal_history_parse(const char *text, size_t len, uint32_t tl, uint64_t seg_size,
                               const char *what, struct wal_hist_line **out, size_t *n);
void wal_seg_header_encode(uint8_t out[WAL_SEG_HDR], const struct wal_seg_header *h);
/* CAIRN_ECORRUPT (bad magic/crc/fields) or CAIRN_EVERSION; path in message. */
cairn_status wal_seg_header_decode(const uint8_t in[WAL_SEG_HDR],
                                   struct wal_seg_header *h, const char *path);

/* Sorted list of the segments of `timeline` in dir (start LSNs). */
cairn_status wal_seg_list(const char *waldir, uint32_t timeline,
                          uint64_t **starts, size_t *n);

/* ======================= writer (wal/writer.c) ========================== */

typedef struct wal_writer wal_writer;

struct wal_writer_opts {
    const char *waldir;
    uint32_t timeline;
    uint32_t seg_shift;
    uint64_t db_id;
    cairn_io_backend io;
    cairn_durability durability;
    uint32_t async_flush_ms;
    /* Called after everything before `durable_lsn` is on stable storage
     * (or, in ASYNC/NONE mode, written), in increasing LSN order, never two
     * at once, by the thread that completed the flush: the flusher, or in
     * SYNC mode a thread in wal_writer_wait() that led the group. It must
     * not call wait, flush or close. */
    void (*on_durable)(void *ctx, uint64_t durable_lsn);
    void *ctx;
    /* End of the last record before the end LSN given to open (struct
     * wal_end's rec_end), for wal_writer_end_lsn(); 0: the end LSN. */
    uint64_t rec_end;
};

/* Opens the writer to append at end_lsn (the end of the valid log as found
 * by recovery; the segment holding it must exist unless end_lsn is the very
 * start, 0, of a new log, in which case the first segment is created and
 * appending starts at LSN WAL_SEG_DATA). Starts the flusher thread and the
 * segment preallocator. */
cairn_status wal_writer_open(const struct wal_writer_opts *o, uint64_t end_lsn,
                             wal_writer **out);
/* Appends `len` bytes of encoded records (wal_enc_*) as one unit: they get
 * consecutive LSNs (with a SWITCH + new segment if needed). *first_lsn is the
 * LSN of the first record, *last_lsn of the last one, *end_lsn the end of the
 * last record (padding included). Thread-safe. Fails with CAIRN_EPOISONED
 * after any earlier write/sync failure. */
cairn_status wal_writer_append(wal_writer *w, const uint8_t *recs, size_t len,
                               uint64_t *first_lsn, uint64_t *last_lsn,
                               uint64_t *end_lsn);
/* Blocks until durable_lsn >= lsn (kicking the flusher). The failure status
 * of the flush if it failed. */
cairn_status wal_writer_wait(wal_writer *w, uint64_t lsn);
/* Writes and syncs everything appended so far. */
cairn_status wal_writer_flush(wal_writer *w);
/* Closes the current segment now (a SWITCH record, written and synced),
 * so that an archiver can copy it: the next record goes to the next
 * segment. Nothing happens (*switched false) when the current segment
 * holds no record yet. */
cairn_status wal_writer_switch(wal_writer *w, bool *switched);
/* End of the last record appended (or of the log at open): the PAD records
 * closing flushes are not counted, so a log that gained no record since
 * some LSN still ends there. */
uint64_t wal_writer_end_lsn(wal_writer *w);
uint64_t wal_writer_durable_lsn(wal_writer *w);
bool wal_writer_poisoned(wal_writer *w);
const char *wal_writer_io_name(wal_writer *w);
/* Total bytes of segment files currently on disk. */
uint64_t wal_writer_disk_bytes(wal_writer *w);
/* Flushes (unless poisoned), stops threads, closes files. Returns the status
 * of the final flush. NULL is a no-op. */
cairn_status wal_writer_close(wal_writer *w);

/* ======================= reader (wal/reader.c) ========================== */

typedef struct wal_reader wal_reader;

/* Where and why reading stopped. */
struct wal_end {
    uint64_t end_lsn;        /* end of the valid log (where the next record
                                goes: after the last PAD or SWITCH too) */
    uint64_t rec_end;        /* end of the last record returned (the start
                                position when none was) */
    bool torn;               /* an invalid record / garbage sat at end_lsn */
    uint64_t garbage_bytes;  /* nonzero bytes from end_lsn to the end of the
                                last segment holding any (torn part) */
    char seg_path[256];      /* segment holding end_lsn */
    uint64_t seg_offset;     /* end_lsn's offset in that segment */
    uint32_t segments_after; /* later segment files holding data (torn) */
};

/* Opens a reader at from_lsn (0 = the first record of the oldest segment).
 * The segment holding from_lsn must exist. */
cairn_status wal_reader_open(const char *waldir, uint32_t timeline,
                             uint64_t from_lsn, wal_reader **out);

/* A segment source: the segments of a log held somewhere else than a
 * directory of files. pitr_restore decompresses the archived segments
 * into memory while the replay reads them, instead of writing them into
 * the restored database's wal/ (which the restore deletes right after the
 * replay) and reading them back.
 *
 * list(ctx, timeline, &starts, &n): the start LSNs, ascending, of every
 * segment of `timeline` the source has or will have (*starts malloc'd,
 * the reader frees it; n 0: none). It does not wait.
 *
 * get(ctx, timeline, start, &img, &len): the bytes of that segment,
 * waiting while they are on their way; *img NULL when the source has no
 * such segment (the reader treats it as a missing file). An error status
 * with its message set (cerr) when the source could not produce it (a
 * fetch that failed, a damaged archive object); the reader fails with that
 * status and message, and stays failed. The image stays valid and
 * unchanged until put.
 *
 * put(ctx, timeline, start): the reader is done with an image get gave it
 * (it may get it again later). A reader holds at most the segment it is
 * in and, while deciding where the log ends, one later segment.
 *
 * `where` names the source in messages, in place of the WAL directory;
 * a segment is "<where>/<segment file name>", or what name() writes
 * when the source has one (where the segment really is: pitr/ names the
 * archived object). The callbacks are called by the reader's
 * thread only, never while the reader holds a lock. The reader reads and
 * checks an image exactly as it reads and checks a file (a length other
 * than the segment size is damage). */
struct wal_seg_source {
    cairn_status (*list)(void *ctx, uint32_t timeline, uint64_t **starts, size_t *n);
    cairn_status (*get)(void *ctx, uint32_t timeline, uint64_t start, const uint8_t **img,
                        size_t *len);
    void (*put)(void *ctx, uint32_t timeline, uint64_t start);
    void (*name)(void *ctx, uint32_t timeline, uint64_t start, char *buf, size_t n);
    void *ctx;
    const char *where;
};

/* wal_reader_open over a source instead of a directory. The source (the
 * struct, not only ctx) must outlive the reader. */
cairn_status wal_reader_open_src(const struct wal_seg_source *src, uint32_t timeline,
                                 uint64_t from_lsn, wal_reader **out);
/* Next valid record. Returns CAIRN_OK with *end false and *rec filled, or
 * CAIRN_OK with *end true at the end of the log, or CAIRN_ECORRUPT when an
 * invalid record is followed by data proven durable (message names segment
 * file and offset), or an I/O status. */
cairn_status wal_reader_next(wal_reader *r, struct wal_record *rec, bool *end);
/* After *end: where the log ended. */
const struct wal_end *wal_reader_end(const wal_reader *r);
uint64_t wal_reader_db_id(const wal_reader *r); /* from segment headers */
uint32_t wal_reader_seg_shift(const wal_reader *r);
void wal_reader_close(wal_reader *r);

/* Recovery: removes the torn tail found by a reader: zeroes the garbage
 * after end->end_lsn in its segment (fsynced) and deletes later segment
 * files holding data (dir fsynced). */
cairn_status wal_truncate_tail(const char *waldir, uint32_t timeline,
                               const struct wal_end *end);

#endif
