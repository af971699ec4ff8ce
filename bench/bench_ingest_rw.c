/* SPDX-License-Identifier: Apache-2.0
 *
 * Benchmark of the remote-write receiver on one thread: 200 pre-encoded,
 * snappy-compressed requests of 1000 series x 10 samples (node_exporter-like
 * label sets of 8 labels; 10,000 distinct series, each request carrying one
 * group of 1000 with the next 10 scrapes at 15 s), handed to
 * ingest_remote_write() against a real tsdb in a temporary directory (WAL
 * fsync every second). Runs the 1.0 and the 2.0 encoding into separate
 * stores, and times decoding alone (snappy + protobuf-c into an arena) to
 * show its share. Prints figures, never pass/fail.
 */
#include <ftw.h>
#include <snappy-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ingest/ingest.h"
#include "ingest/remote_write.pb-c.h"
#include "tsdb/tsdb.h"
#include "util/util.h"

#define NREQ 200
#define NSERIES 1000
#define NSAMPLES 10
#define NGROUPS 10
#define NLABELS 8

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

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

struct body {
    char *z;
    size_t len;
    size_t raw_len;
};

/* Label values of series s (group g, index i), sorted by name. */
static void series_labels(size_t g, size_t i, char names[NLABELS][32], char values[NLABELS][64])
{
    static const char *const metrics[] = {
        "node_cpu_seconds_total", "node_network_receive_bytes_total",
        "node_disk_io_time_seconds_total", "node_memory_Active_bytes"};
    size_t s = g * NSERIES + i;
    snprintf(names[0], 32, "__name__");
    snprintf(values[0], 64, "%s", metrics[s % 4]);
    snprintf(names[1], 32, "cluster");
    snprintf(values[1], 64, "eu-west-%zu", s % 3);
    snprintf(names[2], 32, "cpu");
    snprintf(values[2], 64, "%zu", s % 64);
    snprintf(names[3], 32, "env");
    snprintf(values[3], 64, "production");
    snprintf(names[4], 32, "instance");
    snprintf(values[4], 64, "node-%04zu.example.internal:9100", s / 8);
    snprintf(names[5], 32, "job");
    snprintf(values[5], 64, "node");
    snprintf(names[6], 32, "mode");
    snprintf(values[6], 64, "%s", (s % 8) < 4 ? "user" : "system");
    snprintf(names[7], 32, "region");
    snprintf(values[7], 64, "eu");
}

static void finish(struct body *b, const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *raw = malloc(n);
    protobuf_c_message_pack(m, raw);
    b->raw_len = n;
    b->len = snappy_max_compressed_length(n);
    b->z = malloc(b->len);
    if (snappy_compress((char *)raw, n, b->z, &b->len) != SNAPPY_OK)
        abort();
    free(raw);
}

static double sample_value(size_t s, size_t k, size_t r)
{
    return (double)((s * 7919 + (r * NSAMPLES + k) * (rnd() % 4096)) % 100000000);
}

/* Request r: group r % NGROUPS, scrapes (r / NGROUPS) * NSAMPLES ... */
static void encode_v1(struct body *b, size_t r, int64_t base)
{
    size_t g = r % NGROUPS;
    Bongsu__Rw__WriteRequest req = BONGSU__RW__WRITE_REQUEST__INIT;
    Bongsu__Rw__TimeSeries *ts = calloc(NSERIES, sizeof(*ts));
    Bongsu__Rw__TimeSeries **tsp = calloc(NSERIES, sizeof(*tsp));
    Bongsu__Rw__Label *ls = calloc(NSERIES * NLABELS, sizeof(*ls));
    Bongsu__Rw__Label **lsp = calloc(NSERIES * NLABELS, sizeof(*lsp));
    Bongsu__Rw__Sample *ss = calloc(NSERIES * NSAMPLES, sizeof(*ss));
    Bongsu__Rw__Sample **ssp = calloc(NSERIES * NSAMPLES, sizeof(*ssp));
    char(*names)[NLABELS][32] = calloc(NSERIES, sizeof(*names));
    char(*values)[NLABELS][64] = calloc(NSERIES, sizeof(*values));
    for (size_t i = 0; i < NSERIES; i++) {
        bongsu__rw__time_series__init(&ts[i]);
        tsp[i] = &ts[i];
        series_labels(g, i, names[i], values[i]);
        for (size_t l = 0; l < NLABELS; l++) {
            Bongsu__Rw__Label *lab = &ls[i * NLABELS + l];
            bongsu__rw__label__init(lab);
            lab->name = (ProtobufCBinaryData){strlen(names[i][l]), (uint8_t *)names[i][l]};
            lab->value = (ProtobufCBinaryData){strlen(values[i][l]), (uint8_t *)values[i][l]};
            lsp[i * NLABELS + l] = lab;
        }
        ts[i].labels = &lsp[i * NLABELS];
        ts[i].n_labels = NLABELS;
        for (size_t k = 0; k < NSAMPLES; k++) {
            Bongsu__Rw__Sample *sm = &ss[i * NSAMPLES + k];
            bongsu__rw__sample__init(sm);
            sm->timestamp = base + (int64_t)(((r / NGROUPS) * NSAMPLES + k) * 15000);
            sm->value = sample_value(g * NSERIES + i, k, r);
            ssp[i * NSAMPLES + k] = sm;
        }
        ts[i].samples = &ssp[i * NSAMPLES];
        ts[i].n_samples = NSAMPLES;
    }
    req.timeseries = tsp;
    req.n_timeseries = NSERIES;
    finish(b, &req.base);
    free(ts);
    free(tsp);
    free(ls);
    free(lsp);
    free(ss);
    free(ssp);
    free(names);
    free(values);
}

static void encode_v2(struct body *b, size_t r, int64_t base)
{
    size_t g = r % NGROUPS;
    /* Symbols: a linear-probe-free dedup is overkill here: names are few,
     * values are per series; dedup by a tiny open hash on the text. */
    size_t cap = 1 << 15, nsyms = 1;
    char **tab = calloc(cap, sizeof(*tab));
    uint32_t *tabref = calloc(cap, sizeof(*tabref));
    ProtobufCBinaryData *syms = calloc(NSERIES * NLABELS * 2 + 1, sizeof(*syms));
    syms[0] = (ProtobufCBinaryData){0, NULL};
    Bongsu__Rw__V2Request req = BONGSU__RW__V2_REQUEST__INIT;
    Bongsu__Rw__V2TimeSeries *ts = calloc(NSERIES, sizeof(*ts));
    Bongsu__Rw__V2TimeSeries **tsp = calloc(NSERIES, sizeof(*tsp));
    uint32_t *refs = calloc(NSERIES * NLABELS * 2, sizeof(*refs));
    Bongsu__Rw__Sample *ss = calloc(NSERIES * NSAMPLES, sizeof(*ss));
    Bongsu__Rw__Sample **ssp = calloc(NSERIES * NSAMPLES, sizeof(*ssp));
    for (size_t i = 0; i < NSERIES; i++) {
        char names[NLABELS][32], values[NLABELS][64];
        series_labels(g, i, names, values);
        bongsu__rw__v2_time_series__init(&ts[i]);
        tsp[i] = &ts[i];
        for (size_t l = 0; l < 2 * NLABELS; l++) {
            const char *s = l % 2 ? values[l / 2] : names[l / 2];
            size_t h = (size_t)bs_hash64(s, strlen(s)) & (cap - 1);
            while (tab[h] && strcmp(tab[h], s) != 0)
                h = (h + 1) & (cap - 1);
            if (!tab[h]) {
                tab[h] = strdup(s);
                tabref[h] = (uint32_t)nsyms;
                syms[nsyms++] = (ProtobufCBinaryData){strlen(s), (uint8_t *)tab[h]};
            }
            refs[i * NLABELS * 2 + l] = tabref[h];
        }
        ts[i].labels_refs = &refs[i * NLABELS * 2];
        ts[i].n_labels_refs = NLABELS * 2;
        for (size_t k = 0; k < NSAMPLES; k++) {
            Bongsu__Rw__Sample *sm = &ss[i * NSAMPLES + k];
            bongsu__rw__sample__init(sm);
            sm->timestamp = base + (int64_t)(((r / NGROUPS) * NSAMPLES + k) * 15000);
            sm->value = sample_value(g * NSERIES + i, k, r);
            ssp[i * NSAMPLES + k] = sm;
        }
        ts[i].samples = &ssp[i * NSAMPLES];
        ts[i].n_samples = NSAMPLES;
    }
    req.symbols = syms;
    req.n_symbols = nsyms;
    req.timeseries = tsp;
    req.n_timeseries = NSERIES;
    finish(b, &req.base);
    for (size_t i = 0; i < cap; i++)
        free(tab[i]);
    free(tab);
    free(tabref);
    free(syms);
    free(ts);
    free(tsp);
    free(refs);
    free(ss);
    free(ssp);
}

static void *arena_alloc(void *a, size_t n)
{
    return bs_arena_alloc(a, n ? n : 1);
}

static void arena_free(void *a, void *p)
{
    (void)a;
    (void)p;
}

/* snappy + protobuf-c unpack only, as the receiver does it. */
static double decode_only(struct body *bodies, bool v2)
{
    double t0 = now_s();
    for (size_t r = 0; r < NREQ; r++) {
        size_t n = 0;
        snappy_uncompressed_length(bodies[r].z, bodies[r].len, &n);
        char *dec = malloc(n);
        snappy_uncompress(bodies[r].z, bodies[r].len, dec, &n);
        struct bs_arena a;
        bs_arena_init(&a, (size_t)4 << 20, 0);
        ProtobufCAllocator al = {arena_alloc, arena_free, &a};
        ProtobufCMessage *m = protobuf_c_message_unpack(v2 ? &bongsu__rw__v2_request__descriptor
                                                           : &bongsu__rw__write_request__descriptor,
                                                        &al, n, (uint8_t *)dec);
        if (!m)
            abort();
        bs_arena_fini(&a);
        free(dec);
    }
    return now_s() - t0;
}

static void run(const char *name, struct body *bodies, bool v2)
{
    char dir[] = "/tmp/bongsu-bench-rw-XXXXXX";
    if (!mkdtemp(dir))
        abort();
    struct tsdb_options o;
    tsdb_options_default(&o);
    o.dir = dir;
    o.wal_fsync_interval_ms = 1000;
    struct tsdb *db = NULL;
    struct bs_error err = {0};
    if (tsdb_open(&db, &o, &err)) {
        fprintf(stderr, "tsdb_open: %s\n", err.msg);
        exit(1);
    }
    struct ingest_limits lim;
    ingest_limits_default(&lim);
    const char *ct = v2 ? "application/x-protobuf;proto=io.prometheus.write.v2.Request"
                        : "application/x-protobuf";
    size_t zbytes = 0, rawbytes = 0;
    double first = 0, t0 = now_s();
    for (size_t r = 0; r < NREQ; r++) {
        struct ingest_response resp;
        ingest_remote_write(db, &lim, ct, "snappy", NULL, bodies[r].z, bodies[r].len, &resp);
        if (resp.status != 204) {
            fprintf(stderr, "request %zu: %d %s\n", r, resp.status, resp.body ? resp.body : "");
            exit(1);
        }
        ingest_response_fini(&resp);
        zbytes += bodies[r].len;
        rawbytes += bodies[r].raw_len;
        if (r + 1 == NGROUPS)
            first = now_s() - t0; /* the requests that create the series */
    }
    double dt = now_s() - t0;
    double total = (double)NREQ * NSERIES * NSAMPLES;
    double dec = decode_only(bodies, v2);
    struct tsdb_stats st;
    tsdb_stats(db, &st);
    printf("%s: %.0f samples in %.3f s = %.2f M samples/s (one thread); series creation "
           "requests %.2f M samples/s, steady state %.2f M samples/s\n",
           name, total, dt, total / dt / 1e6, (double)NGROUPS * NSERIES * NSAMPLES / first / 1e6,
           (total - (double)NGROUPS * NSERIES * NSAMPLES) / (dt - first) / 1e6);
    printf("%s: %.2f compressed / %.2f decoded bytes per sample; decoding alone (snappy + "
           "protobuf-c) %.3f s = %.0f%% of the time; %llu series in the head\n",
           name, (double)zbytes / total, (double)rawbytes / total, dec, 100.0 * dec / dt,
           (unsigned long long)st.num_series);
    tsdb_close(db);
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
    bs_log_set_level(BS_LOG_WARN);
    int64_t base = bs_now_ms() - 3600 * 1000;
    struct body *v1 = calloc(NREQ, sizeof(*v1)), *v2 = calloc(NREQ, sizeof(*v2));
    for (size_t r = 0; r < NREQ; r++) {
        encode_v1(&v1[r], r, base);
        encode_v2(&v2[r], r, base);
    }
    run("remote write 1.0", v1, false);
    run("remote write 2.0", v2, true);
    for (size_t r = 0; r < NREQ; r++) {
        free(v1[r].z);
        free(v2[r].z);
    }
    free(v1);
    free(v2);
    return 0;
}
