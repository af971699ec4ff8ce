/* SPDX-License-Identifier: Apache-2.0
 *
 * CPU time per BMC poll, and what it means for a fleet. Polls the simulator
 * (127.0.0.1:9623, started with anchors.sh; the benchmark says so and exits
 * 0 when it is not running) through the real collector with one worker, N
 * rounds of ipmi_collector_poll_now(), and reports wall and process CPU
 * time per poll (session set-up with RMCP+ crypto, 5 sensors, chassis, SEL
 * info and an incremental SEL read, samples into a tsdb), then the number
 * of BMCs one core can poll at a 60 s interval: 60 s / CPU per poll.
 * Real BMCs answer slower than the simulator, which costs wall time (more
 * workers) but not CPU. Figures, never pass/fail.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ipmi/ipmi.h"
#include "tsdb/tsdb.h"

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 100;
    char dir[] = "/tmp/bongsu-bench-ipmi-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    char tdir[256];
    snprintf(tdir, sizeof(tdir), "%s/tsdb", dir);
    struct tsdb_options o;
    tsdb_options_default(&o);
    o.dir = tdir;
    o.compaction_interval_ms = -1;
    struct bs_error err = {0};
    struct tsdb *db;
    if (tsdb_open(&db, &o, &err) != 0) {
        fprintf(stderr, "tsdb_open: %s\n", err.msg);
        return 1;
    }
    struct ipmi_collector *c;
    struct ipmi_collector_options co = {.data_dir = dir, .db = db, .workers = 1};
    if (ipmi_collector_new(&c, &co, &err) != 0) {
        fprintf(stderr, "ipmi_collector_new: %s\n", err.msg);
        return 1;
    }
    static const char *flags[] = {"opensesspriv"};
    struct ipmi_target_config t;
    ipmi_target_config_default(&t);
    t.host = "127.0.0.1";
    t.port = 9623;
    t.username = "monitor";
    t.password = "monitorpass";
    t.workaround_flags = flags;
    t.nworkaround_flags = 1;
    t.interval_ms = 3600 * 1000;
    t.timeout_ms = 5000;
    ipmi_collector_set_targets(c, &t, 1, &err);
    /* First poll builds the SDR cache and reads the whole SEL. */
    ipmi_collector_poll_now(c, 30000);
    if (ipmi_collector_target_health(c, "127.0.0.1:9623", err.msg, sizeof(err.msg)) != 1) {
        printf("bench_ipmi_poll: simulator not available (%s); start it with "
               "`../shared/tools/anchors.sh start ipmi_sim`\n",
               err.msg);
        ipmi_collector_free(c);
        tsdb_close(db);
        return 0;
    }
    double c0 = cpu_s();
    int64_t w0 = bs_monotonic_ns();
    for (int i = 0; i < rounds; i++)
        ipmi_collector_poll_now(c, 30000);
    double cpu = (cpu_s() - c0) / rounds;
    double wall = (double)(bs_monotonic_ns() - w0) / 1e9 / rounds;
    printf("ipmi poll (lanplus, cipher 3, 5 sensors, chassis, SEL info + incremental read):\n");
    printf("  %d polls: wall %.2f ms/poll, CPU %.3f ms/poll\n", rounds, wall * 1e3, cpu * 1e3);
    printf("  one core at a 60 s interval: ~%.0f BMCs (CPU bound); one worker: ~%.0f BMCs "
           "(wall bound at simulator latency)\n",
           60.0 / cpu, 60.0 / wall);
    struct bs_buf b;
    bs_buf_init(&b, 0);
    ipmi_collector_targets_json(c, false, &b, NULL);
    const char *d = strstr(b.data, "\"lastScrapeDuration\":");
    printf("  last poll as the target reports it: %.2f ms\n",
           d ? strtod(d + 21, NULL) * 1e3 : -1.0);
    bs_buf_fini(&b);
    ipmi_collector_free(c);
    tsdb_close(db);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        return 1;
    return 0;
}
