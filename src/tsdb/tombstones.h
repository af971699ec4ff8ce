/* SPDX-License-Identifier: Apache-2.0
 *
 * Tombstones: deleted time ranges per series (tombstones.c), the store's
 * registry of them for the head and every block, and the admin operations
 * built on them (admin.c). Private to src/tsdb and its unit tests, like
 * tsdb_int.h; the public entry points are tsdb_delete,
 * tsdb_clean_tombstones and tsdb_snapshot in tsdb.h.
 *
 * The other files of the module call in through a few hooks only (each
 * named "tombstones hook" at its call site): the querier filters its
 * iterators and drops series left without samples, head compaction and
 * block merges drop deleted samples, WAL replay and checkpoints carry the
 * head's tombstones, block loading reads each block's tombstones file.
 * Every hook returns at once when the store has no tombstone at all.
 */
#ifndef BONGSU_TSDB_TOMBSTONES_H
#define BONGSU_TSDB_TOMBSTONES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tsdb/tsdb_int.h"

/* ------------------------------------------------------------ intervals */

/* A deleted range of sample times, both ends inclusive (as Prometheus). */
struct tsdb_interval {
    int64_t mint, maxt;
};

/* A sorted list of disjoint, non-adjacent intervals. Zero-initialised is
 * empty; v is malloc'd and owned. */
struct tsdb_intervals {
    struct tsdb_interval *v;
    size_t n, cap;
};

/* Add [mint, maxt] (mint <= maxt, else BS_EINVAL), merging it with the
 * intervals it overlaps or touches. BS_ENOMEM leaves iv unchanged. */
int tsdb_intervals_add(struct tsdb_intervals *iv, int64_t mint, int64_t maxt);
/* Does one of v[0..n) (sorted, disjoint) contain t? */
bool tsdb_intervals_cover(const struct tsdb_interval *v, size_t n, int64_t t);
void tsdb_intervals_fini(struct tsdb_intervals *iv);

/* ------------------------------------------------------ tombstone sets */

/* Series id (a block's series id, or a head series ref) -> intervals. */
struct tsdb_tombs;

/* NULL when out of memory. */
struct tsdb_tombs *tsdb_tombs_new(void);
/* NULL is allowed. */
void tsdb_tombs_free(struct tsdb_tombs *t);
/* Add [mint, maxt] to series id. 0, BS_EINVAL (mint > maxt), BS_ENOMEM. */
int tsdb_tombs_add(struct tsdb_tombs *t, uint64_t id, int64_t mint, int64_t maxt);
/* The intervals of id, or NULL when it has none; borrowed until t next
 * changes. */
const struct tsdb_intervals *tsdb_tombs_get(const struct tsdb_tombs *t, uint64_t id);
/* Number of series with tombstones. */
size_t tsdb_tombs_count(const struct tsdb_tombs *t);
/* The series ids with tombstones, sorted; *ids malloc'd (NULL when none).
 * BS_ENOMEM. */
int tsdb_tombs_ids(const struct tsdb_tombs *t, uint64_t **ids, size_t *n);
/* Add every interval of src to dst. 0 or BS_ENOMEM (dst then holds part
 * of src). */
int tsdb_tombs_merge(struct tsdb_tombs *dst, const struct tsdb_tombs *src);

/* ------------------------------------------------------ tombstones file */

/* <block>/tombstones, docs/format/tombstones.md. */
#define TSDB_TOMBSTONES_FILE "tombstones"
#define TSDB_TOMBSTONES_MAGIC UINT32_C(0x42535453) /* "BSTS" */
#define TSDB_TOMBSTONES_VERSION 1
/* Decoding caps: a file larger than this, or a series with more
 * intervals, is refused as damaged rather than exhausting memory. */
#define TSDB_TOMBSTONES_MAX_FILE (UINT64_C(1) << 30)
#define TSDB_TOMBSTONES_MAX_INTERVALS (UINT32_C(1) << 20)

/* Encode t as a tombstones file: *out malloc'd, *len bytes. BS_ENOMEM. */
int tsdb_tombs_encode(const struct tsdb_tombs *t, uint8_t **out, size_t *len);
/* Decode a tombstones file p[0..len). OUT: *out, a new set. BS_ECORRUPT
 * with a message saying what is wrong and at which offset (why, up to
 * why_cap bytes, may be NULL), BS_ENOMEM. */
int tsdb_tombs_decode(const uint8_t *p, size_t len, struct tsdb_tombs **out, char *why,
                      size_t why_cap);
/* Read blockdir/tombstones. A missing file is no tombstone: *out NULL and
 * 0. BS_ECORRUPT (err names the file and the damage), BS_EIO, BS_ENOMEM. */
int tsdb_tombs_read(const char *blockdir, struct tsdb_tombs **out, struct bs_error *err);
/* Replace blockdir/tombstones by t atomically: written to
 * tombstones.tmp, fsynced, renamed, the directory fsynced. An empty t
 * removes the file. BS_ENOSPC, BS_EIO, BS_ENOMEM. */
int tsdb_tombs_write(const char *blockdir, const struct tsdb_tombs *t, struct bs_error *err);

/* --------------------------------------------------------- chunk helpers */

/* Decode the chunk p[0..len) of encoding enc (TSDB_CHUNK_ENC_*; 0 is XOR)
 * and append the samples not covered by iv[0..niv) to ts and vs (grown with
 * realloc, *cap their room, *n their count). b is the chunk's block (it
 * resolves shared time columns), NULL for head chunks. BS_ECORRUPT,
 * BS_ENOMEM. */
int tsdb_tomb_chunk_samples(struct tsdb_block *b, uint8_t enc, const uint8_t *p, size_t len,
                            const struct tsdb_interval *iv, size_t niv, int64_t **ts, uint64_t **vs,
                            size_t *n, size_t *cap);
/* Encode ts/vs[0..n) (n >= 1, times ascending) as one XOR chunk: *out
 * malloc'd. At most TSDB_CHUNK_MAX_SAMPLES samples fit one XOR chunk
 * that others read; callers cut longer runs. BS_ENOMEM. */
int tsdb_tomb_xor_encode(const int64_t *ts, const uint64_t *vs, size_t n, uint8_t **out,
                         size_t *len);

/* ------------------------------------------------------------- registry */

/* The store's tombstones (admin.c): the head's, by series ref, and each
 * block's, by block (holding a reference on it), under one mutex.
 * db->tombstore is set by tsdb_tombstore_init at open and freed by
 * tsdb_tombstore_fini. */
struct tsdb_tombstore;
int tsdb_tombstore_init(struct tsdb *db);
void tsdb_tombstore_fini(struct tsdb *db);

/* Hook (after merges, and at each admin call): forget the tombstones of
 * blocks that are no longer listed and that no querier reads any more
 * (merged, rewritten or deleted by retention), dropping the registry's
 * reference on them. */
void tsdb_tombstore_prune(struct tsdb *db);

/* Hook (block loading): read b's tombstones file into the registry. A
 * damaged file is an error whose message names it; the caller skips the
 * block. */
int tsdb_tombstore_load_block(struct tsdb *db, struct tsdb_block *b, struct bs_error *err);

/* Hook (querier): append to *out the deleted intervals of series id of
 * block b (b NULL: the head series with ref id). Nothing when there are
 * none. 0 or BS_ENOMEM. */
int tsdb_tomb_lookup(struct tsdb *db, const struct tsdb_block *b, uint64_t id,
                     struct tsdb_intervals *out);
/* Hook (querier iterator): the same, clipped to [lo, hi] (the part of the
 * series the iterator reads from that source). */
int tsdb_tomb_lookup_range(struct tsdb *db, const struct tsdb_block *b, uint64_t id, int64_t lo,
                           int64_t hi, struct tsdb_intervals *out);
/* Hook (querier select): are all samples of block series id in [mint,
 * maxt] deleted (chunks c[0..n))? False without tombstones. */
bool tsdb_tomb_block_series_hidden(struct tsdb *db, struct tsdb_block *b, uint64_t id,
                                   const struct tsdb_chunk_meta *c, size_t n, int64_t mint,
                                   int64_t maxt);
/* The same for head series ref over its snapshot chunks c[0..n). */
bool tsdb_tomb_head_series_hidden(struct tsdb *db, uint64_t ref, const struct tsdb_iter_chunk *c,
                                  size_t n, int64_t mint, int64_t maxt);

/* Hook (head compaction): drop the deleted samples of head series ref
 * from its chunks v[0..*n) (XOR, borrowed): a chunk with deleted samples
 * is re-encoded into a new buffer appended to *owned (grown like the
 * caller's copies array: *nowned, *owned_cap), one left without samples
 * is removed; *n gets the new count. 0 or BS_ENOMEM / BS_ECORRUPT. */
int tsdb_tomb_filter_head_chunks(struct tsdb *db, uint64_t ref, struct tsdb_bw_chunk *v, size_t *n,
                                 uint8_t ***owned, size_t *nowned, size_t *owned_cap);
/* Hook (block merge): drop from ts/vs[from..*n) the samples deleted from
 * series id of block b; *n gets the new count. 0, or BS_ENOMEM with
 * nothing dropped (the merge must fail rather than keep deleted data). */
int tsdb_tomb_filter_samples(struct tsdb *db, const struct tsdb_block *b, uint64_t id, int64_t *ts,
                             uint64_t *vs, size_t from, size_t *n);

/* Hook (WAL replay): apply a TSDB_WAL_REC_TOMBSTONES payload to the head
 * (refs that no longer resolve are ignored). BS_ECORRUPT, BS_ENOMEM. */
int tsdb_tomb_replay(struct tsdb *db, const uint8_t *p, size_t len);
/* Hook (checkpoints): the payload of a TSDB_WAL_REC_TOMBSTONES record
 * holding the head's tombstones of series still in the head, clipped to
 * t >= mint (those wholly older are dropped, in memory too). *out
 * malloc'd, NULL with *len 0 when there are none. BS_ENOMEM. */
int tsdb_tomb_head_payload(struct tsdb *db, int64_t mint, uint8_t **out, size_t *len);

#endif
