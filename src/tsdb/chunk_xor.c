/* SPDX-License-Identifier: Apache-2.0
 *
 * The XOR chunk codec: Gorilla-style compression of (int64 time, float64
 * value) samples, as Prometheus stores them in its head. The exact layout
 * is in docs/format/chunks.md; in short:
 *
 *   header   u16 big-endian sample count
 *   sample 0 t as zig-zag varint, v as 64 raw bits
 *   sample 1 t - t0 as uvarint, v XOR-encoded against v0
 *   sample n delta-of-delta of t in a bit bucket, v XOR-encoded
 *
 * Bits are written most significant first. Values are handled as bit
 * patterns, never as doubles, so every NaN payload (the stale marker
 * included), -0 and the infinities round-trip exactly. Time arithmetic is
 * done in uint64 so that no input can overflow a signed integer.
 *
 * The encoder keeps its buffer zeroed past the last bit and ORs new bits
 * in; it grows the buffer before each sample to hold the worst case, so a
 * sample is either wholly appended or not at all.
 */
#include <stdlib.h>
#include <string.h>

#include "tsdb/tsdb_int.h"

/* ------------------------------------------------------------- encoder */

void tsdb_xor_enc_init(struct tsdb_xor_enc *e)
{
    memset(e, 0, sizeof(*e));
    e->nbits = TSDB_CHUNK_HEADER * 8;
    e->leading = 0xff;
}

void tsdb_xor_enc_fini(struct tsdb_xor_enc *e)
{
    free(e->buf);
    memset(e, 0, sizeof(*e));
}

void tsdb_xor_enc_reset(struct tsdb_xor_enc *e)
{
    if (e->buf)
        memset(e->buf, 0, tsdb_xor_enc_bytes(e));
    e->nbits = TSDB_CHUNK_HEADER * 8;
    e->n = 0;
    e->mint = e->t = e->tdelta = 0;
    e->v = 0;
    e->leading = 0xff;
    e->trailing = 0;
    memset(e->marks, 0, sizeof(e->marks));
}

/* Record a seek mark for the state after sample n (n samples decoded) at
 * bit pos, dropping the oldest, when the fields fit a mark. */
static void mark_push(struct tsdb_xor_mark *marks, uint32_t n, uint32_t pos, int64_t dt,
                      int64_t tdelta, uint64_t v, uint8_t leading, uint8_t trailing)
{
    if (n < 2 || n > UINT8_MAX || pos > UINT16_MAX || dt < 0 || dt > INT32_MAX ||
        tdelta < 0 || tdelta > INT32_MAX)
        return;
    memmove(marks, marks + 1, (TSDB_XOR_MARKS - 1) * sizeof(*marks));
    marks[TSDB_XOR_MARKS - 1] = (struct tsdb_xor_mark){
        v, (int32_t)dt, (int32_t)tdelta, (uint16_t)pos, (uint8_t)n, leading, trailing};
}

/* OR the low n bits of v (n <= 57 - (nbits % 8) guaranteed by callers
 * splitting wider writes) into an 8-byte big-endian window. The buffer
 * always has 8 bytes of zeroed slack past the last sample (see append). */
static void put_window(struct tsdb_xor_enc *e, uint64_t v, unsigned n)
{
    size_t byte = e->nbits >> 3;
    unsigned off = (unsigned)(e->nbits & 7);
    uint64_t w;
    memcpy(&w, e->buf + byte, 8);
    w = __builtin_bswap64(w) | (v << (64 - off - n));
    w = __builtin_bswap64(w);
    memcpy(e->buf + byte, &w, 8);
    e->nbits += n;
}

static void put_bits(struct tsdb_xor_enc *e, uint64_t v, unsigned n)
{
    if (n == 0)
        return;
    if (n < 64)
        v &= (UINT64_C(1) << n) - 1;
    if (n > 56) {
        put_window(e, v >> 32, n - 32);
        put_window(e, v & UINT64_C(0xffffffff), 32);
        return;
    }
    put_window(e, v, n);
}

static void put_bit(struct tsdb_xor_enc *e, unsigned bit)
{
    if (bit)
        e->buf[e->nbits >> 3] |= (uint8_t)(0x80u >> (e->nbits & 7));
    e->nbits++;
}

static void put_value(struct tsdb_xor_enc *e, uint64_t vbits)
{
    uint64_t x = vbits ^ e->v;
    if (x == 0) {
        put_bit(e, 0);
        return;
    }
    put_bit(e, 1);
    unsigned lead = (unsigned)__builtin_clzll(x);
    unsigned trail = (unsigned)__builtin_ctzll(x);
    if (lead > 31)
        lead = 31;
    if (e->leading != 0xff && lead >= e->leading && trail >= e->trailing) {
        put_bit(e, 0);
        put_bits(e, x >> e->trailing, 64u - e->leading - e->trailing);
        return;
    }
    unsigned sig = 64u - lead - trail;
    put_bit(e, 1);
    put_bits(e, lead, 5);
    put_bits(e, sig & 63u, 6); /* 64 is written as 0 */
    put_bits(e, x >> trail, sig);
    e->leading = (uint8_t)lead;
    e->trailing = (uint8_t)trail;
}

/* Buffer size for e, which needs `need` bytes now and has `cap`: the
 * predicted size of the full chunk once it holds 16 samples (see the
 * comment in append), in TSDB_XOR_ENC_STEP multiples. */
static size_t enc_cap_for(const struct tsdb_xor_enc *e, size_t cap, size_t need)
{
    if (e->n >= 16 && e->n < TSDB_CHUNK_MAX_SAMPLES) {
        uint8_t tmp[10];
        size_t first = (TSDB_CHUNK_HEADER + bs_put_varint(tmp, e->mint) + 8) * 8;
        size_t rest = e->nbits > first ? e->nbits - first : 0; /* bits of samples 2.. */
        size_t more = rest * (size_t)(TSDB_CHUNK_MAX_SAMPLES - e->n) / (size_t)(e->n - 1);
        size_t want = need + more * 17 / 16 / 8;
        if (want > cap)
            cap = want;
    }
    cap = (cap + TSDB_XOR_ENC_STEP - 1) / TSDB_XOR_ENC_STEP * TSDB_XOR_ENC_STEP;
    while (cap < need)
        cap += TSDB_XOR_ENC_STEP;
    return cap;
}

int tsdb_xor_enc_append(struct tsdb_xor_enc *e, int64_t t, uint64_t vbits)
{
    size_t need = tsdb_xor_enc_bytes(e) + TSDB_CHUNK_SAMPLE_MAX + 8;
    if (need > e->cap) {
        /* The open chunk is most of a series' resident memory. Doubling
         * would leave a quarter of it unused on average; growing in small
         * steps all the way reallocates a dozen times per chunk, and as
         * every series grows at once, the blocks left behind are of sizes
         * nobody asks for again: a third of the heap ends up in such holes.
         * So: small steps while the chunk is young, then one jump to the
         * size its samples so far predict for a full chunk (the buffer is
         * kept across chunks, so later chunks rarely reallocate). */
        size_t ncap = enc_cap_for(e, e->cap ? e->cap : TSDB_XOR_ENC_STEP, need);
        uint8_t *nb = realloc(e->buf, ncap);
        if (!nb)
            return BS_ENOMEM;
        memset(nb + e->cap, 0, ncap - e->cap);
        if (e->cap == 0)
            memset(nb, 0, TSDB_CHUNK_HEADER);
        e->buf = nb;
        e->cap = (uint32_t)ncap;
    }

    if (e->n == 0) {
        uint8_t tmp[10];
        size_t k = bs_put_varint(tmp, t);
        for (size_t i = 0; i < k; i++)
            put_bits(e, tmp[i], 8);
        put_bits(e, vbits, 64);
        e->mint = t;
    } else if (e->n == 1) {
        uint64_t delta = (uint64_t)t - (uint64_t)e->t;
        uint8_t tmp[10];
        size_t k = bs_put_uvarint(tmp, delta);
        for (size_t i = 0; i < k; i++)
            put_bits(e, tmp[i], 8);
        put_value(e, vbits);
        e->tdelta = (int64_t)delta;
    } else {
        uint64_t delta = (uint64_t)t - (uint64_t)e->t;
        int64_t dod = (int64_t)(delta - (uint64_t)e->tdelta);
        if (dod == 0) {
            put_bit(e, 0);
        } else if (dod >= -8191 && dod <= 8192) {
            put_bits(e, 0x2, 2);
            put_bits(e, (uint64_t)dod, 14);
        } else if (dod >= -65535 && dod <= 65536) {
            put_bits(e, 0x6, 3);
            put_bits(e, (uint64_t)dod, 17);
        } else if (dod >= -524287 && dod <= 524288) {
            put_bits(e, 0xe, 4);
            put_bits(e, (uint64_t)dod, 20);
        } else {
            put_bits(e, 0xf, 4);
            put_bits(e, (uint64_t)dod, 64);
        }
        put_value(e, vbits);
        e->tdelta = (int64_t)delta;
    }
    e->t = t;
    e->v = vbits;
    e->n++;
    e->buf[0] = (uint8_t)(e->n >> 8);
    e->buf[1] = (uint8_t)e->n;
    if (e->n % TSDB_XOR_MARK_EVERY == 0)
        mark_push(e->marks, e->n, e->nbits, (int64_t)((uint64_t)t - (uint64_t)e->mint), e->tdelta,
                  vbits, e->leading, e->trailing);
    return 0;
}

/* ------------------------------------------------------------- decoder */

void tsdb_xor_dec_init(struct tsdb_xor_dec *d, const uint8_t *p, size_t len)
{
    memset(d, 0, sizeof(*d));
    d->p = p;
    d->leading = 0xff;
    if (len < TSDB_CHUNK_HEADER) {
        d->err = len ? BS_ECORRUPT : 0;
        return;
    }
    d->nbits = len * 8;
    d->pos = TSDB_CHUNK_HEADER * 8;
    d->total = (uint16_t)((p[0] << 8) | p[1]);
}

static bool get_bits(struct tsdb_xor_dec *d, unsigned n, uint64_t *out)
{
    if (d->nbits - d->pos < n)
        return false;
    if (n == 0) {
        *out = 0;
        return true;
    }
    uint64_t v = 0;
    size_t pos = d->pos;
    /* Fast path: 8 whole bytes cover any n <= 56 from any bit offset. */
    size_t byte = pos >> 3;
    if (n <= 56 && byte + 8 <= d->nbits / 8) {
        uint64_t w;
        memcpy(&w, d->p + byte, 8);
        w = __builtin_bswap64(w);
        v = (w << (pos & 7)) >> (64 - n);
        d->pos = pos + n;
        *out = v;
        return true;
    }
    while (n > 0) {
        byte = pos >> 3;
        unsigned room = 8 - (unsigned)(pos & 7);
        unsigned take = n < room ? n : room;
        uint64_t bits = (uint64_t)(d->p[byte] >> (room - take)) & ((1u << take) - 1);
        v = (v << take) | bits;
        pos += take;
        n -= take;
    }
    d->pos = pos;
    *out = v;
    return true;
}

static bool get_bit(struct tsdb_xor_dec *d, unsigned *bit)
{
    if (d->pos >= d->nbits)
        return false;
    *bit = (d->p[d->pos >> 3] >> (7 - (d->pos & 7))) & 1u;
    d->pos++;
    return true;
}

/* A varint stored as whole bytes inside the bit stream. */
static bool get_uvarint_bits(struct tsdb_xor_dec *d, uint64_t *out)
{
    uint8_t tmp[10];
    for (size_t i = 0; i < sizeof(tmp); i++) {
        uint64_t b;
        if (!get_bits(d, 8, &b))
            return false;
        tmp[i] = (uint8_t)b;
        if (!(b & 0x80))
            return bs_get_uvarint(tmp, i + 1, out) == i + 1;
    }
    return false;
}

static bool get_value(struct tsdb_xor_dec *d)
{
    unsigned bit;
    if (!get_bit(d, &bit))
        return false;
    if (!bit)
        return true;
    if (!get_bit(d, &bit))
        return false;
    uint64_t x;
    if (!bit) {
        if (d->leading == 0xff)
            return false;
        if (!get_bits(d, 64u - d->leading - d->trailing, &x))
            return false;
        d->v ^= x << d->trailing;
        return true;
    }
    uint64_t lead, sig;
    if (!get_bits(d, 5, &lead) || !get_bits(d, 6, &sig))
        return false;
    if (sig == 0)
        sig = 64;
    if (lead + sig > 64)
        return false;
    if (!get_bits(d, (unsigned)sig, &x))
        return false;
    d->leading = (uint8_t)lead;
    d->trailing = (uint8_t)(64 - lead - sig);
    d->v ^= x << d->trailing;
    return true;
}

static int64_t sign_extend(uint64_t bits, unsigned n)
{
    if (bits > (UINT64_C(1) << (n - 1)))
        return (int64_t)(bits - (UINT64_C(1) << n));
    return (int64_t)bits;
}

/* The stream from bit pos on, most significant bit first, zero past the
 * end: at least 57 valid bits (64 - pos % 8) in one unaligned load when 8
 * bytes remain, byte by byte near the end (chunks in files have no slack
 * to read past). */
static inline uint64_t peek64(const struct tsdb_xor_dec *d, size_t pos)
{
    size_t byte = pos >> 3, nbytes = d->nbits >> 3;
    uint64_t w;
    if (byte + 8 <= nbytes) {
        memcpy(&w, d->p + byte, 8);
        w = __builtin_bswap64(w);
    } else {
        w = 0;
        for (size_t i = byte; i < byte + 8; i++)
            w = (w << 8) | (i < nbytes ? d->p[i] : 0u);
    }
    return w << (pos & 7);
}

/* n (1..64) bits at pos; past the end they read as zeros (the caller
 * checks the final position against nbits). */
static inline uint64_t bits_at(const struct tsdb_xor_dec *d, size_t pos, unsigned n)
{
    if (n <= 57)
        return peek64(d, pos) >> (64 - n);
    return (peek64(d, pos) >> (96 - n)) << 32 | peek64(d, pos + n - 32) >> 32;
}

/* Samples 2 and later: a time delta-of-delta and an XOR value, decoded
 * from one 64-bit window each where they fit (they do but for the
 * widest fields). The position is checked once, after the sample. */
static bool dec_sample(struct tsdb_xor_dec *d)
{
    size_t pos = d->pos;
    uint64_t w = peek64(d, pos);
    int64_t dod;
    if (!(w >> 63)) {
        dod = 0;
        pos += 1;
    } else {
        unsigned ones = ~w ? (unsigned)__builtin_clzll(~w) : 64;
        if (ones >= 4) {
            dod = (int64_t)bits_at(d, pos + 4, 64);
            pos += 68;
        } else {
            static const unsigned widths[4] = {0, 14, 17, 20};
            unsigned wd = widths[ones];
            dod = sign_extend((w << (ones + 1)) >> (64 - wd), wd);
            pos += ones + 1 + wd;
        }
    }
    d->tdelta = (int64_t)((uint64_t)d->tdelta + (uint64_t)dod);
    d->t = (int64_t)((uint64_t)d->t + (uint64_t)d->tdelta);

    w = peek64(d, pos);
    if (!(w >> 63)) {
        pos += 1;
    } else if (!(w >> 62 & 1)) {
        if (d->leading == 0xff)
            return false;
        unsigned n = 64u - d->leading - d->trailing;
        uint64_t x = n <= 55 ? (w << 2) >> (64 - n) : bits_at(d, pos + 2, n);
        d->v ^= x << d->trailing;
        pos += 2 + n;
    } else {
        unsigned lead = (unsigned)(w >> 57) & 31u, sig = (unsigned)(w >> 51) & 63u;
        if (sig == 0)
            sig = 64;
        if (lead + sig > 64)
            return false;
        uint64_t x = sig <= 44 ? (w << 13) >> (64 - sig) : bits_at(d, pos + 13, sig);
        d->leading = (uint8_t)lead;
        d->trailing = (uint8_t)(64 - lead - sig);
        d->v ^= x << d->trailing;
        pos += 13 + sig;
    }
    if (pos > d->nbits)
        return false;
    d->pos = pos;
    return true;
}

bool tsdb_xor_dec_next(struct tsdb_xor_dec *d)
{
    if (d->err || d->read >= d->total)
        return false;
    if (d->read >= 2) {
        if (!dec_sample(d))
            goto corrupt;
    } else if (d->read == 0) {
        uint64_t u;
        if (!get_uvarint_bits(d, &u) || !get_bits(d, 64, &d->v))
            goto corrupt;
        d->t = (int64_t)((u >> 1) ^ -(u & 1)); /* zig-zag */
    } else {
        uint64_t delta;
        if (!get_uvarint_bits(d, &delta))
            goto corrupt;
        d->tdelta = (int64_t)delta;
        d->t = (int64_t)((uint64_t)d->t + delta);
        if (!get_value(d))
            goto corrupt;
    }
    d->read++;
    return true;
corrupt:
    d->err = BS_ECORRUPT;
    return false;
}

bool tsdb_xor_dec_seek(struct tsdb_xor_dec *d, int64_t t, int64_t mint,
                       const struct tsdb_xor_mark *marks, size_t nmarks)
{
    if (d->err)
        return false;
    for (size_t i = nmarks; i-- > 0;) {
        const struct tsdb_xor_mark *m = &marks[i];
        int64_t mt = (int64_t)((uint64_t)mint + (uint64_t)m->dt);
        if (m->n <= d->read || m->n > d->total || m->pos > d->nbits || mt >= t)
            continue;
        d->pos = m->pos;
        d->read = m->n;
        d->t = mt;
        d->tdelta = m->tdelta;
        d->v = m->v;
        d->leading = m->leading;
        d->trailing = m->trailing;
        break;
    }
    /* Past the first two samples, decode in a local copy the compiler
     * can keep in registers. */
    while (d->read < 2) {
        if (!tsdb_xor_dec_next(d))
            return false;
        if (d->t >= t)
            return true;
    }
    struct tsdb_xor_dec l = *d;
    bool found = false;
    while (l.read < l.total) {
        if (!dec_sample(&l)) {
            l.err = BS_ECORRUPT;
            break;
        }
        l.read++;
        if (l.t >= t) {
            found = true;
            break;
        }
    }
    *d = l;
    return found;
}

int tsdb_xor_enc_restore(struct tsdb_xor_enc *e, const uint8_t *p, size_t len)
{
    struct tsdb_xor_dec d;
    tsdb_xor_dec_init(&d, p, len);
    int64_t mint = 0;
    struct tsdb_xor_mark marks[TSDB_XOR_MARKS];
    memset(marks, 0, sizeof(marks));
    while (tsdb_xor_dec_next(&d)) {
        if (d.read == 1)
            mint = d.t;
        if (d.read % TSDB_XOR_MARK_EVERY == 0)
            mark_push(marks, d.read, (uint32_t)d.pos, (int64_t)((uint64_t)d.t - (uint64_t)mint),
                      d.tdelta, d.v, d.leading, d.trailing);
    }
    if (d.err || d.read != d.total || d.total == 0 || (d.pos + 7) / 8 != len)
        return BS_ECORRUPT;
    size_t cap = TSDB_XOR_ENC_STEP;
    while (cap < len + TSDB_CHUNK_SAMPLE_MAX + 8)
        cap += TSDB_XOR_ENC_STEP;
    uint8_t *nb = calloc(1, cap);
    if (!nb)
        return BS_ENOMEM;
    memcpy(nb, p, len);
    if (d.pos % 8)
        nb[len - 1] &= (uint8_t)(0xff << (8 - d.pos % 8)); /* zero past nbits */
    free(e->buf);
    e->buf = nb;
    e->cap = (uint32_t)cap;
    e->nbits = (uint32_t)d.pos;
    e->n = d.total;
    e->mint = mint;
    e->t = d.t;
    e->tdelta = d.tdelta;
    e->v = d.v;
    e->leading = d.leading;
    e->trailing = d.trailing;
    memcpy(e->marks, marks, sizeof(marks));
    return 0;
}

bool tsdb_xor_state_valid(const uint8_t *p, size_t len, const struct tsdb_xor_state *st,
                          int64_t *mint)
{
    if (len < TSDB_CHUNK_HEADER + 9 || len > UINT32_MAX / 8 - 64 || st->tail < 1 || st->tail > 8)
        return false;
    uint16_t n = (uint16_t)((p[0] << 8) | p[1]);
    if (n == 0 || bs_get_varint(p + TSDB_CHUNK_HEADER, len - TSDB_CHUNK_HEADER, mint) == 0)
        return false;
    if (n == 1)
        return *mint == st->t && st->tdelta == 0 && st->leading == 0xff;
    return *mint < st->t && st->tdelta > 0 &&
           (st->leading == 0xff ||
            (st->leading <= 31 && st->trailing <= 63 && st->leading + st->trailing < 64));
}

int tsdb_xor_enc_load(struct tsdb_xor_enc *e, const uint8_t *p, size_t len,
                      const struct tsdb_xor_state *st)
{
    int64_t mint;
    if (!tsdb_xor_state_valid(p, len, st, &mint))
        return BS_ECORRUPT;
    uint16_t n = (uint16_t)((p[0] << 8) | p[1]);
    /* Sized for the chunk it will grow into, as append would. */
    struct tsdb_xor_enc probe = {
        .n = n, .mint = mint, .nbits = (uint32_t)((len - 1) * 8 + st->tail)};
    size_t cap = enc_cap_for(&probe, TSDB_XOR_ENC_STEP, len + TSDB_CHUNK_SAMPLE_MAX + 8);
    uint8_t *nb = malloc(cap);
    if (!nb)
        return BS_ENOMEM;
    memcpy(nb, p, len);
    memset(nb + len, 0, cap - len);
    nb[len - 1] &= (uint8_t)(0xff00u >> st->tail); /* zero past nbits */
    free(e->buf);
    e->buf = nb;
    e->cap = (uint32_t)cap;
    e->nbits = (uint32_t)((len - 1) * 8 + st->tail);
    e->n = n;
    e->mint = mint;
    e->t = st->t;
    e->tdelta = st->tdelta;
    e->v = st->v;
    e->leading = st->leading;
    e->trailing = st->trailing;
    memset(e->marks, 0, sizeof(e->marks)); /* nothing was decoded to place them */
    return 0;
}

void tsdb_xor_enc_state(const struct tsdb_xor_enc *e, struct tsdb_xor_state *st)
{
    st->tail = (uint8_t)(e->nbits % 8 ? e->nbits % 8 : 8);
    st->t = e->t;
    st->tdelta = e->tdelta;
    st->v = e->v;
    st->leading = e->leading;
    st->trailing = e->trailing;
}
