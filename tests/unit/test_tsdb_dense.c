/* SPDX-License-Identifier: Apache-2.0
 *
 * Unit tests of the dense chunk codec (chunk_dense.c): bit-exact round
 * trips over random series of every shape the codec special-cases (integer
 * counters, decimal gauges, constants, random bit patterns, NaN payloads
 * and stale markers mid-chunk, -0, subnormals, infinities, huge and tiny
 * values; regular, jittered, gappy and extreme timestamps), the mode the
 * encoder picks and the size it reaches on easy series, iterator seek, and
 * truncated or bit-flipped chunks that must fail cleanly (run under ASan by
 * `make check`).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tsdb/tsdb_int.h"

static uint64_t rng_state = 0x2545f4914f6cdd1dULL;

static uint64_t rnd(void)
{
    /* splitmix64 */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static uint64_t fbits(double v)
{
    return bs_float_bits(v);
}

/* The value mode the chunk header records (docs/format/chunks.md). */
enum { M_CONST = 0, M_INT = 1, M_XOR = 2, M_BITS = 3 };
static int chunk_mode(const uint8_t *p)
{
    return (p[0] >> 2) & 3;
}

static struct tsdb_dense_enc *enc;

static int setup(void **state)
{
    (void)state;
    enc = tsdb_dense_enc_new(0);
    return enc ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    tsdb_dense_enc_free(enc);
    return 0;
}

/* Encode, then decode from an exact-size copy (so any read past the end is
 * an ASan error) both with tsdb_dense_decode and the iterator; every time
 * and every value bit pattern must come back. Returns the chunk (caller
 * frees) and its length. */
static uint8_t *roundtrip(const int64_t *ts, const uint64_t *vs, size_t n, size_t *len_out)
{
    uint8_t *p = NULL;
    size_t len = 0;
    assert_int_equal(tsdb_dense_encode(enc, ts, vs, n, &p, &len), 0);
    uint8_t *copy = malloc(len);
    assert_non_null(copy);
    memcpy(copy, p, len);
    free(p);

    uint32_t pn;
    int64_t t0;
    assert_int_equal(tsdb_dense_peek(copy, len, &pn, &t0), 0);
    assert_int_equal(pn, n);
    assert_int_equal(t0, ts[0]);

    int64_t *dts = malloc(n * sizeof(*dts));
    uint64_t *dvs = malloc(n * sizeof(*dvs));
    size_t got = 0;
    assert_int_equal(tsdb_dense_decode(copy, len, dts, dvs, n, &got), 0);
    assert_int_equal(got, n);
    for (size_t i = 0; i < n; i++) {
        if (dts[i] != ts[i])
            fail_msg("sample %zu of %zu: time %lld, want %lld", i, n, (long long)dts[i],
                     (long long)ts[i]);
        if (dvs[i] != vs[i])
            fail_msg("sample %zu of %zu (mode %d): value bits %016llx, want %016llx", i, n,
                     chunk_mode(copy), (unsigned long long)dvs[i], (unsigned long long)vs[i]);
    }
    if (n > 1) /* one slot short */
        assert_int_equal(tsdb_dense_decode(copy, len, dts, dvs, n - 1, &got), BS_ELIMIT);

    struct tsdb_dense_dec d;
    assert_int_equal(tsdb_dense_dec_init(&d, copy, len), 0);
    for (size_t i = 0; i < n; i++) {
        assert_true(tsdb_dense_dec_next(&d));
        assert_int_equal(d.t, ts[i]);
        assert_true(d.v == vs[i]);
    }
    assert_false(tsdb_dense_dec_next(&d));
    assert_int_equal(d.err, 0);
    tsdb_dense_dec_fini(&d);
    free(dts);
    free(dvs);
    *len_out = len;
    return copy;
}

static void roundtrip_only(const int64_t *ts, const uint64_t *vs, size_t n)
{
    size_t len;
    free(roundtrip(ts, vs, n, &len));
}

static uint64_t special_value(void)
{
    static const uint64_t sp[] = {
        BS_STALE_NAN_BITS,
        UINT64_C(0x7ff8000000000000), /* the default NaN */
        UINT64_C(0x7ff8000000000001), /* NaN with payload */
        UINT64_C(0xfff8000000000123), /* negative NaN with payload */
        UINT64_C(0x7ff0000000000000), /* +Inf */
        UINT64_C(0xfff0000000000000), /* -Inf */
        UINT64_C(0x8000000000000000), /* -0 */
        UINT64_C(0x0000000000000001), /* smallest subnormal */
        UINT64_C(0x800fffffffffffff), /* negative subnormal */
        UINT64_C(0x7fefffffffffffff), /* DBL_MAX */
        UINT64_C(0x0010000000000000), /* DBL_MIN */
    };
    return sp[rnd() % (sizeof(sp) / sizeof(sp[0]))];
}

/* One value of a series of the given kind. */
static uint64_t gen_value(int kind, double *acc, size_t i)
{
    switch (kind) {
    case 0: /* integer counter with varying increments */
        *acc += (double)(rnd() % (rnd() % 2 ? 10 : 100000));
        return fbits(*acc);
    case 1: /* gauge in steps of 0.1, random walk around zero */
        *acc += (double)((int64_t)(rnd() % 21) - 10);
        return fbits(*acc / 10.0);
    case 2: /* two-decimal counter (cpu seconds) */
        *acc += (double)(rnd() % 1500);
        return fbits(*acc / 100.0);
    case 3: /* random bit patterns */
        return rnd();
    case 4: /* constant */
        return fbits(42.5);
    case 5: /* decimals with a few specials mixed in */
        if (rnd() % 40 == 0)
            return special_value();
        return fbits((double)(int64_t)(rnd() % 2000001 - 1000000) / 1000.0);
    case 6: /* specials and randoms only */
        return rnd() % 2 ? special_value() : rnd();
    case 7: /* huge and tiny magnitudes */
        return fbits((rnd() % 2 ? 1e300 : 1e-300) * (double)(rnd() % 1000));
    case 8: /* integer gauge near 2^53, some beyond exact integers */
        return fbits(9007199254740992.0 - (double)(rnd() % 4096) + (double)(i % 3) * 2.0);
    case 9: /* stale marker mid-chunk in an integer counter */
        *acc += 1;
        return i % 97 == 50 ? BS_STALE_NAN_BITS : fbits(*acc);
    default: /* constant with -0 and NaN excursions */
        return rnd() % 16 == 0 ? special_value() : fbits(1);
    }
}

static int64_t gen_times(int tkind, int64_t *ts, size_t n)
{
    int64_t t = (int64_t)(rnd() % (UINT64_C(1) << 44)) - (INT64_C(1) << 43); /* may be < 0 */
    int64_t step = 1 + (int64_t)(rnd() % 60000);
    for (size_t i = 0; i < n; i++) {
        int64_t jitter = 0;
        switch (tkind) {
        case 1: /* a few ms around a grid */
            jitter = (int64_t)(rnd() % 7) - 3;
            break;
        case 2: /* big jitter */
            jitter = (int64_t)(rnd() % 100000);
            break;
        case 3: /* occasional big gaps */
            if (rnd() % 50 == 0)
                jitter = (int64_t)(rnd() % (UINT64_C(1) << 40));
            break;
        default:
            break;
        }
        ts[i] = t + (tkind == 1 ? jitter : 0);
        t += step + (tkind == 1 ? 0 : jitter);
    }
    return step;
}

static void test_roundtrip_random(void **state)
{
    (void)state;
    enum { MAXN = 6000 };
    int64_t *ts = malloc(MAXN * sizeof(*ts));
    uint64_t *vs = malloc(MAXN * sizeof(*vs));
    size_t total = 0;
    for (int series = 0; series < 1500; series++) {
        size_t n = 1 + rnd() % (rnd() % 4 ? 800 : MAXN);
        int kind = (int)(rnd() % 11);
        gen_times((int)(rnd() % 4), ts, n);
        double acc = (double)(rnd() % 100000);
        for (size_t i = 0; i < n; i++)
            vs[i] = gen_value(kind, &acc, i);
        roundtrip_only(ts, vs, n);
        total += n;
    }
    assert_true(total > 500000);
    free(ts);
    free(vs);
}

static void test_roundtrip_edges(void **state)
{
    (void)state;
    /* Time extremes: the residual arithmetic wraps. */
    int64_t ts[] = {INT64_MIN, INT64_MIN + 1, -1, 0, 1, INT64_MAX / 2, INT64_MAX - 1, INT64_MAX};
    uint64_t vs[] = {BS_STALE_NAN_BITS,
                     0,
                     UINT64_C(0x8000000000000000),
                     ~UINT64_C(0),
                     UINT64_C(1),
                     BS_STALE_NAN_BITS,
                     UINT64_C(0x7ff0000000000000),
                     UINT64_C(0xfff0000000000000)};
    roundtrip_only(ts, vs, 8);
    /* Descending and repeated times still round-trip (seek needs order). */
    int64_t ts2[] = {5, 5, 4, -100, INT64_MAX, INT64_MIN, 7};
    uint64_t vs2[] = {fbits(1), fbits(2), fbits(3), fbits(4), fbits(5), fbits(6), fbits(7)};
    roundtrip_only(ts2, vs2, 7);

    /* Single samples of every special. */
    for (int i = 0; i < 200; i++) {
        int64_t t = (int64_t)rnd();
        uint64_t v = i % 2 ? special_value() : rnd();
        roundtrip_only(&t, &v, 1);
    }

    /* Two samples, all kinds. */
    for (int kind = 0; kind < 11; kind++) {
        int64_t t2[2];
        uint64_t v2[2];
        double acc = 3;
        gen_times(kind % 4, t2, 2);
        v2[0] = gen_value(kind, &acc, 0);
        v2[1] = gen_value(kind, &acc, 1);
        roundtrip_only(t2, v2, 2);
    }

    /* Decimals at the edge of exactness. */
    static const double dec[] = {0.1, 0.2, 0.1 + 0.2, 1e-12, 123456.789012, -0.5,
                                 4503599627370495.5, 9007199254740991.0, 9007199254740992.0,
                                 1e15 + 0.3, 3.14159265358979, -1e-7};
    int64_t td[sizeof(dec) / sizeof(dec[0])];
    uint64_t vd[sizeof(dec) / sizeof(dec[0])];
    for (size_t i = 0; i < sizeof(dec) / sizeof(dec[0]); i++) {
        td[i] = (int64_t)i * 1000;
        vd[i] = fbits(dec[i]);
    }
    roundtrip_only(td, vd, sizeof(dec) / sizeof(dec[0]));

    assert_int_equal(tsdb_dense_encode(enc, ts, vs, 0, &(uint8_t *){NULL}, &(size_t){0}),
                     BS_EINVAL);
}

/* The encoder must pick the dense modes on the series they exist for and
 * reach small sizes there: these fail if detection silently falls back to
 * XOR or zstd is never used. */
static void test_modes_and_sizes(void **state)
{
    (void)state;
    enum { N = 5760 }; /* 24 h at 15 s */
    int64_t *ts = malloc(N * sizeof(*ts));
    uint64_t *vs = malloc(N * sizeof(*vs));
    for (size_t i = 0; i < N; i++)
        ts[i] = 1700000000000 + (int64_t)i * 15000;
    size_t len;
    uint8_t *p;

    /* Constant without jitter: a few bytes for the whole day. */
    for (size_t i = 0; i < N; i++)
        vs[i] = fbits(1);
    p = roundtrip(ts, vs, N, &len);
    assert_int_equal(chunk_mode(p), M_CONST);
    assert_true(len < 40);
    free(p);

    /* The same with stale markers mid-chunk: exceptions, not XOR (a
     * small integer constant is as cheap in INT as in CONST). */
    vs[100] = vs[2000] = BS_STALE_NAN_BITS;
    vs[3000] = UINT64_C(0x8000000000000000);
    p = roundtrip(ts, vs, N, &len);
    assert_int_not_equal(chunk_mode(p), M_XOR);
    free(p);

    /* A constant that no decimal scale captures is CONST. */
    for (size_t i = 0; i < N; i++)
        vs[i] = fbits(1.0 / 3.0);
    vs[1234] = BS_STALE_NAN_BITS;
    p = roundtrip(ts, vs, N, &len);
    assert_int_equal(chunk_mode(p), M_CONST);
    assert_true(len < 60);
    free(p);

    /* Counter with 0.01 increments and a stale marker: INT, not XOR. */
    double acc = 12345.67;
    for (size_t i = 0; i < N; i++) {
        acc = (double)(int64_t)(acc * 100 + 1500 + (double)(rnd() % 3)) / 100.0;
        vs[i] = i == 4000 ? BS_STALE_NAN_BITS : fbits(acc);
    }
    p = roundtrip(ts, vs, N, &len);
    assert_int_equal(chunk_mode(p), M_INT);
    assert_true(len < N / 2); /* well under a byte per sample */
    free(p);

    /* Random doubles: XOR or float bits as integers (BITS), and never much
     * larger than 8 bytes/sample. */
    for (size_t i = 0; i < N; i++)
        vs[i] = fbits((double)rnd() / 3.0);
    p = roundtrip(ts, vs, N, &len);
    assert_true(chunk_mode(p) == M_XOR || chunk_mode(p) == M_BITS);
    assert_true(len < (size_t)N * 9);
    free(p);

    /* Jittered timestamps cost at most ~3 bits each on a constant. */
    for (size_t i = 0; i < N; i++) {
        ts[i] += (int64_t)(rnd() % 5) - 2;
        vs[i] = fbits(7);
    }
    p = roundtrip(ts, vs, N, &len);
    assert_true(len < N * 3 / 8 + 64);
    free(p);
    free(ts);
    free(vs);
}

static void test_seek(void **state)
{
    (void)state;
    enum { N = 3000 };
    int64_t ts[N];
    uint64_t vs[N];
    for (int round = 0; round < 20; round++) {
        gen_times(round % 4, ts, N);
        for (size_t i = 1; i < N; i++) /* seek needs ascending times */
            if (ts[i] <= ts[i - 1])
                ts[i] = ts[i - 1] + 1;
        double acc = 0;
        for (size_t i = 0; i < N; i++)
            vs[i] = gen_value(round % 11, &acc, i);
        size_t len;
        uint8_t *p = roundtrip(ts, vs, N, &len);

        /* Fresh decoder per target: lands on the first sample >= target. */
        for (int k = 0; k < 50; k++) {
            size_t want = rnd() % N;
            int64_t target = ts[want] - (rnd() % 2 ? 0 : 1);
            if (want > 0 && target <= ts[want - 1])
                target = ts[want];
            struct tsdb_dense_dec d;
            assert_int_equal(tsdb_dense_dec_init(&d, p, len), 0);
            assert_true(tsdb_dense_dec_seek(&d, target));
            assert_int_equal(d.t, ts[want]);
            assert_true(d.v == vs[want]);
            /* Seeking backwards stays put; next continues. */
            assert_true(tsdb_dense_dec_seek(&d, ts[0]));
            assert_int_equal(d.t, ts[want]);
            if (want + 1 < N) {
                assert_true(tsdb_dense_dec_next(&d));
                assert_int_equal(d.t, ts[want + 1]);
            }
            tsdb_dense_dec_fini(&d);
        }

        /* Monotone seeks on one decoder, then past the end. */
        struct tsdb_dense_dec d;
        assert_int_equal(tsdb_dense_dec_init(&d, p, len), 0);
        for (size_t i = 0; i < N; i += 1 + rnd() % 200) {
            assert_true(tsdb_dense_dec_seek(&d, ts[i]));
            assert_int_equal(d.t, ts[i]);
            assert_true(d.v == vs[i]);
        }
        assert_false(tsdb_dense_dec_seek(&d, ts[N - 1] + 1));
        assert_int_equal(d.err, 0);
        assert_false(tsdb_dense_dec_next(&d));
        tsdb_dense_dec_fini(&d);
        free(p);
    }
}

/* Decode damaged bytes: must return an error or some samples, never crash
 * or read out of bounds. Returns true when the whole chunk decoded. */
static bool decode_damaged(const uint8_t *p, size_t len, size_t n)
{
    uint8_t *copy = malloc(len ? len : 1);
    memcpy(copy, p, len);
    struct tsdb_dense_dec d;
    bool ok = false;
    if (tsdb_dense_dec_init(&d, copy, len) == 0) {
        size_t k = 0;
        while (tsdb_dense_dec_next(&d))
            k++;
        assert_true(k <= d.n);
        ok = d.err == 0 && k == n && d.n == n;
    }
    tsdb_dense_dec_fini(&d);
    free(copy);
    return ok;
}

static void test_corrupt(void **state)
{
    (void)state;
    enum { N = 700 };
    int64_t ts[N];
    uint64_t vs[N];
    int64_t *dts = malloc(N * sizeof(*dts));
    uint64_t *dvs = malloc(N * sizeof(*dvs));
    for (int round = 0; round < 44; round++) {
        gen_times(round % 4, ts, N);
        double acc = 0;
        for (size_t i = 0; i < N; i++)
            vs[i] = gen_value(round % 11, &acc, i);
        size_t len;
        uint8_t *p = roundtrip(ts, vs, N, &len);

        /* Every truncation is detected up front. */
        for (size_t cut = 0; cut < len; cut++) {
            struct tsdb_dense_dec d;
            uint8_t *copy = malloc(cut ? cut : 1);
            memcpy(copy, p, cut);
            assert_int_equal(tsdb_dense_dec_init(&d, copy, cut), BS_ECORRUPT);
            assert_false(tsdb_dense_dec_next(&d));
            tsdb_dense_dec_fini(&d);
            size_t got;
            assert_int_equal(tsdb_dense_decode(copy, cut, dts, dvs, N, &got), BS_ECORRUPT);
            free(copy);
        }
        /* Trailing garbage too. */
        uint8_t *longer = malloc(len + 1);
        memcpy(longer, p, len);
        longer[len] = 0;
        assert_false(decode_damaged(longer, len + 1, N));
        free(longer);

        /* Bit flips anywhere: no crash; flips in the header are caught. */
        for (int k = 0; k < 300; k++) {
            uint8_t *bad = malloc(len);
            memcpy(bad, p, len);
            size_t at = rnd() % len;
            bad[at] ^= (uint8_t)(1u << (rnd() % 8));
            if (rnd() % 4 == 0)
                bad[rnd() % len] = (uint8_t)rnd();
            decode_damaged(bad, len, N);
            free(bad);
        }
        free(p);
    }
    /* Reserved header bits and impossible counts. */
    static const uint8_t junk[][6] = {
        {0xf0, 1, 0, 0, 0, 0}, {0x20, 1, 0, 0, 0, 0}, {0, 0, 0, 0, 0, 0},
        {0, 0xff, 0xff, 0xff, 0xff, 0x0f},
    };
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
        assert_int_equal(tsdb_dense_peek(junk[i], sizeof(junk[i]), NULL, NULL), BS_ECORRUPT);
    free(dts);
    free(dvs);
}

/* A section that claims to be compressed but holds garbage, and a valid
 * zstd section whose inflated length disagrees with the header. */
static void test_corrupt_compressed(void **state)
{
    (void)state;
    enum { N = 2000 };
    int64_t ts[N];
    uint64_t vs[N];
    double acc = 0;
    for (size_t i = 0; i < N; i++) {
        ts[i] = (int64_t)i * 15000 + (int64_t)(rnd() % 5);
        vs[i] = gen_value(2, &acc, i);
    }
    size_t len;
    uint8_t *p = roundtrip(ts, vs, N, &len);
    assert_true(p[0] & 0x03); /* at least one zstd section */
    int bad = 0;
    for (size_t at = 4; at < len; at++) {
        for (unsigned bit = 0; bit < 8; bit += 3) {
            p[at] ^= (uint8_t)(1u << bit);
            if (!decode_damaged(p, len, N))
                bad++;
            p[at] ^= (uint8_t)(1u << bit);
        }
    }
    /* Most damage is noticed (plane bytes decode to other values, so not
     * all of it can be). */
    assert_true(bad > 0);
    free(p);
}

/* Gauges that change on a fraction of samples only (memory in pages,
 * filesystem blocks, sparse counters) take the sparse planes (a bitmap
 * of the nonzero residuals, then only those): bit-exact round trips,
 * every truncation caught, bit flips handled. */
static void test_sparse_planes(void **state)
{
    (void)state;
    enum { N = 2000 };
    static const double fracs[] = {0.01, 0.05, 0.2, 0.5, 0.9};
    int64_t *ts = malloc(N * sizeof(*ts));
    uint64_t *vs = malloc(N * sizeof(*vs));
    for (size_t f = 0; f < sizeof(fracs) / sizeof(fracs[0]); f++) {
        for (int round = 0; round < 6; round++) {
            size_t n = round == 5 ? 17 + rnd() % 20 : N - (size_t)(rnd() % 300);
            gen_times(round % 4, ts, n);
            int64_t k = (int64_t)(rnd() % 4000000);
            for (size_t i = 0; i < n; i++) {
                if ((double)(rnd() % 1000000) < fracs[f] * 1e6)
                    k += (int64_t)(rnd() % 4001) - 2000;
                vs[i] = fbits((double)(k * 4096));
                if (round == 3 && i % 301 == 7)
                    vs[i] = BS_STALE_NAN_BITS;
            }
            size_t len;
            uint8_t *p = roundtrip(ts, vs, n, &len);
            assert_true(chunk_mode(p) != M_XOR);
            for (size_t cut = 0; cut < len; cut += 1 + cut / 64) {
                struct tsdb_dense_dec d;
                uint8_t *copy = malloc(cut ? cut : 1);
                memcpy(copy, p, cut);
                assert_int_equal(tsdb_dense_dec_init(&d, copy, cut), BS_ECORRUPT);
                tsdb_dense_dec_fini(&d);
                free(copy);
            }
            for (int b = 0; b < 100; b++) {
                uint8_t *bad = malloc(len);
                memcpy(bad, p, len);
                bad[rnd() % len] ^= (uint8_t)(1u << (rnd() % 8));
                decode_damaged(bad, len, n);
                free(bad);
            }
            free(p);
        }
    }
    free(ts);
    free(vs);
}

/* The value section's mode byte fields (docs/format/chunks.md): for INT
 * and BITS chunks, the scale byte and whether the residuals are coded. */
static void int_section(const uint8_t *p, size_t len, unsigned *scale, bool *coded)
{
    size_t pos = 1;
    uint64_t x, cnt;
    int64_t sx;
    pos += bs_get_uvarint(p + pos, len - pos, &x);  /* n */
    pos += bs_get_varint(p + pos, len - pos, &sx);  /* t0 */
    bool tz = p[0] & 1, vz = p[0] & 2;
    pos += bs_get_uvarint(p + pos, len - pos, &x);  /* time section */
    if (tz) {
        uint64_t raw;
        pos += bs_get_uvarint(p + pos, len - pos, &raw);
    }
    pos += (size_t)x;
    pos += bs_get_uvarint(p + pos, len - pos, &x);  /* value section */
    assert_false(vz); /* coded sections are left uncompressed in these tests */
    *scale = p[pos++];
    pos++;                                           /* xf */
    pos += bs_get_varint(p + pos, len - pos, &sx);  /* k0 */
    pos += bs_get_uvarint(p + pos, len - pos, &x);  /* gcd */
    pos += bs_get_uvarint(p + pos, len - pos, &cnt); /* exceptions */
    for (uint64_t j = 0; j < cnt; j++) {
        pos += bs_get_uvarint(p + pos, len - pos, &x);
        pos += p[pos] == 1 ? 9 : 1;
    }
    *coded = p[pos] == 0x40;
}

/* Values an exporter computes from an integer count in other ways than
 * k / 10^d: Go's float64(ticks) * 0.001 and node_exporter's
 * float64(usec) / 1000.0 / 1000.0. Each is INT with its recipe (scale
 * byte bits 4-5), not a fallback to XOR, and costs a couple of bytes per
 * sample at most. */
static void test_value_recipes(void **state)
{
    (void)state;
    enum { N = 1500 };
    int64_t *ts = malloc(N * sizeof(*ts));
    uint64_t *vs = malloc(N * sizeof(*vs));
    for (size_t i = 0; i < N; i++)
        ts[i] = INT64_C(1700000000000) + 15000 * (int64_t)i;
    for (int recipe = 1; recipe <= 2; recipe++) {
        int misses = 0;
        int64_t k = 1000000 + (int64_t)(rnd() % 100000000);
        for (size_t i = 0; i < N; i++) {
            k += (int64_t)(rnd() % 20000);
            double v = recipe == 1 ? (double)k * 0.001 : (double)k / 1000.0 / 1000.0;
            misses += v != (double)k / (recipe == 1 ? 1e3 : 1e6);
            vs[i] = fbits(v);
        }
        assert_true(misses > 0); /* the plain division alone would not do */
        size_t len;
        uint8_t *p = roundtrip(ts, vs, N, &len);
        assert_int_equal(chunk_mode(p), M_INT);
        unsigned scale;
        bool coded;
        int_section(p, len, &scale, &coded);
        assert_int_equal(scale >> 4, recipe);
        assert_int_equal(scale & 15, recipe == 1 ? 3 : 6);
        assert_true(len < (size_t)N * 3);
        free(p);
    }
    free(ts);
    free(vs);
}

/* Floats that are no decimal (a clock read in nanoseconds and divided,
 * node_time_seconds): their bit patterns as integers (BITS), coded as
 * delta-of-deltas, beat Gorilla's XOR by far. */
static void test_bits_mode(void **state)
{
    (void)state;
    enum { N = 1000 };
    int64_t *ts = malloc(N * sizeof(*ts));
    uint64_t *vs = malloc(N * sizeof(*vs));
    for (size_t i = 0; i < N; i++) {
        ts[i] = INT64_C(1795727968215) + 15000 * (int64_t)i + (int64_t)(rnd() % 5);
        int64_t ns = ts[i] * 1000000 + 5000000 + (int64_t)(rnd() % 3000000);
        vs[i] = fbits((double)ns / 1e9);
        if (i == 500)
            vs[i] = BS_STALE_NAN_BITS;
    }
    size_t len;
    uint8_t *p = roundtrip(ts, vs, N, &len);
    assert_int_equal(chunk_mode(p), M_BITS);
    assert_true(len < (size_t)N * 3); /* XOR takes 4.3 bytes per sample here */
    free(p);
    free(ts);
    free(vs);
}

/* Encode x[0..m) with the residual coder into an exact-size buffer and
 * decode it back; returns the coded size. */
static size_t resid_roundtrip(const int64_t *x, size_t m)
{
    size_t bound = tsdb_resid_bound(m);
    uint8_t *buf = malloc(bound);
    size_t len = tsdb_resid_encode(x, m, buf);
    assert_true(len <= bound);
    uint8_t *copy = malloc(len ? len : 1);
    memcpy(copy, buf, len);
    free(buf);
    struct tsdb_resid_dec d;
    assert_true(tsdb_resid_dec_init(&d, copy, len));
    for (size_t i = 0; i < m; i++) {
        int64_t y;
        assert_true(tsdb_resid_dec_next(&d, &y));
        if (y != x[i])
            fail_msg("residual %zu of %zu: %lld, want %lld", i, m, (long long)y, (long long)x[i]);
    }
    /* A stream cut short by 5 bytes or more is noticed by the end. */
    if (len >= 8) {
        bool ok = tsdb_resid_dec_init(&d, copy, len - 5);
        for (size_t i = 0; ok && i < m; i++) {
            int64_t y;
            ok = tsdb_resid_dec_next(&d, &y);
        }
        assert_false(ok);
    }
    free(copy);
    return len;
}

/* The residual coder (entropy.c): exact round trips over every kind of
 * residual sequence, extremes included; sizes near the entropy on
 * sources whose entropy is known; damage caught without reading outside
 * the buffer (under ASan). */
static void test_resid_coder(void **state)
{
    (void)state;
    enum { M = 5000 };
    int64_t *x = malloc(M * sizeof(*x));
    for (int kind = 0; kind < 8; kind++) {
        for (int round = 0; round < 4; round++) {
            size_t m = round == 0 ? (size_t)(rnd() % 40) : M - (size_t)(rnd() % 1000);
            for (size_t i = 0; i < m; i++) {
                switch (kind) {
                case 0: x[i] = 0; break;
                case 1: x[i] = rnd() % 10 == 0 ? (int64_t)(rnd() % 8001) - 4000 : 0; break;
                case 2: x[i] = (int64_t)(rnd() % 1000001) - 500000; break;
                case 3: x[i] = (int64_t)rnd(); break;
                case 4: x[i] = rnd() % 2 ? INT64_MIN : INT64_MAX; break;
                case 5: x[i] = (int64_t)(rnd() >> (rnd() % 64)) * (rnd() % 2 ? -1 : 1); break;
                case 6: x[i] = 1350 + (int64_t)(rnd() % 135); break;
                default: x[i] = i % 2 ? -1 : 1; break;
                }
            }
            size_t len = resid_roundtrip(x, m);
            if (round == 0)
                continue;
            /* sizes against the source's entropy (bits per residual) */
            if (kind == 0)
                assert_true(len < 40);
            if (kind == 1) /* H(0.1) + 0.1 * (log2(8001) + 1) = 1.87 bits */
                assert_true((double)len * 8 < 2.1 * (double)m);
            if (kind == 2) /* log2(1000001) = 19.93 bits */
                assert_true((double)len * 8 < 20.6 * (double)m);
            if (kind == 6) /* log2(135) = 7.08 bits; the model spends 7 raw
                              bits and about one on which half of the
                              octave's top mantissa bits */
                assert_true((double)len * 8 < 8.2 * (double)m);
        }
    }
    /* Damage: flipped bytes and garbage never crash; a header naming more
     * raw bytes than there are is refused. */
    for (size_t i = 0; i < M; i++)
        x[i] = (int64_t)(rnd() % 100001) - 50000;
    size_t bound = tsdb_resid_bound(M);
    uint8_t *buf = malloc(bound);
    size_t len = tsdb_resid_encode(x, M, buf);
    for (int k = 0; k < 200; k++) {
        uint8_t *bad = malloc(len);
        memcpy(bad, buf, len);
        bad[rnd() % len] ^= (uint8_t)(1u << (rnd() % 8));
        struct tsdb_resid_dec d;
        if (tsdb_resid_dec_init(&d, bad, len)) {
            int64_t y;
            for (size_t i = 0; i < M && tsdb_resid_dec_next(&d, &y); i++)
                ;
        }
        free(bad);
    }
    static const uint8_t liar[] = {0x7f, 1, 2, 3};
    struct tsdb_resid_dec d;
    assert_false(tsdb_resid_dec_init(&d, liar, sizeof(liar)));
    assert_false(tsdb_resid_dec_init(&d, liar, 0));
    free(buf);
    free(x);
}

/* Shared time columns (TSDB_CHUNK_ENC_DENSE_ST): a chunk without its own
 * time section decodes with the time section of another chunk holding the
 * same times (whole chunk or just its time prefix), bit-exactly; the
 * shared chunk is smaller; a time chunk with another count or first time,
 * a missing one, truncations and bit flips fail cleanly. */
static void test_shared_time(void **state)
{
    (void)state;
    enum { N = 1500 };
    int64_t *ts = malloc(N * sizeof(*ts)), *dts = malloc(N * sizeof(*dts));
    uint64_t *vs = malloc(N * sizeof(*vs)), *dvs = malloc(N * sizeof(*dvs));
    for (int round = 0; round < 44; round++) {
        size_t n = round % 11 == 0 ? 1 + rnd() % 3 : N - (size_t)(rnd() % 200);
        gen_times(round % 4, ts, n);
        double acc = 0;
        for (size_t i = 0; i < n; i++)
            vs[i] = gen_value(round % 11, &acc, i);
        /* the chunk that owns the time column, with other values */
        uint64_t *ov = malloc(n * sizeof(*ov));
        double oacc = 0;
        for (size_t i = 0; i < n; i++)
            ov[i] = gen_value((round + 3) % 11, &oacc, i);
        size_t tlen;
        uint8_t *tp = roundtrip(ts, ov, n, &tlen);
        free(ov);
        bool eq = false;
        assert_int_equal(tsdb_dense_time_equal(tp, tlen, ts, n, &eq), 0);
        assert_true(eq);
        size_t plen;
        assert_int_equal(tsdb_dense_time_prefix(tp, tlen, &plen), 0);
        assert_true(plen <= tlen);
        uint8_t *pre = malloc(plen ? plen : 1);
        memcpy(pre, tp, plen);
        assert_int_equal(tsdb_dense_time_equal(pre, plen, ts, n, &eq), 0);
        assert_true(eq);
        ts[n / 2]++;
        assert_int_equal(tsdb_dense_time_equal(tp, tlen, ts, n, &eq), 0);
        if (n > 1)
            assert_false(eq);
        ts[n / 2]--;
        if (n > 1) {
            assert_int_equal(tsdb_dense_time_equal(tp, tlen, ts, n - 1, &eq), 0);
            assert_false(eq);
        }

        uint8_t *p;
        size_t len, own_len;
        const uint64_t tref = (UINT64_C(3) << 32) | 123456;
        assert_int_equal(tsdb_dense_encode_shared(enc, ts, vs, n, tref, &p, &len), 0);
        uint8_t *own;
        assert_int_equal(tsdb_dense_encode(enc, ts, vs, n, &own, &own_len), 0);
        free(own);
        if (n > 100 && round % 4 != 0) /* jittered times cost more than the ref */
            assert_true(len < own_len);
        uint8_t *copy = malloc(len);
        memcpy(copy, p, len);
        free(p);
        uint64_t got_ref;
        assert_int_equal(tsdb_dense_shared_ref(copy, len, &got_ref), 0);
        assert_true(got_ref == tref);
        uint32_t pn;
        int64_t t0;
        assert_int_equal(tsdb_dense_peek(copy, len, &pn, &t0), 0);
        assert_int_equal(pn, n);
        assert_int_equal(t0, ts[0]);
        for (int which = 0; which < 2; which++) {
            const uint8_t *t = which ? pre : tp;
            size_t tl = which ? plen : tlen;
            size_t got;
            assert_int_equal(tsdb_dense_decode_shared(copy, len, t, tl, dts, dvs, n, &got), 0);
            assert_int_equal(got, n);
            for (size_t i = 0; i < n; i++) {
                assert_int_equal(dts[i], ts[i]);
                assert_true(dvs[i] == vs[i]);
            }
            struct tsdb_dense_dec d;
            assert_int_equal(tsdb_dense_dec_init_shared(&d, copy, len, t, tl), 0);
            for (size_t i = 0; i < n; i++) {
                assert_true(tsdb_dense_dec_next(&d));
                assert_int_equal(d.t, ts[i]);
                assert_true(d.v == vs[i]);
            }
            assert_false(tsdb_dense_dec_next(&d));
            assert_int_equal(d.err, 0);
            tsdb_dense_dec_fini(&d);
        }
        /* a shared chunk is not a plain one, and needs its time chunk */
        size_t got;
        struct tsdb_dense_dec d;
        assert_int_equal(tsdb_dense_decode(copy, len, dts, dvs, n, &got), BS_ECORRUPT);
        assert_int_equal(tsdb_dense_decode_shared(copy, len, NULL, 0, dts, dvs, n, &got),
                         BS_ECORRUPT);
        assert_int_equal(tsdb_dense_dec_init_shared(&d, copy, len, NULL, 0), BS_ECORRUPT);
        assert_false(tsdb_dense_dec_next(&d));
        tsdb_dense_dec_fini(&d);
        /* a time chunk of other times: count or first time differ */
        {
            int64_t *ot = malloc((n + 1) * sizeof(*ot));
            memcpy(ot, ts, n * sizeof(*ot));
            ot[n] = ts[n - 1] + 1000;
            uint64_t *zv = calloc(n + 1, sizeof(*zv));
            size_t olen;
            uint8_t *other;
            assert_int_equal(tsdb_dense_encode(enc, ot, zv, n + 1, &other, &olen), 0);
            assert_int_equal(tsdb_dense_dec_init_shared(&d, copy, len, other, olen), BS_ECORRUPT);
            tsdb_dense_dec_fini(&d);
            free(other);
            ot[0]--;
            assert_int_equal(tsdb_dense_encode(enc, ot, zv, n, &other, &olen), 0);
            assert_int_equal(tsdb_dense_dec_init_shared(&d, copy, len, other, olen), BS_ECORRUPT);
            tsdb_dense_dec_fini(&d);
            free(other);
            free(ot);
            free(zv);
        }
        /* every truncation of either part is caught up front */
        for (size_t cut = 0; cut < len; cut++) {
            uint8_t *c = malloc(cut ? cut : 1);
            memcpy(c, copy, cut);
            assert_int_equal(tsdb_dense_dec_init_shared(&d, c, cut, tp, tlen), BS_ECORRUPT);
            assert_false(tsdb_dense_dec_next(&d));
            tsdb_dense_dec_fini(&d);
            free(c);
        }
        for (size_t cut = 0; cut < plen; cut++) {
            uint8_t *c = malloc(cut ? cut : 1);
            memcpy(c, tp, cut);
            assert_int_equal(tsdb_dense_dec_init_shared(&d, copy, len, c, cut), BS_ECORRUPT);
            tsdb_dense_dec_fini(&d);
            assert_int_equal(tsdb_dense_time_equal(c, cut, ts, n, &eq), BS_ECORRUPT);
            free(c);
        }
        /* bit flips in either: no crash, no read out of bounds */
        for (int k = 0; k < 200; k++) {
            uint8_t *bad = malloc(len), *tbad = malloc(tlen);
            memcpy(bad, copy, len);
            memcpy(tbad, tp, tlen);
            if (k % 2)
                bad[rnd() % len] ^= (uint8_t)(1u << (rnd() % 8));
            else
                tbad[rnd() % tlen] ^= (uint8_t)(1u << (rnd() % 8));
            if (tsdb_dense_dec_init_shared(&d, bad, len, tbad, tlen) == 0)
                while (tsdb_dense_dec_next(&d))
                    ;
            tsdb_dense_dec_fini(&d);
            (void)tsdb_dense_time_equal(tbad, tlen, ts, n, &eq);
            free(bad);
            free(tbad);
        }
        free(copy);
        free(pre);
        free(tp);
    }
    free(ts);
    free(dts);
    free(vs);
    free(dvs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_random),
        cmocka_unit_test(test_roundtrip_edges),
        cmocka_unit_test(test_modes_and_sizes),
        cmocka_unit_test(test_seek),
        cmocka_unit_test(test_corrupt),
        cmocka_unit_test(test_corrupt_compressed),
        cmocka_unit_test(test_shared_time),
        cmocka_unit_test(test_sparse_planes),
        cmocka_unit_test(test_value_recipes),
        cmocka_unit_test(test_bits_mode),
        cmocka_unit_test(test_resid_coder),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
