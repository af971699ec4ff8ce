/* SPDX-License-Identifier: Apache-2.0
 *
 * Fuzz target for the dense chunk decoders (chunk_dense.c), plain and with
 * a shared time column. The first input byte picks the path: bit 0 clear,
 * the rest is one TSDB_CHUNK_ENC_DENSE chunk; bit 0 set, the next two bytes
 * (big-endian, modulo the remaining length) split the rest into a
 * TSDB_CHUNK_ENC_DENSE_ST chunk and the dense chunk that holds its time
 * column. Each part is copied into an allocation of exactly its size, so
 * any read past the end is a sanitizer error. Every decoder entry point
 * runs: peek, the iterator (next and seek), whole-chunk decode, the time
 * prefix and the time equality check. Damage must come back as an error
 * code; the target never checks values (there is no reference for them)
 * except that the iterator and the whole-chunk decode agree.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tsdb/tsdb_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CAP 4096 /* samples decoded into arrays at most */

static uint8_t *dup_exact(const uint8_t *p, size_t n)
{
    uint8_t *c = malloc(n ? n : 1);
    if (c && n)
        memcpy(c, p, n);
    return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    bool shared = data[0] & 1;
    const uint8_t *rest = data + 1;
    size_t rlen = size - 1, clen = rlen;
    if (shared) {
        if (rlen < 2)
            return 0;
        size_t k = ((size_t)rest[0] << 8) | rest[1];
        rest += 2;
        rlen -= 2;
        clen = rlen ? k % (rlen + 1) : 0;
    }
    uint8_t *p = dup_exact(rest, clen);
    uint8_t *tp = shared ? dup_exact(rest + clen, rlen - clen) : NULL;
    size_t tlen = shared ? rlen - clen : 0;
    if (!p || (shared && !tp))
        goto out;

    uint32_t n = 0;
    int64_t t0;
    (void)tsdb_dense_peek(p, clen, &n, &t0);
    uint64_t tref;
    (void)tsdb_dense_shared_ref(p, clen, &tref);
    size_t pl;
    if (tsdb_dense_time_prefix(shared ? tp : p, shared ? tlen : clen, &pl) == 0 &&
        pl > (shared ? tlen : clen))
        abort();

    /* iterator, then whole decode: they must agree */
    static int64_t ts[CAP], ts2[CAP];
    static uint64_t vs[CAP], vs2[CAP];
    struct tsdb_dense_dec d;
    int rc = shared ? tsdb_dense_dec_init_shared(&d, p, clen, tp, tlen)
                    : tsdb_dense_dec_init(&d, p, clen);
    size_t got = 0;
    if (rc == 0) {
        while (got < CAP && tsdb_dense_dec_next(&d)) {
            ts[got] = d.t;
            vs[got] = d.v;
            got++;
        }
    }
    bool complete = rc == 0 && d.err == 0 && got == d.n;
    tsdb_dense_dec_fini(&d);
    size_t got2 = 0;
    int rc2 = shared ? tsdb_dense_decode_shared(p, clen, tp, tlen, ts2, vs2, CAP, &got2)
                     : tsdb_dense_decode(p, clen, ts2, vs2, CAP, &got2);
    if (complete && (rc2 != 0 || got2 != got || memcmp(ts, ts2, got * sizeof(*ts)) != 0 ||
                     memcmp(vs, vs2, got * sizeof(*vs)) != 0))
        abort();
    if (complete && got > 0) {
        /* the decoded times match the time column they came from */
        bool eq = false;
        const uint8_t *col = shared ? tp : p;
        size_t collen = shared ? tlen : clen;
        if (tsdb_dense_time_equal(col, collen, ts, got, &eq) != 0 || !eq)
            abort();
        /* seek to the middle sample's time lands on a sample at or after it */
        rc = shared ? tsdb_dense_dec_init_shared(&d, p, clen, tp, tlen)
                    : tsdb_dense_dec_init(&d, p, clen);
        if (rc == 0 && tsdb_dense_dec_seek(&d, ts[got / 2]) && d.t < ts[got / 2])
            abort();
        tsdb_dense_dec_fini(&d);
    }
out:
    free(p);
    free(tp);
    return 0;
}
