"""Metadata endpoints against the anchor Prometheus 2.42: both scrape the
anchor node_exporter as job "node" (127.0.0.1:19100), so /api/v1/metadata and
/api/v1/targets/metadata must give the same answers for its metrics, and the
same errors for bad parameters.
"""

import pytest
import requests

from conftest import wait_anchor_scrapes

CONFIG = """\
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: node
    static_configs:
      - targets: ['{node}']
"""

METRICS = ["node_load1", "node_cpu_seconds_total", "node_filesystem_avail_bytes",
           "node_network_receive_bytes_total", "go_goroutines",
           "node_exporter_build_info"]


@pytest.fixture(scope="module")
def pair(module_bongsu_factory, anchor_node_exporter, anchor_prometheus):
    b = module_bongsu_factory(CONFIG.replace("{node}", anchor_node_exporter), name="metadata")

    def scraped():
        t = b.targets()["activeTargets"]
        return t and t[0]["health"] == "up"
    b.wait_for(scraped, 15, "node_exporter scraped")
    wait_anchor_scrapes(anchor_prometheus, "node", anchor_node_exporter)
    return b, anchor_prometheus


def prom_get(base, path, params=None):
    return requests.get(base + path, params=params, timeout=10)


def test_metadata_matches_prometheus(pair):
    b, prom = pair
    for m in METRICS:
        got = b.api("metadata", {"metric": m})
        want = prom_get(prom, "/api/v1/metadata", {"metric": m}).json()["data"]
        assert got == want, (m, got, want)
    assert b.api("metadata", {"metric": "no_such_metric"}) == \
        prom_get(prom, "/api/v1/metadata", {"metric": "no_such_metric"}).json()["data"] == {}


def test_metadata_limit(pair):
    b, _ = pair
    assert b.api("metadata", {"limit": "0"}) == {}
    two = b.api("metadata", {"limit": "2"})
    assert len(two) == 2
    everything = b.api("metadata")
    assert set(METRICS) <= set(everything)
    for name, entries in everything.items():
        assert entries and all(set(e) == {"type", "help", "unit"} for e in entries), name
    one = b.api("metadata", {"limit_per_metric": "1"})
    assert all(len(v) == 1 for v in one.values())


def test_targets_metadata_matches_prometheus(pair):
    b, prom = pair
    for m in ["node_load1", "node_cpu_seconds_total"]:
        params = {"match_target": '{job="node"}', "metric": m}
        got = b.api("targets/metadata", params)
        want = prom_get(prom, "/api/v1/targets/metadata", params).json()["data"]
        assert got == want, (m, got, want)
        assert len(got) == 1 and got[0]["target"] == {"instance": "127.0.0.1:19100",
                                                      "job": "node"}
    # Without metric: every family of the target, each naming its metric.
    params = {"match_target": '{job="node"}'}
    got = b.api("targets/metadata", params)
    want = prom_get(prom, "/api/v1/targets/metadata", params).json()["data"]
    key = lambda e: e["metric"]
    gm, wm = {key(e): e for e in got}, {key(e): e for e in want}
    common = set(gm) & set(wm)
    assert len(common) > 100 and len(common) >= 0.95 * len(wm), (len(gm), len(wm))
    for k in common:
        assert gm[k] == wm[k], k
    assert b.api("targets/metadata", {"match_target": '{job="nope"}'}) == []
    lim = b.api("targets/metadata", {"match_target": '{job="node"}', "limit": "0"})
    assert lim == []


def test_metadata_errors_match_prometheus(pair):
    b, prom = pair
    cases = [("/api/v1/metadata", {"limit": "abc"}),
             ("/api/v1/targets/metadata", {"limit": "x1"}),
             ("/api/v1/targets/metadata", {"match_target": "{job="}),
             ("/api/v1/targets/metadata", {"match_target": "up{"})]
    for path, params in cases:
        rb = b.get(path, params=params)
        rp = prom_get(prom, path, params)
        assert rb.status_code == rp.status_code == 400, (path, params, rb.text, rp.text)
        jb, jp = rb.json(), rp.json()
        assert jb["status"] == jp["status"] == "error"
        assert jb["errorType"] == jp["errorType"] == "bad_data"
        if "limit" in params:
            assert jb["error"] == jp["error"], (jb, jp)
        else:
            assert jb["error"].startswith('invalid parameter "match_target": '), jb
            assert jp["error"].startswith('invalid parameter "match_target": '), jp
