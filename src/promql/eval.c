/* SPDX-License-Identifier: Apache-2.0
 *
 * promql evaluator.
 *
 * Design. A query is evaluated step by step: the whole tree is evaluated
 * at one timestamp T, producing a scalar, a string, an instant vector or a
 * range vector (matrix); a range query repeats this for start, start+step,
 * ..., end and folds the vectors into one matrix keyed by label set. This
 * is the simplest model that is exactly Prometheus's semantics for every
 * node (binary matching, aggregation, functions all work on one instant).
 *
 * Storage is read once, forward. Before evaluation a prepare pass walks
 * the tree and computes, for every selector, the time span it can ever
 * need over the query (eval range widened by lookback or range, shifted by
 * offset, pinned by @, widened again under subqueries), and opens it: a
 * tsdb querier over that span, kept until the query ends so that the
 * series' labels are the querier's own (never copied), and an iterator per
 * series (struct sel_data). Evaluation times only move forward, so each
 * step slides every series' window to the step's time: points that fell
 * out are dropped, the iterator seeks past what the window never sees
 * (whole chunks are skipped undecoded) and reads up to the step's time.
 * Every sample is decoded once per query, and a selector holds only its
 * windows (range selectors) or newest samples (vector selectors), never
 * whole series. A selector needed at a single time (instant queries, @)
 * reads its window while opening and frees its iterators at once. Should
 * a selector ever be asked for an earlier time, it is opened again.
 *
 * Work shared between steps. Step-by-step evaluation would redo, at every
 * step, work whose result does not depend on the step; three caches keep
 * it for the query instead:
 *   - subquery results (struct sq_cache): the inner expression is
 *     evaluated once per grid time, not once per grid time per outer step
 *     (the window slides; see the section's comment);
 *   - stable labels: label sets that live as long as the query are
 *     registered by address with their hash, so duplicate checks and the
 *     range accumulator look them up instead of hashing them at each step;
 *   - aggregation groups (struct agg_cache): the group key and labels of
 *     each stable input series are computed once per aggregation node.
 * Nodes that compile something (label_replace's regex) keep it in a
 * per-query slot (promql_eval_node_slot).
 *
 * Memory. Everything produced while evaluating one step (vectors, matrices
 * from subqueries, computed label sets) lives in an arena reset after the
 * step; labels in vectors are therefore borrowed pointers either into the
 * selectors' queriers (query lifetime) or into the arena (step lifetime).
 * A range selector's window points into its buffer until the node is
 * evaluated again. The range-query accumulator copies what it keeps with
 * labels_dup. Errors simply unwind: the arena, the selectors and their
 * queriers are freed at the end of the query whatever happened. glibc keeps freed heap memory for reuse, so
 * after a query that handled many samples (a failed one included) the
 * memory is handed back with malloc_trim (promql_release_memory), and the
 * process returns to its size before the query.
 *
 * Names. As Prometheus 3 (EnableDelayedNameRemoval), an operation that
 * drops the metric name only flags the sample (drop_name) and keeps its
 * labels, so label_replace/label_join on __name__ and "by (__name__)" still
 * see it; aggregations OR the flags of their members. The name, __type__
 * and __unit__ go when a value leaves the evaluator: at the end of an
 * instant query (cleanup_names, then the duplicate check), at the end of a
 * range query (acc_finish merges series that now share labels, an error if
 * they share a timestamp) and at a subquery's output. Arithmetic between
 * two vectors removes them at once, as upstream's resultMetric does.
 *
 * Durations. Duration expressions that use step() or range() stay in the
 * tree and are resolved when the query starts (promql_resolve_durations);
 * constant ones were folded by the parser.
 *
 * Annotations. Functions record warnings and infos with
 * promql_eval_annotate (deduplicated, capped); they end up in the result's
 * warnings/infos arrays even though evaluation is step by step.
 *
 * Limits. Samples held at once (window points, newest samples, cached
 * and accumulated points) count against max_samples (BS_ELIMIT); the
 * deadline is checked while loading and at every step and selector
 * evaluation (BS_ETIMEOUT). The engine's semaphore bounds concurrency.
 */
#include <math.h>
#include <pthread.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "promql/promql_int.h"

struct promql_engine {
    struct promql_engine_opts o;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int active;
};

/* One selected series, read through its tsdb iterator as the evaluation
 * time moves forward (see "Storage" above). */
struct sel_series {
    const struct labels *ls;    /* the querier's: valid while it lives */
    struct tsdb_iterator *it;   /* NULL once nothing more is needed */
    struct promql_point nx;     /* the iterator's current sample, not consumed yet */
    struct promql_point cur;    /* vector selectors: the newest sample <= ref */
    bool has_cur;
    struct promql_point *w;     /* matrix selectors: the window's points w[lo..hi) */
    uint32_t lo, hi, cap;
    uint32_t drops;             /* points in the window lower than the one before */
};

struct sel_data {
    const struct promql_expr *node;   /* the VECTOR node */
    bool matrix;                /* windows of range ms, else the newest sample */
    int64_t range;              /* range_ms, or the lookback delta */
    int64_t mint, maxt;         /* what the querier reads */
    bool started;               /* ref below is meaningful */
    int64_t ref;                /* the newest window's end */
    struct tsdb_querier *q;
    struct sel_series *s;
    size_t n;
};

struct sq_cache;
struct agg_cache;

struct node_slot {
    const void *key;
    void *value;
    void (*free_fn)(void *);
};

/* A label set that lives as long as the query, with what is worth
 * remembering about it across steps. */
struct stable_ls {
    const struct labels *ls;
    uint64_t hash;              /* labels_hash */
    int64_t acc;                /* range query accumulator series, -1 unknown */
};

struct promql_eval {
    struct promql_engine *eng;
    struct tsdb *db;
    int64_t start, end;
    int64_t step;               /* 0 for an instant query */
    int64_t deadline_ns;
    struct bs_arena arena;
    struct sel_data *sels;
    size_t nsels;
    struct tsdb_querier **oldq; /* queriers of reopened selectors (labels in use) */
    size_t noldq;
    /* Stable label sets (see "Stable labels" below). */
    struct stable_ls *stable;
    size_t nstable, stable_cap;
    uintptr_t *st_keys;         /* pointer -> index into stable; open addressing */
    uint32_t *st_vals;
    size_t st_slots;
    struct labels **owned;      /* query-lifetime label sets to free at the end */
    size_t nowned, owned_cap;
    struct node_slot *slots;    /* promql_eval_node_slot */
    size_t nslots;
    int64_t samples;            /* held now (windows, cached, accumulated) */
    int64_t peak;               /* the most samples held at once */
    int64_t churn;              /* cached points ever added (for the trim decision) */
    struct bs_error *err;
    int code;
    unsigned ticks;
    char **warnings, **infos;   /* annotations (malloc'd), moved to the result */
    size_t nwarnings, ninfos;
};

/* --------------------------------------------------------------- engine */

void promql_engine_opts_default(struct promql_engine_opts *o)
{
    o->lookback_ms = 300000;
    o->timeout_ms = 120000;
    o->max_samples = 50000000;
    o->max_concurrency = 20;
}

struct promql_engine *promql_engine_new(const struct promql_engine_opts *o)
{
    struct promql_engine *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    if (o)
        e->o = *o;
    else
        promql_engine_opts_default(&e->o);
    if (e->o.max_concurrency < 1)
        e->o.max_concurrency = 1;
    if (e->o.lookback_ms <= 0)
        e->o.lookback_ms = 300000;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    return e;
}

void promql_engine_free(struct promql_engine *e)
{
    if (!e)
        return;
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    free(e);
}

static void engine_acquire(struct promql_engine *e)
{
    pthread_mutex_lock(&e->mu);
    while (e->active >= e->o.max_concurrency)
        pthread_cond_wait(&e->cv, &e->mu);
    e->active++;
    pthread_mutex_unlock(&e->mu);
}

static void engine_release(struct promql_engine *e)
{
    pthread_mutex_lock(&e->mu);
    e->active--;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

/* --------------------------------------------------------------- helpers */

int promql_eval_error(struct promql_eval *ev, int code, const char *fmt, ...)
{
    if (ev->code == 0) {
        ev->code = code;
        if (ev->err) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(ev->err->msg, sizeof(ev->err->msg), fmt, ap);
            va_end(ap);
            ev->err->code = code;
        }
    }
    return ev->code;
}

void promql_eval_annotate(struct promql_eval *ev, bool info, const char *fmt, ...)
{
    char msg[512];
    int n = snprintf(msg, sizeof(msg), "%s", info ? "PromQL info: " : "PromQL warning: ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
    va_end(ap);
    char ***list = info ? &ev->infos : &ev->warnings;
    size_t *nlist = info ? &ev->ninfos : &ev->nwarnings;
    for (size_t i = 0; i < *nlist; i++)
        if (strcmp((*list)[i], msg) == 0)
            return;
    if (*nlist >= PROMQL_MAX_ANNOTATIONS)
        return;
    char **nv = realloc(*list, (*nlist + 1) * sizeof(*nv));
    if (!nv)
        return;   /* annotations are best effort */
    *list = nv;
    if ((nv[*nlist] = strdup(msg)))
        (*nlist)++;
}

void **promql_eval_node_slot(struct promql_eval *ev, const void *key, void (*free_fn)(void *))
{
    for (size_t i = 0; i < ev->nslots; i++)
        if (ev->slots[i].key == key)
            return &ev->slots[i].value;
    struct node_slot *nv = realloc(ev->slots, (ev->nslots + 1) * sizeof(*nv));
    if (!nv) {
        promql_eval_error(ev, BS_ENOMEM, "out of memory in query execution");
        return NULL;
    }
    ev->slots = nv;
    ev->slots[ev->nslots] = (struct node_slot){key, NULL, free_fn};
    return &ev->slots[ev->nslots++].value;
}

void *promql_eval_node_object(struct promql_eval *ev, const void *key, size_t size,
                              void (*free_fn)(void *), bool *fresh)
{
    void **slot = promql_eval_node_slot(ev, key, free_fn);
    *fresh = false;
    if (!slot)
        return NULL;
    if (!*slot) {
        if (!(*slot = calloc(1, size))) {
            promql_eval_error(ev, BS_ENOMEM, "out of memory in query execution");
            return NULL;
        }
        *fresh = true;
    }
    return *slot;
}

int promql_eval_check(struct promql_eval *ev)
{
    if (ev->code)
        return ev->code;
    if ((ev->ticks++ & 63) == 0 && ev->deadline_ns && bs_monotonic_ns() > ev->deadline_ns)
        return promql_eval_error(ev, BS_ETIMEOUT, "query timed out in query execution");
    return 0;
}

int64_t promql_eval_start(const struct promql_eval *ev)
{
    return ev->start;
}

int64_t promql_eval_end(const struct promql_eval *ev)
{
    return ev->end;
}

int64_t promql_eval_step(const struct promql_eval *ev)
{
    return ev->step;
}

void *promql_eval_alloc(struct promql_eval *ev, size_t n)
{
    void *p = bs_arena_alloc(&ev->arena, n ? n : 1);
    if (!p)
        promql_eval_error(ev, BS_ENOMEM, "out of memory in query execution");
    return p;
}

const struct labels *promql_eval_labels(struct promql_eval *ev, const struct labels *ls)
{
    struct labels *c = promql_eval_alloc(ev, sizeof(*c) + ls->n * sizeof(struct label));
    if (!c)
        return NULL;
    c->v = (struct label *)(c + 1);
    c->n = ls->n;
    for (size_t i = 0; i < ls->n; i++) {
        c->v[i].name = bs_arena_strndup(&ev->arena, ls->v[i].name, strlen(ls->v[i].name));
        c->v[i].value = bs_arena_strndup(&ev->arena, ls->v[i].value, strlen(ls->v[i].value));
        if (!c->v[i].name || !c->v[i].value) {
            promql_eval_error(ev, BS_ENOMEM, "out of memory in query execution");
            return NULL;
        }
    }
    return c;
}

bool promql_is_metadata_label(const char *name)
{
    return strcmp(name, LABELS_METRIC_NAME) == 0 || strcmp(name, "__type__") == 0 ||
           strcmp(name, "__unit__") == 0;
}

const struct labels *promql_eval_drop_name(struct promql_eval *ev, const struct labels *ls)
{
    size_t drop = 0;
    for (size_t i = 0; i < ls->n; i++)
        drop += promql_is_metadata_label(ls->v[i].name);
    if (drop == 0)
        return ls;
    struct labels *c = promql_eval_alloc(ev, sizeof(*c) + ls->n * sizeof(struct label));
    if (!c)
        return NULL;
    c->v = (struct label *)(c + 1);
    c->n = 0;
    for (size_t i = 0; i < ls->n; i++)
        if (!promql_is_metadata_label(ls->v[i].name))
            c->v[c->n++] = ls->v[i];   /* strings outlive the step */
    return c;
}

/* Apply delayed name removal to v (see promql_int.h): drop the metadata
 * labels of every flagged sample. */
static int cleanup_names(struct promql_eval *ev, struct promql_sample *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!v[i].drop_name)
            continue;
        if (!(v[i].ls = promql_eval_drop_name(ev, v[i].ls)))
            return ev->code;
        v[i].drop_name = false;
    }
    return 0;
}

/* --------------------------------------------------------- stable labels
 *
 * Labels in vectors are borrowed pointers, either into query-lifetime
 * storage (selector series, subquery caches, aggregation group labels) or
 * into the step arena. The query-lifetime ones are registered here by
 * address: as they are never freed before the query ends, no other label
 * set can have the same address meanwhile, so the address identifies the
 * set across steps. Lookups by address then replace, step after step, the
 * hashing of whole label sets (duplicate checks, the range accumulator)
 * and the computation of aggregation groups. Unregistered (arena) labels
 * take the general path. */

static int64_t stable_id(const struct promql_eval *ev, const struct labels *ls)
{
    if (!ev->st_slots)
        return -1;
    uintptr_t k = (uintptr_t)ls;
    size_t mask = ev->st_slots - 1;
    size_t i = (size_t)((uint64_t)k * UINT64_C(0x9E3779B97F4A7C15) >> 20) & mask;
    while (ev->st_keys[i]) {
        if (ev->st_keys[i] == k)
            return ev->st_vals[i];
        i = (i + 1) & mask;
    }
    return -1;
}

static void stable_slot_put(uintptr_t *keys, uint32_t *vals, size_t nslots, uintptr_t k,
                            uint32_t v)
{
    size_t mask = nslots - 1;
    size_t i = (size_t)((uint64_t)k * UINT64_C(0x9E3779B97F4A7C15) >> 20) & mask;
    while (keys[i])
        i = (i + 1) & mask;
    keys[i] = k;
    vals[i] = v;
}

/* Register ls (query lifetime) with its hash h. */
static int stable_add(struct promql_eval *ev, const struct labels *ls, uint64_t h)
{
    if (ev->nstable >= UINT32_MAX - 1)
        return 0;   /* best effort: it just stays on the general path */
    if (ev->nstable == ev->stable_cap) {
        size_t nc = ev->stable_cap ? ev->stable_cap * 2 : 256;
        struct stable_ls *ns = realloc(ev->stable, nc * sizeof(*ns));
        if (!ns)
            return promql_eval_error(ev, BS_ENOMEM, "out of memory in query execution");
        ev->stable = ns;
        ev->stable_cap = nc;
    }
    if ((ev->nstable + 1) * 2 > ev->st_slots) {
        size_t nslots = ev->st_slots ? ev->st_slots * 2 : 512;
        uintptr_t *nk = calloc(nslots, sizeof(*nk));
        uint32_t *nv = malloc(nslots * sizeof(*nv));
        if (!nk || !nv) {
            free(nk);
            free(nv);
            return promql_eval_error(ev, BS_ENOMEM, "out of memory in query execution");
        }
        for (size_t i = 0; i < ev->nstable; i++)
            stable_slot_put(nk, nv, nslots, (uintptr_t)ev->stable[i].ls, (uint32_t)i);
        free(ev->st_keys);
        free(ev->st_vals);
        ev->st_keys = nk;
        ev->st_vals = nv;
        ev->st_slots = nslots;
    }
    stable_slot_put(ev->st_keys, ev->st_vals, ev->st_slots, (uintptr_t)ls,
                    (uint32_t)ev->nstable);
    ev->stable[ev->nstable++] = (struct stable_ls){ls, h, -1};
    return 0;
}

/* labels_hash(ls), from the registry when ls is stable. */
static uint64_t eval_labels_hash(const struct promql_eval *ev, const struct labels *ls)
{
    int64_t id = stable_id(ev, ls);
    return id >= 0 ? ev->stable[id].hash : labels_hash(ls);
}

/* Keep ls (a labels_dup copy) until the query ends and register it. */
static const struct labels *own_labels(struct promql_eval *ev, struct labels *ls)
{
    if (!ls) {
        promql_eval_error(ev, BS_ENOMEM, "out of memory in query execution");
        return NULL;
    }
    if (ev->nowned == ev->owned_cap) {
        size_t nc = ev->owned_cap ? ev->owned_cap * 2 : 64;
        struct labels **no = realloc(ev->owned, nc * sizeof(*no));
        if (!no) {
            free(ls);
            promql_eval_error(ev, BS_ENOMEM, "out of memory in query execution");
            return NULL;
        }
        ev->owned = no;
        ev->owned_cap = nc;
    }
    ev->owned[ev->nowned++] = ls;
    if (stable_add(ev, ls, labels_hash(ls)))
        return NULL;
    return ls;
}

/* An arena hash map from 64-bit keys to indices. */
struct hmap {
    uint64_t *keys;
    int64_t *vals;
    size_t mask;
};

static int hmap_init(struct promql_eval *ev, struct hmap *h, size_t n)
{
    size_t cap = 16;
    while (cap < n * 2)
        cap <<= 1;
    h->keys = promql_eval_alloc(ev, cap * sizeof(uint64_t));
    h->vals = promql_eval_alloc(ev, cap * sizeof(int64_t));
    if (!h->keys || !h->vals)
        return ev->code;
    for (size_t i = 0; i < cap; i++)
        h->vals[i] = -1;
    h->mask = cap - 1;
    return 0;
}

/* Returns the slot for key; *found tells whether it was present. */
static size_t hmap_slot(const struct hmap *h, uint64_t key, bool *found)
{
    size_t i = (size_t)(key * UINT64_C(0x9E3779B97F4A7C15)) & h->mask;
    while (h->vals[i] >= 0) {
        if (h->keys[i] == key) {
            *found = true;
            return i;
        }
        i = (i + 1) & h->mask;
    }
    *found = false;
    return i;
}

static int64_t hmap_get(const struct hmap *h, uint64_t key)
{
    bool found;
    size_t i = hmap_slot(h, key, &found);
    return found ? h->vals[i] : -1;
}

static void hmap_put(struct hmap *h, uint64_t key, int64_t val)
{
    bool found;
    size_t i = hmap_slot(h, key, &found);
    h->keys[i] = key;
    h->vals[i] = val;
}

/* "vector cannot contain metrics with the same labelset" check. */
static int check_dups(struct promql_eval *ev, const struct promql_sample *v, size_t n)
{
    if (n < 2)
        return 0;
    struct hmap h;
    if (hmap_init(ev, &h, n))
        return ev->code;
    for (size_t i = 0; i < n; i++) {
        uint64_t k = eval_labels_hash(ev, v[i].ls);
        bool found;
        size_t s = hmap_slot(&h, k, &found);
        if (found && labels_equal(v[h.vals[s]].ls, v[i].ls))
            return promql_eval_error(ev, BS_EEXEC,
                                     "vector cannot contain metrics with the same labelset");
        if (!found) {
            h.keys[s] = k;
            h.vals[s] = (int64_t)i;
        }
    }
    return 0;
}

/* ------------------------------------------------------------- storage */

static struct sel_data *find_sel(struct promql_eval *ev, const struct promql_expr *node)
{
    for (size_t i = 0; i < ev->nsels; i++)
        if (ev->sels[i].node == node)
            return &ev->sels[i];
    return NULL;
}

static void sel_series_free(struct sel_data *d)
{
    for (size_t i = 0; i < d->n; i++) {
        tsdb_iterator_free(d->s[i].it);
        free(d->s[i].w);
    }
    free(d->s);
    d->s = NULL;
    d->n = 0;
}

static void sel_data_fini(struct sel_data *d)
{
    sel_series_free(d);
    tsdb_querier_free(d->q);
    d->q = NULL;
}

static int too_many_samples(struct promql_eval *ev)
{
    return promql_eval_error(
        ev, BS_ELIMIT, "query processing would load too many samples into memory in query execution");
}

static int oom(struct promql_eval *ev)
{
    return promql_eval_error(ev, BS_ENOMEM, "out of memory in query execution");
}

/* One more sample held (a window point, a cached or accumulated point). */
static int hold_sample(struct promql_eval *ev)
{
    if (++ev->samples > ev->peak) {
        ev->peak = ev->samples;
        if (ev->samples > ev->eng->o.max_samples && ev->eng->o.max_samples > 0)
            return too_many_samples(ev);
    }
    return 0;
}

/* The iterator's next sample into s->nx; frees the iterator at the end. */
static void sel_next(struct sel_series *s, bool seek, int64_t t)
{
    if (seek ? tsdb_iterator_seek(s->it, t) : tsdb_iterator_next(s->it)) {
        tsdb_iterator_at(s->it, &s->nx.t, &s->nx.v);
    } else {
        tsdb_iterator_free(s->it);
        s->it = NULL;
    }
}

static int window_push(struct promql_eval *ev, struct sel_series *s, struct promql_point p)
{
    if (s->hi == s->cap) {
        if (s->lo > 0 && s->lo * 2 >= s->cap) {
            /* reuse the space of dropped points */
            memmove(s->w, s->w + s->lo, (s->hi - s->lo) * sizeof(*s->w));
            s->hi -= s->lo;
            s->lo = 0;
        } else {
            if (s->cap >= UINT32_MAX / 2)
                return too_many_samples(ev);
            uint32_t nc = s->cap ? s->cap * 2 : 16;
            struct promql_point *nw = realloc(s->w, nc * sizeof(*nw));
            if (!nw)
                return oom(ev);
            s->w = nw;
            s->cap = nc;
        }
    }
    if (s->hi > s->lo && p.v < s->w[s->hi - 1].v)
        s->drops++;
    s->w[s->hi++] = p;
    return hold_sample(ev);
}

/* Move s's window to (ref - d->range, ref]: drop what fell out, skip with
 * seek what the window never sees (whole chunks are passed without
 * decoding), read forward to ref. A matrix window keeps every non-stale
 * point in it (upstream drops stale markers from ranges); a vector keeps
 * the newest point <= ref, stale or not. Each sample is decoded once per
 * query however many steps see it. */
static int sel_advance(struct promql_eval *ev, const struct sel_data *d, struct sel_series *s,
                       int64_t ref)
{
    int64_t from = ref - d->range;   /* exclusive */
    if (d->matrix) {
        uint32_t lo = s->lo;
        while (lo < s->hi && s->w[lo].t <= from) {
            if (lo + 1 < s->hi && s->w[lo + 1].v < s->w[lo].v)
                s->drops--;
            lo++;
        }
        ev->samples -= lo - s->lo;
        s->lo = lo;
        if (s->lo == s->hi)
            s->lo = s->hi = s->drops = 0;
    }
    if (!s->it)
        return 0;
    if (s->nx.t <= from) {
        sel_next(s, true, from + 1);
        if (!s->it)
            return 0;
    }
    while (s->nx.t <= ref) {
        if (d->matrix) {
            if (!bs_is_stale_nan(s->nx.v)) {
                int rc = window_push(ev, s, s->nx);
                if (rc)
                    return rc;
            }
        } else {
            if (!s->has_cur) {
                int rc = hold_sample(ev);
                if (rc)
                    return rc;
            }
            s->cur = s->nx;
            s->has_cur = true;
        }
        sel_next(s, false, 0);
        if (!s->it)
            break;
    }
    return 0;
}

/* Select d's series over [d->mint, d->maxt] with a new querier; each
 * series gets an iterator positioned on its first sample. The querier
 * stays until the query ends: the series' labels are its own. */
static int sel_open(struct promql_eval *ev, struct sel_data *d)
{
    const struct promql_expr *node = d->node;
    struct labels_matcher *ms[64];
    struct labels_matcher **mp = ms;
    if (node->nmatchers > 64) {
        mp = malloc(node->nmatchers * sizeof(*mp));
        if (!mp)
            return oom(ev);
    }
    for (size_t i = 0; i < node->nmatchers; i++)
        mp[i] = node->matchers[i].m;

    int rc = 0;
    struct tsdb_series_set *set = NULL;
    d->q = tsdb_querier_new(ev->db, d->mint, d->maxt);
    if (!d->q) {
        rc = oom(ev);
        goto done;
    }
    struct bs_error e;
    bs_error_clear(&e);
    /* By chunk ranges: a series without a sample in the range yields
     * nothing from its iterator and drops out of every window. */
    rc = tsdb_querier_select_flags(d->q, mp, node->nmatchers, TSDB_SELECT_CHUNK_RANGES, &set, &e);
    if (rc) {
        rc = promql_eval_error(ev, rc, "%s", e.msg[0] ? e.msg : bs_strerror(rc));
        goto done;
    }
    size_t total = tsdb_series_set_count(set);
    d->s = calloc(total ? total : 1, sizeof(*d->s));
    if (!d->s) {
        rc = oom(ev);
        goto done;
    }
    while (d->n < total && tsdb_series_set_next(set)) {
        if ((rc = promql_eval_check(ev)))
            goto done;
        struct sel_series *s = &d->s[d->n++];
        s->ls = tsdb_series_set_labels(set);
        if (stable_id(ev, s->ls) < 0 && (rc = stable_add(ev, s->ls, labels_hash(s->ls))))
            goto done;
        s->it = tsdb_series_set_iterator(set);
        if (!s->it) {
            rc = oom(ev);
            goto done;
        }
        sel_next(s, false, 0);
    }
done:
    tsdb_series_set_free(set);
    if (mp != ms)
        free(mp);
    return rc;
}

/* Evaluation went back in time (or away from a selector read for one
 * time only): read it again from storage. The old querier is kept until
 * the query ends, since its labels may be referenced. */
static int sel_reopen(struct promql_eval *ev, struct sel_data *d)
{
    struct tsdb_querier **nq = realloc(ev->oldq, (ev->noldq + 1) * sizeof(*nq));
    if (!nq)
        return oom(ev);
    ev->oldq = nq;
    for (size_t i = 0; i < d->n; i++) {
        if (d->matrix)
            ev->samples -= d->s[i].hi - d->s[i].lo;
        else
            ev->samples -= d->s[i].has_cur;
    }
    sel_series_free(d);
    ev->oldq[ev->noldq++] = d->q;
    d->q = NULL;
    d->started = false;
    return sel_open(ev, d);
}

/* How many series ahead sel_seek prefetches. */
#define SEL_PREFETCH 4

/* Bring every series of d to ref. */
static int sel_seek(struct promql_eval *ev, struct sel_data *d, int64_t ref)
{
    if (d->started && ref == d->ref)
        return 0;
    int rc;
    if (d->started && ref < d->ref && (rc = sel_reopen(ev, d)))
        return rc;
    for (size_t i = 0; i < d->n; i++) {
        if ((i & 1023) == 1023 && (rc = promql_eval_check(ev)))
            return rc;
        /* Each series' iterator and window are allocations of their own,
         * visited once per step: with thousands of series they are out of
         * cache by the next step, so ask for them a few series ahead
         * (prefetching never faults, wherever it points). */
        if (i + SEL_PREFETCH < d->n) {
            const struct sel_series *p = &d->s[i + SEL_PREFETCH];
            if (p->it) {
                __builtin_prefetch(p->it);
                __builtin_prefetch((const char *)p->it + 64);
            }
            if (p->w)
                __builtin_prefetch(p->w + p->hi);
            if (i + 2 * SEL_PREFETCH < d->n)
                __builtin_prefetch(&d->s[i + 2 * SEL_PREFETCH]);
        }
        if ((rc = sel_advance(ev, d, &d->s[i], ref)))
            return rc;
    }
    d->started = true;
    d->ref = ref;
    return 0;
}

/* Register the selector node (of a vector or, with matrix, a range
 * selector) for times in [a, b] and open it. When a == b (an instant
 * query, or @) its window is read now and the iterators freed: nothing
 * else will be read. */
static int load_selector(struct promql_eval *ev, const struct promql_expr *node, bool matrix,
                         int64_t range, int64_t a, int64_t b)
{
    struct sel_data *nv = realloc(ev->sels, (ev->nsels + 1) * sizeof(*nv));
    if (!nv)
        return oom(ev);
    ev->sels = nv;
    struct sel_data *d = &ev->sels[ev->nsels++];
    memset(d, 0, sizeof(*d));
    d->node = node;
    d->matrix = matrix;
    d->range = range;
    d->mint = a - range;
    d->maxt = b;
    int rc = sel_open(ev, d);
    if (rc || a != b)
        return rc;
    if ((rc = sel_seek(ev, d, b)))
        return rc;
    for (size_t i = 0; i < d->n; i++) {
        tsdb_iterator_free(d->s[i].it);
        d->s[i].it = NULL;
    }
    return 0;
}

static int64_t at_time(const struct promql_eval *ev, const struct promql_expr *x, int64_t t)
{
    switch (x->at) {
    case PROMQL_AT_VALUE: return x->at_ms;
    case PROMQL_AT_START: return ev->start;
    case PROMQL_AT_END: return ev->end;
    default: return t;
    }
}

/* Open every selector under x for evaluation at times in [tmin, tmax]. */
static int prepare(struct promql_eval *ev, const struct promql_expr *x, int64_t tmin,
                   int64_t tmax)
{
    if (!x)
        return 0;
    switch (x->kind) {
    case PROMQL_NODE_VECTOR:
    case PROMQL_NODE_MATRIX: {
        bool matrix = x->kind == PROMQL_NODE_MATRIX;
        const struct promql_expr *vs = matrix ? x->lhs : x;
        int64_t back = matrix ? x->range_ms : ev->eng->o.lookback_ms;
        int64_t a = at_time(ev, vs, tmin) - vs->offset_ms;
        int64_t b = at_time(ev, vs, tmax) - vs->offset_ms;
        return load_selector(ev, vs, matrix, back, a, b);
    }
    case PROMQL_NODE_SUBQUERY: {
        int64_t a = at_time(ev, x, tmin) - x->offset_ms - x->range_ms;
        int64_t b = at_time(ev, x, tmax) - x->offset_ms;
        return prepare(ev, x->lhs, a, b);
    }
    default: {
        int rc = prepare(ev, x->lhs, tmin, tmax);
        if (!rc)
            rc = prepare(ev, x->rhs, tmin, tmax);
        for (size_t i = 0; !rc && i < x->nargs; i++)
            rc = prepare(ev, x->args[i], tmin, tmax);
        return rc;
    }
    }
}

/* ------------------------------------------------------------- selectors */

static int eval(struct promql_eval *ev, const struct promql_expr *x, int64_t t,
                struct promql_val *out);

static int eval_vector_sel(struct promql_eval *ev, const struct promql_expr *x, int64_t t,
                           struct promql_val *out)
{
    struct sel_data *d = find_sel(ev, x);
    if (!d)
        return promql_eval_error(ev, BS_EEXEC, "internal error: selector was not prepared");
    int64_t ref = at_time(ev, x, t) - x->offset_ms;
    int rc = sel_seek(ev, d, ref);
    if (rc)
        return rc;
    int64_t from = ref - d->range;
    out->type = PROMQL_VALUE_VECTOR;
    out->vec = promql_eval_alloc(ev, (d->n ? d->n : 1) * sizeof(*out->vec));
    if (!out->vec)
        return ev->code;
    for (size_t i = 0; i < d->n; i++) {
        const struct sel_series *s = &d->s[i];
        if (!s->has_cur || s->cur.t <= from || bs_is_stale_nan(s->cur.v))
            continue;
        out->vec[out->nvec++] = (struct promql_sample){s->ls, s->cur.v, s->cur.t, false};
    }
    return promql_eval_check(ev);
}

/* The windows point into the selector's buffers: valid until the node is
 * evaluated again, by which time its consumer is done with them. */
static int eval_matrix_sel(struct promql_eval *ev, const struct promql_expr *x, int64_t t,
                           struct promql_val *out)
{
    const struct promql_expr *vs = x->lhs;
    struct sel_data *d = find_sel(ev, vs);
    if (!d)
        return promql_eval_error(ev, BS_EEXEC, "internal error: selector was not prepared");
    int64_t ref = at_time(ev, vs, t) - vs->offset_ms;
    int rc = sel_seek(ev, d, ref);
    if (rc)
        return rc;
    out->type = PROMQL_VALUE_MATRIX;
    out->range_start = ref - x->range_ms;
    out->range_end = ref;
    out->range_ms = x->range_ms;
    out->mat = promql_eval_alloc(ev, (d->n ? d->n : 1) * sizeof(*out->mat));
    if (!out->mat)
        return ev->code;
    for (size_t i = 0; i < d->n; i++) {
        const struct sel_series *s = &d->s[i];
        if (s->hi > s->lo)
            out->mat[out->nmat++] =
                (struct promql_mseries){s->ls, s->w + s->lo, s->hi - s->lo, s->drops == 0};
    }
    return promql_eval_check(ev);
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

/* ------------------------------------------------------ subquery cache
 *
 * A subquery evaluates its inner expression on a grid of absolute times
 * (multiples of its step) inside (ref - range, ref]. Successive steps of a
 * range query, and successive evaluations of a subquery nested in another,
 * see windows that slide forward on the same grid, so the inner results
 * are kept per subquery node: one series per label set (labels copied
 * once, for the query), its points in time order. Each evaluation computes
 * only the grid times after the newest one cached, drops points that fell
 * out of the window and hands out the window as a matrix pointing into the
 * cache (valid until that node is evaluated again: its consumer, the
 * enclosing function, is done with it by then). A window that does not
 * continue the cached one (it moved backwards, or @ pins it elsewhere)
 * resets the cache. Evaluation is a function of the time alone, so this
 * gives the same values, warnings and errors as evaluating every grid time
 * again. Cached points count against max_samples while held. */

struct sq_series {
    struct labels *ls;          /* labels_dup, query lifetime */
    uint64_t hash;
    struct promql_point *p;     /* malloc; live points are p[off..n) */
    size_t off, n, cap;
};

struct sq_cache {
    const struct promql_expr *node;
    int64_t lo, hi;             /* grid times computed; hi < lo when empty */
    struct sq_series *s;
    size_t n, cap;
    int64_t *slots;             /* open addressing over s, -1 empty */
    size_t nslots;
    int64_t held;               /* live points, counted in ev->samples */
};

static void sq_cache_fini(struct sq_cache *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->s[i].ls);
        free(c->s[i].p);
    }
    free(c->s);
    free(c->slots);
}

static void sq_cache_free(void *p)
{
    sq_cache_fini(p);
    free(p);
}

/* The subquery cache of node: one per node and query, in a node slot (so
 * its address stays valid while other nodes add theirs). */
static struct sq_cache *sq_cache_get(struct promql_eval *ev, const struct promql_expr *node)
{
    bool fresh;
    struct sq_cache *c = promql_eval_node_object(ev, node, sizeof(*c), sq_cache_free, &fresh);
    if (c && fresh) {
        c->node = node;
        c->lo = 0;
        c->hi = -1;
    }
    return c;
}

static int sq_rehash(struct sq_cache *c, size_t nslots)
{
    int64_t *ns = malloc(nslots * sizeof(*ns));
    if (!ns)
        return BS_ENOMEM;
    for (size_t i = 0; i < nslots; i++)
        ns[i] = -1;
    for (size_t i = 0; i < c->n; i++) {
        size_t j = (size_t)(c->s[i].hash * UINT64_C(0x9E3779B97F4A7C15)) & (nslots - 1);
        while (ns[j] >= 0)
            j = (j + 1) & (nslots - 1);
        ns[j] = (int64_t)i;
    }
    free(c->slots);
    c->slots = ns;
    c->nslots = nslots;
    return 0;
}

static int sq_add(struct promql_eval *ev, struct sq_cache *c, const struct labels *ls, int64_t t,
                  double v)
{
    int hrc = hold_sample(ev);
    if (hrc)
        return hrc;
    c->held++;
    ev->churn++;
    if ((c->n + 1) * 2 > c->nslots && sq_rehash(c, c->nslots ? c->nslots * 2 : 64))
        return promql_eval_error(ev, BS_ENOMEM, "out of memory in query execution");
    uint64_t h = eval_labels_hash(ev, ls);
    size_t j = (size_t)(h * UINT64_C(0x9E3779B97F4A7C15)) & (c->nslots - 1);
    int64_t idx = -1;
    while (c->slots[j] >= 0) {
        int64_t k = c->slots[j];
        if (c->s[k].hash == h && labels_equal(c->s[k].ls, ls)) {
            idx = k;
            break;
        }
        j = (j + 1) & (c->nslots - 1);
    }
    if (idx < 0) {
        if (c->n == c->cap) {
            size_t nc = c->cap ? c->cap * 2 : 16;
            struct sq_series *ns = realloc(c->s, nc * sizeof(*ns));
            if (!ns)
                return promql_eval_error(ev, BS_ENOMEM, "out of memory in query execution");
            c->s = ns;
            c->cap = nc;
        }
        struct labels *dup = labels_dup(ls);
        if (!dup)
            return promql_eval_error(ev, BS_ENOMEM, "out of memory in query execution");
        idx = (int64_t)c->n++;
        c->s[idx] = (struct sq_series){dup, h, NULL, 0, 0, 0};
        c->slots[j] = idx;
        if (stable_add(ev, dup, h))
            return ev->code;
    }
    struct sq_series *s = &c->s[idx];
    if (s->n == s->cap) {
        if (s->off > 0 && s->off * 2 >= s->n) {
            /* reuse the space of dropped points */
            memmove(s->p, s->p + s->off, (s->n - s->off) * sizeof(*s->p));
            s->n -= s->off;
            s->off = 0;
        } else {
            size_t nc = s->cap ? s->cap * 2 : 16;
            struct promql_point *np = realloc(s->p, nc * sizeof(*np));
            if (!np)
                return promql_eval_error(ev, BS_ENOMEM, "out of memory in query execution");
            s->p = np;
            s->cap = nc;
        }
    }
    s->p[s->n++] = (struct promql_point){t, v};
    return 0;
}

static void sq_drop_before(struct promql_eval *ev, struct sq_cache *c, int64_t first)
{
    for (size_t i = 0; i < c->n; i++) {
        struct sq_series *s = &c->s[i];
        while (s->off < s->n && s->p[s->off].t < first) {
            s->off++;
            c->held--;
            ev->samples--;
        }
    }
}

static int eval_subquery(struct promql_eval *ev, const struct promql_expr *x, int64_t t,
                         struct promql_val *out)
{
    int64_t ref = at_time(ev, x, t) - x->offset_ms;
    int64_t step = x->step_ms > 0 ? x->step_ms : PROMQL_DEFAULT_STEP_MS;
    int64_t mint = ref - x->range_ms;
    int64_t first = floor_div(mint, step) * step;
    if (first <= mint)
        first += step;
    out->type = PROMQL_VALUE_MATRIX;
    out->range_start = mint;
    out->range_end = ref;
    out->range_ms = x->range_ms;
    size_t nsteps = first > ref ? 0 : (size_t)((ref - first) / step) + 1;
    if ((int64_t)nsteps > ev->eng->o.max_samples && ev->eng->o.max_samples > 0)
        return too_many_samples(ev);
    struct sq_cache *c = sq_cache_get(ev, x);
    if (!c)
        return ev->code;
    bool empty = c->hi < c->lo;
    if (!empty && (first < c->lo || first > c->hi + step)) {
        sq_drop_before(ev, c, INT64_MAX);   /* not a continuation: start over */
        empty = true;
    }
    int64_t from = empty ? first : c->hi + step;
    if (empty) {
        c->lo = first;
        c->hi = first - step;
    }
    for (int64_t it = from; it <= ref; it += step) {
        struct promql_val v;
        int rc = eval(ev, x->lhs, it, &v);
        /* The subquery's output is a finished range vector: apply the
         * delayed name removal of its inner expression now. */
        if (!rc)
            rc = cleanup_names(ev, v.vec, v.nvec);
        if (!rc)
            rc = check_dups(ev, v.vec, v.nvec);
        if (rc) {
            sq_drop_before(ev, c, INT64_MAX);
            c->lo = 0;
            c->hi = -1;
            return rc;
        }
        if (v.type == PROMQL_VALUE_SCALAR) {
            struct labels none = {NULL, 0};
            rc = sq_add(ev, c, &none, it, v.scalar);
        }
        for (size_t k = 0; !rc && k < v.nvec; k++)
            rc = sq_add(ev, c, v.vec[k].ls, it, v.vec[k].v);
        if (rc)
            return rc;
        c->hi = it;
    }
    if (first > c->lo) {
        sq_drop_before(ev, c, first);
        c->lo = first;
    }
    out->mat = promql_eval_alloc(ev, (c->n ? c->n : 1) * sizeof(*out->mat));
    if (!out->mat)
        return ev->code;
    for (size_t i = 0; i < c->n; i++) {
        const struct sq_series *s = &c->s[i];
        size_t a = s->off, b = s->n;
        while (b > a && s->p[b - 1].t > ref)
            b--;
        if (b > a)
            out->mat[out->nmat++] = (struct promql_mseries){s->ls, s->p + a, b - a, false};
    }
    return 0;
}

/* --------------------------------------------------------------- binary */

static double binop_value(enum promql_tok op, double l, double r, bool *keep)
{
    *keep = true;
    switch (op) {
    case PT_ADD: return l + r;
    case PT_SUB: return l - r;
    case PT_MUL: return l * r;
    case PT_DIV: return l / r;
    case PT_MOD: return fmod(l, r);
    case PT_POW: return pow(l, r);
    case PT_ATAN2: return atan2(l, r);
    case PT_EQLC: *keep = l == r; return l;
    case PT_NEQ: *keep = l != r; return l;
    case PT_GTR: *keep = l > r; return l;
    case PT_LSS: *keep = l < r; return l;
    case PT_GTE: *keep = l >= r; return l;
    case PT_LTE: *keep = l <= r; return l;
    default: *keep = false; return NAN;
    }
}

static bool op_drops_name(enum promql_tok op)
{
    return op == PT_ADD || op == PT_SUB || op == PT_MUL || op == PT_DIV || op == PT_MOD ||
           op == PT_POW || op == PT_ATAN2;
}

/* Matching signature of ls for a binary expression. */
static uint64_t signature(const struct promql_expr *x, const struct labels *ls,
                          const char **skip)
{
    if (x->on)
        return labels_hash_only(ls, (const char *const *)x->match_labels, x->nmatch_labels);
    for (size_t i = 0; i < x->nmatch_labels; i++)
        skip[i] = x->match_labels[i];
    skip[x->nmatch_labels] = LABELS_METRIC_NAME;
    return labels_hash_without(ls, skip, x->nmatch_labels + 1);
}

static int eval_setop(struct promql_eval *ev, const struct promql_expr *x,
                      const struct promql_val *l, const struct promql_val *r,
                      struct promql_val *out)
{
    const char **skip = promql_eval_alloc(ev, (x->nmatch_labels + 1) * sizeof(char *));
    out->vec = promql_eval_alloc(ev, (l->nvec + r->nvec + 1) * sizeof(*out->vec));
    if (!skip || !out->vec)
        return ev->code;
    struct hmap rh, lh;
    if (hmap_init(ev, &rh, r->nvec) || hmap_init(ev, &lh, l->nvec))
        return ev->code;
    for (size_t i = 0; i < r->nvec; i++)
        hmap_put(&rh, signature(x, r->vec[i].ls, skip), 1);
    switch (x->op) {
    case PT_LAND:
        for (size_t i = 0; i < l->nvec; i++)
            if (hmap_get(&rh, signature(x, l->vec[i].ls, skip)) >= 0)
                out->vec[out->nvec++] = l->vec[i];
        break;
    case PT_LUNLESS:
        for (size_t i = 0; i < l->nvec; i++)
            if (hmap_get(&rh, signature(x, l->vec[i].ls, skip)) < 0)
                out->vec[out->nvec++] = l->vec[i];
        break;
    default: /* or */
        for (size_t i = 0; i < l->nvec; i++) {
            hmap_put(&lh, signature(x, l->vec[i].ls, skip), 1);
            out->vec[out->nvec++] = l->vec[i];
        }
        for (size_t i = 0; i < r->nvec; i++)
            if (hmap_get(&lh, signature(x, r->vec[i].ls, skip)) < 0)
                out->vec[out->nvec++] = r->vec[i];
        break;
    }
    return 0;
}

/* The labels shown for the match group of ls ({a="b"}). */
static void format_match_group(const struct promql_expr *x, const struct labels *ls,
                               struct bs_buf *b)
{
    struct labels_builder lb;
    labels_builder_init(&lb);
    if (x->on) {
        for (size_t i = 0; i < x->nmatch_labels; i++) {
            const char *v = labels_get(ls, x->match_labels[i]);
            if (v)
                labels_builder_set_str(&lb, x->match_labels[i], v);
        }
    } else {
        labels_builder_from(&lb, ls);
        labels_builder_del(&lb, LABELS_METRIC_NAME);
        for (size_t i = 0; i < x->nmatch_labels; i++)
            labels_builder_del(&lb, x->match_labels[i]);
    }
    struct labels out;
    if (labels_builder_labels(&lb, &out, NULL) == 0)
        labels_format(&out, b);
    labels_builder_fini(&lb);
}

static int eval_vector_binop(struct promql_eval *ev, const struct promql_expr *x,
                             const struct promql_val *lv, const struct promql_val *rv,
                             struct promql_val *out)
{
    const struct promql_val *l = lv, *r = rv;
    bool swapped = x->card == PROMQL_CARD_ONE_TO_MANY;
    if (swapped) {
        l = rv;
        r = lv;
    }
    const char **skip = promql_eval_alloc(ev, (x->nmatch_labels + 1) * sizeof(char *));
    out->vec = promql_eval_alloc(ev, (l->nvec + 1) * sizeof(*out->vec));
    if (!skip || !out->vec)
        return ev->code;
    struct hmap rh, matched, results;
    if (hmap_init(ev, &rh, r->nvec) || hmap_init(ev, &matched, l->nvec) ||
        hmap_init(ev, &results, l->nvec))
        return ev->code;
    for (size_t i = 0; i < r->nvec; i++) {
        uint64_t sig = signature(x, r->vec[i].ls, skip);
        int64_t prev = hmap_get(&rh, sig);
        if (prev >= 0) {
            struct bs_buf g, a, b;
            bs_buf_init(&g, 4096);
            bs_buf_init(&a, 4096);
            bs_buf_init(&b, 4096);
            format_match_group(x, r->vec[i].ls, &g);
            labels_format(r->vec[i].ls, &a);
            labels_format(r->vec[prev].ls, &b);
            promql_eval_error(ev, BS_EEXEC,
                              "found duplicate series for the match group %s on the %s "
                              "hand-side of the operation: [%s, %s];many-to-many matching not "
                              "allowed: matching labels must be unique on one side",
                              g.data ? g.data : "{}", swapped ? "left" : "right",
                              a.data ? a.data : "{}", b.data ? b.data : "{}");
            bs_buf_fini(&g);
            bs_buf_fini(&a);
            bs_buf_fini(&b);
            return ev->code;
        }
        hmap_put(&rh, sig, (int64_t)i);
    }
    bool is_cmp = promql_tok_is_comparison(x->op);
    struct labels_builder lb;
    labels_builder_init(&lb);
    int rc = 0;
    for (size_t i = 0; i < l->nvec && !rc; i++) {
        uint64_t sig = signature(x, l->vec[i].ls, skip);
        int64_t ri = hmap_get(&rh, sig);
        if (ri < 0)
            continue;
        const struct promql_sample *ls = &l->vec[i], *rs = &r->vec[ri];
        double fl = ls->v, fr = rs->v;
        if (swapped) {
            fl = rs->v;
            fr = ls->v;
        }
        bool keep;
        double v = binop_value(x->op, fl, fr, &keep);
        if (x->return_bool)
            v = keep ? 1.0 : 0.0;
        /* The result labels and the matching checks come before the
         * comparison filter, as upstream: a many-to-one error is raised
         * even when the filter would drop the offending samples. */
        /* Result labels (Prometheus's resultMetric). */
        labels_builder_reset(&lb);
        if ((rc = labels_builder_from(&lb, ls->ls)))
            break;
        if (op_drops_name(x->op)) {
            labels_builder_del(&lb, LABELS_METRIC_NAME);
            labels_builder_del(&lb, "__type__");
            labels_builder_del(&lb, "__unit__");
        }
        if (x->card == PROMQL_CARD_ONE_TO_ONE) {
            if (x->on) {
                struct labels cur;
                labels_builder_labels(&lb, &cur, NULL);
                /* keep only the on() labels */
                const char **drop = promql_eval_alloc(ev, (cur.n + 1) * sizeof(char *));
                if (!drop) {
                    rc = ev->code;
                    break;
                }
                size_t nd = 0;
                for (size_t k = 0; k < cur.n; k++) {
                    bool listed = false;
                    for (size_t m = 0; m < x->nmatch_labels; m++)
                        listed |= strcmp(cur.v[k].name, x->match_labels[m]) == 0;
                    if (!listed)
                        drop[nd++] = cur.v[k].name;
                }
                /* names in drop point into the builder; copy before deleting */
                for (size_t k = 0; k < nd; k++)
                    drop[k] = bs_arena_strndup(&ev->arena, drop[k], strlen(drop[k]));
                for (size_t k = 0; k < nd; k++)
                    if (drop[k])
                        labels_builder_del(&lb, drop[k]);
            } else {
                for (size_t m = 0; m < x->nmatch_labels; m++)
                    labels_builder_del(&lb, x->match_labels[m]);
            }
        }
        for (size_t m = 0; m < x->ninclude; m++) {
            const char *v2 = labels_get(rs->ls, x->include[m]);
            if (v2 && *v2)
                labels_builder_set_str(&lb, x->include[m], v2);
            else
                labels_builder_del(&lb, x->include[m]);
        }
        struct labels res;
        if ((rc = labels_builder_labels(&lb, &res, NULL)))
            break;
        const struct labels *rl = promql_eval_labels(ev, &res);
        if (!rl) {
            rc = ev->code;
            break;
        }
        if (x->card == PROMQL_CARD_ONE_TO_ONE) {
            if (hmap_get(&matched, sig) >= 0) {
                rc = promql_eval_error(ev, BS_EEXEC,
                                       "multiple matches for labels: many-to-one matching must "
                                       "be explicit (group_left/group_right)");
                break;
            }
            hmap_put(&matched, sig, 1);
        } else {
            uint64_t h = labels_hash(rl);
            if (hmap_get(&results, h) >= 0) {
                rc = promql_eval_error(ev, BS_EEXEC,
                                       "multiple matches for labels: grouping labels must ensure "
                                       "unique matches");
                break;
            }
            hmap_put(&results, h, 1);
        }
        if (!keep && !x->return_bool)
            continue;
        out->vec[out->nvec++] =
            (struct promql_sample){rl, v, ls->t, ls->drop_name || x->return_bool};
    }
    labels_builder_fini(&lb);
    if (rc && !ev->code)
        promql_eval_error(ev, rc, "%s", bs_strerror(rc));
    (void)is_cmp;
    return ev->code;
}

static int eval_binary(struct promql_eval *ev, const struct promql_expr *x, int64_t t,
                       struct promql_val *out)
{
    struct promql_val l, r;
    memset(&l, 0, sizeof(l));
    memset(&r, 0, sizeof(r));
    int rc = eval(ev, x->lhs, t, &l);
    if (!rc)
        rc = eval(ev, x->rhs, t, &r);
    if (rc)
        return rc;
    bool keep;
    if (l.type == PROMQL_VALUE_SCALAR && r.type == PROMQL_VALUE_SCALAR) {
        out->type = PROMQL_VALUE_SCALAR;
        out->scalar = binop_value(x->op, l.scalar, r.scalar, &keep);
        if (promql_tok_is_comparison(x->op))
            out->scalar = keep ? 1.0 : 0.0;
        return 0;
    }
    out->type = PROMQL_VALUE_VECTOR;
    if (l.type == PROMQL_VALUE_VECTOR && r.type == PROMQL_VALUE_VECTOR) {
        if (promql_tok_is_setop(x->op))
            rc = eval_setop(ev, x, &l, &r, out);
        else
            rc = eval_vector_binop(ev, x, &l, &r, out);
        for (size_t i = 0; !rc && i < out->nvec; i++)
            out->vec[i].t = t;
        return rc ? rc : check_dups(ev, out->vec, out->nvec);
    }
    bool swap = l.type == PROMQL_VALUE_SCALAR;
    const struct promql_val *vec = swap ? &r : &l;
    double sc = swap ? l.scalar : r.scalar;
    out->vec = promql_eval_alloc(ev, (vec->nvec + 1) * sizeof(*out->vec));
    if (!out->vec)
        return ev->code;
    bool cmp = promql_tok_is_comparison(x->op);
    for (size_t i = 0; i < vec->nvec; i++) {
        double lf = vec->vec[i].v, rf = sc;
        if (swap) {
            lf = sc;
            rf = vec->vec[i].v;
        }
        double v = binop_value(x->op, lf, rf, &keep);
        if (cmp && swap)
            v = rf;
        if (x->return_bool) {
            v = keep ? 1.0 : 0.0;
            keep = true;
        }
        if (!keep)
            continue;
        struct promql_sample s = vec->vec[i];
        s.v = v;
        s.t = t;
        if (op_drops_name(x->op) || x->return_bool)
            s.drop_name = true;
        out->vec[out->nvec++] = s;
    }
    return 0;
}

/* ----------------------------------------------------------- aggregation */

struct agg_group {
    const struct labels *ls;
    double val, c, mean;
    size_t count;
    size_t *members;   /* for topk & co. */
    size_t nmembers;
    bool drop_name;    /* some member has drop_name set */
    bool incremental;  /* avg: the sum overflowed, mean computed incrementally */
};

struct sort_ctx {
    const struct promql_sample *v;
    bool desc;
};

static int cmp_members(const void *a, const void *b, void *arg)
{
    const struct sort_ctx *sc = arg;
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    double x = sc->v[i].v, y = sc->v[j].v;
    bool xn = isnan(x), yn = isnan(y);
    if (xn != yn)
        return xn ? 1 : -1;   /* NaN last */
    if (!xn && x != y)
        return (sc->desc ? x > y : x < y) ? -1 : 1;
    return i < j ? -1 : (i > j);
}

/* Move the lim members that sort first under cmp_members to the front of
 * m (in no particular order): a max-heap of the best lim seen so far, its
 * root the worst of them, so topk(10, ...) over thousands of series costs
 * n log 10 comparisons instead of a full sort. */
static void select_first(size_t *m, size_t n, size_t lim, struct sort_ctx *sc)
{
    if (lim == 0)
        return;
    /* heapify m[0..lim) so that m[0] sorts last */
    for (size_t i = lim / 2; i-- > 0;) {
        size_t j = i;
        for (;;) {
            size_t l = 2 * j + 1, r = l + 1, w = j;
            if (l < lim && cmp_members(&m[l], &m[w], sc) > 0)
                w = l;
            if (r < lim && cmp_members(&m[r], &m[w], sc) > 0)
                w = r;
            if (w == j)
                break;
            size_t t = m[j];
            m[j] = m[w];
            m[w] = t;
            j = w;
        }
    }
    for (size_t i = lim; i < n; i++) {
        if (cmp_members(&m[i], &m[0], sc) >= 0)
            continue;
        size_t t = m[0];
        m[0] = m[i];
        m[i] = t;
        size_t j = 0;
        for (;;) {
            size_t l = 2 * j + 1, r = l + 1, w = j;
            if (l < lim && cmp_members(&m[l], &m[w], sc) > 0)
                w = l;
            if (r < lim && cmp_members(&m[r], &m[w], sc) > 0)
                w = r;
            if (w == j)
                break;
            t = m[j];
            m[j] = m[w];
            m[w] = t;
            j = w;
        }
    }
}

static const struct labels *group_labels(struct promql_eval *ev, const struct promql_expr *x,
                                         const struct labels *ls, struct labels_builder *lb)
{
    labels_builder_reset(lb);
    if (!x->without) {
        for (size_t i = 0; i < x->ngrouping; i++) {
            const char *v = labels_get(ls, x->grouping[i]);
            if (v && *v && labels_builder_set_str(lb, x->grouping[i], v)) {
                promql_eval_error(ev, BS_ENOMEM, "out of memory in query execution");
                return NULL;
            }
        }
    } else {
        if (labels_builder_from(lb, ls)) {
            promql_eval_error(ev, BS_ENOMEM, "out of memory in query execution");
            return NULL;
        }
        labels_builder_del(lb, LABELS_METRIC_NAME);
        for (size_t i = 0; i < x->ngrouping; i++)
            labels_builder_del(lb, x->grouping[i]);
    }
    struct labels out;
    if (labels_builder_labels(lb, &out, NULL)) {
        promql_eval_error(ev, BS_ENOMEM, "out of memory in query execution");
        return NULL;
    }
    return promql_eval_labels(ev, &out);
}

/* Per aggregation node: for each stable input label set (by its stable
 * id) the group key and the group's labels, and the groups by key, so
 * that the group of a series is computed once per query, not per step.
 * Group labels are query-lifetime (and stable themselves). */
struct agg_cache {
    const struct promql_expr *node;
    uint64_t *key;              /* by stable id */
    const struct labels **gl;   /* by stable id; NULL: not computed yet */
    size_t n;
    uint64_t *gkeys;            /* groups: open addressing by key */
    const struct labels **gvals;
    size_t gslots, ngroups;
};

static void agg_cache_fini(struct agg_cache *c)
{
    free(c->key);
    free(c->gl);
    free(c->gkeys);
    free(c->gvals);
}

static void agg_cache_free(void *p)
{
    agg_cache_fini(p);
    free(p);
}

/* The aggregation cache of node, as sq_cache_get. */
static struct agg_cache *agg_cache_get(struct promql_eval *ev, const struct promql_expr *node)
{
    bool fresh;
    struct agg_cache *c = promql_eval_node_object(ev, node, sizeof(*c), agg_cache_free, &fresh);
    if (c && fresh)
        c->node = node;
    return c;
}

/* The query-lifetime labels of the group with key; computed from ls (a
 * member) the first time. */
static const struct labels *agg_cache_group(struct promql_eval *ev, struct agg_cache *c,
                                            const struct promql_expr *x, uint64_t key,
                                            const struct labels *ls, struct labels_builder *lb)
{
    if ((c->ngroups + 1) * 2 > c->gslots) {
        size_t nslots = c->gslots ? c->gslots * 2 : 64;
        uint64_t *nk = malloc(nslots * sizeof(*nk));
        const struct labels **nv = calloc(nslots, sizeof(*nv));
        if (!nk || !nv) {
            free(nk);
            free(nv);
            promql_eval_error(ev, BS_ENOMEM, "out of memory in query execution");
            return NULL;
        }
        for (size_t i = 0; i < c->gslots; i++) {
            if (!c->gvals[i])
                continue;
            size_t j = (size_t)(c->gkeys[i] * UINT64_C(0x9E3779B97F4A7C15)) & (nslots - 1);
            while (nv[j])
                j = (j + 1) & (nslots - 1);
            nk[j] = c->gkeys[i];
            nv[j] = c->gvals[i];
        }
        free(c->gkeys);
        free(c->gvals);
        c->gkeys = nk;
        c->gvals = nv;
        c->gslots = nslots;
    }
    size_t j = (size_t)(key * UINT64_C(0x9E3779B97F4A7C15)) & (c->gslots - 1);
    while (c->gvals[j]) {
        if (c->gkeys[j] == key)
            return c->gvals[j];
        j = (j + 1) & (c->gslots - 1);
    }
    const struct labels *gl = group_labels(ev, x, ls, lb);
    if (!gl || !(gl = own_labels(ev, labels_dup(gl))))
        return NULL;
    c->gkeys[j] = key;
    c->gvals[j] = gl;
    c->ngroups++;
    return gl;
}

void promql_kahan_inc(double inc, double *sum, double *c)
{
    double t = *sum + inc;
    if (isinf(t))
        *c = 0;
    else if (fabs(*sum) >= fabs(inc))
        *c += (*sum - t) + inc;
    else
        *c += (inc - t) + *sum;
    *sum = t;
}

static int eval_agg(struct promql_eval *ev, const struct promql_expr *x, int64_t t,
                    struct promql_val *out)
{
    struct promql_val in, param;
    memset(&in, 0, sizeof(in));
    memset(&param, 0, sizeof(param));
    int rc = 0;
    if (x->rhs && (rc = eval(ev, x->rhs, t, &param)))
        return rc;
    if ((rc = eval(ev, x->lhs, t, &in)))
        return rc;
    out->type = PROMQL_VALUE_VECTOR;
    size_t n = in.nvec;
    out->vec = promql_eval_alloc(ev, (n + 1) * sizeof(*out->vec));
    size_t *gidx = promql_eval_alloc(ev, (n + 1) * sizeof(size_t));
    struct agg_group *groups = promql_eval_alloc(ev, (n + 1) * sizeof(*groups));
    const char **skip = promql_eval_alloc(ev, (x->ngrouping + 1) * sizeof(char *));
    if (!out->vec || !gidx || !groups || !skip)
        return ev->code;
    int op = x->agg;
    double k = 0;
    if (op == PROMQL_AGG_TOPK || op == PROMQL_AGG_BOTTOMK || op == PROMQL_AGG_LIMITK ||
        op == PROMQL_AGG_QUANTILE || op == PROMQL_AGG_LIMIT_RATIO) {
        k = param.scalar;
        if (isnan(k) && op != PROMQL_AGG_QUANTILE)
            return promql_eval_error(ev, BS_EEXEC, "%s value is NaN",
                                     op == PROMQL_AGG_LIMIT_RATIO ? "Ratio" : "Parameter");
    }
    for (size_t i = 0; i < x->ngrouping; i++)
        skip[i] = x->grouping[i];
    skip[x->ngrouping] = LABELS_METRIC_NAME;

    struct agg_cache *ac = NULL;
    if (op != PROMQL_AGG_COUNT_VALUES && !(ac = agg_cache_get(ev, x)))
        return ev->code;
    struct labels_builder lb;
    labels_builder_init(&lb);
    struct hmap h;
    size_t ngroups = 0;
    if (hmap_init(ev, &h, n)) {
        labels_builder_fini(&lb);
        return ev->code;
    }
    for (size_t i = 0; i < n; i++) {
        const struct labels *ls = in.vec[i].ls;
        const struct labels *gl = NULL;
        uint64_t key;
        if (op == PROMQL_AGG_COUNT_VALUES) {
            gl = group_labels(ev, x, ls, &lb);
            if (!gl)
                break;
            char num[BS_FLOAT_FMT_MAX];
            bs_float_format(in.vec[i].v, num);
            labels_builder_reset(&lb);
            labels_builder_from(&lb, gl);
            labels_builder_set_str(&lb, param.str, num);
            struct labels cl;
            if (labels_builder_labels(&lb, &cl, NULL) ||
                !(gl = promql_eval_labels(ev, &cl)))
                break;
            key = labels_hash(gl);
        } else {
            int64_t sid = ac ? stable_id(ev, ls) : -1;
            if (sid >= 0 && (size_t)sid < ac->n && ac->gl[sid]) {
                key = ac->key[sid];
                gl = ac->gl[sid];
            } else {
                if (!x->without)
                    key = labels_hash_only(ls, (const char *const *)x->grouping, x->ngrouping);
                else
                    key = labels_hash_without(ls, skip, x->ngrouping + 1);
                if (sid >= 0) {
                    if ((size_t)sid >= ac->n) {
                        size_t nn = ev->nstable;
                        uint64_t *nk = realloc(ac->key, nn * sizeof(*nk));
                        if (nk)
                            ac->key = nk;
                        const struct labels **ng = realloc(ac->gl, nn * sizeof(*ng));
                        if (ng)
                            ac->gl = ng;
                        if (!nk || !ng) {
                            promql_eval_error(ev, BS_ENOMEM, "out of memory in query execution");
                            break;
                        }
                        memset(ac->gl + ac->n, 0, (nn - ac->n) * sizeof(*ng));
                        ac->n = nn;
                    }
                    if (!(gl = agg_cache_group(ev, ac, x, key, ls, &lb)))
                        break;
                    ac->key[sid] = key;
                    ac->gl[sid] = gl;
                }
            }
        }
        int64_t g = hmap_get(&h, key);
        if (g < 0) {
            g = (int64_t)ngroups++;
            hmap_put(&h, key, g);
            memset(&groups[g], 0, sizeof(groups[g]));
            if (!gl)
                gl = group_labels(ev, x, ls, &lb);
            if (!gl)
                break;
            groups[g].ls = gl;
        }
        gidx[i] = (size_t)g;
        struct agg_group *gr = &groups[g];
        double v = in.vec[i].v;
        gr->count++;
        if (op != PROMQL_AGG_COUNT_VALUES && in.vec[i].drop_name)
            gr->drop_name = true;
        switch (op) {
        case PROMQL_AGG_SUM:
            promql_kahan_inc(v, &gr->val, &gr->c);
            break;
        case PROMQL_AGG_AVG: {
            /* Direct mean (Kahan sum / count) while the sum stays finite;
             * once it would overflow, an incremental mean from there on,
             * as upstream does. */
            double cnt = (double)gr->count;
            if (!gr->incremental) {
                double nv = gr->val, nc = gr->c;
                promql_kahan_inc(v, &nv, &nc);
                if (!isinf(nv) || gr->count == 1) {
                    gr->val = nv;
                    gr->c = nc;
                    break;
                }
                gr->incremental = true;
                gr->mean = gr->val / (cnt - 1);
                gr->c /= cnt - 1;
            }
            double q = (cnt - 1) / cnt;
            gr->mean *= q;
            gr->c *= q;
            promql_kahan_inc(v / cnt, &gr->mean, &gr->c);
            break;
        }
        case PROMQL_AGG_MIN:
            if (gr->count == 1 || v < gr->val || isnan(gr->val))
                gr->val = v;
            break;
        case PROMQL_AGG_MAX:
            if (gr->count == 1 || v > gr->val || isnan(gr->val))
                gr->val = v;
            break;
        case PROMQL_AGG_STDDEV:
        case PROMQL_AGG_STDVAR: {
            double delta = v - gr->mean;
            gr->mean += delta / (double)gr->count;
            gr->val += delta * (v - gr->mean);
            break;
        }
        default:
            break;
        }
    }
    labels_builder_fini(&lb);
    if (ev->code)
        return ev->code;

    bool per_member = op == PROMQL_AGG_TOPK || op == PROMQL_AGG_BOTTOMK ||
                      op == PROMQL_AGG_QUANTILE || op == PROMQL_AGG_LIMITK ||
                      op == PROMQL_AGG_LIMIT_RATIO;
    if (per_member) {
        for (size_t g = 0; g < ngroups; g++) {
            groups[g].members = promql_eval_alloc(ev, groups[g].count * sizeof(size_t));
            if (!groups[g].members)
                return ev->code;
        }
        for (size_t i = 0; i < n; i++) {
            struct agg_group *gr = &groups[gidx[i]];
            gr->members[gr->nmembers++] = i;
        }
    }
    for (size_t g = 0; g < ngroups; g++) {
        struct agg_group *gr = &groups[g];
        double v = 0;
        switch (op) {
        case PROMQL_AGG_SUM: v = gr->val + gr->c; break;
        case PROMQL_AGG_AVG:
            if (gr->incremental)
                v = gr->mean + gr->c;
            else
                v = gr->val / (double)gr->count + gr->c / (double)gr->count;
            break;
        case PROMQL_AGG_MIN:
        case PROMQL_AGG_MAX: v = gr->val; break;
        case PROMQL_AGG_COUNT:
        case PROMQL_AGG_COUNT_VALUES: v = (double)gr->count; break;
        case PROMQL_AGG_GROUP: v = 1; break;
        case PROMQL_AGG_STDVAR: v = gr->val / (double)gr->count; break;
        case PROMQL_AGG_STDDEV: v = sqrt(gr->val / (double)gr->count); break;
        case PROMQL_AGG_QUANTILE: {
            double *vals = promql_eval_alloc(ev, gr->nmembers * sizeof(double));
            if (!vals)
                return ev->code;
            for (size_t m = 0; m < gr->nmembers; m++)
                vals[m] = in.vec[gr->members[m]].v;
            v = promql_quantile(k, vals, gr->nmembers);
            break;
        }
        case PROMQL_AGG_TOPK:
        case PROMQL_AGG_BOTTOMK: {
            if (k < 1)
                continue;
            struct sort_ctx sc = {in.vec, op == PROMQL_AGG_TOPK};
            size_t lim = k >= (double)gr->nmembers ? gr->nmembers : (size_t)k;
            if (lim < gr->nmembers)
                select_first(gr->members, gr->nmembers, lim, &sc);
            qsort_r(gr->members, lim, sizeof(size_t), cmp_members, &sc);
            for (size_t m = 0; m < lim; m++)
                out->vec[out->nvec++] = in.vec[gr->members[m]];
            continue;
        }
        case PROMQL_AGG_LIMITK: {
            if (k < 1)
                continue;
            size_t lim = k >= (double)gr->nmembers ? gr->nmembers : (size_t)k;
            for (size_t m = 0; m < lim; m++)
                out->vec[out->nvec++] = in.vec[gr->members[m]];
            continue;
        }
        case PROMQL_AGG_LIMIT_RATIO: {
            double r = k > 1 ? 1 : (k < -1 ? -1 : k);
            for (size_t m = 0; m < gr->nmembers; m++) {
                double f = (double)labels_hash(in.vec[gr->members[m]].ls) / 18446744073709551616.0;
                bool keepit = r >= 0 ? f < r : f >= 1 + r;
                if (keepit)
                    out->vec[out->nvec++] = in.vec[gr->members[m]];
            }
            continue;
        }
        }
        out->vec[out->nvec++] = (struct promql_sample){gr->ls, v, t, gr->drop_name};
    }
    for (size_t i = 0; i < out->nvec; i++)
        out->vec[i].t = t;
    return 0;
}

/* ---------------------------------------------------------------- calls */

static int eval_call(struct promql_eval *ev, const struct promql_expr *x, int64_t t,
                     struct promql_val *out)
{
    const struct promql_func *f = x->func;
    if (!f->fn)
        return promql_eval_error(ev, BS_EEXEC, "function %s is not supported yet", f->name);
    struct promql_val *args = promql_eval_alloc(ev, (x->nargs + 1) * sizeof(*args));
    if (!args)
        return ev->code;
    for (size_t i = 0; i < x->nargs; i++) {
        memset(&args[i], 0, sizeof(args[i]));
        int rc = eval(ev, x->args[i], t, &args[i]);
        if (rc)
            return rc;
    }
    int rc = f->fn(ev, x, args, t, out);
    if (rc)
        return ev->code ? ev->code : promql_eval_error(ev, rc, "%s", bs_strerror(rc));
    if (out->type != PROMQL_VALUE_VECTOR)
        return 0;
    /* A function of a range vector gives at most one sample per series of
     * it, with that series' labels: range vectors hold distinct label sets
     * (selectors and subqueries), so there is nothing to find. */
    for (size_t i = 0; i < x->nargs; i++)
        if (args[i].type == PROMQL_VALUE_MATRIX)
            return 0;
    return check_dups(ev, out->vec, out->nvec);
}

static int eval(struct promql_eval *ev, const struct promql_expr *x, int64_t t,
                struct promql_val *out)
{
    memset(out, 0, sizeof(*out));
    if (ev->code)
        return ev->code;
    switch (x->kind) {
    case PROMQL_NODE_NUMBER:
        out->type = PROMQL_VALUE_SCALAR;
        out->scalar = x->num;
        return 0;
    case PROMQL_NODE_STRING:
        out->type = PROMQL_VALUE_STRING;
        out->str = x->str;
        return 0;
    case PROMQL_NODE_VECTOR: return eval_vector_sel(ev, x, t, out);
    case PROMQL_NODE_MATRIX: return eval_matrix_sel(ev, x, t, out);
    case PROMQL_NODE_SUBQUERY: return eval_subquery(ev, x, t, out);
    case PROMQL_NODE_PAREN: return eval(ev, x->lhs, t, out);
    case PROMQL_NODE_UNARY: {
        int rc = eval(ev, x->lhs, t, out);
        if (rc || x->op != PT_SUB)
            return rc;
        if (out->type == PROMQL_VALUE_SCALAR) {
            out->scalar = -out->scalar;
            return 0;
        }
        for (size_t i = 0; i < out->nvec; i++) {
            out->vec[i].v = -out->vec[i].v;
            out->vec[i].t = t;
            out->vec[i].drop_name = true;
        }
        return 0;
    }
    case PROMQL_NODE_BINARY: return eval_binary(ev, x, t, out);
    case PROMQL_NODE_CALL: return eval_call(ev, x, t, out);
    case PROMQL_NODE_AGG: return eval_agg(ev, x, t, out);
    }
    return promql_eval_error(ev, BS_EEXEC, "unknown expression node");
}

/* ---------------------------------------------------------------- queries */

struct acc {
    struct promql_series *s;
    uint64_t *hash;
    size_t n, cap;
    size_t *pcap;
    bool *drop;         /* per series: delayed name removal pending */
    int64_t *slots;     /* open addressing over s, -1 empty */
    size_t nslots;
};

static void acc_fini(struct acc *a)
{
    for (size_t i = 0; i < a->n; i++) {
        free(a->s[i].labels);
        free(a->s[i].points);
    }
    free(a->s);
    free(a->hash);
    free(a->pcap);
    free(a->drop);
    free(a->slots);
}

static int acc_rehash(struct acc *a, size_t nslots)
{
    int64_t *ns = malloc(nslots * sizeof(*ns));
    if (!ns)
        return BS_ENOMEM;
    for (size_t i = 0; i < nslots; i++)
        ns[i] = -1;
    for (size_t i = 0; i < a->n; i++) {
        size_t j = (size_t)(a->hash[i] * UINT64_C(0x9E3779B97F4A7C15)) & (nslots - 1);
        while (ns[j] >= 0)
            j = (j + 1) & (nslots - 1);
        ns[j] = (int64_t)i;
    }
    free(a->slots);
    a->slots = ns;
    a->nslots = nslots;
    return 0;
}

static int acc_add(struct promql_eval *ev, struct acc *a, const struct labels *ls, int64_t t,
                   double v, bool drop)
{
    int hrc = hold_sample(ev);
    if (hrc)
        return hrc;
    int64_t sid = stable_id(ev, ls);
    int64_t idx = sid >= 0 ? ev->stable[sid].acc : -1;
    if (idx >= 0)
        goto append;
    if ((a->n + 1) * 2 > a->nslots && acc_rehash(a, a->nslots ? a->nslots * 2 : 64))
        return promql_eval_error(ev, BS_ENOMEM, "out of memory in query execution");
    uint64_t h = sid >= 0 ? ev->stable[sid].hash : labels_hash(ls);
    size_t j = (size_t)(h * UINT64_C(0x9E3779B97F4A7C15)) & (a->nslots - 1);
    while (a->slots[j] >= 0) {
        int64_t k = a->slots[j];
        if (a->hash[k] == h && labels_equal(a->s[k].labels, ls)) {
            idx = k;
            break;
        }
        j = (j + 1) & (a->nslots - 1);
    }
    if (idx < 0) {
        if (a->n == a->cap) {
            size_t nc = a->cap ? a->cap * 2 : 16;
            struct promql_series *ns = realloc(a->s, nc * sizeof(*ns));
            if (ns)
                a->s = ns;
            uint64_t *nh = realloc(a->hash, nc * sizeof(*nh));
            if (nh)
                a->hash = nh;
            size_t *np = realloc(a->pcap, nc * sizeof(*np));
            if (np)
                a->pcap = np;
            bool *nd = realloc(a->drop, nc * sizeof(*nd));
            if (nd)
                a->drop = nd;
            if (!ns || !nh || !np || !nd)
                return promql_eval_error(ev, BS_ENOMEM, "out of memory in query execution");
            a->cap = nc;
        }
        struct labels *dup = labels_dup(ls);
        if (!dup)
            return promql_eval_error(ev, BS_ENOMEM, "out of memory in query execution");
        idx = (int64_t)a->n++;
        a->s[idx] = (struct promql_series){dup, NULL, 0};
        a->hash[idx] = h;
        a->pcap[idx] = 0;
        a->drop[idx] = drop;
        a->slots[j] = idx;
    }
    if (sid >= 0)
        ev->stable[sid].acc = idx;
append:;
    struct promql_series *s = &a->s[idx];
    if (s->npoints > 0 && s->points[s->npoints - 1].t == t)
        return promql_eval_error(ev, BS_EEXEC,
                                 "vector cannot contain metrics with the same labelset");
    if (s->npoints == a->pcap[idx]) {
        size_t nc = a->pcap[idx] ? a->pcap[idx] * 2 : 16;
        struct promql_point *np = realloc(s->points, nc * sizeof(*np));
        if (!np)
            return promql_eval_error(ev, BS_ENOMEM, "out of memory in query execution");
        s->points = np;
        a->pcap[idx] = nc;
    }
    s->points[s->npoints++] = (struct promql_point){t, v};
    return 0;
}

static int cmp_series(const void *a, const void *b)
{
    const struct promql_series *x = a, *y = b;
    return labels_cmp(x->labels, y->labels);
}

static int cmp_point(const void *a, const void *b)
{
    const struct promql_point *x = a, *y = b;
    return x->t < y->t ? -1 : x->t > y->t;
}

/* The end of a range query: apply delayed name removal to the flagged
 * series, sort by labels and merge series that now share a label set (as
 * upstream's mergeSeriesWithSameLabelset: an error if they have points at
 * the same time). */
static int acc_finish(struct promql_eval *ev, struct acc *a)
{
    bool dropped = false;
    for (size_t i = 0; i < a->n; i++) {
        if (!a->drop[i])
            continue;
        const struct labels *nl = promql_eval_drop_name(ev, a->s[i].labels);
        if (!nl)
            return ev->code;
        if (nl != a->s[i].labels) {
            struct labels *dup = labels_dup(nl);
            if (!dup)
                return promql_eval_error(ev, BS_ENOMEM, "out of memory in query execution");
            free(a->s[i].labels);
            a->s[i].labels = dup;
            dropped = true;
        }
    }
    if (a->n > 1)
        qsort(a->s, a->n, sizeof(*a->s), cmp_series);
    if (!dropped)
        return 0;
    size_t o = 0;
    for (size_t i = 0; i < a->n; i++) {
        if (o > 0 && labels_equal(a->s[o - 1].labels, a->s[i].labels)) {
            struct promql_series *d = &a->s[o - 1], *src = &a->s[i];
            struct promql_point *np =
                realloc(d->points, (d->npoints + src->npoints) * sizeof(*np));
            if (!np)
                return promql_eval_error(ev, BS_ENOMEM, "out of memory in query execution");
            memcpy(np + d->npoints, src->points, src->npoints * sizeof(*np));
            d->points = np;
            d->npoints += src->npoints;
            free(src->labels);
            free(src->points);
            qsort(d->points, d->npoints, sizeof(*d->points), cmp_point);
            for (size_t k = 1; k < d->npoints; k++)
                if (d->points[k].t == d->points[k - 1].t) {
                    /* Keep s[0..o) and s(i..n) for acc_fini. */
                    memmove(&a->s[o], &a->s[i + 1], (a->n - i - 1) * sizeof(*a->s));
                    a->n = o + (a->n - i - 1);
                    return promql_eval_error(
                        ev, BS_EEXEC, "vector cannot contain metrics with the same labelset");
                }
            continue;
        }
        a->s[o++] = a->s[i];
    }
    a->n = o;
    return 0;
}

static int run(struct promql_engine *e, struct tsdb *db, const char *q, int64_t start,
               int64_t end, int64_t step, bool range, struct promql_result **out,
               struct bs_error *err)
{
    *out = NULL;
    struct promql_expr *x = NULL;
    int rc = promql_parse(q, &x, err);
    if (rc)
        return rc;
    char dmsg[128];
    if (promql_resolve_durations(x, range ? step : 0, end - start, dmsg, sizeof(dmsg))) {
        promql_expr_free(x);
        return bs_error_set(err, BS_EINVAL, "%s", dmsg);
    }
    enum promql_value_type ty = promql_expr_type(x);
    if (range && ty != PROMQL_VALUE_SCALAR && ty != PROMQL_VALUE_VECTOR) {
        promql_expr_free(x);
        return bs_error_set(err, BS_EINVAL,
                            "invalid expression type \"%s\" for range query, must be Scalar or "
                            "instant Vector",
                            promql_value_type_name(ty));
    }
    struct promql_eval ev;
    memset(&ev, 0, sizeof(ev));
    ev.eng = e;
    ev.db = db;
    ev.start = start;
    ev.end = end;
    ev.step = range ? step : 0;
    ev.err = err;
    struct acc acc;
    memset(&acc, 0, sizeof(acc));
    struct promql_result *res = calloc(1, sizeof(*res));
    if (!res) {
        promql_expr_free(x);
        return bs_error_set(err, BS_ENOMEM, "out of memory in query execution");
    }
    engine_acquire(e);
    if (e->o.timeout_ms > 0)
        ev.deadline_ns = bs_monotonic_ns() + e->o.timeout_ms * 1000000;
    bs_arena_init(&ev.arena, 64 * 1024, 0);

    rc = prepare(&ev, x, start, end);
    if (!rc && range) {
        res->type = PROMQL_VALUE_MATRIX;
        for (int64_t t = start; t <= end && !rc; t += step) {
            bs_arena_reset(&ev.arena);
            struct promql_val v;
            ev.ticks = 0;
            if ((rc = promql_eval_check(&ev)) || (rc = eval(&ev, x, t, &v)))
                break;
            if (v.type == PROMQL_VALUE_SCALAR) {
                struct labels empty = {NULL, 0};
                rc = acc_add(&ev, &acc, &empty, t, v.scalar, false);
            } else {
                for (size_t i = 0; i < v.nvec && !rc; i++)
                    rc = acc_add(&ev, &acc, v.vec[i].ls, t, v.vec[i].v, v.vec[i].drop_name);
            }
            if (end - t < step)
                break;
        }
        if (!rc)
            rc = acc_finish(&ev, &acc);
        if (!rc) {
            res->series = acc.s;
            res->nseries = acc.n;
            acc.s = NULL;
            acc.n = 0;
        }
    } else if (!rc) {
        struct promql_val v;
        rc = eval(&ev, x, start, &v);
        if (!rc && v.type == PROMQL_VALUE_VECTOR) {
            rc = cleanup_names(&ev, v.vec, v.nvec);
            if (!rc)
                rc = check_dups(&ev, v.vec, v.nvec);
        }
        if (!rc) {
            res->type = v.type;
            switch (v.type) {
            case PROMQL_VALUE_SCALAR:
                res->scalar = (struct promql_point){start, v.scalar};
                break;
            case PROMQL_VALUE_STRING:
                res->string = strdup(v.str);
                res->string_t = start;
                if (!res->string)
                    rc = promql_eval_error(&ev, BS_ENOMEM, "out of memory in query execution");
                break;
            case PROMQL_VALUE_VECTOR:
            case PROMQL_VALUE_MATRIX: {
                size_t n = v.type == PROMQL_VALUE_VECTOR ? v.nvec : v.nmat;
                res->series = calloc(n ? n : 1, sizeof(*res->series));
                if (!res->series) {
                    rc = promql_eval_error(&ev, BS_ENOMEM, "out of memory in query execution");
                    break;
                }
                for (size_t i = 0; i < n && !rc; i++) {
                    struct promql_series *s = &res->series[i];
                    const struct labels *ls = v.type == PROMQL_VALUE_VECTOR ? v.vec[i].ls
                                                                            : v.mat[i].ls;
                    size_t np = v.type == PROMQL_VALUE_VECTOR ? 1 : v.mat[i].n;
                    s->labels = labels_dup(ls);
                    s->points = malloc(np * sizeof(*s->points));
                    res->nseries = i + 1;
                    if (!s->labels || !s->points) {
                        rc = promql_eval_error(&ev, BS_ENOMEM,
                                               "out of memory in query execution");
                        break;
                    }
                    if (v.type == PROMQL_VALUE_VECTOR)
                        s->points[0] = (struct promql_point){start, v.vec[i].v};
                    else
                        memcpy(s->points, v.mat[i].p, np * sizeof(*s->points));
                    s->npoints = np;
                }
                break;
            }
            default:
                break;
            }
        }
    }
    bs_arena_fini(&ev.arena);
    for (size_t i = 0; i < ev.nsels; i++)
        sel_data_fini(&ev.sels[i]);
    free(ev.sels);
    for (size_t i = 0; i < ev.noldq; i++)
        tsdb_querier_free(ev.oldq[i]);
    free(ev.oldq);
    for (size_t i = 0; i < ev.nowned; i++)
        free(ev.owned[i]);
    free(ev.owned);
    free(ev.stable);
    free(ev.st_keys);
    free(ev.st_vals);
    for (size_t i = 0; i < ev.nslots; i++)
        if (ev.slots[i].value)
            ev.slots[i].free_fn(ev.slots[i].value);
    free(ev.slots);
    promql_release_memory(ev.peak + ev.churn);
    acc_fini(&acc);
    engine_release(e);
    promql_expr_free(x);
    res->warnings = ev.warnings;
    res->nwarnings = ev.nwarnings;
    res->infos = ev.infos;
    res->ninfos = ev.ninfos;
    if (rc) {
        promql_result_free(res);
        if (err && err->code == 0)
            bs_error_set(err, rc, "%s", bs_strerror(rc));
        return rc;
    }
    *out = res;
    return 0;
}

void promql_release_memory(int64_t samples)
{
#ifdef __GLIBC__
    if (samples >= PROMQL_TRIM_SAMPLES)
        malloc_trim(0);
#else
    (void)samples;
#endif
}

int promql_query_instant(struct promql_engine *e, struct tsdb *db, const char *q, int64_t t_ms,
                         struct promql_result **out, struct bs_error *err)
{
    return run(e, db, q, t_ms, t_ms, 1, false, out, err);
}

int promql_query_range(struct promql_engine *e, struct tsdb *db, const char *q, int64_t start_ms,
                       int64_t end_ms, int64_t step_ms, struct promql_result **out,
                       struct bs_error *err)
{
    *out = NULL;
    if (step_ms <= 0)
        return bs_error_set(err, BS_EINVAL,
                            "zero or negative query resolution step widths are not accepted. "
                            "Try a positive integer");
    if (end_ms < start_ms)
        return bs_error_set(err, BS_EINVAL, "end timestamp must not be before start time");
    return run(e, db, q, start_ms, end_ms, step_ms, true, out, err);
}
