/* SPDX-License-Identifier: Apache-2.0
 *
 * Fuzz target for the protobuf delimited body format of the Pushgateway
 * API (src/ingest/push_pb.c). The first input byte picks the request: bit 0
 * POST instead of PUT, bits 1-2 one of four groups (so pushes meet other
 * groups' families in the consistency checks), bit 3 a DELETE of that group
 * afterwards; the rest is the body, sent with the protobuf Content-Type.
 * Everything goes into one real tsdb in a temporary directory (recreated
 * every few thousand inputs so memory stays flat), with a small decode
 * memory cap so the limit path is reached. The response must be well
 * formed: 200 without a body, or 400/413 with a one-line-or-more text body;
 * 500 means a bug. Set BONGSU_FUZZ_VERBOSE=1 to print each status and body
 * (to check what a corpus reaches).
 */
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ingest/ingest.h"
#include "tsdb/tsdb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct tsdb *fuzz_db;
static struct ingest_push *fuzz_pg;
static char fuzz_dir[64];
static unsigned fuzz_runs;

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void db_close(void)
{
    ingest_push_free(fuzz_pg);
    fuzz_pg = NULL;
    if (!fuzz_db)
        return;
    tsdb_close(fuzz_db);
    fuzz_db = NULL;
    nftw(fuzz_dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void db_open(void)
{
    snprintf(fuzz_dir, sizeof(fuzz_dir), "/tmp/bongsu-fuzz-pushpb-XXXXXX");
    if (!mkdtemp(fuzz_dir))
        abort();
    struct tsdb_options o;
    tsdb_options_default(&o);
    o.dir = fuzz_dir;
    o.wal_fsync_interval_ms = 60000;
    struct bs_error err = {0};
    if (tsdb_open(&fuzz_db, &o, &err) != 0)
        abort();
    struct ingest_limits lim;
    ingest_limits_default(&lim);
    lim.max_decode_memory = 1 << 20;
    lim.max_series_per_request = 10000;
    if (ingest_push_new(&fuzz_pg, fuzz_db, NULL, 0, &lim, &err) != 0)
        abort();
}

static void check(const struct ingest_response *r)
{
    switch (r->status) {
    case 200:
    case 202:
        if (r->body)
            abort();
        break;
    case 400:
    case 413:
        if (!r->body || strlen(r->body) != r->body_len || r->body_len == 0)
            abort();
        break;
    default:
        abort(); /* 415 cannot happen with these headers; 500 means a bug */
    }
    if (getenv("BONGSU_FUZZ_VERBOSE"))
        fprintf(stderr, "status %d: %s", r->status, r->body ? r->body : "\n");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (!fuzz_db) {
        bs_log_set_level(BS_LOG_ERROR);
        db_open();
        atexit(db_close);
    } else if (++fuzz_runs % 4096 == 0) {
        db_close();
        db_open();
    }
    static const char *const paths[] = {"/metrics/job/a", "/metrics/job/a/instance/i",
                                        "/metrics/job/b/x@base64/=", "/metrics/job/c/le/1"};
    const char *path = paths[(data[0] >> 1) & 3];
    struct ingest_response r;
    int rc = ingest_push_handle(fuzz_pg, (data[0] & 1) ? "POST" : "PUT", path,
                                "application/vnd.google.protobuf; "
                                "proto=io.prometheus.client.MetricFamily; encoding=delimited",
                                NULL, data + 1, size - 1, &r);
    if (rc != 0)
        abort();
    check(&r);
    ingest_response_fini(&r);
    if (data[0] & 8) {
        if (ingest_push_handle(fuzz_pg, "DELETE", path, NULL, NULL, NULL, 0, &r) != 0)
            abort();
        check(&r);
        ingest_response_fini(&r);
    }
    return 0;
}
