/* SPDX-License-Identifier: Apache-2.0
 *
 * The discovery manager: one thread that keeps the target groups of every
 * file_sd, http_sd and dns_sd provider of the configuration up to date and
 * tells the scrape manager when they changed.
 *
 * How it works:
 *  - A configuration apply builds a plan (sd_manager_prepare): one provider
 *    per *_sd_configs entry, keyed by job, kind and settings. A provider of
 *    the running set with the same key is reused as it is, groups and all,
 *    so a reload that leaves a job's discovery alone does not make its
 *    targets disappear for a moment. The scrape manager builds its targets
 *    from the plan, and only when that succeeded installs it.
 *  - The thread sleeps in poll() on an inotify descriptor (the directories
 *    of every file_sd pattern) and a wake-up pipe, until the earliest
 *    provider's next refresh. After (re)creating the watches it rereads
 *    every file provider, so a change made between a provider's first read
 *    (at apply) and its watch is not missed. A file event whose name matches a pattern
 *    schedules that file provider SD_FILE_DEBOUNCE_MS later, so one
 *    rewrite (create, write, close, rename) costs one read.
 *  - A refresh runs without the lock; its result replaces the provider's
 *    groups only when it differs and the provider is still installed. Once
 *    nothing is due, the thread calls the update callback once for all the
 *    changes, and the scrape manager re-applies its targets with its usual
 *    diff: unchanged targets keep their state, removed ones go stale.
 *  - Providers are reference counted: the installed list holds one, a plan
 *    holds one, and the thread holds one while it refreshes. A provider
 *    holds a reference to the configuration its settings point into.
 *
 * HTTP and DNS refreshes block the thread (bounded by the refresh interval
 * for HTTP and by the resolver's timeouts for DNS); file providers are then
 * refreshed a little late, never lost.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "scrape/sd_int.h"

/* ---------------------------------------------------------------- groups */

void sd_group_fini(struct sd_group *grp)
{
    free(grp->labels);
    for (size_t i = 0; i < grp->ntargets; i++)
        free(grp->targets[i]);
    free(grp->targets);
    memset(grp, 0, sizeof(*grp));
}

void sd_groups_fini(struct sd_groups *g)
{
    for (size_t i = 0; i < g->n; i++)
        sd_group_fini(&g->v[i]);
    free(g->v);
    memset(g, 0, sizeof(*g));
}

int sd_groups_push(struct sd_groups *g, struct sd_group *grp)
{
    if (g->n == g->cap) {
        size_t ncap = g->cap ? g->cap * 2 : 8;
        struct sd_group *nv = realloc(g->v, ncap * sizeof(*nv));
        if (!nv) {
            sd_group_fini(grp);
            return BS_ENOMEM;
        }
        g->v = nv;
        g->cap = ncap;
    }
    g->v[g->n++] = *grp;
    memset(grp, 0, sizeof(*grp));
    return 0;
}

int sd_groups_append_copy(struct sd_groups *dst, const struct sd_groups *src)
{
    for (size_t i = 0; i < src->n; i++) {
        const struct sd_group *s = &src->v[i];
        struct sd_group g = {0};
        g.labels = labels_dup(s->labels);
        g.targets = s->ntargets ? calloc(s->ntargets, sizeof(*g.targets)) : NULL;
        bool ok = g.labels && (g.targets || !s->ntargets);
        for (size_t t = 0; ok && t < s->ntargets; t++) {
            g.targets[t] = labels_dup(s->targets[t]);
            g.ntargets = t + 1;
            ok = g.targets[t] != NULL;
        }
        if (!ok) {
            sd_group_fini(&g);
            return BS_ENOMEM;
        }
        if (sd_groups_push(dst, &g) != 0)
            return BS_ENOMEM;
    }
    return 0;
}

bool sd_groups_equal(const struct sd_groups *a, const struct sd_groups *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++) {
        const struct sd_group *x = &a->v[i], *y = &b->v[i];
        if (x->ntargets != y->ntargets || !labels_equal(x->labels, y->labels))
            return false;
        for (size_t t = 0; t < x->ntargets; t++)
            if (!labels_equal(x->targets[t], y->targets[t]))
                return false;
    }
    return true;
}

/* ------------------------------------------------------------- providers */

static void provider_unref(struct sd_provider *p)
{
    if (!p || atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (p->priv_free)
        p->priv_free(p->priv);
    sd_groups_fini(&p->groups);
    config_free(p->cfg);
    free(p->job);
    free(p->key);
    free(p);
}

static struct sd_provider *provider_ref(struct sd_provider *p)
{
    atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
    return p;
}

static int key_str(struct bs_buf *b, const char *tag, const char *s)
{
    int rc = bs_buf_puts(b, tag);
    if (rc == 0)
        rc = s ? bs_buf_append(b, s, strlen(s)) : bs_buf_putc(b, '\x01');
    if (rc == 0)
        rc = bs_buf_putc(b, '\x02');
    return rc;
}

static int key_http_client(struct bs_buf *b, const struct config_http_client *h)
{
    int rc = bs_buf_printf(b, "H%d %d %d %d %d %d %d|", (int)h->has_basic_auth,
                           (int)h->has_authorization, (int)h->follow_redirects,
                           (int)h->enable_http2, (int)h->tls.insecure_skip_verify,
                           (int)h->tls.min_version, (int)h->tls.max_version);
    const char *strs[] = {h->username,      h->password,         h->password_file,
                          h->auth_type,     h->auth_credentials, h->auth_credentials_file,
                          h->proxy_url,     h->tls.ca_file,      h->tls.ca,
                          h->tls.cert_file, h->tls.cert,         h->tls.key_file,
                          h->tls.key,       h->tls.server_name};
    for (size_t i = 0; rc == 0 && i < sizeof(strs) / sizeof(strs[0]); i++)
        rc = key_str(b, "h", strs[i]);
    return rc;
}

/* A provider for one sd config of the job named job, not yet refreshed. */
static int provider_new(struct config *cfg, const char *job, enum sd_kind kind, const void *conf,
                        struct sd_provider **out)
{
    struct sd_provider *p = calloc(1, sizeof(*p));
    struct bs_buf b;
    bs_buf_init(&b, 0);
    *out = NULL;
    if (!p)
        return BS_ENOMEM;
    atomic_init(&p->refs, 1);
    p->kind = kind;
    p->cfg = config_ref(cfg);
    int rc = bs_buf_printf(&b, "%d|", (int)kind);
    if (rc == 0)
        rc = key_str(&b, "j", job);
    switch (kind) {
    case SD_KIND_FILE:
        p->conf.file = conf;
        p->refresh_ms = p->conf.file->refresh_interval_ms;
        for (size_t i = 0; rc == 0 && i < p->conf.file->nfiles; i++)
            rc = key_str(&b, "f", p->conf.file->files[i]);
        break;
    case SD_KIND_HTTP:
        p->conf.http = conf;
        p->refresh_ms = p->conf.http->refresh_interval_ms;
        if (rc == 0)
            rc = key_str(&b, "u", p->conf.http->url);
        if (rc == 0)
            rc = key_http_client(&b, &p->conf.http->http);
        break;
    case SD_KIND_DNS:
        p->conf.dns = conf;
        p->refresh_ms = p->conf.dns->refresh_interval_ms;
        if (rc == 0)
            rc = bs_buf_printf(&b, "t%d p%u|", (int)p->conf.dns->type, (unsigned)p->conf.dns->port);
        for (size_t i = 0; rc == 0 && i < p->conf.dns->nnames; i++)
            rc = key_str(&b, "n", p->conf.dns->names[i]);
        break;
    }
    if (rc == 0)
        rc = bs_buf_printf(&b, "r%lld", (long long)p->refresh_ms);
    if (p->refresh_ms <= 0)
        p->refresh_ms = 60000;
    if (rc == 0 && !(p->job = strdup(job)))
        rc = BS_ENOMEM;
    if (rc == 0)
        p->key = bs_buf_steal(&b, NULL);
    if (rc == 0 && !p->key)
        rc = BS_ENOMEM;
    if (rc == 0) {
        rc = kind == SD_KIND_FILE   ? sd_file_init(p)
             : kind == SD_KIND_HTTP ? sd_http_init(p)
                                    : sd_dns_init(p);
    }
    bs_buf_fini(&b);
    if (rc != 0) {
        provider_unref(p);
        return rc;
    }
    *out = p;
    return 0;
}

/* ----------------------------------------------------------------- manager */

struct sd_manager {
    pthread_mutex_t mu;
    sd_update_fn on_update;
    void *ud;
    int wake[2]; /* pipe: a write wakes the thread */
    /* guarded by mu */
    struct sd_provider **providers; /* installed, one reference each */
    size_t nproviders;
    uint64_t generation; /* bumped by every install */
    bool stopping;
    bool thread_started;
    pthread_t thread;
};

static struct bs_metric *metric_refresh_failures;
static struct bs_metric *metric_updates;
static pthread_once_t metrics_once = PTHREAD_ONCE_INIT;

static void metrics_register(void)
{
    metric_refresh_failures =
        bs_metric_register(BS_METRIC_COUNTER, "bongsu_sd_refresh_failures_total",
                           "Number of service discovery refreshes (HTTP, DNS) that failed.", NULL);
    metric_updates = bs_metric_register(
        BS_METRIC_COUNTER, "bongsu_sd_updates_total",
        "Number of times discovered target groups changed and targets were re-applied.", NULL);
}

struct sd_manager *sd_manager_new(sd_update_fn on_update, void *ud)
{
    pthread_once(&metrics_once, metrics_register);
    struct sd_manager *dm = calloc(1, sizeof(*dm));
    if (!dm)
        return NULL;
    dm->on_update = on_update;
    dm->ud = ud;
    if (pipe2(dm->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        free(dm);
        return NULL;
    }
    if (pthread_mutex_init(&dm->mu, NULL) != 0) {
        close(dm->wake[0]);
        close(dm->wake[1]);
        free(dm);
        return NULL;
    }
    return dm;
}

static void wake(struct sd_manager *dm)
{
    char c = 1;
    ssize_t w = write(dm->wake[1], &c, 1); /* a full pipe is awake enough */
    (void)w;
}

void sd_manager_free(struct sd_manager *dm)
{
    if (!dm)
        return;
    pthread_mutex_lock(&dm->mu);
    dm->stopping = true;
    bool started = dm->thread_started;
    pthread_mutex_unlock(&dm->mu);
    if (started) {
        wake(dm);
        pthread_join(dm->thread, NULL);
    }
    for (size_t i = 0; i < dm->nproviders; i++)
        provider_unref(dm->providers[i]);
    free(dm->providers);
    close(dm->wake[0]);
    close(dm->wake[1]);
    pthread_mutex_destroy(&dm->mu);
    free(dm);
}

void sd_manager_lock(struct sd_manager *dm)
{
    pthread_mutex_lock(&dm->mu);
}

void sd_manager_unlock(struct sd_manager *dm)
{
    pthread_mutex_unlock(&dm->mu);
}

struct sd_provider *const *sd_manager_installed(struct sd_manager *dm, size_t *n)
{
    *n = dm->nproviders;
    return dm->providers;
}

void sd_plan_discard(struct sd_plan *plan)
{
    for (size_t i = 0; i < plan->n; i++)
        provider_unref(plan->v[i]);
    free(plan->v);
    plan->v = NULL;
    plan->n = 0;
}

static void *sd_thread(void *arg);

static int plan_add(struct sd_manager *dm, struct sd_plan *plan, bool *taken, struct config *cfg,
                    const char *job, enum sd_kind kind, const void *conf)
{
    struct sd_provider *p;
    int rc = provider_new(cfg, job, kind, conf, &p);
    if (rc != 0)
        return rc;
    /* Reuse an installed provider with the same key, once. */
    bool reused = false;
    pthread_mutex_lock(&dm->mu);
    for (size_t i = 0; i < dm->nproviders; i++) {
        if (!taken[i] && strcmp(dm->providers[i]->key, p->key) == 0) {
            taken[i] = true;
            provider_unref(p);
            p = provider_ref(dm->providers[i]);
            reused = true;
            break;
        }
    }
    pthread_mutex_unlock(&dm->mu);
    if (p->kind == SD_KIND_FILE && !reused) {
        /* New: nobody else sees it yet, so read the files right here and the
         * first apply already has their targets. */
        struct sd_groups g = {0};
        if (p->refresh(p, &g) == 0)
            p->groups = g;
        else
            sd_groups_fini(&g);
        p->next_ms = bs_monotonic_ns() / 1000000 + p->refresh_ms;
    }
    plan->v[plan->n++] = p;
    return 0;
}

int sd_manager_prepare_jobs(struct sd_manager *dm, struct config *cfg,
                            const struct scrape_sd_job *jobs, size_t njobs, struct sd_plan *plan,
                            struct bs_error *err)
{
    size_t total = 0;
    plan->v = NULL;
    plan->n = 0;
    for (size_t i = 0; i < njobs; i++)
        total += jobs[i].nfile_sd_configs + jobs[i].nhttp_sd_configs + jobs[i].ndns_sd_configs;
    if (total == 0)
        return 0;
    pthread_mutex_lock(&dm->mu);
    size_t ninstalled = dm->nproviders;
    if (!dm->thread_started) {
        /* Started here, before anything changes, so that installing the plan
         * cannot fail. Until then it has nothing to do. */
        if (pthread_create(&dm->thread, NULL, sd_thread, dm) != 0) {
            pthread_mutex_unlock(&dm->mu);
            return bs_error_set(err, BS_EIO, "cannot start the service discovery thread");
        }
        dm->thread_started = true;
    }
    pthread_mutex_unlock(&dm->mu);
    /* Only apply calls change the installed list, and they are serialised
     * by the caller, so its length is stable here. */
    bool *taken = calloc(ninstalled + 1, sizeof(*taken));
    plan->v = calloc(total, sizeof(*plan->v));
    int rc = 0;
    if (!taken || !plan->v)
        rc = BS_ENOMEM;
    for (size_t i = 0; rc == 0 && i < njobs; i++) {
        const struct scrape_sd_job *jb = &jobs[i];
        for (size_t j = 0; rc == 0 && j < jb->nfile_sd_configs; j++)
            rc = plan_add(dm, plan, taken, cfg, jb->job_name, SD_KIND_FILE,
                          &jb->file_sd_configs[j]);
        for (size_t j = 0; rc == 0 && j < jb->nhttp_sd_configs; j++)
            rc = plan_add(dm, plan, taken, cfg, jb->job_name, SD_KIND_HTTP,
                          &jb->http_sd_configs[j]);
        for (size_t j = 0; rc == 0 && j < jb->ndns_sd_configs; j++)
            rc = plan_add(dm, plan, taken, cfg, jb->job_name, SD_KIND_DNS,
                          &jb->dns_sd_configs[j]);
    }
    free(taken);
    if (rc != 0) {
        sd_plan_discard(plan);
        return bs_error_set(err, rc, "service discovery: %s", bs_strerror(rc));
    }
    return 0;
}

int sd_manager_prepare(struct sd_manager *dm, struct config *cfg, struct sd_plan *plan,
                       struct bs_error *err)
{
    struct scrape_sd_job *jobs = NULL;
    if (cfg->nscrape_configs && !(jobs = calloc(cfg->nscrape_configs, sizeof(*jobs)))) {
        plan->v = NULL;
        plan->n = 0;
        return bs_error_set(err, BS_ENOMEM, "service discovery: %s", bs_strerror(BS_ENOMEM));
    }
    for (size_t i = 0; i < cfg->nscrape_configs; i++) {
        const struct config_scrape *sc = &cfg->scrape_configs[i];
        jobs[i] = (struct scrape_sd_job){
            .job_name = sc->job_name,
            .file_sd_configs = sc->file_sd_configs,
            .nfile_sd_configs = sc->nfile_sd_configs,
            .http_sd_configs = sc->http_sd_configs,
            .nhttp_sd_configs = sc->nhttp_sd_configs,
            .dns_sd_configs = sc->dns_sd_configs,
            .ndns_sd_configs = sc->ndns_sd_configs,
        };
    }
    int rc = sd_manager_prepare_jobs(dm, cfg, jobs, cfg->nscrape_configs, plan, err);
    free(jobs);
    return rc;
}

int sd_manager_install(struct sd_manager *dm, struct sd_plan *plan, struct bs_error *err)
{
    pthread_mutex_lock(&dm->mu);
    struct sd_provider **old = dm->providers;
    size_t nold = dm->nproviders;
    for (size_t i = 0; i < nold; i++)
        old[i]->active = false;
    for (size_t i = 0; i < plan->n; i++)
        plan->v[i]->active = true; /* new ones keep next_ms 0: due now */
    dm->providers = plan->v;
    dm->nproviders = plan->n;
    dm->generation++;
    plan->v = NULL;
    plan->n = 0;
    pthread_mutex_unlock(&dm->mu);
    for (size_t i = 0; i < nold; i++)
        provider_unref(old[i]);
    free(old);
    wake(dm);
    return 0;
}

/* ------------------------------------------------------------- the thread */

struct watch {
    int wd;
    char *dir;
};

struct watches {
    int fd; /* inotify, or -1 */
    struct watch *v;
    size_t n;
};

static void watches_clear(struct watches *w)
{
    if (w->fd >= 0)
        close(w->fd);
    for (size_t i = 0; i < w->n; i++)
        free(w->v[i].dir);
    free(w->v);
    w->fd = -1;
    w->v = NULL;
    w->n = 0;
}

/* Watch the directories of every installed file provider. Called with the
 * lock held (inotify_add_watch does not block). */
static void watches_rebuild(struct sd_manager *dm, struct watches *w)
{
    watches_clear(w);
    size_t total = 0;
    for (size_t i = 0; i < dm->nproviders; i++)
        if (dm->providers[i]->kind == SD_KIND_FILE)
            total += sd_file_ndirs(dm->providers[i]);
    if (total == 0)
        return;
    w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->fd < 0) {
        BS_WARN(SD_COMPONENT, "inotify unavailable (%s): files are reread every refresh_interval",
                strerror(errno));
        return;
    }
    w->v = calloc(total, sizeof(*w->v));
    if (!w->v)
        return;
    for (size_t i = 0; i < dm->nproviders; i++) {
        const struct sd_provider *p = dm->providers[i];
        if (p->kind != SD_KIND_FILE)
            continue;
        for (size_t j = 0; j < sd_file_ndirs(p); j++) {
            const char *dir = sd_file_dir(p, j);
            bool have = false;
            for (size_t k = 0; k < w->n && !have; k++)
                have = strcmp(w->v[k].dir, dir) == 0;
            if (have)
                continue;
            BS_DEBUG(SD_COMPONENT, "watching %s", dir);
            int wd = inotify_add_watch(w->fd, dir,
                                       IN_CREATE | IN_DELETE | IN_CLOSE_WRITE | IN_MOVED_TO |
                                           IN_MOVED_FROM | IN_DELETE_SELF | IN_MOVE_SELF);
            if (wd < 0) {
                BS_WARN(SD_COMPONENT,
                        "cannot watch directory %s (%s): its files are reread every "
                        "refresh_interval",
                        dir, strerror(errno));
                continue;
            }
            char *d = strdup(dir);
            if (!d)
                continue;
            w->v[w->n].wd = wd;
            w->v[w->n++].dir = d;
        }
    }
}

/* Drain inotify events; schedule the file providers they concern. Returns
 * true when a watched directory itself went away (watches must be rebuilt). */
static bool watches_read(struct sd_manager *dm, struct watches *w, int64_t now)
{
    char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool rebuild = false;
    for (;;) {
        ssize_t len = read(w->fd, buf, sizeof(buf));
        if (len <= 0)
            break;
        pthread_mutex_lock(&dm->mu);
        for (char *ptr = buf; ptr < buf + len;) {
            const struct inotify_event *ev = (const struct inotify_event *)ptr;
            ptr += sizeof(struct inotify_event) + ev->len;
            const char *dir = NULL;
            for (size_t k = 0; k < w->n && !dir; k++)
                if (w->v[k].wd == ev->wd)
                    dir = w->v[k].dir;
            if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED | IN_Q_OVERFLOW))
                rebuild = true;
            BS_DEBUG(SD_COMPONENT, "file event 0x%x in %s: %s", (unsigned)ev->mask, dir ? dir : "?",
                     ev->len ? ev->name : "");
            for (size_t i = 0; i < dm->nproviders; i++) {
                struct sd_provider *p = dm->providers[i];
                if (p->kind != SD_KIND_FILE)
                    continue;
                bool hit = (ev->mask & IN_Q_OVERFLOW) != 0;
                if (!hit && dir)
                    hit = ev->len == 0 ? sd_file_matches(p, dir, NULL)
                                       : sd_file_matches(p, dir, ev->name);
                if (hit && p->next_ms > now + SD_FILE_DEBOUNCE_MS)
                    p->next_ms = now + SD_FILE_DEBOUNCE_MS;
            }
        }
        pthread_mutex_unlock(&dm->mu);
    }
    return rebuild;
}

static void *sd_thread(void *arg)
{
    struct sd_manager *dm = arg;
    struct watches w = {.fd = -1};
    uint64_t watched = 0;
    bool have_watched = false, changed = false;

    for (;;) {
        pthread_mutex_lock(&dm->mu);
        if (dm->stopping) {
            pthread_mutex_unlock(&dm->mu);
            break;
        }
        int64_t now = bs_monotonic_ns() / 1000000;
        if (!have_watched || watched != dm->generation) {
            watches_rebuild(dm, &w);
            watched = dm->generation;
            have_watched = true;
            /* A file may have changed after it was last read and before the
             * watch existed: read every file provider once more. */
            for (size_t i = 0; i < dm->nproviders; i++)
                if (dm->providers[i]->kind == SD_KIND_FILE)
                    dm->providers[i]->next_ms = now;
        }
        struct sd_provider *due = NULL;
        int64_t next = INT64_MAX;
        for (size_t i = 0; i < dm->nproviders; i++) {
            struct sd_provider *p = dm->providers[i];
            if (p->next_ms <= now && !due)
                due = p;
            if (p->next_ms < next)
                next = p->next_ms;
        }
        if (due) {
            provider_ref(due);
            due->next_ms = now + due->refresh_ms;
            pthread_mutex_unlock(&dm->mu);
            struct sd_groups g = {0};
            BS_DEBUG(SD_COMPONENT, "refreshing a provider of job %s", due->job);
            int rc = due->refresh(due, &g);
            if (rc != 0 && due->kind != SD_KIND_FILE)
                bs_metric_add(metric_refresh_failures, 1);
            pthread_mutex_lock(&dm->mu);
            if (rc == 0 && due->active && !sd_groups_equal(&due->groups, &g)) {
                struct sd_groups old = due->groups;
                due->groups = g;
                g = old;
                changed = true;
            }
            pthread_mutex_unlock(&dm->mu);
            sd_groups_fini(&g);
            provider_unref(due);
            continue;
        }
        pthread_mutex_unlock(&dm->mu);
        if (changed) {
            /* Nothing else due: hand every change over at once. */
            changed = false;
            bs_metric_add(metric_updates, 1);
            dm->on_update(dm->ud);
            continue;
        }
        struct pollfd pfd[2] = {{.fd = dm->wake[0], .events = POLLIN},
                                {.fd = w.fd, .events = POLLIN}};
        int timeout = next == INT64_MAX ? -1 : next - now > 60000 ? 60000 : (int)(next - now);
        int n = poll(pfd, w.fd >= 0 ? 2 : 1, timeout);
        if (n <= 0)
            continue;
        if (pfd[0].revents) {
            char drain[64];
            while (read(dm->wake[0], drain, sizeof(drain)) > 0) {
            }
        }
        if (w.fd >= 0 && pfd[1].revents) {
            if (watches_read(dm, &w, bs_monotonic_ns() / 1000000))
                have_watched = false;
        }
    }
    watches_clear(&w);
    return NULL;
}
