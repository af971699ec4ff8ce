/* SPDX-License-Identifier: Apache-2.0
 *
 * Unit tests of the config module: the default configuration, a full
 * example with every supported key, Prometheus's defaulting of intervals
 * and timeouts, every class of error with its file:line:col position and
 * wording, known-but-unsupported keys, anchors and merge keys, the limits,
 * and the anchors' real prometheus.yml (read from ../shared relative to the
 * repository root, which is the tests' working directory).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"

/* Load text, expecting success. */
static struct config *load_ok(const char *yaml)
{
    struct config *c = NULL;
    struct bs_error err = {0};
    int rc = config_load_string(yaml, strlen(yaml), "t.yml", &c, &err);
    if (rc != 0)
        fail_msg("unexpected failure %d: %s", rc, err.msg);
    assert_non_null(c);
    return c;
}

/* Load text, expecting failure with code and exactly message msg. */
static void load_fails(const char *yaml, int code, const char *msg)
{
    struct config *c = (struct config *)1;
    struct bs_error err = {0};
    int rc = config_load_string(yaml, strlen(yaml), "t.yml", &c, &err);
    assert_null(c);
    assert_int_equal(rc, code);
    assert_int_equal(err.code, code);
    assert_string_equal(err.msg, msg);
}

static void test_default(void **state)
{
    (void)state;
    struct config *c = NULL;
    struct bs_error err = {0};
    assert_int_equal(config_load_default(&c, &err), 0);
    assert_string_equal(c->path, "<default>");
    assert_string_equal(c->source, config_default_yaml);
    assert_int_equal(c->scrape_interval_ms, 15000);
    assert_int_equal(c->evaluation_interval_ms, 15000);
    assert_int_equal(c->scrape_timeout_ms, 10000);
    assert_int_equal(c->external_labels->n, 0);
    assert_int_equal(c->nwarnings, 0);
    assert_int_equal(c->nscrape_configs, 1);
    const struct config_scrape *s = &c->scrape_configs[0];
    assert_string_equal(s->job_name, "prometheus");
    assert_int_equal(s->scrape_interval_ms, 15000);
    assert_int_equal(s->scrape_timeout_ms, 10000);
    assert_string_equal(s->metrics_path, "/metrics");
    assert_string_equal(s->scheme, "http");
    assert_false(s->honor_labels);
    assert_true(s->honor_timestamps);
    assert_int_equal(s->nparams, 0);
    assert_int_equal(s->nstatic_configs, 1);
    assert_int_equal(s->static_configs[0].ntargets, 1);
    assert_string_equal(s->static_configs[0].targets[0], "localhost:9090");
    assert_int_equal(s->static_configs[0].labels->n, 0);
    assert_ptr_equal(config_scrape_find(c, "prometheus"), s);
    assert_null(config_scrape_find(c, "node"));
    config_free(c);
}

static void test_full_example(void **state)
{
    (void)state;
    struct config *c = load_ok("global:\n"
                               "  scrape_interval: 1m30s\n"
                               "  scrape_timeout: 20s\n"
                               "  evaluation_interval: 2h\n"
                               "  external_labels:\n"
                               "    region: eu\n"
                               "    cluster: 'a b'\n"
                               "    dropped: ''\n"
                               "scrape_configs:\n"
                               "  - job_name: node\n"
                               "    scrape_interval: 10s\n"
                               "    scrape_timeout: 5s\n"
                               "    metrics_path: /probe\n"
                               "    scheme: https\n"
                               "    honor_labels: true\n"
                               "    honor_timestamps: false\n"
                               "    params:\n"
                               "      module: [http_2xx, tcp]\n"
                               "      debug: ['1']\n"
                               "    static_configs:\n"
                               "      - targets: ['a:9100', \"b:9100\"]\n"
                               "        labels: {env: prod, team: ops}\n"
                               "      - targets:\n"
                               "          - c:9100\n"
                               "  - job_name: other\n");
    assert_string_equal(c->path, "t.yml");
    assert_int_equal(c->scrape_interval_ms, 90000);
    assert_int_equal(c->scrape_timeout_ms, 20000);
    assert_int_equal(c->evaluation_interval_ms, 2 * 3600 * 1000);
    assert_int_equal(c->external_labels->n, 2);
    assert_string_equal(labels_get(c->external_labels, "region"), "eu");
    assert_string_equal(labels_get(c->external_labels, "cluster"), "a b");
    assert_null(labels_get(c->external_labels, "dropped"));
    assert_int_equal(c->nscrape_configs, 2);

    const struct config_scrape *s = &c->scrape_configs[0];
    assert_string_equal(s->job_name, "node");
    assert_int_equal(s->scrape_interval_ms, 10000);
    assert_int_equal(s->scrape_timeout_ms, 5000);
    assert_string_equal(s->metrics_path, "/probe");
    assert_string_equal(s->scheme, "https");
    assert_true(s->honor_labels);
    assert_false(s->honor_timestamps);
    assert_int_equal(s->nparams, 2);
    assert_string_equal(s->params[0].name, "module");
    assert_int_equal(s->params[0].nvalues, 2);
    assert_string_equal(s->params[0].values[0], "http_2xx");
    assert_string_equal(s->params[0].values[1], "tcp");
    assert_string_equal(s->params[1].name, "debug");
    assert_int_equal(s->params[1].nvalues, 1);
    assert_string_equal(s->params[1].values[0], "1");
    assert_int_equal(s->nstatic_configs, 2);
    assert_int_equal(s->static_configs[0].ntargets, 2);
    assert_string_equal(s->static_configs[0].targets[0], "a:9100");
    assert_string_equal(s->static_configs[0].targets[1], "b:9100");
    assert_int_equal(s->static_configs[0].labels->n, 2);
    assert_string_equal(s->static_configs[0].labels->v[0].name, "env");
    assert_string_equal(s->static_configs[0].labels->v[0].value, "prod");
    assert_string_equal(s->static_configs[0].labels->v[1].name, "team");
    assert_int_equal(s->static_configs[1].ntargets, 1);
    assert_string_equal(s->static_configs[1].targets[0], "c:9100");
    assert_int_equal(s->static_configs[1].labels->n, 0);

    /* The second job inherits everything. */
    s = &c->scrape_configs[1];
    assert_string_equal(s->job_name, "other");
    assert_int_equal(s->scrape_interval_ms, 90000);
    assert_int_equal(s->scrape_timeout_ms, 20000);
    assert_string_equal(s->metrics_path, "/metrics");
    assert_string_equal(s->scheme, "http");
    assert_false(s->honor_labels);
    assert_true(s->honor_timestamps);
    assert_int_equal(s->nstatic_configs, 0);
    config_free(c);
}

static void test_defaults_and_timeouts(void **state)
{
    (void)state;
    /* Empty document: Prometheus's defaults, no jobs. */
    struct config *c = load_ok("");
    assert_int_equal(c->scrape_interval_ms, 60000);
    assert_int_equal(c->scrape_timeout_ms, 10000);
    assert_int_equal(c->evaluation_interval_ms, 60000);
    assert_int_equal(c->nscrape_configs, 0);
    assert_non_null(c->external_labels);
    config_free(c);

    /* Global interval below the default timeout: the timeout follows it. */
    c = load_ok("global: {scrape_interval: 5s}\n");
    assert_int_equal(c->scrape_timeout_ms, 5000);
    config_free(c);

    /* Job interval below the global timeout, timeout unset: clamped. */
    c = load_ok("global:\n  scrape_interval: 1m\n  scrape_timeout: 30s\n"
                "scrape_configs:\n  - job_name: fast\n    scrape_interval: 10s\n"
                "  - job_name: slow\n    scrape_interval: 2m\n");
    assert_int_equal(c->scrape_configs[0].scrape_interval_ms, 10000);
    assert_int_equal(c->scrape_configs[0].scrape_timeout_ms, 10000);
    assert_int_equal(c->scrape_configs[1].scrape_interval_ms, 120000);
    assert_int_equal(c->scrape_configs[1].scrape_timeout_ms, 30000);
    config_free(c);

    /* global may come after scrape_configs; "0" means unset. */
    c = load_ok("scrape_configs:\n  - job_name: j\n    scrape_interval: 0\n"
                "global:\n  scrape_interval: 20s\n");
    assert_int_equal(c->scrape_configs[0].scrape_interval_ms, 20000);
    assert_int_equal(c->scrape_configs[0].scrape_timeout_ms, 10000);
    config_free(c);

    /* YAML 1.1 booleans as yaml.v2 reads them; null keeps defaults. */
    c = load_ok("scrape_configs:\n  - job_name: j\n    honor_labels: yes\n"
                "    honor_timestamps: off\n    metrics_path:\n    static_configs:\n");
    assert_true(c->scrape_configs[0].honor_labels);
    assert_false(c->scrape_configs[0].honor_timestamps);
    assert_string_equal(c->scrape_configs[0].metrics_path, "/metrics");
    config_free(c);
}

static void test_unknown_keys(void **state)
{
    (void)state;
    load_fails("global:\n"
               "  scrape_interval: 15s\n"
               "scrape_configs:\n"
               "  - job_name: a\n"
               "    static_configs:\n"
               "      - targets: ['x:1']\n"
               "    scrape_intervall: 5s\n",
               BS_EPARSE,
               "t.yml:7:5: field scrape_intervall not found in type config.ScrapeConfig");
    load_fails("global:\n  foo: 1\n", BS_EPARSE,
               "t.yml:2:3: field foo not found in type config.GlobalConfig");
    load_fails("scrape_configz: []\n", BS_EPARSE,
               "t.yml:1:1: field scrape_configz not found in type config.Config");
    load_fails("scrape_configs:\n  - job_name: a\n    static_configs:\n      - target: [x]\n",
               BS_EPARSE, "t.yml:4:9: field target not found in type targetgroup.Group");
}

static void test_bad_duration(void **state)
{
    (void)state;
    load_fails("global:\n  evaluation_interval: 1m\n  scrape_interval: 15x\n", BS_EINVAL,
               "t.yml:3:20: not a valid duration string: \"15x\" (key scrape_interval)");
    load_fails("scrape_configs:\n  - job_name: a\n    scrape_timeout: -5s\n", BS_EINVAL,
               "t.yml:3:21: not a valid duration string: \"-5s\" (key scrape_timeout)");
    load_fails("global:\n  scrape_interval: [1m]\n", BS_EPARSE,
               "t.yml:2:20: expected a string for key scrape_interval");
}

static void test_timeout_greater_than_interval(void **state)
{
    (void)state;
    load_fails("scrape_configs:\n"
               "  - job_name: slowpoke\n"
               "    scrape_interval: 10s\n"
               "    scrape_timeout: 11s\n",
               BS_EINVAL,
               "t.yml:4:21: scrape timeout greater than scrape interval for scrape config with job "
               "name \"slowpoke\"");
    /* Interval inherited from global. */
    load_fails("global:\n  scrape_interval: 5s\n  scrape_timeout: 5s\n"
               "scrape_configs:\n  - job_name: x\n    scrape_timeout: 6s\n",
               BS_EINVAL,
               "t.yml:6:21: scrape timeout greater than scrape interval for scrape config with job "
               "name \"x\"");
    load_fails("global:\n  scrape_interval: 5s\n  scrape_timeout: 6s\n", BS_EINVAL,
               "t.yml:3:19: global scrape timeout greater than scrape interval");
}

static void test_duplicate_jobs(void **state)
{
    (void)state;
    load_fails("scrape_configs:\n"
               "  - job_name: a\n"
               "  - job_name: b\n"
               "  - job_name: a\n"
               "  - job_name: b\n",
               BS_EINVAL, "t.yml:4:15: found multiple scrape configs with job name \"a\"");
    load_fails("scrape_configs:\n  - scrape_interval: 5s\n", BS_EINVAL,
               "t.yml:2:5: job_name is empty");
    load_fails("scrape_configs:\n  -\n", BS_EINVAL,
               "t.yml:2:4: empty or null scrape config section");
    /* A key repeated within one mapping, as yaml.v2 reports it. */
    load_fails("scrape_configs:\n  - job_name: a\n    metrics_path: /x\n    metrics_path: /y\n",
               BS_EPARSE, "t.yml:4:5: mapping key \"metrics_path\" already defined at line 3");
}

static void test_wrong_types(void **state)
{
    (void)state;
    load_fails("scrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: x:1\n",
               BS_EPARSE, "t.yml:4:18: expected a list for key targets");
    load_fails("global:\n  - scrape_interval: 1m\n", BS_EPARSE,
               "t.yml:2:3: expected a mapping for key global");
    load_fails("scrape_configs:\n  job_name: a\n", BS_EPARSE,
               "t.yml:2:3: expected a list for key scrape_configs");
    load_fails("scrape_configs:\n  - job_name: {a: b}\n", BS_EPARSE,
               "t.yml:2:15: expected a string for key job_name");
    load_fails("scrape_configs:\n  - job_name: a\n    honor_labels: maybe\n", BS_EPARSE,
               "t.yml:3:19: expected a boolean for key honor_labels, got \"maybe\"");
    load_fails("scrape_configs:\n  - job_name: a\n    params:\n      module: x\n", BS_EPARSE,
               "t.yml:4:15: expected a list for key module");
    load_fails("scrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: [[x]]\n",
               BS_EPARSE, "t.yml:4:19: expected a string in the list for key targets");
    load_fails("- a\n- b\n", BS_EPARSE,
               "t.yml:1:1: expected a mapping at the top level of the configuration");
    load_fails("scrape_configs:\n  - job_name: a\n    scheme: ftp\n", BS_EINVAL,
               "t.yml:3:13: invalid scheme \"ftp\" for scrape config with job name \"a\": must be "
               "\"http\" or \"https\"");
    load_fails("scrape_configs:\n  - job_name: a\n    static_configs:\n"
               "      - targets: ['http://x:1/metrics']\n",
               BS_EINVAL, "t.yml:4:19: \"http://x:1/metrics\" is not a valid hostname");
}

static void test_invalid_label_name(void **state)
{
    (void)state;
    load_fails("global:\n  external_labels:\n    ok: 1\n    0bad: x\n", BS_EINVAL,
               "t.yml:4:5: \"0bad\" is not a valid label name (key external_labels)");
    load_fails("scrape_configs:\n  - job_name: a\n    static_configs:\n"
               "      - targets: [x]\n        labels:\n          \"a-b\": c\n",
               BS_EINVAL, "t.yml:6:11: \"a-b\" is not a valid label name (key labels)");
    load_fails("global:\n  external_labels:\n    a: [x]\n", BS_EPARSE,
               "t.yml:3:8: expected a string for key a");
}

static void test_yaml_syntax_error(void **state)
{
    (void)state;
    struct config *c = NULL;
    struct bs_error err = {0};
    const char *y = "global:\n  scrape_interval: 15s\n scrape_timeout: 10s\n";
    assert_int_equal(config_load_string(y, strlen(y), "bad.yml", &c, &err), BS_EPARSE);
    assert_null(c);
    assert_string_equal(err.msg, "bad.yml:3:2: yaml: did not find expected key while parsing a "
                                 "block mapping (line 1, column 1)");
    y = "a: [1, 2\n";
    assert_int_equal(config_load_string(y, strlen(y), "bad.yml", &c, &err), BS_EPARSE);
    assert_non_null(strstr(err.msg, "bad.yml:2:1: yaml: "));
    y = "a: *nope\n";
    assert_int_equal(config_load_string(y, strlen(y), "bad.yml", &c, &err), BS_EPARSE);
    assert_non_null(strstr(err.msg, "bad.yml:1:4: yaml: found undefined alias"));
    /* Invalid UTF-8 is a reader error, positioned by byte offset. */
    y = "global:\n  x: \xff\n";
    assert_int_equal(config_load_string(y, strlen(y), "bad.yml", &c, &err), BS_EPARSE);
    assert_non_null(strstr(err.msg, "bad.yml:2:6: yaml: "));
}

static void test_unsupported_keys(void **state)
{
    (void)state;
    struct config *c = load_ok("scrape_config_files: [a.yml]\n"
                               "global:\n"
                               "  query_log_file: q.log\n"
                               "scrape_configs:\n"
                               "  - job_name: a\n"
                               "    http_headers:\n"
                               "      X-A: {values: [b]}\n"
                               "    oauth2: {client_id: x}\n"
                               "  - job_name: b\n"
                               "    http_headers: {}\n"
                               "remote_write:\n"
                               "  - url: http://x/api/v1/write\n");
    assert_int_equal(c->nscrape_configs, 2);
    assert_int_equal(c->nwarnings, 5);
    assert_string_equal(c->warnings[0], "t.yml:1:1: key scrape_config_files is not supported yet "
                                        "and is ignored");
    assert_string_equal(c->warnings[1], "t.yml:3:3: key query_log_file is not supported yet and "
                                        "is ignored");
    assert_string_equal(c->warnings[2], "t.yml:6:5: key http_headers is not supported yet and "
                                        "is ignored (2 occurrences)");
    assert_string_equal(c->warnings[3], "t.yml:8:5: key oauth2 is not supported yet and is "
                                        "ignored");
    assert_string_equal(c->warnings[4], "t.yml:11:1: key remote_write is not supported yet and is "
                                        "ignored");
    config_free(c);
    /* A key of another section's table is still unknown here. */
    load_fails("http_headers: []\n", BS_EPARSE,
               "t.yml:1:1: field http_headers not found in type config.Config");
}

static void test_anchors_and_merge_keys(void **state)
{
    (void)state;
    struct config *c = load_ok("scrape_configs:\n"
                               "  - &base\n"
                               "    job_name: one\n"
                               "    scrape_interval: 7s\n"
                               "    static_configs:\n"
                               "      - targets: &t ['h:1', 'h:2']\n"
                               "        labels: &l {x: y}\n"
                               "  - <<: *base\n"
                               "    job_name: two\n"
                               "    static_configs:\n"
                               "      - targets: *t\n"
                               "        labels:\n"
                               "          <<: *l\n"
                               "          z: w\n");
    assert_int_equal(c->nscrape_configs, 2);
    const struct config_scrape *two = config_scrape_find(c, "two");
    assert_non_null(two);
    assert_int_equal(two->scrape_interval_ms, 7000);
    assert_int_equal(two->static_configs[0].ntargets, 2);
    assert_string_equal(two->static_configs[0].targets[1], "h:2");
    assert_int_equal(two->static_configs[0].labels->n, 2);
    assert_string_equal(labels_get(two->static_configs[0].labels, "x"), "y");
    assert_string_equal(labels_get(two->static_configs[0].labels, "z"), "w");
    config_free(c);

    /* A mapping that merges itself ends in an error, not a loop. */
    load_fails("global: &g\n  <<: *g\n", BS_ELIMIT,
               "t.yml:2:3: merge keys (<<) nested more than 8 deep");
}

static void test_limits(void **state)
{
    (void)state;
    struct config *c = NULL;
    struct bs_error err = {0};
    /* Over the size cap. */
    size_t big = (size_t)CONFIG_MAX_SIZE + 1;
    char *text = malloc(big);
    assert_non_null(text);
    memset(text, ' ', big);
    assert_int_equal(config_load_string(text, big, "big.yml", &c, &err), BS_ELIMIT);
    assert_null(c);
    free(text);

    /* Aliases multiply: 1024 jobs x 1024 static configs x 2 targets. */
    struct bs_buf b;
    bs_buf_init(&b, 0);
    assert_int_equal(bs_buf_puts(&b, "scrape_configs:\n  - &j\n    job_name: j0\n"
                                     "    static_configs: &s [\n"),
                     BS_OK);
    for (int i = 0; i < 1024; i++)
        assert_int_equal(bs_buf_puts(&b, i ? ", {targets: *t}" : "{targets: &t ['a:1', 'b:1']}"),
                         BS_OK);
    assert_int_equal(bs_buf_puts(&b, "]\n"), BS_OK);
    for (int i = 1; i < 1024; i++)
        assert_int_equal(bs_buf_printf(&b, "  - {job_name: j%d, static_configs: *s}\n", i), BS_OK);
    err.msg[0] = '\0';
    assert_int_equal(config_load_string(b.data, b.len, "bomb.yml", &c, &err), BS_ELIMIT);
    assert_null(c);
    assert_non_null(strstr(err.msg, "configuration too large"));
    bs_buf_fini(&b);
}

static void test_load_file(void **state)
{
    (void)state;
    struct config *c = NULL;
    struct bs_error err = {0};
    assert_int_equal(config_load_file("/nonexistent/prometheus.yml", &c, &err), BS_ENOENT);
    assert_null(c);
    assert_non_null(strstr(err.msg, "/nonexistent/prometheus.yml"));

    char path[] = "/tmp/bongsu-test-config-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *y = "scrape_configs:\n  - job_name: f\n    scrape_intervall: 1s\n";
    assert_int_equal(write(fd, y, strlen(y)), (ssize_t)strlen(y));
    close(fd);
    assert_int_equal(config_load_file(path, &c, &err), BS_EPARSE);
    char want[256];
    snprintf(want, sizeof want,
             "%s:3:5: field scrape_intervall not found in type "
             "config.ScrapeConfig",
             path);
    assert_string_equal(err.msg, want);

    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(config_default_yaml, f);
    fclose(f);
    assert_int_equal(config_load_file(path, &c, &err), 0);
    assert_string_equal(c->path, path);
    assert_string_equal(c->source, config_default_yaml);
    assert_int_equal(c->nscrape_configs, 1);
    config_free(c);
    unlink(path);

    /* A directory cannot be read as a file. */
    assert_int_equal(config_load_file("/tmp", &c, &err), BS_EIO);
    assert_null(c);
}

static void test_anchor_prometheus_yml(void **state)
{
    (void)state;
    struct config *c = NULL;
    struct bs_error err = {0};
    int rc = config_load_file("../shared/tools/anchors/prometheus.yml", &c, &err);
    if (rc != 0)
        fail_msg("loading the anchors' prometheus.yml failed: %s", err.msg);
    assert_int_equal(c->scrape_interval_ms, 5000);
    assert_int_equal(c->scrape_timeout_ms, 4000);
    assert_int_equal(c->evaluation_interval_ms, 5000);
    assert_string_equal(labels_get(c->external_labels, "anchor"), "prometheus");
    assert_int_equal(c->nscrape_configs, 4);
    assert_true(config_scrape_find(c, "pushgateway")->honor_labels);
    const struct config_scrape *ipmi = config_scrape_find(c, "ipmi");
    assert_non_null(ipmi);
    assert_int_equal(ipmi->scrape_interval_ms, 30000);
    assert_int_equal(ipmi->scrape_timeout_ms, 25000);
    assert_string_equal(ipmi->metrics_path, "/ipmi");
    assert_int_equal(ipmi->nparams, 1);
    assert_string_equal(ipmi->params[0].name, "module");
    assert_string_equal(ipmi->params[0].values[0], "anchor");
    assert_string_equal(ipmi->static_configs[0].targets[0], "127.0.0.1:9623");
    const struct config_scrape *node = config_scrape_find(c, "node");
    assert_int_equal(node->scrape_timeout_ms, 4000);
    /* alerting, rule_files and relabel_configs are all decoded now */
    assert_int_equal(c->nwarnings, 0);
    assert_int_equal(c->nrule_files, 1);
    assert_string_equal(c->rule_files[0], "../shared/tools/anchors/prometheus_rules.yml");
    assert_int_equal(c->nalertmanagers, 1);
    assert_string_equal(c->alertmanagers[0].static_configs[0].targets[0], "127.0.0.1:19093");
    assert_int_equal(c->alertmanagers[0].timeout_ms, CONFIG_DEFAULT_ALERTMANAGER_TIMEOUT_MS);
    assert_string_equal(c->alertmanagers[0].scheme, "http");
    assert_string_equal(c->alertmanagers[0].path_prefix, "");
    size_t nrelabel = 0;
    for (size_t i = 0; i < c->nscrape_configs; i++)
        nrelabel += c->scrape_configs[i].nrelabel_configs;
    assert_true(nrelabel > 0);
    config_free(c);
}


static void test_relabel_configs(void **state)
{
    (void)state;
    struct config *c = load_ok("scrape_configs:\n"
                               "  - job_name: a\n"
                               "    static_configs: [{targets: ['http://x/probe']}]\n"
                               "    relabel_configs:\n"
                               "      - source_labels: [__address__]\n"
                               "        target_label: __param_target\n"
                               "      - {action: HashMod, source_labels: [a, b], separator: '',\n"
                               "         modulus: 0x10, target_label: shard}\n"
                               "      - {action: labeldrop, regex: 'tmp_.*'}\n"
                               "    metric_relabel_configs:\n"
                               "      - {action: drop, source_labels: [__name__], regex: 'go_.*'}\n");
    const struct config_scrape *s = &c->scrape_configs[0];
    assert_int_equal(s->nrelabel_configs, 3);
    assert_int_equal(s->relabel_configs[0].action, LABELS_RELABEL_REPLACE);
    assert_string_equal(s->relabel_configs[0].source_labels[0], "__address__");
    assert_string_equal(s->relabel_configs[0].regex, "(.*)");
    assert_string_equal(s->relabel_configs[0].replacement, "$1");
    assert_int_equal(s->relabel_configs[1].action, LABELS_RELABEL_HASHMOD);
    assert_int_equal(s->relabel_configs[1].modulus, 16);
    assert_string_equal(s->relabel_configs[1].separator, "");
    assert_int_equal(s->relabel_configs[2].action, LABELS_RELABEL_LABELDROP);
    assert_int_equal(s->nmetric_relabel_configs, 1);
    assert_string_equal(s->metric_relabel_configs[0].regex, "go_.*");
    /* Relabeling may fix URL-like targets, so they are allowed here. */
    assert_string_equal(s->static_configs[0].targets[0], "http://x/probe");
    config_free(c);

    const char *pre = "scrape_configs:\n  - job_name: a\n    relabel_configs:\n";
    struct {
        const char *rules;
        int code;
        const char *msg;
    } bad[] = {
        {"      -\n", BS_EINVAL, "t.yml:4:8: empty or null target relabeling rule in scrape config"},
        {"      - action: replace\n", BS_EINVAL,
         "t.yml:4:9: relabel configuration for replace action requires 'target_label' value"},
        {"      - {action: bogus}\n", BS_EINVAL, "t.yml:4:9: unknown relabel action \"bogus\""},
        {"      - {action: hashmod, target_label: x}\n", BS_EINVAL,
         "t.yml:4:9: relabel configuration for hashmod requires non-zero modulus"},
        {"      - {action: labeldrop, regex: x, source_labels: []}\n", BS_EINVAL,
         "t.yml:4:9: labeldrop action requires only 'regex', and no other fields"},
        {"      - {source_labels: ['a-b'], target_label: x}\n", BS_EINVAL,
         "t.yml:4:9: \"a-b\" is not a valid label name"},
        {"      - {regex: '(', target_label: x}\n", BS_EPARSE, NULL},
        {"      - {modulus: x}\n", BS_EPARSE,
         "t.yml:4:19: cannot unmarshal !!str `x` into uint64 (key modulus)"},
        {"      - {foo: 1}\n", BS_EPARSE, "t.yml:4:10: field foo not found in type relabel.plain"},
        {"      - {source_labels: a, target_label: x}\n", BS_EPARSE,
         "t.yml:4:25: expected a list for key source_labels"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char y[512];
        snprintf(y, sizeof y, "%s%s", pre, bad[i].rules);
        struct config *cc = (struct config *)1;
        struct bs_error err = {0};
        int rc = config_load_string(y, strlen(y), "t.yml", &cc, &err);
        if (rc != bad[i].code || (bad[i].msg && strcmp(err.msg, bad[i].msg) != 0))
            fail_msg("case %zu: rc %d, %s", i, rc, err.msg);
        if (!bad[i].msg)
            assert_non_null(strstr(err.msg, "t.yml:4:17: error parsing regexp: "));
        assert_null(cc);
    }
    load_fails("scrape_configs:\n  - job_name: a\n    metric_relabel_configs: [~]\n", BS_EINVAL,
               "t.yml:3:30: empty or null metric relabeling rule in scrape config");
    /* Without relabel_configs a URL-like target is still refused. */
    load_fails("scrape_configs:\n  - job_name: a\n    relabel_configs: []\n"
               "    static_configs: [{targets: ['http://x/']}]\n",
               BS_EINVAL, "t.yml:4:33: \"http://x/\" is not a valid hostname");
}

static void test_limits_keys(void **state)
{
    (void)state;
    struct config *c = load_ok("global:\n"
                               "  sample_limit: 1000\n"
                               "  body_size_limit: 10MB\n"
                               "  label_limit: 30\n"
                               "scrape_configs:\n"
                               "  - job_name: a\n"
                               "    sample_limit: 5\n"
                               "    target_limit: 2\n"
                               "    label_name_length_limit: 1_000\n"
                               "    label_value_length_limit: 200\n"
                               "    body_size_limit: 1.5KiB\n"
                               "  - job_name: b\n"
                               "    body_size_limit: 1GB512MB\n"
                               "  - job_name: c\n");
    const struct config_limits *l = &c->scrape_configs[0].limits;
    assert_int_equal(l->sample_limit, 5);
    assert_int_equal(l->target_limit, 2);
    assert_int_equal(l->label_limit, 30); /* from global */
    assert_int_equal(l->label_name_length_limit, 1000);
    assert_int_equal(l->label_value_length_limit, 200);
    assert_int_equal(l->body_size_limit, 1536);
    assert_int_equal(c->scrape_configs[1].limits.body_size_limit, (1 << 30) + (512 << 20));
    assert_int_equal(c->scrape_configs[2].limits.sample_limit, 1000);
    assert_int_equal(c->scrape_configs[2].limits.body_size_limit, 10 << 20);
    assert_int_equal(c->scrape_configs[2].limits.target_limit, 0);
    config_free(c);
    /* Messages as Prometheus's units and yaml libraries word them. */
    load_fails("scrape_configs:\n  - job_name: a\n    body_size_limit: 1000\n", BS_EINVAL,
               "t.yml:3:22: units: unknown unit  in 1000");
    load_fails("scrape_configs:\n  - job_name: a\n    body_size_limit: 10XB\n", BS_EINVAL,
               "t.yml:3:22: units: unknown unit XB in 10XB");
    load_fails("scrape_configs:\n  - job_name: a\n    body_size_limit: MB\n", BS_EINVAL,
               "t.yml:3:22: units: invalid MB");
    load_fails("scrape_configs:\n  - job_name: a\n    sample_limit: -1\n", BS_EPARSE,
               "t.yml:3:19: cannot unmarshal !!int `-1` into uint (key sample_limit)");
    load_fails("scrape_configs:\n  - job_name: a\n    label_limit: \"5\"\n", BS_EPARSE,
               "t.yml:3:18: cannot unmarshal !!str `5` into uint (key label_limit)");
    load_fails("global:\n  target_limit: lots\n", BS_EPARSE,
               "t.yml:2:17: cannot unmarshal !!str `lots` into uint (key target_limit)");
}

static void test_http_client(void **state)
{
    (void)state;
    char dir[] = "/tmp/bongsu-test-http-XXXXXX";
    assert_non_null(mkdtemp(dir));
    const char *files[] = {"tok", "pw", "ca.crt", "c.crt", "c.key"};
    char path[256];
    for (size_t i = 0; i < 5; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs("x\n", f);
        fclose(f);
    }
    /* From a file: relative names are resolved against its directory. */
    snprintf(path, sizeof path, "%s/prometheus.yml", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("scrape_configs:\n"
          "  - job_name: basic\n"
          "    basic_auth: {username: u, password_file: pw}\n"
          "    follow_redirects: false\n"
          "    enable_http2: false\n"
          "    proxy_url: http://proxy:3128\n"
          "    tls_config:\n"
          "      ca_file: ca.crt\n"
          "      cert_file: c.crt\n"
          "      key_file: c.key\n"
          "      server_name: example.com\n"
          "      insecure_skip_verify: true\n"
          "      min_version: TLS13\n"
          "  - job_name: bearer\n"
          "    bearer_token_file: tok\n"
          "  - job_name: bearer_inline\n"
          "    bearer_token: secret\n"
          "  - job_name: authz\n"
          "    authorization: {type: '  Token ', credentials: c}\n"
          "  - job_name: authz_default\n"
          "    authorization: {credentials_file: /dev/null}\n"
          "  - job_name: plain\n",
          f);
    fclose(f);
    struct config *c = NULL;
    struct bs_error err = {0};
    if (config_load_file(path, &c, &err) != 0)
        fail_msg("load: %s", err.msg);
    const struct config_http_client *h = &config_scrape_find(c, "basic")->http;
    char want[300];
    assert_true(h->has_basic_auth);
    assert_false(h->has_authorization);
    assert_string_equal(h->username, "u");
    assert_null(h->password);
    snprintf(want, sizeof want, "%s/pw", dir);
    assert_string_equal(h->password_file, want);
    assert_false(h->follow_redirects);
    assert_false(h->enable_http2);
    assert_string_equal(h->proxy_url, "http://proxy:3128");
    snprintf(want, sizeof want, "%s/ca.crt", dir);
    assert_string_equal(h->tls.ca_file, want);
    snprintf(want, sizeof want, "%s/c.key", dir);
    assert_string_equal(h->tls.key_file, want);
    assert_string_equal(h->tls.server_name, "example.com");
    assert_true(h->tls.insecure_skip_verify);
    assert_int_equal(h->tls.min_version, CONFIG_TLS_13);
    h = &config_scrape_find(c, "bearer")->http;
    assert_true(h->has_authorization);
    assert_string_equal(h->auth_type, "Bearer");
    snprintf(want, sizeof want, "%s/tok", dir);
    assert_string_equal(h->auth_credentials_file, want);
    h = &config_scrape_find(c, "bearer_inline")->http;
    assert_string_equal(h->auth_type, "Bearer");
    assert_string_equal(h->auth_credentials, "secret");
    h = &config_scrape_find(c, "authz")->http;
    assert_string_equal(h->auth_type, "Token");
    assert_string_equal(h->auth_credentials, "c");
    assert_string_equal(config_scrape_find(c, "authz_default")->http.auth_type, "Bearer");
    h = &config_scrape_find(c, "plain")->http;
    assert_false(h->has_basic_auth || h->has_authorization);
    assert_true(h->follow_redirects && h->enable_http2);
    assert_null(h->proxy_url);
    assert_int_equal(h->tls.min_version, CONFIG_TLS_DEFAULT);
    config_free(c);
    for (size_t i = 0; i < 5; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/prometheus.yml", dir);
    unlink(path);
    rmdir(dir);

    /* Prometheus's validation messages. */
    const char *j = "scrape_configs:\n  - job_name: a\n";
    struct {
        const char *body;
        const char *msg;
    } bad[] = {
        {"    bearer_token: x\n    bearer_token_file: /dev/null\n",
         "t.yml:4:24: at most one of bearer_token & bearer_token_file must be configured"},
        {"    basic_auth: {username: u}\n    bearer_token: x\n",
         "t.yml:4:5: at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be "
         "configured"},
        {"    basic_auth: {username: u, password: p, password_file: /dev/null}\n",
         "t.yml:3:59: at most one of basic_auth password & password_file must be configured"},
        {"    authorization: {credentials: x}\n    bearer_token: y\n",
         "t.yml:4:5: authorization is not compatible with bearer_token & bearer_token_file"},
        {"    authorization: {type: basic, credentials: x}\n",
         "t.yml:3:5: authorization type cannot be set to \"basic\", use \"basic_auth\" instead"},
        {"    authorization: {credentials: x}\n    basic_auth: {username: u}\n",
         "t.yml:4:5: at most one of basic_auth, oauth2 & authorization must be configured"},
        {"    authorization: {credentials: x, credentials_file: /dev/null}\n",
         "t.yml:3:55: at most one of authorization credentials & credentials_file must be "
         "configured"},
        {"    tls_config: {min_version: TLS14}\n", "t.yml:3:31: unknown TLS version: TLS14"},
        {"    tls_config: {cert_file: /dev/null}\n",
         "t.yml:3:29: client cert file \"/dev/null\" specified without client key file"},
        {"    tls_config: {key_file: /dev/null}\n",
         "t.yml:3:28: client key file \"/dev/null\" specified without client cert file"},
        {"    tls_config: {ca_file: /nonexistent/ca.crt}\n",
         "t.yml:3:27: error checking CA file \"/nonexistent/ca.crt\": stat /nonexistent/ca.crt: "
         "no such file or directory"},
        {"    tls_config: {cert_file: /nope/c, key_file: /dev/null}\n",
         "t.yml:3:29: error checking client cert file \"/nope/c\": stat /nope/c: no such file or "
         "directory"},
        {"    bearer_token_file: nope\n",
         "t.yml:3:24: error checking authorization credentials or bearer token file \"nope\": "
         "stat nope: no such file or directory"},
        {"    basic_auth: {username: u, password_file: /nope}\n",
         "t.yml:3:46: error checking basic auth password file \"/nope\": stat /nope: no such file "
         "or directory"},
        {"    proxy_url: \"::x\"\n", "t.yml:3:16: parse \"::x\": missing protocol scheme"},
        {"    tls_config: {foo: 1}\n", "t.yml:3:18: field foo not found in type config.plain"},
        {"    basic_auth: {foo: 1}\n", "t.yml:3:18: field foo not found in type config.plain"},
        {"    authorization: {foo: 1}\n",
         "t.yml:3:21: field foo not found in type config.Authorization"},
        {"    follow_redirects: maybe\n",
         "t.yml:3:23: expected a boolean for key follow_redirects, got \"maybe\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char y[512];
        snprintf(y, sizeof y, "%s%s", j, bad[i].body);
        struct config *cc = (struct config *)1;
        struct bs_error e = {0};
        int rc = config_load_string(y, strlen(y), "t.yml", &cc, &e);
        if (rc >= 0 || strcmp(e.msg, bad[i].msg) != 0)
            fail_msg("case %zu: rc %d, %s", i, rc, e.msg);
        assert_null(cc);
    }
}

static void test_rule_files_and_alerting(void **state)
{
    (void)state;
    struct config *c = load_ok("rule_files: ['rules/*.yml', /abs/x.yml]\n"
                               "alerting:\n"
                               "  alert_relabel_configs:\n"
                               "    - action: labeldrop\n"
                               "      regex: replica\n"
                               "  alertmanagers:\n"
                               "    - scheme: https\n"
                               "      path_prefix: /am\n"
                               "      timeout: 3s\n"
                               "      api_version: v2\n"
                               "      basic_auth: {username: u, password: p}\n"
                               "      tls_config: {insecure_skip_verify: true}\n"
                               "      static_configs:\n"
                               "        - targets: ['a:9093', 'b:9093']\n"
                               "        - targets: ['c:9093']\n"
                               "    - bearer_token: tok\n"
                               "      relabel_configs: []\n"
                               "      static_configs: [{targets: ['d:9093']}]\n");
    assert_int_equal(c->nrule_files, 2);
    /* A string config has no directory: names stay as written. */
    assert_string_equal(c->rule_files[0], "rules/*.yml");
    assert_string_equal(c->rule_files[1], "/abs/x.yml");
    assert_int_equal(c->nalert_relabel_configs, 1);
    assert_int_equal(c->nalertmanagers, 2);
    const struct config_alertmanager *a = &c->alertmanagers[0];
    assert_string_equal(a->scheme, "https");
    assert_string_equal(a->path_prefix, "/am");
    assert_int_equal(a->timeout_ms, 3000);
    assert_true(a->http.has_basic_auth);
    assert_string_equal(a->http.username, "u");
    assert_string_equal(a->http.password, "p");
    assert_true(a->http.tls.insecure_skip_verify);
    assert_int_equal(a->nstatic_configs, 2);
    assert_string_equal(a->static_configs[1].targets[0], "c:9093");
    const struct config_alertmanager *b = &c->alertmanagers[1];
    assert_true(b->http.has_authorization);
    assert_string_equal(b->http.auth_type, "Bearer");
    assert_string_equal(b->http.auth_credentials, "tok");
    assert_int_equal(b->timeout_ms, 10000);
    /* relabel_configs of an Alertmanager: accepted, with a warning */
    assert_int_equal(c->nwarnings, 1);
    assert_string_equal(c->warnings[0],
                        "t.yml:17:7: key relabel_configs is not supported yet and is ignored");
    config_free(c);

    load_fails("alerting:\n  alertmanagers:\n    - api_version: v1\n", BS_EINVAL,
               "t.yml:3:20: alertmanager api v1 is no longer supported");
    load_fails("alerting:\n  alertmanagers:\n    - api_version: v3\n", BS_EINVAL,
               "t.yml:3:20: expected Alertmanager api version to be one of [v1 v2] but got v3");
    load_fails("alerting:\n  alertmanagers:\n    - scheme: ftp\n", BS_EINVAL,
               "t.yml:3:15: invalid scheme \"ftp\" for alertmanager config: must be \"http\" "
               "or \"https\"");
    load_fails("alerting:\n  alertmanagers:\n    - timeout: soon\n", BS_EINVAL,
               "t.yml:3:16: not a valid duration string: \"soon\" (key timeout)");
    load_fails("alerting:\n  alertmanagers:\n    - basic_auth: {username: u}\n"
               "      bearer_token: t\n",
               BS_EINVAL,
               "t.yml:4:7: at most one of basic_auth, oauth2, bearer_token & bearer_token_file "
               "must be configured");
    load_fails("alerting:\n  alertmanagers:\n    - static_configs: [{targets: ['a/b']}]\n",
               BS_EINVAL, "t.yml:3:35: \"a/b\" is not a valid hostname");
    load_fails("alerting:\n  notifiers: []\n", BS_EPARSE,
               "t.yml:2:3: field notifiers not found in type config.AlertingConfig");
    load_fails("alerting:\n  alertmanagers:\n    - nope: 1\n", BS_EPARSE,
               "t.yml:3:7: field nope not found in type config.AlertmanagerConfig");
    load_fails("alerting:\n  alert_relabel_configs:\n    - action: bogus\n", BS_EINVAL,
               "t.yml:3:7: unknown relabel action \"bogus\"");
    load_fails("rule_files: ['a/*/b.yml']\n", BS_EINVAL,
               "t.yml:1:14: invalid rule file path \"a/*/b.yml\"");
    load_fails("rule_files: [a, [b]]\n", BS_EPARSE,
               "t.yml:1:17: expected a string in the list for key rule_files");
}

static void test_rule_files_relative_to_config_dir(void **state)
{
    (void)state;
    char dir[] = "/tmp/bongsu-test-rules-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/prometheus.yml", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("rule_files: ['rules/*.yml', '/etc/x.yml']\n"
          "ipmi_configs:\n"
          "  - job_name: bmc\n"
          "    password_file: pw\n"
          "    static_configs: [{targets: [h1]}]\n",
          f);
    fclose(f);
    char pw[300];
    snprintf(pw, sizeof pw, "%s/pw", dir);
    f = fopen(pw, "w");
    assert_non_null(f);
    fputs("secret\n", f);
    fclose(f);
    struct config *c = NULL;
    struct bs_error err = {0};
    if (config_load_file(path, &c, &err) != 0)
        fail_msg("%s", err.msg);
    char want[1024];
    snprintf(want, sizeof want, "%s/rules/*.yml", dir);
    assert_string_equal(c->rule_files[0], want);
    assert_string_equal(c->rule_files[1], "/etc/x.yml");
    assert_string_equal(c->ipmi_configs[0].password_file, pw);
    config_free(c);
    unlink(pw);
    /* A password file that does not exist fails the load. */
    assert_int_equal(config_load_file(path, &c, &err), BS_EINVAL);
    snprintf(want, sizeof want,
             "%s:4:20: error checking IPMI password file \"%s\": stat %s: no such file or "
             "directory",
             path, pw, pw);
    assert_string_equal(err.msg, want);
    unlink(path);
    rmdir(dir);
}

static void test_ipmi_configs(void **state)
{
    (void)state;
    struct config *c = load_ok("global:\n"
                               "  scrape_interval: 30s\n"
                               "  scrape_timeout: 5s\n"
                               "ipmi_configs:\n"
                               "  - job_name: bmc\n"
                               "    username: monitor\n"
                               "    password: pw\n"
                               "    driver: lan\n"
                               "    privilege: Operator\n"
                               "    cipher_suite_id: 17\n"
                               "    workaround_flags: [idzero, AUTHCAP]\n"
                               "    static_configs:\n"
                               "      - targets: ['10.0.0.1', '10.0.0.2:624']\n"
                               "        labels: {rack: r1}\n"
                               "    relabel_configs:\n"
                               "      - target_label: dc\n"
                               "        replacement: x\n"
                               "  - job_name: bmc2\n"
                               "    scrape_interval: 2m\n"
                               "    static_configs: [{targets: [h]}]\n"
                               "scrape_configs:\n"
                               "  - job_name: node\n");
    assert_int_equal(c->nipmi_configs, 2);
    const struct config_ipmi *a = &c->ipmi_configs[0];
    assert_string_equal(a->job_name, "bmc");
    assert_int_equal(a->scrape_interval_ms, 30000);
    assert_int_equal(a->scrape_timeout_ms, 5000);
    assert_string_equal(a->username, "monitor");
    assert_string_equal(a->password, "pw");
    assert_null(a->password_file);
    assert_int_equal(a->driver, CONFIG_IPMI_DRIVER_LAN);
    assert_int_equal(a->privilege, CONFIG_IPMI_PRIV_OPERATOR);
    assert_int_equal(a->cipher_suite_id, 17);
    assert_int_equal(a->nworkaround_flags, 2);
    assert_string_equal(a->workaround_flags[1], "AUTHCAP");
    assert_int_equal(a->nstatic_configs, 1);
    assert_int_equal(a->static_configs[0].ntargets, 2);
    assert_string_equal(labels_get(a->static_configs[0].labels, "rack"), "r1");
    assert_int_equal(a->nrelabel_configs, 1);
    const struct config_ipmi *b = &c->ipmi_configs[1];
    assert_int_equal(b->scrape_interval_ms, 120000);
    assert_int_equal(b->scrape_timeout_ms, 5000);
    assert_int_equal(b->driver, CONFIG_IPMI_DRIVER_LAN_2_0);
    assert_int_equal(b->privilege, CONFIG_IPMI_PRIV_USER);
    assert_int_equal(b->cipher_suite_id, CONFIG_DEFAULT_IPMI_CIPHER_SUITE);
    assert_null(b->username);
    assert_int_equal(c->nwarnings, 0);
    config_free(c);

    /* Service discovery: decoded as for scrape jobs, with the same errors. */
    c = load_ok("ipmi_configs:\n  - job_name: b\n"
                "    file_sd_configs: [{files: [x.json, 'd/*.yml'], refresh_interval: 30s}]\n"
                "    http_sd_configs: [{url: 'http://sd.example/targets'}]\n"
                "    dns_sd_configs: [{names: [bmc.example], type: A, port: 623}]\n");
    assert_int_equal(c->nwarnings, 0);
    const struct config_ipmi *s = &c->ipmi_configs[0];
    assert_int_equal(s->nfile_sd_configs, 1);
    assert_int_equal(s->file_sd_configs[0].nfiles, 2);
    assert_string_equal(s->file_sd_configs[0].files[0], "x.json");
    assert_string_equal(s->file_sd_configs[0].files[1], "d/*.yml");
    assert_int_equal(s->file_sd_configs[0].refresh_interval_ms, 30000);
    assert_int_equal(s->nhttp_sd_configs, 1);
    assert_string_equal(s->http_sd_configs[0].url, "http://sd.example/targets");
    assert_int_equal(s->http_sd_configs[0].refresh_interval_ms, CONFIG_DEFAULT_HTTP_SD_REFRESH_MS);
    assert_int_equal(s->ndns_sd_configs, 1);
    assert_int_equal(s->dns_sd_configs[0].type, CONFIG_DNS_A);
    assert_int_equal(s->dns_sd_configs[0].port, 623);
    config_free(c);
    load_fails("ipmi_configs:\n  - job_name: b\n    file_sd_configs: [{files: [t.txt]}]\n",
               BS_EINVAL, "t.yml:3:32: path name \"t.txt\" is not valid for file discovery");
    load_fails("ipmi_configs:\n  - job_name: b\n    file_sd_configs: [{files: []}]\n",
               BS_EINVAL,
               "t.yml:3:31: file service discovery config must contain at least one path name");
    load_fails("ipmi_configs:\n  - job_name: b\n    file_sd_configs: [~]\n", BS_EINVAL,
               "t.yml:3:23: empty or null section in file_sd_configs");

    load_fails("ipmi_configs:\n  - job_name: b\n    driver: serial\n", BS_EINVAL,
               "t.yml:3:13: unknown driver \"serial\": expected LAN_2_0 or LAN");
    load_fails("ipmi_configs:\n  - job_name: b\n    privilege: root\n", BS_EINVAL,
               "t.yml:3:16: unknown privilege \"root\": expected user, operator or admin");
    load_fails("ipmi_configs:\n  - job_name: b\n    driver: LAN\n    workaround_flags: [opensesspriv]\n",
               BS_EINVAL,
               "t.yml:4:24: unknown workaround flag \"opensesspriv\" for driver LAN (known: "
               "authcap, idzero, forcepermsg, unexpectedauth, endianseq, noauthcodecheck, "
               "nochecksumcheck)");
    load_fails("ipmi_configs:\n  - job_name: b\n    cipher_suite_id: 18\n", BS_EINVAL,
               "t.yml:3:22: cipher_suite_id 18 out of range: IPMI 2.0 defines 0 to 17");
    load_fails("ipmi_configs:\n  - job_name: b\n    scrape_interval: 5s\n    scrape_timeout: 6s\n",
               BS_EINVAL,
               "t.yml:4:21: scrape timeout greater than scrape interval for ipmi config with "
               "job name \"b\"");
    load_fails("ipmi_configs:\n  - job_name: b\n    scrape_timeout: 50ms\n", BS_EINVAL,
               "t.yml:3:21: scrape timeout below 100ms for ipmi config with job name \"b\"");
    load_fails("ipmi_configs:\n  - job_name: b\n    password: x\n    password_file: /etc/passwd\n",
               BS_EINVAL, "t.yml:4:20: at most one of password & password_file must be configured");
    load_fails("ipmi_configs:\n  - username: u\n", BS_EINVAL, "t.yml:2:5: job_name is empty");
    load_fails("ipmi_configs:\n  - job_name: b\n  - job_name: c\n  - job_name: b\n", BS_EINVAL,
               "t.yml:4:15: found multiple ipmi configs with job name \"b\"");
    load_fails("scrape_configs:\n  - job_name: b\nipmi_configs:\n  - job_name: b\n", BS_EINVAL,
               "t.yml:4:15: job name \"b\" of an ipmi config is already used by a scrape config");
    load_fails("ipmi_configs:\n  - job_name: b\n    port: 623\n", BS_EPARSE,
               "t.yml:3:5: field port not found in type config.IPMIConfig");
    load_fails("ipmi_configs:\n  - job_name: b\n    static_configs: [{targets: ['h/x']}]\n",
               BS_EINVAL, "t.yml:3:33: \"h/x\" is not a valid hostname");
}

int main(void)
{
    bs_log_set_level(BS_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default),
        cmocka_unit_test(test_rule_files_and_alerting),
        cmocka_unit_test(test_rule_files_relative_to_config_dir),
        cmocka_unit_test(test_ipmi_configs),
        cmocka_unit_test(test_full_example),
        cmocka_unit_test(test_defaults_and_timeouts),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_bad_duration),
        cmocka_unit_test(test_timeout_greater_than_interval),
        cmocka_unit_test(test_duplicate_jobs),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_invalid_label_name),
        cmocka_unit_test(test_yaml_syntax_error),
        cmocka_unit_test(test_unsupported_keys),
        cmocka_unit_test(test_anchors_and_merge_keys),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_anchor_prometheus_yml),
        cmocka_unit_test(test_relabel_configs),
        cmocka_unit_test(test_limits_keys),
        cmocka_unit_test(test_http_client),
    };
    return cmocka_run_group_tests(tests, 0, NULL);
}
