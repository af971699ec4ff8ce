/* SPDX-License-Identifier: Apache-2.0
 *
 * gzip request bodies (Content-Encoding: gzip) for the Pushgateway API and
 * the line protocol, with zlib. The output grows by doubling up to the cap
 * the caller gives, so a small body built to expand hits the cap, not the
 * heap.
 */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "ingest/push_int.h"

int ingest_gunzip(const void *in, size_t len, size_t max, char **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)
        return BS_ENOMEM;
    size_t cap = len * 4 + 1024;
    if (max && cap > max + 1)
        cap = max + 1;
    char *buf = malloc(cap + 1);
    if (!buf) {
        inflateEnd(&zs);
        return BS_ENOMEM;
    }
    const unsigned char *src = in;
    size_t src_left = len, used = 0;
    int rc = 0;
    for (;;) {
        if (used == cap) {
            if (max && cap > max) {
                rc = BS_ELIMIT;
                break;
            }
            size_t ncap = cap * 2;
            if (max && ncap > max + 1)
                ncap = max + 1;
            char *nb = realloc(buf, ncap + 1);
            if (!nb) {
                rc = BS_ENOMEM;
                break;
            }
            buf = nb;
            cap = ncap;
        }
        uInt in_chunk = src_left > 1u << 30 ? 1u << 30 : (uInt)src_left;
        uInt out_chunk = cap - used > 1u << 30 ? 1u << 30 : (uInt)(cap - used);
        zs.next_in = (Bytef *)(uintptr_t)src;
        zs.avail_in = in_chunk;
        zs.next_out = (Bytef *)buf + used;
        zs.avail_out = out_chunk;
        int zr = inflate(&zs, Z_NO_FLUSH);
        src += in_chunk - zs.avail_in;
        src_left -= in_chunk - zs.avail_in;
        used += out_chunk - zs.avail_out;
        if (max && used > max) {
            rc = BS_ELIMIT;
            break;
        }
        if (zr == Z_STREAM_END) {
            /* Concatenated members are valid gzip; anything else after the
             * end is not. */
            if (src_left == 0)
                break;
            if (inflateReset(&zs) != Z_OK) {
                rc = BS_EPARSE;
                break;
            }
            continue;
        }
        if (zr == Z_MEM_ERROR) {
            rc = BS_ENOMEM;
            break;
        }
        if (zr != Z_OK && !(zr == Z_BUF_ERROR && used == cap)) {
            rc = BS_EPARSE;
            break;
        }
        if (src_left == 0 && zs.avail_out != 0 && zr != Z_OK) {
            rc = BS_EPARSE;
            break;
        }
        if (src_left == 0 && zs.avail_in == 0 && used < cap && zr == Z_OK) {
            /* All input consumed, room left, and no stream end: truncated. */
            rc = BS_EPARSE;
            break;
        }
    }
    inflateEnd(&zs);
    if (rc) {
        free(buf);
        return rc;
    }
    buf[used] = '\0';
    *out = buf;
    *out_len = used;
    return 0;
}
