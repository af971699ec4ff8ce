/* SPDX-License-Identifier: Apache-2.0
 *
 * The appender: stages samples, then commits them through the WAL into the
 * head.
 *
 * Design. add() resolves the series (by ref hint, else by labels, creating
 * it - and so assigning its ref - on first sight; creation is idempotent
 * under concurrency because it happens under the stripe lock), then checks
 * the sample against the newest sample of the series in the head and the
 * newest one staged earlier in this batch (a small ref -> last sample map),
 * so rejected samples never reach the WAL.
 *
 * commit() takes the WAL writer mutex, encodes a series record for every
 * series of the batch that has not been logged yet (a series created by an
 * appender whose commit failed or was rolled back is logged by the first
 * commit that carries samples for it), then the samples records, writes
 * them, and only then appends the samples to the head, still under the
 * writer mutex. Holding it across the apply keeps the order in which
 * samples become visible identical to their order in the WAL, so replay
 * rebuilds exactly what queriers saw (a sample that lost a race with a
 * concurrent commit of a newer sample is rejected both live and on
 * replay). Everything before commit - lookups, creation, validation - runs
 * under striped and per-series locks only.
 *
 * A series created by an add whose batch is rolled back stays in the head,
 * empty; queries skip series without samples in range, and the next head
 * truncation removes it.
 *
 * Head truncation. An appender is an epoch reader (reclaim.c) from new()
 * to commit/rollback, so the series it staged are never freed under it.
 * Truncation may still remove a staged series from the head (it was empty
 * when checked, e.g. created by this very batch): such a series is flagged
 * `removed` under the WAL mutex, and commit, holding that mutex, resolves
 * its labels again (creating a fresh series with a new ref) before
 * encoding anything. Samples older than the head's min valid time (the end
 * of the newest block), which truncation may have raised since add(), are
 * dropped at commit and counted as out of bounds.
 */
#include <stdlib.h>
#include <string.h>

#include "tsdb/tsdb_int.h"

#define TSDB_APPENDER_MAX_SAMPLES (UINT64_C(1) << 24)
#define TSDB_MAX_LABELS_BYTES (1u << 20)
#define TSDB_MAX_SERIES_RECORD (1u << 16)

struct app_sample {
    struct tsdb_series *s;
    int64_t t;
    uint64_t v;
};

struct app_slot { /* newest staged sample of one series; s NULL = empty */
    struct tsdb_series *s;
    int64_t t;
    uint64_t v;
};

struct tsdb_appender {
    struct tsdb *db;
    uint64_t epoch; /* reclaim token */
    struct app_sample *samples;
    size_t n, cap;
    struct app_slot *slots;
    size_t nslots, slots_cap; /* slots_cap is a power of two */
};

struct tsdb_appender *tsdb_appender_new(struct tsdb *db)
{
    if (!db)
        return NULL;
    struct tsdb_appender *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->db = db;
    a->epoch = tsdb_reclaim_enter(&db->head.reclaim);
    return a;
}

static void appender_free(struct tsdb_appender *a)
{
    tsdb_reclaim_exit(&a->db->head.reclaim, a->epoch);
    free(a->samples);
    free(a->slots);
    free(a);
}

void tsdb_appender_rollback(struct tsdb_appender *a)
{
    if (a)
        appender_free(a);
}

static size_t slot_index(uint64_t ref, size_t cap)
{
    return (size_t)((ref * UINT64_C(0x9E3779B97F4A7C15)) >> 20) & (cap - 1);
}

static struct app_slot *slot_find(struct tsdb_appender *a, const struct tsdb_series *s)
{
    if (a->slots_cap == 0)
        return NULL;
    for (size_t i = slot_index(s->ref, a->slots_cap);; i = (i + 1) & (a->slots_cap - 1)) {
        if (a->slots[i].s == s)
            return &a->slots[i];
        if (!a->slots[i].s)
            return NULL;
    }
}

static int slot_put(struct tsdb_appender *a, struct tsdb_series *s, int64_t t, uint64_t v)
{
    struct app_slot *sl = slot_find(a, s);
    if (sl) {
        sl->t = t;
        sl->v = v;
        return 0;
    }
    if ((a->nslots + 1) * 2 > a->slots_cap) {
        size_t ncap = a->slots_cap ? a->slots_cap * 2 : 64;
        struct app_slot *ns = calloc(ncap, sizeof(*ns));
        if (!ns)
            return BS_ENOMEM;
        for (size_t i = 0; i < a->slots_cap; i++) {
            if (!a->slots[i].s)
                continue;
            size_t j = slot_index(a->slots[i].s->ref, ncap);
            while (ns[j].s)
                j = (j + 1) & (ncap - 1);
            ns[j] = a->slots[i];
        }
        free(a->slots);
        a->slots = ns;
        a->slots_cap = ncap;
    }
    size_t j = slot_index(s->ref, a->slots_cap);
    while (a->slots[j].s)
        j = (j + 1) & (a->slots_cap - 1);
    a->slots[j] = (struct app_slot){s, t, v};
    a->nslots++;
    return 0;
}

/* Sorted by name, unique names, valid names, non-empty values, bounded. */
static int labels_check(const struct labels *ls)
{
    if (!ls || ls->n == 0 || !ls->v)
        return BS_EINVAL;
    size_t bytes = 0;
    for (size_t i = 0; i < ls->n; i++) {
        const char *name = ls->v[i].name, *value = ls->v[i].value;
        if (!name || !value || !value[0])
            return BS_EINVAL;
        size_t nl = strlen(name);
        if (!labels_name_valid(name, nl))
            return BS_EINVAL;
        if (i > 0 && strcmp(ls->v[i - 1].name, name) >= 0)
            return BS_EINVAL;
        bytes += nl + strlen(value);
    }
    return bytes > TSDB_MAX_LABELS_BYTES ? BS_ELIMIT : 0;
}

int tsdb_appender_add(struct tsdb_appender *a, tsdb_ref ref, const struct labels *ls, int64_t t,
                      double v, tsdb_ref *out_ref)
{
    if (!a)
        return BS_EINVAL;
    struct tsdb_head *h = &a->db->head;
    if (t < tsdb_head_appendable_mint(h)) {
        __atomic_add_fetch(&h->oob_samples, 1, __ATOMIC_RELAXED);
        return BS_EOUTOFBOUNDS;
    }
    struct tsdb_series *s = ref ? tsdb_head_series_by_ref(h, ref) : NULL;
    if (!s) {
        int rc = labels_check(ls);
        if (rc)
            return rc;
        bool created;
        rc = tsdb_head_series_get_or_create(h, ls, labels_hash(ls), 0, &s, &created);
        if (rc)
            return rc;
    }
    if (out_ref)
        *out_ref = s->ref;
    if ((uint64_t)a->n >= TSDB_APPENDER_MAX_SAMPLES)
        return BS_ELIMIT;

    uint64_t vbits = bs_float_bits(v);
    tsdb_series_lock(s);
    bool has = s->has_samples;
    int64_t newest = s->max_t;
    uint64_t newest_v = s->last_v;
    tsdb_series_unlock(s);
    struct app_slot *sl = slot_find(a, s);
    if (sl && (!has || sl->t > newest)) {
        has = true;
        newest = sl->t;
        newest_v = sl->v;
    }
    if (has) {
        if (t < newest) {
            __atomic_add_fetch(&h->ooo_samples, 1, __ATOMIC_RELAXED);
            tsdb_metrics_add(0, 1, 0);
            return BS_EOUTOFORDER;
        }
        if (t == newest) {
            if (vbits == newest_v)
                return 0;
            __atomic_add_fetch(&h->dup_samples, 1, __ATOMIC_RELAXED);
            tsdb_metrics_add(0, 0, 1);
            return BS_EDUPLICATE;
        }
    }

    if (a->n == a->cap) {
        size_t ncap = a->cap ? a->cap * 2 : 64;
        struct app_sample *ns = realloc(a->samples, ncap * sizeof(*ns));
        if (!ns)
            return BS_ENOMEM;
        a->samples = ns;
        a->cap = ncap;
    }
    if (slot_put(a, s, t, vbits))
        return BS_ENOMEM;
    a->samples[a->n++] = (struct app_sample){s, t, vbits};
    return 0;
}

/* With the WAL mutex held: replace series that head truncation removed
 * since add() by live ones (found or created by labels), and drop samples
 * older than the head now accepts. Returns 0 or BS_ENOMEM; *oob and
 * *failed count dropped samples. */
static int revalidate_locked(struct tsdb_appender *a, uint64_t *oob, uint64_t *failed)
{
    struct tsdb_head *h = &a->db->head;
    int64_t minv = __atomic_load_n(&h->min_valid, __ATOMIC_ACQUIRE);
    bool any = false;
    for (size_t i = 0; i < a->n && !any; i++)
        any = a->samples[i].t < minv || a->samples[i].s->removed;
    if (!any)
        return 0;
    struct tsdb_series *old = NULL, *repl = NULL;
    size_t k = 0;
    for (size_t i = 0; i < a->n; i++) {
        struct app_sample sm = a->samples[i];
        if (sm.t < minv) {
            (*oob)++;
            continue;
        }
        if (sm.s->removed) {
            if (sm.s != old) {
                bool created;
                old = sm.s;
                repl = NULL;
                if (tsdb_head_series_get_or_create(h, &old->lset, old->hash, 0, &repl, &created))
                    repl = NULL;
            }
            if (!repl) {
                (*failed)++;
                continue;
            }
            sm.s = repl;
        }
        a->samples[k++] = sm;
    }
    a->n = k;
    if (a->slots_cap)
        memset(a->slots, 0, a->slots_cap * sizeof(*a->slots));
    a->nslots = 0;
    for (size_t i = 0; i < a->n; i++) {
        if (slot_put(a, a->samples[i].s, a->samples[i].t, a->samples[i].v))
            return BS_ENOMEM;
    }
    return 0;
}

/* Encode the batch as WAL records into w's pending buffer. */
static int encode_batch(struct tsdb_appender *a, struct tsdb_wal *w)
{
    int rc = 0;
    bool open = false;
    for (size_t i = 0; i < a->slots_cap && rc == 0; i++) {
        struct tsdb_series *s = a->slots[i].s;
        if (!s || s->wal_logged)
            continue;
        if (open && tsdb_wal_rec_payload_len(w) >= TSDB_MAX_SERIES_RECORD) {
            tsdb_wal_rec_end(w);
            open = false;
        }
        if (!open) {
            rc = tsdb_wal_rec_begin(w, TSDB_WAL_REC_SERIES);
            open = true;
        }
        if (rc == 0)
            rc = tsdb_wal_log_series(w, s);
    }
    if (open && rc == 0)
        tsdb_wal_rec_end(w);

    uint64_t prev_ref = 0, prev_t = 0;
    for (size_t i = 0; i < a->n && rc == 0; i++) {
        if (i % TSDB_WAL_SAMPLES_PER_RECORD == 0) {
            if (i > 0)
                tsdb_wal_rec_end(w);
            rc = tsdb_wal_rec_begin(w, TSDB_WAL_REC_SAMPLES);
            prev_ref = prev_t = 0;
            if (rc)
                break;
        }
        const struct app_sample *sm = &a->samples[i];
        uint8_t vb[8];
        bs_put_be64(vb, sm->v);
        rc = tsdb_wal_put_varint(w, (int64_t)(sm->s->ref - prev_ref));
        if (rc == 0)
            rc = tsdb_wal_put_varint(w, (int64_t)((uint64_t)sm->t - prev_t));
        if (rc == 0)
            rc = tsdb_wal_put(w, vb, 8);
        prev_ref = sm->s->ref;
        prev_t = (uint64_t)sm->t;
    }
    if (rc == 0 && a->n > 0)
        tsdb_wal_rec_end(w);
    return rc;
}

int tsdb_appender_commit(struct tsdb_appender *a, struct bs_error *err)
{
    if (!a)
        return 0;
    if (a->n == 0) {
        appender_free(a);
        return 0;
    }
    struct tsdb *db = a->db;
    struct tsdb_head *h = &db->head;
    struct tsdb_wal *w = &db->wal;

    uint64_t appended = 0, ooo = 0, dup = 0, failed = 0, oob = 0, lost = 0;
    pthread_mutex_lock(&w->mu);
    int rc = revalidate_locked(a, &oob, &lost);
    if (lost)
        BS_ERROR("tsdb", "out of memory: %llu samples of a batch were dropped recreating series",
                 (unsigned long long)lost);
    if (rc == 0 && oob) {
        __atomic_add_fetch(&h->oob_samples, oob, __ATOMIC_RELAXED);
        BS_DEBUG("tsdb", "%llu samples of a batch fell behind the head's min valid time",
                 (unsigned long long)oob);
    }
    if (rc == 0 && a->n == 0) {
        pthread_mutex_unlock(&w->mu);
        appender_free(a);
        return 0;
    }
    if (rc == 0)
        rc = encode_batch(a, w);
    if (rc) {
        tsdb_wal_discard(w);
        bs_error_set(err, rc, "cannot encode WAL records for a batch of %zu samples: %s", a->n,
                     bs_strerror(rc));
    } else {
        rc = tsdb_wal_flush_locked(w, err);
    }
    if (rc) {
        pthread_mutex_unlock(&w->mu);
        appender_free(a);
        return rc;
    }
    for (size_t i = 0; i < a->slots_cap; i++) {
        if (a->slots[i].s)
            a->slots[i].s->wal_logged = true;
    }

    int64_t mint = INT64_MAX, maxt = INT64_MIN;
    for (size_t i = 0; i < a->n; i++) {
        const struct app_sample *sm = &a->samples[i];
        tsdb_series_lock(sm->s);
        int r = tsdb_head_series_append(h, sm->s, sm->t, sm->v);
        tsdb_series_unlock(sm->s);
        if (r == 0) {
            appended++;
            if (sm->t < mint)
                mint = sm->t;
            if (sm->t > maxt)
                maxt = sm->t;
        } else if (r == BS_EOUTOFORDER) {
            ooo++;
        } else if (r == BS_EDUPLICATE) {
            dup++;
        } else if (r < 0) {
            failed++;
        }
    }
    pthread_mutex_unlock(&w->mu);

    if (appended) {
        tsdb_head_note_time(h, mint);
        tsdb_head_note_time(h, maxt);
        __atomic_add_fetch(&h->samples_appended, appended, __ATOMIC_RELAXED);
        tsdb_compactor_kick(db);
    }
    if (ooo)
        __atomic_add_fetch(&h->ooo_samples, ooo, __ATOMIC_RELAXED);
    if (dup)
        __atomic_add_fetch(&h->dup_samples, dup, __ATOMIC_RELAXED);
    tsdb_metrics_add(appended, ooo, dup);
    if (failed)
        BS_ERROR("tsdb",
                 "out of memory: %llu samples were written to the WAL but could not be "
                 "added to the head; they will reappear after a restart",
                 (unsigned long long)failed);
    appender_free(a);
    return 0;
}
