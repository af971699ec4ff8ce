/* SPDX-License-Identifier: Apache-2.0
 *
 * Benchmark: evaluation cost of a 500-rule set (10 groups of 50 rules:
 * 300 recording rules in the node_exporter style, 200 alerting rules with
 * label and annotation templates) over 100 simulated node_exporter hosts
 * (about 8,000 series), a figure, never pass/fail. Prints the time per full
 * iteration of all groups, per rule, and the samples written.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rules/rules_int.h"

#define HOSTS 100
#define GROUPS 10
#define PER_GROUP 50

static void add(struct tsdb_appender *a, struct labels_builder *b, const char *name, int host,
                const char *k1, const char *v1, const char *k2, const char *v2, int64_t t, double v)
{
    char inst[32];
    snprintf(inst, sizeof(inst), "h%03d:9100", host);
    labels_builder_reset(b);
    labels_builder_set_str(b, "__name__", name);
    labels_builder_set_str(b, "job", "node");
    labels_builder_set_str(b, "instance", inst);
    if (k1)
        labels_builder_set_str(b, k1, v1);
    if (k2)
        labels_builder_set_str(b, k2, v2);
    struct labels ls;
    labels_builder_labels(b, &ls, NULL);
    tsdb_appender_add(a, 0, &ls, t, v, NULL);
}

static void feed(struct tsdb *db, int64_t t, int step)
{
    static const char *modes[] = {"idle", "user", "system", "iowait", "irq", "softirq", "steal", "nice"};
    struct labels_builder b;
    labels_builder_init(&b);
    struct tsdb_appender *a = tsdb_appender_new(db);
    for (int h = 0; h < HOSTS; h++) {
        add(a, &b, "up", h, NULL, NULL, NULL, NULL, t, h % 17 ? 1 : 0);
        add(a, &b, "node_load1", h, NULL, NULL, NULL, NULL, t, (h % 10) * 0.3);
        add(a, &b, "node_memory_MemAvailable_bytes", h, NULL, NULL, NULL, NULL, t, 4e9 - h * 1e7);
        add(a, &b, "node_memory_MemTotal_bytes", h, NULL, NULL, NULL, NULL, t, 8e9);
        for (int c = 0; c < 8; c++) {
            char cpu[8];
            snprintf(cpu, sizeof(cpu), "%d", c);
            for (int m = 0; m < 8; m++)
                add(a, &b, "node_cpu_seconds_total", h, "cpu", cpu, "mode", modes[m], t,
                    step * (m == 0 ? 10.0 : 0.5 + h * 0.01));
        }
        for (int d = 0; d < 3; d++) {
            char dev[8];
            snprintf(dev, sizeof(dev), "sd%c", 'a' + d);
            add(a, &b, "node_filesystem_avail_bytes", h, "device", dev, "fstype", "ext4", t,
                1e10 - step * 1e6 * (h % 5));
            add(a, &b, "node_filesystem_size_bytes", h, "device", dev, "fstype", "ext4", t, 2e10);
            add(a, &b, "node_network_receive_bytes_total", h, "device", dev, NULL, NULL, t, step * 1e5);
        }
    }
    tsdb_appender_commit(a, NULL);
    labels_builder_fini(&b);
}

int main(void)
{
    char dir[] = "/tmp/bongsu-bench-rules-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    char path[600];
    snprintf(path, sizeof(path), "%s/rules.yml", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "groups:\n");
    int nrec = 0, nalert = 0;
    for (int g = 0; g < GROUPS; g++) {
        fprintf(f, "- name: g%02d\n  interval: 15s\n  rules:\n", g);
        for (int r = 0; r < PER_GROUP; r++) {
            int k = g * PER_GROUP + r;
            switch (r % 5) {
            case 0:
                fprintf(f, "  - record: instance:node_cpu_utilisation:rate5m_%d\n"
                           "    expr: 1 - avg without (cpu, mode) (rate(node_cpu_seconds_total{mode=\"idle\"}[5m]))\n", k);
                nrec++;
                break;
            case 1:
                fprintf(f, "  - record: instance:node_memory_utilisation:ratio_%d\n"
                           "    expr: 1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes\n", k);
                nrec++;
                break;
            case 2:
                fprintf(f, "  - record: instance:node_network_receive_bytes:rate1m_%d\n"
                           "    expr: sum without (device) (rate(node_network_receive_bytes_total[1m]))\n", k);
                nrec++;
                break;
            case 3:
                fprintf(f, "  - alert: NodeHighLoad%d\n    expr: node_load1 > 0.9\n    for: 10m\n"
                           "    labels: {severity: '{{ if gt $value 2.0 }}critical{{ else }}warning{{ end }}'}\n"
                           "    annotations:\n      summary: 'load {{ printf \"%%.2f\" $value }} on {{ $labels.instance }}'\n", k);
                nalert++;
                break;
            default:
                fprintf(f, "  - alert: NodeFilesystemFillingUp%d\n"
                           "    expr: node_filesystem_avail_bytes / node_filesystem_size_bytes * 100 < 60 and predict_linear(node_filesystem_avail_bytes[1h], 86400) < 0\n"
                           "    for: 1h\n    labels: {severity: warning}\n"
                           "    annotations:\n      summary: '{{ $labels.device }} on {{ $labels.instance }} at {{ $value | humanize }}%%'\n", k);
                nalert++;
            }
        }
    }
    fclose(f);
    char dbdir[600];
    snprintf(dbdir, sizeof(dbdir), "%s/data", dir);
    struct tsdb_options o;
    tsdb_options_default(&o);
    o.dir = dbdir;
    o.compaction_interval_ms = -1;
    struct tsdb *db = NULL;
    if (tsdb_open(&db, &o, NULL))
        return 1;
    bs_log_set_level(BS_LOG_ERROR);
    struct promql_engine *e = promql_engine_new(NULL);
    struct rules_manager *m = NULL;
    rules_manager_new(&m, db, e, NULL, NULL);
    const char *g[] = {path};
    struct bs_error err = {0};
    if (rules_manager_load(m, g, 1, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    rules_manager_mark_restored(m);
    int64_t t0 = bs_now_ms() - 3600 * 1000;
    for (int s = 0; s < 240; s++)
        feed(db, t0 + (int64_t)s * 15000, s);
    int64_t t = t0 + 240 * 15000;
    int iters = 5;
    int64_t start = bs_monotonic_ns();
    for (int i = 0; i < iters; i++) {
        feed(db, t + i * 15000 - 1000, 240 + i);
        for (int k = 0; k < GROUPS; k++)
            rules_manager_eval_group_at(m, (size_t)k, t + i * 15000);
    }
    double secs = (double)(bs_monotonic_ns() - start) / 1e9 / iters;
    struct tsdb_stats st;
    tsdb_stats(db, &st);
    printf("rules: %d (%d recording, %d alerting) in %d groups over %d hosts, %llu series in the store\n",
           nrec + nalert, nrec, nalert, GROUPS, HOSTS, (unsigned long long)st.num_series);
    printf("one iteration of all groups: %.1f ms (%.1f us per rule), one core\n", secs * 1e3,
           secs * 1e6 / (nrec + nalert));
    struct bs_buf b;
    bs_buf_init(&b, 0);
    rules_manager_alerts_json(m, &b);
    size_t nalerts = 0;
    for (const char *p = b.data; (p = strstr(p, "\"state\":")); p++)
        nalerts++;
    printf("active alerts: %zu\n", nalerts);
    bs_buf_fini(&b);
    rules_manager_free(m);
    promql_engine_free(e);
    tsdb_close(db);
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        return 1;
    return 0;
}
