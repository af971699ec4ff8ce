/* SPDX-License-Identifier: Apache-2.0
 *
 * Unit tests for the PromQL lexer and parser: canonical text round trips,
 * precedence and associativity, and error messages with positions as
 * Prometheus prints them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "promql/promql_int.h"

struct ok_case {
    const char *in, *out;
};

static const struct ok_case ok_cases[] = {
    {"1", "1"},
    {"+1", "1"},
    {"-1", "-1"},
    {".5", "0.5"},
    {"1e3", "1000"},
    {"0x1f", "31"},
    {"Inf", "+Inf"},
    {"-inf", "-Inf"},
    {"NaN", "NaN"},
    {"5m", "300"},
    {"\"a\\nb\"", "\"a\\nb\""},
    {"'single'", "\"single\""},
    {"`raw\\n`", "\"raw\\\\n\""},
    {"\"\\u00e9\"", "\"\xc3\xa9\""},
    {"foo", "foo"},
    {"foo:bar", "foo:bar"},
    {"foo{a=\"b\"}", "foo{a=\"b\"}"},
    {"foo{a=\"b\",}", "foo{a=\"b\"}"},
    {"{a=~\"b.*\", c!~\"d\", e!=\"f\"}", "{a=~\"b.*\", c!~\"d\", e!=\"f\"}"},
    {"{__name__=\"foo\"}", "{__name__=\"foo\"}"},
    {"foo{on=\"x\", by=\"y\", sum=\"z\"}", "foo{on=\"x\", by=\"y\", sum=\"z\"}"},
    {"foo[5m]", "foo[5m]"},
    {"foo[1h30m]", "foo[1h30m]"},
    {"foo[100ms]", "foo[100ms]"},
    {"foo offset 5m", "foo offset 5m"},
    {"foo offset -5m", "foo offset -5m"},
    {"foo[5m] offset 1d", "foo[5m] offset 1d"},
    {"foo @ 100", "foo @ 100.000"},
    {"foo @ start()", "foo @ start()"},
    {"foo[1m] @ end() offset 1m", "foo[1m] @ end() offset 1m"},
    {"foo offset 1m @ 10", "foo @ 10.000 offset 1m"},
    {"foo[5m:1m]", "foo[5m:1m]"},
    {"foo[5m:]", "foo[5m:]"},
    {"rate(foo[5m])[30m:1m] offset 1m", "rate(foo[5m])[30m:1m] offset 1m"},
    {"(foo)", "(foo)"},
    {"-foo", "-foo"},
    {"1 + 2 * 3", "1 + 2 * 3"},
    {"a and b or c unless d", "a and b or c unless d"},
    {"a > bool 1", "a > bool 1"},
    {"a + on(x, y) b", "a + on (x, y) b"},
    {"a + ignoring(x) group_left(z) b", "a + ignoring (x) group_left (z) b"},
    {"a * on() group_right b", "a * on () group_right () b"},
    {"sum(foo)", "sum(foo)"},
    {"sum by (a, b) (foo)", "sum by (a, b) (foo)"},
    {"sum(foo) by (a)", "sum by (a) (foo)"},
    {"SUM without (a) (foo)", "sum without (a) (foo)"},
    {"topk(3, foo)", "topk(3, foo)"},
    {"count_values(\"v\", foo)", "count_values(\"v\", foo)"},
    {"quantile(0.9, foo)", "quantile(0.9, foo)"},
    {"limitk(2, foo)", "limitk(2, foo)"},
    {"rate(foo[5m])", "rate(foo[5m])"},
    {"label_join(foo, \"d\", \",\", \"a\", \"b\")", "label_join(foo, \"d\", \",\", \"a\", \"b\")"},
    {"round(foo)", "round(foo)"},
    {"round(foo, 5)", "round(foo, 5)"},
    {"time()", "time()"},
    {"hour()", "hour()"},
    {"foo # comment\n + 1", "foo + 1"},
    {"sum", "sum"},
    {"foo atan2 bar", "foo atan2 bar"},
    {"histogram_quantile(0.9, rate(h_bucket[5m]))", "histogram_quantile(0.9, rate(h_bucket[5m]))"},
    /* Duration expressions: constant ones are folded, step()/range() kept. */
    {"foo[26m+4m]", "foo[30m]"},
    {"foo[60*30]", "foo[30m]"},
    {"foo[2m*(10+5)]", "foo[30m]"},
    {"foo[1h30m % 1h]", "foo[30m]"},
    {"foo[-5m+35m]", "foo[30m]"},
    {"foo[29s+1s:5s+5s]", "foo[30s:10s]"},
    {"foo offset (2*2)", "foo offset 4s"},
    {"foo offset -(1m+1m)", "foo offset -2m"},
    {"foo offset 100 + 2", "foo offset 1m40s + 2"},
    {"foo[step()]", "foo[step()]"},
    {"foo[step() + 1]", "foo[step() + 1]"},
    {"foo offset min_of(step(), 1s)", "foo offset (min_of(step(), 1))"},
    {"foo[5m:step()]", "foo[5m:step()]"},
    {"start() - end()", "start() - end()"},
    {"min_of(1, 2)", "min_of(1, 2)"},
    {"first_over_time(foo[5m])", "first_over_time(foo[5m])"},
    {"sort_by_label(foo, \"a\", \"b\")", "sort_by_label(foo, \"a\", \"b\")"},
};

static void test_round_trips(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(ok_cases) / sizeof(ok_cases[0]); i++) {
        struct promql_expr *x = NULL;
        struct bs_error err;
        bs_error_clear(&err);
        int rc = promql_parse(ok_cases[i].in, &x, &err);
        if (rc != 0)
            fail_msg("parse of %s failed: %s", ok_cases[i].in, err.msg);
        struct bs_buf b;
        bs_buf_init(&b, 0);
        assert_int_equal(promql_expr_format(x, &b), 0);
        if (strcmp(b.data, ok_cases[i].out) != 0)
            fail_msg("format of %s: got %s want %s", ok_cases[i].in, b.data, ok_cases[i].out);
        /* The canonical form parses back to the same text. */
        struct promql_expr *y = NULL;
        assert_int_equal(promql_parse(b.data, &y, &err), 0);
        struct bs_buf b2;
        bs_buf_init(&b2, 0);
        assert_int_equal(promql_expr_format(y, &b2), 0);
        assert_string_equal(b.data, b2.data);
        bs_buf_fini(&b);
        bs_buf_fini(&b2);
        promql_expr_free(x);
        promql_expr_free(y);
    }
}

struct err_case {
    const char *in, *msg;
};

static const struct err_case err_cases[] = {
    {"", "1:1: parse error: no expression found in input"},
    {"1+", "1:3: parse error: unexpected end of input"},
    {"1 +", "1:4: parse error: unexpected end of input"},
    {"*1", "1:1: parse error: unexpected <op:*>"},
    {"1 + + * 2", "1:7: parse error: unexpected <op:*>"},
    {"foo + ,", "1:7: parse error: unexpected \",\""},
    {"(1))", "1:4: parse error: unexpected right parenthesis ')'"},
    {"((1)", "1:5: parse error: unclosed left parenthesis"},
    {"(", "1:2: parse error: unclosed left parenthesis"},
    {"foo[5m", "1:7: parse error: unclosed left bracket"},
    {"foo{a=\"b\"", "1:10: parse error: unexpected end of input inside braces"},
    {"foo bar", "1:5: parse error: unexpected identifier \"bar\""},
    {"1 2", "1:3: parse error: unexpected number \"2\""},
    {".", "1:1: parse error: unexpected character: '.'"},
    {"1 !~ 1", "1:3: parse error: unexpected character after '!': '~'"},
    {"1 =~ 1", "1:3: parse error: unexpected character after '=': '~'"},
    {"foo{a}", "1:6: parse error: unexpected \"}\" in label matching, expected label matching operator"},
    {"foo{a=b}", "1:7: parse error: unexpected identifier \"b\" in label matching, expected string"},
    {"foo{a=\"b\" c=\"d\"}", "1:11: parse error: unexpected identifier \"c\" in label matching, expected \",\" or \"}\""},
    {"foo()", "1:1: parse error: unknown function with name \"foo\""},
    {"up(", "1:4: parse error: unclosed left parenthesis"},
    {"up(foo +", "1:9: parse error: unclosed left parenthesis"},
    {"foo[5m-5m]", "1:5: parse error: duration must be greater than 0"},
    {"foo[1m:1m-1m]", "1:8: parse error: step must be greater than 0"},
    {"foo[1m/0]", "1:5: parse error: division by zero"},
    {"foo[1m%0]", "1:5: parse error: modulo by zero"},
    {"foo[nope()]", "1:5: parse error: unexpected identifier \"nope\" in range selector, expected number or duration"},
    {"foo offset bar", "1:12: parse error: unexpected identifier \"bar\" in offset, expected number or duration"},
    {"foo[min_of(1m)]", "1:5: parse error: expected 2 argument(s) in call to \"min_of\", got 1"},
    {"rate(foo)", "1:6: parse error: expected type range vector in call to function \"rate\", got instant vector"},
    {"abs(foo[5m])", "1:5: parse error: expected type instant vector in call to function \"abs\", got range vector"},
    {"rate()", "1:1: parse error: expected 1 argument(s) in call to \"rate\", got 0"},
    {"round(foo, 1, 2)", "1:1: parse error: expected at most 2 argument(s) in call to \"round\", got 3"},
    {"label_join(foo, \"a\")", "1:1: parse error: expected at least 3 argument(s) in call to \"label_join\", got 2"},
    {"{a=\"\"}", "1:1: parse error: vector selector must contain at least one non-empty matcher"},
    {"{}", "1:1: parse error: vector selector must contain at least one non-empty matcher"},
    {"{a=~\".*\"}", "1:1: parse error: vector selector must contain at least one non-empty matcher"},
    {"1 == 1", "1:3: parse error: comparisons between scalars must use BOOL modifier"},
    {"1 and 1", "1:1: parse error: set operator \"and\" not allowed in binary scalar expression"},
    {"foo + bool bar", "1:5: parse error: bool modifier can only be used on comparison operators"},
    {"1 + on(a) foo", "1:1: parse error: vector matching only allowed between instant vectors"},
    {"foo and on(a) group_left bar", "1:1: parse error: no grouping allowed for \"and\" operation"},
    {"foo[5m] + 1", "1:1: parse error: binary expression must contain only scalar and instant vector types"},
    {"-\"s\"", "1:1: parse error: unary expression only allowed on expressions of type scalar or instant vector, got \"string\""},
    {"-foo[5m]", "1:1: parse error: unary expression only allowed on expressions of type scalar or instant vector, got \"range vector\""},
    {"sum(1, foo)", "1:1: parse error: wrong number of arguments for aggregate expression provided, expected 1, got 2"},
    {"topk(foo)", "1:1: parse error: wrong number of arguments for aggregate expression provided, expected 2, got 1"},
    {"sum()", "1:1: parse error: no arguments for aggregate expression provided"},
    {"topk(\"a\", foo)", "1:6: parse error: expected type scalar in aggregation parameter, got string"},
    {"sum(foo[5m])", "1:5: parse error: expected type instant vector in aggregation expression, got range vector"},
    {"sum by foo (bar)", "1:8: parse error: unexpected identifier \"foo\" in grouping opts, expected \"(\""},
    {"(foo + bar)[5m]", "1:1: parse error: ranges only allowed for vector selectors"},
    {"1 offset 5m", "1:3: parse error: offset modifier must be preceded by an instant vector selector or range vector selector or a subquery"},
    {"foo offset 1m offset 2m", "1:15: parse error: offset may not be set multiple times"},
    {"foo @ 1 @ 2", "1:9: parse error: @ <timestamp> may not be set multiple times"},
    {"foo[5m][1m:]", "1:1: parse error: subquery is only allowed on instant vector, got range vector instead"},
    {"foo[5mm]", "1:5: parse error: bad number or duration syntax: \"5mm\""},
    {"foo{a=\"\\q\"}", "1:7: parse error: unknown escape sequence U+0071 'q'"},
    {"\"abc", "1:1: parse error: unterminated quoted string"},
    {"foo\n  + *", "2:5: parse error: unexpected <op:*>"},
    {"foo + on(a) group_left(a) bar", "1:5: parse error: label \"a\" must not occur in ON and GROUP clause at once"},
};

static void test_errors(void **state)
{
    (void)state;
    int bad = 0;
    for (size_t i = 0; i < sizeof(err_cases) / sizeof(err_cases[0]); i++) {
        struct promql_expr *x = NULL;
        struct bs_error err;
        bs_error_clear(&err);
        int rc = promql_parse(err_cases[i].in, &x, &err);
        if (rc != BS_EPARSE) {
            print_error("%s: want BS_EPARSE, got %d\n", err_cases[i].in, rc);
            promql_expr_free(x);
            bad++;
            continue;
        }
        assert_null(x);
        if (strcmp(err.msg, err_cases[i].msg) != 0) {
            print_error("%s:\n got  %s\n want %s\n", err_cases[i].in, err.msg, err_cases[i].msg);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

/* Evaluate a constant expression through the parser + evaluator-free path:
 * the tree shape tells precedence. */
static void assert_shape(const char *in, const char *shape)
{
    struct promql_expr *x = NULL;
    assert_int_equal(promql_parse(in, &x, NULL), 0);
    /* Build a fully parenthesised rendering. */
    struct bs_buf b;
    bs_buf_init(&b, 0);
    struct promql_expr *stack[64];
    (void)stack;
    /* recursive lambda substitute */
    extern int test_shape(const struct promql_expr *, struct bs_buf *);
    test_shape(x, &b);
    if (strcmp(b.data, shape) != 0)
        fail_msg("%s: shape %s want %s", in, b.data, shape);
    bs_buf_fini(&b);
    promql_expr_free(x);
}

int test_shape(const struct promql_expr *x, struct bs_buf *b)
{
    char num[64];
    switch (x->kind) {
    case PROMQL_NODE_BINARY:
        bs_buf_putc(b, '(');
        test_shape(x->lhs, b);
        bs_buf_printf(b, "%s", promql_tok_text(x->op));
        test_shape(x->rhs, b);
        return bs_buf_putc(b, ')');
    case PROMQL_NODE_UNARY:
        bs_buf_puts(b, "(-");
        test_shape(x->lhs, b);
        return bs_buf_putc(b, ')');
    case PROMQL_NODE_NUMBER:
        bs_float_format_short(x->num, num);
        return bs_buf_puts(b, num);
    default:
        return promql_expr_format(x, b);
    }
}

static void test_precedence(void **state)
{
    (void)state;
    assert_shape("2^3^2", "(2^(3^2))");
    assert_shape("1-2-3", "((1-2)-3)");
    assert_shape("1+2*3", "(1+(2*3))");
    assert_shape("-2^2", "(-(2^2))");
    assert_shape("-a*b", "((-a)*b)");
    assert_shape("a or b and c", "(aor(bandc))");
    assert_shape("a and b unless c", "((aandb)unlessc)");
    assert_shape("a > b + c", "(a>(b+c))");
    assert_shape("a + b % c atan2 d", "(a+((b%c)atan2d))");
    assert_shape("2 ^ -1", "(2^-1)");
    assert_shape("a == b or c", "((a==b)orc)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_precedence),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
