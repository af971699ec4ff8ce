"""Rules end to end: recording and alerting rules in bongsu against a real
Prometheus 2.42 over the same data, `for` state across a restart, and rule /
notifier failures that must not stop the other groups.

Both servers scrape one deterministic target served by the test (node_exporter
style metrics whose counters grow at fixed rates), with the same rule files:
a copy of tests/data/rules/node_alerts.yml with 2 s group intervals plus an
e2e group with short `for` durations.  Prometheus starts on a free port with
its own storage (started here, not the anchor, so that both see the same
target and rules).
"""

import math
import re
import time
from pathlib import Path

import pytest

from conftest import BongsuProcess, get_free_port

PROMETHEUS = Path("/usr/bin/prometheus")

E2E_RULES = """\
groups:
  - name: e2e.record
    interval: 2s
    rules:
      - record: zone:e2e_temp_celsius:max
        expr: max by (zone) (e2e_temp_celsius)
      - record: job:e2e_temp_celsius:sum
        expr: sum by (job) (e2e_temp_celsius)
      - record: job:e2e_hot:ratio
        expr: count by (job) (e2e_temp_celsius > 20) / count by (job) (e2e_temp_celsius)
  - name: e2e.alerts
    interval: 2s
    rules:
      - alert: E2ETempHigh
        expr: e2e_temp_celsius > 20
        for: 4s
        labels:
          severity: '{{ if gt $value 30.0 }}critical{{ else }}warning{{ end }}'
        annotations:
          summary: 'zone {{ $labels.zone }} at {{ $value }}'
      - alert: E2ETempSlow
        expr: e2e_temp_celsius > 5
        for: 1h
      - alert: E2ENever
        expr: e2e_temp_celsius > 1000
      - alert: E2EUsesRecording
        expr: job:e2e_temp_celsius:sum > 50
"""


def node_like_target(t0):
    """Responder for a node_exporter-like target: constant gauges and
    counters growing at fixed rates (so rate() is the same on both servers
    up to scrape jitter)."""
    def respond(path):
        el = time.time() - t0
        body = (
            "# HELP node_load1 1m load average.\n# TYPE node_load1 gauge\n"
            "node_load1 2.5\n"
            "# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.\n"
            "# TYPE node_cpu_seconds_total counter\n"
            f'node_cpu_seconds_total{{cpu="0",mode="idle"}} {1000 + 0.5 * el:.6f}\n'
            f'node_cpu_seconds_total{{cpu="0",mode="user"}} {500 + 0.5 * el:.6f}\n'
            f'node_cpu_seconds_total{{cpu="1",mode="idle"}} {1000 + 0.25 * el:.6f}\n'
            f'node_cpu_seconds_total{{cpu="1",mode="user"}} {500 + 0.75 * el:.6f}\n'
            "# TYPE node_filesystem_avail_bytes gauge\n"
            'node_filesystem_avail_bytes{device="/dev/sda1",fstype="ext4",mountpoint="/"} 3e9\n'
            "# TYPE node_filesystem_size_bytes gauge\n"
            'node_filesystem_size_bytes{device="/dev/sda1",fstype="ext4",mountpoint="/"} 1e10\n'
            "# TYPE node_filesystem_readonly gauge\n"
            'node_filesystem_readonly{device="/dev/sda1",fstype="ext4",mountpoint="/"} 0\n'
            "# HELP e2e_temp_celsius A test temperature.\n# TYPE e2e_temp_celsius gauge\n"
            'e2e_temp_celsius{zone="a"} 10\n'
            'e2e_temp_celsius{zone="b"} 25\n'
            'e2e_temp_celsius{zone="c"} 40\n')
        return 200, "text/plain; version=0.0.4", body
    return respond


def write_rule_files(repo_path, d):
    """node_alerts.yml with 2 s intervals, and the e2e group; absolute
    paths (the group alignment hashes the file name, so both servers must
    see the same one)."""
    d.mkdir(parents=True, exist_ok=True)
    src = (repo_path / "tests/data/rules/node_alerts.yml").read_text()
    node = re.sub(r"interval: \d+s", "interval: 2s", src)
    (d / "node_alerts.yml").write_text(node)
    (d / "e2e.yml").write_text(E2E_RULES)
    return [str(d / "node_alerts.yml"), str(d / "e2e.yml")]


def config_for(target, rule_files, extra=""):
    files = "\n".join(f"  - {f}" for f in rule_files)
    return f"""\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 2s
rule_files:
{files}
scrape_configs:
  - job_name: node
    static_configs:
      - targets: ['{target}']
{extra}"""


# Alerts whose value comes from rate(): equal up to scrape jitter, so only
# their labels and state are compared.
RATE_ALERTS = {"NodeCPUSaturated"}


def alert_key(a):
    if a["labels"]["alertname"] in RATE_ALERTS:
        return (tuple(sorted(a["labels"].items())), a["state"], None, None)
    return (tuple(sorted(a["labels"].items())), a["state"],
            tuple(sorted(a.get("annotations", {}).items())), a.get("value"))


def vector_by_labels(res):
    return {tuple(sorted(s["metric"].items())): float(s["value"][1]) for s in res}


@pytest.fixture(scope="module")
def pair(module_bongsu_factory, module_http_target_factory, bongsu_bin, repo_path,
         tmp_path_factory):
    """bongsu and a Prometheus 2.42 with the same config, rules and target."""
    if not PROMETHEUS.exists():
        pytest.skip("/usr/bin/prometheus is not installed")
    target = module_http_target_factory(node_like_target(time.time() - 100))
    rules_dir = tmp_path_factory.mktemp("rules")
    files = write_rule_files(repo_path, rules_dir)
    cfg = config_for(target.address, files)
    b = module_bongsu_factory(cfg, name="rules_bongsu")
    pdir = tmp_path_factory.mktemp("rules_prometheus")
    prom = BongsuProcess(PROMETHEUS, pdir, cfg, config_name="prometheus.yml")
    prom.start()
    yield b, prom, target
    prom.stop()


def test_recording_rules_match_prometheus(pair):
    b, prom, _ = pair
    names = ["zone:e2e_temp_celsius:max", "job:e2e_temp_celsius:sum", "job:e2e_hot:ratio",
             "instance:node_num_cpu:sum", "instance:node_cpu_utilisation:rate5m"]

    def all_present():
        return all(p.query(n)["result"] for p in (b, prom) for n in names)
    b.wait_for(all_present, 40, "recording series on both servers")
    time.sleep(2.5)  # a few more evaluation cycles
    t = time.time() - 2.0
    for n in names:
        vb = vector_by_labels(b.query(n, time=t)["result"])
        vp = vector_by_labels(prom.query(n, time=t)["result"])
        assert vb.keys() == vp.keys(), (n, vb, vp)
        for k in vb:
            if n.endswith("rate5m"):
                # rate() over scrapes taken at slightly different moments
                assert math.isclose(vb[k], vp[k], rel_tol=0.03), (n, k, vb[k], vp[k])
            else:
                assert vb[k] == vp[k], (n, k, vb[k], vp[k])
    # Exact values we know from the target.
    assert vector_by_labels(b.query("job:e2e_temp_celsius:sum")["result"]) == \
        {(("__name__", "job:e2e_temp_celsius:sum"), ("job", "node")): 75.0}
    util = b.query("instance:node_cpu_utilisation:rate5m")["result"]
    # rate() over a 5m window holding only seconds of samples is small, so
    # utilisation is near 1 for now (and equal to Prometheus's, above).
    assert len(util) == 1 and 0.5 < float(util[0]["value"][1]) <= 1.0


def test_group_evaluation_times_align_with_prometheus(pair):
    """Same file and group name: both servers evaluate at the same
    instants (Prometheus's offset from the hash of file and name)."""
    b, prom, _ = pair

    def stamps(p):
        r = p.query("job:e2e_temp_celsius:sum[20s]")["result"]
        return {round(float(v[0]) * 1000) % 2000 for v in r[0]["values"]} if r else None
    sb = b.wait_for(lambda: stamps(b), 20, "bongsu samples")
    sp = prom.wait_for(lambda: stamps(prom), 20, "prometheus samples")
    assert len(sb) == 1 and len(sp) == 1, (sb, sp)
    # Both phases within a few ms (Prometheus timestamps are ms, from its
    # own clock reading).
    d = abs(next(iter(sb)) - next(iter(sp)))
    assert min(d, 2000 - d) <= 5, (sb, sp)


def test_alert_states_match_prometheus(pair):
    b, prom, _ = pair

    def alerts(p):
        return sorted(alert_key(a) for a in p.api("alerts")["alerts"])

    def same_and_settled():
        ab, ap = alerts(b), alerts(prom)
        firing = [a for a in ab if a[1] == "firing"]
        return ab if ab == ap and len(firing) >= 3 else None
    try:
        got = b.wait_for(same_and_settled, 40, "identical alert sets on both servers")
    except AssertionError:
        raise AssertionError(f"bongsu: {alerts(b)}\nprometheus: {alerts(prom)}")
    names = {dict(k[0])["alertname"]: k[1] for k in got}
    assert names["E2ETempHigh"] == "firing"
    assert names["E2EUsesRecording"] == "firing"
    assert names["E2ETempSlow"] == "pending"
    assert names["NodeHighLoad"] == "pending"
    assert "E2ENever" not in names and "NodeTargetDown" not in names
    sev = {dict(k[0]).get("zone"): dict(k[0])["severity"]
           for k in got if dict(k[0])["alertname"] == "E2ETempHigh"}
    assert sev == {"b": "warning", "c": "critical"}


def normalise_matchers(q):
    """Sort the matchers inside each {...} and drop the spaces after their
    commas. bongsu's printer keeps the matchers as written, with ", ";
    Prometheus 2.42 prints them sorted, joined by "," (reported to the
    promql owner; only the printing differs, not the evaluation)."""
    def fix(m):
        parts = re.findall(r'[a-zA-Z_][a-zA-Z0-9_]*\s*(?:=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"',
                           m.group(1))
        return "{" + ",".join(sorted(p.replace(" ", "") for p in parts)) + "}"
    return re.sub(r"\{([^{}]*)\}", fix, q)


def test_rules_api_matches_prometheus(pair):
    b, prom, _ = pair

    def shape(p, **params):
        groups = p.api("rules", params)["groups"]
        return [(g["name"], Path(g["file"]).name, g["interval"],
                 [(r["name"], r["type"], normalise_matchers(r["query"]), r.get("duration"),
                   r.get("labels"), r.get("annotations")) for r in g["rules"]])
                for g in groups]
    sb, sp = shape(b), shape(prom)
    assert sb == sp, "\n".join(map(repr, [x for x in sb if x not in sp] + ["---"] + [x for x in sp if x not in sb]))
    assert shape(b, type="record") == shape(prom, type="record")
    assert shape(b, type="alert") == shape(prom, type="alert")
    only = b.api("rules", {"rule_name[]": "E2ETempHigh"})["groups"]
    assert [r["name"] for g in only for r in g["rules"]] == ["E2ETempHigh"]
    grp = b.api("rules", {"rule_group[]": "e2e.record"})["groups"]
    assert [g["name"] for g in grp] == ["e2e.record"]
    ex = b.api("rules", {"type": "alert", "exclude_alerts": "true"})["groups"]
    assert all("alerts" not in r or r["alerts"] in (None, []) for g in ex for r in g["rules"])
    r = b.get("/api/v1/rules", params={"type": "bogus"})
    assert r.status_code == 400 and r.json()["errorType"] == "bad_data"
    assert r.json()["error"] == 'invalid parameter "type": not supported value "bogus"'


# ------------------------------------------------------------------ restart

@pytest.mark.bongsu_only
def test_restart_during_for_restores_pending_time(bongsu_factory, http_target_factory, tmp_path):
    target = http_target_factory(node_like_target(time.time()))
    rules = tmp_path / "restore.yml"
    rules.write_text("""\
groups:
  - name: restore
    interval: 1s
    rules:
      - alert: E2ERestore
        expr: e2e_temp_celsius{zone="c"} > 20
        for: 60s
""")
    cfg = f"""\
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: ['{rules}']
scrape_configs:
  - job_name: node
    static_configs:
      - targets: ['{target.address}']
"""
    b = bongsu_factory(cfg, extra_args=["--rules.alert.for-grace-period=2s",
                                        "--rules.alert.for-outage-tolerance=1h",
                                        "--storage.tsdb.wal-fsync-interval=0s"])

    def pending():
        al = [a for a in b.api("alerts")["alerts"] if a["labels"]["alertname"] == "E2ERestore"]
        return al[0] if al and al[0]["state"] == "pending" else None
    first = b.wait_for(pending, 20, "E2ERestore pending")
    active1 = _rfc3339(first["activeAt"])
    time.sleep(8)
    stopped = time.time()
    spent = stopped - active1
    b.stop()
    time.sleep(3)  # an outage
    b.start()
    restarted = time.time()

    def restored():
        al = [a for a in b.api("alerts")["alerts"] if a["labels"]["alertname"] == "E2ERestore"]
        if not al:
            return None
        # Before restoration (second iteration) a fresh alert may show up;
        # wait for the restored one.
        act = _rfc3339(al[0]["activeAt"])
        return (al[0], act) if act < restarted - 2 else None
    alert, active2 = b.wait_for(restored, 20, "restored E2ERestore activeAt")
    assert alert["state"] == "pending"
    # The time already spent pending is kept (activeAt moved forward by the
    # outage, as Prometheus does), not restarted from zero.
    now = time.time()
    assert now - active2 >= spent - 2, (now - active2, spent)
    assert active2 >= active1 - 1


def _rfc3339(s):
    from datetime import datetime
    s = re.sub(r"(\.\d{6})\d*", r"\1", s.replace("Z", "+00:00"))
    return datetime.fromisoformat(s).timestamp()


# ---------------------------------------------------------------- failures

@pytest.mark.bongsu_only
def test_failing_rule_and_unreachable_alertmanager_are_reported(
        bongsu_factory, http_target_factory, tmp_path):
    target = http_target_factory(node_like_target(time.time()))
    dead_port = get_free_port()
    rules = tmp_path / "fail.yml"
    rules.write_text("""\
groups:
  - name: broken
    interval: 1s
    rules:
      - record: e2e:broken
        expr: e2e_temp_celsius + on() e2e_temp_celsius
      - record: e2e:after_broken
        expr: sum(e2e_temp_celsius)
      - alert: E2ETemplateError
        expr: e2e_temp_celsius{zone="c"} > 1
        annotations:
          bad: '{{ if gt $value 1 }}x{{ end }}'
  - name: healthy
    interval: 1s
    rules:
      - record: e2e:healthy
        expr: max(e2e_temp_celsius)
      - alert: E2EToNowhere
        expr: e2e_temp_celsius{zone="c"} > 1
""")
    cfg = f"""\
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: ['{rules}']
alerting:
  alertmanagers:
    - timeout: 1s
      static_configs:
        - targets: ['127.0.0.1:{dead_port}']
scrape_configs:
  - job_name: node
    static_configs:
      - targets: ['{target.address}']
"""
    b = bongsu_factory(cfg)

    def groups():
        return {g["name"]: g for g in b.api("rules")["groups"]}

    def broken_reported():
        g = groups()["broken"]["rules"][0]
        return g if g["health"] == "err" and g["lastError"] else None
    bad = b.wait_for(broken_reported, 20, "the failing rule reported")
    assert "match" in bad["lastError"], bad
    # The rule after the failing one and the other group still run. Groups
    # are evaluated independently (and a group's rules one after another),
    # so either may not have run yet when the failure is first seen.
    b.wait_for(lambda: groups()["broken"]["rules"][1]["health"] == "ok", 10,
               "the rule after the failing one evaluated")
    b.wait_for(lambda: groups()["healthy"]["rules"][0]["health"] == "ok", 10,
               "the other group evaluated")
    gs = groups()
    assert gs["broken"]["rules"][0]["health"] == "err", gs["broken"]
    b.wait_for(lambda: b.query("e2e:healthy")["result"], 10, "e2e:healthy written")
    b.wait_for(lambda: b.query("e2e:after_broken")["result"], 10, "e2e:after_broken written")
    assert b.query("e2e:broken")["result"] == []
    # The template error is shown in the annotation, the alert still fires.
    te = [a for a in b.api("alerts")["alerts"] if a["labels"]["alertname"] == "E2ETemplateError"]
    assert te and te[0]["annotations"]["bad"].startswith("<error expanding template"), te

    def metric(name):
        text = b.get("/metrics").text
        vals = [float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
                if l.startswith(name) and not l.startswith("#")]
        return sum(vals) if vals else 0.0
    b.wait_for(lambda: metric("bongsu_rule_evaluation_failures_total") > 0, 10,
               "rule evaluation failures counted")
    b.wait_for(lambda: metric("bongsu_notifications_errors_total") > 0, 20,
               "notification errors counted")
    b.wait_for(lambda: metric("bongsu_notifications_dropped_total") > 0, 20,
               "undeliverable alerts counted as dropped")
    # Evaluation goes on while the Alertmanager is unreachable.
    e1 = groups()["healthy"]["lastEvaluation"]
    time.sleep(2.5)
    assert groups()["healthy"]["lastEvaluation"] != e1


@pytest.mark.bongsu_only
def test_bad_rule_file_refuses_whole_reload(bongsu_factory, http_target_factory, tmp_path):
    target = http_target_factory(node_like_target(time.time()))
    good = tmp_path / "good.yml"
    good.write_text("groups: [{name: g, interval: 1s, rules: [{record: e2e:one, expr: vector(1)}]}]\n")
    cfg = f"""\
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: ['{good}']
scrape_configs:
  - job_name: node
    static_configs:
      - targets: ['{target.address}']
"""
    b = bongsu_factory(cfg, extra_args=["--web.enable-lifecycle"])
    b.wait_for(lambda: b.query("e2e:one")["result"], 10, "e2e:one")
    bad = tmp_path / "bad.yml"
    bad.write_text("groups:\n  - name: x\n    rules:\n      - record: y\n        expr: '1 +'\n")
    b.config_path.write_text(cfg.replace(f"['{good}']", f"['{good}', '{bad}']")
                             .replace("scrape_interval: 1s\n  eval", "scrape_interval: 2s\n  eval"))
    r = b.post("/-/reload")
    assert r.status_code == 500
    assert "bad.yml" in r.text and "parse error" in r.text, r.text
    info = b.api("status/runtimeinfo")
    assert info["reloadConfigSuccess"] is False
    # The old configuration keeps running: same groups, same scrape interval.
    assert [g["name"] for g in b.api("rules")["groups"]] == ["g"]
    assert "scrape_interval: 1s" in b.api("status/config")["yaml"]
    tgt = b.targets()["activeTargets"][0]
    assert tgt["scrapeInterval"] == "1s"
    # Fixed: the reload goes through.
    bad.write_text("groups: [{name: x, rules: [{record: e2e:two, expr: vector(2)}]}]\n")
    assert b.post("/-/reload").status_code == 200
    assert sorted(g["name"] for g in b.api("rules")["groups"]) == ["g", "x"]
    assert b.api("status/runtimeinfo")["reloadConfigSuccess"] is True
