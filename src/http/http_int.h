/* SPDX-License-Identifier: Apache-2.0
 *
 * http internals, shared by the files of the http module and its unit
 * tests only: form parameters, the request and response records the
 * handlers work on, the server record and the handler entry points.
 *
 * A request's life: the URI-log callback of libmicrohttpd allocates a
 * struct http_request holding the raw request target (so that the query
 * string is decoded by our own code, as Go's url.ParseQuery does, '+' as
 * space included); the access callback collects a form body up to the
 * body limit, then parses the parameters (body first, then query string,
 * so a body value wins, as Go's Request.FormValue) and dispatches to a
 * handler, which fills a struct http_response; the server turns that into
 * an MHD response (gzip when asked and worthwhile). The completion callback
 * frees the request.
 */
#ifndef BONGSU_HTTP_INT_H
#define BONGSU_HTTP_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/http.h"
#include "util/util.h"

struct MHD_Connection;
struct MHD_Daemon;
struct labels_matcher;

/* ------------------------------------------------------------ parameters */

#define HTTP_MAX_PARAMS 10000 /* pairs per request, body and query together */
#define HTTP_DEFAULT_MAX_BODY (8u << 20)
#define HTTP_DEFAULT_MAX_CONNECTIONS 512u /* Prometheus's --web.max-connections */
#define HTTP_MAX_RESPONSE_BYTES ((size_t)1 << 30)
#define HTTP_GZIP_MIN_BYTES 1024

struct http_param {
    char *name;  /* decoded, NUL-terminated; owned */
    char *value; /* decoded, NUL-terminated; owned */
};

/* Decoded name=value pairs in arrival order; repeated names allowed. */
struct http_params {
    struct http_param *v;
    size_t n, cap;
};

void http_params_init(struct http_params *p);
void http_params_fini(struct http_params *p);
/* Parse s[0..n) as application/x-www-form-urlencoded ("a=1&b=x+y&c=%41")
 * and append the pairs. '+' decodes to a space, %XX to its byte; a pair
 * with a malformed escape is skipped, as Go does; empty pairs are skipped;
 * a pair without '=' has the empty value. Returns 0, BS_ELIMIT past
 * HTTP_MAX_PARAMS pairs in total, BS_ENOMEM. */
int http_params_parse(struct http_params *p, const char *s, size_t n);
/* First value of name, or NULL when absent. Borrowed from p. */
const char *http_params_get(const struct http_params *p, const char *name);
/* Number of values of name, and the i-th of them (borrowed from p). */
size_t http_params_count(const struct http_params *p, const char *name);
const char *http_params_nth(const struct http_params *p, const char *name, size_t i);

/* Percent-decode s[0..n) into dst (which needs n+1 bytes); '+' becomes a
 * space when plus_space. Returns the decoded length, or -1 for a malformed
 * escape. dst is NUL-terminated on success. */
long http_url_decode(const char *s, size_t n, bool plus_space, char *dst);

/* --------------------------------------------------- requests, responses */

struct http_request {
    struct http_server *srv;
    struct MHD_Connection *conn;
    const char *method; /* borrowed from MHD */
    const char *path;   /* decoded path, borrowed from MHD */
    char *uri;          /* raw request target; owned */
    struct bs_buf body; /* form body or raw route body, capped */
    bool body_too_large;
    bool body_is_form;
    bool started; /* access callback seen once */
    struct http_params params;
    /* Raw routes: the route picked for path and method (NULL: none), and
     * for a path that raw routes serve with other methods only, raw_405. */
    const struct http_raw_route *raw;
    size_t raw_index;
    bool raw_405;
    size_t body_cap;   /* cap of body for raw routes */
    bool quit_after;   /* call srv->quit once the request is over */
    bool answered;     /* a response is queued */
};

struct http_response {
    int status;
    const char *content_type; /* static string */
    struct bs_buf body;
    const char *location; /* static or owned by the route; NULL = none */
    const char *allow;    /* Allow header for 405; static or in allow_buf */
    bool cors;            /* add Access-Control-* headers (API) */
    bool no_gzip;         /* send the body as it is */
    char *owned_body;     /* malloc'd body sent instead of body (raw routes); owned */
    size_t owned_len;
    const struct http_raw_header *extra; /* more headers (raw routes); borrowed */
    size_t nextra;
    char allow_buf[96];
};

/* ------------------------------------------------------------ the server */

struct http_server {
    struct MHD_Daemon *daemon;
    int listen_fd;
    int port;
    struct tsdb *db;
    struct promql_engine *engine;
    http_targets_fn targets;
    void *targets_ud;
    http_rules_fn rules;
    void *rules_ud;
    http_targets_metadata_fn targets_metadata;
    void *targets_metadata_ud;
    http_metadata_fn metadata;
    void *metadata_ud;
    http_alerts_fn alerts;
    void *alerts_ud;
    http_reload_fn reload;
    void *reload_ud;
    http_quit_fn quit;
    void *quit_ud;
    struct http_raw_route *raw; /* copies of the options' routes; paths owned */
    size_t nraw;
    struct bs_metric **raw_metrics; /* nraw * HTTP_METRIC_SLOTS, guarded by the router */
    char *version, *revision, *branch, *build_user, *build_date, *storage_retention;
    char **flags;  /* name, value, ... NULL; owned */
    size_t nflags; /* pairs */
    int64_t lookback_ms;
    bool admin_api; /* --web.enable-admin-api */
    size_t max_body_bytes;
    int64_t start_ms;
    atomic_bool ready;

    pthread_mutex_t config_mu; /* guards the three fields below */
    char *config_yaml;
    bool reload_success;
    int64_t config_time_ms;
};

/* A handler fills rs from rq. It returns 0 (rs is complete, success or an
 * error answer it wrote itself) or a negative BS_* code when writing the
 * answer failed (out of memory, response too large); the server then
 * answers 500 or 422 in the API's error shape. */
typedef int (*http_handler_fn)(struct http_server *s, struct http_request *rq,
                               struct http_response *rs);

/* Response helpers (respond.c). */
int http_text(struct http_response *rs, int status, const char *text);
/* Start {"status":"success","data": ... and end it, with "warnings" when
 * nwarn > 0. */
int http_api_begin(struct http_response *rs);
int http_api_end(struct http_response *rs, char *const *warnings, size_t nwarn);
/* As http_api_end, adding Prometheus 3's "infos" array after "warnings";
 * either array is left out when empty. */
int http_api_end_annotated(struct http_response *rs, char *const *warnings, size_t nwarn,
                           char *const *infos, size_t ninfo);
/* Replace the body with {"status":"error","errorType":type,"error":msg}
 * and set status. Returns 0 or BS_ENOMEM. */
int http_api_error(struct http_response *rs, int status, const char *type, const char *fmt, ...)
    BS_PRINTF(4, 5);
/* HTTP status Prometheus uses for an errorType. */
int http_status_for_error_type(const char *type);

/* API handlers (api.c, api_meta.c). */
int http_api_query(struct http_server *s, struct http_request *rq, struct http_response *rs);
int http_api_query_range(struct http_server *s, struct http_request *rq, struct http_response *rs);
int http_api_series(struct http_server *s, struct http_request *rq, struct http_response *rs);
int http_api_labels(struct http_server *s, struct http_request *rq, struct http_response *rs);
/* name is the decoded <name> of /api/v1/label/<name>/values. */
int http_api_label_values(struct http_server *s, struct http_request *rq, struct http_response *rs,
                          const char *name);
int http_api_buildinfo(struct http_server *s, struct http_request *rq, struct http_response *rs);
int http_api_config(struct http_server *s, struct http_request *rq, struct http_response *rs);
int http_api_flags(struct http_server *s, struct http_request *rq, struct http_response *rs);
int http_api_runtimeinfo(struct http_server *s, struct http_request *rq, struct http_response *rs);
int http_api_tsdb_status(struct http_server *s, struct http_request *rq, struct http_response *rs);
int http_api_targets(struct http_server *s, struct http_request *rq, struct http_response *rs);
int http_api_rules(struct http_server *s, struct http_request *rq, struct http_response *rs);
int http_api_alerts(struct http_server *s, struct http_request *rq, struct http_response *rs);
int http_api_metadata(struct http_server *s, struct http_request *rq, struct http_response *rs);
int http_api_targets_metadata(struct http_server *s, struct http_request *rq,
                              struct http_response *rs);
int http_api_exemplars(struct http_server *s, struct http_request *rq, struct http_response *rs);

/* A time parameter as Prometheus's parseTimeParam reads it (api.c): its
 * default is Prometheus's minTime; the caller replaces it for "end".
 * Returns 0, 1 when it wrote a 400 answer into rs, or a negative BS_*
 * code. */
int http_api_param_time(struct http_request *rq, struct http_response *rs, const char *name,
                        int64_t *out);
/* Go's strconv.ParseBool (api_meta.c): 0 with *out, or -1. */
int http_parse_go_bool(const char *v, bool *out);
/* The TSDB admin API (api_admin.c): POST or PUT under
 * /api/v1/admin/tsdb/; without s->admin_api each answers as Prometheus
 * without --web.enable-admin-api. */
int http_api_admin_delete_series(struct http_server *s, struct http_request *rq,
                                 struct http_response *rs);
int http_api_admin_clean_tombstones(struct http_server *s, struct http_request *rq,
                                    struct http_response *rs);
int http_api_admin_snapshot(struct http_server *s, struct http_request *rq,
                            struct http_response *rs);

/* Pages (pages.c). */
int http_page_metrics(struct http_server *s, struct http_request *rq, struct http_response *rs);
int http_page_healthy(struct http_server *s, struct http_request *rq, struct http_response *rs);
int http_page_ready(struct http_server *s, struct http_request *rq, struct http_response *rs);
int http_page_root(struct http_server *s, struct http_request *rq, struct http_response *rs);
int http_page_graph(struct http_server *s, struct http_request *rq, struct http_response *rs);
int http_page_reload(struct http_server *s, struct http_request *rq, struct http_response *rs);
int http_page_quit(struct http_server *s, struct http_request *rq, struct http_response *rs);

/* Route a request: fills rs (status, body, headers). Counts it in
 * bongsu_http_requests_total. (router.c) */
int http_route(struct http_server *s, struct http_request *rq, struct http_response *rs);

/* Status codes counted separately per handler, plus one slot for others. */
#define HTTP_METRIC_SLOTS 16

/* Is path served by a built-in route (those win over raw routes)? */
bool http_route_is_builtin(const char *path);

/* Find the raw route for rq->path and rq->method: sets rq->raw and
 * rq->raw_index, or rq->raw_405 when only other methods match. (router.c) */
void http_route_match_raw(struct http_server *s, struct http_request *rq);

/* Answer a request matched by http_route_match_raw (rq->raw or
 * rq->raw_405): readiness gate, 413 for an oversized body, the route's
 * callback; raw->body and the headers in *raw are for the caller to send
 * and free (http_raw_response_fini). Counts the request. (router.c) */
int http_route_raw(struct http_server *s, struct http_request *rq, struct http_response *rs,
                   struct http_raw_response *raw);

/* Free what a raw response holds and zero it. */
void http_raw_response_fini(struct http_raw_response *resp);

/* Parse one series selector (up{job="x"}) into matchers; see selector.c.
 * OUT: *out, a malloc'd array of *n matchers; free each with
 * labels_matcher_free and the array with free(). On error err holds a
 * message in PromQL's "1:3: parse error: ..." form. */
int http_selector_parse(const char *s, struct labels_matcher ***out, size_t *n,
                        struct bs_error *err);

/* gzip s[0..n) (n < 4 GiB) (respond.c). OUT: *out, a malloc'd buffer of
 * *out_len bytes the caller frees. Returns 0, BS_ENOMEM or BS_EIO. */
int http_gzip(const char *s, size_t n, char **out, size_t *out_len);
/* Does an Accept-Encoding header value accept gzip? */
bool http_accepts_gzip(const char *accept_encoding);

#endif
