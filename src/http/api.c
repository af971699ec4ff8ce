/* SPDX-License-Identifier: Apache-2.0
 *
 * Prometheus HTTP API v1, the data endpoints: query, query_range, series,
 * labels and label values. Parameter handling, defaults, the order of the
 * checks and every error text follow Prometheus 2.42's web/api/v1/api.go,
 * because clients (and people) match on them:
 *   - /query's "time" and the series/labels "start"/"end" are wrapped as
 *     invalid parameter "x": Invalid time value for 'x': cannot parse ...;
 *     /query_range's start/end are not (no "Invalid time value" part);
 *   - a parse error in /query is prefixed with invalid parameter "query",
 *     in /query_range it is not; a match[] error is prefixed in /series,
 *     not in /labels and /label/<name>/values.
 *
 * Helpers that validate a parameter return 0 when it is fine, ANSWERED
 * when they wrote an error answer into rs (the handler then returns 0),
 * or a negative BS_* code when even that failed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_int.h"
#include "labels/labels.h"
#include "promql/promql.h"
#include "tsdb/tsdb.h"

#define ANSWERED 1
#define MAX_POINTS_PER_SERIES 11000

/* Prometheus's minTime / maxTime: what "no start" and "no end" mean. */
#define API_MIN_TIME_MS (INT64_C(-9223309901257974) * 1000)
#define API_MAX_TIME_MS (INT64_C(9223309901257974) * 1000 + 999)

static int bad_data(struct http_response *rs, const char *fmt, const char *a, const char *b)
{
    int rc = http_api_error(rs, 400, "bad_data", fmt, a, b);
    return rc == 0 ? ANSWERED : rc;
}

/* A time parameter: default when absent or empty. wrapped selects the
 * "Invalid time value for 'x': " form. */
static int param_time(struct http_request *rq, struct http_response *rs, const char *name,
                      bool wrapped, int64_t dflt, int64_t *out)
{
    const char *v = http_params_get(&rq->params, name);
    if (!v || !v[0]) {
        if (wrapped) {
            *out = dflt;
            return 0;
        }
        v = "";
    }
    struct bs_error e;
    bs_error_clear(&e);
    if (bs_time_parse_api(v, out, &e) != 0) {
        int rc =
            wrapped
                ? http_api_error(rs, 400, "bad_data",
                                 "invalid parameter \"%s\": Invalid time value for '%s': %s", name,
                                 name, e.msg)
                : http_api_error(rs, 400, "bad_data", "invalid parameter \"%s\": %s", name, e.msg);
        return rc == 0 ? ANSWERED : rc;
    }
    return 0;
}

int http_api_param_time(struct http_request *rq, struct http_response *rs, const char *name,
                        int64_t *out)
{
    return param_time(rq, rs, name, true, API_MIN_TIME_MS, out);
}

/* Prometheus's parseDuration: float seconds, else a duration ("15s").
 * Result in nanoseconds. */
static int parse_duration_ns(const char *s, int64_t *out_ns, char *msg, size_t cap)
{
    double f;
    size_t n = strlen(s);
    if (bs_float_parse(s, n, false, &f) == 0) {
        double ns = f * 1e9;
        if (!(ns < 9.2233720368547758e18 && ns >= -9.2233720368547758e18)) {
            snprintf(msg, cap, "cannot parse \"%.200s\" to a valid duration. It overflows int64",
                     s);
            return BS_EPARSE;
        }
        *out_ns = (int64_t)ns;
        return 0;
    }
    int64_t ms;
    if (n > 0 && bs_duration_parse(s, n, &ms, NULL) == 0 && ms <= INT64_MAX / 1000000) {
        *out_ns = ms * 1000000;
        return 0;
    }
    snprintf(msg, cap, "cannot parse \"%.200s\" to a valid duration", s);
    return BS_EPARSE;
}

static int param_timeout(struct http_request *rq, struct http_response *rs)
{
    const char *v = http_params_get(&rq->params, "timeout");
    char msg[300];
    int64_t ns;
    if (v && v[0] && parse_duration_ns(v, &ns, msg, sizeof(msg)) != 0)
        return bad_data(rs, "invalid parameter \"%s\": %s", "timeout", msg);
    return 0;
}

/* Answer a failed query: the errorType decides the status. */
static int query_error(struct http_response *rs, int code, const struct bs_error *e,
                       bool prefix_parse)
{
    const char *type = promql_error_type(code);
    const char *msg = e->msg[0] ? e->msg : bs_strerror(code);
    int rc;
    if (prefix_parse && strcmp(type, "bad_data") == 0)
        rc = http_api_error(rs, 400, type, "invalid parameter \"query\": %s", msg);
    else
        rc = http_api_error(rs, http_status_for_error_type(type), type, "%s", msg);
    return rc;
}

static int write_result(struct http_response *rs, struct promql_result *res)
{
    int rc = http_api_begin(rs);
    if (rc == 0)
        rc = promql_result_json(res, &rs->body);
    if (rc == 0)
        rc = http_api_end_annotated(rs, res->warnings, res->nwarnings, res->infos, res->ninfos);
    return rc;
}

int http_api_query(struct http_server *s, struct http_request *rq, struct http_response *rs)
{
    int64_t t;
    int rc = param_time(rq, rs, "time", true, bs_now_ms(), &t);
    if (rc == 0)
        rc = param_timeout(rq, rs);
    if (rc != 0)
        return rc > 0 ? 0 : rc;
    const char *q = http_params_get(&rq->params, "query");
    struct promql_result *res = NULL;
    struct bs_error e;
    bs_error_clear(&e);
    rc = promql_query_instant(s->engine, s->db, q ? q : "", t, &res, &e);
    if (rc != 0)
        return query_error(rs, rc, &e, true);
    rc = write_result(rs, res);
    promql_result_free(res);
    return rc;
}

int http_api_query_range(struct http_server *s, struct http_request *rq, struct http_response *rs)
{
    int64_t start, end, step_ns;
    char msg[300];
    int rc = param_time(rq, rs, "start", false, 0, &start);
    if (rc == 0)
        rc = param_time(rq, rs, "end", false, 0, &end);
    if (rc != 0)
        return rc > 0 ? 0 : rc;
    if (end < start)
        return http_api_error(
            rs, 400, "bad_data",
            "invalid parameter \"end\": end timestamp must not be before start time");
    const char *sv = http_params_get(&rq->params, "step");
    if (parse_duration_ns(sv ? sv : "", &step_ns, msg, sizeof(msg)) != 0)
        return http_api_error(rs, 400, "bad_data", "invalid parameter \"step\": %s", msg);
    int64_t step_ms = step_ns / 1000000;
    if (step_ns <= 0 || step_ms <= 0)
        return http_api_error(rs, 400, "bad_data",
                              "invalid parameter \"step\": zero or negative query resolution step "
                              "widths are not accepted. Try a positive integer");
    /* Go divides the durations in nanoseconds, truncating. */
    if (floor((double)(end - start) * 1e6 / (double)step_ns) > MAX_POINTS_PER_SERIES)
        return http_api_error(rs, 400, "bad_data",
                              "exceeded maximum resolution of 11,000 points per timeseries. Try "
                              "decreasing the query resolution (?step=XX)");
    rc = param_timeout(rq, rs);
    if (rc != 0)
        return rc > 0 ? 0 : rc;
    const char *q = http_params_get(&rq->params, "query");
    struct promql_result *res = NULL;
    struct bs_error e;
    bs_error_clear(&e);
    rc = promql_query_range(s->engine, s->db, q ? q : "", start, end, step_ms, &res, &e);
    if (rc != 0)
        return query_error(rs, rc, &e, false);
    rc = write_result(rs, res);
    promql_result_free(res);
    return rc;
}

/* ---------------------------------------------------------- match[] sets */

struct matcher_sets {
    struct labels_matcher ***sets;
    size_t *lens;
    size_t n;
};

static void matcher_sets_free(struct matcher_sets *m)
{
    for (size_t i = 0; i < m->n; i++) {
        for (size_t j = 0; j < m->lens[i]; j++)
            labels_matcher_free(m->sets[i][j]);
        free(m->sets[i]);
    }
    free(m->sets);
    free(m->lens);
    memset(m, 0, sizeof(*m));
}

/* Parse every match[] value. prefixed: errors read invalid parameter
 * "match[]": ... (as /series writes them). */
static int parse_match_sets(struct http_request *rq, struct http_response *rs, bool prefixed,
                            struct matcher_sets *out)
{
    size_t n = http_params_count(&rq->params, "match[]");
    memset(out, 0, sizeof(*out));
    if (n == 0)
        return 0;
    out->sets = calloc(n, sizeof(*out->sets));
    out->lens = calloc(n, sizeof(*out->lens));
    if (!out->sets || !out->lens) {
        matcher_sets_free(out);
        return BS_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        struct bs_error e;
        bs_error_clear(&e);
        const char *sel = http_params_nth(&rq->params, "match[]", i);
        int rc = http_selector_parse(sel, &out->sets[i], &out->lens[i], &e);
        if (rc == 0) {
            out->n = i + 1;
            bool all_empty = true;
            for (size_t j = 0; j < out->lens[i]; j++)
                if (!labels_matcher_matches_empty(out->sets[i][j]))
                    all_empty = false;
            if (all_empty) {
                rc = BS_EINVAL;
                snprintf(e.msg, sizeof(e.msg),
                         "match[] must contain at least one non-empty matcher");
            }
        }
        if (rc != 0) {
            matcher_sets_free(out);
            if (rc == BS_ENOMEM)
                return rc;
            rc = prefixed ? http_api_error(rs, 400, "bad_data", "invalid parameter \"match[]\": %s",
                                           e.msg)
                          : http_api_error(rs, 400, "bad_data", "%s", e.msg);
            return rc == 0 ? ANSWERED : rc;
        }
    }
    return 0;
}

/* Answer with a storage error as Prometheus does (errorExec, 422). */
static int storage_error(struct http_response *rs, int code, const struct bs_error *e)
{
    if (code == BS_ENOMEM)
        return code;
    return http_api_error(rs, 422, "execution", "%s", e->msg[0] ? e->msg : bs_strerror(code));
}

static int cmp_labels_ptr(const void *a, const void *b)
{
    const struct labels *const *x = a, *const *y = b;
    return labels_cmp(*x, *y);
}

int http_api_series(struct http_server *s, struct http_request *rq, struct http_response *rs)
{
    if (http_params_count(&rq->params, "match[]") == 0)
        return http_api_error(rs, 400, "bad_data", "no match[] parameter provided");
    int64_t start, end;
    int rc = param_time(rq, rs, "start", true, API_MIN_TIME_MS, &start);
    if (rc == 0)
        rc = param_time(rq, rs, "end", true, API_MAX_TIME_MS, &end);
    struct matcher_sets ms;
    if (rc == 0)
        rc = parse_match_sets(rq, rs, true, &ms);
    if (rc != 0)
        return rc > 0 ? 0 : rc;

    struct tsdb_querier *q = tsdb_querier_new(s->db, start, end);
    const struct labels **all = NULL;
    size_t n = 0, cap = 0;
    struct bs_error e;
    bs_error_clear(&e);
    if (!q) {
        rc = BS_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < ms.n && rc == 0; i++) {
        struct tsdb_series_set *set = NULL;
        rc = tsdb_querier_select(q, ms.sets[i], ms.lens[i], &set, &e);
        if (rc != 0) {
            rc = storage_error(rs, rc, &e);
            goto out;
        }
        while (rc == 0 && tsdb_series_set_next(set)) {
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 64;
                const struct labels **nv = realloc(all, ncap * sizeof(*nv));
                if (!nv) {
                    rc = BS_ENOMEM;
                    break;
                }
                all = nv;
                cap = ncap;
            }
            all[n++] = tsdb_series_set_labels(set);
        }
        tsdb_series_set_free(set);
    }
    if (rc != 0)
        goto out;
    /* Several match[] sets may select the same series: merge. */
    if (ms.n > 1 && n > 1)
        qsort(all, n, sizeof(*all), cmp_labels_ptr);
    rc = http_api_begin(rs);
    if (rc == 0)
        rc = bs_buf_putc(&rs->body, '[');
    for (size_t i = 0, w = 0; rc == 0 && i < n; i++) {
        if (i > 0 && labels_equal(all[i - 1], all[i]))
            continue;
        if (w++ > 0)
            rc = bs_buf_putc(&rs->body, ',');
        if (rc == 0)
            rc = labels_format_json(all[i], &rs->body);
    }
    if (rc == 0)
        rc = bs_buf_putc(&rs->body, ']');
    if (rc == 0)
        rc = http_api_end(rs, NULL, 0);
out:
    free(all);
    tsdb_querier_free(q);
    matcher_sets_free(&ms);
    return rc;
}

/* ------------------------------------------------- label names and values */

static int cmp_str_ptr(const void *a, const void *b)
{
    const char *const *x = a, *const *y = b;
    return strcmp(*x, *y);
}

/* Collect names (name == NULL) or values of name for every match set (or
 * all series when there is none), then answer with the sorted union. */
static int label_strings(struct http_server *s, struct http_response *rs, const char *name,
                         int64_t start, int64_t end, const struct matcher_sets *ms)
{
    struct tsdb_querier *q = tsdb_querier_new(s->db, start, end);
    if (!q)
        return BS_ENOMEM;
    const char **all = NULL;
    size_t n = 0;
    int rc = 0;
    struct bs_error e;
    bs_error_clear(&e);
    size_t rounds = ms->n ? ms->n : 1;
    for (size_t i = 0; i < rounds; i++) {
        const char **got = NULL;
        size_t ng = 0;
        struct labels_matcher *const *m = ms->n ? ms->sets[i] : NULL;
        size_t nm = ms->n ? ms->lens[i] : 0;
        rc = name ? tsdb_querier_label_values(q, name, m, nm, &got, &ng, &e)
                  : tsdb_querier_label_names(q, m, nm, &got, &ng, &e);
        if (rc != 0) {
            rc = storage_error(rs, rc, &e);
            goto out;
        }
        if (!all) {
            all = got;
            n = ng;
            continue;
        }
        const char **nv = ng ? realloc(all, (n + ng) * sizeof(*nv)) : all;
        if (!nv) {
            free(got);
            rc = BS_ENOMEM;
            goto out;
        }
        all = nv;
        if (ng)
            memcpy(all + n, got, ng * sizeof(*got));
        n += ng;
        free(got);
    }
    if (rounds > 1 && n > 1)
        qsort(all, n, sizeof(*all), cmp_str_ptr);
    rc = http_api_begin(rs);
    if (rc == 0)
        rc = bs_buf_putc(&rs->body, '[');
    for (size_t i = 0, w = 0; rc == 0 && i < n; i++) {
        if (i > 0 && strcmp(all[i - 1], all[i]) == 0)
            continue;
        if (w++ > 0)
            rc = bs_buf_putc(&rs->body, ',');
        if (rc == 0)
            rc = bs_json_string(&rs->body, all[i], strlen(all[i]));
    }
    if (rc == 0)
        rc = bs_buf_putc(&rs->body, ']');
    if (rc == 0)
        rc = http_api_end(rs, NULL, 0);
out:
    free(all);
    tsdb_querier_free(q);
    return rc;
}

/* /api/v1/labels (name NULL) and /api/v1/label/<name>/values: the start,
 * end and match[] parameters, then the sorted strings. */
static int labels_api(struct http_server *s, struct http_request *rq, struct http_response *rs,
                      const char *name)
{
    int64_t start, end;
    int rc = param_time(rq, rs, "start", true, API_MIN_TIME_MS, &start);
    if (rc == 0)
        rc = param_time(rq, rs, "end", true, API_MAX_TIME_MS, &end);
    struct matcher_sets ms;
    if (rc == 0)
        rc = parse_match_sets(rq, rs, false, &ms);
    if (rc != 0)
        return rc > 0 ? 0 : rc;
    rc = label_strings(s, rs, name, start, end, &ms);
    matcher_sets_free(&ms);
    return rc;
}

int http_api_labels(struct http_server *s, struct http_request *rq, struct http_response *rs)
{
    return labels_api(s, rq, rs, NULL);
}

int http_api_label_values(struct http_server *s, struct http_request *rq, struct http_response *rs,
                          const char *name)
{
    if (!labels_name_valid(name, strlen(name)))
        return http_api_error(rs, 400, "bad_data", "invalid label name: \"%s\"", name);
    return labels_api(s, rq, rs, name);
}
