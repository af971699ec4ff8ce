/* SPDX-License-Identifier: Apache-2.0
 *
 * promql AST: freeing, value types, and the canonical text form (the
 * String() of Prometheus's parser nodes), used by tests for round trips
 * and later by rules for display.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "promql/promql_int.h"

static void free_strs(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void promql_expr_free(struct promql_expr *x)
{
    if (!x)
        return;
    free(x->str);
    free(x->name);
    for (size_t i = 0; i < x->nmatchers; i++) {
        free(x->matchers[i].name);
        free(x->matchers[i].value);
        labels_matcher_free(x->matchers[i].m);
    }
    free(x->matchers);
    promql_expr_free(x->lhs);
    promql_expr_free(x->rhs);
    free_strs(x->match_labels, x->nmatch_labels);
    free_strs(x->include, x->ninclude);
    for (size_t i = 0; i < x->nargs; i++)
        promql_expr_free(x->args[i]);
    free(x->args);
    free_strs(x->grouping, x->ngrouping);
    promql_expr_free(x->range_expr);
    promql_expr_free(x->step_expr);
    promql_expr_free(x->offset_expr);
    free(x);
}

/* ------------------------------------------------- duration expressions */

static const struct promql_func duration_funcs[] = {
    {"step", {PROMQL_VALUE_SCALAR}, 0, 0, PROMQL_VALUE_SCALAR, NULL, NULL},
    {"range", {PROMQL_VALUE_SCALAR}, 0, 0, PROMQL_VALUE_SCALAR, NULL, NULL},
    {"min_of", {PROMQL_VALUE_SCALAR, PROMQL_VALUE_SCALAR}, 2, 0, PROMQL_VALUE_SCALAR, NULL, NULL},
    {"max_of", {PROMQL_VALUE_SCALAR, PROMQL_VALUE_SCALAR}, 2, 0, PROMQL_VALUE_SCALAR, NULL, NULL},
};

const struct promql_func *promql_duration_func_lookup(const char *name, size_t n)
{
    for (size_t i = 0; i < sizeof(duration_funcs) / sizeof(duration_funcs[0]); i++)
        if (strlen(duration_funcs[i].name) == n && strncasecmp(duration_funcs[i].name, name, n) == 0)
            return &duration_funcs[i];
    return NULL;
}

int promql_duration_eval(const struct promql_expr *x, double step_s, double range_s,
                         double *out, char *err, size_t errcap)
{
    double l = 0, r = 0;
    int rc = 0;
    switch (x->kind) {
    case PROMQL_NODE_NUMBER:
        *out = x->num;
        return 0;
    case PROMQL_NODE_PAREN:
        return promql_duration_eval(x->lhs, step_s, range_s, out, err, errcap);
    case PROMQL_NODE_UNARY:
        rc = promql_duration_eval(x->lhs, step_s, range_s, &r, err, errcap);
        *out = x->op == PT_SUB ? -r : r;
        return rc;
    case PROMQL_NODE_CALL:
        if (strcmp(x->func->name, "step") == 0) {
            *out = step_s;
            return 0;
        }
        if (strcmp(x->func->name, "range") == 0) {
            *out = range_s;
            return 0;
        }
        if (x->nargs != 2)
            break;
        rc = promql_duration_eval(x->args[0], step_s, range_s, &l, err, errcap);
        if (!rc)
            rc = promql_duration_eval(x->args[1], step_s, range_s, &r, err, errcap);
        if (isnan(l) || isnan(r))
            *out = NAN;
        else if (strcmp(x->func->name, "min_of") == 0)
            *out = l < r ? l : r;
        else
            *out = l > r ? l : r;
        return rc;
    case PROMQL_NODE_BINARY:
        rc = promql_duration_eval(x->lhs, step_s, range_s, &l, err, errcap);
        if (!rc)
            rc = promql_duration_eval(x->rhs, step_s, range_s, &r, err, errcap);
        if (rc)
            return rc;
        switch (x->op) {
        case PT_ADD: *out = l + r; return 0;
        case PT_SUB: *out = l - r; return 0;
        case PT_MUL: *out = l * r; return 0;
        case PT_DIV:
            if (r == 0) {
                snprintf(err, errcap, "division by zero");
                return BS_EINVAL;
            }
            *out = l / r;
            return 0;
        case PT_MOD:
            if (r == 0) {
                snprintf(err, errcap, "modulo by zero");
                return BS_EINVAL;
            }
            *out = fmod(l, r);
            return 0;
        case PT_POW: *out = pow(l, r); return 0;
        default: break;
        }
        break;
    default:
        break;
    }
    snprintf(err, errcap, "unexpected duration expression");
    return BS_EINVAL;
}

int promql_duration_ms(double secs, bool allow_neg, int64_t *ms, char *err, size_t errcap)
{
    if (isnan(secs) || (secs <= 0 && !allow_neg)) {
        snprintf(err, errcap, "duration must be greater than 0");
        return BS_EINVAL;
    }
    double v = secs * 1000.0;
    if (!(v < 9.2e18 && v > -9.2e18)) {
        snprintf(err, errcap, "duration is out of range");
        return BS_EINVAL;
    }
    *ms = (int64_t)v;
    return 0;
}

int promql_resolve_durations(struct promql_expr *x, int64_t step_ms, int64_t range_ms, char *err,
                             size_t errcap)
{
    if (!x)
        return 0;
    double step_s = (double)step_ms / 1000.0, range_s = (double)range_ms / 1000.0, v;
    int rc = 0;
    if (x->offset_expr) {
        rc = promql_duration_eval(x->offset_expr, step_s, range_s, &v, err, errcap);
        if (!rc)
            rc = promql_duration_ms(v, true, &x->offset_ms, err, errcap);
    }
    if (!rc && x->range_expr) {
        rc = promql_duration_eval(x->range_expr, step_s, range_s, &v, err, errcap);
        if (!rc)
            rc = promql_duration_ms(v, false, &x->range_ms, err, errcap);
    }
    if (!rc && x->step_expr) {
        rc = promql_duration_eval(x->step_expr, step_s, range_s, &v, err, errcap);
        if (!rc)
            rc = promql_duration_ms(v, false, &x->step_ms, err, errcap);
    }
    if (!rc)
        rc = promql_resolve_durations(x->lhs, step_ms, range_ms, err, errcap);
    if (!rc)
        rc = promql_resolve_durations(x->rhs, step_ms, range_ms, err, errcap);
    for (size_t i = 0; !rc && i < x->nargs; i++)
        rc = promql_resolve_durations(x->args[i], step_ms, range_ms, err, errcap);
    return rc;
}

const char *promql_value_type_name(enum promql_value_type t)
{
    switch (t) {
    case PROMQL_VALUE_SCALAR: return "scalar";
    case PROMQL_VALUE_VECTOR: return "instant vector";
    case PROMQL_VALUE_MATRIX: return "range vector";
    case PROMQL_VALUE_STRING: return "string";
    default: return "none";
    }
}

enum promql_value_type promql_expr_type(const struct promql_expr *x)
{
    if (!x)
        return PROMQL_VALUE_NONE;
    switch (x->kind) {
    case PROMQL_NODE_NUMBER: return PROMQL_VALUE_SCALAR;
    case PROMQL_NODE_STRING: return PROMQL_VALUE_STRING;
    case PROMQL_NODE_VECTOR: return PROMQL_VALUE_VECTOR;
    case PROMQL_NODE_MATRIX:
    case PROMQL_NODE_SUBQUERY: return PROMQL_VALUE_MATRIX;
    case PROMQL_NODE_PAREN:
    case PROMQL_NODE_UNARY: return promql_expr_type(x->lhs);
    case PROMQL_NODE_BINARY:
        if (promql_expr_type(x->lhs) == PROMQL_VALUE_SCALAR &&
            promql_expr_type(x->rhs) == PROMQL_VALUE_SCALAR)
            return PROMQL_VALUE_SCALAR;
        return PROMQL_VALUE_VECTOR;
    case PROMQL_NODE_CALL: return x->func->ret;
    case PROMQL_NODE_AGG: return PROMQL_VALUE_VECTOR;
    }
    return PROMQL_VALUE_NONE;
}

/* A PromQL double-quoted string literal for s. */
static int put_quoted(struct bs_buf *b, const char *s)
{
    int rc = bs_buf_putc(b, '"');
    for (const unsigned char *c = (const unsigned char *)s; !rc && *c; c++) {
        switch (*c) {
        case '"': rc = bs_buf_puts(b, "\\\""); break;
        case '\\': rc = bs_buf_puts(b, "\\\\"); break;
        case '\n': rc = bs_buf_puts(b, "\\n"); break;
        case '\r': rc = bs_buf_puts(b, "\\r"); break;
        case '\t': rc = bs_buf_puts(b, "\\t"); break;
        default:
            if (*c < 0x20)
                rc = bs_buf_printf(b, "\\x%02x", *c);
            else
                rc = bs_buf_putc(b, (char)*c);
        }
    }
    return rc ? rc : bs_buf_putc(b, '"');
}

static int put_list(struct bs_buf *b, char **v, size_t n)
{
    int rc = bs_buf_putc(b, '(');
    for (size_t i = 0; !rc && i < n; i++) {
        if (i)
            rc = bs_buf_puts(b, ", ");
        if (!rc)
            rc = labels_name_valid(v[i], strlen(v[i])) ? bs_buf_puts(b, v[i]) : put_quoted(b, v[i]);
    }
    return rc ? rc : bs_buf_putc(b, ')');
}

static int put_duration(struct bs_buf *b, int64_t ms)
{
    char d[64];
    bs_duration_format(ms < 0 ? -ms : ms, d, sizeof(d));
    return bs_buf_printf(b, "%s%s", ms < 0 ? "-" : "", d);
}

static int put_modifiers(struct bs_buf *b, const struct promql_expr *x)
{
    int rc = 0;
    if (x->at == PROMQL_AT_VALUE)
        rc = bs_buf_printf(b, " @ %.3f", (double)x->at_ms / 1000.0);
    else if (x->at == PROMQL_AT_START)
        rc = bs_buf_puts(b, " @ start()");
    else if (x->at == PROMQL_AT_END)
        rc = bs_buf_puts(b, " @ end()");
    if (!rc && x->offset_expr) {
        /* Parenthesised, so that it parses back as one offset operand. */
        bool paren = x->offset_expr->kind == PROMQL_NODE_PAREN;
        rc = bs_buf_puts(b, paren ? " offset " : " offset (");
        if (!rc)
            rc = promql_expr_format(x->offset_expr, b);
        if (!rc && !paren)
            rc = bs_buf_putc(b, ')');
    } else if (!rc && x->has_offset && x->offset_ms != 0) {
        rc = bs_buf_puts(b, " offset ");
        if (!rc)
            rc = put_duration(b, x->offset_ms);
    }
    return rc;
}

static const char *match_op(enum labels_match_type t)
{
    switch (t) {
    case LABELS_MATCH_EQ: return "=";
    case LABELS_MATCH_NEQ: return "!=";
    case LABELS_MATCH_RE: return "=~";
    default: return "!~";
    }
}

static int format_selector(const struct promql_expr *x, struct bs_buf *b)
{
    int rc = 0;
    bool name_ok = x->name && labels_metric_name_valid(x->name, strlen(x->name));
    if (name_ok)
        rc = bs_buf_puts(b, x->name);
    size_t shown = 0;
    for (size_t i = 0; !rc && i < x->nmatchers; i++) {
        const struct promql_matcher_ast *m = &x->matchers[i];
        if (name_ok && m->type == LABELS_MATCH_EQ && strcmp(m->name, LABELS_METRIC_NAME) == 0 &&
            strcmp(m->value, x->name) == 0)
            continue;
        rc = bs_buf_puts(b, shown++ ? ", " : "{");
        if (!rc)
            rc = labels_name_valid(m->name, strlen(m->name)) ? bs_buf_puts(b, m->name)
                                                              : put_quoted(b, m->name);
        if (!rc)
            rc = bs_buf_puts(b, match_op(m->type));
        if (!rc)
            rc = put_quoted(b, m->value);
    }
    if (!rc && shown)
        rc = bs_buf_putc(b, '}');
    else if (!rc && !name_ok)
        rc = bs_buf_puts(b, "{}");
    return rc;
}

int promql_expr_format(const struct promql_expr *x, struct bs_buf *b)
{
    int rc = 0;
    char num[64];
    switch (x->kind) {
    case PROMQL_NODE_NUMBER:
        bs_float_format_short(x->num, num);
        return bs_buf_puts(b, num);
    case PROMQL_NODE_STRING:
        return put_quoted(b, x->str);
    case PROMQL_NODE_VECTOR:
        rc = format_selector(x, b);
        return rc ? rc : put_modifiers(b, x);
    case PROMQL_NODE_MATRIX:
        rc = format_selector(x->lhs, b);
        if (!rc)
            rc = bs_buf_putc(b, '[');
        if (!rc)
            rc = x->range_expr ? promql_expr_format(x->range_expr, b)
                               : put_duration(b, x->range_ms);
        if (!rc)
            rc = bs_buf_putc(b, ']');
        return rc ? rc : put_modifiers(b, x->lhs);
    case PROMQL_NODE_SUBQUERY:
        rc = promql_expr_format(x->lhs, b);
        if (!rc)
            rc = bs_buf_putc(b, '[');
        if (!rc)
            rc = x->range_expr ? promql_expr_format(x->range_expr, b)
                               : put_duration(b, x->range_ms);
        if (!rc)
            rc = bs_buf_putc(b, ':');
        if (!rc && x->step_expr)
            rc = promql_expr_format(x->step_expr, b);
        else if (!rc && x->step_ms)
            rc = put_duration(b, x->step_ms);
        if (!rc)
            rc = bs_buf_putc(b, ']');
        return rc ? rc : put_modifiers(b, x);
    case PROMQL_NODE_PAREN:
        rc = bs_buf_putc(b, '(');
        if (!rc)
            rc = promql_expr_format(x->lhs, b);
        return rc ? rc : bs_buf_putc(b, ')');
    case PROMQL_NODE_UNARY:
        rc = bs_buf_puts(b, x->op == PT_SUB ? "-" : "+");
        return rc ? rc : promql_expr_format(x->lhs, b);
    case PROMQL_NODE_BINARY:
        rc = promql_expr_format(x->lhs, b);
        if (!rc)
            rc = bs_buf_printf(b, " %s%s", promql_tok_text(x->op), x->return_bool ? " bool" : "");
        if (!rc && (x->nmatch_labels > 0 || x->on)) {
            rc = bs_buf_puts(b, x->on ? " on " : " ignoring ");
            if (!rc)
                rc = put_list(b, x->match_labels, x->nmatch_labels);
            if (!rc && (x->card == PROMQL_CARD_MANY_TO_ONE ||
                        x->card == PROMQL_CARD_ONE_TO_MANY)) {
                rc = bs_buf_puts(b, x->card == PROMQL_CARD_MANY_TO_ONE ? " group_left "
                                                                        : " group_right ");
                if (!rc)
                    rc = put_list(b, x->include, x->ninclude);
            }
        }
        if (!rc)
            rc = bs_buf_putc(b, ' ');
        return rc ? rc : promql_expr_format(x->rhs, b);
    case PROMQL_NODE_CALL:
        rc = bs_buf_printf(b, "%s(", x->func->name);
        for (size_t i = 0; !rc && i < x->nargs; i++) {
            if (i)
                rc = bs_buf_puts(b, ", ");
            if (!rc)
                rc = promql_expr_format(x->args[i], b);
        }
        return rc ? rc : bs_buf_putc(b, ')');
    case PROMQL_NODE_AGG:
        rc = bs_buf_puts(b, promql_agg_name(x->agg));
        if (!rc && (x->without || x->ngrouping > 0)) {
            rc = bs_buf_puts(b, x->without ? " without " : " by ");
            if (!rc)
                rc = put_list(b, x->grouping, x->ngrouping);
            if (!rc)
                rc = bs_buf_putc(b, ' ');
        }
        if (!rc)
            rc = bs_buf_putc(b, '(');
        if (!rc && x->rhs) {
            rc = promql_expr_format(x->rhs, b);
            if (!rc)
                rc = bs_buf_puts(b, ", ");
        }
        if (!rc)
            rc = promql_expr_format(x->lhs, b);
        return rc ? rc : bs_buf_putc(b, ')');
    }
    return 0;
}
