/* SPDX-License-Identifier: Apache-2.0
 *
 * Full disk: the store lives on a 4 MiB tmpfs mounted for the test. We
 * ingest until a commit fails, then check that the failure is BS_ENOSPC
 * and counted, that nothing of the failed batch is visible, that queries
 * still answer everything acknowledged, that compaction fails cleanly (no
 * *.tmp left, head untouched), and that once a filler file is deleted the
 * same store ingests and compacts again by itself, and after a restart
 * holds exactly the acknowledged batches.
 *
 * Mounting needs CAP_SYS_ADMIN; without it the test is skipped with a
 * message saying so. The mount is detached in teardown whatever happened.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "test_tsdb_util.h"
#include "tsdb/tsdb_int.h"

#define NS 40       /* series */
#define STEP 100    /* ms between batches */
#define RANGE 10000 /* block range, ms */

static char *mnt;    /* the tmpfs mount point */
static bool mounted; /* for teardown */

static int setup(void **state)
{
    (void)state;
    mnt = make_tmpdir();
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=4m") != 0) {
        fprintf(stderr,
                "test_tsdb_enospc: cannot mount a 4 MiB tmpfs on %s (%s); the full-disk test "
                "needs CAP_SYS_ADMIN and is skipped\n",
                mnt, strerror(errno));
        return 0;
    }
    mounted = true;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (mounted && umount2(mnt, MNT_DETACH) != 0)
        fprintf(stderr, "test_tsdb_enospc: umount %s: %s\n", mnt, strerror(errno));
    mounted = false;
    rmdir(mnt);
    free(mnt);
    mnt = NULL;
    return 0;
}

static struct tsdb *open_store(const char *dir)
{
    struct tsdb_options o;
    tsdb_options_default(&o);
    o.dir = dir;
    o.wal_fsync_interval_ms = 0;
    o.wal_segment_size = 256 * 1024;
    o.block_range_ms = RANGE;
    o.compaction_interval_ms = -1;
    o.retention_ms = 0;
    struct tsdb *db = NULL;
    struct bs_error err = {0};
    if (tsdb_open(&db, &o, &err))
        fail_msg("tsdb_open(%s): %s", dir, err.msg);
    return db;
}

static double value_of(int series, int64_t batch)
{
    return (double)series * 1e6 + (double)batch;
}

/* Commit batch b: one sample per series at t = b * STEP. */
static int commit_batch(struct tsdb *db, int64_t b, struct bs_error *err)
{
    char spec[64];
    struct tsdb_appender *a = tsdb_appender_new(db);
    assert_non_null(a);
    for (int i = 0; i < NS; i++) {
        snprintf(spec, sizeof(spec), "__name__=fill,series=s%03d", i);
        assert_int_equal(add_spec(a, spec, b * STEP, value_of(i, b)), 0);
    }
    return tsdb_appender_commit(a, err);
}

/* Every series holds exactly batches 0..last, with their values. */
static void check_batches(struct tsdb *db, int64_t last)
{
    struct tsdb_querier *q = tsdb_querier_new(db, INT64_MIN, INT64_MAX);
    assert_non_null(q);
    struct labels_matcher *m = mk_matcher("__name__=fill");
    struct tsdb_series_set *set = NULL;
    assert_int_equal(tsdb_querier_select(q, &m, 1, &set, NULL), 0);
    int nseries = 0;
    while (tsdb_series_set_next(set)) {
        const char *sv = labels_get(tsdb_series_set_labels(set), "series");
        assert_non_null(sv);
        int si = atoi(sv + 1);
        struct tsdb_iterator *it = tsdb_series_set_iterator(set);
        int64_t want = 0;
        while (tsdb_iterator_next(it)) {
            int64_t t;
            double v;
            tsdb_iterator_at(it, &t, &v);
            if (t != want * STEP || v != value_of(si, want))
                fail_msg("series %s: sample %lld:%g where %lld:%g was expected", sv, (long long)t,
                         v, (long long)(want * STEP), value_of(si, want));
            want++;
        }
        tsdb_iterator_free(it);
        if (want != last + 1)
            fail_msg("series %s holds %lld batches, %lld were acknowledged", sv, (long long)want,
                     (long long)(last + 1));
        nseries++;
    }
    assert_int_equal(nseries, NS);
    tsdb_series_set_free(set);
    labels_matcher_free(m);
    tsdb_querier_free(q);
}

/* Write path until the disk refuses; returns bytes written. */
static size_t fill_file(const char *path, size_t max)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    assert_true(fd >= 0);
    static char buf[64 * 1024];
    memset(buf, 0xab, sizeof(buf));
    size_t done = 0;
    while (done < max) {
        size_t n = max - done < sizeof(buf) ? max - done : sizeof(buf);
        ssize_t k = write(fd, buf, n);
        if (k <= 0)
            break;
        done += (size_t)k;
    }
    close(fd);
    return done;
}

static int count_tmp(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l > 4 && strcmp(de->d_name + l - 4, ".tmp") == 0)
            n++;
    }
    closedir(d);
    return n;
}

static void test_full_disk(void **state)
{
    (void)state;
    if (!mounted) {
        skip();
        return;
    }
    char dir[4200], filler[4200], filler2[4200];
    snprintf(dir, sizeof(dir), "%s/data", mnt);
    snprintf(filler, sizeof(filler), "%s/filler", mnt);
    snprintf(filler2, sizeof(filler2), "%s/filler2", mnt);
    fill_file(filler, 2560 * 1024);
    struct tsdb *db = open_store(dir);

    /* ingest until the WAL cannot grow */
    int64_t b = 0;
    struct bs_error err = {0};
    int rc = 0;
    for (; b < 200000; b++) {
        rc = commit_batch(db, b, &err);
        if (rc)
            break;
    }
    int64_t acked = b - 1;
    assert_int_equal(rc, BS_ENOSPC);
    assert_true(acked > 100);
    struct tsdb_stats st;
    tsdb_stats(db, &st);
    assert_int_equal(st.wal_write_failures, 1);
    print_message("disk full after %lld batches (%lld samples): %s\n", (long long)(acked + 1),
                  (long long)(acked + 1) * NS, err.msg);

    /* nothing of the failed batch, everything acknowledged */
    check_batches(db, acked);

    /* take what little is left, so that a block cannot be written */
    fill_file(filler2, SIZE_MAX);
    err = (struct bs_error){0};
    assert_int_equal(commit_batch(db, acked + 1, &err), BS_ENOSPC);
    err = (struct bs_error){0};
    rc = tsdb_compact_now(db, &err);
    assert_int_equal(rc, BS_ENOSPC);
    assert_int_equal(count_tmp(dir), 0);
    tsdb_stats(db, &st);
    assert_int_equal(st.num_blocks, 0);
    assert_int_equal(st.compaction_failures, 1);
    assert_int_equal(st.wal_write_failures, 2);
    check_batches(db, acked); /* the head was not truncated */

    /* space returns: the same store ingests and compacts again */
    assert_int_equal(unlink(filler2), 0);
    assert_int_equal(unlink(filler), 0);
    for (int64_t k = acked + 1; k < acked + 200; k++) {
        err = (struct bs_error){0};
        if (commit_batch(db, k, &err))
            fail_msg("commit after space returned: %s", err.msg);
    }
    acked += 199;
    check_batches(db, acked);
    err = (struct bs_error){0};
    if (tsdb_compact_now(db, &err))
        fail_msg("compaction after space returned: %s", err.msg);
    tsdb_stats(db, &st);
    assert_true(st.num_blocks >= 1);
    assert_int_equal(st.wal_write_failures, 2);
    check_batches(db, acked);
    tsdb_close(db);

    /* and after a restart: exactly the acknowledged batches */
    db = open_store(dir);
    check_batches(db, acked);
    tsdb_close(db);
}

int main(void)
{
    bs_log_set_level(BS_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_full_disk, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
