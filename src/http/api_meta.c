/* SPDX-License-Identifier: Apache-2.0
 *
 * Prometheus HTTP API v1, the status and metadata endpoints: buildinfo,
 * config, flags, runtimeinfo, tsdb, targets, rules, alerts, metadata,
 * targets/metadata and query_exemplars. Shapes follow Prometheus 2.42.
 * Targets, rules, alerts and metadata come from callbacks the owner of
 * those modules passes in; without one the lists are empty, which is the
 * truth when that module is not running. Parameters are validated here,
 * with Prometheus's error texts. bongsu stores no exemplars yet, so
 * query_exemplars answers [].
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http/http_int.h"
#include "labels/labels.h"
#include "tsdb/tsdb.h"

#if defined(__clang__)
#define COMPILER_VERSION "clang " __clang_version__
#elif defined(__GNUC__)
#define COMPILER_VERSION "gcc " __VERSION__
#else
#define COMPILER_VERSION "unknown C compiler"
#endif

#define TOP_N 10

static int put_kv(struct bs_buf *b, bool first, const char *k, const char *v)
{
    int rc = first ? 0 : bs_buf_putc(b, ',');
    if (rc == 0)
        rc = bs_json_string(b, k, strlen(k));
    if (rc == 0)
        rc = bs_buf_putc(b, ':');
    if (rc == 0)
        rc = bs_json_string(b, v, strlen(v));
    return rc;
}

int http_api_buildinfo(struct http_server *s, struct http_request *rq, struct http_response *rs)
{
    (void)rq;
    struct bs_buf *b = &rs->body;
    int rc = http_api_begin(rs);
    if (rc == 0)
        rc = bs_buf_putc(b, '{');
    if (rc == 0)
        rc = put_kv(b, true, "version", s->version);
    if (rc == 0)
        rc = put_kv(b, false, "revision", s->revision);
    if (rc == 0)
        rc = put_kv(b, false, "branch", s->branch);
    if (rc == 0)
        rc = put_kv(b, false, "buildUser", s->build_user);
    if (rc == 0)
        rc = put_kv(b, false, "buildDate", s->build_date);
    if (rc == 0)
        rc = put_kv(b, false, "goVersion", COMPILER_VERSION);
    if (rc == 0)
        rc = bs_buf_putc(b, '}');
    if (rc == 0)
        rc = http_api_end(rs, NULL, 0);
    return rc;
}

int http_api_config(struct http_server *s, struct http_request *rq, struct http_response *rs)
{
    (void)rq;
    int rc = http_api_begin(rs);
    if (rc == 0)
        rc = bs_buf_putc(&rs->body, '{');
    pthread_mutex_lock(&s->config_mu);
    if (rc == 0)
        rc = put_kv(&rs->body, true, "yaml", s->config_yaml);
    pthread_mutex_unlock(&s->config_mu);
    if (rc == 0)
        rc = bs_buf_putc(&rs->body, '}');
    if (rc == 0)
        rc = http_api_end(rs, NULL, 0);
    return rc;
}

static int cmp_flag_idx(const void *a, const void *b, void *arg)
{
    char **flags = arg;
    return strcmp(flags[2 * *(const size_t *)a], flags[2 * *(const size_t *)b]);
}

int http_api_flags(struct http_server *s, struct http_request *rq, struct http_response *rs)
{
    (void)rq;
    /* Go marshals maps with sorted keys. */
    size_t *order = calloc(s->nflags + 1, sizeof(*order));
    if (!order)
        return BS_ENOMEM;
    for (size_t i = 0; i < s->nflags; i++)
        order[i] = i;
    qsort_r(order, s->nflags, sizeof(*order), cmp_flag_idx, s->flags);
    int rc = http_api_begin(rs);
    if (rc == 0)
        rc = bs_buf_putc(&rs->body, '{');
    for (size_t i = 0; rc == 0 && i < s->nflags; i++)
        rc = put_kv(&rs->body, i == 0, s->flags[2 * order[i]], s->flags[2 * order[i] + 1]);
    if (rc == 0)
        rc = bs_buf_putc(&rs->body, '}');
    if (rc == 0)
        rc = http_api_end(rs, NULL, 0);
    free(order);
    return rc;
}

int http_api_runtimeinfo(struct http_server *s, struct http_request *rq, struct http_response *rs)
{
    (void)rq;
    char start[64], last[64], cwd[4096];
    bool ok;
    bs_time_format_rfc3339(s->start_ms, start, sizeof(start));
    pthread_mutex_lock(&s->config_mu);
    bs_time_format_rfc3339(s->config_time_ms, last, sizeof(last));
    ok = s->reload_success;
    pthread_mutex_unlock(&s->config_mu);
    if (!getcwd(cwd, sizeof(cwd)))
        snprintf(cwd, sizeof(cwd), "<unknown>");
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

    struct bs_buf *b = &rs->body;
    int rc = http_api_begin(rs);
    if (rc == 0)
        rc = bs_buf_putc(b, '{');
    if (rc == 0)
        rc = put_kv(b, true, "startTime", start);
    if (rc == 0)
        rc = put_kv(b, false, "CWD", cwd);
    if (rc == 0)
        rc = bs_buf_printf(b, ",\"reloadConfigSuccess\":%s", ok ? "true" : "false");
    if (rc == 0)
        rc = put_kv(b, false, "lastConfigTime", last);
    if (rc == 0)
        rc = bs_buf_printf(b, ",\"corruptionCount\":0,\"GOMAXPROCS\":%ld", ncpu > 0 ? ncpu : 1);
    if (rc == 0)
        rc = put_kv(b, false, "storageRetention", s->storage_retention);
    if (rc == 0)
        rc = bs_buf_putc(b, '}');
    if (rc == 0)
        rc = http_api_end(rs, NULL, 0);
    return rc;
}

/* ------------------------------------------------------------ tsdb status */

struct stat_entry {
    const char *name;
    uint64_t value;
};

static int cmp_stat_desc(const void *a, const void *b)
{
    const struct stat_entry *x = a, *y = b;
    if (x->value != y->value)
        return x->value < y->value ? 1 : -1;
    return strcmp(x->name, y->name);
}

static int put_top(struct bs_buf *b, const char *key, struct stat_entry *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_stat_desc);
    int rc = bs_buf_printf(b, ",\"%s\":[", key);
    for (size_t i = 0; rc == 0 && i < n && i < TOP_N; i++) {
        rc = bs_buf_puts(b, i ? ",{\"name\":" : "{\"name\":");
        if (rc == 0)
            rc = bs_json_string(b, v[i].name, strlen(v[i].name));
        if (rc == 0)
            rc = bs_buf_printf(b, ",\"value\":%llu}", (unsigned long long)v[i].value);
    }
    if (rc == 0)
        rc = bs_buf_putc(b, ']');
    return rc;
}

int http_api_tsdb_status(struct http_server *s, struct http_request *rq, struct http_response *rs)
{
    (void)rq;
    struct tsdb_stats st;
    tsdb_stats(s->db, &st);
    struct tsdb_querier *q = tsdb_querier_new(s->db, INT64_MIN / 2, INT64_MAX / 2);
    if (!q)
        return BS_ENOMEM;
    const char **names = NULL, **metrics = NULL;
    size_t nnames = 0, nmetrics = 0;
    struct stat_entry *by_name = NULL, *by_metric = NULL, *mem = NULL;
    uint64_t pairs = 0;
    struct bs_error e;
    bs_error_clear(&e);
    int rc = tsdb_querier_label_names(q, NULL, 0, &names, &nnames, &e);
    if (rc == 0)
        rc = tsdb_querier_label_values(q, LABELS_METRIC_NAME, NULL, 0, &metrics, &nmetrics, &e);
    if (rc != 0) {
        rc = http_api_error(rs, 422, "execution", "%s", e.msg[0] ? e.msg : bs_strerror(rc));
        goto out;
    }
    by_name = calloc(nnames + 1, sizeof(*by_name));
    mem = calloc(nnames + 1, sizeof(*mem));
    by_metric = calloc(nmetrics + 1, sizeof(*by_metric));
    if (!by_name || !by_metric || !mem) {
        rc = BS_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < nnames; i++) {
        const char **vals = NULL;
        size_t nv = 0;
        rc = tsdb_querier_label_values(q, names[i], NULL, 0, &vals, &nv, &e);
        if (rc != 0)
            goto out;
        by_name[i].name = mem[i].name = names[i];
        by_name[i].value = nv;
        for (size_t j = 0; j < nv; j++)
            mem[i].value += strlen(vals[j]);
        pairs += nv;
        free(vals);
    }
    for (size_t i = 0; i < nmetrics; i++) {
        struct labels_matcher *m = NULL;
        struct tsdb_series_set *set = NULL;
        rc = labels_matcher_new(&m, LABELS_MATCH_EQ, LABELS_METRIC_NAME, metrics[i], &e);
        if (rc == 0)
            rc = tsdb_querier_select(q, &m, 1, &set, &e);
        by_metric[i].name = metrics[i];
        by_metric[i].value = rc == 0 ? tsdb_series_set_count(set) : 0;
        tsdb_series_set_free(set);
        labels_matcher_free(m);
        if (rc != 0)
            goto out;
    }

    struct bs_buf *b = &rs->body;
    rc = http_api_begin(rs);
    if (rc == 0)
        rc = bs_buf_printf(b,
                           "{\"headStats\":{\"numSeries\":%llu,\"numLabelPairs\":%llu,"
                           "\"chunkCount\":%llu,\"minTime\":%lld,\"maxTime\":%lld}",
                           (unsigned long long)st.num_series, (unsigned long long)pairs,
                           (unsigned long long)st.num_chunks, (long long)st.min_time,
                           (long long)st.max_time);
    if (rc == 0)
        rc = put_top(b, "seriesCountByMetricName", by_metric, nmetrics);
    if (rc == 0)
        rc = put_top(b, "labelValueCountByLabelName", by_name, nnames);
    if (rc == 0)
        rc = put_top(b, "memoryInBytesByLabelName", mem, nnames);
    if (rc == 0)
        rc = bs_buf_puts(b, ",\"seriesCountByLabelValuePair\":[]}");
    if (rc == 0)
        rc = http_api_end(rs, NULL, 0);
out:
    if (rc < 0 && rc != BS_ENOMEM && rc != BS_ELIMIT)
        rc = http_api_error(rs, 422, "execution", "%s", e.msg[0] ? e.msg : bs_strerror(rc));
    free(by_name);
    free(by_metric);
    free(mem);
    free(names);
    free(metrics);
    tsdb_querier_free(q);
    return rc;
}

/* ---------------------------------------------- targets, rules and alerts */

static int callback_data(struct http_response *rs,
                         int (*write)(struct http_response *rs, void *arg), void *arg)
{
    int rc = http_api_begin(rs);
    if (rc == 0)
        rc = write(rs, arg);
    if (rc == 0)
        rc = http_api_end(rs, NULL, 0);
    return rc;
}

struct cb_args {
    struct http_server *s;
    const char *param;
};

static int write_targets(struct http_response *rs, void *arg)
{
    struct cb_args *a = arg;
    if (!a->s->targets)
        return bs_buf_puts(&rs->body, "{\"activeTargets\":[],\"droppedTargets\":[]}");
    return a->s->targets(a->s->targets_ud, a->param, &rs->body);
}

static int write_alerts(struct http_response *rs, void *arg)
{
    struct cb_args *a = arg;
    if (!a->s->alerts)
        return bs_buf_puts(&rs->body, "{\"alerts\":[]}");
    return a->s->alerts(a->s->alerts_ud, &rs->body);
}

int http_api_targets(struct http_server *s, struct http_request *rq, struct http_response *rs)
{
    const char *state = http_params_get(&rq->params, "state");
    struct cb_args a = {s, state && state[0] ? state : "any"};
    return callback_data(rs, write_targets, &a);
}

int http_parse_go_bool(const char *v, bool *out)
{
    static const char *const t[] = {"1", "t", "T", "TRUE", "true", "True"};
    static const char *const f[] = {"0", "f", "F", "FALSE", "false", "False"};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        if (strcmp(v, t[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcmp(v, f[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

/* The values of a repeated parameter as a borrowed array (malloc'd; free
 * the array only). OUT: *v and *n; returns 0 or BS_ENOMEM. */
static int param_list(const struct http_params *ps, const char *name, const char ***v, size_t *n)
{
    size_t c = http_params_count(ps, name);
    *v = NULL;
    *n = 0;
    if (c == 0)
        return 0;
    if (!(*v = malloc(c * sizeof **v)))
        return BS_ENOMEM;
    for (size_t i = 0; i < c; i++)
        (*v)[i] = http_params_nth(ps, name, i);
    *n = c;
    return 0;
}

int http_api_rules(struct http_server *s, struct http_request *rq, struct http_response *rs)
{
    const char *type = http_params_get(&rq->params, "type");
    char ltype[8] = "";
    if (type && type[0]) {
        /* Prometheus lower-cases the value first. */
        size_t n = strlen(type);
        if (n < sizeof ltype)
            for (size_t i = 0; i <= n; i++)
                ltype[i] = (char)(type[i] >= 'A' && type[i] <= 'Z' ? type[i] - 'A' + 'a' : type[i]);
        if (strcmp(ltype, "alert") != 0 && strcmp(ltype, "record") != 0)
            return http_api_error(rs, 400, "bad_data",
                                  "invalid parameter \"type\": not supported value \"%s\"", type);
    }
    struct http_rules_query q;
    memset(&q, 0, sizeof q);
    q.type = ltype;
    const char *ex = http_params_get(&rq->params, "exclude_alerts");
    if (ex && ex[0] && http_parse_go_bool(ex, &q.exclude_alerts) != 0)
        return http_api_error(rs, 400, "bad_data",
                              "invalid parameter \"exclude_alerts\": strconv.ParseBool: parsing "
                              "\"%s\": invalid syntax",
                              ex);
    const char **names = NULL, **groups = NULL, **groups2 = NULL, **files = NULL;
    size_t ngroups2 = 0;
    int rc = param_list(&rq->params, "rule_name[]", &names, &q.nrule_names);
    if (rc == 0)
        rc = param_list(&rq->params, "rule_group[]", &groups, &q.ngroup_names);
    if (rc == 0)
        rc = param_list(&rq->params, "group_name[]", &groups2, &ngroups2);
    if (rc == 0)
        rc = param_list(&rq->params, "file[]", &files, &q.nfiles);
    if (rc == 0 && ngroups2) {
        /* Both spellings of the group filter add up. */
        const char **all = realloc(groups, (q.ngroup_names + ngroups2) * sizeof *all);
        if (!all) {
            rc = BS_ENOMEM;
        } else {
            memcpy(all + q.ngroup_names, groups2, ngroups2 * sizeof *all);
            groups = all;
            q.ngroup_names += ngroups2;
        }
    }
    q.rule_names = names;
    q.group_names = groups;
    q.files = files;
    if (rc == 0)
        rc = http_api_begin(rs);
    if (rc == 0)
        rc = s->rules ? s->rules(s->rules_ud, &q, &rs->body) : bs_buf_puts(&rs->body, "{\"groups\":[]}");
    if (rc == 0)
        rc = http_api_end(rs, NULL, 0);
    free(names);
    free(groups);
    free(groups2);
    free(files);
    return rc;
}

int http_api_alerts(struct http_server *s, struct http_request *rq, struct http_response *rs)
{
    (void)rq;
    struct cb_args a = {s, NULL};
    return callback_data(rs, write_alerts, &a);
}

/* An optional integer parameter as Go's strconv.Atoi reads it. Returns 0
 * (absent or empty: *out unchanged) or -1. */
static int param_int(const struct http_params *ps, const char *name, long *out)
{
    const char *v = http_params_get(ps, name);
    if (!v || !v[0])
        return 0;
    char *end = NULL;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || v[0] == ' ' || v[0] == '\t' || v[0] == '\n')
        return -1;
    *out = x;
    return 0;
}

int http_api_targets_metadata(struct http_server *s, struct http_request *rq,
                              struct http_response *rs)
{
    long limit = -1;
    if (param_int(&rq->params, "limit", &limit) != 0)
        return http_api_error(rs, 400, "bad_data", "limit must be a number");
    const char *mt = http_params_get(&rq->params, "match_target");
    const char *metric = http_params_get(&rq->params, "metric");
    struct labels_matcher **ms = NULL;
    size_t nms = 0;
    if (mt && mt[0]) {
        struct bs_error err = {0};
        int prc = http_selector_parse(mt, &ms, &nms, &err);
        if (prc == BS_ENOMEM)
            return prc;
        if (prc != 0)
            return http_api_error(rs, 400, "bad_data", "invalid parameter \"match_target\": %s",
                                  err.msg);
    }
    int rc = http_api_begin(rs);
    if (rc == 0)
        rc = s->targets_metadata
                 ? s->targets_metadata(s->targets_metadata_ud, ms, nms,
                                       metric && metric[0] ? metric : NULL, limit, &rs->body)
                 : bs_buf_puts(&rs->body, "[]");
    if (rc == 0)
        rc = http_api_end(rs, NULL, 0);
    for (size_t i = 0; i < nms; i++)
        labels_matcher_free(ms[i]);
    free(ms);
    return rc;
}

int http_api_metadata(struct http_server *s, struct http_request *rq, struct http_response *rs)
{
    long limit = -1, limit_per_metric = -1;
    if (param_int(&rq->params, "limit", &limit) != 0)
        return http_api_error(rs, 400, "bad_data", "limit must be a number");
    if (param_int(&rq->params, "limit_per_metric", &limit_per_metric) != 0)
        return http_api_error(rs, 400, "bad_data", "limit_per_metric must be a number");
    const char *metric = http_params_get(&rq->params, "metric");
    int rc = http_api_begin(rs);
    if (rc == 0)
        rc = s->metadata ? s->metadata(s->metadata_ud, metric && metric[0] ? metric : NULL, limit,
                                       limit_per_metric, &rs->body)
                         : bs_buf_puts(&rs->body, "{}");
    if (rc == 0)
        rc = http_api_end(rs, NULL, 0);
    return rc;
}

int http_api_exemplars(struct http_server *s, struct http_request *rq, struct http_response *rs)
{
    (void)s;
    (void)rq;
    int rc = http_api_begin(rs);
    if (rc == 0)
        rc = bs_buf_puts(&rs->body, "[]");
    if (rc == 0)
        rc = http_api_end(rs, NULL, 0);
    return rc;
}
