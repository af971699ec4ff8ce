/* SPDX-License-Identifier: Apache-2.0
 *
 * Unit tests of the OpenMetrics 1.0 parser: a table of valid documents with
 * the entries they must produce (rendered one per line), a table of invalid
 * documents with their exact error messages (line, column, what was
 * expected), and focused checks of exemplars, _created samples, units,
 * timestamp conversion, NaN canonicalisation, label-array growth across the
 * exemplar, repeated calls after an error, and that the 0.0.4 parser is
 * unchanged by the format selector.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expfmt/expfmt.h"

/* ------------------------------------------------------------- rendering */

static void put_esc(struct bs_buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\')
            bs_buf_puts(b, "\\\\");
        else if (s[i] == '"')
            bs_buf_puts(b, "\\\"");
        else if (s[i] == '\n')
            bs_buf_puts(b, "\\n");
        else if (s[i] == '\0')
            bs_buf_puts(b, "\\0");
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
        bs_buf_printf(b, "%.17g", v);
}

static void put_labels(struct bs_buf *b, const struct expfmt_label *l, size_t n)
{
    bs_buf_putc(b, '{');
    for (size_t i = 0; i < n; i++) {
        if (i)
            bs_buf_putc(b, ',');
        put_esc(b, l[i].name, l[i].name_len);
        bs_buf_puts(b, "=\"");
        put_esc(b, l[i].value, l[i].value_len);
        bs_buf_putc(b, '"');
    }
    bs_buf_putc(b, '}');
}

/* One line per entry:
 *   S name{labels} value[ @ts] type family=F[ unit=U][ created][ # {labels} v[ @ts]]
 *   H name text      T name type
 * then "EOF", or "E <code> <message>" at the first error. */
static void render(const char *in, size_t len, struct bs_buf *out)
{
    struct expfmt_parser p;
    struct bs_error err = {0};
    enum expfmt_entry kind;
    int rc;
    bs_buf_puts(out, "");
    expfmt_parser_init_format(&p, in, len, EXPFMT_FORMAT_OPENMETRICS);
    while ((rc = expfmt_parser_next(&p, &kind, &err)) == 0 && kind != EXPFMT_EOF) {
        const char *a, *t;
        size_t an, tn;
        enum expfmt_metric_type ty;
        if (kind == EXPFMT_SERIES) {
            const struct expfmt_series *s = expfmt_parser_series(&p);
            bs_buf_puts(out, "S ");
            put_esc(out, s->name, s->name_len);
            if (s->nlabels)
                put_labels(out, s->labels, s->nlabels);
            bs_buf_putc(out, ' ');
            put_value(out, s->value);
            if (s->has_timestamp)
                bs_buf_printf(out, " @%lld", (long long)s->timestamp_ms);
            bs_buf_printf(out, " %s family=%.*s", expfmt_metric_type_name(s->type),
                          (int)s->family_len, s->family);
            expfmt_parser_unit(&p, NULL, NULL, &t, &tn);
            if (tn)
                bs_buf_printf(out, " unit=%.*s", (int)tn, t);
            if (s->created)
                bs_buf_puts(out, " created");
            if (s->has_exemplar) {
                bs_buf_puts(out, " # ");
                put_labels(out, s->exemplar.labels, s->exemplar.nlabels);
                bs_buf_putc(out, ' ');
                put_value(out, s->exemplar.value);
                if (s->exemplar.has_timestamp)
                    bs_buf_printf(out, " @%lld", (long long)s->exemplar.timestamp_ms);
            }
        } else if (kind == EXPFMT_HELP) {
            expfmt_parser_help(&p, &a, &an, &t, &tn);
            bs_buf_puts(out, "H ");
            put_esc(out, a, an);
            bs_buf_putc(out, ' ');
            put_esc(out, t, tn);
        } else if (kind == EXPFMT_TYPE) {
            expfmt_parser_type(&p, &a, &an, &ty);
            bs_buf_puts(out, "T ");
            put_esc(out, a, an);
            bs_buf_printf(out, " %s", expfmt_metric_type_name(ty));
        } else {
            bs_buf_puts(out, "? unexpected entry kind");
        }
        bs_buf_putc(out, '\n');
    }
    if (rc < 0)
        bs_buf_printf(out, "E %d %s\n", rc, err.msg);
    else
        bs_buf_puts(out, "EOF\n");
    expfmt_parser_fini(&p);
}

/* ----------------------------------------------------------- valid cases */

struct om_case {
    const char *name;
    const char *in;
    const char *want;
};

static const struct om_case valid_cases[] = {
    {"only eof", "# EOF\n", "EOF\n"},
    {"eof without newline", "# EOF", "EOF\n"},
    {"untyped sample", "a 1\n# EOF\n", "S a 1 unknown family=a\nEOF\n"},
    {"counter with created, unit and exemplar",
     "# HELP c_seconds Time.\n# TYPE c_seconds counter\n# UNIT c_seconds seconds\n"
     "c_seconds_total{a=\"x\"} 1.5 # {trace_id=\"abc\"} 0.25 1.5\n"
     "c_seconds_created{a=\"x\"} 1700000000.123\n# EOF\n",
     "H c_seconds Time.\nT c_seconds counter\n"
     "S c_seconds_total{a=\"x\"} 1.5 counter family=c_seconds unit=seconds "
     "# {trace_id=\"abc\"} 0.25 @1500\n"
     "S c_seconds_created{a=\"x\"} 1700000000.1229999 counter family=c_seconds unit=seconds "
     "created\nEOF\n"},
    {"exemplar after timestamp, empty exemplar labels",
     "# TYPE a counter\na_total 2 10 # {} NaN\n# EOF\n",
     "T a counter\nS a_total 2 @10000 counter family=a # {} NaN\nEOF\n"},
    {"histogram with exemplars and created",
     "# TYPE h histogram\nh_bucket{le=\"0.5\"} 1 # {id=\"1\"} 0.3\n"
     "h_bucket{le=\"+Inf\"} 2 # {id=\"2\"} 7 12\nh_count 2\nh_sum 7.3\nh_created 5\n# EOF\n",
     "T h histogram\nS h_bucket{le=\"0.5\"} 1 histogram family=h # {id=\"1\"} 0.29999999999999999\n"
     "S h_bucket{le=\"+Inf\"} 2 histogram family=h # {id=\"2\"} 7 @12000\n"
     "S h_count 2 histogram family=h\nS h_sum 7.2999999999999998 histogram family=h\n"
     "S h_created 5 histogram family=h created\nEOF\n"},
    {"histogram groups each contiguous",
     "# TYPE h histogram\nh_bucket{x=\"1\",le=\"+Inf\"} 0\nh_bucket{x=\"2\",le=\"+Inf\"} 0\n"
     "# EOF\n",
     "T h histogram\nS h_bucket{x=\"1\",le=\"+Inf\"} 0 histogram family=h\n"
     "S h_bucket{x=\"2\",le=\"+Inf\"} 0 histogram family=h\nEOF\n"},
    {"gaugehistogram with negative buckets and gsum",
     "# TYPE g gaugehistogram\ng_bucket{le=\"-1\"} 1\ng_bucket{le=\"+Inf\"} 2\ng_gcount 2\n"
     "g_gsum -3\n# EOF\n",
     "T g gaugehistogram\nS g_bucket{le=\"-1\"} 1 gaugehistogram family=g\n"
     "S g_bucket{le=\"+Inf\"} 2 gaugehistogram family=g\nS g_gcount 2 gaugehistogram family=g\n"
     "S g_gsum -3 gaugehistogram family=g\nEOF\n"},
    {"summary",
     "# TYPE s summary\ns{quantile=\"0.5\"} NaN\ns{quantile=\"1\"} 3\ns_sum 4\ns_count 2\n"
     "s_created 1\n# EOF\n",
     "T s summary\nS s{quantile=\"0.5\"} NaN summary family=s\n"
     "S s{quantile=\"1\"} 3 summary family=s\nS s_sum 4 summary family=s\n"
     "S s_count 2 summary family=s\nS s_created 1 summary family=s created\nEOF\n"},
    {"stateset and info",
     "# TYPE st stateset\nst{st=\"a\"} 1\nst{st=\"b\"} 0\n# TYPE i info\n"
     "i_info{v=\"1\"} 1 2\ni_info{v=\"2\"} 1 1\n# EOF\n",
     "T st stateset\nS st{st=\"a\"} 1 stateset family=st\nS st{st=\"b\"} 0 stateset family=st\n"
     "T i info\nS i_info{v=\"1\"} 1 @2000 info family=i\nS i_info{v=\"2\"} 1 @1000 info family=i\n"
     "EOF\n"},
    {"unit on gauge and empty unit",
     "# TYPE a_bytes gauge\n# UNIT a_bytes bytes\na_bytes 1\n# UNIT b \nb 2\n# EOF\n",
     "T a_bytes gauge\nS a_bytes 1 gauge family=a_bytes unit=bytes\n"
     "S b 2 unknown family=b\nEOF\n"},
    {"help escapes", "# HELP a x\\\"y\\\\z\\nw\\q\\\n# EOF\n",
     "H a x\\\"y\\\\z\\nw\\\\q\\\\\nEOF\n"},
    {"empty help and NUL in help", "# HELP a \n# HELP b x\0y\n# EOF\n",
     "H a \nH b x\\0y\nEOF\n"},
    {"label escapes and hashes",
     "a{x=\"q\\\"b\\\\s\\nn\\z # }\",y=\"\"} 1\n# EOF\n",
     "S a{x=\"q\\\"b\\\\s\\nn\\\\z # }\",y=\"\"} 1 unknown family=a\nEOF\n"},
    {"number forms",
     "a 1e3\nb -2.5E-3\nc +4\nd .5\ne 1.\nf +Inf\ng -inf\nh Infinity\ni nan\n# EOF\n",
     "S a 1000 unknown family=a\nS b -0.0025000000000000001 unknown family=b\n"
     "S c 4 unknown family=c\nS d 0.5 unknown family=d\nS e 1 unknown family=e\n"
     "S f +Inf unknown family=f\nS g -Inf unknown family=g\nS h +Inf unknown family=h\n"
     "S i NaN unknown family=i\nEOF\n"},
    {"timestamps to milliseconds",
     "a 1 1.5\nb 1 -1.5\nc 1 1e3\nd 1 0.0009\ne 1 12345678901234567890.5\nf 1 -1e300\n"
     "# EOF\n",
     "S a 1 @1500 unknown family=a\nS b 1 @-1500 unknown family=b\n"
     "S c 1 @1000000 unknown family=c\nS d 1 @0 unknown family=d\n"
     "S e 1 @9223372036854775807 unknown family=e\n"
     "S f 1 @-9223372036854775808 unknown family=f\nEOF\n"},
    {"equal timestamps in a group", "a 1 5\na 2 5\na 3 6\n# EOF\n",
     "S a 1 @5000 unknown family=a\nS a 2 @5000 unknown family=a\n"
     "S a 3 @6000 unknown family=a\nEOF\n"},
    {"metadata only families", "# HELP a x\n# TYPE b gauge\n# UNIT c_s s\n# EOF\n",
     "H a x\nT b gauge\nEOF\n"},
    {"samples without metadata are their own families",
     "x_total 1\nx_created 2\n# EOF\n",
     "S x_total 1 unknown family=x_total\nS x_created 2 unknown family=x_created\nEOF\n"},
};

static void test_valid_cases(void **state)
{
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < sizeof valid_cases / sizeof valid_cases[0]; i++) {
        const struct om_case *c = &valid_cases[i];
        struct bs_buf out;
        bs_buf_init(&out, 0);
        /* The NUL case needs its real length: find the "# EOF" end. */
        size_t len = strlen(c->in);
        if (strstr(c->name, "NUL"))
            len += strlen(c->in + len + 1) + 1;
        render(c->in, len, &out);
        if (strcmp(out.data, c->want) != 0) {
            print_error("case \"%s\":\n--- want\n%s--- got\n%s", c->name, c->want, out.data);
            failures++;
        }
        bs_buf_fini(&out);
    }
    assert_int_equal(failures, 0);
}

/* --------------------------------------------------------- invalid cases */

/* Each input must fail with exactly this message (after the entries before
 * it, which are not compared). */
static const struct om_case invalid_cases[] = {
    {"empty input", "", "line 1: expected \"# EOF\" as the last line, got the end of the input"},
    {"no eof", "a 1\n", "line 2: expected \"# EOF\" as the last line, got the end of the input"},
    {"no eof, no newline", "a 1",
     "line 1: expected \"# EOF\" as the last line, got the end of the input"},
    {"blank line", "a 1\n\n# EOF\n", "line 2: blank line; OpenMetrics allows none"},
    {"text after eof", "# EOF\nx", "line 2: text after \"# EOF\", which must be the last line"},
    {"newline after eof", "# EOF\n\n", "line 2: text after \"# EOF\", which must be the last line"},
    {"eof with trailing space", "# EOF \n",
     "line 1, column 6: expected the end of the line after \"# EOF\", got ' '"},
    {"comment", "# hello world\n# EOF\n",
     "line 1, column 3: expected HELP, TYPE, UNIT or EOF after \"# \" (OpenMetrics has no "
     "comments), got \"hello\""},
    {"hash without space", "#TYPE a gauge\n# EOF\n",
     "line 1, column 2: expected ' ' after '#' (OpenMetrics has no comments), got 'T'"},
    {"leading space", " a 1\n# EOF\n",
     "line 1, column 1: expected a metric name or '#' at the start of the line, got ' '"},
    {"untyped", "# TYPE a untyped\n# EOF\n",
     "line 1, column 10: expected counter, gauge, histogram, gaugehistogram, summary, info, "
     "stateset or unknown (\"untyped\" is 0.0.4 only), got \"untyped\""},
    {"help without text separator", "# HELP a\n# EOF\n",
     "line 1, column 9: expected ' ' and the help text after the metric name, got end of line"},
    {"bad metadata name", "# TYPE 1a gauge\n# EOF\n",
     "line 1, column 8: expected a metric name after TYPE, got '1'"},
    {"unit not a suffix", "# UNIT a_seconds bytes\n# EOF\n",
     "line 1, column 18: the metric family name must end in '_' and its unit, got unit \"bytes\""},
    {"unit must follow an underscore", "# UNIT abytes bytes\n# EOF\n",
     "line 1, column 15: the metric family name must end in '_' and its unit, got unit \"bytes\""},
    {"unit on info", "# UNIT a_b b\n# TYPE a_b info\n# EOF\n",
     "line 2: metric family \"a_b\" of type info cannot have a unit"},
    {"repeated help", "# HELP a x\n# HELP a y\n# EOF\n",
     "line 2: second HELP line for metric family \"a\""},
    {"metadata after samples", "# TYPE a gauge\na 1\n# HELP a x\n# EOF\n",
     "line 3: HELP for metric family \"a\" after its samples; metadata must come first"},
    {"family appears twice", "a 1\nb 1\na 2\n# EOF\n",
     "line 4: metric family \"a\" (line 3) uses the name \"a\", which the family starting at line "
     "1 already used; a family must be contiguous and its names unique"},
    {"counter sample without suffix", "# TYPE a counter\na 1\n# EOF\n",
     "line 3: metric family \"a\" (line 2) uses the name \"a\", which the family starting at line "
     "1 already used; a family must be contiguous and its names unique"},
    {"double space before value", "a  1\n# EOF\n",
     "line 1, column 3: expected a value, got ' '"},
    {"tab separator", "a\t1\n# EOF\n",
     "line 1, column 2: expected '{' or ' ' and a value after the metric name, got tab"},
    {"trailing space", "a 1 \n# EOF\n",
     "line 1, column 5: expected a timestamp or '#', got end of line"},
    {"space inside labels", "a{x=\"1\", y=\"2\"} 1\n# EOF\n",
     "line 1, column 9: expected a label name, got ' '"},
    {"trailing comma", "a{x=\"1\",} 1\n# EOF\n",
     "line 1, column 9: expected a label name, got '}'"},
    {"no space after labels", "a{x=\"1\"}1\n# EOF\n",
     "line 1, column 9: expected ' ' and a value after the labels, got '1'"},
    {"quoted metric name", "{\"a.b\"} 1\n# EOF\n",
     "line 1, column 1: expected a metric name or '#' at the start of the line, got '{'"},
    {"hex value", "a 0x10\n# EOF\n", "line 1, column 3: invalid value \"0x10\""},
    {"signed nan", "a -NaN\n# EOF\n", "line 1, column 3: invalid value \"-NaN\""},
    {"bare dot", "a .\n# EOF\n", "line 1, column 3: invalid value \".\""},
    {"exponent without digits", "a 1e\n# EOF\n", "line 1, column 3: invalid value \"1e\""},
    {"inf timestamp", "a 1 +Inf\n# EOF\n",
     "line 1, column 5: invalid timestamp (float seconds, not NaN or Inf) \"+Inf\""},
    {"timestamps backwards", "a 1 2\na 1 1.5\n# EOF\n",
     "line 2: sample \"a\" has a timestamp before the previous one of its group"},
    {"timestamp presence mixed", "a{x=\"1\"} 1 2\na{x=\"1\"} 1\n# EOF\n",
     "line 2: sample \"a{x=\"1\"}\" mixes samples with and without timestamps within one group"},
    {"label order does not make a new group",
     "a{x=\"1\",y=\"2\"} 1 2\na{y=\"2\",x=\"1\"} 1 1\n# EOF\n",
     "line 2: sample \"a{y=\"2\",x=\"1\"}\" has a timestamp before the previous one of its group"},
    {"label order with many labels",
     "a{a=\"1\",b=\"1\",c=\"1\",d=\"1\",e=\"1\",f=\"1\",g=\"1\",h=\"1\",i=\"1\"} 1 2\n"
     "a{i=\"1\",h=\"1\",g=\"1\",f=\"1\",e=\"1\",d=\"1\",c=\"1\",b=\"1\",a=\"1\"} 1\n# EOF\n",
     "line 2: sample "
     "\"a{i=\"1\",h=\"1\",g=\"1\",f=\"1\",e=\"1\",d=\"1\",c=\"1\",b=\"1\",a=\"1\"}\" "
     "mixes samples with and without timestamps within one group"},
    {"group reappears",
     "# TYPE h histogram\nh_bucket{x=\"1\",le=\"+Inf\"} 0\nh_bucket{x=\"2\",le=\"+Inf\"} 0\n"
     "h_bucket{x=\"1\",le=\"+Inf\"} 0\n# EOF\n",
     "line 4: sample \"h_bucket{x=\"1\",le=\"+Inf\"}\" belongs to the group that started at line "
     "2; the samples of a group must be contiguous"},
    {"gauge group reappears", "a{x=\"1\"} 1\na{x=\"2\"} 1\na{x=\"1\"} 1\n# EOF\n",
     "line 3: sample \"a{x=\"1\"}\" belongs to the group that started at line 1; the samples of a "
     "group must be contiguous"},
    {"negative counter", "# TYPE a counter\na_total -1\n# EOF\n",
     "line 2: sample \"a_total\" is counter-like and must not be negative"},
    {"missing inf bucket", "# TYPE h histogram\nh_bucket{le=\"1\"} 0\n# EOF\n",
     "line 3: histogram \"h\": the group starting at line 2 has no le=\"+Inf\" bucket"},
    {"count mismatch", "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_count 3\nh_sum 1\n# EOF\n",
     "line 5: histogram \"h\": the group starting at line 2 has _count 3 but its +Inf bucket is 2"},
    {"inf spelled Inf in le", "# TYPE h histogram\nh_bucket{le=\"Inf\"} 0\n# EOF\n",
     "line 2: sample \"h_bucket{le=\"Inf\"}\" has an invalid le label: a number, not NaN, "
     "infinity as \"+Inf\""},
    {"buckets out of order",
     "# TYPE h histogram\nh_bucket{le=\"2\"} 0\nh_bucket{le=\"1\"} 0\n# EOF\n",
     "line 3: sample \"h_bucket{le=\"1\"}\" has an le not greater than the previous bucket's"},
    {"quantile out of range", "# TYPE s summary\ns{quantile=\"2\"} 1\n# EOF\n",
     "line 2: sample \"s{quantile=\"2\"}\" has an invalid quantile label: a number from 0 to 1"},
    {"stateset value", "# TYPE s stateset\ns{s=\"a\"} 0.5\n# EOF\n",
     "line 2: sample \"s{s=\"a\"}\" of a stateset must have the value 0 or 1"},
    {"exemplar on gauge", "# TYPE g gauge\ng 1 # {a=\"b\"} 1\n# EOF\n",
     "line 2: sample \"g\" has an exemplar; only counter _total and histogram _bucket samples may "
     "have one"},
    {"exemplar too long",
     "# TYPE a counter\na_total 1 # {id=\"1234567890123456789012345678901234567890123456789012345"
     "678901234567890123456789012345678901234567890123456789012345678901234567\"} 1\n# EOF\n",
     "line 2, column 13: exemplar labels have 129 characters of names and values, more than the "
     "128 allowed"},
    {"exemplar duplicate label", "# TYPE a counter\na_total 1 # {x=\"1\",x=\"2\"} 1\n# EOF\n",
     "line 2: duplicate label name \"x\""},
    {"exemplar without value", "# TYPE a counter\na_total 1 # {x=\"1\"}\n# EOF\n",
     "line 2, column 20: expected ' ' and a value after the exemplar's labels, got end of line"},
    {"exemplar trailing text", "# TYPE a counter\na_total 1 # {} 1 2 3\n# EOF\n",
     "line 2, column 19: expected the end of the line after the exemplar, got ' '"},
    {"invalid utf8 label value", "a{x=\"\xff\"} 1\n# EOF\n",
     "line 1, column 5: label value \"\\xff\" is not valid UTF-8"},
    {"clash with a reserved suffix", "# TYPE a_total gauge\n# TYPE a counter\n# EOF\n",
     "line 3: metric family \"a\" (line 2) uses the name \"a_total\", which the family starting "
     "at line 1 already used; a family must be contiguous and its names unique"},
};

static void test_invalid_cases(void **state)
{
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < sizeof invalid_cases / sizeof invalid_cases[0]; i++) {
        const struct om_case *c = &invalid_cases[i];
        struct bs_buf out;
        bs_buf_init(&out, 0);
        render(c->in, strlen(c->in), &out);
        /* The last line of the render is the verdict. */
        out.data[out.len - 1] = '\0';
        const char *last = strrchr(out.data, '\n');
        last = last ? last + 1 : out.data;
        char want[1024];
        snprintf(want, sizeof want, "E %d %s", BS_EPARSE, c->want);
        if (strcmp(last, want) != 0) {
            print_error("case \"%s\":\n  want %s\n  got  %s\n", c->name, want, last);
            failures++;
        }
        bs_buf_fini(&out);
    }
    assert_int_equal(failures, 0);
}

/* ------------------------------------------------------- focused checks */

/* NaN values and exemplar values are the one canonical NaN; stale-marker
 * bits in the input text cannot be produced. */
static void test_nan_canonical(void **state)
{
    (void)state;
    const char *in = "# TYPE a counter\na_total 1 # {} NaN\nb NaN\n# EOF\n";
    struct expfmt_parser p;
    enum expfmt_entry k;
    expfmt_parser_init_format(&p, in, strlen(in), EXPFMT_FORMAT_OPENMETRICS);
    assert_int_equal(expfmt_parser_next(&p, &k, NULL), 0);
    assert_int_equal(k, EXPFMT_TYPE);
    assert_int_equal(expfmt_parser_next(&p, &k, NULL), 0);
    const struct expfmt_series *s = expfmt_parser_series(&p);
    assert_true(s->has_exemplar);
    assert_true(bs_float_bits(s->exemplar.value) == UINT64_C(0x7ff8000000000001));
    assert_int_equal(expfmt_parser_next(&p, &k, NULL), 0);
    assert_true(bs_float_bits(s->value) == UINT64_C(0x7ff8000000000001));
    assert_int_equal(expfmt_parser_next(&p, &k, NULL), 0);
    assert_int_equal(k, EXPFMT_EOF);
    expfmt_parser_fini(&p);
}

/* Series labels fill the label array up to its first capacity and the
 * exemplar's labels make it grow: both views must stay valid. */
static void test_labels_grow_in_exemplar(void **state)
{
    (void)state;
    struct bs_buf in;
    bs_buf_init(&in, 0);
    bs_buf_puts(&in, "# TYPE a counter\na_total{");
    for (int i = 0; i < 15; i++)
        bs_buf_printf(&in, "%sl%d=\"v%d\"", i ? "," : "", i, i);
    bs_buf_puts(&in, "} 1 # {e0=\"x\",e1=\"y\",e2=\"z\"} 2\n# EOF\n");
    struct expfmt_parser p;
    enum expfmt_entry k;
    struct bs_error err = {0};
    expfmt_parser_init_format(&p, in.data, in.len, EXPFMT_FORMAT_OPENMETRICS);
    assert_int_equal(expfmt_parser_next(&p, &k, &err), 0);
    assert_int_equal(expfmt_parser_next(&p, &k, &err), 0);
    assert_int_equal(k, EXPFMT_SERIES);
    const struct expfmt_series *s = expfmt_parser_series(&p);
    assert_int_equal(s->nlabels, 15);
    assert_memory_equal(s->labels[14].name, "l14", 3);
    assert_memory_equal(s->labels[14].value, "v14", 3);
    assert_true(s->has_exemplar);
    assert_int_equal(s->exemplar.nlabels, 3);
    assert_true(s->exemplar.labels == s->labels + 15);
    assert_memory_equal(s->exemplar.labels[2].name, "e2", 2);
    assert_memory_equal(s->exemplar.labels[2].value, "z", 1);
    assert_true(s->exemplar.value == 2);
    assert_int_equal(expfmt_parser_next(&p, &k, &err), 0);
    assert_int_equal(k, EXPFMT_EOF);
    expfmt_parser_fini(&p);
    bs_buf_fini(&in);
}

/* After an error the parser can be called again; the end is reported once
 * and then EXPFMT_EOF forever, so a checker loop terminates. */
static void test_continue_after_errors(void **state)
{
    (void)state;
    const char *in = "a 1\n\nb x\nc 2\n";
    struct expfmt_parser p;
    enum expfmt_entry k;
    struct bs_error err;
    int errors = 0, series = 0;
    expfmt_parser_init_format(&p, in, strlen(in), EXPFMT_FORMAT_OPENMETRICS);
    for (int i = 0; i < 20; i++) {
        int rc = expfmt_parser_next(&p, &k, &err);
        if (rc < 0)
            errors++;
        else if (k == EXPFMT_SERIES)
            series++;
    }
    assert_int_equal(errors, 3); /* blank line, bad value, missing # EOF */
    assert_int_equal(series, 2);
    assert_int_equal(expfmt_parser_next(&p, &k, &err), 0);
    assert_int_equal(k, EXPFMT_EOF);
    expfmt_parser_fini(&p);
}

/* The 0.0.4 format is the default and ignores OpenMetrics rules; the
 * explicit selector means the same. */
static void test_text_format_unchanged(void **state)
{
    (void)state;
    const char *in = "# EOF\na 1\n\nb 2\n";
    for (int mode = 0; mode < 2; mode++) {
        struct expfmt_parser p;
        enum expfmt_entry k;
        if (mode == 0)
            expfmt_parser_init(&p, in, strlen(in));
        else
            expfmt_parser_init_format(&p, in, strlen(in), EXPFMT_FORMAT_TEXT);
        assert_int_equal(expfmt_parser_next(&p, &k, NULL), 0);
        assert_int_equal(k, EXPFMT_COMMENT);
        assert_int_equal(expfmt_parser_next(&p, &k, NULL), 0);
        assert_int_equal(k, EXPFMT_SERIES);
        assert_null(expfmt_parser_series(&p)->family);
        assert_false(expfmt_parser_series(&p)->has_exemplar);
        assert_int_equal(expfmt_parser_next(&p, &k, NULL), 0);
        assert_int_equal(k, EXPFMT_SERIES);
        assert_int_equal(expfmt_parser_next(&p, &k, NULL), 0);
        assert_int_equal(k, EXPFMT_EOF);
        const char *f, *u;
        size_t fl, ul;
        expfmt_parser_unit(&p, &f, &fl, &u, &ul);
        assert_int_equal(fl, 0);
        assert_int_equal(ul, 0);
        expfmt_parser_fini(&p);
    }
}

/* The unit is visible from the TYPE entry on (metadata order is free). */
static void test_unit_accessor(void **state)
{
    (void)state;
    const char *in = "# UNIT x_seconds seconds\n# TYPE x_seconds gauge\n# EOF\n";
    struct expfmt_parser p;
    enum expfmt_entry k;
    const char *f, *u;
    size_t fl, ul;
    expfmt_parser_init_format(&p, in, strlen(in), EXPFMT_FORMAT_OPENMETRICS);
    assert_int_equal(expfmt_parser_next(&p, &k, NULL), 0);
    assert_int_equal(k, EXPFMT_TYPE);
    expfmt_parser_unit(&p, &f, &fl, &u, &ul);
    assert_int_equal(fl, 9);
    assert_memory_equal(f, "x_seconds", 9);
    assert_int_equal(ul, 7);
    assert_memory_equal(u, "seconds", 7);
    assert_int_equal(expfmt_parser_next(&p, &k, NULL), 0);
    assert_int_equal(k, EXPFMT_EOF);
    expfmt_parser_fini(&p);
}

/* Many families and groups: the hash sets grow past their first size and
 * still find a late clash. */
static void test_many_families(void **state)
{
    (void)state;
    struct bs_buf in;
    bs_buf_init(&in, 0);
    for (int i = 0; i < 300; i++)
        bs_buf_printf(&in, "# TYPE f%d counter\nf%d_total{g=\"%d\"} 1\nf%d_total{g=\"x\"} 1\n", i,
                      i, i, i);
    for (int i = 0; i < 300; i++)
        bs_buf_printf(&in, "m{g=\"%d\"} 1\n", i);
    bs_buf_puts(&in, "# EOF\n");
    struct bs_buf out;
    bs_buf_init(&out, 0);
    render(in.data, in.len, &out);
    assert_non_null(strstr(out.data, "\nEOF\n"));
    bs_buf_fini(&out);
    /* Now make the last gauge group reappear, and reuse an early name. */
    in.len -= strlen("# EOF\n");
    bs_buf_puts(&in, "m{g=\"7\"} 1\n# EOF\n");
    bs_buf_init(&out, 0);
    render(in.data, in.len, &out);
    assert_non_null(strstr(out.data, "belongs to the group that started at line 908"));
    bs_buf_fini(&out);
    in.len -= strlen("m{g=\"7\"} 1\n# EOF\n");
    bs_buf_puts(&in, "f3_created 1\n# EOF\n");
    bs_buf_init(&out, 0);
    render(in.data, in.len, &out);
    assert_non_null(strstr(out.data, "uses the name \"f3_created\", which the family starting at "
                                     "line 10 already used"));
    bs_buf_fini(&out);
    bs_buf_fini(&in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_cases),
        cmocka_unit_test(test_invalid_cases),
        cmocka_unit_test(test_nan_canonical),
        cmocka_unit_test(test_labels_grow_in_exemplar),
        cmocka_unit_test(test_continue_after_errors),
        cmocka_unit_test(test_text_format_unchanged),
        cmocka_unit_test(test_unit_accessor),
        cmocka_unit_test(test_many_families),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
