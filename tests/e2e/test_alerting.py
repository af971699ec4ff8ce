"""Alerting end to end: bongsu sends alerts to the anchor Alertmanager 0.25
(../shared/tools/anchors/alertmanager.yml: route group_by [alertname],
group_wait 1s, group_interval 5s, one webhook receiver with send_resolved),
which notifies the anchor webhook_sink; its log
/tmp/anchors/webhook_sink/alerts.jsonl must show a firing and then a resolved
notification for our alert, with its labels (external labels added) and
annotations (templates expanded).
"""

import json
import time
import uuid
from pathlib import Path

import pytest

from conftest import ensure_anchor

SINK_LOG = Path("/tmp/anchors/webhook_sink/alerts.jsonl")


@pytest.fixture(scope="module")
def alertmanager():
    ensure_anchor("webhook_sink", "http://127.0.0.1:19095/")
    ensure_anchor("alertmanager", "http://127.0.0.1:19093/-/ready")
    return "127.0.0.1:19093"


def sink_notifications(run_id):
    """(status, alert) for every alert of every webhook call that carries
    our run id, in arrival order."""
    out = []
    try:
        lines = SINK_LOG.read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            body = json.loads(line)["body"]
        except (ValueError, KeyError):
            continue
        for a in body.get("alerts", []) if isinstance(body, dict) else []:
            if a.get("labels", {}).get("e2e_run") == run_id:
                out.append((a.get("status"), a))
    return out


def test_firing_then_resolved_reach_the_webhook(alertmanager, bongsu_factory,
                                                http_target_factory, tmp_path):
    state = {"value": 1}

    def respond(path):
        return 200, "text/plain", f"# TYPE e2e_switch gauge\ne2e_switch {state['value']}\n"
    target = http_target_factory(respond)
    run_id = uuid.uuid4().hex
    rules = tmp_path / "alerting.yml"
    rules.write_text(f"""\
groups:
  - name: e2e.alerting
    interval: 1s
    rules:
      - alert: BongsuE2EWebhook
        expr: e2e_switch > 0
        labels:
          severity: page
          e2e_run: {run_id}
        annotations:
          summary: 'switch on {{{{ $labels.instance }}}} is {{{{ $value }}}}'
          site: '{{{{ $externalLabels.site }}}}'
""")
    cfg = f"""\
global:
  scrape_interval: 1s
  evaluation_interval: 1s
  external_labels:
    site: e2e
rule_files: ['{rules}']
alerting:
  alertmanagers:
    - static_configs:
        - targets: ['{alertmanager}']
      api_version: v2
      timeout: 5s
scrape_configs:
  - job_name: switch
    static_configs:
      - targets: ['{target.address}']
"""
    b = bongsu_factory(cfg, extra_args=["--rules.alert.resend-delay=2s"])

    def firing():
        got = [a for st, a in sink_notifications(run_id) if st == "firing"]
        return got[0] if got else None
    a = b.wait_for(firing, 30, "a firing notification in the webhook sink", interval=0.5)
    assert a["labels"] == {"alertname": "BongsuE2EWebhook", "severity": "page",
                           "e2e_run": run_id, "instance": target.address,
                           "job": "switch", "site": "e2e"}, a
    assert a["annotations"] == {"summary": f"switch on {target.address} is 1", "site": "e2e"}, a
    assert a["generatorURL"].startswith("http"), a
    # The Alertmanager itself lists it, as sent by bongsu.
    import requests
    ams = requests.get(f"http://{alertmanager}/api/v2/alerts",
                       params={"filter": f'e2e_run="{run_id}"'}, timeout=5).json()
    assert len(ams) == 1 and ams[0]["status"]["state"] == "active", ams

    state["value"] = 0

    def resolved():
        got = [a for st, a in sink_notifications(run_id) if st == "resolved"]
        return got[0] if got else None
    r = b.wait_for(resolved, 40, "a resolved notification in the webhook sink", interval=0.5)
    assert r["labels"] == a["labels"]
    assert r["endsAt"] > r["startsAt"]
    # firing came first, and nothing fired again after the resolution
    seq = [st for st, _ in sink_notifications(run_id)]
    assert seq.index("firing") < seq.index("resolved"), seq
    assert b.api("alerts")["alerts"] == []


@pytest.mark.bongsu_only
def test_alertmanager_api_v1_is_refused(bongsu_factory, tmp_path):
    cfg = """\
alerting:
  alertmanagers:
    - api_version: v1
      static_configs:
        - targets: ['127.0.0.1:19093']
"""
    b = bongsu_factory(cfg, start=False)
    b.start(wait_ready=False)
    rc = b.wait_exit(20)
    assert rc not in (None, 0)
    err = b.stderr_text()
    assert "bongsu.yml:3:20: alertmanager api v1 is no longer supported" in err, err
