/* SPDX-License-Identifier: Apache-2.0
 *
 * The store as a whole: options, open (directory, lock file, blocks, WAL
 * replay, WAL writer, compactor), close, statistics and the module's
 * self-metrics.
 *
 * Open order matters: blocks are loaded first because the newest block's
 * end is the head's min valid time, below which WAL replay skips samples
 * (they are in the block already). After replay, when blocks exist, the
 * head is truncated once to that time, which drops the series that the WAL
 * still defines but whose samples all went to blocks.
 *
 * The data directory is guarded by an exclusive flock(2) on <dir>/lock,
 * held for as long as the store is open, so two processes (or two opens in
 * one process) never share a directory. Self-metrics are registered once
 * per process; the series gauge sums over every store open at the time.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tsdb/tombstones.h"
#include "tsdb/tsdb_int.h"

void tsdb_options_default(struct tsdb_options *o)
{
    memset(o, 0, sizeof(*o));
    o->dir = "data";
    o->retention_ms = INT64_C(15) * 24 * 3600 * 1000;
    o->wal_fsync_interval_ms = 1000;
    o->wal_segment_size = 0;
    o->block_range_ms = TSDB_CHUNK_RANGE_MS;
    o->compaction_interval_ms = 60000;
    o->max_block_range_ms = 0;
    o->retention_bytes = 0;
    o->head_snapshot_on_close = true;
}

/* --------------------------------------------------------- self-metrics */

static pthread_once_t metrics_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t open_mu = PTHREAD_MUTEX_INITIALIZER;
static struct tsdb **open_dbs;
static size_t nopen_dbs;
static struct bs_metric *m_appended, *m_ooo, *m_dup;

static double head_series_fn(void *arg)
{
    (void)arg;
    uint64_t total = 0;
    pthread_mutex_lock(&open_mu);
    for (size_t i = 0; i < nopen_dbs; i++)
        total += __atomic_load_n(&open_dbs[i]->head.num_series, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&open_mu);
    return (double)total;
}

static double blocks_fn(void *arg)
{
    (void)arg;
    uint64_t total = 0;
    pthread_mutex_lock(&open_mu);
    for (size_t i = 0; i < nopen_dbs; i++) {
        pthread_mutex_lock(&open_dbs[i]->blocks_mu);
        total += open_dbs[i]->nblocks;
        pthread_mutex_unlock(&open_dbs[i]->blocks_mu);
    }
    pthread_mutex_unlock(&open_mu);
    return (double)total;
}

/* Sum of a uint64_t counter at offset off in struct tsdb (or, when head is
 * true, in struct tsdb_head) over the open stores. */
struct counter_ref {
    size_t off;
    bool head;
};

static double counter_fn(void *arg)
{
    const struct counter_ref *c = arg;
    uint64_t total = 0;
    pthread_mutex_lock(&open_mu);
    for (size_t i = 0; i < nopen_dbs; i++) {
        char *base = c->head ? (char *)&open_dbs[i]->head : (char *)open_dbs[i];
        total += __atomic_load_n((uint64_t *)(void *)(base + c->off), __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&open_mu);
    return (double)total;
}

static const struct counter_ref c_compactions = {offsetof(struct tsdb, compactions), false};
static const struct counter_ref c_compaction_failures = {offsetof(struct tsdb, compaction_failures),
                                                         false};
static const struct counter_ref c_oob = {offsetof(struct tsdb_head, oob_samples), true};
static const struct counter_ref c_merges = {offsetof(struct tsdb, merges), false};
static const struct counter_ref c_merge_failures = {offsetof(struct tsdb, merge_failures), false};
static const struct counter_ref c_time_ret = {offsetof(struct tsdb, time_retentions), false};
static const struct counter_ref c_size_ret = {offsetof(struct tsdb, size_retentions), false};
static const struct counter_ref c_wal_fail = {
    offsetof(struct tsdb, wal) + offsetof(struct tsdb_wal, write_failures), false};

static double blocks_bytes_fn(void *arg)
{
    (void)arg;
    uint64_t total = 0;
    pthread_mutex_lock(&open_mu);
    for (size_t i = 0; i < nopen_dbs; i++) {
        pthread_mutex_lock(&open_dbs[i]->blocks_mu);
        for (size_t j = 0; j < open_dbs[i]->nblocks; j++)
            total += open_dbs[i]->blocks[j]->bytes;
        pthread_mutex_unlock(&open_dbs[i]->blocks_mu);
    }
    pthread_mutex_unlock(&open_mu);
    return (double)total;
}

static void metrics_register(void)
{
    bs_metric_register_func(BS_METRIC_GAUGE, "bongsu_tsdb_blocks_loaded",
                            "Number of currently loaded data blocks.", NULL, blocks_fn, NULL);
    bs_metric_register_func(BS_METRIC_COUNTER, "bongsu_tsdb_compactions_total",
                            "Total number of head compactions that wrote a block or truncated "
                            "the head.",
                            NULL, counter_fn, (void *)&c_compactions);
    bs_metric_register_func(BS_METRIC_COUNTER, "bongsu_tsdb_compactions_failed_total",
                            "Total number of compaction passes that failed.", NULL, counter_fn,
                            (void *)&c_compaction_failures);
    bs_metric_register_func(BS_METRIC_COUNTER, "bongsu_tsdb_out_of_bound_samples_total",
                            "Total number of samples rejected as older than the head accepts.",
                            NULL, counter_fn, (void *)&c_oob);
    bs_metric_register_func(BS_METRIC_COUNTER, "bongsu_tsdb_block_merges_total",
                            "Total number of merges of blocks into a larger block.", NULL,
                            counter_fn, (void *)&c_merges);
    bs_metric_register_func(BS_METRIC_COUNTER, "bongsu_tsdb_block_merges_failed_total",
                            "Total number of block merges that failed (retried later).", NULL,
                            counter_fn, (void *)&c_merge_failures);
    bs_metric_register_func(BS_METRIC_COUNTER, "bongsu_tsdb_time_retentions_total",
                            "Number of blocks deleted because they were past the retention time.",
                            NULL, counter_fn, (void *)&c_time_ret);
    bs_metric_register_func(BS_METRIC_COUNTER, "bongsu_tsdb_size_retentions_total",
                            "Number of blocks deleted because the store exceeded the retention "
                            "size.",
                            NULL, counter_fn, (void *)&c_size_ret);
    bs_metric_register_func(BS_METRIC_COUNTER, "bongsu_tsdb_wal_writes_failed_total",
                            "Total number of commits whose WAL write failed (e.g. disk full); "
                            "nothing of such a batch is stored.",
                            NULL, counter_fn, (void *)&c_wal_fail);
    bs_metric_register_func(BS_METRIC_GAUGE, "bongsu_tsdb_storage_blocks_bytes",
                            "The number of bytes used by the loaded blocks.", NULL, blocks_bytes_fn,
                            NULL);
    bs_metric_register_func(BS_METRIC_GAUGE, "bongsu_tsdb_head_series",
                            "Number of series in the head block.", NULL, head_series_fn, NULL);
    m_appended = bs_metric_register(BS_METRIC_COUNTER, "bongsu_tsdb_head_samples_appended_total",
                                    "Total number of appended samples.", NULL);
    m_ooo = bs_metric_register(BS_METRIC_COUNTER, "bongsu_tsdb_out_of_order_samples_total",
                               "Total number of out of order samples rejected.", NULL);
    m_dup = bs_metric_register(BS_METRIC_COUNTER, "bongsu_tsdb_duplicate_samples_total",
                               "Total number of samples rejected for a duplicate timestamp.", NULL);
}

void tsdb_metrics_add(uint64_t appended, uint64_t out_of_order, uint64_t duplicate)
{
    if (appended && m_appended)
        bs_metric_add(m_appended, (double)appended);
    if (out_of_order && m_ooo)
        bs_metric_add(m_ooo, (double)out_of_order);
    if (duplicate && m_dup)
        bs_metric_add(m_dup, (double)duplicate);
}

static void open_list_add(struct tsdb *db)
{
    pthread_mutex_lock(&open_mu);
    open_dbs = bs_xrealloc(open_dbs, (nopen_dbs + 1) * sizeof(*open_dbs));
    open_dbs[nopen_dbs++] = db;
    pthread_mutex_unlock(&open_mu);
}

static void open_list_del(struct tsdb *db)
{
    pthread_mutex_lock(&open_mu);
    for (size_t i = 0; i < nopen_dbs; i++) {
        if (open_dbs[i] == db) {
            open_dbs[i] = open_dbs[--nopen_dbs];
            break;
        }
    }
    if (nopen_dbs == 0) {
        free(open_dbs);
        open_dbs = NULL;
    }
    pthread_mutex_unlock(&open_mu);
}

/* ------------------------------------------------------------ open/close */

/* mkdir -p; returns 0 or errno. */
static int mkdir_all(const char *path)
{
    char *p = bs_xstrdup(path);
    int rc = 0;
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == '\0') {
            char c = *s;
            *s = '\0';
            if (mkdir(p, 0755) != 0 && errno != EEXIST) {
                rc = errno;
                break;
            }
            *s = c;
            if (c == '\0')
                break;
        }
    }
    free(p);
    if (rc == 0) {
        struct stat st;
        if (stat(path, &st) != 0)
            rc = errno;
        else if (!S_ISDIR(st.st_mode))
            rc = ENOTDIR;
    }
    return rc;
}

int tsdb_open(struct tsdb **out, const struct tsdb_options *o, struct bs_error *err)
{
    if (!out || !o || !o->dir || !o->dir[0])
        return bs_error_set(err, BS_EINVAL, "tsdb_open: no data directory given");
    *out = NULL;
    pthread_once(&metrics_once, metrics_register);

    struct tsdb *db = calloc(1, sizeof(*db));
    if (!db)
        return bs_error_set(err, BS_ENOMEM, "out of memory opening %s", o->dir);
    db->lock_fd = -1;
    db->wal.fd = -1;
    db->opts = *o;
    db->dir = bs_xstrdup(o->dir);
    db->opts.dir = db->dir;
    if (db->opts.block_range_ms <= 0)
        db->opts.block_range_ms = TSDB_CHUNK_RANGE_MS;
    tsdb_ranges_init(db);
    pthread_mutex_init(&db->blocks_mu, NULL);
    pthread_rwlockattr_t ra;
    pthread_rwlockattr_init(&ra);
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&db->trunc_lock, &ra);
    pthread_rwlockattr_destroy(&ra);
    pthread_mutex_init(&db->compact_mu, NULL);
    pthread_mutex_init(&db->compactor_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&db->compactor_cond, &ca);
    pthread_condattr_destroy(&ca);
    bool head_ok = false, wal_ok = false;
    int rc;
    char waldir[4096], lockpath[4096];
    if ((size_t)snprintf(waldir, sizeof(waldir), "%s/wal", db->dir) >= sizeof(waldir) ||
        (size_t)snprintf(lockpath, sizeof(lockpath), "%s/lock", db->dir) >= sizeof(lockpath)) {
        rc = bs_error_set(err, BS_EINVAL, "data directory path is too long: %s", db->dir);
        goto fail;
    }

    int e = mkdir_all(db->dir);
    if (e == 0)
        e = mkdir_all(waldir);
    if (e) {
        rc = bs_error_set(err, BS_EIO, "cannot create data directory %s: %s", db->dir, strerror(e));
        goto fail;
    }
    db->lock_fd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (db->lock_fd < 0) {
        e = errno;
        rc = bs_error_set(err, BS_EIO, "cannot open lock file %s: %s", lockpath, strerror(e));
        goto fail;
    }
    if (flock(db->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        e = errno;
        if (e == EWOULDBLOCK)
            rc = bs_error_set(err, BS_EIO,
                              "data directory %s is in use by another process (lock file %s "
                              "is held); stop it or choose another --storage.tsdb.path",
                              db->dir, lockpath);
        else
            rc = bs_error_set(err, BS_EIO, "cannot lock %s: %s", lockpath, strerror(e));
        goto fail;
    }

    rc = tsdb_head_init(&db->head);
    if (rc) {
        bs_error_set(err, rc, "out of memory creating the head for %s", db->dir);
        goto fail;
    }
    head_ok = true;
    db->head.chunk_range = db->opts.block_range_ms;
    db->waldir = bs_xstrdup(waldir);
    if (tsdb_tombstore_init(db) != 0) { /* tombstones hook */
        rc = bs_error_set(err, BS_ENOMEM, "out of memory opening %s", db->dir);
        goto fail;
    }
    rc = tsdb_blocks_load(db, err);
    if (rc)
        goto fail;
    rc = tsdb_hchunks_open(db->dir, &db->head.hc, err);
    if (rc)
        goto fail;
    uint32_t next_seg = 0;
    rc = tsdb_wal_replay(db, waldir, &next_seg, err);
    if (rc)
        goto fail;
    rc = tsdb_wal_open(&db->wal, waldir, o->wal_segment_size, o->wal_fsync_interval_ms, next_seg,
                       err);
    if (rc)
        goto fail;
    wal_ok = true;
    if (db->nblocks > 0) {
        size_t removed = 0;
        rc = tsdb_head_truncate(db, db->head.min_valid, NULL, &removed, err);
        if (rc)
            goto fail;
        if (removed)
            BS_INFO("tsdb", "dropped %zu series from the WAL whose samples are all in blocks",
                    removed);
    }
    rc = tsdb_compactor_start(db, err);
    if (rc)
        goto fail;
    open_list_add(db);
    *out = db;
    return 0;
fail:
    if (wal_ok)
        tsdb_wal_close(&db->wal);
    tsdb_blocks_close(db);
    tsdb_tombstore_fini(db); /* tombstones hook */
    if (head_ok)
        tsdb_head_fini(&db->head);
    if (db->lock_fd >= 0)
        close(db->lock_fd);
    pthread_cond_destroy(&db->compactor_cond);
    pthread_mutex_destroy(&db->compactor_mu);
    pthread_mutex_destroy(&db->compact_mu);
    pthread_rwlock_destroy(&db->trunc_lock);
    pthread_mutex_destroy(&db->blocks_mu);
    free(db->waldir);
    free(db->dir);
    free(db);
    return rc;
}

void tsdb_close(struct tsdb *db)
{
    if (!db)
        return;
    open_list_del(db);
    tsdb_compactor_stop(db);
    /* Shutdown snapshot: the next open reads the head checkpoint and the
     * head chunk files instead of replaying the WAL. */
    if (db->wal.fd >= 0 && db->opts.head_snapshot_on_close) {
        struct bs_error err = {0};
        pthread_mutex_lock(&db->compact_mu);
        if (tsdb_checkpoint_head(db, &err) != 0)
            BS_WARN("tsdb", "no head snapshot at shutdown, the next start replays the WAL: %s",
                    err.msg);
        pthread_mutex_unlock(&db->compact_mu);
    }
    tsdb_wal_close(&db->wal);
    tsdb_blocks_close(db);
    tsdb_tombstore_fini(db); /* tombstones hook */
    tsdb_head_fini(&db->head);
    if (db->lock_fd >= 0)
        close(db->lock_fd);
    pthread_cond_destroy(&db->compactor_cond);
    pthread_mutex_destroy(&db->compactor_mu);
    pthread_mutex_destroy(&db->compact_mu);
    pthread_rwlock_destroy(&db->trunc_lock);
    pthread_mutex_destroy(&db->blocks_mu);
    free(db->waldir);
    free(db->dir);
    free(db);
}

void tsdb_stats(struct tsdb *db, struct tsdb_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->min_time = INT64_MAX;
    out->max_time = INT64_MIN;
    if (!db)
        return;
    struct tsdb_head *h = &db->head;
    out->num_series = __atomic_load_n(&h->num_series, __ATOMIC_RELAXED);
    out->num_samples_appended = __atomic_load_n(&h->samples_appended, __ATOMIC_RELAXED);
    out->num_chunks = __atomic_load_n(&h->num_chunks, __ATOMIC_RELAXED);
    out->min_time = __atomic_load_n(&h->min_time, __ATOMIC_RELAXED);
    out->max_time = __atomic_load_n(&h->max_time, __ATOMIC_RELAXED);
    out->out_of_order_samples = __atomic_load_n(&h->ooo_samples, __ATOMIC_RELAXED);
    out->duplicate_samples = __atomic_load_n(&h->dup_samples, __ATOMIC_RELAXED);
    out->out_of_bounds_samples = __atomic_load_n(&h->oob_samples, __ATOMIC_RELAXED);
    out->compactions = __atomic_load_n(&db->compactions, __ATOMIC_RELAXED);
    out->compaction_failures = __atomic_load_n(&db->compaction_failures, __ATOMIC_RELAXED);
    out->merges = __atomic_load_n(&db->merges, __ATOMIC_RELAXED);
    out->merge_failures = __atomic_load_n(&db->merge_failures, __ATOMIC_RELAXED);
    out->time_retentions = __atomic_load_n(&db->time_retentions, __ATOMIC_RELAXED);
    out->size_retentions = __atomic_load_n(&db->size_retentions, __ATOMIC_RELAXED);
    pthread_mutex_lock(&db->wal.mu);
    out->wal_bytes = db->wal.total_bytes;
    out->wal_write_failures = db->wal.write_failures;
    out->min_valid_time = __atomic_load_n(&h->min_valid, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&db->wal.mu);
    pthread_mutex_lock(&db->blocks_mu);
    out->num_blocks = db->nblocks;
    for (size_t i = 0; i < db->nblocks; i++)
        out->blocks_bytes += db->blocks[i]->bytes;
    pthread_mutex_unlock(&db->blocks_mu);
}
