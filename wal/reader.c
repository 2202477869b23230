/*
 * reader.c — reads the WAL of one timeline in LSN order, tells a torn tail
 * from corruption, and truncates a torn tail (wal_truncate_tail).
 *
 * Reading: each segment is read through a window (the whole segment, or
 * 8 MiB of it for larger segments) with the reader's own posix cio context.
 * Every record goes through wal_rec_check (format.h, VALIDITY); a record
 * other than SWITCH and PAD must also leave the last WAL_REC_HDR bytes of
 * its segment free, a SWITCH is exactly a header, and a PAD ends on a block
 * boundary (format.h, BLOCKS). SWITCH and PAD records are followed, not
 * returned; a PAD ending at the segment end leads to the next segment.
 *
 * At the first invalid record P (format.h, END OF LOG vs CORRUPTION):
 *   1. the rest of P's segment is scanned at every 8-byte step, then every
 *      later segment file of the timeline from its first record position;
 *      a valid record there whose durable hint is > P proves P was durable:
 *      CAIRN_ECORRUPT naming P's segment and offset;
 *   2. otherwise the log ends at P: wal_end gets end_lsn = P, the nonzero
 *      bytes from P on (garbage_bytes; torn when any), the later segment
 *      files holding any nonzero byte after their header (segments_after).
 * A segment missing after a SWITCH ends the log at its first record
 * position when no later segment holds data, and is corruption otherwise
 * (a later segment is only ever written after the missing one was).
 * A segment file whose size is not the segment size is corrupt.
 *
 * A reader over a segment source (wal_reader_open_src; wal.h, struct
 * wal_seg_source) lists the timeline through the source instead of the
 * directory and reads each segment's image in place: the window is the
 * whole image, so nothing is copied. Everything else (the checks, the end
 * of the log, the messages, with the source's `where` in place of the
 * directory) is the same code. The source lists every segment that will
 * come and its get waits for one on its way, so a segment still coming is
 * never taken for a missing one, nor a log that goes on for a torn tail.
 * wal_truncate_tail is crash recovery's and reads files only.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/io.h"
#include "common/log.h"
#include "common/util.h"
#include "wal/wal.h"

#define RD_WINDOW_MAX ((size_t)8 << 20)
#define RD_ALIGN ((uint64_t)4096)

struct wal_reader {
    char *waldir;
    uint32_t timeline;
    uint32_t seg_shift;
    uint64_t seg_size;
    uint64_t db_id;
    cio *c;
    const struct wal_seg_source *src; /* NULL: files in waldir */

    /* current segment */
    int fd;
    uint64_t seg_start;
    uint32_t salt;
    char path[sizeof(((struct wal_end *)0)->seg_path)];

    uint64_t pos;     /* LSN of the next record */
    uint64_t rec_end; /* end of the last record returned (start: r->pos) */

    /* the current segment's image, from src (NULL: a file, fd) */
    const uint8_t *img;

    /* window over the current segment: offsets [woff, woff + wlen) at
     * wbase (win, or the image) */
    const uint8_t *wbase;
    uint8_t *win;
    size_t wcap;
    uint64_t woff;
    size_t wlen;

    bool ended;
    uint64_t reread_lsn; /* invalid record already re-read once (0: none) */
    struct wal_end end;
    cairn_status fail_st; /* sticky after an error */
    char fail_msg[1024];
};

static void seg_path(const wal_reader *r, char *buf, size_t n, uint64_t start)
{
    if (r->src && r->src->name) {
        r->src->name(r->src->ctx, r->timeline, start, buf, n);
        return;
    }
    int k = snprintf(buf, n, "%s/", r->waldir);
    if (k > 0 && (size_t)k < n)
        wal_seg_name(buf + k, n - (size_t)k, r->timeline, start);
}

static void seg_close(wal_reader *r)
{
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    if (r->img)
        r->src->put(r->src->ctx, r->timeline, r->seg_start);
    r->img = NULL;
    r->wlen = 0;
    r->woff = 0;
}

/* Loads the window so that it starts at or just before segment offset off. */
static cairn_status win_load(wal_reader *r, uint64_t off)
{
    if (r->img) {
        (void)off;
        r->wbase = r->img;
        r->woff = 0;
        r->wlen = (size_t)r->seg_size;
        return CAIRN_OK;
    }
    uint64_t start = off & ~(RD_ALIGN - 1);
    size_t want = (size_t)CAIRN_MIN((uint64_t)r->wcap, r->seg_size - start);
    size_t got = 0;
    cairn_status st = cio_read(r->c, r->fd, r->win, want, start, r->path, &got);
    if (st) {
        r->wlen = 0;
        return st;
    }
    if (got < want)
        memset(r->win + got, 0, want - got); /* short file: zeros */
    r->wbase = r->win;
    r->woff = start;
    r->wlen = want;
    return CAIRN_OK;
}

/* Makes [off, off + need) of the segment addressable at win + off - woff. */
static inline cairn_status win_ensure(wal_reader *r, uint64_t off, size_t need)
{
    if (off >= r->woff && off + need <= r->woff + r->wlen)
        return CAIRN_OK;
    return win_load(r, off);
}

static inline const uint8_t *win_at(const wal_reader *r, uint64_t off)
{
    return r->wbase + (off - r->woff);
}

/* Segment files are created full size: any other size is damage (and a
 * header claiming another segment size than its file has is caught here).
 * An image from a source is held to the same rule. */
static cairn_status check_len(uint64_t len, const char *path, uint64_t seg_size)
{
    if (len != seg_size)
        return cerr_set(CAIRN_ECORRUPT,
                        "could not read WAL segment \"%s\" at offset 0: file is %" PRIu64
                        " bytes, its header says segments are %" PRIu64,
                        path, len, seg_size);
    return CAIRN_OK;
}

static cairn_status check_size(int fd, const char *path, uint64_t seg_size)
{
    struct stat sb;
    if (fstat(fd, &sb) != 0)
        return cerr_errno(errno, "could not stat WAL segment \"%s\"", path);
    return check_len((uint64_t)sb.st_size, path, seg_size);
}

/* The image of segment `start` from the source; *img NULL when it has
 * none. */
static cairn_status src_get(wal_reader *r, uint64_t start, const uint8_t **img, size_t *len)
{
    *img = NULL;
    *len = 0;
    cairn_status st = r->src->get(r->src->ctx, r->timeline, start, img, len);
    if (st) {
        if (*img)
            r->src->put(r->src->ctx, r->timeline, start);
        *img = NULL;
    }
    return st;
}

/* The current segment's header (window at offset 0) against the log. */
static cairn_status seg_check_header(wal_reader *r, uint64_t start)
{
    struct wal_seg_header h;
    cairn_status st = wal_seg_header_decode(win_at(r, 0), &h, r->path);
    if (st)
        return st;
    if (h.timeline != r->timeline || h.start_lsn != start || h.seg_shift != r->seg_shift ||
        h.db_id != r->db_id)
        return cerr_set(CAIRN_ECORRUPT,
                        "could not read WAL segment header \"%s\" at offset 0: header "
                        "(timeline %" PRIu32 ", start LSN %" PRIu64 ", size 2^%" PRIu32
                        ", database %016" PRIX64 ") does not match the log (timeline %" PRIu32
                        ", start LSN %" PRIu64 ", size 2^%" PRIu32 ", database %016" PRIX64 ")",
                        r->path, h.timeline, h.start_lsn, h.seg_shift, h.db_id, r->timeline,
                        start, r->seg_shift, r->db_id);
    r->salt = h.salt;
    return CAIRN_OK;
}

/*
 * Opens segment `start` as the current one and checks its header.
 * *missing is set instead of failing when the segment is absent.
 */
static cairn_status seg_enter(wal_reader *r, uint64_t start, bool *missing)
{
    seg_close(r);
    seg_path(r, r->path, sizeof r->path, start);
    *missing = false;
    cairn_status st;
    if (r->src) {
        const uint8_t *img = NULL;
        size_t len = 0;
        st = src_get(r, start, &img, &len);
        if (st)
            return st;
        if (!img) {
            *missing = true;
            return CAIRN_OK;
        }
        r->img = img;
        r->seg_start = start;
        st = check_len(len, r->path, r->seg_size);
    } else {
        int fd = open(r->path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            int e = errno;
            if (e == ENOENT) {
                *missing = true;
                return CAIRN_OK;
            }
            return cerr_errno(e, "could not open WAL segment \"%s\"", r->path);
        }
        r->fd = fd;
        r->seg_start = start;
        st = check_size(fd, r->path, r->seg_size);
    }
    if (st)
        return st;
    st = win_load(r, 0);
    if (st)
        return st;
    return seg_check_header(r, start);
}

/* Nonzero bytes of the current segment from offset `from` to its end. */
static cairn_status count_nonzero(wal_reader *r, uint64_t from, uint64_t *count)
{
    uint64_t n = 0;
    for (uint64_t off = from; off < r->seg_size;) {
        cairn_status st = win_ensure(r, off, 1);
        if (st)
            return st;
        const uint8_t *p = win_at(r, off);
        size_t len = (size_t)(r->woff + r->wlen - off);
        size_t i = 0;
        for (; i + 8 <= len; i += 8) {
            if (ld64(p + i) == 0)
                continue;
            for (size_t j = 0; j < 8; j++)
                n += p[i + j] != 0;
        }
        for (; i < len; i++)
            n += p[i] != 0;
        off += len;
    }
    *count = n;
    return CAIRN_OK;
}

/*
 * Scans the current segment from offset `from` (8-aligned) for a valid
 * record whose durable hint is > p. *found set with its LSN and hint.
 */
static cairn_status scan_durable(wal_reader *r, uint64_t from, uint64_t p, bool *found,
                                 uint64_t *q_lsn, uint64_t *q_hint)
{
    *found = false;
    uint64_t limit = r->seg_size - WAL_REC_HDR;
    for (uint64_t q = from; q <= limit; q += WAL_REC_ALIGN) {
        cairn_status st = win_ensure(r, q, WAL_REC_HDR);
        if (st)
            return st;
        const uint8_t *h = win_at(r, q);
        if (ld64(h + 16) != r->seg_start + q)
            continue;
        uint32_t len = ld32(h + 4);
        if (len < WAL_REC_HDR || len > WAL_REC_MAX || len > r->seg_size - q)
            continue;
        st = win_ensure(r, q, len);
        if (st)
            return st;
        struct wal_record rec;
        if (!wal_rec_check(win_at(r, q), len, r->seg_start + q, r->salt, &rec))
            continue;
        if (rec.durable_hint > p) {
            *found = true;
            *q_lsn = rec.lsn;
            *q_hint = rec.durable_hint;
            return CAIRN_OK;
        }
        q += CAIRN_ALIGN_UP((uint64_t)len, (uint64_t)WAL_REC_ALIGN) - WAL_REC_ALIGN;
    }
    return CAIRN_OK;
}

static cairn_status fail(wal_reader *r, cairn_status st)
{
    r->fail_st = st;
    snprintf(r->fail_msg, sizeof r->fail_msg, "%s", cairn_last_error());
    seg_close(r);
    return st;
}

/* Start LSNs of the timeline's segments after `after`, freshly listed. */
static cairn_status later_segments(wal_reader *r, uint64_t after, uint64_t **v, size_t *n)
{
    uint64_t *all = NULL;
    size_t cnt = 0;
    cairn_status st = r->src ? r->src->list(r->src->ctx, r->timeline, &all, &cnt)
                             : wal_seg_list(r->waldir, r->timeline, &all, &cnt);
    if (st)
        return st;
    size_t k = 0;
    for (size_t i = 0; i < cnt; i++)
        if (all[i] > after)
            all[k++] = all[i];
    *v = all;
    *n = k;
    return CAIRN_OK;
}

/* The log ended at r->pos (invalid record there, or missing segment when
 * `missing`): decide torn tail vs corruption and fill r->end. *retry is set
 * when the record at r->pos must be read again (see below). */
static cairn_status reach_end(wal_reader *r, bool missing, bool *retry)
{
    *retry = false;
    uint64_t p = r->pos;
    uint64_t seg_start = p & ~(r->seg_size - 1);
    char ppath[sizeof r->path];
    seg_path(r, ppath, sizeof ppath, seg_start);
    uint64_t poff = p - seg_start;
    uint64_t garbage = 0;
    uint32_t after = 0;
    bool found = false;
    uint64_t q_lsn = 0, q_hint = 0;
    char qpath[sizeof r->path] = "";
    cairn_status st;
    if (!missing) {
        st = count_nonzero(r, poff, &garbage);
        if (!st)
            st = scan_durable(r, poff + WAL_REC_ALIGN, p, &found, &q_lsn, &q_hint);
        if (st)
            return fail(r, st);
        if (found)
            snprintf(qpath, sizeof qpath, "%s", r->path);
    }
    uint64_t *later = NULL;
    size_t nlater = 0;
    if (!found) {
        st = later_segments(r, seg_start, &later, &nlater);
        if (st)
            return fail(r, st);
    }
    for (size_t i = 0; i < nlater && !found; i++) {
        bool gone = false;
        st = seg_enter(r, later[i], &gone);
        if (st) {
            free(later);
            return fail(r, st);
        }
        if (gone)
            continue; /* removed meanwhile */
        uint64_t nz = 0;
        st = count_nonzero(r, WAL_SEG_DATA, &nz);
        if (!st && nz)
            st = scan_durable(r, WAL_SEG_DATA, p, &found, &q_lsn, &q_hint);
        if (st) {
            free(later);
            return fail(r, st);
        }
        if (nz && missing) {
            cerr_set(CAIRN_ECORRUPT,
                     "could not open WAL segment \"%s\": file is missing but later "
                     "segment \"%s\" holds data; run pitrctl verify",
                     ppath, r->path);
            free(later);
            return fail(r, CAIRN_ECORRUPT);
        }
        if (found)
            snprintf(qpath, sizeof qpath, "%s", r->path);
        if (nz) {
            after++;
            garbage += nz;
        }
    }
    free(later);
    if (found && !missing && r->reread_lsn != p) {
        /* A reader of a log that is being written (pitrctl beside a live
         * database) can read P before the writer has written it, then
         * records written after it. Read P once more: that race cannot
         * repeat, since P was durable before the later record was written;
         * a second failure at P is corruption. */
        r->reread_lsn = p;
        bool gone = false;
        st = seg_enter(r, seg_start, &gone);
        if (!st && gone)
            st = cerr_set(CAIRN_ECORRUPT, "could not open WAL segment \"%s\": file vanished",
                          ppath);
        if (!st)
            st = win_load(r, poff);
        if (st)
            return fail(r, st);
        *retry = true;
        return CAIRN_OK;
    }
    if (found) {
        cerr_set(CAIRN_ECORRUPT,
                 "could not read WAL segment \"%s\" at offset %" PRIu64
                 ": invalid record followed by durable records; run pitrctl verify "
                 "(record at LSN %" PRIu64 " in \"%s\" was written after LSN %" PRIu64
                 " was durable)",
                 ppath, poff, q_lsn, qpath, q_hint);
        return fail(r, CAIRN_ECORRUPT);
    }
    seg_close(r);
    memset(&r->end, 0, sizeof r->end);
    r->end.end_lsn = p;
    r->end.rec_end = r->rec_end;
    r->end.garbage_bytes = garbage;
    r->end.torn = garbage > 0;
    snprintf(r->end.seg_path, sizeof r->end.seg_path, "%s", ppath);
    r->end.seg_offset = poff;
    r->end.segments_after = after;
    r->ended = true;
    if (r->end.torn)
        clog_info("WAL of \"%s\" ends at LSN %" PRIu64 " with a torn tail: %" PRIu64
                  " nonzero bytes from offset %" PRIu64 " of \"%s\", %" PRIu32
                  " later segment(s) holding data",
                  r->waldir, p, garbage, poff, ppath, after);
    return CAIRN_OK;
}

/* The header of the segment a reader starts in (got bytes of it at b, of
 * a file or image of len bytes): it fixes the segment size, which the
 * length must then be. */
static cairn_status first_header(const uint8_t *b, size_t got, uint64_t len, const char *path,
                                 struct wal_seg_header *h)
{
    if (got < WAL_SEG_HDR)
        return cerr_set(CAIRN_ECORRUPT,
                        "could not read WAL segment header \"%s\" at offset %zu: file is too "
                        "short",
                        path, got);
    cairn_status st = wal_seg_header_decode(b, h, path);
    if (st)
        return st;
    return check_len(len, path, UINT64_C(1) << h->seg_shift);
}

static cairn_status reader_open(const char *waldir, const struct wal_seg_source *src,
                                uint32_t timeline, uint64_t from_lsn, wal_reader **out)
{
    if (!out)
        return cerr_set(CAIRN_EINVAL, "could not open WAL reader: no output pointer");
    *out = NULL;
    if (!waldir || !waldir[0])
        return cerr_set(CAIRN_EINVAL, "could not open WAL reader: no WAL directory");
    wal_reader *r = calloc(1, sizeof *r);
    if (!r)
        return cerr_set(CAIRN_ENOMEM, "could not open WAL reader: out of memory");
    r->fd = -1;
    r->timeline = timeline;
    r->src = src;
    r->waldir = strdup(waldir);
    uint64_t *starts = NULL;
    size_t n = 0;
    const uint8_t *img0 = NULL; /* the first segment's image (src) */
    uint64_t start = 0;
    cairn_status st = CAIRN_OK;
    if (!r->waldir) {
        st = cerr_set(CAIRN_ENOMEM, "could not open WAL reader: out of memory");
        goto fail;
    }
    if (!src) {
        st = cio_ctx_open(&r->c, CAIRN_IO_POSIX, 0);
        if (st)
            goto fail;
    }
    st = src ? src->list(src->ctx, timeline, &starts, &n)
             : wal_seg_list(waldir, timeline, &starts, &n);
    if (st)
        goto fail;
    if (n == 0) {
        st = cerr_set(CAIRN_ENOTFOUND,
                      "could not open WAL \"%s\": no segment of timeline %" PRIu32, waldir,
                      timeline);
        goto fail;
    }

    if (from_lsn % WAL_REC_ALIGN) {
        st = cerr_set(CAIRN_EINVAL,
                      "could not open WAL \"%s\" at LSN %" PRIu64
                      ": not a record position (8-byte aligned)",
                      waldir, from_lsn);
        goto fail;
    }
    /* The segment to start in: the oldest, or the last one starting at or
     * before from_lsn. Its header fixes segment size and database id. */
    size_t k = 0;
    for (size_t i = 0; from_lsn && i < n && starts[i] <= from_lsn; i++)
        k = i;
    start = starts[k];
    char p0[sizeof r->path];
    seg_path(r, p0, sizeof p0, start);
    if (from_lsn && start > from_lsn) {
        st = cerr_set(CAIRN_ENOTFOUND,
                      "could not open WAL \"%s\" at LSN %" PRIu64
                      ": no segment holds it (the oldest is \"%s\")",
                      waldir, from_lsn, p0);
        goto fail;
    }
    uint8_t hdr[WAL_SEG_HDR];
    struct wal_seg_header h;
    if (src) {
        size_t len = 0;
        st = src_get(r, start, &img0, &len);
        if (!st && !img0)
            st = cerr_set(CAIRN_ENOTFOUND, "could not open WAL \"%s\": segment \"%s\" is "
                          "listed but not there", waldir, p0);
        if (!st)
            st = first_header(img0, len, len, p0, &h);
        if (st)
            goto fail;
    } else {
        int fd = -1;
        size_t got = 0;
        struct stat sb;
        st = cfs_open(p0, O_RDONLY, 0, &fd);
        if (st)
            goto fail;
        st = cio_read(r->c, fd, hdr, sizeof hdr, 0, p0, &got);
        if (!st && fstat(fd, &sb) != 0)
            st = cerr_errno(errno, "could not stat WAL segment \"%s\"", p0);
        if (!st)
            st = first_header(hdr, got, (uint64_t)sb.st_size, p0, &h);
        close(fd);
        if (st)
            goto fail;
    }
    r->seg_shift = h.seg_shift;
    r->seg_size = UINT64_C(1) << h.seg_shift;
    r->db_id = h.db_id;
    if (!src) {
        r->wcap = (size_t)CAIRN_MIN((uint64_t)RD_WINDOW_MAX, r->seg_size);
        r->win = malloc(r->wcap);
        if (!r->win) {
            st = cerr_set(CAIRN_ENOMEM, "could not open WAL reader: out of memory");
            goto fail;
        }
    }
    if (from_lsn && from_lsn - start >= r->seg_size) {
        char pp[sizeof r->path];
        seg_path(r, pp, sizeof pp, from_lsn & ~(r->seg_size - 1));
        st = cerr_set(CAIRN_ENOTFOUND,
                      "could not open WAL \"%s\" at LSN %" PRIu64 ": segment \"%s\" is missing",
                      waldir, from_lsn, pp);
        goto fail;
    }
    if (src) {
        /* the image just checked becomes the current segment (seg_enter
         * would get it a second time) */
        memcpy(r->path, p0, sizeof r->path);
        r->img = img0;
        r->seg_start = start;
        img0 = NULL;
        st = win_load(r, 0);
        if (!st)
            st = seg_check_header(r, start);
    } else {
        bool missing = false;
        st = seg_enter(r, start, &missing);
        if (!st && missing)
            st = cerr_set(CAIRN_ENOTFOUND,
                          "could not open WAL \"%s\": segment \"%s\" disappeared", waldir, p0);
    }
    if (st)
        goto fail;
    uint64_t off = from_lsn ? from_lsn - start : 0;
    r->pos = r->rec_end = start + (off < WAL_SEG_DATA ? WAL_SEG_DATA : off);
    free(starts);
    *out = r;
    return CAIRN_OK;

fail:
    if (img0)
        src->put(src->ctx, timeline, start);
    free(starts);
    wal_reader_close(r);
    return st;
}

cairn_status wal_reader_open(const char *waldir, uint32_t timeline, uint64_t from_lsn,
                             wal_reader **out)
{
    return reader_open(waldir, NULL, timeline, from_lsn, out);
}

cairn_status wal_reader_open_src(const struct wal_seg_source *src, uint32_t timeline,
                                 uint64_t from_lsn, wal_reader **out)
{
    if (out)
        *out = NULL;
    if (!src || !src->list || !src->get || !src->put)
        return cerr_set(CAIRN_EINVAL, "could not open WAL reader: the segment source lacks "
                        "a list, get or put function");
    if (!src->where || !src->where[0])
        return cerr_set(CAIRN_EINVAL, "could not open WAL reader: the segment source has no "
                        "name (where)");
    return reader_open(src->where, src, timeline, from_lsn, out);
}

cairn_status wal_reader_next(wal_reader *r, struct wal_record *rec, bool *end)
{
    *end = false;
    if (r->fail_st)
        return cerr_set(r->fail_st, "%s", r->fail_msg);
    if (r->ended) {
        *end = true;
        return CAIRN_OK;
    }
    const uint64_t limit = r->seg_size - WAL_REC_HDR;
    for (;;) {
        uint64_t off = r->pos - r->seg_start;
        uint64_t avail = r->seg_size - off;
        bool ok = false;
        if (avail >= WAL_REC_HDR) {
            cairn_status st = win_ensure(r, off, WAL_REC_HDR);
            if (st)
                return fail(r, st);
            uint32_t len = ld32(win_at(r, off) + 4);
            if (len >= WAL_REC_HDR && len <= WAL_REC_MAX && len <= avail) {
                st = win_ensure(r, off, len);
                if (st)
                    return fail(r, st);
                ok = wal_rec_check(win_at(r, off), len, r->pos, r->salt, rec);
            }
        }
        uint64_t rend = ok ? off + CAIRN_ALIGN_UP((uint64_t)rec->len, (uint64_t)WAL_REC_ALIGN)
                           : 0;
        if (ok && rec->type == WAL_REC_SWITCH && rec->len != WAL_REC_HDR)
            ok = false;
        else if (ok && rec->type == WAL_REC_PAD && (rend % WAL_BLOCK) != 0)
            ok = false;
        else if (ok && rec->type != WAL_REC_SWITCH && rec->type != WAL_REC_PAD && rend > limit)
            ok = false;
        if (!ok) {
            bool retry = false;
            cairn_status st = reach_end(r, false, &retry);
            if (st)
                return st;
            if (retry)
                continue;
            *end = true;
            return CAIRN_OK;
        }
        if (rec->type == WAL_REC_PAD && rend < r->seg_size) {
            r->pos = r->seg_start + rend;
            continue;
        }
        if (rec->type == WAL_REC_SWITCH || rec->type == WAL_REC_PAD) {
            uint64_t next = r->seg_start + r->seg_size;
            bool missing = false;
            r->pos = next + WAL_SEG_DATA;
            cairn_status st = seg_enter(r, next, &missing);
            if (st)
                return fail(r, st);
            if (missing) {
                bool retry = false;
                st = reach_end(r, true, &retry);
                if (st)
                    return st;
                *end = true;
                return CAIRN_OK;
            }
            continue;
        }
        r->pos += CAIRN_ALIGN_UP((uint64_t)rec->len, (uint64_t)WAL_REC_ALIGN);
        r->rec_end = r->pos;
        return CAIRN_OK;
    }
}

const struct wal_end *wal_reader_end(const wal_reader *r)
{
    return &r->end;
}

uint64_t wal_reader_db_id(const wal_reader *r)
{
    return r->db_id;
}

uint32_t wal_reader_seg_shift(const wal_reader *r)
{
    return r->seg_shift;
}

void wal_reader_close(wal_reader *r)
{
    if (!r)
        return;
    seg_close(r);
    cio_ctx_close(r->c);
    free(r->win);
    free(r->waldir);
    free(r);
}

/* ---- truncating a torn tail ---------------------------------------------- */

#define TR_CHUNK ((size_t)1 << 20)

cairn_status wal_truncate_tail(const char *waldir, uint32_t timeline,
                               const struct wal_end *end)
{
    if (!waldir || !end)
        return cerr_set(CAIRN_EINVAL, "could not truncate WAL: no directory or end");
    if (!end->torn && end->segments_after == 0)
        return CAIRN_OK;
    const char *base = strrchr(end->seg_path, '/');
    base = base ? base + 1 : end->seg_path;
    uint32_t tl;
    uint64_t start;
    if (!wal_seg_parse_name(base, &tl, &start) || tl != timeline)
        return cerr_set(CAIRN_EINVAL,
                        "could not truncate WAL \"%s\": \"%s\" is not a segment of "
                        "timeline %" PRIu32,
                        waldir, end->seg_path, timeline);

    cio *c = NULL;
    uint8_t *buf = calloc(2, TR_CHUNK); /* [data | zeros] */
    cairn_status st = buf ? cio_ctx_open(&c, CAIRN_IO_POSIX, 0)
                          : cerr_set(CAIRN_ENOMEM, "could not truncate WAL: out of memory");
    if (st)
        goto out;
    const uint8_t *zeros = buf + TR_CHUNK;
    clog_warn("truncating torn WAL tail in \"%s\" at offset %" PRIu64 " (LSN %" PRIu64
              "): %" PRIu64 " nonzero bytes, %" PRIu32 " later segment(s) holding data",
              end->seg_path, end->seg_offset, end->end_lsn, end->garbage_bytes,
              end->segments_after);

    int fd = open(end->seg_path, O_RDWR | O_CLOEXEC);
    if (fd < 0 && errno != ENOENT) {
        st = cerr_errno(errno, "could not open WAL segment \"%s\"", end->seg_path);
        goto out;
    }
    if (fd >= 0) {
        bool wrote = false;
        for (uint64_t off = end->seg_offset;;) {
            size_t got = 0;
            st = cio_read(c, fd, buf, TR_CHUNK, off, end->seg_path, &got);
            if (st || got == 0)
                break;
            size_t lo = 0, hi = got;
            while (lo < got && buf[lo] == 0)
                lo++;
            while (hi > lo && buf[hi - 1] == 0)
                hi--;
            if (hi > lo) {
                st = cio_write(c, fd, zeros, hi - lo, off + lo, end->seg_path);
                if (st)
                    break;
                wrote = true;
            }
            off += got;
            if (got < TR_CHUNK)
                break;
        }
        if (!st && wrote)
            st = cio_fdatasync(c, fd, end->seg_path);
        close(fd);
        if (st)
            goto out;
    }

    /* Later segments go: the writer preallocates afresh. */
    uint64_t *starts = NULL;
    size_t n = 0;
    st = wal_seg_list(waldir, timeline, &starts, &n);
    if (st)
        goto out;
    bool removed = false;
    char path[4096];
    for (size_t i = 0; i < n && !st; i++) {
        if (starts[i] <= start)
            continue;
        int k = snprintf(path, sizeof path, "%s/", waldir);
        wal_seg_name(path + k, sizeof path - (size_t)k, timeline, starts[i]);
        st = cfs_unlink(path);
        removed |= st == CAIRN_OK;
    }
    free(starts);
    if (removed) {
        cairn_status st2 = cfs_fsync_dir(waldir);
        if (!st)
            st = st2;
    }
out:
    cio_ctx_close(c);
    free(buf);
    return st;
}
