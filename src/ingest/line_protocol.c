/* SPDX-License-Identifier: Apache-2.0
 *
 * InfluxDB line protocol tokenizer: one line at a time, no allocation,
 * tokens pointing into the request body.
 *
 *   measurement[,tag_key=tag_value...] field_key=field_value[,...] [timestamp]
 *
 * Escapes, as InfluxDB 1.x reads them: in the measurement "\," and "\ ";
 * in tag keys, tag values and field keys also "\="; in string field values
 * "\"" and "\\". A backslash before any other byte is an ordinary byte.
 * Field values: float ("1", "-1.5", "1e3"), integer ("1i"), unsigned
 * ("1u"), boolean (t T true True TRUE f F false False FALSE) and string
 * ("..." which may contain newlines). Blank lines and lines starting with
 * '#' are skipped; runs of spaces between sections are allowed, and so is
 * leading and trailing white space. Reasons for a refused line use
 * InfluxDB's words so that clients matching on them keep working.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/push_int.h"

void lp_parser_init(struct lp_parser *p, const char *buf, size_t len)
{
    p->buf = buf;
    p->len = len;
    p->pos = 0;
    p->lineno = 0;
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* Scan a key or tag/measurement token from *pos: stop at an unescaped ',',
 * ' ' or (with eq) '=', and at '\n', a NUL byte or the end. Returns the
 * stopping position. */
static size_t scan_token(const char *b, size_t len, size_t pos, bool eq, bool *esc)
{
    *esc = false;
    while (pos < len) {
        char c = b[pos];
        if (c == '\\' && pos + 1 < len && b[pos + 1] != '\n') {
            *esc = true;
            pos += 2;
            continue;
        }
        if (c == '\n' || c == ',' || c == ' ' || c == '\0' || (eq && c == '='))
            return pos;
        pos++;
    }
    return pos;
}

static size_t line_end(const char *b, size_t len, size_t pos)
{
    const char *nl = pos < len ? memchr(b + pos, '\n', len - pos) : NULL;
    return nl ? (size_t)(nl - b) : len;
}

static bool all_digits(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* Strict float syntax: [+-]? (digits [. digits*] | . digits) ([eE][+-]?digits)? */
static bool float_syntax(const char *s, size_t n)
{
    size_t i = 0, d = 0;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        i++;
    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++, d++;
    if (i < n && s[i] == '.') {
        i++;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++, d++;
    }
    if (d == 0)
        return false;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t e = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++, e++;
        if (e == 0)
            return false;
    }
    return i == n;
}

static bool word_is(const char *s, size_t n, const char *w)
{
    return strlen(w) == n && memcmp(s, w, n) == 0;
}

/* A plain decimal ([+-]digits[.digits], float_syntax() already checked)
 * with at most 15 significant digits and 22 after the point: its digits as
 * an integer m < 2^53 and 10^k with k <= 22 are exact doubles, so m / 10^k
 * is the correctly rounded value, the one strtod() returns. False for
 * anything else (exponents, longer numbers), which strtod() then reads. */
static bool fast_decimal(const char *s, size_t n, double *out)
{
    static const double pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                   1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                   1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    size_t i = 0;
    bool neg = false;
    if (s[0] == '-' || s[0] == '+') {
        neg = s[0] == '-';
        i++;
    }
    uint64_t m = 0;
    int digits = 0, frac = -1;
    for (; i < n; i++) {
        char c = s[i];
        if (c == '.') {
            frac = 0;
            continue;
        }
        if (c < '0' || c > '9')
            return false;
        if (m == 0 && c == '0') {
            /* leading zeros are not significant */
        } else if (++digits > 15) {
            return false;
        }
        m = m * 10 + (uint64_t)(c - '0');
        if (frac >= 0 && ++frac > 22)
            return false;
    }
    double v = frac > 0 ? (double)m / pow10[frac] : (double)m;
    *out = neg ? -v : v;
    return true;
}

/* Classify and convert a non-string field value. Returns NULL or a reason. */
static const char *field_value(const char *s, size_t n, struct lp_field *f, char *rbuf, size_t rcap)
{
    char tmp[64];
    /* As InfluxDB: anything not starting like a number is read as a
     * boolean, so "v=oops" is an invalid boolean, "v=1x" an invalid number. */
    if (!((s[0] >= '0' && s[0] <= '9') || s[0] == '-' || s[0] == '+' || s[0] == '.')) {
        if (word_is(s, n, "t") || word_is(s, n, "T") || word_is(s, n, "true") ||
            word_is(s, n, "True") || word_is(s, n, "TRUE")) {
            f->type = LP_BOOL;
            f->value = 1;
            return NULL;
        }
        if (word_is(s, n, "f") || word_is(s, n, "F") || word_is(s, n, "false") ||
            word_is(s, n, "False") || word_is(s, n, "FALSE")) {
            f->type = LP_BOOL;
            f->value = 0;
            return NULL;
        }
        return "invalid boolean";
    }
    char last = s[n - 1];
    if (last == 'i' || last == 'u') {
        const char *d = s;
        size_t dn = n - 1;
        bool neg = dn > 0 && d[0] == '-';
        if (last == 'i' && (neg || (dn > 0 && d[0] == '+'))) {
            if (!all_digits(d + 1, dn - 1))
                return "invalid number";
        } else if (!all_digits(d, dn)) {
            return "invalid number";
        }
        /* Up to 18 digits cannot overflow: converted here, exactly as
         * strtoll/strtoull would. */
        size_t first = (d[0] == '-' || d[0] == '+') ? 1 : 0;
        if (dn - first <= 18) {
            uint64_t u = 0;
            for (size_t i = first; i < dn; i++)
                u = u * 10 + (uint64_t)(d[i] - '0');
            f->type = last == 'i' ? LP_INT : LP_UINT;
            f->value = neg ? (double)-(int64_t)u : (double)u; /* "-0i" is +0 */
            return NULL;
        }
        if (dn >= sizeof(tmp))
            dn = sizeof(tmp) - 1;
        memcpy(tmp, d, dn);
        tmp[dn] = '\0';
        errno = 0;
        if (last == 'i') {
            long long v = strtoll(tmp, NULL, 10);
            if (errno == ERANGE || n - 1 >= sizeof(tmp)) {
                snprintf(rbuf, rcap,
                         "unable to parse integer %.*s: strconv.ParseInt: parsing \"%.*s\": value "
                         "out of range",
                         (int)(n - 1), s, (int)(n - 1), s);
                return rbuf;
            }
            f->type = LP_INT;
            f->value = (double)v;
        } else {
            unsigned long long v = strtoull(tmp, NULL, 10);
            if (errno == ERANGE || n - 1 >= sizeof(tmp)) {
                snprintf(rbuf, rcap,
                         "unable to parse unsigned %.*s: strconv.ParseUint: parsing \"%.*s\": "
                         "value out of range",
                         (int)(n - 1), s, (int)(n - 1), s);
                return rbuf;
            }
            f->type = LP_UINT;
            f->value = (double)v;
        }
        return NULL;
    }
    if (!float_syntax(s, n) || n >= sizeof(tmp))
        return "invalid number";
    if (fast_decimal(s, n, &f->value)) {
        f->type = LP_FLOAT;
        return NULL;
    }
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    errno = 0;
    double v = strtod(tmp, NULL);
    if (errno == ERANGE && isinf(v))
        return "invalid number";
    f->type = LP_FLOAT;
    f->value = v;
    return NULL;
}

/* Set the error line: from start to the end of the line holding pos; the
 * parser resumes after it. */
static int fail(struct lp_parser *p, struct lp_line *line, size_t start, size_t pos,
                const char **reason, const char *why)
{
    size_t end = line_end(p->buf, p->len, pos);
    size_t tend = end;
    while (tend > start && is_ws(p->buf[tend - 1]))
        tend--;
    line->text = p->buf + start;
    line->text_len = tend - start;
    /* Lines that a string value spanned count too. */
    for (size_t i = start; i < end; i++)
        if (p->buf[i] == '\n')
            p->lineno++;
    p->pos = end < p->len ? end + 1 : end;
    *reason = why;
    return BS_EPARSE;
}

int lp_parser_next(struct lp_parser *p, struct lp_line *line, const char **reason,
                   char *reason_buf, size_t reason_cap)
{
    const char *b = p->buf;
    size_t len = p->len, pos = p->pos;
    bool esc;

    /* Skip blank lines and comments. */
    for (;;) {
        if (pos >= len) {
            p->pos = pos;
            return 0;
        }
        p->lineno++;
        while (pos < len && is_ws(b[pos]))
            pos++;
        if (pos < len && b[pos] == '\n') {
            pos++;
            continue;
        }
        if (pos < len && b[pos] == '#') {
            pos = line_end(b, len, pos);
            if (pos < len)
                pos++;
            continue;
        }
        if (pos >= len) {
            p->pos = pos;
            return 0;
        }
        break;
    }
    size_t start = pos;
    line->lineno = p->lineno;
    line->ntags = line->nfields = 0;
    line->has_time = false;
    line->time = 0;

    /* Measurement. */
    size_t e = scan_token(b, len, pos, false, &esc);
    if (e == pos)
        return fail(p, line, start, pos, reason, "missing measurement");
    line->measurement = (struct lp_token){b + pos, e - pos, esc};
    pos = e;

    /* Tags. */
    while (pos < len && b[pos] == ',') {
        pos++;
        size_t k = scan_token(b, len, pos, true, &esc);
        if (k == pos)
            return fail(p, line, start, pos, reason,
                        k < len && b[k] == '=' ? "missing tag key" : "missing tag value");
        if (k >= len || b[k] != '=')
            return fail(p, line, start, k, reason, "missing tag value");
        if (line->ntags == LP_MAX_TAGS)
            return fail(p, line, start, k, reason, "too many tags");
        struct lp_token key = {b + pos, k - pos, esc};
        pos = k + 1;
        size_t v = scan_token(b, len, pos, true, &esc);
        if (v == pos)
            return fail(p, line, start, pos, reason, "missing tag value");
        if (v < len && b[v] == '=')
            return fail(p, line, start, v, reason, "invalid tag format");
        line->tag_key[line->ntags] = key;
        line->tag_value[line->ntags] = (struct lp_token){b + pos, v - pos, esc};
        line->ntags++;
        pos = v;
    }
    if (pos >= len || b[pos] != ' ')
        return fail(p, line, start, pos, reason, "missing fields");
    while (pos < len && b[pos] == ' ')
        pos++;
    if (pos >= len || b[pos] == '\n' || b[pos] == '\r')
        return fail(p, line, start, pos, reason, "missing fields");

    /* Fields. */
    for (;;) {
        size_t k = scan_token(b, len, pos, true, &esc);
        if (k == pos && k < len && b[k] == '=')
            return fail(p, line, start, pos, reason, "missing field key");
        if (k >= len || b[k] != '=')
            return fail(p, line, start, k, reason, "invalid field format");
        if (line->nfields == LP_MAX_FIELDS)
            return fail(p, line, start, k, reason, "too many fields");
        struct lp_field *f = &line->field[line->nfields];
        f->key = (struct lp_token){b + pos, k - pos, esc};
        pos = k + 1;
        if (pos < len && b[pos] == '"') {
            size_t q = pos + 1;
            while (q < len && b[q] != '"') {
                if (b[q] == '\\' && q + 1 < len)
                    q++;
                q++;
            }
            if (q >= len)
                return fail(p, line, start, pos, reason, "unbalanced quotes");
            f->type = LP_STRING;
            f->value = 0;
            /* Count the newlines inside the string towards line numbers. */
            for (size_t i = pos; i < q; i++)
                if (b[i] == '\n')
                    p->lineno++;
            pos = q + 1;
        } else {
            size_t v = pos;
            while (v < len && b[v] != ',' && b[v] != ' ' && b[v] != '\n' && b[v] != '\r')
                v++;
            if (v == pos)
                return fail(p, line, start, pos, reason, "missing field value");
            const char *why = field_value(b + pos, v - pos, f, reason_buf, reason_cap);
            if (why)
                return fail(p, line, start, pos, reason, why);
            pos = v;
        }
        line->nfields++;
        if (pos < len && b[pos] == ',') {
            pos++;
            continue;
        }
        break;
    }
    if (pos < len && b[pos] != ' ' && b[pos] != '\n' && b[pos] != '\r')
        return fail(p, line, start, pos, reason, "invalid field format");

    /* Timestamp. */
    while (pos < len && is_ws(b[pos]))
        pos++;
    if (pos < len && b[pos] != '\n') {
        size_t t = pos;
        if (b[t] == '-')
            t++;
        size_t d = t;
        while (t < len && b[t] >= '0' && b[t] <= '9')
            t++;
        size_t tend = t;
        while (t < len && is_ws(b[t]))
            t++;
        if (d == tend || (t < len && b[t] != '\n') || tend - pos > 20)
            return fail(p, line, start, pos, reason, "bad timestamp");
        char tmp[24];
        memcpy(tmp, b + pos, tend - pos);
        tmp[tend - pos] = '\0';
        errno = 0;
        long long v = strtoll(tmp, NULL, 10);
        if (errno == ERANGE)
            return fail(p, line, start, pos, reason, "bad timestamp");
        line->has_time = true;
        line->time = v;
        pos = t;
    }
    size_t end = pos;
    while (end > start && is_ws(b[end - 1]))
        end--;
    line->text = b + start;
    line->text_len = end - start;
    p->pos = pos < len ? pos + 1 : pos;
    return 1;
}

size_t lp_unescape(const struct lp_token *t, char *dst)
{
    if (!t->esc) {
        memcpy(dst, t->p, t->n);
        return t->n;
    }
    size_t o = 0;
    for (size_t i = 0; i < t->n; i++) {
        char c = t->p[i];
        if (c == '\\' && i + 1 < t->n) {
            char n = t->p[i + 1];
            if (n == ',' || n == ' ' || n == '=') {
                dst[o++] = n;
                i++;
                continue;
            }
        }
        dst[o++] = c;
    }
    return o;
}

size_t lp_sanitize_name(const char *s, size_t n, bool metric, char *dst)
{
    size_t o = 0;
    if (n == 0)
        return 0;
    if (s[0] >= '0' && s[0] <= '9')
        dst[o++] = '_';
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || (metric && c == ':');
        dst[o++] = ok ? c : '_';
    }
    return o;
}
