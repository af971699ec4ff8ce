/* SPDX-License-Identifier: Apache-2.0
 *
 * Reading the head: the querier, series sets, sample iterators, label
 * names and values.
 *
 * Select resolves matchers that do not match the empty string to postings
 * lists (a direct lookup for =, the union over the name's values the
 * matcher accepts otherwise), intersects them, and filters the candidates
 * with the remaining matchers (those that also select series lacking the
 * label) and by time. With no such matcher every series is a candidate.
 *
 * An iterator takes its snapshot when it is created: under the series lock
 * it records the closed chunks overlapping [mint, maxt] (immutable and
 * alive until tsdb_close, so only pointers are kept) and copies the open
 * chunk, which a later append may reallocate. It then decodes one chunk at
 * a time, skipping whole chunks on seek by their time range.
 */
#include <stdlib.h>
#include <string.h>

#include "tsdb/tsdb_int.h"

struct tsdb_querier {
    struct tsdb *db;
    int64_t mint, maxt;
};

struct tsdb_series_set {
    struct tsdb_querier *q;
    struct tsdb_series **v;
    size_t n;
    size_t pos; /* 1-based index of the current series; 0 before the first */
};

struct iter_chunk {
    const uint8_t *p;
    size_t len;
    int64_t mint, maxt;
};

struct tsdb_iterator {
    int64_t mint, maxt;
    struct iter_chunk *chunks;
    size_t n, i;
    uint8_t *open_copy;
    struct tsdb_xor_dec dec;
    bool active, done, has_cur;
    int64_t t;
    uint64_t v;
};

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
    return q;
}

void tsdb_querier_free(struct tsdb_querier *q)
{
    free(q);
}

/* ------------------------------------------------------------- matching */

static size_t intersect(uint64_t *a, size_t na, const uint64_t *b, size_t nb)
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

static int cmp_series(const void *a, const void *b)
{
    const struct tsdb_series *x = *(const struct tsdb_series *const *)a;
    const struct tsdb_series *y = *(const struct tsdb_series *const *)b;
    return labels_cmp(&x->lset, &y->lset);
}

/* The series matching ms with a sample in [mint, maxt]; *out malloc'd. */
static int select_series(struct tsdb_querier *q, struct labels_matcher *const *ms, size_t nms,
                         bool sorted, struct tsdb_series ***out, size_t *nout, struct bs_error *err)
{
    struct tsdb_head *h = &q->db->head;
    uint64_t *cur = NULL;
    size_t ncur = 0;
    bool have = false;
    int rc = 0;
    *out = NULL;
    *nout = 0;
    if (nms > 0 && !ms)
        return bs_error_set(err, BS_EINVAL, "matcher list is NULL");
    for (size_t i = 0; i < nms; i++) {
        if (!ms[i])
            return bs_error_set(err, BS_EINVAL, "matcher %zu is NULL", i);
    }
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
            ncur = intersect(cur, ncur, l, nl);
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
        pthread_mutex_lock(&s->mu);
        ok = tsdb_head_series_has_sample_in(s, q->mint, q->maxt);
        pthread_mutex_unlock(&s->mu);
        if (ok)
            v[n++] = s;
    }
    free(cur);
    if (sorted && n > 1)
        qsort(v, n, sizeof(*v), cmp_series);
    *out = v;
    *nout = n;
    return 0;
fail:
    free(cur);
    return bs_error_set(err, rc, "selecting series: %s", bs_strerror(rc));
}

int tsdb_querier_select(struct tsdb_querier *q, struct labels_matcher *const *ms, size_t nms,
                        struct tsdb_series_set **out, struct bs_error *err)
{
    *out = NULL;
    if (!q)
        return bs_error_set(err, BS_EINVAL, "querier is NULL");
    struct tsdb_series_set *set = calloc(1, sizeof(*set));
    if (!set)
        return bs_error_set(err, BS_ENOMEM, "out of memory creating a series set");
    int rc = select_series(q, ms, nms, true, &set->v, &set->n, err);
    if (rc) {
        free(set);
        return rc;
    }
    set->q = q;
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
    return &s->v[s->pos - 1]->lset;
}

size_t tsdb_series_set_count(struct tsdb_series_set *s)
{
    return s ? s->n : 0;
}

void tsdb_series_set_free(struct tsdb_series_set *s)
{
    if (!s)
        return;
    free(s->v);
    free(s);
}

/* ------------------------------------------------------------- iterator */

struct tsdb_iterator *tsdb_series_set_iterator(struct tsdb_series_set *set)
{
    if (!set || set->pos == 0 || set->pos > set->n)
        return NULL;
    struct tsdb_series *s = set->v[set->pos - 1];
    int64_t mint = set->q->mint, maxt = set->q->maxt;

    pthread_mutex_lock(&s->mu);
    size_t first = 0, nclosed = 0;
    while (first < s->nchunks && s->chunks[first]->maxt < mint)
        first++;
    while (first + nclosed < s->nchunks && s->chunks[first + nclosed]->mint <= maxt)
        nclosed++;
    bool want_open = s->open.n > 0 && s->open.mint <= maxt && s->open.t >= mint;
    size_t open_len = want_open ? tsdb_xor_enc_bytes(&s->open) : 0;

    struct tsdb_iterator *it = calloc(1, sizeof(*it) + (nclosed + 1) * sizeof(struct iter_chunk));
    uint8_t *copy = want_open ? malloc(open_len) : NULL;
    if (!it || (want_open && !copy)) {
        pthread_mutex_unlock(&s->mu);
        free(it);
        free(copy);
        return NULL;
    }
    it->chunks = (struct iter_chunk *)(it + 1);
    for (size_t i = 0; i < nclosed; i++) {
        const struct tsdb_chunk *c = s->chunks[first + i];
        it->chunks[i] = (struct iter_chunk){c->data, c->len, c->mint, c->maxt};
    }
    it->n = nclosed;
    if (want_open) {
        memcpy(copy, s->open.buf, open_len);
        it->open_copy = copy;
        it->chunks[it->n++] = (struct iter_chunk){copy, open_len, s->open.mint, s->open.t};
    }
    pthread_mutex_unlock(&s->mu);
    it->mint = mint;
    it->maxt = maxt;
    return it;
}

bool tsdb_iterator_next(struct tsdb_iterator *it)
{
    if (!it || it->done)
        return false;
    for (;;) {
        if (!it->active) {
            if (it->i >= it->n) {
                it->done = true;
                it->has_cur = false;
                return false;
            }
            tsdb_xor_dec_init(&it->dec, it->chunks[it->i].p, it->chunks[it->i].len);
            it->active = true;
        }
        if (!tsdb_xor_dec_next(&it->dec)) {
            it->active = false;
            it->i++;
            continue;
        }
        if (it->dec.t < it->mint)
            continue;
        if (it->dec.t > it->maxt) {
            it->done = true;
            it->has_cur = false;
            return false;
        }
        it->t = it->dec.t;
        it->v = it->dec.v;
        it->has_cur = true;
        return true;
    }
}

bool tsdb_iterator_seek(struct tsdb_iterator *it, int64_t t)
{
    if (!it || it->done)
        return false;
    if (it->has_cur && it->t >= t)
        return true;
    if (it->active && it->chunks[it->i].maxt < t) {
        it->active = false;
        it->i++;
    }
    while (!it->active && it->i < it->n && it->chunks[it->i].maxt < t)
        it->i++;
    while (tsdb_iterator_next(it)) {
        if (it->t >= t)
            return true;
    }
    return false;
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
    free(it->open_copy);
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
    struct tsdb_series **v;
    size_t nv;
    int rc = select_series(q, ms, nms, false, &v, &nv, err);
    if (rc)
        return rc;
    size_t total = 0;
    for (size_t i = 0; i < nv; i++)
        total += v[i]->lset.n;
    const char **names = total ? malloc(total * sizeof(*names)) : NULL;
    if (total && !names) {
        free(v);
        return bs_error_set(err, BS_ENOMEM, "out of memory listing label names");
    }
    size_t k = 0;
    for (size_t i = 0; i < nv; i++) {
        for (size_t j = 0; j < v[i]->lset.n; j++)
            names[k++] = v[i]->lset.v[j].name;
    }
    free(v);
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
    struct tsdb_series **v;
    size_t nv;
    int rc = select_series(q, ms, nms, false, &v, &nv, err);
    if (rc)
        return rc;
    const char **vals = nv ? malloc(nv * sizeof(*vals)) : NULL;
    if (nv && !vals) {
        free(v);
        return bs_error_set(err, BS_ENOMEM, "out of memory listing label values");
    }
    size_t k = 0;
    for (size_t i = 0; i < nv; i++) {
        const char *val = labels_get(&v[i]->lset, name);
        if (val && val[0])
            vals[k++] = val;
    }
    free(v);
    finish_strings(vals, k, out, n);
    return 0;
}
