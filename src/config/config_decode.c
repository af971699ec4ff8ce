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
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "config/config_int.h"

#define MERGE_MAX_DEPTH 8
/* Longest user text quoted in a message. */
#define MSG_TEXT_MAX 128

/* ------------------------------------------------ unsupported-key table */

enum section {
    SEC_TOP,
    SEC_GLOBAL,
    SEC_SCRAPE,
    SEC_STATIC,
    SEC_RELABEL,
    SEC_BASIC_AUTH,
    SEC_AUTHORIZATION,
    SEC_TLS,
    SEC_FILE_SD,
    SEC_HTTP_SD,
    SEC_DNS_SD,
    SEC_ALERTING,
    SEC_ALERTMANAGER,
    SEC_IPMI
};

/* Keys of Prometheus's configuration schema (2.x and 3.x) that bongsu does
 * not implement yet. They are accepted and ignored with one warning each;
 * anything not here and not decoded below is an error. */
static const struct unsupported_key {
    enum section sec;
    const char *key;
} unsupported_keys[] = {
    /* top level (config.Config) */
    {SEC_TOP, "scrape_config_files"},
    {SEC_TOP, "remote_write"},
    {SEC_TOP, "remote_read"},
    {SEC_TOP, "storage"},
    {SEC_TOP, "tracing"},
    {SEC_TOP, "otlp"},
    {SEC_TOP, "runtime"},
    /* global (config.GlobalConfig) */
    {SEC_GLOBAL, "rule_query_offset"},
    {SEC_GLOBAL, "query_log_file"},
    {SEC_GLOBAL, "scrape_failure_log_file"},
    {SEC_GLOBAL, "keep_dropped_targets"},
    {SEC_GLOBAL, "metric_name_validation_scheme"},
    {SEC_GLOBAL, "metric_name_escaping_scheme"},
    {SEC_GLOBAL, "always_scrape_classic_histograms"},
    {SEC_GLOBAL, "convert_classic_histograms_to_nhcb"},
    {SEC_GLOBAL, "scrape_native_histograms"},
    {SEC_GLOBAL, "extra_scrape_metrics"},
    /* scrape job (config.ScrapeConfig): protocol knobs */
    {SEC_SCRAPE, "track_timestamps_staleness"},
    {SEC_SCRAPE, "scrape_failure_log_file"},
    {SEC_SCRAPE, "scrape_classic_histograms"},
    {SEC_SCRAPE, "always_scrape_classic_histograms"},
    {SEC_SCRAPE, "convert_classic_histograms_to_nhcb"},
    {SEC_SCRAPE, "scrape_native_histograms"},
    {SEC_SCRAPE, "enable_compression"},
    {SEC_SCRAPE, "native_histogram_bucket_limit"},
    {SEC_SCRAPE, "native_histogram_min_bucket_factor"},
    {SEC_SCRAPE, "keep_dropped_targets"},
    {SEC_SCRAPE, "metric_name_validation_scheme"},
    {SEC_SCRAPE, "metric_name_escaping_scheme"},
    /* scrape job: HTTP client settings bongsu does not support (warned, ignored) */
    {SEC_SCRAPE, "oauth2"},
    {SEC_SCRAPE, "no_proxy"},
    {SEC_SCRAPE, "proxy_from_environment"},
    {SEC_SCRAPE, "proxy_connect_header"},
    {SEC_SCRAPE, "http_headers"},
    {SEC_BASIC_AUTH, "username_file"},
    /* http_sd_configs: the same HTTP client settings */
    {SEC_HTTP_SD, "oauth2"},
    {SEC_HTTP_SD, "no_proxy"},
    {SEC_HTTP_SD, "proxy_from_environment"},
    {SEC_HTTP_SD, "proxy_connect_header"},
    {SEC_HTTP_SD, "http_headers"},
    /* scrape job: service discovery other than static, file, HTTP and DNS */
    {SEC_SCRAPE, "azure_sd_configs"},
    {SEC_SCRAPE, "consul_sd_configs"},
    {SEC_SCRAPE, "digitalocean_sd_configs"},
    {SEC_SCRAPE, "docker_sd_configs"},
    {SEC_SCRAPE, "dockerswarm_sd_configs"},
    {SEC_SCRAPE, "ec2_sd_configs"},
    {SEC_SCRAPE, "eureka_sd_configs"},
    {SEC_SCRAPE, "gce_sd_configs"},
    {SEC_SCRAPE, "hetzner_sd_configs"},
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
    /* alerting.alertmanagers: discovery other than static, and relabeling
     * of the Alertmanager targets themselves */
    {SEC_ALERTMANAGER, "relabel_configs"},
    {SEC_ALERTMANAGER, "alert_relabel_configs"},
    {SEC_ALERTMANAGER, "file_sd_configs"},
    {SEC_ALERTMANAGER, "http_sd_configs"},
    {SEC_ALERTMANAGER, "dns_sd_configs"},
    {SEC_ALERTMANAGER, "consul_sd_configs"},
    {SEC_ALERTMANAGER, "kubernetes_sd_configs"},
    {SEC_ALERTMANAGER, "ec2_sd_configs"},
    {SEC_ALERTMANAGER, "gce_sd_configs"},
    {SEC_ALERTMANAGER, "azure_sd_configs"},
    {SEC_ALERTMANAGER, "oauth2"},
    {SEC_ALERTMANAGER, "no_proxy"},
    {SEC_ALERTMANAGER, "proxy_from_environment"},
    {SEC_ALERTMANAGER, "proxy_connect_header"},
    {SEC_ALERTMANAGER, "http_headers"},
    {SEC_ALERTMANAGER, "sigv4"},
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
    const char *base_dir; /* relative file names are resolved here; NULL: as given */
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

/* ------------------------------------------------- numbers, sizes, files */

/* yaml.v2's name of the YAML type of a plain or quoted scalar, for the
 * "cannot unmarshal !!int `-1` into uint" messages. */
static const char *scalar_yaml_type(const yaml_node_t *v)
{
    if (v->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return "!!str";
    const char *s = (const char *)v->data.scalar.value;
    char *end;
    if (*s && (strtoll(s, &end, 0), *end == '\0'))
        return "!!int";
    if (*s && (strtod(s, &end), *end == '\0'))
        return "!!float";
    return "!!str";
}

/* An unsigned integer as yaml.v2 decodes one into Go's uint/uint64
 * (gotype names it in messages): decimal, 0x hex, 0o/0 octal, 0b binary,
 * '_' separators, or a float whose integral part is taken. Null leaves *out
 * unchanged. */
static int scalar_uint(struct decoder *d, const struct pair *p, uint64_t *out, const char *gotype)
{
    if (node_is_null(p->value))
        return 0;
    if (p->value->type != YAML_SCALAR_NODE)
        return dec_fail(d, p->value, BS_EPARSE, "expected an integer for key %.*s", MSG_TEXT_MAX,
                        p->k);
    const char *s = (const char *)p->value->data.scalar.value;
    size_t len = p->value->data.scalar.length;
    char buf[72];
    size_t n = 0;
    bool ok = p->value->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && len < sizeof buf;
    for (size_t i = 0; ok && i < len; i++)
        if (s[i] != '_')
            buf[n++] = s[i];
    buf[ok ? n : 0] = '\0';
    if (ok && n > 0 && buf[0] != '-' && buf[0] != '+') {
        char *end;
        const char *digits = buf;
        int base = 0;
        if (buf[0] == '0' && (buf[1] == 'b' || buf[1] == 'B')) {
            digits = buf + 2;
            base = 2;
        } else if (buf[0] == '0' && (buf[1] == 'o' || buf[1] == 'O')) {
            digits = buf + 2;
            base = 8;
        }
        errno = 0;
        unsigned long long v = strtoull(digits, &end, base);
        if (*digits && *end == '\0' && errno == 0) {
            *out = (uint64_t)v;
            return 0;
        }
        double f = strtod(buf, &end);
        if (*end == '\0' && f >= 0 && f < 18446744073709551616.0) {
            *out = (uint64_t)f;
            return 0;
        }
    }
    return dec_fail(d, p->value, BS_EPARSE, "cannot unmarshal %s `%.*s` into %s (key %.*s)",
                    scalar_yaml_type(p->value), (int)(len > MSG_TEXT_MAX ? MSG_TEXT_MAX : len), s,
                    gotype, MSG_TEXT_MAX, p->k);
}

/* Value of one unit of a byte size: "B", "KB".."EB" and "KiB".."EiB", all
 * powers of 1024 (Prometheus's units.Base2Bytes); 0 when unknown. */
static double byte_unit(const char *u, size_t n)
{
    static const char prefixes[] = "KMGTPE";
    if (n == 1 && u[0] == 'B')
        return 1;
    const char *pp = n >= 2 ? strchr(prefixes, u[0]) : NULL;
    if (!pp || !u[0])
        return 0;
    if (!((n == 2 && u[1] == 'B') || (n == 3 && u[1] == 'i' && u[2] == 'B')))
        return 0;
    double v = 1;
    for (const char *q = prefixes; q <= pp; q++)
        v *= 1024;
    return v;
}

/* Parse a byte size as units.ParseBase2Bytes: an optional sign, then one
 * or more "<number><unit>" terms ("1.5MB", "1GB512MB", "10KiB"), or "0".
 * Returns 0 or fills msg with the library's message. */
static int parse_base2_bytes(const char *orig, int64_t *out, char *msg, size_t msgcap)
{
    const char *s = orig;
    bool neg = false;
    double f = 0;
    if (*s == '-' || *s == '+') {
        neg = *s == '-';
        s++;
    }
    if (strcmp(s, "0") == 0) {
        *out = 0;
        return 0;
    }
    if (!*s)
        goto invalid;
    while (*s) {
        if (!(*s == '.' || (*s >= '0' && *s <= '9')))
            goto invalid;
        double g = 0;
        bool pre = false, post = false;
        for (; *s >= '0' && *s <= '9'; s++, pre = true)
            g = g * 10 + (*s - '0');
        if (*s == '.') {
            double scale = 1;
            for (s++; *s >= '0' && *s <= '9'; s++, post = true) {
                scale /= 10;
                g += (*s - '0') * scale;
            }
        }
        if (!pre && !post)
            goto invalid;
        const char *u = s;
        while (*s && *s != '.' && !(*s >= '0' && *s <= '9'))
            s++;
        double unit = byte_unit(u, (size_t)(s - u));
        if (unit == 0) {
            snprintf(msg, msgcap, "units: unknown unit %.*s in %s", (int)(s - u), u, orig);
            return BS_EINVAL;
        }
        f += g * unit;
    }
    if (neg)
        f = -f;
    if (f < -9223372036854775808.0 || f > 9223372036854775807.0) {
        snprintf(msg, msgcap, "units: overflow parsing unit");
        return BS_EINVAL;
    }
    *out = (int64_t)f;
    return 0;
invalid:
    snprintf(msg, msgcap, "units: invalid %s", orig);
    return BS_EINVAL;
}

/* body_size_limit: a byte size with units. Null leaves *out unchanged. */
static int scalar_bytes(struct decoder *d, const struct pair *p, int64_t *out)
{
    if (node_is_null(p->value))
        return 0;
    const char *s;
    size_t len;
    int rc = scalar_text(d, p->value, p->k, p->klen, &s, &len);
    if (rc < 0)
        return rc;
    char msg[MSG_TEXT_MAX * 2 + 64];
    if (len > MSG_TEXT_MAX)
        return dec_fail(d, p->value, BS_EINVAL, "units: invalid %.*s", MSG_TEXT_MAX, s);
    if (parse_base2_bytes(s, out, msg, sizeof msg) != 0)
        return dec_fail(d, p->value, BS_EINVAL, "%s", msg);
    return 0;
}

/* A file name: like scalar_dup, then made relative to the configuration's
 * directory as Prometheus's SetDirectory does. An empty value is absent. */
static int scalar_path(struct decoder *d, const struct pair *p, char **dst)
{
    char *v = NULL;
    int rc = scalar_dup(d, p, &v);
    if (rc < 0)
        return rc;
    free(*dst);
    *dst = NULL;
    if (!v[0]) {
        free(v);
        return 0;
    }
    if (v[0] == '/' || !d->base_dir || strcmp(d->base_dir, ".") == 0) {
        *dst = v;
        return 0;
    }
    char *joined = NULL;
    int n = asprintf(&joined, "%s/%s", d->base_dir, v);
    free(v);
    if (n < 0)
        return dec_nomem(d);
    *dst = joined;
    return 0;
}

/* Fail unless the file named at node at exists, as promtool words it:
 * error checking client cert file "x": stat x: no such file or directory */
static int check_file(struct decoder *d, const yaml_node_t *at, const char *what, const char *path)
{
    struct stat st;
    if (!path || stat(path, &st) == 0)
        return 0;
    char e[128];
    snprintf(e, sizeof e, "%s", strerror(errno));
    if (e[0] >= 'A' && e[0] <= 'Z' && !(e[1] >= 'A' && e[1] <= 'Z'))
        e[0] = (char)(e[0] - 'A' + 'a'); /* Go's wording: "no such file or directory" */
    return dec_fail(d, at, BS_EINVAL, "error checking %s \"%.*s\": stat %.*s: %s", what,
                    MSG_TEXT_MAX, path, MSG_TEXT_MAX, path, e);
}

/* The later of two nodes in the file (either may be NULL). */
static const yaml_node_t *node_later(const yaml_node_t *a, const yaml_node_t *b)
{
    if (!a)
        return b;
    if (!b)
        return a;
    if (a->start_mark.index != b->start_mark.index)
        return a->start_mark.index > b->start_mark.index ? a : b;
    return a;
}

/* ---------------------------------------------------------------- limits */

/* One of the limit keys of a job or of global into l; returns 1 when p is
 * not a limit key, else 0 or an error. */
static int dec_limit(struct decoder *d, const struct pair *p, struct config_limits *l)
{
    if (key_is(p, "sample_limit"))
        return scalar_uint(d, p, &l->sample_limit, "uint");
    if (key_is(p, "target_limit"))
        return scalar_uint(d, p, &l->target_limit, "uint");
    if (key_is(p, "label_limit"))
        return scalar_uint(d, p, &l->label_limit, "uint");
    if (key_is(p, "label_name_length_limit"))
        return scalar_uint(d, p, &l->label_name_length_limit, "uint");
    if (key_is(p, "label_value_length_limit"))
        return scalar_uint(d, p, &l->label_value_length_limit, "uint");
    if (key_is(p, "body_size_limit"))
        return scalar_bytes(d, p, &l->body_size_limit);
    return 1;
}

/* ------------------------------------------------------------ relabeling */

static const char *const no_source_labels[1] = {NULL};

/* One relabel config: a mapping decoded into a spec, then validated and
 * compiled by the labels module; its messages get this entry's position. */
static int dec_relabel(struct decoder *d, yaml_node_t *n, const char *kind,
                       struct labels_relabel_config *out)
{
    if (node_is_null(n))
        return dec_fail(d, n, BS_EINVAL, "empty or null %s relabeling rule in scrape config", kind);
    if (n->type != YAML_MAPPING_NODE)
        return dec_fail(d, n, BS_EPARSE, "expected a mapping for each relabeling rule");
    struct labels_relabel_spec spec;
    memset(&spec, 0, sizeof spec);
    char *strs[6] = {0}; /* action, separator, regex, target_label, replacement */
    char **src = NULL;
    size_t nsrc = 0;
    const yaml_node_t *regex_node = NULL;
    struct pairs ps = {0};
    int rc = map_collect(d, n, &ps);
    for (size_t i = 0; i < ps.n && rc == 0; i++) {
        const struct pair *p = &ps.v[i];
        if (key_is(p, "source_labels")) {
            for (size_t j = 0; j < nsrc; j++)
                free(src[j]);
            free(src);
            src = NULL;
            nsrc = 0;
            spec.source_labels = node_is_null(p->value) ? NULL : no_source_labels;
            rc = dec_string_list(d, p, &src, &nsrc);
        } else if (key_is(p, "action")) {
            if (!node_is_null(p->value))
                rc = scalar_dup(d, p, &strs[0]);
        } else if (key_is(p, "separator")) {
            if (!node_is_null(p->value))
                rc = scalar_dup(d, p, &strs[1]);
        } else if (key_is(p, "regex")) {
            if (!node_is_null(p->value)) {
                rc = scalar_dup(d, p, &strs[2]);
                regex_node = p->value;
            }
        } else if (key_is(p, "target_label")) {
            if (!node_is_null(p->value))
                rc = scalar_dup(d, p, &strs[3]);
        } else if (key_is(p, "replacement")) {
            if (!node_is_null(p->value))
                rc = scalar_dup(d, p, &strs[4]);
        } else if (key_is(p, "modulus")) {
            rc = scalar_uint(d, p, &spec.modulus, "uint64");
        } else {
            rc = dec_fail(d, p->key, BS_EPARSE, "field %.*s not found in type relabel.plain",
                          MSG_TEXT_MAX, p->k);
        }
    }
    free(ps.v);
    if (rc == 0) {
        if (nsrc)
            spec.source_labels = (const char *const *)src;
        spec.nsource_labels = nsrc;
        spec.action = strs[0];
        spec.separator = strs[1];
        spec.regex = strs[2];
        spec.target_label = strs[3];
        spec.replacement = strs[4];
        rc = labels_relabel_config_init(out, &spec, d->err);
        if (rc == BS_ENOMEM) {
            rc = dec_nomem(d);
        } else if (rc < 0) {
            const yaml_node_t *at = rc == BS_EPARSE && regex_node ? regex_node : n;
            bs_error_prefix(d->err, "%s:%zu:%zu", d->name, at->start_mark.line + 1,
                            at->start_mark.column + 1);
        }
    }
    for (size_t j = 0; j < nsrc; j++)
        free(src[j]);
    free(src);
    for (size_t j = 0; j < 6; j++)
        free(strs[j]);
    return rc;
}

static int dec_relabel_list(struct decoder *d, const struct pair *p, const char *kind,
                            struct labels_relabel_config **out, size_t *nout)
{
    bool is_null;
    int rc = expect_list(d, p, &is_null);
    for (size_t i = 0; i < *nout; i++)
        labels_relabel_config_fini(&(*out)[i]);
    free(*out);
    *out = NULL;
    *nout = 0;
    if (rc < 0 || is_null)
        return rc;
    size_t n = seq_len(p->value);
    if ((rc = dec_count(d, n, p->value)) < 0 || n == 0)
        return rc;
    struct labels_relabel_config *v = calloc(n, sizeof *v);
    if (!v)
        return dec_nomem(d);
    *out = v;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = dec_node(d, p->value->data.sequence.items.start[i]);
        if (!item)
            return dec_fail(d, p->value, BS_EPARSE, "malformed list for key %.*s", MSG_TEXT_MAX,
                            p->k);
        if ((rc = dec_relabel(d, item, kind, &v[i])) < 0)
            return rc;
        *nout = i + 1;
    }
    return 0;
}

/* ----------------------------------------------------------- HTTP client */

/* Where the HTTP client keys of one job were written, for messages. */
struct http_nodes {
    const yaml_node_t *basic_auth, *authorization, *oauth2, *bearer_node, *bearer_file_node;
    const yaml_node_t *password, *password_file, *credentials, *credentials_file;
    const yaml_node_t *tls, *ca, *ca_file, *cert, *cert_file, *key, *key_file;
    const yaml_node_t *min_version, *max_version;
    char *bearer_token, *bearer_token_file;
    enum config_tls_version max_version_v;
};

static int dec_basic_auth(struct decoder *d, const struct pair *bp, struct config_http_client *h,
                          struct http_nodes *hn)
{
    bool is_null;
    int rc = expect_mapping(d, bp, &is_null);
    if (rc < 0 || is_null)
        return rc;
    h->has_basic_auth = true;
    hn->basic_auth = bp->key;
    struct pairs ps = {0};
    rc = map_collect(d, bp->value, &ps);
    for (size_t i = 0; i < ps.n && rc == 0; i++) {
        const struct pair *p = &ps.v[i];
        if (key_is(p, "username")) {
            rc = scalar_dup(d, p, &h->username);
        } else if (key_is(p, "password")) {
            rc = scalar_dup(d, p, &h->password);
            hn->password = p->key;
        } else if (key_is(p, "password_file")) {
            rc = scalar_path(d, p, &h->password_file);
            hn->password_file = p->value;
        } else {
            rc = dec_other_key(d, SEC_BASIC_AUTH, p, "config.plain");
        }
    }
    free(ps.v);
    return rc;
}

static int dec_authorization(struct decoder *d, const struct pair *ap, struct config_http_client *h,
                             struct http_nodes *hn)
{
    bool is_null;
    int rc = expect_mapping(d, ap, &is_null);
    if (rc < 0 || is_null)
        return rc;
    h->has_authorization = true;
    hn->authorization = ap->key;
    struct pairs ps = {0};
    rc = map_collect(d, ap->value, &ps);
    for (size_t i = 0; i < ps.n && rc == 0; i++) {
        const struct pair *p = &ps.v[i];
        if (key_is(p, "type")) {
            rc = scalar_dup(d, p, &h->auth_type);
        } else if (key_is(p, "credentials")) {
            rc = scalar_dup(d, p, &h->auth_credentials);
            hn->credentials = p->key;
        } else if (key_is(p, "credentials_file")) {
            rc = scalar_path(d, p, &h->auth_credentials_file);
            hn->credentials_file = p->value;
        } else {
            rc = dec_other_key(d, SEC_AUTHORIZATION, p, "config.Authorization");
        }
    }
    free(ps.v);
    return rc;
}

static int tls_version(struct decoder *d, const struct pair *p, enum config_tls_version *out)
{
    static const char *const names[] = {"TLS10", "TLS11", "TLS12", "TLS13"};
    const char *s;
    size_t len;
    if (node_is_null(p->value))
        return 0;
    int rc = scalar_text(d, p->value, p->k, p->klen, &s, &len);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < 4; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (enum config_tls_version)(CONFIG_TLS_10 + i);
            return 0;
        }
    }
    return dec_fail(d, p->value, BS_EINVAL, "unknown TLS version: %.*s",
                    (int)(len > MSG_TEXT_MAX ? MSG_TEXT_MAX : len), s);
}

static int dec_tls(struct decoder *d, const struct pair *tp, struct config_tls *t,
                   struct http_nodes *hn)
{
    bool is_null;
    int rc = expect_mapping(d, tp, &is_null);
    if (rc < 0 || is_null)
        return rc;
    hn->tls = tp->key;
    struct pairs ps = {0};
    rc = map_collect(d, tp->value, &ps);
    for (size_t i = 0; i < ps.n && rc == 0; i++) {
        const struct pair *p = &ps.v[i];
        if (key_is(p, "ca_file")) {
            rc = scalar_path(d, p, &t->ca_file);
            hn->ca_file = p->value;
        } else if (key_is(p, "ca")) {
            rc = scalar_dup(d, p, &t->ca);
            hn->ca = p->key;
        } else if (key_is(p, "cert_file")) {
            rc = scalar_path(d, p, &t->cert_file);
            hn->cert_file = p->value;
        } else if (key_is(p, "cert")) {
            rc = scalar_dup(d, p, &t->cert);
            hn->cert = p->key;
        } else if (key_is(p, "key_file")) {
            rc = scalar_path(d, p, &t->key_file);
            hn->key_file = p->value;
        } else if (key_is(p, "key")) {
            rc = scalar_dup(d, p, &t->key);
            hn->key = p->key;
        } else if (key_is(p, "server_name")) {
            rc = scalar_dup(d, p, &t->server_name);
        } else if (key_is(p, "insecure_skip_verify")) {
            rc = scalar_bool(d, p, &t->insecure_skip_verify);
        } else if (key_is(p, "min_version")) {
            rc = tls_version(d, p, &t->min_version);
            hn->min_version = p->value;
        } else if (key_is(p, "max_version")) {
            rc = tls_version(d, p, &hn->max_version_v);
            hn->max_version = p->value;
        } else {
            rc = dec_other_key(d, SEC_TLS, p, "config.plain");
        }
    }
    free(ps.v);
    /* Empty strings mean absent. */
    char **strs[] = {&t->ca, &t->cert, &t->key, &t->server_name};
    for (size_t i = 0; rc == 0 && i < sizeof strs / sizeof strs[0]; i++) {
        if (*strs[i] && !**strs[i]) {
            free(*strs[i]);
            *strs[i] = NULL;
        }
    }
    return rc;
}

/* proxy_url: Go's url.Parse accepts almost anything; what it refuses and a
 * user plausibly writes is a missing scheme. */
static int dec_proxy_url(struct decoder *d, const struct pair *p, struct config_http_client *h)
{
    int rc = scalar_dup(d, p, &h->proxy_url);
    if (rc < 0)
        return rc;
    const char *u = h->proxy_url;
    if (!u[0]) {
        free(h->proxy_url);
        h->proxy_url = NULL;
        return 0;
    }
    if (u[0] == ':')
        return dec_fail(d, p->value, BS_EINVAL, "parse \"%.*s\": missing protocol scheme",
                        MSG_TEXT_MAX, u);
    return 0;
}

/* Prometheus's HTTPClientConfig.Validate() and TLS checks, then promtool's
 * checks that the files exist; folds bearer_token(_file) into
 * authorization. at is the job node (fallback position). */
static int http_finish(struct decoder *d, const yaml_node_t *at, struct config_http_client *h,
                       struct http_nodes *hn)
{
    const yaml_node_t *w;
    bool bearer = hn->bearer_token || hn->bearer_token_file;
    const yaml_node_t *bearer_at = node_later(hn->bearer_node, hn->bearer_file_node);
    if (hn->bearer_token && hn->bearer_token_file)
        return dec_fail(d, bearer_at, BS_EINVAL,
                        "at most one of bearer_token & bearer_token_file must be configured");
    if ((h->has_basic_auth || hn->oauth2) && bearer) {
        w = node_later(node_later(hn->basic_auth, hn->oauth2), bearer_at);
        return dec_fail(d, w, BS_EINVAL,
                        "at most one of basic_auth, oauth2, bearer_token & bearer_token_file "
                        "must be configured");
    }
    if (h->has_basic_auth && h->password && h->password[0] && h->password_file)
        return dec_fail(d, node_later(hn->password, hn->password_file), BS_EINVAL,
                        "at most one of basic_auth password & password_file must be configured");
    if (h->has_authorization) {
        if (bearer)
            return dec_fail(d, node_later(hn->authorization, bearer_at), BS_EINVAL,
                            "authorization is not compatible with bearer_token & "
                            "bearer_token_file");
        if (h->auth_credentials && h->auth_credentials[0] && h->auth_credentials_file)
            return dec_fail(d, node_later(hn->credentials, hn->credentials_file), BS_EINVAL,
                            "at most one of authorization credentials & credentials_file must "
                            "be configured");
        /* Type: trimmed, default Bearer, never basic. */
        const char *ty = h->auth_type ? h->auth_type : "";
        while (*ty == ' ' || *ty == '\t' || *ty == '\n' || *ty == '\r')
            ty++;
        size_t tl = strlen(ty);
        while (tl && (ty[tl - 1] == ' ' || ty[tl - 1] == '\t' || ty[tl - 1] == '\n' ||
                      ty[tl - 1] == '\r'))
            tl--;
        char *nt = tl ? strndup(ty, tl) : strdup("Bearer");
        if (!nt)
            return dec_nomem(d);
        free(h->auth_type);
        h->auth_type = nt;
        if (strcasecmp(nt, "basic") == 0)
            return dec_fail(d, hn->authorization, BS_EINVAL,
                            "authorization type cannot be set to \"basic\", use \"basic_auth\" "
                            "instead");
        if (h->has_basic_auth || hn->oauth2)
            return dec_fail(
                d, node_later(hn->authorization, node_later(hn->basic_auth, hn->oauth2)), BS_EINVAL,
                "at most one of basic_auth, oauth2 & authorization must be configured");
    } else if (bearer) {
        h->has_authorization = true;
        if (!(h->auth_type = strdup("Bearer")))
            return dec_nomem(d);
        h->auth_credentials = hn->bearer_token;
        h->auth_credentials_file = hn->bearer_token_file;
        hn->bearer_token = hn->bearer_token_file = NULL;
        hn->credentials_file = hn->bearer_file_node;
    }
    if (h->password && !h->password[0]) {
        free(h->password);
        h->password = NULL;
    }
    if (h->auth_credentials && !h->auth_credentials[0]) {
        free(h->auth_credentials);
        h->auth_credentials = NULL;
    }

    struct config_tls *t = &h->tls;
    if (t->ca && t->ca_file)
        return dec_fail(d, node_later(hn->ca, hn->ca_file), BS_EINVAL,
                        "at most one of ca and ca_file must be configured");
    if (t->cert && t->cert_file)
        return dec_fail(d, node_later(hn->cert, hn->cert_file), BS_EINVAL,
                        "at most one of cert and cert_file must be configured");
    if (t->key && t->key_file)
        return dec_fail(d, node_later(hn->key, hn->key_file), BS_EINVAL,
                        "at most one of key and key_file must be configured");
    if (t->cert_file && !t->key_file && !t->key)
        return dec_fail(d, hn->cert_file, BS_EINVAL,
                        "client cert file \"%.*s\" specified without client key file", MSG_TEXT_MAX,
                        t->cert_file);
    if (t->key_file && !t->cert_file && !t->cert)
        return dec_fail(d, hn->key_file, BS_EINVAL,
                        "client key file \"%.*s\" specified without client cert file", MSG_TEXT_MAX,
                        t->key_file);
    if ((t->cert || t->cert_file) && !(t->key || t->key_file))
        return dec_fail(d, hn->tls, BS_EINVAL,
                        "exactly one of key or key_file must be configured when a client "
                        "certificate is configured");
    if ((t->key || t->key_file) && !(t->cert || t->cert_file))
        return dec_fail(d, hn->tls, BS_EINVAL,
                        "exactly one of cert or cert_file must be configured when a client key "
                        "is configured");
    if (hn->max_version_v && t->min_version > hn->max_version_v)
        return dec_fail(d, hn->max_version, BS_EINVAL,
                        "tls_config.max_version must be greater than or equal to "
                        "tls_config.min_version if both are specified");
    t->max_version = hn->max_version_v;

    int rc;
    const yaml_node_t *cred_at = hn->credentials_file ? hn->credentials_file : at;
    if ((rc = check_file(d, hn->password_file ? hn->password_file : at, "basic auth password file",
                         h->password_file)) < 0 ||
        (rc = check_file(d, cred_at, "authorization credentials or bearer token file",
                         h->auth_credentials_file)) < 0 ||
        (rc = check_file(d, hn->ca_file ? hn->ca_file : at, "CA file", t->ca_file)) < 0 ||
        (rc = check_file(d, hn->cert_file ? hn->cert_file : at, "client cert file", t->cert_file)) <
            0 ||
        (rc = check_file(d, hn->key_file ? hn->key_file : at, "client key file", t->key_file)) < 0)
        return rc;
    return 0;
}

/* ------------------------------------------------------ scrape protocols */

/* Prometheus 3's ScrapeProtocol names, in the sorted order its "supported:"
 * message lists them. */
static const struct {
    const char *name;
    enum config_scrape_protocol proto;
} scrape_protocol_names[] = {
    {"OpenMetricsText0.0.1", CONFIG_PROTO_OPENMETRICS_0_0_1},
    {"OpenMetricsText1.0.0", CONFIG_PROTO_OPENMETRICS_1_0_0},
    {"PrometheusProto", CONFIG_PROTO_PROMETHEUS_PROTO},
    {"PrometheusText0.0.4", CONFIG_PROTO_PROMETHEUS_0_0_4},
    {"PrometheusText1.0.0", CONFIG_PROTO_PROMETHEUS_1_0_0},
};
#define SCRAPE_PROTOCOLS_SUPPORTED                                                                 \
    "[OpenMetricsText0.0.1 OpenMetricsText1.0.0 PrometheusProto PrometheusText0.0.4 "              \
    "PrometheusText1.0.0]"

/* Where scrape_protocols / fallback_scrape_protocol were written; NULL:
 * absent or null (inherit / no fallback). Validated after the whole section
 * is read, since Prometheus's messages name the job. */
struct protocol_nodes {
    const yaml_node_t *list;
    const yaml_node_t *fallback;
};

static int dec_protocol_key(struct decoder *d, const struct pair *p, struct protocol_nodes *pn)
{
    bool is_null;
    int rc;
    if (key_is(p, "scrape_protocols")) {
        if ((rc = expect_list(d, p, &is_null)) < 0)
            return rc;
        pn->list = is_null ? NULL : p->value;
        return 0;
    }
    const char *s;
    size_t len;
    if ((rc = scalar_text(d, p->value, p->k, p->klen, &s, &len)) < 0)
        return rc;
    pn->fallback = len ? p->value : NULL;
    return 0;
}

static bool scrape_protocol_lookup(const char *s, size_t len, enum config_scrape_protocol *out)
{
    for (size_t i = 0; i < sizeof scrape_protocol_names / sizeof scrape_protocol_names[0]; i++) {
        if (strlen(scrape_protocol_names[i].name) == len &&
            memcmp(scrape_protocol_names[i].name, s, len) == 0) {
            *out = scrape_protocol_names[i].proto;
            return true;
        }
    }
    return false;
}

/* Prometheus's validateAcceptScrapeProtocols and fallback check. where is
 * "global config" or "scrape config with job name \"x\"". An absent list
 * leaves out->list as inherited (the caller filled it). */
static int protocols_finish(struct decoder *d, const struct protocol_nodes *pn, const char *where,
                            struct config_scrape_protocols *out)
{
    if (pn->list) {
        const yaml_node_t *l = pn->list;
        size_t n = seq_len(l);
        if (n == 0)
            return dec_fail(d, l, BS_EINVAL, "scrape_protocols cannot be empty for %s", where);
        const char *txt[CONFIG_SCRAPE_PROTOCOLS_MAX + 1];
        size_t lens[CONFIG_SCRAPE_PROTOCOLS_MAX + 1];
        out->n = 0;
        for (size_t i = 0; i < n; i++) {
            yaml_node_t *item = dec_node(d, l->data.sequence.items.start[i]);
            if (!item)
                return dec_fail(d, l, BS_EPARSE, "malformed list for key scrape_protocols");
            int rc = scalar_text(d, item, "scrape_protocols", 16, &txt[out->n], &lens[out->n]);
            if (rc < 0)
                return rc;
            bool dup = false;
            for (size_t k = 0; k < out->n && !dup; k++)
                dup = lens[k] == lens[out->n] && strncasecmp(txt[k], txt[out->n], lens[k]) == 0;
            if (dup) {
                /* Go's %v of the whole list: "[a b a]". */
                struct bs_buf all;
                bs_buf_init(&all, 256);
                int brc = bs_buf_putc(&all, '[');
                for (size_t k = 0; k < n && brc == 0; k++) {
                    yaml_node_t *it = dec_node(d, l->data.sequence.items.start[k]);
                    if (k)
                        brc = bs_buf_putc(&all, ' ');
                    if (brc == 0 && it && it->type == YAML_SCALAR_NODE)
                        brc = bs_buf_append(&all, (const char *)it->data.scalar.value,
                                            it->data.scalar.length);
                }
                if (brc == 0)
                    brc = bs_buf_putc(&all, ']');
                rc = dec_fail(d, item, BS_EINVAL,
                              "duplicated protocol in scrape_protocols, got %.*s%s for %s",
                              (int)all.len, all.data ? all.data : "", brc ? "..." : "", where);
                bs_buf_fini(&all);
                return rc;
            }
            enum config_scrape_protocol sp;
            if (!scrape_protocol_lookup(txt[out->n], lens[out->n], &sp))
                return dec_fail(d, item, BS_EINVAL,
                                "scrape_protocols: unknown scrape protocol %.*s, "
                                "supported: " SCRAPE_PROTOCOLS_SUPPORTED " for %s",
                                (int)(lens[out->n] > MSG_TEXT_MAX ? MSG_TEXT_MAX : lens[out->n]),
                                txt[out->n], where);
            /* Without duplicates there are at most five names. */
            out->list[out->n++] = sp;
        }
    }
    if (pn->fallback) {
        const char *s = (const char *)pn->fallback->data.scalar.value;
        size_t len = pn->fallback->data.scalar.length;
        if (!scrape_protocol_lookup(s, len, &out->fallback))
            return dec_fail(d, pn->fallback, BS_EINVAL,
                            "invalid fallback_scrape_protocol for %s: unknown scrape protocol "
                            "%.*s, supported: " SCRAPE_PROTOCOLS_SUPPORTED,
                            where, (int)(len > MSG_TEXT_MAX ? MSG_TEXT_MAX : len), s);
    }
    return 0;
}

/* ---------------------------------------------------------------- global */

struct global_set {
    const yaml_node_t *timeout_node; /* where scrape_timeout was set, or NULL */
    struct protocol_nodes protocols; /* scrape_protocols */
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
        } else if (key_is(p, "scrape_protocols")) {
            rc = dec_protocol_key(d, p, &gs->protocols);
        } else if ((rc = dec_limit(d, p, &c->limits)) > 0) {
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
    /* Prometheus 3's DefaultScrapeProtocols, unless the section set its own. */
    static const enum config_scrape_protocol defaults[] = {
        CONFIG_PROTO_OPENMETRICS_1_0_0, CONFIG_PROTO_OPENMETRICS_0_0_1,
        CONFIG_PROTO_PROMETHEUS_1_0_0, CONFIG_PROTO_PROMETHEUS_0_0_4};
    memset(&c->scrape_protocols, 0, sizeof c->scrape_protocols);
    memcpy(c->scrape_protocols.list, defaults, sizeof defaults);
    c->scrape_protocols.n = sizeof defaults / sizeof defaults[0];
    int rc = protocols_finish(d, &gs->protocols, "global config", &c->scrape_protocols);
    if (rc < 0)
        return rc;
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

/* check_urls: refuse targets with '/' (Prometheus checks this only when the
 * job has no relabel_configs, which could still fix such targets). */
static int dec_static(struct decoder *d, yaml_node_t *n, struct config_static_config *sc,
                      bool check_urls)
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
            for (size_t t = 0; rc == 0 && check_urls && t < sc->ntargets; t++)
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

/* A static_configs list (of a scrape job, an Alertmanager or an IPMI job)
 * into *out / *nout. */
static int dec_static_configs(struct decoder *d, const struct pair *p,
                              struct config_static_config **out, size_t *nout, bool check_urls)
{
    bool is_null;
    int rc = expect_list(d, p, &is_null);
    if (rc < 0 || is_null)
        return rc;
    size_t n = seq_len(p->value);
    if ((rc = dec_count(d, n, p->value)) < 0 || n == 0)
        return rc;
    if (*out)
        return dec_fail(d, p->key, BS_EPARSE, "static_configs given twice");
    if (!(*out = calloc(n, sizeof **out)))
        return dec_nomem(d);
    *nout = n;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = dec_node(d, p->value->data.sequence.items.start[i]);
        if (!item)
            return dec_fail(d, p->value, BS_EPARSE, "malformed list for key static_configs");
        if ((rc = dec_static(d, item, &(*out)[i], check_urls)) < 0)
            return rc;
    }
    return 0;
}

static int dec_static_list(struct decoder *d, const struct pair *p, struct config_scrape *sc,
                           bool check_urls)
{
    return dec_static_configs(d, p, &sc->static_configs, &sc->nstatic_configs, check_urls);
}

/* ------------------------------------------------------ service discovery */

/* One HTTP client key (of a job or of an http_sd config) into h; returns 1
 * when p is not one of them, else 0 or an error. */
static int dec_http_key(struct decoder *d, const struct pair *p, struct config_http_client *h,
                        struct http_nodes *hn)
{
    int rc = 0;
    if (key_is(p, "basic_auth")) {
        rc = dec_basic_auth(d, p, h, hn);
    } else if (key_is(p, "authorization")) {
        rc = dec_authorization(d, p, h, hn);
    } else if (key_is(p, "bearer_token")) {
        rc = scalar_dup(d, p, &hn->bearer_token);
        if (rc == 0 && !hn->bearer_token[0]) {
            free(hn->bearer_token);
            hn->bearer_token = NULL;
        }
        hn->bearer_node = p->key;
    } else if (key_is(p, "bearer_token_file")) {
        rc = scalar_path(d, p, &hn->bearer_token_file);
        hn->bearer_file_node = p->value;
    } else if (key_is(p, "tls_config")) {
        rc = dec_tls(d, p, &h->tls, hn);
    } else if (key_is(p, "proxy_url")) {
        rc = dec_proxy_url(d, p, h);
    } else if (key_is(p, "follow_redirects")) {
        rc = scalar_bool(d, p, &h->follow_redirects);
    } else if (key_is(p, "enable_http2")) {
        rc = scalar_bool(d, p, &h->enable_http2);
    } else {
        return 1;
    }
    return rc;
}

/* A refresh_interval; "0" or null keep the default. */
static int dec_refresh(struct decoder *d, const struct pair *p, int64_t *ms)
{
    int64_t v = 0;
    int rc = scalar_duration(d, p, &v);
    if (rc == 0 && v > 0)
        *ms = v;
    return rc;
}

/* Prometheus's file SD pattern: ^[^*]*(\*[^/]*)?\.(json|yml|yaml|JSON|YML|YAML)$ */
static bool file_sd_pattern_ok(const char *s)
{
    static const char *const exts[] = {".json", ".yml", ".yaml", ".JSON", ".YML", ".YAML"};
    size_t n = strlen(s), stem = 0;
    bool ext = false;
    for (size_t i = 0; i < sizeof exts / sizeof exts[0] && !ext; i++) {
        size_t l = strlen(exts[i]);
        if (n >= l && memcmp(s + n - l, exts[i], l) == 0) {
            ext = true;
            stem = n - l;
        }
    }
    if (!ext)
        return false;
    const char *star = memchr(s, '*', stem);
    return !star || !memchr(star, '/', stem - (size_t)(star - s));
}

/* Start the mapping of one sd config entry: null and non-mappings fail as
 * Prometheus words it. */
static int sd_entry(struct decoder *d, yaml_node_t *n, const char *list, struct pairs *ps)
{
    if (node_is_null(n))
        return dec_fail(d, n, BS_EINVAL, "empty or null section in %s", list);
    if (n->type != YAML_MAPPING_NODE)
        return dec_fail(d, n, BS_EPARSE, "expected a mapping for each entry of %s", list);
    return map_collect(d, n, ps);
}

static int dec_file_sd(struct decoder *d, yaml_node_t *n, void *elem)
{
    struct config_file_sd *fs = elem;
    struct pairs ps = {0};
    const yaml_node_t *files_node = NULL;
    fs->refresh_interval_ms = CONFIG_DEFAULT_FILE_SD_REFRESH_MS;
    int rc = sd_entry(d, n, "file_sd_configs", &ps);
    for (size_t i = 0; i < ps.n && rc == 0; i++) {
        const struct pair *p = &ps.v[i];
        if (key_is(p, "files")) {
            rc = dec_string_list(d, p, &fs->files, &fs->nfiles);
            files_node = p->value;
        } else if (key_is(p, "refresh_interval")) {
            rc = dec_refresh(d, p, &fs->refresh_interval_ms);
        } else {
            rc = dec_other_key(d, SEC_FILE_SD, p, "file.plain");
        }
    }
    free(ps.v);
    if (rc < 0)
        return rc;
    if (fs->nfiles == 0)
        return dec_fail(d, files_node ? files_node : n, BS_EINVAL,
                        "file service discovery config must contain at least one path name");
    for (size_t i = 0; i < fs->nfiles; i++) {
        const yaml_node_t *at = dec_node(d, files_node->data.sequence.items.start[i]);
        if (!file_sd_pattern_ok(fs->files[i]))
            return dec_fail(d, at, BS_EINVAL, "path name \"%.*s\" is not valid for file discovery",
                            MSG_TEXT_MAX, fs->files[i]);
        /* SetDirectory: relative to the configuration file. */
        const char *f = fs->files[i];
        if (f[0] != '/' && d->base_dir && strcmp(d->base_dir, ".") != 0) {
            char *joined = NULL;
            if (asprintf(&joined, "%s/%s", d->base_dir, f) < 0)
                return dec_nomem(d);
            free(fs->files[i]);
            fs->files[i] = joined;
        }
    }
    return 0;
}

/* Go's url.Parse checks that matter for http_sd: a scheme, http or https,
 * and a host. */
static int check_sd_url(struct decoder *d, const yaml_node_t *at, const char *u)
{
    if (!u || !u[0])
        return dec_fail(d, at, BS_EINVAL, "URL is missing");
    const char *colon = strchr(u, ':');
    size_t sl = colon ? (size_t)(colon - u) : 0;
    bool http = sl == 4 && strncasecmp(u, "http", 4) == 0;
    bool https = sl == 5 && strncasecmp(u, "https", 5) == 0;
    if (u[0] == ':')
        return dec_fail(d, at, BS_EINVAL, "parse \"%.*s\": missing protocol scheme", MSG_TEXT_MAX,
                        u);
    if (!http && !https)
        return dec_fail(d, at, BS_EINVAL, "URL scheme must be 'http' or 'https'");
    const char *h = colon + 1;
    if (strncmp(h, "//", 2) != 0)
        return dec_fail(d, at, BS_EINVAL, "host is missing in URL");
    h += 2;
    const char *at_sign = NULL;
    size_t hl = strcspn(h, "/?#");
    for (size_t i = 0; i < hl; i++)
        if (h[i] == '@')
            at_sign = h + i;
    if (at_sign) {
        hl -= (size_t)(at_sign + 1 - h);
        h = at_sign + 1;
    }
    if (hl == 0)
        return dec_fail(d, at, BS_EINVAL, "host is missing in URL");
    return 0;
}

static int dec_http_sd(struct decoder *d, yaml_node_t *n, void *elem)
{
    struct config_http_sd *hs = elem;
    struct pairs ps = {0};
    struct http_nodes hn;
    memset(&hn, 0, sizeof hn);
    const yaml_node_t *url_node = NULL;
    hs->refresh_interval_ms = CONFIG_DEFAULT_HTTP_SD_REFRESH_MS;
    hs->http.follow_redirects = true;
    hs->http.enable_http2 = true;
    int rc = sd_entry(d, n, "http_sd_configs", &ps);
    for (size_t i = 0; i < ps.n && rc == 0; i++) {
        const struct pair *p = &ps.v[i];
        if (key_is(p, "url")) {
            rc = scalar_dup(d, p, &hs->url);
            url_node = p->value;
        } else if (key_is(p, "refresh_interval")) {
            rc = dec_refresh(d, p, &hs->refresh_interval_ms);
        } else if ((rc = dec_http_key(d, p, &hs->http, &hn)) > 0) {
            if (key_is(p, "oauth2") && !node_is_null(p->value))
                hn.oauth2 = p->key;
            rc = dec_other_key(d, SEC_HTTP_SD, p, "http.plain");
        }
    }
    free(ps.v);
    if (rc == 0)
        rc = check_sd_url(d, url_node ? url_node : n, hs->url);
    if (rc == 0)
        rc = http_finish(d, n, &hs->http, &hn);
    free(hn.bearer_token);
    free(hn.bearer_token_file);
    return rc;
}

static int dec_dns_sd(struct decoder *d, yaml_node_t *n, void *elem)
{
    struct config_dns_sd *ds = elem;
    static const char *const types[] = {"SRV", "A", "AAAA", "MX", "NS"};
    struct pairs ps = {0};
    const yaml_node_t *names_node = NULL, *type_node = NULL;
    char *type = NULL;
    uint64_t port = 0;
    ds->refresh_interval_ms = CONFIG_DEFAULT_DNS_SD_REFRESH_MS;
    int rc = sd_entry(d, n, "dns_sd_configs", &ps);
    for (size_t i = 0; i < ps.n && rc == 0; i++) {
        const struct pair *p = &ps.v[i];
        if (key_is(p, "names")) {
            rc = dec_string_list(d, p, &ds->names, &ds->nnames);
            names_node = p->value;
        } else if (key_is(p, "type")) {
            rc = scalar_dup(d, p, &type);
            type_node = p->value;
        } else if (key_is(p, "port")) {
            rc = scalar_uint(d, p, &port, "int");
            if (rc == 0 && port > 65535)
                rc = dec_fail(d, p->value, BS_EINVAL, "invalid port %llu (key port)",
                              (unsigned long long)port);
        } else if (key_is(p, "refresh_interval")) {
            rc = dec_refresh(d, p, &ds->refresh_interval_ms);
        } else {
            rc = dec_other_key(d, SEC_DNS_SD, p, "dns.plain");
        }
    }
    free(ps.v);
    if (rc == 0 && ds->nnames == 0)
        rc = dec_fail(d, names_node ? names_node : n, BS_EINVAL,
                      "DNS-SD config must contain at least one SRV record name");
    if (rc == 0) {
        bool found = false;
        const char *t = type && type[0] ? type : "SRV";
        for (size_t i = 0; i < sizeof types / sizeof types[0] && !found; i++) {
            if (strcasecmp(t, types[i]) == 0) {
                ds->type = (enum config_dns_type)i;
                found = true;
            }
        }
        if (!found)
            rc = dec_fail(d, type_node, BS_EINVAL, "invalid DNS-SD records type %.*s", MSG_TEXT_MAX,
                          t);
        else if (ds->type != CONFIG_DNS_SRV && port == 0)
            rc = dec_fail(d, n, BS_EINVAL,
                          "a port is required in DNS-SD configs for all record types except SRV");
    }
    ds->port = (uint16_t)port;
    free(type);
    return rc;
}

/* Start of a list of mappings (the *_sd_configs lists, alertmanagers): *n
 * its length, 0 for null. */
static int sd_list_start(struct decoder *d, const struct pair *p, size_t *n)
{
    bool is_null;
    int rc = expect_list(d, p, &is_null);
    *n = 0;
    if (rc < 0 || is_null)
        return rc;
    *n = seq_len(p->value);
    return dec_count(d, *n, p->value);
}

/* Decodes one list element, node n, into the zeroed element elem. */
typedef int (*dec_elem_fn)(struct decoder *d, yaml_node_t *n, void *elem);

/* Decode the list of mappings p->value into a calloc'd array of elements of
 * `size` bytes, element i by fn. *arr and *nout are set as soon as the
 * array exists, so that a partly decoded array is owned, and freed, by the
 * caller's config struct like a complete one. */
static int dec_mapping_list(struct decoder *d, const struct pair *p, size_t size, dec_elem_fn fn,
                            void **arr, size_t *nout)
{
    size_t n;
    int rc = sd_list_start(d, p, &n);
    if (rc < 0 || n == 0)
        return rc;
    if (!(*arr = calloc(n, size)))
        return dec_nomem(d);
    *nout = n;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = fn(d, dec_node(d, p->value->data.sequence.items.start[i]), (char *)*arr + i * size);
    return rc;
}

/* The service discovery lists of a scrape or IPMI job. */
struct sd_lists {
    struct config_file_sd **file;
    size_t *nfile;
    struct config_http_sd **http;
    size_t *nhttp;
    struct config_dns_sd **dns;
    size_t *ndns;
};

/* Decode p if it is one of the *_sd_configs keys: returns 1 if it is not,
 * else 0 or the decoding error. */
static int dec_sd_key(struct decoder *d, const struct pair *p, const struct sd_lists *l)
{
    void *arr = NULL;
    int rc;
    if (key_is(p, "file_sd_configs")) {
        rc = dec_mapping_list(d, p, sizeof **l->file, dec_file_sd, &arr, l->nfile);
        *l->file = arr;
    } else if (key_is(p, "http_sd_configs")) {
        rc = dec_mapping_list(d, p, sizeof **l->http, dec_http_sd, &arr, l->nhttp);
        *l->http = arr;
    } else if (key_is(p, "dns_sd_configs")) {
        rc = dec_mapping_list(d, p, sizeof **l->dns, dec_dns_sd, &arr, l->ndns);
        *l->dns = arr;
    } else {
        rc = 1;
    }
    return rc;
}

/* Whether a job's keys ps hold a non-empty relabel_configs list. */
static bool has_relabeling(const struct pairs *ps)
{
    for (size_t i = 0; i < ps->n; i++)
        if (key_is(&ps->v[i], "relabel_configs") && ps->v[i].value->type == YAML_SEQUENCE_NODE &&
            seq_len(ps->v[i].value) > 0)
            return true;
    return false;
}

static int dec_scrape(struct decoder *d, yaml_node_t *n, void *elem, struct job_ref *ref)
{
    struct config_scrape *sc = elem;
    const struct config *c = d->cfg;
    if (node_is_null(n))
        return dec_fail(d, n, BS_EINVAL, "empty or null scrape config section");
    if (n->type != YAML_MAPPING_NODE)
        return dec_fail(d, n, BS_EPARSE, "expected a mapping for each entry of scrape_configs");
    sc->honor_timestamps = true;
    if (!(sc->metrics_path = strdup("/metrics")) || !(sc->scheme = strdup("http")))
        return dec_nomem(d);
    const yaml_node_t *timeout_node = NULL, *scheme_node = NULL;
    struct http_nodes hn;
    memset(&hn, 0, sizeof hn);
    struct protocol_nodes pn = {NULL, NULL};
    sc->http.follow_redirects = true;
    sc->http.enable_http2 = true;
    ref->node = n;
    struct pairs ps = {0};
    int rc = map_collect(d, n, &ps);
    /* Targets that look like URLs are an error only without relabeling. */
    bool check_urls = !has_relabeling(&ps);
    const struct sd_lists sd = {&sc->file_sd_configs,  &sc->nfile_sd_configs, &sc->http_sd_configs,
                                &sc->nhttp_sd_configs, &sc->dns_sd_configs,   &sc->ndns_sd_configs};
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
            rc = dec_static_list(d, p, sc, check_urls);
        } else if (key_is(p, "relabel_configs")) {
            rc = dec_relabel_list(d, p, "target", &sc->relabel_configs, &sc->nrelabel_configs);
        } else if (key_is(p, "metric_relabel_configs")) {
            rc = dec_relabel_list(d, p, "metric", &sc->metric_relabel_configs,
                                  &sc->nmetric_relabel_configs);
        } else if ((rc = dec_sd_key(d, p, &sd)) <= 0) {
            /* a service discovery list: decoded, or failed */
        } else if (key_is(p, "scrape_protocols") || key_is(p, "fallback_scrape_protocol")) {
            rc = dec_protocol_key(d, p, &pn);
        } else if ((rc = dec_http_key(d, p, &sc->http, &hn)) <= 0) {
            /* an HTTP client key: decoded, or failed */
        } else if ((rc = dec_limit(d, p, &sc->limits)) > 0) {
            if (key_is(p, "oauth2") && !node_is_null(p->value))
                hn.oauth2 = p->key;
            rc = dec_other_key(d, SEC_SCRAPE, p, "config.ScrapeConfig");
        }
    }
    free(ps.v);
    if (rc == 0 && sc->job_name && sc->job_name[0])
        rc = http_finish(d, n, &sc->http, &hn);
    free(hn.bearer_token);
    free(hn.bearer_token_file);
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
    /* Limits not set on the job come from the global section. */
    struct config_limits *l = &sc->limits;
    const struct config_limits *g = &c->limits;
    if (!l->sample_limit)
        l->sample_limit = g->sample_limit;
    if (!l->target_limit)
        l->target_limit = g->target_limit;
    if (!l->label_limit)
        l->label_limit = g->label_limit;
    if (!l->label_name_length_limit)
        l->label_name_length_limit = g->label_name_length_limit;
    if (!l->label_value_length_limit)
        l->label_value_length_limit = g->label_value_length_limit;
    if (!l->body_size_limit)
        l->body_size_limit = g->body_size_limit;
    /* scrape_protocols not set on the job come from the global section. */
    sc->protocols = c->scrape_protocols;
    sc->protocols.fallback = CONFIG_PROTO_NONE;
    char where[MSG_TEXT_MAX + 48];
    snprintf(where, sizeof where, "scrape config with job name \"%.*s\"", MSG_TEXT_MAX,
             sc->job_name);
    return protocols_finish(d, &pn, where, &sc->protocols);
}

static int job_ref_cmp(const void *a, const void *b)
{
    const struct job_ref *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Decodes one job (scrape or IPMI) of a job list into the zeroed elem and
 * records it in ref (its name and the node to point errors at). */
typedef int (*dec_job_fn)(struct decoder *d, yaml_node_t *n, void *elem, struct job_ref *ref);

/* A list of jobs under key (scrape_configs, ipmi_configs): a calloc'd array
 * of elements of `size` bytes decoded by fn, and their refs (*refs, in list
 * order, malloc'd: the caller frees them). *arr, *nout and *refs are set as
 * soon as they exist, so that the config owns a partly decoded array. */
static int dec_job_list(struct decoder *d, const struct pair *p, const char *key, size_t size,
                        dec_job_fn fn, void **arr, size_t *nout, struct job_ref **refs)
{
    bool is_null;
    int rc = expect_list(d, p, &is_null);
    if (rc < 0 || is_null)
        return rc;
    size_t n = seq_len(p->value);
    if ((rc = dec_count(d, n, p->value)) < 0 || n == 0)
        return rc;
    if (!(*arr = calloc(n, size)))
        return dec_nomem(d);
    *nout = n;
    if (!(*refs = calloc(n, sizeof **refs)))
        return dec_nomem(d);
    for (size_t i = 0; i < n && rc == 0; i++) {
        yaml_node_t *item = dec_node(d, p->value->data.sequence.items.start[i]);
        (*refs)[i].idx = i;
        if (!item)
            rc = dec_fail(d, p->value, BS_EPARSE, "malformed list for key %s", key);
        else
            rc = fn(d, item, (char *)*arr + i * size, &(*refs)[i]);
    }
    return rc;
}

static int dec_scrape_list(struct decoder *d, const struct pair *p)
{
    struct config *c = d->cfg;
    void *arr = NULL;
    struct job_ref *refs = NULL;
    int rc = dec_job_list(d, p, "scrape_configs", sizeof *c->scrape_configs, dec_scrape, &arr,
                          &c->nscrape_configs, &refs);
    c->scrape_configs = arr;
    size_t n = c->nscrape_configs;
    if (rc == 0 && refs) {
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

/* ------------------------------------------------------------ rule_files */

/* Prometheus's patRulePath: ^[^*]*(\*[^/]*)?$ (one '*', in the last path
 * component). */
static bool rule_pattern_ok(const char *s)
{
    const char *star = strchr(s, '*');
    return !star || (!strchr(star + 1, '*') && !strchr(star, '/'));
}

static int dec_rule_files(struct decoder *d, const struct pair *p)
{
    struct config *c = d->cfg;
    int rc = dec_string_list(d, p, &c->rule_files, &c->nrule_files);
    for (size_t i = 0; rc == 0 && i < c->nrule_files; i++) {
        const char *f = c->rule_files[i];
        if (!rule_pattern_ok(f))
            return dec_fail(d, dec_node(d, p->value->data.sequence.items.start[i]), BS_EINVAL,
                            "invalid rule file path \"%.*s\"", MSG_TEXT_MAX, f);
        if (f[0] && f[0] != '/' && d->base_dir && strcmp(d->base_dir, ".") != 0) {
            char *joined = NULL;
            if (asprintf(&joined, "%s/%s", d->base_dir, f) < 0)
                return dec_nomem(d);
            free(c->rule_files[i]);
            c->rule_files[i] = joined;
        }
    }
    return rc;
}

/* -------------------------------------------------------------- alerting */

/* One element of alerting.alertmanagers. */
static int dec_alertmanager(struct decoder *d, yaml_node_t *n, void *elem)
{
    struct config_alertmanager *am = elem;
    if (node_is_null(n))
        return dec_fail(d, n, BS_EINVAL, "empty or null section in alertmanagers");
    if (n->type != YAML_MAPPING_NODE)
        return dec_fail(d, n, BS_EPARSE, "expected a mapping for each entry of alertmanagers");
    am->timeout_ms = CONFIG_DEFAULT_ALERTMANAGER_TIMEOUT_MS;
    am->http.follow_redirects = true;
    am->http.enable_http2 = true;
    if (!(am->scheme = strdup("http")) || !(am->path_prefix = strdup("")))
        return dec_nomem(d);
    const yaml_node_t *scheme_node = NULL;
    struct http_nodes hn;
    memset(&hn, 0, sizeof hn);
    struct pairs ps = {0};
    int rc = map_collect(d, n, &ps);
    for (size_t i = 0; i < ps.n && rc == 0; i++) {
        const struct pair *p = &ps.v[i];
        if (key_is(p, "scheme")) {
            if (!node_is_null(p->value)) {
                rc = scalar_dup(d, p, &am->scheme);
                scheme_node = p->value;
            }
        } else if (key_is(p, "path_prefix")) {
            rc = scalar_dup(d, p, &am->path_prefix);
        } else if (key_is(p, "timeout")) {
            int64_t v = 0;
            rc = scalar_duration(d, p, &v);
            if (rc == 0 && v > 0)
                am->timeout_ms = v;
        } else if (key_is(p, "api_version")) {
            const char *v;
            size_t len;
            rc = scalar_text(d, p->value, p->k, p->klen, &v, &len);
            if (rc == 0 && len == 2 && memcmp(v, "v1", 2) == 0)
                rc = dec_fail(d, p->value, BS_EINVAL, "alertmanager api v1 is no longer supported");
            else if (rc == 0 && len > 0 && !(len == 2 && memcmp(v, "v2", 2) == 0))
                rc = dec_fail(d, p->value, BS_EINVAL,
                              "expected Alertmanager api version to be one of [v1 v2] but got "
                              "%.*s",
                              (int)(len > MSG_TEXT_MAX ? MSG_TEXT_MAX : len), v);
        } else if (key_is(p, "static_configs")) {
            rc = dec_static_configs(d, p, &am->static_configs, &am->nstatic_configs, true);
        } else if ((rc = dec_http_key(d, p, &am->http, &hn)) > 0) {
            if (key_is(p, "oauth2") && !node_is_null(p->value))
                hn.oauth2 = p->key;
            rc = dec_other_key(d, SEC_ALERTMANAGER, p, "config.AlertmanagerConfig");
        }
    }
    free(ps.v);
    if (rc == 0)
        rc = http_finish(d, n, &am->http, &hn);
    free(hn.bearer_token);
    free(hn.bearer_token_file);
    if (rc == 0 && strcmp(am->scheme, "http") != 0 && strcmp(am->scheme, "https") != 0)
        rc = dec_fail(d, scheme_node, BS_EINVAL,
                      "invalid scheme \"%.*s\" for alertmanager config: must be \"http\" or "
                      "\"https\"",
                      MSG_TEXT_MAX, am->scheme);
    return rc;
}

static int dec_alerting(struct decoder *d, const struct pair *ap)
{
    struct config *c = d->cfg;
    bool is_null;
    int rc = expect_mapping(d, ap, &is_null);
    if (rc < 0 || is_null)
        return rc;
    struct pairs ps = {0};
    rc = map_collect(d, ap->value, &ps);
    for (size_t i = 0; i < ps.n && rc == 0; i++) {
        const struct pair *p = &ps.v[i];
        if (key_is(p, "alertmanagers")) {
            void *arr = NULL;
            rc = dec_mapping_list(d, p, sizeof *c->alertmanagers, dec_alertmanager, &arr,
                                  &c->nalertmanagers);
            c->alertmanagers = arr;
        } else if (key_is(p, "alert_relabel_configs")) {
            rc = dec_relabel_list(d, p, "alert", &c->alert_relabel_configs,
                                  &c->nalert_relabel_configs);
        } else {
            rc = dec_other_key(d, SEC_ALERTING, p, "config.AlertingConfig");
        }
    }
    free(ps.v);
    return rc;
}

/* ---------------------------------------------------------- ipmi_configs */

/* The workaround flags libfreeipmi knows for each driver (freeipmi.conf(5));
 * the ipmi module maps them to bits. */
static const char *const ipmi_flags_lan20[] = {
    "authcap",        "intel20", "supermicro20", "sun20", "opensesspriv", "integritycheckvalue",
    "nochecksumcheck"};
static const char *const ipmi_flags_lan[] = {"authcap",        "idzero",    "forcepermsg",
                                             "unexpectedauth", "endianseq", "noauthcodecheck",
                                             "nochecksumcheck"};

static int ipmi_check_flags(struct decoder *d, const struct config_ipmi *ic,
                            const yaml_node_t *flags_node)
{
    bool lan = ic->driver == CONFIG_IPMI_DRIVER_LAN;
    const char *const *v = lan ? ipmi_flags_lan : ipmi_flags_lan20;
    size_t n = lan ? sizeof ipmi_flags_lan / sizeof ipmi_flags_lan[0]
                   : sizeof ipmi_flags_lan20 / sizeof ipmi_flags_lan20[0];
    for (size_t i = 0; i < ic->nworkaround_flags; i++) {
        bool ok = false;
        for (size_t k = 0; k < n && !ok; k++)
            ok = strcasecmp(ic->workaround_flags[i], v[k]) == 0;
        if (ok)
            continue;
        char list[256] = "";
        size_t at = 0;
        for (size_t k = 0; k < n && at < sizeof list; k++)
            at += (size_t)snprintf(list + at, sizeof list - at, "%s%s", k ? ", " : "", v[k]);
        return dec_fail(d, dec_node(d, flags_node->data.sequence.items.start[i]), BS_EINVAL,
                        "unknown workaround flag \"%.*s\" for driver %s (known: %s)", MSG_TEXT_MAX,
                        ic->workaround_flags[i], lan ? "LAN" : "LAN_2_0", list);
    }
    return 0;
}

static int dec_ipmi(struct decoder *d, yaml_node_t *n, void *elem, struct job_ref *ref)
{
    struct config_ipmi *ic = elem;
    const struct config *c = d->cfg;
    if (node_is_null(n))
        return dec_fail(d, n, BS_EINVAL, "empty or null ipmi config section");
    if (n->type != YAML_MAPPING_NODE)
        return dec_fail(d, n, BS_EPARSE, "expected a mapping for each entry of ipmi_configs");
    ic->cipher_suite_id = CONFIG_DEFAULT_IPMI_CIPHER_SUITE;
    ref->node = n;
    const yaml_node_t *timeout_node = NULL, *flags_node = NULL, *pw_node = NULL, *pwf_node = NULL;
    struct pairs ps = {0};
    int rc = map_collect(d, n, &ps);
    bool check_urls = !has_relabeling(&ps);
    const struct sd_lists sd = {&ic->file_sd_configs,  &ic->nfile_sd_configs, &ic->http_sd_configs,
                                &ic->nhttp_sd_configs, &ic->dns_sd_configs,   &ic->ndns_sd_configs};
    for (size_t i = 0; i < ps.n && rc == 0; i++) {
        const struct pair *p = &ps.v[i];
        if (key_is(p, "job_name")) {
            rc = scalar_dup(d, p, &ic->job_name);
            ref->node = p->value;
        } else if (key_is(p, "scrape_interval")) {
            rc = scalar_duration(d, p, &ic->scrape_interval_ms);
        } else if (key_is(p, "scrape_timeout")) {
            rc = scalar_duration(d, p, &ic->scrape_timeout_ms);
            timeout_node = p->value;
        } else if (key_is(p, "username")) {
            rc = scalar_dup(d, p, &ic->username);
        } else if (key_is(p, "password")) {
            rc = scalar_dup(d, p, &ic->password);
            pw_node = p->key;
        } else if (key_is(p, "password_file")) {
            rc = scalar_path(d, p, &ic->password_file);
            pwf_node = p->value;
        } else if (key_is(p, "driver") || key_is(p, "privilege")) {
            const char *v;
            size_t len;
            rc = scalar_text(d, p->value, p->k, p->klen, &v, &len);
            if (rc < 0 || len == 0)
                continue;
            bool drv = key_is(p, "driver");
#define IS(word) (len == strlen(word) && strncasecmp(v, word, len) == 0)
            if (drv && (IS("LAN_2_0") || IS("lanplus")))
                ic->driver = CONFIG_IPMI_DRIVER_LAN_2_0;
            else if (drv && IS("LAN"))
                ic->driver = CONFIG_IPMI_DRIVER_LAN;
            else if (!drv && IS("user"))
                ic->privilege = CONFIG_IPMI_PRIV_USER;
            else if (!drv && IS("operator"))
                ic->privilege = CONFIG_IPMI_PRIV_OPERATOR;
            else if (!drv && (IS("admin") || IS("administrator")))
                ic->privilege = CONFIG_IPMI_PRIV_ADMIN;
            else
                rc = dec_fail(d, p->value, BS_EINVAL, "unknown %s \"%.*s\": expected %s",
                              drv ? "driver" : "privilege",
                              (int)(len > MSG_TEXT_MAX ? MSG_TEXT_MAX : len), v,
                              drv ? "LAN_2_0 or LAN" : "user, operator or admin");
#undef IS
        } else if (key_is(p, "cipher_suite_id")) {
            uint64_t cs = (uint64_t)ic->cipher_suite_id;
            rc = scalar_uint(d, p, &cs, "int");
            if (rc == 0 && cs > 17)
                rc = dec_fail(d, p->value, BS_EINVAL,
                              "cipher_suite_id %llu out of range: IPMI 2.0 defines 0 to 17",
                              (unsigned long long)cs);
            ic->cipher_suite_id = (int)(cs > 17 ? 3 : cs);
        } else if (key_is(p, "workaround_flags")) {
            rc = dec_string_list(d, p, &ic->workaround_flags, &ic->nworkaround_flags);
            flags_node = p->value;
        } else if (key_is(p, "static_configs")) {
            rc = dec_static_configs(d, p, &ic->static_configs, &ic->nstatic_configs, check_urls);
        } else if ((rc = dec_sd_key(d, p, &sd)) <= 0) {
            /* a service discovery list: decoded, or failed */
        } else if (key_is(p, "relabel_configs")) {
            rc = dec_relabel_list(d, p, "target", &ic->relabel_configs, &ic->nrelabel_configs);
        } else {
            rc = dec_other_key(d, SEC_IPMI, p, "config.IPMIConfig");
        }
    }
    free(ps.v);
    if (rc < 0)
        return rc;
    if (!ic->job_name || !ic->job_name[0])
        return dec_fail(d, n, BS_EINVAL, "job_name is empty");
    ref->name = ic->job_name;
    if (ic->password && !ic->password[0]) {
        free(ic->password);
        ic->password = NULL;
    }
    if (ic->password && ic->password_file)
        return dec_fail(d, node_later(pw_node, pwf_node), BS_EINVAL,
                        "at most one of password & password_file must be configured");
    if ((rc = check_file(d, pwf_node ? pwf_node : n, "IPMI password file", ic->password_file)) < 0)
        return rc;
    if (flags_node && (rc = ipmi_check_flags(d, ic, flags_node)) < 0)
        return rc;
    if (ic->scrape_interval_ms == 0)
        ic->scrape_interval_ms = c->scrape_interval_ms;
    if (ic->scrape_timeout_ms > ic->scrape_interval_ms)
        return dec_fail(d, timeout_node, BS_EINVAL,
                        "scrape timeout greater than scrape interval for ipmi config with job "
                        "name \"%.*s\"",
                        MSG_TEXT_MAX, ic->job_name);
    if (ic->scrape_timeout_ms == 0)
        ic->scrape_timeout_ms = c->scrape_timeout_ms > ic->scrape_interval_ms
                                    ? ic->scrape_interval_ms
                                    : c->scrape_timeout_ms;
    if (ic->scrape_timeout_ms < 100)
        return dec_fail(d, timeout_node ? timeout_node : n, BS_EINVAL,
                        "scrape timeout below 100ms for ipmi config with job name \"%.*s\"",
                        MSG_TEXT_MAX, ic->job_name);
    return 0;
}

static int dec_ipmi_list(struct decoder *d, const struct pair *p, struct job_ref **refs_out)
{
    struct config *c = d->cfg;
    void *arr = NULL;
    int rc = dec_job_list(d, p, "ipmi_configs", sizeof *c->ipmi_configs, dec_ipmi, &arr,
                          &c->nipmi_configs, refs_out);
    c->ipmi_configs = arr;
    return rc;
}

/* IPMI job names are unique among IPMI jobs and scrape jobs alike: both
 * become the job label and the pool name in /api/v1/targets. */
static int check_ipmi_names(struct decoder *d, struct job_ref *refs, size_t n)
{
    const struct config *c = d->cfg;
    for (size_t i = 0; i < n; i++)
        if (config_scrape_find(c, refs[i].name))
            return dec_fail(d, refs[i].node, BS_EINVAL,
                            "job name \"%.*s\" of an ipmi config is already used by a scrape "
                            "config",
                            MSG_TEXT_MAX, refs[i].name);
    qsort(refs, n, sizeof *refs, job_ref_cmp);
    const struct job_ref *dup = NULL;
    for (size_t i = 1; i < n; i++)
        if (strcmp(refs[i - 1].name, refs[i].name) == 0 && (!dup || refs[i].idx < dup->idx))
            dup = &refs[i];
    if (dup)
        return dec_fail(d, dup->node, BS_EINVAL,
                        "found multiple ipmi configs with job name \"%.*s\"", MSG_TEXT_MAX,
                        dup->name);
    return 0;
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

int config_decode(yaml_document_t *doc, const char *name, const char *base_dir, struct config *cfg,
                  struct bs_error *err)
{
    struct decoder d = {.doc = doc, .name = name, .base_dir = base_dir, .err = err, .cfg = cfg};
    struct global_set gs = {0};
    struct pairs ps = {0};
    struct job_ref *ipmi_refs = NULL;
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
        else if (key_is(p, "rule_files"))
            rc = dec_rule_files(&d, p);
        else if (key_is(p, "alerting"))
            rc = dec_alerting(&d, p);
        else if (key_is(p, "ipmi_configs"))
            rc = dec_ipmi_list(&d, p, &ipmi_refs);
        else
            rc = dec_other_key(&d, SEC_TOP, p, "config.Config");
        if (rc < 0)
            goto done;
    }
    if (ipmi_refs && (rc = check_ipmi_names(&d, ipmi_refs, cfg->nipmi_configs)) < 0)
        goto done;
    rc = emit_warnings(&d);
done:
    free(ipmi_refs);
    free(ps.v);
    return rc;
}
