/* SPDX-License-Identifier: Apache-2.0
 *
 * Unit tests of the alert template engine: a table of templates with the
 * output Go's text/template and Prometheus's function map give (values
 * worked out from their documented behaviour and Prometheus's own template
 * tests), including the query function against a real tsdb and engine,
 * and the error texts for parse and execution failures.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "rules/rules_int.h"
#include "test_tsdb_util.h"

struct tcase {
    const char *text;
    const char *labels;      /* "k=v,k=v" */
    double value;
    const char *want;        /* output, or a substring of the error */
    int rc;                  /* 0, BS_EPARSE or BS_EEXEC */
};

static const struct tcase cases[] = {
    {"{{ $labels.instance }} is down", "instance=a:9100,job=node", 0, "a:9100 is down", 0},
    {"{{ $value }}", "", 0.95, "0.95", 0},
    {"{{ $value }}", "", 1e6, "1e+06", 0},
    {"{{ $value }}", "", 123456, "123456", 0},
    {"{{ .Labels.job }}/{{ .Value }}", "job=node", 2, "node/2", 0},
    {"{{ $externalLabels.cluster }}", "", 0, "eu-1", 0},
    {"{{ $externalURL }}", "", 0, "http://bongsu.example", 0},
    {"{{ humanize 1234567.0 }}", "", 0, "1.235M", 0},
    {"{{ $value | humanize }}", "", 0.00123, "1.23m", 0},
    {"{{ humanize 0 }}", "", 0, "0", 0},
    {"{{ humanize \"1e3\" }}", "", 0, "1k", 0},
    {"{{ humanize1024 1048576.0 }}", "", 0, "1Mi", 0},
    {"{{ humanize1024 512.0 }}", "", 0, "512", 0},
    {"{{ humanizeDuration 3661.0 }}", "", 0, "1h 1m 1s", 0},
    {"{{ humanizeDuration 90061.0 }}", "", 0, "1d 1h 1m 1s", 0},
    {"{{ humanizeDuration 0.25 }}", "", 0, "250ms", 0},
    {"{{ humanizeDuration 5.5 }}", "", 0, "5.5s", 0},
    {"{{ humanizeDuration -90.0 }}", "", 0, "-1m 30s", 0},
    {"{{ humanizeDuration 0.0 }}", "", 0, "0s", 0},
    {"{{ humanizePercentage 0.1234 }}", "", 0, "12.34%", 0},
    {"{{ $value | humanizePercentage }}", "", 0.5, "50%", 0},
    {"{{ humanizeTimestamp 1435065584.128 }}", "", 0, "2015-06-23 13:19:44.128 +0000 UTC", 0},
    {"{{ printf \"%.2f\" $value }}", "", 3.14159, "3.14", 0},
    {"{{ printf \"%s is %d\" \"x\" 3 }}", "", 0, "x is 3", 0},
    {"{{ printf \"%d\" $value }}", "", 1.5, "%!d(float64=1.5)", 0},
    {"{{ printf \"%5.1f%%\" 12.34 }}", "", 0, " 12.3%", 0},
    {"{{ \"a\" | printf \"%s-%s\" \"b\" }}", "", 0, "b-a", 0},
    {"{{ title \"hello world-foo\" }}", "", 0, "Hello World-Foo", 0},
    {"{{ toUpper \"abc\" }}{{ toLower \"DeF\" }}", "", 0, "ABCdef", 0},
    {"{{ reReplaceAll \"(.*):.*\" \"$1\" $labels.instance }}", "instance=host:9100", 0, "host", 0},
    {"{{ reReplaceAll \"a\" \"<${0}>\" \"banana\" }}", "", 0, "b<a>n<a>n<a>", 0},
    {"{{ stripPort $labels.instance }}", "instance=host:9100", 0, "host", 0},
    {"{{ match \"^ba\" \"banana\" }}", "", 0, "true", 0},
    {"{{ if gt $value 0.9 }}high{{ else }}low{{ end }}", "", 0.95, "high", 0},
    {"{{ if gt $value 0.9 }}high{{ else }}low{{ end }}", "", 0.5, "low", 0},
    {"{{ if eq $labels.severity \"critical\" }}page{{ else if eq $labels.severity \"warning\" }}ticket{{ else }}none{{ end }}",
     "severity=warning", 0, "ticket", 0},
    {"{{ range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end }}", "a=1,b=2", 0, "a=1;b=2;", 0},
    {"{{ range $labels }}[{{ . }}]{{ else }}empty{{ end }}", "", 0, "empty", 0},
    {"{{ with $labels.foo }}has {{ . }}{{ else }}none{{ end }}", "foo=x", 0, "has x", 0},
    {"{{ with $labels.foo }}has{{ else }}none{{ end }}", "", 0, "none", 0},
    {"{{ $x := \"a\" }}{{ $x }}{{ $x = \"b\" }}{{ $x }}", "", 0, "ab", 0},
    {"{{ and true false }} {{ or \"\" \"x\" }} {{ not true }}", "", 0, "false x false", 0},
    {"{{ if and (gt $value 0.5) (lt $value 2.0) }}in{{ end }}", "", 1, "in", 0},
    {"{{ if ne $labels.job \"node\" }}other{{ else }}node{{ end }}", "job=node", 0, "node", 0},
    {"x {{- \" y \" -}} z", "", 0, "x y z", 0},
    {"a  {{- /* comment */ -}}  b{{/* another */}}", "", 0, "ab", 0},
    {"{{ $labels.missing }}|", "a=1", 0, "|", 0},
    {"{{ len $labels }} {{ index $labels \"a\" }}", "a=1,b=2", 0, "2 1", 0},
    {"{{ $labels }}", "a=1,b=2", 0, "map[a:1 b:2]", 0},
    {"{{ query \"vector(1)\" | first | value }}", "", 0, "1", 0},
    {"{{ with query \"up{instance='b'}\" }}{{ . | first | label \"job\" }}{{ end }}", "", 0, "node", 0},
    {"{{ range query \"sort_desc(up)\" }}{{ .Labels.instance }}={{ .Value }} {{ end }}", "", 0, "a=1 b=0 ", 0},
    {"{{ range $i, $e := sortByLabel \"instance\" (query \"up\") }}{{ $i }}:{{ label \"instance\" $e }} {{ end }}", "", 0,
     "0:a 1:b ", 0},
    {"{{ (query \"vector(42)\" | first).Value }}", "", 0, "42", 0},
    {"{{ range $i := 3 }}{{ $i }}{{ end }}", "", 0, "012", 0},
    {"{{ range query \"up\" }}{{ if eq .Labels.instance \"a\" }}{{ break }}{{ end }}x{{ end }}", "", 0, "", 0},
    {"{{ tableLink \"up == 0\" }}", "", 0, "/graph?g0.expr=up+%3D%3D+0&g0.tab=1", 0},
    {"{{ graphLink \"rate(x[5m])\" }}", "", 0, "/graph?g0.expr=rate%28x%5B5m%5D%29&g0.tab=0", 0},
    /* Errors: shown, never fatal. */
    {"{{ if gt $value 1 }}x{{ end }}", "", 2, "error calling gt: incompatible types for comparison", BS_EEXEC},
    {"{{ query \"nothing_here\" | first | value }}", "", 0,
     "executing \"__alert_T\" at <first>: error calling first: first() called on vector with no elements", BS_EEXEC},
    {"{{ humanize \"abc\" }}", "", 0, "strconv.ParseFloat: parsing \"abc\": invalid syntax", BS_EEXEC},
    {"{{ query \"sum(\" }}", "", 0, "error calling query: 1:5: parse error", BS_EEXEC},
    {"{{ foo }}", "", 0, "error parsing template __alert_T: template: __alert_T:1: function \"foo\" not defined", BS_EPARSE},
    {"{{ end }}", "", 0, "unexpected {{end}}", BS_EPARSE},
    {"{{ if true }}x", "", 0, "unexpected EOF", BS_EPARSE},
    {"{{ $nope }}", "", 0, "undefined variable \"$nope\"", BS_EPARSE},
    {"{{ .Labels.job", "", 0, "unclosed action", BS_EPARSE},
    {"{{ humanize 1 2 }}", "", 0, "wrong number of args for humanize: want 1 got 2", BS_EEXEC},
    {"{{ first \"x\" }}", "", 0, "wrong type for value; expected template.queryResult; got string", BS_EEXEC},
};

static struct tsdb *g_db;
static struct promql_engine *g_engine;
static char *g_dir;

static int setup(void **state)
{
    (void)state;
    g_dir = make_tmpdir();
    g_db = open_db(g_dir, 0, 0);
    g_engine = promql_engine_new(NULL);
    struct labels_builder b;
    labels_builder_init(&b);
    struct tsdb_appender *a = tsdb_appender_new(g_db);
    struct labels ls = mk_labels(&b, "__name__=up,job=node,instance=a");
    assert_int_equal(tsdb_appender_add(a, 0, &ls, 1000000, 1, NULL), 0);
    ls = mk_labels(&b, "__name__=up,job=node,instance=b");
    assert_int_equal(tsdb_appender_add(a, 0, &ls, 1000000, 0, NULL), 0);
    assert_int_equal(tsdb_appender_commit(a, NULL), 0);
    labels_builder_fini(&b);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    promql_engine_free(g_engine);
    tsdb_close(g_db);
    rmrf(g_dir);
    free(g_dir);
    return 0;
}

static void test_cases(void **state)
{
    (void)state;
    struct labels_builder b, eb;
    labels_builder_init(&b);
    labels_builder_init(&eb);
    struct labels ext = mk_labels(&eb, "cluster=eu-1");
    int failures = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct tcase *c = &cases[i];
        struct labels ls = {0};
        if (c->labels[0])
            ls = mk_labels(&b, c->labels);
        struct rules_tmpl_data d = {
            .labels = &ls, .external_labels = &ext, .external_url = "http://bongsu.example",
            .value = c->value, .engine = g_engine, .db = g_db, .ts_ms = 1000000,
        };
        struct bs_buf out;
        struct bs_error err = {0};
        bs_buf_init(&out, 0);
        int rc = rules_template_expand("__alert_T", c->text, &d, &out, &err);
        const char *got = rc ? err.msg : (out.data ? out.data : "");
        bool ok = rc == c->rc && (rc ? strstr(got, c->want) != NULL : strcmp(got, c->want) == 0);
        if (!ok) {
            print_message("case %zu %s: rc %d (want %d), got \"%s\", want \"%s\"\n", i, c->text, rc,
                          c->rc, got, c->want);
            failures++;
        }
        bs_buf_fini(&out);
    }
    labels_builder_fini(&b);
    labels_builder_fini(&eb);
    assert_int_equal(failures, 0);
    assert_true(sizeof(cases) / sizeof(cases[0]) >= 30);
}

/* Error positions count Prometheus's variable prefix, as Prometheus's do. */
static void test_error_position(void **state)
{
    (void)state;
    struct rules_tmpl_data d = {0};
    struct bs_buf out;
    struct bs_error err = {0};
    bs_buf_init(&out, 0);
    assert_int_equal(rules_template_expand("__alert_X", "{{ first \"x\" }}", &d, &out, &err), BS_EEXEC);
    /* The prefix is 112 bytes; "first" starts 3 bytes into the text. */
    assert_non_null(strstr(err.msg, "template: __alert_X:1:115: executing \"__alert_X\" at <first>"));
    bs_buf_fini(&out);
}

static void test_check(void **state)
{
    (void)state;
    struct bs_error err = {0};
    assert_int_equal(rules_template_check("__alert_X", "{{ $labels.x | humanize }}", &err), 0);
    assert_int_equal(rules_template_check("__alert_X", "{{ nosuch 1 }}", &err), BS_EPARSE);
    assert_string_equal(err.msg, "template: __alert_X:1: function \"nosuch\" not defined");
}

static void test_number_formats(void **state)
{
    (void)state;
    char b[64];
    rules_fmt_float_e(1, b, sizeof(b));
    assert_string_equal(b, "1e+00");
    rules_fmt_float_e(1234.5, b, sizeof(b));
    assert_string_equal(b, "1.2345e+03");
    rules_fmt_float_e(0.1, b, sizeof(b));
    assert_string_equal(b, "1e-01");
    rules_fmt_4g(1.0 / 0.0, b, sizeof(b));
    assert_string_equal(b, "+Inf");
    rules_fmt_4g(12345, b, sizeof(b));
    assert_string_equal(b, "1.234e+04");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases),
        cmocka_unit_test(test_error_position),
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_number_formats),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
