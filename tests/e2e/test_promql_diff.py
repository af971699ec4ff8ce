# SPDX-License-Identifier: Apache-2.0
"""Differential PromQL test: the binary under test against a real
Prometheus 2.42 (issue 3, item 6).

Both servers start empty (no scrape jobs) with the remote-write receiver on;
the same seeded dataset (promql_gen.make_dataset, ~110 series, 1 h at 15 s,
timestamps off the evaluation grid) is pushed to both; then >= 300 generated
queries (promql_gen.generate) run as instant queries at several times and as
one range query each, and the answers are compared:

* same status (success/error) and, for errors, the same errorType (message
  differences are only counted);
* same resultType, same label sets, same timestamps;
* values equal within 1e-9 relative (NaN == NaN, ±Inf only equal to itself);
* for instant queries whose outermost call is sort/sort_desc or an
  ungrouped topk/bottomk, the same order of values.

The reference is $PROMQL_DIFF_REF (default /usr/bin/prometheus); the system
under test is $BONGSU_BIN (see conftest.py).  BONGSU_BIN=/usr/bin/prometheus
compares Prometheus with itself, which must report 0 mismatches.
PROMQL_DIFF_SEED picks another dataset and query set; PROMQL_DIFF_N the
number of queries (default 330); PROMQL_DIFF_SUT_ARGS adds arguments to the
system under test.
"""

import math
import os
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

import promql_gen  # noqa: E402
import rw_encode  # noqa: E402
from conftest import BongsuProcess  # noqa: E402

REF_BIN = os.environ.get("PROMQL_DIFF_REF", "/usr/bin/prometheus")
SEED = int(os.environ.get("PROMQL_DIFF_SEED", "20261126"))
N_QUERIES = int(os.environ.get("PROMQL_DIFF_N", "330"))
# extra arguments for the system under test (e.g. to check that the harness
# notices a different --query.lookback-delta)
SUT_ARGS = os.environ.get("PROMQL_DIFF_SUT_ARGS", "").split()
REL_TOL = 1e-9
SHOW = 15                      # mismatches listed in the failure message
WORKERS = 4

CONFIG = """\
global:
  scrape_interval: 15s
  evaluation_interval: 1m
"""
RW_FLAG = "--web.enable-remote-write-receiver"


def _supports_rw(binary):
    try:
        p = subprocess.run([str(binary), "--help"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=20)
    except OSError:
        return False
    return RW_FLAG.lstrip("-") in p.stdout.decode("utf-8", "replace")


# --------------------------------------------------------------------------
# environment: two servers with the same data


class Env:
    pass


@pytest.fixture(scope="module")
def diff_env(bongsu_bin, tmp_path_factory):
    if not Path(REF_BIN).exists():
        pytest.skip(f"reference Prometheus {REF_BIN} not installed")
    if not _supports_rw(bongsu_bin):
        pytest.skip(f"{bongsu_bin} has no {RW_FLAG} flag yet (remote-write "
                    f"receiver not wired into the server)")
    ref = BongsuProcess(REF_BIN, tmp_path_factory.mktemp("ref"), CONFIG,
                        extra_args=[RW_FLAG], config_name="prometheus.yml")
    sut = BongsuProcess(bongsu_bin, tmp_path_factory.mktemp("sut"), CONFIG,
                        extra_args=[RW_FLAG] + SUT_ARGS)
    try:
        ref.start()
        sut.start()
        env = Env()
        env.ref, env.sut = ref, sut
        now_ms = int(time.time() * 1000)
        # data covers [S, S+60m), ending ~3 minutes before now
        start_ms = (now_ms - 63 * 60_000) // promql_gen.SCRAPE_MS * promql_gen.SCRAPE_MS
        S = start_ms / 1000.0
        frac = promql_gen.EVAL_FRAC_MS / 1000.0
        env.start_s = S
        env.instant_times = [S + 3660 + frac, S + 2710 + frac, S + 1800 + frac,
                             S + 905 + frac, S + 190 + frac]
        env.range = (S + 120 + frac, S + 3660 + frac)
        env.steps = [60, 45, 120]
        env.at_times = [S + 600 + frac, S + 1500 + frac, S + 2400 + frac, S + 3300 + frac]

        data = promql_gen.make_dataset(SEED, start_ms)
        batches = promql_gen.time_batches(data, start_ms)
        bodies = [rw_encode.build_body(b) for b in batches]
        env.n_series = len(data)
        env.n_samples = promql_gen.sample_count(data)
        live = sum(1 for _, s in data for _, v in s if not rw_encode.is_stale_nan(v))

        errors = []

        def push_all(p):
            sess = requests.Session()
            try:
                for body in bodies:
                    r = sess.post(p.url + "/api/v1/write", data=body,
                                  headers=rw_encode.HEADERS, timeout=60)
                    if not 200 <= r.status_code < 300:
                        errors.append(f"{p.binary}: remote write -> HTTP "
                                      f"{r.status_code}: {r.text[:300]}")
                        return
            except requests.RequestException as e:
                errors.append(f"{p.binary}: remote write failed: {e!r}")

        ts = [threading.Thread(target=push_all, args=(p,)) for p in (ref, sut)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert not errors, "\n".join(errors)

        # every pushed sample must be queryable on both before comparing
        names = sorted({lab["__name__"] for lab, _ in data})
        q = " + ".join(f"sum(count_over_time({n}[2h]))" for n in names)
        for p in (ref, sut):
            def loaded(p=p):
                res = p.query(q, time=S + 3660 + frac)["result"]
                return res and int(float(res[0]["value"][1])) == live
            p.wait_for(loaded, 20, f"{live} samples visible on {p.binary}")
        env.live_samples = live
        yield env
    finally:
        ref.stop()
        sut.stop()


# --------------------------------------------------------------------------
# comparison


_local = threading.local()


def _session():
    s = getattr(_local, "s", None)
    if s is None:
        s = _local.s = requests.Session()
    return s


def run_query(proc, q, spec):
    if spec[0] == "instant":
        path, params = "query", {"query": q, "time": f"{spec[1]:.3f}"}
    else:
        path, params = "query_range", {"query": q, "start": f"{spec[1]:.3f}",
                                       "end": f"{spec[2]:.3f}", "step": str(spec[3])}
    try:
        r = _session().post(f"{proc.url}/api/v1/{path}", data=params, timeout=30)
    except requests.RequestException as e:
        return {"http": None, "status": "transport", "error": repr(e)}
    try:
        body = r.json()
    except ValueError:
        return {"http": r.status_code, "status": "badjson", "error": r.text[:300]}
    body["http"] = r.status_code
    return body


def _f(s):
    return float(s)          # "NaN", "+Inf", "-Inf" parse as floats


def close(a, b):
    a, b = _f(a), _f(b)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if a == b:
        return True
    if math.isinf(a) or math.isinf(b):
        return False
    return abs(a - b) <= REL_TOL * max(abs(a), abs(b))


def _key(metric):
    return tuple(sorted(metric.items()))


def _fmt_key(k):
    d = dict(k)
    name = d.pop("__name__", "")
    return name + "{" + ",".join(f'{a}="{b}"' for a, b in sorted(d.items())) + "}"


_ORDERED = re.compile(r"^(sort|sort_desc)\(|^(topk|bottomk)\s*\(")


def ordered_query(q):
    return bool(_ORDERED.match(q.strip()))


def compare(q, spec, ref, sut):
    """Returns None if equal, else a short reason."""
    if ref.get("status") != sut.get("status"):
        return (f"status {ref.get('status')}/{ref.get('errorType', '')} vs "
                f"{sut.get('status')}/{sut.get('errorType', '')}")
    if ref["status"] != "success":
        if ref.get("errorType") != sut.get("errorType"):
            return f"errorType {ref.get('errorType')} vs {sut.get('errorType')}"
        if ref.get("http") != sut.get("http"):
            return f"HTTP status {ref.get('http')} vs {sut.get('http')}"
        return None
    rd, sd = ref["data"], sut["data"]
    if rd.get("resultType") != sd.get("resultType"):
        return f"resultType {rd.get('resultType')} vs {sd.get('resultType')}"
    rt, rr, sr = rd["resultType"], rd["result"], sd["result"]
    if rt in ("scalar", "string"):
        if _f(rr[0]) != _f(sr[0]):
            return f"timestamp {rr[0]} vs {sr[0]}"
        ok = close(rr[1], sr[1]) if rt == "scalar" else rr[1] == sr[1]
        return None if ok else f"value {rr[1]} vs {sr[1]}"
    rk = sorted(_key(x["metric"]) for x in rr)
    sk = sorted(_key(x["metric"]) for x in sr)
    if rk != sk:
        only_r = [_fmt_key(k) for k in rk if k not in set(sk)][:3]
        only_s = [_fmt_key(k) for k in sk if k not in set(rk)][:3]
        return (f"label sets differ: {len(rk)} vs {len(sk)} series; only in "
                f"reference {only_r}, only in system under test {only_s}")
    smap = {_key(x["metric"]): x for x in sr}
    for x in rr:
        k = _key(x["metric"])
        y = smap[k]
        if rt == "vector":
            if _f(x["value"][0]) != _f(y["value"][0]):
                return f"{_fmt_key(k)}: timestamp {x['value'][0]} vs {y['value'][0]}"
            if not close(x["value"][1], y["value"][1]):
                return f"{_fmt_key(k)}: value {x['value'][1]} vs {y['value'][1]}"
        else:
            xv, yv = x["values"], y["values"]
            xt = [_f(p[0]) for p in xv]
            yt = [_f(p[0]) for p in yv]
            if xt != yt:
                missing = sorted(set(xt) - set(yt))[:3]
                extra = sorted(set(yt) - set(xt))[:3]
                return (f"{_fmt_key(k)}: {len(xt)} vs {len(yt)} points; missing "
                        f"{missing}, extra {extra}")
            for p, p2 in zip(xv, yv):
                if not close(p[1], p2[1]):
                    return f"{_fmt_key(k)} @{p[0]}: value {p[1]} vs {p2[1]}"
    if rt == "vector" and spec[0] == "instant" and ordered_query(q):
        rv = [x["value"][1] for x in rr]
        sv = [x["value"][1] for x in sr]
        if len(rv) == len(sv) and not all(close(a, b) for a, b in zip(rv, sv)):
            return f"order of values differs: {rv[:8]} vs {sv[:8]}"
    return None


def _short(body, focus=None, limit=700):
    """The body as JSON; when the mismatch concerns one series, only that
    series (and the number of others)."""
    import json
    data = body.get("data")
    if focus is not None and isinstance(data, dict) and \
            data.get("resultType") in ("vector", "matrix"):
        sel = [x for x in data["result"] if _fmt_key(_key(x["metric"])) == focus]
        s = json.dumps(sel, sort_keys=True) + f" (+{len(data['result']) - len(sel)} other series)"
    else:
        s = json.dumps({k: v for k, v in body.items() if k != "http"}, sort_keys=True)
    return s if len(s) <= limit else s[:limit] + "…"


def _focus(why):
    m = re.match(r"^(\S*\{.*?\})(?: @\S+)?: ", why)
    return m.group(1) if m else None


def _spec_text(spec):
    if spec[0] == "instant":
        return f"instant t={spec[1]:.3f}"
    return f"range start={spec[1]:.3f} end={spec[2]:.3f} step={spec[3]}"


# --------------------------------------------------------------------------
# the test


def test_promql_differential(diff_env):
    env = diff_env
    queries = promql_gen.generate(SEED, env.at_times, N_QUERIES)
    assert len(queries) >= 300
    tasks = []
    for i, (q, kind) in enumerate(queries):
        for t in env.instant_times:
            tasks.append((i, q, kind, ("instant", t)))
        step = env.steps[i % len(env.steps)]
        tasks.append((i, q, kind, ("range", env.range[0], env.range[1], step)))

    def one(task):
        i, q, kind, spec = task
        a = run_query(env.ref, q, spec)
        b = run_query(env.sut, q, spec)
        return task, a, b, compare(q, spec, a, b)

    t0 = time.monotonic()
    with ThreadPoolExecutor(WORKERS) as ex:
        results = list(ex.map(one, tasks))
    elapsed = time.monotonic() - t0

    mismatches, msg_diffs = [], 0
    bad_queries = set()
    n_err = n_empty = 0
    for (i, q, kind, spec), a, b, why in results:
        if a.get("status") != "success":
            n_err += 1
            if b.get("status") == a.get("status") and a.get("error") != b.get("error"):
                msg_diffs += 1
        elif not a["data"]["result"]:
            n_empty += 1
        if why:
            mismatches.append((q, spec, why, a, b))
            bad_queries.add(q)
    print(f"\npromql-diff: {len(queries)} queries, {len(mismatches)} mismatches")
    print(f"promql-diff: {len(tasks)} evaluations ({len(env.instant_times)} instant + 1 range "
          f"per query) in {elapsed:.1f}s; {len(bad_queries)} queries with a mismatch; "
          f"{n_err} evaluations are errors on the reference, {msg_diffs} of them with a "
          f"different error message; {n_empty} empty results; data: {env.n_series} series, "
          f"{env.live_samples} samples; reference {env.ref.binary}, system under test "
          f"{env.sut.binary}")
    if mismatches:
        lines = []
        for q, spec, why, a, b in mismatches[:SHOW]:
            f = _focus(why)
            lines.append(f"- {q}\n    at {_spec_text(spec)}: {why}\n"
                         f"    reference:  {_short(a, f)}\n    under test: {_short(b, f)}")
        pytest.fail(f"promql-diff: {len(queries)} queries, {len(mismatches)} mismatches "
                    f"({len(bad_queries)} queries); first {min(SHOW, len(mismatches))}:\n"
                    + "\n".join(lines), pytrace=False)
