"""InfluxDB line protocol: python3-influxdb's client against a real
InfluxDB 1.6 (anchor, 127.0.0.1:18086) and against bongsu, same calls.

Every point written must be queryable in bongsu as
<measurement>_<field>{<tags>, db="<db>"}; malformed lines must give the same
status class as InfluxDB and a message naming the line.
"""

import json
import time
import uuid

import pytest
import requests
from influxdb import InfluxDBClient
from influxdb.exceptions import InfluxDBClientError

from conftest import ANCHORS_SH

INFLUX = ("127.0.0.1", 18086)
DB = "anchors"


def _ping(host, port):
    try:
        return requests.get(f"http://{host}:{port}/ping", timeout=3).status_code == 204
    except requests.RequestException:
        return False


@pytest.fixture(scope="module")
def influx():
    import subprocess
    if not _ping(*INFLUX):
        subprocess.run(["bash", str(ANCHORS_SH), "start", "influxdb"], timeout=120,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while not _ping(*INFLUX) and time.monotonic() < deadline:
            time.sleep(0.5)
    if not _ping(*INFLUX):
        pytest.skip("influxdb anchor not available")
    return InfluxDBClient(*INFLUX, database=DB)


@pytest.fixture(scope="module")
def bongsu(module_bongsu_factory):
    p = module_bongsu_factory("global:\n  scrape_interval: 1s\n", name="influx")
    return p


def client_for(proc, **kw):
    host, port = proc.address.split(":")
    return InfluxDBClient(host, int(port), database=DB, **kw)


def points(run):
    now = int(time.time()) * 10**9
    return [
        {"measurement": "e2e_cpu", "tags": {"host": "a", "run": run},
         "time": now - 2 * 10**9,
         "fields": {"usage_idle": 97.5, "cores": 8, "ok": True, "note": "x"}},
        {"measurement": "e2e_cpu", "tags": {"host": "b,c d=e", "run": run},
         "time": now - 10**9, "fields": {"usage_idle": 12.25, "cores": 4, "ok": False}},
        {"measurement": "e2e mem", "tags": {"run": run}, "time": now,
         "fields": {"free": 1024}},
    ]


def expected_series(run):
    return {
        ("e2e_cpu_usage_idle", (("db", DB), ("host", "a"), ("run", run)), 97.5),
        ("e2e_cpu_cores", (("db", DB), ("host", "a"), ("run", run)), 8.0),
        ("e2e_cpu_ok", (("db", DB), ("host", "a"), ("run", run)), 1.0),
        ("e2e_cpu_usage_idle", (("db", DB), ("host", "b,c d=e"), ("run", run)), 12.25),
        ("e2e_cpu_cores", (("db", DB), ("host", "b,c d=e"), ("run", run)), 4.0),
        ("e2e_cpu_ok", (("db", DB), ("host", "b,c d=e"), ("run", run)), 0.0),
        ("e2e_mem_free", (("db", DB), ("run", run)), 1024.0),
    }


def test_reference_accepts_points(influx):
    run = uuid.uuid4().hex[:8]
    assert influx.write_points(points(run), time_precision="n")
    rows = list(influx.query(f"SELECT * FROM e2e_cpu WHERE run='{run}'").get_points())
    assert len(rows) == 2
    assert {r["host"] for r in rows} == {"a", "b,c d=e"}


@pytest.mark.parametrize("gzip", [False, True])
def test_points_queryable_in_bongsu(influx, bongsu, gzip):
    run = uuid.uuid4().hex[:8]
    c = client_for(bongsu, gzip=gzip)
    assert c.ping()
    assert influx.write_points(points(run), time_precision="n")
    assert c.write_points(points(run), time_precision="n")
    got = set()
    for r in bongsu.query(f'{{run="{run}"}}', time=time.time())["result"]:
        m = dict(r["metric"])
        name = m.pop("__name__")
        got.add((name, tuple(sorted(m.items())), float(r["value"][1])))
    assert got == expected_series(run)


def test_connect_calls(influx, bongsu):
    c = client_for(bongsu)
    name = "e2e_" + uuid.uuid4().hex[:6]
    for cl in (influx, c):
        cl.create_database(name)
        assert {"name": name} in cl.get_list_database()
    influx.drop_database(name)
    assert "X-Influxdb-Version" in requests.get(bongsu.url + "/ping", timeout=5).headers


BAD = [
    "e2e_bad",                         # missing fields
    "e2e_bad,host value=1",            # missing tag value
    "e2e_bad value=1x",                # invalid number
    "e2e_bad value=\"open",            # unbalanced quotes
    "e2e_bad value=1 12a",             # bad timestamp
]


@pytest.mark.parametrize("line", BAD)
def test_malformed_line_same_status_class(influx, bongsu, line):
    c = client_for(bongsu)
    codes, texts = [], []
    for cl in (influx, c):
        with pytest.raises(InfluxDBClientError) as ei:
            cl.write(line, params={"db": DB}, protocol="line")
        codes.append(ei.value.code)
        content = ei.value.content
        try:
            content = json.loads(content)["error"]
        except ValueError:
            pass
        texts.append(str(content))
    assert codes[0] // 100 == codes[1] // 100 == 4
    for t in texts:
        assert f"unable to parse '{line}'" in t


def test_partial_write(influx, bongsu):
    run = uuid.uuid4().hex[:8]
    body = (f"e2e_part,run={run} v=1\n"
            f"e2e_part,run={run} v=oops\n"
            f"e2e_part,run={run},k=2 v=2\n")
    statuses = []
    for url in (f"http://{INFLUX[0]}:{INFLUX[1]}", bongsu.url):
        r = requests.post(url + "/write", params={"db": DB}, data=body, timeout=10)
        statuses.append(r.status_code)
        assert r.json()["error"].startswith("partial write: unable to parse "
                                            f"'e2e_part,run={run} v=oops': invalid boolean")
    assert statuses == [400, 400]
    res = bongsu.query(f'e2e_part_v{{run="{run}"}}')["result"]
    assert len(res) == 2
