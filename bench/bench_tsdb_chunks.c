/* SPDX-License-Identifier: Apache-2.0
 *
 * Benchmark of the tsdb write and read paths: XOR chunk append and
 * iteration rates (samples/s) and density (bytes/sample) on ~10M samples
 * of node_exporter-like counters, gauges and constants, cut into 120-sample
 * chunks; then end-to-end appender throughput (100k series x 100 samples,
 * commits of 1000 samples, WAL fsync every second) into a temporary data
 * directory. Prints figures, never pass/fail.
 */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "labels/labels.h"
#include "tsdb/tsdb.h"
#include "tsdb/tsdb_int.h"
#include "util/util.h"

#define NSAMPLES (10 * 1000 * 1000)

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static double now_s(void)
{
    return (double)bs_monotonic_ns() / 1e9;
}

/* Fill ts/vs with one series shape; restarts every 120 samples like a new
 * series would. kind: 0 counter, 1 gauge, 2 constant. */
static void generate(int kind, int64_t *ts, uint64_t *vs, size_t n)
{
    int64_t t = 1700000000000;
    double v = 0;
    for (size_t i = 0; i < n; i++) {
        if (i % TSDB_CHUNK_MAX_SAMPLES == 0) {
            v = kind == 0 ? (double)(rnd() % 1000000) : (double)(rnd() % 10000) / 100.0;
            if (kind == 2)
                v = 1;
        }
        /* 15s scrape interval with a few ms of jitter */
        t += 15000 + (int64_t)(rnd() % 5) - 2;
        ts[i] = t;
        if (kind == 0)
            v += (double)(rnd() % 4096);
        else if (kind == 1)
            v = (double)(int64_t)((v + (double)((int64_t)(rnd() % 201) - 100) / 100.0) * 100) /
                100.0;
        vs[i] = bs_float_bits(v);
    }
}

static void bench_chunks(const char *name, int kind)
{
    int64_t *ts = malloc(NSAMPLES * sizeof(*ts));
    uint64_t *vs = malloc(NSAMPLES * sizeof(*vs));
    generate(kind, ts, vs, NSAMPLES);

    size_t nchunks = (NSAMPLES + TSDB_CHUNK_MAX_SAMPLES - 1) / TSDB_CHUNK_MAX_SAMPLES;
    uint8_t *store = malloc((size_t)NSAMPLES * TSDB_CHUNK_SAMPLE_MAX + nchunks * 4);
    size_t *offs = malloc((nchunks + 1) * sizeof(*offs));
    struct tsdb_xor_enc e;
    tsdb_xor_enc_init(&e);

    double t0 = now_s();
    size_t pos = 0, c = 0;
    for (size_t i = 0; i < NSAMPLES; i += TSDB_CHUNK_MAX_SAMPLES) {
        size_t n = NSAMPLES - i < TSDB_CHUNK_MAX_SAMPLES ? NSAMPLES - i : TSDB_CHUNK_MAX_SAMPLES;
        tsdb_xor_enc_reset(&e);
        for (size_t j = 0; j < n; j++)
            tsdb_xor_enc_append(&e, ts[i + j], vs[i + j]);
        size_t len = tsdb_xor_enc_bytes(&e);
        offs[c++] = pos;
        memcpy(store + pos, e.buf, len);
        pos += len;
    }
    offs[c] = pos;
    double t1 = now_s();
    printf("chunk_append_xor %s: %.1f Msamples/s, %.2f bytes/sample\n", name,
           NSAMPLES / (t1 - t0) / 1e6, (double)pos / NSAMPLES);

    t0 = now_s();
    uint64_t check = 0;
    size_t got = 0;
    for (size_t k = 0; k < c; k++) {
        struct tsdb_xor_dec d;
        tsdb_xor_dec_init(&d, store + offs[k], offs[k + 1] - offs[k]);
        while (tsdb_xor_dec_next(&d)) {
            check += d.v ^ (uint64_t)d.t;
            got++;
        }
    }
    t1 = now_s();
    uint64_t want = 0;
    for (size_t i = 0; i < NSAMPLES; i++)
        want += vs[i] ^ (uint64_t)ts[i];
    printf("chunk_iterate_xor %s: %.1f Msamples/s%s\n", name, got / (t1 - t0) / 1e6,
           got == NSAMPLES && check == want ? "" : " (MISMATCH)");
    tsdb_xor_enc_fini(&e);
    free(offs);
    free(store);
    free(ts);
    free(vs);
}

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void bench_appender(void)
{
    enum { NSERIES = 100000, STEPS = 100, BATCH = 1000 };
    char dir[] = "/tmp/bongsu-bench-tsdb-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return;
    }
    struct tsdb_options o;
    tsdb_options_default(&o);
    o.dir = dir;
    o.wal_fsync_interval_ms = 1000;
    struct tsdb *db;
    struct bs_error err = {0};
    if (tsdb_open(&db, &o, &err)) {
        fprintf(stderr, "tsdb_open: %s\n", err.msg);
        return;
    }
    tsdb_ref *refs = calloc(NSERIES, sizeof(*refs));
    struct labels_builder b;
    labels_builder_init(&b);
    char inst[32], id[32];
    double t0 = now_s(), t_first = 0;
    struct tsdb_appender *a = tsdb_appender_new(db);
    size_t in_batch = 0, failed = 0;
    for (int step = 0; step < STEPS; step++) {
        for (int s = 0; s < NSERIES; s++) {
            int64_t t = 1700000000000 + (int64_t)step * 15000;
            double v = (double)(step * 10 + s % 7);
            int rc;
            if (refs[s]) {
                rc = tsdb_appender_add(a, refs[s], NULL, t, v, NULL);
            } else {
                labels_builder_reset(&b);
                snprintf(inst, sizeof(inst), "host-%d:9100", s / 1000);
                snprintf(id, sizeof(id), "%d", s % 1000);
                labels_builder_set_str(&b, "__name__", "node_cpu_seconds_total");
                labels_builder_set_str(&b, "instance", inst);
                labels_builder_set_str(&b, "job", "node");
                labels_builder_set_str(&b, "cpu", id);
                struct labels ls;
                labels_builder_labels(&b, &ls, NULL);
                rc = tsdb_appender_add(a, 0, &ls, t, v, &refs[s]);
            }
            failed += rc != 0;
            if (++in_batch == BATCH) {
                if (tsdb_appender_commit(a, &err))
                    fprintf(stderr, "commit: %s\n", err.msg);
                a = tsdb_appender_new(db);
                in_batch = 0;
            }
        }
        if (step == 0)
            t_first = now_s();
    }
    tsdb_appender_commit(a, NULL);
    double t1 = now_s();
    double total = (double)NSERIES * STEPS;
    printf("appender first pass (series creation) %d series: %.2f Msamples/s\n", NSERIES,
           NSERIES / (t_first - t0) / 1e6);
    printf("appender_commit %d series x %d samples, batches of %d: %.2f Msamples/s "
           "(%zu rejected)\n",
           NSERIES, STEPS, BATCH, total / (t1 - t0) / 1e6, failed);
    struct tsdb_stats st;
    tsdb_stats(db, &st);
    printf("appender wal: %.2f bytes/sample, %llu chunks\n", (double)st.wal_bytes / total,
           (unsigned long long)st.num_chunks);
    tsdb_close(db);

    t0 = now_s();
    if (tsdb_open(&db, &o, &err) == 0) {
        t1 = now_s();
        printf("wal_replay %.0f samples: %.2f Msamples/s\n", total, total / (t1 - t0) / 1e6);
        tsdb_close(db);
    }
    labels_builder_fini(&b);
    free(refs);
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
    bs_log_set_level(BS_LOG_WARN);
    bench_chunks("counter", 0);
    bench_chunks("gauge", 1);
    bench_chunks("constant", 2);
    bench_appender();
    return 0;
}
