/* SPDX-License-Identifier: Apache-2.0
 *
 * String interning. An open-addressing (linear probing) hash set of
 * pointers to NUL-terminated strings, each slot caching the string's hash
 * and length so probes rarely touch string memory. The strings themselves
 * are packed into 64 KiB slabs (big strings get a slab of their own) and
 * never move or get freed before the table, which is what makes pointer
 * equality string equality. One mutex guards everything; interning is a
 * setup-time and ingest-time operation, reads of interned strings need no
 * lock at all.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "labels/labels_int.h"

#define SYMTAB_SLAB 65536
#define SYMTAB_INITIAL_SLOTS 1024   /* power of two */

struct symtab_slot {
    const char *s;    /* NULL when empty */
    uint64_t hash;
    size_t len;
};

struct symtab_slab {
    struct symtab_slab *next;
    size_t size, used;
    char data[];
};

struct labels_symtab {
    pthread_mutex_t mu;
    struct symtab_slot *slots;
    size_t nslots;   /* power of two */
    size_t count;
    size_t bytes;    /* string bytes interned, NULs included */
    struct symtab_slab *slabs;
};

struct labels_symtab *labels_symtab_new(void)
{
    struct labels_symtab *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->slots = calloc(SYMTAB_INITIAL_SLOTS, sizeof(*t->slots));
    if (!t->slots) {
        free(t);
        return NULL;
    }
    t->nslots = SYMTAB_INITIAL_SLOTS;
    pthread_mutex_init(&t->mu, NULL);
    return t;
}

void labels_symtab_free(struct labels_symtab *t)
{
    if (!t)
        return;
    struct symtab_slab *s = t->slabs;
    while (s) {
        struct symtab_slab *next = s->next;
        free(s);
        s = next;
    }
    free(t->slots);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

/* Copy s into slab storage. Caller holds the mutex. */
static const char *store(struct labels_symtab *t, const char *s, size_t n)
{
    struct symtab_slab *sl = t->slabs;
    char *p;

    if (!sl || sl->size - sl->used < n + 1) {
        size_t size = n + 1 > SYMTAB_SLAB / 4 ? n + 1 : SYMTAB_SLAB;
        struct symtab_slab *ns = malloc(sizeof(*ns) + size);
        if (!ns)
            return NULL;
        ns->size = size;
        ns->used = 0;
        if (sl && size != SYMTAB_SLAB) {
            /* A dedicated slab for a big string: keep the current one first
             * so its free space stays in use. */
            ns->next = sl->next;
            sl->next = ns;
        } else {
            ns->next = sl;
            t->slabs = ns;
        }
        sl = ns;
    }
    p = sl->data + sl->used;
    memcpy(p, s, n);
    p[n] = '\0';
    sl->used += n + 1;
    return p;
}

static int grow(struct labels_symtab *t)
{
    size_t nn = t->nslots * 2, mask = nn - 1;
    struct symtab_slot *ns = calloc(nn, sizeof(*ns));
    if (!ns)
        return BS_ENOMEM;
    for (size_t i = 0; i < t->nslots; i++) {
        if (!t->slots[i].s)
            continue;
        size_t j = t->slots[i].hash & mask;
        while (ns[j].s)
            j = (j + 1) & mask;
        ns[j] = t->slots[i];
    }
    free(t->slots);
    t->slots = ns;
    t->nslots = nn;
    return 0;
}

const char *labels_symtab_intern(struct labels_symtab *t, const char *s, size_t n)
{
    uint64_t h = bs_hash64(s, n);
    const char *res = NULL;

    pthread_mutex_lock(&t->mu);
    /* Keep the load factor at or below 1/2. */
    if ((t->count + 1) * 2 > t->nslots && grow(t) != 0)
        goto out;
    size_t mask = t->nslots - 1, i = h & mask;
    for (;;) {
        struct symtab_slot *sl = &t->slots[i];
        if (!sl->s)
            break;
        if (sl->hash == h && sl->len == n && memcmp(sl->s, s, n) == 0) {
            res = sl->s;
            goto out;
        }
        i = (i + 1) & mask;
    }
    res = store(t, s, n);
    if (res) {
        t->slots[i].s = res;
        t->slots[i].hash = h;
        t->slots[i].len = n;
        t->count++;
        t->bytes += n + 1;
    }
out:
    pthread_mutex_unlock(&t->mu);
    return res;
}

size_t labels_symtab_count(const struct labels_symtab *t)
{
    struct labels_symtab *mt = (struct labels_symtab *)t;
    size_t n;
    pthread_mutex_lock(&mt->mu);
    n = mt->count;
    pthread_mutex_unlock(&mt->mu);
    return n;
}

size_t labels_symtab_bytes(const struct labels_symtab *t)
{
    struct labels_symtab *mt = (struct labels_symtab *)t;
    size_t n;
    pthread_mutex_lock(&mt->mu);
    n = mt->bytes;
    pthread_mutex_unlock(&mt->mu);
    return n;
}
