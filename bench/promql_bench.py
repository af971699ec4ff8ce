#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""PromQL latency: bongsu against Prometheus on identical data (issue 3,
item 7).  Figures, never pass/fail.

Starts both servers empty (no scrape jobs, remote-write receiver on, temp
storage, free ports outside the anchor ranges), loads the same seeded dataset
into both over remote write (default 10 000 series x 1 h at 15 s = 2.4 M
samples), then runs a fixed query set - each query as an instant query at the
end of the data and as a 1 h range query - RUNS times per server, the two
servers alternating, and prints per query the median latency of both, the
ratio bongsu/prometheus and the overall median ratio.  Latency is the wall
time of the HTTP request seen by the client (JSON encoding included, the
same for both).  It also prints each server's CPU time per query (utime +
stime read from /proc/<pid>/stat around each request), which a loaded
machine disturbs less than latency.

    /usr/bin/python3 bench/promql_bench.py                       # build/release/bongsu
    /usr/bin/python3 bench/promql_bench.py --sut build/h-wire/bongsu --runs 9
    /usr/bin/python3 bench/promql_bench.py --sut /usr/bin/prometheus   # harness check: ratio ~1

The issue's target is an overall median ratio <= 0.5.
"""

import argparse
import os
import random
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "e2e"))
import rw_encode  # noqa: E402

RW_FLAG = "--web.enable-remote-write-receiver"
RESERVED = [(18086, 18428), (19090, 19295), (9623, 9624), (9700, 9999)]
CONFIG = "global:\n  scrape_interval: 15s\n  evaluation_interval: 1m\n"
SCRAPE_MS = 15_000
LE = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf"]

QUERIES = [
    ("regex selector", 'bench_requests_total{job=~"job-[1-3]",instance=~"host-0.*",code!~"5.."}'),
    ("count regex", 'count(bench_requests_total{method=~"GET|PUT",instance!~".*7"})'),
    ("rate 4k series", "rate(bench_requests_total[5m])"),
    ("sum by rate", "sum by (job, code) (rate(bench_requests_total[5m]))"),
    ("topk", "topk(10, rate(bench_requests_total[5m]))"),
    ("histogram_quantile",
     "histogram_quantile(0.99, sum by (job, le) (rate(bench_latency_seconds_bucket[5m])))"),
    ("avg latency", "sum by (job) (rate(bench_latency_seconds_sum[5m])) / "
                    "sum by (job) (rate(bench_latency_seconds_count[5m]))"),
    ("subquery", "max_over_time(sum by (job) (rate(bench_requests_total[1m]))[30m:1m])"),
]


# --------------------------------------------------------------------------
# data


def _ts_list(rng, start_ms, n):
    out = []
    for i in range(n):
        t = start_ms + i * SCRAPE_MS + 1234 + rng.randint(-300, 300)
        if t % 1000 in (0, 537):
            t += 1
        out.append(t)
    return out


def make_series(seed, n_series, start_ms, n_samples):
    """Yields (labels, timestamps, values).  About 40% request counters
    (job x instance x method x code), 60% classic histograms (10 buckets +
    _sum + _count per job x instance)."""
    rng = random.Random(seed)
    n_counter = int(n_series * 0.4) // 4 * 4
    n_hist = (n_series - n_counter) // 12
    n_counter = n_series - n_hist * 12
    jobs = 10
    made = 0
    i = 0
    while made < n_counter:
        job, inst = f"job-{i % jobs}", f"host-{i // jobs:03d}"
        ts = _ts_list(rng, start_ms, n_samples)
        for method in ("GET", "POST"):
            for code in ("200", "500"):
                if made >= n_counter:
                    break
                v, vals = float(rng.randint(1000, 100000)), []
                hi = 40 if code == "200" else 3
                for _ in range(n_samples):
                    v += rng.randint(0, hi)
                    vals.append(v)
                yield ({"__name__": "bench_requests_total", "job": job, "instance": inst,
                        "method": method, "code": code}, ts, vals)
                made += 1
        i += 1
    for h in range(n_hist):
        job, inst = f"job-{h % jobs}", f"host-{h // jobs:03d}"
        ts = _ts_list(rng, start_ms, n_samples)
        counts = [float(rng.randint(1000, 2000) * (k + 1)) for k in range(len(LE))]
        total = sum(counts) * 0.1
        rows_b, rows_s = [], []
        for _ in range(n_samples):
            obs = rng.randint(0, 30)
            first = rng.randint(0, len(LE) - 1)
            for k in range(first, len(LE)):
                counts[k] += obs
            total += obs * float(LE[first] if LE[first] != "+Inf" else 5)
            rows_b.append(list(counts))
            rows_s.append(round(total, 3))
        for k, le in enumerate(LE):
            yield ({"__name__": "bench_latency_seconds_bucket", "job": job, "instance": inst,
                    "le": le}, ts, [r[k] for r in rows_b])
        yield ({"__name__": "bench_latency_seconds_sum", "job": job, "instance": inst},
               ts, rows_s)
        yield ({"__name__": "bench_latency_seconds_count", "job": job, "instance": inst},
               ts, [r[-1] for r in rows_b])


def build_bodies(seed, n_series, start_ms, minutes, batch_minutes=5):
    """Remote-write bodies in time order: one request per batch_minutes
    window holding every series' samples of that window."""
    n = minutes * 60_000 // SCRAPE_MS
    per = batch_minutes * 60_000 // SCRAPE_MS
    nb = (n + per - 1) // per
    parts = [bytearray() for _ in range(nb)]
    pack = struct.Struct("<d").pack
    uv = rw_encode._uvarint
    lenf = rw_encode._len_field
    total = 0
    for labels, ts, vals in make_series(seed, n_series, start_ms, n):
        lab = rw_encode.encode_labels(labels)
        for b in range(nb):
            body = bytearray(lab)
            for t, v in zip(ts[b * per:(b + 1) * per], vals[b * per:(b + 1) * per]):
                smp = b"\x09" + pack(v) + b"\x10" + uv(t)
                body += b"\x12" + uv(len(smp)) + smp
                total += 1
            parts[b] += lenf(1, bytes(body))
    return [rw_encode.snappy_literal_block(bytes(p)) for p in parts], total


# --------------------------------------------------------------------------
# servers


def free_port():
    for _ in range(50):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        p = s.getsockname()[1]
        s.close()
        if not any(lo <= p <= hi for lo, hi in RESERVED):
            return p
    raise RuntimeError("no free port")


class Server:
    def __init__(self, name, binary, workdir):
        self.name, self.binary = name, binary
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        wd = Path(workdir) / name
        wd.mkdir(parents=True)
        (wd / "config.yml").write_text(CONFIG)
        self.log = open(wd / "stderr.log", "wb")
        self.proc = subprocess.Popen(
            [binary, f"--config.file={wd / 'config.yml'}", f"--storage.tsdb.path={wd / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", RW_FLAG],
            stdout=subprocess.DEVNULL, stderr=self.log, cwd=wd)
        self.s = requests.Session()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"{binary} exited with {self.proc.returncode}; see {wd}/stderr.log")
            try:
                if self.s.get(self.url + "/-/ready", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise SystemExit(f"{binary} not ready within 30 s")

    def push(self, body):
        r = self.s.post(self.url + "/api/v1/write", data=body, headers=rw_encode.HEADERS,
                        timeout=300)
        if not 200 <= r.status_code < 300:
            raise SystemExit(f"{self.name}: remote write -> HTTP {r.status_code}: {r.text[:300]}")

    def query(self, params, path):
        t0 = time.perf_counter()
        r = self.s.post(f"{self.url}/api/v1/{path}", data=params, timeout=300)
        dt = time.perf_counter() - t0
        body = r.json()
        if body.get("status") != "success":
            raise SystemExit(f"{self.name}: {params['query']} -> {r.status_code} {r.text[:300]}")
        return dt, body["data"]

    def cpu_s(self):
        """utime + stime of the server process (all threads), seconds."""
        try:
            with open(f"/proc/{self.proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return float("nan")

    def rss_mb(self):
        try:
            for line in open(f"/proc/{self.proc.pid}/status"):
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return float("nan")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def supports_rw(binary):
    try:
        out = subprocess.run([binary, "--help"], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, timeout=20).stdout
    except OSError:
        return False
    return RW_FLAG.lstrip("-").encode() in out


def _shape(data):
    res = data["result"]
    if data["resultType"] == "matrix":
        return len(res), sum(len(x["values"]) for x in res)
    if data["resultType"] == "vector":
        return len(res), len(res)
    return 1, 1


# --------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sut", default=os.environ.get("BONGSU_BIN",
                                                    str(REPO / "build" / "release" / "bongsu")),
                    help="binary under test (default $BONGSU_BIN or build/release/bongsu)")
    ap.add_argument("--prometheus", default="/usr/bin/prometheus")
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--minutes", type=int, default=60)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--step", type=int, default=30, help="range query step in seconds")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--prometheus-only", action="store_true",
                    help="measure Prometheus alone (e.g. while the SUT cannot ingest)")
    args = ap.parse_args()

    with_sut = not args.prometheus_only
    if with_sut and not supports_rw(args.sut):
        print(f"note: {args.sut} has no {RW_FLAG}; measuring Prometheus only")
        with_sut = False

    now_ms = int(time.time() * 1000)
    start_ms = (now_ms - (args.minutes + 3) * 60_000) // SCRAPE_MS * SCRAPE_MS
    t0 = time.monotonic()
    bodies, n_samples = build_bodies(args.seed, args.series, start_ms, args.minutes)
    print(f"dataset: {args.series} series, {n_samples} samples, {len(bodies)} requests, "
          f"{sum(map(len, bodies)) / 1e6:.1f} MB, encoded in {time.monotonic() - t0:.1f}s")

    tmp = tempfile.mkdtemp(prefix="promql_bench.")
    servers = []
    try:
        servers.append(Server("prometheus", args.prometheus, tmp))
        if with_sut:
            servers.append(Server("sut", args.sut, tmp))
        for s in servers:
            t0 = time.monotonic()
            for b in bodies:
                s.push(b)
            print(f"loaded {s.name} ({s.binary}) in {time.monotonic() - t0:.1f}s, "
                  f"RSS {s.rss_mb():.0f} MB")
        end_s = start_ms / 1000 + args.minutes * 60 + 0.537
        start_s = start_ms / 1000 + 0.537 + 5 * 60
        cases = []
        for name, q in QUERIES:
            cases.append((f"{name} [instant]", "query", {"query": q, "time": f"{end_s:.3f}"}))
            cases.append((f"{name} [range]", "query_range",
                          {"query": q, "start": f"{start_s:.3f}", "end": f"{end_s:.3f}",
                           "step": str(args.step)}))
        # warm-up + sanity: both must return the same number of series/points
        for label, path, params in cases:
            shapes = [s.query(params, path)[1] for s in servers]
            shapes = [_shape(d) for d in shapes]
            if len(set(shapes)) > 1:
                print(f"warning: {label}: result shapes differ (series, points): {shapes}")
        times = {(c[0], s.name): [] for c in cases for s in servers}
        cpu = {(c[0], s.name): 0.0 for c in cases for s in servers}
        for run in range(args.runs):
            for label, path, params in cases:
                order = servers if run % 2 == 0 else servers[::-1]
                for s in order:
                    c0 = s.cpu_s()
                    times[(label, s.name)].append(s.query(params, path)[0])
                    cpu[(label, s.name)] += s.cpu_s() - c0

        print(f"\nmedian latency over {args.runs} runs (ms)")
        hdr = f"{'query':<32} {'prometheus':>11}"
        if with_sut:
            hdr += f" {'bongsu':>11} {'ratio':>7}"
        print(hdr)
        ratios, pm_all, sm_all = [], [], []
        for label, _, _ in cases:
            pm = statistics.median(times[(label, "prometheus")]) * 1000
            pm_all.append(pm)
            line = f"{label:<32} {pm:>11.2f}"
            if with_sut:
                sm = statistics.median(times[(label, "sut")]) * 1000
                sm_all.append(sm)
                ratios.append(sm / pm)
                line += f" {sm:>11.2f} {sm / pm:>7.2f}"
            print(line)
        print(f"\nmedian of per-query medians: prometheus {statistics.median(pm_all):.2f} ms"
              + (f", bongsu {statistics.median(sm_all):.2f} ms" if with_sut else ""))
        if with_sut:
            print(f"overall median ratio bongsu/prometheus: {statistics.median(ratios):.2f} "
                  f"(target <= 0.5); total time ratio {sum(sm_all) / sum(pm_all):.2f}")
        print(f"\nserver CPU time (utime + stime, /proc/<pid>/stat) per query, mean of "
              f"{args.runs} runs (ms; 10 ms ticks, so small queries are coarse)")
        print(f"{'query':<32} {'prometheus':>11}" + (f" {'bongsu':>11} {'ratio':>7}" if with_sut
                                                        else ""))
        cp_all, cs_all = [], []
        for label, _, _ in cases:
            pc = cpu[(label, "prometheus")] / args.runs * 1000
            cp_all.append(pc)
            line = f"{label:<32} {pc:>11.1f}"
            if with_sut:
                sc = cpu[(label, "sut")] / args.runs * 1000
                cs_all.append(sc)
                line += f" {sc:>11.1f} {sc / pc if pc else float('nan'):>7.2f}"
            print(line)
        if with_sut:
            print(f"total CPU ratio bongsu/prometheus: {sum(cs_all) / sum(cp_all):.2f}")
        for s in servers:
            print(f"RSS after queries: {s.name} {s.rss_mb():.0f} MB")
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
