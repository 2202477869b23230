/*
 * crc32c.c — CRC-32C (Castagnoli), reflected polynomial 0x82F63B78.
 *
 * Convention (standard CRC-32C): the register starts at ~seed and the result
 * is the register xor ~0. With seed 0 this is the usual CRC-32C; passing a
 * previous result as the seed continues it over more bytes.
 *
 * Two implementations giving identical results:
 *   - crc32c_sw: slicing-by-8, eight 256-entry tables built once;
 *   - crc32c_hw: the SSE4.2 crc32 instruction, 8 bytes at a time.
 * crc32c() picks one at first use (pthread_once) and keeps it.
 */
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <nmmintrin.h>
#define CRC32C_X86 1
#endif

#include "common/crc32c.h"
#include "common/util.h"

#define CRC32C_POLY 0x82F63B78u

static uint32_t crc_tab[8][256];
static pthread_once_t crc_tab_once = PTHREAD_ONCE_INIT;

static void crc_tab_build(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (CRC32C_POLY & (0u - (c & 1u)));
        crc_tab[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++) {
            uint32_t prev = crc_tab[t - 1][i];
            crc_tab[t][i] = (prev >> 8) ^ crc_tab[0][prev & 0xFFu];
        }
}

uint32_t crc32c_sw(uint32_t crc, const void *buf, size_t n)
{
    pthread_once(&crc_tab_once, crc_tab_build);
    const unsigned char *p = buf;
    uint32_t c = ~crc;
    while (n > 0 && ((uintptr_t)p & 7u) != 0) {
        c = (c >> 8) ^ crc_tab[0][(c ^ *p++) & 0xFFu];
        n--;
    }
    while (n >= 8) {
        uint32_t lo = ld32(p) ^ c;
        uint32_t hi = ld32(p + 4);
        c = crc_tab[7][lo & 0xFFu] ^ crc_tab[6][(lo >> 8) & 0xFFu] ^
            crc_tab[5][(lo >> 16) & 0xFFu] ^ crc_tab[4][lo >> 24] ^
            crc_tab[3][hi & 0xFFu] ^ crc_tab[2][(hi >> 8) & 0xFFu] ^
            crc_tab[1][(hi >> 16) & 0xFFu] ^ crc_tab[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n > 0) {
        c = (c >> 8) ^ crc_tab[0][(c ^ *p++) & 0xFFu];
        n--;
    }
    return ~c;
}

#ifdef CRC32C_X86
__attribute__((target("sse4.2"))) uint32_t crc32c_hw(uint32_t crc, const void *buf,
                                                     size_t n)
{
    const unsigned char *p = buf;
    uint32_t c = ~crc;
    while (n > 0 && ((uintptr_t)p & 7u) != 0) {
        c = _mm_crc32_u8(c, *p++);
        n--;
    }
#if defined(__x86_64__)
    uint64_t c64 = c;
    while (n >= 8) {
        c64 = _mm_crc32_u64(c64, ld64(p));
        p += 8;
        n -= 8;
    }
    c = (uint32_t)c64;
#endif
    while (n >= 4) {
        c = _mm_crc32_u32(c, ld32(p));
        p += 4;
        n -= 4;
    }
    while (n > 0) {
        c = _mm_crc32_u8(c, *p++);
        n--;
    }
    return ~c;
}

int crc32c_hw_available(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse4.2") ? 1 : 0;
}
#else
uint32_t crc32c_hw(uint32_t crc, const void *buf, size_t n)
{
    return crc32c_sw(crc, buf, n);
}

int crc32c_hw_available(void)
{
    return 0;
}
#endif

typedef uint32_t (*crc32c_fn)(uint32_t, const void *, size_t);
static crc32c_fn crc_impl;
static pthread_once_t crc_impl_once = PTHREAD_ONCE_INIT;

static void crc_impl_choose(void)
{
    crc_impl = crc32c_hw_available() ? crc32c_hw : crc32c_sw;
}

uint32_t crc32c(uint32_t crc, const void *p, size_t n)
{
    pthread_once(&crc_impl_once, crc_impl_choose);
    return crc_impl(crc, p, n);
}
