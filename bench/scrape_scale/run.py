#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Scrape scale benchmark: bongsu against Prometheus on many simulated targets.

Builds and starts targetgen (one process serving N node_exporter-like targets
on loopback addresses 127.77.x.y), then runs each server in turn, with the same
configuration (one job, N static targets, the same scrape interval), for a
warm-up followed by a measured window of the same length. For each server it
reports, over the measured window:

  - CPU seconds (utime+stime of the process from /proc/<pid>/stat) and the
    samples it appended (its own *_tsdb_head_samples_appended_total), so CPU
    seconds per million samples;
  - VmRSS at the end of the window, VmHWM, head series, so RSS bytes per
    active series;
  - missed scrapes, two ways: per target, count_over_time(up[window]) from
    the server against floor(window / interval), and the scrape requests that
    targetgen itself saw (count in the window and the largest gap between two
    requests to one target); failed scrapes (up 0); max and mean of
    scrape_duration_seconds.

Then prints one table with both servers and the ratio bongsu / Prometheus.
Everything it starts runs with a parent-death signal and is stopped at the
end (also on Ctrl-C). Storage goes to a temporary directory, removed at the
end.

    /usr/bin/python3 bench/scrape_scale/run.py --mode quick   # 200 targets, ~3 min
    /usr/bin/python3 bench/scrape_scale/run.py --mode full    # 2000 targets, ~9 min
"""
import argparse
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CLK_TCK = os.sysconf("SC_CLK_TCK")

MODES = {
    # targets, series per target, warm-up s, measured s
    "quick": dict(targets=200, series=500, warmup=30, duration=60),
    "full": dict(targets=2000, series=500, warmup=60, duration=180),
}

_libc = ctypes.CDLL(None, use_errno=True)


def _child_setup():
    # PR_SET_PDEATHSIG = 1: the child gets SIGTERM if this script dies.
    _libc.prctl(1, signal.SIGTERM, 0, 0, 0)
    os.setpgrp()


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def port_free(host, port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def http_get(url, timeout=30):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def proc_cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def metric_sum(text, name):
    """Sum of every sample of metric `name` in an exposition text."""
    total, seen = 0.0, False
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        rest = line[len(name):]
        if rest[:1] not in ("{", " "):
            continue
        total += float(line.rsplit(None, 1)[1])
        seen = True
    return total if seen else None


class Server:
    def __init__(self, kind, binary, port, workdir):
        self.kind = kind
        self.binary = binary
        self.port = port
        self.workdir = workdir
        self.proc = None
        self.prefix = "bongsu" if kind == "bongsu" else "prometheus"

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self, config):
        data = os.path.join(self.workdir, f"data-{self.kind}")
        os.makedirs(data, exist_ok=True)
        args = [self.binary, f"--config.file={config}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                f"--storage.tsdb.path={data}"]
        self.logpath = os.path.join(self.workdir, f"{self.kind}.log")
        self.logf = open(self.logpath, "w")
        self.proc = subprocess.Popen(args, stdout=self.logf, stderr=subprocess.STDOUT,
                                     preexec_fn=_child_setup, cwd=self.workdir)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited at start; see {self.logpath}")
            try:
                http_get(self.base + "/-/ready", timeout=2)
                return
            except Exception:
                time.sleep(0.2)
        raise RuntimeError(f"{self.kind} not ready within 60 s")

    def stop(self):
        if not self.proc or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.logf.close()

    def check_alive(self):
        if self.proc.poll() is not None:
            with open(self.logpath) as f:
                tail = f.read()[-2000:]
            raise RuntimeError(f"{self.kind} exited with status {self.proc.returncode}; "
                               f"end of {self.logpath}:\n{tail}")

    def counters(self):
        self.check_alive()
        text = http_get(self.base + "/metrics")
        return {
            "appended": metric_sum(text, f"{self.prefix}_tsdb_head_samples_appended_total"),
            "series": metric_sum(text, f"{self.prefix}_tsdb_head_series"),
        }

    def query(self, expr, at):
        q = urllib.parse.urlencode({"query": expr, "time": f"{at:.3f}"})
        body = json.loads(http_get(f"{self.base}/api/v1/query?{q}", timeout=120))
        if body.get("status") != "success":
            raise RuntimeError(f"{self.kind}: query {expr!r} failed: {body}")
        return body["data"]["result"]


def gen_stats(ctrl_port, since_ms=0):
    text = http_get(f"http://127.0.0.1:{ctrl_port}/stats?since={since_ms}")
    lines = text.splitlines()
    head = lines[0].split()
    info = {head[i]: int(head[i + 1]) for i in range(0, len(head), 2)}
    per = {}
    for line in lines[1:]:
        f = line.split()
        per[int(f[0])] = [int(x) for x in f[2:]]
    return info, per


def write_config(path, targets, port, net, interval):
    addrs = [f"127.{net}.{i // 250}.{i % 250 + 1}:{port}" for i in range(targets)]
    with open(path, "w") as f:
        f.write("global:\n")
        f.write(f"  scrape_interval: {interval}s\n")
        f.write(f"  scrape_timeout: {min(10, interval)}s\n")
        f.write("scrape_configs:\n  - job_name: node\n    static_configs:\n      - targets:\n")
        for a in addrs:
            f.write(f"          - '{a}'\n")


def measure(server, gen, args, config):
    interval = args.interval
    log(f"{server.kind}: starting ({server.binary})")
    server.start(config)
    pid = server.proc.pid
    log(f"{server.kind}: ready, warm-up {args.warmup} s")
    time.sleep(args.warmup)

    c0 = server.counters()
    cpu0 = proc_cpu(pid)
    gcpu0 = proc_cpu(gen.pid)
    ginfo0, _ = gen_stats(args.ctrl_port, 1 << 62)
    t0 = time.time()
    log(f"{server.kind}: measuring {args.duration} s "
        f"(head series {c0['series']:.0f} after warm-up)")
    time.sleep(args.duration)
    t1 = time.time()
    cpu1 = proc_cpu(pid)
    gcpu1 = proc_cpu(gen.pid)
    rss = proc_status(pid, "VmRSS")
    hwm = proc_status(pid, "VmHWM")
    c1 = server.counters()
    ginfo1, per = gen_stats(args.ctrl_port, int((t0 - interval) * 1000))
    server.check_alive()

    # The server's view of the window [t1 - D, t1].
    d = int(t1 - t0)
    expected = d // interval
    cnt = server.query(f"count_over_time(up[{d}s])", t1)
    ups = server.query(f"sum_over_time(up[{d}s])", t1)
    dur = server.query(f"max_over_time(scrape_duration_seconds[{d}s])", t1)
    avgdur = server.query(f"avg_over_time(scrape_duration_seconds[{d}s])", t1)
    up_now = server.query("up", t1)
    counts = [int(float(r["value"][1])) for r in cnt]
    missed_server = sum(max(0, expected - n) for n in counts) + \
        max(0, args.targets - len(counts)) * expected
    samples_up = sum(float(r["value"][1]) for r in ups)
    failed = sum(counts) - samples_up
    durs = [float(r["value"][1]) for r in dur]
    adurs = [float(r["value"][1]) for r in avgdur]
    up1 = sum(1 for r in up_now if r["value"][1] == "1")

    # targetgen's view: requests per target within [t0, t1] and gaps.
    lo, hi = t0 * 1000, t1 * 1000
    exp_gen = int((t1 - t0) // interval)
    missed_gen, max_gap, late = 0, 0.0, 0
    for i in range(args.targets):
        ts = per.get(i, [])
        inwin = [t for t in ts if lo <= t <= hi]
        missed_gen += max(0, exp_gen - len(inwin))
        gaps = [(b - a) / 1000 for a, b in zip(ts, ts[1:]) if b >= lo]
        if gaps:
            g = max(gaps)
            max_gap = max(max_gap, g)
            if g > 1.5 * interval:
                late += 1
    appended = c1["appended"] - c0["appended"]
    cpu = cpu1 - cpu0
    res = {
        "server": server.kind,
        "window_s": t1 - t0,
        "cpu_s": cpu,
        "cpu_pct": 100 * cpu / (t1 - t0),
        "samples": appended,
        "samples_per_s": appended / (t1 - t0),
        "cpu_s_per_1m": cpu / appended * 1e6 if appended else float("nan"),
        "rss": rss,
        "hwm": hwm,
        "series": c1["series"],
        "rss_per_series": rss / c1["series"] if c1["series"] else float("nan"),
        "up1": up1,
        "expected_per_target": expected,
        "missed_server": missed_server,
        "failed": failed,
        "missed_gen": missed_gen,
        "gen_requests": ginfo1["requests"] - ginfo0["requests"],
        "gen_expected": exp_gen * args.targets,
        "gen_accepts": ginfo1["accepts"] - ginfo0["accepts"],
        "max_gap_s": max_gap,
        "targets_gap_over_1.5x": late,
        "scrape_dur_max_s": max(durs) if durs else float("nan"),
        "scrape_dur_mean_s": sum(adurs) / len(adurs) if adurs else float("nan"),
        "gen_cpu_pct": 100 * (gcpu1 - gcpu0) / (t1 - t0),
    }
    log(f"{server.kind}: done; stopping")
    server.stop()
    shutil.rmtree(os.path.join(args.workdir, f"data-{server.kind}"), ignore_errors=True)
    return res


ROWS = [
    ("window (s)", "window_s", "{:.0f}", False),
    ("samples appended", "samples", "{:.0f}", False),
    ("samples/s", "samples_per_s", "{:.0f}", False),
    ("CPU seconds", "cpu_s", "{:.2f}", True),
    ("CPU % of one core", "cpu_pct", "{:.1f}", True),
    ("CPU s per 1M samples", "cpu_s_per_1m", "{:.3f}", True),
    ("head series", "series", "{:.0f}", False),
    ("RSS MiB (end)", "rss", "MiB", True),
    ("peak RSS MiB (VmHWM)", "hwm", "MiB", True),
    ("RSS bytes per series", "rss_per_series", "{:.0f}", True),
    ("targets up=1 at end", "up1", "{:d}", False),
    ("missed scrapes (server, count_over_time)", "missed_server", "{:d}", False),
    ("failed scrapes (up=0)", "failed", "{:.0f}", False),
    ("missed scrapes (generator)", "missed_gen", "{:d}", False),
    ("requests seen by generator", "gen_requests", "{:d}", False),
    ("  expected at least", "gen_expected", "{:d}", False),
    ("new TCP connections (generator)", "gen_accepts", "{:d}", False),
    ("max gap between scrapes (s)", "max_gap_s", "{:.1f}", False),
    ("targets with a gap > 1.5 interval", "targets_gap_over_1.5x", "{:d}", False),
    ("scrape_duration_seconds max", "scrape_dur_max_s", "{:.4f}", True),
    ("scrape_duration_seconds mean", "scrape_dur_mean_s", "{:.4f}", True),
    ("generator CPU % (same window)", "gen_cpu_pct", "{:.1f}", False),
]


def fmt(v, f):
    if v is None:
        return "-"
    if f == "MiB":
        return f"{v / 1048576:.1f}"
    try:
        return f.format(v)
    except (ValueError, TypeError):
        return str(v)


def print_table(results):
    names = [r["server"] for r in results]
    by = {r["server"]: r for r in results}
    both = "bongsu" in by and "prometheus" in by
    head = ["metric"] + names + (["bongsu/prometheus"] if both else [])
    rows = []
    for label, key, f, ratio in ROWS:
        row = [label] + [fmt(by[n][key], f) for n in names]
        if both:
            b, p = by["bongsu"][key], by["prometheus"][key]
            row.append(f"{b / p:.2f}" if ratio and p else "")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(head, widths)) + " |"
    print(line)
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + r[0].ljust(widths[0]) + " | " +
              " | ".join(c.rjust(w) for c, w in zip(r[1:], widths[1:])) + " |")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=sorted(MODES), default="quick")
    ap.add_argument("--targets", type=int, help="override the mode's target count")
    ap.add_argument("--series", type=int, help="series per target (default 500)")
    ap.add_argument("--warmup", type=int, help="seconds before the measured window")
    ap.add_argument("--duration", type=int, help="seconds of the measured window")
    ap.add_argument("--interval", type=int, default=15, help="scrape interval, s")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--servers", default="bongsu,prometheus",
                    help="comma-separated, run in this order")
    ap.add_argument("--bongsu", default=os.environ.get(
        "BONGSU_BIN", os.path.join(ROOT, "build/release/bongsu")))
    ap.add_argument("--prometheus", default="/usr/bin/prometheus")
    ap.add_argument("--gen-port", type=int, default=9531)
    ap.add_argument("--ctrl-port", type=int, default=9532)
    ap.add_argument("--bongsu-port", type=int, default=9533)
    ap.add_argument("--prometheus-port", type=int, default=9534)
    ap.add_argument("--net", type=int, default=77, help="targets on 127.<net>.x.y")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    m = MODES[args.mode]
    for k in ("targets", "series", "warmup", "duration"):
        if getattr(args, k) is None:
            setattr(args, k, m[k])
    if args.duration < 2 * args.interval:
        ap.error("--duration must be at least two intervals")

    ports = [("127.0.0.1", args.ctrl_port), ("127.0.0.1", args.bongsu_port),
             ("127.0.0.1", args.prometheus_port), (f"127.{args.net}.0.1", args.gen_port)]
    for h, p in ports:
        if not port_free(h, p):
            sys.exit(f"port {h}:{p} is in use; pick others with the --*-port flags")

    args.workdir = tempfile.mkdtemp(prefix="bongsu-scrape-scale.")
    args.versions = {}
    procs = []

    def on_signal(sig, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    results = []
    try:
        gen_bin = os.path.join(args.workdir, "targetgen")
        subprocess.run(["cc", "-std=c11", "-O2", "-o", gen_bin,
                        os.path.join(HERE, "targetgen.c"), "-lm"], check=True)
        gen_log = open(os.path.join(args.workdir, "targetgen.log"), "w")
        gen = subprocess.Popen([gen_bin, "--targets", str(args.targets), "--port",
                                str(args.gen_port), "--ctrl-port", str(args.ctrl_port),
                                "--series", str(args.series), "--seed", str(args.seed),
                                "--net", str(args.net)],
                               stdout=gen_log, stderr=subprocess.STDOUT, preexec_fn=_child_setup)
        procs.append(gen)
        for _ in range(100):
            try:
                gen_stats(args.ctrl_port, 1 << 62)
                break
            except Exception:
                if gen.poll() is not None:
                    raise RuntimeError("targetgen exited; see targetgen.log")
                time.sleep(0.1)
        sample = http_get(f"http://127.{args.net}.0.1:{args.gen_port}/metrics")
        log(f"targetgen: {args.targets} targets x {args.series} series, "
            f"{len(sample)} bytes per body; interval {args.interval} s, "
            f"warm-up {args.warmup} s, window {args.duration} s")
        # Run a private copy of each server binary: a rebuild of the tree during the
        # run must not change or break the binary under test.
        for k in ("bongsu", "prometheus"):
            src = getattr(args, k)
            dst = os.path.join(args.workdir, f"{k}-under-test")
            shutil.copy2(src, dst)
            ver = subprocess.run([dst, "--version"], capture_output=True, text=True)
            args.versions[k] = (ver.stdout or ver.stderr).splitlines()[0]
            log(f"{k}: {src}: {args.versions[k]}")
            setattr(args, k, dst)
        config = os.path.join(args.workdir, "scrape.yml")
        write_config(config, args.targets, args.gen_port, args.net, args.interval)

        for kind in args.servers.split(","):
            binary = args.bongsu if kind == "bongsu" else args.prometheus
            port = args.bongsu_port if kind == "bongsu" else args.prometheus_port
            srv = Server(kind, binary, port, args.workdir)
            procs.append(srv)
            try:
                results.append(measure(srv, gen, args, config))
            finally:
                srv.stop()
    except KeyboardInterrupt:
        log("interrupted")
    finally:
        for p in reversed(procs):
            if isinstance(p, Server):
                p.stop()
            elif p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        if not args.keep:
            shutil.rmtree(args.workdir, ignore_errors=True)
        else:
            log(f"work directory kept: {args.workdir}")

    if not results:
        return 1
    print()
    print(f"scrape scale: {args.targets} targets x {args.series} series, interval "
          f"{args.interval} s, warm-up {args.warmup} s, window {args.duration} s, "
          f"{time.strftime('%Y-%m-%d')}")
    for k, v in args.versions.items():
        print(f"{k}: {v}")
    print_table(results)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": {k: v for k, v in vars(args).items()}, "results": results}, f,
                      indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
