/* SPDX-License-Identifier: Apache-2.0
 *
 * http_sd_configs: every refresh_interval, GET the URL and read a JSON list
 * of target groups, as Prometheus's HTTP SD does. The request carries
 * Accept: application/json, User-Agent: bongsu/<version> and
 * X-Prometheus-Refresh-Interval-Seconds, plus the configured basic_auth or
 * authorization (credentials files read at every refresh), TLS settings
 * (CA, client certificate, insecure_skip_verify, min/max version), proxy_url,
 * follow_redirects and enable_http2. tls_config.server_name is not applied
 * here (the URL's host name is what is verified).
 *
 * Prometheus's validation: the status must be 200 ("server returned HTTP
 * status 404 Not Found") and the Content-Type application/json, optionally
 * with charset utf-8 ("unsupported content type \"text/plain\""). A failed
 * refresh is logged and the previous groups stay. Every group gets
 * __meta_url, the configured URL. The body is capped at SD_DOC_MAX_SIZE and
 * the whole request at the refresh interval (at most 5 minutes).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "scrape/sd_int.h"

struct http_state {
    char *last_error; /* last logged failure */
};

static void http_state_free(void *priv)
{
    struct http_state *st = priv;
    if (st)
        free(st->last_error);
    free(st);
}

struct xfer {
    struct bs_buf body;
    bool too_big;
    char reason[96];
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    size_t n = size * nmemb;
    if (bs_buf_append(&x->body, ptr, n) != 0) {
        x->too_big = true;
        return 0;
    }
    return n;
}

/* Keep the reason phrase of the last status line ("HTTP/1.1 404 Not Found"). */
static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    size_t n = size * nmemb;
    if (n > 5 && memcmp(ptr, "HTTP/", 5) == 0) {
        const char *sp = memchr(ptr, ' ', n);
        const char *sp2 = sp ? memchr(sp + 1, ' ', n - (size_t)(sp + 1 - ptr)) : NULL;
        x->reason[0] = '\0';
        if (sp2) {
            size_t l = n - (size_t)(sp2 + 1 - ptr);
            while (l > 0 && (sp2[l] == '\r' || sp2[l] == '\n'))
                l--;
            if (l >= sizeof(x->reason))
                l = sizeof(x->reason) - 1;
            memcpy(x->reason, sp2 + 1, l);
            x->reason[l] = '\0';
        }
    }
    return n;
}

/* A credentials file, surrounding white space trimmed. */
static int read_secret(const char *path, char **out, struct bs_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return bs_error_set(err, BS_EIO, "unable to read file %s: %s", path, strerror(errno));
    char buf[65536];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *s = buf;
    while (*s && isspace((unsigned char)*s))
        s++;
    size_t l = strlen(s);
    while (l > 0 && isspace((unsigned char)s[l - 1]))
        l--;
    if (!(*out = strndup(s, l)))
        return bs_error_set(err, BS_ENOMEM, "out of memory");
    return 0;
}

/* Go's mime type check: ^(?i:application\/json(;\s*charset=("utf-8"|utf-8))?)$
 * on the trimmed header. */
static bool content_type_ok(const char *ct)
{
    if (!ct)
        return false;
    while (isspace((unsigned char)*ct))
        ct++;
    size_t n = strlen(ct);
    while (n > 0 && isspace((unsigned char)ct[n - 1]))
        n--;
    static const char base[] = "application/json";
    size_t bl = sizeof(base) - 1;
    if (n < bl || strncasecmp(ct, base, bl) != 0)
        return false;
    if (n == bl)
        return true;
    const char *s = ct + bl, *end = ct + n;
    if (*s++ != ';')
        return false;
    while (s < end && isspace((unsigned char)*s))
        s++;
    size_t rest = (size_t)(end - s);
    return (rest == 13 && strncasecmp(s, "charset=utf-8", 13) == 0) ||
           (rest == 15 && strncasecmp(s, "charset=\"utf-8\"", 15) == 0);
}

/* One GET of the URL; on success the parsed groups are appended to out. */
static int http_fetch(struct sd_provider *p, struct sd_groups *out, struct bs_error *err)
{
    const struct config_http_sd *hc = p->conf.http;
    const struct config_http_client *h = &hc->http;
    struct xfer x;
    memset(&x, 0, sizeof(x));
    bs_buf_init(&x.body, SD_DOC_MAX_SIZE);
    struct curl_slist *hdrs = NULL;
    char *secret = NULL, *auth = NULL;
    char errbuf[CURL_ERROR_SIZE] = "";
    char line[96];
    int rc = 0;
    CURL *e = curl_easy_init();
    if (!e) {
        rc = bs_error_set(err, BS_ENOMEM, "cannot create an HTTP handle");
        goto done;
    }
    snprintf(line, sizeof(line), "X-Prometheus-Refresh-Interval-Seconds: %g",
             (double)p->refresh_ms / 1000.0);
    struct curl_slist *l;
    if (!(l = curl_slist_append(hdrs, "Accept: application/json")) || !(hdrs = l) ||
        !(l = curl_slist_append(hdrs, line)) || !(hdrs = l)) {
        rc = bs_error_set(err, BS_ENOMEM, "out of memory");
        goto done;
    }
    if (h->has_authorization) {
        const char *cred = h->auth_credentials ? h->auth_credentials : "";
        if (h->auth_credentials_file) {
            if ((rc = read_secret(h->auth_credentials_file, &secret, err)) != 0)
                goto done;
            cred = secret;
        }
        if (asprintf(&auth, "Authorization: %s %s", h->auth_type ? h->auth_type : "Bearer", cred) <
            0) {
            auth = NULL;
            rc = bs_error_set(err, BS_ENOMEM, "out of memory");
            goto done;
        }
        if (!(l = curl_slist_append(hdrs, auth)) || !(hdrs = l)) {
            rc = bs_error_set(err, BS_ENOMEM, "out of memory");
            goto done;
        }
    } else if (h->has_basic_auth) {
        const char *pw = h->password ? h->password : "";
        if (h->password_file) {
            if ((rc = read_secret(h->password_file, &secret, err)) != 0)
                goto done;
            pw = secret;
        }
        curl_easy_setopt(e, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
        curl_easy_setopt(e, CURLOPT_USERNAME, h->username ? h->username : "");
        curl_easy_setopt(e, CURLOPT_PASSWORD, pw);
    }
    int64_t timeout = p->refresh_ms < 300000 ? p->refresh_ms : 300000;
    curl_easy_setopt(e, CURLOPT_URL, hc->url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "bongsu/" BS_VERSION);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &x);
    scrape_curl_client_opts(e, h);

    CURLcode cc = curl_easy_perform(e);
    if (x.too_big) {
        rc = bs_error_set(err, BS_ELIMIT, "response body larger than %zu bytes", SD_DOC_MAX_SIZE);
        goto done;
    }
    if (cc != CURLE_OK) {
        rc = bs_error_set(err, cc == CURLE_OPERATION_TIMEDOUT ? BS_ETIMEOUT : BS_EIO,
                          "Get \"%s\": %s", hc->url, errbuf[0] ? errbuf : curl_easy_strerror(cc));
        goto done;
    }
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
        rc = bs_error_set(err, BS_EIO, "server returned HTTP status %ld%s%s", status,
                          x.reason[0] ? " " : "", x.reason);
        goto done;
    }
    char *ct = NULL;
    curl_easy_getinfo(e, CURLINFO_CONTENT_TYPE, &ct);
    if (!content_type_ok(ct)) {
        rc = bs_error_set(err, BS_EINVAL, "unsupported content type \"%s\"", ct ? ct : "");
        goto done;
    }
    rc = sd_groups_parse(x.body.data ? x.body.data : "", x.body.len, SD_FORMAT_JSON, hc->url,
                         "__meta_url", hc->url, out, err);
done:
    if (e)
        curl_easy_cleanup(e);
    curl_slist_free_all(hdrs);
    free(secret);
    free(auth);
    bs_buf_fini(&x.body);
    return rc;
}

static int http_refresh(struct sd_provider *p, struct sd_groups *out)
{
    struct http_state *st = p->priv;
    struct bs_error err;
    bs_error_clear(&err);
    int rc = http_fetch(p, out, &err);
    if (rc == 0) {
        if (st->last_error)
            BS_INFO(SD_COMPONENT, "http_sd (job %s): %s works again", p->job, p->conf.http->url);
        free(st->last_error);
        st->last_error = NULL;
        return 0;
    }
    /* Logged at every failure, as Prometheus does, but as a warning after
     * the first one with the same message. */
    if (!st->last_error || strcmp(st->last_error, err.msg) != 0) {
        BS_ERROR(SD_COMPONENT,
                 "http_sd (job %s): unable to refresh target groups, keeping the previous ones: "
                 "%s",
                 p->job, err.msg);
        free(st->last_error);
        st->last_error = strdup(err.msg);
    } else {
        BS_WARN(SD_COMPONENT, "http_sd (job %s): still failing: %s", p->job, err.msg);
    }
    return rc;
}

int sd_http_init(struct sd_provider *p)
{
    struct http_state *st = calloc(1, sizeof(*st));
    if (!st)
        return BS_ENOMEM;
    p->priv = st;
    p->priv_free = http_state_free;
    p->refresh = http_refresh;
    return 0;
}
