/* SPDX-License-Identifier: Apache-2.0
 *
 * Helpers shared by the scrape unit tests that run a real scrape manager
 * against a small HTTP server thread (header-only, static): the server,
 * which answers every path starting with a route's prefix with that
 * route's Content-Type and body and records the Accept header of each
 * request path; a fixture with a temporary tsdb, the server and a scrape
 * manager; applying a YAML config; and reading a target's fields from the
 * /api/v1/targets JSON.
 */
#ifndef BONGSU_TEST_SCRAPE_UTIL_H
#define BONGSU_TEST_SCRAPE_UTIL_H

#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "config/config.h"
#include "scrape/scrape.h"
#include "tsdb/tsdb.h"
#include "util/util.h"

/* ------------------------------------------------------------ test server */

/* One route: every path starting with prefix is answered with this
 * Content-Type (NULL: no such header) and body. */
struct route {
    const char *prefix;
    const char *ctype;
    char body[2048];
    /* When alt is set: hits 1..3 get body, 4..8 alt, then alt2. */
    const char *alt, *alt2;
    int hits;
};

#define NSEEN 32

struct server {
    int lfd, port, wake[2];
    pthread_t th;
    pthread_mutex_t mu;
    struct route *routes;
    size_t nroutes;
    /* guarded by mu: the last Accept header per request path */
    char seen_path[NSEEN][64];
    char seen_accept[NSEEN][512];
    size_t nseen;
};

static BS_UNUSED int64_t now_ms(void)
{
    return bs_monotonic_ns() / 1000000;
}

static BS_UNUSED void serve_one(struct server *s, int fd)
{
    char in[8192];
    size_t n = 0;
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    while (n + 1 < sizeof(in)) {
        ssize_t r = recv(fd, in + n, sizeof(in) - 1 - n, 0);
        if (r <= 0)
            return;
        n += (size_t)r;
        in[n] = '\0';
        if (strstr(in, "\r\n\r\n"))
            break;
    }
    char path[64] = "", accept[512] = "";
    sscanf(in, "GET %63s", path);
    const char *a = strcasestr(in, "\r\nAccept: ");
    if (a)
        sscanf(a + 10, "%511[^\r]", accept);
    pthread_mutex_lock(&s->mu);
    size_t slot = 0;
    while (slot < s->nseen && strcmp(s->seen_path[slot], path) != 0)
        slot++;
    if (slot < NSEEN) {
        if (slot == s->nseen)
            s->nseen++;
        snprintf(s->seen_path[slot], sizeof(s->seen_path[slot]), "%s", path);
        snprintf(s->seen_accept[slot], sizeof(s->seen_accept[slot]), "%s", accept);
    }
    const struct route *rt = NULL;
    for (size_t i = 0; i < s->nroutes && !rt; i++)
        if (strncmp(path, s->routes[i].prefix, strlen(s->routes[i].prefix)) == 0)
            rt = &s->routes[i];
    char out[4096];
    int len;
    if (!rt) {
        len = snprintf(out, sizeof(out),
                       "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    } else {
        char ct[160] = "";
        if (rt->ctype)
            snprintf(ct, sizeof(ct), "Content-Type: %s\r\n", rt->ctype);
        struct route *w = (struct route *)rt;
        int h = ++w->hits;
        const char *body = !rt->alt || h <= 3 ? rt->body : h <= 8 ? rt->alt : rt->alt2;
        len = snprintf(out, sizeof(out),
                       "HTTP/1.1 200 OK\r\n%sContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                       ct, strlen(body), body);
    }
    pthread_mutex_unlock(&s->mu);
    size_t off = 0;
    while (off < (size_t)len) {
        ssize_t w = send(fd, out + off, (size_t)len - off, MSG_NOSIGNAL);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
}

static BS_UNUSED void *server_main(void *arg)
{
    struct server *s = arg;
    for (;;) {
        struct pollfd pf[2] = {{.fd = s->wake[0], .events = POLLIN},
                               {.fd = s->lfd, .events = POLLIN}};
        if (poll(pf, 2, 1000) < 0 && errno != EINTR)
            break;
        if (pf[0].revents)
            break;
        if (!(pf[1].revents & POLLIN))
            continue;
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        serve_one(s, fd);
        close(fd);
    }
    return NULL;
}

static BS_UNUSED struct server *server_start(struct route *routes, size_t nroutes)
{
    struct server *s = calloc(1, sizeof(*s));
    s->routes = routes;
    s->nroutes = nroutes;
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(s->lfd >= 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t sl = sizeof(sa);
    assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&sa, &sl), 0);
    s->port = ntohs(sa.sin_port);
    assert_int_equal(listen(s->lfd, 64), 0);
    assert_int_equal(pipe(s->wake), 0);
    pthread_mutex_init(&s->mu, NULL);
    assert_int_equal(pthread_create(&s->th, NULL, server_main, s), 0);
    return s;
}

static BS_UNUSED void server_stop(struct server *s)
{
    assert_int_equal(write(s->wake[1], "x", 1), 1);
    pthread_join(s->th, NULL);
    close(s->lfd);
    close(s->wake[0]);
    close(s->wake[1]);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* The Accept header of the last request for path, or "" if none came. */
static BS_UNUSED void server_accept(struct server *s, const char *path, char *out, size_t cap)
{
    pthread_mutex_lock(&s->mu);
    out[0] = '\0';
    for (size_t i = 0; i < s->nseen; i++)
        if (strcmp(s->seen_path[i], path) == 0)
            snprintf(out, cap, "%s", s->seen_accept[i]);
    pthread_mutex_unlock(&s->mu);
}

/* ------------------------------------------------------------- fixture */

struct fixture {
    char dir[64];
    struct tsdb *db;
    struct server *srv;
    struct scrape_manager *m;
};

static BS_UNUSED int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static BS_UNUSED void fixture_open(struct fixture *f, struct route *routes, size_t nroutes)
{
    struct tsdb_options o;
    struct bs_error err;
    snprintf(f->dir, sizeof(f->dir), "/tmp/bongsu-scrape-test-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    tsdb_options_default(&o);
    o.dir = f->dir;
    if (tsdb_open(&f->db, &o, &err) != 0)
        fail_msg("tsdb_open: %s", err.msg);
    f->srv = server_start(routes, nroutes);
    f->m = scrape_manager_new(f->db);
    assert_non_null(f->m);
}

static BS_UNUSED void fixture_close(struct fixture *f)
{
    scrape_manager_free(f->m);
    server_stop(f->srv);
    tsdb_close(f->db);
    nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static BS_UNUSED void apply_yaml(struct fixture *f, const char *yaml)
{
    struct config *c = NULL;
    struct bs_error err;
    if (config_load_string(yaml, strlen(yaml), "test.yml", &c, &err) != 0)
        fail_msg("config: %s", err.msg);
    if (scrape_manager_apply_config(f->m, c, &err) != 0)
        fail_msg("apply: %s", err.msg);
    config_free(c);
}

/* A string field of the target object whose scrapeUrl ends with path, JSON
 * unescaped (\" \\ \n and ASCII \u00XX). false if there is no such target. */
static BS_UNUSED bool target_field(struct fixture *f, const char *path, const char *key, char *out,
                                   size_t cap)
{
    struct bs_buf b;
    bs_buf_init(&b, 0);
    assert_int_equal(scrape_manager_targets_json(f->m, NULL, &b), 0);
    char pat[160];
    snprintf(pat, sizeof(pat), "%s\",\"globalUrl\"", path);
    const char *p = strstr(b.data, pat);
    bool found = false;
    if (p) {
        snprintf(pat, sizeof(pat), "\"%s\":\"", key);
        p = strstr(p, pat);
    }
    if (p) {
        size_t n = 0;
        for (p += strlen(pat); *p && *p != '"' && n + 1 < cap; p++) {
            if (*p == '\\' && p[1] == 'u') {
                char hex[5] = {p[2], p[3], p[4], p[5], 0};
                out[n++] = (char)strtol(hex, NULL, 16);
                p += 5;
                continue;
            }
            if (*p == '\\') {
                p++;
                out[n++] = *p == 'n' ? '\n' : *p;
                continue;
            }
            out[n++] = *p;
        }
        out[n] = '\0';
        found = true;
    }
    bs_buf_fini(&b);
    return found;
}

/* Wait (at most 10 s) until the target of path has been scraped twice
 * with the health it has now: "up" or "down". */
static BS_UNUSED void wait_health(struct fixture *f, const char *path, const char *want)
{
    int64_t deadline = now_ms() + 10000;
    char h[32];
    while (!target_field(f, path, "health", h, sizeof(h)) || strcmp(h, want) != 0) {
        if (now_ms() > deadline) {
            char e[512] = "";
            target_field(f, path, "lastError", e, sizeof(e));
            fail_msg("target %s is %s, not %s (lastError: %s)", path, h, want, e);
        }
        bs_sleep_ms(20);
    }
}

#endif
