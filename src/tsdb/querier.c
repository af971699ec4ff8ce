/* SPDX-License-Identifier: Apache-2.0
 *
 * The querier: one view over every block overlapping the query range and
 * the head, as if they were one store.
 *
 * Sources. A block owns [its mint, its maxt); the head owns [end of the
 * newest block, +inf), even while it still holds older chunks that the
 * compactor has written to a block but not yet truncated. The compactor
 * publishes a block (under db->blocks_mu) before it truncates the head
 * (under db->trunc_lock, for writing), so reading the block list and then
 * the head, with trunc_lock held for reading, sees every sample exactly
 * once.
 *
 * Lifetimes. A querier references the blocks it reads (taken at creation,
 * plus any block published before a later select), so retention may
 * delete a block directory while the querier keeps reading its mappings.
 * It is also a reclaim epoch reader (reclaim.c): head series and chunks
 * unlinked by a concurrent truncation stay allocated until it is freed.
 * Select snapshots the head's chunk lists of the series it returns
 * (pointers to closed chunks, a copy of the open chunk): a truncation
 * after select unlinks those chunks from the head but the set still reads
 * them. Holding trunc_lock only for the duration of a select keeps a slow
 * consumer from stalling the compactor, and no lock is held while the
 * caller iterates.
 *
 * Select asks each source for its matching series sorted by labels (block
 * series ids are in label order by construction; the head sorts), then
 * merges the sorted lists: series with equal labels in several sources
 * become one series whose parts are listed in source order, i.e. in time
 * order (blocks by mint, then the head).
 *
 * Selection by time is exact (a series is returned only when it has a
 * sample in the range; chunks overlapping the range partly are decoded to
 * find out) unless the caller asks for TSDB_SELECT_CHUNK_RANGES, which
 * keeps a series when one of its chunks overlaps the range, without
 * decoding (Prometheus's rule); PromQL asks for it, as the evaluator reads
 * the samples anyway.
 *
 * An iterator chains the parts' chunks (block chunks point into the mmap,
 * head chunks into the head or into the copies of open chunks that select
 * made in the querier's arena), each with the time bounds of its source.
 * It borrows all of them, so it outlives its set but not its querier. Sources never overlap in time
 * by construction; defensively, a sample whose time is not after the previous one returned is
 * skipped, so overlapping data (e.g. blocks written by another tool) yields each timestamp once,
 * the earliest source winning.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "tsdb/tombstones.h"
#include "tsdb/tsdb_int.h"

struct q_source {
    struct tsdb_block *b; /* NULL for the head */
    int64_t mint, maxt;   /* the query range clamped to what it owns */
};

struct tsdb_querier {
    struct tsdb *db;
    int64_t mint, maxt;
    uint64_t epoch;
    struct tsdb_block **blocks; /* referenced, sorted by mint */
    size_t nblocks;
    struct bs_arena arena; /* label arrays of block series, open chunk copies */
};

struct q_item { /* one source's copy of a series */
    const struct labels *ls;
    struct tsdb_block *b; /* NULL for the head */
    int64_t mint, maxt;   /* the source's range */
    uint64_t id;          /* block series id */
    size_t hfirst, hn;    /* head: chunk snapshot in set->hchunks */
};

struct q_series {
    const struct labels *ls;
    size_t first, n; /* parts in set->parts */
};

struct tsdb_series_set {
    struct tsdb_querier *q;
    struct q_series *v;
    size_t n;
    size_t pos; /* 1-based index of the current series; 0 before the first */
    struct q_item *parts;
    struct tsdb_iter_chunk *hchunks; /* head chunks, snapshot at select */
    size_t nh, hcap;
};

struct it_chunk {
    struct tsdb_iter_chunk c;
    int64_t lo, hi;       /* the time bounds of its source */
    struct tsdb_block *b; /* the chunk's block (resolves shared time columns); NULL: head */
};

/* Chunks an iterator holds without a separate allocation. */
#define IT_INLINE 4

/* A decoder over one chunk of either encoding. */
struct chunk_dec {
    int64_t t;
    uint64_t v;
    bool dense;
    union {
        struct tsdb_xor_dec x;
        struct tsdb_dense_dec d; /* when dense */
    } u;
};

struct tsdb_iterator { /* what every sample touches comes first */
    bool active, done, has_cur, emitted;
    size_t n, cap, i;
    int64_t t, last_t;
    uint64_t v;
    struct it_chunk *chunks; /* inl or malloc'd */
    struct chunk_dec dec;
    struct tsdb_intervals del; /* deleted ranges (tombstones), sorted */
    struct it_chunk inl[IT_INLINE];
};

static void cdec_init(struct chunk_dec *c, const struct tsdb_iter_chunk *ch, struct tsdb_block *b)
{
    c->dense = ch->enc == TSDB_CHUNK_ENC_DENSE || ch->enc == TSDB_CHUNK_ENC_DENSE_ST;
    if (!c->dense) {
        tsdb_xor_dec_init(&c->u.x, ch->p, ch->len);
        return;
    }
    /* A shared-time chunk needs its block to find its time column. On
     * failure the decoder yields nothing. */
    struct bs_error err = {0};
    int rc = tsdb_block_dense_init(b, &c->u.d, ch->enc, ch->p, ch->len, &err);
    if (rc)
        BS_WARN("tsdb", "a dense chunk [%lld, %lld] is unreadable (%s); its samples are skipped",
                (long long)ch->mint, (long long)ch->maxt, err.code ? err.msg : bs_strerror(rc));
}

/* Next sample into c->t, c->v; false at the end (or on corruption). */
static bool cdec_next(struct chunk_dec *c)
{
    if (c->dense) {
        if (!tsdb_dense_dec_next(&c->u.d))
            return false;
        c->t = c->u.d.t;
        c->v = c->u.d.v;
        return true;
    }
    if (!tsdb_xor_dec_next(&c->u.x))
        return false;
    c->t = c->u.x.t;
    c->v = c->u.x.v;
    return true;
}

/* The first sample with time >= t after the current one (chunk ch, using
 * its seek marks) into c->t, c->v; false when there is none. */
static bool cdec_seek(struct chunk_dec *c, const struct tsdb_iter_chunk *ch, int64_t t)
{
    if (c->dense) {
        /* dense seek stays on a current sample that qualifies; the
         * iterator's current sample is always older than t */
        if (!tsdb_dense_dec_seek(&c->u.d, t))
            return false;
        c->t = c->u.d.t;
        c->v = c->u.d.v;
        return true;
    }
    if (!tsdb_xor_dec_seek(&c->u.x, t, ch->mint, ch->marks, ch->nmarks))
        return false;
    c->t = c->u.x.t;
    c->v = c->u.x.v;
    return true;
}

static void cdec_fini(struct chunk_dec *c)
{
    if (c->dense)
        tsdb_dense_dec_fini(&c->u.d);
    c->dense = false;
}

/* Does the chunk spanning [cmint, cmaxt] hold a sample in [mint, maxt]? */
static bool chunk_has_sample_in(struct tsdb_block *b, uint8_t enc, const uint8_t *p, size_t len,
                                int64_t cmint, int64_t cmaxt, int64_t mint, int64_t maxt)
{
    if (enc != TSDB_CHUNK_ENC_DENSE && enc != TSDB_CHUNK_ENC_DENSE_ST)
        return tsdb_chunk_has_sample_in(p, len, cmint, cmaxt, mint, maxt);
    if (cmaxt < mint || cmint > maxt)
        return false;
    if (cmint >= mint && cmaxt <= maxt)
        return true;
    struct tsdb_dense_dec d;
    bool found = false;
    if (tsdb_block_dense_init(b, &d, enc, p, len, NULL) == 0)
        found = tsdb_dense_dec_seek(&d, mint) && d.t <= maxt;
    tsdb_dense_dec_fini(&d);
    return found;
}

static int cmp_block(const void *a, const void *b)
{
    const struct tsdb_block *x = *(const struct tsdb_block *const *)a;
    const struct tsdb_block *y = *(const struct tsdb_block *const *)b;
    return x->meta.mint < y->meta.mint ? -1 : x->meta.mint > y->meta.mint;
}

/* Is [lo, hi] covered by the union of the ranges of the blocks q holds?
 * A block merged from blocks the querier already reads adds nothing. */
static bool held_blocks_cover(const struct tsdb_querier *q, int64_t lo, int64_t hi)
{
    bool moved = true;
    while (lo <= hi && moved) {
        moved = false;
        for (size_t j = 0; j < q->nblocks; j++) {
            const struct tsdb_block_meta *m = &q->blocks[j]->meta;
            if (m->mint <= lo && m->maxt > lo) {
                if (m->maxt - 1 >= hi)
                    return true;
                lo = m->maxt;
                moved = true;
            }
        }
    }
    return lo > hi;
}

/* Reference every block of the db overlapping the query range that q does
 * not hold yet; returns the end of the newest block (INT64_MIN if none),
 * from which on the head owns the data. A block whose part of the query
 * range is covered by blocks q holds already (a merge of them, published
 * since q was created) is not taken; a block that overlaps held blocks
 * only partly is, and the iterator returns each timestamp once. Caller
 * holds db->blocks_mu. */
static int64_t take_blocks_locked(struct tsdb_querier *q)
{
    struct tsdb *db = q->db;
    int64_t head_from = INT64_MIN;
    bool added = false;
    for (size_t i = 0; i < db->nblocks; i++) {
        struct tsdb_block *b = db->blocks[i];
        if (b->meta.maxt > head_from)
            head_from = b->meta.maxt;
        if (b->meta.mint > q->maxt || b->meta.maxt <= q->mint)
            continue;
        bool have = false;
        for (size_t j = 0; j < q->nblocks && !have; j++)
            have = q->blocks[j] == b;
        if (have)
            continue;
        int64_t lo = b->meta.mint > q->mint ? b->meta.mint : q->mint;
        int64_t hi = b->meta.maxt - 1 < q->maxt ? b->meta.maxt - 1 : q->maxt;
        if (q->nblocks > 0 && held_blocks_cover(q, lo, hi))
            continue;
        q->blocks = bs_xrealloc(q->blocks, (q->nblocks + 1) * sizeof(*q->blocks));
        tsdb_block_ref(b);
        q->blocks[q->nblocks++] = b;
        added = true;
    }
    if (added && q->nblocks > 1)
        qsort(q->blocks, q->nblocks, sizeof(*q->blocks), cmp_block);
    return head_from;
}

struct tsdb_querier *tsdb_querier_new(struct tsdb *db, int64_t mint, int64_t maxt)
{
    if (!db)
        return NULL;
    struct tsdb_querier *q = calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    q->db = db;
    q->mint = mint;
    q->maxt = maxt;
    bs_arena_init(&q->arena, 64 * 1024, 0);
    q->epoch = tsdb_reclaim_enter(&db->head.reclaim);
    pthread_mutex_lock(&db->blocks_mu);
    take_blocks_locked(q);
    pthread_mutex_unlock(&db->blocks_mu);
    return q;
}

void tsdb_querier_free(struct tsdb_querier *q)
{
    if (!q)
        return;
    for (size_t i = 0; i < q->nblocks; i++)
        tsdb_block_unref(q->blocks[i]);
    free(q->blocks);
    tsdb_reclaim_exit(&q->db->head.reclaim, q->epoch);
    bs_arena_fini(&q->arena);
    free(q);
}

/* ------------------------------------------------------------- matching */

struct item_vec {
    struct q_item *v;
    size_t n, cap;
};

static int item_push(struct item_vec *iv, struct q_item it)
{
    if (iv->n == iv->cap) {
        size_t ncap = iv->cap ? iv->cap * 2 : 64;
        struct q_item *nv = realloc(iv->v, ncap * sizeof(*nv));
        if (!nv)
            return BS_ENOMEM;
        iv->v = nv;
        iv->cap = ncap;
    }
    iv->v[iv->n++] = it;
    return 0;
}

/* Does the block series hold a sample in the source's range? */
static bool block_series_in_range(struct tsdb_block *b, const struct tsdb_chunk_meta *c, size_t n,
                                  int64_t mint, int64_t maxt)
{
    for (size_t i = 0; i < n; i++) {
        if (c[i].maxt < mint)
            continue;
        if (c[i].mint > maxt)
            return false;
        if (c[i].mint >= mint && c[i].maxt <= maxt)
            return true;
        const uint8_t *p;
        size_t len;
        uint8_t enc;
        if (tsdb_block_chunk(b, c[i].ref, &p, &len, &enc) != 0)
            continue;
        if (chunk_has_sample_in(b, enc, p, len, c[i].mint, c[i].maxt, mint, maxt))
            return true;
    }
    return false;
}

/* Does a chunk of the block series overlap [mint, maxt]? */
static bool block_series_overlaps(const struct tsdb_chunk_meta *c, size_t n, int64_t mint,
                                  int64_t maxt)
{
    for (size_t i = 0; i < n; i++) {
        if (c[i].mint > maxt)
            return false;
        if (c[i].maxt >= mint)
            return true;
    }
    return false;
}

int tsdb_block_postings_matching(struct tsdb_block *b, struct labels_matcher *const *ms,
                                 size_t nms, uint64_t **out, size_t *nout)
{
    uint64_t *cur = NULL;
    size_t ncur = 0;
    bool have = false;
    for (size_t i = 0; i < nms; i++) {
        if (labels_matcher_matches_empty(ms[i]))
            continue;
        uint64_t *l;
        size_t nl;
        int rc = tsdb_block_postings_for_matcher(b, ms[i], &l, &nl);
        if (rc) {
            free(cur);
            return rc;
        }
        if (!have) {
            cur = l;
            ncur = nl;
            have = true;
        } else {
            ncur = tsdb_postings_intersect(cur, ncur, l, nl);
            free(l);
        }
        if (ncur == 0)
            break;
    }
    if (!have)
        return tsdb_block_postings_all(b, out, nout);
    *out = cur;
    *nout = ncur;
    return 0;
}

static int block_select(struct tsdb_querier *q, const struct q_source *src,
                        struct labels_matcher *const *ms, size_t nms, unsigned flags,
                        struct item_vec *out)
{
    struct tsdb_block *b = src->b;
    uint64_t *cur = NULL;
    size_t ncur = 0;
    int rc = tsdb_block_postings_matching(b, ms, nms, &cur, &ncur);
    if (rc)
        goto done;
    struct bs_arena tmp;
    bs_arena_init(&tmp, 4096, 0);
    struct tsdb_chunk_meta *chks = NULL;
    size_t nchks = 0, chks_cap = 0;
    for (size_t i = 0; i < ncur && rc == 0; i++) {
        struct labels ls;
        bs_arena_reset(&tmp);
        int r = tsdb_block_series(b, cur[i], &tmp, &ls, &chks, &nchks, &chks_cap);
        if (r == BS_ENOMEM) {
            rc = r;
            break;
        }
        if (r) {
            BS_WARN("tsdb", "block %s: series %llu is unreadable (%s); skipped", b->dir,
                    (unsigned long long)cur[i], bs_strerror(r));
            continue;
        }
        bool ok = true;
        for (size_t j = 0; j < nms && ok; j++) {
            if (labels_matcher_matches_empty(ms[j]))
                ok = labels_matcher_matches_labels(ms[j], &ls);
        }
        if (ok)
            ok = (flags & TSDB_SELECT_CHUNK_RANGES)
                     ? block_series_overlaps(chks, nchks, src->mint, src->maxt)
                     : block_series_in_range(b, chks, nchks, src->mint, src->maxt);
        if (ok &&
            tsdb_tomb_block_series_hidden(q->db, b, cur[i], chks, nchks, src->mint, src->maxt))
            ok = false; /* tombstones hook: all its samples in range deleted */
        if (!ok)
            continue;
        struct labels *keep = bs_arena_alloc(&q->arena, sizeof(*keep));
        struct label *lv = bs_arena_alloc(&q->arena, (ls.n ? ls.n : 1) * sizeof(*lv));
        if (!keep || !lv) {
            rc = BS_ENOMEM;
            break;
        }
        memcpy(lv, ls.v, ls.n * sizeof(*lv));
        keep->v = lv;
        keep->n = ls.n;
        rc = item_push(out, (struct q_item){keep, b, src->mint, src->maxt, cur[i], 0, 0});
    }
    free(chks);
    bs_arena_fini(&tmp);
done:
    free(cur);
    return rc;
}

/* Select in the head and snapshot the chunks of each series found into
 * set->hchunks, so that a later truncation cannot take them away. */
static int head_select(struct tsdb_querier *q, const struct q_source *src,
                       struct labels_matcher *const *ms, size_t nms, unsigned flags,
                       struct item_vec *out, struct tsdb_series_set *set, struct bs_error *err)
{
    struct tsdb_series **v;
    size_t n;
    int rc = tsdb_head_select(&q->db->head, ms, nms, src->mint, src->maxt, true,
                              !(flags & TSDB_SELECT_CHUNK_RANGES), &v, &n, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < n && rc == 0; i++) {
        size_t first = set->nh;
        rc = tsdb_head_series_chunks(&q->db->head, v[i], src->mint, src->maxt, &q->arena,
                                     &set->hchunks, &set->nh, &set->hcap);
        if (rc == 0 && tsdb_tomb_head_series_hidden(q->db, v[i]->ref, set->hchunks + first,
                                                    set->nh - first, src->mint, src->maxt)) {
            set->nh = first; /* tombstones hook: all its samples in range deleted */
            continue;        /* (open chunk copies stay in the querier's arena) */
        }
        if (rc == 0)
            rc = item_push(out, (struct q_item){&v[i]->lset, NULL, src->mint, src->maxt, v[i]->ref,
                                                first, set->nh - first});
    }
    free(v);
    return rc;
}

/* Select in every source and merge by labels into set.
 *
 * Holding db->trunc_lock for reading keeps head truncation out while the
 * sources are fixed and the head is snapshot: blocks published since the
 * querier was created are referenced too, and the head is read from the
 * newest block's end on. So a truncation that happened after the querier
 * was created loses nothing (its range is in a block published before it
 * ran), and one that happens after select cannot touch the snapshot. */
static int select_merged(struct tsdb_querier *q, struct labels_matcher *const *ms, size_t nms,
                         unsigned flags, struct tsdb_series_set *set, struct bs_error *err)
{
    if (nms > 0 && !ms)
        return bs_error_set(err, BS_EINVAL, "matcher list is NULL");
    for (size_t i = 0; i < nms; i++) {
        if (!ms[i])
            return bs_error_set(err, BS_EINVAL, "matcher %zu is NULL", i);
    }
    struct tsdb *db = q->db;
    pthread_rwlock_rdlock(&db->trunc_lock);
    bool locked = true;
    pthread_mutex_lock(&db->blocks_mu);
    int64_t head_from = take_blocks_locked(q);
    pthread_mutex_unlock(&db->blocks_mu);

    size_t nsrc = 0;
    struct q_source *src = malloc((q->nblocks + 1) * sizeof(*src));
    struct item_vec *lists = calloc(q->nblocks + 1, sizeof(*lists));
    size_t *pos = calloc(q->nblocks + 1, sizeof(*pos));
    int rc = 0;
    if (!src || !lists || !pos) {
        rc = BS_ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < q->nblocks; i++) {
        struct tsdb_block *b = q->blocks[i];
        int64_t lo = b->meta.mint > q->mint ? b->meta.mint : q->mint;
        int64_t hi = b->meta.maxt - 1 < q->maxt ? b->meta.maxt - 1 : q->maxt;
        if (lo <= hi)
            src[nsrc++] = (struct q_source){b, lo, hi};
    }
    int64_t hlo = head_from > q->mint ? head_from : q->mint;
    if (hlo <= q->maxt)
        src[nsrc++] = (struct q_source){NULL, hlo, q->maxt};
    size_t total = 0;
    for (size_t si = 0; si < nsrc && rc == 0; si++) {
        if (src[si].b)
            rc = block_select(q, &src[si], ms, nms, flags, &lists[si]);
        else
            rc = head_select(q, &src[si], ms, nms, flags, &lists[si], set, err);
        total += lists[si].n;
    }
    pthread_rwlock_unlock(&db->trunc_lock);
    locked = false;
    if (rc || total == 0)
        goto done;
    set->parts = malloc(total * sizeof(*set->parts));
    set->v = malloc(total * sizeof(*set->v));
    if (!set->parts || !set->v) {
        rc = BS_ENOMEM;
        goto done;
    }
    size_t np = 0;
    for (;;) {
        const struct labels *min = NULL;
        for (size_t si = 0; si < nsrc; si++) {
            if (pos[si] < lists[si].n) {
                const struct labels *ls = lists[si].v[pos[si]].ls;
                if (!min || labels_cmp(ls, min) < 0)
                    min = ls;
            }
        }
        if (!min)
            break;
        struct q_series *qs = &set->v[set->n++];
        qs->ls = min;
        qs->first = np;
        qs->n = 0;
        for (size_t si = 0; si < nsrc; si++) {
            if (pos[si] < lists[si].n && labels_equal(lists[si].v[pos[si]].ls, min)) {
                set->parts[np++] = lists[si].v[pos[si]++];
                qs->n++;
            }
        }
    }
done:
    if (locked)
        pthread_rwlock_unlock(&db->trunc_lock);
    if (lists) {
        for (size_t si = 0; si < nsrc; si++)
            free(lists[si].v);
    }
    free(src);
    free(lists);
    free(pos);
    if (rc && err && err->code == 0)
        bs_error_set(err, rc, "selecting series: %s", bs_strerror(rc));
    return rc;
}

/* Free what select put in a set (the set itself excepted). */
static void set_fini(struct tsdb_series_set *s)
{
    free(s->hchunks);
    free(s->v);
    free(s->parts);
}

int tsdb_querier_select(struct tsdb_querier *q, struct labels_matcher *const *ms, size_t nms,
                        struct tsdb_series_set **out, struct bs_error *err)
{
    return tsdb_querier_select_flags(q, ms, nms, 0, out, err);
}

int tsdb_querier_select_flags(struct tsdb_querier *q, struct labels_matcher *const *ms, size_t nms,
                              unsigned flags, struct tsdb_series_set **out, struct bs_error *err)
{
    *out = NULL;
    if (!q)
        return bs_error_set(err, BS_EINVAL, "querier is NULL");
    struct tsdb_series_set *set = calloc(1, sizeof(*set));
    if (!set)
        return bs_error_set(err, BS_ENOMEM, "out of memory creating a series set");
    set->q = q;
    int rc = select_merged(q, ms, nms, flags, set, err);
    if (rc) {
        tsdb_series_set_free(set);
        return rc;
    }
    *out = set;
    return 0;
}

bool tsdb_series_set_next(struct tsdb_series_set *s)
{
    if (!s || s->pos >= s->n) {
        if (s)
            s->pos = s->n + 1;
        return false;
    }
    s->pos++;
    return true;
}

const struct labels *tsdb_series_set_labels(struct tsdb_series_set *s)
{
    if (!s || s->pos == 0 || s->pos > s->n)
        return NULL;
    return s->v[s->pos - 1].ls;
}

size_t tsdb_series_set_count(struct tsdb_series_set *s)
{
    return s ? s->n : 0;
}

void tsdb_series_set_free(struct tsdb_series_set *s)
{
    if (!s)
        return;
    set_fini(s);
    free(s);
}

/* ------------------------------------------------------------- iterator */

static int it_push(struct tsdb_iterator *it, struct tsdb_iter_chunk c, int64_t lo, int64_t hi,
                   struct tsdb_block *b)
{
    if (it->n == it->cap) {
        size_t ncap = it->cap * 2;
        struct it_chunk *nv;
        if (it->chunks == it->inl) {
            nv = malloc(ncap * sizeof(*nv));
            if (nv)
                memcpy(nv, it->inl, it->n * sizeof(*nv));
        } else {
            nv = realloc(it->chunks, ncap * sizeof(*nv));
        }
        if (!nv)
            return BS_ENOMEM;
        it->chunks = nv;
        it->cap = ncap;
    }
    it->chunks[it->n++] = (struct it_chunk){c, lo, hi, b};
    return 0;
}

static int block_chunks(struct tsdb_iterator *it, struct tsdb_block *b, uint64_t id, int64_t mint,
                        int64_t maxt)
{
    struct tsdb_chunk_meta *chks = NULL;
    size_t nchks = 0, chks_cap = 0;
    int rc = tsdb_block_series(b, id, NULL, NULL, &chks, &nchks, &chks_cap);
    if (rc) {
        free(chks);
        return rc == BS_ENOMEM ? rc : 0;
    }
    for (size_t i = 0; i < nchks && rc == 0; i++) {
        if (chks[i].maxt < mint)
            continue;
        if (chks[i].mint > maxt)
            break;
        const uint8_t *p;
        size_t len;
        uint8_t enc;
        int r = tsdb_block_chunk(b, chks[i].ref, &p, &len, &enc);
        if (r) {
            BS_WARN("tsdb", "block %s: chunk %llu is unreadable (%s); its samples are skipped",
                    b->dir, (unsigned long long)chks[i].ref, bs_strerror(r));
            continue;
        }
        rc = it_push(it, (struct tsdb_iter_chunk){p, len, chks[i].mint, chks[i].maxt, NULL, 0, enc},
                     mint, maxt, b);
    }
    free(chks);
    return rc;
}

struct tsdb_iterator *tsdb_series_set_iterator(struct tsdb_series_set *set)
{
    if (!set || set->pos == 0 || set->pos > set->n)
        return NULL;
    const struct q_series *qs = &set->v[set->pos - 1];
    struct tsdb_iterator *it = malloc(sizeof(*it));
    if (!it)
        return NULL;
    memset(it, 0, offsetof(struct tsdb_iterator, inl));
    it->chunks = it->inl;
    it->cap = IT_INLINE;
    int rc = 0;
    for (size_t k = 0; k < qs->n && rc == 0; k++) {
        const struct q_item *part = &set->parts[qs->first + k];
        if (part->b) {
            rc = block_chunks(it, part->b, part->id, part->mint, part->maxt);
        } else {
            /* The set's snapshot: its bytes belong to the head or to the
             * querier's arena, not to the set. */
            for (size_t i = 0; i < part->hn && rc == 0; i++)
                rc = it_push(it, set->hchunks[part->hfirst + i], part->mint, part->maxt, NULL);
        }
        if (rc == 0) /* tombstones hook */
            rc = tsdb_tomb_lookup_range(set->q->db, part->b, part->id, part->mint, part->maxt,
                                        &it->del);
    }
    if (rc) {
        tsdb_iterator_free(it);
        return NULL;
    }
    return it;
}

/* The oldest time the iterator may still return from chunk c: its
 * source's lower bound, and after the last sample returned. */
static int64_t it_from(const struct tsdb_iterator *it, const struct it_chunk *c)
{
    int64_t from = c->lo;
    if (it->emitted && it->last_t >= from)
        from = it->last_t == INT64_MAX ? INT64_MAX : it->last_t + 1;
    return from;
}

/* Move to the next sample with time >= want (INT64_MIN: just the next
 * one), within the chunks' bounds. Whole chunks ending before it are
 * passed without decoding; within a chunk the decoder seeks (with the
 * chunk's marks) instead of returning sample by sample. */
static bool it_advance(struct tsdb_iterator *it, int64_t want)
{
    if (it->done)
        return false;
    for (;;) {
        bool got;
        if (!it->active) {
            while (it->i < it->n && it->chunks[it->i].c.maxt < want)
                it->i++;
            if (it->i >= it->n) {
                it->done = true;
                it->has_cur = false;
                return false;
            }
            const struct it_chunk *c = &it->chunks[it->i];
            cdec_init(&it->dec, &c->c, c->b);
            it->active = true;
            int64_t from = it_from(it, c);
            if (want > from)
                from = want;
            got = from > c->c.mint ? cdec_seek(&it->dec, &c->c, from) : cdec_next(&it->dec);
        } else {
            const struct it_chunk *c = &it->chunks[it->i];
            int64_t from = it_from(it, c);
            if (want > from)
                from = want;
            /* seek only past samples next() would skip anyway */
            got = from > it->dec.t && from - 1 > it->dec.t ? cdec_seek(&it->dec, &c->c, from)
                                                           : cdec_next(&it->dec);
        }
        if (!got) {
            cdec_fini(&it->dec);
            it->active = false;
            it->i++;
            continue;
        }
        int64_t t = it->dec.t;
        const struct it_chunk *c = &it->chunks[it->i];
        if (t < c->lo || (it->emitted && t <= it->last_t) || t < want)
            continue;
        if (t > c->hi) {
            cdec_fini(&it->dec);
            it->active = false;
            it->i++;
            continue;
        }
        if (it->del.n && tsdb_intervals_cover(it->del.v, it->del.n, t))
            continue; /* tombstones hook */
        it->t = t;
        it->v = it->dec.v;
        it->last_t = t;
        it->emitted = true;
        it->has_cur = true;
        return true;
    }
}

bool tsdb_iterator_next(struct tsdb_iterator *it)
{
    return it && it_advance(it, INT64_MIN);
}

bool tsdb_iterator_seek(struct tsdb_iterator *it, int64_t t)
{
    if (!it || it->done)
        return false;
    if (it->has_cur && it->t >= t)
        return true;
    if (it->active && it->chunks[it->i].c.maxt < t) {
        cdec_fini(&it->dec);
        it->active = false;
        it->i++;
    }
    return it_advance(it, t);
}

void tsdb_iterator_at(const struct tsdb_iterator *it, int64_t *t, double *v)
{
    if (t)
        *t = it->t;
    if (v)
        *v = bs_float_from_bits(it->v);
}

void tsdb_iterator_free(struct tsdb_iterator *it)
{
    if (!it)
        return;
    if (it->active)
        cdec_fini(&it->dec);
    if (it->chunks != it->inl)
        free(it->chunks);
    tsdb_intervals_fini(&it->del);
    free(it);
}

/* -------------------------------------------------------- names, values */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sort and deduplicate; hand the array out (NULL when empty). */
static void finish_strings(const char **v, size_t n, const char ***out, size_t *nout)
{
    if (n > 1)
        qsort(v, n, sizeof(*v), cmp_str);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (k == 0 || strcmp(v[k - 1], v[i]) != 0)
            v[k++] = v[i];
    }
    if (k == 0) {
        free(v);
        v = NULL;
    }
    *out = v;
    *nout = k;
}

int tsdb_querier_label_names(struct tsdb_querier *q, struct labels_matcher *const *ms, size_t nms,
                             const char ***out, size_t *n, struct bs_error *err)
{
    *out = NULL;
    *n = 0;
    if (!q)
        return bs_error_set(err, BS_EINVAL, "querier is NULL");
    struct tsdb_series_set set = {.q = q};
    int rc = select_merged(q, ms, nms, 0, &set, err);
    if (rc) {
        set_fini(&set);
        return rc;
    }
    size_t total = 0;
    for (size_t i = 0; i < set.n; i++)
        total += set.v[i].ls->n;
    const char **names = total ? malloc(total * sizeof(*names)) : NULL;
    if (total && !names) {
        set_fini(&set);
        return bs_error_set(err, BS_ENOMEM, "out of memory listing label names");
    }
    size_t k = 0;
    for (size_t i = 0; i < set.n; i++) {
        for (size_t j = 0; j < set.v[i].ls->n; j++)
            names[k++] = set.v[i].ls->v[j].name;
    }
    set_fini(&set);
    finish_strings(names, k, out, n);
    return 0;
}

int tsdb_querier_label_values(struct tsdb_querier *q, const char *name,
                              struct labels_matcher *const *ms, size_t nms, const char ***out,
                              size_t *n, struct bs_error *err)
{
    *out = NULL;
    *n = 0;
    if (!q || !name)
        return bs_error_set(err, BS_EINVAL, "querier or label name is NULL");
    struct tsdb_series_set set = {.q = q};
    int rc = select_merged(q, ms, nms, 0, &set, err);
    if (rc) {
        set_fini(&set);
        return rc;
    }
    const char **vals = set.n ? malloc(set.n * sizeof(*vals)) : NULL;
    if (set.n && !vals) {
        set_fini(&set);
        return bs_error_set(err, BS_ENOMEM, "out of memory listing label values");
    }
    size_t k = 0;
    for (size_t i = 0; i < set.n; i++) {
        const char *val = labels_get(set.v[i].ls, name);
        if (val && val[0])
            vals[k++] = val;
    }
    set_fini(&set);
    finish_strings(vals, k, out, n);
    return 0;
}
