/*
 * crc32c.h — CRC-32C (Castagnoli, reflected polynomial 0x82F63B78).
 *
 * crc32c(seed, p, n) continues a running CRC: crc32c(crc32c(s, a), b) equals
 * the CRC of a followed by b. The seed 0 gives the standard CRC-32C
 * (check value of "123456789" is 0xE3069283). SSE4.2 is used when the CPU has
 * it (on three streams at once with PCLMULQDQ), a slicing-by-8 table
 * otherwise (chosen once at first use); all give identical results.
 */
#ifndef CAIRN_COMMON_CRC32C_H
#define CAIRN_COMMON_CRC32C_H

#include <stddef.h>
#include <stdint.h>

uint32_t crc32c(uint32_t crc, const void *p, size_t n);
/* The implementations, for tests and benchmarks. */
uint32_t crc32c_sw(uint32_t crc, const void *p, size_t n);
uint32_t crc32c_hw(uint32_t crc, const void *p, size_t n); /* needs SSE4.2 */
int crc32c_hw_available(void);
uint32_t crc32c_hw3(uint32_t crc, const void *p, size_t n); /* SSE4.2 and PCLMULQDQ */
int crc32c_hw3_available(void);

#endif
