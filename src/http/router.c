/* SPDX-License-Identifier: Apache-2.0
 *
 * The router: one table from path to handler with the methods each path
 * accepts, the readiness gate Prometheus puts in front of the API and the
 * UI, 404/405/OPTIONS answers as Prometheus gives them, and the
 * bongsu_http_requests_total{handler,code} self-metric. Raw routes (see
 * http.h) are matched here too, after the built-in table, and dispatched to
 * their callbacks.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_int.h"

enum {
    M_GET = 1, /* GET and HEAD */
    M_POST = 2,
    M_PUT = 4,
};

struct route {
    const char *path;
    http_handler_fn fn;
    unsigned methods;
    bool gated; /* answers 503 until the server is ready */
    bool api;   /* under /api/v1: JSON, CORS, OPTIONS */
};

static const struct route routes[] = {
    {"/api/v1/query", http_api_query, M_GET | M_POST, true, true},
    {"/api/v1/query_range", http_api_query_range, M_GET | M_POST, true, true},
    {"/api/v1/query_exemplars", http_api_exemplars, M_GET | M_POST, true, true},
    {"/api/v1/series", http_api_series, M_GET | M_POST, true, true},
    {"/api/v1/labels", http_api_labels, M_GET | M_POST, true, true},
    {"/api/v1/label/:name/values", NULL, M_GET, true, true},
    {"/api/v1/metadata", http_api_metadata, M_GET, true, true},
    {"/api/v1/targets", http_api_targets, M_GET, true, true},
    {"/api/v1/targets/metadata", http_api_targets_metadata, M_GET, true, true},
    {"/api/v1/rules", http_api_rules, M_GET, true, true},
    {"/api/v1/alerts", http_api_alerts, M_GET, true, true},
    {"/api/v1/status/buildinfo", http_api_buildinfo, M_GET, true, true},
    {"/api/v1/status/config", http_api_config, M_GET, true, true},
    {"/api/v1/status/flags", http_api_flags, M_GET, true, true},
    {"/api/v1/status/runtimeinfo", http_api_runtimeinfo, M_GET, true, true},
    {"/api/v1/status/tsdb", http_api_tsdb_status, M_GET, true, true},
    {"/api/v1/admin/tsdb/delete_series", http_api_admin_delete_series, M_POST | M_PUT, true, true},
    {"/api/v1/admin/tsdb/clean_tombstones", http_api_admin_clean_tombstones, M_POST | M_PUT, true,
     true},
    {"/api/v1/admin/tsdb/snapshot", http_api_admin_snapshot, M_POST | M_PUT, true, true},
    {"/metrics", http_page_metrics, M_GET, false, false},
    {"/-/healthy", http_page_healthy, M_GET, false, false},
    {"/-/ready", http_page_ready, M_GET, false, false},
    {"/-/reload", http_page_reload, M_POST | M_PUT, false, false},
    {"/-/quit", http_page_quit, M_POST | M_PUT, false, false},
    {"/", http_page_root, M_GET, true, false},
    {"/graph", http_page_graph, M_GET, true, false},
};
#define NROUTES (sizeof(routes) / sizeof(routes[0]))
#define ROUTE_OTHER NROUTES /* "other" in the metric */

/* ---------------------------------------------------------- self-metrics */

static const int metric_codes[] = {200, 204, 302, 400, 404, 405, 413, 422, 499, 500, 503};
#define NCODES (sizeof(metric_codes) / sizeof(metric_codes[0]))

_Static_assert(NCODES + 1 <= HTTP_METRIC_SLOTS, "HTTP_METRIC_SLOTS too small");

static pthread_mutex_t metrics_mu = PTHREAD_MUTEX_INITIALIZER;
static struct bs_metric *metrics[NROUTES + 1][NCODES + 1];

/* slot is the cache entry for this handler's codes (NCODES + 1 of them);
 * handler is the label value. */
static void count_in(struct bs_metric **slot, const char *handler, int code)
{
    size_t ci = NCODES;
    for (size_t i = 0; i < NCODES; i++)
        if (metric_codes[i] == code)
            ci = i;
    pthread_mutex_lock(&metrics_mu);
    struct bs_metric *m = slot[ci];
    if (!m) {
        struct bs_buf labels;
        bs_buf_init(&labels, 0);
        if (ci < NCODES)
            bs_buf_printf(&labels, "code=\"%d\",handler=", code);
        else
            bs_buf_puts(&labels, "code=\"other\",handler=");
        bs_json_string(&labels, handler, strlen(handler)); /* Go-style quoting */
        m = bs_metric_register(BS_METRIC_COUNTER, "bongsu_http_requests_total",
                               "Counter of HTTP requests.", labels.data);
        bs_buf_fini(&labels);
        slot[ci] = m;
    }
    pthread_mutex_unlock(&metrics_mu);
    if (m)
        bs_metric_add(m, 1);
}

static void count_request(size_t route, int code)
{
    count_in(metrics[route], route < NROUTES ? routes[route].path : "other", code);
}

/* ---------------------------------------------------------------- routing */

static unsigned method_bit(const char *m)
{
    if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0)
        return M_GET;
    if (strcmp(m, "POST") == 0)
        return M_POST;
    if (strcmp(m, "PUT") == 0)
        return M_PUT;
    return 0;
}

static const char *allow_header(unsigned methods, bool api)
{
    if (methods == (M_POST | M_PUT))
        return api ? "OPTIONS, POST, PUT" : "POST, PUT";
    if (methods & M_POST)
        return "GET, OPTIONS, POST";
    return api ? "GET, OPTIONS" : "GET";
}

/* Match /api/v1/label/<name>/values; name is the one decoded segment. */
static bool match_label_values(const char *path, char *name, size_t cap)
{
    static const char pre[] = "/api/v1/label/", suf[] = "/values";
    size_t pl = strlen(path);
    if (strncmp(path, pre, sizeof(pre) - 1) != 0 || pl < sizeof(pre) - 1 + sizeof(suf) - 1 + 1)
        return false;
    if (strcmp(path + pl - (sizeof(suf) - 1), suf) != 0)
        return false;
    const char *n = path + sizeof(pre) - 1;
    size_t nl = pl - (sizeof(pre) - 1) - (sizeof(suf) - 1);
    if (nl == 0 || nl >= cap || memchr(n, '/', nl))
        return false;
    memcpy(name, n, nl);
    name[nl] = '\0';
    return true;
}

int http_route(struct http_server *s, struct http_request *rq, struct http_response *rs)
{
    char name[1024];
    size_t ri = ROUTE_OTHER;
    bool label_values = false;
    for (size_t i = 0; i < NROUTES; i++) {
        if (routes[i].fn && strcmp(routes[i].path, rq->path) == 0) {
            ri = i;
            break;
        }
    }
    if (ri == ROUTE_OTHER && match_label_values(rq->path, name, sizeof(name))) {
        for (size_t i = 0; i < NROUTES; i++)
            if (!routes[i].fn)
                ri = i;
        label_values = true;
    }

    bool api_path = strncmp(rq->path, "/api/v1/", 8) == 0;
    int rc = 0;
    unsigned mb = method_bit(rq->method);
    if (strcmp(rq->method, "OPTIONS") == 0 && (api_path || (ri < NROUTES && routes[ri].api))) {
        rs->status = 204;
        rs->cors = true;
    } else if (ri == ROUTE_OTHER) {
        rc = http_text(rs, 404, "404 page not found\n");
    } else if (!(routes[ri].methods & mb) && routes[ri].methods == (M_POST | M_PUT) &&
               !routes[ri].api) {
        /* /-/reload and /-/quit, as Prometheus words it (no Allow header). */
        rc = http_text(rs, 405, "Only POST or PUT requests allowed");
    } else if (!(routes[ri].methods & mb)) {
        rc = http_text(rs, 405, "Method Not Allowed\n");
        rs->allow = allow_header(routes[ri].methods, routes[ri].api);
    } else if (routes[ri].gated && !atomic_load(&s->ready)) {
        rc = http_text(rs, 503, "Service Unavailable");
    } else if (label_values) {
        rc = http_api_label_values(s, rq, rs, name);
    } else {
        rc = routes[ri].fn(s, rq, rs);
    }
    if (rc != 0) {
        /* Writing the answer failed: say why in the API's error shape. */
        if (rc == BS_ELIMIT)
            rc = http_api_error(rs, 422, "execution",
                                "response exceeds the limit of %zu bytes; narrow the request",
                                (size_t)HTTP_MAX_RESPONSE_BYTES);
        else
            rc = http_api_error(rs, 500, "internal", "%s", bs_strerror(rc));
    }
    count_request(ri, rs->status);
    return rc;
}

/* ------------------------------------------------------------ raw routes */

bool http_route_is_builtin(const char *path)
{
    for (size_t i = 0; i < NROUTES; i++)
        if (routes[i].fn && strcmp(routes[i].path, path) == 0)
            return true;
    return strncmp(path, "/api/v1/label/", 14) == 0;
}

static bool raw_path_matches(const struct http_raw_route *r, const char *path)
{
    if (r->flags & HTTP_RAW_PREFIX)
        return strncmp(path, r->path, strlen(r->path)) == 0;
    return strcmp(path, r->path) == 0;
}

void http_route_match_raw(struct http_server *s, struct http_request *rq)
{
    rq->raw = NULL;
    rq->raw_405 = false;
    if (s->nraw == 0 || http_route_is_builtin(rq->path))
        return;
    bool path_seen = false;
    for (size_t i = 0; i < s->nraw; i++) {
        const struct http_raw_route *r = &s->raw[i];
        if (!raw_path_matches(r, rq->path))
            continue;
        if (!path_seen)
            rq->raw_index = i;
        path_seen = true;
        if (strcmp(r->method, rq->method) == 0) {
            rq->raw = r;
            rq->raw_index = i;
            return;
        }
    }
    /* OPTIONS on API paths is answered by http_route (204 with CORS). */
    rq->raw_405 = path_seen && !(strcmp(rq->method, "OPTIONS") == 0 &&
                                 strncmp(rq->path, "/api/v1/", 8) == 0);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Allow header for a path raw routes serve with other methods: their
 * methods, plus OPTIONS under /api/v1/, sorted as Go's router prints them. */
static void raw_allow(const struct http_server *s, const char *path, char *dst, size_t cap)
{
    const char *m[HTTP_RAW_MAX_HEADERS + 1];
    size_t n = 0;
    if (strncmp(path, "/api/v1/", 8) == 0)
        m[n++] = "OPTIONS";
    for (size_t i = 0; i < s->nraw && n < sizeof(m) / sizeof(m[0]); i++) {
        if (!raw_path_matches(&s->raw[i], path))
            continue;
        bool dup = false;
        for (size_t j = 0; j < n; j++)
            dup = dup || strcmp(m[j], s->raw[i].method) == 0;
        if (!dup)
            m[n++] = s->raw[i].method;
    }
    qsort(m, n, sizeof(m[0]), cmp_str);
    size_t len = 0;
    dst[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        int w = snprintf(dst + len, cap - len, "%s%s", i ? ", " : "", m[i]);
        if (w < 0 || (size_t)w >= cap - len)
            break;
        len += (size_t)w;
    }
}

int http_route_raw(struct http_server *s, struct http_request *rq, struct http_response *rs,
                   struct http_raw_response *raw)
{
    const struct http_raw_route *r = &s->raw[rq->raw_index];
    int rc = 0;
    rs->no_gzip = true;
    rs->cors = strncmp(rq->path, "/api/v1/", 8) == 0;
    if (rq->raw_405) {
        rc = http_text(rs, 405, "Method Not Allowed\n");
        raw_allow(s, rq->path, rs->allow_buf, sizeof(rs->allow_buf));
        rs->allow = rs->allow_buf;
    } else if ((r->flags & HTTP_RAW_GATED) && !atomic_load(&s->ready)) {
        rc = http_text(rs, 503, "Service Unavailable");
    } else if (rq->body_too_large) {
        rs->status = 413;
        rs->content_type = "text/plain; charset=utf-8";
        bs_buf_reset(&rs->body);
        rc = bs_buf_printf(&rs->body, "request body exceeds the limit of %zu bytes\n",
                           rq->body_cap);
    } else {
        char *q = strchr(rq->uri, '?');
        if (q) {
            char *frag = strchr(q, '#');
            if (frag)
                *frag = '\0';
        }
        struct http_raw_request req = {
            .method = rq->method,
            .path = rq->path,
            .query = q ? q + 1 : "",
            .body = rq->body.len ? rq->body.data : NULL,
            .body_len = rq->body.len,
            .impl_ = rq,
        };
        memset(raw, 0, sizeof(*raw));
        raw->status = 200;
        int cb = r->fn(r->ud, &req, raw);
        if (cb != 0 || raw->status < 100 || raw->status > 999) {
            http_raw_response_fini(raw);
            rs->status = 500;
            rs->content_type = "text/plain; charset=utf-8";
            bs_buf_reset(&rs->body);
            rc = bs_buf_printf(&rs->body, "internal error: %s\n",
                               bs_strerror(cb != 0 ? cb : BS_EINVAL));
        } else {
            rs->status = raw->status;
            rs->content_type = raw->content_type;
            rs->owned_body = raw->body;
            rs->owned_len = raw->body ? raw->body_len : 0;
            raw->body = NULL;
            rs->extra = raw->headers;
            rs->nextra = raw->nheaders;
        }
    }
    count_in(&s->raw_metrics[rq->raw_index * HTTP_METRIC_SLOTS], r->path, rs->status);
    return rc;
}
