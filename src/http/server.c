/* SPDX-License-Identifier: Apache-2.0
 *
 * The server: binding the listen address ourselves (so errors read as Go's
 * "listen tcp 0.0.0.0:9090: bind: address already in use" and port 0 can be
 * reported), libmicrohttpd with an internal thread pool on that socket, and
 * the glue between MHD's callbacks and our request/response records.
 *
 * Per request: the URI-log callback allocates the struct http_request with
 * the raw request target; the access callback runs once for the headers,
 * once per body chunk (kept only for form bodies, up to the limit), and a
 * last time with no data, when the parameters are parsed and the request
 * is routed; the completion callback frees the request. Bodies are built in
 * a bs_buf whose memory is handed to MHD, which frees it.
 *
 * Raw routes (http.h) are picked on the first call, from the path and the
 * method alone; their body is kept whatever its content type, up to the
 * route's cap. Past the cap the buffer is dropped and the rest of the body
 * is read and thrown away, so memory never exceeds the cap; a client that
 * asked for "100 Continue" with a too large Content-Length gets the 413 at
 * once and never sends the body.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/http_int.h"

#define COMPONENT "web"

/* --------------------------------------------------------------- binding */

/* Go prints errno texts in lower case ("address already in use"). */
static void errno_text(int e, char *dst, size_t cap)
{
    snprintf(dst, cap, "%s", strerror(e));
    if (dst[0])
        dst[0] = (char)tolower((unsigned char)dst[0]);
}

static int split_host_port(const char *addr, char *host, size_t hcap, char *port, size_t pcap,
                           struct bs_error *err)
{
    const char *colon;
    const char *h = addr;
    size_t hl;
    if (addr[0] == '[') {
        const char *rb = strchr(addr, ']');
        if (!rb || rb[1] != ':')
            return bs_error_set(err, BS_EINVAL, "listen tcp: address %s: missing port in address",
                                addr);
        h = addr + 1;
        hl = (size_t)(rb - h);
        colon = rb + 1;
    } else {
        colon = strrchr(addr, ':');
        if (!colon)
            return bs_error_set(err, BS_EINVAL, "listen tcp: address %s: missing port in address",
                                addr);
        hl = (size_t)(colon - addr);
        if (memchr(addr, ':', hl))
            return bs_error_set(err, BS_EINVAL,
                                "listen tcp: address %s: too many colons in address", addr);
    }
    const char *p = colon + 1;
    size_t pl = strlen(p);
    bool digits = pl > 0 && pl <= 5;
    for (size_t i = 0; digits && i < pl; i++)
        digits = isdigit((unsigned char)p[i]) != 0;
    long portnum = digits ? strtol(p, NULL, 10) : -1;
    if (portnum < 0 || portnum > 65535)
        return bs_error_set(err, BS_EINVAL, "listen tcp: address %s: invalid port", addr);
    if (hl >= hcap || pl >= pcap)
        return bs_error_set(err, BS_EINVAL, "listen tcp: address %s: host name too long", addr);
    memcpy(host, h, hl);
    host[hl] = '\0';
    memcpy(port, p, pl + 1);
    return 0;
}

static int bind_one(const struct sockaddr *sa, socklen_t salen, bool dual_stack, const char *addr,
                    int *out_fd, struct bs_error *err)
{
    char et[128];
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        errno_text(e, et, sizeof(et));
        bs_error_set(err, BS_EIO, "listen tcp %s: socket: %s", addr, et);
        return e == EAFNOSUPPORT ? BS_ENOENT : BS_EIO;
    }
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (sa->sa_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, dual_stack ? &zero : &one, sizeof(int));
    const char *step = "bind";
    if (bind(fd, sa, salen) != 0 || (step = "listen", listen(fd, SOMAXCONN) != 0)) {
        errno_text(errno, et, sizeof(et));
        close(fd);
        return bs_error_set(err, BS_EIO, "listen tcp %s: %s: %s", addr, step, et);
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    *out_fd = fd;
    return 0;
}

static int bind_address(const char *addr, int *out_fd, int *out_port, struct bs_error *err)
{
    char host[256], port[8];
    int rc = split_host_port(addr, host, sizeof(host), port, sizeof(port), err);
    if (rc != 0)
        return rc;
    int fd = -1;
    if (host[0] == '\0') {
        /* Every interface: dual-stack [::] when the system has IPv6. */
        struct sockaddr_in6 a6;
        memset(&a6, 0, sizeof(a6));
        a6.sin6_family = AF_INET6;
        a6.sin6_addr = in6addr_any;
        a6.sin6_port = htons((uint16_t)strtol(port, NULL, 10));
        rc = bind_one((struct sockaddr *)&a6, sizeof(a6), true, addr, &fd, err);
        if (rc == BS_ENOENT) {
            struct sockaddr_in a4;
            memset(&a4, 0, sizeof(a4));
            a4.sin_family = AF_INET;
            a4.sin_addr.s_addr = htonl(INADDR_ANY);
            a4.sin_port = htons((uint16_t)strtol(port, NULL, 10));
            rc = bind_one((struct sockaddr *)&a4, sizeof(a4), false, addr, &fd, err);
        }
    } else {
        struct addrinfo hints, *res = NULL;
        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
        int g = getaddrinfo(host, port, &hints, &res);
        if (g != 0 || !res)
            return bs_error_set(err, BS_EIO, "listen tcp %s: lookup %s: %s", addr, host,
                                g == EAI_NONAME ? "no such host" : gai_strerror(g));
        /* Prefer IPv4 for names with both, as Go does for "tcp". */
        struct addrinfo *pick = res;
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
            if (ai->ai_family == AF_INET) {
                pick = ai;
                break;
            }
        bool wildcard6 =
            pick->ai_family == AF_INET6 &&
            IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)pick->ai_addr)->sin6_addr);
        rc = bind_one(pick->ai_addr, pick->ai_addrlen, wildcard6, addr, &fd, err);
        freeaddrinfo(res);
    }
    if (rc != 0)
        return rc == BS_ENOENT ? BS_EIO : rc;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
        close(fd);
        return bs_error_set(err, BS_EIO, "listen tcp %s: getsockname: %s", addr, strerror(errno));
    }
    *out_port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                         : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    *out_fd = fd;
    return 0;
}

/* ------------------------------------------------------------- callbacks */

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
    (void)cls;
    (void)c;
    struct http_request *rq = calloc(1, sizeof(*rq));
    if (!rq)
        return NULL;
    rq->uri = strdup(uri ? uri : "");
    if (!rq->uri) {
        free(rq);
        return NULL;
    }
    bs_buf_init(&rq->body, 0);
    http_params_init(&rq->params);
    return rq;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)c;
    (void)toe;
    struct http_server *s = cls;
    struct http_request *rq = *con_cls;
    if (!rq)
        return;
    /* /-/quit: the goodbye has been sent (or the client left); now ask
     * the owner to shut down. */
    if (rq->quit_after && s->quit)
        s->quit(s->quit_ud);
    bs_buf_fini(&rq->body);
    http_params_fini(&rq->params);
    free(rq->uri);
    free(rq);
    *con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    BS_DEBUG(COMPONENT, "libmicrohttpd: %s", msg);
}

static bool is_form_content_type(const char *ct)
{
    static const char form[] = "application/x-www-form-urlencoded";
    if (!ct)
        return false;
    while (*ct == ' ')
        ct++;
    if (strncasecmp(ct, form, sizeof(form) - 1) != 0)
        return false;
    char next = ct[sizeof(form) - 1];
    return next == '\0' || next == ';' || next == ' ';
}

static enum MHD_Result send_response(struct MHD_Connection *c, struct http_response *rs)
{
    size_t len = rs->body.len;
    char *data = NULL;
    const char *enc = NULL;
    struct MHD_Response *r;

    if (rs->owned_body) {
        data = rs->owned_body;
        len = rs->owned_len;
        rs->owned_body = NULL;
        if (len == 0) {
            free(data);
            data = NULL;
        }
    } else if (len > 0) {
        data = bs_buf_steal(&rs->body, &len);
    }
    if (data && !rs->no_gzip && len >= HTTP_GZIP_MIN_BYTES &&
        http_accepts_gzip(MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Accept-Encoding"))) {
        char *gz;
        size_t gzlen;
        if (http_gzip(data, len, &gz, &gzlen) == 0) {
            free(data);
            data = gz;
            len = gzlen;
            enc = "gzip";
        }
    }
    if (data)
        r = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    else
        r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!r) {
        free(data);
        return MHD_NO;
    }
    if (rs->content_type)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, rs->content_type);
    if (enc)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_ENCODING, enc);
    if (len >= HTTP_GZIP_MIN_BYTES || enc)
        MHD_add_response_header(r, MHD_HTTP_HEADER_VARY, "Accept-Encoding");
    if (rs->location)
        MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, rs->location);
    if (rs->allow)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, rs->allow);
    for (size_t i = 0; i < rs->nextra; i++)
        MHD_add_response_header(r, rs->extra[i].name, rs->extra[i].value);
    if (rs->cors && MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin")) {
        MHD_add_response_header(r, "Access-Control-Allow-Headers",
                                "Accept, Authorization, Content-Type, Origin");
        MHD_add_response_header(r, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
        MHD_add_response_header(r, "Access-Control-Allow-Origin", "*");
        MHD_add_response_header(r, "Access-Control-Expose-Headers", "Date");
        MHD_add_response_header(r, MHD_HTTP_HEADER_VARY, "Origin");
    }
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)rs->status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result answer(struct http_server *s, struct http_request *rq,
                              struct MHD_Connection *c);

/* Prepare to read a raw route's body. A declared Content-Length over the
 * cap is refused at once when the client waits for "100 Continue" (the body
 * is then never sent); otherwise the body is dropped as it streams in and
 * answered 413 at the end, so the client reads the answer instead of a
 * reset connection. Returns false when the answer is due now. */
static bool raw_body_start(struct http_request *rq, struct MHD_Connection *c)
{
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    const char *expect = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Expect");
    if (!cl)
        return true;
    char *end = NULL;
    errno = 0;
    unsigned long long n = strtoull(cl, &end, 10);
    if (errno || end == cl || *end)
        return true; /* MHD refuses a malformed length itself */
    if (n > rq->body_cap) {
        rq->body_too_large = true;
        return !(expect && strcasecmp(expect, "100-continue") == 0);
    }
    bs_buf_reserve(&rq->body, (size_t)n + 1); /* best effort: appends grow it anyway */
    return true;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *c, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    (void)version;
    struct http_server *s = cls;
    struct http_request *rq = *con_cls;
    if (!rq)
        return MHD_NO; /* the URI callback ran out of memory: drop the connection */
    rq->srv = s;
    rq->conn = c;
    rq->method = method;
    rq->path = url;

    if (!rq->started) {
        rq->started = true;
        http_route_match_raw(s, rq);
        if (rq->raw) {
            rq->body_cap = rq->raw->max_body_bytes ? rq->raw->max_body_bytes : s->max_body_bytes;
            if (!(rq->raw->flags & HTTP_RAW_DISCARD_BODY) && !raw_body_start(rq, c))
                return answer(s, rq, c); /* 413 before reading the body */
            return MHD_YES;
        }
        if (rq->raw_405)
            return MHD_YES; /* a body is read and dropped */
        bool body_method = strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
                           strcmp(method, "PATCH") == 0;
        rq->body_is_form =
            body_method &&
            is_form_content_type(MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type"));
        return MHD_YES;
    }
    if (rq->answered) {
        *upload_data_size = 0; /* answered early (413): drop whatever comes */
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        if (rq->raw && !(rq->raw->flags & HTTP_RAW_DISCARD_BODY) && !rq->body_too_large) {
            /* Raw route: keep the body up to its cap, then only count it
             * as too large and drop the rest as it arrives. */
            if (*upload_data_size > rq->body_cap - rq->body.len) {
                rq->body_too_large = true;
                bs_buf_fini(&rq->body);
                bs_buf_init(&rq->body, 0);
            } else if (bs_buf_append(&rq->body, upload_data, *upload_data_size) != 0) {
                return MHD_NO;
            }
        } else if (rq->body_is_form && !rq->body_too_large) {
            if (rq->body.len + *upload_data_size > s->max_body_bytes) {
                rq->body_too_large = true;
                bs_buf_fini(&rq->body);
                bs_buf_init(&rq->body, 0);
            } else if (bs_buf_append(&rq->body, upload_data, *upload_data_size) != 0) {
                return MHD_NO;
            }
        }
        *upload_data_size = 0;
        return MHD_YES;
    }

    return answer(s, rq, c);
}

/* Answer rq once: parse parameters and route (built-in or raw). */
static enum MHD_Result answer(struct http_server *s, struct http_request *rq,
                              struct MHD_Connection *c)
{
    struct http_response rs;
    memset(&rs, 0, sizeof(rs));
    bs_buf_init(&rs.body, HTTP_MAX_RESPONSE_BYTES);
    int rc = 0;
    rq->answered = true;
    if (rq->raw || rq->raw_405) {
        struct http_raw_response raw;
        memset(&raw, 0, sizeof(raw));
        const char *q = strchr(rq->uri, '?');
        if (q) {
            const char *frag = strchr(q, '#');
            size_t qn = frag ? (size_t)(frag - q - 1) : strlen(q + 1);
            rc = http_params_parse(&rq->params, q + 1, qn);
        }
        if (rc == BS_ELIMIT)
            rc = http_text(&rs, 400, "too many query parameters\n");
        else if (rc == 0)
            rc = http_route_raw(s, rq, &rs, &raw);
        enum MHD_Result ret = rc == 0 ? send_response(c, &rs) : MHD_NO;
        free(rs.owned_body);
        http_raw_response_fini(&raw);
        bs_buf_fini(&rs.body);
        return ret;
    }
    if (rq->body_too_large) {
        rc = http_api_error(&rs, 413, "bad_data", "request body exceeds the limit of %zu bytes",
                            s->max_body_bytes);
    } else {
        /* Body pairs first: Go's FormValue prefers them to the query string. */
        if (rq->body_is_form && rq->body.len > 0)
            rc = http_params_parse(&rq->params, rq->body.data, rq->body.len);
        const char *q = strchr(rq->uri, '?');
        if (rc == 0 && q) {
            const char *frag = strchr(q, '#');
            size_t qn = frag ? (size_t)(frag - q - 1) : strlen(q + 1);
            rc = http_params_parse(&rq->params, q + 1, qn);
        }
        if (rc == BS_ELIMIT)
            rc = http_api_error(&rs, 400, "bad_data", "too many form parameters (more than %d)",
                                HTTP_MAX_PARAMS);
        else if (rc == 0)
            rc = http_route(s, rq, &rs);
    }
    enum MHD_Result ret = rc == 0 ? send_response(c, &rs) : MHD_NO;
    bs_buf_fini(&rs.body);
    return ret;
}

/* ------------------------------------------------------------- lifecycle */

void http_server_opts_default(struct http_server_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->listen_address = ":9090";
    o->lookback_ms = 5 * 60 * 1000;
    o->max_body_bytes = HTTP_DEFAULT_MAX_BODY;
    o->threads = 4;
    o->max_connections = HTTP_DEFAULT_MAX_CONNECTIONS;
    o->read_timeout_ms = 5 * 60 * 1000;
}

static char *dup_or(const char *s, const char *dflt)
{
    return bs_xstrdup(s ? s : dflt);
}

static void server_free(struct http_server *s)
{
    if (!s)
        return;
    free(s->version);
    free(s->revision);
    free(s->branch);
    free(s->build_user);
    free(s->build_date);
    free(s->storage_retention);
    free(s->config_yaml);
    for (size_t i = 0; i < 2 * s->nflags; i++)
        free(s->flags[i]);
    free(s->flags);
    for (size_t i = 0; i < s->nraw; i++) {
        free((char *)s->raw[i].method);
        free((char *)s->raw[i].path);
    }
    free(s->raw);
    free(s->raw_metrics);
    pthread_mutex_destroy(&s->config_mu);
    free(s);
}

int http_server_start(struct http_server **out, const struct http_server_opts *o,
                      struct bs_error *err)
{
    *out = NULL;
    if (!o || !o->listen_address || !o->db || !o->engine)
        return bs_error_set(err, BS_EINVAL,
                            "http server needs a listen address, a tsdb and a query engine");
    struct http_server *s = bs_xcalloc(1, sizeof(*s));
    pthread_mutex_init(&s->config_mu, NULL);
    s->listen_fd = -1;
    s->db = o->db;
    s->engine = o->engine;
    s->targets = o->targets;
    s->targets_ud = o->targets_ud;
    s->rules = o->rules;
    s->rules_ud = o->rules_ud;
    s->targets_metadata = o->targets_metadata;
    s->targets_metadata_ud = o->targets_metadata_ud;
    s->metadata = o->metadata;
    s->metadata_ud = o->metadata_ud;
    s->alerts = o->alerts;
    s->alerts_ud = o->alerts_ud;
    s->reload = o->reload;
    s->reload_ud = o->reload_ud;
    s->quit = o->quit;
    s->quit_ud = o->quit_ud;
    if (o->nraw_routes > 0) {
        for (size_t i = 0; i < o->nraw_routes; i++) {
            const struct http_raw_route *r = &o->raw_routes[i];
            if (!r->fn || !r->method || !r->method[0] || !r->path || r->path[0] != '/') {
                server_free(s);
                return bs_error_set(err, BS_EINVAL,
                                    "raw route %zu needs a method, a path starting with '/' "
                                    "and a callback",
                                    i);
            }
        }
        s->raw = bs_xcalloc(o->nraw_routes, sizeof(*s->raw));
        s->raw_metrics = bs_xcalloc(o->nraw_routes * HTTP_METRIC_SLOTS, sizeof(*s->raw_metrics));
        for (size_t i = 0; i < o->nraw_routes; i++) {
            s->raw[i] = o->raw_routes[i];
            s->raw[i].method = bs_xstrdup(o->raw_routes[i].method);
            s->raw[i].path = bs_xstrdup(o->raw_routes[i].path);
        }
        s->nraw = o->nraw_routes;
    }
    s->version = dup_or(o->version, BS_VERSION);
    s->revision = dup_or(o->revision, "");
    s->branch = dup_or(o->branch, "");
    s->build_user = dup_or(o->build_user, "");
    s->build_date = dup_or(o->build_date, "");
    s->storage_retention = dup_or(o->storage_retention, "");
    s->config_yaml = dup_or(o->config_yaml, "");
    s->reload_success = true;
    s->lookback_ms = o->lookback_ms > 0 ? o->lookback_ms : 5 * 60 * 1000;
    s->admin_api = o->enable_admin_api;
    s->max_body_bytes = o->max_body_bytes ? o->max_body_bytes : HTTP_DEFAULT_MAX_BODY;
    s->start_ms = bs_now_ms();
    s->config_time_ms = s->start_ms;
    atomic_store(&s->ready, false);
    if (o->flags) {
        size_t n = 0;
        while (o->flags[2 * n] && o->flags[2 * n + 1])
            n++;
        s->flags = bs_xcalloc(2 * n + 1, sizeof(char *));
        for (size_t i = 0; i < 2 * n; i++)
            s->flags[i] = bs_xstrdup(o->flags[i]);
        s->nflags = n;
    }

    int rc = bind_address(o->listen_address, &s->listen_fd, &s->port, err);
    if (rc != 0) {
        server_free(s);
        return rc;
    }
    unsigned threads = o->threads ? o->threads : 4;
    unsigned max_conns = o->max_connections ? o->max_connections : HTTP_DEFAULT_MAX_CONNECTIONS;
    int64_t timeout_ms = o->read_timeout_ms > 0 ? o->read_timeout_ms : 5 * 60 * 1000;
    unsigned timeout_s = (unsigned)((timeout_ms + 999) / 1000);
    s->daemon = MHD_start_daemon(
        MHD_USE_AUTO | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG, 0, NULL,
        NULL, on_access, s, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)s->listen_fd,
        MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_URI_LOG_CALLBACK, on_uri, (void *)s,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, (void *)s, MHD_OPTION_CONNECTION_TIMEOUT,
        timeout_s, MHD_OPTION_CONNECTION_LIMIT, max_conns,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(256 * 1024), MHD_OPTION_EXTERNAL_LOGGER,
        on_mhd_log, (void *)s, MHD_OPTION_END);
    if (!s->daemon) {
        close(s->listen_fd);
        rc = bs_error_set(err, BS_EIO, "listen tcp %s: cannot start the HTTP server",
                          o->listen_address);
        server_free(s);
        return rc;
    }
    BS_INFO(COMPONENT, "Start listening for connections on %s (port %d)", o->listen_address,
            s->port);
    *out = s;
    return 0;
}

int http_server_port(const struct http_server *s)
{
    return s->port;
}

void http_server_set_ready(struct http_server *s, bool ready)
{
    atomic_store(&s->ready, ready);
}

void http_server_set_config(struct http_server *s, const char *yaml, bool reload_success)
{
    char *copy = yaml ? bs_xstrdup(yaml) : NULL;
    pthread_mutex_lock(&s->config_mu);
    if (copy) {
        free(s->config_yaml);
        s->config_yaml = copy;
    }
    s->reload_success = reload_success;
    if (reload_success)
        s->config_time_ms = bs_now_ms();
    pthread_mutex_unlock(&s->config_mu);
}

void http_server_stop(struct http_server *s)
{
    if (!s)
        return;
    if (s->daemon) {
        MHD_socket fd = MHD_quiesce_daemon(s->daemon);
        MHD_stop_daemon(s->daemon);
        if (fd != MHD_INVALID_SOCKET)
            close(fd);
    } else if (s->listen_fd >= 0) {
        close(s->listen_fd);
    }
    server_free(s);
}
