/* SPDX-License-Identifier: Apache-2.0
 *
 * The parser paths the scraper leans on: values of the common decimal shape
 * take a fast conversion in text_parse.c, which must give exactly what
 * strtod gives (checked here against strtod on many generated strings), and
 * the series text the scrape cache keys on.
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

#include "expfmt/expfmt.h"

/* Parse "m <value>\n" and return the value (the test fails on an error). */
static double parse_value(const char *value)
{
    char line[128];
    int n = snprintf(line, sizeof(line), "m %s\n", value);
    struct expfmt_parser p;
    struct bs_error err;
    enum expfmt_entry kind;
    expfmt_parser_init(&p, line, (size_t)n);
    if (expfmt_parser_next(&p, &kind, &err) != 0 || kind != EXPFMT_SERIES)
        fail_msg("value %s rejected: %s", value, err.msg);
    double v = expfmt_parser_series(&p)->value;
    expfmt_parser_fini(&p);
    return v;
}

static void check(const char *value)
{
    double want = strtod(value, NULL), got = parse_value(value);
    if (bs_float_bits(got) != bs_float_bits(want))
        fail_msg("%s: got %.17g (%016llx), strtod %.17g (%016llx)", value, got,
                 (unsigned long long)bs_float_bits(got), want,
                 (unsigned long long)bs_float_bits(want));
}

static uint64_t rng_state = 0x9E3779B97F4A7C15u;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void test_decimal_values(void **state)
{
    (void)state;
    const char *fixed[] = {
        "0",        "-0",          "0.0",      "-0.0",        "1.5",          "0.1",
        "0.2",      "0.3",         "-123.456", "1e5",         "1E+05",        "1.5e-07",
        "2.5e+22",  "9007199254740993", "9007199254740992.0", "123456789012345678",
        "1234567890123456789", "0.000000000000000000001", "1e22", "1e23", "1e-22", "1e-23",
        "4.35e+09", "1.7976931348623157e308", "5e-324", "123.e5", ".5", "+1.5", "1e",
        "1.e5",     "00012.5000",  "1e0005",   "NaN",         "+Inf",         "-Inf",
    };
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        if (strcmp(fixed[i], "1e") == 0 || strcmp(fixed[i], "NaN") == 0)
            continue; /* "1e" is invalid; NaN is canonicalised, checked elsewhere */
        check(fixed[i]);
    }
    /* Generated: mantissas of 1-20 digits, a point anywhere, exponents
     * from -30 to 30, with or without a sign. */
    char buf[64];
    for (int k = 0; k < 200000; k++) {
        size_t o = 0;
        if (rnd() & 1)
            buf[o++] = '-';
        int nd = 1 + (int)(rnd() % 20);
        int point = (int)(rnd() % (uint64_t)(nd + 1));
        for (int d = 0; d < nd; d++) {
            if (d == point && d > 0)
                buf[o++] = '.';
            buf[o++] = (char)('0' + rnd() % 10);
        }
        if (rnd() % 3 == 0)
            o += (size_t)snprintf(buf + o, sizeof(buf) - o, "e%+d", (int)(rnd() % 61) - 30);
        buf[o] = '\0';
        check(buf);
    }
}

static void test_series_text(void **state)
{
    (void)state;
    const char body[] = "# TYPE a counter\n"
                        "a_total{x=\"1\",y=\"a\\\"b\"} 1.25e+02\n"
                        "  b   3.5\n"
                        "c{} 7 1700000000000\n";
    struct expfmt_parser p;
    struct bs_error err;
    enum expfmt_entry kind;
    expfmt_parser_init(&p, body, sizeof(body) - 1);
    const char *want[] = {"a_total{x=\"1\",y=\"a\\\"b\"}", "b", "c{}"};
    const double vals[] = {125, 3.5, 7};
    size_t n = 0;
    while (expfmt_parser_next(&p, &kind, &err) == 0 && kind != EXPFMT_EOF) {
        if (kind != EXPFMT_SERIES)
            continue;
        const struct expfmt_series *s = expfmt_parser_series(&p);
        assert_true(n < 3);
        assert_int_equal(s->series_text_len, strlen(want[n]));
        assert_memory_equal(s->series_text, want[n], strlen(want[n]));
        assert_true(s->value == vals[n]);
        n++;
    }
    assert_int_equal(n, 3);
    expfmt_parser_fini(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decimal_values),
        cmocka_unit_test(test_series_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
