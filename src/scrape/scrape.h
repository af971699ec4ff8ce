/* SPDX-License-Identifier: Apache-2.0
 *
 * scrape: pulls /metrics from the targets of the configuration and appends
 * the samples to the tsdb, with Prometheus's semantics: target labels (job,
 * instance, static labels), honor_labels and honor_timestamps, the synthetic
 * series (up, scrape_duration_seconds, scrape_samples_scraped,
 * scrape_samples_post_metric_relabeling, scrape_series_added), staleness
 * markers for series that disappear, and the /api/v1/targets view.
 *
 * One scrape manager owns one scrape thread that drives every target with a
 * libcurl multi handle; see the essay atop scrape_loop.c. All functions here
 * are safe to call from any thread, but apply_config and free must not race
 * with each other.
 */
#ifndef BONGSU_SCRAPE_H
#define BONGSU_SCRAPE_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "tsdb/tsdb.h"
#include "util/util.h"

/* Default cap on a decoded scrape body, for jobs without body_size_limit; a
 * body reaching it fails the scrape with "body size limit exceeded". */
#define SCRAPE_DEFAULT_BODY_SIZE_LIMIT ((size_t)64 << 20)

struct scrape_manager;

/* Create a manager that appends to db. db is borrowed and must outlive the
 * manager. No thread runs and nothing is scraped until the first
 * scrape_manager_apply_config(). Returns NULL when memory or libcurl cannot
 * be initialised. Release with scrape_manager_free(). */
struct scrape_manager *scrape_manager_new(struct tsdb *db);

/* Cap the decoded body of every later scrape of jobs without their own
 * body_size_limit at limit bytes (0 restores SCRAPE_DEFAULT_BODY_SIZE_LIMIT).
 * Takes effect from the next scrape. */
void scrape_manager_set_body_size_limit(struct scrape_manager *m, size_t limit);

/* Make the set of targets that of cfg. cfg must come from a config loader:
 * the manager keeps a reference (config_ref) for service discovery, which
 * re-applies targets from it whenever discovered target groups change, so
 * the caller may config_free() its own reference afterwards.
 *
 * Targets come from static_configs and from file_sd_configs,
 * http_sd_configs and dns_sd_configs, run by one discovery thread (see
 * src/scrape/discovery.c and docs/scraping.md). A discovery update is
 * applied like a new configuration, with the diff below.
 *
 * Targets are built as Prometheus's PopulateLabels does (relabel_configs,
 * default ports, checks; see src/scrape/target.c). Those relabeling drops
 * are listed as dropped targets; those whose relabeled labels are unusable
 * are logged and skipped, as Prometheus does, without failing the call.
 * target_limit is evaluated per job on every call.
 *
 * The first call starts the scrape thread. Every call diffs the targets:
 * a target whose job, URL, labels, interval, timeout, honor_* settings and
 * job settings (metric relabeling, limits, HTTP client) are unchanged keeps
 * running with its state (schedule, scrape cache, last status); new targets
 * start at their hash-derived offset within their interval; removed targets
 * stop, and every series they wrote (including the synthetic ones) gets a
 * staleness marker.
 *
 * Returns 0, or on failure leaves the running set unchanged and returns
 *   BS_ENOMEM  out of memory;
 *   BS_EIO     the scrape thread or libcurl could not be started. */
int scrape_manager_apply_config(struct scrape_manager *m, const struct config *cfg,
                                struct bs_error *err);

/* Stop the scrape thread (in-flight scrapes are abandoned), join it and free
 * the manager and all its targets. Writes no staleness markers: on shutdown
 * Prometheus does not either. NULL is allowed. */
void scrape_manager_free(struct scrape_manager *m);

/* Append to out the "data" object of /api/v1/targets, shaped exactly as
 * Prometheus's:
 *   {"activeTargets":[{"discoveredLabels":{...},"labels":{...},
 *     "scrapePool":"job","scrapeUrl":"http://h:p/metrics",
 *     "globalUrl":"http://h:p/metrics","lastError":"",
 *     "lastScrape":"2026-11-26T18:00:00.123Z","lastScrapeDuration":0.0123,
 *     "health":"up","scrapeInterval":"15s","scrapeTimeout":"10s"}],
 *    "droppedTargets":[{"discoveredLabels":{...}}]}
 * Targets are grouped by pool name (sorted), in configuration order within a
 * pool. state is "active", "dropped", "any" or NULL (= any), compared
 * ignoring case; an unknown state yields two empty lists, as in Prometheus.
 * health is "up", "down" or "unknown" (never scraped; lastScrape is then
 * Go's zero time "0001-01-01T00:00:00Z"). Returns 0, or BS_ELIMIT/BS_ENOMEM
 * from out (whose content is then incomplete). */
int scrape_manager_targets_json(struct scrape_manager *m, const char *state, struct bs_buf *out);

/* Append to out the "data" array of /api/v1/targets/metadata, shaped
 * exactly as Prometheus's:
 *   [{"target":{"instance":"h:p","job":"j"},"metric":"go_goroutines",
 *     "type":"gauge","help":"Number of goroutines.","unit":""}]
 * from the TYPE, HELP and UNIT lines of each active target's last
 * successful scrape. Targets come in the order of /api/v1/targets; a
 * target's families sorted by name. matchers[0..nmatchers) (the parsed
 * match_target selector; NULL/0 for none) must all match the target labels.
 * metric NULL or "" lists every family, each object with "metric";
 * otherwise only that family, and "metric" is left out (as Prometheus
 * does). limit < 0 is no limit; as in Prometheus it is checked before each
 * target, so the last target taken adds all its entries. 0.0.4's "untyped"
 * is written "unknown". Returns 0, or BS_ELIMIT/BS_ENOMEM from out (whose
 * content is then incomplete). */
int scrape_manager_targets_metadata_json(struct scrape_manager *m,
                                         struct labels_matcher *const *matchers, size_t nmatchers,
                                         const char *metric, long limit, struct bs_buf *out);

/* Append to out the "data" object of /api/v1/metadata, shaped exactly as
 * Prometheus's:
 *   {"go_goroutines":[{"type":"gauge","help":"Number of goroutines.","unit":""}]}
 * Every family of every active target (or only metric, unless NULL or ""),
 * names sorted; each with its distinct metadata over all targets (sorted by
 * type, help, unit), at most limit_per_metric of them when it is > 0; at
 * most limit names when limit >= 0 (limit 0 gives {}). Returns as
 * scrape_manager_targets_metadata_json(). */
int scrape_manager_metadata_json(struct scrape_manager *m, const char *metric, long limit,
                                 long limit_per_metric, struct bs_buf *out);

/* -------------------------------------------- discovery for other jobs
 *
 * The discovery providers of scrape jobs (file_sd_configs, http_sd_configs,
 * dns_sd_configs) run for jobs of other modules too, such as ipmi_configs
 * jobs, which cmd maps onto their module: a struct scrape_discovery is a
 * discovery manager of its own (one thread, started when the first plan
 * with providers is prepared; inotify, refresh intervals and the
 * keep-what-you-had-on-failure rules as for scrape jobs; see
 * src/scrape/discovery.c and docs/scraping.md). The scrape manager's own
 * discovery is separate and unaffected.
 *
 * Use: prepare a plan for a configuration's jobs, read its targets, and
 * install it once the caller has applied them (or free it to keep the
 * running set), so a configuration the caller refuses changes nothing.
 * After that, on_update says when installed providers found new groups;
 * read them with scrape_discovery_targets(d, NULL, ...). Providers are
 * keyed by job name and settings: a job whose discovery settings did not
 * change keeps its provider, and its groups, across a new plan.
 *
 * prepare, install, plan_free and free are serialised by the caller;
 * scrape_discovery_targets may be called from any thread, including from
 * on_update. */

/* The discovery settings of one job that is not a scrape job. All borrowed,
 * and the arrays must point into the configuration passed along with them. */
struct scrape_sd_job {
    const char *job_name; /* the job's name; the key groups are read by */
    const struct config_file_sd *file_sd_configs;
    size_t nfile_sd_configs;
    const struct config_http_sd *http_sd_configs;
    size_t nhttp_sd_configs;
    const struct config_dns_sd *dns_sd_configs;
    size_t ndns_sd_configs;
};

struct scrape_discovery;
struct scrape_discovery_plan;

/* Called on the discovery thread, with no lock of the discovery held,
 * after the groups of one or more installed providers changed (once for a
 * burst of changes). It may call scrape_discovery_targets() and take the
 * caller's own locks, but not the functions serialised by the caller
 * unless those locks serialise them (scrape_discovery_free() waits for a
 * running call to return, so must not be called with a lock it takes). */
typedef void (*scrape_discovery_update_fn)(void *ud);

/* One discovered target: group holds the labels of its target group (for
 * file_sd, the group's "labels" and __meta_filepath), target its own
 * labels (__address__, and __meta_* labels of the provider); target labels
 * win over group labels of the same name. Both are borrowed for the call
 * only. A non-zero return stops the walk, which returns it. */
typedef int (*scrape_discovery_target_fn)(void *ud, const struct labels *group,
                                          const struct labels *target);

/* A new discovery; nothing runs until a plan with providers is prepared.
 * on_update (required) gets ud. NULL when out of memory. Release with
 * scrape_discovery_free(). */
struct scrape_discovery *scrape_discovery_new(scrape_discovery_update_fn on_update, void *ud);

/* Stop and join the discovery thread (waiting for an on_update call in
 * progress) and release every provider. NULL is allowed. */
void scrape_discovery_free(struct scrape_discovery *d);

/* Build in *out the providers of jobs[0..njobs): an installed provider with
 * the same job and settings is reused with its groups; a new file_sd
 * provider reads its files here, so the plan already has their targets;
 * new http_sd and dns_sd providers start empty and refresh once installed.
 * cfg must come from a config loader: providers keep a reference
 * (config_ref) as long as they live. Returns 0 with *out set (also when
 * there are no providers), or with *out NULL and err set:
 *   BS_ENOMEM  out of memory;
 *   BS_EIO     the discovery thread could not be started. */
int scrape_discovery_prepare(struct scrape_discovery *d, const struct config *cfg,
                             const struct scrape_sd_job *jobs, size_t njobs,
                             struct scrape_discovery_plan **out, struct bs_error *err);

/* Call fn for every discovered target of the job named job_name: of plan,
 * or of the installed providers when plan is NULL; in the order of the
 * job's providers (file, then HTTP, then DNS, each in configuration order),
 * then groups, then targets. The discovery's lock is held meanwhile, so fn
 * must not call into this discovery. Returns 0 or fn's non-zero return. */
int scrape_discovery_targets(struct scrape_discovery *d,
                             const struct scrape_discovery_plan *plan, const char *job_name,
                             scrape_discovery_target_fn fn, void *ud);

/* Make plan the running set and free it (providers not in it stop); from
 * now on on_update reports their changes. Cannot fail. */
void scrape_discovery_install(struct scrape_discovery *d, struct scrape_discovery_plan *plan);

/* Free a plan that is not to be installed. NULL is allowed. */
void scrape_discovery_plan_free(struct scrape_discovery_plan *plan);

#endif
