/* SPDX-License-Identifier: Apache-2.0
 *
 * util internals: pieces of util that only util's own files and its unit
 * tests see. Other modules include util/util.h only.
 */
#ifndef BONGSU_UTIL_INT_H
#define BONGSU_UTIL_INT_H

#include "util/util.h"

/* Portable table-driven CRC32C (slicing-by-8); bs_crc32c() uses the SSE4.2
 * instruction instead when the CPU has it. Same contract as bs_crc32c(). */
uint32_t bs_crc32c_sw(uint32_t crc, const void *p, size_t n);

/* Days since 1970-01-01 of a proleptic Gregorian civil date. */
int64_t bs_days_from_civil(int64_t y, unsigned m, unsigned d);

#endif
