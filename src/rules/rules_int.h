/* SPDX-License-Identifier: Apache-2.0
 *
 * rules internals shared by the rule-file parser, the template engine, the
 * evaluator, the notifier and the module's unit tests. Nothing here is a
 * contract for other modules.
 */
#ifndef BONGSU_RULES_INT_H
#define BONGSU_RULES_INT_H

#include <pthread.h>

#include "rules/rules.h"

/* ------------------------------------------------------------ rule files */

/* A list of name/value pairs sorted by name, names unique. Unlike a label
 * set, values may be empty (annotations keep them; rule labels with an
 * empty value delete the label). Everything is malloc'd and released with
 * rules_kv_free. */
struct rules_kv {
    struct label *v;
    size_t n;
};
void rules_kv_free(struct rules_kv *kv);
int rules_kv_copy(struct rules_kv *dst, const struct rules_kv *src);
const char *rules_kv_get(const struct rules_kv *kv, const char *name);

struct rulefile_rule {
    bool alerting;
    char *name;                /* record: or alert: */
    char *expr;
    int64_t for_ms;
    int64_t keep_firing_for_ms;
    struct rules_kv labels;    /* templates for alerting rules */
    struct rules_kv annotations;
    int line, col;             /* of the rule's mapping */
};

struct rulefile_group {
    char *name;
    char *file;
    int64_t interval_ms;       /* 0: the manager's default */
    int64_t query_offset_ms;
    int64_t limit;             /* 0: none */
    struct rules_kv labels;    /* added to every rule's labels (rule wins) */
    struct rulefile_rule *rules;
    size_t nrules;
};

struct rulefile {
    char *path;
    struct rulefile_group *groups;
    size_t ngroups;
};

/* Parse and validate text[0..len) as the rule file path (used in
 * messages and recorded as each group's file). On success *out is the
 * parsed file (free with rulefile_free) and 0 is returned. On failure *out
 * is NULL, the first error's code is returned and every message (prefixed
 * "path: ") is appended to errs, one malloc'd string each (the caller
 * frees them and the array). */
int rulefile_parse(const char *text, size_t len, const char *path, struct rulefile **out,
                   char ***errs, size_t *nerrs);
/* Read path and parse it (BS_ENOENT/BS_EIO/BS_ELIMIT when unreadable). */
int rulefile_load(const char *path, struct rulefile **out, char ***errs, size_t *nerrs);
void rulefile_free(struct rulefile *f);

/* ------------------------------------------------------------ templates */

/* The data an alert's templates see. */
struct rules_tmpl_data {
    const struct labels *labels;          /* $labels / .Labels (sample labels) */
    const struct labels *external_labels; /* $externalLabels; may be NULL */
    const char *external_url;             /* $externalURL; may be NULL */
    double value;                         /* $value / .Value */
    /* For the query function: NULL engine disables it ("query" fails). */
    struct promql_engine *engine;
    struct tsdb *db;
    int64_t ts_ms;
};

/* Expand text as Prometheus expands alert templates: the variables
 * $labels, $externalLabels, $externalURL and $value are predefined, and
 * missing map keys give "". name is the template's name in messages
 * ("__alert_X"). On success appends the result to out and returns 0. On
 * failure returns BS_EPARSE (the text does not parse) or BS_EEXEC (running
 * it failed) with Go's message in err, e.g. "error executing template
 * __alert_X: template: __alert_X:1:98: executing \"__alert_X\" at <first>:
 * error calling first: first() called on vector with no elements"; out
 * may then hold partial output, which callers discard. */
int rules_template_expand(const char *name, const char *text, const struct rules_tmpl_data *d,
                          struct bs_buf *out, struct bs_error *err);
/* Only parse (rule-file validation): 0 or BS_EPARSE with Go's parse
 * message ("template: __alert_X:1: function \"foo\" not defined"). */
int rules_template_check(const char *name, const char *text, struct bs_error *err);

/* Go's fmt %.4g (with "NaN", "+Inf", "-Inf"). Returns length. */
size_t rules_fmt_4g(double v, char *dst, size_t cap);
/* Go's strconv.FormatFloat(v, 'e', -1, 64): "1e+00", "1.5e-07". */
size_t rules_fmt_float_e(double v, char *dst, size_t cap);

/* ----------------------------------------------------------- evaluation */

enum rules_alert_state { RULES_ALERT_INACTIVE = 0, RULES_ALERT_PENDING, RULES_ALERT_FIRING };
enum rules_health { RULES_HEALTH_UNKNOWN = 0, RULES_HEALTH_OK, RULES_HEALTH_ERR };

/* An alert of an alerting rule. Times in Unix ns (evaluation timestamps
 * keep Prometheus's nanosecond alignment); 0 means Go's zero time. */
struct rules_alert {
    uint64_t hash;                 /* of labels */
    struct labels *labels;         /* labels_dup; free() */
    struct rules_kv annotations;
    enum rules_alert_state state;
    double value;
    int64_t active_at, fired_at, resolved_at, last_sent_at, valid_until, keep_firing_since;
};

/* A series written by the previous evaluation of a rule. */
struct rules_series {
    uint64_t hash;
    struct labels *labels;         /* labels_dup; free() */
};

struct rules_rule {
    struct rulefile_rule def;
    char *query;                   /* the expression's canonical text */
    /* alerting */
    struct rules_alert *alerts;
    size_t nalerts, calerts;
    bool restored;
    /* last evaluation */
    enum rules_health health;
    char *last_error;              /* NULL when none */
    double eval_seconds;
    int64_t last_eval_ns;          /* wall clock; 0: never */
    /* staleness */
    struct rules_series *prev;
    size_t nprev;
};

struct rules_group {
    struct rules_manager *m;
    char *name, *file;
    int64_t interval_ms, query_offset_ms, limit;
    struct rules_rule *rules;
    size_t nrules;
    pthread_mutex_t mu;            /* guards rules' state and the fields below */
    double eval_seconds;
    int64_t last_eval_ns;          /* wall clock of the last iteration's start */
    int64_t last_eval_ts_ns;       /* evaluation timestamp of the last iteration */
    bool should_restore;
    /* thread */
    pthread_t thread;
    bool running;
    bool stopping;                 /* under m->run_mu */
    struct bs_metric *m_missed, *m_duration, *m_last_duration, *m_rules;
};

struct rules_notifier;

struct rules_manager {
    struct tsdb *db;
    struct promql_engine *engine;
    pthread_mutex_t opts_mu;       /* guards the option fields */
    struct labels *external_labels;
    char *external_url;
    int64_t default_interval_ms, resend_delay_ms, outage_tolerance_ms, grace_period_ms;
    pthread_rwlock_t groups_lock;  /* guards groups/ngroups (the array, not the groups) */
    struct rules_group **groups;
    size_t ngroups;
    pthread_mutex_t life_mu;       /* start/stop/load/free serialised */
    pthread_mutex_t run_mu;        /* guards `stopping` of groups; with run_cv */
    pthread_cond_t run_cv;         /* group threads sleep on it */
    bool started;                  /* under life_mu */
    bool loaded_once;              /* later loads do not restore `for` state */
    struct rules_notifier *notifier;
};

/* Prometheus's evaluation timestamp alignment: the latest time <= now_ns
 * that is offset (XXH64 of the labels {file, name} modulo interval) past a
 * multiple of the interval. Returns ns. */
int64_t rules_group_eval_timestamp(const char *file, const char *name, int64_t interval_ms,
                                   int64_t now_ns);
/* Evaluate every rule of group idx (in the sorted order of the rules API:
 * by file, then name) at ts_ms, as one iteration of its thread would.
 * Returns 0 or BS_ENOENT for a bad index. For tests and benchmarks. */
int rules_manager_eval_group_at(struct rules_manager *m, size_t idx, int64_t ts_ms);
/* Restore `for` state of group idx as if the server had just started, at
 * ts_ms (Prometheus's RestoreForState). */
int rules_manager_restore_group_at(struct rules_manager *m, size_t idx, int64_t ts_ms);
/* Mark every alerting rule of every group restored (so ALERTS series are
 * written from the first evaluation), for tests. */
void rules_manager_mark_restored(struct rules_manager *m);
/* One iteration at ts_ns (caller holds no lock). */
void rules_group_eval(struct rules_group *g, int64_t ts_ns);
void rules_group_restore(struct rules_group *g, int64_t ts_ns);
/* Write staleness markers at ts_ms for every series g wrote last. */
void rules_group_mark_stale(struct rules_group *g, int64_t ts_ms);
/* Move alerts and last series of matching rules (same name and labels)
 * from `from` into g, as Prometheus's CopyState. */
void rules_group_copy_state(struct rules_group *g, struct rules_group *from);
/* Build a runtime group from a parsed one (deep copy). */
struct rules_group *rules_group_new(struct rules_manager *m, const struct rulefile_group *fg,
                                    bool restored);
void rules_group_free(struct rules_group *g);

/* ------------------------------------------------------------- notifier */

/* One alert handed to the notifier; the notifier takes ownership of the
 * malloc'd members. */
struct rules_notify_alert {
    struct labels *labels;
    struct rules_kv annotations;
    int64_t starts_at, ends_at;    /* ms; 0 = Go zero time */
    char *generator_url;
};
struct rules_notifier *rules_notifier_new(const struct rules_notifier_config *nc,
                                          struct bs_error *err);
int rules_notifier_configure(struct rules_notifier *n, const struct rules_notifier_config *nc,
                             struct bs_error *err);
void rules_notifier_free(struct rules_notifier *n);
/* Queue alerts[0..n) (ownership of their members passes to the notifier):
 * external labels are added where absent, alert_relabel_configs applied,
 * the oldest queued alerts dropped when the queue is full. */
void rules_notifier_send(struct rules_notifier *n, const struct labels *external_labels,
                         struct rules_notify_alert *alerts, size_t nalerts);
/* Wait until the queue is empty and no batch is in flight, at most
 * timeout_ms. Returns true when drained. */
bool rules_notifier_flush(struct rules_notifier *n, int64_t timeout_ms);
void rules_notifier_stats(struct rules_notifier *n, uint64_t *sent, uint64_t *errors,
                          uint64_t *dropped, size_t *queue_len);
/* Append the Alertmanager API v2 body for alerts[0..n). */
int rules_notifier_payload(const struct rules_notify_alert *alerts, size_t n, struct bs_buf *out);
void rules_notify_alert_fini(struct rules_notify_alert *a);

/* ---------------------------------------------------------------- misc */

/* Append t (Unix ns) as Go's time.Time JSON (RFC 3339 with up to 9
 * fraction digits, trailing zeros trimmed, "Z"); 0 is Go's zero time
 * "0001-01-01T00:00:00Z". */
int rules_json_time_ns(struct bs_buf *b, int64_t ns);
/* Append v as Go's encoding/json writes a float64. */
int rules_json_float(struct bs_buf *b, double v);
int64_t rules_now_ns(void);

#endif
