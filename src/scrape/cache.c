/* SPDX-License-Identifier: Apache-2.0
 *
 * The scrape cache: per target, a map from the raw series text of a scraped
 * line to the tsdb ref of that series (or "dropped by relabeling"). A
 * series seen in the previous scrape is appended by ref without merging or
 * relabeling its labels again. Entries not seen by a successful scrape are
 * evicted right after it, so the cache holds at most the series of one
 * scrape (plus those of a failed one in between), which the body size limit
 * bounds.
 *
 * Layout. An open-addressing table with linear probing, at most 3/4 full.
 * A slot holds the text's 64-bit hash, the entry pointer, the generation
 * (scrape iteration) that last saw the series and staleness flags, so a
 * lookup compares hashes in the flat slot array and costs one memcmp on a
 * hit, and the walks after a scrape (staleness, eviction) read the slots
 * only. An entry is one allocation: ref, length, text. Final labels are not
 * kept (the head has them; scrape_entry_labels derives them again from the
 * text in the rare case that the head no longer knows the ref), which
 * saves a label set per series. Eviction deletes by shifting the rest of
 * the probe chain back (no tombstones), so the steady state allocates
 * nothing.
 *
 * The cache also keeps the target's metric metadata (TYPE, HELP and UNIT of
 * each family of the last successful scrape), as Prometheus's scrapeCache
 * does, and this file answers the two metadata endpoints from it:
 *
 * Metadata. The scrape's pass over the body hashes the metadata; only when
 * that hash differs from the published set's does a metadata-only pass
 * build a fresh struct scrape_meta: one entry per family name, in a flat text buffer (so a set is
 * three allocations, whatever its size), found through an open-addressing
 * index while building, then sorted by name. When the scrape succeeds and
 * the new set differs from the published one, the scrape thread swaps the
 * two under the manager's mutex; the API takes the same mutex while it
 * writes JSON, so it never sees a set being freed. A failed scrape keeps the
 * previous metadata. Each set is capped (SCRAPE_META_MAX_FAMILIES,
 * SCRAPE_META_MAX_BYTES); families past a cap are simply not recorded.
 * Departure from Prometheus: it keeps an entry until ten scrapes after its
 * family disappeared; bongsu shows exactly the last successful scrape.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "scrape/scrape_int.h"

void scrape_cache_init(struct scrape_cache *c)
{
    memset(c, 0, sizeof(*c));
}

void scrape_cache_reset(struct scrape_cache *c)
{
    for (size_t i = 0; i < c->cap; i++)
        free(c->slots[i].e);
    free(c->slots);
    c->slots = NULL;
    c->cap = 0;
    c->count = 0;
}

void scrape_cache_fini(struct scrape_cache *c)
{
    scrape_cache_reset(c);
    scrape_meta_free(c->meta);
    memset(c, 0, sizeof(*c));
}

/* Move every occupied slot of old[0..ocap) into a zeroed table of cap. */
static void cache_rehash(struct scrape_cache_slot *to, size_t cap,
                         const struct scrape_cache_slot *old, size_t ocap)
{
    size_t mask = cap - 1;
    for (size_t i = 0; i < ocap; i++) {
        if (!old[i].e)
            continue;
        size_t j = (size_t)old[i].hash & mask;
        while (to[j].e)
            j = (j + 1) & mask;
        to[j] = old[i];
    }
}

/* Make room for one more entry at a load of at most 3/4; 0 or BS_ENOMEM. */
static int cache_reserve(struct scrape_cache *c)
{
    if ((c->count + 1) * 4 <= c->cap * 3)
        return 0;
    size_t n = c->cap ? c->cap * 2 : 64;
    struct scrape_cache_slot *s = calloc(n, sizeof(*s));
    if (!s)
        return BS_ENOMEM;
    cache_rehash(s, n, c->slots, c->cap);
    free(c->slots);
    c->slots = s;
    c->cap = n;
    return 0;
}

struct scrape_cache_slot *scrape_cache_put(struct scrape_cache *c, const char *text, size_t len,
                                           uint64_t h, uint32_t flags, uint32_t seen)
{
    if (len > UINT32_MAX || cache_reserve(c) != 0)
        return NULL;
    struct scrape_cache_entry *e = malloc(sizeof(*e) + len + 1);
    if (!e)
        return NULL;
    e->ref = 0;
    e->len = (uint32_t)len;
    memcpy(e->text, text, len);
    e->text[len] = '\0';
    size_t mask = c->cap - 1, j = (size_t)h & mask;
    while (c->slots[j].e)
        j = (j + 1) & mask;
    c->slots[j] = (struct scrape_cache_slot){h, e, seen, flags};
    c->count++;
    return &c->slots[j];
}

/* Empty slot i, shifting later members of its probe chain back so that no
 * chain has a hole (deletion for linear probing, no tombstones). */
static void cache_delete_at(struct scrape_cache *c, size_t i)
{
    size_t mask = c->cap - 1, j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!c->slots[j].e)
            break;
        size_t k = (size_t)c->slots[j].hash & mask; /* its home slot */
        /* It stays when its home lies cyclically in (i, j]. */
        bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (stays)
            continue;
        c->slots[i] = c->slots[j];
        i = j;
    }
    c->slots[i].e = NULL;
    c->count--;
}

void scrape_cache_evict(struct scrape_cache *c, uint32_t seen)
{
    for (size_t i = 0; i < c->cap; i++) {
        /* A deletion may shift a later slot into i: look at i again. */
        while (c->slots[i].e && c->slots[i].seen != seen) {
            free(c->slots[i].e);
            cache_delete_at(c, i);
        }
    }
    /* Shrink a table that is mostly empty (a target that lost most of its
     * series); in the steady state nothing is evicted or allocated. */
    if (c->cap > 64 && c->count * 8 < c->cap) {
        size_t n = c->cap;
        while (n > 64 && c->count * 8 < n)
            n /= 2;
        struct scrape_cache_slot *s = calloc(n, sizeof(*s));
        if (!s)
            return;
        cache_rehash(s, n, c->slots, c->cap);
        free(c->slots);
        c->slots = s;
        c->cap = n;
    }
}

/* ------------------------------------------------------------- metadata */

struct scrape_meta *scrape_meta_new(void)
{
    struct scrape_meta *md = calloc(1, sizeof(*md));
    if (md)
        bs_buf_init(&md->text, SCRAPE_META_MAX_BYTES);
    return md;
}

void scrape_meta_free(struct scrape_meta *md)
{
    if (!md)
        return;
    free(md->v);
    free(md->index);
    bs_buf_fini(&md->text);
    free(md);
}

static const char *meta_str(const struct scrape_meta *md, uint32_t off)
{
    return md->text.data + off;
}

/* Append s[0..n) and a NUL to the text; *off receives its offset. */
static int meta_text_add(struct scrape_meta *md, const char *s, size_t n, uint32_t *off)
{
    size_t at = md->text.len;
    int rc = bs_buf_append(&md->text, s, n);
    if (rc == 0 && (rc = bs_buf_putc(&md->text, '\0')) != 0)
        md->text.len = at;
    if (rc == 0)
        *off = (uint32_t)at;
    return rc;
}

/* Rebuild the index at twice the entry capacity; 0 or BS_ENOMEM. */
static int meta_index_grow(struct scrape_meta *md)
{
    size_t cap = md->index_cap ? md->index_cap * 2 : 64;
    uint32_t *ix = calloc(cap, sizeof(*ix));
    if (!ix)
        return BS_ENOMEM;
    for (size_t i = 0; i < md->n; i++) {
        const struct scrape_meta_entry *e = &md->v[i];
        size_t j = bs_hash64(meta_str(md, e->name), e->name_len) & (cap - 1);
        while (ix[j])
            j = (j + 1) & (cap - 1);
        ix[j] = (uint32_t)i + 1;
    }
    free(md->index);
    md->index = ix;
    md->index_cap = cap;
    return 0;
}

int scrape_meta_set(struct scrape_meta *md, const char *name, size_t len,
                    enum scrape_meta_field field, const char *text, size_t tlen,
                    enum expfmt_metric_type type)
{
    if (len == 0)
        return 0;
    /* Keep the index at most half full. */
    if ((md->n + 1) * 2 > md->index_cap && meta_index_grow(md) != 0)
        return BS_ENOMEM;
    uint64_t h = bs_hash64(name, len);
    size_t j = h & (md->index_cap - 1);
    struct scrape_meta_entry *e = NULL;
    while (md->index[j]) {
        struct scrape_meta_entry *c = &md->v[md->index[j] - 1];
        if (c->name_len == len && memcmp(meta_str(md, c->name), name, len) == 0) {
            e = c;
            break;
        }
        j = (j + 1) & (md->index_cap - 1);
    }
    int rc;
    if (!e) {
        if (md->n >= SCRAPE_META_MAX_FAMILIES)
            return BS_ELIMIT;
        if (md->n == md->cap) {
            size_t cap = md->cap ? md->cap * 2 : 64;
            struct scrape_meta_entry *v = realloc(md->v, cap * sizeof(*v));
            if (!v)
                return BS_ENOMEM;
            md->v = v;
            md->cap = cap;
        }
        uint32_t off;
        if ((rc = meta_text_add(md, name, len, &off)) != 0)
            return rc;
        e = &md->v[md->n];
        memset(e, 0, sizeof(*e));
        e->name = off;
        e->name_len = (uint32_t)len;
        e->type = EXPFMT_TYPE_UNKNOWN;
        md->index[j] = (uint32_t)++md->n;
    }
    uint32_t off = 0;
    switch (field) {
    case SCRAPE_META_TYPE:
        e->type = type;
        return 0;
    case SCRAPE_META_HELP:
        if (tlen && (rc = meta_text_add(md, text, tlen, &off)) != 0)
            return rc;
        e->help = off;
        e->help_len = (uint32_t)tlen;
        return 0;
    case SCRAPE_META_UNIT:
        if (tlen && (rc = meta_text_add(md, text, tlen, &off)) != 0)
            return rc;
        e->unit = off;
        e->unit_len = (uint32_t)tlen;
        return 0;
    }
    return 0;
}

static int meta_entry_cmp(const void *a, const void *b, void *md)
{
    const struct scrape_meta_entry *x = a, *y = b;
    return strcmp(meta_str(md, x->name), meta_str(md, y->name));
}

void scrape_meta_finish(struct scrape_meta *md)
{
    if (md->n > 1)
        qsort_r(md->v, md->n, sizeof(*md->v), meta_entry_cmp, md);
    free(md->index);
    md->index = NULL;
    md->index_cap = 0;
    if (md->cap > md->n) {
        if (md->n == 0) {
            free(md->v);
            md->v = NULL;
            md->cap = 0;
        } else {
            struct scrape_meta_entry *v = realloc(md->v, md->n * sizeof(*v));
            if (v) {
                md->v = v;
                md->cap = md->n;
            }
        }
    }
    if (md->text.cap > md->text.len + 1 && md->text.len > 0) {
        char *t = realloc(md->text.data, md->text.len + 1);
        if (t) {
            md->text.data = t;
            md->text.cap = md->text.len + 1;
        }
    }
}

/* Field text of an entry ("" when absent). */
static const char *meta_field(const struct scrape_meta *md, uint32_t off, uint32_t len)
{
    return len ? meta_str(md, off) : "";
}

bool scrape_meta_equal(const struct scrape_meta *a, const struct scrape_meta *b)
{
    size_t na = a ? a->n : 0, nb = b ? b->n : 0;
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++) {
        const struct scrape_meta_entry *x = &a->v[i], *y = &b->v[i];
        if (x->type != y->type || x->name_len != y->name_len || x->help_len != y->help_len ||
            x->unit_len != y->unit_len ||
            memcmp(meta_str(a, x->name), meta_str(b, y->name), x->name_len) != 0 ||
            memcmp(meta_field(a, x->help, x->help_len), meta_field(b, y->help, y->help_len),
                   x->help_len) != 0 ||
            memcmp(meta_field(a, x->unit, x->unit_len), meta_field(b, y->unit, y->unit_len),
                   x->unit_len) != 0)
            return false;
    }
    return true;
}

const struct scrape_meta_entry *scrape_meta_find(const struct scrape_meta *md, const char *name)
{
    if (!md)
        return NULL;
    size_t lo = 0, hi = md->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(meta_str(md, md->v[mid].name), name);
        if (c == 0)
            return &md->v[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* ------------------------------------------------------ metadata JSON */

/* Prometheus's textparse.MetricType names: 0.0.4's "untyped" is "unknown". */
static const char *meta_type_name(enum expfmt_metric_type t)
{
    return t == EXPFMT_TYPE_UNTYPED ? "unknown" : expfmt_metric_type_name(t);
}

/* "type":"gauge","help":"...","unit":"..." */
static int meta_json_fields(struct bs_buf *out, const struct scrape_meta *md,
                            const struct scrape_meta_entry *e)
{
    int rc = bs_buf_puts(out, "\"type\":");
    if (rc == 0)
        rc = bs_json_string(out, meta_type_name(e->type), strlen(meta_type_name(e->type)));
    if (rc == 0)
        rc = bs_buf_puts(out, ",\"help\":");
    if (rc == 0)
        rc = bs_json_string(out, meta_field(md, e->help, e->help_len), e->help_len);
    if (rc == 0)
        rc = bs_buf_puts(out, ",\"unit\":");
    if (rc == 0)
        rc = bs_json_string(out, meta_field(md, e->unit, e->unit_len), e->unit_len);
    return rc;
}

/* The active targets sorted by pool, configuration order within a pool (the
 * order of /api/v1/targets). Caller holds m->mu and frees *out. */
static int sorted_targets(struct scrape_manager *m, struct scrape_target ***out)
{
    size_t n = m->ntargets;
    *out = NULL;
    if (n == 0)
        return 0;
    struct scrape_target **v = malloc(n * sizeof(*v));
    if (!v)
        return BS_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        struct scrape_target *t = m->targets[i];
        size_t j = i;
        while (j > 0 && strcmp(v[j - 1]->pool, t->pool) > 0) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = t;
    }
    *out = v;
    return 0;
}

int scrape_manager_targets_metadata_json(struct scrape_manager *m,
                                         struct labels_matcher *const *matchers, size_t nmatchers,
                                         const char *metric, long limit, struct bs_buf *out)
{
    bool all = !metric || !*metric;
    size_t count = 0;
    struct scrape_target **v = NULL;
    pthread_mutex_lock(&m->mu);
    size_t n = m->ntargets;
    int rc = sorted_targets(m, &v);
    if (rc == 0)
        rc = bs_buf_putc(out, '[');
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const struct scrape_target *t = v[i];
        /* As Prometheus: the limit is looked at per target, so the last
         * target taken contributes all of its entries. */
        if (limit >= 0 && count >= (size_t)limit)
            break;
        bool match = true;
        for (size_t k = 0; k < nmatchers && match; k++)
            match = labels_matcher_matches_labels(matchers[k], t->labels);
        if (!match)
            continue;
        const struct scrape_meta *md = t->cache.meta;
        const struct scrape_meta_entry *one = all ? NULL : scrape_meta_find(md, metric);
        size_t ne = all ? (md ? md->n : 0) : one ? 1 : 0;
        for (size_t k = 0; rc == 0 && k < ne; k++) {
            const struct scrape_meta_entry *e = all ? &md->v[k] : one;
            rc = bs_buf_puts(out, count ? ",{\"target\":" : "{\"target\":");
            if (rc == 0)
                rc = labels_format_json(t->labels, out);
            if (rc == 0 && all) {
                rc = bs_buf_puts(out, ",\"metric\":");
                if (rc == 0)
                    rc = bs_json_string(out, meta_str(md, e->name), e->name_len);
            }
            if (rc == 0)
                rc = bs_buf_putc(out, ',');
            if (rc == 0)
                rc = meta_json_fields(out, md, e);
            if (rc == 0)
                rc = bs_buf_putc(out, '}');
            count++;
        }
    }
    pthread_mutex_unlock(&m->mu);
    free(v);
    if (rc == 0)
        rc = bs_buf_putc(out, ']');
    return rc;
}

/* One (family, entry) pair of /api/v1/metadata, with where it was seen. */
struct meta_ref {
    const struct scrape_meta *md;
    const struct scrape_meta_entry *e;
    size_t seq; /* target order, then entry order */
};

/* Order of the metadata of one family: type, help, unit. */
static int meta_content_cmp(const struct meta_ref *x, const struct meta_ref *y)
{
    const struct scrape_meta_entry *a = x->e, *b = y->e;
    /* By the name written, so 0.0.4's untyped and "unknown" are one. */
    int c = strcmp(meta_type_name(a->type), meta_type_name(b->type));
    if (c)
        return c;
    c = strcmp(meta_field(x->md, a->help, a->help_len), meta_field(y->md, b->help, b->help_len));
    if (c)
        return c;
    return strcmp(meta_field(x->md, a->unit, a->unit_len), meta_field(y->md, b->unit, b->unit_len));
}

/* By name, then content (so equal metadata are adjacent), then seq. */
static int meta_ref_cmp(const void *a, const void *b)
{
    const struct meta_ref *x = a, *y = b;
    int c = strcmp(meta_str(x->md, x->e->name), meta_str(y->md, y->e->name));
    if (c)
        return c;
    if ((c = meta_content_cmp(x, y)) != 0)
        return c;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

int scrape_manager_metadata_json(struct scrape_manager *m, const char *metric, long limit,
                                 long limit_per_metric, struct bs_buf *out)
{
    bool all = !metric || !*metric;
    struct scrape_target **v = NULL;
    struct meta_ref *refs = NULL;
    size_t nrefs = 0;
    pthread_mutex_lock(&m->mu);
    size_t n = m->ntargets;
    int rc = sorted_targets(m, &v);
    /* Collect every (family, metadata) pair, in target order. */
    size_t total = 0;
    for (size_t i = 0; rc == 0 && i < n; i++)
        total += v[i]->cache.meta ? (all ? v[i]->cache.meta->n : 1) : 0;
    if (rc == 0 && total && !(refs = malloc(total * sizeof(*refs))))
        rc = BS_ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const struct scrape_meta *md = v[i]->cache.meta;
        if (!md)
            continue;
        if (!all) {
            const struct scrape_meta_entry *e = scrape_meta_find(md, metric);
            if (e)
                refs[nrefs] = (struct meta_ref){md, e, nrefs}, nrefs++;
            continue;
        }
        for (size_t k = 0; k < md->n; k++)
            refs[nrefs] = (struct meta_ref){md, &md->v[k], nrefs}, nrefs++;
    }
    if (nrefs > 1)
        qsort(refs, nrefs, sizeof(*refs), meta_ref_cmp);
    /* Names sorted (as Go's JSON writes a map); within a name the distinct
     * metadata (Prometheus's set, whose order is Go's map order, here by
     * type, help and unit), at most limit_per_metric (> 0) of them; at most
     * limit (>= 0) names. */
    if (rc == 0)
        rc = bs_buf_putc(out, '{');
    size_t names = 0;
    for (size_t i = 0; rc == 0 && i < nrefs;) {
        size_t end = i + 1;
        while (end < nrefs && strcmp(meta_str(refs[end].md, refs[end].e->name),
                                     meta_str(refs[i].md, refs[i].e->name)) == 0)
            end++;
        if (limit >= 0 && names >= (size_t)limit)
            break;
        rc = bs_buf_puts(out, names ? "," : "");
        if (rc == 0)
            rc = bs_json_string(out, meta_str(refs[i].md, refs[i].e->name), refs[i].e->name_len);
        if (rc == 0)
            rc = bs_buf_puts(out, ":[");
        size_t kept = 0;
        for (size_t k = i; rc == 0 && k < end; k++) {
            if (k > i && meta_content_cmp(&refs[k - 1], &refs[k]) == 0)
                continue; /* the same metadata from another target */
            if (limit_per_metric > 0 && kept >= (size_t)limit_per_metric)
                break;
            rc = bs_buf_puts(out, kept ? ",{" : "{");
            if (rc == 0)
                rc = meta_json_fields(out, refs[k].md, refs[k].e);
            if (rc == 0)
                rc = bs_buf_putc(out, '}');
            kept++;
        }
        if (rc == 0)
            rc = bs_buf_putc(out, ']');
        names++;
        i = end;
    }
    pthread_mutex_unlock(&m->mu);
    free(refs);
    free(v);
    if (rc == 0)
        rc = bs_buf_putc(out, '}');
    return rc;
}
