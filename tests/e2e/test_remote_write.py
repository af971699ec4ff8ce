"""Remote write receiver (POST /api/v1/write) against a real Prometheus 2.42.

The test starts its own Prometheus (/usr/bin/prometheus, free port, its own
temporary storage) that scrapes the anchor node_exporter every 2s as job
"node" and remote-writes everything to the binary under test, started with
--web.enable-remote-write-receiver and no scrape jobs of its own.  Remote
write carries Prometheus's own timestamps, so for a window that both have
fully, the two must hold the same series and exactly the same samples
(same timestamps, bit-identical values; the JSON spelling of a value is not
what is compared here).

Also: the receiver disabled (404 naming the flag, 405 for other methods),
undecodable bodies (400), and the body cap (413, bongsu only).
"""

import math
import os
import struct
import time
from pathlib import Path

import pytest
import requests

from conftest import BongsuProcess

PROMETHEUS = Path("/usr/bin/prometheus")

RECEIVER_CONFIG = """\
global:
  scrape_interval: 15s
scrape_configs: []
"""

# The sender: scrape node_exporter every 2s, push it all to the receiver
# with a short batch deadline so that the receiver lags by about a second.
SENDER_CONFIG = """\
global:
  scrape_interval: 2s
  scrape_timeout: 2s
scrape_configs:
  - job_name: node
    scrape_interval: 2s
    static_configs:
      - targets: ['127.0.0.1:19100']
remote_write:
  - url: http://127.0.0.1:RECEIVER_PORT/api/v1/write
    queue_config:
      batch_send_deadline: 1s
      min_backoff: 100ms
      max_backoff: 1s
"""

RUN_FOR = 20.0     # seconds of scraping and remote writing before comparing
WINDOW = 10.0      # compare raw samples over (T - WINDOW, T]
LAG = 6.0          # T = now - LAG: well past the sender's batch deadline
COMPARE_TIMEOUT = 45.0


def _key(labels):
    return tuple(sorted(labels.items()))


def _fmt(key):
    return "{" + ", ".join(f'{k}="{v}"' for k, v in key) + "}"


@pytest.fixture
def sender_factory(tmp_path):
    """sender_factory(receiver_port) -> a running Prometheus that scrapes
    node_exporter and remote-writes to 127.0.0.1:receiver_port."""
    if not PROMETHEUS.exists():
        pytest.skip(f"{PROMETHEUS} is not installed")
    made = []

    def make(receiver_port):
        cfg = SENDER_CONFIG.replace("RECEIVER_PORT", str(receiver_port))
        p = BongsuProcess(PROMETHEUS, tmp_path / f"sender{len(made)}", cfg,
                          config_name="prometheus.yml")
        made.append(p)
        p.start()
        return p

    yield make
    for p in made:
        p.stop()


def _value(text):
    """A sample value as a comparable number: the same double compares
    equal whatever its spelling ("5.4e-07" and "0.00000054"); NaN equals
    NaN."""
    v = float(text)
    return "NaN" if math.isnan(v) else struct.pack("<d", v)


def _range_samples(proc, match, t, window):
    """Raw samples of every series matching match in (t - window, t], as
    {labels: [(timestamp_ms, value), ...]}."""
    res = proc.query(f"{match}[{int(window * 1000)}ms]", time=t)
    assert res["resultType"] == "matrix", res
    return {_key(s["metric"]): [(round(float(ts) * 1000), _value(v))
                                for ts, v in s["values"]]
            for s in res["result"]}


def _show(samples):
    return [(ts, "NaN" if v == "NaN" else struct.unpack("<d", v)[0])
            for ts, v in samples]


def _series(proc, match, start, end):
    return {_key(s) for s in proc.api("series", {"match[]": match,
                                                 "start": f"{start:.3f}",
                                                 "end": f"{end:.3f}"})}


def _diff_text(what, a, b, fmt=_fmt, limit=20):
    only_a = sorted(a - b)
    only_b = sorted(b - a)
    return (f"{what}: {len(a)} in the receiver vs {len(b)} in the sender\n"
            f"only in the receiver ({len(only_a)}):\n  " +
            "\n  ".join(fmt(k) for k in only_a[:limit]) +
            f"\nonly in the sender ({len(only_b)}):\n  " +
            "\n  ".join(fmt(k) for k in only_b[:limit]))


def test_prometheus_remote_write_equal(anchor_node_exporter, bongsu_factory,
                                       sender_factory):
    receiver = bongsu_factory(RECEIVER_CONFIG, name="receiver",
                              extra_args=["--web.enable-remote-write-receiver"])
    sender = sender_factory(receiver.port)
    started = time.time()

    # The sender must be scraping and the receiver must get its samples.
    sender.wait_for(lambda: sender.query('up{job="node"}')["result"], 20,
                    "the sender to scrape node_exporter")
    receiver.wait_for(lambda: receiver.query('up{job="node"}')["result"], 30,
                      'up{job="node"} to arrive by remote write')
    time.sleep(max(0.0, started + RUN_FOR - time.time()))

    # Compare a window that both have fully: it starts after the first
    # scrape and ends LAG seconds ago, well past the sender's batch deadline
    # and retries.  Retry with a later window while a difference could still
    # be a batch in flight; report the last difference.
    deadline = time.monotonic() + COMPARE_TIMEOUT
    last = None
    while True:
        t = time.time() - LAG
        start = t - WINDOW
        assert start > started + 2, "window would start before the first scrape"
        mine_series = _series(receiver, '{job="node"}', start, t)
        their_series = _series(sender, '{job="node"}', start, t)
        mine = _range_samples(receiver, '{job="node"}', t, WINDOW)
        theirs = _range_samples(sender, '{job="node"}', t, WINDOW)
        n_samples = sum(len(v) for v in theirs.values())
        problems = []
        if mine_series != their_series:
            problems.append(_diff_text("series", mine_series, their_series))
        if set(mine) != set(theirs):
            problems.append(_diff_text("series with samples in the window",
                                       set(mine), set(theirs)))
        differing = [k for k in set(mine) & set(theirs) if mine[k] != theirs[k]]
        if differing:
            k = sorted(differing)[0]
            problems.append(f"{len(differing)} series differ in their samples; "
                            f"first {_fmt(k)}:\n  receiver {_show(mine[k])}\n"
                            f"  sender   {_show(theirs[k])}")
        if not problems:
            break
        last = "\n".join(problems)
        if time.monotonic() > deadline:
            pytest.fail(f"receiver and sender differ over ({start:.3f}, {t:.3f}]:\n{last}")
        time.sleep(2)

    assert len(their_series) > 100, f"sender has only {len(their_series)} series"
    # 2s scrapes over a 10s window: about 5 samples per series (fewer if
    # the loaded host made the sender skip a scrape).
    assert n_samples >= 3 * len(theirs), (n_samples, len(theirs))
    print(f"remote write: {len(their_series)} series, {n_samples} samples "
          f"identical over ({start:.3f}, {t:.3f}]")


def test_remote_write_disabled(bongsu_factory, is_bongsu):
    p = bongsu_factory(RECEIVER_CONFIG, name="norw")
    r = p.post("/api/v1/write", data=b"\x00\x01binary", headers={
        "Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"})
    assert r.status_code == 404, r.text
    assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
    # Prometheus 2.42 still names its old feature flag here; bongsu names
    # the flag that enables its receiver.
    assert r.text.startswith("remote write receiver needs to be enabled with --"), r.text
    if is_bongsu:
        assert r.text == ("remote write receiver needs to be enabled with "
                          "--web.enable-remote-write-receiver\n")
    for method in ("GET", "PUT"):
        r = p.session.request(method, p.url + "/api/v1/write", timeout=10)
        assert r.status_code == 405, (method, r.status_code, r.text)
        assert "POST" in r.headers.get("Allow", ""), r.headers


def test_remote_write_bad_body(bongsu_factory):
    p = bongsu_factory(RECEIVER_CONFIG, name="rwbad",
                       extra_args=["--web.enable-remote-write-receiver"])
    r = p.post("/api/v1/write", data=b"definitely not snappy \xff\x00", headers={
        "Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
        "X-Prometheus-Remote-Write-Version": "0.1.0"})
    assert r.status_code == 400, r.text
    assert "snappy" in r.text
    # The receiver still works for queries afterwards.
    assert p.query("1")["result"]


@pytest.mark.bongsu_only
def test_remote_write_body_cap(bongsu_factory):
    """A body over the receiver's 32 MiB cap is refused with 413 (Prometheus
    2.42 has no cap and would try to decode it)."""
    p = bongsu_factory(RECEIVER_CONFIG, name="rwcap",
                       extra_args=["--web.enable-remote-write-receiver"])
    body = os.urandom(1 << 20) * 33
    r = p.post("/api/v1/write", data=body, timeout=60, headers={
        "Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"})
    assert r.status_code == 413, r.text[:300]
    assert "limit" in r.text
    # The server is fine afterwards.
    r = p.get("/-/healthy")
    assert r.status_code == 200
