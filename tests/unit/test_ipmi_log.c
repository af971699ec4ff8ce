/* SPDX-License-Identifier: Apache-2.0
 *
 * Unit tests of the IPMI event log and SEL cursors, without a BMC: the
 * record codec round trip and its rejection of corrupt frames, replay of a
 * log with a torn tail and with a flipped byte (both cut off, earlier
 * records kept), deduplication by (BMC, SEL timestamp, content hash),
 * queries with every filter and cursor pagination that yields each event
 * once, retention that keeps the sequence going, cursor files written and
 * read back, and a corrupt cursor file detected. Also the error messages
 * for libfreeipmi's session errors, and regression cases for what the
 * fuzz targets fuzz/fuzz_ipmi_ipmi_*.c found (sequence numbers that wrap,
 * lines after a cursor file's checksum line).
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <freeipmi/freeipmi.h>

#include <cmocka.h>

#include "ipmi/ipmi_int.h"
#include "test_tsdb_util.h"

static void mk_event(struct ipmi_event *ev, const char *bmc, uint16_t id, uint32_t ts,
                     uint8_t stype, const char *stname, uint8_t sev)
{
    memset(ev, 0, sizeof(*ev));
    snprintf(ev->bmc, sizeof(ev->bmc), "%s", bmc);
    snprintf(ev->instance, sizeof(ev->instance), "%s", bmc);
    snprintf(ev->job, sizeof(ev->job), "ipmi");
    ev->record_id = id;
    ev->record_type = 2;
    ev->sel_timestamp = ts;
    ev->time_ms = (int64_t)ts * 1000;
    ev->ingest_ms = bs_now_ms();
    ev->sensor_type = stype;
    ev->sensor_number = 1;
    ev->direction = id & 1;
    ev->severity = sev;
    ev->raw_len = IPMI_SEL_RECORD_LEN;
    for (int i = 0; i < IPMI_SEL_RECORD_LEN; i++)
        ev->raw[i] = (uint8_t)(id * 7 + i + ts);
    ev->content_hash = bs_hash64(ev->raw, ev->raw_len);
    snprintf(ev->sensor_type_name, sizeof(ev->sensor_type_name), "%s", stname);
    snprintf(ev->sensor_name, sizeof(ev->sensor_name), "Sensor \"%u\"", id);
    snprintf(ev->event, sizeof(ev->event), "Upper Critical - going high");
    snprintf(ev->description, sizeof(ev->description), "Reading = %u", id);
}

static void test_codec(void **state)
{
    (void)state;
    struct ipmi_event a, b;
    mk_event(&a, "10.0.0.1:623", 42, 1795718470, 1, "Temperature", IPMI_SEV_CRITICAL);
    a.seq = 7;
    uint8_t buf[8192];
    size_t n = ipmi_event_encode(&a, buf, sizeof(buf));
    assert_true(n > 8);
    assert_int_equal(ipmi_event_decode(buf, n, &b), (long)n);
    assert_int_equal(memcmp(&a, &b, sizeof(a)), 0);
    /* Truncated: 0 (need more); flipped bit: -1; too small a buffer: 0. */
    for (size_t k = 0; k < n; k++)
        assert_int_equal(ipmi_event_decode(buf, k, &b), 0);
    for (size_t k = 8; k < n; k++) {
        buf[k] ^= 0x10;
        assert_int_equal(ipmi_event_decode(buf, n, &b), -1);
        buf[k] ^= 0x10;
    }
    assert_int_equal(ipmi_event_encode(&a, buf, n - 1), 0);
    struct bs_buf j;
    bs_buf_init(&j, 0);
    assert_int_equal(ipmi_event_json(&a, &j), 0);
    assert_non_null(strstr(j.data, "\"seq\":\"7\""));
    assert_non_null(strstr(j.data, "\"sensor_name\":\"Sensor \\\"42\\\"\""));
    assert_non_null(strstr(j.data, "\"direction\":\"Asserted\",\"severity\":\"critical\""));
    assert_non_null(strstr(j.data, "\"time\":\"2026-11-26T"));
    bs_buf_fini(&j);
}

static char *tmp_path(const char *d, const char *name)
{
    char *p = malloc(strlen(d) + strlen(name) + 2);
    sprintf(p, "%s/%s", d, name);
    return p;
}

static void test_log_replay_torn_and_corrupt(void **state)
{
    (void)state;
    char *d = make_tmpdir();
    char *path = tmp_path(d, "events.log");
    struct ipmi_eventlog *l;
    struct bs_error err = {0};
    assert_int_equal(ipmi_eventlog_open(&l, path, 0, &err), 0);
    struct ipmi_event evs[3];
    for (int i = 0; i < 3; i++)
        mk_event(&evs[i], "b:623", (uint16_t)(i + 1), 1795718470u + i, 1, "Temperature", 2);
    assert_int_equal(ipmi_eventlog_append(l, evs, 3, &err), 0);
    assert_int_equal(evs[0].seq, 1);
    assert_int_equal(evs[2].seq, 3);
    ipmi_eventlog_close(l);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    off_t full = st.st_size;
    /* Torn tail: the last record loses 5 bytes. */
    assert_int_equal(truncate(path, full - 5), 0);
    assert_int_equal(ipmi_eventlog_open(&l, path, 0, &err), 0);
    assert_int_equal(ipmi_eventlog_count(l), 2);
    assert_true(ipmi_eventlog_contains(l, "b:623", evs[1].sel_timestamp, evs[1].content_hash));
    assert_false(ipmi_eventlog_contains(l, "b:623", evs[2].sel_timestamp, evs[2].content_hash));
    /* The third can be appended again and gets seq 3. */
    evs[2].seq = 0;
    assert_int_equal(ipmi_eventlog_append(l, &evs[2], 1, &err), 0);
    assert_int_equal(evs[2].seq, 3);
    ipmi_eventlog_close(l);
    /* Corrupt a byte in the second record's payload: it and later ones go. */
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, full);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    off_t rec = (full - 16) / 3; /* records have the same length here */
    uint8_t byte;
    assert_int_equal(pread(fd, &byte, 1, 16 + rec + 20), 1);
    byte ^= 0xff;
    assert_int_equal(pwrite(fd, &byte, 1, 16 + rec + 20), 1);
    close(fd);
    assert_int_equal(ipmi_eventlog_open(&l, path, 0, &err), 0);
    assert_int_equal(ipmi_eventlog_count(l), 1);
    ipmi_eventlog_close(l);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 16 + rec);
    /* Not an event log at all: an error naming the file. */
    fd = open(path, O_WRONLY | O_TRUNC);
    assert_int_equal(write(fd, "hello, world, this is text", 26), 26);
    close(fd);
    assert_int_equal(ipmi_eventlog_open(&l, path, 0, &err), BS_ECORRUPT);
    assert_non_null(strstr(err.msg, "events.log"));
    free(path);
    rmrf(d);
    free(d);
}

static void test_log_dedupe_query_cursor(void **state)
{
    (void)state;
    char *d = make_tmpdir();
    char *path = tmp_path(d, "events.log");
    struct ipmi_eventlog *l;
    struct bs_error err = {0};
    assert_int_equal(ipmi_eventlog_open(&l, path, 0, &err), 0);
    struct ipmi_event evs[10];
    for (int i = 0; i < 10; i++)
        mk_event(&evs[i], i % 2 ? "a:623" : "b:623", (uint16_t)(i + 1), 1795718470u + i,
                 i < 5 ? 1 : 4, i < 5 ? "Temperature" : "Fan", (uint8_t)(i % 3));
    /* A batch holding the same event twice stores it once. */
    struct ipmi_event twice[2] = {evs[0], evs[0]};
    assert_int_equal(ipmi_eventlog_append(l, twice, 2, &err), 0);
    assert_int_equal(twice[0].seq, 1);
    assert_int_equal(twice[1].seq, 0);
    assert_int_equal(ipmi_eventlog_append(l, evs, 10, &err), 0);
    assert_int_equal(evs[0].seq, 0); /* already stored */
    assert_int_equal(evs[9].seq, 10);
    assert_int_equal(ipmi_eventlog_count(l), 10);

    struct ipmi_events_filter f;
    char cur[IPMI_EVENTS_CURSOR_MAX];
    struct bs_buf b;
    bs_buf_init(&b, 0);
    /* Pages of 3 through everything: each event once, in order. */
    ipmi_events_filter_default(&f);
    f.limit = 3;
    char in[IPMI_EVENTS_CURSOR_MAX] = "";
    int seen = 0;
    for (int page = 0; page < 10; page++) {
        bs_buf_reset(&b);
        assert_int_equal(ipmi_eventlog_query(l, &f, in, &b, cur, &err), 0);
        for (const char *p = b.data; (p = strstr(p, "\"seq\":\"")) != NULL; p++) {
            seen++;
            assert_int_equal(atoi(p + 7), seen);
        }
        if (strcmp(b.data, "[]") == 0)
            break;
        snprintf(in, sizeof(in), "%s", cur);
    }
    assert_int_equal(seen, 10);
    /* Filters. */
    ipmi_events_filter_default(&f);
    f.instance = "a:623";
    f.sensor_type = "fan";
    bs_buf_reset(&b);
    assert_int_equal(ipmi_eventlog_query(l, &f, NULL, &b, cur, &err), 0);
    int n = 0;
    for (const char *p = b.data; (p = strstr(p, "\"bmc\":\"a:623\"")) != NULL; p++)
        n++;
    assert_int_equal(n, 3); /* ids 6, 8, 10 */
    assert_null(strstr(b.data, "Temperature"));
    /* A follower with a filter that matched nothing still moves on. */
    assert_string_equal(cur, "e10");
    f.instance = NULL;
    f.sensor_type = NULL;
    f.severity = "critical";
    f.start_ms = (1795718470LL + 3) * 1000;
    f.end_ms = (1795718470LL + 8) * 1000;
    bs_buf_reset(&b);
    assert_int_equal(ipmi_eventlog_query(l, &f, NULL, &b, cur, &err), 0);
    n = 0;
    for (const char *p = b.data; (p = strstr(p, "\"severity\":\"critical\"")) != NULL; p++)
        n++;
    assert_int_equal(n, 2); /* i = 5, 8 */
    f.severity = "bad";
    assert_int_equal(ipmi_eventlog_query(l, &f, NULL, &b, cur, &err), BS_EINVAL);
    ipmi_events_filter_default(&f);
    assert_int_equal(ipmi_eventlog_query(l, &f, "x12", &b, cur, &err), BS_EINVAL);
    assert_int_equal(ipmi_eventlog_query(l, &f, "e99", &b, cur, &err), BS_EINVAL);
    bs_buf_fini(&b);
    ipmi_eventlog_close(l);

    /* Retention: everything old goes, the sequence continues. */
    assert_int_equal(ipmi_eventlog_open(&l, path, 1, &err), 0);
    usleep(5000);
    assert_int_equal(ipmi_eventlog_apply_retention(l, &err), 0);
    assert_int_equal(ipmi_eventlog_count(l), 0);
    struct ipmi_event one;
    mk_event(&one, "c:623", 1, 1795718999u, 1, "Temperature", 0);
    assert_int_equal(ipmi_eventlog_append(l, &one, 1, &err), 0);
    assert_int_equal(one.seq, 11);
    ipmi_eventlog_close(l);
    free(path);
    rmrf(d);
    free(d);
}

/* Found by fuzz/fuzz_ipmi_ipmi_log.c (fuzz/corpus/ipmi_log/regress_base_seq_wraps):
 * a header whose base sequence is 2^64 - 1 made the first append take that
 * sequence and next_seq wrap to 0, after which every query failed ("cursor
 * is not from this server"), later events were stored with seq 0 (unindexed)
 * and the next open cut them off. Sequences are now capped at 2^63 - 1: a
 * header past that is corrupt, a record past it is a corrupt record, and
 * an append past it is BS_ELIMIT with nothing written. */
static void write_log_header(const char *path, uint64_t base)
{
    uint8_t h[16];
    memcpy(h, "BSIPMEV1", 8);
    bs_put_be64(h + 8, base);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, h, sizeof(h)), (ssize_t)sizeof(h));
    close(fd);
}

static void test_log_seq_limit(void **state)
{
    (void)state;
    char *d = make_tmpdir();
    char *path = tmp_path(d, "events.log");
    struct ipmi_eventlog *l;
    struct bs_error err = {0};
    write_log_header(path, UINT64_MAX);
    assert_int_equal(ipmi_eventlog_open(&l, path, 0, &err), BS_ECORRUPT);
    assert_non_null(strstr(err.msg, "events.log"));
    write_log_header(path, (uint64_t)INT64_MAX + 2);
    assert_int_equal(ipmi_eventlog_open(&l, path, 0, &err), BS_ECORRUPT);
    /* The last usable sequence number is taken, the one after is refused. */
    write_log_header(path, (uint64_t)INT64_MAX);
    assert_int_equal(ipmi_eventlog_open(&l, path, 0, &err), 0);
    struct ipmi_event evs[2];
    mk_event(&evs[0], "b:623", 1, 1795718470u, 1, "Temperature", 2);
    mk_event(&evs[1], "b:623", 2, 1795718471u, 1, "Temperature", 2);
    assert_int_equal(ipmi_eventlog_append(l, &evs[0], 1, &err), 0);
    assert_true(evs[0].seq == (uint64_t)INT64_MAX);
    assert_int_equal(ipmi_eventlog_append(l, &evs[1], 1, &err), BS_ELIMIT);
    assert_true(evs[1].seq == 0);
    ipmi_eventlog_close(l);
    assert_int_equal(ipmi_eventlog_open(&l, path, 0, &err), 0);
    assert_int_equal(ipmi_eventlog_count(l), 1);
    struct ipmi_events_filter f;
    ipmi_events_filter_default(&f);
    struct bs_buf b;
    bs_buf_init(&b, 0);
    char cur[IPMI_EVENTS_CURSOR_MAX];
    assert_int_equal(ipmi_eventlog_query(l, &f, "", &b, cur, &err), 0);
    assert_string_equal(cur, "e9223372036854775807");
    assert_non_null(strstr(b.data, "\"seq\":\"9223372036854775807\""));
    bs_buf_fini(&b);
    ipmi_eventlog_close(l);
    /* A well-framed record with a sequence past the cap is corrupt. */
    uint8_t rec[8192];
    struct ipmi_event back;
    evs[0].seq = (uint64_t)INT64_MAX + 1;
    size_t n = ipmi_event_encode(&evs[0], rec, sizeof(rec));
    assert_true(n > 8);
    assert_int_equal(ipmi_event_decode(rec, n, &back), -1);
    free(path);
    rmrf(d);
    free(d);
}

static void test_cursor_file(void **state)
{
    (void)state;
    char *d = make_tmpdir();
    char *path = tmp_path(d, "b_623.cursor");
    struct ipmi_cursor c, r;
    struct bs_error err = {0};
    assert_int_equal(ipmi_cursor_load(path, &c, &err), 0); /* missing: empty */
    assert_false(c.valid);
    struct ipmi_event ev;
    for (int i = 0; i < 5; i++) {
        mk_event(&ev, "b:623", (uint16_t)(i + 1), 1795718470u + i, 8, "Power Supply",
                 (uint8_t)(i % 2 ? 2 : 1));
        ev.seq = (uint64_t)i + 100;
        ipmi_cursor_count(&c, &ev);
    }
    assert_int_equal(c.ncounters, 2);
    assert_int_equal(ipmi_cursor_save(path, "b:623", &c, &err), 0);
    assert_int_equal(ipmi_cursor_load(path, &r, &err), 0);
    assert_int_equal(memcmp(&c, &r, sizeof(c)), 0);
    assert_true(r.valid);
    assert_int_equal(r.record_id, 5);
    assert_int_equal(r.last_seq, 104);
    assert_int_equal(r.counters[0].count + r.counters[1].count, 5);
    assert_string_equal(r.counters[0].sensor_type, "Power Supply");
    /* One changed digit: detected. */
    FILE *f = fopen(path, "r+");
    char text[2048];
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    text[n] = '\0';
    char *p = strstr(text, "record_id 5");
    assert_non_null(p);
    p[10] = '6';
    rewind(f);
    fwrite(text, 1, n, f);
    fclose(f);
    assert_int_equal(ipmi_cursor_load(path, &r, &err), BS_ECORRUPT);
    assert_false(r.valid);
    assert_non_null(strstr(err.msg, "b_623.cursor"));
    free(path);
    rmrf(d);
    free(d);
}

/* Found by fuzz/fuzz_ipmi_ipmi_cursor.c (fuzz/corpus/ipmi_cursor/regress_line_after_crc):
 * the loader took the first "crc32c " line as the checksum and still parsed
 * the lines after it, unchecked; a counter named "crc32c ..." there loaded
 * fine but the file ipmi_cursor_save wrote from it did not. The checksum
 * line must now be the last line. */
static void test_cursor_file_after_crc(void **state)
{
    (void)state;
    char *d = make_tmpdir();
    char *path = tmp_path(d, "b_623.cursor");
    struct ipmi_cursor c, r;
    struct bs_error err = {0};
    memset(&c, 0, sizeof(c));
    struct ipmi_event ev;
    mk_event(&ev, "b:623", 5, 1795718470u, 8, "Power Supply", 2);
    ev.seq = 100;
    ipmi_cursor_count(&c, &ev);
    assert_int_equal(ipmi_cursor_save(path, "b:623", &c, &err), 0);
    assert_int_equal(ipmi_cursor_load(path, &r, &err), 0);
    static const char *const tails[] = {"count 2 1 crc32c ature\n", "record_id 9\n", "\n",
                                        "crc32c 00000000\n"};
    for (size_t i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
        assert_int_equal(ipmi_cursor_save(path, "b:623", &c, &err), 0);
        FILE *f = fopen(path, "a");
        assert_non_null(f);
        fputs(tails[i], f);
        fclose(f);
        assert_int_equal(ipmi_cursor_load(path, &r, &err), BS_ECORRUPT);
        assert_false(r.valid);
    }
    /* Without the final newline the file is still whole. */
    assert_int_equal(ipmi_cursor_save(path, "b:623", &c, &err), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(truncate(path, st.st_size - 1), 0);
    assert_int_equal(ipmi_cursor_load(path, &r, &err), 0);
    assert_int_equal(memcmp(&c, &r, sizeof(c)), 0);
    free(path);
    rmrf(d);
    free(d);
}

static void test_error_messages(void **state)
{
    (void)state;
    char m[512];
    ipmi_error_message(IPMI_ERR_PASSWORD_INVALID, "bmc1", "root", IPMI_CFG_PRIV_USER,
                       IPMI_CFG_DRIVER_LAN_2_0, 1000, NULL, m, sizeof(m));
    assert_string_equal(m, "BMC bmc1: password invalid for user root");
    ipmi_error_message(IPMI_ERR_USERNAME_INVALID, "bmc1", "x", IPMI_CFG_PRIV_USER,
                       IPMI_CFG_DRIVER_LAN_2_0, 1000, NULL, m, sizeof(m));
    assert_string_equal(m, "BMC bmc1: unknown user x");
    ipmi_error_message(IPMI_ERR_PRIVILEGE_LEVEL_CANNOT_BE_OBTAINED, "bmc1", "mon",
                       IPMI_CFG_PRIV_ADMIN, IPMI_CFG_DRIVER_LAN, 1000, NULL, m, sizeof(m));
    assert_string_equal(m, "BMC bmc1 refused privilege ADMINISTRATOR for user mon: requested "
                           "privilege level exceeds limit; set privilege: user");
    ipmi_error_message(IPMI_ERR_PRIVILEGE_LEVEL_CANNOT_BE_OBTAINED, "bmc1", "mon",
                       IPMI_CFG_PRIV_USER, IPMI_CFG_DRIVER_LAN_2_0, 1000, NULL, m, sizeof(m));
    assert_non_null(strstr(m, "opensesspriv"));
    ipmi_error_message(IPMI_ERR_CONNECTION_TIMEOUT, "bmc1:700", "mon", IPMI_CFG_PRIV_USER,
                       IPMI_CFG_DRIVER_LAN_2_0, 2500, NULL, m, sizeof(m));
    assert_non_null(strstr(m, "BMC bmc1:700: no answer within 2500 ms"));
    ipmi_error_message(IPMI_ERR_SYSTEM_ERROR, "bmc1", "mon", IPMI_CFG_PRIV_USER,
                       IPMI_CFG_DRIVER_LAN_2_0, 2500, "Network is unreachable", m, sizeof(m));
    assert_string_equal(m, "BMC bmc1 unreachable: Network is unreachable");
    unsigned bit;
    struct bs_error err = {0};
    assert_int_equal(
        ipmi_workaround_flag_parse(IPMI_CFG_DRIVER_LAN_2_0, "opensesspriv", &bit, &err), 0);
    assert_int_equal(bit, IPMI_WORKAROUND_FLAGS_OUTOFBAND_2_0_OPEN_SESSION_PRIVILEGE);
    assert_int_equal(ipmi_workaround_flag_parse(IPMI_CFG_DRIVER_LAN, "opensesspriv", &bit, &err),
                     BS_EINVAL);
    assert_non_null(strstr(err.msg, "known: authcap, idzero"));
    enum ipmi_cfg_privilege p;
    assert_int_equal(ipmi_privilege_parse("Administrator", &p), 0);
    assert_int_equal(p, IPMI_CFG_PRIV_ADMIN);
    enum ipmi_cfg_driver dr;
    assert_int_equal(ipmi_driver_parse("lanplus", &dr), 0);
    assert_int_equal(dr, IPMI_CFG_DRIVER_LAN_2_0);
    assert_int_equal(ipmi_driver_parse("kcs", &dr), BS_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codec),
        cmocka_unit_test(test_log_replay_torn_and_corrupt),
        cmocka_unit_test(test_log_dedupe_query_cursor),
        cmocka_unit_test(test_log_seq_limit),
        cmocka_unit_test(test_cursor_file),
        cmocka_unit_test(test_cursor_file_after_crc),
        cmocka_unit_test(test_error_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
