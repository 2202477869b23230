/* log.h — process-wide logging behind cairn_set_log(). */
#ifndef CAIRN_COMMON_LOG_H
#define CAIRN_COMMON_LOG_H

#include "cairn.h"
#include "common/err.h"

void clog_msg(cairn_log_level level, const char *fmt, ...) CAIRN_PRINTF(2, 3);
#define clog_debug(...) clog_msg(CAIRN_LOG_DEBUG, __VA_ARGS__)
#define clog_info(...) clog_msg(CAIRN_LOG_INFO, __VA_ARGS__)
#define clog_warn(...) clog_msg(CAIRN_LOG_WARN, __VA_ARGS__)
#define clog_error(...) clog_msg(CAIRN_LOG_ERROR, __VA_ARGS__)

#endif
