/* SPDX-License-Identifier: Apache-2.0
 *
 * Raw routes and the lifecycle endpoints of the http module, black-box: a
 * real server on 127.0.0.1:0 with a few raw routes, requests made with
 * libcurl. Covers binary-safe bodies both ways, query and header access,
 * extra response headers, the body cap (413 without calling the route, also
 * with "Expect: 100-continue"), prefix matching, 405 with Allow, OPTIONS,
 * precedence of built-in routes, the readiness gate, callback errors,
 * concurrent calls, and /-/quit calling its callback after the answer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the four headers above first. */
#include <cmocka.h>

#include <curl/curl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http/http.h"
#include "promql/promql.h"
#include "tsdb/tsdb.h"

#define CAP 1000

/* ------------------------------------------------------------- fixture */

static struct {
    char dir[64];
    struct tsdb *db;
    struct promql_engine *engine;
    struct http_server *srv;
    int port;
    atomic_int echo_calls;
    atomic_int quit_calls;
    size_t last_discard_len;
} fx;

/* Echo: status from ?status=, the body back as is, the Content-Type and
 * X-Test request headers back as X-Got-Type and X-Got-Test. */
static int echo_route(void *ud, const struct http_raw_request *req, struct http_raw_response *resp)
{
    (void)ud;
    atomic_fetch_add(&fx.echo_calls, 1);
    const char *st = http_raw_request_param(req, "status");
    int rc = http_raw_response_set_body(resp, st ? atoi(st) : 200, "application/octet-stream",
                                        req->body, req->body_len);
    const char *ct = http_raw_request_header(req, "content-type");
    const char *xt = http_raw_request_header(req, "X-TEST");
    if (rc == 0 && ct)
        rc = http_raw_response_add_header(resp, "X-Got-Type", ct);
    if (rc == 0 && xt)
        rc = http_raw_response_add_header(resp, "X-Got-Test", xt);
    if (rc == 0 && req->query[0])
        rc = http_raw_response_add_header(resp, "X-Query", req->query);
    if (rc == 0)
        rc = http_raw_response_add_header(resp, "X-Path", req->path);
    return rc;
}

static int fail_route(void *ud, const struct http_raw_request *req, struct http_raw_response *resp)
{
    (void)ud;
    (void)req;
    resp->body = strdup("partial"); /* must be freed by the server */
    resp->body_len = 7;
    return BS_EIO;
}

static int discard_route(void *ud, const struct http_raw_request *req,
                         struct http_raw_response *resp)
{
    (void)ud;
    fx.last_discard_len = req->body_len;
    resp->status = 204;
    return 0;
}

static int never_route(void *ud, const struct http_raw_request *req, struct http_raw_response *resp)
{
    (void)ud;
    (void)req;
    (void)resp;
    fail_msg("a raw route must not replace a built-in one");
    return 0;
}

static void quit_cb(void *ud)
{
    (void)ud;
    atomic_fetch_add(&fx.quit_calls, 1);
}

static const struct http_raw_route raw_routes[] = {
    {"POST", "/api/v1/echo", 0, CAP, echo_route, NULL},
    {"PUT", "/api/v1/echo", 0, CAP, echo_route, NULL},
    {"DELETE", "/push/", HTTP_RAW_PREFIX, 0, echo_route, NULL},
    {"POST", "/push/", HTTP_RAW_PREFIX, 0, echo_route, NULL},
    {"POST", "/fail", 0, 0, fail_route, NULL},
    {"POST", "/discard", HTTP_RAW_DISCARD_BODY, 10, discard_route, NULL},
    {"POST", "/gated", HTTP_RAW_GATED, 0, echo_route, NULL},
    {"GET", "/metrics", 0, 0, never_route, NULL},
};

static int group_setup(void **state)
{
    (void)state;
    curl_global_init(CURL_GLOBAL_ALL);
    snprintf(fx.dir, sizeof(fx.dir), "/tmp/bongsu-test-http-raw-XXXXXX");
    if (!mkdtemp(fx.dir))
        return -1;
    struct tsdb_options to;
    tsdb_options_default(&to);
    to.dir = fx.dir;
    struct bs_error err;
    bs_error_clear(&err);
    if (tsdb_open(&fx.db, &to, &err) != 0)
        return -1;
    fx.engine = promql_engine_new(NULL);
    if (!fx.engine)
        return -1;
    struct http_server_opts o;
    http_server_opts_default(&o);
    o.listen_address = "127.0.0.1:0";
    o.db = fx.db;
    o.engine = fx.engine;
    o.raw_routes = raw_routes;
    o.nraw_routes = sizeof(raw_routes) / sizeof(raw_routes[0]);
    o.quit = quit_cb;
    o.max_body_bytes = 2048;
    o.threads = 3;
    if (http_server_start(&fx.srv, &o, &err) != 0) {
        fprintf(stderr, "http_server_start: %s\n", err.msg);
        return -1;
    }
    http_server_set_ready(fx.srv, true);
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
    struct bs_buf headers; /* lower-cased */
};

static size_t on_data(char *p, size_t sz, size_t n, void *ud)
{
    return bs_buf_append(ud, p, sz * n) == 0 ? sz * n : 0;
}

/* method path with body[0..len) (NULL: none); extra is one more request
 * header line or NULL. Returns the curl code. */
static CURLcode request(const char *method, const char *path, const void *body, size_t len,
                        const char *extra, struct resp *r)
{
    char url[1024];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", fx.port, path);
    bs_buf_init(&r->body, 0);
    bs_buf_init(&r->headers, 0);
    bs_buf_puts(&r->body, "");
    bs_buf_puts(&r->headers, "");
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    h = curl_slist_append(h, "Content-Type: application/x-protobuf");
    h = curl_slist_append(h, "X-Test: hello");
    if (extra)
        h = curl_slist_append(h, extra);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r->headers);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    CURLcode cc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    for (size_t i = 0; i < r->headers.len; i++)
        if (r->headers.data[i] >= 'A' && r->headers.data[i] <= 'Z')
            r->headers.data[i] = (char)(r->headers.data[i] - 'A' + 'a');
    return cc;
}

static void resp_fini(struct resp *r)
{
    bs_buf_fini(&r->body);
    bs_buf_fini(&r->headers);
}

static bool has_header(const struct resp *r, const char *line)
{
    return strstr(r->headers.data, line) != NULL;
}

/* ---------------------------------------------------------------- tests */

static void test_binary_echo(void **state)
{
    (void)state;
    static const char body[] = "\x00\x01\xff snappy\r\n\x00tail";
    struct resp r;
    assert_int_equal(request("POST", "/api/v1/echo?a=1&status=202&x=%41+b", body,
                             sizeof(body) - 1, NULL, &r),
                     CURLE_OK);
    assert_int_equal(r.status, 202);
    assert_int_equal(r.body.len, sizeof(body) - 1);
    assert_memory_equal(r.body.data, body, sizeof(body) - 1);
    assert_true(has_header(&r, "content-type: application/octet-stream\r\n"));
    assert_true(has_header(&r, "x-got-type: application/x-protobuf\r\n"));
    assert_true(has_header(&r, "x-got-test: hello\r\n"));
    assert_true(has_header(&r, "x-query: a=1&status=202&x=%41+b\r\n"));
    assert_true(has_header(&r, "x-path: /api/v1/echo\r\n"));
    resp_fini(&r);

    /* Empty body, other method of the same path. */
    assert_int_equal(request("PUT", "/api/v1/echo", "", 0, NULL, &r), CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body.len, 0);
    assert_false(has_header(&r, "x-query:")); /* query is "" */
    resp_fini(&r);
}

static void test_body_cap(void **state)
{
    (void)state;
    char *big = malloc(CAP + 1);
    memset(big, 'x', CAP + 1);
    struct resp r;
    int before = atomic_load(&fx.echo_calls);

    /* Exactly the cap is fine. */
    assert_int_equal(request("POST", "/api/v1/echo", big, CAP, NULL, &r), CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body.len, CAP);
    resp_fini(&r);

    /* One byte more: 413, route not called. */
    assert_int_equal(request("POST", "/api/v1/echo", big, CAP + 1, NULL, &r), CURLE_OK);
    assert_int_equal(r.status, 413);
    assert_string_equal(r.body.data, "request body exceeds the limit of 1000 bytes\n");
    resp_fini(&r);

    /* With Expect: 100-continue the 413 comes before the body. */
    assert_int_equal(
        request("POST", "/api/v1/echo", big, CAP + 1, "Expect: 100-continue", &r), CURLE_OK);
    assert_int_equal(r.status, 413);
    resp_fini(&r);

    /* Chunked (no Content-Length): cut while streaming. */
    assert_int_equal(
        request("POST", "/api/v1/echo", big, CAP + 1, "Transfer-Encoding: chunked", &r),
        CURLE_OK);
    assert_int_equal(r.status, 413);
    resp_fini(&r);
    assert_int_equal(atomic_load(&fx.echo_calls), before + 1);
    free(big);

    /* A route with cap 0 uses the server's max_body_bytes (2048). */
    char *mid = calloc(1, 3000);
    assert_int_equal(request("POST", "/push/job/x", mid, 2048, NULL, &r), CURLE_OK);
    assert_int_equal(r.status, 200);
    resp_fini(&r);
    assert_int_equal(request("POST", "/push/job/x", mid, 2049, NULL, &r), CURLE_OK);
    assert_int_equal(r.status, 413);
    resp_fini(&r);

    /* Discarded bodies are never refused and never handed over. */
    assert_int_equal(request("POST", "/discard", mid, 3000, NULL, &r), CURLE_OK);
    assert_int_equal(r.status, 204);
    assert_int_equal(fx.last_discard_len, 0);
    resp_fini(&r);
    free(mid);
}

static void test_matching(void **state)
{
    (void)state;
    struct resp r;
    /* Prefix route. */
    assert_int_equal(request("DELETE", "/push/job/a/instance/b", NULL, 0, NULL, &r), CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_true(has_header(&r, "x-path: /push/job/a/instance/b\r\n"));
    resp_fini(&r);

    /* Known path, other method: 405 with the methods, OPTIONS under /api/v1/. */
    assert_int_equal(request("GET", "/api/v1/echo", NULL, 0, NULL, &r), CURLE_OK);
    assert_int_equal(r.status, 405);
    assert_true(has_header(&r, "allow: options, post, put\r\n"));
    resp_fini(&r);
    assert_int_equal(request("GET", "/push/job/a", NULL, 0, NULL, &r), CURLE_OK);
    assert_int_equal(r.status, 405);
    assert_true(has_header(&r, "allow: delete, post\r\n"));
    resp_fini(&r);
    assert_int_equal(request("OPTIONS", "/api/v1/echo", NULL, 0, NULL, &r), CURLE_OK);
    assert_int_equal(r.status, 204);
    resp_fini(&r);

    /* Unknown paths stay 404; built-in routes win. */
    assert_int_equal(request("POST", "/pus", "x", 1, NULL, &r), CURLE_OK);
    assert_int_equal(r.status, 404);
    resp_fini(&r);
    assert_int_equal(request("GET", "/metrics", NULL, 0, NULL, &r), CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body.data, "bongsu_http_requests_total{code=\"405\",handler=\"/api/v1/echo\"}"));
    resp_fini(&r);
}

static void test_errors_and_gate(void **state)
{
    (void)state;
    struct resp r;
    assert_int_equal(request("POST", "/fail", "x", 1, NULL, &r), CURLE_OK);
    assert_int_equal(r.status, 500);
    assert_string_equal(r.body.data, "internal error: input/output error\n");
    resp_fini(&r);

    http_server_set_ready(fx.srv, false);
    assert_int_equal(request("POST", "/gated", "x", 1, NULL, &r), CURLE_OK);
    assert_int_equal(r.status, 503);
    resp_fini(&r);
    assert_int_equal(request("POST", "/push/x", "x", 1, NULL, &r), CURLE_OK);
    assert_int_equal(r.status, 200); /* not gated */
    resp_fini(&r);
    http_server_set_ready(fx.srv, true);
    assert_int_equal(request("POST", "/gated", "x", 1, NULL, &r), CURLE_OK);
    assert_int_equal(r.status, 200);
    resp_fini(&r);
}

static void *client_thread(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int i = 0; i < 25; i++) {
        char body[64];
        int n = snprintf(body, sizeof(body), "thread %d request %d \x01\x02", id, i);
        struct resp r;
        if (request("POST", "/api/v1/echo", body, (size_t)n, NULL, &r) != CURLE_OK ||
            r.status != 200 || r.body.len != (size_t)n || memcmp(r.body.data, body, (size_t)n)) {
            resp_fini(&r);
            return (void *)1;
        }
        resp_fini(&r);
    }
    return NULL;
}

static void test_concurrent(void **state)
{
    (void)state;
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, client_thread, (void *)(intptr_t)i), 0);
    for (int i = 0; i < 4; i++) {
        void *ret;
        pthread_join(t[i], &ret);
        assert_null(ret);
    }
}

static void test_lifecycle(void **state)
{
    (void)state;
    struct resp r;
    assert_int_equal(request("GET", "/-/quit", NULL, 0, NULL, &r), CURLE_OK);
    assert_int_equal(r.status, 405);
    assert_string_equal(r.body.data, "Only POST or PUT requests allowed");
    resp_fini(&r);
    assert_int_equal(request("GET", "/-/reload", NULL, 0, NULL, &r), CURLE_OK);
    assert_int_equal(r.status, 405);
    resp_fini(&r);
    /* No reload callback: 403. */
    assert_int_equal(request("POST", "/-/reload", "", 0, NULL, &r), CURLE_OK);
    assert_int_equal(r.status, 403);
    resp_fini(&r);

    assert_int_equal(atomic_load(&fx.quit_calls), 0);
    assert_int_equal(request("POST", "/-/quit", "", 0, NULL, &r), CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, "Requesting termination... Goodbye!");
    resp_fini(&r);
    for (int i = 0; i < 200 && atomic_load(&fx.quit_calls) == 0; i++)
        usleep(10000);
    assert_int_equal(atomic_load(&fx.quit_calls), 1);
}

static void test_response_helpers(void **state)
{
    (void)state;
    struct http_raw_response r;
    memset(&r, 0, sizeof(r));
    assert_int_equal(http_raw_response_add_header(&r, "X-A", "bad\r\nInjected: 1"), BS_EINVAL);
    for (int i = 0; i < HTTP_RAW_MAX_HEADERS; i++)
        assert_int_equal(http_raw_response_add_header(&r, "X-A", "1"), 0);
    assert_int_equal(http_raw_response_add_header(&r, "X-A", "1"), BS_ELIMIT);
    assert_int_equal(http_raw_response_set_body(&r, 201, "text/plain", "a\0b", 3), 0);
    assert_int_equal(http_raw_response_set_body(&r, 202, "text/plain", "cd", 2), 0);
    assert_int_equal(r.status, 202);
    assert_int_equal(r.body_len, 2);
    assert_memory_equal(r.body, "cd", 2);
    /* The server frees what a response holds; here we do it by hand. */
    free(r.body);
    for (size_t i = 0; i < r.nheaders; i++) {
        free(r.headers[i].name);
        free(r.headers[i].value);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_response_helpers),
        cmocka_unit_test(test_binary_echo),
        cmocka_unit_test(test_body_cap),
        cmocka_unit_test(test_matching),
        cmocka_unit_test(test_errors_and_gate),
        cmocka_unit_test(test_concurrent),
        cmocka_unit_test(test_lifecycle),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
