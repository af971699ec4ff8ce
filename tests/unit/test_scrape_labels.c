/* SPDX-License-Identifier: Apache-2.0
 *
 * Unit tests of the scrape module's pure pieces: merging scraped labels with
 * target labels (honor_labels, exported_ renaming, empty values), target
 * construction from a configuration (discovered and target labels, URL with
 * encoded params, bad scheme/address errors) and the scrape cache.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "config/config.h"
#include "scrape/scrape_int.h"

#define NL(arr) (sizeof(arr) / sizeof((arr)[0]))

static struct expfmt_label L(const char *n, const char *v)
{
    return (struct expfmt_label){n, strlen(n), v, strlen(v)};
}

static struct expfmt_series series(const char *name, const struct expfmt_label *ls, size_t n)
{
    struct expfmt_series s;
    memset(&s, 0, sizeof(s));
    s.name = name;
    s.name_len = strlen(name);
    s.labels = ls;
    s.nlabels = n;
    return s;
}

static char *fmt(const struct labels *ls)
{
    struct bs_buf b;
    bs_buf_init(&b, 0);
    assert_int_equal(labels_format(ls, &b), 0);
    return bs_buf_steal(&b, NULL);
}

static void expect_merge(const struct expfmt_series *s, const struct labels *target, bool honor,
                         const char *want)
{
    struct labels_builder lb;
    struct labels out;
    struct bs_error err;
    labels_builder_init(&lb);
    assert_int_equal(scrape_labels_merge(&lb, s, target, honor, &out, &err), 0);
    char *got = fmt(&out);
    assert_string_equal(got, want);
    free(got);
    labels_builder_fini(&lb);
}

static void test_merge_plain(void **state)
{
    (void)state;
    struct label tl[] = {{"instance", "h:1"}, {"job", "j"}};
    struct labels target = {tl, NL(tl)};
    struct expfmt_label sl[] = {L("path", "/x"), L("empty", "")};
    struct expfmt_series s = series("m", sl, NL(sl));
    const char *want = "m{instance=\"h:1\", job=\"j\", path=\"/x\"}";
    expect_merge(&s, &target, false, want);
    expect_merge(&s, &target, true, want);
}

static void test_merge_conflicts(void **state)
{
    (void)state;
    struct label tl[] = {{"env", "prod"}, {"instance", "h:1"}, {"job", "j"}};
    struct labels target = {tl, NL(tl)};
    struct expfmt_label sl[] = {L("job", "scraped"), L("instance", "other"),
                                L("exported_job", "taken"), L("env", "")};
    struct expfmt_series s = series("m", sl, NL(sl));
    /* Target wins; job's exported_ name is taken, so exported_exported_. An
     * empty scraped env is absent: no conflict. */
    expect_merge(&s, &target, false,
                 "m{env=\"prod\", exported_exported_job=\"scraped\", "
                 "exported_instance=\"other\", exported_job=\"taken\", instance=\"h:1\", "
                 "job=\"j\"}");
    /* honor_labels: scraped wins, target fills the gaps. */
    expect_merge(&s, &target, true,
                 "m{env=\"prod\", exported_job=\"taken\", instance=\"other\", "
                 "job=\"scraped\"}");
}

static struct config *load(const char *yaml)
{
    struct config *c = NULL;
    struct bs_error err;
    int rc = config_load_string(yaml, strlen(yaml), "test.yml", &c, &err);
    if (rc != 0)
        fail_msg("config: %s", err.msg);
    return c;
}

/* scrape_target_new for job 0 of c, static config si, with its own job
 * object. Returns the code; *t or *dropped per the outcome. */
static int mk(const struct config *c, size_t si, const char *addr, struct scrape_target **t,
              struct labels **dropped, struct bs_error *err)
{
    const struct config_scrape *sc = &c->scrape_configs[0];
    struct scrape_job *job = NULL;
    assert_int_equal(scrape_job_new(sc, &job, err), 0);
    bs_error_clear(err);
    int rc = scrape_target_new(job, sc, &sc->static_configs[si], addr, t, dropped, err);
    scrape_job_unref(job); /* the target holds its own reference */
    return rc;
}

static void test_target_new(void **state)
{
    (void)state;
    struct config *c = load("scrape_configs:\n"
                            "  - job_name: node\n"
                            "    scrape_interval: 30s\n"
                            "    scrape_timeout: 5s\n"
                            "    metrics_path: /m\n"
                            "    params:\n"
                            "      q: ['a b&c']\n"
                            "      a: ['1', '2']\n"
                            "    static_configs:\n"
                            "      - targets: ['h:9100']\n"
                            "        labels: {env: prod, __scheme__: https}\n");
    struct scrape_target *t = NULL;
    struct labels *dropped = NULL;
    struct bs_error err;
    assert_int_equal(mk(c, 0, "h:9100", &t, &dropped, &err), 0);
    assert_null(dropped);
    /* A static __scheme__ label changes the URL, as in Prometheus; query
     * keys sorted, values in order, query-escaped. */
    assert_string_equal(t->url, "https://h:9100/m?a=1&a=2&q=a+b%26c");
    char *s = fmt(t->labels);
    assert_string_equal(s, "{env=\"prod\", instance=\"h:9100\", job=\"node\"}");
    free(s);
    s = fmt(t->discovered);
    assert_string_equal(s, "{__address__=\"h:9100\", __metrics_path__=\"/m\", "
                           "__param_a=\"1\", __param_q=\"a b&c\", __scheme__=\"https\", "
                           "__scrape_interval__=\"30s\", __scrape_timeout__=\"5s\", "
                           "env=\"prod\", job=\"node\"}");
    free(s);
    s = fmt(t->report_ls[SCRAPE_REPORT_UP]);
    assert_string_equal(s, "up{env=\"prod\", instance=\"h:9100\", job=\"node\"}");
    free(s);
    assert_int_equal(t->interval_ms, 30000);
    assert_int_equal(t->timeout_ms, 5000);

    /* Same inputs, same identity; another address, another identity. */
    struct scrape_target *t2 = NULL, *t3 = NULL;
    assert_int_equal(mk(c, 0, "h:9100", &t2, &dropped, &err), 0);
    assert_true(t->key_len == t2->key_len && memcmp(t->key, t2->key, t->key_len) == 0);
    assert_true(t->offset_hash == t2->offset_hash);
    assert_int_equal(mk(c, 0, "h:9101", &t3, &dropped, &err), 0);
    assert_false(t->key_len == t3->key_len && memcmp(t->key, t3->key, t->key_len) == 0);

    scrape_target_free(t3);
    t3 = (struct scrape_target *)1;
    assert_int_equal(mk(c, 0, "h/x", &t3, &dropped, &err), BS_EINVAL);
    assert_null(t3);
    assert_string_equal(err.msg, "\"h/x:443\" is not a valid hostname");
    scrape_target_free(t);
    scrape_target_free(t2);
    config_free(c);
}

/* An unsupported scheme is no error at target creation (Prometheus keeps
 * the target and each scrape fails), unless a port must be guessed. */
static void test_target_bad_scheme(void **state)
{
    (void)state;
    struct config *c = load("scrape_configs:\n"
                            "  - job_name: x\n"
                            "    static_configs:\n"
                            "      - targets: ['h:1']\n"
                            "        labels: {__scheme__: ftp}\n");
    struct scrape_target *t = NULL;
    struct labels *dropped = NULL;
    struct bs_error err;
    assert_int_equal(mk(c, 0, "h:1", &t, &dropped, &err), 0);
    assert_string_equal(t->url, "ftp://h:1/metrics");
    scrape_target_free(t);
    t = (struct scrape_target *)1;
    assert_int_equal(mk(c, 0, "h", &t, &dropped, &err), BS_EINVAL);
    assert_null(t);
    /* Prometheus quotes the job's scheme here, not the label. */
    assert_string_equal(err.msg, "invalid scheme: \"http\"");
    config_free(c);
}

/* PopulateLabels cases. Expected results were checked against a real
 * Prometheus 2.42 (/api/v1/targets) where they are not plain from its
 * source: default ports, __param_ precedence, __meta_ removal, the
 * "invalid scheme" quirk and the timeout message. */
static const struct populate_case {
    const char *name;
    const char *job;     /* YAML of one scrape job (indented by 4) */
    const char *address; /* of static config 0 */
    int rc;
    const char *url;     /* active: scrape URL */
    const char *labels;  /* active: target labels; dropped: discovered labels */
    bool dropped;
    const char *err;     /* BS_EINVAL: message */
} populate_cases[] = {
    {"default http port", "    static_configs: [{targets: [x]}]\n", "localhost", 0,
     "http://localhost:80/metrics", "{instance=\"localhost:80\", job=\"j\"}", false, NULL},
    {"default https port", "    scheme: https\n    static_configs: [{targets: [x]}]\n", "h", 0,
     "https://h:443/metrics", "{instance=\"h:443\", job=\"j\"}", false, NULL},
    {"ipv6 default port", "    static_configs: [{targets: [x]}]\n", "[::1]", 0,
     "http://[::1]:80/metrics", "{instance=\"[::1]:80\", job=\"j\"}", false, NULL},
    {"empty port kept", "    static_configs: [{targets: [x]}]\n", "h:", 0, "http://h:/metrics",
     "{instance=\"h:\", job=\"j\"}", false, NULL},
    {"params override static __param_", "    params: {x: ['1']}\n"
     "    static_configs: [{targets: [x], labels: {__param_x: static, __param_y: 'y y'}}]\n",
     "h:5", 0, "http://h:5/metrics?x=1&y=y+y", "{instance=\"h:5\", job=\"j\"}", false, NULL},
    {"relabeled __param_ overrides the param", "    params: {x: ['1', '2']}\n"
     "    static_configs: [{targets: [x]}]\n"
     "    relabel_configs: [{target_label: __param_x, replacement: over}]\n",
     "h:5", 0, "http://h:5/metrics?x=over&x=2", "{instance=\"h:5\", job=\"j\"}", false, NULL},
    {"meta labels removed, copied ones kept",
     "    static_configs: [{targets: [x], labels: {__meta_foo: bar}}]\n"
     "    relabel_configs: [{source_labels: [__meta_foo], target_label: foo}]\n",
     "h:5", 0, "http://h:5/metrics", "{foo=\"bar\", instance=\"h:5\", job=\"j\"}", false, NULL},
    {"blackbox style", "    static_configs: [{targets: [x]}]\n    relabel_configs:\n"
     "      - {source_labels: [__address__], target_label: __param_target}\n"
     "      - {source_labels: [__param_target], target_label: instance}\n"
     "      - {target_label: __address__, replacement: 'bb:9115'}\n"
     "      - {target_label: __metrics_path__, replacement: /probe}\n",
     "http://example.com/x", 0, "http://bb:9115/probe?target=http%3A%2F%2Fexample.com%2Fx",
     "{instance=\"http://example.com/x\", job=\"j\"}", false, NULL},
    {"drop", "    static_configs: [{targets: [x]}]\n"
     "    relabel_configs: [{source_labels: [__address__], regex: 'dropme.*', action: drop}]\n",
     "dropme:1", 0, NULL,
     "{__address__=\"dropme:1\", __metrics_path__=\"/metrics\", __scheme__=\"http\", "
     "__scrape_interval__=\"1m\", __scrape_timeout__=\"10s\", job=\"j\"}", true, NULL},
    {"instance from relabeling wins", "    static_configs: [{targets: [x]}]\n"
     "    relabel_configs: [{target_label: instance, replacement: me}]\n", "h:1", 0,
     "http://h:1/metrics", "{instance=\"me\", job=\"j\"}", false, NULL},
    {"interval and timeout from labels", "    static_configs: [{targets: [x], labels: "
     "{__scrape_interval__: 2m, __scrape_timeout__: 90s}}]\n", "h:1", 0, "http://h:1/metrics",
     "{instance=\"h:1\", job=\"j\"}", false, NULL},
    {"no address", "    static_configs: [{targets: [x]}]\n"
     "    relabel_configs: [{target_label: __address__, replacement: ''}]\n", "h:1", BS_EINVAL,
     NULL, NULL, false, "no address"},
    {"timeout above interval", "    static_configs: [{targets: [x], labels: "
     "{__scrape_timeout__: 2m}}]\n", "h:1", BS_EINVAL, NULL, NULL, false,
     "scrape timeout cannot be greater than scrape interval (\"2m\" > \"1m\")"},
    {"bad interval", "    static_configs: [{targets: [x]}]\n"
     "    relabel_configs: [{target_label: __scrape_interval__, replacement: soon}]\n", "h:1",
     BS_EINVAL, NULL, NULL, false,
     "error parsing scrape interval: not a valid duration string: \"soon\""},
    {"zero timeout", "    static_configs: [{targets: [x], labels: {__scrape_timeout__: 0s}}]\n",
     "h:1", BS_EINVAL, NULL, NULL, false, "scrape timeout cannot be 0"},
};

static void test_populate_labels(void **state)
{
    (void)state;
    for (size_t i = 0; i < NL(populate_cases); i++) {
        const struct populate_case *pc = &populate_cases[i];
        char yaml[2048];
        snprintf(yaml, sizeof(yaml), "scrape_configs:\n  - job_name: j\n%s", pc->job);
        struct config *c = load(yaml);
        struct scrape_target *t = NULL;
        struct labels *dropped = NULL;
        struct bs_error err;
        int rc = mk(c, 0, pc->address, &t, &dropped, &err);
        if (rc != pc->rc)
            fail_msg("%s: rc %d, want %d (%s)", pc->name, rc, pc->rc, err.msg);
        if (rc == 0 && pc->dropped) {
            if (!dropped || t)
                fail_msg("%s: not dropped", pc->name);
            char *got = fmt(dropped);
            if (strcmp(got, pc->labels) != 0)
                fail_msg("%s: discovered %s", pc->name, got);
            free(got);
        } else if (rc == 0) {
            if (!t || dropped)
                fail_msg("%s: not active", pc->name);
            if (strcmp(t->url, pc->url) != 0)
                fail_msg("%s: url %s", pc->name, t->url);
            char *got = fmt(t->labels);
            if (strcmp(got, pc->labels) != 0)
                fail_msg("%s: labels %s", pc->name, got);
            free(got);
        } else if (pc->err && strcmp(err.msg, pc->err) != 0) {
            fail_msg("%s: error %s", pc->name, err.msg);
        }
        if (strcmp(pc->name, "interval and timeout from labels") == 0) {
            assert_int_equal(t->interval_ms, 120000);
            assert_int_equal(t->timeout_ms, 90000);
        }
        scrape_target_free(t);
        free(dropped);
        config_free(c);
    }
}

/* Hash used for key i: real, or forced into a few long probe chains (h of
 * key i is i % 7, plus a value near the top so chains wrap around). */
static uint64_t key_hash(const char *key, size_t n, int i, bool collide, size_t cap)
{
    if (!collide)
        return bs_hash64(key, n);
    return (uint64_t)(i % 7) + (cap ? cap - 3 : 0);
}

static void cache_round(bool collide)
{
    struct scrape_cache c;
    scrape_cache_init(&c);
    char key[32];
    /* Enough entries to force several rehashes. The forced hashes are
     * computed against the final capacity (2048 for 1000 entries). */
    for (int i = 0; i < 1000; i++) {
        int n = snprintf(key, sizeof(key), "m{i=\"%d\"}", i);
        uint64_t h = key_hash(key, (size_t)n, i, collide, 2048);
        assert_null(scrape_cache_get(&c, key, (size_t)n, h));
        struct scrape_cache_slot *sl =
            scrape_cache_put(&c, key, (size_t)n, h, i % 3 == 0 ? SCRAPE_SLOT_DROPPED : 0,
                             (uint32_t)(i % 2));
        assert_non_null(sl);
        assert_int_equal(sl->e->len, n);
        assert_string_equal(sl->e->text, key);
        sl->e->ref = (tsdb_ref)i + 1;
    }
    assert_int_equal(c.count, 1000);
    assert_int_equal(c.cap, 2048);
    for (int i = 0; i < 1000; i++) {
        int n = snprintf(key, sizeof(key), "m{i=\"%d\"}", i);
        struct scrape_cache_slot *sl =
            scrape_cache_get(&c, key, (size_t)n, key_hash(key, (size_t)n, i, collide, 2048));
        assert_non_null(sl);
        assert_int_equal(sl->e->ref, (tsdb_ref)i + 1);
        assert_int_equal(sl->flags, i % 3 == 0 ? SCRAPE_SLOT_DROPPED : 0);
    }
    scrape_cache_evict(&c, 1); /* keeps odd i only */
    assert_int_equal(c.count, 500);
    /* Every survivor is still found (deletion left no hole in a probe
     * chain) and every evicted key is gone. */
    for (int i = 0; i < 1000; i++) {
        int n = snprintf(key, sizeof(key), "m{i=\"%d\"}", i);
        struct scrape_cache_slot *sl =
            scrape_cache_get(&c, key, (size_t)n, key_hash(key, (size_t)n, i, collide, 2048));
        if (i % 2) {
            assert_non_null(sl);
            assert_int_equal(sl->e->ref, (tsdb_ref)i + 1);
            sl->seen = i < 900 ? 7 : 1;
        } else {
            assert_null(sl);
        }
    }
    size_t occupied = 0;
    for (size_t i = 0; i < c.cap; i++)
        occupied += c.slots[i].e != NULL;
    assert_int_equal(occupied, c.count);
    /* Most entries go: the table shrinks; the rest is still found. */
    scrape_cache_evict(&c, 1);
    assert_int_equal(c.count, 50);
    assert_true(c.cap < 2048);
    if (!collide) {
        for (int i = 901; i < 1000; i += 2) {
            int n = snprintf(key, sizeof(key), "m{i=\"%d\"}", i);
            assert_non_null(scrape_cache_get(&c, key, (size_t)n, bs_hash64(key, (size_t)n)));
        }
    }
    scrape_cache_reset(&c);
    assert_int_equal(c.count, 0);
    scrape_cache_fini(&c);
}

static void test_cache(void **state)
{
    (void)state;
    cache_round(false);
    cache_round(true);
}

/* A cached series' labels derived again from its text equal those of the
 * scrape that cached it: exported_ conflicts, escapes, quoted names,
 * metric relabeling (kept and dropped), OpenMetrics text. */
static void test_entry_labels(void **state)
{
    (void)state;
    struct config *c = load("scrape_configs:\n"
                            "  - job_name: node\n"
                            "    static_configs:\n"
                            "      - targets: ['h:9100']\n"
                            "        labels: {env: prod}\n"
                            "    metric_relabel_configs:\n"
                            "      - {source_labels: [mode], regex: idle, action: drop}\n"
                            "      - {source_labels: [cpu], target_label: core}\n");
    struct scrape_target *t = NULL;
    struct labels *dropped = NULL;
    struct bs_error err;
    assert_int_equal(mk(c, 0, "h:9100", &t, &dropped, &err), 0);
    const char body[] = "cpu_seconds_total{cpu=\"0\",mode=\"user\",job=\"x\"} 1.5\n"
                        "cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 2\n"
                        "weird{a=\"q\\\"uote\\\\ \\n\",instance=\"i\",} 3\n"
                        "{\"my.metric\",\"x.y\"=\"1\"} 4\n"
                        "plain 5\n";
    struct labels_builder lb1, lb2;
    labels_builder_init(&lb1);
    labels_builder_init(&lb2);
    struct expfmt_parser p;
    enum expfmt_entry kind;
    size_t n = 0, kept = 0;
    expfmt_parser_init(&p, body, sizeof(body) - 1);
    while (expfmt_parser_next(&p, &kind, &err) == 0 && kind != EXPFMT_EOF) {
        assert_int_equal(kind, EXPFMT_SERIES);
        const struct expfmt_series *s = expfmt_parser_series(&p);
        struct labels v1, v2;
        bool k1 = false, k2 = false;
        assert_int_equal(scrape_series_labels(&lb1, t, s, &v1, &k1, &err), 0);
        struct scrape_cache_entry *e = malloc(sizeof(*e) + s->series_text_len + 1);
        assert_non_null(e);
        e->ref = 0;
        e->len = (uint32_t)s->series_text_len;
        memcpy(e->text, s->series_text, s->series_text_len);
        e->text[e->len] = '\0';
        assert_int_equal(scrape_entry_labels(&lb2, t, e, &v2, &k2), 0);
        assert_int_equal(k1, k2);
        if (k1) {
            char *a = fmt(&v1), *b = fmt(&v2);
            assert_string_equal(a, b);
            if (n == 0)
                assert_string_equal(a, "cpu_seconds_total{core=\"0\", cpu=\"0\", env=\"prod\", "
                                       "exported_job=\"x\", instance=\"h:9100\", job=\"node\", "
                                       "mode=\"user\"}");
            free(a);
            free(b);
            kept++;
        }
        free(e);
        n++;
    }
    expfmt_parser_fini(&p);
    assert_int_equal(n, 5);
    assert_int_equal(kept, 4); /* the idle series is dropped both ways */
    labels_builder_fini(&lb1);
    labels_builder_fini(&lb2);
    scrape_target_free(t);
    config_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merge_plain),
        cmocka_unit_test(test_merge_conflicts),
        cmocka_unit_test(test_target_new),
        cmocka_unit_test(test_target_bad_scheme),
        cmocka_unit_test(test_populate_labels),
        cmocka_unit_test(test_cache),
        cmocka_unit_test(test_entry_labels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
