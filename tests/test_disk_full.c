/*
 * test_disk_full.c — invariant 7 with a real full disk: a small file system
 * is mounted (tmpfs with size=, and ext4 on a loop device), filled in the
 * middle of a workload, freed again.
 *
 * Where: the test enters a private mount namespace first (unshare
 * CLONE_NEWNS as root; CLONE_NEWUSER|CLONE_NEWNS otherwise, which allows
 * tmpfs but not ext4), so that nothing it mounts is seen outside it or
 * outlives it, even if it dies (the loop device is set up with autoclear:
 * released when its mount goes). A file system that cannot be set up is
 * skipped with the reason; when none can, the test exits 77.
 *
 * On each file system, three databases, one after the other:
 *
 *   A. commits until the disk is full: a filler file leaves ~3 MiB; commits
 *      go on until one fails. It must fail with CAIRN_ENOSPC and a message
 *      naming a file of the database; the handle still reads exactly the
 *      acknowledged commits; later commits succeed (while they fit in the
 *      WAL segment already there) or fail cleanly; a checkpoint fails with
 *      CAIRN_ENOSPC. Then the filler is deleted: the same handle commits
 *      again (a failed preallocation does not poison it) and checkpoints;
 *      close, reopen: everything acknowledged is there (a commit that failed
 *      with ENOSPC whole or not at all), cairn_check() passes, new commits
 *      and a checkpoint work and survive another reopen.
 *   B. a checkpoint hits ENOSPC: checkpoint 1, then commits that dirty
 *      ~2 MB of pages, then a filler leaving 64 KiB: the checkpoint fails
 *      with CAIRN_ENOSPC naming a file, and so does a second attempt (not
 *      "disabled": nothing was published, the checkpointer is not
 *      poisoned); small commits still succeed; close and reopen while the
 *      disk is still full: the open starts from checkpoint 1 (the failed one
 *      damaged nothing) and shows every acknowledged commit. Then the filler
 *      is deleted: a checkpoint succeeds, reopen from it, cairn_check().
 *   C. creating a database with room for its directory and meta file but
 *      not its first WAL segment: the open fails with CAIRN_ENOSPC naming a
 *      file, twice; once space is freed the open finishes the creation and
 *      the database works.
 *
 * And O_DIRECT: the engine opens WAL segments and page files with O_DIRECT
 * where the file system takes it and falls back to buffered I/O where it
 * refuses (EINVAL). Which one each file system got is read from
 * /proc/self/fdinfo of the database's open files and printed; on ramfs
 * (which refuses O_DIRECT) a workload with a checkpoint and a reopen must
 * work buffered, with the WAL writer's one warning line.
 *
 *   env CAIRN_SEED  the workload's data (printed)
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/loop.h>
#include <pthread.h>
#include <sched.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cairn.h"
#include "testutil.h"

extern char **environ;

static char tmpbase[512];
static uint64_t g_seed;
static const char *g_fs = "setup"; /* the file system being tested, for messages */

static void cleanup(void);

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("disk_full: FAIL (%s): ", g_fs);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
    cleanup();
    exit(1);
}

static void must(cairn_status st, const char *what)
{
    if (st)
        die("%s: %s: %s", what, cairn_status_name(st), cairn_last_error());
}

/* ---- captured log lines ------------------------------------------------------ */

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_buf[1 << 16];
static size_t log_len;

static void log_cb(void *ctx, cairn_log_level level, const char *msg)
{
    (void)ctx;
    (void)level;
    pthread_mutex_lock(&log_mu);
    size_t n = strlen(msg);
    if (log_len + n + 2 < sizeof log_buf) {
        memcpy(log_buf + log_len, msg, n);
        log_len += n;
        log_buf[log_len++] = '\n';
        log_buf[log_len] = 0;
    }
    pthread_mutex_unlock(&log_mu);
    if (getenv("CAIRN_TEST_VERBOSE"))
        fprintf(stderr, "  log: %s\n", msg);
}

static void log_clear(void)
{
    pthread_mutex_lock(&log_mu);
    log_len = 0;
    log_buf[0] = 0;
    pthread_mutex_unlock(&log_mu);
}

static bool log_has(const char *needle)
{
    pthread_mutex_lock(&log_mu);
    bool r = strstr(log_buf, needle) != NULL;
    pthread_mutex_unlock(&log_mu);
    return r;
}

/* ---- mounting ------------------------------------------------------------------- */

static char g_mnt[600];
static bool g_mounted;

/* A private mount namespace: as root, CLONE_NEWNS; otherwise a user
 * namespace mapping us to root in it, with a mount namespace. Mount events
 * are made private so that nothing propagates out. 0, or -1 (why set). */
static int enter_private_ns(char *why, size_t n)
{
    uid_t uid = geteuid();
    gid_t gid = getegid();
    if (uid == 0) {
        if (unshare(CLONE_NEWNS) != 0) {
            snprintf(why, n, "unshare(CLONE_NEWNS): %s", strerror(errno));
            return -1;
        }
    } else {
        if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) {
            snprintf(why, n, "unshare(CLONE_NEWUSER|CLONE_NEWNS): %s", strerror(errno));
            return -1;
        }
        char m[64];
        struct {
            const char *path, *text;
        } w[3] = {{"/proc/self/setgroups", "deny"}, {"/proc/self/uid_map", NULL},
                  {"/proc/self/gid_map", NULL}};
        char um[64], gm[64];
        snprintf(um, sizeof um, "0 %u 1", (unsigned)uid);
        snprintf(gm, sizeof gm, "0 %u 1", (unsigned)gid);
        w[1].text = um;
        w[2].text = gm;
        for (int i = 0; i < 3; i++) {
            int fd = open(w[i].path, O_WRONLY);
            snprintf(m, sizeof m, "%s", w[i].text);
            if (fd < 0 || write(fd, m, strlen(m)) != (ssize_t)strlen(m)) {
                snprintf(why, n, "write %s: %s", w[i].path, strerror(errno));
                if (fd >= 0)
                    close(fd);
                return -1;
            }
            close(fd);
        }
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        snprintf(why, n, "making mounts private: %s", strerror(errno));
        return -1;
    }
    return 0;
}

static void unmount_fs(void)
{
    if (!g_mounted)
        return;
    if (umount2(g_mnt, 0) != 0 && umount2(g_mnt, MNT_DETACH) != 0)
        fprintf(stderr, "disk_full: could not unmount %s: %s\n", g_mnt, strerror(errno));
    g_mounted = false;
}

static void cleanup(void)
{
    unmount_fs();
    tu_rm_rf(tmpbase);
}

static int mount_tmpfs(const char *size, char *why, size_t n)
{
    char opt[64];
    snprintf(opt, sizeof opt, "size=%s,mode=0755", size);
    if (mount("tmpfs", g_mnt, "tmpfs", 0, opt) != 0) {
        snprintf(why, n, "mount -t tmpfs -o %s: %s", opt, strerror(errno));
        return -1;
    }
    g_mounted = true;
    return 0;
}

static int mount_ramfs(char *why, size_t n)
{
    if (mount("ramfs", g_mnt, "ramfs", 0, "mode=0755") != 0) {
        snprintf(why, n, "mount -t ramfs: %s", strerror(errno));
        return -1;
    }
    g_mounted = true;
    return 0;
}

/* Runs argv (searched in PATH and the sbin directories), output discarded
 * unless verbose. Its exit status, or -1. */
static int run_cmd(char *const argv[])
{
    const char *old = getenv("PATH");
    char path[2048];
    snprintf(path, sizeof path, "%s:/usr/sbin:/sbin", old ? old : "/usr/bin:/bin");
    setenv("PATH", path, 1);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (!getenv("CAIRN_TEST_VERBOSE")) {
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
        posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    }
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (old)
        setenv("PATH", old, 1);
    if (rc != 0)
        return -1;
    int status;
    if (waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Attaches img to a free loop device with autoclear (released when its
 * last user, the mount, goes); its path in dev. The descriptor, or -1. */
static int loop_attach(int imgfd, char *dev, size_t devn, char *why, size_t n)
{
    int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
    if (ctl < 0) {
        snprintf(why, n, "open /dev/loop-control: %s", strerror(errno));
        return -1;
    }
    for (int attempt = 0; attempt < 20; attempt++) {
        int num = ioctl(ctl, LOOP_CTL_GET_FREE);
        if (num < 0) {
            snprintf(why, n, "LOOP_CTL_GET_FREE: %s", strerror(errno));
            break;
        }
        snprintf(dev, devn, "/dev/loop%d", num);
        int lfd = open(dev, O_RDWR | O_CLOEXEC);
        if (lfd < 0 && errno == ENOENT &&
            mknod(dev, S_IFBLK | 0660, makedev(7, (unsigned)num)) == 0)
            lfd = open(dev, O_RDWR | O_CLOEXEC);
        if (lfd < 0) {
            snprintf(why, n, "open %s: %s", dev, strerror(errno));
            break;
        }
        struct loop_config cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.fd = (unsigned)imgfd;
        cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR;
        if (ioctl(lfd, LOOP_CONFIGURE, &cfg) == 0) {
            close(ctl);
            return lfd;
        }
        int e = errno;
        if (e == EINVAL || e == ENOTTY) {
            /* kernels before 5.8: set fd, then status */
            if (ioctl(lfd, LOOP_SET_FD, imgfd) == 0) {
                struct loop_info64 info;
                memset(&info, 0, sizeof info);
                info.lo_flags = LO_FLAGS_AUTOCLEAR;
                if (ioctl(lfd, LOOP_SET_STATUS64, &info) == 0) {
                    close(ctl);
                    return lfd;
                }
                e = errno;
                ioctl(lfd, LOOP_CLR_FD, 0);
            } else {
                e = errno;
            }
        }
        close(lfd);
        if (e != EBUSY) { /* EBUSY: another process took it first */
            snprintf(why, n, "configuring %s: %s", dev, strerror(e));
            break;
        }
    }
    close(ctl);
    return -1;
}

/* An ext4 file system of `mib` MiB in an image file outside the mount
 * point, no blocks reserved for root (the test may run as root). */
static int mount_ext4(unsigned mib, char *why, size_t n)
{
    char img[700];
    snprintf(img, sizeof img, "%s/ext4.img", tmpbase);
    int fd = open(img, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || ftruncate(fd, (off_t)mib << 20) != 0) {
        snprintf(why, n, "create %s: %s", img, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    char *argv[] = {"mkfs.ext4", "-q", "-F", "-m", "0", "-b", "4096", img, NULL};
    int rc = run_cmd(argv);
    if (rc != 0) {
        snprintf(why, n, "mkfs.ext4 %s: %s", img,
                 rc < 0 ? "could not run it" : "failed");
        close(fd);
        return -1;
    }
    char dev[64];
    int lfd = loop_attach(fd, dev, sizeof dev, why, n);
    close(fd);
    if (lfd < 0)
        return -1;
    int r = mount(dev, g_mnt, "ext4", 0, "");
    int e = errno;
    close(lfd); /* autoclear: the device goes with the mount */
    if (r != 0) {
        snprintf(why, n, "mount %s (ext4) on %s: %s", dev, g_mnt, strerror(e));
        return -1;
    }
    g_mounted = true;
    return 0;
}

/* ---- space -------------------------------------------------------------------------- */

static uint64_t free_bytes(void)
{
    struct statvfs v;
    if (statvfs(g_mnt, &v) != 0)
        die("statvfs %s: %s", g_mnt, strerror(errno));
    return (uint64_t)v.f_bavail * v.f_frsize;
}

static char g_filler[700];

/* A file taking all free space but `leave` bytes (allocated for real). */
static void fill(uint64_t leave)
{
    snprintf(g_filler, sizeof g_filler, "%s/filler", g_mnt);
    uint64_t want = free_bytes();
    want = want > leave ? want - leave : 0;
    want &= ~(uint64_t)4095;
    int fd = open(g_filler, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        die("create %s: %s", g_filler, strerror(errno));
    int e = want ? posix_fallocate(fd, 0, (off_t)want) : 0;
    if (e == EOPNOTSUPP || e == EINVAL) {
        static char chunk[1 << 20];
        memset(chunk, 0x5a, sizeof chunk);
        e = 0;
        for (uint64_t off = 0; off < want && !e;) {
            size_t len = (size_t)(want - off < sizeof chunk ? want - off : sizeof chunk);
            ssize_t r = pwrite(fd, chunk, len, (off_t)off);
            if (r <= 0)
                e = r < 0 ? errno : EIO;
            else
                off += (uint64_t)r;
        }
    }
    if (e)
        die("filling %s with %" PRIu64 " bytes: %s", g_filler, want, strerror(e));
    if (fsync(fd) != 0)
        die("fsync %s: %s", g_filler, strerror(errno));
    close(fd);
}

static void unfill(void)
{
    if (unlink(g_filler) != 0)
        die("unlink %s: %s", g_filler, strerror(errno));
}

/* Waits until the WAL preallocator is done: no "*.tmp" in the WAL
 * directory and the free space unchanged for 100 ms. */
static void wait_quiet(const char *dbdir)
{
    char wal[700];
    snprintf(wal, sizeof wal, "%s/wal", dbdir);
    uint64_t last = UINT64_MAX;
    int quiet = 0;
    for (int i = 0; i < 2000 && quiet < 5; i++) {
        usleep(20000);
        bool tmp = false;
        DIR *d = opendir(wal);
        struct dirent *e;
        while (d && (e = readdir(d)))
            tmp |= strstr(e->d_name, ".tmp") != NULL;
        if (d)
            closedir(d);
        uint64_t f = free_bytes();
        quiet = (!tmp && f == last) ? quiet + 1 : 0;
        last = f;
    }
    if (quiet < 5)
        die("database %s did not become quiet", dbdir);
}

/* ---- O_DIRECT: which of the database's open files use it ------------------------ */

struct odirect {
    int wal, wal_direct, pages, pages_direct;
};

static struct odirect odirect_scan(const char *dbdir)
{
    struct odirect r = {0};
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return r;
    size_t dl = strlen(dbdir);
    struct dirent *e;
    while ((e = readdir(d))) {
        char lp[300], target[1024], info[300];
        snprintf(lp, sizeof lp, "/proc/self/fd/%s", e->d_name);
        ssize_t n = readlink(lp, target, sizeof target - 1);
        if (n <= 0)
            continue;
        target[n] = 0;
        if (strncmp(target, dbdir, dl) != 0)
            continue;
        bool is_wal = strstr(target, ".wal") != NULL;
        bool is_pages = strstr(target, ".pages") != NULL;
        if (!is_wal && !is_pages)
            continue;
        snprintf(info, sizeof info, "/proc/self/fdinfo/%s", e->d_name);
        FILE *f = fopen(info, "r");
        unsigned long flags = 0;
        char line[256];
        while (f && fgets(line, sizeof line, f))
            if (sscanf(line, "flags: %lo", &flags) == 1)
                break;
        if (f)
            fclose(f);
        bool direct = (flags & O_DIRECT) != 0;
        if (is_wal) {
            r.wal++;
            r.wal_direct += direct;
        } else {
            r.pages++;
            r.pages_direct += direct;
        }
    }
    closedir(d);
    return r;
}

/* ---- the workload and its model -------------------------------------------------------- */

#define DIM 512
#define PER_TX 8
#define MAXTX 4096
#define NIDS 3000u

/* OC_ABSENT: failed, and a later commit on the same handle succeeded: the
 * failure did not poison the WAL writer, so nothing of it was written (a
 * failed WAL write or sync poisons; a failed preallocation refuses the
 * append before anything is placed). */
enum outcome { OC_NONE = 0, OC_ACK, OC_DOUBT, OC_ABSENT };

struct db_run {
    char dir[700];
    cairn_db *db;
    uint64_t seed;
    unsigned next; /* next transaction number */
    unsigned opened_at; /* r->next when the handle was opened */
    enum outcome oc[MAXTX];
    unsigned ndoubt, nabsent;
};

/* Transaction k: PER_TX upserts into "v" (ids, vectors and payloads of 1 to
 * 6 KB from the seed and k), or, every 6th, PER_TX deletes. */
struct tx_op {
    uint64_t id;
    bool del;
    uint32_t vseed, pad;
};

static void tx_ops(const struct db_run *r, unsigned k, struct tx_op *o)
{
    uint64_t s = r->seed ^ ((uint64_t)k * 0x9E3779B97F4A7C15ULL);
    bool del = k % 6 == 5;
    for (int i = 0; i < PER_TX; i++) {
        o[i].id = tu_splitmix(&s) % NIDS;
        o[i].del = del;
        o[i].vseed = (uint32_t)tu_splitmix(&s);
        o[i].pad = 1000 + (uint32_t)(tu_splitmix(&s) % 5000);
    }
}

static cairn_status commit_tx(struct db_run *r, unsigned k, char *msg, size_t mn)
{
    static float vec[PER_TX][DIM];
    struct tx_op o[PER_TX];
    tx_ops(r, k, o);
    cairn_txn *t = NULL;
    cairn_status st = cairn_txn_begin(r->db, &t);
    char *pl[PER_TX] = {0};
    for (int i = 0; i < PER_TX && !st; i++) {
        if (o[i].del) {
            st = cairn_txn_delete(t, "v", o[i].id);
            continue;
        }
        size_t len = 0;
        tu_gen_vector(o[i].vseed, vec[i], DIM);
        pl[i] = tu_gen_payload(o[i].vseed, o[i].pad, &len);
        if (!pl[i])
            die("out of memory");
        st = cairn_txn_upsert(t, "v", o[i].id, vec[i], DIM, pl[i], len);
    }
    if (!st)
        st = cairn_txn_commit(t, NULL);
    msg[0] = 0;
    if (st)
        snprintf(msg, mn, "%s", cairn_last_error());
    cairn_txn_free(t);
    for (int i = 0; i < PER_TX; i++)
        free(pl[i]);
    return st;
}

static void model_tx(const struct db_run *r, unsigned k, struct tu_model *m)
{
    struct tx_op o[PER_TX];
    tx_ops(r, k, o);
    for (int i = 0; i < PER_TX; i++) {
        if (o[i].del)
            (void)tu_model_delete(m, "v", o[i].id);
        else
            (void)tu_model_upsert(m, "v", o[i].id, o[i].vseed, o[i].pad);
    }
}

static void model_build(const struct db_run *r, uint32_t mask, struct tu_model *m)
{
    tu_model_free(m);
    if (tu_model_create(m, "v", DIM, CAIRN_METRIC_L2) != 0)
        die("model: %s", tu_error());
    unsigned d = 0;
    for (unsigned k = 0; k < r->next; k++) {
        bool apply = r->oc[k] == OC_ACK;
        if (r->oc[k] == OC_DOUBT)
            apply = (mask >> d++) & 1u;
        if (apply)
            model_tx(r, k, m);
    }
}

/* The database shows the acknowledged commits and a subset of those in
 * doubt; returns how many of those are there. */
static unsigned expect_state(const struct db_run *r, const char *what)
{
    struct tu_dig got = {0}, want = {0};
    if (tu_state_digest(r->db, &got, 0) != 0)
        die("%s: digest: %s", what, tu_error());
    if (r->ndoubt > 10)
        die("%s: %u commits in doubt", what, r->ndoubt);
    struct tu_model m = {0};
    int hit = -1;
    for (uint32_t mask = 0; mask < (1u << r->ndoubt) && hit < 0; mask++) {
        model_build(r, mask, &m);
        if (tu_model_digest(&m, &want) != 0)
            die("model digest: %s", tu_error());
        if (tu_dig_eq(&got, &want))
            hit = (int)mask;
    }
    if (hit < 0) {
        char why[512];
        model_build(r, 0, &m);
        tu_model_explain(r->db, &m, why, sizeof why);
        die("%s: the database is not the acknowledged commits (plus some of the %u in "
            "doubt): %s",
            what, r->ndoubt, why);
    }
    tu_model_free(&m);
    tu_dig_free(&got);
    tu_dig_free(&want);
    return (unsigned)__builtin_popcount((unsigned)hit);
}

static cairn_options db_opts(void)
{
    cairn_options o = tu_opts(CAIRN_DURABILITY_SYNC, CAIRN_IO_DEFAULT, 2);
    o.checkpoint_wal_bytes = UINT64_MAX; /* only the test's checkpoints */
    o.checkpoint_interval_s = 0;
    return o;
}

static void db_open(struct db_run *r, const char *what)
{
    cairn_options o = db_opts();
    cairn_status st = cairn_open(r->dir, &o, &r->db);
    if (st)
        die("%s: open %s: %s: %s", what, r->dir, cairn_status_name(st), cairn_last_error());
    r->opened_at = r->next;
}

/* A commit succeeded: the failures before it on this handle wrote nothing. */
static void settle(struct db_run *r)
{
    for (unsigned k = r->opened_at; k < r->next; k++)
        if (r->oc[k] == OC_DOUBT) {
            r->oc[k] = OC_ABSENT;
            r->ndoubt--;
            r->nabsent++;
        }
}

static void db_close(struct db_run *r, const char *what)
{
    cairn_status st = cairn_close(r->db);
    r->db = NULL;
    if (st)
        die("%s: close: %s: %s", what, cairn_status_name(st), cairn_last_error());
}

static void db_new(struct db_run *r, const char *name, uint64_t seed)
{
    memset(r, 0, sizeof *r);
    snprintf(r->dir, sizeof r->dir, "%s/%s", g_mnt, name);
    r->seed = seed;
    db_open(r, "create");
    must(cairn_collection_create(r->db, "v", DIM, CAIRN_METRIC_L2), "create collection");
}

/* Commits the next transaction; it must succeed. */
static void commit_ok(struct db_run *r, const char *what)
{
    char msg[1024];
    cairn_status st = commit_tx(r, r->next, msg, sizeof msg);
    if (st)
        die("%s: commit %u: %s: %s", what, r->next, cairn_status_name(st), msg);
    settle(r);
    r->oc[r->next++] = OC_ACK;
}

/* Commits the next transaction; returns its status. A failure must be
 * clean: CAIRN_ENOSPC naming a file of the database (the commit is in
 * doubt), or CAIRN_EPOISONED (after a failed WAL write; never logged). */
static cairn_status commit_try(struct db_run *r, const char *what)
{
    if (r->next == MAXTX)
        die("%s: more than %d commits", what, MAXTX);
    char msg[1024];
    unsigned k = r->next++;
    cairn_status st = commit_tx(r, k, msg, sizeof msg);
    if (st == CAIRN_OK) {
        settle(r);
        r->oc[k] = OC_ACK;
    } else if (st == CAIRN_ENOSPC || st == CAIRN_EPOISONED) {
        if (!strstr(msg, r->dir))
            die("%s: commit %u failed with %s, the message names no file of \"%s\": %s",
                what, k, cairn_status_name(st), r->dir, msg);
        if (st == CAIRN_ENOSPC) {
            r->oc[k] = OC_DOUBT;
            r->ndoubt++;
        }
    } else {
        die("%s: commit %u failed with %s (want CAIRN_ENOSPC): %s", what, k,
            cairn_status_name(st), msg);
    }
    return st;
}

static void check_db(struct db_run *r, const char *what)
{
    cairn_check_report rep;
    memset(&rep, 0, sizeof rep);
    cairn_status st = cairn_check(r->db, &rep);
    if (st || rep.problems)
        die("%s: cairn_check: %s, %u problem(s): %s / %s", what, cairn_status_name(st),
            rep.problems, rep.first_problem, cairn_last_error());
}

/* Reopens, checks the state and cairn_check, then a commit and a
 * checkpoint that survive another reopen. */
static void reopen_and_verify(struct db_run *r, const char *what)
{
    db_open(r, what);
    unsigned present = expect_state(r, what);
    check_db(r, what);
    for (int i = 0; i < 3; i++)
        commit_ok(r, what);
    must(cairn_checkpoint(r->db, NULL), "checkpoint after reopen");
    db_close(r, what);
    db_open(r, what);
    if (expect_state(r, what) != present)
        die("%s: the second reopen shows other commits in doubt than the first", what);
    check_db(r, what);
    db_close(r, what);
    unsigned acked = 0;
    for (unsigned k = 0; k < r->next; k++)
        acked += r->oc[k] == OC_ACK;
    printf("disk_full: %s: %s: after reopen %u commits acknowledged, %u refused (absent), "
           "%u in doubt (%u of them durable after all); cairn_check passed\n",
           g_fs, what, acked, r->nabsent, r->ndoubt, present);
}

/* ---- A: commit until the disk is full -------------------------------------------------- */

static void scenario_commit(void)
{
    struct db_run *r = calloc(1, sizeof *r);
    if (!r)
        die("out of memory");
    db_new(r, "dbA", g_seed);
    for (int i = 0; i < 10; i++)
        commit_ok(r, "A: before the filler");
    must(cairn_checkpoint(r->db, NULL), "A: checkpoint 1");
    wait_quiet(r->dir);
    fill(3u << 20);
    uint64_t before = free_bytes();

    /* until a commit fails */
    unsigned ok_before = 0;
    cairn_status st = CAIRN_OK;
    char first_msg[1024] = "";
    while (st == CAIRN_OK) {
        st = commit_try(r, "A: filling");
        if (st == CAIRN_OK)
            ok_before++;
        else
            snprintf(first_msg, sizeof first_msg, "%s", cairn_last_error());
    }
    if (st != CAIRN_ENOSPC)
        die("A: the first failing commit gave %s, want CAIRN_ENOSPC: %s",
            cairn_status_name(st), first_msg);
    printf("disk_full: %s: A: %u commits went in after the filler (%" PRIu64
           " bytes free), then: %s\n",
           g_fs, ok_before, before, first_msg);

    /* reads show exactly what was acknowledged */
    unsigned shown = expect_state(r, "A: the live handle when full");
    if (shown)
        die("A: the live handle shows a commit that failed");

    /* more commits: in the segment at hand or cleanly refused */
    unsigned later_ok = 0, later_fail = 0;
    for (int i = 0; i < 20; i++) {
        if (commit_try(r, "A: full") == CAIRN_OK)
            later_ok++;
        else
            later_fail++;
    }
    if (later_fail == 0)
        die("A: 20 commits went in on a full disk");
    expect_state(r, "A: the live handle after more commits");

    /* a checkpoint needs new pages: refused, nothing damaged */
    st = cairn_checkpoint(r->db, NULL);
    char cmsg[1024];
    snprintf(cmsg, sizeof cmsg, "%s", cairn_last_error());
    if (st != CAIRN_ENOSPC)
        die("A: a checkpoint on a full disk gave %s, want CAIRN_ENOSPC: %s",
            cairn_status_name(st), cmsg);
    if (!strstr(cmsg, r->dir))
        die("A: the checkpoint's message names no file of \"%s\": %s", r->dir, cmsg);

    /* space again: the same handle commits and checkpoints */
    unfill();
    st = commit_try(r, "A: after freeing space");
    if (st)
        die("A: after freeing space the handle does not commit: %s: %s",
            cairn_status_name(st), cairn_last_error());
    must(cairn_checkpoint(r->db, NULL), "A: checkpoint after freeing space");
    expect_state(r, "A: the live handle after freeing space");
    printf("disk_full: %s: A: when full %u later commits went in, %u were refused; the "
           "checkpoint: %s; after freeing space the same handle committed and "
           "checkpointed\n",
           g_fs, later_ok, later_fail, cmsg);
    db_close(r, "A");
    reopen_and_verify(r, "A");
    tu_rm_rf(r->dir);
    free(r);
}

/* ---- B: a checkpoint hits ENOSPC -------------------------------------------------------- */

static void scenario_checkpoint(void)
{
    struct db_run *r = calloc(1, sizeof *r);
    if (!r)
        die("out of memory");
    db_new(r, "dbB", g_seed ^ 0xb);
    for (int i = 0; i < 20; i++)
        commit_ok(r, "B: before checkpoint 1");
    cairn_checkpoint_info ci;
    must(cairn_checkpoint(r->db, &ci), "B: checkpoint 1");
    /* ~2 MB of changed pages for the next checkpoint */
    for (int i = 0; i < 40; i++)
        commit_ok(r, "B: after checkpoint 1");
    wait_quiet(r->dir);
    fill(64u << 10);

    cairn_status st = cairn_checkpoint(r->db, NULL);
    char cmsg[1024];
    snprintf(cmsg, sizeof cmsg, "%s", cairn_last_error());
    if (st != CAIRN_ENOSPC)
        die("B: a checkpoint with 64 KiB free gave %s, want CAIRN_ENOSPC: %s",
            cairn_status_name(st), cmsg);
    if (!strstr(cmsg, r->dir))
        die("B: the checkpoint's message names no file of \"%s\": %s", r->dir, cmsg);
    /* retried: fails the same way, not "disabled" */
    st = cairn_checkpoint(r->db, NULL);
    if (st != CAIRN_ENOSPC || strstr(cairn_last_error(), "disabled"))
        die("B: the second checkpoint on a full disk gave %s: %s", cairn_status_name(st),
            cairn_last_error());
    /* small commits fit in the WAL segment at hand */
    for (int i = 0; i < 3; i++)
        commit_ok(r, "B: after the failed checkpoint");
    expect_state(r, "B: the live handle after the failed checkpoint");
    db_close(r, "B: full");

    /* the previous checkpoint still opens, while the disk is still full */
    db_open(r, "B: reopen while full");
    cairn_stats s;
    must(cairn_stats_get(r->db, &s), "stats");
    if (s.recovery.checkpoint != ci.generation)
        die("B: the reopen while full loaded checkpoint %" PRIu64 ", want %" PRIu64,
            s.recovery.checkpoint, ci.generation);
    expect_state(r, "B: reopen while full");
    check_db(r, "B: reopen while full");

    unfill();
    cairn_checkpoint_info c2;
    must(cairn_checkpoint(r->db, &c2), "B: checkpoint after freeing space");
    commit_ok(r, "B: after freeing space");
    db_close(r, "B");
    db_open(r, "B: reopen");
    must(cairn_stats_get(r->db, &s), "stats");
    if (s.recovery.checkpoint != c2.generation)
        die("B: the reopen loaded checkpoint %" PRIu64 ", want %" PRIu64,
            s.recovery.checkpoint, c2.generation);
    db_close(r, "B");
    printf("disk_full: %s: B: checkpoint %" PRIu64 " with 64 KiB free: %s; reopened while "
           "full from checkpoint %" PRIu64 "; checkpoint %" PRIu64 " after freeing space\n",
           g_fs, ci.generation + 1, cmsg, ci.generation, c2.generation);
    reopen_and_verify(r, "B");
    tu_rm_rf(r->dir);
    free(r);
}

/* ---- C: creating a database on a full disk --------------------------------------------------- */

static void scenario_create(void)
{
    struct db_run *r = calloc(1, sizeof *r);
    if (!r)
        die("out of memory");
    snprintf(r->dir, sizeof r->dir, "%s/dbC", g_mnt);
    r->seed = g_seed ^ 0xc;
    /* room for the directory and the meta file, not for the first segment */
    fill(512u << 10);
    cairn_options o = db_opts();
    cairn_status st = cairn_open(r->dir, &o, &r->db);
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", cairn_last_error());
    if (st != CAIRN_ENOSPC || r->db)
        die("C: creating a database on a full disk gave %s (want CAIRN_ENOSPC): %s",
            cairn_status_name(st), msg);
    if (!strstr(msg, r->dir))
        die("C: the message names no file of \"%s\": %s", r->dir, msg);
    /* again, still full: the same, whatever the first attempt left */
    st = cairn_open(r->dir, &o, &r->db);
    if (st != CAIRN_ENOSPC || r->db)
        die("C: a second open on the full disk gave %s: %s", cairn_status_name(st),
            cairn_last_error());
    unfill();
    db_open(r, "C: after freeing space");
    must(cairn_collection_create(r->db, "v", DIM, CAIRN_METRIC_L2), "C: create collection");
    for (int i = 0; i < 5; i++)
        commit_ok(r, "C");
    db_close(r, "C");
    printf("disk_full: %s: C: creating a database on a full disk: %s; created after "
           "freeing space\n",
           g_fs, msg);
    reopen_and_verify(r, "C");
    tu_rm_rf(r->dir);
    free(r);
}

/* ---- O_DIRECT where taken, buffered where refused ------------------------------------------ */

static struct odirect direct_workload(const char *name)
{
    struct db_run *r = calloc(1, sizeof *r);
    if (!r)
        die("out of memory");
    log_clear();
    db_new(r, name, g_seed ^ 0xd);
    for (int i = 0; i < 10; i++)
        commit_ok(r, "direct");
    /* one big transaction: its WAL body goes out in whole blocks */
    for (int i = 0; i < 4; i++)
        commit_ok(r, "direct");
    must(cairn_checkpoint(r->db, NULL), "direct: checkpoint");
    commit_ok(r, "direct");
    struct odirect od = odirect_scan(r->dir);
    db_close(r, "direct");
    reopen_and_verify(r, name);
    tu_rm_rf(r->dir);
    free(r);
    return od;
}

/* ---- main ----------------------------------------------------------------------------------- */

static bool run_fs(const char *name, int (*mountfn)(char *, size_t))
{
    char why[512] = "";
    g_fs = name;
    if (mountfn(why, sizeof why) != 0) {
        printf("disk_full: %s: skipped: %s\n", name, why);
        fflush(stdout);
        return false;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    printf("disk_full: %s: mounted on %s, %" PRIu64 " KiB free\n", name, g_mnt,
           free_bytes() >> 10);
    struct odirect od = direct_workload("dbD");
    printf("disk_full: %s: O_DIRECT on %d of %d open WAL segment descriptors, %d of %d page "
           "files%s\n",
           name, od.wal_direct, od.wal, od.pages_direct, od.pages,
           log_has("uses buffered I/O") ? " (the WAL writer logged its fallback)" : "");
    /* ext4 takes O_DIRECT: the full-disk paths below are the direct ones */
    if (!strcmp(name, "ext4") && !getenv("CAIRN_WAL_BUFFERED") &&
        (od.pages == 0 || od.pages_direct != od.pages || od.wal_direct == 0))
        die("on ext4 the database's files are not opened with O_DIRECT");
    scenario_commit();
    scenario_checkpoint();
    scenario_create();
    unmount_fs();
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("disk_full: %s: passed in %.1f s\n", name,
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    fflush(stdout);
    return true;
}

static int mnt_tmpfs(char *why, size_t n)
{
    return mount_tmpfs("24m", why, n);
}

static int mnt_ext4(char *why, size_t n)
{
    return mount_ext4(64, why, n);
}

/* ramfs refuses O_DIRECT (and has no size limit: only the fallback is
 * tested there). */
static bool run_ramfs(void)
{
    char why[512] = "";
    g_fs = "ramfs";
    if (mount_ramfs(why, sizeof why) != 0) {
        printf("disk_full: ramfs: skipped: %s\n", why);
        return false;
    }
    char probe[700];
    snprintf(probe, sizeof probe, "%s/probe", g_mnt);
    int fd = open(probe, O_RDWR | O_CREAT | O_DIRECT, 0644);
    if (fd >= 0) {
        close(fd);
        unlink(probe);
        printf("disk_full: ramfs: takes O_DIRECT on this kernel: no fallback to test\n");
        unmount_fs();
        return false;
    }
    unlink(probe);
    struct odirect od = direct_workload("dbR");
    if (od.wal_direct || od.pages_direct || od.wal == 0 || od.pages == 0)
        die("on ramfs %d of %d WAL and %d of %d page file descriptors are O_DIRECT",
            od.wal_direct, od.wal, od.pages_direct, od.pages);
    if (!log_has("uses buffered I/O"))
        die("on ramfs the WAL writer did not log its fallback to buffered I/O");
    printf("disk_full: ramfs (refuses O_DIRECT): WAL and page files fell back to buffered "
           "I/O (%d WAL, %d page file descriptors, none O_DIRECT); commits, a checkpoint, "
           "reopen and cairn_check passed\n",
           od.wal, od.pages);
    unmount_fs();
    return true;
}

int main(void)
{
    g_seed = tu_seed("disk_full", 0xd15cf011ULL);
    if (tu_tmpbase(tmpbase, sizeof tmpbase, "disk_full") != 0) {
        perror("disk_full: temporary directory");
        return 1;
    }
    char why[512];
    if (enter_private_ns(why, sizeof why) != 0) {
        printf("disk_full: skipped: no private mount namespace: %s\n", why);
        tu_rm_rf(tmpbase);
        return 77;
    }
    snprintf(g_mnt, sizeof g_mnt, "%s/mnt", tmpbase);
    if (mkdir(g_mnt, 0755) != 0) {
        perror("disk_full: mkdir");
        tu_rm_rf(tmpbase);
        return 1;
    }
    cairn_set_log(log_cb, NULL, CAIRN_LOG_WARN);
    int ran = 0;
    ran += run_fs("tmpfs", mnt_tmpfs);
    ran += run_fs("ext4", mnt_ext4);
    g_fs = "ramfs";
    run_ramfs();
    cleanup();
    if (!ran) {
        printf("disk_full: skipped: no small file system could be mounted\n");
        return 77;
    }
    return 0;
}
