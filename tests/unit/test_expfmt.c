/* SPDX-License-Identifier: Apache-2.0
 *
 * Unit tests of the text format parser and writer: table-driven valid and
 * invalid inputs, the shared Prometheus test data files (cross-checked with
 * an independent line count), limits, and writer -> parser round trips.
 * Runs with cwd = repository root (the test data lives in ../shared).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expfmt/expfmt.h"

#define TESTDATA_DIR "../shared/testdata/expfmt"

/* ------------------------------------------------------------- rendering */

/* Render a parsed document to one line per entry, so expected results can
 * be written as plain strings:
 *   S name{a="x",b="y"} value[ @ts][ type]   (value %g, NaN, +Inf, -Inf;
 *                                             label text escaped \\ \" \n)
 *   H name text      T name type      C text
 * On a parse error the render ends with "E <code> <message>". */
static void put_esc(struct bs_buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\')
            bs_buf_puts(b, "\\\\");
        else if (s[i] == '"')
            bs_buf_puts(b, "\\\"");
        else if (s[i] == '\n')
            bs_buf_puts(b, "\\n");
        else
            bs_buf_putc(b, s[i]);
    }
}

static void put_value(struct bs_buf *b, double v)
{
    if (isnan(v))
        bs_buf_puts(b, "NaN");
    else if (isinf(v))
        bs_buf_puts(b, v > 0 ? "+Inf" : "-Inf");
    else
        bs_buf_printf(b, "%g", v);
}

static int render(const char *in, size_t len, struct bs_buf *out)
{
    struct expfmt_parser p;
    struct bs_error err = {0};
    enum expfmt_entry kind;
    int rc;
    expfmt_parser_init(&p, in, len);
    while ((rc = expfmt_parser_next(&p, &kind, &err)) == 0 && kind != EXPFMT_EOF) {
        const char *a, *t;
        size_t an, tn;
        enum expfmt_metric_type ty;
        switch (kind) {
        case EXPFMT_SERIES: {
            const struct expfmt_series *s = expfmt_parser_series(&p);
            bs_buf_puts(out, "S ");
            put_esc(out, s->name, s->name_len);
            if (s->nlabels) {
                bs_buf_putc(out, '{');
                for (size_t i = 0; i < s->nlabels; i++) {
                    if (i)
                        bs_buf_putc(out, ',');
                    put_esc(out, s->labels[i].name, s->labels[i].name_len);
                    bs_buf_puts(out, "=\"");
                    put_esc(out, s->labels[i].value, s->labels[i].value_len);
                    bs_buf_putc(out, '"');
                }
                bs_buf_putc(out, '}');
            }
            bs_buf_putc(out, ' ');
            put_value(out, s->value);
            if (s->has_timestamp)
                bs_buf_printf(out, " @%lld", (long long)s->timestamp_ms);
            if (s->type != EXPFMT_TYPE_UNKNOWN)
                bs_buf_printf(out, " %s", expfmt_metric_type_name(s->type));
            break;
        }
        case EXPFMT_HELP:
            expfmt_parser_help(&p, &a, &an, &t, &tn);
            bs_buf_puts(out, "H ");
            put_esc(out, a, an);
            bs_buf_putc(out, ' ');
            put_esc(out, t, tn);
            break;
        case EXPFMT_TYPE:
            expfmt_parser_type(&p, &a, &an, &ty);
            bs_buf_puts(out, "T ");
            put_esc(out, a, an);
            bs_buf_printf(out, " %s", expfmt_metric_type_name(ty));
            break;
        case EXPFMT_COMMENT:
            expfmt_parser_comment(&p, &t, &tn);
            bs_buf_puts(out, "C ");
            put_esc(out, t, tn);
            break;
        case EXPFMT_EOF:
            break;
        }
        bs_buf_putc(out, '\n');
    }
    if (rc < 0)
        bs_buf_printf(out, "E %d %s\n", rc, err.msg);
    expfmt_parser_fini(&p);
    return rc;
}

/* ----------------------------------------------------------- valid cases */

struct valid_case {
    const char *name;
    const char *in;
    const char *want;
};

static const struct valid_case valid_cases[] = {
    {"empty input", "", ""},
    {"only blank lines", "\n\n  \t\n", ""},
    {"plain series", "foo 1\n", "S foo 1\n"},
    {"no trailing newline", "foo 1", "S foo 1\n"},
    {"no trailing newline with ts", "foo 1 42", "S foo 1 @42\n"},
    {"colon and digits in name", "a:b_c9 2.5\n", "S a:b_c9 2.5\n"},
    {"labels", "foo{a=\"x\",b=\"y\"} 3\n", "S foo{a=\"x\",b=\"y\"} 3\n"},
    {"empty label block", "foo{} 3\n", "S foo 3\n"},
    {"trailing comma", "foo{a=\"x\",} 3\n", "S foo{a=\"x\"} 3\n"},
    {"empty label value", "foo{a=\"\"} 3\n", "S foo{a=\"\"} 3\n"},
    {"whitespace everywhere",
     " \tfoo \t{ a \t= \"x\" , b=\"y\" \t, } \t 7 \t 123 \t\n",
     "S foo{a=\"x\",b=\"y\"} 7 @123\n"},
    {"no space between brace and value", "foo{a=\"x\"}7\n", "S foo{a=\"x\"} 7\n"},
    {"escapes in label value", "foo{a=\"q\\\"b\\\\s\\nn\"} 1\n",
     "S foo{a=\"q\\\"b\\\\s\\nn\"} 1\n"},
    {"unknown escape kept literally", "foo{a=\"x\\ty\"} 1\n", "S foo{a=\"x\\\\ty\"} 1\n"},
    {"braces and hash inside value", "foo{a=\"}{#,=\"} 1\n", "S foo{a=\"}{#,=\"} 1\n"},
    {"utf8 label value", "foo{a=\"caf\xc3\xa9 \xe2\x82\xac\"} 1\n",
     "S foo{a=\"caf\xc3\xa9 \xe2\x82\xac\"} 1\n"},
    {"NaN and infinities",
     "a NaN\nb +Inf\nc -Inf\nd Inf\ne nan\n",
     "S a NaN\nS b +Inf\nS c -Inf\nS d +Inf\nS e NaN\n"},
    {"exponents and signs", "a 1e3\nb -2.5E-3\nc +4\nd .5\ne 0\n",
     "S a 1000\nS b -0.0025\nS c 4\nS d 0.5\nS e 0\n"},
    {"timestamps", "a 1 1700000000000\nb 2 -5\nc 3 0\n",
     "S a 1 @1700000000000\nS b 2 @-5\nS c 3 @0\n"},
    {"int64 extremes", "a 1 9223372036854775807\nb 1 -9223372036854775808\n",
     "S a 1 @9223372036854775807\nS b 1 @-9223372036854775808\n"},
    {"help with escapes", "# HELP foo A \\\\ back\\nslash \\t kept\n",
     "H foo A \\\\ back\\nslash \\\\t kept\n"},
    {"help empty", "# HELP foo\n# HELP bar \n", "H foo \nH bar \n"},
    {"help keeps extra spaces", "# HELP foo   two  spaces\n", "H foo   two  spaces\n"},
    {"help with tabs", "#\tHELP\tfoo\tx y\n", "H foo x y\n"},
    {"comments", "# hello\n#\n#HELP foo x\n# HELPER x\n# EOF\n",
     "C # hello\nC #\nC #HELP foo x\nC # HELPER x\nC # EOF\n"},
    {"indented comment", "  # note\nfoo 1\n", "C   # note\nS foo 1\n"},
    {"types",
     "# TYPE a counter\n# TYPE b gauge\n# TYPE c histogram\n# TYPE d summary\n"
     "# TYPE e untyped\n",
     "T a counter\nT b gauge\nT c histogram\nT d summary\nT e untyped\n"},
    {"counter family", "# TYPE foo counter\nfoo 1\nfoo_total 2\n", "T foo counter\nS foo 1 counter\nS foo_total 2\n"},
    {"histogram family",
     "# HELP h A histogram.\n# TYPE h histogram\n"
     "h_bucket{le=\"0.1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.3\nh_count 2\nh_other 1\nh 5\n"
     "other 1\n",
     "H h A histogram.\nT h histogram\n"
     "S h_bucket{le=\"0.1\"} 1 histogram\nS h_bucket{le=\"+Inf\"} 2 histogram\n"
     "S h_sum 0.3 histogram\nS h_count 2 histogram\nS h_other 1\nS h 5 histogram\nS other 1\n"},
    {"summary family",
     "# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 2\ns_count 3\ns_bucket 4\n",
     "T s summary\nS s{quantile=\"0.5\"} 1 summary\nS s_sum 2 summary\nS s_count 3 summary\n"
     "S s_bucket 4\n"},
    {"type switches family", "# TYPE a gauge\n# TYPE b counter\na 1\nb 2\n",
     "T a gauge\nT b counter\nS a 1\nS b 2 counter\n"},
    {"comments between family lines",
     "# TYPE g gauge\n# random\n\ng 1\n# HELP g later\ng 2\n",
     "T g gauge\nC # random\nS g 1 gauge\nH g later\nS g 2 gauge\n"},
    {"quoted metric name", "{\"my.metric\"} 1\n", "S my.metric 1\n"},
    {"quoted metric name with labels", "{\"my.metric\", a=\"x\", \"b.c\"=\"y\"} 1 5\n",
     "S my.metric{a=\"x\",b.c=\"y\"} 1 @5\n"},
    {"quoted name in middle", "{a=\"x\",\"m\"} 1\n", "S m{a=\"x\"} 1\n"},
    {"quoted label name", "foo{\"a b\"=\"x\"} 1\n", "S foo{a b=\"x\"} 1\n"},
    {"quoted TYPE name", "# TYPE \"my.metric\" gauge\n{\"my.metric\"} 1\n",
     "T my.metric gauge\nS my.metric 1 gauge\n"},
    {"crlf-free multi line",
     "a 1\n\nb{x=\"1\"} 2 3\n# c\n",
     "S a 1\nS b{x=\"1\"} 2 @3\nC # c\n"},
    {"seventeen labels", "m{a=\"1\",b=\"1\",c=\"1\",d=\"1\",e=\"1\",f=\"1\",g=\"1\",h=\"1\",i=\"1\","
     "j=\"1\",k=\"1\",l=\"1\",n=\"1\",o=\"1\",q=\"1\",r=\"1\",s=\"1\"} 1\n",
     "S m{a=\"1\",b=\"1\",c=\"1\",d=\"1\",e=\"1\",f=\"1\",g=\"1\",h=\"1\",i=\"1\","
     "j=\"1\",k=\"1\",l=\"1\",n=\"1\",o=\"1\",q=\"1\",r=\"1\",s=\"1\"} 1\n"},
};

static void test_valid_cases(void **state)
{
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < sizeof valid_cases / sizeof valid_cases[0]; i++) {
        const struct valid_case *c = &valid_cases[i];
        struct bs_buf out;
        bs_buf_init(&out, 0);
        bs_buf_puts(&out, "");
        render(c->in, strlen(c->in), &out);
        if (strcmp(out.data, c->want) != 0) {
            print_error("case \"%s\":\n--- want\n%s--- got\n%s", c->name, c->want, out.data);
            failures++;
        }
        bs_buf_fini(&out);
    }
    assert_int_equal(failures, 0);
}

/* --------------------------------------------------------- invalid cases */

struct invalid_case {
    const char *in;
    int code;
    const char *where;   /* "line N" or "line N, column C" prefix expected */
    const char *msg;     /* substring expected in the message */
    size_t len;          /* input length when it holds a NUL, else 0 */
};

static const struct invalid_case invalid_cases[] = {
    {"foo{a\"x\"} 1\n", BS_EPARSE, "line 1, column 6:", "expected '=' after label name, got '\"'", 0},
    {"ok 1\nfoo{a=\"x\"\n", BS_EPARSE, "line 2, column 10:",
     "expected ',' or '}' after label value, got end of line", 0},
    {"foo{a=x} 1\n", BS_EPARSE, "line 1, column 7:", "expected '\"' to start the label value", 0},
    {"foo{a=\"x} 1\n", BS_EPARSE, "line 1, column 7:", "not closed", 0},
    {"foo{a=\"x\\\n\"} 1\n", BS_EPARSE, "line 1, column 9:", "backslash at the end of the line", 0},
    {"foo{,} 1\n", BS_EPARSE, "line 1, column 5:", "expected label name or '}', got ','", 0},
    {"foo{a=\"1\",,} 1\n", BS_EPARSE, "line 1, column 11:", "expected label name or '}'", 0},
    {"foo{1a=\"1\"} 1\n", BS_EPARSE, "line 1, column 5:", "expected label name", 0},
    {"foo{a:b=\"1\"} 1\n", BS_EPARSE, "line 1, column 6:", "expected '=' after label name, got ':'", 0},
    {"foo\n", BS_EPARSE, "line 1, column 4:", "expected a value after the metric, got end of line", 0},
    {"foo{} \n", BS_EPARSE, "line 1, column 7:", "expected a value", 0},
    {"foo abc\n", BS_EPARSE, "line 1, column 5:", "invalid value \"abc\"", 0},
    {"foo 0x1p3\n", BS_EPARSE, "line 1", "invalid value", 0},
    {"foo 1_000\n", BS_EPARSE, "line 1", "invalid value \"1_000\"", 0},
    {"foo 1 2 3\n", BS_EPARSE, "line 1, column 9:", "expected the end of the line after the timestamp, got '3'", 0},
    {"foo 1 1.5\n", BS_EPARSE, "line 1, column 8:", "expected the end of the line after the timestamp, got '.'", 0},
    {"foo 1 abc\n", BS_EPARSE, "line 1, column 7:", "expected an integer timestamp", 0},
    {"foo 1 -\n", BS_EPARSE, "line 1, column 7:", "expected an integer timestamp", 0},
    {"foo 1{\n", BS_EPARSE, "line 1, column 6:", "expected an integer timestamp or the end of the line, got '{'", 0},
    {"foo 1 9223372036854775808\n", BS_EPARSE, "line 1, column 7:", "out of the int64 range", 0},
    {"foo 1 -9223372036854775809\n", BS_EPARSE, "line 1", "out of the int64 range", 0},
    {"foo 1\r\n", BS_EPARSE, "line 1", "invalid value", 0},
    {"1foo 1\n", BS_EPARSE, "line 1, column 1:", "expected metric name, '{' or '#'", 0},
    {"a 1\nb 2\n\n-c 3\n", BS_EPARSE, "line 4, column 1:", "got '-'", 0},
    {"foo{a=\"1\",a=\"2\"} 1\n", BS_EPARSE, "line 1:", "duplicate label name \"a\"", 0},
    {"foo{__name__=\"bar\"} 1\n", BS_EPARSE, "line 1:", "duplicate label name \"__name__\"", 0},
    {"foo{\"a\"=\"1\",a=\"2\"} 1\n", BS_EPARSE, "line 1:", "duplicate label name \"a\"", 0},
    {"m{a=\"1\",b=\"1\",c=\"1\",d=\"1\",e=\"1\",f=\"1\",g=\"1\",h=\"1\",i=\"1\","
     "j=\"1\",k=\"1\",l=\"1\",n=\"1\",o=\"1\",q=\"1\",r=\"1\",s=\"1\",h=\"2\"} 1\n",
     BS_EPARSE, "line 1:", "duplicate label name \"h\"", 0},
    {"{a=\"x\"} 1\n", BS_EPARSE, "line 1, column 1:", "metric name is missing", 0},
    {"foo{\"bar\"} 1\n", BS_EPARSE, "line 1, column 5:", "metric name is already set", 0},
    {"{\"a\",\"b\"} 1\n", BS_EPARSE, "line 1, column 6:", "metric name is already set", 0},
    {"foo{a=\"\xff\"} 1\n", BS_EPARSE, "line 1, column 7:", "label value \"\\xff\" is not valid UTF-8", 0},
    {"foo{a=\"\xc0\xaf\"} 1\n", BS_EPARSE, "line 1", "not valid UTF-8", 0},
    {"foo{a=\"\xed\xa0\x80\"} 1\n", BS_EPARSE, "line 1", "not valid UTF-8", 0},
    {"# HELP foo bad \xe2\x82\n", BS_EPARSE, "line 1", "help text", 0},
    {"# TYPE foo bar\n", BS_EPARSE, "line 1, column 12:", "invalid metric type \"bar\"", 0},
    {"# TYPE foo counter \n", BS_EPARSE, "line 1", "invalid metric type \"counter \"", 0},
    {"# TYPE foo\n", BS_EPARSE, "line 1", "invalid metric type \"\"", 0},
    {"# TYPE foo gaugehistogram\n", BS_EPARSE, "line 1", "invalid metric type", 0},
    {"# HELP 9x y\n", BS_EPARSE, "line 1, column 8:", "expected a metric name after HELP, got '9'", 0},
    {"# TYPE \n", BS_EPARSE, "line 1", "expected a metric name after TYPE, got end of line", 0},
    {"# HELP foo-bar x\n", BS_EPARSE, "line 1, column 11:", "expected whitespace after the metric name in HELP", 0},
    {"a 1\n# TYPE \"x\n", BS_EPARSE, "line 2, column 8:", "not closed", 0},
    {"foo\x00 1\n", BS_EPARSE, "line 1, column 4:", "invalid value \"\\x00\"", 7},
    {"\0foo 1\n", BS_EPARSE, "line 1, column 1:", "got byte 0x00", 7},
    {"{\"\"} 1\n", BS_EPARSE, "line 1", "metric name is empty", 0},
    {"# TYPE \"\" counter\nx 1\n", BS_EPARSE, "line 1, column 8:", "metric name is empty", 0},
    {"foo{\"\"=\"v\"} 1\n", BS_EPARSE, "line 1", "label name is empty", 0},
};

static void test_invalid_cases(void **state)
{
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < sizeof invalid_cases / sizeof invalid_cases[0]; i++) {
        const struct invalid_case *c = &invalid_cases[i];
        struct expfmt_parser p;
        struct bs_error err = {0};
        enum expfmt_entry kind;
        int rc;
        size_t len = c->len ? c->len : strlen(c->in);
        expfmt_parser_init(&p, c->in, len);
        while ((rc = expfmt_parser_next(&p, &kind, &err)) == 0 && kind != EXPFMT_EOF)
            ;
        bool ok = rc == c->code && strncmp(err.msg, c->where, strlen(c->where)) == 0 &&
                  strstr(err.msg, c->msg) != NULL;
        if (!ok) {
            print_error("case %zu %s: want %d \"%s ... %s\", got %d \"%s\"\n", i, c->in, c->code,
                        c->where, c->msg, rc, err.msg);
            failures++;
        }
        expfmt_parser_fini(&p);
    }
    assert_int_equal(failures, 0);
}

/* After an error the parser resumes at the next line. */
static void test_resume_after_error(void **state)
{
    (void)state;
    const char *in = "a 1\nbad{\nb 2\n# TYPE x nope\nc 3\n";
    struct bs_buf out;
    bs_buf_init(&out, 0);
    struct expfmt_parser p;
    struct bs_error err = {0};
    enum expfmt_entry kind;
    int errors = 0, series = 0;
    expfmt_parser_init(&p, in, strlen(in));
    for (;;) {
        int rc = expfmt_parser_next(&p, &kind, &err);
        if (rc < 0) {
            assert_int_equal(rc, BS_EPARSE);
            bs_buf_printf(&out, "%zu,", expfmt_parser_lineno(&p));
            errors++;
            continue;
        }
        if (kind == EXPFMT_EOF)
            break;
        assert_int_equal(kind, EXPFMT_SERIES);
        series++;
    }
    assert_int_equal(errors, 2);
    assert_int_equal(series, 3);
    assert_string_equal(out.data, "2,4,");
    /* EOF is sticky. */
    assert_int_equal(expfmt_parser_next(&p, &kind, &err), 0);
    assert_int_equal(kind, EXPFMT_EOF);
    expfmt_parser_fini(&p);
    bs_buf_fini(&out);
}

/* Pointers of one line stay valid together, whether into the input or into
 * scratch, and zero-copy pointers really point into the input. */
static void test_pointers_and_series_text(void **state)
{
    (void)state;
    const char *in = "short 1\nm {a=\"x\\\\1\", b=\"plain\", c=\"y\\\"2\"} 4\n";
    struct expfmt_parser p;
    struct bs_error err = {0};
    enum expfmt_entry kind;
    expfmt_parser_init(&p, in, strlen(in));
    assert_int_equal(expfmt_parser_next(&p, &kind, &err), 0);
    const struct expfmt_series *s = expfmt_parser_series(&p);
    assert_ptr_equal(s->name, in);
    assert_int_equal(s->series_text_len, 5);
    assert_int_equal(expfmt_parser_next(&p, &kind, &err), 0);
    s = expfmt_parser_series(&p);
    assert_int_equal(s->nlabels, 3);
    assert_memory_equal(s->labels[0].value, "x\\1", 3);
    assert_int_equal(s->labels[0].value_len, 3);
    assert_ptr_equal(s->labels[1].value, strstr(in, "plain"));
    assert_memory_equal(s->labels[2].value, "y\"2", 3);
    const char *want_text = "m {a=\"x\\\\1\", b=\"plain\", c=\"y\\\"2\"}";
    assert_int_equal(s->series_text_len, strlen(want_text));
    assert_memory_equal(s->series_text, want_text, strlen(want_text));
    assert_ptr_equal(s->series_text, strchr(in, '\n') + 1);
    assert_false(s->has_timestamp);
    expfmt_parser_fini(&p);
}

/* Values compare exactly (the render above prints only six digits). */
static void test_values_exact(void **state)
{
    (void)state;
    const char *in = "a 123456789012345\nb 12345678901234567\nc 007\nd 0.1\ne -1.5e300\n"
                     "f 4.9e-324\ng NaN\n";
    const double want[] = {123456789012345.0, 12345678901234567.0, 7.0, 0.1, -1.5e300, 4.9e-324};
    struct expfmt_parser p;
    struct bs_error err = {0};
    enum expfmt_entry kind;
    expfmt_parser_init(&p, in, strlen(in));
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        assert_int_equal(expfmt_parser_next(&p, &kind, &err), 0);
        assert_true(expfmt_parser_series(&p)->value == want[i]);
    }
    assert_int_equal(expfmt_parser_next(&p, &kind, &err), 0);
    assert_true(bs_float_bits(expfmt_parser_series(&p)->value) == UINT64_C(0x7ff8000000000001));
    expfmt_parser_fini(&p);
}

static void test_label_limit(void **state)
{
    (void)state;
    struct bs_buf in;
    bs_buf_init(&in, 0);
    bs_buf_puts(&in, "m{");
    for (int i = 0; i < EXPFMT_MAX_LABELS + 1; i++)
        bs_buf_printf(&in, "l%d=\"v\",", i);
    bs_buf_puts(&in, "} 1\n");
    struct expfmt_parser p;
    struct bs_error err = {0};
    enum expfmt_entry kind;
    expfmt_parser_init(&p, in.data, in.len);
    assert_int_equal(expfmt_parser_next(&p, &kind, &err), BS_ELIMIT);
    assert_non_null(strstr(err.msg, "line 1: series has more than 4096 labels"));
    expfmt_parser_fini(&p);

    /* Exactly the limit is fine, and many labels go through the sort path. */
    bs_buf_reset(&in);
    bs_buf_puts(&in, "m{");
    for (int i = 0; i < EXPFMT_MAX_LABELS; i++)
        bs_buf_printf(&in, "l%d=\"v\",", i);
    bs_buf_puts(&in, "} 1\n");
    expfmt_parser_init(&p, in.data, in.len);
    assert_int_equal(expfmt_parser_next(&p, &kind, &err), 0);
    assert_int_equal(expfmt_parser_series(&p)->nlabels, EXPFMT_MAX_LABELS);
    expfmt_parser_fini(&p);

    /* A duplicate among thousands is found. */
    bs_buf_reset(&in);
    bs_buf_puts(&in, "m{");
    for (int i = 0; i < 3000; i++)
        bs_buf_printf(&in, "l%d=\"v\",", i == 2999 ? 1234 : i);
    bs_buf_puts(&in, "} 1\n");
    expfmt_parser_init(&p, in.data, in.len);
    assert_int_equal(expfmt_parser_next(&p, &kind, &err), BS_EPARSE);
    assert_string_equal(err.msg, "line 1: duplicate label name \"l1234\"");
    expfmt_parser_fini(&p);
    bs_buf_fini(&in);
}

/* ----------------------------------------------------------- data files */

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    struct bs_buf b;
    bs_buf_init(&b, 0);
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        bs_buf_append(&b, chunk, n);
    fclose(f);
    if (!b.data)
        bs_buf_puts(&b, "");
    return bs_buf_steal(&b, len);
}

/* Independent counts: lines that are not blank and do not start with '#'
 * are series; "# HELP " / "# TYPE " lines are metadata. Returns the 1-based
 * number of the first line with an OpenMetrics exemplar (" # {"), which the
 * 0.0.4 parser must reject, or 0. */
static size_t count_lines(const char *s, size_t len, size_t *series, size_t *help, size_t *type)
{
    size_t lineno = 0, exemplar = 0;
    *series = *help = *type = 0;
    const char *e = s + len;
    while (s < e) {
        const char *nl = memchr(s, '\n', (size_t)(e - s));
        const char *le = nl ? nl : e;
        lineno++;
        const char *t = s;
        while (t < le && (*t == ' ' || *t == '\t'))
            t++;
        if (t < le && *t != '#') {
            (*series)++;
            if (!exemplar && memmem(t, (size_t)(le - t), " # {", 4))
                exemplar = lineno;
        } else if (le - t > 7 && memcmp(t, "# HELP ", 7) == 0) {
            (*help)++;
        } else if (le - t > 7 && memcmp(t, "# TYPE ", 7) == 0) {
            (*type)++;
        }
        s = nl ? nl + 1 : e;
    }
    return exemplar;
}

static void check_file(const char *path, int *files, int *failures)
{
    size_t len;
    char *data = read_file(path, &len);
    assert_non_null(data);
    size_t want_series, want_help, want_type;
    size_t exemplar_line = count_lines(data, len, &want_series, &want_help, &want_type);

    struct expfmt_parser p;
    struct bs_error err = {0};
    enum expfmt_entry kind;
    size_t series = 0, help = 0, type = 0, typed = 0;
    int rc;
    expfmt_parser_init(&p, data, len);
    while ((rc = expfmt_parser_next(&p, &kind, &err)) == 0 && kind != EXPFMT_EOF) {
        series += kind == EXPFMT_SERIES;
        help += kind == EXPFMT_HELP;
        type += kind == EXPFMT_TYPE;
        if (kind == EXPFMT_SERIES && expfmt_parser_series(&p)->type != EXPFMT_TYPE_UNKNOWN)
            typed++;
    }
    (*files)++;
    if (exemplar_line) {
        /* OpenMetrics exemplars are not 0.0.4 syntax: the parse must stop
         * exactly there. */
        char where[64];
        snprintf(where, sizeof where, "line %zu,", exemplar_line);
        if (rc != BS_EPARSE || strncmp(err.msg, where, strlen(where)) != 0) {
            print_error("%s: want an error on line %zu, got %d \"%s\"\n", path, exemplar_line, rc,
                        err.msg);
            (*failures)++;
        }
    } else if (rc != 0 || series != want_series || help != want_help || type != want_type ||
               (want_type > 0 && typed == 0) || (want_type == 0 && typed != 0)) {
        print_error("%s: rc %d \"%s\"; series %zu/%zu help %zu/%zu type %zu/%zu typed %zu\n",
                    path, rc, err.msg, series, want_series, help, want_help, type, want_type,
                    typed);
        (*failures)++;
    } else {
        print_message("%s: %zu series, %zu HELP, %zu TYPE, %zu typed\n", path, series, help, type,
                      typed);
    }
    expfmt_parser_fini(&p);
    free(data);
}

static void check_dir(const char *dir, int *files, int *failures)
{
    DIR *d = opendir(dir);
    if (!d)
        fail_msg("test data directory %s is missing (run from the repository root)", dir);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n < 4 || strcmp(de->d_name + n - 4, ".txt") != 0)
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        check_file(path, files, failures);
    }
    closedir(d);
}

static void test_testdata_files(void **state)
{
    (void)state;
    int files = 0, failures = 0;
    check_dir(TESTDATA_DIR, &files, &failures);
    check_dir(TESTDATA_DIR "/legacy", &files, &failures);
    assert_int_equal(failures, 0);
    assert_true(files >= 7);
}

/* The big file once more, with exact figures checked by hand with grep. */
static void test_alltypes_exact(void **state)
{
    (void)state;
    size_t len;
    char *data = read_file(TESTDATA_DIR "/alltypes.237mfs.prom.txt", &len);
    assert_non_null(data);
    struct expfmt_parser p;
    struct bs_error err = {0};
    enum expfmt_entry kind;
    size_t types = 0, last_line = 0;
    expfmt_parser_init(&p, data, len);
    int rc;
    while ((rc = expfmt_parser_next(&p, &kind, &err)) == 0 && kind != EXPFMT_EOF) {
        types += kind == EXPFMT_TYPE;
        last_line = expfmt_parser_lineno(&p);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(types, 237);
    assert_int_equal(last_line, 2332);
    expfmt_parser_fini(&p);
    free(data);
}

/* ---------------------------------------------------------------- writer */

struct rt_case {
    struct label l[4];
    size_t n;
    double v;
    int64_t t;
    const char *want;
};

static void test_writer_roundtrip(void **state)
{
    (void)state;
    static const struct rt_case cases[] = {
        {{{"__name__", "up"}}, 1, 1, EXPFMT_NO_TIMESTAMP, "up 1\n"},
        {{{"__name__", "up"}, {"instance", "a:9090"}, {"job", "x"}}, 3, 0.5, 1700000000000,
         "up{instance=\"a:9090\",job=\"x\"} 0.5 1700000000000\n"},
        {{{"A", "cap"}, {"__name__", "m"}, {"b", "q\"\\\n"}}, 3, -2, -7,
         "m{A=\"cap\",b=\"q\\\"\\\\\\n\"} -2 -7\n"},
        {{{"__name__", "my.metric"}, {"my.label", "v"}}, 2, 1e-5, 0,
         "{\"my.metric\",\"my.label\"=\"v\"} 1e-05 0\n"},
        {{{"__name__", "m"}, {"e", ""}}, 2, INFINITY, EXPFMT_NO_TIMESTAMP, "m +Inf\n"},
        {{{"__name__", "m"}}, 1, -INFINITY, EXPFMT_NO_TIMESTAMP, "m -Inf\n"},
        {{{"__name__", "m"}}, 1, NAN, EXPFMT_NO_TIMESTAMP, "m NaN\n"},
        {{{"__name__", "m"}}, 1, 123456789.25, EXPFMT_NO_TIMESTAMP, NULL},
    };
    struct bs_buf b;
    bs_buf_init(&b, 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct rt_case *c = &cases[i];
        struct labels ls = {(struct label *)c->l, c->n};
        bs_buf_reset(&b);
        assert_int_equal(expfmt_write_series(&b, &ls, c->v, c->t), 0);
        if (c->want)
            assert_string_equal(b.data, c->want);

        struct expfmt_parser p;
        struct bs_error err = {0};
        enum expfmt_entry kind;
        expfmt_parser_init(&p, b.data, b.len);
        if (expfmt_parser_next(&p, &kind, &err) != 0)
            fail_msg("case %zu: %s: %s", i, b.data, err.msg);
        assert_int_equal(kind, EXPFMT_SERIES);
        const struct expfmt_series *s = expfmt_parser_series(&p);
        size_t j = 0;
        for (size_t k = 0; k < c->n; k++) {
            if (strcmp(c->l[k].name, "__name__") == 0) {
                assert_int_equal(s->name_len, strlen(c->l[k].value));
                assert_memory_equal(s->name, c->l[k].value, s->name_len);
                continue;
            }
            if (!c->l[k].value[0])
                continue;
            assert_true(j < s->nlabels);
            assert_int_equal(s->labels[j].name_len, strlen(c->l[k].name));
            assert_memory_equal(s->labels[j].name, c->l[k].name, s->labels[j].name_len);
            assert_int_equal(s->labels[j].value_len, strlen(c->l[k].value));
            assert_memory_equal(s->labels[j].value, c->l[k].value, s->labels[j].value_len);
            j++;
        }
        assert_int_equal(j, s->nlabels);
        if (isnan(c->v))
            assert_true(isnan(s->value));
        else
            assert_true(s->value == c->v);
        assert_int_equal(s->has_timestamp, c->t != EXPFMT_NO_TIMESTAMP);
        if (s->has_timestamp)
            assert_int_equal(s->timestamp_ms, c->t);
        assert_int_equal(expfmt_parser_next(&p, &kind, &err), 0);
        assert_int_equal(kind, EXPFMT_EOF);
        expfmt_parser_fini(&p);
    }
    bs_buf_fini(&b);
}

static void test_writer_errors(void **state)
{
    (void)state;
    struct label nameless[] = {{"job", "x"}};
    struct labels ls = {nameless, 1};
    struct bs_buf b;
    bs_buf_init(&b, 0);
    assert_int_equal(expfmt_write_series(&b, &ls, 1, EXPFMT_NO_TIMESTAMP), BS_EINVAL);
    assert_int_equal(b.len, 0);

    /* A capped buffer that overflows mid-line is rolled back. */
    struct label l[] = {{"__name__", "metric_with_a_long_name"}, {"job", "xxxxxxxxxxxxxxxx"}};
    struct labels ls2 = {l, 2};
    struct bs_buf small;
    bs_buf_init(&small, 80);
    assert_int_equal(expfmt_write_series(&small, &ls2, 1, EXPFMT_NO_TIMESTAMP), 0);
    size_t first = small.len;
    assert_int_equal(expfmt_write_series(&small, &ls2, 1, EXPFMT_NO_TIMESTAMP), BS_ELIMIT);
    assert_int_equal(small.len, first);
    assert_int_equal(strlen(small.data), first);
    bs_buf_fini(&small);
    bs_buf_fini(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_cases),
        cmocka_unit_test(test_invalid_cases),
        cmocka_unit_test(test_resume_after_error),
        cmocka_unit_test(test_pointers_and_series_text),
        cmocka_unit_test(test_values_exact),
        cmocka_unit_test(test_label_limit),
        cmocka_unit_test(test_testdata_files),
        cmocka_unit_test(test_alltypes_exact),
        cmocka_unit_test(test_writer_roundtrip),
        cmocka_unit_test(test_writer_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
