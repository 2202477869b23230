/* util.h — small helpers shared by every layer. Little-endian only. */
#ifndef CAIRN_COMMON_UTIL_H
#define CAIRN_COMMON_UTIL_H

#include <stdint.h>
#include <string.h>
#include <time.h>

#define CAIRN_ALIGN_UP(x, a) (((x) + ((a) - 1)) & ~((__typeof__(x))(a) - 1))
#define CAIRN_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define CAIRN_MIN(a, b) ((a) < (b) ? (a) : (b))
#define CAIRN_MAX(a, b) ((a) > (b) ? (a) : (b))

static inline uint16_t ld16(const void *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline uint32_t ld32(const void *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint64_t ld64(const void *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static inline void st16(void *p, uint16_t v) { memcpy(p, &v, 2); }
static inline void st32(void *p, uint32_t v) { memcpy(p, &v, 4); }
static inline void st64(void *p, uint64_t v) { memcpy(p, &v, 8); }

static inline int64_t cairn_now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
static inline uint64_t cairn_mono_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* *ts = the time on clock clk, us microseconds from now (the deadline of a
 * timed wait on a condition variable using that clock). */
static inline void cairn_deadline(struct timespec *ts, clockid_t clk, uint64_t us) {
    clock_gettime(clk, ts);
    ts->tv_sec += (time_t)(us / 1000000u);
    ts->tv_nsec += (long)(us % 1000000u) * 1000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* "<dir>/<name>" in a malloc'd string; NULL when out of memory. */
char *cairn_path_join(const char *dir, const char *name);

/* 1 if s[0..n) is well-formed UTF-8 (no overlongs, no surrogates). */
int cairn_utf8_valid(const char *s, size_t n);

#endif
