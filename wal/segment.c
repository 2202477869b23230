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
