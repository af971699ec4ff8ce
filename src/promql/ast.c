/* SPDX-License-Identifier: Apache-2.0
 *
 * promql AST: freeing, value types, and the canonical text form (the
 * String() of Prometheus's parser nodes), used by tests for round trips
 * and later by rules for display.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    free(x);
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
    if (!rc && x->has_offset && x->offset_ms != 0) {
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
            rc = put_duration(b, x->range_ms);
        if (!rc)
            rc = bs_buf_putc(b, ']');
        return rc ? rc : put_modifiers(b, x->lhs);
    case PROMQL_NODE_SUBQUERY:
        rc = promql_expr_format(x->lhs, b);
        if (!rc)
            rc = bs_buf_putc(b, '[');
        if (!rc)
            rc = put_duration(b, x->range_ms);
        if (!rc)
            rc = bs_buf_putc(b, ':');
        if (!rc && x->step_ms)
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
