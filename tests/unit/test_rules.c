/* SPDX-License-Identifier: Apache-2.0
 *
 * Unit tests of rule files and rule evaluation against a real tsdb and
 * PromQL engine, with synthetic evaluation times: rule-file errors with
 * their positions (promtool's texts), recording outputs, chained rules in
 * one iteration, staleness markers for series a rule stops producing,
 * limits, query failures reported in health, the alert state machine
 * (pending, firing after `for`, resolved, keep_firing_for), ALERTS and
 * ALERTS_FOR_STATE series, `for` state restored after a restart, the
 * /api/v1/rules and /api/v1/alerts JSON, reload keeping alert state, the
 * evaluation-time alignment and promtool's check output.
 */
#include <math.h>
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

#define T0 INT64_C(1700000000000) /* ms */

struct env {
    char *dir;
    struct tsdb *db;
    struct promql_engine *engine;
    struct rules_manager *m;
    char path[512];
};

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void env_open(struct env *e, const char *yaml)
{
    memset(e, 0, sizeof(*e));
    e->dir = make_tmpdir();
    e->db = open_db(e->dir, 0, 0);
    e->engine = promql_engine_new(NULL);
    struct rules_manager_opts o;
    rules_manager_opts_default(&o);
    struct bs_error err = {0};
    assert_int_equal(rules_manager_new(&e->m, e->db, e->engine, &o, &err), 0);
    snprintf(e->path, sizeof(e->path), "%s/rules.yml", e->dir);
    if (yaml) {
        write_file(e->path, yaml);
        const char *g[] = {e->path};
        if (rules_manager_load(e->m, g, 1, &err))
            fail_msg("load: %s", err.msg);
    }
}

static void env_close(struct env *e)
{
    rules_manager_free(e->m);
    promql_engine_free(e->engine);
    tsdb_close(e->db);
    rmrf(e->dir);
    free(e->dir);
}

static void put(struct tsdb *db, const char *spec, int64_t t, double v)
{
    struct tsdb_appender *a = tsdb_appender_new(db);
    assert_int_equal(add_spec(a, spec, t, v), 0);
    assert_int_equal(tsdb_appender_commit(a, NULL), 0);
}

/* Evaluate q at t and print "labels=value;..." sorted. */
static char *q(struct env *e, const char *query, int64_t t)
{
    struct promql_result *r = NULL;
    struct bs_error err = {0};
    if (promql_query_instant(e->engine, e->db, query, t, &r, &err))
        fail_msg("query %s: %s", query, err.msg);
    struct bs_buf b;
    bs_buf_init(&b, 0);
    bs_buf_puts(&b, "");
    if (r->type == PROMQL_VALUE_SCALAR)
        bs_buf_printf(&b, "%g", r->scalar.v);
    for (size_t i = 0; i < r->nseries; i++) {
        labels_format(r->series[i].labels, &b);
        bs_buf_printf(&b, "=%g;", r->series[i].points[0].v);
    }
    promql_result_free(r);
    return bs_buf_steal(&b, NULL);
}

#define ASSERT_Q(e, query, t, want)        \
    do {                                   \
        char *got_ = q((e), (query), (t)); \
        assert_string_equal(got_, (want)); \
        free(got_);                        \
    } while (0)

static char *rules_json(struct env *e)
{
    struct bs_buf b;
    bs_buf_init(&b, 0);
    assert_int_equal(rules_manager_rules_json(e->m, NULL, &b), 0);
    return bs_buf_steal(&b, NULL);
}

static char *alerts_json(struct env *e)
{
    struct bs_buf b;
    bs_buf_init(&b, 0);
    assert_int_equal(rules_manager_alerts_json(e->m, &b), 0);
    return bs_buf_steal(&b, NULL);
}

/* ----------------------------------------------------------- rule files */

struct ferr_case {
    const char *yaml;
    const char *want; /* after "<path>: " */
};

static const struct ferr_case ferr_cases[] = {
    {"groups:\n- name: x\n  rules:\n  - record: a\n    expr: sum(up\n",
     "5:11: group \"x\", rule 1, \"a\": could not parse expression: 1:7: parse error: unclosed left parenthesis"},
    {"groups:\n- name: x\n  rules:\n  - record: ok\n    expr: up\n  - record: y\n    expr: 1 +\n",
     "7:11: group \"x\", rule 2, \"y\": could not parse expression: 1:4: parse error: unexpected end of input"},
    {"groups:\n- name: x\n  rules:\n  - record: a\n    alert: b\n    expr: up\n",
     "4:13: 5:12: group \"x\", rule 1, \"b\": only one of 'record' and 'alert' must be set"},
    {"groups:\n- name: x\n  rules:\n  - expr: up\n",
     "0:0: group \"x\", rule 1, \"\": one of 'record' or 'alert' must be set"},
    {"groups:\n- name: x\n  rules:\n  - record: a\n",
     "0:0: group \"x\", rule 1, \"a\": field 'expr' must be set in rule"},
    {"groups:\n- name: x\n  rules:\n  - record: a\n    expr: up\n    foo: 1\n",
     "yaml: unmarshal errors:\n  line 6: field foo not found in type rulefmt.RuleNode"},
    {"groups:\n- name: x\n  bogus: 1\n", "yaml: unmarshal errors:\n  line 3: field bogus not found in type rulefmt.RuleGroup"},
    {"groups:\n- name: x\n  rules: []\n- name: x\n  rules: []\n",
     "4:3: groupname: \"x\" is repeated in the same file"},
    {"groups:\n- name: ''\n  rules: []\n", "2:3: Groupname must not be empty"},
    {"groups:\n- name: x\n  rules:\n  - alert: A\n    expr: up\n    for: 5x\n",
     "6:10: not a valid duration string: \"5x\""},
    {"groups:\n- name: x\n  rules:\n  - record: a\n    expr: up\n    for: 1m\n",
     "4:13: group \"x\", rule 1, \"a\": invalid field 'for' in recording rule"},
    {"groups:\n- name: x\n  rules:\n  - record: a\n    expr: up\n    annotations:\n      x: y\n",
     "4:13: group \"x\", rule 1, \"a\": invalid field 'annotations' in recording rule"},
    {"groups:\n- name: x\n  rules:\n  - record: 1abc\n    expr: up\n",
     "4:13: group \"x\", rule 1, \"1abc\": invalid recording rule name: 1abc"},
    {"groups:\n- name: x\n  rules:\n  - alert: A\n    expr: up\n    labels:\n      1bad: x\n",
     "group \"x\", rule 1, \"A\": invalid label name: 1bad"},
    {"groups:\n- name: x\n  rules:\n  - alert: A\n    expr: up\n    annotations:\n      s: '{{ nosuch }}'\n",
     "group \"x\", rule 1, \"A\": annotation \"s\": template: __alert_A:1: function \"nosuch\" not defined"},
    {"groups:\n- name: x\n  rules:\n  - record: a\n    expr: up\n   bad indent\n", "6:4: yaml: "},
    {"groups: 3\n", "yaml: unmarshal errors:\n  line 1: cannot unmarshal !!str into []rulefmt.RuleGroup"},
};

static void test_rulefile_errors(void **state)
{
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < sizeof(ferr_cases) / sizeof(ferr_cases[0]); i++) {
        struct rulefile *f = NULL;
        char **errs = NULL;
        size_t nerrs = 0;
        const char *y = ferr_cases[i].yaml;
        int rc = rulefile_parse(y, strlen(y), "r.yml", &f, &errs, &nerrs);
        char want[1024];
        snprintf(want, sizeof(want), "r.yml: %s", ferr_cases[i].want);
        bool ok = rc != 0 && f == NULL && nerrs >= 1 && strncmp(errs[0], want, strlen(want)) == 0;
        if (!ok) {
            print_message("case %zu: rc %d, got \"%s\"\n  want \"%s\"\n", i, rc, nerrs ? errs[0] : "",
                          want);
            failures++;
        }
        for (size_t j = 0; j < nerrs; j++)
            free(errs[j]);
        free(errs);
        rulefile_free(f);
    }
    assert_int_equal(failures, 0);
}

static void test_rulefile_ok(void **state)
{
    (void)state;
    const char *y = "groups:\n"
                    "- name: g\n"
                    "  interval: 30s\n"
                    "  limit: 10\n"
                    "  query_offset: 1m\n"
                    "  labels: {team: ops}\n"
                    "  rules:\n"
                    "  - record: job:up:sum\n"
                    "    expr: sum by (job) (up)\n"
                    "  - alert: Down\n"
                    "    expr: up == 0\n"
                    "    for: 5m\n"
                    "    keep_firing_for: 10m\n"
                    "    labels: {severity: page}\n"
                    "    annotations: {summary: '{{ $labels.instance }} down'}\n";
    struct rulefile *f = NULL;
    char **errs = NULL;
    size_t nerrs = 0;
    assert_int_equal(rulefile_parse(y, strlen(y), "x.yml", &f, &errs, &nerrs), 0);
    assert_int_equal(f->ngroups, 1);
    const struct rulefile_group *g = &f->groups[0];
    assert_string_equal(g->name, "g");
    assert_int_equal(g->interval_ms, 30000);
    assert_int_equal(g->limit, 10);
    assert_int_equal(g->query_offset_ms, 60000);
    assert_string_equal(rules_kv_get(&g->labels, "team"), "ops");
    assert_int_equal(g->nrules, 2);
    assert_false(g->rules[0].alerting);
    assert_true(g->rules[1].alerting);
    assert_int_equal(g->rules[1].for_ms, 300000);
    assert_int_equal(g->rules[1].keep_firing_for_ms, 600000);
    rulefile_free(f);
    /* An empty file is valid and has no groups. */
    assert_int_equal(rulefile_parse("", 0, "e.yml", &f, &errs, &nerrs), 0);
    assert_int_equal(f->ngroups, 0);
    rulefile_free(f);
}

static void test_check_file(void **state)
{
    (void)state;
    struct bs_buf b;
    struct bs_error err = {0};
    bs_buf_init(&b, 0);
    assert_int_equal(rules_check_file("tests/data/rules/node_alerts.yml", &b, &err), 0);
    assert_non_null(strstr(b.data, "Checking tests/data/rules/node_alerts.yml\n  SUCCESS: "));
    assert_non_null(strstr(b.data, " rules found\n"));
    bs_buf_reset(&b);
    assert_int_not_equal(rules_check_file("tests/data/rules/bad_expr.yml", &b, &err), 0);
    assert_non_null(strstr(b.data, "  FAILED:\ntests/data/rules/bad_expr.yml: "));
    assert_non_null(strstr(err.msg, "could not parse expression"));
    bs_buf_reset(&b);
    assert_int_equal(rules_check_file("tests/data/rules/nonexistent.yml", &b, &err), BS_ENOENT);
    bs_buf_fini(&b);
}

/* The manager refuses a broken file and keeps what it had. */
static void test_load_error_keeps_groups(void **state)
{
    (void)state;
    struct env e;
    env_open(&e, "groups:\n- name: a\n  rules:\n  - record: r\n    expr: vector(1)\n");
    char bad[600];
    snprintf(bad, sizeof(bad), "%s/bad.yml", e.dir);
    write_file(bad, "groups:\n- name: b\n  rules:\n  - record: r\n    expr: sum(\n");
    const char *g[] = {e.path, bad};
    struct bs_error err = {0};
    assert_int_equal(rules_manager_load(e.m, g, 2, &err), BS_EPARSE);
    assert_non_null(strstr(err.msg, "bad.yml: 5:11: group \"b\", rule 1, \"r\": could not parse expression"));
    struct rules_manager_stats st;
    rules_manager_stats(e.m, &st);
    assert_int_equal(st.groups, 1);
    env_close(&e);
}

/* ------------------------------------------------------------ recording */

static void test_recording_chained(void **state)
{
    (void)state;
    struct env e;
    env_open(&e, "groups:\n"
                 "- name: rec\n"
                 "  interval: 10s\n"
                 "  rules:\n"
                 "  - record: job:up:sum\n"
                 "    expr: sum by (job) (up)\n"
                 "  - record: job:up:doubled\n"
                 "    expr: job:up:sum * 2\n"
                 "    labels:\n"
                 "      kind: doubled\n"
                 "  - record: scalar_rule\n"
                 "    expr: '42'\n");
    put(e.db, "__name__=up,job=node,instance=a", T0 - 1000, 1);
    put(e.db, "__name__=up,job=node,instance=b", T0 - 1000, 1);
    assert_int_equal(rules_manager_eval_group_at(e.m, 0, T0), 0);
    ASSERT_Q(&e, "job:up:sum", T0, "job:up:sum{job=\"node\"}=2;");
    /* The second rule saw the first one's output of the same iteration. */
    ASSERT_Q(&e, "job:up:doubled", T0, "job:up:doubled{job=\"node\", kind=\"doubled\"}=4;");
    ASSERT_Q(&e, "scalar_rule", T0, "scalar_rule=42;");
    char *j = rules_json(&e);
    assert_non_null(strstr(j, "{\"groups\":[{\"name\":\"rec\",\"file\":\""));
    assert_non_null(strstr(j, "{\"name\":\"job:up:sum\",\"query\":\"sum by (job) (up)\",\"health\":\"ok\",\"evaluationTime\":"));
    assert_non_null(strstr(j, "\"labels\":{\"kind\":\"doubled\"},\"health\":\"ok\""));
    assert_non_null(strstr(j, "\"type\":\"recording\"}"));
    assert_non_null(strstr(j, "\"interval\":10,\"limit\":0,\"evaluationTime\":"));
    free(j);
    env_close(&e);
}

static bool last_is_stale(struct env *e, const char *metric, const char *inst, int64_t t)
{
    char spec[256];
    snprintf(spec, sizeof(spec), "__name__=%s;instance=%s", metric, inst);
    struct labels_matcher *ms[2];
    ms[0] = mk_matcher(spec);
    char *semi = strchr(spec, ';');
    ms[1] = mk_matcher(semi + 1);
    labels_matcher_free(ms[0]);
    *semi = 0;
    ms[0] = mk_matcher(spec);
    struct tsdb_querier *qr = tsdb_querier_new(e->db, t - 1, t);
    struct tsdb_series_set *ss = NULL;
    assert_int_equal(tsdb_querier_select(qr, ms, 2, &ss, NULL), 0);
    bool stale = false;
    if (tsdb_series_set_next(ss)) {
        struct tsdb_iterator *it = tsdb_series_set_iterator(ss);
        int64_t ts;
        double v;
        while (tsdb_iterator_next(it)) {
            tsdb_iterator_at(it, &ts, &v);
            stale = ts == t && bs_is_stale_nan(v);
        }
        tsdb_iterator_free(it);
    }
    tsdb_series_set_free(ss);
    tsdb_querier_free(qr);
    labels_matcher_free(ms[0]);
    labels_matcher_free(ms[1]);
    return stale;
}

static void test_recording_staleness(void **state)
{
    (void)state;
    struct env e;
    env_open(&e, "groups:\n- name: s\n  interval: 10s\n  rules:\n  - record: inst:up\n    expr: up\n");
    put(e.db, "__name__=up,job=node,instance=a", T0 - 1000, 1);
    put(e.db, "__name__=up,job=node,instance=b", T0 - 1000, 1);
    assert_int_equal(rules_manager_eval_group_at(e.m, 0, T0), 0);
    ASSERT_Q(&e, "count(inst:up)", T0, "{}=2;");
    /* b goes away (its scrape wrote a staleness marker). */
    put(e.db, "__name__=up,job=node,instance=a", T0 + 9000, 1);
    put(e.db, "__name__=up,job=node,instance=b", T0 + 9000, bs_stale_nan());
    assert_int_equal(rules_manager_eval_group_at(e.m, 0, T0 + 10000), 0);
    /* Without a marker the old output would still be seen for 5 minutes. */
    ASSERT_Q(&e, "count(inst:up)", T0 + 10000, "{}=1;");
    assert_true(last_is_stale(&e, "inst:up", "b", T0 + 10000));
    assert_false(last_is_stale(&e, "inst:up", "a", T0 + 10000));
    env_close(&e);
}

static void test_limit_and_failures(void **state)
{
    (void)state;
    struct env e;
    env_open(&e, "groups:\n"
                 "- name: a_limited\n"
                 "  limit: 1\n"
                 "  rules:\n"
                 "  - record: lim\n"
                 "    expr: up\n"
                 "- name: b_failing\n"
                 "  rules:\n"
                 "  - record: dup\n"
                 "    expr: label_replace(up, \"instance\", \"x\", \"\", \"\")\n"
                 "  - record: after\n"
                 "    expr: vector(7)\n");
    put(e.db, "__name__=up,job=node,instance=a", T0 - 1000, 1);
    put(e.db, "__name__=up,job=node,instance=b", T0 - 1000, 1);
    assert_int_equal(rules_manager_eval_group_at(e.m, 0, T0), 0);
    assert_int_equal(rules_manager_eval_group_at(e.m, 1, T0), 0);
    ASSERT_Q(&e, "lim", T0, "");
    /* A failing rule does not stop the rules after it. */
    ASSERT_Q(&e, "after", T0, "after=7;");
    char *j = rules_json(&e);
    assert_non_null(strstr(j, "\"health\":\"err\",\"lastError\":\"exceeded limit 1 with 2 series\""));
    assert_non_null(strstr(j, "\"name\":\"dup\""));
    assert_non_null(strstr(j, "same labelset"));
    free(j);
    env_close(&e);
}

/* --------------------------------------------------------------- alerts */

static const char *alert_yaml =
    "groups:\n"
    "- name: alerts\n"
    "  interval: 30s\n"
    "  rules:\n"
    "  - alert: HighLoad\n"
    "    expr: node_load1 > 0.9\n"
    "    for: 1m\n"
    "    labels:\n"
    "      severity: '{{ if gt $value 2.0 }}page{{ else }}ticket{{ end }}'\n"
    "    annotations:\n"
    "      summary: 'load {{ $value }} on {{ $labels.instance }}'\n"
    "  - alert: Flappy\n"
    "    expr: node_load1 > 0.9\n"
    "    keep_firing_for: 1m\n";

static void test_alert_lifecycle(void **state)
{
    (void)state;
    struct env e;
    env_open(&e, alert_yaml);
    rules_manager_mark_restored(e.m);
    int64_t t = T0;
    put(e.db, "__name__=node_load1,instance=a", t - 1000, 1.5);
    rules_manager_eval_group_at(e.m, 0, t);
    char *j = alerts_json(&e);
    assert_non_null(strstr(j, "{\"labels\":{\"alertname\":\"HighLoad\",\"instance\":\"a\",\"severity\":\"ticket\"},"
                              "\"annotations\":{\"summary\":\"load 1.5 on a\"},\"state\":\"pending\","
                              "\"activeAt\":\"2023-11-14T22:13:20Z\",\"value\":\"1.5e+00\"}"));
    /* keep_firing_for without for: firing at once. */
    assert_non_null(strstr(j, "\"alertname\":\"Flappy\",\"instance\":\"a\"},\"annotations\":{},\"state\":\"firing\""));
    free(j);
    ASSERT_Q(&e, "ALERTS", t,
             "ALERTS{alertname=\"Flappy\", alertstate=\"firing\", instance=\"a\"}=1;"
             "ALERTS{alertname=\"HighLoad\", alertstate=\"pending\", instance=\"a\", severity=\"ticket\"}=1;");
    ASSERT_Q(&e, "ALERTS_FOR_STATE{alertname=\"HighLoad\"}", t,
             "ALERTS_FOR_STATE{alertname=\"HighLoad\", instance=\"a\", severity=\"ticket\"}=1.7e+09;");

    t += 30000;
    put(e.db, "__name__=node_load1,instance=a", t - 1000, 1.5);
    rules_manager_eval_group_at(e.m, 0, t);
    ASSERT_Q(&e, "ALERTS{alertname=\"HighLoad\"}", t,
             "ALERTS{alertname=\"HighLoad\", alertstate=\"pending\", instance=\"a\", severity=\"ticket\"}=1;");
    t += 30000; /* 1m after activeAt: firing */
    put(e.db, "__name__=node_load1,instance=a", t - 1000, 1.5);
    rules_manager_eval_group_at(e.m, 0, t);
    ASSERT_Q(&e, "ALERTS{alertname=\"HighLoad\"}", t,
             "ALERTS{alertname=\"HighLoad\", alertstate=\"firing\", instance=\"a\", severity=\"ticket\"}=1;");
    j = rules_json(&e);
    assert_non_null(strstr(j, "{\"state\":\"firing\",\"name\":\"HighLoad\",\"query\":\"node_load1 \\u003e 0.9\","
                              "\"duration\":60,\"keepFiringFor\":0,\"labels\":{\"severity\":"));
    assert_non_null(strstr(j, "\"type\":\"alerting\""));
    free(j);

    /* The condition clears. HighLoad resolves; Flappy keeps firing 1m. */
    t += 30000;
    put(e.db, "__name__=node_load1,instance=a", t - 1000, 0.2);
    rules_manager_eval_group_at(e.m, 0, t);
    ASSERT_Q(&e, "ALERTS", t, "ALERTS{alertname=\"Flappy\", alertstate=\"firing\", instance=\"a\"}=1;");
    assert_true(last_is_stale(&e, "ALERTS", "a", t) == false); /* Flappy's series is still there */
    j = alerts_json(&e);
    assert_null(strstr(j, "HighLoad"));
    assert_non_null(strstr(j, "\"keepFiringSince\":\"2023-11-14T22:14:50Z\""));
    free(j);
    t += 30000;
    put(e.db, "__name__=node_load1,instance=a", t - 1000, 0.2);
    rules_manager_eval_group_at(e.m, 0, t);
    ASSERT_Q(&e, "count(ALERTS)", t, "{}=1;");
    t += 30000; /* keep_firing_for elapsed */
    put(e.db, "__name__=node_load1,instance=a", t - 1000, 0.2);
    rules_manager_eval_group_at(e.m, 0, t);
    ASSERT_Q(&e, "count(ALERTS)", t, "");
    j = alerts_json(&e);
    assert_string_equal(j, "{\"alerts\":[]}");
    free(j);
    env_close(&e);
}

/* Pending alerts that disappear are dropped, not resolved. */
static void test_pending_dropped(void **state)
{
    (void)state;
    struct env e;
    env_open(&e, alert_yaml);
    rules_manager_mark_restored(e.m);
    put(e.db, "__name__=node_load1,instance=a", T0 - 1000, 3);
    rules_manager_eval_group_at(e.m, 0, T0);
    char *j = alerts_json(&e);
    assert_non_null(strstr(j, "\"severity\":\"page\""));
    free(j);
    put(e.db, "__name__=node_load1,instance=a", T0 + 29000, bs_stale_nan());
    rules_manager_eval_group_at(e.m, 0, T0 + 30000);
    ASSERT_Q(&e, "count(ALERTS{alertname=\"HighLoad\"})", T0 + 30000, "");
    j = rules_json(&e);
    assert_non_null(strstr(j, "{\"state\":\"inactive\",\"name\":\"HighLoad\""));
    free(j);
    env_close(&e);
}

/* ALERTS is not written before the `for` state has been restored. */
static void test_no_alerts_series_before_restore(void **state)
{
    (void)state;
    struct env e;
    env_open(&e, alert_yaml);
    put(e.db, "__name__=node_load1,instance=a", T0 - 1000, 1.5);
    rules_manager_eval_group_at(e.m, 0, T0);
    ASSERT_Q(&e, "count(ALERTS)", T0, "");
    rules_manager_restore_group_at(e.m, 0, T0 + 1);
    put(e.db, "__name__=node_load1,instance=a", T0 + 29000, 1.5);
    rules_manager_eval_group_at(e.m, 0, T0 + 30000);
    ASSERT_Q(&e, "count(ALERTS)", T0 + 30000, "{}=2;");
    env_close(&e);
}

static const char *restore_yaml = "groups:\n"
                                  "- name: r\n"
                                  "  interval: 1m\n"
                                  "  rules:\n"
                                  "  - alert: Slow\n"
                                  "    expr: node_load1 > 0.9\n"
                                  "    for: 30m\n";

static void feed(struct env *e, int64_t from, int64_t to)
{
    for (int64_t t = from; t <= to; t += 60000)
        put(e->db, "__name__=node_load1,instance=a", t - 1000, 1.5);
}

static void test_restore_after_restart(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    char path[600];
    snprintf(path, sizeof(path), "%s/rules.yml", dir);
    write_file(path, restore_yaml);
    char dbdir[600];
    snprintf(dbdir, sizeof(dbdir), "%s/data", dir);
    const char *globs[] = {path};
    struct bs_error err = {0};

    /* First life: pending from T0, last evaluated at T0+5m, then "killed". */
    struct env e;
    e.dir = dir;
    e.db = open_db(dbdir, 0, 0);
    e.engine = promql_engine_new(NULL);
    assert_int_equal(rules_manager_new(&e.m, e.db, e.engine, NULL, &err), 0);
    assert_int_equal(rules_manager_load(e.m, globs, 1, &err), 0);
    rules_manager_mark_restored(e.m);
    for (int64_t t = T0; t <= T0 + 300000; t += 60000) {
        feed(&e, t, t);
        rules_manager_eval_group_at(e.m, 0, t);
    }
    rules_manager_free(e.m);
    promql_engine_free(e.engine);
    tsdb_close(e.db);

    /* Second life at T0+10m: the first iteration recreates the alert as new
     * (pending since T0+10m); restoring moves activeAt to T0 + 5m (it was
     * pending 5m when we went down, and the 5m outage is added). */
    e.db = open_db(dbdir, 0, 0);
    e.engine = promql_engine_new(NULL);
    assert_int_equal(rules_manager_new(&e.m, e.db, e.engine, NULL, &err), 0);
    assert_int_equal(rules_manager_load(e.m, globs, 1, &err), 0);
    int64_t t1 = T0 + 600000;
    feed(&e, t1, t1);
    rules_manager_eval_group_at(e.m, 0, t1);
    char *j = alerts_json(&e);
    assert_non_null(strstr(j, "\"activeAt\":\"2023-11-14T22:23:20Z\"")); /* T0+10m: not yet restored */
    free(j);
    rules_manager_restore_group_at(e.m, 0, t1);
    j = alerts_json(&e);
    assert_non_null(strstr(j, "\"activeAt\":\"2023-11-14T22:18:20Z\"")); /* T0+5m */
    free(j);
    /* Fires 30m after the restored activeAt, i.e. at T0+35m, not T0+40m. */
    feed(&e, t1 + 60000, T0 + 35 * 60000);
    for (int64_t t = t1 + 60000; t < T0 + 35 * 60000; t += 60000)
        rules_manager_eval_group_at(e.m, 0, t);
    ASSERT_Q(&e, "ALERTS{alertstate=\"firing\"}", T0 + 34 * 60000, "");
    rules_manager_eval_group_at(e.m, 0, T0 + 35 * 60000);
    ASSERT_Q(&e, "count(ALERTS{alertstate=\"firing\"})", T0 + 35 * 60000, "{}=1;");
    rules_manager_free(e.m);
    promql_engine_free(e.engine);
    tsdb_close(e.db);
    rmrf(dir);
    free(dir);
}

/* Restored with less than the grace period left: fires after the grace. */
static void test_restore_grace(void **state)
{
    (void)state;
    struct env e;
    env_open(&e, restore_yaml);
    rules_manager_mark_restored(e.m);
    /* Pending for 25m before the "restart". */
    for (int64_t t = T0; t <= T0 + 25 * 60000; t += 60000) {
        feed(&e, t, t);
        rules_manager_eval_group_at(e.m, 0, t);
    }
    /* Simulate the restart with a fresh manager on the same store. */
    rules_manager_free(e.m);
    struct bs_error err = {0};
    assert_int_equal(rules_manager_new(&e.m, e.db, e.engine, NULL, &err), 0);
    const char *globs[] = {e.path};
    assert_int_equal(rules_manager_load(e.m, globs, 1, &err), 0);
    int64_t t1 = T0 + 26 * 60000;
    feed(&e, t1, t1);
    rules_manager_eval_group_at(e.m, 0, t1);
    rules_manager_restore_group_at(e.m, 0, t1);
    /* 5m left < 10m grace: activeAt = t1 + 10m - 30m = T0 + 6m. */
    char *j = alerts_json(&e);
    assert_non_null(strstr(j, "\"activeAt\":\"2023-11-14T22:19:20Z\""));
    free(j);
    env_close(&e);
}

static void test_reload_keeps_state(void **state)
{
    (void)state;
    struct env e;
    env_open(&e, alert_yaml);
    rules_manager_mark_restored(e.m);
    put(e.db, "__name__=node_load1,instance=a", T0 - 1000, 1.5);
    rules_manager_eval_group_at(e.m, 0, T0);
    /* Reload with an extra rule: HighLoad keeps its activeAt. */
    char y[2048];
    snprintf(y, sizeof(y), "%s  - record: extra\n    expr: vector(1)\n", alert_yaml);
    write_file(e.path, y);
    const char *globs[] = {e.path};
    struct bs_error err = {0};
    assert_int_equal(rules_manager_load(e.m, globs, 1, &err), 0);
    put(e.db, "__name__=node_load1,instance=a", T0 + 59000, 1.5);
    rules_manager_eval_group_at(e.m, 0, T0 + 60000);
    ASSERT_Q(&e, "ALERTS{alertname=\"HighLoad\"}", T0 + 60000,
             "ALERTS{alertname=\"HighLoad\", alertstate=\"firing\", instance=\"a\", severity=\"ticket\"}=1;");
    /* Removing the group marks its series stale. */
    write_file(e.path, "groups: []\n");
    assert_int_equal(rules_manager_load(e.m, globs, 1, &err), 0);
    ASSERT_Q(&e, "count(ALERTS)", bs_now_ms() + 1, "");
    env_close(&e);
}

static void test_rules_filters(void **state)
{
    (void)state;
    struct env e;
    env_open(&e, "groups:\n- name: g1\n  rules:\n  - record: r1\n    expr: vector(1)\n"
                 "  - alert: A1\n    expr: vector(1)\n"
                 "- name: g2\n  rules:\n  - record: r2\n    expr: vector(2)\n");
    struct bs_buf b;
    bs_buf_init(&b, 0);
    struct rules_filters f = {.type = RULES_TYPE_ALERT};
    assert_int_equal(rules_manager_rules_json(e.m, &f, &b), 0);
    assert_non_null(strstr(b.data, "\"name\":\"A1\""));
    assert_null(strstr(b.data, "\"name\":\"r1\""));
    assert_non_null(strstr(b.data, "\"name\":\"g2\",\"file\":")); /* type keeps empty groups */
    assert_non_null(strstr(b.data, "\"health\":\"unknown\""));
    assert_non_null(strstr(b.data, "\"lastEvaluation\":\"0001-01-01T00:00:00Z\""));
    bs_buf_reset(&b);
    const char *names[] = {"r2"};
    struct rules_filters f2 = {.rule_names = names, .nrule_names = 1};
    assert_int_equal(rules_manager_rules_json(e.m, &f2, &b), 0);
    assert_null(strstr(b.data, "\"g1\""));
    assert_non_null(strstr(b.data, "\"name\":\"r2\""));
    bs_buf_fini(&b);
    env_close(&e);
}

static void test_eval_timestamp(void **state)
{
    (void)state;
    int64_t iv = 15000, ns = INT64_C(1700000000123456789);
    int64_t t = rules_group_eval_timestamp("/etc/rules.yml", "node", iv, ns);
    assert_true(t <= ns && t > ns - iv * 1000000);
    int64_t t2 = rules_group_eval_timestamp("/etc/rules.yml", "node", iv, ns + iv * 1000000);
    assert_int_equal(t2 - t, iv * 1000000);
    /* Different groups get different offsets. */
    int64_t o = rules_group_eval_timestamp("/etc/rules.yml", "other", iv, ns);
    assert_int_not_equal(o, t);
}

/* The example rule set evaluates with every rule healthy. */
static void test_node_alerts_file(void **state)
{
    (void)state;
    struct env e;
    env_open(&e, NULL);
    const char *globs[] = {"tests/data/rules/*.yml"};
    struct bs_error err = {0};
    /* bad_expr.yml is in the same directory: the load must fail as a whole. */
    assert_int_not_equal(rules_manager_load(e.m, globs, 1, &err), 0);
    const char *g2[] = {"tests/data/rules/node_alerts.yml"};
    assert_int_equal(rules_manager_load(e.m, g2, 1, &err), 0);
    rules_manager_mark_restored(e.m);
    for (int64_t t = T0 - 600000; t <= T0; t += 15000) {
        struct tsdb_appender *a = tsdb_appender_new(e.db);
        double k = (double)(t - (T0 - 600000)) / 1000.0;
        add_spec(a, "__name__=up,job=node,instance=h1:9100", t, 1);
        add_spec(a, "__name__=up,job=node,instance=h2:9100", t, 0);
        add_spec(a, "__name__=node_load1,job=node,instance=h1:9100", t, 3.5);
        add_spec(a, "__name__=node_filesystem_avail_bytes,job=node,instance=h1:9100,mountpoint=/,fstype=ext4,device=sda1", t, 1e9 - k * 1e6);
        add_spec(a, "__name__=node_filesystem_size_bytes,job=node,instance=h1:9100,mountpoint=/,fstype=ext4,device=sda1", t, 1e10);
        add_spec(a, "__name__=node_filesystem_readonly,job=node,instance=h1:9100,mountpoint=/,fstype=ext4,device=sda1", t, 0);
        add_spec(a, "__name__=node_cpu_seconds_total,job=node,instance=h1:9100,cpu=0,mode=idle", t, k * 0.05);
        add_spec(a, "__name__=node_cpu_seconds_total,job=node,instance=h1:9100,cpu=0,mode=user", t, k * 0.95);
        add_spec(a, "__name__=ipmi_sel_events_total,job=ipmi,instance=bmc1,severity=critical", t, k > 300 ? 2 : 1);
        assert_int_equal(tsdb_appender_commit(a, NULL), 0);
    }
    struct rules_manager_stats st;
    rules_manager_stats(e.m, &st);
    for (size_t i = 0; i < st.groups; i++)
        assert_int_equal(rules_manager_eval_group_at(e.m, i, T0), 0);
    char *j = rules_json(&e);
    assert_null(strstr(j, "\"health\":\"err\""));
    char *a = alerts_json(&e);
    assert_non_null(strstr(a, "\"alertname\":\"NodeTargetDown\""));
    assert_non_null(strstr(a, "\"alertname\":\"NodeHighLoad\""));
    assert_non_null(strstr(a, "\"alertname\":\"NodeFilesystemFillingUp\""));
    assert_non_null(strstr(a, "\"alertname\":\"NodeCPUSaturated\""));
    assert_non_null(strstr(a, "\"alertname\":\"IPMIHardwareEvent\""));
    assert_null(strstr(a, "error expanding template"));
    free(a);
    free(j);
    env_close(&e);
}

/* The group thread evaluates on its own at aligned times. */
static void test_threads_run(void **state)
{
    (void)state;
    struct env e;
    env_open(&e, "groups:\n- name: live\n  interval: 1s\n  rules:\n  - record: tick\n    expr: vector(1)\n");
    rules_manager_start(e.m);
    rules_manager_start(e.m); /* idempotent */
    bs_sleep_ms(3300);
    rules_manager_stop(e.m);
    char *j = rules_json(&e);
    assert_non_null(strstr(j, "\"health\":\"ok\""));
    free(j);
    ASSERT_Q(&e, "count_over_time(tick[10s]) >= bool 2", bs_now_ms(), "{}=1;");
    env_close(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rulefile_errors),
        cmocka_unit_test(test_rulefile_ok),
        cmocka_unit_test(test_check_file),
        cmocka_unit_test(test_load_error_keeps_groups),
        cmocka_unit_test(test_recording_chained),
        cmocka_unit_test(test_recording_staleness),
        cmocka_unit_test(test_limit_and_failures),
        cmocka_unit_test(test_alert_lifecycle),
        cmocka_unit_test(test_pending_dropped),
        cmocka_unit_test(test_no_alerts_series_before_restore),
        cmocka_unit_test(test_restore_after_restart),
        cmocka_unit_test(test_restore_grace),
        cmocka_unit_test(test_reload_keeps_state),
        cmocka_unit_test(test_rules_filters),
        cmocka_unit_test(test_eval_timestamp),
        cmocka_unit_test(test_node_alerts_file),
        cmocka_unit_test(test_threads_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
