/*
 * test_wal_codec.c — WAL record codec, validity check, segment names,
 * segment headers and segment listing (wal/record.c, wal/segment.c).
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/crc32c.h"
#include "common/util.h"
#include "wal/wal.h"

#include "testutil.h"

#define SALT 0x5EEDF00Du
#define LSN 4096u

static uint8_t buf[WAL_REC_MAX + 64];

/* Seals the encoded record in buf at LSN with SALT and checks it back. */
static void seal_check(size_t n, struct wal_record *r)
{
    assert_int_equal(n % WAL_REC_ALIGN, 0);
    wal_rec_seal(buf, LSN, 1234, SALT);
    assert_true(wal_rec_check(buf, n, LSN, SALT, r));
    assert_int_equal(r->lsn, LSN);
    assert_int_equal(r->durable_hint, 1234);
    assert_int_equal(CAIRN_ALIGN_UP(r->len, 8u), n);
    assert_int_equal(r->body_len, r->len - WAL_REC_HDR);
    assert_ptr_equal(r->body, buf + WAL_REC_HDR);
    /* padding is zero */
    for (size_t i = r->len; i < n; i++)
        assert_int_equal(buf[i], 0);
}

static void test_upsert_roundtrip(void **state)
{
    (void)state;
    float vec[5] = {1.5f, -2.0f, 3.25f, 0.0f, 1e-3f};
    const char *pl = "{\"a\":1}";
    memset(buf, 0xAA, 256);
    size_t n = wal_enc_upsert(buf, 7, 99, 123456789, vec, 5, pl, (uint32_t)strlen(pl));
    assert_int_equal(n, wal_enc_upsert(NULL, 7, 99, 123456789, vec, 5, pl,
                                       (uint32_t)strlen(pl)));
    struct wal_record r;
    seal_check(n, &r);
    assert_int_equal(r.type, WAL_REC_UPSERT);
    assert_int_equal(r.coll_id, 7);
    assert_int_equal(r.txn_id, 99);
    assert_int_equal(r.flags, 0);
    struct wal_upsert u;
    assert_int_equal(wal_dec_upsert(&r, &u), CAIRN_OK);
    assert_int_equal(u.id, 123456789);
    assert_int_equal(u.dim, 5);
    assert_int_equal(u.payload_len, strlen(pl));
    assert_memory_equal(u.vec, vec, sizeof vec);
    assert_true(((uintptr_t)u.vec & 3) == 0);
    assert_memory_equal(u.payload, pl, strlen(pl));

    /* no payload */
    n = wal_enc_upsert(buf, 1, 2, 3, vec, 2, NULL, 0);
    seal_check(n, &r);
    assert_int_equal(wal_dec_upsert(&r, &u), CAIRN_OK);
    assert_null(u.payload);
    assert_int_equal(u.payload_len, 0);
    assert_int_equal(u.dim, 2);

    /* the largest record */
    static float big[65536];
    static char bigp[1u << 20];
    for (size_t i = 0; i < 65536; i++)
        big[i] = (float)i;
    memset(bigp, 'x', sizeof bigp);
    n = wal_enc_upsert(buf, 1, 2, 3, big, 65536, bigp, sizeof bigp);
    assert_int_equal(n, WAL_REC_MAX);
    seal_check(n, &r);
    assert_int_equal(wal_dec_upsert(&r, &u), CAIRN_OK);
    assert_int_equal(u.dim, 65536);
    assert_int_equal(u.payload_len, sizeof bigp);
}

static void test_small_roundtrips(void **state)
{
    (void)state;
    struct wal_record r;
    size_t n = wal_enc_delete(buf, 3, 44, 0xFFFFFFFFFFFFFFFFull);
    assert_int_equal(n, wal_enc_delete(NULL, 3, 44, 1));
    seal_check(n, &r);
    assert_int_equal(r.type, WAL_REC_DELETE);
    assert_int_equal(r.coll_id, 3);
    assert_int_equal(r.txn_id, 44);
    uint64_t id = 0;
    assert_int_equal(wal_dec_delete(&r, &id), CAIRN_OK);
    assert_int_equal(id, 0xFFFFFFFFFFFFFFFFull);

    n = wal_enc_commit(buf, 45, -17, 12);
    assert_int_equal(n, wal_enc_commit(NULL, 0, 0, 0));
    seal_check(n, &r);
    assert_int_equal(r.type, WAL_REC_COMMIT);
    assert_int_equal(r.coll_id, 0);
    assert_int_equal(r.txn_id, 45);
    struct wal_commit c;
    assert_int_equal(wal_dec_commit(&r, &c), CAIRN_OK);
    assert_int_equal(c.time_us, -17);
    assert_int_equal(c.nrecords, 12);

    n = wal_enc_create_coll(buf, 9, 46, 768, 2, "docs", 4);
    assert_int_equal(n, wal_enc_create_coll(NULL, 9, 46, 768, 2, "docs", 4));
    seal_check(n, &r);
    struct wal_create_coll cc;
    assert_int_equal(wal_dec_create_coll(&r, &cc), CAIRN_OK);
    assert_int_equal(r.coll_id, 9);
    assert_int_equal(cc.dim, 768);
    assert_int_equal(cc.metric, 2);
    assert_int_equal(cc.index_kind, 0);
    assert_int_equal(cc.name_len, 4);
    assert_memory_equal(cc.name, "docs", 4);

    n = wal_enc_create_coll_ex(buf, 9, 46, 128, 1, 1, 16, 200, "hnsw-coll", 9);
    seal_check(n, &r);
    assert_int_equal(wal_dec_create_coll(&r, &cc), CAIRN_OK);
    assert_int_equal(cc.index_kind, 1);
    assert_int_equal(cc.hnsw_m, 16);
    assert_int_equal(cc.hnsw_ef, 200);
    assert_memory_equal(cc.name, "hnsw-coll", 9);

    n = wal_enc_drop_coll(buf, 9, 47);
    assert_int_equal(n, WAL_REC_HDR);
    seal_check(n, &r);
    assert_int_equal(r.type, WAL_REC_DROP_COLL);
    assert_int_equal(r.body_len, 0);
    assert_int_equal(r.coll_id, 9);

    n = wal_enc_restore_point(buf, 1700000000000000ll, "before-migration", 16);
    seal_check(n, &r);
    assert_int_equal(r.txn_id, 0);
    struct wal_restore_point rp;
    assert_int_equal(wal_dec_restore_point(&r, &rp), CAIRN_OK);
    assert_int_equal(rp.time_us, 1700000000000000ll);
    assert_int_equal(rp.name_len, 16);
    assert_memory_equal(rp.name, "before-migration", 16);

    n = wal_enc_switch(buf);
    assert_int_equal(n, WAL_REC_HDR);
    seal_check(n, &r);
    assert_int_equal(r.type, WAL_REC_SWITCH);

    n = wal_enc_pad(buf, 4096 - 200);
    assert_int_equal(n, 4096 - 200);
    seal_check(n, &r);
    assert_int_equal(r.type, WAL_REC_PAD);
    assert_int_equal(r.len, 4096 - 200);
    assert_int_equal(r.coll_id, 0);
    assert_int_equal(r.txn_id, 0);
    for (size_t i = WAL_REC_HDR; i < n; i++)
        assert_int_equal(buf[i], 0);

    /* where a flush's PAD ends: the next block boundary, the one after with
     * fewer than a header's bytes left, nothing on a boundary */
    assert_int_equal(wal_pad_to(8192), 8192);
    assert_int_equal(wal_pad_to(8192 + 8), 12288);
    assert_int_equal(wal_pad_to(12288 - WAL_REC_HDR), 12288);
    assert_int_equal(wal_pad_to(12288 - WAL_REC_HDR + 8), 16384);
    /* and where the log goes on: past a PAD filling the segment, at the
     * next segment's first record */
    uint64_t seg = 1ull << 21;
    assert_int_equal(wal_after_flush(seg - 4000, 21), seg + WAL_SEG_DATA);
    assert_int_equal(wal_after_flush(seg - 8000, 21), seg - 4096);
    assert_int_equal(wal_after_flush(seg + WAL_SEG_DATA, 21), seg + WAL_SEG_DATA);

    assert_string_equal(wal_rec_type_name(WAL_REC_UPSERT), "UPSERT");
    assert_string_equal(wal_rec_type_name(WAL_REC_SWITCH), "SWITCH");
    assert_string_equal(wal_rec_type_name(WAL_REC_PAD), "PAD");
    assert_string_equal(wal_rec_type_name(0), "?");
    assert_string_equal(wal_rec_type_name(200), "?");
}

/* Sets a header field of the sealed record and re-seals the crc unless
 * told not to. */
static size_t fresh_delete(void)
{
    size_t n = wal_enc_delete(buf, 3, 44, 77);
    wal_rec_seal(buf, LSN, 0, SALT);
    return n;
}

static void reseal_crc(void)
{
    uint32_t len = ld32(buf + 4);
    st32(buf, crc32c(SALT, buf + 4, len - 4));
}

static void test_check_rejects(void **state)
{
    (void)state;
    struct wal_record r;
    size_t n = fresh_delete();
    assert_true(wal_rec_check(buf, n, LSN, SALT, &r));

    /* zero length, even with a matching crc */
    st32(buf + 4, 0);
    assert_false(wal_rec_check(buf, n, LSN, SALT, &r));
    /* short length (< header) */
    fresh_delete();
    st32(buf + 4, WAL_REC_HDR - 1);
    assert_false(wal_rec_check(buf, n, LSN, SALT, &r));
    st32(buf + 4, 4);
    assert_false(wal_rec_check(buf, n, LSN, SALT, &r));
    /* oversized */
    fresh_delete();
    st32(buf + 4, WAL_REC_MAX + 1);
    assert_false(wal_rec_check(buf, sizeof buf, LSN, SALT, &r));
    st32(buf + 4, 0xFFFFFFFFu);
    assert_false(wal_rec_check(buf, sizeof buf, LSN, SALT, &r));
    /* length beyond what is available (does not fit) */
    fresh_delete();
    assert_false(wal_rec_check(buf, n - 1, LSN, SALT, &r));
    assert_false(wal_rec_check(buf, WAL_REC_HDR - 1, LSN, SALT, &r));
    assert_false(wal_rec_check(buf, 0, LSN, SALT, &r));
    /* bad type, crc recomputed so only the type is wrong */
    fresh_delete();
    buf[8] = 0;
    reseal_crc();
    assert_false(wal_rec_check(buf, n, LSN, SALT, &r));
    buf[8] = WAL_REC_TYPE_MAX_ + 1;
    reseal_crc();
    assert_false(wal_rec_check(buf, n, LSN, SALT, &r));
    buf[8] = 0xFF;
    reseal_crc();
    assert_false(wal_rec_check(buf, n, LSN, SALT, &r));
    /* wrong LSN: header says LSN, position is elsewhere */
    fresh_delete();
    assert_false(wal_rec_check(buf, n, LSN + 8, SALT, &r));
    assert_false(wal_rec_check(buf, n, 0, SALT, &r));
    /* bad crc: one flipped bit anywhere in bytes 0..len */
    for (size_t i = 0; i < WAL_REC_HDR + 8; i++) {
        if (i >= 4 && i < 8)
            continue; /* the length: covered by the length tests */
        if (i >= 16 && i < 24)
            continue; /* the LSN: covered above */
        fresh_delete();
        buf[i] ^= 0x10;
        assert_false(wal_rec_check(buf, n, LSN, SALT, &r));
    }
    /* wrong salt (a record of another segment) */
    fresh_delete();
    assert_false(wal_rec_check(buf, n, LSN, SALT ^ 1, &r));
    /* zeros (preallocated space) */
    memset(buf, 0, 128);
    assert_false(wal_rec_check(buf, 128, LSN, SALT, &r));
    assert_false(wal_rec_check(buf, 128, 0, 0, &r));
    /* padding is not covered by the crc */
    n = wal_enc_upsert(buf, 1, 1, 1, (const float[]){1.0f}, 1, "a", 1);
    wal_rec_seal(buf, LSN, 0, SALT);
    buf[n - 1] = 0x55;
    assert_true(wal_rec_check(buf, n, LSN, SALT, &r));
}

static void test_decode_rejects(void **state)
{
    (void)state;
    struct wal_record r;
    float v[4] = {0};
    size_t n = wal_enc_upsert(buf, 1, 1, 1, v, 4, "{}", 2);
    wal_rec_seal(buf, LSN, 0, SALT);
    assert_true(wal_rec_check(buf, n, LSN, SALT, &r));
    struct wal_upsert u;
    struct wal_record bad = r;
    bad.body_len -= 1;
    assert_int_equal(wal_dec_upsert(&bad, &u), CAIRN_ECORRUPT);
    assert_non_null(strstr(cairn_last_error(), "LSN 4096"));
    bad.body_len = 15;
    assert_int_equal(wal_dec_upsert(&bad, &u), CAIRN_ECORRUPT);
    /* dim that would overflow a 32-bit size computation */
    uint8_t body[32] = {0};
    st32(body + 8, 0x40000000u);
    bad.body = body;
    bad.body_len = 16;
    assert_int_equal(wal_dec_upsert(&bad, &u), CAIRN_ECORRUPT);
    /* type mismatch */
    uint64_t id;
    assert_int_equal(wal_dec_delete(&r, &id), CAIRN_EINVAL);
    struct wal_commit c;
    assert_int_equal(wal_dec_commit(&r, &c), CAIRN_EINVAL);

    n = wal_enc_delete(buf, 1, 1, 1);
    wal_rec_seal(buf, LSN, 0, SALT);
    assert_true(wal_rec_check(buf, n, LSN, SALT, &r));
    r.body_len = 7;
    assert_int_equal(wal_dec_delete(&r, &id), CAIRN_ECORRUPT);

    n = wal_enc_commit(buf, 1, 1, 1);
    wal_rec_seal(buf, LSN, 0, SALT);
    assert_true(wal_rec_check(buf, n, LSN, SALT, &r));
    r.body_len = 20;
    assert_int_equal(wal_dec_commit(&r, &c), CAIRN_ECORRUPT);

    n = wal_enc_create_coll(buf, 1, 1, 4, 1, "abc", 3);
    wal_rec_seal(buf, LSN, 0, SALT);
    assert_true(wal_rec_check(buf, n, LSN, SALT, &r));
    struct wal_create_coll cc;
    r.body_len = 24 + 2; /* name length byte says 3 */
    assert_int_equal(wal_dec_create_coll(&r, &cc), CAIRN_ECORRUPT);
    r.body_len = 10;
    assert_int_equal(wal_dec_create_coll(&r, &cc), CAIRN_ECORRUPT);

    n = wal_enc_restore_point(buf, 5, "rp", 2);
    wal_rec_seal(buf, LSN, 0, SALT);
    assert_true(wal_rec_check(buf, n, LSN, SALT, &r));
    struct wal_restore_point rp;
    r.body_len = 16 + 3;
    assert_int_equal(wal_dec_restore_point(&r, &rp), CAIRN_ECORRUPT);
    r.body_len = 8;
    assert_int_equal(wal_dec_restore_point(&r, &rp), CAIRN_ECORRUPT);

    /* reserved bytes must be zero (a decoded record re-encodes to itself) */
    n = wal_enc_restore_point(buf, 5, "rp", 2);
    buf[WAL_REC_HDR + 12] = 1;
    wal_rec_seal(buf, LSN, 0, SALT);
    assert_true(wal_rec_check(buf, n, LSN, SALT, &r));
    assert_int_equal(wal_dec_restore_point(&r, &rp), CAIRN_ECORRUPT);
    assert_non_null(strstr(cairn_last_error(), "reserved"));
    n = wal_enc_commit(buf, 1, 1, 1);
    buf[WAL_REC_HDR + 15] = 0x80;
    wal_rec_seal(buf, LSN, 0, SALT);
    assert_true(wal_rec_check(buf, n, LSN, SALT, &r));
    assert_int_equal(wal_dec_commit(&r, &c), CAIRN_ECORRUPT);
    for (int off = 6; off < 24; off += 14) { /* u16 at 6, u32 at 20 */
        n = wal_enc_create_coll(buf, 1, 1, 4, 1, "abc", 3);
        buf[WAL_REC_HDR + off] = 2;
        wal_rec_seal(buf, LSN, 0, SALT);
        assert_true(wal_rec_check(buf, n, LSN, SALT, &r));
        assert_int_equal(wal_dec_create_coll(&r, &cc), CAIRN_ECORRUPT);
    }
}

static void test_seg_names(void **state)
{
    (void)state;
    char name[64];
    wal_seg_name(name, sizeof name, 1, 0);
    assert_string_equal(name, "00000001-0000000000000000.wal");
    wal_seg_name(name, sizeof name, 0xABCDEF12u, 0x1234567890ABCDEFull);
    assert_string_equal(name, "ABCDEF12-1234567890ABCDEF.wal");
    uint32_t tl;
    uint64_t lsn;
    assert_true(wal_seg_parse_name(name, &tl, &lsn));
    assert_int_equal(tl, 0xABCDEF12u);
    assert_int_equal(lsn, 0x1234567890ABCDEFull);
    assert_true(wal_seg_parse_name("00000002-0000000001000000.wal", &tl, &lsn));
    assert_int_equal(tl, 2);
    assert_int_equal(lsn, 0x1000000);

    const char *bad[] = {
        "",
        "00000001-0000000000000000.wa",
        "00000001-0000000000000000.wal.tmp",
        "00000001-0000000000000000.WAL",
        "00000001_0000000000000000.wal",
        "0000001-00000000000000000.wal",
        "00000001-000000000000000g.wal",
        "00000001-00000000000000ab.wal", /* lower case */
        "0000000G-0000000000000000.wal",
        "00000001-0000000000000000xwal",
        "x00000001-0000000000000000.wal",
        "history",
    };
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(bad); i++)
        assert_false(wal_seg_parse_name(bad[i], &tl, &lsn));
}

static void test_seg_header(void **state)
{
    (void)state;
    struct wal_seg_header h = {
        .version = WAL_FORMAT_VERSION,
        .timeline = 3,
        .seg_shift = 24,
        .start_lsn = 5ull << 24,
        .db_id = 0x0123456789ABCDEFull,
        .salt = 0xDEADBEEF,
    }, g;
    uint8_t hb[WAL_SEG_HDR];
    wal_seg_header_encode(hb, &h);
    assert_memory_equal(hb, "CAIRNWAL", 8);
    assert_int_equal(ld32(hb + 12), 64);
    assert_int_equal(ld32(hb + 60), crc32c(0, hb, 60));
    for (int i = 44; i < 60; i++)
        assert_int_equal(hb[i], 0);
    assert_int_equal(wal_seg_header_decode(hb, &g, "x.wal"), CAIRN_OK);
    assert_int_equal(g.version, h.version);
    assert_int_equal(g.timeline, 3);
    assert_int_equal(g.seg_shift, 24);
    assert_int_equal(g.start_lsn, h.start_lsn);
    assert_int_equal(g.db_id, h.db_id);
    assert_int_equal(g.salt, h.salt);

    uint8_t b2[WAL_SEG_HDR];
    /* bad magic */
    memcpy(b2, hb, sizeof b2);
    b2[0] = 'X';
    st32(b2 + 60, crc32c(0, b2, 60));
    assert_int_equal(wal_seg_header_decode(b2, &g, "/d/seg.wal"), CAIRN_ECORRUPT);
    assert_non_null(strstr(cairn_last_error(), "\"/d/seg.wal\""));
    assert_non_null(strstr(cairn_last_error(), "magic"));
    /* bad crc: every byte flip */
    for (int i = 8; i < 64; i++) {
        memcpy(b2, hb, sizeof b2);
        b2[i] ^= 0x01;
        cairn_status st = wal_seg_header_decode(b2, &g, "/d/seg.wal");
        if (i >= 8 && i < 12)
            assert_true(st == CAIRN_ECORRUPT || st == CAIRN_EVERSION);
        else
            assert_int_equal(st, CAIRN_ECORRUPT);
    }
    /* newer version -> EVERSION */
    memcpy(b2, hb, sizeof b2);
    st32(b2 + 8, WAL_FORMAT_VERSION + 1);
    st32(b2 + 60, crc32c(0, b2, 60));
    assert_int_equal(wal_seg_header_decode(b2, &g, "/d/seg.wal"), CAIRN_EVERSION);
    assert_non_null(strstr(cairn_last_error(), "\"/d/seg.wal\""));
    /* version 0, bad header size, bad shift, misaligned start (crc fixed) */
    memcpy(b2, hb, sizeof b2);
    st32(b2 + 8, 0);
    st32(b2 + 60, crc32c(0, b2, 60));
    assert_int_equal(wal_seg_header_decode(b2, &g, "s"), CAIRN_ECORRUPT);
    memcpy(b2, hb, sizeof b2);
    st32(b2 + 12, 128);
    st32(b2 + 60, crc32c(0, b2, 60));
    assert_int_equal(wal_seg_header_decode(b2, &g, "s"), CAIRN_ECORRUPT);
    memcpy(b2, hb, sizeof b2);
    st32(b2 + 20, 40);
    st32(b2 + 60, crc32c(0, b2, 60));
    assert_int_equal(wal_seg_header_decode(b2, &g, "s"), CAIRN_ECORRUPT);
    memcpy(b2, hb, sizeof b2);
    st64(b2 + 24, (5ull << 24) + 64);
    st32(b2 + 60, crc32c(0, b2, 60));
    assert_int_equal(wal_seg_header_decode(b2, &g, "s"), CAIRN_ECORRUPT);
}

static void test_seg_list(void **state)
{
    (void)state;
    char dir[512];
    assert_int_equal(tu_tmpbase(dir, sizeof dir, "wal_codec"), 0);
    const uint64_t starts[] = {3ull << 21, 0, 1ull << 21, 10ull << 21};
    char p[640], name[64];
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(starts); i++) {
        wal_seg_name(name, sizeof name, 1, starts[i]);
        snprintf(p, sizeof p, "%s/%s", dir, name);
        int fd = open(p, O_CREAT | O_WRONLY, 0644);
        assert_true(fd >= 0);
        close(fd);
    }
    wal_seg_name(name, sizeof name, 2, 1ull << 21);
    snprintf(p, sizeof p, "%s/%s", dir, name);
    close(open(p, O_CREAT | O_WRONLY, 0644));
    snprintf(p, sizeof p, "%s/00000001-0000000000400000.wal.tmp", dir);
    close(open(p, O_CREAT | O_WRONLY, 0644));

    uint64_t *v = NULL;
    size_t n = 0;
    assert_int_equal(wal_seg_list(dir, 1, &v, &n), CAIRN_OK);
    assert_int_equal(n, 4);
    assert_int_equal(v[0], 0);
    assert_int_equal(v[1], 1ull << 21);
    assert_int_equal(v[2], 3ull << 21);
    assert_int_equal(v[3], 10ull << 21);
    free(v);
    assert_int_equal(wal_seg_list(dir, 2, &v, &n), CAIRN_OK);
    assert_int_equal(n, 1);
    free(v);
    assert_int_equal(wal_seg_list(dir, 3, &v, &n), CAIRN_OK);
    assert_int_equal(n, 0);
    free(v);
    snprintf(p, sizeof p, "%s/nonexistent", dir);
    assert_int_equal(wal_seg_list(p, 1, &v, &n), CAIRN_ENOTFOUND);
    assert_non_null(strstr(cairn_last_error(), "nonexistent"));
    tu_rm_rf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_upsert_roundtrip),
        cmocka_unit_test(test_small_roundtrips),
        cmocka_unit_test(test_check_rejects),
        cmocka_unit_test(test_decode_rejects),
        cmocka_unit_test(test_seg_names),
        cmocka_unit_test(test_seg_header),
        cmocka_unit_test(test_seg_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
