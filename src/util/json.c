/* SPDX-License-Identifier: Apache-2.0
 *
 * JSON string literals as Prometheus's API writes them (Go's encoding/json,
 * which jsoniter's standard-compatible config mirrors): " and \ escaped,
 * \n \r \t \b \f by name, other control characters as \u00XX, <, > and &
 * as \u003c \u003e \u0026 (HTML-safe, as Go does by default), U+2028 and
 * U+2029 escaped, and every byte that is not part of valid UTF-8 replaced
 * by \ufffd. Runs of plain bytes are copied in one append.
 */
#include "util/util.h"

/* Length of the valid UTF-8 sequence at p (1..4), or 0 if invalid. Rejects
 * overlong forms, surrogates and code points beyond U+10FFFF. */
static size_t utf8_valid_len(const unsigned char *p, size_t n, uint32_t *cp)
{
    unsigned char c = p[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        if (n < 2 || (p[1] & 0xc0) != 0x80)
            return 0;
        *cp = (uint32_t)(c & 0x1f) << 6 | (p[1] & 0x3f);
        return 2;
    }
    if (c >= 0xe0 && c <= 0xef) {
        if (n < 3 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80)
            return 0;
        if (c == 0xe0 && p[1] < 0xa0)
            return 0;   /* overlong */
        if (c == 0xed && p[1] >= 0xa0)
            return 0;   /* surrogate */
        *cp = (uint32_t)(c & 0x0f) << 12 | (uint32_t)(p[1] & 0x3f) << 6 | (p[2] & 0x3f);
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (n < 4 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 || (p[3] & 0xc0) != 0x80)
            return 0;
        if (c == 0xf0 && p[1] < 0x90)
            return 0;   /* overlong */
        if (c == 0xf4 && p[1] >= 0x90)
            return 0;   /* > U+10FFFF */
        *cp = (uint32_t)(c & 0x07) << 18 | (uint32_t)(p[1] & 0x3f) << 12 |
              (uint32_t)(p[2] & 0x3f) << 6 | (p[3] & 0x3f);
        return 4;
    }
    return 0;
}

int bs_json_string(struct bs_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run = 0;
    int rc;

    if ((rc = bs_buf_reserve(b, n + 2)) != 0)
        return rc;
    if ((rc = bs_buf_putc(b, '"')) != 0)
        return rc;
    while (i < n) {
        unsigned char c = p[i];
        const char *esc = NULL;
        char ubuf[7];
        size_t adv = 1;
        uint32_t cp;

        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&') {
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t l = utf8_valid_len(p + i, n - i, &cp);
            if (l != 0 && cp != 0x2028 && cp != 0x2029) {
                i += l;
                continue;
            }
            if (l == 0) {
                esc = "\\ufffd";
            } else {
                esc = cp == 0x2028 ? "\\u2028" : "\\u2029";
                adv = l;
            }
        } else {
            switch (c) {
            case '"': esc = "\\\""; break;
            case '\\': esc = "\\\\"; break;
            case '\n': esc = "\\n"; break;
            case '\r': esc = "\\r"; break;
            case '\t': esc = "\\t"; break;
            case '\b': esc = "\\b"; break;
            case '\f': esc = "\\f"; break;
            default:
                ubuf[0] = '\\';
                ubuf[1] = 'u';
                ubuf[2] = '0';
                ubuf[3] = '0';
                ubuf[4] = hex[c >> 4];
                ubuf[5] = hex[c & 15];
                ubuf[6] = '\0';
                esc = ubuf;
            }
        }
        /* Flush the plain run before this byte, then the escape. */
        if (i > run && (rc = bs_buf_append(b, s + run, i - run)) != 0)
            return rc;
        if ((rc = bs_buf_puts(b, esc)) != 0)
            return rc;
        i += adv;
        run = i;
    }
    if (i > run && (rc = bs_buf_append(b, s + run, i - run)) != 0)
        return rc;
    return bs_buf_putc(b, '"');
}
