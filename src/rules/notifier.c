/* SPDX-License-Identifier: Apache-2.0
 *
 * The notifier: a bounded queue of alerts and one thread that POSTs them
 * to every configured Alertmanager (API v2, /api/v2/alerts), as Prometheus
 * 2.42's notifier.Manager does.
 *
 * send() adds the external labels an alert lacks, applies
 * alert_relabel_configs (an alert a keep/drop rule drops is gone), and
 * appends to the queue; when the queue would exceed its capacity the oldest
 * alerts are dropped and counted (bongsu_notifications_dropped_total). The
 * thread takes up to RULES_NOTIFY_BATCH_MAX alerts at a time, encodes them
 * once and sends the body to all Alertmanagers at once (one curl multi
 * handle, each request with its own timeout). A batch that reached no
 * Alertmanager is counted as dropped; each failed request counts an error
 * for its Alertmanager. Nothing here blocks rule evaluation: send() only
 * takes the queue mutex. With no Alertmanager configured, alerts are
 * discarded at send() without being counted.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rules/rules_int.h"

struct am {
    char *url;
    char *username, *password, *bearer, *ca_file, *cert_file, *key_file;
    bool insecure;
    int64_t timeout_ms;
    struct bs_metric *m_sent, *m_errors;
};

struct rules_notifier {
    pthread_mutex_t mu;
    pthread_cond_t cv;       /* queue non-empty, stop, or drained */
    struct rules_notify_alert *q;
    size_t qlen, qcap;       /* qcap: the capacity (bound) */
    struct am *ams;
    size_t nams;
    struct labels_relabel_config *relabel;
    size_t nrelabel;
    bool stop, inflight;
    pthread_t thread;
    bool thread_ok;
    uint64_t sent, errors, dropped;
};

static struct bs_metric *m_dropped, *m_queue_len, *m_queue_cap, *m_ams;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    m_dropped = bs_metric_register(BS_METRIC_COUNTER, "bongsu_notifications_dropped_total",
                                   "Total number of alerts dropped due to errors when sending to Alertmanager.",
                                   NULL);
    m_queue_len = bs_metric_register(BS_METRIC_GAUGE, "bongsu_notifications_queue_length",
                                     "The number of alert notifications in the queue.", NULL);
    m_queue_cap = bs_metric_register(BS_METRIC_GAUGE, "bongsu_notifications_queue_capacity",
                                     "The capacity of the alert notifications queue.", NULL);
    m_ams = bs_metric_register(BS_METRIC_GAUGE, "bongsu_notifications_alertmanagers_discovered",
                               "The number of alertmanagers discovered and active.", NULL);
}

void rules_notify_alert_fini(struct rules_notify_alert *a)
{
    free(a->labels);
    a->labels = NULL;
    rules_kv_free(&a->annotations);
    free(a->generator_url);
    a->generator_url = NULL;
}

/* ---------------------------------------------------------- configure */

static void ams_free(struct am *ams, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(ams[i].url);
        free(ams[i].username);
        free(ams[i].password);
        free(ams[i].bearer);
        free(ams[i].ca_file);
        free(ams[i].cert_file);
        free(ams[i].key_file);
    }
    free(ams);
}

static void relabel_free(struct labels_relabel_config *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        labels_relabel_config_fini(&r[i]);
    free(r);
}

static char *dup_or_null(const char *s)
{
    return s ? bs_xstrdup(s) : NULL;
}

static void escape_lv(struct bs_buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            bs_buf_putc(b, '\\');
        bs_buf_putc(b, *s);
    }
}

int rules_notifier_configure(struct rules_notifier *n, const struct rules_notifier_config *nc,
                             struct bs_error *err)
{
    struct am *ams = NULL;
    size_t nams = 0, total = 0;
    struct labels_relabel_config *rl = NULL;
    for (size_t i = 0; i < nc->nalertmanagers; i++)
        total += nc->alertmanagers[i].ntargets;
    if (total)
        ams = bs_xcalloc(total, sizeof(*ams));
    for (size_t i = 0; i < nc->nalertmanagers; i++) {
        const struct rules_alertmanager_config *c = &nc->alertmanagers[i];
        const char *scheme = c->scheme && c->scheme[0] ? c->scheme : "http";
        if (strcmp(scheme, "http") && strcmp(scheme, "https")) {
            ams_free(ams, nams);
            return bs_error_set(err, BS_EINVAL, "unsupported scheme \"%s\" for URL", scheme);
        }
        for (size_t j = 0; j < c->ntargets; j++) {
            struct am *a = &ams[nams++];
            struct bs_buf u;
            bs_buf_init(&u, 0);
            /* scheme://host + path.Join("/", path_prefix, "/api/v2/alerts") */
            bs_buf_printf(&u, "%s://%s", scheme, c->targets[j]);
            const char *pp = c->path_prefix ? c->path_prefix : "";
            while (*pp == '/')
                pp++;
            if (*pp) {
                bs_buf_putc(&u, '/');
                bs_buf_puts(&u, pp);
                while (u.len && u.data[u.len - 1] == '/')
                    u.data[--u.len] = 0;
            }
            bs_buf_puts(&u, "/api/v2/alerts");
            a->url = bs_buf_steal(&u, NULL);
            a->username = dup_or_null(c->username);
            a->password = dup_or_null(c->password);
            a->bearer = dup_or_null(c->bearer_token);
            a->ca_file = dup_or_null(c->ca_file);
            a->cert_file = dup_or_null(c->cert_file);
            a->key_file = dup_or_null(c->key_file);
            a->insecure = c->insecure_skip_verify;
            a->timeout_ms = c->timeout_ms > 0 ? c->timeout_ms : RULES_DEFAULT_AM_TIMEOUT_MS;
            struct bs_buf l;
            bs_buf_init(&l, 0);
            bs_buf_puts(&l, "alertmanager=\"");
            escape_lv(&l, a->url);
            bs_buf_putc(&l, '"');
            a->m_sent = bs_metric_register(BS_METRIC_COUNTER, "bongsu_notifications_sent_total",
                                           "Total number of alerts sent.", l.data);
            a->m_errors = bs_metric_register(BS_METRIC_COUNTER, "bongsu_notifications_errors_total",
                                             "Total number of errors sending alert notifications.",
                                             l.data);
            bs_buf_fini(&l);
        }
    }
    if (nc->nalert_relabel_configs)
        rl = bs_xcalloc(nc->nalert_relabel_configs, sizeof(*rl));
    for (size_t i = 0; i < nc->nalert_relabel_configs; i++) {
        /* Re-compile from the effective values: the caller's copy may be freed. */
        const struct labels_relabel_config *src = &nc->alert_relabel_configs[i];
        struct labels_relabel_spec spec = {
            .action = labels_relabel_action_name(src->action),
            .source_labels = (const char *const *)src->source_labels,
            .nsource_labels = src->nsource_labels,
            .separator = src->separator,
            .regex = src->regex,
            .modulus = src->modulus,
            .target_label = src->target_label,
            .replacement = src->replacement,
        };
        if (!spec.source_labels && spec.nsource_labels == 0)
            spec.source_labels = NULL;
        int rc = labels_relabel_config_init(&rl[i], &spec, err);
        if (rc) {
            relabel_free(rl, i);
            ams_free(ams, nams);
            return rc;
        }
    }
    pthread_mutex_lock(&n->mu);
    ams_free(n->ams, n->nams);
    relabel_free(n->relabel, n->nrelabel);
    n->ams = ams;
    n->nams = nams;
    n->relabel = rl;
    n->nrelabel = nc->nalert_relabel_configs;
    n->qcap = nc->queue_capacity ? nc->queue_capacity : RULES_DEFAULT_QUEUE_CAPACITY;
    pthread_mutex_unlock(&n->mu);
    bs_metric_set(m_queue_cap, (double)n->qcap);
    bs_metric_set(m_ams, (double)nams);
    return 0;
}

/* --------------------------------------------------------------- payload */

static void time_json(struct bs_buf *b, int64_t ms)
{
    char t[64];
    if (ms == 0) {
        bs_buf_puts(b, "\"0001-01-01T00:00:00.000Z\"");
        return;
    }
    bs_time_format_rfc3339(ms, t, sizeof(t));
    bs_buf_printf(b, "\"%s\"", t);
}

int rules_notifier_payload(const struct rules_notify_alert *alerts, size_t n, struct bs_buf *out)
{
    bs_buf_putc(out, '[');
    for (size_t i = 0; i < n; i++) {
        const struct rules_notify_alert *a = &alerts[i];
        if (i)
            bs_buf_putc(out, ',');
        bs_buf_puts(out, "{\"annotations\":{");
        for (size_t j = 0; j < a->annotations.n; j++) {
            if (j)
                bs_buf_putc(out, ',');
            bs_json_string(out, a->annotations.v[j].name, strlen(a->annotations.v[j].name));
            bs_buf_putc(out, ':');
            bs_json_string(out, a->annotations.v[j].value, strlen(a->annotations.v[j].value));
        }
        bs_buf_puts(out, "},\"endsAt\":");
        time_json(out, a->ends_at);
        bs_buf_puts(out, ",\"startsAt\":");
        time_json(out, a->starts_at);
        bs_buf_puts(out, ",\"generatorURL\":");
        const char *gu = a->generator_url ? a->generator_url : "";
        bs_json_string(out, gu, strlen(gu));
        bs_buf_puts(out, ",\"labels\":");
        labels_format_json(a->labels, out);
        bs_buf_putc(out, '}');
    }
    return bs_buf_putc(out, ']');
}

/* ----------------------------------------------------------------- send */

void rules_notifier_send(struct rules_notifier *n, const struct labels *ext,
                         struct rules_notify_alert *alerts, size_t nalerts)
{
    struct labels_builder b;
    labels_builder_init(&b);
    pthread_mutex_lock(&n->mu);
    if (!n->nams) {
        pthread_mutex_unlock(&n->mu);
        for (size_t i = 0; i < nalerts; i++)
            rules_notify_alert_fini(&alerts[i]);
        labels_builder_fini(&b);
        return;
    }
    size_t kept = 0;
    for (size_t i = 0; i < nalerts; i++) {
        struct rules_notify_alert *a = &alerts[i];
        labels_builder_from(&b, a->labels);
        for (size_t j = 0; ext && j < ext->n; j++)
            if (!labels_get(a->labels, ext->v[j].name))
                labels_builder_set_str(&b, ext->v[j].name, ext->v[j].value);
        bool keep = true;
        if (n->nrelabel)
            labels_relabel_apply_builder(n->relabel, n->nrelabel, &b, &keep);
        struct labels ls;
        if (keep && labels_builder_labels(&b, &ls, NULL) == 0 && ls.n) {
            free(a->labels);
            a->labels = labels_dup(&ls);
            alerts[kept++] = *a;
        } else {
            rules_notify_alert_fini(a);
        }
    }
    labels_builder_fini(&b);
    size_t add = kept, skip = 0;
    if (add > n->qcap) {
        skip = add - n->qcap;
        BS_WARN("notifier", "alert batch larger than queue capacity, dropping %zu alerts", skip);
        n->dropped += skip;
        bs_metric_add(m_dropped, (double)skip);
        for (size_t i = 0; i < skip; i++)
            rules_notify_alert_fini(&alerts[i]);
        add -= skip;
    }
    if (n->qlen + add > n->qcap) {
        size_t d = n->qlen + add - n->qcap;
        BS_WARN("notifier", "alert notification queue full, dropping %zu alerts", d);
        for (size_t i = 0; i < d; i++)
            rules_notify_alert_fini(&n->q[i]);
        memmove(n->q, n->q + d, (n->qlen - d) * sizeof(*n->q));
        n->qlen -= d;
        n->dropped += d;
        bs_metric_add(m_dropped, (double)d);
    }
    if (add) {
        n->q = bs_xrealloc(n->q, (n->qlen + add) * sizeof(*n->q));
        memcpy(n->q + n->qlen, alerts + skip, add * sizeof(*n->q));
        n->qlen += add;
        bs_metric_set(m_queue_len, (double)n->qlen);
        pthread_cond_broadcast(&n->cv);
    }
    pthread_mutex_unlock(&n->mu);
}

/* --------------------------------------------------------------- thread */

static size_t discard_body(char *p, size_t size, size_t nmemb, void *arg)
{
    (void)p;
    (void)arg;
    return size * nmemb;
}

/* POST body to every Alertmanager in ams at once; returns successes. */
static size_t post_all(struct am *ams, size_t nams, const struct bs_buf *body, size_t count,
                       uint64_t *errors)
{
    CURLM *multi = curl_multi_init();
    CURL **easy = bs_xcalloc(nams, sizeof(*easy));
    struct curl_slist **hdrs = bs_xcalloc(nams, sizeof(*hdrs));
    char (*ebuf)[CURL_ERROR_SIZE] = bs_xcalloc(nams, CURL_ERROR_SIZE);
    size_t ok = 0;
    for (size_t i = 0; i < nams; i++) {
        struct am *a = &ams[i];
        CURL *e = curl_easy_init();
        if (!e)
            continue;
        easy[i] = e;
        hdrs[i] = curl_slist_append(NULL, "Content-Type: application/json");
        if (a->bearer) {
            struct bs_buf h;
            bs_buf_init(&h, 0);
            bs_buf_printf(&h, "Authorization: Bearer %s", a->bearer);
            hdrs[i] = curl_slist_append(hdrs[i], h.data);
            bs_buf_fini(&h);
        }
        curl_easy_setopt(e, CURLOPT_URL, a->url);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs[i]);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body->data);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)body->len);
        curl_easy_setopt(e, CURLOPT_USERAGENT, "bongsu/" BS_VERSION);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)a->timeout_ms);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard_body);
        curl_easy_setopt(e, CURLOPT_ERRORBUFFER, ebuf[i]);
        curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)a);
        if (a->username) {
            curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
            curl_easy_setopt(e, CURLOPT_USERNAME, a->username);
            curl_easy_setopt(e, CURLOPT_PASSWORD, a->password ? a->password : "");
        }
        if (a->ca_file)
            curl_easy_setopt(e, CURLOPT_CAINFO, a->ca_file);
        if (a->cert_file)
            curl_easy_setopt(e, CURLOPT_SSLCERT, a->cert_file);
        if (a->key_file)
            curl_easy_setopt(e, CURLOPT_SSLKEY, a->key_file);
        if (a->insecure) {
            curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
            curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
        }
        curl_multi_add_handle(multi, e);
    }
    int running = 1;
    while (running) {
        if (curl_multi_perform(multi, &running) != CURLM_OK)
            break;
        if (running)
            curl_multi_poll(multi, NULL, 0, 200, NULL);
    }
    CURLMsg *msg;
    int left;
    bool *done = bs_xcalloc(nams, sizeof(bool));
    while ((msg = curl_multi_info_read(multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        size_t i;
        for (i = 0; i < nams && easy[i] != msg->easy_handle; i++)
            ;
        if (i == nams)
            continue;
        done[i] = true;
        long status = 0;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
        if (msg->data.result != CURLE_OK) {
            BS_ERROR("notifier", "error sending alerts: alertmanager=%s count=%zu: %s", ams[i].url,
                     count, ebuf[i][0] ? ebuf[i] : curl_easy_strerror(msg->data.result));
            bs_metric_add(ams[i].m_errors, 1);
            (*errors)++;
        } else if (status / 100 != 2) {
            BS_ERROR("notifier", "error sending alerts: alertmanager=%s count=%zu: bad response status %ld",
                     ams[i].url, count, status);
            bs_metric_add(ams[i].m_errors, 1);
            (*errors)++;
        } else {
            ok++;
        }
        bs_metric_add(ams[i].m_sent, (double)count);
    }
    for (size_t i = 0; i < nams; i++) {
        if (easy[i] && !done[i]) {
            bs_metric_add(ams[i].m_errors, 1);
            (*errors)++;
        }
        if (easy[i]) {
            curl_multi_remove_handle(multi, easy[i]);
            curl_easy_cleanup(easy[i]);
        }
        curl_slist_free_all(hdrs[i]);
    }
    curl_multi_cleanup(multi);
    free(done);
    free(easy);
    free(hdrs);
    free(ebuf);
    return ok;
}

static struct am *ams_copy(const struct am *src, size_t n)
{
    struct am *d = bs_xcalloc(n ? n : 1, sizeof(*d));
    for (size_t i = 0; i < n; i++) {
        d[i] = src[i];
        d[i].url = bs_xstrdup(src[i].url);
        d[i].username = dup_or_null(src[i].username);
        d[i].password = dup_or_null(src[i].password);
        d[i].bearer = dup_or_null(src[i].bearer);
        d[i].ca_file = dup_or_null(src[i].ca_file);
        d[i].cert_file = dup_or_null(src[i].cert_file);
        d[i].key_file = dup_or_null(src[i].key_file);
    }
    return d;
}

static void *notifier_main(void *arg)
{
    struct rules_notifier *n = arg;
    pthread_mutex_lock(&n->mu);
    for (;;) {
        while (!n->stop && n->qlen == 0)
            pthread_cond_wait(&n->cv, &n->mu);
        if (n->qlen == 0 && n->stop)
            break;
        size_t cnt = n->qlen < RULES_NOTIFY_BATCH_MAX ? n->qlen : RULES_NOTIFY_BATCH_MAX;
        struct rules_notify_alert *batch = bs_xmalloc(cnt * sizeof(*batch));
        memcpy(batch, n->q, cnt * sizeof(*batch));
        memmove(n->q, n->q + cnt, (n->qlen - cnt) * sizeof(*n->q));
        n->qlen -= cnt;
        bs_metric_set(m_queue_len, (double)n->qlen);
        n->inflight = true;
        size_t nams = n->nams;
        struct am *ams = ams_copy(n->ams, nams);
        bool stopping = n->stop;
        pthread_mutex_unlock(&n->mu);

        struct bs_buf body;
        bs_buf_init(&body, 0);
        rules_notifier_payload(batch, cnt, &body);
        uint64_t errors = 0;
        size_t ok = nams ? post_all(ams, nams, &body, cnt, &errors) : 0;
        bs_buf_fini(&body);
        for (size_t i = 0; i < cnt; i++)
            rules_notify_alert_fini(&batch[i]);
        free(batch);
        ams_free(ams, nams);

        pthread_mutex_lock(&n->mu);
        n->inflight = false;
        n->errors += errors;
        if (ok) {
            n->sent += cnt;
        } else {
            n->dropped += cnt;
            bs_metric_add(m_dropped, (double)cnt);
        }
        pthread_cond_broadcast(&n->cv);
        if (stopping && n->stop && ok == 0) {
            /* Shutting down and nobody answers: drop the rest. */
            for (size_t i = 0; i < n->qlen; i++)
                rules_notify_alert_fini(&n->q[i]);
            n->dropped += n->qlen;
            bs_metric_add(m_dropped, (double)n->qlen);
            n->qlen = 0;
        }
    }
    pthread_mutex_unlock(&n->mu);
    return NULL;
}

struct rules_notifier *rules_notifier_new(const struct rules_notifier_config *nc,
                                          struct bs_error *err)
{
    pthread_once(&once, init_once);
    struct rules_notifier *n = bs_xcalloc(1, sizeof(*n));
    pthread_mutex_init(&n->mu, NULL);
    pthread_cond_init(&n->cv, NULL);
    n->qcap = RULES_DEFAULT_QUEUE_CAPACITY;
    if (rules_notifier_configure(n, nc, err) != 0) {
        pthread_cond_destroy(&n->cv);
        pthread_mutex_destroy(&n->mu);
        free(n);
        return NULL;
    }
    n->thread_ok = pthread_create(&n->thread, NULL, notifier_main, n) == 0;
    if (!n->thread_ok) {
        bs_error_set(err, BS_ENOMEM, "cannot start the notifier thread");
        rules_notifier_free(n);
        return NULL;
    }
    return n;
}

bool rules_notifier_flush(struct rules_notifier *n, int64_t timeout_ms)
{
    int64_t deadline = bs_now_ms() + timeout_ms;
    pthread_mutex_lock(&n->mu);
    while ((n->qlen || n->inflight) && bs_now_ms() < deadline) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&n->cv, &n->mu, &ts);
    }
    bool drained = !n->qlen && !n->inflight;
    pthread_mutex_unlock(&n->mu);
    return drained;
}

void rules_notifier_stats(struct rules_notifier *n, uint64_t *sent, uint64_t *errors,
                          uint64_t *dropped, size_t *queue_len)
{
    pthread_mutex_lock(&n->mu);
    *sent = n->sent;
    *errors = n->errors;
    *dropped = n->dropped;
    *queue_len = n->qlen;
    pthread_mutex_unlock(&n->mu);
}

void rules_notifier_free(struct rules_notifier *n)
{
    if (!n)
        return;
    if (n->thread_ok) {
        pthread_mutex_lock(&n->mu);
        n->stop = true;
        pthread_cond_broadcast(&n->cv);
        pthread_mutex_unlock(&n->mu);
        pthread_join(n->thread, NULL);
    }
    for (size_t i = 0; i < n->qlen; i++)
        rules_notify_alert_fini(&n->q[i]);
    free(n->q);
    ams_free(n->ams, n->nams);
    relabel_free(n->relabel, n->nrelabel);
    pthread_cond_destroy(&n->cv);
    pthread_mutex_destroy(&n->mu);
    free(n);
}
