/* SPDX-License-Identifier: Apache-2.0
 *
 * The text format 0.0.4 pull parser.
 *
 * Design. The input is one complete buffer. next() finds the end of the
 * current line with memchr and then parses that line with a hand-written
 * scanner; no token ever crosses a line break, so every error can name its
 * line and column, and the scanner never needs to look past line_end. Names
 * and values are returned as (pointer, length) into the input. Only text
 * with backslash escapes is rewritten, into p->scratch. Unescaping never
 * lengthens text, so the first escape on a line sizes scratch to the line's
 * length once; later pointers into scratch on the same line therefore stay
 * valid (scratch never moves mid-line), and scratch can never grow beyond
 * the longest line seen. The label array grows by doubling up to
 * EXPFMT_MAX_LABELS. Nothing is allocated per line in the steady state.
 *
 * Compatibility with Prometheus's promparse, and where we depart on purpose:
 *  - Same token rules: metric names [a-zA-Z_:][a-zA-Z0-9_:]*, label names
 *    [a-zA-Z_][a-zA-Z0-9_]*, quoted names, spaces and tabs around tokens,
 *    trailing comma in the label block, no whitespace needed between '}'
 *    and the value, "# HELP"/"# TYPE" need whitespace after '#', anything
 *    else starting with '#' is a comment ("# EOF" too).
 *  - Label values: \\ \" \n are unescaped; any other backslash pair is kept
 *    literally (as promparse's replacer does). Values, quoted names and help
 *    text must be valid UTF-8, as promparse requires.
 *  - Values: bs_float_parse without hex, and like promparse no 'p', 'P' or
 *    '_' anywhere. NaN is canonicalised to one quiet NaN bit pattern.
 *  - Departures: a timestamp may be negative (the format defines it as an
 *    int64; promparse only lexes digits); a raw line break inside a quoted
 *    string is an error (promparse's lexer lets it through); a NUL byte is an
 *    invalid character rather than end of input; a HELP/TYPE name must be
 *    followed by whitespace or the end of the line; "# HELP name" with no
 *    text is a HELP with empty text; duplicate label names (including a
 *    __name__ label) are rejected here rather than later in the scrape.
 */
#include "expfmt/expfmt.h"
#include "expfmt/expfmt_int.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Prometheus's value.NormalNaN: the one NaN that scraped samples carry. */
#define EXPFMT_NORMAL_NAN_BITS UINT64_C(0x7ff8000000000001)

/* Dup detection switches from pairwise comparison to sorting above this. */
#define EXPFMT_DUP_PAIRWISE_MAX 16

/* ------------------------------------------------------------ char classes */

enum {
    CC_MSTART = 1,   /* may start a metric name */
    CC_MREST = 2,    /* may continue a metric name */
    CC_LSTART = 4,   /* may start a label name */
    CC_LREST = 8,    /* may continue a label name */
    CC_WS = 16,      /* space or tab */
    CC_VEND = 32,    /* ends a value/timestamp token: space, tab, '{' */
};

static unsigned char cc_table[256];
static pthread_once_t cc_once = PTHREAD_ONCE_INIT;

static void cc_fill(void)
{
    for (int c = 0; c < 256; c++) {
        unsigned char f = 0;
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        bool digit = c >= '0' && c <= '9';
        if (alpha || c == ':')
            f |= CC_MSTART | CC_MREST;
        if (digit)
            f |= CC_MREST | CC_LREST;
        if (alpha)
            f |= CC_LSTART | CC_LREST;
        if (c == ' ' || c == '\t')
            f |= CC_WS | CC_VEND;
        if (c == '{')
            f |= CC_VEND;
        cc_table[c] = f;
    }
}

static void cc_init(void)
{
    pthread_once(&cc_once, cc_fill);
}

static inline bool cc_is(const char *s, unsigned flag)
{
    return (cc_table[(unsigned char)*s] & flag) != 0;
}

/* ----------------------------------------------------------------- errors */

/* Describe the byte at s for an error message: "end of line", "'x'", or a
 * hex byte for unprintable characters. */
static const char *describe(const struct expfmt_parser *p, const char *s, char *tmp, size_t cap)
{
    if (s >= p->line_end)
        return "end of line";
    unsigned char c = (unsigned char)*s;
    if (c >= 0x21 && c < 0x7f)
        snprintf(tmp, cap, "'%c'", c);
    else if (c == ' ')
        snprintf(tmp, cap, "' '");
    else if (c == '\t')
        snprintf(tmp, cap, "tab");
    else
        snprintf(tmp, cap, "byte 0x%02x", c);
    return tmp;
}

size_t expfmt_lex_column(const struct expfmt_parser *p, const char *s)
{
    return (size_t)(s - p->line) + 1;
}

/* "line N, column C: <what>, got <thing at s>". */
int expfmt_lex_fail_got(const struct expfmt_parser *p, struct bs_error *err, const char *s,
                        const char *what)
{
    char tmp[24];
    return bs_error_set(err, BS_EPARSE, "line %zu, column %zu: %s, got %s", p->lineno,
                        expfmt_lex_column(p, s), what, describe(p, s, tmp, sizeof tmp));
}

/* Quote at most 64 bytes of s for a message, escaping what is unprintable. */
void expfmt_lex_quote(const char *s, size_t n, char *dst, size_t cap)
{
    size_t o = 0;
    bool cut = n > 64;
    if (cut)
        n = 64;
    for (size_t i = 0; i < n && o + 6 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            dst[o++] = '\\';
            dst[o++] = (char)c;
        } else if (c >= 0x20 && c < 0x7f) {
            dst[o++] = (char)c;
        } else {
            o += (size_t)snprintf(dst + o, cap - o, "\\x%02x", c);
        }
    }
    if (cut && o + 4 < cap) {
        memcpy(dst + o, "...", 3);
        o += 3;
    }
    dst[o] = '\0';
}

/* --------------------------------------------------------------- helpers */

static const char *skip_ws(const char *s, const char *e)
{
    while (s < e && (*s == ' ' || *s == '\t'))
        s++;
    return s;
}

/* Strict UTF-8 (no overlongs, no surrogates, <= U+10FFFF), as Go's
 * utf8.Valid. ASCII runs are skipped eight bytes at a time. */
bool expfmt_lex_utf8_valid(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str, *e = s + n;
    while (s < e) {
        while (e - s >= 8) {
            uint64_t w;
            memcpy(&w, s, 8);
            if (w & UINT64_C(0x8080808080808080))
                break;
            s += 8;
        }
        if (s >= e)
            break;
        unsigned char c = *s;
        if (c < 0x80) {
            s++;
            continue;
        }
        size_t need;
        uint32_t cp, min;
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1; cp = c & 0x1f; min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2; cp = c & 0x0f; min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3; cp = c & 0x07; min = 0x10000;
        } else {
            return false;
        }
        if ((size_t)(e - s) <= need)
            return false;
        for (size_t i = 1; i <= need; i++) {
            if ((s[i] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        s += need + 1;
    }
    return true;
}

/* Make sure scratch can hold the whole current line. Called before the first
 * byte of unescaped output of a line is written, so no pointer into scratch
 * from this line exists yet when it may move. */
int expfmt_lex_scratch_prepare(struct expfmt_parser *p, struct bs_error *err)
{
    if (p->scratch_lineno == p->lineno)
        return 0;
    size_t need = (size_t)(p->line_end - p->line);
    if (need > p->scratch_cap) {
        size_t cap = p->scratch_cap ? p->scratch_cap : 256;
        while (cap < need)
            cap *= 2;
        char *ns = realloc(p->scratch, cap);
        if (!ns)
            return bs_error_set(err, BS_ENOMEM,
                                "line %zu: out of memory for %zu bytes of unescaped text",
                                p->lineno, need);
        p->scratch = ns;
        p->scratch_cap = cap;
    }
    p->scratch_used = 0;
    p->scratch_lineno = p->lineno;
    return 0;
}

/* Read a double-quoted string starting at *ps (which points at the opening
 * quote). On success (*out, *out_len) is the unescaped content (into the input
 * when there was no backslash, else into scratch) and *ps points past the
 * closing quote. Escapes are those of label values: \\ \" \n, any other
 * backslash pair kept literally. */
int expfmt_lex_read_quoted(struct expfmt_parser *p, const char **ps, const char **out,
                           size_t *out_len, const char *what, struct bs_error *err)
{
    const char *open = *ps, *s = open + 1, *e = p->line_end;
    const char *q = memchr(s, '"', (size_t)(e - s));
    const char *bs = memchr(s, '\\', (size_t)((q ? q : e) - s));
    if (!bs) {
        if (!q)
            return bs_error_set(err, BS_EPARSE,
                                "line %zu, column %zu: %s starting here is not closed by '\"' "
                                "before the end of the line",
                                p->lineno, expfmt_lex_column(p, open), what);
        *out = s;
        *out_len = (size_t)(q - s);
        *ps = q + 1;
        return 0;
    }
    int rc = expfmt_lex_scratch_prepare(p, err);
    if (rc < 0)
        return rc;
    char *dst = p->scratch + p->scratch_used, *d = dst;
    size_t pre = (size_t)(bs - s);
    memcpy(d, s, pre);
    d += pre;
    s = bs;
    for (;;) {
        if (s >= e)
            return bs_error_set(err, BS_EPARSE,
                                "line %zu, column %zu: %s starting here is not closed by '\"' "
                                "before the end of the line",
                                p->lineno, expfmt_lex_column(p, open), what);
        char c = *s;
        if (c == '"')
            break;
        if (c == '\\') {
            if (s + 1 >= e)
                return bs_error_set(err, BS_EPARSE,
                                    "line %zu, column %zu: backslash at the end of the line "
                                    "inside %s",
                                    p->lineno, expfmt_lex_column(p, s), what);
            char n = s[1];
            if (n == '\\' || n == '"') {
                *d++ = n;
            } else if (n == 'n') {
                *d++ = '\n';
            } else {
                /* Unknown escape: kept literally, as promparse does. */
                *d++ = '\\';
                *d++ = n;
            }
            s += 2;
            continue;
        }
        *d++ = c;
        s++;
    }
    *out = dst;
    *out_len = (size_t)(d - dst);
    p->scratch_used += *out_len;
    *ps = s + 1;
    return 0;
}

int expfmt_lex_check_utf8(struct expfmt_parser *p, const char *at, const char *s, size_t n,
                          const char *what, struct bs_error *err)
{
    if (expfmt_lex_utf8_valid(s, n))
        return 0;
    char q[400];
    expfmt_lex_quote(s, n, q, sizeof q);
    return bs_error_set(err, BS_EPARSE, "line %zu, column %zu: %s \"%s\" is not valid UTF-8",
                        p->lineno, expfmt_lex_column(p, at), what, q);
}

int expfmt_lex_labels_grow(struct expfmt_parser *p, struct bs_error *err)
{
    if (p->labels_cap >= EXPFMT_MAX_LABELS)
        return bs_error_set(err, BS_ELIMIT, "line %zu: series has more than %d labels",
                            p->lineno, EXPFMT_MAX_LABELS);
    size_t cap = p->labels_cap ? p->labels_cap * 2 : 16;
    if (cap > EXPFMT_MAX_LABELS)
        cap = EXPFMT_MAX_LABELS;
    struct expfmt_label *nl = realloc(p->labels, cap * sizeof *nl);
    if (!nl)
        return bs_error_set(err, BS_ENOMEM, "line %zu: out of memory for %zu labels",
                            p->lineno, cap);
    p->labels = nl;
    p->labels_cap = cap;
    return 0;
}

static int label_cmp(const void *a, const void *b)
{
    const struct expfmt_label *x = a, *y = b;
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(x->name, y->name, n);
    if (c)
        return c;
    return (x->name_len > y->name_len) - (x->name_len < y->name_len);
}

static int dup_error(struct expfmt_parser *p, const char *name, size_t n, struct bs_error *err)
{
    char q[400];
    expfmt_lex_quote(name, n, q, sizeof q);
    return bs_error_set(err, BS_EPARSE, "line %zu: duplicate label name \"%s\"", p->lineno, q);
}

/* Reject repeated label names and a "__name__" label among l[0..n). Small
 * sets compare pairwise; large ones are sorted in a copy (the caller keeps
 * its order). */
int expfmt_lex_check_duplicates(struct expfmt_parser *p, const struct expfmt_label *l, size_t n,
                                struct bs_error *err)
{
    for (size_t i = 0; i < n; i++)
        if (l[i].name_len == 8 && memcmp(l[i].name, LABELS_METRIC_NAME, 8) == 0)
            return dup_error(p, l[i].name, l[i].name_len, err);
    if (n <= EXPFMT_DUP_PAIRWISE_MAX) {
        for (size_t i = 1; i < n; i++)
            for (size_t j = 0; j < i; j++)
                if (l[i].name_len == l[j].name_len &&
                    memcmp(l[i].name, l[j].name, l[i].name_len) == 0)
                    return dup_error(p, l[i].name, l[i].name_len, err);
        return 0;
    }
    struct expfmt_label *copy = malloc(n * sizeof *copy);
    if (!copy)
        return bs_error_set(err, BS_ENOMEM, "line %zu: out of memory checking %zu labels",
                            p->lineno, n);
    memcpy(copy, l, n * sizeof *copy);
    qsort(copy, n, sizeof *copy, label_cmp);
    int rc = 0;
    for (size_t i = 1; i < n && rc == 0; i++)
        if (label_cmp(&copy[i - 1], &copy[i]) == 0)
            rc = dup_error(p, copy[i].name, copy[i].name_len, err);
    free(copy);
    return rc;
}

/* ------------------------------------------------------------ series line */

/* Parse the label block; *ps points just past '{'. On return *ps points past
 * '}'. A quoted string followed by ',' or '}' is the metric name; it is an
 * error if the name is already set. */
static int parse_labels(struct expfmt_parser *p, const char **ps, struct bs_error *err)
{
    const char *s = *ps, *e = p->line_end;
    struct expfmt_series *se = &p->series;
    int rc;
    for (;;) {
        s = skip_ws(s, e);
        if (s < e && *s == '}') {
            s++;
            break;
        }
        const char *tok = s, *name;
        size_t name_len;
        if (s < e && *s == '"') {
            if ((rc = expfmt_lex_read_quoted(p, &s, &name, &name_len, "quoted name", err)) < 0)
                return rc;
            if ((rc = expfmt_lex_check_utf8(p, tok, name, name_len, "quoted name", err)) < 0)
                return rc;
            s = skip_ws(s, e);
            if (s < e && (*s == ',' || *s == '}')) {
                if (se->name)
                    return bs_error_set(err, BS_EPARSE,
                                        "line %zu, column %zu: metric name is already set; a "
                                        "quoted string must be followed by '=' to be a label",
                                        p->lineno, expfmt_lex_column(p, tok));
                if (name_len == 0)
                    return bs_error_set(err, BS_EPARSE,
                                        "line %zu, column %zu: metric name is empty",
                                        p->lineno, expfmt_lex_column(p, tok));
                se->name = name;
                se->name_len = name_len;
                if (*s++ == '}')
                    break;
                continue;
            }
            if (name_len == 0)
                return bs_error_set(err, BS_EPARSE, "line %zu, column %zu: label name is empty",
                                    p->lineno, expfmt_lex_column(p, tok));
        } else if (s < e && cc_is(s, CC_LSTART)) {
            s++;
            while (s < e && cc_is(s, CC_LREST))
                s++;
            name = tok;
            name_len = (size_t)(s - tok);
        } else {
            return expfmt_lex_fail_got(p, err, s, "expected label name or '}'");
        }
        s = skip_ws(s, e);
        if (s >= e || *s != '=')
            return expfmt_lex_fail_got(p, err, s, "expected '=' after label name");
        s = skip_ws(s + 1, e);
        if (s >= e || *s != '"')
            return expfmt_lex_fail_got(p, err, s, "expected '\"' to start the label value");
        const char *vtok = s, *value;
        size_t value_len;
        if ((rc = expfmt_lex_read_quoted(p, &s, &value, &value_len, "label value", err)) < 0)
            return rc;
        if ((rc = expfmt_lex_check_utf8(p, vtok, value, value_len, "label value", err)) < 0)
            return rc;
        if (se->nlabels == p->labels_cap && (rc = expfmt_lex_labels_grow(p, err)) < 0)
            return rc;
        struct expfmt_label *l = &p->labels[se->nlabels++];
        l->name = name;
        l->name_len = name_len;
        l->value = value;
        l->value_len = value_len;
        s = skip_ws(s, e);
        if (s < e && *s == ',') {
            s++;
        } else if (s >= e || *s != '}') {
            return expfmt_lex_fail_got(p, err, s, "expected ',' or '}' after label value");
        }
    }
    *ps = s;
    return 0;
}

static bool name_eq(const char *a, size_t an, const char *b, size_t bn)
{
    return an == bn && memcmp(a, b, an) == 0;
}

/* Does the series name belong to the family of the last TYPE line? */
static enum expfmt_metric_type series_type(const struct expfmt_parser *p)
{
    const char *n = p->series.name;
    size_t nl = p->series.name_len, fl = p->family_len;
    if (!p->family_type || fl == 0 || nl < fl || memcmp(n, p->family, fl) != 0)
        return EXPFMT_TYPE_UNKNOWN;
    if (nl == fl)
        return p->family_type;
    const char *suf = n + fl;
    size_t sl = nl - fl;
    switch (p->family_type) {
    case EXPFMT_TYPE_HISTOGRAM:
        if (name_eq(suf, sl, "_bucket", 7))
            return EXPFMT_TYPE_HISTOGRAM;
        /* fall through */
    case EXPFMT_TYPE_SUMMARY:
        if (name_eq(suf, sl, "_sum", 4) || name_eq(suf, sl, "_count", 6))
            return p->family_type;
        return EXPFMT_TYPE_UNKNOWN;
    default:
        return EXPFMT_TYPE_UNKNOWN;
    }
}

/* Exact powers of ten as doubles (10^22 is the largest exact one). */
static const double pow10_exact[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                       1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                       1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* The common shape of exposed values, -?D+(.D+)?([eE][+-]?D+)?, converted
 * without strtod when the result is exact by construction: a decimal
 * mantissa below 2^53 and a power of ten up to 10^22 are both exact
 * doubles, so the one multiplication or division is correctly rounded,
 * which is what strtod returns (Clinger's fast path). Returns false for
 * anything else, to be parsed the general way. */
static bool decimal_fast(const char *v, size_t n, double *out)
{
    const char *s = v, *e = v + n;
    bool neg = false;
    if (s < e && *s == '-') {
        neg = true;
        s++;
    }
    uint64_t m = 0;
    int ndig = 0, frac = 0;
    const char *d0 = s;
    while (s < e && *s >= '0' && *s <= '9') {
        if (++ndig > 19)
            return false;
        m = m * 10 + (uint64_t)(*s++ - '0');
    }
    if (s == d0)
        return false;
    if (s < e && *s == '.') {
        const char *f0 = ++s;
        while (s < e && *s >= '0' && *s <= '9') {
            if (++ndig > 19)
                return false;
            m = m * 10 + (uint64_t)(*s++ - '0');
        }
        frac = (int)(s - f0);
        if (frac == 0)
            return false;
    }
    int exp = 0;
    if (s < e && (*s == 'e' || *s == 'E')) {
        s++;
        bool eneg = false;
        if (s < e && (*s == '+' || *s == '-'))
            eneg = *s++ == '-';
        const char *x0 = s;
        while (s < e && *s >= '0' && *s <= '9' && s - x0 < 4)
            exp = exp * 10 + (*s++ - '0');
        if (s == x0)
            return false;
        if (eneg)
            exp = -exp;
    }
    if (s != e || m > (UINT64_C(1) << 53))
        return false;
    int e10 = exp - frac;
    double x = (double)m;
    if (m == 0)
        x = 0.0;
    else if (e10 >= 0 && e10 <= 22)
        x *= pow10_exact[e10];
    else if (e10 < 0 && e10 >= -22)
        x /= pow10_exact[-e10];
    else
        return false;
    *out = neg ? -x : x;
    return true;
}

static int parse_series(struct expfmt_parser *p, const char *s, struct bs_error *err)
{
    const char *e = p->line_end;
    struct expfmt_series *se = &p->series;
    const char *start = s;
    int rc;

    memset(se, 0, sizeof *se);
    if (*s == '{') {
        s++;
        if ((rc = parse_labels(p, &s, err)) < 0)
            return rc;
        if (!se->name)
            return bs_error_set(err, BS_EPARSE,
                                "line %zu, column %zu: metric name is missing: a series starting "
                                "with '{' needs a quoted name inside the braces",
                                p->lineno, expfmt_lex_column(p, start));
    } else if (cc_is(s, CC_MSTART)) {
        s++;
        while (s < e && cc_is(s, CC_MREST))
            s++;
        se->name = start;
        se->name_len = (size_t)(s - start);
        const char *after = s;
        s = skip_ws(s, e);
        if (s < e && *s == '{') {
            s++;
            if ((rc = parse_labels(p, &s, err)) < 0)
                return rc;
        } else {
            s = after;
        }
    } else {
        return expfmt_lex_fail_got(p, err, s,
                                   "expected metric name, '{' or '#' at the start of a line");
    }
    se->series_text = start;
    se->series_text_len = (size_t)(s - start);
    se->labels = p->labels; /* only now: expfmt_lex_labels_grow() may have moved it */
    if (se->nlabels &&
        (rc = expfmt_lex_check_duplicates(p, p->labels, se->nlabels, err)) < 0)
        return rc;

    /* Value. */
    s = skip_ws(s, e);
    const char *v = s;
    while (s < e && !cc_is(s, CC_VEND))
        s++;
    if (s == v)
        return expfmt_lex_fail_got(p, err, v, "expected a value after the metric");
    size_t vlen = (size_t)(s - v);
    bool bad = false, digits_only = vlen <= 15;
    for (size_t i = 0; i < vlen && !bad; i++) {
        bad = v[i] == 'p' || v[i] == 'P' || v[i] == '_';
        digits_only = digits_only && v[i] >= '0' && v[i] <= '9';
    }
    if (digits_only) {
        /* Fast path: up to 15 digits are exact in a double. */
        uint64_t iv = 0;
        for (size_t i = 0; i < vlen; i++)
            iv = iv * 10 + (uint64_t)(v[i] - '0');
        se->value = (double)iv;
    } else if (!bad && decimal_fast(v, vlen, &se->value)) {
        /* Plain decimals such as 0.25 or 1.5e+06, exactly as strtod. */
    } else if (bad || bs_float_parse(v, vlen, false, &se->value) < 0) {
        char q[400];
        expfmt_lex_quote(v, vlen, q, sizeof q);
        return bs_error_set(err, BS_EPARSE, "line %zu, column %zu: invalid value \"%s\"",
                            p->lineno, expfmt_lex_column(p, v), q);
    }
    if (se->value != se->value)
        se->value = bs_float_from_bits(EXPFMT_NORMAL_NAN_BITS);

    /* Optional timestamp. */
    s = skip_ws(s, e);
    if (s < e) {
        const char *t = s;
        bool neg = *s == '-';
        if (neg)
            s++;
        const char *digits = s;
        uint64_t acc = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
        bool overflow = false;
        while (s < e && *s >= '0' && *s <= '9') {
            unsigned d = (unsigned)(*s - '0');
            if (acc > (lim - d) / 10)
                overflow = true;
            else
                acc = acc * 10 + d;
            s++;
        }
        if (s == digits)
            return expfmt_lex_fail_got(p, err, t,
                                       "expected an integer timestamp or the end of the line");
        if (s < e && !cc_is(s, CC_WS))
            return expfmt_lex_fail_got(p, err, s,
                                       "expected the end of the line after the timestamp");
        if (overflow) {
            char q[400];
            expfmt_lex_quote(t, (size_t)(s - t), q, sizeof q);
            return bs_error_set(err, BS_EPARSE,
                                "line %zu, column %zu: timestamp \"%s\" is out of the int64 range",
                                p->lineno, expfmt_lex_column(p, t), q);
        }
        se->has_timestamp = true;
        se->timestamp_ms = neg ? (int64_t)(0 - acc) : (int64_t)acc;
        s = skip_ws(s, e);
        if (s < e)
            return expfmt_lex_fail_got(p, err, s,
                                       "expected the end of the line after the timestamp");
    }
    se->type = series_type(p);
    return 0;
}

/* --------------------------------------------------------- HELP and TYPE */

static const char *const type_names[] = {
    [EXPFMT_TYPE_UNKNOWN] = "unknown",     [EXPFMT_TYPE_COUNTER] = "counter",
    [EXPFMT_TYPE_GAUGE] = "gauge",         [EXPFMT_TYPE_HISTOGRAM] = "histogram",
    [EXPFMT_TYPE_SUMMARY] = "summary",     [EXPFMT_TYPE_UNTYPED] = "untyped",
    [EXPFMT_TYPE_GAUGEHISTOGRAM] = "gaugehistogram",
    [EXPFMT_TYPE_INFO] = "info",           [EXPFMT_TYPE_STATESET] = "stateset",
};

const char *expfmt_metric_type_name(enum expfmt_metric_type t)
{
    if ((unsigned)t < sizeof type_names / sizeof type_names[0])
        return type_names[t];
    return "unknown";
}

/* HELP text unescaping: \\ and \n; any other backslash stays literal. */
static int unescape_help(struct expfmt_parser *p, const char *s, size_t n, struct bs_error *err)
{
    const char *bs = memchr(s, '\\', n);
    if (!bs) {
        p->meta_text = s;
        p->meta_text_len = n;
        return 0;
    }
    int rc = expfmt_lex_scratch_prepare(p, err);
    if (rc < 0)
        return rc;
    char *dst = p->scratch + p->scratch_used, *d = dst;
    const char *e = s + n;
    while (s < e) {
        if (*s == '\\' && s + 1 < e && (s[1] == '\\' || s[1] == 'n')) {
            *d++ = s[1] == 'n' ? '\n' : '\\';
            s += 2;
        } else {
            *d++ = *s++;
        }
    }
    p->meta_text = dst;
    p->meta_text_len = (size_t)(d - dst);
    p->scratch_used += p->meta_text_len;
    return 0;
}

static int set_family(struct expfmt_parser *p, struct bs_error *err)
{
    size_t n = p->meta_name_len;
    if (n > p->family_cap) {
        size_t cap = p->family_cap ? p->family_cap : 64;
        while (cap < n)
            cap *= 2;
        char *nf = realloc(p->family, cap);
        if (!nf)
            return bs_error_set(err, BS_ENOMEM, "line %zu: out of memory", p->lineno);
        p->family = nf;
        p->family_cap = cap;
    }
    if (n)
        memcpy(p->family, p->meta_name, n);
    p->family_len = n;
    p->family_type = p->meta_type;
    return 0;
}

/* s points at the first byte after "HELP" or "TYPE" (known to be space or
 * tab). */
static int parse_meta(struct expfmt_parser *p, const char *s, bool is_help, struct bs_error *err)
{
    const char *e = p->line_end, *kw = is_help ? "HELP" : "TYPE";
    int rc;
    s = skip_ws(s, e);
    const char *tok = s;
    if (s < e && *s == '"') {
        if ((rc = expfmt_lex_read_quoted(p, &s, &p->meta_name, &p->meta_name_len,
                                         "quoted metric name", err)) < 0)
            return rc;
        if ((rc = expfmt_lex_check_utf8(p, tok, p->meta_name, p->meta_name_len,
                                        "quoted metric name", err)) < 0)
            return rc;
        if (p->meta_name_len == 0)
            return bs_error_set(err, BS_EPARSE, "line %zu, column %zu: metric name is empty",
                                p->lineno, expfmt_lex_column(p, tok));
    } else if (s < e && cc_is(s, CC_MSTART)) {
        s++;
        while (s < e && cc_is(s, CC_MREST))
            s++;
        p->meta_name = tok;
        p->meta_name_len = (size_t)(s - tok);
    } else {
        char what[48];
        snprintf(what, sizeof what, "expected a metric name after %s", kw);
        return expfmt_lex_fail_got(p, err, s, what);
    }
    if (s < e && !cc_is(s, CC_WS)) {
        char what[64];
        snprintf(what, sizeof what, "expected whitespace after the metric name in %s", kw);
        return expfmt_lex_fail_got(p, err, s, what);
    }
    /* As promparse: the text is the rest of the line after one separator. */
    const char *text = s < e ? s + 1 : s;
    size_t tlen = (size_t)(e - text);
    if (is_help) {
        if ((rc = expfmt_lex_check_utf8(p, text, text, tlen, "help text", err)) < 0)
            return rc;
        return unescape_help(p, text, tlen, err);
    }
    for (int t = EXPFMT_TYPE_COUNTER; t <= EXPFMT_TYPE_UNTYPED; t++) {
        if (name_eq(text, tlen, type_names[t], strlen(type_names[t]))) {
            p->meta_type = (enum expfmt_metric_type)t;
            return set_family(p, err);
        }
    }
    char q[400];
    expfmt_lex_quote(text, tlen, q, sizeof q);
    return bs_error_set(err, BS_EPARSE,
                        "line %zu, column %zu: invalid metric type \"%s\"; expected counter, "
                        "gauge, histogram, summary or untyped",
                        p->lineno, expfmt_lex_column(p, text), q);
}

/* ---------------------------------------------------------------- public */

void expfmt_parser_init(struct expfmt_parser *p, const char *buf, size_t len)
{
    cc_init();
    memset(p, 0, sizeof *p);
    p->buf = buf;
    p->len = buf ? len : 0;
}

void expfmt_parser_init_format(struct expfmt_parser *p, const char *buf, size_t len,
                               enum expfmt_format format)
{
    expfmt_parser_init(p, buf, len);
    p->format = format == EXPFMT_FORMAT_OPENMETRICS ? EXPFMT_FORMAT_OPENMETRICS
                                                    : EXPFMT_FORMAT_TEXT;
}

void expfmt_parser_fini(struct expfmt_parser *p)
{
    expfmt_om_fini(p);
    free(p->labels);
    free(p->scratch);
    free(p->family);
    memset(p, 0, sizeof *p);
}

int expfmt_parser_next(struct expfmt_parser *p, enum expfmt_entry *kind, struct bs_error *err)
{
    if (p->format == EXPFMT_FORMAT_OPENMETRICS)
        return expfmt_om_next(p, kind, err);
    *kind = EXPFMT_EOF;
    for (;;) {
        if (p->pos >= p->len)
            return 0;
        const char *line = p->buf + p->pos;
        size_t rest = p->len - p->pos;
        const char *nl = memchr(line, '\n', rest);
        p->line = line;
        p->line_end = nl ? nl : line + rest;
        p->pos = nl ? (size_t)(nl - p->buf) + 1 : p->len;
        p->lineno++;
        p->meta_name = p->meta_text = NULL;
        p->meta_name_len = p->meta_text_len = 0;
        const char *s = skip_ws(line, p->line_end);
        if (s == p->line_end)
            continue; /* blank line */
        int rc;
        if (*s != '#') {
            if ((rc = parse_series(p, s, err)) < 0)
                return rc;
            *kind = EXPFMT_SERIES;
            return 0;
        }
        const char *e = p->line_end;
        if (s + 6 <= e && cc_is(s + 1, CC_WS)) {
            const char *k = skip_ws(s + 1, e);
            if (e - k > 4 && cc_is(k + 4, CC_WS) &&
                (memcmp(k, "HELP", 4) == 0 || memcmp(k, "TYPE", 4) == 0)) {
                bool is_help = k[0] == 'H';
                if ((rc = parse_meta(p, k + 4, is_help, err)) < 0)
                    return rc;
                *kind = is_help ? EXPFMT_HELP : EXPFMT_TYPE;
                return 0;
            }
        }
        p->meta_name = line;
        p->meta_name_len = (size_t)(e - line);
        *kind = EXPFMT_COMMENT;
        return 0;
    }
}

const struct expfmt_series *expfmt_parser_series(const struct expfmt_parser *p)
{
    return &p->series;
}

void expfmt_parser_help(const struct expfmt_parser *p, const char **name, size_t *name_len,
                        const char **text, size_t *text_len)
{
    if (name)
        *name = p->meta_name;
    if (name_len)
        *name_len = p->meta_name_len;
    if (text)
        *text = p->meta_text ? p->meta_text : "";
    if (text_len)
        *text_len = p->meta_text_len;
}

void expfmt_parser_type(const struct expfmt_parser *p, const char **name, size_t *name_len,
                        enum expfmt_metric_type *type)
{
    if (name)
        *name = p->meta_name;
    if (name_len)
        *name_len = p->meta_name_len;
    if (type)
        *type = p->meta_type;
}

void expfmt_parser_comment(const struct expfmt_parser *p, const char **text, size_t *text_len)
{
    if (text)
        *text = p->meta_name;
    if (text_len)
        *text_len = p->meta_name_len;
}

size_t expfmt_parser_lineno(const struct expfmt_parser *p)
{
    return p->lineno;
}
