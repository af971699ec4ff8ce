/* SPDX-License-Identifier: Apache-2.0
 *
 * CRC32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of WAL
 * records, chunks and index sections. Two implementations with one result:
 * the SSE4.2 crc32 instruction when the CPU has it, and a slicing-by-8 table
 * walk everywhere else. Chaining works: crc(crc(0, a), b) == crc(0, a||b).
 */
#include <pthread.h>
#include <string.h>

#include "util/util_int.h"

#define CRC32C_POLY 0x82F63B78u

static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_table_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = crc_table[0][i];
        for (int t = 1; t < 8; t++) {
            c = crc_table[0][c & 0xff] ^ (c >> 8);
            crc_table[t][i] = c;
        }
    }
}

uint32_t bs_crc32c_sw(uint32_t crc, const void *p, size_t n)
{
    const unsigned char *s = p;
    uint32_t c = ~crc;

    pthread_once(&crc_once, crc_table_init);
    while (n && ((uintptr_t)s & 7)) {
        c = crc_table[0][(c ^ *s++) & 0xff] ^ (c >> 8);
        n--;
    }
    while (n >= 8) {
        uint32_t lo, hi;
        memcpy(&lo, s, 4);
        memcpy(&hi, s + 4, 4);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        lo = __builtin_bswap32(lo);
        hi = __builtin_bswap32(hi);
#endif
        lo ^= c;
        c = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
            crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^
            crc_table[3][hi & 0xff] ^ crc_table[2][(hi >> 8) & 0xff] ^
            crc_table[1][(hi >> 16) & 0xff] ^ crc_table[0][hi >> 24];
        s += 8;
        n -= 8;
    }
    while (n--)
        c = crc_table[0][(c ^ *s++) & 0xff] ^ (c >> 8);
    return ~c;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <nmmintrin.h>

__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t c = ~crc;

    while (n && ((uintptr_t)s & 7)) {
        c = _mm_crc32_u8((uint32_t)c, *s++);
        n--;
    }
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        c = _mm_crc32_u64(c, w);
        s += 8;
        n -= 8;
    }
    while (n--)
        c = _mm_crc32_u8((uint32_t)c, *s++);
    return ~(uint32_t)c;
}

static int have_sse42 = -1;   /* -1 unknown; a benign race, every writer stores the same */

uint32_t bs_crc32c(uint32_t crc, const void *p, size_t n)
{
    int h = __atomic_load_n(&have_sse42, __ATOMIC_RELAXED);
    if (h < 0) {
        __builtin_cpu_init();
        h = __builtin_cpu_supports("sse4.2") ? 1 : 0;
        __atomic_store_n(&have_sse42, h, __ATOMIC_RELAXED);
    }
    return h ? crc32c_hw(crc, p, n) : bs_crc32c_sw(crc, p, n);
}
#else
uint32_t bs_crc32c(uint32_t crc, const void *p, size_t n)
{
    return bs_crc32c_sw(crc, p, n);
}
#endif
