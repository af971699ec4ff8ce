/* SPDX-License-Identifier: Apache-2.0
 *
 * Head truncation: after a range of the head was written to a block, drop
 * the chunks of that range and the series left without samples.
 *
 * The whole truncation holds db->trunc_lock for writing, so no query is
 * between fixing its sources and snapshotting the head (querier.c).
 *
 * Phase 1 walks the ref table: under each series' own mutex it unlinks the chunks whose newest
 * sample is older than the cut (closed chunks, and the open chunk when even its newest sample is
 * older), remembers the series left empty, and notes aliases (refs that
 * WAL replay mapped onto a series with another primary ref). The unlinked
 * chunks are retired in one batch through the epoch reclaimer, because a
 * querier may still be decoding them.
 *
 * Phase 2 holds the WAL writer mutex, so no commit is applying samples and
 * no series record is being written: a candidate that is still empty is
 * unlinked from its stripe (after which get_or_create makes a fresh series
 * for those labels), flagged `removed` (a commit that staged samples for
 * it resolves its labels again, see head_append.c), cleared from the ref
 * table (a stale ref then falls back to labels in the appender) and from
 * the postings. The head's min_time is recomputed here too, when no commit
 * can slip samples in between. Optionally the WAL is cut to a new segment
 * in the same critical section, so that every segment up to the cut was
 * written before the series were removed: the checkpoint built from those
 * segments can then decide liveness by looking the refs up in the head.
 *
 * Refs are never reused (next_ref only grows), so a stale ref can never
 * reach a different series.
 */
#include <stdlib.h>
#include <string.h>

#include "tsdb/tsdb_int.h"

struct ptr_batch {
    void **p;
    size_t n, cap;
    void (*fn)(void *);
};

static void batch_push(struct ptr_batch *b, void *p)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 256;
        b->p = bs_xrealloc(b->p, b->cap * sizeof(*b->p));
    }
    b->p[b->n++] = p;
}

static void batch_free(void *arg)
{
    struct ptr_batch *b = arg;
    for (size_t i = 0; i < b->n; i++)
        b->fn(b->p[i]);
    free(b->p);
    free(b);
}

static void retire_batch(struct tsdb_reclaim *r, struct ptr_batch *b)
{
    if (b->n == 0) {
        free(b->p);
        free(b);
        return;
    }
    tsdb_reclaim_retire(r, b, batch_free);
}

struct ref_vec {
    tsdb_ref *v;
    size_t n, cap;
};

static void ref_push(struct ref_vec *rv, tsdb_ref ref)
{
    if (rv->n == rv->cap) {
        rv->cap = rv->cap ? rv->cap * 2 : 256;
        rv->v = bs_xrealloc(rv->v, rv->cap * sizeof(*rv->v));
    }
    rv->v[rv->n++] = ref;
}

static int64_t series_min_locked(const struct tsdb_series *s)
{
    if (s->nchunks > 0)
        return s->chunks[0].mint;
    if (s->open.n > 0)
        return s->open.mint;
    return INT64_MAX;
}

static void ref_table_clear(struct tsdb_head *h, tsdb_ref ref)
{
    pthread_mutex_lock(&h->pages_mu);
    struct tsdb_series **page = h->pages[ref >> TSDB_REF_PAGE_BITS];
    if (page)
        __atomic_store_n(&page[ref & (TSDB_REF_PAGE_SIZE - 1)], NULL, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&h->pages_mu);
}

static bool ref_is_dead(uint64_t ref, void *arg)
{
    struct tsdb_head *h = arg;
    struct tsdb_series *s = tsdb_head_series_by_ref(h, ref);
    return !s || s->ref != ref;
}

int tsdb_head_truncate(struct tsdb *db, int64_t mint, uint32_t *cut_seg, size_t *removed,
                       struct bs_error *err)
{
    struct tsdb_head *h = &db->head;
    struct ptr_batch *chunks = bs_xcalloc(1, sizeof(*chunks));
    chunks->fn = free;
    struct ref_vec empty = {0}, aliases = {0};
    int64_t newmin = INT64_MAX;
    int rc = 0;
    if (removed)
        *removed = 0;

    /* Phase 1: chunks. */
    pthread_rwlock_wrlock(&db->trunc_lock);
    pthread_rwlock_rdlock(&h->postings.lock);
    tsdb_ref maxref = h->next_ref;
    pthread_rwlock_unlock(&h->postings.lock);
    uint64_t dropped = 0;
    for (tsdb_ref ref = 1; ref < maxref; ref++) {
        struct tsdb_series *s = tsdb_head_series_by_ref(h, ref);
        if (!s)
            continue;
        if (s->ref != ref) {
            ref_push(&aliases, ref);
            continue;
        }
        tsdb_series_lock(s);
        size_t k = 0;
        for (; k < s->nchunks && s->chunks[k].maxt < mint; k++) {
            if (s->chunks[k].ref & TSDB_HCHUNK_MEM)
                batch_push(chunks, (void *)(uintptr_t)(s->chunks[k].ref & ~TSDB_HCHUNK_MEM));
        }
        if (k > 0) {
            memmove(s->chunks, s->chunks + k, (s->nchunks - k) * sizeof(*s->chunks));
            s->nchunks -= k;
            dropped += k;
        }
        if (s->open.n > 0 && s->open.t < mint) {
            tsdb_xor_enc_reset(&s->open);
            dropped++;
        }
        int64_t m = series_min_locked(s);
        if (m == INT64_MAX)
            ref_push(&empty, ref);
        else
            s->min_t = m;
        if (m < newmin)
            newmin = m;
        tsdb_series_unlock(s);
    }
    if (dropped)
        __atomic_sub_fetch(&h->num_chunks, dropped, __ATOMIC_RELAXED);
    retire_batch(&h->reclaim, chunks);

    /* Phase 2: series, under the WAL writer mutex. */
    struct ptr_batch *dead = bs_xcalloc(1, sizeof(*dead));
    dead->fn = tsdb_head_series_free;
    pthread_mutex_lock(&db->wal.mu);
    for (size_t i = 0; i < empty.n; i++) {
        struct tsdb_series *s = tsdb_head_series_by_ref(h, empty.v[i]);
        if (!s || s->ref != empty.v[i])
            continue;
        tsdb_series_lock(s);
        int64_t m = series_min_locked(s);
        tsdb_series_unlock(s);
        if (m != INT64_MAX) { /* a commit added samples meanwhile */
            if (m < newmin)
                newmin = m;
            continue;
        }
        tsdb_head_stripe_unlink(h, s);
        s->removed = true;
        ref_table_clear(h, s->ref);
        batch_push(dead, s);
    }
    for (size_t i = 0; i < aliases.n; i++) {
        struct tsdb_series *s = tsdb_head_series_by_ref(h, aliases.v[i]);
        if (s && s->removed)
            ref_table_clear(h, aliases.v[i]);
    }
    if (dead->n > 0) {
        pthread_rwlock_wrlock(&h->postings.lock);
        tsdb_postings_delete_locked(&h->postings, ref_is_dead, h);
        pthread_rwlock_unlock(&h->postings.lock);
        __atomic_sub_fetch(&h->num_series, dead->n, __ATOMIC_RELAXED);
    }
    /* Series created after phase 1 started. */
    pthread_rwlock_rdlock(&h->postings.lock);
    tsdb_ref endref = h->next_ref;
    pthread_rwlock_unlock(&h->postings.lock);
    for (tsdb_ref ref = maxref; ref < endref; ref++) {
        struct tsdb_series *s = tsdb_head_series_by_ref(h, ref);
        if (!s || s->ref != ref)
            continue;
        tsdb_series_lock(s);
        int64_t m = series_min_locked(s);
        tsdb_series_unlock(s);
        if (m < newmin)
            newmin = m;
    }
    __atomic_store_n(&h->min_time, newmin, __ATOMIC_RELAXED);
    if (cut_seg) {
        *cut_seg = db->wal.seg;
        rc = tsdb_wal_cut_locked(&db->wal, err);
    }
    pthread_mutex_unlock(&db->wal.mu);
    pthread_rwlock_unlock(&db->trunc_lock);

    if (removed)
        *removed = dead->n;
    retire_batch(&h->reclaim, dead);
    /* No series references a chunk ending before mint any more. */
    if (h->hc)
        tsdb_hchunks_truncate(h->hc, mint, &h->reclaim);
    tsdb_reclaim_advance(&h->reclaim);
    free(empty.v);
    free(aliases.v);
    return rc;
}
