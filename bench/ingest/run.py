#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Ingestion benchmark: bongsu against VictoriaMetrics, remote write and
InfluxDB line protocol, samples per second per core.

For each protocol and each server (alone, freshly started on an empty data
directory), bench/ingest/loadgen.c sends the same pre-encoded load over
keep-alive connections:

  rw  remote write 1.0 (protobuf + snappy), --series series (default 100 000,
      node_exporter- and application-like label sets), requests of 2000
      series with 1 sample each, as Prometheus sends them;
  lp  line protocol as Telegraf sends it: --hosts hosts (default 1000) of 11
      lines (cpu, mem, disk, net, system) and 93 numeric fields each, requests
      of about 1000 lines, nanosecond timestamps, POST /write?db=telegraf.

A run goes: start the server pinned to --server-cpu (taskset), build the
requests, warm up (--warmup-rounds rounds of every series, which creates the
series: series creation is not what is measured), then read the server's
CPU time (utime + stime of the process, all threads, from /proc/<pid>/stat),
send for --duration seconds, wait for the last answers, read the CPU time
again, and once more after a --tail seconds pause (work the server deferred,
such as VictoriaMetrics' in-memory buffers and merges, lands there).

    samples/s per core = samples acknowledged (2xx) / server CPU seconds

The load generator runs pinned to --gen-cpu; on this 2-core machine the
server gets core 1 and the generator core 0 (VictoriaMetrics then sees one
CPU, GOMAXPROCS=1; bongsu's 4 HTTP threads share that core). The machine is
shared, so only figures from the same run are compared; servers alternate
which goes first from one repetition to the next.

    /usr/bin/python3 bench/ingest/run.py                       # $BONGSU_BIN or build/release/bongsu
    /usr/bin/python3 bench/ingest/run.py --bongsu build/h-ingb/bongsu --reps 3 --duration 20
    /usr/bin/python3 bench/ingest/run.py --modes rw --series 50000

Everything it starts gets a parent-death signal and is stopped at the end;
storage goes to a temporary directory that is removed.
"""
import argparse
import ctypes
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CLK_TCK = os.sysconf("SC_CLK_TCK")
RESERVED = [(18086, 18428), (19090, 19295), (9623, 9624), (9700, 9999)]
BONGSU_CONFIG = "global:\n  scrape_interval: 15s\n  evaluation_interval: 1m\n"

_libc = ctypes.CDLL(None, use_errno=True)


def _child_setup():
    _libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    os.setpgrp()


def free_port():
    for _ in range(100):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        p = s.getsockname()[1]
        s.close()
        if not any(lo <= p <= hi for lo, hi in RESERVED):
            return p
    raise RuntimeError("no free port")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode("utf-8", "replace")


def metric_sum(text, name, must_contain=""):
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and must_contain in line and not line.startswith("#"):
            rest = line[len(name):]
            if rest[:1] not in ("{", " "):
                continue
            try:
                total += float(line.rsplit(" ", 1)[1])
            except ValueError:
                pass
    return total


class Server:
    def __init__(self, kind, binary, workdir, cpu):
        self.kind, self.binary = kind, binary  # kind: "bongsu" or "vm"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.wd = os.path.join(workdir, kind)
        os.makedirs(self.wd)
        self.log = open(os.path.join(self.wd, "stderr.log"), "wb")
        data = os.path.join(self.wd, "data")
        if kind == "bongsu":
            cfg = os.path.join(self.wd, "config.yml")
            with open(cfg, "w") as f:
                f.write(BONGSU_CONFIG)
            argv = [binary, f"--config.file={cfg}", f"--storage.tsdb.path={data}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--web.enable-remote-write-receiver", "--log.level=warn"]
            self.ready_path = "/-/ready"
        else:
            argv = [binary, f"-httpListenAddr=127.0.0.1:{self.port}",
                    f"-storageDataPath={data}", "-loggerLevel=ERROR"]
            self.ready_path = "/health"
        self.proc = subprocess.Popen(["taskset", "-c", str(cpu)] + argv,
                                     stdout=subprocess.DEVNULL, stderr=self.log, cwd=self.wd,
                                     preexec_fn=_child_setup)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"{binary} exited with {self.proc.returncode}; "
                                 f"see {self.wd}/stderr.log")
            try:
                if http_get(self.url + self.ready_path, 2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise SystemExit(f"{binary} not ready within 60 s")

    def ingested(self, mode):
        """The server's own count of samples stored, for a cross-check."""
        try:
            text = http_get(self.url + "/metrics", 10)[1]
        except OSError:
            return None
        if self.kind == "bongsu":
            name = ("bongsu_remote_write_samples_total" if mode == "rw"
                    else "bongsu_influx_samples_total")
            return metric_sum(text, name)
        return metric_sum(text, "vm_rows_inserted_total",
                          'type="promremotewrite"' if mode == "rw" else 'type="influx"')

    def rss_mb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def build_loadgen(outdir):
    exe = os.path.join(outdir, "loadgen")
    cmd = ["gcc", "-std=c11", "-O2", "-g", "-Wall", "-Wextra", "-Wshadow", "-Werror",
           "-o", exe, os.path.join(HERE, "loadgen.c"), "-lsnappy"]
    subprocess.run(cmd, check=True)
    return exe


def one_run(args, loadgen, label, binary, mode, workdir):
    kind = "vm" if label == "vm" else "bongsu"
    srv = Server(kind, binary, workdir, args.server_cpu)
    try:
        lg_argv = ["taskset", "-c", str(args.gen_cpu), loadgen, "--mode", mode,
                   "--port", str(srv.port), "--conns", str(args.conns),
                   "--duration", str(args.duration), "--warmup-rounds", str(args.warmup_rounds),
                   "--series", str(args.series), "--hosts", str(args.hosts),
                   "--samples", str(args.samples), "--seed", str(args.seed)]
        if args.batch:
            lg_argv += ["--batch", str(args.batch)]
        lg = subprocess.Popen(lg_argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, preexec_fn=_child_setup)
        warm = lg.stdout.readline().split()
        if not warm or warm[0] != "warm":
            lg.kill()
            raise SystemExit(f"loadgen against {kind}: no warm-up line; stderr:\n"
                             f"{lg.stderr.read()}")
        warm_ok, warm_err, warm_s = int(warm[1]), int(warm[2]), float(warm[3])
        time.sleep(args.settle)
        count0 = srv.ingested(mode)
        cpu0, t0 = cpu_seconds(srv.proc.pid), time.monotonic()
        lg.stdin.write("go\n")
        lg.stdin.flush()
        out, err = lg.communicate(timeout=args.duration + 120)
        cpu1, t1 = cpu_seconds(srv.proc.pid), time.monotonic()
        time.sleep(args.tail)
        cpu2 = cpu_seconds(srv.proc.pid)
        count1 = srv.ingested(mode)
        res = json.loads(out.strip().splitlines()[-1])
        res.update(server=label, warm_ok_samples=warm_ok, warm_err_samples=warm_err,
                   warm_s=warm_s, cpu_load_s=cpu1 - cpu0, cpu_tail_s=cpu2 - cpu0,
                   wall_s=t1 - t0, rss_mb=srv.rss_mb(),
                   server_counted=(count1 - count0) if count0 is not None and count1 is not None
                   else None)
        res["per_core"] = res["ok_samples"] / res["cpu_load_s"] if res["cpu_load_s"] else 0
        res["per_core_tail"] = res["ok_samples"] / res["cpu_tail_s"] if res["cpu_tail_s"] else 0
        res["wall_rate"] = res["ok_samples"] / res["wall_s"]
        res["server_util"] = res["cpu_load_s"] / res["wall_s"]
        if res["err_requests"] or warm_err:
            print(f"  WARNING {label} {mode}: {res['err_requests']} refused requests "
                  f"({warm_err} samples refused in warm-up): {res['first_error'][:300]}",
                  file=sys.stderr)
        if res["rounds_exhausted"]:
            print(f"  WARNING {label} {mode}: ran out of rounds (raise --back-min or lower "
                  f"--duration)", file=sys.stderr)
        return res
    finally:
        srv.stop()
        shutil.rmtree(srv.wd, ignore_errors=True)


def fmt_rate(x):
    return f"{x / 1e6:.3f} M" if x >= 1e6 else f"{x / 1e3:.1f} k"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bongsu", default=os.environ.get(
        "BONGSU_BIN", os.path.join(ROOT, "build", "release", "bongsu")))
    ap.add_argument("--vm", default="/usr/bin/victoria-metrics")
    ap.add_argument("--baseline", help="a second bongsu binary (e.g. before a change), measured "
                    "in the same run as 'base'")
    ap.add_argument("--modes", default="rw,lp", help="rw, lp or rw,lp")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--duration", type=float, default=20, help="seconds of measured load")
    ap.add_argument("--tail", type=float, default=3, help="seconds of CPU counted after the load")
    ap.add_argument("--settle", type=float, default=2, help="pause between warm-up and load")
    ap.add_argument("--warmup-rounds", type=int, default=2)
    ap.add_argument("--series", type=int, default=100_000, help="rw: series")
    ap.add_argument("--hosts", type=int, default=1000, help="lp: hosts (93 series each)")
    ap.add_argument("--batch", type=int, default=0,
                    help="series (rw, default 2000) or lines (lp, default 1000) per request")
    ap.add_argument("--samples", type=int, default=1, help="rw: samples per series per request")
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--server-cpu", type=int, default=1)
    ap.add_argument("--gen-cpu", type=int, default=0)
    ap.add_argument("--only", choices=["bongsu", "vm"], help="measure one server only")
    ap.add_argument("--json", help="write every run's figures to this file")
    args = ap.parse_args()

    servers = [("bongsu", os.path.abspath(args.bongsu))]
    if args.baseline:
        servers.append(("base", os.path.abspath(args.baseline)))
    servers.append(("vm", os.path.abspath(args.vm)))
    if args.only:
        servers = [s for s in servers if s[0] == args.only]
    for _, b in servers:
        if not os.access(b, os.X_OK):
            raise SystemExit(f"not executable: {b}")
    modes = [m for m in args.modes.split(",") if m]
    print(f"# server pinned to CPU {args.server_cpu}, load generator to CPU {args.gen_cpu} "
          f"(taskset); {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}")
    print(f"# {args.duration:g} s of load per run after {args.warmup_rounds} warm-up rounds, "
          f"CPU also counted {args.tail:g} s after; {args.conns} connections; "
          f"rw: {args.series} series x {args.samples} sample(s), "
          f"lp: {args.hosts} hosts x 93 fields")
    results = []
    with tempfile.TemporaryDirectory(prefix="bongsu-ingest-bench-") as tmp:
        loadgen = build_loadgen(tmp)
        n = 0
        for rep in range(args.reps):
            for mode in modes:
                order = servers if rep % 2 == 0 else list(reversed(servers))
                for kind, binary in order:
                    wd = os.path.join(tmp, f"run{n}")
                    n += 1
                    os.makedirs(wd)
                    r = one_run(args, loadgen, kind, binary, mode, wd)
                    r["rep"] = rep
                    results.append(r)
                    sc = r["server_counted"]
                    print(f"rep {rep} {mode} {kind:6s}: {r['ok_samples']:>10d} samples "
                          f"in {r['wall_s']:5.1f} s, server CPU {r['cpu_load_s']:6.2f} s "
                          f"(+tail {r['cpu_tail_s'] - r['cpu_load_s']:.2f}), "
                          f"{fmt_rate(r['per_core'])}/s per core "
                          f"({fmt_rate(r['per_core_tail'])} with tail), "
                          f"wall {fmt_rate(r['wall_rate'])}/s, server busy "
                          f"{100 * r['server_util']:.0f}%, RSS {r['rss_mb']:.0f} MB"
                          + (f", server counted {sc:.0f}" if sc is not None else ""),
                          flush=True)
    print()
    labels = [lab for lab, _ in servers if lab != "vm"]
    print("| protocol | server | samples/s per core | VM samples/s per core | ratio to VM "
          "(per repetition) | ratio incl. tail |")
    print("|---|---|--:|--:|--:|--:|")
    summary = {}

    def med(lab, mode, key):
        v = [r[key] for r in results if r["server"] == lab and r["mode"] == mode]
        return statistics.median(v) if v else 0

    def per_rep(lab, mode, rep):
        v = [r["per_core"] for r in results
             if r["rep"] == rep and r["mode"] == mode and r["server"] == lab]
        return v[0] if v else None

    for mode in modes:
        v, vt = med("vm", mode, "per_core"), med("vm", mode, "per_core_tail")
        for lab in labels:
            b, bt = med(lab, mode, "per_core"), med(lab, mode, "per_core_tail")
            ratio = b / v if v else float("nan")
            ratio_t = bt / vt if vt else float("nan")
            reps = []
            for rep in range(args.reps):
                x, y = per_rep(lab, mode, rep), per_rep("vm", mode, rep)
                if x is not None and y:
                    reps.append(x / y)
            summary[f"{mode}/{lab}"] = dict(server=b, vm=v, ratio=ratio, ratio_tail=ratio_t,
                                            rep_ratios=reps)
            print(f"| {mode} | {lab} | {fmt_rate(b)} | {fmt_rate(v)} | {ratio:.2f} "
                  f"({', '.join(f'{x:.2f}' for x in reps)}) | {ratio_t:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "runs": results, "summary": summary}, f, indent=1)


if __name__ == "__main__":
    main()
