/* SPDX-License-Identifier: Apache-2.0
 *
 * Unit tests of the WAL: data and refs survive close and reopen, segments
 * rotate, a torn tail at any byte offset and a flipped byte are repaired
 * keeping exactly the batches before the damage, later segments survive a
 * damaged one, the data directory lock, and the background fsync policy.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "test_tsdb_util.h"
#include "tsdb/tsdb_int.h"

/* These tests look at the WAL segments a store leaves: no head snapshot
 * at close (that would fold the segments into a checkpoint). */
static struct tsdb *open_wal_db(const char *dir, int64_t fsync_ms, size_t seg_size)
{
    struct tsdb_options o;
    tsdb_options_default(&o);
    o.dir = dir;
    o.wal_fsync_interval_ms = fsync_ms;
    o.wal_segment_size = seg_size;
    o.head_snapshot_on_close = false;
    struct tsdb *db = NULL;
    struct bs_error err = {0};
    int rc = tsdb_open(&db, &o, &err);
    if (rc)
        fail_msg("tsdb_open(%s): %s", dir, err.msg);
    return db;
}

static uint64_t rng_state = 0x1234567887654321ULL;
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static void commit_ok(struct tsdb_appender *a)
{
    struct bs_error err = {0};
    if (tsdb_appender_commit(a, &err))
        fail_msg("commit: %s", err.msg);
}

static char *seg_file(const char *dir, unsigned seg)
{
    char *p = malloc(strlen(dir) + 32);
    sprintf(p, "%s/wal/%08u", dir, seg);
    return p;
}

static off_t file_size(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return -1;
    return st.st_size;
}

/* Batch k: for series s in 0..nseries-1, sample (k*1000, k*100+s). New
 * series appear in the batch where s first fits (series s exists from
 * batch s/4 on), so series records are spread over the log. */
#define NSERIES 12
static void write_batch(struct tsdb *db, int k)
{
    struct tsdb_appender *a = tsdb_appender_new(db);
    char spec[64];
    for (int s = 0; s < NSERIES; s++) {
        if (s / 4 > k)
            continue;
        snprintf(spec, sizeof(spec), "__name__=w,s=%02d", s);
        assert_int_equal(add_spec(a, spec, (int64_t)k * 1000, k * 100 + s), 0);
    }
    commit_ok(a);
}

/* The dump expected after batches 0..nb-1 (only batches with index in
 * [0, nb) present). */
static char *expected_dump(int nb)
{
    struct bs_buf b;
    bs_buf_init(&b, 0);
    bs_buf_puts(&b, "");
    for (int s = 0; s < NSERIES; s++) {
        bool any = false;
        for (int k = 0; k < nb; k++) {
            if (s / 4 > k)
                continue;
            if (!any)
                bs_buf_printf(&b, "w{s=\"%02d\"}", s);
            any = true;
            bs_buf_printf(&b, " %d:%g", k * 1000, (double)(k * 100 + s));
        }
        if (any)
            bs_buf_putc(&b, '\n');
    }
    return bs_buf_steal(&b, NULL);
}

static void check_dump(struct tsdb *db, int nb)
{
    char *got = dump_query(db, INT64_MIN, INT64_MAX, "__name__=w", true);
    char *want = expected_dump(nb);
    if (strcmp(got, want) != 0)
        fail_msg("after replay, want %d batches:\n got: %s\nwant: %s", nb, got, want);
    free(got);
    free(want);
}

static void test_reopen_same_refs(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    struct tsdb *db = open_wal_db(dir, 0, 0);
    struct labels_builder b;
    labels_builder_init(&b);
    tsdb_ref refs[20];
    struct tsdb_appender *a = tsdb_appender_new(db);
    char spec[64];
    /* Interleave creation so that refs are not in label order. */
    for (int i = 0; i < 20; i++) {
        snprintf(spec, sizeof(spec), "__name__=r,i=%d,z=%d", (i * 7) % 20, i);
        struct labels ls = mk_labels(&b, spec);
        assert_int_equal(tsdb_appender_add(a, 0, &ls, 5, i, &refs[i]), 0);
    }
    commit_ok(a);
    /* a second batch with stale markers and odd values */
    a = tsdb_appender_new(db);
    for (int i = 0; i < 20; i++)
        assert_int_equal(
            tsdb_appender_add(a, refs[i], NULL, 10 + i, i % 2 ? bs_stale_nan() : -0.0, NULL), 0);
    commit_ok(a);
    char *before = dump_query(db, INT64_MIN, INT64_MAX, "__name__=r", true);
    struct tsdb_stats st1;
    tsdb_stats(db, &st1);
    tsdb_close(db);

    db = open_wal_db(dir, 0, 0);
    char *after = dump_query(db, INT64_MIN, INT64_MAX, "__name__=r", true);
    assert_string_equal(before, after);
    struct tsdb_stats st2;
    tsdb_stats(db, &st2);
    assert_int_equal(st2.num_series, 20);
    assert_int_equal(st2.num_chunks, st1.num_chunks);
    assert_int_equal(st2.min_time, 5);
    assert_int_equal(st2.max_time, 29);
    assert_true(st2.wal_bytes >= st1.wal_bytes);
    /* same refs, and stale markers bit-exact */
    struct tsdb_head *h = &db->head;
    for (int i = 0; i < 20; i++) {
        struct tsdb_series *s = tsdb_head_series_by_ref(h, refs[i]);
        assert_non_null(s);
        snprintf(spec, sizeof(spec), "%d", i);
        assert_string_equal(labels_get(&s->lset, "z"), spec);
        assert_int_equal(s->last_v, i % 2 ? BS_STALE_NAN_BITS : UINT64_C(0x8000000000000000));
    }
    /* new series continue after the highest ref; new writes go to a new segment */
    a = tsdb_appender_new(db);
    tsdb_ref nref;
    struct labels ls = mk_labels(&b, "__name__=new");
    assert_int_equal(tsdb_appender_add(a, 0, &ls, 100, 1, &nref), 0);
    assert_int_equal(nref, 21);
    commit_ok(a);
    tsdb_close(db);
    char *s1 = seg_file(dir, 1);
    assert_true(file_size(s1) > 0);
    free(s1);

    db = open_wal_db(dir, 0, 0);
    char *again = dump_query(db, INT64_MIN, INT64_MAX, "__name__=~r|new", true);
    assert_non_null(strstr(again, "new 100:1\n"));
    free(again);
    tsdb_close(db);
    free(before);
    free(after);
    labels_builder_fini(&b);
    rmrf(dir);
    free(dir);
}

/* Build a WAL of nb batches in one segment; return the file bytes and the
 * segment size after each batch. */
static uint8_t *build_wal(const char *dir, int nb, off_t *bounds, size_t *len)
{
    struct tsdb *db = open_wal_db(dir, 0, 0);
    char *seg = seg_file(dir, 0);
    for (int k = 0; k < nb; k++) {
        write_batch(db, k);
        bounds[k] = file_size(seg);
    }
    tsdb_close(db);
    *len = (size_t)file_size(seg);
    uint8_t *data = malloc(*len);
    FILE *fp = fopen(seg, "rb");
    assert_int_equal(fread(data, 1, *len, fp), *len);
    fclose(fp);
    free(seg);
    return data;
}

static void write_file(const char *path, const uint8_t *p, size_t n)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(p, 1, n, fp), n);
    fclose(fp);
}

static void reset_wal(const char *dir, const uint8_t *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/wal", dir);
    rmrf(path);
    mkdir(path, 0755);
    char *seg = seg_file(dir, 0);
    write_file(seg, p, n);
    free(seg);
}

#define NB 10

static void test_torn_tail(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    off_t bounds[NB];
    size_t len;
    uint8_t *data = build_wal(dir, NB, bounds, &len);
    assert_int_equal((off_t)len, bounds[NB - 1]);
    char *seg = seg_file(dir, 0);
    bs_log_set_level(BS_LOG_ERROR); /* the truncation warnings are expected */
    for (int round = 0; round < 60; round++) {
        size_t cut = round < 3 ? (size_t)bounds[round] - 1 : (size_t)(rnd() % (len + 1));
        reset_wal(dir, data, cut);
        int complete = 0;
        while (complete < NB && (size_t)bounds[complete] <= cut)
            complete++;
        struct tsdb *db = open_wal_db(dir, 0, 0);
        check_dump(db, complete);
        tsdb_close(db);
        /* cut back to a record boundary: at or after the last complete
         * batch (a series record of the torn batch may survive), at or
         * before the cut */
        off_t want = complete ? bounds[complete - 1] : 0;
        assert_true(file_size(seg) >= want);
        assert_true(file_size(seg) <= (off_t)cut);
        if (complete < NB && cut == (size_t)bounds[complete] - 1 && complete > 0)
            assert_true(file_size(seg) < (off_t)cut);
        /* reopening again finds a clean log and the same data */
        db = open_wal_db(dir, 0, 0);
        check_dump(db, complete);
        tsdb_close(db);
    }
    bs_log_set_level(BS_LOG_WARN);
    free(seg);
    free(data);
    rmrf(dir);
    free(dir);
}

static void test_corrupt_byte(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    off_t bounds[NB];
    size_t len;
    uint8_t *data = build_wal(dir, NB, bounds, &len);
    uint8_t *copy = malloc(len);
    bs_log_set_level(BS_LOG_ERROR);
    for (int round = 0; round < 40; round++) {
        size_t off = round == 0 ? len / 2 : (size_t)(rnd() % len);
        memcpy(copy, data, len);
        copy[off] ^= (uint8_t)(1u << (rnd() % 8));
        reset_wal(dir, copy, len);
        int complete = 0;
        while (complete < NB && (size_t)bounds[complete] <= off)
            complete++;
        struct tsdb *db = open_wal_db(dir, 0, 0);
        check_dump(db, complete);
        tsdb_close(db);
    }
    bs_log_set_level(BS_LOG_WARN);
    free(copy);
    free(data);
    rmrf(dir);
    free(dir);
}

static void test_segments(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    /* tiny segments: roughly one batch each */
    struct tsdb *db = open_wal_db(dir, 0, 256);
    for (int k = 0; k < NB; k++)
        write_batch(db, k);
    check_dump(db, NB);
    tsdb_close(db);
    uint32_t *segs;
    size_t n;
    char waldir[512];
    snprintf(waldir, sizeof(waldir), "%s/wal", dir);
    assert_int_equal(tsdb_wal_segments(waldir, &segs, &n, NULL), 0);
    assert_true(n >= 4);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(segs[i], i);
    free(segs);

    db = open_wal_db(dir, 0, 256);
    check_dump(db, NB);
    tsdb_close(db);

    /* Damage the middle of segment 2: later segments still replay. The
     * batches in segment 2 after the damage are lost. */
    char *s2 = seg_file(dir, 2);
    off_t sz = file_size(s2);
    assert_true(sz > 20);
    int fd = open(s2, O_RDWR);
    uint8_t byte;
    assert_int_equal(pread(fd, &byte, 1, sz - 3), 1);
    byte ^= 0x40;
    assert_int_equal(pwrite(fd, &byte, 1, sz - 3), 1);
    close(fd);
    bs_log_set_level(BS_LOG_ERROR);
    db = open_wal_db(dir, 0, 256);
    bs_log_set_level(BS_LOG_WARN);
    char *got = dump_query(db, INT64_MIN, INT64_MAX, "__name__=w;s=00", true);
    /* first batch and last batch present */
    assert_non_null(strstr(got, " 0:0"));
    assert_non_null(strstr(got, " 9000:900"));
    free(got);
    tsdb_close(db);
    assert_true(file_size(s2) < sz);
    free(s2);
    rmrf(dir);
    free(dir);
}

static void test_lock_and_errors(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    struct tsdb *db = open_wal_db(dir, 0, 0);
    struct tsdb_options o;
    tsdb_options_default(&o);
    o.dir = dir;
    struct tsdb *db2 = NULL;
    struct bs_error err = {0};
    assert_int_equal(tsdb_open(&db2, &o, &err), BS_EIO);
    assert_null(db2);
    assert_non_null(strstr(err.msg, dir));
    tsdb_close(db);
    /* released on close */
    db = open_wal_db(dir, 0, 0);
    tsdb_close(db);

    /* a file where the directory should be */
    char path[512];
    snprintf(path, sizeof(path), "%s/file", dir);
    write_file(path, (const uint8_t *)"x", 1);
    o.dir = path;
    assert_true(tsdb_open(&db2, &o, &err) < 0);
    assert_non_null(strstr(err.msg, path));
    o.dir = NULL;
    assert_int_equal(tsdb_open(&db2, &o, &err), BS_EINVAL);
    tsdb_close(NULL);

    /* nested directories are created */
    snprintf(path, sizeof(path), "%s/a/b/c", dir);
    db = open_db(path, 0, 0);
    tsdb_close(db);
    rmrf(dir);
    free(dir);
}

static void test_fsync_interval(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    struct tsdb *db = open_wal_db(dir, 5, 0);
    for (int k = 0; k < 3; k++) {
        write_batch(db, k);
        bs_sleep_ms(12);
    }
    /* The syncer runs every 5 ms; on a loaded machine its first pass may
     * come late, so wait (bounded) rather than assume 36 ms is enough. */
    uint64_t fsyncs = 0;
    for (int tries = 0; tries < 400 && fsyncs == 0; tries++) {
        pthread_mutex_lock(&db->wal.mu);
        fsyncs = db->wal.fsyncs;
        pthread_mutex_unlock(&db->wal.mu);
        if (fsyncs == 0)
            bs_sleep_ms(5);
    }
    assert_true(fsyncs >= 1);
    tsdb_close(db);
    db = open_wal_db(dir, 5, 0);
    check_dump(db, 3);
    tsdb_close(db);
    rmrf(dir);
    free(dir);
}

static void test_many_series_replay(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    struct tsdb *db = open_wal_db(dir, 1000, 0);
    struct labels_builder b;
    labels_builder_init(&b);
    char spec[64];
    tsdb_ref *refs = calloc(5000, sizeof(*refs));
    for (int round = 0; round < 20; round++) {
        struct tsdb_appender *a = tsdb_appender_new(db);
        for (int s = 0; s < 5000; s++) {
            if (refs[s]) {
                assert_int_equal(
                    tsdb_appender_add(a, refs[s], NULL, round * 15000, round * s, NULL), 0);
            } else {
                snprintf(spec, sizeof(spec), "__name__=m,s=%d", s);
                struct labels ls = mk_labels(&b, spec);
                assert_int_equal(tsdb_appender_add(a, 0, &ls, round * 15000, round * s, &refs[s]),
                                 0);
            }
        }
        commit_ok(a);
    }
    char *before = dump_query(db, INT64_MIN, INT64_MAX, "s=~1.*", true);
    tsdb_close(db);
    db = open_wal_db(dir, 1000, 0);
    char *after = dump_query(db, INT64_MIN, INT64_MAX, "s=~1.*", true);
    assert_string_equal(before, after);
    struct tsdb_stats st;
    tsdb_stats(db, &st);
    assert_int_equal(st.num_series, 5000);
    tsdb_close(db);
    free(before);
    free(after);
    free(refs);
    labels_builder_fini(&b);
    rmrf(dir);
    free(dir);
}

int main(void)
{
    bs_log_set_level(BS_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reopen_same_refs),   cmocka_unit_test(test_torn_tail),
        cmocka_unit_test(test_corrupt_byte),       cmocka_unit_test(test_segments),
        cmocka_unit_test(test_lock_and_errors),    cmocka_unit_test(test_fsync_interval),
        cmocka_unit_test(test_many_series_replay),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
