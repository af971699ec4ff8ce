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
 * fit. Functions that compute new values drop __name__; last_over_time,
 * sort*, label_replace and label_join keep it.
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

static int push(struct promql_eval *ev, struct promql_val *out, const struct labels *ls, double v,
                int64_t t, bool drop_name)
{
    if (drop_name && !(ls = promql_eval_drop_name(ev, ls)))
        return BS_ENOMEM;
    out->vec[out->nvec++] = (struct promql_sample){ls, v, t};
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

/* Labels for absent(): the equality matchers of a selector argument. */
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
    const char **dup = promql_eval_alloc(ev, (arg->nmatchers + 1) * sizeof(char *));
    size_t ndup = 0;
    if (!dup) {
        labels_builder_fini(&lb);
        return NULL;
    }
    for (size_t i = 0; i < arg->nmatchers; i++) {
        const struct promql_matcher_ast *m = &arg->matchers[i];
        if (m->type != LABELS_MATCH_EQ || strcmp(m->name, LABELS_METRIC_NAME) == 0)
            continue;
        if (labels_builder_get(&lb, m->name))
            dup[ndup++] = m->name;
        else
            labels_builder_set_str(&lb, m->name, m->value);
    }
    for (size_t i = 0; i < ndup; i++)
        labels_builder_del(&lb, dup[i]);
    struct labels out;
    const struct labels *res = NULL;
    if (labels_builder_labels(&lb, &out, NULL) == 0)
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

static int over_range(struct promql_eval *ev, const struct promql_expr *call, struct promql_val *a,
                      int64_t t, struct promql_val *out, size_t argi, range_fn f, bool drop)
{
    const struct promql_val *m = &a[argi];
    if (vec_alloc(ev, out, m->nmat))
        return BS_ENOMEM;
    for (size_t i = 0; i < m->nmat; i++) {
        double v;
        if (!f(m, &m->mat[i], call, a, t, &v))
            continue;
        if (push(ev, out, m->mat[i].ls, v, t, drop))
            return BS_ENOMEM;
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
    if (counter) {
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

/* ----------------------------------------------------------- sorting */

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

static int fn_label_replace(struct promql_eval *ev, const struct promql_expr *call,
                            struct promql_val *a, int64_t t, struct promql_val *out)
{
    const char *dst = a[1].str, *repl = a[2].str, *src = a[3].str, *regex = a[4].str;
    if (!labels_name_valid(dst, strlen(dst)))
        return promql_eval_error(ev, BS_EEXEC,
                                 "invalid destination label name in label_replace(): %s", dst);
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
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(errcode, msg, sizeof(msg));
        return promql_eval_error(ev, BS_EEXEC, "invalid regular expression in label_replace(): %s",
                                 (const char *)msg);
    }
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    int rc = md ? vec_alloc(ev, out, a[0].nvec) : BS_ENOMEM;
    struct bs_buf b;
    bs_buf_init(&b, 1 << 20);
    for (size_t i = 0; !rc && i < a[0].nvec; i++) {
        const struct labels *ls = a[0].vec[i].ls;
        const char *sv = labels_get(ls, src);
        if (!sv)
            sv = "";
        int m = pcre2_match(re, (PCRE2_SPTR)sv, strlen(sv), 0, 0, md, NULL);
        if (m >= 0) {
            bs_buf_reset(&b);
            rc = expand_template(repl, sv, re, md, &b);
            if (!rc)
                rc = set_label(ev, ls, dst, b.data, &ls);
        }
        if (!rc)
            rc = push(ev, out, ls, a[0].vec[i].v, t, false);
    }
    bs_buf_fini(&b);
    pcre2_match_data_free(md);
    pcre2_code_free(re);
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
            rc = push(ev, out, ls, a[0].vec[i].v, t, false);
    }
    bs_buf_fini(&b);
    return rc;
}

/* ------------------------------------------------- histogram_quantile */

struct bucket {
    double le, count;
};

static int cmp_bucket(const void *x, const void *y)
{
    const struct bucket *a = x, *b = y;
    return a->le < b->le ? -1 : a->le > b->le;
}

static double bucket_quantile(double q, struct bucket *b, size_t n)
{
    if (isnan(q))
        return NAN;
    if (q < 0)
        return -INFINITY;
    if (q > 1)
        return INFINITY;
    qsort(b, n, sizeof(*b), cmp_bucket);
    if (n == 0 || !isinf(b[n - 1].le) || b[n - 1].le < 0)
        return NAN;
    /* coalesce equal bounds */
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (m > 0 && b[m - 1].le == b[i].le)
            b[m - 1].count += b[i].count;
        else
            b[m++] = b[i];
    }
    n = m;
    /* force monotonic counts */
    double max = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        if (b[i].count > max)
            max = b[i].count;
        else
            b[i].count = max;
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

static int fn_histogram_quantile(struct promql_eval *ev, const struct promql_expr *call,
                                 struct promql_val *a, int64_t t, struct promql_val *out)
{
    const struct promql_val *v = &a[1];
    size_t n = v->nvec;
    const struct labels **gl = promql_eval_alloc(ev, (n + 1) * sizeof(*gl));
    size_t *gidx = promql_eval_alloc(ev, (n + 1) * sizeof(size_t));
    double *les = promql_eval_alloc(ev, (n + 1) * sizeof(double));
    struct bucket *bk = promql_eval_alloc(ev, (n + 1) * sizeof(*bk));
    if (!gl || !gidx || !les || !bk || vec_alloc(ev, out, n))
        return BS_ENOMEM;
    size_t ng = 0;
    struct labels_builder lb;
    labels_builder_init(&lb);
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        gidx[i] = SIZE_MAX;
        const char *le = labels_get(v->vec[i].ls, "le");
        if (!le || bs_float_parse(le, strlen(le), false, &les[i]) != 0)
            continue;
        labels_builder_reset(&lb);
        struct labels res;
        if ((rc = labels_builder_from(&lb, v->vec[i].ls)))
            break;
        labels_builder_del(&lb, "le");
        labels_builder_del(&lb, LABELS_METRIC_NAME);
        if ((rc = labels_builder_labels(&lb, &res, NULL)))
            break;
        size_t g;
        for (g = 0; g < ng; g++)
            if (labels_equal(gl[g], &res))
                break;
        if (g == ng) {
            if (!(gl[ng] = promql_eval_labels(ev, &res))) {
                rc = BS_ENOMEM;
                break;
            }
            ng++;
        }
        gidx[i] = g;
    }
    labels_builder_fini(&lb);
    if (rc)
        return rc;
    for (size_t g = 0; g < ng; g++) {
        size_t nb = 0;
        for (size_t i = 0; i < n; i++)
            if (gidx[i] == g)
                bk[nb++] = (struct bucket){les[i], v->vec[i].v};
        if (push(ev, out, gl[g], bucket_quantile(a[0].scalar, bk, nb), t, false))
            return BS_ENOMEM;
    }
    return promql_eval_check(ev);
}

/* ------------------------------------------------------------ dates */

static int fn_date(struct promql_eval *ev, const struct promql_expr *call, struct promql_val *a,
                   int64_t t, struct promql_val *out)
{
    const char *n = call->func->name;
    struct promql_sample now = {&empty_labels, (double)t / 1000.0, t};
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
    {"double_exponential_smoothing", {M, S, S}, 3, 0, V, NULL, NULL},
    {"exp", {V}, 1, 0, V, fn_math, exp},
    {"floor", {V}, 1, 0, V, fn_math, floor},
    {"histogram_avg", {V}, 1, 0, V, NULL, NULL},
    {"histogram_count", {V}, 1, 0, V, NULL, NULL},
    {"histogram_fraction", {S, S, V}, 3, 0, V, NULL, NULL},
    {"histogram_quantile", {S, V}, 2, 0, V, fn_histogram_quantile, NULL},
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
    {"mad_over_time", {M}, 1, 0, V, NULL, NULL},
    {"max_over_time", {M}, 1, 0, V, fn_max_ot, NULL},
    {"min_over_time", {M}, 1, 0, V, fn_min_ot, NULL},
    {"minute", {V}, 1, 1, V, fn_date, NULL},
    {"month", {V}, 1, 1, V, fn_date, NULL},
    {"pi", {S}, 0, 0, S, fn_pi, NULL},
    {"predict_linear", {M, S}, 2, 0, V, fn_predict_linear, NULL},
    {"present_over_time", {M}, 1, 0, V, fn_present_ot, NULL},
    {"quantile_over_time", {S, M}, 2, 0, V, fn_quantile_ot, NULL},
    {"rad", {V}, 1, 0, V, fn_math, m_rad},
    {"rate", {M}, 1, 0, V, fn_rate, NULL},
    {"resets", {M}, 1, 0, V, fn_resets, NULL},
    {"round", {V, S}, 2, 1, V, fn_round, NULL},
    {"scalar", {V}, 1, 0, S, fn_scalar, NULL},
    {"sgn", {V}, 1, 0, V, fn_math, m_sgn},
    {"sin", {V}, 1, 0, V, fn_math, sin},
    {"sinh", {V}, 1, 0, V, fn_math, sinh},
    {"sort", {V}, 1, 0, V, fn_sort, NULL},
    {"sort_by_label", {V, STR}, 2, -1, V, NULL, NULL},
    {"sort_by_label_desc", {V, STR}, 2, -1, V, NULL, NULL},
    {"sort_desc", {V}, 1, 0, V, fn_sort, NULL},
    {"sqrt", {V}, 1, 0, V, fn_math, sqrt},
    {"stddev_over_time", {M}, 1, 0, V, fn_stddev_ot, NULL},
    {"stdvar_over_time", {M}, 1, 0, V, fn_stdvar_ot, NULL},
    {"sum_over_time", {M}, 1, 0, V, fn_sum_ot, NULL},
    {"tan", {V}, 1, 0, V, fn_math, tan},
    {"tanh", {V}, 1, 0, V, fn_math, tanh},
    {"time", {S}, 0, 0, S, fn_time, NULL},
    {"timestamp", {V}, 1, 0, V, fn_timestamp, NULL},
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
