/* SPDX-License-Identifier: Apache-2.0
 *
 * cmd routes: the endpoints other modules serve through the HTTP server's
 * raw routes, wired here because only cmd may depend on both http and the
 * module (http knows neither ingest nor the others). Now: POST
 * /api/v1/write, the remote-write receiver. Later: the Pushgateway and
 * InfluxDB APIs.
 */
#ifndef BONGSU_CMD_ROUTES_H
#define BONGSU_CMD_ROUTES_H

#include <stdbool.h>

#include "http/http.h"
#include "ingest/ingest.h"

/* The state the remote-write route needs; owned by the caller and
 * borrowed by the route until the server stops. */
struct cmd_remote_write {
    struct tsdb *db;             /* borrowed */
    struct ingest_limits limits; /* ingest_limits_default() */
    bool enabled;                /* --web.enable-remote-write-receiver */
};

/* Fill *route for POST /api/v1/write over rw. Enabled: the body (up to
 * rw->limits.max_body_bytes) goes to ingest_remote_write, whose answer is
 * sent as it is. Disabled: 404 with Prometheus's text naming the flag, the
 * body is not kept. Both answer 503 until the server is ready, as
 * Prometheus does. rw must be filled first and outlive the server. */
void cmd_remote_write_route(struct http_raw_route *route, struct cmd_remote_write *rw);

#endif
