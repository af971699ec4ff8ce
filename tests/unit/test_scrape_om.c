/* SPDX-License-Identifier: Apache-2.0
 *
 * Content negotiation and OpenMetrics scraping, black-box: a small HTTP
 * server thread on 127.0.0.1 serves OpenMetrics 1.0 and 0.0.1 bodies, 0.0.4
 * text, a body without Content-Type, one with an unsupported and one with
 * an unparsable Content-Type, and records the Accept header of every
 * request by path. A scrape manager scrapes them every 200 ms into a real
 * tsdb; the tests read what was stored and the targets' lastError. The
 * scrape_protocols / fallback_scrape_protocol configuration errors are
 * checked here too.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"
#include "expfmt/expfmt.h"
#include "scrape/scrape.h"
#include "tsdb/tsdb.h"

#include "test_scrape_util.h"

/* The samples of the one series matching the name="value" pairs
 * (NULL-terminated); fails unless exactly one series matches. */
struct samples {
    char labels[512];
    size_t n;
    int64_t t[256];
    double v[256];
};

static void query_one(struct tsdb *db, struct samples *out, ...)
{
    struct labels_matcher *ms[8];
    size_t nms = 0;
    struct bs_error err;
    va_list ap;
    va_start(ap, out);
    const char *name;
    while ((name = va_arg(ap, const char *)) != NULL) {
        const char *value = va_arg(ap, const char *);
        assert_int_equal(labels_matcher_new(&ms[nms++], LABELS_MATCH_EQ, name, value, &err), 0);
    }
    va_end(ap);
    memset(out, 0, sizeof(*out));
    struct tsdb_querier *q = tsdb_querier_new(db, 0, INT64_MAX);
    struct tsdb_series_set *set = NULL;
    assert_int_equal(tsdb_querier_select(q, ms, nms, &set, &err), 0);
    size_t nseries = 0;
    while (tsdb_series_set_next(set)) {
        nseries++;
        struct bs_buf b;
        bs_buf_init(&b, 0);
        labels_format(tsdb_series_set_labels(set), &b);
        snprintf(out->labels, sizeof(out->labels), "%s", b.data ? b.data : "");
        bs_buf_fini(&b);
        struct tsdb_iterator *it = tsdb_series_set_iterator(set);
        out->n = 0;
        while (tsdb_iterator_next(it) && out->n < 256) {
            tsdb_iterator_at(it, &out->t[out->n], &out->v[out->n]);
            out->n++;
        }
        tsdb_iterator_free(it);
    }
    tsdb_series_set_free(set);
    tsdb_querier_free(q);
    for (size_t i = 0; i < nms; i++)
        labels_matcher_free(ms[i]);
    if (nseries != 1)
        fail_msg("%zu series match, expected 1", nseries);
}

/* --------------------------------------------------------------- bodies */

#define OM_CT "application/openmetrics-text; version=1.0.0; charset=utf-8"

/* An OpenMetrics body: a counter with an exemplar and _created, a gauge
 * with a unit and an explicit timestamp (ts_s seconds, with a fraction). */
static void om_body(char *out, size_t cap, int64_t ts_ms, bool eof)
{
    snprintf(out, cap,
             "# TYPE om_requests counter\n"
             "# HELP om_requests Requests served.\n"
             "om_requests_total{code=\"200\"} 10 # {trace_id=\"abc\"} 1.0 1700000000.5\n"
             "om_requests_created{code=\"200\"} 1700000000.25\n"
             "# TYPE om_latency_seconds gauge\n"
             "# UNIT om_latency_seconds seconds\n"
             "om_latency_seconds 0.5 %lld.%03lld\n"
             "%s",
             (long long)(ts_ms / 1000), (long long)(ts_ms % 1000), eof ? "# EOF\n" : "");
}

static const char text_body[] = "# TYPE plain_metric gauge\nplain_metric{k=\"v\"} 3\n";

/* Prometheus 3's default Accept header (scrape_protocols unset). */
static const char default_accept[] =
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
    "application/openmetrics-text;version=0.0.1;q=0.5,"
    "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,"
    "text/plain;version=0.0.4;q=0.3,*/*;q=0.2";

/* ---------------------------------------------------------------- tests */

static void test_om_negotiation(void **state)
{
    (void)state;
    /* .5 s: exact in binary, so seconds -> ms is exact too. */
    int64_t ts_ms = (bs_now_ms() - 60000) / 1000 * 1000 + 500;
    static struct route routes[8];
    memset(routes, 0, sizeof(routes));
    routes[0] = (struct route){.prefix = "/om/", .ctype = OM_CT};
    om_body(routes[0].body, sizeof(routes[0].body), ts_ms, true);
    routes[1] =
        (struct route){.prefix = "/om001/", .ctype = "application/openmetrics-text; version=0.0.1"};
    om_body(routes[1].body, sizeof(routes[1].body), ts_ms, true);
    routes[2] = (struct route){.prefix = "/noeof/", .ctype = OM_CT};
    om_body(routes[2].body, sizeof(routes[2].body), ts_ms, false);
    routes[3] =
        (struct route){.prefix = "/text/", .ctype = "text/plain; version=0.0.4; charset=utf-8"};
    snprintf(routes[3].body, sizeof(routes[3].body), "%s", text_body);
    routes[4] = (struct route){.prefix = "/noct/", .ctype = NULL};
    snprintf(routes[4].body, sizeof(routes[4].body), "%s", text_body);
    routes[5] = (struct route){.prefix = "/html/", .ctype = "text/html; charset=utf-8"};
    om_body(routes[5].body, sizeof(routes[5].body), ts_ms, true);
    routes[6] = (struct route){.prefix = "/badct/", .ctype = "/plain"};
    snprintf(routes[6].body, sizeof(routes[6].body), "%s", text_body);

    struct fixture f;
    fixture_open(&f, routes, 7);
    int p = f.srv->port;
    char yaml[4096];
    snprintf(
        yaml, sizeof(yaml),
        "global: {scrape_interval: 200ms, scrape_timeout: 150ms}\n"
        "scrape_configs:\n"
        "  - {job_name: om, metrics_path: /om/a, static_configs: [{targets: ['127.0.0.1:%d']}]}\n"
        "  - {job_name: om_nots, honor_timestamps: false, metrics_path: /om/b,\n"
        "     static_configs: [{targets: ['127.0.0.1:%d']}]}\n"
        "  - {job_name: om001, metrics_path: /om001/, static_configs: [{targets: "
        "['127.0.0.1:%d']}]}\n"
        "  - {job_name: noeof, metrics_path: /noeof/, static_configs: [{targets: "
        "['127.0.0.1:%d']}]}\n"
        "  - {job_name: text, metrics_path: /text/, static_configs: [{targets: "
        "['127.0.0.1:%d']}]}\n"
        "  - {job_name: noct, metrics_path: /noct/a, static_configs: [{targets: "
        "['127.0.0.1:%d']}]}\n"
        "  - {job_name: noct_fb, metrics_path: /noct/b, fallback_scrape_protocol: "
        "PrometheusText0.0.4,\n"
        "     static_configs: [{targets: ['127.0.0.1:%d']}]}\n"
        "  - {job_name: html, metrics_path: /html/a, static_configs: [{targets: "
        "['127.0.0.1:%d']}]}\n"
        "  - {job_name: html_fb, metrics_path: /html/b, fallback_scrape_protocol: "
        "OpenMetricsText1.0.0,\n"
        "     static_configs: [{targets: ['127.0.0.1:%d']}]}\n"
        "  - {job_name: badct, metrics_path: /badct/, static_configs: [{targets: "
        "['127.0.0.1:%d']}]}\n",
        p, p, p, p, p, p, p, p, p, p);
    apply_yaml(&f, yaml);
    const char *ups[] = {"/om/a", "/om/b", "/om001/", "/text/", "/noct/b", "/html/b"};
    const char *downs[] = {"/noeof/", "/noct/a", "/html/a", "/badct/"};
    for (size_t i = 0; i < sizeof(ups) / sizeof(ups[0]); i++)
        wait_health(&f, ups[i], "up");
    for (size_t i = 0; i < sizeof(downs) / sizeof(downs[0]); i++)
        wait_health(&f, downs[i], "down");
    bs_sleep_ms(450); /* a few more scrapes of each */

    char inst[64], want[512], got[512];
    snprintf(inst, sizeof(inst), "127.0.0.1:%d", p);
    struct samples s;

    /* OpenMetrics: the counter is stored without its exemplar. */
    query_one(f.db, &s, "__name__", "om_requests_total", "job", "om", NULL);
    snprintf(want, sizeof(want), "om_requests_total{code=\"200\", instance=\"%s\", job=\"om\"}",
             inst);
    assert_string_equal(s.labels, want);
    assert_true(s.n >= 2);
    for (size_t i = 0; i < s.n; i++)
        assert_true(s.v[i] == 10.0);
    /* _created is an ordinary series. */
    query_one(f.db, &s, "__name__", "om_requests_created", "job", "om", NULL);
    assert_true(s.n >= 1 && s.v[0] == 1700000000.25);
    /* The explicit timestamp (float seconds) is honored: one sample at it. */
    query_one(f.db, &s, "__name__", "om_latency_seconds", "job", "om", NULL);
    assert_int_equal(s.n, 1);
    assert_true(s.t[0] == ts_ms);
    assert_true(s.v[0] == 0.5);
    /* ... and ignored with honor_timestamps: false. */
    query_one(f.db, &s, "__name__", "om_latency_seconds", "job", "om_nots", NULL);
    assert_true(s.n >= 2);
    assert_true(s.t[0] > ts_ms + 30000);
    /* OpenMetrics 0.0.1 is read with the same parser. */
    query_one(f.db, &s, "__name__", "om_requests_created", "job", "om001", NULL);
    assert_true(s.n >= 1);

    /* Without # EOF the scrape fails with the parser's message. */
    char noeof[2048];
    om_body(noeof, sizeof(noeof), ts_ms, false);
    struct expfmt_parser ps;
    struct bs_error perr;
    enum expfmt_entry kind;
    int rc;
    bs_error_clear(&perr);
    expfmt_parser_init_format(&ps, noeof, strlen(noeof), EXPFMT_FORMAT_OPENMETRICS);
    while ((rc = expfmt_parser_next(&ps, &kind, &perr)) == 0 && kind != EXPFMT_EOF)
        ;
    expfmt_parser_fini(&ps);
    assert_int_not_equal(rc, 0);
    assert_true(target_field(&f, "/noeof/", "lastError", got, sizeof(got)));
    assert_string_equal(got, perr.msg);
    assert_non_null(strstr(got, "EOF"));
    query_one(f.db, &s, "__name__", "up", "job", "noeof", NULL);
    for (size_t i = 0; i < s.n; i++)
        assert_true(s.v[i] == 0);

    /* text/plain: the 0.0.4 parser. */
    query_one(f.db, &s, "__name__", "plain_metric", "job", "text", NULL);
    assert_true(s.n >= 2 && s.v[0] == 3);

    /* No Content-Type: fails without a fallback, with Prometheus's text... */
    assert_true(target_field(&f, "/noct/a", "lastError", got, sizeof(got)));
    assert_string_equal(got, "non-compliant scrape target sending blank Content-Type and no "
                             "fallback_scrape_protocol specified for target");
    /* ... and is parsed as the fallback protocol with one. */
    query_one(f.db, &s, "__name__", "plain_metric", "job", "noct_fb", NULL);
    assert_true(s.n >= 2 && s.v[0] == 3);
    assert_true(target_field(&f, "/noct/b", "lastError", got, sizeof(got)));
    assert_string_equal(got, "");

    /* An unsupported Content-Type likewise. */
    assert_true(target_field(&f, "/html/a", "lastError", got, sizeof(got)));
    assert_string_equal(got, "received unsupported Content-Type \"text/html; charset=utf-8\" and "
                             "no fallback_scrape_protocol specified for target");
    query_one(f.db, &s, "__name__", "om_requests_created", "job", "html_fb", NULL);
    assert_true(s.n >= 1);

    /* An unparsable one: Go's mime error joined on a new line. */
    assert_true(target_field(&f, "/badct/", "lastError", got, sizeof(got)));
    assert_string_equal(got, "cannot parse Content-Type \"/plain\" and no fallback_scrape_protocol "
                             "for target\nmime: no media type");

    /* Every request carried the default Accept header. */
    const char *paths[] = {"/om/a", "/text/", "/noct/a", "/noct/b", "/html/b"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        server_accept(f.srv, paths[i], got, sizeof(got));
        assert_string_equal(got, default_accept);
    }
    fixture_close(&f);
}

/* scrape_protocols per job and in the global section build the Accept
 * header as Prometheus's acceptHeader does. */
static void test_accept_custom(void **state)
{
    (void)state;
    static struct route routes[1];
    routes[0] = (struct route){.prefix = "/", .ctype = "text/plain; version=0.0.4"};
    snprintf(routes[0].body, sizeof(routes[0].body), "%s", text_body);
    struct fixture f;
    fixture_open(&f, routes, 1);
    int p = f.srv->port;
    char yaml[2048];
    snprintf(yaml, sizeof(yaml),
             "global:\n"
             "  scrape_interval: 200ms\n"
             "  scrape_timeout: 150ms\n"
             "  scrape_protocols: [OpenMetricsText0.0.1]\n"
             "scrape_configs:\n"
             "  - job_name: inherit\n"
             "    metrics_path: /inherit\n"
             "    static_configs: [{targets: ['127.0.0.1:%d']}]\n"
             "  - job_name: custom\n"
             "    metrics_path: /custom\n"
             "    scrape_protocols: [PrometheusText0.0.4, OpenMetricsText1.0.0]\n"
             "    static_configs: [{targets: ['127.0.0.1:%d']}]\n"
             "  - job_name: all\n"
             "    metrics_path: /all\n"
             "    scrape_protocols: [PrometheusText1.0.0, OpenMetricsText0.0.1,\n"
             "                       PrometheusText0.0.4, OpenMetricsText1.0.0]\n"
             "    static_configs: [{targets: ['127.0.0.1:%d']}]\n"
             "  - job_name: proto\n"
             "    metrics_path: /proto\n"
             "    scrape_protocols: [PrometheusProto, PrometheusText0.0.4]\n"
             "    static_configs: [{targets: ['127.0.0.1:%d']}]\n",
             p, p, p, p);
    apply_yaml(&f, yaml);
    const char *paths[] = {"/inherit", "/custom", "/all", "/proto"};
    const char *want[] = {
        "application/openmetrics-text;version=0.0.1;q=0.6,*/*;q=0.5",
        "text/plain;version=0.0.4;q=0.6,"
        "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,*/*;q=0.4",
        "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.6,"
        "application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=0.0.4;q=0.4,"
        "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.3,*/*;q=0.2",
        /* PrometheusProto is never asked for, but keeps its weight. */
        "text/plain;version=0.0.4;q=0.5,*/*;q=0.4",
    };
    for (size_t i = 0; i < 4; i++) {
        wait_health(&f, paths[i], "up");
        char got[512];
        server_accept(f.srv, paths[i], got, sizeof(got));
        assert_string_equal(got, want[i]);
    }

    /* A reload that changes only scrape_protocols takes effect. */
    snprintf(yaml, sizeof(yaml),
             "global: {scrape_interval: 200ms, scrape_timeout: 150ms}\n"
             "scrape_configs:\n"
             "  - job_name: custom\n"
             "    metrics_path: /custom\n"
             "    scrape_protocols: [OpenMetricsText1.0.0]\n"
             "    static_configs: [{targets: ['127.0.0.1:%d']}]\n",
             p);
    apply_yaml(&f, yaml);
    int64_t deadline = now_ms() + 10000;
    char got[512];
    for (;;) {
        server_accept(f.srv, "/custom", got, sizeof(got));
        if (strcmp(got, "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
                        "*/*;q=0.5") == 0)
            break;
        if (now_ms() > deadline)
            fail_msg("Accept after reload: %s", got);
        bs_sleep_ms(20);
    }
    fixture_close(&f);
}

/* Configuration: Prometheus 3's validation messages. */
static void expect_config_error(const char *yaml, const char *want)
{
    struct config *c = NULL;
    struct bs_error err;
    bs_error_clear(&err);
    int rc = config_load_string(yaml, strlen(yaml), "t.yml", &c, &err);
    if (rc == 0) {
        config_free(c);
        fail_msg("loaded: %s", yaml);
    }
    assert_int_equal(rc, BS_EINVAL);
    if (!strstr(err.msg, want))
        fail_msg("error %s lacks %s", err.msg, want);
}

static void test_config_protocols(void **state)
{
    (void)state;
    struct config *c = NULL;
    struct bs_error err;
    const char *ok = "global:\n"
                     "  scrape_protocols: [PrometheusText0.0.4, OpenMetricsText1.0.0]\n"
                     "scrape_configs:\n"
                     "  - job_name: a\n"
                     "    static_configs: [{targets: ['h:1']}]\n"
                     "  - job_name: b\n"
                     "    scrape_protocols: [OpenMetricsText0.0.1]\n"
                     "    fallback_scrape_protocol: PrometheusText1.0.0\n"
                     "    static_configs: [{targets: ['h:1']}]\n";
    if (config_load_string(ok, strlen(ok), "t.yml", &c, &err) != 0)
        fail_msg("%s", err.msg);
    assert_int_equal(c->nwarnings, 0);
    assert_int_equal(c->scrape_protocols.n, 2);
    const struct config_scrape *a = config_scrape_find(c, "a"), *b = config_scrape_find(c, "b");
    assert_int_equal(a->protocols.n, 2);
    assert_int_equal(a->protocols.list[0], CONFIG_PROTO_PROMETHEUS_0_0_4);
    assert_int_equal(a->protocols.list[1], CONFIG_PROTO_OPENMETRICS_1_0_0);
    assert_int_equal(a->protocols.fallback, CONFIG_PROTO_NONE);
    assert_int_equal(b->protocols.n, 1);
    assert_int_equal(b->protocols.list[0], CONFIG_PROTO_OPENMETRICS_0_0_1);
    assert_int_equal(b->protocols.fallback, CONFIG_PROTO_PROMETHEUS_1_0_0);
    config_free(c);

    /* Defaults. */
    const char *dflt = "scrape_configs: [{job_name: a, static_configs: [{targets: ['h:1']}]}]\n";
    assert_int_equal(config_load_string(dflt, strlen(dflt), "t.yml", &c, &err), 0);
    a = config_scrape_find(c, "a");
    assert_int_equal(a->protocols.n, 4);
    assert_int_equal(a->protocols.list[0], CONFIG_PROTO_OPENMETRICS_1_0_0);
    assert_int_equal(a->protocols.list[1], CONFIG_PROTO_OPENMETRICS_0_0_1);
    assert_int_equal(a->protocols.list[2], CONFIG_PROTO_PROMETHEUS_1_0_0);
    assert_int_equal(a->protocols.list[3], CONFIG_PROTO_PROMETHEUS_0_0_4);
    config_free(c);

    expect_config_error("global: {scrape_protocols: []}\n",
                        "t.yml:1:28: scrape_protocols cannot be empty for global config");
    expect_config_error("global: {scrape_protocols: [PrometheusText0.0.4, prometheustext0.0.4]}\n",
                        "t.yml:1:50: duplicated protocol in scrape_protocols, got "
                        "[PrometheusText0.0.4 prometheustext0.0.4] for global config");
    expect_config_error(
        "scrape_configs:\n"
        "  - job_name: j\n"
        "    scrape_protocols: [Foo]\n"
        "    static_configs: [{targets: ['h:1']}]\n",
        "t.yml:3:24: scrape_protocols: unknown scrape protocol Foo, supported: "
        "[OpenMetricsText0.0.1 OpenMetricsText1.0.0 PrometheusProto PrometheusText0.0.4 "
        "PrometheusText1.0.0] for scrape config with job name \"j\"");
    expect_config_error(
        "scrape_configs:\n"
        "  - job_name: j\n"
        "    fallback_scrape_protocol: text\n"
        "    static_configs: [{targets: ['h:1']}]\n",
        "t.yml:3:31: invalid fallback_scrape_protocol for scrape config with job name \"j\": "
        "unknown scrape protocol text, supported: [OpenMetricsText0.0.1 OpenMetricsText1.0.0 "
        "PrometheusProto PrometheusText0.0.4 PrometheusText1.0.0]");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_protocols),
        cmocka_unit_test(test_om_negotiation),
        cmocka_unit_test(test_accept_custom),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
