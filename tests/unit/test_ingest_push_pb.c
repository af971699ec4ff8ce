/* SPDX-License-Identifier: Apache-2.0
 *
 * Unit tests of the protobuf delimited body format of the Pushgateway API
 * (src/ingest/push_pb.c) against a real tsdb in a temporary directory.
 * Bodies are built with the generated protobuf-c code (metrics.pb-c.h) and
 * framed by hand (varint length, message): every metric type, the same
 * metrics pushed as text and as protobuf giving identical groups (listing,
 * stored series, groups file), the Content-Type forms, last-family-wins,
 * and each refusal with its status and message. What the Pushgateway 1.5.1
 * does with the same bodies is noted where bongsu differs.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ingest/ingest.h"
#include "ingest/metrics.pb-c.h"
#include "ingest/push_int.h"
#include "ingest/push_store.h"
#include "test_tsdb_util.h"

#define CT_PB "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; " \
              "encoding=delimited"

struct fx {
    char *dir;
    struct tsdb *db;
    struct ingest_push *pg;
};

static struct fx *fx_new(const struct ingest_limits *lim)
{
    struct fx *f = calloc(1, sizeof(*f));
    f->dir = make_tmpdir();
    f->db = open_db(f->dir, 60000, 0);
    struct bs_error err = {0};
    assert_int_equal(ingest_push_new(&f->pg, f->db, f->dir, 0, lim, &err), 0);
    return f;
}

static void fx_free(struct fx *f)
{
    ingest_push_free(f->pg);
    tsdb_close(f->db);
    rmrf(f->dir);
    free(f->dir);
    free(f);
}

static int setup(void **state)
{
    *state = fx_new(NULL);
    return 0;
}

static int teardown(void **state)
{
    fx_free(*state);
    return 0;
}

/* ------------------------------------------------------------ building */

/* Everything the builders allocate; freed after each test. */
static struct bs_arena A;

static int arena_setup(void **state)
{
    bs_arena_init(&A, 4096, 0);
    return setup(state);
}

static int arena_teardown(void **state)
{
    bs_arena_fini(&A);
    return teardown(state);
}

static void *amem(size_t n)
{
    void *p = bs_arena_alloc(&A, n);
    assert_non_null(p);
    memset(p, 0, n);
    return p;
}

static ProtobufCBinaryData bin(const char *s)
{
    return (ProtobufCBinaryData){strlen(s), (uint8_t *)s};
}

/* A metric with labels "a=1,b=2" (names and values without , or =). */
static Bongsu__Pm__Metric *metric(const char *labels)
{
    Bongsu__Pm__Metric *m = amem(sizeof(*m));
    bongsu__pm__metric__init(m);
    if (!labels || !*labels)
        return m;
    char *copy = bs_arena_strndup(&A, labels, strlen(labels));
    size_t n = 1;
    for (const char *c = copy; *c; c++)
        n += *c == ',';
    m->label = amem(n * sizeof(*m->label));
    for (char *tok = copy; tok;) {
        char *next = strchr(tok, ',');
        if (next)
            *next++ = '\0';
        char *eq = strchr(tok, '=');
        assert_non_null(eq);
        *eq = '\0';
        Bongsu__Pm__LabelPair *l = amem(sizeof(*l));
        bongsu__pm__label_pair__init(l);
        l->has_name = l->has_value = 1;
        l->name = bin(tok);
        l->value = bin(eq + 1);
        m->label[m->n_label++] = l;
        tok = next;
    }
    return m;
}

static Bongsu__Pm__Metric *mgauge(const char *labels, double v)
{
    Bongsu__Pm__Metric *m = metric(labels);
    m->gauge = amem(sizeof(*m->gauge));
    bongsu__pm__gauge__init(m->gauge);
    m->gauge->has_value = 1;
    m->gauge->value = v;
    return m;
}

static Bongsu__Pm__Metric *mcounter(const char *labels, double v)
{
    Bongsu__Pm__Metric *m = metric(labels);
    m->counter = amem(sizeof(*m->counter));
    bongsu__pm__counter__init(m->counter);
    m->counter->has_value = 1;
    m->counter->value = v;
    return m;
}

static Bongsu__Pm__Metric *muntyped(const char *labels, double v)
{
    Bongsu__Pm__Metric *m = metric(labels);
    m->untyped = amem(sizeof(*m->untyped));
    bongsu__pm__untyped__init(m->untyped);
    m->untyped->has_value = 1;
    m->untyped->value = v;
    return m;
}

/* qv: nq pairs (quantile, value). */
static Bongsu__Pm__Metric *msummary(const char *labels, uint64_t count, double sum, size_t nq,
                                    const double *qv)
{
    Bongsu__Pm__Metric *m = metric(labels);
    Bongsu__Pm__Summary *s = m->summary = amem(sizeof(*s));
    bongsu__pm__summary__init(s);
    s->has_sample_count = s->has_sample_sum = 1;
    s->sample_count = count;
    s->sample_sum = sum;
    s->quantile = amem((nq ? nq : 1) * sizeof(*s->quantile));
    for (size_t i = 0; i < nq; i++) {
        Bongsu__Pm__Quantile *q = s->quantile[s->n_quantile++] = amem(sizeof(*q));
        bongsu__pm__quantile__init(q);
        q->has_quantile = q->has_value = 1;
        q->quantile = qv[2 * i];
        q->value = qv[2 * i + 1];
    }
    return m;
}

/* bc: nb pairs (upper bound, cumulative count). */
static Bongsu__Pm__Metric *mhist(const char *labels, uint64_t count, double sum, size_t nb,
                                 const double *bc)
{
    Bongsu__Pm__Metric *m = metric(labels);
    Bongsu__Pm__Histogram *h = m->histogram = amem(sizeof(*h));
    bongsu__pm__histogram__init(h);
    h->has_sample_count = h->has_sample_sum = 1;
    h->sample_count = count;
    h->sample_sum = sum;
    h->bucket = amem((nb ? nb : 1) * sizeof(*h->bucket));
    for (size_t i = 0; i < nb; i++) {
        Bongsu__Pm__Bucket *b = h->bucket[h->n_bucket++] = amem(sizeof(*b));
        bongsu__pm__bucket__init(b);
        b->has_upper_bound = b->has_cumulative_count = 1;
        b->upper_bound = bc[2 * i];
        b->cumulative_count = (uint64_t)bc[2 * i + 1];
    }
    return m;
}

/* A family of n metrics (varargs Bongsu__Pm__Metric *). type < 0: no type
 * field (COUNTER on the wire); help NULL: no help field. */
static Bongsu__Pm__MetricFamily *family(const char *name, int type, const char *help, size_t n,
                                        ...)
{
    Bongsu__Pm__MetricFamily *f = amem(sizeof(*f));
    bongsu__pm__metric_family__init(f);
    f->has_name = 1;
    f->name = bin(name);
    if (help) {
        f->has_help = 1;
        f->help = bin(help);
    }
    if (type >= 0) {
        f->has_type = 1;
        f->type = type;
    }
    f->metric = amem((n ? n : 1) * sizeof(*f->metric));
    va_list ap;
    va_start(ap, n);
    for (size_t i = 0; i < n; i++)
        f->metric[f->n_metric++] = va_arg(ap, Bongsu__Pm__Metric *);
    va_end(ap);
    return f;
}

static void put_varint(struct bs_buf *b, uint64_t v)
{
    while (v >= 0x80) {
        bs_buf_putc(b, (char)(v | 0x80));
        v >>= 7;
    }
    bs_buf_putc(b, (char)v);
}

/* Append f to b as the delimited format frames it. */
static void add(struct bs_buf *b, const Bongsu__Pm__MetricFamily *f)
{
    size_t n = protobuf_c_message_get_packed_size(&f->base);
    put_varint(b, n);
    uint8_t *tmp = malloc(n ? n : 1);
    assert_int_equal(protobuf_c_message_pack(&f->base, tmp), n);
    bs_buf_append(b, tmp, n);
    free(tmp);
}

/* ------------------------------------------------------------- requests */

static char body_out[8192];

static int do_send(struct fx *f, const char *method, const char *path, const char *ct,
                const void *body, size_t len)
{
    struct ingest_response r;
    assert_int_equal(ingest_push_handle(f->pg, method, path, ct, NULL, body, len, &r), 0);
    snprintf(body_out, sizeof(body_out), "%s", r.body ? r.body : "");
    int st = r.status;
    ingest_response_fini(&r);
    return st;
}

static int send_pb(struct fx *f, const char *method, const char *path, struct bs_buf *b)
{
    int st = do_send(f, method, path, CT_PB, b->data ? b->data : "", b->len);
    bs_buf_fini(b);
    bs_buf_init(b, 0);
    return st;
}

static int send_raw(struct fx *f, const char *path, const char *bytes, size_t len)
{
    return do_send(f, "PUT", path, CT_PB, bytes, len);
}

/* Series matching mspec with their samples' values, as in
 * test_ingest_push.c. */
static char *values(struct tsdb *db, const char *mspec)
{
    struct labels_matcher *m = mk_matcher(mspec);
    struct tsdb_querier *q = tsdb_querier_new(db, INT64_MIN, INT64_MAX);
    struct tsdb_series_set *set = NULL;
    assert_int_equal(tsdb_querier_select(q, &m, 1, &set, NULL), 0);
    struct bs_buf out;
    bs_buf_init(&out, 0);
    bs_buf_puts(&out, "");
    while (tsdb_series_set_next(set)) {
        labels_format(tsdb_series_set_labels(set), &out);
        struct tsdb_iterator *it = tsdb_series_set_iterator(set);
        while (tsdb_iterator_next(it)) {
            int64_t t;
            double v;
            tsdb_iterator_at(it, &t, &v);
            if (bs_is_stale_nan(v))
                bs_buf_puts(&out, " stale");
            else
                bs_buf_printf(&out, " %g", v);
        }
        tsdb_iterator_free(it);
        bs_buf_putc(&out, '\n');
    }
    tsdb_series_set_free(set);
    tsdb_querier_free(q);
    labels_matcher_free(m);
    return bs_buf_steal(&out, NULL);
}

/* ASSERT_VALUES with the push_time_seconds value replaced by V. */
static void assert_values_v(struct tsdb *db, const char *m, const char *want)
{
    char *got = values(db, m);
    char *p = strstr(got, "push_time_seconds{");
    if (p) {
        char *sp = strstr(p, "} ") + 2, *nl = strchr(sp, '\n');
        memmove(sp + 1, nl, strlen(nl) + 1);
        *sp = 'V';
    }
    assert_string_equal(got, want);
    free(got);
}
#define ASSERT_VALUES(db, m, want) assert_values_v(db, m, want)

/* GET /api/v1/metrics with the times blanked: every "time_stamp" value and
 * every value in e+09 (push_time_seconds, push_failure_time_seconds). */
static char *listing(struct fx *f)
{
    struct ingest_response r;
    assert_int_equal(ingest_push_handle(f->pg, "GET", "/api/v1/metrics", NULL, NULL, NULL, 0, &r),
                     0);
    assert_int_equal(r.status, 200);
    struct bs_buf out;
    bs_buf_init(&out, 0);
    for (const char *p = r.body; *p;) {
        if (!strncmp(p, "\"time_stamp\":\"", 14)) {
            bs_buf_puts(&out, "\"time_stamp\":\"T\"");
            p = strchr(p + 14, '"') + 1;
            continue;
        }
        if (!strncmp(p, "\"value\":\"", 9)) {
            const char *e = strchr(p + 9, '"');
            if (memmem(p + 9, (size_t)(e - p - 9), "e+09", 4)) {
                bs_buf_puts(&out, "\"value\":\"V\"");
                p = e + 1;
                continue;
            }
        }
        bs_buf_putc(&out, *p++);
    }
    ingest_response_fini(&r);
    return bs_buf_steal(&out, NULL);
}

/* --------------------------------------------------------------- types */

static void test_every_type(void **state)
{
    struct fx *f = *state;
    struct bs_buf b;
    bs_buf_init(&b, 0);
    add(&b, family("g", BONGSU__PM__METRIC_TYPE__GAUGE, "A gauge.", 2, mgauge("x=1", 2.5),
                   mgauge("x=2,job=other", -1)));
    add(&b, family("c_total", BONGSU__PM__METRIC_TYPE__COUNTER, "A counter.", 1,
                   mcounter("", 7)));
    add(&b, family("u", BONGSU__PM__METRIC_TYPE__UNTYPED, NULL, 1, muntyped("instance=i9", 3)));
    add(&b, family("s", BONGSU__PM__METRIC_TYPE__SUMMARY, "A summary.", 1,
                   msummary("m=get", 3, 6, 2, (const double[]){0.5, 1, 0.99, 2})));
    /* Go's encoder leaves the +Inf bucket out: it is the sample count. */
    add(&b, family("h", BONGSU__PM__METRIC_TYPE__HISTOGRAM, "A histogram.", 1,
                   mhist("", 3, 6, 2, (const double[]){1, 1, 2.5, 2})));
    /* Given explicitly, it is not added twice. */
    add(&b, family("h2", BONGSU__PM__METRIC_TYPE__HISTOGRAM, NULL, 1,
                   mhist("", 4, 1.5, 2, (const double[]){0.001, 1, INFINITY, 4})));
    /* No type field: COUNTER, the field's default. */
    add(&b, family("d_total", -1, NULL, 1, mcounter("", 1)));
    assert_int_equal(send_pb(f, "PUT", "/metrics/job/j/instance/i1", &b), 200);
    ASSERT_VALUES(f->db, "job=j",
                  "c_total{instance=\"i1\", job=\"j\"} 7\n"
                  "d_total{instance=\"i1\", job=\"j\"} 1\n"
                  "g{instance=\"i1\", job=\"j\", x=\"1\"} 2.5\n"
                  "g{instance=\"i1\", job=\"j\", x=\"2\"} -1\n"
                  "h2_bucket{instance=\"i1\", job=\"j\", le=\"+Inf\"} 4\n"
                  "h2_bucket{instance=\"i1\", job=\"j\", le=\"0.001\"} 1\n"
                  "h2_count{instance=\"i1\", job=\"j\"} 4\n"
                  "h2_sum{instance=\"i1\", job=\"j\"} 1.5\n"
                  "h_bucket{instance=\"i1\", job=\"j\", le=\"+Inf\"} 3\n"
                  "h_bucket{instance=\"i1\", job=\"j\", le=\"1\"} 1\n"
                  "h_bucket{instance=\"i1\", job=\"j\", le=\"2.5\"} 2\n"
                  "h_count{instance=\"i1\", job=\"j\"} 3\n"
                  "h_sum{instance=\"i1\", job=\"j\"} 6\n"
                  "push_failure_time_seconds{instance=\"i1\", job=\"j\"} 0\n"
                  "push_time_seconds{instance=\"i1\", job=\"j\"} V\n"
                  "s{instance=\"i1\", job=\"j\", m=\"get\", quantile=\"0.5\"} 1\n"
                  "s{instance=\"i1\", job=\"j\", m=\"get\", quantile=\"0.99\"} 2\n"
                  "s_count{instance=\"i1\", job=\"j\", m=\"get\"} 3\n"
                  "s_sum{instance=\"i1\", job=\"j\", m=\"get\"} 6\n"
                  "u{instance=\"i1\", job=\"j\"} 3\n");
    char *l = listing(f);
    assert_non_null(strstr(l, "\"g\":{\"time_stamp\":\"T\",\"type\":\"GAUGE\",\"help\":\"A gauge.\""));
    assert_non_null(strstr(l, "\"type\":\"HISTOGRAM\",\"help\":\"A histogram.\",\"metrics\":[{"
                              "\"buckets\":{\"+Inf\":\"3\",\"1\":\"1\",\"2.5\":\"2\"},"
                              "\"count\":\"3\",\"labels\":{\"instance\":\"i1\",\"job\":\"j\"},"
                              "\"sum\":\"6\"}]}"));
    assert_non_null(strstr(l, "\"quantiles\":{\"0.5\":\"1\",\"0.99\":\"2\"},\"sum\":\"6\""));
    assert_non_null(strstr(l, "\"u\":{\"time_stamp\":\"T\",\"type\":\"UNTYPED\",\"metrics\""));
    free(l);

    /* POST replaces the families of the same names only. */
    add(&b, family("g", BONGSU__PM__METRIC_TYPE__GAUGE, "A gauge.", 1, mgauge("x=1", 9)));
    assert_int_equal(send_pb(f, "POST", "/metrics/job/j/instance/i1", &b), 200);
    ASSERT_VALUES(f->db, "__name__=~g|u",
                  "g{instance=\"i1\", job=\"j\", x=\"1\"} 2.5 9\n"
                  "g{instance=\"i1\", job=\"j\", x=\"2\"} -1 stale\n"
                  "u{instance=\"i1\", job=\"j\"} 3 3\n");
    /* An empty body is an empty push: PUT empties the group. */
    assert_int_equal(send_raw(f, "/metrics/job/j/instance/i1", "", 0), 200);
    ASSERT_VALUES(f->db, "__name__=u", "u{instance=\"i1\", job=\"j\"} 3 3 stale\n");
    bs_buf_fini(&b);
}

/* ------------------------------------------------------- text == protobuf */

static const char same_text[] =
    "# HELP req_total Requests.\n# TYPE req_total counter\n"
    "req_total{code=\"200\",path=\"/a\"} 10\nreq_total{code=\"500\",path=\"/a\"} 1\n"
    "# HELP temp Temperature.\n# TYPE temp gauge\ntemp{room=\"\"} 21.5\n"
    "# TYPE raw untyped\nraw 1e-05\n"
    "# HELP lat Latency.\n# TYPE lat summary\nlat{quantile=\"0.5\"} 0.25\n"
    "lat{quantile=\"0.9\"} 0.75\nlat_sum 12\nlat_count 40\n"
    "# HELP dur Duration.\n# TYPE dur histogram\ndur_bucket{op=\"r\",le=\"0.1\"} 2\n"
    "dur_bucket{op=\"r\",le=\"1\"} 5\ndur_bucket{op=\"r\",le=\"+Inf\"} 6\ndur_sum{op=\"r\"} 4.5\n"
    "dur_count{op=\"r\"} 6\n";

static void push_same_pb(struct fx *f, const char *path)
{
    struct bs_buf b;
    bs_buf_init(&b, 0);
    add(&b, family("req_total", BONGSU__PM__METRIC_TYPE__COUNTER, "Requests.", 2,
                   mcounter("path=/a,code=200", 10), mcounter("code=500,path=/a", 1)));
    add(&b, family("temp", BONGSU__PM__METRIC_TYPE__GAUGE, "Temperature.", 1,
                   mgauge("room=", 21.5)));
    add(&b, family("raw", BONGSU__PM__METRIC_TYPE__UNTYPED, NULL, 1, muntyped("", 1e-05)));
    add(&b, family("lat", BONGSU__PM__METRIC_TYPE__SUMMARY, "Latency.", 1,
                   msummary("", 40, 12, 2, (const double[]){0.5, 0.25, 0.9, 0.75})));
    add(&b, family("dur", BONGSU__PM__METRIC_TYPE__HISTOGRAM, "Duration.", 1,
                   mhist("op=r", 6, 4.5, 2, (const double[]){0.1, 2, 1, 5})));
    assert_int_equal(send_pb(f, "PUT", path, &b), 200);
    bs_buf_fini(&b);
}

static void test_same_as_text(void **state)
{
    struct fx *f = *state; /* the protobuf store */
    struct fx *t = fx_new(NULL);
    const char *path = "/metrics/job/same/zone@base64/=";
    assert_int_equal(do_send(t, "PUT", path, NULL, same_text, strlen(same_text)), 200);
    push_same_pb(f, path);
    char *lt = listing(t), *lp = listing(f);
    assert_string_equal(lp, lt);
    char *vt = values(t->db, "job=same"), *vp = values(f->db, "job=same");
    /* push_time_seconds differs; everything before it is the same. */
    char *cut_t = strstr(vt, "push_time_seconds"), *cut_p = strstr(vp, "push_time_seconds");
    assert_non_null(cut_t);
    assert_non_null(cut_p);
    *cut_t = *cut_p = '\0';
    assert_string_equal(vp, vt);
    assert_non_null(strstr(vp, "dur_bucket{job=\"same\", le=\"0.1\", op=\"r\"} 2\n"));
    free(vt);
    free(vp);

    /* The groups file holds the same thing: reopened, the listing stays. */
    ingest_push_free(f->pg);
    struct bs_error err = {0};
    assert_int_equal(ingest_push_new(&f->pg, f->db, f->dir, 0, NULL, &err), 0);
    char *lr = listing(f);
    assert_string_equal(lr, lt);
    free(lr);
    free(lt);
    free(lp);

    /* Consistency checks see protobuf pushes as text ones: a gauge where
     * another group has the counter req_total is refused the same way. */
    struct bs_buf b;
    bs_buf_init(&b, 0);
    add(&b, family("req_total", BONGSU__PM__METRIC_TYPE__GAUGE, NULL, 1, mgauge("", 1)));
    assert_int_equal(send_pb(f, "PUT", "/metrics/job/other", &b), 400);
    char want[sizeof(body_out)];
    snprintf(want, sizeof(want), "%s", body_out);
    assert_int_equal(do_send(t, "PUT", "/metrics/job/other", NULL, "# TYPE req_total gauge\nreq_total 1\n",
                          strlen("# TYPE req_total gauge\nreq_total 1\n")),
                     400);
    assert_string_equal(body_out, want);
    assert_non_null(strstr(want, "is not a COUNTER"));
    /* Duplicate series across groups: {job="same", room=""} stores as
     * {job="same"}, where temp already is. */
    add(&b, family("temp", BONGSU__PM__METRIC_TYPE__GAUGE, NULL, 1, mgauge("", 1)));
    assert_int_equal(send_pb(f, "PUT", "/metrics/job/same/room@base64/=", &b), 400);
    snprintf(want, sizeof(want), "%s", body_out);
    assert_int_equal(do_send(t, "PUT", "/metrics/job/same/room@base64/=", NULL, "# TYPE temp gauge\ntemp 1\n",
                             strlen("# TYPE temp gauge\ntemp 1\n")),
                     400);
    assert_string_equal(body_out, want);
    assert_non_null(strstr(want, "was collected before with the same name and label values"));
    bs_buf_fini(&b);
    fx_free(t);
}

/* ---------------------------------------------------------- edge cases */

static void test_content_types(void **state)
{
    struct fx *f = *state;
    struct bs_buf b;
    bs_buf_init(&b, 0);
    add(&b, family("x", BONGSU__PM__METRIC_TYPE__GAUGE, NULL, 1, mgauge("", 1)));
    static const char *const ok[] = {
        CT_PB,
        "application/vnd.google.protobuf;encoding=delimited;proto=io.prometheus.client.MetricFamily",
        "Application/Vnd.Google.Protobuf; Proto=\"io.prometheus.client.MetricFamily\"; "
        "Encoding=\"delimited\"",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(*ok); i++)
        assert_int_equal(do_send(f, "PUT", "/metrics/job/ct", ok[i], b.data, b.len), 200);
    /* Other protobuf messages or encodings: 415 (the Pushgateway would try
     * the text parser and answer 400). */
    assert_int_equal(do_send(f, "PUT", "/metrics/job/ct", "application/vnd.google.protobuf",
                          b.data, b.len),
                     415);
    assert_int_equal(do_send(f, "PUT", "/metrics/job/ct",
                          "application/vnd.google.protobuf; proto=io.prometheus.client."
                          "MetricFamily; encoding=text",
                          b.data, b.len),
                     415);
    /* Anything else is the text format. */
    assert_int_equal(do_send(f, "PUT", "/metrics/job/ct", "text/plain; version=0.0.4", "x 2\n", 4),
                     200);
    assert_int_equal(do_send(f, "PUT", "/metrics/job/ct", "application/vnd.google.protobufx",
                          "x 3\n", 4),
                     200);
    ASSERT_VALUES(f->db, "__name__=x", "x{job=\"ct\"} 1 1 1 2 3\n");
    bs_buf_fini(&b);
}

static void test_last_family_wins(void **state)
{
    struct fx *f = *state;
    struct bs_buf b;
    bs_buf_init(&b, 0);
    /* As the Pushgateway's map of families: the later one replaces. */
    add(&b, family("x", BONGSU__PM__METRIC_TYPE__COUNTER, "first", 2, mcounter("a=1", 1),
                   mcounter("a=2", 2)));
    add(&b, family("x", BONGSU__PM__METRIC_TYPE__GAUGE, "second", 1, mgauge("a=3", 3)));
    /* A family without metrics is dropped; so is a repeated one emptied. */
    add(&b, family("y", BONGSU__PM__METRIC_TYPE__GAUGE, NULL, 1, mgauge("", 1)));
    add(&b, family("y", BONGSU__PM__METRIC_TYPE__GAUGE, NULL, 0));
    add(&b, family("z", BONGSU__PM__METRIC_TYPE__GAUGE, NULL, 0));
    bs_buf_append(&b, "\x00", 1); /* an empty message: no name, no metrics */
    assert_int_equal(send_pb(f, "PUT", "/metrics/job/lw", &b), 200);
    ASSERT_VALUES(f->db, "job=lw", "push_failure_time_seconds{job=\"lw\"} 0\n"
                                   "push_time_seconds{job=\"lw\"} V\n"
                                   "x{a=\"3\", job=\"lw\"} 3\n");
}


/* A refused body: status, the start of the message, no group touched. */
static void refused(struct fx *f, int status, const char *bytes, size_t len, const char *want)
{
    size_t before = ingest_push_group_count(f->pg);
    assert_int_equal(send_raw(f, "/metrics/job/bad", bytes, len), status);
    if (!strstr(body_out, want))
        fail_msg("want \"%s\" in \"%s\"", want, body_out);
    assert_int_equal(ingest_push_group_count(f->pg), before);
}

static void refused_fam(struct fx *f, const Bongsu__Pm__MetricFamily *fam, const char *want)
{
    struct bs_buf b;
    bs_buf_init(&b, 0);
    add(&b, fam);
    refused(f, 400, b.data, b.len, want);
    bs_buf_fini(&b);
}

static void test_refusals(void **state)
{
    struct fx *f = *state;
    const char *e = "protobuf delimited format parsing error: ";
    char want[256];
    /* Framing. */
    refused(f, 400, "\x80", 1, "message 1: truncated length prefix at byte 0");
    refused(f, 400, "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", 11,
            "message 1: invalid length prefix at byte 0 (varint too long)");
    refused(f, 400, "\x0a\x0a\x01x", 4,
            "message 1: truncated message: the length prefix at byte 0 says 10 bytes, 3 are left");
    /* The second message is cut: nothing of the first is applied. */
    refused(f, 400, "\x05\x0a\x01x\x18\x01\x05\x0a", 8, "message 2: truncated message");
    /* Field 1 (name, bytes) announcing more bytes than the message has. */
    refused(f, 400, "\x03\x0a\x05x", 4,
            "message 1: not a valid io.prometheus.client.MetricFamily message (3 bytes at byte 0)");
    /* Field 3 (type) sent with the wrong wire type. */
    refused(f, 400, "\x02\x1a\x00", 3, "not a valid io.prometheus.client.MetricFamily message");
    snprintf(want, sizeof(want), "%smessage 1", e);
    refused(f, 400, "\x80", 1, want);
    /* Over the per-message cap: 413 before looking for the bytes. */
    refused(f, 413, "\xff\xff\xff\x7f", 4,
            "protobuf message 1 is 268435455 bytes long, over the limit of 16777216 bytes");

    /* Content. */
    refused_fam(f, family("x", 9, NULL, 1, mgauge("", 1)),
                "message 1, family \"x\": unknown metric type 9");
    refused_fam(f, family("x", BONGSU__PM__METRIC_TYPE__GAUGE_HISTOGRAM, NULL, 1, mhist("", 1, 1, 0, NULL)),
                "family \"x\": gauge histograms are not supported");
    refused_fam(f, family("x", BONGSU__PM__METRIC_TYPE__GAUGE, NULL, 2, mgauge("", 1), mcounter("a=b", 1)),
                "family \"x\", metric 2: no gauge value in a GAUGE family");
    refused_fam(f, family("x", BONGSU__PM__METRIC_TYPE__SUMMARY, NULL, 1, mgauge("", 1)),
                "metric 1: no summary in a SUMMARY family");
    refused_fam(f, family("x", BONGSU__PM__METRIC_TYPE__HISTOGRAM, NULL, 1, mgauge("", 1)),
                "metric 1: no histogram in a HISTOGRAM family");
    refused_fam(f, family("1x", BONGSU__PM__METRIC_TYPE__GAUGE, NULL, 1, mgauge("", 1)),
                "family \"1x\": invalid metric name");
    refused_fam(f, family("", BONGSU__PM__METRIC_TYPE__GAUGE, NULL, 1, mgauge("", 1)),
                "family \"\": invalid metric name");
    refused_fam(f, family("x", BONGSU__PM__METRIC_TYPE__GAUGE, NULL, 1, mgauge("1a=v", 1)),
                "invalid label name \"1a\"");
    refused_fam(f, family("x", BONGSU__PM__METRIC_TYPE__GAUGE, NULL, 1, mgauge("__name__=v", 1)),
                "invalid label name \"__name__\"");
    refused_fam(f, family("x", BONGSU__PM__METRIC_TYPE__GAUGE, NULL, 1, mgauge("b=1,a=2,b=3", 1)),
                "metric 1: two or more labels named \"b\"");
    refused_fam(f, family("x", BONGSU__PM__METRIC_TYPE__SUMMARY, NULL, 1,
                          msummary("quantile=1", 1, 1, 0, NULL)),
                "must not have an explicit \"quantile\" label");
    refused_fam(f, family("x", BONGSU__PM__METRIC_TYPE__HISTOGRAM, NULL, 1,
                          mhist("le=1", 1, 1, 0, NULL)),
                "must not have an explicit \"le\" label");
    refused_fam(f, family("x", BONGSU__PM__METRIC_TYPE__GAUGE, NULL, 1, mgauge("a=\xff", 1)),
                "the value of label \"a\" is not valid UTF-8");
    refused_fam(f, family("x", BONGSU__PM__METRIC_TYPE__GAUGE, "\xc3", 1, mgauge("", 1)),
                "family \"x\": help text is not valid UTF-8");
    Bongsu__Pm__MetricFamily *nul = family("x", BONGSU__PM__METRIC_TYPE__GAUGE, NULL, 1,
                                           mgauge("a=v", 1));
    nul->metric[0]->label[0]->value.len = 2; /* "v\0" */
    refused_fam(f, nul, "the value of label \"a\" is not valid UTF-8");

    /* Timestamps go through the consistency checks, as in the text path:
     * 400 with the Pushgateway's words, and the group records the failure. */
    struct bs_buf b;
    bs_buf_init(&b, 0);
    Bongsu__Pm__Metric *ts = mgauge("", 1);
    ts->has_timestamp_ms = 1;
    ts->timestamp_ms = 1000;
    add(&b, family("x", BONGSU__PM__METRIC_TYPE__GAUGE, NULL, 1, ts));
    assert_int_equal(send_pb(f, "PUT", "/metrics/job/ts", &b), 400);
    assert_string_equal(body_out, "pushed metrics are invalid or inconsistent with existing "
                                  "metrics: pushed metrics must not have timestamps\n");
    assert_int_equal(ingest_push_group_count(f->pg), 1);
    bs_buf_fini(&b);
}

static void test_limits(void **state)
{
    struct fx *f = *state;
    ingest_push_free(f->pg);
    struct ingest_limits lim;
    ingest_limits_default(&lim);
    lim.max_series_per_request = 5;
    lim.max_decode_memory = 64 * 1024;
    struct bs_error err = {0};
    assert_int_equal(ingest_push_new(&f->pg, f->db, NULL, 0, &lim, &err), 0);
    struct bs_buf b;
    bs_buf_init(&b, 0);
    /* A histogram of two buckets is five series: at the limit. */
    add(&b, family("h", BONGSU__PM__METRIC_TYPE__HISTOGRAM, NULL, 1,
                   mhist("", 2, 1, 2, (const double[]){1, 1, 2, 2})));
    assert_int_equal(send_pb(f, "PUT", "/metrics/job/l", &b), 200);
    add(&b, family("h", BONGSU__PM__METRIC_TYPE__HISTOGRAM, NULL, 1,
                   mhist("", 2, 1, 2, (const double[]){1, 1, 2, 2})));
    add(&b, family("g", BONGSU__PM__METRIC_TYPE__GAUGE, NULL, 1, mgauge("", 1)));
    assert_int_equal(send_pb(f, "PUT", "/metrics/job/l", &b), 413);
    assert_string_equal(body_out, "push has more than 5 series, the limit\n");
    /* A later family replacing an earlier one gives its series back. */
    add(&b, family("g", BONGSU__PM__METRIC_TYPE__GAUGE, NULL, 2, mgauge("a=1", 1),
                   mgauge("a=2", 1)));
    add(&b, family("g", BONGSU__PM__METRIC_TYPE__GAUGE, NULL, 1, mgauge("", 1)));
    add(&b, family("h", BONGSU__PM__METRIC_TYPE__HISTOGRAM, NULL, 1,
                   mhist("", 2, 1, 1, (const double[]){1, 1})));
    assert_int_equal(send_pb(f, "PUT", "/metrics/job/l", &b), 200);

    bs_buf_fini(&b);
}

static void test_decode_memory(void **state)
{
    struct fx *f = *state;
    ingest_push_free(f->pg);
    struct ingest_limits lim;
    ingest_limits_default(&lim);
    lim.max_decode_memory = 64 * 1024;
    struct bs_error err = {0};
    assert_int_equal(ingest_push_new(&f->pg, f->db, NULL, 0, &lim, &err), 0);
    /* Counted over the whole request: a metric holding an empty untyped
     * value is four bytes on the wire and far more in memory. Each message
     * alone is well under the cap (and replaces the one before, so the
     * series stay few); together they are not. */
    struct bs_buf b;
    bs_buf_init(&b, 0);
    for (int k = 0; k < 60; k++) {
        bs_buf_putc(&b, 125); /* the length: 5 + 30 * 4 */
        bs_buf_append(&b, "\x0a\x01x\x18\x03", 5);
        for (int i = 0; i < 30; i++)
            bs_buf_append(&b, "\x22\x02\x2a\x00", 4);
    }
    struct bs_buf one;
    bs_buf_init(&one, 0);
    bs_buf_append(&one, b.data, 126);
    /* One message: decodes, then 30 equal series are duplicates. */
    assert_int_equal(send_pb(f, "PUT", "/metrics/job/m", &one), 400);
    assert_non_null(strstr(body_out, "was collected before"));
    assert_int_equal(send_pb(f, "PUT", "/metrics/job/m", &b), 413);
    assert_string_equal(body_out,
                        "decoding the protobuf body needs more than 65536 bytes of memory\n");
    bs_buf_fini(&one);
    bs_buf_fini(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_every_type, arena_setup, arena_teardown),
        cmocka_unit_test_setup_teardown(test_same_as_text, arena_setup, arena_teardown),
        cmocka_unit_test_setup_teardown(test_content_types, arena_setup, arena_teardown),
        cmocka_unit_test_setup_teardown(test_last_family_wins, arena_setup, arena_teardown),
        cmocka_unit_test_setup_teardown(test_refusals, arena_setup, arena_teardown),
        cmocka_unit_test_setup_teardown(test_limits, arena_setup, arena_teardown),
        cmocka_unit_test_setup_teardown(test_decode_memory, arena_setup, arena_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
