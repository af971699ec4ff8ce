/* SPDX-License-Identifier: Apache-2.0
 *
 * Growable byte buffer with a cap. Capacity doubles; one byte beyond len is
 * always reserved for the terminating NUL. Appending past `max` bytes of
 * content fails with BS_ELIMIT and leaves the buffer as it was.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

void bs_buf_init(struct bs_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void bs_buf_fini(struct bs_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void bs_buf_reset(struct bs_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

int bs_buf_reserve(struct bs_buf *b, size_t extra)
{
    size_t want, ncap;
    char *p;

    if (extra > SIZE_MAX - 1 - b->len)
        return BS_ELIMIT;
    want = b->len + extra + 1;
    if (b->max && want - 1 > b->max)
        return BS_ELIMIT;
    if (want <= b->cap)
        return 0;
    ncap = b->cap ? b->cap : 64;
    while (ncap < want) {
        if (ncap > SIZE_MAX / 2) {
            ncap = want;
            break;
        }
        ncap *= 2;
    }
    /* Never allocate far beyond the cap. */
    if (b->max && ncap > b->max + 1)
        ncap = b->max + 1;
    p = realloc(b->data, ncap);
    if (!p)
        return BS_ENOMEM;
    b->data = p;
    b->cap = ncap;
    return 0;
}

int bs_buf_append(struct bs_buf *b, const void *p, size_t n)
{
    int rc = bs_buf_reserve(b, n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int bs_buf_puts(struct bs_buf *b, const char *s)
{
    return bs_buf_append(b, s, strlen(s));
}

int bs_buf_putc(struct bs_buf *b, char c)
{
    return bs_buf_append(b, &c, 1);
}

size_t bs_utf8_encode(uint32_t cp, char *d)
{
    if (cp < 0x80) {
        d[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        d[0] = (char)(0xc0 | (cp >> 6));
        d[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        d[0] = (char)(0xe0 | (cp >> 12));
        d[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        d[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    d[0] = (char)(0xf0 | (cp >> 18));
    d[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    d[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    d[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

int bs_buf_put_utf8(struct bs_buf *b, uint32_t cp)
{
    char u[4];
    return bs_buf_append(b, u, bs_utf8_encode(cp, u));
}

int bs_buf_printf(struct bs_buf *b, const char *fmt, ...)
{
    va_list ap;
    int rc;
    va_start(ap, fmt);
    rc = bs_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

int bs_buf_vprintf(struct bs_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    int n;
    size_t room = b->cap > b->len ? b->cap - b->len : 0;
    int rc;

    va_copy(ap2, ap);
    n = vsnprintf(room ? b->data + b->len : NULL, room, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return BS_EINVAL;
    if ((size_t)n < room) {
        /* Fitted, but the cap still applies. */
        if (b->max && b->len + (size_t)n > b->max) {
            b->data[b->len] = '\0';
            return BS_ELIMIT;
        }
        b->len += (size_t)n;
        return 0;
    }
    rc = bs_buf_reserve(b, (size_t)n);
    if (rc) {
        if (b->data)
            b->data[b->len] = '\0';
        return rc;
    }
    va_copy(ap2, ap);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    b->len += (size_t)n;
    return 0;
}

char *bs_buf_steal(struct bs_buf *b, size_t *len_out)
{
    char *p = b->data;
    size_t len = b->len;
    if (!p) {
        p = malloc(1);
        if (!p)
            return NULL;
        p[0] = '\0';
        len = 0;
    }
    if (len_out)
        *len_out = len;
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}
