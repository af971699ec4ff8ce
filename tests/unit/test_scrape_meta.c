/* SPDX-License-Identifier: Apache-2.0
 *
 * Metric metadata, kept per target from the TYPE, HELP and UNIT lines of
 * its last successful scrape, and the JSON of /api/v1/targets/metadata and
 * /api/v1/metadata. The metadata set itself (caps, lookup, equality) is
 * tested directly; the JSON end to end, against a small HTTP server thread
 * serving 0.0.4 and OpenMetrics bodies to a real scrape manager.
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
#include "scrape/scrape.h"
#include "scrape/scrape_int.h"
#include "tsdb/tsdb.h"

#include "test_scrape_util.h"

/* ------------------------------------------------------------ unit tests */

static void test_meta_set(void **state)
{
    (void)state;
    struct scrape_meta *md = scrape_meta_new();
    assert_non_null(md);
    /* HELP before TYPE, a later HELP replaces, UNIT, a TYPE-only family. */
    assert_int_equal(scrape_meta_set(md, "zeta", 4, SCRAPE_META_HELP, "one", 3, 0), 0);
    assert_int_equal(scrape_meta_set(md, "zeta", 4, SCRAPE_META_TYPE, NULL, 0, EXPFMT_TYPE_COUNTER),
                     0);
    assert_int_equal(scrape_meta_set(md, "zeta", 4, SCRAPE_META_HELP, "two", 3, 0), 0);
    assert_int_equal(scrape_meta_set(md, "alpha", 5, SCRAPE_META_UNIT, "bytes", 5, 0), 0);
    assert_int_equal(scrape_meta_set(md, "mid", 3, SCRAPE_META_TYPE, NULL, 0, EXPFMT_TYPE_GAUGE),
                     0);
    assert_int_equal(md->n, 3);
    scrape_meta_finish(md);
    assert_null(md->index);
    const struct scrape_meta_entry *e = scrape_meta_find(md, "zeta");
    assert_non_null(e);
    assert_int_equal(e->type, EXPFMT_TYPE_COUNTER);
    assert_int_equal(e->help_len, 3);
    assert_string_equal(md->text.data + e->help, "two");
    e = scrape_meta_find(md, "alpha");
    assert_non_null(e);
    assert_int_equal(e->type, EXPFMT_TYPE_UNKNOWN);
    assert_int_equal(e->help_len, 0);
    assert_string_equal(md->text.data + e->unit, "bytes");
    assert_null(scrape_meta_find(md, "alph"));
    assert_null(scrape_meta_find(md, "zz"));
    /* Sorted by name. */
    assert_string_equal(md->text.data + md->v[0].name, "alpha");
    assert_string_equal(md->text.data + md->v[1].name, "mid");
    assert_string_equal(md->text.data + md->v[2].name, "zeta");

    /* Equality: same content built in another order; then one difference. */
    struct scrape_meta *m2 = scrape_meta_new();
    assert_int_equal(scrape_meta_set(m2, "mid", 3, SCRAPE_META_TYPE, NULL, 0, EXPFMT_TYPE_GAUGE),
                     0);
    assert_int_equal(scrape_meta_set(m2, "alpha", 5, SCRAPE_META_UNIT, "bytes", 5, 0), 0);
    assert_int_equal(scrape_meta_set(m2, "zeta", 4, SCRAPE_META_HELP, "two", 3, 0), 0);
    assert_int_equal(scrape_meta_set(m2, "zeta", 4, SCRAPE_META_TYPE, NULL, 0, EXPFMT_TYPE_COUNTER),
                     0);
    scrape_meta_finish(m2);
    assert_true(scrape_meta_equal(md, m2));
    assert_false(scrape_meta_equal(md, NULL));
    struct scrape_meta *m3 = scrape_meta_new();
    assert_int_equal(scrape_meta_set(m3, "mid", 3, SCRAPE_META_TYPE, NULL, 0, EXPFMT_TYPE_GAUGE),
                     0);
    assert_int_equal(scrape_meta_set(m3, "alpha", 5, SCRAPE_META_UNIT, "bytes", 5, 0), 0);
    assert_int_equal(scrape_meta_set(m3, "zeta", 4, SCRAPE_META_HELP, "twO", 3, 0), 0);
    assert_int_equal(scrape_meta_set(m3, "zeta", 4, SCRAPE_META_TYPE, NULL, 0, EXPFMT_TYPE_COUNTER),
                     0);
    scrape_meta_finish(m3);
    assert_false(scrape_meta_equal(md, m3));
    struct scrape_meta *empty = scrape_meta_new();
    scrape_meta_finish(empty);
    assert_true(scrape_meta_equal(empty, NULL));
    scrape_meta_free(empty);
    scrape_meta_free(m3);
    scrape_meta_free(m2);
    scrape_meta_free(md);
    scrape_meta_free(NULL);
}

/* The caps bound a target's metadata; past them nothing is recorded, but
 * families already there are still updated. */
static void test_meta_caps(void **state)
{
    (void)state;
    struct scrape_meta *md = scrape_meta_new();
    char name[32];
    for (int i = 0; i < SCRAPE_META_MAX_FAMILIES; i++) {
        int n = snprintf(name, sizeof(name), "m%d", i);
        assert_int_equal(
            scrape_meta_set(md, name, (size_t)n, SCRAPE_META_TYPE, NULL, 0, EXPFMT_TYPE_GAUGE), 0);
    }
    assert_int_equal(scrape_meta_set(md, "extra", 5, SCRAPE_META_HELP, "h", 1, 0), BS_ELIMIT);
    assert_int_equal(scrape_meta_set(md, "m7", 2, SCRAPE_META_HELP, "seven", 5, 0), 0);
    assert_int_equal(md->n, SCRAPE_META_MAX_FAMILIES);
    scrape_meta_finish(md);
    assert_null(scrape_meta_find(md, "extra"));
    assert_string_equal(md->text.data + scrape_meta_find(md, "m7")->help, "seven");
    scrape_meta_free(md);

    /* Text: a help past SCRAPE_META_MAX_BYTES is not recorded. */
    md = scrape_meta_new();
    size_t big = SCRAPE_META_MAX_BYTES / 2;
    char *h = malloc(big);
    memset(h, 'x', big);
    assert_int_equal(scrape_meta_set(md, "a", 1, SCRAPE_META_HELP, h, big, 0), 0);
    assert_int_equal(scrape_meta_set(md, "b", 1, SCRAPE_META_HELP, h, big, 0), BS_ELIMIT);
    assert_true(md->text.len <= SCRAPE_META_MAX_BYTES);
    free(h);
    scrape_meta_free(md);
}

/* -------------------------------------------------------- end to end */

static const char text_a[] =
    "# HELP a_gauge A gauge <with> & \"quotes\" and \\\\ backslash\\nnewline.\n"
    "# TYPE a_gauge gauge\n"
    "a_gauge 1\n"
    "# TYPE b_untyped untyped\n"
    "b_untyped 2\n"
    "# HELP c_help_only Only help.\n"
    "c_help_only 3\n"
    "# TYPE d_hist histogram\n"
    "d_hist_bucket{le=\"+Inf\"} 1\n"
    "d_hist_sum 1\n"
    "d_hist_count 1\n"
    "no_meta 4\n";

static const char text_a2[] = "# HELP a_gauge Another help.\n"
                              "# TYPE a_gauge gauge\n"
                              "a_gauge 1\n"
                              "# TYPE b_untyped untyped\n"
                              "b_untyped 2\n";

static const char om_b[] = "# TYPE e_seconds counter\n"
                           "# UNIT e_seconds seconds\n"
                           "# HELP e_seconds Time spent.\n"
                           "e_seconds_total 1\n"
                           "e_seconds_created 1700000000\n"
                           "# TYPE f info\n"
                           "f_info{v=\"1\"} 1\n"
                           "# EOF\n";

static char *targets_meta(struct fixture *f, struct labels_matcher *const *ms, size_t nms,
                          const char *metric, long limit)
{
    struct bs_buf b;
    bs_buf_init(&b, 0);
    assert_int_equal(scrape_manager_targets_metadata_json(f->m, ms, nms, metric, limit, &b), 0);
    return bs_buf_steal(&b, NULL);
}

static char *meta(struct fixture *f, const char *metric, long limit, long per_metric)
{
    struct bs_buf b;
    bs_buf_init(&b, 0);
    assert_int_equal(scrape_manager_metadata_json(f->m, metric, limit, per_metric, &b), 0);
    return bs_buf_steal(&b, NULL);
}

#define CHECK_JSON(call, want)                                                                     \
    do {                                                                                           \
        char *got_ = (call);                                                                       \
        assert_string_equal(got_, (want));                                                         \
        free(got_);                                                                                \
    } while (0)

static void test_meta_json(void **state)
{
    (void)state;
    static struct route routes[4];
    memset(routes, 0, sizeof(routes));
    routes[0] = (struct route){.prefix = "/text2", .ctype = "text/plain; version=0.0.4"};
    snprintf(routes[0].body, sizeof(routes[0].body), "%s", text_a2);
    routes[1] = (struct route){.prefix = "/text", .ctype = "text/plain; version=0.0.4"};
    snprintf(routes[1].body, sizeof(routes[1].body), "%s", text_a);
    routes[2] =
        (struct route){.prefix = "/om", .ctype = "application/openmetrics-text; version=1.0.0"};
    snprintf(routes[2].body, sizeof(routes[2].body), "%s", om_b);
    struct fixture f;
    fixture_open(&f, routes, 3);
    int p = f.srv->port;
    char yaml[2048];
    snprintf(
        yaml, sizeof(yaml),
        "global: {scrape_interval: 200ms, scrape_timeout: 150ms}\n"
        "scrape_configs:\n"
        "  - {job_name: beta, metrics_path: /om, static_configs: [{targets: ['127.0.0.1:%d']}]}\n"
        "  - {job_name: alpha2, metrics_path: /text2, static_configs: [{targets: "
        "['127.0.0.1:%d']}]}\n"
        "  - {job_name: alpha, metrics_path: /text, static_configs: [{targets: "
        "['127.0.0.1:%d']}]}\n",
        p, p, p);
    apply_yaml(&f, yaml);
    wait_health(&f, "/om", "up");
    wait_health(&f, "/text2", "up");
    wait_health(&f, "/text", "up");

    char want[4096], ta[96], ta2[96], tb[96];
    snprintf(ta, sizeof(ta), "{\"instance\":\"127.0.0.1:%d\",\"job\":\"alpha\"}", p);
    snprintf(ta2, sizeof(ta2), "{\"instance\":\"127.0.0.1:%d\",\"job\":\"alpha2\"}", p);
    snprintf(tb, sizeof(tb), "{\"instance\":\"127.0.0.1:%d\",\"job\":\"beta\"}", p);
    const char *a_help =
        "A gauge \\u003cwith\\u003e \\u0026 \\\"quotes\\\" and \\\\ backslash\\nnewline.";

    /* /api/v1/targets/metadata: pools sorted, families sorted per target. */
    char alpha[1024];
    snprintf(
        alpha, sizeof(alpha),
        "{\"target\":%s,\"metric\":\"a_gauge\",\"type\":\"gauge\",\"help\":\"%s\",\"unit\":\"\"},"
        "{\"target\":%s,\"metric\":\"b_untyped\",\"type\":\"unknown\",\"help\":\"\",\"unit\":\"\"},"
        "{\"target\":%s,\"metric\":\"c_help_only\",\"type\":\"unknown\",\"help\":\"Only "
        "help.\",\"unit\":\"\"},"
        "{\"target\":%s,\"metric\":\"d_hist\",\"type\":\"histogram\",\"help\":\"\",\"unit\":\"\"}",
        ta, a_help, ta, ta, ta);
    snprintf(
        want, sizeof(want),
        "[%s,"
        "{\"target\":%s,\"metric\":\"a_gauge\",\"type\":\"gauge\",\"help\":\"Another "
        "help.\",\"unit\":\"\"},"
        "{\"target\":%s,\"metric\":\"b_untyped\",\"type\":\"unknown\",\"help\":\"\",\"unit\":\"\"},"
        "{\"target\":%s,\"metric\":\"e_seconds\",\"type\":\"counter\",\"help\":\"Time "
        "spent.\",\"unit\":\"seconds\"},"
        "{\"target\":%s,\"metric\":\"f\",\"type\":\"info\",\"help\":\"\",\"unit\":\"\"}]",
        alpha, ta2, ta2, tb, tb);
    CHECK_JSON(targets_meta(&f, NULL, 0, NULL, -1), want);
    CHECK_JSON(targets_meta(&f, NULL, 0, "", -1), want);
    /* The limit is checked per target: the first target comes whole. */
    snprintf(want, sizeof(want), "[%s]", alpha);
    CHECK_JSON(targets_meta(&f, NULL, 0, NULL, 1), want);
    CHECK_JSON(targets_meta(&f, NULL, 0, NULL, 4), want);
    CHECK_JSON(targets_meta(&f, NULL, 0, NULL, 0), "[]");
    /* One metric: no "metric" key. */
    snprintf(want, sizeof(want),
             "[{\"target\":%s,\"type\":\"gauge\",\"help\":\"%s\",\"unit\":\"\"},"
             "{\"target\":%s,\"type\":\"gauge\",\"help\":\"Another help.\",\"unit\":\"\"}]",
             ta, a_help, ta2);
    CHECK_JSON(targets_meta(&f, NULL, 0, "a_gauge", -1), want);
    CHECK_JSON(targets_meta(&f, NULL, 0, "nonexistent", -1), "[]");
    /* match_target. */
    struct labels_matcher *ms[2];
    struct bs_error err;
    assert_int_equal(labels_matcher_new(&ms[0], LABELS_MATCH_RE, "job", "beta|alpha2", &err), 0);
    assert_int_equal(labels_matcher_new(&ms[1], LABELS_MATCH_NEQ, "job", "alpha2", &err), 0);
    snprintf(want, sizeof(want),
             "[{\"target\":%s,\"type\":\"counter\",\"help\":\"Time spent.\",\"unit\":\"seconds\"}]",
             tb);
    CHECK_JSON(targets_meta(&f, ms, 2, "e_seconds", -1), want);
    CHECK_JSON(targets_meta(&f, ms, 2, "a_gauge", -1), "[]");
    labels_matcher_free(ms[0]);
    labels_matcher_free(ms[1]);

    /* /api/v1/metadata: names sorted, distinct metadata per name. */
    snprintf(want, sizeof(want),
             "{\"a_gauge\":[{\"type\":\"gauge\",\"help\":\"%s\",\"unit\":\"\"},"
             "{\"type\":\"gauge\",\"help\":\"Another help.\",\"unit\":\"\"}],"
             "\"b_untyped\":[{\"type\":\"unknown\",\"help\":\"\",\"unit\":\"\"}],"
             "\"c_help_only\":[{\"type\":\"unknown\",\"help\":\"Only help.\",\"unit\":\"\"}],"
             "\"d_hist\":[{\"type\":\"histogram\",\"help\":\"\",\"unit\":\"\"}],"
             "\"e_seconds\":[{\"type\":\"counter\",\"help\":\"Time spent.\",\"unit\":\"seconds\"}],"
             "\"f\":[{\"type\":\"info\",\"help\":\"\",\"unit\":\"\"}]}",
             a_help);
    CHECK_JSON(meta(&f, NULL, -1, -1), want);
    CHECK_JSON(meta(&f, NULL, -1, 0), want);
    snprintf(want, sizeof(want),
             "{\"a_gauge\":[{\"type\":\"gauge\",\"help\":\"%s\",\"unit\":\"\"}],"
             "\"b_untyped\":[{\"type\":\"unknown\",\"help\":\"\",\"unit\":\"\"}]}",
             a_help);
    CHECK_JSON(meta(&f, NULL, 2, 1), want);
    CHECK_JSON(meta(&f, NULL, 0, -1), "{}");
    snprintf(want, sizeof(want),
             "{\"a_gauge\":[{\"type\":\"gauge\",\"help\":\"%s\",\"unit\":\"\"},"
             "{\"type\":\"gauge\",\"help\":\"Another help.\",\"unit\":\"\"}]}",
             a_help);
    CHECK_JSON(meta(&f, "a_gauge", -1, -1), want);
    CHECK_JSON(meta(&f, "nonexistent", -1, -1), "{}");

    /* A removed target's metadata goes with it. */
    snprintf(
        yaml, sizeof(yaml),
        "global: {scrape_interval: 200ms, scrape_timeout: 150ms}\n"
        "scrape_configs:\n"
        "  - {job_name: beta, metrics_path: /om, static_configs: [{targets: ['127.0.0.1:%d']}]}\n",
        p);
    apply_yaml(&f, yaml);
    CHECK_JSON(
        meta(&f, NULL, -1, -1),
        "{\"e_seconds\":[{\"type\":\"counter\",\"help\":\"Time spent.\",\"unit\":\"seconds\"}],"
        "\"f\":[{\"type\":\"info\",\"help\":\"\",\"unit\":\"\"}]}");
    fixture_close(&f);
}

/* A failed scrape keeps the metadata of the last successful one; the next
 * successful scrape replaces it. */
static void test_meta_last_success(void **state)
{
    (void)state;
    static struct route routes[1];
    memset(routes, 0, sizeof(routes));
    routes[0] = (struct route){.prefix = "/flip",
                               .ctype = "text/plain; version=0.0.4",
                               .alt = "# HELP x broken\nx{ 1\n",
                               .alt2 = "# HELP y second\n# TYPE y counter\ny 1\n"};
    snprintf(routes[0].body, sizeof(routes[0].body), "# HELP x first\n# TYPE x gauge\nx 1\n");
    struct fixture f;
    fixture_open(&f, routes, 1);
    char yaml[512];
    snprintf(yaml, sizeof(yaml),
             "global: {scrape_interval: 200ms, scrape_timeout: 150ms}\n"
             "scrape_configs:\n"
             "  - {job_name: flip, metrics_path: /flip, static_configs: [{targets: "
             "['127.0.0.1:%d']}]}\n",
             f.srv->port);
    apply_yaml(&f, yaml);
    const char *first = "{\"x\":[{\"type\":\"gauge\",\"help\":\"first\",\"unit\":\"\"}]}";
    wait_health(&f, "/flip", "up");
    CHECK_JSON(meta(&f, NULL, -1, -1), first);
    wait_health(&f, "/flip", "down");
    CHECK_JSON(meta(&f, NULL, -1, -1), first);
    int64_t deadline = now_ms() + 10000;
    for (;;) {
        char *j = meta(&f, NULL, -1, -1);
        bool done =
            strcmp(j, "{\"y\":[{\"type\":\"counter\",\"help\":\"second\",\"unit\":\"\"}]}") == 0;
        if (!done && now_ms() > deadline)
            fail_msg("metadata after recovery: %s", j);
        free(j);
        if (done)
            break;
        bs_sleep_ms(20);
    }
    fixture_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_meta_set),
        cmocka_unit_test(test_meta_caps),
        cmocka_unit_test(test_meta_json),
        cmocka_unit_test(test_meta_last_success),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
