/* SPDX-License-Identifier: Apache-2.0
 *
 * Unit tests of util: errors, arena and buffer caps, CRC32C, varints,
 * durations and timestamps, float formatting and parsing, JSON escaping,
 * logging and the self-metrics registry.
 */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "util/util.h"
#include "util/util_int.h"

/* ----------------------------------------------------------------- errors */

static void test_errors(void **state)
{
    struct bs_error err;
    (void)state;
    assert_string_equal(bs_strerror(0), "success");
    assert_string_equal(bs_strerror(BS_ELIMIT), "limit exceeded");
    assert_string_equal(bs_strerror(BS_ECLOSED), "closed");
    assert_string_equal(bs_strerror(-999), "unknown error");

    bs_error_clear(&err);
    assert_int_equal(err.code, 0);
    assert_string_equal(err.msg, "");
    assert_int_equal(bs_error_set(&err, BS_EPARSE, "bad %s at %d", "thing", 7), BS_EPARSE);
    assert_int_equal(err.code, BS_EPARSE);
    assert_string_equal(err.msg, "bad thing at 7");
    bs_error_prefix(&err, "file %s", "x.yml");
    assert_string_equal(err.msg, "file x.yml: bad thing at 7");
    assert_int_equal(bs_error_set(NULL, BS_EIO, "ignored"), BS_EIO);
    bs_error_prefix(NULL, "nothing");
    bs_error_clear(NULL);

    /* Long messages are truncated, never overflowed. */
    char big[2000];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    bs_error_set(&err, BS_EINVAL, "%s", big);
    assert_int_equal(strlen(err.msg), sizeof(err.msg) - 1);
    bs_error_prefix(&err, "%s", big);
    assert_int_equal(strlen(err.msg), sizeof(err.msg) - 1);
}

/* ------------------------------------------------------------------ arena */

static void test_arena(void **state)
{
    struct bs_arena a;
    (void)state;
    bs_arena_init(&a, 256, 0);
    for (int i = 0; i < 1000; i++) {
        size_t n = (size_t)(i % 50) + 1;
        unsigned char *p = bs_arena_alloc(&a, n);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % 16, 0);
        memset(p, 0xab, n);
    }
    /* Bigger than a block. */
    char *big = bs_arena_alloc(&a, 10000);
    assert_non_null(big);
    memset(big, 1, 10000);
    char *s = bs_arena_strndup(&a, "hello world", 5);
    assert_string_equal(s, "hello");
    bs_arena_reset(&a);
    assert_int_equal(a.total, 0);
    assert_non_null(bs_arena_alloc(&a, 8));
    bs_arena_fini(&a);
    bs_arena_fini(&a);   /* idempotent */
}

static void test_arena_cap(void **state)
{
    struct bs_arena a;
    (void)state;
    bs_arena_init(&a, 1024, 100);
    assert_non_null(bs_arena_alloc(&a, 64));
    assert_non_null(bs_arena_alloc(&a, 32));
    assert_null(bs_arena_alloc(&a, 16));   /* 96 + 16 > 100 */
    assert_null(bs_arena_alloc(&a, SIZE_MAX));
    bs_arena_reset(&a);
    assert_non_null(bs_arena_alloc(&a, 96));
    bs_arena_fini(&a);
}

/* -------------------------------------------------------------------- buf */

static void test_buf(void **state)
{
    struct bs_buf b;
    size_t len;
    (void)state;
    bs_buf_init(&b, 0);
    assert_int_equal(bs_buf_puts(&b, "abc"), 0);
    assert_int_equal(bs_buf_putc(&b, 'd'), 0);
    assert_int_equal(bs_buf_append(&b, "efgh", 2), 0);
    assert_int_equal(bs_buf_printf(&b, "-%d-%s", 42, "x"), 0);
    assert_string_equal(b.data, "abcdef-42-x");
    assert_int_equal(b.len, 11);
    /* A printf larger than the current capacity. */
    char big[500];
    memset(big, 'z', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(bs_buf_printf(&b, "%s", big), 0);
    assert_int_equal(b.len, 11 + 499);
    assert_int_equal(b.data[b.len], '\0');
    bs_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    bs_buf_puts(&b, "xyz");
    char *p = bs_buf_steal(&b, &len);
    assert_string_equal(p, "xyz");
    assert_int_equal(len, 3);
    assert_null(b.data);
    free(p);
    p = bs_buf_steal(&b, &len);   /* empty buffer: an empty string */
    assert_string_equal(p, "");
    assert_int_equal(len, 0);
    free(p);
    bs_buf_fini(&b);
}

static void test_buf_cap(void **state)
{
    struct bs_buf b;
    (void)state;
    bs_buf_init(&b, 10);
    assert_int_equal(bs_buf_puts(&b, "0123456789"), 0);
    assert_int_equal(bs_buf_putc(&b, 'x'), BS_ELIMIT);
    assert_int_equal(b.len, 10);
    assert_string_equal(b.data, "0123456789");
    bs_buf_reset(&b);
    assert_int_equal(bs_buf_puts(&b, "01234"), 0);
    assert_int_equal(bs_buf_printf(&b, "%s", "abcdef"), BS_ELIMIT);
    assert_int_equal(b.len, 5);
    assert_string_equal(b.data, "01234");
    assert_int_equal(bs_buf_printf(&b, "%s", "abcde"), 0);
    assert_string_equal(b.data, "01234abcde");
    assert_int_equal(bs_buf_reserve(&b, SIZE_MAX), BS_ELIMIT);
    bs_buf_fini(&b);

    /* Cap hit by printf when the text fits in already allocated room. */
    bs_buf_init(&b, 70);
    assert_int_equal(bs_buf_puts(&b, "0123456789012345678901234567890123456789"), 0);
    assert_int_equal(bs_buf_printf(&b, "%s", "0123456789012345678901234567890123"), BS_ELIMIT);
    assert_int_equal(b.len, 40);
    assert_int_equal(strlen(b.data), 40);
    bs_buf_fini(&b);
}

/* ----------------------------------------------------------------- crc32c */

static void test_crc32c(void **state)
{
    static const char digits[] = "123456789";
    uint8_t zeros[32] = {0}, ones[32], incr[32];
    (void)state;
    memset(ones, 0xff, sizeof(ones));
    for (int i = 0; i < 32; i++)
        incr[i] = (uint8_t)i;
    assert_int_equal(bs_crc32c(0, digits, 9), 0xE3069283u);
    assert_int_equal(bs_crc32c_sw(0, digits, 9), 0xE3069283u);
    assert_int_equal(bs_crc32c(0, "", 0), 0);
    /* RFC 3720 (iSCSI) B.4 vectors. */
    assert_int_equal(bs_crc32c(0, zeros, 32), 0x8A9136AAu);
    assert_int_equal(bs_crc32c(0, ones, 32), 0x62A8AB43u);
    assert_int_equal(bs_crc32c(0, incr, 32), 0x46DD794Eu);
    /* Chaining and agreement of the two implementations at every length
     * and alignment. */
    uint8_t data[300];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 131 + 7);
    for (size_t off = 0; off < 9; off++)
        for (size_t n = 0; n + off <= sizeof(data); n += 7) {
            uint32_t a = bs_crc32c(0, data + off, n);
            assert_int_equal(a, bs_crc32c_sw(0, data + off, n));
            size_t h = n / 3;
            assert_int_equal(a, bs_crc32c(bs_crc32c(0, data + off, h), data + off + h, n - h));
        }
}

static void test_hash64(void **state)
{
    (void)state;
    assert_int_equal(bs_hash64("abc", 3), bs_hash64("abc", 3));
    assert_true(bs_hash64("abc", 3) != bs_hash64("abd", 3));
    /* XXH3-64 of the empty input, a published constant. */
    assert_true(bs_hash64("", 0) == UINT64_C(0x2D06800538D394C2));
}

/* ----------------------------------------------------------------- varint */

static void test_varint(void **state)
{
    static const uint64_t uv[] = {0, 1, 127, 128, 255, 300, 16383, 16384, UINT32_MAX,
                                  (uint64_t)1 << 63, UINT64_MAX - 1, UINT64_MAX};
    static const int64_t sv[] = {0, 1, -1, 63, -64, 64, -65, INT32_MAX, INT32_MIN,
                                 INT64_MAX, INT64_MIN, INT64_MIN + 1};
    uint8_t buf[16];
    (void)state;
    for (size_t i = 0; i < sizeof(uv) / sizeof(uv[0]); i++) {
        uint64_t out;
        size_t n = bs_put_uvarint(buf, uv[i]);
        assert_true(n >= 1 && n <= 10);
        assert_int_equal(bs_get_uvarint(buf, n, &out), n);
        assert_true(out == uv[i]);
        /* Every truncation is detected. */
        for (size_t k = 0; k < n; k++)
            assert_int_equal(bs_get_uvarint(buf, k, &out), 0);
    }
    for (size_t i = 0; i < sizeof(sv) / sizeof(sv[0]); i++) {
        int64_t out;
        size_t n = bs_put_varint(buf, sv[i]);
        assert_int_equal(bs_get_varint(buf, n, &out), n);
        assert_true(out == sv[i]);
    }
    assert_int_equal(bs_put_uvarint(buf, 0), 1);
    assert_int_equal(buf[0], 0);
    assert_int_equal(bs_put_uvarint(buf, 300), 2);
    assert_int_equal(buf[0], 0xac);
    assert_int_equal(buf[1], 0x02);
    assert_int_equal(bs_put_uvarint(buf, UINT64_MAX), 10);
    assert_int_equal(bs_put_varint(buf, -1), 1);
    assert_int_equal(buf[0], 1);
    assert_int_equal(bs_put_varint(buf, 1), 1);
    assert_int_equal(buf[0], 2);

    /* Overlong: 11 bytes, and a 10th byte that overflows 64 bits. */
    uint64_t out;
    memset(buf, 0x80, 11);
    buf[10] = 0;
    assert_int_equal(bs_get_uvarint(buf, 11, &out), 0);
    memset(buf, 0xff, 9);
    buf[9] = 0x02;
    assert_int_equal(bs_get_uvarint(buf, 10, &out), 0);
    buf[9] = 0x01;
    assert_int_equal(bs_get_uvarint(buf, 10, &out), 10);
    assert_true(out == UINT64_MAX);

    bs_put_be32(buf, 0x01020304);
    assert_int_equal(buf[0], 1);
    assert_int_equal(buf[3], 4);
    assert_int_equal(bs_get_be32(buf), 0x01020304);
    bs_put_be64(buf, UINT64_C(0x0102030405060708));
    assert_int_equal(buf[0], 1);
    assert_int_equal(buf[7], 8);
    assert_true(bs_get_be64(buf) == UINT64_C(0x0102030405060708));
}

/* -------------------------------------------------------------- durations */

#define S 1000
#define M (60 * S)
#define H (60 * M)
#define D (24 * (int64_t)H)
#define W (7 * D)
#define Y (365 * D)

static void test_duration_parse(void **state)
{
    static const struct {
        const char *in;
        int64_t ms;
    } ok[] = {
        {"0", 0}, {"0s", 0}, {"1s", S}, {"100ms", 100}, {"1m30s", M + 30 * S},
        {"1h30m", H + 30 * M}, {"15d", 15 * D}, {"2w", 2 * W}, {"1y", Y},
        {"1y2w3d4h5m6s7ms", Y + 2 * W + 3 * D + 4 * H + 5 * M + 6 * S + 7},
        {"5m0s", 5 * M}, {"90s", 90 * S}, {"292y", 292 * Y},
    };
    static const char *const bad[] = {
        "", "1", "s", "1x", "1.5s", "-1s", "1s1m", "1m1m", " 1s", "1s ", "1h 1m", "1ms1s",
        "293y", "99999999999999999999s", "1S", "+1s", "10ss",
    };
    struct bs_error err;
    int64_t v;
    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        v = -1;
        assert_int_equal(bs_duration_parse(ok[i].in, strlen(ok[i].in), &v, &err), 0);
        assert_true(v == ok[i].ms);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        bs_error_clear(&err);
        if (bs_duration_parse(bad[i], strlen(bad[i]), &v, &err) != BS_EPARSE)
            fail_msg("duration \"%s\" accepted", bad[i]);
        assert_int_equal(err.code, BS_EPARSE);
        assert_true(err.msg[0] != '\0');
    }
    bs_duration_parse("1x", 2, &v, &err);
    assert_string_equal(err.msg, "unknown unit \"x\" in duration \"1x\"");
    bs_duration_parse("1s1m", 4, &v, &err);
    assert_string_equal(err.msg, "not a valid duration string: \"1s1m\"");
    bs_duration_parse("", 0, &v, &err);
    assert_string_equal(err.msg, "empty duration string");
    /* Only n bytes are read. */
    assert_int_equal(bs_duration_parse("5mXXXX", 2, &v, NULL), 0);
    assert_true(v == 5 * M);
}

static void test_duration_format(void **state)
{
    static const struct {
        int64_t ms;
        const char *out;
    } cases[] = {
        {0, "0s"}, {1, "1ms"}, {1500, "1s500ms"}, {90000, "1m30s"}, {H, "1h"},
        {15 * D, "15d"}, {14 * D, "2w"}, {90 * D, "90d"}, {Y, "1y"}, {Y + D, "366d"},
        {2 * Y, "2y"}, {D + H + M + S + 1, "1d1h1m1s1ms"}, {-1500, "-1s500ms"},
    };
    char buf[64];
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = bs_duration_format(cases[i].ms, buf, sizeof(buf));
        assert_string_equal(buf, cases[i].out);
        assert_int_equal(n, strlen(cases[i].out));
        if (cases[i].ms >= 0) {
            int64_t back;
            assert_int_equal(bs_duration_parse(buf, n, &back, NULL), 0);
            assert_true(back == cases[i].ms);
        }
    }
    /* Truncation to cap. */
    assert_int_equal(bs_duration_format(90000, buf, 3), 2);
    assert_string_equal(buf, "1m");
}

/* ------------------------------------------------------------------- time */

static void test_time_format(void **state)
{
    char buf[64];
    (void)state;
    bs_time_format_rfc3339(0, buf, sizeof(buf));
    assert_string_equal(buf, "1970-01-01T00:00:00.000Z");
    bs_time_format_rfc3339(INT64_C(1795716000123), buf, sizeof(buf));
    assert_string_equal(buf, "2026-11-26T18:00:00.123Z");
    bs_time_format_rfc3339(-1, buf, sizeof(buf));
    assert_string_equal(buf, "1969-12-31T23:59:59.999Z");
    bs_time_format_rfc3339(INT64_C(951782400000), buf, sizeof(buf));
    assert_string_equal(buf, "2000-02-29T00:00:00.000Z");
    assert_true(bs_days_from_civil(1970, 1, 1) == 0);
    assert_true(bs_days_from_civil(2000, 3, 1) == 11017);
}

static void test_time_parse(void **state)
{
    static const struct {
        const char *in;
        int64_t ms;
    } ok[] = {
        {"0", 0},
        {"1700000000", INT64_C(1700000000000)},
        {"1700000000.123", INT64_C(1700000000123)},
        {"1700000000.5", INT64_C(1700000000500)},
        {"-1.5", -1500},
        {"1e3", 1000000},
        {"2026-11-26T18:00:00Z", INT64_C(1795716000000)},
        {"2026-11-26T18:00:00.123Z", INT64_C(1795716000123)},
        {"2026-11-26T18:00:00.123456789Z", INT64_C(1795716000123)},
        {"2026-11-26T20:00:00+02:00", INT64_C(1795716000000)},
        {"2026-11-26T17:30:00.5-00:30", INT64_C(1795716000500)},
        {"2000-02-29T00:00:00Z", INT64_C(951782400000)},
        {"-292273086-05-16T16:47:06Z", INT64_C(-9223309901257974000)},
        {"292277025-08-18T07:12:54.999999999Z", INT64_C(9223309901257974999)},
    };
    static const char *const bad[] = {
        "", "x", "now", "2026-11-26", "2026-11-26T18:00:00", "2026-13-01T00:00:00Z",
        "2026-02-29T00:00:00Z", "2026-11-26T24:00:00Z", "2026-11-26 18:00:00Z",
        "2026-11-26T18:00:00.Z", "2026-11-26T18:00:00Zjunk", " 1", "NaN", "Inf", "1e30",
        "0x10",
    };
    struct bs_error err;
    int64_t v;
    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        v = 12345;
        if (bs_time_parse_api(ok[i].in, &v, &err) != 0)
            fail_msg("time \"%s\" rejected: %s", ok[i].in, err.msg);
        if (v != ok[i].ms)
            fail_msg("time \"%s\" -> %lld", ok[i].in, (long long)v);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (bs_time_parse_api(bad[i], &v, &err) != BS_EPARSE)
            fail_msg("time \"%s\" accepted", bad[i]);
    bs_time_parse_api("x", &v, &err);
    assert_string_equal(err.msg, "cannot parse \"x\" to a valid timestamp");
}

static void test_clocks(void **state)
{
    (void)state;
    int64_t now = bs_now_ms();
    assert_true(now > INT64_C(1600000000000));
    int64_t t0 = bs_monotonic_ns();
    bs_sleep_ms(5);
    bs_sleep_ms(0);
    bs_sleep_ms(-3);
    assert_true(bs_monotonic_ns() - t0 >= 5000000);
}

/* ----------------------------------------------------------------- floats */

static void test_float_format(void **state)
{
    static const struct {
        double v;
        const char *f, *g;
    } cases[] = {
        {0.1, "0.1", "0.1"},
        {1e-7, "0.0000001", "1e-07"},
        {1e-5, "0.00001", "1e-05"},
        {1e-4, "0.0001", "0.0001"},
        {1e21, "1000000000000000000000", "1e+21"},
        {123456789.123, "123456789.123", "1.23456789123e+08"},
        {123.5, "123.5", "123.5"},
        {100000, "100000", "100000"},
        {1e6, "1000000", "1e+06"},
        {1.5e6, "1500000", "1.5e+06"},
        {0, "0", "0"},
        {-0.0, "-0", "-0"},
        {1, "1", "1"},
        {-2.5, "-2.5", "-2.5"},
        {0.3, "0.3", "0.3"},
        {1.0 / 3, "0.3333333333333333", "0.3333333333333333"},
        {2.0 / 3, "0.6666666666666666", "0.6666666666666666"},
        {1e23, "100000000000000000000000", "1e+23"},
        {9007199254740993.0, "9007199254740992", "9.007199254740992e+15"},
        {1.7976931348623157e308, NULL, "1.7976931348623157e+308"},
        {5e-324, NULL, "5e-324"},
        /* Powers of two where the nearest short decimal does not read back
         * but the next one up does. */
        {0x1p-1017, NULL, "7.120236347223045e-307"},
        {0x1p-705, NULL, "5.940911144672375e-213"},
        {0x1p-1022, NULL, "2.2250738585072014e-308"},
        {1e100, NULL, "1e+100"},
        {NAN, "NaN", "NaN"},
        {INFINITY, "+Inf", "+Inf"},
        {-INFINITY, "-Inf", "-Inf"},
    };
    char buf[BS_FLOAT_FMT_MAX];
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = bs_float_format(cases[i].v, buf);
        assert_int_equal(n, strlen(buf));
        if (cases[i].f)
            assert_string_equal(buf, cases[i].f);
        n = bs_float_format_short(cases[i].v, buf);
        assert_int_equal(n, strlen(buf));
        assert_true(n < 32);
        assert_string_equal(buf, cases[i].g);
    }
    /* The API form switches to 'e' outside 1e-6 <= |v| < 1e21, as
     * Prometheus's MarshalValue does. */
    static const struct {
        double v;
        const char *api;
    } api_cases[] = {
        {5.4e-07, "5.4e-07"}, {1e-6, "0.000001"}, {9.99e-7, "9.99e-07"},
        {-2.5e-9, "-2.5e-09"}, {1e21, "1e+21"}, {9.99e20, "999000000000000000000"},
        {123.25, "123.25"}, {0, "0"}, {-0.0, "-0"}, {NAN, "NaN"}, {-INFINITY, "-Inf"},
        {1.7976931348623157e308, "1.7976931348623157e+308"},
    };
    for (size_t i = 0; i < sizeof(api_cases) / sizeof(api_cases[0]); i++) {
        size_t an = bs_float_format_api(api_cases[i].v, buf);
        assert_int_equal(an, strlen(buf));
        assert_string_equal(buf, api_cases[i].api);
    }
    /* The longest outputs, and that they read back exactly. */
    size_t n = bs_float_format(5e-324, buf);
    assert_int_equal(n, 2 + 323 + 1);
    assert_memory_equal(buf, "0.000", 5);
    assert_string_equal(buf + n - 2, "05");
    n = bs_float_format(-1.7976931348623157e308, buf);
    assert_int_equal(n, 310);
    assert_memory_equal(buf, "-17976931348623157", 18);
    assert_true(strtod(buf, NULL) == -1.7976931348623157e308);

    /* Round trip of many values through both formats and the parser. */
    uint64_t x = 88172645463325252u;
    for (int i = 0; i < 20000; i++) {
        double v, back;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v = bs_float_from_bits(x);
        if (!isfinite(v))
            continue;
        n = bs_float_format(v, buf);
        assert_int_equal(bs_float_parse(buf, n, false, &back), 0);
        assert_true(bs_float_bits(back) == bs_float_bits(v));
        n = bs_float_format_short(v, buf);
        assert_int_equal(bs_float_parse(buf, n, false, &back), 0);
        assert_true(bs_float_bits(back) == bs_float_bits(v));
    }
}

static void test_float_parse(void **state)
{
    static const struct {
        const char *in;
        bool hex;
        double v;
    } ok[] = {
        {"0", false, 0}, {"1", false, 1}, {"-1", false, -1}, {"+1.5", false, 1.5},
        {"1.", false, 1}, {".5", false, 0.5}, {"1e3", false, 1000}, {"1E-3", false, 0.001},
        {"1e+3", false, 1000}, {"123456789.123", false, 123456789.123},
        {"1e-400", false, 0}, {"0x1F", true, 31}, {"0X1f", true, 31}, {"-0x10", true, -16},
        {"0x1p-2", true, 0.25}, {"Inf", false, INFINITY}, {"+Inf", false, INFINITY},
        {"-Inf", false, -INFINITY}, {"inf", false, INFINITY}, {"INF", false, INFINITY},
        {"Infinity", false, INFINITY}, {"-infinity", false, -INFINITY},
        {"1.7976931348623157e308", false, 1.7976931348623157e308},
        {"5e-324", false, 5e-324},
    };
    static const struct {
        const char *in;
        bool hex;
    } bad[] = {
        {"", false}, {"+", false}, {"-", false}, {".", false}, {"e5", false}, {"1e", false},
        {"1e+", false}, {" 1", false}, {"1 ", false}, {"1x", false}, {"0x1F", false},
        {"0x", true}, {"0xg", true}, {"0x1.8", true}, {"1e309", false}, {"-1e309", false},
        {"+NaN", false}, {"nan(1)", false}, {"infinit", false}, {"1,5", false},
        {"1_000", false}, {"--1", false}, {"1.2.3", false},
    };
    double v;
    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        if (bs_float_parse(ok[i].in, strlen(ok[i].in), ok[i].hex, &v) != 0)
            fail_msg("float \"%s\" rejected", ok[i].in);
        if (!(v == ok[i].v))
            fail_msg("float \"%s\" -> %g", ok[i].in, v);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (bs_float_parse(bad[i].in, strlen(bad[i].in), bad[i].hex, &v) == 0)
            fail_msg("float \"%s\" accepted", bad[i].in);
    assert_int_equal(bs_float_parse("NaN", 3, false, &v), 0);
    assert_true(isnan(v));
    assert_int_equal(bs_float_parse("nan", 3, false, &v), 0);
    assert_true(isnan(v));
    /* Only n bytes are read, and long inputs work. */
    assert_int_equal(bs_float_parse("12345", 2, false, &v), 0);
    assert_true(v == 12);
    char lng[200];
    memset(lng, '0', sizeof(lng));
    lng[198] = '7';
    assert_int_equal(bs_float_parse(lng, 199, false, &v), 0);
    assert_true(v == 7);
}

static void test_stale_nan(void **state)
{
    (void)state;
    double s = bs_stale_nan();
    assert_true(isnan(s));
    assert_true(bs_is_stale_nan(s));
    assert_false(bs_is_stale_nan(NAN));
    assert_false(bs_is_stale_nan(1.0));
    assert_true(bs_float_bits(s) == BS_STALE_NAN_BITS);
    assert_true(bs_float_from_bits(bs_float_bits(1.25)) == 1.25);
}

/* ------------------------------------------------------------------- json */

static void check_json(const char *in, size_t n, const char *want)
{
    struct bs_buf b;
    bs_buf_init(&b, 0);
    assert_int_equal(bs_json_string(&b, in, n), 0);
    assert_string_equal(b.data, want);
    bs_buf_fini(&b);
}

static void test_json(void **state)
{
    (void)state;
    check_json("", 0, "\"\"");
    check_json("plain text", 10, "\"plain text\"");
    check_json("a\"b\\c", 5, "\"a\\\"b\\\\c\"");
    check_json("\n\t\r\b\f", 5, "\"\\n\\t\\r\\b\\f\"");
    check_json("\x01\x1f", 2, "\"\\u0001\\u001f\"");
    check_json("a\0b", 3, "\"a\\u0000b\"");
    check_json("<a&b>", 5, "\"\\u003ca\\u0026b\\u003e\"");
    check_json("\x7f", 1, "\"\x7f\"");
    /* Valid UTF-8 passes through. */
    check_json("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14,
               "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
    /* Invalid bytes become U+FFFD, one per byte. */
    check_json("a\xffz", 3, "\"a\\ufffdz\"");
    check_json("\xc3", 1, "\"\\ufffd\"");                     /* truncated */
    check_json("\xc0\xaf", 2, "\"\\ufffd\\ufffd\"");           /* overlong */
    check_json("\xed\xa0\x80", 3, "\"\\ufffd\\ufffd\\ufffd\""); /* surrogate */
    check_json("\xf4\x90\x80\x80", 4, "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");
    check_json("\xe2\x80\xa8", 3, "\"\\u2028\"");

    struct bs_buf b;
    bs_buf_init(&b, 8);
    assert_int_equal(bs_json_string(&b, "0123456789", 10), BS_ELIMIT);
    bs_buf_fini(&b);
}

/* ---------------------------------------------------------------- logging */

static void test_log(void **state)
{
    (void)state;
    assert_int_equal(bs_log_level_parse("debug"), BS_LOG_DEBUG);
    assert_int_equal(bs_log_level_parse("info"), BS_LOG_INFO);
    assert_int_equal(bs_log_level_parse("warn"), BS_LOG_WARN);
    assert_int_equal(bs_log_level_parse("error"), BS_LOG_ERROR);
    assert_int_equal(bs_log_level_parse("verbose"), -1);
    assert_int_equal(bs_log_level_parse(NULL), -1);
    assert_true(bs_log_enabled(BS_LOG_INFO));
    assert_false(bs_log_enabled(BS_LOG_DEBUG));

    /* Capture stderr to check the line format. */
    char path[] = "/tmp/bongsu-test-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stderr);
    FILE *saved = stderr;
    FILE *f = fdopen(fd, "w+");
    assert_non_null(f);
    stderr = f;
    bs_log_set_level(BS_LOG_WARN);
    BS_INFO("tsdb", "hidden");
    BS_WARN("tsdb", "Replaying \"WAL\"\nline %d", 2);
    BS_ERROR(NULL, "no component");
    bs_log_set_level(BS_LOG_DEBUG);
    BS_DEBUG("a b", "dbg");
    char big[3000];
    memset(big, 'q', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    BS_ERROR("x", "%s", big);
    bs_log_set_level(BS_LOG_INFO);
    stderr = saved;
    fflush(f);
    rewind(f);
    char line[4096];
    assert_non_null(fgets(line, sizeof(line), f));
    assert_memory_equal(line, "ts=", 3);
    assert_non_null(strstr(line, "Z level=warn component=tsdb msg=\"Replaying \\\"WAL\\\"\\nline 2\"\n"));
    assert_non_null(fgets(line, sizeof(line), f));
    assert_non_null(strstr(line, "Z level=error msg=\"no component\"\n"));
    assert_non_null(fgets(line, sizeof(line), f));
    assert_non_null(strstr(line, "level=debug component=\"a b\" msg=\"dbg\"\n"));
    assert_non_null(fgets(line, sizeof(line), f));
    assert_int_equal(strlen(strstr(line, "msg=\"")), 5 + 2999 + 2);
    assert_null(fgets(line, sizeof(line), f));
    fclose(f);
    unlink(path);
}

/* ---------------------------------------------------------------- metrics */

static double seven(void *arg)
{
    return *(double *)arg;
}

struct adder {
    struct bs_metric *m;
    int n;
};

static void *add_loop(void *p)
{
    struct adder *a = p;
    for (int i = 0; i < a->n; i++)
        bs_metric_add(a->m, 1);
    return NULL;
}

static void test_metrics(void **state)
{
    static double seven_v = 7;
    struct bs_buf b;
    (void)state;
    struct bs_metric *c1 = bs_metric_register(BS_METRIC_COUNTER, "bongsu_test_total",
                                              "Test counter\nwith \\ newline.", "reason=\"a\"");
    struct bs_metric *c2 =
        bs_metric_register(BS_METRIC_COUNTER, "bongsu_test_total", "Test counter.", "reason=\"b\"");
    struct bs_metric *g = bs_metric_register(BS_METRIC_GAUGE, "bongsu_a_gauge", "A gauge.", NULL);
    assert_ptr_equal(c1, bs_metric_register(BS_METRIC_COUNTER, "bongsu_test_total", "x",
                                            "reason=\"a\""));
    assert_ptr_not_equal(c1, c2);
    bs_metric_register_func(BS_METRIC_GAUGE, "bongsu_func", "From a callback.", "", seven,
                            &seven_v);

    bs_metric_add(c1, 1);
    bs_metric_add(c1, 2.5);
    bs_metric_set(g, 1e6);
    assert_true(bs_metric_get(c1) == 3.5);
    assert_true(bs_metric_get(c2) == 0);

    /* Concurrent adds lose nothing. */
    pthread_t th[2];
    struct adder ad = {c2, 50000};
    pthread_create(&th[0], NULL, add_loop, &ad);
    pthread_create(&th[1], NULL, add_loop, &ad);
    pthread_join(th[0], NULL);
    pthread_join(th[1], NULL);
    assert_true(bs_metric_get(c2) == 100000);

    bs_buf_init(&b, 0);
    assert_int_equal(bs_metrics_write(&b), 0);
    const char *want_c = "# HELP bongsu_test_total Test counter\\nwith \\\\ newline.\n"
                         "# TYPE bongsu_test_total counter\n"
                         "bongsu_test_total{reason=\"a\"} 3.5\n"
                         "bongsu_test_total{reason=\"b\"} 100000\n";
    assert_non_null(strstr(b.data, want_c));
    assert_non_null(strstr(b.data, "# HELP bongsu_a_gauge A gauge.\n# TYPE bongsu_a_gauge gauge\n"
                                   "bongsu_a_gauge 1e+06\n"));
    assert_non_null(strstr(b.data, "\nbongsu_func 7\n"));
    assert_non_null(strstr(b.data, "# TYPE process_cpu_seconds_total counter\n"));
    assert_non_null(strstr(b.data, "# TYPE process_resident_memory_bytes gauge\n"));
    assert_non_null(strstr(b.data, "# TYPE process_virtual_memory_bytes gauge\n"));
    assert_non_null(strstr(b.data, "# TYPE process_start_time_seconds gauge\n"));
    assert_non_null(strstr(b.data, "# TYPE process_open_fds gauge\n"));
    assert_non_null(strstr(b.data, "# TYPE process_max_fds gauge\n"));
    /* One HELP per name, names in order. */
    const char *p = strstr(b.data, "# HELP bongsu_test_total");
    assert_null(strstr(p + 1, "# HELP bongsu_test_total"));
    assert_true(strstr(b.data, "bongsu_a_gauge") < strstr(b.data, "bongsu_func"));
    assert_true(strstr(b.data, "process_cpu") < strstr(b.data, "process_virtual"));
    /* Plausible process values. */
    double rss = 0, start = 0;
    p = strstr(b.data, "\nprocess_resident_memory_bytes ");
    assert_non_null(p);
    rss = strtod(p + 31, NULL);
    assert_true(rss > 100000);
    p = strstr(b.data, "\nprocess_start_time_seconds ");
    assert_non_null(p);
    start = strtod(p + 28, NULL);
    assert_true(start > 1.6e9 && start <= (double)bs_now_ms() / 1000 + 1);
    p = strstr(b.data, "\nprocess_open_fds ");
    assert_true(strtod(p + 18, NULL) >= 3);
    bs_buf_fini(&b);

    bs_buf_init(&b, 16);
    assert_int_equal(bs_metrics_write(&b), BS_ELIMIT);
    bs_buf_fini(&b);
}

/* ----------------------------------------------------------------- memory */

static void test_xalloc(void **state)
{
    (void)state;
    char *p = bs_xmalloc(0);
    free(p);
    p = bs_xcalloc(4, 4);
    for (int i = 0; i < 16; i++)
        assert_int_equal(p[i], 0);
    p = bs_xrealloc(p, 100);
    free(p);
    p = bs_xstrdup("hello");
    assert_string_equal(p, "hello");
    free(p);
    p = bs_xstrndup("hello", 3);
    assert_string_equal(p, "hel");
    free(p);
    p = bs_xstrndup("hi", 10);
    assert_string_equal(p, "hi");
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_arena),
        cmocka_unit_test(test_arena_cap),
        cmocka_unit_test(test_buf),
        cmocka_unit_test(test_buf_cap),
        cmocka_unit_test(test_crc32c),
        cmocka_unit_test(test_hash64),
        cmocka_unit_test(test_varint),
        cmocka_unit_test(test_duration_parse),
        cmocka_unit_test(test_duration_format),
        cmocka_unit_test(test_time_format),
        cmocka_unit_test(test_time_parse),
        cmocka_unit_test(test_clocks),
        cmocka_unit_test(test_float_format),
        cmocka_unit_test(test_float_parse),
        cmocka_unit_test(test_stale_nan),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_log),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_xalloc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
