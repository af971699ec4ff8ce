/* SPDX-License-Identifier: Apache-2.0
 *
 * Ingestion load generator for bench/ingest/run.py: sends pre-encoded
 * remote-write 1.0 requests (protobuf + snappy block) or InfluxDB line
 * protocol bodies to one server over N keep-alive connections, as fast as
 * the server answers, for a fixed duration, and prints one JSON object with
 * the samples the server acknowledged (2xx).
 *
 *   loadgen --mode rw|lp --port P [--host 127.0.0.1] [--conns 8]
 *           [--duration 20] [--series 100000] [--batch 2000] [--hosts 1000]
 *           [--samples 1] [--interval-ms 1000] [--back-min 30] [--seed 1]
 *
 * rw: --series series (node_exporter-like and application label sets, 6 to 9
 *     labels, sorted by name as Prometheus sends them), shuffled and cut into
 *     requests of --batch series with --samples samples each (Prometheus
 *     sends 1: one scrape's sample per series per request).
 * lp: --hosts Telegraf-like hosts, each with cpu (5 lines: cpu0-3 and
 *     cpu-total), mem, disk (2), net (2), system lines: 11 lines and 93
 *     numeric fields per host; requests of --batch lines (Telegraf's
 *     metric_batch_size is 1000), nanosecond timestamps.
 *
 * Nothing is encoded while the clock runs. Every body is built once; the
 * bytes that change from round to round (timestamps, values) are kept at a
 * fixed width and, for remote write, are literal bytes of the snappy stream
 * (the compressor here never uses them inside or as the source of a copy),
 * so a round only overwrites them in place. Round r of series s holds
 * timestamps t0 + (r*samples + k) * interval; t0 is --back-min minutes ago,
 * so the data stays within every server's accepted window. Connection c
 * owns requests c, c+N, c+2N... and sends them in turn, round after round:
 * a series is only ever sent by one connection, one request at a time, so
 * nothing arrives out of order.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <snappy-c.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------- utilities */

static void die(const char *fmt, const char *a)
{
    fprintf(stderr, "loadgen: ");
    fprintf(stderr, fmt, a);
    fprintf(stderr, "\n");
    exit(2);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        die("out of memory%s", "");
    return p;
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        die("out of memory%s", "");
    return p;
}

static double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t mix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static uint64_t rng_state;
static uint64_t rnd(void)
{
    rng_state += 0x9E3779B97F4A7C15ULL;
    return mix64(rng_state);
}

struct buf {
    uint8_t *d;
    size_t n, cap;
};

static void buf_grow(struct buf *b, size_t more)
{
    if (b->n + more <= b->cap)
        return;
    size_t c = b->cap ? b->cap : 4096;
    while (c < b->n + more)
        c *= 2;
    b->d = xrealloc(b->d, c);
    b->cap = c;
}

static void buf_put(struct buf *b, const void *p, size_t n)
{
    buf_grow(b, n);
    memcpy(b->d + b->n, p, n);
    b->n += n;
}

static void buf_byte(struct buf *b, uint8_t c)
{
    buf_put(b, &c, 1);
}

static void buf_str(struct buf *b, const char *s)
{
    buf_put(b, s, strlen(s));
}

static void buf_uvarint(struct buf *b, uint64_t v)
{
    while (v >= 0x80) {
        buf_byte(b, (uint8_t)(v | 0x80));
        v >>= 7;
    }
    buf_byte(b, (uint8_t)v);
}

static size_t uvarint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* ------------------------------------------------------ patchable fields */

/* A byte range of a body rewritten every round. */
enum patch_kind {
    P_TS_VARINT6, /* remote write: timestamp (ms) as a 6-byte varint */
    P_F64,        /* remote write: value, 8 bytes little endian */
    P_TS_DEC19,   /* line protocol: timestamp (ns), 19 digits */
    P_FRAC6,      /* line protocol: 6 fractional digits of a float */
    P_INT12,      /* line protocol: 12-digit counter (first digit fixed non-zero) */
};

struct patch {
    uint32_t off;  /* in the raw body, then in the sent body */
    uint8_t kind;
    uint8_t k;     /* sample index within the series (rw, --samples > 1) */
    uint32_t id;   /* series or field id: seeds the value */
    double base, step;
};

struct request {
    uint8_t *body; /* as sent (snappy for rw) */
    size_t len;
    struct patch *p;
    size_t np;
    uint64_t samples;
    char hdr[512];
    size_t hdr_len;
    int64_t round; /* the round the body holds; -1 before the first */
};

static struct request *reqs;
static size_t nreqs;

static int64_t t0_ms, interval_ms;
static int samples_per_series = 1;

static int64_t ts_of(int64_t round, int k)
{
    return t0_ms + (round * samples_per_series + k) * interval_ms;
}

static double value_of(const struct patch *p, int64_t round)
{
    int64_t r = round * samples_per_series + p->k;
    return p->base + p->step * (double)r;
}

static void put_dec(uint8_t *at, uint64_t v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        at[i] = (uint8_t)('0' + v % 10);
        v /= 10;
    }
}

static void apply_patches(struct request *rq, int64_t round)
{
    for (size_t i = 0; i < rq->np; i++) {
        const struct patch *p = &rq->p[i];
        uint8_t *at = rq->body + p->off;
        switch (p->kind) {
        case P_TS_VARINT6: {
            uint64_t v = (uint64_t)ts_of(round, p->k);
            for (int j = 0; j < 5; j++) {
                at[j] = (uint8_t)(v | 0x80);
                v >>= 7;
            }
            at[5] = (uint8_t)v;
            break;
        }
        case P_F64: {
            double d = value_of(p, round);
            memcpy(at, &d, 8); /* little endian hosts only (x86-64, arm64) */
            break;
        }
        case P_TS_DEC19:
            put_dec(at, (uint64_t)ts_of(round, 0) * 1000000u, 19);
            break;
        case P_FRAC6: {
            /* a gauge wandering within its integer part */
            uint64_t h = mix64(((uint64_t)p->id << 32) ^ (uint64_t)round);
            put_dec(at, h % 1000000u, 6);
            break;
        }
        case P_INT12:
            put_dec(at, (uint64_t)value_of(p, round), 12);
            break;
        }
    }
    rq->round = round;
}

/* ------------------------------------------- snappy with literal patches */

/* Snappy block format, compressed so that every byte marked in zone[] is a
 * literal byte of the output and no copy reads one: rewriting those bytes in
 * the compressed stream rewrites them in the decompressed body. Greedy
 * matching on 4-byte hashes, copies with 2-byte offsets. Returns the length
 * and fills map_off(raw offset -> compressed offset) for the zone starts in
 * p[] (sorted by offset). */
static void put_literal(struct buf *o, const uint8_t *s, size_t n, size_t raw_at, struct patch *p,
                        size_t np, size_t *pi)
{
    while (n > 0) {
        size_t len = n > 65536 ? 65536 : n;
        size_t l1 = len - 1;
        if (l1 < 60) {
            buf_byte(o, (uint8_t)(l1 << 2));
        } else if (l1 < 256) {
            buf_byte(o, 60 << 2);
            buf_byte(o, (uint8_t)l1);
        } else {
            buf_byte(o, 61 << 2);
            buf_byte(o, (uint8_t)l1);
            buf_byte(o, (uint8_t)(l1 >> 8));
        }
        size_t out_at = o->n;
        while (*pi < np && p[*pi].off < raw_at + len) {
            p[*pi].off = (uint32_t)(out_at + (p[*pi].off - raw_at));
            (*pi)++;
        }
        buf_put(o, s, len);
        s += len;
        raw_at += len;
        n -= len;
    }
}

static void put_copy(struct buf *o, size_t offset, size_t len)
{
    while (len > 0) {
        size_t l = len > 64 ? 64 : len;
        if (len > 64 && len - 64 < 4)
            l = 60; /* keep every piece >= 4 for no reason but tidiness */
        buf_byte(o, (uint8_t)(((l - 1) << 2) | 2));
        buf_byte(o, (uint8_t)offset);
        buf_byte(o, (uint8_t)(offset >> 8));
        len -= l;
    }
}

static uint32_t load32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

#define HBITS 15

static void snappy_zoned(const uint8_t *in, size_t n, const uint8_t *zone, struct patch *p,
                         size_t np, struct buf *o)
{
    static int32_t table[1 << HBITS];
    for (size_t i = 0; i < (1u << HBITS); i++)
        table[i] = -1;
    o->n = 0;
    buf_uvarint(o, n);
    size_t pi = 0, lit = 0, i = 0;
    while (i + 4 <= n) {
        if (zone[i] | zone[i + 1] | zone[i + 2] | zone[i + 3]) {
            i++;
            continue;
        }
        uint32_t h = (load32(in + i) * 0x1e35a7bdu) >> (32 - HBITS);
        int32_t cand = table[h];
        table[h] = (int32_t)i;
        if (cand < 0 || i - (size_t)cand > 65535 || load32(in + cand) != load32(in + i) ||
            (zone[cand] | zone[cand + 1] | zone[cand + 2] | zone[cand + 3])) {
            i++;
            continue;
        }
        size_t len = 4;
        while (i + len < n && in[cand + len] == in[i + len] && !zone[i + len] &&
               !zone[cand + len])
            len++;
        put_literal(o, in + lit, i - lit, lit, p, np, &pi);
        put_copy(o, i - (size_t)cand, len);
        i += len;
        lit = i;
    }
    put_literal(o, in + lit, n - lit, lit, p, np, &pi);
    if (pi != np)
        die("internal error: a patch fell outside the literals%s", "");
}

/* ------------------------------------------------------- remote write */

static void pb_tag_len(struct buf *b, int field, size_t len)
{
    buf_byte(b, (uint8_t)(field << 3 | 2));
    buf_uvarint(b, len);
}

struct lbl {
    char name[48], value[96];
};

static int lbl_cmp(const void *a, const void *b)
{
    return strcmp(((const struct lbl *)a)->name, ((const struct lbl *)b)->name);
}

struct series {
    struct lbl l[12];
    int nl;
    double base, step;
};

static void add_lbl(struct series *s, const char *n, const char *v)
{
    snprintf(s->l[s->nl].name, sizeof(s->l[0].name), "%s", n);
    snprintf(s->l[s->nl].value, sizeof(s->l[0].value), "%s", v);
    s->nl++;
}

/* One host's series, node_exporter and an application; fills out[] (up
 * to cap) and returns how many. kind per series: counter or gauge. */
static size_t host_series(int host, struct series *out, size_t cap)
{
    size_t n = 0;
    char inst[64], app_inst[64], buf[96];
    snprintf(inst, sizeof(inst), "host-%05d.example.internal:9100", host);
    snprintf(app_inst, sizeof(app_inst), "host-%05d.example.internal:8080", host);
    static const char *zones[] = {"eu-west-1a", "eu-west-1b", "us-east-1a", "us-east-1c"};
    const char *zone = zones[host % 4];
#define NEW(name, job, instance, counter)                                                          \
    struct series *s = &out[n++];                                                                  \
    memset(s, 0, sizeof(*s));                                                                      \
    add_lbl(s, "__name__", name);                                                                  \
    add_lbl(s, "job", job);                                                                        \
    add_lbl(s, "instance", instance);                                                              \
    add_lbl(s, "zone", zone);                                                                      \
    add_lbl(s, "cluster", "bench-prod");                                                           \
    s->base = (double)(rnd() % 100000);                                                            \
    s->step = (counter) ? (double)(rnd() % 7) + (double)(rnd() % 100) / 100.0 : 0.0
    static const char *modes[] = {"idle", "iowait", "irq", "nice", "softirq", "steal", "system",
                                  "user"};
    for (int cpu = 0; cpu < 8; cpu++)
        for (int m = 0; m < 8 && n < cap; m++) {
            NEW("node_cpu_seconds_total", "node", inst, 1);
            snprintf(buf, sizeof(buf), "%d", cpu);
            add_lbl(s, "cpu", buf);
            add_lbl(s, "mode", modes[m]);
        }
    static const char *fsn[] = {"node_filesystem_avail_bytes", "node_filesystem_size_bytes",
                                "node_filesystem_free_bytes", "node_filesystem_files_free"};
    static const char *mounts[][3] = {{"/dev/nvme0n1p2", "ext4", "/"},
                                      {"/dev/nvme0n1p1", "vfat", "/boot/efi"},
                                      {"tmpfs", "tmpfs", "/run"},
                                      {"/dev/sdb1", "xfs", "/var/lib/data"}};
    for (int f = 0; f < 4; f++)
        for (int m = 0; m < 4 && n < cap; m++) {
            NEW(fsn[f], "node", inst, 0);
            add_lbl(s, "device", mounts[m][0]);
            add_lbl(s, "fstype", mounts[m][1]);
            add_lbl(s, "mountpoint", mounts[m][2]);
            s->step = f == 1 ? 0 : (double)((int)(rnd() % 2001) - 1000);
        }
    static const char *netn[] = {"node_network_receive_bytes_total",
                                 "node_network_transmit_bytes_total",
                                 "node_network_receive_packets_total",
                                 "node_network_transmit_packets_total",
                                 "node_network_receive_errs_total",
                                 "node_network_transmit_drop_total"};
    static const char *ifs[] = {"eth0", "eth1", "lo"};
    for (int f = 0; f < 6; f++)
        for (int d = 0; d < 3 && n < cap; d++) {
            NEW(netn[f], "node", inst, 1);
            add_lbl(s, "device", ifs[d]);
        }
    static const char *memn[] = {
        "node_memory_MemTotal_bytes",  "node_memory_MemFree_bytes",  "node_memory_MemAvailable_bytes",
        "node_memory_Buffers_bytes",   "node_memory_Cached_bytes",   "node_memory_SwapTotal_bytes",
        "node_memory_SwapFree_bytes",  "node_memory_Active_bytes",   "node_memory_Inactive_bytes",
        "node_memory_Dirty_bytes",     "node_memory_Slab_bytes",     "node_memory_Shmem_bytes",
        "node_memory_Mapped_bytes",    "node_memory_PageTables_bytes", "node_load1",
        "node_load5",                  "node_load15",                "node_procs_running",
        "node_context_switches_total", "node_intr_total"};
    for (int f = 0; f < 20 && n < cap; f++) {
        NEW(memn[f], "node", inst, f >= 18);
        if (f < 18)
            s->step = (double)((int)(rnd() % 201) - 100) / 4.0;
    }
    static const char *handlers[] = {"/api/v1/users",  "/api/v1/orders", "/api/v1/items",
                                     "/api/v1/search", "/api/v1/login",  "/healthz",
                                     "/metrics",       "/api/v2/carts",  "/api/v2/payments",
                                     "/static"};
    static const char *methods[] = {"GET", "POST"};
    static const char *codes[] = {"200", "404", "500"};
    for (int h = 0; h < 10; h++)
        for (int m = 0; m < 2; m++)
            for (int c = 0; c < 3 && n < cap; c++) {
                NEW("http_requests_total", "app", app_inst, 1);
                add_lbl(s, "handler", handlers[h]);
                add_lbl(s, "method", methods[m]);
                add_lbl(s, "code", codes[c]);
            }
    static const char *les[] = {"0.005", "0.01", "0.025", "0.05", "0.1",
                                "0.25",  "0.5",  "1",     "2.5",  "+Inf"};
    for (int h = 0; h < 10; h++)
        for (int l = 0; l < 10 && n < cap; l++) {
            NEW("http_request_duration_seconds_bucket", "app", app_inst, 1);
            add_lbl(s, "handler", handlers[h]);
            add_lbl(s, "le", les[l]);
        }
#undef NEW
    for (size_t i = 0; i < n; i++)
        qsort(out[i].l, (size_t)out[i].nl, sizeof(struct lbl), lbl_cmp);
    return n;
}

static void build_rw(size_t nseries, size_t batch, const char *hosthdr)
{
    struct series *all = xmalloc(nseries * sizeof(*all));
    size_t n = 0;
    for (int host = 0; n < nseries; host++)
        n += host_series(host, all + n, nseries - n);
    /* Prometheus shards by series hash: a request mixes hosts and metrics. */
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = rnd() % (i + 1);
        struct series t = all[i];
        all[i] = all[j];
        all[j] = t;
    }
    nreqs = (n + batch - 1) / batch;
    reqs = calloc(nreqs, sizeof(*reqs));
    if (!reqs)
        die("out of memory%s", "");
    struct buf raw = {0}, ts = {0}, comp = {0};
    struct buf zone = {0};
    for (size_t r = 0; r < nreqs; r++) {
        size_t first = r * batch, last = first + batch > n ? n : first + batch;
        struct request *rq = &reqs[r];
        rq->np = (last - first) * (size_t)samples_per_series * 2;
        rq->p = xmalloc(rq->np * sizeof(*rq->p));
        size_t pk = 0;
        raw.n = 0;
        for (size_t si = first; si < last; si++) {
            const struct series *s = &all[si];
            ts.n = 0;
            for (int j = 0; j < s->nl; j++) {
                size_t ln = strlen(s->l[j].name), lv = strlen(s->l[j].value);
                size_t inner = 1 + uvarint_len(ln) + ln + 1 + uvarint_len(lv) + lv;
                pb_tag_len(&ts, 1, inner);
                pb_tag_len(&ts, 1, ln);
                buf_put(&ts, s->l[j].name, ln);
                pb_tag_len(&ts, 2, lv);
                buf_put(&ts, s->l[j].value, lv);
            }
            size_t sample_off[16];
            for (int k = 0; k < samples_per_series; k++) {
                pb_tag_len(&ts, 2, 16); /* value: 1+8, timestamp: 1+6 */
                buf_byte(&ts, 0x09);
                sample_off[k] = ts.n;
                uint8_t zero[8] = {0};
                buf_put(&ts, zero, 8);
                buf_byte(&ts, 0x10);
                uint8_t six[6] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
                buf_put(&ts, six, 6);
            }
            pb_tag_len(&raw, 1, ts.n);
            size_t at = raw.n;
            buf_put(&raw, ts.d, ts.n);
            for (int k = 0; k < samples_per_series; k++) {
                rq->p[pk++] = (struct patch){(uint32_t)(at + sample_off[k]), P_F64, (uint8_t)k,
                                             (uint32_t)si, s->base, s->step};
                rq->p[pk++] = (struct patch){(uint32_t)(at + sample_off[k] + 9), P_TS_VARINT6,
                                             (uint8_t)k, (uint32_t)si, 0, 0};
            }
        }
        zone.n = 0;
        buf_grow(&zone, raw.n);
        memset(zone.d, 0, raw.n);
        zone.n = raw.n;
        for (size_t i = 0; i < rq->np; i++)
            memset(zone.d + rq->p[i].off, 1, rq->p[i].kind == P_F64 ? 8 : 6);
        /* raw copy to check the compressed stream against */
        struct request check = {.body = raw.d, .len = raw.n, .p = NULL, .np = rq->np};
        struct patch *rawp = xmalloc(rq->np * sizeof(*rawp));
        memcpy(rawp, rq->p, rq->np * sizeof(*rawp));
        check.p = rawp;
        snappy_zoned(raw.d, raw.n, zone.d, rq->p, rq->np, &comp);
        rq->body = xmalloc(comp.n);
        memcpy(rq->body, comp.d, comp.n);
        rq->len = comp.n;
        rq->samples = (last - first) * (uint64_t)samples_per_series;
        rq->round = -1;
        /* Check: patched compressed body decompresses to the patched raw
         * body, for two different rounds. */
        for (int64_t round = 3; round <= 4; round++) {
            apply_patches(rq, round);
            apply_patches(&check, round);
            size_t ulen = 0;
            if (snappy_uncompressed_length((const char *)rq->body, rq->len, &ulen) != SNAPPY_OK ||
                ulen != raw.n)
                die("internal error: snappy length%s", "");
            char *u = xmalloc(ulen);
            if (snappy_uncompress((const char *)rq->body, rq->len, u, &ulen) != SNAPPY_OK ||
                memcmp(u, raw.d, raw.n) != 0)
                die("internal error: snappy stream does not round-trip%s", "");
            free(u);
        }
        rq->round = -1;
        free(rawp);
        rq->hdr_len = (size_t)snprintf(rq->hdr, sizeof(rq->hdr),
                                       "POST /api/v1/write HTTP/1.1\r\nHost: %s\r\n"
                                       "User-Agent: bongsu-loadgen/1\r\n"
                                       "Content-Type: application/x-protobuf\r\n"
                                       "Content-Encoding: snappy\r\n"
                                       "X-Prometheus-Remote-Write-Version: 0.1.0\r\n"
                                       "Content-Length: %zu\r\n\r\n",
                                       hosthdr, rq->len);
    }
    free(raw.d);
    free(ts.d);
    free(comp.d);
    free(zone.d);
    free(all);
}

/* -------------------------------------------------------- line protocol */

struct lp_builder {
    struct buf b;
    struct patch *p;
    size_t np, cap;
    uint64_t samples;
    uint32_t next_id;
};

static void lp_patch(struct lp_builder *lb, enum patch_kind kind, double base, double step)
{
    if (lb->np == lb->cap) {
        lb->cap = lb->cap ? lb->cap * 2 : 1024;
        lb->p = xrealloc(lb->p, lb->cap * sizeof(*lb->p));
    }
    lb->p[lb->np++] = (struct patch){(uint32_t)lb->b.n, (uint8_t)kind, 0, lb->next_id++, base, step};
}

/* field: a float gauge "name=II.FFFFFF" (II fixed, FFFFFF per round) */
static void lp_gauge(struct lp_builder *lb, bool first, const char *name, int ipart)
{
    char t[96];
    snprintf(t, sizeof(t), "%s%s=%d.", first ? " " : ",", name, ipart);
    buf_str(&lb->b, t);
    lp_patch(lb, P_FRAC6, 0, 0);
    buf_str(&lb->b, "000000");
    lb->samples++;
}

/* field: an integer counter "name=NNNNNNNNNNNNi", 12 digits, increasing */
static void lp_counter(struct lp_builder *lb, bool first, const char *name, double step)
{
    char t[96];
    snprintf(t, sizeof(t), "%s%s=", first ? " " : ",", name);
    buf_str(&lb->b, t);
    lp_patch(lb, P_INT12, 100000000000.0 + (double)(rnd() % 100000000000ULL), step);
    buf_str(&lb->b, "000000000000i");
    lb->samples++;
}

/* field: a constant integer */
static void lp_const(struct lp_builder *lb, bool first, const char *name, long v)
{
    char t[96];
    snprintf(t, sizeof(t), "%s%s=%ldi", first ? " " : ",", name, v);
    buf_str(&lb->b, t);
    lb->samples++;
}

static void lp_end(struct lp_builder *lb)
{
    buf_byte(&lb->b, ' ');
    lp_patch(lb, P_TS_DEC19, 0, 0);
    buf_str(&lb->b, "0000000000000000000\n");
}

/* One host: 11 lines, 93 numeric fields. Tags sorted by key, as Telegraf
 * sends them. Returns the number of lines. */
static int lp_host(struct lp_builder *lb, int host)
{
    char h[160];
    static const char *dcs[] = {"eu-west-1", "us-east-1", "ap-south-1"};
    const char *dc = dcs[host % 3];
    int lines = 0;
    static const char *cpuf[] = {"usage_guest", "usage_guest_nice", "usage_idle", "usage_iowait",
                                 "usage_irq",   "usage_nice",       "usage_softirq",
                                 "usage_steal", "usage_system",     "usage_user"};
    for (int c = 0; c < 5; c++) {
        char cpu[16];
        if (c == 4)
            snprintf(cpu, sizeof(cpu), "cpu-total");
        else
            snprintf(cpu, sizeof(cpu), "cpu%d", c);
        snprintf(h, sizeof(h), "cpu,cpu=%s,dc=%s,host=web-%05d", cpu, dc, host);
        buf_str(&lb->b, h);
        for (int f = 0; f < 10; f++)
            lp_gauge(lb, f == 0, cpuf[f], f == 2 ? 87 : (int)(rnd() % 10));
        lp_end(lb);
        lines++;
    }
    snprintf(h, sizeof(h), "mem,dc=%s,host=web-%05d", dc, host);
    buf_str(&lb->b, h);
    lp_counter(lb, true, "active", 0);
    lp_counter(lb, false, "available", 0);
    lp_gauge(lb, false, "available_percent", 61);
    lp_counter(lb, false, "buffered", 0);
    lp_counter(lb, false, "cached", 0);
    lp_counter(lb, false, "free", 0);
    lp_const(lb, false, "total", 33554432000L);
    lp_gauge(lb, false, "used_percent", 38);
    lp_end(lb);
    lines++;
    static const char *disks[][4] = {{"nvme0n1p2", "ext4", "rw", "/"},
                                     {"sdb1", "xfs", "rw", "/var/lib/data"}};
    for (int d = 0; d < 2; d++) {
        snprintf(h, sizeof(h), "disk,dc=%s,device=%s,fstype=%s,host=web-%05d,mode=%s,path=%s", dc,
                 disks[d][0], disks[d][1], host, disks[d][2], disks[d][3]);
        buf_str(&lb->b, h);
        lp_counter(lb, true, "free", 0);
        lp_const(lb, false, "inodes_free", 6000000L + host);
        lp_const(lb, false, "inodes_total", 6553600L);
        lp_const(lb, false, "inodes_used", 553600L - host);
        lp_const(lb, false, "total", 107374182400L);
        lp_counter(lb, false, "used", 0);
        lp_gauge(lb, false, "used_percent", 41);
        lp_end(lb);
        lines++;
    }
    static const char *netf[] = {"bytes_recv", "bytes_sent", "drop_in",      "drop_out",
                                 "err_in",     "err_out",    "packets_recv", "packets_sent"};
    for (int d = 0; d < 2; d++) {
        snprintf(h, sizeof(h), "net,dc=%s,host=web-%05d,interface=eth%d", dc, host, d);
        buf_str(&lb->b, h);
        for (int f = 0; f < 8; f++)
            lp_counter(lb, f == 0, netf[f], (double)(rnd() % (f < 2 ? 50000 : 100)));
        lp_end(lb);
        lines++;
    }
    snprintf(h, sizeof(h), "system,dc=%s,host=web-%05d", dc, host);
    buf_str(&lb->b, h);
    lp_gauge(lb, true, "load1", 1);
    lp_gauge(lb, false, "load15", 0);
    lp_gauge(lb, false, "load5", 1);
    lp_const(lb, false, "n_cpus", 4);
    lp_const(lb, false, "n_users", 2);
    lp_end(lb);
    lines++;
    return lines;
}

static void build_lp(int nhosts, size_t batch, const char *hosthdr)
{
    /* Requests of whole hosts, about batch lines each. */
    size_t per_host = 11, hosts_per_req = batch / per_host ? batch / per_host : 1;
    nreqs = ((size_t)nhosts + hosts_per_req - 1) / hosts_per_req;
    reqs = calloc(nreqs, sizeof(*reqs));
    if (!reqs)
        die("out of memory%s", "");
    int host = 0;
    for (size_t r = 0; r < nreqs; r++) {
        struct lp_builder lb = {0};
        for (size_t k = 0; k < hosts_per_req && host < nhosts; k++)
            lp_host(&lb, host++);
        struct request *rq = &reqs[r];
        rq->body = lb.b.d;
        rq->len = lb.b.n;
        rq->p = lb.p;
        rq->np = lb.np;
        rq->samples = lb.samples;
        rq->round = -1;
        rq->hdr_len = (size_t)snprintf(rq->hdr, sizeof(rq->hdr),
                                       "POST /write?db=telegraf HTTP/1.1\r\nHost: %s\r\n"
                                       "User-Agent: bongsu-loadgen/1\r\n"
                                       "Content-Type: text/plain; charset=utf-8\r\n"
                                       "Content-Length: %zu\r\n\r\n",
                                       hosthdr, rq->len);
    }
}

/* ------------------------------------------------------------------ HTTP */

enum { C_IDLE, C_SEND, C_RECV, C_DONE, C_PARKED };

struct conn {
    int fd;
    int state;
    size_t *mine; /* request indices owned */
    size_t nmine, cur;
    int64_t round;
    size_t sent; /* bytes of header+body sent */
    struct request *rq;
    char *in;
    size_t in_n, in_cap;
};

static struct sockaddr_in server_addr;
static int epfd;
static uint64_t ok_requests, ok_samples, err_requests, err_samples, reconnects;
static uint64_t bytes_sent;
static int64_t max_rounds;
static int64_t warmup_rounds = 2;
static bool warming;
static bool rounds_exhausted;
static char first_error[512];

static void conn_open(struct conn *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        die("socket: %s", strerror(errno));
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(c->fd, (struct sockaddr *)&server_addr, sizeof(server_addr)) != 0 &&
        errno != EINPROGRESS)
        die("connect: %s", strerror(errno));
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
    c->in_n = 0;
}

static void conn_close(struct conn *c)
{
    if (c->fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
}

static void conn_want(struct conn *c, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Start the next request of c; false when it has nothing left to send. */
static bool conn_next(struct conn *c)
{
    if (c->nmine == 0)
        return false;
    if (c->cur == c->nmine) {
        c->cur = 0;
        c->round++;
    }
    if (c->round >= max_rounds) {
        rounds_exhausted = true;
        return false;
    }
    if (warming && c->round >= warmup_rounds) {
        c->state = C_PARKED;
        return true;
    }
    c->rq = &reqs[c->mine[c->cur++]];
    apply_patches(c->rq, c->round);
    c->sent = 0;
    c->state = C_SEND;
    return true;
}

/* Bytes of one complete response at the start of c->in, or 0 if not all
 * there yet. Sets *status and *close_after. */
static size_t parse_response(struct conn *c, int *status, bool *close_after)
{
    if (c->in_n < 12)
        return 0;
    char *hend = memmem(c->in, c->in_n, "\r\n\r\n", 4);
    if (!hend)
        return 0;
    size_t hlen = (size_t)(hend - c->in) + 4;
    *status = atoi(c->in + 9);
    *close_after = false;
    long clen = -1;
    bool chunked = false;
    for (char *l = memchr(c->in, '\n', hlen); l && l < hend; l = memchr(l, '\n', (size_t)(hend - l))) {
        l++;
        if (!strncasecmp(l, "content-length:", 15))
            clen = atol(l + 15);
        else if (!strncasecmp(l, "transfer-encoding:", 18) && memmem(l, (size_t)(hend - l), "chunked", 7))
            chunked = true;
        else if (!strncasecmp(l, "connection:", 11)) {
            char *e = memchr(l, '\r', (size_t)(hend - l) + 2);
            if (e && memmem(l, (size_t)(e - l), "close", 5))
                *close_after = true;
        }
    }
    if (*status == 204 || *status == 304 || (*status >= 100 && *status < 200))
        return hlen;
    if (chunked) {
        size_t pos = hlen;
        for (;;) {
            char *le = memmem(c->in + pos, c->in_n - pos, "\r\n", 2);
            if (!le)
                return 0;
            unsigned long sz = strtoul(c->in + pos, NULL, 16);
            size_t data = (size_t)(le - c->in) + 2;
            if (sz == 0) {
                char *te = memmem(c->in + data - 2, c->in_n - (data - 2), "\r\n\r\n", 4);
                return te ? (size_t)(te - c->in) + 4 : 0;
            }
            if (data + sz + 2 > c->in_n)
                return 0;
            pos = data + sz + 2;
        }
    }
    if (clen < 0) {
        *close_after = true; /* body until close: not expected from either server */
        return 0;
    }
    return hlen + (size_t)clen <= c->in_n ? hlen + (size_t)clen : 0;
}

static void conn_send(struct conn *c)
{
    for (;;) {
        struct iovec iov[2];
        int n = 0;
        size_t hl = c->rq->hdr_len;
        if (c->sent < hl) {
            iov[n++] = (struct iovec){c->rq->hdr + c->sent, hl - c->sent};
            iov[n++] = (struct iovec){c->rq->body, c->rq->len};
        } else {
            iov[n++] = (struct iovec){c->rq->body + (c->sent - hl), c->rq->len - (c->sent - hl)};
        }
        ssize_t w = writev(c->fd, iov, n);
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            c->state = C_IDLE; /* reconnect and resend */
            return;
        }
        c->sent += (size_t)w;
        bytes_sent += (uint64_t)w;
        if (c->sent == hl + c->rq->len) {
            c->state = C_RECV;
            conn_want(c, EPOLLIN);
            return;
        }
    }
}

/* Serve the connections until each is done or parked; after stop_at no
 * request is started, after hard_stop in-flight ones are abandoned.
 * Returns how many were abandoned. */
static int run(struct conn *conns, int nconns, double stop_at, double hard_stop)
{
    bool stopping = false;
    int active = 0;
    for (int i = 0; i < nconns; i++)
        active += conns[i].state != C_DONE && conns[i].state != C_PARKED;
    struct epoll_event evs[64];
    while (active > 0) {
        double t = now_mono();
        if (!stopping && t >= stop_at)
            stopping = true;
        if (t >= hard_stop)
            break;
        int ne = epoll_wait(epfd, evs, 64, 100);
        for (int e = 0; e < ne; e++) {
            struct conn *c = evs[e].data.ptr;
            if (c->state == C_SEND) {
                conn_send(c);
            } else if (c->state == C_RECV) {
                bool eof = false;
                for (;;) {
                    if (c->in_n == c->in_cap) {
                        c->in_cap *= 2;
                        c->in = xrealloc(c->in, c->in_cap);
                    }
                    ssize_t r = read(c->fd, c->in + c->in_n, c->in_cap - c->in_n);
                    if (r > 0) {
                        c->in_n += (size_t)r;
                        continue;
                    }
                    if (r < 0 && (errno == EAGAIN || errno == EINTR))
                        break;
                    eof = true;
                    break;
                }
                int status = 0;
                bool close_after = false;
                size_t used = parse_response(c, &status, &close_after);
                if (!used) {
                    if (eof)
                        c->state = C_IDLE; /* closed before a full answer: resend */
                } else {
                    if (status >= 200 && status < 300) {
                        ok_requests++;
                        ok_samples += c->rq->samples;
                    } else {
                        err_requests++;
                        err_samples += c->rq->samples;
                        if (!first_error[0]) {
                            size_t n = c->in_n < sizeof(first_error) - 1 ? c->in_n
                                                                         : sizeof(first_error) - 1;
                            for (size_t k = 0; k < n; k++) {
                                char ch = c->in[k];
                                first_error[k] =
                                    (ch == '"' || ch == '\\' || (unsigned char)ch < 0x20) ? ' '
                                                                                          : ch;
                            }
                            first_error[n] = '\0';
                        }
                    }
                    memmove(c->in, c->in + used, c->in_n - used);
                    c->in_n -= used;
                    if (stopping || !conn_next(c)) {
                        c->state = C_DONE;
                        conn_close(c);
                        active--;
                        continue;
                    }
                    if (close_after || eof) {
                        conn_close(c);
                        reconnects++;
                        conn_open(c);
                    }
                    if (c->state == C_PARKED) {
                        conn_want(c, 0);
                        active--;
                    } else
                        conn_want(c, EPOLLOUT | EPOLLIN);
                }
            }
            if (c->state == C_IDLE) {
                /* the connection broke mid-request: reconnect, resend it */
                conn_close(c);
                reconnects++;
                if (stopping) {
                    c->state = C_DONE;
                    active--;
                    continue;
                }
                conn_open(c);
                c->sent = 0;
                c->state = C_SEND;
            }
        }
    }
    return active;
}

int main(int argc, char **argv)
{
    const char *mode = "rw", *host = "127.0.0.1";
    int port = 0, nconns = 8, hosts = 1000;
    double duration = 20;
    size_t nseries = 100000, batch = 0;
    int back_min = 30;
    uint64_t seed = 1;
    interval_ms = 1000;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            die("missing value after %s", a);
        if (!strcmp(a, "--mode"))
            mode = v;
        else if (!strcmp(a, "--host"))
            host = v;
        else if (!strcmp(a, "--port"))
            port = atoi(v);
        else if (!strcmp(a, "--conns"))
            nconns = atoi(v);
        else if (!strcmp(a, "--duration"))
            duration = atof(v);
        else if (!strcmp(a, "--series"))
            nseries = (size_t)atol(v);
        else if (!strcmp(a, "--batch"))
            batch = (size_t)atol(v);
        else if (!strcmp(a, "--hosts"))
            hosts = atoi(v);
        else if (!strcmp(a, "--samples"))
            samples_per_series = atoi(v);
        else if (!strcmp(a, "--interval-ms"))
            interval_ms = atol(v);
        else if (!strcmp(a, "--back-min"))
            back_min = atoi(v);
        else if (!strcmp(a, "--warmup-rounds"))
            warmup_rounds = atol(v);
        else if (!strcmp(a, "--seed"))
            seed = (uint64_t)atoll(v);
        else
            die("unknown flag %s", a);
        i++;
    }
    if (port <= 0 || nconns <= 0 || nseries == 0 || hosts <= 0 || samples_per_series < 1 ||
        samples_per_series > 16 || interval_ms <= 0)
        die("bad arguments (need --port; see the header of loadgen.c)%s", "");
    bool rw = !strcmp(mode, "rw");
    if (!rw && strcmp(mode, "lp"))
        die("--mode must be rw or lp, not %s", mode);
    if (!batch)
        batch = rw ? 2000 : 1000;
    rng_state = seed * 0x2545F4914F6CDD1DULL;
    char hosthdr[128];
    snprintf(hosthdr, sizeof(hosthdr), "%s:%d", host, port);

    int64_t now = now_ms();
    interval_ms = interval_ms > 0 ? interval_ms : 1000;
    t0_ms = (now - (int64_t)back_min * 60000) / 1000 * 1000;
    /* Stop before 5 minutes ahead of now (bongsu refuses > 10 min ahead). */
    max_rounds = (now + 5 * 60000 - t0_ms) / (interval_ms * samples_per_series);

    double tb = now_mono();
    if (rw)
        build_rw(nseries, batch, hosthdr);
    else
        build_lp(hosts, batch, hosthdr);
    uint64_t round_samples = 0, round_bytes = 0;
    for (size_t i = 0; i < nreqs; i++) {
        round_samples += reqs[i].samples;
        round_bytes += reqs[i].len;
    }
    double build_s = now_mono() - tb;
    if ((size_t)nconns > nreqs)
        nconns = (int)nreqs;

    memset(&server_addr, 0, sizeof(server_addr));
    server_addr.sin_family = AF_INET;
    server_addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &server_addr.sin_addr) != 1)
        die("bad --host %s (an IPv4 address)", host);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    struct conn *conns = calloc((size_t)nconns, sizeof(*conns));
    if (!conns)
        die("out of memory%s", "");
    for (int i = 0; i < nconns; i++) {
        struct conn *c = &conns[i];
        c->mine = xmalloc((nreqs / (size_t)nconns + 1) * sizeof(size_t));
        for (size_t j = (size_t)i; j < nreqs; j += (size_t)nconns)
            c->mine[c->nmine++] = j;
        c->in_cap = 65536;
        c->in = xmalloc(c->in_cap);
        c->fd = -1;
        conn_open(c);
        if (!conn_next(c)) {
            c->state = C_DONE;
            conn_close(c);
        }
    }

    fprintf(stderr,
            "loadgen: %s, %zu requests per round (%llu samples, %.1f MB on the wire), built "
            "in %.2f s; %d connections for %.0f s\n",
            mode, nreqs, (unsigned long long)round_samples, (double)round_bytes / 1e6, build_s,
            nconns, duration);
    double start = now_mono();
    if (warmup_rounds > 0) {
        warming = true;
        for (int i = 0; i < nconns; i++)
            if (conns[i].state == C_PARKED)
                conns[i].state = C_SEND; /* warm-up 0 rounds: not parked */
        if (run(conns, nconns, start + 600, start + 660) != 0)
            die("warm-up did not finish within 10 minutes%s", "");
        printf("warm %llu %llu %.3f\n", (unsigned long long)ok_samples,
               (unsigned long long)err_samples, now_mono() - start);
        fflush(stdout);
        char line[64];
        if (!fgets(line, sizeof(line), stdin))
            die("stdin closed after warm-up%s", "");
        warming = false;
        ok_requests = ok_samples = err_requests = err_samples = bytes_sent = 0;
        for (int i = 0; i < nconns; i++) {
            struct conn *c = &conns[i];
            if (c->state != C_PARKED)
                continue;
            c->state = C_SEND;
            if (!conn_next(c)) {
                c->state = C_DONE;
                conn_close(c);
                continue;
            }
            conn_want(c, EPOLLOUT | EPOLLIN);
        }
        start = now_mono();
    }
    int active = run(conns, nconns, start + duration, start + duration + 60);
    double elapsed = now_mono() - start;
    int64_t min_round = -1;
    for (int i = 0; i < nconns; i++)
        if (min_round < 0 || conns[i].round < min_round)
            min_round = conns[i].round;
    printf("{\"mode\": \"%s\", \"elapsed_s\": %.3f, \"ok_requests\": %llu, \"ok_samples\": %llu, "
           "\"err_requests\": %llu, \"err_samples\": %llu, \"reconnects\": %llu, "
           "\"bytes_sent\": %llu, \"requests_per_round\": %zu, \"samples_per_round\": %llu, "
           "\"wire_bytes_per_round\": %llu, \"min_round\": %lld, \"rounds_exhausted\": %s, "
           "\"unfinished\": %d, \"first_error\": \"%s\"}\n",
           mode, elapsed, (unsigned long long)ok_requests, (unsigned long long)ok_samples,
           (unsigned long long)err_requests, (unsigned long long)err_samples,
           (unsigned long long)reconnects, (unsigned long long)bytes_sent, nreqs,
           (unsigned long long)round_samples, (unsigned long long)round_bytes,
           (long long)min_round, rounds_exhausted ? "true" : "false", active, first_error);
    return 0;
}
