/* SPDX-License-Identifier: Apache-2.0
 *
 * promql parser: recursive descent with precedence climbing over the
 * tokens of lex.c, building the tree of promql_int.h.
 *
 * Binary operator precedence, lowest to highest, as Prometheus:
 *   or ; and unless ; == != <= < >= > ; + - ; * / % atan2 ; ^ (right-assoc)
 * Unary minus binds like '*': "-2 ^ 2" is -(2^2), "-a * b" is (-a) * b.
 * Postfix modifiers ([range], [range:step], offset, @) bind tightest.
 *
 * Errors follow Prometheus: syntax errors ("unexpected X") are found while
 * parsing; type and semantic errors by a check pass over the finished tree
 * (so a syntax error later in the query wins, as upstream). Only the first
 * error is reported, as "line:col: parse error: message".
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "promql/promql_int.h"

struct parser {
    struct promql_lexer lx;
    struct promql_token tok;
    bool failed;
    int code;
    struct bs_error *err;
};

static void perr_at(struct parser *p, size_t pos, const char *fmt, ...) BS_PRINTF(3, 4);
static void perr_at(struct parser *p, size_t pos, const char *fmt, ...)
{
    if (p->failed)
        return;
    p->failed = true;
    p->code = BS_EPARSE;
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    int line = 1;
    size_t last_nl = (size_t)-1;
    for (size_t i = 0; i < pos && i < p->lx.n; i++) {
        if (p->lx.q[i] == '\n') {
            line++;
            last_nl = i;
        }
    }
    size_t col = pos - last_nl;   /* wraps correctly when last_nl is -1 */
    bs_error_set(p->err, BS_EPARSE, "%d:%zu: parse error: %s", line, col, msg);
}

static void nomem(struct parser *p)
{
    if (p->failed)
        return;
    p->failed = true;
    p->code = BS_ENOMEM;
    bs_error_set(p->err, BS_ENOMEM, "out of memory while parsing the query");
}

static void next(struct parser *p)
{
    promql_lexer_next(&p->lx, &p->tok);
}

/* "unexpected X[ in context][, expected Y]" at the current token. */
static void unexpected(struct parser *p, const char *context, const char *expected)
{
    if (p->tok.type == PT_ERROR) {
        perr_at(p, p->tok.pos, "%s", p->lx.errmsg);
        return;
    }
    char desc[200];
    promql_token_desc(&p->lx, &p->tok, desc, sizeof(desc));
    char msg[400];
    int n = snprintf(msg, sizeof(msg), "unexpected %s", desc);
    if (context && n < (int)sizeof(msg))
        n += snprintf(msg + n, sizeof(msg) - (size_t)n, " in %s", context);
    if (expected && n < (int)sizeof(msg))
        snprintf(msg + n, sizeof(msg) - (size_t)n, ", expected %s", expected);
    perr_at(p, p->tok.pos, "%s", msg);
}

static struct promql_expr *node_new(struct parser *p, enum promql_node kind, size_t pos)
{
    struct promql_expr *x = calloc(1, sizeof(*x));
    if (!x) {
        nomem(p);
        return NULL;
    }
    x->kind = kind;
    x->pos = pos;
    return x;
}

static char *tok_strdup(struct parser *p, const struct promql_token *t)
{
    char *s = strndup(p->lx.q + t->pos, t->len);
    if (!s)
        nomem(p);
    return s;
}

/* A label name: identifier, keyword, or (UTF-8 names) a quoted string. */
static bool tok_is_labelname(const struct promql_token *t)
{
    switch (t->type) {
    case PT_IDENT: case PT_AGG: case PT_LAND: case PT_LOR: case PT_LUNLESS: case PT_ATAN2:
    case PT_BOOL: case PT_BY: case PT_GROUP_LEFT: case PT_GROUP_RIGHT: case PT_IGNORING:
    case PT_OFFSET: case PT_ON: case PT_WITHOUT: case PT_START: case PT_END:
        return true;
    case PT_NUMBER: return false;
    default: return false;
    }
}

static char *label_name_text(struct parser *p, const struct promql_token *t)
{
    if (t->type == PT_STRING) {
        char *s = NULL;
        char msg[128];
        int rc = promql_unquote(p->lx.q + t->pos, t->len, &s, msg, sizeof(msg));
        if (rc == BS_ENOMEM)
            nomem(p);
        else if (rc)
            perr_at(p, t->pos, "%s", msg);
        return s;
    }
    /* Words the lexer maps to NUMBER (inf, nan) are fine as names too. */
    return tok_strdup(p, t);
}

static bool tok_is_word_number(struct parser *p, const struct promql_token *t)
{
    return t->type == PT_NUMBER && t->len == 3 &&
           (strncasecmp(p->lx.q + t->pos, "inf", 3) == 0 ||
            strncasecmp(p->lx.q + t->pos, "nan", 3) == 0);
}

/* ( name, name, ... ) — after group_left, by, on, etc. The '(' is current. */
static int parse_label_list(struct parser *p, char ***out, size_t *n, const char *context)
{
    *out = NULL;
    *n = 0;
    if (p->tok.type != PT_LPAREN) {
        unexpected(p, context, "\"(\"");
        return -1;
    }
    next(p);
    size_t cap = 0;
    for (;;) {
        if (p->tok.type == PT_RPAREN) {
            next(p);
            return 0;
        }
        if (!(tok_is_labelname(&p->tok) || p->tok.type == PT_STRING ||
              tok_is_word_number(p, &p->tok))) {
            unexpected(p, context, *n ? "\",\" or \")\"" : "label");
            return -1;
        }
        char *name = label_name_text(p, &p->tok);
        if (!name)
            return -1;
        if (*n == cap) {
            size_t nc = cap ? cap * 2 : 4;
            char **nv = realloc(*out, nc * sizeof(*nv));
            if (!nv) {
                free(name);
                nomem(p);
                return -1;
            }
            *out = nv;
            cap = nc;
        }
        (*out)[(*n)++] = name;
        next(p);
        if (p->tok.type == PT_COMMA) {
            next(p);
            continue;
        }
        if (p->tok.type != PT_RPAREN) {
            unexpected(p, context, "\",\" or \")\"");
            return -1;
        }
    }
}

static int add_matcher(struct parser *p, struct promql_expr *x, enum labels_match_type type,
                       char *name, char *value, size_t pos)
{
    struct promql_matcher_ast *nv = realloc(x->matchers, (x->nmatchers + 1) * sizeof(*nv));
    if (!nv) {
        free(name);
        free(value);
        nomem(p);
        return -1;
    }
    x->matchers = nv;
    struct promql_matcher_ast *m = &nv[x->nmatchers++];
    m->type = type;
    m->name = name;
    m->value = value;
    m->m = NULL;
    struct bs_error e;
    bs_error_clear(&e);
    int rc = labels_matcher_new(&m->m, type, name, value, &e);
    if (rc == BS_ENOMEM) {
        nomem(p);
        return -1;
    }
    if (rc) {
        perr_at(p, pos, "%s", e.msg[0] ? e.msg : "invalid label matcher");
        return -1;
    }
    return 0;
}

/* { matchers } — the '{' is current. */
static int parse_matchers(struct parser *p, struct promql_expr *x)
{
    next(p);
    for (;;) {
        if (p->tok.type == PT_RBRACE) {
            next(p);
            return 0;
        }
        size_t mpos = p->tok.pos;
        if (p->tok.type != PT_IDENT && p->tok.type != PT_STRING) {
            unexpected(p, "label matching", "identifier or \"}\"");
            return -1;
        }
        struct promql_token nt = p->tok;
        next(p);
        if (nt.type == PT_STRING && (p->tok.type == PT_COMMA || p->tok.type == PT_RBRACE)) {
            /* {"metric.name"}: a quoted metric name. */
            char *v = label_name_text(p, &nt);
            if (!v)
                return -1;
            if (x->name) {
                perr_at(p, mpos, "metric name must not be set twice: \"%s\" or \"%s\"", x->name,
                        v);
                free(v);
                return -1;
            }
            x->name = v;
            char *nm = strdup(LABELS_METRIC_NAME), *vv = strdup(v);
            if (!nm || !vv) {
                free(nm);
                free(vv);
                nomem(p);
                return -1;
            }
            if (add_matcher(p, x, LABELS_MATCH_EQ, nm, vv, mpos))
                return -1;
        } else {
            enum labels_match_type mt;
            switch (p->tok.type) {
            case PT_EQL: mt = LABELS_MATCH_EQ; break;
            case PT_NEQ: mt = LABELS_MATCH_NEQ; break;
            case PT_EQL_REGEX: mt = LABELS_MATCH_RE; break;
            case PT_NEQ_REGEX: mt = LABELS_MATCH_NRE; break;
            default:
                unexpected(p, "label matching", "label matching operator");
                return -1;
            }
            next(p);
            if (p->tok.type != PT_STRING) {
                unexpected(p, "label matching", "string");
                return -1;
            }
            char *name = label_name_text(p, &nt);
            if (!name)
                return -1;
            char *value = label_name_text(p, &p->tok);
            if (!value) {
                free(name);
                return -1;
            }
            if (x->name && strcmp(name, LABELS_METRIC_NAME) == 0 && mt == LABELS_MATCH_EQ) {
                perr_at(p, mpos, "metric name must not be set twice: \"%s\" or \"%s\"", x->name,
                        value);
                free(name);
                free(value);
                return -1;
            }
            if (add_matcher(p, x, mt, name, value, mpos))
                return -1;
            next(p);
        }
        if (p->tok.type == PT_COMMA) {
            next(p);
            continue;
        }
        if (p->tok.type != PT_RBRACE) {
            unexpected(p, "label matching", "\",\" or \"}\"");
            return -1;
        }
    }
}

/* metric name [ {matchers} ] or {matchers}; current token is the name or
 * '{'. name_tok may be NULL. */
static struct promql_expr *parse_selector(struct parser *p, const struct promql_token *name_tok)
{
    size_t pos = name_tok ? name_tok->pos : p->tok.pos;
    struct promql_expr *x = node_new(p, PROMQL_NODE_VECTOR, pos);
    if (!x)
        return NULL;
    if (name_tok) {
        x->name = tok_strdup(p, name_tok);
        char *nm = strdup(LABELS_METRIC_NAME);
        char *v = x->name ? strdup(x->name) : NULL;
        if (!x->name || !nm || !v) {
            free(nm);
            free(v);
            nomem(p);
            return x;
        }
        if (add_matcher(p, x, LABELS_MATCH_EQ, nm, v, pos))
            return x;
    }
    if (p->tok.type == PT_LBRACE)
        parse_matchers(p, x);
    return x;
}

static int64_t dur_of_token(struct parser *p, const struct promql_token *t)
{
    int64_t ms = 0;
    if (t->type == PT_DURATION) {
        bs_duration_parse(p->lx.q + t->pos, t->len, &ms, NULL);
        return ms;
    }
    double v = 0;
    if (bs_float_parse(p->lx.q + t->pos, t->len, true, &v) != 0 || !isfinite(v) ||
        fabs(v) > 9.2e15) {
        perr_at(p, t->pos, "invalid duration \"%.*s\"", (int)t->len, p->lx.q + t->pos);
        return 0;
    }
    return (int64_t)llround(v * 1000.0);
}

static struct promql_expr *parse_binary(struct parser *p, int min_prec);

static void expr_free_ptr(struct promql_expr **x)
{
    promql_expr_free(*x);
    *x = NULL;
}

/* ------------------------------------------------- duration expressions
 *
 * Prometheus 3 accepts arithmetic in the range, subquery step and offset
 * positions: "[26m+4m]", "[60*30]", "offset (2*2)", "[step()+1ms]",
 * "offset min_of(step(), 1s)". Numbers are seconds, durations are turned
 * into seconds, operators are + - * / % ^ with the usual precedence and
 * unary signs. After "offset" only one operand is taken (a literal, a
 * duration function or a parenthesised expression, with an optional sign),
 * so "x offset 100 + 2" is "(x offset 100) + 2". */

static struct promql_expr *parse_dur_binary(struct parser *p, int min_prec, const char *ctx);

static bool dur_starts(struct parser *p)
{
    switch (p->tok.type) {
    case PT_NUMBER: case PT_DURATION: case PT_LPAREN: case PT_ADD: case PT_SUB:
        return true;
    case PT_IDENT:
        return promql_duration_func_lookup(p->lx.q + p->tok.pos, p->tok.len) != NULL;
    default:
        return false;
    }
}

static bool dur_has_vars(const struct promql_expr *x)
{
    if (!x)
        return false;
    if (x->kind == PROMQL_NODE_CALL &&
        (strcmp(x->func->name, "step") == 0 || strcmp(x->func->name, "range") == 0))
        return true;
    if (dur_has_vars(x->lhs) || dur_has_vars(x->rhs))
        return true;
    for (size_t i = 0; i < x->nargs; i++)
        if (dur_has_vars(x->args[i]))
            return true;
    return false;
}

/* A literal, a duration function call or "( expr )". */
static struct promql_expr *parse_dur_primary(struct parser *p, const char *ctx)
{
    struct promql_token t = p->tok;
    struct promql_expr *x = NULL;
    switch (t.type) {
    case PT_NUMBER:
        x = node_new(p, PROMQL_NODE_NUMBER, t.pos);
        if (!x)
            return NULL;
        if (bs_float_parse(p->lx.q + t.pos, t.len, true, &x->num) != 0)
            perr_at(p, t.pos, "bad number or duration syntax: \"%.*s\"", (int)t.len,
                    p->lx.q + t.pos);
        next(p);
        return x;
    case PT_DURATION:
        x = node_new(p, PROMQL_NODE_NUMBER, t.pos);
        if (!x)
            return NULL;
        x->num = (double)dur_of_token(p, &t) / 1000.0;
        next(p);
        return x;
    case PT_LPAREN:
        x = node_new(p, PROMQL_NODE_PAREN, t.pos);
        if (!x)
            return NULL;
        next(p);
        x->lhs = parse_dur_binary(p, 1, ctx);
        if (p->failed)
            return x;
        if (p->tok.type != PT_RPAREN) {
            unexpected(p, ctx, "\")\"");
            return x;
        }
        next(p);
        return x;
    case PT_IDENT: {
        const struct promql_func *f = promql_duration_func_lookup(p->lx.q + t.pos, t.len);
        if (!f)
            break;
        x = node_new(p, PROMQL_NODE_CALL, t.pos);
        if (!x)
            return NULL;
        x->func = f;
        next(p);
        if (p->tok.type != PT_LPAREN) {
            unexpected(p, ctx, "\"(\"");
            return x;
        }
        next(p);
        size_t cap = 0;
        while (!p->failed && p->tok.type != PT_RPAREN) {
            if (x->nargs > 0) {
                if (p->tok.type != PT_COMMA) {
                    unexpected(p, ctx, "\",\" or \")\"");
                    return x;
                }
                next(p);
            }
            struct promql_expr *a = parse_dur_binary(p, 1, ctx);
            if (!a)
                return x;
            if (x->nargs == cap) {
                size_t nc = cap ? cap * 2 : 2;
                struct promql_expr **nv = realloc(x->args, nc * sizeof(*nv));
                if (!nv) {
                    promql_expr_free(a);
                    nomem(p);
                    return x;
                }
                x->args = nv;
                cap = nc;
            }
            x->args[x->nargs++] = a;
        }
        if (p->failed)
            return x;
        next(p);
        if (x->nargs != (size_t)f->nargs)
            perr_at(p, t.pos, "expected %d argument(s) in call to \"%s\", got %zu", f->nargs,
                    f->name, x->nargs);
        return x;
    }
    default:
        break;
    }
    unexpected(p, ctx, "number or duration");
    return NULL;
}

static struct promql_expr *parse_dur_unary(struct parser *p, const char *ctx)
{
    if (p->tok.type != PT_ADD && p->tok.type != PT_SUB)
        return parse_dur_primary(p, ctx);
    struct promql_token t = p->tok;
    next(p);
    struct promql_expr *operand = parse_dur_binary(p, 6, ctx);
    if (!operand || p->failed)
        return operand;
    struct promql_expr *u = node_new(p, PROMQL_NODE_UNARY, t.pos);
    if (!u)
        return operand;
    u->op = t.type;
    u->lhs = operand;
    return u;
}

static int dur_precedence(enum promql_tok t)
{
    switch (t) {
    case PT_ADD: case PT_SUB: return 4;
    case PT_MUL: case PT_DIV: case PT_MOD: return 5;
    case PT_POW: return 6;
    default: return 0;
    }
}

static struct promql_expr *parse_dur_binary(struct parser *p, int min_prec, const char *ctx)
{
    struct promql_expr *lhs = parse_dur_unary(p, ctx);
    while (lhs && !p->failed) {
        enum promql_tok op = p->tok.type;
        int prec = dur_precedence(op);
        if (prec == 0 || prec < min_prec)
            break;
        struct promql_expr *b = node_new(p, PROMQL_NODE_BINARY, lhs->pos);
        if (!b)
            break;
        b->op = op;
        b->op_pos = p->tok.pos;
        b->lhs = lhs;
        lhs = b;
        next(p);
        b->rhs = parse_dur_binary(p, op == PT_POW ? prec : prec + 1, ctx);
        if (!b->rhs && !p->failed)
            unexpected(p, ctx, NULL);
    }
    return lhs;
}

/* Fold a constant duration expression into *ms (freeing it), or keep it in
 * *keep for promql_resolve_durations. */
static void dur_finish(struct parser *p, struct promql_expr *dx, bool allow_neg, int64_t *ms,
                       struct promql_expr **keep)
{
    if (p->failed || !dx) {
        promql_expr_free(dx);
        return;
    }
    if (dur_has_vars(dx)) {
        *keep = dx;
        *ms = 0;
        return;
    }
    char msg[128];
    double v = 0;
    if (promql_duration_eval(dx, 0, 0, &v, msg, sizeof(msg)) == 0 &&
        promql_duration_ms(v, allow_neg, ms, msg, sizeof(msg)) == 0) {
        /* A lone literal is exact ("1001ms"); only arithmetic goes through
         * seconds as floats, as upstream. */
        if (dx->kind == PROMQL_NODE_NUMBER || (dx->kind == PROMQL_NODE_UNARY &&
                                               dx->lhs->kind == PROMQL_NODE_NUMBER))
            *ms = (int64_t)llround(v * 1000.0);
        promql_expr_free(dx);
        return;
    }
    perr_at(p, dx->pos, "%s", msg);
    promql_expr_free(dx);
}

/* Postfix modifiers on x: [range], [range:step], offset, @. */
static struct promql_expr *parse_postfix(struct parser *p, struct promql_expr *x)
{
    while (!p->failed) {
        if (p->tok.type == PT_LBRACKET) {
            size_t bpos = p->tok.pos;
            next(p);
            if (!dur_starts(p)) {
                unexpected(p, "range selector", "number or duration");
                return x;
            }
            size_t rpos = p->tok.pos;
            struct promql_expr *rexpr = NULL;
            int64_t range = 0;
            dur_finish(p, parse_dur_binary(p, 1, "range selector"), false, &range, &rexpr);
            if (p->failed) {
                promql_expr_free(rexpr);
                return x;
            }
            if (p->tok.type == PT_COLON) {
                next(p);
                int64_t step = 0;
                struct promql_expr *sexpr = NULL;
                if (dur_starts(p)) {
                    size_t spos = p->tok.pos;
                    struct promql_expr *sx = parse_dur_binary(p, 1, "subquery selector");
                    if (!p->failed && sx && !dur_has_vars(sx)) {
                        char msg[128];
                        double v = 0;
                        if (promql_duration_eval(sx, 0, 0, &v, msg, sizeof(msg)) == 0 &&
                            (isnan(v) || v <= 0))
                            perr_at(p, spos, "step must be greater than 0");
                    }
                    dur_finish(p, sx, false, &step, &sexpr);
                }
                if (!p->failed && p->tok.type != PT_RBRACKET)
                    unexpected(p, "subquery selector", "\"]\"");
                if (p->failed) {
                    promql_expr_free(rexpr);
                    promql_expr_free(sexpr);
                    return x;
                }
                next(p);
                struct promql_expr *s = node_new(p, PROMQL_NODE_SUBQUERY, x->pos);
                if (!s) {
                    promql_expr_free(rexpr);
                    promql_expr_free(sexpr);
                    return x;
                }
                s->lhs = x;
                s->range_ms = range;
                s->step_ms = step;
                s->range_expr = rexpr;
                s->step_expr = sexpr;
                x = s;
                continue;
            }
            (void)rpos;
            if (p->tok.type != PT_RBRACKET) {
                unexpected(p, "range selector", "\"]\" or \":\"");
                promql_expr_free(rexpr);
                return x;
            }
            next(p);
            const char *bad = NULL;
            size_t bad_pos = bpos;
            if (x->kind != PROMQL_NODE_VECTOR) {
                bad = "ranges only allowed for vector selectors";
                bad_pos = x->pos;
            } else if (x->has_offset) {
                bad = "no offset modifiers allowed before range";
            } else if (x->at != PROMQL_AT_NONE) {
                bad = "no @ modifiers allowed before range";
            }
            if (bad) {
                perr_at(p, bad_pos, "%s", bad);
                promql_expr_free(rexpr);
                return x;
            }
            struct promql_expr *m = node_new(p, PROMQL_NODE_MATRIX, x->pos);
            if (!m) {
                promql_expr_free(rexpr);
                return x;
            }
            m->lhs = x;
            m->range_ms = range;
            m->range_expr = rexpr;
            x = m;
        } else if (p->tok.type == PT_OFFSET) {
            size_t opos = p->tok.pos;
            next(p);
            struct promql_token sign = p->tok;
            bool signed_ = false;
            if (p->tok.type == PT_SUB || p->tok.type == PT_ADD) {
                signed_ = true;
                next(p);
            }
            if (!dur_starts(p) || p->tok.type == PT_ADD || p->tok.type == PT_SUB) {
                unexpected(p, "offset", "number or duration");
                return x;
            }
            struct promql_expr *ox = parse_dur_primary(p, "offset");
            if (ox && signed_ && !p->failed) {
                struct promql_expr *u = node_new(p, PROMQL_NODE_UNARY, sign.pos);
                if (u) {
                    u->op = sign.type;
                    u->lhs = ox;
                    ox = u;
                }
            }
            int64_t off = 0;
            struct promql_expr *oexpr = NULL;
            dur_finish(p, ox, true, &off, &oexpr);
            if (p->failed)
                return x;
            struct promql_expr *target = x;
            if (x->kind == PROMQL_NODE_MATRIX)
                target = x->lhs;
            else if (x->kind != PROMQL_NODE_VECTOR && x->kind != PROMQL_NODE_SUBQUERY) {
                perr_at(p, opos,
                        "offset modifier must be preceded by an instant vector selector or range "
                        "vector selector or a subquery");
                promql_expr_free(oexpr);
                return x;
            }
            if (target->has_offset) {
                perr_at(p, opos, "offset may not be set multiple times");
                promql_expr_free(oexpr);
                return x;
            }
            target->has_offset = true;
            target->offset_ms = off;
            target->offset_expr = oexpr;
        } else if (p->tok.type == PT_AT) {
            size_t apos = p->tok.pos;
            next(p);
            enum promql_at kind = PROMQL_AT_VALUE;
            int64_t at_ms = 0;
            if (p->tok.type == PT_START || p->tok.type == PT_END) {
                kind = p->tok.type == PT_START ? PROMQL_AT_START : PROMQL_AT_END;
                next(p);
                if (p->tok.type != PT_LPAREN) {
                    unexpected(p, "@", "\"(\"");
                    return x;
                }
                next(p);
                if (p->tok.type != PT_RPAREN) {
                    unexpected(p, "@", "\")\"");
                    return x;
                }
                next(p);
            } else {
                bool neg = false;
                if (p->tok.type == PT_SUB || p->tok.type == PT_ADD) {
                    neg = p->tok.type == PT_SUB;
                    next(p);
                }
                if (p->tok.type != PT_NUMBER && p->tok.type != PT_DURATION) {
                    unexpected(p, "@", "timestamp");
                    return x;
                }
                double v = 0;
                if (p->tok.type == PT_DURATION) {
                    v = (double)dur_of_token(p, &p->tok) / 1000.0;
                } else {
                    bs_float_parse(p->lx.q + p->tok.pos, p->tok.len, true, &v);
                }
                if (neg)
                    v = -v;
                if (!isfinite(v) || fabs(v) > 9.2e15) {
                    perr_at(p, p->tok.pos, "timestamp out of bounds for @ modifier: %g", v);
                    return x;
                }
                at_ms = (int64_t)llround(v * 1000.0);
                next(p);
            }
            struct promql_expr *target = x;
            if (x->kind == PROMQL_NODE_MATRIX)
                target = x->lhs;
            else if (x->kind != PROMQL_NODE_VECTOR && x->kind != PROMQL_NODE_SUBQUERY) {
                perr_at(p, apos,
                        "@ modifier must be preceded by an instant vector selector or range "
                        "vector selector or a subquery");
                return x;
            }
            if (target->at != PROMQL_AT_NONE) {
                perr_at(p, apos, "@ <timestamp> may not be set multiple times");
                return x;
            }
            target->at = kind;
            target->at_ms = at_ms;
        } else {
            break;
        }
    }
    return x;
}

static int push_arg(struct parser *p, struct promql_expr ***args, size_t *n, size_t *cap,
                    struct promql_expr *a)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 4;
        struct promql_expr **nv = realloc(*args, nc * sizeof(*nv));
        if (!nv) {
            promql_expr_free(a);
            nomem(p);
            return -1;
        }
        *args = nv;
        *cap = nc;
    }
    (*args)[(*n)++] = a;
    return 0;
}

/* ( expr, expr, ... ) with the '(' current. */
static int parse_args(struct parser *p, struct promql_expr ***args, size_t *n, bool trailing_ok)
{
    size_t cap = 0;
    next(p);
    if (p->tok.type == PT_RPAREN) {
        next(p);
        return 0;
    }
    for (;;) {
        struct promql_expr *a = parse_binary(p, 1);
        if (!a || push_arg(p, args, n, &cap, a))
            return -1;
        if (p->failed)
            return -1;
        if (p->tok.type == PT_COMMA) {
            next(p);
            if (trailing_ok && p->tok.type == PT_RPAREN) {
                next(p);
                return 0;
            }
            continue;
        }
        if (p->tok.type == PT_RPAREN) {
            next(p);
            return 0;
        }
        unexpected(p, NULL, "\",\" or \")\"");
        return -1;
    }
}

static int parse_grouping(struct parser *p, struct promql_expr *x)
{
    if (x->has_grouping) {
        unexpected(p, "aggregation", NULL);
        return -1;
    }
    x->has_grouping = true;
    x->without = p->tok.type == PT_WITHOUT;
    next(p);
    return parse_label_list(p, &x->grouping, &x->ngrouping, "grouping opts");
}

static bool agg_has_param(int agg)
{
    return agg == PROMQL_AGG_TOPK || agg == PROMQL_AGG_BOTTOMK || agg == PROMQL_AGG_QUANTILE ||
           agg == PROMQL_AGG_COUNT_VALUES || agg == PROMQL_AGG_LIMITK ||
           agg == PROMQL_AGG_LIMIT_RATIO;
}

static struct promql_expr *parse_aggregation(struct parser *p)
{
    struct promql_expr *x = node_new(p, PROMQL_NODE_AGG, p->tok.pos);
    if (!x)
        return NULL;
    x->agg = p->tok.agg;
    next(p);
    if (p->tok.type == PT_BY || p->tok.type == PT_WITHOUT) {
        if (parse_grouping(p, x))
            return x;
    }
    if (p->tok.type != PT_LPAREN) {
        unexpected(p, "aggregation", "\"(\"");
        return x;
    }
    struct promql_expr **args = NULL;
    size_t n = 0;
    int rc = parse_args(p, &args, &n, true);
    /* Keep whatever was parsed so it gets freed with x. */
    if (n >= 1)
        x->lhs = args[n - 1];
    if (n >= 2)
        x->rhs = args[0];
    for (size_t i = 1; i + 1 < n; i++)
        promql_expr_free(args[i]);
    if (n > 2) {
        /* Middle arguments were freed; keep only the ends. */
    }
    free(args);
    if (rc)
        return x;
    if (p->tok.type == PT_BY || p->tok.type == PT_WITHOUT) {
        if (parse_grouping(p, x))
            return x;
    }
    if (n == 0) {
        perr_at(p, x->pos, "no arguments for aggregate expression provided");
        return x;
    }
    size_t want = agg_has_param(x->agg) ? 2 : 1;
    if (n != want) {
        perr_at(p, x->pos,
                "wrong number of arguments for aggregate expression provided, expected %zu, got "
                "%zu",
                want, n);
        return x;
    }
    return x;
}

static struct promql_expr *parse_primary(struct parser *p)
{
    struct promql_token t = p->tok;
    struct promql_expr *x = NULL;
    switch (t.type) {
    case PT_NUMBER: {
        x = node_new(p, PROMQL_NODE_NUMBER, t.pos);
        if (!x)
            return NULL;
        if (bs_float_parse(p->lx.q + t.pos, t.len, true, &x->num) != 0) {
            perr_at(p, t.pos, "bad number or duration syntax: \"%.*s\"", (int)t.len,
                    p->lx.q + t.pos);
            return x;
        }
        next(p);
        break;
    }
    case PT_DURATION: {
        x = node_new(p, PROMQL_NODE_NUMBER, t.pos);
        if (!x)
            return NULL;
        x->num = (double)dur_of_token(p, &t) / 1000.0;
        next(p);
        break;
    }
    case PT_STRING: {
        x = node_new(p, PROMQL_NODE_STRING, t.pos);
        if (!x)
            return NULL;
        x->str = label_name_text(p, &t);
        next(p);
        break;
    }
    case PT_LPAREN: {
        x = node_new(p, PROMQL_NODE_PAREN, t.pos);
        if (!x)
            return NULL;
        next(p);
        x->lhs = parse_binary(p, 1);
        if (p->failed)
            return x;
        if (p->tok.type != PT_RPAREN) {
            unexpected(p, NULL, NULL);
            return x;
        }
        next(p);
        break;
    }
    case PT_LBRACE:
        x = parse_selector(p, NULL);
        break;
    case PT_AGG: {
        /* An aggregation, or a metric that happens to be called "sum". */
        struct promql_lexer save = p->lx;
        struct promql_token nt;
        promql_lexer_next(&save, &nt);
        if (nt.type == PT_LPAREN || nt.type == PT_BY || nt.type == PT_WITHOUT) {
            x = parse_aggregation(p);
            break;
        }
        next(p);
        x = parse_selector(p, &t);
        break;
    }
    case PT_IDENT: {
        next(p);
        if (p->tok.type == PT_LPAREN) {
            const struct promql_func *f = promql_func_lookup(p->lx.q + t.pos, t.len);
            x = node_new(p, PROMQL_NODE_CALL, t.pos);
            if (!x)
                return NULL;
            x->func = f;
            /* As upstream's grammar action, an unknown name is reported only
             * once the call parsed: "up(" is an unclosed parenthesis. */
            if (parse_args(p, &x->args, &x->nargs, false) == 0 && !f)
                perr_at(p, t.pos, "unknown function with name \"%.*s\"", (int)t.len,
                        p->lx.q + t.pos);
            if (!f) {
                promql_expr_free(x);
                return NULL;
            }
            break;
        }
        x = parse_selector(p, &t);
        break;
    }
    case PT_START:
    case PT_END: {
        /* start() and end() are functions; a bare word is a metric name. */
        struct promql_lexer save = p->lx;
        struct promql_token nt;
        promql_lexer_next(&save, &nt);
        if (nt.type == PT_LPAREN) {
            next(p);
            x = node_new(p, PROMQL_NODE_CALL, t.pos);
            if (!x)
                return NULL;
            x->func = promql_func_lookup(t.type == PT_START ? "start" : "end",
                                         t.type == PT_START ? 5 : 3);
            parse_args(p, &x->args, &x->nargs, false);
            break;
        }
        next(p);
        x = parse_selector(p, &t);
        break;
    }
    case PT_METRIC_IDENT:
    case PT_BOOL: case PT_BY: case PT_GROUP_LEFT: case PT_GROUP_RIGHT: case PT_IGNORING:
    case PT_OFFSET: case PT_ON: case PT_WITHOUT:
    case PT_LAND: case PT_LOR: case PT_LUNLESS: case PT_ATAN2:
        next(p);
        x = parse_selector(p, &t);
        break;
    default:
        unexpected(p, NULL, NULL);
        return NULL;
    }
    if (!x || p->failed)
        return x;
    return parse_postfix(p, x);
}

static struct promql_expr *parse_unary(struct parser *p)
{
    if (p->tok.type == PT_ADD || p->tok.type == PT_SUB) {
        struct promql_token t = p->tok;
        next(p);
        struct promql_expr *operand = parse_binary(p, 6);
        if (!operand || p->failed)
            return operand;
        if (operand->kind == PROMQL_NODE_NUMBER) {
            if (t.type == PT_SUB)
                operand->num = -operand->num;
            operand->pos = t.pos;
            return operand;
        }
        struct promql_expr *u = node_new(p, PROMQL_NODE_UNARY, t.pos);
        if (!u)
            return operand;   /* freed by caller via the failed path */
        u->op = t.type;
        u->lhs = operand;
        return u;
    }
    return parse_primary(p);
}

static int precedence(enum promql_tok t)
{
    switch (t) {
    case PT_LOR: return 1;
    case PT_LAND: case PT_LUNLESS: return 2;
    case PT_EQLC: case PT_NEQ: case PT_LTE: case PT_LSS: case PT_GTE: case PT_GTR: return 3;
    case PT_ADD: case PT_SUB: return 4;
    case PT_MUL: case PT_DIV: case PT_MOD: case PT_ATAN2: return 5;
    case PT_POW: return 6;
    default: return 0;
    }
}

static struct promql_expr *parse_binary(struct parser *p, int min_prec)
{
    struct promql_expr *lhs = parse_unary(p);
    while (lhs && !p->failed) {
        enum promql_tok op = p->tok.type;
        int prec = precedence(op);
        if (prec == 0 || prec < min_prec)
            break;
        struct promql_expr *b = node_new(p, PROMQL_NODE_BINARY, lhs->pos);
        if (!b)
            break;
        b->op = op;
        b->op_pos = p->tok.pos;
        b->lhs = lhs;
        b->card = promql_tok_is_setop(op) ? PROMQL_CARD_MANY_TO_MANY : PROMQL_CARD_ONE_TO_ONE;
        lhs = b;
        next(p);
        if (p->tok.type == PT_BOOL) {
            b->return_bool = true;
            next(p);
        }
        if (p->tok.type == PT_ON || p->tok.type == PT_IGNORING) {
            b->has_matching = true;
            b->on = p->tok.type == PT_ON;
            next(p);
            if (parse_label_list(p, &b->match_labels, &b->nmatch_labels, "grouping opts"))
                break;
            if (p->tok.type == PT_GROUP_LEFT || p->tok.type == PT_GROUP_RIGHT) {
                b->card = p->tok.type == PT_GROUP_LEFT ? PROMQL_CARD_MANY_TO_ONE
                                                       : PROMQL_CARD_ONE_TO_MANY;
                next(p);
                if (p->tok.type == PT_LPAREN &&
                    parse_label_list(p, &b->include, &b->ninclude, "grouping opts"))
                    break;
            }
        } else if (p->tok.type == PT_GROUP_LEFT || p->tok.type == PT_GROUP_RIGHT) {
            unexpected(p, NULL, NULL);
            break;
        }
        b->rhs = parse_binary(p, op == PT_POW ? prec : prec + 1);
        if (!b->rhs && !p->failed)
            unexpected(p, NULL, NULL);
    }
    return lhs;
}

/* ------------------------------------------------------------ check pass */

static const char *type_doc(enum promql_value_type t)
{
    return promql_value_type_name(t);
}

static void expect_type(struct parser *p, const struct promql_expr *x, enum promql_value_type want,
                        const char *context)
{
    enum promql_value_type got = promql_expr_type(x);
    if (got != want)
        perr_at(p, x->pos, "expected type %s in %s, got %s", type_doc(want), context,
                type_doc(got));
}

static void check(struct parser *p, struct promql_expr *x)
{
    if (!x || p->failed)
        return;
    switch (x->kind) {
    case PROMQL_NODE_NUMBER:
    case PROMQL_NODE_STRING:
        return;
    case PROMQL_NODE_VECTOR: {
        bool ok = false;
        for (size_t i = 0; i < x->nmatchers; i++)
            if (x->matchers[i].m && !labels_matcher_matches_empty(x->matchers[i].m))
                ok = true;
        if (!ok)
            perr_at(p, x->pos, "vector selector must contain at least one non-empty matcher");
        return;
    }
    case PROMQL_NODE_MATRIX:
    case PROMQL_NODE_PAREN:
        check(p, x->lhs);
        return;
    case PROMQL_NODE_SUBQUERY:
        check(p, x->lhs);
        if (!p->failed && promql_expr_type(x->lhs) != PROMQL_VALUE_VECTOR)
            perr_at(p, x->pos, "subquery is only allowed on instant vector, got %s instead",
                    type_doc(promql_expr_type(x->lhs)));
        return;
    case PROMQL_NODE_UNARY: {
        check(p, x->lhs);
        enum promql_value_type t = promql_expr_type(x->lhs);
        if (!p->failed && t != PROMQL_VALUE_SCALAR && t != PROMQL_VALUE_VECTOR)
            perr_at(p, x->pos,
                    "unary expression only allowed on expressions of type scalar or instant "
                    "vector, got \"%s\"",
                    type_doc(t));
        return;
    }
    case PROMQL_NODE_BINARY: {
        check(p, x->lhs);
        check(p, x->rhs);
        if (p->failed)
            return;
        enum promql_value_type lt = promql_expr_type(x->lhs), rt = promql_expr_type(x->rhs);
        const char *opname = promql_tok_text(x->op);
        if (x->return_bool && !promql_tok_is_comparison(x->op)) {
            perr_at(p, x->op_pos, "bool modifier can only be used on comparison operators");
            return;
        }
        if (promql_tok_is_comparison(x->op) && !x->return_bool && lt == PROMQL_VALUE_SCALAR &&
            rt == PROMQL_VALUE_SCALAR) {
            perr_at(p, x->op_pos, "comparisons between scalars must use BOOL modifier");
            return;
        }
        if (x->on) {
            for (size_t i = 0; i < x->nmatch_labels; i++)
                for (size_t j = 0; j < x->ninclude; j++)
                    if (strcmp(x->match_labels[i], x->include[j]) == 0) {
                        perr_at(p, x->op_pos,
                                "label \"%s\" must not occur in ON and GROUP clause at once",
                                x->include[j]);
                        return;
                    }
        }
        if (lt != PROMQL_VALUE_SCALAR && lt != PROMQL_VALUE_VECTOR) {
            perr_at(p, x->lhs->pos,
                    "binary expression must contain only scalar and instant vector types");
            return;
        }
        if (rt != PROMQL_VALUE_SCALAR && rt != PROMQL_VALUE_VECTOR) {
            perr_at(p, x->rhs->pos,
                    "binary expression must contain only scalar and instant vector types");
            return;
        }
        if (lt != PROMQL_VALUE_VECTOR || rt != PROMQL_VALUE_VECTOR) {
            if (x->nmatch_labels > 0 || x->card == PROMQL_CARD_MANY_TO_ONE ||
                x->card == PROMQL_CARD_ONE_TO_MANY) {
                perr_at(p, x->pos, "vector matching only allowed between instant vectors");
                return;
            }
        } else if (promql_tok_is_setop(x->op) && (x->card == PROMQL_CARD_MANY_TO_ONE ||
                                                  x->card == PROMQL_CARD_ONE_TO_MANY)) {
            perr_at(p, x->pos, "no grouping allowed for \"%s\" operation", opname);
            return;
        }
        if ((lt == PROMQL_VALUE_SCALAR || rt == PROMQL_VALUE_SCALAR) &&
            promql_tok_is_setop(x->op)) {
            perr_at(p, x->pos, "set operator \"%s\" not allowed in binary scalar expression",
                    opname);
            return;
        }
        return;
    }
    case PROMQL_NODE_CALL: {
        const struct promql_func *f = x->func;
        size_t nargs = (size_t)f->nargs;
        if (f->variadic == 0) {
            if (nargs != x->nargs) {
                perr_at(p, x->pos, "expected %zu argument(s) in call to \"%s\", got %zu", nargs,
                        f->name, x->nargs);
                return;
            }
        } else {
            size_t na = nargs - 1;
            if (na > x->nargs) {
                perr_at(p, x->pos, "expected at least %zu argument(s) in call to \"%s\", got %zu",
                        na, f->name, x->nargs);
                return;
            }
            if (f->variadic > 0 && na + (size_t)f->variadic < x->nargs) {
                perr_at(p, x->pos, "expected at most %zu argument(s) in call to \"%s\", got %zu",
                        na + (size_t)f->variadic, f->name, x->nargs);
                return;
            }
        }
        char ctx[96];
        snprintf(ctx, sizeof(ctx), "call to function \"%s\"", f->name);
        for (size_t i = 0; i < x->nargs && !p->failed; i++) {
            size_t ti = i < nargs ? i : nargs - 1;
            check(p, x->args[i]);
            if (!p->failed)
                expect_type(p, x->args[i], f->args[ti], ctx);
        }
        return;
    }
    case PROMQL_NODE_AGG:
        check(p, x->lhs);
        if (!p->failed)
            expect_type(p, x->lhs, PROMQL_VALUE_VECTOR, "aggregation expression");
        if (x->rhs && !p->failed) {
            check(p, x->rhs);
            if (!p->failed)
                expect_type(p, x->rhs,
                            x->agg == PROMQL_AGG_COUNT_VALUES ? PROMQL_VALUE_STRING
                                                              : PROMQL_VALUE_SCALAR,
                            "aggregation parameter");
        }
        return;
    }
}

int promql_parse(const char *q, struct promql_expr **out, struct bs_error *err)
{
    *out = NULL;
    struct parser p;
    memset(&p, 0, sizeof(p));
    p.err = err;
    promql_lexer_init(&p.lx, q);
    next(&p);
    struct promql_expr *x = NULL;
    if (p.tok.type == PT_EOF) {
        perr_at(&p, 0, "no expression found in input");
    } else {
        x = parse_binary(&p, 1);
        if (!p.failed && p.tok.type != PT_EOF)
            unexpected(&p, NULL, NULL);
        if (!p.failed)
            check(&p, x);
    }
    if (p.failed) {
        expr_free_ptr(&x);
        return p.code;
    }
    *out = x;
    return 0;
}
