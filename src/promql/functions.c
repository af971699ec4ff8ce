/* SPDX-License-Identifier: Apache-2.0
 *
 * promql functions: the table of every PromQL function the parser knows
 * (argument and return types, as Prometheus's parser.Functions) and the
 * implementations the evaluator calls at one evaluation time. A function
 * with a NULL implementation parses and type-checks but evaluates to a
 * clean "function X is not supported yet" error.
 *
 * Range-vector functions follow Prometheus's functions.go: rate, increase
 * and delta extrapolate to the window edges (extrapolatedRate), irate and
 * idelta use the last two samples, deriv and predict_linear a least-squares
 * fit. Functions that compute new values flag their output for delayed
 * __name__ removal (see promql_int.h); last_over_time, first_over_time,
 * sort*, label_replace and label_join keep the name (the label functions
 * clear the flag when they set __name__ themselves). Warnings and infos
 * use upstream's texts (util/annotations in Prometheus).
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <math.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "promql/promql_int.h"

/* ---------------------------------------------------------------- helpers */

static int vec_alloc(struct promql_eval *ev, struct promql_val *out, size_t n)
{
    out->type = PROMQL_VALUE_VECTOR;
    out->nvec = 0;
    out->vec = promql_eval_alloc(ev, (n + 1) * sizeof(*out->vec));
    return out->vec ? 0 : BS_ENOMEM;
}

/* Append a sample; drop_name marks its metric name for delayed removal
 * (the labels are kept until the end of the evaluation). */
static int push(struct promql_eval *ev, struct promql_val *out, const struct labels *ls, double v,
                int64_t t, bool drop_name)
{
    out->vec[out->nvec++] = (struct promql_sample){ls, v, t, drop_name};
    return 0;
}

double promql_quantile(double q, double *vals, size_t n)
{
    if (n == 0 || isnan(q))
        return NAN;
    if (q < 0)
        return -INFINITY;
    if (q > 1)
        return INFINITY;
    /* insertion sort is fine for group sizes; use qsort for large */
    for (size_t i = 1; i < n; i++) {
        double x = vals[i];
        size_t j = i;
        while (j > 0 && (vals[j - 1] > x || (isnan(x) && !isnan(vals[j - 1])))) {
            vals[j] = vals[j - 1];
            j--;
        }
        vals[j] = x;
    }
    double rank = q * (double)(n - 1);
    double lower = fmax(0, floor(rank));
    double upper = fmin((double)(n - 1), lower + 1);
    double weight = rank - floor(rank);
    return vals[(size_t)lower] * (1 - weight) + vals[(size_t)upper] * weight;
}

/* ------------------------------------------------- instant-vector maths */

static int fn_math(struct promql_eval *ev, const struct promql_expr *call, struct promql_val *a,
                   int64_t t, struct promql_val *out)
{
    if (vec_alloc(ev, out, a[0].nvec))
        return BS_ENOMEM;
    for (size_t i = 0; i < a[0].nvec; i++)
        if (push(ev, out, a[0].vec[i].ls, call->func->math(a[0].vec[i].v), t, true))
            return BS_ENOMEM;
    return 0;
}

static double m_sgn(double v)
{
    return v > 0 ? 1 : v < 0 ? -1 : v;
}
static double m_deg(double v) { return v * 180 / M_PI; }
static double m_rad(double v) { return v * M_PI / 180; }

static int fn_round(struct promql_eval *ev, const struct promql_expr *call, struct promql_val *a,
                    int64_t t, struct promql_val *out)
{
    double to = call->nargs > 1 ? a[1].scalar : 1;
    double inv = 1.0 / to;
    if (vec_alloc(ev, out, a[0].nvec))
        return BS_ENOMEM;
    for (size_t i = 0; i < a[0].nvec; i++)
        if (push(ev, out, a[0].vec[i].ls, floor(a[0].vec[i].v * inv + 0.5) / inv, t, true))
            return BS_ENOMEM;
    return 0;
}

/* Go's math.Max / math.Min: NaN wins. */
static double go_max(double a, double b)
{
    return isnan(a) || isnan(b) ? NAN : (a > b ? a : b);
}
static double go_min(double a, double b)
{
    return isnan(a) || isnan(b) ? NAN : (a < b ? a : b);
}

static int fn_clamp(struct promql_eval *ev, const struct promql_expr *call, struct promql_val *a,
                    int64_t t, struct promql_val *out)
{
    const char *n = call->func->name;
    double lo = -INFINITY, hi = INFINITY;
    if (strcmp(n, "clamp") == 0) {
        lo = a[1].scalar;
        hi = a[2].scalar;
    } else if (strcmp(n, "clamp_min") == 0) {
        lo = a[1].scalar;
    } else {
        hi = a[1].scalar;
    }
    if (vec_alloc(ev, out, a[0].nvec))
        return BS_ENOMEM;
    if (hi < lo)
        return 0;
    for (size_t i = 0; i < a[0].nvec; i++) {
        double v = a[0].vec[i].v;
        if (strcmp(n, "clamp") == 0)
            v = go_max(lo, go_min(hi, v));
        else if (strcmp(n, "clamp_min") == 0)
            v = go_max(lo, v);
        else
            v = go_min(hi, v);
        if (push(ev, out, a[0].vec[i].ls, v, t, true))
            return BS_ENOMEM;
    }
    return 0;
}

static int fn_scalar(struct promql_eval *ev, const struct promql_expr *call, struct promql_val *a,
                     int64_t t, struct promql_val *out)
{
    out->type = PROMQL_VALUE_SCALAR;
    out->scalar = a[0].nvec == 1 ? a[0].vec[0].v : NAN;
    return 0;
}

static const struct labels empty_labels = {NULL, 0};

static int fn_vector(struct promql_eval *ev, const struct promql_expr *call, struct promql_val *a,
                     int64_t t, struct promql_val *out)
{
    if (vec_alloc(ev, out, 1))
        return BS_ENOMEM;
    return push(ev, out, &empty_labels, a[0].scalar, t, false);
}

static int fn_time(struct promql_eval *ev, const struct promql_expr *call, struct promql_val *a,
                   int64_t t, struct promql_val *out)
{
    out->type = PROMQL_VALUE_SCALAR;
    out->scalar = (double)t / 1000.0;
    return 0;
}

/* step(), range(), start(), end() (experimental upstream): the query's
 * step and end - start in seconds (0 for instant queries), and its
 * boundaries as Unix seconds. */
static int fn_query_time(struct promql_eval *ev, const struct promql_expr *call,
                         struct promql_val *a, int64_t t, struct promql_val *out)
{
    const char *n = call->func->name;
    int64_t ms;
    if (strcmp(n, "step") == 0)
        ms = promql_eval_step(ev);
    else if (strcmp(n, "range") == 0)
        ms = promql_eval_end(ev) - promql_eval_start(ev);
    else if (strcmp(n, "start") == 0)
        ms = promql_eval_start(ev);
    else
        ms = promql_eval_end(ev);
    out->type = PROMQL_VALUE_SCALAR;
    out->scalar = (double)ms / 1000.0;
    return 0;
}

/* min_of(a, b), max_of(a, b) on scalars; NaN wins, as Go's math.Min/Max. */
static int fn_min_max_of(struct promql_eval *ev, const struct promql_expr *call,
                         struct promql_val *a, int64_t t, struct promql_val *out)
{
    out->type = PROMQL_VALUE_SCALAR;
    out->scalar = strcmp(call->func->name, "min_of") == 0 ? go_min(a[0].scalar, a[1].scalar)
                                                         : go_max(a[0].scalar, a[1].scalar);
    return 0;
}

static int fn_pi(struct promql_eval *ev, const struct promql_expr *call, struct promql_val *a,
                 int64_t t, struct promql_val *out)
{
    out->type = PROMQL_VALUE_SCALAR;
    out->scalar = M_PI;
    return 0;
}

static int fn_timestamp(struct promql_eval *ev, const struct promql_expr *call,
                        struct promql_val *a, int64_t t, struct promql_val *out)
{
    if (vec_alloc(ev, out, a[0].nvec))
        return BS_ENOMEM;
    for (size_t i = 0; i < a[0].nvec; i++)
        if (push(ev, out, a[0].vec[i].ls, (double)a[0].vec[i].t / 1000.0, t, true))
            return BS_ENOMEM;
    return 0;
}

/* Labels for absent(): the equality matchers of a selector argument. As
 * upstream's createLabelsForAbsentFunction, a label is set by its first
 * equality matcher and removed by any other matcher on it that follows
 * ({job="a",job=~"b"} gives no job; {job=~"b",job="a"} gives job="a"). */
static const struct labels *absent_labels(struct promql_eval *ev, const struct promql_expr *arg)
{
    while (arg->kind == PROMQL_NODE_PAREN)
        arg = arg->lhs;
    if (arg->kind == PROMQL_NODE_MATRIX)
        arg = arg->lhs;
    if (arg->kind != PROMQL_NODE_VECTOR)
        return &empty_labels;
    struct labels_builder lb;
    labels_builder_init(&lb);
    const char **seen = promql_eval_alloc(ev, (arg->nmatchers + 1) * sizeof(char *));
    size_t nseen = 0;
    if (!seen) {
        labels_builder_fini(&lb);
        return NULL;
    }
    int rc = 0;
    for (size_t i = 0; i < arg->nmatchers && !rc; i++) {
        const struct promql_matcher_ast *m = &arg->matchers[i];
        if (strcmp(m->name, LABELS_METRIC_NAME) == 0)
            continue;
        bool has = false;
        for (size_t k = 0; k < nseen && !has; k++)
            has = strcmp(seen[k], m->name) == 0;
        if (m->type == LABELS_MATCH_EQ && !has) {
            rc = labels_builder_set_str(&lb, m->name, m->value);
            seen[nseen++] = m->name;
        } else {
            labels_builder_del(&lb, m->name);
        }
    }
    struct labels out;
    const struct labels *res = NULL;
    if (!rc && labels_builder_labels(&lb, &out, NULL) == 0)
        res = promql_eval_labels(ev, &out);
    labels_builder_fini(&lb);
    return res;
}

static int fn_absent(struct promql_eval *ev, const struct promql_expr *call, struct promql_val *a,
                     int64_t t, struct promql_val *out)
{
    bool empty = a[0].type == PROMQL_VALUE_MATRIX ? a[0].nmat == 0 : a[0].nvec == 0;
    if (vec_alloc(ev, out, 1))
        return BS_ENOMEM;
    if (!empty)
        return 0;
    const struct labels *ls = absent_labels(ev, call->args[0]);
    if (!ls)
        return BS_ENOMEM;
    return push(ev, out, ls, 1, t, false);
}

/* --------------------------------------------------- range-vector maths */

typedef bool (*range_fn)(const struct promql_val *m, const struct promql_mseries *s,
                         const struct promql_expr *call, struct promql_val *a, int64_t t,
                         double *out);

static bool has_suffix(const char *s, const char *suf)
{
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && strcmp(s + n - k, suf) == 0;
}

/* rate() and increase() on a series whose name does not look like a
 * counter's: upstream's "might not be a counter" info. */
static void counter_name_info(struct promql_eval *ev, const struct labels *ls,
                              const char **checked)
{
    /* __name__ sorts first unless a label name starts with an upper-case
     * letter; series of one metric usually share the name's storage, so
     * *checked (the last name looked at) mostly spares the comparisons. */
    const char *name = ls->n > 0 && strcmp(ls->v[0].name, LABELS_METRIC_NAME) == 0
                           ? ls->v[0].value
                           : labels_get(ls, LABELS_METRIC_NAME);
    if (!name || name == *checked)
        return;
    *checked = name;   /* the info for a name is recorded once anyway */
    if (!*name || has_suffix(name, "_total") || has_suffix(name, "_sum") ||
        has_suffix(name, "_count") || has_suffix(name, "_bucket"))
        return;
    promql_eval_annotate(ev, true,
                         "metric might not be a counter, name does not end in "
                         "_total/_sum/_count/_bucket: \"%s\"",
                         name);
}

static int over_range(struct promql_eval *ev, const struct promql_expr *call, struct promql_val *a,
                      int64_t t, struct promql_val *out, size_t argi, range_fn f, bool drop)
{
    const struct promql_val *m = &a[argi];
    if (vec_alloc(ev, out, m->nmat))
        return BS_ENOMEM;
    const char *fname = call->func->name;
    bool counter_fn = strcmp(fname, "rate") == 0 || strcmp(fname, "increase") == 0;
    const char *checked = NULL;
    for (size_t i = 0; i < m->nmat; i++) {
        double v;
        if (!f(m, &m->mat[i], call, a, t, &v))
            continue;
        if (push(ev, out, m->mat[i].ls, v, t, drop))
            return BS_ENOMEM;
        if (counter_fn)
            counter_name_info(ev, m->mat[i].ls, &checked);
    }
    return promql_eval_check(ev);
}

/* Prometheus's extrapolatedRate. */
static bool extrapolated(const struct promql_val *m, const struct promql_mseries *s, bool counter,
                         bool is_rate, double *out)
{
    if (s->n < 2)
        return false;
    const struct promql_point *p = s->p;
    size_t last = s->n - 1;
    double result = p[last].v - p[0].v;
    if (counter && !s->monotone) {
        double prev = 0;
        for (size_t i = 0; i < s->n; i++) {
            if (p[i].v < prev)
                result += prev;
            prev = p[i].v;
        }
    }
    double to_start = (double)(p[0].t - m->range_start) / 1000.0;
    double to_end = (double)(m->range_end - p[last].t) / 1000.0;
    double sampled = (double)(p[last].t - p[0].t) / 1000.0;
    double avg = sampled / (double)last;
    double threshold = avg * 1.1;
    if (to_start >= threshold)
        to_start = avg / 2;
    if (counter) {
        double to_zero = to_start;
        if (result > 0 && p[0].v >= 0)
            to_zero = sampled * (p[0].v / result);
        if (to_zero < to_start)
            to_start = to_zero;
    }
    if (to_end >= threshold)
        to_end = avg / 2;
    double factor = (sampled + to_start + to_end) / sampled;
    if (is_rate)
        factor /= (double)m->range_ms / 1000.0;
    *out = result * factor;
    return true;
}

static bool r_rate(const struct promql_val *m, const struct promql_mseries *s,
                   const struct promql_expr *c, struct promql_val *a, int64_t t, double *o)
{
    return extrapolated(m, s, true, true, o);
}
static bool r_increase(const struct promql_val *m, const struct promql_mseries *s,
                       const struct promql_expr *c, struct promql_val *a, int64_t t, double *o)
{
    return extrapolated(m, s, true, false, o);
}
static bool r_delta(const struct promql_val *m, const struct promql_mseries *s,
                    const struct promql_expr *c, struct promql_val *a, int64_t t, double *o)
{
    return extrapolated(m, s, false, false, o);
}

static bool instant_value(const struct promql_mseries *s, bool is_rate, double *o)
{
    if (s->n < 2)
        return false;
    const struct promql_point *last = &s->p[s->n - 1], *prev = &s->p[s->n - 2];
    double r;
    if (is_rate && last->v < prev->v)
        r = last->v;
    else
        r = last->v - prev->v;
    int64_t dt = last->t - prev->t;
    if (dt == 0)
        return false;
    if (is_rate)
        r /= (double)dt / 1000.0;
    *o = r;
    return true;
}

static bool r_irate(const struct promql_val *m, const struct promql_mseries *s,
                    const struct promql_expr *c, struct promql_val *a, int64_t t, double *o)
{
    return instant_value(s, true, o);
}
static bool r_idelta(const struct promql_val *m, const struct promql_mseries *s,
                     const struct promql_expr *c, struct promql_val *a, int64_t t, double *o)
{
    return instant_value(s, false, o);
}

static void linreg(const struct promql_mseries *s, int64_t icept_t, double *slope,
                   double *icept)
{
    double n = 0, sx = 0, cx = 0, sy = 0, cy = 0, sxy = 0, cxy = 0, sx2 = 0, cx2 = 0;
    double init = s->p[0].v;
    bool const_y = true;
    for (size_t i = 0; i < s->n; i++) {
        double y = s->p[i].v;
        if (const_y && i > 0 && y != init)
            const_y = false;
        n += 1;
        double x = (double)(s->p[i].t - icept_t) / 1000.0;
        promql_kahan_inc(x, &sx, &cx);
        promql_kahan_inc(y, &sy, &cy);
        promql_kahan_inc(x * y, &sxy, &cxy);
        promql_kahan_inc(x * x, &sx2, &cx2);
    }
    if (const_y) {
        if (isinf(init)) {
            *slope = NAN;
            *icept = NAN;
        } else {
            *slope = 0;
            *icept = init;
        }
        return;
    }
    sx += cx;
    sy += cy;
    sxy += cxy;
    sx2 += cx2;
    double cov = sxy - sx * sy / n;
    double var = sx2 - sx * sx / n;
    *slope = cov / var;
    *icept = sy / n - *slope * sx / n;
}

static bool r_deriv(const struct promql_val *m, const struct promql_mseries *s,
                    const struct promql_expr *c, struct promql_val *a, int64_t t, double *o)
{
    if (s->n < 2)
        return false;
    double slope, icept;
    linreg(s, s->p[0].t, &slope, &icept);
    *o = slope;
    return true;
}

static bool r_predict(const struct promql_val *m, const struct promql_mseries *s,
                      const struct promql_expr *c, struct promql_val *a, int64_t t, double *o)
{
    if (s->n < 2)
        return false;
    double slope, icept;
    linreg(s, t, &slope, &icept);
    *o = slope * a[1].scalar + icept;
    return true;
}

static bool r_changes(const struct promql_val *m, const struct promql_mseries *s,
                      const struct promql_expr *c, struct promql_val *a, int64_t t, double *o)
{
    double n = 0;
    for (size_t i = 1; i < s->n; i++) {
        double x = s->p[i].v, p = s->p[i - 1].v;
        if (!(x == p || (isnan(x) && isnan(p))))
            n++;
    }
    *o = n;
    return true;
}

static bool r_resets(const struct promql_val *m, const struct promql_mseries *s,
                     const struct promql_expr *c, struct promql_val *a, int64_t t, double *o)
{
    double n = 0;
    for (size_t i = 1; i < s->n; i++)
        if (s->p[i].v < s->p[i - 1].v)
            n++;
    *o = n;
    return true;
}

static bool r_sum(const struct promql_val *m, const struct promql_mseries *s,
                  const struct promql_expr *c, struct promql_val *a, int64_t t, double *o)
{
    double sum = 0, comp = 0;
    for (size_t i = 0; i < s->n; i++)
        promql_kahan_inc(s->p[i].v, &sum, &comp);
    *o = sum + comp;
    return true;
}

static bool r_avg(const struct promql_val *m, const struct promql_mseries *s,
                  const struct promql_expr *c, struct promql_val *a, int64_t t, double *o)
{
    double sum = 0, comp = 0;
    for (size_t i = 0; i < s->n; i++)
        promql_kahan_inc(s->p[i].v, &sum, &comp);
    *o = (sum + comp) / (double)s->n;
    return true;
}

static bool r_min(const struct promql_val *m, const struct promql_mseries *s,
                  const struct promql_expr *c, struct promql_val *a, int64_t t, double *o)
{
    double v = s->p[0].v;
    for (size_t i = 1; i < s->n; i++)
        if (s->p[i].v < v || isnan(v))
            v = s->p[i].v;
    *o = v;
    return true;
}

static bool r_max(const struct promql_val *m, const struct promql_mseries *s,
                  const struct promql_expr *c, struct promql_val *a, int64_t t, double *o)
{
    double v = s->p[0].v;
    for (size_t i = 1; i < s->n; i++)
        if (s->p[i].v > v || isnan(v))
            v = s->p[i].v;
    *o = v;
    return true;
}

static bool r_count(const struct promql_val *m, const struct promql_mseries *s,
                    const struct promql_expr *c, struct promql_val *a, int64_t t, double *o)
{
    *o = (double)s->n;
    return true;
}

static bool r_present(const struct promql_val *m, const struct promql_mseries *s,
                      const struct promql_expr *c, struct promql_val *a, int64_t t, double *o)
{
    *o = 1;
    return true;
}

static bool r_last(const struct promql_val *m, const struct promql_mseries *s,
                   const struct promql_expr *c, struct promql_val *a, int64_t t, double *o)
{
    *o = s->p[s->n - 1].v;
    return true;
}

static bool r_first(const struct promql_val *m, const struct promql_mseries *s,
                    const struct promql_expr *c, struct promql_val *a, int64_t t, double *o)
{
    *o = s->p[0].v;
    return true;
}

static bool r_ts_first(const struct promql_val *m, const struct promql_mseries *s,
                       const struct promql_expr *c, struct promql_val *a, int64_t t, double *o)
{
    *o = (double)s->p[0].t / 1000.0;
    return true;
}

static bool r_ts_last(const struct promql_val *m, const struct promql_mseries *s,
                      const struct promql_expr *c, struct promql_val *a, int64_t t, double *o)
{
    *o = (double)s->p[s->n - 1].t / 1000.0;
    return true;
}

/* Timestamp of the newest maximum (max) or minimum (!max); NaN values lose
 * against numbers, as upstream's compareOverTime. */
static double ts_of_extreme(const struct promql_mseries *s, bool max)
{
    double best = s->p[0].v;
    int64_t ts = s->p[0].t;
    for (size_t i = 0; i < s->n; i++) {
        double v = s->p[i].v;
        if ((max ? v >= best : v <= best) || isnan(best)) {
            best = v;
            ts = s->p[i].t;
        }
    }
    return (double)ts / 1000.0;
}

static bool r_ts_max(const struct promql_val *m, const struct promql_mseries *s,
                     const struct promql_expr *c, struct promql_val *a, int64_t t, double *o)
{
    *o = ts_of_extreme(s, true);
    return true;
}

static bool r_ts_min(const struct promql_val *m, const struct promql_mseries *s,
                     const struct promql_expr *c, struct promql_val *a, int64_t t, double *o)
{
    *o = ts_of_extreme(s, false);
    return true;
}

/* Median absolute deviation from the median. The scratch buffer comes from
 * the caller (fn_mad_ot). */
static double mad(const struct promql_mseries *s, double *buf)
{
    for (size_t i = 0; i < s->n; i++)
        buf[i] = s->p[i].v;
    double median = promql_quantile(0.5, buf, s->n);
    for (size_t i = 0; i < s->n; i++)
        buf[i] = fabs(s->p[i].v - median);
    return promql_quantile(0.5, buf, s->n);
}

static bool r_stdvar(const struct promql_val *m, const struct promql_mseries *s,
                     const struct promql_expr *c, struct promql_val *a, int64_t t, double *o)
{
    double count = 0, mean = 0, cm = 0, aux = 0, ca = 0;
    for (size_t i = 0; i < s->n; i++) {
        count++;
        double v = s->p[i].v;
        double delta = v - (mean + cm);
        promql_kahan_inc(delta / count, &mean, &cm);
        promql_kahan_inc(delta * (v - (mean + cm)), &aux, &ca);
    }
    *o = (aux + ca) / count;
    return true;
}

static bool r_stddev(const struct promql_val *m, const struct promql_mseries *s,
                     const struct promql_expr *c, struct promql_val *a, int64_t t, double *o)
{
    r_stdvar(m, s, c, a, t, o);
    *o = sqrt(*o);
    return true;
}

#define RANGE_FN(name, argi, fnp, drop)                                                       \
    static int name(struct promql_eval *ev, const struct promql_expr *call,                   \
                    struct promql_val *a, int64_t t, struct promql_val *out)                  \
    {                                                                                         \
        return over_range(ev, call, a, t, out, argi, fnp, drop);                              \
    }
RANGE_FN(fn_rate, 0, r_rate, true)
RANGE_FN(fn_increase, 0, r_increase, true)
RANGE_FN(fn_delta, 0, r_delta, true)
RANGE_FN(fn_irate, 0, r_irate, true)
RANGE_FN(fn_idelta, 0, r_idelta, true)
RANGE_FN(fn_deriv, 0, r_deriv, true)
RANGE_FN(fn_predict_linear, 0, r_predict, true)
RANGE_FN(fn_changes, 0, r_changes, true)
RANGE_FN(fn_resets, 0, r_resets, true)
RANGE_FN(fn_sum_ot, 0, r_sum, true)
RANGE_FN(fn_avg_ot, 0, r_avg, true)
RANGE_FN(fn_min_ot, 0, r_min, true)
RANGE_FN(fn_max_ot, 0, r_max, true)
RANGE_FN(fn_count_ot, 0, r_count, true)
RANGE_FN(fn_present_ot, 0, r_present, true)
RANGE_FN(fn_last_ot, 0, r_last, false)
RANGE_FN(fn_first_ot, 0, r_first, false)
RANGE_FN(fn_ts_first_ot, 0, r_ts_first, true)
RANGE_FN(fn_ts_last_ot, 0, r_ts_last, true)
RANGE_FN(fn_ts_max_ot, 0, r_ts_max, true)
RANGE_FN(fn_ts_min_ot, 0, r_ts_min, true)
RANGE_FN(fn_stddev_ot, 0, r_stddev, true)
RANGE_FN(fn_stdvar_ot, 0, r_stdvar, true)

static int fn_quantile_ot(struct promql_eval *ev, const struct promql_expr *call,
                          struct promql_val *a, int64_t t, struct promql_val *out)
{
    const struct promql_val *m = &a[1];
    if (vec_alloc(ev, out, m->nmat))
        return BS_ENOMEM;
    for (size_t i = 0; i < m->nmat; i++) {
        double *vals = promql_eval_alloc(ev, m->mat[i].n * sizeof(double));
        if (!vals)
            return BS_ENOMEM;
        for (size_t k = 0; k < m->mat[i].n; k++)
            vals[k] = m->mat[i].p[k].v;
        if (push(ev, out, m->mat[i].ls, promql_quantile(a[0].scalar, vals, m->mat[i].n), t,
                 true))
            return BS_ENOMEM;
    }
    return 0;
}

static int fn_mad_ot(struct promql_eval *ev, const struct promql_expr *call, struct promql_val *a,
                     int64_t t, struct promql_val *out)
{
    const struct promql_val *m = &a[0];
    if (vec_alloc(ev, out, m->nmat))
        return BS_ENOMEM;
    for (size_t i = 0; i < m->nmat; i++) {
        double *buf = promql_eval_alloc(ev, m->mat[i].n * sizeof(double));
        if (!buf)
            return BS_ENOMEM;
        if (push(ev, out, m->mat[i].ls, mad(&m->mat[i], buf), t, true))
            return BS_ENOMEM;
    }
    return promql_eval_check(ev);
}

/* double_exponential_smoothing(v range, sf, tf): Holt's linear smoothing
 * as upstream's funcDoubleExponentialSmoothing (the first trend is the
 * first difference; at least two samples are needed). */
static int fn_des(struct promql_eval *ev, const struct promql_expr *call, struct promql_val *a,
                  int64_t t, struct promql_val *out)
{
    double sf = a[1].scalar, tf = a[2].scalar;
    if (!(sf > 0 && sf < 1))
        return promql_eval_error(ev, BS_EEXEC,
                                 "invalid smoothing factor. Expected: 0 < sf < 1, got: %f", sf);
    if (!(tf > 0 && tf < 1))
        return promql_eval_error(ev, BS_EEXEC,
                                 "invalid trend factor. Expected: 0 < tf < 1, got: %f", tf);
    const struct promql_val *m = &a[0];
    if (vec_alloc(ev, out, m->nmat))
        return BS_ENOMEM;
    for (size_t i = 0; i < m->nmat; i++) {
        const struct promql_mseries *s = &m->mat[i];
        if (s->n < 2)
            continue;
        double s0 = 0, s1 = s->p[0].v, b = s->p[1].v - s->p[0].v;
        for (size_t k = 1; k < s->n; k++) {
            double x = sf * s->p[k].v;
            if (k > 1)
                b = tf * (s1 - s0) + (1 - tf) * b;
            double y = (1 - sf) * (s1 + b);
            s0 = s1;
            s1 = x + y;
        }
        if (push(ev, out, s->ls, s1, t, true))
            return BS_ENOMEM;
    }
    return promql_eval_check(ev);
}

/* ----------------------------------------------------------- sorting */

/* Upstream warns when a range query sorts: range results are ordered by
 * labels anyway. */
static void sort_range_warning(struct promql_eval *ev)
{
    if (promql_eval_step(ev) != 0)
        promql_eval_annotate(ev, false,
                             "sort is ineffective for range queries since results are always "
                             "ordered by labels");
}


/* Natural order of two label values (digit runs compare as numbers,
 * leading zeros skipped), as the natsort package upstream uses: true when
 * a sorts before b. */
static bool natural_less(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), pa = 0, pb = 0;
    for (;;) {
        if (pa >= la)
            return pb < lb;
        if (pb >= lb)
            return false;
        char av = a[pa], bv = b[pb];
        if (av >= '0' && av <= '9' && bv >= '0' && bv <= '9') {
            size_t na = 1, nb = 1;
            while (pa + na < la) {
                char x = a[pa + na];
                if (av == '0') {
                    pa++;
                    av = x;
                    continue;
                }
                if (x >= '0' && x <= '9')
                    na++;
                else
                    break;
            }
            while (pb + nb < lb) {
                char x = b[pb + nb];
                if (bv == '0') {
                    pb++;
                    bv = x;
                    continue;
                }
                if (x >= '0' && x <= '9')
                    nb++;
                else
                    break;
            }
            if (na != nb)
                return na < nb;
            int c = memcmp(a + pa, b + pb, na);
            if (c != 0)
                return c < 0;
            pa += na;
            pb += nb;
            continue;
        }
        if (av == bv) {
            pa++;
            pb++;
            continue;
        }
        return (unsigned char)av < (unsigned char)bv;
    }
}

struct lsort {
    const struct promql_sample *v;
    const char *const *names;
    size_t nnames;
    bool desc;
};

static int cmp_lsort(const void *x, const void *y, void *arg)
{
    const struct lsort *c = arg;
    const struct labels *a = c->v[*(const size_t *)x].ls, *b = c->v[*(const size_t *)y].ls;
    int r = 0;
    for (size_t k = 0; k < c->nnames && r == 0; k++) {
        const char *va = labels_get(a, c->names[k]), *vb = labels_get(b, c->names[k]);
        if (!va)
            va = "";
        if (!vb)
            vb = "";
        if (strcmp(va, vb) == 0)
            continue;
        r = natural_less(va, vb) ? -1 : 1;
    }
    if (r == 0)
        r = labels_cmp(a, b);
    return c->desc ? -r : r;
}

static int fn_sort_by_label(struct promql_eval *ev, const struct promql_expr *call,
                            struct promql_val *a, int64_t t, struct promql_val *out)
{
    sort_range_warning(ev);
    size_t n = a[0].nvec;
    size_t *idx = promql_eval_alloc(ev, (n + 1) * sizeof(size_t));
    const char **names = promql_eval_alloc(ev, (call->nargs + 1) * sizeof(char *));
    if (!idx || !names || vec_alloc(ev, out, n))
        return BS_ENOMEM;
    for (size_t k = 1; k < call->nargs; k++)
        names[k - 1] = a[k].str;
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    struct lsort c = {a[0].vec, names, call->nargs - 1,
                      strcmp(call->func->name, "sort_by_label_desc") == 0};
    qsort_r(idx, n, sizeof(size_t), cmp_lsort, &c);
    for (size_t i = 0; i < n; i++) {
        out->vec[out->nvec] = a[0].vec[idx[i]];
        out->vec[out->nvec++].t = t;
    }
    return 0;
}

struct vsort {
    const struct promql_sample *v;
    bool desc;
};

static int cmp_vsort(const void *x, const void *y, void *arg)
{
    const struct vsort *c = arg;
    size_t i = *(const size_t *)x, j = *(const size_t *)y;
    double a = c->v[i].v, b = c->v[j].v;
    bool an = isnan(a), bn = isnan(b);
    if (an != bn)
        return an ? 1 : -1;
    if (!an && a != b)
        return (c->desc ? a > b : a < b) ? -1 : 1;
    return i < j ? -1 : (i > j);
}

static int fn_sort(struct promql_eval *ev, const struct promql_expr *call, struct promql_val *a,
                   int64_t t, struct promql_val *out)
{
    sort_range_warning(ev);
    size_t n = a[0].nvec;
    size_t *idx = promql_eval_alloc(ev, (n + 1) * sizeof(size_t));
    if (!idx || vec_alloc(ev, out, n))
        return BS_ENOMEM;
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    struct vsort c = {a[0].vec, strcmp(call->func->name, "sort_desc") == 0};
    qsort_r(idx, n, sizeof(size_t), cmp_vsort, &c);
    for (size_t i = 0; i < n; i++) {
        out->vec[out->nvec] = a[0].vec[idx[i]];
        out->vec[out->nvec++].t = t;
    }
    return 0;
}

/* ------------------------------------------------------------ labels */

/* Go regexp.Expand semantics for $1, ${1}, $name, ${name}, $$. */
static int expand_template(const char *tmpl, const char *subject, pcre2_code *re,
                           pcre2_match_data *md, struct bs_buf *b)
{
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    uint32_t ngroups = pcre2_get_ovector_count(md);
    int rc = 0;
    for (const char *p = tmpl; *p && !rc; p++) {
        if (*p != '$') {
            rc = bs_buf_putc(b, *p);
            continue;
        }
        p++;
        if (*p == '$') {
            rc = bs_buf_putc(b, '$');
            continue;
        }
        const char *name = p;
        size_t nlen = 0;
        bool braced = false;
        if (*p == '{') {
            braced = true;
            name = p + 1;
            const char *e = strchr(name, '}');
            if (!e) {
                rc = bs_buf_putc(b, '$');
                p--;
                continue;
            }
            nlen = (size_t)(e - name);
            p = e;
        } else {
            while (name[nlen] == '_' || (name[nlen] >= 'a' && name[nlen] <= 'z') ||
                   (name[nlen] >= 'A' && name[nlen] <= 'Z') ||
                   (name[nlen] >= '0' && name[nlen] <= '9'))
                nlen++;
            if (nlen == 0) {
                rc = bs_buf_putc(b, '$');
                p--;
                continue;
            }
            p += nlen - 1;
        }
        (void)braced;
        int group = -1;
        bool numeric = true;
        for (size_t i = 0; i < nlen; i++)
            numeric &= name[i] >= '0' && name[i] <= '9';
        if (numeric && nlen > 0 && nlen < 9) {
            group = atoi(name);   /* digits only, bounded length */
        } else if (nlen > 0) {
            char nm[128];
            if (nlen < sizeof(nm)) {
                memcpy(nm, name, nlen);
                nm[nlen] = 0;
                group = pcre2_substring_number_from_name(re, (PCRE2_SPTR)nm);
                if (group < 0)
                    group = -1;
            }
        }
        if (group >= 0 && (uint32_t)group < ngroups && ov[2 * group] != PCRE2_UNSET)
            rc = bs_buf_append(b, subject + ov[2 * group], ov[2 * group + 1] - ov[2 * group]);
    }
    if (!rc && !b->data)
        rc = bs_buf_puts(b, "");
    return rc;
}

static int set_label(struct promql_eval *ev, const struct labels *ls, const char *name,
                     const char *value, const struct labels **out)
{
    struct labels_builder lb;
    labels_builder_init(&lb);
    int rc = labels_builder_from(&lb, ls);
    if (!rc)
        rc = labels_builder_set_str(&lb, name, value);
    struct labels res;
    if (!rc)
        rc = labels_builder_labels(&lb, &res, NULL);
    if (!rc && !(*out = promql_eval_labels(ev, &res)))
        rc = BS_ENOMEM;
    labels_builder_fini(&lb);
    return rc;
}

/* label_replace's regex, compiled once per query (promql_eval_node_slot):
 * the argument is a string literal, the same at every step. */
struct lr_regex {
    const char *src;            /* the regex text it was compiled from */
    pcre2_code *re;
    pcre2_match_data *md;
};

static void lr_regex_free(void *p)
{
    struct lr_regex *r = p;
    pcre2_match_data_free(r->md);
    pcre2_code_free(r->re);
    free(r);
}

static int fn_label_replace(struct promql_eval *ev, const struct promql_expr *call,
                            struct promql_val *a, int64_t t, struct promql_val *out)
{
    const char *dst = a[1].str, *repl = a[2].str, *src = a[3].str, *regex = a[4].str;
    if (!labels_name_valid(dst, strlen(dst)))
        return promql_eval_error(ev, BS_EEXEC,
                                 "invalid destination label name in label_replace(): %s", dst);
    void **slot = promql_eval_node_slot(ev, call, lr_regex_free);
    if (!slot)
        return BS_ENOMEM;
    struct lr_regex *lr = *slot;
    if (lr && lr->src != regex) {
        lr_regex_free(lr);
        *slot = lr = NULL;
    }
    if (!lr) {
        size_t plen = strlen(regex) + 16;
        char *pat = promql_eval_alloc(ev, plen);
        if (!pat)
            return BS_ENOMEM;
        snprintf(pat, plen, "^(?:%s)$", regex);
        int errcode;
        PCRE2_SIZE erroff;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
                                       PCRE2_UTF | PCRE2_DOTALL, &errcode, &erroff, NULL);
        if (!re) {
            /* upstream names the expression, not the compiler's complaint */
            return promql_eval_error(ev, BS_EEXEC,
                                     "invalid regular expression in label_replace(): %s", regex);
        }
        pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);   /* best effort */
        lr = calloc(1, sizeof(*lr));
        pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
        if (!lr || !md) {
            free(lr);
            pcre2_match_data_free(md);
            pcre2_code_free(re);
            return BS_ENOMEM;
        }
        *lr = (struct lr_regex){regex, re, md};
        *slot = lr;
    }
    pcre2_code *re = lr->re;
    pcre2_match_data *md = lr->md;
    int rc = vec_alloc(ev, out, a[0].nvec);
    struct bs_buf b;
    bs_buf_init(&b, 1 << 20);
    for (size_t i = 0; !rc && i < a[0].nvec; i++) {
        const struct labels *ls = a[0].vec[i].ls;
        const char *sv = labels_get(ls, src);
        if (!sv)
            sv = "";
        bool drop = a[0].vec[i].drop_name;
        int m = pcre2_match(re, (PCRE2_SPTR)sv, strlen(sv), 0, 0, md, NULL);
        if (m >= 0) {
            bs_buf_reset(&b);
            rc = expand_template(repl, sv, re, md, &b);
            if (!rc)
                rc = set_label(ev, ls, dst, b.data, &ls);
            if (strcmp(dst, LABELS_METRIC_NAME) == 0)
                drop = false;   /* the name was set explicitly: keep it */
        }
        if (!rc)
            rc = push(ev, out, ls, a[0].vec[i].v, t, drop);
    }
    bs_buf_fini(&b);
    return rc;
}

static int fn_label_join(struct promql_eval *ev, const struct promql_expr *call,
                         struct promql_val *a, int64_t t, struct promql_val *out)
{
    const char *dst = a[1].str, *sep = a[2].str;
    if (!labels_name_valid(dst, strlen(dst)))
        return promql_eval_error(ev, BS_EEXEC,
                                 "invalid destination label name in label_join(): %s", dst);
    for (size_t k = 3; k < call->nargs; k++)
        if (!labels_name_valid(a[k].str, strlen(a[k].str)))
            return promql_eval_error(ev, BS_EEXEC,
                                     "invalid source label name in label_join(): %s", a[k].str);
    int rc = vec_alloc(ev, out, a[0].nvec);
    struct bs_buf b;
    bs_buf_init(&b, 1 << 20);
    for (size_t i = 0; !rc && i < a[0].nvec; i++) {
        const struct labels *ls = a[0].vec[i].ls;
        bs_buf_reset(&b);
        rc = bs_buf_puts(&b, "");
        for (size_t k = 3; !rc && k < call->nargs; k++) {
            const char *v = labels_get(ls, a[k].str);
            if (k > 3)
                rc = bs_buf_puts(&b, sep);
            if (!rc && v)
                rc = bs_buf_puts(&b, v);
        }
        if (!rc)
            rc = set_label(ev, ls, dst, b.data, &ls);
        if (!rc)
            rc = push(ev, out, ls, a[0].vec[i].v, t,
                      a[0].vec[i].drop_name && strcmp(dst, LABELS_METRIC_NAME) != 0);
    }
    bs_buf_fini(&b);
    return rc;
}

/* ------------------------------------------------- classic histograms
 *
 * histogram_quantile, histogram_quantiles and histogram_fraction over
 * classic buckets: the input series are grouped by their labels without
 * "le" (the metric name included: it is dropped later, by delayed name
 * removal), each group is one histogram. A series whose "le" does not
 * parse is skipped with a warning, as upstream. */

struct bucket {
    double le, count;
};

static int cmp_bucket(const void *x, const void *y)
{
    const struct bucket *a = x, *b = y;
    return a->le < b->le ? -1 : a->le > b->le;
}

/* Sort, check the +Inf bucket and merge equal bounds. Returns the new
 * count, or 0 when the buckets do not form a histogram. */
static size_t buckets_prepare(struct bucket *b, size_t n)
{
    if (n == 0)
        return 0;
    qsort(b, n, sizeof(*b), cmp_bucket);
    if (!isinf(b[n - 1].le) || b[n - 1].le < 0)
        return 0;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (m > 0 && b[m - 1].le == b[i].le)
            b[m - 1].count += b[i].count;
        else
            b[m++] = b[i];
    }
    return m;
}

/* Upstream's bucketQuantile. *forced tells whether the counts had to be
 * made monotonic (small float precision errors, relative 1e-12, are
 * corrected silently). */
static double bucket_quantile(double q, struct bucket *b, size_t n, bool *forced)
{
    *forced = false;
    if (isnan(q))
        return NAN;
    if (q < 0)
        return -INFINITY;
    if (q > 1)
        return INFINITY;
    n = buckets_prepare(b, n);
    if (n == 0)
        return NAN;
    double prev = b[0].count;
    for (size_t i = 1; i < n; i++) {
        double cur = b[i].count, delta = fabs(cur - prev);
        if (delta == 0)
            continue;
        if (delta / cur <= 1e-12)
            b[i].count = prev;
        else
            prev = cur;
    }
    double max = b[0].count;
    for (size_t i = 1; i < n; i++) {
        if (b[i].count > max) {
            max = b[i].count;
        } else if (b[i].count < max) {
            b[i].count = max;
            *forced = true;
        }
    }
    if (n < 2)
        return NAN;
    double obs = b[n - 1].count;
    if (obs == 0)
        return NAN;
    double rank = q * obs;
    size_t k = 0;
    while (k < n - 1 && b[k].count < rank)
        k++;
    if (k == n - 1)
        return b[n - 2].le;
    if (k == 0 && b[0].le <= 0)
        return b[0].le;
    double start = 0, end = b[k].le, count = b[k].count;
    if (k > 0) {
        start = b[k - 1].le;
        count -= b[k - 1].count;
        rank -= b[k - 1].count;
    }
    return start + (end - start) * (rank / count);
}

/* The fraction of observations in [lower, upper] (upstream's
 * BucketFraction): linear interpolation inside a bucket; the lowest bucket
 * starts at 0 when its bound is positive; a value inside a bucket of
 * infinite width counts as that bucket's far end (so such a bucket
 * contributes nothing to a partial range). */
static double bucket_fraction(double lower, double upper, struct bucket *b, size_t n)
{
    n = buckets_prepare(b, n);
    if (n == 0)
        return NAN;
    double count = b[n - 1].count;
    if (count == 0 || isnan(lower) || isnan(upper))
        return NAN;
    if (lower >= upper)
        return 0;
    double rank = 0, lr = 0, ur = 0;
    bool ls = false, us = false;
    for (size_t i = 0; i < n; i++) {
        double lo = i > 0 ? b[i - 1].le : (b[0].le > 0 ? 0 : -INFINITY), hi = b[i].le;
        double in = b[i].count - rank;
        if (!ls && lo >= lower) {
            lr = rank;
            ls = true;
        }
        if (!us && lo >= upper) {
            ur = rank;
            us = true;
        }
        if (ls && us)
            break;
        for (int side = 0; side < 2; side++) {
            double v = side ? upper : lower;
            bool *set = side ? &us : &ls;
            double *r = side ? &ur : &lr;
            if (*set || !(lo < v && hi > v))
                continue;
            if (isinf(lo))
                *r = rank + in;
            else if (isinf(hi))
                *r = rank;
            else
                *r = rank + in * (v - lo) / (hi - lo);
            *set = true;
        }
        if (ls && us)
            break;
        rank = b[i].count;
    }
    if (!ls || lr > count)
        lr = count;
    if (!us || ur > count)
        ur = count;
    return (ur - lr) / count;
}

struct hgroups {
    const struct labels **ls;   /* group labels: the input's without "le" */
    size_t *of;                 /* input index -> group, SIZE_MAX: skipped */
    double *les;
    struct bucket *bk;          /* scratch, one per input */
    size_t n;
};

static int hgroups_build(struct promql_eval *ev, const struct promql_val *v, struct hgroups *g)
{
    size_t n = v->nvec;
    g->ls = promql_eval_alloc(ev, (n + 1) * sizeof(*g->ls));
    g->of = promql_eval_alloc(ev, (n + 1) * sizeof(size_t));
    g->les = promql_eval_alloc(ev, (n + 1) * sizeof(double));
    g->bk = promql_eval_alloc(ev, (n + 1) * sizeof(*g->bk));
    g->n = 0;
    if (!g->ls || !g->of || !g->les || !g->bk)
        return BS_ENOMEM;
    struct labels_builder lb;
    labels_builder_init(&lb);
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        g->of[i] = SIZE_MAX;
        const char *le = labels_get(v->vec[i].ls, "le");
        if (!le || bs_float_parse(le, strlen(le), false, &g->les[i]) != 0) {
            const char *name = labels_get(v->vec[i].ls, LABELS_METRIC_NAME);
            if (name && *name)
                promql_eval_annotate(ev, false,
                                     "bucket label \"le\" is missing or has a malformed value of "
                                     "\"%s\" for metric name \"%s\"",
                                     le ? le : "", name);
            else
                promql_eval_annotate(ev, false,
                                     "bucket label \"le\" is missing or has a malformed value of "
                                     "\"%s\"",
                                     le ? le : "");
            continue;
        }
        labels_builder_reset(&lb);
        struct labels res;
        if ((rc = labels_builder_from(&lb, v->vec[i].ls)))
            break;
        labels_builder_del(&lb, "le");
        if ((rc = labels_builder_labels(&lb, &res, NULL)))
            break;
        size_t k;
        for (k = 0; k < g->n; k++)
            if (labels_equal(g->ls[k], &res))
                break;
        if (k == g->n) {
            if (!(g->ls[g->n] = promql_eval_labels(ev, &res))) {
                rc = BS_ENOMEM;
                break;
            }
            g->n++;
        }
        g->of[i] = k;
    }
    labels_builder_fini(&lb);
    return rc;
}

static size_t hgroups_buckets(const struct promql_val *v, struct hgroups *g, size_t k)
{
    size_t nb = 0;
    for (size_t i = 0; i < v->nvec; i++)
        if (g->of[i] == k)
            g->bk[nb++] = (struct bucket){g->les[i], v->vec[i].v};
    return nb;
}

static void check_quantile(struct promql_eval *ev, double q)
{
    if (isnan(q) || q < 0 || q > 1) {
        char num[BS_FLOAT_FMT_MAX];
        bs_float_format_short(q, num);
        promql_eval_annotate(ev, false, "quantile value should be between 0 and 1, got %s", num);
    }
}

static void monotonicity_info(struct promql_eval *ev, const struct labels *ls)
{
    const char *name = labels_get(ls, LABELS_METRIC_NAME);
    if (name && *name)
        promql_eval_annotate(ev, true,
                             "input to histogram_quantile needed to be fixed for monotonicity (see "
                             "https://prometheus.io/docs/prometheus/latest/querying/functions/"
                             "#histogram_quantile) for metric name \"%s\"",
                             name);
    else
        promql_eval_annotate(ev, true,
                             "input to histogram_quantile needed to be fixed for monotonicity (see "
                             "https://prometheus.io/docs/prometheus/latest/querying/functions/"
                             "#histogram_quantile)");
}

static int fn_histogram_quantile(struct promql_eval *ev, const struct promql_expr *call,
                                 struct promql_val *a, int64_t t, struct promql_val *out)
{
    const struct promql_val *v = &a[1];
    double q = a[0].scalar;
    check_quantile(ev, q);
    struct hgroups g;
    if (hgroups_build(ev, v, &g) || vec_alloc(ev, out, v->nvec))
        return BS_ENOMEM;
    for (size_t k = 0; k < g.n; k++) {
        bool forced;
        double r = bucket_quantile(q, g.bk, hgroups_buckets(v, &g, k), &forced);
        if (forced)
            monotonicity_info(ev, g.ls[k]);
        if (push(ev, out, g.ls[k], r, t, true))
            return BS_ENOMEM;
    }
    return promql_eval_check(ev);
}

/* histogram_quantiles(v, "label", q...): one output per group and
 * quantile, the quantile in the given label (experimental upstream). */
static int fn_histogram_quantiles(struct promql_eval *ev, const struct promql_expr *call,
                                  struct promql_val *a, int64_t t, struct promql_val *out)
{
    const struct promql_val *v = &a[0];
    const char *qlabel = a[1].str;
    size_t nq = call->nargs - 2;
    for (size_t i = 0; i < nq; i++)
        check_quantile(ev, a[2 + i].scalar);
    struct hgroups g;
    if (hgroups_build(ev, v, &g) || vec_alloc(ev, out, v->nvec * nq))
        return BS_ENOMEM;
    for (size_t k = 0; k < g.n; k++)
        if (labels_get(g.ls[k], qlabel))
            return promql_eval_error(ev, BS_EEXEC,
                                     "histogram_quantiles: label \"%s\" already exists in the "
                                     "input series",
                                     qlabel);
    for (size_t i = 0; i < nq; i++) {
        double q = a[2 + i].scalar;
        /* The label value as OpenMetrics writes floats: "0.0", "1.0". */
        char num[BS_FLOAT_FMT_MAX];
        size_t len = bs_float_format_short(q, num);
        if (!strpbrk(num, ".eEIN"))
            memcpy(num + len, ".0", 3);
        for (size_t k = 0; k < g.n; k++) {
            bool forced;
            double r = bucket_quantile(q, g.bk, hgroups_buckets(v, &g, k), &forced);
            if (forced)
                monotonicity_info(ev, g.ls[k]);
            const struct labels *ls;
            if (set_label(ev, g.ls[k], qlabel, num, &ls) || push(ev, out, ls, r, t, true))
                return BS_ENOMEM;
        }
    }
    return promql_eval_check(ev);
}

static int fn_histogram_fraction(struct promql_eval *ev, const struct promql_expr *call,
                                 struct promql_val *a, int64_t t, struct promql_val *out)
{
    const struct promql_val *v = &a[2];
    struct hgroups g;
    if (hgroups_build(ev, v, &g) || vec_alloc(ev, out, v->nvec))
        return BS_ENOMEM;
    for (size_t k = 0; k < g.n; k++) {
        double r = bucket_fraction(a[0].scalar, a[1].scalar, g.bk, hgroups_buckets(v, &g, k));
        if (push(ev, out, g.ls[k], r, t, true))
            return BS_ENOMEM;
    }
    return promql_eval_check(ev);
}

/* ------------------------------------------------------------ dates */

static int fn_date(struct promql_eval *ev, const struct promql_expr *call, struct promql_val *a,
                   int64_t t, struct promql_val *out)
{
    const char *n = call->func->name;
    struct promql_sample now = {&empty_labels, (double)t / 1000.0, t, false};
    const struct promql_sample *in = call->nargs ? a[0].vec : &now;
    size_t nin = call->nargs ? a[0].nvec : 1;
    if (vec_alloc(ev, out, nin))
        return BS_ENOMEM;
    for (size_t i = 0; i < nin; i++) {
        double v = in[i].v;
        double r;
        if (!isfinite(v) || fabs(v) > 1e15) {
            r = NAN;
        } else {
            time_t secs = (time_t)floor(v);
            struct tm tm;
            gmtime_r(&secs, &tm);
            if (strcmp(n, "minute") == 0) r = tm.tm_min;
            else if (strcmp(n, "hour") == 0) r = tm.tm_hour;
            else if (strcmp(n, "day_of_week") == 0) r = tm.tm_wday;
            else if (strcmp(n, "day_of_month") == 0) r = tm.tm_mday;
            else if (strcmp(n, "day_of_year") == 0) r = tm.tm_yday + 1;
            else if (strcmp(n, "month") == 0) r = tm.tm_mon + 1;
            else if (strcmp(n, "year") == 0) r = tm.tm_year + 1900;
            else {
                static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
                int y = tm.tm_year + 1900;
                bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
                r = days[tm.tm_mon] + (tm.tm_mon == 1 && leap);
            }
        }
        if (push(ev, out, in[i].ls, r, t, true))
            return BS_ENOMEM;
    }
    return 0;
}

/* ------------------------------------------------------------ table */

#define S PROMQL_VALUE_SCALAR
#define V PROMQL_VALUE_VECTOR
#define M PROMQL_VALUE_MATRIX
#define STR PROMQL_VALUE_STRING

static const struct promql_func funcs[] = {
    {"abs", {V}, 1, 0, V, fn_math, fabs},
    {"absent", {V}, 1, 0, V, fn_absent, NULL},
    {"absent_over_time", {M}, 1, 0, V, fn_absent, NULL},
    {"acos", {V}, 1, 0, V, fn_math, acos},
    {"acosh", {V}, 1, 0, V, fn_math, acosh},
    {"asin", {V}, 1, 0, V, fn_math, asin},
    {"asinh", {V}, 1, 0, V, fn_math, asinh},
    {"atan", {V}, 1, 0, V, fn_math, atan},
    {"atanh", {V}, 1, 0, V, fn_math, atanh},
    {"avg_over_time", {M}, 1, 0, V, fn_avg_ot, NULL},
    {"ceil", {V}, 1, 0, V, fn_math, ceil},
    {"changes", {M}, 1, 0, V, fn_changes, NULL},
    {"clamp", {V, S, S}, 3, 0, V, fn_clamp, NULL},
    {"clamp_max", {V, S}, 2, 0, V, fn_clamp, NULL},
    {"clamp_min", {V, S}, 2, 0, V, fn_clamp, NULL},
    {"cos", {V}, 1, 0, V, fn_math, cos},
    {"cosh", {V}, 1, 0, V, fn_math, cosh},
    {"count_over_time", {M}, 1, 0, V, fn_count_ot, NULL},
    {"day_of_month", {V}, 1, 1, V, fn_date, NULL},
    {"day_of_week", {V}, 1, 1, V, fn_date, NULL},
    {"day_of_year", {V}, 1, 1, V, fn_date, NULL},
    {"days_in_month", {V}, 1, 1, V, fn_date, NULL},
    {"deg", {V}, 1, 0, V, fn_math, m_deg},
    {"delta", {M}, 1, 0, V, fn_delta, NULL},
    {"deriv", {M}, 1, 0, V, fn_deriv, NULL},
    {"end", {S}, 0, 0, S, fn_query_time, NULL},
    {"double_exponential_smoothing", {M, S, S}, 3, 0, V, fn_des, NULL},
    {"exp", {V}, 1, 0, V, fn_math, exp},
    {"first_over_time", {M}, 1, 0, V, fn_first_ot, NULL},
    {"floor", {V}, 1, 0, V, fn_math, floor},
    {"histogram_avg", {V}, 1, 0, V, NULL, NULL},
    {"histogram_count", {V}, 1, 0, V, NULL, NULL},
    {"histogram_fraction", {S, S, V}, 3, 0, V, fn_histogram_fraction, NULL},
    {"histogram_quantile", {S, V}, 2, 0, V, fn_histogram_quantile, NULL},
    {"histogram_quantiles", {V, STR, S, S}, 4, -1, V, fn_histogram_quantiles, NULL},
    {"histogram_stddev", {V}, 1, 0, V, NULL, NULL},
    {"histogram_stdvar", {V}, 1, 0, V, NULL, NULL},
    {"histogram_sum", {V}, 1, 0, V, NULL, NULL},
    {"hour", {V}, 1, 1, V, fn_date, NULL},
    {"idelta", {M}, 1, 0, V, fn_idelta, NULL},
    {"increase", {M}, 1, 0, V, fn_increase, NULL},
    {"info", {V, V}, 2, 1, V, NULL, NULL},
    {"irate", {M}, 1, 0, V, fn_irate, NULL},
    {"label_join", {V, STR, STR, STR}, 4, -1, V, fn_label_join, NULL},
    {"label_replace", {V, STR, STR, STR, STR}, 5, 0, V, fn_label_replace, NULL},
    {"last_over_time", {M}, 1, 0, V, fn_last_ot, NULL},
    {"ln", {V}, 1, 0, V, fn_math, log},
    {"log10", {V}, 1, 0, V, fn_math, log10},
    {"log2", {V}, 1, 0, V, fn_math, log2},
    {"mad_over_time", {M}, 1, 0, V, fn_mad_ot, NULL},
    {"max_of", {S, S}, 2, 0, S, fn_min_max_of, NULL},
    {"max_over_time", {M}, 1, 0, V, fn_max_ot, NULL},
    {"min_of", {S, S}, 2, 0, S, fn_min_max_of, NULL},
    {"min_over_time", {M}, 1, 0, V, fn_min_ot, NULL},
    {"minute", {V}, 1, 1, V, fn_date, NULL},
    {"month", {V}, 1, 1, V, fn_date, NULL},
    {"pi", {S}, 0, 0, S, fn_pi, NULL},
    {"predict_linear", {M, S}, 2, 0, V, fn_predict_linear, NULL},
    {"present_over_time", {M}, 1, 0, V, fn_present_ot, NULL},
    {"quantile_over_time", {S, M}, 2, 0, V, fn_quantile_ot, NULL},
    {"rad", {V}, 1, 0, V, fn_math, m_rad},
    {"range", {S}, 0, 0, S, fn_query_time, NULL},
    {"rate", {M}, 1, 0, V, fn_rate, NULL},
    {"resets", {M}, 1, 0, V, fn_resets, NULL},
    {"round", {V, S}, 2, 1, V, fn_round, NULL},
    {"scalar", {V}, 1, 0, S, fn_scalar, NULL},
    {"sgn", {V}, 1, 0, V, fn_math, m_sgn},
    {"sin", {V}, 1, 0, V, fn_math, sin},
    {"sinh", {V}, 1, 0, V, fn_math, sinh},
    {"sort", {V}, 1, 0, V, fn_sort, NULL},
    {"sort_by_label", {V, STR}, 2, -1, V, fn_sort_by_label, NULL},
    {"sort_by_label_desc", {V, STR}, 2, -1, V, fn_sort_by_label, NULL},
    {"sort_desc", {V}, 1, 0, V, fn_sort, NULL},
    {"sqrt", {V}, 1, 0, V, fn_math, sqrt},
    {"start", {S}, 0, 0, S, fn_query_time, NULL},
    {"step", {S}, 0, 0, S, fn_query_time, NULL},
    {"stddev_over_time", {M}, 1, 0, V, fn_stddev_ot, NULL},
    {"stdvar_over_time", {M}, 1, 0, V, fn_stdvar_ot, NULL},
    {"sum_over_time", {M}, 1, 0, V, fn_sum_ot, NULL},
    {"tan", {V}, 1, 0, V, fn_math, tan},
    {"tanh", {V}, 1, 0, V, fn_math, tanh},
    {"time", {S}, 0, 0, S, fn_time, NULL},
    {"timestamp", {V}, 1, 0, V, fn_timestamp, NULL},
    {"ts_of_first_over_time", {M}, 1, 0, V, fn_ts_first_ot, NULL},
    {"ts_of_last_over_time", {M}, 1, 0, V, fn_ts_last_ot, NULL},
    {"ts_of_max_over_time", {M}, 1, 0, V, fn_ts_max_ot, NULL},
    {"ts_of_min_over_time", {M}, 1, 0, V, fn_ts_min_ot, NULL},
    {"vector", {S}, 1, 0, V, fn_vector, NULL},
    {"year", {V}, 1, 1, V, fn_date, NULL},
};

const struct promql_func *promql_func_lookup(const char *name, size_t n)
{
    for (size_t i = 0; i < sizeof(funcs) / sizeof(funcs[0]); i++)
        if (strlen(funcs[i].name) == n && memcmp(funcs[i].name, name, n) == 0)
            return &funcs[i];
    return NULL;
}
