/* SPDX-License-Identifier: Apache-2.0
 *
 * Fuzz target for the IPMI event log record codec (ipmi_event_decode,
 * ipmi_event_encode, ipmi_event_json). Corpus: fuzz/corpus/ipmi_record/.
 *
 * Input: one flag byte, then the bytes handed to the decoder. With bit 0
 * of the flag set, the CRC32C in the frame header is recomputed over the
 * payload the length field claims (when that much is present), so the
 * fuzzer gets past the checksum to the payload parser; with it clear the
 * bytes are decoded as they are (the checksum path).
 *
 * Checked: the decoder returns 0 (truncated), -1 (corrupt) or a length
 * within the input; a decoded event satisfies the codec's invariants
 * (seq > 0, direction 0/1, a known severity, raw_len <= 16,
 * NUL-terminated strings without embedded NULs); encoding it again and
 * decoding that gives the same event; every strict prefix of an accepted
 * record decodes as truncated; the JSON rendering succeeds and is one
 * object.
 *
 * The seeds in the corpus are records from ipmi_event_encode (a system
 * event, an OEM record, empty and maximal strings, extreme numbers) plus
 * truncated and corrupted variants. They were written by this program
 * compiled against libipmi with -DFUZZ_IPMI_WRITE_SEEDS:
 *   cc -std=c11 -D_GNU_SOURCE -DFUZZ_IPMI_WRITE_SEEDS -Isrc \
 *      fuzz/fuzz_ipmi_ipmi_record.c build/<mode>/lib/lib{ipmi,tsdb,labels,util}.a \
 *      $(pkg-config --libs libfreeipmi libipmimonitoring libxxhash libzstd) -lm -pthread \
 *      -o /tmp/gen && /tmp/gen fuzz/corpus/ipmi_record
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipmi/ipmi_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_REC (8 + 4096)

static void check_str(const char *s, size_t cap)
{
    if (!memchr(s, '\0', cap))
        abort();
}

static void check_event(const struct ipmi_event *ev)
{
    if (ev->seq == 0 || ev->direction > 1 || ev->severity > IPMI_SEV_UNKNOWN ||
        ev->raw_len > IPMI_SEL_RECORD_LEN)
        abort();
    check_str(ev->bmc, sizeof(ev->bmc));
    check_str(ev->instance, sizeof(ev->instance));
    check_str(ev->job, sizeof(ev->job));
    check_str(ev->sensor_type_name, sizeof(ev->sensor_type_name));
    check_str(ev->sensor_name, sizeof(ev->sensor_name));
    check_str(ev->event, sizeof(ev->event));
    check_str(ev->description, sizeof(ev->description));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t flags = data[0];
    size_t n = size - 1;
    uint8_t *p = malloc(n ? n : 1);
    if (!p)
        abort();
    memcpy(p, data + 1, n);
    if ((flags & 1) && n >= 8) {
        uint32_t len = bs_get_be32(p);
        if (len <= n - 8)
            bs_put_be32(p + 4, bs_crc32c(0, p + 8, len));
    }
    struct ipmi_event ev, again;
    long k = ipmi_event_decode(p, n, &ev);
    if (k < -1 || k > (long)n)
        abort();
    if (k > 0) {
        check_event(&ev);
        uint8_t *enc = malloc(MAX_REC);
        if (!enc)
            abort();
        size_t m = ipmi_event_encode(&ev, enc, MAX_REC);
        if (m == 0 || ipmi_event_decode(enc, m, &again) != (long)m ||
            memcmp(&ev, &again, sizeof(ev)) != 0)
            abort();
        /* The canonical encoding is never longer than what was accepted. */
        if (m > (size_t)k)
            abort();
        for (size_t cut = 0; cut < m; cut++)
            if (ipmi_event_decode(enc, cut, &again) != 0)
                abort();
        free(enc);
        struct bs_buf j;
        bs_buf_init(&j, 1 << 20);
        if (ipmi_event_json(&ev, &j) != 0 || j.len < 2 || j.data[0] != '{' ||
            j.data[j.len - 1] != '}' || strlen(j.data) != j.len)
            abort();
        bs_buf_fini(&j);
    }
    free(p);
    return 0;
}

#ifdef FUZZ_IPMI_WRITE_SEEDS
static void put(const char *dir, const char *name, uint8_t flags, const uint8_t *b, size_t n)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fputc(flags, f) == EOF || fwrite(b, 1, n, f) != n || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

static void seed_event(struct ipmi_event *ev, int kind)
{
    memset(ev, 0, sizeof(*ev));
    ev->seq = 1;
    snprintf(ev->bmc, sizeof(ev->bmc), "10.0.0.1:623");
    snprintf(ev->instance, sizeof(ev->instance), "node1");
    snprintf(ev->job, sizeof(ev->job), "ipmi");
    ev->record_id = 5;
    ev->record_type = 2;
    ev->sel_timestamp = 1795718470u;
    ev->time_ms = 1795718470000LL;
    ev->ingest_ms = 1795718471234LL;
    ev->sensor_type = 1;
    ev->sensor_number = 0x30;
    ev->severity = IPMI_SEV_CRITICAL;
    static const uint8_t raw[16] = {0x05, 0x00, 0x02, 0x46, 0x6f, 0x08, 0x6b, 0x20, 0x00, 0x04,
                                    0x01, 0x30, 0x01, 0x59, 0x5a, 0x55};
    ev->raw_len = 16;
    memcpy(ev->raw, raw, 16);
    ev->content_hash = bs_hash64(ev->raw, ev->raw_len);
    snprintf(ev->sensor_type_name, sizeof(ev->sensor_type_name), "Temperature");
    snprintf(ev->sensor_name, sizeof(ev->sensor_name), "CPU Temp");
    snprintf(ev->event, sizeof(ev->event), "Upper Critical - going high");
    snprintf(ev->description, sizeof(ev->description),
             "Upper Critical - going high ; Event Reading = 90 C ; Threshold = 85 C");
    switch (kind) {
    case 1: /* OEM record, deasserted, pre-init timestamp */
        ev->record_type = 0xe0;
        ev->sensor_type = 0xff;
        ev->direction = 1;
        ev->severity = IPMI_SEV_UNKNOWN;
        ev->sel_timestamp = 1234;
        ev->time_ms = 0;
        snprintf(ev->sensor_type_name, sizeof(ev->sensor_type_name), "OEM Record");
        ev->sensor_name[0] = '\0';
        snprintf(ev->event, sizeof(ev->event), "OEM record type 0xe0");
        snprintf(ev->description, sizeof(ev->description), "OEM-defined = 0102030405060708090a");
        break;
    case 2: /* empty strings, short raw */
        ev->bmc[0] = ev->instance[0] = ev->job[0] = ev->sensor_type_name[0] = '\0';
        ev->sensor_name[0] = ev->event[0] = ev->description[0] = '\0';
        ev->raw_len = 3;
        break;
    case 3: /* maximal strings and extreme numbers */
        ev->seq = UINT64_MAX - 1;
        ev->time_ms = INT64_MIN;
        ev->ingest_ms = INT64_MAX;
        ev->sel_timestamp = UINT32_MAX;
        ev->record_id = UINT16_MAX;
        memset(ev->bmc, 'b', sizeof(ev->bmc) - 1);
        memset(ev->description, 'd', sizeof(ev->description) - 1);
        memset(ev->sensor_name, '"', sizeof(ev->sensor_name) - 1);
        ev->event[0] = '\x01';
        break;
    }
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    static const char *const names[] = {"system_event", "oem_record", "empty_strings", "extremes"};
    for (int kind = 0; kind < 4; kind++) {
        struct ipmi_event ev;
        uint8_t rec[MAX_REC];
        seed_event(&ev, kind);
        size_t n = ipmi_event_encode(&ev, rec, sizeof(rec));
        if (n == 0)
            return 1;
        char name[64];
        put(argv[1], names[kind], 0, rec, n);
        if (kind != 0)
            continue;
        /* Variants of the first: truncated, a flipped payload byte (with
         * and without the CRC fixed up), a bad version, a bad length. */
        snprintf(name, sizeof(name), "%s_truncated", names[kind]);
        put(argv[1], name, 0, rec, n - 7);
        snprintf(name, sizeof(name), "%s_header_only", names[kind]);
        put(argv[1], name, 0, rec, 8);
        rec[30] ^= 0x40;
        snprintf(name, sizeof(name), "%s_flipped", names[kind]);
        put(argv[1], name, 0, rec, n);
        snprintf(name, sizeof(name), "%s_flipped_crcfix", names[kind]);
        put(argv[1], name, 1, rec, n);
        rec[30] ^= 0x40;
        rec[8] = 2;
        snprintf(name, sizeof(name), "%s_version2_crcfix", names[kind]);
        put(argv[1], name, 1, rec, n);
        rec[8] = 1;
        bs_put_be32(rec, 0xffffffffu);
        snprintf(name, sizeof(name), "%s_huge_len", names[kind]);
        put(argv[1], name, 0, rec, n);
        bs_put_be32(rec, (uint32_t)(n - 8 - 1));
        snprintf(name, sizeof(name), "%s_short_len_crcfix", names[kind]);
        put(argv[1], name, 1, rec, n);
    }
    return 0;
}
#endif
