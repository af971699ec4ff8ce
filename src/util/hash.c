/* SPDX-License-Identifier: Apache-2.0
 *
 * 64-bit hashing with XXH3 (xxhash inlined for speed; the result is the
 * same as libxxhash's XXH3_64bits).
 */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "util/util.h"

uint64_t bs_hash64(const void *p, size_t n)
{
    return XXH3_64bits(p, n);
}
