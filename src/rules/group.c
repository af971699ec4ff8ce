/* SPDX-License-Identifier: Apache-2.0
 *
 * One rule group's evaluation, as Prometheus 2.42's rules.Group.Eval and
 * AlertingRule.Eval do it.
 *
 * An iteration evaluates the rules in order at one timestamp (minus the
 * group's query_offset for queries and written samples). Each rule's output
 * is appended and committed before the next rule runs, so a rule sees what
 * the rules before it wrote in the same iteration. A series the rule wrote
 * in the previous iteration but not in this one gets a staleness marker.
 * A rule whose query or limit fails writes nothing (and marks nothing
 * stale), and reports the error in its health.
 *
 * Alerting rules keep their alerts keyed by the hash of the alert's labels:
 * pending when first seen; firing once active for `for`; on disappearing,
 * firing alerts are kept firing for keep_firing_for, then resolved, and a
 * resolved alert is kept 15 minutes so Alertmanager hears that it ended.
 * ALERTS and ALERTS_FOR_STATE are written only once the rule's `for` state
 * has been restored (or needed no restoring), exactly as in Prometheus.
 *
 * Locking: the group's mutex is held for the whole iteration; readers (the
 * rules and alerts API) take it per group.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rules/rules_int.h"

#define NS_PER_MS INT64_C(1000000)

int64_t rules_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ------------------------------------------------------------- metrics */

static struct bs_metric *g_evals, *g_eval_failures, *g_eval_seconds_sum, *g_eval_seconds_count;
static pthread_once_t metrics_once = PTHREAD_ONCE_INIT;

static void register_metrics(void)
{
    g_evals = bs_metric_register(BS_METRIC_COUNTER, "bongsu_rule_evaluations_total",
                                 "The total number of rule evaluations.", NULL);
    g_eval_failures = bs_metric_register(BS_METRIC_COUNTER, "bongsu_rule_evaluation_failures_total",
                                         "The total number of rule evaluation failures.", NULL);
    g_eval_seconds_sum = bs_metric_register(BS_METRIC_COUNTER,
                                            "bongsu_rule_evaluation_duration_seconds_sum",
                                            "Total time spent evaluating rules.", NULL);
    g_eval_seconds_count = bs_metric_register(BS_METRIC_COUNTER,
                                              "bongsu_rule_evaluation_duration_seconds_count",
                                              "Number of timed rule evaluations.", NULL);
}

static void escape_label_value(struct bs_buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            bs_buf_putc(b, '\\');
        if (*s == '\n') {
            bs_buf_puts(b, "\\n");
            continue;
        }
        bs_buf_putc(b, *s);
    }
}

static void group_metrics(struct rules_group *g)
{
    struct bs_buf l;
    pthread_once(&metrics_once, register_metrics);
    bs_buf_init(&l, 0);
    bs_buf_puts(&l, "rule_group=\"");
    escape_label_value(&l, g->file);
    bs_buf_putc(&l, ';');
    escape_label_value(&l, g->name);
    bs_buf_putc(&l, '"');
    g->m_missed = bs_metric_register(BS_METRIC_COUNTER, "bongsu_rule_group_iterations_missed_total",
                                     "The total number of rule group evaluations missed due to slow rule group evaluation.",
                                     l.data);
    g->m_duration = bs_metric_register(BS_METRIC_COUNTER, "bongsu_rule_group_duration_seconds_total",
                                       "Total time spent evaluating the rule group.", l.data);
    g->m_last_duration = bs_metric_register(BS_METRIC_GAUGE, "bongsu_rule_group_last_duration_seconds",
                                            "The duration of the last rule group evaluation.", l.data);
    g->m_rules = bs_metric_register(BS_METRIC_GAUGE, "bongsu_rule_group_rules",
                                    "The number of rules.", l.data);
    bs_metric_set(g->m_rules, (double)g->nrules);
    bs_buf_fini(&l);
}

/* ------------------------------------------------------- construction */

static void kv_merge(struct rules_kv *dst, const struct rules_kv *group, const struct rules_kv *rule)
{
    /* Group labels first, rule labels override; result sorted by name. */
    size_t cap = group->n + rule->n;
    dst->v = cap ? bs_xcalloc(cap, sizeof(*dst->v)) : NULL;
    dst->n = 0;
    size_t i = 0, j = 0;
    while (i < group->n || j < rule->n) {
        int c = i >= group->n ? 1 : j >= rule->n ? -1 : strcmp(group->v[i].name, rule->v[j].name);
        const struct label *src = c < 0 ? &group->v[i] : &rule->v[j];
        dst->v[dst->n].name = bs_xstrdup(src->name);
        dst->v[dst->n].value = bs_xstrdup(src->value);
        dst->n++;
        if (c <= 0)
            i++;
        if (c >= 0)
            j++;
    }
}

struct rules_group *rules_group_new(struct rules_manager *m, const struct rulefile_group *fg,
                                    bool restored)
{
    struct rules_group *g = bs_xcalloc(1, sizeof(*g));
    g->m = m;
    g->name = bs_xstrdup(fg->name);
    g->file = bs_xstrdup(fg->file);
    g->interval_ms = fg->interval_ms > 0 ? fg->interval_ms : m->default_interval_ms;
    g->query_offset_ms = fg->query_offset_ms;
    g->limit = fg->limit;
    g->should_restore = !restored;
    pthread_mutex_init(&g->mu, NULL);
    g->rules = bs_xcalloc(fg->nrules ? fg->nrules : 1, sizeof(*g->rules));
    g->nrules = fg->nrules;
    for (size_t i = 0; i < fg->nrules; i++) {
        const struct rulefile_rule *src = &fg->rules[i];
        struct rules_rule *r = &g->rules[i];
        r->def = *src;
        r->def.name = bs_xstrdup(src->name);
        r->def.expr = bs_xstrdup(src->expr);
        kv_merge(&r->def.labels, &fg->labels, &src->labels);
        rules_kv_copy(&r->def.annotations, &src->annotations);
        r->restored = restored;
        struct promql_expr *x = NULL;
        struct bs_buf q;
        bs_buf_init(&q, 0);
        if (promql_parse(src->expr, &x, NULL) == 0 && promql_expr_format(x, &q) == 0 && q.data)
            r->query = bs_buf_steal(&q, NULL);
        else
            r->query = bs_xstrdup(src->expr);
        bs_buf_fini(&q);
        promql_expr_free(x);
    }
    group_metrics(g);
    return g;
}

static void alert_fini(struct rules_alert *a)
{
    free(a->labels);
    rules_kv_free(&a->annotations);
}

static void series_free(struct rules_series *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(s[i].labels);
    free(s);
}

void rules_group_free(struct rules_group *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->nrules; i++) {
        struct rules_rule *r = &g->rules[i];
        free(r->def.name);
        free(r->def.expr);
        rules_kv_free(&r->def.labels);
        rules_kv_free(&r->def.annotations);
        free(r->query);
        for (size_t j = 0; j < r->nalerts; j++)
            alert_fini(&r->alerts[j]);
        free(r->alerts);
        free(r->last_error);
        series_free(r->prev, r->nprev);
    }
    free(g->rules);
    pthread_mutex_destroy(&g->mu);
    free(g->name);
    free(g->file);
    free(g);
}

/* -------------------------------------------------------------- output */

/* A sample to write: labels owned (labels_dup). */
struct outs {
    struct rules_series *v;   /* hash + labels */
    double *vals;
    size_t n, cap;
};

static void outs_add(struct outs *o, struct labels *ls, double v)
{
    if (o->n == o->cap) {
        o->cap = o->cap ? 2 * o->cap : 16;
        o->v = bs_xrealloc(o->v, o->cap * sizeof(*o->v));
        o->vals = bs_xrealloc(o->vals, o->cap * sizeof(*o->vals));
    }
    o->v[o->n].hash = labels_hash(ls);
    o->v[o->n].labels = ls;
    o->vals[o->n] = v;
    o->n++;
}

static void outs_fini(struct outs *o)
{
    series_free(o->v, o->n);
    free(o->vals);
    memset(o, 0, sizeof(*o));
}

static int series_cmp(const void *a, const void *b)
{
    const struct rules_series *x = a, *y = b;
    if (x->hash != y->hash)
        return x->hash < y->hash ? -1 : 1;
    return labels_cmp(x->labels, y->labels);
}

static bool series_find(const struct rules_series *v, size_t n, const struct rules_series *key)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = series_cmp(&v[mid], key);
        if (c == 0)
            return true;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

static void set_error(struct rules_rule *r, const char *msg)
{
    free(r->last_error);
    r->last_error = msg ? bs_xstrdup(msg) : NULL;
    r->health = msg ? RULES_HEALTH_ERR : RULES_HEALTH_OK;
}

/* Append outputs and staleness markers; the successfully written series
 * become r->prev. */
static void write_outputs(struct rules_group *g, struct rules_rule *r, struct outs *o, int64_t t_ms)
{
    struct tsdb_appender *app = tsdb_appender_new(g->m->db);
    struct rules_series *done = o->n ? bs_xcalloc(o->n, sizeof(*done)) : NULL;
    size_t ndone = 0;
    char msg[512];
    for (size_t i = 0; i < o->n; i++) {
        int rc = tsdb_appender_add(app, 0, o->v[i].labels, t_ms, o->vals[i], NULL);
        if (rc) {
            struct bs_buf lb;
            bs_buf_init(&lb, 0);
            labels_format(o->v[i].labels, &lb);
            snprintf(msg, sizeof(msg), "%s", bs_strerror(rc));
            set_error(r, msg);
            if (rc != BS_EOUTOFORDER && rc != BS_EDUPLICATE && rc != BS_EOUTOFBOUNDS)
                BS_WARN("rules", "rule evaluation result discarded: %s: %s", bs_strerror(rc),
                        lb.data ? lb.data : "");
            bs_buf_fini(&lb);
            continue;
        }
        done[ndone++] = o->v[i];
        o->v[i].labels = NULL;
    }
    if (ndone)
        qsort(done, ndone, sizeof(*done), series_cmp);
    for (size_t i = 0; i < r->nprev; i++) {
        if (series_find(done, ndone, &r->prev[i]))
            continue;
        /* Out-of-order and duplicate errors are expected here and ignored. */
        tsdb_appender_add(app, 0, r->prev[i].labels, t_ms, bs_stale_nan(), NULL);
    }
    struct bs_error e = {0};
    if (tsdb_appender_commit(app, &e) != 0) {
        snprintf(msg, sizeof(msg), "%s", e.msg[0] ? e.msg : "commit failed");
        set_error(r, msg);
        BS_WARN("rules", "rule sample appending failed: %s", msg);
    }
    series_free(r->prev, r->nprev);
    r->prev = done;
    r->nprev = ndone;
}

/* -------------------------------------------------------------- query */

struct qvec {
    struct promql_result *res;
    struct labels empty;
    size_t n;
    const struct labels **ls;
    double *v;
};

static int run_query(struct rules_group *g, const char *expr, int64_t t_ms, struct qvec *q,
                     char *err, size_t errcap)
{
    struct bs_error e = {0};
    memset(q, 0, sizeof(*q));
    if (promql_query_instant(g->m->engine, g->m->db, expr, t_ms, &q->res, &e) != 0) {
        snprintf(err, errcap, "%s", e.msg);
        return -1;
    }
    if (q->res->type == PROMQL_VALUE_SCALAR) {
        q->n = 1;
        q->ls = bs_xmalloc(sizeof(*q->ls));
        q->v = bs_xmalloc(sizeof(*q->v));
        q->ls[0] = &q->empty;
        q->v[0] = q->res->scalar.v;
        return 0;
    }
    if (q->res->type != PROMQL_VALUE_VECTOR) {
        snprintf(err, errcap, "rule result is not a vector or scalar");
        promql_result_free(q->res);
        q->res = NULL;
        return -1;
    }
    q->n = q->res->nseries;
    q->ls = bs_xmalloc((q->n ? q->n : 1) * sizeof(*q->ls));
    q->v = bs_xmalloc((q->n ? q->n : 1) * sizeof(*q->v));
    for (size_t i = 0; i < q->n; i++) {
        q->ls[i] = q->res->series[i].labels;
        q->v[i] = q->res->series[i].npoints ? q->res->series[i].points[0].v : 0;
    }
    return 0;
}

static void qvec_fini(struct qvec *q)
{
    promql_result_free(q->res);
    free(q->ls);
    free(q->v);
}

static bool has_dup(struct outs *o)
{
    if (o->n < 2)
        return false;
    struct rules_series *tmp = bs_xmalloc(o->n * sizeof(*tmp));
    memcpy(tmp, o->v, o->n * sizeof(*tmp));
    qsort(tmp, o->n, sizeof(*tmp), series_cmp);
    bool dup = false;
    for (size_t i = 1; i < o->n && !dup; i++)
        dup = series_cmp(&tmp[i - 1], &tmp[i]) == 0;
    free(tmp);
    return dup;
}

/* ------------------------------------------------------------ recording */

static int eval_recording(struct rules_group *g, struct rules_rule *r, int64_t t_ms, struct outs *o,
                          char *err, size_t errcap)
{
    struct qvec q;
    if (run_query(g, r->def.expr, t_ms, &q, err, errcap))
        return -1;
    struct labels_builder b;
    labels_builder_init(&b);
    for (size_t i = 0; i < q.n; i++) {
        labels_builder_from(&b, q.ls[i]);
        labels_builder_set_str(&b, LABELS_METRIC_NAME, r->def.name);
        for (size_t j = 0; j < r->def.labels.n; j++)
            labels_builder_set_str(&b, r->def.labels.v[j].name, r->def.labels.v[j].value);
        struct labels ls;
        labels_builder_labels(&b, &ls, NULL);
        outs_add(o, labels_dup(&ls), q.v[i]);
    }
    labels_builder_fini(&b);
    qvec_fini(&q);
    if (has_dup(o)) {
        snprintf(err, errcap, "vector contains metrics with the same labelset after applying rule labels");
        return -1;
    }
    if (g->limit > 0 && (int64_t)o->n > g->limit) {
        snprintf(err, errcap, "exceeded limit %lld with %zu series", (long long)g->limit, o->n);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------- alerting */

static struct rules_alert *alert_find(struct rules_rule *r, uint64_t h, const struct labels *ls)
{
    for (size_t i = 0; i < r->nalerts; i++)
        if (r->alerts[i].hash == h && labels_equal(r->alerts[i].labels, ls))
            return &r->alerts[i];
    return NULL;
}

static void alert_remove(struct rules_rule *r, size_t i)
{
    alert_fini(&r->alerts[i]);
    r->alerts[i] = r->alerts[--r->nalerts];
}

static char *expand(struct rules_group *g, const struct rules_rule *r, const char *text,
                    const struct rules_tmpl_data *d)
{
    struct bs_buf out;
    struct bs_error e = {0};
    char name[600];
    bs_buf_init(&out, 0);
    snprintf(name, sizeof(name), "__alert_%s", r->def.name);
    if (rules_template_expand(name, text, d, &out, &e) != 0) {
        bs_buf_reset(&out);
        bs_buf_printf(&out, "<error expanding template: %s>", e.msg);
        BS_WARN("rules", "expanding alert template failed: alert=%s: %s", r->def.name, e.msg);
    }
    if (!out.data)
        return bs_xstrdup("");
    return bs_buf_steal(&out, NULL);
}

static struct labels *alert_series_labels(const struct rules_alert *a, const char *metric,
                                          const char *state)
{
    struct labels_builder b;
    struct labels ls;
    labels_builder_init(&b);
    labels_builder_from(&b, a->labels);
    labels_builder_set_str(&b, LABELS_METRIC_NAME, metric);
    if (state)
        labels_builder_set_str(&b, "alertstate", state);
    labels_builder_labels(&b, &ls, NULL);
    struct labels *d = labels_dup(&ls);
    labels_builder_fini(&b);
    return d;
}

static const char *state_name(enum rules_alert_state s)
{
    return s == RULES_ALERT_FIRING ? "firing" : s == RULES_ALERT_PENDING ? "pending" : "inactive";
}

static int eval_alerting(struct rules_group *g, struct rules_rule *r, int64_t ts_ns, int64_t q_ms,
                         struct outs *o, char *err, size_t errcap)
{
    struct qvec q;
    struct rules_manager *m = g->m;
    if (run_query(g, r->def.expr, q_ms, &q, err, errcap))
        return -1;
    pthread_mutex_lock(&m->opts_mu);
    struct labels *ext = labels_dup(m->external_labels);
    char *url = bs_xstrdup(m->external_url ? m->external_url : "");
    pthread_mutex_unlock(&m->opts_mu);

    /* New alerts from this evaluation. */
    size_t nnew = q.n;
    struct rules_alert *fresh = bs_xcalloc(nnew ? nnew : 1, sizeof(*fresh));
    struct labels_builder b;
    labels_builder_init(&b);
    for (size_t i = 0; i < q.n; i++) {
        struct rules_tmpl_data d = {
            .labels = q.ls[i], .external_labels = ext, .external_url = url, .value = q.v[i],
            .engine = m->engine, .db = m->db, .ts_ms = ts_ns / NS_PER_MS,
        };
        labels_builder_from(&b, q.ls[i]);
        labels_builder_del(&b, LABELS_METRIC_NAME);
        for (size_t j = 0; j < r->def.labels.n; j++) {
            char *v = expand(g, r, r->def.labels.v[j].value, &d);
            labels_builder_set_str(&b, r->def.labels.v[j].name, v);
            free(v);
        }
        labels_builder_set_str(&b, "alertname", r->def.name);
        struct labels ls;
        labels_builder_labels(&b, &ls, NULL);
        fresh[i].labels = labels_dup(&ls);
        fresh[i].hash = labels_hash(fresh[i].labels);
        fresh[i].annotations.n = r->def.annotations.n;
        fresh[i].annotations.v = r->def.annotations.n
                                     ? bs_xcalloc(r->def.annotations.n, sizeof(struct label))
                                     : NULL;
        for (size_t j = 0; j < r->def.annotations.n; j++) {
            fresh[i].annotations.v[j].name = bs_xstrdup(r->def.annotations.v[j].name);
            fresh[i].annotations.v[j].value = expand(g, r, r->def.annotations.v[j].value, &d);
        }
        fresh[i].state = RULES_ALERT_PENDING;
        fresh[i].active_at = ts_ns;
        fresh[i].value = q.v[i];
    }
    labels_builder_fini(&b);
    qvec_fini(&q);
    free(ext);
    free(url);
    for (size_t i = 0; i < nnew; i++)
        for (size_t j = 0; j < i; j++)
            if (fresh[i].hash == fresh[j].hash && labels_equal(fresh[i].labels, fresh[j].labels)) {
                for (size_t k = 0; k < nnew; k++)
                    alert_fini(&fresh[k]);
                free(fresh);
                snprintf(err, errcap, "vector contains metrics with the same labelset after applying alert labels");
                return -1;
            }

    /* Merge into the active set; mark which active alerts were seen. */
    bool *seen = bs_xcalloc(r->nalerts + nnew + 1, sizeof(bool));
    for (size_t i = 0; i < nnew; i++) {
        struct rules_alert *a = alert_find(r, fresh[i].hash, fresh[i].labels);
        if (a && a->state != RULES_ALERT_INACTIVE) {
            a->value = fresh[i].value;
            rules_kv_free(&a->annotations);
            a->annotations = fresh[i].annotations;
            fresh[i].annotations.v = NULL;
            fresh[i].annotations.n = 0;
            seen[a - r->alerts] = true;
            alert_fini(&fresh[i]);
            continue;
        }
        if (a) {
            /* A resolved alert that comes back starts over. */
            alert_fini(a);
            *a = fresh[i];
            seen[a - r->alerts] = true;
            continue;
        }
        if (r->nalerts == r->calerts) {
            r->calerts = r->calerts ? 2 * r->calerts : 8;
            r->alerts = bs_xrealloc(r->alerts, r->calerts * sizeof(*r->alerts));
        }
        r->alerts[r->nalerts] = fresh[i];
        seen[r->nalerts] = true;
        r->nalerts++;
    }
    free(fresh);

    int64_t hold_ns = r->def.for_ms * NS_PER_MS;
    int64_t kff_ns = r->def.keep_firing_for_ms * NS_PER_MS;
    size_t active_pending = 0;
    int64_t t_ms = q_ms;
    for (size_t i = 0; i < r->nalerts;) {
        struct rules_alert *a = &r->alerts[i];
        if (!seen[i]) {
            bool keep_firing = false;
            if (a->state == RULES_ALERT_FIRING && kff_ns > 0) {
                if (!a->keep_firing_since)
                    a->keep_firing_since = ts_ns;
                if (ts_ns - a->keep_firing_since < kff_ns)
                    keep_firing = true;
            }
            if (a->state == RULES_ALERT_PENDING ||
                (a->resolved_at && ts_ns - a->resolved_at > RULES_RESOLVED_RETENTION_MS * NS_PER_MS)) {
                alert_remove(r, i);
                seen[i] = seen[r->nalerts];
                continue;
            }
            if (a->state != RULES_ALERT_INACTIVE && !keep_firing) {
                a->state = RULES_ALERT_INACTIVE;
                a->resolved_at = ts_ns;
            }
            if (!keep_firing) {
                i++;
                continue;
            }
        } else {
            a->keep_firing_since = 0;
        }
        active_pending++;
        if (a->state == RULES_ALERT_PENDING && ts_ns - a->active_at >= hold_ns) {
            a->state = RULES_ALERT_FIRING;
            a->fired_at = ts_ns;
        }
        if (r->restored) {
            outs_add(o, alert_series_labels(a, "ALERTS", state_name(a->state)), 1);
            int64_t act_s = a->active_at / 1000000000;
            if (a->active_at < 0 && a->active_at % 1000000000)
                act_s--;
            outs_add(o, alert_series_labels(a, "ALERTS_FOR_STATE", NULL), (double)act_s);
        }
        i++;
    }
    free(seen);
    (void)t_ms;
    if (g->limit > 0 && (int64_t)active_pending > g->limit) {
        for (size_t i = 0; i < r->nalerts; i++)
            alert_fini(&r->alerts[i]);
        r->nalerts = 0;
        outs_fini(o);
        snprintf(err, errcap, "exceeded limit of %lld with %zu alerts", (long long)g->limit,
                 active_pending);
        return -1;
    }
    return 0;
}

static void url_escape(struct bs_buf *b, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~')
            bs_buf_putc(b, (char)c);
        else if (c == ' ')
            bs_buf_putc(b, '+');
        else
            bs_buf_printf(b, "%%%02X", c);
    }
}

/* sendAlerts: firing and freshly resolved alerts, every resend delay. */
static void send_alerts(struct rules_group *g, struct rules_rule *r, int64_t ts_ns)
{
    struct rules_manager *m = g->m;
    pthread_mutex_lock(&m->opts_mu);
    int64_t resend_ns = m->resend_delay_ms * NS_PER_MS;
    char *url = bs_xstrdup(m->external_url ? m->external_url : "");
    struct labels *ext = labels_dup(m->external_labels);
    pthread_mutex_unlock(&m->opts_mu);
    int64_t delta = resend_ns;
    if (g->interval_ms * NS_PER_MS > delta)
        delta = g->interval_ms * NS_PER_MS;
    struct rules_notify_alert *out = NULL;
    size_t n = 0;
    for (size_t i = 0; i < r->nalerts; i++) {
        struct rules_alert *a = &r->alerts[i];
        if (a->state == RULES_ALERT_PENDING)
            continue;
        bool needs = a->resolved_at > a->last_sent_at || a->last_sent_at + resend_ns < ts_ns;
        if (!needs)
            continue;
        a->last_sent_at = ts_ns;
        a->valid_until = ts_ns + 4 * delta;
        if (!out)
            out = bs_xcalloc(r->nalerts, sizeof(*out));
        struct rules_notify_alert *na = &out[n++];
        na->labels = labels_dup(a->labels);
        rules_kv_copy(&na->annotations, &a->annotations);
        na->starts_at = a->fired_at / NS_PER_MS;
        na->ends_at = (a->resolved_at ? a->resolved_at : a->valid_until) / NS_PER_MS;
        struct bs_buf gu;
        bs_buf_init(&gu, 0);
        bs_buf_puts(&gu, url);
        bs_buf_puts(&gu, "/graph?g0.expr=");
        url_escape(&gu, r->query);
        bs_buf_puts(&gu, "&g0.tab=1");
        na->generator_url = bs_buf_steal(&gu, NULL);
    }
    if (n)
        rules_notifier_send(m->notifier, ext, out, n);
    free(out);
    free(url);
    free(ext);
}

/* ---------------------------------------------------------- iteration */

void rules_group_eval(struct rules_group *g, int64_t ts_ns)
{
    int64_t start = bs_monotonic_ns();
    int64_t wall = rules_now_ns();
    int64_t q_ms = ts_ns / NS_PER_MS - g->query_offset_ms;
    char err[1024];
    pthread_mutex_lock(&g->mu);
    for (size_t i = 0; i < g->nrules; i++) {
        struct rules_rule *r = &g->rules[i];
        struct outs o = {0};
        int64_t rs = bs_monotonic_ns();
        int64_t rwall = rules_now_ns();
        int rc = r->def.alerting ? eval_alerting(g, r, ts_ns, q_ms, &o, err, sizeof(err))
                                 : eval_recording(g, r, q_ms, &o, err, sizeof(err));
        bs_metric_add(g_evals, 1);
        if (rc) {
            set_error(r, err);
            bs_metric_add(g_eval_failures, 1);
            BS_WARN("rules", "evaluating rule failed: group=%s rule=%s: %s", g->name, r->def.name, err);
        } else {
            set_error(r, NULL);
            write_outputs(g, r, &o, q_ms);
        }
        outs_fini(&o);
        if (r->def.alerting && g->m->notifier)
            send_alerts(g, r, ts_ns);
        double secs = (double)(bs_monotonic_ns() - rs) / 1e9;
        r->eval_seconds = secs;
        r->last_eval_ns = rwall;
        bs_metric_add(g_eval_seconds_sum, secs);
        bs_metric_add(g_eval_seconds_count, 1);
    }
    g->eval_seconds = (double)(bs_monotonic_ns() - start) / 1e9;
    g->last_eval_ns = wall;
    g->last_eval_ts_ns = ts_ns;
    bs_metric_set(g->m_last_duration, g->eval_seconds);
    bs_metric_add(g->m_duration, g->eval_seconds);
    pthread_mutex_unlock(&g->mu);
}

void rules_group_mark_stale(struct rules_group *g, int64_t ts_ms)
{
    pthread_mutex_lock(&g->mu);
    struct tsdb_appender *app = tsdb_appender_new(g->m->db);
    for (size_t i = 0; i < g->nrules; i++) {
        struct rules_rule *r = &g->rules[i];
        for (size_t j = 0; j < r->nprev; j++)
            tsdb_appender_add(app, 0, r->prev[j].labels, ts_ms, bs_stale_nan(), NULL);
        series_free(r->prev, r->nprev);
        r->prev = NULL;
        r->nprev = 0;
    }
    tsdb_appender_commit(app, NULL);
    pthread_mutex_unlock(&g->mu);
}

/* ------------------------------------------------------------- restore */

static bool restore_one(struct rules_group *g, struct tsdb_querier *qr, struct rules_alert *a,
                        int64_t hold_ns, int64_t ts_ns)
{
    struct rules_manager *m = g->m;
    struct labels_matcher **ms = bs_xcalloc(a->labels->n + 1, sizeof(*ms));
    size_t nms = 0;
    bool ok = true;
    if (labels_matcher_new(&ms[nms++], LABELS_MATCH_EQ, LABELS_METRIC_NAME, "ALERTS_FOR_STATE", NULL))
        ok = false;
    for (size_t i = 0; ok && i < a->labels->n; i++)
        if (labels_matcher_new(&ms[nms++], LABELS_MATCH_EQ, a->labels->v[i].name,
                               a->labels->v[i].value, NULL))
            ok = false;
    struct tsdb_series_set *ss = NULL;
    bool found = false;
    int64_t t = 0;
    double v = 0;
    if (ok && tsdb_querier_select(qr, ms, nms, &ss, NULL) == 0) {
        while (tsdb_series_set_next(ss)) {
            const struct labels *ls = tsdb_series_set_labels(ss);
            if (ls->n != a->labels->n + 1)
                continue;
            struct tsdb_iterator *it = tsdb_series_set_iterator(ss);
            while (it && tsdb_iterator_next(it)) {
                tsdb_iterator_at(it, &t, &v);
                found = true;
            }
            tsdb_iterator_free(it);
            break;
        }
        tsdb_series_set_free(ss);
    }
    for (size_t i = 0; i < nms; i++)
        labels_matcher_free(ms[i]);
    free(ms);
    if (!found || bs_is_stale_nan(v))
        return false;
    int64_t down_at = (t / 1000) * 1000000000;            /* whole seconds, as Prometheus */
    int64_t restored_active = (int64_t)v * 1000000000;
    int64_t spent = down_at - restored_active;
    int64_t remaining = hold_ns - spent;
    int64_t grace_ns = m->grace_period_ms * NS_PER_MS;
    if (remaining <= 0) {
        /* It was firing when we went down: nothing to do. */
    } else if (remaining < grace_ns) {
        restored_active = ts_ns + grace_ns - hold_ns;
    } else {
        restored_active += ts_ns - down_at;
    }
    a->active_at = restored_active;
    BS_DEBUG("rules", "'for' state restored");
    return true;
}

void rules_group_restore(struct rules_group *g, int64_t ts_ns)
{
    struct rules_manager *m = g->m;
    pthread_mutex_lock(&m->opts_mu);
    int64_t tol = m->outage_tolerance_ms, grace = m->grace_period_ms;
    pthread_mutex_unlock(&m->opts_mu);
    int64_t maxt = ts_ns / NS_PER_MS, mint = maxt - tol;
    pthread_mutex_lock(&g->mu);
    struct tsdb_querier *q = tsdb_querier_new(m->db, mint, maxt);
    for (size_t i = 0; i < g->nrules; i++) {
        struct rules_rule *r = &g->rules[i];
        if (!r->def.alerting)
            continue;
        if (r->def.for_ms < grace) {
            r->restored = true;
            continue;
        }
        for (size_t j = 0; q && j < r->nalerts; j++)
            if (r->alerts[j].state != RULES_ALERT_INACTIVE)
                restore_one(g, q, &r->alerts[j], r->def.for_ms * NS_PER_MS, ts_ns);
        r->restored = true;
    }
    tsdb_querier_free(q);
    g->should_restore = false;
    pthread_mutex_unlock(&g->mu);
}

/* ---------------------------------------------------------- copy state */

static bool same_rule(const struct rules_rule *a, const struct rules_rule *b)
{
    if (strcmp(a->def.name, b->def.name) || a->def.labels.n != b->def.labels.n)
        return false;
    for (size_t i = 0; i < a->def.labels.n; i++)
        if (strcmp(a->def.labels.v[i].name, b->def.labels.v[i].name) ||
            strcmp(a->def.labels.v[i].value, b->def.labels.v[i].value))
            return false;
    return true;
}

void rules_group_copy_state(struct rules_group *g, struct rules_group *from)
{
    pthread_mutex_lock(&from->mu);
    g->eval_seconds = from->eval_seconds;
    g->last_eval_ns = from->last_eval_ns;
    g->last_eval_ts_ns = from->last_eval_ts_ns;
    bool *used = bs_xcalloc(from->nrules + 1, sizeof(bool));
    for (size_t i = 0; i < g->nrules; i++) {
        struct rules_rule *r = &g->rules[i];
        for (size_t j = 0; j < from->nrules; j++) {
            struct rules_rule *f = &from->rules[j];
            if (used[j] || !same_rule(r, f))
                continue;
            used[j] = true;
            series_free(r->prev, r->nprev);
            r->prev = f->prev;
            r->nprev = f->nprev;
            f->prev = NULL;
            f->nprev = 0;
            r->health = f->health;
            r->last_error = f->last_error;
            f->last_error = NULL;
            r->eval_seconds = f->eval_seconds;
            r->last_eval_ns = f->last_eval_ns;
            if (r->def.alerting && f->def.alerting) {
                r->alerts = f->alerts;
                r->nalerts = f->nalerts;
                r->calerts = f->calerts;
                f->alerts = NULL;
                f->nalerts = f->calerts = 0;
                r->restored = r->restored || f->restored;
            }
            break;
        }
    }
    free(used);
    pthread_mutex_unlock(&from->mu);
}
