/* SPDX-License-Identifier: Apache-2.0
 *
 * The head: every series in memory, found by label-set hash or by ref.
 *
 * Design. A series is looked up by labels_hash() in one of 64 stripes,
 * each an open-addressing table of (hash tag, ref) under its own mutex, so
 * appenders touching different series rarely meet; a series is read only
 * when its tag matches, and then the label sets are compared. A ref is a
 * dense integer handed out in creation order under
 * the postings write lock, which makes every postings list an append-only
 * sorted array in normal operation (WAL replay may insert out of order and
 * falls back to a sorted insert). The ref -> series table is two-level:
 * pages of 16384 pointers, allocated on demand under a small mutex and
 * published with release stores, read without locks.
 *
 * Each series has its own lock (a 4-byte futex mutex) guarding its
 * chunks and newest sample.
 * Closed chunks are immutable and may be read by queriers without the
 * series lock. Only the open chunk changes and may be reallocated;
 * queriers copy it under the lock. Head truncation (head_gc.c) drops old
 * chunks and empty series; they are freed through the epoch reclaimer
 * (reclaim.c), so a pointer obtained by a reader (querier, appender) stays
 * valid until that reader exits its epoch.
 *
 * Bookkeeping allocations (series, tables) use the aborting bs_x* wrappers;
 * sample data uses malloc and reports BS_ENOMEM.
 */
#include <linux/futex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "tsdb/tsdb_int.h"

/* ---------------------------------------------------------- series lock */

/* The contended paths of the futex mutex (tsdb_int.h): a locker marks the
 * word 2 (waiters may exist) and sleeps until it takes it from 0; an
 * unlocker that did not find 1 (no waiters) clears it and wakes one. */
void tsdb_series_lock_slow(uint32_t *l)
{
    for (int spin = 0; spin < 64; spin++) {
        uint32_t c = 0;
        if (__atomic_load_n(l, __ATOMIC_RELAXED) == 0 &&
            __atomic_compare_exchange_n(l, &c, 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
            return;
    }
    while (__atomic_exchange_n(l, 2, __ATOMIC_ACQUIRE) != 0)
        syscall(SYS_futex, l, FUTEX_WAIT_PRIVATE, 2, NULL, NULL, 0);
}

void tsdb_series_unlock_slow(uint32_t *l)
{
    __atomic_store_n(l, 0, __ATOMIC_RELEASE);
    syscall(SYS_futex, l, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* ------------------------------------------------------------ ref table */

struct tsdb_series *tsdb_head_series_by_ref(struct tsdb_head *h, tsdb_ref ref)
{
    if (ref == 0 || ref > TSDB_REF_MAX)
        return NULL;
    struct tsdb_series **page =
        __atomic_load_n(&h->pages[ref >> TSDB_REF_PAGE_BITS], __ATOMIC_ACQUIRE);
    if (!page)
        return NULL;
    return __atomic_load_n(&page[ref & (TSDB_REF_PAGE_SIZE - 1)], __ATOMIC_ACQUIRE);
}

static void ref_table_set(struct tsdb_head *h, tsdb_ref ref, struct tsdb_series *s)
{
    size_t pi = (size_t)(ref >> TSDB_REF_PAGE_BITS);
    pthread_mutex_lock(&h->pages_mu);
    struct tsdb_series **page = h->pages[pi];
    if (!page) {
        page = bs_xcalloc(TSDB_REF_PAGE_SIZE, sizeof(*page));
        __atomic_store_n(&h->pages[pi], page, __ATOMIC_RELEASE);
    }
    __atomic_store_n(&page[ref & (TSDB_REF_PAGE_SIZE - 1)], s, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&h->pages_mu);
}

/* ------------------------------------------------------------ lifecycle */

int tsdb_head_init(struct tsdb_head *h)
{
    memset(h, 0, sizeof(*h));
    h->syms = labels_symtab_new();
    if (!h->syms)
        return BS_ENOMEM;
    h->pages = calloc(TSDB_REF_PAGES, sizeof(*h->pages));
    if (!h->pages) {
        labels_symtab_free(h->syms);
        return BS_ENOMEM;
    }
    for (size_t i = 0; i < TSDB_STRIPES; i++) {
        pthread_mutex_init(&h->stripes[i].mu, NULL);
        h->stripes[i].cap = 16;
        h->stripes[i].slots = bs_xcalloc(16, sizeof(struct tsdb_stripe_slot));
    }
    pthread_mutex_init(&h->pages_mu, NULL);
    tsdb_postings_init(&h->postings);
    h->next_ref = 1;
    h->chunk_range = TSDB_CHUNK_RANGE_MS;
    h->min_valid = INT64_MIN;
    tsdb_reclaim_init(&h->reclaim);
    h->min_time = INT64_MAX;
    h->max_time = INT64_MIN;
    return 0;
}

void tsdb_head_series_free(void *p)
{
    struct tsdb_series *s = p;
    for (size_t i = 0; i < s->nchunks; i++) {
        if (s->chunks[i].ref & TSDB_HCHUNK_MEM)
            free((void *)(uintptr_t)(s->chunks[i].ref & ~TSDB_HCHUNK_MEM));
    }
    free(s->chunks);
    tsdb_xor_enc_fini(&s->open);
    free(s);
}

void tsdb_head_fini(struct tsdb_head *h)
{
    for (size_t i = 0; i < TSDB_STRIPES; i++) {
        struct tsdb_stripe *st = &h->stripes[i];
        for (size_t b = 0; b < st->cap; b++) {
            struct tsdb_series *s =
                st->slots[b].ref ? tsdb_head_series_by_ref(h, st->slots[b].ref) : NULL;
            if (s)
                tsdb_head_series_free(s);
        }
        free(st->slots);
        pthread_mutex_destroy(&st->mu);
    }
    if (h->pages) {
        for (size_t i = 0; i < TSDB_REF_PAGES; i++)
            free(h->pages[i]);
        free(h->pages);
    }
    pthread_mutex_destroy(&h->pages_mu);
    tsdb_postings_fini(&h->postings);
    tsdb_reclaim_fini(&h->reclaim);
    tsdb_hchunks_close(h->hc);
    labels_symtab_free(h->syms);
    memset(h, 0, sizeof(*h));
}

/* --------------------------------------------------------------- series */

static uint32_t stripe_tag(uint64_t hash)
{
    return (uint32_t)(hash >> 32);
}

static void stripe_put(struct tsdb_stripe *st, struct tsdb_stripe_slot sl)
{
    size_t i = sl.tag & (st->cap - 1);
    while (st->slots[i].ref)
        i = (i + 1) & (st->cap - 1);
    st->slots[i] = sl;
}

static void stripe_grow(struct tsdb_stripe *st)
{
    struct tsdb_stripe_slot *old = st->slots;
    size_t ocap = st->cap;
    st->cap = ocap * 2;
    st->slots = bs_xcalloc(st->cap, sizeof(*st->slots));
    for (size_t i = 0; i < ocap; i++) {
        if (old[i].ref)
            stripe_put(st, old[i]);
    }
    free(old);
}

void tsdb_head_series_prefetch(struct tsdb_head *h, uint64_t hash)
{
    struct tsdb_stripe *st = &h->stripes[hash & (TSDB_STRIPES - 1)];
    /* Relaxed loads: a table replaced meanwhile only makes a useless
     * prefetch (which never faults). */
    const struct tsdb_stripe_slot *slots = __atomic_load_n(&st->slots, __ATOMIC_RELAXED);
    size_t cap = __atomic_load_n(&st->cap, __ATOMIC_RELAXED);
    __builtin_prefetch(&slots[stripe_tag(hash) & (cap - 1)]);
}

/* The series of stripe st with labels ls, or NULL. Caller holds st->mu. */
static struct tsdb_series *stripe_find(struct tsdb_head *h, struct tsdb_stripe *st,
                                       const struct labels *ls, uint64_t hash)
{
    uint32_t tag = stripe_tag(hash);
    for (size_t i = tag & (st->cap - 1);; i = (i + 1) & (st->cap - 1)) {
        struct tsdb_stripe_slot sl = st->slots[i];
        if (!sl.ref)
            return NULL;
        if (sl.tag != tag)
            continue;
        struct tsdb_series *s = tsdb_head_series_by_ref(h, sl.ref);
        if (s && s->hash == hash && labels_equal(&s->lset, ls))
            return s;
    }
}

void tsdb_head_stripe_unlink(struct tsdb_head *h, struct tsdb_series *s)
{
    struct tsdb_stripe *st = &h->stripes[s->hash & (TSDB_STRIPES - 1)];
    pthread_mutex_lock(&st->mu);
    size_t mask = st->cap - 1, i = stripe_tag(s->hash) & mask;
    while (st->slots[i].ref && st->slots[i].ref != s->ref)
        i = (i + 1) & mask;
    if (st->slots[i].ref) {
        /* Backward-shift deletion: move later entries of the run into the
         * hole unless their home slot lies cyclically in (hole, entry]. */
        for (size_t j = i;;) {
            j = (j + 1) & mask;
            if (!st->slots[j].ref)
                break;
            size_t k = st->slots[j].tag & mask;
            if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
                continue;
            st->slots[i] = st->slots[j];
            i = j;
        }
        st->slots[i] = (struct tsdb_stripe_slot){0, 0};
        st->n--;
    }
    pthread_mutex_unlock(&st->mu);
}

static int get_or_create(struct tsdb_head *h, const struct labels *ls, uint64_t hash,
                         tsdb_ref want_ref, bool interned, struct tsdb_series **out,
                         bool *created);

int tsdb_head_series_get_or_create(struct tsdb_head *h, const struct labels *ls, uint64_t hash,
                                   tsdb_ref want_ref, struct tsdb_series **out, bool *created)
{
    return get_or_create(h, ls, hash, want_ref, false, out, created);
}

int tsdb_head_series_get_or_create_interned(struct tsdb_head *h, const struct labels *ls,
                                            uint64_t hash, tsdb_ref want_ref,
                                            struct tsdb_series **out, bool *created)
{
    return get_or_create(h, ls, hash, want_ref, true, out, created);
}

static int get_or_create(struct tsdb_head *h, const struct labels *ls, uint64_t hash,
                         tsdb_ref want_ref, bool interned, struct tsdb_series **out,
                         bool *created)
{
    struct tsdb_stripe *st = &h->stripes[hash & (TSDB_STRIPES - 1)];
    *created = false;
    pthread_mutex_lock(&st->mu);
    struct tsdb_series *s = stripe_find(h, st, ls, hash);
    if (s) {
        pthread_mutex_unlock(&st->mu);
        if (want_ref && want_ref != s->ref) {
            struct tsdb_series *o = tsdb_head_series_by_ref(h, want_ref);
            if (o == s) {
                *out = s;
                return 0;
            }
            if (want_ref > TSDB_REF_MAX || o)
                return BS_EINVAL;
            ref_table_set(h, want_ref, s);
            pthread_rwlock_wrlock(&h->postings.lock);
            if (want_ref >= h->next_ref)
                h->next_ref = want_ref + 1;
            pthread_rwlock_unlock(&h->postings.lock);
        }
        *out = s;
        return 0;
    }

    s = bs_xcalloc(1, sizeof(*s) + ls->n * sizeof(struct label));
    s->lset.v = s->label_v;
    s->lset.n = ls->n;
    if (interned)
        memcpy(s->label_v, ls->v, ls->n * sizeof(struct label));
    for (size_t i = 0; i < ls->n && !interned; i++) {
        s->lset.v[i].name = labels_symtab_intern(h->syms, ls->v[i].name, strlen(ls->v[i].name));
        s->lset.v[i].value = labels_symtab_intern(h->syms, ls->v[i].value, strlen(ls->v[i].value));
        if (!s->lset.v[i].name || !s->lset.v[i].value) {
            pthread_mutex_unlock(&st->mu);
            free(s);
            return BS_ENOMEM;
        }
    }
    s->hash = hash;
    tsdb_xor_enc_init(&s->open);

    int rc = 0;
    pthread_rwlock_wrlock(&h->postings.lock);
    tsdb_ref ref = want_ref ? want_ref : h->next_ref;
    if (ref > TSDB_REF_MAX)
        rc = BS_ELIMIT;
    else if (want_ref && tsdb_head_series_by_ref(h, want_ref))
        rc = BS_EINVAL; /* the ref is taken by other labels: corrupt WAL */
    if (rc == 0) {
        if (ref >= h->next_ref)
            h->next_ref = ref + 1;
        s->ref = (uint32_t)ref;
        ref_table_set(h, ref, s);
        tsdb_postings_add_locked(&h->postings, &s->lset, ref);
    }
    pthread_rwlock_unlock(&h->postings.lock);
    if (rc) {
        pthread_mutex_unlock(&st->mu);
        free(s);
        return rc;
    }

    if ((st->n + 1) * 4 > st->cap * 3)
        stripe_grow(st);
    stripe_put(st, (struct tsdb_stripe_slot){stripe_tag(hash), (uint32_t)ref});
    st->n++;
    pthread_mutex_unlock(&st->mu);

    __atomic_add_fetch(&h->num_series, 1, __ATOMIC_RELAXED);
    *out = s;
    *created = true;
    return 0;
}

int64_t tsdb_head_appendable_mint(struct tsdb_head *h)
{
    int64_t minv = __atomic_load_n(&h->min_valid, __ATOMIC_ACQUIRE);
    int64_t maxt = __atomic_load_n(&h->max_time, __ATOMIC_RELAXED);
    int64_t half = h->chunk_range / 2;
    if (maxt >= INT64_MIN + half && maxt - half > minv)
        return maxt - half;
    return minv;
}

void tsdb_head_note_time(struct tsdb_head *h, int64_t t)
{
    int64_t cur = __atomic_load_n(&h->min_time, __ATOMIC_RELAXED);
    while (t < cur && !__atomic_compare_exchange_n(&h->min_time, &cur, t, true, __ATOMIC_RELAXED,
                                                   __ATOMIC_RELAXED)) {
    }
    cur = __atomic_load_n(&h->max_time, __ATOMIC_RELAXED);
    while (t > cur && !__atomic_compare_exchange_n(&h->max_time, &cur, t, true, __ATOMIC_RELAXED,
                                                   __ATOMIC_RELAXED)) {
    }
}

bool tsdb_head_chunk_bytes(struct tsdb_head *h, const struct tsdb_hchunk *c, const uint8_t **p,
                           uint32_t *len, uint16_t *nsamples)
{
    if (c->ref & TSDB_HCHUNK_MEM) {
        const struct tsdb_chunk *m =
            (const struct tsdb_chunk *)(uintptr_t)(c->ref & ~TSDB_HCHUNK_MEM);
        *p = m->data;
        *len = m->len;
        if (nsamples)
            *nsamples = m->n;
        return true;
    }
    *p = h->hc ? tsdb_hchunks_data(h->hc, c->ref, len, nsamples) : NULL;
    return *p != NULL;
}

static int chunks_reserve(struct tsdb_series *s)
{
    if (s->nchunks < s->chunks_cap)
        return 0;
    uint32_t ncap = s->chunks_cap ? s->chunks_cap * 2 : 4;
    struct tsdb_hchunk *nc = realloc(s->chunks, ncap * sizeof(*nc));
    if (!nc)
        return BS_ENOMEM;
    s->chunks = nc;
    s->chunks_cap = ncap;
    return 0;
}

/* Move the open chunk to the closed list: into the head chunk file when
 * there is one (the series keeps a reference), else (or when the write
 * fails) into memory. */
static int series_cut(struct tsdb_head *h, struct tsdb_series *s)
{
    size_t len = tsdb_xor_enc_bytes(&s->open);
    int rc = chunks_reserve(s);
    if (rc)
        return rc;
    struct tsdb_hchunk hc = {s->open.mint, s->open.t, 0};
    if (!h->hc || tsdb_hchunks_write(h->hc, s->ref, hc.mint, hc.maxt, s->open.n, s->open.v,
                                     s->open.buf, (uint32_t)len, &hc.ref) != 0) {
        struct tsdb_chunk *c = malloc(sizeof(*c) + len);
        if (!c)
            return BS_ENOMEM;
        c->mint = hc.mint;
        c->maxt = hc.maxt;
        c->len = (uint32_t)len;
        c->n = s->open.n;
        memcpy(c->data, s->open.buf, len);
        hc.ref = (uint64_t)(uintptr_t)c | TSDB_HCHUNK_MEM;
    }
    s->chunks[s->nchunks++] = hc;
    tsdb_xor_enc_reset(&s->open);
    return 0;
}

int tsdb_head_series_attach(struct tsdb_head *h, struct tsdb_series *s,
                            const struct tsdb_hchunk *c, uint64_t last_v)
{
    if (s->has_samples && c->mint <= s->max_t)
        return BS_EOUTOFORDER;
    if (s->open.n > 0)
        return BS_EOUTOFORDER; /* replayed samples came first: keep them */
    int rc = chunks_reserve(s);
    if (rc)
        return rc;
    s->chunks[s->nchunks++] = *c;
    if (!s->has_samples) {
        s->min_t = c->mint;
        s->has_samples = true;
    }
    s->max_t = c->maxt;
    s->last_v = last_v;
    __atomic_add_fetch(&h->num_chunks, 1, __ATOMIC_RELAXED);
    return 0;
}

int tsdb_head_series_append(struct tsdb_head *h, struct tsdb_series *s, int64_t t, uint64_t vbits)
{
    if (s->has_samples) {
        if (t < s->max_t)
            return BS_EOUTOFORDER;
        if (t == s->max_t)
            return vbits == s->last_v ? 1 : BS_EDUPLICATE;
    }
    if (s->open.n > 0 &&
        (s->open.n >= TSDB_CHUNK_MAX_SAMPLES ||
         tsdb_range_of(t, h->chunk_range) != tsdb_range_of(s->open.mint, h->chunk_range))) {
        int rc = series_cut(h, s);
        if (rc)
            return rc;
    }
    int rc = tsdb_xor_enc_append(&s->open, t, vbits);
    if (rc)
        return rc;
    if (s->open.n == 1)
        __atomic_add_fetch(&h->num_chunks, 1, __ATOMIC_RELAXED);
    if (!s->has_samples) {
        s->min_t = t;
        s->has_samples = true;
    }
    s->max_t = t;
    s->last_v = vbits;
    return 0;
}

bool tsdb_chunk_has_sample_in(const uint8_t *p, size_t len, int64_t cmint, int64_t cmaxt,
                              int64_t mint, int64_t maxt)
{
    if (cmaxt < mint || cmint > maxt)
        return false;
    if (cmint >= mint && cmaxt <= maxt)
        return true;
    struct tsdb_xor_dec d;
    tsdb_xor_dec_init(&d, p, len);
    while (tsdb_xor_dec_next(&d)) {
        if (d.t > maxt)
            return false;
        if (d.t >= mint)
            return true;
    }
    return false;
}

bool tsdb_head_series_has_sample_in(struct tsdb_head *h, struct tsdb_series *s, int64_t mint,
                                    int64_t maxt)
{
    if (!s->has_samples || s->max_t < mint || s->min_t > maxt)
        return false;
    for (size_t i = 0; i < s->nchunks; i++) {
        const struct tsdb_hchunk *c = &s->chunks[i];
        if (c->mint > maxt)
            return false;
        if (c->maxt < mint)
            continue;
        if (c->mint >= mint && c->maxt <= maxt)
            return true;
        const uint8_t *p;
        uint32_t len;
        if (tsdb_head_chunk_bytes(h, c, &p, &len, NULL) &&
            tsdb_chunk_has_sample_in(p, len, c->mint, c->maxt, mint, maxt))
            return true;
    }
    if (s->open.n > 0)
        return tsdb_chunk_has_sample_in(s->open.buf, tsdb_xor_enc_bytes(&s->open), s->open.mint,
                                        s->open.t, mint, maxt);
    return false;
}
