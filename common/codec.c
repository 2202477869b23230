/*
 * codec.c — the byte transforms of the backup repository (see codec.h):
 * SHA-256 and AES-256-GCM through OpenSSL's EVP interface, zstd through
 * libzstd, and the 4-byte shuffle that makes float data compress better.
 *
 * Rules every function here follows:
 *   - A compressed frame always records its content size and a content
 *     checksum (XXH64, 4 bytes). Decompression insists on exactly one frame
 *     spanning the whole input, of exactly the length the caller recorded,
 *     whose checksum matches: without the checksum a flipped bit inside a
 *     stored (incompressible) block would decode to wrong bytes of the
 *     right length, and the caller would get them as data.
 *   - Decryption output is never handed out unverified: when GCM
 *     authentication fails, dst is wiped before returning.
 *   - Key material on the stack or in temporary buffers is wiped
 *     (OPENSSL_cleanse) before it is freed or goes out of scope.
 *   - The void SHA-256 functions cannot report a failure; libcrypto fails
 *     there only when it cannot allocate, and a wrong digest would be
 *     worse than stopping, so they abort() with a message.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
/* for ZSTD_d_forceIgnoreChecksum (codec_decompress_sha256): a parameter
 * of the stable ZSTD_DCtx_setParameter, whose failure is handled */
#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>
#include <zstd_errors.h>

#include "cairn.h"
#include "common/codec.h"
#include "common/err.h"
#include "common/io.h"

/* EVP takes int lengths: longer inputs go in pieces of this size. */
#define CODEC_EVP_CHUNK ((size_t)1 << 30)

static const char *wname(const char *what)
{
    return what ? what : "(unnamed)";
}

/* ------------------------------------------------------------------------
 * SHA-256
 * ---------------------------------------------------------------------- */
_Noreturn static void sha_fail(const char *step)
{
    fprintf(stderr, "cairn: SHA-256 %s failed in libcrypto (out of memory?)\n", step);
    abort();
}

static void sha_update(EVP_MD_CTX *md, const void *data, size_t len)
{
    const unsigned char *p = data;
    /* EVP_DigestUpdate takes a size_t, but a bounded piece keeps every
     * provider's internal counters well inside their types. */
    while (len > 0) {
        size_t n = len < CODEC_EVP_CHUNK ? len : CODEC_EVP_CHUNK;
        if (EVP_DigestUpdate(md, p, n) != 1)
            sha_fail("update");
        p += n;
        len -= n;
    }
}

void codec_sha256(const void *data, size_t len, uint8_t out[CODEC_SHA256_LEN])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
        sha_fail("init");
    sha_update(md, data, len);
    unsigned n = 0;
    if (EVP_DigestFinal_ex(md, out, &n) != 1 || n != CODEC_SHA256_LEN)
        sha_fail("final");
    EVP_MD_CTX_free(md);
}

void codec_hex(const uint8_t in[CODEC_SHA256_LEN], char out[CODEC_SHA256_HEX])
{
    static const char digits[] = "0123456789abcdef";
    for (unsigned i = 0; i < CODEC_SHA256_LEN; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * CODEC_SHA256_LEN] = '\0';
}

static int hexval(unsigned char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* n bytes from the 2n hex digits at s; false (out partly written) if any
 * is not a hex digit. */
static bool unhex_n(const char *s, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hexval((unsigned char)s[2 * i]);
        int lo = hi < 0 ? -1 : hexval((unsigned char)s[2 * i + 1]);
        if (lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

bool codec_unhex(const char *s, uint8_t out[CODEC_SHA256_LEN])
{
    if (!s || strnlen(s, 2 * CODEC_SHA256_LEN + 1) != 2 * CODEC_SHA256_LEN)
        return false;
    uint8_t tmp[CODEC_SHA256_LEN];
    if (!unhex_n(s, tmp, CODEC_SHA256_LEN))
        return false; /* out untouched on failure */
    memcpy(out, tmp, sizeof tmp);
    return true;
}

/* ------------------------------------------------------------------------
 * Shuffle
 * ---------------------------------------------------------------------- */
void codec_shuffle4(uint8_t *dst, const uint8_t *src, size_t len)
{
    size_t n = len / 4;
    for (size_t i = 0; i < n; i++) {
        dst[i] = src[4 * i];
        dst[n + i] = src[4 * i + 1];
        dst[2 * n + i] = src[4 * i + 2];
        dst[3 * n + i] = src[4 * i + 3];
    }
    if (len % 4)
        memcpy(dst + 4 * n, src + 4 * n, len % 4);
}

void codec_unshuffle4(uint8_t *dst, const uint8_t *src, size_t len)
{
    size_t n = len / 4;
    for (size_t i = 0; i < n; i++) {
        dst[4 * i] = src[i];
        dst[4 * i + 1] = src[n + i];
        dst[4 * i + 2] = src[2 * n + i];
        dst[4 * i + 3] = src[3 * n + i];
    }
    if (len % 4)
        memcpy(dst + 4 * n, src + 4 * n, len % 4);
}

/* ------------------------------------------------------------------------
 * zstd
 * ---------------------------------------------------------------------- */
static cairn_status zstd_error(size_t r, const char *verb, const char *what)
{
    cairn_status st = ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation ? CAIRN_ENOMEM
                                                                           : CAIRN_EINVAL;
    return cerr_set(st, "could not %s %s: zstd: %s", verb, wname(what), ZSTD_getErrorName(r));
}

/* One frame of src into a malloc'd *out (content size and checksum in the
 * frame header/trailer). */
static cairn_status zstd_one(ZSTD_CCtx *cc, const void *src, size_t len, uint8_t **out,
                             size_t *out_len, const char *what)
{
    size_t cap = ZSTD_compressBound(len);
    if (ZSTD_isError(cap))
        return zstd_error(cap, "compress", what);
    uint8_t *buf = malloc(cap);
    if (!buf)
        return cerr_set(CAIRN_ENOMEM, "could not compress %s: out of memory (%zu bytes)",
                        wname(what), cap);
    size_t r = ZSTD_compress2(cc, buf, cap, src, len);
    if (ZSTD_isError(r)) {
        free(buf);
        return zstd_error(r, "compress", what);
    }
    /* The bound can be far above the result; give the rest back. */
    uint8_t *shrunk = realloc(buf, r ? r : 1);
    *out = shrunk ? shrunk : buf;
    *out_len = r;
    return CAIRN_OK;
}

cairn_status codec_compress(const void *src, size_t len, int level, bool try_shuffle,
                            uint8_t **out, size_t *out_len, bool *shuffled, const char *what)
{
    static const uint8_t empty[1];
    if (!out || !out_len || !shuffled)
        return cerr_set(CAIRN_EINVAL, "could not compress %s: no output pointer",
                        wname(what));
    *out = NULL;
    *out_len = 0;
    *shuffled = false;
    if (!codec_level_ok(level))
        return cerr_set(CAIRN_EINVAL, "could not compress %s: level %d is not in %d..-1 or 1..%d",
                        wname(what), level, CODEC_LEVEL_MIN, CODEC_LEVEL_MAX);
    if (len > 0 && !src)
        return cerr_set(CAIRN_EINVAL, "could not compress %s: no data", wname(what));
    if (len == 0)
        src = empty;
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    if (!cc)
        return cerr_set(CAIRN_ENOMEM, "could not compress %s: out of memory", wname(what));
    size_t r = ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, level);
    if (!ZSTD_isError(r))
        r = ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, 1);
    if (!ZSTD_isError(r))
        r = ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 1);
    if (ZSTD_isError(r)) {
        ZSTD_freeCCtx(cc);
        return zstd_error(r, "compress", what);
    }
    uint8_t *plain = NULL, *shuf = NULL, *tmp = NULL;
    size_t plain_len = 0, shuf_len = 0;
    cairn_status st = zstd_one(cc, src, len, &plain, &plain_len, what);
    /* Fewer than 8 bytes cannot gain from shuffling (and one element is
     * its own shuffle). */
    if (!st && try_shuffle && len >= 8) {
        tmp = malloc(len);
        if (!tmp) {
            st = cerr_set(CAIRN_ENOMEM, "could not compress %s: out of memory (%zu bytes)",
                          wname(what), len);
        } else {
            codec_shuffle4(tmp, src, len);
            st = zstd_one(cc, tmp, len, &shuf, &shuf_len, what);
        }
    }
    ZSTD_freeCCtx(cc);
    free(tmp);
    if (st) {
        free(plain);
        free(shuf);
        return st;
    }
    if (shuf && shuf_len < plain_len) {
        free(plain);
        *out = shuf;
        *out_len = shuf_len;
        *shuffled = true;
    } else {
        free(shuf);
        *out = plain;
        *out_len = plain_len;
    }
    return CAIRN_OK;
}

/* codec_decompress, and codec_decompress_sha256 with zsum false. */
static cairn_status decompress_frame(const void *src, size_t len, bool shuffled, void *dst,
                                     size_t raw_len, bool zsum, const char *what)
{
    if ((len > 0 && !src) || (raw_len > 0 && !dst))
        return cerr_set(CAIRN_EINVAL, "could not decompress %s: no %s buffer", wname(what),
                        !dst ? "output" : "input");
    if (len == 0)
        return cerr_set(CAIRN_ECORRUPT, "could not decompress %s: empty input (no zstd frame)",
                        wname(what));
    unsigned long long fcs = ZSTD_getFrameContentSize(src, len);
    if (fcs == ZSTD_CONTENTSIZE_ERROR)
        return cerr_set(CAIRN_ECORRUPT,
                        "could not decompress %s: not a zstd frame (bad header in %zu bytes)",
                        wname(what), len);
    if (fcs == ZSTD_CONTENTSIZE_UNKNOWN)
        return cerr_set(CAIRN_ECORRUPT,
                        "could not decompress %s: the zstd frame does not record its size",
                        wname(what));
    if (fcs != (unsigned long long)raw_len)
        return cerr_set(CAIRN_ECORRUPT,
                        "could not decompress %s: the frame holds %llu bytes, expected %zu",
                        wname(what), fcs, raw_len);
    /* Exactly one frame, spanning all of src: trailing bytes or a second
     * frame mean the blob is not what was written. */
    size_t flen = ZSTD_findFrameCompressedSize(src, len);
    if (ZSTD_isError(flen))
        return cerr_set(CAIRN_ECORRUPT, "could not decompress %s: zstd: %s", wname(what),
                        ZSTD_getErrorName(flen));
    if (flen != len)
        return cerr_set(CAIRN_ECORRUPT,
                        "could not decompress %s: the zstd frame is %zu bytes, input has %zu",
                        wname(what), flen, len);
    /* Only zstd frames with a content checksum are ours (codec_compress
     * always writes one); without it corruption of stored blocks is
     * invisible. RFC 8878: magic 28 b5 2f fd, then the frame header
     * descriptor, whose bit 2 is Content_Checksum_flag. (Read here rather
     * than with ZSTD_getFrameHeader, which is zstd's static-only API.) */
    const uint8_t *f = src;
    if (len < 5 || f[0] != 0x28 || f[1] != 0xb5 || f[2] != 0x2f || f[3] != 0xfd)
        return cerr_set(CAIRN_ECORRUPT,
                        "could not decompress %s: not a zstd data frame", wname(what));
    /* Bit 4 is "unused": decoders ignore it and codec_compress writes 0, so
     * a 1 is a changed byte that would otherwise decode silently. */
    if (f[4] & 0x10)
        return cerr_set(CAIRN_ECORRUPT,
                        "could not decompress %s: the zstd frame header has its unused bit "
                        "set",
                        wname(what));
    if (!(f[4] & 0x04))
        return cerr_set(CAIRN_ECORRUPT,
                        "could not decompress %s: the zstd frame has no content checksum",
                        wname(what));
    static uint8_t none[1];
    uint8_t *tmp = NULL;
    void *into = raw_len ? dst : none;
    if (shuffled && raw_len > 0) {
        tmp = malloc(raw_len);
        if (!tmp)
            return cerr_set(CAIRN_ENOMEM,
                            "could not decompress %s: out of memory (%zu bytes)",
                            wname(what), raw_len);
        into = tmp;
    }
    ZSTD_DCtx *dc = ZSTD_createDCtx();
    if (!dc) {
        free(tmp);
        return cerr_set(CAIRN_ENOMEM, "could not decompress %s: out of memory", wname(what));
    }
    /* A library without the parameter verifies the checksum: slower, and
     * as safe. */
    if (!zsum)
        (void)ZSTD_DCtx_setParameter(dc, ZSTD_d_forceIgnoreChecksum, ZSTD_d_ignoreChecksum);
    size_t r = ZSTD_decompressDCtx(dc, into, raw_len, src, len);
    ZSTD_freeDCtx(dc);
    cairn_status st = CAIRN_OK;
    if (ZSTD_isError(r)) {
        if (ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation)
            st = cerr_set(CAIRN_ENOMEM, "could not decompress %s: out of memory",
                          wname(what));
        else
            st = cerr_set(CAIRN_ECORRUPT, "could not decompress %s: zstd: %s", wname(what),
                          ZSTD_getErrorName(r));
    } else if (r != raw_len) {
        st = cerr_set(CAIRN_ECORRUPT,
                      "could not decompress %s: got %zu bytes, expected %zu", wname(what),
                      r, raw_len);
    } else if (tmp) {
        codec_unshuffle4(dst, tmp, raw_len);
    }
    free(tmp);
    return st;
}

cairn_status codec_decompress(const void *src, size_t len, bool shuffled, void *dst,
                              size_t raw_len, const char *what)
{
    return decompress_frame(src, len, shuffled, dst, raw_len, true, what);
}

cairn_status codec_decompress_sha256(const void *src, size_t len, bool shuffled, void *dst,
                                     size_t raw_len, uint8_t sha_out[CODEC_SHA256_LEN],
                                     const char *what)
{
    cairn_status st = decompress_frame(src, len, shuffled, dst, raw_len, false, what);
    if (!st)
        codec_sha256(dst, raw_len, sha_out);
    return st;
}

/* ------------------------------------------------------------------------
 * AES-256-GCM
 * ---------------------------------------------------------------------- */

/* The first queued libcrypto error as text, for messages (queue cleared). */
static const char *ossl_reason(char *buf, size_t n)
{
    unsigned long e = ERR_get_error();
    ERR_clear_error();
    if (!e)
        return "libcrypto failed";
    ERR_error_string_n(e, buf, n);
    return buf;
}

static int fill_random(uint8_t *p, size_t n)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = getrandom(p + done, n - done, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        done += (size_t)r;
    }
    return 0;
}

/* EVP_{En,De}cryptUpdate in pieces that fit its int lengths. GCM is a
 * stream mode: out grows by exactly what goes in. */
static int gcm_update(EVP_CIPHER_CTX *x, bool enc, uint8_t *dst, const uint8_t *src,
                      size_t len)
{
    while (len > 0) {
        size_t n = len < CODEC_EVP_CHUNK ? len : CODEC_EVP_CHUNK;
        int got = 0;
        int ok = enc ? EVP_EncryptUpdate(x, dst, &got, src, (int)n)
                     : EVP_DecryptUpdate(x, dst, &got, src, (int)n);
        if (ok != 1 || (size_t)got != n)
            return 0;
        dst += n;
        src += n;
        len -= n;
    }
    return 1;
}

static int gcm_aad(EVP_CIPHER_CTX *x, bool enc, const uint8_t *aad, size_t len)
{
    while (len > 0) {
        size_t n = len < CODEC_EVP_CHUNK ? len : CODEC_EVP_CHUNK;
        int got = 0;
        int ok = enc ? EVP_EncryptUpdate(x, NULL, &got, aad, (int)n)
                     : EVP_DecryptUpdate(x, NULL, &got, aad, (int)n);
        if (ok != 1)
            return 0;
        aad += n;
        len -= n;
    }
    return 1;
}

cairn_status codec_seal(const uint8_t key[CODEC_KEY_LEN], const void *aad, size_t aad_len,
                        const void *src, size_t len, uint8_t *dst,
                        uint8_t nonce_out[CODEC_NONCE_LEN], uint8_t tag_out[CODEC_TAG_LEN],
                        const char *what)
{
    if (!key || !nonce_out || !tag_out || (aad_len > 0 && !aad) ||
        (len > 0 && (!src || !dst)))
        return cerr_set(CAIRN_EINVAL, "could not encrypt %s: missing key, buffer or output",
                        wname(what));
    /* A random 96-bit nonce per seal: keys are long-lived and seals many,
     * and GCM with a repeated (key, nonce) leaks the XOR of plaintexts and
     * allows forgeries, so no counter state is kept that a restore could
     * roll back. */
    int e = fill_random(nonce_out, CODEC_NONCE_LEN);
    if (e)
        return cerr_errno(e, "could not encrypt %s: getrandom for the nonce", wname(what));
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
    if (!x)
        return cerr_set(CAIRN_ENOMEM, "could not encrypt %s: out of memory", wname(what));
    char rb[256];
    uint8_t fin[32]; /* GCM's final step writes nothing; EVP wants a buffer */
    cairn_status st = CAIRN_OK;
    int got = 0;
    if (EVP_EncryptInit_ex(x, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_SET_IVLEN, (int)CODEC_NONCE_LEN, NULL) != 1 ||
        EVP_EncryptInit_ex(x, NULL, NULL, key, nonce_out) != 1 ||
        !gcm_aad(x, true, aad, aad_len) || !gcm_update(x, true, dst, src, len) ||
        EVP_EncryptFinal_ex(x, fin, &got) != 1 || got != 0 ||
        EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_GET_TAG, (int)CODEC_TAG_LEN, tag_out) != 1)
        st = cerr_set(CAIRN_EIO, "could not encrypt %s: %s", wname(what),
                      ossl_reason(rb, sizeof rb));
    /* The context holds the expanded key schedule; _free cleanses it. */
    EVP_CIPHER_CTX_free(x);
    return st;
}

cairn_status codec_open(const uint8_t key[CODEC_KEY_LEN], const void *aad, size_t aad_len,
                        const void *src, size_t len, uint8_t *dst,
                        const uint8_t nonce[CODEC_NONCE_LEN], const uint8_t tag[CODEC_TAG_LEN],
                        const char *what)
{
    if (!key || !nonce || !tag || (aad_len > 0 && !aad) || (len > 0 && (!src || !dst)))
        return cerr_set(CAIRN_EINVAL, "could not decrypt %s: missing key, buffer or tag",
                        wname(what));
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
    if (!x) {
        if (len > 0)
            OPENSSL_cleanse(dst, len);
        return cerr_set(CAIRN_ENOMEM, "could not decrypt %s: out of memory", wname(what));
    }
    char rb[256];
    uint8_t fin[32]; /* GCM's final step writes nothing; EVP wants a buffer */
    uint8_t tagbuf[CODEC_TAG_LEN];
    memcpy(tagbuf, tag, sizeof tagbuf); /* the ctrl takes a non-const pointer */
    cairn_status st = CAIRN_OK;
    int got = 0;
    if (EVP_DecryptInit_ex(x, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_SET_IVLEN, (int)CODEC_NONCE_LEN, NULL) != 1 ||
        EVP_DecryptInit_ex(x, NULL, NULL, key, nonce) != 1 ||
        EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_SET_TAG, (int)CODEC_TAG_LEN, tagbuf) != 1 ||
        !gcm_aad(x, false, aad, aad_len) || !gcm_update(x, false, dst, src, len)) {
        st = cerr_set(CAIRN_EIO, "could not decrypt %s: %s", wname(what),
                      ossl_reason(rb, sizeof rb));
    } else if (EVP_DecryptFinal_ex(x, fin, &got) != 1) {
        /* The only failure of the final step in GCM is the tag check. */
        ERR_clear_error();
        st = cerr_set(CAIRN_ECORRUPT,
                      "could not decrypt %s: authentication failed (wrong key, or the data, "
                      "its associated data or its tag changed)",
                      wname(what));
    }
    EVP_CIPHER_CTX_free(x);
    if (st && len > 0)
        OPENSSL_cleanse(dst, len); /* never hand out unauthenticated bytes */
    return st;
}

static bool is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f';
}

cairn_status codec_key_load(const char *path, uint8_t key[CODEC_KEY_LEN])
{
    if (!path || !path[0] || !key)
        return cerr_set(CAIRN_EINVAL, "could not read key file: no path or output");
    char *buf = NULL;
    size_t len = 0;
    cairn_status st = cfs_read_file(path, &buf, &len);
    if (st)
        return st; /* names the file and the reason (missing: CAIRN_ENOTFOUND) */
    size_t b = 0, e = len;
    while (b < e && is_space(buf[b]))
        b++;
    while (e > b && is_space(buf[e - 1]))
        e--;
    uint8_t tmp[CODEC_KEY_LEN];
    if (e - b != 2 * CODEC_KEY_LEN) {
        st = cerr_set(CAIRN_EFORMAT,
                      "could not read key file \"%s\": expected 64 hex digits (a 256-bit "
                      "key), found %zu characters",
                      path, e - b);
    } else if (!unhex_n(buf + b, tmp, CODEC_KEY_LEN)) {
        size_t at = b;
        while (at < e && hexval((unsigned char)buf[at]) >= 0)
            at++;
        st = cerr_set(CAIRN_EFORMAT,
                      "could not read key file \"%s\" at offset %zu: not a hex digit "
                      "(expected 64 hex digits)",
                      path, at);
    } else {
        memcpy(key, tmp, CODEC_KEY_LEN);
    }
    OPENSSL_cleanse(tmp, sizeof tmp);
    OPENSSL_cleanse(buf, len);
    free(buf);
    return st;
}

void codec_key_id(const uint8_t key[CODEC_KEY_LEN], char out[17])
{
    static const char label[] = "cairn-key-id"; /* without its NUL */
    uint8_t msg[sizeof label - 1 + CODEC_KEY_LEN];
    memcpy(msg, label, sizeof label - 1);
    memcpy(msg + sizeof label - 1, key, CODEC_KEY_LEN);
    uint8_t h[CODEC_SHA256_LEN];
    codec_sha256(msg, sizeof msg, h);
    OPENSSL_cleanse(msg, sizeof msg);
    char hex[CODEC_SHA256_HEX];
    codec_hex(h, hex);
    memcpy(out, hex, 16);
    out[16] = '\0';
}
