/* SPDX-License-Identifier: Apache-2.0
 *
 * The Prometheus remote-write receiver: 1.0 (prometheus.WriteRequest) and
 * 2.0 (io.prometheus.write.v2.Request), snappy block compression.
 *
 * Design. A request goes through four gates, each refusing with its own
 * status before any sample is appended: the headers (415 for a media type,
 * proto= message or encoding we do not speak), the body size (413), the
 * snappy header (the uncompressed length is read from the preamble and
 * checked against max_decoded_bytes before one byte is allocated; 413, or
 * 400 when the preamble is corrupt), and the protobuf (400 when it does not
 * parse; 413 when decoding would take more than max_decode_memory).
 *
 * Decoding uses the protobuf-c code generated from remote_write.proto with
 * a custom allocator: every object protobuf-c allocates comes from one
 * per-request arena whose cap is max_decode_memory, and nothing is freed
 * piecemeal, so decoding a request costs a handful of mallocs however many
 * series it carries, and a body built to expand (empty submessages are two
 * bytes on the wire and ~50 in memory) hits the cap instead of the heap.
 * Label strings are declared `bytes` in the schema so their lengths survive:
 * a NUL or invalid UTF-8 inside a name or value refuses the series rather
 * than truncating it. Plain 1.0 requests (labels and float samples only, as
 * Prometheus sends them) take a fast path instead that decodes into flat
 * arrays without copying label strings; it hands anything else to
 * protobuf-c untouched (see "1.0 fast path" below), so the answers are the
 * same.
 *
 * Then every series is validated and its samples are appended through one
 * tsdb appender, committed once. Validation: names valid for the store
 * ([a-zA-Z_][a-zA-Z0-9_]*), values valid UTF-8, names unique, __name__
 * present; labels are sorted if the sender did not sort them, and labels
 * with empty values are dropped (empty and absent are the same label). A
 * sample more than 10 minutes in the future is out of bounds, as in
 * Prometheus's receiver.
 *
 * Partial writes. Prometheus answers 400 with the storage error when a
 * sample is out of order, duplicate or out of bounds. Its 1.0 handler then
 * rolls the whole request back; its 2.0 handler (following the 2.0 spec's
 * partial-write rule) commits everything valid and lists the errors. We do
 * the latter for both versions: the sender sees the same status (400, so it
 * does not retry), and the valid samples of the batch are not thrown away
 * with the bad ones. Invalid series are refused the same way (Prometheus's
 * 1.0 handler drops them and answers 204; we answer 400 so nothing is lost
 * silently). Native histograms, which the store cannot hold yet, are
 * refused the same way too. Exemplars and metadata are accepted and not
 * stored (2.0's Exemplars-Written header says 0).
 *
 * Memory: the decompressed body (<= max_decoded_bytes), the decode arena
 * (<= max_decode_memory), a per-series scratch arena for label copies, the
 * appender's staging arrays, and the error text (at most RW_MAX_ERRORS
 * lines of bounded length).
 */
#include <pthread.h>
#include <snappy-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ingest/ingest.h"
#include "ingest/ingest_int.h"
#include "ingest/remote_write.pb-c.h"
#include "labels/labels.h"

#define RW_MEDIA_TYPE "application/x-protobuf"
#define RW_PROTO_V1 "prometheus.WriteRequest"
#define RW_PROTO_V2 "io.prometheus.write.v2.Request"
#define RW_MAX_AHEAD_MS (10 * 60 * 1000) /* Prometheus's maxAheadTime */
#define RW_MAX_ERRORS 10                 /* error lines in a 400 body */
#define RW_MAX_ERROR_LINE 1024           /* bytes of one error line */
#define RW_HDR_SAMPLES "X-Prometheus-Remote-Write-Samples-Written"
#define RW_HDR_HISTOGRAMS "X-Prometheus-Remote-Write-Histograms-Written"
#define RW_HDR_EXEMPLARS "X-Prometheus-Remote-Write-Exemplars-Written"

enum rw_version { RW_V1 = 1, RW_V2 = 2 };

/* ------------------------------------------------------------ self-metrics */

static struct {
    struct bs_metric *requests, *samples, *rejected;
} rw_metrics;
static pthread_once_t rw_metrics_once = PTHREAD_ONCE_INIT;

static void rw_metrics_init(void)
{
    rw_metrics.requests =
        bs_metric_register(BS_METRIC_COUNTER, "bongsu_remote_write_requests_total",
                           "Remote write requests received, whatever their outcome.", NULL);
    rw_metrics.samples = bs_metric_register(BS_METRIC_COUNTER, "bongsu_remote_write_samples_total",
                                            "Samples received by remote write and stored.", NULL);
    rw_metrics.rejected = bs_metric_register(
        BS_METRIC_COUNTER, "bongsu_remote_write_rejected_samples_total",
        "Samples and native histogram samples received by remote write and refused (invalid "
        "series, out of order, duplicate, out of bounds, unsupported).",
        NULL);
}

/* ------------------------------------------------------------------ headers */

static const char *skip_ws(const char *s, const char *end)
{
    while (s < end && (*s == ' ' || *s == '\t'))
        s++;
    return s;
}

static const char *trim_end(const char *s, const char *end)
{
    while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    return end;
}

/* Which message does Content-Type ask for? Missing means 1.0, as in
 * Prometheus. Fills resp with 415 and returns BS_EINVAL when unsupported. */
static int rw_parse_content_type(const char *ct, enum rw_version *out, struct ingest_response *resp)
{
    *out = RW_V1;
    if (!ct)
        return 0;
    const char *end = ct + strlen(ct);
    const char *p = skip_ws(ct, end);
    end = trim_end(p, end);
    if (p == end)
        return 0;
    int ctlen = (int)(end - p > 512 ? 512 : end - p);
    const char *semi = memchr(p, ';', (size_t)(end - p));
    const char *mend = trim_end(p, semi ? semi : end);
    if ((size_t)(mend - p) != strlen(RW_MEDIA_TYPE) ||
        strncasecmp(p, RW_MEDIA_TYPE, strlen(RW_MEDIA_TYPE)) != 0) {
        ingest_response_text(resp, 415,
                             "expected %s as the first (media) part, got %.*s content-type",
                             RW_MEDIA_TYPE, ctlen, p);
        return BS_EINVAL;
    }
    while (semi) {
        const char *q = skip_ws(semi + 1, end);
        semi = q < end ? memchr(q, ';', (size_t)(end - q)) : NULL;
        const char *pend = trim_end(q, semi ? semi : end);
        if (q == pend)
            continue;
        const char *eq = memchr(q, '=', (size_t)(pend - q));
        if (!eq) {
            ingest_response_text(resp, 415,
                                 "expected parameters to be key-values, got %.*s in %.*s "
                                 "content-type",
                                 (int)(pend - q), q, ctlen, p);
            return BS_EINVAL;
        }
        const char *kend = trim_end(q, eq);
        if ((size_t)(kend - q) != 5 || strncasecmp(q, "proto", 5) != 0)
            continue;
        const char *v = skip_ws(eq + 1, pend), *vend = pend;
        if (vend - v >= 2 && *v == '"' && vend[-1] == '"') {
            v++;
            vend--;
        }
        size_t vn = (size_t)(vend - v);
        if (vn == strlen(RW_PROTO_V1) && memcmp(v, RW_PROTO_V1, vn) == 0) {
            *out = RW_V1;
        } else if (vn == strlen(RW_PROTO_V2) && memcmp(v, RW_PROTO_V2, vn) == 0) {
            *out = RW_V2;
        } else {
            ingest_response_text(resp, 415,
                                 "got %.*s content type; unknown remote write protobuf message "
                                 "%.*s, supported: %s, %s",
                                 ctlen, p, (int)(vn > 256 ? 256 : vn), v, RW_PROTO_V1, RW_PROTO_V2);
            return BS_EINVAL;
        }
        return 0;
    }
    return 0;
}

static int rw_check_encoding(const char *enc, struct ingest_response *resp)
{
    if (!enc)
        return 0;
    const char *end = enc + strlen(enc);
    const char *p = skip_ws(enc, end);
    end = trim_end(p, end);
    if (p == end || ((size_t)(end - p) == 6 && strncasecmp(p, "snappy", 6) == 0))
        return 0;
    ingest_response_text(resp, 415,
                         "%.*s encoding (compression) is not accepted by this server; only "
                         "snappy is acceptable",
                         (int)(end - p > 256 ? 256 : end - p), p);
    return BS_EINVAL;
}

/* ---------------------------------------------------- protobuf-c allocator */

struct rw_pb_arena {
    struct bs_arena arena;
    bool over_cap;  /* an allocation failed because of max_decode_memory */
    bool exhausted; /* an allocation failed (the cap, or the heap) */
};

static void *rw_pb_alloc(void *data, size_t size)
{
    struct rw_pb_arena *a = data;
    if (size == 0)
        size = 1;
    void *p = bs_arena_alloc(&a->arena, size);
    if (!p) {
        a->exhausted = true;
        if (a->arena.max && (a->arena.total + size + 15 > a->arena.max || size > a->arena.max))
            a->over_cap = true;
    }
    return p;
}

static void rw_pb_free(void *data, void *p)
{
    (void)data;
    (void)p; /* everything goes at once with the arena */
}

/* ------------------------------------------------------------ the request */

struct rw_ctx {
    const struct ingest_limits *lim;
    struct tsdb_appender *app;
    int64_t max_t;           /* newest timestamp accepted */
    struct bs_arena scratch; /* one series' label copies; reset per series */
    uint64_t written;        /* float samples staged */
    uint64_t rejected;       /* float samples refused */
    uint64_t hist_rejected;  /* native histogram samples refused */
    size_t nerrors;          /* error lines, including those not kept */
    struct bs_buf errs;      /* the first RW_MAX_ERRORS lines */
    int fatal_status;        /* 0, or the status that ends the request */
    struct bs_buf fatal_msg;
};

/* A label as it arrives: bytes, not NUL-terminated. */
struct rw_raw_label {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

/* Append "{name="value", ...}" of the raw labels to b, shortened to about
 * RW_MAX_ERROR_LINE bytes. Bytes are shown as received, escaped. */
static void rw_format_raw(struct bs_buf *b, const struct rw_raw_label *v, size_t n)
{
    size_t start = b->len;
    bs_buf_putc(b, '{');
    for (size_t i = 0; i < n; i++) {
        if (b->len - start > RW_MAX_ERROR_LINE / 2) {
            bs_buf_puts(b, ", ...");
            break;
        }
        if (i)
            bs_buf_puts(b, ", ");
        for (size_t j = 0; j < v[i].name_len && j < 256; j++) {
            unsigned char c = (unsigned char)v[i].name[j];
            if (c >= 0x20 && c < 0x7f && c != '\\')
                bs_buf_putc(b, (char)c);
            else
                bs_buf_printf(b, "\\x%02x", c);
        }
        bs_buf_putc(b, '=');
        bs_json_string(b, v[i].value, v[i].value_len > 256 ? 256 : v[i].value_len);
    }
    bs_buf_putc(b, '}');
}

#define RW_NO_TS INT64_MIN

/* Record one error line: "<what> for series <labels>[ at timestamp <t>]",
 * the form of Prometheus's 2.0 receiver errors. Either ls (a valid set) or
 * raw[0..nraw) describes the series (neither: the message does); t is
 * RW_NO_TS when no sample is concerned. Only the first RW_MAX_ERRORS are formatted; the rest are
 * counted. */
static void rw_error(struct rw_ctx *c, const struct labels *ls, const struct rw_raw_label *raw,
                     size_t nraw, int64_t t, const char *fmt, ...) BS_PRINTF(6, 7);
static void rw_error(struct rw_ctx *c, const struct labels *ls, const struct rw_raw_label *raw,
                     size_t nraw, int64_t t, const char *fmt, ...)
{
    if (c->nerrors++ >= RW_MAX_ERRORS)
        return;
    struct bs_buf *b = &c->errs;
    size_t start = b->len;
    va_list ap;
    va_start(ap, fmt);
    bs_buf_vprintf(b, fmt, ap);
    va_end(ap);
    if (ls || nraw)
        bs_buf_puts(b, " for series ");
    if (!ls && !nraw) {
        /* the message names the series itself */
    } else if (ls) {
        struct bs_buf lb;
        bs_buf_init(&lb, 0);
        labels_format(ls, &lb);
        if (lb.len > RW_MAX_ERROR_LINE / 2) {
            bs_buf_append(b, lb.data, RW_MAX_ERROR_LINE / 2);
            bs_buf_puts(b, "...");
        } else if (lb.data) {
            bs_buf_append(b, lb.data, lb.len);
        }
        bs_buf_fini(&lb);
    } else {
        rw_format_raw(b, raw, nraw);
    }
    if (b->len - start > RW_MAX_ERROR_LINE) {
        b->len = start + RW_MAX_ERROR_LINE;
        b->data[b->len] = '\0';
        bs_buf_puts(b, "...");
    }
    if (t != RW_NO_TS)
        bs_buf_printf(b, " at timestamp %lld", (long long)t);
    bs_buf_putc(b, '\n');
}

static void rw_fatal(struct rw_ctx *c, int status, const char *fmt, ...) BS_PRINTF(3, 4);
static void rw_fatal(struct rw_ctx *c, int status, const char *fmt, ...)
{
    if (c->fatal_status)
        return;
    c->fatal_status = status;
    va_list ap;
    va_start(ap, fmt);
    bs_buf_vprintf(&c->fatal_msg, fmt, ap);
    va_end(ap);
}

static int label_name_cmp(const void *a, const void *b)
{
    return strcmp(((const struct label *)a)->name, ((const struct label *)b)->name);
}

/* How the strings of raw labels arrive. */
enum rw_raw_kind {
    RW_RAW_COPY,       /* bytes to check and copy into c->scratch */
    RW_RAW_TERMINATED, /* bytes to check, NUL-terminated in place: used in place */
    RW_RAW_VALID,      /* checked and NUL-terminated already (2.0 symbols) */
};

/* Bytes allowed in a label name: 1 first, 2 after the first. */
static const uint8_t rw_name_chars[256] = {
    ['_'] = 3,
    ['0'] = 2, ['1'] = 2, ['2'] = 2, ['3'] = 2, ['4'] = 2,
    ['5'] = 2, ['6'] = 2, ['7'] = 2, ['8'] = 2, ['9'] = 2,
    ['a'] = 3, ['b'] = 3, ['c'] = 3, ['d'] = 3, ['e'] = 3, ['f'] = 3, ['g'] = 3,
    ['h'] = 3, ['i'] = 3, ['j'] = 3, ['k'] = 3, ['l'] = 3, ['m'] = 3, ['n'] = 3,
    ['o'] = 3, ['p'] = 3, ['q'] = 3, ['r'] = 3, ['s'] = 3, ['t'] = 3, ['u'] = 3,
    ['v'] = 3, ['w'] = 3, ['x'] = 3, ['y'] = 3, ['z'] = 3,
    ['A'] = 3, ['B'] = 3, ['C'] = 3, ['D'] = 3, ['E'] = 3, ['F'] = 3, ['G'] = 3,
    ['H'] = 3, ['I'] = 3, ['J'] = 3, ['K'] = 3, ['L'] = 3, ['M'] = 3, ['N'] = 3,
    ['O'] = 3, ['P'] = 3, ['Q'] = 3, ['R'] = 3, ['S'] = 3, ['T'] = 3, ['U'] = 3,
    ['V'] = 3, ['W'] = 3, ['X'] = 3, ['Y'] = 3, ['Z'] = 3,
};

/* labels_name_valid(), [a-zA-Z_][a-zA-Z0-9_]*, from a table. */
static inline bool rw_name_ok(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    if (n == 0 || !(rw_name_chars[p[0]] & 1))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!(rw_name_chars[p[i]] & 2))
            return false;
    return true;
}

enum { RW_VALUE_OK, RW_VALUE_NUL, RW_VALUE_BAD_UTF8 };

/* A label value: holds a NUL byte (whatever else), or is not UTF-8, or is
 * fine. ASCII is checked eight bytes at a time. */
static int rw_value_check(const char *s, size_t n)
{
    const uint64_t lo = UINT64_C(0x0101010101010101), hi = UINT64_C(0x8080808080808080);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        if (w & hi)
            goto slow;
        if ((w - lo) & ~w & hi)
            return RW_VALUE_NUL;
    }
    for (; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == 0)
            return RW_VALUE_NUL;
        if (ch & 0x80)
            goto slow;
    }
    return RW_VALUE_OK;
slow:
    if (memchr(s + i, 0, n - i))
        return RW_VALUE_NUL;
    return ingest_utf8_valid(s, n) ? RW_VALUE_OK : RW_VALUE_BAD_UTF8;
}

/* Turn raw[0..n) into a valid label set in c->scratch (reset by the
 * caller per series). Returns false after recording the reason when the
 * set is invalid. */
static bool rw_build_labels(struct rw_ctx *c, const struct rw_raw_label *raw, size_t n,
                            enum rw_raw_kind kind, struct labels *out)
{
    bool pre_terminated = kind == RW_RAW_VALID;
    const struct ingest_limits *lim = c->lim;
    if (lim->max_labels_per_series && n > lim->max_labels_per_series) {
        rw_error(c, NULL, raw, n, RW_NO_TS, "series has %zu labels, more than the limit of %zu", n,
                 lim->max_labels_per_series);
        return false;
    }
    struct label *v = bs_arena_alloc(&c->scratch, (n ? n : 1) * sizeof(*v));
    if (!v) {
        rw_fatal(c, 500, "out of memory");
        return false;
    }
    size_t k = 0;
    bool sorted = true, has_name = false;
    for (size_t i = 0; i < n; i++) {
        const struct rw_raw_label *r = &raw[i];
        if (r->name_len == 0) {
            rw_error(c, NULL, raw, n, RW_NO_TS, "invalid label name \"\"");
            return false;
        }
        /* The checks, in this order: a NUL byte in the name or the value,
         * the name's syntax, the value's UTF-8. A valid name holds no NUL,
         * so the usual case reads the name once and the value once. */
        bool name_ok = rw_name_ok(r->name, r->name_len);
        int vcheck = pre_terminated ? RW_VALUE_OK : rw_value_check(r->value, r->value_len);
        if (!pre_terminated && ((!name_ok && memchr(r->name, 0, r->name_len)) ||
                                vcheck == RW_VALUE_NUL)) {
            rw_error(c, NULL, raw, n, RW_NO_TS, "label %zu contains a NUL byte", i);
            return false;
        }
        if (!name_ok) {
            rw_error(c, NULL, raw, n, RW_NO_TS,
                     "invalid label name %.*s (want [a-zA-Z_][a-zA-Z0-9_]*)",
                     (int)(r->name_len > 128 ? 128 : r->name_len), r->name);
            return false;
        }
        if (r->value_len == 0)
            continue; /* empty and absent are the same */
        if (vcheck == RW_VALUE_BAD_UTF8) {
            rw_error(c, NULL, raw, n, RW_NO_TS, "value of label %.*s is not valid UTF-8",
                     (int)(r->name_len > 128 ? 128 : r->name_len), r->name);
            return false;
        }
        const char *name = r->name, *value = r->value;
        if (kind == RW_RAW_COPY) {
            name = bs_arena_strndup(&c->scratch, r->name, r->name_len);
            value = bs_arena_strndup(&c->scratch, r->value, r->value_len);
            if (!name || !value) {
                rw_fatal(c, 500, "out of memory");
                return false;
            }
        }
        v[k] = (struct label){name, value};
        /* Strictly increasing names are sorted and unique: the usual case,
         * settled with one comparison per label. */
        if (k > 0 && strcmp(v[k - 1].name, name) >= 0)
            sorted = false;
        if (r->name_len == sizeof(LABELS_METRIC_NAME) - 1 &&
            memcmp(name, LABELS_METRIC_NAME, sizeof(LABELS_METRIC_NAME) - 1) == 0)
            has_name = true;
        k++;
    }
    if (!sorted) {
        qsort(v, k, sizeof(*v), label_name_cmp);
        for (size_t i = 1; i < k; i++) {
            if (strcmp(v[i - 1].name, v[i].name) == 0) {
                rw_error(c, NULL, raw, n, RW_NO_TS, "duplicate label name %s", v[i].name);
                return false;
            }
        }
    }
    if (!has_name) {
        rw_error(c, NULL, raw, n, RW_NO_TS, "missing metric name (label __name__)");
        return false;
    }
    out->v = v;
    out->n = k;
    return true;
}

/* A decoded sample of the 1.0 fast path. */
struct rw_fsample {
    int64_t t;
    double v;
};

/* Append the float samples of one valid series: samples[0..n) as
 * protobuf-c decoded them, or fs[0..n) (the 1.0 fast path) when samples is
 * NULL. */
static void rw_append_samples(struct rw_ctx *c, const struct labels *ls,
                              Bongsu__Rw__Sample *const *samples, const struct rw_fsample *fs,
                              size_t n, int64_t ct)
{
    tsdb_ref ref = 0;
    if (ct != 0 && n > 0 && c->lim->created_timestamp_zero && samples &&
        samples[0]->timestamp != 0 && ct < samples[0]->timestamp && ct <= c->max_t) {
        /* A 0 at the created timestamp; out of order when a previous request
         * already carried it, which is expected and not an error. */
        int rc = tsdb_appender_add(c->app, 0, ls, ct, 0.0, &ref);
        if (rc == BS_ENOMEM) {
            rw_fatal(c, 500, "out of memory");
            return;
        }
    }
    for (size_t i = 0; i < n; i++) {
        int64_t t = samples ? samples[i]->timestamp : fs[i].t;
        double v = samples ? samples[i]->value : fs[i].v;
        int rc;
        if (t > c->max_t) {
            rc = BS_EOUTOFBOUNDS;
            c->rejected++;
            rw_error(c, ls, NULL, 0, t, "out of bounds: timestamp is too far in the future");
            continue;
        }
        rc = tsdb_appender_add(c->app, ref, ls, t, v, &ref);
        switch (rc) {
        case 0:
            c->written++;
            break;
        case BS_EOUTOFORDER:
        case BS_EDUPLICATE:
        case BS_EOUTOFBOUNDS:
            c->rejected++;
            rw_error(c, ls, NULL, 0, t, "%s", bs_strerror(rc));
            break;
        case BS_ELIMIT:
        case BS_EINVAL:
            if (rc == BS_ELIMIT && ref != 0) {
                /* The appender's batch is full: the request is too big. */
                rw_fatal(c, 413, "request has more samples than one batch may hold");
                return;
            }
            /* The series itself was refused by the store (e.g. its labels
             * are too long). */
            c->rejected += n - i;
            rw_error(c, ls, NULL, 0, RW_NO_TS, "series refused by the store (%s)", bs_strerror(rc));
            return;
        default:
            rw_fatal(c, 500, "appending sample: %s", bs_strerror(rc));
            return;
        }
    }
}

static void rw_refuse_histograms(struct rw_ctx *c, const struct labels *ls, size_t n)
{
    if (n == 0)
        return;
    c->hist_rejected += n;
    rw_error(c, ls, NULL, 0, RW_NO_TS,
             "native histograms are not supported by this server: %zu histogram sample%s not "
             "written",
             n, n == 1 ? "" : "s");
}

/* ------------------------------------------------------------ 1.0 and 2.0 */

static void rw_write_v1(struct rw_ctx *c, const Bongsu__Rw__WriteRequest *req)
{
    struct rw_raw_label *raw = NULL;
    size_t raw_cap = 0;
    for (size_t i = 0; i < req->n_timeseries && !c->fatal_status; i++) {
        const Bongsu__Rw__TimeSeries *ts = req->timeseries[i];
        bs_arena_reset(&c->scratch);
        if (ts->n_labels > raw_cap) {
            size_t ncap = ts->n_labels;
            struct rw_raw_label *nr = realloc(raw, ncap * sizeof(*nr));
            if (!nr) {
                rw_fatal(c, 500, "out of memory");
                break;
            }
            raw = nr;
            raw_cap = ncap;
        }
        for (size_t j = 0; j < ts->n_labels; j++) {
            const Bongsu__Rw__Label *l = ts->labels[j];
            raw[j] = (struct rw_raw_label){(const char *)l->name.data, l->name.len,
                                           (const char *)l->value.data, l->value.len};
        }
        struct labels ls;
        if (!rw_build_labels(c, raw, ts->n_labels, RW_RAW_COPY, &ls)) {
            c->rejected += ts->n_samples;
            c->hist_rejected += ts->n_histograms;
            continue;
        }
        rw_append_samples(c, &ls, ts->samples, NULL, ts->n_samples, 0);
        rw_refuse_histograms(c, &ls, ts->n_histograms);
        /* Exemplars: not stored (no exemplar storage yet), not an error. */
    }
    free(raw);
}

/* ------------------------------------------------------ 1.0 fast path */

/* Most 1.0 requests are what Prometheus writes: timeseries made of labels
 * (name, value) and samples (value, timestamp), nothing else. Those are
 * decoded here without protobuf-c: one pass over the wire bytes into three
 * flat arrays, label strings pointing into the decompressed body, which is
 * then NUL-terminated in place (the byte after a string is always a tag or
 * length byte already read, or the extra byte after the body), so labels
 * need no copies. Anything else -- an unknown or repeated singular field, a
 * wire type protobuf-c would refuse, an overlong varint, a truncated
 * message, exemplars, histograms, metadata, or a request whose protobuf-c
 * decoding might come near max_decode_memory -- makes the fast path give
 * up before it changed anything, and the request goes through protobuf-c
 * as before, so statuses and messages are the same either way. */

struct rw_fseries {
    size_t l0, nl; /* labels[l0..l0+nl) */
    size_t s0, ns; /* samples[s0..s0+ns) */
};

struct rw_fast {
    struct rw_raw_label *labels;
    struct rw_fsample *samples;
    struct rw_fseries *series;
    size_t nlabels, nsamples, nseries;
    size_t cap_labels, cap_samples, cap_series;
};

enum { RW_FAST_OK, RW_FAST_FALLBACK, RW_FAST_NOMEM };

static void rw_fast_fini(struct rw_fast *f)
{
    free(f->labels);
    free(f->samples);
    free(f->series);
    memset(f, 0, sizeof(*f));
}

static bool rw_grow(void **v, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return true;
    size_t ncap = *cap ? *cap * 2 : 256;
    void *nv = realloc(*v, ncap * size);
    if (!nv)
        return false;
    *v = nv;
    *cap = ncap;
    return true;
}

/* A varint within [*pp, end): at most 10 bytes, no bits past 64. */
static inline bool rw_varint(const uint8_t **pp, const uint8_t *end, uint64_t *out)
{
    const uint8_t *p = *pp;
    uint64_t v = 0;
    for (unsigned i = 0; i < 10 && p < end; i++) {
        uint8_t b = *p++;
        if (i == 9 && b > 1)
            return false;
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *pp = p;
            *out = v;
            return true;
        }
    }
    return false;
}

/* A length prefix that fits within [*pp, end). */
static inline bool rw_len(const uint8_t **pp, const uint8_t *end, size_t *out)
{
    uint64_t n;
    if (!rw_varint(pp, end, &n) || n > (uint64_t)(end - *pp))
        return false;
    *out = (size_t)n;
    return true;
}

/* What protobuf-c would take from the decode arena, over-estimated: each
 * object rounded up with the arena's alignment, a pointer in its parent's
 * array, and its share of protobuf-c's scratch for scanned fields. */
#define RW_EST_OBJ(sz) ((((sz) + 15) & ~(size_t)15) + 16 + 8 + 96)
#define RW_EST_BYTES(n) ((((n) + 15) & ~(size_t)15) + 16)

static int rw_fast_v1(const uint8_t *p, const uint8_t *end, size_t budget, struct rw_fast *f)
{
    size_t est = RW_EST_OBJ(sizeof(Bongsu__Rw__WriteRequest));
    while (p < end) {
        uint64_t tag;
        size_t len;
        if (!rw_varint(&p, end, &tag) || tag != (1 << 3 | 2) || !rw_len(&p, end, &len))
            return RW_FAST_FALLBACK;
        const uint8_t *te = p + len;
        if (!rw_grow((void **)&f->series, &f->cap_series, f->nseries, sizeof(*f->series)))
            return RW_FAST_NOMEM;
        struct rw_fseries *ts = &f->series[f->nseries++];
        *ts = (struct rw_fseries){f->nlabels, 0, f->nsamples, 0};
        est += RW_EST_OBJ(sizeof(Bongsu__Rw__TimeSeries));
        while (p < te) {
            if (!rw_varint(&p, te, &tag) || !rw_len(&p, te, &len))
                return RW_FAST_FALLBACK;
            const uint8_t *me = p + len;
            if (tag == (1 << 3 | 2)) { /* Label */
                struct rw_raw_label l = {"", 0, "", 0};
                bool have_name = false, have_value = false;
                while (p < me) {
                    size_t n;
                    if (!rw_varint(&p, me, &tag) || !rw_len(&p, me, &n))
                        return RW_FAST_FALLBACK;
                    if (tag == (1 << 3 | 2) && !have_name) {
                        l.name = n ? (const char *)p : "";
                        l.name_len = n;
                        have_name = true;
                    } else if (tag == (2 << 3 | 2) && !have_value) {
                        l.value = n ? (const char *)p : "";
                        l.value_len = n;
                        have_value = true;
                    } else {
                        return RW_FAST_FALLBACK;
                    }
                    p += n;
                    est += RW_EST_BYTES(n) + 2 * 96;
                }
                if (!rw_grow((void **)&f->labels, &f->cap_labels, f->nlabels,
                             sizeof(*f->labels)))
                    return RW_FAST_NOMEM;
                f->labels[f->nlabels++] = l;
                ts->nl++;
                est += RW_EST_OBJ(sizeof(Bongsu__Rw__Label));
            } else if (tag == (2 << 3 | 2)) { /* Sample */
                struct rw_fsample smp = {0, 0.0};
                bool have_v = false, have_t = false;
                while (p < me) {
                    if (!rw_varint(&p, me, &tag))
                        return RW_FAST_FALLBACK;
                    if (tag == (1 << 3 | 1) && !have_v && me - p >= 8) {
                        uint64_t bits = 0;
                        for (int i = 7; i >= 0; i--)
                            bits = bits << 8 | p[i];
                        memcpy(&smp.v, &bits, sizeof(bits));
                        p += 8;
                        have_v = true;
                    } else if (tag == (2 << 3 | 0) && !have_t) {
                        uint64_t t;
                        if (!rw_varint(&p, me, &t))
                            return RW_FAST_FALLBACK;
                        smp.t = (int64_t)t;
                        have_t = true;
                    } else {
                        return RW_FAST_FALLBACK;
                    }
                    est += 2 * 96;
                }
                if (!rw_grow((void **)&f->samples, &f->cap_samples, f->nsamples,
                             sizeof(*f->samples)))
                    return RW_FAST_NOMEM;
                f->samples[f->nsamples++] = smp;
                ts->ns++;
                est += RW_EST_OBJ(sizeof(Bongsu__Rw__Sample));
            } else {
                return RW_FAST_FALLBACK; /* exemplars, histograms, unknown */
            }
            if (est > budget)
                return RW_FAST_FALLBACK;
            p = me;
        }
    }
    return RW_FAST_OK;
}

/* NUL-terminate every label string in place (see above). */
static void rw_fast_terminate(struct rw_fast *f)
{
    for (size_t i = 0; i < f->nlabels; i++) {
        struct rw_raw_label *l = &f->labels[i];
        if (l->name_len)
            ((char *)l->name)[l->name_len] = '\0';
        if (l->value_len)
            ((char *)l->value)[l->value_len] = '\0';
    }
}

static void rw_write_v1_fast(struct rw_ctx *c, const struct rw_fast *f)
{
    for (size_t i = 0; i < f->nseries && !c->fatal_status; i++) {
        const struct rw_fseries *ts = &f->series[i];
        bs_arena_reset(&c->scratch);
        struct labels ls;
        if (!rw_build_labels(c, f->labels + ts->l0, ts->nl, RW_RAW_TERMINATED, &ls)) {
            c->rejected += ts->ns;
            continue;
        }
        rw_append_samples(c, &ls, NULL, f->samples + ts->s0, ts->ns, 0);
    }
}

/* The symbols as NUL-terminated strings in the decode arena; NULL entries
 * for symbols that hold a NUL byte or invalid UTF-8 (refused when used). */
static const char **rw_symbols(struct rw_pb_arena *pa, const Bongsu__Rw__V2Request *req,
                               size_t **lens_out)
{
    size_t n = req->n_symbols;
    const char **syms = bs_arena_alloc(&pa->arena, (n ? n : 1) * sizeof(*syms));
    size_t *lens = bs_arena_alloc(&pa->arena, (n ? n : 1) * sizeof(*lens));
    if (!syms || !lens)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        const ProtobufCBinaryData *d = &req->symbols[i];
        lens[i] = d->len;
        if (d->len == 0) {
            syms[i] = "";
        } else if (memchr(d->data, 0, d->len) ||
                   !ingest_utf8_valid((const char *)d->data, d->len)) {
            syms[i] = NULL;
        } else {
            char *s = bs_arena_strndup(&pa->arena, (const char *)d->data, d->len);
            if (!s)
                return NULL;
            syms[i] = s;
        }
    }
    *lens_out = lens;
    return syms;
}

static void rw_write_v2(struct rw_ctx *c, struct rw_pb_arena *pa, const Bongsu__Rw__V2Request *req)
{
    size_t *lens = NULL;
    const char **syms = rw_symbols(pa, req, &lens);
    if (!syms) {
        rw_fatal(c, 413, "decoding the symbols table needs more than %zu bytes of memory",
                 c->lim->max_decode_memory);
        return;
    }
    size_t nsyms = req->n_symbols;
    struct rw_raw_label *raw = NULL;
    size_t raw_cap = 0;
    for (size_t i = 0; i < req->n_timeseries && !c->fatal_status; i++) {
        const Bongsu__Rw__V2TimeSeries *ts = req->timeseries[i];
        bs_arena_reset(&c->scratch);
        size_t nl = ts->n_labels_refs / 2;
        if (nl > raw_cap) {
            struct rw_raw_label *nr = realloc(raw, nl * sizeof(*nr));
            if (!nr) {
                rw_fatal(c, 500, "out of memory");
                break;
            }
            raw = nr;
            raw_cap = nl;
        }
        const char *bad = NULL;
        uint32_t bad_ref = 0;
        for (size_t j = 0; j < nl && !bad; j++) {
            uint32_t nr = ts->labels_refs[2 * j], vr = ts->labels_refs[2 * j + 1];
            if (nr >= nsyms || vr >= nsyms) {
                bad = "symbol reference out of range";
                bad_ref = nr >= nsyms ? nr : vr;
            } else if (!syms[nr] || !syms[vr]) {
                bad = "symbol holds a NUL byte or invalid UTF-8";
                bad_ref = !syms[nr] ? nr : vr;
            } else {
                raw[j] = (struct rw_raw_label){syms[nr], lens[nr], syms[vr], lens[vr]};
            }
        }
        struct labels ls;
        bool ok = false;
        if (ts->n_labels_refs % 2 || bad) {
            char refs[128];
            size_t o = 0;
            for (size_t j = 0; j < ts->n_labels_refs && o < sizeof(refs) - 16; j++)
                o += (size_t)snprintf(refs + o, sizeof(refs) - o, "%s%u", j ? " " : "",
                                      ts->labels_refs[j]);
            if (o >= sizeof(refs) - 16)
                snprintf(refs + o, sizeof(refs) - o, " ...");
            if (bad)
                rw_error(c, NULL, NULL, 0, RW_NO_TS,
                         "invalid labels_refs: %s (%u; the request has %zu symbols) for series "
                         "with labels_refs [%s]",
                         bad, bad_ref, nsyms, refs);
            else
                rw_error(c, NULL, NULL, 0, RW_NO_TS,
                         "labels_refs has an odd length (%zu) for series with labels_refs [%s]",
                         ts->n_labels_refs, refs);
        } else {
            ok = rw_build_labels(c, raw, nl, RW_RAW_VALID, &ls);
        }
        if (!ok) {
            c->rejected += ts->n_samples;
            c->hist_rejected += ts->n_histograms;
            continue;
        }
        rw_append_samples(c, &ls, ts->samples, NULL, ts->n_samples, ts->created_timestamp);
        rw_refuse_histograms(c, &ls, ts->n_histograms);
        /* Exemplars and metadata: not stored yet, reported as 0 written. */
    }
    free(raw);
}

/* A 1.0 body sent with the 2.0 content type decodes as an empty 2.0
 * request with unknown fields 1 (timeseries) or 3 (metadata). */
static bool rw_v2_looks_like_v1(const Bongsu__Rw__V2Request *req)
{
    for (size_t i = 0; i < req->base.n_unknown_fields; i++)
        if (req->base.unknown_fields[i].tag >= 1 && req->base.unknown_fields[i].tag <= 3)
            return true;
    return false;
}

/* ---------------------------------------------------------- entry point */

int ingest_remote_write(struct tsdb *db, const struct ingest_limits *lim, const char *content_type,
                        const char *content_encoding, const char *rw_version, const void *body,
                        size_t len, struct ingest_response *resp)
{
    (void)rw_version; /* informational: Content-Type decides, per the 2.0 spec */
    struct ingest_limits deflim;
    if (!lim) {
        ingest_limits_default(&deflim);
        lim = &deflim;
    }
    memset(resp, 0, sizeof(*resp));
    pthread_once(&rw_metrics_once, rw_metrics_init);
    bs_metric_add(rw_metrics.requests, 1);

    enum rw_version ver;
    if (rw_parse_content_type(content_type, &ver, resp) ||
        rw_check_encoding(content_encoding, resp))
        goto out;
    if (lim->max_body_bytes && len > lim->max_body_bytes) {
        ingest_response_text(resp, 413, "request body of %zu bytes exceeds the limit of %zu bytes",
                             len, lim->max_body_bytes);
        goto out;
    }

    /* Snappy: the preamble gives the decoded length; check it first. */
    size_t dlen = 0;
    if (snappy_uncompressed_length(body ? body : "", len, &dlen) != SNAPPY_OK) {
        ingest_response_text(resp, 400, "snappy: corrupt input (bad length preamble)");
        goto out;
    }
    if (lim->max_decoded_bytes && dlen > lim->max_decoded_bytes) {
        ingest_response_text(resp, 413,
                             "decompressed request of %zu bytes exceeds the limit of %zu bytes",
                             dlen, lim->max_decoded_bytes);
        goto out;
    }
    char *dec = malloc(dlen + 1); /* + 1: see the 1.0 fast path */
    if (!dec) {
        ingest_response_text(resp, 500, "out of memory decompressing %zu bytes", dlen);
        goto out;
    }
    size_t got = dlen;
    if (snappy_uncompress(body ? body : "", len, dec, &got) != SNAPPY_OK || got != dlen) {
        free(dec);
        ingest_response_text(resp, 400, "snappy: corrupt input");
        goto out;
    }

    /* Protobuf: the 1.0 fast path, or protobuf-c into the capped arena. */
    struct rw_pb_arena pa = {.over_cap = false, .exhausted = false};
    size_t block = dlen * 3;
    block = block < 65536 ? 65536 : block > ((size_t)4 << 20) ? ((size_t)4 << 20) : block;
    bs_arena_init(&pa.arena, block, lim->max_decode_memory);
    ProtobufCAllocator alloc = {rw_pb_alloc, rw_pb_free, &pa};
    struct rw_fast fast;
    memset(&fast, 0, sizeof(fast));
    bool use_fast = false;
    if (ver == RW_V1) {
        /* Leave requests whose protobuf-c decoding could come near the cap
         * to protobuf-c, which says exactly when it is reached. */
        size_t margin = 2 * block + ((size_t)8 << 20);
        size_t budget = !lim->max_decode_memory                ? SIZE_MAX
                        : lim->max_decode_memory / 2 > margin ? lim->max_decode_memory / 2 - margin
                                                               : 0;
        int frc = budget ? rw_fast_v1((const uint8_t *)dec, (const uint8_t *)dec + dlen, budget,
                                      &fast)
                         : RW_FAST_FALLBACK;
        if (frc == RW_FAST_NOMEM) {
            ingest_response_text(resp, 500, "out of memory decoding the request");
            goto out_dec;
        }
        use_fast = frc == RW_FAST_OK;
        if (use_fast)
            rw_fast_terminate(&fast);
        else
            rw_fast_fini(&fast);
    }
    ProtobufCMessage *msg =
        use_fast ? NULL
                 : protobuf_c_message_unpack(ver == RW_V1 ? &bongsu__rw__write_request__descriptor
                                                          : &bongsu__rw__v2_request__descriptor,
                                             &alloc, dlen, (const uint8_t *)dec);
    if (!use_fast && !msg) {
        if (pa.over_cap)
            ingest_response_text(resp, 413,
                                 "decoding the request needs more than %zu bytes of memory",
                                 lim->max_decode_memory);
        else if (pa.exhausted)
            ingest_response_text(resp, 500, "out of memory decoding the request");
        else
            ingest_response_text(resp, 400, "proto: cannot parse %s (%zu bytes)",
                                 ver == RW_V1 ? RW_PROTO_V1 : RW_PROTO_V2, dlen);
        goto out_dec;
    }
    size_t nseries = use_fast        ? fast.nseries
                     : ver == RW_V1 ? ((Bongsu__Rw__WriteRequest *)msg)->n_timeseries
                                    : ((Bongsu__Rw__V2Request *)msg)->n_timeseries;
    if (lim->max_series_per_request && nseries > lim->max_series_per_request) {
        ingest_response_text(resp, 413, "request has %zu series, more than the limit of %zu",
                             nseries, lim->max_series_per_request);
        goto out_dec;
    }
    if (ver == RW_V2 && nseries == 0 && rw_v2_looks_like_v1((Bongsu__Rw__V2Request *)msg)) {
        ingest_response_text(resp, 400,
                             "request is not an %s message (it looks like a remote write 1.0 "
                             "%s): check the Content-Type",
                             RW_PROTO_V2, RW_PROTO_V1);
        goto out_dec;
    }

    struct rw_ctx c = {.lim = lim, .max_t = bs_now_ms() + RW_MAX_AHEAD_MS};
    bs_arena_init(&c.scratch, 16384, 0);
    bs_buf_init(&c.errs, 0);
    bs_buf_init(&c.fatal_msg, 4096);
    c.app = tsdb_appender_new(db);
    if (!c.app) {
        rw_fatal(&c, 500, "cannot create an appender");
    } else if (use_fast) {
        rw_write_v1_fast(&c, &fast);
    } else if (ver == RW_V1) {
        rw_write_v1(&c, (Bongsu__Rw__WriteRequest *)msg);
    } else {
        rw_write_v2(&c, &pa, (Bongsu__Rw__V2Request *)msg);
    }

    if (c.fatal_status) {
        tsdb_appender_rollback(c.app);
        ingest_response_text(resp, c.fatal_status, "%s", c.fatal_msg.data ? c.fatal_msg.data : "");
        if (c.fatal_status >= 500)
            BS_ERROR("ingest", "remote write failed: %s", c.fatal_msg.data ? c.fatal_msg.data : "");
        c.written = 0;
    } else {
        struct bs_error err = {0};
        int rc = tsdb_appender_commit(c.app, &err);
        if (rc) {
            BS_ERROR("ingest", "remote write commit failed: %s",
                     err.msg[0] ? err.msg : bs_strerror(rc));
            ingest_response_text(resp, 500, "commit failed: %s",
                                 err.msg[0] ? err.msg : bs_strerror(rc));
            c.written = 0;
        } else {
            bs_metric_add(rw_metrics.samples, (double)c.written);
            bs_metric_add(rw_metrics.rejected, (double)(c.rejected + c.hist_rejected));
            if (c.nerrors == 0) {
                resp->status = 204;
            } else {
                if (c.nerrors > RW_MAX_ERRORS)
                    bs_buf_printf(&c.errs, "(and %zu more errors)\n", c.nerrors - RW_MAX_ERRORS);
                if (c.errs.data && c.errs.len > 0 && c.errs.data[c.errs.len - 1] == '\n')
                    c.errs.data[--c.errs.len] = '\0';
                ingest_response_text(resp, 400, "%s", c.errs.data ? c.errs.data : "");
                BS_DEBUG("ingest", "remote write: %llu samples written, %llu refused",
                         (unsigned long long)c.written,
                         (unsigned long long)(c.rejected + c.hist_rejected));
            }
        }
    }
    if (ver == RW_V2) {
        ingest_response_header(resp, RW_HDR_SAMPLES, "%llu", (unsigned long long)c.written);
        ingest_response_header(resp, RW_HDR_HISTOGRAMS, "0");
        ingest_response_header(resp, RW_HDR_EXEMPLARS, "0");
    }
    bs_arena_fini(&c.scratch);
    bs_buf_fini(&c.errs);
    bs_buf_fini(&c.fatal_msg);
out_dec:
    rw_fast_fini(&fast);
    bs_arena_fini(&pa.arena);
    free(dec);
out:
    if (resp->status == 0)
        resp->status = 500;
    return (resp->status != 204 && !resp->body) ? BS_ENOMEM : 0;
}
