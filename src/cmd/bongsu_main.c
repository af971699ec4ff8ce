/* SPDX-License-Identifier: Apache-2.0
 *
 * bongsu: the server. Thin by design: parse Prometheus-compatible flags,
 * load the configuration, open storage (replaying the WAL), start the query
 * engine, the scrape manager, the rules manager (with its notifier), the
 * IPMI collector and the HTTP API, then wait for signals: SIGHUP reloads
 * the configuration, SIGINT/SIGTERM shut down cleanly.
 *
 * Configuration is mapped here onto each module's own option structs
 * (alertmanagers onto struct rules_notifier_config, ipmi_configs onto
 * struct ipmi_target_config after target relabeling), because only cmd
 * knows both config and the modules. The ipmi_configs jobs' file/http/dns
 * service discovery runs in a scrape_discovery owned here; its updates
 * rebuild the IPMI target list (on_ipmi_discovery).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "cmd/flags.h"
#include "cmd/routes.h"
#include "config/config.h"
#include "http/http.h"
#include "ipmi/ipmi.h"
#include "labels/labels.h"
#include "promql/promql.h"
#include "rules/rules.h"
#include "scrape/scrape.h"
#include "tsdb/tsdb.h"
#include "util/util.h"

#ifndef BS_REVISION
#define BS_REVISION "unknown"
#endif
#ifndef BS_BRANCH
#define BS_BRANCH "unknown"
#endif
#ifndef BS_BUILD_USER
#define BS_BUILD_USER "unknown"
#endif
#ifndef BS_BUILD_DATE
#define BS_BUILD_DATE "unknown"
#endif

static struct flag server_flags[] = {
    {"config.file", FLAG_STRING, "", "bongsu configuration file path (empty: the embedded default, which scrapes bongsu itself).", NULL, false},
    {"web.listen-address", FLAG_STRING, "0.0.0.0:9090", "Address to listen on for the web interface and API.", NULL, false},
    {"storage.tsdb.path", FLAG_STRING, "data/", "Base path for metrics storage.", NULL, false},
    {"storage.tsdb.retention.time", FLAG_STRING, "15d", "How long to retain samples in storage.", NULL, false},
    {"storage.tsdb.wal-fsync-interval", FLAG_STRING, "1s", "How often the WAL is fsynced; 0s fsyncs every commit. A kill -9 loses nothing already written; this bounds loss on power failure.", NULL, false},
    {"query.lookback-delta", FLAG_STRING, "5m", "The maximum lookback duration for retrieving metrics during expression evaluations.", NULL, false},
    {"query.timeout", FLAG_STRING, "2m", "Maximum time a query may take before being aborted.", NULL, false},
    {"query.max-concurrency", FLAG_STRING, "20", "Maximum number of queries executed concurrently.", NULL, false},
    {"query.max-samples", FLAG_STRING, "50000000", "Maximum number of samples a single query can load into memory.", NULL, false},
    {"web.enable-remote-write-receiver", FLAG_BOOL, "false", "Enable the remote write receiver at POST /api/v1/write.", NULL, false},
    {"web.enable-lifecycle", FLAG_BOOL, "false", "Enable shutdown and reload via HTTP request (POST or PUT /-/quit and /-/reload).", NULL, false},
    {"web.enable-admin-api", FLAG_BOOL, "false", "Enable API endpoints for admin control actions: /api/v1/admin/tsdb/{delete_series,clean_tombstones,snapshot}.", NULL, false},
    {"web.external-url", FLAG_STRING, "", "The URL under which bongsu is externally reachable (e.g. behind a reverse proxy). Defaults to http://<hostname>:<port>/.", NULL, false},
    {"web.route-prefix", FLAG_STRING, "", "Prefix for the internal routes of web endpoints. Defaults to the path of --web.external-url; only \"/\" is supported for now.", NULL, false},
    {"web.max-connections", FLAG_STRING, "512", "Maximum number of simultaneous connections.", NULL, false},
    {"web.read-timeout", FLAG_STRING, "5m", "Maximum duration a connection may stay idle (reading the request or waiting for the next one).", NULL, false},
    {"storage.tsdb.retention.size", FLAG_STRING, "0B", "Maximum number of bytes of storage to retain (WAL and blocks); the oldest blocks are dropped first. 0 disables. Units: B, KB, MB, GB, TB, PB, EB (base 2).", NULL, false},
    {"storage.tsdb.min-block-duration", FLAG_STRING, "2h", "Minimum duration of a data block before being persisted (the head's block range).", NULL, false},
    {"storage.tsdb.max-block-duration", FLAG_STRING, "", "Maximum duration compacted blocks may span. Defaults to 10% of the retention period, at most 31d.", NULL, false},
    {"rules.alert.for-outage-tolerance", FLAG_STRING, "1h", "Max time to tolerate bongsu outage for restoring \"for\" state of alert.", NULL, false},
    {"rules.alert.for-grace-period", FLAG_STRING, "10m", "Minimum duration between alert and restored \"for\" state. This is maintained only for alerts with configured \"for\" time greater than grace period.", NULL, false},
    {"rules.alert.resend-delay", FLAG_STRING, "1m", "Minimum amount of time to wait before resending an alert to Alertmanager.", NULL, false},
    {"alertmanager.notification-queue-capacity", FLAG_STRING, "10000", "The capacity of the queue for pending Alertmanager notifications.", NULL, false},
    {"ipmi.workers", FLAG_STRING, "4", "Number of threads polling BMCs (ipmi_configs); one session and one request in flight per BMC.", NULL, false},
    {"log.level", FLAG_STRING, "info", "Only log messages with the given severity or above. One of: [debug, info, warn, error]", NULL, false},
    {"log.format", FLAG_STRING, "logfmt", "Output format of log messages. One of: [logfmt]", NULL, false},
};
#define NFLAGS (sizeof server_flags / sizeof server_flags[0])

static const char *flag_value(const char *name)
{
    struct flag *f = flags_find(server_flags, NFLAGS, name);
    return f ? f->value : NULL;
}

static int flag_duration(const char *name, int64_t *out)
{
    struct bs_error err = {0};
    const char *v = flag_value(name);
    if (bs_duration_parse(v, strlen(v), out, &err) != 0) {
        fprintf(stderr, "bongsu: error: invalid value \"%s\" for flag --%s: %s\n", v, name, err.msg);
        return -1;
    }
    return 0;
}

static int flag_int(const char *name, int64_t min, int64_t *out)
{
    const char *v = flag_value(name);
    char *end = NULL;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || !end || *end || end == v || x < min) {
        fprintf(stderr, "bongsu: error: invalid value \"%s\" for flag --%s: expected an integer >= %lld\n",
                v, name, (long long)min);
        return -1;
    }
    *out = x;
    return 0;
}

static void print_version(void)
{
    struct utsname u;
    uname(&u);
    printf("bongsu, version %s (branch: %s, revision: %s)\n", BS_VERSION, BS_BRANCH, BS_REVISION);
    printf("  build user:       %s\n", BS_BUILD_USER);
    printf("  build date:       %s\n", BS_BUILD_DATE);
    printf("  compiler:         gcc %s\n", __VERSION__);
    printf("  platform:         %s/%s\n", u.sysname, u.machine);
}

/* Load the configuration at path (empty: the embedded default). On failure
 * err holds the config module's message (file:line:column: what). */
static int load_config(const char *path, struct config **out, struct bs_error *err)
{
    if (path && path[0])
        return config_load_file(path, out, err);
    return config_load_string(config_default_yaml, strlen(config_default_yaml), "<default>", out,
                              err);
}

/* ------------------------------------------------- config → rules, ipmi */

/* Read a secret file as Prometheus does (whole file, surrounding white
 * space trimmed). OUT: *out, malloc'd. Returns 0 or BS_EIO/BS_ELIMIT with
 * err naming the file. */
static int read_secret_file(const char *path, char **out, struct bs_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return bs_error_set(err, BS_EIO, "unable to read file %s: %s", path, strerror(errno));
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, f);
    bool more = fgetc(f) != EOF;
    fclose(f);
    if (more)
        return bs_error_set(err, BS_ELIMIT, "file %s is larger than %zu bytes", path, sizeof buf);
    size_t a = 0;
    while (a < n && (buf[a] == ' ' || buf[a] == '\t' || buf[a] == '\n' || buf[a] == '\r'))
        a++;
    while (n > a && (buf[n - 1] == ' ' || buf[n - 1] == '\t' || buf[n - 1] == '\n' ||
                     buf[n - 1] == '\r'))
        n--;
    *out = bs_xstrndup(buf + a, n - a);
    return 0;
}

/* The notifier settings of a configuration, in the rules module's terms.
 * Strings are borrowed from the configuration, except secrets read from
 * files, which are owned here; free with notifier_map_fini. */
struct notifier_map {
    struct rules_notifier_config nc;
    struct rules_alertmanager_config *ams;
    const char **targets;
    char **owned;
    size_t nowned;
};

static void notifier_map_fini(struct notifier_map *nm)
{
    for (size_t i = 0; i < nm->nowned; i++)
        free(nm->owned[i]);
    free(nm->owned);
    free(nm->targets);
    free(nm->ams);
    memset(nm, 0, sizeof(*nm));
}

/* Map cfg's alerting section onto nm. HTTP client settings the notifier
 * cannot honour are refused rather than ignored: an Authorization type
 * other than Bearer, inline TLS PEM texts, proxy_url and TLS server_name.
 * Returns 0, or BS_EINVAL/BS_EIO with err set. */
static int notifier_map_build(const struct config *cfg, size_t queue_capacity,
                              struct notifier_map *nm, struct bs_error *err)
{
    memset(nm, 0, sizeof(*nm));
    size_t ntargets = 0;
    for (size_t i = 0; i < cfg->nalertmanagers; i++)
        for (size_t j = 0; j < cfg->alertmanagers[i].nstatic_configs; j++)
            ntargets += cfg->alertmanagers[i].static_configs[j].ntargets;
    nm->ams = bs_xcalloc(cfg->nalertmanagers + 1, sizeof(*nm->ams));
    nm->targets = bs_xcalloc(ntargets + 1, sizeof(*nm->targets));
    nm->owned = bs_xcalloc(2 * cfg->nalertmanagers + 1, sizeof(*nm->owned));
    size_t t = 0;
    for (size_t i = 0; i < cfg->nalertmanagers; i++) {
        const struct config_alertmanager *a = &cfg->alertmanagers[i];
        const struct config_http_client *h = &a->http;
        struct rules_alertmanager_config *r = &nm->ams[i];
        r->scheme = a->scheme;
        r->path_prefix = a->path_prefix;
        r->timeout_ms = a->timeout_ms;
        r->targets = &nm->targets[t];
        for (size_t j = 0; j < a->nstatic_configs; j++)
            for (size_t k = 0; k < a->static_configs[j].ntargets; k++)
                nm->targets[t++] = a->static_configs[j].targets[k];
        r->ntargets = (size_t)(&nm->targets[t] - r->targets);
        const char *why = NULL;
        if (h->has_authorization && strcasecmp(h->auth_type, "Bearer") != 0)
            why = "an authorization type other than Bearer";
        else if (h->tls.ca || h->tls.cert || h->tls.key)
            why = "inline TLS ca, cert or key (use ca_file, cert_file, key_file)";
        else if (h->tls.server_name)
            why = "tls_config.server_name";
        else if (h->proxy_url)
            why = "proxy_url";
        if (why)
            return bs_error_set(err, BS_EINVAL,
                                "alerting.alertmanagers[%zu]: %s is not supported for "
                                "Alertmanagers yet",
                                i, why);
        if (h->has_basic_auth) {
            r->username = h->username ? h->username : "";
            r->password = h->password ? h->password : "";
            if (h->password_file) {
                char *pw = NULL;
                int rc = read_secret_file(h->password_file, &pw, err);
                if (rc != 0)
                    return rc;
                nm->owned[nm->nowned++] = pw;
                r->password = pw;
            }
        }
        if (h->has_authorization) {
            r->bearer_token = h->auth_credentials ? h->auth_credentials : "";
            if (h->auth_credentials_file) {
                char *tok = NULL;
                int rc = read_secret_file(h->auth_credentials_file, &tok, err);
                if (rc != 0)
                    return rc;
                nm->owned[nm->nowned++] = tok;
                r->bearer_token = tok;
            }
        }
        r->ca_file = h->tls.ca_file;
        r->cert_file = h->tls.cert_file;
        r->key_file = h->tls.key_file;
        r->insecure_skip_verify = h->tls.insecure_skip_verify;
    }
    nm->nc.alertmanagers = nm->ams;
    nm->nc.nalertmanagers = cfg->nalertmanagers;
    nm->nc.alert_relabel_configs = cfg->alert_relabel_configs;
    nm->nc.nalert_relabel_configs = cfg->nalert_relabel_configs;
    nm->nc.queue_capacity = queue_capacity;
    return 0;
}

/* The IPMI targets of a configuration. Label sets and host names are owned
 * here; everything else is borrowed from the configuration. */
struct ipmi_map {
    struct ipmi_target_config *ts;
    size_t n, cap;
    struct labels **labels; /* one per target */
    char **hosts;           /* one per target */
    size_t dropped;         /* targets relabeling dropped */
};

static void ipmi_map_fini(struct ipmi_map *im)
{
    for (size_t i = 0; i < im->n; i++) {
        free(im->labels[i]);
        free(im->hosts[i]);
    }
    free(im->labels);
    free(im->hosts);
    free(im->ts);
    memset(im, 0, sizeof(*im));
}

/* Split an __address__ into host and UDP port: "h", "h:p", "[v6]",
 * "[v6]:p" or a bare IPv6 address. Returns 0 or -1. */
static int split_host_port(const char *addr, char **host, uint16_t *port)
{
    const char *hs = addr, *he, *ps = NULL;
    if (addr[0] == '[') {
        const char *rb = strchr(addr, ']');
        if (!rb || (rb[1] && rb[1] != ':'))
            return -1;
        hs = addr + 1;
        he = rb;
        ps = rb[1] == ':' ? rb + 2 : NULL;
    } else {
        const char *colon = strchr(addr, ':');
        if (colon && strchr(colon + 1, ':')) { /* a bare IPv6 address */
            he = addr + strlen(addr);
        } else {
            he = colon ? colon : addr + strlen(addr);
            ps = colon ? colon + 1 : NULL;
        }
    }
    if (he == hs)
        return -1;
    *port = 0;
    if (ps) {
        char *end = NULL;
        errno = 0;
        long v = strtol(ps, &end, 10);
        if (errno || !*ps || *end || v < 1 || v > 65535)
            return -1;
        *port = (uint16_t)v;
    }
    *host = bs_xstrndup(hs, (size_t)(he - hs));
    return 0;
}

/* Whether im already has a target at host:port (port 0 is 623). */
static bool ipmi_map_has(const struct ipmi_map *im, const char *host, uint16_t port)
{
    uint16_t p = port ? port : 623;
    for (size_t i = 0; i < im->n; i++)
        if ((im->ts[i].port ? im->ts[i].port : 623) == p && strcmp(im->ts[i].host, host) == 0)
            return true;
    return false;
}

/* Build the target labels of one IPMI target as Prometheus builds those of
 * a scrape target: the group's labels, the target's own (__address__ and,
 * for discovered targets, __meta_* labels), then job, __scrape_interval__
 * and __scrape_timeout__ unless set; relabel_configs; instance defaults to
 * __address__; labels starting with "__" dropped. Appends the target to im
 * unless relabeling dropped it. A static target (strict) with an invalid
 * address fails with BS_EINVAL; a discovered one is logged and skipped, as
 * is one whose host:port is already in im (Prometheus, too, skips unusable
 * discovered targets rather than failing). */
static int ipmi_map_target(struct ipmi_map *im, const struct config_ipmi *ic,
                           const struct labels *group, const struct labels *target, bool strict,
                           struct bs_error *err)
{
    struct labels_builder b, out;
    labels_builder_init(&b);
    labels_builder_init(&out);
    char ivl[32], tmo[32];
    bs_duration_format(ic->scrape_interval_ms, ivl, sizeof ivl);
    bs_duration_format(ic->scrape_timeout_ms, tmo, sizeof tmo);
    int rc = labels_builder_from(&b, group);
    for (size_t i = 0; rc == 0 && i < target->n; i++)
        rc = labels_builder_set_str(&b, target->v[i].name, target->v[i].value);
    if (rc == 0 && !labels_builder_get(&b, "job"))
        rc = labels_builder_set_str(&b, "job", ic->job_name);
    if (rc == 0 && !labels_builder_get(&b, "__scrape_interval__"))
        rc = labels_builder_set_str(&b, "__scrape_interval__", ivl);
    if (rc == 0 && !labels_builder_get(&b, "__scrape_timeout__"))
        rc = labels_builder_set_str(&b, "__scrape_timeout__", tmo);
    struct labels in;
    bool keep = true;
    if (rc == 0)
        rc = labels_builder_labels(&b, &in, err);
    if (rc == 0)
        rc = labels_relabel_apply(ic->relabel_configs, ic->nrelabel_configs, &in, &out, &keep);
    if (rc != 0 || !keep) {
        im->dropped += rc == 0;
        goto done;
    }
    const char *a = labels_builder_get(&out, "__address__");
    if (!a || !a[0]) {
        im->dropped++; /* Prometheus drops a target relabeled to no address */
        goto done;
    }
    char addr[512];
    snprintf(addr, sizeof addr, "%s", a);
    char *host = NULL;
    uint16_t port = 0;
    if (strlen(a) >= sizeof addr || split_host_port(addr, &host, &port) != 0) {
        if (strict)
            rc = bs_error_set(err, BS_EINVAL,
                              "ipmi config \"%s\": invalid target address \"%s\"", ic->job_name,
                              a);
        else
            BS_WARN("main",
                    "ipmi config \"%s\": skipping discovered target: invalid address \"%s\"",
                    ic->job_name, a);
        goto done;
    }
    if (!strict && ipmi_map_has(im, host, port)) {
        BS_WARN("main",
                "ipmi config \"%s\": skipping discovered target %s: that BMC is already a target",
                ic->job_name, addr);
        free(host);
        goto done;
    }
    if (!labels_builder_get(&out, "instance"))
        rc = labels_builder_set_str(&out, "instance", addr);
    struct labels fin;
    if (rc == 0)
        rc = labels_builder_labels(&out, &fin, err);
    struct labels_builder keepb;
    labels_builder_init(&keepb);
    for (size_t i = 0; rc == 0 && i < fin.n; i++)
        if (strncmp(fin.v[i].name, "__", 2) != 0)
            rc = labels_builder_set_str(&keepb, fin.v[i].name, fin.v[i].value);
    struct labels kept;
    struct labels *dup = NULL;
    if (rc == 0)
        rc = labels_builder_labels(&keepb, &kept, err);
    if (rc == 0 && !(dup = labels_dup(&kept)))
        rc = BS_ENOMEM;
    labels_builder_fini(&keepb);
    if (rc != 0) {
        free(host);
        goto done;
    }
    if (im->n == im->cap) {
        im->cap = im->cap ? 2 * im->cap : 8;
        im->ts = bs_xrealloc(im->ts, im->cap * sizeof(*im->ts));
        im->labels = bs_xrealloc(im->labels, im->cap * sizeof(*im->labels));
        im->hosts = bs_xrealloc(im->hosts, im->cap * sizeof(*im->hosts));
    }
    struct ipmi_target_config *t = &im->ts[im->n];
    ipmi_target_config_default(t);
    t->host = host;
    t->port = port;
    t->username = ic->username;
    t->password = ic->password;
    t->password_file = ic->password_file;
    t->driver = ic->driver == CONFIG_IPMI_DRIVER_LAN ? IPMI_CFG_DRIVER_LAN : IPMI_CFG_DRIVER_LAN_2_0;
    t->privilege = ic->privilege == CONFIG_IPMI_PRIV_ADMIN      ? IPMI_CFG_PRIV_ADMIN
                   : ic->privilege == CONFIG_IPMI_PRIV_OPERATOR ? IPMI_CFG_PRIV_OPERATOR
                                                                : IPMI_CFG_PRIV_USER;
    t->cipher_suite_id = ic->cipher_suite_id;
    t->workaround_flags = (const char *const *)ic->workaround_flags;
    t->nworkaround_flags = ic->nworkaround_flags;
    t->timeout_ms = ic->scrape_timeout_ms;
    t->interval_ms = ic->scrape_interval_ms;
    t->labels = dup;
    im->labels[im->n] = dup;
    im->hosts[im->n] = host;
    im->n++;
done:
    labels_builder_fini(&b);
    labels_builder_fini(&out);
    if (rc == BS_ENOMEM)
        bs_error_set(err, rc, "out of memory building ipmi targets");
    return rc;
}

/* scrape_discovery_targets() callback: one discovered target of a job. */
struct ipmi_map_walk {
    struct ipmi_map *im;
    const struct config_ipmi *ic;
    struct bs_error *err;
};

static int ipmi_map_discovered(void *ud, const struct labels *group, const struct labels *target)
{
    struct ipmi_map_walk *w = ud;
    return ipmi_map_target(w->im, w->ic, group, target, false, w->err);
}

/* The IPMI targets of cfg: every job's static targets first (so a
 * discovered target never displaces a static one), then the discovered
 * targets of each job from plan (NULL: the installed providers) of sd. */
static int ipmi_map_build(const struct config *cfg, struct scrape_discovery *sd,
                          const struct scrape_discovery_plan *plan, struct ipmi_map *im,
                          struct bs_error *err)
{
    memset(im, 0, sizeof(*im));
    for (size_t i = 0; i < cfg->nipmi_configs; i++) {
        const struct config_ipmi *ic = &cfg->ipmi_configs[i];
        for (size_t j = 0; j < ic->nstatic_configs; j++) {
            const struct config_static_config *sc = &ic->static_configs[j];
            for (size_t k = 0; k < sc->ntargets; k++) {
                struct label one = {.name = "__address__", .value = sc->targets[k]};
                struct labels target = {&one, 1};
                int rc = ipmi_map_target(im, ic, sc->labels, &target, true, err);
                if (rc != 0)
                    return rc;
            }
        }
    }
    for (size_t i = 0; sd && i < cfg->nipmi_configs; i++) {
        const struct config_ipmi *ic = &cfg->ipmi_configs[i];
        struct ipmi_map_walk w = {im, ic, err};
        if (!ic->nfile_sd_configs && !ic->nhttp_sd_configs && !ic->ndns_sd_configs)
            continue;
        int rc = scrape_discovery_targets(sd, plan, ic->job_name, ipmi_map_discovered, &w);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* The discovery settings of cfg's IPMI jobs, for scrape_discovery_prepare();
 * *out (free()) points into cfg. 0 or BS_ENOMEM. */
static int ipmi_sd_jobs(const struct config *cfg, struct scrape_sd_job **out)
{
    *out = NULL;
    if (cfg->nipmi_configs == 0)
        return 0;
    struct scrape_sd_job *v = calloc(cfg->nipmi_configs, sizeof(*v));
    if (!v)
        return BS_ENOMEM;
    for (size_t i = 0; i < cfg->nipmi_configs; i++) {
        const struct config_ipmi *ic = &cfg->ipmi_configs[i];
        v[i] = (struct scrape_sd_job){.job_name = ic->job_name,
                                      .file_sd_configs = ic->file_sd_configs,
                                      .nfile_sd_configs = ic->nfile_sd_configs,
                                      .http_sd_configs = ic->http_sd_configs,
                                      .nhttp_sd_configs = ic->nhttp_sd_configs,
                                      .dns_sd_configs = ic->dns_sd_configs,
                                      .ndns_sd_configs = ic->ndns_sd_configs};
    }
    *out = v;
    return 0;
}

/* The rules manager's options for cfg: the flags' timings (base) with the
 * configuration's external labels and evaluation interval. */
static void rules_opts_for(const struct rules_manager_opts *base, const struct config *cfg,
                           struct rules_manager_opts *o)
{
    *o = *base;
    o->external_labels = cfg->external_labels;
    o->default_interval_ms = cfg->evaluation_interval_ms;
    memset(&o->notifier, 0, sizeof(o->notifier));
}

/* What a reload works on. SIGHUP (main thread) and POST /-/reload (an HTTP
 * worker thread) both go through app_reload(), serialised by mu. */
struct app {
    pthread_mutex_t mu;
    const char *config_path; /* borrowed from argv or the flag default */
    struct config *cfg;      /* the running configuration; owned */
    struct scrape_manager *scrape;
    struct rules_manager *rules;
    struct ipmi_collector *ipmi;
    /* Discovery of the ipmi_configs jobs' file/http/dns_sd targets, and the
     * configuration its installed providers and the IPMI targets were
     * built from (a reference; NULL before the first apply). Changed under
     * mu, by app_apply() and by on_ipmi_discovery(). */
    struct scrape_discovery *ipmi_sd;
    struct config *ipmi_cfg;
    struct rules_manager_opts rules_base; /* flag timings and external URL */
    size_t queue_capacity;                /* --alertmanager.notification-queue-capacity */
    struct http_server *http; /* NULL until started */
    struct bs_metric *reload_ok, *reload_time;
};

/* /api/v1/targets: the scrape targets, with the IPMI targets appended to
 * activeTargets (they are active targets too: `up` and lastError of each
 * BMC show there). */
static int targets_cb(void *ud, const char *state, struct bs_buf *out)
{
    struct app *a = ud;
    size_t start = out->len;
    int rc = scrape_manager_targets_json(a->scrape, state, out);
    bool active = !state || !state[0] || strcasecmp(state, "active") == 0 ||
                  strcasecmp(state, "any") == 0;
    if (rc != 0 || !active || !a->ipmi)
        return rc;
    /* Insert before the "]" closing activeTargets. The marker cannot occur
     * inside a JSON string, whose quotes are escaped. */
    const char *text = out->data + start;
    const char *at = strstr(text, "],\"droppedTargets\":");
    if (!at) {
        at = strrchr(text, ']');
        if (!at)
            return BS_EINVAL;
    }
    size_t pos = (size_t)(at - out->data);
    bool leading = pos > start && out->data[pos - 1] != '[';
    struct bs_buf ib;
    bs_buf_init(&ib, 0);
    size_t count = 0;
    rc = ipmi_collector_targets_json(a->ipmi, leading, &ib, &count);
    if (rc == 0 && count > 0 && ib.len > 0) {
        size_t tail = out->len - pos;
        rc = bs_buf_reserve(out, ib.len);
        if (rc == 0) {
            memmove(out->data + pos + ib.len, out->data + pos, tail + 1);
            memcpy(out->data + pos, ib.data, ib.len);
            out->len += ib.len;
        }
    }
    bs_buf_fini(&ib);
    return rc;
}

static int rules_cb(void *ud, const struct http_rules_query *q, struct bs_buf *out)
{
    struct app *a = ud;
    struct rules_filters f;
    memset(&f, 0, sizeof f);
    f.type = strcmp(q->type, "alert") == 0    ? RULES_TYPE_ALERT
             : strcmp(q->type, "record") == 0 ? RULES_TYPE_RECORD
                                              : RULES_TYPE_ALL;
    f.rule_names = q->rule_names;
    f.nrule_names = q->nrule_names;
    f.group_names = q->group_names;
    f.ngroup_names = q->ngroup_names;
    f.files = q->files;
    f.nfiles = q->nfiles;
    f.exclude_alerts = q->exclude_alerts;
    return rules_manager_rules_json(a->rules, &f, out);
}

static int alerts_cb(void *ud, struct bs_buf *out)
{
    struct app *a = ud;
    return rules_manager_alerts_json(a->rules, out);
}

static int targets_metadata_cb(void *ud, struct labels_matcher *const *ms, size_t n,
                               const char *metric, long limit, struct bs_buf *out)
{
    struct app *a = ud;
    return scrape_manager_targets_metadata_json(a->scrape, ms, n, metric, limit, out);
}

static int metadata_cb(void *ud, const char *metric, long limit, long limit_per_metric,
                       struct bs_buf *out)
{
    struct app *a = ud;
    return scrape_manager_metadata_json(a->scrape, metric, limit, limit_per_metric, out);
}

/* ---------------------------------------------------------------- reload */

/* Apply cfg to every module: rule files first (all-or-nothing: a broken
 * rule file leaves everything as it was), then the IPMI targets
 * (validated before anything changes), the scrape jobs, the rules
 * manager's options and the notifier. The mappings are built before any
 * module is touched, so a configuration they refuse changes nothing.
 * prev is the configuration running so far (NULL at start-up); the rules
 * manager's options go back to it if the rule files are refused. Returns 0
 * or an error with err set. */
static int app_apply(struct app *a, const struct config *cfg, const struct config *prev,
                     struct bs_error *err)
{
    struct notifier_map nm;
    struct ipmi_map im;
    struct rules_manager_opts ro;
    struct scrape_sd_job *sd_jobs = NULL;
    struct scrape_discovery_plan *plan = NULL;
    memset(&im, 0, sizeof im);
    int rc = notifier_map_build(cfg, a->queue_capacity, &nm, err);
    if (rc == 0 && (rc = ipmi_sd_jobs(cfg, &sd_jobs)) != 0)
        bs_error_set(err, rc, "out of memory building ipmi targets");
    /* New file_sd providers read their files here, so the first target
     * list already has what they list. */
    if (rc == 0)
        rc = scrape_discovery_prepare(a->ipmi_sd, cfg, sd_jobs, cfg->nipmi_configs, &plan, err);
    if (rc == 0)
        rc = ipmi_map_build(cfg, a->ipmi_sd, plan, &im, err);
    if (rc == 0) {
        /* Group intervals default to evaluation_interval when loaded. */
        rules_opts_for(&a->rules_base, cfg, &ro);
        rc = rules_manager_set_options(a->rules, &ro, err);
    }
    if (rc == 0) {
        rc = rules_manager_load(a->rules, (const char *const *)cfg->rule_files, cfg->nrule_files,
                                err);
        if (rc != 0 && prev) {
            struct bs_error ignored = {0};
            rules_opts_for(&a->rules_base, prev, &ro);
            rules_manager_set_options(a->rules, &ro, &ignored);
        }
    }
    if (rc == 0)
        rc = ipmi_collector_set_targets(a->ipmi, im.ts, im.n, err);
    if (rc == 0) {
        /* The IPMI side now runs cfg: discovery updates rebuild from it. */
        scrape_discovery_install(a->ipmi_sd, plan);
        plan = NULL;
        struct config *old = a->ipmi_cfg;
        a->ipmi_cfg = config_ref((struct config *)cfg);
        config_free(old);
    }
    if (rc == 0)
        rc = scrape_manager_apply_config(a->scrape, cfg, err);
    if (rc == 0)
        rc = rules_manager_set_notifier(a->rules, &nm.nc, err);
    if (rc == 0 && im.dropped)
        BS_DEBUG("main", "%zu ipmi targets dropped by relabeling", im.dropped);
    notifier_map_fini(&nm);
    ipmi_map_fini(&im);
    scrape_discovery_plan_free(plan);
    free(sd_jobs);
    return rc;
}

/* Discovery thread: the file/http/dns_sd groups of IPMI jobs changed.
 * Rebuild the IPMI target list (static and discovered targets, relabeled)
 * from the configuration the IPMI side runs; ipmi_collector_set_targets()
 * keeps unchanged BMCs' schedules and SEL cursors. */
static void on_ipmi_discovery(void *ud)
{
    struct app *a = ud;
    struct bs_error err = {0};
    struct ipmi_map im;
    pthread_mutex_lock(&a->mu);
    if (a->ipmi_cfg) {
        int rc = ipmi_map_build(a->ipmi_cfg, a->ipmi_sd, NULL, &im, &err);
        if (rc == 0)
            rc = ipmi_collector_set_targets(a->ipmi, im.ts, im.n, &err);
        if (rc != 0)
            BS_ERROR("main", "Applying discovered IPMI targets failed: %s", err.msg);
        else
            BS_DEBUG("main", "%zu ipmi targets after discovery (%zu dropped by relabeling)", im.n,
                     im.dropped);
        ipmi_map_fini(&im);
    }
    pthread_mutex_unlock(&a->mu);
}

/* Load the configuration file again and apply it (app_apply). On success
 * the new configuration replaces the old one, also in
 * /api/v1/status/config. On failure the running configuration stays, the
 * failure is recorded for /api/v1/status/runtimeinfo, and err says why. */
static int app_reload(struct app *a, struct bs_error *err)
{
    const char *shown = a->config_path && a->config_path[0] ? a->config_path : "<default>";
    struct config *ncfg = NULL;
    struct bs_error e = {0};
    pthread_mutex_lock(&a->mu);
    BS_INFO("main", "Loading configuration file %s", shown);
    char msg[sizeof(e.msg)];
    int rc = load_config(a->config_path, &ncfg, &e);
    if (rc != 0) {
        snprintf(msg, sizeof(msg), "%s", e.msg);
        bs_error_set(&e, rc, "couldn't load configuration (--config.file=\"%s\"): %s", shown, msg);
    } else if ((rc = app_apply(a, ncfg, a->cfg, &e)) != 0) {
        snprintf(msg, sizeof(msg), "%s", e.msg);
        bs_error_set(&e, rc,
                     "one or more errors occurred while applying the new configuration "
                     "(--config.file=\"%s\"): %s",
                     shown, msg);
    }
    if (rc != 0) {
        config_free(ncfg);
        BS_ERROR("main", "Error reloading config: %s; keeping the running configuration", e.msg);
        if (a->http)
            http_server_set_config(a->http, NULL, false);
        bs_metric_set(a->reload_ok, 0);
        bs_error_set(err, rc, "%s", e.msg);
    } else {
        config_free(a->cfg);
        a->cfg = ncfg;
        if (a->http)
            http_server_set_config(a->http, ncfg->source, true);
        bs_metric_set(a->reload_ok, 1);
        bs_metric_set(a->reload_time, (double)bs_now_ms() / 1000.0);
        BS_INFO("main", "Completed loading of configuration file %s", shown);
    }
    pthread_mutex_unlock(&a->mu);
    return rc;
}

static int reload_cb(void *ud, struct bs_error *err)
{
    return app_reload(ud, err);
}

/* /-/quit: the main thread's sigwait turns this into a clean shutdown. */
static void quit_cb(void *ud)
{
    (void)ud;
    BS_WARN("main", "Received termination request via web service, exiting gracefully...");
    kill(getpid(), SIGTERM);
}

/* ----------------------------------------------------------- web flags */

/* Parse a size as Prometheus's --storage.tsdb.retention.size does: one or
 * more <integer><unit> terms, units B, KB, MB, GB, TB, PB, EB (powers of
 * 1024, also spelled KiB...). */
static int parse_base2_bytes(const char *s, uint64_t *out)
{
    static const char *const units[] = {"B", "KB", "MB", "GB", "TB", "PB", "EB"};
    static const char *const iunits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    uint64_t total = 0;
    if (!*s)
        return -1;
    while (*s) {
        char *end = NULL;
        if (*s < '0' || *s > '9')
            return -1;
        errno = 0;
        unsigned long long n = strtoull(s, &end, 10);
        if (errno || end == s)
            return -1;
        size_t ul = 0;
        while (end[ul] && !(end[ul] >= '0' && end[ul] <= '9'))
            ul++;
        int shift = -1;
        for (int i = 0; i < 7 && shift < 0; i++)
            if ((strlen(units[i]) == ul && strncmp(end, units[i], ul) == 0) ||
                (strlen(iunits[i]) == ul && strncmp(end, iunits[i], ul) == 0))
                shift = 10 * i;
        if (shift < 0 || (shift > 0 && n > (UINT64_MAX >> shift)))
            return -1;
        uint64_t add = (uint64_t)n << shift;
        if (total > UINT64_MAX - add)
            return -1;
        total += add;
        s = end + ul;
    }
    *out = total;
    return 0;
}

/* Check --web.external-url and --web.route-prefix. Only the root route
 * prefix is served for now; anything else is refused at start-up rather
 * than half-served. OUT: *ext, the external URL (malloc'd), *prefix, the
 * effective route prefix (static). Returns 0 or -1 after printing why. */
static int web_urls(const char *listen, char **ext, const char **prefix)
{
    const char *u = flag_value("web.external-url");
    char buf[1024];
    if (!u[0]) {
        char host[256] = "localhost";
        gethostname(host, sizeof(host) - 1);
        host[sizeof(host) - 1] = '\0';
        const char *colon = strrchr(listen, ':');
        snprintf(buf, sizeof(buf), "http://%s:%s/", host, colon ? colon + 1 : "9090");
        u = buf;
    }
    const char *sep = strstr(u, "://");
    bool scheme_ok = sep && ((sep - u == 4 && strncmp(u, "http", 4) == 0) ||
                             (sep - u == 5 && strncmp(u, "https", 5) == 0));
    if (!scheme_ok || !sep[3] || sep[3] == '/') {
        fprintf(stderr,
                "bongsu: error: invalid value \"%s\" for flag --web.external-url: expected an "
                "absolute http:// or https:// URL with a host\n",
                u);
        return -1;
    }
    const char *path = strchr(sep + 3, '/');
    size_t pl = path ? strcspn(path, "?#") : 0;
    while (pl > 0 && path[pl - 1] == '/')
        pl--;
    const char *rp = flag_value("web.route-prefix");
    if (rp[0] && strcmp(rp, "/") != 0) {
        fprintf(stderr,
                "bongsu: error: --web.route-prefix=%s is not supported yet: bongsu serves every "
                "endpoint under \"/\" only\n",
                rp);
        return -1;
    }
    if (!rp[0] && pl > 0) {
        fprintf(stderr,
                "bongsu: error: --web.external-url=%s implies the route prefix \"%.*s\", which is "
                "not supported yet; serve bongsu under \"/\" and let the proxy strip the path, "
                "with --web.route-prefix=/\n",
                u, (int)pl, path);
        return -1;
    }
    *ext = bs_xstrdup(u);
    *prefix = "/";
    return 0;
}

int main(int argc, char **argv)
{
    struct bs_error err = {0};
    bool help = false, version = false;
    if (flags_parse(server_flags, NFLAGS, argc, argv, &help, &version, &err) != 0) {
        fprintf(stderr, "bongsu: error: %s\n", err.msg);
        return 1;
    }
    if (help) {
        struct bs_buf b;
        bs_buf_init(&b, 0);
        flags_usage(server_flags, NFLAGS, "bongsu",
                    "bongsu, a lean Prometheus-compatible monitoring server.", &b);
        fputs(b.data, stdout);
        bs_buf_fini(&b);
        return 0;
    }
    if (version) {
        print_version();
        return 0;
    }
    int lvl = bs_log_level_parse(flag_value("log.level"));
    if (lvl < 0) {
        fprintf(stderr, "bongsu: error: invalid value \"%s\" for flag --log.level: one of debug, info, warn, error\n",
                flag_value("log.level"));
        return 1;
    }
    bs_log_set_level(lvl);
    if (strcmp(flag_value("log.format"), "logfmt") != 0) {
        fprintf(stderr, "bongsu: error: invalid value \"%s\" for flag --log.format: only logfmt is supported\n",
                flag_value("log.format"));
        return 1;
    }

    struct tsdb_options topts;
    tsdb_options_default(&topts);
    topts.dir = flag_value("storage.tsdb.path");
    struct promql_engine_opts qopts;
    promql_engine_opts_default(&qopts);
    int64_t conc = 0, max_conns = 0, read_timeout_ms = 0, queue_cap = 0, ipmi_workers = 0;
    struct rules_manager_opts rbase;
    rules_manager_opts_default(&rbase);
    if (flag_duration("storage.tsdb.retention.time", &topts.retention_ms) ||
        flag_duration("storage.tsdb.min-block-duration", &topts.block_range_ms) ||
        flag_duration("storage.tsdb.wal-fsync-interval", &topts.wal_fsync_interval_ms) ||
        flag_duration("query.lookback-delta", &qopts.lookback_ms) ||
        flag_duration("query.timeout", &qopts.timeout_ms) ||
        flag_int("query.max-samples", 1, &qopts.max_samples) ||
        flag_int("query.max-concurrency", 1, &conc) ||
        flag_int("web.max-connections", 0, &max_conns) ||
        flag_duration("web.read-timeout", &read_timeout_ms) ||
        flag_duration("rules.alert.for-outage-tolerance", &rbase.outage_tolerance_ms) ||
        flag_duration("rules.alert.for-grace-period", &rbase.grace_period_ms) ||
        flag_duration("rules.alert.resend-delay", &rbase.resend_delay_ms) ||
        flag_int("alertmanager.notification-queue-capacity", 1, &queue_cap) ||
        flag_int("ipmi.workers", 1, &ipmi_workers))
        return 1;
    if (ipmi_workers > 1024) {
        fprintf(stderr, "bongsu: error: invalid value \"%s\" for flag --ipmi.workers: at most 1024\n",
                flag_value("ipmi.workers"));
        return 1;
    }
    qopts.max_concurrency = (int)conc;
    if (read_timeout_ms <= 0) {
        fprintf(stderr, "bongsu: error: invalid value \"%s\" for flag --web.read-timeout: must be positive\n",
                flag_value("web.read-timeout"));
        return 1;
    }
    uint64_t retention_size = 0;
    if (parse_base2_bytes(flag_value("storage.tsdb.retention.size"), &retention_size) != 0) {
        fprintf(stderr, "bongsu: error: invalid value \"%s\" for flag --storage.tsdb.retention.size: "
                "expected a size such as 512MB or 10GB\n", flag_value("storage.tsdb.retention.size"));
        return 1;
    }
    topts.retention_bytes = (int64_t)retention_size;
    if (flag_value("storage.tsdb.max-block-duration")[0] &&
        flag_duration("storage.tsdb.max-block-duration", &topts.max_block_range_ms))
        return 1;
    if (topts.block_range_ms <= 0) {
        fprintf(stderr, "bongsu: error: invalid value \"%s\" for flag --storage.tsdb.min-block-duration: must be positive\n",
                flag_value("storage.tsdb.min-block-duration"));
        return 1;
    }
    char *external_url = NULL;
    const char *route_prefix = NULL;
    if (web_urls(flag_value("web.listen-address"), &external_url, &route_prefix) != 0)
        return 1;

    /* /api/v1/status/flags: every flag with its effective value. */
    const char *flag_pairs[2 * NFLAGS + 1];
    size_t nf = 0;
    for (size_t i = 0; i < NFLAGS; i++) {
        const char *v = server_flags[i].value ? server_flags[i].value : "";
        if (strcmp(server_flags[i].name, "web.route-prefix") == 0)
            v = route_prefix;
        flag_pairs[nf++] = server_flags[i].name;
        flag_pairs[nf++] = v;
    }
    flag_pairs[nf] = NULL;

    /* Signals are handled by sigwait in the main thread only: block them
     * before any thread starts so every thread inherits the mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    BS_INFO("main", "Starting bongsu version %s (revision %s)", BS_VERSION, BS_REVISION);
    BS_INFO("main", "External URL %s, route prefix %s", external_url, route_prefix);

    struct app app = {.config_path = flag_value("config.file"),
                      .rules_base = rbase,
                      .queue_capacity = (size_t)queue_cap};
    app.rules_base.external_url = external_url;
    pthread_mutex_init(&app.mu, NULL);
    app.reload_ok = bs_metric_register(BS_METRIC_GAUGE, "bongsu_config_last_reload_successful",
                                       "Whether the last configuration reload attempt was successful.", NULL);
    app.reload_time = bs_metric_register(BS_METRIC_GAUGE, "bongsu_config_last_reload_success_timestamp_seconds",
                                         "Timestamp of the last successful configuration reload.", NULL);
    if (load_config(app.config_path, &app.cfg, &err) != 0) {
        const char *shown = app.config_path[0] ? app.config_path : "<default>";
        BS_ERROR("main", "Error loading config (--config.file=%s): %s", shown, err.msg);
        fprintf(stderr, "bongsu: error loading config from \"%s\": %s\n", shown, err.msg);
        pthread_mutex_destroy(&app.mu);
        free(external_url);
        return 1;
    }
    bs_metric_set(app.reload_ok, 1);
    bs_metric_set(app.reload_time, (double)bs_now_ms() / 1000.0);

    int64_t t0 = bs_monotonic_ns();
    struct tsdb *db = NULL;
    if (tsdb_open(&db, &topts, &err) != 0) {
        BS_ERROR("main", "Opening storage failed: %s", err.msg);
        config_free(app.cfg);
        free(external_url);
        return 1;
    }
    BS_INFO("main", "TSDB started in %.3fs (path %s)", (double)(bs_monotonic_ns() - t0) / 1e9,
            topts.dir);

    struct ingest_push *push = NULL; /* the Pushgateway API's groups */
    struct promql_engine *engine = promql_engine_new(&qopts);
    app.scrape = scrape_manager_new(db);
    int exit_code = 0;
    if (!engine || !app.scrape) {
        BS_ERROR("main", "Out of memory starting the query engine or the scrape manager");
        exit_code = 1;
        goto out;
    }
    struct rules_manager_opts ropts;
    rules_opts_for(&app.rules_base, app.cfg, &ropts);
    if (rules_manager_new(&app.rules, db, engine, &ropts, &err) != 0) {
        BS_ERROR("main", "Starting the rules manager failed: %s", err.msg);
        exit_code = 1;
        goto out;
    }
    struct ipmi_collector_options iopts = {.data_dir = topts.dir,
                                           .db = db,
                                           .workers = (unsigned)ipmi_workers,
                                           .retention_ms = topts.retention_ms};
    if (ipmi_collector_new(&app.ipmi, &iopts, &err) != 0) {
        BS_ERROR("main", "Starting the IPMI collector failed: %s", err.msg);
        exit_code = 1;
        goto out;
    }
    if (!(app.ipmi_sd = scrape_discovery_new(on_ipmi_discovery, &app))) {
        BS_ERROR("main", "Out of memory starting the IPMI service discovery");
        exit_code = 1;
        goto out;
    }

    struct cmd_remote_write rw = {.db = db};
    ingest_limits_default(&rw.limits);
    rw.enabled = flags_bool(flags_find(server_flags, NFLAGS, "web.enable-remote-write-receiver"));
    if (ingest_push_new(&push, db, topts.dir, app.cfg->scrape_interval_ms, NULL, &err) != 0) {
        BS_ERROR("main", "Starting the Pushgateway API failed: %s", err.msg);
        exit_code = 1;
        goto out;
    }
    struct http_raw_route raw_routes[2 + CMD_PUSH_ROUTES + CMD_INFLUX_ROUTES];
    size_t nraw = 0, nadd = 0;
    cmd_remote_write_route(&raw_routes[nraw++], &rw);
    cmd_push_routes(&raw_routes[nraw], &nadd, push);
    nraw += nadd;
    cmd_influx_routes(&raw_routes[nraw], &nadd, &rw);
    nraw += nadd;
    cmd_ipmi_events_route(&raw_routes[nraw++], app.ipmi);
    bool lifecycle = flags_bool(flags_find(server_flags, NFLAGS, "web.enable-lifecycle"));

    struct http_server_opts hopts;
    http_server_opts_default(&hopts);
    hopts.listen_address = flag_value("web.listen-address");
    hopts.db = db;
    hopts.engine = engine;
    hopts.enable_admin_api = flags_bool(flags_find(server_flags, NFLAGS, "web.enable-admin-api"));
    hopts.targets = targets_cb;
    hopts.targets_ud = &app;
    hopts.rules = rules_cb;
    hopts.rules_ud = &app;
    hopts.alerts = alerts_cb;
    hopts.alerts_ud = &app;
    hopts.targets_metadata = targets_metadata_cb;
    hopts.targets_metadata_ud = &app;
    hopts.metadata = metadata_cb;
    hopts.metadata_ud = &app;
    hopts.reload = lifecycle ? reload_cb : NULL;
    hopts.reload_ud = &app;
    hopts.quit = lifecycle ? quit_cb : NULL;
    hopts.quit_ud = &app;
    hopts.raw_routes = raw_routes;
    hopts.nraw_routes = nraw;
    hopts.config_yaml = app.cfg->source;
    hopts.version = BS_VERSION;
    hopts.revision = BS_REVISION;
    hopts.branch = BS_BRANCH;
    hopts.build_user = BS_BUILD_USER;
    hopts.build_date = BS_BUILD_DATE;
    hopts.flags = flag_pairs;
    hopts.storage_retention = flag_value("storage.tsdb.retention.time");
    hopts.lookback_ms = qopts.lookback_ms;
    hopts.max_body_bytes = 8u << 20;
    hopts.max_connections = max_conns > 0 ? (unsigned)(max_conns > 65536 ? 65536 : max_conns) : 65536;
    hopts.read_timeout_ms = read_timeout_ms;
    if (http_server_start(&app.http, &hopts, &err) != 0) {
        BS_ERROR("main", "Error starting web server: %s", err.msg);
        exit_code = 1;
        goto out;
    }
    BS_INFO("main", "Listening on %s", hopts.listen_address);
    if (rw.enabled)
        BS_INFO("main", "Remote write receiver enabled at /api/v1/write");

    pthread_mutex_lock(&app.mu);
    int arc = app_apply(&app, app.cfg, NULL, &err);
    pthread_mutex_unlock(&app.mu);
    if (arc != 0) {
        BS_ERROR("main", "Error applying config: %s", err.msg);
        fprintf(stderr, "bongsu: error applying config: %s\n", err.msg);
        exit_code = 1;
        goto out;
    }
    rules_manager_start(app.rules);
    http_server_set_ready(app.http, true);
    BS_INFO("main", "Server is ready to receive web requests.");

    for (;;) {
        int sig = 0;
        if (sigwait(&sigs, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            struct bs_error rerr = {0};
            app_reload(&app, &rerr); /* logs; a failure keeps the running config */
            continue;
        }
        BS_WARN("main", "Received %s, exiting gracefully...", sig == SIGINT ? "SIGINT" : "SIGTERM");
        break;
    }

out:
    /* Rule evaluations stop first (with their last notifications), then
     * the API, whose handlers read the scrape manager, the rules manager
     * and the IPMI collector; then scraping and BMC polls (cursors are
     * persisted), and the storage they all write to last. */
    if (app.http)
        http_server_set_ready(app.http, false);
    if (app.rules)
        rules_manager_stop(app.rules);
    if (app.http)
        http_server_stop(app.http);
    app.http = NULL;
    scrape_manager_free(app.scrape);
    scrape_discovery_free(app.ipmi_sd); /* its updates use the collector */
    ipmi_collector_free(app.ipmi);
    rules_manager_free(app.rules);
    ingest_push_free(push);
    promql_engine_free(engine);
    tsdb_close(db);
    config_free(app.ipmi_cfg);
    config_free(app.cfg);
    pthread_mutex_destroy(&app.mu);
    free(external_url);
    BS_INFO("main", "See you next time!");
    return exit_code;
}
