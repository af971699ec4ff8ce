/* SPDX-License-Identifier: Apache-2.0
 *
 * Reading the head: series selection by matchers and time, and chunk
 * snapshots for iterators. The querier (querier.c) merges these with the
 * blocks'.
 *
 * Select resolves matchers that do not match the empty string to postings
 * lists (a direct lookup for =, the union over the name's values the
 * matcher accepts otherwise), intersects them, and filters the candidates
 * with the remaining matchers (those that also select series lacking the
 * label) and by time. With no such matcher every series is a candidate.
 *
 * Selection by time is either exact (a chunk that overlaps the range only
 * partly is decoded to find a sample in it) or, as Prometheus selects, by
 * the chunks' time ranges alone: a series is kept when one of its chunks
 * overlaps [mint, maxt], and its iterator may then yield nothing. The
 * second needs no decoding; PromQL uses it, since the evaluator drops
 * series without samples in a window anyway.
 *
 * A chunk snapshot is taken under the series lock: the closed chunks
 * overlapping [mint, maxt] are recorded by pointer (immutable, and kept
 * alive by the caller's reclaim epoch even if truncation unlinks them) and
 * the open chunk, which a later append may reallocate, is copied into the
 * caller's arena (the querier's: one bump allocation per series).
 */
#include <stdlib.h>
#include <string.h>

#include "tsdb/tsdb_int.h"

static int cmp_series(const void *a, const void *b)
{
    const struct tsdb_series *x = *(const struct tsdb_series *const *)a;
    const struct tsdb_series *y = *(const struct tsdb_series *const *)b;
    return labels_cmp(&x->lset, &y->lset);
}

/* Does a chunk of s overlap [mint, maxt]? Caller holds s->mu. */
static bool series_overlaps(const struct tsdb_series *s, int64_t mint, int64_t maxt)
{
    if (!s->has_samples || s->max_t < mint || s->min_t > maxt)
        return false;
    for (size_t i = 0; i < s->nchunks; i++) {
        const struct tsdb_hchunk *c = &s->chunks[i];
        if (c->mint > maxt)
            return false;
        if (c->maxt >= mint)
            return true;
    }
    return s->open.n > 0 && s->open.mint <= maxt && s->open.t >= mint;
}

int tsdb_head_select(struct tsdb_head *h, struct labels_matcher *const *ms, size_t nms,
                     int64_t mint, int64_t maxt, bool sorted, bool exact,
                     struct tsdb_series ***out, size_t *nout, struct bs_error *err)
{
    uint64_t *cur = NULL;
    size_t ncur = 0;
    bool have = false;
    int rc = 0;
    *out = NULL;
    *nout = 0;
    if (mint > maxt)
        return 0;
    for (size_t i = 0; i < nms; i++) {
        if (labels_matcher_matches_empty(ms[i]))
            continue;
        uint64_t *l;
        size_t nl;
        rc = tsdb_postings_for_matcher(&h->postings, ms[i], &l, &nl);
        if (rc)
            goto fail;
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
    if (!have) {
        rc = tsdb_postings_all(&h->postings, &cur, &ncur);
        if (rc)
            goto fail;
    }

    struct tsdb_series **v = NULL;
    if (ncur > 0) {
        v = malloc(ncur * sizeof(*v));
        if (!v) {
            rc = BS_ENOMEM;
            goto fail;
        }
    }
    size_t n = 0;
    for (size_t i = 0; i < ncur; i++) {
        struct tsdb_series *s = tsdb_head_series_by_ref(h, cur[i]);
        if (!s || s->ref != cur[i])
            continue;
        bool ok = true;
        for (size_t j = 0; j < nms && ok; j++) {
            if (labels_matcher_matches_empty(ms[j]))
                ok = labels_matcher_matches_labels(ms[j], &s->lset);
        }
        if (!ok)
            continue;
        tsdb_series_lock(s);
        ok = exact ? tsdb_head_series_has_sample_in(h, s, mint, maxt)
                   : series_overlaps(s, mint, maxt);
        tsdb_series_unlock(s);
        if (ok)
            v[n++] = s;
    }
    free(cur);
    if (n == 0) {
        free(v);
        v = NULL;
    }
    if (sorted && n > 1)
        qsort(v, n, sizeof(*v), cmp_series);
    *out = v;
    *nout = n;
    return 0;
fail:
    free(cur);
    return bs_error_set(err, rc, "selecting series: %s", bs_strerror(rc));
}

static int push_chunk(struct tsdb_iter_chunk **v, size_t *n, size_t *cap, struct tsdb_iter_chunk c)
{
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 8;
        struct tsdb_iter_chunk *nv = realloc(*v, ncap * sizeof(*nv));
        if (!nv)
            return BS_ENOMEM;
        *v = nv;
        *cap = ncap;
    }
    (*v)[(*n)++] = c;
    return 0;
}

int tsdb_head_series_chunks(struct tsdb_head *h, struct tsdb_series *s, int64_t mint,
                            int64_t maxt, struct bs_arena *arena, struct tsdb_iter_chunk **v,
                            size_t *n, size_t *cap)
{
    size_t n0 = *n;
    int rc = 0;
    tsdb_series_lock(s);
    for (size_t i = 0; i < s->nchunks && rc == 0; i++) {
        const struct tsdb_hchunk *c = &s->chunks[i];
        if (c->maxt < mint)
            continue;
        if (c->mint > maxt)
            break;
        const uint8_t *p;
        uint32_t len;
        if (!tsdb_head_chunk_bytes(h, c, &p, &len, NULL))
            continue; /* cannot happen: the file outlives the chunk's reference */
        rc = push_chunk(v, n, cap,
                        (struct tsdb_iter_chunk){p, len, c->mint, c->maxt, NULL, 0, 0});
    }
    if (rc == 0 && s->open.n > 0 && s->open.mint <= maxt && s->open.t >= mint) {
        size_t len = tsdb_xor_enc_bytes(&s->open);
        const struct tsdb_xor_mark *om = s->open.marks;
        size_t nm = TSDB_XOR_MARKS;
        while (nm > 0 && om->n == 0) { /* the marks in use are a suffix */
            om++;
            nm--;
        }
        /* marks first: the arena's alignment is theirs */
        uint8_t *mem = bs_arena_alloc(arena, nm * sizeof(*om) + len);
        if (!mem) {
            rc = BS_ENOMEM;
        } else {
            struct tsdb_xor_mark *marks = (struct tsdb_xor_mark *)(void *)mem;
            uint8_t *copy = mem + nm * sizeof(*om);
            memcpy(marks, om, nm * sizeof(*om));
            memcpy(copy, s->open.buf, len);
            rc = push_chunk(v, n, cap,
                            (struct tsdb_iter_chunk){copy, len, s->open.mint, s->open.t,
                                                     nm ? marks : NULL, (uint8_t)nm, 0});
        }
    }
    tsdb_series_unlock(s);
    if (rc)
        *n = n0;
    return rc;
}
