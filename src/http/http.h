/* SPDX-License-Identifier: Apache-2.0
 *
 * http: bongsu's HTTP server. It serves the Prometheus HTTP API v1 (query,
 * query_range, series, labels, label values, status, targets, rules,
 * alerts, metadata), /metrics
 * with bongsu's self-metrics, the /-/healthy, /-/ready, /-/reload and
 * /-/quit endpoints and a small query page, on top of libmicrohttpd with an
 * internal thread pool. Other modules serve their own endpoints through raw
 * routes (below) without http depending on them.
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
struct labels_matcher;

/* Writes the "data" object of /api/v1/targets ({"activeTargets":[...],
 * "droppedTargets":[...]}) to out. state is the ?state= parameter:
 * "active", "dropped", "any" (also given when the parameter is absent) or
 * any other text, which selects no target at all, as in Prometheus. Returns
 * 0, or a negative BS_* code (the client then gets a 500 error). Called from
 * worker threads. */
typedef int (*http_targets_fn)(void *ud, const char *state, struct bs_buf *out);

/* The parameters of /api/v1/rules, validated. Every pointer is borrowed
 * for the duration of the call. Empty lists mean "no filter". */
struct http_rules_query {
    const char *type;               /* "alert", "record" or "" (all) */
    const char *const *rule_names;  /* rule_name[] */
    size_t nrule_names;
    const char *const *group_names; /* rule_group[] (also accepted: group_name[]) */
    size_t ngroup_names;
    const char *const *files;       /* file[] */
    size_t nfiles;
    bool exclude_alerts;            /* exclude_alerts=true */
};

/* Writes the "data" object of /api/v1/rules ({"groups":[...]}) to out, for
 * the filters in q. Returns 0 or a negative BS_* code. */
typedef int (*http_rules_fn)(void *ud, const struct http_rules_query *q, struct bs_buf *out);

/* Writes the "data" array of /api/v1/targets/metadata to out: the metadata
 * of the active targets whose labels match every matcher of
 * matchers[0..nmatchers) (the parsed match_target; 0 = every target), for
 * metric (NULL = every metric), at most limit entries' targets (< 0: no
 * limit). Returns 0 or a negative BS_* code. */
typedef int (*http_targets_metadata_fn)(void *ud, struct labels_matcher *const *matchers,
                                        size_t nmatchers, const char *metric, long limit,
                                        struct bs_buf *out);

/* Writes the "data" object of /api/v1/metadata to out: metric NULL = every
 * metric; limit < 0 and limit_per_metric <= 0 mean no limit. Returns 0 or a
 * negative BS_* code. */
typedef int (*http_metadata_fn)(void *ud, const char *metric, long limit, long limit_per_metric,
                                struct bs_buf *out);

/* Writes the "data" object of /api/v1/alerts ({"alerts":[...]}) to out.
 * Returns 0 or a negative BS_* code. */
typedef int (*http_alerts_fn)(void *ud, struct bs_buf *out);

/* Reloads the configuration (POST or PUT /-/reload). Returns 0, or a
 * negative BS_* code with a message in err, which the client receives in a
 * 500 answer. */
typedef int (*http_reload_fn)(void *ud, struct bs_error *err);

/* Asks the process to shut down (POST or PUT /-/quit). Called once the
 * "Requesting termination... Goodbye!" answer has been sent (or the client
 * went away), on a worker thread; it must only signal the owner (e.g.
 * raise SIGTERM), never stop the server itself. */
typedef void (*http_quit_fn)(void *ud);

/* ------------------------------------------------------------ raw routes
 *
 * Raw routes let modules above http (ingest, and later the Pushgateway and
 * InfluxDB APIs) serve endpoints without http depending on them: cmd lists
 * them in http_server_opts.raw_routes. A raw route gets the request as it
 * came (method, path, query string, headers, the whole body as bytes) and
 * answers with a status, a content type, extra headers and a body of bytes.
 * Bodies are binary-safe both ways; nothing is parsed as a form.
 *
 * Contract for the callback:
 * - It runs on one of the server's worker threads, possibly on several at
 *   once for the same route: it must be thread-safe.
 * - req and everything reachable from it are borrowed for the duration of
 *   the call only.
 * - It fills resp (which arrives zeroed except status = 200) and returns 0;
 *   the server then sends it and frees resp->body and the added headers.
 *   A negative BS_* return makes the server answer 500 with the code's text
 *   instead (it still frees what resp holds).
 * - The body was read in full before the call, up to the route's
 *   max_body_bytes: a larger body is answered 413 by the server without
 *   calling the route, and without buffering more than the cap (with
 *   "Expect: 100-continue" it is not even read).
 *
 * Matching: built-in routes (the API, /metrics, /-/...) take precedence; a
 * raw route cannot replace one. Otherwise the first raw route whose path
 * matches (exactly, or as a prefix with HTTP_RAW_PREFIX) and whose method
 * matches is called. A path that matches only with other methods gets 405
 * with an Allow header listing them; OPTIONS on /api/v1/ paths gets 204. */

#define HTTP_RAW_PREFIX 0x1       /* path is a prefix ("/metrics/job/") */
#define HTTP_RAW_GATED 0x2        /* 503 until http_server_set_ready(s, true) */
#define HTTP_RAW_DISCARD_BODY 0x4 /* body is read and dropped, never 413: req body is empty */

#define HTTP_RAW_MAX_HEADERS 16 /* extra response headers per answer */

/* The request as a raw route sees it. */
struct http_raw_request {
    const char *method; /* "POST", "PUT", ... */
    const char *path;   /* decoded path, without the query string */
    const char *query;  /* raw query string after '?', without '#...'; "" when none */
    const void *body;   /* the whole body; NULL when body_len is 0 */
    size_t body_len;
    void *impl_; /* the server's own; do not touch */
};

/* Value of request header name (case-insensitive), or NULL when absent.
 * With repeated headers, the first. Borrowed for the duration of the call. */
const char *http_raw_request_header(const struct http_raw_request *req, const char *name);

/* First value of query parameter name, decoded as Go's url.ParseQuery does
 * ('+' is a space, %XX a byte), or NULL when absent. Borrowed for the
 * duration of the call. */
const char *http_raw_request_param(const struct http_raw_request *req, const char *name);

struct http_raw_header {
    char *name;  /* malloc'd by http_raw_response_add_header */
    char *value; /* malloc'd */
};

/* What a raw route answers. */
struct http_raw_response {
    int status;               /* HTTP status; 200 on entry */
    const char *content_type; /* static text, or NULL for none */
    char *body;               /* malloc'd, or NULL; the server frees it */
    size_t body_len;
    struct http_raw_header headers[HTTP_RAW_MAX_HEADERS]; /* via add_header */
    size_t nheaders;
};

/* Add header name: value to resp; both are copied. Returns 0, BS_ELIMIT
 * past HTTP_RAW_MAX_HEADERS, BS_EINVAL when either contains CR or LF,
 * BS_ENOMEM. */
int http_raw_response_add_header(struct http_raw_response *resp, const char *name,
                                 const char *value);

/* Set resp's body to a malloc'd copy of text[0..len) (binary-safe) and its
 * content type; a previous body is freed. Returns 0 or BS_ENOMEM. */
int http_raw_response_set_body(struct http_raw_response *resp, int status,
                               const char *content_type, const void *text, size_t len);

typedef int (*http_raw_fn)(void *ud, const struct http_raw_request *req,
                           struct http_raw_response *resp);

struct http_raw_route {
    const char *method;    /* "POST", "PUT", "DELETE", ... (HEAD is not implied) */
    const char *path;      /* exact path, or a prefix with HTTP_RAW_PREFIX; copied */
    unsigned flags;        /* HTTP_RAW_* */
    size_t max_body_bytes; /* body cap (413 above it); 0 = the server's max_body_bytes */
    http_raw_fn fn;        /* required */
    void *ud;              /* borrowed; must outlive the server */
};

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
    http_targets_metadata_fn targets_metadata; /* NULL: /api/v1/targets/metadata is [] */
    void *targets_metadata_ud;
    http_metadata_fn metadata; /* NULL: /api/v1/metadata is {} */
    void *metadata_ud;
    http_reload_fn reload; /* NULL: /-/reload answers 403, as Prometheus
                            * without --web.enable-lifecycle */
    void *reload_ud;
    http_quit_fn quit; /* NULL: /-/quit answers 403 (lifecycle API disabled) */
    void *quit_ud;
    const struct http_raw_route *raw_routes; /* copied; NULL = none */
    size_t nraw_routes;
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
    unsigned max_connections;      /* concurrent connections; 0 = 512 */
    int64_t read_timeout_ms;       /* idle connection timeout; 0 = 5 minutes */
    /* --web.enable-admin-api: serve /api/v1/admin/tsdb/{delete_series,
     * clean_tombstones,snapshot}; false answers them with Prometheus's
     * "admin APIs disabled" error. */
    bool enable_admin_api;
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
