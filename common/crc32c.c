/*
 * crc32c.c — CRC-32C (Castagnoli), reflected polynomial 0x82F63B78.
 *
 * Convention (standard CRC-32C): the register starts at ~seed and the result
 * is the register xor ~0. With seed 0 this is the usual CRC-32C; passing a
 * previous result as the seed continues it over more bytes.
 *
 * Three implementations giving identical results:
 *   - crc32c_sw: slicing-by-8, eight 256-entry tables built once;
 *   - crc32c_hw: the SSE4.2 crc32 instruction, 8 bytes at a time;
 *   - crc32c_hw3: the same instruction on three streams at once.
 * crc32c() picks one at first use (pthread_once) and keeps it.
 *
 * Why three streams: the crc32 instruction takes three cycles but a new
 * one can start every cycle, so one chain of them runs at a third of what
 * the unit can do. crc32c_hw3 cuts a run of 3 * B bytes into three blocks
 * A, B, C, runs A on the register and B and C on registers starting at
 * zero, in one loop, then joins them. The join is linear algebra over
 * GF(2): with R the register as a polynomial (bit i is x^(31-i)), running
 * B bytes of zeros through it gives R * x^(8B) mod P, and a CRC register
 * is linear in its start, so
 *     crc(A B) = crc(A) * x^(8B) + crc0(B)          (mod P, + is xor)
 * (crc0: started at zero). The product is one carry-less multiply
 * (PCLMULQDQ) of the 32-bit register by the constant K = x^(8B-33) mod P
 * and one crc32 of the 64-bit product, which multiplies by x^32 and
 * reduces mod P; the product's bit order (bit m of the integer is x^(62-m)
 * of R*K, read by crc32 as x^(63-m)) adds the 33rd power. K is made once,
 * by multiplying 1 by x 8B-33 times.
 */
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <nmmintrin.h>
#include <wmmintrin.h>
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

int crc32c_hw3_available(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse4.2") && __builtin_cpu_supports("pclmul") ? 1 : 0;
}

/* x^k mod P, as a register (see the top of the file). */
static uint32_t xpow_mod(uint32_t k)
{
    uint32_t r = 0x80000000u; /* 1 */
    while (k--)
        r = (r >> 1) ^ (CRC32C_POLY & (0u - (r & 1u)));
    return r;
}

/* Block sizes of the three-stream loop (bytes per stream), largest
 * first, and their join constants K = x^(8B-33) mod P. */
#define HW3_NB 2
static const uint32_t hw3_block[HW3_NB] = {1024, 128};
static uint32_t hw3_k[HW3_NB];
static pthread_once_t hw3_once = PTHREAD_ONCE_INIT;

static void hw3_init(void)
{
    for (int i = 0; i < HW3_NB; i++)
        hw3_k[i] = xpow_mod(8u * hw3_block[i] - 33u);
}

/* r * x^(8B) mod P for the block size whose constant is k. */
__attribute__((target("sse4.2,pclmul"))) static inline uint32_t hw3_shift(uint32_t r,
                                                                          uint32_t k)
{
    __m128i p = _mm_clmulepi64_si128(_mm_cvtsi32_si128((int)r), _mm_cvtsi32_si128((int)k), 0);
    return (uint32_t)_mm_crc32_u64(0, (uint64_t)_mm_cvtsi128_si64(p));
}

__attribute__((target("sse4.2,pclmul"))) uint32_t crc32c_hw3(uint32_t crc, const void *buf,
                                                             size_t n)
{
    pthread_once(&hw3_once, hw3_init);
    const unsigned char *p = buf;
    uint32_t c = ~crc;
    while (n > 0 && ((uintptr_t)p & 7u) != 0) {
        c = _mm_crc32_u8(c, *p++);
        n--;
    }
    for (int b = 0; b < HW3_NB; b++) {
        const size_t blk = hw3_block[b];
        while (n >= 3 * blk) {
            uint64_t a = c, x = 0, y = 0;
            for (size_t i = 0; i < blk; i += 8) {
                a = _mm_crc32_u64(a, ld64(p + i));
                x = _mm_crc32_u64(x, ld64(p + blk + i));
                y = _mm_crc32_u64(y, ld64(p + 2 * blk + i));
            }
            c = hw3_shift((uint32_t)a, hw3_k[b]) ^ (uint32_t)x;
            c = hw3_shift(c, hw3_k[b]) ^ (uint32_t)y;
            p += 3 * blk;
            n -= 3 * blk;
        }
    }
    return crc32c_hw(~c, p, n);
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

uint32_t crc32c_hw3(uint32_t crc, const void *buf, size_t n)
{
    return crc32c_sw(crc, buf, n);
}

int crc32c_hw3_available(void)
{
    return 0;
}
#endif

typedef uint32_t (*crc32c_fn)(uint32_t, const void *, size_t);
static crc32c_fn crc_impl;
static pthread_once_t crc_impl_once = PTHREAD_ONCE_INIT;

static void crc_impl_choose(void)
{
    crc_impl = crc32c_hw3_available() ? crc32c_hw3
               : crc32c_hw_available() ? crc32c_hw
                                       : crc32c_sw;
}

uint32_t crc32c(uint32_t crc, const void *p, size_t n)
{
    pthread_once(&crc_impl_once, crc_impl_choose);
    return crc_impl(crc, p, n);
}
