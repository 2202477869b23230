/*
 * record.c — the WAL record codec: encoders (wal_enc_*), the validity check
 * (wal_rec_check), sealing (wal_rec_seal) and body decoders (wal_dec_*).
 * The layout is defined in wal/format.h; this file only follows it.
 *
 * Encoders write a header with crc, LSN and durable hint zero; the writer
 * seals the record (wal_rec_seal) once it knows where the record goes.
 * Decoders never trust a length: every body is checked against its type's
 * layout before a pointer into it is handed out.
 */
#include <inttypes.h>
#include <string.h>

#include "common/crc32c.h"
#include "common/err.h"
#include "common/util.h"
#include "wal/wal.h"

/* Header field offsets (format.h, RECORD HEADER). */
enum {
    RH_CRC = 0,
    RH_LEN = 4,
    RH_TYPE = 8,
    RH_FLAGS = 9,
    RH_RESERVED = 10,
    RH_COLL = 12,
    RH_LSN = 16,
    RH_TXN = 24,
    RH_DURABLE = 32
};

/* Body sizes of the fixed parts. */
enum {
    UPSERT_FIXED = 16,
    DELETE_BODY = 8,
    COMMIT_BODY = 16,
    CREATE_FIXED = 24,
    RESTORE_FIXED = 16
};

static size_t rec_size(uint64_t body)
{
    return (size_t)CAIRN_ALIGN_UP((uint64_t)WAL_REC_HDR + body, (uint64_t)WAL_REC_ALIGN);
}

/* Writes the header and zeroes the padding after the body. */
static void put_header(uint8_t *dst, size_t body, uint8_t type, uint32_t coll,
                       uint64_t txn)
{
    size_t len = WAL_REC_HDR + body;
    size_t padded = rec_size(body);
    memset(dst, 0, WAL_REC_HDR);
    st32(dst + RH_LEN, (uint32_t)len);
    dst[RH_TYPE] = type;
    st32(dst + RH_COLL, coll);
    st64(dst + RH_TXN, txn);
    if (padded > len)
        memset(dst + len, 0, padded - len);
}

size_t wal_enc_upsert(uint8_t *dst, uint32_t coll, uint64_t txn, uint64_t id,
                      const float *vec, uint32_t dim, const char *payload,
                      uint32_t payload_len)
{
    size_t body = UPSERT_FIXED + 4 * (size_t)dim + payload_len;
    if (!dst)
        return rec_size(body);
    put_header(dst, body, WAL_REC_UPSERT, coll, txn);
    uint8_t *b = dst + WAL_REC_HDR;
    st64(b, id);
    st32(b + 8, dim);
    st32(b + 12, payload_len);
    if (dim)
        memcpy(b + UPSERT_FIXED, vec, 4 * (size_t)dim);
    if (payload_len)
        memcpy(b + UPSERT_FIXED + 4 * (size_t)dim, payload, payload_len);
    return rec_size(body);
}

size_t wal_enc_delete(uint8_t *dst, uint32_t coll, uint64_t txn, uint64_t id)
{
    if (dst) {
        put_header(dst, DELETE_BODY, WAL_REC_DELETE, coll, txn);
        st64(dst + WAL_REC_HDR, id);
    }
    return rec_size(DELETE_BODY);
}

size_t wal_enc_commit(uint8_t *dst, uint64_t txn, int64_t time_us, uint32_t nrecords)
{
    if (dst) {
        put_header(dst, COMMIT_BODY, WAL_REC_COMMIT, 0, txn);
        uint8_t *b = dst + WAL_REC_HDR;
        st64(b, (uint64_t)time_us);
        st32(b + 8, nrecords);
        st32(b + 12, 0);
    }
    return rec_size(COMMIT_BODY);
}

size_t wal_enc_create_coll_ex(uint8_t *dst, uint32_t coll, uint64_t txn, uint32_t dim,
                              uint8_t metric, uint32_t index_kind, uint32_t hnsw_m,
                              uint32_t hnsw_ef, const char *name, uint8_t name_len)
{
    size_t body = CREATE_FIXED + (size_t)name_len;
    if (!dst)
        return rec_size(body);
    put_header(dst, body, WAL_REC_CREATE_COLL, coll, txn);
    uint8_t *b = dst + WAL_REC_HDR;
    st32(b, dim);
    b[4] = metric;
    b[5] = name_len;
    st16(b + 6, 0);
    st32(b + 8, index_kind);
    st32(b + 12, hnsw_m);
    st32(b + 16, hnsw_ef);
    st32(b + 20, 0);
    if (name_len)
        memcpy(b + CREATE_FIXED, name, name_len);
    return rec_size(body);
}

size_t wal_enc_create_coll(uint8_t *dst, uint32_t coll, uint64_t txn, uint32_t dim,
                           uint8_t metric, const char *name, uint8_t name_len)
{
    return wal_enc_create_coll_ex(dst, coll, txn, dim, metric, 0, 0, 0, name, name_len);
}

size_t wal_enc_drop_coll(uint8_t *dst, uint32_t coll, uint64_t txn)
{
    if (dst)
        put_header(dst, 0, WAL_REC_DROP_COLL, coll, txn);
    return rec_size(0);
}

size_t wal_enc_restore_point(uint8_t *dst, int64_t time_us, const char *name,
                             uint8_t name_len)
{
    size_t body = RESTORE_FIXED + (size_t)name_len;
    if (!dst)
        return rec_size(body);
    put_header(dst, body, WAL_REC_RESTORE_POINT, 0, 0);
    uint8_t *b = dst + WAL_REC_HDR;
    memset(b, 0, RESTORE_FIXED);
    st64(b, (uint64_t)time_us);
    b[8] = name_len;
    if (name_len)
        memcpy(b + RESTORE_FIXED, name, name_len);
    return rec_size(body);
}

size_t wal_enc_switch(uint8_t *dst)
{
    if (dst)
        put_header(dst, 0, WAL_REC_SWITCH, 0, 0);
    return WAL_REC_HDR;
}

uint64_t wal_pad_to(uint64_t end)
{
    uint64_t b = CAIRN_ALIGN_UP(end, (uint64_t)WAL_BLOCK);
    return b != end && b - end < WAL_REC_HDR ? b + WAL_BLOCK : b;
}

uint64_t wal_after_flush(uint64_t end, uint32_t seg_shift)
{
    uint64_t p = wal_pad_to(end);
    return p & ((UINT64_C(1) << seg_shift) - 1) ? p : p + WAL_SEG_DATA;
}

size_t wal_enc_pad(uint8_t *dst, size_t len)
{
    if (dst) {
        put_header(dst, len - WAL_REC_HDR, WAL_REC_PAD, 0, 0);
        memset(dst + WAL_REC_HDR, 0, len - WAL_REC_HDR);
    }
    return len;
}

const char *wal_rec_type_name(uint8_t type)
{
    switch (type) {
    case WAL_REC_UPSERT:
        return "UPSERT";
    case WAL_REC_DELETE:
        return "DELETE";
    case WAL_REC_COMMIT:
        return "COMMIT";
    case WAL_REC_CREATE_COLL:
        return "CREATE_COLL";
    case WAL_REC_DROP_COLL:
        return "DROP_COLL";
    case WAL_REC_RESTORE_POINT:
        return "RESTORE_POINT";
    case WAL_REC_SWITCH:
        return "SWITCH";
    case WAL_REC_PAD:
        return "PAD";
    default:
        return "?";
    }
}

bool wal_rec_check(const uint8_t *buf, size_t avail, uint64_t lsn, uint32_t salt,
                   struct wal_record *out)
{
    /* Cheapest rejections first: the tail scan calls this at every 8-byte
     * step of zeros and stale data. */
    if (avail < WAL_REC_HDR)
        return false;
    if (ld64(buf + RH_LSN) != lsn)
        return false;
    uint32_t len = ld32(buf + RH_LEN);
    if (len < WAL_REC_HDR || len > WAL_REC_MAX || len > avail)
        return false;
    uint8_t type = buf[RH_TYPE];
    if (type == 0 || type > WAL_REC_TYPE_MAX_)
        return false;
    if (crc32c(salt, buf + 4, len - 4) != ld32(buf + RH_CRC))
        return false;
    if (out) {
        out->lsn = lsn;
        out->len = len;
        out->type = type;
        out->flags = buf[RH_FLAGS];
        out->coll_id = ld32(buf + RH_COLL);
        out->txn_id = ld64(buf + RH_TXN);
        out->durable_hint = ld64(buf + RH_DURABLE);
        out->body = buf + WAL_REC_HDR;
        out->body_len = len - WAL_REC_HDR;
    }
    return true;
}

void wal_rec_seal(uint8_t *rec, uint64_t lsn, uint64_t durable, uint32_t salt)
{
    st64(rec + RH_LSN, lsn);
    st64(rec + RH_DURABLE, durable);
    uint32_t len = ld32(rec + RH_LEN);
    st32(rec + RH_CRC, crc32c(salt, rec + 4, len - 4));
}

/* ---- decoders ----------------------------------------------------------- */

static cairn_status wrong_type(const struct wal_record *r, uint8_t want)
{
    return cerr_set(CAIRN_EINVAL,
                    "could not decode WAL record at LSN %" PRIu64 ": it is %s, not %s",
                    r->lsn, wal_rec_type_name(r->type), wal_rec_type_name(want));
}

static cairn_status bad_reserved(const struct wal_record *r, unsigned off)
{
    return cerr_set(CAIRN_ECORRUPT,
                    "could not decode WAL record at LSN %" PRIu64
                    ": %s body has nonzero reserved bytes at %u",
                    r->lsn, wal_rec_type_name(r->type), off);
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

static cairn_status bad_body(const struct wal_record *r, uint64_t want)
{
    return cerr_set(CAIRN_ECORRUPT,
                    "could not decode WAL record at LSN %" PRIu64
                    ": %s body is %u bytes, expected %" PRIu64,
                    r->lsn, wal_rec_type_name(r->type), r->body_len, want);
}

cairn_status wal_dec_upsert(const struct wal_record *r, struct wal_upsert *out)
{
    if (r->type != WAL_REC_UPSERT)
        return wrong_type(r, WAL_REC_UPSERT);
    if (r->body_len < UPSERT_FIXED)
        return bad_body(r, UPSERT_FIXED);
    const uint8_t *b = r->body;
    uint32_t dim = ld32(b + 8);
    uint32_t plen = ld32(b + 12);
    uint64_t want = UPSERT_FIXED + 4 * (uint64_t)dim + plen;
    if (r->body_len != want)
        return bad_body(r, want);
    out->id = ld64(b);
    out->dim = dim;
    out->payload_len = plen;
    out->vec = (const float *)(const void *)(b + UPSERT_FIXED);
    out->payload = plen ? (const char *)(b + UPSERT_FIXED + 4 * (size_t)dim) : NULL;
    return CAIRN_OK;
}

cairn_status wal_dec_delete(const struct wal_record *r, uint64_t *id)
{
    if (r->type != WAL_REC_DELETE)
        return wrong_type(r, WAL_REC_DELETE);
    if (r->body_len != DELETE_BODY)
        return bad_body(r, DELETE_BODY);
    *id = ld64(r->body);
    return CAIRN_OK;
}

cairn_status wal_dec_commit(const struct wal_record *r, struct wal_commit *out)
{
    if (r->type != WAL_REC_COMMIT)
        return wrong_type(r, WAL_REC_COMMIT);
    if (r->body_len != COMMIT_BODY)
        return bad_body(r, COMMIT_BODY);
    if (!all_zero(r->body + 12, 4))
        return bad_reserved(r, 12);
    out->time_us = (int64_t)ld64(r->body);
    out->nrecords = ld32(r->body + 8);
    return CAIRN_OK;
}

cairn_status wal_dec_create_coll(const struct wal_record *r, struct wal_create_coll *out)
{
    if (r->type != WAL_REC_CREATE_COLL)
        return wrong_type(r, WAL_REC_CREATE_COLL);
    if (r->body_len < CREATE_FIXED)
        return bad_body(r, CREATE_FIXED);
    const uint8_t *b = r->body;
    uint8_t nlen = b[5];
    if (r->body_len != CREATE_FIXED + (uint32_t)nlen)
        return bad_body(r, CREATE_FIXED + (uint64_t)nlen);
    if (!all_zero(b + 6, 2))
        return bad_reserved(r, 6);
    if (!all_zero(b + 20, 4))
        return bad_reserved(r, 20);
    out->dim = ld32(b);
    out->metric = b[4];
    out->name_len = nlen;
    out->index_kind = ld32(b + 8);
    out->hnsw_m = ld32(b + 12);
    out->hnsw_ef = ld32(b + 16);
    out->name = (const char *)(b + CREATE_FIXED);
    return CAIRN_OK;
}

cairn_status wal_dec_restore_point(const struct wal_record *r,
                                   struct wal_restore_point *out)
{
    if (r->type != WAL_REC_RESTORE_POINT)
        return wrong_type(r, WAL_REC_RESTORE_POINT);
    if (r->body_len < RESTORE_FIXED)
        return bad_body(r, RESTORE_FIXED);
    const uint8_t *b = r->body;
    uint8_t nlen = b[8];
    if (r->body_len != RESTORE_FIXED + (uint32_t)nlen)
        return bad_body(r, RESTORE_FIXED + (uint64_t)nlen);
    if (!all_zero(b + 9, 7))
        return bad_reserved(r, 9);
    out->time_us = (int64_t)ld64(b);
    out->name_len = nlen;
    out->name = (const char *)(b + RESTORE_FIXED);
    return CAIRN_OK;
}
