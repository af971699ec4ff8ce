/* SPDX-License-Identifier: Apache-2.0
 *
 * Block merges and retention, against a reference store that keeps
 * everything in its head:
 *   - merges: 2 h blocks merge into 6 h and 18 h blocks (levels, sources
 *     and the dense encoding in the new blocks), the sources are deleted,
 *     every query answers bit-exactly as the reference, before and after
 *     a restart; a querier opened before a merge reads the same data after
 *     it, and a select made after it sees each sample once; a merge
 *     interrupted after its commit (sources still on disk) is repaired at
 *     open;
 *   - retention time 2 h: blocks older are gone, the rest answers as the
 *     reference;
 *   - retention size N: the oldest blocks go until blocks + WAL fit in N,
 *     the rest answers as the reference.
 * Sample times are synthetic (one sample a minute), so a day of data
 * takes milliseconds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <dirent.h>
#include <sys/stat.h>

#include "test_tsdb_util.h"
#include "tsdb/tsdb_int.h"

#define HOUR INT64_C(3600000)
#define MINUTE INT64_C(60000)
#define NS 12

static struct tsdb *open_store(const char *dir, int64_t retention_ms, int64_t retention_bytes)
{
    struct tsdb_options o;
    tsdb_options_default(&o);
    o.dir = dir;
    o.wal_fsync_interval_ms = 0;
    o.wal_segment_size = 64 * 1024;
    o.compaction_interval_ms = -1;
    o.retention_ms = retention_ms;
    o.retention_bytes = retention_bytes;
    struct tsdb *db = NULL;
    struct bs_error err = {0};
    if (tsdb_open(&db, &o, &err))
        fail_msg("tsdb_open(%s): %s", dir, err.msg);
    return db;
}

/* Values of several kinds: integer counters, decimal gauges, constants,
 * arbitrary bit patterns, stale markers. */
static double value_of(int i, int64_t t)
{
    int64_t k = t / MINUTE;
    switch (i % 5) {
    case 0:
        return (double)(k * 17 + i);
    case 1:
        return (double)(k % 100) / 10.0 + 0.05;
    case 2:
        return 42.0;
    case 3:
        return k % 50 == 7 ? bs_stale_nan()
                           : bs_float_from_bits((uint64_t)k * 0x9E3779B97F4A7C15ULL);
    default:
        return (double)((k * 7919) % 1013) * 0.001;
    }
}

/* One sample a minute for every series in [from, to) (ms). */
static void ingest(struct tsdb *db, int64_t from, int64_t to)
{
    char spec[64];
    for (int64_t t = from; t < to; t += MINUTE) {
        struct tsdb_appender *a = tsdb_appender_new(db);
        for (int i = 0; i < NS; i++) {
            snprintf(spec, sizeof(spec), "__name__=m%d,job=j%d,i=%02d", i % 3, i % 2, i);
            assert_int_equal(add_spec(a, spec, t + i, value_of(i, t)), 0);
        }
        struct bs_error err = {0};
        if (tsdb_appender_commit(a, &err))
            fail_msg("commit: %s", err.msg);
    }
}

static void same_answers(struct tsdb *x, struct tsdb *ref, int64_t from)
{
    static const int64_t spans[][2] = {{0, INT64_MAX},
                                       {0, 30 * MINUTE},
                                       {5 * HOUR, 7 * HOUR},
                                       {6 * HOUR - 1, 6 * HOUR + 1},
                                       {13 * HOUR, 13 * HOUR + 59 * MINUTE},
                                       {17 * HOUR, 40 * HOUR}};
    const char *ms[] = {"__name__=~.+", "__name__=m1", "job=j0", "i=~0[3-7]"};
    for (size_t s = 0; s < sizeof(spans) / sizeof(*spans); s++) {
        int64_t lo = spans[s][0] > from ? spans[s][0] : from, hi = spans[s][1];
        if (lo > hi)
            continue;
        for (size_t m = 0; m < sizeof(ms) / sizeof(*ms); m++) {
            char *a = dump_exact(x, lo, hi, ms[m]);
            char *b = dump_exact(ref, lo, hi, ms[m]);
            if (strcmp(a, b) != 0)
                fail_msg("[%lld, %lld] %s differs:\n%.2000s\n--- reference:\n%.2000s",
                         (long long)lo, (long long)hi, ms[m], a, b);
            free(a);
            free(b);
        }
    }
}

/* A seek in the middle of a long chunk returns the first sample at or
 * after the target. */
static void check_seek(struct tsdb *db, int64_t t)
{
    struct labels_matcher *m = mk_matcher("i=00");
    struct tsdb_querier *q = tsdb_querier_new(db, INT64_MIN, INT64_MAX);
    struct tsdb_series_set *set = NULL;
    assert_int_equal(tsdb_querier_select(q, &m, 1, &set, NULL), 0);
    assert_true(tsdb_series_set_next(set));
    struct tsdb_iterator *it = tsdb_series_set_iterator(set);
    assert_true(tsdb_iterator_seek(it, t + 1));
    int64_t got;
    double v;
    tsdb_iterator_at(it, &got, &v);
    assert_int_equal(got, t + MINUTE);
    assert_true(v == value_of(0, t + MINUTE));
    tsdb_iterator_free(it);
    tsdb_series_set_free(set);
    tsdb_querier_free(q);
    labels_matcher_free(m);
}

static uint64_t dir_size(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return 0;
    uint64_t total = 0;
    struct dirent *de;
    char sub[4200];
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
        struct stat st;
        if (lstat(sub, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode))
            total += dir_size(sub);
        else if (S_ISREG(st.st_mode))
            total += (uint64_t)st.st_size;
    }
    closedir(d);
    return total;
}

/* ----------------------------------------------------------- merges */

static void test_merge_levels(void **state)
{
    (void)state;
    char *d1 = make_tmpdir(), *d2 = make_tmpdir();
    struct tsdb *x = open_store(d1, 0, 0), *ref = open_store(d2, 0, 0);
    /* 3 h of data, compacted: blocks [0, 2h) and the head */
    ingest(x, 0, 3 * HOUR + 30 * MINUTE);
    ingest(ref, 0, 3 * HOUR + 30 * MINUTE);
    compact_ok(x);
    /* a querier that reads the 2 h blocks before they are merged */
    struct labels_matcher *m = mk_matcher("__name__=~.+");
    struct tsdb_querier *q = tsdb_querier_new(x, INT64_MIN, INT64_MAX);
    char *before = dump_exact(x, 0, 2 * HOUR, "__name__=~.+");

    for (int64_t h = 3; h < 28; h++) {
        ingest(x, h * HOUR + 30 * MINUTE, (h + 1) * HOUR + 30 * MINUTE);
        ingest(ref, h * HOUR + 30 * MINUTE, (h + 1) * HOUR + 30 * MINUTE);
        compact_ok(x);
    }
    struct tsdb_stats st;
    tsdb_stats(x, &st);
    /* head [26h, 28.5h); [0, 18h) and [18h, 24h) merged, the newest 2 h
     * block [24h, 26h) alone (it waits for a neighbour, as in Prometheus) */
    assert_int_equal(st.merge_failures, 0);
    assert_true(st.merges >= 4);
    pthread_mutex_lock(&x->blocks_mu);
    for (size_t i = 0; getenv("DBG") && i < x->nblocks; i++)
        print_message("block %lld %lld level %d\n", (long long)x->blocks[i]->meta.mint / HOUR,
                      (long long)x->blocks[i]->meta.maxt / HOUR, x->blocks[i]->meta.level);
    assert_int_equal(x->nblocks, 3);
    assert_int_equal(x->blocks[0]->meta.mint, 0);
    assert_int_equal(x->blocks[0]->meta.maxt, 18 * HOUR);
    assert_int_equal(x->blocks[0]->meta.level, 3);
    assert_int_equal(x->blocks[0]->meta.nsources, 9);
    assert_int_equal(x->blocks[1]->meta.mint, 18 * HOUR);
    assert_int_equal(x->blocks[1]->meta.maxt, 24 * HOUR);
    assert_int_equal(x->blocks[1]->meta.level, 2);
    assert_int_equal(x->blocks[1]->meta.nsources, 3);
    assert_int_equal(x->blocks[2]->meta.level, 1);
    assert_int_equal(x->blocks[0]->meta.num_samples, 18 * 60 * NS);
    /* merged chunks are dense, one per series (1080 samples) */
    assert_int_equal(x->blocks[0]->meta.num_chunks, NS);
    struct tsdb_chunk_meta *chks = NULL;
    size_t nchks = 0, cap = 0;
    assert_int_equal(tsdb_block_series(x->blocks[0], x->blocks[0]->series_off >> x->blocks[0]->series_shift, NULL, NULL,
                                       &chks, &nchks, &cap),
                     0);
    const uint8_t *p;
    size_t len;
    uint8_t enc = 0;
    assert_int_equal(tsdb_block_chunk(x->blocks[0], chks[0].ref, &p, &len, &enc), 0);
    assert_int_equal(enc, TSDB_CHUNK_ENC_DENSE);
    free(chks);
    print_message("18 h block: %llu samples in %llu bytes (%.3f bytes/sample)\n",
                  (unsigned long long)x->blocks[0]->meta.num_samples,
                  (unsigned long long)x->blocks[0]->bytes,
                  (double)x->blocks[0]->bytes / (double)x->blocks[0]->meta.num_samples);
    pthread_mutex_unlock(&x->blocks_mu);
    assert_int_equal(st.num_blocks, 3);

    /* the old querier still reads its (deleted) 2h blocks, and a select
     * made now sees each sample once */
    char *again = NULL;
    {
        struct tsdb_series_set *set = NULL;
        assert_int_equal(tsdb_querier_select(q, &m, 1, &set, NULL), 0);
        struct bs_buf out;
        bs_buf_init(&out, 0);
        bs_buf_puts(&out, "");
        while (tsdb_series_set_next(set)) {
            labels_format(tsdb_series_set_labels(set), &out);
            struct tsdb_iterator *it = tsdb_series_set_iterator(set);
            int64_t last = INT64_MIN;
            while (tsdb_iterator_next(it)) {
                int64_t t;
                double v;
                tsdb_iterator_at(it, &t, &v);
                assert_true(t > last);
                last = t;
                if (t <= 2 * HOUR)
                    bs_buf_printf(&out, " %lld:%016llx", (long long)t,
                                  (unsigned long long)bs_float_bits(v));
            }
            tsdb_iterator_free(it);
            bs_buf_putc(&out, '\n');
        }
        tsdb_series_set_free(set);
        again = bs_buf_steal(&out, NULL);
    }
    assert_string_equal(again, before);
    free(again);
    free(before);
    tsdb_querier_free(q);
    labels_matcher_free(m);

    same_answers(x, ref, 0);
    check_seek(x, 9 * HOUR);
    tsdb_close(x);
    x = open_store(d1, 0, 0);
    same_answers(x, ref, 0);
    tsdb_close(x);
    tsdb_close(ref);
    rmrf(d1);
    rmrf(d2);
    free(d1);
    free(d2);
}

/* A merge interrupted after its block was committed: the sources are
 * still there at open, and are deleted then. */
static void test_merge_interrupted(void **state)
{
    (void)state;
    char *d1 = make_tmpdir(), *d2 = make_tmpdir(), *saved = make_tmpdir();
    struct tsdb *x = open_store(d1, 0, 0), *ref = open_store(d2, 0, 0);
    ingest(x, 0, 9 * HOUR);
    ingest(ref, 0, 9 * HOUR);
    /* cut blocks [0,2h) .. [6h,8h) without merging; copy the three that a
     * merge will take aside */
    pthread_mutex_lock(&x->compact_mu);
    struct tsdb_head *h = &x->head;
    for (int64_t lo = 0; lo < 8 * HOUR; lo += 2 * HOUR) {
        bool wrote;
        __atomic_store_n(&h->min_valid, lo + 2 * HOUR, __ATOMIC_RELEASE);
        assert_int_equal(tsdb_compact_head_range(x, lo, lo + 2 * HOUR, &wrote, NULL), 0);
        assert_true(wrote);
    }
    pthread_mutex_unlock(&x->compact_mu);
    assert_int_equal(x->nblocks, 4);
    char cmd[9000];
    for (size_t i = 0; i < 3; i++) {
        snprintf(cmd, sizeof(cmd), "cp -a '%s' '%s/'", x->blocks[i]->dir, saved);
        assert_int_equal(system(cmd), 0);
    }
    compact_ok(x); /* merges the three 2 h blocks into [0, 6h) */
    struct tsdb_stats st;
    tsdb_stats(x, &st);
    assert_int_equal(st.merges, 1);
    tsdb_close(x);
    /* as if the process died before deleting the sources */
    snprintf(cmd, sizeof(cmd), "cp -a '%s'/* '%s/'", saved, d1);
    assert_int_equal(system(cmd), 0);
    x = open_store(d1, 0, 0);
    tsdb_stats(x, &st);
    assert_int_equal(st.num_blocks, 2);
    assert_int_equal(x->blocks[0]->meta.level, 2);
    same_answers(x, ref, 0);
    tsdb_close(x);
    tsdb_close(ref);
    rmrf(d1);
    rmrf(d2);
    rmrf(saved);
    free(d1);
    free(d2);
    free(saved);
}

/* --------------------------------------------------------- retention */

static void test_retention_time(void **state)
{
    (void)state;
    char *d1 = make_tmpdir(), *d2 = make_tmpdir();
    struct tsdb *x = open_store(d1, 2 * HOUR, 0), *ref = open_store(d2, 0, 0);
    for (int64_t h = 0; h < 12; h++) {
        ingest(x, h * HOUR, (h + 1) * HOUR);
        ingest(ref, h * HOUR, (h + 1) * HOUR);
        compact_ok(x);
    }
    struct tsdb_stats st;
    tsdb_stats(x, &st);
    /* newest sample just before 12h; the head holds [10h, 12h) (it is
     * compacted once it spans more than 3h), blocks end at 10h. A block
     * stays while its newest possible sample is younger than 2 h: only
     * [8h, 10h) */
    assert_int_equal(st.num_blocks, 1);
    assert_true(st.time_retentions >= 4);
    assert_int_equal(st.size_retentions, 0);
    pthread_mutex_lock(&x->blocks_mu);
    int64_t from = x->blocks[0]->meta.mint;
    pthread_mutex_unlock(&x->blocks_mu);
    assert_int_equal(from, 8 * HOUR);
    /* older data is gone */
    char *old = dump_exact(x, 0, from - 1, "__name__=~.+");
    assert_string_equal(old, "");
    free(old);
    /* the rest answers as the reference, also after a restart */
    same_answers(x, ref, from);
    tsdb_close(x);
    x = open_store(d1, 2 * HOUR, 0);
    same_answers(x, ref, from);
    tsdb_close(x);
    tsdb_close(ref);
    rmrf(d1);
    rmrf(d2);
    free(d1);
    free(d2);
}

static void test_retention_size(void **state)
{
    (void)state;
    char *d1 = make_tmpdir(), *d2 = make_tmpdir();
    struct tsdb *x = open_store(d1, 0, 0), *ref = open_store(d2, 0, 0);
    ingest(x, 0, 29 * HOUR);
    ingest(ref, 0, 29 * HOUR);
    compact_ok(x);
    /* blocks now: [0,18h) [18h,24h) and the newest [24h, 26h) */
    uint64_t sizes[8];
    size_t n = x->nblocks;
    assert_true(n == 3);
    for (size_t i = 0; i < n; i++)
        sizes[i] = x->blocks[i]->bytes;
    tsdb_close(x);
    char waldir[4200];
    snprintf(waldir, sizeof(waldir), "%s/wal", d1);
    uint64_t wal = dir_size(waldir);
    /* room for the WAL and the two newest blocks, not for the oldest */
    int64_t limit = (int64_t)(wal + sizes[2] + sizes[1] + sizes[0] / 2);
    x = open_store(d1, 0, limit);
    compact_ok(x);
    struct tsdb_stats st;
    tsdb_stats(x, &st);
    assert_int_equal(st.num_blocks, 2);
    assert_int_equal(st.size_retentions, 1);
    assert_true(st.blocks_bytes + dir_size(waldir) <= (uint64_t)limit);
    pthread_mutex_lock(&x->blocks_mu);
    int64_t from = x->blocks[0]->meta.mint;
    pthread_mutex_unlock(&x->blocks_mu);
    assert_int_equal(from, 18 * HOUR);
    char *old = dump_exact(x, 0, from - 1, "__name__=~.+");
    assert_string_equal(old, "");
    free(old);
    same_answers(x, ref, from);
    print_message("size limit %lld bytes: blocks %llu + WAL %llu bytes kept\n", (long long)limit,
                  (unsigned long long)st.blocks_bytes, (unsigned long long)dir_size(waldir));

    /* a limit below the WAL alone leaves no block, and the head answers */
    tsdb_close(x);
    x = open_store(d1, 0, 1);
    compact_ok(x);
    tsdb_stats(x, &st);
    assert_int_equal(st.num_blocks, 0);
    same_answers(x, ref, st.min_valid_time);
    tsdb_close(x);
    tsdb_close(ref);
    rmrf(d1);
    rmrf(d2);
    free(d1);
    free(d2);
}

int main(void)
{
    bs_log_set_level(BS_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merge_levels),
        cmocka_unit_test(test_merge_interrupted),
        cmocka_unit_test(test_retention_time),
        cmocka_unit_test(test_retention_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
