/* SPDX-License-Identifier: Apache-2.0
 *
 * Benchmark of the head's memory and restart time (issue 4, items 2, 6).
 *
 *   bench_tsdb_head [NSERIES [SAMPLES [INTERVAL_MS]]]
 *
 * Defaults: 100000 series, 480 samples each at 15 s (a full 2 h head).
 * Series carry 8 node_exporter-like labels (__name__ from 200 metric
 * names, 1000 instances, job, cpu/device-like sub-dimension, region,
 * cluster, env, team), values are counters, gauges and constants. The
 * samples start on a 2 h boundary so the head holds whole chunks.
 *
 * A child process opens a fresh store (default options: the compactor
 * runs, so head checkpoints are written as the WAL grows), appends every
 * sample through the appender (commits of 10000 samples, WAL fsync every
 * second), prints
 * the append rate and its VmRSS delta per series, then SIGKILLs itself
 * (nothing is closed). The parent then opens the store (the restart
 * after kill -9) in a child process, checks a sample of series, prints the
 * open time and the RSS per series after replay, closes it (timed: this
 * is when the shutdown snapshot is written); another child opens it again
 * (the restart after a clean shutdown). Prints figures, never pass/fail.
 *
 * For profiling: BENCH_HEAD_DIR=path uses (and keeps) that directory;
 * BENCH_HEAD_STAGE=ingest stops after the kill -9, BENCH_HEAD_STAGE=open
 * only runs the restarts on what the directory holds (which the close
 * after it turns into a clean shutdown: copy the directory first to time
 * the restart after kill -9 again); BENCH_HEAD_NOCLOSE=1 ends the opening
 * process right after the open and its check, without closing, so that a
 * profile of it holds the open only and the directory stays as it was.
 */
#include <ftw.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "labels/labels.h"
#include "tsdb/tsdb.h"
#include "util/util.h"

#define BATCH 10000
#define T0 INT64_C(1699999200000) /* a multiple of 2h */

static double now_s(void)
{
    return (double)bs_monotonic_ns() / 1e9;
}

/* CPU seconds (user + system) used by this process so far: on a shared
 * machine, wall time alone says little. */
static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* Resident set size of this process in KiB (VmRSS). */
static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kib = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kib;
}

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static const char *const modes[] = {"idle", "user", "system", "iowait", "irq", "softirq", "steal",
                                    "nice"};

/* Label set of series i (strings in buf, valid until the next call). */
static void series_labels(size_t i, struct labels_builder *b, struct labels *out)
{
    char name[64], inst[64], sub[32], region[16], cluster[16], env[8], team[16];
    size_t host = i / 1000, metric = (i % 1000) / 5, dim = i % 5;
    snprintf(name, sizeof(name), "node_metric_%zu_%s", metric,
             metric % 3 == 0 ? "total" : metric % 3 == 1 ? "bytes" : "info");
    snprintf(inst, sizeof(inst), "10.%zu.%zu.%zu:9100", (host >> 16) & 255, (host >> 8) & 255,
             host & 255);
    snprintf(sub, sizeof(sub), "%s%zu", modes[(metric + dim) % 8], dim);
    snprintf(region, sizeof(region), "region-%zu", host % 4);
    snprintf(cluster, sizeof(cluster), "cluster-%zu", host % 20);
    snprintf(env, sizeof(env), "%s", host % 3 == 0 ? "prod" : host % 3 == 1 ? "stage" : "dev");
    snprintf(team, sizeof(team), "team-%zu", host % 7);
    labels_builder_reset(b);
    labels_builder_set_str(b, "__name__", name);
    labels_builder_set_str(b, "instance", inst);
    labels_builder_set_str(b, "job", "node");
    labels_builder_set_str(b, "cpu", sub);
    labels_builder_set_str(b, "region", region);
    labels_builder_set_str(b, "cluster", cluster);
    labels_builder_set_str(b, "env", env);
    labels_builder_set_str(b, "team", team);
    labels_builder_labels(b, out, NULL);
}

/* Deterministic value of series i at step k. */
static double value_of(size_t i, size_t k)
{
    size_t metric = (i % 1000) / 5;
    uint64_t z = (uint64_t)i * 0x9E3779B97F4A7C15ULL + k * 0xBF58476D1CE4E5B9ULL;
    z ^= z >> 29;
    switch (metric % 3) {
    case 0: /* counter */
        return (double)(i % 977) * 1000 + (double)k * (double)(1 + i % 50) + (double)(z % 7);
    case 1: /* gauge with two decimals */
        return (double)(int64_t)((double)(z % 100000) / 100.0 * 100) / 100.0;
    default: /* constant */
        return 1;
    }
}

static int64_t time_of(size_t k, int64_t interval)
{
    return T0 + (int64_t)k * interval;
}

static struct tsdb *open_store(const char *dir, double *secs)
{
    struct tsdb_options o;
    tsdb_options_default(&o);
    o.dir = dir;
    o.retention_ms = 0;
    struct tsdb *db = NULL;
    struct bs_error err = {0};
    double t0 = now_s();
    if (tsdb_open(&db, &o, &err)) {
        fprintf(stderr, "tsdb_open(%s): %s\n", dir, err.msg);
        exit(1);
    }
    *secs = now_s() - t0;
    return db;
}

static void ingest(const char *dir, size_t nseries, size_t samples, int64_t interval)
{
    tsdb_ref *refs = calloc(nseries, sizeof(*refs));
    memset(refs, 0, nseries * sizeof(*refs));
    long rss0 = rss_kib();
    double open_s;
    struct tsdb *db = open_store(dir, &open_s);
    struct labels_builder b;
    labels_builder_init(&b);
    struct bs_error err = {0};
    struct tsdb_appender *a = tsdb_appender_new(db);
    size_t inbatch = 0;
    double t0 = now_s();
    for (size_t k = 0; k < samples; k++) {
        int64_t t = time_of(k, interval);
        for (size_t i = 0; i < nseries; i++) {
            int rc;
            if (refs[i]) {
                rc = tsdb_appender_add(a, refs[i], NULL, t, value_of(i, k), NULL);
            } else {
                struct labels ls;
                series_labels(i, &b, &ls);
                rc = tsdb_appender_add(a, 0, &ls, t, value_of(i, k), &refs[i]);
            }
            if (rc) {
                fprintf(stderr, "add: %s\n", bs_strerror(rc));
                exit(1);
            }
            if (++inbatch == BATCH) {
                if (tsdb_appender_commit(a, &err)) {
                    fprintf(stderr, "commit: %s\n", err.msg);
                    exit(1);
                }
                a = tsdb_appender_new(db);
                inbatch = 0;
            }
        }
    }
    if (tsdb_appender_commit(a, &err)) {
        fprintf(stderr, "commit: %s\n", err.msg);
        exit(1);
    }
    double secs = now_s() - t0;
    long rss1 = rss_kib();
    struct tsdb_stats st;
    tsdb_stats(db, &st);
    printf("ingest: %zu series x %zu samples (%.0f ms interval): %.2f M appends/s (%.1f s)\n",
           nseries, samples, (double)interval, (double)(nseries * samples) / secs / 1e6, secs);
    printf("ingest: RSS %ld KiB -> %ld KiB: %.0f bytes/series (%llu chunks, wal %.0f MiB)\n", rss0,
           rss1, (double)(rss1 - rss0) * 1024 / (double)nseries,
           (unsigned long long)st.num_chunks, (double)st.wal_bytes / 1048576.0);
    if (getenv("BENCH_TRIM")) {
        malloc_trim(0);
        printf("trimmed: RSS %ld KiB: %.0f bytes/series\n", rss_kib(),
               (double)(rss_kib() - rss0) * 1024 / (double)nseries);
    }
    struct mallinfo2 mi = mallinfo2();
    printf("ingest: malloc heap %.0f MiB in use, %.0f MiB free in the heap, %.0f MiB mmapped\n",
           (double)mi.uordblks / 1048576.0, (double)mi.fordblks / 1048576.0,
           (double)mi.hblkhd / 1048576.0);
    fflush(stdout);
    labels_builder_fini(&b);
    raise(SIGKILL);
}

/* Check a strided sample of series; returns the number of mismatches. */
static size_t verify(struct tsdb *db, size_t nseries, size_t samples, int64_t interval)
{
    struct labels_builder b;
    labels_builder_init(&b);
    size_t bad = 0, checked = 0;
    size_t stride = nseries / 200 ? nseries / 200 : 1;
    struct tsdb_querier *q = tsdb_querier_new(db, INT64_MIN, INT64_MAX);
    for (size_t i = 0; i < nseries; i += stride) {
        struct labels ls;
        series_labels(i, &b, &ls);
        struct labels_matcher *ms[2];
        labels_matcher_new(&ms[0], LABELS_MATCH_EQ, "__name__", labels_get(&ls, "__name__"), NULL);
        labels_matcher_new(&ms[1], LABELS_MATCH_EQ, "instance", labels_get(&ls, "instance"), NULL);
        struct tsdb_series_set *set = NULL;
        if (tsdb_querier_select(q, ms, 2, &set, NULL) == 0) {
            bool found = false;
            while (tsdb_series_set_next(set)) {
                if (!labels_equal(tsdb_series_set_labels(set), &ls))
                    continue;
                found = true;
                struct tsdb_iterator *it = tsdb_series_set_iterator(set);
                size_t k = 0;
                while (tsdb_iterator_next(it)) {
                    int64_t t;
                    double v;
                    tsdb_iterator_at(it, &t, &v);
                    if (k >= samples || t != time_of(k, interval) ||
                        bs_float_bits(v) != bs_float_bits(value_of(i, k)))
                        bad++;
                    k++;
                }
                if (k != samples)
                    bad++;
                tsdb_iterator_free(it);
            }
            if (!found)
                bad++;
            tsdb_series_set_free(set);
        } else {
            bad++;
        }
        labels_matcher_free(ms[0]);
        labels_matcher_free(ms[1]);
        checked++;
    }
    tsdb_querier_free(q);
    labels_builder_fini(&b);
    printf("verify: %zu series checked, %zu mismatches\n", checked, bad);
    return bad;
}

/* In a fresh process (so that RSS is its own): open, print the time and
 * RSS per series, verify, close (timed). */
static void measure_open(const char *dir, const char *what, size_t nseries, size_t samples,
                         int64_t interval)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        long rss0 = rss_kib();
        double secs, cpu0 = cpu_s();
        struct tsdb *db = open_store(dir, &secs);
        double cpu = cpu_s() - cpu0;
        long rss1 = rss_kib();
        printf("open %s: %.2f s (%.2f CPU s), RSS %.0f bytes/series\n", what, secs, cpu,
               (double)(rss1 - rss0) * 1024 / (double)nseries);
        verify(db, nseries, samples, interval);
        if (getenv("BENCH_HEAD_NOCLOSE")) {
            fflush(stdout);
            _exit(0);
        }
        double t0 = now_s();
        tsdb_close(db);
        printf("close: %.2f s\n", now_s() - t0);
        fflush(stdout);
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
}

int main(int argc, char **argv)
{
    size_t nseries = argc > 1 ? strtoull(argv[1], NULL, 10) : 100000;
    size_t samples = argc > 2 ? strtoull(argv[2], NULL, 10) : 480;
    int64_t interval = argc > 3 ? strtoll(argv[3], NULL, 10) : 15000;
    if (nseries == 0 || samples == 0 || interval <= 0) {
        fprintf(stderr, "usage: %s [NSERIES [SAMPLES [INTERVAL_MS]]]\n", argv[0]);
        return 2;
    }
    bs_log_set_level(getenv("BENCH_HEAD_VERBOSE") ? BS_LOG_INFO : BS_LOG_WARN);
    char tmpl[] = "/tmp/bongsu-bench-head-XXXXXX";
    const char *keep = getenv("BENCH_HEAD_DIR");
    const char *stage = getenv("BENCH_HEAD_STAGE");
    const char *dir = keep;
    if (!dir) {
        if (!mkdtemp(tmpl)) {
            perror("mkdtemp");
            return 1;
        }
        dir = tmpl;
    }
    if (stage && strcmp(stage, "open") == 0) {
        measure_open(dir, "after kill -9", nseries, samples, interval);
        return 0;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0)
        ingest(dir, nseries, samples, interval);
    int status;
    waitpid(pid, &status, 0);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
        fprintf(stderr, "ingesting child failed\n");
        if (!keep)
            nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
        return 1;
    }
    if (stage && strcmp(stage, "ingest") == 0)
        return 0;

    measure_open(dir, "after kill -9", nseries, samples, interval);
    measure_open(dir, "after clean close", nseries, samples, interval);
    if (!keep)
        nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}
