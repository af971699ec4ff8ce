/* SPDX-License-Identifier: Apache-2.0
 *
 * The rules manager: loading rule files into groups, one thread per group
 * running on Prometheus's aligned schedule, reloads that keep alert state,
 * and the JSON of /api/v1/rules and /api/v1/alerts.
 *
 * Schedule (Prometheus's Group.run): a group's evaluation timestamps are
 * base + k * interval + offset, where offset = XXH64 of the label set
 * {file="...", name="..."} modulo the interval in nanoseconds. The thread
 * sleeps until the first such time after start, evaluates, then wakes
 * every interval; when it wakes late, the iterations it skipped are
 * counted as missed and the timestamp jumps to the latest due slot. A group
 * loaded by the first load after start-up restores `for` state after its
 * second iteration, as Prometheus does.
 */
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "rules/rules_int.h"

#define NS_PER_MS INT64_C(1000000)

void rules_manager_opts_default(struct rules_manager_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->default_interval_ms = RULES_DEFAULT_INTERVAL_MS;
    o->resend_delay_ms = RULES_DEFAULT_RESEND_DELAY_MS;
    o->outage_tolerance_ms = RULES_DEFAULT_OUTAGE_TOLERANCE_MS;
    o->grace_period_ms = RULES_DEFAULT_GRACE_PERIOD_MS;
}

int64_t rules_group_eval_timestamp(const char *file, const char *name, int64_t interval_ms,
                                   int64_t now_ns)
{
    /* labels.Labels{file, name}.Hash(): xxhash64 of name 0xff value 0xff ... */
    struct bs_buf b;
    bs_buf_init(&b, 0);
    bs_buf_puts(&b, "file");
    bs_buf_putc(&b, (char)0xff);
    bs_buf_puts(&b, file);
    bs_buf_putc(&b, (char)0xff);
    bs_buf_puts(&b, "name");
    bs_buf_putc(&b, (char)0xff);
    bs_buf_puts(&b, name);
    bs_buf_putc(&b, (char)0xff);
    uint64_t h = XXH64(b.data, b.len, 0);
    bs_buf_fini(&b);
    int64_t interval = interval_ms * NS_PER_MS;
    int64_t offset = (int64_t)(h % (uint64_t)interval);
    int64_t adj = now_ns - offset;
    int64_t base = adj - (adj % interval);
    return base + offset;
}

static int apply_options(struct rules_manager *m, const struct rules_manager_opts *o)
{
    pthread_mutex_lock(&m->opts_mu);
    free(m->external_labels);
    struct labels empty = {0};
    m->external_labels = labels_dup(o->external_labels ? o->external_labels : &empty);
    free(m->external_url);
    m->external_url = bs_xstrdup(o->external_url ? o->external_url : "");
    /* Prometheus trims a trailing slash from the external URL's path. */
    size_t ul = strlen(m->external_url);
    if (ul && m->external_url[ul - 1] == '/')
        m->external_url[ul - 1] = 0;
    m->default_interval_ms = o->default_interval_ms > 0 ? o->default_interval_ms : RULES_DEFAULT_INTERVAL_MS;
    m->resend_delay_ms = o->resend_delay_ms > 0 ? o->resend_delay_ms : RULES_DEFAULT_RESEND_DELAY_MS;
    m->outage_tolerance_ms = o->outage_tolerance_ms > 0 ? o->outage_tolerance_ms : RULES_DEFAULT_OUTAGE_TOLERANCE_MS;
    m->grace_period_ms = o->grace_period_ms > 0 ? o->grace_period_ms : RULES_DEFAULT_GRACE_PERIOD_MS;
    pthread_mutex_unlock(&m->opts_mu);
    return m->external_labels ? 0 : BS_ENOMEM;
}

int rules_manager_new(struct rules_manager **out, struct tsdb *db, struct promql_engine *engine,
                      const struct rules_manager_opts *opts, struct bs_error *err)
{
    struct rules_manager_opts def;
    *out = NULL;
    if (!opts) {
        rules_manager_opts_default(&def);
        opts = &def;
    }
    struct rules_manager *m = bs_xcalloc(1, sizeof(*m));
    m->db = db;
    m->engine = engine;
    pthread_mutex_init(&m->opts_mu, NULL);
    pthread_mutex_init(&m->life_mu, NULL);
    pthread_mutex_init(&m->run_mu, NULL);
    pthread_cond_init(&m->run_cv, NULL);
    pthread_rwlock_init(&m->groups_lock, NULL);
    int rc = apply_options(m, opts);
    if (!rc) {
        m->notifier = rules_notifier_new(&opts->notifier, err);
        if (!m->notifier)
            rc = err && err->code ? err->code : BS_EINVAL;
    }
    if (rc) {
        rules_manager_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

int rules_manager_set_notifier(struct rules_manager *m, const struct rules_notifier_config *nc,
                               struct bs_error *err)
{
    return rules_notifier_configure(m->notifier, nc, err);
}

int rules_manager_set_options(struct rules_manager *m, const struct rules_manager_opts *opts,
                              struct bs_error *err)
{
    int rc = apply_options(m, opts);
    if (rc)
        return bs_error_set(err, rc, "out of memory");
    return 0;
}

/* --------------------------------------------------------------- threads */

/* Sleep until wall-clock time t_ns; false when the group is stopping. */
static bool wait_until(struct rules_manager *m, struct rules_group *g, int64_t t_ns)
{
    struct timespec ts = {.tv_sec = (time_t)(t_ns / 1000000000), .tv_nsec = (long)(t_ns % 1000000000)};
    pthread_mutex_lock(&m->run_mu);
    while (!g->stopping && rules_now_ns() < t_ns)
        pthread_cond_timedwait(&m->run_cv, &m->run_mu, &ts);
    bool stop = g->stopping;
    pthread_mutex_unlock(&m->run_mu);
    return !stop;
}

static void *group_main(void *arg)
{
    struct rules_group *g = arg;
    struct rules_manager *m = g->m;
    int64_t interval = g->interval_ms * NS_PER_MS;
    int64_t ts = rules_group_eval_timestamp(g->file, g->name, g->interval_ms, rules_now_ns()) + interval;
    if (!wait_until(m, g, ts))
        return NULL;
    rules_group_eval(g, ts);
    int iterations = 1;
    for (;;) {
        if (!wait_until(m, g, ts + interval))
            return NULL;
        int64_t missed = (rules_now_ns() - ts) / interval - 1;
        if (missed > 0) {
            bs_metric_add(g->m_missed, (double)missed);
            BS_WARN("rules", "group %s missed %lld iterations", g->name, (long long)missed);
        } else {
            missed = 0;
        }
        ts += (missed + 1) * interval;
        rules_group_eval(g, ts);
        iterations++;
        if (g->should_restore && iterations >= 2)
            rules_group_restore(g, rules_now_ns());
    }
}

static void start_groups_locked(struct rules_manager *m)
{
    pthread_rwlock_rdlock(&m->groups_lock);
    for (size_t i = 0; i < m->ngroups; i++) {
        struct rules_group *g = m->groups[i];
        if (g->running)
            continue;
        g->stopping = false;
        if (pthread_create(&g->thread, NULL, group_main, g) == 0)
            g->running = true;
        else
            BS_ERROR("rules", "cannot start the thread of group %s", g->name);
    }
    pthread_rwlock_unlock(&m->groups_lock);
}

static void stop_groups(struct rules_manager *m, struct rules_group **gs, size_t n)
{
    pthread_mutex_lock(&m->run_mu);
    for (size_t i = 0; i < n; i++)
        gs[i]->stopping = true;
    pthread_cond_broadcast(&m->run_cv);
    pthread_mutex_unlock(&m->run_mu);
    for (size_t i = 0; i < n; i++)
        if (gs[i]->running) {
            pthread_join(gs[i]->thread, NULL);
            gs[i]->running = false;
        }
}

int rules_manager_start(struct rules_manager *m)
{
    pthread_mutex_lock(&m->life_mu);
    m->started = true;
    start_groups_locked(m);
    pthread_mutex_unlock(&m->life_mu);
    return 0;
}

void rules_manager_stop(struct rules_manager *m)
{
    pthread_mutex_lock(&m->life_mu);
    if (m->started) {
        pthread_rwlock_rdlock(&m->groups_lock);
        stop_groups(m, m->groups, m->ngroups);
        pthread_rwlock_unlock(&m->groups_lock);
        m->started = false;
        rules_notifier_flush(m->notifier, RULES_DEFAULT_AM_TIMEOUT_MS);
    }
    pthread_mutex_unlock(&m->life_mu);
}

void rules_manager_free(struct rules_manager *m)
{
    if (!m)
        return;
    rules_manager_stop(m);
    for (size_t i = 0; i < m->ngroups; i++)
        rules_group_free(m->groups[i]);
    free(m->groups);
    rules_notifier_free(m->notifier);
    free(m->external_labels);
    free(m->external_url);
    pthread_rwlock_destroy(&m->groups_lock);
    pthread_cond_destroy(&m->run_cv);
    pthread_mutex_destroy(&m->run_mu);
    pthread_mutex_destroy(&m->life_mu);
    pthread_mutex_destroy(&m->opts_mu);
    free(m);
}

/* ------------------------------------------------------------------ load */

static int group_order(const void *a, const void *b)
{
    const struct rules_group *x = *(struct rules_group *const *)a, *y = *(struct rules_group *const *)b;
    int c = strcmp(x->file, y->file);
    return c ? c : strcmp(x->name, y->name);
}

int rules_manager_load(struct rules_manager *m, const char *const *globs, size_t n,
                       struct bs_error *err)
{
    struct rulefile **files = NULL;
    size_t nfiles = 0, cfiles = 0;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        glob_t gl;
        int grc = glob(globs[i], 0, NULL, &gl);
        if (grc == GLOB_NOMATCH)
            continue;
        if (grc != 0) {
            rc = bs_error_set(err, BS_EINVAL, "error retrieving rule files for %s", globs[i]);
            break;
        }
        for (size_t j = 0; j < gl.gl_pathc && !rc; j++) {
            bool dup = false;
            for (size_t k = 0; k < nfiles && !dup; k++)
                dup = strcmp(files[k]->path, gl.gl_pathv[j]) == 0;
            if (dup)
                continue;
            struct rulefile *f = NULL;
            char **errs = NULL;
            size_t nerrs = 0;
            rc = rulefile_load(gl.gl_pathv[j], &f, &errs, &nerrs);
            if (rc) {
                bs_error_set(err, rc, "%s", nerrs ? errs[0] : "cannot load rule file");
                for (size_t k = 0; k < nerrs; k++)
                    free(errs[k]);
                free(errs);
                break;
            }
            if (nfiles == cfiles) {
                cfiles = cfiles ? 2 * cfiles : 8;
                files = bs_xrealloc(files, cfiles * sizeof(*files));
            }
            files[nfiles++] = f;
        }
        globfree(&gl);
    }
    if (rc) {
        for (size_t i = 0; i < nfiles; i++)
            rulefile_free(files[i]);
        free(files);
        return rc;
    }

    pthread_mutex_lock(&m->life_mu);
    bool restored = m->loaded_once;
    size_t ng = 0;
    for (size_t i = 0; i < nfiles; i++)
        ng += files[i]->ngroups;
    struct rules_group **gs = bs_xcalloc(ng ? ng : 1, sizeof(*gs));
    size_t k = 0;
    for (size_t i = 0; i < nfiles; i++)
        for (size_t j = 0; j < files[i]->ngroups; j++)
            gs[k++] = rules_group_new(m, &files[i]->groups[j], restored);
    for (size_t i = 0; i < nfiles; i++)
        rulefile_free(files[i]);
    free(files);
    qsort(gs, ng, sizeof(*gs), group_order);

    /* Stop the old groups, carry state over, swap, start. */
    struct rules_group **old = m->groups;
    size_t nold = m->ngroups;
    if (m->started)
        stop_groups(m, old, nold);
    int64_t now_ms = bs_now_ms();
    for (size_t i = 0; i < nold; i++) {
        struct rules_group *o = old[i];
        bool kept = false;
        for (size_t j = 0; j < ng && !kept; j++)
            if (!strcmp(gs[j]->file, o->file) && !strcmp(gs[j]->name, o->name)) {
                rules_group_copy_state(gs[j], o);
                gs[j]->should_restore = o->should_restore && !restored;
                kept = true;
            }
        if (!kept)
            rules_group_mark_stale(o, now_ms);
    }
    pthread_rwlock_wrlock(&m->groups_lock);
    m->groups = gs;
    m->ngroups = ng;
    pthread_rwlock_unlock(&m->groups_lock);
    for (size_t i = 0; i < nold; i++)
        rules_group_free(old[i]);
    free(old);
    m->loaded_once = true;
    if (m->started)
        start_groups_locked(m);
    pthread_mutex_unlock(&m->life_mu);
    return 0;
}

/* ------------------------------------------------------------ test hooks */

int rules_manager_eval_group_at(struct rules_manager *m, size_t idx, int64_t ts_ms)
{
    int rc = 0;
    pthread_rwlock_rdlock(&m->groups_lock);
    if (idx >= m->ngroups)
        rc = BS_ENOENT;
    else
        rules_group_eval(m->groups[idx], ts_ms * NS_PER_MS);
    pthread_rwlock_unlock(&m->groups_lock);
    return rc;
}

int rules_manager_restore_group_at(struct rules_manager *m, size_t idx, int64_t ts_ms)
{
    int rc = 0;
    pthread_rwlock_rdlock(&m->groups_lock);
    if (idx >= m->ngroups)
        rc = BS_ENOENT;
    else
        rules_group_restore(m->groups[idx], ts_ms * NS_PER_MS);
    pthread_rwlock_unlock(&m->groups_lock);
    return rc;
}

void rules_manager_mark_restored(struct rules_manager *m)
{
    pthread_rwlock_rdlock(&m->groups_lock);
    for (size_t i = 0; i < m->ngroups; i++) {
        struct rules_group *g = m->groups[i];
        pthread_mutex_lock(&g->mu);
        for (size_t j = 0; j < g->nrules; j++)
            g->rules[j].restored = true;
        g->should_restore = false;
        pthread_mutex_unlock(&g->mu);
    }
    pthread_rwlock_unlock(&m->groups_lock);
}

void rules_manager_stats(struct rules_manager *m, struct rules_manager_stats *out)
{
    memset(out, 0, sizeof(*out));
    pthread_rwlock_rdlock(&m->groups_lock);
    out->groups = m->ngroups;
    for (size_t i = 0; i < m->ngroups; i++) {
        out->rules += m->groups[i]->nrules;
        out->iterations_missed += (uint64_t)bs_metric_get(m->groups[i]->m_missed);
    }
    pthread_rwlock_unlock(&m->groups_lock);
    rules_notifier_stats(m->notifier, &out->notifications_sent, &out->notifications_errors,
                         &out->notifications_dropped, &out->queue_length);
}

/* ------------------------------------------------------------------ JSON */

int rules_json_time_ns(struct bs_buf *b, int64_t ns)
{
    if (ns == 0)
        return bs_buf_puts(b, "\"0001-01-01T00:00:00Z\"");
    int64_t sec = ns / 1000000000, frac = ns % 1000000000;
    if (frac < 0) {
        frac += 1000000000;
        sec--;
    }
    time_t t = (time_t)sec;
    struct tm tm;
    char buf[64];
    gmtime_r(&t, &tm);
    size_t l = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    if (frac) {
        l += (size_t)snprintf(buf + l, sizeof(buf) - l, ".%09lld", (long long)frac);
        while (buf[l - 1] == '0')
            buf[--l] = 0;
    }
    return bs_buf_printf(b, "\"%sZ\"", buf);
}

int rules_json_float(struct bs_buf *b, double v)
{
    char num[BS_FLOAT_FMT_MAX];
    double a = v < 0 ? -v : v;
    if (a != 0 && (a < 1e-6 || a >= 1e21)) {
        /* Go: 'e' format with the exponent's leading zero trimmed. */
        rules_fmt_float_e(v, num, sizeof(num));
        char *e = strchr(num, 'e');
        if (e && e[2] == '0' && e[3])
            memmove(e + 2, e + 3, strlen(e + 3) + 1);
        return bs_buf_puts(b, num);
    }
    bs_float_format(v, num);
    return bs_buf_puts(b, num);
}

static void kv_json(struct bs_buf *b, const struct label *v, size_t n)
{
    bs_buf_putc(b, '{');
    for (size_t i = 0; i < n; i++) {
        if (i)
            bs_buf_putc(b, ',');
        bs_json_string(b, v[i].name, strlen(v[i].name));
        bs_buf_putc(b, ':');
        bs_json_string(b, v[i].value, strlen(v[i].value));
    }
    bs_buf_putc(b, '}');
}

static int alert_cmp(const void *a, const void *b)
{
    const struct rules_alert *x = *(struct rules_alert *const *)a, *y = *(struct rules_alert *const *)b;
    return labels_cmp(x->labels, y->labels);
}

static void alert_json(struct bs_buf *b, const struct rules_alert *a)
{
    char num[64];
    bs_buf_puts(b, "{\"labels\":");
    labels_format_json(a->labels, b);
    bs_buf_puts(b, ",\"annotations\":");
    kv_json(b, a->annotations.v, a->annotations.n);
    bs_buf_printf(b, ",\"state\":\"%s\"", a->state == RULES_ALERT_FIRING ? "firing" : "pending");
    bs_buf_puts(b, ",\"activeAt\":");
    rules_json_time_ns(b, a->active_at);
    if (a->keep_firing_since) {
        bs_buf_puts(b, ",\"keepFiringSince\":");
        rules_json_time_ns(b, a->keep_firing_since);
    }
    rules_fmt_float_e(a->value, num, sizeof(num));
    bs_buf_printf(b, ",\"value\":\"%s\"}", num);
}

/* Active (pending or firing) alerts of r, sorted by labels. */
static size_t active_alerts(const struct rules_rule *r, const struct rules_alert ***out)
{
    const struct rules_alert **v = bs_xcalloc(r->nalerts + 1, sizeof(*v));
    size_t n = 0;
    for (size_t i = 0; i < r->nalerts; i++)
        if (r->alerts[i].state != RULES_ALERT_INACTIVE)
            v[n++] = &r->alerts[i];
    qsort(v, n, sizeof(*v), alert_cmp);
    *out = v;
    return n;
}

static bool in_list(const char *s, const char *const *list, size_t n)
{
    if (!n)
        return true;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(s, list[i]))
            return true;
    return false;
}

static void rule_json(struct bs_buf *b, const struct rules_rule *r, bool with_alerts)
{
    const char *health = r->health == RULES_HEALTH_OK ? "ok" : r->health == RULES_HEALTH_ERR ? "err" : "unknown";
    if (r->def.alerting) {
        const struct rules_alert **act;
        size_t n = active_alerts(r, &act);
        enum rules_alert_state st = RULES_ALERT_INACTIVE;
        for (size_t i = 0; i < n; i++)
            if (act[i]->state > st)
                st = act[i]->state;
        bs_buf_printf(b, "{\"state\":\"%s\",\"name\":",
                      st == RULES_ALERT_FIRING ? "firing" : st == RULES_ALERT_PENDING ? "pending" : "inactive");
        bs_json_string(b, r->def.name, strlen(r->def.name));
        bs_buf_puts(b, ",\"query\":");
        bs_json_string(b, r->query, strlen(r->query));
        bs_buf_puts(b, ",\"duration\":");
        rules_json_float(b, (double)r->def.for_ms / 1000.0);
        bs_buf_puts(b, ",\"keepFiringFor\":");
        rules_json_float(b, (double)r->def.keep_firing_for_ms / 1000.0);
        bs_buf_puts(b, ",\"labels\":");
        kv_json(b, r->def.labels.v, r->def.labels.n);
        bs_buf_puts(b, ",\"annotations\":");
        kv_json(b, r->def.annotations.v, r->def.annotations.n);
        bs_buf_puts(b, ",\"alerts\":");
        if (with_alerts) {
            bs_buf_putc(b, '[');
            for (size_t i = 0; i < n; i++) {
                if (i)
                    bs_buf_putc(b, ',');
                alert_json(b, act[i]);
            }
            bs_buf_putc(b, ']');
        } else {
            bs_buf_puts(b, "null");
        }
        free(act);
    } else {
        bs_buf_puts(b, "{\"name\":");
        bs_json_string(b, r->def.name, strlen(r->def.name));
        bs_buf_puts(b, ",\"query\":");
        bs_json_string(b, r->query, strlen(r->query));
        if (r->def.labels.n) {
            bs_buf_puts(b, ",\"labels\":");
            kv_json(b, r->def.labels.v, r->def.labels.n);
        }
    }
    bs_buf_printf(b, ",\"health\":\"%s\"", health);
    if (r->last_error) {
        bs_buf_puts(b, ",\"lastError\":");
        bs_json_string(b, r->last_error, strlen(r->last_error));
    }
    bs_buf_puts(b, ",\"evaluationTime\":");
    rules_json_float(b, r->eval_seconds);
    bs_buf_puts(b, ",\"lastEvaluation\":");
    rules_json_time_ns(b, r->last_eval_ns);
    bs_buf_printf(b, ",\"type\":\"%s\"}", r->def.alerting ? "alerting" : "recording");
}

int rules_manager_rules_json(struct rules_manager *m, const struct rules_filters *f,
                             struct bs_buf *out)
{
    struct rules_filters none = {0};
    if (!f)
        f = &none;
    bool drop_empty = f->nrule_names > 0 || f->ngroup_names > 0 || f->nfiles > 0;
    bs_buf_puts(out, "{\"groups\":[");
    bool first_group = true;
    pthread_rwlock_rdlock(&m->groups_lock);
    for (size_t i = 0; i < m->ngroups; i++) {
        struct rules_group *g = m->groups[i];
        if (!in_list(g->name, f->group_names, f->ngroup_names) || !in_list(g->file, f->files, f->nfiles))
            continue;
        pthread_mutex_lock(&g->mu);
        struct bs_buf rb;
        bs_buf_init(&rb, 0);
        size_t nr = 0;
        for (size_t j = 0; j < g->nrules; j++) {
            const struct rules_rule *r = &g->rules[j];
            if ((f->type == RULES_TYPE_ALERT && !r->def.alerting) ||
                (f->type == RULES_TYPE_RECORD && r->def.alerting) ||
                !in_list(r->def.name, f->rule_names, f->nrule_names))
                continue;
            if (nr++)
                bs_buf_putc(&rb, ',');
            rule_json(&rb, r, !f->exclude_alerts);
        }
        if (nr || !drop_empty) {
            if (!first_group)
                bs_buf_putc(out, ',');
            first_group = false;
            bs_buf_puts(out, "{\"name\":");
            bs_json_string(out, g->name, strlen(g->name));
            bs_buf_puts(out, ",\"file\":");
            bs_json_string(out, g->file, strlen(g->file));
            bs_buf_puts(out, ",\"rules\":[");
            if (rb.data)
                bs_buf_append(out, rb.data, rb.len);
            bs_buf_puts(out, "],\"interval\":");
            rules_json_float(out, (double)g->interval_ms / 1000.0);
            bs_buf_printf(out, ",\"limit\":%lld,\"evaluationTime\":", (long long)g->limit);
            rules_json_float(out, g->eval_seconds);
            bs_buf_puts(out, ",\"lastEvaluation\":");
            rules_json_time_ns(out, g->last_eval_ns);
            bs_buf_putc(out, '}');
        }
        bs_buf_fini(&rb);
        pthread_mutex_unlock(&g->mu);
    }
    pthread_rwlock_unlock(&m->groups_lock);
    return bs_buf_puts(out, "]}");
}

int rules_manager_alerts_json(struct rules_manager *m, struct bs_buf *out)
{
    bs_buf_puts(out, "{\"alerts\":[");
    bool first = true;
    pthread_rwlock_rdlock(&m->groups_lock);
    for (size_t i = 0; i < m->ngroups; i++) {
        struct rules_group *g = m->groups[i];
        pthread_mutex_lock(&g->mu);
        for (size_t j = 0; j < g->nrules; j++) {
            const struct rules_rule *r = &g->rules[j];
            if (!r->def.alerting)
                continue;
            const struct rules_alert **act;
            size_t n = active_alerts(r, &act);
            for (size_t k = 0; k < n; k++) {
                if (!first)
                    bs_buf_putc(out, ',');
                first = false;
                alert_json(out, act[k]);
            }
            free(act);
        }
        pthread_mutex_unlock(&g->mu);
    }
    pthread_rwlock_unlock(&m->groups_lock);
    return bs_buf_puts(out, "]}");
}
