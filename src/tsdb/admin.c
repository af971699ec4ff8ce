/* SPDX-License-Identifier: Apache-2.0
 *
 * The admin operations of the store (what the /api/v1/admin/tsdb endpoints call):
 * deleting series ranges, cleaning tombstones and snapshots; and the
 * registry of tombstones with the hooks the rest of the module calls.
 *
 * Deleting never rewrites data at once. A deletion becomes tombstones:
 *
 *   - in each block overlapping the range, an interval per matching series
 *     (clamped to the block's range), kept in the block's `tombstones`
 *     file, rewritten whole and atomically (tombstones.c);
 *   - in the head, an interval per matching series ref, logged to the WAL
 *     as a tombstones record (docs/format/wal.md) before it applies, so
 *     that the deletion survives kill -9 once tsdb_delete returned; head
 *     checkpoints carry the head's tombstones forward.
 *
 * Queriers skip deleted samples (and series left with none); head
 * compaction and block merges leave them out of the blocks they write;
 * clean_tombstones rewrites the blocks that have tombstones.
 *
 * Ordering and crash safety. Every admin operation holds compact_mu, so
 * it never races a compaction, a merge or retention: a tombstone is never
 * written to a block that a concurrent merge is replacing, and the head
 * cannot be cut into a block between the two halves of a deletion. A
 * block rewrite follows the merge rules (compact.c): the new block is
 * written (.tmp, fsync, rename) and published before the old one is
 * deleted; its sources are the old block's plus its own ULID, so that after
 * a crash between the two steps the next open finds the old block
 * superseded (drop_superseded) and deletes it.
 *
 * Snapshots hard-link every file of every block (block files and
 * tombstones files are never modified in place, only replaced) and write
 * the head's samples, as a querier sees them, as one more block of XOR
 * chunks.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tsdb/chunk_dense.h"
#include "tsdb/tombstones.h"

/* ------------------------------------------------------------- registry */

/* A block's tombstones. The entry holds a reference on the block and is
 * keyed by it: a querier still reading a block that a merge or a rewrite
 * replaced keeps finding its tombstones, until the block is neither
 * listed nor referenced by anyone else (tsdb_tombstore_prune). */
struct tomb_block {
    struct tsdb_block *b; /* referenced */
    struct tsdb_tombs *t; /* owned, never empty */
};

struct tsdb_tombstore {
    pthread_mutex_t mu;
    struct tsdb_tombs *head; /* owned */
    struct tomb_block *blocks;
    size_t nblocks;
    int active; /* atomic: some tombstone exists */
};

int tsdb_tombstore_init(struct tsdb *db)
{
    struct tsdb_tombstore *ts = calloc(1, sizeof(*ts));
    if (!ts)
        return BS_ENOMEM;
    ts->head = tsdb_tombs_new();
    if (!ts->head) {
        free(ts);
        return BS_ENOMEM;
    }
    pthread_mutex_init(&ts->mu, NULL);
    db->tombstore = ts;
    return 0;
}

void tsdb_tombstore_fini(struct tsdb *db)
{
    struct tsdb_tombstore *ts = db->tombstore;
    if (!ts)
        return;
    for (size_t i = 0; i < ts->nblocks; i++) {
        tsdb_tombs_free(ts->blocks[i].t);
        tsdb_block_unref(ts->blocks[i].b);
    }
    free(ts->blocks);
    tsdb_tombs_free(ts->head);
    pthread_mutex_destroy(&ts->mu);
    free(ts);
    db->tombstore = NULL;
}

static bool store_active(struct tsdb *db)
{
    return db->tombstore && __atomic_load_n(&db->tombstore->active, __ATOMIC_ACQUIRE);
}

/* Caller holds ts->mu. */
static void update_active(struct tsdb_tombstore *ts)
{
    int a = tsdb_tombs_count(ts->head) > 0 || ts->nblocks > 0;
    __atomic_store_n(&ts->active, a, __ATOMIC_RELEASE);
}

/* Caller holds ts->mu. */
static struct tomb_block *find_block(struct tsdb_tombstore *ts, const struct tsdb_block *b)
{
    for (size_t i = 0; i < ts->nblocks; i++)
        if (ts->blocks[i].b == b)
            return &ts->blocks[i];
    return NULL;
}

/* Replace the tombstones of block b by t (taking it; NULL or empty
 * removes the entry). */
static void set_block(struct tsdb_tombstore *ts, struct tsdb_block *b, struct tsdb_tombs *t)
{
    struct tsdb_block *drop = NULL;
    pthread_mutex_lock(&ts->mu);
    struct tomb_block *e = find_block(ts, b);
    if (e) {
        tsdb_tombs_free(e->t);
        if (tsdb_tombs_count(t) > 0) {
            e->t = t;
            t = NULL;
        } else {
            drop = e->b;
            *e = ts->blocks[--ts->nblocks];
        }
    } else if (tsdb_tombs_count(t) > 0) {
        ts->blocks = bs_xrealloc(ts->blocks, (ts->nblocks + 1) * sizeof(*ts->blocks));
        tsdb_block_ref(b);
        ts->blocks[ts->nblocks++] = (struct tomb_block){b, t};
        t = NULL;
    }
    update_active(ts);
    pthread_mutex_unlock(&ts->mu);
    tsdb_tombs_free(t);
    tsdb_block_unref(drop);
}

int tsdb_tombstore_load_block(struct tsdb *db, struct tsdb_block *b, struct bs_error *err)
{
    struct tsdb_tombs *t;
    int rc = tsdb_tombs_read(b->dir, &t, err);
    if (rc == 0 && t)
        set_block(db->tombstore, b, t);
    return rc;
}

/* Copy the intervals of (b, id) into out; caller checked store_active. */
static int lookup_locked(struct tsdb_tombstore *ts, const struct tsdb_block *b, uint64_t id,
                         struct tsdb_intervals *out)
{
    const struct tsdb_tombs *t = ts->head;
    if (b) {
        const struct tomb_block *e = find_block(ts, b);
        t = e ? e->t : NULL;
    }
    const struct tsdb_intervals *iv = tsdb_tombs_get(t, id);
    for (size_t i = 0; iv && i < iv->n; i++) {
        int rc = tsdb_intervals_add(out, iv->v[i].mint, iv->v[i].maxt);
        if (rc)
            return rc;
    }
    return 0;
}

int tsdb_tomb_lookup(struct tsdb *db, const struct tsdb_block *b, uint64_t id,
                     struct tsdb_intervals *out)
{
    if (!store_active(db))
        return 0;
    pthread_mutex_lock(&db->tombstore->mu);
    int rc = lookup_locked(db->tombstore, b, id, out);
    pthread_mutex_unlock(&db->tombstore->mu);
    return rc;
}

int tsdb_tomb_lookup_range(struct tsdb *db, const struct tsdb_block *b, uint64_t id, int64_t lo,
                           int64_t hi, struct tsdb_intervals *out)
{
    if (!store_active(db))
        return 0;
    struct tsdb_intervals iv = {0};
    int rc = tsdb_tomb_lookup(db, b, id, &iv);
    for (size_t i = 0; rc == 0 && i < iv.n; i++) {
        int64_t a = iv.v[i].mint > lo ? iv.v[i].mint : lo;
        int64_t z = iv.v[i].maxt < hi ? iv.v[i].maxt : hi;
        if (a <= z)
            rc = tsdb_intervals_add(out, a, z);
    }
    tsdb_intervals_fini(&iv);
    return rc;
}

/* Does the chunk hold a sample in [mint, maxt] outside iv? */
static bool chunk_has_live(struct tsdb_block *b, uint8_t enc, const uint8_t *p, size_t len,
                           int64_t mint, int64_t maxt, const struct tsdb_intervals *iv)
{
    bool live = false;
    if (enc == TSDB_CHUNK_ENC_DENSE || enc == TSDB_CHUNK_ENC_DENSE_ST) {
        /* a shared-time chunk (only in blocks) resolves its times in b */
        struct tsdb_dense_dec d;
        if (tsdb_block_dense_init(b, &d, enc, p, len, NULL) == 0) {
            while (!live && tsdb_dense_dec_next(&d) && d.t <= maxt)
                live = d.t >= mint && !tsdb_intervals_cover(iv->v, iv->n, d.t);
        }
        tsdb_dense_dec_fini(&d);
        return live;
    }
    struct tsdb_xor_dec d;
    tsdb_xor_dec_init(&d, p, len);
    while (!live && tsdb_xor_dec_next(&d) && d.t <= maxt)
        live = d.t >= mint && !tsdb_intervals_cover(iv->v, iv->n, d.t);
    return live;
}

/* Is [lo, hi] inside one interval of iv? */
static bool range_covered(const struct tsdb_intervals *iv, int64_t lo, int64_t hi)
{
    for (size_t i = 0; i < iv->n; i++)
        if (iv->v[i].mint <= lo && iv->v[i].maxt >= hi)
            return true;
    return false;
}

/* The deletions of series id of b (NULL: the head) into *iv: false, with
 * nothing to free, when there are none. */
static bool deletions_of(struct tsdb *db, const struct tsdb_block *b, uint64_t id,
                         struct tsdb_intervals *iv)
{
    if (!store_active(db))
        return false;
    if (tsdb_tomb_lookup(db, b, id, iv) != 0 || iv->n == 0) {
        tsdb_intervals_fini(iv);
        return false;
    }
    return true;
}

/* Does the chunk [cmint, cmaxt] overlap [mint, maxt] in a part that iv
 * does not wholly delete (so that its samples must be looked at)? */
static bool window_partly_live(const struct tsdb_intervals *iv, int64_t cmint, int64_t cmaxt,
                               int64_t mint, int64_t maxt)
{
    if (cmaxt < mint || cmint > maxt)
        return false;
    return !range_covered(iv, cmint > mint ? cmint : mint, cmaxt < maxt ? cmaxt : maxt);
}

bool tsdb_tomb_block_series_hidden(struct tsdb *db, struct tsdb_block *b, uint64_t id,
                                   const struct tsdb_chunk_meta *c, size_t n, int64_t mint,
                                   int64_t maxt)
{
    struct tsdb_intervals iv = {0};
    if (!deletions_of(db, b, id, &iv))
        return false;
    bool live = false;
    for (size_t i = 0; i < n && !live; i++) {
        if (!window_partly_live(&iv, c[i].mint, c[i].maxt, mint, maxt))
            continue;
        const uint8_t *p;
        size_t len;
        uint8_t enc;
        if (tsdb_block_chunk(b, c[i].ref, &p, &len, &enc) != 0)
            continue;
        live = chunk_has_live(b, enc, p, len, mint, maxt, &iv);
    }
    tsdb_intervals_fini(&iv);
    return !live;
}

bool tsdb_tomb_head_series_hidden(struct tsdb *db, uint64_t ref, const struct tsdb_iter_chunk *c,
                                  size_t n, int64_t mint, int64_t maxt)
{
    struct tsdb_intervals iv = {0};
    if (!deletions_of(db, NULL, ref, &iv))
        return false;
    bool live = false;
    for (size_t i = 0; i < n && !live; i++)
        if (window_partly_live(&iv, c[i].mint, c[i].maxt, mint, maxt))
            live = chunk_has_live(NULL, c[i].enc, c[i].p, c[i].len, mint, maxt, &iv);
    tsdb_intervals_fini(&iv);
    return !live;
}

/* Does some interval of iv intersect [lo, hi]? */
static bool range_touched(const struct tsdb_intervals *iv, int64_t lo, int64_t hi)
{
    for (size_t i = 0; i < iv->n; i++)
        if (iv->v[i].mint <= hi && iv->v[i].maxt >= lo)
            return true;
    return false;
}

int tsdb_tomb_filter_head_chunks(struct tsdb *db, uint64_t ref, struct tsdb_bw_chunk *v, size_t *n,
                                 uint8_t ***owned, size_t *nowned, size_t *owned_cap)
{
    if (!store_active(db))
        return 0;
    struct tsdb_intervals iv = {0};
    int rc = tsdb_tomb_lookup(db, NULL, ref, &iv);
    if (rc || iv.n == 0) {
        tsdb_intervals_fini(&iv);
        return rc;
    }
    int64_t *ts = NULL;
    uint64_t *vs = NULL;
    size_t cap = 0, k = 0;
    for (size_t i = 0; i < *n && rc == 0; i++) {
        struct tsdb_bw_chunk c = v[i];
        if (!range_touched(&iv, c.mint, c.maxt)) {
            v[k++] = c;
            continue;
        }
        size_t ns = 0;
        rc = tsdb_tomb_chunk_samples(NULL, c.enc, c.data, c.len, iv.v, iv.n, &ts, &vs, &ns, &cap);
        if (rc || ns == 0)
            continue;
        uint8_t *buf;
        size_t len;
        rc = tsdb_tomb_xor_encode(ts, vs, ns, &buf, &len);
        if (rc)
            break;
        if (*nowned == *owned_cap) {
            size_t ncap = *owned_cap ? *owned_cap * 2 : 64;
            uint8_t **no = realloc(*owned, ncap * sizeof(*no));
            if (!no) {
                free(buf);
                rc = BS_ENOMEM;
                break;
            }
            *owned = no;
            *owned_cap = ncap;
        }
        (*owned)[(*nowned)++] = buf;
        v[k++] = (struct tsdb_bw_chunk){ts[0], ts[ns - 1], buf, (uint32_t)len, (uint32_t)ns, 0};
    }
    if (rc == 0)
        *n = k;
    free(ts);
    free(vs);
    tsdb_intervals_fini(&iv);
    return rc;
}

int tsdb_tomb_filter_samples(struct tsdb *db, const struct tsdb_block *b, uint64_t id, int64_t *ts,
                             uint64_t *vs, size_t from, size_t *n)
{
    if (!store_active(db))
        return 0;
    struct tsdb_intervals iv = {0};
    int rc = tsdb_tomb_lookup(db, b, id, &iv);
    if (rc == 0 && iv.n) {
        size_t k = from;
        for (size_t i = from; i < *n; i++) {
            if (!tsdb_intervals_cover(iv.v, iv.n, ts[i])) {
                ts[k] = ts[i];
                vs[k++] = vs[i];
            }
        }
        *n = k;
    }
    tsdb_intervals_fini(&iv);
    return rc;
}

/* ---------------------------------------------------- head tombstones */

/* A record entry: ref uvarint, mint varint, maxt - mint uvarint. */
static size_t put_entry(uint8_t *p, uint64_t ref, int64_t mint, int64_t maxt)
{
    size_t n = bs_put_uvarint(p, ref);
    n += bs_put_varint(p + n, mint);
    n += bs_put_uvarint(p + n, (uint64_t)maxt - (uint64_t)mint);
    return n;
}

int tsdb_tomb_replay(struct tsdb *db, const uint8_t *p, size_t len)
{
    struct tsdb_tombstore *ts = db->tombstore;
    size_t off = 0;
    int rc = 0;
    pthread_mutex_lock(&ts->mu);
    while (off < len && rc == 0) {
        uint64_t ref, d;
        int64_t mint;
        size_t k1 = bs_get_uvarint(p + off, len - off, &ref);
        size_t k2 = k1 ? bs_get_varint(p + off + k1, len - off - k1, &mint) : 0;
        size_t k3 = k2 ? bs_get_uvarint(p + off + k1 + k2, len - off - k1 - k2, &d) : 0;
        if (!k3 || d > (uint64_t)INT64_MAX - (uint64_t)mint) {
            rc = BS_ECORRUPT;
            break;
        }
        off += k1 + k2 + k3;
        struct tsdb_series *s = tsdb_head_series_by_ref(&db->head, ref);
        if (s)
            rc = tsdb_tombs_add(ts->head, s->ref, mint, (int64_t)((uint64_t)mint + d));
    }
    update_active(ts);
    pthread_mutex_unlock(&ts->mu);
    return rc;
}

int tsdb_tomb_head_payload(struct tsdb *db, int64_t mint, uint8_t **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    struct tsdb_tombstore *ts = db->tombstore;
    if (!ts)
        return 0;
    struct tsdb_head *h = &db->head;
    pthread_mutex_lock(&ts->mu);
    uint64_t *ids;
    size_t nids;
    int rc = tsdb_tombs_ids(ts->head, &ids, &nids);
    struct tsdb_tombs *keep = rc == 0 && nids ? tsdb_tombs_new() : NULL;
    if (nids && !keep)
        rc = BS_ENOMEM;
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0;
    uint64_t epoch = tsdb_reclaim_enter(&h->reclaim);
    for (size_t i = 0; i < nids && rc == 0; i++) {
        struct tsdb_series *s = tsdb_head_series_by_ref(h, ids[i]);
        if (!s || s->ref != ids[i] || s->removed)
            continue;
        const struct tsdb_intervals *iv = tsdb_tombs_get(ts->head, ids[i]);
        for (size_t j = 0; j < iv->n && rc == 0; j++) {
            if (iv->v[j].maxt < mint)
                continue;
            int64_t lo = iv->v[j].mint > mint ? iv->v[j].mint : mint;
            if (n + 40 > cap) {
                size_t ncap = cap ? cap * 2 : 4096;
                uint8_t *nb = realloc(buf, ncap);
                if (!nb) {
                    rc = BS_ENOMEM;
                    break;
                }
                buf = nb;
                cap = ncap;
            }
            n += put_entry(buf + n, ids[i], lo, iv->v[j].maxt);
            rc = tsdb_tombs_add(keep, ids[i], lo, iv->v[j].maxt);
        }
    }
    tsdb_reclaim_exit(&h->reclaim, epoch);
    if (rc == 0 && keep) {
        tsdb_tombs_free(ts->head);
        ts->head = keep;
        keep = NULL;
        update_active(ts);
    }
    pthread_mutex_unlock(&ts->mu);
    tsdb_tombs_free(keep);
    free(ids);
    if (rc || n == 0) {
        free(buf);
        return rc;
    }
    *out = buf;
    *len = n;
    return 0;
}

/* Log the head tombstones iv[i] of refs[i] (i < n) to the WAL, then
 * apply them. Records hold at most 65536 entries. */
static int delete_head_refs(struct tsdb *db, const uint64_t *refs, const struct tsdb_interval *iv,
                            size_t n, struct bs_error *err)
{
    struct tsdb_wal *w = &db->wal;
    int rc = 0;
    pthread_mutex_lock(&w->mu);
    if (w->fd < 0) {
        pthread_mutex_unlock(&w->mu);
        return bs_error_set(err, BS_ECLOSED, "the WAL is closed; cannot log the deletion");
    }
    uint8_t ent[40];
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (i % 65536 == 0) {
            if (i > 0)
                tsdb_wal_rec_end(w);
            rc = tsdb_wal_rec_begin(w, TSDB_WAL_REC_TOMBSTONES);
        }
        if (rc == 0)
            rc = tsdb_wal_put(w, ent, put_entry(ent, refs[i], iv[i].mint, iv[i].maxt));
    }
    if (rc == 0 && n > 0) {
        tsdb_wal_rec_end(w);
        rc = tsdb_wal_flush_locked(w, err);
        if (rc)
            bs_error_prefix(err, "logging the deletion to the WAL");
    } else if (rc) {
        tsdb_wal_discard(w);
        bs_error_set(err, rc, "out of memory logging the deletion to the WAL");
    }
    pthread_mutex_unlock(&w->mu);
    if (rc)
        return rc;
    struct tsdb_tombstore *ts = db->tombstore;
    pthread_mutex_lock(&ts->mu);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = tsdb_tombs_add(ts->head, refs[i], iv[i].mint, iv[i].maxt);
    update_active(ts);
    pthread_mutex_unlock(&ts->mu);
    if (rc)
        bs_error_set(err, rc,
                     "out of memory recording the deletion (it is in the WAL and "
                     "applies after a restart)");
    return rc;
}

/* ------------------------------------------------------------ blocks */

/* Take a reference on every block (caller unrefs and frees). */
static struct tsdb_block **blocks_snapshot(struct tsdb *db, size_t *n)
{
    pthread_mutex_lock(&db->blocks_mu);
    struct tsdb_block **v = bs_xcalloc(db->nblocks ? db->nblocks : 1, sizeof(*v));
    for (size_t i = 0; i < db->nblocks; i++) {
        v[i] = db->blocks[i];
        tsdb_block_ref(v[i]);
    }
    *n = db->nblocks;
    pthread_mutex_unlock(&db->blocks_mu);
    return v;
}

static void blocks_release(struct tsdb_block **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        tsdb_block_unref(v[i]);
    free(v);
}

void tsdb_tombstore_prune(struct tsdb *db)
{
    struct tsdb_tombstore *ts = db->tombstore;
    if (!store_active(db))
        return;
    struct tsdb_block **gone = NULL;
    size_t ngone = 0;
    pthread_mutex_lock(&db->blocks_mu);
    pthread_mutex_lock(&ts->mu);
    for (size_t i = 0; i < ts->nblocks;) {
        struct tsdb_block *b = ts->blocks[i].b;
        bool listed = false;
        for (size_t j = 0; j < db->nblocks && !listed; j++)
            listed = db->blocks[j] == b;
        /* unlisted, nobody can take a new reference (that happens under
         * blocks_mu): with ours the only one left, no querier reads it */
        if (listed || __atomic_load_n(&b->refs, __ATOMIC_ACQUIRE) > 1) {
            i++;
            continue;
        }
        tsdb_tombs_free(ts->blocks[i].t);
        gone = bs_xrealloc(gone, (ngone + 1) * sizeof(*gone));
        gone[ngone++] = b;
        ts->blocks[i] = ts->blocks[--ts->nblocks];
    }
    update_active(ts);
    pthread_mutex_unlock(&ts->mu);
    pthread_mutex_unlock(&db->blocks_mu);
    for (size_t i = 0; i < ngone; i++)
        tsdb_block_unref(gone[i]);
    free(gone);
}

/* Sorted ids of the series of b that match every matcher. */
static int block_match(struct tsdb_block *b, struct labels_matcher *const *ms, size_t nms,
                       uint64_t **out, size_t *nout)
{
    uint64_t *cur = NULL;
    size_t ncur = 0;
    int rc = tsdb_block_postings_matching(b, ms, nms, &cur, &ncur);
    if (rc)
        return rc;
    struct bs_arena a;
    bs_arena_init(&a, 4096, 0);
    size_t k = 0;
    for (size_t i = 0; i < ncur && rc == 0; i++) {
        struct labels ls;
        bs_arena_reset(&a);
        rc = tsdb_block_series(b, cur[i], &a, &ls, NULL, NULL, NULL);
        bool ok = rc == 0;
        for (size_t j = 0; j < nms && ok; j++)
            if (labels_matcher_matches_empty(ms[j]))
                ok = labels_matcher_matches_labels(ms[j], &ls);
        if (ok)
            cur[k++] = cur[i];
    }
    bs_arena_fini(&a);
    if (rc) {
        free(cur);
        return rc;
    }
    *out = cur;
    *nout = k;
    return 0;
}

/* Record [mint, maxt] (clamped to b's range) for the series of b that
 * match and have a chunk overlapping it: tombstones file first, then the
 * registry. */
static int delete_in_block(struct tsdb *db, struct tsdb_block *b, int64_t mint, int64_t maxt,
                           struct labels_matcher *const *ms, size_t nms, struct bs_error *err)
{
    if (mint < b->meta.mint)
        mint = b->meta.mint;
    if (maxt > b->meta.maxt - 1)
        maxt = b->meta.maxt - 1;
    if (mint > maxt)
        return 0;
    uint64_t *ids;
    size_t nids;
    int rc = block_match(b, ms, nms, &ids, &nids);
    if (rc)
        return bs_error_set(err, rc, "reading the series of block %s: %s", b->dir, bs_strerror(rc));
    struct tsdb_tombs *t = tsdb_tombs_new();
    if (!t) {
        free(ids);
        return bs_error_set(err, BS_ENOMEM, "out of memory deleting series");
    }
    struct tsdb_tombstore *ts = db->tombstore;
    pthread_mutex_lock(&ts->mu);
    struct tomb_block *e = find_block(ts, b);
    rc = e ? tsdb_tombs_merge(t, e->t) : 0;
    pthread_mutex_unlock(&ts->mu);
    struct tsdb_chunk_meta *chks = NULL;
    size_t nchks = 0, chks_cap = 0, added = 0;
    for (size_t i = 0; i < nids && rc == 0; i++) {
        rc = tsdb_block_series(b, ids[i], NULL, NULL, &chks, &nchks, &chks_cap);
        bool overlaps = false;
        for (size_t c = 0; rc == 0 && c < nchks && !overlaps; c++)
            overlaps = chks[c].mint <= maxt && chks[c].maxt >= mint;
        if (rc == 0 && overlaps) {
            rc = tsdb_tombs_add(t, ids[i], mint, maxt);
            added++;
        }
    }
    free(chks);
    free(ids);
    if (rc) {
        tsdb_tombs_free(t);
        return bs_error_set(err, rc, "reading the series of block %s: %s", b->dir, bs_strerror(rc));
    }
    if (added == 0) {
        tsdb_tombs_free(t);
        return 0;
    }
    rc = tsdb_tombs_write(b->dir, t, err);
    if (rc) {
        tsdb_tombs_free(t);
        return rc;
    }
    set_block(ts, b, t);
    return 0;
}

int tsdb_delete(struct tsdb *db, int64_t mint, int64_t maxt, struct labels_matcher *const *ms,
                size_t nms, struct bs_error *err)
{
    if (!db || (nms && !ms))
        return bs_error_set(err, BS_EINVAL, "tsdb_delete: no store or matchers");
    if (mint > maxt)
        return 0;
    pthread_mutex_lock(&db->compact_mu);
    tsdb_tombstore_prune(db);
    size_t nb;
    struct tsdb_block **bl = blocks_snapshot(db, &nb);
    int rc = 0;
    for (size_t i = 0; i < nb && rc == 0; i++) {
        if (bl[i]->meta.mint <= maxt && bl[i]->meta.maxt - 1 >= mint)
            rc = delete_in_block(db, bl[i], mint, maxt, ms, nms, err);
    }
    blocks_release(bl, nb);
    if (rc == 0) {
        struct tsdb_head *h = &db->head;
        uint64_t epoch = tsdb_reclaim_enter(&h->reclaim);
        struct tsdb_series **v = NULL;
        size_t n = 0;
        rc = tsdb_head_select(h, ms, nms, mint, maxt, false, true, &v, &n, err);
        uint64_t *refs = rc == 0 && n ? malloc(n * sizeof(*refs)) : NULL;
        struct tsdb_interval *iv = rc == 0 && n ? malloc(n * sizeof(*iv)) : NULL;
        if (rc == 0 && n && (!refs || !iv))
            rc = bs_error_set(err, BS_ENOMEM, "out of memory deleting series");
        /* As Prometheus: only up to the series' current samples, so that
         * samples appended later (a deletion to +inf of a series still
         * scraped) are not hidden. */
        size_t k = 0;
        for (size_t i = 0; rc == 0 && i < n; i++) {
            struct tsdb_series *s = v[i];
            tsdb_series_lock(s);
            bool has = s->has_samples;
            int64_t lo = s->min_t > mint ? s->min_t : mint;
            int64_t hi = s->max_t < maxt ? s->max_t : maxt;
            tsdb_series_unlock(s);
            if (has && lo <= hi) {
                refs[k] = s->ref;
                iv[k++] = (struct tsdb_interval){lo, hi};
            }
        }
        free(v);
        tsdb_reclaim_exit(&h->reclaim, epoch);
        if (rc == 0 && k)
            rc = delete_head_refs(db, refs, iv, k, err);
        free(refs);
        free(iv);
    }
    pthread_mutex_unlock(&db->compact_mu);
    if (rc == 0)
        BS_INFO("tsdb", "deleted series data in [%lld, %lld] (%zu matchers)", (long long)mint,
                (long long)maxt, nms);
    return rc;
}

/* --------------------------------------------------------- rewriting */

/* Samples in a block chunk (XOR: its header; dense: its header). */
static uint32_t chunk_count(uint8_t enc, const uint8_t *p, size_t len)
{
    if (enc == TSDB_CHUNK_ENC_DENSE || enc == TSDB_CHUNK_ENC_DENSE_ST) {
        uint32_t n = 0;
        return tsdb_dense_peek(p, len, &n, NULL) == 0 ? n : 0;
    }
    return len >= 2 ? (uint32_t)p[0] << 8 | p[1] : 0;
}

/* Write block b without the samples t deletes into a new block, publish
 * it in b's place and delete b (see the top of the file for the order). */
static int rewrite_block(struct tsdb *db, struct tsdb_block *b, const struct tsdb_tombs *t,
                         struct bs_error *err)
{
    uint64_t *ids = NULL;
    size_t nids = 0;
    struct tsdb_block_writer *w = NULL;
    struct bs_arena keep;
    bs_arena_init(&keep, 64 * 1024, 0);
    struct tsdb_chunk_meta *chks = NULL;
    size_t nchks = 0, chks_cap = 0;
    struct tsdb_bw_chunk *out = NULL;
    uint8_t **owned = NULL;
    int64_t *ts = NULL;
    uint64_t *vs = NULL;
    size_t scap = 0, written = 0;
    struct tsdb_block_meta meta = {
        .mint = b->meta.mint, .maxt = b->meta.maxt, .level = b->meta.level};
    int rc = tsdb_block_postings_all(b, &ids, &nids);
    if (rc) {
        bs_error_set(err, rc, "reading the series of block %s: %s", b->dir, bs_strerror(rc));
        goto done;
    }
    rc = tsdb_block_writer_new(db->dir, &w, err);
    for (size_t i = 0; i < nids && rc == 0; i++) {
        struct labels *ls = bs_arena_alloc(&keep, sizeof(*ls));
        if (!ls) {
            rc = bs_error_set(err, BS_ENOMEM, "out of memory rewriting block %s", b->dir);
            break;
        }
        rc = tsdb_block_series(b, ids[i], &keep, ls, &chks, &nchks, &chks_cap);
        if (rc) {
            bs_error_set(err, rc, "reading series %llu of block %s: %s", (unsigned long long)ids[i],
                         b->dir, bs_strerror(rc));
            break;
        }
        const struct tsdb_intervals *iv = tsdb_tombs_get(t, ids[i]);
        out = bs_xrealloc(out, (nchks ? nchks : 1) * sizeof(*out));
        owned = bs_xrealloc(owned, (nchks ? nchks : 1) * sizeof(*owned));
        size_t nout = 0, nowned = 0;
        for (size_t c = 0; c < nchks && rc == 0; c++) {
            const uint8_t *p;
            size_t len;
            uint8_t enc;
            rc = tsdb_block_chunk(b, chks[c].ref, &p, &len, &enc);
            if (rc) {
                bs_error_set(err, rc, "reading chunk %llu of block %s: %s",
                             (unsigned long long)chks[c].ref, b->dir, bs_strerror(rc));
                break;
            }
            /* A shared-time chunk refers to another chunk of b by its
             * place in b's files, which a copy does not keep: it is
             * always re-encoded, with its own times. */
            if (enc != TSDB_CHUNK_ENC_DENSE_ST &&
                (!iv || !range_touched(iv, chks[c].mint, chks[c].maxt))) {
                out[nout++] = (struct tsdb_bw_chunk){
                    chks[c].mint, chks[c].maxt, p, (uint32_t)len, chunk_count(enc, p, len), enc};
                continue;
            }
            size_t ns = 0;
            rc = tsdb_tomb_chunk_samples(b, enc, p, len, iv ? iv->v : NULL, iv ? iv->n : 0, &ts,
                                         &vs, &ns, &scap);
            if (rc) {
                bs_error_set(err, rc, "decoding chunk %llu of block %s: %s",
                             (unsigned long long)chks[c].ref, b->dir, bs_strerror(rc));
                break;
            }
            if (ns == 0)
                continue;
            uint8_t *buf;
            size_t blen;
            if (enc == TSDB_CHUNK_ENC_DENSE_ST)
                enc = TSDB_CHUNK_ENC_DENSE;
            rc = enc == TSDB_CHUNK_ENC_DENSE ? tsdb_dense_encode(NULL, ts, vs, ns, &buf, &blen)
                                             : tsdb_tomb_xor_encode(ts, vs, ns, &buf, &blen);
            if (rc) {
                bs_error_set(err, rc, "re-encoding %zu samples: %s", ns, bs_strerror(rc));
                break;
            }
            owned[nowned++] = buf;
            out[nout++] =
                (struct tsdb_bw_chunk){ts[0], ts[ns - 1], buf, (uint32_t)blen, (uint32_t)ns, enc};
        }
        if (rc == 0 && nout > 0) {
            rc = tsdb_block_writer_add(w, ls, out, nout, err);
            written++;
        }
        for (size_t k = 0; k < nowned; k++)
            free(owned[k]);
    }
    if (rc)
        goto done;
    if (written == 0) {
        /* everything was deleted: no block replaces b */
        tsdb_block_writer_abort(w);
        w = NULL;
    } else {
        size_t ns = b->meta.nsources ? b->meta.nsources : 1;
        meta.sources = bs_xcalloc(ns + 1, sizeof(*meta.sources));
        for (size_t k = 0; k < ns; k++)
            memcpy(meta.sources[k], b->meta.nsources ? b->meta.sources[k] : b->meta.ulid,
                   TSDB_ULID_LEN + 1);
        memcpy(meta.sources[ns], tsdb_block_writer_ulid(w), TSDB_ULID_LEN + 1);
        meta.nsources = ns + 1;
        rc = tsdb_block_writer_commit(w, &meta, err);
        w = NULL;
        if (rc)
            goto done;
    }
    struct tsdb_block *nb = NULL;
    if (written) {
        char path[4200];
        snprintf(path, sizeof(path), "%s/%s", db->dir, meta.ulid);
        rc = tsdb_block_open(path, &nb, err);
        if (rc)
            goto done; /* b stays; the next open sees b superseded */
    }
    pthread_mutex_lock(&db->blocks_mu);
    size_t k = 0;
    bool listed = false;
    for (size_t i = 0; i < db->nblocks; i++) {
        if (db->blocks[i] == b) {
            listed = true;
            if (nb)
                db->blocks[k++] = nb;
        } else {
            db->blocks[k++] = db->blocks[i];
        }
    }
    db->nblocks = k;
    pthread_mutex_unlock(&db->blocks_mu);
    if (!listed && nb)
        tsdb_block_unref(nb); /* cannot happen under compact_mu */
    BS_INFO("tsdb", "rewrote block %s without its deleted data%s%s", b->dir,
            nb ? " as " : " (nothing was left)", nb ? meta.ulid : "");
    char tmp[4300];
    snprintf(tmp, sizeof(tmp), "%s.tmp", b->dir);
    int e = rename(b->dir, tmp) != 0 ? errno : 0;
    if (e == 0) {
        tsdb_fsync_dir(db->dir);
        e = tsdb_rmdir_all(tmp);
    }
    if (e)
        BS_ERROR("tsdb", "cannot delete block %s after rewriting it: %s", b->dir, strerror(e));
    if (listed) {
        b->deleted = true;
        tsdb_block_unref(b); /* the list's reference */
    }
done:
    if (w)
        tsdb_block_writer_abort(w);
    free(meta.sources);
    free(ids);
    free(chks);
    free(out);
    free(owned);
    free(ts);
    free(vs);
    bs_arena_fini(&keep);
    return rc;
}

int tsdb_clean_tombstones(struct tsdb *db, struct bs_error *err)
{
    if (!db)
        return bs_error_set(err, BS_EINVAL, "tsdb_clean_tombstones: no store");
    pthread_mutex_lock(&db->compact_mu);
    tsdb_tombstore_prune(db);
    size_t nb;
    struct tsdb_block **bl = blocks_snapshot(db, &nb);
    int rc = 0;
    for (size_t i = 0; i < nb && rc == 0; i++) {
        struct tsdb_tombstore *ts = db->tombstore;
        struct tsdb_tombs *t = tsdb_tombs_new();
        if (!t) {
            rc = bs_error_set(err, BS_ENOMEM, "out of memory cleaning tombstones");
            break;
        }
        pthread_mutex_lock(&ts->mu);
        struct tomb_block *e = find_block(ts, bl[i]);
        rc = e ? tsdb_tombs_merge(t, e->t) : 0;
        pthread_mutex_unlock(&ts->mu);
        if (rc == 0 && tsdb_tombs_count(t) > 0) {
            rc = rewrite_block(db, bl[i], t, err);
            if (rc)
                bs_error_prefix(err, "cleaning the tombstones of block %s", bl[i]->dir);
        }
        tsdb_tombs_free(t);
    }
    blocks_release(bl, nb);
    tsdb_tombstore_prune(db); /* the rewritten blocks, unless a querier reads them */
    pthread_mutex_unlock(&db->compact_mu);
    return rc;
}

/* ------------------------------------------------------------ snapshot */

static int mkdir_p1(const char *path, struct bs_error *err)
{
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        int e = errno;
        return bs_error_set(err, e == ENOSPC ? BS_ENOSPC : BS_EIO, "cannot create %s: %s", path,
                            strerror(e));
    }
    return 0;
}

/* Hard-link every regular file of src into dst (created), recursing into
 * one level of subdirectories (chunks/). */
static int link_tree(const char *src, const char *dst, int depth, struct bs_error *err)
{
    int rc = mkdir_p1(dst, err);
    if (rc)
        return rc;
    DIR *d = opendir(src);
    if (!d) {
        int e = errno;
        return bs_error_set(err, BS_EIO, "cannot read %s: %s", src, strerror(e));
    }
    struct dirent *de;
    char s[4400], t[4400];
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || strstr(de->d_name, ".tmp"))
            continue;
        snprintf(s, sizeof(s), "%s/%s", src, de->d_name);
        snprintf(t, sizeof(t), "%s/%s", dst, de->d_name);
        struct stat st;
        if (lstat(s, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode) && depth > 0) {
            rc = link_tree(s, t, depth - 1, err);
        } else if (S_ISREG(st.st_mode) && link(s, t) != 0) {
            int e = errno;
            rc = bs_error_set(err, BS_EIO, "cannot link %s to %s: %s", s, t, strerror(e));
        }
    }
    closedir(d);
    if (rc == 0)
        tsdb_fsync_dir(dst);
    return rc;
}

/* Write the head's samples (from the newest block's end on, tombstones
 * applied) into parent as one block of XOR chunks. */
static int snapshot_head(struct tsdb *db, const char *parent, struct bs_error *err)
{
    int64_t from = __atomic_load_n(&db->head.min_valid, __ATOMIC_ACQUIRE);
    struct tsdb_querier *q = tsdb_querier_new(db, from, INT64_MAX);
    if (!q)
        return bs_error_set(err, BS_ENOMEM, "out of memory reading the head");
    struct tsdb_series_set *set = NULL;
    struct tsdb_block_writer *w = NULL;
    int64_t *ts = NULL;
    uint64_t *vs = NULL;
    size_t cap = 0, nseries = 0;
    struct tsdb_bw_chunk *out = NULL;
    size_t out_cap = 0;
    int64_t mint = INT64_MAX, maxt = INT64_MIN;
    int64_t range = db->head.chunk_range > 0 ? db->head.chunk_range : TSDB_CHUNK_RANGE_MS;
    int rc = tsdb_querier_select(q, NULL, 0, &set, err);
    if (rc == 0)
        rc = tsdb_block_writer_new(parent, &w, err);
    while (rc == 0 && tsdb_series_set_next(set)) {
        struct tsdb_iterator *it = tsdb_series_set_iterator(set);
        if (!it) {
            rc = bs_error_set(err, BS_ENOMEM, "out of memory reading the head");
            break;
        }
        size_t n = 0;
        while (rc == 0 && tsdb_iterator_next(it)) {
            int64_t t;
            double v;
            tsdb_iterator_at(it, &t, &v);
            if (n == cap) {
                cap = cap ? cap * 2 : 1024;
                ts = bs_xrealloc(ts, cap * sizeof(*ts));
                vs = bs_xrealloc(vs, cap * sizeof(*vs));
            }
            ts[n] = t;
            vs[n++] = bs_float_bits(v);
        }
        tsdb_iterator_free(it);
        if (n == 0)
            continue;
        size_t nout = 0;
        for (size_t lo = 0; lo < n && rc == 0;) {
            size_t hi = lo + 1;
            int64_t r = tsdb_range_of(ts[lo], range);
            while (hi < n && hi - lo < TSDB_CHUNK_MAX_SAMPLES && tsdb_range_of(ts[hi], range) == r)
                hi++;
            uint8_t *buf;
            size_t len;
            rc = tsdb_tomb_xor_encode(ts + lo, vs + lo, hi - lo, &buf, &len);
            if (rc) {
                bs_error_set(err, rc, "out of memory encoding the head");
                break;
            }
            if (nout == out_cap) {
                out_cap = out_cap ? out_cap * 2 : 16;
                out = bs_xrealloc(out, out_cap * sizeof(*out));
            }
            out[nout++] = (struct tsdb_bw_chunk){
                ts[lo], ts[hi - 1], buf, (uint32_t)len, (uint32_t)(hi - lo), TSDB_CHUNK_ENC_XOR};
            lo = hi;
        }
        if (rc == 0)
            rc = tsdb_block_writer_add(w, tsdb_series_set_labels(set), out, nout, err);
        for (size_t k = 0; k < nout; k++)
            free((void *)out[k].data);
        if (ts[0] < mint)
            mint = ts[0];
        if (ts[n - 1] > maxt)
            maxt = ts[n - 1];
        nseries++;
    }
    if (rc == 0 && nseries > 0) {
        struct tsdb_block_meta meta = {.mint = mint, .maxt = maxt + 1, .level = 1};
        rc = tsdb_block_writer_commit(w, &meta, err);
        w = NULL;
        if (rc == 0)
            BS_INFO("tsdb", "snapshot: wrote the head as block %s/%s: %zu series", parent,
                    meta.ulid, nseries);
    }
    if (w)
        tsdb_block_writer_abort(w);
    tsdb_series_set_free(set);
    tsdb_querier_free(q);
    free(ts);
    free(vs);
    free(out);
    return rc;
}

int tsdb_snapshot(struct tsdb *db, const char *name, bool with_head, struct bs_error *err)
{
    if (!db || !name || !name[0] || strchr(name, '/') || strcmp(name, ".") == 0 ||
        strcmp(name, "..") == 0)
        return bs_error_set(err, BS_EINVAL, "tsdb_snapshot: bad snapshot name");
    char snaps[4200], dir[4400], bdst[4500];
    snprintf(snaps, sizeof(snaps), "%s/snapshots", db->dir);
    snprintf(dir, sizeof(dir), "%s/%s", snaps, name);
    pthread_mutex_lock(&db->compact_mu);
    int rc = mkdir_p1(snaps, err);
    if (rc == 0)
        rc = mkdir_p1(dir, err);
    size_t nb = 0;
    struct tsdb_block **bl = rc == 0 ? blocks_snapshot(db, &nb) : NULL;
    for (size_t i = 0; i < nb && rc == 0; i++) {
        snprintf(bdst, sizeof(bdst), "%s/%s", dir, bl[i]->meta.ulid);
        rc = link_tree(bl[i]->dir, bdst, 1, err);
    }
    blocks_release(bl, nb);
    if (rc == 0 && with_head)
        rc = snapshot_head(db, dir, err);
    if (rc == 0) {
        tsdb_fsync_dir(dir);
        tsdb_fsync_dir(snaps);
        BS_INFO("tsdb", "snapshot %s written: %zu blocks%s", dir, nb,
                with_head ? " and the head" : "");
    }
    pthread_mutex_unlock(&db->compact_mu);
    return rc;
}
