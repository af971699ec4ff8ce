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
#include <sys/utsname.h>
#include <unistd.h>

#include "cmd/flags.h"
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

static int load_config(const char *path, struct config **out)
{
    struct bs_error err = {0};
    int rc;
    if (path && path[0])
        rc = config_load_file(path, out, &err);
    else
        rc = config_load_string(config_default_yaml, strlen(config_default_yaml), "<default>", out,
                                &err);
    if (rc != 0) {
        BS_ERROR("main", "Error loading config (--config.file=%s): %s", path && path[0] ? path : "<default>",
                 err.msg);
        fprintf(stderr, "bongsu: error loading config from \"%s\": %s\n",
                path && path[0] ? path : "<default>", err.msg);
    }
    return rc;
}

static int targets_cb(void *ud, const char *state, struct bs_buf *out)
{
    return scrape_manager_targets_json(ud, state, out);
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
    int64_t conc = 0;
    if (flag_duration("storage.tsdb.retention.time", &topts.retention_ms) ||
        flag_duration("storage.tsdb.wal-fsync-interval", &topts.wal_fsync_interval_ms) ||
        flag_duration("query.lookback-delta", &qopts.lookback_ms) ||
        flag_duration("query.timeout", &qopts.timeout_ms) ||
        flag_int("query.max-samples", 1, &qopts.max_samples) ||
        flag_int("query.max-concurrency", 1, &conc))
        return 1;
    qopts.max_concurrency = (int)conc;

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

    const char *config_path = flag_value("config.file");
    struct config *cfg = NULL;
    if (load_config(config_path, &cfg) != 0)
        return 1;

    int64_t t0 = bs_monotonic_ns();
    struct tsdb *db = NULL;
    if (tsdb_open(&db, &topts, &err) != 0) {
        BS_ERROR("main", "Opening storage failed: %s", err.msg);
        config_free(cfg);
        return 1;
    }
    BS_INFO("main", "TSDB started in %.3fs (path %s)", (double)(bs_monotonic_ns() - t0) / 1e9,
            topts.dir);

    struct promql_engine *engine = promql_engine_new(&qopts);
    struct scrape_manager *scrape = scrape_manager_new(db);
    struct http_server *http = NULL;
    int exit_code = 0;
    if (!engine || !scrape) {
        BS_ERROR("main", "Out of memory starting the query engine or the scrape manager");
        exit_code = 1;
        goto out;
    }

    struct http_server_opts hopts = {
        .listen_address = flag_value("web.listen-address"),
        .db = db,
        .engine = engine,
        .targets = targets_cb,
        .targets_ud = scrape,
        .config_yaml = cfg->source,
        .version = BS_VERSION,
        .revision = BS_REVISION,
        .branch = BS_BRANCH,
        .build_date = BS_BUILD_DATE,
        .lookback_ms = qopts.lookback_ms,
        .max_body_bytes = 8u << 20,
    };
    if (http_server_start(&http, &hopts, &err) != 0) {
        BS_ERROR("main", "Error starting web server: %s", err.msg);
        exit_code = 1;
        goto out;
    }
    BS_INFO("main", "Listening on %s", hopts.listen_address);

    if (scrape_manager_apply_config(scrape, cfg, &err) != 0) {
        BS_ERROR("main", "Error applying config: %s", err.msg);
        exit_code = 1;
        goto out;
    }
    http_server_set_ready(http, true);
    BS_INFO("main", "Server is ready to receive web requests.");

    for (;;) {
        int sig = 0;
        if (sigwait(&sigs, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            struct config *ncfg = NULL;
            BS_INFO("main", "Loading configuration file %s",
                    config_path && config_path[0] ? config_path : "<default>");
            if (load_config(config_path, &ncfg) != 0) {
                BS_ERROR("main", "Reload refused; keeping the running configuration");
                continue;
            }
            if (scrape_manager_apply_config(scrape, ncfg, &err) != 0) {
                BS_ERROR("main", "Reload failed: %s; keeping the running configuration", err.msg);
                config_free(ncfg);
                continue;
            }
            /* The HTTP server copied config_yaml at start; the served text
             * is refreshed when reload lands fully (scrape issue). */
            config_free(cfg);
            cfg = ncfg;
            BS_INFO("main", "Completed loading of configuration file");
            continue;
        }
        BS_WARN("main", "Received %s, exiting gracefully...", sig == SIGINT ? "SIGINT" : "SIGTERM");
        break;
    }

out:
    if (http)
        http_server_stop(http);
    scrape_manager_free(scrape);
    promql_engine_free(engine);
    tsdb_close(db);
    config_free(cfg);
    BS_INFO("main", "See you next time!");
    return exit_code;
}
