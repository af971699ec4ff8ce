/* SPDX-License-Identifier: Apache-2.0
 *
 * config: loads prometheus.yml into plain C structs. The accepted subset is
 * Prometheus's own schema for the global section, scrape jobs, rule_files
 * and alerting, plus bongsu's ipmi_configs; every other key of Prometheus's
 * schema is accepted with a warning ("not supported yet"), and keys
 * Prometheus does not know either are errors. Every error names the file,
 * line and column (1-based) and the key, so a user can go straight to the
 * mistake. See docs/configuration.md.
 *
 * Ownership: a struct config returned by a loader is one self-contained tree
 * of heap memory owned by the caller and released with config_free(). All
 * strings in it are NUL-terminated and all label sets are non-NULL
 * labels_dup() copies (possibly empty). The struct is never modified after
 * loading, so it may be read by several threads at once.
 */
#ifndef BONGSU_CONFIG_H
#define BONGSU_CONFIG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "labels/labels.h"
#include "util/util.h"

/* Largest configuration text accepted (bytes); bigger inputs fail with
 * BS_ELIMIT. */
#define CONFIG_MAX_SIZE (16u * 1024u * 1024u)
/* Largest number of jobs, static configs, targets, labels and parameter
 * values together, counted after YAML aliases are expanded; past it loading
 * fails with BS_ELIMIT (guards against alias "billion laughs" inputs). */
#define CONFIG_MAX_ITEMS (1u << 20)

/* Prometheus defaults for the global section. */
#define CONFIG_DEFAULT_SCRAPE_INTERVAL_MS INT64_C(60000)
#define CONFIG_DEFAULT_SCRAPE_TIMEOUT_MS INT64_C(10000)
#define CONFIG_DEFAULT_EVALUATION_INTERVAL_MS INT64_C(60000)

/* One entry of a job's params: the URL query parameter name and its values
 * (a parameter may repeat, as in url.Values). */
struct config_param {
    char *name;
    char **values;
    size_t nvalues;
};

/* One element of static_configs: targets ("host:port" strings) and the
 * labels attached to all of them (labels_dup'd, release with free(); never
 * NULL, possibly empty; labels with empty values are dropped). */
struct config_static_config {
    char **targets;
    size_t ntargets;
    struct labels *labels;
};

/* Scrape limits (Prometheus's sample_limit, label_limit, ...). 0 means "no
 * limit"; a job's zero values are filled from the global section. */
struct config_limits {
    uint64_t sample_limit;             /* samples per scrape, after metric relabeling */
    uint64_t target_limit;             /* active targets per job, after relabeling */
    uint64_t label_limit;              /* labels per series, __name__ included */
    uint64_t label_name_length_limit;  /* bytes of a label name */
    uint64_t label_value_length_limit; /* runes (UTF-8 code points) of a value */
    int64_t body_size_limit;           /* bytes of the decoded body; <= 0: none */
};

/* TLS versions for tls_config.min_version. */
enum config_tls_version {
    CONFIG_TLS_DEFAULT = 0, /* not set: TLS 1.2, Go's client default */
    CONFIG_TLS_10,
    CONFIG_TLS_11,
    CONFIG_TLS_12,
    CONFIG_TLS_13,
};

/* tls_config. File names are absolute or relative to the directory of the
 * configuration file (as Prometheus resolves them); every named file
 * existed when the configuration was loaded. NULL means absent. ca, cert and
 * key are inline PEM texts, the alternatives of the *_file keys. */
struct config_tls {
    char *ca_file;
    char *ca;
    char *cert_file;
    char *cert;
    char *key_file;
    char *key;
    char *server_name;         /* name for SNI and certificate verification */
    bool insecure_skip_verify; /* default false */
    enum config_tls_version min_version;
    enum config_tls_version max_version; /* CONFIG_TLS_DEFAULT: no maximum */
};

/* The HTTP client settings of a job (Prometheus's HTTPClientConfig), after
 * its Validate(): bearer_token and bearer_token_file have become an
 * authorization of type "Bearer", as in Prometheus, so at most one of
 * has_basic_auth and has_authorization is set. Strings are NULL when absent;
 * file names are resolved like those of config_tls. */
struct config_http_client {
    bool has_basic_auth;
    char *username;      /* basic_auth */
    char *password;      /* basic_auth; never set together with password_file */
    char *password_file; /* basic_auth; read (and trimmed) at every scrape */
    bool has_authorization;
    char *auth_type;             /* default "Bearer" */
    char *auth_credentials;      /* never set together with auth_credentials_file */
    char *auth_credentials_file; /* read (and trimmed) at every scrape */
    struct config_tls tls;
    char *proxy_url;       /* NULL: no proxy (environment variables are ignored) */
    bool follow_redirects; /* default true */
    bool enable_http2;     /* default true */
};

/* Prometheus defaults of the service discovery refresh intervals. */
#define CONFIG_DEFAULT_FILE_SD_REFRESH_MS INT64_C(300000)
#define CONFIG_DEFAULT_HTTP_SD_REFRESH_MS INT64_C(60000)
#define CONFIG_DEFAULT_DNS_SD_REFRESH_MS INT64_C(30000)

/* One element of file_sd_configs. Each pattern is a file name whose last
 * component may hold one '*' and which ends in .json, .yml or .yaml (any
 * case), as Prometheus requires; relative names are resolved against the
 * directory of the configuration file. At least one pattern. */
struct config_file_sd {
    char **files;
    size_t nfiles;
    int64_t refresh_interval_ms; /* > 0; default 5m */
};

/* One element of http_sd_configs: the URL (http or https, with a host) that
 * serves a JSON list of target groups, and the HTTP client settings used to
 * fetch it (validated like a job's; bearer_token folded into
 * authorization). */
struct config_http_sd {
    char *url;
    int64_t refresh_interval_ms; /* > 0; default 60s */
    struct config_http_client http;
};

/* Record types of dns_sd_configs. */
enum config_dns_type {
    CONFIG_DNS_SRV = 0, /* default */
    CONFIG_DNS_A,
    CONFIG_DNS_AAAA,
    CONFIG_DNS_MX,
    CONFIG_DNS_NS,
};

/* One element of dns_sd_configs. port is required (non-zero) for every
 * type but SRV, whose records carry their own. At least one name. */
struct config_dns_sd {
    char **names;
    size_t nnames;
    enum config_dns_type type;
    uint16_t port;
    int64_t refresh_interval_ms; /* > 0; default 30s */
};

/* The exposition formats of Prometheus 3's scrape_protocols and
 * fallback_scrape_protocol. */
enum config_scrape_protocol {
    CONFIG_PROTO_NONE = 0,          /* no fallback_scrape_protocol */
    CONFIG_PROTO_OPENMETRICS_1_0_0, /* "OpenMetricsText1.0.0" */
    CONFIG_PROTO_OPENMETRICS_0_0_1, /* "OpenMetricsText0.0.1" */
    CONFIG_PROTO_PROMETHEUS_1_0_0,  /* "PrometheusText1.0.0" */
    CONFIG_PROTO_PROMETHEUS_0_0_4,  /* "PrometheusText0.0.4" */
    CONFIG_PROTO_PROMETHEUS_PROTO,  /* "PrometheusProto": accepted, never requested */
};
#define CONFIG_SCRAPE_PROTOCOLS_MAX 5

/* scrape_protocols (priority order, no duplicates, never empty after
 * loading: unset means the global list, whose default is OpenMetricsText1.0.0,
 * OpenMetricsText0.0.1, PrometheusText1.0.0, PrometheusText0.0.4) and
 * fallback_scrape_protocol (jobs only; CONFIG_PROTO_NONE when unset). A
 * plain value: copy it with '='. */
struct config_scrape_protocols {
    enum config_scrape_protocol list[CONFIG_SCRAPE_PROTOCOLS_MAX];
    size_t n;
    enum config_scrape_protocol fallback;
};

/* One scrape job, with the global defaults already applied: the interval and
 * timeout are always > 0 and timeout <= interval; metrics_path defaults to
 * "/metrics"; scheme is "http" or "https". Relabel configs are compiled and
 * validated (labels_relabel_config_init); they are immutable, so any thread
 * may apply them. */
struct config_scrape {
    char *job_name;
    int64_t scrape_interval_ms;
    int64_t scrape_timeout_ms;
    char *metrics_path;
    char *scheme;
    struct config_param *params;
    size_t nparams;
    bool honor_labels;     /* default false */
    bool honor_timestamps; /* default true */
    struct config_static_config *static_configs;
    size_t nstatic_configs;
    struct config_file_sd *file_sd_configs;
    size_t nfile_sd_configs;
    struct config_http_sd *http_sd_configs;
    size_t nhttp_sd_configs;
    struct config_dns_sd *dns_sd_configs;
    size_t ndns_sd_configs;
    struct labels_relabel_config *relabel_configs; /* applied to targets */
    size_t nrelabel_configs;
    struct labels_relabel_config *metric_relabel_configs; /* applied to scraped series */
    size_t nmetric_relabel_configs;
    struct config_limits limits;
    struct config_http_client http;
    struct config_scrape_protocols protocols; /* scrape_protocols, fallback_scrape_protocol */
};

/* Prometheus's default alertmanagers[].timeout. */
#define CONFIG_DEFAULT_ALERTMANAGER_TIMEOUT_MS INT64_C(10000)

/* One element of alerting.alertmanagers (Prometheus's AlertmanagerConfig).
 * api_version is always v2: "v1" is refused as Prometheus 3 refuses it.
 * Only static_configs discover Alertmanagers; the HTTP client settings are
 * validated like a scrape job's (bearer_token folded into authorization). */
struct config_alertmanager {
    char *scheme;      /* "http" (default) or "https" */
    char *path_prefix; /* "" (default) or e.g. "/am" */
    int64_t timeout_ms; /* > 0; default 10s */
    struct config_static_config *static_configs;
    size_t nstatic_configs;
    struct config_http_client http;
};

/* ipmi_configs[].driver and .privilege (bongsu's extension; docs/ipmi.md). */
enum config_ipmi_driver {
    CONFIG_IPMI_DRIVER_LAN_2_0 = 0, /* "LAN_2_0" (RMCP+, lanplus), the default */
    CONFIG_IPMI_DRIVER_LAN,         /* "LAN" (IPMI 1.5) */
};
enum config_ipmi_privilege {
    CONFIG_IPMI_PRIV_USER = 0, /* the default */
    CONFIG_IPMI_PRIV_OPERATOR,
    CONFIG_IPMI_PRIV_ADMIN,
};
#define CONFIG_DEFAULT_IPMI_CIPHER_SUITE 3

/* One ipmi_configs job: BMCs polled over IPMI LAN, shaped like a scrape
 * job. Interval and timeout have the global scrape defaults applied
 * (timeout < interval is enforced: a BMC poll must end before the next).
 * Targets are "host" or "host:port" (UDP port, default 623), from
 * static_configs and from file_sd_configs, http_sd_configs and
 * dns_sd_configs (decoded exactly as a scrape job's, with the same errors;
 * cmd runs them with the scrape module's discovery). Relabel configs are
 * compiled; they turn each target's labels (__address__, job, the static or
 * discovered labels such as __meta_filepath) into the target labels, as for
 * scrape targets. The workaround flag names were checked against the
 * driver. */
struct config_ipmi {
    char *job_name;
    int64_t scrape_interval_ms;
    int64_t scrape_timeout_ms;
    char *username;      /* NULL: the null user */
    char *password;      /* NULL when absent; never set with password_file */
    char *password_file; /* resolved against the configuration's directory */
    enum config_ipmi_driver driver;
    enum config_ipmi_privilege privilege;
    int cipher_suite_id; /* 0..17; default 3 */
    char **workaround_flags;
    size_t nworkaround_flags;
    struct config_static_config *static_configs;
    size_t nstatic_configs;
    struct config_file_sd *file_sd_configs;
    size_t nfile_sd_configs;
    struct config_http_sd *http_sd_configs;
    size_t nhttp_sd_configs;
    struct config_dns_sd *dns_sd_configs;
    size_t ndns_sd_configs;
    struct labels_relabel_config *relabel_configs;
    size_t nrelabel_configs;
};

/* A loaded configuration. */
struct config {
    int64_t scrape_interval_ms;     /* global; default 1m */
    int64_t scrape_timeout_ms;      /* global; default 10s (capped at the interval) */
    int64_t evaluation_interval_ms; /* global; default 1m */
    struct labels *external_labels; /* labels_dup'd; never NULL, possibly empty */
    struct config_limits limits;    /* global defaults of the job limits */
    struct config_scrape_protocols scrape_protocols; /* global; fallback unused */
    struct config_scrape *scrape_configs;
    size_t nscrape_configs;
    /* rule_files: glob patterns, relative ones joined to the directory of
     * the configuration file (as Prometheus's SetDirectory does). */
    char **rule_files;
    size_t nrule_files;
    /* alerting: where alerts go and how they are relabeled first. */
    struct config_alertmanager *alertmanagers;
    size_t nalertmanagers;
    struct labels_relabel_config *alert_relabel_configs;
    size_t nalert_relabel_configs;
    /* ipmi_configs: BMC jobs (bongsu only). */
    struct config_ipmi *ipmi_configs;
    size_t nipmi_configs;
    char *source; /* the YAML text as loaded, NUL-terminated */
    char *path;   /* file path, the name given, or "<default>" */
    /* One message per key that Prometheus knows but bongsu ignores, in file
     * order, e.g. "prometheus.yml:14:1: key rule_files is not supported yet
     * and is ignored". Each was also logged with BS_WARN at load time. */
    char **warnings;
    size_t nwarnings;
    atomic_size_t refs; /* references; see config_ref() */
};

/* The embedded default configuration: global scrape_interval and
 * evaluation_interval 15s, one job "prometheus" scraping localhost:9090. */
extern const char config_default_yaml[];

/* Read and load the YAML file at path. On success stores a new config in
 * *out (caller frees with config_free) and returns 0; config->path is a copy
 * of path. Relative file names inside the configuration (tls_config,
 * password_file, credentials_file, bearer_token_file) are resolved against
 * the directory of path. On failure *out is left NULL and one of these is returned, with
 * err (may be NULL) describing it as "path:line:col: message":
 *   BS_ENOENT  the file does not exist;
 *   BS_EIO     it cannot be opened or read;
 *   BS_ELIMIT  it is larger than CONFIG_MAX_SIZE, or expands past
 *              CONFIG_MAX_ITEMS;
 *   BS_EPARSE  YAML syntax error, unknown key or value of the wrong type;
 *   BS_EINVAL  a value that is well-formed but not allowed (bad duration,
 *              invalid label name, duplicate job name, timeout > interval,
 *              an invalid relabel config, conflicting HTTP client settings
 *              in Prometheus's words, a referenced file that does not
 *              exist: "error checking client cert file \"x\": stat x: no
 *              such file or directory");
 *   BS_ENOMEM  out of memory.
 * Keys known to Prometheus but not supported are logged and listed in
 * config->warnings; they never fail the load. */
int config_load_file(const char *path, struct config **out, struct bs_error *err);

/* Load YAML text yaml[0..len) (need not be NUL-terminated; borrowed, copied
 * into config->source). name is used in messages and copied into
 * config->path; NULL means "<string>". Returns and reports like
 * config_load_file(); relative file names inside stay relative to the
 * working directory. An empty document yields the defaults with no jobs. */
int config_load_string(const char *yaml, size_t len, const char *name, struct config **out,
                       struct bs_error *err);

/* Load config_default_yaml, with path "<default>". Same contract as
 * config_load_string(); fails only with BS_ENOMEM. */
int config_load_default(struct config **out, struct bs_error *err);

/* Find a job by name; returns a pointer into c (valid until config_free) or
 * NULL when absent. */
const struct config_scrape *config_scrape_find(const struct config *c, const char *job_name);

/* Take another reference to c (returned), for a holder that keeps it past
 * the call that lent it, such as the scrape manager's service discovery.
 * Every reference is dropped with config_free(). */
struct config *config_ref(struct config *c);

/* Drop one reference to what a loader returned (a loader returns one); the
 * last one releases everything. NULL is allowed. */
void config_free(struct config *c);

#endif
