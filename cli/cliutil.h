/*
 * cliutil.h — small helpers shared by the `cairn` data tool and `pitrctl`:
 * strict number parsing, LSN and time formatting, JSON string output, and
 * the terminal progress line. Nothing here calls into libcairn.
 *
 * Conventions of both tools:
 *   exit 0  success
 *   exit 1  the operation failed (message on stderr: "<tool>: <message>")
 *   exit 2  usage error (message and usage text on stderr)
 *
 * LSNs are printed as 16 upper-case hex digits ("%016llX", the same digits
 * as WAL segment names). LSN arguments accept "0x..." or exactly 16 hex
 * digits as hex, anything else as decimal.
 */
#ifndef CAIRN_CLI_CLIUTIL_H
#define CAIRN_CLI_CLIUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#if defined(__GNUC__)
#define CLI_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define CLI_PRINTF(a, b)
#endif

#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2

/* Decimal unsigned integer, whole string, no sign, no overflow. */
bool cli_parse_u64(const char *s, uint64_t *out);
/* As cli_parse_u64, and the value must lie in [min, max]. */
bool cli_parse_u32_range(const char *s, uint32_t min, uint32_t max,
                         uint32_t *out);
/* A WAL compression level: a decimal integer in -7..-1 or 1..19, whole
 * string. */
bool cli_parse_wal_level(const char *s, int *out);
/* "0x1F40", "0000000000001F40" (16 hex digits) or "8000". */
bool cli_parse_lsn(const char *s, uint64_t *out);

/* 16 upper-case hex digits and a NUL. */
#define CLI_LSN_LEN 17
char *cli_fmt_lsn(char buf[CLI_LSN_LEN], uint64_t lsn);
/* ISO 8601 UTC with microseconds: "2024-05-01T12:34:56.123456Z". */
#define CLI_TIME_LEN 48
char *cli_fmt_time_us(char buf[CLI_TIME_LEN], int64_t us);
/* The inverse, in UTC: "2024-05-01T12:34:56[.123456][Z]" (a space may
 * replace the T), or "@<microseconds since the epoch>". */
bool cli_parse_time_us(const char *s, int64_t *out);
/* "12345678 (11.8 MiB)"-style human size; returns buf. */
char *cli_fmt_bytes(char *buf, size_t n, uint64_t bytes);

/* Writes s[0..n) as a JSON string literal (quotes included). Bytes that are
 * not valid UTF-8 are written as \u00XX of the byte (latin-1 reading), so
 * the output is always valid JSON. */
void cli_json_str(FILE *f, const char *s, size_t n);
/* A float as a JSON number ("%.9g", round-trips); null if not finite. */
void cli_json_float(FILE *f, double v);

/* Monotonic clock in seconds. */
double cli_now(void);

/* Progress line on stderr, only when stderr is a terminal; redrawn in place
 * with '\r' at most 10 times a second. */
struct cli_progress {
    bool enabled;
    double start;
    double last_draw;
    size_t last_width;
};
void cli_progress_init(struct cli_progress *p);
/* total: 0 when unknown. force: draw even if drawn less than 0.1 s ago. */
void cli_progress_update(struct cli_progress *p, uint64_t points,
                         uint64_t total, uint64_t bytes, bool force);
/* Erases the line (so that a summary can follow). */
void cli_progress_clear(struct cli_progress *p);

#endif
