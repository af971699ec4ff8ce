/* SPDX-License-Identifier: Apache-2.0
 *
 * cmd routes: the endpoints other modules serve through the HTTP server's
 * raw routes, wired here because only cmd may depend on both http and the
 * module (http knows neither ingest nor the others): POST /api/v1/write
 * (remote write), the Pushgateway API under /metrics/job/ and
 * /api/v1/metrics, the InfluxDB 1.x/2.x write, ping and query endpoints,
 * and GET /api/v1/ipmi/events.
 */
#ifndef BONGSU_CMD_ROUTES_H
#define BONGSU_CMD_ROUTES_H

#include <stdbool.h>

#include "http/http.h"
#include "ingest/ingest.h"
#include "ipmi/ipmi.h"

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

/* The Pushgateway routes: PUT, POST, DELETE and GET on the prefixes
 * /metrics/job/ and /metrics/job@base64/, and GET /api/v1/metrics, all to
 * ingest_push_handle(pg). Writes *n routes (at most CMD_PUSH_ROUTES) into
 * routes. pg must outlive the server. */
#define CMD_PUSH_ROUTES 9
void cmd_push_routes(struct http_raw_route *routes, size_t *n, struct ingest_push *pg);

/* The InfluxDB routes: POST /write (v1), POST /api/v2/write, GET and HEAD
 * /ping, GET and POST /query. Writes *n routes (at most CMD_INFLUX_ROUTES).
 * rw supplies the store and the limits and must outlive the server. */
#define CMD_INFLUX_ROUTES 6
void cmd_influx_routes(struct http_raw_route *routes, size_t *n, struct cmd_remote_write *rw);

/* GET /api/v1/ipmi/events over collector c (which must outlive the
 * server). Parameters: instance, severity, sensor_type, start, end (API
 * times: Unix seconds or RFC 3339), limit (1..10000, default 1000) and
 * cursor (from a previous answer). Answers Prometheus's envelope:
 *   {"status":"success","data":{"events":[...],"cursor":"e42"}}
 * or 400 {"status":"error","errorType":"bad_data","error":"..."} for a bad
 * parameter or a cursor this server did not produce. */
void cmd_ipmi_events_route(struct http_raw_route *route, struct ipmi_collector *c);

#endif
