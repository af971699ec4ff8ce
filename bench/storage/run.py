#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Storage benchmark: bongsu against Prometheus 2.42 and VictoriaMetrics, same
run, same data (issue 4, item 9).

Three measurements, each for the three systems:

  1. bytes per sample after compaction. One seeded node_exporter-like data
     set (TARGETS x 1000 series x HOURS at 15 s) is written twice: as an
     OpenMetrics backfill file (timestamps in seconds with 3 decimals) and
     as the same samples in the Prometheus text format (timestamps in ms).
       - Prometheus: `promtool tsdb create-blocks-from openmetrics`, then
         prometheus is started on the directory (retention 3650d, so the
         largest block range is 31d) and left running until its compactor
         has merged the 2 h blocks (the block count must drop, then stay
         put for 30 s); `promtool tsdb list` afterwards.
       - bongsu: `bongsutool tsdb create-blocks-from openmetrics`, then
         bongsu on the directory with the same retention, same wait;
         `bongsutool tsdb list` afterwards.
       - VictoriaMetrics: POST of the text file to /api/v1/import/prometheus,
         /internal/force_merge for every month partition the data touches,
         wait until the data directory stops changing, then SIGINT (a clean
         stop flushes the in-memory parts).
     Counted bytes (apparent sizes, sum of st_size): for Prometheus and bongsu
     every file under the block directories (<ulid>/chunks/*, index,
     meta.json, tombstones); wal/, chunks_head/, lock and queries.active
     are not counted (the head is empty here anyway). For VM every file
     under data/ (small and big parts) and indexdb/; cache/, snapshots/,
     metadata/ and flock.lock are not counted. Sizes are measured after
     the clean stop. Lossless check: before the stop, a fixed subset of
     series (every 17th of each target, all classes) is read back over the
     API (Prometheus, bongsu: an instant query of `<selector>[span]`, which
     returns the raw samples; VM: /api/v1/export) and every (timestamp,
     float64 bit pattern) is compared with the generator's.
  2. ingestion CPU and RSS. One remote-write stream is encoded before any
     server starts (RW_SERIES series in scrapes of 1000 series, RW_ROUNDS
     rounds 15 s apart ending at the time of encoding, one sample per series
     per round, one request per target per round, protobuf wrapped in a
     valid but literal-only snappy block as in tests/e2e/rw_encode.py) and
     kept in a file. Each system starts empty and receives the stream over
     2 keep-alive connections in time order; CPU is utime+stime from
     /proc/<pid>/stat from just before the first request to 2 s after the
     last answer; VmRSS is read 2 s after the last answer. Reported: CPU s
     per million samples (all rounds, and rounds 2.. only, i.e. without
     series creation) and RSS bytes per active series.
  3. restart. After 2 and --settle-s (default 15 s; VictoriaMetrics 1.79
     keeps fresh rows in memory for several seconds: a kill -9 7 s after the
     last acknowledged write lost all of them in a test, 12 s after it
     lost none), SIGKILL, start again on the same directory, time until /-/ready answers
     200 (VM: /health), and until an instant query for a known series
     returns the last value sent; also checks count_over_time of that
     series equals RW_ROUNDS (no acknowledged sample lost for it).

The data generator (deterministic by --seed; bench/bench_tsdb_dense.c
uses the same mix). A target is one node_exporter of 1000 series scraped
every 15 s; all its series share the scrape's timestamp
t_i = T0 + phase + 15000 i + j_i, with a per-target phase in [0, 15 s) and a
jitter j_i uniform in [-J, J] ms per scrape (J = --jitter-ms, default 5).

  counters 60% (600)
    120  node_cpu_seconds_total (15 cpus x 8 modes) in 1/100 s ticks
         (k / 100 as /proc/stat gives them): idle (rate 0.85-0.98), user,
         system, iowait, irq, softirq; increments rate * 1500 ticks with 5%
         noise; nice and steal never change
     90  byte counters: integer increments, rate log-uniform 1 kB/s -
         10 MB/s, per-scrape lognormal noise (sigma 0.5)
     90  packet / operation counters: rate log-uniform 1 - 3000 /s, 30% noise
     90  sparse event counters: +1..+3 on 5% of scrapes
    210  never-changing counters (errors, drops): 0 or a fixed integer
  gauges 30% (300)
    100  memory bytes: pages * 4096, changing on a per-series fraction
         (5-90%) of scrapes by N(0, 2000) pages
     15  load averages, 2 decimals, mean-reverting walk
     45  temperatures, 1 decimal, mean-reverting walk
     90  filesystem bytes: 4096-byte blocks, changing on 20% of scrapes
     50  small integer gauges (procs running 0-10, open fds random walk)
  constants 10% (100)
     60  info / up metrics = 1
     10  boot time (an integer Unix time)
     30  sizes (filesystem size: large multiples of 4096)

Backfill data: each series draws from its own random.Random stream
(seed, target, series), so any series can be regenerated alone for the
lossless check. Remote-write stream: one random.Random per target, series
stepped in a fixed order each round (100k independent streams would cost
250 MB of generator state).

Usage (the defaults take about 11 minutes on the shared 2-core machine):
    /usr/bin/python3 bench/storage/run.py     # 1 target x 24 h; 1M series x 6 rounds
    /usr/bin/python3 bench/storage/run.py --hours 12 --rw-series 100000 --rw-rounds 20   # ~5 min
    (promtool re-reads the whole file for each 2 h block: its time grows with
    TARGETS x HOURS^2; 1 x 24 h takes it about 100 s)
    --only size,ingest     (size | ingest: ingest includes restart)
    --systems bongsu,prometheus,vm   (which servers measurement 2+3 runs;
                           measurement 1 always runs all three)

Everything it starts runs in its own process group with a parent-death
signal and is stopped at the end; storage lives under one temporary
directory removed at the end (--keep keeps it).
"""
import argparse
import concurrent.futures
import ctypes
import datetime
import json
import math
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
import rw_encode  # noqa: E402  (the project's remote-write encoder)

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
STEP_MS = 15000
_libc = ctypes.CDLL(None, use_errno=True)


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


# ===================================================================== data

MODES = ["idle", "user", "system", "iowait", "irq", "softirq", "nice", "steal"]
CPU_LO = [0.85, 0.01, 0.005, 0, 0, 0.001, 0, 0]
CPU_HI = [0.98, 0.2, 0.005 + 0.045, 0.01, 0.002, 0.01, 0, 0]

# (class, metric names, labels per name); each class's count = len(names) * len(labels)
NETDEV = [("device", "eth%d" % i) for i in range(15)]
DISK = [("device", "sd" + chr(ord("a") + i)) for i in range(15)]
MOUNTS = [[("device", "/dev/sd%s%s" % (chr(ord("a") + i // 4), i % 4 + 1)), ("fstype", "ext4"),
           ("mountpoint", "/srv/d%02d" % i)] for i in range(45)]


def _classes():
    out = []
    # counters
    out.append(("cpu", [[("__name__", "node_cpu_seconds_total"), ("cpu", str(c)), ("mode", m)]
                        for c in range(15) for m in MODES]))

    def per(names, labs):
        return [[("__name__", n)] + (l if isinstance(l, list) else [l]) for n in names for l in labs]
    out.append(("bytes", per(["node_network_receive_bytes_total", "node_network_transmit_bytes_total"], NETDEV)
                + per(["node_disk_read_bytes_total", "node_disk_written_bytes_total",
                       "node_disk_discarded_bytes_total", "node_disk_flush_bytes_total"], DISK)))
    out.append(("packets", per(["node_network_receive_packets_total", "node_network_transmit_packets_total"], NETDEV)
                + per(["node_disk_reads_completed_total", "node_disk_writes_completed_total",
                       "node_disk_reads_merged_total", "node_disk_writes_merged_total"], DISK)))
    out.append(("sparse", per(["node_network_receive_multicast_total", "node_network_carrier_changes_total",
                               "node_network_carrier_up_changes_total"], NETDEV)
                + per(["node_disk_flush_requests_total", "node_disk_discards_completed_total",
                       "node_disk_flush_requests_time_seconds_total"], DISK)))
    out.append(("never", per(["node_network_receive_errs_total", "node_network_receive_drop_total",
                              "node_network_receive_fifo_total", "node_network_receive_frame_total",
                              "node_network_receive_compressed_total", "node_network_transmit_errs_total",
                              "node_network_transmit_drop_total", "node_network_transmit_fifo_total",
                              "node_network_transmit_colls_total", "node_network_transmit_carrier_total",
                              "node_network_transmit_compressed_total"], NETDEV)
                + per(["node_disk_discards_merged_total", "node_disk_discarded_sectors_total",
                       "node_edac_correctable_errors_total"], DISK)))
    # gauges
    mem = ["Active", "Inactive", "Active_anon", "Inactive_anon", "Active_file", "Inactive_file", "AnonPages",
           "Buffers", "Cached", "Dirty", "Writeback", "FilePages", "Mapped", "MemFree", "MemUsed",
           "Shmem", "Slab", "SReclaimable", "SUnreclaim", "KernelStack", "PageTables", "Unevictable",
           "Mlocked", "HugePages_Free", "Bounce"]
    out.append(("mem", [[("__name__", "node_memory_numa_%s" % f), ("node", str(n))]
                        for f in mem for n in range(4)]))
    out.append(("load", [[("__name__", n), ("slice", "s%d" % i)]
                         for n in ["node_load1", "node_load5", "node_load15"] for i in range(5)]))
    out.append(("temp", [[("__name__", "node_hwmon_temp_celsius"), ("chip", "platform_coretemp_%d" % (i // 15)),
                          ("sensor", "temp%d" % (i % 15 + 1))] for i in range(45)]))
    out.append(("fs", per(["node_filesystem_avail_bytes", "node_filesystem_free_bytes"], MOUNTS)))
    out.append(("small", [[("__name__", n), ("cgroup", "c%02d" % i)]
                          for n in ["node_procs_running", "node_filefd_allocated"] for i in range(25)]))
    # constants
    out.append(("info", per(["node_network_up", "node_network_info", "node_disk_info", "node_network_dormant"],
                            NETDEV)))
    out.append(("boot", [[("__name__", "node_boot_time_seconds"), ("ns", "ns%d" % i)] for i in range(10)]))
    out.append(("size", [[("__name__", "node_filesystem_size_bytes")] + m for m in MOUNTS[:30]]))
    return out


CLASSES = _classes()
SERIES = []          # (class, local index, labels without job/instance)
for _cls, _ls in CLASSES:
    for _i, _l in enumerate(_ls):
        SERIES.append((_cls, _i, _l))
assert len(SERIES) == 1000, len(SERIES)
COUNTERS = {"cpu", "bytes", "packets", "sparse", "never"}


def target_labels(t):
    return [("instance", "node-%03d:9100" % t), ("job", "node")]


class Gen:
    """One series' state; step(r) returns the next value (a float)."""
    __slots__ = ("c", "k", "rate", "x", "mean", "p", "odd")

    def __init__(self, cls, i, r):
        self.c = cls
        self.k = 0
        self.rate = self.x = self.mean = self.p = 0.0
        self.odd = i % 2
        if cls == "cpu":
            m = i % 8
            self.rate = CPU_LO[m] + (CPU_HI[m] - CPU_LO[m]) * r.random()
            self.k = int(1e6 * self.rate * 100)          # ~11 days of uptime in ticks
        elif cls == "bytes":
            self.rate = 10 ** (3 + 4 * r.random()) * 15
            self.k = int(r.random() * 1e12)
        elif cls == "packets":
            self.rate = 10 ** (3.5 * r.random()) * 15
            self.k = int(r.random() * 1e9)
        elif cls == "sparse":
            self.k = r.randrange(1000)
        elif cls == "never":
            self.k = 0 if r.random() < 0.5 else r.randrange(100000)
        elif cls == "mem":
            self.k = r.randrange(4000000)
            self.p = 0.05 + 0.85 * r.random()
        elif cls == "load":
            self.mean = self.x = 4 * r.random()
        elif cls == "temp":
            self.mean = self.x = 35 + 30 * r.random()
        elif cls == "fs":
            self.k = r.randrange(250000000)
        elif cls == "small":
            self.k = r.randrange(5000)
        elif cls == "info":
            self.k = 1
        elif cls == "boot":
            self.k = 1699000000 + r.randrange(1000000)
        else:
            self.k = r.randrange(1 << 40) * 4096

    def step(self, r):
        c = self.c
        if c == "cpu":
            inc = self.rate * 1500 * (1 + 0.05 * r.gauss(0, 1))
            if inc > 0:
                self.k += round(inc)
            return self.k / 100.0
        if c == "bytes":
            self.k += round(self.rate * math.exp(0.5 * r.gauss(0, 1)))
            return float(self.k)
        if c == "packets":
            inc = self.rate * (1 + 0.3 * r.gauss(0, 1))
            if inc > 0:
                self.k += round(inc)
            return float(self.k)
        if c == "sparse":
            if r.random() < 0.05:
                self.k += 1 + r.randrange(3)
            return float(self.k)
        if c == "mem":
            if r.random() < self.p:
                self.k = abs(self.k + round(2000 * r.gauss(0, 1)))
            return float(self.k * 4096)
        if c == "load":
            self.x = abs(self.x + 0.1 * (self.mean - self.x) + 0.15 * r.gauss(0, 1))
            return round(self.x * 100) / 100.0
        if c == "temp":
            self.x += 0.05 * (self.mean - self.x) + 0.3 * r.gauss(0, 1)
            return round(self.x * 10) / 10.0
        if c == "fs":
            if r.random() < 0.2:
                self.k += round(500 * r.gauss(0, 1))
            return float(self.k * 4096)
        if c == "small":
            if self.odd:
                return float(r.randrange(11))
            self.k += r.randrange(21) - 10
            return float(self.k)
        return float(self.k)


def scrape_times(seed, target, t0, n, jitter):
    r = random.Random("times/%d/%d" % (seed, target))
    phase = r.randrange(STEP_MS)
    return [t0 + phase + STEP_MS * i + (r.randint(-jitter, jitter) if jitter else 0) for i in range(n)]


def series_values(seed, target, s, n):
    r = random.Random("series/%d/%d/%d" % (seed, target, s))
    cls, i, _ = SERIES[s]
    g = Gen(cls, i, r)
    return [g.step(r) for _ in range(n)]


def fmt_labels(ls):
    return "{" + ",".join('%s="%s"' % (k, v) for k, v in ls if k != "__name__") + "}"


def write_backfill(args, t0, n, om_path, prom_path):
    """Both files hold the same samples; families contiguous (OpenMetrics)."""
    families = []        # (family name, type, [series index])
    for s, (cls, _, ls) in enumerate(SERIES):
        name = ls[0][1]
        if not families or families[-1][0] != name:
            families.append((name, "counter" if cls in COUNTERS else "gauge", []))
        families[-1][2].append(s)
    times = [scrape_times(args.seed, t, t0, n, args.jitter_ms) for t in range(args.targets)]
    tstr_om = [["%d.%03d" % (x // 1000, x % 1000) for x in ts] for ts in times]
    tstr_ms = [[str(x) for x in ts] for ts in times]
    samples = 0
    with open(om_path, "w") as om, open(prom_path, "w") as pt:
        for name, typ, idx in families:
            fam = name[:-len("_total")] if typ == "counter" else name
            om.write("# TYPE %s %s\n" % (fam, typ))
            for t in range(args.targets):
                for s in idx:
                    ls = SERIES[s][2] + target_labels(t)
                    head = name + fmt_labels(sorted(ls)) + " "
                    vals = series_values(args.seed, t, s, n)
                    om.write("".join("%s%r %s\n" % (head, v, x) for v, x in zip(vals, tstr_om[t])))
                    pt.write("".join("%s%r %s\n" % (head, v, x) for v, x in zip(vals, tstr_ms[t])))
                    samples += n
        om.write("# EOF\n")
    return samples, times


# ================================================================ processes

_ports_given = set()


def free_port():
    # 20100-20999: outside the ranges other benchmarks and sessions reserve
    for p in random.Random(os.getpid()).sample(range(20100, 21000), 900):
        if p in _ports_given:
            continue
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", p))
            _ports_given.add(p)
            return p
        except OSError:
            continue
        finally:
            s.close()
    raise RuntimeError("no free port")


def _child_setup():
    _libc.prctl(1, signal.SIGTERM, 0, 0, 0)    # PR_SET_PDEATHSIG
    os.setpgrp()


class Server:
    def __init__(self, kind, binary, workdir, datadir, extra=()):
        self.kind, self.binary, self.workdir, self.datadir = kind, binary, workdir, datadir
        self.extra = list(extra)
        self.port = None
        self.proc = None
        self.logf = None

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def cmd(self):
        a = "127.0.0.1:%d" % self.port
        if self.kind == "vm":
            return [self.binary, "-storageDataPath=" + self.datadir, "-httpListenAddr=" + a,
                    "-retentionPeriod=100y", "-search.latencyOffset=0s", "-loggerLevel=WARN"] + self.extra
        cfg = os.path.join(self.workdir, "empty.yml")
        if not os.path.exists(cfg):
            with open(cfg, "w") as f:
                f.write("global:\n  scrape_interval: 15s\nscrape_configs: []\n")
        return [self.binary, "--config.file=" + cfg, "--storage.tsdb.path=" + self.datadir,
                "--web.listen-address=" + a] + self.extra

    def start(self):
        if self.port is None:
            self.port = free_port()
        self.logf = open(os.path.join(self.workdir, "%s.log" % self.kind), "ab")
        self.t_start = time.monotonic()
        self.proc = subprocess.Popen(self.cmd(), stdout=self.logf, stderr=subprocess.STDOUT,
                                     preexec_fn=_child_setup)
        return self

    def ready_path(self):
        return "/health" if self.kind == "vm" else "/-/ready"

    def wait_ready(self, timeout=300, interval=0.01):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited (rc %s), see %s.log" % (self.kind, self.proc.returncode, self.kind))
            try:
                if requests.get(self.url + self.ready_path(), timeout=2).status_code == 200:
                    return time.monotonic() - self.t_start
            except requests.RequestException:
                pass
            time.sleep(interval)
        raise RuntimeError("%s not ready after %ds" % (self.kind, timeout))

    def cpu(self):
        with open("/proc/%d/stat" % self.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK      # utime + stime

    def rss(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def stop(self, sig=signal.SIGTERM, timeout=120):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        self.logf.close()


def files_size(root, include):
    """Sum of st_size (apparent) and st_blocks*512 (du) of regular files
    under root whose first path component satisfies include(name)."""
    app = du = nfiles = 0
    for top in os.listdir(root):
        if not include(top):
            continue
        p = os.path.join(root, top)
        paths = [p] if not os.path.isdir(p) else \
            [os.path.join(d, f) for d, _, fs in os.walk(p) for f in fs]
        for fp in paths:
            st = os.lstat(fp)
            app += st.st_size
            du += st.st_blocks * 512
            nfiles += 1
    return app, du, nfiles


def is_block(name):
    return len(name) == 26 and name.isalnum() and name.upper() == name


def block_dirs(datadir):
    return sorted(n for n in os.listdir(datadir) if is_block(n) and os.path.isdir(os.path.join(datadir, n)))


# ========================================================== query helpers

def selector(ls):
    return "{" + ",".join('%s="%s"' % (k, v) for k, v in sorted(ls)) + "}"


def bits(v):
    return struct.unpack("<Q", struct.pack("<d", v))[0]


def read_raw(srv, ls, start_ms, end_ms):
    """Raw samples [(ts_ms, float)] of one series over [start_ms, end_ms]."""
    sel = selector(ls)
    if srv.kind == "vm":
        r = requests.get(srv.url + "/api/v1/export", params={
            "match[]": sel, "start": "%.3f" % (start_ms / 1000), "end": "%.3f" % (end_ms / 1000)}, timeout=60)
        r.raise_for_status()
        out = []
        for line in r.text.splitlines():
            if line.strip():
                o = json.loads(line)
                out += list(zip(o["timestamps"], [float(v) for v in o["values"]]))
        return sorted(out)
    span_s = (end_ms - start_ms) // 1000 + 1
    r = requests.get(srv.url + "/api/v1/query", params={
        "query": "%s[%ds]" % (sel, span_s), "time": "%.3f" % (end_ms / 1000)}, timeout=60)
    r.raise_for_status()
    res = r.json()["data"]["result"]
    out = []
    for s in res:
        out += [(int(round(float(t) * 1000)), float(v)) for t, v in s["values"]]
    return sorted(out)


def instant(srv, q, t_s):
    r = requests.get(srv.url + "/api/v1/query", params={"query": q, "time": "%.3f" % t_s}, timeout=30)
    if r.status_code != 200:
        return None
    res = r.json()["data"]["result"]
    return res


# ====================================================== 1: bytes per sample

def wait_compacted(srv, min_wait=75, stable=30, timeout=420):
    """Wait until the block count dropped and then did not change for `stable` s."""
    t0 = time.monotonic()
    first = len(block_dirs(srv.datadir))
    last, since = first, time.monotonic()
    while time.monotonic() - t0 < timeout:
        time.sleep(3)
        n = len(block_dirs(srv.datadir))
        tmp = any(x.endswith(".tmp") or x.endswith(".tmp-for-creation") or x.endswith(".tmp-for-deletion")
                  for x in os.listdir(srv.datadir))
        if n != last or tmp:
            last, since = n, time.monotonic()
        if time.monotonic() - t0 >= min_wait and n < first and time.monotonic() - since >= stable:
            return first, n, time.monotonic() - t0
        if n == first and time.monotonic() - t0 >= min_wait + 60:      # nothing to merge (too few blocks)
            break
    return first, last, time.monotonic() - t0


def vm_wait_stable(srv, stable=15, timeout=300):
    t0 = time.monotonic()
    last, since = None, time.monotonic()
    while time.monotonic() - t0 < timeout:
        time.sleep(2)
        cur = files_size(srv.datadir, lambda n: n in ("data", "indexdb"))
        if cur != last:
            last, since = cur, time.monotonic()
        elif time.monotonic() - since >= stable:
            break
    return time.monotonic() - t0


def run_size(args, work, results):
    n = args.hours * 3600 * 1000 // STEP_MS
    # T0 a multiple of 54 h (a compaction range: the block plan then does
    # not depend on the date), the data ending at least a day ago
    r54 = 54 * 3600 * 1000
    now = int(time.time() * 1000)
    t0 = (now - 86400000 - args.hours * 3600 * 1000) // r54 * r54
    om = os.path.join(work, "backfill.om")
    pt = os.path.join(work, "backfill.prom")
    log("size: generating %d targets x 1000 series x %d h (%d samples/series), T0=%s" % (
        args.targets, args.hours, n, datetime.datetime.utcfromtimestamp(t0 / 1000).isoformat() + "Z"))
    tg = time.monotonic()
    samples, times = write_backfill(args, t0, n, om, pt)
    log("size: %d samples, OpenMetrics file %.0f MB, text file %.0f MB, %.0f s" % (
        samples, os.path.getsize(om) / 1e6, os.path.getsize(pt) / 1e6, time.monotonic() - tg))
    end_ms = max(ts[-1] for ts in times)
    start_ms = min(ts[0] for ts in times)
    R = {"samples": samples, "series": args.targets * 1000, "hours": args.hours}

    dirs = {k: os.path.join(work, "size-" + k) for k in ("bongsu", "prometheus", "vm")}
    for d in dirs.values():
        os.makedirs(d)
    # backfill: bongsutool, promtool (one at a time: the machine is shared)
    for k, cmd in (("bongsu", [args.bongsutool, "tsdb", "create-blocks-from", "openmetrics", om, dirs["bongsu"]]),
                   ("prometheus", [args.promtool, "tsdb", "create-blocks-from", "openmetrics", om,
                                   dirs["prometheus"]])):
        tb = time.monotonic()
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=_child_setup)
        el = time.monotonic() - tb
        if p.returncode != 0:
            raise RuntimeError("%s failed: %s" % (" ".join(cmd), p.stdout.decode()[-2000:]))
        R.setdefault("backfill_s", {})[k] = el
        log("size: %s backfill %.1f s, %d blocks" % (k, el, len(block_dirs(dirs[k]))))
    os.unlink(om)

    ret = ["--storage.tsdb.retention.time=3650d"]
    servers = {
        "bongsu": Server("bongsu", args.bongsu, work, dirs["bongsu"], ret),
        "prometheus": Server("prometheus", args.prometheus, work, dirs["prometheus"], ret),
        "vm": Server("vm", args.vm, work, dirs["vm"]),
    }
    try:
        for s in servers.values():
            s.start()
        for s in servers.values():
            s.wait_ready()
        # VM import
        tb = time.monotonic()
        vm = servers["vm"]
        with open(pt, "rb") as f:
            while True:
                buf = f.read(64 << 20)
                if not buf:
                    break
                rest = f.readline()
                r = requests.post(vm.url + "/api/v1/import/prometheus", data=buf + rest, timeout=600)
                r.raise_for_status()
        R.setdefault("backfill_s", {})["vm"] = time.monotonic() - tb
        log("size: vm import %.1f s" % (time.monotonic() - tb))
        os.unlink(pt)
        months = sorted({time.strftime("%Y_%m", time.gmtime(x / 1000)) for x in (start_ms, end_ms)})
        time.sleep(3)
        for m in months:
            requests.get(vm.url + "/internal/force_merge", params={"partition_prefix": m}, timeout=600)
        # wait for all three (the compactors run concurrently)
        res = {}
        th = [threading.Thread(target=lambda k=k: res.__setitem__(k, wait_compacted(servers[k])))
              for k in ("bongsu", "prometheus")]
        th.append(threading.Thread(target=lambda: res.__setitem__("vm", vm_wait_stable(vm))))
        for t in th:
            t.start()
        for t in th:
            t.join()
        for k in ("bongsu", "prometheus"):
            log("size: %s blocks %d -> %d after %.0f s" % ((k,) + res[k]))
            R.setdefault("blocks", {})[k] = res[k][:2]
            if res[k][1] >= res[k][0]:
                log("size: WARNING %s did not compact" % k)
        # lossless check
        check = [(t, s) for t in range(args.targets) for s in range(0, 1000, 17)]
        for k, srv in servers.items():
            bad = npts = 0
            first_bad = None
            for t, s in check:
                ls = SERIES[s][2] + target_labels(t)
                exp = list(zip(times[t], series_values(args.seed, t, s, n)))
                got = read_raw(srv, ls, start_ms, end_ms)
                npts += len(exp)
                e = [(a, bits(b)) for a, b in exp]
                g = [(a, bits(b)) for a, b in got]
                if e != g:
                    bad += 1
                    if first_bad is None:
                        diff = next((i for i in range(min(len(e), len(g))) if e[i] != g[i]), min(len(e), len(g)))
                        first_bad = "%s: %d samples expected, %d read, first difference at %d: %s vs %s" % (
                            selector(ls), len(e), len(g), diff, exp[diff] if diff < len(exp) else None,
                            got[diff] if diff < len(got) else None)
            R.setdefault("lossless", {})[k] = {"series": len(check), "samples": npts, "mismatched_series": bad,
                                                "first": first_bad}
            log("size: %s lossless check: %d series, %d samples, %d series differ%s" % (
                k, len(check), npts, bad, "" if not first_bad else " (" + first_bad + ")"))
    finally:
        for s in servers.values():
            s.stop(signal.SIGINT)
    # sizes after clean stop, and the block listings
    for k in ("bongsu", "prometheus"):
        app, du, nf = files_size(dirs[k], is_block)
        tool = args.bongsutool if k == "bongsu" else args.promtool
        lst = subprocess.run([tool, "tsdb", "list", dirs[k]], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        R.setdefault("listing", {})[k] = lst.stdout.decode()
        R.setdefault("bytes", {})[k] = {"apparent": app, "du": du, "files": nf,
                                        "excluded": files_size(dirs[k], lambda n: not is_block(n))[0]}
    app, du, nf = files_size(dirs["vm"], lambda n: n in ("data", "indexdb"))
    R.setdefault("bytes", {})["vm"] = {"apparent": app, "du": du, "files": nf,
                                       "excluded": files_size(dirs["vm"], lambda n: n not in ("data", "indexdb"))[0]}
    for k in ("bongsu", "prometheus"):
        log("size: %s tsdb list:\n%s" % (k, R["listing"][k]))
    for k in ("bongsu", "prometheus", "vm"):
        b = R["bytes"][k]
        log("size: %-10s %12d bytes (du %d) in %d files, %.3f bytes/sample; not counted: %d bytes" % (
            k, b["apparent"], b["du"], b["files"], b["apparent"] / samples, b["excluded"]))
    results["size"] = R


# ================================================= 2+3: ingestion, restart

def build_stream(args, path):
    """Encode RW_ROUNDS x (RW_SERIES/1000) requests into `path`; returns
    (offsets, first ts, last ts of target 0, last value of the probe series)."""
    ntargets = args.rw_series // 1000
    now = int(time.time() * 1000)
    t0 = now - STEP_MS * args.rw_rounds
    pre = []          # per target: list of static prefixes, one per series
    for t in range(ntargets):
        parts = []
        for s in range(1000):
            lab = rw_encode.encode_labels(SERIES[s][2] + target_labels(t))
            sample_len = 1 + 8 + 1 + len(rw_encode._uvarint(now))        # fixed: ts varint is 6 bytes
            ts_body = lab + b"\x12" + rw_encode._uvarint(sample_len)
            ts_len = len(ts_body) + sample_len
            parts.append(b"\x0a" + rw_encode._uvarint(ts_len) + ts_body + b"\x09")
        pre.append(parts)
    rngs = [random.Random("rw/%d/%d" % (args.seed, t)) for t in range(ntargets)]
    gens = [[Gen(SERIES[s][0], SERIES[s][1], rngs[t]) for s in range(1000)] for t in range(ntargets)]
    times = [scrape_times(args.seed, t, t0, args.rw_rounds, args.jitter_ms) for t in range(ntargets)]
    offsets = []
    probe_last = None
    pack = struct.Struct("<d").pack
    with open(path, "wb") as f:
        for i in range(args.rw_rounds):
            for t in range(ntargets):
                r = rngs[t]
                tsb = b"\x10" + rw_encode._uvarint(times[t][i])
                out = []
                for p, g in zip(pre[t], gens[t]):
                    out.append(p)
                    out.append(pack(g.step(r)))
                    out.append(tsb)
                body = b"".join(out)
                if t == 0:
                    probe_last = struct.unpack("<d", body[len(pre[0][0]):len(pre[0][0]) + 8])[0]
                blk = rw_encode.snappy_literal_block(body)
                offsets.append((f.tell(), len(blk)))
                f.write(blk)
    return offsets, times, probe_last


def send_stream(srv, path, offsets, per_round, conns=2, on_round=None):
    """Send requests in order, `conns` in flight; calls on_round(i) after
    round i has been acknowledged completely."""
    sessions = [requests.Session() for _ in range(conns)]
    errors = []
    fd = os.open(path, os.O_RDONLY)

    def post(j):
        off, ln = offsets[j]
        body = os.pread(fd, ln, off)
        s = sessions[j % conns]
        url = srv.url + "/api/v1/write"
        r = s.post(url, data=body, headers=rw_encode.HEADERS, timeout=120)
        if r.status_code // 100 != 2:
            errors.append((j, r.status_code, r.text[:200]))

    try:
        with concurrent.futures.ThreadPoolExecutor(conns) as ex:
            for i in range(0, len(offsets), per_round):
                list(ex.map(post, range(i, min(i + per_round, len(offsets)))))
                if on_round:
                    on_round(i // per_round)
    finally:
        os.close(fd)
    return errors


def run_ingest(args, work, results):
    path = os.path.join(work, "stream.bin")
    ntargets = args.rw_series // 1000
    log("ingest: encoding %d series x %d rounds" % (args.rw_series, args.rw_rounds))
    tg = time.monotonic()
    offsets, times, probe_last = build_stream(args, path)
    log("ingest: %d requests, %.0f MB, %.0f s" % (len(offsets), os.path.getsize(path) / 1e6, time.monotonic() - tg))
    samples = args.rw_series * args.rw_rounds
    probe = SERIES[0][2] + target_labels(0)
    last_t0 = times[0][-1]
    R = {"series": args.rw_series, "rounds": args.rw_rounds, "samples": samples}
    for k in args.systems:
        d = os.path.join(work, "ingest-" + k)
        os.makedirs(d)
        if k == "vm":
            srv = Server("vm", args.vm, work, d)
        else:
            srv = Server(k, args.bongsu if k == "bongsu" else args.prometheus, work, d,
                         ["--web.enable-remote-write-receiver"])
        try:
            srv.start()
            srv.wait_ready()
            time.sleep(2)
            rss_idle = srv.rss()
            c = {}

            def on_round(i, srv=srv, c=c):
                if i == 0:
                    c["after1"] = srv.cpu()

            c0 = srv.cpu()
            w0 = time.monotonic()
            errors = send_stream(srv, path, offsets, ntargets, on_round=on_round)
            wall = time.monotonic() - w0
            time.sleep(2)
            c1 = srv.cpu()
            rss = srv.rss()
            m = {"cpu_s": c1 - c0, "cpu_s_rounds2": c1 - c["after1"], "wall_s": wall,
                 "rss": rss, "rss_idle": rss_idle, "errors": len(errors)}
            m["cpu_per_M"] = m["cpu_s"] / (samples / 1e6)
            m["cpu_per_M_rounds2"] = (m["cpu_s_rounds2"] / (args.rw_series * (args.rw_rounds - 1) / 1e6)
                                      if args.rw_rounds > 1 else float("nan"))
            m["rss_per_series"] = rss / args.rw_series
            m["rss_delta_per_series"] = (rss - rss_idle) / args.rw_series
            log("ingest: %-10s %.1f s wall, CPU %.1f s = %.2f s/M samples (%.2f without round 1), "
                "RSS %.0f MB = %.0f B/series (%.0f B above idle), %d failed requests%s" % (
                    k, wall, m["cpu_s"], m["cpu_per_M"], m["cpu_per_M_rounds2"], rss / 2**20,
                    m["rss_per_series"], m["rss_delta_per_series"], len(errors),
                    "" if not errors else " first: %r" % (errors[0],)))
            # 3: restart
            time.sleep(args.settle_s)
            srv.stop(signal.SIGKILL)
            srv.start()
            t_ready = srv.wait_ready(timeout=600)
            q = selector(probe)
            t_query = None
            got = None
            while time.monotonic() - srv.t_start < t_ready + 120:
                try:
                    res = instant(srv, q, last_t0 / 1000)
                    if res:
                        got = float(res[0]["value"][1])
                        t_query = time.monotonic() - srv.t_start
                        break
                except requests.RequestException:
                    pass
                time.sleep(0.01)
            cnt = instant(srv, "count_over_time(%s[%ds])" % (q, (last_t0 - times[0][0]) // 1000 + 1), last_t0 / 1000)
            cnt = int(float(cnt[0]["value"][1])) if cnt else 0
            m.update({"restart_ready_s": t_ready, "restart_query_s": t_query,
                      "restart_last_ok": got is not None and bits(got) == bits(probe_last),
                      "restart_count": cnt, "disk_after": files_size(d, lambda n: True)[0]})
            log("restart: %-10s ready %.2f s, query answers %.2f s, last value %s, %d/%d samples of the probe" % (
                k, t_ready, t_query or -1, "ok" if m["restart_last_ok"] else "WRONG (%r vs %r)" % (got, probe_last),
                cnt, args.rw_rounds))
            R[k] = m
        finally:
            srv.stop(signal.SIGTERM)
            shutil.rmtree(d, ignore_errors=True)
    os.unlink(path)
    results["ingest"] = R


# =================================================================== report

def merged_blocks(listing):
    """(bytes, samples) of the blocks longer than 2 h in a `tsdb list` output
    (same columns for promtool and bongsutool)."""
    size = samples = 0
    for line in listing.splitlines()[1:]:
        f = line.split()
        if len(f) < 8 or not is_block(f[0]):
            continue
        if int(f[2]) - int(f[1]) > 2 * 3600 * 1000:
            samples += int(f[4])
            size += int(f[7])
    return size, samples


def ratio(a, b):
    return a / b if b else float("nan")


def report(args, results):
    lines = []
    S = results.get("size")
    if S:
        lines.append("Bytes per sample after compaction: %d series x %d h, %d samples, jitter +-%d ms" % (
            S["series"], S["hours"], S["samples"], args.jitter_ms))
        lines.append("")
        lines.append("| system | bytes | bytes/sample | merged blocks only, bytes/sample | blocks before -> after "
                     "| lossless (series differing) |")
        lines.append("|---|--:|--:|--:|---|---|")
        for k in ("bongsu", "prometheus", "vm"):
            b = S["bytes"][k]
            blk = S.get("blocks", {}).get(k)
            ll = S.get("lossless", {}).get(k, {})
            mb = merged_blocks(S.get("listing", {}).get(k, ""))
            lines.append("| %s | %d | %.3f | %s | %s | %s |" % (
                k, b["apparent"], b["apparent"] / S["samples"],
                "%.3f" % (mb[0] / mb[1]) if mb[1] else "-", "%d -> %d" % tuple(blk) if blk else "-",
                "%d/%d" % (ll.get("mismatched_series", -1), ll.get("series", 0))))
        bb = S["bytes"]["bongsu"]["apparent"]
        lines.append("")
        lines.append("bongsu/prometheus %.2f, bongsu/vm %.2f" % (
            ratio(bb, S["bytes"]["prometheus"]["apparent"]), ratio(bb, S["bytes"]["vm"]["apparent"])))
        lines.append("")
    I = results.get("ingest")
    if I:
        lines.append("Ingestion and restart: %d series x %d rounds = %d samples over remote write" % (
            I["series"], I["rounds"], I["samples"]))
        lines.append("")
        lines.append("| system | CPU s/M samples | same, rounds 2.. | RSS B/series | RSS above idle B/series "
                     "| send wall s | ready after kill -9 s | query answers s | last sample |")
        lines.append("|---|--:|--:|--:|--:|--:|--:|--:|---|")
        for k in args.systems:
            m = I.get(k)
            if not m:
                continue
            lines.append("| %s | %.2f | %.2f | %.0f | %.0f | %.1f | %.2f | %.2f | %s |" % (
                k, m["cpu_per_M"], m["cpu_per_M_rounds2"], m["rss_per_series"], m["rss_delta_per_series"],
                m["wall_s"], m["restart_ready_s"], m["restart_query_s"] or -1,
                "ok %d/%d" % (m["restart_count"], I["rounds"]) if m["restart_last_ok"] else
                "MISSING %d/%d" % (m["restart_count"], I["rounds"])))
        if "bongsu" in I:
            b = I["bongsu"]
            lines.append("")
            for o in ("prometheus", "vm"):
                if o in I:
                    m = I[o]
                    lines.append("bongsu/%s: CPU %.2f (rounds 2.. %.2f), RSS %.2f, ready %.2f, query %.2f" % (
                        o, ratio(b["cpu_per_M"], m["cpu_per_M"]),
                        ratio(b["cpu_per_M_rounds2"], m["cpu_per_M_rounds2"]),
                        ratio(b["rss"], m["rss"]), ratio(b["restart_ready_s"], m["restart_ready_s"]),
                        ratio(b["restart_query_s"] or 0, m["restart_query_s"] or 0)))
    print("\n".join(lines))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--targets", type=int, default=1, help="backfill targets of 1000 series (default 1)")
    ap.add_argument("--hours", type=int, default=24, help="backfill span in hours (default 24)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jitter-ms", type=int, default=5)
    ap.add_argument("--rw-series", type=int, default=1000000, help="multiple of 1000 (default 1000000)")
    ap.add_argument("--rw-rounds", type=int, default=6, help="15 s rounds (default 6)")
    ap.add_argument("--settle-s", type=float, default=15,
                    help="wait between the last acknowledged write and the kill -9 (default 15)")
    ap.add_argument("--only", default="size,ingest")
    ap.add_argument("--systems", default="bongsu,prometheus,vm")
    ap.add_argument("--bongsu", default=os.environ.get("BONGSU_BIN", os.path.join(ROOT, "build/release/bongsu")))
    ap.add_argument("--bongsutool", default=os.path.join(ROOT, "build/release/bongsutool"))
    ap.add_argument("--prometheus", default="/usr/bin/prometheus")
    ap.add_argument("--promtool", default="/usr/bin/promtool")
    ap.add_argument("--vm", default="/usr/bin/victoria-metrics")
    ap.add_argument("--json", help="also write the results as JSON here")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    args.systems = args.systems.split(",")
    only = set(args.only.split(","))
    work = tempfile.mkdtemp(prefix="bongsu-storage-bench.")
    log("work directory", work, "| command:", " ".join(sys.argv))
    results = {"date": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()), "argv": sys.argv}
    t0 = time.monotonic()
    try:
        if "size" in only:
            run_size(args, work, results)
        if "ingest" in only:
            run_ingest(args, work, results)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    log("total %.0f s" % (time.monotonic() - t0))
    report(args, results)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=str)


if __name__ == "__main__":
    main()
