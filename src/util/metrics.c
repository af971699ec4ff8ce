/* SPDX-License-Identifier: Apache-2.0
 *
 * Self-metrics: a process-wide registry of bongsu's own counters and gauges
 * and the process_* metrics every Prometheus client exports.
 *
 * Registration appends to a linked list under a mutex; a metric is never
 * removed, so the pointers handed out stay valid for the life of the process.
 * Values are doubles stored as their bit pattern in an _Atomic uint64_t:
 * set is a store, add a compare-exchange loop, get a load — no lock on the
 * hot path. Exposition takes the mutex, sorts by (name, labels) and writes
 * one HELP/TYPE block per name, as text format 0.0.4 requires.
 *
 * Callback metrics (register_func) are evaluated while the registry mutex
 * is held: a callback must not register metrics.
 */
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "util/util.h"

struct bs_metric {
    struct bs_metric *next;
    enum bs_metric_type type;
    char *name;
    char *help;
    char *labels;               /* NULL when the metric has none */
    _Atomic uint64_t bits;      /* value as IEEE-754 bits */
    double (*fn)(void *arg);    /* set for callback metrics */
    void *arg;
    unsigned seq;               /* registration order, for stable sorting */
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct bs_metric *reg_head, **reg_tail = &reg_head;
static unsigned reg_count;
static pthread_once_t process_once = PTHREAD_ONCE_INIT;

static void register_process_metrics(void);

static bool same_labels(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

/* Caller holds reg_mu. */
static struct bs_metric *find_locked(const char *name, const char *labels)
{
    for (struct bs_metric *m = reg_head; m; m = m->next)
        if (strcmp(m->name, name) == 0 && same_labels(m->labels, labels))
            return m;
    return NULL;
}

static struct bs_metric *register_locked(enum bs_metric_type type, const char *name,
                                         const char *help, const char *labels)
{
    struct bs_metric *m = find_locked(name, labels);
    if (m)
        return m;
    m = bs_xcalloc(1, sizeof(*m));
    m->type = type;
    m->name = bs_xstrdup(name);
    m->help = bs_xstrdup(help ? help : "");
    m->labels = labels && labels[0] ? bs_xstrdup(labels) : NULL;
    atomic_init(&m->bits, 0);
    m->seq = reg_count++;
    *reg_tail = m;
    reg_tail = &m->next;
    return m;
}

struct bs_metric *bs_metric_register(enum bs_metric_type type, const char *name, const char *help,
                                     const char *labels)
{
    struct bs_metric *m;
    pthread_once(&process_once, register_process_metrics);
    pthread_mutex_lock(&reg_mu);
    m = register_locked(type, name, help, labels);
    pthread_mutex_unlock(&reg_mu);
    return m;
}

void bs_metric_register_func(enum bs_metric_type type, const char *name, const char *help,
                             const char *labels, double (*fn)(void *arg), void *arg)
{
    struct bs_metric *m;
    pthread_once(&process_once, register_process_metrics);
    pthread_mutex_lock(&reg_mu);
    m = register_locked(type, name, help, labels);
    m->fn = fn;
    m->arg = arg;
    pthread_mutex_unlock(&reg_mu);
}

void bs_metric_add(struct bs_metric *m, double delta)
{
    uint64_t old = atomic_load_explicit(&m->bits, memory_order_relaxed);
    for (;;) {
        double v;
        uint64_t nb;
        memcpy(&v, &old, sizeof(v));
        v += delta;
        memcpy(&nb, &v, sizeof(nb));
        if (atomic_compare_exchange_weak_explicit(&m->bits, &old, nb, memory_order_relaxed,
                                                  memory_order_relaxed))
            return;
    }
}

void bs_metric_set(struct bs_metric *m, double v)
{
    uint64_t b;
    memcpy(&b, &v, sizeof(b));
    atomic_store_explicit(&m->bits, b, memory_order_relaxed);
}

double bs_metric_get(const struct bs_metric *m)
{
    uint64_t b = atomic_load_explicit(&((struct bs_metric *)m)->bits, memory_order_relaxed);
    double v;
    memcpy(&v, &b, sizeof(v));
    return v;
}

/* -------------------------------------------------------- process metrics */

/* Fields of /proc/self/stat after the command name; index 0 is field 3
 * (state). Returns false if the file cannot be read. */
static bool read_proc_stat(unsigned long long *fields, int nfields)
{
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    size_t n;
    char *p;

    if (!f)
        return false;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    p = strrchr(buf, ')');
    if (!p)
        return false;
    p++;
    for (int i = 0; i < nfields; i++) {
        while (*p == ' ')
            p++;
        if (*p == '\0')
            return false;
        if (i == 0) {
            fields[i] = 0;   /* state, a letter */
            p++;
            continue;
        }
        fields[i] = strtoull(p, &p, 10);
    }
    return true;
}

/* Field numbers as in proc(5), minus 3. */
#define STAT_UTIME (14 - 3)
#define STAT_STIME (15 - 3)
#define STAT_STARTTIME (22 - 3)
#define STAT_VSIZE (23 - 3)
#define STAT_RSS (24 - 3)
#define STAT_NFIELDS (STAT_RSS + 1)

static double proc_cpu_seconds(void *arg)
{
    unsigned long long f[STAT_NFIELDS];
    (void)arg;
    if (!read_proc_stat(f, STAT_NFIELDS))
        return 0;
    return (double)(f[STAT_UTIME] + f[STAT_STIME]) / (double)sysconf(_SC_CLK_TCK);
}

static double proc_resident(void *arg)
{
    unsigned long long f[STAT_NFIELDS];
    (void)arg;
    if (!read_proc_stat(f, STAT_NFIELDS))
        return 0;
    return (double)f[STAT_RSS] * (double)sysconf(_SC_PAGESIZE);
}

static double proc_virtual(void *arg)
{
    unsigned long long f[STAT_NFIELDS];
    (void)arg;
    if (!read_proc_stat(f, STAT_NFIELDS))
        return 0;
    return (double)f[STAT_VSIZE];
}

static double proc_start_time(void *arg)
{
    static double cached;   /* written once under reg_mu (callbacks run under it) */
    unsigned long long f[STAT_NFIELDS];
    unsigned long long btime = 0;
    char line[256];
    FILE *fp;

    (void)arg;
    if (cached != 0)
        return cached;
    if (!read_proc_stat(f, STAT_NFIELDS))
        return 0;
    fp = fopen("/proc/stat", "r");
    if (!fp)
        return 0;
    while (fgets(line, sizeof(line), fp))
        if (sscanf(line, "btime %llu", &btime) == 1)
            break;
    fclose(fp);
    if (btime == 0)
        return 0;
    cached = (double)btime + (double)f[STAT_STARTTIME] / (double)sysconf(_SC_CLK_TCK);
    return cached;
}

static double proc_open_fds(void *arg)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    double n = 0;
    (void)arg;
    if (!d)
        return 0;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static double proc_max_fds(void *arg)
{
    struct rlimit rl;
    (void)arg;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    return rl.rlim_cur == RLIM_INFINITY ? (double)UINT64_MAX : (double)rl.rlim_cur;
}

static void register_process_metrics(void)
{
    static const struct {
        enum bs_metric_type type;
        const char *name, *help;
        double (*fn)(void *);
    } pm[] = {
        {BS_METRIC_COUNTER, "process_cpu_seconds_total",
         "Total user and system CPU time spent in seconds.", proc_cpu_seconds},
        {BS_METRIC_GAUGE, "process_max_fds", "Maximum number of open file descriptors.",
         proc_max_fds},
        {BS_METRIC_GAUGE, "process_open_fds", "Number of open file descriptors.", proc_open_fds},
        {BS_METRIC_GAUGE, "process_resident_memory_bytes", "Resident memory size in bytes.",
         proc_resident},
        {BS_METRIC_GAUGE, "process_start_time_seconds",
         "Start time of the process since unix epoch in seconds.", proc_start_time},
        {BS_METRIC_GAUGE, "process_virtual_memory_bytes", "Virtual memory size in bytes.",
         proc_virtual},
    };
    pthread_mutex_lock(&reg_mu);
    for (size_t i = 0; i < sizeof(pm) / sizeof(pm[0]); i++) {
        struct bs_metric *m = register_locked(pm[i].type, pm[i].name, pm[i].help, NULL);
        m->fn = pm[i].fn;
    }
    pthread_mutex_unlock(&reg_mu);
}

/* ------------------------------------------------------------- exposition */

static int cmp_metric(const void *a, const void *b)
{
    const struct bs_metric *x = *(const struct bs_metric *const *)a;
    const struct bs_metric *y = *(const struct bs_metric *const *)b;
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    c = strcmp(x->labels ? x->labels : "", y->labels ? y->labels : "");
    if (c)
        return c;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* HELP text escaping of the text format: \ and newline. */
static int put_help(struct bs_buf *b, const char *s)
{
    int rc = 0;
    for (; *s && rc == 0; s++) {
        if (*s == '\\')
            rc = bs_buf_puts(b, "\\\\");
        else if (*s == '\n')
            rc = bs_buf_puts(b, "\\n");
        else
            rc = bs_buf_putc(b, *s);
    }
    return rc;
}

int bs_metrics_write(struct bs_buf *b)
{
    struct bs_metric **all;
    size_t n = 0;
    int rc = 0;

    pthread_once(&process_once, register_process_metrics);
    pthread_mutex_lock(&reg_mu);
    all = malloc((reg_count ? reg_count : 1) * sizeof(*all));
    if (!all) {
        pthread_mutex_unlock(&reg_mu);
        return BS_ENOMEM;
    }
    for (struct bs_metric *m = reg_head; m; m = m->next)
        all[n++] = m;
    qsort(all, n, sizeof(*all), cmp_metric);
    for (size_t i = 0; i < n && rc == 0; i++) {
        struct bs_metric *m = all[i];
        char num[32];
        double v = m->fn ? m->fn(m->arg) : bs_metric_get(m);

        if (i == 0 || strcmp(all[i - 1]->name, m->name) != 0) {
            rc = bs_buf_printf(b, "# HELP %s ", m->name);
            if (rc == 0)
                rc = put_help(b, m->help);
            if (rc == 0)
                rc = bs_buf_printf(b, "\n# TYPE %s %s\n", m->name,
                                   m->type == BS_METRIC_COUNTER ? "counter" : "gauge");
        }
        bs_float_format_short(v, num);
        if (rc == 0) {
            if (m->labels)
                rc = bs_buf_printf(b, "%s{%s} %s\n", m->name, m->labels, num);
            else
                rc = bs_buf_printf(b, "%s %s\n", m->name, num);
        }
    }
    pthread_mutex_unlock(&reg_mu);
    free(all);
    return rc;
}
