/* SPDX-License-Identifier: Apache-2.0
 *
 * The collector against a fleet of ten simulators (anchors.sh ipmi-fleet,
 * UDP ports 9700, 9702, ...) polled concurrently by a pool of four workers:
 * every BMC is up with its seed SEL stored once; then one simulator is
 * stopped mid-run (by the pid anchors.sh recorded for it) and the next
 * round shows it down with a timeout message while the nine others are
 * polled as fast as before, not held back by the dead one.
 */
#include <math.h>
#include <setjmp.h>
#include <signal.h>
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

#define FLEET 10

static char anchors[512];
static char *dir;
static struct tsdb *db;

static int run(const char *cmd)
{
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static int setup(void **state)
{
    (void)state;
    const char *a = getenv("BONGSU_ANCHORS");
    snprintf(anchors, sizeof(anchors), "%s",
             a ? a
               : (access("../shared/tools/anchors.sh", X_OK) == 0
                      ? "../shared/tools/anchors.sh"
                      : "/work/shared/tools/anchors.sh"));
    char cmd[1200];
    snprintf(cmd, sizeof(cmd),
             "%s ipmi-fleet stop >/dev/null 2>&1; %s ipmi-fleet start %d >/dev/null", anchors,
             anchors, FLEET);
    if (run(cmd) != 0) {
        fprintf(stderr,
                "test_ipmi_fleet: `%s ipmi-fleet start %d` failed; the simulator fleet is "
                "required\n",
                anchors, FLEET);
        return -1;
    }
    dir = strdup("/tmp/bongsu-ipmi-fleet-XXXXXX");
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
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "%s ipmi-fleet stop >/dev/null 2>&1", anchors);
    run(cmd);
    tsdb_close(db);
    rmrf(dir);
    free(dir);
    return 0;
}

static double duration_of(const char *json, const char *hostport)
{
    char key[400];
    snprintf(key, sizeof(key), "\"scrapeUrl\":\"ipmi://%s\"", hostport);
    const char *p = strstr(json, key);
    assert_non_null(p);
    const char *d = strstr(p, "\"lastScrapeDuration\":");
    assert_non_null(d);
    return strtod(d + 21, NULL);
}

static void test_fleet(void **state)
{
    (void)state;
    struct ipmi_collector *c;
    struct ipmi_collector_options o = {.data_dir = dir, .db = db, .workers = 4};
    struct bs_error err = {0};
    assert_int_equal(ipmi_collector_new(&c, &o, &err), 0);
    static const char *flags[] = {"opensesspriv"};
    struct ipmi_target_config t[FLEET];
    char hp[FLEET][32];
    for (int i = 0; i < FLEET; i++) {
        ipmi_target_config_default(&t[i]);
        t[i].host = "127.0.0.1";
        t[i].port = (uint16_t)(9700 + 2 * i);
        t[i].username = "monitor";
        t[i].password = "monitorpass";
        t[i].workaround_flags = flags;
        t[i].nworkaround_flags = 1;
        t[i].interval_ms = 3600 * 1000;
        t[i].timeout_ms = 3000;
        snprintf(hp[i], sizeof(hp[i]), "127.0.0.1:%d", 9700 + 2 * i);
    }
    assert_int_equal(ipmi_collector_set_targets(c, t, FLEET, &err), 0);
    assert_int_equal(ipmi_collector_poll_now(c, 60000), 0);
    char e[512];
    for (int i = 0; i < FLEET; i++)
        if (ipmi_collector_target_health(c, hp[i], e, sizeof(e)) != 1)
            fail_msg("%s not up: %s", hp[i], e);
    struct ipmi_events_filter f;
    ipmi_events_filter_default(&f);
    struct bs_buf b;
    bs_buf_init(&b, 0);
    char cur[IPMI_EVENTS_CURSOR_MAX];
    assert_int_equal(ipmi_events_query(c, &f, NULL, &b, cur, &err), 0);
    int n = 0;
    for (const char *p = b.data; (p = strstr(p, "\"seq\":")) != NULL; p++)
        n++;
    assert_int_equal(n, FLEET * 5);

    /* Stop instance 3 mid-run. */
    char pidpath[256];
    snprintf(pidpath, sizeof(pidpath), "/tmp/anchors/ipmi_fleet/3.pid");
    FILE *pf = fopen(pidpath, "r");
    assert_non_null(pf);
    int pid = 0;
    assert_int_equal(fscanf(pf, "%d", &pid), 1);
    fclose(pf);
    assert_true(pid > 1);
    assert_int_equal(kill(pid, SIGTERM), 0);
    usleep(300 * 1000);
    int64_t t0 = bs_monotonic_ns();
    assert_int_equal(ipmi_collector_poll_now(c, 60000), 0);
    double round_s = (double)(bs_monotonic_ns() - t0) / 1e9;
    assert_int_equal(ipmi_collector_target_health(c, hp[3], e, sizeof(e)), 0);
    assert_non_null(strstr(e, "BMC 127.0.0.1:9706: no answer within 3000 ms"));
    bs_buf_reset(&b);
    assert_int_equal(ipmi_collector_targets_json(c, false, &b, NULL), 0);
    for (int i = 0; i < FLEET; i++) {
        if (i == 3)
            continue;
        assert_int_equal(ipmi_collector_target_health(c, hp[i], e, sizeof(e)), 1);
        double d = duration_of(b.data, hp[i]);
        if (d > 1.0)
            fail_msg("%s took %.3f s while another BMC was down", hp[i], d);
    }
    /* The round lasts about one timeout (the dead BMC), not nine. */
    if (round_s > 3.0 * 2)
        fail_msg("a round with one dead BMC took %.2f s", round_s);
    printf("fleet: round with one dead BMC of %d took %.2f s\n", FLEET, round_s);
    bs_buf_fini(&b);
    ipmi_collector_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fleet),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
