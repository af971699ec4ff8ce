"""Restart speed and durability after kill -9 (issue 4, item 6).

bongsu receives SERIES series with SAMPLES samples each by remote write
(--web.enable-remote-write-receiver; every request acknowledged with a 2xx
is committed to the WAL before the answer), is killed with SIGKILL, and is
started again on the same data directory. The test prints the seconds until
/-/ready and until a query answers, and checks that every acknowledged
series is back (a count) and, for a random sample of series, every value.
Then it stops bongsu cleanly (which writes a head snapshot) and measures the
restart once more.

E2E_RESTART_SERIES overrides the number of series; E2E_SEED the sample.
"""

import os
import random
import time

import pytest
import requests

from rw_encode import push

SERIES = int(os.environ.get("E2E_RESTART_SERIES", "200000"))
SAMPLES = 3
BATCH = 10000
CHECKED = 200

CONFIG = """\
global:
  scrape_interval: 1h
scrape_configs: []
"""


def _labels(n):
    return {"__name__": "rs_metric", "job": "restart", "instance": f"h{n % 1000}",
            "i": str(n)}


def _value(n, k):
    return n * 3 + k + 0.5


def _ingest(p, t0):
    url = p.url + "/api/v1/write"
    s = requests.Session()
    for lo in range(0, SERIES, BATCH):
        batch = [(_labels(n), [(t0 + 15000 * k, _value(n, k)) for k in range(SAMPLES)])
                 for n in range(lo, min(SERIES, lo + BATCH))]
        push(url, batch, session=s)


def _restart_timed(p, how, t0):
    started = time.time()
    p.start(wait_ready=False)
    deadline = started + 60
    ready_at = answer_at = None
    last = None
    while time.time() < deadline:
        if ready_at is None:
            try:
                if p.get("/-/ready", timeout=2).status_code == 200:
                    ready_at = time.time()
            except requests.RequestException:
                pass
        if ready_at is not None:
            try:
                r = p.get("/api/v1/query", timeout=5, params={
                    "query": 'rs_metric{i="0"}', "time": f"{(t0 + 15000 * (SAMPLES - 1)) / 1000:.3f}"})
                if r.status_code == 200 and r.json()["data"]["result"]:
                    answer_at = time.time()
                    break
                last = r.text[:300]
            except requests.RequestException:
                pass
        time.sleep(0.05)
    assert ready_at and answer_at, \
        f"bongsu not answering 60 s after start ({how}), last answer {last}:\n" + p.stderr_tail()
    print(f"\nrestart after {how} with {SERIES} series: ready in {ready_at - started:.2f} s, "
          f"first query answered in {answer_at - started:.2f} s")
    return answer_at - started


def _check(p, t0, rng):
    r = p.query("count(rs_metric)")
    assert r["result"] and int(r["result"][0]["value"][1]) == SERIES, r
    for n in rng.sample(range(SERIES), CHECKED):
        r = p.query(f'rs_metric{{i="{n}"}}[5m]', time=(t0 + 15000 * SAMPLES) / 1000)
        assert len(r["result"]) == 1, (n, r)
        got = [(int(round(float(ts) * 1000)), float(v)) for ts, v in r["result"][0]["values"]]
        want = [(t0 + 15000 * k, _value(n, k)) for k in range(SAMPLES)]
        assert got == want, (n, got, want)


def test_restart_after_kill9(bongsu_factory, is_bongsu):
    if not is_bongsu:
        pytest.skip("bongsu's restart figures only")
    seed = int(os.environ.get("E2E_SEED", str(int(time.time()))))
    rng = random.Random(seed)
    print(f"\nE2E_SEED={seed}")
    p = bongsu_factory(CONFIG, name="restart",
                       extra_args=["--web.enable-remote-write-receiver"])
    t0 = (int(time.time()) - 120) * 1000
    t = time.time()
    _ingest(p, t0)
    print(f"\ningested {SERIES} series x {SAMPLES} samples in {time.time() - t:.1f} s")

    p.kill9()
    _restart_timed(p, "kill -9", t0)
    _check(p, t0, rng)

    p.stop()
    _restart_timed(p, "a clean shutdown", t0)
    _check(p, t0, rng)
