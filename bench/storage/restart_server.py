#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Seconds from starting the bongsu server to ready and to the first query
answer, on a data directory left by a kill -9 (issue 4's restart point, as
the user sees it: the whole server, not only the TSDB open). Figures,
never pass/fail.

The directory is typically one that bench_tsdb_head left after its ingest
stage (1M series x 480 samples, a full 2 h head, then SIGKILL):

    BENCH_HEAD_DIR=/tmp/h1m BENCH_HEAD_STAGE=ingest \\
        build/release/bench/bench_tsdb_head 1000000 480
    /usr/bin/python3 bench/storage/restart_server.py /tmp/h1m --rounds 3

Each round copies the directory (so every start sees the same kill -9
state; the copy is in the page cache, as a just-killed server's files
are), syncs, waits --settle seconds for writeback to finish, starts `bongsu --storage.tsdb.path=<copy>` on a free loopback port
with an empty scrape configuration, and polls every 10 ms:
  - ready: /-/ready answers 200;
  - query: an instant query `count_over_time(M{instance="I"}[3h])` at
    --time (bench_tsdb_head's newest sample) answers 200; it prints how
    many of those series hold all SAMPLES samples (M, I: a metric and the
    first instance of bench_tsdb_head, 5 series; pass
    --metric/--instance/--samples/--time for other data).
It prints both times and the count check per round, then stops the server
with SIGTERM (its shutdown snapshot goes to the copy, not the original).
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import run as bench  # noqa: E402  (free_port, _child_setup)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("datadir")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--bongsu", default=os.path.join(ROOT, "build/release/bongsu"))
    ap.add_argument("--instance", default="10.0.0.0:9100")
    ap.add_argument("--metric", default="node_metric_0_total")
    ap.add_argument("--samples", type=int, default=480)
    ap.add_argument("--settle", type=float, default=5.0,
                    help="seconds to wait after copying and sync, before the start")
    ap.add_argument("--time", type=float, default=1699999200 + 479 * 15,
                    help="query time: bench_tsdb_head's newest sample (T0 + 479 x 15 s)")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="bongsu-restart-server.", dir=os.path.dirname(os.path.abspath(args.datadir)))
    cfg = os.path.join(work, "empty.yml")
    with open(cfg, "w") as f:
        f.write("global:\n  scrape_interval: 15s\nscrape_configs: []\n")
    try:
        for r in range(args.rounds):
            copy = os.path.join(work, "data")
            shutil.rmtree(copy, ignore_errors=True)
            subprocess.run(["cp", "-a", args.datadir, copy], check=True)
            subprocess.run(["sync"])
            time.sleep(args.settle)  # let writeback of the copy finish
            port = bench.free_port()
            url = "http://127.0.0.1:%d" % port
            load = open("/proc/loadavg").read().split()[0]
            t0 = time.monotonic()
            p = subprocess.Popen([args.bongsu, "--config.file=" + cfg, "--storage.tsdb.path=" + copy,
                                  "--web.listen-address=127.0.0.1:%d" % port],
                                 stdout=open(os.path.join(work, "bongsu.log"), "ab"), stderr=subprocess.STDOUT,
                                 preexec_fn=bench._child_setup)
            ready = answered = None
            check = "no answer"
            try:
                while time.monotonic() - t0 < 120:
                    now = time.monotonic() - t0
                    try:
                        if ready is None:
                            if requests.get(url + "/-/ready", timeout=5).status_code == 200:
                                ready = time.monotonic() - t0
                        if ready is not None:
                            q = requests.get(url + "/api/v1/query", timeout=30, params={
                                "query": 'count_over_time(%s{instance="%s"}[3h])' % (args.metric, args.instance),
                                "time": "%.3f" % args.time})
                            if q.status_code == 200:
                                answered = time.monotonic() - t0
                                counts = [int(e["value"][1]) for e in q.json()["data"]["result"]]
                                check = "%d series, %d with %d samples" % (
                                    len(counts), sum(1 for x in counts if x == args.samples), args.samples)
                                break
                    except requests.RequestException:
                        pass
                    if p.poll() is not None:
                        check = "server exited with %s" % p.returncode
                        break
                    time.sleep(max(0.0, 0.01 - (time.monotonic() - t0 - now)))
            finally:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=120)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            print("round %d (load %s): ready %s s, query answered %s s (%s)" % (
                r + 1, load, "%.2f" % ready if ready is not None else "-",
                "%.2f" % answered if answered is not None else "-", check), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
