/*
 * log.c — process-wide log sink behind cairn_set_log().
 *
 * The sink (fn, ctx, min_level) is guarded by one mutex, held while the sink
 * is called: once cairn_set_log() returns, the previous fn is never called
 * again, so its ctx may be freed. Consequence: a log callback must not call
 * cairn_set_log() (it would deadlock) and should be quick. min_level is also
 * kept in an atomic so that filtered messages are not even formatted.
 *
 * Default sink (fn NULL): stderr, "cairn: <level>: <message>\n", WARN and up.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

#include "cairn.h"
#include "common/log.h"

static pthread_mutex_t clog_mu = PTHREAD_MUTEX_INITIALIZER;
static cairn_log_fn clog_fn;
static void *clog_ctx;
static int clog_min = CAIRN_LOG_WARN; /* read with __atomic, written under clog_mu */

static const char *clog_level_name(cairn_log_level level)
{
    switch (level) {
    case CAIRN_LOG_DEBUG:
        return "debug";
    case CAIRN_LOG_INFO:
        return "info";
    case CAIRN_LOG_WARN:
        return "warning";
    case CAIRN_LOG_ERROR:
        return "error";
    }
    return "log";
}

CAIRN_API void cairn_set_log(cairn_log_fn fn, void *ctx, cairn_log_level min_level)
{
    pthread_mutex_lock(&clog_mu);
    clog_fn = fn;
    clog_ctx = fn ? ctx : NULL;
    __atomic_store_n(&clog_min, (int)min_level, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&clog_mu);
}

void clog_msg(cairn_log_level level, const char *fmt, ...)
{
    if ((int)level < __atomic_load_n(&clog_min, __ATOMIC_ACQUIRE))
        return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);

    pthread_mutex_lock(&clog_mu);
    if ((int)level >= clog_min) {
        if (clog_fn)
            clog_fn(clog_ctx, level, buf);
        else
            fprintf(stderr, "cairn: %s: %s\n", clog_level_name(level), buf);
    }
    pthread_mutex_unlock(&clog_mu);
}
