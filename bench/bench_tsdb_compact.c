/* SPDX-License-Identifier: Apache-2.0
 *
 * Benchmark of writing a 2 h block from head chunks: copying the XOR chunks
 * as they are (tsdb_block_write, what head compaction does by default)
 * against re-encoding them as dense chunks with shared time columns
 * (tsdb_block_write_dense, tsdb_options.dense_head_blocks). Measures the
 * CPU time of the compacting thread and the bytes per sample of the block
 * (chunks and index). Prints figures, never pass/fail.
 *
 *   bench_tsdb_compact [NSERIES [SAMPLES]]
 *
 * Defaults: 1000000 series, 480 samples each (2 h at 15 s). Series come in
 * scrape targets of 1000 that share their scrape timestamps, with +-5 ms
 * of jitter per scrape; values are a node_exporter-like mix (integer
 * counters with random increments, 1/100 counters, byte-page gauges, small
 * decimal gauges, constants). The XOR chunks are built up front (120
 * samples each, as the head cuts them) and are not part of the timing.
 * Blocks are written under $TMPDIR (default /tmp) and deleted.
 */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tsdb/tsdb_int.h"
#include "util/util.h"

#define PER_TARGET 1000
#define T0 INT64_C(1700006400000) /* a multiple of 2 h */

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static uint64_t rnd(void)
{
    uint64_t z = (rng += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double wall_s(void)
{
    return (double)bs_monotonic_ns() / 1e9;
}

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static uint64_t dir_bytes;
static int du_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)path;
    (void)ftw;
    if (flag == FTW_F)
        dir_bytes += (uint64_t)sb->st_size;
    return 0;
}

int main(int argc, char **argv)
{
    size_t nseries = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
    size_t ns = argc > 2 ? strtoull(argv[2], NULL, 10) : 480;
    if (nseries == 0 || ns == 0)
        return 1;
    size_t ntargets = (nseries + PER_TARGET - 1) / PER_TARGET;
    int64_t *ts = malloc(ntargets * ns * sizeof(*ts));
    for (size_t g = 0; g < ntargets; g++)
        for (size_t i = 0; i < ns; i++)
            ts[g * ns + i] = T0 + (int64_t)i * 15000 + (int64_t)(rnd() % 11) - 5;

    /* labels: __name__, instance, i (strings in one arena) */
    struct bs_arena arena;
    bs_arena_init(&arena, 1 << 20, 0);
    struct tsdb_bw_series *series = calloc(nseries, sizeof(*series));
    size_t chunks_per = (ns + TSDB_CHUNK_MAX_SAMPLES - 1) / TSDB_CHUNK_MAX_SAMPLES;
    struct tsdb_bw_chunk *chunks = calloc(nseries * chunks_per, sizeof(*chunks));
    struct tsdb_xor_enc e;
    tsdb_xor_enc_init(&e);
    double xor_bytes = 0;
    for (size_t s = 0; s < nseries; s++) {
        size_t g = s / PER_TARGET;
        struct label *lv = bs_arena_alloc(&arena, 3 * sizeof(*lv));
        char *buf = bs_arena_alloc(&arena, 64);
        snprintf(buf, 64, "m%03zu", s % 200);
        snprintf(buf + 16, 48, "host%05zu:9100", g);
        snprintf(buf + 40, 24, "%zu", s);
        lv[0] = (struct label){"__name__", buf};
        lv[1] = (struct label){"i", buf + 40};
        lv[2] = (struct label){"instance", buf + 16};
        struct labels *ls = bs_arena_alloc(&arena, sizeof(*ls));
        *ls = (struct labels){lv, 3};
        int kind = (int)(s % 10);
        double acc = (double)(rnd() % 100000), rate = (double)(1 + rnd() % 5000);
        const int64_t *t = ts + g * ns;
        size_t c = 0;
        for (size_t i = 0; i < ns; i += TSDB_CHUNK_MAX_SAMPLES, c++) {
            size_t m = ns - i < TSDB_CHUNK_MAX_SAMPLES ? ns - i : TSDB_CHUNK_MAX_SAMPLES;
            tsdb_xor_enc_reset(&e);
            for (size_t j = 0; j < m; j++) {
                double v;
                switch (kind) {
                case 0:
                case 1:
                case 2: /* integer counters */
                    acc += (double)(uint64_t)(rate * (0.5 + (double)(rnd() % 1000) / 1000.0));
                    v = acc;
                    break;
                case 3:
                case 4: /* cpu seconds */
                    acc += (double)(1000 + rnd() % 500);
                    v = acc / 100.0;
                    break;
                case 5:
                case 6: /* memory pages */
                    if (rnd() % 3 == 0)
                        acc += (double)((int64_t)(rnd() % 4001) - 2000);
                    v = acc * 4096.0;
                    break;
                case 7: /* decimal gauge */
                    v = (double)(rnd() % 10000) / 100.0;
                    break;
                default: /* constants */
                    v = (double)(s % 7);
                    break;
                }
                tsdb_xor_enc_append(&e, t[i + j], bs_float_bits(v));
            }
            size_t len = tsdb_xor_enc_bytes(&e);
            uint8_t *copy = malloc(len);
            memcpy(copy, e.buf, len);
            xor_bytes += (double)len;
            chunks[s * chunks_per + c] =
                (struct tsdb_bw_chunk){t[i], t[i + m - 1], copy, (uint32_t)len, (uint32_t)m, 0};
        }
        series[s] = (struct tsdb_bw_series){ls, chunks + s * chunks_per, c};
    }
    tsdb_xor_enc_fini(&e);
    double nsamples = (double)nseries * (double)ns;
    printf("block of %zu series x %zu samples (%.0fM samples), targets of %d series, "
           "jitter +-5 ms; XOR chunk bytes %.3f/sample\n",
           nseries, ns, nsamples / 1e6, PER_TARGET, xor_bytes / nsamples);

    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char parent[4096];
    snprintf(parent, sizeof(parent), "%s/bench-compact-XXXXXX", tmp);
    if (!mkdtemp(parent))
        return 1;
    for (int dense = 0; dense < 2; dense++) {
        struct tsdb_block_meta meta = {.mint = T0, .maxt = T0 + 7200000, .level = 1};
        struct bs_error err = {0};
        double c0 = cpu_s(), w0 = wall_s();
        int rc = dense ? tsdb_block_write_dense(parent, &meta, series, nseries, &err)
                       : tsdb_block_write(parent, &meta, series, nseries, &err);
        double c1 = cpu_s(), w1 = wall_s();
        if (rc) {
            fprintf(stderr, "write: %s\n", err.msg);
            return 1;
        }
        char dir[4200];
        snprintf(dir, sizeof(dir), "%s/%s", parent, meta.ulid);
        dir_bytes = 0;
        nftw(dir, du_cb, 16, FTW_PHYS);
        printf("  %-28s cpu %7.2f s (%.2f Msamples/cpu-s), wall %7.2f s, %llu bytes, "
               "%.3f bytes/sample\n",
               dense ? "dense, shared time columns" : "XOR copy (default)", c1 - c0,
               nsamples / (c1 - c0) / 1e6, w1 - w0, (unsigned long long)dir_bytes,
               (double)dir_bytes / nsamples);
        fflush(stdout);
        nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    }
    rmdir(parent);
    for (size_t i = 0; i < nseries * chunks_per; i++)
        free((void *)chunks[i].data);
    free(chunks);
    free(series);
    free(ts);
    bs_arena_fini(&arena);
    return 0;
}
