#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Bytes per sample on REAL node_exporter data: bongsu, Prometheus 2.42 and
VictoriaMetrics 1.79 on the same recorded samples (issue 4, item 9).
Figures, never pass/fail.

run.py measures a synthetic node_exporter-like generator, which is tuned
to be hard (busy network and disk counters with noise). This script
measures what a real node_exporter produces, as a real Prometheus scraped
it, so that both kinds of data are on record.

  1. record: start Prometheus 2.42 on a free loopback port scraping the
     anchor node_exporter (127.0.0.1:19100, started with
     ../shared/tools/anchors.sh if needed) every 15 s for --duration, then
     export its raw samples (every timestamp and value exactly as stored,
     through /api/v1/query with a range selector) to an OpenMetrics file.
         real.py record --duration 2h --out node.om
     `export` does only the second half, from a Prometheus already running:
         real.py export --url http://127.0.0.1:PORT --match '{job="node"}' \\
             --start UNIX_S --end UNIX_S --out node.om
  2. measure: the same file into all three.
     - bongsu: `bongsutool tsdb create-blocks-from openmetrics` with
       --max-block-duration (default 6h, so a recording of up to 6 h within
       one 6 h-aligned window is one block). Blocks longer than 2 h are
       written with the dense codec, as compaction writes them.
     - Prometheus: `promtool tsdb create-blocks-from openmetrics` with the
       same --max-block-duration, so both have the same block layout.
     - VictoriaMetrics: /api/v1/import/prometheus, then force_merge.
     Every series is read back from each server and compared sample by
     sample (timestamp and float64 bits) with the file. Sizes are apparent
     sizes of the block directories (bongsu, Prometheus: chunks, index,
     meta.json, tombstones) and of data/ + indexdb/ (VictoriaMetrics),
     after a clean stop.
         real.py measure node.om

The file is the input; keep it to re-measure later builds on the same data.
"""
import argparse
import math
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import run as bench  # noqa: E402  (Server, free_port, files_size, ...)

ANCHORS = os.path.join(ROOT, "..", "shared", "tools", "anchors.sh")
NODE = "127.0.0.1:19100"


def log(*a):
    print("[real]", *a, file=sys.stderr, flush=True)


def parse_duration(s):
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return int(float(s[:-1]) * units[s[-1]]) if s[-1] in units else int(s)


# ---------------------------------------------------------------- record

def esc(v):
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def export(url, match, start_s, end_s, out):
    """Every raw sample matching `match` in [start_s, end_s] as OpenMetrics
    (families contiguous, no TYPE lines: all unknown). Returns
    (series, samples)."""
    span = int(math.ceil(end_s - start_s))
    r = requests.get(url + "/api/v1/query", params={"query": "%s[%ds]" % (match, span),
                                                     "time": "%.3f" % end_s}, timeout=600)
    r.raise_for_status()
    res = r.json()["data"]["result"]
    fams = {}
    for s in res:
        m = dict(s["metric"])
        fams.setdefault(m.pop("__name__"), []).append((sorted(m.items()), s["values"]))
    n = 0
    with open(out, "w") as f:
        for name in sorted(fams):
            for ls, vals in sorted(fams[name]):
                head = name + ("{" + ",".join('%s="%s"' % (k, esc(v)) for k, v in ls) + "}" if ls else "")
                for t, v in vals:
                    f.write("%s %s %s\n" % (head, v, t))
                    n += 1
        f.write("# EOF\n")
    return len(res), n


def cmd_record(args):
    try:
        requests.get("http://%s/metrics" % NODE, timeout=3).raise_for_status()
    except requests.RequestException:
        subprocess.run(["bash", ANCHORS, "start", "node_exporter"], check=True)
    work = tempfile.mkdtemp(prefix="bongsu-real-record.")
    cfg = os.path.join(work, "prom.yml")
    with open(cfg, "w") as f:
        f.write("global:\n  scrape_interval: 15s\n  scrape_timeout: 10s\n"
                "scrape_configs:\n  - job_name: node\n    static_configs:\n"
                "      - targets: ['%s']\n" % NODE)
    port = bench.free_port()
    url = "http://127.0.0.1:%d" % port
    p = subprocess.Popen([args.prometheus, "--config.file=" + cfg, "--storage.tsdb.path=" + work + "/data",
                          "--web.listen-address=127.0.0.1:%d" % port, "--storage.tsdb.retention.time=30d"],
                         stdout=open(os.path.join(work, "prom.log"), "ab"), stderr=subprocess.STDOUT,
                         preexec_fn=bench._child_setup)
    try:
        start = time.time()
        dur = parse_duration(args.duration)
        log("recording %s into %s (Prometheus on %s, log in %s)" % (args.duration, args.out, url, work))
        time.sleep(dur)
        s, n = export(url, '{job="node"}', start, time.time(), args.out)
        log("exported %d series, %d samples" % (s, n))
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)


def cmd_export(args):
    s, n = export(args.url, args.match, args.start, args.end, args.out)
    log("exported %d series, %d samples to %s" % (s, n, args.out))


# ---------------------------------------------------------------- measure

def read_file(path):
    """{(name, labels tuple): [(ts_ms, float64 bits)]} from an exported file."""
    series = {}
    with open(path) as f:
        for line in f:
            if line.startswith("#"):
                continue
            head, v, t = line.rsplit(" ", 2)
            ts = int(round(float(t) * 1000))
            bits = struct.unpack("<Q", struct.pack("<d", float(v)))[0]
            series.setdefault(head, []).append((ts, bits))
    return series


def labels_of(head):
    """[(name, value)] with __name__ from an exposition series head (no
    escapes other than \\\\ \\" \\n, as export writes them)."""
    if "{" not in head:
        return [("__name__", head)]
    name, rest = head.split("{", 1)
    out = [("__name__", name)]
    i, body = 0, rest[:-1]
    while i < len(body):
        eq = body.index("=", i)
        k = body[i:eq]
        j, v = eq + 2, []
        while body[j] != '"':
            if body[j] == "\\":
                j += 1
                v.append({"n": "\n"}.get(body[j], body[j]))
            else:
                v.append(body[j])
            j += 1
        out.append((k, "".join(v)))
        i = j + 2
    return out


def cmd_measure(args):
    series = read_file(args.file)
    samples = sum(len(v) for v in series.values())
    start_ms = min(v[0][0] for v in series.values())
    end_ms = max(v[-1][0] for v in series.values())
    log("%s: %d series, %d samples, %.2f h" % (args.file, len(series), samples, (end_ms - start_ms) / 3.6e6))
    work = tempfile.mkdtemp(prefix="bongsu-real-measure.")
    dirs = {k: os.path.join(work, k) for k in ("bongsu", "prometheus", "vm")}
    for d in dirs.values():
        os.makedirs(d)
    mbd = "--max-block-duration=" + args.max_block_duration
    for k, cmd in (("bongsu", [args.bongsutool, "tsdb", "create-blocks-from", "openmetrics", mbd,
                               args.file, dirs["bongsu"]]),
                   ("prometheus", [args.promtool, "tsdb", "create-blocks-from", "openmetrics", mbd,
                                   args.file, dirs["prometheus"]])):
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if p.returncode != 0:
            raise RuntimeError("%s failed: %s" % (" ".join(cmd), p.stdout.decode()[-2000:]))
    # the text format with millisecond timestamps for the VM import
    prom_text = os.path.join(work, "vm.prom")
    with open(prom_text, "w") as f:
        for head, vals in series.items():
            for t, b in vals:
                f.write("%s %r %d\n" % (head, struct.unpack("<d", struct.pack("<Q", b))[0], t))
    ret = ["--storage.tsdb.retention.time=3650d"]
    servers = {"bongsu": bench.Server("bongsu", args.bongsu, work, dirs["bongsu"], ret),
               "prometheus": bench.Server("prometheus", args.prometheus, work, dirs["prometheus"], ret),
               "vm": bench.Server("vm", args.vm, work, dirs["vm"])}
    R = {"samples": samples, "series": len(series)}
    try:
        for s in servers.values():
            s.start()
        for s in servers.values():
            s.wait_ready()
        vm = servers["vm"]
        with open(prom_text, "rb") as f:
            requests.post(vm.url + "/api/v1/import/prometheus", data=f.read(), timeout=600).raise_for_status()
        time.sleep(3)
        for m in sorted({time.strftime("%Y_%m", time.gmtime(x / 1000)) for x in (start_ms, end_ms)}):
            requests.get(vm.url + "/internal/force_merge", params={"partition_prefix": m}, timeout=600)
        bench.vm_wait_stable(vm)
        for k, srv in servers.items():
            bad, first = 0, None
            for head, exp in series.items():
                got = [(t, bench.bits(v)) for t, v in bench.read_raw(srv, labels_of(head), start_ms, end_ms)]
                if got != exp:
                    bad += 1
                    first = first or "%s: %d expected, %d read" % (head, len(exp), len(got))
            R.setdefault("lossless", {})[k] = (bad, first)
            log("%s lossless check: %d series, %d differ%s" % (k, len(series), bad, " (%s)" % first if first else ""))
    finally:
        for s in servers.values():
            s.stop(signal.SIGINT)
    for k in ("bongsu", "prometheus"):
        R.setdefault("bytes", {})[k] = bench.files_size(dirs[k], bench.is_block)[0]
        tool = args.bongsutool if k == "bongsu" else args.promtool
        lst = subprocess.run([tool, "tsdb", "list", dirs[k]], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        log("%s tsdb list:\n%s" % (k, lst.stdout.decode()))
    R["bytes"]["vm"] = bench.files_size(dirs["vm"], lambda n: n in ("data", "indexdb"))[0]
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print("Real node_exporter data: %d series, %d samples, %.2f h at 15 s (%s)" % (
        len(series), samples, (end_ms - start_ms) / 3.6e6, os.path.basename(args.file)))
    print("| system | bytes | bytes/sample | lossless (series differing) |")
    print("|---|--:|--:|---|")
    for k in ("bongsu", "prometheus", "vm"):
        print("| %s | %d | %.3f | %d/%d |" % (k, R["bytes"][k], R["bytes"][k] / samples,
                                              R["lossless"][k][0], len(series)))
    print("Ratios: bongsu/Prometheus %.2f, bongsu/VM %.2f" % (
        R["bytes"]["bongsu"] / R["bytes"]["prometheus"], R["bytes"]["bongsu"] / R["bytes"]["vm"]))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record")
    r.add_argument("--duration", default="2h")
    r.add_argument("--out", required=True)
    r.add_argument("--prometheus", default="/usr/bin/prometheus")
    e = sub.add_parser("export")
    e.add_argument("--url", required=True)
    e.add_argument("--match", default='{job="node"}')
    e.add_argument("--start", type=float, required=True)
    e.add_argument("--end", type=float, required=True)
    e.add_argument("--out", required=True)
    m = sub.add_parser("measure")
    m.add_argument("file")
    m.add_argument("--max-block-duration", default="6h")
    m.add_argument("--bongsu", default=os.path.join(ROOT, "build/release/bongsu"))
    m.add_argument("--bongsutool", default=os.path.join(ROOT, "build/release/bongsutool"))
    m.add_argument("--prometheus", default="/usr/bin/prometheus")
    m.add_argument("--promtool", default="/usr/bin/promtool")
    m.add_argument("--vm", default="/usr/bin/victoria-metrics")
    m.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    {"record": cmd_record, "export": cmd_export, "measure": cmd_measure}[args.cmd](args)


if __name__ == "__main__":
    main()
