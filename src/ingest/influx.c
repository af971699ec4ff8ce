/* SPDX-License-Identifier: Apache-2.0
 *
 * InfluxDB write endpoints: POST /write (1.x) and /api/v2/write, /ping and
 * the two /query statements clients send to connect.
 *
 * Mapping. Every numeric field of a line becomes one sample:
 *   cpu,host=a,region=eu usage_idle=97.5,usage_user=1i 1700000000000000000
 *   -> cpu_usage_idle{db="<db>",host="a",region="eu"} 97.5 @1700000000000
 *      cpu_usage_user{db="<db>",host="a",region="eu"} 1    @1700000000000
 * Metric and label names are sanitised (bytes outside [a-zA-Z0-9_], and
 * ':' in metric names, become '_'; a leading digit gets '_' before it);
 * booleans are 1 and 0; integers and unsigned integers become doubles
 * (exact up to 2^53); string fields are skipped and counted. The db label is
 * the v1 db parameter or the v2 bucket; a tag called db wins over it. Tags
 * whose names collide after sanitising, or a tag called __name__, refuse the
 * line. Timestamps are converted from the precision to milliseconds
 * (truncated towards minus infinity); a line without one takes the time the
 * request arrived, as in InfluxDB.
 *
 * Partial writes, as InfluxDB 1.x: every line that parses is stored, and
 * when some did not the answer is 400 with each refused line quoted and
 * InfluxDB's reason, plus the line number (our addition), "partial write: "
 * in front when anything was written, " dropped=N" (samples the store
 * refused) at the end. At most LP_MAX_ERRORS lines are quoted.
 *
 * All samples of a request go through one appender and one commit; per
 * line the labels are built in an arena that is reset for the next line,
 * and sorted once: the fields of a line differ only in __name__, whose
 * position in the sorted set does not change.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ingest/push_int.h"
#include "labels/labels.h"

#define LP_MAX_ERRORS 10
#define LP_MAX_QUOTE 1024 /* bytes of a refused line quoted in the answer */

/* ------------------------------------------------------------ self-metrics */

static struct {
    struct bs_metric *requests, *samples, *bad_lines, *strings, *rejected;
} lp_metrics;
static pthread_once_t lp_metrics_once = PTHREAD_ONCE_INIT;

static void lp_metrics_init(void)
{
    lp_metrics.requests = bs_metric_register(BS_METRIC_COUNTER, "bongsu_influx_write_requests_total",
                                             "InfluxDB line-protocol write requests received.", NULL);
    lp_metrics.samples = bs_metric_register(BS_METRIC_COUNTER, "bongsu_influx_samples_total",
                                            "Samples received by line protocol and stored.", NULL);
    lp_metrics.bad_lines =
        bs_metric_register(BS_METRIC_COUNTER, "bongsu_influx_lines_rejected_total",
                           "Line-protocol lines that did not parse or map and were not stored.",
                           NULL);
    lp_metrics.strings = bs_metric_register(
        BS_METRIC_COUNTER, "bongsu_influx_string_fields_skipped_total",
        "String fields of line-protocol writes, which have no Prometheus sample type.", NULL);
    lp_metrics.rejected = bs_metric_register(
        BS_METRIC_COUNTER, "bongsu_influx_rejected_samples_total",
        "Line-protocol samples the store refused (out of order, duplicate, out of bounds).", NULL);
}

/* ----------------------------------------------------------------- answers */

/* {"error":"msg"} (v1) or {"code":"invalid","message":"msg"} (v2). */
static int lp_answer(struct ingest_response *r, int version, int status, const char *msg,
                     size_t n)
{
    struct bs_buf b;
    bs_buf_init(&b, 0);
    int rc = bs_buf_puts(&b, version == 2 ? "{\"code\":\"invalid\",\"message\":" : "{\"error\":");
    if (rc == 0)
        rc = bs_json_string(&b, msg, n);
    if (rc == 0)
        rc = bs_buf_puts(&b, "}\n");
    if (rc) {
        bs_buf_fini(&b);
        ingest_response_fini(r);
        r->status = 500;
        return BS_ENOMEM;
    }
    ingest_response_take(r, status, &b);
    r->content_type = "application/json";
    return 0;
}

static int lp_answerf(struct ingest_response *r, int version, int status, const char *fmt, ...)
    BS_PRINTF(4, 5);
static int lp_answerf(struct ingest_response *r, int version, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof(msg))
        n = sizeof(msg) - 1;
    return lp_answer(r, version, status, msg, (size_t)n);
}

static void lp_version_headers(struct ingest_response *r)
{
    ingest_response_header(r, "X-Influxdb-Build", "OSS");
    ingest_response_header(r, "X-Influxdb-Version", "%s", INGEST_INFLUX_VERSION);
}

/* ------------------------------------------------------------------ write */

/* Multiplier or divisor from the precision to milliseconds. */
struct lp_precision {
    int64_t mul, div;
};

static bool lp_precision_parse(const char *s, int version, struct lp_precision *out)
{
    out->mul = 1;
    out->div = 1000000;
    if (!s || !*s || !strcmp(s, "ns") || (version == 1 && !strcmp(s, "n")))
        return true;
    if (!strcmp(s, "us") || (version == 1 && !strcmp(s, "u"))) {
        out->div = 1000;
    } else if (!strcmp(s, "ms")) {
        out->div = 1;
    } else if (!strcmp(s, "s")) {
        out->div = 1, out->mul = 1000;
    } else if (version == 1 && !strcmp(s, "m")) {
        out->div = 1, out->mul = 60000;
    } else if (version == 1 && !strcmp(s, "h")) {
        out->div = 1, out->mul = 3600000;
    } else {
        return false;
    }
    return true;
}

static bool lp_time_ms(int64_t t, struct lp_precision pr, int64_t *out)
{
    if (pr.mul != 1) {
        if (t > INT64_MAX / pr.mul || t < INT64_MIN / pr.mul)
            return false;
        *out = t * pr.mul;
        return true;
    }
    int64_t q = t / pr.div;
    if (t % pr.div != 0 && t < 0)
        q--;
    *out = q;
    return true;
}

struct lp_write {
    struct tsdb_appender *app;
    struct bs_arena arena;     /* per line */
    struct label *lbl;         /* LP_MAX_TAGS + 2 */
    struct bs_buf errors;      /* refused lines, '\n'-separated */
    size_t nerrors, bad_lines;
    size_t written, dropped, strings;
    struct bs_buf first_drop;  /* the first store refusal, for the message */
    const char *db;
    int64_t now_ms;
    struct lp_precision pr;
};

static void lp_note_line_error(struct lp_write *w, const struct lp_line *line, const char *reason)
{
    w->bad_lines++;
    if (w->nerrors++ >= LP_MAX_ERRORS)
        return;
    size_t n = line->text_len > LP_MAX_QUOTE ? LP_MAX_QUOTE : line->text_len;
    if (w->errors.len)
        bs_buf_putc(&w->errors, '\n');
    bs_buf_printf(&w->errors, "unable to parse '%.*s%s': %s (line %zu)", (int)n, line->text,
                  n < line->text_len ? "..." : "", reason, line->lineno);
}

static int label_cmp(const void *a, const void *b)
{
    return strcmp(((const struct label *)a)->name, ((const struct label *)b)->name);
}

/* Map one parsed line and stage its samples. Returns NULL, or the reason the
 * line is refused (nothing of it staged), or "out of memory". */
static const char *lp_stage_line(struct lp_write *w, const struct lp_line *line)
{
    bs_arena_reset(&w->arena);
    size_t n = 0;
    struct label *lbl = w->lbl;
    bool has_db = false;
    for (size_t i = 0; i < line->ntags; i++) {
        const struct lp_token *k = &line->tag_key[i], *v = &line->tag_value[i];
        char *kb = bs_arena_alloc(&w->arena, 2 * k->n + 2);
        char *vb = bs_arena_alloc(&w->arena, v->n + 1);
        if (!kb || !vb)
            return "out of memory";
        char *kraw = kb + k->n + 1;
        size_t kn = lp_unescape(k, kraw);
        kn = lp_sanitize_name(kraw, kn, false, kb);
        kb[kn] = '\0';
        size_t vn = lp_unescape(v, vb);
        vb[vn] = '\0';
        if (!ingest_utf8_valid(vb, vn) || memchr(vb, '\0', vn))
            return "invalid UTF-8 in tag value";
        if (!strcmp(kb, LABELS_METRIC_NAME))
            return "tag key __name__ is reserved";
        if (!strcmp(kb, "db"))
            has_db = true;
        lbl[n++] = (struct label){kb, vb};
    }
    if (!has_db && w->db[0])
        lbl[n++] = (struct label){"db", w->db};
    /* __name__ gets its value per field below: room for the measurement,
     * '_' and the longest field key, each possibly one byte longer after
     * sanitising. */
    size_t maxf = 0;
    for (size_t i = 0; i < line->nfields; i++)
        if (line->field[i].key.n > maxf)
            maxf = line->field[i].key.n;
    char *mraw = bs_arena_alloc(&w->arena, line->measurement.n + maxf + 2);
    char *name = bs_arena_alloc(&w->arena, line->measurement.n + maxf + 4);
    if (!mraw || !name)
        return "out of memory";
    size_t mn = lp_unescape(&line->measurement, mraw);
    mn = lp_sanitize_name(mraw, mn, true, name);
    name[mn++] = '_';
    lbl[n++] = (struct label){LABELS_METRIC_NAME, name};
    if (n > 1)
        qsort(lbl, n, sizeof(*lbl), label_cmp);
    for (size_t i = 1; i < n; i++)
        if (!strcmp(lbl[i - 1].name, lbl[i].name))
            return "duplicate tags";

    int64_t t = w->now_ms;
    if (line->has_time && !lp_time_ms(line->time, w->pr, &t))
        return "bad timestamp";

    struct labels ls = {lbl, n};
    for (size_t i = 0; i < line->nfields; i++) {
        const struct lp_field *f = &line->field[i];
        if (f->type == LP_STRING) {
            w->strings++;
            continue;
        }
        size_t fn = lp_unescape(&f->key, mraw);
        char *fs = name + mn;
        size_t sn = lp_sanitize_name(mraw, fn, true, fs);
        /* A field key starting with a digit needs no '_' after the one
         * already there: "m_1x", not "m__1x". */
        if (sn > fn) {
            memmove(fs, fs + 1, fn);
            sn = fn;
        }
        fs[sn] = '\0';
        int rc = tsdb_appender_add(w->app, 0, &ls, t, f->value, NULL);
        if (rc == 0) {
            w->written++;
        } else if (rc == BS_ENOMEM) {
            return "out of memory";
        } else {
            if (w->dropped++ == 0) {
                bs_buf_printf(&w->first_drop, "%s for series ", bs_strerror(rc));
                labels_format(&ls, &w->first_drop);
                bs_buf_printf(&w->first_drop, " at timestamp %" PRId64, t);
            }
        }
    }
    return NULL;
}

int ingest_influx_write(struct tsdb *db, const struct ingest_limits *lim_in, int version,
                        ingest_param_fn param, void *param_ctx, const char *content_encoding,
                        const void *body, size_t len, struct ingest_response *resp)
{
    pthread_once(&lp_metrics_once, lp_metrics_init);
    bs_metric_add(lp_metrics.requests, 1);
    memset(resp, 0, sizeof(*resp));
    struct ingest_limits lim;
    if (lim_in)
        lim = *lim_in;
    else
        ingest_limits_default(&lim);
    lp_version_headers(resp);

    const char *dbname = param ? param(param_ctx, version == 2 ? "bucket" : "db") : NULL;
    if (!dbname || !*dbname)
        return lp_answerf(resp, version, version == 2 ? 404 : 400, "%s",
                          version == 2 ? "bucket not found: a bucket parameter is required"
                                       : "database is required");
    if (!ingest_utf8_valid(dbname, strlen(dbname)))
        return lp_answerf(resp, version, 400, "database name is not valid UTF-8");
    const char *prec = param(param_ctx, "precision");
    struct lp_precision pr;
    if (!lp_precision_parse(prec, version, &pr))
        return lp_answerf(resp, version, 400, "invalid precision \"%.64s\" (use %s)", prec,
                          version == 2 ? "ns, us, ms or s" : "n, u, ms, s, m or h");

    if (lim.max_body_bytes && len > lim.max_body_bytes)
        return lp_answerf(resp, version, 413,
                          "request body of %zu bytes exceeds the limit of %zu bytes", len,
                          lim.max_body_bytes);
    char *plain = NULL;
    const char *text = body;
    size_t tlen = len;
    if (content_encoding && *content_encoding && strcasecmp(content_encoding, "identity") != 0) {
        if (strcasecmp(content_encoding, "gzip") != 0)
            return lp_answerf(resp, version, 415, "unsupported Content-Encoding \"%.64s\"",
                              content_encoding);
        int rc = ingest_gunzip(body, len, lim.max_decoded_bytes, &plain, &tlen);
        if (rc == BS_ELIMIT)
            return lp_answerf(resp, version, 413,
                              "decompressed request exceeds the limit of %zu bytes",
                              lim.max_decoded_bytes);
        if (rc == BS_ENOMEM)
            return lp_answerf(resp, version, 500, "out of memory");
        if (rc)
            return lp_answerf(resp, version, 400, "invalid gzip data in the request body");
        text = plain;
    }
    if (lim.max_series_per_request) {
        size_t lines = 1;
        for (const char *q = text, *end = text + tlen; (q = memchr(q, '\n', (size_t)(end - q)));
             q++)
            lines++;
        if (lines > lim.max_series_per_request + 1) {
            free(plain);
            return lp_answerf(resp, version, 413, "request has %zu lines, more than the limit of %zu",
                              lines, lim.max_series_per_request);
        }
    }

    struct lp_write w;
    memset(&w, 0, sizeof(w));
    w.db = dbname;
    w.pr = pr;
    w.now_ms = bs_now_ms();
    bs_arena_init(&w.arena, 4096, 0);
    bs_buf_init(&w.errors, 0);
    bs_buf_init(&w.first_drop, 4096);
    w.lbl = malloc((LP_MAX_TAGS + 2) * sizeof(*w.lbl));
    struct lp_line *line = malloc(sizeof(*line));
    w.app = tsdb_appender_new(db);
    int ret = 0;
    if (!w.lbl || !line || !w.app) {
        if (w.app)
            tsdb_appender_rollback(w.app);
        ret = lp_answerf(resp, version, 500, "out of memory");
        goto out;
    }

    struct lp_parser p;
    lp_parser_init(&p, text, tlen);
    size_t good_lines = 0;
    char rbuf[256];
    bool oom = false;
    for (;;) {
        const char *reason = NULL;
        int rc = lp_parser_next(&p, line, &reason, rbuf, sizeof(rbuf));
        if (rc == 0)
            break;
        if (rc == BS_EPARSE) {
            lp_note_line_error(&w, line, reason);
            continue;
        }
        const char *why = lp_stage_line(&w, line);
        if (why && !strcmp(why, "out of memory")) {
            oom = true;
            break;
        }
        if (why)
            lp_note_line_error(&w, line, why);
        else
            good_lines++;
    }
    if (oom) {
        tsdb_appender_rollback(w.app);
        ret = lp_answerf(resp, version, 500, "out of memory");
        goto out;
    }
    struct bs_error cerr = {0};
    if (tsdb_appender_commit(w.app, &cerr) != 0) {
        ret = lp_answerf(resp, version, 500, "write failed: %s", cerr.msg);
        goto out;
    }
    bs_metric_add(lp_metrics.samples, (double)w.written);
    bs_metric_add(lp_metrics.bad_lines, (double)w.bad_lines);
    bs_metric_add(lp_metrics.strings, (double)w.strings);
    bs_metric_add(lp_metrics.rejected, (double)w.dropped);

    if (w.nerrors == 0 && w.dropped == 0) {
        resp->status = 204;
        goto out;
    }
    struct bs_buf msg;
    bs_buf_init(&msg, 0);
    if (good_lines > 0)
        bs_buf_puts(&msg, "partial write: ");
    if (w.nerrors) {
        bs_buf_append(&msg, w.errors.data, w.errors.len);
        if (w.nerrors > LP_MAX_ERRORS)
            bs_buf_printf(&msg, "\n(and %zu more lines that could not be parsed)",
                          w.nerrors - LP_MAX_ERRORS);
    } else {
        bs_buf_append(&msg, w.first_drop.data, w.first_drop.len);
    }
    if (good_lines > 0)
        bs_buf_printf(&msg, " dropped=%zu", w.dropped);
    ret = lp_answer(resp, version, 400, msg.data ? msg.data : "", msg.len);
    bs_buf_fini(&msg);
out:
    free(line);
    free(w.lbl);
    bs_arena_fini(&w.arena);
    bs_buf_fini(&w.errors);
    bs_buf_fini(&w.first_drop);
    free(plain);
    return ret;
}

/* -------------------------------------------------------------- ping, query */

void ingest_influx_ping(struct ingest_response *resp)
{
    memset(resp, 0, sizeof(*resp));
    resp->status = 204;
    lp_version_headers(resp);
}

/* Databases named by CREATE DATABASE since start (the store only knows the
 * db labels of what was written). */
static pthread_mutex_t created_mu = PTHREAD_MUTEX_INITIALIZER;
static char **created;
static size_t ncreated;

static void created_add(const char *s, size_t n)
{
    pthread_mutex_lock(&created_mu);
    bool have = false;
    for (size_t i = 0; i < ncreated && !have; i++)
        have = strlen(created[i]) == n && !memcmp(created[i], s, n);
    if (!have && ncreated < 10000) {
        char **nv = realloc(created, (ncreated + 1) * sizeof(*nv));
        if (nv) {
            created = nv;
            created[ncreated++] = bs_xstrndup(s, n);
        }
    }
    pthread_mutex_unlock(&created_mu);
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int show_databases(struct tsdb *db, struct bs_buf *b)
{
    const char **vals = NULL;
    size_t nvals = 0;
    struct tsdb_querier *q = db ? tsdb_querier_new(db, INT64_MIN, INT64_MAX) : NULL;
    if (q && tsdb_querier_label_values(q, "db", NULL, 0, &vals, &nvals, NULL) != 0) {
        vals = NULL;
        nvals = 0;
    }
    pthread_mutex_lock(&created_mu);
    size_t total = nvals + ncreated;
    const char **all = malloc((total ? total : 1) * sizeof(*all));
    int rc = all ? 0 : BS_ENOMEM;
    size_t n = 0;
    if (all) {
        for (size_t i = 0; i < nvals; i++)
            all[n++] = vals[i];
        for (size_t i = 0; i < ncreated; i++)
            all[n++] = created[i];
        qsort(all, n, sizeof(*all), str_cmp);
    }
    if (rc == 0)
        rc = bs_buf_puts(b, "\"series\":[{\"name\":\"databases\",\"columns\":[\"name\"]");
    if (rc == 0 && n)
        rc = bs_buf_puts(b, ",\"values\":[");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (i && !strcmp(all[i], all[i - 1]))
            continue;
        rc = bs_buf_puts(b, i ? ",[" : "[");
        if (rc == 0)
            rc = bs_json_string(b, all[i], strlen(all[i]));
        if (rc == 0)
            rc = bs_buf_putc(b, ']');
    }
    if (rc == 0 && n)
        rc = bs_buf_putc(b, ']');
    if (rc == 0)
        rc = bs_buf_puts(b, "}]");
    pthread_mutex_unlock(&created_mu);
    free(all);
    free(vals);
    if (q)
        tsdb_querier_free(q);
    return rc;
}

/* Case-insensitive keyword at *s followed by white space or the end. */
static bool keyword(const char **s, const char *end, const char *kw)
{
    size_t n = strlen(kw);
    const char *p = *s;
    if ((size_t)(end - p) < n || strncasecmp(p, kw, n) != 0)
        return false;
    p += n;
    if (p < end && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
        return false;
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    *s = p;
    return true;
}

int ingest_influx_query(struct tsdb *db, const char *qtext, struct ingest_response *resp)
{
    memset(resp, 0, sizeof(*resp));
    lp_version_headers(resp);
    if (!qtext || !*qtext)
        return lp_answerf(resp, 1, 400, "missing required parameter \"q\"");
    struct bs_buf b;
    bs_buf_init(&b, 0);
    int rc = bs_buf_puts(&b, "{\"results\":[");
    const char *s = qtext, *all_end = qtext + strlen(qtext);
    int id = 0;
    while (rc == 0 && s < all_end) {
        const char *semi = memchr(s, ';', (size_t)(all_end - s));
        const char *end = semi ? semi : all_end;
        while (s < end && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r'))
            s++;
        const char *tend = end;
        while (tend > s && (tend[-1] == ' ' || tend[-1] == '\t' || tend[-1] == '\n' ||
                            tend[-1] == '\r'))
            tend--;
        if (s == tend) {
            s = semi ? semi + 1 : all_end;
            continue;
        }
        const char *p = s;
        if (id)
            rc = bs_buf_putc(&b, ',');
        if (rc == 0)
            rc = bs_buf_printf(&b, "{\"statement_id\":%d", id);
        if (keyword(&p, tend, "SHOW") && keyword(&p, tend, "DATABASES") && p == tend) {
            if (rc == 0)
                rc = bs_buf_putc(&b, ',');
            if (rc == 0)
                rc = show_databases(db, &b);
        } else if ((p = s, keyword(&p, tend, "CREATE")) && keyword(&p, tend, "DATABASE") &&
                   p < tend) {
            const char *nm = p, *ne;
            if (*nm == '"') {
                nm++;
                ne = memchr(nm, '"', (size_t)(tend - nm));
                if (!ne)
                    goto unsupported;
            } else {
                ne = nm;
                while (ne < tend && *ne != ' ' && *ne != '\t')
                    ne++;
            }
            if (ne == nm)
                goto unsupported;
            created_add(nm, (size_t)(ne - nm));
        } else {
            goto unsupported;
        }
        if (rc == 0)
            rc = bs_buf_putc(&b, '}');
        id++;
        s = semi ? semi + 1 : all_end;
    }
    if (rc == 0)
        rc = bs_buf_puts(&b, "]}\n");
    if (rc) {
        bs_buf_fini(&b);
        ingest_response_fini(resp);
        resp->status = 500;
        return BS_ENOMEM;
    }
    ingest_response_take(resp, 200, &b);
    resp->content_type = "application/json";
    return 0;
unsupported:
    bs_buf_fini(&b);
    return lp_answerf(resp, 1, 400,
                      "bongsu answers only SHOW DATABASES and CREATE DATABASE here, not \"%.*s\"; "
                      "read data with PromQL (/api/v1/query)",
                      (int)((size_t)(all_end - s) > 200 ? 200 : (size_t)(all_end - s)), s);
}
