/* SPDX-License-Identifier: Apache-2.0
 *
 * Postings: for every (label name, label value) pair in the head, the
 * sorted list of refs of the series carrying it, plus the list of all
 * refs (4 bytes each: refs never exceed TSDB_REF_MAX). Two chained hash
 * tables keyed by string content (XXH3) find a pair and, for regex and
 * negative matchers, every value of one name. The per-name value list is
 * kept in insertion order; callers that need it sorted sort their (much
 * smaller) result instead of paying a sorted insert on every new value.
 *
 * Series creation passes interned strings, so a third table finds a pair
 * by its two string pointers without hashing the text.
 *
 * One rwlock guards it all: series creation writes, queriers read. Lists
 * handed out are copies, so readers never hold the lock while iterating.
 */
#include <stdlib.h>
#include <string.h>

#include "tsdb/tsdb_int.h"

static uint64_t str_hash(const char *s)
{
    return bs_hash64(s, strlen(s));
}

static uint64_t pair_hash(uint64_t name_hash, const char *value)
{
    return (name_hash * UINT64_C(0x9E3779B97F4A7C15)) ^ str_hash(value);
}

void tsdb_postings_init(struct tsdb_postings *p)
{
    memset(p, 0, sizeof(*p));
    pthread_rwlock_init(&p->lock, NULL);
    p->pair_buckets = 64;
    p->pairs = bs_xcalloc(p->pair_buckets, sizeof(*p->pairs));
    p->name_buckets = 16;
    p->names = bs_xcalloc(p->name_buckets, sizeof(*p->names));
}

void tsdb_postings_fini(struct tsdb_postings *p)
{
    for (size_t i = 0; i < p->pair_buckets; i++) {
        struct tsdb_pval *v = p->pairs[i];
        while (v) {
            struct tsdb_pval *next = v->hnext;
            free(v->list.refs);
            free(v);
            v = next;
        }
    }
    for (size_t i = 0; i < p->name_buckets; i++) {
        struct tsdb_pname *n = p->names[i];
        while (n) {
            struct tsdb_pname *next = n->hnext;
            free(n->vals);
            free(n);
            n = next;
        }
    }
    free(p->pairs);
    free(p->names);
    free(p->by_ptr);
    free(p->all.refs);
    pthread_rwlock_destroy(&p->lock);
    memset(p, 0, sizeof(*p));
}

static struct tsdb_pname *pname_find(const struct tsdb_postings *p, const char *name, uint64_t h)
{
    for (struct tsdb_pname *n = p->names[h & (p->name_buckets - 1)]; n; n = n->hnext) {
        if (n->hash == h && strcmp(n->name, name) == 0)
            return n;
    }
    return NULL;
}

static struct tsdb_pval *pval_find(const struct tsdb_postings *p, const char *name,
                                   const char *value, uint64_t h)
{
    for (struct tsdb_pval *v = p->pairs[h & (p->pair_buckets - 1)]; v; v = v->hnext) {
        if (v->hash == h && strcmp(v->name, name) == 0 && strcmp(v->value, value) == 0)
            return v;
    }
    return NULL;
}

static void plist_add(struct tsdb_plist *l, uint32_t ref)
{
    size_t pos = l->n;
    if (l->n > 0 && l->refs[l->n - 1] >= ref) {
        /* Out-of-order insert (WAL replay); binary search the slot. */
        size_t lo = 0, hi = l->n;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (l->refs[mid] < ref)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < l->n && l->refs[lo] == ref)
            return;
        pos = lo;
    }
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 4;
        l->refs = bs_xrealloc(l->refs, l->cap * sizeof(*l->refs));
    }
    if (pos < l->n) /* not the usual append */
        memmove(l->refs + pos + 1, l->refs + pos, (l->n - pos) * sizeof(*l->refs));
    l->refs[pos] = ref;
    l->n++;
}

static void names_grow(struct tsdb_postings *p)
{
    size_t nb = p->name_buckets * 2;
    struct tsdb_pname **t = bs_xcalloc(nb, sizeof(*t));
    for (size_t i = 0; i < p->name_buckets; i++) {
        struct tsdb_pname *n = p->names[i];
        while (n) {
            struct tsdb_pname *next = n->hnext;
            n->hnext = t[n->hash & (nb - 1)];
            t[n->hash & (nb - 1)] = n;
            n = next;
        }
    }
    free(p->names);
    p->names = t;
    p->name_buckets = nb;
}

static void pairs_grow(struct tsdb_postings *p)
{
    size_t nb = p->pair_buckets * 2;
    struct tsdb_pval **t = bs_xcalloc(nb, sizeof(*t));
    for (size_t i = 0; i < p->pair_buckets; i++) {
        struct tsdb_pval *v = p->pairs[i];
        while (v) {
            struct tsdb_pval *next = v->hnext;
            v->hnext = t[v->hash & (nb - 1)];
            t[v->hash & (nb - 1)] = v;
            v = next;
        }
    }
    free(p->pairs);
    p->pairs = t;
    p->pair_buckets = nb;
}

static size_t ptr_slot(const char *name, const char *value, size_t cap)
{
    uint64_t x = (uint64_t)(uintptr_t)name * UINT64_C(0x9E3779B97F4A7C15) ^
                 (uint64_t)(uintptr_t)value * UINT64_C(0xC2B2AE3D27D4EB4F);
    return (size_t)(x >> 24) & (cap - 1);
}

static void by_ptr_put(struct tsdb_postings *p, struct tsdb_pval *pv)
{
    size_t i = ptr_slot(pv->name, pv->value, p->by_ptr_cap);
    while (p->by_ptr[i])
        i = (i + 1) & (p->by_ptr_cap - 1);
    p->by_ptr[i] = pv;
    p->by_ptr_n++;
}

/* Rebuild by_ptr from the pairs, with room for `more` additions. */
static void by_ptr_rebuild(struct tsdb_postings *p, size_t more)
{
    size_t cap = 64;
    while (cap < 2 * (p->npairs + more))
        cap *= 2;
    free(p->by_ptr);
    p->by_ptr = bs_xcalloc(cap, sizeof(*p->by_ptr));
    p->by_ptr_cap = cap;
    p->by_ptr_n = 0;
    for (size_t b = 0; b < p->pair_buckets; b++) {
        for (struct tsdb_pval *v = p->pairs[b]; v; v = v->hnext)
            by_ptr_put(p, v);
    }
}

static struct tsdb_pval *by_ptr_find(const struct tsdb_postings *p, const char *name,
                                     const char *value)
{
    if (!p->by_ptr_cap)
        return NULL;
    for (size_t i = ptr_slot(name, value, p->by_ptr_cap);; i = (i + 1) & (p->by_ptr_cap - 1)) {
        struct tsdb_pval *v = p->by_ptr[i];
        if (!v || (v->name == name && v->value == value))
            return v;
    }
}

void tsdb_postings_add_locked(struct tsdb_postings *p, const struct labels *ls, uint64_t ref)
{
    for (size_t i = 0; i < ls->n; i++) {
        const char *name = ls->v[i].name, *value = ls->v[i].value;
        struct tsdb_pval *known = by_ptr_find(p, name, value);
        if (known) {
            plist_add(&known->list, (uint32_t)ref);
            continue;
        }
        uint64_t nh = str_hash(name);
        struct tsdb_pname *pn = pname_find(p, name, nh);
        if (!pn) {
            if (p->nnames >= p->name_buckets)
                names_grow(p);
            pn = bs_xcalloc(1, sizeof(*pn));
            pn->name = name;
            pn->hash = nh;
            pn->hnext = p->names[nh & (p->name_buckets - 1)];
            p->names[nh & (p->name_buckets - 1)] = pn;
            p->nnames++;
        }
        uint64_t ph = pair_hash(nh, value);
        struct tsdb_pval *pv = pval_find(p, name, value, ph);
        if (!pv) {
            if (p->npairs >= p->pair_buckets)
                pairs_grow(p);
            pv = bs_xcalloc(1, sizeof(*pv));
            pv->name = name;
            pv->value = value;
            pv->hash = ph;
            pv->hnext = p->pairs[ph & (p->pair_buckets - 1)];
            p->pairs[ph & (p->pair_buckets - 1)] = pv;
            p->npairs++;
            if (pn->n == pn->cap) {
                pn->cap = pn->cap ? pn->cap * 2 : 4;
                pn->vals = bs_xrealloc(pn->vals, pn->cap * sizeof(*pn->vals));
            }
            pn->vals[pn->n++] = pv;
            if ((p->by_ptr_n + 1) * 2 > p->by_ptr_cap)
                by_ptr_rebuild(p, 0); /* pv is in pairs already */
            else
                by_ptr_put(p, pv);
        }
        plist_add(&pv->list, (uint32_t)ref);
    }
    plist_add(&p->all, (uint32_t)ref);
}

size_t tsdb_postings_intersect(uint64_t *a, size_t na, const uint64_t *b, size_t nb)
{
    size_t i = 0, j = 0, k = 0;
    while (i < na && j < nb) {
        if (a[i] < b[j]) {
            i++;
        } else if (a[i] > b[j]) {
            j++;
        } else {
            a[k++] = a[i];
            i++;
            j++;
        }
    }
    return k;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int copy_list(const struct tsdb_plist *l, uint64_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!l || l->n == 0)
        return 0;
    uint64_t *r = malloc(l->n * sizeof(*r));
    if (!r)
        return BS_ENOMEM;
    for (size_t i = 0; i < l->n; i++)
        r[i] = l->refs[i];
    *out = r;
    *n = l->n;
    return 0;
}

int tsdb_postings_all(struct tsdb_postings *p, uint64_t **out, size_t *n)
{
    pthread_rwlock_rdlock(&p->lock);
    int rc = copy_list(&p->all, out, n);
    pthread_rwlock_unlock(&p->lock);
    return rc;
}

int tsdb_postings_for_matcher(struct tsdb_postings *p, const struct labels_matcher *m,
                              uint64_t **out, size_t *n)
{
    const char *name = labels_matcher_name(m);
    uint64_t nh = str_hash(name);
    int rc = 0;
    *out = NULL;
    *n = 0;
    pthread_rwlock_rdlock(&p->lock);
    if (labels_matcher_type(m) == LABELS_MATCH_EQ) {
        const char *value = labels_matcher_value(m);
        const struct tsdb_pval *pv = pval_find(p, name, value, pair_hash(nh, value));
        rc = copy_list(pv ? &pv->list : NULL, out, n);
        pthread_rwlock_unlock(&p->lock);
        return rc;
    }
    struct tsdb_pname *pn = pname_find(p, name, nh);
    if (!pn) {
        pthread_rwlock_unlock(&p->lock);
        return 0;
    }
    size_t total = 0, nlists = 0;
    uint64_t *r = NULL;
    size_t cap = 0;
    for (size_t i = 0; i < pn->n; i++) {
        const struct tsdb_pval *pv = pn->vals[i];
        if (!labels_matcher_matches(m, pv->value))
            continue;
        if (total + pv->list.n > cap) {
            size_t ncap = cap ? cap * 2 : 64;
            while (ncap < total + pv->list.n)
                ncap *= 2;
            uint64_t *nr = realloc(r, ncap * sizeof(*nr));
            if (!nr) {
                rc = BS_ENOMEM;
                break;
            }
            r = nr;
            cap = ncap;
        }
        for (size_t j = 0; j < pv->list.n; j++)
            r[total + j] = pv->list.refs[j];
        total += pv->list.n;
        nlists++;
    }
    pthread_rwlock_unlock(&p->lock);
    if (rc) {
        free(r);
        return rc;
    }
    if (nlists > 1) {
        /* A series has one value per name, so the lists are disjoint. */
        qsort(r, total, sizeof(*r), cmp_u64);
    }
    if (total == 0) {
        free(r);
        r = NULL;
    }
    *out = r;
    *n = total;
    return 0;
}

/* Keep the refs of l that are not dead. */
static void plist_filter(struct tsdb_plist *l, bool (*dead)(uint64_t ref, void *arg), void *arg)
{
    size_t k = 0;
    for (size_t i = 0; i < l->n; i++) {
        if (!dead(l->refs[i], arg))
            l->refs[k++] = l->refs[i];
    }
    l->n = k;
    if (k == 0) {
        free(l->refs);
        l->refs = NULL;
        l->cap = 0;
    } else if (k < l->cap / 4) {
        l->cap = k;
        l->refs = bs_xrealloc(l->refs, k * sizeof(*l->refs));
    }
}

void tsdb_postings_delete_locked(struct tsdb_postings *p, bool (*dead)(uint64_t ref, void *arg),
                                 void *arg)
{
    for (size_t b = 0; b < p->name_buckets; b++) {
        struct tsdb_pname **pnp = &p->names[b];
        while (*pnp) {
            struct tsdb_pname *pn = *pnp;
            size_t k = 0;
            for (size_t i = 0; i < pn->n; i++) {
                struct tsdb_pval *pv = pn->vals[i];
                plist_filter(&pv->list, dead, arg);
                if (pv->list.n > 0) {
                    pn->vals[k++] = pv;
                    continue;
                }
                struct tsdb_pval **pp = &p->pairs[pv->hash & (p->pair_buckets - 1)];
                while (*pp && *pp != pv)
                    pp = &(*pp)->hnext;
                if (*pp)
                    *pp = pv->hnext;
                p->npairs--;
                free(pv);
            }
            pn->n = k;
            if (k == 0) {
                *pnp = pn->hnext;
                p->nnames--;
                free(pn->vals);
                free(pn);
            } else {
                pnp = &pn->hnext;
            }
        }
    }
    plist_filter(&p->all, dead, arg);
    if (p->by_ptr_cap)
        by_ptr_rebuild(p, 0);
}
