/* SPDX-License-Identifier: Apache-2.0
 *
 * Form parameters: application/x-www-form-urlencoded decoding for query
 * strings and POST bodies, with Go's url.ParseQuery semantics (what
 * Prometheus sees): pairs split on '&', '+' is a space, %XX a byte, pairs
 * with a malformed escape dropped, repeated names kept in order.
 */
#include <stdlib.h>
#include <string.h>

#include "http/http_int.h"

void http_params_init(struct http_params *p)
{
    memset(p, 0, sizeof(*p));
}

void http_params_fini(struct http_params *p)
{
    for (size_t i = 0; i < p->n; i++) {
        free(p->v[i].name);
        free(p->v[i].value);
    }
    free(p->v);
    memset(p, 0, sizeof(*p));
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

long http_url_decode(const char *s, size_t n, bool plus_space, char *dst)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return -1;
            int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            dst[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else if (c == '+' && plus_space) {
            dst[o++] = ' ';
        } else {
            dst[o++] = c;
        }
    }
    dst[o] = '\0';
    return (long)o;
}

static char *decode_dup(const char *s, size_t n, bool *bad)
{
    char *d = malloc(n + 1);
    if (!d)
        return NULL;
    if (http_url_decode(s, n, true, d) < 0) {
        *bad = true;
        free(d);
        return NULL;
    }
    return d;
}

int http_params_parse(struct http_params *p, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        const char *pair = s + i;
        const char *amp = memchr(pair, '&', n - i);
        size_t plen = amp ? (size_t)(amp - pair) : n - i;
        i += plen + (amp ? 1 : 0);
        if (plen == 0)
            continue;
        const char *eq = memchr(pair, '=', plen);
        size_t klen = eq ? (size_t)(eq - pair) : plen;
        const char *val = eq ? eq + 1 : pair + plen;
        size_t vlen = eq ? plen - klen - 1 : 0;

        if (p->n >= HTTP_MAX_PARAMS)
            return BS_ELIMIT;
        bool bad = false;
        char *k = decode_dup(pair, klen, &bad);
        if (!k) {
            if (bad)
                continue;
            return BS_ENOMEM;
        }
        char *v = decode_dup(val, vlen, &bad);
        if (!v) {
            free(k);
            if (bad)
                continue;
            return BS_ENOMEM;
        }
        if (p->n == p->cap) {
            size_t ncap = p->cap ? p->cap * 2 : 8;
            struct http_param *nv = realloc(p->v, ncap * sizeof(*nv));
            if (!nv) {
                free(k);
                free(v);
                return BS_ENOMEM;
            }
            p->v = nv;
            p->cap = ncap;
        }
        p->v[p->n].name = k;
        p->v[p->n].value = v;
        p->n++;
    }
    return 0;
}

const char *http_params_get(const struct http_params *p, const char *name)
{
    return http_params_nth(p, name, 0);
}

size_t http_params_count(const struct http_params *p, const char *name)
{
    size_t c = 0;
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->v[i].name, name) == 0)
            c++;
    return c;
}

const char *http_params_nth(const struct http_params *p, const char *name, size_t nth)
{
    for (size_t i = 0; i < p->n; i++) {
        if (strcmp(p->v[i].name, name) == 0) {
            if (nth == 0)
                return p->v[i].value;
            nth--;
        }
    }
    return NULL;
}
