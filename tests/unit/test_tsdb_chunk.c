/* SPDX-License-Identifier: Apache-2.0
 *
 * Unit tests of the XOR chunk codec: bit-exact round trips over random
 * series (timestamps with jitter and jumps, random bit patterns including
 * NaN payloads, infinities and -0, integers, constants), seeks with and
 * without seek marks against a linear scan, time extremes, and decoding
 * of truncated or damaged chunks without crashing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tsdb/tsdb_int.h"

static uint64_t rng_state = 0x853c49e6748fea9bULL;

static uint64_t rnd(void)
{
    /* splitmix64 */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static uint64_t special_value(void)
{
    static const uint64_t sp[] = {
        BS_STALE_NAN_BITS,
        UINT64_C(0x7ff8000000000001), /* NaN */
        UINT64_C(0x7ff0000000000000), /* +Inf */
        UINT64_C(0xfff0000000000000), /* -Inf */
        UINT64_C(0x8000000000000000), /* -0 */
        UINT64_C(0),
        UINT64_C(0xffffffffffffffff),
        UINT64_C(0x0000000000000001), /* denormal */
    };
    return sp[rnd() % (sizeof(sp) / sizeof(sp[0]))];
}

/* Generate one value of the given kind. */
static uint64_t gen_value(int kind, uint64_t prev, size_t i)
{
    switch (kind) {
    case 0: /* random bits */
        return rnd();
    case 1: /* counter-like integers */
        return bs_float_bits((double)(i * 17 + rnd() % 5));
    case 2: /* constant */
        return prev;
    case 3: /* gauge */
        return bs_float_bits((double)(int64_t)(rnd() % 2000000) / 1000.0 - 1000.0);
    default: /* mix of specials and randoms */
        return rnd() % 3 ? special_value() : rnd();
    }
}

/* Index of the first sample with time >= t after index `after` (-1:
 * none read yet); n when there is none. */
static size_t first_at_or_after(const int64_t *ts, size_t n, long after, int64_t t)
{
    size_t i = (size_t)(after + 1);
    while (i < n && ts[i] < t)
        i++;
    return i;
}

/* Seeks, with the encoder's marks and without, land where a linear scan
 * does, from the start and after earlier seeks; a chunk restored from its
 * bytes gets the same marks. */
static void check_seek(const uint8_t *p, size_t len, const struct tsdb_xor_enc *e,
                       const int64_t *ts, const uint64_t *vs, size_t n)
{
    size_t nm = 0;
    for (size_t k = 0; k < TSDB_XOR_MARKS; k++) {
        if (e->marks[k].n) {
            nm++;
            assert_int_equal(e->marks[k].n % TSDB_XOR_MARK_EVERY, 0);
        }
    }
    if (n >= 2 * TSDB_XOR_MARK_EVERY && (uint64_t)ts[n - 1] - (uint64_t)ts[0] <= INT32_MAX)
        assert_int_equal(nm, TSDB_XOR_MARKS);
    const struct tsdb_xor_mark *marks = e->marks + (TSDB_XOR_MARKS - nm);
    for (int round = 0; round < 4; round++) {
        struct tsdb_xor_dec d;
        tsdb_xor_dec_init(&d, p, len);
        long at = -1;
        for (int k = 0; k < 3; k++) {
            int64_t t = 0;
            size_t j = (size_t)(rnd() % (n + 1));
            int64_t back = rnd() % 2 ? 0 : (int64_t)(rnd() % 1000); /* on or before a sample */
            if (j == n && ts[n - 1] < INT64_MAX)
                t = ts[n - 1] + 1;
            else if (j == n)
                j = n - 1;
            if (j < n)
                t = ts[j] >= INT64_MIN + back ? ts[j] - back : ts[j];
            size_t want = first_at_or_after(ts, n, at, t);
            bool got = round % 2 ? tsdb_xor_dec_seek(&d, t, ts[0], marks, nm)
                                 : tsdb_xor_dec_seek(&d, t, ts[0], NULL, 0);
            if (want == n) {
                assert_false(got);
                assert_int_equal(d.err, 0);
                break;
            }
            assert_true(got);
            assert_int_equal(d.t, ts[want]);
            assert_true(d.v == vs[want]);
            at = (long)want;
            /* next() continues right after a seek */
            if (want + 1 < n && rnd() % 2) {
                assert_true(tsdb_xor_dec_next(&d));
                assert_int_equal(d.t, ts[want + 1]);
                assert_true(d.v == vs[want + 1]);
                at++;
            }
        }
    }
    struct tsdb_xor_enc r;
    tsdb_xor_enc_init(&r);
    assert_int_equal(tsdb_xor_enc_restore(&r, p, len), 0);
    assert_memory_equal(r.marks, e->marks, sizeof(r.marks));
    tsdb_xor_enc_fini(&r);
}

static void roundtrip(const int64_t *ts, const uint64_t *vs, size_t n)
{
    struct tsdb_xor_enc e;
    tsdb_xor_enc_init(&e);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(tsdb_xor_enc_append(&e, ts[i], vs[i]), 0);
    assert_int_equal(e.n, n);
    /* Decode from an exact-size copy so reads past the end are caught. */
    size_t len = tsdb_xor_enc_bytes(&e);
    uint8_t *copy = malloc(len);
    memcpy(copy, e.buf, len);
    struct tsdb_xor_dec d;
    tsdb_xor_dec_init(&d, copy, len);
    for (size_t i = 0; i < n; i++) {
        assert_true(tsdb_xor_dec_next(&d));
        assert_int_equal(d.t, ts[i]);
        if (d.v != vs[i])
            fail_msg("sample %zu: value bits %016llx, want %016llx", i, (unsigned long long)d.v,
                     (unsigned long long)vs[i]);
    }
    assert_false(tsdb_xor_dec_next(&d));
    assert_int_equal(d.err, 0);
    check_seek(copy, len, &e, ts, vs, n);
    free(copy);
    tsdb_xor_enc_fini(&e);
}

static void test_roundtrip_random(void **state)
{
    (void)state;
    int64_t ts[TSDB_CHUNK_MAX_SAMPLES];
    uint64_t vs[TSDB_CHUNK_MAX_SAMPLES];
    size_t total = 0;
    for (int series = 0; series < 10000; series++) {
        size_t len = 1 + rnd() % 400; /* split into chunks of <= 120 */
        int kind = (int)(rnd() % 5);
        int tkind = (int)(rnd() % 4);
        int64_t t = (int64_t)(rnd() % (UINT64_C(1) << 42)) - (INT64_C(1) << 40);
        int64_t step = 1 + (int64_t)(rnd() % 60000);
        uint64_t v = rnd();
        size_t done = 0;
        while (done < len) {
            size_t n = len - done < TSDB_CHUNK_MAX_SAMPLES ? len - done : TSDB_CHUNK_MAX_SAMPLES;
            for (size_t i = 0; i < n; i++) {
                int64_t jitter = 0;
                if (tkind == 1)
                    jitter = (int64_t)(rnd() % 200);
                else if (tkind == 2)
                    jitter = (int64_t)(rnd() % 100000);
                else if (tkind == 3 && rnd() % 10 == 0)
                    jitter = (int64_t)(rnd() % (UINT64_C(1) << 40)); /* big gap */
                t += step + jitter;
                ts[i] = t;
                v = gen_value(kind, v, done + i);
                vs[i] = v;
            }
            roundtrip(ts, vs, n);
            done += n;
            total += n;
        }
    }
    assert_true(total > 1000000);
}

static void test_roundtrip_extremes(void **state)
{
    (void)state;
    int64_t ts[] = {INT64_MIN, INT64_MIN + 1, -1, 0, 1, INT64_MAX / 2, INT64_MAX - 1, INT64_MAX};
    uint64_t vs[] = {BS_STALE_NAN_BITS,
                     0,
                     UINT64_C(0x8000000000000000),
                     ~UINT64_C(0),
                     UINT64_C(1),
                     BS_STALE_NAN_BITS,
                     UINT64_C(0x7ff0000000000000),
                     UINT64_C(0xfff0000000000000)};
    roundtrip(ts, vs, 8);

    /* Every dod bucket edge, in both directions. */
    static const int64_t edges[] = {0,       1,      -1,      8192,    -8191,     8193,
                                    -8192,   65536,  -65535,  65537,   -65536,    524288,
                                    -524287, 524289, -524288, 1 << 30, -(1 << 29)};
    int64_t t2[64];
    uint64_t v2[64];
    size_t n = 0;
    int64_t t = 1000000000, delta = 1 << 30;
    t2[n] = t;
    v2[n++] = 1;
    for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++) {
        delta += edges[i];
        t += delta;
        t2[n] = t;
        v2[n] = bs_float_bits((double)i);
        n++;
    }
    roundtrip(t2, v2, n);
}

static void test_single_and_empty(void **state)
{
    (void)state;
    int64_t t = 42;
    uint64_t v = BS_STALE_NAN_BITS;
    roundtrip(&t, &v, 1);

    struct tsdb_xor_enc e;
    tsdb_xor_enc_init(&e);
    struct tsdb_xor_dec d;
    tsdb_xor_dec_init(&d, e.buf, 0);
    assert_false(tsdb_xor_dec_next(&d));
    /* reset keeps the encoder usable */
    assert_int_equal(tsdb_xor_enc_append(&e, 5, 7), 0);
    tsdb_xor_enc_reset(&e);
    assert_int_equal(e.n, 0);
    assert_int_equal(tsdb_xor_enc_append(&e, 9, 11), 0);
    tsdb_xor_dec_init(&d, e.buf, tsdb_xor_enc_bytes(&e));
    assert_true(tsdb_xor_dec_next(&d));
    assert_int_equal(d.t, 9);
    assert_int_equal(d.v, 11);
    assert_false(tsdb_xor_dec_next(&d));
    tsdb_xor_enc_fini(&e);
}

static void test_compression(void **state)
{
    (void)state;
    /* A regular counter must compress well below 16 bytes/sample. */
    struct tsdb_xor_enc e;
    tsdb_xor_enc_init(&e);
    for (int i = 0; i < 120; i++)
        assert_int_equal(
            tsdb_xor_enc_append(&e, 1700000000000 + i * 15000, bs_float_bits(1000.0 + i * 3)), 0);
    assert_true(tsdb_xor_enc_bytes(&e) < 120 * 4);
    tsdb_xor_enc_fini(&e);
}

static void test_truncated_and_damaged(void **state)
{
    (void)state;
    struct tsdb_xor_enc e;
    tsdb_xor_enc_init(&e);
    for (int i = 0; i < 120; i++)
        assert_int_equal(tsdb_xor_enc_append(&e, i * 1000 + (int64_t)(rnd() % 7), rnd()), 0);
    size_t len = tsdb_xor_enc_bytes(&e);
    uint8_t *copy = malloc(len);
    for (size_t cut = 0; cut < len; cut++) {
        memcpy(copy, e.buf, cut);
        struct tsdb_xor_dec d;
        tsdb_xor_dec_init(&d, copy, cut);
        size_t got = 0;
        while (tsdb_xor_dec_next(&d))
            got++;
        assert_true(got < 120);
        if (cut >= TSDB_CHUNK_HEADER)
            assert_int_equal(d.err, BS_ECORRUPT);
    }
    /* Random damage: must terminate without reading out of bounds. */
    for (int round = 0; round < 2000; round++) {
        memcpy(copy, e.buf, len);
        copy[rnd() % len] ^= (uint8_t)(1u << (rnd() % 8));
        struct tsdb_xor_dec d;
        tsdb_xor_dec_init(&d, copy, len);
        size_t got = 0;
        while (tsdb_xor_dec_next(&d))
            got++;
        assert_true(got <= 0xffff);
    }
    free(copy);
    tsdb_xor_enc_fini(&e);
}

/* An encoder resumed from its bytes and saved state (head checkpoints)
 * writes exactly what the original writes, at every cut point and for
 * every kind of value; load rejects inconsistent states. */
static void test_state_load(void **state)
{
    (void)state;
    for (int kind = 0; kind < 5; kind++) {
        for (size_t cut = 1; cut < 120; cut += 7) {
            struct tsdb_xor_enc a, b;
            tsdb_xor_enc_init(&a);
            tsdb_xor_enc_init(&b);
            int64_t t = 1000;
            uint64_t v = rnd();
            for (size_t i = 0; i < 120; i++) {
                v = gen_value(kind, v, i);
                t += 15000 + (int64_t)(rnd() % 3) - 1;
                assert_int_equal(tsdb_xor_enc_append(&a, t, v), 0);
                if (i + 1 == cut) {
                    struct tsdb_xor_state st;
                    tsdb_xor_enc_state(&a, &st);
                    assert_int_equal(tsdb_xor_enc_load(&b, a.buf, tsdb_xor_enc_bytes(&a), &st),
                                     0);
                    assert_int_equal(b.n, a.n);
                    assert_int_equal(b.mint, a.mint);
                    assert_int_equal(b.nbits, a.nbits);
                } else if (i + 1 > cut) {
                    assert_int_equal(tsdb_xor_enc_append(&b, t, v), 0);
                }
            }
            assert_int_equal(tsdb_xor_enc_bytes(&a), tsdb_xor_enc_bytes(&b));
            assert_memory_equal(a.buf, b.buf, tsdb_xor_enc_bytes(&a));
            struct tsdb_xor_state st;
            tsdb_xor_enc_state(&a, &st);
            struct tsdb_xor_state bad = st;
            bad.tail = 9;
            assert_int_equal(tsdb_xor_enc_load(&b, a.buf, tsdb_xor_enc_bytes(&a), &bad),
                             BS_ECORRUPT);
            bad = st;
            bad.tdelta = 0;
            assert_int_equal(tsdb_xor_enc_load(&b, a.buf, tsdb_xor_enc_bytes(&a), &bad),
                             BS_ECORRUPT);
            bad = st;
            bad.leading = 40;
            assert_int_equal(tsdb_xor_enc_load(&b, a.buf, tsdb_xor_enc_bytes(&a), &bad),
                             BS_ECORRUPT);
            assert_int_equal(tsdb_xor_enc_load(&b, a.buf, 5, &st), BS_ECORRUPT);
            tsdb_xor_enc_fini(&a);
            tsdb_xor_enc_fini(&b);
        }
    }
}

static void test_range_of(void **state)
{
    (void)state;
    assert_int_equal(tsdb_chunk_range_of(0), 0);
    assert_int_equal(tsdb_chunk_range_of(TSDB_CHUNK_RANGE_MS - 1), 0);
    assert_int_equal(tsdb_chunk_range_of(TSDB_CHUNK_RANGE_MS), 1);
    assert_int_equal(tsdb_chunk_range_of(-1), -1);
    assert_int_equal(tsdb_chunk_range_of(-TSDB_CHUNK_RANGE_MS), -1);
    assert_int_equal(tsdb_chunk_range_of(-TSDB_CHUNK_RANGE_MS - 1), -2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_random),      cmocka_unit_test(test_roundtrip_extremes),
        cmocka_unit_test(test_single_and_empty),      cmocka_unit_test(test_compression),
        cmocka_unit_test(test_truncated_and_damaged), cmocka_unit_test(test_range_of),
        cmocka_unit_test(test_state_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
