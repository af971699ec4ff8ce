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
 *
 * Service discovery: the manager owns a discovery manager (discovery.c)
 * whose thread keeps the target groups of the file, HTTP and DNS providers
 * current. A target set is always built from one configuration (kept as a
 * reference in m->cfg) and the groups of its providers: at a config apply
 * from the plan of the new configuration, after a discovery update from
 * the installed providers. Both go through sync_targets() and the same
 * diff, under apply_mu. Lock order: apply_mu, then the discovery manager's
 * lock, then mu.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "scrape/sd_int.h"

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

static void on_discovery_update(void *ud);

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
    /* Keep one idle keep-alive connection per target between scrapes, as
     * Go's transport does for Prometheus. libcurl's default cache holds
     * about four connections per handle attached at the moment, and scrape
     * handles are detached between scrapes, so without this nearly every
     * scrape paid a new TCP (and TLS) handshake: measured 45% of scrape
     * CPU in libcurl with 2000 targets (bench/scrape_scale). */
    if (m->multi)
        curl_multi_setopt(m->multi, CURLMOPT_MAXCONNECTS, (long)SCRAPE_MAX_IDLE_CONNECTIONS);
    if (!m->multi || pthread_mutex_init(&m->mu, NULL) != 0) {
        if (m->multi)
            curl_multi_cleanup(m->multi);
        free(m);
        curl_global_cleanup();
        return NULL;
    }
    if (pthread_mutex_init(&m->apply_mu, NULL) != 0 ||
        !(m->sd = sd_manager_new(on_discovery_update, m))) {
        if (m->sd)
            sd_manager_free(m->sd);
        pthread_mutex_destroy(&m->mu);
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

static void dropped_free(struct scrape_dropped *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].pool);
        free(v[i].discovered);
    }
    free(v);
}

/* The targets being built by sync_targets. */
struct build {
    struct scrape_target **nt;
    size_t n, cap;
    struct scrape_dropped *nd;
    size_t ndropped, dcap;
};

/* Build one target of job sc (whose targets start at job_start in b) and
 * add it to b as active or dropped. group and target as in
 * scrape_target_new_discovered; gi and ti number the group and the target
 * for the log. An unusable target is logged and skipped. Returns 0 or
 * BS_ENOMEM (err set). */
static int build_one(struct build *b, size_t job_start, struct scrape_job *job,
                     const struct config_scrape *sc, const struct labels *group,
                     const struct labels *target, size_t gi, size_t ti, struct bs_error *err)
{
    struct scrape_target *t;
    struct labels *dropped;
    struct bs_error terr;
    bs_error_clear(&terr);
    const char *addr = labels_get(target, "__address__");
    int rc = scrape_target_new_discovered(job, sc, group, target, &t, &dropped, &terr);
    if (rc == BS_EINVAL) {
        /* As Prometheus: log, skip the target, go on. */
        BS_ERROR(SCRAPE_COMPONENT,
                 "creating target failed: job %s, instance %zu in group %zu (%s): %s",
                 sc->job_name, ti, gi, addr ? addr : "", terr.msg);
        return 0;
    }
    if (rc != 0)
        return bs_error_set(err, rc, "job \"%s\", target \"%s\": %s", sc->job_name,
                            addr ? addr : "", terr.msg);
    if (dropped) {
        if (b->ndropped == b->dcap) {
            b->dcap = b->dcap ? b->dcap * 2 : 16;
            b->nd = bs_xrealloc(b->nd, b->dcap * sizeof(*b->nd));
        }
        b->nd[b->ndropped].pool = bs_xstrdup(sc->job_name);
        b->nd[b->ndropped++].discovered = dropped;
        return 0;
    }
    for (size_t x = job_start; x < b->n; x++) {
        if (same_target(b->nt[x], t)) { /* Prometheus deduplicates identical targets too */
            scrape_target_free(t);
            return 0;
        }
    }
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 16;
        b->nt = bs_xrealloc(b->nt, b->cap * sizeof(*b->nt));
    }
    b->nt[b->n++] = t;
    return 0;
}

/* Make the active targets those of cfg's static configs plus the groups of
 * the providers prov[0..nprov) (the caller holds the discovery lock), and
 * diff them against the running ones. The caller holds apply_mu. Returns
 * 0, or BS_ENOMEM / BS_EIO leaving the running set unchanged. */
static int sync_targets(struct scrape_manager *m, const struct config *cfg,
                        struct sd_provider *const *prov, size_t nprov, struct bs_error *err)
{
    struct build b = {0};
    /* Per job: where its targets start in nt, and its target_limit error. */
    size_t *job_start = NULL;
    char(*forced)[sizeof(((struct scrape_target *)0)->forced_error)] = NULL;
    int rc = 0;

    if (cfg->nscrape_configs) {
        job_start = calloc(cfg->nscrape_configs + 1, sizeof(*job_start));
        forced = calloc(cfg->nscrape_configs, sizeof(*forced));
        if (!job_start || !forced) {
            rc = bs_error_set(err, BS_ENOMEM, "out of memory");
            goto fail;
        }
    }

    /* Build the new set completely before touching the running one, so a
     * failure changes nothing. */
    for (size_t i = 0; i < cfg->nscrape_configs; i++) {
        const struct config_scrape *sc = &cfg->scrape_configs[i];
        struct scrape_job *job;
        job_start[i] = b.n;
        if ((rc = scrape_job_new(sc, &job, err)) != 0)
            goto fail;
        size_t gi = 0;
        for (size_t j = 0; rc == 0 && j < sc->nstatic_configs; j++, gi++) {
            const struct config_static_config *st = &sc->static_configs[j];
            for (size_t k = 0; rc == 0 && k < st->ntargets; k++) {
                struct label one = {.name = "__address__", .value = st->targets[k]};
                struct labels target = {&one, 1};
                rc = build_one(&b, job_start[i], job, sc, st->labels, &target, gi, k, err);
            }
        }
        /* Discovered groups, in the order of the job's providers. */
        for (size_t p = 0; rc == 0 && p < nprov; p++) {
            if (strcmp(prov[p]->job, sc->job_name) != 0)
                continue;
            const struct sd_groups *gs = &prov[p]->groups;
            for (size_t g = 0; rc == 0 && g < gs->n; g++, gi++)
                for (size_t k = 0; rc == 0 && k < gs->v[g].ntargets; k++)
                    rc = build_one(&b, job_start[i], job, sc, gs->v[g].labels,
                                   gs->v[g].targets[k], gi, k, err);
        }
        scrape_job_unref(job);
        if (rc != 0)
            goto fail;
        size_t active = b.n - job_start[i];
        if (sc->limits.target_limit && active > sc->limits.target_limit)
            snprintf(forced[i], sizeof(forced[i]),
                     "target_limit exceeded (number of targets: %zu, limit: %llu)", active,
                     (unsigned long long)sc->limits.target_limit);
    }
    struct scrape_target **nt = b.nt;
    size_t n = b.n;
    if (job_start)
        job_start[cfg->nscrape_configs] = n;

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
    /* The target_limit verdict is recomputed for every target, kept or new,
     * as Prometheus does on each sync. */
    for (size_t i = 0; i < cfg->nscrape_configs; i++)
        for (size_t x = job_start[i]; x < job_start[i + 1]; x++)
            memcpy(nt[x]->forced_error, forced[i], sizeof(forced[i]));
    free(m->targets);
    m->targets = nt;
    m->ntargets = n;
    m->targets_gen++; /* the scrape thread looks for new targets */
    dropped_free(m->dropped, m->ndropped);
    m->dropped = b.nd;
    m->ndropped = b.ndropped;
    pthread_mutex_unlock(&m->mu);
    curl_multi_wakeup(m->multi);
    free(job_start);
    free(forced);
    return 0;

fail:
    targets_free(b.nt, b.n);
    dropped_free(b.nd, b.ndropped);
    free(job_start);
    free(forced);
    return rc;
}

int scrape_manager_apply_config(struct scrape_manager *m, const struct config *cfg,
                                struct bs_error *err)
{
    /* The manager keeps a reference: discovery updates re-apply targets from
     * this configuration later. A loaded configuration is never modified, so
     * only its reference count changes through this pointer. */
    struct config *c = (struct config *)cfg;
    struct sd_plan plan;
    pthread_mutex_lock(&m->apply_mu);
    int rc = sd_manager_prepare(m->sd, c, &plan, err);
    if (rc == 0) {
        sd_manager_lock(m->sd);
        rc = sync_targets(m, c, plan.v, plan.n, err);
        sd_manager_unlock(m->sd);
        if (rc == 0)
            rc = sd_manager_install(m->sd, &plan, err);
        sd_plan_discard(&plan); /* empty when installed */
    }
    if (rc == 0) {
        struct config *old = m->cfg;
        m->cfg = config_ref(c);
        config_free(old);
    }
    pthread_mutex_unlock(&m->apply_mu);
    return rc;
}

/* Discovery thread: groups changed; rebuild the targets of the applied
 * configuration with the installed providers' groups. */
static void on_discovery_update(void *ud)
{
    struct scrape_manager *m = ud;
    struct bs_error err;
    bs_error_clear(&err);
    pthread_mutex_lock(&m->apply_mu);
    if (m->cfg) {
        size_t nprov;
        sd_manager_lock(m->sd);
        struct sd_provider *const *prov = sd_manager_installed(m->sd, &nprov);
        int rc = sync_targets(m, m->cfg, prov, nprov, &err);
        sd_manager_unlock(m->sd);
        if (rc != 0)
            BS_ERROR(SCRAPE_COMPONENT, "applying discovered targets failed: %s", err.msg);
    }
    pthread_mutex_unlock(&m->apply_mu);
}

void scrape_manager_free(struct scrape_manager *m)
{
    if (!m)
        return;
    /* Discovery first: its thread may be re-applying targets. */
    sd_manager_free(m->sd);
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
    dropped_free(m->dropped, m->ndropped);
    curl_multi_cleanup(m->multi);
    for (size_t i = 0; i < SCRAPE_CONN_POOLS; i++)
        if (m->pools[i])
            curl_share_cleanup(m->pools[i]); /* closes its idle connections */
    pthread_mutex_destroy(&m->mu);
    pthread_mutex_destroy(&m->apply_mu);
    config_free(m->cfg);
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
    /* As Prometheus: the label values, as written. */
    snprintf(ibuf, sizeof(ibuf), "%s", labels_get(t->full, "__scrape_interval__"));
    snprintf(tbuf, sizeof(tbuf), "%s", labels_get(t->full, "__scrape_timeout__"));
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
        rc = bs_buf_puts(out, "],\"droppedTargets\":[");
    if (rc == 0 && (any || strcasecmp(state, "dropped") == 0)) {
        pthread_mutex_lock(&m->mu);
        /* Sorted by pool, configuration order within a pool; each object
         * holds only discoveredLabels, as in Prometheus 2.42. */
        size_t n = m->ndropped;
        size_t *ord = n ? malloc(n * sizeof(*ord)) : NULL;
        if (n && !ord)
            rc = BS_ENOMEM;
        for (size_t i = 0; rc == 0 && i < n; i++) {
            size_t j = i;
            while (j > 0 && strcmp(m->dropped[ord[j - 1]].pool, m->dropped[i].pool) > 0) {
                ord[j] = ord[j - 1];
                j--;
            }
            ord[j] = i;
        }
        for (size_t i = 0; rc == 0 && i < n; i++) {
            rc = bs_buf_puts(out, i ? ",{\"discoveredLabels\":" : "{\"discoveredLabels\":");
            if (rc == 0)
                rc = labels_format_json(m->dropped[ord[i]].discovered, out);
            if (rc == 0)
                rc = bs_buf_putc(out, '}');
        }
        pthread_mutex_unlock(&m->mu);
        free(ord);
    }
    if (rc == 0)
        rc = bs_buf_puts(out, "]}");
    return rc;
}
