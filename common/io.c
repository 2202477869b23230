/*
 * io.c — the I/O contexts (io_uring and posix backends), the primitive file
 * operations (cfs_open .. cfs_fsync_dir) and the fault seam. See io.h for
 * the contract; fs.c builds the composite file operations on top of these.
 *
 * Rules every path here follows:
 *   - A write is complete or it is an error: a short count is resubmitted
 *     for the rest; a zero count or -EAGAIN/-EINTR is retried, at most
 *     CIO_RETRIES times per call; anything else becomes a status and a
 *     message `could not write file "<path>" at offset <n>: <reason>`, where
 *     <n> is the offset of the byte that could not be written.
 *   - A read returns fewer bytes than asked only at end of file.
 *   - A failed fdatasync/fsync is reported and never retried (only -EINTR/
 *     -EAGAIN, which mean the sync did not run, are). The caller poisons.
 *   - An io_uring context whose ring itself fails (submit or wait returns a
 *     hard error) is marked broken: requests may still be in flight, so every
 *     later call on it fails with CAIRN_EIO. Close it and open a new one.
 *
 * Fault seam: one process-wide plan under a mutex; a fast atomic flag keeps
 * the cost at one load when no plan is installed. Each operation asks
 * cio_fault_take() once per attempt (a retry is a new matching operation).
 * Injected EIO/ENOSPC/EAGAIN/EINTR replace the system call (nothing is
 * written); SHORT issues the real write/read with half the length (at least
 * one byte) and reports that count. SHORT does not apply to syncs or
 * metadata operations: there it is counted but not fired.
 *
 * Crash simulator (simio.c): while it runs, every system call below that
 * touches a file goes through its hooks (backend_op, the sys_* wrappers),
 * whatever backend a context has: io_uring is not used, so it sees every
 * operation. The fault seam is asked first, as without it: an injected
 * failure replaces the system call, so the simulator does not see it.
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cairn.h"
#include "common/err.h"
#include "common/io.h"
#include "common/log.h"
#include "common/simio.h"
#include "common/util.h"

#define CIO_RETRIES 1000u
#define CIO_CHUNK ((size_t)1 << 30) /* largest single read/write submitted */
#define CIO_DEFAULT_DEPTH 32u

enum cio_backend_kind { CIO_URING = 1, CIO_POSIX = 2 };

struct cio {
    int backend; /* enum cio_backend_kind */
    int broken;  /* io_uring: the ring failed; every call fails */
    unsigned depth;
    struct io_uring ring;
    /* the batch of reads in flight (cio_read_batch_begin) */
    unsigned pend_n;
    int32_t pend_res[64]; /* injected failures (batch_prep) */
};

static const char *pname(const char *path)
{
    return path ? path : "(unnamed)";
}

/* ------------------------------------------------------------------------
 * Fault seam
 * ---------------------------------------------------------------------- */
static pthread_mutex_t fault_mu = PTHREAD_MUTEX_INITIALIZER;
static int fault_active; /* atomic fast path; authoritative under fault_mu */
static struct cio_fault_plan fault_plan;
static uint64_t fault_seen;
static uint64_t fault_fired_n;

void cio_fault_set(const struct cio_fault_plan *plan)
{
    pthread_mutex_lock(&fault_mu);
    if (plan) {
        fault_plan = *plan;
        if (fault_plan.nth == 0)
            fault_plan.nth = 1;
        fault_seen = 0;
        fault_fired_n = 0;
    }
    __atomic_store_n(&fault_active, plan != NULL, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&fault_mu);
}

uint64_t cio_fault_count(void)
{
    pthread_mutex_lock(&fault_mu);
    uint64_t n = fault_seen;
    pthread_mutex_unlock(&fault_mu);
    return n;
}

uint64_t cio_fault_fired(void)
{
    pthread_mutex_lock(&fault_mu);
    uint64_t n = fault_fired_n;
    pthread_mutex_unlock(&fault_mu);
    return n;
}

/* Counts one operation of kind `op`; returns the fault to inject, or 0. */
static int cio_fault_take(unsigned op, int can_short)
{
    if (!__atomic_load_n(&fault_active, __ATOMIC_ACQUIRE))
        return 0;
    int kind = 0;
    pthread_mutex_lock(&fault_mu);
    if (fault_active && (fault_plan.ops & op)) {
        uint64_t n = ++fault_seen;
        if (n == fault_plan.nth || (fault_plan.persistent && n > fault_plan.nth)) {
            kind = (int)fault_plan.kind;
            if (kind == CIO_FAULT_SHORT && !can_short)
                kind = 0;
            else if (kind != 0)
                fault_fired_n++;
        }
    }
    pthread_mutex_unlock(&fault_mu);
    return kind;
}

static int fault_errno(int kind)
{
    switch (kind) {
    case CIO_FAULT_ENOSPC:
        return ENOSPC;
    case CIO_FAULT_EAGAIN:
        return EAGAIN;
    case CIO_FAULT_EINTR:
        return EINTR;
    default:
        return EIO;
    }
}

/* The length a SHORT fault really writes/reads: about half. A multiple of
 * 4096 or 512 bytes stays one (as real short transfers do), so O_DIRECT
 * requests remain valid on 4096-byte-sector devices too; a single 4096- or
 * 512-byte block or byte goes whole. */
static size_t short_len(size_t n)
{
    size_t h = n / 2;
    if (n % 4096 == 0)
        return n >= 8192 ? h & ~(size_t)4095 : n;
    if (n % 512 == 0)
        return n >= 1024 ? h & ~(size_t)511 : n;
    return n > 1 ? h : n;
}

static int retryable(int e)
{
    return e == EAGAIN || e == EINTR;
}

/* ------------------------------------------------------------------------
 * io_uring availability and context lifecycle
 * ---------------------------------------------------------------------- */
static pthread_once_t uring_probe_once = PTHREAD_ONCE_INIT;
static int uring_probe_err; /* 0: available; else positive errno */

static void uring_probe(void)
{
    struct io_uring r;
    int e = io_uring_queue_init(2, &r, 0);
    if (e < 0) {
        uring_probe_err = -e;
        return;
    }
    io_uring_queue_exit(&r);
}

/* CAIRN_NO_URING=1 in the environment switches io_uring off (tests, and
 * operators working around a broken kernel). Looked up at every call. */
static int uring_disabled(void)
{
    const char *off = getenv("CAIRN_NO_URING");
    return off && off[0] && strcmp(off, "0") != 0;
}

/* 0 if io_uring can be used, else a positive errno. */
static int uring_status(void)
{
    if (uring_disabled())
        return ENOSYS;
    pthread_once(&uring_probe_once, uring_probe);
    return uring_probe_err;
}

int cio_uring_available(void)
{
    return uring_status() == 0;
}

static int uring_init(struct io_uring *ring, unsigned depth)
{
    int st = uring_status();
    if (st)
        return -st;
#ifdef IORING_SETUP_COOP_TASKRUN
    int e = io_uring_queue_init(depth, ring, IORING_SETUP_COOP_TASKRUN);
    if (e != -EINVAL)
        return e;
#endif
    return io_uring_queue_init(depth, ring, 0);
}

cairn_status cio_ctx_open(cio **out, cairn_io_backend want, unsigned depth)
{
    static int warned;
    if (!out)
        return cerr_set(CAIRN_EINVAL, "could not open I/O context: no output pointer");
    *out = NULL;
    if (want != CAIRN_IO_DEFAULT && want != CAIRN_IO_URING && want != CAIRN_IO_POSIX)
        return cerr_set(CAIRN_EINVAL, "could not open I/O context: unknown backend %d",
                        (int)want);
    cio *c = calloc(1, sizeof *c);
    if (!c)
        return cerr_set(CAIRN_ENOMEM, "could not open I/O context: out of memory");
    if (want == CAIRN_IO_POSIX || sim_on()) {
        c->backend = CIO_POSIX;
        *out = c;
        return CAIRN_OK;
    }
    if (depth == 0)
        depth = CIO_DEFAULT_DEPTH;
    if (depth < 2)
        depth = 2; /* a write linked to its sync needs two entries */
    int e = uring_init(&c->ring, depth);
    if (e == 0) {
        c->backend = CIO_URING;
        c->depth = depth;
        *out = c;
        return CAIRN_OK;
    }
    if (want == CAIRN_IO_URING) {
        free(c);
        cerr_set(CAIRN_ENOTSUP, "could not set up io_uring with queue depth %u: %s", depth,
                 uring_disabled() ? "disabled by CAIRN_NO_URING" : strerror(-e));
        return CAIRN_ENOTSUP;
    }
    if (!__atomic_exchange_n(&warned, 1, __ATOMIC_ACQ_REL))
        clog_warn("io_uring unavailable (%s); using posix I/O",
                  uring_disabled() ? "disabled by CAIRN_NO_URING" : strerror(-e));
    c->backend = CIO_POSIX;
    *out = c;
    return CAIRN_OK;
}

void cio_ctx_close(cio *c)
{
    if (!c)
        return;
    if (c->backend == CIO_URING)
        io_uring_queue_exit(&c->ring);
    free(c);
}

const char *cio_name(const cio *c)
{
    if (!c)
        return "none";
    return c->backend == CIO_URING ? "io_uring" : "posix";
}

/* ------------------------------------------------------------------------
 * io_uring plumbing
 * ---------------------------------------------------------------------- */

/* Submits the n prepared SQEs; with `wait`, the same io_uring_enter also
 * waits until their n completions are there. 0, or -errno when the ring
 * itself failed (c->broken set). */
static int uring_submit(cio *c, unsigned n, bool wait)
{
    unsigned submitted = 0, tries = 0;
    while (submitted < n) {
        int r = wait ? io_uring_submit_and_wait(&c->ring, n - submitted)
                     : io_uring_submit(&c->ring);
        if (r > 0) {
            submitted += (unsigned)r;
            continue;
        }
        if ((r == 0 || r == -EINTR || r == -EAGAIN || r == -EBUSY) && ++tries < CIO_RETRIES)
            continue;
        c->broken = 1;
        return r < 0 ? r : -EIO;
    }
    return 0;
}

/* Reaps the n CQEs of submitted SQEs (user_data 0..n-1) into res[]. */
static int uring_reap(cio *c, unsigned n, int32_t *res)
{
    for (unsigned got = 0; got < n;) {
        struct io_uring_cqe *cqe;
        int r = io_uring_wait_cqe(&c->ring, &cqe);
        if (r == -EINTR || r == -EAGAIN)
            continue;
        if (r < 0) {
            c->broken = 1;
            return r;
        }
        uint64_t ud = io_uring_cqe_get_data64(cqe);
        if (ud < n)
            res[ud] = cqe->res;
        io_uring_cqe_seen(&c->ring, cqe);
        got++;
    }
    return 0;
}

/* Submits the n prepared SQEs and reaps their completions into res[]. */
static int uring_run(cio *c, unsigned n, int32_t *res)
{
    int r = uring_submit(c, n, true);
    return r ? r : uring_reap(c, n, res);
}

static struct io_uring_sqe *uring_sqe(cio *c, uint64_t ud)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&c->ring);
    if (sqe)
        io_uring_sqe_set_data64(sqe, ud);
    return sqe;
}

static cairn_status uring_broken(const char *verb, const char *path, int e)
{
    return cerr_set(CAIRN_EIO, "could not %s file \"%s\": io_uring failed: %s", verb,
                    pname(path), strerror(e));
}

/* One read, write or sync. Returns the CQE result or -errno. */
enum { OP_READ, OP_WRITE, OP_FDATASYNC, OP_FSYNC };

static int64_t uring_one(cio *c, int op, int fd, void *buf, size_t n, uint64_t off)
{
    struct io_uring_sqe *sqe = uring_sqe(c, 0);
    if (!sqe)
        return -EBUSY;
    switch (op) {
    case OP_READ:
        io_uring_prep_read(sqe, fd, buf, (unsigned)n, off);
        break;
    case OP_WRITE:
        io_uring_prep_write(sqe, fd, buf, (unsigned)n, off);
        break;
    case OP_FDATASYNC:
        io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
        break;
    default:
        io_uring_prep_fsync(sqe, fd, 0);
        break;
    }
    int32_t res = -EIO;
    int r = uring_run(c, 1, &res);
    if (r < 0)
        return INT64_MIN; /* ring failure; c->broken is set */
    return res;
}

/* Simulated posix call for one attempt (the crash simulator runs). */
static int64_t sim_op(int op, int fd, void *buf, size_t n, uint64_t off, const char *path)
{
    switch (op) {
    case OP_READ:
        return sim_pread(fd, buf, n, off, path);
    case OP_WRITE:
        return sim_pwrite(fd, buf, n, off, path);
    default:
        return sim_sync(fd, op == OP_FDATASYNC, path);
    }
}

/* Backend dispatch for one attempt. INT64_MIN: the ring broke. */
static int64_t backend_op(cio *c, int op, int fd, void *buf, size_t n, uint64_t off,
                          const char *path)
{
    if (sim_on())
        return sim_op(op, fd, buf, n, off, path);
    if (c->backend == CIO_URING)
        return uring_one(c, op, fd, buf, n, off);
    ssize_t r;
    switch (op) {
    case OP_READ:
        r = pread(fd, buf, n, (off_t)off);
        break;
    case OP_WRITE:
        r = pwrite(fd, buf, n, (off_t)off);
        break;
    case OP_FDATASYNC:
        r = fdatasync(fd);
        break;
    default:
        r = fsync(fd);
        break;
    }
    return r < 0 ? -(int64_t)errno : (int64_t)r;
}

/* ------------------------------------------------------------------------
 * Reads, writes, syncs
 * ---------------------------------------------------------------------- */
static cairn_status write_error(int e, const char *path, uint64_t off, unsigned retries)
{
    if (retryable(e))
        return cerr_errno(e, "could not write file \"%s\" at offset %llu after %u retries",
                          pname(path), (unsigned long long)off, retries);
    return cerr_errno(e, "could not write file \"%s\" at offset %llu", pname(path),
                      (unsigned long long)off);
}

static cairn_status check_ctx(cio *c, const char *verb, const char *path)
{
    if (!c)
        return cerr_set(CAIRN_EINVAL, "could not %s file \"%s\": no I/O context", verb,
                        pname(path));
    if (c->broken)
        return cerr_set(CAIRN_EIO, "could not %s file \"%s\": I/O context failed earlier",
                        verb, pname(path));
    return CAIRN_OK;
}

/* Judges one write attempt that returned r (bytes, or -errno) at file
 * offset `at`: 1 to take the progress, 0 to try again (EAGAIN/EINTR or no
 * progress, at most CIO_RETRIES times), -1 with *st set to give up. */
static int write_verdict(int64_t r, const char *path, uint64_t at, unsigned *retries,
                         cairn_status *st)
{
    if (r > 0)
        return 1;
    if (r < 0 && !retryable((int)-r)) {
        *st = write_error((int)-r, path, at, *retries);
        return -1;
    }
    if (*retries < CIO_RETRIES) {
        (*retries)++;
        return 0;
    }
    if (r < 0)
        *st = write_error((int)-r, path, at, *retries);
    else
        *st = cerr_set(CAIRN_EIO,
                       "could not write file \"%s\" at offset %llu: no progress after %u "
                       "retries",
                       pname(path), (unsigned long long)at, *retries);
    return -1;
}

cairn_status cio_write(cio *c, int fd, const void *buf, size_t len, uint64_t off,
                       const char *path)
{
    cairn_status st = check_ctx(c, "write", path);
    if (st)
        return st;
    const unsigned char *p = buf;
    size_t done = 0;
    unsigned retries = 0;
    while (done < len) {
        size_t want = CAIRN_MIN(len - done, CIO_CHUNK);
        int kind = cio_fault_take(CIO_FOP_WRITE, 1);
        int64_t r;
        if (kind && kind != CIO_FAULT_SHORT) {
            r = -fault_errno(kind);
        } else {
            if (kind == CIO_FAULT_SHORT)
                want = short_len(want);
            r = backend_op(c, OP_WRITE, fd, (void *)(p + done), want, off + done, path);
            if (r == INT64_MIN)
                return uring_broken("write", path, EIO);
        }
        cairn_status st;
        int v = write_verdict(r, path, off + done, &retries, &st);
        if (v < 0)
            return st;
        if (v == 0)
            continue;
        done += (size_t)r;
    }
    return CAIRN_OK;
}

cairn_status cio_read(cio *c, int fd, void *buf, size_t len, uint64_t off,
                      const char *path, size_t *got)
{
    size_t dummy;
    if (!got)
        got = &dummy;
    *got = 0;
    cairn_status st = check_ctx(c, "read", path);
    if (st)
        return st;
    unsigned char *p = buf;
    size_t done = 0;
    unsigned retries = 0;
    while (done < len) {
        size_t want = CAIRN_MIN(len - done, CIO_CHUNK);
        int kind = cio_fault_take(CIO_FOP_READ, 1);
        int64_t r;
        if (kind && kind != CIO_FAULT_SHORT) {
            r = -fault_errno(kind);
        } else {
            if (kind == CIO_FAULT_SHORT)
                want = short_len(want);
            r = backend_op(c, OP_READ, fd, p + done, want, off + done, path);
            if (r == INT64_MIN) {
                *got = done;
                return uring_broken("read", path, EIO);
            }
        }
        if (r < 0) {
            if (retryable((int)-r) && retries < CIO_RETRIES) {
                retries++;
                continue;
            }
            *got = done;
            return cerr_errno((int)-r, "could not read file \"%s\" at offset %llu",
                              pname(path), (unsigned long long)(off + done));
        }
        if (r == 0)
            break; /* end of file */
        done += (size_t)r;
    }
    *got = done;
    return CAIRN_OK;
}

/* ------------------------------------------------------------------------
 * Batches: many reads or writes, one submission per queue depth
 * ---------------------------------------------------------------------- */

/* One request done the one-at-a-time way, from byte `from` on. */
static cairn_status req_finish(cio *c, struct cio_req *q, int op, size_t from)
{
    if (op == OP_WRITE) {
        q->got = q->len;
        return cio_write(c, q->fd, (const unsigned char *)q->buf + from, q->len - from,
                         q->off + from, q->path);
    }
    size_t got = 0;
    cairn_status st = cio_read(c, q->fd, (unsigned char *)q->buf + from, q->len - from,
                               q->off + from, q->path, &got);
    q->got = from + got;
    return st;
}

#define BATCH_MAX 64u

/* Remembers the first failure of a batch: its status and its message
 * (later failures overwrite the thread's message). */
struct first_err {
    cairn_status st;
    char msg[512];
};

static void note_err(struct first_err *fe, cairn_status st)
{
    if (st && !fe->st) {
        fe->st = st;
        snprintf(fe->msg, sizeof fe->msg, "%s", cairn_last_error());
    }
}

static cairn_status first_err_status(const struct first_err *fe)
{
    return fe->st ? cerr_set(fe->st, "%s", fe->msg) : CAIRN_OK;
}

/* Prepares the SQEs of k <= BATCH_MAX requests (user_data = index); each
 * takes its fault-seam decision now: res[i] < 0 an injected failure (a
 * no-op keeps the index in the submission), else 0. */
static cairn_status batch_prep(cio *c, struct cio_req *q, unsigned k, int op, int32_t *res)
{
    const char *verb = op == OP_WRITE ? "write" : "read";
    for (unsigned i = 0; i < k; i++) {
        struct cio_req *r = &q[i];
        size_t want = CAIRN_MIN(r->len, CIO_CHUNK);
        res[i] = 0;
        int kind = cio_fault_take(op == OP_WRITE ? CIO_FOP_WRITE : CIO_FOP_READ, 1);
        struct io_uring_sqe *sqe = uring_sqe(c, i);
        if (!sqe) {
            c->broken = 1;
            return uring_broken(verb, r->path, EBUSY);
        }
        if (kind && kind != CIO_FAULT_SHORT) {
            res[i] = -fault_errno(kind);
            io_uring_prep_nop(sqe);
            continue;
        }
        if (kind == CIO_FAULT_SHORT)
            want = short_len(want);
        if (op == OP_WRITE)
            io_uring_prep_write(sqe, r->fd, r->buf, (unsigned)want, r->off);
        else
            io_uring_prep_read(sqe, r->fd, r->buf, (unsigned)want, r->off);
    }
    return CAIRN_OK;
}

/* Judges the completions got[] of k prepared requests and finishes what
 * is short or retryable one request at a time. */
static void batch_judge(cio *c, struct cio_req *q, unsigned k, int op, const int32_t *res,
                        const int32_t *got, struct first_err *fe)
{
    for (unsigned i = 0; i < k; i++) {
        struct cio_req *r = &q[i];
        int64_t v = res[i] < 0 ? res[i] : got[i];
        cairn_status st = CAIRN_OK;
        if (v < 0 && !retryable((int)-v)) {
            r->got = 0;
            st = op == OP_WRITE
                     ? write_error((int)-v, r->path, r->off, 0)
                     : cerr_errno((int)-v, "could not read file \"%s\" at offset %llu",
                                  pname(r->path), (unsigned long long)r->off);
        } else if (v >= 0 && (size_t)v == r->len) {
            r->got = r->len;
        } else if (op == OP_READ && v == 0) {
            r->got = 0; /* end of file */
        } else {
            /* short, or EAGAIN/EINTR: the rest one at a time, with its
             * retries */
            st = req_finish(c, r, op, v > 0 ? (size_t)v : 0);
        }
        note_err(fe, st);
    }
}

static bool queued(const cio *c)
{
    return c->backend == CIO_URING && !sim_on();
}

static cairn_status batch(cio *c, struct cio_req *q, size_t n, int op)
{
    const char *verb = op == OP_WRITE ? "write" : "read";
    cairn_status st = check_ctx(c, verb, n ? q[0].path : NULL);
    if (st)
        return st;
    struct first_err fe = {0};
    /* The simulator serializes every operation, posix has no queue: the
     * same requests one by one. */
    if (!queued(c)) {
        for (size_t i = 0; i < n; i++)
            note_err(&fe, req_finish(c, &q[i], op, 0));
        return first_err_status(&fe);
    }
    int32_t res[BATCH_MAX], got[BATCH_MAX];
    unsigned per = CAIRN_MIN(c->depth, BATCH_MAX);
    for (size_t b = 0; b < n; b += per) {
        unsigned k = (unsigned)CAIRN_MIN((size_t)per, n - b);
        if ((st = batch_prep(c, q + b, k, op, res)))
            return st;
        if (uring_run(c, k, got) < 0)
            return uring_broken(verb, q[b].path, EIO);
        batch_judge(c, q + b, k, op, res, got, &fe);
    }
    return first_err_status(&fe);
}

unsigned cio_batch_max(const cio *c)
{
    return c && queued(c) ? CAIRN_MIN(c->depth, BATCH_MAX) : BATCH_MAX;
}

cairn_status cio_read_batch_begin(cio *c, struct cio_req *q, size_t n)
{
    cairn_status st = check_ctx(c, "read", n ? q[0].path : NULL);
    if (st || !queued(c))
        return st;
    if (n > CAIRN_MIN(c->depth, BATCH_MAX) || c->pend_n)
        return cerr_set(CAIRN_EINVAL, "could not read file \"%s\": a batch of %zu reads "
                        "does not fit the queue (depth %u) or another is in flight",
                        pname(n ? q[0].path : NULL), n, c->depth);
    if ((st = batch_prep(c, q, (unsigned)n, OP_READ, c->pend_res)))
        return st;
    if (uring_submit(c, (unsigned)n, false) < 0)
        return uring_broken("read", n ? q[0].path : NULL, EIO);
    c->pend_n = (unsigned)n;
    return CAIRN_OK;
}

cairn_status cio_read_batch_end(cio *c, struct cio_req *q, size_t n)
{
    if (!c || !queued(c))
        return batch(c, q, n, OP_READ);
    if (c->pend_n != n)
        return cerr_set(CAIRN_EINVAL, "could not read file \"%s\": %zu reads ended, %u begun",
                        pname(n ? q[0].path : NULL), n, c->pend_n);
    c->pend_n = 0;
    int32_t got[BATCH_MAX];
    if (uring_reap(c, (unsigned)n, got) < 0)
        return uring_broken("read", n ? q[0].path : NULL, EIO);
    struct first_err fe = {0};
    batch_judge(c, q, (unsigned)n, OP_READ, c->pend_res, got, &fe);
    return first_err_status(&fe);
}

cairn_status cio_write_batch(cio *c, struct cio_req *reqs, size_t n)
{
    return batch(c, reqs, n, OP_WRITE);
}

static cairn_status do_sync(cio *c, int fd, const char *path, int op)
{
    const char *verb = op == OP_FDATASYNC ? "fdatasync" : "fsync";
    cairn_status st = check_ctx(c, verb, path);
    if (st)
        return st;
    unsigned retries = 0;
    for (;;) {
        int kind = cio_fault_take(CIO_FOP_SYNC, 0);
        int64_t r = kind ? -fault_errno(kind) : backend_op(c, op, fd, NULL, 0, 0, path);
        if (r == INT64_MIN)
            return uring_broken(verb, path, EIO);
        if (r >= 0)
            return CAIRN_OK;
        /* -EINTR/-EAGAIN: the sync did not run; anything else is final. */
        if (retryable((int)-r) && retries < CIO_RETRIES) {
            retries++;
            continue;
        }
        return cerr_errno((int)-r, "could not %s file \"%s\"", verb, pname(path));
    }
}

cairn_status cio_fdatasync(cio *c, int fd, const char *path)
{
    return do_sync(c, fd, path, OP_FDATASYNC);
}

cairn_status cio_fsync(cio *c, int fd, const char *path)
{
    return do_sync(c, fd, path, OP_FSYNC);
}

/*
 * io_uring write + fdatasync. The write that is meant to finish the buffer
 * is linked to the sync in one submission. If the kernel reports it short,
 * the sync is cancelled (or ran on partial data): the rest is resubmitted,
 * again linked to a sync. A sync that ran and failed is final.
 */
static cairn_status uring_write_sync(cio *c, int fd, const unsigned char *p, size_t len,
                                     uint64_t off, const char *path)
{
    size_t done = 0;
    unsigned retries = 0;
    while (done < len) {
        size_t want = CAIRN_MIN(len - done, CIO_CHUNK);
        int kind = cio_fault_take(CIO_FOP_WRITE, 1);
        int64_t wres;
        int32_t sres = -ECANCELED; /* no sync issued */
        if (kind && kind != CIO_FAULT_SHORT) {
            wres = -fault_errno(kind); /* nothing submitted, no sync */
        } else {
            if (kind == CIO_FAULT_SHORT)
                want = short_len(want);
            if (done + want < len) {
                wres = uring_one(c, OP_WRITE, fd, (void *)(p + done), want, off + done);
                if (wres == INT64_MIN)
                    return uring_broken("write", path, EIO);
            } else {
                struct io_uring_sqe *w = uring_sqe(c, 0);
                struct io_uring_sqe *s = w ? uring_sqe(c, 1) : NULL;
                if (!s) {
                    c->broken = 1; /* cannot happen: the ring is drained between calls */
                    return uring_broken("write", path, EBUSY);
                }
                io_uring_prep_write(w, fd, p + done, (unsigned)want, off + done);
                w->flags |= IOSQE_IO_LINK;
                io_uring_prep_fsync(s, fd, IORING_FSYNC_DATASYNC);
                int skind = cio_fault_take(CIO_FOP_SYNC, 0);
                int32_t res[2] = {-EIO, -EIO};
                int r = uring_run(c, 2, res);
                if (r < 0)
                    return uring_broken("write", path, -r);
                wres = res[0];
                sres = res[1];
                if (skind && sres != -ECANCELED)
                    sres = -fault_errno(skind);
            }
        }
        cairn_status st;
        int v = write_verdict(wres, path, off + done, &retries, &st);
        if (v < 0)
            return st;
        if (v == 0)
            continue;
        done += (size_t)wres;
        if (sres < 0 && sres != -ECANCELED && !retryable(-sres))
            return cerr_errno(-sres, "could not fdatasync file \"%s\"", pname(path));
        if (done == len) {
            if (sres == 0)
                return CAIRN_OK;
            /* Cancelled or interrupted: the sync did not run; issue it alone. */
            return cio_fdatasync(c, fd, path);
        }
    }
    return CAIRN_OK;
}

cairn_status cio_write_sync(cio *c, int fd, const void *buf, size_t len, uint64_t off,
                            const char *path)
{
    cairn_status st = check_ctx(c, "write", path);
    if (st)
        return st;
    if (c->backend == CIO_URING && len > 0 && !sim_on())
        return uring_write_sync(c, fd, buf, len, off, path);
    st = cio_write(c, fd, buf, len, off, path);
    if (st)
        return st;
    return cio_fdatasync(c, fd, path);
}

/* ------------------------------------------------------------------------
 * Primitive file operations (synchronous system calls)
 * ---------------------------------------------------------------------- */

/* The system calls of the file operations: through the crash simulator
 * while it runs. They return like the system calls (-1 and errno). */
static int sys_ret(int r)
{
    if (r < 0) {
        errno = -r;
        return -1;
    }
    return r;
}

static int sys_open(const char *path, int flags, mode_t mode)
{
    if (sim_on())
        return sys_ret(sim_open(path, flags, mode));
    return open(path, flags | O_CLOEXEC, mode);
}

static int sys_ftruncate(int fd, uint64_t size, const char *path)
{
    return sim_on() ? sys_ret(sim_ftruncate(fd, size, path)) : ftruncate(fd, (off_t)size);
}

static int sys_rename(const char *from, const char *to)
{
    return sim_on() ? sys_ret(sim_rename(from, to)) : rename(from, to);
}

static int sys_unlink(const char *path)
{
    return sim_on() ? sys_ret(sim_unlink(path)) : unlink(path);
}

static int sys_mkdir(const char *path, mode_t mode)
{
    return sim_on() ? sys_ret(sim_mkdir(path, mode)) : mkdir(path, mode);
}

static int sys_fsync_dir(int fd, const char *dir)
{
    return sim_on() ? sys_ret(sim_fsync_dir(fd, dir)) : fsync(fd);
}

/* Asks the seam before a META/SYNC system call. Returns 0 to go ahead,
 * EAGAIN/EINTR to retry, or the errno to fail with. */
static int meta_fault(unsigned op)
{
    int kind = cio_fault_take(op, 0);
    return kind ? fault_errno(kind) : 0;
}

cairn_status cfs_open(const char *path, int flags, mode_t mode, int *fd_out)
{
    if (!fd_out)
        return cerr_set(CAIRN_EINVAL, "could not open file \"%s\": no output pointer",
                        pname(path));
    *fd_out = -1;
    unsigned retries = 0;
    for (;;) {
        int e = (flags & O_CREAT) ? meta_fault(CIO_FOP_META) : 0;
        if (e == 0) {
            int fd = sys_open(path, flags, mode);
            if (fd >= 0) {
                *fd_out = fd;
                return CAIRN_OK;
            }
            e = errno;
        }
        if (retryable(e) && retries++ < CIO_RETRIES)
            continue;
        return cerr_errno(e, "could not open file \"%s\"", pname(path));
    }
}

cairn_status cfs_close(int fd, const char *path)
{
    if (fd < 0)
        return CAIRN_OK;
    /* Never retried: on Linux the descriptor is gone even on EINTR. */
    if (close(fd) != 0 && errno != EINTR)
        return cerr_errno(errno, "could not close file \"%s\"", pname(path));
    return CAIRN_OK;
}

cairn_status cfs_ftruncate(int fd, uint64_t size, const char *path)
{
    unsigned retries = 0;
    for (;;) {
        int e = meta_fault(CIO_FOP_META);
        if (e == 0) {
            if (sys_ftruncate(fd, size, path) == 0)
                return CAIRN_OK;
            e = errno;
        }
        if (retryable(e) && retries++ < CIO_RETRIES)
            continue;
        return cerr_errno(e, "could not truncate file \"%s\" to %llu bytes", pname(path),
                          (unsigned long long)size);
    }
}

cairn_status cfs_rename(const char *from, const char *to)
{
    unsigned retries = 0;
    for (;;) {
        int e = meta_fault(CIO_FOP_META);
        if (e == 0) {
            if (sys_rename(from, to) == 0)
                return CAIRN_OK;
            e = errno;
        }
        if (retryable(e) && retries++ < CIO_RETRIES)
            continue;
        return cerr_errno(e, "could not rename file \"%s\" to \"%s\"", pname(from),
                          pname(to));
    }
}

cairn_status cfs_exchange(const char *a, const char *b)
{
    unsigned retries = 0;
    for (;;) {
        int e = meta_fault(CIO_FOP_META);
        if (e == 0) {
            /* the power-loss simulator has no exchange: refused there */
            if (sim_on())
                e = EOPNOTSUPP;
            else if (renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) == 0)
                return CAIRN_OK;
            else
                e = errno;
        }
        if (retryable(e) && retries++ < CIO_RETRIES)
            continue;
        return cerr_errno(e, "could not exchange \"%s\" and \"%s\" (renameat2 "
                          "RENAME_EXCHANGE%s)", pname(a), pname(b),
                          e == EINVAL || e == EOPNOTSUPP ? ": the file system does not "
                          "support it" : "");
    }
}

cairn_status cfs_unlink(const char *path)
{
    unsigned retries = 0;
    for (;;) {
        int e = meta_fault(CIO_FOP_META);
        if (e == 0) {
            if (sys_unlink(path) == 0)
                return CAIRN_OK;
            e = errno;
        }
        if (retryable(e) && retries++ < CIO_RETRIES)
            continue;
        return cerr_errno(e, "could not remove file \"%s\"", pname(path));
    }
}

cairn_status cfs_mkdir(const char *path, mode_t mode)
{
    unsigned retries = 0;
    for (;;) {
        int e = meta_fault(CIO_FOP_META);
        if (e == 0) {
            if (sys_mkdir(path, mode) == 0)
                return CAIRN_OK;
            e = errno;
            if (e == EEXIST) {
                struct stat sb;
                if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
                    return CAIRN_OK;
                return cerr_set(CAIRN_EEXIST,
                                "could not create directory \"%s\": exists and is not a "
                                "directory",
                                pname(path));
            }
        }
        if (retryable(e) && retries++ < CIO_RETRIES)
            continue;
        return cerr_errno(e, "could not create directory \"%s\"", pname(path));
    }
}

cairn_status cfs_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return cerr_errno(errno, "could not open directory \"%s\"", pname(dir));
    unsigned retries = 0;
    for (;;) {
        int e = meta_fault(CIO_FOP_SYNC);
        if (e == 0) {
            if (sys_fsync_dir(fd, dir) == 0)
                break;
            e = errno;
            /* Some file systems cannot sync a directory: nothing to do. */
            if (e == EINVAL)
                break;
        }
        if (retryable(e) && retries++ < CIO_RETRIES)
            continue;
        close(fd);
        return cerr_errno(e, "could not fsync directory \"%s\"", pname(dir));
    }
    close(fd);
    return CAIRN_OK;
}
