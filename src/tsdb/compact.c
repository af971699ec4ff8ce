/* SPDX-License-Identifier: Apache-2.0
 *
 * Blocks at open, head compaction, block merges, retention and the
 * compactor thread.
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
 * Block merges (levels). After head compaction, adjacent blocks are
 * merged into larger ones with Prometheus's leveled plan (plan_merge):
 * ranges of block_range x 3^k up to the maximum block range, aligned
 * windows, the newest block left alone. A merge streams the series of its
 * sources in label order into a block writer, re-encoding each series'
 * samples as long dense chunks (recode_series, the one place where the
 * encoding is chosen). Its steps, in this order:
 *
 *   1. Write the new block (block_write.c: *.tmp, fsync, rename). Sources
 *      are untouched; a failure (ENOSPC included) removes the .tmp
 *      directory and the next pass retries.
 *   2. Replace the sources by the new block in db->blocks, in one step
 *      under blocks_mu. A querier created before keeps its references to
 *      the sources; one created after sees the new block only.
 *   3. Delete the sources (rename to .tmp, then remove).
 *
 * A crash between 1 and 3 leaves the sources next to the new block: at
 * open, a block whose compaction sources are all listed by a block with
 * more sources is superseded and deleted (drop_superseded). A source
 * block found damaged during a merge is flagged and never merged again
 * (it stays readable where it is not damaged).
 *
 * Retention deletes blocks whose end is older than the newest data (block
 * or head) minus the retention time, and, with a size limit, the oldest
 * blocks while WAL + blocks exceed it (apply_retention): each directory
 * is first renamed to <ulid>.tmp (so a crash mid-delete leaves something
 * the next open removes), then deleted, with one log line. Queriers still
 * reading the block keep its mappings until they drop their reference.
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

#include "tsdb/tombstones.h"
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

/* Are all of a's compaction sources among b's? (A block without sources
 * in its meta.json is its own source.) */
static bool sources_within(const struct tsdb_block_meta *a, const struct tsdb_block_meta *b)
{
    size_t na = a->nsources ? a->nsources : 1;
    for (size_t i = 0; i < na; i++) {
        const char *u = a->nsources ? a->sources[i] : a->ulid;
        bool found = false;
        for (size_t j = 0; j < b->nsources && !found; j++)
            found = strcmp(u, b->sources[j]) == 0;
        if (!found)
            return false;
    }
    return true;
}

/* Rename a block directory to <ulid>.tmp (so that a crash midway leaves
 * something the next open removes), then delete it. 0 or errno. */
static int delete_block_dir(const char *parent, const char *dir)
{
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", dir);
    if (rename(dir, tmp) != 0)
        return errno;
    tsdb_fsync_dir(parent);
    return tsdb_rmdir_all(tmp);
}

/* A merge that was interrupted after its block was committed but before
 * its source blocks were deleted leaves both: a block whose sources are
 * all listed by a block with more sources is superseded, and deleted
 * with one log line. */
static void drop_superseded(struct tsdb *db)
{
    if (db->nblocks < 2)
        return;
    const struct tsdb_block **by = bs_xcalloc(db->nblocks, sizeof(*by));
    for (size_t i = 0; i < db->nblocks; i++) {
        const struct tsdb_block *x = db->blocks[i];
        size_t nx = x->meta.nsources ? x->meta.nsources : 1;
        for (size_t j = 0; j < db->nblocks && !by[i]; j++) {
            const struct tsdb_block *y = db->blocks[j];
            if (j != i && y->meta.nsources > nx && sources_within(&x->meta, &y->meta))
                by[i] = y;
        }
    }
    for (size_t i = 0; i < db->nblocks; i++) {
        if (by[i])
            BS_WARN("tsdb",
                    "deleting block %s: its data is in block %s (left by an interrupted merge)",
                    db->blocks[i]->dir, by[i]->dir);
    }
    size_t k = 0;
    for (size_t i = 0; i < db->nblocks; i++) {
        struct tsdb_block *x = db->blocks[i];
        if (!by[i]) {
            db->blocks[k++] = x;
            continue;
        }
        int e = delete_block_dir(db->dir, x->dir);
        if (e)
            BS_ERROR("tsdb", "cannot delete %s: %s", x->dir, strerror(e));
        x->deleted = true;
        tsdb_block_unref(x);
    }
    db->nblocks = k;
    free(by);
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
        if (tsdb_tombstore_load_block(db, b, &berr) != 0) { /* tombstones hook */
            BS_ERROR("tsdb", "skipping block %s: %s", path, berr.msg);
            tsdb_block_unref(b);
            continue;
        }
        db->blocks = bs_xrealloc(db->blocks, (db->nblocks + 1) * sizeof(*db->blocks));
        db->blocks[db->nblocks++] = b;
    }
    closedir(d);
    drop_superseded(db);
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
static int collect_series(struct tsdb *db, struct collect *c, struct tsdb_series *s, int64_t mint,
                          int64_t maxt)
{
    size_t first = c->nchunks;
    int rc = 0;
    tsdb_series_lock(s);
    for (size_t i = 0; i < s->nchunks && rc == 0; i++) {
        const struct tsdb_hchunk *ch = &s->chunks[i];
        if (ch->mint < mint)
            continue;
        if (ch->mint >= maxt)
            break;
        const uint8_t *p;
        uint32_t len;
        uint16_t n;
        if (!tsdb_head_chunk_bytes(&db->head, ch, &p, &len, &n)) {
            rc = BS_ECORRUPT;
            break;
        }
        c->chunks = grow(c->chunks, &c->chunks_cap, c->nchunks + 1, sizeof(*c->chunks));
        c->chunks[c->nchunks++] = (struct tsdb_bw_chunk){ch->mint, ch->maxt, p, len, n, 0};
    }
    if (rc == 0 && s->open.n > 0 && s->open.mint >= mint && s->open.mint < maxt) {
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
                (struct tsdb_bw_chunk){s->open.mint, s->open.t, copy, (uint32_t)len, s->open.n, 0};
        }
    }
    tsdb_series_unlock(s);
    if (rc == 0 && c->nchunks > first) { /* tombstones hook: drop deleted samples */
        size_t k = c->nchunks - first;
        rc = tsdb_tomb_filter_head_chunks(db, s->ref, c->chunks + first, &k, &c->copies,
                                          &c->ncopies, &c->copies_cap);
        c->nchunks = first + k;
    }
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
            rc = collect_series(db, &c, s, mint, maxt);
    }
    if (rc) {
        bs_error_set(err, rc, "out of memory collecting head chunks for a block");
    } else if (c.n > 0) {
        for (size_t i = 0; i < c.n; i++)
            c.series[i].chunks = c.chunks + (uintptr_t)c.series[i].chunks;
        struct tsdb_block_meta meta = {.mint = mint, .maxt = maxt, .level = 1};
        int64_t t0 = bs_monotonic_ns();
        if (db->opts.dense_head_blocks)
            rc = tsdb_block_write_dense(db->dir, &meta, c.series, c.n, err);
        else
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
        tsdb_series_lock(s);
        int64_t sm = s->nchunks ? s->chunks[0].mint : s->open.n ? s->open.mint : INT64_MAX;
        tsdb_series_unlock(s);
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

/* ------------------------------------------------------ block merges */

void tsdb_ranges_init(struct tsdb *db)
{
    int64_t r0 = db->opts.block_range_ms > 0 ? db->opts.block_range_ms : TSDB_CHUNK_RANGE_MS;
    int64_t max = db->opts.max_block_range_ms;
    if (max <= 0)
        max = db->opts.retention_ms > 0 ? db->opts.retention_ms / 10 : TSDB_MAX_BLOCK_RANGE_MS;
    if (max > TSDB_MAX_BLOCK_RANGE_MS)
        max = TSDB_MAX_BLOCK_RANGE_MS;
    db->ranges[0] = r0;
    db->nranges = 1;
    while (db->nranges < TSDB_MAX_RANGES) {
        int64_t next;
        if (__builtin_mul_overflow(db->ranges[db->nranges - 1], 3, &next) || next > max)
            break;
        db->ranges[db->nranges++] = next;
    }
}

/* Choose blocks to merge among bl[0..n) (sorted by mint, the newest block
 * already left out: a fresh block stays as it was cut for one more block
 * range, as in Prometheus); high is the mint of the newest of them. For
 * each larger range r, from the smallest: blocks fall in aligned windows
 * [k*r, (k+1)*r) (a block not fitting its window is skipped); the first
 * window holding two or more blocks that either fill it entirely or all
 * end before the newest candidate begins (so no later block can join
 * them) is chosen. *first and *count get
 * the run; false when nothing is due. A window holding a block that a
 * merge found damaged is never chosen. */
static bool plan_merge(struct tsdb_block *const *bl, size_t n, int64_t high, const int64_t *ranges,
                       size_t nranges, size_t *first, size_t *count)
{
    for (size_t ri = 1; ri < nranges; ri++) {
        int64_t r = ranges[ri];
        size_t i = 0;
        while (i < n) {
            int64_t t0 = tsdb_range_of(bl[i]->meta.mint, r), end;
            if (__builtin_mul_overflow(t0, r, &t0) || __builtin_add_overflow(t0, r, &end) ||
                bl[i]->meta.maxt > end) {
                i++;
                continue;
            }
            size_t j = i;
            while (j < n && bl[j]->meta.maxt <= end)
                j++;
            bool damaged = false;
            for (size_t k = i; k < j; k++)
                damaged = damaged || bl[k]->no_merge;
            if (j - i > 1 && !damaged) {
                int64_t span = bl[j - 1]->meta.maxt - bl[i]->meta.mint;
                if (span == r || bl[j - 1]->meta.maxt <= high) {
                    *first = i;
                    *count = j - i;
                    return true;
                }
            }
            i = j;
        }
    }
    return false;
}

/* Longest run of samples one re-encoded chunk holds. Long chunks are what
 * makes the dense codec dense; the cap bounds what a query decodes to
 * reach one sample (the codec decodes sequentially). */
#define TSDB_MERGE_CHUNK_SAMPLES 16384

/* Shared time columns. All series of one scrape target carry the same
 * scrape timestamps, and a merge cuts every series into pieces the same
 * way, so most pieces' time columns repeat across series. Series arrive
 * in label order, so a target's series are scattered over the block: the
 * merge keeps a table of the time columns written so far (the hash of the
 * exact time sequence -> the dense chunk that holds it, and a copy of that
 * chunk's header and time section). A piece whose times are found there,
 * compared sample by sample rather than trusted to the hash, is written
 * as a TSDB_CHUNK_ENC_DENSE_ST chunk naming that chunk; otherwise it is
 * written as a plain dense chunk and remembered. Pieces shorter than
 * TSDB_MERGE_SHARED_MIN keep their own times (the reference would cost
 * about as much). The table holds at most TSDB_MERGE_TCOL_BYTES; beyond
 * that, new columns are written inline and not remembered. */
#define TSDB_MERGE_SHARED_MIN 32
#define TSDB_MERGE_TCOL_BYTES (UINT64_C(64) << 20)

struct tcol {
    uint64_t hash; /* of the times as int64 array */
    uint64_t ref;  /* the dense chunk holding them */
    uint8_t *pre;  /* owned: that chunk's header and time section */
    size_t prelen;
    size_t n;
};

struct tcol_table {
    struct tcol *v; /* open addressing, cap a power of two; pre NULL: free */
    size_t cap, n;
    uint64_t bytes; /* held by entries and their copies */
};

static void tcol_fini(struct tcol_table *t)
{
    for (size_t i = 0; i < t->cap; i++)
        free(t->v[i].pre);
    free(t->v);
    memset(t, 0, sizeof(*t));
}

/* The remembered column equal to ts[0..n) with hash h, or NULL. */
static const struct tcol *tcol_find(const struct tcol_table *t, uint64_t h, const int64_t *ts,
                                    size_t n)
{
    if (!t->cap)
        return NULL;
    for (size_t i = h & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
        const struct tcol *c = &t->v[i];
        if (!c->pre)
            return NULL;
        bool eq = false;
        if (c->hash == h && c->n == n &&
            tsdb_dense_time_equal(c->pre, c->prelen, ts, n, &eq) == 0 && eq)
            return c;
    }
}

static void tcol_put(struct tcol *v, size_t cap, struct tcol c)
{
    size_t i = c.hash & (cap - 1);
    while (v[i].pre)
        i = (i + 1) & (cap - 1);
    v[i] = c;
}

/* Remember that the dense chunk data[0..len) at ref holds times of hash h.
 * Out of memory or over the cap, the column is simply not remembered. */
static void tcol_add(struct tcol_table *t, uint64_t h, uint64_t ref, const uint8_t *data,
                     size_t len, size_t n)
{
    size_t pl;
    if (tsdb_dense_time_prefix(data, len, &pl) != 0)
        return;
    if (t->bytes + pl + 2 * sizeof(struct tcol) > TSDB_MERGE_TCOL_BYTES)
        return;
    if (2 * (t->n + 1) > t->cap) {
        size_t ncap = t->cap ? 2 * t->cap : 256;
        struct tcol *nv = calloc(ncap, sizeof(*nv));
        if (!nv)
            return;
        for (size_t i = 0; i < t->cap; i++)
            if (t->v[i].pre)
                tcol_put(nv, ncap, t->v[i]);
        free(t->v);
        t->bytes += (ncap - t->cap) * sizeof(*nv);
        t->v = nv;
        t->cap = ncap;
    }
    uint8_t *pre = malloc(pl);
    if (!pre)
        return;
    memcpy(pre, data, pl);
    tcol_put(t->v, t->cap, (struct tcol){h, ref, pre, pl, n});
    t->n++;
    t->bytes += pl;
}

/* One source block of a merge, walked in series (= label) order. */
struct msrc {
    struct tsdb_block *b;
    uint64_t *ids;
    size_t nids, pos;
    struct labels cur; /* labels of ids[pos], in arena */
    struct bs_arena arena;
};

struct merge {
    struct tsdb *db; /* for the tombstones hook */
    struct msrc *src;
    size_t nsrc;
    struct tsdb_dense_enc *enc;
    struct bs_arena keep; /* label arrays handed to the writer */
    int64_t *ts;
    uint64_t *vs;
    size_t n, cap;
    struct tsdb_chunk_meta *chks;
    size_t nchks, chks_cap;
    struct tsdb_bw_chunk *out;
    size_t nout, out_cap;
    uint64_t *out_hash; /* per piece: hash of its times, when remember */
    uint64_t *out_ref;  /* per piece: where the writer put it */
    bool *remember;     /* per piece: a new time column to remember */
    struct tcol_table tcols;
};

/* Load the labels of the source's current series (or mark it done). */
static int msrc_load(struct msrc *m)
{
    if (m->pos >= m->nids)
        return 0;
    bs_arena_reset(&m->arena);
    return tsdb_block_series(m->b, m->ids[m->pos], &m->arena, &m->cur, NULL, NULL, NULL);
}

static int grow_samples(struct merge *g, size_t need)
{
    if (need <= g->cap)
        return 0;
    size_t ncap = g->cap ? g->cap : 1024;
    while (ncap < need)
        ncap *= 2;
    int64_t *nt = realloc(g->ts, ncap * sizeof(*nt));
    if (!nt)
        return BS_ENOMEM;
    g->ts = nt;
    uint64_t *nv = realloc(g->vs, ncap * sizeof(*nv));
    if (!nv)
        return BS_ENOMEM;
    g->vs = nv;
    g->cap = ncap;
    return 0;
}

/* Append the samples of one block chunk that lie in [mint, maxt) and
 * after the last sample gathered (sources are visited in time order, so
 * an overlap keeps the earlier source's sample). */
static int gather_chunk(struct merge *g, struct tsdb_block *b, uint8_t enc, const uint8_t *p,
                        size_t len, int64_t mint, int64_t maxt, struct bs_error *err)
{
    if (enc == TSDB_CHUNK_ENC_DENSE || enc == TSDB_CHUNK_ENC_DENSE_ST) {
        uint32_t cnt;
        if (tsdb_dense_peek(p, len, &cnt, NULL) != 0)
            return bs_error_set(err, BS_ECORRUPT, "a dense chunk has a damaged header");
        int rc = grow_samples(g, g->n + cnt);
        if (rc)
            return bs_error_set(err, rc, "out of memory for %u samples", cnt);
        struct tsdb_dense_dec d;
        rc = tsdb_block_dense_init(b, &d, enc, p, len, err);
        while (rc == 0 && tsdb_dense_dec_next(&d)) {
            if (d.t < mint || d.t >= maxt || (g->n > 0 && d.t <= g->ts[g->n - 1]))
                continue;
            g->ts[g->n] = d.t;
            g->vs[g->n++] = d.v;
        }
        if (rc == 0 && (d.err || d.i != d.n))
            rc = bs_error_set(err, d.err ? d.err : BS_ECORRUPT,
                              "a dense chunk's samples are damaged (after %u of %u)", d.i, d.n);
        tsdb_dense_dec_fini(&d);
        return rc;
    }
    struct tsdb_xor_dec d;
    tsdb_xor_dec_init(&d, p, len);
    while (tsdb_xor_dec_next(&d)) {
        if (d.t < mint || d.t >= maxt || (g->n > 0 && d.t <= g->ts[g->n - 1]))
            continue;
        int rc = grow_samples(g, g->n + 1);
        if (rc)
            return rc;
        g->ts[g->n] = d.t;
        g->vs[g->n++] = d.v;
    }
    return d.err ? bs_error_set(err, BS_ECORRUPT, "an XOR chunk's samples are damaged") : 0;
}

/* Re-encode the gathered samples g->ts/vs[0..n) of one series into long
 * chunks (g->out, data malloc'd) with the dense codec. This is the one
 * place where a merge chooses the encoding of its chunks. */
static int recode_series(struct merge *g)
{
    g->nout = 0;
    size_t pieces = (g->n + TSDB_MERGE_CHUNK_SAMPLES - 1) / TSDB_MERGE_CHUNK_SAMPLES;
    if (pieces > g->out_cap) {
        struct tsdb_bw_chunk *no = realloc(g->out, pieces * sizeof(*no));
        if (!no)
            return BS_ENOMEM;
        g->out = no;
        uint64_t *nh = realloc(g->out_hash, pieces * sizeof(*nh));
        if (!nh)
            return BS_ENOMEM;
        g->out_hash = nh;
        uint64_t *nr = realloc(g->out_ref, pieces * sizeof(*nr));
        if (!nr)
            return BS_ENOMEM;
        g->out_ref = nr;
        bool *nm = realloc(g->remember, pieces * sizeof(*nm));
        if (!nm)
            return BS_ENOMEM;
        g->remember = nm;
        g->out_cap = pieces;
    }
    for (size_t k = 0; k < pieces; k++) {
        /* even pieces: no short tail chunk */
        size_t lo = g->n * k / pieces, hi = g->n * (k + 1) / pieces;
        uint8_t *data;
        size_t len, cnt = hi - lo;
        const struct tcol *tc = NULL;
        uint8_t enc = TSDB_CHUNK_ENC_DENSE;
        g->remember[k] = false;
        if (cnt >= TSDB_MERGE_SHARED_MIN) {
            g->out_hash[k] = bs_hash64(g->ts + lo, cnt * sizeof(*g->ts));
            tc = tcol_find(&g->tcols, g->out_hash[k], g->ts + lo, cnt);
            g->remember[k] = !tc;
        }
        int rc;
        if (tc) {
            enc = TSDB_CHUNK_ENC_DENSE_ST;
            rc =
                tsdb_dense_encode_shared(g->enc, g->ts + lo, g->vs + lo, cnt, tc->ref, &data, &len);
        } else {
            rc = tsdb_dense_encode(g->enc, g->ts + lo, g->vs + lo, cnt, &data, &len);
        }
        if (rc)
            return rc;
        if (len > UINT32_MAX) {
            free(data);
            return BS_ELIMIT;
        }
        g->out[g->nout++] = (struct tsdb_bw_chunk){g->ts[lo],     g->ts[hi - 1],       data,
                                                   (uint32_t)len, (uint32_t)(hi - lo), enc};
    }
    return 0;
}

static void free_out(struct merge *g)
{
    for (size_t i = 0; i < g->nout; i++)
        free((void *)g->out[i].data);
    g->nout = 0;
}

static int cmp_bw_series_labels(const void *a, const void *b)
{
    const struct tsdb_bw_series *x = a, *y = b;
    return labels_cmp(x->ls, y->ls);
}

int tsdb_block_write_dense(const char *parent, struct tsdb_block_meta *meta,
                           struct tsdb_bw_series *series, size_t n, struct bs_error *err)
{
    if (n > 1)
        qsort(series, n, sizeof(*series), cmp_bw_series_labels);
    struct merge g = {0};
    struct tsdb_block_writer *w = NULL;
    int rc = 0;
    g.enc = tsdb_dense_enc_new(0);
    if (!g.enc)
        return bs_error_set(err, BS_ENOMEM, "out of memory creating a chunk encoder");
    rc = tsdb_block_writer_new(parent, &w, err);
    for (size_t i = 0; i < n && rc == 0; i++) {
        const struct tsdb_bw_series *s = &series[i];
        struct bs_error detail = {0};
        g.n = 0;
        for (size_t c = 0; c < s->n && rc == 0; c++) {
            const struct tsdb_bw_chunk *ch = &s->chunks[c];
            if (ch->enc && ch->enc != TSDB_CHUNK_ENC_XOR)
                rc = bs_error_set(&detail, BS_EINVAL, "chunk encoding %u cannot be re-encoded here",
                                  ch->enc);
            else
                rc = gather_chunk(&g, NULL, TSDB_CHUNK_ENC_XOR, ch->data, ch->len, meta->mint,
                                  meta->maxt, &detail);
        }
        if (rc == BS_ECORRUPT) {
            /* Keep what the head has, as the XOR copy would: the damaged
             * chunks go into the block unchanged, and queries read what
             * decodes. */
            BS_WARN("tsdb",
                    "block [%lld, %lld): a series' chunks do not decode (%s); they are "
                    "copied unchanged",
                    (long long)meta->mint, (long long)meta->maxt, detail.msg);
            rc = tsdb_block_writer_add(w, s->ls, s->chunks, s->n, err);
            continue;
        }
        if (rc) {
            bs_error_set(err, rc, "re-encoding a series for block [%lld, %lld): %s",
                         (long long)meta->mint, (long long)meta->maxt,
                         detail.code ? detail.msg : bs_strerror(rc));
            break;
        }
        if (g.n == 0)
            continue;
        rc = recode_series(&g);
        if (rc) {
            bs_error_set(err, rc, "re-encoding %zu samples: %s", g.n, bs_strerror(rc));
            break;
        }
        rc = tsdb_block_writer_add_refs(w, s->ls, g.out, g.nout, g.out_ref, err);
        for (size_t k = 0; rc == 0 && k < g.nout; k++)
            if (g.remember[k])
                tcol_add(&g.tcols, g.out_hash[k], g.out_ref[k], g.out[k].data, g.out[k].len,
                         g.out[k].nsamples);
        free_out(&g);
    }
    if (rc == 0) {
        rc = tsdb_block_writer_commit(w, meta, err);
        w = NULL;
    }
    if (w)
        tsdb_block_writer_abort(w);
    free_out(&g);
    tsdb_dense_enc_free(g.enc);
    free(g.ts);
    free(g.vs);
    free(g.out);
    free(g.out_hash);
    free(g.out_ref);
    free(g.remember);
    tcol_fini(&g.tcols);
    return rc;
}

/* Write the series with labels ls: gather its samples from every source
 * positioned on it (advancing them), re-encode, hand to the writer. */
static int merge_series(struct merge *g, struct tsdb_block_writer *w, const struct labels *ls,
                        struct bs_error *err)
{
    g->n = 0;
    int rc = 0;
    struct bs_error detail = {0};
    for (size_t si = 0; si < g->nsrc && rc == 0; si++) {
        struct msrc *m = &g->src[si];
        if (m->pos >= m->nids || !labels_equal(&m->cur, ls))
            continue;
        size_t from = g->n;
        rc = tsdb_block_series(m->b, m->ids[m->pos], NULL, NULL, &g->chks, &g->nchks, &g->chks_cap);
        for (size_t c = 0; c < g->nchks && rc == 0; c++) {
            const uint8_t *p;
            size_t len;
            uint8_t enc;
            rc = tsdb_block_chunk(m->b, g->chks[c].ref, &p, &len, &enc);
            if (rc)
                bs_error_set(&detail, rc, "chunk %llu is unreadable",
                             (unsigned long long)g->chks[c].ref);
            else
                rc = gather_chunk(g, m->b, enc, p, len, m->b->meta.mint, m->b->meta.maxt, &detail);
        }
        if (rc == 0) /* tombstones hook: drop deleted samples */
            rc = tsdb_tomb_filter_samples(g->db, m->b, m->ids[m->pos], g->ts, g->vs, from, &g->n);
        if (rc) {
            if (rc == BS_ECORRUPT)
                m->b->no_merge = true;
            return bs_error_set(err, rc, "reading series %llu of block %s: %s",
                                (unsigned long long)m->ids[m->pos], m->b->dir,
                                detail.code ? detail.msg : bs_strerror(rc));
        }
        m->pos++;
        rc = msrc_load(m);
        if (rc) {
            if (rc == BS_ECORRUPT)
                m->b->no_merge = true;
            return bs_error_set(err, rc, "reading series %llu of block %s: %s",
                                (unsigned long long)m->ids[m->pos], m->b->dir, bs_strerror(rc));
        }
    }
    if (g->n == 0)
        return 0;
    /* labels handed to the writer must outlive the loop's scratch arenas;
     * the strings point into the sources' mappings, which stay mapped. */
    struct labels *keep = bs_arena_alloc(&g->keep, sizeof(*keep));
    struct label *lv = bs_arena_alloc(&g->keep, (ls->n ? ls->n : 1) * sizeof(*lv));
    if (!keep || !lv)
        return bs_error_set(err, BS_ENOMEM, "out of memory merging blocks");
    memcpy(lv, ls->v, ls->n * sizeof(*lv));
    keep->v = lv;
    keep->n = ls->n;
    rc = recode_series(g);
    if (rc == 0) {
        rc = tsdb_block_writer_add_refs(w, keep, g->out, g->nout, g->out_ref, err);
        for (size_t k = 0; rc == 0 && k < g->nout; k++)
            if (g->remember[k])
                tcol_add(&g->tcols, g->out_hash[k], g->out_ref[k], g->out[k].data, g->out[k].len,
                         g->out[k].nsamples);
    } else
        bs_error_set(err, rc, "re-encoding %zu samples: %s", g->n, bs_strerror(rc));
    free_out(g);
    return rc;
}

static int cmp_ulid(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

/* Merge bl[0..n) (sorted by mint, referenced by the caller) into one new
 * block, publish it in place of its sources and delete them. */
static int merge_blocks(struct tsdb *db, struct tsdb_block *const *bl, size_t n,
                        struct bs_error *err)
{
    struct merge g = {0};
    struct tsdb_block_writer *w = NULL;
    struct tsdb_block_meta meta = {.mint = INT64_MAX, .maxt = INT64_MIN};
    int64_t t0 = bs_monotonic_ns();
    int rc = 0;
    g.db = db;
    g.src = bs_xcalloc(n, sizeof(*g.src));
    g.nsrc = n;
    bs_arena_init(&g.keep, 64 * 1024, 0);
    for (size_t i = 0; i < n; i++) {
        g.src[i].b = bl[i];
        bs_arena_init(&g.src[i].arena, 4096, 0);
        const struct tsdb_block_meta *m = &bl[i]->meta;
        if (m->mint < meta.mint)
            meta.mint = m->mint;
        if (m->maxt > meta.maxt)
            meta.maxt = m->maxt;
        if (m->level + 1 > meta.level)
            meta.level = m->level + 1;
        size_t ns = m->nsources ? m->nsources : 1;
        meta.sources = bs_xrealloc(meta.sources, (meta.nsources + ns) * sizeof(*meta.sources));
        for (size_t k = 0; k < ns; k++)
            memcpy(meta.sources[meta.nsources++], m->nsources ? m->sources[k] : m->ulid,
                   TSDB_ULID_LEN + 1);
    }
    qsort(meta.sources, meta.nsources, sizeof(*meta.sources), cmp_ulid);
    size_t u = 0;
    for (size_t i = 0; i < meta.nsources; i++) {
        if (u == 0 || strcmp(meta.sources[u - 1], meta.sources[i]) != 0)
            memmove(meta.sources[u++], meta.sources[i], TSDB_ULID_LEN + 1);
    }
    meta.nsources = u;

    g.enc = tsdb_dense_enc_new(0);
    if (!g.enc) {
        rc = bs_error_set(err, BS_ENOMEM, "out of memory creating a chunk encoder");
        goto done;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = tsdb_block_postings_all(bl[i], &g.src[i].ids, &g.src[i].nids);
        if (rc == 0)
            rc = msrc_load(&g.src[i]);
        if (rc) {
            if (rc == BS_ECORRUPT)
                bl[i]->no_merge = true;
            bs_error_set(err, rc, "reading the series of block %s: %s", bl[i]->dir,
                         bs_strerror(rc));
        }
    }
    if (rc == 0)
        rc = tsdb_block_writer_new(db->dir, &w, err);
    while (rc == 0) {
        const struct labels *min = NULL;
        for (size_t i = 0; i < n; i++) {
            if (g.src[i].pos < g.src[i].nids && (!min || labels_cmp(&g.src[i].cur, min) < 0))
                min = &g.src[i].cur;
        }
        if (!min)
            break;
        /* min lives in a source's scratch arena, which merge_series
         * resets when it advances that source: work on a copy */
        struct label stackv[64], *lv = stackv;
        if (min->n > 64) {
            lv = malloc(min->n * sizeof(*lv));
            if (!lv) {
                rc = bs_error_set(err, BS_ENOMEM, "out of memory merging blocks");
                break;
            }
        }
        memcpy(lv, min->v, min->n * sizeof(*lv));
        struct labels ls = {lv, min->n};
        rc = merge_series(&g, w, &ls, err);
        if (lv != stackv)
            free(lv);
    }
    if (rc == 0) {
        rc = tsdb_block_writer_commit(w, &meta, err);
        w = NULL;
    }
    struct tsdb_block *nb = NULL;
    if (rc == 0) {
        char path[4200];
        snprintf(path, sizeof(path), "%s/%s", db->dir, meta.ulid);
        rc = tsdb_block_open(path, &nb, err);
        /* a committed block that does not open stays on disk; its sources
         * stay too, and the next open sorts it out */
    }
    if (rc == 0) {
        /* publish: the new block replaces its sources in one step */
        pthread_mutex_lock(&db->blocks_mu);
        size_t k = 0;
        for (size_t i = 0; i < db->nblocks; i++) {
            bool src = false;
            for (size_t j = 0; j < n && !src; j++)
                src = db->blocks[i] == bl[j];
            if (!src)
                db->blocks[k++] = db->blocks[i];
        }
        db->blocks = bs_xrealloc(db->blocks, (k + 1) * sizeof(*db->blocks));
        db->blocks[k++] = nb;
        db->nblocks = k;
        qsort(db->blocks, db->nblocks, sizeof(*db->blocks), cmp_block);
        pthread_mutex_unlock(&db->blocks_mu);
        BS_INFO("tsdb",
                "merged %zu blocks into %s [%lld, %lld), level %d: %llu series, %llu chunks, "
                "%llu samples, %llu bytes, in %.3fs",
                n, meta.ulid, (long long)meta.mint, (long long)meta.maxt, meta.level,
                (unsigned long long)meta.num_series, (unsigned long long)meta.num_chunks,
                (unsigned long long)meta.num_samples, (unsigned long long)nb->bytes,
                (double)(bs_monotonic_ns() - t0) / 1e9);
        /* the new block is durable (renamed, parent fsynced): the sources
         * can go; queriers still reading them keep their mappings */
        for (size_t i = 0; i < n; i++) {
            int e = delete_block_dir(db->dir, bl[i]->dir);
            if (e)
                BS_ERROR("tsdb", "cannot delete merged block %s: %s", bl[i]->dir, strerror(e));
            bl[i]->deleted = true;
            tsdb_block_unref(bl[i]); /* the list's reference */
        }
    }
done:
    if (w)
        tsdb_block_writer_abort(w);
    free_out(&g);
    for (size_t i = 0; i < n; i++) {
        free(g.src[i].ids);
        bs_arena_fini(&g.src[i].arena);
    }
    free(g.src);
    bs_arena_fini(&g.keep);
    tsdb_dense_enc_free(g.enc);
    free(g.ts);
    free(g.vs);
    free(g.chks);
    free(g.out);
    free(g.out_hash);
    free(g.out_ref);
    free(g.remember);
    tcol_fini(&g.tcols);
    free(meta.sources);
    return rc;
}

int tsdb_compact_blocks(struct tsdb *db, size_t *merged, struct bs_error *err)
{
    *merged = 0;
    if (db->nranges < 2)
        return 0;
    for (;;) {
        pthread_mutex_lock(&db->blocks_mu);
        size_t n = db->nblocks;
        struct tsdb_block **bl = bs_xcalloc(n ? n : 1, sizeof(*bl));
        int64_t high = INT64_MIN;
        size_t newest = 0;
        for (size_t i = 0; i < n; i++) {
            bl[i] = db->blocks[i];
            tsdb_block_ref(bl[i]);
            if (bl[i]->meta.mint >= high) {
                high = bl[i]->meta.mint;
                newest = i;
            }
        }
        pthread_mutex_unlock(&db->blocks_mu);
        /* candidates: all but the newest, and none that failed to merge */
        struct tsdb_block **cand = bs_xcalloc(n ? n : 1, sizeof(*cand));
        size_t nc = 0;
        high = INT64_MIN;
        for (size_t i = 0; i < n; i++) {
            if (i != newest) {
                cand[nc++] = bl[i];
                if (bl[i]->meta.mint > high)
                    high = bl[i]->meta.mint;
            }
        }
        size_t first = 0, count = 0;
        bool due = nc >= 2 && plan_merge(cand, nc, high, db->ranges, db->nranges, &first, &count);
        int rc = due ? merge_blocks(db, cand + first, count, err) : 0;
        for (size_t i = 0; i < n; i++)
            tsdb_block_unref(bl[i]);
        free(bl);
        free(cand);
        if (!due)
            return 0;
        if (rc) {
            __atomic_add_fetch(&db->merge_failures, 1, __ATOMIC_RELAXED);
            return rc;
        }
        __atomic_add_fetch(&db->merges, 1, __ATOMIC_RELAXED);
        (*merged)++;
    }
}
/* ------------------------------------------------------------ retention */

/* Bytes of the regular files under path (one level of subdirectories, as
 * the WAL directory has: segments and checkpoint directories). */
static uint64_t dir_bytes(const char *path, int depth)
{
    DIR *d = opendir(path);
    if (!d)
        return 0;
    uint64_t total = 0;
    struct dirent *de;
    char sub[4200];
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
        struct stat st;
        if (lstat(sub, &st) != 0)
            continue;
        if (S_ISREG(st.st_mode))
            total += (uint64_t)st.st_size;
        else if (S_ISDIR(st.st_mode) && depth > 0)
            total += dir_bytes(sub, depth - 1);
    }
    closedir(d);
    return total;
}

/* Delete blocks past the retention time (their newest possible sample is
 * older than the newest data, block or head, minus retention_ms), then,
 * with Prometheus's size rule, the oldest blocks while WAL + blocks exceed
 * retention_bytes: counting blocks newest first on top of the WAL, the
 * first block that makes the total pass the limit goes, with every older
 * one. The head cannot be dropped, so a WAL alone above the limit leaves
 * no block. Returns how many blocks were deleted. */
static size_t apply_retention(struct tsdb *db)
{
    if (db->opts.retention_ms <= 0 && db->opts.retention_bytes <= 0)
        return 0;
    uint64_t wal = db->opts.retention_bytes > 0 ? dir_bytes(db->waldir, 1) : 0;
    struct tsdb_block **gone = NULL;
    bool *by_size = NULL;
    size_t ngone = 0;
    pthread_mutex_lock(&db->blocks_mu);
    size_t n = db->nblocks;
    bool *drop = bs_xcalloc(n ? n : 1, sizeof(*drop));
    bool *drop_size = bs_xcalloc(n ? n : 1, sizeof(*drop_size));
    if (db->opts.retention_ms > 0) {
        int64_t newest = __atomic_load_n(&db->head.max_time, __ATOMIC_RELAXED);
        for (size_t i = 0; i < n; i++) {
            if (db->blocks[i]->meta.maxt - 1 > newest)
                newest = db->blocks[i]->meta.maxt - 1;
        }
        for (size_t i = 0; i < n; i++) {
            int64_t age;
            if (!__builtin_sub_overflow(newest, db->blocks[i]->meta.maxt - 1, &age) &&
                age >= db->opts.retention_ms)
                drop[i] = true;
        }
    }
    if (db->opts.retention_bytes > 0) {
        /* blocks are sorted by mint: walk from the newest */
        uint64_t total = wal;
        bool over = false;
        for (size_t i = n; i-- > 0;) {
            total += db->blocks[i]->bytes;
            if (total > (uint64_t)db->opts.retention_bytes)
                over = true;
            if (over && !drop[i])
                drop[i] = drop_size[i] = true;
        }
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        struct tsdb_block *b = db->blocks[i];
        if (drop[i]) {
            gone = bs_xrealloc(gone, (ngone + 1) * sizeof(*gone));
            by_size = bs_xrealloc(by_size, (ngone + 1) * sizeof(*by_size));
            by_size[ngone] = drop_size[i];
            gone[ngone++] = b;
        } else {
            db->blocks[k++] = b;
        }
    }
    db->nblocks = k;
    pthread_mutex_unlock(&db->blocks_mu);
    free(drop);
    free(drop_size);
    for (size_t i = 0; i < ngone; i++) {
        struct tsdb_block *b = gone[i];
        if (by_size[i]) {
            BS_INFO("tsdb",
                    "deleting block %s [%lld, %lld): the store exceeds the retention size of "
                    "%lld bytes",
                    b->dir, (long long)b->meta.mint, (long long)b->meta.maxt,
                    (long long)db->opts.retention_bytes);
            __atomic_add_fetch(&db->size_retentions, 1, __ATOMIC_RELAXED);
        } else {
            BS_INFO("tsdb", "deleting block %s [%lld, %lld): older than the retention time", b->dir,
                    (long long)b->meta.mint, (long long)b->meta.maxt);
            __atomic_add_fetch(&db->time_retentions, 1, __ATOMIC_RELAXED);
        }
        int e = delete_block_dir(db->dir, b->dir);
        if (e)
            BS_ERROR("tsdb", "cannot delete block %s: %s", b->dir, strerror(e));
        b->deleted = true;
        tsdb_block_unref(b);
    }
    free(gone);
    free(by_size);
    return ngone;
}

/* Has the WAL grown by more than max(64 MiB, a quarter of the last head
 * checkpoint's size) since that checkpoint? (ck_wal_bytes and ck_bytes change under
 * the WAL mutex.) */
static bool head_checkpoint_due(struct tsdb *db)
{
    pthread_mutex_lock(&db->wal.mu);
    uint64_t total = db->wal.total_bytes, base = db->ck_wal_bytes, last = db->ck_bytes;
    pthread_mutex_unlock(&db->wal.mu);
    uint64_t limit = last / 4 > (UINT64_C(64) << 20) ? last / 4 : UINT64_C(64) << 20;
    return total > base && total - base > limit;
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
            db->ck_wal_bytes = db->ck_wal_bytes > dropped ? db->ck_wal_bytes - dropped : 0;
            pthread_mutex_unlock(&db->wal.mu);
        }
        if (rc)
            break;
        __atomic_add_fetch(&db->compactions, 1, __ATOMIC_RELAXED);
    }
    if (rc)
        __atomic_add_fetch(&db->compaction_failures, 1, __ATOMIC_RELAXED);
    /* Retention first: it frees space that a merge may need; then merge
     * (a failed merge, e.g. BS_ENOSPC, leaves its sources and is retried by
     * the next pass); then retention again for what the merge produced. */
    apply_retention(db);
    if (rc == 0) {
        size_t merged;
        rc = tsdb_compact_blocks(db, &merged, err);
        if (merged)
            apply_retention(db);
        tsdb_tombstore_prune(db); /* tombstones hook */
    }
    /* Bound what a restart after kill -9 replays: once the WAL grew by
     * more than max(64 MiB, a quarter of the last head checkpoint),
     * snapshot the head (open chunks and series; closed chunks are in the
     * head chunk files) and drop the segments before it. Replaying a WAL
     * byte costs about twice what a checkpoint byte does (each sample is a
     * random access into the head), so a restart replays at most about
     * half as much work again as the checkpoint itself (at 1M series, the
     * segments' part of a restart is then about 1 s); amortised, this
     * writes at most four times as much again as the WAL. */
    if (rc == 0 && head_checkpoint_due(db)) {
        struct bs_error cerr = {0};
        if (tsdb_checkpoint_head(db, &cerr) != 0)
            BS_WARN("tsdb", "%s", cerr.msg);
    }
    pthread_mutex_unlock(&db->compact_mu);
    return rc;
}

/* ------------------------------------------------------------ compactor */

/* The compactor thread: a pass every interval, or sooner when a commit
 * finds the head due (tsdb_compactor_kick). After a failed pass (e.g. a
 * full disk) kicks are ignored until the interval has passed, so that a
 * store which cannot write blocks does not retry on every commit. */
static void *compactor_main(void *arg)
{
    struct tsdb *db = arg;
    int64_t interval =
        db->opts.compaction_interval_ms > 0 ? db->opts.compaction_interval_ms : 60000;
    bool backoff = false;
    pthread_mutex_lock(&db->compactor_mu);
    while (!db->compactor_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t ns = ts.tv_nsec + (interval % 1000) * 1000000;
        ts.tv_sec += (time_t)(interval / 1000 + ns / 1000000000);
        ts.tv_nsec = (long)(ns % 1000000000);
        while (!db->compactor_stop &&
               pthread_cond_timedwait(&db->compactor_cond, &db->compactor_mu, &ts) != ETIMEDOUT &&
               backoff) {
        }
        if (db->compactor_stop)
            break;
        pthread_mutex_unlock(&db->compactor_mu);
        struct bs_error err = {0};
        backoff = tsdb_compact_now(db, &err) != 0;
        if (backoff)
            BS_ERROR("tsdb", "compaction failed (retried in %lld ms): %s", (long long)interval,
                     err.msg);
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

void tsdb_compactor_kick(struct tsdb *db)
{
    if (!db->compactor_started || (!head_compactable(&db->head) && !head_checkpoint_due(db)))
        return;
    pthread_mutex_lock(&db->compactor_mu);
    pthread_cond_signal(&db->compactor_cond);
    pthread_mutex_unlock(&db->compactor_mu);
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
