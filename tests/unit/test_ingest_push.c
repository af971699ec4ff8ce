/* SPDX-License-Identifier: Apache-2.0
 *
 * Unit tests of the Pushgateway API (src/ingest/push*.c) against a real
 * tsdb in a temporary directory: paths and @base64 values, PUT / POST /
 * DELETE semantics, consistency errors with the Pushgateway's texts,
 * push_time_seconds and push_failure_time_seconds, the JSON listing, the
 * groups file across a reopen, re-appends keeping values visible, and
 * staleness markers for removed series. Expected texts were taken from a
 * real Pushgateway 1.5.1 given the same requests.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <zlib.h>

#include "ingest/ingest.h"
#include "ingest/push_int.h"
#include "test_tsdb_util.h"

struct fx {
    char *dir;
    char *data;      /* push data dir (same as the tsdb's) */
    struct tsdb *db;
    struct ingest_push *pg;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    f->dir = make_tmpdir();
    f->db = open_db(f->dir, 60000, 0);
    struct bs_error err = {0};
    assert_int_equal(ingest_push_new(&f->pg, f->db, f->dir, 0, NULL, &err), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    ingest_push_free(f->pg);
    tsdb_close(f->db);
    rmrf(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* Send a request; returns the status and copies the body (or "") to a
 * static buffer. */
static char body_out[8192];
static int req(struct fx *f, const char *method, const char *path, const char *body)
{
    struct ingest_response r;
    assert_int_equal(ingest_push_handle(f->pg, method, path, NULL, NULL, body,
                                        body ? strlen(body) : 0, &r),
                     0);
    snprintf(body_out, sizeof(body_out), "%s", r.body ? r.body : "");
    int st = r.status;
    ingest_response_fini(&r);
    return st;
}

/* Series matching mspec with the values of their samples ("stale" for a
 * staleness marker), one line per series: "labels v v v". */
static char *values(struct tsdb *db, const char *mspec)
{
    struct labels_matcher *m = mk_matcher(mspec);
    struct tsdb_querier *q = tsdb_querier_new(db, INT64_MIN, INT64_MAX);
    struct tsdb_series_set *set = NULL;
    assert_int_equal(tsdb_querier_select(q, &m, 1, &set, NULL), 0);
    struct bs_buf out;
    bs_buf_init(&out, 0);
    bs_buf_puts(&out, "");
    while (tsdb_series_set_next(set)) {
        labels_format(tsdb_series_set_labels(set), &out);
        struct tsdb_iterator *it = tsdb_series_set_iterator(set);
        while (tsdb_iterator_next(it)) {
            int64_t t;
            double v;
            tsdb_iterator_at(it, &t, &v);
            if (bs_is_stale_nan(v))
                bs_buf_puts(&out, " stale");
            else
                bs_buf_printf(&out, " %g", v);
        }
        tsdb_iterator_free(it);
        bs_buf_putc(&out, '\n');
    }
    tsdb_series_set_free(set);
    tsdb_querier_free(q);
    labels_matcher_free(m);
    return bs_buf_steal(&out, NULL);
}

#define ASSERT_VALUES(db, m, want)                                                                 \
    do {                                                                                           \
        char *got_ = values(db, m);                                                                \
        assert_string_equal(got_, want);                                                           \
        free(got_);                                                                                \
    } while (0)

/* ----------------------------------------------------------------- paths */

static void check_path(const char *path, const char *want)
{
    struct push_glabel *gl;
    size_t n;
    char msg[256];
    struct bs_buf b;
    bs_buf_init(&b, 0);
    if (push_path_parse(path, &gl, &n, msg, sizeof(msg)) != 0) {
        bs_buf_printf(&b, "error: %s", msg);
    } else {
        for (size_t i = 0; i < n; i++)
            bs_buf_printf(&b, "%s%s=%s", i ? "," : "", gl[i].name, gl[i].value);
        push_glabels_free(gl, n);
    }
    assert_string_equal(b.data ? b.data : "", want);
    bs_buf_fini(&b);
}

static void test_paths(void **state)
{
    (void)state;
    check_path("/metrics/job/j1", "job=j1");
    check_path("/metrics/job/j1/instance/i1/zone/b", "instance=i1,job=j1,zone=b");
    check_path("/metrics/job@base64/Zm9v", "job=foo");
    check_path("/metrics/job/x/a@base64/Zm9vL2Jhcg", "a=foo/bar,job=x");
    check_path("/metrics/job/x/a@base64/Zm9vL2Jhcg==", "a=foo/bar,job=x");
    check_path("/metrics/job/x/a@base64/=", "a=,job=x");
    check_path("/metrics/job/x/a@base64/_-8", "error: invalid label value for label a: not valid UTF-8");
    check_path("/metrics/job/x/a@base64/w6k", "a=\xc3\xa9,job=x");
    check_path("/metrics/job/x/a", "error: odd number of components in label string \"/a\"");
    check_path("/metrics/job/x/1a/v", "error: improper label name \"1a\"");
    check_path("/metrics/job/x/__a/v", "error: improper label name \"__a\"");
    check_path("/metrics/job/x/a@base64/!!",
               "error: invalid base64 encoding for label a=\"!!\": illegal base64 data at input "
               "byte 0");
    check_path("/metrics/job/", "error: job name is required");
    check_path("/metrics/job@base64/=", "error: job name is required");
    check_path("/metrics/job/x/job/y", "job=x");
    check_path("/metrics/job/x/a/", "error: empty value for label \"a\"; encode an empty value as a@base64/=");
    check_path("/metrics/foo/x", "error: not a push path");
}

static void test_base64(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(push_base64_decode("aGVsbG8", 7, out), 5);
    assert_memory_equal(out, "hello", 5);
    assert_int_equal(push_base64_decode("aGVsbG8=", 8, out), 5);
    assert_int_equal(push_base64_decode("", 0, out), 0);
    assert_int_equal(push_base64_decode("=", 1, out), 0);
    assert_int_equal(push_base64_decode("ab+c", 4, out), -1 - 2);
    assert_int_equal(push_base64_decode("abcde", 5, out), -1 - 4);
}

/* ------------------------------------------------------------- semantics */

static void test_put_post_delete(void **state)
{
    struct fx *f = *state;
    assert_int_equal(req(f, "PUT", "/metrics/job/j1/instance/i1",
                         "# TYPE a counter\n# HELP a help a\na{x=\"1\"} 1\na{x=\"2\"} 2\nb 3\n"),
                     200);
    ASSERT_VALUES(f->db, "__name__=~a|b",
                  "a{instance=\"i1\", job=\"j1\", x=\"1\"} 1\n"
                  "a{instance=\"i1\", job=\"j1\", x=\"2\"} 2\n"
                  "b{instance=\"i1\", job=\"j1\"} 3\n");
    char *pt = values(f->db, "__name__=push_time_seconds");
    assert_non_null(strstr(pt, "push_time_seconds{instance=\"i1\", job=\"j1\"} 1.7"));
    free(pt);
    ASSERT_VALUES(f->db, "__name__=push_failure_time_seconds",
                  "push_failure_time_seconds{instance=\"i1\", job=\"j1\"} 0\n");

    /* POST replaces family a only; b stays; a{x="2"} goes stale. */
    assert_int_equal(req(f, "POST", "/metrics/job/j1/instance/i1", "# TYPE a counter\na{x=\"1\"} 5\n"),
                     200);
    ASSERT_VALUES(f->db, "__name__=~a|b",
                  "a{instance=\"i1\", job=\"j1\", x=\"1\"} 1 5\n"
                  "a{instance=\"i1\", job=\"j1\", x=\"2\"} 2 stale\n"
                  "b{instance=\"i1\", job=\"j1\"} 3 3\n");

    /* PUT replaces everything: b goes stale. */
    assert_int_equal(req(f, "PUT", "/metrics/job/j1/instance/i1", "# TYPE a counter\na{x=\"1\"} 6\n"),
                     200);
    ASSERT_VALUES(f->db, "__name__=b", "b{instance=\"i1\", job=\"j1\"} 3 3 stale\n");

    /* Re-appends keep the latest value coming. */
    assert_int_equal(ingest_push_tick(f->pg), 0);
    assert_int_equal(ingest_push_tick(f->pg), 0);
    ASSERT_VALUES(f->db, "x=1", "a{instance=\"i1\", job=\"j1\", x=\"1\"} 1 5 6 6 6\n");
    ASSERT_VALUES(f->db, "__name__=b", "b{instance=\"i1\", job=\"j1\"} 3 3 stale\n");

    /* DELETE: stale markers for everything of the group, the meta series
     * included; deleting again is still 202. */
    assert_int_equal(req(f, "DELETE", "/metrics/job/j1/instance/i1", NULL), 202);
    ASSERT_VALUES(f->db, "x=1", "a{instance=\"i1\", job=\"j1\", x=\"1\"} 1 5 6 6 6 stale\n");
    pt = values(f->db, "__name__=push_time_seconds");
    assert_non_null(strstr(pt, " stale\n"));
    free(pt);
    assert_int_equal(ingest_push_group_count(f->pg), 0);
    assert_int_equal(req(f, "DELETE", "/metrics/job/j1/instance/i1", NULL), 202);
    assert_int_equal(ingest_push_tick(f->pg), 0);
    ASSERT_VALUES(f->db, "x=1", "a{instance=\"i1\", job=\"j1\", x=\"1\"} 1 5 6 6 6 stale\n");
}

static void test_grouping_labels_win(void **state)
{
    struct fx *f = *state;
    assert_int_equal(req(f, "PUT", "/metrics/job/j6", "c{job=\"other\"} 1\n"), 200);
    assert_int_equal(req(f, "PUT", "/metrics/job/j8/instance/yy", "c{instance=\"zz\"} 1\n"), 200);
    assert_int_equal(req(f, "PUT", "/metrics/job/hj/a@base64/Zm9vL2Jhcg", "c 1\n"), 200);
    ASSERT_VALUES(f->db, "__name__=c",
                  "c{a=\"foo/bar\", job=\"hj\"} 1\nc{instance=\"yy\", job=\"j8\"} 1\nc{job=\"j6\"} 1\n");
}

static void test_consistency(void **state)
{
    struct fx *f = *state;
    assert_int_equal(req(f, "PUT", "/metrics/job/j1/instance/i1", "# TYPE a counter\na{x=\"1\"} 1\n"),
                     200);
    /* Type clash with another group. */
    assert_int_equal(req(f, "PUT", "/metrics/job/j3", "# TYPE a gauge\na{x=\"1\"} 1\n"), 400);
    assert_string_equal(body_out,
                        "pushed metrics are invalid or inconsistent with existing metrics: "
                        "collected metric \"a\" { label:<name:\"instance\" value:\"\" > "
                        "label:<name:\"job\" value:\"j3\" > label:<name:\"x\" value:\"1\" > "
                        "gauge:<value:1 > } is not a COUNTER\n");
    /* Duplicate series within a push. */
    assert_int_equal(req(f, "PUT", "/metrics/job/j5", "# TYPE c counter\nc 1\nc 2\n"), 400);
    assert_string_equal(body_out,
                        "pushed metrics are invalid or inconsistent with existing metrics: "
                        "collected metric \"c\" { label:<name:\"instance\" value:\"\" > "
                        "label:<name:\"job\" value:\"j5\" > counter:<value:2 > } was collected "
                        "before with the same name and label values\n");
    /* Two errors are listed the way Go's multierror does. */
    assert_int_equal(req(f, "PUT", "/metrics/job/j7", "# TYPE a gauge\na{x=\"1\"} 1\na{x=\"2\"} 2\n"),
                     400);
    assert_non_null(strstr(body_out, "metrics: 2 error(s) occurred:\n* collected metric \"a\""));
    assert_non_null(strstr(body_out, "} is not a COUNTER\n* collected metric \"a\""));
    /* Timestamps are refused. */
    assert_int_equal(req(f, "PUT", "/metrics/job/j9", "c 1 1000\n"), 400);
    assert_string_equal(body_out, "pushed metrics are invalid or inconsistent with existing "
                                  "metrics: pushed metrics must not have timestamps\n");
    /* Histogram suffix collision. */
    assert_int_equal(req(f, "PUT", "/metrics/job/h1", "h_count 1\n"), 200);
    assert_int_equal(req(f, "PUT", "/metrics/job/h2",
                         "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n"),
                     400);
    assert_non_null(strstr(body_out, "collected histogram or summary named \"h\" collides with "
                                     "previously collected metric named \"h_count\""));
    /* A syntax error: no group change, the parser's position. */
    size_t before = ingest_push_group_count(f->pg);
    assert_int_equal(req(f, "PUT", "/metrics/job/j10", "c{ 1\n"), 400);
    assert_true(strncmp(body_out, "text format parsing error in line 1", 35) == 0);
    assert_int_equal(ingest_push_group_count(f->pg), before);
    /* Help differing across groups is accepted, as in Pushgateway 1.5. */
    assert_int_equal(req(f, "PUT", "/metrics/job/j4", "# HELP a other help\n# TYPE a counter\na{x=\"9\"} 1\n"),
                     200);
    /* The failed pushes created their groups, as the Pushgateway does. */
    assert_int_equal(ingest_push_group_count(f->pg), 8);
}

static void test_failure_times(void **state)
{
    struct fx *f = *state;
    assert_int_equal(req(f, "PUT", "/metrics/job/j1", "# TYPE a counter\na 1\n"), 200);
    assert_int_equal(req(f, "PUT", "/metrics/job/j2", "# TYPE a gauge\na 1\n"), 400);
    char *v = values(f->db, "job=j2");
    /* push_failure_time_seconds non-zero, push_time_seconds 0, no a. */
    assert_non_null(strstr(v, "push_failure_time_seconds{job=\"j2\"} 1."));
    assert_non_null(strstr(v, "push_time_seconds{job=\"j2\"} 0\n"));
    assert_null(strstr(v, "a{"));
    free(v);
    struct ingest_response r;
    ingest_push_handle(f->pg, "GET", "/api/v1/metrics", NULL, NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"labels\":{\"job\":\"j2\"},\"last_push_successful\":false"));
    ingest_response_fini(&r);
}

static void test_json(void **state)
{
    struct fx *f = *state;
    assert_int_equal(req(f, "PUT", "/metrics/job/hj/a@base64/Zm9vL2Jhcg",
                         "# TYPE h histogram\n# HELP h hh\nh_bucket{le=\"1.0\"} 1\n"
                         "h_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n# TYPE s summary\n"
                         "s{quantile=\"0.50\"} 1\ns_sum 2\ns_count 3\n"),
                     200);
    assert_int_equal(req(f, "PUT", "/metrics/job/ej/a@base64/=", "e 1\n"), 200);
    ASSERT_VALUES(f->db, "le=~.+", "h_bucket{a=\"foo/bar\", job=\"hj\", le=\"+Inf\"} 2\n"
                                   "h_bucket{a=\"foo/bar\", job=\"hj\", le=\"1\"} 1\n");
    struct ingest_response r;
    ingest_push_handle(f->pg, "GET", "/api/v1/metrics", NULL, NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_type, "application/json");
    /* Groups are sorted by their labels; keys inside a group are sorted as
     * Go sorts map keys. */
    const char *want_hj = "{\"status\":\"success\",\"data\":[{\"h\":{\"time_stamp\":\"";
    assert_true(strncmp(r.body, want_hj, strlen(want_hj)) == 0);
    assert_non_null(strstr(r.body, "},{\"e\":{\"time_stamp\":\""));
    assert_non_null(strstr(r.body, "\"type\":\"UNTYPED\",\"metrics\":[{\"labels\":{\"a\":\"\","
                                   "\"instance\":\"\",\"job\":\"ej\"},\"value\":\"1\"}]},"
                                   "\"labels\":{\"a\":\"\",\"job\":\"ej\"},"
                                   "\"last_push_successful\":true,"
                                   "\"push_failure_time_seconds\":{"));
    assert_non_null(strstr(r.body, "\"type\":\"HISTOGRAM\",\"help\":\"hh\",\"metrics\":[{"
                                   "\"buckets\":{\"+Inf\":\"2\",\"1\":\"1\"},\"count\":\"2\","
                                   "\"labels\":{\"a\":\"foo/bar\",\"instance\":\"\",\"job\":\"hj\"},"
                                   "\"sum\":\"3\"}]}"));
    assert_non_null(strstr(r.body, "\"type\":\"SUMMARY\",\"metrics\":[{\"count\":\"3\","
                                   "\"labels\":{\"a\":\"foo/bar\",\"instance\":\"\",\"job\":\"hj\"},"
                                   "\"quantiles\":{\"0.5\":\"1\"},\"sum\":\"2\"}]}"));
    assert_non_null(strstr(r.body, "\"help\":\"Last Unix time when changing this group in the "
                                   "Pushgateway succeeded.\""));
    assert_non_null(strstr(r.body, "\"value\":\"1.7"));
    assert_non_null(strstr(r.body, "e+09\"}]}"));
    ingest_response_fini(&r);
    /* Wrong methods and paths. */
    assert_int_equal(req(f, "GET", "/metrics/job/hj", NULL), 405);
    assert_int_equal(req(f, "POST", "/api/v1/metrics", NULL), 405);
    assert_int_equal(req(f, "PUT", "/metrics/nojob", "a 1\n"), 404);
}

static void test_persistence(void **state)
{
    struct fx *f = *state;
    assert_int_equal(req(f, "PUT", "/metrics/job/p1/a@base64/=",
                         "# TYPE a counter\n# HELP a with \\\\ and \\n\na{x=\"q\\\"uote\"} 1.5\n"),
                     200);
    assert_int_equal(req(f, "PUT", "/metrics/job/p2", "# TYPE a gauge\na 1\n"), 400);
    struct ingest_response r1, r2;
    ingest_push_handle(f->pg, "GET", "/api/v1/metrics", NULL, NULL, NULL, 0, &r1);
    ingest_push_free(f->pg);
    f->pg = NULL;
    /* The re-append at reopen must land on a later millisecond than the
     * push, or the store ignores it as the same sample. */
    bs_sleep_ms(3);
    struct bs_error err = {0};
    assert_int_equal(ingest_push_new(&f->pg, f->db, f->dir, 0, NULL, &err), 0);
    assert_int_equal(ingest_push_group_count(f->pg), 2);
    ingest_push_handle(f->pg, "GET", "/api/v1/metrics", NULL, NULL, NULL, 0, &r2);
    assert_string_equal(r1.body, r2.body);
    ingest_response_fini(&r1);
    ingest_response_fini(&r2);
    /* The reopened store re-appended at once. */
    ASSERT_VALUES(f->db, "__name__=a", "a{job=\"p1\", x=\"q\\\"uote\"} 1.5 1.5\n");

    /* A corrupt file is refused with its name and line. */
    char path[512];
    snprintf(path, sizeof(path), "%s/pushgateway.groups", f->dir);
    FILE *fp = fopen(path, "w");
    fputs("bongsu-push-groups 1\ngroup 1 2 3\n", fp);
    fclose(fp);
    struct ingest_push *bad = NULL;
    assert_int_equal(ingest_push_new(&bad, f->db, f->dir, 0, NULL, &err), BS_ECORRUPT);
    assert_non_null(strstr(err.msg, "pushgateway.groups:2: malformed"));
}

static void test_gzip_and_limits(void **state)
{
    struct fx *f = *state;
    const char *text = "# TYPE g gauge\ng 42\n";
    uLong cap = compressBound(strlen(text)) + 32;
    unsigned char *z = malloc(cap);
    z_stream zs = {0};
    deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
    zs.next_in = (Bytef *)text;
    zs.avail_in = (uInt)strlen(text);
    zs.next_out = z;
    zs.avail_out = (uInt)cap;
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    size_t zlen = zs.total_out;
    deflateEnd(&zs);
    struct ingest_response r;
    ingest_push_handle(f->pg, "PUT", "/metrics/job/gz", NULL, "gzip", z, zlen, &r);
    assert_int_equal(r.status, 200);
    ingest_response_fini(&r);
    ASSERT_VALUES(f->db, "__name__=g", "g{job=\"gz\"} 42\n");
    ingest_push_handle(f->pg, "PUT", "/metrics/job/gz", NULL, "gzip", z, zlen - 4, &r);
    assert_int_equal(r.status, 400);
    ingest_response_fini(&r);
    ingest_push_handle(f->pg, "PUT", "/metrics/job/gz", NULL, "br", z, zlen, &r);
    assert_int_equal(r.status, 415);
    ingest_response_fini(&r);
    ingest_push_handle(f->pg, "PUT", "/metrics/job/gz",
                       "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; "
                       "encoding=delimited",
                       NULL, z, zlen, &r);
    /* gzip bytes are no protobuf delimited body (test_ingest_push_pb.c
     * covers that format). */
    assert_int_equal(r.status, 400);
    ingest_response_fini(&r);
    free(z);

    ingest_push_free(f->pg);
    struct ingest_limits lim;
    ingest_limits_default(&lim);
    lim.max_body_bytes = 10;
    lim.max_series_per_request = 2;
    struct bs_error err = {0};
    assert_int_equal(ingest_push_new(&f->pg, f->db, NULL, 0, &lim, &err), 0);
    assert_int_equal(req(f, "PUT", "/metrics/job/l", "a 1\nb 2\nc 3\n"), 413);
    assert_int_equal(req(f, "PUT", "/metrics/job/l", "a 1\nb 2\n"), 200);
}

static void test_thread_reappends(void **state)
{
    struct fx *f = *state;
    ingest_push_free(f->pg);
    struct bs_error err = {0};
    assert_int_equal(ingest_push_new(&f->pg, f->db, NULL, 20, NULL, &err), 0);
    assert_int_equal(req(f, "PUT", "/metrics/job/t", "t 7\n"), 200);
    bs_sleep_ms(150);
    char *v = values(f->db, "__name__=t");
    /* At least the push's own append plus a few from the thread. */
    assert_non_null(strstr(v, "t{job=\"t\"} 7 7 7"));
    free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_base64),
        cmocka_unit_test_setup_teardown(test_put_post_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grouping_labels_win, setup, teardown),
        cmocka_unit_test_setup_teardown(test_consistency, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failure_times, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_persistence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gzip_and_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_thread_reappends, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
