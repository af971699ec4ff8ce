/* SPDX-License-Identifier: Apache-2.0
 *
 * Unit tests of the remote-write receiver. Requests are built in the test
 * with the protobuf-c code generated from src/ingest/remote_write.proto,
 * packed and snappy-compressed, then handed to ingest_remote_write() with a
 * real tsdb in a temporary directory; what was stored is read back through
 * the querier. Covers statuses and messages (204, 400, 413, 415, 500 is
 * not reachable here), partial writes, label validation, limits, and the
 * 2.0 symbols table with its written-count headers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <snappy-c.h>

#include "ingest/ingest.h"
#include "ingest/ingest_int.h"
#include "ingest/remote_write.pb-c.h"
#include "test_tsdb_util.h"

#define CT_V1 "application/x-protobuf"
#define CT_V2 "application/x-protobuf;proto=io.prometheus.write.v2.Request"

/* ------------------------------------------------------------- encoding */

static uint8_t *compress(const void *p, size_t n, size_t *out_len)
{
    size_t cap = snappy_max_compressed_length(n);
    uint8_t *out = malloc(cap);
    assert_non_null(out);
    *out_len = cap;
    assert_int_equal(snappy_compress(p, n, (char *)out, out_len), SNAPPY_OK);
    return out;
}

static uint8_t *pack_compress(const ProtobufCMessage *m, size_t *out_len)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *raw = malloc(n ? n : 1);
    assert_non_null(raw);
    assert_int_equal(protobuf_c_message_pack(m, raw), n);
    uint8_t *z = compress(raw, n, out_len);
    free(raw);
    return z;
}

static ProtobufCBinaryData bin(const char *s)
{
    ProtobufCBinaryData d = {strlen(s), (uint8_t *)strdup(s)};
    return d;
}

/* A 1.0 series from "k=v,k=v" (order kept, so tests can send it unsorted)
 * and samples "t:v t:v". Heap-allocated the way protobuf-c frees it. */
static Bongsu__Rw__TimeSeries *v1_series(const char *spec, const char *samples)
{
    Bongsu__Rw__TimeSeries *ts = malloc(sizeof(*ts));
    bongsu__rw__time_series__init(ts);
    ts->labels = calloc(32, sizeof(*ts->labels));
    char *copy = strdup(spec), *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        assert_non_null(eq);
        *eq = '\0';
        Bongsu__Rw__Label *l = malloc(sizeof(*l));
        bongsu__rw__label__init(l);
        l->name = bin(tok);
        l->value = bin(eq + 1);
        ts->labels[ts->n_labels++] = l;
    }
    free(copy);
    ts->samples = calloc(64, sizeof(*ts->samples));
    copy = strdup(samples);
    for (char *tok = strtok_r(copy, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        Bongsu__Rw__Sample *s = malloc(sizeof(*s));
        bongsu__rw__sample__init(s);
        s->timestamp = strtoll(tok, &tok, 10);
        assert_int_equal(*tok, ':');
        s->value = strtod(tok + 1, NULL);
        ts->samples[ts->n_samples++] = s;
    }
    free(copy);
    return ts;
}

/* Encode and compress a 1.0 request of the given series (NULL-terminated
 * list); frees the series. */
static uint8_t *v1_request(size_t *len, ...)
{
    Bongsu__Rw__WriteRequest *req = malloc(sizeof(*req));
    bongsu__rw__write_request__init(req);
    req->timeseries = calloc(64, sizeof(*req->timeseries));
    va_list ap;
    va_start(ap, len);
    Bongsu__Rw__TimeSeries *ts;
    while ((ts = va_arg(ap, Bongsu__Rw__TimeSeries *)))
        req->timeseries[req->n_timeseries++] = ts;
    va_end(ap);
    uint8_t *z = pack_compress(&req->base, len);
    protobuf_c_message_free_unpacked(&req->base, NULL);
    return z;
}

struct test_ctx {
    char *dir;
    struct tsdb *db;
    struct ingest_limits lim;
    struct ingest_response resp;
};

static int setup(void **state)
{
    struct test_ctx *t = calloc(1, sizeof(*t));
    t->dir = make_tmpdir();
    t->db = open_db(t->dir, 1000, 0);
    ingest_limits_default(&t->lim);
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    struct test_ctx *t = *state;
    ingest_response_fini(&t->resp);
    tsdb_close(t->db);
    rmrf(t->dir);
    free(t->dir);
    free(t);
    return 0;
}

/* Send body and return the status; the response stays in t->resp. */
static int send_rw(struct test_ctx *t, const char *ct, const char *enc, uint8_t *body, size_t len)
{
    ingest_response_fini(&t->resp);
    assert_int_equal(ingest_remote_write(t->db, &t->lim, ct, enc, NULL, body, len, &t->resp), 0);
    free(body);
    if (t->resp.status == 204)
        assert_null(t->resp.body);
    else
        assert_non_null(t->resp.body);
    return t->resp.status;
}

static void assert_body_has(struct test_ctx *t, const char *needle)
{
    if (!t->resp.body || !strstr(t->resp.body, needle))
        fail_msg("body %s lacks \"%s\"", t->resp.body ? t->resp.body : "(null)", needle);
}

static void assert_query(struct test_ctx *t, const char *matchers, const char *want)
{
    char *got = dump_query(t->db, INT64_MIN, INT64_MAX, matchers, true);
    assert_string_equal(got, want);
    free(got);
}

static const char *header(struct test_ctx *t, const char *name)
{
    for (size_t i = 0; i < t->resp.nheaders; i++)
        if (strcmp(t->resp.headers[i].name, name) == 0)
            return t->resp.headers[i].value;
    return NULL;
}

/* ------------------------------------------------------------------ 1.0 */

static void test_v1_ok(void **state)
{
    struct test_ctx *t = *state;
    size_t len;
    uint8_t *body = v1_request(&len, v1_series("__name__=up,job=a", "1000:1 2000:0"),
                               v1_series("__name__=up,instance=h:1,job=b", "1500:1"),
                               v1_series("__name__=rate,job=a", "1000:0.25"), NULL);
    assert_int_equal(send_rw(t, CT_V1 ";proto=prometheus.WriteRequest", "snappy", body, len), 204);
    assert_null(t->resp.content_type);
    assert_int_equal(t->resp.nheaders, 0);
    assert_query(t, "__name__=~up|rate",
                 "rate{job=\"a\"} 1000:0.25\n"
                 "up{instance=\"h:1\", job=\"b\"} 1500:1\n"
                 "up{job=\"a\"} 1000:1 2000:0\n");
}

static void test_v1_defaults_without_headers(void **state)
{
    struct test_ctx *t = *state;
    size_t len;
    uint8_t *body = v1_request(&len, v1_series("__name__=x", "5:5"), NULL);
    /* No Content-Type and no Content-Encoding: 1.0 and snappy. */
    assert_int_equal(send_rw(t, NULL, NULL, body, len), 204);
    body = v1_request(&len, v1_series("__name__=x", "6:6"), NULL);
    assert_int_equal(send_rw(t, " Application/X-Protobuf ; charset=utf-8", "SNAPPY", body, len),
                     204);
    /* An empty request is fine too. */
    body = v1_request(&len, NULL);
    assert_int_equal(send_rw(t, CT_V1, "snappy", body, len), 204);
    assert_query(t, "__name__=x", "x 5:5 6:6\n");
}

static void test_bad_snappy(void **state)
{
    struct test_ctx *t = *state;
    uint8_t *body = malloc(8);
    memcpy(body, "\xff\xff\xff\xff\xff\xff\xff\xff", 8); /* overlong length preamble */
    assert_int_equal(send_rw(t, CT_V1, "snappy", body, 8), 400);
    assert_body_has(t, "snappy");
    assert_string_equal(t->resp.content_type, INGEST_TEXT_PLAIN);

    /* A plausible preamble with a truncated stream. */
    size_t len;
    body = v1_request(&len, v1_series("__name__=x", "1:1"), NULL);
    assert_int_equal(send_rw(t, CT_V1, "snappy", body, len - 3), 400);
    assert_body_has(t, "snappy: corrupt input");

    /* An empty body has no snappy preamble. */
    assert_int_equal(send_rw(t, CT_V1, NULL, (uint8_t *)strdup(""), 0), 400);
    assert_query(t, "__name__=x", "");
}

static void test_bad_protobuf(void **state)
{
    struct test_ctx *t = *state;
    size_t len;
    /* Field 1 with wire type 2 and a length past the end. */
    uint8_t *body = compress("\x0a\x7f\x0a\x02", 4, &len);
    assert_int_equal(send_rw(t, CT_V1, "snappy", body, len), 400);
    assert_body_has(t, "proto: cannot parse prometheus.WriteRequest");
    /* Wire type 7 does not exist. */
    body = compress("\x0f\x00", 2, &len);
    assert_int_equal(send_rw(t, CT_V2, "snappy", body, len), 400);
    assert_body_has(t, "io.prometheus.write.v2.Request");
}

static void test_unsupported_media(void **state)
{
    struct test_ctx *t = *state;
    size_t len;
    uint8_t *body = v1_request(&len, v1_series("__name__=x", "1:1"), NULL);
    uint8_t *copy = malloc(len);
    memcpy(copy, body, len);
    assert_int_equal(send_rw(t, "text/plain", "snappy", body, len), 415);
    assert_body_has(t, "expected application/x-protobuf as the first (media) part, got text/plain");

    body = malloc(len);
    memcpy(body, copy, len);
    assert_int_equal(send_rw(t, CT_V1 ";proto=io.prometheus.write.v3.Request", "snappy", body, len),
                     415);
    assert_body_has(t, "unknown remote write protobuf message io.prometheus.write.v3.Request");

    body = malloc(len);
    memcpy(body, copy, len);
    assert_int_equal(send_rw(t, CT_V1 ";proto", "snappy", body, len), 415);
    assert_body_has(t, "key-values");

    body = malloc(len);
    memcpy(body, copy, len);
    assert_int_equal(send_rw(t, CT_V1, "gzip", body, len), 415);
    assert_body_has(t, "gzip encoding (compression) is not accepted by this server; only snappy");
    free(copy);
    assert_query(t, "__name__=x", "");
}

static void test_v1_out_of_order_partial(void **state)
{
    struct test_ctx *t = *state;
    size_t len;
    uint8_t *body = v1_request(&len, v1_series("__name__=m,job=a", "1000:1 2000:2"), NULL);
    assert_int_equal(send_rw(t, CT_V1, "snappy", body, len), 204);

    /* 1500 is out of order, 2000 with another value is a duplicate; 3000
     * and the other series are stored. */
    body = v1_request(&len, v1_series("__name__=m,job=a", "1500:9 2000:7 3000:3"),
                      v1_series("__name__=m,job=b", "1000:10"), NULL);
    assert_int_equal(send_rw(t, CT_V1, "snappy", body, len), 400);
    assert_body_has(t, "out of order sample for series m{job=\"a\"} at timestamp 1500");
    assert_body_has(t, "duplicate sample for timestamp for series m{job=\"a\"} at timestamp 2000");
    assert_query(t, "__name__=m", "m{job=\"a\"} 1000:1 2000:2 3000:3\nm{job=\"b\"} 1000:10\n");

    /* Same timestamp, same value: accepted and ignored, as Prometheus. */
    body = v1_request(&len, v1_series("__name__=m,job=a", "3000:3"), NULL);
    assert_int_equal(send_rw(t, CT_V1, "snappy", body, len), 204);

    /* Too far in the future. */
    char spec[64];
    snprintf(spec, sizeof(spec), "%lld:1", (long long)(bs_now_ms() + 3600 * 1000));
    body = v1_request(&len, v1_series("__name__=m,job=c", spec), NULL);
    assert_int_equal(send_rw(t, CT_V1, "snappy", body, len), 400);
    assert_body_has(t,
                    "out of bounds: timestamp is too far in the future for series m{job=\"c\"} at");
}

static void test_v1_labels(void **state)
{
    struct test_ctx *t = *state;
    size_t len;
    /* Unsorted labels are sorted; empty values dropped. */
    uint8_t *body = v1_request(&len, v1_series("job=a,__name__=s,empty=,zone=z", "1:1"), NULL);
    assert_int_equal(send_rw(t, CT_V1, "snappy", body, len), 204);
    assert_query(t, "__name__=s", "s{job=\"a\", zone=\"z\"} 1:1\n");

    /* Each invalid series is refused with its reason; the valid one stays. */
    body =
        v1_request(&len, v1_series("__name__=s,job=a,job=b", "2:2"),
                   v1_series("job=nameless", "2:2"), v1_series("__name__=s,9bad=x", "2:2"),
                   v1_series("__name__=s,=x", "2:2"), v1_series("__name__=s,job=ok", "2:2"), NULL);
    assert_int_equal(send_rw(t, CT_V1, "snappy", body, len), 400);
    assert_body_has(t,
                    "duplicate label name job for series {__name__=\"s\", job=\"a\", job=\"b\"}");
    assert_body_has(t, "missing metric name (label __name__) for series {job=\"nameless\"}");
    assert_body_has(t, "invalid label name 9bad");
    assert_body_has(t, "invalid label name \"\"");
    assert_query(t, "__name__=s", "s{job=\"a\", zone=\"z\"} 1:1\ns{job=\"ok\"} 2:2\n");

    /* NUL bytes and invalid UTF-8 in values. */
    Bongsu__Rw__TimeSeries *ts = v1_series("__name__=s,job=x", "3:3");
    ts->labels[1]->value.data[0] = 0xff;
    Bongsu__Rw__TimeSeries *ts2 = v1_series("__name__=s,job=x", "3:3");
    ts2->labels[1]->value.data[0] = 0;
    body = v1_request(&len, ts, ts2, NULL);
    assert_int_equal(send_rw(t, CT_V1, "snappy", body, len), 400);
    assert_body_has(t, "value of label job is not valid UTF-8");
    assert_body_has(t, "contains a NUL byte");
    assert_query(t, "__name__=s;job=x", "");
}

static void test_limits(void **state)
{
    struct test_ctx *t = *state;
    size_t len;
    uint8_t *body = v1_request(&len, v1_series("__name__=l,job=a", "1:1"),
                               v1_series("__name__=l,job=b", "1:1"), NULL);
    uint8_t *copy = malloc(len);
    memcpy(copy, body, len);

    t->lim.max_body_bytes = len - 1;
    assert_int_equal(send_rw(t, CT_V1, "snappy", body, len), 413);
    assert_body_has(t, "exceeds the limit");
    ingest_limits_default(&t->lim);

    /* The decoded size is refused from the snappy preamble alone: a body
     * claiming 1 GiB never gets a buffer. */
    uint8_t pre[5] = {0x80, 0x80, 0x80, 0x80, 0x04}; /* varint 1 GiB */
    body = malloc(5);
    memcpy(body, pre, 5);
    assert_int_equal(send_rw(t, CT_V1, "snappy", body, 5), 413);
    assert_body_has(t, "decompressed request of 1073741824 bytes exceeds the limit");

    t->lim.max_series_per_request = 1;
    body = malloc(len);
    memcpy(body, copy, len);
    assert_int_equal(send_rw(t, CT_V1, "snappy", body, len), 413);
    assert_body_has(t, "request has 2 series, more than the limit of 1");
    ingest_limits_default(&t->lim);

    t->lim.max_decode_memory = 64;
    body = malloc(len);
    memcpy(body, copy, len);
    assert_int_equal(send_rw(t, CT_V1, "snappy", body, len), 413);
    assert_body_has(t, "needs more than 64 bytes of memory");
    ingest_limits_default(&t->lim);
    assert_query(t, "__name__=l", "");

    t->lim.max_labels_per_series = 1;
    body = malloc(len);
    memcpy(body, copy, len);
    assert_int_equal(send_rw(t, CT_V1, "snappy", body, len), 400);
    assert_body_has(t, "series has 2 labels, more than the limit of 1");
    ingest_limits_default(&t->lim);
    assert_query(t, "__name__=l", "");

    assert_int_equal(send_rw(t, CT_V1, "snappy", copy, len), 204);
    assert_query(t, "__name__=l", "l{job=\"a\"} 1:1\nl{job=\"b\"} 1:1\n");
}

/* A body built to expand: many empty Sample submessages (2 bytes each on
 * the wire, ~50 bytes decoded) must hit the decode memory cap. */
static void test_expansion_capped(void **state)
{
    struct test_ctx *t = *state;
    size_t n = 1 << 20;
    uint8_t *inner = malloc(2 * n), *outer = malloc(2 * n + 16);
    for (size_t i = 0; i < n; i++) {
        inner[2 * i] = 0x12; /* TimeSeries.samples, length-delimited */
        inner[2 * i + 1] = 0;
    }
    size_t o = 0;
    outer[o++] = 0x0a; /* WriteRequest.timeseries */
    o += bs_put_uvarint(outer + o, 2 * n);
    memcpy(outer + o, inner, 2 * n);
    o += 2 * n;
    free(inner);
    size_t len;
    uint8_t *body = compress(outer, o, &len);
    free(outer);
    t->lim.max_decode_memory = 16 << 20;
    assert_int_equal(send_rw(t, CT_V1, "snappy", body, len), 413);
    assert_body_has(t, "bytes of memory");
}

/* ------------------------------------------------------------------ 2.0 */

struct v2 {
    Bongsu__Rw__V2Request *req;
};

static void v2_init(struct v2 *v, const char *const *syms, size_t nsyms)
{
    v->req = malloc(sizeof(*v->req));
    bongsu__rw__v2_request__init(v->req);
    v->req->symbols = calloc(nsyms, sizeof(*v->req->symbols));
    for (size_t i = 0; i < nsyms; i++)
        v->req->symbols[i] = bin(syms[i]);
    v->req->n_symbols = nsyms;
    v->req->timeseries = calloc(16, sizeof(*v->req->timeseries));
}

static Bongsu__Rw__V2TimeSeries *v2_series(struct v2 *v, const uint32_t *refs, size_t nrefs,
                                           const char *samples)
{
    Bongsu__Rw__V2TimeSeries *ts = malloc(sizeof(*ts));
    bongsu__rw__v2_time_series__init(ts);
    ts->labels_refs = malloc(nrefs * sizeof(uint32_t) + 1);
    memcpy(ts->labels_refs, refs, nrefs * sizeof(uint32_t));
    ts->n_labels_refs = nrefs;
    /* Reuse the 1.0 sample parser. */
    Bongsu__Rw__TimeSeries *tmp = v1_series("", samples);
    ts->samples = tmp->samples;
    ts->n_samples = tmp->n_samples;
    tmp->samples = NULL;
    tmp->n_samples = 0;
    protobuf_c_message_free_unpacked(&tmp->base, NULL);
    v->req->timeseries[v->req->n_timeseries++] = ts;
    return ts;
}

static uint8_t *v2_finish(struct v2 *v, size_t *len)
{
    uint8_t *z = pack_compress(&v->req->base, len);
    protobuf_c_message_free_unpacked(&v->req->base, NULL);
    v->req = NULL;
    return z;
}

static void test_v2_symbols_and_headers(void **state)
{
    struct test_ctx *t = *state;
    static const char *const syms[] = {"",     "__name__", "http_requests_total", "job",    "api",
                                       "code", "200",      "help text",           "seconds"};
    struct v2 v;
    v2_init(&v, syms, 9);
    Bongsu__Rw__V2TimeSeries *a =
        v2_series(&v, (const uint32_t[]){1, 2, 5, 6, 3, 4}, 6, "1000:1 2000:2"); /* unsorted */
    a->metadata = malloc(sizeof(*a->metadata));
    bongsu__rw__v2_metadata__init(a->metadata);
    a->metadata->type = 1;
    a->metadata->help_ref = 7;
    a->metadata->unit_ref = 8;
    v2_series(&v, (const uint32_t[]){1, 2, 3, 4}, 4, "1500:5");
    size_t len;
    uint8_t *body = v2_finish(&v, &len);
    assert_int_equal(send_rw(t, CT_V2, "snappy", body, len), 204);
    assert_string_equal(header(t, "X-Prometheus-Remote-Write-Samples-Written"), "3");
    assert_string_equal(header(t, "X-Prometheus-Remote-Write-Histograms-Written"), "0");
    assert_string_equal(header(t, "X-Prometheus-Remote-Write-Exemplars-Written"), "0");
    assert_query(t, "__name__=http_requests_total",
                 "http_requests_total{code=\"200\", job=\"api\"} 1000:1 2000:2\n"
                 "http_requests_total{job=\"api\"} 1500:5\n");
}

static void test_v2_partial_and_histograms(void **state)
{
    struct test_ctx *t = *state;
    static const char *const syms[] = {"", "__name__", "g", "job", "a", "b"};
    struct v2 v;
    v2_init(&v, syms, 6);
    v2_series(&v, (const uint32_t[]){1, 2, 3, 4}, 4, "1000:1 2000:2");
    size_t len;
    uint8_t *body = v2_finish(&v, &len);
    assert_int_equal(send_rw(t, CT_V2, "snappy", body, len), 204);

    v2_init(&v, syms, 6);
    v2_series(&v, (const uint32_t[]){1, 2, 3, 4}, 4, "1500:1 3000:3"); /* one OOO */
    Bongsu__Rw__V2TimeSeries *h = v2_series(&v, (const uint32_t[]){1, 2, 3, 5}, 4, "");
    h->histograms = calloc(1, sizeof(*h->histograms));
    h->histograms[0] = malloc(sizeof(Bongsu__Rw__Histogram));
    bongsu__rw__histogram__init(h->histograms[0]);
    h->histograms[0]->timestamp = 1000;
    h->histograms[0]->count_case = BONGSU__RW__HISTOGRAM__COUNT_COUNT_INT;
    h->histograms[0]->count_int = 3;
    h->n_histograms = 1;
    v2_series(&v, (const uint32_t[]){1, 2, 3, 99}, 4, "1:1"); /* bad ref */
    v2_series(&v, (const uint32_t[]){1, 2, 3}, 3, "1:1");     /* odd */
    body = v2_finish(&v, &len);
    assert_int_equal(send_rw(t, CT_V2, "snappy", body, len), 400);
    assert_body_has(t, "out of order sample for series g{job=\"a\"} at timestamp 1500");
    assert_body_has(t, "native histograms are not supported by this server: 1 histogram sample "
                       "not written for series g{job=\"b\"}");
    assert_body_has(t, "symbol reference out of range (99; the request has 6 symbols)");
    assert_body_has(t, "labels_refs has an odd length (3)");
    assert_string_equal(header(t, "X-Prometheus-Remote-Write-Samples-Written"), "1");
    assert_string_equal(header(t, "X-Prometheus-Remote-Write-Histograms-Written"), "0");
    assert_query(t, "__name__=g", "g{job=\"a\"} 1000:1 2000:2 3000:3\n");
}

static void test_v2_created_timestamp(void **state)
{
    struct test_ctx *t = *state;
    static const char *const syms[] = {"", "__name__", "c_total", "job", "a", "b"};
    struct v2 v;
    v2_init(&v, syms, 6);
    v2_series(&v, (const uint32_t[]){1, 2, 3, 4}, 4, "1000:5")->created_timestamp = 400;
    size_t len;
    uint8_t *body = v2_finish(&v, &len);
    assert_int_equal(send_rw(t, CT_V2, "snappy", body, len), 204); /* CT ignored by default */

    t->lim.created_timestamp_zero = true;
    v2_init(&v, syms, 6);
    v2_series(&v, (const uint32_t[]){1, 2, 3, 5}, 4, "1000:5 2000:6")->created_timestamp = 400;
    /* A CT that is out of order for the series is dropped silently. */
    v2_series(&v, (const uint32_t[]){1, 2, 3, 4}, 4, "2000:7")->created_timestamp = 400;
    body = v2_finish(&v, &len);
    assert_int_equal(send_rw(t, CT_V2, "snappy", body, len), 204);
    assert_string_equal(header(t, "X-Prometheus-Remote-Write-Samples-Written"), "3");
    assert_query(t, "__name__=c_total",
                 "c_total{job=\"a\"} 1000:5 2000:7\nc_total{job=\"b\"} 400:0 1000:5 2000:6\n");
}

static void test_v1_body_with_v2_type(void **state)
{
    struct test_ctx *t = *state;
    size_t len;
    uint8_t *body = v1_request(&len, v1_series("__name__=x", "1:1"), NULL);
    assert_int_equal(send_rw(t, CT_V2, "snappy", body, len), 400);
    assert_body_has(t, "looks like a remote write 1.0");
}

static void test_utf8(void **state)
{
    (void)state;
    assert_true(ingest_utf8_valid("", 0));
    assert_true(ingest_utf8_valid("plain ascii text, longer than eight", 35));
    assert_true(ingest_utf8_valid("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9));
    assert_false(ingest_utf8_valid("\xc0\xaf", 2));         /* overlong */
    assert_false(ingest_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    assert_false(ingest_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    assert_false(ingest_utf8_valid("abc\xe2\x82", 5));      /* truncated */
    assert_false(ingest_utf8_valid("\x80", 1));
}

int main(void)
{
    bs_log_set_level(BS_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_v1_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v1_defaults_without_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_snappy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_protobuf, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unsupported_media, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v1_out_of_order_partial, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v1_labels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expansion_capped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v2_symbols_and_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v2_partial_and_histograms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v2_created_timestamp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v1_body_with_v2_type, setup, teardown),
        cmocka_unit_test(test_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
