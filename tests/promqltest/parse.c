/* SPDX-License-Identifier: Apache-2.0
 *
 * promqltest: reading a .test script into commands.
 *
 * The file is split into lines, each trimmed; comment lines become blank,
 * and a blank line ends a command (FORMAT.md §1). `clear` is one line;
 * `load...` and `eval...` take the following lines up to the next blank one.
 * Series descriptions are expanded here (`0+10x10`, `_x3`, `stale`, ...);
 * native-histogram literals are recognised and skipped over, keeping only
 * the fact that a slot holds a histogram, because the engine under test is
 * float-only for now.
 *
 * Nothing in here aborts on bad input: a command that does not parse turns
 * into PT_CMD_BROKEN with "what was wrong" so the runner can report it with
 * its file:line and carry on with the rest of the file.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ptest.h"

/* Refuse to expand a single values list past this many slots. */
#define PT_MAX_VALUES 10000000

/* ------------------------------------------------------------- helpers */

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static const char *skip_blank(const char *s, const char *end)
{
    while (s < end && is_blank(*s))
        s++;
    return s;
}

static bool name_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool name_char(char c)
{
    return name_start(c) || (c >= '0' && c <= '9');
}

/* Does the word [s, s+n) equal lit? */
static bool word_is(const char *s, size_t n, const char *lit)
{
    return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

/* Next whitespace-separated word of [*p, end); false when none left. */
static bool next_word(const char **p, const char *end, const char **w, size_t *wn)
{
    const char *s = skip_blank(*p, end);
    const char *e = s;

    if (s == end)
        return false;
    while (e < end && !is_blank(*e))
        e++;
    *w = s;
    *wn = (size_t)(e - s);
    *p = e;
    return true;
}

static int parse_duration(const char *s, size_t n, int64_t *out, struct bs_error *err)
{
    return bs_duration_parse(s, n, out, err);
}

/* Unquote the PromQL/Go string literal starting at s[0] (", ' or `).
 * Appends the value to out; *consumed is the length of the literal. */
static int unquote(const char *s, size_t n, size_t *consumed, struct bs_buf *out,
                   struct bs_error *err)
{
    char q = s[0];
    size_t i = 1;

    if (q == '`') {
        for (; i < n && s[i] != '`'; i++)
            if (bs_buf_putc(out, s[i]))
                return BS_ENOMEM;
        if (i >= n)
            return bs_error_set(err, BS_EPARSE, "unterminated raw string");
        *consumed = i + 1;
        return 0;
    }
    while (i < n && s[i] != q) {
        char c = s[i++];
        if (c == '\n')
            return bs_error_set(err, BS_EPARSE, "newline in string");
        if (c != '\\') {
            if (bs_buf_putc(out, c))
                return BS_ENOMEM;
            continue;
        }
        if (i >= n)
            break;
        c = s[i++];
        uint32_t cp = 0;
        int digits = 0, base = 16;
        switch (c) {
        case 'a': c = '\a'; break;
        case 'b': c = '\b'; break;
        case 'f': c = '\f'; break;
        case 'n': c = '\n'; break;
        case 'r': c = '\r'; break;
        case 't': c = '\t'; break;
        case 'v': c = '\v'; break;
        case '\\': case '"': case '\'': case '`': break;
        case 'x': digits = 2; break;
        case 'u': digits = 4; break;
        case 'U': digits = 8; break;
        default:
            if (c >= '0' && c <= '7') {
                digits = 3;
                base = 8;
                i--;
                break;
            }
            return bs_error_set(err, BS_EPARSE, "unknown escape sequence \\%c", c);
        }
        if (digits == 0) {
            if (bs_buf_putc(out, c))
                return BS_ENOMEM;
            continue;
        }
        for (int k = 0; k < digits; k++, i++) {
            int d;
            if (i >= n)
                return bs_error_set(err, BS_EPARSE, "truncated escape sequence");
            char h = s[i];
            if (h >= '0' && h <= '9')
                d = h - '0';
            else if (h >= 'a' && h <= 'f')
                d = h - 'a' + 10;
            else if (h >= 'A' && h <= 'F')
                d = h - 'A' + 10;
            else
                d = 99;
            if (d >= base)
                return bs_error_set(err, BS_EPARSE, "invalid escape sequence");
            cp = cp * (uint32_t)base + (uint32_t)d;
        }
        if (base == 8 || c == 'x') {
            if (cp > 255)
                return bs_error_set(err, BS_EPARSE, "octal escape out of range");
            if (bs_buf_putc(out, (char)cp))
                return BS_ENOMEM;
            continue;
        }
        /* UTF-8 encode a code point. */
        char u[4];
        size_t un;
        if (cp < 0x80) {
            u[0] = (char)cp;
            un = 1;
        } else if (cp < 0x800) {
            u[0] = (char)(0xc0 | (cp >> 6));
            u[1] = (char)(0x80 | (cp & 0x3f));
            un = 2;
        } else if (cp < 0x10000) {
            u[0] = (char)(0xe0 | (cp >> 12));
            u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
            u[2] = (char)(0x80 | (cp & 0x3f));
            un = 3;
        } else if (cp <= 0x10ffff) {
            u[0] = (char)(0xf0 | (cp >> 18));
            u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
            u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
            u[3] = (char)(0x80 | (cp & 0x3f));
            un = 4;
        } else {
            return bs_error_set(err, BS_EPARSE, "escape sequence is an invalid code point");
        }
        if (bs_buf_append(out, u, un))
            return BS_ENOMEM;
    }
    if (i >= n)
        return bs_error_set(err, BS_EPARSE, "unterminated quoted string");
    *consumed = i + 1;
    return 0;
}

/* ------------------------------------------------------ series descriptor */

int pt_series_parse(const char *s, size_t n, size_t *consumed, struct labels **out,
                    struct bs_error *err)
{
    const char *p = s, *end = s + n;
    struct labels_builder b;
    struct bs_buf name, val;
    struct labels ls;
    bool any = false;
    int rc = 0;

    labels_builder_init(&b);
    bs_buf_init(&name, 0);
    bs_buf_init(&val, 0);
    *out = NULL;

    if (p < end && (name_start(*p) || *p == ':')) {
        const char *m = p;
        while (p < end && (name_char(*p) || *p == ':'))
            p++;
        if ((rc = labels_builder_add_raw(&b, LABELS_METRIC_NAME, strlen(LABELS_METRIC_NAME), m,
                                         (size_t)(p - m))))
            goto fail;
        any = true;
    }
    if (p < end && *p == '{') {
        any = true;
        p++;
        for (;;) {
            size_t used;
            bool quoted_name = false;

            p = skip_blank(p, end);
            if (p >= end) {
                rc = bs_error_set(err, BS_EPARSE, "unterminated label set");
                goto fail;
            }
            if (*p == '}') {
                p++;
                break;
            }
            bs_buf_reset(&name);
            bs_buf_reset(&val);
            if (*p == '"' || *p == '\'' || *p == '`') {
                if ((rc = unquote(p, (size_t)(end - p), &used, &name, err)))
                    goto fail;
                p += used;
                quoted_name = true;
            } else if (name_start(*p)) {
                const char *m = p;
                while (p < end && name_char(*p))
                    p++;
                if ((rc = bs_buf_append(&name, m, (size_t)(p - m))))
                    goto fail;
            } else {
                rc = bs_error_set(err, BS_EPARSE, "unexpected character '%c' in label set", *p);
                goto fail;
            }
            p = skip_blank(p, end);
            if (quoted_name && p < end && (*p == ',' || *p == '}')) {
                /* {"metric.name", ...}: a quoted metric name. */
                if ((rc = labels_builder_add_raw(&b, LABELS_METRIC_NAME,
                                                 strlen(LABELS_METRIC_NAME),
                                                 name.data ? name.data : "", name.len)))
                    goto fail;
            } else {
                if (p >= end || *p != '=') {
                    rc = bs_error_set(err, BS_EPARSE, "expected '=' after label name");
                    goto fail;
                }
                p = skip_blank(p + 1, end);
                if (p >= end || (*p != '"' && *p != '\'' && *p != '`')) {
                    rc = bs_error_set(err, BS_EPARSE, "expected a quoted label value");
                    goto fail;
                }
                if ((rc = unquote(p, (size_t)(end - p), &used, &val, err)))
                    goto fail;
                p += used;
                if (val.len > 0 &&
                    (rc = labels_builder_add_raw(&b, name.data ? name.data : "", name.len,
                                                 val.data, val.len)))
                    goto fail;
            }
            p = skip_blank(p, end);
            if (p < end && *p == ',') {
                p++;
                continue;
            }
            if (p < end && *p == '}') {
                p++;
                break;
            }
            rc = bs_error_set(err, BS_EPARSE, "expected ',' or '}' in label set");
            goto fail;
        }
    }
    if (!any) {
        rc = bs_error_set(err, BS_EPARSE, "expected a series description");
        goto fail;
    }
    if ((rc = labels_builder_labels(&b, &ls, err)))
        goto fail;
    *out = labels_dup(&ls);
    if (!*out) {
        rc = BS_ENOMEM;
        goto fail;
    }
    *consumed = (size_t)(p - s);
fail:
    labels_builder_fini(&b);
    bs_buf_fini(&name);
    bs_buf_fini(&val);
    return rc;
}

/* --------------------------------------------------------- values lists */

struct vals {
    struct pt_value *v;
    size_t n, cap;
};

static int vals_push(struct vals *vs, enum pt_val_kind kind, double v, struct bs_error *err)
{
    if (vs->n >= PT_MAX_VALUES)
        return bs_error_set(err, BS_ELIMIT, "series expands to more than %d values",
                            PT_MAX_VALUES);
    if (vs->n == vs->cap) {
        size_t nc = vs->cap ? vs->cap * 2 : 16;
        struct pt_value *nv = realloc(vs->v, nc * sizeof(*nv));
        if (!nv)
            return BS_ENOMEM;
        vs->v = nv;
        vs->cap = nc;
    }
    vs->v[vs->n].kind = kind;
    vs->v[vs->n].v = v;
    vs->n++;
    return 0;
}

static bool parse_float(const char *s, size_t n, double *out)
{
    return n > 0 && bs_float_parse(s, n, false, out) == 0;
}

/* A repetition count: decimal digits only. */
static bool parse_count(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;

    if (n == 0 || n > 12)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return true;
}

/* End of the histogram literal starting at s ("{{"): points past "}}". */
static const char *hist_end(const char *s, const char *end)
{
    for (const char *p = s + 2; p + 1 < end; p++)
        if (p[0] == '}' && p[1] == '}')
            return p + 2;
    return NULL;
}

/* Light validation of a literal's inside: key:value pairs, lists in []. */
static int hist_check(const char *s, const char *e, struct bs_error *err)
{
    static const char *const keys[] = {"schema",  "sum",       "count",      "z_bucket",
                                       "z_bucket_w", "buckets", "offset",   "n_buckets",
                                       "n_offset", "custom_values", "counter_reset_hint"};
    const char *p = s + 2, *end = e - 2;

    for (;;) {
        const char *k;
        bool ok = false;
        p = skip_blank(p, end);
        if (p >= end)
            return 0;
        k = p;
        while (p < end && *p != ':' && !is_blank(*p))
            p++;
        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
            if (word_is(k, (size_t)(p - k), keys[i]))
                ok = true;
        if (!ok || p >= end || *p != ':')
            return bs_error_set(err, BS_EPARSE, "bad native histogram literal near \"%.*s\"",
                                (int)(end - k > 30 ? 30 : end - k), k);
        p = skip_blank(p + 1, end);
        if (p < end && *p == '[') {
            while (p < end && *p != ']')
                p++;
            if (p >= end)
                return bs_error_set(err, BS_EPARSE, "unterminated [ in histogram literal");
            p++;
        } else {
            while (p < end && !is_blank(*p))
                p++;
        }
    }
}

/* Expand one item [s, e) (no blanks outside histogram literals). */
static int expand_item(const char *s, const char *e, struct vals *vs, struct bs_error *err)
{
    size_t n = (size_t)(e - s);
    double a, b;
    uint64_t cnt;
    int rc;

    if (word_is(s, n, "_"))
        return vals_push(vs, PT_VAL_OMIT, 0, err);
    if (word_is(s, n, "stale"))
        return vals_push(vs, PT_VAL_FLOAT, bs_stale_nan(), err);
    if (n >= 2 && s[0] == '{' && s[1] == '{') {
        const char *he = hist_end(s, e);
        uint64_t copies = 1;
        if (!he)
            return bs_error_set(err, BS_EPARSE, "unterminated histogram literal");
        if ((rc = hist_check(s, he, err)))
            return rc;
        if (he < e && *he == 'x') {
            if (!parse_count(he + 1, (size_t)(e - he - 1), &cnt))
                return bs_error_set(err, BS_EPARSE, "bad repetition in \"%.*s\"", (int)n, s);
            copies = cnt + 1;
        } else if (he < e && (*he == '+' || *he == '-')) {
            const char *b0 = he + 1, *be;
            if (e - b0 < 2 || b0[0] != '{' || b0[1] != '{' || !(be = hist_end(b0, e)))
                return bs_error_set(err, BS_EPARSE, "bad histogram series \"%.*s\"", (int)n, s);
            if ((rc = hist_check(b0, be, err)))
                return rc;
            if (be >= e || *be != 'x' || !parse_count(be + 1, (size_t)(e - be - 1), &cnt))
                return bs_error_set(err, BS_EPARSE, "bad repetition in \"%.*s\"", (int)n, s);
            copies = cnt + 1;
        } else if (he != e) {
            return bs_error_set(err, BS_EPARSE, "unexpected text after histogram literal");
        }
        for (uint64_t i = 0; i < copies; i++)
            if ((rc = vals_push(vs, PT_VAL_HIST, 0, err)))
                return rc;
        return 0;
    }
    if (parse_float(s, n, &a))
        return vals_push(vs, PT_VAL_FLOAT, a, err);

    /* Forms with a repetition count: _xN, AxN, A+BxN, A-BxN. */
    const char *x = NULL;
    for (const char *p = s; p < e; p++)
        if (*p == 'x')
            x = p;
    if (!x || !parse_count(x + 1, (size_t)(e - x - 1), &cnt))
        return bs_error_set(err, BS_EPARSE, "invalid value \"%.*s\"", (int)n, s);
    size_t ln = (size_t)(x - s);
    if (word_is(s, ln, "_")) {
        /* _xN is N omitted slots, not N+1. */
        for (uint64_t i = 0; i < cnt; i++)
            if ((rc = vals_push(vs, PT_VAL_OMIT, 0, err)))
                return rc;
        return 0;
    }
    if (word_is(s, ln, "stale")) {
        for (uint64_t i = 0; i <= cnt; i++)
            if ((rc = vals_push(vs, PT_VAL_FLOAT, bs_stale_nan(), err)))
                return rc;
        return 0;
    }
    if (parse_float(s, ln, &a)) {
        for (uint64_t i = 0; i <= cnt; i++)
            if ((rc = vals_push(vs, PT_VAL_FLOAT, a, err)))
                return rc;
        return 0;
    }
    for (size_t i = 1; i < ln; i++) {
        if (s[i] != '+' && s[i] != '-')
            continue;
        if (!parse_float(s, i, &a) || !parse_float(s + i + 1, ln - i - 1, &b))
            continue;
        /* Upstream builds the series by repeated float addition. */
        double step = s[i] == '-' ? -b : b, cur = a;
        for (uint64_t k = 0; k <= cnt; k++) {
            if ((rc = vals_push(vs, PT_VAL_FLOAT, cur, err)))
                return rc;
            cur += step;
        }
        return 0;
    }
    return bs_error_set(err, BS_EPARSE, "invalid value \"%.*s\"", (int)n, s);
}

int pt_values_expand(const char *s, size_t n, struct pt_value **vals, size_t *nvals,
                     struct bs_error *err)
{
    const char *p = s, *end = s + n;
    struct vals vs = {0};
    int rc;

    for (;;) {
        const char *b;
        p = skip_blank(p, end);
        if (p >= end)
            break;
        b = p;
        while (p < end && !is_blank(*p)) {
            if (p + 1 < end && p[0] == '{' && p[1] == '{') {
                const char *he = hist_end(p, end);
                if (!he) {
                    free(vs.v);
                    return bs_error_set(err, BS_EPARSE, "unterminated histogram literal");
                }
                p = he;
            } else {
                p++;
            }
        }
        if ((rc = expand_item(b, p, &vs, err))) {
            free(vs.v);
            return rc;
        }
    }
    *vals = vs.v;
    *nvals = vs.n;
    return 0;
}

/* Parse "<series> <values>" into se. st_line is set when the series is
 * glued to "@st" (a start-timestamp line; values are not expanded). */
static int series_line(const char *s, size_t n, int line, struct pt_series *se, bool *st_line,
                       struct bs_error *err)
{
    size_t used = 0;
    int rc;

    memset(se, 0, sizeof(*se));
    se->line = line;
    *st_line = false;
    if ((rc = pt_series_parse(s, n, &used, &se->labels, err)))
        return rc;
    if (n - used >= 3 && memcmp(s + used, "@st", 3) == 0 &&
        (n - used == 3 || is_blank(s[used + 3]))) {
        *st_line = true;
        return 0;
    }
    if (used < n && !is_blank(s[used]))
        return bs_error_set(err, BS_EPARSE, "unexpected \"%c\" after series description",
                            s[used]);
    if ((rc = pt_values_expand(s + used, n - used, &se->vals, &se->nvals, err)))
        return rc;
    for (size_t i = 0; i < se->nvals; i++)
        if (se->vals[i].kind == PT_VAL_HIST)
            se->has_hist = true;
    return 0;
}

static void series_fini(struct pt_series *se)
{
    free(se->labels);
    free(se->vals);
    se->labels = NULL;
    se->vals = NULL;
}

static int series_push(struct pt_series **arr, size_t *n, const struct pt_series *se)
{
    struct pt_series *na = realloc(*arr, (*n + 1) * sizeof(**arr));
    if (!na)
        return BS_ENOMEM;
    na[*n] = *se;
    *arr = na;
    (*n)++;
    return 0;
}

/* Go's strconv.ParseInt(s, 0, 64) then ParseFloat(s, 64): a bare number. */
static bool parse_go_number(const char *s, size_t n, double *out)
{
    size_t i = 0;
    bool neg = false;
    int base = 10;

    if (n == 0)
        return false;
    if (s[0] == '+' || s[0] == '-') {
        neg = s[0] == '-';
        i = 1;
    }
    if (n - i >= 2 && s[i] == '0') {
        char c = (char)tolower((unsigned char)s[i + 1]);
        if (c == 'x')
            base = 16, i += 2;
        else if (c == 'o')
            base = 8, i += 2;
        else if (c == 'b')
            base = 2, i += 2;
        else if (c >= '0' && c <= '9')
            base = 8, i += 1;
    }
    if (i < n) {
        double v = 0;
        size_t j = i;
        bool digits = false;
        for (; j < n; j++) {
            int d;
            char c = s[j];
            if (c == '_' && base != 10)
                continue;
            if (c >= '0' && c <= '9')
                d = c - '0';
            else if (c >= 'a' && c <= 'f')
                d = c - 'a' + 10;
            else if (c >= 'A' && c <= 'F')
                d = c - 'A' + 10;
            else
                break;
            if (d >= base)
                break;
            v = v * base + d;
            digits = true;
        }
        if (j == n && digits) {
            *out = neg ? -v : v;
            return true;
        }
    }
    return bs_float_parse(s, n, true, out) == 0;
}

/* -------------------------------------------------------------- commands */

struct lines {
    char **v;
    size_t n;
};

static int parse_load(struct pt_cmd *c, struct lines *L, size_t i, size_t j,
                      struct bs_error *err)
{
    const char *h = L->v[i], *he = h + strlen(h), *w, *p = h;
    size_t wn;
    int rc;

    c->kind = PT_CMD_LOAD;
    next_word(&p, he, &w, &wn);
    if (word_is(w, wn, "load_with_nhcb"))
        c->load.nhcb = true;
    else if (!word_is(w, wn, "load"))
        return bs_error_set(err, BS_EPARSE, "invalid load command \"%s\"", h);
    if (!next_word(&p, he, &w, &wn))
        return bs_error_set(err, BS_EPARSE, "load: missing interval");
    if ((rc = parse_duration(w, wn, &c->load.interval_ms, err)))
        return rc;
    if (skip_blank(p, he) != he)
        return bs_error_set(err, BS_EPARSE, "invalid load command \"%s\"", h);
    for (size_t k = i + 1; k < j; k++) {
        struct pt_series se;
        bool st;
        if ((rc = series_line(L->v[k], strlen(L->v[k]), (int)k + 1, &se, &st, err))) {
            series_fini(&se);
            bs_error_prefix(err, "line %zu", k + 1);
            return rc;
        }
        if (st) {
            c->load.n_st_lines++;
            series_fini(&se);
            continue;
        }
        if ((rc = series_push(&c->load.series, &c->load.nseries, &se))) {
            series_fini(&se);
            return rc;
        }
    }
    return 0;
}

static int msg_push(struct pt_msg **arr, size_t *n, const struct pt_msg *m)
{
    struct pt_msg *na = realloc(*arr, (*n + 1) * sizeof(**arr));
    if (!na)
        return BS_ENOMEM;
    na[*n] = *m;
    *arr = na;
    (*n)++;
    return 0;
}

/* "[msg: X | regex: X]" after an expect type. */
static int parse_msg(const char *p, const char *end, struct pt_msg *m, struct bs_error *err)
{
    p = skip_blank(p, end);
    m->mode = PT_MSG_ANY;
    m->text = NULL;
    if (p == end)
        return 0;
    if ((size_t)(end - p) >= 4 && memcmp(p, "msg:", 4) == 0) {
        m->mode = PT_MSG_EXACT;
        p += 4;
    } else if ((size_t)(end - p) >= 6 && memcmp(p, "regex:", 6) == 0) {
        m->mode = PT_MSG_REGEX;
        p += 6;
    } else {
        return bs_error_set(err, BS_EPARSE, "expected msg: or regex: in \"%s\"", p);
    }
    p = skip_blank(p, end);
    m->text = bs_xstrndup(p, (size_t)(end - p));
    return 0;
}

static int parse_expect(struct pt_eval *ev, const char *s, struct bs_error *err)
{
    const char *end = s + strlen(s), *p = s, *w;
    size_t wn;
    struct pt_msg m;
    int rc;

    next_word(&p, end, &w, &wn); /* "expect" */
    if (!next_word(&p, end, &w, &wn))
        return bs_error_set(err, BS_EPARSE, "expect: missing type");
    if (word_is(w, wn, "fail")) {
        if (ev->want_fail)
            return bs_error_set(err, BS_EPARSE, "more than one expect fail");
        ev->want_fail = true;
        return parse_msg(p, end, &ev->fail_msg, err);
    }
    if (word_is(w, wn, "warn") || word_is(w, wn, "info")) {
        bool warn = w[0] == 'w';
        if ((rc = parse_msg(p, end, &m, err)))
            return rc;
        if (warn) {
            ev->check_warn = true;
            return msg_push(&ev->warns, &ev->nwarns, &m);
        }
        ev->check_info = true;
        return msg_push(&ev->infos, &ev->ninfos, &m);
    }
    if (word_is(w, wn, "no_warn") || word_is(w, wn, "no_info")) {
        if (skip_blank(p, end) != end)
            return bs_error_set(err, BS_EPARSE, "unexpected text after expect %.*s", (int)wn, w);
        if (w[3] == 'w')
            ev->no_warn = ev->check_warn = true;
        else
            ev->no_info = ev->check_info = true;
        return 0;
    }
    if (word_is(w, wn, "ordered")) {
        ev->ordered = true;
        return 0;
    }
    if (word_is(w, wn, "string")) {
        struct bs_buf b;
        size_t used;
        p = skip_blank(p, end);
        if (p == end || (*p != '"' && *p != '`'))
            return bs_error_set(err, BS_EPARSE, "expect string: expected a quoted string");
        bs_buf_init(&b, 0);
        if ((rc = unquote(p, (size_t)(end - p), &used, &b, err))) {
            bs_buf_fini(&b);
            return rc;
        }
        if (skip_blank(p + used, end) != end) {
            bs_buf_fini(&b);
            return bs_error_set(err, BS_EPARSE, "unexpected text after expect string");
        }
        ev->want_string = true;
        ev->string = b.data ? bs_buf_steal(&b, NULL) : bs_xstrdup("");
        bs_buf_fini(&b);
        return 0;
    }
    if (word_is(w, wn, "range")) {
        const char *ws[7];
        size_t wl[7];
        for (int k = 0; k < 7; k++)
            if (!next_word(&p, end, &ws[k], &wl[k]))
                return bs_error_set(err, BS_EPARSE, "expect range vector: bad syntax");
        if (!word_is(ws[0], wl[0], "vector") || !word_is(ws[1], wl[1], "from") ||
            !word_is(ws[3], wl[3], "to") || !word_is(ws[5], wl[5], "step") ||
            skip_blank(p, end) != end)
            return bs_error_set(err, BS_EPARSE, "expect range vector: bad syntax");
        if ((rc = parse_duration(ws[2], wl[2], &ev->rv_start, err)) ||
            (rc = parse_duration(ws[4], wl[4], &ev->rv_end, err)) ||
            (rc = parse_duration(ws[6], wl[6], &ev->rv_step, err)))
            return rc;
        if (ev->rv_step <= 0 || ev->rv_end < ev->rv_start)
            return bs_error_set(err, BS_EPARSE, "expect range vector: bad interval");
        ev->range_vector = true;
        return 0;
    }
    return bs_error_set(err, BS_EPARSE, "unknown expect type \"%.*s\"", (int)wn, w);
}

static int parse_eval(struct pt_cmd *c, struct lines *L, size_t i, size_t j,
                      struct bs_error *err)
{
    struct pt_eval *ev = &c->eval;
    const char *h = L->v[i], *he = h + strlen(h), *p = h, *w;
    size_t wn;
    int rc;
    bool legacy_warn = false, legacy_info = false;

    c->kind = PT_CMD_EVAL;
    next_word(&p, he, &w, &wn);
    if (word_is(w, wn, "eval_fail"))
        ev->want_fail = true;
    else if (word_is(w, wn, "eval_warn"))
        legacy_warn = true;
    else if (word_is(w, wn, "eval_info"))
        legacy_info = true;
    else if (word_is(w, wn, "eval_ordered"))
        ev->ordered = true;
    else if (!word_is(w, wn, "eval"))
        return bs_error_set(err, BS_EPARSE, "invalid eval command \"%.*s\"", (int)wn, w);
    if (!next_word(&p, he, &w, &wn))
        return bs_error_set(err, BS_EPARSE, "eval: missing instant/range");
    if (word_is(w, wn, "instant")) {
        if (!next_word(&p, he, &w, &wn) || !word_is(w, wn, "at") ||
            !next_word(&p, he, &w, &wn))
            return bs_error_set(err, BS_EPARSE, "eval instant: expected \"at <time>\"");
        if ((rc = parse_duration(w, wn, &ev->at, err)))
            return rc;
    } else if (word_is(w, wn, "range")) {
        const char *ws[6];
        size_t wl[6];
        ev->range = true;
        if (ev->ordered)
            return bs_error_set(err, BS_EPARSE, "eval_ordered is only for instant queries");
        for (int k = 0; k < 6; k++)
            if (!next_word(&p, he, &ws[k], &wl[k]))
                return bs_error_set(err, BS_EPARSE, "eval range: bad syntax");
        if (!word_is(ws[0], wl[0], "from") || !word_is(ws[2], wl[2], "to") ||
            !word_is(ws[4], wl[4], "step"))
            return bs_error_set(err, BS_EPARSE,
                                "eval range: expected \"from <t> to <t> step <d>\"");
        if ((rc = parse_duration(ws[1], wl[1], &ev->start, err)) ||
            (rc = parse_duration(ws[3], wl[3], &ev->end, err)) ||
            (rc = parse_duration(ws[5], wl[5], &ev->step, err)))
            return rc;
        if (ev->end < ev->start)
            return bs_error_set(err, BS_EPARSE, "eval range: end is before start");
        if (ev->step <= 0)
            return bs_error_set(err, BS_EPARSE, "eval range: step must be positive");
    } else {
        return bs_error_set(err, BS_EPARSE, "eval: expected instant or range, got \"%.*s\"",
                            (int)wn, w);
    }
    p = skip_blank(p, he);
    if (p == he)
        return bs_error_set(err, BS_EPARSE, "eval: missing expression");
    ev->expr = bs_xstrdup(p);

    if (legacy_warn) {
        struct pt_msg m = {PT_MSG_ANY, NULL};
        ev->check_warn = true;
        if ((rc = msg_push(&ev->warns, &ev->nwarns, &m)))
            return rc;
    }
    if (legacy_info) {
        struct pt_msg m = {PT_MSG_ANY, NULL};
        ev->check_info = true;
        if ((rc = msg_push(&ev->infos, &ev->ninfos, &m)))
            return rc;
    }

    for (size_t k = i + 1; k < j; k++) {
        const char *s = L->v[k];
        size_t n = strlen(s);
        double num;

        if (n > 7 && memcmp(s, "expect", 6) == 0 && is_blank(s[6])) {
            if ((rc = parse_expect(ev, s, err))) {
                bs_error_prefix(err, "line %zu", k + 1);
                return rc;
            }
            continue;
        }
        if (n > 21 && memcmp(s, "expected_fail_message", 21) == 0 && is_blank(s[21])) {
            ev->want_fail = true;
            ev->fail_msg.mode = PT_MSG_EXACT;
            ev->fail_msg.text = bs_xstrdup(skip_blank(s + 21, s + n));
            continue;
        }
        if (n > 20 && memcmp(s, "expected_fail_regexp", 20) == 0 && is_blank(s[20])) {
            ev->want_fail = true;
            ev->fail_msg.mode = PT_MSG_REGEX;
            ev->fail_msg.text = bs_xstrdup(skip_blank(s + 20, s + n));
            continue;
        }
        if (parse_go_number(s, n, &num)) {
            if (ev->nseries > 0 || ev->want_scalar)
                return bs_error_set(err, BS_EPARSE, "line %zu: scalar after other results",
                                    k + 1);
            ev->want_scalar = true;
            ev->scalar = num;
            if (k + 1 < j)
                return bs_error_set(err, BS_EPARSE,
                                    "line %zu: unexpected line after a scalar result", k + 2);
            continue;
        }
        struct pt_series se;
        bool st;
        if ((rc = series_line(s, n, (int)k + 1, &se, &st, err)) ||
            (st && (rc = bs_error_set(err, BS_EPARSE, "@st in an expected result")))) {
            series_fini(&se);
            bs_error_prefix(err, "line %zu", k + 1);
            return rc;
        }
        if (se.has_hist)
            ev->hist_expected = true;
        if ((rc = series_push(&ev->series, &ev->nseries, &se))) {
            series_fini(&se);
            return rc;
        }
    }

    /* Consistency checks upstream makes when reading. */
    if (ev->want_scalar && ev->nseries)
        return bs_error_set(err, BS_EPARSE, "both a scalar and series expected");
    if ((ev->no_warn && ev->nwarns) || (ev->no_info && ev->ninfos))
        return bs_error_set(err, BS_EPARSE, "expect warn/info together with no_warn/no_info");
    if (ev->range && (ev->ordered || ev->range_vector))
        return bs_error_set(err, BS_EPARSE, "ordered / range vector only for instant evals");
    for (size_t k = 0; k < ev->nseries; k++) {
        const struct pt_series *se = &ev->series[k];
        if (ev->range) {
            size_t steps = (size_t)((ev->end - ev->start) / ev->step) + 1;
            if (se->nvals > steps)
                return bs_error_set(err, BS_EPARSE,
                                    "line %d: %zu expected values but only %zu steps",
                                    se->line, se->nvals, steps);
        } else if (ev->range_vector) {
            size_t steps = (size_t)((ev->rv_end - ev->rv_start) / ev->rv_step) + 1;
            if (se->nvals > steps)
                return bs_error_set(err, BS_EPARSE,
                                    "line %d: %zu expected values but only %zu steps",
                                    se->line, se->nvals, steps);
        } else if (se->nvals != 1) {
            return bs_error_set(err, BS_EPARSE,
                                "line %d: an instant result needs exactly one value, got %zu",
                                se->line, se->nvals);
        }
    }
    return 0;
}

static void eval_fini(struct pt_eval *ev)
{
    free(ev->expr);
    free(ev->fail_msg.text);
    for (size_t i = 0; i < ev->nwarns; i++)
        free(ev->warns[i].text);
    for (size_t i = 0; i < ev->ninfos; i++)
        free(ev->infos[i].text);
    free(ev->warns);
    free(ev->infos);
    free(ev->string);
    for (size_t i = 0; i < ev->nseries; i++)
        series_fini(&ev->series[i]);
    free(ev->series);
}

static void cmd_fini(struct pt_cmd *c)
{
    for (size_t i = 0; i < c->load.nseries; i++)
        series_fini(&c->load.series[i]);
    free(c->load.series);
    eval_fini(&c->eval);
    free(c->error);
}

int pt_file_parse(struct pt_file *f, const char *name, const char *text, size_t len)
{
    struct lines L = {0};
    char *copy = bs_xstrndup(text, len);
    size_t cap = 0;

    memset(f, 0, sizeof(*f));
    f->name = bs_xstrdup(name);

    /* Split and trim; comment lines become empty. */
    for (char *p = copy;;) {
        char *nl = strchr(p, '\n');
        char *e;
        if (nl)
            *nl = '\0';
        while (is_blank(*p))
            p++;
        e = p + strlen(p);
        while (e > p && is_blank(e[-1]))
            *--e = '\0';
        if (*p == '#')
            *p = '\0';
        if (L.n == cap) {
            cap = cap ? cap * 2 : 256;
            L.v = bs_xrealloc(L.v, cap * sizeof(*L.v));
        }
        L.v[L.n++] = p;
        if (!nl)
            break;
        p = nl + 1;
    }

    for (size_t i = 0; i < L.n;) {
        const char *h = L.v[i], *w, *p = h;
        size_t wn, j = i + 1;
        struct pt_cmd c;
        struct bs_error err;
        int rc = 0;

        if (!*h) {
            i++;
            continue;
        }
        memset(&c, 0, sizeof(c));
        bs_error_clear(&err);
        c.line = (int)i + 1;
        next_word(&p, h + strlen(h), &w, &wn);
        if (wn == 5 && strncasecmp(w, "clear", 5) == 0) {
            c.kind = PT_CMD_CLEAR;
            if (!word_is(w, wn, "clear") || skip_blank(p, h + strlen(h)) != h + strlen(h))
                rc = bs_error_set(&err, BS_EPARSE, "invalid clear command \"%s\"", h);
        } else {
            while (j < L.n && *L.v[j])
                j++;
            if (wn >= 4 && strncasecmp(w, "load", 4) == 0) {
                rc = parse_load(&c, &L, i, j, &err);
            } else if (wn >= 4 && strncasecmp(w, "eval", 4) == 0) {
                rc = parse_eval(&c, &L, i, j, &err);
                c.broken_eval = rc != 0;
            } else {
                rc = bs_error_set(&err, BS_EPARSE, "invalid command \"%.*s\"", (int)wn, w);
            }
        }
        if (rc) {
            bool was_eval = c.broken_eval;
            cmd_fini(&c);
            memset(&c, 0, sizeof(c));
            c.kind = PT_CMD_BROKEN;
            c.line = (int)i + 1;
            c.broken_eval = was_eval;
            c.error = bs_xstrdup(err.msg[0] ? err.msg : bs_strerror(rc));
        }
        f->cmds = bs_xrealloc(f->cmds, (f->ncmds + 1) * sizeof(*f->cmds));
        f->cmds[f->ncmds++] = c;
        i = j;
    }
    free(L.v);
    free(copy);
    return 0;
}

void pt_file_fini(struct pt_file *f)
{
    for (size_t i = 0; i < f->ncmds; i++)
        cmd_fini(&f->cmds[i]);
    free(f->cmds);
    free(f->name);
    memset(f, 0, sizeof(*f));
}

/* ----------------------------------------------------- float comparison */

bool pt_float_equal(double a, double b)
{
    const double eps = 1e-6, min_normal = 2.2250738585072014e-308;
    bool sa = bs_is_stale_nan(a), sb = bs_is_stale_nan(b);

    if (sa || sb)
        return sa && sb;
    if (isnan(a) && isnan(b))
        return true;
    if (a == b)
        return true;
    double diff = fabs(a - b);
    double sum = fabs(a) + fabs(b);
    if (a == 0 || b == 0 || sum < min_normal)
        return diff < eps * min_normal;
    if (isinf(sum))
        sum = 1.7976931348623157e308;
    return diff / sum < eps;
}
