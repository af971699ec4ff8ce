/* SPDX-License-Identifier: Apache-2.0
 *
 * The dense chunk codec (private to src/tsdb and its unit tests, included
 * through tsdb_int.h): a lossless encoding of one long run of samples of one
 * series, written at compaction time, when a whole block's worth of samples
 * (thousands) is known at once. Timestamps are stored as residuals against
 * a regular grid, values as scaled integers where that is exact (integers,
 * decimals k/10^d), as one constant, as their bit patterns read as integers,
 * or Gorilla-XOR otherwise; special values are kept in a short exception
 * list; integer residuals are entropy coded (entropy.h) or stored as byte
 * planes, and each section is zstd-compressed when that is smaller.
 * Layout: docs/format/chunks.md ("Dense chunks").
 *
 * Unlike XOR chunks, dense chunks are encoded in one call from arrays (no
 * appending) and decoded through an iterator that owns a scratch buffer, so
 * every initialised decoder must be finished with tsdb_dense_dec_fini.
 */
#ifndef BONGSU_TSDB_CHUNK_DENSE_H
#define BONGSU_TSDB_CHUNK_DENSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tsdb/entropy.h"

#define TSDB_CHUNK_ENC_DENSE 2
/* A dense chunk without its own time section: it names (tref, a chunk
 * reference in the same block) a TSDB_CHUNK_ENC_DENSE chunk with the very
 * same timestamps and uses that chunk's time section. Written by block
 * merges for the series of one scrape target, which share every scrape
 * timestamp. */
#define TSDB_CHUNK_ENC_DENSE_ST 3
/* Most samples one dense chunk may hold; decoders report more as corrupt. */
#define TSDB_DENSE_MAX_SAMPLES (UINT32_C(1) << 22)
/* Largest decimal scale d tried for values k / 10^d. */
#define TSDB_DENSE_MAX_SCALE 12
/* zstd level used when the caller passes 0. */
#define TSDB_DENSE_DEFAULT_LEVEL 9

/* Encoder scratch: zstd context and work arrays, reused across calls. Not
 * thread-safe; use one per thread. */
struct tsdb_dense_enc;

/* A new encoder compressing at zstd level `level` (1..22; 0 means
 * TSDB_DENSE_DEFAULT_LEVEL). NULL when out of memory. */
struct tsdb_dense_enc *tsdb_dense_enc_new(int level);
void tsdb_dense_enc_free(struct tsdb_dense_enc *e);

/* Encode n samples: ts[i] the times (the codec round-trips any int64
 * sequence; callers pass ascending times so that seek works) and vs[i] the
 * float64 bit patterns, all borrowed. e may be NULL (a temporary encoder is
 * used). On success *out is a malloc'd chunk of *out_len bytes that the
 * caller frees. Returns 0, BS_EINVAL (n is 0 or above
 * TSDB_DENSE_MAX_SAMPLES) or BS_ENOMEM. */
int tsdb_dense_encode(struct tsdb_dense_enc *e, const int64_t *ts, const uint64_t *vs, size_t n,
                      uint8_t **out, size_t *out_len);

/* As tsdb_dense_encode, but the chunk (TSDB_CHUNK_ENC_DENSE_ST) stores tref
 * instead of a time section. The caller guarantees that tref addresses a
 * TSDB_CHUNK_ENC_DENSE chunk whose times are exactly ts[0..n) (see
 * tsdb_dense_time_equal); the codec cannot check it here, decoders check
 * that n and the first time agree. */
int tsdb_dense_encode_shared(struct tsdb_dense_enc *e, const int64_t *ts, const uint64_t *vs,
                             size_t n, uint64_t tref, uint8_t **out, size_t *out_len);

/* Read the sample count and first time of the chunk p[0..len) (either
 * dense encoding) without decoding it. Returns 0 or BS_ECORRUPT. OUT: *n,
 * *t0 (either may be NULL). */
int tsdb_dense_peek(const uint8_t *p, size_t len, uint32_t *n, int64_t *t0);

/* The time-column reference of the TSDB_CHUNK_ENC_DENSE_ST chunk
 * p[0..len). Returns 0 or BS_ECORRUPT. OUT: *tref. */
int tsdb_dense_shared_ref(const uint8_t *p, size_t len, uint64_t *tref);

/* Length of the leading part of the TSDB_CHUNK_ENC_DENSE chunk p[0..len)
 * that holds its times (header and time section): that prefix alone is
 * enough for tsdb_dense_time_equal and as tp for the shared decoders.
 * Returns 0 or BS_ECORRUPT. OUT: *prefix_len. */
int tsdb_dense_time_prefix(const uint8_t *p, size_t len, size_t *prefix_len);

/* Are the times of the TSDB_CHUNK_ENC_DENSE chunk (or time prefix)
 * p[0..len) exactly ts[0..n) (n >= 1)? Returns 0 with *eq set,
 * BS_ECORRUPT or BS_ENOMEM (*eq false). */
int tsdb_dense_time_equal(const uint8_t *p, size_t len, const int64_t *ts, size_t n, bool *eq);

/* Streaming decoder over a dense chunk. The chunk bytes are borrowed and
 * must outlive the decoder; sections that were compressed are inflated into
 * a buffer the decoder owns. After next() or seek() returned true, t and v
 * hold the sample (v as bits). */
struct tsdb_dense_dec {
    uint8_t *owned; /* inflated sections, or NULL */
    uint32_t n;     /* samples in the chunk */
    uint32_t i;     /* samples returned so far */
    int err;        /* 0, or BS_ECORRUPT / BS_ENOMEM once next() failed */
    int64_t t;
    uint64_t v;

    /* time: t = g + step + residual; the grid point g re-anchors on t when
     * |residual| > r */
    const uint8_t *tplanes;
    uint8_t tw; /* bytes per residual (planes) */
    uint64_t step, r, g;

    /* values */
    uint8_t mode, xform, scale, vw;
    const uint8_t *vplanes;
    const uint8_t *vmap;     /* sparse planes: bitmap of nonzero residuals, or NULL */
    struct tsdb_resid_dec *vrd; /* coded residuals: owned decoder, or NULL */
    uint32_t vstride, vnext; /* plane length; next nonzero residual (sparse) */
    uint64_t k, dl, gcd, cbits;
    const uint8_t *exc, *exc_end; /* exception list cursor */
    uint32_t exc_left;
    uint64_t exc_base;          /* index after the last exception read */
    uint64_t exc_idx, exc_bits; /* next exception, when exc_left > 0 */

    /* XOR values */
    const uint8_t *xp;
    size_t xnbits, xpos;
    uint8_t lead, trail;
};

/* Start decoding p[0..len). Returns 0; BS_ECORRUPT when the header or a
 * section is damaged (sample data is checked while iterating);
 * BS_ENOMEM. On failure the decoder yields no sample, and fini is still
 * allowed. */
int tsdb_dense_dec_init(struct tsdb_dense_dec *d, const uint8_t *p, size_t len);
/* Move to the next sample; false at the end or on corruption (d->err set). */
/* Start decoding the TSDB_CHUNK_ENC_DENSE_ST chunk p[0..len) whose time
 * column is that of the TSDB_CHUNK_ENC_DENSE chunk (or time prefix)
 * tp[0..tlen), both borrowed for the decoder's life (the block reader
 * resolves the reference: tsdb_block_dense_init). Returns as
 * tsdb_dense_dec_init; a time chunk whose sample count or first time
 * differs from the chunk's is BS_ECORRUPT, and so is tp == NULL. */
int tsdb_dense_dec_init_shared(struct tsdb_dense_dec *d, const uint8_t *p, size_t len,
                               const uint8_t *tp, size_t tlen);
bool tsdb_dense_dec_next(struct tsdb_dense_dec *d);
/* Move to the first sample with time >= t, never backwards: when the
 * current sample already qualifies it stays. False when there is none
 * (or on corruption, d->err set). */
bool tsdb_dense_dec_seek(struct tsdb_dense_dec *d, int64_t t);
void tsdb_dense_dec_fini(struct tsdb_dense_dec *d);

/* Decode the whole chunk into caller arrays of room for cap samples.
 * Returns 0 with *n set, BS_ECORRUPT, BS_ENOMEM, or BS_ELIMIT when the
 * chunk holds more than cap samples (*n then tells how many). */
int tsdb_dense_decode(const uint8_t *p, size_t len, int64_t *ts, uint64_t *vs, size_t cap,
                      size_t *n);
/* The same for a TSDB_CHUNK_ENC_DENSE_ST chunk with time chunk tp[0..tlen). */
int tsdb_dense_decode_shared(const uint8_t *p, size_t len, const uint8_t *tp, size_t tlen,
                             int64_t *ts, uint64_t *vs, size_t cap, size_t *n);

#endif
