/* SPDX-License-Identifier: Apache-2.0
 *
 * Service discovery internals, shared by discovery.c (the discovery manager
 * and its thread), sd_file.c (file_sd_configs and the target group
 * formats), sd_http.c (http_sd_configs), sd_dns.c (dns_sd_configs) and
 * manager.c, which turns discovered target groups into targets. Private to
 * src/scrape and its unit tests.
 *
 * The model is Prometheus's: a provider (one entry of a job's
 * *_sd_configs) yields target groups; a group is a list of targets (label
 * sets holding at least __address__, plus per-target __meta_* labels) and
 * labels common to all of them. Target labels win over group labels. Each
 * refresh of a provider produces its complete current list of groups,
 * which replaces the previous one; a provider that cannot refresh keeps
 * what it had (file_sd per file, dns_sd per name, http_sd as a whole).
 */
#ifndef BONGSU_SD_INT_H
#define BONGSU_SD_INT_H

#include <stdatomic.h>

#include "scrape/scrape_int.h"

#define SD_COMPONENT "discovery"
/* Largest target group file or HTTP SD response body (bytes). */
#define SD_DOC_MAX_SIZE ((size_t)16 << 20)
/* Largest number of groups, targets and labels in one document, counted
 * after YAML aliases are expanded. */
#define SD_DOC_MAX_ITEMS ((size_t)1 << 20)
/* Wait after a file system event before reading, so that a burst of events
 * (create, write, close, rename) causes one refresh. */
#define SD_FILE_DEBOUNCE_MS 100

/* ------------------------------------------------------------- groups */

struct sd_group {
    struct labels *labels;   /* labels_dup'd; never NULL, possibly empty */
    struct labels **targets; /* each labels_dup'd, holding __address__ */
    size_t ntargets;
};

/* A growable list of groups; owns them. Zero-initialised is empty. */
struct sd_groups {
    struct sd_group *v;
    size_t n, cap;
};

void sd_groups_fini(struct sd_groups *g);
/* Append a copy of every group of src to dst. 0 or BS_ENOMEM (dst may
 * then hold part of them). */
int sd_groups_append_copy(struct sd_groups *dst, const struct sd_groups *src);
/* Append grp, taking ownership of what it holds (also on failure, when it
 * is freed). 0 or BS_ENOMEM. */
int sd_groups_push(struct sd_groups *g, struct sd_group *grp);
/* Same groups, targets and labels, in the same order. */
bool sd_groups_equal(const struct sd_groups *a, const struct sd_groups *b);
void sd_group_fini(struct sd_group *grp);

/* ------------------------------------------------ target group documents */

enum sd_format { SD_FORMAT_JSON, SD_FORMAT_YAML };

/* Parse a list of target groups, [{"targets": [...], "labels": {...}}], as
 * Prometheus reads file_sd files (.json with encoding/json, .yml/.yaml
 * strictly with yaml.v2) and http_sd responses (JSON). text[0..len) is
 * borrowed. When meta_name is not NULL, every group gets the label
 * meta_name=meta_value (overriding one of that name). Appends to out and
 * returns 0, or returns, with err set to "name:line:col: message",
 *   BS_EPARSE  a syntax error or a value of the wrong type;
 *   BS_EINVAL  an invalid label name, or a null group
 *              ("nil target group item found");
 *   BS_ELIMIT  more than SD_DOC_MAX_ITEMS groups, targets and labels;
 *   BS_ENOMEM.
 * On failure out is left as it was. */
int sd_groups_parse(const char *text, size_t len, enum sd_format fmt, const char *name,
                    const char *meta_name, const char *meta_value, struct sd_groups *out,
                    struct bs_error *err);

/* ------------------------------------------------------------ providers */

enum sd_kind { SD_KIND_FILE, SD_KIND_HTTP, SD_KIND_DNS };

struct sd_provider;

/* Refresh p: fill out (empty on entry) with p's complete current groups.
 * Returns 0, or a negative code after logging why, in which case p keeps
 * its previous groups. Called by one thread at a time per provider. */
typedef int (*sd_refresh_fn)(struct sd_provider *p, struct sd_groups *out);

/* One entry of a job's *_sd_configs. The settings are borrowed from cfg,
 * of which the provider holds a reference. refs, kind, job, key, cfg, the
 * settings and refresh_ms never change after creation. */
struct sd_provider {
    atomic_size_t refs;
    enum sd_kind kind;
    char *job;
    char *key; /* kind, job and settings: equal keys are the same provider */
    struct config *cfg;
    union {
        const struct config_file_sd *file;
        const struct config_http_sd *http;
        const struct config_dns_sd *dns;
    } conf;
    int64_t refresh_ms;
    sd_refresh_fn refresh;
    void (*priv_free)(void *priv);
    void *priv; /* the kind's own state; used only by the refreshing thread */

    /* guarded by the manager's mutex */
    bool active;             /* in the installed list */
    int64_t next_ms;         /* monotonic ms of the next refresh */
    struct sd_groups groups; /* the last published result */
};

/* Provider constructors (sd_file.c, sd_http.c, sd_dns.c): fill the kind's
 * fields of p (refresh, priv, priv_free). 0 or BS_ENOMEM. */
int sd_file_init(struct sd_provider *p);
int sd_http_init(struct sd_provider *p);
int sd_dns_init(struct sd_provider *p);

/* The directories file provider p watches (one per pattern, possibly
 * repeated), and whether a file named name in directory dir matters to it. */
size_t sd_file_ndirs(const struct sd_provider *p);
const char *sd_file_dir(const struct sd_provider *p, size_t i);
bool sd_file_matches(const struct sd_provider *p, const char *dir, const char *name);

/* ----------------------------------------------------------------- DNS */

/* Turn a DNS response msg[0..len) to a query of type for name into one
 * group (appended to out): one target per answer record of that type
 * (CNAME records are skipped, other types logged and skipped), labelled as
 * Prometheus does: __address__, __meta_dns_name, and for SRV
 * __meta_dns_srv_record_target (with its final dot) and
 * __meta_dns_srv_record_port, for MX __meta_dns_mx_record_target, for NS
 * __meta_dns_ns_record_target. port is used for MX, NS, A and AAAA. 0, or
 * BS_EPARSE for a malformed message, or BS_ENOMEM. */
int sd_dns_parse_answer(const unsigned char *msg, size_t len, enum config_dns_type type,
                        const char *name, uint16_t port, struct sd_groups *out,
                        struct bs_error *err);

/* For tests: send SRV, MX and NS queries to this IPv4 server (address and
 * port in network order) instead of the system's; 0 restores the system's.
 * Set before discovery starts. */
void sd_dns_set_test_server(uint32_t addr_be, uint16_t port_be);

/* ------------------------------------------------------------- manager */

struct sd_manager;

/* Called from the discovery thread, without locks held, after one or more
 * providers published new groups. */
typedef void (*sd_update_fn)(void *ud);

/* A new manager; no thread runs until a plan with providers is installed.
 * NULL when out of memory. */
struct sd_manager *sd_manager_new(sd_update_fn on_update, void *ud);
/* Stop and join the thread, release every provider. NULL is allowed. */
void sd_manager_free(struct sd_manager *dm);

/* The providers of a configuration, in configuration order (per job: file,
 * then HTTP, then DNS), before they are installed. */
struct sd_plan {
    struct sd_provider **v; /* one reference each */
    size_t n;
};

/* Build the plan for cfg: an installed provider with the same key is
 * reused with its groups (so an unchanged job keeps its targets across a
 * reload); a new file provider reads its files right away; new HTTP and DNS
 * providers start empty and are refreshed by the thread once installed.
 * The thread is started here the first time a plan has providers. cfg is
 * borrowed; new providers take references. 0, BS_ENOMEM, or BS_EIO when
 * the thread cannot be started. */
int sd_manager_prepare(struct sd_manager *dm, struct config *cfg, struct sd_plan *plan,
                       struct bs_error *err);
/* As sd_manager_prepare(), for the providers of jobs[0..njobs) (borrowed;
 * their settings must point into cfg) instead of cfg's scrape jobs. */
int sd_manager_prepare_jobs(struct sd_manager *dm, struct config *cfg,
                            const struct scrape_sd_job *jobs, size_t njobs, struct sd_plan *plan,
                            struct bs_error *err);
/* Make plan the running set (it is emptied), retire installed providers not
 * in it, and wake the thread. Returns 0. */
int sd_manager_install(struct sd_manager *dm, struct sd_plan *plan, struct bs_error *err);
/* Release a plan that was not installed. */
void sd_plan_discard(struct sd_plan *plan);

/* Read access to groups: between lock and unlock, the groups of the
 * installed providers (sd_manager_installed) and of any plan may be read. */
void sd_manager_lock(struct sd_manager *dm);
void sd_manager_unlock(struct sd_manager *dm);
struct sd_provider *const *sd_manager_installed(struct sd_manager *dm, size_t *n);

#endif
