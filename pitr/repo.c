/*
 * repo.c — the backup repository: repo.json, objects, manifests, WAL
 * summaries and timeline histories (repo.h; bytes in docs/format.md,
 * "Backup repository").
 *
 * Objects. Every object that holds database bytes (a pack of pages, an
 * archived WAL segment, a small file such as meta) is a 96-byte header
 * and a zstd frame:
 *
 *   off size
 *     0    8 magic "CAIRNOBJ"
 *     8    4 version (1)
 *    12    1 kind (repo_obj_kind)
 *    13    1 flags: 1 = content byte-shuffled before compression,
 *                   2 = payload encrypted (AES-256-GCM)
 *    14    2 reserved, zero
 *    16    8 content length (before compression)
 *    24    8 payload length (the zstd frame, encrypted or not)
 *    32   32 SHA-256 of the content
 *    64   12 GCM nonce (zero when not encrypted)
 *    76   16 GCM tag (zero when not encrypted)
 *    92    4 crc32c of bytes 0..91
 *
 * The crc catches a damaged header before anything is allocated from its
 * lengths; the GCM tag (over the payload, with bytes 0..63 as associated
 * data) proves an encrypted object was written with the repository's key
 * and not changed; the SHA-256 of the decompressed content proves the
 * content (and, for a blob, that it is the blob its name says).
 *
 * Why the content hash names blobs even when encrypted: equal pages give
 * equal names, which is what lets a full backup share unchanged packs with
 * an earlier one. It tells someone holding the repository but not the key
 * that two packs are equal, or that a pack equals content they already
 * know; the pages themselves stay secret.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "common/crc32c.h"
#include "common/err.h"
#include "common/io.h"
#include "common/jalloc.h"
#include "common/json.h"
#include "common/util.h"
#include "pitr/repo.h"
#include "wal/wal.h"

#define OBJ_MAGIC "CAIRNOBJ"
#define OBJ_VERSION 1u
#define OBJ_HDR 96u
#define OBJ_F_SHUFFLED 1u
#define OBJ_F_ENCRYPTED 2u
#define OBJ_KNOWN_FLAGS (OBJ_F_SHUFFLED | OBJ_F_ENCRYPTED)
#define OBJ_MAX ((uint64_t)1 << 32) /* no object holds more than 4 GiB */
#define DEFAULT_LEVEL 3
/* Archived WAL is mostly float vectors, which barely compress (level 3
 * gains ~19% on a benchmark segment, the fast level -1 ~12%); -1 compresses
 * ~3x faster on the live database's machine and decompresses ~3x faster in
 * a restore, which reads every segment it replays. */
#define DEFAULT_WAL_LEVEL (-1)

/* ---- repo.json ------------------------------------------------------------ */

static cairn_status parse_hex64(const char *s, uint64_t *out)
{
    if (!s || strlen(s) != 16)
        return CAIRN_EFORMAT;
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char c = s[i];
        unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                            : 16u;
        if (d > 15)
            return CAIRN_EFORMAT;
        v = v << 4 | d;
    }
    *out = v;
    return CAIRN_OK;
}

static cairn_status repo_json_write(repo *r)
{
    char dbid[17] = "";
    if (r->db_id)
        snprintf(dbid, sizeof dbid, "%016" PRIx64, r->db_id);
    /* repo.json's own levels, not this process's options; a repository
     * without "wal_level" keeps none (its WAL follows "level") */
    json_t *comp = json_pack("{s:s, s:I}", "algorithm", "zstd", "level",
                             (json_int_t)r->json_level);
    if (comp && r->json_wal_level &&
        json_object_set_new(comp, "wal_level", json_integer(r->json_wal_level)) != 0) {
        json_decref(comp);
        comp = NULL;
    }
    json_t *o = comp ? json_pack("{s:s, s:I, s:s?, s:I, s:o, s:s, s:s?}", "format",
                                 "cairn-repository", "version",
                                 (json_int_t)REPO_FORMAT_VERSION, "db_id",
                                 r->db_id ? dbid : NULL, "wal_segment_shift",
                                 (json_int_t)r->seg_shift, "compression", comp, "cipher",
                                 r->encrypted ? "aes-256-gcm" : "none", "key_id",
                                 r->encrypted ? r->key_id : NULL)
                     : NULL;
    if (!o)
        return cerr_set(CAIRN_ENOMEM, "out of memory");
    char *text = NULL;
    char what[600];
    snprintf(what, sizeof what, "repo.json of repository \"%s\"", r->dir);
    cairn_status dst = repo_json_dump(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER, what, &text);
    json_decref(o);
    if (dst)
        return dst;
    size_t len = strlen(text);
    char *t2 = realloc(text, len + 2);
    if (!t2) {
        free(text);
        return cerr_set(CAIRN_ENOMEM, "out of memory");
    }
    t2[len] = '\n';
    cairn_status st = store_put(r->st, "repo.json", t2, len + 1);
    free(t2);
    return st;
}

cairn_status repo_json_dump(json_t *o, size_t flags, const char *what, char **text)
{
    jalloc_begin();
    *text = o ? json_dumps(o, flags) : NULL;
    if (!*text || jalloc_failed()) {
        free(*text);
        *text = NULL;
        return cerr_set(CAIRN_ENOMEM, "could not write the JSON of %s: out of memory", what);
    }
    return CAIRN_OK;
}

cairn_status repo_json_parse(const void *data, size_t len, const char *what, json_t **o,
                             struct cjson_error *err)
{
    cairn_status st = cjson_parse_object((const char *)data, len, o, err);
    if (st == CAIRN_ENOMEM)
        return cerr_set(CAIRN_ENOMEM, "could not read the JSON of %s: out of memory", what);
    cerr_clear(); /* not JSON: *o NULL, *err says why; the caller says what */
    return CAIRN_OK;
}

static cairn_status repo_json_read(repo *r, const uint8_t *data, size_t len)
{
    struct cjson_error jerr = {0, NULL};
    json_t *o = NULL;
    char what[600];
    snprintf(what, sizeof what, "repo.json of repository \"%s\"", r->dir);
    cairn_status pst = repo_json_parse(data, len, what, &o, &jerr);
    if (pst)
        return pst;
    const char *where = r->dir;
    if (!o)
        return cerr_set(CAIRN_EFORMAT, "repository \"%s\": repo.json is not a JSON object (%s "
                        "at offset %zu)", where, jerr.what, jerr.offset);
    cairn_status st = CAIRN_OK;
    const char *fmt = json_string_value(json_object_get(o, "format"));
    json_t *ver = json_object_get(o, "version");
    if (!fmt || strcmp(fmt, "cairn-repository") != 0) {
        st = cerr_set(CAIRN_EFORMAT, "repository \"%s\": repo.json field \"format\" is not "
                      "\"cairn-repository\"", where);
        goto out;
    }
    if (!json_is_integer(ver) || json_integer_value(ver) < 1) {
        st = cerr_set(CAIRN_EFORMAT, "repository \"%s\": repo.json field \"version\" is missing "
                      "or not a positive integer", where);
        goto out;
    }
    if (json_integer_value(ver) != REPO_FORMAT_VERSION) {
        st = cerr_set(CAIRN_EVERSION, "repository \"%s\" has format version %" JSON_INTEGER_FORMAT
                      "; this pitrctl reads version %u", where, json_integer_value(ver),
                      REPO_FORMAT_VERSION);
        goto out;
    }
    json_t *dbid = json_object_get(o, "db_id");
    r->db_id = 0;
    if (dbid && !json_is_null(dbid) && parse_hex64(json_string_value(dbid), &r->db_id) != 0) {
        st = cerr_set(CAIRN_EFORMAT, "repository \"%s\": repo.json field \"db_id\" is not 16 hex "
                      "digits", where);
        goto out;
    }
    json_t *shift = json_object_get(o, "wal_segment_shift");
    if (!json_is_integer(shift) || (json_integer_value(shift) != 0 &&
                                    (json_integer_value(shift) < 21 || json_integer_value(shift) > 30))) {
        st = cerr_set(CAIRN_EFORMAT, "repository \"%s\": repo.json field \"wal_segment_shift\" is "
                      "missing or out of range (0, or 21..30)", where);
        goto out;
    }
    r->seg_shift = (uint32_t)json_integer_value(shift);
    json_t *comp = json_object_get(o, "compression");
    const char *alg = json_string_value(json_object_get(comp, "algorithm"));
    json_t *lvl = json_object_get(comp, "level");
    if (!alg || strcmp(alg, "zstd") != 0 || !json_is_integer(lvl) ||
        json_integer_value(lvl) < 1 || json_integer_value(lvl) > 19) {
        st = cerr_set(CAIRN_EFORMAT, "repository \"%s\": repo.json field \"compression\" must be "
                      "{\"algorithm\": \"zstd\", \"level\": 1..19}", where);
        goto out;
    }
    r->json_level = (int)json_integer_value(lvl);
    json_t *wlvl = json_object_get(comp, "wal_level");
    r->json_wal_level = 0;
    if (wlvl && (!json_is_integer(wlvl) || !codec_level_ok(json_integer_value(wlvl)))) {
        st = cerr_set(CAIRN_EFORMAT, "repository \"%s\": repo.json field \"compression\" member "
                      "\"wal_level\" must be an integer in %d..-1 or 1..%d (or absent: "
                      "\"level\")", where, CODEC_LEVEL_MIN, CODEC_LEVEL_MAX);
        goto out;
    }
    if (wlvl)
        r->json_wal_level = (int)json_integer_value(wlvl);
    const char *cipher = json_string_value(json_object_get(o, "cipher"));
    if (!cipher || (strcmp(cipher, "none") != 0 && strcmp(cipher, "aes-256-gcm") != 0)) {
        st = cerr_set(CAIRN_EFORMAT, "repository \"%s\": repo.json field \"cipher\" must be "
                      "\"none\" or \"aes-256-gcm\"", where);
        goto out;
    }
    bool enc = !strcmp(cipher, "aes-256-gcm");
    if (enc) {
        const char *kid = json_string_value(json_object_get(o, "key_id"));
        uint64_t dummy;
        if (!kid || parse_hex64(kid, &dummy) != 0) {
            st = cerr_set(CAIRN_EFORMAT, "repository \"%s\": repo.json field \"key_id\" is not 16 "
                          "hex digits", where);
            goto out;
        }
        if (!r->encrypted) {
            st = cerr_set(CAIRN_EINVAL, "repository \"%s\" is encrypted (key id %s): give its key "
                          "(--key-file)", where, kid);
            goto out;
        }
        if (strcmp(kid, r->key_id) != 0) {
            st = cerr_set(CAIRN_EINVAL, "repository \"%s\" is encrypted with key id %s; the key "
                          "given has id %s", where, kid, r->key_id);
            goto out;
        }
    } else if (r->encrypted) {
        st = cerr_set(CAIRN_EINVAL, "repository \"%s\" is not encrypted, but a key was given",
                      where);
        goto out;
    }
out:
    json_decref(o);
    return st;
}

cairn_status repo_levels_check(int level, int wal_level, const char *level_name,
                               const char *wal_level_name)
{
    if (level < 0 || level > 19)
        return cerr_set(CAIRN_EINVAL, "%s %d is out of range (1..19)", level_name, level);
    if (wal_level && !codec_level_ok(wal_level))
        return cerr_set(CAIRN_EINVAL, "%s %d is out of range (%d..-1 or 1..%d)", wal_level_name,
                        wal_level, CODEC_LEVEL_MIN, CODEC_LEVEL_MAX);
    return CAIRN_OK;
}

cairn_status repo_open(const char *dir, const struct repo_open_opts *o, repo **out)
{
    *out = NULL;
    cairn_status lst = repo_levels_check(o->level, o->wal_level, "compression level",
                                         "WAL compression level");
    if (lst)
        return lst;
    repo *r = calloc(1, sizeof *r);
    if (!r || !(r->dir = strdup(dir))) {
        free(r);
        return cerr_set(CAIRN_ENOMEM, "out of memory");
    }
    cairn_status st = CAIRN_OK;
    if (o->key_file) {
        st = codec_key_load(o->key_file, r->key);
        if (!st) {
            r->encrypted = true;
            codec_key_id(r->key, r->key_id);
        }
    }
    if (!st)
        st = store_local_open(dir, (o->create ? STORE_CREATE : 0u) |
                                       (o->no_sweep ? STORE_NO_SWEEP : 0u),
                              &r->st);
    uint8_t *data = NULL;
    size_t len = 0;
    if (!st) {
        st = store_get(r->st, "repo.json", &data, &len);
        if (st == CAIRN_ENOTFOUND && o->create) {
            /* the levels a new repository is created with are its own */
            r->json_level = o->level ? o->level : DEFAULT_LEVEL;
            r->json_wal_level = o->wal_level ? o->wal_level : DEFAULT_WAL_LEVEL;
            st = repo_json_write(r);
        } else if (st == CAIRN_ENOTFOUND) {
            st = cerr_set(CAIRN_ENOTFOUND, "\"%s\" is not a cairn backup repository (no repo.json)",
                          dir);
        } else if (!st) {
            st = repo_json_read(r, data, len);
        }
    }
    free(data);
    if (st) {
        repo_close(r);
        return st;
    }
    /* Options apply to what this process writes. Without a "wal_level"
     * (a repository older than it), WAL follows the level, as it did. */
    r->level = o->level ? o->level : r->json_level;
    r->wal_level = o->wal_level ? o->wal_level : r->json_wal_level ? r->json_wal_level : r->level;
    *out = r;
    return CAIRN_OK;
}

cairn_status repo_named(repo *r, const char *what, const char *path, cairn_status st)
{
    const char *m = cairn_last_error();
    if (st && !strstr(m, r->dir) && !(path && strstr(m, path)))
        cerr_wrap(st, "%s \"%s\" (repository \"%s\")", what, path ? path : "", r->dir);
    return st;
}

cairn_status repo_lock(repo *r, bool exclusive, int *fd)
{
    char *path = cairn_path_join(r->dir, "lock");
    if (!path)
        return cerr_set(CAIRN_ENOMEM, "out of memory");
    *fd = -1;
    cairn_status st = CAIRN_OK;
    if (!exclusive && access(r->dir, W_OK) != 0 && (errno == EROFS || errno == EACCES)) {
        /* a repository this process cannot write (a read-only copy): no
         * expire can run here, and the lock file cannot be made */
        free(path);
        return CAIRN_OK;
    }
    st = cfs_lock_how(path, exclusive ? LOCK_EX : LOCK_SH, fd);
    free(path);
    return st;
}

void repo_unlock(int fd)
{
    if (fd >= 0)
        cfs_unlock(fd);
}

void repo_close(repo *r)
{
    if (!r)
        return;
    store_close(r->st);
    OPENSSL_cleanse(r->key, sizeof r->key);
    free(r->dir);
    free(r);
}

/* Another database, or another segment size, than the one r is bound to. */
static cairn_status bind_check(const repo *r, uint64_t db_id, uint32_t seg_shift)
{
    if (r->db_id && r->db_id != db_id)
        return cerr_set(CAIRN_EINVAL, "repository \"%s\" holds database %016" PRIx64
                        ", not this database (%016" PRIx64 ")", r->dir, r->db_id, db_id);
    if (r->seg_shift && r->seg_shift != seg_shift)
        return cerr_set(CAIRN_EINVAL, "repository \"%s\" has WAL segments of 2^%u bytes, this "
                        "database 2^%u", r->dir, r->seg_shift, seg_shift);
    return CAIRN_OK;
}

/* The first bind of a handle opened on an unbound repository: another
 * process may have bound it since (two backups of two databases into one
 * new repository): under an exclusive lock on the repository's directory
 * (its inode stays; repo.json is replaced by each write, and REPO/lock is
 * held shared by the callers already), repo.json is read again and the
 * checks and the write are made against what it says now. */
static cairn_status bind_locked(repo *r, uint64_t db_id, uint32_t seg_shift)
{
    uint8_t *data = NULL;
    size_t len = 0;
    cairn_status st = store_get(r->st, "repo.json", &data, &len);
    if (!st)
        st = repo_json_read(r, data, len);
    free(data);
    if (!st && r->db_id == db_id && r->seg_shift == seg_shift)
        return CAIRN_OK;
    if (!st)
        st = bind_check(r, db_id, seg_shift);
    if (st)
        return st;
    uint64_t was_id = r->db_id;
    uint32_t was_shift = r->seg_shift;
    r->db_id = db_id;
    r->seg_shift = seg_shift;
    st = repo_json_write(r);
    if (st) { /* as repo.json still says */
        r->db_id = was_id;
        r->seg_shift = was_shift;
    }
    return st;
}

cairn_status repo_bind(repo *r, uint64_t db_id, uint32_t seg_shift)
{
    if (r->db_id == db_id && r->seg_shift == seg_shift)
        return CAIRN_OK;
    cairn_status st = bind_check(r, db_id, seg_shift);
    if (st)
        return st;
    int dfd = open(r->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return cerr_errno(errno, "could not bind repository \"%s\" to this database: open "
                          "its directory", r->dir);
    int rc;
    do
        rc = flock(dfd, LOCK_EX);
    while (rc != 0 && errno == EINTR);
    st = rc != 0 ? cerr_errno(errno, "could not bind repository \"%s\" to this database: "
                              "lock its directory", r->dir)
                 : bind_locked(r, db_id, seg_shift);
    close(dfd); /* and the lock with it */
    return st;
}

/* ---- objects ---------------------------------------------------------------- */

static const char *kind_name(unsigned k)
{
    return k == REPO_OBJ_PACK ? "page pack" : k == REPO_OBJ_WAL ? "WAL segment"
                                          : k == REPO_OBJ_SMALL ? "file" : "unknown";
}

cairn_status repo_obj_put(repo *r, const char *name, enum repo_obj_kind kind, const void *data,
                          size_t len, const uint8_t sha[CODEC_SHA256_LEN], bool shuffle,
                          uint64_t *stored)
{
    uint8_t *z = NULL;
    size_t zlen = 0;
    bool shuffled = false;
    char what[300];
    snprintf(what, sizeof what, "object \"%s\" of repository \"%s\"", name, r->dir);
    int level = kind == REPO_OBJ_WAL ? r->wal_level : r->level;
    cairn_status st = codec_compress(data, len, level, shuffle, &z, &zlen, &shuffled, what);
    if (st)
        return st;
    uint8_t *obj = malloc(OBJ_HDR + zlen);
    if (!obj) {
        free(z);
        return cerr_set(CAIRN_ENOMEM, "out of memory");
    }
    uint8_t *h = obj;
    memset(h, 0, OBJ_HDR);
    memcpy(h, OBJ_MAGIC, 8);
    st32(h + 8, OBJ_VERSION);
    h[12] = (uint8_t)kind;
    h[13] = (uint8_t)((shuffled ? OBJ_F_SHUFFLED : 0) | (r->encrypted ? OBJ_F_ENCRYPTED : 0));
    st64(h + 16, len);
    st64(h + 24, zlen);
    memcpy(h + 32, sha, CODEC_SHA256_LEN);
    if (r->encrypted)
        st = codec_seal(r->key, h, 64, z, zlen, obj + OBJ_HDR, h + 64, h + 76, what);
    else
        memcpy(obj + OBJ_HDR, z, zlen);
    free(z);
    st32(h + 92, crc32c(0, h, 92));
    if (!st)
        st = store_put(r->st, name, obj, OBJ_HDR + zlen);
    free(obj);
    if (!st && stored)
        *stored = OBJ_HDR + zlen;
    return st;
}

void repo_reuse_free(struct repo_reuse *ru)
{
    free(ru->obj);
    free(ru->img);
    memset(ru, 0, sizeof *ru);
}

cairn_status repo_obj_get(repo *r, const char *name, enum repo_obj_kind kind,
                          const uint8_t *want_sha, uint8_t **data, size_t *len)
{
    struct repo_reuse ru = {0};
    cairn_status st = repo_obj_get_reuse(r, name, kind, want_sha, &ru, data, len);
    repo_reuse_free(&ru);
    return st;
}

cairn_status repo_obj_get_reuse(repo *r, const char *name, enum repo_obj_kind kind,
                                const uint8_t *want_sha, struct repo_reuse *ru, uint8_t **data,
                                size_t *len)
{
    *data = NULL;
    *len = 0;
    size_t olen = 0;
    cairn_status st = store_get_into(r->st, name, &ru->obj, &ru->obj_cap, &olen);
    if (st)
        return st;
    const uint8_t *obj = ru->obj;
    bool given = false; /* out is the caller's buffer (ru->img) */
    char what[300];
    snprintf(what, sizeof what, "object \"%s\" of repository \"%s\"", name, r->dir);
    const uint8_t *h = obj;
    uint8_t *z = NULL, *out = NULL;
    if (olen < OBJ_HDR || memcmp(h, OBJ_MAGIC, 8) != 0) {
        st = cerr_set(CAIRN_ECORRUPT, "%s: not a cairn object (%s)", what,
                      olen < OBJ_HDR ? "shorter than its header" : "bad magic");
        goto out;
    }
    if (ld32(h + 92) != crc32c(0, h, 92)) {
        st = cerr_set(CAIRN_ECORRUPT, "%s: header checksum mismatch at offset 92", what);
        goto out;
    }
    if (ld32(h + 8) != OBJ_VERSION) {
        st = cerr_set(CAIRN_EVERSION, "%s has object version %u; this build reads %u", what,
                      ld32(h + 8), OBJ_VERSION);
        goto out;
    }
    if (h[12] != kind || (h[13] & ~OBJ_KNOWN_FLAGS) || ld16(h + 14)) {
        st = cerr_set(CAIRN_ECORRUPT, "%s: header says kind %u (%s) flags 0x%x, expected a %s",
                      what, h[12], kind_name(h[12]), h[13], kind_name(kind));
        goto out;
    }
    uint64_t raw = ld64(h + 16), zlen = ld64(h + 24);
    if (raw > OBJ_MAX || zlen != olen - OBJ_HDR) {
        st = raw > OBJ_MAX
                 ? cerr_set(CAIRN_ECORRUPT, "%s: content length %" PRIu64 " in the header at "
                            "offset 16 is over the limit %" PRIu64, what, raw, (uint64_t)OBJ_MAX)
                 : cerr_set(CAIRN_ECORRUPT, "%s: payload length %" PRIu64 " in the header at "
                            "offset 24, but the object has %zu bytes after its header", what,
                            zlen, olen - OBJ_HDR);
        goto out;
    }
    bool enc = h[13] & OBJ_F_ENCRYPTED;
    if (enc != r->encrypted) {
        st = cerr_set(CAIRN_ECORRUPT, "%s is %s, but the repository is %s", what,
                      enc ? "encrypted" : "not encrypted", r->encrypted ? "encrypted" : "not");
        goto out;
    }
    const uint8_t *payload = obj + OBJ_HDR;
    if (enc) {
        z = malloc(zlen ? zlen : 1);
        if (!z) {
            st = cerr_set(CAIRN_ENOMEM, "out of memory");
            goto out;
        }
        st = codec_open(r->key, h, 64, payload, zlen, z, h + 64, h + 76, what);
        if (st)
            goto out;
        payload = z;
    }
    given = ru->img && raw <= ru->img_cap;
    if (given) {
        out = ru->img;
        ru->img = NULL;
    } else {
        out = malloc(raw ? raw : 1);
    }
    if (!out) {
        st = cerr_set(CAIRN_ENOMEM, "out of memory");
        goto out;
    }
    uint8_t sha[CODEC_SHA256_LEN];
    if (ru->sha_only) {
        st = codec_decompress_sha256(payload, zlen, h[13] & OBJ_F_SHUFFLED, out, raw, sha, what);
    } else {
        st = codec_decompress(payload, zlen, h[13] & OBJ_F_SHUFFLED, out, raw, what);
        if (!st)
            codec_sha256(out, raw, sha);
    }
    if (st)
        goto out;
    if (memcmp(sha, h + 32, CODEC_SHA256_LEN) != 0 ||
        (want_sha && memcmp(sha, want_sha, CODEC_SHA256_LEN) != 0)) {
        char got[CODEC_SHA256_HEX], want[CODEC_SHA256_HEX];
        codec_hex(sha, got);
        codec_hex(want_sha && memcmp(h + 32, sha, CODEC_SHA256_LEN) == 0 ? want_sha : h + 32,
                  want);
        st = cerr_set(CAIRN_ECORRUPT, "%s: content SHA-256 %s, expected %s", what, got, want);
        goto out;
    }
    *data = out;
    *len = raw;
    if (given)
        ru->img_cap = 0;
    out = NULL;
out:
    if (out && given)
        ru->img = out; /* a failure leaves the caller's buffer with it */
    else
        free(out);
    free(z);
    return st;
}

void repo_blob_name(const uint8_t sha[CODEC_SHA256_LEN], char *out, size_t n)
{
    char hex[CODEC_SHA256_HEX];
    codec_hex(sha, hex);
    snprintf(out, n, "blobs/%.2s/%s", hex, hex);
}

cairn_status repo_blob_put(repo *r, const void *data, size_t len, bool shuffle,
                           uint8_t sha_out[CODEC_SHA256_LEN], bool *added, uint64_t *stored)
{
    codec_sha256(data, len, sha_out);
    char name[128];
    repo_blob_name(sha_out, name, sizeof name);
    uint64_t size = 0;
    *added = false;
    *stored = 0;
    cairn_status st = store_stat(r->st, name, &size);
    if (!st)
        return CAIRN_OK; /* the same content is already there */
    if (st != CAIRN_ENOTFOUND)
        return st;
    st = repo_obj_put(r, name, REPO_OBJ_PACK, data, len, sha_out, shuffle, stored);
    *added = !st;
    return st;
}

cairn_status repo_blob_get(repo *r, const uint8_t sha[CODEC_SHA256_LEN], uint8_t **data,
                           size_t *len)
{
    char name[128];
    repo_blob_name(sha, name, sizeof name);
    return repo_obj_get(r, name, REPO_OBJ_PACK, sha, data, len);
}

/* ---- manifests ---------------------------------------------------------------- */

static bool id_ok(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'A' && id[i] <= 'Z') ||
              (id[i] >= 'a' && id[i] <= 'z') || id[i] == '-' || id[i] == '_'))
            return false;
    return true;
}

#define SUM_PREFIX "sha256:"

cairn_status repo_manifest_put(repo *r, const char *id, const char *text, size_t len)
{
    if (!id_ok(id))
        return cerr_set(CAIRN_EINVAL, "backup id \"%s\" is not valid (1..64 of [A-Za-z0-9_-])", id);
    size_t tail = strlen(SUM_PREFIX) + 64 + 1;
    char *buf = malloc(len + tail + 1);
    if (!buf)
        return cerr_set(CAIRN_ENOMEM, "out of memory");
    memcpy(buf, text, len);
    uint8_t sha[CODEC_SHA256_LEN];
    codec_sha256(text, len, sha);
    char hex[CODEC_SHA256_HEX];
    codec_hex(sha, hex);
    snprintf(buf + len, tail + 1, SUM_PREFIX "%s\n", hex);
    char name[128];
    snprintf(name, sizeof name, "backups/%s/manifest", id);
    cairn_status st = store_put(r->st, name, buf, len + tail);
    free(buf);
    return st;
}

cairn_status repo_manifest_get(repo *r, const char *id, char **text, size_t *len)
{
    *text = NULL;
    *len = 0;
    if (!id_ok(id))
        return cerr_set(CAIRN_EINVAL, "backup id \"%s\" is not valid (1..64 of [A-Za-z0-9_-])", id);
    char name[128];
    snprintf(name, sizeof name, "backups/%s/manifest", id);
    uint8_t *data = NULL;
    size_t n = 0;
    cairn_status st = store_get(r->st, name, &data, &n);
    if (st == CAIRN_ENOTFOUND)
        return cerr_set(CAIRN_ENOTFOUND, "repository \"%s\" has no backup \"%s\"", r->dir, id);
    if (st)
        return st;
    size_t tail = strlen(SUM_PREFIX) + 64 + 1;
    uint8_t sha[CODEC_SHA256_LEN], want[CODEC_SHA256_LEN];
    char hexbuf[CODEC_SHA256_HEX];
    if (n < tail || memcmp(data + n - tail, SUM_PREFIX, strlen(SUM_PREFIX)) != 0 ||
        data[n - 1] != '\n') {
        free(data);
        return cerr_set(CAIRN_ECORRUPT, "manifest \"%s\" of repository \"%s\" does not end with "
                        "its checksum line (cut short?) at offset %zu", name, r->dir,
                        n >= tail ? n - tail : 0);
    }
    memcpy(hexbuf, data + n - tail + strlen(SUM_PREFIX), 64);
    hexbuf[64] = 0;
    codec_sha256(data, n - tail, sha);
    if (!codec_unhex(hexbuf, want) || memcmp(sha, want, sizeof sha) != 0) {
        free(data);
        return cerr_set(CAIRN_ECORRUPT, "manifest \"%s\" of repository \"%s\": checksum mismatch "
                        "(the checksum line at offset %zu does not match the text before it)",
                        name, r->dir, n - tail);
    }
    data[n - tail] = 0;
    *text = (char *)data;
    *len = n - tail;
    return CAIRN_OK;
}

struct strv {
    char **v;
    size_t n, cap;
};

static cairn_status strv_add(struct strv *s, const char *p, size_t len)
{
    if (s->n == s->cap) {
        size_t nc = s->cap ? 2 * s->cap : 16;
        char **nv = realloc(s->v, nc * sizeof *nv);
        if (!nv)
            return cerr_set(CAIRN_ENOMEM, "out of memory");
        s->v = nv;
        s->cap = nc;
    }
    char *c = strndup(p, len);
    if (!c)
        return cerr_set(CAIRN_ENOMEM, "out of memory");
    s->v[s->n++] = c;
    return CAIRN_OK;
}

void repo_strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static cairn_status collect_manifest(void *ctx, const char *name, uint64_t size)
{
    (void)size;
    /* backups/<id>/manifest */
    const char *p = name + strlen("backups/");
    const char *slash = strchr(p, '/');
    if (!slash || strcmp(slash, "/manifest") != 0)
        return CAIRN_OK;
    return strv_add(ctx, p, (size_t)(slash - p));
}

cairn_status repo_backup_ids(repo *r, char ***ids, size_t *n)
{
    struct strv s = {0};
    cairn_status st = store_list(r->st, "backups/", collect_manifest, &s);
    if (st) {
        repo_strv_free(s.v, s.n);
        return st;
    }
    *ids = s.v;
    *n = s.n;
    return CAIRN_OK;
}

/* ---- WAL summaries ------------------------------------------------------------ */

void repo_wal_obj_name(uint32_t timeline, uint64_t start, bool summary, char *out, size_t n)
{
    char seg[64];
    wal_seg_name(seg, sizeof seg, timeline, start);
    snprintf(out, n, "wal/%08X/%s%s", timeline, seg, summary ? ".json" : "");
}

void repo_seg_summary_free(struct repo_seg_summary *s)
{
    free(s->rpoints);
    s->rpoints = NULL;
    s->nrpoints = 0;
}

static json_t *commit_json(const struct repo_commit_ref *c)
{
    return json_pack("{s:I, s:I, s:I, s:I}", "lsn", (json_int_t)c->lsn, "end",
                     (json_int_t)c->end, "time_us", (json_int_t)c->time_us, "txn",
                     (json_int_t)c->txn);
}

cairn_status repo_seg_summary_put(repo *r, const struct repo_seg_summary *s)
{
    char hex[CODEC_SHA256_HEX];
    codec_hex(s->sha, hex);
    json_t *rp = json_array();
    for (size_t i = 0; rp && i < s->nrpoints; i++)
        if (json_array_append_new(rp, json_pack("{s:s, s:I, s:I, s:I}", "name",
                                                s->rpoints[i].name, "lsn",
                                                (json_int_t)s->rpoints[i].lsn, "end",
                                                (json_int_t)s->rpoints[i].end, "time_us",
                                                (json_int_t)s->rpoints[i].time_us)) != 0) {
            json_decref(rp);
            rp = NULL;
        }
    json_t *o = rp ? json_pack("{s:I, s:I, s:I, s:s, s:I, s:I, s:o, s:o, s:I, s:I, s:o}",
                               "timeline", (json_int_t)s->timeline, "start",
                               (json_int_t)s->start, "end_lsn", (json_int_t)s->end_lsn, "sha256",
                               hex, "records", (json_int_t)s->records, "commits",
                               (json_int_t)s->commits, "first_commit", commit_json(&s->first),
                               "last_commit", commit_json(&s->last), "min_txn",
                               (json_int_t)s->min_txn, "max_txn", (json_int_t)s->max_txn,
                               "restore_points", rp)
                   : NULL;
    if (!o)
        return cerr_set(CAIRN_ENOMEM, "out of memory");
    char name[128];
    repo_wal_obj_name(s->timeline, s->start, true, name, sizeof name);
    char *text = NULL;
    char what[700];
    snprintf(what, sizeof what, "WAL summary \"%s\" of repository \"%s\"", name, r->dir);
    cairn_status dst = repo_json_dump(o, JSON_COMPACT | JSON_PRESERVE_ORDER, what, &text);
    json_decref(o);
    if (dst)
        return dst;
    cairn_status st = store_put(r->st, name, text, strlen(text));
    free(text);
    return st;
}

bool repo_json_u64(json_t *o, const char *key, uint64_t *v)
{
    json_t *x = json_object_get(o, key);
    if (!json_is_integer(x) || json_integer_value(x) < 0)
        return false;
    *v = (uint64_t)json_integer_value(x);
    return true;
}

bool repo_json_i64(json_t *o, const char *key, int64_t *v)
{
    json_t *x = json_object_get(o, key);
    if (!json_is_integer(x))
        return false;
    *v = (int64_t)json_integer_value(x);
    return true;
}

static bool commit_from(json_t *o, struct repo_commit_ref *c)
{
    return json_is_object(o) && repo_json_u64(o, "lsn", &c->lsn) && repo_json_u64(o, "end", &c->end) &&
           repo_json_i64(o, "time_us", &c->time_us) && repo_json_u64(o, "txn", &c->txn);
}

cairn_status repo_seg_summary_get(repo *r, uint32_t timeline, uint64_t start,
                                  struct repo_seg_summary *out)
{
    memset(out, 0, sizeof *out);
    char name[128];
    repo_wal_obj_name(timeline, start, true, name, sizeof name);
    uint8_t *data = NULL;
    size_t len = 0;
    cairn_status st = store_get(r->st, name, &data, &len);
    if (st)
        return st;
    struct cjson_error jerr = {0, NULL};
    json_t *o = NULL;
    char what[700];
    snprintf(what, sizeof what, "WAL summary \"%s\" of repository \"%s\"", name, r->dir);
    st = repo_json_parse(data, len, what, &o, &jerr);
    free(data);
    if (st)
        return st;
    uint64_t tl = 0;
    const char *hex = json_string_value(json_object_get(o, "sha256"));
    json_t *rp = json_object_get(o, "restore_points");
    bool ok = o && repo_json_u64(o, "timeline", &tl) && tl == timeline &&
              repo_json_u64(o, "start", &out->start) && out->start == start &&
              repo_json_u64(o, "end_lsn", &out->end_lsn) && hex && codec_unhex(hex, out->sha) &&
              repo_json_u64(o, "records", &out->records) && repo_json_u64(o, "commits", &out->commits) &&
              commit_from(json_object_get(o, "first_commit"), &out->first) &&
              commit_from(json_object_get(o, "last_commit"), &out->last) &&
              repo_json_u64(o, "min_txn", &out->min_txn) && repo_json_u64(o, "max_txn", &out->max_txn) &&
              json_is_array(rp);
    out->timeline = timeline;
    if (ok && json_array_size(rp)) {
        out->rpoints = calloc(json_array_size(rp), sizeof *out->rpoints);
        if (!out->rpoints) {
            json_decref(o);
            return cerr_set(CAIRN_ENOMEM, "out of memory");
        }
        for (size_t i = 0; ok && i < json_array_size(rp); i++) {
            json_t *e = json_array_get(rp, i);
            const char *nm = json_string_value(json_object_get(e, "name"));
            struct repo_rpoint *p = &out->rpoints[i];
            ok = nm && strlen(nm) <= CAIRN_MAX_NAME && repo_json_u64(e, "lsn", &p->lsn) &&
                 repo_json_u64(e, "end", &p->end) && repo_json_i64(e, "time_us", &p->time_us);
            if (ok)
                strcpy(p->name, nm);
            out->nrpoints = i + 1;
        }
    }
    json_decref(o);
    if (!ok) {
        repo_seg_summary_free(out);
        if (!o)
            return cerr_set(CAIRN_EFORMAT, "WAL summary \"%s\" of repository \"%s\" is not "
                            "JSON (%s at offset %zu)", name, r->dir, jerr.what, jerr.offset);
        return cerr_set(CAIRN_EFORMAT, "WAL summary \"%s\" of repository \"%s\" is malformed", name,
                        r->dir);
    }
    return CAIRN_OK;
}

struct wal_collect {
    uint32_t tl;
    uint64_t *v;
    size_t n, cap;
};

static cairn_status collect_wal(void *ctx, const char *name, uint64_t size)
{
    (void)size;
    struct wal_collect *c = ctx;
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    size_t bl = strlen(base);
    if (bl < 5 || strcmp(base + bl - 5, ".json") != 0)
        return CAIRN_OK; /* the summary marks a segment as archived */
    char seg[64];
    if (bl - 5 >= sizeof seg)
        return CAIRN_OK;
    memcpy(seg, base, bl - 5);
    seg[bl - 5] = 0;
    uint32_t tl;
    uint64_t start;
    if (!wal_seg_parse_name(seg, &tl, &start) || tl != c->tl)
        return CAIRN_OK;
    if (c->n == c->cap) {
        size_t nc = c->cap ? 2 * c->cap : 64;
        uint64_t *nv = realloc(c->v, nc * sizeof *nv);
        if (!nv)
            return cerr_set(CAIRN_ENOMEM, "out of memory");
        c->v = nv;
        c->cap = nc;
    }
    c->v[c->n++] = start;
    return CAIRN_OK;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

cairn_status repo_wal_list(repo *r, uint32_t timeline, uint64_t **starts, size_t *n)
{
    char prefix[32];
    snprintf(prefix, sizeof prefix, "wal/%08X/", timeline);
    struct wal_collect c = {.tl = timeline};
    cairn_status st = store_list(r->st, prefix, collect_wal, &c);
    if (st) {
        free(c.v);
        return st;
    }
    if (c.n > 1)
        qsort(c.v, c.n, sizeof *c.v, cmp_u64);
    *starts = c.v;
    *n = c.n;
    return CAIRN_OK;
}

cairn_status repo_wal_has(repo *r, uint32_t timeline, uint64_t start, bool *has)
{
    char name[128];
    repo_wal_obj_name(timeline, start, true, name, sizeof name);
    uint64_t size;
    cairn_status st = store_stat(r->st, name, &size);
    *has = st == CAIRN_OK;
    if (st == CAIRN_ENOTFOUND) {
        cerr_clear();
        st = CAIRN_OK;
    }
    return st;
}

/* ---- timelines ------------------------------------------------------------------ */

cairn_status repo_history_parse(repo *r, const char *text, size_t len, uint32_t tl,
                                const char *what, struct wal_hist_line **out, size_t *n)
{
    uint64_t seg = r->seg_shift ? (uint64_t)1 << r->seg_shift : 0;
    return wal_history_parse(text, len, tl, seg, what, out, n);
}

cairn_status repo_history_get(repo *r, uint32_t tl, struct wal_hist_line **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    char name[64];
    repo_history_obj_name(tl, name, sizeof name);
    uint8_t *data = NULL;
    size_t len = 0;
    cairn_status st = store_get(r->st, name, &data, &len);
    if (st == CAIRN_ENOTFOUND) {
        cerr_clear();
        return CAIRN_OK;
    }
    if (st)
        return st;
    char what[300];
    snprintf(what, sizeof what, "history file \"%s\" of repository \"%s\"", name, r->dir);
    st = repo_history_parse(r, (const char *)data, len, tl, what, out, n);
    free(data);
    return st;
}

cairn_status repo_history_put(repo *r, uint32_t tl, const char *text, size_t len)
{
    char name[64];
    repo_history_obj_name(tl, name, sizeof name);
    return store_put(r->st, name, text, len);
}

struct tl_collect {
    uint32_t *v;
    size_t n, cap;
};

static cairn_status add_tl(struct tl_collect *c, uint32_t tl)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->v[i] == tl)
            return CAIRN_OK;
    if (c->n == c->cap) {
        size_t nc = c->cap ? 2 * c->cap : 8;
        uint32_t *nv = realloc(c->v, nc * sizeof *nv);
        if (!nv)
            return cerr_set(CAIRN_ENOMEM, "out of memory");
        c->v = nv;
        c->cap = nc;
    }
    c->v[c->n++] = tl;
    return CAIRN_OK;
}

static cairn_status collect_tl(void *ctx, const char *name, uint64_t size)
{
    (void)size;
    unsigned tl = 0;
    char tail[16];
    uint32_t htl = 0;
    if (sscanf(name, "wal/%8X/%15s", &tl, tail) == 2 && tl)
        return add_tl(ctx, tl);
    if (!strncmp(name, "history/", 8) && wal_history_parse_name(name + 8, &htl))
        return add_tl(ctx, htl);
    return CAIRN_OK;
}

void repo_history_obj_name(uint32_t tl, char *out, size_t n)
{
    char h[32];
    wal_history_name(h, sizeof h, tl);
    snprintf(out, n, "history/%s", h);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

cairn_status repo_timelines(repo *r, uint32_t **tls, size_t *n)
{
    struct tl_collect c = {0};
    cairn_status st = store_list(r->st, "wal/", collect_tl, &c);
    if (!st)
        st = store_list(r->st, "history/", collect_tl, &c);
    if (st) {
        free(c.v);
        return st;
    }
    if (c.n > 1)
        qsort(c.v, c.n, sizeof *c.v, cmp_u32);
    *tls = c.v;
    *n = c.n;
    return CAIRN_OK;
}
