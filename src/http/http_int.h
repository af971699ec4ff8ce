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
    struct bs_buf body; /* form body, capped */
    bool body_too_large;
    bool body_is_form;
    bool started; /* access callback seen once */
    struct http_params params;
};

struct http_response {
    int status;
    const char *content_type; /* static string */
    struct bs_buf body;
    const char *location; /* static or owned by the route; NULL = none */
    const char *allow;    /* Allow header for 405; static */
    bool cors;            /* add Access-Control-* headers (API) */
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
    http_alerts_fn alerts;
    void *alerts_ud;
    http_reload_fn reload;
    void *reload_ud;
    char *version, *revision, *branch, *build_user, *build_date, *storage_retention;
    char **flags;  /* name, value, ... NULL; owned */
    size_t nflags; /* pairs */
    int64_t lookback_ms;
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
int http_api_exemplars(struct http_server *s, struct http_request *rq, struct http_response *rs);

/* Pages (pages.c). */
int http_page_metrics(struct http_server *s, struct http_request *rq, struct http_response *rs);
int http_page_healthy(struct http_server *s, struct http_request *rq, struct http_response *rs);
int http_page_ready(struct http_server *s, struct http_request *rq, struct http_response *rs);
int http_page_root(struct http_server *s, struct http_request *rq, struct http_response *rs);
int http_page_graph(struct http_server *s, struct http_request *rq, struct http_response *rs);
int http_page_reload(struct http_server *s, struct http_request *rq, struct http_response *rs);

/* Route a request: fills rs (status, body, headers). Counts it in
 * bongsu_http_requests_total. (router.c) */
int http_route(struct http_server *s, struct http_request *rq, struct http_response *rs);

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
