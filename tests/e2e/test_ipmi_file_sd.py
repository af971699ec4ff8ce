"""file_sd_configs for ipmi_configs jobs, end to end.

bongsu starts with an IPMI job whose BMCs come only from target group files
(relative to the configuration file) and no file yet. While it runs, a JSON
file listing the anchor ipmi_sim (127.0.0.1:9623) is written: the BMC is
polled (`up` 1, with the group's labels and a label relabeled from
__meta_filepath) and listed in /api/v1/targets. The file emptied, the BMC
leaves /api/v1/targets; two files naming the same BMC poll it once; a reload
keeps it. A BMC in a file that is also a static target of the job is polled
once, as the static target.
"""

import json
import os
import signal

import pytest

from test_ipmi import SIM, ensure_ipmi_sim

pytestmark = pytest.mark.bongsu_only

INTERVAL = 2  # seconds
TIMEOUT = 20.0

CONFIG = f"""\
global:
  scrape_interval: 10s
ipmi_configs:
  - job_name: bmcsd
    scrape_interval: {INTERVAL}s
    scrape_timeout: 1500ms
    username: monitor
    password: monitorpass
    privilege: user
    workaround_flags: [opensesspriv]
    file_sd_configs:
      - files: ['bmcs/*.json']
        refresh_interval: 1h
    relabel_configs:
      - source_labels: [__meta_filepath]
        regex: '.*/([^/]*)\\.json'
        target_label: sdfile
"""


def _write(path, text):
    """Write beside and rename, as configuration tools do."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _targets(p):
    return {t["labels"]["instance"]: t for t in p.targets()["activeTargets"]
            if t["scrapePool"] == "bmcsd"}


def _up(p):
    res = p.query('up{job="bmcsd"}')["result"]
    return {r["metric"]["instance"]: r for r in res}


def test_ipmi_file_sd_add_and_empty(bongsu_factory):
    ensure_ipmi_sim()
    p = bongsu_factory(CONFIG, name="ipmifsd", start=False)
    bdir = p.workdir / "bmcs"
    bdir.mkdir()
    p.start()
    assert _targets(p) == {}

    f = bdir / "rack1.json"
    _write(f, json.dumps([{"targets": [SIM], "labels": {"rack": "r1"}}]))
    p.wait_for(lambda: _up(p).get(SIM, {}).get("value", [0, "0"])[1] == "1", TIMEOUT,
               "up == 1 for the BMC of the target group file")
    assert _up(p)[SIM]["metric"] == {"__name__": "up", "job": "bmcsd", "instance": SIM,
                                     "rack": "r1", "sdfile": "rack1"}
    t = _targets(p)[SIM]
    assert t["health"] == "up" and t["lastError"] == ""
    assert t["scrapeUrl"] == f"ipmi://{SIM}"
    assert t["labels"] == {"job": "bmcsd", "instance": SIM, "rack": "r1", "sdfile": "rack1"}
    temp = p.query('ipmi_temperature_celsius{job="bmcsd",name="CPU Temp"}')["result"]
    assert temp and temp[0]["metric"]["rack"] == "r1", temp

    # Emptied: the BMC is no longer a target.
    _write(f, "[]")
    p.wait_for(lambda: SIM not in _targets(p), TIMEOUT,
               "the BMC to leave /api/v1/targets once its file is emptied")

    # Back again, with a second file that repeats it: polled once.
    _write(f, json.dumps([{"targets": [SIM], "labels": {"rack": "r2"}}]))
    _write(bdir / "again.json", json.dumps([{"targets": [SIM]}]))
    p.wait_for(lambda: _targets(p).get(SIM, {}).get("health") == "up", TIMEOUT,
               "the BMC to be polled again")
    ts = [t for t in p.targets()["activeTargets"] if t["scrapePool"] == "bmcsd"]
    assert len(ts) == 1, ts

    # A reload that changes the relabeling keeps the discovered BMC (its
    # provider and groups are reused) and relabels it.
    p.config_path.write_text(CONFIG.replace("target_label: sdfile", "target_label: fromfile"))
    p.proc.send_signal(signal.SIGHUP)
    p.wait_for(lambda: _targets(p).get(SIM, {}).get("labels", {}).get("fromfile") in
               ("rack1", "again"), TIMEOUT, "the BMC relabeled after SIGHUP")
    assert _targets(p)[SIM]["health"] in ("up", "unknown")


STATIC_AND_SD = CONFIG.replace("    file_sd_configs:", f"""\
    static_configs:
      - targets: ['{SIM}']
        labels:
          origin: static
    file_sd_configs:""")


def test_ipmi_file_sd_duplicate_of_static(bongsu_factory):
    """A discovered BMC that is already a static target is skipped; the
    static one stays (the collector identifies BMCs by host:port)."""
    ensure_ipmi_sim()
    p = bongsu_factory(STATIC_AND_SD, name="ipmifsd2", start=False)
    bdir = p.workdir / "bmcs"
    bdir.mkdir()
    _write(bdir / "dup.json", json.dumps([{"targets": [SIM], "labels": {"rack": "r9"}}]))
    p.start()
    p.wait_for(lambda: _targets(p).get(SIM, {}).get("health") == "up", TIMEOUT,
               "the static BMC to be polled")
    ts = [t for t in p.targets()["activeTargets"] if t["scrapePool"] == "bmcsd"]
    assert len(ts) == 1 and ts[0]["labels"]["origin"] == "static", ts
