/* SPDX-License-Identifier: Apache-2.0
 *
 * The scrape loop: one thread that scrapes every target.
 *
 * Why one thread. Prometheus runs a goroutine per target; a C thread per
 * target would cost a stack and a wakeup each and make thousands of targets
 * expensive. Almost all of a scrape is waiting on the network, so a single
 * libcurl multi handle does the waiting for all of them: the thread sleeps
 * in curl_multi_poll() until a socket is ready, the next target is due, or
 * a config apply wakes it (curl_multi_wakeup). A slow or dead target only
 * occupies its own transfer; CURLOPT_TIMEOUT_MS = scrape_timeout ends it,
 * and the other transfers proceed meanwhile.
 *
 * Schedule. Each target scrapes every scrape_interval at a fixed phase: the
 * first scrape happens at the first wall-clock instant t with
 * t mod interval == hash(target) mod interval, so targets spread over the
 * interval and keep their phase across restarts, as in Prometheus. Later
 * scrapes follow on the monotonic clock; missed ticks (a scrape still in
 * flight, a stalled thread) are skipped, never bunched up.
 *
 * One scrape, once its body arrived:
 *   1. Pass one parses the whole body without storing anything. A parse
 *      error fails the scrape (Prometheus semantics): nothing of a bad body
 *      is stored.
 *   2. Pass two parses again (the parser is zero-copy, so this is cheap)
 *      and appends each sample through one appender. The scrape cache maps
 *      the raw series text to the tsdb ref and the final labels, so a
 *      series seen before costs one hash lookup; only new series have their
 *      labels merged with the target's (honor_labels, exported_*).
 *      Per-sample rejections (out of order, duplicate, out of bounds) are
 *      counted and do not fail the scrape.
 *   3. Staleness: the series of the previous successful scrape that this
 *      one did not see get a stale marker at this scrape's timestamp. A
 *      failed scrape marks every previous series stale. Series exposed with
 *      an explicit timestamp (honored) take no part, as in Prometheus.
 *   4. The synthetic series: up, scrape_duration_seconds,
 *      scrape_samples_scraped, scrape_samples_post_metric_relabeling,
 *      scrape_series_added.
 *   5. One commit. If it fails, the scrape failed: a second, small batch
 *      writes up=0 and the staleness markers, and the cache is dropped since
 *      its refs may name series that never became visible.
 * Parse work per scrape is bounded by the body size limit; parsing happens
 * on this thread for now, which delays other targets' starts by at most
 * that much but never their transfers' deadlines.
 *
 * A removed target (config apply) is taken off the multi handle; its series
 * and its synthetic series get stale markers ("end of run"). On shutdown no
 * markers are written, as in Prometheus.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scrape/scrape_int.h"

struct loop {
    struct scrape_manager *m;
    struct scrape_target **run; /* started targets; borrowed */
    size_t nrun, cap;
    struct labels_builder lb; /* scratch for label merging */
    size_t body_limit;
};

static int64_t mono_ms(void)
{
    return bs_monotonic_ns() / 1000000;
}

/* --------------------------------------------------------- curl callbacks */

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    struct scrape_target *t = ud;
    size_t len = size * n;
    int rc = bs_buf_append(&t->body, p, len);
    if (rc != 0) {
        if (rc == BS_ELIMIT)
            t->body_limit_hit = true;
        return 0; /* any short count makes curl fail with CURLE_WRITE_ERROR */
    }
    return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    struct scrape_target *t = ud;
    size_t len = size * n;
    /* "HTTP/1.1 500 Internal Server Error\r\n": keep the reason phrase of the
     * last status line (redirects produce several). */
    if (len > 5 && memcmp(p, "HTTP/", 5) == 0) {
        const char *end = p + len;
        const char *sp = memchr(p, ' ', len);
        const char *r = NULL;
        if (sp)
            r = memchr(sp + 1, ' ', (size_t)(end - sp - 1));
        t->reason[0] = '\0';
        if (r) {
            r++;
            const char *e = end;
            while (e > r && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' '))
                e--;
            size_t rl = (size_t)(e - r);
            if (rl >= sizeof(t->reason))
                rl = sizeof(t->reason) - 1;
            memcpy(t->reason, r, rl);
            t->reason[rl] = '\0';
        }
    }
    return len;
}

/* Go's http.StatusText for the codes a target plausibly returns, used when
 * the status line carried no reason phrase (HTTP/2). */
static const char *status_text(long code)
{
    switch (code) {
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 408:
        return "Request Timeout";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "";
    }
}

/* ------------------------------------------------------------ transfers */

/* Create and configure t's easy handle; 0 or BS_ENOMEM. */
static int target_setup_easy(struct scrape_target *t)
{
    char hdr[BS_FLOAT_FMT_MAX + 64], secs[BS_FLOAT_FMT_MAX];
    CURL *e = curl_easy_init();
    if (!e)
        return BS_ENOMEM;
    bs_float_format((double)t->timeout_ms / 1000.0, secs);
    snprintf(hdr, sizeof(hdr), "X-Prometheus-Scrape-Timeout-Seconds: %s", secs);
    struct curl_slist *h =
        curl_slist_append(NULL, "Accept: text/plain;version=0.0.4;q=1,*/*;q=0.1");
    struct curl_slist *h2 = h ? curl_slist_append(h, hdr) : NULL;
    if (!h2) {
        curl_slist_free_all(h);
        curl_easy_cleanup(e);
        return BS_ENOMEM;
    }
    t->headers = h2;
    curl_easy_setopt(e, CURLOPT_URL, t->url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "bongsu/" BS_VERSION);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "gzip");
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)t->timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, t);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->curl_err);
    curl_easy_setopt(e, CURLOPT_PRIVATE, t);
    t->easy = e;
    return 0;
}

/* First scrape at the next wall-clock instant in the target's phase. */
static void target_schedule_first(struct scrape_target *t)
{
    int64_t iv = t->interval_ms > 0 ? t->interval_ms : 1;
    int64_t now = bs_now_ms();
    int64_t off = (int64_t)(t->offset_hash % (uint64_t)iv) - now % iv;
    if (off < 0)
        off += iv;
    t->next_ms = mono_ms() + off;
}

static void scrape_process(struct loop *L, struct scrape_target *t, bool fetched, char *errmsg);

static void scrape_start(struct loop *L, struct scrape_target *t, int64_t now)
{
    int64_t iv = t->interval_ms > 0 ? t->interval_ms : 1;
    t->next_ms += iv;
    if (t->next_ms <= now)
        t->next_ms += ((now - t->next_ms) / iv + 1) * iv;

    bs_buf_reset(&t->body);
    t->body.max = L->body_limit;
    t->body_limit_hit = false;
    t->reason[0] = '\0';
    t->curl_err[0] = '\0';
    t->start_wall_ms = bs_now_ms();
    t->start_mono_ns = bs_monotonic_ns();
    bs_metric_add(scrape_metrics.scrapes, 1);

    char errmsg[512];
    if (!t->easy && target_setup_easy(t) != 0) {
        snprintf(errmsg, sizeof(errmsg), "Get \"%s\": out of memory", t->url);
        scrape_process(L, t, false, errmsg);
        return;
    }
    CURLMcode mc = curl_multi_add_handle(L->m->multi, t->easy);
    if (mc != CURLM_OK) {
        snprintf(errmsg, sizeof(errmsg), "Get \"%s\": %s", t->url, curl_multi_strerror(mc));
        scrape_process(L, t, false, errmsg);
        return;
    }
    t->in_flight = true;
}

/* A transfer ended with cc: decide success or the error text, then process. */
static void scrape_finish(struct loop *L, struct scrape_target *t, CURLcode cc)
{
    char errmsg[512] = "";
    long status = 0;
    bool ok = false;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    if (t->body_limit_hit) {
        snprintf(errmsg, sizeof(errmsg), "body size limit exceeded");
        bs_metric_add(scrape_metrics.body_limit, 1);
    } else if (cc == CURLE_OPERATION_TIMEDOUT) {
        snprintf(errmsg, sizeof(errmsg), "Get \"%s\": context deadline exceeded", t->url);
    } else if (cc != CURLE_OK) {
        snprintf(errmsg, sizeof(errmsg), "Get \"%s\": %s", t->url,
                 t->curl_err[0] ? t->curl_err : curl_easy_strerror(cc));
    } else if (status != 200) {
        snprintf(errmsg, sizeof(errmsg), "server returned HTTP status %ld %s", status,
                 t->reason[0] ? t->reason : status_text(status));
    } else {
        ok = true;
    }
    scrape_process(L, t, ok, errmsg);
    /* Do not keep a huge buffer around for the next scrape. */
    if (t->body.cap > ((size_t)1 << 20)) {
        bs_buf_fini(&t->body);
        bs_buf_init(&t->body, L->body_limit);
    }
}

/* ------------------------------------------------------------- appending */

/* Append by ref when known, falling back to the labels when the tsdb does
 * not know the ref (any more); *ref is updated on success. */
static int add_cached(struct tsdb_appender *app, tsdb_ref *ref, const struct labels *ls, int64_t t,
                      double v)
{
    if (*ref) {
        int rc = tsdb_appender_add(app, *ref, NULL, t, v, NULL);
        if (rc != BS_EINVAL)
            return rc;
    }
    return tsdb_appender_add(app, 0, ls, t, v, ref);
}

/* Count a per-sample rejection; returns true if rc is one (or success). */
static bool sample_error_tolerated(int rc)
{
    switch (rc) {
    case 0:
        return true;
    case BS_EOUTOFORDER:
        bs_metric_add(scrape_metrics.out_of_order, 1);
        return true;
    case BS_EDUPLICATE:
        bs_metric_add(scrape_metrics.duplicate, 1);
        return true;
    case BS_EOUTOFBOUNDS:
        bs_metric_add(scrape_metrics.out_of_bounds, 1);
        return true;
    default:
        return false;
    }
}

/* Pass one: parse the whole body; count the samples. 0, or the parser's
 * error code with its message in errmsg. */
static int body_validate(const struct bs_buf *body, uint64_t *nsamples, char *errmsg)
{
    struct expfmt_parser p;
    struct bs_error err;
    enum expfmt_entry kind;
    int rc;
    bs_error_clear(&err);
    *nsamples = 0;
    expfmt_parser_init(&p, body->data ? body->data : "", body->len);
    while ((rc = expfmt_parser_next(&p, &kind, &err)) == 0 && kind != EXPFMT_EOF) {
        if (kind == EXPFMT_SERIES)
            (*nsamples)++;
    }
    expfmt_parser_fini(&p);
    if (rc != 0)
        snprintf(errmsg, 512, "%s", err.msg[0] ? err.msg : bs_strerror(rc));
    return rc;
}

static void cur_push(struct scrape_target *t, struct scrape_cache_entry *e)
{
    if (t->ncur == t->cur_cap) {
        t->cur_cap = t->cur_cap ? t->cur_cap * 2 : 64;
        t->cur = bs_xrealloc(t->cur, t->cur_cap * sizeof(*t->cur));
    }
    t->cur[t->ncur++] = e;
}

/* Pass two: append every sample of the (valid) body. Returns 0, or an error
 * with errmsg set; the caller then rolls the appender back. */
static int body_append(struct loop *L, struct scrape_target *t, struct tsdb_appender *app,
                       int64_t ts, uint64_t *nadded, char *errmsg)
{
    struct expfmt_parser p;
    struct bs_error err;
    enum expfmt_entry kind;
    int rc;
    bs_error_clear(&err);
    *nadded = 0;
    expfmt_parser_init(&p, t->body.data ? t->body.data : "", t->body.len);
    while ((rc = expfmt_parser_next(&p, &kind, &err)) == 0 && kind != EXPFMT_EOF) {
        if (kind != EXPFMT_SERIES)
            continue;
        const struct expfmt_series *s = expfmt_parser_series(&p);
        uint64_t h = bs_hash64(s->series_text, s->series_text_len);
        struct scrape_cache_entry *e =
            scrape_cache_get(&t->cache, s->series_text, s->series_text_len, h);
        if (!e) {
            struct labels view;
            rc = scrape_labels_merge(&L->lb, s, t->labels, t->honor_labels, &view, &err);
            if (rc != 0)
                break;
            struct labels *ls = labels_dup(&view);
            e = ls ? scrape_cache_put(&t->cache, s->series_text, s->series_text_len, h, ls) : NULL;
            if (!e) {
                rc = bs_error_set(&err, BS_ENOMEM, "out of memory caching series");
                break;
            }
            (*nadded)++;
        }
        bool honored = t->honor_timestamps && s->has_timestamp;
        rc = add_cached(app, &e->ref, e->ls, honored ? s->timestamp_ms : ts, s->value);
        if (!sample_error_tolerated(rc)) {
            bs_error_set(&err, rc, "appending %.*s: %s", (int)s->series_text_len, s->series_text,
                         bs_strerror(rc));
            break;
        }
        rc = 0;
        if (e->last_seen != t->iter) {
            e->last_seen = t->iter;
            e->explicit_ts = honored;
            if (!honored)
                cur_push(t, e);
        }
    }
    expfmt_parser_fini(&p);
    if (rc != 0)
        snprintf(errmsg, 512, "%s", err.msg[0] ? err.msg : bs_strerror(rc));
    return rc;
}

/* Stale markers for the previous scrape's series; all of them, or only those
 * this scrape did not see. */
static void append_stale(struct scrape_target *t, struct tsdb_appender *app, int64_t ts, bool all)
{
    for (size_t i = 0; i < t->nprev; i++) {
        struct scrape_cache_entry *e = t->prev[i];
        if (!all && e->last_seen == t->iter)
            continue;
        (void)sample_error_tolerated(add_cached(app, &e->ref, e->ls, ts, bs_stale_nan()));
    }
}

static void append_report(struct scrape_target *t, struct tsdb_appender *app, int64_t ts, bool up,
                          double duration, uint64_t nsamples, uint64_t nadded)
{
    double v[SCRAPE_REPORT_COUNT] = {
        [SCRAPE_REPORT_UP] = up ? 1 : 0,
        [SCRAPE_REPORT_DURATION] = duration,
        [SCRAPE_REPORT_SAMPLES] = (double)nsamples,
        [SCRAPE_REPORT_POST_RELABEL] = (double)nsamples,
        [SCRAPE_REPORT_SERIES_ADDED] = (double)nadded,
    };
    for (size_t i = 0; i < SCRAPE_REPORT_COUNT; i++)
        (void)sample_error_tolerated(
            add_cached(app, &t->report_refs[i], t->report_ls[i], ts, v[i]));
    t->reported = true;
}

/* Forget every ref: after a rolled back or failed batch they may name series
 * that never became visible. */
static void forget_refs(struct scrape_target *t)
{
    for (size_t i = 0; i < t->nprev; i++)
        t->prev[i]->ref = 0;
    for (size_t i = 0; i < SCRAPE_REPORT_COUNT; i++)
        t->report_refs[i] = 0;
}

/* Everything after the transfer: store the scrape (or its failure), update
 * staleness bookkeeping and the target's status. errmsg holds the failure
 * when fetched is false and receives it otherwise. */
static void scrape_process(struct loop *L, struct scrape_target *t, bool fetched, char *errmsg)
{
    struct tsdb *db = L->m->db;
    int64_t ts = t->start_wall_ms;
    uint64_t nsamples = 0, nadded = 0;
    bool ok = fetched, cache_suspect = false;
    struct bs_error err;
    bs_error_clear(&err);

    /* Timestamps must grow even if the wall clock stepped back. */
    if (ts <= t->last_ts)
        ts = t->last_ts + 1;
    t->last_ts = ts;
    t->iter++;
    t->ncur = 0;

    if (ok)
        ok = body_validate(&t->body, &nsamples, errmsg) == 0;
    struct tsdb_appender *app = tsdb_appender_new(db);
    if (app && ok && body_append(L, t, app, ts, &nadded, errmsg) != 0) {
        tsdb_appender_rollback(app);
        app = tsdb_appender_new(db);
        ok = false;
        cache_suspect = true;
        t->ncur = 0;
        forget_refs(t);
    }
    if (!app) {
        ok = false;
        snprintf(errmsg, 512, "cannot create an appender: out of memory");
    } else {
        append_stale(t, app, ts, !ok);
        double dur = (double)(bs_monotonic_ns() - t->start_mono_ns) / 1e9;
        append_report(t, app, ts, ok, dur, ok ? nsamples : 0, ok ? nadded : 0);
        if (tsdb_appender_commit(app, &err) != 0) {
            if (ok)
                snprintf(errmsg, 512, "%s", err.msg[0] ? err.msg : bs_strerror(err.code));
            ok = false;
            cache_suspect = true;
            t->ncur = 0;
            forget_refs(t);
            /* Second chance, small: up=0 and the staleness markers. */
            app = tsdb_appender_new(db);
            if (app) {
                append_stale(t, app, ts, true);
                append_report(t, app, ts, false, dur, 0, 0);
                bs_error_clear(&err);
                if (tsdb_appender_commit(app, &err) != 0) {
                    BS_ERROR(SCRAPE_COMPONENT, "cannot store the scrape report of %s: %s", t->url,
                             err.msg);
                    forget_refs(t);
                }
            }
        }
    }
    int64_t end_ns = bs_monotonic_ns();

    /* Staleness bookkeeping. */
    if (ok) {
        struct scrape_cache_entry **tmp = t->prev;
        size_t tcap = t->prev_cap;
        t->prev = t->cur;
        t->nprev = t->ncur;
        t->prev_cap = t->cur_cap;
        t->cur = tmp;
        t->cur_cap = tcap;
        scrape_cache_evict(&t->cache, t->iter);
    } else {
        t->nprev = 0;
        if (cache_suspect) {
            scrape_cache_fini(&t->cache);
            scrape_cache_init(&t->cache);
        }
    }
    t->ncur = 0;
    if (!ok)
        bs_metric_add(scrape_metrics.failed, 1);

    /* Status, and one log line per change of health. */
    struct scrape_manager *m = L->m;
    pthread_mutex_lock(&m->mu);
    enum scrape_health old = t->health;
    t->health = ok ? SCRAPE_HEALTH_UP : SCRAPE_HEALTH_DOWN;
    snprintf(t->last_error, sizeof(t->last_error), "%s", ok ? "" : errmsg);
    t->last_scrape_ms = t->start_wall_ms;
    t->last_duration_s = (double)(end_ns - t->start_mono_ns) / 1e9;
    pthread_mutex_unlock(&m->mu);
    if (!ok && old != SCRAPE_HEALTH_DOWN)
        BS_WARN(SCRAPE_COMPONENT, "target %s of job %s is down: %s", t->url, t->pool, errmsg);
    else if (ok && old == SCRAPE_HEALTH_DOWN)
        BS_INFO(SCRAPE_COMPONENT, "target %s of job %s is up again", t->url, t->pool);
}

void scrape_loop_end_of_run(struct scrape_manager *m, struct scrape_target *t)
{
    if (t->nprev == 0 && !t->reported)
        return;
    int64_t ts = bs_now_ms();
    if (ts <= t->last_ts)
        ts = t->last_ts + 1;
    struct tsdb_appender *app = tsdb_appender_new(m->db);
    if (!app)
        return;
    append_stale(t, app, ts, true);
    if (t->reported) {
        for (size_t i = 0; i < SCRAPE_REPORT_COUNT; i++)
            (void)sample_error_tolerated(
                add_cached(app, &t->report_refs[i], t->report_ls[i], ts, bs_stale_nan()));
    }
    struct bs_error err;
    bs_error_clear(&err);
    if (tsdb_appender_commit(app, &err) != 0)
        BS_WARN(SCRAPE_COMPONENT, "cannot write staleness markers for removed target %s: %s",
                t->url, err.msg);
}

/* ------------------------------------------------------------ the thread */

static void run_remove(struct loop *L, struct scrape_target *t)
{
    for (size_t i = 0; i < L->nrun; i++) {
        if (L->run[i] == t) {
            memmove(&L->run[i], &L->run[i + 1], (L->nrun - i - 1) * sizeof(*L->run));
            L->nrun--;
            return;
        }
    }
}

void *scrape_loop_run(void *arg)
{
    struct loop L;
    memset(&L, 0, sizeof(L));
    L.m = arg;
    struct scrape_manager *m = L.m;
    labels_builder_init(&L.lb);

    for (;;) {
        struct scrape_target **gone;
        size_t ngone;

        /* Pick up config changes. */
        pthread_mutex_lock(&m->mu);
        if (m->stopping) {
            pthread_mutex_unlock(&m->mu);
            break;
        }
        L.body_limit = m->body_limit;
        gone = m->removed;
        ngone = m->nremoved;
        m->removed = NULL;
        m->nremoved = m->removed_cap = 0;
        for (size_t i = 0; i < m->ntargets; i++) {
            struct scrape_target *t = m->targets[i];
            if (t->started)
                continue;
            t->started = true;
            target_schedule_first(t);
            if (L.nrun == L.cap) {
                L.cap = L.cap ? L.cap * 2 : 16;
                L.run = bs_xrealloc(L.run, L.cap * sizeof(*L.run));
            }
            L.run[L.nrun++] = t;
        }
        pthread_mutex_unlock(&m->mu);

        for (size_t i = 0; i < ngone; i++) {
            struct scrape_target *t = gone[i];
            run_remove(&L, t);
            if (t->in_flight) {
                curl_multi_remove_handle(m->multi, t->easy);
                t->in_flight = false;
            }
            scrape_loop_end_of_run(m, t);
            scrape_target_free(t);
        }
        free(gone);

        /* Start what is due. */
        int64_t now = mono_ms();
        for (size_t i = 0; i < L.nrun; i++) {
            struct scrape_target *t = L.run[i];
            if (!t->in_flight && now >= t->next_ms)
                scrape_start(&L, t, now);
        }

        /* Drive the transfers and handle the finished ones. */
        int still = 0;
        curl_multi_perform(m->multi, &still);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m->multi, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            CURL *e = msg->easy_handle;
            CURLcode cc = msg->data.result;
            char *priv = NULL;
            curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
            struct scrape_target *t = (struct scrape_target *)(void *)priv;
            curl_multi_remove_handle(m->multi, e);
            if (t) {
                t->in_flight = false;
                scrape_finish(&L, t, cc);
            }
        }

        /* Sleep until a socket is ready, the next target is due or a config
         * apply or shutdown wakes us. */
        int64_t wait = 1000;
        now = mono_ms();
        for (size_t i = 0; i < L.nrun; i++) {
            const struct scrape_target *t = L.run[i];
            if (t->in_flight)
                continue;
            int64_t d = t->next_ms - now;
            if (d < wait)
                wait = d < 0 ? 0 : d;
        }
        curl_multi_poll(m->multi, NULL, 0, (int)wait, NULL);
    }

    for (size_t i = 0; i < L.nrun; i++) {
        struct scrape_target *t = L.run[i];
        if (t->in_flight) {
            curl_multi_remove_handle(m->multi, t->easy);
            t->in_flight = false;
        }
    }
    free(L.run);
    labels_builder_fini(&L.lb);
    return NULL;
}
