"""HTTP API shape tests against a self-scraping instance (job "self", 1s)."""

import re
import time

import pytest


def _up_labels(p):
    return {"__name__": "up", "instance": p.address, "job": "self"}


def test_self_scrape_up(self_scraping):
    p = self_scraping
    res = p.query("up")
    assert res["resultType"] == "vector"
    mine = [s for s in res["result"] if s["metric"] == _up_labels(p)]
    assert len(mine) == 1, res
    ts, val = mine[0]["value"]
    assert isinstance(ts, (int, float))
    assert abs(ts - time.time()) < 5
    assert isinstance(val, str) and val == "1"


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_instant_query(self_scraping, method):
    p = self_scraping
    t = time.time()
    res = p.query('up{job="self"}', time=t, method=method)
    assert res["resultType"] == "vector"
    assert len(res["result"]) == 1, res
    s = res["result"][0]
    assert s["metric"] == _up_labels(p)
    assert s["value"][0] == pytest.approx(round(t, 3), abs=1e-3)
    assert s["value"][1] == "1"
    # a scalar expression
    res = p.query("1 + 2", time=t, method=method)
    assert res["resultType"] == "scalar"
    assert res["result"][1] == "3"
    assert res["result"][0] == pytest.approx(round(t, 3), abs=1e-3)


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_range_query(self_scraping, method):
    p = self_scraping
    # wait until at least 6 scrapes are stored (first one > 5s ago)
    p.wait_for(lambda: p.query('count_over_time(up{job="self"}[1m]) >= 6')["result"],
               15, ">= 6 scrapes of up")
    end = time.time()
    start = end - 3
    res = p.query_range('up{job="self"}', start, end, 1, method=method)
    assert res["resultType"] == "matrix"
    assert len(res["result"]) == 1, res
    s = res["result"][0]
    assert s["metric"] == _up_labels(p)
    vals = s["values"]
    ts = [v[0] for v in vals]
    # step-aligned: exactly start, start+1, start+2, end
    assert ts == pytest.approx([round(start, 3) + k for k in range(4)], abs=2e-3), vals
    assert all(v[1] == "1" for v in vals), vals


def test_range_query_values_of_a_counter(self_scraping):
    """Range query over an expression whose value depends on the step."""
    p = self_scraping
    end = int(time.time())
    res = p.query_range("time()", end - 3, end, 1)
    assert res["resultType"] == "matrix"
    assert len(res["result"]) == 1
    assert res["result"][0]["metric"] == {}
    assert res["result"][0]["values"] == [[t, str(t)] for t in range(end - 3, end + 1)]


def test_series(self_scraping):
    p = self_scraping
    now = time.time()
    for method in ("GET", "POST"):
        data = p.api("series", {"match[]": 'up{job="self"}', "start": f"{now - 60:.3f}",
                                "end": f"{now:.3f}"}, method)
        assert isinstance(data, list)
        assert data == [_up_labels(p)], data
    # several matchers are OR-ed
    data = p.api("series", [("match[]", 'up{job="self"}'),
                            ("match[]", 'scrape_duration_seconds{job="self"}')])
    names = sorted(d["__name__"] for d in data)
    assert names == ["scrape_duration_seconds", "up"], data
    # missing match[] is a client error
    r = p.get("/api/v1/series")
    assert r.status_code == 400
    assert r.json()["errorType"] == "bad_data"


def test_labels(self_scraping):
    p = self_scraping
    for method in ("GET", "POST"):
        data = p.api("labels", {}, method)
        assert isinstance(data, list)
        assert all(isinstance(x, str) for x in data)
        assert data == sorted(data)
        assert len(data) == len(set(data))
        for name in ("__name__", "instance", "job"):
            assert name in data
    data = p.api("labels", {"match[]": 'up{job="self"}'})
    assert data == ["__name__", "instance", "job"]


def test_label_values(self_scraping):
    p = self_scraping
    data = p.api("label/job/values")
    assert data == ["self"]
    data = p.api("label/instance/values")
    assert data == [p.address]
    names = p.api("label/__name__/values")
    assert names == sorted(names)
    for n in ("up", "scrape_duration_seconds", "scrape_samples_scraped",
              "process_resident_memory_bytes"):
        assert n in names
    assert p.api("label/no_such_label_xyz/values") == []


def test_buildinfo(self_scraping):
    data = self_scraping.api("status/buildinfo")
    for k in ("version", "revision", "branch", "buildUser", "buildDate", "goVersion"):
        assert k in data, data
        assert isinstance(data[k], str)
    assert data["version"]


def test_parse_error(self_scraping):
    p = self_scraping
    for r in (p.get("/api/v1/query", params={"query": "sum("}),
              p.post("/api/v1/query", data={"query": "sum("})):
        assert r.status_code == 400, r.text
        body = r.json()
        assert body["status"] == "error"
        assert body["errorType"] == "bad_data"
        assert "parse error" in body["error"], body


def test_range_end_before_start(self_scraping):
    p = self_scraping
    now = int(time.time())
    r = p.get("/api/v1/query_range", params={"query": "up", "start": now,
                                             "end": now - 10, "step": 1})
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["status"] == "error"
    assert body["errorType"] == "bad_data"
    assert body["error"]


def test_healthy(self_scraping):
    r = self_scraping.get("/-/healthy")
    assert r.status_code == 200
    r = self_scraping.get("/-/ready")
    assert r.status_code == 200


def test_metrics_endpoint(self_scraping):
    r = self_scraping.get("/metrics")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    m = re.search(r"^process_resident_memory_bytes(?:\{\})? (\S+)$", r.text, re.M)
    assert m, r.text[:2000]
    assert float(m.group(1)) > 0
    # the same metric is visible through self-scraping
    res = self_scraping.query(
        f'process_resident_memory_bytes{{job="self",instance="{self_scraping.address}"}}')
    assert len(res["result"]) == 1
    assert float(res["result"][0]["value"][1]) > 0


def test_version_flag_matches_buildinfo(bongsu_bin, self_scraping):
    import subprocess
    p = subprocess.run([str(bongsu_bin), "--version"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=20)
    assert p.returncode == 0
    out = p.stdout.decode("utf-8", "replace")
    version = self_scraping.api("status/buildinfo")["version"]
    assert version in out, (version, out)
