"""PromQL limits and bad queries through the HTTP API (issue 3, acceptance):

- a query over --query.max-samples fails with HTTP 422, errorType
  "execution" and Prometheus's message, and bongsu's resident memory
  returns to its level before the query (the engine hands freed memory back
  with malloc_trim after big queries, see src/promql/eval.c);
- bad queries fail with HTTP 400, errorType "bad_data" and Prometheus's
  message with the line:column position.

Runs against Prometheus too (BONGSU_BIN=/usr/bin/prometheus), except the
memory check, which is about bongsu's allocator.
"""

import time

import pytest

import rw_encode

N_SERIES = 2000
N_SAMPLES = 240          # 1 h at 15 s
MAX_SAMPLES = 2_000_000
TOO_MANY = "query processing would load too many samples into memory in query execution"


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def loaded(module_bongsu_factory):
    p = module_bongsu_factory(
        "global:\n  scrape_interval: 15s\n",
        extra_args=["--web.enable-remote-write-receiver",
                    f"--query.max-samples={MAX_SAMPLES}"])
    start_ms = (int(time.time() * 1000) - 2 * 3600_000) // 15_000 * 15_000
    batches = []
    for first in range(0, N_SERIES, 250):
        batch = []
        for i in range(first, first + 250):
            labels = {"__name__": "limits_metric", "job": f"j{i % 10}", "inst": f"i{i}"}
            batch.append((labels, [(start_ms + k * 15_000 + 7, float(i + k))
                                   for k in range(N_SAMPLES)]))
        batches.append(batch)
    rw_encode.push_batches(p.url + "/api/v1/write", batches)
    end_s = (start_ms + N_SAMPLES * 15_000) / 1000
    return p, start_ms / 1000, end_s


def post(p, path, params):
    return p.post("/api/v1/" + path, data=params, timeout=120)


def assert_too_many(r):
    assert r.status_code == 422, r.text[:300]
    body = r.json()
    assert body["status"] == "error"
    assert body["errorType"] == "execution"
    assert body["error"] == TOO_MANY


def test_data_loaded(loaded):
    p, _, end_s = loaded
    d = p.query("count(limits_metric)", time=end_s)
    assert d["result"][0]["value"][1] == str(N_SERIES)


def test_max_samples_422_and_memory_returns(loaded, is_bongsu):
    p, start_s, end_s = loaded
    small = {"query": "sum by (job) (rate(limits_metric[5m]))",
             "start": f"{start_s + 600:.3f}", "end": f"{end_s:.3f}", "step": "60"}
    # warm up: the code paths and the allocator's arenas of the workers
    for _ in range(6):
        assert post(p, "query_range", small).status_code == 200
    time.sleep(0.5)
    before = rss_kb(p.proc.pid) if is_bongsu else 0
    # a range query whose output alone holds 2000 series x 3600 points
    big = {"query": "limits_metric", "start": f"{end_s - 3600:.3f}", "end": f"{end_s:.3f}",
           "step": "1"}
    # an instant query loading 2000 x 240 x 5 samples through a subquery
    sub = {"query": "count_over_time(limits_metric[1h:3s])", "time": f"{end_s:.3f}"}
    peak = 0
    for _ in range(3):
        assert_too_many(post(p, "query_range", big))
        if is_bongsu:
            peak = max(peak, rss_kb(p.proc.pid))
        assert_too_many(post(p, "query", sub))
    # the server is fine afterwards
    assert post(p, "query_range", small).status_code == 200
    if not is_bongsu:
        return
    time.sleep(0.5)
    after = rss_kb(p.proc.pid)
    tolerance = max(8 * 1024, before // 10)
    print(f"RSS before {before} kB, peak {peak} kB, after {after} kB")
    assert after <= before + tolerance, \
        f"RSS before {before} kB, after {after} kB (peak seen {peak} kB)"


# (query, position and message as Prometheus 2.42 writes them)
BAD = [
    ("sum(", "1:5: parse error: unclosed left parenthesis"),
    ("foo{", "1:5: parse error: unexpected end of input inside braces"),
    ("rate(foo[5m]", "1:13: parse error: unclosed left parenthesis"),
    ("1 +", "1:4: parse error: unexpected end of input"),
    ("foo @ bar", "1:7: parse error: unexpected identifier \"bar\" in @, expected timestamp"),
    ("sum by (a) (x) + on(", "1:21: parse error: unclosed left parenthesis"),
]


@pytest.mark.parametrize("q,msg", BAD, ids=[b[0] for b in BAD])
def test_bad_query_400(loaded, q, msg):
    p, _, end_s = loaded
    for path, params in (("query", {"query": q, "time": f"{end_s:.3f}"}),
                         ("query_range", {"query": q, "start": f"{end_s - 600:.3f}",
                                          "end": f"{end_s:.3f}", "step": "60"})):
        r = post(p, path, params)
        assert r.status_code == 400, r.text[:300]
        body = r.json()
        assert body["status"] == "error"
        assert body["errorType"] == "bad_data"
        # Prometheus prefixes the parameter name on /query only
        want = f'invalid parameter "query": {msg}' if path == "query" else msg
        assert body["error"] == want
