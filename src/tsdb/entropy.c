/* SPDX-License-Identifier: Apache-2.0
 *
 * Entropy coding of integer residuals: an adaptive binary range coder and
 * the model the dense chunk codec uses it with. The layout is in
 * docs/format/chunks.md ("Coded residuals"); this comment explains the
 * choices.
 *
 * Why. The dense codec first used byte planes and zstd: each byte of the
 * residuals coded by its own Huffman table. That is close to the entropy
 * for uniform low bytes, but a Huffman code cannot spend less than one bit
 * on a byte, and splitting a residual into bytes forgets that the high
 * byte tells what the low byte can be. On node_exporter-like data that
 * cost 10-60% above the residuals' entropy (memory gauges that change on
 * some scrapes, filesystem gauges, byte counters with noisy increments).
 *
 * The model. A residual x is split into its bit length L (0 for x == 0,
 * else 1 + the index of the highest set bit of |x|), its sign, and the
 * L - 1 bits below the leading one. L is coded with an adaptive bit tree
 * (6 binary decisions, a seventh only to tell 64 from 63) in one of two
 * contexts, "previous residual was 0" or not, so a gauge that changes in
 * bursts is coded as bursts. The sign
 * has one adaptive probability per sign of the previous nonzero residual
 * (delta-of-delta residuals alternate). The top TSDB_RESID_MANT_BITS
 * mantissa bits get a bit tree per length (they carry the shape of the
 * distribution within an octave); the bits below them are as good as
 * uniform and go, unmodelled, to a separate raw bit stream that the
 * decoder takes with shifts: at most 11 modelled decisions per residual
 * (usually 10), whatever its size. Decoding costs about 50-70 ns per
 * residual, a few times Gorilla's; it is paid only by queries over
 * compacted blocks.
 *
 * The coder. Carry-less range coding with a 32-bit range and a byte cache
 * (the scheme of LZMA's range coder, written for this file): probabilities
 * are 15-bit estimates of P(bit = 0), moved 1/32 of the way towards each
 * coded bit (15 rather than LZMA's 11 bits: a decision that always goes
 * the same way then costs 0.0014 bits instead of 0.02, which matters for
 * the seven length decisions of a residual that is almost always 0). The stream is ended by choosing, within the final interval,
 * the value with the most trailing zero bytes and dropping up to 4 of them;
 * the decoder reads zeros past the end (at most 4; more means damage). Its
 * first byte, always 0, is not stored either.
 */
#include <math.h>
#include <string.h>

#include "tsdb/entropy.h"
#include "util/util.h"

#define PROB_BITS 15
#define PROB_ONE (1u << PROB_BITS)
#define PROB_MIN 31 /* estimates stay in [PROB_MIN, PROB_ONE - PROB_MIN] */
#define RATE_LIMIT 256 /* slowest adaptation: 1/RATE_LIMIT of the error */
#define TOP (UINT32_C(1) << 24)
#define LEN_BITS 6 /* bit tree over 0..63; 63 is followed by a decision: 63 or 64 */
#define MB TSDB_RESID_MANT_BITS
#define PAD_MAX 4 /* zero bytes the decoder may read past the end */

static void model_init(struct tsdb_resid_model *m)
{
    struct tsdb_resid_prob *p = (struct tsdb_resid_prob *)m;
    for (size_t i = 0; i < sizeof(*m) / sizeof(*p); i++)
        p[i] = (struct tsdb_resid_prob){PROB_ONE / 2, 0};
}

#define HOT static inline __attribute__((always_inline))

/* Move the estimate towards the bit just coded by about 1/(n + 2) of the
 * error (the power of two at or below it), n the bits seen so far, until
 * the rate reaches 1/RATE_LIMIT: the estimate is close to the running
 * frequency while it learns (a short chunk pays little for learning) and
 * then follows slow drift with little noise. Written to compile without
 * branches: the coded bit is unpredictable. */
HOT void prob_update(struct tsdb_resid_prob *pr, unsigned b)
{
    unsigned n = pr->n, p = pr->p;
    unsigned shift = 31u - (unsigned)__builtin_clz(n + 2u);
    pr->n = (uint16_t)(n + (n < RATE_LIMIT - 2));
    unsigned up = p + ((PROB_ONE - p) >> shift), down = p - (p >> shift);
    p = b ? down : up;
    p = p < PROB_MIN ? PROB_MIN : p;
    p = p > PROB_ONE - PROB_MIN ? PROB_ONE - PROB_MIN : p;
    pr->p = (uint16_t)p;
}

static uint64_t magnitude(int64_t x)
{
    return x < 0 ? 0 - (uint64_t)x : (uint64_t)x;
}

static unsigned bit_length(uint64_t a)
{
    return a ? 64u - (unsigned)__builtin_clzll(a) : 0;
}

double tsdb_resid_estimate(const int64_t *x, size_t m)
{
    uint32_t hist[65] = {0};
    size_t neg = 0, nz = 0;
    double bits = 0;
    for (size_t i = 0; i < m; i++) {
        unsigned l = bit_length(magnitude(x[i]));
        hist[l]++;
        if (l) {
            nz++;
            neg += x[i] < 0;
            bits += l - 1;
        }
    }
    for (unsigned l = 0; l <= 64; l++)
        if (hist[l])
            bits += (double)hist[l] * log2((double)m / (double)hist[l]) + 8;
    if (neg && neg < nz)
        bits += (double)neg * log2((double)nz / (double)neg) +
                (double)(nz - neg) * log2((double)nz / (double)(nz - neg));
    return bits;
}

/* ---------------------------------------------------------------- encoder */

struct rc_enc {
    uint8_t *out;
    size_t pos;
    uint64_t low; /* 33 significant bits: bit 32 is a pending carry */
    uint32_t range;
    uint8_t cache;    /* last byte not yet written (a carry may still change it) */
    uint64_t pending; /* cache plus the 0xff bytes after it */
};

static void shift_low(struct rc_enc *e)
{
    if ((uint32_t)e->low < UINT32_C(0xff000000) || (e->low >> 32) != 0) {
        uint8_t carry = (uint8_t)(e->low >> 32);
        uint8_t t = e->cache;
        do {
            e->out[e->pos++] = (uint8_t)(t + carry);
            t = 0xff;
        } while (--e->pending != 0);
        e->cache = (uint8_t)(e->low >> 24);
    }
    e->pending++;
    e->low = (e->low & UINT32_C(0x00ffffff)) << 8;
}

HOT void enc_bit(struct rc_enc *e, struct tsdb_resid_prob *p, unsigned b)
{
    uint32_t bound = (e->range >> PROB_BITS) * p->p;
    if (!b) {
        e->range = bound;
    } else {
        e->low += bound;
        e->range -= bound;
    }
    prob_update(p, b);
    while (e->range < TOP) {
        e->range <<= 8;
        shift_low(e);
    }
}

/* End the stream: the value in [low, low + range) with the most trailing
 * zero bits, then every byte, then drop the trailing zero bytes (the
 * decoder reads zeros there). */
static void enc_finish(struct rc_enc *e)
{
    uint64_t hi = e->low + e->range - 1;
    for (unsigned s = 32; s > 0; s--) {
        uint64_t v = hi & ~((UINT64_C(1) << s) - 1);
        if (v >= e->low) {
            e->low = v;
            break;
        }
    }
    for (int i = 0; i < 5; i++)
        shift_low(e);
    for (int i = 0; i < PAD_MAX && e->pos > 1 && e->out[e->pos - 1] == 0; i++)
        e->pos--;
}

struct raw_w {
    uint8_t *p;
    uint64_t acc;
    unsigned n;
};

static void raw_put(struct raw_w *w, uint64_t v, unsigned n)
{
    if (n > 32) {
        raw_put(w, v & UINT32_C(0xffffffff), 32);
        v >>= 32;
        n -= 32;
    }
    if (n == 0)
        return;
    w->acc |= (v & ((UINT64_C(1) << n) - 1)) << w->n;
    w->n += n;
    while (w->n >= 8) {
        *w->p++ = (uint8_t)w->acc;
        w->acc >>= 8;
        w->n -= 8;
    }
}

size_t tsdb_resid_bound(size_t m)
{
    /* Each modelled decision costs at most log2(32768 / 31) < 10.1 bits
     * (probabilities never leave [31, 32737]), 11 of them per residual, and
     * at most 60 raw bits: under 22 bytes per residual. */
    return 16 + 22 * m;
}

size_t tsdb_resid_encode(const int64_t *x, size_t m, uint8_t *out)
{
    uint64_t rawbits = 0;
    for (size_t i = 0; i < m; i++) {
        unsigned l = bit_length(magnitude(x[i]));
        if (l > MB + 1)
            rawbits += l - 1 - MB;
    }
    size_t nraw = (size_t)((rawbits + 7) / 8);
    size_t pos = bs_put_uvarint(out, nraw);
    struct raw_w rw = {out + pos, 0, 0};
    struct rc_enc e = {out + pos + nraw, 0, 0, UINT32_C(0xffffffff), 0, 1};

    struct tsdb_resid_model md;
    model_init(&md);
    unsigned prev_zero = 0, prev_neg = 0;
    for (size_t i = 0; i < m; i++) {
        uint64_t a = magnitude(x[i]);
        unsigned l = bit_length(a);
        struct tsdb_resid_prob *lt = md.len[prev_zero];
        unsigned node = 1, lc = l < 63 ? l : 63;
        for (int b = LEN_BITS - 1; b >= 0; b--) {
            unsigned bit = (lc >> b) & 1;
            enc_bit(&e, &lt[node], bit);
            node = 2 * node + bit;
        }
        if (lc == 63)
            enc_bit(&e, &md.len64, l == 64);
        prev_zero = l == 0;
        if (!l)
            continue;
        unsigned neg = x[i] < 0;
        enc_bit(&e, &md.sign[prev_neg], neg);
        prev_neg = neg;
        unsigned nm = l - 1, t = nm < MB ? nm : MB;
        node = 1;
        for (unsigned j = 0; j < t; j++) {
            unsigned bit = (unsigned)(a >> (nm - 1 - j)) & 1;
            enc_bit(&e, &md.mant[l][node], bit);
            node = 2 * node + bit;
        }
        raw_put(&rw, a, nm - t);
    }
    if (rw.n)
        *rw.p++ = (uint8_t)rw.acc;
    enc_finish(&e);
    /* The first byte of the range-coded part is always 0: not stored. */
    size_t rc_len = e.pos > 0 ? e.pos - 1 : 0;
    if (rc_len)
        memmove(e.out, e.out + 1, rc_len);
    return pos + nraw + rc_len;
}

/* ---------------------------------------------------------------- decoder */

HOT uint32_t next_byte(struct tsdb_resid_dec *d)
{
    if (d->rc < d->rc_end)
        return *d->rc++;
    if (++d->pad > PAD_MAX)
        d->bad = true;
    return 0;
}

HOT unsigned dec_bit(struct tsdb_resid_dec *d, struct tsdb_resid_prob *p)
{
    uint32_t bound = (d->range >> PROB_BITS) * p->p;
    unsigned b = d->code >= bound;
    d->code -= bound & (0u - b);
    d->range = b ? d->range - bound : bound;
    prob_update(p, b);
    while (d->range < TOP) {
        d->range <<= 8;
        d->code = (d->code << 8) | next_byte(d);
    }
    return b;
}

/* The next n <= 32 raw bits. */
HOT uint64_t raw_get32(struct tsdb_resid_dec *d, unsigned n)
{
    while (d->nbits < n) {
        if (d->raw == d->raw_end) {
            d->bad = true;
            return 0;
        }
        d->bits |= (uint64_t)*d->raw++ << d->nbits;
        d->nbits += 8;
    }
    uint64_t v = d->bits & ((UINT64_C(1) << n) - 1);
    d->bits >>= n;
    d->nbits -= n;
    return v;
}

static uint64_t raw_get(struct tsdb_resid_dec *d, unsigned n)
{
    if (n <= 32)
        return raw_get32(d, n);
    uint64_t lo = raw_get32(d, 32);
    return lo | raw_get32(d, n - 32) << 32;
}

bool tsdb_resid_dec_init(struct tsdb_resid_dec *d, const uint8_t *p, size_t len)
{
    memset(d, 0, sizeof(*d));
    uint64_t nraw;
    size_t k = bs_get_uvarint(p, len, &nraw);
    if (k == 0 || nraw > len - k)
        return false;
    d->raw = p + k;
    d->raw_end = d->raw + nraw;
    d->rc = d->raw_end;
    d->rc_end = p + len;
    d->range = UINT32_C(0xffffffff);
    for (int i = 0; i < 4; i++)
        d->code = (d->code << 8) | next_byte(d);
    model_init(&d->m);
    return true;
}

bool tsdb_resid_dec_next(struct tsdb_resid_dec *d, int64_t *x)
{
    struct tsdb_resid_prob *lt = d->m.len[d->prev_zero];
    unsigned node = 1;
    for (int b = 0; b < LEN_BITS; b++)
        node = 2 * node + dec_bit(d, &lt[node]);
    unsigned l = node - (1u << LEN_BITS);
    if (l == 63)
        l += dec_bit(d, &d->m.len64);
    d->prev_zero = l == 0;
    if (l == 0 || d->bad) {
        *x = 0;
        return !d->bad;
    }
    unsigned neg = dec_bit(d, &d->m.sign[d->prev_neg]);
    d->prev_neg = neg;
    unsigned nm = l - 1, t = nm < MB ? nm : MB;
    node = 1;
    for (unsigned j = 0; j < t; j++)
        node = 2 * node + dec_bit(d, &d->m.mant[l][node]);
    uint64_t a = (UINT64_C(1) << nm) | (uint64_t)(node - (1u << t)) << (nm - t) | raw_get(d, nm - t);
    *x = (int64_t)(neg ? 0 - a : a);
    return !d->bad;
}
