"""IPMI end to end: bongsu configured with `ipmi_configs:` polls the anchor
ipmi_sim (127.0.0.1:9623/udp, user monitor/monitorpass with USER privilege;
see ../shared/tools/anchors.sh) and serves sensor metrics, `up`, the target in
/api/v1/targets and the SEL events in /api/v1/ipmi/events; an event appended
with `anchors.sh ipmi-sel-add` shows up once within an interval; cursor paging
yields no duplicates; a wrong password and an ADMIN request over IPMI 1.5
give up 0 with the documented lastError.

The SEL of the shared simulator grows with every run (and with other tests),
so the tests never count absolute numbers of events, only what they add.
"""

import random
import subprocess
import time

import pytest

from conftest import ANCHORS_SH

pytestmark = pytest.mark.bongsu_only

SIM = "127.0.0.1:9623"
INTERVAL = 2  # seconds


def ensure_ipmi_sim():
    if not ANCHORS_SH.exists():
        pytest.skip(f"{ANCHORS_SH} missing")
    st = subprocess.run(["bash", str(ANCHORS_SH), "status"], stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT, timeout=30).stdout.decode()
    if any(l.split()[:1] == ["ipmi_sim"] and " up " in f" {l} " for l in st.splitlines()):
        return
    p = subprocess.run(["bash", str(ANCHORS_SH), "start", "ipmi_sim"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=120)
    out = p.stdout.decode("utf-8", "replace")
    if p.returncode != 0 and "not installed" in out.lower():
        pytest.skip(f"ipmi_sim cannot be started: {out}")
    assert p.returncode == 0, out


def sel_add(*args):
    p = subprocess.run(["bash", str(ANCHORS_SH), "ipmi-sel-add"] + [str(a) for a in args],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    assert p.returncode == 0, p.stdout.decode("utf-8", "replace")


def ipmi_config(job="bmc", password="monitorpass", driver="LAN_2_0", privilege="user",
                flags="[opensesspriv]"):
    return f"""\
global:
  scrape_interval: 10s
ipmi_configs:
  - job_name: {job}
    scrape_interval: {INTERVAL}s
    scrape_timeout: 1500ms
    username: monitor
    password: {password}
    driver: {driver}
    privilege: {privilege}
    workaround_flags: {flags}
    static_configs:
      - targets: ['{SIM}']
        labels:
          rack: r1
    relabel_configs:
      - target_label: dc
        replacement: lab
"""


@pytest.fixture(scope="module")
def bmc(module_bongsu_factory):
    ensure_ipmi_sim()
    b = module_bongsu_factory(ipmi_config(), name="ipmi")

    def up():
        r = b.query('up{job="bmc"}')["result"]
        return r if r and r[0]["value"][1] == "1" else None
    b.wait_for(up, 20, 'up{job="bmc"} == 1')
    return b


def events(b, **params):
    r = b.get("/api/v1/ipmi/events", params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "success", body
    return body["data"]["events"], body["data"]["cursor"]


def bmc_target(b):
    ts = [t for t in b.targets()["activeTargets"] if t["scrapePool"] == "bmc"]
    assert len(ts) == 1, ts
    return ts[0]


def test_sensor_metrics_and_up(bmc):
    up = bmc.query('up{job="bmc"}')["result"][0]["metric"]
    assert up == {"__name__": "up", "job": "bmc", "instance": SIM, "rack": "r1", "dc": "lab"}
    for name in ["ipmi_temperature_celsius", "ipmi_fan_speed_rpm", "ipmi_sensor_state",
                 "ipmi_scrape_duration_seconds", "ipmi_sel_logs_count",
                 "ipmi_chassis_power_state"]:
        res = bmc.query(f'{name}{{job="bmc"}}')["result"]
        assert res, f"{name} missing"
        assert all(s["metric"]["instance"] == SIM and s["metric"]["dc"] == "lab" for s in res)
    temp = bmc.query('ipmi_temperature_celsius{name="CPU Temp"}')["result"]
    assert temp and 0 < float(temp[0]["value"][1]) < 150, temp


def test_target_listed_in_api_v1_targets(bmc):
    t = bmc_target(bmc)
    assert t["health"] == "up" and t["lastError"] == ""
    assert t["labels"] == {"job": "bmc", "instance": SIM, "rack": "r1", "dc": "lab"}
    assert t["scrapeUrl"] == f"ipmi://{SIM}"
    assert t["scrapeInterval"] == f"{INTERVAL}s" and t["scrapeTimeout"] == "1s500ms"
    # ?state=dropped leaves active targets out, ipmi ones included
    d = bmc.api("targets", {"state": "dropped"})
    assert d["activeTargets"] == []


def test_sel_events_served(bmc):
    # Other users of the shared simulator may clear its SEL: add our own.
    sel_add("0x08", "0x04", "0x6f", "0x01", "0xff", "0xff")  # PSU failure
    sel_add("0x01", "0x01", "0x01", "0x59", 93, 85)          # CPU Temp critical

    def some():
        ev, _ = events(bmc, instance=SIM)
        types = {e["sensor_type"] for e in ev}
        return ev if {"Temperature", "Power Supply"} <= types else None
    ev = bmc.wait_for(some, 3 * INTERVAL + 5, "the SEL events")
    for e in ev:
        assert e["instance"] == SIM and e["job"] == "bmc" and e["bmc"] == SIM
        assert e["severity"] in ("nominal", "warning", "critical", "unknown")
        assert len(e["raw"]) == 32
    crit, _ = events(bmc, severity="critical", sensor_type="temperature")
    assert crit and all(e["severity"] == "critical" and e["sensor_type"] == "Temperature"
                        for e in crit)
    none, _ = events(bmc, instance="10.9.9.9:623")
    assert none == []
    r = bmc.get("/api/v1/ipmi/events", params={"cursor": "bogus"})
    assert r.status_code == 400 and r.json()["errorType"] == "bad_data", r.text
    r = bmc.get("/api/v1/ipmi/events", params={"limit": "0"})
    assert r.status_code == 400, r.text


def test_added_event_appears_once_within_an_interval(bmc):
    _, cursor = events(bmc, limit=10000)
    # A reading and threshold unlikely to be used by anyone else.
    d2, d3 = random.randint(100, 200), random.randint(100, 200)
    tail = f"0101{0x01:02x}59{d2:02x}{d3:02x}"
    added = time.time()
    sel_add("0x01", "0x01", "0x01", "0x59", d2, d3)

    def mine():
        ev, _ = events(bmc, cursor=cursor, limit=10000)
        got = [e for e in ev if e["raw"].endswith(tail)]
        return got or None
    got = bmc.wait_for(mine, 3 * INTERVAL + 3, "the added SEL event", interval=0.2)
    # One interval, plus the BMC round trip and the API poll.
    assert time.time() - added <= INTERVAL + 3
    assert len(got) == 1 and got[0]["severity"] == "critical", got
    assert got[0]["sensor_type"] == "Temperature" and got[0]["direction"] == "Asserted"
    time.sleep(2 * INTERVAL + 1)  # more polls: still once
    ev, _ = events(bmc, cursor=cursor, limit=10000)
    assert len([e for e in ev if e["raw"].endswith(tail)]) == 1


def test_cursor_paging_has_no_duplicates(bmc):
    sel_add("0x0c", "0x05", "0x6f", "0x00", "0xff", "0xff")
    time.sleep(INTERVAL + 1)
    everything, _ = events(bmc, limit=10000)
    seen, cursor, pages = [], "", 0
    while True:
        page, nxt = events(bmc, limit=2, cursor=cursor) if cursor else events(bmc, limit=2)
        pages += 1
        seen += [e["seq"] for e in page]
        if not page:
            break
        assert nxt != cursor
        cursor = nxt
        assert pages < 10000
    assert len(seen) == len(set(seen)), "duplicate events across pages"
    assert seen[:len(everything)] == [e["seq"] for e in everything]
    # A follower at the end sees nothing again, then exactly the new ones.
    again, same = events(bmc, cursor=cursor)
    assert again == [] and same == cursor
    sel_add("0x0c", "0x05", "0x6f", "0x00", "0xff", "0xff")

    def new():
        ev, _ = events(bmc, cursor=cursor)
        return ev or None
    ev = bmc.wait_for(new, 3 * INTERVAL + 3, "the next event after the cursor")
    assert len(ev) == 1 and ev[0]["sensor_type"] == "Memory", ev


@pytest.mark.parametrize("case,kw,error", [
    ("wrong_password", {"password": "wrongpass"},
     f"BMC {SIM}: password invalid for user monitor"),
    ("admin_over_lan", {"driver": "LAN", "privilege": "admin", "flags": "[]"},
     f"BMC {SIM} refused privilege ADMINISTRATOR for user monitor: requested privilege level "
     "exceeds limit; set privilege: user"),
])
def test_failures_give_up_0_and_last_error(bongsu_factory, case, kw, error):
    ensure_ipmi_sim()
    b = bongsu_factory(ipmi_config(job=f"bmc_{case}", **kw), name=case)

    def down():
        ts = [t for t in b.targets()["activeTargets"] if t["scrapePool"] == f"bmc_{case}"]
        return ts[0] if ts and ts[0]["health"] == "down" else None
    t = b.wait_for(down, 20, f"{case}: target down")
    assert t["lastError"] == error
    r = b.query(f'up{{job="bmc_{case}"}}')["result"]
    assert r and r[0]["value"][1] == "0", r
    # One log line per state change, not one per poll.
    time.sleep(2 * INTERVAL + 0.5)
    assert b.stderr_text().count(error) <= 1, b.stderr_text()


def test_bad_ipmi_config_is_refused_with_position(bongsu_factory):
    b = bongsu_factory(ipmi_config(flags="[opensesspriv, nosuchflag]"), start=False)
    b.start(wait_ready=False)
    assert b.wait_exit(20) not in (None, 0)
    err = b.stderr_text()
    assert 'bongsu.yml:11:38: unknown workaround flag "nosuchflag" for driver LAN_2_0' in err, err
