/*
 * format.h — the on-disk format of the cairn write-ahead log.
 *
 * All integers are little-endian. The LSN (log sequence number) of a byte is
 * its position in the log: the log is a sequence of fixed-size segments, and
 * segment k of a timeline covers LSNs [start, start + segment_size). LSN 0 is
 * never a valid record position (the first segment's header occupies it).
 *
 * SEGMENT FILES
 *   DB/wal/TTTTTTTT-LLLLLLLLLLLLLLLL.wal
 *   T = timeline (8 hex digits), L = start LSN (16 hex digits), upper case.
 *   A segment is created full size and zero-filled through a temporary file
 *   that is fsynced and renamed into place (then the directory is fsynced),
 *   so a segment with its final name always has a whole header.
 *
 * SEGMENT HEADER (64 bytes at offset 0; the rest of the segment's first
 * WAL_BLOCK bytes is zero and holds no record)
 *   off size field
 *     0    8 magic "CAIRNWAL"
 *     8    4 format version (WAL_FORMAT_VERSION); any other -> CAIRN_EVERSION
 *            (version 1, from development builds, put records from offset
 *            64 and did not pad flushes; it is not read)
 *    12    4 header size (64)
 *    16    4 timeline
 *    20    4 log2(segment size)
 *    24    8 start LSN (multiple of the segment size)
 *    32    8 database id (random, fixed at database creation)
 *    40    4 salt (random per segment creation; seeds every record CRC)
 *    44   16 reserved, zero
 *    60    4 crc32c of bytes 0..59 (seed 0)
 *
 * RECORDS start at segment offset WAL_SEG_DATA (4096), each at an 8-byte
 * aligned LSN. A record never spans segments: when the next record does not
 * fit, the writer puts a SWITCH record (header only) and continues in the
 * next segment. The last WAL_REC_HDR bytes of a segment are reserved so a
 * SWITCH always fits (a PAD may end exactly at the segment end).
 *
 * BLOCKS. Every write of the log ends on a multiple of WAL_BLOCK (4096): the
 * writer closes each flush with a PAD record reaching the next block
 * boundary (or the one after, when fewer than WAL_REC_HDR bytes are left),
 * or with a SWITCH (the segment's remaining bytes stay zero). So no write
 * ever touches a 512-byte or 4 KiB sector holding bytes of an earlier write:
 * a device that garbles every sector an interrupted write covers (no
 * "powersafe overwrite") cannot damage records that were already durable.
 * A PAD reaching the segment end continues the log in the next segment, as
 * a SWITCH does. A log whose valid records end inside a block ends in a
 * flush that never completed (nothing in it was acknowledged); the writer
 * opening there first pads that block and syncs, before any new record.
 *
 * RECORD HEADER (40 bytes)
 *   off size field
 *     0    4 crc32c, seeded with the segment salt, over bytes 4..len of the
 *            record (header after this field, then the body)
 *     4    4 len: header + body bytes (>= 40, <= WAL_REC_MAX); padding to
 *            the next multiple of 8 follows and is zero, not covered by crc
 *     8    1 type (enum wal_rec_type; 0 is never valid)
 *     9    1 flags (0)
 *    10    2 reserved (0)
 *    12    4 collection id (0 for records not about one collection)
 *    16    8 LSN of this record (must equal its position)
 *    24    8 transaction id (0 for records outside transactions)
 *    32    8 durable hint: the writer's durable LSN when this record was
 *            appended. Everything before it was on stable storage before
 *            this record was written.
 *
 * VALIDITY. A record at position P is valid iff: len in range, type known,
 * header LSN == P, the record fits in its segment, and the crc matches.
 * Stale bytes from an older use of the file fail the LSN or salt check;
 * preallocated zeros fail the len/type check.
 *
 * END OF LOG vs CORRUPTION. Reading stops at the first invalid record P.
 * It is a torn tail (truncated, logged) unless some later valid record Q
 * (in this or a later segment) has durable hint > P: then P was durable
 * before Q was written, so P is damaged data, not an unfinished write, and
 * the log is corrupt (CAIRN_ECORRUPT naming segment and offset).
 *
 * RECORD BODIES (offsets from the start of the body)
 *   UPSERT (coll, txn)   0 u64 point id, 8 u32 dim, 12 u32 payload length,
 *                        16 float32[dim], then payload bytes (JSON text)
 *   DELETE (coll, txn)   0 u64 point id
 *   COMMIT (txn)         0 i64 commit time (us since epoch),
 *                        8 u32 number of records in the transaction
 *                        (this one excluded), 12 u32 reserved 0
 *   CREATE_COLL (coll, txn) 0 u32 dim, 4 u8 metric, 5 u8 name length,
 *                        6 u16 reserved, 8 index params (u32 kind 0=flat,
 *                        u32 M, u32 ef_construction, u32 reserved), 24 name
 *   DROP_COLL (coll, txn) empty
 *   RESTORE_POINT (txn 0) 0 i64 time (us), 8 u8 name length, 9..15 reserved,
 *                        16 name
 *   SWITCH               empty; the rest of the segment is unused
 *   PAD                  zeros; it ends on a multiple of WAL_BLOCK (or at
 *                        the segment end); coll and txn 0. Readers skip it.
 *
 * A transaction is its records followed by its COMMIT; records of several
 * transactions never interleave (a transaction is appended in one piece).
 * Records of a transaction without a COMMIT in the log never apply.
 *
 * Changing any of this breaks compatibility: bump WAL_FORMAT_VERSION.
 */
#ifndef CAIRN_WAL_FORMAT_H
#define CAIRN_WAL_FORMAT_H

#define WAL_FORMAT_VERSION 2u
#define WAL_MAGIC "CAIRNWAL"
#define WAL_SEG_HDR 64u
/* Every write of the log ends on a multiple of this (see BLOCKS). */
#define WAL_BLOCK 4096u
/* Segment offset of the first record. */
#define WAL_SEG_DATA WAL_BLOCK
#define WAL_REC_HDR 40u
#define WAL_REC_ALIGN 8u
/* Largest record: upsert header + 65536 floats + 1 MiB payload. */
#define WAL_REC_MAX (WAL_REC_HDR + 16u + 4u * 65536u + (1u << 20))

enum wal_rec_type {
    WAL_REC_UPSERT = 1,
    WAL_REC_DELETE = 2,
    WAL_REC_COMMIT = 3,
    WAL_REC_CREATE_COLL = 4,
    WAL_REC_DROP_COLL = 5,
    WAL_REC_RESTORE_POINT = 6,
    WAL_REC_SWITCH = 7,
    WAL_REC_PAD = 8,
    WAL_REC_TYPE_MAX_ = 8
};

#endif
