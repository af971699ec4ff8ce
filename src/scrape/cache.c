/* SPDX-License-Identifier: Apache-2.0
 *
 * The scrape cache: per target, a map from the raw series text of a scraped
 * line to the tsdb ref and final label set of that series. A series seen in
 * the previous scrape is appended by ref without parsing or merging its
 * labels again. Entries not seen by a successful scrape are evicted right
 * after it, so the cache holds at most the series of one scrape (plus those
 * of a failed one in between), which the body size limit bounds.
 */
#include <stdlib.h>
#include <string.h>

#include "scrape/scrape_int.h"

void scrape_cache_init(struct scrape_cache *c)
{
    memset(c, 0, sizeof(*c));
}

static void entry_free(struct scrape_cache_entry *e)
{
    free(e->text);
    free(e->ls);
    free(e);
}

void scrape_cache_fini(struct scrape_cache *c)
{
    for (size_t i = 0; i < c->nbuckets; i++) {
        struct scrape_cache_entry *e = c->buckets[i];
        while (e) {
            struct scrape_cache_entry *next = e->next;
            entry_free(e);
            e = next;
        }
    }
    free(c->buckets);
    memset(c, 0, sizeof(*c));
}

struct scrape_cache_entry *scrape_cache_get(struct scrape_cache *c, const char *text, size_t len,
                                            uint64_t h)
{
    if (c->nbuckets == 0)
        return NULL;
    for (struct scrape_cache_entry *e = c->buckets[h & (c->nbuckets - 1)]; e; e = e->next) {
        if (e->hash == h && e->len == len && memcmp(e->text, text, len) == 0)
            return e;
    }
    return NULL;
}

/* Double the bucket array (or create it); 0 or BS_ENOMEM. */
static int cache_grow(struct scrape_cache *c)
{
    size_t n = c->nbuckets ? c->nbuckets * 2 : 64;
    struct scrape_cache_entry **b = calloc(n, sizeof(*b));
    if (!b)
        return BS_ENOMEM;
    for (size_t i = 0; i < c->nbuckets; i++) {
        struct scrape_cache_entry *e = c->buckets[i];
        while (e) {
            struct scrape_cache_entry *next = e->next;
            size_t j = e->hash & (n - 1);
            e->next = b[j];
            b[j] = e;
            e = next;
        }
    }
    free(c->buckets);
    c->buckets = b;
    c->nbuckets = n;
    return 0;
}

struct scrape_cache_entry *scrape_cache_put(struct scrape_cache *c, const char *text, size_t len,
                                            uint64_t h, struct labels *ls)
{
    if (c->count >= c->nbuckets && cache_grow(c) != 0) {
        free(ls);
        return NULL;
    }
    struct scrape_cache_entry *e = calloc(1, sizeof(*e));
    char *copy = malloc(len + 1);
    if (!e || !copy) {
        free(e);
        free(copy);
        free(ls);
        return NULL;
    }
    memcpy(copy, text, len);
    copy[len] = '\0';
    e->hash = h;
    e->text = copy;
    e->len = len;
    e->ls = ls;
    size_t j = h & (c->nbuckets - 1);
    e->next = c->buckets[j];
    c->buckets[j] = e;
    c->count++;
    return e;
}

void scrape_cache_evict(struct scrape_cache *c, uint64_t iter)
{
    for (size_t i = 0; i < c->nbuckets; i++) {
        struct scrape_cache_entry **pp = &c->buckets[i];
        while (*pp) {
            struct scrape_cache_entry *e = *pp;
            if (e->last_seen != iter) {
                *pp = e->next;
                entry_free(e);
                c->count--;
            } else {
                pp = &e->next;
            }
        }
    }
}
