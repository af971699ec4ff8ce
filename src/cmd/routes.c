/* SPDX-License-Identifier: Apache-2.0
 *
 * Raw HTTP routes of bongsu: adapters from struct http_raw_request to the
 * transport-agnostic entry points of ingest and ipmi and back. No protocol
 * logic lives here.
 */
#include "cmd/routes.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Prometheus 2.42 names its old feature flag here; bongsu names the flag it
 * has. Status, content type and the trailing newline are Prometheus's. */
static const char rw_disabled_text[] =
    "remote write receiver needs to be enabled with --web.enable-remote-write-receiver\n";

static int remote_write_disabled(void *ud, const struct http_raw_request *req,
                                 struct http_raw_response *resp)
{
    (void)ud;
    (void)req;
    return http_raw_response_set_body(resp, 404, "text/plain; charset=utf-8", rw_disabled_text,
                                      sizeof(rw_disabled_text) - 1);
}

/* Move an ingest answer into the HTTP response; frees ir. rc is the ingest
 * call's result: non-zero makes the server answer 500. */
static int send_ingest_response(int rc, struct ingest_response *ir, struct http_raw_response *resp)
{
    if (rc != 0) {
        ingest_response_fini(ir);
        return rc;
    }
    resp->status = ir->status;
    resp->content_type = ir->body ? ir->content_type : NULL;
    resp->body = ir->body; /* malloc'd: ownership moves to the server */
    resp->body_len = ir->body ? ir->body_len : 0;
    ir->body = NULL;
    for (size_t i = 0; rc == 0 && i < ir->nheaders; i++)
        rc = http_raw_response_add_header(resp, ir->headers[i].name, ir->headers[i].value);
    ingest_response_fini(ir);
    return rc;
}

static int remote_write(void *ud, const struct http_raw_request *req,
                        struct http_raw_response *resp)
{
    struct cmd_remote_write *rw = ud;
    struct ingest_response ir;
    memset(&ir, 0, sizeof(ir));
    int rc = ingest_remote_write(rw->db, &rw->limits, http_raw_request_header(req, "Content-Type"),
                                 http_raw_request_header(req, "Content-Encoding"),
                                 http_raw_request_header(req, "X-Prometheus-Remote-Write-Version"),
                                 req->body, req->body_len, &ir);
    return send_ingest_response(rc, &ir, resp);
}

static int push(void *ud, const struct http_raw_request *req, struct http_raw_response *resp)
{
    struct ingest_response ir;
    memset(&ir, 0, sizeof(ir));
    int rc = ingest_push_handle(ud, req->method, req->path, http_raw_request_header(req, "Content-Type"),
                                http_raw_request_header(req, "Content-Encoding"), req->body,
                                req->body_len, &ir);
    return send_ingest_response(rc, &ir, resp);
}

static const char *raw_param(void *ctx, const char *name)
{
    return http_raw_request_param(ctx, name);
}

static int influx_write(void *ud, const struct http_raw_request *req,
                        struct http_raw_response *resp, int version)
{
    struct cmd_remote_write *rw = ud;
    struct ingest_response ir;
    memset(&ir, 0, sizeof(ir));
    int rc = ingest_influx_write(rw->db, &rw->limits, version, raw_param, (void *)req,
                                 http_raw_request_header(req, "Content-Encoding"), req->body,
                                 req->body_len, &ir);
    return send_ingest_response(rc, &ir, resp);
}

static int influx_write_v1(void *ud, const struct http_raw_request *req,
                           struct http_raw_response *resp)
{
    return influx_write(ud, req, resp, 1);
}

static int influx_write_v2(void *ud, const struct http_raw_request *req,
                           struct http_raw_response *resp)
{
    return influx_write(ud, req, resp, 2);
}

static int influx_ping(void *ud, const struct http_raw_request *req, struct http_raw_response *resp)
{
    struct ingest_response ir;
    memset(&ir, 0, sizeof(ir));
    (void)ud;
    (void)req;
    ingest_influx_ping(&ir);
    return send_ingest_response(0, &ir, resp);
}

static int influx_query(void *ud, const struct http_raw_request *req,
                        struct http_raw_response *resp)
{
    struct cmd_remote_write *rw = ud;
    struct ingest_response ir;
    memset(&ir, 0, sizeof(ir));
    const char *q = http_raw_request_param(req, "q");
    int rc = ingest_influx_query(rw->db, q ? q : "", &ir);
    return send_ingest_response(rc, &ir, resp);
}

static void set_route(struct http_raw_route *r, const char *method, const char *path,
                      unsigned flags, size_t max_body, http_raw_fn fn, void *ud)
{
    memset(r, 0, sizeof(*r));
    r->method = method;
    r->path = path;
    r->flags = flags;
    r->max_body_bytes = max_body;
    r->fn = fn;
    r->ud = ud;
}

void cmd_push_routes(struct http_raw_route *routes, size_t *n, struct ingest_push *pg)
{
    static const char *const methods[] = {"PUT", "POST", "DELETE", "GET"};
    static const char *const prefixes[] = {"/metrics/job/", "/metrics/job@base64/"};
    size_t k = 0;
    for (size_t p = 0; p < 2; p++)
        for (size_t m = 0; m < 4; m++)
            set_route(&routes[k++], methods[m], prefixes[p], HTTP_RAW_PREFIX | HTTP_RAW_GATED, 0,
                      push, pg);
    set_route(&routes[k++], "GET", "/api/v1/metrics", HTTP_RAW_GATED, 0, push, pg);
    *n = k;
}

void cmd_influx_routes(struct http_raw_route *routes, size_t *n, struct cmd_remote_write *rw)
{
    size_t k = 0, cap = rw->limits.max_body_bytes;
    set_route(&routes[k++], "POST", "/write", HTTP_RAW_GATED, cap, influx_write_v1, rw);
    set_route(&routes[k++], "POST", "/api/v2/write", HTTP_RAW_GATED, cap, influx_write_v2, rw);
    set_route(&routes[k++], "GET", "/ping", 0, 0, influx_ping, rw);
    set_route(&routes[k++], "HEAD", "/ping", 0, 0, influx_ping, rw);
    set_route(&routes[k++], "GET", "/query", HTTP_RAW_GATED, 0, influx_query, rw);
    set_route(&routes[k++], "POST", "/query", HTTP_RAW_GATED, 0, influx_query, rw);
    *n = k;
}

void cmd_remote_write_route(struct http_raw_route *route, struct cmd_remote_write *rw)
{
    memset(route, 0, sizeof(*route));
    route->method = "POST";
    route->path = "/api/v1/write";
    route->flags = HTTP_RAW_GATED | (rw->enabled ? 0 : HTTP_RAW_DISCARD_BODY);
    route->max_body_bytes = rw->limits.max_body_bytes;
    route->fn = rw->enabled ? remote_write : remote_write_disabled;
    route->ud = rw;
}

/* ------------------------------------------------------------ IPMI events */

static int json_answer(struct http_raw_response *resp, int status, struct bs_buf *b)
{
    int rc = http_raw_response_set_body(resp, status, "application/json", b->data, b->len);
    bs_buf_fini(b);
    return rc;
}

static int events_bad_data(struct http_raw_response *resp, const char *msg)
{
    struct bs_buf b;
    bs_buf_init(&b, 0);
    int rc = bs_buf_puts(&b, "{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":");
    if (rc == 0)
        rc = bs_json_string(&b, msg, strlen(msg));
    if (rc == 0)
        rc = bs_buf_puts(&b, "}");
    if (rc != 0) {
        bs_buf_fini(&b);
        return rc;
    }
    return json_answer(resp, 400, &b);
}

static int ipmi_events(void *ud, const struct http_raw_request *req,
                       struct http_raw_response *resp)
{
    struct ipmi_collector *c = ud;
    struct ipmi_events_filter f;
    ipmi_events_filter_default(&f);
    f.instance = http_raw_request_param(req, "instance");
    f.severity = http_raw_request_param(req, "severity");
    f.sensor_type = http_raw_request_param(req, "sensor_type");
    char msg[sizeof(((struct bs_error *)0)->msg) + 64];
    struct bs_error err = {0};
    static const char *const times[] = {"start", "end"};
    for (int i = 0; i < 2; i++) {
        const char *v = http_raw_request_param(req, times[i]);
        if (!v || !v[0])
            continue;
        if (bs_time_parse_api(v, i == 0 ? &f.start_ms : &f.end_ms, &err) != 0) {
            snprintf(msg, sizeof msg, "invalid parameter \"%s\": %s", times[i], err.msg);
            return events_bad_data(resp, msg);
        }
    }
    const char *lim = http_raw_request_param(req, "limit");
    if (lim && lim[0]) {
        char *end = NULL;
        errno = 0;
        long long v = strtoll(lim, &end, 10);
        if (errno || !end || *end || v < 1 || v > 10000) {
            snprintf(msg, sizeof msg,
                     "invalid parameter \"limit\": \"%.64s\" is not an integer from 1 to 10000",
                     lim);
            return events_bad_data(resp, msg);
        }
        f.limit = (size_t)v;
    }
    const char *cursor = http_raw_request_param(req, "cursor");
    struct bs_buf b;
    bs_buf_init(&b, 0);
    char next[IPMI_EVENTS_CURSOR_MAX] = "";
    int rc = bs_buf_puts(&b, "{\"status\":\"success\",\"data\":{\"events\":");
    if (rc == 0) {
        rc = ipmi_events_query(c, &f, cursor, &b, next, &err);
        if (rc == BS_EINVAL) {
            bs_buf_fini(&b);
            return events_bad_data(resp, err.msg);
        }
    }
    if (rc == 0)
        rc = bs_buf_puts(&b, ",\"cursor\":");
    if (rc == 0)
        rc = bs_json_string(&b, next, strlen(next));
    if (rc == 0)
        rc = bs_buf_puts(&b, "}}");
    if (rc != 0) {
        bs_buf_fini(&b);
        return rc;
    }
    return json_answer(resp, 200, &b);
}

void cmd_ipmi_events_route(struct http_raw_route *route, struct ipmi_collector *c)
{
    set_route(route, "GET", "/api/v1/ipmi/events", HTTP_RAW_GATED, 0, ipmi_events, c);
}
