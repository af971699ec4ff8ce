/* SPDX-License-Identifier: Apache-2.0
 *
 * Black-box tests of the scrape manager against real HTTP servers started
 * inside the test: a small poll()-based HTTP/1.1 server thread on 127.0.0.1
 * (port picked by binding to port 0) serving a valid payload, one that
 * changes between scrapes, garbage, HTTP 500, a slow endpoint, a gzip body,
 * a too-big body and one that records its query string. A manager scrapes
 * them every 200 ms into a real tsdb in a temporary directory; the tests
 * then read what was stored through the querier (raw samples, stale-marker
 * bits included) and the /api/v1/targets JSON.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>
#include <cmocka.h>

#include "config/config.h"
#include "scrape/scrape.h"
#include "tsdb/tsdb.h"

/* ------------------------------------------------------------ test server */

#define MAXCONN 64

struct conn {
    int fd;                 /* -1 when the slot is free */
    char in[8192];
    size_t inlen;
    bool answered;
    char *out;
    size_t outlen, outoff;
    int64_t send_at;        /* monotonic ms */
};

struct server {
    int lfd;
    int port;
    int wake[2];
    pthread_t th;
    pthread_mutex_t mu;
    /* guarded by mu */
    int hits_changing;
    int hits_valid;
    int bad_headers;        /* requests lacking a header Prometheus sends */
    char last_query[256];
    char last_auth[256];    /* Authorization header of the last /auth request */
    int64_t ts_explicit;    /* the explicit timestamp served by /valid */
    struct conn c[MAXCONN];
};

static int64_t now_ms(void)
{
    return bs_monotonic_ns() / 1000000;
}

static void conn_close(struct conn *c)
{
    close(c->fd);
    free(c->out);
    memset(c, 0, sizeof(*c));
    c->fd = -1;
}

static void respond(struct conn *c, int status, const char *reason, const char *hdrs,
                    const void *body, size_t len, int delay_ms)
{
    char head[512];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain; version=0.0.4\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n%s\r\n",
                     status, reason, len, hdrs);
    c->out = malloc((size_t)n + len);
    memcpy(c->out, head, (size_t)n);
    memcpy(c->out + n, body, len);
    c->outlen = (size_t)n + len;
    c->outoff = 0;
    c->send_at = now_ms() + delay_ms;
    c->answered = true;
}

static size_t gzip_body(const char *in, char *out, size_t cap)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)strlen(in);
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)cap;
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    size_t n = z.total_out;
    deflateEnd(&z);
    return n;
}

static void handle(struct server *s, struct conn *c)
{
    char path[256] = "", body[4096];
    const char *q;
    sscanf(c->in, "GET %255s", path);
    char *qm = strchr(path, '?');
    q = "";
    if (qm) {
        *qm = '\0';
        q = qm + 1;
    }
    bool headers_ok =
        strcasestr(c->in, "\r\nAccept: application/openmetrics-text;version=1.0.0;"
                          "escaping=allow-utf-8;q=0.6,application/openmetrics-text;"
                          "version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;"
                          "q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2\r\n") &&
        strcasestr(c->in, "\r\nAccept-Encoding: gzip") &&
        strcasestr(c->in, "\r\nUser-Agent: bongsu/" BS_VERSION "\r\n") &&
        strcasestr(c->in, "\r\nX-Prometheus-Scrape-Timeout-Seconds: 0.15\r\n");

    pthread_mutex_lock(&s->mu);
    if (!headers_ok)
        s->bad_headers++;
    if (strcmp(path, "/valid") == 0) {
        s->hits_valid++;
        int n = snprintf(body, sizeof(body),
                         "# HELP test_metric A test.\n# TYPE test_metric gauge\n"
                         "test_metric{job=\"scraped\",instance=\"other\",path=\"x\"} 42\n"
                         "test_metric{path=\"y\"} 7\n"
                         "test_ts 5 %lld\n",
                         (long long)s->ts_explicit);
        respond(c, 200, "OK", "", body, (size_t)n, 0);
    } else if (strcmp(path, "/changing") == 0) {
        int h = ++s->hits_changing;
        const char *b = h <= 2 ? "a 1\nb 2\n" : h <= 4 ? "a 1\n" : "a 1\nthis is { garbage\n";
        respond(c, 200, "OK", "", b, strlen(b), 0);
    } else if (strcmp(path, "/garbage") == 0) {
        const char *b = "ok_metric 1\nbad{a=\"b\" 1\n";
        respond(c, 200, "OK", "", b, strlen(b), 0);
    } else if (strcmp(path, "/err500") == 0) {
        respond(c, 500, "Internal Server Error", "", "oops\n", 5, 0);
    } else if (strcmp(path, "/slow") == 0) {
        respond(c, 200, "OK", "", "slow_metric 1\n", 14, 1000);
    } else if (strcmp(path, "/gzip") == 0) {
        size_t n = gzip_body("gz_metric{k=\"v\"} 3.5\n", body, sizeof(body));
        respond(c, 200, "OK", "Content-Encoding: gzip\r\n", body, n, 0);
    } else if (strcmp(path, "/big") == 0) {
        size_t n = 200 * 1024;
        char *big = malloc(n);
        for (size_t i = 0; i < n; i++)
            big[i] = (i % 64 == 63) ? '\n' : '#';
        respond(c, 200, "OK", "", big, n, 0);
        free(big);
    } else if (strcmp(path, "/auth") == 0) {
        /* Accepts u:p (basic), "Bearer tok" and "Custom cred". */
        char auth[256] = "";
        const char *h = strcasestr(c->in, "\r\nAuthorization: ");
        if (h)
            sscanf(h + 17, "%255[^\r]", auth);
        snprintf(s->last_auth, sizeof(s->last_auth), "%s", auth);
        if (strcmp(auth, "Basic dTpw") == 0 || strcmp(auth, "Bearer tok") == 0 ||
            strcmp(auth, "Custom cred") == 0)
            respond(c, 200, "OK", "", "auth_ok 1\n", 10, 0);
        else
            respond(c, 401, "Unauthorized", "", "no\n", 3, 0);
    } else if (strcmp(path, "/redirect") == 0) {
        respond(c, 302, "Found", "Location: /auth\r\n", "", 0, 0);
    } else if (strcmp(path, "/params") == 0) {
        snprintf(s->last_query, sizeof(s->last_query), "%s", q);
        respond(c, 200, "OK", "", "p 1\n", 4, 0);
    } else {
        respond(c, 404, "Not Found", "", "", 0, 0);
    }
    pthread_mutex_unlock(&s->mu);
}

static void *server_main(void *arg)
{
    struct server *s = arg;
    for (;;) {
        struct pollfd pf[MAXCONN + 2];
        int idx[MAXCONN + 2];
        size_t n = 0;
        int64_t now = now_ms();
        int timeout = 100;
        pf[n++] = (struct pollfd){.fd = s->wake[0], .events = POLLIN};
        pf[n++] = (struct pollfd){.fd = s->lfd, .events = POLLIN};
        for (int i = 0; i < MAXCONN; i++) {
            struct conn *c = &s->c[i];
            if (c->fd < 0)
                continue;
            short ev = POLLIN;
            if (c->answered) {
                if (now >= c->send_at)
                    ev |= POLLOUT;
                else if (c->send_at - now < timeout)
                    timeout = (int)(c->send_at - now);
            }
            idx[n] = i;
            pf[n++] = (struct pollfd){.fd = c->fd, .events = ev};
        }
        if (poll(pf, n, timeout) < 0 && errno != EINTR)
            break;
        if (pf[0].revents)
            break;
        if (pf[1].revents & POLLIN) {
            int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd >= 0) {
                int slot = -1;
                for (int i = 0; i < MAXCONN && slot < 0; i++)
                    if (s->c[i].fd < 0)
                        slot = i;
                if (slot < 0) {
                    close(fd);
                } else {
                    s->c[slot].fd = fd;
                }
            }
        }
        for (size_t k = 2; k < n; k++) {
            struct conn *c = &s->c[idx[k]];
            if (c->fd != pf[k].fd)
                continue;
            if (pf[k].revents & (POLLIN | POLLHUP | POLLERR)) {
                if (c->inlen + 1 >= sizeof(c->in)) {
                    conn_close(c);
                    continue;
                }
                ssize_t r = recv(c->fd, c->in + c->inlen, sizeof(c->in) - 1 - c->inlen, 0);
                if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
                    conn_close(c);   /* the client gave up (timeout) or is done */
                    continue;
                }
                if (r > 0) {
                    c->inlen += (size_t)r;
                    c->in[c->inlen] = '\0';
                    if (!c->answered && strstr(c->in, "\r\n\r\n"))
                        handle(s, c);
                }
            }
            if (c->answered && now_ms() >= c->send_at) {
                ssize_t w = send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);
                if (w < 0 && errno != EAGAIN && errno != EINTR) {
                    conn_close(c);
                    continue;
                }
                if (w > 0)
                    c->outoff += (size_t)w;
                if (c->outoff == c->outlen)
                    conn_close(c);
            }
        }
    }
    return NULL;
}

static int listen_any(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t al = sizeof(a);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static struct server *server_start(void)
{
    struct server *s = calloc(1, sizeof(*s));
    for (int i = 0; i < MAXCONN; i++)
        s->c[i].fd = -1;
    s->lfd = listen_any(&s->port);
    assert_int_equal(listen(s->lfd, 128), 0);
    assert_int_equal(pipe(s->wake), 0);
    pthread_mutex_init(&s->mu, NULL);
    s->ts_explicit = bs_now_ms() - 60000;
    assert_int_equal(pthread_create(&s->th, NULL, server_main, s), 0);
    return s;
}

static void server_stop(struct server *s)
{
    assert_int_equal(write(s->wake[1], "x", 1), 1);
    pthread_join(s->th, NULL);
    for (int i = 0; i < MAXCONN; i++)
        if (s->c[i].fd >= 0)
            conn_close(&s->c[i]);
    close(s->lfd);
    close(s->wake[0]);
    close(s->wake[1]);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static int server_get(struct server *s, const int *field)
{
    pthread_mutex_lock(&s->mu);
    int v = *field;
    pthread_mutex_unlock(&s->mu);
    return v;
}

/* ------------------------------------------------------------ tsdb helpers */

struct fixture {
    char dir[64];
    struct tsdb *db;
    struct server *srv;
    struct scrape_manager *m;
};

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void fixture_open(struct fixture *f)
{
    struct tsdb_options o;
    struct bs_error err;
    snprintf(f->dir, sizeof(f->dir), "/tmp/bongsu-scrape-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    tsdb_options_default(&o);
    o.dir = f->dir;
    if (tsdb_open(&f->db, &o, &err) != 0)
        fail_msg("tsdb_open: %s", err.msg);
    f->srv = server_start();
    f->m = scrape_manager_new(f->db);
    assert_non_null(f->m);
}

static void fixture_close(struct fixture *f)
{
    scrape_manager_free(f->m);
    server_stop(f->srv);
    tsdb_close(f->db);
    nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void apply(struct fixture *f, const char *fmt, ...)
{
    char yaml[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(yaml, sizeof(yaml), fmt, ap);
    va_end(ap);
    struct config *c = NULL;
    struct bs_error err;
    if (config_load_string(yaml, strlen(yaml), "test.yml", &c, &err) != 0)
        fail_msg("config: %s", err.msg);
    if (scrape_manager_apply_config(f->m, c, &err) != 0)
        fail_msg("apply: %s", err.msg);
    config_free(c);   /* the manager must not need it any more */
}

#define MAXS 16
#define MAXP 256

struct series {
    char *labels;           /* text form */
    size_t n;
    int64_t t[MAXP];
    double v[MAXP];
};

struct result {
    size_t n;
    struct series s[MAXS];
};

/* Every series matching all name="value" pairs (NULL-terminated) with all
 * of their raw samples. */
static void query(struct tsdb *db, struct result *r, ...)
{
    struct labels_matcher *ms[8];
    size_t nms = 0;
    struct bs_error err;
    va_list ap;
    va_start(ap, r);
    const char *name;
    while ((name = va_arg(ap, const char *)) != NULL) {
        const char *value = va_arg(ap, const char *);
        assert_int_equal(labels_matcher_new(&ms[nms++], LABELS_MATCH_EQ, name, value, &err), 0);
    }
    va_end(ap);
    memset(r, 0, sizeof(*r));
    struct tsdb_querier *q = tsdb_querier_new(db, 0, INT64_MAX);
    struct tsdb_series_set *set = NULL;
    assert_int_equal(tsdb_querier_select(q, ms, nms, &set, &err), 0);
    while (tsdb_series_set_next(set)) {
        assert_true(r->n < MAXS);
        struct series *s = &r->s[r->n++];
        struct bs_buf b;
        bs_buf_init(&b, 0);
        labels_format(tsdb_series_set_labels(set), &b);
        s->labels = bs_buf_steal(&b, NULL);
        struct tsdb_iterator *it = tsdb_series_set_iterator(set);
        while (tsdb_iterator_next(it) && s->n < MAXP) {
            tsdb_iterator_at(it, &s->t[s->n], &s->v[s->n]);
            s->n++;
        }
        tsdb_iterator_free(it);
    }
    tsdb_series_set_free(set);
    tsdb_querier_free(q);
    for (size_t i = 0; i < nms; i++)
        labels_matcher_free(ms[i]);
}

static void result_free(struct result *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->s[i].labels);
}

static char *targets_json(struct fixture *f, const char *state)
{
    struct bs_buf b;
    bs_buf_init(&b, 0);
    assert_int_equal(scrape_manager_targets_json(f->m, state, &b), 0);
    return bs_buf_steal(&b, NULL);
}

/* The value of "key" in the target object of pool (an unescaped copy of a
 * string value, at most cap-1 bytes); false if absent. The object's keys
 * come in Prometheus's order: scrapePool precedes lastError and health. */
static bool target_field(const char *json, const char *pool, const char *key, char *out,
                         size_t cap)
{
    char pat[128];
    snprintf(pat, sizeof(pat), "\"scrapePool\":\"%s\"", pool);
    const char *p = strstr(json, pat);
    if (!p)
        return false;
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    p = strstr(p, pat);
    if (!p)
        return false;
    p += strlen(pat);
    size_t n = 0;
    if (*p == '"') {
        for (p++; *p && *p != '"' && n + 1 < cap; p++) {
            if (*p == '\\' && p[1] == 'u' && strlen(p) >= 6) {
                char hex[5] = {p[2], p[3], p[4], p[5], 0};
                out[n++] = (char)strtol(hex, NULL, 16);   /* ASCII is enough here */
                p += 5;
                continue;
            }
            if (*p == '\\' && p[1])
                p++;
            out[n++] = *p;
        }
    } else {
        while (*p && *p != ',' && *p != '}' && n + 1 < cap)
            out[n++] = *p++;
    }
    out[n] = '\0';
    return true;
}

static bool pool_health_is(struct fixture *f, const char *pool, const char *health)
{
    char *j = targets_json(f, NULL);
    char h[32];
    bool ok = target_field(j, pool, "health", h, sizeof(h)) && strcmp(h, health) == 0;
    free(j);
    return ok;
}

/* Wait (at most 10 s) until every pool in the NULL-terminated list has been
 * scraped at least once. */
static void wait_scraped(struct fixture *f, ...)
{
    int64_t deadline = now_ms() + 10000;
    for (;;) {
        char *j = targets_json(f, NULL);
        bool all = true;
        va_list ap;
        va_start(ap, f);
        const char *pool;
        while ((pool = va_arg(ap, const char *)) != NULL) {
            char h[32];
            if (!target_field(j, pool, "health", h, sizeof(h)) || strcmp(h, "unknown") == 0)
                all = false;
        }
        va_end(ap);
        free(j);
        if (all)
            return;
        if (now_ms() > deadline)
            fail_msg("targets were not scraped within 10 s");
        bs_sleep_ms(20);
    }
}

static const char *find_series(const struct result *r, const char *labels)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->s[i].labels, labels) == 0)
            return r->s[i].labels;
    return NULL;
}

/* ------------------------------------------------------------------ tests */

static const char *const base_yaml =
    "global:\n"
    "  scrape_interval: 200ms\n"
    "  scrape_timeout: 150ms\n"
    "scrape_configs:\n"
    "  - job_name: valid\n"
    "    metrics_path: /valid\n"
    "    static_configs:\n"
    "      - targets: ['127.0.0.1:%d']\n"
    "        labels: {env: test}\n"
    "  - job_name: honor\n"
    "    honor_labels: true\n"
    "    honor_timestamps: false\n"
    "    metrics_path: /valid\n"
    "    static_configs: [{targets: ['127.0.0.1:%d']}]\n"
    "  - job_name: gzip\n"
    "    metrics_path: /gzip\n"
    "    static_configs: [{targets: ['127.0.0.1:%d']}]\n"
    "  - job_name: garbage\n"
    "    metrics_path: /garbage\n"
    "    static_configs: [{targets: ['127.0.0.1:%d']}]\n"
    "  - job_name: err500\n"
    "    metrics_path: /err500\n"
    "    static_configs: [{targets: ['127.0.0.1:%d']}]\n"
    "  - job_name: slow\n"
    "    metrics_path: /slow\n"
    "    static_configs: [{targets: ['127.0.0.1:%d']}]\n"
    "  - job_name: big\n"
    "    metrics_path: /big\n"
    "    static_configs: [{targets: ['127.0.0.1:%d']}]\n"
    "  - job_name: refused\n"
    "    static_configs: [{targets: ['127.0.0.1:%d']}]\n"
    "  - job_name: params\n"
    "    metrics_path: /params\n"
    "    params:\n"
    "      x: ['1', '2']\n"
    "      q: ['a b']\n"
    "    static_configs: [{targets: ['127.0.0.1:%d']}]\n";

static void test_scrape_end_to_end(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f);
    scrape_manager_set_body_size_limit(f.m, 64 * 1024);
    /* A port with nothing listening: bound, never listened on. */
    int closed_port;
    int cfd = listen_any(&closed_port);
    int p = f.srv->port;
    apply(&f, base_yaml, p, p, p, p, p, p, p, closed_port, p);
    wait_scraped(&f, "valid", "honor", "gzip", "garbage", "err500", "slow", "big", "refused",
                 "params", NULL);
    /* Let the fast target scrape for a while next to the slow one. */
    int64_t deadline = now_ms() + 10000;
    while (server_get(f.srv, &f.srv->hits_valid) < 12 && now_ms() < deadline)
        bs_sleep_ms(20);
    bs_sleep_ms(100);
    char inst[64];
    snprintf(inst, sizeof(inst), "127.0.0.1:%d", p);
    struct result r;
    char want[512];

    /* up per job. */
    const struct {
        const char *job;
        double up;
    } ups[] = {{"valid", 1},   {"honor", 1}, {"gzip", 1},    {"garbage", 0}, {"err500", 0},
               {"slow", 0},    {"big", 0},   {"refused", 0}, {"params", 1}};
    for (size_t i = 0; i < sizeof(ups) / sizeof(ups[0]); i++) {
        query(f.db, &r, "__name__", "up", "job", ups[i].job, NULL);
        if (r.n != 1)
            fail_msg("up{job=%s}: %zu series", ups[i].job, r.n);
        assert_true(r.s[0].n >= 1);
        for (size_t k = 0; k < r.s[0].n; k++)
            if (r.s[0].v[k] != ups[i].up)
                fail_msg("up{job=%s} sample %zu = %g", ups[i].job, k, r.s[0].v[k]);
        result_free(&r);
    }
    assert_int_equal(server_get(f.srv, &f.srv->bad_headers), 0);

    /* The fast target kept its 200 ms schedule although /slow hangs for
     * 1 s on every scrape: no gap near a second between its scrapes. */
    query(f.db, &r, "__name__", "up", "job", "valid", NULL);
    assert_true(r.s[0].n >= 6);
    for (size_t k = 1; k < r.s[0].n; k++) {
        int64_t gap = r.s[0].t[k] - r.s[0].t[k - 1];
        if (gap < 100 || gap > 700)
            fail_msg("gap of %lld ms between scrapes of the fast target", (long long)gap);
    }
    size_t nscrapes = r.s[0].n;
    int64_t first_ts = r.s[0].t[0];
    result_free(&r);

    /* honor_labels false: target labels win, scraped ones become exported_. */
    query(f.db, &r, "__name__", "test_metric", "job", "valid", NULL);
    assert_int_equal(r.n, 2);
    snprintf(want, sizeof(want),
             "test_metric{env=\"test\", exported_instance=\"other\", exported_job=\"scraped\", "
             "instance=\"%s\", job=\"valid\", path=\"x\"}",
             inst);
    assert_non_null(find_series(&r, want));
    snprintf(want, sizeof(want),
             "test_metric{env=\"test\", instance=\"%s\", job=\"valid\", path=\"y\"}", inst);
    assert_non_null(find_series(&r, want));
    for (size_t i = 0; i < r.n; i++) {
        assert_int_equal(r.s[i].n, nscrapes);   /* one sample per scrape, no stale */
        assert_int_equal(r.s[i].t[0], first_ts); /* at the scrape's start time */
    }
    result_free(&r);

    /* honor_labels true: the scraped job and instance win. */
    query(f.db, &r, "__name__", "test_metric", "path", "x", "job", "scraped", NULL);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.s[0].labels,
                        "test_metric{instance=\"other\", job=\"scraped\", path=\"x\"}");
    result_free(&r);
    query(f.db, &r, "__name__", "test_metric", "job", "honor", NULL);
    assert_int_equal(r.n, 1);
    snprintf(want, sizeof(want), "test_metric{instance=\"%s\", job=\"honor\", path=\"y\"}", inst);
    assert_string_equal(r.s[0].labels, want);
    result_free(&r);

    /* honor_timestamps: true (default) keeps the exposed timestamp; false
     * stores the scrape time. */
    int64_t explicit_ts = f.srv->ts_explicit;
    query(f.db, &r, "__name__", "test_ts", "job", "valid", NULL);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.s[0].n, 1);
    assert_int_equal(r.s[0].t[0], explicit_ts);
    assert_true(r.s[0].v[0] == 5);
    result_free(&r);
    query(f.db, &r, "__name__", "test_ts", "job", "honor", NULL);
    assert_int_equal(r.n, 1);
    assert_true(r.s[0].n >= 2);
    assert_true(r.s[0].t[0] > explicit_ts + 50000);
    result_free(&r);

    /* Synthetic series. */
    query(f.db, &r, "__name__", "scrape_samples_scraped", "job", "valid", NULL);
    assert_int_equal(r.n, 1);
    snprintf(want, sizeof(want), "scrape_samples_scraped{env=\"test\", instance=\"%s\", job=\"valid\"}",
             inst);
    assert_string_equal(r.s[0].labels, want);
    for (size_t k = 0; k < r.s[0].n; k++)
        assert_true(r.s[0].v[k] == 3);
    result_free(&r);
    query(f.db, &r, "__name__", "scrape_samples_post_metric_relabeling", "job", "valid", NULL);
    assert_int_equal(r.n, 1);
    assert_true(r.s[0].v[0] == 3);
    result_free(&r);
    query(f.db, &r, "__name__", "scrape_series_added", "job", "valid", NULL);
    assert_int_equal(r.n, 1);
    assert_true(r.s[0].v[0] == 3);
    for (size_t k = 1; k < r.s[0].n; k++)
        assert_true(r.s[0].v[k] == 0);
    result_free(&r);
    query(f.db, &r, "__name__", "scrape_duration_seconds", "job", "valid", NULL);
    assert_int_equal(r.n, 1);
    for (size_t k = 0; k < r.s[0].n; k++)
        assert_true(r.s[0].v[k] > 0 && r.s[0].v[k] < 0.5);
    result_free(&r);
    query(f.db, &r, "__name__", "scrape_samples_scraped", "job", "garbage", NULL);
    assert_int_equal(r.n, 1);
    assert_true(r.s[0].v[0] == 0);
    result_free(&r);

    /* Nothing of a failed or partially valid body is stored. */
    query(f.db, &r, "__name__", "ok_metric", NULL);
    assert_int_equal(r.n, 0);
    query(f.db, &r, "__name__", "slow_metric", NULL);
    assert_int_equal(r.n, 0);

    /* gzip bodies are decoded. */
    query(f.db, &r, "__name__", "gz_metric", NULL);
    assert_int_equal(r.n, 1);
    assert_true(r.s[0].v[0] == 3.5);
    result_free(&r);

    /* Targets JSON. */
    char *j = targets_json(&f, "any");
    char v[512];
    assert_true(target_field(j, "valid", "health", v, sizeof(v)));
    assert_string_equal(v, "up");
    assert_true(target_field(j, "valid", "lastError", v, sizeof(v)));
    assert_string_equal(v, "");
    assert_true(target_field(j, "valid", "scrapeUrl", v, sizeof(v)));
    snprintf(want, sizeof(want), "http://%s/valid", inst);
    assert_string_equal(v, want);
    assert_true(target_field(j, "valid", "scrapeInterval", v, sizeof(v)));
    assert_string_equal(v, "200ms");
    assert_true(target_field(j, "valid", "scrapeTimeout", v, sizeof(v)));
    assert_string_equal(v, "150ms");
    assert_true(target_field(j, "valid", "lastScrapeDuration", v, sizeof(v)));
    assert_true(strtod(v, NULL) > 0);
    assert_true(target_field(j, "valid", "lastScrape", v, sizeof(v)));
    assert_int_equal(strlen(v), strlen("2026-11-26T18:00:00.123Z"));
    snprintf(want, sizeof(want),
             "\"labels\":{\"env\":\"test\",\"instance\":\"%s\",\"job\":\"valid\"},"
             "\"scrapePool\":\"valid\"",
             inst);
    assert_non_null(strstr(j, want));

    assert_true(target_field(j, "garbage", "health", v, sizeof(v)));
    assert_string_equal(v, "down");
    assert_true(target_field(j, "garbage", "lastError", v, sizeof(v)));
    assert_non_null(strstr(v, "line 2"));

    assert_true(target_field(j, "err500", "lastError", v, sizeof(v)));
    assert_string_equal(v, "server returned HTTP status 500 Internal Server Error");
    assert_true(target_field(j, "slow", "lastError", v, sizeof(v)));
    snprintf(want, sizeof(want), "Get \"http://%s/slow\": context deadline exceeded", inst);
    assert_string_equal(v, want);
    assert_true(target_field(j, "big", "lastError", v, sizeof(v)));
    assert_string_equal(v, "body size limit exceeded");
    assert_true(target_field(j, "refused", "lastError", v, sizeof(v)));
    snprintf(want, sizeof(want), "Get \"http://127.0.0.1:%d/metrics\": ", closed_port);
    assert_true(strncmp(v, want, strlen(want)) == 0);
    assert_true(strlen(v) > strlen(want));

    /* Params: encoded like url.Values, shown as __param_ labels. */
    assert_true(target_field(j, "params", "scrapeUrl", v, sizeof(v)));
    snprintf(want, sizeof(want), "http://%s/params?q=a+b&x=1&x=2", inst);
    assert_string_equal(v, want);
    assert_non_null(strstr(j, "\"__param_q\":\"a b\""));
    pthread_mutex_lock(&f.srv->mu);
    assert_string_equal(f.srv->last_query, "q=a+b&x=1&x=2");
    pthread_mutex_unlock(&f.srv->mu);
    /* Pools sorted by name. */
    assert_true(strstr(j, "\"scrapePool\":\"big\"") < strstr(j, "\"scrapePool\":\"err500\""));
    assert_true(strstr(j, "\"scrapePool\":\"slow\"") < strstr(j, "\"scrapePool\":\"valid\""));
    free(j);

    j = targets_json(&f, "dropped");
    assert_string_equal(j, "{\"activeTargets\":[],\"droppedTargets\":[]}");
    free(j);
    j = targets_json(&f, "bogus");
    assert_string_equal(j, "{\"activeTargets\":[],\"droppedTargets\":[]}");
    free(j);

    fixture_close(&f);
    close(cfd);
}

static bool is_stale(double v)
{
    return bs_float_bits(v) == BS_STALE_NAN_BITS;
}

static void test_scrape_staleness(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f);
    int p = f.srv->port;
    const char *yaml = "global: {scrape_interval: 200ms, scrape_timeout: 150ms}\n"
                       "scrape_configs:\n"
                       "  - job_name: chg\n"
                       "    metrics_path: /changing\n"
                       "    static_configs: [{targets: ['127.0.0.1:%d']}]\n"
                       "  - job_name: gone\n"
                       "    metrics_path: /valid\n"
                       "    static_configs: [{targets: ['127.0.0.1:%d']}]\n";
    apply(&f, yaml, p, p);
    /* Scrapes 1-2 expose a and b, 3-4 only a, from 5 on a broken body. */
    int64_t deadline = now_ms() + 10000;
    while (server_get(f.srv, &f.srv->hits_changing) < 6 && now_ms() < deadline)
        bs_sleep_ms(20);
    assert_true(server_get(f.srv, &f.srv->hits_changing) >= 6);
    deadline = now_ms() + 5000;
    while (!pool_health_is(&f, "chg", "down") && now_ms() < deadline)
        bs_sleep_ms(20);
    struct result r;

    /* b: two samples, then a stale marker at the third scrape. */
    query(f.db, &r, "__name__", "b", NULL);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.s[0].n, 3);
    assert_true(r.s[0].v[0] == 2 && r.s[0].v[1] == 2);
    assert_true(is_stale(r.s[0].v[2]));
    int64_t b_stale_at = r.s[0].t[2];
    result_free(&r);
    /* a: four good samples, then stale when the body turned bad; nothing of
     * the bad body's valid first line was stored. */
    query(f.db, &r, "__name__", "a", NULL);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.s[0].n, 5);
    for (size_t k = 0; k < 4; k++)
        assert_true(r.s[0].v[k] == 1);
    assert_true(r.s[0].t[2] == b_stale_at);
    assert_true(is_stale(r.s[0].v[4]));
    result_free(&r);
    /* up went 1,1,1,1,0; samples scraped 2,2,1,1,0; series added 2,0,... */
    query(f.db, &r, "__name__", "up", "job", "chg", NULL);
    assert_true(r.s[0].n >= 5);
    assert_true(r.s[0].v[3] == 1 && r.s[0].v[4] == 0);
    result_free(&r);
    query(f.db, &r, "__name__", "scrape_samples_scraped", "job", "chg", NULL);
    assert_true(r.s[0].n >= 5);
    assert_true(r.s[0].v[0] == 2 && r.s[0].v[1] == 2 && r.s[0].v[2] == 1 && r.s[0].v[3] == 1 &&
                r.s[0].v[4] == 0);
    result_free(&r);
    query(f.db, &r, "__name__", "scrape_series_added", "job", "chg", NULL);
    assert_true(r.s[0].v[0] == 2 && r.s[0].v[1] == 0 && r.s[0].v[2] == 0);
    result_free(&r);
    char *j = targets_json(&f, NULL);
    char v[512];
    assert_true(target_field(j, "chg", "lastError", v, sizeof(v)));
    assert_non_null(strstr(v, "line 2"));
    free(j);

    /* Removing a target marks all its series stale (explicit-timestamp
     * series excepted), including the synthetic ones; the kept target keeps
     * running. */
    query(f.db, &r, "__name__", "up", "job", "chg", NULL);
    size_t chg_before = r.s[0].n;
    result_free(&r);
    const char *yaml2 = "global: {scrape_interval: 200ms, scrape_timeout: 150ms}\n"
                        "scrape_configs:\n"
                        "  - job_name: chg\n"
                        "    metrics_path: /changing\n"
                        "    static_configs: [{targets: ['127.0.0.1:%d']}]\n";
    apply(&f, yaml2, p);
    deadline = now_ms() + 5000;
    bool done = false;
    while (!done && now_ms() < deadline) {
        query(f.db, &r, "__name__", "up", "job", "gone", NULL);
        done = r.n == 1 && r.s[0].n > 0 && is_stale(r.s[0].v[r.s[0].n - 1]);
        result_free(&r);
        if (!done)
            bs_sleep_ms(20);
    }
    assert_true(done);
    query(f.db, &r, "job", "gone", "__name__", "test_metric", NULL);
    assert_int_equal(r.n, 2);
    for (size_t i = 0; i < r.n; i++)
        assert_true(is_stale(r.s[i].v[r.s[i].n - 1]));
    result_free(&r);
    query(f.db, &r, "job", "gone", "__name__", "scrape_series_added", NULL);
    assert_true(is_stale(r.s[0].v[r.s[0].n - 1]));
    result_free(&r);
    query(f.db, &r, "job", "gone", "__name__", "test_ts", NULL);
    assert_int_equal(r.s[0].n, 1);
    assert_false(is_stale(r.s[0].v[0]));
    result_free(&r);
    j = targets_json(&f, NULL);
    assert_null(strstr(j, "\"scrapePool\":\"gone\""));
    assert_non_null(strstr(j, "\"scrapePool\":\"chg\""));
    free(j);
    bs_sleep_ms(500);
    query(f.db, &r, "__name__", "up", "job", "chg", NULL);
    assert_true(r.s[0].n > chg_before);   /* unchanged target kept scraping */
    assert_false(is_stale(r.s[0].v[r.s[0].n - 1]));
    result_free(&r);

    fixture_close(&f);
}

static void test_targets_json_unknown(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f);
    /* An hour-long interval: the first scrape is (almost surely) not due
     * during this test, so the target is "unknown". */
    const char *yaml = "scrape_configs:\n"
                       "  - job_name: later\n"
                       "    scrape_interval: 1h\n"
                       "    static_configs: [{targets: ['localhost:%d'], labels: {a: b}}]\n";
    apply(&f, yaml, f.srv->port);
    char *j = targets_json(&f, "active");
    char want[2048];
    int port = f.srv->port;
    snprintf(want, sizeof(want),
             "{\"activeTargets\":[{\"discoveredLabels\":{\"__address__\":\"localhost:%d\","
             "\"__metrics_path__\":\"/metrics\",\"__scheme__\":\"http\","
             "\"__scrape_interval__\":\"1h\",\"__scrape_timeout__\":\"10s\",\"a\":\"b\","
             "\"job\":\"later\"},\"labels\":{\"a\":\"b\",\"instance\":\"localhost:%d\","
             "\"job\":\"later\"},\"scrapePool\":\"later\","
             "\"scrapeUrl\":\"http://localhost:%d/metrics\","
             "\"globalUrl\":\"http://localhost:%d/metrics\",\"lastError\":\"\","
             "\"lastScrape\":\"0001-01-01T00:00:00Z\",\"lastScrapeDuration\":0,"
             "\"health\":\"unknown\",\"scrapeInterval\":\"1h\",\"scrapeTimeout\":\"10s\"}],"
             "\"droppedTargets\":[]}",
             port, port, port, port);
    assert_string_equal(j, want);
    free(j);

    /* As in Prometheus, a target whose labels are unusable after
     * relabeling is skipped (and logged), the others are applied; a target
     * relabeling drops is listed with its discovered labels. */
    const char *next = "scrape_configs:\n"
                       "  - job_name: x\n"
                       "    scrape_interval: 1h\n"
                       "    static_configs:\n"
                       "      - targets: ['h:1']\n"
                       "        labels: {__scrape_timeout__: 2h}\n"
                       "      - targets: ['h:2', 'dropme:3']\n"
                       "    relabel_configs:\n"
                       "      - {source_labels: [__address__], regex: 'dropme:.*', action: drop}\n";
    apply(&f, next, 0);
    j = targets_json(&f, NULL);
    assert_null(strstr(j, "\"scrapePool\":\"later\""));
    assert_null(strstr(j, "h:1"));
    assert_non_null(strstr(j, "\"scrapeUrl\":\"http://h:2/metrics\""));
    assert_non_null(strstr(j, "\"droppedTargets\":[{\"discoveredLabels\":{\"__address__\":"
                              "\"dropme:3\",\"__metrics_path__\":\"/metrics\",\"__scheme__\":"
                              "\"http\",\"__scrape_interval__\":\"1h\",\"__scrape_timeout__\":"
                              "\"10s\",\"job\":\"x\"}}]}"));
    free(j);
    j = targets_json(&f, "active");
    assert_non_null(strstr(j, "\"droppedTargets\":[]}"));
    free(j);
    fixture_close(&f);
}


/* ------------------------------------------------ relabeling, limits, auth */

/* Wait (at most 10 s) until pool's health is health; fails otherwise. */
static void wait_health(struct fixture *f, const char *pool, const char *health)
{
    int64_t deadline = now_ms() + 10000;
    while (!pool_health_is(f, pool, health)) {
        if (now_ms() > deadline) {
            char *j = targets_json(f, NULL);
            fail_msg("pool %s never became %s: %s", pool, health, j);
        }
        bs_sleep_ms(20);
    }
}

static void expect_last_error(struct fixture *f, const char *pool, const char *want)
{
    char *j = targets_json(f, NULL);
    char v[512];
    if (!target_field(j, pool, "lastError", v, sizeof(v)))
        fail_msg("no target in pool %s", pool);
    if (strcmp(v, want) != 0)
        fail_msg("pool %s: lastError \"%s\", want \"%s\"", pool, v, want);
    free(j);
}

/* The value of the newest sample of the one series matching name and job. */
static double last_value(struct fixture *f, const char *name, const char *job)
{
    struct result r;
    query(f->db, &r, "__name__", name, "job", job, NULL);
    if (r.n != 1 || r.s[0].n == 0)
        fail_msg("%s{job=%s}: %zu series", name, job, r.n);
    double v = r.s[0].v[r.s[0].n - 1];
    result_free(&r);
    return v;
}

static void test_scrape_relabeling(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f);
    int p = f.srv->port;
    const char *yaml =
        "global: {scrape_interval: 200ms, scrape_timeout: 150ms}\n"
        "scrape_configs:\n"
        "  - job_name: rl\n"
        "    params: {x: ['1']}\n"
        "    static_configs:\n"
        "      - targets: ['127.0.0.1:%d', 'dropme:1']\n"
        "        labels: {__meta_zone: z1}\n"
        "    relabel_configs:\n"
        "      - {source_labels: [__address__], regex: 'dropme.*', action: drop}\n"
        "      - {source_labels: [__meta_zone], target_label: zone}\n"
        "      - {target_label: __metrics_path__, replacement: /params}\n"
        "      - {target_label: __param_x, replacement: over}\n"
        "  - job_name: mrl\n"
        "    metrics_path: /valid\n"
        "    honor_timestamps: false\n"
        "    static_configs: [{targets: ['127.0.0.1:%d']}]\n"
        "    metric_relabel_configs:\n"
        "      - {source_labels: [path], regex: y, action: drop}\n"
        "      - {source_labels: [__name__], regex: test_ts, target_label: __name__,\n"
        "         replacement: renamed_ts}\n"
        "      - {regex: exported_instance, action: labeldrop}\n";
    apply(&f, yaml, p, p);
    wait_health(&f, "rl", "up");
    wait_health(&f, "mrl", "up");
    int64_t deadline = now_ms() + 5000;
    while (server_get(f.srv, &f.srv->hits_valid) < 3 && now_ms() < deadline)
        bs_sleep_ms(20);
    bs_sleep_ms(50);

    /* Target relabeling: URL from the relabeled __metrics_path__ and
     * __param_x, zone copied from a __meta_ label that is then gone. */
    char *j = targets_json(&f, NULL);
    char v[512], want[512];
    assert_true(target_field(j, "rl", "scrapeUrl", v, sizeof(v)));
    snprintf(want, sizeof(want), "http://127.0.0.1:%d/params?x=over", p);
    assert_string_equal(v, want);
    snprintf(want, sizeof(want),
             "\"labels\":{\"instance\":\"127.0.0.1:%d\",\"job\":\"rl\",\"zone\":\"z1\"}", p);
    assert_non_null(strstr(j, want));
    assert_non_null(strstr(j, "\"droppedTargets\":[{\"discoveredLabels\":{\"__address__\":"
                              "\"dropme:1\",\"__meta_zone\":\"z1\",\"__metrics_path__\":"
                              "\"/metrics\",\"__param_x\":\"1\",\"__scheme__\":\"http\","));
    free(j);
    pthread_mutex_lock(&f.srv->mu);
    assert_string_equal(f.srv->last_query, "x=over");
    pthread_mutex_unlock(&f.srv->mu);
    struct result r;
    query(f.db, &r, "__name__", "p", "job", "rl", NULL);
    assert_int_equal(r.n, 1);
    snprintf(want, sizeof(want), "p{instance=\"127.0.0.1:%d\", job=\"rl\", zone=\"z1\"}", p);
    assert_string_equal(r.s[0].labels, want);
    result_free(&r);

    /* Metric relabeling: path="y" dropped, test_ts renamed,
     * exported_instance removed; the counts say so. */
    query(f.db, &r, "__name__", "test_metric", "job", "mrl", NULL);
    assert_int_equal(r.n, 1);
    snprintf(want, sizeof(want),
             "test_metric{exported_job=\"scraped\", instance=\"127.0.0.1:%d\", job=\"mrl\", "
             "path=\"x\"}",
             p);
    assert_string_equal(r.s[0].labels, want);
    size_t n = r.s[0].n;
    result_free(&r);
    query(f.db, &r, "__name__", "test_ts", "job", "mrl", NULL);
    assert_int_equal(r.n, 0);
    query(f.db, &r, "__name__", "renamed_ts", "job", "mrl", NULL);
    assert_int_equal(r.n, 1);
    assert_true(r.s[0].n >= n - 1 && r.s[0].n <= n + 1);
    result_free(&r);
    assert_true(last_value(&f, "scrape_samples_scraped", "mrl") == 3);
    assert_true(last_value(&f, "scrape_samples_post_metric_relabeling", "mrl") == 2);
    query(f.db, &r, "__name__", "scrape_series_added", "job", "mrl", NULL);
    assert_true(r.s[0].n >= 2);
    assert_true(r.s[0].v[0] == 2);
    for (size_t k = 1; k < r.s[0].n; k++)
        assert_true(r.s[0].v[k] == 0); /* the cached verdict, dropped ones included */
    result_free(&r);
    fixture_close(&f);
}

static void test_scrape_limits(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f);
    int p = f.srv->port;
    /* /valid exposes 3 samples; its first series ends up with 6 labels:
     * __name__, exported_instance, exported_job, instance, job, path. */
    const char *yaml =
        "global: {scrape_interval: 200ms, scrape_timeout: 150ms, label_limit: 50}\n"
        "scrape_configs:\n"
        "  - job_name: sl\n"
        "    metrics_path: /valid\n"
        "    sample_limit: 2\n"
        "    static_configs: [{targets: ['127.0.0.1:%d']}]\n"
        "  - job_name: sl_ok\n"
        "    metrics_path: /valid\n"
        "    sample_limit: 3\n"
        "    static_configs: [{targets: ['127.0.0.1:%d']}]\n"
        "  - job_name: ll\n"
        "    metrics_path: /valid\n"
        "    label_limit: 5\n"
        "    static_configs: [{targets: ['127.0.0.1:%d']}]\n"
        "  - job_name: lnl\n"
        "    metrics_path: /valid\n"
        "    label_name_length_limit: 10\n"
        "    static_configs: [{targets: ['127.0.0.1:%d']}]\n"
        "  - job_name: lvl\n"
        "    metrics_path: /valid\n"
        "    label_value_length_limit: 5\n"
        "    static_configs: [{targets: ['127.0.0.1:%d']}]\n"
        "  - job_name: bsl\n"
        "    metrics_path: /valid\n"
        "    body_size_limit: 100B\n"
        "    static_configs: [{targets: ['127.0.0.1:%d']}]\n"
        "  - job_name: bsl_big\n"
        "    metrics_path: /big\n"
        "    body_size_limit: 1KiB\n"
        "    static_configs: [{targets: ['127.0.0.1:%d']}]\n"
        "  - job_name: tl\n"
        "    metrics_path: /valid\n"
        "    target_limit: 1\n"
        "    static_configs: [{targets: ['127.0.0.1:%d', 'localhost:%d']}]\n";
    apply(&f, yaml, p, p, p, p, p, p, p, p, p);
    const char *down[] = {"sl", "ll", "lnl", "lvl", "bsl", "bsl_big", "tl"};
    for (size_t i = 0; i < sizeof(down) / sizeof(down[0]); i++)
        wait_health(&f, down[i], "down");
    wait_health(&f, "sl_ok", "up");

    expect_last_error(&f, "sl", "sample limit exceeded");
    expect_last_error(&f, "ll",
                      "label_limit exceeded (metric: test_metric, number of labels: 6, limit: 5)");
    expect_last_error(&f, "lnl",
                      "label_name_length_limit exceeded (metric: test_metric, label name: "
                      "exported_instance, length: 17, limit: 10)");
    expect_last_error(&f, "lvl",
                      "label_value_length_limit exceeded (metric: test_metric, label name: "
                      "__name__, value: \"test_metric\", length: 11, limit: 5)");
    expect_last_error(&f, "bsl", "body size limit exceeded");
    expect_last_error(&f, "bsl_big", "body size limit exceeded");
    expect_last_error(&f, "tl", "target_limit exceeded (number of targets: 2, limit: 1)");

    /* A failed scrape stores nothing of the body; up is 0; the sample limit
     * reports the full counts, as Prometheus does. */
    struct result r;
    const char *nothing[] = {"sl", "ll", "lnl", "lvl", "bsl"};
    for (size_t i = 0; i < sizeof(nothing) / sizeof(nothing[0]); i++) {
        query(f.db, &r, "__name__", "test_metric", "job", nothing[i], NULL);
        if (r.n != 0)
            fail_msg("job %s stored test_metric", nothing[i]);
        assert_true(last_value(&f, "up", nothing[i]) == 0);
    }
    assert_true(last_value(&f, "scrape_samples_scraped", "sl") == 3);
    assert_true(last_value(&f, "scrape_samples_post_metric_relabeling", "sl") == 3);
    assert_true(last_value(&f, "scrape_samples_scraped", "ll") == 1);
    query(f.db, &r, "__name__", "test_metric", "job", "sl_ok", NULL);
    assert_int_equal(r.n, 2);
    result_free(&r);
    /* Both targets fail, none is scraped. wait_health saw the first one
     * down; the second target's first scrape slot may come a little later. */
    for (int tries = 0;; tries++) {
        query(f.db, &r, "__name__", "up", "job", "tl", NULL);
        if (r.n == 2 || tries == 100)
            break;
        result_free(&r);
        bs_sleep_ms(50);
    }
    assert_int_equal(r.n, 2);
    for (size_t i = 0; i < r.n; i++)
        assert_true(r.s[i].v[r.s[i].n - 1] == 0);
    result_free(&r);
    query(f.db, &r, "__name__", "test_metric", "job", "tl", NULL);
    assert_int_equal(r.n, 0);
    fixture_close(&f);
}

static char *write_file(const char *dir, const char *name, const char *text)
{
    char *path = NULL;
    assert_true(asprintf(&path, "%s/%s", dir, name) > 0);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    return path;
}

static void test_scrape_auth(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f);
    int p = f.srv->port;
    char *pw = write_file(f.dir, "pw", "p\n");
    char *cred = write_file(f.dir, "cred", "wrong\n");
    char *gone = write_file(f.dir, "gone", "tok");
    const char *yaml =
        "global: {scrape_interval: 200ms, scrape_timeout: 150ms}\n"
        "scrape_configs:\n"
        "  - job_name: basic\n"
        "    metrics_path: /auth\n"
        "    basic_auth: {username: u, password: p}\n"
        "    static_configs: [{targets: ['127.0.0.1:%d']}]\n"
        "  - job_name: basic_file\n"
        "    metrics_path: /auth\n"
        "    basic_auth: {username: u, password_file: %s}\n"
        "    static_configs: [{targets: ['127.0.0.1:%d']}]\n"
        "  - job_name: bearer\n"
        "    metrics_path: /auth\n"
        "    bearer_token: tok\n"
        "    static_configs: [{targets: ['127.0.0.1:%d']}]\n"
        "  - job_name: custom\n"
        "    metrics_path: /auth\n"
        "    authorization: {type: Custom, credentials: cred}\n"
        "    static_configs: [{targets: ['127.0.0.1:%d']}]\n"
        "  - job_name: cred_file\n"
        "    metrics_path: /auth\n"
        "    authorization: {credentials_file: %s}\n"
        "    static_configs: [{targets: ['127.0.0.1:%d']}]\n"
        "  - job_name: gone_file\n"
        "    metrics_path: /auth\n"
        "    bearer_token_file: %s\n"
        "    static_configs: [{targets: ['127.0.0.1:%d']}]\n"
        "  - job_name: wrong\n"
        "    metrics_path: /auth\n"
        "    basic_auth: {username: u, password: bad}\n"
        "    static_configs: [{targets: ['127.0.0.1:%d']}]\n"
        "  - job_name: redirect\n"
        "    metrics_path: /redirect\n"
        "    bearer_token: tok\n"
        "    static_configs: [{targets: ['127.0.0.1:%d']}]\n"
        "  - job_name: no_redirect\n"
        "    metrics_path: /redirect\n"
        "    follow_redirects: false\n"
        "    static_configs: [{targets: ['127.0.0.1:%d']}]\n";
    char yaml_text[4096];
    snprintf(yaml_text, sizeof(yaml_text), yaml, p, pw, p, p, p, cred, p, gone, p, p, p, p);
    struct config *c = NULL;
    struct bs_error err;
    if (config_load_string(yaml_text, strlen(yaml_text), "auth.yml", &c, &err) != 0)
        fail_msg("config: %s", err.msg);
    unlink(gone); /* existed at load time, gone at scrape time */
    assert_int_equal(scrape_manager_apply_config(f.m, c, &err), 0);
    config_free(c);

    const char *up[] = {"basic", "basic_file", "bearer", "custom", "redirect"};
    for (size_t i = 0; i < sizeof(up) / sizeof(up[0]); i++)
        wait_health(&f, up[i], "up");
    wait_health(&f, "cred_file", "down");
    wait_health(&f, "wrong", "down");
    wait_health(&f, "gone_file", "down");
    wait_health(&f, "no_redirect", "down");
    expect_last_error(&f, "cred_file", "server returned HTTP status 401 Unauthorized");
    expect_last_error(&f, "wrong", "server returned HTTP status 401 Unauthorized");
    expect_last_error(&f, "no_redirect", "server returned HTTP status 302 Found");
    char want[512];
    snprintf(want, sizeof(want),
             "Get \"http://127.0.0.1:%d/auth\": unable to read authorization credentials file "
             "%s: open %s: no such file or directory",
             p, gone, gone);
    expect_last_error(&f, "gone_file", want);
    /* The credentials file is read at every scrape: fixing it heals. */
    free(write_file(f.dir, "cred", "  tok\n"));
    wait_health(&f, "cred_file", "up");
    assert_true(last_value(&f, "auth_ok", "cred_file") == 1);
    free(pw);
    free(cred);
    free(gone);
    fixture_close(&f);
}


/* ----------------------------------------------------------------- TLS */

/* The TLS peer is a Python http.server wrapped in ssl (the system
 * /usr/bin/python3), started as a child process: it requires a client
 * certificate signed by the test CA, speaks at most TLS 1.2, and answers
 * with a series naming the client certificate's CN, the SNI name and the
 * Host header it received. The CA, server and client certificates are made
 * at test time with the openssl command (EC P-256, one day). */
static const char tls_server_py[] =
    "import http.server, ssl, sys\n"
    "d = sys.argv[1]\n"
    "ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n"
    "ctx.load_cert_chain(d + '/srv.crt', d + '/srv.key')\n"
    "ctx.load_verify_locations(d + '/ca.crt')\n"
    "ctx.verify_mode = ssl.CERT_REQUIRED\n"
    "ctx.maximum_version = ssl.TLSVersion.TLSv1_2\n"
    "def sni(sock, name, c):\n"
    "    sock.sni = name or ''\n"
    "ctx.sni_callback = sni\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def log_message(self, *a):\n"
    "        pass\n"
    "    def do_GET(self):\n"
    "        subj = dict(x[0] for x in self.connection.getpeercert()['subject'])\n"
    "        body = 'tls_metric{client=\"%s\",sni=\"%s\",host=\"%s\"} 1\\n' % (\n"
    "            subj.get('commonName', ''), getattr(self.connection, 'sni', ''),\n"
    "            self.headers.get('Host', ''))\n"
    "        b = body.encode()\n"
    "        self.send_response(200)\n"
    "        self.send_header('Content-Type', 'text/plain; version=0.0.4')\n"
    "        self.send_header('Content-Length', str(len(b)))\n"
    "        self.end_headers()\n"
    "        self.wfile.write(b)\n"
    "class S(http.server.ThreadingHTTPServer):\n"
    "    daemon_threads = True\n"
    "    def finish_request(self, request, addr):\n"
    "        request.settimeout(5)\n"
    "        try:\n"
    "            conn = ctx.wrap_socket(request, server_side=True)\n"
    "        except Exception:\n"
    "            return\n"
    "        self.RequestHandlerClass(conn, addr, self)\n"
    "srv = S(('127.0.0.1', 0), H)\n"
    "print(srv.server_address[1], flush=True)\n"
    "srv.serve_forever()\n";

static void run_sh(const char *dir, const char *cmd)
{
    char full[2048];
    snprintf(full, sizeof(full), "cd '%s' && { %s ; } >/dev/null 2>&1", dir, cmd);
    if (system(full) != 0)
        fail_msg("command failed: %s", cmd);
}

static void make_certs(const char *dir)
{
    const char *ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 %s -keyout ca.key -out ca.crt -days 1 -subj /CN=bongsu-test-ca",
             ec);
    run_sh(dir, cmd);
    run_sh(dir, "printf 'subjectAltName=DNS:bongsu.test\\nextendedKeyUsage=serverAuth\\n' > srv.ext"
                " && printf 'extendedKeyUsage=clientAuth\\n' > cli.ext");
    snprintf(cmd, sizeof(cmd),
             "openssl req %s -keyout srv.key -out srv.csr -subj /CN=bongsu.test && "
             "openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
             "-out srv.crt -days 1 -extfile srv.ext",
             ec);
    run_sh(dir, cmd);
    snprintf(cmd, sizeof(cmd),
             "openssl req %s -keyout cli.key -out cli.csr -subj /CN=scraper && "
             "openssl x509 -req -in cli.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
             "-out cli.crt -days 1 -extfile cli.ext",
             ec);
    run_sh(dir, cmd);
}

/* Start the Python TLS server; returns its pid, *port its port. */
static pid_t tls_server_start(const char *dir, int *port)
{
    char *py = write_file(dir, "server.py", tls_server_py);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execl("/usr/bin/python3", "python3", py, dir, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char buf[32] = "";
    size_t n = 0;
    while (n + 1 < sizeof(buf)) {
        ssize_t r = read(fds[0], buf + n, 1);
        if (r <= 0 || buf[n] == '\n')
            break;
        n++;
    }
    buf[n] = '\0';
    close(fds[0]);
    free(py);
    *port = atoi(buf);
    if (*port <= 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        fail_msg("the TLS test server did not start");
    }
    return pid;
}

static void test_scrape_tls(void **state)
{
    (void)state;
    if (access("/usr/bin/openssl", X_OK) != 0 || access("/usr/bin/python3", X_OK) != 0)
        skip(); /* the apt packages openssl and python3 provide them */
    struct fixture f;
    fixture_open(&f);
    make_certs(f.dir);
    int port;
    pid_t pid = tls_server_start(f.dir, &port);
    const char *d = f.dir;
    char yaml[4096];
    snprintf(
        yaml, sizeof(yaml),
        "global: {scrape_interval: 200ms, scrape_timeout: 150ms}\n"
        "scrape_configs:\n"
        "  - job_name: tls_ok\n"
        "    scheme: https\n"
        "    tls_config: {ca_file: %s/ca.crt, cert_file: %s/cli.crt, key_file: %s/cli.key,\n"
        "                 server_name: bongsu.test}\n"
        "    static_configs: [{targets: ['127.0.0.1:%d']}]\n"
        "  - job_name: tls_no_client_cert\n"
        "    scheme: https\n"
        "    tls_config: {ca_file: %s/ca.crt, server_name: bongsu.test}\n"
        "    static_configs: [{targets: ['127.0.0.1:%d']}]\n"
        "  - job_name: tls_no_server_name\n"
        "    scheme: https\n"
        "    tls_config: {ca_file: %s/ca.crt, cert_file: %s/cli.crt, key_file: %s/cli.key}\n"
        "    static_configs: [{targets: ['127.0.0.1:%d']}]\n"
        "  - job_name: tls_unknown_ca\n"
        "    scheme: https\n"
        "    tls_config: {ca_file: %s/cli.crt, cert_file: %s/cli.crt, key_file: %s/cli.key,\n"
        "                 server_name: bongsu.test}\n"
        "    static_configs: [{targets: ['127.0.0.1:%d']}]\n"
        "  - job_name: tls_insecure\n"
        "    scheme: https\n"
        "    tls_config: {insecure_skip_verify: true, cert_file: %s/cli.crt,\n"
        "                 key_file: %s/cli.key}\n"
        "    static_configs: [{targets: ['127.0.0.1:%d']}]\n"
        "  - job_name: tls_min13\n"
        "    scheme: https\n"
        "    tls_config: {ca_file: %s/ca.crt, cert_file: %s/cli.crt, key_file: %s/cli.key,\n"
        "                 server_name: bongsu.test, min_version: TLS13}\n"
        "    static_configs: [{targets: ['127.0.0.1:%d']}]\n",
        d, d, d, port, d, port, d, d, d, port, d, d, d, port, d, d, port, d, d, d, port);
    struct config *c = NULL;
    struct bs_error err;
    if (config_load_string(yaml, strlen(yaml), "tls.yml", &c, &err) != 0)
        fail_msg("config: %s", err.msg);
    assert_int_equal(scrape_manager_apply_config(f.m, c, &err), 0);
    config_free(c);

    wait_health(&f, "tls_ok", "up");
    wait_health(&f, "tls_insecure", "up");
    const char *down[] = {"tls_no_client_cert", "tls_no_server_name", "tls_unknown_ca",
                          "tls_min13"};
    char want[256];
    snprintf(want, sizeof(want), "Get \"https://127.0.0.1:%d/metrics\": ", port);
    for (size_t i = 0; i < sizeof(down) / sizeof(down[0]); i++) {
        wait_health(&f, down[i], "down");
        char *j = targets_json(&f, NULL);
        char v[512];
        assert_true(target_field(j, down[i], "lastError", v, sizeof(v)));
        if (strncmp(v, want, strlen(want)) != 0 || strlen(v) <= strlen(want))
            fail_msg("%s: lastError %s", down[i], v);
        free(j);
    }
    /* The client certificate was presented, SNI carried server_name, and
     * Host still names the target's address, as with Go. */
    struct result r;
    query(f.db, &r, "__name__", "tls_metric", "job", "tls_ok", NULL);
    assert_int_equal(r.n, 1);
    char lbl[512];
    snprintf(lbl, sizeof(lbl),
             "tls_metric{client=\"scraper\", host=\"127.0.0.1:%d\", instance=\"127.0.0.1:%d\", "
             "job=\"tls_ok\", sni=\"bongsu.test\"}",
             port, port);
    assert_string_equal(r.s[0].labels, lbl);
    result_free(&r);
    char *j = targets_json(&f, NULL);
    char v[256];
    assert_true(target_field(j, "tls_ok", "scrapeUrl", v, sizeof(v)));
    snprintf(want, sizeof(want), "https://127.0.0.1:%d/metrics", port);
    assert_string_equal(v, want);
    free(j);

    fixture_close(&f); /* removes the certificates too */
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
}

int main(void)
{
    bs_log_set_level(BS_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scrape_end_to_end),
        cmocka_unit_test(test_scrape_staleness),
        cmocka_unit_test(test_targets_json_unknown),
        cmocka_unit_test(test_scrape_relabeling),
        cmocka_unit_test(test_scrape_limits),
        cmocka_unit_test(test_scrape_auth),
        cmocka_unit_test(test_scrape_tls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
