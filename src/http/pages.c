/* SPDX-License-Identifier: Apache-2.0
 *
 * Non-API pages: /metrics (self-metrics in text format 0.0.4), the
 * /-/healthy and /-/ready probes, /-/reload and /-/quit, the redirect from / and a
 * small /graph page. The full web UI is not there yet; /graph says so and
 * offers what is there: a query box that calls /api/v1/query and shows the
 * JSON, and links to the API endpoints.
 */
#include <string.h>

#include "http/http_int.h"

int http_page_metrics(struct http_server *s, struct http_request *rq, struct http_response *rs)
{
    (void)s;
    (void)rq;
    rs->status = 200;
    rs->content_type = "text/plain; version=0.0.4; charset=utf-8";
    return bs_metrics_write(&rs->body);
}

int http_page_healthy(struct http_server *s, struct http_request *rq, struct http_response *rs)
{
    (void)s;
    (void)rq;
    return http_text(rs, 200, "bongsu is Healthy.\n");
}

int http_page_ready(struct http_server *s, struct http_request *rq, struct http_response *rs)
{
    (void)rq;
    if (!atomic_load(&s->ready))
        return http_text(rs, 503, "Service Unavailable");
    return http_text(rs, 200, "bongsu is Ready.\n");
}

int http_page_reload(struct http_server *s, struct http_request *rq, struct http_response *rs)
{
    (void)rq;
    if (!s->reload)
        return http_text(rs, 403, "Lifecycle API is not enabled.");
    struct bs_error e;
    bs_error_clear(&e);
    int rc = s->reload(s->reload_ud, &e);
    if (rc != 0) {
        rs->status = 500;
        rs->content_type = "text/plain; charset=utf-8";
        return bs_buf_printf(&rs->body, "failed to reload config: %s\n",
                             e.msg[0] ? e.msg : bs_strerror(rc));
    }
    rs->status = 200;
    return 0;
}

int http_page_quit(struct http_server *s, struct http_request *rq, struct http_response *rs)
{
    if (!s->quit)
        return http_text(rs, 403, "Lifecycle API is not enabled.");
    rq->quit_after = true; /* the server calls s->quit once this answer is out */
    return http_text(rs, 200, "Requesting termination... Goodbye!");
}

int http_page_root(struct http_server *s, struct http_request *rq, struct http_response *rs)
{
    (void)s;
    (void)rq;
    rs->status = 302;
    rs->location = "/graph";
    rs->content_type = "text/html; charset=utf-8";
    return bs_buf_puts(&rs->body, "<a href=\"/graph\">Found</a>.\n\n");
}

static int put_html_escaped(struct bs_buf *b, const char *s)
{
    int rc = 0;
    for (; rc == 0 && *s; s++) {
        switch (*s) {
        case '<':
            rc = bs_buf_puts(b, "&lt;");
            break;
        case '>':
            rc = bs_buf_puts(b, "&gt;");
            break;
        case '&':
            rc = bs_buf_puts(b, "&amp;");
            break;
        case '"':
            rc = bs_buf_puts(b, "&quot;");
            break;
        default:
            rc = bs_buf_putc(b, *s);
            break;
        }
    }
    return rc;
}

static const char graph_head[] =
    "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
    "<title>bongsu</title>\n"
    "<style>body{font-family:sans-serif;margin:2em;max-width:70em}"
    "textarea{width:100%;font-family:monospace}pre{background:#f4f4f4;padding:1em;"
    "overflow:auto;max-height:40em}</style></head><body>\n"
    "<h1>bongsu</h1>\n<p>Version ";

static const char graph_body[] =
    "</p>\n"
    "<p>The full web UI is not there yet. This page runs instant queries through the "
    "Prometheus-compatible API; Grafana and promtool work against the same API.</p>\n"
    "<form id=\"f\"><textarea id=\"q\" rows=\"3\" placeholder=\"Expression, e.g. up\"></textarea>"
    "<br><button type=\"submit\">Execute</button></form>\n"
    "<pre id=\"out\"></pre>\n"
    "<h2>Endpoints</h2><ul>\n"
    "<li><a href=\"/api/v1/query?query=up\">/api/v1/query</a> and /api/v1/query_range</li>\n"
    "<li><a href=\"/api/v1/labels\">/api/v1/labels</a>, "
    "<a href=\"/api/v1/label/__name__/values\">/api/v1/label/&lt;name&gt;/values</a>, "
    "/api/v1/series?match[]=...</li>\n"
    "<li><a href=\"/api/v1/targets\">/api/v1/targets</a></li>\n"
    "<li><a href=\"/api/v1/status/buildinfo\">/api/v1/status/buildinfo</a>, "
    "<a href=\"/api/v1/status/config\">config</a>, <a href=\"/api/v1/status/flags\">flags</a>, "
    "<a href=\"/api/v1/status/runtimeinfo\">runtimeinfo</a>, "
    "<a href=\"/api/v1/status/tsdb\">tsdb</a></li>\n"
    "<li><a href=\"/metrics\">/metrics</a>, <a href=\"/-/healthy\">/-/healthy</a>, "
    "<a href=\"/-/ready\">/-/ready</a></li></ul>\n"
    "<script>\n"
    "document.getElementById('f').addEventListener('submit', function (ev) {\n"
    "  ev.preventDefault();\n"
    "  var out = document.getElementById('out');\n"
    "  var body = new URLSearchParams();\n"
    "  body.set('query', document.getElementById('q').value);\n"
    "  out.textContent = '...';\n"
    "  fetch('api/v1/query', {method: 'POST', body: body})\n"
    "    .then(function (r) { return r.json(); })\n"
    "    .then(function (j) { out.textContent = JSON.stringify(j, null, 2); })\n"
    "    .catch(function (e) { out.textContent = String(e); });\n"
    "});\n"
    "</script>\n</body></html>\n";

int http_page_graph(struct http_server *s, struct http_request *rq, struct http_response *rs)
{
    (void)rq;
    rs->status = 200;
    rs->content_type = "text/html; charset=utf-8";
    int rc = bs_buf_puts(&rs->body, graph_head);
    if (rc == 0)
        rc = put_html_escaped(&rs->body, s->version);
    if (rc == 0 && s->revision[0]) {
        rc = bs_buf_puts(&rs->body, " (revision ");
        if (rc == 0)
            rc = put_html_escaped(&rs->body, s->revision);
        if (rc == 0)
            rc = bs_buf_putc(&rs->body, ')');
    }
    if (rc == 0)
        rc = bs_buf_puts(&rs->body, graph_body);
    return rc;
}
