/* SPDX-License-Identifier: Apache-2.0
 *
 * http: bongsu's HTTP server. It serves the Prometheus HTTP API v1 (query,
 * query_range, series, labels, label values, status, targets), /metrics
 * with bongsu's self-metrics, the /-/healthy and /-/ready probes and a small
 * query page, on top of libmicrohttpd with an internal thread pool.
 *
 * JSON shapes, status codes and error texts follow Prometheus 2.42's
 * web/api/v1 so that Grafana, promtool and other clients work unchanged;
 * docs/http-api.md lists what is supported.
 *
 * Thread safety: requests are handled concurrently by the server's worker
 * threads, so the tsdb, the engine and every callback passed in the options
 * must be safe to call from several threads at once. The functions below
 * may be called from any thread; http_server_stop() must not race with the
 * others on the same server.
 */
#ifndef BONGSU_HTTP_H
#define BONGSU_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

struct tsdb;
struct promql_engine;
struct http_server;

/* Writes the "data" object of /api/v1/targets ({"activeTargets":[...],
 * "droppedTargets":[...]}) to out. state is the ?state= parameter:
 * "active", "dropped", "any" (also given when the parameter is absent) or
 * any other text, which selects no target at all, as in Prometheus. Returns
 * 0, or a negative BS_* code (the client then gets a 500 error). Called from
 * worker threads. */
typedef int (*http_targets_fn)(void *ud, const char *state, struct bs_buf *out);

/* Writes the "data" object of /api/v1/rules ({"groups":[...]}) to out. type
 * is the ?type= parameter ("alert", "record" or "" when absent). Returns 0
 * or a negative BS_* code. */
typedef int (*http_rules_fn)(void *ud, const char *type, struct bs_buf *out);

/* Writes the "data" object of /api/v1/alerts ({"alerts":[...]}) to out.
 * Returns 0 or a negative BS_* code. */
typedef int (*http_alerts_fn)(void *ud, struct bs_buf *out);

/* Reloads the configuration (POST or PUT /-/reload). Returns 0, or a
 * negative BS_* code with a message in err, which the client receives in a
 * 500 answer. */
typedef int (*http_reload_fn)(void *ud, struct bs_error *err);

struct http_server_opts {
    /* "host:port": "0.0.0.0:9090", ":9090" (every interface, IPv6 and IPv4
     * when the system allows it), "127.0.0.1:0" (any free port; see
     * http_server_port), "[::1]:9090", "localhost:9090". Required. */
    const char *listen_address;
    struct tsdb *db;              /* required; borrowed, must outlive the server */
    struct promql_engine *engine; /* required; borrowed, must outlive the server */
    http_targets_fn targets;      /* NULL: no targets (empty lists) */
    void *targets_ud;
    http_rules_fn rules; /* NULL: no rule groups (empty list) */
    void *rules_ud;
    http_alerts_fn alerts; /* NULL: no alerts (empty list) */
    void *alerts_ud;
    http_reload_fn reload; /* NULL: /-/reload answers 403, as Prometheus
                            * without --web.enable-lifecycle */
    void *reload_ud;
    const char *config_yaml; /* for /api/v1/status/config; copied; NULL = "" */
    const char *version;     /* buildinfo; copied; NULL = BS_VERSION */
    const char *revision;    /* copied; NULL = "" */
    const char *branch;      /* copied; NULL = "" */
    const char *build_user;  /* copied; NULL = "" */
    const char *build_date;  /* copied; NULL = "" */
    /* /api/v1/status/flags: NULL-terminated array of name, value, name,
     * value, ... (names without the leading "--"); copied. NULL = none. */
    const char *const *flags;
    const char *storage_retention; /* runtimeinfo, e.g. "15d"; copied; NULL = "" */
    int64_t lookback_ms;           /* informational; 0 = 5 minutes */
    size_t max_body_bytes;         /* POST body limit; 0 = 8 MiB. Larger bodies get 413. */
    unsigned threads;              /* worker threads; 0 = 4 */
};

/* Fill o with the defaults named above and listen_address ":9090". The
 * caller still has to set db and engine. */
void http_server_opts_default(struct http_server_opts *o);

/* Bind o->listen_address and start serving. Everything the server needs
 * from o is copied, except db, engine and the callback user data, which
 * are borrowed until http_server_stop(). The server starts "not ready":
 * /-/ready and the API answer 503 until http_server_set_ready(s, true).
 * OUT: *out, the running server (free it with http_server_stop).
 * Returns 0; BS_EINVAL for a malformed address or missing db/engine; BS_EIO
 * when the address cannot be bound, with a message as Go writes it, e.g.
 * "listen tcp 0.0.0.0:9090: bind: address already in use". */
int http_server_start(struct http_server **out, const struct http_server_opts *o,
                      struct bs_error *err);

/* The TCP port the server is bound to (useful after binding port 0). */
int http_server_port(const struct http_server *s);

/* Mark the server ready (after WAL replay) or not ready (while shutting
 * down). Not ready: /-/ready and every API endpoint answer 503. */
void http_server_set_ready(struct http_server *s, bool ready);

/* Replace the text served by /api/v1/status/config (after a reload) and
 * record the reload outcome and time for /api/v1/status/runtimeinfo. yaml
 * is copied; NULL keeps the current text. */
void http_server_set_config(struct http_server *s, const char *yaml, bool reload_success);

/* Stop accepting connections, finish the requests in flight, and free the
 * server. NULL is allowed. */
void http_server_stop(struct http_server *s);

#endif
