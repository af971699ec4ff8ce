/* SPDX-License-Identifier: Apache-2.0
 *
 * scrape internals, shared by the files of src/scrape/ and its unit tests:
 * the target (config-derived identity plus the scrape thread's state), the
 * per-target scrape cache, label merging and URL building.
 */
#ifndef BONGSU_SCRAPE_INT_H
#define BONGSU_SCRAPE_INT_H

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "config/config.h"
#include "expfmt/expfmt.h"
#include "labels/labels.h"
#include "scrape/scrape.h"
#include "tsdb/tsdb.h"
#include "util/util.h"

/* Idle connections the scrape multi handle keeps for reuse (one per
 * target up to this many); each costs one file descriptor. */
#define SCRAPE_MAX_IDLE_CONNECTIONS 20000

/* Connection pools: targets are spread over this many libcurl share
 * objects (CURL_LOCK_DATA_CONNECT), so each pool holds few connections.
 * libcurl before 8.x walks the whole pool of a transfer in
 * curl_multi_remove_handle (close_connect_only) and in its once-a-second
 * dead-connection check; with one pool of 2000 kept-alive connections that
 * walk was the largest cost of a scrape (bench/scrape_scale). */
#define SCRAPE_CONN_POOLS 128

#define SCRAPE_COMPONENT "scrape"
/* Largest credentials or password file read for a scrape. */
#define SCRAPE_SECRET_FILE_MAX ((size_t)1 << 16)

/* ---------------------------------------------------------- scrape cache */

/* One series of a target, keyed by its raw series text (name and label
 * block as exposed). Holds the tsdb ref; the final labels are not kept (the
 * head has them): a series seen again costs a hash lookup, one memcmp and
 * an append by ref, and in the rare case that the head no longer knows the
 * ref, the labels are derived again from the text (the derivation is a
 * function of the text and the target's immutable settings). One
 * allocation per entry, the text inline. */
struct scrape_cache_entry {
    tsdb_ref ref; /* 0 when not known */
    uint32_t len;
    char text[]; /* len bytes and a NUL */
};

/* Slot flags. */
enum {
    SCRAPE_SLOT_DROPPED = 1,  /* metric_relabel_configs dropped the series */
    SCRAPE_SLOT_CUR = 2,      /* seen by this scrape without an honored timestamp */
    SCRAPE_SLOT_PREV = 4,     /* in the last successful scrape, without honored timestamp */
    SCRAPE_SLOT_EXPLICIT = 8, /* first seen by this scrape with an honored timestamp */
};

/* An open-addressing (linear probing) slot. Staleness and eviction read the
 * slots only: the generation `seen` and the flags live here, so the passes
 * after a scrape walk one flat array and touch an entry only to write its
 * stale marker. */
struct scrape_cache_slot {
    uint64_t hash;                /* bs_hash64 of the text */
    struct scrape_cache_entry *e; /* NULL: empty slot */
    uint32_t seen;                /* low 32 bits of the scrape iteration that last saw it */
    uint32_t flags;               /* SCRAPE_SLOT_* */
};

/* The table grows with the number of distinct series of one target, which
 * the body size limit bounds, and is kept at most 3/4 full. It also holds
 * the target's metric metadata, as Prometheus's scrape cache does. */
struct scrape_cache {
    struct scrape_cache_slot *slots;
    size_t cap; /* power of two, or 0 */
    size_t count;
    /* TYPE/HELP/UNIT of the last successful scrape, or NULL. Owned; only
     * the scrape thread replaces it, and only while holding the manager's
     * mutex, which readers (the metadata API) hold too. */
    struct scrape_meta *meta;
};

void scrape_cache_init(struct scrape_cache *c);
/* Free every entry, the table and the metadata. */
void scrape_cache_fini(struct scrape_cache *c);
/* Free every entry and the table, keeping the metadata. */
void scrape_cache_reset(struct scrape_cache *c);
/* The slot of text[0..len) with hash h, or NULL. */
static inline struct scrape_cache_slot *scrape_cache_get(struct scrape_cache *c, const char *text,
                                                         size_t len, uint64_t h)
{
    if (c->cap == 0)
        return NULL;
    size_t mask = c->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        struct scrape_cache_slot *s = &c->slots[i];
        if (!s->e)
            return NULL;
        if (s->hash == h && s->e->len == len && memcmp(s->e->text, text, len) == 0)
            return s;
    }
}
/* Insert a new entry for text (absent: the caller checked with
 * scrape_cache_get) with the given flags and generation. Returns its slot,
 * valid until the next put, evict or reset; NULL when out of memory. */
struct scrape_cache_slot *scrape_cache_put(struct scrape_cache *c, const char *text, size_t len,
                                           uint64_t h, uint32_t flags, uint32_t seen);
/* Free every entry whose slot was not seen by iteration `seen`. */
void scrape_cache_evict(struct scrape_cache *c, uint32_t seen);

/* ------------------------------------------------------------- metadata */

/* Per-target caps on what the metadata of one scrape may hold; families
 * past either are not recorded (the scrape itself is not affected). */
#define SCRAPE_META_MAX_FAMILIES 10000
#define SCRAPE_META_MAX_BYTES ((size_t)2 << 20) /* names, help and units */

/* One metric family's metadata. Strings are offsets into the set's text. */
struct scrape_meta_entry {
    uint32_t name, name_len;
    uint32_t help, help_len;      /* help_len 0: no HELP */
    uint32_t unit, unit_len;      /* unit_len 0: no UNIT */
    enum expfmt_metric_type type; /* EXPFMT_TYPE_UNKNOWN without TYPE */
};

/* The metadata of one scrape (cache.c): built entry by entry while the body
 * is parsed, then sorted by name with scrape_meta_finish(). */
struct scrape_meta {
    struct scrape_meta_entry *v;
    size_t n, cap;
    struct bs_buf text; /* max SCRAPE_META_MAX_BYTES */
    uint32_t *index;    /* build only: open addressing, entry index + 1 */
    size_t index_cap;   /* power of two, or 0 */
};

enum scrape_meta_field { SCRAPE_META_TYPE, SCRAPE_META_HELP, SCRAPE_META_UNIT };

/* A new, empty set, or NULL when out of memory. */
struct scrape_meta *scrape_meta_new(void);
/* Free the set. NULL is allowed. */
void scrape_meta_free(struct scrape_meta *md);
/* Record one field of family name[0..len): text[0..tlen) for HELP and UNIT,
 * type for TYPE; the entry is created on first use, a later field of the
 * same kind replaces the earlier. Returns 0, BS_ELIMIT past the caps above
 * (nothing recorded) or BS_ENOMEM. Not after scrape_meta_finish(). */
int scrape_meta_set(struct scrape_meta *md, const char *name, size_t len,
                    enum scrape_meta_field field, const char *text, size_t tlen,
                    enum expfmt_metric_type type);
/* Sort the entries by name, drop the build index and trim spare capacity. */
void scrape_meta_finish(struct scrape_meta *md);
/* Do two finished sets hold the same entries? NULL equals only an empty set. */
bool scrape_meta_equal(const struct scrape_meta *a, const struct scrape_meta *b);
/* The entry of family name in a finished set, or NULL. */
const struct scrape_meta_entry *scrape_meta_find(const struct scrape_meta *md, const char *name);

/* ---------------------------------------------------------------- labels */

/* Merge a scraped series with the target labels into out, as Prometheus's
 * mutateSampleLabels: the metric name becomes __name__; with honor_labels
 * the scraped labels win and target labels only fill gaps; without it the
 * target labels win and a conflicting scraped label "x" is kept as
 * "exported_x" (or "exported_exported_x" ... whichever is free, shortest
 * names first). Empty values mean absent. lb is a scratch builder (reset
 * here); out is a view into it, valid until lb changes. Returns 0 or the
 * builder's error code with err set. */
int scrape_labels_merge(struct labels_builder *lb, const struct expfmt_series *s,
                        const struct labels *target, bool honor_labels, struct labels *out,
                        struct bs_error *err);

/* ------------------------------------------------------------------- job */

/* What a job's configuration gives all its targets (job.c). Immutable after
 * scrape_job_new and shared by reference count, so any thread may read it
 * and targets of one job share one compiled set of regexes. */
struct scrape_job {
    atomic_size_t refs;
    char *name;
    struct labels_relabel_config *mrc; /* metric_relabel_configs, compiled copies */
    size_t nmrc;
    struct config_limits limits;
    struct config_http_client http;           /* deep copy of the job's settings */
    struct config_scrape_protocols protocols; /* Accept header and parser choice */
    char *fingerprint;                        /* every setting above, serialised */
    size_t fingerprint_len;
};

/* Copy what the targets of sc need. Returns 0 with *out holding one
 * reference, or BS_ENOMEM (err set). */
int scrape_job_new(const struct config_scrape *sc, struct scrape_job **out, struct bs_error *err);
/* Take another reference; returns j. */
struct scrape_job *scrape_job_ref(struct scrape_job *j);
/* Drop a reference; the last one frees the job. NULL is allowed. */
void scrape_job_unref(struct scrape_job *j);

/* ---------------------------------------------------------------- target */

enum scrape_health { SCRAPE_HEALTH_UNKNOWN = 0, SCRAPE_HEALTH_UP, SCRAPE_HEALTH_DOWN };

/* The synthetic series written after every scrape, in this order. */
enum {
    SCRAPE_REPORT_UP = 0,
    SCRAPE_REPORT_DURATION,
    SCRAPE_REPORT_SAMPLES,
    SCRAPE_REPORT_POST_RELABEL,
    SCRAPE_REPORT_SERIES_ADDED,
    SCRAPE_REPORT_COUNT
};

/* One target. The first block is fixed at creation from the configuration
 * and read by any thread. The second belongs to the scrape thread alone.
 * The third is shared and guarded by the manager's mutex. A target lives in
 * the manager's active array (owned there) until a config apply moves it to
 * the removed list, from which only the scrape thread frees it. */
struct scrape_target {
    /* immutable, owned */
    char *key; /* identity for config diffing */
    size_t key_len;
    char *pool; /* job name */
    char *url;
    struct scrape_job *job;                        /* one reference, shared settings */
    struct labels *full;                           /* after relabeling, "__" labels included */
    struct labels *labels;                         /* target labels (job, instance, ...) */
    struct labels *discovered;                     /* labels before relabeling */
    struct labels *report_ls[SCRAPE_REPORT_COUNT]; /* target labels + __name__ */
    int64_t interval_ms;
    int64_t timeout_ms;
    bool honor_labels;
    bool honor_timestamps;
    uint64_t offset_hash;

    /* scrape thread only */
    bool started;
    bool in_flight;
    size_t heap_idx; /* 1 + position in the loop's heap of idle targets; 0: not in it */
    CURL *easy;
    struct curl_slist *headers;
    bool headers_dynamic;          /* credentials come from a file: rebuilt per scrape */
    char *connect_url;             /* URL actually requested (tls server_name), or NULL */
    struct curl_slist *connect_to; /* CURLOPT_CONNECT_TO for connect_url */
    struct bs_buf body;            /* max = body size limit of the scrape */
    size_t body_limit;             /* a body of this many bytes or more fails the scrape */
    bool body_limit_hit;
    long http_status;
    char reason[96]; /* reason phrase of the last status line */
    char curl_err[CURL_ERROR_SIZE];
    int64_t next_ms;       /* monotonic ms of the next scrape */
    int64_t start_wall_ms; /* timestamp of the current scrape */
    int64_t start_mono_ns;
    uint64_t iter; /* scrape count, the cache's clock */
    struct scrape_cache cache; /* staleness: SCRAPE_SLOT_PREV/CUR of its slots */
    size_t nprev;              /* slots with SCRAPE_SLOT_PREV */
    size_t nprev_seen;         /* of those, seen by this scrape so far */
    uint64_t meta_hash;        /* metadata hash (meta_hash) of the published set; 0: none yet */
    tsdb_ref report_refs[SCRAPE_REPORT_COUNT];
    bool reported;   /* report series were ever written */
    int64_t last_ts; /* timestamp of the last scrape */

    /* guarded by the manager's mutex */
    char forced_error[160]; /* non-empty: fail every scrape with it (target_limit) */
    enum scrape_health health;
    char last_error[512];
    int64_t last_scrape_ms; /* wall clock; 0 = never */
    double last_duration_s;
};

/* Build the target for one address of a static config of job sc, as
 * Prometheus's PopulateLabels does: discovered labels, relabel_configs,
 * default port, checks of address, interval and timeout, instance. job is
 * sc's scrape_job (the target takes a reference). Outcomes:
 *   0, *out set       an active target owned by the caller;
 *   0, *dropped set   relabeling dropped the target; *dropped holds its
 *                     discovered labels (labels_dup, caller frees);
 *   BS_EINVAL         the relabeled labels are unusable ("no address",
 *                     "scrape interval cannot be 0", ...); err has
 *                     Prometheus's message; Prometheus logs and skips such
 *                     a target;
 *   BS_ENOMEM. */
int scrape_target_new(struct scrape_job *job, const struct config_scrape *sc,
                      const struct config_static_config *st, const char *address,
                      struct scrape_target **out, struct labels **dropped, struct bs_error *err);
/* Like scrape_target_new, for a discovered target: target holds its own
 * labels (__address__ and __meta_* labels), group the labels of its target
 * group (NULL: none), which apply where the target has no label of that
 * name. Both are borrowed. Same outcomes as scrape_target_new. */
int scrape_target_new_discovered(struct scrape_job *job, const struct config_scrape *sc,
                                 const struct labels *group, const struct labels *target,
                                 struct scrape_target **out, struct labels **dropped,
                                 struct bs_error *err);
/* Free a target and everything it owns. The easy handle must no longer be
 * attached to a multi handle. NULL is allowed. */
void scrape_target_free(struct scrape_target *t);

/* Append to b the query string (without '?') of params, encoded as Go's
 * url.Values.Encode: keys sorted, each value "key=value", '&' between,
 * space as '+', everything but [A-Za-z0-9-_.~] percent-encoded. Values of
 * parameter p are overridden by a discovered "__param_p" label (its first
 * value), as Prometheus does. */
int scrape_url_query(const struct config_param *params, size_t nparams, const struct labels *disc,
                     struct bs_buf *b);

/* The final labels of scraped series s of target t (scrape_loop.c):
 * scrape_labels_merge, then the job's metric_relabel_configs. *keep false:
 * relabeling dropped the series (view unset). view lives in lb. 0, or an
 * error with err set. */
int scrape_series_labels(struct labels_builder *lb, const struct scrape_target *t,
                         const struct expfmt_series *s, struct labels *view, bool *keep,
                         struct bs_error *err);
/* The same for a cached series, from its series text alone (the cache keeps
 * no labels): what scrape_series_labels gave when the series was first
 * scraped. 0, BS_ENOMEM, or the error of parsing or building. */
int scrape_entry_labels(struct labels_builder *lb, const struct scrape_target *t,
                        const struct scrape_cache_entry *e, struct labels *view, bool *keep);

/* --------------------------------------------------------------- manager */

/* Self-metrics, registered once per process by the first scrape_manager_new
 * and shared by all managers. */
struct scrape_metrics {
    struct bs_metric *body_limit;    /* ..._exceeded_body_size_limit_total */
    struct bs_metric *out_of_order;  /* ..._sample_out_of_order_total */
    struct bs_metric *duplicate;     /* ..._sample_duplicate_timestamp_total */
    struct bs_metric *out_of_bounds; /* ..._sample_out_of_bounds_total */
    struct bs_metric *scrapes;       /* bongsu_target_scrapes_total */
    struct bs_metric *failed;        /* bongsu_target_scrapes_failed_total */
};
extern struct scrape_metrics scrape_metrics;

/* A target that relabel_configs dropped, for /api/v1/targets. */
struct scrape_dropped {
    char *pool;
    struct labels *discovered; /* labels_dup */
};

struct sd_manager;

struct scrape_manager {
    struct tsdb *db;
    /* Service discovery (discovery.c, manager.c): apply_mu serialises
     * config applies and the re-applies that discovery updates cause; cfg
     * is the applied configuration (one reference), guarded by apply_mu. */
    pthread_mutex_t apply_mu;
    struct config *cfg;
    struct sd_manager *sd;
    pthread_mutex_t mu;
    /* guarded by mu */
    struct scrape_target **targets; /* active, owned, config order */
    size_t ntargets;
    uint64_t targets_gen; /* bumped whenever targets changes */
    struct scrape_dropped *dropped; /* owned, config order */
    size_t ndropped;
    struct scrape_target **removed; /* awaiting the thread's cleanup, owned */
    size_t nremoved, removed_cap;
    bool stopping;
    size_t body_limit;
    /* set up by the first apply */
    bool thread_started;
    pthread_t thread;
    CURLM *multi;
    /* connection pools (see SCRAPE_CONN_POOLS), created by the scrape
     * thread on first use, freed after every easy handle */
    CURLSH *pools[SCRAPE_CONN_POOLS];
};

/* The scrape thread's body (scrape_loop.c). arg is the manager. */
/* The options of the HTTP client configuration h on the easy handle e:
 * redirects, HTTP/2 through ALPN, proxy (never the environment's), TLS
 * versions, CA (only the configured one, re-read for new connections),
 * client certificate and key, insecure_skip_verify. Shared by scrape
 * targets and http_sd. */
void scrape_curl_client_opts(CURL *e, const struct config_http_client *h);
void *scrape_loop_run(void *arg);
/* Write staleness markers for every series of t (end of run); used by the
 * thread when a target is removed. */
void scrape_loop_end_of_run(struct scrape_manager *m, struct scrape_target *t);

#endif
