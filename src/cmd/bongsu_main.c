/* SPDX-License-Identifier: Apache-2.0
 *
 * bongsu: the server. Thin by design: parse Prometheus-compatible flags,
 * load the configuration, open storage (replaying the WAL), start the query
 * engine, the scrape manager and the HTTP API, then wait for signals:
 * SIGHUP reloads the configuration, SIGINT/SIGTERM shut down cleanly.
 */
#include <errno.h>
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
#include "promql/promql.h"
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
    {"web.enable-admin-api", FLAG_BOOL, "false", "Enable API endpoints for admin control actions (accepted; the admin endpoints are not there yet).", NULL, false},
    {"web.external-url", FLAG_STRING, "", "The URL under which bongsu is externally reachable (e.g. behind a reverse proxy). Defaults to http://<hostname>:<port>/.", NULL, false},
    {"web.route-prefix", FLAG_STRING, "", "Prefix for the internal routes of web endpoints. Defaults to the path of --web.external-url; only \"/\" is supported for now.", NULL, false},
    {"web.max-connections", FLAG_STRING, "512", "Maximum number of simultaneous connections.", NULL, false},
    {"web.read-timeout", FLAG_STRING, "5m", "Maximum duration a connection may stay idle (reading the request or waiting for the next one).", NULL, false},
    {"storage.tsdb.retention.size", FLAG_STRING, "0B", "Maximum number of bytes of storage to retain (WAL and blocks); the oldest blocks are dropped first. 0 disables. Units: B, KB, MB, GB, TB, PB, EB (base 2).", NULL, false},
    {"storage.tsdb.min-block-duration", FLAG_STRING, "2h", "Minimum duration of a data block before being persisted (the head's block range).", NULL, false},
    {"storage.tsdb.max-block-duration", FLAG_STRING, "", "Maximum duration compacted blocks may span. Defaults to 10% of the retention period, at most 31d.", NULL, false},
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

static int targets_cb(void *ud, const char *state, struct bs_buf *out)
{
    return scrape_manager_targets_json(ud, state, out);
}

/* ---------------------------------------------------------------- reload */

/* What a reload works on. SIGHUP (main thread) and POST /-/reload (an HTTP
 * worker thread) both go through app_reload(), serialised by mu. */
struct app {
    pthread_mutex_t mu;
    const char *config_path; /* borrowed from argv or the flag default */
    struct config *cfg;      /* the running configuration; owned */
    struct scrape_manager *scrape;
    struct http_server *http; /* NULL until started */
    struct bs_metric *reload_ok, *reload_time;
};

/* Load the configuration file again and apply it to the scrape manager.
 * On success the new configuration replaces the old one, also in
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
    } else if ((rc = scrape_manager_apply_config(a->scrape, ncfg, &e)) != 0) {
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
    int64_t conc = 0, max_conns = 0, read_timeout_ms = 0;
    if (flag_duration("storage.tsdb.retention.time", &topts.retention_ms) ||
        flag_duration("storage.tsdb.min-block-duration", &topts.block_range_ms) ||
        flag_duration("storage.tsdb.wal-fsync-interval", &topts.wal_fsync_interval_ms) ||
        flag_duration("query.lookback-delta", &qopts.lookback_ms) ||
        flag_duration("query.timeout", &qopts.timeout_ms) ||
        flag_int("query.max-samples", 1, &qopts.max_samples) ||
        flag_int("query.max-concurrency", 1, &conc) ||
        flag_int("web.max-connections", 0, &max_conns) ||
        flag_duration("web.read-timeout", &read_timeout_ms))
        return 1;
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
    if (flags_bool(flags_find(server_flags, NFLAGS, "web.enable-admin-api")))
        BS_WARN("main", "--web.enable-admin-api is accepted, but the admin API endpoints are not "
                "there yet");

    struct app app = {.config_path = flag_value("config.file")};
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

    struct cmd_remote_write rw = {.db = db};
    ingest_limits_default(&rw.limits);
    rw.enabled = flags_bool(flags_find(server_flags, NFLAGS, "web.enable-remote-write-receiver"));
    if (ingest_push_new(&push, db, topts.dir, app.cfg->scrape_interval_ms, NULL, &err) != 0) {
        BS_ERROR("main", "Starting the Pushgateway API failed: %s", err.msg);
        exit_code = 1;
        goto out;
    }
    struct http_raw_route raw_routes[1 + CMD_PUSH_ROUTES + CMD_INFLUX_ROUTES];
    size_t nraw = 0, nadd = 0;
    cmd_remote_write_route(&raw_routes[nraw++], &rw);
    cmd_push_routes(&raw_routes[nraw], &nadd, push);
    nraw += nadd;
    cmd_influx_routes(&raw_routes[nraw], &nadd, &rw);
    nraw += nadd;
    bool lifecycle = flags_bool(flags_find(server_flags, NFLAGS, "web.enable-lifecycle"));

    struct http_server_opts hopts;
    http_server_opts_default(&hopts);
    hopts.listen_address = flag_value("web.listen-address");
    hopts.db = db;
    hopts.engine = engine;
    hopts.targets = targets_cb;
    hopts.targets_ud = app.scrape;
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
    int arc = scrape_manager_apply_config(app.scrape, app.cfg, &err);
    pthread_mutex_unlock(&app.mu);
    if (arc != 0) {
        BS_ERROR("main", "Error applying config: %s", err.msg);
        exit_code = 1;
        goto out;
    }
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
    if (app.http) {
        http_server_set_ready(app.http, false);
        http_server_stop(app.http);
    }
    scrape_manager_free(app.scrape);
    ingest_push_free(push);
    promql_engine_free(engine);
    tsdb_close(db);
    config_free(app.cfg);
    pthread_mutex_destroy(&app.mu);
    free(external_url);
    BS_INFO("main", "See you next time!");
    return exit_code;
}
