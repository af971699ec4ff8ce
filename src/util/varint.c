/* SPDX-License-Identifier: Apache-2.0
 *
 * Varints (unsigned LEB128, zig-zag for signed, as Go's encoding/binary
 * writes them) and big-endian fixed-width integers.
 */
#include "util/util.h"

size_t bs_put_uvarint(uint8_t *dst, uint64_t v)
{
    size_t i = 0;
    while (v >= 0x80) {
        dst[i++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    dst[i++] = (uint8_t)v;
    return i;
}

size_t bs_put_varint(uint8_t *dst, int64_t v)
{
    uint64_t u = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    return bs_put_uvarint(dst, u);
}

size_t bs_get_uvarint(const uint8_t *p, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    unsigned shift = 0;
    for (size_t i = 0; i < n && i < 10; i++) {
        uint8_t b = p[i];
        if (b < 0x80) {
            if (i == 9 && b > 1)
                return 0;   /* overflows 64 bits */
            *out = v | (uint64_t)b << shift;
            return i + 1;
        }
        v |= (uint64_t)(b & 0x7f) << shift;
        shift += 7;
    }
    return 0;   /* truncated, or more than 10 bytes */
}

size_t bs_get_varint(const uint8_t *p, size_t n, int64_t *out)
{
    uint64_t u;
    size_t r = bs_get_uvarint(p, n, &u);
    if (r)
        *out = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
    return r;
}

void bs_put_be32(uint8_t *dst, uint32_t v)
{
    dst[0] = (uint8_t)(v >> 24);
    dst[1] = (uint8_t)(v >> 16);
    dst[2] = (uint8_t)(v >> 8);
    dst[3] = (uint8_t)v;
}

uint32_t bs_get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void bs_put_be64(uint8_t *dst, uint64_t v)
{
    bs_put_be32(dst, (uint32_t)(v >> 32));
    bs_put_be32(dst + 4, (uint32_t)v);
}

uint64_t bs_get_be64(const uint8_t *p)
{
    return (uint64_t)bs_get_be32(p) << 32 | bs_get_be32(p + 4);
}
