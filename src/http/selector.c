/* SPDX-License-Identifier: Apache-2.0
 *
 * Series selectors for match[]: metric_name{label="v", label=~"re", ...},
 * either part optional (not both), whitespace between tokens, a trailing
 * comma allowed, strings in "..." and '...' with Go escapes or in `...`
 * raw. The promql module parses whole expressions but does not expose its
 * matchers, so the selector grammar lives here; when a selector does not
 * parse, the PromQL parser is asked for its error text so that messages
 * read as Prometheus's ("1:3: parse error: unexpected \"(\"").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_int.h"
#include "labels/labels.h"
#include "promql/promql.h"

#define MAX_MATCHERS 256

struct sel_parser {
    const char *s;
    size_t i, n;
    struct labels_matcher **ms;
    size_t nms;
    struct bs_error *err;
    bool own_message; /* err is as Prometheus words it: do not ask promql */
};

static void skip_ws(struct sel_parser *p)
{
    while (p->i < p->n &&
           (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r'))
        p->i++;
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int fail(struct sel_parser *p, const char *what)
{
    return bs_error_set(p->err, BS_EPARSE, "1:%zu: parse error: %s", p->i + 1, what);
}

static int add(struct sel_parser *p, enum labels_match_type t, const char *name, const char *value)
{
    if (p->nms >= MAX_MATCHERS)
        return bs_error_set(p->err, BS_ELIMIT, "selector has more than %d matchers", MAX_MATCHERS);
    struct labels_matcher *m;
    int rc = labels_matcher_new(&m, t, name, value, p->err);
    if (rc != 0) {
        if (rc != BS_ENOMEM)
            bs_error_prefix(p->err, "1:%zu: parse error", p->i + 1);
        return rc;
    }
    p->ms[p->nms++] = m;
    return 0;
}

static int hexdig(char c)
{
    if (is_digit(c))
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* A quoted string at p->i into out (decoded). */
static int parse_string(struct sel_parser *p, struct bs_buf *out)
{
    char q = p->s[p->i];
    if (q != '"' && q != '\'' && q != '`')
        return fail(p, "expected a quoted label value");
    p->i++;
    while (p->i < p->n) {
        char c = p->s[p->i++];
        if (c == q)
            return 0;
        if (c == '\\' && q != '`') {
            if (p->i >= p->n)
                break;
            char e = p->s[p->i++];
            int rc = 0;
            const char *simple = strchr("abfnrtv\\'\"", e);
            if (simple && e) {
                static const char from[] = "abfnrtv\\'\"", to[] = "\a\b\f\n\r\t\v\\'\"";
                rc = bs_buf_putc(out, to[strchr(from, e) - from]);
            } else if (e == 'x' || e == 'u' || e == 'U') {
                size_t digits = e == 'x' ? 2 : e == 'u' ? 4 : 8;
                unsigned long v = 0;
                for (size_t k = 0; k < digits; k++) {
                    int h = p->i < p->n ? hexdig(p->s[p->i]) : -1;
                    if (h < 0)
                        return fail(p, "invalid escape sequence in string");
                    v = v * 16 + (unsigned long)h;
                    p->i++;
                }
                if (e == 'x')
                    rc = bs_buf_putc(out, (char)v);
                else if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
                    rc = BS_EPARSE;
                else
                    rc = bs_buf_put_utf8(out, (uint32_t)v);
            } else if (e >= '0' && e <= '7') {
                unsigned v = (unsigned)(e - '0');
                for (int k = 0; k < 2; k++) {
                    if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '7')
                        return fail(p, "invalid escape sequence in string");
                    v = v * 8 + (unsigned)(p->s[p->i++] - '0');
                }
                if (v > 255)
                    return fail(p, "invalid escape sequence in string");
                rc = bs_buf_putc(out, (char)v);
            } else {
                return fail(p, "unknown escape sequence in string");
            }
            if (rc == BS_EPARSE)
                return fail(p, "invalid escape sequence in string");
            if (rc != 0)
                return rc;
            continue;
        }
        if (c == '\n' && q != '`')
            break;
        int rc = bs_buf_putc(out, c);
        if (rc != 0)
            return rc;
    }
    return fail(p, "unterminated quoted string");
}

static int parse_matcher(struct sel_parser *p)
{
    char name[256];
    size_t st = p->i;
    if (p->i >= p->n || !is_alpha(p->s[p->i]))
        return fail(p, "expected a label name");
    while (p->i < p->n && (is_alpha(p->s[p->i]) || is_digit(p->s[p->i])))
        p->i++;
    if (p->i - st >= sizeof(name))
        return fail(p, "label name too long");
    memcpy(name, p->s + st, p->i - st);
    name[p->i - st] = '\0';
    skip_ws(p);
    enum labels_match_type t;
    const char *o = p->s + p->i;
    size_t left = p->n - p->i;
    if (left >= 2 && o[0] == '=' && o[1] == '~') {
        t = LABELS_MATCH_RE;
        p->i += 2;
    } else if (left >= 2 && o[0] == '!' && o[1] == '~') {
        t = LABELS_MATCH_NRE;
        p->i += 2;
    } else if (left >= 2 && o[0] == '!' && o[1] == '=') {
        t = LABELS_MATCH_NEQ;
        p->i += 2;
    } else if (left >= 1 && o[0] == '=') {
        t = LABELS_MATCH_EQ;
        p->i += 1;
    } else {
        return fail(p, "expected a label matching operator");
    }
    skip_ws(p);
    struct bs_buf v;
    bs_buf_init(&v, p->n);
    int rc = parse_string(p, &v);
    if (rc == 0)
        rc = add(p, t, name, v.data ? v.data : "");
    bs_buf_fini(&v);
    return rc;
}

static int parse_all(struct sel_parser *p)
{
    bool any = false;
    skip_ws(p);
    if (p->i < p->n && (is_alpha(p->s[p->i]) || p->s[p->i] == ':')) {
        size_t st = p->i;
        while (p->i < p->n && (is_alpha(p->s[p->i]) || is_digit(p->s[p->i]) || p->s[p->i] == ':'))
            p->i++;
        char *name = bs_xstrndup(p->s + st, p->i - st);
        int rc = add(p, LABELS_MATCH_EQ, LABELS_METRIC_NAME, name);
        free(name);
        if (rc != 0)
            return rc;
        any = true;
        skip_ws(p);
    }
    if (p->i < p->n && p->s[p->i] == '{') {
        p->i++;
        any = true;
        skip_ws(p);
        while (p->i < p->n && p->s[p->i] != '}') {
            int rc = parse_matcher(p);
            if (rc != 0)
                return rc;
            skip_ws(p);
            if (p->i < p->n && p->s[p->i] == ',') {
                p->i++;
                skip_ws(p);
            } else if (p->i < p->n && p->s[p->i] != '}') {
                return fail(p, "expected \",\" or \"}\" in label matching");
            }
        }
        if (p->i >= p->n)
            return fail(p, "unexpected end of input inside braces");
        p->i++;
        skip_ws(p);
    }
    if (!any)
        return fail(p, p->n == 0 ? "unexpected end of input" : "expected a series selector");
    if (p->i < p->n) {
        /* A complete selector followed by more: Prometheus names the token. */
        static const char ops[] = "+-*/%^";
        char c = p->s[p->i], what[48];
        if (strchr(ops, c) && c)
            snprintf(what, sizeof(what), "unexpected <op:%c>", c);
        else if (c == '(' || c == ')' || c == '[' || c == ']' || c == ',' || c == '{' || c == '}')
            snprintf(what, sizeof(what), "unexpected \"%c\"", c);
        else
            snprintf(what, sizeof(what), "unexpected characters after the series selector");
        p->own_message = true;
        return fail(p, what);
    }
    return 0;
}

int http_selector_parse(const char *s, struct labels_matcher ***out, size_t *n,
                        struct bs_error *err)
{
    struct bs_error mine;
    bs_error_clear(&mine);
    struct sel_parser p = {.s = s, .n = strlen(s), .err = &mine};
    p.ms = calloc(MAX_MATCHERS, sizeof(*p.ms));
    if (!p.ms)
        return BS_ENOMEM;
    int rc = parse_all(&p);
    if (rc == 0) {
        *out = p.ms;
        *n = p.nms;
        return 0;
    }
    for (size_t i = 0; i < p.nms; i++)
        labels_matcher_free(p.ms[i]);
    free(p.ms);
    if (rc == BS_ENOMEM || p.own_message) {
        if (err)
            *err = mine;
        return rc;
    }
    /* Prefer the PromQL parser's wording, which is Prometheus's. */
    struct promql_expr *x = NULL;
    struct bs_error pe;
    bs_error_clear(&pe);
    if (promql_parse(s, &x, &pe) != 0 && pe.msg[0]) {
        if (err) {
            err->code = BS_EPARSE;
            snprintf(err->msg, sizeof(err->msg), "%s", pe.msg);
        }
    } else if (err) {
        *err = mine;
    }
    promql_expr_free(x);
    return rc;
}
