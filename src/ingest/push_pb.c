/* SPDX-License-Identifier: Apache-2.0
 *
 * The protobuf delimited body format of the Pushgateway API:
 *   Content-Type: application/vnd.google.protobuf;
 *                 proto=io.prometheus.client.MetricFamily; encoding=delimited
 * which Go's client_golang push package sends by default.
 *
 * Wire. The body is a sequence of MetricFamily messages (metrics.proto),
 * each preceded by its length as a base-128 varint. An empty body is an
 * empty push. The length is read here (at most ten bytes, no overflow, no
 * more than PUSH_PB_MAX_MESSAGE, no further than the end of the body) and
 * the message is decoded by protobuf-c into an arena that is reset after
 * each message; an allocator in front of it counts every byte protobuf-c
 * asks for over the whole request and refuses past max_decode_memory, so a
 * body of tiny messages that decode to large structures (an empty Metric
 * is two bytes on the wire and a hundred in memory) cannot exhaust memory.
 *
 * Conversion. Each family becomes the push_family the text parser would
 * build from the same metrics written in the text format, as the
 * Pushgateway exposes them: counters, gauges and untyped metrics one series
 * each; a summary its {quantile="q"} series, then _sum and _count; a
 * histogram its _bucket{le="b"} series (plus le="+Inf" with the sample count
 * when the buckets do not end with it, as Go's encoder leaves it out), then
 * _sum and _count. Bounds and quantiles are formatted as the exposition
 * format writes numbers, so le="1" and quantile="0.5" come out exactly as
 * from the text path. Only the field of the family's type is read (the
 * Pushgateway does the same); a metric lacking it is refused.
 *
 * Refusals. Everything that does not fit the model is refused with 400
 * before any group changes: the Pushgateway accepts some of it (invalid
 * metric names, an explicit le label, unknown types, gauge histograms)
 * and then exposes broken text or silently drops it; the rest it refuses
 * too, though later, in its consistency check. Native-histogram fields,
 * exemplars and created timestamps are not in our schema; protobuf-c skips
 * them as unknown fields.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/metrics.pb-c.h"
#include "ingest/push_store.h"

#define PB_ERR "protobuf delimited format parsing error: "

/* ------------------------------------------------------------- allocator */

struct pb_alloc {
    struct bs_arena arena; /* this message's objects; reset per message */
    size_t total;          /* bytes protobuf-c asked for in the whole request */
    size_t max;            /* 0 = unlimited */
    bool over_cap;         /* an allocation failed because of max */
    bool exhausted;        /* an allocation failed (the cap, or the heap) */
};

static void *pb_alloc_fn(void *data, size_t size)
{
    struct pb_alloc *a = data;
    if (size == 0)
        size = 1;
    if (a->max && (size > a->max || a->total > a->max - size)) {
        a->over_cap = a->exhausted = true;
        return NULL;
    }
    void *p = bs_arena_alloc(&a->arena, size);
    if (!p) {
        a->exhausted = true;
        return NULL;
    }
    a->total += size;
    return p;
}

static void pb_free_fn(void *data, void *p)
{
    (void)data;
    (void)p; /* everything goes with the arena */
}

/* ----------------------------------------------------------------- checks */

static int pair_cmp(const void *a, const void *b)
{
    const struct push_pair *x = a, *y = b;
    size_t m = x->nl < y->nl ? x->nl : y->nl;
    int c = memcmp(x->n, y->n, m);
    if (c)
        return c;
    return x->nl < y->nl ? -1 : x->nl > y->nl;
}

static int clip(size_t n)
{
    return (int)(n > 200 ? 200 : n);
}

/* Where an error was found, for messages: family index (1-based) and name
 * once known, metric index (1-based) once known. */
struct pb_where {
    size_t fam;
    const char *name;
    size_t nl;
    size_t metric;
};

static int pb_fail(char *msg, size_t msgcap, const struct pb_where *w, const char *fmt, ...)
    BS_PRINTF(4, 5);
static int pb_fail(char *msg, size_t msgcap, const struct pb_where *w, const char *fmt, ...)
{
    int n;
    if (w->name && w->metric)
        n = snprintf(msg, msgcap, PB_ERR "message %zu, family \"%.*s\", metric %zu: ", w->fam,
                     clip(w->nl), w->name, w->metric);
    else if (w->name)
        n = snprintf(msg, msgcap, PB_ERR "message %zu, family \"%.*s\": ", w->fam, clip(w->nl),
                     w->name);
    else
        n = snprintf(msg, msgcap, PB_ERR "message %zu: ", w->fam);
    if (n >= 0 && (size_t)n < msgcap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg + n, msgcap - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return BS_EPARSE;
}

/* Validate the labels of metric m into pairs[0..*np), sorted by name.
 * reserved is the label the type adds itself ("le", "quantile" or NULL). */
static int metric_labels(const Bongsu__Pm__Metric *m, const char *reserved, struct push_pair *pairs,
                         size_t *np, const struct pb_where *w, char *msg, size_t msgcap)
{
    size_t n = 0;
    for (size_t i = 0; i < m->n_label; i++) {
        const Bongsu__Pm__LabelPair *l = m->label[i];
        const char *ln = (const char *)l->name.data, *lv = (const char *)l->value.data;
        size_t nl = l->name.len, vl = l->value.len;
        if (!labels_name_valid(ln, nl) || (nl >= 2 && ln[0] == '_' && ln[1] == '_'))
            return pb_fail(msg, msgcap, w, "invalid label name \"%.*s\"", clip(nl), ln ? ln : "");
        if (reserved && strlen(reserved) == nl && !memcmp(ln, reserved, nl))
            return pb_fail(msg, msgcap, w, "must not have an explicit \"%s\" label", reserved);
        if (memchr(lv ? lv : "", '\0', vl) || !ingest_utf8_valid(lv ? lv : "", vl))
            return pb_fail(msg, msgcap, w, "the value of label \"%.*s\" is not valid UTF-8",
                           clip(nl), ln);
        pairs[n++] = (struct push_pair){ln, nl, lv ? lv : "", vl};
    }
    qsort(pairs, n, sizeof(*pairs), pair_cmp);
    for (size_t i = 1; i < n; i++)
        if (!pair_cmp(&pairs[i - 1], &pairs[i]))
            return pb_fail(msg, msgcap, w, "two or more labels named \"%.*s\"",
                           clip(pairs[i].nl), pairs[i].n);
    *np = n;
    return 0;
}

/* ------------------------------------------------------------- conversion */

struct pb_conv {
    struct ingest_push *pg;
    const struct push_group *g;
    struct push_body *out;
    struct push_family *f;
    struct push_pair *pairs; /* pushed labels, one extra slot, then scratch */
    size_t cap;
    char *full;              /* the family name, room for a suffix after it */
    size_t full_cap;
    char *msg;
    size_t msgcap;
};

/* One series: name + suffix, the metric's labels pairs[0..np), plus
 * extra=<value> when extra is not NULL. */
static int conv_series(struct pb_conv *c, const char *suffix, size_t np, const char *extra,
                       double bound, double v)
{
    size_t nl = strlen(c->f->name), sl = strlen(suffix);
    memcpy(c->full + nl, suffix, sl + 1);
    char num[32];
    size_t n = np;
    if (extra) {
        size_t numl = bs_float_format_short(bound, num);
        c->pairs[n++] = (struct push_pair){extra, strlen(extra), num, numl};
    }
    return push_body_add(c->pg, c->g, c->out, c->f, c->full, nl + sl, c->pairs, n, v, c->pairs + n,
                         c->msg, c->msgcap);
}

static int conv_metric(struct pb_conv *c, const Bongsu__Pm__Metric *m, struct pb_where *w)
{
    enum expfmt_metric_type t = c->f->type;
    const char *reserved = t == EXPFMT_TYPE_HISTOGRAM ? "le"
                           : t == EXPFMT_TYPE_SUMMARY ? "quantile"
                                                      : NULL;
    size_t need = 2 * (m->n_label + 1) + c->g->ngl + 2;
    if (need > c->cap) {
        struct push_pair *np = realloc(c->pairs, need * sizeof(*np));
        if (!np)
            return BS_ENOMEM;
        c->pairs = np;
        c->cap = need;
    }
    size_t n = 0;
    int rc = metric_labels(m, reserved, c->pairs, &n, w, c->msg, c->msgcap);
    if (rc)
        return rc;
    if (m->has_timestamp_ms)
        c->out->has_timestamp = true;
    switch (t) {
    case EXPFMT_TYPE_COUNTER:
        if (!m->counter)
            return pb_fail(c->msg, c->msgcap, w, "no counter value in a COUNTER family");
        return conv_series(c, "", n, NULL, 0, m->counter->value);
    case EXPFMT_TYPE_GAUGE:
        if (!m->gauge)
            return pb_fail(c->msg, c->msgcap, w, "no gauge value in a GAUGE family");
        return conv_series(c, "", n, NULL, 0, m->gauge->value);
    case EXPFMT_TYPE_UNTYPED:
        if (!m->untyped)
            return pb_fail(c->msg, c->msgcap, w, "no untyped value in an UNTYPED family");
        return conv_series(c, "", n, NULL, 0, m->untyped->value);
    case EXPFMT_TYPE_SUMMARY: {
        const Bongsu__Pm__Summary *s = m->summary;
        if (!s)
            return pb_fail(c->msg, c->msgcap, w, "no summary in a SUMMARY family");
        for (size_t i = 0; i < s->n_quantile; i++)
            if ((rc = conv_series(c, "", n, "quantile", s->quantile[i]->quantile,
                                  s->quantile[i]->value)))
                return rc;
        if ((rc = conv_series(c, "_sum", n, NULL, 0, s->sample_sum)))
            return rc;
        return conv_series(c, "_count", n, NULL, 0, (double)s->sample_count);
    }
    case EXPFMT_TYPE_HISTOGRAM: {
        const Bongsu__Pm__Histogram *h = m->histogram;
        if (!h)
            return pb_fail(c->msg, c->msgcap, w, "no histogram in a HISTOGRAM family");
        double count = h->has_sample_count_float ? h->sample_count_float : (double)h->sample_count;
        bool inf = false;
        for (size_t i = 0; i < h->n_bucket; i++) {
            const Bongsu__Pm__Bucket *b = h->bucket[i];
            double v = b->has_cumulative_count_float ? b->cumulative_count_float
                                                     : (double)b->cumulative_count;
            inf |= isinf(b->upper_bound) && b->upper_bound > 0;
            if ((rc = conv_series(c, "_bucket", n, "le", b->upper_bound, v)))
                return rc;
        }
        if (!inf && (rc = conv_series(c, "_bucket", n, "le", INFINITY, count)))
            return rc;
        if ((rc = conv_series(c, "_sum", n, NULL, 0, h->sample_sum)))
            return rc;
        return conv_series(c, "_count", n, NULL, 0, count);
    }
    default:
        return pb_fail(c->msg, c->msgcap, w, "unsupported type");
    }
}

static int conv_family(struct pb_conv *c, const Bongsu__Pm__MetricFamily *mf, struct pb_where *w)
{
    /* The Pushgateway keeps no family without metrics, whatever else it
     * holds; a later family of the same name still replaces an earlier. */
    const char *name = (const char *)mf->name.data;
    size_t nl = mf->name.len;
    w->name = name ? name : "";
    w->nl = nl;
    if (mf->n_metric && !labels_metric_name_valid(name ? name : "", nl))
        return pb_fail(c->msg, c->msgcap, w, "invalid metric name");
    enum expfmt_metric_type t;
    int32_t type = mf->has_type ? mf->type : BONGSU__PM__METRIC_TYPE__COUNTER;
    switch (type) {
    case BONGSU__PM__METRIC_TYPE__COUNTER: t = EXPFMT_TYPE_COUNTER; break;
    case BONGSU__PM__METRIC_TYPE__GAUGE: t = EXPFMT_TYPE_GAUGE; break;
    case BONGSU__PM__METRIC_TYPE__SUMMARY: t = EXPFMT_TYPE_SUMMARY; break;
    case BONGSU__PM__METRIC_TYPE__UNTYPED: t = EXPFMT_TYPE_UNTYPED; break;
    case BONGSU__PM__METRIC_TYPE__HISTOGRAM: t = EXPFMT_TYPE_HISTOGRAM; break;
    case BONGSU__PM__METRIC_TYPE__GAUGE_HISTOGRAM:
        return pb_fail(c->msg, c->msgcap, w,
                       "gauge histograms are not supported (the text format cannot carry them)");
    default:
        return pb_fail(c->msg, c->msgcap, w, "unknown metric type %d", (int)type);
    }
    const char *help = (const char *)mf->help.data;
    if (mf->has_help && (memchr(help ? help : "", '\0', mf->help.len) ||
                         !ingest_utf8_valid(help ? help : "", mf->help.len)))
        return pb_fail(c->msg, c->msgcap, w, "help text is not valid UTF-8");
    if (!mf->n_metric) {
        bool seen = false;
        for (size_t i = 0; i < c->out->nf && !seen; i++)
            seen = strlen(c->out->f[i]->name) == nl && !memcmp(c->out->f[i]->name, name, nl);
        if (!seen)
            return 0;
    }
    struct push_family *f = push_body_family(c->out, name ? name : "", nl);
    if (!f)
        return BS_ENOMEM;
    if (nl + sizeof("_bucket") > c->full_cap) {
        char *nf = realloc(c->full, nl + sizeof("_bucket"));
        if (!nf)
            return BS_ENOMEM;
        c->full = nf;
        c->full_cap = nl + sizeof("_bucket");
    }
    memcpy(c->full, f->name, nl);
    /* Last one wins: forget an earlier family of this name. */
    for (size_t i = 0; i < f->n; i++)
        free(f->s[i]);
    c->out->nseries -= f->n;
    f->n = 0;
    free(f->help);
    f->help = mf->has_help ? bs_xstrndup(help ? help : "", mf->help.len) : NULL;
    f->type = t;
    c->f = f;
    for (size_t i = 0; i < mf->n_metric; i++) {
        w->metric = i + 1;
        int rc = conv_metric(c, mf->metric[i], w);
        if (rc)
            return rc;
    }
    return 0;
}

/* ------------------------------------------------------------------ body */

int push_pb_parse(struct ingest_push *pg, const struct push_group *g, const void *buf, size_t len,
                  struct push_body *out, char *msg, size_t msgcap)
{
    const uint8_t *p = buf, *end = p + len;
    struct pb_alloc a = {.max = pg->lim.max_decode_memory};
    bs_arena_init(&a.arena, 64 * 1024, 0);
    ProtobufCAllocator alloc = {pb_alloc_fn, pb_free_fn, &a};
    struct pb_conv c = {.pg = pg, .g = g, .out = out, .msg = msg, .msgcap = msgcap};
    int rc = 0;
    for (size_t k = 1; p < end && rc == 0; k++) {
        struct pb_where w = {.fam = k};
        size_t at = (size_t)(p - (const uint8_t *)buf);
        /* The varint length. */
        uint64_t mlen = 0;
        unsigned shift = 0;
        bool done = false;
        while (p < end && shift < 64) {
            uint8_t b = *p++;
            if (shift == 63 && b > 1) {
                shift = 64;
                break;
            }
            mlen |= (uint64_t)(b & 0x7f) << shift;
            shift += 7;
            if (!(b & 0x80)) {
                done = true;
                break;
            }
        }
        if (!done) {
            rc = pb_fail(msg, msgcap, &w,
                         shift >= 64 ? "invalid length prefix at byte %zu (varint too long)"
                                     : "truncated length prefix at byte %zu",
                         at);
            break;
        }
        if (mlen > PUSH_PB_MAX_MESSAGE) {
            snprintf(msg, msgcap,
                     "protobuf message %zu is %llu bytes long, over the limit of %zu bytes", k,
                     (unsigned long long)mlen, (size_t)PUSH_PB_MAX_MESSAGE);
            rc = BS_ELIMIT;
            break;
        }
        if (mlen > (uint64_t)(end - p)) {
            rc = pb_fail(msg, msgcap, &w,
                         "truncated message: the length prefix at byte %zu says %llu bytes, "
                         "%zu are left",
                         at, (unsigned long long)mlen, (size_t)(end - p));
            break;
        }
        ProtobufCMessage *m = protobuf_c_message_unpack(&bongsu__pm__metric_family__descriptor,
                                                        &alloc, (size_t)mlen, p);
        if (!m) {
            if (a.over_cap) {
                snprintf(msg, msgcap,
                         "decoding the protobuf body needs more than %zu bytes of memory",
                         a.max);
                rc = BS_ELIMIT;
            } else if (a.exhausted) {
                rc = BS_ENOMEM;
            } else {
                rc = pb_fail(msg, msgcap, &w,
                             "not a valid io.prometheus.client.MetricFamily message (%llu bytes "
                             "at byte %zu)",
                             (unsigned long long)mlen, at);
            }
            break;
        }
        p += mlen;
        rc = conv_family(&c, (const Bongsu__Pm__MetricFamily *)m, &w);
        bs_arena_reset(&a.arena);
    }
    free(c.pairs);
    free(c.full);
    bs_arena_fini(&a.arena);
    push_body_drop_empty(out);
    return rc;
}
