"""Pushgateway API, protobuf delimited bodies: the same bytes sent to a real
Pushgateway 1.5 (anchor, 127.0.0.1:19091) and to bongsu, same statuses, same
exposed series.

Go's client_golang push package sends
``application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily;
encoding=delimited`` by default: MetricFamily messages, each preceded by its
length as a varint.  There is no Go client here and no protobuf library
in the e2e requirements, so the bodies are encoded by the small encoder below,
written from the protobuf wire format (varints, 64-bit doubles,
length-delimited fields) and the field numbers of the client data model.

What the Pushgateway exposes on /metrics (empty labels dropped, as
Prometheus stores them) is compared with bongsu's instant query results, as
in test_push.py.  Bodies the Pushgateway accepts but then exposes broken or
silently drops (invalid metric names, unknown types, gauge histograms, an
explicit le label) are refused by bongsu; they are listed in
docs/pushing.md and not compared here.
"""

import struct
import uuid

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from conftest import ensure_anchor

pytestmark = pytest.mark.bongsu_only

PGW = "127.0.0.1:19091"
CONFIG = """\
global:
  scrape_interval: 1s
"""
CT = ("application/vnd.google.protobuf; "
      "proto=io.prometheus.client.MetricFamily; encoding=delimited")
TIME_METRICS = ("push_time_seconds", "push_failure_time_seconds")
COUNTER, GAUGE, SUMMARY, UNTYPED, HISTOGRAM = 0, 1, 2, 3, 4


# ------------------------------------------------------------ the encoder

def varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def key(field, wire):
    return varint(field << 3 | wire)


def f_varint(field, v):
    return key(field, 0) + varint(v)


def f_double(field, v):
    return key(field, 1) + struct.pack("<d", v)


def f_bytes(field, b):
    if isinstance(b, str):
        b = b.encode()
    return key(field, 2) + varint(len(b)) + b


def metric(labels=(), gauge=None, counter=None, untyped=None, summary=None,
           histogram=None, timestamp_ms=None):
    """A Metric: label=1, gauge=2, counter=3, summary=4, untyped=5,
    timestamp_ms=6, histogram=7.  summary is (count, sum, [(q, v)]);
    histogram is (count, sum, [(upper_bound, cumulative_count)])."""
    b = b"".join(f_bytes(1, f_bytes(1, n) + f_bytes(2, v)) for n, v in labels)
    if gauge is not None:
        b += f_bytes(2, f_double(1, gauge))
    if counter is not None:
        b += f_bytes(3, f_double(1, counter))
    if summary is not None:
        count, total, qs = summary
        b += f_bytes(4, f_varint(1, count) + f_double(2, total) + b"".join(
            f_bytes(3, f_double(1, q) + f_double(2, v)) for q, v in qs))
    if untyped is not None:
        b += f_bytes(5, f_double(1, untyped))
    if timestamp_ms is not None:
        b += f_varint(6, timestamp_ms)
    if histogram is not None:
        count, total, buckets = histogram
        b += f_bytes(7, f_varint(1, count) + f_double(2, total) + b"".join(
            f_bytes(3, f_varint(1, c) + f_double(2, ub)) for ub, c in buckets))
    return b


def family(name, mtype, metrics, help=None):
    """A MetricFamily: name=1, help=2, type=3, metric=4 (mtype None: no
    type field, COUNTER by the field's default)."""
    b = f_bytes(1, name)
    if help is not None:
        b += f_bytes(2, help)
    if mtype is not None:
        b += f_varint(3, mtype)
    return b + b"".join(f_bytes(4, m) for m in metrics)


def delimited(*messages):
    return b"".join(varint(len(m)) + m for m in messages)


# ---------------------------------------------------------------- helpers

@pytest.fixture(scope="module")
def pushgateway():
    ensure_anchor("pushgateway", f"http://{PGW}/-/ready")
    return PGW


@pytest.fixture(scope="module")
def bongsu(module_bongsu_factory):
    return module_bongsu_factory(CONFIG, name="pushpb")


def pgw_series(job):
    text = requests.get(f"http://{PGW}/metrics", timeout=10).text
    out = set()
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.labels.get("job") != job:
                continue
            labels = tuple(sorted((k, v) for k, v in s.labels.items() if v != ""))
            value = None if s.name in TIME_METRICS else float(s.value)
            out.add((s.name, labels, value))
    return out


def bongsu_series(proc, job):
    out = set()
    for r in proc.query(f'{{job="{job}"}}')["result"]:
        m = dict(r["metric"])
        name = m.pop("__name__")
        value = None if name in TIME_METRICS else float(r["value"][1])
        out.add((name, tuple(sorted(m.items())), value))
    return out


def send(base, method, path, body, ct=CT):
    r = requests.request(method, base + path, data=body,
                         headers={"Content-Type": ct}, timeout=10)
    return r.status_code, r.text


# ------------------------------------------------------------------ tests

def scenario(base, job, series_of):
    inf = float("inf")
    grp = f"/metrics/job/{job}/instance/host-1"
    seen = []

    def step(what, method, path, body):
        status, _ = send(base, method, path, body)
        seen.append((what, status))
        seen.append(("after " + what, series_of(job)))

    step("put", "PUT", grp, delimited(
        family("batch_last_success", GAUGE,
               [metric([("stage", "load")], gauge=1700000000),
                metric([("stage", "transform"), ("job", "overridden")],
                       gauge=1700000100)], "Last success."),
        family("batch_rows_total", COUNTER, [metric(counter=7)], "Rows."),
        family("batch_raw", UNTYPED, [metric(untyped=1e-05)]),
        family("batch_latency", SUMMARY,
               [metric([("op", "read")],
                       summary=(40, 12.5, [(0.5, 0.25), (0.9, 0.75), (0.99, 1.5)]))],
               "Latency."),
        # Go's encoder leaves the +Inf bucket out.
        family("batch_seconds", HISTOGRAM,
               [metric(histogram=(3, 3.5, [(1, 1), (5, 2)]))], "Duration."),
        family("batch_bytes", HISTOGRAM,
               [metric(histogram=(4, 4096, [(0.001, 0), (1e6, 3), (inf, 4)]))]),
        family("batch_untyped_default_total", None, [metric(counter=2)]),
        family("batch_empty", GAUGE, []),
    ))
    # POST replaces only families of the same name; a repeated family in one
    # body: the last one wins.
    step("post", "POST", grp, delimited(
        family("batch_last_success", GAUGE,
               [metric([("stage", "load")], gauge=1)]),
        family("batch_last_success", GAUGE,
               [metric([("stage", "load")], gauge=1700000200)], "Last success."),
    ))
    # A gauge where another group has the counter: refused by the checks.
    step("clash", "PUT", f"/metrics/job/{job}/instance/other", delimited(
        family("batch_rows_total", GAUGE, [metric(gauge=1)])))
    step("delete other", "DELETE", f"/metrics/job/{job}/instance/other", None)
    # Undecodable bodies: 400, nothing changes.
    step("truncated", "PUT", grp, delimited(
        family("batch_rows_total", COUNTER, [metric(counter=1)]))[:-2])
    step("bad varint", "PUT", grp, b"\xff" * 11 + b"\x01")
    step("cut field", "PUT", grp, b"\x03\x0a\x05x")
    step("empty put", "PUT", grp, b"")
    step("delete", "DELETE", grp, None)
    return seen


def test_same_bytes_as_pushgateway(pushgateway, bongsu):
    job = "e2e_pb_" + uuid.uuid4().hex[:8]
    ref = scenario(f"http://{PGW}", job, pgw_series)
    got = scenario(bongsu.url, job, lambda j: bongsu_series(bongsu, j))
    ref_d = dict(ref)
    assert ref_d["put"] == 200 and ref_d["post"] == 200
    assert ref_d["clash"] == 400 and ref_d["truncated"] == 400
    assert ("batch_seconds_bucket",
            (("instance", "host-1"), ("job", job), ("le", "+Inf")), 3.0) \
        in ref_d["after put"]
    assert ref_d["after delete"] == set()
    assert len(ref) == len(got)
    for (what, want), (what2, have) in zip(ref, got):
        assert what == what2
        assert have == want, f"{what}: bongsu {have!r} != pushgateway {want!r}"


def test_listing_matches_pushgateway(pushgateway, bongsu):
    """GET /api/v1/metrics after the same protobuf push.  The histogram sends
    its +Inf bucket: the Pushgateway lists a protobuf histogram's buckets as
    sent (without the implicit +Inf one it exposes on /metrics), while
    bongsu keeps what is exposed, +Inf included (docs/pushing.md)."""
    job = "e2e_pb_" + uuid.uuid4().hex[:8]
    body = delimited(
        family("lst_g", GAUGE, [metric([("a", "1")], gauge=2.5)], "G."),
        family("lst_s", SUMMARY, [metric(summary=(3, 6, [(0.5, 1)]))], "S."),
        family("lst_h", HISTOGRAM,
               [metric(histogram=(2, 3, [(1, 1), (float("inf"), 2)]))], "H."))
    for base in (f"http://{PGW}", bongsu.url):
        assert send(base, "PUT", f"/metrics/job/{job}", body)[0] == 200

    def strip(base):
        out = []
        for g in requests.get(base + "/api/v1/metrics", timeout=10).json()["data"]:
            if g["labels"].get("job") != job:
                continue
            for k, v in g.items():
                if isinstance(v, dict) and "time_stamp" in v:
                    v["time_stamp"] = "T"
                    if k in TIME_METRICS:
                        for m in v["metrics"]:
                            m["value"] = "V"
            out.append(g)
        return out
    want = strip(f"http://{PGW}")
    assert want and strip(bongsu.url) == want
    for base in (f"http://{PGW}", bongsu.url):
        send(base, "DELETE", f"/metrics/job/{job}", None)


def test_refusals_same_status(pushgateway, bongsu):
    """Bodies both refuse with 400.  The Pushgateway finds some of these in
    its consistency check (and then records a failed push); bongsu refuses
    them while decoding, so only the statuses are compared, and the
    timestamp text, which both produce in the consistency check.  (A body
    ending inside a length prefix, e.g. b"\\x80", is 200 in the Pushgateway
    and 400 in bongsu.)"""
    cases = {
        "timestamp": delimited(family("r_g", GAUGE, [metric(gauge=1, timestamp_ms=1000)])),
        "dup label": delimited(family("r_g", GAUGE, [metric([("a", "1"), ("a", "2")], gauge=1)])),
        "bad label": delimited(family("r_g", GAUGE, [metric([("1a", "v")], gauge=1)])),
        "quantile label": delimited(family("r_s", SUMMARY, [
            metric([("quantile", "1")], summary=(1, 1, []))])),
        "bad utf8": delimited(family("r_g", GAUGE, [metric([("a", b"\xff")], gauge=1)])),
        "missing value": delimited(family("r_g", GAUGE, [metric(counter=1)])),
    }
    for what, body in cases.items():
        job = "e2e_pb_" + uuid.uuid4().hex[:8]
        a = send(f"http://{PGW}", "PUT", f"/metrics/job/{job}", body)
        b = send(bongsu.url, "PUT", f"/metrics/job/{job}", body)
        assert a[0] == 400, (what, a)
        assert b[0] == a[0], (what, a, b)
        if what == "timestamp":
            assert b[1] == a[1]
        for base in (f"http://{PGW}", bongsu.url):
            send(base, "DELETE", f"/metrics/job/{job}", None)


def test_gzip_protobuf(bongsu):
    """Content-Encoding: gzip works for protobuf bodies too (bongsu only:
    the Pushgateway 1.5 reads gzip as well, but this is about our decoder
    order: gunzip, then protobuf)."""
    import gzip
    job = "e2e_pb_" + uuid.uuid4().hex[:8]
    body = gzip.compress(delimited(family("gz_g", GAUGE, [metric(gauge=4)])))
    r = requests.put(bongsu.url + f"/metrics/job/{job}", data=body,
                     headers={"Content-Type": CT, "Content-Encoding": "gzip"},
                     timeout=10)
    assert r.status_code == 200, r.text
    res = bongsu.query(f'gz_g{{job="{job}"}}')["result"]
    assert res and res[0]["value"][1] == "4"
    send(bongsu.url, "DELETE", f"/metrics/job/{job}", None)
