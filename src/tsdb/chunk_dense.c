/* SPDX-License-Identifier: Apache-2.0
 *
 * The dense chunk codec: lossless, compaction-time encoding of one long
 * run of samples of one series (a block's worth: hundreds to tens of
 * thousands of samples). The byte layout is in docs/format/chunks.md
 * ("Dense chunks"); this comment explains the choices.
 *
 * Where the bytes go. On node_exporter-like data a Gorilla chunk spends
 * about a bit per sample on time and most of the rest on values, even when
 * the value is an integer counter whose increments need a dozen bits. The
 * dense codec attacks both sides separately and then lets zstd do the
 * entropy coding:
 *
 *  - Time. Prometheus scrapes on a ticker: t_i = grid_i + jitter_i with
 *    jitter of a few milliseconds that does not accumulate. Delta-of-delta
 *    coding sees j_i - 2 j_(i-1) + j_(i-2) (three jitters); we predict from
 *    an ideal grid point g instead: pred = g + step, residual e = t - pred,
 *    and g moves to pred when |e| <= r (the jitter stays out of the grid)
 *    or re-anchors on t when |e| > r (a missed scrape, a restart). r = 0 is
 *    plain delta coding against a fixed step. The encoder tries a handful of
 *    r and keeps the cheapest; step is the median delta. With no jitter
 *    every residual is 0.
 *
 *  - Values, one mode per chunk:
 *      CONST  one bit pattern for every sample;
 *      INT    every sample is k / 10^d for an integer |k| < 2^53 and a scale
 *             d <= 12, exact to the bit: (double)k / 10^d reproduces the
 *             pattern (the decoder evaluates the very same expression, and
 *             IEEE division is correctly rounded, so this is exact on any
 *             conforming platform). The k are stored raw (minus k0), as
 *             deltas (counters) or delta-of-deltas (steady rates), whichever
 *             is estimated smallest, divided by their common GCD (memory
 *             gauges move in pages);
 *             The scale byte also names a recipe (k / 10^d, k * 10^-d or
 *             k / 1000 / 10^(d-3)): exporters written in Go compute many
 *             values those other ways, and a value one recipe reproduces
 *             the plain division often misses by one unit in the last place;
 *      BITS   the float64 bit pattern itself as the integer, with INT's
 *             transforms: within a binade the pattern grows linearly with
 *             the value, so a clock in seconds with nanosecond digits
 *             (node_time_seconds) costs its jitter, not Gorilla's 4-5 bytes;
 *      XOR    Gorilla's XOR coding, for values that are none of the above.
 *    Samples that do not fit CONST or INT (a stale marker, another NaN,
 *    -0, an infinity, one value with too many decimals) go to an exception
 *    list of (index, bits) and hold the previous integer in the stream, so
 *    one stale marker does not push a chunk into XOR. The encoder builds
 *    every applicable mode and keeps the smallest result. When most INT
 *    residuals are zero (gauges that change on some scrapes only), the
 *    planes are sparse: a bitmap of the nonzero residuals, then planes of
 *    only those, so a zero is not coded once per plane.
 *
 *  - INT and BITS residuals are either entropy coded (entropy.c: an
 *    adaptive range coder that learns their magnitude distribution, within
 *    a few percent of their entropy where planes and zstd lose 10-60% on
 *    noisy counters and sparse gauges) or, like time residuals,
 *    zig-zagged and written as byte planes, whichever is smaller. Planes
 *    are all low bytes, then all second bytes, and so on, up to the
 *    widest residual. Bit packing would be denser before compression, but
 *    byte planes let zstd's Huffman stage code each plane by its own
 *    statistics (jitter residuals take ~2.4 bits, not 4; high planes that are
 *    almost all zero vanish). Time and values are separate sections, each
 *    zstd-compressed (magicless frames, no checksum or size fields) only
 *    when that is smaller, so their byte statistics do not mix.
 *
 * Decoding streams: the iterator inflates compressed sections once, into a
 * buffer it owns, then produces one sample per next() from the planes and
 * the exception cursor. Everything read from the chunk is bounds-checked;
 * damage is BS_ECORRUPT, never a crash. Time and integer arithmetic is done
 * in uint64 so that no input can overflow a signed type.
 */
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_c_format: magicless frames */
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "tsdb/tsdb_int.h"

#if !defined(FLT_EVAL_METHOD) || FLT_EVAL_METHOD != 0
#error "chunk_dense.c needs double arithmetic without excess precision"
#endif

/* ------------------------------------------------------------- format */

#define F_TZSTD 0x01u /* time section is zstd-compressed */
#define F_VZSTD 0x02u /* value section is zstd-compressed */
#define F_MODE_SHIFT 2
#define F_MODE_MASK 0x0cu
#define F_RESERVED 0xf0u

enum { MODE_CONST = 0, MODE_INT = 1, MODE_XOR = 2, MODE_BITS = 3 };
enum { XF_RAW = 0, XF_DELTA = 1, XF_DOD = 2 };
enum { EXC_STALE = 0, EXC_RAW = 1 };
/* Bit 7 of an INT value section's plane width byte: sparse planes. */
#define PLANES_SPARSE 0x80u
/* This byte alone instead of the width byte: coded residuals (entropy.h). */
#define PLANES_CODED 0x40u

/* INT scale byte: bits 0-3 the scale d, bits 4-5 the recipe, the
 * expression that turns k back into the double (see unscale). */
#define SCALE_D_MASK 0x0fu
#define RECIPE_SHIFT 4
enum { RECIPE_DIV = 0, RECIPE_MUL = 1, RECIPE_DIV3 = 2, RECIPE_COUNT = 3 };

/* Raw section size caps used by the decoder: every section the encoder
 * writes fits in SECTION_FIXED + SECTION_PER_SAMPLE * n bytes. */
#define SECTION_FIXED 64
#define SECTION_PER_SAMPLE 20

static const double pow10_tab[TSDB_DENSE_MAX_SCALE + 1] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12,
};
/* The doubles nearest to 10^-d, as a compiler (C or Go) makes of 1e-3. */
static const double pow10neg_tab[TSDB_DENSE_MAX_SCALE + 1] = {
    1e-0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10, 1e-11, 1e-12,
};

#define TWO53 9007199254740992.0

/* The one expression that turns a scaled integer back into a double, shared
 * by encoder (to check exactness) and decoder. sc is the scale byte: the
 * scale d and the recipe, which says how the exporter most likely made the
 * value from an integer count: k / 10^d (exact division), k * 10^-d (Go's
 * `float64(ticks) * 0.001`), or k / 1000 / 10^(d-3) (two divisions, as
 * node_exporter turns pressure-stall microseconds into seconds). The
 * decoder trusts only that sc passed parse_values's checks. */
static inline double unscale(int64_t k, unsigned sc)
{
    unsigned d = sc & SCALE_D_MASK;
    switch (sc >> RECIPE_SHIFT) {
    case RECIPE_MUL:
        return (double)k * pow10neg_tab[d];
    case RECIPE_DIV3:
        return (double)k / 1e3 / pow10_tab[d - 3];
    default:
        return (double)k / pow10_tab[d];
    }
}

static bool scale_valid(unsigned sc)
{
    unsigned d = sc & SCALE_D_MASK, recipe = sc >> RECIPE_SHIFT;
    return d <= TSDB_DENSE_MAX_SCALE && recipe < RECIPE_COUNT && (recipe != RECIPE_DIV3 || d >= 3);
}

static uint64_t zz_enc(int64_t x)
{
    uint64_t u = (uint64_t)x;
    return (u << 1) ^ (0 - (u >> 63));
}

static uint64_t zz_dec(uint64_t z)
{
    return (z >> 1) ^ (0 - (z & 1));
}

/* ------------------------------------------------------- byte vectors */

struct dbuf {
    uint8_t *p;
    size_t len, cap;
};

static int dbuf_reserve(struct dbuf *b, size_t extra)
{
    if (extra > SIZE_MAX / 2 - b->len)
        return BS_ENOMEM;
    size_t want = b->len + extra;
    if (want <= b->cap)
        return 0;
    size_t ncap = b->cap ? b->cap : 256;
    while (ncap < want)
        ncap *= 2;
    uint8_t *np = realloc(b->p, ncap);
    if (!np)
        return BS_ENOMEM;
    b->p = np;
    b->cap = ncap;
    return 0;
}

/* The writers below assume the caller reserved room (sizes are bounded up
 * front, so one reserve per section suffices). */
static void w_u8(struct dbuf *b, unsigned x)
{
    b->p[b->len++] = (uint8_t)x;
}

static void w_uv(struct dbuf *b, uint64_t x)
{
    b->len += bs_put_uvarint(b->p + b->len, x);
}

static void w_v(struct dbuf *b, int64_t x)
{
    b->len += bs_put_varint(b->p + b->len, x);
}

static void w_be64(struct dbuf *b, uint64_t x)
{
    bs_put_be64(b->p + b->len, x);
    b->len += 8;
}

static size_t uv_len(uint64_t x)
{
    size_t n = 1;
    while (x >= 0x80) {
        x >>= 7;
        n++;
    }
    return n;
}

/* Bit writer (MSB first) for the XOR value stream. */
struct bitw {
    struct dbuf *b;
    uint64_t acc;
    unsigned nacc; /* < 8 between calls */
};

static void bw_put(struct bitw *w, uint64_t v, unsigned n)
{
    if (n > 32) {
        bw_put(w, v >> 32, n - 32);
        v &= UINT64_C(0xffffffff);
        n = 32;
    }
    if (n == 0)
        return;
    if (n < 64)
        v &= (UINT64_C(1) << n) - 1;
    w->acc = (w->acc << n) | v;
    w->nacc += n;
    while (w->nacc >= 8) {
        w->nacc -= 8;
        w->b->p[w->b->len++] = (uint8_t)(w->acc >> w->nacc);
    }
}

static void bw_flush(struct bitw *w)
{
    if (w->nacc)
        w->b->p[w->b->len++] = (uint8_t)(w->acc << (8 - w->nacc));
    w->nacc = 0;
    w->acc = 0;
}

/* ------------------------------------------------------------- encoder */

struct tsdb_dense_enc {
    int level;
    ZSTD_CCtx *zc;  /* value sections */
    ZSTD_CCtx *tzc; /* time sections (see TIME_LEVEL) */
    size_t cap;     /* samples the arrays hold */
    int64_t *k;     /* scaled integers */
    int64_t *x;     /* transformed integers */
    uint64_t *z;    /* zig-zagged residuals */
    uint8_t *exc;   /* 1 where sample i is an exception */
    uint8_t *mind;  /* smallest exact scale per sample */
    uint64_t *zs;   /* the nonzero residuals (sparse planes) */
    uint8_t *bm;    /* the nonzero bitmap (sparse planes) */
    struct dbuf traw, vraw, vbest, sealed, out;
};

/* Time sections are small and mostly jitter: a few symbols in random
 * order, which zstd's fast match finders turn into many short matches that
 * cost more than Huffman-coded literals. The optimal parser of the highest
 * levels avoids that (2.5 instead of 2.9 bits per residual at +-2 ms jitter)
 * and is cheap on inputs this small. */
#define TIME_LEVEL 19

static ZSTD_CCtx *cctx_new(int level)
{
    ZSTD_CCtx *zc = ZSTD_createCCtx();
    if (zc && (ZSTD_isError(ZSTD_CCtx_setParameter(zc, ZSTD_c_compressionLevel, level)) ||
               ZSTD_isError(ZSTD_CCtx_setParameter(zc, ZSTD_c_format, ZSTD_f_zstd1_magicless)) ||
               ZSTD_isError(ZSTD_CCtx_setParameter(zc, ZSTD_c_contentSizeFlag, 0)) ||
               ZSTD_isError(ZSTD_CCtx_setParameter(zc, ZSTD_c_checksumFlag, 0)) ||
               ZSTD_isError(ZSTD_CCtx_setParameter(zc, ZSTD_c_dictIDFlag, 0)))) {
        ZSTD_freeCCtx(zc);
        zc = NULL;
    }
    return zc;
}

struct tsdb_dense_enc *tsdb_dense_enc_new(int level)
{
    struct tsdb_dense_enc *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->level = level > 0 ? level : TSDB_DENSE_DEFAULT_LEVEL;
    if (e->level > ZSTD_maxCLevel())
        e->level = ZSTD_maxCLevel();
    e->zc = cctx_new(e->level);
    e->tzc = cctx_new(TIME_LEVEL > e->level ? TIME_LEVEL : e->level);
    if (!e->zc || !e->tzc) {
        tsdb_dense_enc_free(e);
        return NULL;
    }
    return e;
}

void tsdb_dense_enc_free(struct tsdb_dense_enc *e)
{
    if (!e)
        return;
    ZSTD_freeCCtx(e->zc);
    ZSTD_freeCCtx(e->tzc);
    free(e->k);
    free(e->x);
    free(e->z);
    free(e->exc);
    free(e->mind);
    free(e->zs);
    free(e->bm);
    free(e->traw.p);
    free(e->vraw.p);
    free(e->vbest.p);
    free(e->sealed.p);
    free(e->out.p);
    free(e);
}

static int enc_grow(struct tsdb_dense_enc *e, size_t n)
{
    if (n <= e->cap)
        return 0;
    int64_t *k = realloc(e->k, n * sizeof(*k));
    if (!k)
        return BS_ENOMEM;
    e->k = k;
    int64_t *x = realloc(e->x, n * sizeof(*x));
    if (!x)
        return BS_ENOMEM;
    e->x = x;
    uint64_t *z = realloc(e->z, n * sizeof(*z));
    if (!z)
        return BS_ENOMEM;
    e->z = z;
    uint8_t *exc = realloc(e->exc, n);
    if (!exc)
        return BS_ENOMEM;
    e->exc = exc;
    uint8_t *mind = realloc(e->mind, n);
    if (!mind)
        return BS_ENOMEM;
    e->mind = mind;
    uint64_t *zs = realloc(e->zs, n * sizeof(*zs));
    if (!zs)
        return BS_ENOMEM;
    e->zs = zs;
    uint8_t *bm = realloc(e->bm, n / 8 + 1);
    if (!bm)
        return BS_ENOMEM;
    e->bm = bm;
    e->cap = n;
    return 0;
}

static unsigned width_bytes(const uint64_t *z, size_t m)
{
    uint64_t any = 0;
    for (size_t i = 0; i < m; i++)
        any |= z[i];
    unsigned w = 0;
    while (any) {
        w++;
        any >>= 8;
    }
    return w;
}

/* Estimated compressed size, in bits, of z[0..m) as byte planes: the
 * order-0 entropy of each plane plus a guess at Huffman table cost. Only
 * used to rank candidates; the final choice between modes is by real size. */
static double est_planes(const uint64_t *z, size_t m)
{
    unsigned w = width_bytes(z, m);
    double bits = 8;
    for (unsigned p = 0; p < w; p++) {
        uint32_t hist[256] = {0};
        for (size_t i = 0; i < m; i++)
            hist[(z[i] >> (8 * p)) & 0xff]++;
        for (unsigned c = 0; c < 256; c++) {
            if (!hist[c])
                continue;
            bits += (double)hist[c] * log2((double)m / (double)hist[c]) + 6;
        }
    }
    return bits;
}

/* Estimated compressed size, in bits, of the bytes p[0..m) (order-0
 * entropy plus a guess at the table). */
static double est_bytes(const uint8_t *p, size_t m)
{
    uint32_t hist[256] = {0};
    for (size_t i = 0; i < m; i++)
        hist[p[i]]++;
    double bits = 8;
    for (unsigned c = 0; c < 256; c++)
        if (hist[c])
            bits += (double)hist[c] * log2((double)m / (double)hist[c]) + 6;
    return bits;
}

/* Sparse planes of z[0..m): e->bm gets the bitmap of nonzero values (bit
 * i % 8 of byte i / 8), e->zs the nonzero values in order. Returns their
 * count. */
static size_t sparse_split(struct tsdb_dense_enc *e, const uint64_t *z, size_t m)
{
    size_t c = 0;
    memset(e->bm, 0, m / 8 + 1);
    for (size_t i = 0; i < m; i++) {
        if (z[i]) {
            e->bm[i >> 3] |= (uint8_t)(1u << (i & 7));
            e->zs[c++] = z[i];
        }
    }
    return c;
}

/* Append z[0..m) as a width byte and byte planes (room reserved by caller:
 * 1 + 8 * m). */
static void w_planes(struct dbuf *b, const uint64_t *z, size_t m)
{
    unsigned w = width_bytes(z, m);
    w_u8(b, w);
    for (unsigned p = 0; p < w; p++)
        for (size_t i = 0; i < m; i++)
            b->p[b->len++] = (uint8_t)(z[i] >> (8 * p));
}

static void time_residuals(const int64_t *ts, size_t n, uint64_t step, uint64_t r, uint64_t *z)
{
    uint64_t g = (uint64_t)ts[0];
    for (size_t i = 1; i < n; i++) {
        uint64_t pred = g + step;
        int64_t e = (int64_t)((uint64_t)ts[i] - pred);
        z[i - 1] = zz_enc(e);
        g = (e >= -(int64_t)r && e <= (int64_t)r) ? pred : (uint64_t)ts[i];
    }
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Time section into e->traw (empty for a single sample). */
static int build_time(struct tsdb_dense_enc *e, const int64_t *ts, size_t n)
{
    static const uint64_t rs[] = {0, 1, 2, 3, 4, 6, 8, 16, 64, 1024};
    e->traw.len = 0;
    if (n < 2)
        return 0;
    size_t m = n - 1;
    for (size_t i = 1; i < n; i++)
        e->x[i - 1] = (int64_t)((uint64_t)ts[i] - (uint64_t)ts[i - 1]);
    qsort(e->x, m, sizeof(*e->x), cmp_i64);
    uint64_t step = (uint64_t)e->x[m / 2];

    uint64_t best_r = 0;
    double best = 0;
    for (size_t j = 0; j < sizeof(rs) / sizeof(rs[0]); j++) {
        time_residuals(ts, n, step, rs[j], e->z);
        double c = est_planes(e->z, m);
        if (j == 0 || c < best) {
            best = c;
            best_r = rs[j];
        }
    }
    time_residuals(ts, n, step, best_r, e->z);
    int rc = dbuf_reserve(&e->traw, 21 + 8 * m);
    if (rc)
        return rc;
    w_v(&e->traw, (int64_t)step);
    w_uv(&e->traw, best_r);
    w_planes(&e->traw, e->z, m);
    return 0;
}

/* Is bits exactly unscale(k, sc) for an integer |k| < 2^53? OUT: *k. */
static bool scaled(uint64_t bits, unsigned sc, int64_t *k)
{
    double x = bs_float_from_bits(bits) * pow10_tab[sc & SCALE_D_MASK];
    if (!(fabs(x) < TWO53))
        return false; /* NaN, infinities, too large */
    int64_t kk = (int64_t)llround(x);
    if (bs_float_bits(unscale(kk, sc)) != bits)
        return false; /* inexact, or -0 */
    *k = kk;
    return true;
}

/* Exception list for the samples flagged in e->exc (room reserved). */
static void w_exceptions(struct dbuf *b, const uint8_t *exc, const uint64_t *vs, size_t n,
                         size_t nexc)
{
    w_uv(b, nexc);
    size_t base = 0;
    for (size_t i = 0; i < n; i++) {
        if (!exc[i])
            continue;
        w_uv(b, i - base);
        if (vs[i] == BS_STALE_NAN_BITS) {
            w_u8(b, EXC_STALE);
        } else {
            w_u8(b, EXC_RAW);
            w_be64(b, vs[i]);
        }
        base = i + 1;
    }
}

#define EXC_MAX_BYTES 20 /* per exception: index varint, tag, 8 bytes */

/* CONST candidate into e->vraw, if at most n/16 samples differ from the
 * first non-NaN one. Returns 0 with *ok telling whether it applies. */
static int build_const(struct tsdb_dense_enc *e, const uint64_t *vs, size_t n, bool *ok,
                       size_t *nexc_out)
{
    *ok = false;
    uint64_t base = vs[0];
    for (size_t i = 0; i < n; i++) {
        if (!isnan(bs_float_from_bits(vs[i]))) {
            base = vs[i];
            break;
        }
    }
    size_t nexc = 0;
    for (size_t i = 0; i < n; i++) {
        e->exc[i] = vs[i] != base;
        nexc += e->exc[i];
    }
    *nexc_out = nexc;
    if (nexc > n / 16)
        return 0;
    e->vraw.len = 0;
    int rc = dbuf_reserve(&e->vraw, 8 + 10 + nexc * EXC_MAX_BYTES);
    if (rc)
        return rc;
    w_be64(&e->vraw, base);
    w_exceptions(&e->vraw, e->exc, vs, n, nexc);
    *ok = true;
    return 0;
}

static uint64_t gcd64(uint64_t a, uint64_t b)
{
    while (b) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* Transform e->k[0..n) by xf into the residuals e->x[0..n-1), divided by
 * their gcd, and e->z, the same zig-zagged. Returns the gcd (1 when all
 * are zero). */
static uint64_t int_transform(struct tsdb_dense_enc *e, size_t n, int xf)
{
    /* Modulo 2^64: BITS integers span all of int64. */
    size_t m = n - 1;
    uint64_t dl = 0, g = 0;
    const int64_t *k = e->k;
    for (size_t i = 1; i < n; i++) {
        uint64_t x;
        if (xf == XF_RAW) {
            x = (uint64_t)k[i] - (uint64_t)k[0];
        } else if (xf == XF_DELTA) {
            x = (uint64_t)k[i] - (uint64_t)k[i - 1];
        } else {
            uint64_t d = (uint64_t)k[i] - (uint64_t)k[i - 1];
            x = d - dl;
            dl = d;
        }
        e->x[i - 1] = (int64_t)x;
        if (g != 1) /* most series reach 1 early: skip the divisions */
            g = gcd64(g, (int64_t)x < 0 ? 0 - x : x);
    }
    if (g == 0 || g > (uint64_t)INT64_MAX)
        g = 1;
    for (size_t i = 0; i < m; i++) {
        e->x[i] /= (int64_t)g;
        e->z[i] = zz_enc(e->x[i]);
    }
    return g;
}

/* The scale byte for recipe `recipe` over vs[0..n): e->mind[i] gets each
 * sample's smallest exact scale (TSDB_DENSE_MAX_SCALE + 1 when none); the
 * chunk scale is the smallest that leaves at most n/128 samples beyond the
 * hopeless ones. Returns the samples that are not exact at that scale (the
 * exceptions), or n + 1 when more than n/4 are hopeless. OUT: *sc. */
static size_t pick_scale(struct tsdb_dense_enc *e, const uint64_t *vs, size_t n, unsigned recipe,
                         unsigned *sc)
{
    size_t hist[TSDB_DENSE_MAX_SCALE + 2] = {0}, hopeless = 0;
    unsigned dmin = recipe == RECIPE_DIV3 ? 3 : 0;
    for (size_t i = 0; i < n; i++) {
        unsigned d = dmin;
        int64_t k;
        while (d <= TSDB_DENSE_MAX_SCALE && !scaled(vs[i], d | recipe << RECIPE_SHIFT, &k))
            d++;
        e->mind[i] = (uint8_t)d;
        hist[d]++;
        if (d > TSDB_DENSE_MAX_SCALE && ++hopeless > n / 4)
            return n + 1;
    }
    unsigned scale = dmin;
    size_t above = n - hopeless - hist[dmin];
    while (scale < TSDB_DENSE_MAX_SCALE && above > n / 128) {
        scale++;
        above -= hist[scale];
    }
    *sc = scale | recipe << RECIPE_SHIFT;
    size_t nexc = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t k;
        /* mind > scale means inexact at scale: skip the check */
        nexc += !(e->mind[i] <= scale && scaled(vs[i], *sc, &k));
    }
    return nexc;
}

/* What the INT and BITS candidates share: the integers e->k, the
 * exceptions e->exc, the scale byte and, per residual representation, the
 * transform estimated smallest. */
struct int_plan {
    unsigned sc;
    size_t nexc;
    int xf_planes, xf_coded;
};

/* Plan an INT candidate (bits false: every sample k / 10^d by one recipe)
 * or a BITS candidate (bits true: k is the float64 bit pattern itself, the
 * stale marker an exception). *ok false when INT does not apply (more than
 * n/4 exceptions). */
static void plan_int(struct tsdb_dense_enc *e, const uint64_t *vs, size_t n, bool bits,
                     struct int_plan *pl, bool *ok)
{
    *ok = false;
    memset(pl, 0, sizeof(*pl));
    if (!bits) {
        /* The recipe with the fewest exceptions, the plain division first. */
        size_t best = n + 1;
        for (unsigned recipe = 0; recipe < RECIPE_COUNT && best > 0; recipe++) {
            unsigned sc = 0;
            size_t c = pick_scale(e, vs, n, recipe, &sc);
            if (c < best) {
                best = c;
                pl->sc = sc;
            }
        }
        if (best > n / 4)
            return;
    }

    size_t nexc = 0;
    bool have = false;
    int64_t held = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t k = (int64_t)vs[i];
        if (bits)
            e->exc[i] = vs[i] == BS_STALE_NAN_BITS;
        else
            e->exc[i] = !scaled(vs[i], pl->sc, &k);
        if (e->exc[i]) {
            nexc++;
            e->k[i] = held; /* fixed up below for leading exceptions */
        } else {
            if (!have) {
                for (size_t j = 0; j < i; j++)
                    e->k[j] = k;
                have = true;
            }
            e->k[i] = held = k;
        }
    }
    pl->nexc = nexc;
    if (nexc > n / 4)
        return;
    if (n > 1) {
        double bp = 0, bc = 0;
        for (int xf = XF_RAW; xf <= XF_DOD; xf++) {
            int_transform(e, n, xf);
            double cp = est_planes(e->z, n - 1), cc = tsdb_resid_estimate(e->x, n - 1);
            if (xf == XF_RAW || cp < bp) {
                bp = cp;
                pl->xf_planes = xf;
            }
            if (xf == XF_RAW || cc < bc) {
                bc = cc;
                pl->xf_coded = xf;
            }
        }
    }
    *ok = true;
}

/* Write the planned INT or BITS candidate into e->vraw, its residuals as
 * byte planes (dense or sparse) or, with coded, as coded residuals. */
static int write_int(struct tsdb_dense_enc *e, const uint64_t *vs, size_t n,
                     const struct int_plan *pl, bool coded)
{
    int xf = coded ? pl->xf_coded : pl->xf_planes;
    uint64_t g = n > 1 ? int_transform(e, n, xf) : 1;
    size_t m = n > 1 ? n - 1 : 0, nz = 0;
    e->vraw.len = 0;
    int rc = dbuf_reserve(&e->vraw, 2 + 10 + 10 + 10 + pl->nexc * EXC_MAX_BYTES + 1 +
                                        (coded ? tsdb_resid_bound(m) : 8 * n + n / 8 + 2));
    if (rc)
        return rc;
    w_u8(&e->vraw, pl->sc);
    w_u8(&e->vraw, (unsigned)xf);
    w_v(&e->vraw, e->k[0]);
    w_uv(&e->vraw, g);
    w_exceptions(&e->vraw, e->exc, vs, n, pl->nexc);
    if (coded) {
        w_u8(&e->vraw, PLANES_CODED);
        e->vraw.len += tsdb_resid_encode(e->x, m, e->vraw.p + e->vraw.len);
        return 0;
    }
    /* Sparse planes when many residuals are zero (gauges that change on
     * some scrapes only): a bitmap and the nonzero values, instead of
     * coding each zero once per plane. */
    bool sparse = false;
    if (m >= 16) {
        nz = sparse_split(e, e->z, m);
        sparse = nz > 0 && nz < m &&
                 est_bytes(e->bm, (m + 7) / 8) + est_planes(e->zs, nz) < 0.97 * est_planes(e->z, m);
    }
    if (sparse) {
        unsigned w = width_bytes(e->zs, nz);
        w_u8(&e->vraw, PLANES_SPARSE | w);
        memcpy(e->vraw.p + e->vraw.len, e->bm, (m + 7) / 8);
        e->vraw.len += (m + 7) / 8;
        for (unsigned p = 0; p < w; p++)
            for (size_t i = 0; i < nz; i++)
                e->vraw.p[e->vraw.len++] = (uint8_t)(e->zs[i] >> (8 * p));
    } else {
        w_planes(&e->vraw, e->z, m);
    }
    return 0;
}

/* XOR candidate into e->vraw: first value raw, then Gorilla XOR. */
static int build_xor(struct tsdb_dense_enc *e, const uint64_t *vs, size_t n)
{
    e->vraw.len = 0;
    int rc = dbuf_reserve(&e->vraw, 8 + 10 * n + 1);
    if (rc)
        return rc;
    w_be64(&e->vraw, vs[0]);
    struct bitw w = {&e->vraw, 0, 0};
    unsigned lead_w = 0xff, trail_w = 0;
    for (size_t i = 1; i < n; i++) {
        uint64_t x = vs[i] ^ vs[i - 1];
        if (x == 0) {
            bw_put(&w, 0, 1);
            continue;
        }
        unsigned lead = (unsigned)__builtin_clzll(x);
        unsigned trail = (unsigned)__builtin_ctzll(x);
        if (lead > 31)
            lead = 31;
        if (lead_w != 0xff && lead >= lead_w && trail >= trail_w) {
            bw_put(&w, 2, 2);
            bw_put(&w, x >> trail_w, 64 - lead_w - trail_w);
            continue;
        }
        unsigned sig = 64 - lead - trail;
        bw_put(&w, 3, 2);
        bw_put(&w, lead, 5);
        bw_put(&w, sig & 63, 6);
        bw_put(&w, x >> trail, sig);
        lead_w = lead;
        trail_w = trail;
    }
    bw_flush(&w);
    return 0;
}

/* Write raw into e->sealed as a section (length, and raw length when
 * compressed, then the bytes), compressing when zc is given and that is
 * smaller. OUT: *z. */
static int seal(struct tsdb_dense_enc *e, ZSTD_CCtx *zc, const struct dbuf *raw, bool *z)
{
    e->sealed.len = 0;
    *z = false;
    size_t bound = ZSTD_compressBound(raw->len);
    int rc = dbuf_reserve(&e->sealed, 20 + (bound > raw->len ? bound : raw->len));
    if (rc)
        return rc;
    if (zc && raw->len >= 16) {
        uint8_t *dst = e->sealed.p + 20;
        size_t zl = ZSTD_compress2(zc, dst, bound, raw->p, raw->len);
        if (!ZSTD_isError(zl) && zl + uv_len(raw->len) < raw->len) {
            w_uv(&e->sealed, zl);
            w_uv(&e->sealed, raw->len);
            memmove(e->sealed.p + e->sealed.len, dst, zl);
            e->sealed.len += zl;
            *z = true;
            return 0;
        }
    }
    w_uv(&e->sealed, raw->len);
    if (raw->len)
        memcpy(e->sealed.p + e->sealed.len, raw->p, raw->len);
    e->sealed.len += raw->len;
    return 0;
}

/* Seal e->vraw (with zstd unless raw_only) and keep it in e->vbest if
 * smaller than what is there. */
static int keep_if_smaller(struct tsdb_dense_enc *e, int mode, bool raw_only, int *best_mode,
                           bool *best_z)
{
    bool z;
    int rc = seal(e, raw_only ? NULL : e->zc, &e->vraw, &z);
    if (rc)
        return rc;
    if (*best_mode >= 0 && e->sealed.len >= e->vbest.len)
        return 0;
    struct dbuf t = e->vbest;
    e->vbest = e->sealed;
    e->sealed = t;
    *best_mode = mode;
    *best_z = z;
    return 0;
}

/* Both residual representations of a planned INT or BITS candidate, each
 * kept when smaller than the best so far. Coded residuals are left out for
 * a single sample and whenever they would exceed the decoder's section
 * cap; they are stored as they are (zstd finds nothing left in them). */
static int int_candidates(struct tsdb_dense_enc *e, const uint64_t *vs, size_t n, int mode,
                          const struct int_plan *pl, int *best_mode, bool *best_z)
{
    int rc;
    if ((rc = write_int(e, vs, n, pl, false)) ||
        (rc = keep_if_smaller(e, mode, false, best_mode, best_z)))
        return rc;
    if (n < 2)
        return 0;
    if ((rc = write_int(e, vs, n, pl, true)))
        return rc;
    if (e->vraw.len > SECTION_FIXED + (size_t)SECTION_PER_SAMPLE * n)
        return 0;
    return keep_if_smaller(e, mode, true, best_mode, best_z);
}

/* Encode ts/vs[0..n) into *out. With shared set the time section is left
 * out and tref written in its place (TSDB_CHUNK_ENC_DENSE_ST). */
static int encode(struct tsdb_dense_enc *e, const int64_t *ts, const uint64_t *vs, size_t n,
                  bool shared, uint64_t tref, uint8_t **out, size_t *out_len)
{
    int rc = enc_grow(e, n);
    if (rc)
        return rc;

    /* Cheapest first: an exact CONST or an exact INT is kept without
     * trying the more general modes (they cannot win by more than noise);
     * with exceptions every applicable mode competes on final size. */
    int best_mode = -1;
    bool vz = false, ok;
    size_t nexc = 0;
    if ((rc = build_const(e, vs, n, &ok, &nexc)))
        return rc;
    if (ok && (rc = keep_if_smaller(e, MODE_CONST, false, &best_mode, &vz)))
        return rc;
    if (!ok || nexc > 0) {
        struct int_plan pl;
        plan_int(e, vs, n, false, &pl, &ok);
        if (ok && (rc = int_candidates(e, vs, n, MODE_INT, &pl, &best_mode, &vz)))
            return rc;
        if (!ok || pl.nexc > 0) {
            plan_int(e, vs, n, true, &pl, &ok);
            if (ok && (rc = int_candidates(e, vs, n, MODE_BITS, &pl, &best_mode, &vz)))
                return rc;
            if ((rc = build_xor(e, vs, n)) ||
                (rc = keep_if_smaller(e, MODE_XOR, false, &best_mode, &vz)))
                return rc;
        }
    }

    bool tz = false;
    if (shared)
        e->sealed.len = 0; /* no time section: tref goes in its place */
    else if ((rc = build_time(e, ts, n)) || (rc = seal(e, e->tzc, &e->traw, &tz)))
        return rc;

    size_t total = 1 + 10 + 10 + 10 + e->sealed.len + e->vbest.len;
    uint8_t *p = malloc(total);
    if (!p)
        return BS_ENOMEM;
    struct dbuf o = {p, 0, total};
    w_u8(&o, (tz ? F_TZSTD : 0) | (vz ? F_VZSTD : 0) | ((unsigned)best_mode << F_MODE_SHIFT));
    w_uv(&o, n);
    w_v(&o, ts[0]);
    if (shared)
        w_uv(&o, tref);
    else
        memcpy(o.p + o.len, e->sealed.p, e->sealed.len);
    o.len += e->sealed.len;
    memcpy(o.p + o.len, e->vbest.p, e->vbest.len);
    o.len += e->vbest.len;
    *out = p;
    *out_len = o.len;
    return 0;
}

int tsdb_dense_encode(struct tsdb_dense_enc *e, const int64_t *ts, const uint64_t *vs, size_t n,
                      uint8_t **out, size_t *out_len)
{
    if (n == 0 || n > TSDB_DENSE_MAX_SAMPLES)
        return BS_EINVAL;
    if (e)
        return encode(e, ts, vs, n, false, 0, out, out_len);
    struct tsdb_dense_enc *tmp = tsdb_dense_enc_new(0);
    if (!tmp)
        return BS_ENOMEM;
    int rc = encode(tmp, ts, vs, n, false, 0, out, out_len);
    tsdb_dense_enc_free(tmp);
    return rc;
}

int tsdb_dense_encode_shared(struct tsdb_dense_enc *e, const int64_t *ts, const uint64_t *vs,
                             size_t n, uint64_t tref, uint8_t **out, size_t *out_len)
{
    if (n == 0 || n > TSDB_DENSE_MAX_SAMPLES)
        return BS_EINVAL;
    if (e)
        return encode(e, ts, vs, n, true, tref, out, out_len);
    struct tsdb_dense_enc *tmp = tsdb_dense_enc_new(0);
    if (!tmp)
        return BS_ENOMEM;
    int rc = encode(tmp, ts, vs, n, true, tref, out, out_len);
    tsdb_dense_enc_free(tmp);
    return rc;
}

/* ------------------------------------------------------------- decoder */

/* A zstd decompression context per thread, freed at thread exit. */
static pthread_key_t dctx_key;
static pthread_once_t dctx_once = PTHREAD_ONCE_INIT;
static bool dctx_key_ok;

static void dctx_destroy(void *p)
{
    ZSTD_freeDCtx(p);
}

static void dctx_key_make(void)
{
    dctx_key_ok = pthread_key_create(&dctx_key, dctx_destroy) == 0;
}

static ZSTD_DCtx *dctx_get(void)
{
    pthread_once(&dctx_once, dctx_key_make);
    if (!dctx_key_ok)
        return NULL;
    ZSTD_DCtx *dc = pthread_getspecific(dctx_key);
    if (dc)
        return dc;
    dc = ZSTD_createDCtx();
    if (!dc)
        return NULL;
    if (ZSTD_isError(ZSTD_DCtx_setParameter(dc, ZSTD_d_format, ZSTD_f_zstd1_magicless)) ||
        pthread_setspecific(dctx_key, dc) != 0) {
        ZSTD_freeDCtx(dc);
        return NULL;
    }
    return dc;
}

/* A bounds-checked reader over p[pos..len). */
struct rd {
    const uint8_t *p;
    size_t len, pos;
};

static bool r_uv(struct rd *r, uint64_t *x)
{
    size_t k = bs_get_uvarint(r->p + r->pos, r->len - r->pos, x);
    r->pos += k;
    return k > 0;
}

static bool r_v(struct rd *r, int64_t *x)
{
    size_t k = bs_get_varint(r->p + r->pos, r->len - r->pos, x);
    r->pos += k;
    return k > 0;
}

static bool r_u8(struct rd *r, uint8_t *x)
{
    if (r->pos >= r->len)
        return false;
    *x = r->p[r->pos++];
    return true;
}

static bool r_be64(struct rd *r, uint64_t *x)
{
    if (r->len - r->pos < 8)
        return false;
    *x = bs_get_be64(r->p + r->pos);
    r->pos += 8;
    return true;
}

struct section {
    const uint8_t *p; /* stored bytes in the chunk */
    size_t len;       /* stored length */
    size_t raw;       /* inflated length (== len when not compressed) */
    bool z;
};

static bool r_section(struct rd *r, bool z, uint32_t n, struct section *s)
{
    uint64_t len, raw;
    if (!r_uv(r, &len) || len > r->len - r->pos)
        return false;
    raw = len;
    if (z && (!r_uv(r, &raw) || len > r->len - r->pos))
        return false;
    if (raw > SECTION_FIXED + (uint64_t)SECTION_PER_SAMPLE * n)
        return false;
    s->p = r->p + r->pos;
    s->len = (size_t)len;
    s->raw = (size_t)raw;
    s->z = z;
    r->pos += (size_t)len;
    return true;
}

/* Point the decoder at the next exception, if any remain. */
static bool exc_load(struct tsdb_dense_dec *d)
{
    if (d->exc_left == 0)
        return true;
    struct rd r = {d->exc, (size_t)(d->exc_end - d->exc), 0};
    uint64_t gap;
    uint8_t tag;
    if (!r_uv(&r, &gap) || gap >= d->n - d->exc_base || !r_u8(&r, &tag))
        return false;
    if (tag == EXC_STALE)
        d->exc_bits = BS_STALE_NAN_BITS;
    else if (tag != EXC_RAW || !r_be64(&r, &d->exc_bits))
        return false;
    d->exc_idx = d->exc_base + gap;
    d->exc_base = d->exc_idx + 1;
    d->exc += r.pos;
    return true;
}

/* Parse the exception list at r (validating it entirely) and set up the
 * cursor. */
static bool exc_parse(struct tsdb_dense_dec *d, struct rd *r)
{
    uint64_t cnt;
    if (!r_uv(r, &cnt) || cnt > d->n)
        return false;
    size_t start = r->pos;
    uint64_t base = 0;
    for (uint64_t j = 0; j < cnt; j++) {
        uint64_t gap, bits;
        uint8_t tag;
        if (!r_uv(r, &gap) || gap >= d->n - base || !r_u8(r, &tag))
            return false;
        if (tag == EXC_RAW) {
            if (!r_be64(r, &bits))
                return false;
        } else if (tag != EXC_STALE) {
            return false;
        }
        base += gap + 1;
    }
    d->exc = r->p + start;
    d->exc_end = r->p + r->pos;
    d->exc_left = (uint32_t)cnt;
    d->exc_base = 0;
    return exc_load(d);
}

static bool parse_planes(struct rd *r, uint32_t n, uint8_t *w, const uint8_t **planes)
{
    if (!r_u8(r, w) || *w > 8)
        return false;
    if (r->len - r->pos != (size_t)*w * (n - 1))
        return false;
    *planes = r->p + r->pos;
    r->pos = r->len;
    return true;
}

/* The planes of INT values: dense (as parse_planes) or sparse (width byte
 * with PLANES_SPARSE: a bitmap of the nonzero residuals, then w planes of
 * only those). */
static bool parse_vplanes(struct tsdb_dense_dec *d, struct rd *r)
{
    uint8_t w;
    size_t m = (size_t)d->n - 1;
    d->vstride = (uint32_t)m;
    d->vmap = NULL;
    if (r->pos < r->len && r->p[r->pos] == PLANES_CODED) {
        r->pos++;
        d->vrd = malloc(sizeof(*d->vrd));
        if (!d->vrd || !tsdb_resid_dec_init(d->vrd, r->p + r->pos, r->len - r->pos))
            return false;
        r->pos = r->len;
        return true;
    }
    if (r->pos >= r->len || !(r->p[r->pos] & PLANES_SPARSE))
        return parse_planes(r, d->n, &d->vw, &d->vplanes);
    if (!r_u8(r, &w))
        return false;
    w &= (uint8_t)~PLANES_SPARSE;
    size_t mb = (m + 7) / 8;
    if (w == 0 || w > 8 || r->len - r->pos < mb)
        return false;
    const uint8_t *map = r->p + r->pos;
    size_t c = 0;
    for (size_t i = 0; i < mb; i++)
        c += (size_t)__builtin_popcount(map[i]);
    if ((m & 7) && (map[mb - 1] >> (m & 7)))
        return false; /* bits past the last residual */
    r->pos += mb;
    if (r->len - r->pos != (size_t)w * c)
        return false;
    d->vw = w;
    d->vmap = map;
    d->vstride = (uint32_t)c;
    d->vnext = 0;
    d->vplanes = r->p + r->pos;
    r->pos = r->len;
    return true;
}

static bool parse_time(struct tsdb_dense_dec *d, const uint8_t *p, size_t len)
{
    if (d->n == 1)
        return len == 0;
    struct rd r = {p, len, 0};
    int64_t step;
    if (!r_v(&r, &step) || !r_uv(&r, &d->r) || d->r > (uint64_t)INT64_MAX)
        return false;
    d->step = (uint64_t)step;
    return parse_planes(&r, d->n, &d->tw, &d->tplanes);
}

static bool parse_values(struct tsdb_dense_dec *d, const uint8_t *p, size_t len)
{
    struct rd r = {p, len, 0};
    switch (d->mode) {
    case MODE_CONST:
        return r_be64(&r, &d->cbits) && exc_parse(d, &r) && r.pos == r.len;
    case MODE_INT:
    case MODE_BITS: {
        int64_t k0;
        if (!r_u8(&r, &d->scale) || !scale_valid(d->scale) ||
            (d->mode == MODE_BITS && d->scale != 0) || !r_u8(&r, &d->xform) ||
            d->xform > XF_DOD || !r_v(&r, &k0) || !r_uv(&r, &d->gcd) || d->gcd == 0)
            return false;
        d->cbits = (uint64_t)k0; /* k0, kept for XF_RAW */
        return exc_parse(d, &r) && parse_vplanes(d, &r);
    }
    case MODE_XOR:
        if (!r_be64(&r, &d->cbits))
            return false;
        d->xp = p + r.pos;
        d->xnbits = (len - r.pos) * 8;
        d->lead = 0xff;
        return true;
    default:
        return false;
    }
}

/* The chunk header: flags, n, t0 (checked). */
static bool r_header(struct rd *r, uint8_t *flags, uint32_t *n, int64_t *t0)
{
    uint64_t cnt;
    if (!r->p || !r_u8(r, flags) || (*flags & F_RESERVED) || !r_uv(r, &cnt) || cnt == 0 ||
        cnt > TSDB_DENSE_MAX_SAMPLES || !r_v(r, t0))
        return false;
    *n = (uint32_t)cnt;
    return true;
}

int tsdb_dense_peek(const uint8_t *p, size_t len, uint32_t *n, int64_t *t0)
{
    struct rd r = {p, len, 0};
    uint8_t flags;
    uint32_t cnt;
    int64_t t;
    if (!r_header(&r, &flags, &cnt, &t))
        return BS_ECORRUPT;
    if (n)
        *n = cnt;
    if (t0)
        *t0 = t;
    return 0;
}

int tsdb_dense_shared_ref(const uint8_t *p, size_t len, uint64_t *tref)
{
    struct rd r = {p, len, 0};
    uint8_t flags;
    uint32_t cnt;
    int64_t t;
    if (!r_header(&r, &flags, &cnt, &t) || (flags & F_TZSTD) || !r_uv(&r, tref))
        return BS_ECORRUPT;
    return 0;
}

/* The header and time section of the TSDB_CHUNK_ENC_DENSE chunk
 * tp[0..tlen) that a shared-time chunk of n samples starting at t0 refers
 * to; what follows the time section is not looked at. */
static bool r_time_of(const uint8_t *tp, size_t tlen, uint32_t n, int64_t t0, struct section *ts,
                      size_t *end)
{
    struct rd r = {tp, tlen, 0};
    uint8_t flags;
    uint32_t tn;
    int64_t tt0;
    if (!r_header(&r, &flags, &tn, &tt0) || tn != n || tt0 != t0 ||
        !r_section(&r, flags & F_TZSTD, n, ts))
        return false;
    if (end)
        *end = r.pos;
    return true;
}

int tsdb_dense_time_prefix(const uint8_t *p, size_t len, size_t *prefix_len)
{
    uint32_t n;
    int64_t t0;
    struct section ts;
    if (tsdb_dense_peek(p, len, &n, &t0) || !r_time_of(p, len, n, t0, &ts, prefix_len))
        return BS_ECORRUPT;
    return 0;
}

static int inflate(const struct section *s, uint8_t *dst)
{
    ZSTD_DCtx *dc = dctx_get();
    if (!dc)
        return BS_ENOMEM;
    size_t got = ZSTD_decompressDCtx(dc, dst, s->raw, s->p, s->len);
    if (ZSTD_isError(got)) {
        ZSTD_DCtx_reset(dc, ZSTD_reset_session_only);
        return ZSTD_getErrorCode(got) == ZSTD_error_memory_allocation ? BS_ENOMEM : BS_ECORRUPT;
    }
    return got == s->raw ? 0 : BS_ECORRUPT;
}

/* Set up d over chunk p[0..len): a TSDB_CHUNK_ENC_DENSE chunk when tp is
 * NULL, else a TSDB_CHUNK_ENC_DENSE_ST chunk whose time section is that of
 * the dense chunk tp[0..tlen). */
static int dec_open(struct tsdb_dense_dec *d, const uint8_t *p, size_t len, const uint8_t *tp,
                    size_t tlen)
{
    memset(d, 0, sizeof(*d));
    uint32_t n;
    int64_t t0;
    int rc = BS_ECORRUPT;
    struct rd r = {p, len, 0};
    uint8_t flags = 0;
    if (!r_header(&r, &flags, &n, &t0))
        goto fail;
    d->n = n;
    d->mode = (uint8_t)((flags & F_MODE_MASK) >> F_MODE_SHIFT);
    d->g = (uint64_t)t0;
    struct section ts, vs;
    if (tp) {
        uint64_t tref;
        if ((flags & F_TZSTD) || !r_uv(&r, &tref) || !r_time_of(tp, tlen, n, t0, &ts, NULL))
            goto fail;
    } else if (!r_section(&r, flags & F_TZSTD, n, &ts)) {
        goto fail;
    }
    if (!r_section(&r, flags & F_VZSTD, n, &vs) || r.pos != len)
        goto fail;

    const uint8_t *tsp = ts.p, *vp = vs.p;
    if (ts.z || vs.z) {
        size_t need = (ts.z ? ts.raw : 0) + (vs.z ? vs.raw : 0);
        d->owned = malloc(need ? need : 1);
        if (!d->owned) {
            rc = BS_ENOMEM;
            goto fail;
        }
        uint8_t *at = d->owned;
        if (ts.z) {
            if ((rc = inflate(&ts, at)))
                goto fail;
            tsp = at;
            at += ts.raw;
        }
        if (vs.z) {
            if ((rc = inflate(&vs, at)))
                goto fail;
            vp = at;
        }
        rc = BS_ECORRUPT;
    }
    if (!parse_time(d, tsp, ts.raw) || !parse_values(d, vp, vs.raw))
        goto fail;
    return 0;
fail:
    tsdb_dense_dec_fini(d);
    d->err = rc;
    d->n = 0;
    return rc;
}

int tsdb_dense_dec_init(struct tsdb_dense_dec *d, const uint8_t *p, size_t len)
{
    return dec_open(d, p, len, NULL, 0);
}

int tsdb_dense_dec_init_shared(struct tsdb_dense_dec *d, const uint8_t *p, size_t len,
                               const uint8_t *tp, size_t tlen)
{
    if (!tp) {
        memset(d, 0, sizeof(*d));
        d->err = BS_ECORRUPT;
        return BS_ECORRUPT;
    }
    return dec_open(d, p, len, tp, tlen);
}

static uint64_t plane_get_s(const uint8_t *planes, uint8_t w, size_t stride, uint32_t j)
{
    uint64_t z = 0;
    for (unsigned p = 0; p < w; p++)
        z |= (uint64_t)planes[p * stride + j] << (8 * p);
    return z;
}

static uint64_t plane_get(const uint8_t *planes, uint8_t w, uint32_t n, uint32_t j)
{
    uint64_t z = 0;
    size_t stride = (size_t)n - 1;
    for (unsigned p = 0; p < w; p++)
        z |= (uint64_t)planes[p * stride + j] << (8 * p);
    return z;
}

static bool xget(struct tsdb_dense_dec *d, unsigned n, uint64_t *out)
{
    if (d->xnbits - d->xpos < n)
        return false;
    uint64_t v = 0;
    while (n > 0) {
        size_t byte = d->xpos >> 3;
        unsigned room = 8 - (unsigned)(d->xpos & 7);
        unsigned take = n < room ? n : room;
        v = (v << take) | ((uint64_t)(d->xp[byte] >> (room - take)) & ((1u << take) - 1));
        d->xpos += take;
        n -= take;
    }
    *out = v;
    return true;
}

static bool xor_next(struct tsdb_dense_dec *d)
{
    uint64_t b, x;
    if (!xget(d, 1, &b))
        return false;
    if (!b)
        return true;
    if (!xget(d, 1, &b))
        return false;
    if (!b) {
        if (d->lead == 0xff || !xget(d, 64u - d->lead - d->trail, &x))
            return false;
        d->cbits ^= x << d->trail;
        return true;
    }
    uint64_t lead, sig;
    if (!xget(d, 5, &lead) || !xget(d, 6, &sig))
        return false;
    if (sig == 0)
        sig = 64;
    if (lead + sig > 64 || !xget(d, (unsigned)sig, &x))
        return false;
    d->lead = (uint8_t)lead;
    d->trail = (uint8_t)(64 - lead - sig);
    d->cbits ^= x << d->trail;
    return true;
}

/* Time of sample i into d->t (samples are visited in order). */
static void time_step(struct tsdb_dense_dec *d, uint32_t i)
{
    if (i == 0) {
        d->t = (int64_t)d->g;
        return;
    }
    int64_t e = (int64_t)zz_dec(plane_get(d->tplanes, d->tw, d->n, i - 1));
    uint64_t pred = d->g + d->step;
    uint64_t t = pred + (uint64_t)e;
    d->g = (e >= -(int64_t)d->r && e <= (int64_t)d->r) ? pred : t;
    d->t = (int64_t)t;
}

bool tsdb_dense_dec_next(struct tsdb_dense_dec *d)
{
    if (d->err || d->i >= d->n)
        return false;
    uint32_t i = d->i;
    time_step(d, i);
    switch (d->mode) {
    case MODE_CONST:
        d->v = d->cbits;
        break;
    case MODE_INT:
    case MODE_BITS:
        if (i == 0) {
            d->k = d->cbits;
        } else {
            uint32_t j = i - 1;
            int64_t r = 0; /* the residual, before the gcd */
            if (d->vrd) {
                if (!tsdb_resid_dec_next(d->vrd, &r)) {
                    d->err = BS_ECORRUPT;
                    return false;
                }
            } else if (!d->vmap) {
                r = (int64_t)zz_dec(plane_get(d->vplanes, d->vw, d->n, j));
            } else if ((d->vmap[j >> 3] >> (j & 7)) & 1) {
                r = (int64_t)zz_dec(plane_get_s(d->vplanes, d->vw, d->vstride, d->vnext++));
            }
            uint64_t x = (uint64_t)r * d->gcd;
            if (d->xform == XF_RAW) {
                d->k = d->cbits + x;
            } else if (d->xform == XF_DELTA) {
                d->k += x;
            } else {
                d->dl += x;
                d->k += d->dl;
            }
        }
        d->v = d->mode == MODE_BITS ? d->k : bs_float_bits(unscale((int64_t)d->k, d->scale));
        break;
    default: /* MODE_XOR */
        if (i > 0 && !xor_next(d)) {
            d->err = BS_ECORRUPT;
            return false;
        }
        d->v = d->cbits;
        break;
    }
    if (d->exc_left && d->exc_idx == i) {
        d->v = d->exc_bits;
        d->exc_left--;
        if (!exc_load(d)) {
            d->err = BS_ECORRUPT;
            return false;
        }
    }
    d->i++;
    return true;
}

bool tsdb_dense_dec_seek(struct tsdb_dense_dec *d, int64_t t)
{
    if (d->i > 0 && d->t >= t && !d->err)
        return true;
    while (tsdb_dense_dec_next(d))
        if (d->t >= t)
            return true;
    return false;
}

void tsdb_dense_dec_fini(struct tsdb_dense_dec *d)
{
    free(d->owned);
    d->owned = NULL;
    free(d->vrd);
    d->vrd = NULL;
}

int tsdb_dense_time_equal(const uint8_t *p, size_t len, const int64_t *ts, size_t n, bool *eq)
{
    *eq = false;
    uint32_t cn;
    int64_t t0;
    struct section s;
    if (tsdb_dense_peek(p, len, &cn, &t0) || !r_time_of(p, len, cn, t0, &s, NULL))
        return BS_ECORRUPT;
    if (cn != n || t0 != ts[0])
        return 0;
    struct tsdb_dense_dec d;
    memset(&d, 0, sizeof(d));
    d.n = cn;
    d.g = (uint64_t)t0;
    const uint8_t *tp = s.p;
    if (s.z) {
        d.owned = malloc(s.raw ? s.raw : 1);
        if (!d.owned)
            return BS_ENOMEM;
        int rc = inflate(&s, d.owned);
        if (rc) {
            free(d.owned);
            return rc;
        }
        tp = d.owned;
    }
    int rc = BS_ECORRUPT;
    if (parse_time(&d, tp, s.raw)) {
        rc = 0;
        bool same = true;
        for (uint32_t i = 0; i < cn && same; i++) {
            time_step(&d, i);
            same = d.t == ts[i];
        }
        *eq = same;
    }
    free(d.owned);
    return rc;
}

/* Decode the chunk p (tp: see dec_open) into ts/vs. */
static int decode_all(const uint8_t *p, size_t len, const uint8_t *tp, size_t tlen, int64_t *ts,
                      uint64_t *vs, size_t cap, size_t *n)
{
    struct tsdb_dense_dec d;
    int rc = dec_open(&d, p, len, tp, tlen);
    *n = 0;
    if (rc) {
        tsdb_dense_dec_fini(&d);
        return rc;
    }
    if (d.n > cap) {
        *n = d.n;
        tsdb_dense_dec_fini(&d);
        return BS_ELIMIT;
    }
    size_t i = 0;
    while (tsdb_dense_dec_next(&d)) {
        ts[i] = d.t;
        vs[i] = d.v;
        i++;
    }
    rc = d.err;
    if (!rc && i != d.n)
        rc = BS_ECORRUPT;
    tsdb_dense_dec_fini(&d);
    if (rc)
        return rc;
    *n = i;
    return 0;
}

int tsdb_dense_decode(const uint8_t *p, size_t len, int64_t *ts, uint64_t *vs, size_t cap,
                      size_t *n)
{
    return decode_all(p, len, NULL, 0, ts, vs, cap, n);
}

int tsdb_dense_decode_shared(const uint8_t *p, size_t len, const uint8_t *tp, size_t tlen,
                             int64_t *ts, uint64_t *vs, size_t cap, size_t *n)
{
    *n = 0;
    if (!tp)
        return BS_ECORRUPT;
    return decode_all(p, len, tp, tlen, ts, vs, cap, n);
}
