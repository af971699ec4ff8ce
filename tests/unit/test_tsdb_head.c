/* SPDX-License-Identifier: Apache-2.0
 *
 * Unit tests of the head through the public API: appender semantics
 * (out-of-order, duplicates, batch isolation, invalid input, ref hints),
 * querier matchers and ordering, iterators with ranges and seek, chunk
 * cutting, label names and values, and a concurrency smoke test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>
#include <math.h>
#include <pthread.h>

#include "test_tsdb_util.h"
#include "tsdb/tsdb_int.h"

struct fixture {
    char *dir;
    struct tsdb *db;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->dir = make_tmpdir();
    f->db = open_db(f->dir, 0, 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    tsdb_close(f->db);
    rmrf(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static void commit_ok(struct tsdb_appender *a)
{
    struct bs_error err = {0};
    if (tsdb_appender_commit(a, &err))
        fail_msg("commit: %s", err.msg);
}

static void check_query(struct tsdb *db, int64_t mint, int64_t maxt, const char *ms, bool samples,
                        const char *want)
{
    char *got = dump_query(db, mint, maxt, ms, samples);
    if (strcmp(got, want) != 0)
        fail_msg("query %s:\n got: %s\nwant: %s", ms, got, want);
    free(got);
}

static void test_basic(void **state)
{
    struct fixture *f = *state;
    struct tsdb_appender *a = tsdb_appender_new(f->db);
    assert_int_equal(add_spec(a, "__name__=up,job=a", 1000, 1), 0);
    assert_int_equal(add_spec(a, "__name__=up,job=a", 2000, 0), 0);
    assert_int_equal(add_spec(a, "__name__=up,job=b", 1000, 5), 0);
    commit_ok(a);
    check_query(f->db, 0, 10000, "__name__=up", true,
                "up{job=\"a\"} 1000:1 2000:0\nup{job=\"b\"} 1000:5\n");
    check_query(f->db, 1500, 10000, "__name__=up", true, "up{job=\"a\"} 2000:0\n");
    check_query(f->db, 3000, 10000, "__name__=up", true, "");
    struct tsdb_stats st;
    tsdb_stats(f->db, &st);
    assert_int_equal(st.num_series, 2);
    assert_int_equal(st.num_samples_appended, 3);
    assert_int_equal(st.num_chunks, 2);
    assert_int_equal(st.min_time, 1000);
    assert_int_equal(st.max_time, 2000);
    assert_true(st.wal_bytes > 0);
}

static void test_matchers(void **state)
{
    struct fixture *f = *state;
    struct tsdb_appender *a = tsdb_appender_new(f->db);
    const char *series[] = {"__name__=up,job=a,inst=1", "__name__=up,job=a,inst=2",
                            "__name__=up,job=b,inst=1", "__name__=up,inst=3",
                            "__name__=down,job=a,inst=1"};
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(add_spec(a, series[i], 100, (double)i), 0);
    commit_ok(a);

    const char *A1 = "up{inst=\"1\", job=\"a\"}\n", *A2 = "up{inst=\"2\", job=\"a\"}\n",
               *B1 = "up{inst=\"1\", job=\"b\"}\n", *N3 = "up{inst=\"3\"}\n",
               *D1 = "down{inst=\"1\", job=\"a\"}\n";
    char want[512];
#define WANT(...) (snprintf(want, sizeof(want), "%s%s%s%s%s", __VA_ARGS__), want)
    check_query(f->db, 0, 1000, "__name__=up", false, WANT(A1, B1, A2, N3, ""));
    check_query(f->db, 0, 1000, "__name__=up;job=a", false, WANT(A1, A2, "", "", ""));
    check_query(f->db, 0, 1000, "__name__=up;job!=a", false, WANT(B1, N3, "", "", ""));
    check_query(f->db, 0, 1000, "__name__=up;job=~a|b", false, WANT(A1, B1, A2, "", ""));
    check_query(f->db, 0, 1000, "__name__=up;job!~a", false, WANT(B1, N3, "", "", ""));
    check_query(f->db, 0, 1000, "__name__=up;job=", false, WANT(N3, "", "", "", ""));
    check_query(f->db, 0, 1000, "__name__=up;job=~.*", false, WANT(A1, B1, A2, N3, ""));
    check_query(f->db, 0, 1000, "job!=", false, WANT(D1, A1, B1, A2, ""));
    check_query(f->db, 0, 1000, "job=~.+", false, WANT(D1, A1, B1, A2, ""));
    check_query(f->db, 0, 1000, "inst=1", false, WANT(D1, A1, B1, "", ""));
    check_query(f->db, 0, 1000, "job=", false, WANT(N3, "", "", "", ""));
    check_query(f->db, 0, 1000, "job=zzz", false, "");
    check_query(f->db, 0, 1000, "nolabel=~x.*", false, "");
    check_query(f->db, 0, 1000, "inst=~1|3;job!=b", false, WANT(D1, A1, N3, "", ""));
    check_query(f->db, 0, 1000, "__name__=~u.", false, WANT(A1, B1, A2, N3, ""));
    check_query(f->db, 0, 1000, "__name__=~u", false, "");   /* anchored */
    check_query(f->db, 200, 1000, "__name__=up", false, ""); /* out of range */
#undef WANT

    struct tsdb_querier *q = tsdb_querier_new(f->db, 0, 1000);
    const char **v;
    size_t n;
    assert_int_equal(tsdb_querier_label_names(q, NULL, 0, &v, &n, NULL), 0);
    assert_int_equal(n, 3);
    assert_string_equal(v[0], "__name__");
    assert_string_equal(v[1], "inst");
    assert_string_equal(v[2], "job");
    free(v);
    assert_int_equal(tsdb_querier_label_values(q, "inst", NULL, 0, &v, &n, NULL), 0);
    assert_int_equal(n, 3);
    assert_string_equal(v[0], "1");
    assert_string_equal(v[1], "2");
    assert_string_equal(v[2], "3");
    free(v);
    struct labels_matcher *m = mk_matcher("__name__=down");
    assert_int_equal(tsdb_querier_label_values(q, "job", &m, 1, &v, &n, NULL), 0);
    assert_int_equal(n, 1);
    assert_string_equal(v[0], "a");
    free(v);
    labels_matcher_free(m);
    m = mk_matcher("job=");
    assert_int_equal(tsdb_querier_label_names(q, &m, 1, &v, &n, NULL), 0);
    assert_int_equal(n, 2); /* __name__, inst */
    free(v);
    labels_matcher_free(m);
    assert_int_equal(tsdb_querier_label_values(q, "nope", NULL, 0, &v, &n, NULL), 0);
    assert_int_equal(n, 0);
    assert_null(v);
    tsdb_querier_free(q);

    q = tsdb_querier_new(f->db, 500, 1000); /* nothing in range */
    assert_int_equal(tsdb_querier_label_names(q, NULL, 0, &v, &n, NULL), 0);
    assert_int_equal(n, 0);
    tsdb_querier_free(q);
}

static void test_ooo_duplicate(void **state)
{
    struct fixture *f = *state;
    struct labels_builder b;
    labels_builder_init(&b);
    struct labels ls = mk_labels(&b, "__name__=x");
    struct tsdb_appender *a = tsdb_appender_new(f->db);
    tsdb_ref ref = 0;
    assert_int_equal(tsdb_appender_add(a, 0, &ls, 1000, 1, &ref), 0);
    assert_true(ref != 0);
    /* within the batch */
    assert_int_equal(tsdb_appender_add(a, ref, NULL, 900, 1, NULL), BS_EOUTOFORDER);
    assert_int_equal(tsdb_appender_add(a, ref, NULL, 1000, 2, NULL), BS_EDUPLICATE);
    assert_int_equal(tsdb_appender_add(a, ref, NULL, 1000, 1, NULL), 0); /* identical */
    assert_int_equal(tsdb_appender_add(a, ref, NULL, 2000, 2, NULL), 0);
    commit_ok(a);
    /* against the head */
    a = tsdb_appender_new(f->db);
    assert_int_equal(tsdb_appender_add(a, ref, NULL, 1500, 1, NULL), BS_EOUTOFORDER);
    assert_int_equal(tsdb_appender_add(a, 0, &ls, 2000, 3, NULL), BS_EDUPLICATE);
    assert_int_equal(tsdb_appender_add(a, 0, &ls, 2000, 2, NULL), 0);
    assert_int_equal(tsdb_appender_add(a, ref, NULL, 3000, bs_stale_nan(), NULL), 0);
    commit_ok(a);
    check_query(f->db, 0, 10000, "__name__=x", true, "x 1000:1 2000:2 3000:nan\n");
    struct tsdb_stats st;
    tsdb_stats(f->db, &st);
    assert_int_equal(st.num_samples_appended, 3);
    assert_int_equal(st.out_of_order_samples, 2);
    assert_int_equal(st.duplicate_samples, 2);

    /* The stale marker comes back bit-exactly. */
    struct tsdb_querier *q = tsdb_querier_new(f->db, 3000, 3000);
    struct labels_matcher *m = mk_matcher("__name__=x");
    struct tsdb_series_set *set;
    assert_int_equal(tsdb_querier_select(q, &m, 1, &set, NULL), 0);
    assert_true(tsdb_series_set_next(set));
    struct tsdb_iterator *it = tsdb_series_set_iterator(set);
    assert_true(tsdb_iterator_next(it));
    double v;
    tsdb_iterator_at(it, NULL, &v);
    assert_true(bs_is_stale_nan(v));
    assert_false(tsdb_iterator_next(it));
    tsdb_iterator_free(it);
    assert_false(tsdb_series_set_next(set));
    tsdb_series_set_free(set);
    labels_matcher_free(m);
    tsdb_querier_free(q);
    labels_builder_fini(&b);
}

static void test_batch_isolation(void **state)
{
    struct fixture *f = *state;
    struct tsdb_appender *a1 = tsdb_appender_new(f->db);
    struct tsdb_appender *a2 = tsdb_appender_new(f->db);
    assert_int_equal(add_spec(a1, "__name__=iso,k=1", 10, 1), 0);
    assert_int_equal(add_spec(a2, "__name__=iso,k=2", 10, 2), 0);
    check_query(f->db, 0, 100, "__name__=iso", true, "");
    commit_ok(a2);
    check_query(f->db, 0, 100, "__name__=iso", true, "iso{k=\"2\"} 10:2\n");
    tsdb_appender_rollback(a1);
    check_query(f->db, 0, 100, "__name__=iso", true, "iso{k=\"2\"} 10:2\n");
    /* a rolled-back sample does not block a later one at the same time */
    a1 = tsdb_appender_new(f->db);
    assert_int_equal(add_spec(a1, "__name__=iso,k=1", 10, 7), 0);
    commit_ok(a1);
    check_query(f->db, 0, 100, "__name__=iso", true, "iso{k=\"1\"} 10:7\niso{k=\"2\"} 10:2\n");
    /* empty commit and NULL are fine */
    assert_int_equal(tsdb_appender_commit(tsdb_appender_new(f->db), NULL), 0);
    assert_int_equal(tsdb_appender_commit(NULL, NULL), 0);
    tsdb_appender_rollback(NULL);
}

static void test_invalid(void **state)
{
    struct fixture *f = *state;
    struct tsdb_appender *a = tsdb_appender_new(f->db);
    assert_int_equal(tsdb_appender_add(a, 0, NULL, 1, 1, NULL), BS_EINVAL);
    assert_int_equal(tsdb_appender_add(a, 12345, NULL, 1, 1, NULL), BS_EINVAL);
    struct labels empty = {NULL, 0};
    assert_int_equal(tsdb_appender_add(a, 0, &empty, 1, 1, NULL), BS_EINVAL);
    struct label unsorted[] = {{"b", "1"}, {"a", "2"}};
    struct labels ls = {unsorted, 2};
    assert_int_equal(tsdb_appender_add(a, 0, &ls, 1, 1, NULL), BS_EINVAL);
    struct label dup[] = {{"a", "1"}, {"a", "2"}};
    ls = (struct labels){dup, 2};
    assert_int_equal(tsdb_appender_add(a, 0, &ls, 1, 1, NULL), BS_EINVAL);
    struct label emptyval[] = {{"a", ""}};
    ls = (struct labels){emptyval, 1};
    assert_int_equal(tsdb_appender_add(a, 0, &ls, 1, 1, NULL), BS_EINVAL);
    struct label badname[] = {{"1a", "x"}};
    ls = (struct labels){badname, 1};
    assert_int_equal(tsdb_appender_add(a, 0, &ls, 1, 1, NULL), BS_EINVAL);
    commit_ok(a);
    struct tsdb_stats st;
    tsdb_stats(f->db, &st);
    assert_int_equal(st.num_series, 0);

    struct tsdb_querier *q = tsdb_querier_new(f->db, 0, 1);
    struct tsdb_series_set *set = NULL;
    struct labels_matcher *nullm = NULL;
    struct bs_error err = {0};
    assert_int_equal(tsdb_querier_select(q, &nullm, 1, &set, &err), BS_EINVAL);
    assert_null(set);
    tsdb_querier_free(q);
}

static void test_ref_hint(void **state)
{
    struct fixture *f = *state;
    struct labels_builder b;
    labels_builder_init(&b);
    struct tsdb_appender *a = tsdb_appender_new(f->db);
    tsdb_ref r1 = 0, r2 = 0, r3 = 0;
    struct labels ls = mk_labels(&b, "__name__=r,i=1");
    assert_int_equal(tsdb_appender_add(a, 0, &ls, 1, 1, &r1), 0);
    ls = mk_labels(&b, "__name__=r,i=2");
    assert_int_equal(tsdb_appender_add(a, 0, &ls, 1, 1, &r2), 0);
    assert_int_equal(r1, 1);
    assert_int_equal(r2, 2);
    assert_int_equal(tsdb_appender_add(a, r1, NULL, 2, 5, &r3), 0);
    assert_int_equal(r3, r1);
    /* same labels again: same ref */
    ls = mk_labels(&b, "__name__=r,i=1");
    assert_int_equal(tsdb_appender_add(a, 0, &ls, 3, 6, &r3), 0);
    assert_int_equal(r3, r1);
    commit_ok(a);
    check_query(f->db, 0, 10, "__name__=r", true, "r{i=\"1\"} 1:1 2:5 3:6\nr{i=\"2\"} 1:1\n");
    labels_builder_fini(&b);
}

static void test_iterator_seek_chunks(void **state)
{
    struct fixture *f = *state;
    struct labels_builder b;
    labels_builder_init(&b);
    struct labels ls = mk_labels(&b, "__name__=long");
    struct tsdb_appender *a = tsdb_appender_new(f->db);
    tsdb_ref ref = 0;
    for (int i = 0; i < 1000; i++)
        assert_int_equal(tsdb_appender_add(a, ref, &ls, i * 1000, i, &ref), 0);
    commit_ok(a);
    struct tsdb_stats st;
    tsdb_stats(f->db, &st);
    assert_int_equal(st.num_chunks, 9); /* 1000 / 120 rounded up */

    struct tsdb_querier *q = tsdb_querier_new(f->db, 100500, 500000);
    struct labels_matcher *m = mk_matcher("__name__=long");
    struct tsdb_series_set *set;
    assert_int_equal(tsdb_querier_select(q, &m, 1, &set, NULL), 0);
    assert_int_equal(tsdb_series_set_count(set), 1);
    assert_true(tsdb_series_set_next(set));
    struct tsdb_iterator *it = tsdb_series_set_iterator(set);
    struct tsdb_iterator *it2 = tsdb_series_set_iterator(set);
    int64_t t;
    double v;
    assert_true(tsdb_iterator_next(it));
    tsdb_iterator_at(it, &t, &v);
    assert_int_equal(t, 101000);
    assert_true(tsdb_iterator_seek(it, 200000));
    tsdb_iterator_at(it, &t, &v);
    assert_int_equal(t, 200000);
    assert_true(v == 200.0);
    assert_true(tsdb_iterator_seek(it, 150000)); /* never backwards */
    tsdb_iterator_at(it, &t, NULL);
    assert_int_equal(t, 200000);
    assert_true(tsdb_iterator_seek(it, 200001));
    tsdb_iterator_at(it, &t, NULL);
    assert_int_equal(t, 201000);
    assert_true(tsdb_iterator_seek(it, 499999));
    tsdb_iterator_at(it, &t, NULL);
    assert_int_equal(t, 500000);
    assert_false(tsdb_iterator_next(it));
    assert_false(tsdb_iterator_seek(it, 0));
    tsdb_iterator_free(it);

    /* second iterator is independent and outlives the set */
    assert_false(tsdb_series_set_next(set));
    tsdb_series_set_free(set);
    size_t count = 0;
    int64_t prev = -1;
    while (tsdb_iterator_next(it2)) {
        tsdb_iterator_at(it2, &t, &v);
        assert_true(t > prev);
        assert_true(v == (double)(t / 1000));
        prev = t;
        count++;
    }
    assert_int_equal(count, 400);
    tsdb_iterator_free(it2);
    tsdb_querier_free(q);

    /* seek past the end from the start */
    q = tsdb_querier_new(f->db, 0, INT64_MAX);
    assert_int_equal(tsdb_querier_select(q, &m, 1, &set, NULL), 0);
    assert_true(tsdb_series_set_next(set));
    it = tsdb_series_set_iterator(set);
    assert_true(tsdb_iterator_seek(it, 998500));
    tsdb_iterator_at(it, &t, NULL);
    assert_int_equal(t, 999000);
    assert_false(tsdb_iterator_seek(it, 1000000));
    tsdb_iterator_free(it);
    tsdb_series_set_free(set);
    tsdb_querier_free(q);
    labels_matcher_free(m);

    /* a 2h boundary cuts a chunk */
    ls = mk_labels(&b, "__name__=edge");
    a = tsdb_appender_new(f->db);
    assert_int_equal(tsdb_appender_add(a, 0, &ls, TSDB_CHUNK_RANGE_MS - 1, 1, NULL), 0);
    assert_int_equal(tsdb_appender_add(a, 0, &ls, TSDB_CHUNK_RANGE_MS, 2, NULL), 0);
    commit_ok(a);
    tsdb_stats(f->db, &st);
    assert_int_equal(st.num_chunks, 11);
    check_query(f->db, 0, INT64_MAX, "__name__=edge", true, "edge 7199999:1 7200000:2\n");
    labels_builder_fini(&b);
}

/* Selection by chunk time ranges against exact selection: a range that
 * falls between two samples of one chunk selects the series only by
 * chunk ranges (and its iterator yields nothing); ranges touching a
 * chunk's first or last sample, or in a gap between chunks, select alike. */
static void test_select_chunk_ranges(void **state)
{
    struct fixture *f = *state;
    struct tsdb_appender *a = tsdb_appender_new(f->db);
    /* gap: two samples 100 s apart in one chunk */
    assert_int_equal(add_spec(a, "__name__=gap", 1000, 1), 0);
    assert_int_equal(add_spec(a, "__name__=gap", 101000, 2), 0);
    commit_ok(a);
    /* cut: 121 samples, so a closed chunk [0, 119000] and an open one
     * [120000, 120000]; a 2h boundary then leaves a gap between chunks */
    a = tsdb_appender_new(f->db);
    for (int i = 0; i < 121; i++)
        assert_int_equal(add_spec(a, "__name__=cut", i * 1000, i), 0);
    assert_int_equal(add_spec(a, "__name__=cut", TSDB_CHUNK_RANGE_MS + 5000, 500), 0);
    commit_ok(a);

    const unsigned cr = TSDB_SELECT_CHUNK_RANGES;
    struct {
        const char *ms;
        int64_t mint, maxt;
        const char *exact, *ranges;
    } cases[] = {
        {"__name__=gap", 2000, 100000, "", "gap\n"},
        {"__name__=gap", 1001, 101000, "gap 101000:2\n", "gap 101000:2\n"},
        {"__name__=gap", 0, 1000, "gap 1000:1\n", "gap 1000:1\n"},
        {"__name__=gap", 101001, 200000, "", ""},
        {"__name__=gap", 0, 999, "", ""},
        {"__name__=cut", 119500, 119900, "", ""},
        {"__name__=cut", 119000, 119000, "cut 119000:119\n", "cut 119000:119\n"},
        {"__name__=cut", 120000, 120000, "cut 120000:120\n", "cut 120000:120\n"},
        {"__name__=cut", 121000, TSDB_CHUNK_RANGE_MS, "", ""},
        {"__name__=cut", 130000, TSDB_CHUNK_RANGE_MS + 4999, "", ""},
        {"__name__=cut", TSDB_CHUNK_RANGE_MS + 5000, INT64_MAX, "cut 7205000:500\n",
         "cut 7205000:500\n"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *got = dump_query_flags(f->db, cases[i].mint, cases[i].maxt, cases[i].ms, true, 0);
        if (strcmp(got, cases[i].exact) != 0)
            fail_msg("case %zu exact: got '%s' want '%s'", i, got, cases[i].exact);
        free(got);
        got = dump_query_flags(f->db, cases[i].mint, cases[i].maxt, cases[i].ms, true, cr);
        if (strcmp(got, cases[i].ranges) != 0)
            fail_msg("case %zu by chunk ranges: got '%s' want '%s'", i, got, cases[i].ranges);
        free(got);
    }
}

/* Iterators over head chunks (open ones with seek marks, closed ones in
 * chunk files) and block chunks return, for random query ranges and
 * random sequences of next and seek, what a linear scan of the appended
 * samples gives. */
#define SK_N 2000
static void test_iterator_seek_random(void **state)
{
    struct fixture *f = *state;
    static int64_t ts[SK_N];
    static double vs[SK_N];
    uint64_t r = 0x2545F4914F6CDD1DULL;
    int64_t t = 1000;
    struct labels_builder b;
    labels_builder_init(&b);
    struct labels ls = mk_labels(&b, "__name__=sk");
    struct tsdb_appender *a = tsdb_appender_new(f->db);
    tsdb_ref ref = 0;
    for (int i = 0; i < SK_N; i++) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        t += 5000 + (int64_t)(r % 20000) + (r % 50 == 0 ? 900000 : 0);
        ts[i] = t;
        vs[i] = (double)(r % 1000000) / 8;
        assert_int_equal(tsdb_appender_add(a, ref, &ls, ts[i], vs[i], &ref), 0);
    }
    commit_ok(a);
    labels_builder_fini(&b);
    struct bs_error err = {0};
    if (tsdb_compact_now(f->db, &err) != 0)
        fail_msg("compact: %s", err.msg);
    struct tsdb_stats st;
    tsdb_stats(f->db, &st);
    assert_true(st.num_blocks >= 1);

    struct labels_matcher *m = mk_matcher("__name__=sk");
    for (int trial = 0; trial < 400; trial++) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        int64_t mint = ts[r % SK_N] - (int64_t)(r % 3 ? 0 : r % 7000);
        int64_t maxt = mint + (int64_t)(r >> 20) % (ts[SK_N - 1] - ts[0] + 10000);
        struct tsdb_querier *q = tsdb_querier_new(f->db, mint, maxt);
        struct tsdb_series_set *set;
        unsigned flags = trial % 2 ? TSDB_SELECT_CHUNK_RANGES : 0;
        assert_int_equal(tsdb_querier_select_flags(q, &m, 1, flags, &set, NULL), 0);
        size_t at = 0; /* next index a linear scan would look at */
        while (at < SK_N && ts[at] < mint)
            at++;
        if (!tsdb_series_set_next(set)) {
            assert_true(at == SK_N || ts[at] > maxt);
            tsdb_series_set_free(set);
            tsdb_querier_free(q);
            continue;
        }
        struct tsdb_iterator *it = tsdb_series_set_iterator(set);
        tsdb_series_set_free(set);
        bool started = false;
        for (int op = 0; op < 20; op++) {
            r ^= r << 13, r ^= r >> 7, r ^= r << 17;
            size_t want;
            bool got;
            if (r % 3 == 0) {
                want = started ? at + 1 : at;
                got = tsdb_iterator_next(it);
            } else {
                int64_t target = ts[r % SK_N] + (int64_t)((r >> 16) % 3) - 1;
                want = at;
                if (started && ts[at] >= target) {
                    want = at; /* stays */
                } else {
                    if (started)
                        want = at + 1;
                    while (want < SK_N && ts[want] < target)
                        want++;
                }
                got = tsdb_iterator_seek(it, target);
            }
            if (want >= SK_N || ts[want] > maxt) {
                assert_false(got);
                break;
            }
            assert_true(got);
            int64_t gt;
            double gv;
            tsdb_iterator_at(it, &gt, &gv);
            if (gt != ts[want])
                fail_msg("trial %d op %d: t %lld, want %lld", trial, op, (long long)gt,
                         (long long)ts[want]);
            assert_true(gv == vs[want]);
            at = want;
            started = true;
        }
        tsdb_iterator_free(it);
        tsdb_querier_free(q);
    }
    labels_matcher_free(m);
}

/* An iterator reads the open chunk as select saw it, seek marks
 * included: appends after select (which reallocate the open chunk, add
 * marks, then cut it) change nothing it returns, and it outlives its set. */
static void test_iterator_snapshot(void **state)
{
    struct fixture *f = *state;
    struct labels_builder b;
    labels_builder_init(&b);
    struct labels ls = mk_labels(&b, "__name__=snap");
    struct tsdb_appender *a = tsdb_appender_new(f->db);
    tsdb_ref ref = 0;
    for (int i = 0; i < 90; i++)
        assert_int_equal(tsdb_appender_add(a, ref, &ls, i * 1000, i * 3, &ref), 0);
    commit_ok(a);
    struct tsdb_querier *q = tsdb_querier_new(f->db, 0, INT64_MAX);
    struct labels_matcher *m = mk_matcher("__name__=snap");
    struct tsdb_series_set *set;
    assert_int_equal(
        tsdb_querier_select_flags(q, &m, 1, TSDB_SELECT_CHUNK_RANGES, &set, NULL), 0);
    assert_true(tsdb_series_set_next(set));
    struct tsdb_iterator *it = tsdb_series_set_iterator(set);
    struct tsdb_iterator *it2 = tsdb_series_set_iterator(set);
    tsdb_series_set_free(set);
    a = tsdb_appender_new(f->db);
    for (int i = 90; i < 400; i++)
        assert_int_equal(tsdb_appender_add(a, ref, &ls, i * 1000, i * 3, &ref), 0);
    commit_ok(a);
    int64_t t;
    double v;
    /* past both marks (40, 80), then the end of the snapshot */
    assert_true(tsdb_iterator_seek(it, 85500));
    tsdb_iterator_at(it, &t, &v);
    assert_int_equal(t, 86000);
    assert_true(v == 86 * 3);
    assert_true(tsdb_iterator_next(it));
    assert_true(tsdb_iterator_seek(it, 89000));
    tsdb_iterator_at(it, &t, &v);
    assert_int_equal(t, 89000);
    assert_false(tsdb_iterator_next(it));
    assert_false(tsdb_iterator_seek(it, 200000));
    int n = 0;
    while (tsdb_iterator_next(it2)) {
        tsdb_iterator_at(it2, &t, &v);
        assert_int_equal(t, n * 1000);
        assert_true(v == n * 3);
        n++;
    }
    assert_int_equal(n, 90);
    tsdb_iterator_free(it);
    tsdb_iterator_free(it2);
    tsdb_querier_free(q);
    labels_matcher_free(m);
    labels_builder_fini(&b);
}

/* -------------------------------------------------------- concurrency */

#define CC_SERIES 50
#define CC_STEPS 400

struct cc_arg {
    struct tsdb *db;
    int id;
    int errors;
};

static void *cc_appender(void *p)
{
    struct cc_arg *arg = p;
    struct labels_builder b;
    labels_builder_init(&b);
    char spec[128];
    for (int step = 0; step < CC_STEPS; step++) {
        struct tsdb_appender *a = tsdb_appender_new(arg->db);
        for (int s = 0; s < CC_SERIES; s++) {
            snprintf(spec, sizeof(spec), "__name__=cc,owner=%d,s=%d", arg->id, s);
            struct labels ls = mk_labels(&b, spec);
            if (tsdb_appender_add(a, 0, &ls, step * 10, step, NULL) != 0)
                arg->errors++;
        }
        /* a series both threads write: one of them may lose the race */
        struct labels ls = mk_labels(&b, "__name__=cc,owner=shared");
        int rc = tsdb_appender_add(a, 0, &ls, step * 10 + arg->id, step, NULL);
        if (rc != 0 && rc != BS_EOUTOFORDER)
            arg->errors++;
        if (tsdb_appender_commit(a, NULL) != 0)
            arg->errors++;
    }
    labels_builder_fini(&b);
    return NULL;
}

static void *cc_querier(void *p)
{
    struct cc_arg *arg = p;
    struct labels_matcher *m = mk_matcher("__name__=cc");
    for (int round = 0; round < 200; round++) {
        struct tsdb_querier *q = tsdb_querier_new(arg->db, 0, INT64_MAX);
        struct tsdb_series_set *set;
        if (tsdb_querier_select(q, &m, 1, &set, NULL) != 0) {
            arg->errors++;
            tsdb_querier_free(q);
            continue;
        }
        while (tsdb_series_set_next(set)) {
            struct tsdb_iterator *it = tsdb_series_set_iterator(set);
            int64_t prev = -1, t;
            while (tsdb_iterator_next(it)) {
                tsdb_iterator_at(it, &t, NULL);
                if (t <= prev)
                    arg->errors++;
                prev = t;
            }
            tsdb_iterator_free(it);
        }
        tsdb_series_set_free(set);
        tsdb_querier_free(q);
    }
    labels_matcher_free(m);
    return NULL;
}

/* The stripes' open-addressing tables: after removing every third series
 * (backward-shift deletion, across table growth), every other series is
 * still found, and the removed ones are created anew. */
static void test_stripe_remove(void **state)
{
    (void)state;
    struct tsdb_head h;
    assert_int_equal(tsdb_head_init(&h), 0);
    enum { N = 20000 };
    struct tsdb_series **v = calloc(N, sizeof(*v));
    char val[32];
    struct label l[2] = {{"__name__", "m"}, {"i", val}};
    struct labels ls = {l, 2};
    for (size_t i = 0; i < N; i++) {
        snprintf(val, sizeof(val), "%zu", i);
        bool created;
        assert_int_equal(tsdb_head_series_get_or_create(&h, &ls, labels_hash(&ls), 0, &v[i],
                                                        &created),
                         0);
        assert_true(created);
    }
    for (size_t i = 0; i < N; i += 3)
        tsdb_head_stripe_unlink(&h, v[i]);
    for (size_t i = 0; i < N; i++) {
        snprintf(val, sizeof(val), "%zu", i);
        struct tsdb_series *s;
        bool created;
        assert_int_equal(
            tsdb_head_series_get_or_create(&h, &ls, labels_hash(&ls), 0, &s, &created), 0);
        assert_int_equal(created, i % 3 == 0);
        if (i % 3)
            assert_ptr_equal(s, v[i]);
        else
            tsdb_head_series_free(v[i]); /* unlinked: the head no longer frees it */
    }
    free(v);
    tsdb_head_fini(&h);
}

static void test_concurrency(void **state)
{
    struct fixture *f = *state;
    struct cc_arg args[3] = {{f->db, 0, 0}, {f->db, 1, 0}, {f->db, 2, 0}};
    pthread_t th[3];
    pthread_create(&th[0], NULL, cc_appender, &args[0]);
    pthread_create(&th[1], NULL, cc_appender, &args[1]);
    pthread_create(&th[2], NULL, cc_querier, &args[2]);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 3; i++)
        assert_int_equal(args[i].errors, 0);
    struct tsdb_stats st;
    tsdb_stats(f->db, &st);
    assert_int_equal(st.num_series, 2 * CC_SERIES + 1);
    /* every owned sample landed */
    char *got = dump_query(f->db, 0, INT64_MAX, "__name__=cc;owner=0;s=7", true);
    size_t n = 0;
    for (char *p = got; (p = strchr(p, ':')) != NULL; p++)
        n++;
    assert_int_equal(n, CC_STEPS);
    free(got);
    assert_true(st.num_samples_appended >= 2 * CC_SERIES * CC_STEPS);
}

int main(void)
{
    bs_log_set_level(BS_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_basic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_matchers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ooo_duplicate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_isolation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ref_hint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_iterator_seek_chunks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_select_chunk_ranges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_iterator_seek_random, setup, teardown),
        cmocka_unit_test_setup_teardown(test_iterator_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrency, setup, teardown),
        cmocka_unit_test(test_stripe_remove),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
