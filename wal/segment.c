/*
 * segment.c — WAL segment files: names, the 64-byte header, listing the
 * segments of a timeline. Layout in wal/format.h (SEGMENT FILES, SEGMENT
 * HEADER).
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/crc32c.h"
#include "common/err.h"
#include "common/util.h"
#include "wal/wal.h"

/* Header field offsets (format.h, SEGMENT HEADER). */
enum {
    SH_MAGIC = 0,
    SH_VERSION = 8,
    SH_HDRSIZE = 12,
    SH_TIMELINE = 16,
    SH_SHIFT = 20,
    SH_START = 24,
    SH_DBID = 32,
    SH_SALT = 40,
    SH_RESERVED = 44,
    SH_CRC = 60
};

#define SEG_NAME_LEN 29 /* 8 + 1 + 16 + 4 */

void wal_seg_name(char *buf, size_t n, uint32_t timeline, uint64_t start_lsn)
{
    snprintf(buf, n, "%08" PRIX32 "-%016" PRIX64 ".wal", timeline, start_lsn);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1; /* lower case is not a segment name: names are upper case */
}

void wal_history_name(char *buf, size_t n, uint32_t timeline)
{
    snprintf(buf, n, "%08" PRIX32 ".history", timeline);
}

size_t wal_history_format_line(char *buf, const struct wal_hist_line *l)
{
    return (size_t)snprintf(buf, WAL_HIST_LINE_MAX + 1, "%" PRIu32 " %016" PRIX64 " %016" PRIX64
                            "\n", l->parent, l->switch_lsn, l->start_lsn);
}

/* n hex digits (either case) at p. */
static bool parse_hex_n(const char *p, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        int d = c >= 'a' && c <= 'f' ? c - 'a' + 10 : hexval(c);
        if (d < 0)
            return false;
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return true;
}

cairn_status wal_history_parse(const char *text, size_t len, uint32_t tl, uint64_t seg_size,
                               const char *what, struct wal_hist_line **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    size_t cap = len / 36 + 1; /* the shortest line is 36 bytes */
    struct wal_hist_line *h = calloc(cap, sizeof *h);
    if (!h)
        return cerr_set(CAIRN_ENOMEM, "out of memory for %s", what);
    size_t cnt = 0;
    cairn_status st = CAIRN_OK;
    for (size_t off = 0; off < len;) {
        const char *p = text + off;
        size_t room = len - off < WAL_HIST_LINE_MAX ? len - off : WAL_HIST_LINE_MAX;
        const char *nl = memchr(p, '\n', room);
        size_t digits = 0;
        uint64_t parent = 0;
        while (nl && p + digits < nl && p[digits] >= '0' && p[digits] <= '9' && digits < 11)
            parent = parent * 10 + (uint64_t)(p[digits++] - '0');
        struct wal_hist_line *l = &h[cnt];
        const char *q = p + digits;
        if (!nl || digits == 0 || digits > 10 || p[0] == '0' || parent > UINT32_MAX ||
            nl - q != 34 || q[0] != ' ' || !parse_hex_n(q + 1, 16, &l->switch_lsn) ||
            q[17] != ' ' || !parse_hex_n(q + 18, 16, &l->start_lsn)) {
            st = cerr_set(CAIRN_ECORRUPT,
                          "could not read %s at offset %zu: line %zu is not \"<parent timeline, "
                          "decimal> <switch LSN, 16 hex digits> <start LSN, 16 hex digits>\"",
                          what, off, cnt + 1);
            break;
        }
        l->parent = (uint32_t)parent;
        cnt++;
        off += (size_t)(nl - p) + 1;
    }
    for (size_t i = 0; i < cnt && !st; i++) {
        const struct wal_hist_line *l = &h[i];
        uint32_t child = i + 1 < cnt ? h[i + 1].parent : tl;
        if (l->parent >= child || l->start_lsn <= l->switch_lsn ||
            (seg_size && l->start_lsn % seg_size != WAL_SEG_DATA) ||
            (i > 0 && l->switch_lsn < h[i - 1].start_lsn))
            st = cerr_set(CAIRN_ECORRUPT,
                          "could not read %s: line %zu (parent %" PRIu32 ", switch LSN %" PRIu64
                          ", start LSN %" PRIu64 ") does not follow from the lines before it "
                          "(timeline %" PRIu32 ")",
                          what, i + 1, l->parent, l->switch_lsn, l->start_lsn, child);
    }
    if (st) {
        free(h);
        return st;
    }
    *out = h;
    *n = cnt;
    return CAIRN_OK;
}

bool wal_history_parse_name(const char *name, uint32_t *timeline)
{
    if (!name || strlen(name) != 16 || strcmp(name + 8, ".history") != 0)
        return false;
    uint32_t tl = 0;
    for (int i = 0; i < 8; i++) {
        int v = hexval(name[i]);
        if (v < 0)
            return false;
        tl = tl << 4 | (uint32_t)v;
    }
    if (tl == 0)
        return false;
    if (timeline)
        *timeline = tl;
    return true;
}

bool wal_seg_parse_name(const char *name, uint32_t *timeline, uint64_t *start_lsn)
{
    if (!name || strlen(name) != SEG_NAME_LEN || name[8] != '-' ||
        strcmp(name + 25, ".wal") != 0)
        return false;
    uint64_t tl = 0, lsn = 0;
    for (int i = 0; i < 8; i++) {
        int v = hexval(name[i]);
        if (v < 0)
            return false;
        tl = tl << 4 | (uint64_t)v;
    }
    for (int i = 9; i < 25; i++) {
        int v = hexval(name[i]);
        if (v < 0)
            return false;
        lsn = lsn << 4 | (uint64_t)v;
    }
    if (timeline)
        *timeline = (uint32_t)tl;
    if (start_lsn)
        *start_lsn = lsn;
    return true;
}

void wal_seg_header_encode(uint8_t out[WAL_SEG_HDR], const struct wal_seg_header *h)
{
    memset(out, 0, WAL_SEG_HDR);
    memcpy(out + SH_MAGIC, WAL_MAGIC, 8);
    st32(out + SH_VERSION, h->version ? h->version : WAL_FORMAT_VERSION);
    st32(out + SH_HDRSIZE, WAL_SEG_HDR);
    st32(out + SH_TIMELINE, h->timeline);
    st32(out + SH_SHIFT, h->seg_shift);
    st64(out + SH_START, h->start_lsn);
    st64(out + SH_DBID, h->db_id);
    st32(out + SH_SALT, h->salt);
    st32(out + SH_CRC, crc32c(0, out, SH_CRC));
}

static cairn_status bad_header(const char *path, const char *why)
{
    return cerr_set(CAIRN_ECORRUPT,
                    "could not read WAL segment header \"%s\" at offset 0: %s",
                    path ? path : "(unnamed)", why);
}

cairn_status wal_seg_header_decode(const uint8_t in[WAL_SEG_HDR],
                                   struct wal_seg_header *h, const char *path)
{
    if (memcmp(in + SH_MAGIC, WAL_MAGIC, 8) != 0)
        return bad_header(path, "bad magic (not a cairn WAL segment)");
    uint32_t version = ld32(in + SH_VERSION);
    /* A newer format may lay the rest out differently: judge it by its
     * version before its crc. */
    if (version > WAL_FORMAT_VERSION)
        return cerr_set(CAIRN_EVERSION,
                        "could not read WAL segment header \"%s\" at offset 0: format "
                        "version %" PRIu32 " is newer than this library's (%u)",
                        path ? path : "(unnamed)", version, WAL_FORMAT_VERSION);
    if (crc32c(0, in, SH_CRC) != ld32(in + SH_CRC))
        return bad_header(path, "header checksum mismatch");
    if (version == 0)
        return bad_header(path, "format version 0");
    if (version < WAL_FORMAT_VERSION)
        return cerr_set(CAIRN_EVERSION,
                        "could not read WAL segment header \"%s\" at offset 0: format "
                        "version %" PRIu32 " (records not padded to %u-byte blocks, from a "
                        "development build) is no longer read; this library reads version %u",
                        path ? path : "(unnamed)", version, WAL_BLOCK, WAL_FORMAT_VERSION);
    if (ld32(in + SH_HDRSIZE) != WAL_SEG_HDR)
        return bad_header(path, "header size is not 64");
    uint32_t shift = ld32(in + SH_SHIFT);
    if (shift < 21 || shift > 30)
        return bad_header(path, "segment size out of range");
    uint64_t start = ld64(in + SH_START);
    if (start & ((UINT64_C(1) << shift) - 1))
        return bad_header(path, "start LSN is not a multiple of the segment size");
    h->version = version;
    h->timeline = ld32(in + SH_TIMELINE);
    h->seg_shift = shift;
    h->start_lsn = start;
    h->db_id = ld64(in + SH_DBID);
    h->salt = ld32(in + SH_SALT);
    return CAIRN_OK;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

cairn_status wal_seg_list(const char *waldir, uint32_t timeline, uint64_t **starts,
                          size_t *n)
{
    *starts = NULL;
    *n = 0;
    DIR *d = opendir(waldir);
    if (!d)
        return cerr_errno(errno, "could not open WAL directory \"%s\"", waldir);
    uint64_t *v = NULL;
    size_t cnt = 0, cap = 0;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d)) != NULL) {
        uint32_t tl;
        uint64_t lsn;
        if (!wal_seg_parse_name(de->d_name, &tl, &lsn) || tl != timeline)
            continue;
        if (cnt == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            uint64_t *nv = realloc(v, ncap * sizeof *nv);
            if (!nv) {
                free(v);
                closedir(d);
                return cerr_set(CAIRN_ENOMEM,
                                "could not list WAL directory \"%s\": out of memory",
                                waldir);
            }
            v = nv;
            cap = ncap;
        }
        v[cnt++] = lsn;
    }
    int e = errno;
    closedir(d);
    if (e) {
        free(v);
        return cerr_errno(e, "could not list WAL directory \"%s\"", waldir);
    }
    if (cnt > 1)
        qsort(v, cnt, sizeof *v, cmp_u64);
    *starts = v;
    *n = cnt;
    return CAIRN_OK;
}
