/* SPDX-License-Identifier: Apache-2.0
 *
 * Unit tests of shared time columns in merged blocks
 * (TSDB_CHUNK_ENC_DENSE_ST, compact.c recode_series, block_read.c
 * tsdb_block_chunk_time): a merge stores each scrape target's time column
 * once and the other series of the target refer to it; queries, merges of
 * merged blocks and a reopen read every time and value bit pattern back;
 * damaged or out-of-range references are BS_ECORRUPT with a message, never
 * a crash, for the block reader, the querier and a merge.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_tsdb_util.h"
#include "tsdb/tsdb_int.h"

#define HOUR INT64_C(3600000)
#define MINUTE INT64_C(60000)
#define NT 3    /* scrape targets */
#define PER_T 8 /* series per target */
#define NLONE 2 /* series with times of their own */
#define NS (NT * PER_T + NLONE)

static struct tsdb *open_store_opt(const char *dir, bool dense_head)
{
    struct tsdb_options o;
    tsdb_options_default(&o);
    o.dir = dir;
    o.dense_head_blocks = dense_head;
    o.wal_fsync_interval_ms = 0;
    o.wal_segment_size = 64 * 1024;
    o.compaction_interval_ms = -1;
    struct tsdb *db = NULL;
    struct bs_error err = {0};
    if (tsdb_open(&db, &o, &err))
        fail_msg("tsdb_open(%s): %s", dir, err.msg);
    return db;
}

static struct tsdb *open_store(const char *dir)
{
    return open_store_opt(dir, false);
}

/* Scrape jitter of target tg at grid time t: 0..10 ms, deterministic. */
static int64_t jitter(int tg, int64_t t)
{
    uint64_t x = (uint64_t)t * 0x9E3779B97F4A7C15ULL + (uint64_t)tg * 0xBF58476D1CE4E5B9ULL;
    x ^= x >> 31;
    return (int64_t)(x % 11); /* 0..10: no sample before 0 */
}

static double value_of(int i, int64_t t)
{
    int64_t k = t / MINUTE;
    switch (i % 4) {
    case 0:
        return (double)(k * 17 + i);
    case 1:
        return (double)(k % 100) / 10.0 + 0.05;
    case 2:
        return k % 50 == 7 ? bs_stale_nan() : 42.0;
    default:
        return bs_float_from_bits((uint64_t)k * 0x9E3779B97F4A7C15ULL);
    }
}

/* One scrape a minute of every target in [from, to): series of a target
 * share its jittered time; lone series are offset by their index. */
static void ingest(struct tsdb *db, int64_t from, int64_t to)
{
    char spec[64];
    for (int64_t t = from; t < to; t += MINUTE) {
        struct tsdb_appender *a = tsdb_appender_new(db);
        for (int i = 0; i < NS; i++) {
            int tg = i < NT * PER_T ? i % NT : -1;
            int64_t ts = tg >= 0 ? t + jitter(tg, t) : t + 7 * i + 1;
            snprintf(spec, sizeof(spec), "__name__=m%d,target=t%d,i=%02d", i % 3, tg + 1, i);
            assert_int_equal(add_spec(a, spec, ts, value_of(i, t)), 0);
        }
        struct bs_error err = {0};
        if (tsdb_appender_commit(a, &err))
            fail_msg("commit: %s", err.msg);
    }
}

static void same_answers(struct tsdb *x, struct tsdb *ref)
{
    static const int64_t spans[][2] = {{0, INT64_MAX},
                                       {5 * HOUR, 7 * HOUR},
                                       {6 * HOUR - 3, 6 * HOUR + 3},
                                       {13 * HOUR + 7, 13 * HOUR + 59 * MINUTE},
                                       {17 * HOUR, 40 * HOUR}};
    const char *ms[] = {"__name__=~.+", "target=t2", "i=~0[3-7]"};
    for (size_t s = 0; s < sizeof(spans) / sizeof(*spans); s++) {
        for (size_t m = 0; m < sizeof(ms) / sizeof(*ms); m++) {
            char *a = dump_exact(x, spans[s][0], spans[s][1], ms[m]);
            char *b = dump_exact(ref, spans[s][0], spans[s][1], ms[m]);
            if (strcmp(a, b) != 0)
                fail_msg("[%lld, %lld] %s differs:\n%.2000s\n--- reference:\n%.2000s",
                         (long long)spans[s][0], (long long)spans[s][1], ms[m], a, b);
            free(a);
            free(b);
        }
    }
}

/* Count the chunks of block b by encoding. */
static void count_encodings(struct tsdb_block *b, size_t *dense, size_t *shared, size_t *other)
{
    uint64_t *ids;
    size_t nids;
    *dense = *shared = *other = 0;
    assert_int_equal(tsdb_block_postings_all(b, &ids, &nids), 0);
    struct tsdb_chunk_meta *chks = NULL;
    size_t nchks = 0, cap = 0;
    for (size_t i = 0; i < nids; i++) {
        assert_int_equal(tsdb_block_series(b, ids[i], NULL, NULL, &chks, &nchks, &cap), 0);
        for (size_t c = 0; c < nchks; c++) {
            const uint8_t *p;
            size_t len;
            uint8_t enc;
            assert_int_equal(tsdb_block_chunk(b, chks[c].ref, &p, &len, &enc), 0);
            if (enc == TSDB_CHUNK_ENC_DENSE) {
                (*dense)++;
            } else if (enc == TSDB_CHUNK_ENC_DENSE_ST) {
                (*shared)++;
                const uint8_t *tp;
                size_t tlen;
                struct bs_error err = {0};
                assert_int_equal(tsdb_block_chunk_time(b, p, len, &tp, &tlen, &err), 0);
            } else {
                (*other)++;
            }
        }
    }
    free(chks);
    free(ids);
}

static void test_merge_shares_time(void **state)
{
    (void)state;
    char *d1 = make_tmpdir(), *d2 = make_tmpdir();
    struct tsdb *x = open_store(d1), *ref = open_store(d2);
    for (int64_t h = 0; h < 28; h++) {
        ingest(x, h * HOUR, (h + 1) * HOUR);
        ingest(ref, h * HOUR, (h + 1) * HOUR);
        compact_ok(x);
    }
    struct tsdb_stats st;
    tsdb_stats(x, &st);
    assert_int_equal(st.merge_failures, 0);
    pthread_mutex_lock(&x->blocks_mu);
    /* [0, 18h) merged from 6 h blocks that were merged themselves: its
     * sources held shared-time chunks too */
    assert_true(x->nblocks >= 2);
    struct tsdb_block *b = x->blocks[0];
    assert_int_equal(b->meta.mint, 0);
    assert_int_equal(b->meta.maxt, 18 * HOUR);
    assert_int_equal(b->meta.level, 3);
    size_t dense, shared, other;
    count_encodings(b, &dense, &shared, &other);
    /* one column per target plus the lone series; the rest refer */
    assert_int_equal(dense, NT + NLONE);
    assert_int_equal(shared, NT * (PER_T - 1));
    assert_int_equal(other, 0);
    print_message("18 h block: %llu samples in %llu bytes (%.3f bytes/sample)\n",
                  (unsigned long long)b->meta.num_samples, (unsigned long long)b->bytes,
                  (double)b->bytes / (double)b->meta.num_samples);
    pthread_mutex_unlock(&x->blocks_mu);
    same_answers(x, ref);

    /* and again from disk */
    tsdb_close(x);
    x = open_store(d1);
    same_answers(x, ref);
    tsdb_close(x);
    tsdb_close(ref);
    rmrf(d1);
    rmrf(d2);
    free(d1);
    free(d2);
}

/* Blocks cut from the head with dense_head_blocks: dense chunks with
 * shared time columns from level 1 on, the same answers, and merges of
 * such blocks. */
static void test_dense_head_blocks(void **state)
{
    (void)state;
    char *d1 = make_tmpdir(), *d2 = make_tmpdir();
    struct tsdb *x = open_store_opt(d1, true), *ref = open_store(d2);
    for (int64_t h = 0; h < 9; h++) {
        ingest(x, h * HOUR, (h + 1) * HOUR);
        ingest(ref, h * HOUR, (h + 1) * HOUR);
        compact_ok(x);
    }
    struct tsdb_stats st;
    tsdb_stats(x, &st);
    assert_int_equal(st.merge_failures, 0);
    pthread_mutex_lock(&x->blocks_mu);
    /* [0, 6h) merged, then 2 h blocks straight from the head */
    assert_true(x->nblocks >= 2);
    for (size_t i = 0; i < x->nblocks; i++) {
        size_t dense, shared, other;
        count_encodings(x->blocks[i], &dense, &shared, &other);
        if (getenv("DBG"))
            print_message("block [%lld, %lld) level %d: %zu dense, %zu shared, %zu other\n",
                          (long long)x->blocks[i]->meta.mint, (long long)x->blocks[i]->meta.maxt,
                          x->blocks[i]->meta.level, dense, shared, other);
        assert_int_equal(dense, NT + NLONE);
        assert_int_equal(shared, NT * (PER_T - 1));
        assert_int_equal(other, 0);
    }
    assert_int_equal(x->blocks[x->nblocks - 1]->meta.level, 1);
    pthread_mutex_unlock(&x->blocks_mu);
    same_answers(x, ref);
    tsdb_close(x);
    x = open_store_opt(d1, true);
    same_answers(x, ref);
    tsdb_close(x);
    tsdb_close(ref);
    rmrf(d1);
    rmrf(d2);
    free(d1);
    free(d2);
}

/* tsdb_block_write_dense: series of one target share a column, and a
 * series whose XOR chunk does not decode is copied unchanged instead of
 * failing the block. */
static void test_write_dense_damaged_xor(void **state)
{
    (void)state;
    enum { NSR = 4, M = 120 };
    char *parent = make_tmpdir();
    struct labels_builder lb[NSR];
    struct labels ls[NSR];
    struct tsdb_xor_enc xe[NSR];
    struct tsdb_bw_chunk ch[NSR];
    struct tsdb_bw_series ser[NSR];
    char spec[32];
    for (int s = 0; s < NSR; s++) {
        labels_builder_init(&lb[s]);
        snprintf(spec, sizeof(spec), "__name__=w%d", s);
        ls[s] = mk_labels(&lb[s], spec);
        tsdb_xor_enc_init(&xe[s]);
        for (int i = 0; i < M; i++)
            assert_int_equal(tsdb_xor_enc_append(&xe[s], (int64_t)i * MINUTE + jitter(0, i),
                                                 bs_float_bits((double)(i * (s + 1)))),
                             0);
        uint32_t len = (uint32_t)tsdb_xor_enc_bytes(&xe[s]);
        if (s == 2)
            len /= 2; /* truncated: the decoder runs out of bits */
        ch[s] = (struct tsdb_bw_chunk){0, (M - 1) * MINUTE + 10, xe[s].buf, len, M, 0};
        ser[s] = (struct tsdb_bw_series){&ls[s], &ch[s], 1};
    }
    struct tsdb_block_meta meta = {.mint = 0, .maxt = 2 * HOUR, .level = 1};
    struct bs_error err = {0};
    if (tsdb_block_write_dense(parent, &meta, ser, NSR, &err))
        fail_msg("write: %s", err.msg);
    char dir[4200];
    snprintf(dir, sizeof(dir), "%s/%s", parent, meta.ulid);
    struct tsdb_block *b;
    if (tsdb_block_open(dir, &b, &err))
        fail_msg("open: %s", err.msg);
    size_t dense, shared, other;
    count_encodings(b, &dense, &shared, &other);
    assert_int_equal(dense, 1);
    assert_int_equal(shared, NSR - 2);
    assert_int_equal(other, 1); /* the damaged series, copied */
    tsdb_block_unref(b);
    for (int s = 0; s < NSR; s++) {
        tsdb_xor_enc_fini(&xe[s]);
        labels_builder_fini(&lb[s]);
    }
    rmrf(parent);
    free(parent);
}

/* ------------------------------------------------- damaged references */

#define N 100

static void times_of(int64_t base, int64_t *ts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ts[i] = base + (int64_t)i * MINUTE + jitter(0, (int64_t)i);
}

/* A block in parent covering [base, base + 2h) with these series:
 *   s00  dense chunk (holds the time column)
 *   s01  XOR chunk
 *   s02  shared, tref = s00 (good)
 *   s03  shared, tref = s02 (a shared chunk: references do not chain)
 *   s04  shared, tref = s01 (an XOR chunk)
 *   s05  shared, tref in segment 9 (there is one segment)
 *   s06  shared, tref past the end of the segment
 *   s07  shared, tref into the middle of s00's record
 *   s08  shared, tref = s00, but its own times start a minute later
 * s03..s08 only when damaged is true. Returns the block directory
 * (malloc'd). */
#define NSER 9
static char *write_block(const char *parent, int64_t base, bool damaged)
{
    struct tsdb_block_writer *w;
    struct bs_error err = {0};
    if (tsdb_block_writer_new(parent, &w, &err))
        fail_msg("writer: %s", err.msg);
    int64_t ts[N], ts2[N];
    uint64_t vs[N];
    times_of(base, ts, N);
    times_of(base + MINUTE, ts2, N);
    for (size_t i = 0; i < N; i++)
        vs[i] = bs_float_bits((double)i * 1.5);
    struct labels_builder lb[NSER];
    struct labels ls[NSER];
    char spec[32];
    for (int i = 0; i < NSER; i++) {
        labels_builder_init(&lb[i]);
        snprintf(spec, sizeof(spec), "__name__=s%02d", i);
        ls[i] = mk_labels(&lb[i], spec);
    }
    uint64_t refs[NSER] = {0};
    uint8_t *data;
    size_t len;
    assert_int_equal(tsdb_dense_encode(NULL, ts, vs, N, &data, &len), 0);
    struct tsdb_bw_chunk c0 = {ts[0], ts[N - 1], data, (uint32_t)len, N, TSDB_CHUNK_ENC_DENSE};
    assert_int_equal(tsdb_block_writer_add_refs(w, &ls[0], &c0, 1, &refs[0], &err), 0);
    free(data);
    struct tsdb_xor_enc xe;
    tsdb_xor_enc_init(&xe);
    for (size_t i = 0; i < N; i++)
        assert_int_equal(tsdb_xor_enc_append(&xe, ts[i], vs[i]), 0);
    struct tsdb_bw_chunk c1 = {ts[0], ts[N - 1],         xe.buf, (uint32_t)tsdb_xor_enc_bytes(&xe),
                               N,     TSDB_CHUNK_ENC_XOR};
    assert_int_equal(tsdb_block_writer_add_refs(w, &ls[1], &c1, 1, &refs[1], &err), 0);
    tsdb_xor_enc_fini(&xe);
    for (int s = 2; s <= (damaged ? 8 : 2); s++) {
        uint64_t tref = refs[0];
        const int64_t *tt = ts;
        if (s == 3)
            tref = refs[2];
        else if (s == 4)
            tref = refs[1];
        else if (s == 5)
            tref = (UINT64_C(9) << 32) | 8;
        else if (s == 6)
            tref = (refs[0] & ~(uint64_t)UINT32_MAX) | UINT32_C(0x7fffffff);
        else if (s == 7)
            tref = refs[0] + 3;
        else if (s == 8)
            tt = ts2;
        uint8_t *sd;
        size_t sl;
        assert_int_equal(tsdb_dense_encode_shared(NULL, tt, vs, N, tref, &sd, &sl), 0);
        struct tsdb_bw_chunk cs = {tt[0], tt[N - 1], sd, (uint32_t)sl, N, TSDB_CHUNK_ENC_DENSE_ST};
        assert_int_equal(tsdb_block_writer_add_refs(w, &ls[s], &cs, 1, &refs[s], &err), 0);
        free(sd);
    }
    char *dir = malloc(4200);
    snprintf(dir, 4200, "%s/%s", parent, tsdb_block_writer_ulid(w));
    struct tsdb_block_meta meta = {.mint = base, .maxt = base + 2 * HOUR, .level = 1};
    if (tsdb_block_writer_commit(w, &meta, &err))
        fail_msg("commit: %s", err.msg);
    for (int i = 0; i < NSER; i++)
        labels_builder_fini(&lb[i]);
    return dir;
}

/* The block reader: the good reference decodes bit-exactly, every damaged
 * one is BS_ECORRUPT with a message, for tsdb_block_dense_init and (where
 * the reference itself is bad) tsdb_block_chunk_time. */
static void test_damaged_refs(void **state)
{
    (void)state;
    char *parent = make_tmpdir();
    char *dir = write_block(parent, 0, true);
    struct tsdb_block *b;
    struct bs_error err = {0};
    if (tsdb_block_open(dir, &b, &err))
        fail_msg("open: %s", err.msg);
    uint64_t *ids;
    size_t nids;
    assert_int_equal(tsdb_block_postings_all(b, &ids, &nids), 0);
    assert_int_equal(nids, NSER);
    struct tsdb_chunk_meta *chks = NULL;
    size_t nchks = 0, cap = 0;
    int64_t ts[N];
    times_of(0, ts, N);
    for (size_t s = 2; s < NSER; s++) {
        assert_int_equal(tsdb_block_series(b, ids[s], NULL, NULL, &chks, &nchks, &cap), 0);
        assert_int_equal(nchks, 1);
        const uint8_t *p;
        size_t len;
        uint8_t enc;
        assert_int_equal(tsdb_block_chunk(b, chks[0].ref, &p, &len, &enc), 0);
        assert_int_equal(enc, TSDB_CHUNK_ENC_DENSE_ST);
        struct tsdb_dense_dec d;
        memset(&err, 0, sizeof(err));
        int rc = tsdb_block_dense_init(b, &d, enc, p, len, &err);
        if (s == 2) {
            assert_int_equal(rc, 0);
            for (size_t i = 0; i < N; i++) {
                assert_true(tsdb_dense_dec_next(&d));
                assert_int_equal(d.t, ts[i]);
                assert_true(d.v == bs_float_bits((double)i * 1.5));
            }
            assert_false(tsdb_dense_dec_next(&d));
            assert_int_equal(d.err, 0);
        } else {
            assert_int_equal(rc, BS_ECORRUPT);
            assert_false(tsdb_dense_dec_next(&d));
            assert_true(strstr(err.msg, dir) != NULL);
            if (getenv("DBG"))
                print_message("s%02zu: %s\n", s, err.msg);
        }
        tsdb_dense_dec_fini(&d);
        const uint8_t *tp;
        size_t tlen;
        rc = tsdb_block_chunk_time(b, p, len, &tp, &tlen, &err);
        assert_int_equal(rc, s == 2 || s == 8 ? 0 : BS_ECORRUPT);
    }
    /* not a dense encoding at all */
    struct tsdb_dense_dec d;
    assert_int_equal(
        tsdb_block_dense_init(b, &d, TSDB_CHUNK_ENC_XOR, (const uint8_t *)"x", 1, &err), BS_EINVAL);
    tsdb_dense_dec_fini(&d);
    free(chks);
    free(ids);
    tsdb_block_unref(b);
    free(dir);
    rmrf(parent);
    free(parent);
}

/* A db over blocks with damaged references: queries skip the damaged
 * chunks (and return the good ones), a merge that meets one fails cleanly
 * and leaves its sources in place. */
static void test_damaged_refs_db(void **state)
{
    (void)state;
    char *parent = make_tmpdir();
    free(write_block(parent, 0, true));
    free(write_block(parent, 2 * HOUR, false));
    free(write_block(parent, 4 * HOUR, false));
    free(write_block(parent, 6 * HOUR, false)); /* so that [0, 6h) is due for a merge */
    struct tsdb *db = open_store(parent);
    char *all = dump_exact(db, INT64_MIN, INT64_MAX, "__name__=~.+");
    /* s00, s01, s02 have samples in all four blocks; s03..s08 none in
     * the damaged block except s08's (its reference is good, its own first
     * time differs: the decoder refuses it) */
    size_t seen = 0;
    for (char *line = all; *line; seen++) {
        char *end = strchr(line, '\n');
        assert_non_null(end);
        int s = -1;
        assert_int_equal(sscanf(line, "s%d", &s), 1);
        size_t nsamples = 0;
        for (char *c = line; c < end; c++)
            nsamples += *c == ':';
        if (nsamples != (s <= 2 ? 4 * N : 0))
            fail_msg("s%02d: %zu samples", s, nsamples);
        line = end + 1;
    }
    assert_true(seen >= 3);
    free(all);
    struct bs_error err = {0};
    assert_int_equal(tsdb_compact_now(db, &err), BS_ECORRUPT);
    print_message("merge error: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "shared-time chunk"));
    struct tsdb_stats st;
    tsdb_stats(db, &st);
    assert_true(st.merge_failures >= 1);
    assert_int_equal(st.num_blocks, 4);
    tsdb_close(db);
    rmrf(parent);
    free(parent);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merge_shares_time),       cmocka_unit_test(test_dense_head_blocks),
        cmocka_unit_test(test_write_dense_damaged_xor), cmocka_unit_test(test_damaged_refs),
        cmocka_unit_test(test_damaged_refs_db),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
