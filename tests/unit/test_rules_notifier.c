/* SPDX-License-Identifier: Apache-2.0
 *
 * Unit tests of the notifier against a tiny HTTP server in this process:
 * the Alertmanager API v2 payload (labels with external labels and
 * alert_relabel_configs applied, annotations, startsAt, endsAt,
 * generatorURL) for a firing and then a resolved alert, the path prefix,
 * basic auth, resend only after the resend delay; an unreachable
 * Alertmanager counted as errors and drops without affecting another
 * group's evaluation; and the bounded queue dropping its oldest alerts.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "rules/rules_int.h"
#include "test_tsdb_util.h"

#define T0 INT64_C(1700000000000)

/* ------------------------------------------------------------ tiny server */

struct srv {
    int fd;
    int port;
    pthread_t th;
    pthread_mutex_t mu;
    char *reqs[16];      /* "PATH\nHEADERS\n\nBODY" */
    int nreqs;
    int status;          /* reply status */
    bool hang;           /* accept nothing (requests time out) */
};

static void *srv_main(void *arg)
{
    struct srv *s = arg;
    for (;;) {
        int c = accept(s->fd, NULL, NULL);
        if (c < 0)
            return NULL;
        struct bs_buf b;
        bs_buf_init(&b, 0);
        char tmp[4096];
        size_t need = 0;
        for (;;) {
            ssize_t n = read(c, tmp, sizeof(tmp));
            if (n <= 0)
                break;
            bs_buf_append(&b, tmp, (size_t)n);
            char *he = strstr(b.data, "\r\n\r\n");
            if (he && !need) {
                char *cl = strcasestr(b.data, "Content-Length:");
                need = (size_t)(he - b.data) + 4 + (cl ? strtoul(cl + 15, NULL, 10) : 0);
            }
            if (need && b.len >= need)
                break;
        }
        /* Record the request before answering: once the client has its
         * answer, the test may look at what the server saw. */
        pthread_mutex_lock(&s->mu);
        if (s->nreqs < 16)
            s->reqs[s->nreqs++] = bs_buf_steal(&b, NULL);
        pthread_mutex_unlock(&s->mu);
        bs_buf_fini(&b);
        char resp[128];
        snprintf(resp, sizeof(resp), "HTTP/1.1 %d X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", s->status);
        if (write(c, resp, strlen(resp)) < 0) {
            close(c);
            break;
        }
        close(c);
    }
    return NULL;
}

static void srv_start(struct srv *s, int status, bool hang)
{
    memset(s, 0, sizeof(*s));
    s->status = status;
    s->hang = hang;
    pthread_mutex_init(&s->mu, NULL);
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s->fd, 16), 0);
    socklen_t l = sizeof(a);
    getsockname(s->fd, (struct sockaddr *)&a, &l);
    s->port = ntohs(a.sin_port);
    if (!hang)
        assert_int_equal(pthread_create(&s->th, NULL, srv_main, s), 0);
}

static void srv_stop(struct srv *s)
{
    shutdown(s->fd, SHUT_RDWR);
    close(s->fd);
    if (!s->hang)
        pthread_join(s->th, NULL);
    for (int i = 0; i < s->nreqs; i++)
        free(s->reqs[i]);
}

static int srv_count(struct srv *s)
{
    pthread_mutex_lock(&s->mu);
    int n = s->nreqs;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* ------------------------------------------------------------------ env */

struct env {
    char *dir;
    struct tsdb *db;
    struct promql_engine *engine;
    struct rules_manager *m;
    struct labels_builder eb;
    struct labels_relabel_config rc;
};

static const char *yaml = "groups:\n"
                          "- name: a\n"
                          "  interval: 15s\n"
                          "  rules:\n"
                          "  - alert: Down\n"
                          "    expr: up == 0\n"
                          "    labels: {severity: page}\n"
                          "    annotations:\n"
                          "      summary: '{{ $labels.instance }} down in {{ $externalLabels.cluster }}'\n"
                          "- name: b\n"
                          "  rules:\n"
                          "  - record: still_working\n"
                          "    expr: vector(1)\n";

static void env_open(struct env *e, const char *target, const char *prefix, int64_t timeout_ms)
{
    memset(e, 0, sizeof(*e));
    e->dir = make_tmpdir();
    e->db = open_db(e->dir, 0, 0);
    e->engine = promql_engine_new(NULL);
    labels_builder_init(&e->eb);
    struct labels ext = mk_labels(&e->eb, "cluster=eu-1");
    struct labels_relabel_spec spec = {.target_label = "team", .replacement = "ops"};
    assert_int_equal(labels_relabel_config_init(&e->rc, &spec, NULL), 0);
    const char *targets[] = {target};
    struct rules_alertmanager_config am = {
        .path_prefix = prefix, .targets = targets, .ntargets = 1, .timeout_ms = timeout_ms,
        .username = "u", .password = "p",
    };
    struct rules_manager_opts o;
    rules_manager_opts_default(&o);
    o.external_labels = &ext;
    o.external_url = "http://bongsu.example/";
    o.notifier.alertmanagers = &am;
    o.notifier.nalertmanagers = 1;
    o.notifier.alert_relabel_configs = &e->rc;
    o.notifier.nalert_relabel_configs = 1;
    struct bs_error err = {0};
    assert_int_equal(rules_manager_new(&e->m, e->db, e->engine, &o, &err), 0);
    /* The manager keeps its own copies. */
    labels_relabel_config_fini(&e->rc);
    char path[600];
    snprintf(path, sizeof(path), "%s/r.yml", e->dir);
    FILE *f = fopen(path, "w");
    fputs(yaml, f);
    fclose(f);
    const char *g[] = {path};
    assert_int_equal(rules_manager_load(e->m, g, 1, &err), 0);
    rules_manager_mark_restored(e->m);
}

static void env_close(struct env *e)
{
    rules_manager_free(e->m);
    promql_engine_free(e->engine);
    tsdb_close(e->db);
    labels_builder_fini(&e->eb);
    rmrf(e->dir);
    free(e->dir);
}

static void put(struct tsdb *db, const char *spec, int64_t t, double v)
{
    struct tsdb_appender *a = tsdb_appender_new(db);
    assert_int_equal(add_spec(a, spec, t, v), 0);
    assert_int_equal(tsdb_appender_commit(a, NULL), 0);
}

static void test_payload(void **state)
{
    (void)state;
    struct srv s;
    srv_start(&s, 200, false);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", s.port);
    struct env e;
    env_open(&e, target, "/am/", 0);

    put(e.db, "__name__=up,job=node,instance=h1", T0 - 1000, 0);
    rules_manager_eval_group_at(e.m, 0, T0);
    assert_true(rules_notifier_flush(e.m->notifier, 5000));
    assert_int_equal(srv_count(&s), 1);
    const char *r = s.reqs[0];
    assert_non_null(strstr(r, "POST /am/api/v2/alerts HTTP/1.1\r\n"));
    assert_non_null(strstr(r, "Content-Type: application/json\r\n"));
    assert_non_null(strstr(r, "Authorization: Basic dTpw\r\n"));
    const char *body = strstr(r, "\r\n\r\n") + 4;
    assert_string_equal(body,
                        "[{\"annotations\":{\"summary\":\"h1 down in eu-1\"},"
                        "\"endsAt\":\"2023-11-14T22:17:20.000Z\","      /* T0 + 4 x max(1m resend delay, 15s) */
                        "\"startsAt\":\"2023-11-14T22:13:20.000Z\","
                        "\"generatorURL\":\"http://bongsu.example/graph?g0.expr=up+%3D%3D+0\\u0026g0.tab=1\","
                        "\"labels\":{\"alertname\":\"Down\",\"cluster\":\"eu-1\",\"instance\":\"h1\","
                        "\"job\":\"node\",\"severity\":\"page\",\"team\":\"ops\"}}]");

    /* Still firing 15s later: not re-sent before the resend delay. */
    put(e.db, "__name__=up,job=node,instance=h1", T0 + 14000, 0);
    rules_manager_eval_group_at(e.m, 0, T0 + 15000);
    assert_true(rules_notifier_flush(e.m->notifier, 5000));
    assert_int_equal(srv_count(&s), 1);
    /* Resolved: sent at once with endsAt = resolution time. */
    put(e.db, "__name__=up,job=node,instance=h1", T0 + 29000, 1);
    rules_manager_eval_group_at(e.m, 0, T0 + 30000);
    assert_true(rules_notifier_flush(e.m->notifier, 5000));
    assert_int_equal(srv_count(&s), 2);
    assert_non_null(strstr(s.reqs[1], "\"endsAt\":\"2023-11-14T22:13:50.000Z\",\"startsAt\":\"2023-11-14T22:13:20.000Z\""));
    struct rules_manager_stats st;
    rules_manager_stats(e.m, &st);
    assert_int_equal(st.notifications_sent, 2);
    assert_int_equal(st.notifications_errors, 0);
    assert_int_equal(st.notifications_dropped, 0);
    env_close(&e);
    srv_stop(&s);
}

static void test_bad_status(void **state)
{
    (void)state;
    struct srv s;
    srv_start(&s, 500, false);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", s.port);
    struct env e;
    env_open(&e, target, NULL, 0);
    put(e.db, "__name__=up,job=node,instance=h1", T0 - 1000, 0);
    rules_manager_eval_group_at(e.m, 0, T0);
    assert_true(rules_notifier_flush(e.m->notifier, 5000));
    assert_non_null(strstr(s.reqs[0], "POST /api/v2/alerts "));
    struct rules_manager_stats st;
    rules_manager_stats(e.m, &st);
    assert_int_equal(st.notifications_errors, 1);
    assert_int_equal(st.notifications_dropped, 1);
    env_close(&e);
    srv_stop(&s);
}

static void test_unreachable(void **state)
{
    (void)state;
    /* A port nobody listens on: connection refused. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(fd, (struct sockaddr *)&a, sizeof(a));
    socklen_t l = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &l);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", ntohs(a.sin_port));
    close(fd);
    struct env e;
    env_open(&e, target, NULL, 2000);
    put(e.db, "__name__=up,job=node,instance=h1", T0 - 1000, 0);
    rules_manager_eval_group_at(e.m, 0, T0);
    /* The other group is not held up by the notifier. */
    int64_t t = bs_monotonic_ns();
    assert_int_equal(rules_manager_eval_group_at(e.m, 1, T0), 0);
    assert_true(bs_monotonic_ns() - t < INT64_C(1000000000));
    struct promql_result *r = NULL;
    assert_int_equal(promql_query_instant(e.engine, e.db, "still_working", T0, &r, NULL), 0);
    assert_int_equal(r->nseries, 1);
    promql_result_free(r);
    assert_true(rules_notifier_flush(e.m->notifier, 5000));
    struct rules_manager_stats st;
    rules_manager_stats(e.m, &st);
    assert_int_equal(st.notifications_errors, 1);
    assert_int_equal(st.notifications_dropped, 1);
    assert_int_equal(st.notifications_sent, 0);
    env_close(&e);
}

/* A bounded queue drops its oldest alerts, counted. */
static void test_queue_bound(void **state)
{
    (void)state;
    struct srv s;
    srv_start(&s, 200, true); /* listens, never answers: a batch hangs in flight */
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", s.port);
    const char *targets[] = {target};
    struct rules_alertmanager_config am = {.targets = targets, .ntargets = 1, .timeout_ms = 1500};
    struct rules_notifier_config nc = {.alertmanagers = &am, .nalertmanagers = 1, .queue_capacity = 3};
    struct bs_error err = {0};
    struct rules_notifier *n = rules_notifier_new(&nc, &err);
    assert_non_null(n);
    struct labels_builder b;
    labels_builder_init(&b);
    struct rules_notify_alert one = {0};
    struct labels ls = mk_labels(&b, "alertname=first");
    one.labels = labels_dup(&ls);
    rules_notifier_send(n, NULL, &one, 1);
    uint64_t sent, errors, dropped;
    size_t qlen = 1;
    for (int i = 0; i < 200 && qlen; i++) {
        rules_notifier_stats(n, &sent, &errors, &dropped, &qlen);
        bs_sleep_ms(5);
    }
    assert_int_equal(qlen, 0); /* taken by the thread, in flight */
    struct rules_notify_alert more[5];
    memset(more, 0, sizeof(more));
    for (int i = 0; i < 5; i++) {
        char spec[32];
        snprintf(spec, sizeof(spec), "alertname=a%d", i);
        ls = mk_labels(&b, spec);
        more[i].labels = labels_dup(&ls);
    }
    rules_notifier_send(n, NULL, more, 5);
    rules_notifier_stats(n, &sent, &errors, &dropped, &qlen);
    assert_int_equal(qlen, 3);
    assert_int_equal(dropped, 2);
    labels_builder_fini(&b);
    rules_notifier_free(n);
    srv_stop(&s);
}

static void test_payload_zero_times(void **state)
{
    (void)state;
    struct labels_builder b;
    labels_builder_init(&b);
    struct labels ls = mk_labels(&b, "alertname=x");
    struct rules_notify_alert a = {.labels = &ls};
    struct bs_buf out;
    bs_buf_init(&out, 0);
    assert_int_equal(rules_notifier_payload(&a, 1, &out), 0);
    assert_string_equal(out.data, "[{\"annotations\":{},\"endsAt\":\"0001-01-01T00:00:00.000Z\","
                                  "\"startsAt\":\"0001-01-01T00:00:00.000Z\",\"generatorURL\":\"\","
                                  "\"labels\":{\"alertname\":\"x\"}}]");
    bs_buf_fini(&out);
    labels_builder_fini(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_payload),
        cmocka_unit_test(test_bad_status),
        cmocka_unit_test(test_unreachable),
        cmocka_unit_test(test_queue_bound),
        cmocka_unit_test(test_payload_zero_times),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
