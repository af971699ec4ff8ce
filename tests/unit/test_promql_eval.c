/* SPDX-License-Identifier: Apache-2.0
 *
 * Unit tests for the PromQL evaluator against a real tsdb in a temporary
 * directory: selectors with lookback and staleness, rate & co. with
 * Prometheus's extrapolation (expected values computed by hand), binary
 * operators and vector matching, aggregations and their labels,
 * functions, range-query shape, limits, and the result JSON.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>

#include <cmocka.h>

#include "promql/promql_int.h"

#define SKIP 1e300        /* no sample in this slot */
#define STALE 2e300       /* a stale marker in this slot */

static struct tsdb *db;
static struct promql_engine *eng;
static char dir[64];

/* Add series ls (pairs name, value, ..., NULL) with values at t0 + i*step. */
static void load(const char *const *pairs, int64_t t0, int64_t step, const double *vals, size_t n)
{
    struct label l[16];
    size_t nl = 0;
    for (; pairs[2 * nl]; nl++) {
        l[nl].name = pairs[2 * nl];
        l[nl].value = pairs[2 * nl + 1];
    }
    /* sort by name */
    for (size_t i = 1; i < nl; i++)
        for (size_t j = i; j > 0 && strcmp(l[j - 1].name, l[j].name) > 0; j--) {
            struct label tmp = l[j];
            l[j] = l[j - 1];
            l[j - 1] = tmp;
        }
    struct labels ls = {l, nl};
    struct tsdb_appender *a = tsdb_appender_new(db);
    assert_non_null(a);
    for (size_t i = 0; i < n; i++) {
        if (vals[i] == SKIP)
            continue;
        double v = vals[i] == STALE ? bs_stale_nan() : vals[i];
        assert_int_equal(tsdb_appender_add(a, 0, &ls, t0 + (int64_t)i * step, v, NULL), 0);
    }
    struct bs_error err;
    assert_int_equal(tsdb_appender_commit(a, &err), 0);
}

#define LOAD(t0, step, vals, ...)                                                           \
    do {                                                                                    \
        static const double v_[] = vals;                                                    \
        load((const char *const[]){__VA_ARGS__, NULL}, t0, step, v_, sizeof(v_) / sizeof(v_[0])); \
    } while (0)
#define A(...) {__VA_ARGS__}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/promqltestXXXXXX");
    assert_non_null(mkdtemp(dir));
    struct tsdb_options o;
    tsdb_options_default(&o);
    o.dir = dir;
    struct bs_error err;
    assert_int_equal(tsdb_open(&db, &o, &err), 0);
    eng = promql_engine_new(NULL);
    assert_non_null(eng);

    /* counter every 15s: 0,10,...,200 */
    LOAD(0, 15000, A(0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150, 160,
                     170, 180, 190, 200),
         "__name__", "x", "job", "a");
    /* counter with a reset */
    LOAD(0, 15000, A(0, 10, 20, 5, 15), "__name__", "y");
    LOAD(0, 1000, A(1), "__name__", "lonely");
    LOAD(0, 15000, A(1, 1, STALE), "__name__", "gone");
    LOAD(0, 15000, A(1), "__name__", "http", "job", "api", "instance", "0");
    LOAD(0, 15000, A(2), "__name__", "http", "job", "api", "instance", "1");
    LOAD(0, 15000, A(4), "__name__", "http", "job", "web", "instance", "0");
    LOAD(0, 15000, A(10), "__name__", "a", "l", "1");
    LOAD(0, 15000, A(20), "__name__", "a", "l", "2");
    LOAD(0, 15000, A(1), "__name__", "b", "l", "1");
    LOAD(0, 15000, A(2), "__name__", "b", "l", "2");
    LOAD(0, 15000, A(3), "__name__", "c", "l", "1", "x", "1");
    LOAD(0, 15000, A(5), "__name__", "c", "l", "1", "x", "2");
    LOAD(0, 15000, A(1), "__name__", "h_bucket", "le", "0.1");
    LOAD(0, 15000, A(3), "__name__", "h_bucket", "le", "0.2");
    LOAD(0, 15000, A(4), "__name__", "h_bucket", "le", "+Inf");
    LOAD(0, 15000, A(-3.5), "__name__", "neg", "src", "foo-bar");
    LOAD(0, 15000, A(3), "__name__", "mt", "__type__", "counter", "__unit__", "s", "job", "j");
    LOAD(0, 15000, A(1), "__name__", "mt_total", "job", "j");
    LOAD(0, 15000, A(3), "__name__", "nonmono_bucket", "le", "1");
    LOAD(0, 15000, A(2), "__name__", "nonmono_bucket", "le", "2");
    LOAD(0, 15000, A(4), "__name__", "nonmono_bucket", "le", "+Inf");
    LOAD(0, 15000, A(1), "__name__", "num", "i", "10");
    LOAD(0, 15000, A(1), "__name__", "num", "i", "2");
    LOAD(0, 15000, A(1), "__name__", "num", "i", "a");
    LOAD(0, 15000, A(1e308), "__name__", "big", "i", "1");
    LOAD(0, 15000, A(1.7e308), "__name__", "big", "i", "2");
    LOAD(0, 15000, A(0), "__name__", "many", "j", "t", "k", "1");
    LOAD(0, 15000, A(1), "__name__", "many", "j", "t", "k", "2");
    LOAD(0, 15000, A(1), "__name__", "one", "j", "t");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    promql_engine_free(eng);
    tsdb_close(db);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static struct promql_result *instant(const char *q, int64_t t)
{
    struct promql_result *r = NULL;
    struct bs_error err;
    bs_error_clear(&err);
    int rc = promql_query_instant(eng, db, q, t, &r, &err);
    if (rc)
        fail_msg("%s: %s", q, err.msg);
    return r;
}

static void expect_error(const char *q, int code, const char *msg_prefix)
{
    struct promql_result *r = NULL;
    struct bs_error err;
    bs_error_clear(&err);
    int rc = promql_query_instant(eng, db, q, 60000, &r, &err);
    assert_null(r);
    if (rc != code)
        fail_msg("%s: rc %d want %d (%s)", q, rc, code, err.msg);
    if (strncmp(err.msg, msg_prefix, strlen(msg_prefix)) != 0)
        fail_msg("%s: message %s want prefix %s", q, err.msg, msg_prefix);
}

static char *fmt_labels(const struct labels *ls)
{
    struct bs_buf b;
    bs_buf_init(&b, 0);
    labels_format(ls, &b);
    return b.data;
}

/* Assert the vector result has exactly these (labels, value) pairs, in any
 * order (labels as labels_format prints them). */
static void expect_vec(const char *q, int64_t t, size_t n, ...)
{
    struct promql_result *r = instant(q, t);
    if (r->type != PROMQL_VALUE_VECTOR)
        fail_msg("%s: type %d", q, r->type);
    if (r->nseries != n) {
        for (size_t i = 0; i < r->nseries; i++) {
            char *s = fmt_labels(r->series[i].labels);
            print_error("  got %s %g\n", s, r->series[i].points[0].v);
            free(s);
        }
        fail_msg("%s: %zu series, want %zu", q, r->nseries, n);
    }
    va_list ap;
    va_start(ap, n);
    for (size_t i = 0; i < n; i++) {
        const char *want = va_arg(ap, const char *);
        double v = va_arg(ap, double);
        bool found = false;
        for (size_t k = 0; k < r->nseries; k++) {
            char *s = fmt_labels(r->series[k].labels);
            if (strcmp(s, want) == 0) {
                found = true;
                double got = r->series[k].points[0].v;
                assert_int_equal(r->series[k].points[0].t, t);
                if (!(fabs(got - v) <= 1e-9 * fmax(1, fabs(v)) || (isnan(got) && isnan(v))))
                    fail_msg("%s: %s = %.17g want %.17g", q, want, got, v);
            }
            free(s);
        }
        if (!found)
            fail_msg("%s: no series %s", q, want);
    }
    va_end(ap);
    promql_result_free(r);
}

static void expect_scalar(const char *q, int64_t t, double v)
{
    struct promql_result *r = instant(q, t);
    assert_int_equal(r->type, PROMQL_VALUE_SCALAR);
    if (!(fabs(r->scalar.v - v) < 1e-9 || (isnan(v) && isnan(r->scalar.v))))
        fail_msg("%s = %.17g want %.17g", q, r->scalar.v, v);
    assert_int_equal(r->scalar.t, t);
    promql_result_free(r);
}

static void test_literals(void **state)
{
    (void)state;
    expect_scalar("1 + 2 * 3", 0, 7);
    expect_scalar("2 ^ 3 ^ 2", 0, 512);
    expect_scalar("1 - 2 - 3", 0, -4);
    expect_scalar("-2 ^ 2", 0, -4);
    expect_scalar("7 % 4", 0, 3);
    expect_scalar("1 < bool 2", 0, 1);
    expect_scalar("1 == bool 2", 0, 0);
    expect_scalar("0x10 + 1e1", 0, 26);
    expect_scalar("time()", 90000, 90);
    expect_scalar("5m", 0, 300);
    struct promql_result *r = instant("\"hello\"", 5000);
    assert_int_equal(r->type, PROMQL_VALUE_STRING);
    assert_string_equal(r->string, "hello");
    promql_result_free(r);
}

static void test_selectors(void **state)
{
    (void)state;
    expect_vec("x", 120000, 1, "x{job=\"a\"}", 80.0);
    expect_vec("x", 125000, 1, "x{job=\"a\"}", 80.0);
    expect_vec("x offset 1m", 120000, 1, "x{job=\"a\"}", 40.0);
    expect_vec("x @ 30", 120000, 1, "x{job=\"a\"}", 20.0);
    expect_vec("x offset -15s", 120000, 1, "x{job=\"a\"}", 90.0);
    expect_vec("{__name__=~\"a|b\", l=\"1\"}", 0, 2, "a{l=\"1\"}", 10.0, "b{l=\"1\"}", 1.0);
    expect_vec("http{job!=\"api\"}", 0, 1, "http{instance=\"0\", job=\"web\"}", 4.0);
    expect_vec("http{job!~\"a.*\"}", 0, 1, "http{instance=\"0\", job=\"web\"}", 4.0);
    /* lookback: (T-5m, T] */
    expect_vec("lonely", 299999, 1, "lonely", 1.0);
    expect_vec("lonely", 300000, 0);
    /* staleness: the marker at 30s hides the series */
    expect_vec("gone", 15000, 1, "gone", 1.0);
    expect_vec("gone", 30000, 0);
    expect_vec("gone", 100000, 0);
    /* range selector: (T-1m, T], instant query returns a matrix */
    struct promql_result *r = instant("x[1m]", 120000);
    assert_int_equal(r->type, PROMQL_VALUE_MATRIX);
    assert_int_equal(r->nseries, 1);
    assert_int_equal(r->series[0].npoints, 4);
    assert_int_equal(r->series[0].points[0].t, 75000);
    assert_int_equal(r->series[0].points[3].t, 120000);
    promql_result_free(r);
    /* stale markers are not part of ranges */
    r = instant("gone[1m]", 40000);
    assert_int_equal(r->nseries, 1);
    assert_int_equal(r->series[0].npoints, 2);
    promql_result_free(r);
}

static void test_rates(void **state)
{
    (void)state;
    expect_vec("rate(x[1m])", 120000, 1, "{job=\"a\"}", 10.0 / 15.0);
    expect_vec("increase(x[1m])", 120000, 1, "{job=\"a\"}", 40.0);
    expect_vec("delta(x[1m])", 120000, 1, "{job=\"a\"}", 40.0);
    expect_vec("irate(x[1m])", 120000, 1, "{job=\"a\"}", 10.0 / 15.0);
    expect_vec("idelta(x[1m])", 120000, 1, "{job=\"a\"}", 10.0);
    /* window not aligned with samples: (50s, 110s] holds 60..105 (40..70):
     * result 30 over 45s, 10s to start (< 16.5), 5s to end -> 30*60/45. */
    expect_vec("increase(x[1m])", 110000, 1, "{job=\"a\"}", 40.0);
    /* counter reset: 10,20,5,15 -> 5 + 20 = 25, extended by 15s to start:
     * 25 * 60/45. */
    expect_vec("increase(y[1m])", 60000, 1, "{}", 25.0 * 60.0 / 45.0);
    expect_vec("resets(y[1m])", 60000, 1, "{}", 1.0);
    expect_vec("changes(y[1m])", 60000, 1, "{}", 3.0);
    /* zero clamp: window (-30s, 30s] has 0,10,20 at 0,15,30: the start
     * gap (30s) exceeds 1.1 * 15s so it would extend by 7.5s, but the
     * counter reaches zero right at the first sample: 20 over 60s. */
    expect_vec("rate(x[1m])", 30000, 1, "{job=\"a\"}", 20.0 / 60.0);
    /* gauge, same window: no zero clamp, extended by 7.5s: 20 * 37.5/30. */
    expect_vec("delta(x[1m])", 30000, 1, "{job=\"a\"}", 20.0 * 37.5 / 30.0);
    /* one sample: no rate */
    expect_vec("rate(x[1m])", 0, 0);
    expect_vec("deriv(x[1m])", 120000, 1, "{job=\"a\"}", 10.0 / 15.0);
    expect_vec("predict_linear(x[1m], 60)", 120000, 1, "{job=\"a\"}", 120.0);
    expect_vec("sum_over_time(x[1m])", 120000, 1, "{job=\"a\"}", 260.0);
    expect_vec("avg_over_time(x[1m])", 120000, 1, "{job=\"a\"}", 65.0);
    expect_vec("count_over_time(x[1m])", 120000, 1, "{job=\"a\"}", 4.0);
    expect_vec("min_over_time(x[1m])", 120000, 1, "{job=\"a\"}", 50.0);
    expect_vec("max_over_time(x[1m])", 120000, 1, "{job=\"a\"}", 80.0);
    expect_vec("last_over_time(x[1m])", 120000, 1, "x{job=\"a\"}", 80.0);
    expect_vec("present_over_time(x[1m])", 120000, 1, "{job=\"a\"}", 1.0);
    expect_vec("quantile_over_time(0.5, x[1m])", 120000, 1, "{job=\"a\"}", 65.0);
    expect_vec("stdvar_over_time(x[1m])", 120000, 1, "{job=\"a\"}", 125.0);
    expect_vec("stddev_over_time(x[1m])", 120000, 1, "{job=\"a\"}", sqrt(125.0));
    /* subquery: x at 60,90,120 within (30s, 120s] step 30s */
    expect_vec("sum_over_time(x[90s:30s])", 120000, 1, "{job=\"a\"}", 40.0 + 60.0 + 80.0);
    expect_vec("rate(x[1m] offset 1m)", 180000, 1, "{job=\"a\"}", 10.0 / 15.0);
}

static void test_aggregations(void **state)
{
    (void)state;
    expect_vec("sum(http)", 0, 1, "{}", 7.0);
    expect_vec("sum by (job) (http)", 0, 2, "{job=\"api\"}", 3.0, "{job=\"web\"}", 4.0);
    expect_vec("sum(http) by (job)", 0, 2, "{job=\"api\"}", 3.0, "{job=\"web\"}", 4.0);
    expect_vec("sum without (instance) (http)", 0, 2, "{job=\"api\"}", 3.0, "{job=\"web\"}", 4.0);
    expect_vec("avg by (job) (http)", 0, 2, "{job=\"api\"}", 1.5, "{job=\"web\"}", 4.0);
    expect_vec("count(http)", 0, 1, "{}", 3.0);
    expect_vec("min(http)", 0, 1, "{}", 1.0);
    expect_vec("max by (instance) (http)", 0, 2, "{instance=\"0\"}", 4.0, "{instance=\"1\"}", 2.0);
    expect_vec("group by (job) (http)", 0, 2, "{job=\"api\"}", 1.0, "{job=\"web\"}", 1.0);
    expect_vec("stdvar(http)", 0, 1, "{}", 42.0 / 27.0);
    expect_vec("stddev(http)", 0, 1, "{}", sqrt(42.0 / 27.0));
    expect_vec("quantile(0.5, http)", 0, 1, "{}", 2.0);
    expect_vec("quantile(0.75, http)", 0, 1, "{}", 3.0);
    expect_vec("topk(1, http)", 0, 1, "http{instance=\"0\", job=\"web\"}", 4.0);
    expect_vec("bottomk by (job) (1, http)", 0, 2, "http{instance=\"0\", job=\"api\"}", 1.0,
               "http{instance=\"0\", job=\"web\"}", 4.0);
    expect_vec("count_values(\"v\", http)", 0, 3, "{v=\"1\"}", 1.0, "{v=\"2\"}", 1.0, "{v=\"4\"}",
               1.0);
    /* series come sorted by labels: instance 0 (api, web) first */
    expect_vec("limitk(2, http)", 0, 2, "http{instance=\"0\", job=\"api\"}", 1.0,
               "http{instance=\"0\", job=\"web\"}", 4.0);
    /* topk keeps the order: highest first */
    struct promql_result *r = instant("topk(3, http)", 0);
    assert_int_equal(r->nseries, 3);
    assert_true(r->series[0].points[0].v == 4 && r->series[2].points[0].v == 1);
    promql_result_free(r);
}

static void test_binary(void **state)
{
    (void)state;
    expect_vec("http > 1", 0, 2, "http{instance=\"1\", job=\"api\"}", 2.0,
               "http{instance=\"0\", job=\"web\"}", 4.0);
    expect_vec("1 < http", 0, 2, "http{instance=\"1\", job=\"api\"}", 2.0,
               "http{instance=\"0\", job=\"web\"}", 4.0);
    expect_vec("http > bool 1", 0, 3, "{instance=\"0\", job=\"api\"}", 0.0,
               "{instance=\"1\", job=\"api\"}", 1.0, "{instance=\"0\", job=\"web\"}", 1.0);
    expect_vec("http * 2", 0, 3, "{instance=\"0\", job=\"api\"}", 2.0,
               "{instance=\"1\", job=\"api\"}", 4.0, "{instance=\"0\", job=\"web\"}", 8.0);
    expect_vec("10 - http{job=\"web\"}", 0, 1, "{instance=\"0\", job=\"web\"}", 6.0);
    expect_vec("-http{job=\"web\"}", 0, 1, "{instance=\"0\", job=\"web\"}", -4.0);
    expect_vec("a + b", 0, 2, "{l=\"1\"}", 11.0, "{l=\"2\"}", 22.0);
    expect_vec("a == b * 10", 0, 2, "a{l=\"1\"}", 10.0, "a{l=\"2\"}", 20.0);
    /* one-to-one on(): only the on() labels remain, even for filters */
    expect_vec("a > on(l) b", 0, 2, "{l=\"1\"}", 10.0, "{l=\"2\"}", 20.0);
    expect_vec("a + on(l) b{l=\"2\"}", 0, 1, "{l=\"2\"}", 22.0);
    expect_vec("a + x", 0, 0);
    expect_vec("c + on(l) group_left a", 0, 2, "{l=\"1\", x=\"1\"}", 13.0, "{l=\"1\", x=\"2\"}",
               15.0);
    expect_vec("a + on(l) group_right c", 0, 2, "{l=\"1\", x=\"1\"}", 13.0, "{l=\"1\", x=\"2\"}",
               15.0);
    expect_vec("c * on(l) group_left(q) a", 0, 2, "{l=\"1\", x=\"1\"}", 30.0,
               "{l=\"1\", x=\"2\"}", 50.0);
    expect_vec("a and b", 0, 2, "a{l=\"1\"}", 10.0, "a{l=\"2\"}", 20.0);
    expect_vec("a and on(l) c", 0, 1, "a{l=\"1\"}", 10.0);
    expect_vec("a unless on(l) c", 0, 1, "a{l=\"2\"}", 20.0);
    expect_vec("a or c", 0, 4, "a{l=\"1\"}", 10.0, "a{l=\"2\"}", 20.0, "c{l=\"1\", x=\"1\"}", 3.0,
               "c{l=\"1\", x=\"2\"}", 5.0);
    expect_vec("a{l=\"1\"} or b", 0, 2, "a{l=\"1\"}", 10.0, "b{l=\"2\"}", 2.0);
    expect_vec("a atan2 b", 0, 2, "{l=\"1\"}", atan2(10, 1), "{l=\"2\"}", atan2(20, 2));
    expect_error("a + on(l) c", BS_EEXEC,
                 "found duplicate series for the match group {l=\"1\"} on the right hand-side "
                 "of the operation");
    expect_error("c + on(l) a", BS_EEXEC, "multiple matches for labels");
}

static void test_functions(void **state)
{
    (void)state;
    expect_vec("abs(neg)", 0, 1, "{src=\"foo-bar\"}", 3.5);
    expect_vec("ceil(neg)", 0, 1, "{src=\"foo-bar\"}", -3.0);
    expect_vec("floor(neg)", 0, 1, "{src=\"foo-bar\"}", -4.0);
    expect_vec("round(neg)", 0, 1, "{src=\"foo-bar\"}", -3.0);
    expect_vec("round(neg, 2)", 0, 1, "{src=\"foo-bar\"}", -4.0);
    expect_vec("sgn(neg)", 0, 1, "{src=\"foo-bar\"}", -1.0);
    expect_vec("sqrt(http{job=\"web\"})", 0, 1, "{instance=\"0\", job=\"web\"}", 2.0);
    expect_vec("exp(vector(0))", 0, 1, "{}", 1.0);
    expect_vec("ln(vector(1))", 0, 1, "{}", 0.0);
    expect_vec("log2(vector(8))", 0, 1, "{}", 3.0);
    expect_vec("log10(vector(100))", 0, 1, "{}", 2.0);
    expect_vec("clamp(http, 1.5, 3)", 0, 3, "{instance=\"0\", job=\"api\"}", 1.5,
               "{instance=\"1\", job=\"api\"}", 2.0, "{instance=\"0\", job=\"web\"}", 3.0);
    expect_vec("clamp(http, 3, 1)", 0, 0);
    expect_vec("clamp_min(neg, 0)", 0, 1, "{src=\"foo-bar\"}", 0.0);
    expect_vec("clamp_max(http{job=\"web\"}, 1)", 0, 1, "{instance=\"0\", job=\"web\"}", 1.0);
    expect_scalar("scalar(http{job=\"web\"})", 0, 4);
    expect_scalar("scalar(http)", 0, NAN);
    expect_vec("timestamp(x)", 125000, 1, "{job=\"a\"}", 120.0);
    expect_vec("absent(nonexistent{job=\"z\", i=~\"x\"})", 0, 1, "{job=\"z\"}", 1.0);
    expect_vec("absent(x)", 0, 0);
    expect_vec("absent_over_time(nope[1m])", 0, 1, "{}", 1.0);
    expect_vec("label_replace(neg, \"dst\", \"$1-$2\", \"src\", \"(.*)-(.*)\")", 0, 1,
               "neg{dst=\"foo-bar\", src=\"foo-bar\"}", -3.5);
    expect_vec("label_replace(neg, \"dst\", \"${2}x\", \"src\", \"(.*)-(.*)\")", 0, 1,
               "neg{dst=\"barx\", src=\"foo-bar\"}", -3.5);
    expect_vec("label_replace(neg, \"dst\", \"x\", \"src\", \"nomatch\")", 0, 1,
               "neg{src=\"foo-bar\"}", -3.5);
    expect_vec("label_join(http{job=\"web\"}, \"d\", \"/\", \"job\", \"instance\")", 0, 1,
               "http{d=\"web/0\", instance=\"0\", job=\"web\"}", 4.0);
    expect_vec("histogram_quantile(0.5, h_bucket)", 0, 1, "{}", 0.15);
    expect_vec("histogram_quantile(0.9, h_bucket)", 0, 1, "{}", 0.2);
    expect_vec("hour(vector(5 * 3600 + 120))", 0, 1, "{}", 5.0);
    expect_vec("minute(vector(5 * 3600 + 120))", 0, 1, "{}", 2.0);
    expect_vec("year(vector(1700000000))", 0, 1, "{}", 2023.0);
    expect_vec("month(vector(1700000000))", 0, 1, "{}", 11.0);
    expect_vec("day_of_month(vector(1700000000))", 0, 1, "{}", 14.0);
    expect_vec("day_of_week(vector(1700000000))", 0, 1, "{}", 2.0);
    expect_vec("days_in_month(vector(1700000000))", 0, 1, "{}", 30.0);
    struct promql_result *r = instant("sort_desc(http)", 0);
    assert_int_equal(r->nseries, 3);
    assert_true(r->series[0].points[0].v == 4 && r->series[2].points[0].v == 1);
    promql_result_free(r);
    r = instant("sort(http)", 0);
    assert_true(r->series[0].points[0].v == 1 && r->series[2].points[0].v == 4);
    promql_result_free(r);
    expect_error("abs({__name__=~\"a|b\"})", BS_EEXEC,
                 "vector cannot contain metrics with the same labelset");
    expect_error("histogram_count(x)", BS_EEXEC, "function histogram_count is not supported yet");
    expect_error("rate(x)", BS_EPARSE, "1:6: parse error: expected type range vector");
    expect_error("label_replace(x, \"1bad\", \"\", \"job\", \"\")", BS_EEXEC,
                 "invalid destination label name in label_replace(): 1bad");
}

/* Delayed __name__ removal: names survive until the end, so label
 * functions and "by (__name__)" see them; __type__/__unit__ go with them. */
static void test_delayed_names(void **state)
{
    (void)state;
    expect_vec("label_replace(rate(x[1m]), \"n\", \"$1\", \"__name__\", \"(.*)\")", 60000, 1,
               "{job=\"a\", n=\"x\"}", 2.0 / 3.0);
    expect_vec("label_replace(rate(x[1m]), \"__name__\", \"r_$1\", \"__name__\", \"(.*)\")", 60000,
               1, "r_x{job=\"a\"}", 2.0 / 3.0);
    expect_vec("sum by (__name__) (a)", 0, 1, "a", 30.0);
    expect_vec("sum by (__name__) (-a)", 0, 1, "{}", -30.0);
    expect_error("sum by (__name__) (-{__name__=~\"a|b\"})", BS_EEXEC,
                 "vector cannot contain metrics with the same labelset");
    expect_vec("sum by (l) (-{__name__=~\"a|b\"})", 0, 2, "{l=\"1\"}", -11.0, "{l=\"2\"}", -22.0);
    expect_vec("last_over_time(abs(a{l=\"1\"})[1m:])", 0, 1, "{l=\"1\"}", 10.0);
    expect_vec("first_over_time(x[1m])", 60000, 1, "x{job=\"a\"}", 10.0);
    expect_vec("mt * 2", 0, 1, "{job=\"j\"}", 6.0);
    expect_vec("-mt", 0, 1, "{job=\"j\"}", -3.0);
    expect_vec("mt + mt", 0, 1, "{job=\"j\"}", 6.0);
    expect_vec("mt > 1", 0, 1, "mt{__type__=\"counter\", __unit__=\"s\", job=\"j\"}", 3.0);
    /* Range query: two names that drop to the same labels merge when their
     * points do not overlap. */
    struct promql_result *r = NULL;
    struct bs_error err;
    assert_int_equal(promql_query_range(eng, db, "-gone or -lonely", 0, 60000, 15000, &r, &err), 0);
    assert_int_equal(r->nseries, 1);
    assert_int_equal(r->series[0].labels->n, 0);
    assert_int_equal(r->series[0].npoints, 5);
    promql_result_free(r);
    /* ... and fail when they overlap. */
    r = NULL;
    assert_int_equal(
        promql_query_range(eng, db, "-{__name__=~\"a|b\"}", 0, 30000, 15000, &r, &err), BS_EEXEC);
    assert_null(r);
    assert_string_equal(err.msg, "vector cannot contain metrics with the same labelset");
}

static void test_duration_exprs(void **state)
{
    (void)state;
    expect_vec("count_over_time(x[30s+30s])", 60000, 1, "{job=\"a\"}", 4.0);
    expect_vec("count_over_time(x[2*30])", 60000, 1, "{job=\"a\"}", 4.0);
    expect_vec("x offset (15*2)", 60000, 1, "x{job=\"a\"}", 20.0);
    expect_vec("x offset 30 + 1", 60000, 1, "{job=\"a\"}", 21.0);
    expect_vec("x offset -(15)", 30000, 1, "x{job=\"a\"}", 30.0);
    expect_scalar("step()", 60000, 0);
    expect_scalar("start() + end()", 60000, 120);
    expect_scalar("min_of(1, 2) + max_of(3, 4)", 0, 5);
    expect_scalar("min_of(NaN, 2)", 0, NAN);
    expect_vec("x offset range()", 60000, 1, "x{job=\"a\"}", 40.0);
    expect_error("x[range()]", BS_EINVAL, "duration must be greater than 0");
    struct promql_result *r = NULL;
    struct bs_error err;
    assert_int_equal(
        promql_query_range(eng, db, "count_over_time(x[step()])", 30000, 60000, 15000, &r, &err), 0);
    assert_int_equal(r->nseries, 1);
    assert_int_equal(r->series[0].npoints, 3);
    assert_true(r->series[0].points[0].v == 1);
    promql_result_free(r);
    assert_int_equal(promql_query_range(eng, db, "x offset step()", 30000, 60000, 15000, &r, &err),
                     0);
    assert_true(r->series[0].points[0].v == 10);
    promql_result_free(r);
    assert_int_equal(promql_query_range(eng, db, "range() + step()", 0, 60000, 15000, &r, &err), 0);
    assert_true(r->series[0].points[0].v == 75);
    promql_result_free(r);
}

static bool has_annotation(char **v, size_t n, const char *text)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i], text) == 0)
            return true;
    return false;
}

static void test_annotations(void **state)
{
    (void)state;
    struct promql_result *r = instant("rate(lonely[1m]) or rate(x[1m])", 60000);
    assert_int_equal(r->nwarnings, 0);
    assert_int_equal(r->ninfos, 1);
    assert_string_equal(r->infos[0], "PromQL info: metric might not be a counter, name does not "
                                     "end in _total/_sum/_count/_bucket: \"x\"");
    promql_result_free(r);
    r = instant("rate(mt_total[1m])", 0);
    assert_int_equal(r->ninfos, 0);
    promql_result_free(r);
    r = instant("histogram_quantile(1.5, h_bucket or a)", 0);
    assert_true(has_annotation(r->warnings, r->nwarnings,
                               "PromQL warning: quantile value should be between 0 and 1, got 1.5"));
    assert_true(has_annotation(r->warnings, r->nwarnings,
                               "PromQL warning: bucket label \"le\" is missing or has a malformed "
                               "value of \"\" for metric name \"a\""));
    promql_result_free(r);
    r = instant("histogram_quantile(0.5, nonmono_bucket)", 0);
    assert_int_equal(r->ninfos, 1);
    assert_true(strstr(r->infos[0], "needed to be fixed for monotonicity") != NULL);
    promql_result_free(r);
}

static void test_more_functions(void **state)
{
    (void)state;
    /* absent(): the first equality matcher sets a label, any later matcher
     * on the same label removes it. */
    expect_vec("absent(nope{job=\"a\", job=~\"b\", foo=\"bar\"})", 0, 1, "{foo=\"bar\"}", 1.0);
    expect_vec("absent(nope{job=~\"b\", job=\"a\"})", 0, 1, "{job=\"a\"}", 1.0);
    expect_vec("histogram_fraction(0, 0.15, h_bucket)", 0, 1, "{}", 0.5);
    expect_vec("histogram_fraction(-Inf, +Inf, h_bucket)", 0, 1, "{}", 1.0);
    expect_vec("histogram_fraction(0.3, 0.2, h_bucket)", 0, 1, "{}", 0.0);
    expect_vec("mad_over_time(x[1m])", 60000, 1, "{job=\"a\"}", 10.0);
    expect_vec("ts_of_max_over_time(x[1m])", 60000, 1, "{job=\"a\"}", 60.0);
    expect_vec("double_exponential_smoothing(x[1m], 0.5, 0.5)", 60000, 1, "{job=\"a\"}", 40.0);
    expect_error("double_exponential_smoothing(x[1m], 1, 0.5)", BS_EEXEC,
                 "invalid smoothing factor. Expected: 0 < sf < 1, got: 1.000000");
    struct promql_result *r = instant("sort_by_label(num, \"i\")", 0);
    assert_int_equal(r->nseries, 3);
    assert_string_equal(labels_get(r->series[0].labels, "i"), "2");
    assert_string_equal(labels_get(r->series[1].labels, "i"), "10");
    assert_string_equal(labels_get(r->series[2].labels, "i"), "a");
    promql_result_free(r);
    r = instant("sort_by_label_desc(num, \"i\")", 0);
    assert_string_equal(labels_get(r->series[0].labels, "i"), "a");
    promql_result_free(r);
    /* avg of huge values: no overflow to +Inf. */
    expect_vec("avg(big)", 0, 1, "{}", 1.35e308);
    /* Many-to-one matching errors come before the comparison filter. */
    expect_error("many > on(j) one", BS_EEXEC, "multiple matches for labels");
}

static void test_range_query(void **state)
{
    (void)state;
    struct promql_result *r = NULL;
    struct bs_error err;
    assert_int_equal(promql_query_range(eng, db, "x", 0, 60000, 15000, &r, &err), 0);
    assert_int_equal(r->type, PROMQL_VALUE_MATRIX);
    assert_int_equal(r->nseries, 1);
    assert_int_equal(r->series[0].npoints, 5);
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(r->series[0].points[i].t, (int64_t)i * 15000);
        assert_true(r->series[0].points[i].v == (double)i * 10);
    }
    promql_result_free(r);
    /* scalar -> matrix with empty labels */
    assert_int_equal(promql_query_range(eng, db, "time()", 0, 20000, 10000, &r, &err), 0);
    assert_int_equal(r->nseries, 1);
    assert_int_equal(r->series[0].labels->n, 0);
    assert_int_equal(r->series[0].npoints, 3);
    assert_true(r->series[0].points[2].v == 20);
    promql_result_free(r);
    /* series without points in some steps: gone appears only while fresh;
     * "or" matches ignoring __name__, so lonely fills in only after gone
     * went stale; series are sorted by labels */
    assert_int_equal(promql_query_range(eng, db, "gone or lonely", 0, 60000, 15000, &r, &err), 0);
    assert_int_equal(r->nseries, 2);
    assert_string_equal(r->series[0].labels->v[0].value, "gone");
    assert_int_equal(r->series[0].npoints, 2);
    assert_int_equal(r->series[1].npoints, 3);
    assert_int_equal(r->series[1].points[0].t, 30000);
    promql_result_free(r);
    assert_int_equal(promql_query_range(eng, db, "x[1m]", 0, 60000, 15000, &r, &err), BS_EINVAL);
    assert_null(r);
    assert_int_equal(promql_query_range(eng, db, "x", 0, 60000, 0, &r, &err), BS_EINVAL);
    assert_int_equal(promql_query_range(eng, db, "x", 60000, 0, 1000, &r, &err), BS_EINVAL);
}

/* Range queries read each selector once, sliding its windows forward
 * step by step; instant queries read one window. Both must agree at every
 * step: counter resets entering and leaving a window, stale markers,
 * windows that empty out, @ and offset, subqueries. */
static void test_streaming_windows(void **state)
{
    (void)state;
    static const char *const qs[] = {
        "rate(y[30s])", "increase(y[45s])", "resets(y[20s])", "rate(x[1m])",
        "count_over_time(gone[20s])", "last_over_time(gone[1m])", "gone", "x offset 20s",
        "rate(y[30s] @ 45)", "y @ 30", "max_over_time(rate(x[30s])[1m:10s])",
        "sum(rate(y[30s])) + count(gone)", "timestamp(x)",
    };
    for (size_t k = 0; k < sizeof(qs) / sizeof(qs[0]); k++) {
        struct promql_result *r = NULL;
        struct bs_error err;
        bs_error_clear(&err);
        if (promql_query_range(eng, db, qs[k], 0, 120000, 5000, &r, &err))
            fail_msg("%s: %s", qs[k], err.msg);
        for (int64_t t = 0; t <= 120000; t += 5000) {
            struct promql_result *ir = instant(qs[k], t);
            size_t got = 0;
            for (size_t i = 0; i < r->nseries; i++)
                for (size_t j = 0; j < r->series[i].npoints; j++) {
                    if (r->series[i].points[j].t != t)
                        continue;
                    got++;
                    bool found = false;
                    for (size_t m = 0; m < ir->nseries; m++)
                        if (labels_equal(ir->series[m].labels, r->series[i].labels)) {
                            found = true;
                            double a = ir->series[m].points[0].v, b = r->series[i].points[j].v;
                            if (!(a == b || (isnan(a) && isnan(b))))
                                fail_msg("%s at %lld: instant %.17g, range %.17g", qs[k],
                                         (long long)t, a, b);
                        }
                    if (!found)
                        fail_msg("%s at %lld: a range series missing in the instant result",
                                 qs[k], (long long)t);
                }
            if (got != ir->nseries)
                fail_msg("%s at %lld: %zu range points, %zu instant series", qs[k],
                         (long long)t, got, ir->nseries);
            promql_result_free(ir);
        }
        promql_result_free(r);
    }
    /* a reset inside the window, then the window past it */
    expect_vec("increase(y[20s])", 45000, 1, "{}", 5.0 * 20 / 15);
    expect_vec("increase(y[20s])", 60000, 1, "{}", 10.0 * 20 / 15);
}

static void test_limits(void **state)
{
    (void)state;
    struct promql_engine_opts o;
    promql_engine_opts_default(&o);
    o.max_samples = 5;
    struct promql_engine *e = promql_engine_new(&o);
    struct promql_result *r = NULL;
    struct bs_error err;
    bs_error_clear(&err);
    assert_int_equal(promql_query_instant(e, db, "x[10m]", 300000, &r, &err), BS_ELIMIT);
    assert_string_equal(err.msg,
                        "query processing would load too many samples into memory in query "
                        "execution");
    assert_string_equal(promql_error_type(BS_ELIMIT), "execution");
    assert_null(r);
    promql_engine_free(e);

    promql_engine_opts_default(&o);
    o.timeout_ms = 1;
    e = promql_engine_new(&o);
    bs_error_clear(&err);
    int rc = promql_query_range(e, db, "sum(vector(1) * 2)", 0, INT64_C(5000000000), 1000, &r,
                                &err);
    assert_int_equal(rc, BS_ETIMEOUT);
    assert_string_equal(err.msg, "query timed out in query execution");
    assert_string_equal(promql_error_type(rc), "timeout");
    assert_null(r);
    promql_engine_free(e);
    assert_string_equal(promql_error_type(BS_EPARSE), "bad_data");
}

static void test_json(void **state)
{
    (void)state;
    struct bs_buf b;
    bs_buf_init(&b, 0);
    struct promql_result *r = instant("http{job=\"web\"}", INT64_C(1700000000123));
    /* the sample at 0 is out of lookback at that time: empty vector */
    assert_int_equal(promql_result_json(r, &b), 0);
    assert_string_equal(b.data, "{\"resultType\":\"vector\",\"result\":[]}");
    promql_result_free(r);
    bs_buf_reset(&b);
    r = instant("http{job=\"web\"} / 8", 100);
    assert_int_equal(promql_result_json(r, &b), 0);
    assert_string_equal(b.data, "{\"resultType\":\"vector\",\"result\":[{\"metric\":{\"instance\":"
                                "\"0\",\"job\":\"web\"},\"value\":[0.1,\"0.5\"]}]}");
    promql_result_free(r);
    bs_buf_reset(&b);
    r = instant("1.5", INT64_C(1700000000123));
    assert_int_equal(promql_result_json(r, &b), 0);
    assert_string_equal(b.data, "{\"resultType\":\"scalar\",\"result\":[1700000000.123,\"1.5\"]}");
    promql_result_free(r);
    bs_buf_reset(&b);
    r = instant("\"s\"", INT64_C(1700000000000));
    assert_int_equal(promql_result_json(r, &b), 0);
    assert_string_equal(b.data, "{\"resultType\":\"string\",\"result\":[1700000000,\"s\"]}");
    promql_result_free(r);
    bs_buf_reset(&b);
    r = instant("y[31s]", 60000);
    assert_int_equal(promql_result_json(r, &b), 0);
    assert_string_equal(b.data, "{\"resultType\":\"matrix\",\"result\":[{\"metric\":{\"__name__\":"
                                "\"y\"},\"values\":[[30,\"20\"],[45,\"5\"],[60,\"15\"]]}]}");
    promql_result_free(r);
    bs_buf_reset(&b);
    r = instant("-1 / 0", 1250);
    assert_int_equal(promql_result_json(r, &b), 0);
    assert_string_equal(b.data, "{\"resultType\":\"scalar\",\"result\":[1.25,\"-Inf\"]}");
    promql_result_free(r);
    bs_buf_fini(&b);
}

struct thread_arg {
    struct promql_engine *e;
    int failures;
};

static void *query_thread(void *p)
{
    struct thread_arg *a = p;
    for (int i = 0; i < 20; i++) {
        struct promql_result *r = NULL;
        struct bs_error err;
        if (promql_query_instant(a->e, db, "sum by (job) (rate(x[1m]))", 120000, &r, &err) != 0 ||
            r->nseries != 1 || fabs(r->series[0].points[0].v - 10.0 / 15.0) > 1e-12)
            a->failures++;
        promql_result_free(r);
    }
    return NULL;
}

/* Many threads share one engine limited to two concurrent queries. */
static void test_concurrency(void **state)
{
    (void)state;
    struct promql_engine_opts o;
    promql_engine_opts_default(&o);
    o.max_concurrency = 2;
    struct promql_engine *e = promql_engine_new(&o);
    pthread_t th[4];
    struct thread_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (struct thread_arg){e, 0};
        assert_int_equal(pthread_create(&th[i], NULL, query_thread, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].failures, 0);
    }
    promql_engine_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_literals),   cmocka_unit_test(test_selectors),
        cmocka_unit_test(test_rates),      cmocka_unit_test(test_aggregations),
        cmocka_unit_test(test_binary),     cmocka_unit_test(test_functions),
        cmocka_unit_test(test_range_query), cmocka_unit_test(test_limits),
        cmocka_unit_test(test_streaming_windows),
        cmocka_unit_test(test_json),       cmocka_unit_test(test_concurrency),
        cmocka_unit_test(test_delayed_names), cmocka_unit_test(test_duration_exprs),
        cmocka_unit_test(test_annotations), cmocka_unit_test(test_more_functions),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
