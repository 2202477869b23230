/*
 * err.c — status names and messages (from CAIRN_ERRORS), and the calling
 * thread's detailed error message.
 *
 * The message lives in a thread-local buffer of CERR_MAX bytes; longer
 * messages are truncated (never overflowed). cairn_last_error() returns a
 * pointer into that buffer: valid until the next cerr_* call in this thread.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn.h"
#include "common/err.h"
#include "common/util.h"

static __thread char cerr_msg[CERR_MAX];

CAIRN_API const char *cairn_status_name(cairn_status s)
{
    switch (s) {
#define CAIRN_X_NAME(name, value, msg) \
    case name:                         \
        return #name;
        CAIRN_ERRORS(CAIRN_X_NAME)
#undef CAIRN_X_NAME
    default:
        return "CAIRN_UNKNOWN";
    }
}

CAIRN_API const char *cairn_strerror(cairn_status s)
{
    switch (s) {
#define CAIRN_X_MSG(name, value, msg) \
    case name:                        \
        return msg;
        CAIRN_ERRORS(CAIRN_X_MSG)
#undef CAIRN_X_MSG
    default:
        return "unknown status";
    }
}

CAIRN_API const char *cairn_last_error(void)
{
    return cerr_msg;
}

CAIRN_API const char *cairn_version(void)
{
    return CAIRN_VERSION_STRING;
}

CAIRN_API void cairn_free(void *p)
{
    free(p);
}

/*
 * Formats into a local buffer first, so that arguments may point into the
 * current message (cerr_set(st, "...: %s", cairn_last_error()) is fine),
 * then appends ": <tail>" (tail may be NULL), truncating to CERR_MAX - 1.
 */
static void cerr_compose(const char *fmt, va_list ap, const char *tail)
{
    char tmp[CERR_MAX];
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    size_t at = n < 0 ? 0 : CAIRN_MIN((size_t)n, sizeof tmp - 1);
    if (tail && at < sizeof tmp - 1) {
        size_t room = sizeof tmp - 1 - at;
        size_t len = strlen(tail);
        if (room >= 2) {
            tmp[at++] = ':';
            tmp[at++] = ' ';
            room -= 2;
            len = CAIRN_MIN(len, room);
            memcpy(tmp + at, tail, len);
            at += len;
        }
    }
    tmp[at] = '\0';
    memcpy(cerr_msg, tmp, at + 1);
}

void cerr_clear(void)
{
    cerr_msg[0] = '\0';
}

cairn_status cerr_set(cairn_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cerr_compose(fmt, ap, NULL);
    va_end(ap);
    return st;
}

cairn_status cerr_from_errno(int e)
{
    switch (e) {
    case 0:
        return CAIRN_OK;
    case ENOSPC:
    case EDQUOT:
        return CAIRN_ENOSPC;
    case ENOMEM:
        return CAIRN_ENOMEM;
    case ENOENT:
        return CAIRN_ENOTFOUND;
    case EEXIST:
        return CAIRN_EEXIST;
    default:
        return CAIRN_EIO;
    }
}

cairn_status cerr_errno(int e, const char *fmt, ...)
{
    char ebuf[128];
    const char *reason = strerror_r(e, ebuf, sizeof ebuf);
    va_list ap;
    va_start(ap, fmt);
    cerr_compose(fmt, ap, reason);
    va_end(ap);
    return cerr_from_errno(e);
}

cairn_status cerr_wrap(cairn_status st, const char *fmt, ...)
{
    char old[CERR_MAX];
    memcpy(old, cerr_msg, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    cerr_compose(fmt, ap, old[0] ? old : NULL);
    va_end(ap);
    return st;
}

void cerr_save(struct cerr_saved *s)
{
    memcpy(s->msg, cerr_msg, CERR_MAX);
}

cairn_status cerr_restore(const struct cerr_saved *s, cairn_status st)
{
    memcpy(cerr_msg, s->msg, CERR_MAX);
    cerr_msg[CERR_MAX - 1] = '\0';
    return st;
}
