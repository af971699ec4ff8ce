/* SPDX-License-Identifier: Apache-2.0
 *
 * rules: recording and alerting rules, as Prometheus 2.42 runs them, and the
 * notifier that sends alerts to Alertmanager (API v2).
 *
 * A rules manager owns groups loaded from Prometheus rule files (parsed
 * here with libyaml, with file:line:column errors in promtool's words).
 * Each group runs in its own thread on its interval, aligned as Prometheus
 * aligns it (an offset from a hash of file and group name); the rules of a
 * group run in order at one evaluation timestamp, and the output of each is
 * committed before the next runs, so a rule may use the one before it.
 * Recording outputs, ALERTS and ALERTS_FOR_STATE are written through the
 * tsdb appender, with staleness markers when a series stops. Alerts go to
 * the notifier's bounded queue; one notifier thread sends them in batches.
 *
 * Thread safety: every function may be called from any thread, except that
 * rules_manager_free must not race with anything else on the manager.
 * See docs/alerting.md for the user's view.
 */
#ifndef BONGSU_RULES_H
#define BONGSU_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "labels/labels.h"
#include "promql/promql.h"
#include "tsdb/tsdb.h"
#include "util/util.h"

/* Prometheus's defaults. */
#define RULES_DEFAULT_INTERVAL_MS INT64_C(60000)         /* global evaluation_interval */
#define RULES_DEFAULT_RESEND_DELAY_MS INT64_C(60000)     /* --rules.alert.resend-delay */
#define RULES_DEFAULT_OUTAGE_TOLERANCE_MS INT64_C(3600000) /* --rules.alert.for-outage-tolerance */
#define RULES_DEFAULT_GRACE_PERIOD_MS INT64_C(600000)    /* --rules.alert.for-grace-period */
#define RULES_DEFAULT_QUEUE_CAPACITY 10000               /* --alertmanager.notification-queue-capacity */
#define RULES_DEFAULT_AM_TIMEOUT_MS INT64_C(10000)       /* alertmanagers[].timeout */
/* Alerts per POST to an Alertmanager (Prometheus's maxBatchSize). */
#define RULES_NOTIFY_BATCH_MAX 64
/* A resolved alert is kept (and re-sent) this long, as Prometheus does. */
#define RULES_RESOLVED_RETENTION_MS INT64_C(900000)
/* Largest rule file accepted (bytes) and most groups + rules per file. */
#define RULES_FILE_MAX_SIZE (16u * 1024u * 1024u)
#define RULES_FILE_MAX_ITEMS (1u << 20)

/* One entry of alerting.alertmanagers, already mapped from YAML by the
 * caller. Every pointer is borrowed for the duration of the call that takes
 * it; the manager keeps copies. */
struct rules_alertmanager_config {
    const char *scheme;                 /* "http" (NULL) or "https" */
    const char *path_prefix;            /* NULL or "" = none; "/am" gives /am/api/v2/alerts */
    const char *const *targets;         /* "host:port", ntargets of them */
    size_t ntargets;
    int64_t timeout_ms;                 /* <= 0: RULES_DEFAULT_AM_TIMEOUT_MS */
    const char *username;               /* basic auth when non-NULL */
    const char *password;
    const char *bearer_token;           /* "Authorization: Bearer ..." when non-NULL */
    const char *ca_file;                /* TLS: CA bundle; NULL = system */
    const char *cert_file, *key_file;   /* TLS client certificate */
    bool insecure_skip_verify;
};

/* The notifier's configuration. relabel configs are borrowed during the
 * call and copied (re-compiled) by the manager. */
struct rules_notifier_config {
    const struct rules_alertmanager_config *alertmanagers;
    size_t nalertmanagers;
    const struct labels_relabel_config *alert_relabel_configs;
    size_t nalert_relabel_configs;
    size_t queue_capacity;              /* 0: RULES_DEFAULT_QUEUE_CAPACITY */
};

struct rules_manager_opts {
    const struct labels *external_labels; /* NULL = none; copied */
    const char *external_url;           /* generatorURL prefix and $externalURL; NULL = "" */
    int64_t default_interval_ms;        /* groups without interval; <= 0: 1m */
    int64_t resend_delay_ms;            /* <= 0: 1m */
    int64_t outage_tolerance_ms;        /* <= 0: 1h */
    int64_t grace_period_ms;            /* <= 0: 10m */
    struct rules_notifier_config notifier;
};
/* All defaults, no Alertmanager. */
void rules_manager_opts_default(struct rules_manager_opts *o);

struct rules_manager;

/* Create a manager evaluating against db with engine (both borrowed; they
 * must outlive the manager). Copies everything in opts. Starts the notifier
 * thread, not the groups. Returns 0, BS_EINVAL (err says which setting:
 * a relabel config that does not re-compile, a scheme not http/https) or
 * BS_ENOMEM. */
int rules_manager_new(struct rules_manager **out, struct tsdb *db, struct promql_engine *engine,
                      const struct rules_manager_opts *opts, struct bs_error *err);

/* Replace the notifier configuration (on a configuration reload). Queued
 * alerts are kept and go to the new Alertmanagers. Same errors as new. */
int rules_manager_set_notifier(struct rules_manager *m, const struct rules_notifier_config *nc,
                               struct bs_error *err);
/* Replace the external labels, URL and timings (on reload). */
int rules_manager_set_options(struct rules_manager *m, const struct rules_manager_opts *opts,
                              struct bs_error *err);

/* Load the rule files matching globs[0..n) (glob(3) patterns; a pattern
 * matching nothing is not an error, as in Prometheus) and replace the
 * manager's groups with theirs. All-or-nothing: on any error the current
 * groups keep running and err holds the first message, e.g.
 *   "rules/a.yml: 5:11: group \"x\", rule 2, \"y\": could not parse
 *    expression: 1:5: parse error: unexpected <op:+>"
 * Groups that existed before (same file and name) keep their alerts'
 * state and their last series, so no alert restarts its `for` on reload;
 * removed groups write staleness markers for their series. If the manager
 * is running, new groups start at once. Returns 0, BS_ENOENT/BS_EIO (a file
 * cannot be read), BS_EPARSE (YAML or expression), BS_EINVAL (validation),
 * BS_ELIMIT or BS_ENOMEM. */
int rules_manager_load(struct rules_manager *m, const char *const *globs, size_t n,
                       struct bs_error *err);

/* Start evaluating every group on its schedule (one thread per group). The
 * first iteration runs at the group's next aligned time; after the second,
 * `for` state is restored from ALERTS_FOR_STATE. Idempotent. */
int rules_manager_start(struct rules_manager *m);
/* Stop every group thread (waits for running evaluations) and flush what
 * the notifier can send within one timeout. Idempotent; start may follow. */
void rules_manager_stop(struct rules_manager *m);
/* Stop and free. NULL allowed. */
void rules_manager_free(struct rules_manager *m);

/* Filters of /api/v1/rules. Empty lists mean "no filter". */
enum rules_type_filter { RULES_TYPE_ALL = 0, RULES_TYPE_ALERT, RULES_TYPE_RECORD };
struct rules_filters {
    enum rules_type_filter type;        /* ?type=alert|record */
    const char *const *rule_names;      /* rule_name[] */
    size_t nrule_names;
    const char *const *group_names;     /* rule_group[] / group_name[] */
    size_t ngroup_names;
    const char *const *files;           /* file[] */
    size_t nfiles;
    bool exclude_alerts;                /* exclude_alerts=true */
};

/* Append the "data" object of /api/v1/rules as Prometheus writes it:
 * {"groups":[{"name":..,"file":..,"rules":[..],"interval":15,"limit":0,
 * "evaluationTime":..,"lastEvaluation":".."}]}. filters may be NULL.
 * Returns 0 or the buffer's error. */
int rules_manager_rules_json(struct rules_manager *m, const struct rules_filters *filters,
                             struct bs_buf *out);
/* Append the "data" object of /api/v1/alerts: {"alerts":[...]} with every
 * pending and firing alert. */
int rules_manager_alerts_json(struct rules_manager *m, struct bs_buf *out);

/* Counts for self-checks and tests. */
struct rules_manager_stats {
    size_t groups, rules;
    uint64_t evaluations, evaluation_failures, iterations_missed;
    uint64_t notifications_sent, notifications_errors, notifications_dropped;
    size_t queue_length;
};
void rules_manager_stats(struct rules_manager *m, struct rules_manager_stats *out);

/* promtool's `check rules FILE`: parse and validate path, appending to
 * report what promtool prints:
 *   "Checking FILE\n  SUCCESS: N rules found\n\n"
 * or "Checking FILE\n  FAILED:\nFILE: 5:11: group ...\n\n" (one line per
 * error). Returns 0 when the file is valid, else the first error's code
 * with its message in err. */
int rules_check_file(const char *path, struct bs_buf *report, struct bs_error *err);

#endif
