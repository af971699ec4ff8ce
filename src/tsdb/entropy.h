/* SPDX-License-Identifier: Apache-2.0
 *
 * Entropy coding of integer residuals (private to src/tsdb, included
 * through chunk_dense.h): an adaptive binary range coder with a small
 * context model for a sequence of signed 64-bit residuals, as the dense
 * chunk codec produces them (deltas of counters, jitter of gauges, mostly
 * zeros for gauges that change on some scrapes only). It codes each
 * residual close to its entropy under a model that learns the residuals'
 * magnitude distribution as it goes, where byte planes plus zstd lose a
 * bit or more per residual on skewed or sparse data. Layout:
 * docs/format/chunks.md ("Coded residuals").
 *
 * The encoder writes into a caller buffer of at least
 * tsdb_resid_bound(m) bytes. The decoder streams: one residual per call,
 * borrowing the coded bytes; it never reads outside them, and reports
 * damage it can see (raw bits or range-coded bytes that end early) as a
 * false return, never undefined behaviour; other damage decodes to wrong
 * residuals, which the chunk record's CRC catches before.
 */
#ifndef BONGSU_TSDB_ENTROPY_H
#define BONGSU_TSDB_ENTROPY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Adaptive probabilities of the model (see entropy.c): an estimate of
 * P(bit = 0) in 1/32768 and the number of bits it has seen (capped). */
#define TSDB_RESID_MANT_BITS 3 /* leading mantissa bits coded with a model */
struct tsdb_resid_prob {
    uint16_t p, n;
};
struct tsdb_resid_model {
    struct tsdb_resid_prob len[2][64];                           /* bit length, by prev == 0 */
    struct tsdb_resid_prob len64;                                /* 63 or 64 */
    struct tsdb_resid_prob sign[2];                              /* by sign of previous nonzero */
    struct tsdb_resid_prob mant[65][1u << TSDB_RESID_MANT_BITS]; /* per length, bit tree */
};

/* Estimated size, in bits, of x[0..m) coded: the empirical entropy of the
 * residuals' bit lengths and signs plus the bits below each leading one.
 * Cheap; for choosing between transforms, not exact. */
double tsdb_resid_estimate(const int64_t *x, size_t m);

/* Bytes the encoding of m residuals may take at most. */
size_t tsdb_resid_bound(size_t m);

/* Encode x[0..m) into out (room for tsdb_resid_bound(m) bytes). Returns
 * the bytes written. */
size_t tsdb_resid_encode(const int64_t *x, size_t m, uint8_t *out);

/* Streaming decoder. */
struct tsdb_resid_dec {
    const uint8_t *rc, *rc_end;   /* range-coded part */
    const uint8_t *raw, *raw_end; /* raw low bits */
    uint32_t range, code;
    uint64_t bits; /* raw bit buffer, LSB first */
    unsigned nbits;
    unsigned pad; /* zero bytes read past the end of the range-coded part */
    bool bad;     /* read past the end of a part */
    bool prev_zero, prev_neg;
    struct tsdb_resid_model m;
};

/* Start decoding the coded residuals p[0..len). False when the header is
 * damaged. */
bool tsdb_resid_dec_init(struct tsdb_resid_dec *d, const uint8_t *p, size_t len);
/* The next residual into *x; false on damage. */
bool tsdb_resid_dec_next(struct tsdb_resid_dec *d, int64_t *x);

#endif
