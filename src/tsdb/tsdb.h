/* SPDX-License-Identifier: Apache-2.0
 *
 * tsdb: the time-series store. One appender that every ingest path uses
 * (scrape, push, remote write, rules, IPMI), one querier that every reader
 * uses (PromQL, the series/labels API, remote read).
 *
 * An in-memory head (series by label-set hash, interned symbols, Gorilla
 * XOR chunks, postings per label pair) with a write-ahead log replayed on
 * open; a background compactor cuts the head's oldest range into an
 * immutable on-disk block (docs/format/index.md), truncates the head and
 * checkpoints the WAL, merges adjacent blocks into larger ones, and
 * deletes blocks past the retention time or size. Queriers merge blocks
 * and head transparently. Later: head chunks on disk, behind the same
 * interface.
 *
 * Durability contract: tsdb_appender_commit() writes the batch to the WAL
 * (write(2)) before any sample becomes visible to queriers. A sample that a
 * querier could see therefore survives kill -9; it survives power loss once
 * the WAL was fsynced (every commit when wal_fsync_interval_ms is 0,
 * otherwise at most that many milliseconds later).
 *
 * Full disk: a commit whose WAL write fails returns BS_ENOSPC (counted in
 * tsdb_stats.wal_write_failures and bongsu_tsdb_wal_writes_failed_total),
 * nothing of its batch is visible or left in the WAL, queries keep
 * working, and commits succeed again as soon as space is available.
 *
 * Thread safety: a struct tsdb is shared by all threads. An appender and a
 * querier each belong to one thread at a time; many may exist at once.
 */
#ifndef BONGSU_TSDB_H
#define BONGSU_TSDB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "labels/labels.h"
#include "util/util.h"

/* A series reference: dense, non-zero, stable for the life of the series in
 * the head. 0 means "unknown". A ref may become invalid when the series is
 * dropped from the head; the appender then falls back to the labels. */
typedef uint64_t tsdb_ref;

struct tsdb_options {
    const char *dir;                 /* data directory; created if missing */
    int64_t retention_ms;            /* --storage.tsdb.retention.time; <= 0 keeps all */
    int64_t wal_fsync_interval_ms;   /* 0 = fsync on every commit */
    size_t wal_segment_size;         /* bytes; 0 = default 128 MiB */
    int64_t block_range_ms;          /* head chunk range and block length; 0 = 2h */
    int64_t compaction_interval_ms;  /* compactor period; 0 = 1 min, < 0 = no thread */
    /* --storage.tsdb.max-block-duration: longest block that merging may
     * produce. 0 = a tenth of the retention time, at most 31 days (31
     * days when retention is off); a value <= block_range_ms disables
     * merging. Merged ranges are block_range_ms times 3, 9, 27, ... */
    int64_t max_block_range_ms;
    /* --storage.tsdb.retention.size in bytes; 0 = unlimited. The oldest
     * whole blocks are deleted while blocks + WAL (checkpoint included)
     * exceed it. */
    int64_t retention_bytes;
    /* Write a head snapshot (a head checkpoint: series and open chunks)
     * at tsdb_close, so that the next open replays no WAL. Default true;
     * tests of the WAL format turn it off to keep the segments. */
    bool head_snapshot_on_close;
    /* Write the blocks cut from the head with dense chunks (shared time
     * columns, as merged blocks) instead of copying the head's XOR chunks:
     * smaller 2 h blocks for more CPU at head compaction. Default false. */
    bool dense_head_blocks;
};
/* dir "data", 15d, 1000 ms, 2h blocks, compaction checked every minute,
 * default maximum block range, no size limit, head snapshot on close. */
void tsdb_options_default(struct tsdb_options *o);

struct tsdb;

/* Open (or create) the store in o->dir: load its blocks, then replay its
 * WAL (the newest checkpoint, then later segments). A torn WAL tail is
 * truncated with one log line, never fatal; leftovers of an interrupted
 * block write or deletion (*.tmp directories, block directories without
 * meta.json) are deleted with one log line each; a block that cannot be
 * read is skipped with an error line and left on disk. Starts the
 * background compactor unless o->compaction_interval_ms < 0. err gets a
 * message naming the file when the directory cannot be used. */
int tsdb_open(struct tsdb **out, const struct tsdb_options *o, struct bs_error *err);
/* Flush and fsync the WAL, free everything. NULL is allowed. */
void tsdb_close(struct tsdb *db);

/* Statistics for /api/v1/status/tsdb and self-metrics. */
struct tsdb_stats {
    uint64_t num_series;
    uint64_t num_samples_appended;   /* since open */
    uint64_t num_chunks;
    int64_t min_time, max_time;      /* INT64_MAX / INT64_MIN when empty */
    uint64_t out_of_order_samples;   /* rejected, since open */
    uint64_t duplicate_samples;      /* rejected, since open */
    uint64_t wal_bytes;
    uint64_t out_of_bounds_samples;  /* rejected as too old, since open */
    uint64_t num_blocks;
    uint64_t blocks_bytes;           /* on disk */
    int64_t min_valid_time;          /* newest block's maxt; INT64_MIN if none */
    uint64_t compactions, compaction_failures;   /* head compactions, since open */
    uint64_t merges, merge_failures;             /* block merges, since open */
    uint64_t time_retentions, size_retentions;   /* blocks deleted, since open */
    uint64_t wal_write_failures;                 /* commits failed writing the WAL */
};
void tsdb_stats(struct tsdb *db, struct tsdb_stats *out);

/* Run one compaction pass now (what the background compactor does each
 * period): while the head spans more than 1.5 block ranges, write its
 * oldest range as a block, truncate the head to the block's end and
 * checkpoint the WAL; then merge adjacent blocks into larger ones (2h ->
 * 6h -> 18h ..., re-encoded with the dense codec) while a merge is due;
 * then delete blocks older than the retention time, and the oldest blocks
 * while the store is larger than the retention size. Safe to call from
 * any thread; passes are serialised. Returns 0 or the first error (the
 * store stays usable: a failed block write, e.g. BS_ENOSPC, leaves no
 * partial block and the head as it was; the next pass retries). */
int tsdb_compact_now(struct tsdb *db, struct bs_error *err);

/* --------------------------------------------------------------- appender */

struct tsdb_appender;

struct tsdb_appender *tsdb_appender_new(struct tsdb *db);
/* Stage one sample. ref is a hint from an earlier add (0 if none); ls may
 * be NULL only when ref is known-valid. The labels are copied if the series
 * is new. On success *out_ref (may be NULL) gets the series ref, usable in
 * later batches.
 * Per-sample errors leave the rest of the batch intact:
 *   BS_EOUTOFORDER   t is older than the series' newest sample
 *   BS_EDUPLICATE    same t as the newest sample with a different value
 *                    (the same t and bit-identical value is accepted and
 *                    ignored, returning 0)
 *   BS_EOUTOFBOUNDS  t is older than what the head accepts: the end of the
 *                    newest block, or the head's newest time minus half
 *                    a block range, whichever is later
 *   BS_EINVAL        ls is NULL and ref unknown, or ls is empty / invalid
 * A stale marker (bs_stale_nan()) is stored like any sample. */
int tsdb_appender_add(struct tsdb_appender *a, tsdb_ref ref, const struct labels *ls, int64_t t,
                      double v, tsdb_ref *out_ref);
/* Write the batch to the WAL, then make it visible. Frees the appender
 * whatever the result. On failure (e.g. BS_ENOSPC, BS_EIO) nothing of the
 * batch is visible and err says why. */
int tsdb_appender_commit(struct tsdb_appender *a, struct bs_error *err);
/* Discard the batch and free the appender. */
void tsdb_appender_rollback(struct tsdb_appender *a);

/* ---------------------------------------------------------------- querier */

struct tsdb_querier;
struct tsdb_series_set;
struct tsdb_iterator;

/* A querier sees a consistent view of samples with mint <= t <= maxt as of
 * its creation, across blocks and head; samples appended later may or may
 * not be visible. A compaction or retention pass running meanwhile never
 * frees what the querier reads: it holds references on its blocks and an
 * epoch on the head (see src/tsdb/reclaim.c). Free it after every series
 * set and iterator obtained from it, and do not keep it for long: head
 * memory dropped by truncation is freed only when older queriers are gone. */
struct tsdb_querier *tsdb_querier_new(struct tsdb *db, int64_t mint, int64_t maxt);
void tsdb_querier_free(struct tsdb_querier *q);

/* Series whose labels satisfy all matchers (at least one matcher should
 * not match the empty string; otherwise every series is a candidate).
 * Series come out sorted by labels (labels_cmp). Only series with at least
 * one sample in [mint, maxt] are returned. */
int tsdb_querier_select(struct tsdb_querier *q, struct labels_matcher *const *ms, size_t nms,
                        struct tsdb_series_set **out, struct bs_error *err);
/* Flags of tsdb_querier_select_flags. */
#define TSDB_SELECT_CHUNK_RANGES 0x1u /* keep series by chunk time ranges (see below) */

/* tsdb_querier_select with flags. With TSDB_SELECT_CHUNK_RANGES a series
 * is kept when one of its chunks overlaps [mint, maxt], judged by the
 * chunks' time ranges without decoding them (as Prometheus selects), so
 * its iterator may yield no sample; callers that read the samples anyway
 * (PromQL) save the decoding that exact selection costs. */
int tsdb_querier_select_flags(struct tsdb_querier *q, struct labels_matcher *const *ms,
                              size_t nms, unsigned flags, struct tsdb_series_set **out,
                              struct bs_error *err);
/* Advance to the next series; false at the end. */
bool tsdb_series_set_next(struct tsdb_series_set *s);
/* Labels of the current series; valid while the querier lives. */
const struct labels *tsdb_series_set_labels(struct tsdb_series_set *s);
/* An iterator over the current series' samples in [mint, maxt], in time
 * order. The iterator stays valid after the set advances or is freed (it
 * borrows from the querier, which must outlive it); free it with
 * tsdb_iterator_free. Returns NULL on allocation failure. */
struct tsdb_iterator *tsdb_series_set_iterator(struct tsdb_series_set *s);
size_t tsdb_series_set_count(struct tsdb_series_set *s);   /* total series */
void tsdb_series_set_free(struct tsdb_series_set *s);

/* Iterator protocol (like Prometheus's chunkenc.Iterator):
 *   next()  move to the next sample; false at the end
 *   seek(t) move to the first sample with time >= t (never backwards);
 *           false when there is none
 *   at()    the current sample (only after next/seek returned true) */
bool tsdb_iterator_next(struct tsdb_iterator *it);
bool tsdb_iterator_seek(struct tsdb_iterator *it, int64_t t);
void tsdb_iterator_at(const struct tsdb_iterator *it, int64_t *t, double *v);
void tsdb_iterator_free(struct tsdb_iterator *it);

/* Label names (sorted, unique) of series matching ms (all series if nms is
 * 0) with samples in [mint, maxt]. *out is a malloc'd array of pointers
 * into the querier's strings: free(*out) only. */
int tsdb_querier_label_names(struct tsdb_querier *q, struct labels_matcher *const *ms, size_t nms,
                             const char ***out, size_t *n, struct bs_error *err);
/* Values (sorted, unique) of label name among matching series. Same
 * ownership as label_names. */
int tsdb_querier_label_values(struct tsdb_querier *q, const char *name,
                              struct labels_matcher *const *ms, size_t nms, const char ***out,
                              size_t *n, struct bs_error *err);

/* ------------------------------------------------------------------ admin */

/* Delete the samples with mint <= t <= maxt of every series matching all
 * of ms (nms 0: every series), in the head and in the blocks (admin.c).
 * Deleted samples are hidden from queriers at once and dropped from disk
 * by head compaction, block merges and tsdb_clean_tombstones. Durable on
 * return: head deletions are in the WAL, block deletions in the blocks'
 * tombstones files. mint > maxt deletes nothing. Errors (err says which
 * file or step): BS_ENOSPC, BS_EIO, BS_ENOMEM, BS_ECLOSED. */
int tsdb_delete(struct tsdb *db, int64_t mint, int64_t maxt, struct labels_matcher *const *ms,
                size_t nms, struct bs_error *err);
/* Rewrite every block that has tombstones without the deleted samples (a
 * new block replaces the old one, crash-safe like a merge). 0 or the first
 * error; blocks rewritten before it stay rewritten. */
int tsdb_clean_tombstones(struct tsdb *db, struct bs_error *err);
/* Create <dir>/snapshots/<name>/ holding hard links to every block and,
 * when with_head, the head's samples written as one more block: a data
 * directory that tsdb_open accepts. name must be one path component.
 * BS_EINVAL, BS_ENOSPC, BS_EIO, BS_ENOMEM. */
int tsdb_snapshot(struct tsdb *db, const char *name, bool with_head, struct bs_error *err);

#endif
