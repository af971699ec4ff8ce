/* SPDX-License-Identifier: Apache-2.0
 *
 * Decoding prometheus.yml: a walk over libyaml's node tree that follows
 * Prometheus's schema for the subset bongsu implements.
 *
 * How it is organised:
 *  - Every mapping is first flattened into a list of (key, value) pairs by
 *    map_collect(). That is where YAML merge keys ("<<: *defaults") are
 *    resolved, with explicit keys winning over merged ones as in yaml.v2,
 *    and where a key repeated in the same mapping is reported. Sorting makes
 *    this O(n log n) even for huge mappings.
 *  - Each section (top level, global, scrape job, static config) then looks
 *    at its pairs in file order. A key is either decoded, or found in the
 *    one table of keys that Prometheus knows but bongsu ignores for now
 *    (recorded, logged once per key after a successful load), or it is an
 *    error worded as Prometheus words it ("field X not found in type
 *    config.Y").
 *  - Aliases are shared nodes in libyaml's document, so they cost nothing to
 *    parse, but walking them multiplies work. Every job, static config,
 *    target, label, parameter value and mapping entry visited is counted
 *    against CONFIG_MAX_ITEMS, and merge keys nest at most MERGE_MAX_DEPTH
 *    deep, so self-referencing or exponential aliases end in an error.
 *
 * Positions: libyaml marks are 0-based; messages print them 1-based as
 * "name:line:col: ". Type and value errors point at the value, unknown-key
 * errors at the key.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_int.h"

#define MERGE_MAX_DEPTH 8
/* Longest user text quoted in a message. */
#define MSG_TEXT_MAX 128

/* ------------------------------------------------ unsupported-key table */

enum section { SEC_TOP, SEC_GLOBAL, SEC_SCRAPE, SEC_STATIC };

/* Keys of Prometheus's configuration schema (2.x and 3.x) that bongsu does
 * not implement yet. They are accepted and ignored with one warning each;
 * anything not here and not decoded below is an error. */
static const struct unsupported_key {
    enum section sec;
    const char *key;
} unsupported_keys[] = {
    /* top level (config.Config) */
    {SEC_TOP, "rule_files"},
    {SEC_TOP, "scrape_config_files"},
    {SEC_TOP, "alerting"},
    {SEC_TOP, "remote_write"},
    {SEC_TOP, "remote_read"},
    {SEC_TOP, "storage"},
    {SEC_TOP, "tracing"},
    {SEC_TOP, "otlp"},
    {SEC_TOP, "runtime"},
    /* global (config.GlobalConfig) */
    {SEC_GLOBAL, "scrape_protocols"},
    {SEC_GLOBAL, "rule_query_offset"},
    {SEC_GLOBAL, "query_log_file"},
    {SEC_GLOBAL, "scrape_failure_log_file"},
    {SEC_GLOBAL, "body_size_limit"},
    {SEC_GLOBAL, "sample_limit"},
    {SEC_GLOBAL, "target_limit"},
    {SEC_GLOBAL, "label_limit"},
    {SEC_GLOBAL, "label_name_length_limit"},
    {SEC_GLOBAL, "label_value_length_limit"},
    {SEC_GLOBAL, "keep_dropped_targets"},
    {SEC_GLOBAL, "metric_name_validation_scheme"},
    {SEC_GLOBAL, "metric_name_escaping_scheme"},
    {SEC_GLOBAL, "always_scrape_classic_histograms"},
    {SEC_GLOBAL, "convert_classic_histograms_to_nhcb"},
    {SEC_GLOBAL, "scrape_native_histograms"},
    {SEC_GLOBAL, "extra_scrape_metrics"},
    /* scrape job (config.ScrapeConfig): limits and protocol knobs */
    {SEC_SCRAPE, "track_timestamps_staleness"},
    {SEC_SCRAPE, "scrape_protocols"},
    {SEC_SCRAPE, "fallback_scrape_protocol"},
    {SEC_SCRAPE, "scrape_failure_log_file"},
    {SEC_SCRAPE, "scrape_classic_histograms"},
    {SEC_SCRAPE, "always_scrape_classic_histograms"},
    {SEC_SCRAPE, "convert_classic_histograms_to_nhcb"},
    {SEC_SCRAPE, "scrape_native_histograms"},
    {SEC_SCRAPE, "enable_compression"},
    {SEC_SCRAPE, "body_size_limit"},
    {SEC_SCRAPE, "sample_limit"},
    {SEC_SCRAPE, "target_limit"},
    {SEC_SCRAPE, "label_limit"},
    {SEC_SCRAPE, "label_name_length_limit"},
    {SEC_SCRAPE, "label_value_length_limit"},
    {SEC_SCRAPE, "native_histogram_bucket_limit"},
    {SEC_SCRAPE, "native_histogram_min_bucket_factor"},
    {SEC_SCRAPE, "keep_dropped_targets"},
    {SEC_SCRAPE, "metric_name_validation_scheme"},
    {SEC_SCRAPE, "metric_name_escaping_scheme"},
    /* scrape job: relabelling (changes which data is kept) */
    {SEC_SCRAPE, "relabel_configs"},
    {SEC_SCRAPE, "metric_relabel_configs"},
    /* scrape job: HTTP client (config.HTTPClientConfig, inlined) */
    {SEC_SCRAPE, "basic_auth"},
    {SEC_SCRAPE, "authorization"},
    {SEC_SCRAPE, "oauth2"},
    {SEC_SCRAPE, "bearer_token"},
    {SEC_SCRAPE, "bearer_token_file"},
    {SEC_SCRAPE, "tls_config"},
    {SEC_SCRAPE, "proxy_url"},
    {SEC_SCRAPE, "no_proxy"},
    {SEC_SCRAPE, "proxy_from_environment"},
    {SEC_SCRAPE, "proxy_connect_header"},
    {SEC_SCRAPE, "follow_redirects"},
    {SEC_SCRAPE, "enable_http2"},
    {SEC_SCRAPE, "http_headers"},
    /* scrape job: service discovery other than static_configs */
    {SEC_SCRAPE, "azure_sd_configs"},
    {SEC_SCRAPE, "consul_sd_configs"},
    {SEC_SCRAPE, "digitalocean_sd_configs"},
    {SEC_SCRAPE, "docker_sd_configs"},
    {SEC_SCRAPE, "dockerswarm_sd_configs"},
    {SEC_SCRAPE, "dns_sd_configs"},
    {SEC_SCRAPE, "ec2_sd_configs"},
    {SEC_SCRAPE, "eureka_sd_configs"},
    {SEC_SCRAPE, "file_sd_configs"},
    {SEC_SCRAPE, "gce_sd_configs"},
    {SEC_SCRAPE, "hetzner_sd_configs"},
    {SEC_SCRAPE, "http_sd_configs"},
    {SEC_SCRAPE, "ionos_sd_configs"},
    {SEC_SCRAPE, "kubernetes_sd_configs"},
    {SEC_SCRAPE, "kuma_sd_configs"},
    {SEC_SCRAPE, "lightsail_sd_configs"},
    {SEC_SCRAPE, "linode_sd_configs"},
    {SEC_SCRAPE, "marathon_sd_configs"},
    {SEC_SCRAPE, "nerve_sd_configs"},
    {SEC_SCRAPE, "nomad_sd_configs"},
    {SEC_SCRAPE, "openstack_sd_configs"},
    {SEC_SCRAPE, "ovhcloud_sd_configs"},
    {SEC_SCRAPE, "puppetdb_sd_configs"},
    {SEC_SCRAPE, "scaleway_sd_configs"},
    {SEC_SCRAPE, "serverset_sd_configs"},
    {SEC_SCRAPE, "stackit_sd_configs"},
    {SEC_SCRAPE, "triton_sd_configs"},
    {SEC_SCRAPE, "uyuni_sd_configs"},
    {SEC_SCRAPE, "vultr_sd_configs"},
};
#define NUNSUPPORTED (sizeof unsupported_keys / sizeof unsupported_keys[0])

/* ------------------------------------------------------------- decoder */

/* First place and number of uses of one unsupported key. */
struct unsupported_use {
    const yaml_node_t *first; /* NULL when unused */
    size_t count;
};

struct job_ref {
    const char *name;
    size_t idx;
    const yaml_node_t *node;
};

struct decoder {
    yaml_document_t *doc;
    const char *name;
    struct bs_error *err;
    struct config *cfg;
    size_t items; /* counted against CONFIG_MAX_ITEMS */
    unsigned next_map_id;
    struct unsupported_use uses[NUNSUPPORTED];
};

/* One entry of a flattened mapping. */
struct pair {
    yaml_node_t *key;
    yaml_node_t *value;
    const char *k; /* key text (libyaml's storage, NUL-terminated) */
    size_t klen;
    size_t prio;     /* collection order: lower wins */
    unsigned map_id; /* which collection pass (duplicate detection) */
    bool merged;     /* came through a merge key */
};

struct pairs {
    struct pair *v;
    size_t n, cap;
};

static int dec_fail(struct decoder *d, const yaml_node_t *at, int code, const char *fmt, ...)
    BS_PRINTF(4, 5);

static int dec_fail(struct decoder *d, const yaml_node_t *at, int code, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (at)
        return bs_error_set(d->err, code, "%s:%zu:%zu: %s", d->name, at->start_mark.line + 1,
                            at->start_mark.column + 1, msg);
    return bs_error_set(d->err, code, "%s: %s", d->name, msg);
}

static int dec_nomem(struct decoder *d)
{
    return bs_error_set(d->err, BS_ENOMEM, "%s: out of memory while loading the configuration",
                        d->name);
}

static int dec_count(struct decoder *d, size_t n, const yaml_node_t *at)
{
    if (n > CONFIG_MAX_ITEMS || d->items + n > CONFIG_MAX_ITEMS)
        return dec_fail(d, at, BS_ELIMIT,
                        "configuration too large: more than %u jobs, targets, labels, parameters "
                        "and keys (after expanding aliases)",
                        (unsigned)CONFIG_MAX_ITEMS);
    d->items += n;
    return 0;
}

static yaml_node_t *dec_node(struct decoder *d, int index)
{
    return yaml_document_get_node(d->doc, index);
}

static bool node_is_null(const yaml_node_t *n)
{
    if (!n)
        return true;
    if (n->type != YAML_SCALAR_NODE)
        return false;
    if (n->tag && strcmp((const char *)n->tag, YAML_NULL_TAG) == 0)
        return true;
    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *v = (const char *)n->data.scalar.value;
    size_t l = n->data.scalar.length;
    return l == 0 || (l == 1 && v[0] == '~') ||
           (l == 4 && (!memcmp(v, "null", 4) || !memcmp(v, "Null", 4) || !memcmp(v, "NULL", 4)));
}

static bool node_is_merge_key(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
           n->data.scalar.length == 2 && !memcmp(n->data.scalar.value, "<<", 2);
}

static size_t seq_len(const yaml_node_t *n)
{
    return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
}

static bool key_is(const struct pair *p, const char *k)
{
    size_t l = strlen(k);
    return p->klen == l && memcmp(p->k, k, l) == 0;
}

/* ------------------------------------------------------- mappings, merges */

static int pairs_push(struct decoder *d, struct pairs *ps, const struct pair *p)
{
    if (ps->n == ps->cap) {
        size_t ncap = ps->cap ? ps->cap * 2 : 16;
        struct pair *nv = realloc(ps->v, ncap * sizeof *nv);
        if (!nv)
            return dec_nomem(d);
        ps->v = nv;
        ps->cap = ncap;
    }
    ps->v[ps->n++] = *p;
    return 0;
}

static int pair_cmp_key(const void *a, const void *b)
{
    const struct pair *x = a, *y = b;
    size_t l = x->klen < y->klen ? x->klen : y->klen;
    int c = memcmp(x->k, y->k, l);
    if (c)
        return c;
    if (x->klen != y->klen)
        return x->klen < y->klen ? -1 : 1;
    return x->prio < y->prio ? -1 : x->prio > y->prio;
}

static int pair_cmp_prio(const void *a, const void *b)
{
    const struct pair *x = a, *y = b;
    return x->prio < y->prio ? -1 : x->prio > y->prio;
}

/* Append the entries of mapping map to ps: its own keys first, then the
 * entries of the mappings its merge keys name (in order). */
static int map_gather(struct decoder *d, yaml_node_t *map, struct pairs *ps, int depth, bool merged)
{
    unsigned id = d->next_map_id++;
    yaml_node_pair_t *it;
    int rc;
    for (it = map->data.mapping.pairs.start; it < map->data.mapping.pairs.top; it++) {
        yaml_node_t *k = dec_node(d, it->key), *v = dec_node(d, it->value);
        if (!k || !v)
            return dec_fail(d, map, BS_EPARSE, "malformed mapping");
        if (node_is_merge_key(k))
            continue;
        if (k->type != YAML_SCALAR_NODE)
            return dec_fail(d, k, BS_EPARSE, "expected a string as mapping key");
        if ((rc = dec_count(d, 1, k)) < 0)
            return rc;
        struct pair p = {.key = k,
                         .value = v,
                         .k = (const char *)k->data.scalar.value,
                         .klen = k->data.scalar.length,
                         .prio = ps->n,
                         .map_id = id,
                         .merged = merged};
        if ((rc = pairs_push(d, ps, &p)) < 0)
            return rc;
    }
    for (it = map->data.mapping.pairs.start; it < map->data.mapping.pairs.top; it++) {
        yaml_node_t *k = dec_node(d, it->key), *v = dec_node(d, it->value);
        if (!node_is_merge_key(k))
            continue;
        if (depth >= MERGE_MAX_DEPTH)
            return dec_fail(d, k, BS_ELIMIT, "merge keys (<<) nested more than %d deep",
                            MERGE_MAX_DEPTH);
        if (v->type == YAML_MAPPING_NODE) {
            if ((rc = map_gather(d, v, ps, depth + 1, true)) < 0)
                return rc;
        } else if (v->type == YAML_SEQUENCE_NODE) {
            for (yaml_node_item_t *s = v->data.sequence.items.start; s < v->data.sequence.items.top;
                 s++) {
                yaml_node_t *m = dec_node(d, *s);
                if (!m || m->type != YAML_MAPPING_NODE)
                    return dec_fail(d, m ? m : v, BS_EPARSE,
                                    "expected a mapping or a list of mappings for merge key <<");
                if ((rc = map_gather(d, m, ps, depth + 1, true)) < 0)
                    return rc;
            }
        } else {
            return dec_fail(d, v, BS_EPARSE,
                            "expected a mapping or a list of mappings for merge key <<");
        }
    }
    return 0;
}

/* Flatten mapping map into ps (file order, merges resolved). A key written
 * twice in one mapping is an error, as in yaml.v2. On failure ps may hold
 * memory; the caller frees ps->v in any case. */
static int map_collect(struct decoder *d, yaml_node_t *map, struct pairs *ps)
{
    int rc = map_gather(d, map, ps, 0, false);
    if (rc < 0 || ps->n < 2)
        return rc;
    qsort(ps->v, ps->n, sizeof *ps->v, pair_cmp_key);
    size_t w = 0;
    struct pair dup = {0};
    bool have_dup = false;
    for (size_t r = 0; r < ps->n; r++) {
        if (w > 0 && ps->v[w - 1].klen == ps->v[r].klen &&
            memcmp(ps->v[w - 1].k, ps->v[r].k, ps->v[r].klen) == 0) {
            /* Same key: the earlier (higher priority) entry wins, unless
             * both were written in the very same mapping. */
            if (ps->v[w - 1].map_id == ps->v[r].map_id && (!have_dup || ps->v[r].prio < dup.prio)) {
                dup = ps->v[r];
                have_dup = true;
            }
            continue;
        }
        ps->v[w++] = ps->v[r];
    }
    if (have_dup) {
        /* The surviving entry of the run is where the key was first written. */
        size_t first_line = 0;
        for (size_t i = 0; i < w; i++)
            if (ps->v[i].klen == dup.klen && memcmp(ps->v[i].k, dup.k, dup.klen) == 0)
                first_line = ps->v[i].key->start_mark.line + 1;
        return dec_fail(d, dup.key, BS_EPARSE, "mapping key \"%.*s\" already defined at line %zu",
                        MSG_TEXT_MAX, dup.k, first_line);
    }
    ps->n = w;
    qsort(ps->v, ps->n, sizeof *ps->v, pair_cmp_prio);
    return 0;
}

/* Record a known-but-unsupported key, or fail with Prometheus's wording for
 * an unknown field of type tname. */
static int dec_other_key(struct decoder *d, enum section sec, const struct pair *p,
                         const char *tname)
{
    for (size_t i = 0; i < NUNSUPPORTED; i++) {
        if (unsupported_keys[i].sec == sec && key_is(p, unsupported_keys[i].key)) {
            if (!d->uses[i].first)
                d->uses[i].first = p->key;
            d->uses[i].count++;
            return 0;
        }
    }
    return dec_fail(d, p->key, BS_EPARSE, "field %.*s not found in type %s", MSG_TEXT_MAX, p->k,
                    tname);
}

/* --------------------------------------------------------------- scalars */

/* Type-check a value that must be a mapping; *is_null reports an empty
 * value (which callers treat as "use the defaults"). */
static int expect_mapping(struct decoder *d, const struct pair *p, bool *is_null)
{
    *is_null = node_is_null(p->value);
    if (*is_null || p->value->type == YAML_MAPPING_NODE)
        return 0;
    return dec_fail(d, p->value, BS_EPARSE, "expected a mapping for key %.*s", MSG_TEXT_MAX, p->k);
}

static int expect_list(struct decoder *d, const struct pair *p, bool *is_null)
{
    *is_null = node_is_null(p->value);
    if (*is_null || p->value->type == YAML_SEQUENCE_NODE)
        return 0;
    return dec_fail(d, p->value, BS_EPARSE, "expected a list for key %.*s", MSG_TEXT_MAX, p->k);
}

/* A scalar as a string (NUL-free). Null yields "". Borrowed from the
 * document; *len receives its length. */
static int scalar_text(struct decoder *d, const yaml_node_t *v, const char *key, size_t keylen,
                       const char **s, size_t *len)
{
    if (v->type != YAML_SCALAR_NODE)
        return dec_fail(d, v, BS_EPARSE, "expected a string for key %.*s",
                        (int)(keylen > MSG_TEXT_MAX ? MSG_TEXT_MAX : keylen), key);
    if (node_is_null(v)) {
        *s = "";
        *len = 0;
        return 0;
    }
    *s = (const char *)v->data.scalar.value;
    *len = v->data.scalar.length;
    if (memchr(*s, '\0', *len))
        return dec_fail(d, v, BS_EINVAL, "string for key %.*s contains a NUL character",
                        (int)(keylen > MSG_TEXT_MAX ? MSG_TEXT_MAX : keylen), key);
    return 0;
}

/* Replace *dst with a heap copy of the scalar value of p. */
static int scalar_dup(struct decoder *d, const struct pair *p, char **dst)
{
    const char *s;
    size_t len;
    int rc = scalar_text(d, p->value, p->k, p->klen, &s, &len);
    if (rc < 0)
        return rc;
    char *c = strndup(s, len);
    if (!c)
        return dec_nomem(d);
    free(*dst);
    *dst = c;
    return 0;
}

/* A duration; null leaves *ms unchanged. *ms is set to 0 for "0" (which
 * Prometheus treats as unset, too). */
static int scalar_duration(struct decoder *d, const struct pair *p, int64_t *ms)
{
    if (node_is_null(p->value))
        return 0;
    const char *s;
    size_t len;
    int rc = scalar_text(d, p->value, p->k, p->klen, &s, &len);
    if (rc < 0)
        return rc;
    int64_t v = 0;
    if (len == 0 || bs_duration_parse(s, len, &v, NULL) < 0 || v < 0)
        return dec_fail(d, p->value, BS_EINVAL, "not a valid duration string: \"%.*s\" (key %.*s)",
                        (int)(len > MSG_TEXT_MAX ? MSG_TEXT_MAX : len), s, MSG_TEXT_MAX, p->k);
    *ms = v;
    return 0;
}

/* A YAML 1.1 boolean as yaml.v2 reads it; null leaves *out unchanged. */
static int scalar_bool(struct decoder *d, const struct pair *p, bool *out)
{
    static const char *const yes[] = {"true", "True", "TRUE", "yes", "Yes", "YES",
                                      "on",   "On",   "ON",   "y",   "Y"};
    static const char *const no[] = {"false", "False", "FALSE", "no", "No", "NO",
                                     "off",   "Off",   "OFF",   "n",  "N"};
    if (node_is_null(p->value))
        return 0;
    if (p->value->type == YAML_SCALAR_NODE) {
        const char *s = (const char *)p->value->data.scalar.value;
        for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
            if (strcmp(s, yes[i]) == 0) {
                *out = true;
                return 0;
            }
            if (strcmp(s, no[i]) == 0) {
                *out = false;
                return 0;
            }
        }
        return dec_fail(d, p->value, BS_EPARSE, "expected a boolean for key %.*s, got \"%.*s\"",
                        MSG_TEXT_MAX, p->k, MSG_TEXT_MAX, s);
    }
    return dec_fail(d, p->value, BS_EPARSE, "expected a boolean for key %.*s", MSG_TEXT_MAX, p->k);
}

/* A mapping of label names to values, as a labels_dup() copy in *out
 * (never NULL on success). Empty values are dropped. */
static int dec_labels(struct decoder *d, const struct pair *p, struct labels **out)
{
    bool is_null;
    int rc = expect_mapping(d, p, &is_null);
    if (rc < 0)
        return rc;
    struct pairs ps = {0};
    struct labels_builder b;
    labels_builder_init(&b);
    if (!is_null && (rc = map_collect(d, p->value, &ps)) < 0)
        goto done;
    for (size_t i = 0; i < ps.n; i++) {
        const struct pair *lp = &ps.v[i];
        const char *val;
        size_t vlen;
        if (!labels_name_valid(lp->k, lp->klen) || memchr(lp->k, '\0', lp->klen)) {
            rc = dec_fail(d, lp->key, BS_EINVAL, "\"%.*s\" is not a valid label name (key %.*s)",
                          MSG_TEXT_MAX, lp->k, MSG_TEXT_MAX, p->k);
            goto done;
        }
        if ((rc = scalar_text(d, lp->value, lp->k, lp->klen, &val, &vlen)) < 0)
            goto done;
        if (vlen == 0)
            continue;
        if (labels_builder_set(&b, lp->k, lp->klen, val, vlen) < 0) {
            rc = dec_nomem(d);
            goto done;
        }
    }
    struct labels view;
    if ((rc = labels_builder_labels(&b, &view, d->err)) < 0) {
        bs_error_prefix(d->err, "%s:%zu:%zu", d->name, p->value->start_mark.line + 1,
                        p->value->start_mark.column + 1);
        goto done;
    }
    struct labels *copy = labels_dup(&view);
    if (!copy) {
        rc = dec_nomem(d);
        goto done;
    }
    free(*out);
    *out = copy;
    rc = 0;
done:
    labels_builder_fini(&b);
    free(ps.v);
    return rc;
}

/* A list of strings into a fresh heap array. */
static int dec_string_list(struct decoder *d, const struct pair *p, char ***out, size_t *nout)
{
    bool is_null;
    int rc = expect_list(d, p, &is_null);
    if (rc < 0 || is_null)
        return rc;
    size_t n = seq_len(p->value);
    if ((rc = dec_count(d, n, p->value)) < 0)
        return rc;
    if (n == 0)
        return 0;
    char **v = calloc(n, sizeof *v);
    if (!v)
        return dec_nomem(d);
    *out = v;
    *nout = n;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = dec_node(d, p->value->data.sequence.items.start[i]);
        const char *s;
        size_t len;
        if (!item)
            return dec_fail(d, p->value, BS_EPARSE, "malformed list for key %.*s", MSG_TEXT_MAX,
                            p->k);
        if (item->type != YAML_SCALAR_NODE)
            return dec_fail(d, item, BS_EPARSE, "expected a string in the list for key %.*s",
                            MSG_TEXT_MAX, p->k);
        if ((rc = scalar_text(d, item, p->k, p->klen, &s, &len)) < 0)
            return rc;
        if (!(v[i] = strndup(s, len)))
            return dec_nomem(d);
    }
    return 0;
}

/* ---------------------------------------------------------------- global */

struct global_set {
    const yaml_node_t *timeout_node; /* where scrape_timeout was set, or NULL */
};

static int dec_global(struct decoder *d, const struct pair *gp, struct global_set *gs)
{
    struct config *c = d->cfg;
    bool is_null;
    int rc = expect_mapping(d, gp, &is_null);
    if (rc < 0)
        return rc;
    struct pairs ps = {0};
    if (!is_null && (rc = map_collect(d, gp->value, &ps)) < 0)
        goto done;
    for (size_t i = 0; i < ps.n && rc == 0; i++) {
        const struct pair *p = &ps.v[i];
        if (key_is(p, "scrape_interval")) {
            rc = scalar_duration(d, p, &c->scrape_interval_ms);
        } else if (key_is(p, "scrape_timeout")) {
            rc = scalar_duration(d, p, &c->scrape_timeout_ms);
            if (c->scrape_timeout_ms)
                gs->timeout_node = p->value;
        } else if (key_is(p, "evaluation_interval")) {
            rc = scalar_duration(d, p, &c->evaluation_interval_ms);
        } else if (key_is(p, "external_labels")) {
            rc = dec_labels(d, p, &c->external_labels);
        } else {
            rc = dec_other_key(d, SEC_GLOBAL, p, "config.GlobalConfig");
        }
    }
done:
    free(ps.v);
    return rc;
}

/* Prometheus's defaulting of the global section: zero means unset. */
static int global_finish(struct decoder *d, const struct global_set *gs)
{
    struct config *c = d->cfg;
    if (c->scrape_interval_ms == 0)
        c->scrape_interval_ms = CONFIG_DEFAULT_SCRAPE_INTERVAL_MS;
    if (c->scrape_timeout_ms > c->scrape_interval_ms)
        return dec_fail(d, gs->timeout_node, BS_EINVAL,
                        "global scrape timeout greater than scrape interval");
    if (c->scrape_timeout_ms == 0)
        c->scrape_timeout_ms = CONFIG_DEFAULT_SCRAPE_TIMEOUT_MS > c->scrape_interval_ms
                                   ? c->scrape_interval_ms
                                   : CONFIG_DEFAULT_SCRAPE_TIMEOUT_MS;
    if (c->evaluation_interval_ms == 0)
        c->evaluation_interval_ms = CONFIG_DEFAULT_EVALUATION_INTERVAL_MS;
    if (!c->external_labels) {
        struct labels empty = {NULL, 0};
        if (!(c->external_labels = labels_dup(&empty)))
            return dec_nomem(d);
    }
    return 0;
}

/* -------------------------------------------------------- static_configs */

static int dec_static(struct decoder *d, yaml_node_t *n, struct config_static_config *sc)
{
    if (node_is_null(n))
        return dec_fail(d, n, BS_EINVAL, "empty or null section in static_configs");
    if (n->type != YAML_MAPPING_NODE)
        return dec_fail(d, n, BS_EPARSE, "expected a mapping for each entry of static_configs");
    struct pairs ps = {0};
    int rc = map_collect(d, n, &ps);
    for (size_t i = 0; i < ps.n && rc == 0; i++) {
        const struct pair *p = &ps.v[i];
        if (key_is(p, "targets")) {
            rc = dec_string_list(d, p, &sc->targets, &sc->ntargets);
            for (size_t t = 0; rc == 0 && t < sc->ntargets; t++)
                if (strchr(sc->targets[t], '/'))
                    rc = dec_fail(d, dec_node(d, p->value->data.sequence.items.start[t]), BS_EINVAL,
                                  "\"%.*s\" is not a valid hostname", MSG_TEXT_MAX, sc->targets[t]);
        } else if (key_is(p, "labels")) {
            rc = dec_labels(d, p, &sc->labels);
        } else {
            rc = dec_other_key(d, SEC_STATIC, p, "targetgroup.Group");
        }
    }
    free(ps.v);
    if (rc == 0 && !sc->labels) {
        struct labels empty = {NULL, 0};
        if (!(sc->labels = labels_dup(&empty)))
            return dec_nomem(d);
    }
    return rc;
}

/* ---------------------------------------------------------- scrape jobs */

static int dec_params(struct decoder *d, const struct pair *pp, struct config_scrape *sc)
{
    bool is_null;
    int rc = expect_mapping(d, pp, &is_null);
    if (rc < 0 || is_null)
        return rc;
    struct pairs ps = {0};
    if ((rc = map_collect(d, pp->value, &ps)) < 0 || ps.n == 0)
        goto done;
    if (!(sc->params = calloc(ps.n, sizeof *sc->params))) {
        rc = dec_nomem(d);
        goto done;
    }
    sc->nparams = ps.n;
    for (size_t i = 0; i < ps.n; i++) {
        struct config_param *cp = &sc->params[i];
        if (memchr(ps.v[i].k, '\0', ps.v[i].klen)) {
            rc = dec_fail(d, ps.v[i].key, BS_EINVAL, "parameter name contains a NUL character");
            goto done;
        }
        if (!(cp->name = strndup(ps.v[i].k, ps.v[i].klen))) {
            rc = dec_nomem(d);
            goto done;
        }
        if ((rc = dec_string_list(d, &ps.v[i], &cp->values, &cp->nvalues)) < 0)
            goto done;
    }
done:
    free(ps.v);
    return rc;
}

static int dec_static_list(struct decoder *d, const struct pair *p, struct config_scrape *sc)
{
    bool is_null;
    int rc = expect_list(d, p, &is_null);
    if (rc < 0 || is_null)
        return rc;
    size_t n = seq_len(p->value);
    if ((rc = dec_count(d, n, p->value)) < 0 || n == 0)
        return rc;
    if (!(sc->static_configs = calloc(n, sizeof *sc->static_configs)))
        return dec_nomem(d);
    sc->nstatic_configs = n;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = dec_node(d, p->value->data.sequence.items.start[i]);
        if (!item)
            return dec_fail(d, p->value, BS_EPARSE, "malformed list for key static_configs");
        if ((rc = dec_static(d, item, &sc->static_configs[i])) < 0)
            return rc;
    }
    return 0;
}

static int dec_scrape(struct decoder *d, yaml_node_t *n, struct config_scrape *sc,
                      struct job_ref *ref)
{
    const struct config *c = d->cfg;
    if (node_is_null(n))
        return dec_fail(d, n, BS_EINVAL, "empty or null scrape config section");
    if (n->type != YAML_MAPPING_NODE)
        return dec_fail(d, n, BS_EPARSE, "expected a mapping for each entry of scrape_configs");
    sc->honor_timestamps = true;
    if (!(sc->metrics_path = strdup("/metrics")) || !(sc->scheme = strdup("http")))
        return dec_nomem(d);
    const yaml_node_t *timeout_node = NULL, *scheme_node = NULL;
    ref->node = n;
    struct pairs ps = {0};
    int rc = map_collect(d, n, &ps);
    for (size_t i = 0; i < ps.n && rc == 0; i++) {
        const struct pair *p = &ps.v[i];
        if (key_is(p, "job_name")) {
            rc = scalar_dup(d, p, &sc->job_name);
            ref->node = p->value;
        } else if (key_is(p, "scrape_interval")) {
            rc = scalar_duration(d, p, &sc->scrape_interval_ms);
        } else if (key_is(p, "scrape_timeout")) {
            rc = scalar_duration(d, p, &sc->scrape_timeout_ms);
            timeout_node = p->value;
        } else if (key_is(p, "metrics_path")) {
            if (!node_is_null(p->value))
                rc = scalar_dup(d, p, &sc->metrics_path);
        } else if (key_is(p, "scheme")) {
            if (!node_is_null(p->value)) {
                rc = scalar_dup(d, p, &sc->scheme);
                scheme_node = p->value;
            }
        } else if (key_is(p, "params")) {
            rc = dec_params(d, p, sc);
        } else if (key_is(p, "honor_labels")) {
            rc = scalar_bool(d, p, &sc->honor_labels);
        } else if (key_is(p, "honor_timestamps")) {
            rc = scalar_bool(d, p, &sc->honor_timestamps);
        } else if (key_is(p, "static_configs")) {
            rc = dec_static_list(d, p, sc);
        } else {
            rc = dec_other_key(d, SEC_SCRAPE, p, "config.ScrapeConfig");
        }
    }
    free(ps.v);
    if (rc < 0)
        return rc;
    if (!sc->job_name || !sc->job_name[0])
        return dec_fail(d, n, BS_EINVAL, "job_name is empty");
    ref->name = sc->job_name;
    if (strcmp(sc->scheme, "http") != 0 && strcmp(sc->scheme, "https") != 0)
        return dec_fail(d, scheme_node, BS_EINVAL,
                        "invalid scheme \"%.*s\" for scrape config with job name \"%.*s\": must "
                        "be \"http\" or \"https\"",
                        MSG_TEXT_MAX, sc->scheme, MSG_TEXT_MAX, sc->job_name);
    /* Prometheus's ScrapeConfig.Validate: defaults from the global section. */
    if (sc->scrape_interval_ms == 0)
        sc->scrape_interval_ms = c->scrape_interval_ms;
    if (sc->scrape_timeout_ms > sc->scrape_interval_ms)
        return dec_fail(d, timeout_node, BS_EINVAL,
                        "scrape timeout greater than scrape interval for scrape config with job "
                        "name \"%.*s\"",
                        MSG_TEXT_MAX, sc->job_name);
    if (sc->scrape_timeout_ms == 0)
        sc->scrape_timeout_ms = c->scrape_timeout_ms > sc->scrape_interval_ms
                                    ? sc->scrape_interval_ms
                                    : c->scrape_timeout_ms;
    return 0;
}

static int job_ref_cmp(const void *a, const void *b)
{
    const struct job_ref *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int dec_scrape_list(struct decoder *d, const struct pair *p)
{
    struct config *c = d->cfg;
    bool is_null;
    int rc = expect_list(d, p, &is_null);
    if (rc < 0 || is_null)
        return rc;
    size_t n = seq_len(p->value);
    if ((rc = dec_count(d, n, p->value)) < 0 || n == 0)
        return rc;
    if (!(c->scrape_configs = calloc(n, sizeof *c->scrape_configs)))
        return dec_nomem(d);
    c->nscrape_configs = n;
    struct job_ref *refs = calloc(n, sizeof *refs);
    if (!refs)
        return dec_nomem(d);
    for (size_t i = 0; i < n && rc == 0; i++) {
        yaml_node_t *item = dec_node(d, p->value->data.sequence.items.start[i]);
        refs[i].idx = i;
        if (!item)
            rc = dec_fail(d, p->value, BS_EPARSE, "malformed list for key scrape_configs");
        else
            rc = dec_scrape(d, item, &c->scrape_configs[i], &refs[i]);
    }
    if (rc == 0) {
        /* Duplicate names: report the earliest second occurrence. */
        qsort(refs, n, sizeof *refs, job_ref_cmp);
        const struct job_ref *dup = NULL;
        for (size_t i = 1; i < n; i++)
            if (strcmp(refs[i - 1].name, refs[i].name) == 0 && (!dup || refs[i].idx < dup->idx))
                dup = &refs[i];
        if (dup)
            rc = dec_fail(d, dup->node, BS_EINVAL,
                          "found multiple scrape configs with job name \"%.*s\"", MSG_TEXT_MAX,
                          dup->name);
    }
    free(refs);
    return rc;
}

/* ------------------------------------------------------------- warnings */

static int warn_cmp(const void *a, const void *b)
{
    const yaml_node_t *x = ((const struct unsupported_use *)a)->first;
    const yaml_node_t *y = ((const struct unsupported_use *)b)->first;
    if (x->start_mark.line != y->start_mark.line)
        return x->start_mark.line < y->start_mark.line ? -1 : 1;
    return x->start_mark.column < y->start_mark.column
               ? -1
               : x->start_mark.column > y->start_mark.column;
}

/* Turn the recorded unsupported keys into cfg->warnings, in file order,
 * and log them. */
static int emit_warnings(struct decoder *d)
{
    struct unsupported_use used[NUNSUPPORTED];
    size_t n = 0;
    for (size_t i = 0; i < NUNSUPPORTED; i++)
        if (d->uses[i].first)
            used[n++] = d->uses[i];
    if (n == 0)
        return 0;
    qsort(used, n, sizeof used[0], warn_cmp);
    if (!(d->cfg->warnings = calloc(n, sizeof(char *))))
        return dec_nomem(d);
    for (size_t i = 0; i < n; i++) {
        const yaml_node_t *k = used[i].first;
        char more[48] = "";
        if (used[i].count > 1)
            snprintf(more, sizeof more, " (%zu occurrences)", used[i].count);
        char *w = NULL;
        if (asprintf(&w, "%s:%zu:%zu: key %s is not supported yet and is ignored%s", d->name,
                     k->start_mark.line + 1, k->start_mark.column + 1,
                     (const char *)k->data.scalar.value, more) < 0)
            return dec_nomem(d);
        d->cfg->warnings[d->cfg->nwarnings++] = w;
    }
    for (size_t i = 0; i < d->cfg->nwarnings; i++)
        BS_WARN("config", "%s", d->cfg->warnings[i]);
    return 0;
}

/* ------------------------------------------------------------- top level */

int config_decode(yaml_document_t *doc, const char *name, struct config *cfg, struct bs_error *err)
{
    struct decoder d = {.doc = doc, .name = name, .err = err, .cfg = cfg};
    struct global_set gs = {0};
    struct pairs ps = {0};
    int rc = 0;
    yaml_node_t *root = yaml_document_get_root_node(doc);

    if (root && !node_is_null(root)) {
        if (root->type != YAML_MAPPING_NODE)
            return dec_fail(&d, root, BS_EPARSE,
                            "expected a mapping at the top level of the configuration");
        if ((rc = map_collect(&d, root, &ps)) < 0)
            goto done;
    }
    /* The global section first: jobs take their defaults from it, wherever
     * it is written in the file. */
    for (size_t i = 0; i < ps.n; i++)
        if (key_is(&ps.v[i], "global") && (rc = dec_global(&d, &ps.v[i], &gs)) < 0)
            goto done;
    if ((rc = global_finish(&d, &gs)) < 0)
        goto done;
    for (size_t i = 0; i < ps.n; i++) {
        const struct pair *p = &ps.v[i];
        if (key_is(p, "global"))
            continue;
        if (key_is(p, "scrape_configs"))
            rc = dec_scrape_list(&d, p);
        else
            rc = dec_other_key(&d, SEC_TOP, p, "config.Config");
        if (rc < 0)
            goto done;
    }
    rc = emit_warnings(&d);
done:
    free(ps.v);
    return rc;
}
