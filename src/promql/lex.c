/* SPDX-License-Identifier: Apache-2.0
 *
 * promql lexer: turns query text into tokens on demand. Like Prometheus's
 * lexer it has three contexts: statements, inside braces (label matchers:
 * every word is a plain identifier, =~ and !~ exist) and inside brackets
 * (durations and the subquery colon). Lexical errors become a PT_ERROR
 * token carrying Prometheus's message; the parser reports it at the
 * token's position.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "promql/promql_int.h"

static const struct {
    const char *word;
    enum promql_tok tok;
    int agg;
} keywords[] = {
    {"and", PT_LAND, 0}, {"or", PT_LOR, 0}, {"unless", PT_LUNLESS, 0}, {"atan2", PT_ATAN2, 0},
    {"bool", PT_BOOL, 0}, {"by", PT_BY, 0}, {"group_left", PT_GROUP_LEFT, 0},
    {"group_right", PT_GROUP_RIGHT, 0}, {"ignoring", PT_IGNORING, 0}, {"offset", PT_OFFSET, 0},
    {"on", PT_ON, 0}, {"without", PT_WITHOUT, 0}, {"start", PT_START, 0}, {"end", PT_END, 0},
    {"inf", PT_NUMBER, 0}, {"nan", PT_NUMBER, 0},
    {"sum", PT_AGG, PROMQL_AGG_SUM}, {"avg", PT_AGG, PROMQL_AGG_AVG},
    {"min", PT_AGG, PROMQL_AGG_MIN}, {"max", PT_AGG, PROMQL_AGG_MAX},
    {"count", PT_AGG, PROMQL_AGG_COUNT}, {"group", PT_AGG, PROMQL_AGG_GROUP},
    {"stddev", PT_AGG, PROMQL_AGG_STDDEV}, {"stdvar", PT_AGG, PROMQL_AGG_STDVAR},
    {"topk", PT_AGG, PROMQL_AGG_TOPK}, {"bottomk", PT_AGG, PROMQL_AGG_BOTTOMK},
    {"quantile", PT_AGG, PROMQL_AGG_QUANTILE}, {"count_values", PT_AGG, PROMQL_AGG_COUNT_VALUES},
    {"limitk", PT_AGG, PROMQL_AGG_LIMITK}, {"limit_ratio", PT_AGG, PROMQL_AGG_LIMIT_RATIO},
};

static const char *const agg_names[] = {
    "sum", "avg", "min", "max", "count", "group", "stddev", "stdvar", "topk", "bottomk",
    "quantile", "count_values", "limitk", "limit_ratio",
};

const char *promql_agg_name(int agg)
{
    if (agg < 0 || agg >= (int)(sizeof(agg_names) / sizeof(agg_names[0])))
        return "?";
    return agg_names[agg];
}

const char *promql_tok_text(enum promql_tok t)
{
    switch (t) {
    case PT_ADD: return "+";
    case PT_SUB: return "-";
    case PT_MUL: return "*";
    case PT_DIV: return "/";
    case PT_MOD: return "%";
    case PT_POW: return "^";
    case PT_ATAN2: return "atan2";
    case PT_EQLC: return "==";
    case PT_NEQ: return "!=";
    case PT_LTE: return "<=";
    case PT_LSS: return "<";
    case PT_GTE: return ">=";
    case PT_GTR: return ">";
    case PT_LAND: return "and";
    case PT_LOR: return "or";
    case PT_LUNLESS: return "unless";
    case PT_EQL_REGEX: return "=~";
    case PT_NEQ_REGEX: return "!~";
    case PT_EQL: return "=";
    default: return "?";
    }
}

bool promql_tok_is_binop(enum promql_tok t)
{
    return t >= PT_ADD && t <= PT_LUNLESS;
}

bool promql_tok_is_comparison(enum promql_tok t)
{
    return t >= PT_EQLC && t <= PT_GTR;
}

bool promql_tok_is_setop(enum promql_tok t)
{
    return t == PT_LAND || t == PT_LOR || t == PT_LUNLESS;
}

void promql_lexer_init(struct promql_lexer *l, const char *q)
{
    memset(l, 0, sizeof(*l));
    l->q = q;
    l->n = strlen(q);
}

static bool is_alpha(int c)
{
    return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_alnum(int c)
{
    return is_alpha(c) || (c >= '0' && c <= '9');
}

static int peekc(const struct promql_lexer *l, size_t off)
{
    return l->pos + off < l->n ? (unsigned char)l->q[l->pos + off] : -1;
}

static void set_err(struct promql_lexer *l, struct promql_token *t, size_t pos, const char *fmt,
                    ...) BS_PRINTF(4, 5);
static void set_err(struct promql_lexer *l, struct promql_token *t, size_t pos, const char *fmt,
                    ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->errmsg, sizeof(l->errmsg), fmt, ap);
    va_end(ap);
    t->type = PT_ERROR;
    t->pos = pos;
    t->len = 0;
    l->pos = l->n;   /* stop lexing */
}

/* Go's %q for a rune, for the common ASCII cases. */
static void quote_rune(int c, char *dst, size_t cap)
{
    if (c == '\'')
        snprintf(dst, cap, "'\\''");
    else if (c == '\\')
        snprintf(dst, cap, "'\\\\'");
    else if (c >= 0x20 && c < 0x7f)
        snprintf(dst, cap, "'%c'", c);
    else if (c == '\n')
        snprintf(dst, cap, "'\\n'");
    else if (c == '\t')
        snprintf(dst, cap, "'\\t'");
    else
        snprintf(dst, cap, "'\\x%02x'", c & 0xff);
}

static bool is_dur_unit_start(int c)
{
    return c == 's' || c == 'm' || c == 'h' || c == 'd' || c == 'w' || c == 'y';
}

/* Numbers and durations start with a digit or '.'. */
static void lex_number(struct promql_lexer *l, struct promql_token *t)
{
    size_t start = l->pos;
    const char *q = l->q;
    size_t p = l->pos;
    bool hex = false;
    if (p + 1 < l->n && q[p] == '0' && (q[p + 1] == 'x' || q[p + 1] == 'X')) {
        hex = true;
        p += 2;
        while (p < l->n && isxdigit((unsigned char)q[p]))
            p++;
    } else {
        while (p < l->n && isdigit((unsigned char)q[p]))
            p++;
        size_t intend = p;
        if (p < l->n && q[p] == '.') {
            p++;
            while (p < l->n && isdigit((unsigned char)q[p]))
                p++;
        }
        if (p < l->n && (q[p] == 'e' || q[p] == 'E')) {
            size_t save = p;
            p++;
            if (p < l->n && (q[p] == '+' || q[p] == '-'))
                p++;
            if (p < l->n && isdigit((unsigned char)q[p])) {
                while (p < l->n && isdigit((unsigned char)q[p]))
                    p++;
            } else {
                p = save;
            }
        }
        /* A duration: digits followed by a unit (and more digit/unit pairs). */
        if (p == intend && p < l->n && is_dur_unit_start((unsigned char)q[p])) {
            size_t d = p;
            while (d < l->n && (is_alnum((unsigned char)q[d])))
                d++;
            int64_t ms;
            if (bs_duration_parse(q + start, d - start, &ms, NULL) == 0) {
                t->type = PT_DURATION;
                t->pos = start;
                t->len = d - start;
                l->pos = d;
                return;
            }
            set_err(l, t, start, "bad number or duration syntax: \"%.*s\"", (int)(d - start),
                    q + start);
            return;
        }
    }
    if (p < l->n && (is_alnum((unsigned char)q[p]) || q[p] == '.')) {
        size_t e = p;
        while (e < l->n && (is_alnum((unsigned char)q[e]) || q[e] == '.'))
            e++;
        set_err(l, t, start, "bad number or duration syntax: \"%.*s\"", (int)(e - start),
                q + start);
        return;
    }
    if (hex && p == start + 2) {
        set_err(l, t, start, "bad number or duration syntax: \"%.*s\"", (int)(p - start),
                q + start);
        return;
    }
    t->type = PT_NUMBER;
    t->pos = start;
    t->len = p - start;
    l->pos = p;
}

static void lex_string(struct promql_lexer *l, struct promql_token *t)
{
    size_t start = l->pos;
    char quote = l->q[l->pos++];
    while (l->pos < l->n) {
        char c = l->q[l->pos];
        if (c == '\\' && quote != '`') {
            l->pos += 2;
            continue;
        }
        if (c == '\n' && quote != '`')
            break;
        l->pos++;
        if (c == quote) {
            t->type = PT_STRING;
            t->pos = start;
            t->len = l->pos - start;
            char *tmp = NULL;
            char msg[128];
            if (promql_unquote(l->q + start, t->len, &tmp, msg, sizeof(msg)) != 0) {
                set_err(l, t, start, "%s", msg);
                return;
            }
            free(tmp);
            return;
        }
    }
    set_err(l, t, start, "unterminated quoted string");
}

static void lex_word(struct promql_lexer *l, struct promql_token *t, bool plain)
{
    size_t start = l->pos;
    bool colon = false;
    while (l->pos < l->n) {
        int c = (unsigned char)l->q[l->pos];
        if (is_alnum(c) || (!plain && c == ':')) {
            colon |= c == ':';
            l->pos++;
        } else {
            break;
        }
    }
    t->pos = start;
    t->len = l->pos - start;
    t->type = colon ? PT_METRIC_IDENT : PT_IDENT;
    if (plain || colon)
        return;
    for (size_t i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++) {
        if (strlen(keywords[i].word) == t->len &&
            strncasecmp(keywords[i].word, l->q + start, t->len) == 0) {
            t->type = keywords[i].tok;
            t->agg = keywords[i].agg;
            return;
        }
    }
}

static void emit(struct promql_lexer *l, struct promql_token *t, enum promql_tok type, size_t len)
{
    t->type = type;
    t->pos = l->pos;
    t->len = len;
    l->pos += len;
}

void promql_lexer_next(struct promql_lexer *l, struct promql_token *t)
{
    memset(t, 0, sizeof(*t));
    char qr[16];
    for (;;) {
        while (l->pos < l->n && isspace((unsigned char)l->q[l->pos]))
            l->pos++;
        if (l->pos < l->n && l->q[l->pos] == '#') {
            while (l->pos < l->n && l->q[l->pos] != '\n')
                l->pos++;
            continue;
        }
        break;
    }
    if (l->pos >= l->n) {
        if (l->brace_depth > 0)
            set_err(l, t, l->n, "unexpected end of input inside braces");
        else if (l->bracket_depth > 0)
            set_err(l, t, l->n, "unclosed left bracket");
        else if (l->paren_depth > 0)
            set_err(l, t, l->n, "unclosed left parenthesis");
        else {
            t->type = PT_EOF;
            t->pos = l->n;
        }
        return;
    }
    int c = (unsigned char)l->q[l->pos];
    int c1 = peekc(l, 1);

    if (l->brace_depth > 0) {
        if (is_alpha(c)) {
            lex_word(l, t, true);
            return;
        }
        switch (c) {
        case '"': case '\'': case '`': lex_string(l, t); return;
        case ',': emit(l, t, PT_COMMA, 1); return;
        case '}': l->brace_depth--; emit(l, t, PT_RBRACE, 1); return;
        case '=':
            if (c1 == '~') emit(l, t, PT_EQL_REGEX, 2);
            else emit(l, t, PT_EQL, 1);
            return;
        case '!':
            if (c1 == '~') { emit(l, t, PT_NEQ_REGEX, 2); return; }
            if (c1 == '=') { emit(l, t, PT_NEQ, 2); return; }
            quote_rune(c1 < 0 ? ' ' : c1, qr, sizeof(qr));
            set_err(l, t, l->pos, "unexpected character inside braces: %s", qr);
            return;
        default:
            quote_rune(c, qr, sizeof(qr));
            set_err(l, t, l->pos, "unexpected character inside braces: %s", qr);
            return;
        }
    }
    if (l->bracket_depth > 0) {
        if (isdigit(c) || (c == '.' && c1 >= '0' && c1 <= '9')) {
            lex_number(l, t);
            return;
        }
        switch (c) {
        case ':': emit(l, t, PT_COLON, 1); return;
        case ']': l->bracket_depth--; emit(l, t, PT_RBRACKET, 1); return;
        default: break;   /* fall through to statement lexing (errors in parser) */
        }
    }
    if (is_alpha(c)) {
        lex_word(l, t, false);
        return;
    }
    if (isdigit(c) || (c == '.' && c1 >= '0' && c1 <= '9')) {
        lex_number(l, t);
        return;
    }
    switch (c) {
    case '"': case '\'': case '`': lex_string(l, t); return;
    case ',': emit(l, t, PT_COMMA, 1); return;
    case '(': l->paren_depth++; emit(l, t, PT_LPAREN, 1); return;
    case ')':
        if (l->paren_depth == 0) {
            set_err(l, t, l->pos, "unexpected right parenthesis ')'");
            return;
        }
        l->paren_depth--;
        emit(l, t, PT_RPAREN, 1);
        return;
    case '{': l->brace_depth++; emit(l, t, PT_LBRACE, 1); return;
    case '}': set_err(l, t, l->pos, "unexpected right brace '}'"); return;
    case '[':
        if (l->bracket_depth > 0) {
            set_err(l, t, l->pos, "unexpected left bracket '['");
            return;
        }
        l->bracket_depth++;
        emit(l, t, PT_LBRACKET, 1);
        return;
    case ']': set_err(l, t, l->pos, "unexpected right bracket ']'"); return;
    case ':': set_err(l, t, l->pos, "unexpected colon ':'"); return;
    case '@': emit(l, t, PT_AT, 1); return;
    case '+': emit(l, t, PT_ADD, 1); return;
    case '-': emit(l, t, PT_SUB, 1); return;
    case '*': emit(l, t, PT_MUL, 1); return;
    case '/': emit(l, t, PT_DIV, 1); return;
    case '%': emit(l, t, PT_MOD, 1); return;
    case '^': emit(l, t, PT_POW, 1); return;
    case '=':
        if (c1 == '=') { emit(l, t, PT_EQLC, 2); return; }
        if (c1 == '~') { set_err(l, t, l->pos, "unexpected character after '=': '~'"); return; }
        emit(l, t, PT_EQL, 1);
        return;
    case '!':
        if (c1 == '=') { emit(l, t, PT_NEQ, 2); return; }
        quote_rune(c1 < 0 ? ' ' : c1, qr, sizeof(qr));
        set_err(l, t, l->pos, "unexpected character after '!': %s", qr);
        return;
    case '<':
        if (c1 == '=') emit(l, t, PT_LTE, 2);
        else emit(l, t, PT_LSS, 1);
        return;
    case '>':
        if (c1 == '=') emit(l, t, PT_GTE, 2);
        else emit(l, t, PT_GTR, 1);
        return;
    default:
        quote_rune(c, qr, sizeof(qr));
        set_err(l, t, l->pos, "unexpected character: %s", qr);
        return;
    }
}

/* Append s as Go's %q would (ASCII subset). */
static void go_quote(const char *s, size_t n, char *dst, size_t cap, size_t maxchars)
{
    size_t o = 0;
    if (cap < 8)
        return;
    dst[o++] = '"';
    for (size_t i = 0; i < n && i < maxchars && o + 6 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            dst[o++] = '\\';
            dst[o++] = (char)c;
        } else if (c == '\n') {
            dst[o++] = '\\';
            dst[o++] = 'n';
        } else {
            dst[o++] = (char)c;
        }
    }
    dst[o++] = '"';
    if (n > maxchars && o + 4 < cap) {
        memcpy(dst + o, "...", 3);
        o += 3;
    }
    dst[o] = 0;
}

void promql_token_desc(const struct promql_lexer *l, const struct promql_token *t, char *dst,
                       size_t cap)
{
    const char *s = l->q + t->pos;
    int n = (int)t->len;
    char tmp[160];
    switch (t->type) {
    case PT_EOF: snprintf(dst, cap, "end of input"); return;
    case PT_ERROR: snprintf(dst, cap, "%s", l->errmsg); return;
    case PT_IDENT:
        go_quote(s, t->len, tmp, sizeof(tmp), 100);
        snprintf(dst, cap, "identifier %s", tmp);
        return;
    case PT_METRIC_IDENT:
        go_quote(s, t->len, tmp, sizeof(tmp), 100);
        snprintf(dst, cap, "metric identifier %s", tmp);
        return;
    case PT_NUMBER:
        go_quote(s, t->len, tmp, sizeof(tmp), 10);
        snprintf(dst, cap, "number %s", tmp);
        return;
    case PT_STRING:
        go_quote(s, t->len, tmp, sizeof(tmp), 10);
        snprintf(dst, cap, "string %s", tmp);
        return;
    case PT_DURATION:
        go_quote(s, t->len, tmp, sizeof(tmp), 10);
        snprintf(dst, cap, "duration %s", tmp);
        return;
    case PT_AGG: snprintf(dst, cap, "<aggr:%.*s>", n, s); return;
    case PT_BOOL: case PT_BY: case PT_GROUP_LEFT: case PT_GROUP_RIGHT: case PT_IGNORING:
    case PT_OFFSET: case PT_ON: case PT_WITHOUT:
        snprintf(dst, cap, "<%.*s>", n, s);
        return;
    default:
        if (promql_tok_is_binop(t->type) || t->type == PT_EQL_REGEX ||
            t->type == PT_NEQ_REGEX) {
            snprintf(dst, cap, "<op:%.*s>", n, s);
            return;
        }
        go_quote(s, t->len, tmp, sizeof(tmp), 10);
        snprintf(dst, cap, "%s", tmp);
        return;
    }
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int promql_unquote(const char *s, size_t n, char **out, char *err, size_t errcap)
{
    *out = NULL;
    if (n < 2 || s[0] != s[n - 1]) {
        snprintf(err, errcap, "unterminated quoted string");
        return BS_EPARSE;
    }
    char quote = s[0];
    char *d = malloc(n + 1);
    if (!d) {
        snprintf(err, errcap, "out of memory");
        return BS_ENOMEM;
    }
    size_t o = 0;
    for (size_t i = 1; i + 1 < n; i++) {
        char c = s[i];
        if (quote == '`' || c != '\\') {
            d[o++] = c;
            continue;
        }
        if (i + 2 >= n) {
            snprintf(err, errcap, "escape sequence not terminated");
            free(d);
            return BS_EPARSE;
        }
        char e = s[++i];
        int digits = 0, base = 16;
        switch (e) {
        case 'a': d[o++] = '\a'; break;
        case 'b': d[o++] = '\b'; break;
        case 'f': d[o++] = '\f'; break;
        case 'n': d[o++] = '\n'; break;
        case 'r': d[o++] = '\r'; break;
        case 't': d[o++] = '\t'; break;
        case 'v': d[o++] = '\v'; break;
        case '\\': d[o++] = '\\'; break;
        case '"': case '\'': d[o++] = e; break;
        case 'x': digits = 2; break;
        case 'u': digits = 4; break;
        case 'U': digits = 8; break;
        case '0': case '1': case '2': case '3': case '4': case '5': case '6': case '7':
            digits = 3;
            base = 8;
            i--;
            break;
        default:
            snprintf(err, errcap, "unknown escape sequence U+%04X '%c'", (unsigned char)e, e);
            free(d);
            return BS_EPARSE;
        }
        if (digits) {
            uint32_t v = 0;
            for (int k = 0; k < digits; k++) {
                if (i + 2 >= n) {
                    snprintf(err, errcap, "escape sequence not terminated");
                    free(d);
                    return BS_EPARSE;
                }
                int h = hexval((unsigned char)s[++i]);
                if (h < 0 || h >= base) {
                    snprintf(err, errcap, "illegal character U+%04X '%c' in escape sequence",
                             (unsigned char)s[i], s[i]);
                    free(d);
                    return BS_EPARSE;
                }
                v = v * (uint32_t)base + (uint32_t)h;
            }
            if (e == 'x' || base == 8) {
                if (v > 255) {
                    snprintf(err, errcap, "escape sequence is invalid Unicode code point");
                    free(d);
                    return BS_EPARSE;
                }
                d[o++] = (char)v;
            } else {
                if (v > 0x10ffff || (v >= 0xd800 && v < 0xe000)) {
                    snprintf(err, errcap, "escape sequence is invalid Unicode code point");
                    free(d);
                    return BS_EPARSE;
                }
                o += bs_utf8_encode(v, d + o);
            }
        }
    }
    d[o] = 0;
    *out = d;
    return 0;
}
