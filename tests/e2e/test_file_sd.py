"""file_sd_configs end to end.

bongsu starts with a job whose targets come from a JSON and a YAML target
group file (relative to the configuration file, as Prometheus resolves them).
The targets are small HTTP servers in the test.  While bongsu runs the files
are rewritten: a target added to a file gets scraped (its `up` appears), a
target removed from it goes stale (`up` disappears from instant queries), a
broken file keeps its last good targets, and /api/v1/targets shows the
__meta_filepath label among the discovered labels.
"""

import json
import os
import time

import pytest

CONFIG = """\
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: fsd
    scrape_interval: 1s
    scrape_timeout: 1s
    file_sd_configs:
      - files: ['targets/*.json', 'targets/*.yml']
        refresh_interval: 1h
"""

METRICS = "# TYPE demo_value gauge\ndemo_value 7\n"

# Prometheus applies discovered changes every 5s; bongsu at once.
TIMEOUT = 20.0


def _write(path, text):
    """Write beside and rename, as configuration tools do."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _up_instances(p):
    res = p.query('up{job="fsd"}')["result"]
    return {r["metric"]["instance"]: r["value"][1] for r in res}


def _active(p):
    return {t["labels"]["instance"]: t for t in p.targets()["activeTargets"]
            if t["labels"].get("job") == "fsd"}


@pytest.fixture
def servers(http_target_factory):
    return [http_target_factory(lambda path: (200, "text/plain; version=0.0.4", METRICS))
            for _ in range(4)]


def test_file_sd_add_remove(bongsu_factory, servers, tmp_path):
    a, b, c, d = servers
    p = bongsu_factory(CONFIG, name="filesd", start=False)
    tdir = p.workdir / "targets"
    tdir.mkdir()
    jfile = tdir / "web.json"
    yfile = tdir / "db.yml"
    _write(jfile, json.dumps([{"targets": [a.address, b.address],
                               "labels": {"team": "web"}}]))
    p.start()

    p.wait_for(lambda: _up_instances(p) == {a.address: "1", b.address: "1"}, TIMEOUT,
               "up == 1 for the two targets of the JSON file")
    t = _active(p)[a.address]
    assert t["discoveredLabels"]["__meta_filepath"].endswith("targets/web.json")
    assert t["labels"]["team"] == "web"
    assert "__meta_filepath" not in t["labels"]

    # A YAML file adds a target.
    _write(yfile, f"- targets: ['{c.address}']\n  labels:\n    team: db\n")
    p.wait_for(lambda: _up_instances(p).get(c.address) == "1", TIMEOUT,
               "up == 1 for the target of the new YAML file")
    assert _active(p)[c.address]["labels"]["team"] == "db"

    # The JSON file drops a and gains d: a goes stale, d is scraped.
    _write(jfile, json.dumps([{"targets": [b.address, d.address],
                               "labels": {"team": "web"}}]))
    p.wait_for(lambda: _up_instances(p) == {b.address: "1", c.address: "1",
                                            d.address: "1"}, TIMEOUT,
               "a's up to go stale and d's to appear")
    assert a.address not in _active(p)

    # A broken file keeps the targets it had.
    jfile.write_text('[{"targets": ["' + a.address + '"')
    time.sleep(3)
    assert set(_active(p)) == {b.address, c.address, d.address}
    assert _up_instances(p) == {b.address: "1", c.address: "1", d.address: "1"}

    # Deleting the YAML file removes its target.
    yfile.unlink()
    p.wait_for(lambda: set(_up_instances(p)) == {b.address, d.address}, TIMEOUT,
               "c's up to go stale once its file is deleted")
