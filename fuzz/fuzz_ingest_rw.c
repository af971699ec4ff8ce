/* SPDX-License-Identifier: Apache-2.0
 *
 * Fuzz target for the remote-write receiver. The first input byte picks
 * the message and the path: bit 0 set means 2.0 (the proto= parameter of
 * Content-Type), bit 1 set means the rest is sent as the body as is (so the
 * snappy decoder sees arbitrary bytes); otherwise the rest is a protobuf
 * message that is snappy-compressed first, so the protobuf decoder and the
 * validation and append paths see arbitrary messages. Everything goes into
 * one real tsdb in a temporary directory (recreated every few thousand
 * inputs so memory stays flat). The response must be well formed: a known
 * status, a body exactly when the status is not 204, 2.0 headers only for
 * 2.0. Set BONGSU_FUZZ_VERBOSE=1 to print each status and body (to check
 * what a corpus reaches).
 */
#include <ftw.h>
#include <snappy-c.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ingest/ingest.h"
#include "tsdb/tsdb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct tsdb *fuzz_db;
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
    if (!fuzz_db)
        return;
    tsdb_close(fuzz_db);
    fuzz_db = NULL;
    nftw(fuzz_dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void db_open(void)
{
    snprintf(fuzz_dir, sizeof(fuzz_dir), "/tmp/bongsu-fuzz-rw-XXXXXX");
    if (!mkdtemp(fuzz_dir))
        abort();
    struct tsdb_options o;
    tsdb_options_default(&o);
    o.dir = fuzz_dir;
    o.wal_fsync_interval_ms = 60000;
    struct bs_error err = {0};
    if (tsdb_open(&fuzz_db, &o, &err) != 0)
        abort();
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
    bool v2 = data[0] & 1, raw = data[0] & 2;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    char *z = NULL;
    size_t zlen = n;
    if (!raw) {
        zlen = snappy_max_compressed_length(n);
        z = malloc(zlen ? zlen : 1);
        if (!z || snappy_compress((const char *)p, n, z, &zlen) != SNAPPY_OK)
            abort();
    }
    struct ingest_limits lim;
    ingest_limits_default(&lim);
    lim.max_decoded_bytes = 4 << 20;
    lim.max_decode_memory = 64 << 20;
    lim.created_timestamp_zero = data[0] & 4;
    struct ingest_response r;
    const char *ct = v2 ? "application/x-protobuf;proto=io.prometheus.write.v2.Request"
                        : "application/x-protobuf;proto=prometheus.WriteRequest";
    int rc = ingest_remote_write(fuzz_db, &lim, ct, "snappy", v2 ? "2.0.0" : "0.1.0",
                                 raw ? (const void *)p : z, zlen, &r);
    if (rc != 0)
        abort();
    switch (r.status) {
    case 204:
        if (r.body)
            abort();
        break;
    case 400:
    case 413:
        if (!r.body || strlen(r.body) != r.body_len || r.body_len == 0)
            abort();
        break;
    default:
        abort(); /* 415 cannot happen with these headers; 500 means a bug here */
    }
    if (!v2 && r.nheaders != 0)
        abort();
    if (getenv("BONGSU_FUZZ_VERBOSE"))
        fprintf(stderr, "status %d (%zu headers): %s", r.status, r.nheaders,
                r.body ? r.body : "\n");
    ingest_response_fini(&r);
    free(z);
    return 0;
}
