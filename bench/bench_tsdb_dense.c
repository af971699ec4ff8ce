/* SPDX-License-Identifier: Apache-2.0
 *
 * Benchmark of the dense chunk codec against the XOR (Gorilla) codec on
 * node_exporter-like data: bytes per sample for XOR in 120-sample chunks (as
 * the head cuts them), dense per 2 h chunk and per 24 h chunk, and the same
 * with shared time columns (TSDB_CHUNK_ENC_DENSE_ST, as merged blocks store
 * the series of one target: every series' chunk without times, plus one
 * time column per window counted once); encode and decode rates; a zstd
 * level sweep. Every dense chunk is decoded and compared with its input.
 * Prints figures, never pass/fail.
 *
 *   bench_tsdb_dense [seed]
 *
 * The generator (deterministic by seed; each series has its own stream, so
 * a series' samples do not depend on the others). One target of 1000
 * series scraped every 15 s for 24 h (5760 samples each); all series of the
 * scrape share its timestamp, t_i = T0 + 15000 i + jitter_i, jitter_i
 * uniform in [-J, J] ms and independent per scrape (a ticker with
 * scheduling noise); measured with J = 0, 2 and 5. Sizes count chunk bytes
 * only (no index entries, for either codec).
 *
 *   counters 60% (600)
 *     120  cpu seconds in 1/100 s ticks (k / 100, as /proc/stat gives
 *          them): idle (rate 0.85-0.98), user, system, iowait, irq,
 *          softirq; increments rate * 1500 ticks with 5% noise; nice and
 *          steal never change
 *      90  bytes counters: integer increments, rate log-uniform 1 kB/s -
 *          10 MB/s, per-scrape lognormal noise (sigma 0.5)
 *      90  packet / operation counters: rate log-uniform 1 - 3000 /s,
 *          30% noise
 *      90  sparse event counters: +1..+3 on 5% of scrapes
 *     210  never-changing counters (errors, drops): 0 or a fixed integer
 *   gauges 30% (300)
 *     100  memory bytes: pages * 4096, changing on a per-series fraction
 *          (5-90%) of scrapes by N(0, 2000) pages
 *      15  load averages, 2 decimals, mean-reverting walk
 *      45  temperatures, 1 decimal, mean-reverting walk
 *      90  filesystem bytes: 4096-byte blocks, changing on 20% of scrapes
 *      50  small integer gauges (procs running 0-10, open fds random walk)
 *   constants 10% (100)
 *      60  info metrics = 1
 *      10  boot time (an integer Unix time)
 *      30  sizes (memory total, filesystem size: large integers)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tsdb/tsdb_int.h"
#include "util/util.h"

#define NSERIES 1000
#define NDAY 5760   /* samples in 24 h at 15 s */
#define N2H 480     /* samples in 2 h */
#define T0 INT64_C(1700006400000) /* a multiple of 2 h */

static double now_s(void)
{
    return (double)bs_monotonic_ns() / 1e9;
}

/* ------------------------------------------------------------ generator */

struct rng {
    uint64_t s;
};

static uint64_t rnd(struct rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static double unif(struct rng *r) /* [0, 1) */
{
    return (double)(rnd(r) >> 11) / 9007199254740992.0;
}

static double gauss(struct rng *r)
{
    double u = unif(r), v = unif(r);
    return sqrt(-2.0 * log(u + 1e-300)) * cos(6.283185307179586 * v);
}

enum cls {
    C_CPU, C_BYTES, C_PACKETS, C_SPARSE, C_NEVER, /* counters */
    G_MEM, G_LOAD, G_TEMP, G_FS, G_SMALL,         /* gauges */
    K_INFO, K_BOOT, K_SIZE,                        /* constants */
    NCLS
};

static const struct {
    const char *name;
    int count;
} classes[NCLS] = {
    {"counter cpu seconds (0.01)", 120}, {"counter bytes", 90},
    {"counter packets/ops", 90},         {"counter sparse events", 90},
    {"counter never changing", 210},     {"gauge memory bytes", 100},
    {"gauge load (0.01)", 15},           {"gauge temperature (0.1)", 45},
    {"gauge filesystem bytes", 90},      {"gauge small integers", 50},
    {"const info = 1", 60},              {"const boot time", 10},
    {"const sizes", 30},
};

static enum cls class_of(int s)
{
    int acc = 0;
    for (int c = 0; c < NCLS; c++) {
        acc += classes[c].count;
        if (s < acc)
            return (enum cls)c;
    }
    return K_SIZE;
}

/* Fill vs[0..n) with series s's values. */
static void gen_series(uint64_t seed, int s, uint64_t *vs, size_t n)
{
    struct rng r = {seed ^ ((uint64_t)s * 0xD1B54A32D192ED03ULL)};
    enum cls c = class_of(s);
    double rate = 0, x = 0, mean = 0, p = 0;
    int64_t k = 0;
    switch (c) {
    case C_CPU: {
        static const double lo[] = {0.85, 0.01, 0.005, 0, 0, 0.001, 0, 0};
        static const double hi[] = {0.98, 0.2, 0.05, 0.01, 0.002, 0.01, 0, 0};
        int mode = s % 8;
        rate = lo[mode] + (hi[mode] - lo[mode]) * unif(&r);
        k = (int64_t)(1e6 * rate * 100); /* ~11 days of uptime, in ticks */
        break;
    }
    case C_BYTES:
        rate = pow(10, 3 + 4 * unif(&r)) * 15;
        k = (int64_t)(unif(&r) * 1e12);
        break;
    case C_PACKETS:
        rate = pow(10, 3.5 * unif(&r)) * 15;
        k = (int64_t)(unif(&r) * 1e9);
        break;
    case C_SPARSE:
        k = (int64_t)(rnd(&r) % 1000);
        break;
    case C_NEVER:
        k = rnd(&r) % 2 ? 0 : (int64_t)(rnd(&r) % 100000);
        break;
    case G_MEM:
        k = (int64_t)(rnd(&r) % 4000000);
        p = 0.05 + 0.85 * unif(&r);
        break;
    case G_LOAD:
        mean = 4 * unif(&r);
        x = mean;
        break;
    case G_TEMP:
        mean = 35 + 30 * unif(&r);
        x = mean;
        break;
    case G_FS:
        k = (int64_t)(rnd(&r) % 250000000);
        break;
    case G_SMALL:
        k = (int64_t)(rnd(&r) % 5000);
        break;
    case K_INFO:
        k = 1;
        break;
    case K_BOOT:
        k = 1699000000 + (int64_t)(rnd(&r) % 1000000);
        break;
    default:
        k = (int64_t)(rnd(&r) % (UINT64_C(1) << 40)) * 4096;
        break;
    }
    for (size_t i = 0; i < n; i++) {
        double v;
        switch (c) {
        case C_CPU: {
            double inc = rate * 1500 * (1 + 0.05 * gauss(&r));
            k += inc > 0 ? (int64_t)llround(inc) : 0;
            v = (double)k / 100.0;
            break;
        }
        case C_BYTES: {
            double inc = rate * exp(0.5 * gauss(&r));
            k += (int64_t)llround(inc);
            v = (double)k;
            break;
        }
        case C_PACKETS: {
            double inc = rate * (1 + 0.3 * gauss(&r));
            k += inc > 0 ? (int64_t)llround(inc) : 0;
            v = (double)k;
            break;
        }
        case C_SPARSE:
            if (unif(&r) < 0.05)
                k += 1 + (int64_t)(rnd(&r) % 3);
            v = (double)k;
            break;
        case G_MEM:
            if (unif(&r) < p) {
                k += (int64_t)llround(2000 * gauss(&r));
                if (k < 0)
                    k = -k;
            }
            v = (double)(k * 4096);
            break;
        case G_LOAD:
            x += 0.1 * (mean - x) + 0.15 * gauss(&r);
            if (x < 0)
                x = -x;
            v = (double)llround(x * 100) / 100.0;
            break;
        case G_TEMP:
            x += 0.05 * (mean - x) + 0.3 * gauss(&r);
            v = (double)llround(x * 10) / 10.0;
            break;
        case G_FS:
            if (unif(&r) < 0.2)
                k += (int64_t)llround(500 * gauss(&r));
            v = (double)(k * 4096);
            break;
        case G_SMALL:
            if (s % 2)
                v = (double)(rnd(&r) % 11);
            else
                v = (double)(k += (int64_t)(rnd(&r) % 21) - 10);
            break;
        default:
            v = (double)k;
            break;
        }
        vs[i] = bs_float_bits(v);
    }
}

static void gen_times(uint64_t seed, int jitter, int64_t *ts, size_t n)
{
    struct rng r = {seed ^ 0x7e57ab1e};
    for (size_t i = 0; i < n; i++) {
        int64_t j = jitter ? (int64_t)(rnd(&r) % (uint64_t)(2 * jitter + 1)) - jitter : 0;
        ts[i] = T0 + (int64_t)i * 15000 + j;
    }
}

/* ------------------------------------------------------------- measures */

struct tally {
    double bytes[NCLS], samples[NCLS];
    double tcol_bytes; /* shared time columns, counted once per window */
    double enc_s, dec_s, n;
    size_t mismatches;
};

static size_t xor_bytes(const int64_t *ts, const uint64_t *vs, size_t n, struct tsdb_xor_enc *e)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i += TSDB_CHUNK_MAX_SAMPLES) {
        size_t m = n - i < TSDB_CHUNK_MAX_SAMPLES ? n - i : TSDB_CHUNK_MAX_SAMPLES;
        tsdb_xor_enc_reset(e);
        for (size_t j = 0; j < m; j++)
            tsdb_xor_enc_append(e, ts[i + j], vs[i + j]);
        total += tsdb_xor_enc_bytes(e);
    }
    return total;
}

/* The time columns a merged block would store once for all series of the
 * target: per window of `span` samples, a dense chunk (of zero values)
 * holding the times; *tcols[k] malloc'd, caller frees. Adds the time
 * prefix (header and time section) of each to t->tcol_bytes. */
static void tcols_make(struct tsdb_dense_enc *enc, const int64_t *ts, size_t n, size_t span,
                       uint8_t **tcols, size_t *tlens, struct tally *t)
{
    static uint64_t zero[NDAY];
    for (size_t i = 0, k = 0; i < n; i += span, k++) {
        size_t m = n - i < span ? n - i : span, pl = 0;
        if (tsdb_dense_encode(enc, ts + i, zero, m, &tcols[k], &tlens[k]) ||
            tsdb_dense_time_prefix(tcols[k], tlens[k], &pl)) {
            t->mismatches++;
            continue;
        }
        t->tcol_bytes += (double)pl;
    }
}

/* Encode vs in chunks of `span` samples with the dense codec, decode and
 * check each; adds to t. With tcols, chunks are shared-time chunks
 * (TSDB_CHUNK_ENC_DENSE_ST) decoded against tcols[window]. */
static void dense_run(struct tsdb_dense_enc *enc, const int64_t *ts, const uint64_t *vs,
                      size_t n, size_t span, enum cls c, struct tally *t, uint8_t *const *tcols,
                      const size_t *tlens)
{
    static int64_t dts[NDAY];
    static uint64_t dvs[NDAY];
    for (size_t i = 0; i < n; i += span) {
        size_t m = n - i < span ? n - i : span, k = i / span;
        uint8_t *p;
        size_t len, got;
        double a = now_s();
        int rc = tcols ? tsdb_dense_encode_shared(enc, ts + i, vs + i, m, k, &p, &len)
                       : tsdb_dense_encode(enc, ts + i, vs + i, m, &p, &len);
        if (rc) {
            t->mismatches++;
            continue;
        }
        double b = now_s();
        struct tsdb_dense_dec d;
        got = 0;
        rc = tcols ? tsdb_dense_dec_init_shared(&d, p, len, tcols[k], tlens[k])
                   : tsdb_dense_dec_init(&d, p, len);
        if (rc == 0) {
            while (tsdb_dense_dec_next(&d)) {
                dts[got] = d.t;
                dvs[got] = d.v;
                got++;
            }
        }
        tsdb_dense_dec_fini(&d);
        double e = now_s();
        if (got != m || memcmp(dts, ts + i, m * sizeof(*ts)) || memcmp(dvs, vs + i, m * 8))
            t->mismatches++;
        t->enc_s += b - a;
        t->dec_s += e - b;
        t->n += (double)m;
        t->bytes[c] += (double)len;
        t->samples[c] += (double)m;
        free(p);
    }
}

static double ratio(const struct tally *t, int from, int to)
{
    double b = 0, s = 0;
    for (int c = from; c < to; c++) {
        b += t->bytes[c];
        s += t->samples[c];
    }
    return s ? b / s : 0;
}

/* All classes, shared time columns included. */
static double ratio_all(const struct tally *t)
{
    double s = 0;
    for (int c = 0; c < NCLS; c++)
        s += t->samples[c];
    return s ? (ratio(t, 0, NCLS) * s + t->tcol_bytes) / s : 0;
}

static void run_jitter(uint64_t seed, int jitter, bool per_class, uint64_t *all_vs)
{
    int64_t *ts = malloc(NDAY * sizeof(*ts));
    gen_times(seed, jitter, ts, NDAY);
    struct tsdb_dense_enc *enc = tsdb_dense_enc_new(0);
    struct tsdb_xor_enc xe;
    tsdb_xor_enc_init(&xe);
    struct tally x = {0}, d2 = {0}, d24 = {0}, s2 = {0}, s24 = {0};
    uint8_t *tc2[NDAY / N2H], *tc24[1];
    size_t tl2[NDAY / N2H], tl24[1];
    tcols_make(enc, ts, NDAY, N2H, tc2, tl2, &s2);
    tcols_make(enc, ts, NDAY, NDAY, tc24, tl24, &s24);
    for (int s = 0; s < NSERIES; s++) {
        const uint64_t *vs = all_vs + (size_t)s * NDAY;
        enum cls c = class_of(s);
        double a = now_s();
        x.bytes[c] += (double)xor_bytes(ts, vs, NDAY, &xe);
        x.enc_s += now_s() - a;
        x.n += NDAY;
        x.samples[c] += NDAY;
        dense_run(enc, ts, vs, NDAY, N2H, c, &d2, NULL, NULL);
        dense_run(enc, ts, vs, NDAY, NDAY, c, &d24, NULL, NULL);
        dense_run(enc, ts, vs, NDAY, N2H, c, &s2, tc2, tl2);
        dense_run(enc, ts, vs, NDAY, NDAY, c, &s24, tc24, tl24);
    }
    for (size_t k = 0; k < NDAY / N2H; k++)
        free(tc2[k]);
    free(tc24[0]);
    printf("\njitter ±%d ms (%d series x 24 h at 15 s = %.2fM samples)\n", jitter, NSERIES,
           x.n / 1e6);
    printf("  %-30s %6s %10s %10s %10s %10s %10s   (bytes/sample)\n", "class", "series",
           "xor 120", "dense 2h", "dense 24h", "shared 2h", "shared 24h");
    if (per_class) {
        for (int c = 0; c < NCLS; c++)
            printf("  %-30s %6d %10.3f %10.3f %10.3f %10.3f %10.3f\n", classes[c].name,
                   classes[c].count, ratio(&x, c, c + 1), ratio(&d2, c, c + 1),
                   ratio(&d24, c, c + 1), ratio(&s2, c, c + 1), ratio(&s24, c, c + 1));
    }
    printf("  %-30s %6d %10.3f %10.3f %10.3f %10.3f %10.3f\n", "counters", 600,
           ratio(&x, 0, G_MEM), ratio(&d2, 0, G_MEM), ratio(&d24, 0, G_MEM),
           ratio(&s2, 0, G_MEM), ratio(&s24, 0, G_MEM));
    printf("  %-30s %6d %10.3f %10.3f %10.3f %10.3f %10.3f\n", "gauges", 300,
           ratio(&x, G_MEM, K_INFO), ratio(&d2, G_MEM, K_INFO), ratio(&d24, G_MEM, K_INFO),
           ratio(&s2, G_MEM, K_INFO), ratio(&s24, G_MEM, K_INFO));
    printf("  %-30s %6d %10.3f %10.3f %10.3f %10.3f %10.3f\n", "constants", 100,
           ratio(&x, K_INFO, NCLS), ratio(&d2, K_INFO, NCLS), ratio(&d24, K_INFO, NCLS),
           ratio(&s2, K_INFO, NCLS), ratio(&s24, K_INFO, NCLS));
    printf("  %-30s %6s %10s %10s %10s %10.3f %10.3f\n", "time columns (once per target)", "",
           "", "", "", s2.tcol_bytes / x.n, s24.tcol_bytes / x.n);
    printf("  %-30s %6d %10.3f %10.3f %10.3f %10.3f %10.3f\n", "ALL", NSERIES, ratio(&x, 0, NCLS),
           ratio(&d2, 0, NCLS), ratio(&d24, 0, NCLS), ratio_all(&s2), ratio_all(&s24));
    printf("  speed: xor append %.1f Msamples/s; dense 2h encode %.2f / decode %.1f Msamples/s;"
           " dense 24h encode %.2f / decode %.1f Msamples/s\n",
           x.n / x.enc_s / 1e6, d2.n / d2.enc_s / 1e6, d2.n / d2.dec_s / 1e6,
           d24.n / d24.enc_s / 1e6, d24.n / d24.dec_s / 1e6);
    printf("  shared: 2h encode %.2f / decode %.1f Msamples/s; 24h encode %.2f / decode %.1f "
           "Msamples/s\n",
           s2.n / s2.enc_s / 1e6, s2.n / s2.dec_s / 1e6, s24.n / s24.enc_s / 1e6,
           s24.n / s24.dec_s / 1e6);
    size_t bad = d2.mismatches + d24.mismatches + s2.mismatches + s24.mismatches;
    if (bad)
        printf("  MISMATCH: %zu chunks did not round-trip\n", bad);
    tsdb_xor_enc_fini(&xe);
    tsdb_dense_enc_free(enc);
    free(ts);
}

static void level_sweep(uint64_t seed, int jitter, uint64_t *all_vs)
{
    static const int levels[] = {1, 3, 6, 9, 15, 19};
    int64_t *ts = malloc(NDAY * sizeof(*ts));
    gen_times(seed, jitter, ts, NDAY);
    printf("\nzstd level sweep, jitter ±%d ms:\n", jitter);
    for (size_t l = 0; l < sizeof(levels) / sizeof(levels[0]); l++) {
        struct tsdb_dense_enc *enc = tsdb_dense_enc_new(levels[l]);
        struct tally d2 = {0}, d24 = {0}, s24 = {0};
        uint8_t *tc24[1];
        size_t tl24[1];
        tcols_make(enc, ts, NDAY, NDAY, tc24, tl24, &s24);
        for (int s = 0; s < NSERIES; s++) {
            const uint64_t *vs = all_vs + (size_t)s * NDAY;
            dense_run(enc, ts, vs, NDAY, N2H, class_of(s), &d2, NULL, NULL);
            dense_run(enc, ts, vs, NDAY, NDAY, class_of(s), &d24, NULL, NULL);
            dense_run(enc, ts, vs, NDAY, NDAY, class_of(s), &s24, tc24, tl24);
        }
        free(tc24[0]);
        printf("  level %2d: 2h %.3f bytes/sample (encode %.2f Msamples/s), "
               "24h %.3f (encode %.2f Msamples/s), shared 24h %.3f (encode %.2f Msamples/s)\n",
               levels[l], ratio(&d2, 0, NCLS), d2.n / d2.enc_s / 1e6, ratio(&d24, 0, NCLS),
               d24.n / d24.enc_s / 1e6, ratio_all(&s24), s24.n / s24.enc_s / 1e6);
        tsdb_dense_enc_free(enc);
    }
    free(ts);
}

int main(int argc, char **argv)
{
    uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 10) : 42;
    uint64_t *all_vs = malloc((size_t)NSERIES * NDAY * sizeof(*all_vs));
    if (!all_vs)
        return 1;
    for (int s = 0; s < NSERIES; s++)
        gen_series(seed, s, all_vs + (size_t)s * NDAY, NDAY);
    printf("dense vs XOR chunks, node_exporter-like generator, seed %llu "
           "(600 counters, 300 gauges, 100 constants; zstd level %d)\n",
           (unsigned long long)seed, TSDB_DENSE_DEFAULT_LEVEL);
    run_jitter(seed, 0, true, all_vs);
    run_jitter(seed, 2, true, all_vs);
    run_jitter(seed, 5, true, all_vs);
    level_sweep(seed, 2, all_vs);
    free(all_vs);
    return 0;
}
