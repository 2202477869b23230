/*
 * codec.h — the byte transforms of the backup repository: SHA-256,
 * zstd (with an optional byte shuffle for float data), AES-256-GCM.
 * Thin wrappers over libzstd and OpenSSL's libcrypto (EVP): every failure
 * is a cairn_status with a message naming what was being done (the caller
 * passes a `what`, e.g. a blob or file name, used in messages).
 */
#ifndef CAIRN_COMMON_CODEC_H
#define CAIRN_COMMON_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn.h"

/* ---- SHA-256 --------------------------------------------------------- */
#define CODEC_SHA256_LEN 32u
#define CODEC_SHA256_HEX 65u /* 64 hex digits + NUL */

void codec_sha256(const void *data, size_t len, uint8_t out[CODEC_SHA256_LEN]);
/* Lower-case hex; out has CODEC_SHA256_HEX bytes. */
void codec_hex(const uint8_t in[CODEC_SHA256_LEN], char out[CODEC_SHA256_HEX]);
/* Parses 64 hex digits (either case); false if s is anything else. */
bool codec_unhex(const char *s, uint8_t out[CODEC_SHA256_LEN]);

/* ---- compression ------------------------------------------------------ */
/* Byte shuffle with element size 4 (float32 data): all first bytes, then
 * all second bytes, ...; a tail of len % 4 bytes is copied unchanged.
 * Exponent bytes of similar floats then sit together, which zstd
 * compresses better. dst and src must not overlap. */
void codec_shuffle4(uint8_t *dst, const uint8_t *src, size_t len);
void codec_unshuffle4(uint8_t *dst, const uint8_t *src, size_t len);

/* The zstd levels the repository uses: 1..19, and the fast levels -7..-1
 * (zstd's --fast=1..7: no Huffman coding of literals, so several times
 * faster to compress and to decompress, for data that compresses little
 * anyway, such as WAL segments of float vectors). 0 (zstd's "default")
 * is not one: a level is always chosen explicitly. */
#define CODEC_LEVEL_MIN (-7)
#define CODEC_LEVEL_MAX 19
static inline bool codec_level_ok(long long level)
{
    return level != 0 && level >= CODEC_LEVEL_MIN && level <= CODEC_LEVEL_MAX;
}

/* zstd at `level` (codec_level_ok; otherwise CAIRN_EINVAL naming the
 * range) of src into a malloc'd *out. With try_shuffle, also compresses
 * the shuffled bytes and keeps whichever is smaller: *shuffled says which
 * was kept. */
cairn_status codec_compress(const void *src, size_t len, int level, bool try_shuffle,
                            uint8_t **out, size_t *out_len, bool *shuffled, const char *what);
/* Decompresses a zstd frame into dst, which must receive exactly raw_len
 * bytes (the length the caller recorded); unshuffles when `shuffled`.
 * Any mismatch (corrupt frame, other length) is CAIRN_ECORRUPT naming
 * `what`. */
cairn_status codec_decompress(const void *src, size_t len, bool shuffled, void *dst,
                              size_t raw_len, const char *what);
/* The same for a caller whose check of the content is its SHA-256:
 * *sha_out gets it, and zstd's own content checksum (XXH64 of the same
 * bytes, which the frame must still carry) is not verified: that pass
 * was a third of the decompression's time (a 16 MiB WAL segment at level
 * -1: 2.7 GB/s with it, 4.0 GB/s without). The caller must compare
 * *sha_out before trusting dst. */
cairn_status codec_decompress_sha256(const void *src, size_t len, bool shuffled, void *dst,
                                     size_t raw_len, uint8_t sha_out[CODEC_SHA256_LEN],
                                     const char *what);

/* ---- AES-256-GCM ------------------------------------------------------- */
#define CODEC_KEY_LEN 32u
#define CODEC_NONCE_LEN 12u
#define CODEC_TAG_LEN 16u

/* Encrypts in place-free form: dst (len bytes) = AES-256-GCM(key, nonce)
 * of src, tag out; aad (may be NULL/0) is authenticated, not encrypted.
 * The nonce is random (getrandom), written to nonce_out. */
cairn_status codec_seal(const uint8_t key[CODEC_KEY_LEN], const void *aad, size_t aad_len,
                        const void *src, size_t len, uint8_t *dst,
                        uint8_t nonce_out[CODEC_NONCE_LEN], uint8_t tag_out[CODEC_TAG_LEN],
                        const char *what);
/* Decrypts and verifies; a wrong key, wrong aad or any changed byte is
 * CAIRN_ECORRUPT ("authentication failed") naming `what`, and dst is
 * zeroed. */
cairn_status codec_open(const uint8_t key[CODEC_KEY_LEN], const void *aad, size_t aad_len,
                        const void *src, size_t len, uint8_t *dst,
                        const uint8_t nonce[CODEC_NONCE_LEN], const uint8_t tag[CODEC_TAG_LEN],
                        const char *what);
/* Reads a key: 64 hex digits (surrounding whitespace allowed) from the
 * file at path. CAIRN_EFORMAT naming the file otherwise. */
cairn_status codec_key_load(const char *path, uint8_t key[CODEC_KEY_LEN]);
/* Key id: the first 8 bytes of SHA-256("cairn-key-id" || key), as 16 hex
 * digits + NUL: names a key in repo.json without revealing it. */
void codec_key_id(const uint8_t key[CODEC_KEY_LEN], char out[17]);

#endif
