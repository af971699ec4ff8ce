"""Pushgateway API: python3-prometheus-client against a real Pushgateway 1.5
(anchor, 127.0.0.1:19091) and against bongsu, same calls, same statuses,
same exposed series.

What the Pushgateway exposes on /metrics (job and grouping labels written
over the pushed ones, instance="" added) is what a Prometheus scraping it
with honor_labels: true stores, empty labels dropped; bongsu must answer
instant queries with exactly that set.  push_time_seconds and
push_failure_time_seconds are compared by presence (their values are
times).
"""

import base64
import urllib.error
import uuid

import pytest
import requests
from prometheus_client import (CollectorRegistry, Counter, Gauge, Histogram,
                               delete_from_gateway, push_to_gateway,
                               pushadd_to_gateway)
from prometheus_client.parser import text_string_to_metric_families

from conftest import ensure_anchor

PGW = "127.0.0.1:19091"
CONFIG = """\
global:
  scrape_interval: 1s
"""
TIME_METRICS = ("push_time_seconds", "push_failure_time_seconds")


def is_time_metric(name):
    """Series whose values are wall-clock times: push times, and the
    client's _created timestamps (each scenario builds its own registry, so
    they differ between the two runs by construction)."""
    return name in TIME_METRICS or name.endswith("_created")


@pytest.fixture(scope="module")
def pushgateway():
    ensure_anchor("pushgateway", f"http://{PGW}/-/ready")
    return PGW


@pytest.fixture(scope="module")
def bongsu(module_bongsu_factory):
    return module_bongsu_factory(CONFIG, name="push")


def call(fn, *a, **kw):
    """Run a push call; return its HTTP status (200/202 when it returned)."""
    try:
        fn(*a, **kw)
        return "ok"
    except urllib.error.HTTPError as e:
        return e.code
    except OSError as e:  # the client's own "error talking to pushgateway: N"
        text = str(e)
        for code in (400, 404, 405, 413, 415, 500):
            if f": {code} " in text:
                return code
        raise


def pgw_series(job):
    """(name, labels, value) of job's series on the Pushgateway's /metrics,
    empty labels dropped, as Prometheus stores them."""
    text = requests.get(f"http://{PGW}/metrics", timeout=10).text
    out = set()
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.labels.get("job") != job:
                continue
            labels = tuple(sorted((k, v) for k, v in s.labels.items() if v != ""))
            value = None if is_time_metric(s.name) else float(s.value)
            out.add((s.name, labels, value))
    return out


def bongsu_series(proc, job):
    res = proc.query(f'{{job="{job}"}}')["result"]
    out = set()
    for r in res:
        m = dict(r["metric"])
        name = m.pop("__name__")
        value = None if is_time_metric(name) else float(r["value"][1])
        out.add((name, tuple(sorted(m.items())), value))
    return out


def registry_one(kind="gauge", name="batch_records", value=42.0, labelnames=()):
    reg = CollectorRegistry()
    if kind == "gauge":
        g = Gauge(name, "Records processed.", labelnames, registry=reg)
    else:
        g = Counter(name, "Records processed.", labelnames, registry=reg)
    if labelnames:
        g.labels(*["v"] * len(labelnames)).inc(value)
    elif kind == "gauge":
        g.set(value)
    else:
        g.inc(value)
    return reg


def scenario(addr, job, series_of):
    """The same sequence against one server; returns the observed states."""
    seen = []
    grouping = {"instance": "host/1", "zone": ""}
    reg = CollectorRegistry()
    g = Gauge("batch_last_success", "Last success.", ["stage"], registry=reg)
    g.labels("load").set(1700000000)
    g.labels("transform").set(1700000100)
    c = Counter("batch_rows", "Rows.", registry=reg)
    c.inc(7)
    h = Histogram("batch_seconds", "Duration.", buckets=(1, 5), registry=reg)
    h.observe(0.5)
    h.observe(3)
    seen.append(("put", call(push_to_gateway, addr, job=job, registry=reg,
                             grouping_key=grouping)))
    seen.append(("after put", series_of(job)))
    # POST replaces only families of the same name.
    reg2 = CollectorRegistry()
    Gauge("batch_last_success", "Last success.", ["stage"],
          registry=reg2).labels("load").set(1700000200)
    seen.append(("pushadd", call(pushadd_to_gateway, addr, job=job,
                                 registry=reg2, grouping_key=grouping)))
    seen.append(("after pushadd", series_of(job)))
    # A gauge where another group has a counter of that name: refused.
    reg3 = registry_one("gauge", name="batch_rows_total", value=1)
    seen.append(("clash", call(push_to_gateway, addr, job=job, registry=reg3,
                               grouping_key={"instance": "other"})))
    seen.append(("after clash", series_of(job)))
    seen.append(("delete other", call(delete_from_gateway, addr, job=job,
                                      grouping_key={"instance": "other"})))
    seen.append(("delete", call(delete_from_gateway, addr, job=job,
                                grouping_key=grouping)))
    seen.append(("after delete", series_of(job)))
    return seen


def test_client_against_pushgateway_and_bongsu(pushgateway, bongsu):
    job = "e2e_" + uuid.uuid4().hex[:8]
    ref = scenario(PGW, job, pgw_series)
    got = scenario(bongsu.address, job, lambda j: bongsu_series(bongsu, j))
    # Validate the scenario itself against the reference first.
    ref_d = dict(ref)
    assert ref_d["put"] == "ok" and ref_d["pushadd"] == "ok"
    assert ref_d["clash"] == 400
    assert ref_d["after delete"] == set()
    assert ("batch_rows_total", (("instance", "host/1"), ("job", job)), 7.0) \
        in ref_d["after put"]
    assert len(ref) == len(got)
    for (what, want), (what2, have) in zip(ref, got):
        assert what == what2
        assert have == want, f"{what}: bongsu {have!r} != pushgateway {want!r}"


def test_error_texts_match(pushgateway, bongsu):
    job = "e2e_" + uuid.uuid4().hex[:8]
    cases = [
        ("PUT", f"/metrics/job/{job}/a", "x 1\n"),
        ("PUT", f"/metrics/job/{job}/1a/v", "x 1\n"),
        ("PUT", f"/metrics/job/{job}/a@base64/!!", "x 1\n"),
        ("PUT", f"/metrics/job/{job}", "x 1 1000\n"),
        ("PUT", f"/metrics/job/{job}", "# TYPE c counter\nc 1\nc 2\n"),
        ("GET", f"/metrics/job/{job}", None),
        ("DELETE", f"/metrics/job/{job}_never", None),
    ]
    for method, path, body in cases:
        a = requests.request(method, f"http://{PGW}{path}", data=body, timeout=10)
        b = requests.request(method, bongsu.url + path, data=body, timeout=10)
        assert b.status_code == a.status_code, (path, a.text, b.text)
        if a.status_code == 400:
            assert b.text == a.text.replace(job, job), (path, a.text, b.text)
    requests.delete(f"http://{PGW}/metrics/job/{job}", timeout=10)
    requests.delete(bongsu.url + f"/metrics/job/{job}", timeout=10)


def test_base64_grouping(pushgateway, bongsu):
    job = "e2e_" + uuid.uuid4().hex[:8]
    val = base64.urlsafe_b64encode(b"a/b c").decode()
    for base in (f"http://{PGW}", bongsu.url):
        r = requests.put(f"{base}/metrics/job/{job}/path@base64/{val}",
                         data="files 3\n", timeout=10)
        assert r.status_code == 200, r.text
    want = pgw_series(job)
    assert ("files", (("job", job), ("path", "a/b c")), 3.0) in want
    assert bongsu_series(bongsu, job) == want
    groups = requests.get(bongsu.url + "/api/v1/metrics", timeout=10).json()
    ref = requests.get(f"http://{PGW}/api/v1/metrics", timeout=10).json()

    def strip(gs):
        out = []
        for g in gs["data"]:
            if g["labels"].get("job") != job:
                continue
            g = {k: v for k, v in g.items()}
            for k, v in g.items():
                if isinstance(v, dict) and "time_stamp" in v:
                    v["time_stamp"] = "T"
                    if k in TIME_METRICS:
                        for m in v["metrics"]:
                            m["value"] = "V"
            out.append(g)
        return out
    assert strip(groups) == strip(ref)
    for base in (f"http://{PGW}", bongsu.url):
        requests.delete(f"{base}/metrics/job/{job}/path@base64/{val}", timeout=10)


@pytest.mark.bongsu_only
def test_values_stay_visible_and_survive_restart(bongsu_factory):
    p = bongsu_factory(CONFIG, name="pushrestart")
    job = "e2e_" + uuid.uuid4().hex[:8]
    assert call(push_to_gateway, p.address, job=job,
                registry=registry_one(value=5)) == "ok"
    p.restart()
    res = p.wait_for(lambda: p.query(f'batch_records{{job="{job}"}}')["result"],
                     10, "pushed series after restart")
    assert res[0]["value"][1] == "5"
    # Re-appended every scrape interval: a range query over the last few
    # seconds sees several samples.
    import time
    time.sleep(3.5)
    rng = p.api("query", {"query": f'count_over_time(batch_records{{job="{job}"}}[3s])'})
    assert float(rng["result"][0]["value"][1]) >= 2
    assert call(delete_from_gateway, p.address, job=job) == "ok"
    p.wait_for(lambda: not p.query(f'batch_records{{job="{job}"}}')["result"],
               5, "series gone after delete (stale marker)")
