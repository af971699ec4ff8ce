/* SPDX-License-Identifier: Apache-2.0
 *
 * targetgen: many simulated node_exporter-like scrape targets served by one
 * process, for the scrape scale benchmark (bench/scrape_scale/run.py).
 *
 * Target i listens on its own loopback address, 127.<A>.<i/250>.<i%250+1>,
 * all on the same port. Linux routes the whole of 127.0.0.0/8 to lo, so no
 * interface setup is needed, and every target gets a distinct `instance`
 * label without relabeling. One thread, one epoll set, non-blocking sockets,
 * HTTP/1.1 keep-alive, identity encoding.
 *
 * Every target exposes the same set of series (node_cpu_seconds_total,
 * node_disk_*, node_network_*, node_filesystem_*, node_memory_*, go_*,
 * process_*, ... padded or cut to --series with node_interrupts_total), in
 * the text format 0.0.4 with HELP and TYPE. The series set is fixed; values
 * depend on (seed, target, series) and the wall time of the request:
 * counters grow at a per-series rate (a share of them never move, as error
 * counters do), gauges step every 15 s around a per-series level, constants
 * stay put. Same seed, same series and same value pattern.
 *
 * A control listener on 127.0.0.1:<ctrl port> answers
 *   GET /stats[?since=<unix ms>]  "now_ms N requests N bytes N accepts N" (totals:
 *                                 scrape requests, body bytes, connections
 *                                 accepted on target ports), then one line
 *                                 per target: "<i> <count> <t1> <t2> ..." with
 *                                 the wall ms of its last requests (up to
 *                                 RING of them) at or after since;
 *   GET /quit                     exit.
 * The process also exits on SIGTERM/SIGINT and when its parent dies.
 *
 * Usage: targetgen --targets N --port P --ctrl-port C [--series S]
 *                  [--seed X] [--net A]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RING 128 /* request times kept per target */

/* ------------------------------------------------------------ utilities */

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("targetgen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static uint64_t mix64(uint64_t z)
{
    z += UINT64_C(0x9e3779b97f4a7c15);
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* Uniform in [0, 1) from the hash of the arguments. */
static double unit(uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t h = mix64(a ^ mix64(b ^ mix64(c)));
    return (double)(h >> 11) / 9007199254740992.0;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct buf {
    char *p;
    size_t len, cap;
};

static void buf_reserve(struct buf *b, size_t extra)
{
    if (b->len + extra <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p)
        die("out of memory");
    b->p = p;
    b->cap = cap;
}

static void buf_add(struct buf *b, const char *s, size_t n)
{
    buf_reserve(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void buf_printf(struct buf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = b->cap - b->len;
        int n = vsnprintf(b->p ? b->p + b->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0)
            die("vsnprintf");
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        buf_reserve(b, (size_t)n + 1);
    }
}

/* ----------------------------------------------------------- the series */

enum kind {
    K_CONST,     /* fixed value: base */
    K_CTR_INT,   /* base + floor(rate * t) */
    K_CTR_FLOAT, /* base + rate * t, 2 decimals */
    K_GAUGE_INT, /* base * (1 + spread * noise), multiple of quantum */
    K_GAUGE_FLOAT,
    K_GAUGE_FINE, /* full-precision small floats (durations) */
};

struct family {
    const char *name, *help, *type;
};

struct series {
    int fam;
    char *labels; /* "{...}" or "" */
    enum kind kind;
    double base, rate, spread, quantum;
    int decimals;
};

static struct family *fams;
static size_t nfams, capfams;
static struct series *ser;
static size_t nser, capser;
static uint64_t seed = 1;

static int fam_add(const char *name, const char *help, const char *type)
{
    if (nfams == capfams) {
        capfams = capfams ? capfams * 2 : 64;
        fams = realloc(fams, capfams * sizeof *fams);
        if (!fams)
            die("out of memory");
    }
    fams[nfams] = (struct family){name, help, type};
    return (int)nfams++;
}

/* Add a series of family f. base/rate/spread are drawn per target at render
 * time from these per-series scales. */
static void ser_add(int f, enum kind k, double base, double rate, double quantum, int decimals,
                    const char *fmt, ...)
{
    if (nser == capser) {
        capser = capser ? capser * 2 : 1024;
        ser = realloc(ser, capser * sizeof *ser);
        if (!ser)
            die("out of memory");
    }
    char lab[512] = "";
    if (fmt && *fmt) {
        va_list ap;
        va_start(ap, fmt);
        char inner[480];
        vsnprintf(inner, sizeof inner, fmt, ap);
        va_end(ap);
        snprintf(lab, sizeof lab, "{%s}", inner);
    }
    struct series *s = &ser[nser++];
    s->fam = f;
    s->labels = strdup(lab);
    s->kind = k;
    s->base = base;
    s->rate = rate;
    s->spread = 0.05;
    s->quantum = quantum;
    s->decimals = decimals;
}

static const char *cpu_modes[] = {"idle", "iowait", "irq", "nice", "softirq", "steal", "system",
                                  "user"};
static const char *disks[] = {"nvme0n1", "nvme1n1", "sda", "sdb"};
static const char *ifaces[] = {"eth0", "eth1", "lo", "docker0"};
static const char *fsys[][3] = {{"/dev/nvme0n1p2", "/", "ext4"},
                                {"/dev/nvme0n1p1", "/boot/efi", "vfat"},
                                {"/dev/nvme1n1", "/var/lib/data", "xfs"},
                                {"tmpfs", "/run", "tmpfs"},
                                {"tmpfs", "/dev/shm", "tmpfs"},
                                {"/dev/sda1", "/backup", "ext4"}};
static const char *collectors[] = {
    "arp",      "bcache",   "bonding",   "btrfs",    "conntrack",  "cpu",      "cpufreq",
    "diskstats", "dmi",     "edac",      "entropy",  "fibrechannel", "filefd", "filesystem",
    "hwmon",    "infiniband", "ipvs",    "loadavg",  "mdadm",      "meminfo",  "netclass",
    "netdev",   "netstat",  "nfs",       "nfsd",     "nvme",       "os",       "powersupplyclass",
    "pressure", "rapl",     "schedstat", "selinux",  "sockstat",   "softnet",  "stat",
    "tapestats", "textfile", "thermal_zone", "time", "timex",      "udp_queues", "uname",
    "vmstat",   "xfs",      "zfs"};

#define NCPU 8

static void build_series(size_t want)
{
    int f;
    /* go runtime and process, as every Go exporter has */
    f = fam_add("go_gc_duration_seconds", "A summary of the pause duration of garbage collection cycles.", "summary");
    const char *qs[] = {"0", "0.25", "0.5", "0.75", "1"};
    for (int i = 0; i < 5; i++)
        ser_add(f, K_GAUGE_FINE, 2e-5 * (i + 1), 0, 0, 0, "quantile=\"%s\"", qs[i]);
    f = fam_add("go_gc_duration_seconds_sum", NULL, NULL);
    ser_add(f, K_CTR_FLOAT, 1.5, 1e-4, 0, 6, NULL);
    f = fam_add("go_gc_duration_seconds_count", NULL, NULL);
    ser_add(f, K_CTR_INT, 12000, 0.05, 0, 0, NULL);
    f = fam_add("go_goroutines", "Number of goroutines that currently exist.", "gauge");
    ser_add(f, K_GAUGE_INT, 9, 0, 1, 0, NULL);
    f = fam_add("go_info", "Information about the Go environment.", "gauge");
    ser_add(f, K_CONST, 1, 0, 0, 0, "version=\"go1.21.4\"");
    static const char *memstats[] = {"alloc_bytes", "buck_hash_sys_bytes", "gc_sys_bytes",
                                     "heap_alloc_bytes", "heap_idle_bytes", "heap_inuse_bytes",
                                     "heap_objects", "heap_released_bytes", "heap_sys_bytes",
                                     "mcache_inuse_bytes", "mcache_sys_bytes", "mspan_inuse_bytes",
                                     "mspan_sys_bytes", "next_gc_bytes", "other_sys_bytes",
                                     "stack_inuse_bytes", "stack_sys_bytes", "sys_bytes"};
    for (size_t i = 0; i < sizeof memstats / sizeof *memstats; i++) {
        char *name;
        if (asprintf(&name, "go_memstats_%s", memstats[i]) < 0)
            die("oom");
        f = fam_add(name, "Number of bytes or objects of the Go memory allocator.", "gauge");
        ser_add(f, K_GAUGE_INT, 4e6 * (1 + i % 5), 0, 8, 0, NULL);
    }
    f = fam_add("go_memstats_alloc_bytes_total", "Total number of bytes allocated, even if freed.", "counter");
    ser_add(f, K_CTR_INT, 8e10, 2e5, 0, 0, NULL);
    f = fam_add("go_memstats_mallocs_total", "Total number of mallocs.", "counter");
    ser_add(f, K_CTR_INT, 9e8, 3000, 0, 0, NULL);
    f = fam_add("go_memstats_frees_total", "Total number of frees.", "counter");
    ser_add(f, K_CTR_INT, 9e8, 2990, 0, 0, NULL);
    f = fam_add("go_threads", "Number of OS threads created.", "gauge");
    ser_add(f, K_CONST, 8, 0, 0, 0, NULL);
    f = fam_add("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", "counter");
    ser_add(f, K_CTR_FLOAT, 4000, 0.01, 0, 2, NULL);
    f = fam_add("process_max_fds", "Maximum number of open file descriptors.", "gauge");
    ser_add(f, K_CONST, 1048576, 0, 0, 0, NULL);
    f = fam_add("process_open_fds", "Number of open file descriptors.", "gauge");
    ser_add(f, K_GAUGE_INT, 10, 0, 1, 0, NULL);
    f = fam_add("process_resident_memory_bytes", "Resident memory size in bytes.", "gauge");
    ser_add(f, K_GAUGE_INT, 2.2e7, 0, 4096, 0, NULL);
    f = fam_add("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", "gauge");
    ser_add(f, K_CONST, 1.70e9, 0, 0, 2, NULL);
    f = fam_add("process_virtual_memory_bytes", "Virtual memory size in bytes.", "gauge");
    ser_add(f, K_GAUGE_INT, 7.4e8, 0, 4096, 0, NULL);

    /* cpu */
    f = fam_add("node_cpu_seconds_total", "Seconds the CPUs spent in each mode.", "counter");
    for (int c = 0; c < NCPU; c++)
        for (int m = 0; m < 8; m++) {
            double r = m == 0 ? 0.8 : (m == 6 || m == 7) ? 0.08 : (m == 5 || m == 3) ? 0 : 0.005;
            ser_add(f, K_CTR_FLOAT, 1e5 * (m == 0 ? 10 : 0.3), r, 0, 2, "cpu=\"%d\",mode=\"%s\"", c,
                    cpu_modes[m]);
        }
    f = fam_add("node_cpu_guest_seconds_total", "Seconds the CPUs spent in guests (VMs) for each mode.", "counter");
    for (int c = 0; c < NCPU; c++)
        for (int m = 0; m < 2; m++)
            ser_add(f, K_CONST, 0, 0, 0, 0, "cpu=\"%d\",mode=\"%s\"", c, m ? "user" : "nice");
    f = fam_add("node_cpu_scaling_frequency_hertz", "Current scaled CPU thread frequency in hertz.", "gauge");
    for (int c = 0; c < NCPU; c++)
        ser_add(f, K_GAUGE_INT, 2.4e9, 0, 1000, 0, "cpu=\"%d\"", c);
    static const char *sched[] = {"node_schedstat_running_seconds_total",
                                  "node_schedstat_timeslices_total",
                                  "node_schedstat_waiting_seconds_total"};
    for (int k = 0; k < 3; k++) {
        f = fam_add(sched[k], "Scheduler statistics from /proc/schedstat.", "counter");
        for (int c = 0; c < NCPU; c++)
            ser_add(f, k == 1 ? K_CTR_INT : K_CTR_FLOAT, 5e4 * (k + 1), k == 1 ? 300 : 0.1, 0, 9,
                    "cpu=\"%d\"", c);
    }
    static const char *softnet[] = {"node_softnet_dropped_total", "node_softnet_processed_total",
                                    "node_softnet_times_squeezed_total"};
    for (int k = 0; k < 3; k++) {
        f = fam_add(softnet[k], "Softnet statistics from /proc/net/softnet_stat.", "counter");
        for (int c = 0; c < NCPU; c++)
            ser_add(f, K_CTR_INT, k == 1 ? 4e7 : 3, k == 1 ? 200 : 0, 0, 0, "cpu=\"%d\"", c);
    }

    /* load, misc stat */
    f = fam_add("node_load1", "1m load average.", "gauge");
    ser_add(f, K_GAUGE_FLOAT, 1.2, 0, 0, 2, NULL);
    f = fam_add("node_load5", "5m load average.", "gauge");
    ser_add(f, K_GAUGE_FLOAT, 1.1, 0, 0, 2, NULL);
    f = fam_add("node_load15", "15m load average.", "gauge");
    ser_add(f, K_GAUGE_FLOAT, 1.0, 0, 0, 2, NULL);
    f = fam_add("node_boot_time_seconds", "Node boot time, in unixtime.", "gauge");
    ser_add(f, K_CONST, 1.69e9, 0, 0, 0, NULL);
    f = fam_add("node_context_switches_total", "Total number of context switches.", "counter");
    ser_add(f, K_CTR_INT, 5e9, 8000, 0, 0, NULL);
    f = fam_add("node_forks_total", "Total number of forks.", "counter");
    ser_add(f, K_CTR_INT, 3e7, 5, 0, 0, NULL);
    f = fam_add("node_intr_total", "Total number of interrupts serviced.", "counter");
    ser_add(f, K_CTR_INT, 4e9, 6000, 0, 0, NULL);
    f = fam_add("node_procs_blocked", "Number of processes blocked waiting for I/O to complete.", "gauge");
    ser_add(f, K_GAUGE_INT, 0.4, 0, 1, 0, NULL);
    f = fam_add("node_procs_running", "Number of processes in runnable state.", "gauge");
    ser_add(f, K_GAUGE_INT, 3, 0, 1, 0, NULL);
    f = fam_add("node_entropy_available_bits", "Bits of available entropy.", "gauge");
    ser_add(f, K_CONST, 256, 0, 0, 0, NULL);
    f = fam_add("node_time_seconds", "System time in seconds since epoch (1970).", "gauge");
    ser_add(f, K_GAUGE_FINE, -1, 0, 0, 0, NULL); /* -1: the time itself */
    f = fam_add("node_filefd_allocated", "File descriptor statistics: allocated.", "gauge");
    ser_add(f, K_GAUGE_INT, 3000, 0, 1, 0, NULL);
    f = fam_add("node_filefd_maximum", "File descriptor statistics: maximum.", "gauge");
    ser_add(f, K_CONST, 9.2233720368547758e18, 0, 0, 0, NULL);

    /* disks */
    static const char *dstat[][2] = {
        {"node_disk_discard_time_seconds_total", "f"}, {"node_disk_discarded_sectors_total", "i"},
        {"node_disk_discards_completed_total", "i"},   {"node_disk_discards_merged_total", "z"},
        {"node_disk_flush_requests_time_seconds_total", "f"},
        {"node_disk_flush_requests_total", "i"},      {"node_disk_io_now", "g"},
        {"node_disk_io_time_seconds_total", "f"},      {"node_disk_io_time_weighted_seconds_total", "f"},
        {"node_disk_read_bytes_total", "i"},           {"node_disk_read_time_seconds_total", "f"},
        {"node_disk_reads_completed_total", "i"},      {"node_disk_reads_merged_total", "i"},
        {"node_disk_write_time_seconds_total", "f"},   {"node_disk_writes_completed_total", "i"},
        {"node_disk_writes_merged_total", "i"},        {"node_disk_written_bytes_total", "i"}};
    for (size_t k = 0; k < sizeof dstat / sizeof *dstat; k++) {
        char t = dstat[k][1][0];
        f = fam_add(dstat[k][0], "Disk statistics from /proc/diskstats.", t == 'g' ? "gauge" : "counter");
        for (int d = 0; d < 4; d++) {
            if (t == 'f')
                ser_add(f, K_CTR_FLOAT, 3e4, 0.02 * (d + 1), 0, 3, "device=\"%s\"", disks[d]);
            else if (t == 'i')
                ser_add(f, K_CTR_INT, 3e8, d == 3 ? 0 : 40.0 * (d + 1), 0, 0, "device=\"%s\"", disks[d]);
            else if (t == 'z')
                ser_add(f, K_CONST, 0, 0, 0, 0, "device=\"%s\"", disks[d]);
            else
                ser_add(f, K_GAUGE_INT, 0.3, 0, 1, 0, "device=\"%s\"", disks[d]);
        }
    }
    f = fam_add("node_disk_info", "Info of /sys/block/<block_device>.", "gauge");
    for (int d = 0; d < 4; d++)
        ser_add(f, K_CONST, 1, 0, 0, 0, "device=\"%s\",major=\"%d\",minor=\"0\",model=\"bench disk\",revision=\"1.0\",serial=\"S%07d\"",
                disks[d], 259 + d, d * 7919);

    /* filesystems */
    static const char *fsm[] = {"node_filesystem_avail_bytes", "node_filesystem_device_error",
                                "node_filesystem_files", "node_filesystem_files_free",
                                "node_filesystem_free_bytes", "node_filesystem_readonly",
                                "node_filesystem_size_bytes"};
    for (int k = 0; k < 7; k++) {
        f = fam_add(fsm[k], "Filesystem statistics.", "gauge");
        for (int i = 0; i < 6; i++) {
            enum kind kd = (k == 1 || k == 5 || k == 2 || k == 6) ? K_CONST : K_GAUGE_INT;
            double b = (k == 1 || k == 5) ? 0 : (k == 2 || k == 3) ? 6e6 : 2.5e11 / (i + 1);
            ser_add(f, kd, b, 0, 4096, 0, "device=\"%s\",fstype=\"%s\",mountpoint=\"%s\"",
                    fsys[i][0], fsys[i][2], fsys[i][1]);
        }
    }

    /* memory */
    static const char *mem[] = {
        "Active_anon", "Active_file", "Active", "AnonHugePages", "AnonPages", "Bounce", "Buffers",
        "Cached", "CommitLimit", "Committed_AS", "DirectMap1G", "DirectMap2M", "DirectMap4k",
        "Dirty", "FileHugePages", "FilePmdMapped", "HardwareCorrupted", "HugePages_Free",
        "HugePages_Rsvd", "HugePages_Surp", "HugePages_Total", "Hugepagesize", "Hugetlb",
        "Inactive_anon", "Inactive_file", "Inactive", "KReclaimable", "KernelStack", "Mapped",
        "MemAvailable", "MemFree", "MemTotal", "Mlocked", "NFS_Unstable", "PageTables", "Percpu",
        "SReclaimable", "SUnreclaim", "ShmemHugePages", "ShmemPmdMapped", "Shmem", "Slab",
        "SwapCached", "SwapFree", "SwapTotal", "Unevictable", "VmallocChunk", "VmallocTotal",
        "VmallocUsed", "Writeback", "WritebackTmp", "Zswap", "Zswapped"};
    for (size_t k = 0; k < sizeof mem / sizeof *mem; k++) {
        char *name;
        if (asprintf(&name, "node_memory_%s_bytes", mem[k]) < 0)
            die("oom");
        f = fam_add(name, "Memory information field.", "gauge");
        int cst = (k % 3 == 0) || strstr(mem[k], "Huge") || strstr(mem[k], "Total");
        ser_add(f, cst ? K_CONST : K_GAUGE_INT, (k % 4 == 1) ? 0 : 1e9 * (1 + k % 7), 0, 4096, 0,
                NULL);
    }

    /* network */
    static const char *nets[][2] = {
        {"node_network_receive_bytes_total", "i"}, {"node_network_receive_compressed_total", "z"},
        {"node_network_receive_drop_total", "s"},  {"node_network_receive_errs_total", "z"},
        {"node_network_receive_fifo_total", "z"},  {"node_network_receive_frame_total", "z"},
        {"node_network_receive_multicast_total", "s"}, {"node_network_receive_packets_total", "i"},
        {"node_network_transmit_bytes_total", "i"}, {"node_network_transmit_carrier_total", "z"},
        {"node_network_transmit_colls_total", "z"}, {"node_network_transmit_compressed_total", "z"},
        {"node_network_transmit_drop_total", "s"},  {"node_network_transmit_errs_total", "z"},
        {"node_network_transmit_fifo_total", "z"},  {"node_network_transmit_packets_total", "i"},
        {"node_network_mtu_bytes", "c"},            {"node_network_up", "c"},
        {"node_network_speed_bytes", "c"},          {"node_network_transmit_queue_length", "c"},
        {"node_network_carrier", "c"},              {"node_network_flags", "c"}};
    for (size_t k = 0; k < sizeof nets / sizeof *nets; k++) {
        char t = nets[k][1][0];
        f = fam_add(nets[k][0], "Network device statistic.", t == 'c' ? "gauge" : "counter");
        for (int i = 0; i < 4; i++) {
            if (t == 'i')
                ser_add(f, K_CTR_INT, 1e11, strstr(nets[k][0], "bytes") ? 5e4 * (4 - i) : 60.0 * (4 - i),
                        0, 0, "device=\"%s\"", ifaces[i]);
            else if (t == 's')
                ser_add(f, K_CTR_INT, 1000, 0.01, 0, 0, "device=\"%s\"", ifaces[i]);
            else if (t == 'z')
                ser_add(f, K_CONST, 0, 0, 0, 0, "device=\"%s\"", ifaces[i]);
            else
                ser_add(f, K_CONST, i == 2 ? 65536 : 1500, 0, 0, 0, "device=\"%s\"", ifaces[i]);
        }
    }
    f = fam_add("node_network_info", "Non-numeric data from /sys/class/net/<iface>.", "gauge");
    for (int i = 0; i < 4; i++)
        ser_add(f, K_CONST, 1, 0, 0, 0, "address=\"02:42:ac:11:00:%02x\",broadcast=\"ff:ff:ff:ff:ff:ff\",device=\"%s\",duplex=\"full\",ifalias=\"\",operstate=\"up\"",
                i, ifaces[i]);

    /* netstat, vmstat */
    static const char *netstat[] = {
        "Icmp6_InErrors", "Icmp6_InMsgs", "Icmp6_OutMsgs", "Icmp_InErrors", "Icmp_InMsgs",
        "Icmp_OutMsgs", "Ip6_InOctets", "Ip6_OutOctets", "IpExt_InOctets", "IpExt_OutOctets",
        "Ip_Forwarding", "TcpExt_ListenDrops", "TcpExt_ListenOverflows", "TcpExt_SyncookiesFailed",
        "TcpExt_SyncookiesRecv", "TcpExt_SyncookiesSent", "TcpExt_TCPSynRetrans",
        "TcpExt_TCPTimeouts", "Tcp_ActiveOpens", "Tcp_CurrEstab", "Tcp_InErrs", "Tcp_InSegs",
        "Tcp_OutRsts", "Tcp_OutSegs", "Tcp_PassiveOpens", "Tcp_RetransSegs", "Udp6_InDatagrams",
        "Udp6_InErrors", "Udp6_NoPorts", "Udp6_OutDatagrams", "Udp6_RcvbufErrors",
        "Udp6_SndbufErrors", "UdpLite6_InErrors", "UdpLite_InErrors", "Udp_InDatagrams",
        "Udp_InErrors", "Udp_NoPorts", "Udp_OutDatagrams", "Udp_RcvbufErrors", "Udp_SndbufErrors"};
    for (size_t k = 0; k < sizeof netstat / sizeof *netstat; k++) {
        char *name;
        if (asprintf(&name, "node_netstat_%s", netstat[k]) < 0)
            die("oom");
        f = fam_add(name, "Statistic from /proc/net/netstat.", "untyped");
        ser_add(f, K_CTR_INT, k % 3 ? 1e6 * k : 0, k % 3 == 1 ? 30.0 * k : 0, 0, 0, NULL);
    }
    static const char *vmstat[] = {"oom_kill", "pgfault", "pgmajfault", "pgpgin", "pgpgout",
                                   "pswpin", "pswpout"};
    for (size_t k = 0; k < sizeof vmstat / sizeof *vmstat; k++) {
        char *name;
        if (asprintf(&name, "node_vmstat_%s", vmstat[k]) < 0)
            die("oom");
        f = fam_add(name, "/proc/vmstat information field.", "untyped");
        ser_add(f, K_CTR_INT, 1e8, k == 1 ? 5000 : k > 4 ? 0 : 20, 0, 0, NULL);
    }

    /* hwmon, pressure, sockstat */
    f = fam_add("node_hwmon_temp_celsius", "Hardware monitor for temperature (input).", "gauge");
    for (int i = 0; i < 10; i++)
        ser_add(f, K_GAUGE_FLOAT, 45, 0, 0, 1, "chip=\"platform_coretemp_0\",sensor=\"temp%d\"", i + 1);
    f = fam_add("node_hwmon_temp_crit_celsius", "Hardware monitor for temperature (crit).", "gauge");
    for (int i = 0; i < 10; i++)
        ser_add(f, K_CONST, 100, 0, 0, 0, "chip=\"platform_coretemp_0\",sensor=\"temp%d\"", i + 1);
    static const char *press[] = {"node_pressure_cpu_waiting_seconds_total",
                                  "node_pressure_io_stalled_seconds_total",
                                  "node_pressure_io_waiting_seconds_total",
                                  "node_pressure_memory_stalled_seconds_total",
                                  "node_pressure_memory_waiting_seconds_total"};
    for (int k = 0; k < 5; k++) {
        f = fam_add(press[k], "Total time in seconds that processes have waited or stalled.", "counter");
        ser_add(f, K_CTR_FLOAT, 2000, k < 3 ? 0.003 : 0, 0, 6, NULL);
    }
    static const char *sock[] = {"node_sockstat_FRAG_inuse", "node_sockstat_RAW_inuse",
                                 "node_sockstat_TCP_alloc", "node_sockstat_TCP_inuse",
                                 "node_sockstat_TCP_mem", "node_sockstat_TCP_mem_bytes",
                                 "node_sockstat_TCP_orphan", "node_sockstat_TCP_tw",
                                 "node_sockstat_UDP_inuse", "node_sockstat_UDP_mem",
                                 "node_sockstat_UDP_mem_bytes", "node_sockstat_sockets_used"};
    for (size_t k = 0; k < sizeof sock / sizeof *sock; k++) {
        f = fam_add(sock[k], "Number of sockets in state.", "gauge");
        ser_add(f, k % 2 ? K_GAUGE_INT : K_CONST, 40.0 * (k + 1), 0, 1, 0, NULL);
    }

    /* the exporter's own */
    f = fam_add("node_scrape_collector_duration_seconds", "node_exporter: Duration of a collector scrape.", "gauge");
    for (size_t k = 0; k < sizeof collectors / sizeof *collectors; k++)
        ser_add(f, K_GAUGE_FINE, 1e-4 * (1 + k % 9), 0, 0, 0, "collector=\"%s\"", collectors[k]);
    f = fam_add("node_scrape_collector_success", "node_exporter: Whether a collector succeeded.", "gauge");
    for (size_t k = 0; k < sizeof collectors / sizeof *collectors; k++)
        ser_add(f, K_CONST, 1, 0, 0, 0, "collector=\"%s\"", collectors[k]);
    f = fam_add("node_exporter_build_info", "A metric with a constant '1' value.", "gauge");
    ser_add(f, K_CONST, 1, 0, 0, 0, "branch=\"HEAD\",goarch=\"amd64\",goos=\"linux\",goversion=\"go1.21.4\",revision=\"bench\",tags=\"netgo osusergo static_build\",version=\"1.7.0\"");
    f = fam_add("node_uname_info", "Labeled system information as provided by the uname system call.", "gauge");
    ser_add(f, K_CONST, 1, 0, 0, 0, "domainname=\"(none)\",machine=\"x86_64\",nodename=\"bench-host\",release=\"6.1.0-13-amd64\",sysname=\"Linux\",version=\"#1 SMP PREEMPT_DYNAMIC Debian 6.1.55-1\"");
    f = fam_add("promhttp_metric_handler_errors_total", "Total number of internal errors encountered by the promhttp metric handler.", "counter");
    ser_add(f, K_CONST, 0, 0, 0, 0, "cause=\"encoding\"");
    ser_add(f, K_CONST, 0, 0, 0, 0, "cause=\"gathering\"");
    f = fam_add("promhttp_metric_handler_requests_in_flight", "Current number of scrapes being served.", "gauge");
    ser_add(f, K_CONST, 1, 0, 0, 0, NULL);
    f = fam_add("promhttp_metric_handler_requests_total", "Total number of scrapes by HTTP status code.", "counter");
    ser_add(f, K_CTR_INT, 5e4, 1.0 / 15, 0, 0, "code=\"200\"");
    ser_add(f, K_CONST, 0, 0, 0, 0, "code=\"500\"");
    ser_add(f, K_CONST, 0, 0, 0, 0, "code=\"503\"");

    /* pad with interrupts, or cut, to the wanted count */
    if (nser < want) {
        static const char *itypes[] = {"IO-APIC", "PCI-MSI", "LOC", "RES", "CAL", "TLB", "NMI", "PMI"};
        f = fam_add("node_interrupts_total", "Interrupt details.", "counter");
        for (size_t k = 0; nser < want; k++) {
            int cpu = (int)(k % NCPU);
            size_t irq = k / NCPU;
            ser_add(f, (irq % 3 == 2) ? K_CONST : K_CTR_INT, 1e6 * (irq % 5), (irq % 3 == 2) ? 0 : 2.0 + irq % 7,
                    0, 0, "cpu=\"%d\",devices=\"dev-%zu\",info=\"edge\",type=\"%s\"", cpu, irq + 16,
                    itypes[irq % 8]);
        }
    }
    if (nser > want)
        nser = want;
}

static double start_s; /* wall time the generator started */

/* Write series s of target tgt at wall time wall (seconds) into b. Counters
 * run on the target's uptime: 1 to 60 days (by seed and target) at start. */
static void render_value(struct buf *b, const struct series *s, size_t idx, unsigned tgt, double wall)
{
    uint64_t key = seed * 1000003u + tgt;
    double u = unit(key, idx, 1); /* per (target, series) level */
    double now = wall - start_s + 86400 * (1 + floor(59 * unit(key, 0, 3)));
    double v;
    switch (s->kind) {
    case K_CONST:
        v = s->base;
        if (v > 1 && v < 1e15)
            v = floor(v * (0.9 + 0.2 * u));
        break;
    case K_CTR_INT:
        v = floor(s->base * (0.5 + u) + s->rate * (0.5 + unit(key, idx, 2)) * now);
        break;
    case K_CTR_FLOAT: {
        double x = s->base * (0.5 + u) + s->rate * (0.5 + unit(key, idx, 2)) * now;
        double p = pow(10, s->decimals);
        v = floor(x * p) / p;
        break;
    }
    case K_GAUGE_INT:
    case K_GAUGE_FLOAT: {
        double step = floor(now / 15);
        double n = unit(key, idx, (uint64_t)step) * 2 - 1;
        double x = s->base * (0.5 + u) * (1 + s->spread * n);
        if (s->kind == K_GAUGE_INT) {
            double q = s->quantum > 0 ? s->quantum : 1;
            v = floor(x / q) * q;
        } else {
            double p = pow(10, s->decimals);
            v = round(x * p) / p;
        }
        break;
    }
    case K_GAUGE_FINE:
    default:
        if (s->base < 0)
            v = floor(wall * 1000) / 1000;
        else
            v = s->base * (0.5 + u) * (0.5 + unit(key, idx, (uint64_t)(now * 1000)));
        break;
    }
    char tmp[48];
    int n;
    if (v == floor(v) && fabs(v) < 1e15)
        n = snprintf(tmp, sizeof tmp, "%.0f", v);
    else
        n = snprintf(tmp, sizeof tmp, "%.15g", v);
    buf_add(b, tmp, (size_t)n);
}

static void render_body(struct buf *b, unsigned tgt, double now)
{
    int last = -1;
    for (size_t i = 0; i < nser; i++) {
        const struct series *s = &ser[i];
        const struct family *f = &fams[s->fam];
        if (s->fam != last) {
            last = s->fam;
            if (f->help)
                buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name, f->type);
        }
        buf_add(b, f->name, strlen(f->name));
        buf_add(b, s->labels, strlen(s->labels));
        buf_add(b, " ", 1);
        render_value(b, s, i, tgt, now);
        buf_add(b, "\n", 1);
    }
}

/* ----------------------------------------------------------------- HTTP */

struct conn {
    int fd;
    int target; /* -1: control */
    char in[8192];
    size_t inlen;
    struct buf out;
    size_t outoff;
    int close_after;
};

struct listener {
    int fd;
    int target;
};

static int ntargets;
static int64_t (*ring)[RING];
static uint64_t *reqcount;
static uint64_t total_requests, total_bytes, total_accepts;
static volatile sig_atomic_t stop;
static int epfd;
static struct buf body; /* scratch */

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int listen_on(const char *addr, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1)
        die("bad address %s", addr);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        die("bind %s:%d: %s", addr, port, strerror(errno));
    if (listen(fd, 512) < 0)
        die("listen: %s", strerror(errno));
    return fd;
}

static void respond(struct conn *c, int status, const char *ctype, const char *p, size_t n)
{
    const char *reason = status == 200 ? "OK" : status == 404 ? "Not Found" : "Bad Request";
    buf_printf(&c->out,
               "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s\r\n", status,
               reason, ctype, n, c->close_after ? "Connection: close\r\n" : "");
    buf_add(&c->out, p, n);
}

static void handle_stats(struct conn *c, const char *query)
{
    int64_t since = 0;
    if (query && strncmp(query, "since=", 6) == 0)
        since = strtoll(query + 6, NULL, 10);
    body.len = 0;
    buf_printf(&body, "now_ms %lld requests %llu bytes %llu accepts %llu\n", (long long)wall_ms(),
               (unsigned long long)total_requests, (unsigned long long)total_bytes,
               (unsigned long long)total_accepts);
    for (int i = 0; i < ntargets; i++) {
        buf_printf(&body, "%d %llu", i, (unsigned long long)reqcount[i]);
        uint64_t n = reqcount[i] < RING ? reqcount[i] : RING;
        for (uint64_t k = reqcount[i] - n; k < reqcount[i]; k++) {
            int64_t t = ring[i][k % RING];
            if (t >= since)
                buf_printf(&body, " %lld", (long long)t);
        }
        buf_add(&body, "\n", 1);
    }
    respond(c, 200, "text/plain", body.p, body.len);
}

/* Handle one complete request head in c->in[0..hlen). */
static void handle_request(struct conn *c, size_t hlen)
{
    char line[1024];
    size_t ll = 0;
    while (ll < hlen && c->in[ll] != '\r' && ll < sizeof line - 1) {
        line[ll] = c->in[ll];
        ll++;
    }
    line[ll] = 0;
    /* Connection: close from the client */
    for (size_t i = 0; i + 17 <= hlen; i++)
        if ((c->in[i] == '\n') && strncasecmp(c->in + i + 1, "connection: close", 17) == 0)
            c->close_after = 1;
    char *sp1 = strchr(line, ' ');
    char *path = sp1 ? sp1 + 1 : NULL;
    char *sp2 = path ? strchr(path, ' ') : NULL;
    if (!sp1 || !sp2 || strncmp(line, "GET ", 4) != 0) {
        c->close_after = 1;
        respond(c, 400, "text/plain", "bad request\n", 12);
        return;
    }
    *sp2 = 0;
    char *query = strchr(path, '?');
    if (query)
        *query++ = 0;
    if (c->target < 0) {
        if (strcmp(path, "/stats") == 0)
            handle_stats(c, query);
        else if (strcmp(path, "/quit") == 0) {
            stop = 1;
            respond(c, 200, "text/plain", "bye\n", 4);
        } else
            respond(c, 404, "text/plain", "not found\n", 10);
        return;
    }
    if (strcmp(path, "/metrics") != 0) {
        respond(c, 404, "text/plain", "not found\n", 10);
        return;
    }
    int64_t ms = wall_ms();
    int t = c->target;
    ring[t][reqcount[t] % RING] = ms;
    reqcount[t]++;
    total_requests++;
    body.len = 0;
    render_body(&body, (unsigned)t, (double)ms / 1000.0);
    total_bytes += body.len;
    respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", body.p, body.len);
}

static void conn_close(struct conn *c)
{
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->out.p);
    free(c);
}

/* Returns 0 to keep the connection, -1 after closing it. */
static int conn_flush(struct conn *c)
{
    while (c->outoff < c->out.len) {
        ssize_t n = send(c->fd, c->out.p + c->outoff, c->out.len - c->outoff, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            if (errno == EINTR)
                continue;
            conn_close(c);
            return -1;
        }
        c->outoff += (size_t)n;
    }
    struct epoll_event ev = {.data.ptr = c};
    if (c->outoff == c->out.len) {
        c->out.len = c->outoff = 0;
        if (c->close_after) {
            conn_close(c);
            return -1;
        }
        ev.events = EPOLLIN;
    } else {
        ev.events = EPOLLOUT;
    }
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    return 0;
}

static void conn_read(struct conn *c)
{
    for (;;) {
        if (c->inlen == sizeof c->in) {
            conn_close(c); /* request head too large */
            return;
        }
        ssize_t n = recv(c->fd, c->in + c->inlen, sizeof c->in - c->inlen, 0);
        if (n == 0) {
            conn_close(c);
            return;
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            conn_close(c);
            return;
        }
        c->inlen += (size_t)n;
    }
    /* every complete request head (no bodies: GET only) */
    for (;;) {
        char *end = memmem(c->in, c->inlen, "\r\n\r\n", 4);
        if (!end)
            break;
        size_t hlen = (size_t)(end - c->in) + 4;
        handle_request(c, hlen);
        memmove(c->in, c->in + hlen, c->inlen - hlen);
        c->inlen -= hlen;
        if (c->close_after)
            break;
    }
    if (c->out.len > c->outoff)
        conn_flush(c);
}

int main(int argc, char **argv)
{
    int port = 0, ctrl_port = 0, net = 77;
    size_t want = 500;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            die("missing value for %s", a);
        if (strcmp(a, "--targets") == 0)
            ntargets = atoi(v);
        else if (strcmp(a, "--port") == 0)
            port = atoi(v);
        else if (strcmp(a, "--ctrl-port") == 0)
            ctrl_port = atoi(v);
        else if (strcmp(a, "--series") == 0)
            want = (size_t)strtoul(v, NULL, 10);
        else if (strcmp(a, "--seed") == 0)
            seed = strtoull(v, NULL, 10);
        else if (strcmp(a, "--net") == 0)
            net = atoi(v);
        else
            die("unknown flag %s", a);
        i++;
    }
    if (ntargets <= 0 || ntargets > 250 * 256 || port <= 0 || ctrl_port <= 0 || net < 1 || net > 254)
        die("usage: targetgen --targets N --port P --ctrl-port C [--series S] [--seed X] [--net A]");

    prctl(PR_SET_PDEATHSIG, SIGTERM);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    start_s = floor((double)wall_ms() / 1000.0);
    build_series(want);
    ring = calloc((size_t)ntargets, sizeof *ring);
    reqcount = calloc((size_t)ntargets, sizeof *reqcount);
    if (!ring || !reqcount)
        die("out of memory");

    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        die("epoll_create1: %s", strerror(errno));
    struct listener *ls = calloc((size_t)ntargets + 1, sizeof *ls);
    if (!ls)
        die("out of memory");
    for (int i = 0; i <= ntargets; i++) {
        char addr[32];
        if (i < ntargets)
            snprintf(addr, sizeof addr, "127.%d.%d.%d", net, i / 250, i % 250 + 1);
        else
            snprintf(addr, sizeof addr, "127.0.0.1");
        ls[i].fd = listen_on(addr, i < ntargets ? port : ctrl_port);
        ls[i].target = i < ntargets ? i : -1;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &ls[i]};
        /* listeners are told apart from connections by address range */
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, ls[i].fd, &ev) < 0)
            die("epoll_ctl: %s", strerror(errno));
    }
    body.len = 0;
    render_body(&body, 0, (double)wall_ms() / 1000.0);
    fprintf(stderr, "targetgen: %d targets on 127.%d.x.y:%d, %zu series each (%zu bytes), control 127.0.0.1:%d\n",
            ntargets, net, port, nser, body.len, ctrl_port);

    struct epoll_event evs[256];
    while (!stop) {
        int n = epoll_wait(epfd, evs, 256, 500);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait: %s", strerror(errno));
        }
        for (int k = 0; k < n; k++) {
            void *p = evs[k].data.ptr;
            if (p >= (void *)ls && p < (void *)(ls + ntargets + 1)) {
                struct listener *l = p;
                for (;;) {
                    int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0)
                        break;
                    int one = 1;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct conn *c = calloc(1, sizeof *c);
                    if (!c)
                        die("out of memory");
                    c->fd = fd;
                    c->target = l->target;
                    if (l->target >= 0)
                        total_accepts++;
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
                        close(fd);
                        free(c);
                    }
                }
                continue;
            }
            struct conn *c = p;
            if (evs[k].events & EPOLLOUT) {
                if (conn_flush(c) < 0)
                    continue;
            }
            if (evs[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                conn_read(c);
        }
    }
    fprintf(stderr, "targetgen: exiting after %llu requests\n", (unsigned long long)total_requests);
    return 0;
}
