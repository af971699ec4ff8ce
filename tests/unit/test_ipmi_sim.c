/* SPDX-License-Identifier: Apache-2.0
 *
 * Black-box tests of the IPMI collector against the real OpenIPMI simulator
 * (ipmi_sim, started fresh through ../shared/tools/anchors.sh so the SEL
 * holds exactly its five seed entries), with ipmitool as the oracle:
 * sensor values and states equal `ipmitool sensor`, stored events equal
 * `ipmitool sel elist` (and the event data bytes of `sel list -v`), new
 * SEL entries and threshold crossings appear exactly once, a restarted
 * collector repeats nothing, a cleared SEL yields only the new entries, and
 * the wrong-password, unknown-user, privilege-refused and unreachable
 * cases give their messages. The tests run in order on one collector and
 * one tsdb in a temporary directory. When the simulator cannot be started
 * the tests fail with a message saying so.
 */
#include <ctype.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "ipmi/ipmi.h"
#include "test_tsdb_util.h"

#define SIM_PORT 9623
#define IPMITOOL_USER                                                                              \
    "ipmitool -I lanplus -H 127.0.0.1 -p 9623 -U monitor -P monitorpass -L USER -C 3 "
#define IPMITOOL_ADMIN                                                                             \
    "ipmitool -I lanplus -H 127.0.0.1 -p 9623 -U admin -P adminpass -L ADMINISTRATOR -C 3 "

static char anchors[512];
static char *dir;
static struct tsdb *db;
static struct ipmi_collector *col;
static const char *opensess[] = {"opensesspriv"};

/* ------------------------------------------------------------------ helpers */

static char *run(const char *fmt, ...)
{
    char cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    struct bs_buf b;
    bs_buf_init(&b, 0);
    char line[1024];
    while (fgets(line, sizeof(line), p))
        bs_buf_puts(&b, line);
    pclose(p);
    if (!b.data)
        bs_buf_puts(&b, "");
    return bs_buf_steal(&b, NULL);
}

static void sim_cmd(const char *line)
{
    free(run("%s ipmi-cmd '%s' 2>&1", anchors, line));
}

static void sel_add(const char *args)
{
    char *out = run("%s ipmi-sel-add %s 2>&1", anchors, args);
    if (!strstr(out, "Added record"))
        fail_msg("ipmi-sel-add %s: %s", args, out);
    free(out);
}

static void target_default(struct ipmi_target_config *t, uint16_t port)
{
    ipmi_target_config_default(t);
    t->host = "127.0.0.1";
    t->port = port;
    t->username = "monitor";
    t->password = "monitorpass";
    t->workaround_flags = opensess;
    t->nworkaround_flags = 1;
    t->interval_ms = 3600 * 1000; /* polls come from ipmi_collector_poll_now */
    t->timeout_ms = 5000;
}

static void new_collector(void)
{
    struct ipmi_collector_options o = {.data_dir = dir, .db = db, .workers = 2};
    struct bs_error err = {0};
    if (ipmi_collector_new(&col, &o, &err) != 0)
        fail_msg("ipmi_collector_new: %s", err.msg);
    struct ipmi_target_config t;
    target_default(&t, SIM_PORT);
    if (ipmi_collector_set_targets(col, &t, 1, &err) != 0)
        fail_msg("set_targets: %s", err.msg);
}

static void poll(void)
{
    assert_int_equal(ipmi_collector_poll_now(col, 30000), 0);
    char e[512];
    int h = ipmi_collector_target_health(col, "127.0.0.1:9623", e, sizeof(e));
    if (h != 1)
        fail_msg("simulator poll not up (%d): %s", h, e);
}

/* Newest sample of the one series matching name and the given label pairs
 * (NULL-terminated k, v list); fails unless exactly one series matches. */
static double latest(const char *name, ...)
{
    struct labels_matcher *ms[8];
    size_t n = 0;
    struct bs_error err = {0};
    assert_int_equal(labels_matcher_new(&ms[n++], LABELS_MATCH_EQ, "__name__", name, &err), 0);
    va_list ap;
    va_start(ap, name);
    const char *k;
    while ((k = va_arg(ap, const char *)) != NULL) {
        const char *v = va_arg(ap, const char *);
        assert_int_equal(labels_matcher_new(&ms[n++], LABELS_MATCH_EQ, k, v, &err), 0);
    }
    va_end(ap);
    struct tsdb_querier *q = tsdb_querier_new(db, 0, INT64_MAX);
    struct tsdb_series_set *ss;
    assert_int_equal(tsdb_querier_select(q, ms, n, &ss, &err), 0);
    double val = NAN;
    int nseries = 0;
    while (tsdb_series_set_next(ss)) {
        nseries++;
        struct tsdb_iterator *it = tsdb_series_set_iterator(ss);
        int64_t t;
        while (tsdb_iterator_next(it))
            tsdb_iterator_at(it, &t, &val);
        tsdb_iterator_free(it);
    }
    tsdb_series_set_free(ss);
    tsdb_querier_free(q);
    for (size_t i = 0; i < n; i++)
        labels_matcher_free(ms[i]);
    if (nseries != 1)
        fail_msg("%s: %d series match, want 1", name, nseries);
    return val;
}

/* Events as JSON objects, split; returns count. */
static size_t query_events(const char *cursor_in, char *cursor_out, char ***objs)
{
    struct ipmi_events_filter f;
    ipmi_events_filter_default(&f);
    f.instance = "127.0.0.1:9623";
    struct bs_buf b;
    bs_buf_init(&b, 0);
    struct bs_error err = {0};
    char cur[IPMI_EVENTS_CURSOR_MAX];
    if (ipmi_events_query(col, &f, cursor_in, &b, cur, &err) != 0)
        fail_msg("ipmi_events_query: %s", err.msg);
    if (cursor_out)
        snprintf(cursor_out, IPMI_EVENTS_CURSOR_MAX, "%s", cur);
    size_t n = 0;
    char **v = NULL;
    assert_true(b.len >= 2 && b.data[0] == '[' && b.data[b.len - 1] == ']');
    char *p = b.data + 1;
    while (*p == '{') {
        char *end = strstr(p, "},{");
        if (!end)
            end = strstr(p, "}]");
        assert_non_null(end);
        v = realloc(v, (n + 1) * sizeof(*v));
        v[n++] = strndup(p, (size_t)(end - p + 1));
        p = end + 2;
    }
    bs_buf_fini(&b);
    if (objs)
        *objs = v;
    else {
        for (size_t i = 0; i < n; i++)
            free(v[i]);
        free(v);
    }
    return n;
}

static void free_objs(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void trim(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    size_t i = 0;
    while (isspace((unsigned char)s[i]))
        i++;
    memmove(s, s + i, n - i + 1);
}

/* Split a "a | b | c" line into at most max trimmed fields. */
static size_t fields(char *line, char **f, size_t max)
{
    size_t n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(line, "|", &save); tok && n < max; tok = strtok_r(NULL, "|", &save)) {
        trim(tok);
        f[n++] = tok;
    }
    return n;
}

/* ------------------------------------------------------------------- setup */

static int setup(void **state)
{
    (void)state;
    const char *a = getenv("BONGSU_ANCHORS");
    snprintf(anchors, sizeof(anchors), "%s",
             a ? a
               : (access("../shared/tools/anchors.sh", X_OK) == 0
                      ? "../shared/tools/anchors.sh"
                      : "/work/shared/tools/anchors.sh"));
    /* A fresh simulator: the SEL holds exactly the five seed entries. */
    char *out = run("%s restart ipmi_sim 2>&1", anchors);
    char *check = run(IPMITOOL_USER "mc info 2>&1");
    if (!strstr(check, "Device ID")) {
        fprintf(stderr,
                "test_ipmi_sim: the IPMI simulator is required and could not be started with "
                "`%s start ipmi_sim`:\n%s\n%s\n",
                anchors, out, check);
        free(out);
        free(check);
        return -1;
    }
    free(out);
    free(check);
    dir = strdup("/tmp/bongsu-ipmi-test-XXXXXX");
    assert_non_null(mkdtemp(dir));
    struct tsdb_options o;
    tsdb_options_default(&o);
    char tdir[512];
    snprintf(tdir, sizeof(tdir), "%s/tsdb", dir);
    o.dir = tdir;
    o.compaction_interval_ms = -1;
    struct bs_error err = {0};
    if (tsdb_open(&db, &o, &err) != 0) {
        fprintf(stderr, "tsdb_open: %s\n", err.msg);
        return -1;
    }
    new_collector();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    ipmi_collector_free(col);
    tsdb_close(db);
    rmrf(dir);
    free(dir);
    return 0;
}

/* ------------------------------------------------------------------- tests */

static int ipmitool_state(const char *st)
{
    if (strcmp(st, "ok") == 0)
        return 0;
    if (strcmp(st, "nc") == 0)
        return 1;
    if (strcmp(st, "cr") == 0 || strcmp(st, "nr") == 0)
        return 2;
    return -1;
}

static const char *value_metric(const char *unit, const char **state_metric)
{
    if (strcmp(unit, "degrees C") == 0) {
        *state_metric = "ipmi_temperature_state";
        return "ipmi_temperature_celsius";
    }
    if (strcmp(unit, "RPM") == 0) {
        *state_metric = "ipmi_fan_speed_state";
        return "ipmi_fan_speed_rpm";
    }
    if (strcmp(unit, "Volts") == 0) {
        *state_metric = "ipmi_voltage_state";
        return "ipmi_voltage_volts";
    }
    if (strcmp(unit, "Amps") == 0) {
        *state_metric = "ipmi_current_state";
        return "ipmi_current_amperes";
    }
    if (strcmp(unit, "Watts") == 0) {
        *state_metric = "ipmi_power_state";
        return "ipmi_power_watts";
    }
    *state_metric = "ipmi_sensor_state";
    return "ipmi_sensor_value";
}

/* Every sensor ipmitool lists: same value, same state. Returns how many
 * analog sensors were compared. */
static int compare_sensors(void)
{
    char *out = run(IPMITOOL_USER "sensor 2>/dev/null");
    int analog = 0, total = 0;
    for (char *save = NULL, *line = strtok_r(out, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        char *f[10];
        if (fields(line, f, 10) < 4)
            continue;
        total++;
        const char *sm, *vm = value_metric(f[2], &sm);
        if (strcmp(f[2], "discrete") == 0) {
            double v = latest("ipmi_sensor_value", "name", f[0], "instance", "127.0.0.1:9623",
                              (char *)NULL);
            assert_true(isnan(v));
            double st = latest("ipmi_sensor_state", "name", f[0], (char *)NULL);
            assert_true(st == 0 || st == 1 || st == 2);
            continue;
        }
        double want = strtod(f[1], NULL);
        double got = latest(vm, "name", f[0], (char *)NULL);
        if (fabs(got - want) > 1e-6)
            fail_msg("sensor %s: %s = %g, ipmitool says %g", f[0], vm, got, want);
        int wst = ipmitool_state(f[3]);
        double gst = latest(sm, "name", f[0], (char *)NULL);
        if (wst < 0 || gst != wst)
            fail_msg("sensor %s: %s = %g, ipmitool status \"%s\"", f[0], sm, gst, f[3]);
        analog++;
    }
    free(out);
    assert_int_equal(total, 5);
    return analog;
}

static void test_sensors_match_ipmitool(void **state)
{
    (void)state;
    poll();
    assert_int_equal(compare_sensors(), 3);
    assert_true(latest("up", "job", "ipmi", "instance", "127.0.0.1:9623", (char *)NULL) == 1);
    assert_true(latest("ipmi_up", "collector", "ipmi", (char *)NULL) == 1);
    assert_true(latest("ipmi_up", "collector", "sel", (char *)NULL) == 1);
    assert_true(latest("ipmi_chassis_power_state", (char *)NULL) == 0);
    assert_true(latest("ipmi_sel_logs_count", (char *)NULL) == 5);
    assert_true(latest("ipmi_sel_free_space_bytes", (char *)NULL) == 15920);
    assert_true(latest("ipmi_scrape_duration_seconds", (char *)NULL) > 0);
    /* Ids are SDR record ids, as prometheus-ipmi-exporter labels them. */
    assert_true(latest("ipmi_temperature_celsius", "id", "3", "name", "CPU Temp", (char *)NULL) ==
                45);
    assert_true(isnan(latest("ipmi_sensor_value", "id", "6", "name", "PSU1 Status", "type",
                             "Power Supply", (char *)NULL)));

    /* A threshold crossing: CPU Temp 90 (> UC 85) is critical for both. */
    sim_cmd("sensor_set_value 0x20 0 1 90 0");
    poll();
    assert_true(latest("ipmi_temperature_state", "name", "CPU Temp", (char *)NULL) == 2);
    assert_int_equal(compare_sensors(), 3);
    sim_cmd("sensor_set_value 0x20 0 1 82 0"); /* > UNC 80: warning */
    poll();
    assert_true(latest("ipmi_temperature_state", "name", "CPU Temp", (char *)NULL) == 1);
    assert_int_equal(compare_sensors(), 3);
    sim_cmd("sensor_set_value 0x20 0 1 45 0");
    poll();
    assert_true(latest("ipmi_temperature_state", "name", "CPU Temp", (char *)NULL) == 0);
    assert_int_equal(compare_sensors(), 3);
}

/* Stored events equal `ipmitool sel elist`, entry for entry. */
static void test_sel_matches_elist(void **state)
{
    (void)state;
    poll();
    char **objs;
    size_t n = query_events(NULL, NULL, &objs);
    char *out = run(IPMITOOL_USER "sel elist 2>/dev/null");
    char *verbose = run(IPMITOOL_USER "sel list -v 2>/dev/null");
    size_t k = 0;
    for (char *save = NULL, *line = strtok_r(out, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        char *f[8];
        size_t nf = fields(line, f, 8);
        if (nf < 5)
            continue;
        if (k >= n)
            fail_msg("ipmitool lists more entries than stored (%zu): %s", n, f[0]);
        const char *o = objs[k++];
        char want[256];
        unsigned id = (unsigned)strtoul(f[0], NULL, 16);
        snprintf(want, sizeof(want), "\"record_id\":%u,", id);
        if (!strstr(o, want))
            fail_msg("entry %zu: want %s in %s", k, want, o);
        /* "11/26/26" "18:41:10 UTC" -> 2026-11-26T18:41:10 */
        unsigned mo, d, y;
        char hms[16];
        assert_int_equal(sscanf(f[1], "%u/%u/%u", &mo, &d, &y), 3);
        assert_int_equal(sscanf(f[2], "%15s", hms), 1);
        snprintf(want, sizeof(want), "\"time\":\"20%02u-%02u-%02uT%s.000Z\"", y, mo, d, hms);
        if (!strstr(o, want))
            fail_msg("entry %u: want %s in %s", id, want, o);
        /* "Temperature CPU Temp" is sensor type, space, sensor name. */
        const char *st = strstr(o, "\"sensor_type\":\"");
        const char *sn = strstr(o, "\"sensor_name\":\"");
        assert_non_null(st);
        assert_non_null(sn);
        char tn[160];
        snprintf(tn, sizeof(tn), "%.*s %.*s", (int)strcspn(st + 15, "\""), st + 15,
                 (int)strcspn(sn + 15, "\""), sn + 15);
        if (strcmp(tn, f[3]) != 0)
            fail_msg("entry %u: sensor \"%s\", ipmitool \"%s\"", id, tn, f[3]);
        snprintf(want, sizeof(want), "\"direction\":\"%s\"", f[5]);
        if (!strstr(o, want))
            fail_msg("entry %u: want %s in %s", id, want, o);
        /* Event data 1..3 are bytes 13..15 of the raw record. */
        char rid[32];
        snprintf(rid, sizeof(rid), "SEL Record ID          : %04x", id);
        const char *blk = strstr(verbose, rid);
        assert_non_null(blk);
        static const char edk[] = "Event Data            : ";
        const char *ed = strstr(blk, edk);
        assert_non_null(ed);
        ed += strlen(edk);
        const char *raw = strstr(o, "\"raw\":\"");
        assert_non_null(raw);
        if (strncmp(raw + 7 + 26, ed, 6) != 0)
            fail_msg("entry %u: event data %.6s, ipmitool %.6s", id, raw + 7 + 26, ed);
    }
    if (k != n)
        fail_msg("stored %zu events, ipmitool lists %zu", n, k);
    assert_true(n >= 5); /* the seed, plus what the threshold crossings above logged */
    free(out);
    free(verbose);
    free_objs(objs, n);
    /* Severities from libfreeipmi's interpretation of the seed. */
    assert_true(latest("ipmi_sel_events_total", "sensor_type", "Power Supply", "severity",
                       "critical", (char *)NULL) == 1);
    assert_true(latest("ipmi_sel_events_total", "sensor_type", "Memory", "severity", "warning",
                       (char *)NULL) == 1);
    assert_true(latest("ipmi_sel_last_event_timestamp_seconds", (char *)NULL) > 1.7e9);
}

static void test_sel_incremental(void **state)
{
    (void)state;
    char cur[IPMI_EVENTS_CURSOR_MAX];
    size_t before = query_events(NULL, cur, NULL);
    double total_before = latest("ipmi_sel_events_total", "sensor_type", "Temperature", "severity",
                                 "critical", (char *)NULL);
    sel_add("0x01 0x01 0x01 0x59 91 85");
    sel_add("0x01 0x01 0x01 0x59 91 85"); /* identical data: still a new entry */
    sel_add("0x0c 0x05 0x6f 0x00 0xff 0xff");
    poll();
    char **objs;
    char cur2[IPMI_EVENTS_CURSOR_MAX];
    size_t n = query_events(cur, cur2, &objs);
    assert_int_equal(n, 3);
    assert_non_null(strstr(objs[0], "\"sensor_name\":\"CPU Temp\""));
    assert_non_null(strstr(objs[1], "\"sensor_name\":\"CPU Temp\""));
    assert_non_null(strstr(objs[2], "\"sensor_name\":\"Memory ECC\""));
    free_objs(objs, n);
    assert_true(latest("ipmi_sel_events_total", "sensor_type", "Temperature", "severity",
                       "critical", (char *)NULL) == total_before + 2);
    /* Nothing new: nothing stored, the cursor stays. */
    poll();
    char cur3[IPMI_EVENTS_CURSOR_MAX];
    assert_int_equal(query_events(cur2, cur3, NULL), 0);
    assert_string_equal(cur2, cur3);
    assert_int_equal(query_events(NULL, NULL, NULL), before + 3);
}

static void test_restart_no_repeats(void **state)
{
    (void)state;
    size_t before = query_events(NULL, NULL, NULL);
    double total = latest("ipmi_sel_events_total", "sensor_type", "Temperature", "severity",
                          "critical", (char *)NULL);
    ipmi_collector_free(col);
    new_collector();
    poll();
    assert_int_equal(query_events(NULL, NULL, NULL), before);
    assert_true(latest("ipmi_sel_events_total", "sensor_type", "Temperature", "severity",
                       "critical", (char *)NULL) == total);
    sel_add("0x04 0x02 0x01 0x52 17 20");
    ipmi_collector_free(col);
    new_collector();
    poll();
    assert_int_equal(query_events(NULL, NULL, NULL), before + 1);
}

static void test_sel_clear(void **state)
{
    (void)state;
    char cur[IPMI_EVENTS_CURSOR_MAX];
    size_t before = query_events(NULL, cur, NULL);
    char *out = run(IPMITOOL_ADMIN "sel clear 2>&1");
    free(out);
    sleep(1); /* new entries get a later timestamp than the old ones */
    sel_add("0x08 0x04 0x6f 0x01 0xff 0xff");
    sel_add("0x01 0x01 0x01 0x59 92 85");
    poll();
    char **objs;
    size_t n = query_events(cur, NULL, &objs);
    assert_int_equal(n, 2);
    assert_non_null(strstr(objs[0], "\"sensor_name\":\"PSU1 Status\""));
    /* The record ids are the ones ipmitool lists now. */
    char *el = run(IPMITOOL_USER "sel elist 2>/dev/null");
    unsigned id0 = 0, id1 = 0;
    assert_int_equal(sscanf(el, " %x |", &id0), 1);
    const char *nl = strchr(el, '\n');
    assert_non_null(nl);
    assert_int_equal(sscanf(nl + 1, " %x |", &id1), 1);
    free(el);
    char want[64];
    snprintf(want, sizeof(want), "\"record_id\":%u,", id0);
    assert_non_null(strstr(objs[0], want));
    snprintf(want, sizeof(want), "\"record_id\":%u,", id1);
    assert_non_null(strstr(objs[1], want));
    assert_non_null(strstr(objs[1], "\"sensor_name\":\"CPU Temp\""));
    free_objs(objs, n);
    assert_true(latest("ipmi_sel_logs_count", (char *)NULL) == 2);
    poll();
    assert_int_equal(query_events(NULL, NULL, NULL), before + 2);
    /* And after a restart on a cleared SEL, still nothing twice. */
    ipmi_collector_free(col);
    new_collector();
    poll();
    assert_int_equal(query_events(NULL, NULL, NULL), before + 2);
}

static void expect_error(struct ipmi_target_config *t, const char *hostport, const char *want)
{
    struct ipmi_collector *c;
    struct ipmi_collector_options o = {.data_dir = dir, .db = db, .workers = 1};
    struct bs_error err = {0};
    char sub[512];
    snprintf(sub, sizeof(sub), "%s/err", dir);
    o.data_dir = sub;
    assert_int_equal(ipmi_collector_new(&c, &o, &err), 0);
    assert_int_equal(ipmi_collector_set_targets(c, t, 1, &err), 0);
    assert_int_equal(ipmi_collector_poll_now(c, 30000), 0);
    char e[512];
    assert_int_equal(ipmi_collector_target_health(c, hostport, e, sizeof(e)), 0);
    if (!strstr(e, want))
        fail_msg("want \"%s\" in \"%s\"", want, e);
    struct bs_buf b;
    bs_buf_init(&b, 0);
    assert_int_equal(ipmi_collector_targets_json(c, false, &b, NULL), 0);
    assert_non_null(strstr(b.data, "\"health\":\"down\""));
    assert_non_null(strstr(b.data, "\"lastError\":\"BMC "));
    bs_buf_fini(&b);
    ipmi_collector_free(c);
}

static void test_errors(void **state)
{
    (void)state;
    struct ipmi_target_config t;
    target_default(&t, SIM_PORT);
    t.password = "wrongpass";
    expect_error(&t, "127.0.0.1:9623", "BMC 127.0.0.1:9623: password invalid for user monitor");

    target_default(&t, SIM_PORT);
    t.username = "nobody";
    expect_error(&t, "127.0.0.1:9623", "BMC 127.0.0.1:9623: unknown user nobody");

    target_default(&t, SIM_PORT);
    t.driver = IPMI_CFG_DRIVER_LAN;
    t.workaround_flags = NULL;
    t.nworkaround_flags = 0;
    t.privilege = IPMI_CFG_PRIV_ADMIN;
    expect_error(&t, "127.0.0.1:9623",
                 "BMC 127.0.0.1:9623 refused privilege ADMINISTRATOR for user monitor: requested "
                 "privilege level exceeds limit; set privilege: user");

    target_default(&t, 9699);
    t.timeout_ms = 1000;
    expect_error(&t, "127.0.0.1:9699", "BMC 127.0.0.1:9699: no answer within 1000 ms");

    /* The down poll wrote up 0 into the same tsdb. */
    assert_true(latest("up", "instance", "127.0.0.1:9699", (char *)NULL) == 0);

    /* Bad settings are refused before anything changes. */
    struct bs_error err = {0};
    target_default(&t, SIM_PORT);
    const char *bad[] = {"nosuchflag"};
    t.workaround_flags = bad;
    assert_int_equal(ipmi_collector_set_targets(col, &t, 1, &err), BS_EINVAL);
    assert_non_null(strstr(err.msg, "unknown workaround flag \"nosuchflag\""));
    target_default(&t, SIM_PORT);
    t.timeout_ms = t.interval_ms + 1;
    assert_int_equal(ipmi_collector_set_targets(col, &t, 1, &err), BS_EINVAL);
    assert_non_null(strstr(err.msg, "greater than the interval"));
    poll(); /* the old target is still there and up */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sensors_match_ipmitool),
        cmocka_unit_test(test_sel_matches_elist),
        cmocka_unit_test(test_sel_incremental),
        cmocka_unit_test(test_restart_no_repeats),
        cmocka_unit_test(test_sel_clear),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
