/* SPDX-License-Identifier: Apache-2.0
 *
 * The router: one table from path to handler with the methods each path
 * accepts, the readiness gate Prometheus puts in front of the API and the
 * UI, 404/405/OPTIONS answers as Prometheus gives them, and the
 * bongsu_http_requests_total{handler,code} self-metric.
 */
#include <pthread.h>
#include <stdio.h>
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
    {"/api/v1/rules", http_api_rules, M_GET, true, true},
    {"/api/v1/alerts", http_api_alerts, M_GET, true, true},
    {"/api/v1/status/buildinfo", http_api_buildinfo, M_GET, true, true},
    {"/api/v1/status/config", http_api_config, M_GET, true, true},
    {"/api/v1/status/flags", http_api_flags, M_GET, true, true},
    {"/api/v1/status/runtimeinfo", http_api_runtimeinfo, M_GET, true, true},
    {"/api/v1/status/tsdb", http_api_tsdb_status, M_GET, true, true},
    {"/metrics", http_page_metrics, M_GET, false, false},
    {"/-/healthy", http_page_healthy, M_GET, false, false},
    {"/-/ready", http_page_ready, M_GET, false, false},
    {"/-/reload", http_page_reload, M_POST | M_PUT, false, false},
    {"/", http_page_root, M_GET, true, false},
    {"/graph", http_page_graph, M_GET, true, false},
};
#define NROUTES (sizeof(routes) / sizeof(routes[0]))
#define ROUTE_OTHER NROUTES /* "other" in the metric */

/* ---------------------------------------------------------- self-metrics */

static const int metric_codes[] = {200, 204, 302, 400, 404, 405, 413, 422, 499, 500, 503};
#define NCODES (sizeof(metric_codes) / sizeof(metric_codes[0]))

static pthread_mutex_t metrics_mu = PTHREAD_MUTEX_INITIALIZER;
static struct bs_metric *metrics[NROUTES + 1][NCODES + 1];

static void count_request(size_t route, int code)
{
    size_t ci = NCODES;
    for (size_t i = 0; i < NCODES; i++)
        if (metric_codes[i] == code)
            ci = i;
    pthread_mutex_lock(&metrics_mu);
    struct bs_metric *m = metrics[route][ci];
    if (!m) {
        char labels[160];
        const char *h = route < NROUTES ? routes[route].path : "other";
        if (ci < NCODES)
            snprintf(labels, sizeof(labels), "code=\"%d\",handler=\"%s\"", code, h);
        else
            snprintf(labels, sizeof(labels), "code=\"other\",handler=\"%s\"", h);
        m = bs_metric_register(BS_METRIC_COUNTER, "bongsu_http_requests_total",
                               "Counter of HTTP requests.", labels);
        metrics[route][ci] = m;
    }
    pthread_mutex_unlock(&metrics_mu);
    if (m)
        bs_metric_add(m, 1);
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
        return "POST, PUT";
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
