/* cliutil.c — see cliutil.h. */
#include "cliutil.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

bool cli_parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (s == NULL || *s == '\0')
        return false;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

bool cli_parse_u32_range(const char *s, uint32_t min, uint32_t max,
                         uint32_t *out)
{
    uint64_t v;
    if (!cli_parse_u64(s, &v) || v < min || v > max)
        return false;
    *out = (uint32_t)v;
    return true;
}

static bool parse_hex(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    size_t n = 0;
    for (const char *p = s; *p; p++, n++) {
        int c = (unsigned char)*p, d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return false;
        if (n >= 16)
            return false;
        v = (v << 4) | (uint64_t)d;
    }
    if (n == 0)
        return false;
    *out = v;
    return true;
}

bool cli_parse_lsn(const char *s, uint64_t *out)
{
    if (s == NULL)
        return false;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        return parse_hex(s + 2, out);
    if (strlen(s) == 16)
        return parse_hex(s, out);
    return cli_parse_u64(s, out);
}

char *cli_fmt_lsn(char buf[CLI_LSN_LEN], uint64_t lsn)
{
    snprintf(buf, CLI_LSN_LEN, "%016llX", (unsigned long long)lsn);
    return buf;
}

char *cli_fmt_time_us(char buf[CLI_TIME_LEN], int64_t us)
{
    /* Floor division so that times before 1970 still format correctly. */
    int64_t sec = us / 1000000, frac = us % 1000000;
    if (frac < 0) {
        frac += 1000000;
        sec -= 1;
    }
    time_t t = (time_t)sec;
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL) {
        snprintf(buf, CLI_TIME_LEN, "@%lld", (long long)us);
        return buf;
    }
    size_t n = strftime(buf, CLI_TIME_LEN - 9, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, CLI_TIME_LEN - n, ".%06dZ", (int)frac);
    return buf;
}

bool cli_parse_time_us(const char *s, int64_t *out)
{
    if (s == NULL || *s == '\0')
        return false;
    if (s[0] == '@') {
        uint64_t v;
        if (!cli_parse_u64(s + 1, &v) || v > (uint64_t)INT64_MAX)
            return false;
        *out = (int64_t)v;
        return true;
    }
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (p == NULL)
        p = strptime(s, "%Y-%m-%d %H:%M:%S", &tm);
    if (p == NULL)
        return false;
    int64_t frac = 0;
    if (*p == '.') {
        int digits = 0;
        for (p++; isdigit((unsigned char)*p); p++, digits++)
            if (digits < 6)
                frac = frac * 10 + (*p - '0');
        if (digits == 0)
            return false;
        for (; digits < 6; digits++)
            frac *= 10;
    }
    if (*p == 'Z')
        p++;
    if (*p != '\0')
        return false;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return false;
    *out = (int64_t)t * 1000000 + frac;
    return true;
}

char *cli_fmt_bytes(char *buf, size_t n, uint64_t bytes)
{
    static const char *const unit[] = {"KiB", "MiB", "GiB", "TiB"};
    if (bytes < 1024) {
        snprintf(buf, n, "%llu B", (unsigned long long)bytes);
        return buf;
    }
    double v = (double)bytes / 1024.0;
    size_t u = 0;
    while (v >= 1024.0 && u + 1 < sizeof(unit) / sizeof(unit[0])) {
        v /= 1024.0;
        u++;
    }
    snprintf(buf, n, "%.1f %s", v, unit[u]);
    return buf;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    if (cp >= 0xD800 && cp <= 0xDFFF)
        return 0;
    return len;
}

void cli_json_str(FILE *f, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    fputc('"', f);
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        if (c == '"' || c == '\\') {
            fputc('\\', f);
            fputc((int)c, f);
            i++;
        } else if (c == '\n') {
            fputs("\\n", f);
            i++;
        } else if (c == '\t') {
            fputs("\\t", f);
            i++;
        } else if (c == '\r') {
            fputs("\\r", f);
            i++;
        } else if (c < 0x20 || c == 0x7F) {
            fprintf(f, "\\u%04x", c);
            i++;
        } else if (c < 0x80) {
            fputc((int)c, f);
            i++;
        } else {
            size_t len = utf8_seq(p + i, n - i);
            if (len == 0) {
                fprintf(f, "\\u%04x", c);
                i++;
            } else {
                fwrite(p + i, 1, len, f);
                i += len;
            }
        }
    }
    fputc('"', f);
}

void cli_json_float(FILE *f, double v)
{
    if (!isfinite(v))
        fputs("null", f);
    else
        fprintf(f, "%.9g", v);
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void cli_progress_init(struct cli_progress *p)
{
    memset(p, 0, sizeof(*p));
    p->enabled = isatty(STDERR_FILENO) == 1;
    p->start = cli_now();
    p->last_draw = 0;
}

void cli_progress_update(struct cli_progress *p, uint64_t points,
                         uint64_t total, uint64_t bytes, bool force)
{
    if (!p->enabled)
        return;
    double now = cli_now();
    if (!force && now - p->last_draw < 0.1)
        return;
    p->last_draw = now;
    double el = now - p->start;
    if (el <= 0)
        el = 1e-9;
    char line[160];
    int w;
    if (total > 0)
        w = snprintf(line, sizeof(line),
                     "%llu/%llu points (%.0f%%)  %.0f points/s  %.1f MB/s",
                     (unsigned long long)points, (unsigned long long)total,
                     100.0 * (double)points / (double)total,
                     (double)points / el, (double)bytes / el / 1e6);
    else
        w = snprintf(line, sizeof(line), "%llu points  %.0f points/s  %.1f MB/s",
                     (unsigned long long)points, (double)points / el,
                     (double)bytes / el / 1e6);
    if (w < 0)
        return;
    size_t width = (size_t)w < sizeof(line) ? (size_t)w : sizeof(line) - 1;
    /* Pad with blanks over the rest of a longer previous line. */
    fprintf(stderr, "\r%s%*s", line,
            p->last_width > width ? (int)(p->last_width - width) : 0, "");
    fflush(stderr);
    p->last_width = width;
}

void cli_progress_clear(struct cli_progress *p)
{
    if (!p->enabled || p->last_width == 0)
        return;
    fprintf(stderr, "\r%*s\r", (int)p->last_width, "");
    fflush(stderr);
    p->last_width = 0;
}

bool cli_parse_wal_level(const char *s, int *out)
{
    bool neg = *s == '-';
    uint32_t v;
    if (!cli_parse_u32_range(s + neg, 1, neg ? 7 : 19, &v))
        return false;
    *out = neg ? -(int)v : (int)v;
    return true;
}
