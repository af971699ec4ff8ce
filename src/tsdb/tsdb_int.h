/* SPDX-License-Identifier: Apache-2.0
 *
 * tsdb internals shared by the files of the module and its unit tests:
 * the XOR chunk codec, the head (series, ref table, postings), the WAL
 * writer and replay, and struct tsdb itself. Nothing outside src/tsdb/ and
 * tests/unit/test_tsdb*.c may include this header.
 *
 * Lock order (never take a lock to the left while holding one to its right):
 *   WAL writer mutex -> series lock (tsdb_series_lock)
 *   stripe mutex -> postings rwlock -> ref-table page mutex
 * A series mutex is never held together with a stripe or postings lock.
 */
#ifndef BONGSU_TSDB_INT_H
#define BONGSU_TSDB_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "labels/labels.h"
#include "tsdb/tsdb.h"
#include "util/util.h"

struct tsdb;

/* ------------------------------------------------------------ XOR chunks */

#define TSDB_CHUNK_MAX_SAMPLES 120
#define TSDB_CHUNK_RANGE_MS INT64_C(7200000) /* chunks never cross a 2h boundary */
#define TSDB_CHUNK_HEADER 2                  /* big-endian u16 sample count */
/* Upper bound of the encoded size of one sample, in bytes (first sample:
 * 10-byte varint + 8 bytes; later: 68 bits of dod + 77 bits of value). */
#define TSDB_CHUNK_SAMPLE_MAX 20

/* A seek mark: the decoder state after the first n samples of an XOR
 * chunk, from which a decoder resumes without decoding them (see
 * tsdb_xor_dec_seek). An encoder records one every TSDB_XOR_MARK_EVERY
 * samples and keeps the newest TSDB_XOR_MARKS, so that reading the tail
 * of an open chunk (what instant queries at "now" do) decodes at most
 * TSDB_XOR_MARK_EVERY - 1 samples before the ones wanted, not the whole
 * chunk; with 120-sample chunks the two marks (at 40 and 80) cover any
 * starting point. Marks live in memory only: they are not part of the
 * chunk format, and closed chunks have none. */
#define TSDB_XOR_MARK_EVERY 40
#define TSDB_XOR_MARKS 2
struct tsdb_xor_mark { /* 24 bytes */
    uint64_t v;       /* value bits of sample n */
    int32_t dt;       /* time of sample n - the chunk's first time */
    int32_t tdelta;   /* its time delta */
    uint16_t pos;     /* bits read so far, header included */
    uint8_t n;        /* samples before pos, >= 2; 0: no mark */
    uint8_t leading;  /* XOR window */
    uint8_t trailing;
};

/* Encoder of one XOR chunk (see chunk_xor.c and docs/format/chunks.md).
 * buf is owned by the encoder and always zero past nbits. The encoded chunk
 * is buf[0 .. tsdb_xor_enc_bytes(e)). */
struct tsdb_xor_enc { /* 104 bytes: one per head series */
    uint8_t *buf;
    int64_t mint;    /* time of the first sample */
    int64_t t;       /* last time */
    int64_t tdelta;  /* last time delta */
    uint64_t v;      /* last value bits */
    uint32_t cap;    /* bytes (a chunk is far below 4 GiB) */
    uint32_t nbits;  /* bits used, header included */
    uint16_t n;      /* samples */
    uint8_t leading; /* XOR window; 0xff = none yet */
    uint8_t trailing;
    struct tsdb_xor_mark marks[TSDB_XOR_MARKS]; /* oldest first; n = 0 unused */
};
/* Growth step of an encoder's buffer: the open chunk is most of a head
 * series' resident memory, so it grows in small steps, never by doubling. */
#define TSDB_XOR_ENC_STEP 32

void tsdb_xor_enc_init(struct tsdb_xor_enc *e);
void tsdb_xor_enc_fini(struct tsdb_xor_enc *e);
/* Forget all samples but keep the buffer. */
void tsdb_xor_enc_reset(struct tsdb_xor_enc *e);
/* Append one sample. t must be greater than the previous sample's time
 * (the caller checks). Returns 0, or BS_ENOMEM (the chunk is unchanged). */
int tsdb_xor_enc_append(struct tsdb_xor_enc *e, int64_t t, uint64_t vbits);
/* Make e continue the encoded chunk p[0..len) (e's buffer replaced by a
 * copy): appends then produce the bytes an encoder that wrote those
 * samples itself would. BS_ECORRUPT when p does not decode exactly,
 * BS_ENOMEM. */
int tsdb_xor_enc_restore(struct tsdb_xor_enc *e, const uint8_t *p, size_t len);
/* What an encoder knows beyond its bytes: the bits used in the last byte
 * (1..8), the newest time and time delta, and the newest value and its XOR
 * window. Saved with an open chunk in head checkpoints so that replay
 * resumes the chunk without decoding it. */
struct tsdb_xor_state {
    int64_t t, tdelta;
    uint64_t v;
    uint8_t tail, leading, trailing;
};
void tsdb_xor_enc_state(const struct tsdb_xor_enc *e, struct tsdb_xor_state *st);
/* The cheap consistency checks of st against the chunk p[0..len) that
 * load makes (nothing is decoded beyond the first time, set in *mint). */
bool tsdb_xor_state_valid(const uint8_t *p, size_t len, const struct tsdb_xor_state *st,
                          int64_t *mint);
/* Make e continue the encoded chunk p[0..len) whose state is st, without
 * decoding it (e's buffer replaced by a copy). Only the checks of
 * tsdb_xor_state_valid are made (the bytes are CRC-protected where they
 * come from): BS_ECORRUPT when they fail, BS_ENOMEM. */
int tsdb_xor_enc_load(struct tsdb_xor_enc *e, const uint8_t *p, size_t len,
                      const struct tsdb_xor_state *st);
static inline size_t tsdb_xor_enc_bytes(const struct tsdb_xor_enc *e)
{
    return (e->nbits + 7) / 8;
}

/* Decoder over an encoded chunk; borrows the bytes. After next() returned
 * true, t and v hold the sample. next() returns false at the end, or on
 * corrupt input with err set to BS_ECORRUPT. */
struct tsdb_xor_dec {
    const uint8_t *p;
    size_t nbits;
    size_t pos;
    uint16_t total, read;
    int64_t t;
    int64_t tdelta;
    uint64_t v;
    uint8_t leading, trailing;
    int err;
};
void tsdb_xor_dec_init(struct tsdb_xor_dec *d, const uint8_t *p, size_t len);
bool tsdb_xor_dec_next(struct tsdb_xor_dec *d);
/* Decode forward to the first sample with time >= t (at least one sample
 * is decoded; the current one, if any, is passed over); false when there
 * is none or on corruption. marks[0..nmarks) (oldest first, may be NULL)
 * are seek marks of this chunk, whose first time is mint: the decoder
 * jumps to the newest one ahead of it that is before t instead of
 * decoding up to it. */
bool tsdb_xor_dec_seek(struct tsdb_xor_dec *d, int64_t t, int64_t mint,
                       const struct tsdb_xor_mark *marks, size_t nmarks);
/* Does the encoded chunk p[0..len) spanning [cmint, cmaxt] hold a sample
 * with mint <= t <= maxt? Decodes only when the ranges overlap partly. */
bool tsdb_chunk_has_sample_in(const uint8_t *p, size_t len, int64_t cmint, int64_t cmaxt,
                              int64_t mint, int64_t maxt);

/* A closed chunk: immutable once published, freed only at tsdb_close. */
struct tsdb_chunk {
    int64_t mint, maxt;
    uint32_t len; /* bytes in data */
    uint16_t n;
    uint8_t data[];
};

/* Index of the range of width `range` ms holding t (floor division). */
static inline int64_t tsdb_range_of(int64_t t, int64_t range)
{
    int64_t q = t / range;
    if (t % range < 0)
        q--;
    return q;
}

/* Index of the default 2h range holding t. */
static inline int64_t tsdb_chunk_range_of(int64_t t)
{
    return tsdb_range_of(t, TSDB_CHUNK_RANGE_MS);
}

/* ---------------------------------------------------------- dense chunks */

/* The compaction-time codec for long chunks (chunk_dense.c); its whole
 * interface is in its own header. Encoding id: TSDB_CHUNK_ENC_DENSE. */
#include "tsdb/chunk_dense.h"

/* ------------------------------------------------------------- reclaim */

/* Deferred freeing of head memory that readers may still point at (see
 * reclaim.c). Readers (queriers, appenders, the block writer) enter an
 * epoch and exit it when done; memory unlinked from the head is retired
 * with the current epoch and freed once no reader that entered at or
 * before that epoch remains. */
struct tsdb_garbage {
    struct tsdb_garbage *next;
    uint64_t epoch;
    void *p;
    void (*fn)(void *p);
};

struct tsdb_epoch_count {
    uint64_t epoch;
    size_t n;
};

struct tsdb_reclaim {
    pthread_mutex_t mu;
    uint64_t epoch;                  /* current */
    struct tsdb_epoch_count *active; /* readers per epoch, ascending epochs */
    size_t nactive, cap;
    struct tsdb_garbage *garbage; /* newest first */
    size_t ngarbage;
};

void tsdb_reclaim_init(struct tsdb_reclaim *r);
/* Free all garbage (no reader may remain). */
void tsdb_reclaim_fini(struct tsdb_reclaim *r);
/* Enter as a reader; returns the token to pass to exit. */
uint64_t tsdb_reclaim_enter(struct tsdb_reclaim *r);
void tsdb_reclaim_exit(struct tsdb_reclaim *r, uint64_t epoch);
/* Hand p (already unreachable for new readers) to fn(p) once every reader
 * that might have seen it is gone. */
void tsdb_reclaim_retire(struct tsdb_reclaim *r, void *p, void (*fn)(void *p));
/* Start a new epoch after a batch of retires, freeing what can be freed. */
void tsdb_reclaim_advance(struct tsdb_reclaim *r);

/* ------------------------------------------------------------------ head */

/* A closed head chunk as its series keeps it: 24 bytes. ref is a head
 * chunk file reference (file index << 32 | offset of the record, see
 * head_chunks.c), or, with TSDB_HCHUNK_MEM set, the address of a struct
 * tsdb_chunk in memory (no head chunk files, or a failed write). */
struct tsdb_hchunk {
    int64_t mint, maxt;
    uint64_t ref;
};
#define TSDB_HCHUNK_MEM (UINT64_C(1) << 63)

/* The lock of one head series: a 4-byte futex mutex (0 free, 1 locked,
 * 2 locked with waiters), instead of a 40-byte pthread mutex, since there
 * is one per series. Not recursive; held briefly (an append, a chunk copy). */
void tsdb_series_lock_slow(uint32_t *l);
void tsdb_series_unlock_slow(uint32_t *l);
static inline void tsdb_series_lock_word(uint32_t *l)
{
    uint32_t c = 0;
    if (!__atomic_compare_exchange_n(l, &c, 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
        tsdb_series_lock_slow(l);
}
static inline void tsdb_series_unlock_word(uint32_t *l)
{
    if (__atomic_fetch_sub(l, 1, __ATOMIC_RELEASE) != 1)
        tsdb_series_unlock_slow(l);
}
#define tsdb_series_lock(s) tsdb_series_lock_word(&(s)->mu)
#define tsdb_series_unlock(s) tsdb_series_unlock_word(&(s)->mu)

/* A head series: one allocation holding the struct and its label array
 * (lset.v points at label_v; the strings are interned in the head's
 * symtab). Field widths are chosen for size: a head holds millions. */
struct tsdb_series {
    uint64_t hash;             /* labels_hash(&lset) */
    struct labels lset;        /* view of label_v */
    uint32_t ref;              /* tsdb_ref (refs never exceed TSDB_REF_MAX) */
    uint32_t mu;               /* tsdb_series_lock(); guards has_samples and after */
    bool wal_logged;           /* series record is in the WAL (WAL mutex) */
    bool removed;              /* dropped from the head by GC (WAL mutex) */

    bool has_samples;           /* guarded by mu, as everything below */
    uint32_t nchunks, chunks_cap;
    struct tsdb_hchunk *chunks; /* closed chunks, oldest first */
    struct tsdb_xor_enc open;   /* the open chunk (open.n may be 0) */
    int64_t min_t, max_t;       /* valid when has_samples */
    uint64_t last_v;            /* bits of the newest sample */
    struct label label_v[];
};

#define TSDB_STRIPES 64
/* A slot of a stripe's table: the series' ref (0: empty) and the high
 * half of its label hash, which also gives the slot it belongs in. A
 * lookup reads a series only when the tag matches. */
struct tsdb_stripe_slot {
    uint32_t tag;
    uint32_t ref;
};
struct tsdb_stripe { /* open addressing, linear probing, load <= 3/4 */
    pthread_mutex_t mu;
    struct tsdb_stripe_slot *slots;
    size_t cap; /* power of two */
    size_t n;
} __attribute__((aligned(64)));

struct tsdb_plist { /* sorted, unique refs; 4 bytes each (refs <= TSDB_REF_MAX) */
    uint32_t *refs;
    size_t n, cap;
};

struct tsdb_pval {            /* postings of one (name, value) pair */
    const char *name, *value; /* interned */
    uint64_t hash;
    struct tsdb_plist list;
    struct tsdb_pval *hnext;
};

struct tsdb_pname {   /* every value seen for one label name */
    const char *name; /* interned */
    uint64_t hash;
    struct tsdb_pval **vals; /* insertion order (unsorted) */
    size_t n, cap;
    struct tsdb_pname *hnext;
};

struct tsdb_postings {
    pthread_rwlock_t lock;
    struct tsdb_pval **pairs;
    size_t pair_buckets, npairs;
    /* The pairs again, found by their interned string pointers (series
     * creation passes interned labels): open addressing, load <= 1/2,
     * rebuilt when pairs are deleted. */
    struct tsdb_pval **by_ptr;
    size_t by_ptr_cap, by_ptr_n;
    struct tsdb_pname **names;
    size_t name_buckets, nnames;
    struct tsdb_plist all;
};

#define TSDB_REF_PAGE_BITS 14
#define TSDB_REF_PAGE_SIZE (1u << TSDB_REF_PAGE_BITS)
#define TSDB_REF_PAGES (1u << 18) /* max ref is 2^32 - 1 */
#define TSDB_REF_MAX ((UINT64_C(1) << 32) - 1)

struct tsdb_hchunks;

struct tsdb_head {
    struct labels_symtab *syms;
    /* Where closed chunks go (NULL: they stay in memory); set once at
     * open, before any append; owned (closed by tsdb_head_fini). */
    struct tsdb_hchunks *hc;
    struct tsdb_stripe stripes[TSDB_STRIPES];
    /* ref -> series, two levels; entries are published with release stores
     * and read lock-free with acquire loads. */
    struct tsdb_series ***pages;
    pthread_mutex_t pages_mu;
    struct tsdb_postings postings;
    uint64_t next_ref; /* guarded by postings.lock (write) */

    int64_t chunk_range; /* ms; chunks never cross a multiple of it */
    /* Oldest time the head accepts: the newest block's maxt (atomic). */
    int64_t min_valid;
    struct tsdb_reclaim reclaim;

    /* statistics, updated with atomics */
    uint64_t num_series;
    uint64_t samples_appended;
    uint64_t num_chunks;
    uint64_t ooo_samples;
    uint64_t dup_samples;
    uint64_t oob_samples;
    int64_t min_time, max_time;
};

/* Bytes of closed chunk c (in a head chunk file's mapping or in memory):
 * *p, *len and *nsamples (may be NULL). The caller is an epoch reader or
 * holds the series mutex. Returns false when the file is gone (cannot
 * happen while the chunk is in the head). */
bool tsdb_head_chunk_bytes(struct tsdb_head *h, const struct tsdb_hchunk *c, const uint8_t **p,
                           uint32_t *len, uint16_t *nsamples);
/* Attach a closed chunk loaded from a head chunk file to s (WAL replay,
 * before any sample of s was replayed; chunks come oldest first).
 * last_v is its newest value. BS_ENOMEM, or BS_EOUTOFORDER when c does
 * not start after s's newest sample (ignored by the caller). */
int tsdb_head_series_attach(struct tsdb_head *h, struct tsdb_series *s,
                            const struct tsdb_hchunk *c, uint64_t last_v);

int tsdb_head_init(struct tsdb_head *h);
void tsdb_head_fini(struct tsdb_head *h);
/* Lock-free lookup; NULL when ref is unknown. */
struct tsdb_series *tsdb_head_series_by_ref(struct tsdb_head *h, tsdb_ref ref);
/* Find the series with labels ls (hash = labels_hash(ls)) or create it.
 * want_ref 0 assigns the next ref; non-zero (WAL replay) uses that ref, and
 * if ls already exists under another ref, want_ref becomes an alias of it.
 * ls strings are borrowed and interned on creation. *created tells whether
 * a series was made. Returns 0, BS_ENOMEM or BS_ELIMIT (out of refs). */
int tsdb_head_series_get_or_create(struct tsdb_head *h, const struct labels *ls, uint64_t hash,
                                   tsdb_ref want_ref, struct tsdb_series **out, bool *created);
/* The same for ls whose strings are already interned in h->syms (WAL
 * replay interns through its own cache). */
int tsdb_head_series_get_or_create_interned(struct tsdb_head *h, const struct labels *ls,
                                            uint64_t hash, tsdb_ref want_ref,
                                            struct tsdb_series **out, bool *created);
/* Prefetch the stripe slot where a series of label hash `hash` is looked
 * up, a few series before get_or_create needs it (WAL replay creates
 * series a record at a time; the stripe tables are far larger than the
 * caches). A hint only: reads the stripe without its lock. */
void tsdb_head_series_prefetch(struct tsdb_head *h, uint64_t hash);
/* Append a sample to s; caller holds s->mu. Returns 0 when appended, 1 when
 * it is a bit-identical repeat of the newest sample (ignored),
 * BS_EOUTOFORDER, BS_EDUPLICATE or BS_ENOMEM. */
int tsdb_head_series_append(struct tsdb_head *h, struct tsdb_series *s, int64_t t, uint64_t vbits);
/* Does s hold a sample with mint <= t <= maxt? Caller holds s->mu. */
bool tsdb_head_series_has_sample_in(struct tsdb_head *h, struct tsdb_series *s, int64_t mint,
                                    int64_t maxt);
void tsdb_head_note_time(struct tsdb_head *h, int64_t t);
/* Oldest time an appender may write now: the later of min_valid and
 * max_time - chunk_range/2 (INT64_MIN when the head is empty). */
int64_t tsdb_head_appendable_mint(struct tsdb_head *h);
/* Remove s from its stripe (takes the stripe lock; head_gc.c). */
void tsdb_head_stripe_unlink(struct tsdb_head *h, struct tsdb_series *s);
/* Free a series and what it still holds (no reader may see it). */
void tsdb_head_series_free(void *s);

/* head_gc.c. Drop every chunk whose samples are all older than mint
 * (closed chunks with maxt < mint, the open chunk when its newest sample
 * is older), retiring them through h->reclaim, and recompute min_time.
 * Then, with the WAL mutex held so that no commit is applying, remove the
 * series left without samples from the stripes, the ref table and the
 * postings (they are flagged `removed`; a commit that staged one resolves
 * its labels again). When cut_seg is non-NULL the WAL is cut to a new
 * segment in the same critical section and *cut_seg gets the index of the
 * last segment written before it. Returns the number of series removed. */
int tsdb_head_truncate(struct tsdb *db, int64_t mint, uint32_t *cut_seg, size_t *removed,
                       struct bs_error *err);

/* postings.c. Callers of the _locked functions hold postings.lock. */
void tsdb_postings_init(struct tsdb_postings *p);
void tsdb_postings_fini(struct tsdb_postings *p);
void tsdb_postings_add_locked(struct tsdb_postings *p, const struct labels *ls, uint64_t ref);
/* A malloc'd sorted unique list (*out NULL when *n is 0) of the refs of
 * series whose label m->name has a value that m accepts (absent labels
 * excluded; m must not match the empty string, or the caller accepts that
 * series lacking the label are not listed). BS_ENOMEM on failure. */
int tsdb_postings_for_matcher(struct tsdb_postings *p, const struct labels_matcher *m,
                              uint64_t **out, size_t *n);
/* Copy of the all-series list. */
int tsdb_postings_all(struct tsdb_postings *p, uint64_t **out, size_t *n);
/* Keep in a[0..na) the ids also in b[0..nb) (both sorted, no duplicates);
 * returns how many remain. */
size_t tsdb_postings_intersect(uint64_t *a, size_t na, const uint64_t *b, size_t nb);
/* Remove every ref for which dead(ref, arg) is true from every list, and
 * the (name, value) pairs and names left without series. */
void tsdb_postings_delete_locked(struct tsdb_postings *p, bool (*dead)(uint64_t ref, void *arg),
                                 void *arg);

/* ------------------------------------------------------ head snapshots */

/* One chunk to iterate, always borrowed: from the head (kept alive by the
 * reader's epoch), a block's mmap (kept alive by the block reference) or
 * the querier's arena (a copy of an open chunk, freed with the querier). */
struct tsdb_iter_chunk {
    const uint8_t *p;
    size_t len;
    int64_t mint, maxt;
    const struct tsdb_xor_mark *marks; /* an open chunk's seek marks, borrowed like p */
    uint8_t nmarks;
    uint8_t enc; /* TSDB_CHUNK_ENC_*; 0 means XOR (head chunks) */
};

/* Series of the head matching ms, sorted by labels when sorted is true;
 * *out malloc'd. With exact, only series with a sample in [mint, maxt]
 * (chunks that overlap the range partly are decoded to find out);
 * otherwise series with a chunk overlapping [mint, maxt], by the chunks'
 * time ranges alone. The caller is an epoch reader. */
int tsdb_head_select(struct tsdb_head *h, struct labels_matcher *const *ms, size_t nms,
                     int64_t mint, int64_t maxt, bool sorted, bool exact,
                     struct tsdb_series ***out, size_t *nout, struct bs_error *err);
/* Append to *v (growing it) the chunks of s overlapping [mint, maxt],
 * oldest first; the open chunk is copied into arena with its seek marks
 * (they live as long as the arena). BS_ENOMEM on failure (*n as it was). */
int tsdb_head_series_chunks(struct tsdb_head *h, struct tsdb_series *s, int64_t mint, int64_t maxt,
                            struct bs_arena *arena, struct tsdb_iter_chunk **v, size_t *n,
                            size_t *cap);

/* ------------------------------------------------------------------- WAL */

#define TSDB_WAL_CHECKPOINT_PREFIX "checkpoint."
#define TSDB_WAL_REC_SERIES 1
#define TSDB_WAL_REC_SAMPLES 2
#define TSDB_WAL_REC_OPEN_CHUNKS 3 /* checkpoints only: open chunks of the head */
#define TSDB_WAL_REC_OPEN_STATE 4  /* checkpoints only: open chunks with encoder state */
#define TSDB_WAL_REC_TOMBSTONES 5  /* deleted ranges of head series (admin.c) */
#define TSDB_WAL_HEADER 9                        /* type u8, len be32, crc be32 */
#define TSDB_WAL_MAX_RECORD (UINT32_C(64) << 20) /* payload cap */
#define TSDB_WAL_DEFAULT_SEGMENT (UINT64_C(128) << 20)
#define TSDB_WAL_SAMPLES_PER_RECORD 8192

struct tsdb_wal {
    pthread_mutex_t mu; /* the single writer lock */
    char *dir;          /* <data>/wal */
    int fd;             /* current segment, -1 when closed */
    uint32_t seg;       /* its index */
    uint64_t seg_off;   /* bytes in it */
    uint64_t seg_max;
    uint8_t *buf; /* pending records of the commit in progress */
    size_t len, cap;
    size_t rec_start; /* offset of the open record's header */
    int64_t fsync_interval_ms;
    bool dirty;           /* written since the last fsync */
    uint64_t total_bytes; /* segments' bytes, replayed plus written */
    uint64_t fsyncs;
    uint64_t write_failures; /* flushes that failed (ENOSPC, EIO) */
    bool repair;             /* a failed write could not be cut back */
    bool thread_started, stopping;
    pthread_t thread;
    pthread_cond_t cond;
};

/* Start writing at segment index first_seg in dir/wal (created if missing).
 * Starts the background fsync thread when fsync_interval_ms > 0. */
int tsdb_wal_open(struct tsdb_wal *w, const char *waldir, uint64_t seg_max,
                  int64_t fsync_interval_ms, uint32_t first_seg, struct bs_error *err);
/* Stop the thread, fsync and close. */
void tsdb_wal_close(struct tsdb_wal *w);
/* Record building; caller holds w->mu. begin starts a record of a type,
 * put appends payload bytes, end frames it (length + CRC). */
int tsdb_wal_rec_begin(struct tsdb_wal *w, uint8_t type);
int tsdb_wal_put(struct tsdb_wal *w, const void *p, size_t n);
int tsdb_wal_put_uvarint(struct tsdb_wal *w, uint64_t v);
int tsdb_wal_put_varint(struct tsdb_wal *w, int64_t v);
void tsdb_wal_rec_end(struct tsdb_wal *w);
size_t tsdb_wal_rec_payload_len(const struct tsdb_wal *w);
/* Drop records built but not flushed. */
void tsdb_wal_discard(struct tsdb_wal *w);
/* write(2) the pending records (rotating segments first when full), fsync
 * when the policy says so. On failure the segment is cut back to where it
 * was and nothing of the batch remains. Caller holds w->mu. */
int tsdb_wal_flush_locked(struct tsdb_wal *w, struct bs_error *err);
/* Encode one series record for s into the pending buffer (w->mu held). */
int tsdb_wal_log_series(struct tsdb_wal *w, const struct tsdb_series *s);

/* Close the current segment (fsynced) and start the next one; caller
 * holds w->mu. */
int tsdb_wal_cut_locked(struct tsdb_wal *w, struct bs_error *err);

/* List segment indices in waldir, sorted. *out malloc'd (NULL if none). */
int tsdb_wal_segments(const char *waldir, uint32_t **out, size_t *n, struct bs_error *err);

struct tsdb;
/* Replay every segment of waldir into db->head (adding the bytes kept to
 * db->wal.total_bytes). *next_seg gets the
 * index a new segment should use. Corrupt tails are truncated (one warning
 * per damaged segment); only failures to read the directory are errors. */
int tsdb_wal_replay(struct tsdb *db, const char *waldir, uint32_t *next_seg, struct bs_error *err);

/* One entry of an open chunks record (type TSDB_WAL_REC_OPEN_CHUNKS, or
 * TSDB_WAL_REC_OPEN_STATE which adds st; docs/format/wal.md). */
struct tsdb_open_entry {
    uint64_t ref;
    int64_t maxt;
    const uint8_t *data; /* borrowed from the record */
    size_t len;
    struct tsdb_xor_state st; /* TSDB_WAL_REC_OPEN_STATE only */
};
/* Parse the entry at p[0..len) of a record of the given type; returns its
 * length, or 0 when it does not decode. */
size_t tsdb_open_entry_parse(uint8_t type, const uint8_t *p, size_t len,
                             struct tsdb_open_entry *e);

/* checkpoint.c. The newest complete checkpoint in waldir: *found false when
 * there is none, else *idx is the last segment it covers. Leftover
 * checkpoint.*.tmp directories are deleted (one log line each). */
int tsdb_checkpoint_find(const char *waldir, bool *found, uint32_t *idx, struct bs_error *err);
/* Write waldir/checkpoint.<last> from the previous checkpoint and the
 * segments up to last: series records of series still in the head, samples
 * of those series with t >= mint. Written in a .tmp directory, fsynced and
 * renamed; then segments <= last and older checkpoints are deleted.
 * *bytes_dropped gets the size of the segments deleted. */
int tsdb_checkpoint_write(struct tsdb *db, const char *waldir, uint32_t last, int64_t mint,
                          uint64_t *bytes_dropped, struct bs_error *err);

/* ---------------------------------------------------- head chunk files */

/* <data>/chunks_head/NNNNNN (head_chunks.c, docs/format/head_chunks.md). */
#define TSDB_HCF_MAGIC UINT32_C(0x42534843) /* "BSHC" */
#define TSDB_HCF_VERSION 1
#define TSDB_HCF_HEADER 8                      /* magic be32, version u8, 3 zero bytes */
#define TSDB_HCF_REC_HEADER 39                 /* ref, mint, maxt, last v, enc, n, len */
#define TSDB_HCF_SIZE (UINT64_C(128) << 20)    /* file size cap (and mapping length) */
#define TSDB_HCF_MAX_CHUNK (UINT32_C(64) << 10) /* chunk bytes cap */
#define TSDB_HCF_SLOTS 4096                    /* live files at most */

struct tsdb_hchunks;
/* Called by scan for each good record: series ref, the chunk (ref set),
 * its sample count and newest value bits. */
typedef void (*tsdb_hchunks_scan_fn)(void *arg, uint64_t sref, const struct tsdb_hchunk *c,
                                     uint16_t nsamples, uint64_t last_v);
/* Use (creating it) <datadir>/chunks_head. No file is read yet. */
int tsdb_hchunks_open(const char *datadir, struct tsdb_hchunks **out, struct bs_error *err);
/* fsync the file being written and unmap everything. NULL is allowed. */
void tsdb_hchunks_close(struct tsdb_hchunks *hc);
/* Map every file and call fn for each good record whose maxt >= min_valid,
 * in file and offset order (so each series' chunks come oldest first). A
 * damaged tail is truncated with one warning. Call once, before writing.
 * Errors: BS_EIO when a file cannot be opened or mapped. */
int tsdb_hchunks_scan(struct tsdb_hchunks *hc, int64_t min_valid, tsdb_hchunks_scan_fn fn,
                      void *arg, struct bs_error *err);
/* Append one XOR chunk of series sref; OUT: *ref for tsdb_hchunks_data.
 * Thread-safe. BS_ENOSPC, BS_EIO, BS_ELIMIT or BS_ENOMEM on failure
 * (logged once per streak of failures; the caller keeps the chunk in
 * memory). */
int tsdb_hchunks_write(struct tsdb_hchunks *hc, uint64_t sref, int64_t mint, int64_t maxt,
                       uint16_t nsamples, uint64_t last_v, const uint8_t *data, uint32_t len,
                       uint64_t *ref);
/* Chunk bytes at ref, in the file's mapping (valid while the caller's
 * epoch lasts); *len and *nsamples (may be NULL) from the record. NULL
 * when the file is gone. */
const uint8_t *tsdb_hchunks_data(struct tsdb_hchunks *hc, uint64_t ref, uint32_t *len,
                                 uint16_t *nsamples);
/* fsync what was written (before WAL segments that hold the same samples
 * may be deleted). */
int tsdb_hchunks_sync(struct tsdb_hchunks *hc, struct bs_error *err);
/* Delete the files (but the current one) whose chunks all end before
 * mint; unmapping is retired through r (NULL: at once). Returns the
 * number of files deleted. */
size_t tsdb_hchunks_truncate(struct tsdb_hchunks *hc, int64_t mint, struct tsdb_reclaim *r);
void tsdb_hchunks_stats(struct tsdb_hchunks *hc, uint64_t *written, uint64_t *failures,
                        size_t *files);

/* Write a head checkpoint (a snapshot of the head): cut the WAL, then
 * write waldir/checkpoint.<last segment before the cut> from the head
 * itself - a series record for every live series and an open chunks
 * record (type 4, with encoder states) with every non-empty open chunk -
 * after fsyncing the head chunk files that hold the closed chunks; then
 * delete the segments it covers and older checkpoints. Replay then reads
 * only this checkpoint and the segments written after the cut. Fails with
 * BS_EBUSY (nothing written) when a closed chunk is held in memory because
 * a head chunk file write failed. Caller holds compact_mu; the WAL must be
 * open. */
int tsdb_checkpoint_head(struct tsdb *db, struct bs_error *err);

/* ---------------------------------------------------------------- blocks */

#define TSDB_BLOCK_VERSION 1
/* Index format written (docs/format/index.md): 2 since 2026-11-27 (series
 * entries 8-byte aligned, postings lists as varint deltas); 1 is read. */
#define TSDB_INDEX_VERSION 2
#define TSDB_ULID_LEN 26
#define TSDB_CHUNK_ENC_XOR 1
#define TSDB_BLOCK_SEGMENT_MAX (UINT64_C(512) << 20) /* chunk segment file cap */
#define TSDB_INDEX_MAGIC UINT32_C(0x42534958)        /* "BSIX" */
#define TSDB_CHUNKS_MAGIC UINT32_C(0x42534348)       /* "BSCH" */
#define TSDB_INDEX_TOC_LEN 36                        /* 4 x u64 + crc */

struct tsdb_block_meta {
    char ulid[TSDB_ULID_LEN + 1];
    int64_t mint, maxt; /* [mint, maxt): maxt exclusive */
    uint64_t num_samples, num_series, num_chunks;
    int level;
    char (*sources)[TSDB_ULID_LEN + 1];
    size_t nsources;
    int version;
};

/* A chunk given to the block writer (borrowed). */
struct tsdb_bw_chunk {
    int64_t mint, maxt;
    const uint8_t *data;
    uint32_t len;
    uint32_t nsamples;
    uint8_t enc; /* TSDB_CHUNK_ENC_*; 0 means XOR */
};

/* A series given to the block writer (borrowed). */
struct tsdb_bw_series {
    const struct labels *ls;
    struct tsdb_bw_chunk *chunks; /* oldest first, non-overlapping */
    size_t n;
};

/* A new ULID: 48-bit milliseconds and 80 random bits, Crockford base32. */
void tsdb_ulid_new(char out[TSDB_ULID_LEN + 1]);
bool tsdb_ulid_valid(const char *s);

/* Write a block of the given series (any order; sorted here by labels)
 * into parent/<ulid>: built in parent/<ulid>.tmp, fsynced, renamed. meta
 * gives mint, maxt, level and sources (its ulid is filled in here, and the
 * stats are computed). */
int tsdb_block_write(const char *parent, struct tsdb_block_meta *meta,
                     struct tsdb_bw_series *series, size_t n, struct bs_error *err);

/* As tsdb_block_write, but every series' chunks (XOR only; each series'
 * samples must lie in [meta->mint, meta->maxt)) are decoded and re-encoded
 * as dense chunks with shared time columns, as block merges write them
 * (compact.c). A series whose XOR chunks do not decode is written with
 * its chunks unchanged (one warning). BS_EINVAL for another chunk
 * encoding, or the writer's errors. */
int tsdb_block_write_dense(const char *parent, struct tsdb_block_meta *meta,
                           struct tsdb_bw_series *series, size_t n, struct bs_error *err);

/* Streaming block writer (what tsdb_block_write uses): new() creates
 * parent/<ulid>.tmp; add() writes one series' chunks to the segments at
 * once (chunk bytes may be freed after it returns; the labels are
 * borrowed until commit or abort; series must come in strictly increasing
 * labels_cmp order, else BS_EINVAL); commit() writes the index and
 * meta.json, fsyncs and renames (meta as for tsdb_block_write; the stats
 * and ulid are filled in) and frees the writer whatever the result, the
 * .tmp directory removed on failure; abort() removes the .tmp directory
 * and frees. An add() failure leaves the writer to be aborted. */
struct tsdb_block_writer;
int tsdb_block_writer_new(const char *parent, struct tsdb_block_writer **out, struct bs_error *err);
const char *tsdb_block_writer_ulid(const struct tsdb_block_writer *w);
int tsdb_block_writer_add(struct tsdb_block_writer *w, const struct labels *ls,
                          const struct tsdb_bw_chunk *chunks, size_t n, struct bs_error *err);
/* add() that also reports where each chunk went: refs[i] (room for n,
 * may be NULL) gets chunk i's reference, for chunks of later series that
 * refer to it (TSDB_CHUNK_ENC_DENSE_ST). */
int tsdb_block_writer_add_refs(struct tsdb_block_writer *w, const struct labels *ls,
                               const struct tsdb_bw_chunk *chunks, size_t n, uint64_t *refs,
                               struct bs_error *err);
int tsdb_block_writer_commit(struct tsdb_block_writer *w, struct tsdb_block_meta *meta,
                             struct bs_error *err);
void tsdb_block_writer_abort(struct tsdb_block_writer *w);
/* Write the index in an older format version (1) instead of
 * TSDB_INDEX_VERSION, so tests can check that such blocks still read.
 * BS_EINVAL for a version that is not written. */
int tsdb_block_writer_set_index_version(struct tsdb_block_writer *w, unsigned version);

/* meta.json */
int tsdb_block_meta_read(const char *blockdir, struct tsdb_block_meta *m, struct bs_error *err);
int tsdb_block_meta_write(const char *blockdir, const struct tsdb_block_meta *m,
                          struct bs_error *err);
void tsdb_block_meta_fini(struct tsdb_block_meta *m);

struct tsdb_map { /* one read-only mmap */
    uint8_t *p;
    size_t len;
};

struct tsdb_postings_entry {  /* one row of the postings offset table */
    const char *name, *value; /* NUL-terminated, in the mmap */
    uint64_t off;             /* of the list, in the index file */
};

/* An open block: files mapped read-only, reference counted. */
struct tsdb_block {
    char *dir;
    struct tsdb_block_meta meta;
    int refs; /* atomic; the db's list holds one */
    bool deleted;
    bool no_merge; /* a merge found it damaged: never merged again (compact.c) */
    struct tsdb_map index;
    struct tsdb_map *segs;
    size_t nsegs;
    uint64_t syms_off, syms_len; /* symbols section content in index */
    uint64_t series_off, series_end;
    uint64_t postings_off, postings_end;
    uint64_t all_off; /* the all-series postings list */
    unsigned index_version;
    unsigned series_shift; /* series id = entry offset >> series_shift */
    struct tsdb_postings_entry *po;
    size_t npo;
    uint64_t bytes; /* on disk */
};

/* A chunk reference as stored: segment << 32 | offset. */
struct tsdb_chunk_meta {
    int64_t mint, maxt;
    uint64_t ref;
};

int tsdb_block_open(const char *dir, struct tsdb_block **out, struct bs_error *err);
void tsdb_block_ref(struct tsdb_block *b);
/* Drop a reference; the last one unmaps and frees. */
void tsdb_block_unref(struct tsdb_block *b);
/* Sorted series ids (malloc'd) of a matcher (same contract as
 * tsdb_postings_for_matcher) or of all series. */
int tsdb_block_postings_for_matcher(struct tsdb_block *b, const struct labels_matcher *m,
                                    uint64_t **out, size_t *n);
int tsdb_block_postings_all(struct tsdb_block *b, uint64_t **out, size_t *n);
/* Sorted ids of the series of block b in the postings of every matcher of
 * ms that does not match the empty string (all series when none is such);
 * the others are for the caller to check on the labels. *out malloc'd. */
int tsdb_block_postings_matching(struct tsdb_block *b, struct labels_matcher *const *ms,
                                 size_t nms, uint64_t **out, size_t *nout);
/* Decode series id: labels into ls (label array from arena, strings in the
 * mmap) when ls is non-NULL, chunk metas into *chks (grown with realloc)
 * when chks is non-NULL. BS_ECORRUPT on damage, BS_ENOMEM. */
int tsdb_block_series(struct tsdb_block *b, uint64_t id, struct bs_arena *arena, struct labels *ls,
                      struct tsdb_chunk_meta **chks, size_t *nchks, size_t *chks_cap);
/* Bytes of the chunk at ref, CRC checked. OUT: *enc (may be NULL) gets
 * its encoding, TSDB_CHUNK_ENC_XOR or TSDB_CHUNK_ENC_DENSE; other
 * encodings are BS_ECORRUPT. */
int tsdb_block_chunk(struct tsdb_block *b, uint64_t ref, const uint8_t **p, size_t *len,
                     uint8_t *enc);
/* For the TSDB_CHUNK_ENC_DENSE_ST chunk p[0..len) of block b: the bytes of
 * the dense chunk holding its time column (in the mapping, CRC checked).
 * BS_ECORRUPT, with a message naming the reference, when the reference is
 * damaged, out of range, or leads to anything but a TSDB_CHUNK_ENC_DENSE
 * chunk. OUT: *tp, *tlen. */
int tsdb_block_chunk_time(struct tsdb_block *b, const uint8_t *p, size_t len, const uint8_t **tp,
                          size_t *tlen, struct bs_error *err);
/* Start decoder d over the dense chunk p[0..len) of block b, of encoding
 * enc (TSDB_CHUNK_ENC_DENSE or _DENSE_ST, the latter resolved with
 * tsdb_block_chunk_time). b may be NULL for a chunk outside any block (a
 * plain dense chunk decodes; a shared-time one is BS_ECORRUPT). Returns 0,
 * BS_ECORRUPT, BS_ENOMEM or BS_EINVAL (another encoding), with a message
 * in err (may be NULL); on failure d
 * yields nothing. d must be finished with tsdb_dense_dec_fini either way,
 * and borrows the block's mapping (hold a reference). */
int tsdb_block_dense_init(struct tsdb_block *b, struct tsdb_dense_dec *d, uint8_t enc,
                          const uint8_t *p, size_t len, struct bs_error *err);

/* Delete a directory tree (blocks, checkpoints). 0 or errno. */
int tsdb_rmdir_all(const char *path);
/* fsync a directory; 0 or errno. */
int tsdb_fsync_dir(const char *path);

/* ------------------------------------------------------------------- db */

/* Block ranges: at most this many levels, and no merged block longer than
 * 31 days (as Prometheus). */
#define TSDB_MAX_RANGES 10
#define TSDB_MAX_BLOCK_RANGE_MS (INT64_C(31) * 24 * 3600 * 1000)

/* Bump the process-wide self-metrics (registered once, see db.c). */
void tsdb_metrics_add(uint64_t appended, uint64_t out_of_order, uint64_t duplicate);

struct tsdb {
    struct tsdb_options opts;
    char *dir;
    char *waldir;
    int lock_fd;
    struct tsdb_head head;
    struct tsdb_wal wal;

    /* Blocks, sorted by mint; the list and head.min_valid change together
     * under blocks_mu, so a querier sees each sample exactly once. */
    pthread_mutex_t blocks_mu;
    struct tsdb_block **blocks;
    size_t nblocks;

    /* Head truncation holds it for writing, query selection for reading
     * (see querier.c). Lock order: trunc_lock -> WAL mutex. */
    pthread_rwlock_t trunc_lock;
    pthread_mutex_t compact_mu; /* one compaction at a time */
    pthread_mutex_t compactor_mu;
    pthread_cond_t compactor_cond;
    pthread_t compactor;
    bool compactor_started, compactor_stop;
    uint64_t compactions, compaction_failures; /* atomics */
    uint64_t merges, merge_failures;           /* block merges (atomics) */
    uint64_t time_retentions, size_retentions; /* blocks deleted (atomics) */
    /* Ranges a merged block may span: block_range_ms times 3^k up to the
     * maximum (compact.c); nranges is at least 1. */
    int64_t ranges[TSDB_MAX_RANGES];
    size_t nranges;
    /* Head checkpoints (WAL mutex): the WAL size right after the last
     * one and that checkpoint's size; the next is due once the WAL grew
     * by more than max(64 MiB, half that size). */
    uint64_t ck_wal_bytes, ck_bytes;
    uint64_t head_checkpoints; /* atomic */
    /* Tombstones of the head and the blocks (admin.c, tombstones.h). */
    struct tsdb_tombstore *tombstore;
};

/* compact.c */
/* Fill db->ranges from the options (see compact.c). */
void tsdb_ranges_init(struct tsdb *db);
/* Merge blocks upward while a merge is due (compact.c): returns 0 or the
 * first error; *merged counts the merges done. Caller holds compact_mu. */
int tsdb_compact_blocks(struct tsdb *db, size_t *merged, struct bs_error *err);
/* Load the blocks under db->dir (deleting *.tmp leftovers and partial
 * blocks) and set head.min_valid. */
int tsdb_blocks_load(struct tsdb *db, struct bs_error *err);
void tsdb_blocks_close(struct tsdb *db);
int tsdb_compactor_start(struct tsdb *db, struct bs_error *err);
void tsdb_compactor_stop(struct tsdb *db);
/* Wake the compactor now when the head is due for compaction (called
 * after each commit, as Prometheus does, so that a head growing faster
 * than the compaction interval is cut in time). Cheap when not due. */
void tsdb_compactor_kick(struct tsdb *db);
/* Write head range [mint, maxt) as a block (none when empty; *wrote tells). */
int tsdb_compact_head_range(struct tsdb *db, int64_t mint, int64_t maxt, bool *wrote,
                            struct bs_error *err);

#endif
