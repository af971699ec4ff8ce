/* SPDX-License-Identifier: Apache-2.0
 *
 * The response every ingest entry point fills, the limits' defaults, and
 * the UTF-8 validator the push paths share.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/ingest_int.h"

void ingest_limits_default(struct ingest_limits *lim)
{
    memset(lim, 0, sizeof(*lim));
    lim->max_body_bytes = (size_t)32 << 20;
    lim->max_decoded_bytes = (size_t)256 << 20;
    lim->max_decode_memory = (size_t)1 << 30;
    lim->max_series_per_request = 1000000;
    lim->max_labels_per_series = 1024;
    lim->created_timestamp_zero = false;
}

void ingest_response_fini(struct ingest_response *r)
{
    if (!r)
        return;
    free(r->body);
    memset(r, 0, sizeof(*r));
}

static void response_set_body(struct ingest_response *r, int status, char *body, size_t len)
{
    free(r->body);
    r->status = status;
    r->body = body;
    r->body_len = body ? len : 0;
    r->content_type = body ? INGEST_TEXT_PLAIN : NULL;
}

int ingest_response_text(struct ingest_response *r, int status, const char *fmt, ...)
{
    struct bs_buf b;
    bs_buf_init(&b, 0);
    va_list ap;
    va_start(ap, fmt);
    int rc = bs_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    if (rc == 0)
        rc = bs_buf_putc(&b, '\n');
    if (rc) {
        bs_buf_fini(&b);
        response_set_body(r, status, NULL, 0);
        return BS_ENOMEM;
    }
    return ingest_response_take(r, status, &b);
}

int ingest_response_take(struct ingest_response *r, int status, struct bs_buf *b)
{
    size_t len = 0;
    char *body = b->data ? bs_buf_steal(b, &len) : NULL;
    response_set_body(r, status, body, len);
    return 0;
}

void ingest_response_header(struct ingest_response *r, const char *name, const char *fmt, ...)
{
    if (r->nheaders >= INGEST_MAX_HEADERS)
        return;
    struct ingest_header *h = &r->headers[r->nheaders++];
    h->name = name;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(h->value, sizeof(h->value), fmt, ap);
    va_end(ap);
}

bool ingest_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        /* ASCII fast path, eight bytes at a time. */
        while (end - p >= 8) {
            uint64_t w;
            memcpy(&w, p, 8);
            if (w & UINT64_C(0x8080808080808080))
                break;
            p += 8;
        }
        if (p == end)
            break;
        unsigned c = *p;
        if (c < 0x80) {
            p++;
            continue;
        }
        size_t need;
        unsigned lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0)
                lo = 0xA0;
            else if (c == 0xED)
                hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0)
                lo = 0x90;
            else if (c == 0xF4)
                hi = 0x8F;
        } else {
            return false;
        }
        if ((size_t)(end - p) <= need)
            return false;
        if (p[1] < lo || p[1] > hi)
            return false;
        for (size_t i = 2; i <= need; i++)
            if ((p[i] & 0xC0) != 0x80)
                return false;
        p += need + 1;
    }
    return true;
}
