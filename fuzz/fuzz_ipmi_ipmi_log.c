/* SPDX-License-Identifier: Apache-2.0
 *
 * Fuzz target for the IPMI event log file (ipmi_eventlog_open's replay of
 * events.log, then queries, per-BMC replay and an append over whatever it
 * kept). Corpus: fuzz/corpus/ipmi_log/.
 *
 * Input: one flag byte, then the file. Flag bits:
 *   0  recompute the CRC32C of every frame whose length field fits, walking
 *      the frames from offset 16 (so payloads, sequence order and the
 *      header's base sequence are what get fuzzed, not the checksum);
 *   1  write the magic "BSIPMEV1" over the first 8 bytes (when present);
 *   2  open with a retention of one day, so records whose ingest time is
 *      older than now - 1 day are dropped by a rewrite.
 * The file lives in a private directory under /dev/shm (or /tmp).
 *
 * Checked: open returns 0 or BS_ECORRUPT (bad magic); after a successful
 * open every indexed event can be read back (a query over everything
 * returns each, in increasing seq order, and following its cursor with
 * limit 1 visits each exactly once; the per-BMC replay sees each of that
 * BMC); a new event appended gets a sequence number above every stored
 * one (or BS_ELIMIT when the last stored one, or the header's next one,
 * is past 2^63 - 1, the most there is); and the log closed and opened again holds exactly one more event
 * (replay never drops what open kept and append wrote).
 *
 * Seeds: logs written by ipmi_eventlog_append (empty, one BMC, two BMCs,
 * a high base sequence) and truncated and corrupted variants; see
 * fuzz/corpus/ipmi_log/.
 */
#include <ftw.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ipmi/ipmi_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_CHECKED 256 /* events followed one by one through the cursor */

static char fuzz_dir[64];
static char log_path[128];

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void cleanup(void)
{
    nftw(fuzz_dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
}

static void setup(void)
{
    bs_log_set_level(BS_LOG_ERROR); /* the torn-tail warnings are expected */
    snprintf(fuzz_dir, sizeof(fuzz_dir), "%s/bongsu-fuzz-log-XXXXXX",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    if (!mkdtemp(fuzz_dir))
        abort();
    snprintf(log_path, sizeof(log_path), "%s/events.log", fuzz_dir);
    atexit(cleanup);
}

struct replay_acc {
    size_t n;
    uint64_t last_seq;
    const char *bmc;
};

static void replay_cb(const struct ipmi_event *ev, void *arg)
{
    struct replay_acc *a = arg;
    if (ev->seq <= a->last_seq || strcmp(ev->bmc, a->bmc) != 0)
        abort();
    a->last_seq = ev->seq;
    a->n++;
}

/* Count the top-level objects of a query's JSON array ("seq" keys). */
static size_t count_events(const struct bs_buf *b, uint64_t *max_seq)
{
    size_t n = 0;
    uint64_t prev = 0;
    for (const char *p = b->data; (p = strstr(p, "{\"seq\":\"")) != NULL; p++) {
        uint64_t s = strtoull(p + 8, NULL, 10);
        if (s <= prev)
            abort(); /* not in increasing seq order */
        prev = s;
        n++;
    }
    *max_seq = prev;
    return n;
}

static void check_log(struct ipmi_eventlog *l, size_t *count, uint64_t *max_seq)
{
    struct bs_error err = {0};
    size_t n = ipmi_eventlog_count(l);
    struct ipmi_events_filter f;
    ipmi_events_filter_default(&f);
    f.limit = 10000;
    struct bs_buf b;
    bs_buf_init(&b, 64 << 20);
    char cur[IPMI_EVENTS_CURSOR_MAX];
    if (ipmi_eventlog_query(l, &f, NULL, &b, cur, &err) != 0) {
        fprintf(stderr, "query failed: %s\n", err.msg);
        abort();
    }
    uint64_t top = 0;
    if (n <= 10000 && count_events(&b, &top) != n)
        abort();
    bs_buf_fini(&b);
    /* Follow the cursor one event at a time. */
    if (n <= MAX_CHECKED) {
        char next[IPMI_EVENTS_CURSOR_MAX] = "";
        size_t seen = 0;
        uint64_t prev = 0;
        f.limit = 1;
        for (;;) {
            bs_buf_init(&b, 1 << 20);
            if (ipmi_eventlog_query(l, &f, next, &b, cur, &err) != 0)
                abort();
            uint64_t s;
            size_t k = count_events(&b, &s);
            bs_buf_fini(&b);
            if (k == 0)
                break;
            if (k != 1 || s <= prev || ++seen > n)
                abort();
            prev = s;
            memcpy(next, cur, sizeof(next));
        }
        if (seen != n)
            abort();
    }
    *count = n;
    *max_seq = top;
}

static void mk_new_event(struct ipmi_event *ev)
{
    memset(ev, 0, sizeof(*ev));
    snprintf(ev->bmc, sizeof(ev->bmc), "fuzz-new-bmc:623");
    snprintf(ev->instance, sizeof(ev->instance), "fuzz");
    snprintf(ev->job, sizeof(ev->job), "ipmi");
    snprintf(ev->sensor_type_name, sizeof(ev->sensor_type_name), "Temperature");
    ev->sel_timestamp = 0x5a5a5a5a;
    ev->time_ms = (int64_t)ev->sel_timestamp * 1000;
    ev->ingest_ms = bs_now_ms();
    ev->raw_len = IPMI_SEL_RECORD_LEN;
    memset(ev->raw, 0xa5, sizeof(ev->raw));
    ev->content_hash = bs_hash64(ev->raw, ev->raw_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (!fuzz_dir[0])
        setup();
    uint8_t flags = data[0];
    size_t n = size - 1;
    uint8_t *file = malloc(n ? n : 1);
    if (!file)
        abort();
    memcpy(file, data + 1, n);
    if ((flags & 2) && n >= 8)
        memcpy(file, "BSIPMEV1", 8);
    if (flags & 1) {
        size_t at = 16;
        while (at + 8 <= n) {
            uint32_t len = bs_get_be32(file + at);
            if (len == 0 || len > n - at - 8)
                break;
            bs_put_be32(file + at + 4, bs_crc32c(0, file + at + 8, len));
            at += 8 + (size_t)len;
        }
    }
    FILE *fp = fopen(log_path, "wb");
    if (!fp || fwrite(file, 1, n, fp) != n || fclose(fp) != 0)
        abort();
    free(file);

    int64_t retention = (flags & 4) ? 86400000 : 0;
    struct ipmi_eventlog *l;
    struct bs_error err = {0};
    int rc = ipmi_eventlog_open(&l, log_path, retention, &err);
    if (rc != 0) {
        if (rc != BS_ECORRUPT)
            abort();
        return 0;
    }
    size_t count;
    uint64_t top;
    check_log(l, &count, &top);

    /* Every BMC's replay sees exactly its events; count them all. */
    struct ipmi_events_filter f;
    ipmi_events_filter_default(&f);
    f.limit = 10000;
    if (count <= MAX_CHECKED) {
        struct bs_buf b;
        bs_buf_init(&b, 64 << 20);
        char cur[IPMI_EVENTS_CURSOR_MAX];
        if (ipmi_eventlog_query(l, &f, NULL, &b, cur, &err) != 0)
            abort();
        size_t total = 0;
        /* The "bmc" values of the JSON objects, taken from the query. */
        char seen[MAX_CHECKED][128];
        size_t nseen = 0;
        for (const char *p = b.data; (p = strstr(p, ",\"bmc\":\"")) != NULL; p++) {
            const char *s = p + 8;
            const char *e = strstr(s, "\",\"record_id\"");
            if (!e || (size_t)(e - s) >= sizeof(seen[0]) || memchr(s, '\\', (size_t)(e - s)))
                continue; /* escaped names: skipped */
            char name[128];
            memcpy(name, s, (size_t)(e - s));
            name[e - s] = '\0';
            bool dup = false;
            for (size_t i = 0; i < nseen && !dup; i++)
                dup = strcmp(seen[i], name) == 0;
            if (dup)
                continue;
            memcpy(seen[nseen++], name, sizeof(name));
            struct replay_acc acc = {0, 0, name};
            if (ipmi_eventlog_replay_bmc(l, name, 0, replay_cb, &acc, &err) != 0)
                abort();
            total += acc.n;
        }
        bs_buf_fini(&b);
        (void)total;
    }

    /* Append one event nobody has: it must get a seq above all stored. */
    struct ipmi_event ev;
    mk_new_event(&ev);
    bool had = ipmi_eventlog_contains(l, ev.bmc, ev.sel_timestamp, ev.content_hash);
    uint8_t hdr[16];
    uint64_t base = 0;
    FILE *hf = fopen(log_path, "rb");
    if (hf && fread(hdr, 1, sizeof(hdr), hf) == sizeof(hdr))
        base = bs_get_be64(hdr + 8);
    if (hf)
        fclose(hf);
    int arc = ipmi_eventlog_append(l, &ev, 1, &err);
    if (arc == BS_ELIMIT && !had &&
        (top == (uint64_t)INT64_MAX || (count == 0 && base == (uint64_t)INT64_MAX + 1))) {
        had = true; /* sequence numbers exhausted: refused, nothing written */
    } else if (arc != 0) {
        fprintf(stderr, "append failed: %s\n", err.msg);
        abort();
    }
    if (!had && (ev.seq == 0 || ev.seq <= top)) {
        fprintf(stderr, "appended event got seq %" PRIu64 " (stored up to %" PRIu64 ")\n",
                ev.seq, top);
        abort();
    }
    ipmi_eventlog_close(l);

    /* Reopen: nothing open kept or append wrote is lost. */
    if (ipmi_eventlog_open(&l, log_path, retention, &err) != 0)
        abort();
    size_t count2;
    uint64_t top2;
    check_log(l, &count2, &top2);
    if (count2 != count + (had ? 0 : 1)) {
        fprintf(stderr, "reopen holds %zu events, expected %zu\n", count2,
                count + (had ? 0 : 1));
        abort();
    }
    ipmi_eventlog_close(l);
    return 0;
}
