/* SPDX-License-Identifier: Apache-2.0
 *
 * Blocks at open, head compaction, retention and the compactor thread.
 *
 * Head compaction. When the head spans more than 1.5 block ranges, its
 * oldest range [mint, mint + range) (aligned to multiples of the range,
 * which is also the head's chunk range, so no chunk crosses the boundary)
 * is written as a block. The steps, and why they are in this order:
 *
 *   1. Raise head.min_valid to the range's end, under the WAL mutex. From
 *      then on no sample older than that can enter the head: add() rejects
 *      it, and a commit whose samples were staged earlier drops them
 *      (head_append.c). Appenders already refuse samples older than
 *      max_time - range/2, which is past the range's end whenever the head
 *      is compactable, so this only closes the race with batches staged
 *      before the head grew.
 *   2. Copy the range's chunks out of the head (closed chunks by pointer,
 *      the open chunk by copy, under the series lock) and write the block
 *      (block_write.c: atomic rename).
 *   3. Publish the block: add it to db->blocks under blocks_mu. A querier
 *      takes the block list under the same mutex and reads the head only
 *      from the newest listed block's end, so between 3 and 4 the range is
 *      read from the block, never twice.
 *   4. Truncate the head to the range's end and cut the WAL (head_gc.c).
 *   5. Checkpoint the WAL segments before the cut and delete them
 *      (checkpoint.c).
 *
 * A crash after 2 leaves the block and the whole WAL: at open, head
 * min_valid is the newest block's end and replay skips older samples. A
 * crash after 4 or during 5 leaves a complete or a discarded checkpoint;
 * either way replay reconstructs the same head.
 *
 * Retention deletes blocks whose end is older than the newest data (block
 * or head) minus the retention time: each directory is first renamed to
 * <ulid>.tmp (so a crash mid-delete leaves something the next open
 * removes), then deleted, with one log line. Queriers still reading the
 * block keep its mappings until they drop their reference.
 *
 * At open, *.tmp directories (interrupted block writes or deletions) are
 * deleted with one log line each. A directory named like a block but
 * without meta.json cannot come from our writer (meta.json is written
 * before the rename), so it is a partial copy or a damaged block; it is
 * deleted too, with one log line. A block whose meta.json exists but does
 * not open is left on disk untouched and skipped with an error line.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tsdb/tsdb_int.h"

/* --------------------------------------------------------------- blocks */

static int cmp_block(const void *a, const void *b)
{
    const struct tsdb_block *x = *(const struct tsdb_block *const *)a;
    const struct tsdb_block *y = *(const struct tsdb_block *const *)b;
    return x->meta.mint < y->meta.mint ? -1 : x->meta.mint > y->meta.mint;
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

int tsdb_blocks_load(struct tsdb *db, struct bs_error *err)
{
    DIR *d = opendir(db->dir);
    if (!d) {
        int e = errno;
        return bs_error_set(err, BS_EIO, "cannot read data directory %s: %s", db->dir, strerror(e));
    }
    struct dirent *de;
    char path[4200], meta[4300];
    while ((de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        if (name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", db->dir, name);
        if (ends_with(name, ".tmp") && strlen(name) == TSDB_ULID_LEN + 4 && is_dir(path)) {
            BS_WARN("tsdb", "deleting %s, left by an interrupted block write or deletion", path);
            int e = tsdb_rmdir_all(path);
            if (e)
                BS_ERROR("tsdb", "cannot delete %s: %s", path, strerror(e));
            continue;
        }
        if (!tsdb_ulid_valid(name) || !is_dir(path))
            continue;
        snprintf(meta, sizeof(meta), "%s/meta.json", path);
        if (access(meta, F_OK) != 0) {
            BS_WARN("tsdb", "deleting partial block %s: it has no meta.json", path);
            int e = tsdb_rmdir_all(path);
            if (e)
                BS_ERROR("tsdb", "cannot delete %s: %s", path, strerror(e));
            continue;
        }
        struct tsdb_block *b;
        struct bs_error berr = {0};
        if (tsdb_block_open(path, &b, &berr) != 0) {
            BS_ERROR("tsdb", "skipping unreadable block %s: %s", path, berr.msg);
            continue;
        }
        db->blocks = bs_xrealloc(db->blocks, (db->nblocks + 1) * sizeof(*db->blocks));
        db->blocks[db->nblocks++] = b;
    }
    closedir(d);
    if (db->nblocks > 1)
        qsort(db->blocks, db->nblocks, sizeof(*db->blocks), cmp_block);
    int64_t minv = INT64_MIN;
    for (size_t i = 0; i < db->nblocks; i++) {
        const struct tsdb_block *b = db->blocks[i];
        if (i > 0 && b->meta.mint < db->blocks[i - 1]->meta.maxt)
            BS_WARN("tsdb",
                    "block %s overlaps block %s in time; queries return each "
                    "timestamp once",
                    b->dir, db->blocks[i - 1]->dir);
        if (b->meta.maxt > minv)
            minv = b->meta.maxt;
    }
    db->head.min_valid = minv;
    if (db->nblocks)
        BS_INFO("tsdb", "loaded %zu blocks; the head starts at %lld", db->nblocks, (long long)minv);
    return 0;
}

void tsdb_blocks_close(struct tsdb *db)
{
    for (size_t i = 0; i < db->nblocks; i++)
        tsdb_block_unref(db->blocks[i]);
    free(db->blocks);
    db->blocks = NULL;
    db->nblocks = 0;
}

/* -------------------------------------------------------- head -> block */

struct collect {
    struct tsdb_bw_series *series;
    size_t n, cap;
    struct tsdb_bw_chunk *chunks;
    size_t nchunks, chunks_cap;
    uint8_t **copies;
    size_t ncopies, copies_cap;
};

static void *grow(void *p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return p;
    size_t ncap = *cap ? *cap : 64;
    while (ncap < need)
        ncap *= 2;
    *cap = ncap;
    return bs_xrealloc(p, ncap * elem);
}

/* Gather the chunks of s starting in [mint, maxt). The caller is an epoch
 * reader, so closed chunks stay allocated even if truncated meanwhile. */
static int collect_series(struct collect *c, struct tsdb_series *s, int64_t mint, int64_t maxt)
{
    size_t first = c->nchunks;
    int rc = 0;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->nchunks; i++) {
        const struct tsdb_chunk *ch = s->chunks[i];
        if (ch->mint < mint)
            continue;
        if (ch->mint >= maxt)
            break;
        c->chunks = grow(c->chunks, &c->chunks_cap, c->nchunks + 1, sizeof(*c->chunks));
        c->chunks[c->nchunks++] =
            (struct tsdb_bw_chunk){ch->mint, ch->maxt, ch->data, ch->len, ch->n};
    }
    if (s->open.n > 0 && s->open.mint >= mint && s->open.mint < maxt) {
        size_t len = tsdb_xor_enc_bytes(&s->open);
        uint8_t *copy = malloc(len);
        if (!copy) {
            rc = BS_ENOMEM;
        } else {
            memcpy(copy, s->open.buf, len);
            c->copies = grow(c->copies, &c->copies_cap, c->ncopies + 1, sizeof(*c->copies));
            c->copies[c->ncopies++] = copy;
            c->chunks = grow(c->chunks, &c->chunks_cap, c->nchunks + 1, sizeof(*c->chunks));
            c->chunks[c->nchunks++] =
                (struct tsdb_bw_chunk){s->open.mint, s->open.t, copy, (uint32_t)len, s->open.n};
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (rc == 0 && c->nchunks > first) {
        c->series = grow(c->series, &c->cap, c->n + 1, sizeof(*c->series));
        /* chunks pointer fixed up once the array stops moving */
        c->series[c->n++] =
            (struct tsdb_bw_series){&s->lset, (void *)(uintptr_t)first, c->nchunks - first};
    }
    return rc;
}

int tsdb_compact_head_range(struct tsdb *db, int64_t mint, int64_t maxt, bool *wrote,
                            struct bs_error *err)
{
    struct tsdb_head *h = &db->head;
    *wrote = false;
    uint64_t epoch = tsdb_reclaim_enter(&h->reclaim);
    struct collect c = {0};
    int rc = 0;
    pthread_rwlock_rdlock(&h->postings.lock);
    tsdb_ref maxref = h->next_ref;
    pthread_rwlock_unlock(&h->postings.lock);
    for (tsdb_ref ref = 1; ref < maxref && rc == 0; ref++) {
        struct tsdb_series *s = tsdb_head_series_by_ref(h, ref);
        if (s && s->ref == ref)
            rc = collect_series(&c, s, mint, maxt);
    }
    if (rc) {
        bs_error_set(err, rc, "out of memory collecting head chunks for a block");
    } else if (c.n > 0) {
        for (size_t i = 0; i < c.n; i++)
            c.series[i].chunks = c.chunks + (uintptr_t)c.series[i].chunks;
        struct tsdb_block_meta meta = {.mint = mint, .maxt = maxt, .level = 1};
        int64_t t0 = bs_monotonic_ns();
        rc = tsdb_block_write(db->dir, &meta, c.series, c.n, err);
        if (rc == 0) {
            char path[4200];
            snprintf(path, sizeof(path), "%s/%s", db->dir, meta.ulid);
            struct tsdb_block *b;
            rc = tsdb_block_open(path, &b, err);
            if (rc == 0) {
                pthread_mutex_lock(&db->blocks_mu);
                db->blocks = bs_xrealloc(db->blocks, (db->nblocks + 1) * sizeof(*db->blocks));
                db->blocks[db->nblocks++] = b;
                qsort(db->blocks, db->nblocks, sizeof(*db->blocks), cmp_block);
                pthread_mutex_unlock(&db->blocks_mu);
                *wrote = true;
                BS_INFO("tsdb",
                        "wrote block %s [%lld, %lld): %llu series, %llu chunks, %llu samples, "
                        "%llu bytes, in %.3fs",
                        meta.ulid, (long long)mint, (long long)maxt,
                        (unsigned long long)meta.num_series, (unsigned long long)meta.num_chunks,
                        (unsigned long long)meta.num_samples, (unsigned long long)b->bytes,
                        (double)(bs_monotonic_ns() - t0) / 1e9);
            }
        }
    }
    for (size_t i = 0; i < c.ncopies; i++)
        free(c.copies[i]);
    free(c.copies);
    free(c.chunks);
    free(c.series);
    tsdb_reclaim_exit(&h->reclaim, epoch);
    return rc;
}

/* The oldest sample time in the head (scanning every series), or
 * INT64_MAX when it is empty. */
static int64_t head_true_min(struct tsdb_head *h)
{
    pthread_rwlock_rdlock(&h->postings.lock);
    tsdb_ref maxref = h->next_ref;
    pthread_rwlock_unlock(&h->postings.lock);
    int64_t m = INT64_MAX;
    for (tsdb_ref ref = 1; ref < maxref; ref++) {
        struct tsdb_series *s = tsdb_head_series_by_ref(h, ref);
        if (!s || s->ref != ref)
            continue;
        pthread_mutex_lock(&s->mu);
        int64_t sm = s->nchunks ? s->chunks[0]->mint : s->open.n ? s->open.mint : INT64_MAX;
        pthread_mutex_unlock(&s->mu);
        if (sm < m)
            m = sm;
    }
    return m;
}

static bool head_compactable(struct tsdb_head *h)
{
    int64_t lo = __atomic_load_n(&h->min_time, __ATOMIC_RELAXED);
    int64_t hi = __atomic_load_n(&h->max_time, __ATOMIC_RELAXED);
    if (lo == INT64_MAX || hi == INT64_MIN || hi < lo)
        return false;
    int64_t span;
    if (__builtin_sub_overflow(hi, lo, &span))
        return true;
    return span > h->chunk_range / 2 * 3;
}

/* Delete blocks past retention; returns how many. */
static size_t apply_retention(struct tsdb *db)
{
    if (db->opts.retention_ms <= 0)
        return 0;
    struct tsdb_block **gone = NULL;
    size_t ngone = 0;
    pthread_mutex_lock(&db->blocks_mu);
    int64_t newest = __atomic_load_n(&db->head.max_time, __ATOMIC_RELAXED);
    for (size_t i = 0; i < db->nblocks; i++) {
        if (db->blocks[i]->meta.maxt - 1 > newest)
            newest = db->blocks[i]->meta.maxt - 1;
    }
    size_t k = 0;
    for (size_t i = 0; i < db->nblocks; i++) {
        struct tsdb_block *b = db->blocks[i];
        int64_t age;
        if (!__builtin_sub_overflow(newest, b->meta.maxt - 1, &age) &&
            age >= db->opts.retention_ms) {
            gone = bs_xrealloc(gone, (ngone + 1) * sizeof(*gone));
            gone[ngone++] = b;
        } else {
            db->blocks[k++] = b;
        }
    }
    db->nblocks = k;
    pthread_mutex_unlock(&db->blocks_mu);
    for (size_t i = 0; i < ngone; i++) {
        struct tsdb_block *b = gone[i];
        char tmp[4200];
        snprintf(tmp, sizeof(tmp), "%s.tmp", b->dir);
        BS_INFO("tsdb", "deleting block %s [%lld, %lld): older than the retention time", b->dir,
                (long long)b->meta.mint, (long long)b->meta.maxt);
        int e = 0;
        if (rename(b->dir, tmp) != 0)
            e = errno;
        if (e == 0) {
            tsdb_fsync_dir(db->dir);
            e = tsdb_rmdir_all(tmp);
        }
        if (e)
            BS_ERROR("tsdb", "cannot delete block %s: %s", b->dir, strerror(e));
        b->deleted = true;
        tsdb_block_unref(b);
    }
    free(gone);
    return ngone;
}

int tsdb_compact_now(struct tsdb *db, struct bs_error *err)
{
    if (!db)
        return bs_error_set(err, BS_EINVAL, "tsdb_compact_now: no store");
    struct tsdb_head *h = &db->head;
    int rc = 0;
    pthread_mutex_lock(&db->compact_mu);
    int64_t prev_maxt = INT64_MIN;
    while (head_compactable(h)) {
        int64_t lo = head_true_min(h);
        if (lo == INT64_MAX)
            break;
        int64_t range = h->chunk_range, mint, maxt;
        if (__builtin_mul_overflow(tsdb_range_of(lo, range), range, &mint) ||
            __builtin_add_overflow(mint, range, &maxt) || maxt <= prev_maxt)
            break; /* times at the ends of the int64 range are never compacted */
        prev_maxt = maxt;
        pthread_mutex_lock(&db->wal.mu);
        if (maxt > h->min_valid)
            __atomic_store_n(&h->min_valid, maxt, __ATOMIC_RELEASE);
        pthread_mutex_unlock(&db->wal.mu);
        bool wrote;
        rc = tsdb_compact_head_range(db, mint, maxt, &wrote, err);
        if (rc) {
            bs_error_prefix(err, "writing block [%lld, %lld)", (long long)mint, (long long)maxt);
            break;
        }
        uint32_t cut;
        size_t removed;
        rc = tsdb_head_truncate(db, maxt, &cut, &removed, err);
        if (rc)
            break;
        BS_DEBUG("tsdb", "head truncated at %lld: %zu series removed", (long long)maxt, removed);
        uint64_t dropped = 0;
        rc = tsdb_checkpoint_write(db, db->waldir, cut, maxt, &dropped, err);
        if (dropped) {
            pthread_mutex_lock(&db->wal.mu);
            db->wal.total_bytes = db->wal.total_bytes > dropped ? db->wal.total_bytes - dropped : 0;
            pthread_mutex_unlock(&db->wal.mu);
        }
        if (rc)
            break;
        __atomic_add_fetch(&db->compactions, 1, __ATOMIC_RELAXED);
    }
    apply_retention(db);
    pthread_mutex_unlock(&db->compact_mu);
    if (rc)
        __atomic_add_fetch(&db->compaction_failures, 1, __ATOMIC_RELAXED);
    return rc;
}

/* ------------------------------------------------------------ compactor */

static void *compactor_main(void *arg)
{
    struct tsdb *db = arg;
    int64_t interval =
        db->opts.compaction_interval_ms > 0 ? db->opts.compaction_interval_ms : 60000;
    pthread_mutex_lock(&db->compactor_mu);
    while (!db->compactor_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t ns = ts.tv_nsec + (interval % 1000) * 1000000;
        ts.tv_sec += (time_t)(interval / 1000 + ns / 1000000000);
        ts.tv_nsec = (long)(ns % 1000000000);
        pthread_cond_timedwait(&db->compactor_cond, &db->compactor_mu, &ts);
        if (db->compactor_stop)
            break;
        pthread_mutex_unlock(&db->compactor_mu);
        struct bs_error err = {0};
        if (tsdb_compact_now(db, &err) != 0)
            BS_ERROR("tsdb", "compaction failed: %s", err.msg);
        pthread_mutex_lock(&db->compactor_mu);
    }
    pthread_mutex_unlock(&db->compactor_mu);
    return NULL;
}

int tsdb_compactor_start(struct tsdb *db, struct bs_error *err)
{
    if (db->opts.compaction_interval_ms < 0)
        return 0;
    if (pthread_create(&db->compactor, NULL, compactor_main, db) != 0)
        return bs_error_set(err, BS_ENOMEM, "cannot start the compactor thread");
    db->compactor_started = true;
    return 0;
}

void tsdb_compactor_stop(struct tsdb *db)
{
    if (!db->compactor_started)
        return;
    pthread_mutex_lock(&db->compactor_mu);
    db->compactor_stop = true;
    pthread_cond_signal(&db->compactor_cond);
    pthread_mutex_unlock(&db->compactor_mu);
    pthread_join(db->compactor, NULL);
    db->compactor_started = false;
}
