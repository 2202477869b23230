/*
 * pfile.c — physical page files (copy-on-write allocation, staged runs of
 * writes, reads with verification) and the page map radix tree. The model
 * is in pfile.h; byte tables in docs/format.md.
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
#include "common/log.h"
#include "common/util.h"
#include "engine/pfile.h"


static cairn_status grow_u32(uint32_t **a, uint32_t *cap, size_t need, const char *path)
{
    if (need <= *cap)
        return CAIRN_OK;
    size_t ncap = *cap ? *cap : 64;
    while (ncap < need)
        ncap *= 2;
    if (ncap > UINT32_MAX)
        ncap = UINT32_MAX;
    uint32_t *n = realloc(*a, ncap * sizeof *n);
    if (!n)
        return cerr_set(CAIRN_ENOMEM, "page file \"%s\": out of memory", path);
    memset(n + *cap, 0, (ncap - *cap) * sizeof *n);
    *a = n;
    *cap = (uint32_t)ncap;
    return CAIRN_OK;
}

static cairn_status push_u32(uint32_t **a, size_t *n, size_t *cap, uint32_t v, const char *path)
{
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 64;
        uint32_t *na = realloc(*a, ncap * sizeof *na);
        if (!na)
            return cerr_set(CAIRN_ENOMEM, "page file \"%s\": out of memory", path);
        *a = na;
        *cap = ncap;
    }
    (*a)[(*n)++] = v;
    return CAIRN_OK;
}

static cairn_status open_as(struct pfile *f, const char *path, uint32_t coll_id, int flags);

cairn_status pfile_open(struct pfile *f, const char *path, uint32_t coll_id, bool create)
{
    return open_as(f, path, coll_id, O_RDWR | (create ? O_CREAT : 0));
}

cairn_status pfile_open_ro(struct pfile *f, const char *path, uint32_t coll_id)
{
    return open_as(f, path, coll_id, O_RDONLY);
}

static cairn_status open_as(struct pfile *f, const char *path, uint32_t coll_id, int flags)
{
    memset(f, 0, sizeof *f);
    f->fd = -1;
    f->coll_id = coll_id;
    f->path = strdup(path);
    if (!f->path)
        return cerr_set(CAIRN_ENOMEM, "could not open page file \"%s\": out of memory", path);
    cairn_status st = cfs_open(path, flags, 0644, &f->fd);
    if (st)
        goto fail;
    /* O_DIRECT where the filesystem takes it: pages bypass the page cache
     * (the buffer pool is the cache). tmpfs refuses it: stay buffered. */
    int fl = fcntl(f->fd, F_GETFL);
    if (fl >= 0 && fcntl(f->fd, F_SETFL, fl | O_DIRECT) != 0 && errno != EINVAL)
        clog_warn("page file \"%s\": could not enable O_DIRECT: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(f->fd, &sb) != 0) {
        st = cerr_errno(errno, "could not stat page file \"%s\"", path);
        goto fail;
    }
    if (sb.st_size % PAGE_SIZE != 0)
        clog_warn("page file \"%s\" is %lld bytes, not a whole number of pages; the "
                  "partial page at the end is ignored", path, (long long)sb.st_size);
    uint64_t np = (uint64_t)sb.st_size / PAGE_SIZE;
    if (np > UINT32_MAX - 1) {
        st = cerr_set(CAIRN_ECORRUPT, "page file \"%s\" is too large (%llu pages)", path,
                      (unsigned long long)np);
        goto fail;
    }
    f->npages = np ? (uint32_t)np : 1; /* page 0 is never used */
    st = grow_u32(&f->state, &f->cap, f->npages, path);
    if (st)
        goto fail;
    f->state[0] = PF_USED;
    pfile_begin(f);
    return CAIRN_OK;
fail:
    pfile_close(f);
    return st;
}

void pfile_close(struct pfile *f)
{
    if (f->fd >= 0)
        close(f->fd);
    free(f->path);
    free(f->state);
    free(f->alloc);
    free(f->tofree);
    free(f->stage);
    memset(f, 0, sizeof *f);
    f->fd = -1;
}

cairn_status pfile_mark(struct pfile *f, uint32_t phys, uint32_t mark)
{
    if (phys == 0 || phys >= f->npages)
        return cerr_set(CAIRN_ECORRUPT,
                        "page file \"%s\": a map references page %" PRIu32
                        ", outside the file (%" PRIu32 " pages)",
                        f->path, phys, f->npages);
    if (mark != PF_USED) {
        /* an older image: in use stays in use; of two pins the newer decides */
        if (f->state[phys] != PF_USED && f->state[phys] < mark)
            f->state[phys] = mark;
        return CAIRN_OK;
    }
    if (f->state[phys] == PF_USED)
        return cerr_set(CAIRN_ECORRUPT,
                        "page file \"%s\": page %" PRIu32 " is referenced twice", f->path,
                        phys);
    f->state[phys] = PF_USED;
    return CAIRN_OK;
}

cairn_status pfile_mark_used(struct pfile *f, uint32_t phys)
{
    return pfile_mark(f, phys, PF_USED);
}

void pfile_begin(struct pfile *f)
{
    f->hint = 1;
    f->nalloc = f->ntofree = 0;
    f->stage_n = 0;
    f->nruns = 0;
}

static cairn_status stage_flush(struct pfile *f, cio *c)
{
    if (!f->stage_n)
        return CAIRN_OK;
    struct cio_req q[PFILE_RUNS];
    size_t at = 0;
    for (unsigned i = 0; i < f->nruns; i++) {
        q[i] = (struct cio_req){.fd = f->fd, .buf = f->stage + at * PAGE_SIZE,
                                .len = (size_t)f->run_n[i] * PAGE_SIZE,
                                .off = (uint64_t)f->run_first[i] * PAGE_SIZE, .path = f->path};
        at += f->run_n[i];
    }
    cairn_status st = cio_write_batch(c, q, f->nruns);
    f->stage_n = 0;
    f->nruns = 0;
    f->dirty = true;
    return st;
}

static bool reusable(uint32_t s, uint64_t min_pin)
{
    return s == 0 || (s != PF_USED && s <= min_pin);
}

cairn_status pfile_put(struct pfile *f, cio *c, uint64_t min_pin, const uint8_t *page,
                       uint32_t *phys)
{
    uint32_t p = f->hint;
    while (p < f->npages && !reusable(f->state[p], min_pin))
        p++;
    cairn_status st;
    if (p == f->npages) {
        if (f->npages == UINT32_MAX - 1)
            return cerr_set(CAIRN_ENOSPC, "page file \"%s\" has no page number left", f->path);
        if ((st = grow_u32(&f->state, &f->cap, (size_t)f->npages + 1, f->path)))
            return st;
        f->npages++;
    }
    if (!f->stage) {
        void *stage = NULL;
        if (posix_memalign(&stage, PAGE_SIZE, (size_t)PFILE_STAGE * PAGE_SIZE) != 0)
            return cerr_set(CAIRN_ENOMEM, "page file \"%s\": out of memory", f->path);
        f->stage = stage;
    }
    if ((st = push_u32(&f->alloc, &f->nalloc, &f->capalloc, p, f->path)))
        return st;
    bool extends = f->nruns && p == f->run_first[f->nruns - 1] + f->run_n[f->nruns - 1];
    if (f->stage_n == PFILE_STAGE || (!extends && f->nruns == PFILE_RUNS))
        if ((st = stage_flush(f, c)))
            return st;
    if (!f->nruns || !extends) {
        f->run_first[f->nruns] = p;
        f->run_n[f->nruns++] = 0;
    }
    uint8_t *dst = f->stage + (size_t)f->stage_n * PAGE_SIZE;
    memcpy(dst, page, PAGE_SIZE);
    page_seal(dst);
    f->stage_n++;
    f->run_n[f->nruns - 1]++;
    f->state[p] = PF_USED;
    f->hint = p + 1;
    *phys = p;
    return CAIRN_OK;
}

cairn_status pfile_retire(struct pfile *f, uint32_t phys)
{
    return push_u32(&f->tofree, &f->ntofree, &f->captofree, phys, f->path);
}

cairn_status pfile_flush(struct pfile *f, cio *c)
{
    return stage_flush(f, c);
}

cairn_status pfile_sync(struct pfile *f, cio *c)
{
    cairn_status st = stage_flush(f, c);
    if (st)
        return st;
    if (f->dirty) {
        st = cio_fdatasync(c, f->fd, f->path);
        if (st)
            return st;
        f->dirty = false;
    }
    return CAIRN_OK;
}

void pfile_end(struct pfile *f, uint32_t gen, bool ok)
{
    if (ok) {
        for (size_t i = 0; i < f->ntofree; i++)
            f->state[f->tofree[i]] = gen;
    } else {
        for (size_t i = 0; i < f->nalloc; i++)
            f->state[f->alloc[i]] = 0;
    }
    f->nalloc = f->ntofree = 0;
    f->stage_n = 0;
    f->nruns = 0;
    /* the stage is only needed while a checkpoint writes */
    free(f->stage);
    f->stage = NULL;
}

cairn_status pfile_read(struct pfile *f, cio *c, uint32_t phys, uint8_t *buf,
                        uint16_t type, uint32_t space, uint64_t page_no, uint64_t lsn)
{
    if (phys == 0 || phys >= f->npages)
        return cerr_set(CAIRN_ECORRUPT,
                        "page file \"%s\": reference to page %" PRIu32
                        " outside the file (%" PRIu32 " pages)",
                        f->path, phys, f->npages);
    size_t got = 0;
    cairn_status st = cio_read(c, f->fd, buf, PAGE_SIZE, (uint64_t)phys * PAGE_SIZE, f->path,
                               &got);
    if (st)
        return st;
    if (got < PAGE_SIZE)
        return cerr_set(CAIRN_ECORRUPT, "page file \"%s\": page %" PRIu32 " is cut short",
                        f->path, phys);
    return page_verify(buf, f->path, phys, f->coll_id, type, space, page_no, lsn);
}

/* ---- reading many pages ---------------------------------------------------- */

static int cmp_ref(const void *a, const void *b)
{
    const struct page_ref *x = a, *y = b;
    return x->phys < y->phys ? -1 : x->phys > y->phys;
}

/* One batch: run q covers refs[lo[q] .. lo[q+1]). */
struct read_batch {
    struct cio_req q[PFILE_RUNS];
    size_t lo[PFILE_RUNS + 1];
    unsigned nq;
};

/* Plans the batch starting at refs[*i] (pages inside the file) into buf:
 * at most maxq runs. */
static void plan_batch(int fd, const char *path, const struct page_ref *r, size_t n, size_t *i,
                       unsigned maxq, uint8_t *buf, struct read_batch *b)
{
    size_t used = 0;
    b->nq = 0;
    while (*i < n && b->nq < maxq) {
        uint32_t first = r[*i].phys;
        size_t j = *i;
        while (j < n && r[j].phys - first < PFILE_READ_RUN)
            j++;
        uint32_t span = r[j - 1].phys - first + 1;
        if (used + span > PFILE_READ_BATCH)
            break;
        b->q[b->nq] = (struct cio_req){.fd = fd, .buf = buf + used * PAGE_SIZE,
                                       .len = (size_t)span * PAGE_SIZE,
                                       .off = (uint64_t)first * PAGE_SIZE, .path = path};
        b->lo[b->nq++] = *i;
        used += span;
        *i = j;
    }
    b->lo[b->nq] = *i;
}

/* Hands the pages of read run q to fn. */
static cairn_status run_pages(const struct read_batch *b, unsigned q, cairn_status rst,
                              const char *path, uint32_t coll_id, const struct page_ref *r,
                              page_ref_fn fn, void *ctx)
{
    char msg[512];
    if (rst)
        snprintf(msg, sizeof msg, "%s", cairn_last_error());
    const struct cio_req *rq = &b->q[q];
    uint32_t first = r[b->lo[q]].phys;
    cairn_status st = CAIRN_OK;
    for (size_t t = b->lo[q]; t < b->lo[q + 1] && !st; t++) {
        size_t at = (size_t)(r[t].phys - first) * PAGE_SIZE;
        cairn_status pst;
        const uint8_t *page = NULL;
        if (rst)
            pst = cerr_set(rst, "%s", msg); /* the run could not be read */
        else if (at + PAGE_SIZE > rq->got)
            pst = cerr_set(CAIRN_ECORRUPT, "page file \"%s\": page %" PRIu32 " is cut short",
                           path, r[t].phys);
        else if (!(pst = page_verify((const uint8_t *)rq->buf + at, path, r[t].phys, coll_id,
                                     r[t].type, r[t].space, r[t].pno, r[t].lsn)))
            page = (const uint8_t *)rq->buf + at;
        st = fn(ctx, &r[t], page, pst);
    }
    return st;
}

cairn_status pfile_read_refs(cio *io, int fd, const char *path, uint32_t coll_id,
                             uint32_t npages, struct page_ref *refs, size_t n, uint8_t *buf,
                             page_ref_fn fn, void *ctx)
{
    if (n > 1) /* refs may be NULL when there is nothing to read */
        qsort(refs, n, sizeof *refs, cmp_ref);
    cairn_status st = CAIRN_OK;
    /* references past the end of the file (and to page 0) are never read */
    size_t lo = 0, hi = n;
    while (lo < hi && refs[lo].phys == 0)
        lo++;
    while (hi > lo && refs[hi - 1].phys >= npages)
        hi--;
    for (size_t t = 0; t < n && !st; t++)
        if (t < lo || t >= hi)
            st = fn(ctx, &refs[t], NULL,
                    cerr_set(CAIRN_ECORRUPT, "page file \"%s\": a map references page %" PRIu32
                             ", outside the file (%" PRIu32 " pages)", path, refs[t].phys,
                             npages));
    struct read_batch bt[2];
    unsigned maxq = CAIRN_MIN(PFILE_RUNS, cio_batch_max(io));
    size_t next = lo;
    unsigned cur = 0;
    bool inflight = false;
    if (!st && next < hi) {
        plan_batch(fd, path, refs, hi, &next, maxq, buf, &bt[0]);
        st = cio_read_batch_begin(io, bt[0].q, bt[0].nq);
        inflight = !st;
    }
    while (inflight) {
        struct read_batch *b = &bt[cur];
        cairn_status rst = cio_read_batch_end(io, b->q, b->nq);
        char rmsg[512];
        if (rst)
            snprintf(rmsg, sizeof rmsg, "%s", cairn_last_error());
        inflight = false;
        if (next < hi) {
            /* the next batch reads while fn works on this one */
            struct read_batch *o = &bt[cur ^ 1];
            plan_batch(fd, path, refs, hi, &next, maxq,
                       buf + (size_t)(cur ^ 1) * PFILE_READ_BATCH * PAGE_SIZE, o);
            st = cio_read_batch_begin(io, o->q, o->nq);
            inflight = !st;
        }
        if (rst)
            cerr_set(rst, "%s", rmsg);
        /* a failed batch: each run gets its own verdict (its own message
         * when a run failed, every page of it that status) */
        for (unsigned q = 0; q < b->nq && !st; q++) {
            cairn_status qst = rst && b->q[q].got < b->q[q].len ? rst : CAIRN_OK;
            st = run_pages(b, q, qst, path, coll_id, refs, fn, ctx);
        }
        if (st && inflight) {
            /* nothing may stay in flight on the context */
            char msg[512];
            snprintf(msg, sizeof msg, "%s", cairn_last_error());
            cio_read_batch_end(io, bt[cur ^ 1].q, bt[cur ^ 1].nq);
            st = cerr_set(st, "%s", msg);
            inflight = false;
        }
        cur ^= 1;
    }
    return st;
}

/* ---- map ---------------------------------------------------------------- */

void pmap_init(struct pmap *m)
{
    memset(m, 0, sizeof *m);
}

void pmap_free(struct pmap *m)
{
    free(m->phys);
    free(m->lsn);
    for (unsigned l = 0; l < MAP_MAX_DEPTH; l++) {
        free(m->node[l]);
        free(m->ndirty[l]);
    }
    free(m->undo);
    memset(m, 0, sizeof *m);
}

static uint32_t div_up(uint32_t a, uint32_t b)
{
    return (uint32_t)(((uint64_t)a + b - 1) / b);
}

uint32_t pmap_depth_for(uint32_t n)
{
    if (n == 0)
        return 0;
    if (n <= MAP_LEAF_N)
        return 1;
    if ((uint64_t)n <= (uint64_t)MAP_LEAF_N * MAP_INNER_N)
        return 2;
    return 3;
}

static cairn_status map_reserve(struct pmap *m, uint32_t n, const char *path)
{
    if (n <= m->cap)
        return CAIRN_OK;
    size_t ncap = m->cap ? m->cap : 64;
    while (ncap < n)
        ncap *= 2;
    uint32_t *np = realloc(m->phys, ncap * sizeof *np);
    if (np)
        m->phys = np;
    uint64_t *nl = realloc(m->lsn, ncap * sizeof *nl);
    if (nl)
        m->lsn = nl;
    if (!np || !nl)
        return cerr_set(CAIRN_ENOMEM, "page file \"%s\": out of memory for the map", path);
    memset(m->phys + m->cap, 0, (ncap - m->cap) * sizeof *np);
    memset(m->lsn + m->cap, 0, (ncap - m->cap) * sizeof *nl);
    m->cap = (uint32_t)ncap;
    return CAIRN_OK;
}

/* Level l holds at least cnt nodes (new ones: physical 0, clean). */
static cairn_status level_reserve(struct pmap *m, unsigned l, uint32_t cnt, const char *path)
{
    if (cnt <= m->nnode[l])
        return CAIRN_OK;
    uint32_t *nn = realloc(m->node[l], (size_t)cnt * sizeof *nn);
    if (nn)
        m->node[l] = nn;
    uint8_t *nd = realloc(m->ndirty[l], cnt);
    if (nd)
        m->ndirty[l] = nd;
    if (!nn || !nd)
        return cerr_set(CAIRN_ENOMEM, "page file \"%s\": out of memory for the map", path);
    memset(nn + m->nnode[l], 0, (size_t)(cnt - m->nnode[l]) * sizeof *nn);
    memset(nd + m->nnode[l], 0, cnt - m->nnode[l]);
    m->nnode[l] = cnt;
    return CAIRN_OK;
}

static cairn_status undo_push(struct pmap *m, uint32_t level, uint32_t idx, uint32_t phys,
                              uint64_t lsn, const char *path)
{
    if (m->nundo == m->capundo) {
        size_t ncap = m->capundo ? m->capundo * 2 : 64;
        struct pmap_undo *nu = realloc(m->undo, ncap * sizeof *nu);
        if (!nu)
            return cerr_set(CAIRN_ENOMEM, "page file \"%s\": out of memory", path);
        m->undo = nu;
        m->capundo = ncap;
    }
    m->undo[m->nundo++] = (struct pmap_undo){.level = level, .idx = idx, .phys = phys, .lsn = lsn};
    return CAIRN_OK;
}

static void begin_once(struct pmap *m)
{
    if (m->nundo == 0) {
        m->old_n = m->n;
        m->old_depth = m->depth;
    }
}

cairn_status pmap_put_page(struct pmap *m, struct pfile *f, cio *c, uint64_t min_pin,
                           uint32_t pno, const uint8_t *frame)
{
    begin_once(m);
    cairn_status st = map_reserve(m, pno + 1, f->path);
    if (st)
        return st;
    uint32_t leaf = pno / MAP_LEAF_N;
    if ((st = level_reserve(m, 0, leaf + 1, f->path)))
        return st;
    uint32_t old = m->phys[pno], np = 0;
    if (!frame && !old)
        return CAIRN_OK; /* created and dropped between checkpoints */
    if ((st = undo_push(m, MAP_MAX_DEPTH, pno, old, m->lsn[pno], f->path)))
        return st;
    if (frame && (st = pfile_put(f, c, min_pin, frame, &np)))
        return st;
    if (old && (st = pfile_retire(f, old)))
        return st;
    m->phys[pno] = np;
    m->lsn[pno] = frame ? page_lsn(frame) : 0;
    m->ndirty[0][leaf] = 1;
    return CAIRN_OK;
}

cairn_status pmap_flush(struct pmap *m, struct pfile *f, cio *c, uint64_t min_pin,
                        uint32_t n, uint32_t space, uint64_t lsn, uint8_t *scratch)
{
    begin_once(m);
    cairn_status st = map_reserve(m, n, f->path);
    if (st)
        return st;
    if (n < m->n)
        n = m->n;
    uint32_t depth = pmap_depth_for(n);
    uint32_t cnt[MAP_MAX_DEPTH] = {0};
    for (unsigned l = 0; l < depth; l++) {
        cnt[l] = l == 0 ? div_up(n, MAP_LEAF_N) : div_up(cnt[l - 1], MAP_INNER_N);
        if ((st = level_reserve(m, l, cnt[l], f->path)))
            return st;
    }
    if (depth != m->depth || n != m->n) {
        /* Nodes whose coverage changed: the last node of each level (and
         * every node when the tree grows a level). */
        for (unsigned l = 0; l < depth; l++) {
            if (depth != m->depth)
                memset(m->ndirty[l], 1, cnt[l]);
            else
                m->ndirty[l][cnt[l] - 1] = 1;
        }
    }
    m->n = n;
    m->depth = depth;
    for (unsigned l = 0; l < depth; l++) {
        for (uint32_t i = 0; i < cnt[l]; i++) {
            if (!m->ndirty[l][i])
                continue;
            memset(scratch, 0, PAGE_SIZE);
            struct page_hdr h = {.type = l == 0 ? PT_MAP_LEAF : PT_MAP_INNER,
                                 .flags = (uint16_t)l, .coll_id = f->coll_id,
                                 .space = space, .page_no = i, .lsn = lsn};
            page_hdr_put(scratch, &h);
            uint8_t *b = scratch + PAGE_HDR;
            if (l == 0) {
                uint32_t lo = i * MAP_LEAF_N;
                for (uint32_t k = 0; k < MAP_LEAF_N && lo + k < n; k++) {
                    st32(b + 16 * k, m->phys[lo + k]);
                    st64(b + 16 * k + 8, m->lsn[lo + k]);
                }
            } else {
                uint32_t lo = i * MAP_INNER_N;
                for (uint32_t k = 0; k < MAP_INNER_N && lo + k < cnt[l - 1]; k++)
                    st32(b + 4 * k, m->node[l - 1][lo + k]);
            }
            uint32_t old = m->node[l][i], np;
            if ((st = undo_push(m, l, i, old, 0, f->path)))
                return st;
            if ((st = pfile_put(f, c, min_pin, scratch, &np)))
                return st;
            if (old && (st = pfile_retire(f, old)))
                return st;
            m->node[l][i] = np;
            m->ndirty[l][i] = 0;
            if (l + 1 < depth)
                m->ndirty[l + 1][i / MAP_INNER_N] = 1;
        }
    }
    return CAIRN_OK;
}

void pmap_end(struct pmap *m, bool ok)
{
    if (!ok) {
        for (size_t i = m->nundo; i-- > 0;) {
            struct pmap_undo *u = &m->undo[i];
            if (u->level == MAP_MAX_DEPTH) {
                m->phys[u->idx] = u->phys;
                m->lsn[u->idx] = u->lsn;
            } else {
                m->node[u->level][u->idx] = u->phys;
            }
        }
        if (m->nundo) {
            m->n = m->old_n;
            m->depth = m->old_depth;
        }
    }
    for (unsigned l = 0; l < MAP_MAX_DEPTH; l++)
        if (m->ndirty[l])
            memset(m->ndirty[l], 0, m->nnode[l]);
    m->nundo = 0;
}

cairn_status pmap_load(struct pmap *m, struct pfile *f, cio *c, uint32_t root,
                       uint32_t depth, uint32_t n, uint32_t space, uint8_t *scratch)
{
    return pmap_load_as(m, f, c, root, depth, n, space, scratch, PF_USED);
}

cairn_status pmap_load_as(struct pmap *m, struct pfile *f, cio *c, uint32_t root,
                          uint32_t depth, uint32_t n, uint32_t space, uint8_t *scratch,
                          uint32_t mark)
{
    pmap_free(m);
    if (depth != pmap_depth_for(n) || (depth == 0) != (root == 0))
        return cerr_set(CAIRN_ECORRUPT,
                        "page file \"%s\": space %" PRIu32 " map has depth %" PRIu32
                        " and root %" PRIu32 " for %" PRIu32 " pages",
                        f->path, space, depth, root, n);
    if (depth == 0)
        return CAIRN_OK;
    cairn_status st = map_reserve(m, n, f->path);
    if (st)
        return st;
    uint32_t cnt[MAP_MAX_DEPTH] = {0};
    for (unsigned l = 0; l < depth; l++) {
        cnt[l] = l == 0 ? div_up(n, MAP_LEAF_N) : div_up(cnt[l - 1], MAP_INNER_N);
        if ((st = level_reserve(m, l, cnt[l], f->path)))
            return st;
    }
    m->n = n;
    m->depth = depth;
    m->node[depth - 1][0] = root;
    for (unsigned l = depth; l-- > 0;) {
        for (uint32_t i = 0; i < cnt[l]; i++) {
            uint32_t phys = m->node[l][i];
            if (phys == 0)
                continue; /* nothing mapped below */
            if ((st = pfile_mark(f, phys, mark)))
                return st;
            if ((st = pfile_read(f, c, phys, scratch, l == 0 ? PT_MAP_LEAF : PT_MAP_INNER,
                                 space, i, UINT64_MAX)))
                return st;
            if (ld16(scratch + 6) != l)
                return cerr_set(CAIRN_ECORRUPT,
                                "page file \"%s\": map page %" PRIu32 " has level %u, "
                                "expected %u",
                                f->path, phys, ld16(scratch + 6), l);
            const uint8_t *b = scratch + PAGE_HDR;
            if (l == 0) {
                uint32_t lo = i * MAP_LEAF_N;
                for (uint32_t k = 0; k < MAP_LEAF_N && lo + k < n; k++) {
                    uint32_t p = ld32(b + 16 * k);
                    if (ld32(b + 16 * k + 4) != 0)
                        return cerr_set(CAIRN_ECORRUPT,
                                        "page file \"%s\": map page %" PRIu32
                                        " entry %" PRIu32 " has a nonzero reserved field",
                                        f->path, phys, k);
                    if (p && (st = pfile_mark(f, p, mark)))
                        return st;
                    m->phys[lo + k] = p;
                    m->lsn[lo + k] = ld64(b + 16 * k + 8);
                }
            } else {
                uint32_t lo = i * MAP_INNER_N;
                for (uint32_t k = 0; k < MAP_INNER_N && lo + k < cnt[l - 1]; k++)
                    m->node[l - 1][lo + k] = ld32(b + 4 * k);
            }
        }
    }
    return CAIRN_OK;
}
