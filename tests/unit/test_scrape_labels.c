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
    const struct config_scrape *sc = &c->scrape_configs[0];
    struct scrape_target *t = NULL;
    struct bs_error err;
    assert_int_equal(scrape_target_new(sc, &sc->static_configs[0], "h:9100", &t, &err), 0);
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
    assert_int_equal(scrape_target_new(sc, &sc->static_configs[0], "h:9100", &t2, &err), 0);
    assert_true(t->key_len == t2->key_len && memcmp(t->key, t2->key, t->key_len) == 0);
    assert_true(t->offset_hash == t2->offset_hash);
    assert_int_equal(scrape_target_new(sc, &sc->static_configs[0], "h:9101", &t3, &err), 0);
    assert_false(t->key_len == t3->key_len && memcmp(t->key, t3->key, t->key_len) == 0);

    scrape_target_free(t3);
    t3 = (struct scrape_target *)1;
    assert_int_equal(scrape_target_new(sc, &sc->static_configs[0], "h/x", &t3, &err), BS_EINVAL);
    assert_null(t3);
    assert_non_null(strstr(err.msg, "h/x"));
    assert_non_null(strstr(err.msg, "node"));
    scrape_target_free(t);
    scrape_target_free(t2);
    config_free(c);
}

static void test_target_bad_scheme(void **state)
{
    (void)state;
    struct config *c = load("scrape_configs:\n"
                            "  - job_name: x\n"
                            "    static_configs:\n"
                            "      - targets: ['h:1']\n"
                            "        labels: {__scheme__: ftp}\n");
    const struct config_scrape *sc = &c->scrape_configs[0];
    struct scrape_target *t = (struct scrape_target *)1;
    struct bs_error err;
    assert_int_equal(scrape_target_new(sc, &sc->static_configs[0], "h:1", &t, &err), BS_EINVAL);
    assert_null(t);
    assert_non_null(strstr(err.msg, "scheme \"ftp\""));
    config_free(c);
}

static void test_cache(void **state)
{
    (void)state;
    struct scrape_cache c;
    scrape_cache_init(&c);
    char key[32];
    /* Enough entries to force several rehashes. */
    for (int i = 0; i < 1000; i++) {
        int n = snprintf(key, sizeof(key), "m{i=\"%d\"}", i);
        uint64_t h = bs_hash64(key, (size_t)n);
        assert_null(scrape_cache_get(&c, key, (size_t)n, h));
        struct label l[] = {{"__name__", "m"}};
        struct labels ls = {l, 1};
        struct scrape_cache_entry *e = scrape_cache_put(&c, key, (size_t)n, h, labels_dup(&ls));
        assert_non_null(e);
        e->ref = (tsdb_ref)i + 1;
        e->last_seen = (uint64_t)(i % 2);
    }
    assert_int_equal(c.count, 1000);
    for (int i = 0; i < 1000; i++) {
        int n = snprintf(key, sizeof(key), "m{i=\"%d\"}", i);
        struct scrape_cache_entry *e = scrape_cache_get(&c, key, (size_t)n, bs_hash64(key, (size_t)n));
        assert_non_null(e);
        assert_int_equal(e->ref, (tsdb_ref)i + 1);
    }
    scrape_cache_evict(&c, 1);   /* keeps odd i only */
    assert_int_equal(c.count, 500);
    int n = snprintf(key, sizeof(key), "m{i=\"%d\"}", 4);
    assert_null(scrape_cache_get(&c, key, (size_t)n, bs_hash64(key, (size_t)n)));
    n = snprintf(key, sizeof(key), "m{i=\"%d\"}", 5);
    assert_non_null(scrape_cache_get(&c, key, (size_t)n, bs_hash64(key, (size_t)n)));
    scrape_cache_fini(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merge_plain),
        cmocka_unit_test(test_merge_conflicts),
        cmocka_unit_test(test_target_new),
        cmocka_unit_test(test_target_bad_scheme),
        cmocka_unit_test(test_cache),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
