/* SPDX-License-Identifier: Apache-2.0
 *
 * Fuzz target for the interpretation of raw SEL records as a BMC sends
 * them. bongsu has no pure function of its own for this: bmc.c's SEL
 * callback hands the 16 bytes to libfreeipmi (ipmi_sel_parse_read_* for
 * the fields, ipmi_sel_parse_read_record_string for the %s/%e/%E/%o texts,
 * ipmi_interpret_sel for the severity) and stores the result as an
 * ipmi_event. This target makes the same calls, with the same flags and
 * the same destination sizes, on records passed in directly (a SEL
 * context without a session, which libfreeipmi allows for parsing), then
 * pushes the event through the log's codec and JSON rendering. A hostile
 * or broken BMC controls every one of these bytes. Corpus:
 * fuzz/corpus/ipmi_sel/.
 *
 * Input: the record bytes (any length; a BMC's record is 16). Checked:
 * nothing crashes or reads out of bounds; every text is NUL-terminated
 * within its field; the event encodes, decodes to itself and renders.
 *
 * Seeds: SEL records of the kinds the IPMI simulator produces (threshold
 * temperature and voltage events, a discrete PSU event, deasserted
 * events, a pre-init timestamp, timestamped and non-timestamped OEM
 * records) plus truncated and over-long variants.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <freeipmi/freeipmi.h>

#include "ipmi/ipmi_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ipmi_sel_ctx_t fuzz_sel;
static ipmi_interpret_ctx_t fuzz_interp;

/* As bmc.c's fmt_field: a failed or overlong text is cut, never unterminated. */
static void fmt_field(const uint8_t *rec, unsigned len, const char *fmt, char *dst, size_t cap)
{
    int n = ipmi_sel_parse_read_record_string(fuzz_sel, fmt, rec, len, dst, (unsigned)cap,
                                              IPMI_SEL_STRING_FLAGS_IGNORE_UNAVAILABLE_FIELD);
    if (n < 0)
        dst[0] = '\0';
    else if ((size_t)n >= cap)
        dst[cap - 1] = '\0';
    if (!memchr(dst, '\0', cap))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fuzz_sel) {
        fuzz_sel = ipmi_sel_ctx_create(NULL, NULL);
        fuzz_interp = ipmi_interpret_ctx_create();
        if (!fuzz_sel || !fuzz_interp)
            abort();
        ipmi_interpret_ctx_t ic = fuzz_interp;
        (void)ipmi_sel_ctx_set_parameter(fuzz_sel, IPMI_SEL_PARAMETER_INTERPRET_CONTEXT, &ic);
    }
    if (size > 64)
        return 0;
    /* An exact-size copy, so reads past the record are caught. */
    uint8_t *rec = malloc(size ? size : 1);
    if (!rec)
        abort();
    memcpy(rec, data, size);
    unsigned len = (unsigned)size;

    struct ipmi_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.seq = 1;
    snprintf(ev.bmc, sizeof(ev.bmc), "10.0.0.1:623");
    snprintf(ev.instance, sizeof(ev.instance), "node1");
    snprintf(ev.job, sizeof(ev.job), "ipmi");
    ev.raw_len = (uint8_t)(size < IPMI_SEL_RECORD_LEN ? size : IPMI_SEL_RECORD_LEN);
    memcpy(ev.raw, rec, ev.raw_len);
    ev.content_hash = bs_hash64(ev.raw, ev.raw_len);
    (void)ipmi_sel_parse_read_record_id(fuzz_sel, rec, len, &ev.record_id);
    (void)ipmi_sel_parse_read_record_type(fuzz_sel, rec, len, &ev.record_type);
    int cls = ipmi_sel_record_type_class(ev.record_type);
    ev.sensor_type = 0xff;
    if (cls == IPMI_SEL_RECORD_TYPE_CLASS_SYSTEM_EVENT_RECORD ||
        cls == IPMI_SEL_RECORD_TYPE_CLASS_TIMESTAMPED_OEM_RECORD)
        (void)ipmi_sel_parse_read_timestamp(fuzz_sel, rec, len, &ev.sel_timestamp);
    if (cls == IPMI_SEL_RECORD_TYPE_CLASS_SYSTEM_EVENT_RECORD) {
        uint8_t dir = 0;
        (void)ipmi_sel_parse_read_sensor_type(fuzz_sel, rec, len, &ev.sensor_type);
        (void)ipmi_sel_parse_read_sensor_number(fuzz_sel, rec, len, &ev.sensor_number);
        (void)ipmi_sel_parse_read_event_direction(fuzz_sel, rec, len, &dir);
        ev.direction = dir == IPMI_SEL_RECORD_DEASSERTION_EVENT ? 1 : 0;
        const char *tn = ipmi_get_sensor_type_string(ev.sensor_type);
        snprintf(ev.sensor_type_name, sizeof(ev.sensor_type_name), "%s",
                 tn ? tn : ev.sensor_type >= 0xc0 ? "OEM Reserved" : "Unrecognized");
        fmt_field(rec, len, "%s", ev.sensor_name, sizeof(ev.sensor_name));
        fmt_field(rec, len, "%e", ev.event, sizeof(ev.event));
        fmt_field(rec, len, "%E", ev.description, sizeof(ev.description));
    } else {
        snprintf(ev.sensor_type_name, sizeof(ev.sensor_type_name), "OEM Record");
        fmt_field(rec, len, "%o", ev.description, sizeof(ev.description));
        snprintf(ev.event, sizeof(ev.event), "OEM record type 0x%02x", ev.record_type);
    }
    unsigned st;
    ev.severity = IPMI_SEV_UNKNOWN;
    if (ipmi_interpret_sel(fuzz_interp, rec, len, &st) == 0)
        ev.severity = st == IPMI_INTERPRET_STATE_NOMINAL    ? IPMI_SEV_NOMINAL
                      : st == IPMI_INTERPRET_STATE_WARNING  ? IPMI_SEV_WARNING
                      : st == IPMI_INTERPRET_STATE_CRITICAL ? IPMI_SEV_CRITICAL
                                                            : IPMI_SEV_UNKNOWN;
    ev.time_ms = ev.sel_timestamp > 0x20000000u ? (int64_t)ev.sel_timestamp * 1000 : 0;
    free(rec);

    /* What the collector then does with it: store and render. */
    uint8_t buf[8 + 4096];
    struct ipmi_event back;
    size_t n = ipmi_event_encode(&ev, buf, sizeof(buf));
    if (n == 0 || ipmi_event_decode(buf, n, &back) != (long)n)
        abort();
    uint8_t again[8 + 4096];
    if (ipmi_event_encode(&back, again, sizeof(again)) != n || memcmp(buf, again, n) != 0)
        abort();
    struct bs_buf j;
    bs_buf_init(&j, 1 << 20);
    if (ipmi_event_json(&back, &j) != 0)
        abort();
    bs_buf_fini(&j);
    return 0;
}
