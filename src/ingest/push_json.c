/* SPDX-License-Identifier: Apache-2.0
 *
 * GET /api/v1/metrics: every group as the Pushgateway 1.5 lists it. Each
 * group is one JSON object whose keys come out sorted, as Go encodes maps:
 * its metric families by name, "labels" (the grouping labels),
 * "last_push_successful", "push_failure_time_seconds" and
 * "push_time_seconds". A family is {"time_stamp", "type", "help" (omitted
 * when empty), "metrics"}; a metric is {"labels", "value"}, or for
 * histograms {"buckets", "count", "labels", "sum"} and for summaries
 * {"count", "labels", "quantiles", "sum"}. Numbers are strings formatted as
 * Go's %v prints a float64; times are RFC 3339 with nanoseconds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ingest/push_store.h"

static int put_str(struct bs_buf *b, const char *s)
{
    return bs_json_string(b, s, strlen(s));
}

static int put_num(struct bs_buf *b, double v)
{
    char num[32];
    bs_float_format_short(v, num);
    return bs_buf_printf(b, "\"%s\"", num);
}

/* RFC 3339 with up to nine fraction digits, trailing zeros dropped, as Go's
 * time.RFC3339Nano. */
static int put_time(struct bs_buf *b, int64_t ns)
{
    time_t sec = (time_t)(ns / 1000000000);
    long frac = (long)(ns % 1000000000);
    if (frac < 0) {
        frac += 1000000000;
        sec--;
    }
    struct tm tm;
    gmtime_r(&sec, &tm);
    char f[16] = "";
    if (frac) {
        snprintf(f, sizeof(f), ".%09ld", frac);
        size_t n = strlen(f);
        while (n > 1 && f[n - 1] == '0')
            f[--n] = '\0';
    }
    return bs_buf_printf(b, "\"%04d-%02d-%02dT%02d:%02d:%02d%sZ\"", tm.tm_year + 1900,
                         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, f);
}

/* {"name":"value",...} of a series' labels, __name__ and skip excluded. */
static int put_labels(struct bs_buf *b, const struct push_series *s, const char *skip)
{
    int rc = bs_buf_putc(b, '{');
    bool first = true;
    for (size_t i = 0; rc == 0 && i < s->all.n; i++) {
        const struct label *l = &s->all.v[i];
        if (!strcmp(l->name, LABELS_METRIC_NAME) || (skip && !strcmp(l->name, skip)))
            continue;
        if (!first)
            rc = bs_buf_putc(b, ',');
        first = false;
        if (rc == 0)
            rc = put_str(b, l->name);
        if (rc == 0)
            rc = bs_buf_putc(b, ':');
        if (rc == 0)
            rc = put_str(b, l->value);
    }
    return rc ? rc : bs_buf_putc(b, '}');
}

/* Same labels apart from skip (and __name__)? */
static bool same_metric(const struct push_series *a, const struct push_series *b, const char *skip)
{
    size_t i = 0, j = 0;
    for (;;) {
        while (i < a->all.n && (!strcmp(a->all.v[i].name, LABELS_METRIC_NAME) ||
                                !strcmp(a->all.v[i].name, skip)))
            i++;
        while (j < b->all.n && (!strcmp(b->all.v[j].name, LABELS_METRIC_NAME) ||
                                !strcmp(b->all.v[j].name, skip)))
            j++;
        if (i == a->all.n || j == b->all.n)
            return i == a->all.n && j == b->all.n;
        if (strcmp(a->all.v[i].name, b->all.v[j].name) ||
            strcmp(a->all.v[i].value, b->all.v[j].value))
            return false;
        i++, j++;
    }
}

struct bound {
    const char *key;      /* formatted bound */
    double v;
};

static int bound_cmp(const void *a, const void *b)
{
    return strcmp(((const struct bound *)a)->key, ((const struct bound *)b)->key);
}

/* Histogram or summary metrics: group the family's series by labels
 * without le / quantile. */
static int put_complex(struct bs_buf *b, const struct push_family *f)
{
    bool hist = f->type == EXPFMT_TYPE_HISTOGRAM;
    const char *skip = hist ? "le" : "quantile";
    size_t nlen = strlen(f->name);
    bool *done = calloc(f->n ? f->n : 1, sizeof(*done));
    char *keys = malloc(f->n * 32 + 1);
    struct bound *bv = malloc((f->n ? f->n : 1) * sizeof(*bv));
    int rc = done && keys && bv ? 0 : BS_ENOMEM;
    bool first = true;
    for (size_t i = 0; rc == 0 && i < f->n; i++) {
        if (done[i])
            continue;
        const struct push_series *head = f->s[i];
        double count = 0, sum = 0;
        size_t nb = 0;
        for (size_t k = i; k < f->n; k++) {
            const struct push_series *s = f->s[k];
            if (done[k] || !same_metric(head, s, skip))
                continue;
            done[k] = true;
            const char *name = labels_get(&s->all, LABELS_METRIC_NAME);
            const char *suf = name && strlen(name) >= nlen ? name + nlen : "";
            const char *bl = labels_get(&s->all, skip);
            if (!strcmp(suf, "_sum")) {
                sum = s->v;
            } else if (!strcmp(suf, "_count")) {
                count = s->v;
            } else if (bl && ((hist && !strcmp(suf, "_bucket")) || (!hist && !*suf))) {
                double bvv;
                if (bs_float_parse(bl, strlen(bl), false, &bvv) != 0)
                    continue;
                bs_float_format_short(bvv, keys + nb * 32);
                bv[nb].key = keys + nb * 32;
                bv[nb].v = s->v;
                nb++;
            }
        }
        qsort(bv, nb, sizeof(*bv), bound_cmp);
        rc = bs_buf_puts(b, first ? "{" : ",{");
        first = false;
        if (rc == 0 && hist) {
            rc = bs_buf_puts(b, "\"buckets\":{");
            for (size_t k = 0; rc == 0 && k < nb; k++) {
                if (k)
                    rc = bs_buf_putc(b, ',');
                if (rc == 0)
                    rc = bs_buf_printf(b, "\"%s\":", bv[k].key);
                if (rc == 0)
                    rc = put_num(b, bv[k].v);
            }
            if (rc == 0)
                rc = bs_buf_puts(b, "},");
        }
        if (rc == 0)
            rc = bs_buf_puts(b, "\"count\":");
        if (rc == 0)
            rc = put_num(b, count);
        if (rc == 0)
            rc = bs_buf_puts(b, ",\"labels\":");
        if (rc == 0)
            rc = put_labels(b, head, skip);
        if (rc == 0 && !hist) {
            rc = bs_buf_puts(b, ",\"quantiles\":{");
            for (size_t k = 0; rc == 0 && k < nb; k++) {
                if (k)
                    rc = bs_buf_putc(b, ',');
                if (rc == 0)
                    rc = bs_buf_printf(b, "\"%s\":", bv[k].key);
                if (rc == 0)
                    rc = put_num(b, bv[k].v);
            }
            if (rc == 0)
                rc = bs_buf_putc(b, '}');
        }
        if (rc == 0)
            rc = bs_buf_puts(b, ",\"sum\":");
        if (rc == 0)
            rc = put_num(b, sum);
        if (rc == 0)
            rc = bs_buf_putc(b, '}');
    }
    free(done);
    free(keys);
    free(bv);
    return rc;
}

static int put_family(struct bs_buf *b, const char *name, int64_t time_ns,
                      enum expfmt_metric_type type, const char *help,
                      const struct push_family *f, const struct push_series *single,
                      double single_v)
{
    int rc = put_str(b, name);
    if (rc == 0)
        rc = bs_buf_puts(b, ":{\"time_stamp\":");
    if (rc == 0)
        rc = put_time(b, time_ns);
    if (rc == 0)
        rc = bs_buf_printf(b, ",\"type\":\"%s\"", push_type_upper(type));
    if (rc == 0 && help && *help) {
        rc = bs_buf_puts(b, ",\"help\":");
        if (rc == 0)
            rc = put_str(b, help);
    }
    if (rc == 0)
        rc = bs_buf_puts(b, ",\"metrics\":[");
    if (single) {
        if (rc == 0)
            rc = bs_buf_puts(b, "{\"labels\":");
        if (rc == 0)
            rc = put_labels(b, single, NULL);
        if (rc == 0)
            rc = bs_buf_puts(b, ",\"value\":");
        if (rc == 0)
            rc = put_num(b, single_v);
        if (rc == 0)
            rc = bs_buf_putc(b, '}');
    } else if (f->type == EXPFMT_TYPE_HISTOGRAM || f->type == EXPFMT_TYPE_SUMMARY) {
        if (rc == 0)
            rc = put_complex(b, f);
    } else {
        for (size_t i = 0; rc == 0 && i < f->n; i++) {
            rc = bs_buf_puts(b, i ? ",{\"labels\":" : "{\"labels\":");
            if (rc == 0)
                rc = put_labels(b, f->s[i], NULL);
            if (rc == 0)
                rc = bs_buf_puts(b, ",\"value\":");
            if (rc == 0)
                rc = put_num(b, f->s[i]->v);
            if (rc == 0)
                rc = bs_buf_putc(b, '}');
        }
    }
    if (rc == 0)
        rc = bs_buf_puts(b, "]}");
    return rc;
}

/* One entry of a group object, for sorting keys as Go does. */
struct gkey {
    const char *key;
    int kind;   /* 0 family, 1 labels, 2 last_push_successful, 3 failure, 4 push time */
    const struct push_family *f;
};

static int gkey_cmp(const void *a, const void *b)
{
    return strcmp(((const struct gkey *)a)->key, ((const struct gkey *)b)->key);
}

static const char PUSH_HELP_TIME[] =
    "Last Unix time when changing this group in the Pushgateway succeeded.";
static const char PUSH_HELP_FAIL[] =
    "Last Unix time when changing this group in the Pushgateway failed.";

static int put_group(struct bs_buf *b, const struct push_group *g)
{
    size_t n = g->nf + 4;
    struct gkey *k = malloc(n * sizeof(*k));
    if (!k)
        return BS_ENOMEM;
    size_t m = 0;
    for (size_t i = 0; i < g->nf; i++) {
        /* A pushed family called like one of the fixed keys is shadowed by
         * it, as a Go map would be. */
        const char *nm = g->f[i]->name;
        if (!strcmp(nm, "labels") || !strcmp(nm, "last_push_successful") ||
            !strcmp(nm, "push_time_seconds") || !strcmp(nm, "push_failure_time_seconds"))
            continue;
        k[m++] = (struct gkey){nm, 0, g->f[i]};
    }
    k[m++] = (struct gkey){"labels", 1, NULL};
    k[m++] = (struct gkey){"last_push_successful", 2, NULL};
    k[m++] = (struct gkey){"push_failure_time_seconds", 3, NULL};
    k[m++] = (struct gkey){"push_time_seconds", 4, NULL};
    qsort(k, m, sizeof(*k), gkey_cmp);
    int rc = bs_buf_putc(b, '{');
    for (size_t i = 0; rc == 0 && i < m; i++) {
        if (i)
            rc = bs_buf_putc(b, ',');
        if (rc)
            break;
        switch (k[i].kind) {
        case 0:
            rc = put_family(b, k[i].f->name, k[i].f->time_ns, k[i].f->type, k[i].f->help, k[i].f,
                            NULL, 0);
            break;
        case 1:
            rc = bs_buf_puts(b, "\"labels\":{");
            for (size_t j = 0; rc == 0 && j < g->ngl; j++) {
                if (j)
                    rc = bs_buf_putc(b, ',');
                if (rc == 0)
                    rc = put_str(b, g->gl[j].name);
                if (rc == 0)
                    rc = bs_buf_putc(b, ':');
                if (rc == 0)
                    rc = put_str(b, g->gl[j].value);
            }
            if (rc == 0)
                rc = bs_buf_putc(b, '}');
            break;
        case 2:
            rc = bs_buf_printf(b, "\"last_push_successful\":%s", g->ok ? "true" : "false");
            break;
        case 3:
            rc = put_family(b, "push_failure_time_seconds", g->time_ns, EXPFMT_TYPE_GAUGE,
                            PUSH_HELP_FAIL, NULL, g->meta[1], (double)g->fail_ns / 1e9);
            break;
        default:
            rc = put_family(b, "push_time_seconds", g->time_ns, EXPFMT_TYPE_GAUGE,
                            PUSH_HELP_TIME, NULL, g->meta[0], (double)g->push_ns / 1e9);
            break;
        }
    }
    free(k);
    return rc ? rc : bs_buf_putc(b, '}');
}

int push_json(struct ingest_push *pg, struct bs_buf *b)
{
    int rc = bs_buf_puts(b, "{\"status\":\"success\",\"data\":[");
    for (size_t i = 0; rc == 0 && i < pg->ng; i++) {
        if (i)
            rc = bs_buf_putc(b, ',');
        if (rc == 0)
            rc = put_group(b, pg->g[i]);
    }
    return rc ? rc : bs_buf_puts(b, "]}\n");
}
