/*
 * ingest_sqlite.c — SQLite as a durable-ingest peer.
 *
 * Schema: points(id INTEGER PRIMARY KEY, vec BLOB, payload BLOB); the
 * vector is its 512 raw bytes, the payload its 64 bytes of JSON text.
 * journal_mode=WAL (set once, persistent), synchronous=FULL (WAL fsync'd at
 * every commit), busy_timeout=60000, default page size, cache and
 * wal_autocheckpoint (1000 pages, run by the committing connection).
 *
 * Threads: one connection per worker thread, opened with
 * SQLITE_OPEN_NOMUTEX (each is used by one thread only). One commit is
 *     BEGIN IMMEDIATE; INSERT OR REPLACE ... x n; COMMIT
 * with prepared statements. Two ways of sharing the single write lock:
 *
 *   "sqlite"     writers contend on SQLite's own lock; a writer that finds
 *                it taken sleeps in SQLite's default busy handler (1, 2, 5,
 *                10 ... ms), as any multi-connection application would.
 *   "sqlite-mx"  writers of this process take a pthread mutex around the
 *                transaction instead, so the lock is handed over without
 *                sleeping: the best SQLite can do without group commit.
 *
 * The two differ only with several threads; the harness compares cairn
 * against the better of the two.
 */
#include "ingest.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sq_state {
    char path[4200];
    int use_mutex;
    pthread_mutex_t mu;
};

struct sq_thread {
    struct sq_state *st;
    sqlite3 *db;
    sqlite3_stmt *begin, *insert, *commit, *rollback;
};

static int sq_fail(sqlite3 *db, const char *what, const char *path, char *err) {
    snprintf(err, INGEST_ERRLEN, "could not %s \"%s\": %s", what, path,
             db ? sqlite3_errmsg(db) : "out of memory");
    return -1;
}

static int sq_exec(sqlite3 *db, const char *sql, const char *path, char *err) {
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, INGEST_ERRLEN, "could not run \"%s\" on \"%s\": %s", sql,
                 path, msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static int sq_connect(const char *path, sqlite3 **out, char *err) {
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                 SQLITE_OPEN_NOMUTEX,
                             NULL);
    if (rc != SQLITE_OK) {
        sq_fail(db, "open database", path, err);
        sqlite3_close(db);
        return -1;
    }
    sqlite3_busy_timeout(db, 60000);
    if (sq_exec(db, "PRAGMA synchronous=FULL", path, err) != 0) {
        sqlite3_close(db);
        return -1;
    }
    *out = db;
    return 0;
}

static int sq_open_common(const char *dir, int use_mutex, void **state,
                          char *err) {
    struct sq_state *st = calloc(1, sizeof(*st));
    if (!st) {
        snprintf(err, INGEST_ERRLEN, "out of memory");
        return -1;
    }
    snprintf(st->path, sizeof(st->path), "%s/bench.sqlite", dir);
    st->use_mutex = use_mutex;
    pthread_mutex_init(&st->mu, NULL);
    sqlite3 *db;
    if (sq_connect(st->path, &db, err) != 0)
        goto fail;
    if (sq_exec(db, "PRAGMA journal_mode=WAL", st->path, err) != 0 ||
        sq_exec(db,
                "CREATE TABLE points(id INTEGER PRIMARY KEY, vec BLOB NOT NULL,"
                " payload BLOB)",
                st->path, err) != 0) {
        sqlite3_close(db);
        goto fail;
    }
    sqlite3_close(db);
    *state = st;
    return 0;
fail:
    pthread_mutex_destroy(&st->mu);
    free(st);
    return -1;
}

static int sq_open(const char *dir, const struct ingest_cfg *cfg, void **state,
                   char *err) {
    (void)cfg;
    return sq_open_common(dir, 0, state, err);
}

static int sq_open_mx(const char *dir, const struct ingest_cfg *cfg,
                      void **state, char *err) {
    (void)cfg;
    return sq_open_common(dir, 1, state, err);
}

static void sq_thread_close(void *tstate) {
    struct sq_thread *t = tstate;
    if (!t)
        return;
    sqlite3_finalize(t->begin);
    sqlite3_finalize(t->insert);
    sqlite3_finalize(t->commit);
    sqlite3_finalize(t->rollback);
    sqlite3_close(t->db);
    free(t);
}

static int sq_thread_open(void *state, unsigned tid, void **tstate,
                          char *err) {
    struct sq_state *st = state;
    (void)tid;
    struct sq_thread *t = calloc(1, sizeof(*t));
    if (!t) {
        snprintf(err, INGEST_ERRLEN, "out of memory");
        return -1;
    }
    t->st = st;
    if (sq_connect(st->path, &t->db, err) != 0) {
        free(t);
        return -1;
    }
    if (sqlite3_prepare_v2(t->db, "BEGIN IMMEDIATE", -1, &t->begin, NULL) ||
        sqlite3_prepare_v2(t->db,
                           "INSERT OR REPLACE INTO points(id, vec, payload)"
                           " VALUES(?1, ?2, ?3)",
                           -1, &t->insert, NULL) ||
        sqlite3_prepare_v2(t->db, "COMMIT", -1, &t->commit, NULL) ||
        sqlite3_prepare_v2(t->db, "ROLLBACK", -1, &t->rollback, NULL)) {
        sq_fail(t->db, "prepare statements on", st->path, err);
        sq_thread_close(t);
        return -1;
    }
    *tstate = t;
    return 0;
}

/* Steps a statement that returns no rows. SQLITE_BUSY after the 60 s busy
 * timeout is reported as an error like any other. */
static int sq_step(struct sq_thread *t, sqlite3_stmt *s, const char *what,
                   char *err) {
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return sq_fail(t->db, what, t->st->path, err);
    return 0;
}

static int sq_commit(void *tstate, const struct ingest_point *pts, size_t n,
                     char *err) {
    struct sq_thread *t = tstate;
    int ret = -1;
    if (t->st->use_mutex)
        pthread_mutex_lock(&t->st->mu);
    if (sq_step(t, t->begin, "begin a transaction on", err) != 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        sqlite3_bind_int64(t->insert, 1, (sqlite3_int64)pts[i].id);
        sqlite3_bind_blob(t->insert, 2, pts[i].vector, (int)INGEST_VEC_BYTES,
                          SQLITE_STATIC);
        sqlite3_bind_blob(t->insert, 3, pts[i].payload,
                          (int)INGEST_PAYLOAD_BYTES, SQLITE_STATIC);
        if (sq_step(t, t->insert, "insert into", err) != 0) {
            (void)sqlite3_step(t->rollback);
            sqlite3_reset(t->rollback);
            goto out;
        }
    }
    if (sq_step(t, t->commit, "commit on", err) != 0) {
        (void)sqlite3_step(t->rollback);
        sqlite3_reset(t->rollback);
        goto out;
    }
    ret = 0;
out:
    if (t->st->use_mutex)
        pthread_mutex_unlock(&t->st->mu);
    return ret;
}

static int sq_close(void *state, char *err) {
    struct sq_state *st = state;
    (void)err;
    pthread_mutex_destroy(&st->mu);
    free(st);
    return 0;
}

static const char *sq_version(void) { return sqlite3_libversion(); }

const struct ingest_engine ingest_engine_sqlite = {
    .name = "sqlite",
    .open = sq_open,
    .thread_open = sq_thread_open,
    .commit = sq_commit,
    .thread_close = sq_thread_close,
    .close = sq_close,
    .version = sq_version,
};

const struct ingest_engine ingest_engine_sqlite_mx = {
    .name = "sqlite-mx",
    .open = sq_open_mx,
    .thread_open = sq_thread_open,
    .commit = sq_commit,
    .thread_close = sq_thread_close,
    .close = sq_close,
    .version = sq_version,
};
