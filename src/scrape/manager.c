/* SPDX-License-Identifier: Apache-2.0
 *
 * The scrape manager: owns the targets, applies configurations by diffing
 * target identities, starts and stops the scrape thread, and renders the
 * /api/v1/targets view. The scraping itself is in scrape_loop.c.
 *
 * Ownership: the manager's active array owns its targets. A config apply
 * never frees a running target; it moves removed ones to m->removed, from
 * which the scrape thread takes them, writes their staleness markers and
 * frees them. So the thread may use any target it knows without holding the
 * mutex, and readers of the active array (the JSON view) hold the mutex.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "scrape/scrape_int.h"

struct scrape_metrics scrape_metrics;
static pthread_once_t metrics_once = PTHREAD_ONCE_INIT;

static void metrics_register(void)
{
    scrape_metrics.body_limit = bs_metric_register(
        BS_METRIC_COUNTER, "bongsu_target_scrapes_exceeded_body_size_limit_total",
        "Total number of scrapes that hit the body size limit.", NULL);
    scrape_metrics.out_of_order = bs_metric_register(
        BS_METRIC_COUNTER, "bongsu_target_scrapes_sample_out_of_order_total",
        "Total number of samples rejected due to not being out of the expected order.", NULL);
    scrape_metrics.duplicate = bs_metric_register(
        BS_METRIC_COUNTER, "bongsu_target_scrapes_sample_duplicate_timestamp_total",
        "Total number of samples rejected due to duplicate timestamps but different values.", NULL);
    scrape_metrics.out_of_bounds = bs_metric_register(
        BS_METRIC_COUNTER, "bongsu_target_scrapes_sample_out_of_bounds_total",
        "Total number of samples rejected due to timestamp falling outside of the time bounds.",
        NULL);
    scrape_metrics.scrapes = bs_metric_register(BS_METRIC_COUNTER, "bongsu_target_scrapes_total",
                                                "Total number of scrapes attempted.", NULL);
    scrape_metrics.failed =
        bs_metric_register(BS_METRIC_COUNTER, "bongsu_target_scrapes_failed_total",
                           "Total number of scrapes that failed (up=0).", NULL);
}

struct scrape_manager *scrape_manager_new(struct tsdb *db)
{
    pthread_once(&metrics_once, metrics_register);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return NULL;
    struct scrape_manager *m = calloc(1, sizeof(*m));
    if (!m) {
        curl_global_cleanup();
        return NULL;
    }
    m->db = db;
    m->body_limit = SCRAPE_DEFAULT_BODY_SIZE_LIMIT;
    m->multi = curl_multi_init();
    if (!m->multi || pthread_mutex_init(&m->mu, NULL) != 0) {
        if (m->multi)
            curl_multi_cleanup(m->multi);
        free(m);
        curl_global_cleanup();
        return NULL;
    }
    return m;
}

void scrape_manager_set_body_size_limit(struct scrape_manager *m, size_t limit)
{
    pthread_mutex_lock(&m->mu);
    m->body_limit = limit ? limit : SCRAPE_DEFAULT_BODY_SIZE_LIMIT;
    pthread_mutex_unlock(&m->mu);
}

static void targets_free(struct scrape_target **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        scrape_target_free(v[i]);
    free(v);
}

static bool same_target(const struct scrape_target *a, const struct scrape_target *b)
{
    return a->key_len == b->key_len && memcmp(a->key, b->key, a->key_len) == 0;
}

int scrape_manager_apply_config(struct scrape_manager *m, const struct config *cfg,
                                struct bs_error *err)
{
    struct scrape_target **nt = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;

    /* Build the new set completely before touching the running one, so a
     * bad configuration changes nothing. */
    for (size_t i = 0; i < cfg->nscrape_configs; i++) {
        const struct config_scrape *sc = &cfg->scrape_configs[i];
        for (size_t j = 0; j < sc->nstatic_configs; j++) {
            const struct config_static_config *st = &sc->static_configs[j];
            for (size_t k = 0; k < st->ntargets; k++) {
                struct scrape_target *t;
                rc = scrape_target_new(sc, st, st->targets[k], &t, err);
                if (rc != 0)
                    goto fail;
                bool dup = false;
                for (size_t x = 0; x < n && !dup; x++)
                    dup = same_target(nt[x], t);
                if (dup) { /* Prometheus deduplicates identical targets too */
                    scrape_target_free(t);
                    continue;
                }
                if (n == cap) {
                    cap = cap ? cap * 2 : 16;
                    nt = bs_xrealloc(nt, cap * sizeof(*nt));
                }
                nt[n++] = t;
            }
        }
    }

    if (!m->thread_started) {
        if (pthread_create(&m->thread, NULL, scrape_loop_run, m) != 0) {
            rc = bs_error_set(err, BS_EIO, "cannot start the scrape thread");
            goto fail;
        }
        m->thread_started = true;
    }

    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->ntargets; i++) {
        struct scrape_target *old = m->targets[i];
        bool kept = false;
        for (size_t x = 0; x < n && !kept; x++) {
            if (same_target(nt[x], old)) {
                scrape_target_free(nt[x]);
                nt[x] = old;
                kept = true;
            }
        }
        if (!kept) {
            if (m->nremoved == m->removed_cap) {
                m->removed_cap = m->removed_cap ? m->removed_cap * 2 : 16;
                m->removed = bs_xrealloc(m->removed, m->removed_cap * sizeof(*m->removed));
            }
            m->removed[m->nremoved++] = old;
        }
    }
    free(m->targets);
    m->targets = nt;
    m->ntargets = n;
    pthread_mutex_unlock(&m->mu);
    curl_multi_wakeup(m->multi);
    return 0;

fail:
    targets_free(nt, n);
    return rc;
}

void scrape_manager_free(struct scrape_manager *m)
{
    if (!m)
        return;
    if (m->thread_started) {
        pthread_mutex_lock(&m->mu);
        m->stopping = true;
        pthread_mutex_unlock(&m->mu);
        curl_multi_wakeup(m->multi);
        pthread_join(m->thread, NULL);
    }
    /* The thread detached every easy handle from the multi handle on exit. */
    targets_free(m->targets, m->ntargets);
    targets_free(m->removed, m->nremoved);
    curl_multi_cleanup(m->multi);
    pthread_mutex_destroy(&m->mu);
    free(m);
    curl_global_cleanup();
}

/* ------------------------------------------------------------ targets API */

static int json_target(struct bs_buf *b, const struct scrape_target *t)
{
    char ibuf[48], tbuf[48], when[64], dur[BS_FLOAT_FMT_MAX];
    int rc = bs_buf_puts(b, "{\"discoveredLabels\":");
    if (rc == 0)
        rc = labels_format_json(t->discovered, b);
    if (rc == 0)
        rc = bs_buf_puts(b, ",\"labels\":");
    if (rc == 0)
        rc = labels_format_json(t->labels, b);
    if (rc == 0)
        rc = bs_buf_puts(b, ",\"scrapePool\":");
    if (rc == 0)
        rc = bs_json_string(b, t->pool, strlen(t->pool));
    if (rc == 0)
        rc = bs_buf_puts(b, ",\"scrapeUrl\":");
    if (rc == 0)
        rc = bs_json_string(b, t->url, strlen(t->url));
    if (rc == 0)
        rc = bs_buf_puts(b, ",\"globalUrl\":");
    if (rc == 0)
        rc = bs_json_string(b, t->url, strlen(t->url));
    if (rc == 0)
        rc = bs_buf_puts(b, ",\"lastError\":");
    if (rc == 0)
        rc = bs_json_string(b, t->last_error, strlen(t->last_error));
    if (t->last_scrape_ms != 0)
        bs_time_format_rfc3339(t->last_scrape_ms, when, sizeof(when));
    else
        snprintf(when, sizeof(when), "0001-01-01T00:00:00Z"); /* Go's zero time */
    bs_float_format(t->last_duration_s, dur);
    bs_duration_format(t->interval_ms, ibuf, sizeof(ibuf));
    bs_duration_format(t->timeout_ms, tbuf, sizeof(tbuf));
    const char *health = t->health == SCRAPE_HEALTH_UP     ? "up"
                         : t->health == SCRAPE_HEALTH_DOWN ? "down"
                                                           : "unknown";
    if (rc == 0)
        rc = bs_buf_printf(b,
                           ",\"lastScrape\":\"%s\",\"lastScrapeDuration\":%s,\"health\":\"%s\","
                           "\"scrapeInterval\":\"%s\",\"scrapeTimeout\":\"%s\"}",
                           when, dur, health, ibuf, tbuf);
    return rc;
}

int scrape_manager_targets_json(struct scrape_manager *m, const char *state, struct bs_buf *out)
{
    bool any = !state || !*state || strcasecmp(state, "any") == 0;
    bool active = any || strcasecmp(state, "active") == 0;
    int rc = bs_buf_puts(out, "{\"activeTargets\":[");
    if (rc == 0 && active) {
        pthread_mutex_lock(&m->mu);
        size_t n = m->ntargets;
        struct scrape_target **v = NULL;
        if (n > 0) {
            v = malloc(n * sizeof(*v));
            if (!v)
                rc = BS_ENOMEM;
        }
        if (rc == 0) {
            /* Stable sort by pool: insertion sort keeps configuration order
             * within a pool (pools are few; targets are already grouped). */
            for (size_t i = 0; i < n; i++) {
                struct scrape_target *t = m->targets[i];
                size_t j = i;
                while (j > 0 && strcmp(v[j - 1]->pool, t->pool) > 0) {
                    v[j] = v[j - 1];
                    j--;
                }
                v[j] = t;
            }
            for (size_t i = 0; rc == 0 && i < n; i++) {
                if (i > 0)
                    rc = bs_buf_putc(out, ',');
                if (rc == 0)
                    rc = json_target(out, v[i]);
            }
        }
        pthread_mutex_unlock(&m->mu);
        free(v);
    }
    if (rc == 0)
        rc = bs_buf_puts(out, "],\"droppedTargets\":[]}");
    return rc;
}
