/* SPDX-License-Identifier: Apache-2.0
 *
 * Line-protocol ingestion benchmark: Telegraf-like cpu lines (4 tags, 5
 * float fields, nanosecond timestamps) for 2,000 hosts, sent as bodies of
 * 5,000 lines to ingest_influx_write() on one thread, into a real tsdb in a
 * temporary directory (WAL fsync every second). Prints lines/s and
 * samples/s; the bodies are built before the clock starts.
 */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ingest/ingest.h"

#define HOSTS 2000
#define LINES_PER_BODY 5000
#define ROUNDS 20

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static const char *param(void *ctx, const char *name)
{
    (void)ctx;
    return strcmp(name, "db") ? NULL : "telegraf";
}

int main(void)
{
    char dir[] = "/tmp/bongsu-bench-influx-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    struct tsdb_options o;
    tsdb_options_default(&o);
    o.dir = dir;
    o.wal_fsync_interval_ms = 1000;
    struct tsdb *db;
    struct bs_error err = {0};
    if (tsdb_open(&db, &o, &err)) {
        fprintf(stderr, "tsdb_open: %s\n", err.msg);
        return 1;
    }
    size_t nbodies = (size_t)HOSTS * ROUNDS / LINES_PER_BODY;
    struct bs_buf *bodies = calloc(nbodies, sizeof(*bodies));
    int64_t t0 = (bs_now_ms() - 60000) * 1000000;
    size_t line = 0;
    for (size_t b = 0; b < nbodies; b++) {
        bs_buf_init(&bodies[b], 0);
        for (size_t i = 0; i < LINES_PER_BODY; i++, line++) {
            size_t host = line % HOSTS, round = line / HOSTS;
            bs_buf_printf(&bodies[b],
                          "cpu,cpu=cpu-total,host=host-%04zu,dc=dc-%zu,rack=r%02zu "
                          "usage_user=%zu.25,usage_system=%zu.5,usage_idle=9%zu.125,"
                          "usage_iowait=0.%zu,usage_steal=0 %lld\n",
                          host, host % 4, host % 40, round, host % 7, round % 10, host % 10,
                          (long long)(t0 + (int64_t)round * 1000000000));
        }
    }
    int64_t start = bs_monotonic_ns();
    for (size_t b = 0; b < nbodies; b++) {
        struct ingest_response r;
        ingest_influx_write(db, NULL, 1, param, NULL, NULL, bodies[b].data, bodies[b].len, &r);
        if (r.status != 204) {
            fprintf(stderr, "status %d: %s\n", r.status, r.body ? r.body : "");
            return 1;
        }
        ingest_response_fini(&r);
    }
    double secs = (double)(bs_monotonic_ns() - start) / 1e9;
    size_t lines = nbodies * LINES_PER_BODY;
    printf("line protocol: %zu lines (%zu samples) in %.3f s: %.0f lines/s, %.0f samples/s\n",
           lines, lines * 5, secs, (double)lines / secs, (double)lines * 5 / secs);
    for (size_t b = 0; b < nbodies; b++)
        bs_buf_fini(&bodies[b]);
    free(bodies);
    tsdb_close(db);
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}
