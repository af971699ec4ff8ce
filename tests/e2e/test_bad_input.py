"""Bad configuration files and misbehaving scrape targets."""

import re
import time

import pytest

from conftest import wait_up

# --------------------------------------------------------------------------
# bad configs: the process must refuse to start and say where the error is

UNKNOWN_KEY = """\
global:
  scrape_interval: 15s

scrape_configs:
  - job_name: a
    static_configs:
      - targets: ['127.0.0.1:1']
  - job_name: b
    scrape_intervall: 5s
    static_configs:
      - targets: ['127.0.0.1:2']
"""
UNKNOWN_KEY_LINE, UNKNOWN_KEY_COL = 9, 5

BAD_DURATION = """\
global:
  scrape_interval: 15s
scrape_configs:
  - job_name: a
    static_configs:
      - targets: ['127.0.0.1:1']
  - job_name: b
    static_configs:
      - targets: ['127.0.0.1:2']
    scrape_interval: 15x
"""
BAD_DURATION_LINE = 10


def _start_bad(bongsu_factory, config, name):
    p = bongsu_factory(config, start=False, config_name=f"{name}.yml", name=name)
    p.start(wait_ready=False)
    rc = p.wait_exit(10)
    err = p.stderr_text()
    assert rc is not None, f"still running 10s after start with a bad config:\n{err}"
    assert rc != 0, f"exit code 0 with a bad config:\n{err}"
    return p, err


def _has_line(err, fname, line):
    """bongsu reports FILE:LINE:COL; Prometheus reports 'line N:'."""
    return (re.search(re.escape(fname) + rf":{line}:\d+:", err) is not None
            or re.search(rf"\bline {line}\b", err) is not None)


def test_config_unknown_key(bongsu_factory):
    p, err = _start_bad(bongsu_factory, UNKNOWN_KEY, "unknownkey")
    assert "unknownkey.yml" in err, err
    assert "scrape_intervall" in err, err
    assert _has_line(err, "unknownkey.yml", UNKNOWN_KEY_LINE), err


def test_config_bad_duration(bongsu_factory):
    p, err = _start_bad(bongsu_factory, BAD_DURATION, "badduration")
    assert "badduration.yml" in err, err
    assert "15x" in err, err


@pytest.mark.bongsu_only
def test_config_bad_duration_line(bongsu_factory):
    """Prometheus does not report a position for bad durations; bongsu does."""
    p, err = _start_bad(bongsu_factory, BAD_DURATION, "badduration")
    assert re.search(r"badduration\.yml:%d:\d+:" % BAD_DURATION_LINE, err), err


@pytest.mark.bongsu_only
def test_config_error_exact_format(bongsu_factory):
    p, err = _start_bad(bongsu_factory, UNKNOWN_KEY, "unknownkey")
    want = (f'bongsu: error loading config from "{p.config_path}": '
            f'{p.config_path}:{UNKNOWN_KEY_LINE}:{UNKNOWN_KEY_COL}: '
            f'field scrape_intervall not found in type config.ScrapeConfig')
    # the path may be printed as given on the command line (absolute here)
    assert want in err or want.replace(str(p.config_path), p.config_path.name) in err, err


# --------------------------------------------------------------------------
# misbehaving targets

GARBAGE = "this is { not valid\n"

TARGETS_CONFIG = """\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: self
    static_configs:
      - targets: ['127.0.0.1:{port}']
  - job_name: garbage
    static_configs:
      - targets: ['{garbage}']
  - job_name: err500
    static_configs:
      - targets: ['{err500}']
"""


@pytest.fixture(scope="module")
def bad_targets(module_bongsu_factory, module_http_target_factory):
    garbage = module_http_target_factory(
        lambda path: (200, "text/plain; version=0.0.4", GARBAGE))
    err500 = module_http_target_factory(
        lambda path: (500, "text/plain", "internal error\n"))
    cfg = (TARGETS_CONFIG.replace("{garbage}", garbage.address)
           .replace("{err500}", err500.address))
    p = module_bongsu_factory(cfg, name="badtargets")
    wait_up(p, "self", p.address, timeout=15)
    return p, garbage, err500


def _target(p, job):
    ts = [t for t in p.targets()["activeTargets"] if t["labels"]["job"] == job]
    assert len(ts) == 1, ts
    return ts[0]


def _wait_down(p, job, address):
    def check():
        r = p.query(f'up{{job="{job}",instance="{address}"}}')["result"]
        if not r or r[0]["value"][1] != "0":
            return None
        t = _target(p, job)
        return t if t["health"] == "down" and t["lastError"] else None
    return p.wait_for(check, 15, f"{job} target to be down with an error")


def test_garbage_target(bad_targets):
    p, garbage, _ = bad_targets
    t = _wait_down(p, "garbage", garbage.address)
    assert t["labels"]["instance"] == garbage.address
    assert t["scrapeUrl"] == f"http://{garbage.address}/metrics"
    err = t["lastError"]
    print(f"lastError for garbage: {err!r}")
    assert err.strip(), t
    assert t["lastScrape"] and t["lastScrapeDuration"] >= 0


@pytest.mark.bongsu_only
def test_garbage_target_error_mentions_line(bad_targets):
    p, garbage, _ = bad_targets
    t = _wait_down(p, "garbage", garbage.address)
    assert re.search(r"\bline\b", t["lastError"]), t["lastError"]


def test_http_500_target(bad_targets):
    p, _, err500 = bad_targets
    t = _wait_down(p, "err500", err500.address)
    assert "500" in t["lastError"], t


def test_server_keeps_working(bad_targets):
    p, garbage, err500 = bad_targets
    _wait_down(p, "garbage", garbage.address)
    _wait_down(p, "err500", err500.address)
    assert p.running()
    assert p.query("1 + 1")["result"][1] == "2"
    res = p.query("up")["result"]
    got = {r["metric"]["job"]: r["value"][1] for r in res}
    assert got == {"self": "1", "garbage": "0", "err500": "0"}, res
    # self-scraping continues
    t1 = float(p.query('timestamp(up{job="self"})')["result"][0]["value"][1])
    time.sleep(2.5)
    t2 = float(p.query('timestamp(up{job="self"})')["result"][0]["value"][1])
    assert t2 > t1
    # failed scrapes still store the synthetic series
    r = p.query('scrape_samples_scraped{job="garbage"}')["result"]
    assert len(r) == 1 and r[0]["value"][1] == "0", r
    assert p.get("/-/healthy").status_code == 200
