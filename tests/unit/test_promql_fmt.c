/* SPDX-License-Identifier: Apache-2.0
 *
 * Unit tests for the API number formatting of promql (fmt.c): the fast
 * path must write exactly what the reference bs_float_format_api writes,
 * for random bit patterns, values typical of rates and averages, short
 * decimals, integers, powers of two (asymmetric rounding intervals) and
 * the special values; and timestamps as Prometheus writes them.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "promql/promql_int.h"

static uint64_t rng_state = UINT64_C(0x9E3779B97F4A7C15);

static uint64_t rnd(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * UINT64_C(2685821657736338717);
}

static unsigned long long mismatches;

static void check(double v)
{
    char want[BS_FLOAT_FMT_MAX], got[BS_FLOAT_FMT_MAX];
    size_t wn = bs_float_format_api(v, want);
    size_t gn = promql_float_format_api(v, got);
    if (wn != gn || strcmp(want, got) != 0) {
        uint64_t bits;
        memcpy(&bits, &v, sizeof(bits));
        if (mismatches++ < 10)
            print_error("%.17g (0x%016llx): want %s got %s\n", v, (unsigned long long)bits,
                        want, got);
    }
}

static double from_bits(uint64_t b)
{
    double v;
    memcpy(&v, &b, sizeof(v));
    return v;
}

static void test_specials(void **state)
{
    (void)state;
    static const double vals[] = {0.0, 1.0, -1.0, 0.5, 0.1, 0.2, 0.3, 1e-6, 1e-7, 9.99e-7,
                                  1e20, 1e21, 123456789012345678.0, 9007199254740992.0,
                                  9007199254740993.0, 4503599627370495.5, 1.7976931348623157e308,
                                  2.2250738585072014e-308, 5e-324, 1.5, -2.75, 100, 1e15, 1e16,
                                  1e17, 0.30000000000000004, 2.0 / 3.0, 1.0 / 3.0, M_PI};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        check(vals[i]);
        check(-vals[i]);
    }
    check(NAN);
    check(INFINITY);
    check(-INFINITY);
    check(-0.0);
    char b[BS_FLOAT_FMT_MAX];
    promql_float_format_api(0.1, b);
    assert_string_equal(b, "0.1");
    promql_float_format_api(-1234.5, b);
    assert_string_equal(b, "-1234.5");
    promql_float_format_api(1e21, b);
    assert_string_equal(b, "1e+21");
    assert_int_equal(mismatches, 0);
}

static void test_random(void **state)
{
    (void)state;
    mismatches = 0;
    /* random bit patterns over the whole range */
    for (int i = 0; i < 100000; i++) {
        double v = from_bits(rnd());
        check(v);
    }
    /* rates, averages and ratios of counters */
    for (int i = 0; i < 100000; i++) {
        double a = (double)(rnd() % 10000000), b = (double)(rnd() % 100000 + 1);
        check(a / b);
        check(a / 300.0 * ((double)(rnd() % 60000) / 59000.0));
        check(a * 1e-9);
    }
    /* short decimals and integers */
    for (int i = 0; i < 40000; i++) {
        double d = (double)(int64_t)(rnd() % 2000000000) - 1e9;
        check(d);
        check(d / 10);
        check(d / 100);
        check(d / 1000);
        check(d * 1e7);
    }
    /* powers of two and their neighbours */
    for (int e = -1074; e <= 1023; e++) {
        double p = ldexp(1.0, e);
        check(p);
        check(nextafter(p, 0));
        check(nextafter(p, INFINITY));
    }
    assert_int_equal(mismatches, 0);
}

static void test_time(void **state)
{
    (void)state;
    char b[32];
    static const struct {
        int64_t t;
        const char *s;
    } cases[] = {{0, "0"},           {1000, "1"},           {1500, "1.5"},
                 {1050, "1.05"},     {1005, "1.005"},       {1230, "1.23"},
                 {-1500, "-1.5"},    {-1, "-0.001"},        {1700000000123, "1700000000.123"},
                 {999, "0.999"},     {INT64_MAX, "9223372036854775.807"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = promql_time_format(cases[i].t, b);
        assert_string_equal(b, cases[i].s);
        assert_int_equal(n, strlen(cases[i].s));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_specials),
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
