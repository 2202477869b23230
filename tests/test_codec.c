/*
 * test_codec.c — common/codec.c: SHA-256 against the FIPS 180-2 vectors
 * (one-shot and incremental in uneven pieces), hex, the 4-byte shuffle,
 * zstd round trips (the shuffle winning on smooth float data) and every
 * way a frame can be wrong, AES-256-GCM (a known answer from the GCM
 * specification, round trips, every tampering), key files.
 *
 * Random inputs come from a seeded generator; the seed is printed and can
 * be overridden with CAIRN_SEED.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <zstd.h>

#include "cairn.h"
#include "common/codec.h"

#include "testutil.h"

static uint64_t g_seed;
static char tmpdir[4096];

static void unhex_any(const char *s, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        assert_int_equal(sscanf(s + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
}

static void expect_digest(const uint8_t got[CODEC_SHA256_LEN], const char *want_hex)
{
    char hex[CODEC_SHA256_HEX];
    codec_hex(got, hex);
    assert_string_equal(hex, want_hex);
}

static void expect_error(cairn_status got, cairn_status want, const char *needle)
{
    assert_int_equal(got, want);
    if (!strstr(cairn_last_error(), needle))
        fail_msg("message \"%s\" does not name \"%s\"", cairn_last_error(), needle);
}

static void fill_random(uint64_t *s, uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(tu_splitmix(s) >> 56);
}

/* ---- SHA-256 ------------------------------------------------------------ */

static const char *const H_EMPTY =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
static const char *const H_ABC =
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
static const char *const M_448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
static const char *const H_448 =
    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1";
static const char *const H_MILLION_A =
    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";

static void test_sha256_vectors(void **state)
{
    (void)state;
    uint8_t h[CODEC_SHA256_LEN];
    codec_sha256("", 0, h);
    expect_digest(h, H_EMPTY);
    codec_sha256(NULL, 0, h);
    expect_digest(h, H_EMPTY);
    codec_sha256("abc", 3, h);
    expect_digest(h, H_ABC);
    codec_sha256(M_448, strlen(M_448), h);
    expect_digest(h, H_448);
}

/* One million 'a' (the pieces sha_update hands to libcrypto). */
static void test_sha256_million(void **state)
{
    (void)state;
    size_t n = 1000000;
    char *a = malloc(n);
    assert_non_null(a);
    memset(a, 'a', n);
    uint8_t h[CODEC_SHA256_LEN];
    codec_sha256(a, n, h);
    expect_digest(h, H_MILLION_A);
    free(a);
}

static void test_hex(void **state)
{
    (void)state;
    uint64_t s = g_seed ^ 0x4e11;
    for (int i = 0; i < 100; i++) {
        uint8_t in[CODEC_SHA256_LEN], back[CODEC_SHA256_LEN];
        char hex[CODEC_SHA256_HEX];
        fill_random(&s, in, sizeof in);
        codec_hex(in, hex);
        assert_int_equal(strlen(hex), 64);
        for (int k = 0; k < 64; k++)
            assert_true((hex[k] >= '0' && hex[k] <= '9') || (hex[k] >= 'a' && hex[k] <= 'f'));
        assert_true(codec_unhex(hex, back));
        assert_memory_equal(in, back, sizeof in);
        /* upper case is accepted too */
        for (int k = 0; k < 64; k++)
            if (hex[k] >= 'a')
                hex[k] = (char)(hex[k] - 'a' + 'A');
        memset(back, 0, sizeof back);
        assert_true(codec_unhex(hex, back));
        assert_memory_equal(in, back, sizeof in);
    }
    uint8_t fixed[CODEC_SHA256_LEN];
    unhex_any(H_ABC, fixed, sizeof fixed);
    char hex[CODEC_SHA256_HEX];
    codec_hex(fixed, hex);
    assert_string_equal(hex, H_ABC);

    /* Rejected: wrong lengths, non-hex anywhere, signs, spaces, NULL. The
     * output is left alone. */
    char bad[80];
    uint8_t out[CODEC_SHA256_LEN];
    memset(out, 0x5a, sizeof out);
    assert_false(codec_unhex(NULL, out));
    assert_false(codec_unhex("", out));
    snprintf(bad, sizeof bad, "%.63s", H_ABC);
    assert_false(codec_unhex(bad, out));
    snprintf(bad, sizeof bad, "%s0", H_ABC);
    assert_false(codec_unhex(bad, out));
    snprintf(bad, sizeof bad, " %.63s", H_ABC);
    assert_false(codec_unhex(bad, out));
    snprintf(bad, sizeof bad, "%s\n", H_ABC);
    assert_false(codec_unhex(bad, out));
    const char notdig[] = {'g', 'G', 'x', ' ', '-', '+', ':', '@', '`', '/', '\xff'};
    for (int pos = 0; pos < 64; pos += 7)
        for (size_t k = 0; k < sizeof notdig; k++) {
            snprintf(bad, sizeof bad, "%s", H_ABC);
            bad[pos] = notdig[k];
            assert_false(codec_unhex(bad, out));
        }
    for (size_t i = 0; i < sizeof out; i++)
        assert_int_equal(out[i], 0x5a);
}

/* ---- shuffle -------------------------------------------------------------- */

static void test_shuffle(void **state)
{
    (void)state;
    /* The layout: element bytes grouped, the tail copied. */
    const uint8_t in[10] = {0, 1, 2, 3, 10, 11, 12, 13, 98, 99};
    const uint8_t want[10] = {0, 10, 1, 11, 2, 12, 3, 13, 98, 99};
    uint8_t out[10], back[10];
    codec_shuffle4(out, in, sizeof in);
    assert_memory_equal(out, want, sizeof want);
    codec_unshuffle4(back, out, sizeof out);
    assert_memory_equal(back, in, sizeof in);

    uint64_t s = g_seed ^ 0x5ff1e;
    size_t lens[15];
    for (size_t i = 0; i < 14; i++)
        lens[i] = i;
    lens[14] = 1000003;
    for (size_t t = 0; t < sizeof lens / sizeof lens[0]; t++) {
        size_t n = lens[t];
        uint8_t *a = malloc(n + 1), *b = malloc(n + 1), *c = malloc(n + 1);
        assert_true(a && b && c);
        fill_random(&s, a, n);
        codec_shuffle4(b, a, n);
        codec_unshuffle4(c, b, n);
        assert_memory_equal(a, c, n);
        /* byte j of element i lands at j * (n / 4) + i */
        size_t q = n / 4;
        for (size_t i = 0; i < q; i += 1 + i / 3)
            for (size_t j = 0; j < 4; j++)
                assert_int_equal(b[j * q + i], a[4 * i + j]);
        for (size_t i = 4 * q; i < n; i++)
            assert_int_equal(b[i], a[i]);
        free(a);
        free(b);
        free(c);
    }
}

/* ---- compression ------------------------------------------------------------ */

/* n floats of a seeded random walk: neighbours are close, so their sign and
 * exponent bytes repeat, but their low mantissa bytes are noise. */
static float *random_walk(uint64_t *s, size_t n)
{
    float *v = malloc(n * sizeof *v);
    assert_non_null(v);
    double x = 10.0;
    for (size_t i = 0; i < n; i++) {
        x += (tu_unit(s) - 0.5) * 0.01;
        v[i] = (float)x;
    }
    return v;
}

static void roundtrip(const void *src, size_t len, int level, bool try_shuffle,
                      bool *shuffled, size_t *clen)
{
    uint8_t *z = NULL;
    size_t zl = 0;
    assert_int_equal(codec_compress(src, len, level, try_shuffle, &z, &zl, shuffled, "rt"),
                     CAIRN_OK);
    assert_non_null(z);
    if (!try_shuffle)
        assert_false(*shuffled);
    uint8_t *back = malloc(len + 1);
    assert_non_null(back);
    assert_int_equal(codec_decompress(z, zl, *shuffled, back, len, "rt"), CAIRN_OK);
    if (len)
        assert_memory_equal(back, src, len);
    if (len >= 8) {
        /* The other flag gives other bytes: the flag is really used. */
        if (codec_decompress(z, zl, !*shuffled, back, len, "rt") == CAIRN_OK)
            assert_true(memcmp(back, src, len) != 0);
    }
    free(back);
    free(z);
    *clen = zl;
}

static void test_compress_floats(void **state)
{
    (void)state;
    uint64_t s = g_seed ^ 0xf10a7;
    size_t n = 64 * 1024;
    float *v = random_walk(&s, n);
    size_t len = n * sizeof *v;
    bool sh;
    size_t plain = 0, shuf = 0;
    for (int level = 1; level <= 19; level += 9) {
        roundtrip(v, len, level, false, &sh, &plain);
        assert_false(sh);
        roundtrip(v, len, level, true, &sh, &shuf);
        assert_true(sh);
        print_message("codec: %zu float bytes at level %d: %zu plain, %zu shuffled\n", len,
                      level, plain, shuf);
        assert_true(shuf < plain);
        assert_true(shuf < len * 9 / 10);
    }
    /* A length that is not a multiple of 4 keeps its tail. */
    roundtrip(v, len - 3, 3, true, &sh, &shuf);
    free(v);
}

static void test_compress_random(void **state)
{
    (void)state;
    uint64_t s = g_seed ^ 0xb17e5;
    size_t lens[] = {0, 1, 3, 4, 7, 8, 100, 4096, 300001};
    for (size_t t = 0; t < sizeof lens / sizeof lens[0]; t++) {
        size_t n = lens[t];
        uint8_t *b = malloc(n + 1);
        assert_non_null(b);
        fill_random(&s, b, n);
        bool sh;
        size_t zl;
        roundtrip(n ? b : NULL, n, 3, false, &sh, &zl);
        roundtrip(b, n, 3, true, &sh, &zl);
        /* Noise does not shrink: stored blocks plus a small frame. */
        assert_true(zl <= n + 64);
        free(b);
    }
    /* Repetitive text compresses a lot, shuffled or not. */
    char text[20000];
    for (size_t i = 0; i < sizeof text; i++)
        text[i] = "the quick brown fox "[i % 20];
    bool sh;
    size_t zl;
    roundtrip(text, sizeof text, 5, true, &sh, &zl);
    assert_true(zl < 200);
}

static uint8_t *records(uint64_t *s, size_t *len)
{
    uint8_t *b = tu_record_bytes(s, len);
    assert_non_null(b);
    return b;
}

/* The fast levels (-7..-1) round-trip, with and without the shuffle, and
 * are really applied: on record-like data each compresses less than level
 * 3, -7 less than -1 (other bytes, then). Float noise (the random walk's
 * low bytes) does not shrink at a fast level: no Huffman coding of
 * literals, so zstd stores the blocks raw. */
static void test_compress_fast_levels(void **state)
{
    (void)state;
    uint64_t s = g_seed ^ 0xfa57;
    size_t len = 1u << 20;
    uint8_t *rec = records(&s, &len);
    bool sh;
    size_t zl3 = 0, zl1 = 0, zl7 = 0, zl, zs;
    roundtrip(rec, len, 3, false, &sh, &zl3);
    for (int level = -1; level >= -7; level--) {
        roundtrip(rec, len, level, false, &sh, &zl);
        assert_true(zl > zl3);
        assert_true(zl < len);
        if (level == -1)
            zl1 = zl;
        if (level == -7)
            zl7 = zl;
        roundtrip(rec, len, level, true, &sh, &zs);
        print_message("codec: %zu record bytes at level %d: %zu (level 3: %zu), %zu with the "
                      "shuffle trial\n", len, level, zl, zl3, zs);
    }
    assert_true(zl7 > zl1);
    free(rec);

    size_t n = 64 * 1024;
    float *v = random_walk(&s, n);
    for (int level = -1; level >= -7; level -= 3) {
        roundtrip(v, n * sizeof *v, level, false, &sh, &zl);
        assert_true(zl <= n * sizeof *v + 64);
        roundtrip(v, n * sizeof *v - 3, level, true, &sh, &zs);
        print_message("codec: %zu float bytes at level %d: %zu plain, %zu with the shuffle "
                      "trial\n", n * sizeof *v, level, zl, zs);
    }
    free(v);
    /* empty, tiny and noise inputs at a fast level */
    static const size_t lens[] = {0, 1, 7, 4096, 100003};
    for (size_t t = 0; t < sizeof lens / sizeof lens[0]; t++) {
        uint8_t *buf = malloc(lens[t] + 1);
        assert_non_null(buf);
        fill_random(&s, buf, lens[t]);
        roundtrip(lens[t] ? buf : NULL, lens[t], -1, false, &sh, &zl);
        assert_true(zl <= lens[t] + 64);
        roundtrip(buf, lens[t], -7, true, &sh, &zl);
        assert_true(zl <= lens[t] + 64);
        free(buf);
    }
}

static void test_compress_bad_args(void **state)
{
    (void)state;
    uint8_t *z = (uint8_t *)1;
    size_t zl = 1;
    bool sh = true;
    expect_error(codec_compress("abc", 3, 0, false, &z, &zl, &sh, "blob-x"), CAIRN_EINVAL,
                 "blob-x");
    assert_null(z);
    expect_error(codec_compress("abc", 3, 20, false, &z, &zl, &sh, "blob-x"), CAIRN_EINVAL,
                 "level 20");
    /* 0 (zstd's "default") and the levels past both ends: refused, the
     * message naming the level, the range and the object */
    static const int bad[] = {0, -8, 20, -100, 22, -131072};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        z = (uint8_t *)1;
        zl = 1;
        sh = true;
        char want[64];
        snprintf(want, sizeof want, "level %d is not in -7..-1 or 1..19", bad[i]);
        expect_error(codec_compress("abc", 3, bad[i], false, &z, &zl, &sh, "blob-x"),
                     CAIRN_EINVAL, want);
        expect_error(codec_compress("abc", 3, bad[i], true, &z, &zl, &sh, "blob-x"),
                     CAIRN_EINVAL, "blob-x");
        assert_null(z);
        assert_int_equal(zl, 0);
        assert_false(sh);
    }
    expect_error(codec_compress(NULL, 3, 3, false, &z, &zl, &sh, "blob-x"), CAIRN_EINVAL,
                 "blob-x");
}

/* A compressed frame of n seeded bytes: compressible (text-like) or noise. */
static uint8_t *make_frame(uint64_t *s, size_t n, bool noise, uint8_t **raw, size_t *zl)
{
    uint8_t *b = malloc(n);
    assert_non_null(b);
    for (size_t i = 0; i < n; i++)
        b[i] = noise ? (uint8_t)(tu_splitmix(s) >> 56) : (uint8_t)("abcab"[tu_splitmix(s) % 5]);
    uint8_t *z;
    bool sh;
    assert_int_equal(codec_compress(b, n, 3, false, &z, zl, &sh, "frame"), CAIRN_OK);
    *raw = b;
    return z;
}

static void test_decompress_corrupt(void **state)
{
    (void)state;
    uint64_t s = g_seed ^ 0xc0de;
    for (int noise = 0; noise <= 1; noise++) {
        size_t n = noise ? 300 : 3000;
        uint8_t *raw, *out = malloc(n);
        size_t zl;
        uint8_t *z = make_frame(&s, n, noise, &raw, &zl);
        assert_non_null(out);
        assert_int_equal(codec_decompress(z, zl, false, out, n, "blobs/ab/cd"), CAIRN_OK);
        assert_memory_equal(out, raw, n);

        /* every truncation */
        for (size_t k = 0; k < zl; k++)
            expect_error(codec_decompress(z, k, false, out, n, "blobs/ab/cd"), CAIRN_ECORRUPT,
                         "blobs/ab/cd");
        /* a byte too many, a second frame */
        uint8_t *longer = malloc(2 * zl);
        assert_non_null(longer);
        memcpy(longer, z, zl);
        longer[zl] = 0;
        expect_error(codec_decompress(longer, zl + 1, false, out, n, "blobs/ab/cd"),
                     CAIRN_ECORRUPT, "blobs/ab/cd");
        memcpy(longer + zl, z, zl);
        expect_error(codec_decompress(longer, 2 * zl, false, out, n, "blobs/ab/cd"),
                     CAIRN_ECORRUPT, "blobs/ab/cd");
        free(longer);
        /* the wrong expected length, either way */
        uint8_t *big = malloc(n + 1);
        assert_non_null(big);
        expect_error(codec_decompress(z, zl, false, big, n + 1, "blobs/ab/cd"),
                     CAIRN_ECORRUPT, "expected");
        expect_error(codec_decompress(z, zl, false, big, n - 1, "blobs/ab/cd"),
                     CAIRN_ECORRUPT, "blobs/ab/cd");
        free(big);
        /* Every single flipped bit gives CAIRN_ECORRUPT or, where it only
         * re-encodes the same content (an entropy table entry that no
         * symbol uses: the content checksum still matches), exactly the
         * original bytes: never wrong data. */
        size_t same = 0;
        for (size_t k = 0; k < zl; k++)
            for (int bit = 0; bit < 8; bit++) {
                z[k] ^= (uint8_t)(1u << bit);
                memset(out, 0xee, n);
                cairn_status st = codec_decompress(z, zl, false, out, n, "blobs/ab/cd");
                z[k] ^= (uint8_t)(1u << bit);
                if (st == CAIRN_OK && memcmp(out, raw, n) == 0) {
                    same++;
                    continue;
                }
                if (st != CAIRN_ECORRUPT)
                    fail_msg("bit %d of byte %zu of %zu flipped: status %s", bit, k, zl,
                             cairn_status_name(st));
                assert_non_null(strstr(cairn_last_error(), "blobs/ab/cd"));
            }
        print_message("codec: %zu-byte frame (%s): %zu of %zu bit flips decode to the same "
                      "content, the rest are CAIRN_ECORRUPT\n",
                      zl, noise ? "noise" : "text", same, 8 * zl);
        assert_true(same * 100 < 3 * 8 * zl); /* a handful: table entries only */
        /* untouched still decodes */
        assert_int_equal(codec_decompress(z, zl, false, out, n, "blobs/ab/cd"), CAIRN_OK);
        assert_memory_equal(out, raw, n);
        free(z);
        free(raw);
        free(out);
    }
    /* Not ours: empty input, garbage, a frame without content checksum or
     * without content size (written by plain zstd). */
    uint8_t out[64];
    expect_error(codec_decompress("", 0, false, out, 0, "w1"), CAIRN_ECORRUPT, "w1");
    expect_error(codec_decompress("garbage!", 8, false, out, 8, "w2"), CAIRN_ECORRUPT, "w2");
    uint8_t plainz[128];
    size_t pl = ZSTD_compress(plainz, sizeof plainz, "hello hello hello", 17, 3);
    assert_false(ZSTD_isError(pl));
    expect_error(codec_decompress(plainz, pl, false, out, 17, "w3"), CAIRN_ECORRUPT,
                 "checksum");
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    assert_non_null(cc);
    assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, 0)));
    assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 1)));
    ZSTD_outBuffer ob = {plainz, sizeof plainz, 0};
    ZSTD_inBuffer ib = {"hello hello hello", 17, 0};
    assert_int_equal(ZSTD_compressStream2(cc, &ob, &ib, ZSTD_e_end), 0);
    ZSTD_freeCCtx(cc);
    expect_error(codec_decompress(plainz, ob.pos, false, out, 17, "w4"), CAIRN_ECORRUPT,
                 "w4");
}

/* codec_decompress_sha256: the content's SHA-256 is the check. Every
 * bit flip of a frame is CAIRN_ECORRUPT or decodes, and when it decodes,
 * the SHA-256 it gives equals the original's exactly when the content is
 * the original's: never wrong data under the right hash. Damage to zstd's
 * own checksum alone (the frame's last 4 bytes) leaves the content intact:
 * codec_decompress refuses it, codec_decompress_sha256 decodes it with the
 * right hash. Frames that are not ours are refused as before. */
static void test_decompress_sha256(void **state)
{
    (void)state;
    uint64_t s = g_seed ^ 0x5a5a;
    for (int noise = 0; noise <= 1; noise++) {
        size_t n = noise ? 300 : 3000;
        uint8_t *raw, *out = malloc(n), want[CODEC_SHA256_LEN], got[CODEC_SHA256_LEN];
        size_t zl;
        uint8_t *z = make_frame(&s, n, noise, &raw, &zl);
        assert_non_null(out);
        codec_sha256(raw, n, want);
        assert_int_equal(codec_decompress_sha256(z, zl, false, out, n, got, "w/1"), CAIRN_OK);
        assert_memory_equal(out, raw, n);
        assert_memory_equal(got, want, CODEC_SHA256_LEN);
        size_t decoded = 0, wrong = 0;
        for (size_t k = 0; k < zl; k++)
            for (int bit = 0; bit < 8; bit++) {
                z[k] ^= (uint8_t)(1u << bit);
                memset(out, 0xee, n);
                cairn_status st = codec_decompress_sha256(z, zl, false, out, n, got, "w/1");
                z[k] ^= (uint8_t)(1u << bit);
                if (st != CAIRN_OK) {
                    if (st != CAIRN_ECORRUPT)
                        fail_msg("bit %d of byte %zu flipped: status %s", bit, k,
                                 cairn_status_name(st));
                    assert_non_null(strstr(cairn_last_error(), "w/1"));
                    continue;
                }
                decoded++;
                bool same = memcmp(out, raw, n) == 0;
                wrong += !same;
                if (same != (memcmp(got, want, CODEC_SHA256_LEN) == 0))
                    fail_msg("bit %d of byte %zu flipped: content %s, hash %s", bit, k,
                             same ? "intact" : "changed", same ? "differs" : "matches");
            }
        print_message("codec: %zu-byte frame (%s), zstd checksum not verified: %zu of %zu bit "
                      "flips decode (%zu of them to other content, caught by the hash)\n",
                      zl, noise ? "noise" : "text", decoded, 8 * zl, wrong);
        assert_true(decoded >= 32); /* at least the checksum's own bits */
        /* zstd's checksum alone damaged */
        z[zl - 1] ^= 0x40;
        expect_error(codec_decompress(z, zl, false, out, n, "w/2"), CAIRN_ECORRUPT, "w/2");
        assert_int_equal(codec_decompress_sha256(z, zl, false, out, n, got, "w/2"), CAIRN_OK);
        assert_memory_equal(out, raw, n);
        assert_memory_equal(got, want, CODEC_SHA256_LEN);
        free(z);
        free(raw);
        free(out);
    }
    /* not ours: no content checksum flag, garbage */
    uint8_t out[64], got[CODEC_SHA256_LEN];
    uint8_t plainz[128];
    size_t pl = ZSTD_compress(plainz, sizeof plainz, "hello hello hello", 17, 3);
    assert_false(ZSTD_isError(pl));
    expect_error(codec_decompress_sha256(plainz, pl, false, out, 17, got, "w3"), CAIRN_ECORRUPT,
                 "checksum");
    expect_error(codec_decompress_sha256("garbage!", 8, false, out, 8, got, "w4"),
                 CAIRN_ECORRUPT, "w4");
}

/* ---- AES-256-GCM ---------------------------------------------------------- */

/* McGrew & Viega, "The Galois/Counter Mode of Operation", test cases 13
 * and 14: AES-256, zero key, zero 96-bit IV. */
static void test_gcm_known_answer(void **state)
{
    (void)state;
    uint8_t key[CODEC_KEY_LEN] = {0}, nonce[CODEC_NONCE_LEN] = {0}, tag[CODEC_TAG_LEN];
    uint8_t ct[16], pt[16];
    unhex_any("530f8afbc74536b9a963b4f1c4cb738b", tag, sizeof tag);
    assert_int_equal(codec_open(key, NULL, 0, NULL, 0, NULL, nonce, tag, "tc13"), CAIRN_OK);
    unhex_any("cea7403d4d606b6e074ec5d3baf39d18", ct, sizeof ct);
    unhex_any("d0d1c8a799996bf0265b98b5d48ab919", tag, sizeof tag);
    memset(pt, 0xee, sizeof pt);
    assert_int_equal(codec_open(key, NULL, 0, ct, sizeof ct, pt, nonce, tag, "tc14"), CAIRN_OK);
    uint8_t zero[16] = {0};
    assert_memory_equal(pt, zero, sizeof pt);
    tag[15] ^= 1;
    expect_error(codec_open(key, NULL, 0, ct, sizeof ct, pt, nonce, tag, "tc14"),
                 CAIRN_ECORRUPT, "tc14");
}

static void expect_auth_fail(cairn_status st, const uint8_t *dst, size_t len, const char *what)
{
    assert_int_equal(st, CAIRN_ECORRUPT);
    if (!strstr(cairn_last_error(), "authentication failed") ||
        !strstr(cairn_last_error(), what))
        fail_msg("message \"%s\" lacks \"authentication failed\" or \"%s\"",
                 cairn_last_error(), what);
    for (size_t i = 0; i < len; i++)
        if (dst[i] != 0)
            fail_msg("byte %zu of %zu left in dst after a failed open", i, len);
}

static void test_seal_open(void **state)
{
    (void)state;
    uint64_t s = g_seed ^ 0xae5;
    size_t lens[] = {0, 1, 15, 16, 17, 100, 4099, 1 << 20};
    uint8_t key[CODEC_KEY_LEN], key2[CODEC_KEY_LEN];
    fill_random(&s, key, sizeof key);
    memcpy(key2, key, sizeof key);
    key2[31] ^= 0x80;
    const char aad[] = "blobs/ab/abcdef";
    for (size_t t = 0; t < sizeof lens / sizeof lens[0]; t++) {
        size_t n = lens[t];
        uint8_t *pt = malloc(n + 1), *ct = malloc(n + 1), *back = malloc(n + 1);
        assert_true(pt && ct && back);
        fill_random(&s, pt, n);
        uint8_t nonce[CODEC_NONCE_LEN], tag[CODEC_TAG_LEN];
        for (int with_aad = 0; with_aad <= 1; with_aad++) {
            const void *a = with_aad ? aad : NULL;
            size_t al = with_aad ? strlen(aad) : 0;
            assert_int_equal(codec_seal(key, a, al, pt, n, ct, nonce, tag, "seal"), CAIRN_OK);
            if (n >= 16)
                assert_true(memcmp(ct, pt, n) != 0);
            memset(back, 0xcc, n);
            assert_int_equal(codec_open(key, a, al, ct, n, back, nonce, tag, "open"),
                             CAIRN_OK);
            assert_memory_equal(back, pt, n);

            /* wrong key */
            memset(back, 0xcc, n);
            expect_auth_fail(codec_open(key2, a, al, ct, n, back, nonce, tag, "obj/k"), back,
                             n, "obj/k");
            /* wrong or missing aad, or aad where there was none */
            memset(back, 0xcc, n);
            if (with_aad) {
                expect_auth_fail(codec_open(key, aad, al - 1, ct, n, back, nonce, tag, "a1"),
                                 back, n, "a1");
                memset(back, 0xcc, n);
                expect_auth_fail(codec_open(key, NULL, 0, ct, n, back, nonce, tag, "a2"), back,
                                 n, "a2");
            } else {
                expect_auth_fail(codec_open(key, aad, strlen(aad), ct, n, back, nonce, tag,
                                            "a3"),
                                 back, n, "a3");
            }
            /* a flipped byte of the ciphertext (every one for short texts) */
            size_t step = n <= 64 ? 1 : n / 37 + 1;
            for (size_t k = 0; k < n; k += step) {
                ct[k] ^= 0x01;
                memset(back, 0xcc, n);
                expect_auth_fail(codec_open(key, a, al, ct, n, back, nonce, tag, "c"), back,
                                 n, "c");
                ct[k] ^= 0x01;
            }
            /* every byte of the tag and of the nonce */
            for (size_t k = 0; k < CODEC_TAG_LEN; k++) {
                tag[k] ^= 0x40;
                memset(back, 0xcc, n);
                expect_auth_fail(codec_open(key, a, al, ct, n, back, nonce, tag, "tag"), back,
                                 n, "tag");
                tag[k] ^= 0x40;
            }
            for (size_t k = 0; k < CODEC_NONCE_LEN; k++) {
                nonce[k] ^= 0x02;
                memset(back, 0xcc, n);
                expect_auth_fail(codec_open(key, a, al, ct, n, back, nonce, tag, "nonce"),
                                 back, n, "nonce");
                nonce[k] ^= 0x02;
            }
            /* a shorter ciphertext (its tag no longer fits) */
            if (n > 0) {
                memset(back, 0xcc, n);
                expect_auth_fail(codec_open(key, a, al, ct, n - 1, back, nonce, tag, "short"),
                                 back, n - 1, "short");
            }
            /* and the untouched one still opens */
            assert_int_equal(codec_open(key, a, al, ct, n, back, nonce, tag, "open"),
                             CAIRN_OK);
            assert_memory_equal(back, pt, n);
        }
        free(pt);
        free(ct);
        free(back);
    }
    /* Nonces are random: the same plaintext seals differently each time. */
    uint8_t n1[CODEC_NONCE_LEN], n2[CODEC_NONCE_LEN], t1[16], t2[16], c1[8], c2[8];
    assert_int_equal(codec_seal(key, NULL, 0, "12345678", 8, c1, n1, t1, "x"), CAIRN_OK);
    assert_int_equal(codec_seal(key, NULL, 0, "12345678", 8, c2, n2, t2, "x"), CAIRN_OK);
    assert_true(memcmp(n1, n2, sizeof n1) != 0);
    assert_true(memcmp(c1, c2, sizeof c1) != 0);
    assert_true(memcmp(t1, t2, sizeof t1) != 0);
}

/* ---- key files ----------------------------------------------------------- */

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
}

static void test_key_load(void **state)
{
    (void)state;
    const char *hex = "000102030405060708090a0b0c0d0e0f101112131415161718191A1B1C1D1E1F";
    uint8_t want[CODEC_KEY_LEN];
    for (unsigned i = 0; i < CODEC_KEY_LEN; i++)
        want[i] = (uint8_t)i;
    char path[4200], text[200];
    snprintf(path, sizeof path, "%s/key", tmpdir);
    const char *good[] = {"%s", "%s\n", "  \t%s \r\n\n", "\n%s"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        snprintf(text, sizeof text, good[i], hex);
        write_text(path, text);
        uint8_t key[CODEC_KEY_LEN] = {0};
        assert_int_equal(codec_key_load(path, key), CAIRN_OK);
        assert_memory_equal(key, want, sizeof want);
    }

    uint8_t key[CODEC_KEY_LEN];
    memset(key, 0x77, sizeof key);
    const char *bad[] = {"", "\n", "%.63s", "%s0", "%.32s %s", "%s%s", "0x%.62s"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(text, sizeof text, bad[i], hex, hex + 32);
        write_text(path, text);
        expect_error(codec_key_load(path, key), CAIRN_EFORMAT, path);
        assert_non_null(strstr(cairn_last_error(), "64 hex digits"));
    }
    /* a non-hex digit, named by its offset */
    snprintf(text, sizeof text, "  %s\n", hex);
    text[2 + 40] = 'g';
    write_text(path, text);
    expect_error(codec_key_load(path, key), CAIRN_EFORMAT, "at offset 42");
    assert_non_null(strstr(cairn_last_error(), path));
    for (size_t i = 0; i < sizeof key; i++)
        assert_int_equal(key[i], 0x77);

    snprintf(path, sizeof path, "%s/no-such-key", tmpdir);
    expect_error(codec_key_load(path, key), CAIRN_ENOTFOUND, path);
}

static void test_key_id(void **state)
{
    (void)state;
    uint8_t k1[CODEC_KEY_LEN] = {0}, k2[CODEC_KEY_LEN] = {0};
    k2[0] = 1;
    char id1[17], id2[17], again[17];
    codec_key_id(k1, id1);
    codec_key_id(k2, id2);
    codec_key_id(k1, again);
    assert_int_equal(strlen(id1), 16);
    assert_string_equal(id1, again);
    assert_string_not_equal(id1, id2);
    /* SHA-256("cairn-key-id" || key), first 8 bytes, computed here over
     * the concatenation */
    uint8_t msg[12 + CODEC_KEY_LEN];
    memcpy(msg, "cairn-key-id", 12);
    memcpy(msg + 12, k2, sizeof k2);
    uint8_t h[CODEC_SHA256_LEN];
    codec_sha256(msg, sizeof msg, h);
    char hex[CODEC_SHA256_HEX];
    codec_hex(h, hex);
    hex[16] = '\0';
    assert_string_equal(id2, hex);
    /* the id is not the key's own hash */
    codec_sha256(k2, sizeof k2, h);
    codec_hex(h, hex);
    assert_true(strncmp(hex, id2, 16) != 0);
}

static int group_setup(void **state)
{
    (void)state;
    if (tu_tmpbase(tmpdir, sizeof tmpdir, "codec") != 0) {
        fprintf(stderr, "codec: temporary directory: %s\n", strerror(errno));
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    tu_rm_rf(tmpdir);
    return 0;
}

int main(void)
{
    g_seed = tu_seed("codec", 0xc0dec5eedULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_vectors),
        cmocka_unit_test(test_sha256_million),
        cmocka_unit_test(test_hex),
        cmocka_unit_test(test_shuffle),
        cmocka_unit_test(test_compress_floats),
        cmocka_unit_test(test_compress_random),
        cmocka_unit_test(test_compress_fast_levels),
        cmocka_unit_test(test_compress_bad_args),
        cmocka_unit_test(test_decompress_corrupt),
        cmocka_unit_test(test_decompress_sha256),
        cmocka_unit_test(test_gcm_known_answer),
        cmocka_unit_test(test_seal_open),
        cmocka_unit_test(test_key_load),
        cmocka_unit_test(test_key_id),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
