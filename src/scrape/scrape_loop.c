/* SPDX-License-Identifier: Apache-2.0
 *
 * The scrape loop: one thread that scrapes every target.
 *
 * Why one thread. Prometheus runs a goroutine per target; a C thread per
 * target would cost a stack and a wakeup each and make thousands of targets
 * expensive. Almost all of a scrape is waiting on the network, so a single
 * libcurl multi handle does the waiting for all of them: the thread sleeps
 * in curl_multi_poll() until a socket is ready, the next target is due, or
 * a config apply wakes it (curl_multi_wakeup). A slow or dead target only
 * occupies its own transfer; CURLOPT_TIMEOUT_MS = scrape_timeout ends it,
 * and the other transfers proceed meanwhile.
 *
 * Schedule. Each target scrapes every scrape_interval at a fixed phase: the
 * first scrape happens at the first wall-clock instant t with
 * t mod interval == hash(target) mod interval, so targets spread over the
 * interval and keep their phase across restarts, as in Prometheus. Later
 * scrapes follow on the monotonic clock; missed ticks (a scrape still in
 * flight, a stalled thread) are skipped, never bunched up.
 *
 * One scrape, once its body arrived:
 *   0. The response's Content-Type picks the parser, as in Prometheus 3:
 *      OpenMetrics or 0.0.4 text, else the job's fallback_scrape_protocol,
 *      else the scrape fails (choose_format). The request asked for the
 *      job's scrape_protocols in Prometheus's Accept syntax (accept_header).
 *   1. One pass parses the body and appends each sample through one
 *      appender (body_ingest). A parse error fails the scrape (Prometheus
 *      semantics): the appender is rolled back, so nothing of a bad body is
 *      stored. The pass also hashes the TYPE/HELP/UNIT metadata; when a
 *      successful scrape's hash differs from that of the set published in
 *      the target's cache (for the metadata API), a metadata-only pass
 *      builds the new set and publishes it if different. A failed scrape
 *      keeps the previous metadata.
 *   2. The scrape cache (cache.c) maps the raw series text to the tsdb ref,
 *      or to "dropped", so a series seen before costs one hash lookup, one
 *      memcmp and an append by ref; only new series have their labels
 *      merged with the target's (honor_labels, exported_*), run through
 *      metric_relabel_configs and checked against the label limits.
 *      sample_limit counts what relabeling kept; past it nothing more is
 *      appended but counting goes on, and the scrape fails (as every limit
 *      does: rollback, up=0, staleness, Prometheus's message in
 *      lastError). A parse error anywhere in the body wins over a limit or
 *      relabeling error before it (the pass keeps parsing after one), as
 *      when bodies were validated in a separate first pass. Per-sample rejections (out of order, duplicate, out of
 *      bounds) are counted and do not fail the scrape.
 *   3. Staleness: the series of the previous successful scrape that this
 *      one did not see get a stale marker at this scrape's timestamp. A
 *      failed scrape marks every previous series stale. Series exposed with
 *      an explicit timestamp (honored) take no part, as in Prometheus. No
 *      sets are built: each cache slot carries the generation (scrape
 *      iteration) that last saw it and two flags, "in this scrape" and "in
 *      the previous successful one", and one walk over the slot array
 *      after the scrape turns the first into the second and evicts what a
 *      successful scrape did not see.
 *   4. The synthetic series: up, scrape_duration_seconds,
 *      scrape_samples_scraped, scrape_samples_post_metric_relabeling,
 *      scrape_series_added.
 *   5. One commit. If it fails, the scrape failed: a second, small batch
 *      writes up=0 and the staleness markers, and the cache is dropped (so
 *      is it after a limit failure; a parse error keeps it: a series that
 *      a rolled back batch created stays in the head, so its ref is valid).
 * Before a transfer starts: a target_limit verdict of the job fails the
 * scrape without a request; credentials files are re-read (their contents
 * may change between scrapes); the job's HTTP client and TLS settings were
 * put on the easy handle when it was created (target_setup_easy, which
 * also explains how tls_config.server_name is done with libcurl). The body
 * limit is enforced in the write callback, which ends the transfer as soon
 * as the body reaches it.
 *
 * Parse work per scrape is bounded by the body size limit; parsing happens
 * on this thread for now, which delays other targets' starts by at most
 * that much but never their transfers' deadlines.
 *
 * A removed target (config apply) is taken off the multi handle; its series
 * and its synthetic series get stale markers ("end of run"). On shutdown no
 * markers are written, as in Prometheus.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "scrape/scrape_int.h"

struct loop {
    struct scrape_manager *m;
    struct scrape_target **run; /* started targets; borrowed */
    size_t nrun, cap;
    /* The started targets not in flight, as a binary min-heap by next_ms:
     * what is due and how long to sleep cost O(log n) per scrape instead
     * of a walk over every target at every wakeup. */
    struct scrape_target **heap;
    size_t nheap, heap_cap;
    uint64_t targets_gen; /* the manager's targets_gen last looked at */
    struct labels_builder lb; /* scratch for label merging */
    size_t body_limit;
};

static int64_t mono_ms(void)
{
    return bs_monotonic_ns() / 1000000;
}

/* --------------------------------------------------------- curl callbacks */

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    struct scrape_target *t = ud;
    size_t len = size * n;
    /* Prometheus reads through io.LimitReader(limit) and fails when it got
     * limit bytes: a body of exactly the limit fails too. Returning short
     * ends the transfer here, without reading the rest. */
    if (t->body_limit && len >= t->body_limit - t->body.len) {
        t->body_limit_hit = true;
        return 0;
    }
    int rc = bs_buf_append(&t->body, p, len);
    if (rc != 0) {
        if (rc == BS_ELIMIT)
            t->body_limit_hit = true;
        return 0; /* any short count makes curl fail with CURLE_WRITE_ERROR */
    }
    return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    struct scrape_target *t = ud;
    size_t len = size * n;
    /* "HTTP/1.1 500 Internal Server Error\r\n": keep the reason phrase of the
     * last status line (redirects produce several). */
    if (len > 5 && memcmp(p, "HTTP/", 5) == 0) {
        const char *end = p + len;
        const char *sp = memchr(p, ' ', len);
        const char *r = NULL;
        if (sp)
            r = memchr(sp + 1, ' ', (size_t)(end - sp - 1));
        t->reason[0] = '\0';
        if (r) {
            r++;
            const char *e = end;
            while (e > r && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' '))
                e--;
            size_t rl = (size_t)(e - r);
            if (rl >= sizeof(t->reason))
                rl = sizeof(t->reason) - 1;
            memcpy(t->reason, r, rl);
            t->reason[rl] = '\0';
        }
    }
    return len;
}

/* Go's http.StatusText for the codes a target plausibly returns, used when
 * the status line carried no reason phrase (HTTP/2). */
static const char *status_text(long code)
{
    switch (code) {
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 408:
        return "Request Timeout";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "";
    }
}

/* ------------------------------------------------------------ transfers */

/* Read a credentials file as Prometheus does at every request: whole, with
 * surrounding white space trimmed. Returns a heap string, or NULL with
 * errmsg set ("unable to read <what> <path>: open <path>: <reason>"). */
static char *read_secret_file(const char *path, const char *what, char *errmsg, size_t cap)
{
    FILE *f = fopen(path, "rb");
    char e[128];
    if (!f) {
        snprintf(e, sizeof(e), "%s", strerror(errno));
        if (e[0] >= 'A' && e[0] <= 'Z' && !(e[1] >= 'A' && e[1] <= 'Z'))
            e[0] = (char)(e[0] - 'A' + 'a'); /* Go's wording */
        snprintf(errmsg, cap, "unable to read %s %s: open %s: %s", what, path, path, e);
        return NULL;
    }
    struct bs_buf b;
    bs_buf_init(&b, SCRAPE_SECRET_FILE_MAX);
    char chunk[4096];
    size_t r;
    int rc = 0;
    while (rc == 0 && (r = fread(chunk, 1, sizeof(chunk), f)) > 0)
        rc = bs_buf_append(&b, chunk, r);
    bool bad = ferror(f) || rc != 0;
    fclose(f);
    if (bad) {
        snprintf(errmsg, cap, "unable to read %s %s: %s", what, path,
                 rc == BS_ELIMIT ? "file too large" : "read error");
        bs_buf_fini(&b);
        return NULL;
    }
    char *s = b.data ? b.data : "";
    size_t len = b.len;
    while (len && strchr(" \t\r\n\v\f", s[len - 1]))
        len--;
    size_t off = 0;
    while (off < len && strchr(" \t\r\n\v\f", s[off]))
        off++;
    char *out = strndup(s + off, len - off);
    bs_buf_fini(&b);
    if (!out)
        snprintf(errmsg, cap, "unable to read %s %s: out of memory", what, path);
    return out;
}

/* ------------------------------------------------- content negotiation */

/* Prometheus 3's ScrapeProtocolsHeaders, with the escaping parameter its
 * acceptHeader adds to the 1.0.0 formats (bongsu reads UTF-8 names quoted,
 * so names need no escaping: "allow-utf-8"). PrometheusProto is NULL:
 * bongsu has no protobuf parser and never asks for it. */
static const char *protocol_accept(enum config_scrape_protocol p)
{
    switch (p) {
    case CONFIG_PROTO_OPENMETRICS_1_0_0:
        return "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8";
    case CONFIG_PROTO_OPENMETRICS_0_0_1:
        return "application/openmetrics-text;version=0.0.1";
    case CONFIG_PROTO_PROMETHEUS_1_0_0:
        return "text/plain;version=1.0.0;escaping=allow-utf-8";
    case CONFIG_PROTO_PROMETHEUS_0_0_4:
        return "text/plain;version=0.0.4";
    default:
        return NULL;
    }
}

/* The job's protocols, or Prometheus 3's defaults when it has none. */
static struct config_scrape_protocols job_protocols(const struct scrape_job *j)
{
    struct config_scrape_protocols p = j->protocols;
    if (p.n == 0) {
        p.list[0] = CONFIG_PROTO_OPENMETRICS_1_0_0;
        p.list[1] = CONFIG_PROTO_OPENMETRICS_0_0_1;
        p.list[2] = CONFIG_PROTO_PROMETHEUS_1_0_0;
        p.list[3] = CONFIG_PROTO_PROMETHEUS_0_0_4;
        p.n = 4;
    }
    return p;
}

/* Write "Accept: ..." for the protocols into out, as Prometheus's
 * acceptHeader: the protocols in order with q=0.6, 0.5, ... (the weight
 * starts at the number of known protocols, five, plus one), then the
 * catch-all star/star with the next weight. A protocol left out (PrometheusProto) still
 * uses up its weight, so the others keep Prometheus's values. */
static void accept_header(const struct config_scrape_protocols *p, char *out, size_t cap)
{
    int weight = CONFIG_SCRAPE_PROTOCOLS_MAX + 1;
    size_t o = (size_t)snprintf(out, cap, "Accept: ");
    for (size_t i = 0; i < p->n && o < cap; i++, weight--) {
        const char *h = protocol_accept(p->list[i]);
        if (h)
            o += (size_t)snprintf(out + o, cap - o, "%s;q=0.%d,", h, weight);
    }
    if (o < cap)
        snprintf(out + o, cap - o, "*/*;q=0.%d", weight);
}

/* Go's mime token characters: ASCII printable minus space and tspecials. */
static bool mime_token_char(char c)
{
    return c > 0x20 && c < 0x7f && !strchr("()<>@,;:\\\"/[]?=", c);
}

static bool mime_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Go's mime.ParseMediaType, as far as Prometheus uses it: on success the
 * lower-cased media type ("type/subtype", or a lone token) goes to mt and
 * NULL is returned; otherwise Go's error text. Parameters are checked for
 * syntax and duplicates only. */
static const char *mime_parse(const char *v, char *mt, size_t cap)
{
    const char *semi = strchr(v, ';');
    const char *b = v, *e = semi ? semi : v + strlen(v);
    while (b < e && mime_space(*b))
        b++;
    while (e > b && mime_space(e[-1]))
        e--;
    size_t n = (size_t)(e - b);
    if (n >= cap)
        n = cap - 1;
    for (size_t i = 0; i < n; i++)
        mt[i] = (char)((b[i] >= 'A' && b[i] <= 'Z') ? b[i] - 'A' + 'a' : b[i]);
    mt[n] = '\0';
    const char *p = mt;
    while (*p && mime_token_char(*p))
        p++;
    if (p == mt)
        return "mime: no media type";
    if (*p) {
        if (*p != '/')
            return "mime: expected slash after first token";
        const char *sub = ++p;
        while (*p && mime_token_char(*p))
            p++;
        if (p == sub)
            return "mime: expected token after slash";
        if (*p)
            return "mime: unexpected content after media subtype";
    }
    /* Parameters: ; key = token-or-quoted-string, repeated. */
    const char *r = semi;
    char keys[16][64];
    size_t nkeys = 0;
    while (r && *r) {
        while (mime_space(*r))
            r++;
        if (!*r)
            break;
        const char *start = r;
        bool bad = *r != ';';
        const char *k = NULL;
        size_t kl = 0;
        if (!bad) {
            r++;
            while (mime_space(*r))
                r++;
            k = r;
            while (*r && mime_token_char(*r))
                r++;
            kl = (size_t)(r - k);
            while (mime_space(*r))
                r++;
            bad = kl == 0 || *r != '=';
        }
        if (!bad) {
            r++;
            while (mime_space(*r))
                r++;
            if (*r == '"') {
                r++;
                while (*r && *r != '"')
                    r += (*r == '\\' && r[1]) ? 2 : 1;
                bad = *r != '"';
                if (!bad)
                    r++;
            } else {
                const char *vs = r;
                while (*r && mime_token_char(*r))
                    r++;
                bad = r == vs;
            }
        }
        if (bad) {
            /* Trailing semicolons are not an error. */
            const char *t = start;
            while (mime_space(*t))
                t++;
            if (*t == ';') {
                t++;
                while (mime_space(*t))
                    t++;
                if (!*t)
                    break;
            }
            return "mime: invalid media parameter";
        }
        for (size_t i = 0; i < nkeys; i++)
            if (strlen(keys[i]) == kl && strncasecmp(keys[i], k, kl) == 0)
                return "mime: duplicate parameter name";
        if (nkeys < 16 && kl < sizeof(keys[0])) {
            memcpy(keys[nkeys], k, kl);
            keys[nkeys++][kl] = '\0';
        }
    }
    return NULL;
}

/* The media type Prometheus's HeaderMediaType gives a fallback protocol. */
static const char *protocol_media_type(enum config_scrape_protocol p)
{
    switch (p) {
    case CONFIG_PROTO_OPENMETRICS_1_0_0:
    case CONFIG_PROTO_OPENMETRICS_0_0_1:
        return "application/openmetrics-text";
    case CONFIG_PROTO_PROMETHEUS_1_0_0:
    case CONFIG_PROTO_PROMETHEUS_0_0_4:
        return "text/plain";
    case CONFIG_PROTO_PROMETHEUS_PROTO:
        return "application/vnd.google.protobuf";
    default:
        return "";
    }
}

/* Choose the parser for a response, as Prometheus 3's textparse.New and
 * extractMediaType: by the media type of Content-Type (ctype, NULL when
 * absent); a missing, unparsable or unknown one falls back to the job's
 * fallback_scrape_protocol, and without one fails the scrape with
 * Prometheus's message. 0 with *fmt set, or BS_EPARSE with errmsg set. */
static int choose_format(const char *ctype, enum config_scrape_protocol fallback,
                         enum expfmt_format *fmt, char *errmsg, size_t cap)
{
    const char *fb = protocol_media_type(fallback);
    char mt[128];
    const char *use = NULL;
    if (!ctype || !*ctype) {
        if (!*fb) {
            snprintf(errmsg, cap,
                     "non-compliant scrape target sending blank Content-Type and no "
                     "fallback_scrape_protocol specified for target");
            return BS_EPARSE;
        }
        use = fb;
    } else {
        const char *perr = mime_parse(ctype, mt, sizeof(mt));
        if (perr) {
            if (!*fb) {
                snprintf(errmsg, cap,
                         "cannot parse Content-Type \"%.200s\" and no fallback_scrape_protocol "
                         "for target\n%s",
                         ctype, perr);
                return BS_EPARSE;
            }
            use = fb;
        } else if (strcmp(mt, "application/openmetrics-text") == 0 ||
                   strcmp(mt, "text/plain") == 0 ||
                   strcmp(mt, "application/vnd.google.protobuf") == 0) {
            use = mt;
        } else if (!*fb) {
            snprintf(errmsg, cap,
                     "received unsupported Content-Type \"%.200s\" and no "
                     "fallback_scrape_protocol specified for target",
                     ctype);
            return BS_EPARSE;
        } else {
            use = fb;
        }
    }
    if (strcmp(use, "application/openmetrics-text") == 0) {
        *fmt = EXPFMT_FORMAT_OPENMETRICS;
        return 0;
    }
    if (strcmp(use, "text/plain") == 0) {
        *fmt = EXPFMT_FORMAT_TEXT;
        return 0;
    }
    snprintf(errmsg, cap,
             "received Content-Type \"%.200s\": the protobuf exposition format is not supported",
             ctype && *ctype ? ctype : use);
    return BS_EPARSE;
}

/* (Re)build the request headers and credentials of t from its job: the
 * fixed headers, Authorization (credentials read from their file now, if
 * that is where they live), Host when tls server_name redirects the
 * connection, and basic auth. 0, or an error with errmsg set. */
static int target_setup_auth(struct scrape_target *t, char *errmsg, size_t cap)
{
    const struct config_http_client *h = &t->job->http;
    char hdr[BS_FLOAT_FMT_MAX + 64], secs[BS_FLOAT_FMT_MAX], accept[512];
    struct curl_slist *l = NULL, *n;
    char *cred = NULL, *pass = NULL;
    int rc = 0;

    bs_float_format((double)t->timeout_ms / 1000.0, secs);
    snprintf(hdr, sizeof(hdr), "X-Prometheus-Scrape-Timeout-Seconds: %s", secs);
    struct config_scrape_protocols protos = job_protocols(t->job);
    accept_header(&protos, accept, sizeof(accept));
    if (!(l = curl_slist_append(NULL, accept)) || !(n = curl_slist_append(l, hdr)))
        goto nomem;
    if (h->has_authorization) {
        if (h->auth_credentials_file) {
            cred = read_secret_file(h->auth_credentials_file, "authorization credentials file",
                                    errmsg, cap);
            if (!cred) {
                rc = BS_EIO;
                goto fail;
            }
        }
        const char *c = cred ? cred : h->auth_credentials ? h->auth_credentials : "";
        size_t need = strlen(h->auth_type) + strlen(c) + 32;
        char *a = malloc(need);
        if (!a)
            goto nomem;
        snprintf(a, need, "Authorization: %s %s", h->auth_type, c);
        n = curl_slist_append(l, a);
        free(a);
        if (!n)
            goto nomem;
    }
    if (t->connect_url) {
        const char *addr = labels_get(t->full, "__address__");
        size_t need = strlen(addr) + 8;
        char *a = malloc(need);
        if (!a)
            goto nomem;
        snprintf(a, need, "Host: %s", addr);
        n = curl_slist_append(l, a);
        free(a);
        if (!n)
            goto nomem;
    }
    if (h->has_basic_auth) {
        if (h->password_file) {
            pass = read_secret_file(h->password_file, "basic auth password file", errmsg, cap);
            if (!pass) {
                rc = BS_EIO;
                goto fail;
            }
        }
        curl_easy_setopt(t->easy, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(t->easy, CURLOPT_USERNAME, h->username ? h->username : "");
        curl_easy_setopt(t->easy, CURLOPT_PASSWORD, pass ? pass : h->password ? h->password : "");
    }
    curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, l);
    curl_slist_free_all(t->headers);
    t->headers = l;
    free(cred);
    free(pass);
    return 0;
nomem:
    snprintf(errmsg, cap, "out of memory");
    rc = BS_ENOMEM;
fail:
    curl_slist_free_all(l);
    free(cred);
    free(pass);
    return rc;
}

/* tls_config.server_name. Go sets it as the SNI name and the name the
 * certificate must match, while still connecting to __address__ and
 * sending Host: __address__. libcurl takes both names from the URL, so the
 * request goes to https://<server_name>:<port>/..., CURLOPT_CONNECT_TO
 * sends the connection to the real address, and a Host header restores
 * the address Go would send. Returns 0, or BS_ENOMEM. */
static int target_setup_server_name(struct scrape_target *t, struct curl_slist **connect_to)
{
    const struct config_tls *tls = &t->job->http.tls;
    const char *scheme = labels_get(t->full, "__scheme__");
    *connect_to = NULL;
    if (!tls->server_name || !scheme || strcmp(scheme, "https") != 0)
        return 0;
    const char *addr = labels_get(t->full, "__address__");
    const char *colon = strrchr(addr, ':');
    if (!colon || (addr[0] == '[' && colon < strchr(addr, ']')))
        return 0; /* no port: cannot happen after PopulateLabels */
    const char *port = colon + 1;
    const char *sn = tls->server_name;
    bool v6 = strchr(sn, ':') != NULL;
    size_t hostlen = (size_t)(colon - addr);
    const char *rest = t->url + strlen(scheme) + 3 + strlen(addr); /* path and query */
    size_t need = strlen(sn) + strlen(port) + strlen(rest) + 16;
    char *u = malloc(need);
    size_t cneed = strlen(sn) + hostlen + 2 * strlen(port) + 8;
    char *c = malloc(cneed);
    if (!u || !c) {
        free(u);
        free(c);
        return BS_ENOMEM;
    }
    snprintf(u, need, "https://%s%s%s:%s%s", v6 ? "[" : "", sn, v6 ? "]" : "", port, rest);
    snprintf(c, cneed, "%s%s%s:%s:%.*s:%s", v6 ? "[" : "", sn, v6 ? "]" : "", port, (int)hostlen,
             addr, port);
    *connect_to = curl_slist_append(NULL, c);
    free(c);
    if (!*connect_to) {
        free(u);
        return BS_ENOMEM;
    }
    t->connect_url = u;
    return 0;
}

static long tls_version_opt(enum config_tls_version v, bool max)
{
    switch (v) {
    case CONFIG_TLS_10:
        return max ? CURL_SSLVERSION_MAX_TLSv1_0 : CURL_SSLVERSION_TLSv1_0;
    case CONFIG_TLS_11:
        return max ? CURL_SSLVERSION_MAX_TLSv1_1 : CURL_SSLVERSION_TLSv1_1;
    case CONFIG_TLS_12:
        return max ? CURL_SSLVERSION_MAX_TLSv1_2 : CURL_SSLVERSION_TLSv1_2;
    case CONFIG_TLS_13:
        return max ? CURL_SSLVERSION_MAX_TLSv1_3 : CURL_SSLVERSION_TLSv1_3;
    default:
        /* Go's client default minimum is TLS 1.2; no maximum. */
        return max ? CURL_SSLVERSION_MAX_DEFAULT : CURL_SSLVERSION_TLSv1_2;
    }
}

static void set_blob(CURL *e, CURLoption opt, const char *pem)
{
    struct curl_blob blob = {(void *)(uintptr_t)pem, strlen(pem), CURL_BLOB_COPY};
    curl_easy_setopt(e, opt, &blob);
}

void scrape_curl_client_opts(CURL *e, const struct config_http_client *h)
{
    const struct config_tls *tls = &h->tls;
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, h->follow_redirects ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, 10L);
    /* HTTP/2 only through TLS ALPN, as Go's transport does it. */
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
                     h->enable_http2 ? (long)CURL_HTTP_VERSION_2TLS : (long)CURL_HTTP_VERSION_1_1);
    /* Prometheus ignores the proxy environment variables: "" disables them. */
    curl_easy_setopt(e, CURLOPT_PROXY, h->proxy_url ? h->proxy_url : "");
    curl_easy_setopt(e, CURLOPT_SSLVERSION,
                     tls_version_opt(tls->min_version, false) |
                         tls_version_opt(tls->max_version, true));
    if (tls->ca_file || tls->ca) {
        /* Only the configured CA, as Go's RootCAs; no system store. */
        curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
        if (tls->ca_file)
            curl_easy_setopt(e, CURLOPT_CAINFO, tls->ca_file);
        else
            set_blob(e, CURLOPT_CAINFO_BLOB, tls->ca);
#if LIBCURL_VERSION_NUM >= 0x075700
        /* Re-read the CA file for new connections, so a renewed CA is used. */
        curl_easy_setopt(e, CURLOPT_CA_CACHE_TIMEOUT, 0L);
#endif
    }
    if (tls->cert_file)
        curl_easy_setopt(e, CURLOPT_SSLCERT, tls->cert_file);
    else if (tls->cert)
        set_blob(e, CURLOPT_SSLCERT_BLOB, tls->cert);
    if (tls->key_file)
        curl_easy_setopt(e, CURLOPT_SSLKEY, tls->key_file);
    else if (tls->key)
        set_blob(e, CURLOPT_SSLKEY_BLOB, tls->key);
    if (tls->insecure_skip_verify) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
}

/* The connection pool of t (SCRAPE_CONN_POOLS), created on first use; NULL
 * when it cannot be created (the multi handle's own pool is used then). */
static CURLSH *target_pool(struct scrape_manager *m, const struct scrape_target *t)
{
    size_t i = (size_t)(t->offset_hash % SCRAPE_CONN_POOLS);
    if (!m->pools[i]) {
        CURLSH *sh = curl_share_init();
        if (sh && curl_share_setopt(sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT) != CURLSHE_OK) {
            curl_share_cleanup(sh);
            sh = NULL;
        }
        m->pools[i] = sh;
    }
    return m->pools[i];
}

/* Create and configure t's easy handle from the target and its job's HTTP
 * client settings. 0, or an error with errmsg set. */
static int target_setup_easy(struct scrape_manager *m, struct scrape_target *t, char *errmsg,
                             size_t cap)
{
    const struct config_http_client *h = &t->job->http;
    struct curl_slist *connect_to = NULL;
    CURL *e = curl_easy_init();
    if (!e || target_setup_server_name(t, &connect_to) != 0) {
        if (e)
            curl_easy_cleanup(e);
        snprintf(errmsg, cap, "out of memory");
        return BS_ENOMEM;
    }
    t->easy = e;
    int rc = target_setup_auth(t, errmsg, cap);
    if (rc != 0 && rc != BS_EIO) {
        curl_slist_free_all(connect_to);
        curl_easy_cleanup(e);
        t->easy = NULL;
        return rc;
    }
    t->headers_dynamic = h->auth_credentials_file || h->password_file;
    curl_easy_setopt(e, CURLOPT_URL, t->connect_url ? t->connect_url : t->url);
    if (connect_to) {
        curl_easy_setopt(e, CURLOPT_CONNECT_TO, connect_to);
        t->connect_to = connect_to;
    }
    curl_easy_setopt(e, CURLOPT_USERAGENT, "bongsu/" BS_VERSION);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "gzip");
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)t->timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    scrape_curl_client_opts(e, h);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, t);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->curl_err);
    curl_easy_setopt(e, CURLOPT_PRIVATE, t);
    CURLSH *pool = target_pool(m, t);
    if (pool)
        curl_easy_setopt(e, CURLOPT_SHARE, pool);
    return rc;
}

/* First scrape at the next wall-clock instant in the target's phase. */
static void target_schedule_first(struct scrape_target *t)
{
    int64_t iv = t->interval_ms > 0 ? t->interval_ms : 1;
    int64_t now = bs_now_ms();
    int64_t off = (int64_t)(t->offset_hash % (uint64_t)iv) - now % iv;
    if (off < 0)
        off += iv;
    t->next_ms = mono_ms() + off;
}

static void scrape_process(struct loop *L, struct scrape_target *t, bool fetched,
                           enum expfmt_format fmt, char *errmsg);

static void scrape_start(struct loop *L, struct scrape_target *t, int64_t now)
{
    int64_t iv = t->interval_ms > 0 ? t->interval_ms : 1;
    t->next_ms += iv;
    if (t->next_ms <= now)
        t->next_ms += ((now - t->next_ms) / iv + 1) * iv;

    bs_buf_reset(&t->body);
    int64_t jl = t->job->limits.body_size_limit;
    t->body_limit = jl > 0 ? (size_t)jl : L->body_limit;
    t->body.max = t->body_limit;
    t->body_limit_hit = false;
    t->reason[0] = '\0';
    t->curl_err[0] = '\0';
    t->start_wall_ms = bs_now_ms();
    t->start_mono_ns = bs_monotonic_ns();
    bs_metric_add(scrape_metrics.scrapes, 1);

    char errmsg[512], why[400];
    /* target_limit: fail without a request, as Prometheus's forced error. */
    pthread_mutex_lock(&L->m->mu);
    snprintf(errmsg, sizeof(errmsg), "%s", t->forced_error);
    pthread_mutex_unlock(&L->m->mu);
    if (errmsg[0]) {
        scrape_process(L, t, false, EXPFMT_FORMAT_TEXT, errmsg);
        return;
    }
    const char *scheme = labels_get(t->full, "__scheme__");
    if (!scheme || (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
        snprintf(errmsg, sizeof(errmsg), "Get \"%s\": unsupported protocol scheme \"%s\"", t->url,
                 scheme ? scheme : "");
        scrape_process(L, t, false, EXPFMT_FORMAT_TEXT, errmsg);
        return;
    }
    int src = 0;
    if (!t->easy)
        src = target_setup_easy(L->m, t, why, sizeof(why));
    else if (t->headers_dynamic)
        src = target_setup_auth(t, why, sizeof(why));
    if (src != 0) {
        snprintf(errmsg, sizeof(errmsg), "Get \"%s\": %s", t->url, why);
        scrape_process(L, t, false, EXPFMT_FORMAT_TEXT, errmsg);
        return;
    }
    CURLMcode mc = curl_multi_add_handle(L->m->multi, t->easy);
    if (mc != CURLM_OK) {
        snprintf(errmsg, sizeof(errmsg), "Get \"%s\": %s", t->url, curl_multi_strerror(mc));
        scrape_process(L, t, false, EXPFMT_FORMAT_TEXT, errmsg);
        return;
    }
    t->in_flight = true;
}

/* A transfer ended with cc: decide success or the error text, then process. */
static void scrape_finish(struct loop *L, struct scrape_target *t, CURLcode cc)
{
    char errmsg[512] = "";
    long status = 0;
    bool ok = false;
    enum expfmt_format fmt = EXPFMT_FORMAT_TEXT;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    if (t->body_limit_hit) {
        snprintf(errmsg, sizeof(errmsg), "body size limit exceeded");
        bs_metric_add(scrape_metrics.body_limit, 1);
    } else if (cc == CURLE_OPERATION_TIMEDOUT) {
        snprintf(errmsg, sizeof(errmsg), "Get \"%s\": context deadline exceeded", t->url);
    } else if (cc != CURLE_OK) {
        snprintf(errmsg, sizeof(errmsg), "Get \"%s\": %s", t->url,
                 t->curl_err[0] ? t->curl_err : curl_easy_strerror(cc));
    } else if (status != 200) {
        snprintf(errmsg, sizeof(errmsg), "server returned HTTP status %ld %s", status,
                 t->reason[0] ? t->reason : status_text(status));
    } else {
        /* The parser follows the response's Content-Type. */
        char *ctype = NULL;
        curl_easy_getinfo(t->easy, CURLINFO_CONTENT_TYPE, &ctype);
        ok =
            choose_format(ctype, job_protocols(t->job).fallback, &fmt, errmsg, sizeof(errmsg)) == 0;
    }
    scrape_process(L, t, ok, fmt, errmsg);
    /* Do not keep a huge buffer around for the next scrape. */
    if (t->body.cap > ((size_t)1 << 20)) {
        bs_buf_fini(&t->body);
        bs_buf_init(&t->body, L->body_limit);
    }
}

/* ------------------------------------------------------------- appending */

/* Append by ref when known, falling back to the labels when the tsdb does
 * not know the ref (any more); *ref is updated on success. */
static int add_cached(struct tsdb_appender *app, tsdb_ref *ref, const struct labels *ls, int64_t t,
                      double v)
{
    if (*ref) {
        int rc = tsdb_appender_add(app, *ref, NULL, t, v, NULL);
        if (rc != BS_EINVAL)
            return rc;
    }
    return tsdb_appender_add(app, 0, ls, t, v, ref);
}

/* Count a per-sample rejection; returns true if rc is one (or success). */
static bool sample_error_tolerated(int rc)
{
    switch (rc) {
    case 0:
        return true;
    case BS_EOUTOFORDER:
        bs_metric_add(scrape_metrics.out_of_order, 1);
        return true;
    case BS_EDUPLICATE:
        bs_metric_add(scrape_metrics.duplicate, 1);
        return true;
    case BS_EOUTOFBOUNDS:
        bs_metric_add(scrape_metrics.out_of_bounds, 1);
        return true;
    default:
        return false;
    }
}

/* Record the metadata of the entry the parser stands on into *mdp; on
 * BS_ENOMEM the set is dropped (*mdp = NULL): metadata is best effort and
 * never fails a scrape. *unit_fam remembers the family whose UNIT was last
 * looked at, so a family's samples cost nothing here. */
static void meta_collect(struct expfmt_parser *p, enum expfmt_entry kind, bool om,
                         struct scrape_meta **mdp, const char **unit_fam)
{
    struct scrape_meta *md = *mdp;
    const char *name = NULL, *text = NULL;
    size_t nl = 0, tl = 0;
    enum expfmt_metric_type type = EXPFMT_TYPE_UNKNOWN;
    int rc = 0;
    if (!md)
        return;
    if (kind == EXPFMT_HELP) {
        expfmt_parser_help(p, &name, &nl, &text, &tl);
        rc = scrape_meta_set(md, name, nl, SCRAPE_META_HELP, text, tl, type);
    } else if (kind == EXPFMT_TYPE) {
        expfmt_parser_type(p, &name, &nl, &type);
        rc = scrape_meta_set(md, name, nl, SCRAPE_META_TYPE, NULL, 0, type);
    }
    if (rc == 0 && om) {
        /* UNIT has no entry of its own: the family's unit is known at its
         * next entry (OpenMetrics puts metadata before samples). */
        expfmt_parser_unit(p, &name, &nl, &text, &tl);
        if (tl && name != *unit_fam) {
            *unit_fam = name;
            rc = scrape_meta_set(md, name, nl, SCRAPE_META_UNIT, text, tl, type);
        }
    }
    if (rc == BS_ENOMEM) {
        scrape_meta_free(md);
        *mdp = NULL;
    }
}

/* Mix one 64-bit value into a running hash (order-sensitive). */
static uint64_t meta_mix(uint64_t h, uint64_t v)
{
    h ^= v + UINT64_C(0x9E3779B97F4A7C15) + (h << 6) + (h >> 2);
    return h * UINT64_C(0x100000001b3);
}

/* meta_collect's twin for the ingest pass: fold what meta_collect would
 * record for this entry into the running hash *mh instead of building the
 * set. A scrape whose metadata hash equals the published set's (the steady
 * state) builds nothing; otherwise body_meta builds the set. */
static void meta_hash(struct expfmt_parser *p, enum expfmt_entry kind, bool om, uint64_t *mh,
                      const char **unit_fam)
{
    const char *name = NULL, *text = NULL;
    size_t nl = 0, tl = 0;
    enum expfmt_metric_type type = EXPFMT_TYPE_UNKNOWN;
    if (kind == EXPFMT_HELP) {
        expfmt_parser_help(p, &name, &nl, &text, &tl);
        *mh = meta_mix(meta_mix(*mh, 1 ^ bs_hash64(name, nl)), bs_hash64(text, tl));
    } else if (kind == EXPFMT_TYPE) {
        expfmt_parser_type(p, &name, &nl, &type);
        *mh = meta_mix(meta_mix(*mh, 2 ^ bs_hash64(name, nl)), (uint64_t)type);
    }
    if (om) {
        expfmt_parser_unit(p, &name, &nl, &text, &tl);
        if (tl && name != *unit_fam) {
            *unit_fam = name;
            *mh = meta_mix(meta_mix(*mh, 3 ^ bs_hash64(name, nl)), bs_hash64(text, tl));
        }
    }
}

/* The metadata of a body that parsed before (a metadata-only pass), as a
 * finished set; NULL when out of memory. */
static struct scrape_meta *body_meta(const struct bs_buf *body, enum expfmt_format fmt)
{
    struct scrape_meta *md = scrape_meta_new();
    if (!md)
        return NULL;
    struct expfmt_parser p;
    enum expfmt_entry kind;
    const char *unit_fam = NULL;
    const bool om = fmt == EXPFMT_FORMAT_OPENMETRICS;
    expfmt_parser_init_format(&p, body->data ? body->data : "", body->len, fmt);
    /* As the ingest pass: OpenMetrics units are looked at on every entry,
     * EOF included (a family may end the input with its UNIT line). */
    while (md && expfmt_parser_next(&p, &kind, NULL) == 0) {
        if (kind != EXPFMT_COMMENT && (kind != EXPFMT_SERIES || om))
            meta_collect(&p, kind, om, &md, &unit_fam);
        if (kind == EXPFMT_EOF)
            break;
    }
    expfmt_parser_fini(&p);
    if (md)
        scrape_meta_finish(md);
    return md;
}

/* Byte length of the first max runes of s[0..n) (Go's %.50s). */
static size_t rune_prefix(const char *s, size_t n, size_t max)
{
    size_t runes = 0, i = 0;
    for (; i < n; i++) {
        if (((unsigned char)s[i] & 0xc0) != 0x80) {
            if (runes == max)
                break;
            runes++;
        }
    }
    return i;
}

static size_t rune_count(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

/* Go's %.50q: the first 50 runes, double-quoted with Go's escapes
 * (printable UTF-8 kept as is). */
static void go_quote50(const char *s, char *out, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = rune_prefix(s, strlen(s), 50), o = 0;
    if (cap < 8)
        return;
    out[o++] = '"';
    for (size_t i = 0; i < n && o + 6 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        switch (c) {
        case '"':
            esc = "\\\"";
            break;
        case '\\':
            esc = "\\\\";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\t':
            esc = "\\t";
            break;
        case '\r':
            esc = "\\r";
            break;
        default:
            break;
        }
        if (esc) {
            out[o++] = esc[0];
            out[o++] = esc[1];
        } else if (c < 0x20 || c == 0x7f) {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        } else {
            out[o++] = (char)c;
        }
    }
    out[o++] = '"';
    out[o] = '\0';
}

/* Prometheus's verifyLabelLimits on a final series label set. 0, or
 * BS_ELIMIT with Prometheus's message in errmsg. */
static int check_label_limits(const struct labels *ls, const struct config_limits *lim,
                              char *errmsg)
{
    const char *met = labels_get(ls, LABELS_METRIC_NAME);
    if (!met)
        met = "";
    int ml = (int)rune_prefix(met, strlen(met), 50);
    if (lim->label_limit && ls->n > lim->label_limit) {
        snprintf(errmsg, 512,
                 "label_limit exceeded (metric: %.*s, number of labels: %zu, limit: %llu)", ml, met,
                 ls->n, (unsigned long long)lim->label_limit);
        return BS_ELIMIT;
    }
    for (size_t i = 0; i < ls->n && (lim->label_name_length_limit || lim->label_value_length_limit);
         i++) {
        const char *name = ls->v[i].name, *value = ls->v[i].value;
        int nl = (int)rune_prefix(name, strlen(name), 50);
        size_t len = strlen(name);
        if (lim->label_name_length_limit && len > lim->label_name_length_limit) {
            snprintf(errmsg, 512,
                     "label_name_length_limit exceeded (metric: %.*s, label name: %.*s, length: "
                     "%zu, limit: %llu)",
                     ml, met, nl, name, len, (unsigned long long)lim->label_name_length_limit);
            return BS_ELIMIT;
        }
        len = rune_count(value);
        if (lim->label_value_length_limit && len > lim->label_value_length_limit) {
            char q[220];
            go_quote50(value, q, sizeof(q));
            snprintf(errmsg, 512,
                     "label_value_length_limit exceeded (metric: %.*s, label name: %.*s, value: "
                     "%s, length: %zu, limit: %llu)",
                     ml, met, nl, name, q, len, (unsigned long long)lim->label_value_length_limit);
            return BS_ELIMIT;
        }
    }
    return 0;
}

/* What the body pass counted, reported in the synthetic series. */
struct append_counts {
    uint64_t seen;  /* series lines looked at (scrape_samples_scraped on a limit error) */
    uint64_t post;  /* samples left after metric relabeling */
    uint64_t added; /* series new to the cache and stored */
};

/* The final labels of series s of target t: merged with the target's
 * labels, then metric_relabel_configs. *keep false: relabeling dropped it
 * (view unset). view lives in lb. 0, or an error with err set. */
int scrape_series_labels(struct labels_builder *lb, const struct scrape_target *t,
                         const struct expfmt_series *s, struct labels *view, bool *keep,
                         struct bs_error *err)
{
    const struct scrape_job *job = t->job;
    int rc = scrape_labels_merge(lb, s, t->labels, t->honor_labels, view, err);
    *keep = true;
    if (rc != 0 || !job->nmrc)
        return rc;
    rc = labels_relabel_apply_builder(job->mrc, job->nmrc, lb, keep);
    if (rc == 0 && *keep)
        rc = labels_builder_labels(lb, view, err);
    if (rc != 0)
        return bs_error_set(err, rc, "metric relabeling: %s", bs_strerror(rc));
    if (*keep && view->n == 0)
        *keep = false; /* relabeled to nothing: dropped */
    if (*keep && !labels_get(view, LABELS_METRIC_NAME))
        return bs_error_set(err, BS_EINVAL, "missing metric name (__name__ label)");
    return 0;
}

/* The final labels of a cached series, derived again from its text (the
 * cache keeps no labels). The derivation depends only on the text and the
 * target's immutable settings, so it gives what the first scrape gave.
 * Only needed when the head no longer knows the entry's ref. */
int scrape_entry_labels(struct labels_builder *lb, const struct scrape_target *t,
                        const struct scrape_cache_entry *e, struct labels *view, bool *keep)
{
    /* The series text of either format is valid 0.0.4 series syntax. */
    char *line = malloc((size_t)e->len + 3);
    if (!line)
        return BS_ENOMEM;
    memcpy(line, e->text, e->len);
    memcpy(line + e->len, " 0", 3);
    struct expfmt_parser p;
    struct bs_error err;
    enum expfmt_entry kind;
    bs_error_clear(&err);
    expfmt_parser_init(&p, line, (size_t)e->len + 2);
    int rc = expfmt_parser_next(&p, &kind, &err);
    if (rc == 0 && kind != EXPFMT_SERIES)
        rc = BS_EINVAL;
    if (rc == 0)
        rc = scrape_series_labels(lb, t, expfmt_parser_series(&p), view, keep, &err);
    expfmt_parser_fini(&p);
    free(line);
    return rc;
}

/* Append to a cached series by its ref, deriving its labels again when the
 * head does not know the ref (any more). lb may be NULL (a local builder is
 * used then). */
static int add_entry(struct labels_builder *lb, const struct scrape_target *t,
                     struct tsdb_appender *app, struct scrape_cache_entry *e, int64_t ts,
                     double v)
{
    if (e->ref) {
        int rc = tsdb_appender_add(app, e->ref, NULL, ts, v, NULL);
        if (rc != BS_EINVAL)
            return rc;
    }
    struct labels_builder local;
    if (!lb) {
        labels_builder_init(&local);
        lb = &local;
    }
    struct labels view;
    bool keep = false;
    int rc = scrape_entry_labels(lb, t, e, &view, &keep);
    if (rc == 0)
        rc = keep ? tsdb_appender_add(app, 0, &view, ts, v, &e->ref) : BS_EINVAL;
    if (lb == &local)
        labels_builder_fini(&local);
    return rc;
}

/* The one pass over a body: parse it in format fmt and append every sample
 * through app, counting the samples (*nsamples) and hashing the metadata
 * into *mh (see meta_hash). A series new to the cache has its final labels built
 * (series_labels) and checked against the label limits; the outcome, a
 * ref or "dropped", is cached under the series text, so later scrapes skip
 * all of that. Samples past sample_limit are not appended, but the pass
 * goes on so the counts are complete, as in Prometheus.
 *
 * Errors. A parse error fails the scrape whatever else happened: the pass
 * stops there, *parse_error is set, and the caller rolls back. Any other
 * error (a label limit, relabeling, memory) stops the appending; the rest
 * of the body is still parsed so that a later parse error wins, as it did
 * when the body was validated before anything was appended. Returns 0, or
 * the error with errmsg set (BS_ELIMIT for a limit). */
static int body_ingest(struct loop *L, struct scrape_target *t, struct tsdb_appender *app,
                       enum expfmt_format fmt, int64_t ts, struct append_counts *cnt,
                       uint64_t *nsamples, uint64_t *mh, bool *parse_error,
                       char *errmsg)
{
    const struct scrape_job *job = t->job;
    const struct config_limits *lim = &job->limits;
    const bool om = fmt == EXPFMT_FORMAT_OPENMETRICS;
    const uint32_t gen = (uint32_t)t->iter;
    struct expfmt_parser p;
    struct bs_error err;
    enum expfmt_entry kind;
    const char *unit_fam = NULL;
    uint64_t nlimited = 0; /* non-stale samples counted against sample_limit */
    bool over_limit = false;
    int rc, fail = 0; /* fail: the first non-parse error; appending stopped */
    bs_error_clear(&err);
    memset(cnt, 0, sizeof(*cnt));
    *nsamples = 0;
    *parse_error = false;
    expfmt_parser_init_format(&p, t->body.data ? t->body.data : "", t->body.len, fmt);
    while ((rc = expfmt_parser_next(&p, &kind, &err)) == 0 && kind != EXPFMT_EOF) {
        if (kind != EXPFMT_SERIES) {
            if (kind != EXPFMT_COMMENT)
                meta_hash(&p, kind, om, mh, &unit_fam);
            continue;
        }
        if (om)
            meta_hash(&p, kind, om, mh, &unit_fam);
        (*nsamples)++;
        if (fail)
            continue;
        /* OpenMetrics: an exemplar (s->has_exemplar) is dropped, the sample
         * kept; a <family>_created sample is an ordinary series; an explicit
         * timestamp is honored as in 0.0.4. See docs/openmetrics.md. */
        const struct expfmt_series *s = expfmt_parser_series(&p);
        cnt->seen++;
        uint64_t h = bs_hash64(s->series_text, s->series_text_len);
        struct scrape_cache_slot *sl =
            scrape_cache_get(&t->cache, s->series_text, s->series_text_len, h);
        bool is_new = false;
        struct labels view = {NULL, 0};
        if (!sl) {
            bool keep = true;
            if ((fail = scrape_series_labels(&L->lb, t, s, &view, &keep, &err)) != 0)
                continue;
            if (keep && (fail = check_label_limits(&view, lim, errmsg)) != 0) {
                err.msg[0] = '\0'; /* errmsg holds Prometheus's message */
                continue;
            }
            sl = scrape_cache_put(&t->cache, s->series_text, s->series_text_len, h,
                                  keep ? 0 : SCRAPE_SLOT_DROPPED, gen);
            if (!sl) {
                fail = bs_error_set(&err, BS_ENOMEM, "out of memory caching series");
                continue;
            }
            if (!keep)
                continue; /* dropped by metric_relabel_configs */
            is_new = true;
        } else if (sl->flags & SCRAPE_SLOT_DROPPED) {
            sl->seen = gen;
            continue;
        }
        cnt->post++;
        if (lim->sample_limit && !bs_is_stale_nan(s->value) && ++nlimited > lim->sample_limit) {
            /* Over the limit: not stored, but keep counting. */
            over_limit = true;
            if (sl->seen != gen && (sl->flags & SCRAPE_SLOT_PREV))
                t->nprev_seen++;
            sl->seen = gen;
            continue;
        }
        bool honored = t->honor_timestamps && s->has_timestamp;
        int64_t st = honored ? s->timestamp_ms : ts;
        struct scrape_cache_entry *e = sl->e;
        int arc;
        if (is_new) {
            arc = tsdb_appender_add(app, 0, &view, st, s->value, &e->ref);
        } else {
            arc = e->ref ? tsdb_appender_add(app, e->ref, NULL, st, s->value, NULL) : BS_EINVAL;
            if (arc == BS_EINVAL) {
                /* The head does not know the ref: by the labels again. */
                bool keep = true;
                if ((fail = scrape_series_labels(&L->lb, t, s, &view, &keep, &err)) != 0)
                    continue;
                arc = keep ? tsdb_appender_add(app, 0, &view, st, s->value, &e->ref) : BS_EINVAL;
            }
        }
        if (!sample_error_tolerated(arc)) {
            fail = bs_error_set(&err, arc, "appending %.*s: %s", (int)s->series_text_len,
                                s->series_text, bs_strerror(arc));
            continue;
        }
        if (is_new && arc == 0 && !over_limit)
            cnt->added++;
        if (sl->seen != gen || is_new) {
            if (!is_new && (sl->flags & SCRAPE_SLOT_PREV))
                t->nprev_seen++;
            sl->seen = gen;
            sl->flags &= ~(uint32_t)(SCRAPE_SLOT_CUR | SCRAPE_SLOT_EXPLICIT);
            sl->flags |= honored ? SCRAPE_SLOT_EXPLICIT : SCRAPE_SLOT_CUR;
        }
    }
    if (rc == 0 && om)
        meta_hash(&p, EXPFMT_EOF, om, mh, &unit_fam); /* a UNIT just before # EOF */
    expfmt_parser_fini(&p);
    if (rc != 0) {
        *parse_error = true;
        snprintf(errmsg, 512, "%s", err.msg[0] ? err.msg : bs_strerror(rc));
        return rc;
    }
    if (fail) {
        if (err.msg[0])
            snprintf(errmsg, 512, "%s", err.msg);
        else if (fail != BS_ELIMIT)
            snprintf(errmsg, 512, "%s", bs_strerror(fail));
        return fail;
    }
    if (over_limit) {
        snprintf(errmsg, 512, "sample limit exceeded");
        return BS_ELIMIT;
    }
    return 0;
}

/* Stale markers for the previous successful scrape's series; all of them,
 * or only those this scrape did not see. */
static void append_stale(struct labels_builder *lb, struct scrape_target *t,
                         struct tsdb_appender *app, int64_t ts, bool all)
{
    /* Every previous series seen again (the steady state): no walk. */
    if (t->nprev == 0 || (!all && t->nprev_seen == t->nprev))
        return;
    const uint32_t gen = (uint32_t)t->iter;
    struct scrape_cache *c = &t->cache;
    for (size_t i = 0; i < c->cap; i++) {
        struct scrape_cache_slot *sl = &c->slots[i];
        if (!sl->e || !(sl->flags & SCRAPE_SLOT_PREV) || (!all && sl->seen == gen))
            continue;
        (void)sample_error_tolerated(add_entry(lb, t, app, sl->e, ts, bs_stale_nan()));
    }
}

/* After a scrape: its series become the previous ones (ok), or there are
 * none (failed); entries a successful scrape did not see are evicted. */
static void cache_end_scrape(struct scrape_target *t, bool ok)
{
    struct scrape_cache *c = &t->cache;
    const uint32_t gen = (uint32_t)t->iter;
    size_t nprev = 0, unseen = 0;
    for (size_t i = 0; i < c->cap; i++) {
        struct scrape_cache_slot *sl = &c->slots[i];
        if (!sl->e)
            continue;
        uint32_t f = sl->flags & ~(uint32_t)(SCRAPE_SLOT_PREV | SCRAPE_SLOT_CUR |
                                              SCRAPE_SLOT_EXPLICIT);
        if (ok && (sl->flags & SCRAPE_SLOT_CUR)) {
            f |= SCRAPE_SLOT_PREV;
            nprev++;
        }
        sl->flags = f;
        unseen += sl->seen != gen;
    }
    t->nprev = nprev;
    if (ok && unseen)
        scrape_cache_evict(c, gen);
}

static void append_report(struct scrape_target *t, struct tsdb_appender *app, int64_t ts, bool up,
                          double duration, uint64_t nsamples, uint64_t npost, uint64_t nadded)
{
    double v[SCRAPE_REPORT_COUNT] = {
        [SCRAPE_REPORT_UP] = up ? 1 : 0,
        [SCRAPE_REPORT_DURATION] = duration,
        [SCRAPE_REPORT_SAMPLES] = (double)nsamples,
        [SCRAPE_REPORT_POST_RELABEL] = (double)npost,
        [SCRAPE_REPORT_SERIES_ADDED] = (double)nadded,
    };
    for (size_t i = 0; i < SCRAPE_REPORT_COUNT; i++)
        (void)sample_error_tolerated(
            add_cached(app, &t->report_refs[i], t->report_ls[i], ts, v[i]));
    t->reported = true;
}

/* Everything after the transfer: store the scrape (or its failure), update
 * staleness bookkeeping and the target's status. errmsg holds the failure
 * when fetched is false and receives it otherwise. */
static void scrape_process(struct loop *L, struct scrape_target *t, bool fetched,
                           enum expfmt_format fmt, char *errmsg)
{
    struct tsdb *db = L->m->db;
    int64_t ts = t->start_wall_ms;
    uint64_t nsamples = 0;
    struct append_counts cnt = {0, 0, 0};
    bool ok = fetched, cache_suspect = false;
    bool limit_failed = false; /* a limit failed the scrape: report the counts */
    struct bs_error err;
    bs_error_clear(&err);

    /* Timestamps must grow even if the wall clock stepped back. */
    if (ts <= t->last_ts)
        ts = t->last_ts + 1;
    t->last_ts = ts;
    t->iter++;
    t->nprev_seen = 0;

    struct scrape_meta *md = NULL;
    uint64_t mh = UINT64_C(0x6d657461); /* metadata hash of this body */
    struct tsdb_appender *app = tsdb_appender_new(db);
    if (app && ok) {
        bool parse_error = false;
        int arc = body_ingest(L, t, app, fmt, ts, &cnt, &nsamples, &mh, &parse_error, errmsg);
        if (arc != 0) {
            /* Nothing of a failed body is stored. A parse error fails the
             * scrape as before; the cache stays (its refs stay valid: a
             * series a rolled back batch created stays in the head). */
            limit_failed = !parse_error && arc == BS_ELIMIT;
            if (limit_failed && strcmp(errmsg, "sample limit exceeded") != 0)
                nsamples = cnt.seen; /* label limits stop the scrape where they hit */
            tsdb_appender_rollback(app);
            app = tsdb_appender_new(db);
            ok = false;
            cache_suspect = !parse_error;
        }
    }
    if (!app) {
        ok = false;
        snprintf(errmsg, 512, "cannot create an appender: out of memory");
    } else {
        append_stale(&L->lb, t, app, ts, !ok);
        double dur = (double)(bs_monotonic_ns() - t->start_mono_ns) / 1e9;
        bool counts = ok || limit_failed;
        append_report(t, app, ts, ok, dur, counts ? nsamples : 0, counts ? cnt.post : 0,
                      counts ? cnt.added : 0);
        if (tsdb_appender_commit(app, &err) != 0) {
            if (ok)
                snprintf(errmsg, 512, "%s", err.msg[0] ? err.msg : bs_strerror(err.code));
            ok = false;
            cache_suspect = true;
            /* Second chance, small: up=0 and the staleness markers. The
             * refs stay usable: a series of a failed batch stays in the
             * head, and a ref the head does not know falls back to the
             * labels. */
            app = tsdb_appender_new(db);
            if (app) {
                append_stale(&L->lb, t, app, ts, true);
                append_report(t, app, ts, false, dur, 0, 0, 0);
                bs_error_clear(&err);
                if (tsdb_appender_commit(app, &err) != 0) {
                    BS_ERROR(SCRAPE_COMPONENT, "cannot store the scrape report of %s: %s", t->url,
                             err.msg);
                    for (size_t i = 0; i < SCRAPE_REPORT_COUNT; i++)
                        t->report_refs[i] = 0;
                }
            }
        }
    }
    int64_t end_ns = bs_monotonic_ns();

    /* Staleness bookkeeping: this scrape's series become the previous ones
     * (or none, after a failure); unseen entries go. */
    cache_end_scrape(t, ok);
    if (!ok && cache_suspect)
        scrape_cache_reset(&t->cache); /* keeps the metadata */
    if (!ok)
        bs_metric_add(scrape_metrics.failed, 1);

    /* Metadata: a successful scrape's replaces the last one, if different. */
    bool publish = false;
    if (ok && mh != t->meta_hash && (md = body_meta(&t->body, fmt)) != NULL) {
        publish = !scrape_meta_equal(md, t->cache.meta);
        t->meta_hash = mh;
    }

    /* Status, and one log line per change of health. */
    struct scrape_manager *m = L->m;
    pthread_mutex_lock(&m->mu);
    if (publish) {
        struct scrape_meta *old_md = t->cache.meta;
        t->cache.meta = md;
        md = old_md; /* freed below, outside the lock */
    }
    enum scrape_health old = t->health;
    t->health = ok ? SCRAPE_HEALTH_UP : SCRAPE_HEALTH_DOWN;
    snprintf(t->last_error, sizeof(t->last_error), "%s", ok ? "" : errmsg);
    t->last_scrape_ms = t->start_wall_ms;
    t->last_duration_s = (double)(end_ns - t->start_mono_ns) / 1e9;
    pthread_mutex_unlock(&m->mu);
    scrape_meta_free(md);
    if (!ok && old != SCRAPE_HEALTH_DOWN)
        BS_WARN(SCRAPE_COMPONENT, "target %s of job %s is down: %s", t->url, t->pool, errmsg);
    else if (ok && old == SCRAPE_HEALTH_DOWN)
        BS_INFO(SCRAPE_COMPONENT, "target %s of job %s is up again", t->url, t->pool);
}

void scrape_loop_end_of_run(struct scrape_manager *m, struct scrape_target *t)
{
    if (t->nprev == 0 && !t->reported)
        return;
    int64_t ts = bs_now_ms();
    if (ts <= t->last_ts)
        ts = t->last_ts + 1;
    struct tsdb_appender *app = tsdb_appender_new(m->db);
    if (!app)
        return;
    append_stale(NULL, t, app, ts, true);
    if (t->reported) {
        for (size_t i = 0; i < SCRAPE_REPORT_COUNT; i++)
            (void)sample_error_tolerated(
                add_cached(app, &t->report_refs[i], t->report_ls[i], ts, bs_stale_nan()));
    }
    struct bs_error err;
    bs_error_clear(&err);
    if (tsdb_appender_commit(app, &err) != 0)
        BS_WARN(SCRAPE_COMPONENT, "cannot write staleness markers for removed target %s: %s",
                t->url, err.msg);
}

/* ------------------------------------------------------- the idle heap */

static void heap_set(struct loop *L, size_t i, struct scrape_target *t)
{
    L->heap[i] = t;
    t->heap_idx = i + 1;
}

static void heap_sift_up(struct loop *L, size_t i)
{
    struct scrape_target *t = L->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (L->heap[parent]->next_ms <= t->next_ms)
            break;
        heap_set(L, i, L->heap[parent]);
        i = parent;
    }
    heap_set(L, i, t);
}

static void heap_sift_down(struct loop *L, size_t i)
{
    struct scrape_target *t = L->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= L->nheap)
            break;
        if (c + 1 < L->nheap && L->heap[c + 1]->next_ms < L->heap[c]->next_ms)
            c++;
        if (t->next_ms <= L->heap[c]->next_ms)
            break;
        heap_set(L, i, L->heap[c]);
        i = c;
    }
    heap_set(L, i, t);
}

static void heap_push(struct loop *L, struct scrape_target *t)
{
    if (t->heap_idx)
        return;
    if (L->nheap == L->heap_cap) {
        L->heap_cap = L->heap_cap ? L->heap_cap * 2 : 64;
        L->heap = bs_xrealloc(L->heap, L->heap_cap * sizeof(*L->heap));
    }
    heap_set(L, L->nheap++, t);
    heap_sift_up(L, L->nheap - 1);
}

static void heap_remove(struct loop *L, struct scrape_target *t)
{
    if (!t->heap_idx)
        return;
    size_t i = t->heap_idx - 1;
    t->heap_idx = 0;
    struct scrape_target *last = L->heap[--L->nheap];
    if (i == L->nheap)
        return;
    heap_set(L, i, last);
    heap_sift_up(L, i);
    heap_sift_down(L, last->heap_idx - 1);
}

/* ------------------------------------------------------------ the thread */

static void run_remove(struct loop *L, struct scrape_target *t)
{
    for (size_t i = 0; i < L->nrun; i++) {
        if (L->run[i] == t) {
            memmove(&L->run[i], &L->run[i + 1], (L->nrun - i - 1) * sizeof(*L->run));
            L->nrun--;
            return;
        }
    }
}

void *scrape_loop_run(void *arg)
{
    struct loop L;
    memset(&L, 0, sizeof(L));
    L.m = arg;
    L.targets_gen = UINT64_MAX; /* look at the targets on the first round */
    struct scrape_manager *m = L.m;
    labels_builder_init(&L.lb);

    for (;;) {
        struct scrape_target **gone;
        size_t ngone;

        /* Pick up config changes. */
        pthread_mutex_lock(&m->mu);
        if (m->stopping) {
            pthread_mutex_unlock(&m->mu);
            break;
        }
        L.body_limit = m->body_limit;
        gone = m->removed;
        ngone = m->nremoved;
        m->removed = NULL;
        m->nremoved = m->removed_cap = 0;
        /* New targets: only after an apply changed the set, not at every
         * wakeup (a walk over thousands of targets). */
        for (size_t i = 0; L.targets_gen != m->targets_gen && i < m->ntargets; i++) {
            struct scrape_target *t = m->targets[i];
            if (t->started)
                continue;
            t->started = true;
            target_schedule_first(t);
            if (L.nrun == L.cap) {
                L.cap = L.cap ? L.cap * 2 : 16;
                L.run = bs_xrealloc(L.run, L.cap * sizeof(*L.run));
            }
            L.run[L.nrun++] = t;
            heap_push(&L, t);
        }
        L.targets_gen = m->targets_gen;
        pthread_mutex_unlock(&m->mu);

        for (size_t i = 0; i < ngone; i++) {
            struct scrape_target *t = gone[i];
            run_remove(&L, t);
            heap_remove(&L, t);
            if (t->in_flight) {
                curl_multi_remove_handle(m->multi, t->easy);
                t->in_flight = false;
            }
            scrape_loop_end_of_run(m, t);
            scrape_target_free(t);
        }
        free(gone);

        /* Start what is due. A scrape that fails before its transfer
         * (target_limit, setup errors) is idle again at once. */
        int64_t now = mono_ms();
        while (L.nheap && L.heap[0]->next_ms <= now) {
            struct scrape_target *t = L.heap[0];
            heap_remove(&L, t);
            scrape_start(&L, t, now);
            if (!t->in_flight)
                heap_push(&L, t);
        }

        /* Drive the transfers and handle the finished ones. */
        int still = 0;
        curl_multi_perform(m->multi, &still);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m->multi, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            CURL *e = msg->easy_handle;
            CURLcode cc = msg->data.result;
            char *priv = NULL;
            curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
            struct scrape_target *t = (struct scrape_target *)(void *)priv;
            curl_multi_remove_handle(m->multi, e);
            if (t) {
                t->in_flight = false;
                scrape_finish(&L, t, cc);
                heap_push(&L, t);
            }
        }

        /* Sleep until a socket is ready, the next target is due or a config
         * apply or shutdown wakes us. */
        int64_t wait = 1000;
        now = mono_ms();
        if (L.nheap) {
            int64_t d = L.heap[0]->next_ms - now;
            if (d < wait)
                wait = d < 0 ? 0 : d;
        }
        curl_multi_poll(m->multi, NULL, 0, (int)wait, NULL);
    }

    for (size_t i = 0; i < L.nrun; i++) {
        struct scrape_target *t = L.run[i];
        if (t->in_flight) {
            curl_multi_remove_handle(m->multi, t->easy);
            t->in_flight = false;
        }
    }
    free(L.run);
    free(L.heap);
    labels_builder_fini(&L.lb);
    return NULL;
}
