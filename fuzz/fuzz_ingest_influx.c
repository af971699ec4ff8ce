/* SPDX-License-Identifier: Apache-2.0
 *
 * Fuzz target for the InfluxDB line protocol: the tokenizer alone over the
 * whole input (every line must come back with a text inside the input and
 * a line number that never goes backwards), then the whole write path
 * (mapping, appends, the partial-write answer) into a real tsdb in a
 * temporary directory. The first byte picks the API version and the
 * precision. The answer must be 204 without a body, or 400/413 with a JSON
 * body.
 */
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ingest/ingest.h"
#include "ingest/push_int.h"
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

static void db_cycle(void)
{
    if (fuzz_db) {
        tsdb_close(fuzz_db);
        fuzz_db = NULL;
        nftw(fuzz_dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    }
    snprintf(fuzz_dir, sizeof(fuzz_dir), "/tmp/bongsu-fuzz-influx-XXXXXX");
    if (!mkdtemp(fuzz_dir))
        abort();
    struct tsdb_options o;
    tsdb_options_default(&o);
    o.dir = fuzz_dir;
    o.wal_fsync_interval_ms = 60000;
    o.compaction_interval_ms = -1;
    struct bs_error err = {0};
    if (tsdb_open(&fuzz_db, &o, &err) != 0)
        abort();
}

static const char *const precisions[] = {NULL, "ns", "u", "ms", "s", "m", "h", "x"};
static const char *fuzz_prec;

static const char *param(void *ctx, const char *name)
{
    (void)ctx;
    if (!strcmp(name, "db") || !strcmp(name, "bucket"))
        return "fuzz";
    if (!strcmp(name, "precision"))
        return fuzz_prec;
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (!fuzz_db || ++fuzz_runs % 4096 == 0)
        db_cycle();
    int version = (data[0] & 1) ? 2 : 1;
    fuzz_prec = precisions[(data[0] >> 1) & 7];
    const char *text = (const char *)data + 1;
    size_t len = size - 1;

    struct lp_parser p;
    struct lp_line *line = malloc(sizeof(*line));
    lp_parser_init(&p, text, len);
    size_t last = 0;
    char rbuf[256];
    for (;;) {
        const char *reason = NULL;
        int rc = lp_parser_next(&p, line, &reason, rbuf, sizeof(rbuf));
        if (rc == 0)
            break;
        if (line->text < text || line->text + line->text_len > text + len)
            abort();
        if (line->lineno < last)
            abort();
        last = line->lineno;
        if (rc == BS_EPARSE && !reason)
            abort();
    }
    free(line);

    struct ingest_response r;
    if (ingest_influx_write(fuzz_db, NULL, version, param, NULL, NULL, text, len, &r) != 0)
        abort();
    if (r.status == 204 ? r.body != NULL : (r.body == NULL || r.body[0] != '{'))
        abort();
    if (r.status != 204 && r.status != 400 && r.status != 413)
        abort();
    if (getenv("BONGSU_FUZZ_VERBOSE"))
        fprintf(stderr, "%d %s\n", r.status, r.body ? r.body : "");
    ingest_response_fini(&r);
    return 0;
}
