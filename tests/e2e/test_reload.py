"""Configuration reload: POST /-/reload behind --web.enable-lifecycle and
SIGHUP, plus /-/quit.

A reload applies the new file: a changed scrape interval takes effect, a new
job's targets get scraped (their `up` appears), and /api/v1/status/config
serves the new text.  A bad file is refused (500 with the reason over HTTP;
a log line for SIGHUP) and the running configuration keeps working.
"""

import signal
import time

import pytest

JOB_A = """\
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: a
    scrape_interval: 1s
    static_configs:
      - targets: ['{a}']
"""

JOB_A_SLOW_AND_B = """\
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: a
    scrape_interval: 2s
    static_configs:
      - targets: ['{a}']
  - job_name: b
    scrape_interval: 1s
    static_configs:
      - targets: ['{b}']
"""

BAD_CONFIG = """\
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: a
    scrape_interval: not-a-duration
    static_configs:
      - targets: ['{a}']
"""

METRICS = "# TYPE demo_value gauge\ndemo_value 42\n"

# Prometheus applies target changes every 5s; bongsu at once.
APPLY_TIMEOUT = 20.0


def _fill(text, **targets):
    for k, v in targets.items():
        text = text.replace("{" + k + "}", v)
    return text


@pytest.fixture
def targets(http_target_factory):
    return [http_target_factory(lambda path: (200, "text/plain; version=0.0.4", METRICS))
            for _ in range(3)]


def _up(p, job):
    res = p.query(f'up{{job="{job}"}}')["result"]
    return res[0]["value"][1] if res else None


def _target(p, job):
    for t in p.targets()["activeTargets"]:
        if t["labels"].get("job") == job:
            return t
    return None


def _config_text(p):
    return p.api("status/config")["yaml"]


def _reload_success(p):
    return p.api("status/runtimeinfo")["reloadConfigSuccess"]


def _latest_ts(p, job):
    res = p.query(f'timestamp(up{{job="{job}"}})')["result"]
    return float(res[0]["value"][1]) if res else None


def _assert_still_scraping(p, job, timeout=10.0):
    t0 = _latest_ts(p, job)
    p.wait_for(lambda: (_latest_ts(p, job) or 0) > (t0 or 0), timeout,
               f"new samples of up{{job=\"{job}\"}} after the refused reload")


def _spacing_ms(p, job, window):
    """Gaps between the last raw samples of up{job}."""
    res = p.query(f'up{{job="{job}"}}[{window}]')["result"]
    ts = [round(float(t) * 1000) for t, _ in res[0]["values"]]
    return [b - a for a, b in zip(ts, ts[1:])]


def test_http_reload(bongsu_factory, targets):
    a, b, _ = targets
    p = bongsu_factory(_fill(JOB_A, a=a.address), name="httpreload",
                       extra_args=["--web.enable-lifecycle"])
    p.wait_for(lambda: _up(p, "a") == "1", APPLY_TIMEOUT, 'up{job="a"} == 1')
    assert _target(p, "a")["scrapeInterval"] == "1s"
    assert _reload_success(p) is True

    # Reload with a slower job a and a new job b.
    p.config_path.write_text(_fill(JOB_A_SLOW_AND_B, a=a.address, b=b.address))
    r = p.post("/-/reload")
    assert r.status_code == 200, r.text
    assert r.text == ""
    p.wait_for(lambda: _up(p, "b") == "1", APPLY_TIMEOUT, 'up{job="b"} == 1 after reload')
    p.wait_for(lambda: _target(p, "a")["scrapeInterval"] == "2s", APPLY_TIMEOUT,
               "job a's scrape interval to become 2s")
    assert "job_name: b" in _config_text(p)
    assert _reload_success(p) is True
    # Job a is now scraped every 2s.
    time.sleep(7)
    gaps = _spacing_ms(p, "a", "5s")
    assert gaps and all(1500 <= g <= 2500 for g in gaps), gaps

    # A bad config is refused and the running one stays.
    p.config_path.write_text(_fill(BAD_CONFIG, a=a.address))
    r = p.post("/-/reload")
    assert r.status_code == 500, r.text
    assert r.text.startswith("failed to reload config: "), r.text
    assert "not-a-duration" in r.text, r.text
    assert _reload_success(p) is False
    assert "job_name: b" in _config_text(p)
    _assert_still_scraping(p, "a")
    _assert_still_scraping(p, "b")
    assert _target(p, "a")["scrapeInterval"] == "2s"

    # PUT works too, and a good file again clears the failure.
    p.config_path.write_text(_fill(JOB_A, a=a.address))
    r = p.session.put(p.url + "/-/reload", timeout=10)
    assert r.status_code == 200, r.text
    assert _reload_success(p) is True
    p.wait_for(lambda: _target(p, "b") is None, APPLY_TIMEOUT, "job b to be removed")
    assert "job_name: b" not in _config_text(p)


def test_sighup_reload(bongsu_factory, targets):
    a, _, c = targets
    p = bongsu_factory(_fill(JOB_A, a=a.address), name="hupreload")
    p.wait_for(lambda: _up(p, "a") == "1", APPLY_TIMEOUT, 'up{job="a"} == 1')

    p.config_path.write_text(_fill(JOB_A_SLOW_AND_B, a=a.address, b=c.address))
    p.proc.send_signal(signal.SIGHUP)
    p.wait_for(lambda: _up(p, "b") == "1", APPLY_TIMEOUT, 'up{job="b"} == 1 after SIGHUP')
    p.wait_for(lambda: _target(p, "a")["scrapeInterval"] == "2s", APPLY_TIMEOUT,
               "job a's scrape interval to become 2s")
    p.wait_for(lambda: "job_name: b" in _config_text(p), 10,
               "/api/v1/status/config to show the reloaded file")

    p.config_path.write_text(_fill(BAD_CONFIG, a=a.address))
    p.proc.send_signal(signal.SIGHUP)
    p.wait_for(lambda: _reload_success(p) is False, 10,
               "runtimeinfo to report the failed reload")
    assert p.running()
    assert "job_name: b" in _config_text(p)
    _assert_still_scraping(p, "a")
    _assert_still_scraping(p, "b")


def test_lifecycle_disabled(bongsu_factory):
    p = bongsu_factory(None, name="nolifecycle")
    for path in ("/-/reload", "/-/quit"):
        r = p.post(path)
        assert r.status_code == 403, (path, r.text)
        assert r.text == "Lifecycle API is not enabled."
        r = p.get(path)
        assert r.status_code == 405, (path, r.text)
        assert r.text == "Only POST or PUT requests allowed"
    assert p.running()


def test_quit(bongsu_factory):
    p = bongsu_factory(None, name="quit", extra_args=["--web.enable-lifecycle"])
    r = p.post("/-/quit")
    assert r.status_code == 200, r.text
    assert r.text == "Requesting termination... Goodbye!"
    rc = p.wait_exit(20)
    assert rc == 0, f"exit code {rc}\n{p.stderr_tail()}"
