/* SPDX-License-Identifier: Apache-2.0
 *
 * tsdb internals shared by the files of the module and its unit tests:
 * the XOR chunk codec, the head (series, ref table, postings), the WAL
 * writer and replay, and struct tsdb itself. Nothing outside src/tsdb/ and
 * tests/unit/test_tsdb*.c may include this header.
 *
 * Lock order (never take a lock to the left while holding one to its right):
 *   WAL writer mutex -> series mutex
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

/* ------------------------------------------------------------ XOR chunks */

#define TSDB_CHUNK_MAX_SAMPLES 120
#define TSDB_CHUNK_RANGE_MS INT64_C(7200000) /* chunks never cross a 2h boundary */
#define TSDB_CHUNK_HEADER 2                  /* big-endian u16 sample count */
/* Upper bound of the encoded size of one sample, in bytes (first sample:
 * 10-byte varint + 8 bytes; later: 68 bits of dod + 77 bits of value). */
#define TSDB_CHUNK_SAMPLE_MAX 20

/* Encoder of one XOR chunk (see chunk_xor.c and docs/format/chunks.md).
 * buf is owned by the encoder and always zero past nbits. The encoded chunk
 * is buf[0 .. tsdb_xor_enc_bytes(e)). */
struct tsdb_xor_enc {
    uint8_t *buf;
    size_t cap;      /* bytes */
    size_t nbits;    /* bits used, header included */
    uint16_t n;      /* samples */
    int64_t mint;    /* time of the first sample */
    int64_t t;       /* last time */
    int64_t tdelta;  /* last time delta */
    uint64_t v;      /* last value bits */
    uint8_t leading; /* XOR window; 0xff = none yet */
    uint8_t trailing;
};

void tsdb_xor_enc_init(struct tsdb_xor_enc *e);
void tsdb_xor_enc_fini(struct tsdb_xor_enc *e);
/* Forget all samples but keep the buffer. */
void tsdb_xor_enc_reset(struct tsdb_xor_enc *e);
/* Append one sample. t must be greater than the previous sample's time
 * (the caller checks). Returns 0, or BS_ENOMEM (the chunk is unchanged). */
int tsdb_xor_enc_append(struct tsdb_xor_enc *e, int64_t t, uint64_t vbits);
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

/* A closed chunk: immutable once published, freed only at tsdb_close. */
struct tsdb_chunk {
    int64_t mint, maxt;
    uint32_t len; /* bytes in data */
    uint16_t n;
    uint8_t data[];
};

/* Index of the 2h range holding t (floor division). */
static inline int64_t tsdb_chunk_range_of(int64_t t)
{
    int64_t q = t / TSDB_CHUNK_RANGE_MS;
    if (t % TSDB_CHUNK_RANGE_MS < 0)
        q--;
    return q;
}

/* ------------------------------------------------------------------ head */

struct tsdb_series {
    tsdb_ref ref;
    uint64_t hash;             /* labels_hash(&lset) */
    struct labels lset;        /* array owned by the series; strings interned */
    struct tsdb_series *hnext; /* stripe hash chain (stripe lock) */
    bool wal_logged;           /* series record is in the WAL (WAL mutex) */

    pthread_mutex_t mu;         /* guards everything below */
    struct tsdb_chunk **chunks; /* closed chunks, oldest first */
    size_t nchunks, chunks_cap;
    struct tsdb_xor_enc open; /* the open chunk (open.n may be 0) */
    bool has_samples;
    int64_t min_t, max_t; /* valid when has_samples */
    uint64_t last_v;      /* bits of the newest sample */
};

#define TSDB_STRIPES 64
struct tsdb_stripe {
    pthread_mutex_t mu;
    struct tsdb_series **buckets;
    size_t nbuckets; /* power of two */
    size_t n;
} __attribute__((aligned(64)));

struct tsdb_plist { /* sorted, unique refs */
    uint64_t *refs;
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
    struct tsdb_pname **names;
    size_t name_buckets, nnames;
    struct tsdb_plist all;
};

#define TSDB_REF_PAGE_BITS 14
#define TSDB_REF_PAGE_SIZE (1u << TSDB_REF_PAGE_BITS)
#define TSDB_REF_PAGES (1u << 18) /* max ref is 2^32 - 1 */
#define TSDB_REF_MAX ((UINT64_C(1) << 32) - 1)

struct tsdb_head {
    struct labels_symtab *syms;
    struct tsdb_stripe stripes[TSDB_STRIPES];
    /* ref -> series, two levels; entries are published with release stores
     * and read lock-free with acquire loads. */
    struct tsdb_series ***pages;
    pthread_mutex_t pages_mu;
    struct tsdb_postings postings;
    uint64_t next_ref; /* guarded by postings.lock (write) */

    /* statistics, updated with atomics */
    uint64_t num_series;
    uint64_t samples_appended;
    uint64_t num_chunks;
    uint64_t ooo_samples;
    uint64_t dup_samples;
    int64_t min_time, max_time;
};

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
/* Append a sample to s; caller holds s->mu. Returns 0 when appended, 1 when
 * it is a bit-identical repeat of the newest sample (ignored),
 * BS_EOUTOFORDER, BS_EDUPLICATE or BS_ENOMEM. */
int tsdb_head_series_append(struct tsdb_head *h, struct tsdb_series *s, int64_t t, uint64_t vbits);
/* Does s hold a sample with mint <= t <= maxt? Caller holds s->mu. */
bool tsdb_head_series_has_sample_in(struct tsdb_series *s, int64_t mint, int64_t maxt);
void tsdb_head_note_time(struct tsdb_head *h, int64_t t);

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

/* ------------------------------------------------------------------- WAL */

#define TSDB_WAL_REC_SERIES 1
#define TSDB_WAL_REC_SAMPLES 2
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

/* List segment indices in waldir, sorted. *out malloc'd (NULL if none). */
int tsdb_wal_segments(const char *waldir, uint32_t **out, size_t *n, struct bs_error *err);

struct tsdb;
/* Replay every segment of waldir into db->head (adding the bytes kept to
 * db->wal.total_bytes). *next_seg gets the
 * index a new segment should use. Corrupt tails are truncated (one warning
 * per damaged segment); only failures to read the directory are errors. */
int tsdb_wal_replay(struct tsdb *db, const char *waldir, uint32_t *next_seg, struct bs_error *err);

/* ------------------------------------------------------------------- db */

/* Bump the process-wide self-metrics (registered once, see db.c). */
void tsdb_metrics_add(uint64_t appended, uint64_t out_of_order, uint64_t duplicate);

struct tsdb {
    struct tsdb_options opts;
    char *dir;
    int lock_fd;
    struct tsdb_head head;
    struct tsdb_wal wal;
};

#endif
