/* SPDX-License-Identifier: Apache-2.0
 *
 * Response helpers: plain-text answers and the Prometheus API envelope
 * ({"status":"success","data":...,"warnings":[...]} and
 * {"status":"error","errorType":...,"error":...}), plus gzip encoding of
 * large bodies for clients that accept it.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "http/http_int.h"

int http_text(struct http_response *rs, int status, const char *text)
{
    rs->status = status;
    rs->content_type = "text/plain; charset=utf-8";
    bs_buf_reset(&rs->body);
    return bs_buf_puts(&rs->body, text);
}

int http_api_begin(struct http_response *rs)
{
    rs->status = 200;
    rs->content_type = "application/json";
    rs->cors = true;
    bs_buf_reset(&rs->body);
    return bs_buf_puts(&rs->body, "{\"status\":\"success\",\"data\":");
}

static int put_string_array(struct bs_buf *b, const char *key, char *const *v, size_t n)
{
    if (n == 0)
        return 0;
    int rc = bs_buf_printf(b, ",\"%s\":[", key);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (i > 0)
            rc = bs_buf_putc(b, ',');
        if (rc == 0)
            rc = bs_json_string(b, v[i], strlen(v[i]));
    }
    return rc ? rc : bs_buf_putc(b, ']');
}

int http_api_end_annotated(struct http_response *rs, char *const *warnings, size_t nwarn,
                           char *const *infos, size_t ninfo)
{
    int rc = put_string_array(&rs->body, "warnings", warnings, nwarn);
    if (rc == 0)
        rc = put_string_array(&rs->body, "infos", infos, ninfo);
    if (rc == 0)
        rc = bs_buf_putc(&rs->body, '}');
    return rc;
}

int http_api_end(struct http_response *rs, char *const *warnings, size_t nwarn)
{
    return http_api_end_annotated(rs, warnings, nwarn, NULL, 0);
}

int http_status_for_error_type(const char *type)
{
    if (strcmp(type, "bad_data") == 0)
        return 400;
    if (strcmp(type, "execution") == 0)
        return 422;
    if (strcmp(type, "timeout") == 0 || strcmp(type, "unavailable") == 0)
        return 503;
    if (strcmp(type, "canceled") == 0)
        return 499;
    if (strcmp(type, "not_found") == 0)
        return 404;
    return 500;
}

int http_api_error(struct http_response *rs, int status, const char *type, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    rs->status = status;
    rs->content_type = "application/json";
    rs->cors = true;
    /* The error answer must fit even when the body hit its cap. */
    bs_buf_fini(&rs->body);
    bs_buf_init(&rs->body, 0);
    int rc = bs_buf_puts(&rs->body, "{\"status\":\"error\",\"errorType\":");
    if (rc == 0)
        rc = bs_json_string(&rs->body, type, strlen(type));
    if (rc == 0)
        rc = bs_buf_puts(&rs->body, ",\"error\":");
    if (rc == 0)
        rc = bs_json_string(&rs->body, msg, strlen(msg));
    if (rc == 0)
        rc = bs_buf_putc(&rs->body, '}');
    return rc;
}

/* ------------------------------------------------------------------ gzip */

bool http_accepts_gzip(const char *ae)
{
    if (!ae)
        return false;
    const char *p = ae;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *tok = p;
        while (*p && *p != ',' && *p != ';' && *p != ' ' && *p != '\t')
            p++;
        size_t tl = (size_t)(p - tok);
        bool is_gzip = (tl == 4 && strncasecmp(tok, "gzip", 4) == 0) || (tl == 1 && tok[0] == '*');
        /* Parameters: only q=0 (q=0.0, q=0.000) turns it off. */
        bool q_zero = false;
        while (*p && *p != ',') {
            if (*p == ';') {
                p++;
                while (*p == ' ' || *p == '\t')
                    p++;
                if ((p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
                    const char *v = p + 2;
                    q_zero = v[0] == '0';
                    for (v++; q_zero && *v && *v != ',' && *v != ';' && *v != ' '; v++)
                        if (*v != '.' && *v != '0')
                            q_zero = false;
                }
                continue;
            }
            p++;
        }
        if (is_gzip && !q_zero)
            return true;
    }
    return false;
}

int http_gzip(const char *s, size_t n, char **out, size_t *out_len)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    /* windowBits 15 + 16 selects the gzip wrapper. Level 1: API JSON is
     * repetitive enough that the fastest level still shrinks it several
     * times, while level 6 cost a third of the CPU of a 17 MB range query
     * response (bench/promql_bench.py). */
    if (deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return BS_ENOMEM;
    uLong bound = deflateBound(&z, (uLong)n);
    char *dst = malloc(bound);
    if (!dst) {
        deflateEnd(&z);
        return BS_ENOMEM;
    }
    z.next_in = (Bytef *)(uintptr_t)s;
    z.avail_in = (uInt)n;
    z.next_out = (Bytef *)dst;
    z.avail_out = (uInt)bound;
    int zr = deflate(&z, Z_FINISH);
    size_t len = z.total_out;
    deflateEnd(&z);
    if (zr != Z_STREAM_END) {
        free(dst);
        return BS_EIO;
    }
    *out = dst;
    *out_len = len;
    return 0;
}
