/* SPDX-License-Identifier: Apache-2.0
 *
 * Crash torture: 30 times, a child process appends batches as fast as it
 * can to a store whose compactor runs every millisecond with 1 s blocks
 * (so head compactions, WAL checkpoints and block merges run all the
 * time), and reports each batch id on a pipe after its commit returned
 * (WAL fsynced on every commit). The parent kills it with SIGKILL at a
 * random moment, reopens the store and checks that
 *   - it opens, and every batch the child reported is present, with its
 *     values, in every series, and nothing past the one batch that may
 *     have been committed but not yet reported;
 *   - nothing is stored twice: the blocks do not overlap in time, and the
 *     samples the blocks and the head hold add up to what a query returns
 *     (the querier hides duplicates, so the count is what exposes them).
 * The next child continues after the last reported batch. Figures
 * printed at the end: batches and blocks, how many kills hit a block
 * write, merge or deletion in progress (a *.tmp directory on disk).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "test_tsdb_util.h"
#include "tsdb/tsdb_int.h"

#define KILLS 30
#define NS 16   /* series */
#define STEP 20 /* ms of sample time between batches */
#define RANGE 1000

static struct tsdb *open_store(const char *dir, int64_t compaction_ms)
{
    struct tsdb_options o;
    tsdb_options_default(&o);
    o.dir = dir;
    o.wal_fsync_interval_ms = 0;
    o.wal_segment_size = 64 * 1024;
    o.block_range_ms = RANGE;
    o.compaction_interval_ms = compaction_ms;
    o.retention_ms = 0;
    struct tsdb *db = NULL;
    struct bs_error err = {0};
    if (tsdb_open(&db, &o, &err)) {
        if (compaction_ms < 0)
            fail_msg("tsdb_open(%s): %s", dir, err.msg);
        fprintf(stderr, "child: tsdb_open(%s): %s\n", dir, err.msg);
        _exit(3);
    }
    return db;
}

static double value_of(int series, int64_t batch)
{
    return series % 2 ? (double)batch * 0.25 + series : (double)(batch % 7) * 1e3;
}

/* The child: append batches from `from` on, report each after commit. */
static void child_main(const char *dir, int64_t from, int fd)
{
    struct tsdb *db = open_store(dir, 1);
    char spec[64];
    struct labels ls[NS];
    struct labels_builder lbs[NS];
    for (int i = 0; i < NS; i++) {
        labels_builder_init(&lbs[i]);
        snprintf(spec, sizeof(spec), "__name__=torture,series=s%02d", i);
        char *copy = strdup(spec), *save = NULL;
        for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            char *eq = strchr(tok, '=');
            *eq = '\0';
            labels_builder_set_str(&lbs[i], tok, eq + 1);
        }
        free(copy);
        labels_builder_labels(&lbs[i], &ls[i], NULL);
    }
    tsdb_ref refs[NS] = {0};
    for (int64_t b = from;; b++) {
        struct tsdb_appender *a = tsdb_appender_new(db);
        for (int i = 0; i < NS; i++) {
            int rc = tsdb_appender_add(a, refs[i], &ls[i], b * STEP, value_of(i, b), &refs[i]);
            if (rc) {
                fprintf(stderr, "child: add batch %lld: %s\n", (long long)b, bs_strerror(rc));
                _exit(4);
            }
        }
        struct bs_error err = {0};
        if (tsdb_appender_commit(a, &err)) {
            fprintf(stderr, "child: commit batch %lld: %s\n", (long long)b, err.msg);
            _exit(5);
        }
        if (write(fd, &b, sizeof(b)) != (ssize_t)sizeof(b))
            _exit(6);
    }
}

static int count_tmp(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
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

/* Samples of all series in [mint, maxt] as a query returns them; checks
 * batches 0..acked are present with their values, and at most one more.
 * Returns the number of samples. */
static uint64_t check_store(struct tsdb *db, int64_t acked, int64_t mint, int64_t maxt,
                            bool full_check, int64_t *last_batch)
{
    struct tsdb_querier *q = tsdb_querier_new(db, mint, maxt);
    assert_non_null(q);
    struct labels_matcher *m = mk_matcher("__name__=torture");
    struct tsdb_series_set *set = NULL;
    assert_int_equal(tsdb_querier_select(q, &m, 1, &set, NULL), 0);
    uint64_t total = 0;
    int nseries = 0;
    int64_t last = -1;
    while (tsdb_series_set_next(set)) {
        const char *sv = labels_get(tsdb_series_set_labels(set), "series");
        int si = atoi(sv + 1);
        struct tsdb_iterator *it = tsdb_series_set_iterator(set);
        int64_t want = 0;
        while (tsdb_iterator_next(it)) {
            int64_t t;
            double v;
            tsdb_iterator_at(it, &t, &v);
            if (full_check && (t != want * STEP || v != value_of(si, want)))
                fail_msg("series %s: got %lld:%g, want %lld:%g", sv, (long long)t, v,
                         (long long)(want * STEP), value_of(si, want));
            want++;
            total++;
        }
        tsdb_iterator_free(it);
        if (full_check) {
            if (want < acked + 1 || want > acked + 2)
                fail_msg("series %s holds batches 0..%lld; %lld were acknowledged", sv,
                         (long long)(want - 1), (long long)acked);
            if (want - 1 > last)
                last = want - 1;
        }
        nseries++;
    }
    if (full_check)
        assert_int_equal(nseries, NS);
    tsdb_series_set_free(set);
    labels_matcher_free(m);
    tsdb_querier_free(q);
    if (last_batch)
        *last_batch = last;
    return total;
}

/* Nothing stored twice: blocks disjoint, and blocks + head = query. */
static void check_no_duplicates(struct tsdb *db, uint64_t queried)
{
    uint64_t in_blocks = 0;
    int64_t head_from = INT64_MIN;
    pthread_mutex_lock(&db->blocks_mu);
    for (size_t i = 0; i < db->nblocks; i++) {
        const struct tsdb_block_meta *mi = &db->blocks[i]->meta;
        if (i > 0 && mi->mint < db->blocks[i - 1]->meta.maxt)
            fail_msg("blocks %s and %s overlap", db->blocks[i - 1]->dir, db->blocks[i]->dir);
        in_blocks += mi->num_samples;
        if (mi->maxt > head_from)
            head_from = mi->maxt;
    }
    pthread_mutex_unlock(&db->blocks_mu);
    uint64_t in_head = check_store(db, 0, head_from, INT64_MAX, false, NULL);
    if (in_blocks + in_head != queried)
        fail_msg("blocks hold %llu samples and the head %llu, a query returns %llu",
                 (unsigned long long)in_blocks, (unsigned long long)in_head,
                 (unsigned long long)queried);
}

static void test_kill9_torture(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    uint64_t seed = (uint64_t)time(NULL);
    const char *env = getenv("BONGSU_TORTURE_SEED");
    if (env)
        seed = strtoull(env, NULL, 10);
    srand((unsigned)seed);
    print_message("seed %llu (set BONGSU_TORTURE_SEED to replay)\n", (unsigned long long)seed);
    int64_t acked = -1;
    int during_write = 0;
    uint64_t merges_seen = 0;
    for (int k = 0; k < KILLS; k++) {
        int fds[2];
        assert_int_equal(pipe(fds), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            child_main(dir, acked + 1, fds[1]);
            _exit(0);
        }
        close(fds[1]);
        /* let it run 30..400 ms, so that kills land at startup (replay),
         * mid-ingestion and mid-compaction alike */
        bs_sleep_ms(30 + rand() % 370);
        kill(pid, SIGKILL);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL))
            fail_msg("child %d ended on its own (status %d) before the kill", k, status);
        int64_t id;
        while (read(fds[0], &id, sizeof(id)) == (ssize_t)sizeof(id)) {
            if (id != acked + 1)
                fail_msg("child reported batch %lld after %lld", (long long)id, (long long)acked);
            acked = id;
        }
        close(fds[0]);
        if (count_tmp(dir) > 0)
            during_write++;

        struct tsdb *db = open_store(dir, -1);
        int64_t last;
        uint64_t queried = check_store(db, acked, INT64_MIN, INT64_MAX, acked >= 0, &last);
        check_no_duplicates(db, queried);
        struct tsdb_stats st;
        tsdb_stats(db, &st);
        pthread_mutex_lock(&db->blocks_mu);
        for (size_t i = 0; i < db->nblocks; i++)
            if (db->blocks[i]->meta.level > 1)
                merges_seen++;
        pthread_mutex_unlock(&db->blocks_mu);
        tsdb_close(db);
        if (last > acked)
            acked = last; /* committed, killed before reporting it */
    }
    struct tsdb *db = open_store(dir, -1);
    struct tsdb_stats st;
    tsdb_stats(db, &st);
    print_message("%d kills: %lld batches (%lld samples) acknowledged, %llu blocks at the end; "
                  "%d kills left a block write, merge or deletion half done; merged blocks seen "
                  "%llu times\n",
                  KILLS, (long long)(acked + 1), (long long)(acked + 1) * NS,
                  (unsigned long long)st.num_blocks, during_write, (unsigned long long)merges_seen);
    assert_true(acked > 0);
    tsdb_close(db);
    rmrf(dir);
    free(dir);
}

int main(void)
{
    bs_log_set_level(BS_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill9_torture),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
