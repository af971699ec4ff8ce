/* SPDX-License-Identifier: Apache-2.0
 *
 * Raw HTTP routes of bongsu: adapters from struct http_raw_request to the
 * transport-agnostic entry points of ingest and back. No protocol logic
 * lives here.
 */
#include "cmd/routes.h"

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
    if (rc != 0) {
        ingest_response_fini(&ir);
        return rc; /* the server answers 500 */
    }
    resp->status = ir.status;
    resp->content_type = ir.body ? ir.content_type : NULL;
    resp->body = ir.body; /* malloc'd: ownership moves to the server */
    resp->body_len = ir.body ? ir.body_len : 0;
    ir.body = NULL;
    for (size_t i = 0; rc == 0 && i < ir.nheaders; i++)
        rc = http_raw_response_add_header(resp, ir.headers[i].name, ir.headers[i].value);
    ingest_response_fini(&ir);
    return rc;
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
