# SPDX-License-Identifier: Apache-2.0
"""The TSDB admin API (/api/v1/admin/tsdb/*) behind --web.enable-admin-api:
delete_series, clean_tombstones and snapshot, as Prometheus 2.42 serves them.

Data is loaded over remote write at synthetic times hours in the past (1h
blocks, so the head is cut into several blocks), then a series range is
deleted across blocks and head; the deletion must hold after kill -9 and
a restart, after clean_tombstones, and in a snapshot opened as a data
directory of its own.

Runs against Prometheus too (BONGSU_BIN=/usr/bin/prometheus): the checks of
bongsu's own files are skipped there.
"""

import os
import shutil
import time
from pathlib import Path

import pytest

from rw_encode import push

MIN_MS = 60_000
HOUR_MS = 3_600_000
SPAN_H = 6
JOBS = ("a", "b", "c")

CONFIG = "global:\n  scrape_interval: 15s\nscrape_configs: []\n"
DISABLED = {"status": "error", "errorType": "unavailable", "error": "admin APIs disabled"}
ENDPOINTS = ("delete_series?match[]=up", "clean_tombstones", "snapshot")


def value_of(job, t_ms):
    return float(JOBS.index(job) * 1_000_000 + t_ms // MIN_MS)


def load(p, base_ms):
    """One sample a minute for SPAN_H hours, per job, pushed in time order."""
    url = p.url + "/api/v1/write"
    step = 30 * MIN_MS
    for lo in range(base_ms, base_ms + SPAN_H * HOUR_MS, step):
        series = []
        for job in JOBS:
            samples = [(t, value_of(job, t)) for t in range(lo, lo + step, MIN_MS)]
            series.append(({"__name__": "adm", "job": job}, samples))
        push(url, series)


def dump(p, base_ms):
    """{job: {t_ms: value}} for every stored sample of adm."""
    at = (base_ms + SPAN_H * HOUR_MS) / 1000
    res = p.query(f"adm[{SPAN_H * 3600 + 60}s]", time=at)
    out = {}
    for s in res["result"]:
        out[s["metric"]["job"]] = {round(float(t) * 1000): float(v) for t, v in s["values"]}
    return out


def expected(base_ms, deleted):
    """deleted: {job: (lo_ms, hi_ms)} inclusive ranges gone."""
    out = {}
    for job in JOBS:
        vals = {}
        for t in range(base_ms, base_ms + SPAN_H * HOUR_MS, MIN_MS):
            lo, hi = deleted.get(job, (1, 0))
            if not lo <= t <= hi:
                vals[t] = value_of(job, t)
        if vals:
            out[job] = vals
    return out


def block_dirs(data_dir):
    return sorted(d for d in Path(data_dir).iterdir()
                  if len(d.name) == 26 and (d / "meta.json").exists())


def series_jobs(p, base_ms, is_bongsu=True):
    """Jobs /api/v1/series lists. Prometheus 2.42 still lists a head series
    whose samples are all deleted (its open chunk ends at +inf, so no
    tombstone covers it) until the head is compacted; bongsu lists only
    series with samples left, as Prometheus does for blocks."""
    if not is_bongsu:
        return ["a", "c"]
    data = p.api("series", {"match[]": "adm", "start": str(base_ms / 1000),
                            "end": str((base_ms + SPAN_H * HOUR_MS) / 1000)})
    return sorted(s["job"] for s in data)


def test_admin_api_disabled(bongsu_factory):
    p = bongsu_factory(CONFIG)
    for ep in ENDPOINTS:
        for method in ("POST", "PUT"):
            r = p.session.request(method, p.url + "/api/v1/admin/tsdb/" + ep, timeout=10)
            assert r.status_code == 500, (ep, method, r.status_code, r.text)
            assert r.headers["Content-Type"] == "application/json"
            assert r.json() == DISABLED
        r = p.get("/api/v1/admin/tsdb/" + ep.split("?")[0])
        assert r.status_code == 405
        assert r.headers.get("Allow") == "OPTIONS, POST, PUT"


def test_admin_api_bad_parameters(bongsu_factory):
    p = bongsu_factory(CONFIG, extra_args=["--web.enable-admin-api"])
    base = "/api/v1/admin/tsdb/"
    cases = [
        ("delete_series", {}, "no match[] parameter provided"),
        ("delete_series", {"match[]": "up", "start": "abc"},
         "invalid parameter \"start\": Invalid time value for 'start': "
         "cannot parse \"abc\" to a valid timestamp"),
        ("delete_series", {"match[]": "up{"},
         "invalid parameter \"match[]\": 1:4: parse error: unexpected end of input inside braces"),
        ("snapshot", {"skip_head": "x"},
         "invalid parameter \"skip_head\": unable to parse boolean: strconv.ParseBool: "
         "parsing \"x\": invalid syntax"),
    ]
    for ep, params, msg in cases:
        r = p.post(base + ep, data=params)
        assert r.status_code == 400, (ep, params, r.text)
        assert r.json() == {"status": "error", "errorType": "bad_data", "error": msg}
    # an empty store: every call succeeds (as in Prometheus, a selector of
    # empty-matching matchers only, and start after end, are accepted)
    r = p.post(base + "delete_series", params={"match[]": "up"})
    assert r.status_code == 204 and r.content == b""
    r = p.post(base + "delete_series", data={"match[]": '{job=~".*"}'})
    assert r.status_code == 204, r.text
    r = p.post(base + "delete_series", data={"match[]": "up", "start": "5", "end": "1"})
    assert r.status_code == 204, r.text
    r = p.session.put(p.url + base + "clean_tombstones", timeout=10)
    assert r.status_code == 204


def test_admin_delete_restart_clean_snapshot(bongsu_factory, is_bongsu, tmp_path):
    extra = ["--web.enable-admin-api", "--web.enable-remote-write-receiver",
             "--storage.tsdb.retention.time=3650d",
             "--storage.tsdb.min-block-duration=1h", "--storage.tsdb.max-block-duration=3h"]
    p = bongsu_factory(CONFIG, extra_args=extra, name="admin")
    base_ms = (int(time.time() * 1000) // HOUR_MS - 48) * HOUR_MS
    load(p, base_ms)
    assert dump(p, base_ms) == expected(base_ms, {})
    if is_bongsu:
        p.wait_for(lambda: len(block_dirs(p.data_dir)) >= 2, 60, "blocks cut from the head")

    # job a: a range across blocks; job b: everything (blocks and head)
    a_lo, a_hi = base_ms + HOUR_MS + 30 * MIN_MS, base_ms + 4 * HOUR_MS + 10 * MIN_MS
    deleted = {"a": (a_lo, a_hi), "b": (base_ms, base_ms + SPAN_H * HOUR_MS)}
    r = p.post("/api/v1/admin/tsdb/delete_series",
               data={"match[]": 'adm{job="a"}', "start": f"{a_lo / 1000:.3f}",
                     "end": f"{a_hi / 1000:.3f}"})
    assert r.status_code == 204, r.text
    r = p.session.put(p.url + "/api/v1/admin/tsdb/delete_series",
                      params={"match[]": 'adm{job="b"}'}, timeout=10)
    assert r.status_code == 204, r.text
    want = expected(base_ms, deleted)
    assert dump(p, base_ms) == want
    assert series_jobs(p, base_ms, is_bongsu) == ["a", "c"]
    if is_bongsu:
        assert any((d / "tombstones").exists() for d in block_dirs(p.data_dir))

    # kill -9 right after the 204s: the deletion is durable
    p.kill9()
    p.start()
    assert dump(p, base_ms) == want
    assert series_jobs(p, base_ms, is_bongsu) == ["a", "c"]

    # a clean restart (head checkpoint at shutdown) keeps it too
    p.restart()
    assert dump(p, base_ms) == want

    r = p.post("/api/v1/admin/tsdb/clean_tombstones")
    assert r.status_code == 204, r.text
    assert dump(p, base_ms) == want
    if is_bongsu:
        assert not any((d / "tombstones").exists() for d in block_dirs(p.data_dir))
    p.kill9()
    p.start()
    assert dump(p, base_ms) == want

    # snapshot with the head: a data directory with the same answers
    r = p.post("/api/v1/admin/tsdb/snapshot")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "success" and list(body["data"]) == ["name"]
    name = body["data"]["name"]
    assert len(name) == 33 and name[8] == "T" and name[15:17] == "Z-", name
    int(name[17:], 16)
    snap = Path(p.data_dir) / "snapshots" / name
    assert snap.is_dir()
    copy = tmp_path / "snapcopy" / "data"
    shutil.copytree(snap, copy)
    q = bongsu_factory(CONFIG, extra_args=["--storage.tsdb.retention.time=3650d"],
                       name="snapcopy", start=False)
    assert q.data_dir == copy
    q.start()
    assert dump(q, base_ms) == want
    assert series_jobs(q, base_ms, is_bongsu) == ["a", "c"]
    q.stop()

    # skip_head: the blocks only
    r = p.post("/api/v1/admin/tsdb/snapshot", params={"skip_head": "true"})
    assert r.status_code == 200, r.text
    snap2 = Path(p.data_dir) / "snapshots" / r.json()["data"]["name"]
    if is_bongsu:
        assert sorted(d.name for d in block_dirs(snap2)) == \
            sorted(d.name for d in block_dirs(p.data_dir))
        # hard links, not copies
        b0 = block_dirs(p.data_dir)[0]
        assert os.stat(b0 / "index").st_ino == os.stat(snap2 / b0.name / "index").st_ino


def test_admin_delete_then_append(bongsu_factory):
    """A deletion to the end of time reaches only the samples there are: a
    series still written to shows its new samples (as Prometheus)."""
    p = bongsu_factory(CONFIG, extra_args=["--web.enable-admin-api",
                                           "--web.enable-remote-write-receiver",
                                           "--storage.tsdb.retention.time=3650d"])
    base_ms = (int(time.time() * 1000) // HOUR_MS - 5) * HOUR_MS
    url = p.url + "/api/v1/write"
    lbl = {"__name__": "adm2", "job": "x"}
    push(url, [(lbl, [(t, 1.0) for t in range(base_ms, base_ms + HOUR_MS, MIN_MS)])])
    r = p.post("/api/v1/admin/tsdb/delete_series", data={"match[]": "adm2"})
    assert r.status_code == 204, r.text
    later = base_ms + HOUR_MS
    push(url, [(lbl, [(t, 2.0) for t in range(later, later + 10 * MIN_MS, MIN_MS)])])

    def samples():
        res = p.query("adm2[3h]", time=(later + 10 * MIN_MS) / 1000)
        return [(round(float(t) * 1000), float(v)) for s in res["result"] for t, v in s["values"]]
    want = [(t, 2.0) for t in range(later, later + 10 * MIN_MS, MIN_MS)]
    assert samples() == want
    p.kill9()
    p.start()
    assert samples() == want
