/* SPDX-License-Identifier: Apache-2.0
 *
 * http module tests. The pure pieces (form decoding, Accept-Encoding,
 * gzip, the series selector parser, listen-address errors) are tested
 * directly; the API is tested black-box: a real server on 127.0.0.1:0 over
 * a real tsdb in a temporary directory and a real PromQL engine, requests
 * made with libcurl, and status codes, content types and bodies compared
 * with what Prometheus 2.42 answers (bodies byte for byte where they are
 * small).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the four headers above first. */
#include <cmocka.h>

#include <curl/curl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "http/http.h"
#include "http/http_int.h"
#include "labels/labels.h"
#include "promql/promql.h"
#include "tsdb/tsdb.h"

#define T0 INT64_C(1700000000000)

/* ------------------------------------------------------------- fixture */

struct fixture {
    char dir[64];
    struct tsdb *db;
    struct promql_engine *engine;
    struct http_server *srv;
    int port;
    char last_state[64];
};
static struct fixture fx;

static int targets_cb(void *ud, const char *state, struct bs_buf *out)
{
    struct fixture *f = ud;
    snprintf(f->last_state, sizeof(f->last_state), "%s", state);
    return bs_buf_puts(out, "{\"activeTargets\":[{\"health\":\"up\"}],\"droppedTargets\":[]}");
}

/* Echo what the rules and metadata callbacks receive, as their JSON. */
static int rules_cb(void *ud, const struct http_rules_query *q, struct bs_buf *out)
{
    (void)ud;
    int rc = bs_buf_printf(out, "{\"type\":\"%s\",\"exclude\":%s,\"names\":\"", q->type,
                           q->exclude_alerts ? "true" : "false");
    for (size_t i = 0; rc == 0 && i < q->nrule_names; i++)
        rc = bs_buf_printf(out, "%s;", q->rule_names[i]);
    rc = rc ? rc : bs_buf_puts(out, "\",\"groups\":\"");
    for (size_t i = 0; rc == 0 && i < q->ngroup_names; i++)
        rc = bs_buf_printf(out, "%s;", q->group_names[i]);
    rc = rc ? rc : bs_buf_puts(out, "\",\"files\":\"");
    for (size_t i = 0; rc == 0 && i < q->nfiles; i++)
        rc = bs_buf_printf(out, "%s;", q->files[i]);
    return rc ? rc : bs_buf_puts(out, "\"}");
}

static int targets_metadata_cb(void *ud, struct labels_matcher *const *ms, size_t n,
                               const char *metric, long limit, struct bs_buf *out)
{
    (void)ud;
    (void)ms;
    return bs_buf_printf(out, "[{\"matchers\":%zu,\"metric\":\"%s\",\"limit\":%ld}]", n,
                         metric ? metric : "(null)", limit);
}

static int metadata_cb(void *ud, const char *metric, long limit, long limit_per_metric,
                       struct bs_buf *out)
{
    (void)ud;
    return bs_buf_printf(out, "{\"m\":[{\"metric\":\"%s\",\"limit\":%ld,\"per\":%ld}]}",
                         metric ? metric : "(null)", limit, limit_per_metric);
}

static void add(struct tsdb_appender *a, const char *name, const char *l1, const char *v1,
                const char *l2, const char *v2, int64_t t, double v)
{
    struct label arr[3] = {{LABELS_METRIC_NAME, name}, {l1, v1}, {l2, v2}};
    struct labels ls = {arr, 3};
    assert_int_equal(tsdb_appender_add(a, 0, &ls, t, v, NULL), 0);
}

static const char *const test_flags[] = {"web.listen-address", "127.0.0.1:0",
                                         "query.lookback-delta", "5m", NULL};

/* The server with the metadata and rules callbacks above, or without
 * them (callbacks false), which answers empty lists. */
static int start_server_cb(struct http_server **out, bool ready, bool callbacks,
                           struct bs_error *err)
{
    struct http_server_opts o;
    http_server_opts_default(&o);
    o.listen_address = "127.0.0.1:0";
    o.db = fx.db;
    o.engine = fx.engine;
    o.targets = targets_cb;
    o.targets_ud = &fx;
    if (callbacks) {
        o.rules = rules_cb;
        o.targets_metadata = targets_metadata_cb;
        o.metadata = metadata_cb;
    }
    o.config_yaml = "global:\n  scrape_interval: 15s\n";
    o.version = "1.2.3";
    o.revision = "abc";
    o.branch = "main";
    o.build_user = "tester";
    o.build_date = "20261126";
    o.storage_retention = "15d";
    o.flags = test_flags;
    o.max_body_bytes = 2048;
    o.threads = 2;
    int rc = http_server_start(out, &o, err);
    if (rc == 0)
        http_server_set_ready(*out, ready);
    return rc;
}

static int start_server(struct http_server **out, bool ready, struct bs_error *err)
{
    return start_server_cb(out, ready, false, err);
}

static int group_setup(void **state)
{
    (void)state;
    curl_global_init(CURL_GLOBAL_ALL);
    snprintf(fx.dir, sizeof(fx.dir), "/tmp/bongsu-test-http-XXXXXX");
    if (!mkdtemp(fx.dir))
        return -1;
    struct tsdb_options o;
    tsdb_options_default(&o);
    o.dir = fx.dir;
    struct bs_error err;
    bs_error_clear(&err);
    if (tsdb_open(&fx.db, &o, &err) != 0) {
        fprintf(stderr, "tsdb_open: %s\n", err.msg);
        return -1;
    }
    struct tsdb_appender *a = tsdb_appender_new(fx.db);
    for (int i = 0; i < 3; i++) {
        int64_t t = T0 + i * 15000;
        add(a, "up", "instance", "a:9100", "job", "node", t, 1);
        add(a, "up", "instance", "b:9100", "job", "node", t, 0);
        add(a, "http_requests_total", "code", "200", "job", "api", t, 10.0 * (i + 1));
    }
    if (tsdb_appender_commit(a, &err) != 0)
        return -1;
    fx.engine = promql_engine_new(NULL);
    if (!fx.engine)
        return -1;
    if (start_server(&fx.srv, true, &err) != 0) {
        fprintf(stderr, "http_server_start: %s\n", err.msg);
        return -1;
    }
    fx.port = http_server_port(fx.srv);
    return 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int group_teardown(void **state)
{
    (void)state;
    http_server_stop(fx.srv);
    promql_engine_free(fx.engine);
    tsdb_close(fx.db);
    nftw(fx.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    curl_global_cleanup();
    return 0;
}

/* ------------------------------------------------------------- client */

struct resp {
    long status;
    struct bs_buf body;
    struct bs_buf headers;
};

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    struct bs_buf *b = ud;
    return bs_buf_append(b, p, sz * n) == 0 ? sz * n : 0;
}

/* Make a request to port; body (may be NULL) is sent with content_type
 * (NULL: form). accept_encoding NULL: none (curl then does not decode).
 * Headers are collected lower-cased for simple matching. */
static void request_port(int port, const char *method, const char *path, const char *body,
                         const char *content_type, const char *accept_encoding, struct resp *r)
{
    char url[4096];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    bs_buf_init(&r->body, 0);
    bs_buf_init(&r->headers, 0);
    bs_buf_puts(&r->body, "");
    CURL *c = curl_easy_init();
    assert_non_null(c);
    struct curl_slist *hdrs = NULL;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r->headers);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    if (accept_encoding)
        curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, accept_encoding);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
        if (content_type) {
            char h[256];
            snprintf(h, sizeof(h), "Content-Type: %s", content_type);
            hdrs = curl_slist_append(hdrs, h);
            curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
        }
    }
    if (!body && strcmp(method, "POST") == 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    CURLcode cc = curl_easy_perform(c);
    if (cc != CURLE_OK)
        fail_msg("curl %s %s: %s", method, path, curl_easy_strerror(cc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    for (size_t i = 0; i < r->headers.len; i++)
        if (r->headers.data[i] >= 'A' && r->headers.data[i] <= 'Z')
            r->headers.data[i] = (char)(r->headers.data[i] - 'A' + 'a');
}

static void request(const char *method, const char *path, const char *body, struct resp *r)
{
    request_port(fx.port, method, path, body, "application/x-www-form-urlencoded", NULL, r);
}

static void resp_fini(struct resp *r)
{
    bs_buf_fini(&r->body);
    bs_buf_fini(&r->headers);
}

/* GET path and expect status, JSON content type and exactly body. */
static void expect_json(const char *method, const char *path, const char *form, long status,
                        const char *body)
{
    struct resp r;
    request(method, path, form, &r);
    bool ok = r.status == status && strcmp(r.body.data, body) == 0 &&
              strstr(r.headers.data, "content-type: application/json\r\n");
    if (!ok)
        print_error("%s %s\n  got  %ld %s\n  want %ld %s\n", method, path, r.status, r.body.data,
                    status, body);
    resp_fini(&r);
    if (!ok)
        fail();
}

static void expect_text(const char *method, const char *path, long status, const char *body)
{
    struct resp r;
    request(method, path, NULL, &r);
    bool ok = r.status == status && strcmp(r.body.data, body) == 0;
    if (!ok)
        print_error("%s %s\n  got  %ld %s\n  want %ld %s\n", method, path, r.status, r.body.data,
                    status, body);
    resp_fini(&r);
    if (!ok)
        fail();
}

/* ------------------------------------------------------------ pure parts */

static void test_form_decoding(void **state)
{
    (void)state;
    struct http_params p;
    http_params_init(&p);
    const char *q = "query=rate(x%5B5m%5D)+%2B+1&match[]=up&match%5B%5D=b&empty=&novalue&&"
                    "bad=%zz&ok=%41";
    assert_int_equal(http_params_parse(&p, q, strlen(q)), 0);
    assert_string_equal(http_params_get(&p, "query"), "rate(x[5m]) + 1");
    assert_int_equal(http_params_count(&p, "match[]"), 2);
    assert_string_equal(http_params_nth(&p, "match[]", 0), "up");
    assert_string_equal(http_params_nth(&p, "match[]", 1), "b");
    assert_null(http_params_nth(&p, "match[]", 2));
    assert_string_equal(http_params_get(&p, "empty"), "");
    assert_string_equal(http_params_get(&p, "novalue"), "");
    assert_null(http_params_get(&p, "bad")); /* malformed escape: pair dropped */
    assert_string_equal(http_params_get(&p, "ok"), "A");
    assert_null(http_params_get(&p, "missing"));
    http_params_fini(&p);

    char dst[16];
    assert_int_equal(http_url_decode("a%2", 3, true, dst), -1);
    assert_int_equal(http_url_decode("a%", 2, true, dst), -1);
    assert_int_equal(http_url_decode("a+b", 3, false, dst), 3);
    assert_string_equal(dst, "a+b");
}

static void test_form_param_cap(void **state)
{
    (void)state;
    struct bs_buf b;
    bs_buf_init(&b, 0);
    for (int i = 0; i <= HTTP_MAX_PARAMS; i++)
        assert_int_equal(bs_buf_puts(&b, "a=1&"), 0);
    struct http_params p;
    http_params_init(&p);
    assert_int_equal(http_params_parse(&p, b.data, b.len), BS_ELIMIT);
    http_params_fini(&p);
    bs_buf_fini(&b);
}

static void test_accepts_gzip(void **state)
{
    (void)state;
    assert_true(http_accepts_gzip("gzip"));
    assert_true(http_accepts_gzip("deflate, gzip;q=1.0, *;q=0.5"));
    assert_true(http_accepts_gzip("br, GZIP"));
    assert_false(http_accepts_gzip("gzip;q=0"));
    assert_false(http_accepts_gzip("gzip; q=0.000, deflate"));
    assert_false(http_accepts_gzip("deflate, br"));
    assert_false(http_accepts_gzip("x-gzip2"));
    assert_false(http_accepts_gzip(NULL));
}

static void test_gzip_roundtrip(void **state)
{
    (void)state;
    char src[5000];
    for (size_t i = 0; i < sizeof(src); i++)
        src[i] = (char)('a' + i % 7);
    char *gz;
    size_t gzlen;
    assert_int_equal(http_gzip(src, sizeof(src), &gz, &gzlen), 0);
    assert_true(gzlen < sizeof(src));
    assert_int_equal((unsigned char)gz[0], 0x1f); /* gzip magic */
    assert_int_equal((unsigned char)gz[1], 0x8b);
    char back[6000];
    z_stream z;
    memset(&z, 0, sizeof(z));
    assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
    z.next_in = (Bytef *)gz;
    z.avail_in = (uInt)gzlen;
    z.next_out = (Bytef *)back;
    z.avail_out = sizeof(back);
    assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
    assert_int_equal(z.total_out, sizeof(src));
    assert_memory_equal(back, src, sizeof(src));
    inflateEnd(&z);
    free(gz);
}

static void free_matchers(struct labels_matcher **ms, size_t n)
{
    for (size_t i = 0; i < n; i++)
        labels_matcher_free(ms[i]);
    free(ms);
}

static void test_selector_parse(void **state)
{
    (void)state;
    struct labels_matcher **ms;
    size_t n;
    struct bs_error err;
    bs_error_clear(&err);

    assert_int_equal(http_selector_parse(" up ", &ms, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(labels_matcher_name(ms[0]), "__name__");
    assert_string_equal(labels_matcher_value(ms[0]), "up");
    assert_int_equal(labels_matcher_type(ms[0]), LABELS_MATCH_EQ);
    free_matchers(ms, n);

    const char *sel = "node:cpu{job = \"a\\\"b\", i!='x\\n', r=~`a.*\\d`, n!~\"\\u00e9\",}";
    assert_int_equal(http_selector_parse(sel, &ms, &n, &err), 0);
    assert_int_equal(n, 5);
    assert_string_equal(labels_matcher_value(ms[0]), "node:cpu");
    assert_string_equal(labels_matcher_name(ms[1]), "job");
    assert_string_equal(labels_matcher_value(ms[1]), "a\"b");
    assert_int_equal(labels_matcher_type(ms[2]), LABELS_MATCH_NEQ);
    assert_string_equal(labels_matcher_value(ms[2]), "x\n");
    assert_int_equal(labels_matcher_type(ms[3]), LABELS_MATCH_RE);
    assert_string_equal(labels_matcher_value(ms[3]), "a.*\\d");
    assert_true(labels_matcher_matches(ms[3], "abc1"));
    assert_false(labels_matcher_matches(ms[3], "xabc1")); /* anchored */
    assert_int_equal(labels_matcher_type(ms[4]), LABELS_MATCH_NRE);
    assert_string_equal(labels_matcher_value(ms[4]), "\xc3\xa9");
    free_matchers(ms, n);

    assert_int_equal(http_selector_parse("{job=~\".*\"}", &ms, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_true(labels_matcher_matches_empty(ms[0]));
    free_matchers(ms, n);

    const char *bad[] = {"",
                         "up(",
                         "{job}",
                         "{job=\"x\"",
                         "up{job=x}",
                         "{1a=\"x\"}",
                         "up{job=\"x\"} + 1",
                         "{job=\"unterminated}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        bs_error_clear(&err);
        ms = NULL;
        if (http_selector_parse(bad[i], &ms, &n, &err) == 0)
            fail_msg("selector %s parsed", bad[i]);
        assert_null(ms);
        assert_non_null(strstr(err.msg, "parse error"));
    }
}

static void test_listen_errors(void **state)
{
    (void)state;
    struct http_server_opts o;
    http_server_opts_default(&o);
    o.db = fx.db;
    o.engine = fx.engine;
    struct http_server *s = NULL;
    struct bs_error err;

    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", fx.port);
    o.listen_address = addr;
    bs_error_clear(&err);
    assert_int_equal(http_server_start(&s, &o, &err), BS_EIO);
    assert_null(s);
    char want[128];
    snprintf(want, sizeof(want), "listen tcp %s: bind: address already in use", addr);
    assert_string_equal(err.msg, want);

    o.listen_address = "9090";
    assert_int_equal(http_server_start(&s, &o, &err), BS_EINVAL);
    assert_string_equal(err.msg, "listen tcp: address 9090: missing port in address");
    o.listen_address = "127.0.0.1:99999";
    assert_int_equal(http_server_start(&s, &o, &err), BS_EINVAL);
    o.listen_address = "[::1:80";
    assert_int_equal(http_server_start(&s, &o, &err), BS_EINVAL);

    /* IPv6 loopback, when the machine has it. */
    o.listen_address = "[::1]:0";
    if (http_server_start(&s, &o, &err) == 0) {
        assert_true(http_server_port(s) > 0);
        http_server_stop(s);
    }
}

/* ------------------------------------------------------------------- API */

#define UP_A "{\"__name__\":\"up\",\"instance\":\"a:9100\",\"job\":\"node\"}"
#define UP_B "{\"__name__\":\"up\",\"instance\":\"b:9100\",\"job\":\"node\"}"
#define HRT "{\"__name__\":\"http_requests_total\",\"code\":\"200\",\"job\":\"api\"}"
#define OK(data) "{\"status\":\"success\",\"data\":" data "}"
#define ERR(msg) "{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":\"" msg "\"}"

static void test_series(void **state)
{
    (void)state;
    expect_json("GET", "/api/v1/series?match[]=up", NULL, 200, OK("[" UP_A "," UP_B "]"));
    /* Overlapping sets are merged, the union sorted. */
    expect_json("GET",
                "/api/v1/series?match[]=up&match[]=%7Bjob%3D%22node%22%7D&match[]="
                "http_requests_total",
                NULL, 200, OK("[" HRT "," UP_A "," UP_B "]"));
    expect_json("GET", "/api/v1/series?match[]=up%7Binstance%3D~%22b.*%22%7D", NULL, 200,
                OK("[" UP_B "]"));
    expect_json("GET", "/api/v1/series?match[]=nothing", NULL, 200, OK("[]"));
    /* Time range without samples. */
    expect_json("GET", "/api/v1/series?match[]=up&start=0&end=100", NULL, 200, OK("[]"));
    expect_json("GET", "/api/v1/series?match[]=up&start=1700000000&end=2023-11-14T22:13:20Z", NULL,
                200, OK("[" UP_A "," UP_B "]"));
    expect_json("GET", "/api/v1/series", NULL, 400, ERR("no match[] parameter provided"));
    expect_json("GET", "/api/v1/series?match[]=up&start=x", NULL, 400,
                ERR("invalid parameter \\\"start\\\": Invalid time value for 'start': cannot "
                    "parse \\\"x\\\" to a valid timestamp"));
    expect_json("GET", "/api/v1/series?match[]=%7Bjob%3D~%22.*%22%7D", NULL, 400,
                ERR("invalid parameter \\\"match[]\\\": match[] must contain at least one "
                    "non-empty matcher"));
    /* Prometheus 2.42's texts for a selector followed by more. */
    expect_json("GET", "/api/v1/series?match[]=up(", NULL, 400,
                ERR("invalid parameter \\\"match[]\\\": 1:3: parse error: unexpected \\\"(\\\""));
    expect_json(
        "GET", "/api/v1/series?match[]=up%7Bjob%3D%22x%22%7D%2B1", NULL, 400,
        ERR("invalid parameter \\\"match[]\\\": 1:12: parse error: unexpected \\u003cop:+\\u003e"));
    /* Other syntax errors carry the PromQL parser's position and text. */
    struct resp r;
    request("GET", "/api/v1/series?match[]=up%7Bjob%3Dx%7D", NULL, &r);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body.data, "\"error\":\"invalid parameter \\\"match[]\\\": 1:"));
    assert_non_null(strstr(r.body.data, "parse error"));
    resp_fini(&r);
}

static void test_labels(void **state)
{
    (void)state;
    expect_json("GET", "/api/v1/labels", NULL, 200,
                OK("[\"__name__\",\"code\",\"instance\",\"job\"]"));
    expect_json("GET", "/api/v1/labels?match[]=up", NULL, 200,
                OK("[\"__name__\",\"instance\",\"job\"]"));
    expect_json("GET", "/api/v1/labels?match[]=up&match[]=http_requests_total", NULL, 200,
                OK("[\"__name__\",\"code\",\"instance\",\"job\"]"));
    expect_json("GET", "/api/v1/labels?start=0&end=1", NULL, 200, OK("[]"));
    expect_json("GET", "/api/v1/labels?end=bad", NULL, 400,
                ERR("invalid parameter \\\"end\\\": Invalid time value for 'end': cannot "
                    "parse \\\"bad\\\" to a valid timestamp"));
    expect_json("GET", "/api/v1/labels?match[]=%7Bjob%3D~%22.*%22%7D", NULL, 400,
                ERR("match[] must contain at least one non-empty matcher"));
}

static void test_label_values(void **state)
{
    (void)state;
    expect_json("GET", "/api/v1/label/job/values", NULL, 200, OK("[\"api\",\"node\"]"));
    expect_json("GET", "/api/v1/label/__name__/values", NULL, 200,
                OK("[\"http_requests_total\",\"up\"]"));
    expect_json("GET", "/api/v1/label/instance/values?match[]=up%7Binstance!%3D%22a%3A9100%22%7D",
                NULL, 200, OK("[\"b:9100\"]"));
    expect_json("GET", "/api/v1/label/job/values?match[]=up&match[]=http_requests_total", NULL, 200,
                OK("[\"api\",\"node\"]"));
    expect_json("GET", "/api/v1/label/nosuch/values", NULL, 200, OK("[]"));
    expect_json("GET", "/api/v1/label/1a/values", NULL, 400, ERR("invalid label name: \\\"1a\\\""));
    expect_json("GET", "/api/v1/label/a%20b/values", NULL, 400,
                ERR("invalid label name: \\\"a b\\\""));
}

static void test_post_form(void **state)
{
    (void)state;
    expect_json("POST", "/api/v1/series", "match[]=up", 200, OK("[" UP_A "," UP_B "]"));
    /* Body and query string both count; a body value wins over the query. */
    expect_json("POST", "/api/v1/series?match[]=http_requests_total&start=x",
                "match[]=up&start=1700000000", 200, OK("[" HRT "," UP_A "," UP_B "]"));
    /* A body that is not a form is ignored, as Go does. */
    struct resp r;
    request_port(fx.port, "POST", "/api/v1/series", "match[]=up", "text/plain", NULL, &r);
    assert_int_equal(r.status, 400);
    assert_string_equal(r.body.data, ERR("no match[] parameter provided"));
    resp_fini(&r);
    /* Over the body limit (2048 in this fixture). */
    char big[4096];
    memset(big, 'a', sizeof(big) - 1);
    memcpy(big, "match[]=", 8);
    big[sizeof(big) - 1] = '\0';
    expect_json("POST", "/api/v1/series", big, 413,
                "{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":\"request body "
                "exceeds the limit of 2048 bytes\"}");
}

static void test_query_range_params(void **state)
{
    (void)state;
    expect_json("GET", "/api/v1/query_range?query=up&start=10&end=5&step=1", NULL, 400,
                ERR("invalid parameter \\\"end\\\": end timestamp must not be before start time"));
    expect_json("GET", "/api/v1/query_range?query=up&start=1&end=5&step=0", NULL, 400,
                ERR("invalid parameter \\\"step\\\": zero or negative query resolution step "
                    "widths are not accepted. Try a positive integer"));
    expect_json("GET", "/api/v1/query_range?query=up&start=1&end=5&step=-1m", NULL, 400,
                ERR("invalid parameter \\\"step\\\": cannot parse \\\"-1m\\\" to a valid "
                    "duration"));
    expect_json("GET", "/api/v1/query_range?query=up&start=1&end=50000&step=1", NULL, 400,
                ERR("exceeded maximum resolution of 11,000 points per timeseries. Try "
                    "decreasing the query resolution (?step=XX)"));
    expect_json("GET", "/api/v1/query_range?query=up&start=1&end=11001&step=1", NULL, 200,
                OK("{\"resultType\":\"matrix\",\"result\":[]}"));
    expect_json("GET", "/api/v1/query_range?query=up&start=1&end=5&step=x", NULL, 400,
                ERR("invalid parameter \\\"step\\\": cannot parse \\\"x\\\" to a valid duration"));
    expect_json("GET", "/api/v1/query_range?query=up&start=1&end=5", NULL, 400,
                ERR("invalid parameter \\\"step\\\": cannot parse \\\"\\\" to a valid duration"));
    expect_json("GET", "/api/v1/query_range?query=up&end=5&step=1", NULL, 400,
                ERR("invalid parameter \\\"start\\\": cannot parse \\\"\\\" to a valid "
                    "timestamp"));
    expect_json("GET", "/api/v1/query_range?query=up&start=x&end=5&step=1", NULL, 400,
                ERR("invalid parameter \\\"start\\\": cannot parse \\\"x\\\" to a valid "
                    "timestamp"));
    expect_json("GET", "/api/v1/query_range?query=up&start=1&end=5&step=1&timeout=zz", NULL, 400,
                ERR("invalid parameter \\\"timeout\\\": cannot parse \\\"zz\\\" to a valid "
                    "duration"));
    expect_json("GET", "/api/v1/query?query=up&time=abc", NULL, 400,
                ERR("invalid parameter \\\"time\\\": Invalid time value for 'time': cannot "
                    "parse \\\"abc\\\" to a valid timestamp"));
}

static void test_query(void **state)
{
    (void)state;
    expect_json("GET", "/api/v1/query?query=up&time=1700000030", NULL, 200,
                OK("{\"resultType\":\"vector\",\"result\":["
                   "{\"metric\":" UP_A ",\"value\":[1700000030,\"1\"]},"
                   "{\"metric\":" UP_B ",\"value\":[1700000030,\"0\"]}]}"));
    expect_json("POST", "/api/v1/query", "query=1+%2B+1&time=100.5", 200,
                OK("{\"resultType\":\"scalar\",\"result\":[100.5,\"2\"]}"));
    /* The body's query wins over the URL's. */
    expect_json("POST", "/api/v1/query?query=2&time=1", "query=3", 200,
                OK("{\"resultType\":\"scalar\",\"result\":[1,\"3\"]}"));
    expect_json("GET",
                "/api/v1/query_range?query=http_requests_total&start=1700000000&end="
                "1700000030&step=15s",
                NULL, 200,
                OK("{\"resultType\":\"matrix\",\"result\":[{\"metric\":" HRT ",\"values\":"
                   "[[1700000000,\"10\"],[1700000015,\"20\"],[1700000030,\"30\"]]}]}"));
    expect_json("GET", "/api/v1/query?query=1%2B&time=1", NULL, 400,
                ERR("invalid parameter \\\"query\\\": 1:3: parse error: unexpected end of "
                    "input"));
    expect_json("GET", "/api/v1/query?time=1", NULL, 400,
                ERR("invalid parameter \\\"query\\\": 1:1: parse error: no expression found in "
                    "input"));
    expect_json("GET", "/api/v1/query_range?start=1&end=5&step=1", NULL, 400,
                ERR("1:1: parse error: no expression found in input"));
    /* An evaluation error (many-to-many matching) is 422 "execution". */
    struct resp r;
    request("GET", "/api/v1/query?query=up+%2B+on()+up&time=1700000030", NULL, &r);
    assert_int_equal(r.status, 422);
    assert_non_null(strstr(r.body.data, "{\"status\":\"error\",\"errorType\":\"execution\","));
    resp_fini(&r);
}

static void test_status(void **state)
{
    (void)state;
    char want[512];
#if defined(__clang__)
    const char *cc = "clang " __clang_version__;
#else
    const char *cc = "gcc " __VERSION__;
#endif
    snprintf(want, sizeof(want),
             OK("{\"version\":\"1.2.3\",\"revision\":\"abc\",\"branch\":\"main\",\"buildUser\":"
                "\"tester\",\"buildDate\":\"20261126\",\"goVersion\":\"%s\"}"),
             cc);
    expect_json("GET", "/api/v1/status/buildinfo", NULL, 200, want);
    expect_json("GET", "/api/v1/status/config", NULL, 200,
                OK("{\"yaml\":\"global:\\n  scrape_interval: 15s\\n\"}"));
    http_server_set_config(fx.srv, "global: {}\n", true);
    expect_json("GET", "/api/v1/status/config", NULL, 200, OK("{\"yaml\":\"global: {}\\n\"}"));
    expect_json("GET", "/api/v1/status/flags", NULL, 200,
                OK("{\"query.lookback-delta\":\"5m\",\"web.listen-address\":\"127.0.0.1:0\"}"));
    expect_json("GET", "/api/v1/metadata", NULL, 200, OK("{}"));
    expect_json("GET", "/api/v1/rules", NULL, 200, OK("{\"groups\":[]}"));
    expect_json("GET", "/api/v1/alerts", NULL, 200, OK("{\"alerts\":[]}"));

    struct resp r;
    request("GET", "/api/v1/status/runtimeinfo", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body.data, "{\"status\":\"success\",\"data\":{\"startTime\":\""));
    assert_non_null(strstr(r.body.data, "\"reloadConfigSuccess\":true"));
    assert_non_null(strstr(r.body.data, "\"storageRetention\":\"15d\"}}"));
    resp_fini(&r);

    request("GET", "/api/v1/status/tsdb", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body.data, "{\"headStats\":{\"numSeries\":3,\"numLabelPairs\":7,"));
    assert_non_null(strstr(r.body.data,
                           "\"seriesCountByMetricName\":[{\"name\":\"up\",\"value\":2},"
                           "{\"name\":\"http_requests_total\",\"value\":1}]"));
    assert_non_null(strstr(r.body.data, "\"labelValueCountByLabelName\":[{\"name\":\"__name__\","
                                        "\"value\":2},{\"name\":\"instance\",\"value\":2},"));
    resp_fini(&r);
}

static void test_targets(void **state)
{
    (void)state;
    expect_json("GET", "/api/v1/targets", NULL, 200,
                OK("{\"activeTargets\":[{\"health\":\"up\"}],\"droppedTargets\":[]}"));
    assert_string_equal(fx.last_state, "any");
    expect_json("GET", "/api/v1/targets?state=dropped", NULL, 200,
                OK("{\"activeTargets\":[{\"health\":\"up\"}],\"droppedTargets\":[]}"));
    assert_string_equal(fx.last_state, "dropped");
}

/* GET path on a server at port; expect status and exactly body. */
static void expect_port(int port, const char *path, long status, const char *body)
{
    struct resp r;
    request_port(port, "GET", path, NULL, "application/x-www-form-urlencoded", NULL, &r);
    bool ok = r.status == status && strcmp(r.body.data, body) == 0;
    if (!ok)
        print_error("GET %s\n  got  %ld %s\n  want %ld %s\n", path, r.status, r.body.data, status,
                    body);
    resp_fini(&r);
    if (!ok)
        fail();
}

static void test_rules_and_metadata_params(void **state)
{
    (void)state;
    struct http_server *s = NULL;
    struct bs_error err = {0};
    assert_int_equal(start_server_cb(&s, true, true, &err), 0);
    int port = http_server_port(s);
    expect_port(port, "/api/v1/rules", 200,
                OK("{\"type\":\"\",\"exclude\":false,\"names\":\"\",\"groups\":\"\","
                   "\"files\":\"\"}"));
    expect_port(port,
                "/api/v1/rules?type=ALERT&exclude_alerts=1&rule_name[]=a&rule_name[]=b"
                "&rule_group[]=g&group_name[]=h&file[]=%2Fx.yml",
                200,
                OK("{\"type\":\"alert\",\"exclude\":true,\"names\":\"a;b;\",\"groups\":"
                   "\"g;h;\",\"files\":\"/x.yml;\"}"));
    expect_port(port, "/api/v1/rules?type=x", 400,
                "{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":\"invalid "
                "parameter \\\"type\\\": not supported value \\\"x\\\"\"}");
    expect_port(port, "/api/v1/rules?exclude_alerts=yes", 400,
                "{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":\"invalid "
                "parameter \\\"exclude_alerts\\\": strconv.ParseBool: parsing \\\"yes\\\": "
                "invalid syntax\"}");
    expect_port(port, "/api/v1/metadata", 200,
                OK("{\"m\":[{\"metric\":\"(null)\",\"limit\":-1,\"per\":-1}]}"));
    expect_port(port, "/api/v1/metadata?metric=up&limit=3&limit_per_metric=1", 200,
                OK("{\"m\":[{\"metric\":\"up\",\"limit\":3,\"per\":1}]}"));
    expect_port(port, "/api/v1/metadata?limit=3x", 400,
                "{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":\"limit must "
                "be a number\"}");
    expect_port(port, "/api/v1/metadata?limit_per_metric=z", 400,
                "{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":"
                "\"limit_per_metric must be a number\"}");
    expect_port(port, "/api/v1/targets/metadata", 200,
                OK("[{\"matchers\":0,\"metric\":\"(null)\",\"limit\":-1}]"));
    expect_port(port,
                "/api/v1/targets/metadata?match_target=%7Bjob%3D%22a%22%2Cinstance%3D~%22b.*%22%7D"
                "&metric=up&limit=0",
                200, OK("[{\"matchers\":2,\"metric\":\"up\",\"limit\":0}]"));
    expect_port(port, "/api/v1/targets/metadata?limit=-", 400,
                "{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":\"limit must "
                "be a number\"}");
    expect_port(port, "/api/v1/targets/metadata?match_target=%7Bjob%3D", 400,
                "{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":\"invalid "
                "parameter \\\"match_target\\\": 1:6: parse error: unexpected end of input "
                "inside braces\"}");
    http_server_stop(s);
    /* Without callbacks: empty answers. */
    expect_json("GET", "/api/v1/targets/metadata", NULL, 200, OK("[]"));
}

static void test_routing(void **state)
{
    (void)state;
    expect_text("GET", "/api/v1/foo", 404, "404 page not found\n");
    expect_text("GET", "/nope", 404, "404 page not found\n");
    expect_text("GET", "/api/v1/label/a/b/values", 404, "404 page not found\n");
    expect_text("GET", "/-/healthy", 200, "bongsu is Healthy.\n");
    expect_text("GET", "/-/ready", 200, "bongsu is Ready.\n");
    expect_text("POST", "/-/reload", 403, "Lifecycle API is not enabled.");

    struct resp r;
    request("PUT", "/api/v1/query?query=1", NULL, &r);
    assert_int_equal(r.status, 405);
    assert_non_null(strstr(r.headers.data, "allow: get, options, post\r\n"));
    resp_fini(&r);

    request("OPTIONS", "/api/v1/labels", NULL, &r);
    assert_int_equal(r.status, 204);
    resp_fini(&r);

    request("GET", "/", NULL, &r);
    assert_int_equal(r.status, 302);
    assert_non_null(strstr(r.headers.data, "location: /graph\r\n"));
    resp_fini(&r);

    request("GET", "/graph", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.headers.data, "content-type: text/html; charset=utf-8\r\n"));
    assert_non_null(strstr(r.body.data, "api/v1/query"));
    assert_non_null(strstr(r.body.data, "Version 1.2.3 (revision abc)"));
    resp_fini(&r);

    request("HEAD", "/-/healthy", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, "");
    resp_fini(&r);
}

static void test_metrics_and_gzip(void **state)
{
    (void)state;
    struct resp r;
    request("GET", "/metrics", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(
        strstr(r.headers.data, "content-type: text/plain; version=0.0.4; charset=utf-8\r\n"));
    assert_non_null(
        strstr(r.body.data, "bongsu_http_requests_total{code=\"200\",handler=\"/api/v1/series\"}"));
    assert_non_null(
        strstr(r.body.data, "bongsu_http_requests_total{code=\"404\",handler=\"other\"}"));
    assert_null(strstr(r.headers.data, "content-encoding"));
    resp_fini(&r);

    /* Same page gzipped: curl decodes it; the bytes must agree. */
    struct resp plain, gz;
    request_port(fx.port, "GET", "/graph", NULL, NULL, NULL, &plain);
    request_port(fx.port, "GET", "/graph", NULL, NULL, "gzip", &gz);
    assert_int_equal(gz.status, 200);
    assert_non_null(strstr(gz.headers.data, "content-encoding: gzip\r\n"));
    assert_true(plain.body.len > HTTP_GZIP_MIN_BYTES);
    assert_int_equal(plain.body.len, gz.body.len);
    assert_memory_equal(plain.body.data, gz.body.data, plain.body.len);
    resp_fini(&plain);
    resp_fini(&gz);

    /* Small bodies are not compressed. */
    request_port(fx.port, "GET", "/-/healthy", NULL, NULL, "gzip", &gz);
    assert_null(strstr(gz.headers.data, "content-encoding"));
    resp_fini(&gz);
}

static void test_ready_gate(void **state)
{
    (void)state;
    struct http_server *s;
    struct bs_error err;
    bs_error_clear(&err);
    assert_int_equal(start_server(&s, false, &err), 0);
    int port = http_server_port(s);
    assert_true(port > 0 && port != fx.port);

    struct resp r;
    request_port(port, "GET", "/-/ready", NULL, NULL, NULL, &r);
    assert_int_equal(r.status, 503);
    assert_string_equal(r.body.data, "Service Unavailable");
    resp_fini(&r);
    request_port(port, "GET", "/api/v1/labels", NULL, NULL, NULL, &r);
    assert_int_equal(r.status, 503);
    resp_fini(&r);
    request_port(port, "GET", "/-/healthy", NULL, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    resp_fini(&r);

    http_server_set_ready(s, true);
    request_port(port, "GET", "/-/ready", NULL, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, "bongsu is Ready.\n");
    resp_fini(&r);
    request_port(port, "GET", "/api/v1/label/job/values", NULL, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, OK("[\"api\",\"node\"]"));
    resp_fini(&r);
    http_server_stop(s);
}

/* The admin API: disabled on the fixture server, then enabled on a second
 * server over the same store (runs last: it deletes fixture data). */
static void test_admin(void **state)
{
    (void)state;
    static const char disabled[] =
        "{\"status\":\"error\",\"errorType\":\"unavailable\",\"error\":\"admin APIs disabled\"}";
    const char *paths[] = {"/api/v1/admin/tsdb/delete_series?match[]=up",
                           "/api/v1/admin/tsdb/clean_tombstones", "/api/v1/admin/tsdb/snapshot"};
    struct resp r;
    for (size_t i = 0; i < 3; i++) {
        expect_json("POST", paths[i], NULL, 500, disabled);
        expect_json("PUT", paths[i], NULL, 500, disabled);
        request("GET", paths[i], NULL, &r);
        assert_int_equal(r.status, 405);
        assert_non_null(strstr(r.headers.data, "allow: options, post, put\r\n"));
        resp_fini(&r);
    }

    struct http_server_opts o;
    http_server_opts_default(&o);
    o.listen_address = "127.0.0.1:0";
    o.db = fx.db;
    o.engine = fx.engine;
    o.threads = 2;
    o.enable_admin_api = true;
    struct http_server *s;
    struct bs_error err;
    bs_error_clear(&err);
    assert_int_equal(http_server_start(&s, &o, &err), 0);
    http_server_set_ready(s, true);
    int port = http_server_port(s);
    const char *form = "application/x-www-form-urlencoded";
    request_port(port, "POST", "/api/v1/admin/tsdb/delete_series", "", form, NULL, &r);
    assert_int_equal(r.status, 400);
    assert_string_equal(r.body.data, ERR("no match[] parameter provided"));
    resp_fini(&r);
    request_port(port, "POST", "/api/v1/admin/tsdb/delete_series",
                 "match[]=up%7Binstance%3D%22b%3A9100%22%7D", form, NULL, &r);
    assert_int_equal(r.status, 204);
    assert_string_equal(r.body.data, "");
    resp_fini(&r);
    request_port(port, "GET", "/api/v1/series?match[]=up", NULL, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data,
                        OK("[{\"__name__\":\"up\",\"instance\":\"a:9100\",\"job\":\"node\"}]"));
    resp_fini(&r);
    request_port(port, "PUT", "/api/v1/admin/tsdb/clean_tombstones", NULL, NULL, NULL, &r);
    assert_int_equal(r.status, 204);
    resp_fini(&r);
    request_port(port, "POST", "/api/v1/admin/tsdb/snapshot?skip_head=0", NULL, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    const char *name = strstr(r.body.data, "{\"name\":\"");
    assert_non_null(name);
    name += 9;
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/snapshots/%.33s", fx.dir, name);
    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(strlen(name), 33 + 3); /* name, closing quote, }} */
    resp_fini(&r);
    http_server_stop(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_form_decoding),
        cmocka_unit_test(test_form_param_cap),
        cmocka_unit_test(test_accepts_gzip),
        cmocka_unit_test(test_gzip_roundtrip),
        cmocka_unit_test(test_selector_parse),
        cmocka_unit_test(test_rules_and_metadata_params),
        cmocka_unit_test(test_listen_errors),
        cmocka_unit_test(test_series),
        cmocka_unit_test(test_labels),
        cmocka_unit_test(test_label_values),
        cmocka_unit_test(test_post_form),
        cmocka_unit_test(test_query_range_params),
        cmocka_unit_test(test_query),
        cmocka_unit_test(test_status),
        cmocka_unit_test(test_targets),
        cmocka_unit_test(test_routing),
        cmocka_unit_test(test_metrics_and_gzip),
        cmocka_unit_test(test_ready_gate),
        cmocka_unit_test(test_admin),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
