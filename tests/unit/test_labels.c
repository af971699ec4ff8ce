/* SPDX-License-Identifier: Apache-2.0
 *
 * Unit tests of labels: hashing, ordering, lookup, copies and text forms of
 * label sets; the builder; matchers (fast paths and PCRE2); the symbol
 * table, including pointer identity across threads.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "labels/labels.h"
#include "labels/labels_int.h"

#define LS(arr) ((struct labels){(arr), sizeof(arr) / sizeof((arr)[0])})

static char *fmt_labels(const struct labels *ls)
{
    struct bs_buf b;
    bs_buf_init(&b, 0);
    assert_int_equal(labels_format(ls, &b), 0);
    return bs_buf_steal(&b, NULL);
}

static void expect_format(const struct labels *ls, const char *want)
{
    char *s = fmt_labels(ls);
    assert_string_equal(s, want);
    free(s);
}

/* ------------------------------------------------------------------- sets */

static void test_hash(void **state)
{
    struct label a[] = {{"__name__", "up"}, {"instance", "x:9090"}, {"job", "prom"}};
    struct label b[] = {{"__name__", "up"}, {"instance", "x:9090"}, {"job", "prom"}};
    struct label c[] = {{"__name__", "up"}, {"instance", "x:9091"}, {"job", "prom"}};
    /* Moving a byte between name and value must change the hash. */
    struct label d1[] = {{"ab", "c"}};
    struct label d2[] = {{"a", "bc"}};
    struct label only_job[] = {{"job", "prom"}};
    struct label empty[1];
    struct labels la = LS(a), lb = LS(b), lc = LS(c), le = {empty, 0};
    (void)state;

    assert_true(labels_hash(&la) == labels_hash(&lb));
    assert_true(labels_hash(&la) != labels_hash(&lc));
    assert_true(labels_hash(&(struct labels)LS(d1)) != labels_hash(&(struct labels)LS(d2)));
    /* Definition: XXH3 over name 0xff value 0xff. */
    const char raw[] = "job\xffprom\xff";
    assert_true(labels_hash(&(struct labels)LS(only_job)) == bs_hash64(raw, sizeof(raw) - 1));
    assert_true(labels_hash(&le) == bs_hash64("", 0));

    const char *skip[] = {"instance", "__name__"};
    assert_true(labels_hash_without(&la, skip, 2) == labels_hash(&(struct labels)LS(only_job)));
    assert_true(labels_hash_without(&la, skip, 2) == labels_hash_without(&lc, skip, 2));
    const char *only[] = {"job"};
    assert_true(labels_hash_only(&la, only, 1) == labels_hash(&(struct labels)LS(only_job)));
    assert_true(labels_hash_only(&la, NULL, 0) == labels_hash(&le));
    assert_true(labels_hash_without(&la, NULL, 0) == labels_hash(&la));

    /* Big sets take the streaming path; the result is the same hash. */
    enum { N = 40 };
    struct label big[N];
    char names[N][16], value[200];
    memset(value, 'v', sizeof(value) - 1);
    value[sizeof(value) - 1] = '\0';
    struct bs_buf raw2;
    bs_buf_init(&raw2, 0);
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof(names[i]), "l%02d", i);
        big[i].name = names[i];
        big[i].value = value;
        bs_buf_printf(&raw2, "%s\xff%s\xff", names[i], value);
    }
    struct labels lbig = {big, N};
    assert_true(labels_hash(&lbig) == bs_hash64(raw2.data, raw2.len));
    bs_buf_fini(&raw2);
}

static void test_cmp_equal_get(void **state)
{
    struct label a[] = {{"a", "1"}, {"b", "2"}};
    struct label b[] = {{"a", "1"}, {"b", "3"}};
    struct label c[] = {{"a", "1"}};
    struct label d[] = {{"a", "1"}, {"c", "0"}};
    struct label e[] = {{"a", "\xc3\xa9"}, {"b", "2"}};
    struct labels la = LS(a), lb = LS(b), lc = LS(c), ld = LS(d), le = LS(e);
    (void)state;

    assert_int_equal(labels_cmp(&la, &la), 0);
    assert_int_equal(labels_cmp(&la, &lb), -1);
    assert_int_equal(labels_cmp(&lb, &la), 1);
    assert_int_equal(labels_cmp(&lc, &la), -1);   /* shorter first */
    assert_int_equal(labels_cmp(&la, &lc), 1);
    assert_int_equal(labels_cmp(&la, &ld), -1);   /* name b < c */
    assert_int_equal(labels_cmp(&la, &le), -1);   /* bytes compare unsigned */
    assert_true(labels_equal(&la, &la));
    assert_false(labels_equal(&la, &lb));
    assert_false(labels_equal(&la, &lc));

    struct label many[] = {{"__name__", "x"}, {"a", "1"}, {"b", "2"}, {"c", "3"},
                           {"d", "4"},        {"e", "5"}, {"f", "6"}};
    struct labels lm = LS(many);
    assert_string_equal(labels_get(&lm, "__name__"), "x");
    assert_string_equal(labels_get(&lm, "a"), "1");
    assert_string_equal(labels_get(&lm, "f"), "6");
    assert_string_equal(labels_get(&lm, "d"), "4");
    assert_null(labels_get(&lm, "g"));
    assert_null(labels_get(&lm, "0"));
    assert_null(labels_get(&(struct labels){NULL, 0}, "a"));
}

static void test_dup(void **state)
{
    char name[] = "job", value[] = "prom";
    struct label a[] = {{"__name__", "up"}, {name, value}};
    struct labels la = LS(a);
    (void)state;

    assert_int_equal(labels_size(&la),
                     sizeof(struct labels) + 2 * sizeof(struct label) + 9 + 3 + 4 + 5);
    struct labels *d = labels_dup(&la);
    assert_non_null(d);
    name[0] = 'X';
    value[0] = 'X';
    assert_int_equal(d->n, 2);
    assert_string_equal(d->v[1].name, "job");
    assert_string_equal(d->v[1].value, "prom");
    assert_string_equal(d->v[0].value, "up");
    free(d);

    struct labels empty = {NULL, 0};
    d = labels_dup(&empty);
    assert_non_null(d);
    assert_int_equal(d->n, 0);
    assert_int_equal(labels_cmp(d, &empty), 0);
    free(d);
}

static void test_format(void **state)
{
    struct label a[] = {{"__name__", "up"}, {"instance", "localhost:9090"}, {"job", "prometheus"}};
    struct label b[] = {{"__name__", "up"}};
    struct label c[] = {{"a", "x\"y\\z\nw"}, {"b", "tab\there"}};
    struct label d[] = {{"__name__", "foo.bar"}, {"job", "x"}};
    struct label e[] = {{"label.with.dots", "v"}, {"ok", "\xc3\xa9\xff\x01"}};
    (void)state;

    expect_format(&(struct labels)LS(a), "up{instance=\"localhost:9090\", job=\"prometheus\"}");
    expect_format(&(struct labels)LS(b), "up");
    expect_format(&(struct labels){NULL, 0}, "{}");
    expect_format(&(struct labels)LS(c), "{a=\"x\\\"y\\\\z\\nw\", b=\"tab\\there\"}");
    expect_format(&(struct labels)LS(d), "{\"foo.bar\", job=\"x\"}");
    expect_format(&(struct labels)LS(e), "{\"label.with.dots\"=\"v\", ok=\"\xc3\xa9\\xff\\x01\"}");

    struct bs_buf buf;
    bs_buf_init(&buf, 0);
    assert_int_equal(labels_format_json(&(struct labels)LS(a), &buf), 0);
    assert_string_equal(buf.data, "{\"__name__\":\"up\",\"instance\":\"localhost:9090\","
                                  "\"job\":\"prometheus\"}");
    bs_buf_reset(&buf);
    assert_int_equal(labels_format_json(&(struct labels){NULL, 0}, &buf), 0);
    assert_string_equal(buf.data, "{}");
    bs_buf_reset(&buf);
    assert_int_equal(labels_format_json(&(struct labels)LS(c), &buf), 0);
    assert_string_equal(buf.data, "{\"a\":\"x\\\"y\\\\z\\nw\",\"b\":\"tab\\there\"}");
    bs_buf_fini(&buf);

    bs_buf_init(&buf, 5);
    assert_int_equal(labels_format(&(struct labels)LS(a), &buf), BS_ELIMIT);
    bs_buf_fini(&buf);
}

static void test_name_valid(void **state)
{
    (void)state;
    assert_true(labels_name_valid("job", 3));
    assert_true(labels_name_valid("_a1", 3));
    assert_true(labels_name_valid("__name__", 8));
    assert_false(labels_name_valid("", 0));
    assert_false(labels_name_valid("1a", 2));
    assert_false(labels_name_valid("a:b", 3));
    assert_false(labels_name_valid("a-b", 3));
    assert_false(labels_name_valid("a.b", 3));
    assert_true(labels_name_valid("abc!", 3));   /* only n bytes */
    assert_true(labels_metric_name_valid("a:b", 3));
    assert_true(labels_metric_name_valid(":a", 2));
    assert_true(labels_metric_name_valid("http_requests_total", 19));
    assert_false(labels_metric_name_valid("9x", 2));
    assert_false(labels_metric_name_valid("", 0));
    assert_false(labels_metric_name_valid("a b", 3));
}

/* ---------------------------------------------------------------- builder */

static void test_builder(void **state)
{
    struct labels_builder b;
    struct labels out;
    struct bs_error err;
    char tmp[16];
    (void)state;

    labels_builder_init(&b);
    assert_int_equal(labels_builder_labels(&b, &out, &err), 0);
    assert_int_equal(out.n, 0);

    /* Transient input is copied. */
    strcpy(tmp, "zeta");
    assert_int_equal(labels_builder_set_str(&b, tmp, "1"), 0);
    strcpy(tmp, "XXXX");
    assert_int_equal(labels_builder_set(&b, "job\0junk", 3, "prom!!", 4), 0);
    assert_int_equal(labels_builder_set_str(&b, "__name__", "up"), 0);
    assert_int_equal(labels_builder_set_str(&b, "alpha", "a"), 0);
    assert_string_equal(labels_builder_get(&b, "job"), "prom");
    assert_null(labels_builder_get(&b, "nope"));

    assert_int_equal(labels_builder_labels(&b, &out, &err), 0);
    expect_format(&out, "up{alpha=\"a\", job=\"prom\", zeta=\"1\"}");

    /* Replace, delete, empty value deletes. */
    assert_int_equal(labels_builder_set_str(&b, "job", "node"), 0);
    labels_builder_del(&b, "alpha");
    labels_builder_del(&b, "missing");
    assert_int_equal(labels_builder_set_str(&b, "zeta", ""), 0);
    assert_int_equal(labels_builder_set_str(&b, "beta", NULL), 0);
    assert_int_equal(labels_builder_labels(&b, &out, &err), 0);
    expect_format(&out, "up{job=\"node\"}");
    assert_int_equal(labels_builder_set(&b, "a\0b", 3, "v", 1), BS_EINVAL);

    /* from() copies a set and drops empty values. */
    struct label src[] = {{"a", "1"}, {"b", ""}, {"c", "3"}};
    assert_int_equal(labels_builder_from(&b, &(struct labels)LS(src)), 0);
    assert_int_equal(labels_builder_labels(&b, &out, &err), 0);
    expect_format(&out, "{a=\"1\", c=\"3\"}");

    labels_builder_reset(&b);
    assert_int_equal(labels_builder_labels(&b, &out, &err), 0);
    assert_int_equal(out.n, 0);

    /* Many labels in reverse order (the qsort path). */
    char name[16];
    for (int i = 99; i >= 0; i--) {
        snprintf(name, sizeof(name), "l%02d", i);
        assert_int_equal(labels_builder_set_str(&b, name, name), 0);
    }
    assert_int_equal(labels_builder_labels(&b, &out, &err), 0);
    assert_int_equal(out.n, 100);
    for (size_t i = 1; i < out.n; i++)
        assert_true(strcmp(out.v[i - 1].name, out.v[i].name) < 0);
    assert_string_equal(labels_get(&out, "l42"), "l42");
    labels_builder_fini(&b);
}

static void test_builder_dup(void **state)
{
    struct labels_builder b;
    struct labels out;
    struct bs_error err;
    (void)state;

    labels_builder_init(&b);
    assert_int_equal(labels_builder_add_raw(&b, "job", 3, "a", 1), 0);
    assert_int_equal(labels_builder_add_raw(&b, "instance", 8, "i", 1), 0);
    assert_int_equal(labels_builder_add_raw(&b, "job", 3, "b", 1), 0);
    bs_error_clear(&err);
    assert_int_equal(labels_builder_labels(&b, &out, &err), BS_EINVAL);
    assert_int_equal(err.code, BS_EINVAL);
    assert_string_equal(err.msg, "label name \"job\" is not unique");
    /* set() resolves the duplicate. */
    assert_int_equal(labels_builder_set_str(&b, "job", "c"), 0);
    assert_int_equal(labels_builder_labels(&b, &out, &err), 0);
    expect_format(&out, "{instance=\"i\", job=\"c\"}");

    /* Duplicates with an empty value are still duplicates; lone empty
     * values are dropped. */
    labels_builder_reset(&b);
    assert_int_equal(labels_builder_add_raw(&b, "a", 1, "", 0), 0);
    assert_int_equal(labels_builder_add_raw(&b, "a", 1, "x", 1), 0);
    assert_int_equal(labels_builder_labels(&b, &out, NULL), BS_EINVAL);
    labels_builder_reset(&b);
    assert_int_equal(labels_builder_add_raw(&b, "b", 1, "", 0), 0);
    assert_int_equal(labels_builder_add_raw(&b, "a", 1, "x", 1), 0);
    assert_int_equal(labels_builder_labels(&b, &out, NULL), 0);
    expect_format(&out, "{a=\"x\"}");
    labels_builder_fini(&b);
}

/* --------------------------------------------------------------- matchers */

static struct labels_matcher *mk(enum labels_match_type t, const char *name, const char *value)
{
    struct labels_matcher *m = NULL;
    struct bs_error err;
    bs_error_clear(&err);
    if (labels_matcher_new(&m, t, name, value, &err) != 0)
        fail_msg("matcher %s %s: %s", name, value, err.msg);
    return m;
}

struct mcase {
    enum labels_match_type type;
    const char *re;
    const char *value;
    bool want;
};

static void test_matchers(void **state)
{
    static const struct mcase cases[] = {
        {LABELS_MATCH_EQ, "foo", "foo", true},
        {LABELS_MATCH_EQ, "foo", "foobar", false},
        {LABELS_MATCH_EQ, "", "", true},
        {LABELS_MATCH_EQ, "", NULL, true},
        {LABELS_MATCH_NEQ, "foo", "foo", false},
        {LABELS_MATCH_NEQ, "foo", "bar", true},
        {LABELS_MATCH_NEQ, "foo", NULL, true},
        /* Anchoring. */
        {LABELS_MATCH_RE, "foo", "foo", true},
        {LABELS_MATCH_RE, "foo", "foobar", false},
        {LABELS_MATCH_RE, "foo", "barfoo", false},
        {LABELS_MATCH_RE, "fo+", "foooo", true},
        {LABELS_MATCH_RE, "fo+", "xfoo", false},
        {LABELS_MATCH_RE, "fo+", "foox", false},
        {LABELS_MATCH_RE, "a|ab", "ab", true},
        {LABELS_MATCH_RE, "a|b|c+", "ccc", true},
        {LABELS_MATCH_RE, "a|b|c+", "cd", false},
        {LABELS_MATCH_RE, "(a|b)c", "bc", true},
        {LABELS_MATCH_RE, "(a|b)c", "abc", false},
        /* Literal and set fast paths. */
        {LABELS_MATCH_RE, "prod|staging|dev", "staging", true},
        {LABELS_MATCH_RE, "prod|staging|dev", "stag", false},
        {LABELS_MATCH_RE, "prod|staging|dev", "prod|staging", false},
        {LABELS_MATCH_RE, "a\\.b", "a.b", true},
        {LABELS_MATCH_RE, "a\\.b", "axb", false},
        {LABELS_MATCH_RE, "a\\|b", "a|b", true},
        {LABELS_MATCH_RE, "a\\|b", "a", false},
        {LABELS_MATCH_RE, "a|", "", true},
        {LABELS_MATCH_RE, "", "", true},
        {LABELS_MATCH_RE, "", "x", false},
        /* .* and .+ match newlines (Prometheus 3). */
        {LABELS_MATCH_RE, ".*", "", true},
        {LABELS_MATCH_RE, ".*", "a\nb", true},
        {LABELS_MATCH_RE, ".+", "", false},
        {LABELS_MATCH_RE, ".+", "\n", true},
        {LABELS_MATCH_RE, "a.b", "a\nb", true},
        /* Prefix, suffix, substring. */
        {LABELS_MATCH_RE, "api.*", "api-server", true},
        {LABELS_MATCH_RE, "api.*", "api", true},
        {LABELS_MATCH_RE, "api.*", "xapi", false},
        {LABELS_MATCH_RE, ".*-server", "api-server", true},
        {LABELS_MATCH_RE, ".*-server", "api-servers", false},
        {LABELS_MATCH_RE, ".*err.*", "has error in it", true},
        {LABELS_MATCH_RE, ".*err.*", "fine", false},
        {LABELS_MATCH_RE, ".*err.*", "multi\nline\nerr", true},
        {LABELS_MATCH_RE, "a\\.*", "a...", true},
        {LABELS_MATCH_RE, "a\\.*", "ab", false},
        {LABELS_MATCH_RE, "..*", "", false},
        {LABELS_MATCH_RE, "..*", "x", true},
        /* PCRE2 features RE2 also has. */
        {LABELS_MATCH_RE, "(?i)FOO", "foo", true},
        {LABELS_MATCH_RE, "[0-9]+ms", "250ms", true},
        {LABELS_MATCH_RE, "[0-9]+ms", "250s", false},
        {LABELS_MATCH_RE, "\\d{3}", "123", true},
        {LABELS_MATCH_RE, "\\d{3}", "1234", false},
        {LABELS_MATCH_RE, "x$", "x\n", false},
        {LABELS_MATCH_RE, "caf.", "caf\xc3\xa9", true},      /* UTF-8: . is one char */
        {LABELS_MATCH_RE, "caf.", "caf\xff", true},          /* invalid UTF-8 is safe */
        {LABELS_MATCH_RE, "caf[a-z]", "caf\xff", false},
        {LABELS_MATCH_RE, "foo", NULL, false},
        {LABELS_MATCH_NRE, "foo", "foo", false},
        {LABELS_MATCH_NRE, "foo", "foobar", true},
        {LABELS_MATCH_NRE, "a|b", "c", true},
        {LABELS_MATCH_NRE, "a|b", "b", false},
        {LABELS_MATCH_NRE, ".+", NULL, true},
        {LABELS_MATCH_NRE, "(x|y)+", "xyx", false},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct labels_matcher *m = mk(cases[i].type, "l", cases[i].re);
        bool got = labels_matcher_matches(m, cases[i].value);
        if (got != cases[i].want)
            fail_msg("case %zu: l %d \"%s\" on \"%s\": got %d", i, (int)cases[i].type, cases[i].re,
                     cases[i].value ? cases[i].value : "(null)", got);
        labels_matcher_free(m);
    }
}

static void test_matcher_empty_and_labels(void **state)
{
    static const struct {
        enum labels_match_type type;
        const char *v;
        bool empty;
    } cases[] = {
        {LABELS_MATCH_EQ, "", true},     {LABELS_MATCH_EQ, "x", false},
        {LABELS_MATCH_NEQ, "", false},   {LABELS_MATCH_NEQ, "x", true},
        {LABELS_MATCH_RE, ".*", true},   {LABELS_MATCH_RE, ".+", false},
        {LABELS_MATCH_RE, "a|", true},   {LABELS_MATCH_RE, "a?", true},
        {LABELS_MATCH_RE, "a", false},   {LABELS_MATCH_NRE, ".*", false},
        {LABELS_MATCH_NRE, ".+", true},  {LABELS_MATCH_NRE, "a", true},
        {LABELS_MATCH_NRE, "x*", false},
    };
    struct label a[] = {{"__name__", "up"}, {"job", "prom"}};
    struct labels ls = LS(a);
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct labels_matcher *m = mk(cases[i].type, "x", cases[i].v);
        assert_int_equal(labels_matcher_matches_empty(m), cases[i].empty);
        /* A set without the label behaves like the empty value. */
        assert_int_equal(labels_matcher_matches_labels(m, &ls), cases[i].empty);
        labels_matcher_free(m);
    }
    struct labels_matcher *m = mk(LABELS_MATCH_RE, "job", "pro.*");
    assert_true(labels_matcher_matches_labels(m, &ls));
    assert_int_equal(labels_matcher_type(m), LABELS_MATCH_RE);
    assert_string_equal(labels_matcher_name(m), "job");
    assert_string_equal(labels_matcher_value(m), "pro.*");
    labels_matcher_free(m);
    m = mk(LABELS_MATCH_NEQ, "__name__", "up");
    assert_false(labels_matcher_matches_labels(m, &ls));
    labels_matcher_free(m);
    labels_matcher_free(NULL);
}

static void test_matcher_errors_and_format(void **state)
{
    struct labels_matcher *m = (struct labels_matcher *)1;
    struct bs_error err;
    struct bs_buf b;
    (void)state;

    bs_error_clear(&err);
    assert_int_equal(labels_matcher_new(&m, LABELS_MATCH_RE, "l", "(foo", &err), BS_EPARSE);
    assert_null(m);
    assert_int_equal(err.code, BS_EPARSE);
    assert_non_null(strstr(err.msg, "error parsing regexp: "));
    assert_non_null(strstr(err.msg, "missing closing parenthesis"));
    assert_non_null(strstr(err.msg, "at offset 4"));
    assert_non_null(strstr(err.msg, "\"(foo\""));
    /* Not hidden by anchoring: ')' without '(' is an error. */
    assert_int_equal(labels_matcher_new(&m, LABELS_MATCH_NRE, "l", "a)|(b", &err), BS_EPARSE);
    assert_int_equal(labels_matcher_new(&m, LABELS_MATCH_RE, "l", "[a-", &err), BS_EPARSE);
    assert_int_equal(labels_matcher_new(&m, LABELS_MATCH_RE, "l", "*a", &err), BS_EPARSE);
    assert_int_equal(labels_matcher_new(&m, LABELS_MATCH_RE, "l", "\xff", &err), BS_EPARSE);
    assert_int_equal(labels_matcher_new(&m, LABELS_MATCH_EQ, NULL, "x", &err), BS_EINVAL);
    assert_int_equal(labels_matcher_new(&m, LABELS_MATCH_EQ, "x", NULL, NULL), BS_EINVAL);
    /* EQ never compiles its value as a regex. */
    assert_int_equal(labels_matcher_new(&m, LABELS_MATCH_EQ, "l", "(foo", &err), 0);
    assert_true(labels_matcher_matches(m, "(foo"));
    labels_matcher_free(m);

    static const struct {
        enum labels_match_type t;
        const char *name, *value, *want;
    } f[] = {
        {LABELS_MATCH_EQ, "job", "prom", "job=\"prom\""},
        {LABELS_MATCH_NEQ, "job", "", "job!=\"\""},
        {LABELS_MATCH_RE, "job", "a|b\\.c", "job=~\"a|b\\\\.c\""},
        {LABELS_MATCH_NRE, "x", "q\"\n", "x!~\"q\\\"\\n\""},
        {LABELS_MATCH_EQ, "with.dot", "v", "\"with.dot\"=\"v\""},
    };
    bs_buf_init(&b, 0);
    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
        m = mk(f[i].t, f[i].name, f[i].value);
        bs_buf_reset(&b);
        assert_int_equal(labels_matcher_format(m, &b), 0);
        assert_string_equal(b.data, f[i].want);
        labels_matcher_free(m);
    }
    bs_buf_fini(&b);
}

/* Every fast path must agree with PCRE2: wrapping a pattern in (?:...)
 * forces the PCRE2 path with the same meaning. */
static void test_matcher_fast_vs_pcre(void **state)
{
    static const char *const pats[] = {
        "", ".*", ".+", "foo", "foo|bar", "foo|", "|foo", "a|b|c", "a\\.b", "a\\|b",
        "foo.*", ".*foo", ".*foo.*", ".*.*", "a\\.*", "\\.\\*", "\\+1", "x\\\\", "\\\\.*",
        "caf\xc3\xa9", "caf\xc3\xa9.*", "\\{a\\}", "\\[x\\]|y",
    };
    static const char *const vals[] = {
        "", "foo", "bar", "foobar", "barfoo", "xfooy", "a.b", "axb", "a|b", "a", "b", "c",
        "abc", "a...", "a.", ".*", "+1", "x\\", "\\", "\\abc", "caf\xc3\xa9", "caf\xc3\xa9s",
        "{a}", "[x]", "y", "foo\nbar", "\n", "\xff", "fo\xffo",
    };
    char wrapped[64];
    (void)state;
    for (size_t i = 0; i < sizeof(pats) / sizeof(pats[0]); i++) {
        snprintf(wrapped, sizeof(wrapped), "(?:%s)", pats[i]);
        for (int t = LABELS_MATCH_RE; t <= LABELS_MATCH_NRE; t++) {
            struct labels_matcher *fast = mk((enum labels_match_type)t, "l", pats[i]);
            struct labels_matcher *slow = mk((enum labels_match_type)t, "l", wrapped);
            for (size_t j = 0; j < sizeof(vals) / sizeof(vals[0]); j++)
                if (labels_matcher_matches(fast, vals[j]) != labels_matcher_matches(slow, vals[j]))
                    fail_msg("pattern \"%s\" on \"%s\": fast path disagrees", pats[i], vals[j]);
            assert_int_equal(labels_matcher_matches_empty(fast),
                             labels_matcher_matches_empty(slow));
            labels_matcher_free(fast);
            labels_matcher_free(slow);
        }
    }
}

struct match_thread {
    struct labels_matcher *m;
    int hits;
};

static void *match_loop(void *p)
{
    struct match_thread *t = p;
    char v[32];
    for (int i = 0; i < 20000; i++) {
        snprintf(v, sizeof(v), "host-%d.example", i);
        if (labels_matcher_matches(t->m, v))
            t->hits++;
    }
    return NULL;
}

static void test_matcher_threads(void **state)
{
    (void)state;
    struct labels_matcher *m = mk(LABELS_MATCH_RE, "instance", "host-[0-9]*7\\.example");
    struct match_thread t[3] = {{m, 0}, {m, 0}, {m, 0}};
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&th[i], NULL, match_loop, &t[i]);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 3; i++)
        assert_int_equal(t[i].hits, 2000);
    labels_matcher_free(m);
}

/* ----------------------------------------------------------------- symtab */

enum { SYM_N = 20000 };

struct sym_thread {
    struct labels_symtab *t;
    const char **out;
    int reverse;
};

static void *intern_loop(void *p)
{
    struct sym_thread *st = p;
    char s[32];
    for (int k = 0; k < SYM_N; k++) {
        int i = st->reverse ? SYM_N - 1 - k : k;
        int n = snprintf(s, sizeof(s), "sym-%d", i);
        st->out[i] = labels_symtab_intern(st->t, s, (size_t)n);
    }
    return NULL;
}

static void test_symtab(void **state)
{
    (void)state;
    struct labels_symtab *t = labels_symtab_new();
    assert_non_null(t);
    assert_int_equal(labels_symtab_count(t), 0);
    const char *a = labels_symtab_intern(t, "job", 3);
    char buf[] = "jobXYZ";
    const char *b = labels_symtab_intern(t, buf, 3);
    assert_ptr_equal(a, b);
    assert_string_equal(a, "job");
    const char *e = labels_symtab_intern(t, "", 0);
    assert_string_equal(e, "");
    assert_ptr_equal(e, labels_symtab_intern(t, "", 0));
    assert_ptr_not_equal(a, labels_symtab_intern(t, "jo", 2));
    assert_int_equal(labels_symtab_count(t), 3);
    assert_int_equal(labels_symtab_bytes(t), 4 + 1 + 3);
    /* Embedded NULs are part of the text. */
    const char *z = labels_symtab_intern(t, "a\0b", 3);
    assert_ptr_not_equal(z, labels_symtab_intern(t, "a", 1));
    assert_ptr_equal(z, labels_symtab_intern(t, "a\0b", 3));
    /* A string bigger than a slab. */
    size_t bign = 200000;
    char *big = malloc(bign);
    memset(big, 'b', bign);
    const char *bi = labels_symtab_intern(t, big, bign);
    assert_non_null(bi);
    assert_memory_equal(bi, big, bign);
    assert_int_equal(bi[bign], '\0');
    assert_ptr_equal(bi, labels_symtab_intern(t, big, bign));
    /* Small strings still go to the shared slab afterwards. */
    assert_string_equal(labels_symtab_intern(t, "after", 5), "after");
    free(big);
    labels_symtab_free(t);
    labels_symtab_free(NULL);
}

static void test_symtab_threads(void **state)
{
    (void)state;
    struct labels_symtab *t = labels_symtab_new();
    const char **o1 = calloc(SYM_N, sizeof(*o1)), **o2 = calloc(SYM_N, sizeof(*o2));
    struct sym_thread s1 = {t, o1, 0}, s2 = {t, o2, 1};
    pthread_t th1, th2;
    pthread_create(&th1, NULL, intern_loop, &s1);
    pthread_create(&th2, NULL, intern_loop, &s2);
    pthread_join(th1, NULL);
    pthread_join(th2, NULL);
    assert_int_equal(labels_symtab_count(t), SYM_N);
    char s[32];
    for (int i = 0; i < SYM_N; i++) {
        assert_non_null(o1[i]);
        assert_ptr_equal(o1[i], o2[i]);
        snprintf(s, sizeof(s), "sym-%d", i);
        assert_string_equal(o1[i], s);
        assert_ptr_equal(o1[i], labels_symtab_intern(t, s, strlen(s)));
    }
    free(o1);
    free(o2);
    labels_symtab_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash),
        cmocka_unit_test(test_cmp_equal_get),
        cmocka_unit_test(test_dup),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_name_valid),
        cmocka_unit_test(test_builder),
        cmocka_unit_test(test_builder_dup),
        cmocka_unit_test(test_matchers),
        cmocka_unit_test(test_matcher_empty_and_labels),
        cmocka_unit_test(test_matcher_errors_and_format),
        cmocka_unit_test(test_matcher_fast_vs_pcre),
        cmocka_unit_test(test_matcher_threads),
        cmocka_unit_test(test_symtab),
        cmocka_unit_test(test_symtab_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
