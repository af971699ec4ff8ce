/* SPDX-License-Identifier: Apache-2.0
 *
 * Fuzz target for the block tombstones file reader (tsdb_tombs_decode,
 * docs/format/tombstones.md). Corpus: fuzz/corpus/tombstones/.
 *
 * Input: one flag byte, then the file. With bit 0 of the flag set the
 * correct CRC32C is appended to the file (as tsdb_tombs_write does), so
 * that the fuzzer reaches the entry parser past the checksum; with it
 * clear the file is decoded as it is.
 *
 * Checked: decode returns 0 or BS_ECORRUPT (then with a message and no
 * set); an accepted set has sorted, disjoint, non-adjacent intervals; and
 * it encodes to a file that decodes to the same set and encodes to the
 * same bytes again (what the reader accepts is what the writer writes).
 *
 * Seeds: files as tsdb_tombs_encode writes them (empty, one series, many
 * series, intervals at the ends of the int64 range), with and without
 * their checksum, and truncated or edited variants.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tsdb/tombstones.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_set(const struct tsdb_tombs *t)
{
    uint64_t *ids;
    size_t n;
    if (tsdb_tombs_ids(t, &ids, &n) != 0)
        return;
    for (size_t i = 0; i < n; i++) {
        const struct tsdb_intervals *iv = tsdb_tombs_get(t, ids[i]);
        if (!iv || iv->n == 0)
            abort();
        for (size_t j = 0; j < iv->n; j++) {
            if (iv->v[j].mint > iv->v[j].maxt)
                abort();
            if (j > 0 && iv->v[j - 1].maxt >= iv->v[j].mint - 1)
                abort();
        }
    }
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1u << 20))
        return 0;
    bool fix_crc = data[0] & 1;
    size_t len = size - 1;
    uint8_t *buf = malloc(len + 4);
    if (!buf)
        return 0;
    memcpy(buf, data + 1, len);
    if (fix_crc) {
        bs_put_be32(buf + len, bs_crc32c(0, buf, len));
        len += 4;
    }
    struct tsdb_tombs *t = NULL;
    char why[160] = "";
    int rc = tsdb_tombs_decode(buf, len, &t, why, sizeof(why));
    if (rc != 0 && rc != BS_ECORRUPT && rc != BS_ENOMEM)
        abort();
    if (rc == BS_ECORRUPT && (t != NULL || why[0] == '\0'))
        abort();
    if (rc == 0) {
        check_set(t);
        uint8_t *e1, *e2;
        size_t l1, l2;
        if (tsdb_tombs_encode(t, &e1, &l1) == 0) {
            struct tsdb_tombs *t2 = NULL;
            if (tsdb_tombs_decode(e1, l1, &t2, NULL, 0) != 0)
                abort();
            if (tsdb_tombs_count(t2) != tsdb_tombs_count(t))
                abort();
            if (tsdb_tombs_encode(t2, &e2, &l2) == 0) {
                if (l1 != l2 || memcmp(e1, e2, l1) != 0)
                    abort();
                free(e2);
            }
            tsdb_tombs_free(t2);
            free(e1);
        }
    }
    tsdb_tombs_free(t);
    free(buf);
    return 0;
}
