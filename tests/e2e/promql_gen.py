# SPDX-License-Identifier: Apache-2.0
"""Deterministic dataset and PromQL query generator for the differential
test (test_promql_diff.py) and the benchmark (bench/promql_bench.py).

Everything here is a pure function of a seed and a start time: the same
seed gives the same series, values, jitter and queries; only the absolute
timestamps follow the start time (remote write into an empty head must be
close to "now").

Timing rules (why the data is "off the grid")
---------------------------------------------
Prometheus 2.42 selects samples in the closed window [t-range, t] (and
[t-5m, t] for lookback); Prometheus 3.x uses (t-range, t].  The two only
differ when a sample sits exactly on the left boundary.  So:

* every evaluation timestamp (instant times, range start/end, `@` values)
  has the millisecond fraction EVAL_FRAC_MS (.537 s); ranges, offsets and
  steps are whole seconds, so every window boundary is also at .537 s;
* every raw sample has a millisecond fraction that is neither .537 (raw
  windows) nor .000 (windows inside subqueries, whose steps are multiples
  of whole seconds since the epoch);
* subqueries are never nested, so subquery points (.000) are only ever
  looked at by windows ending at .537.
"""

import math
import random

from rw_encode import STALE_NAN

SCRAPE_MS = 15_000
SAMPLE_OFFSET_MS = 1234          # samples at k*15s + 1.234s (+ jitter)
JITTER_MS = 300
EVAL_FRAC_MS = 537
FORBIDDEN_FRACS = {0, EVAL_FRAC_MS}

INSTANCES = ["10.0.0.1:9100", "10.0.0.2:9100", "10.0.0.3:9100"]
LE = ["0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "+Inf"]
LE_F = [float(x) for x in LE]

# --------------------------------------------------------------------------
# dataset


class Target:
    """Series scraped together share timestamps (like one scrape target)."""

    def __init__(self, rng, start_ms, n):
        self.ts = []
        for i in range(n):
            t = start_ms + i * SCRAPE_MS + SAMPLE_OFFSET_MS + rng.randint(-JITTER_MS, JITTER_MS)
            while t % 1000 in FORBIDDEN_FRACS:
                t += 1
            self.ts.append(t)


def _counter(rng, n, start, inc_lo, inc_hi, resets=0, integer=True):
    vals, v = [], start
    reset_at = set(rng.sample(range(n // 4, n - 4), resets)) if resets else set()
    for i in range(n):
        if i in reset_at:
            v = rng.uniform(inc_lo, inc_hi)       # restarted process, small value
        elif i:
            v += rng.uniform(inc_lo, inc_hi)
        vals.append(float(round(v)) if integer else round(v, 3))
    return vals


def _walk(rng, n, start, step, lo=None, hi=None, digits=2):
    vals, v = [], start
    for _ in range(n):
        v += rng.uniform(-step, step)
        if lo is not None:
            v = max(lo, v)
        if hi is not None:
            v = min(hi, v)
        vals.append(round(v, digits))
    return vals


def make_dataset(seed, start_ms, minutes=60):
    """Returns a list of (labels dict, [(ts_ms, value), ...]).

    start_ms should be a multiple of 15 s; the data covers
    [start_ms, start_ms + minutes)."""
    rng = random.Random(seed)
    n = minutes * 60_000 // SCRAPE_MS
    out = []

    def add(labels, ts, vals):
        out.append((labels, [(t, v) for t, v in zip(ts, vals) if v is not None]))

    # http_requests_total: 2 jobs x 3 instances x 2 methods x 3 codes, counters,
    # about a third with one reset.  Counters start high so that rate()
    # extrapolation never reaches zero (see docs/promql-compat.md).
    for job in ("api", "web"):
        for inst in INSTANCES:
            tgt = Target(rng, start_ms, n)
            for method in ("GET", "POST"):
                for code in ("200", "404", "500"):
                    scale = {"200": 20.0, "404": 3.0, "500": 0.7}[code]
                    vals = _counter(rng, n, rng.randint(2000, 90000), 0, 15 * scale,
                                    resets=1 if rng.random() < 0.33 else 0)
                    add({"__name__": "http_requests_total", "job": job,
                         "instance": inst, "method": method, "code": code},
                        tgt.ts, vals)

    # node_cpu_seconds_total: float counters
    for inst in INSTANCES:
        tgt = Target(rng, start_ms, n)
        for cpu in ("0", "1"):
            for mode, (lo, hi) in (("idle", (9.0, 14.9)), ("user", (0.1, 4.0)),
                                   ("system", (0.05, 1.5))):
                vals = _counter(rng, n, rng.uniform(5e4, 9e4), lo, hi, integer=False)
                add({"__name__": "node_cpu_seconds_total", "job": "node",
                     "instance": inst, "cpu": cpu, "mode": mode}, tgt.ts, vals)
        # memory gauges on the same target
        for area in ("heap", "stack"):
            vals = _walk(rng, n, rng.uniform(1e8, 4e8) if area == "heap" else rng.uniform(1e6, 8e6),
                         2e6 if area == "heap" else 5e4, lo=0, digits=0)
            add({"__name__": "memory_usage_bytes", "job": "node", "instance": inst,
                 "area": area}, tgt.ts, vals)

    # temperature_celsius: gauges around zero (negative values)
    for sensor in ("a", "b", "c", "d"):
        tgt = Target(rng, start_ms, n)
        for zone in ("north", "south"):
            vals = _walk(rng, n, rng.uniform(-10, 25), 0.8)
            add({"__name__": "temperature_celsius", "sensor": sensor, "zone": zone},
                tgt.ts, vals)

    # queue_depth: integer gauges; q3 has a 12 minute gap that starts with a
    # stale marker, q4 a 9 minute gap without one.
    tgt = Target(rng, start_ms, n)
    for q in ("q1", "q2", "q3", "q4"):
        vals = [float(v) for v in _walk(rng, n, rng.randint(0, 40), 6, lo=0, digits=0)]
        if q == "q3":
            g = n // 3
            vals[g] = STALE_NAN
            for i in range(g + 1, g + 48):
                vals[i] = None
        if q == "q4":
            g = n // 2
            for i in range(g, g + 36):
                vals[i] = None
        add({"__name__": "queue_depth", "queue": q}, tgt.ts, vals)

    # request_duration_seconds: classic histograms for 3 jobs; "db" resets once.
    for job in ("api", "web", "db"):
        tgt = Target(rng, start_ms, n)
        mu = {"api": 0.2, "web": 0.6, "db": 1.2}[job]
        counts = [0.0] * len(LE)
        total_sum = 0.0

        def observe(k):
            nonlocal total_sum
            for _ in range(k):
                x = rng.expovariate(1 / mu)
                total_sum += x
                for j, b in enumerate(LE_F):
                    if x <= b:
                        counts[j] += 1

        observe(rng.randint(4000, 6000))             # history before the window
        rows = []
        reset_at = n // 2 if job == "db" else -1
        for i in range(n):
            if i == reset_at:
                counts[:] = [0.0] * len(LE)
                total_sum = 0.0
            observe(rng.randint(5, 40))
            rows.append((list(counts), round(total_sum, 6)))
        for j, le in enumerate(LE):
            add({"__name__": "request_duration_seconds_bucket", "job": job, "le": le},
                tgt.ts, [r[0][j] for r in rows])
        add({"__name__": "request_duration_seconds_sum", "job": job}, tgt.ts,
            [r[1] for r in rows])
        add({"__name__": "request_duration_seconds_count", "job": job}, tgt.ts,
            [r[0][-1] for r in rows])

    # batch_last_run_timestamp_seconds: t1 stops at 60% with a stale marker,
    # t2 stops at 40% without one, t3 starts at 30%.
    tgt = Target(rng, start_ms, n)
    for task in ("t1", "t2", "t3"):
        vals = []
        last = start_ms / 1000 - rng.randint(100, 3000)
        for i in range(n):
            if rng.random() < 0.1:
                last = tgt.ts[i] / 1000.0 - rng.randint(1, 10)
            vals.append(round(last, 3))
        if task == "t1":
            vals[int(n * 0.6)] = STALE_NAN
            vals[int(n * 0.6) + 1:] = [None] * (n - int(n * 0.6) - 1)
        if task == "t2":
            vals[int(n * 0.4):] = [None] * (n - int(n * 0.4))
        if task == "t3":
            vals[:int(n * 0.3)] = [None] * int(n * 0.3)
        add({"__name__": "batch_last_run_timestamp_seconds", "job": "batch", "task": task},
            tgt.ts, vals)

    # service_up: flapping 0/1 gauges
    tgt = Target(rng, start_ms, n)
    for svc in ("a", "b", "c", "d", "e"):
        v, vals = 1.0, []
        for _ in range(n):
            if rng.random() < 0.04:
                v = 1.0 - v
            vals.append(v)
        add({"__name__": "service_up", "service": svc}, tgt.ts, vals)

    # jobs_processed_total: w1 complete, w2 starts at 50% (high start value),
    # w3 has a stale-marked 8 minute gap and comes back higher.
    tgt = Target(rng, start_ms, n)
    for w in ("w1", "w2", "w3"):
        vals = _counter(rng, n, rng.randint(5000, 9000), 0, 30)
        if w == "w2":
            vals[:n // 2] = [None] * (n // 2)
        if w == "w3":
            g = 2 * n // 3
            vals[g] = STALE_NAN
            for i in range(g + 1, g + 32):
                vals[i] = None
            for i in range(g + 32, n):
                vals[i] += 3000
        add({"__name__": "jobs_processed_total", "worker": w}, tgt.ts, vals)

    return out


def time_batches(dataset, start_ms, minutes=60, batch_minutes=10):
    """Split the dataset into remote-write requests by time window, so that
    every request only holds samples newer than those already sent."""
    batches = []
    for b0 in range(0, minutes, batch_minutes):
        lo = start_ms + b0 * 60_000
        hi = lo + batch_minutes * 60_000
        if b0 + batch_minutes >= minutes:
            hi = float("inf")
        batch = []
        for labels, samples in dataset:
            part = [(t, v) for t, v in samples if lo <= t < hi]
            if part:
                batch.append((labels, part))
        batches.append(batch)
    return batches


def sample_count(dataset):
    return sum(len(s) for _, s in dataset)


# --------------------------------------------------------------------------
# query generator

# family -> metric name, label names, value kind
FAMS = {
    "http": ("http_requests_total", ("job", "instance", "method", "code"), "counter"),
    "cpu": ("node_cpu_seconds_total", ("job", "instance", "cpu", "mode"), "counter"),
    "mem": ("memory_usage_bytes", ("job", "instance", "area"), "gauge"),
    "temp": ("temperature_celsius", ("sensor", "zone"), "gauge"),
    "queue": ("queue_depth", ("queue",), "gauge"),
    "bucket": ("request_duration_seconds_bucket", ("job", "le"), "counter"),
    "hsum": ("request_duration_seconds_sum", ("job",), "counter"),
    "hcount": ("request_duration_seconds_count", ("job",), "counter"),
    "batch": ("batch_last_run_timestamp_seconds", ("job", "task"), "gauge"),
    "svc": ("service_up", ("service",), "gauge"),
    "jobs": ("jobs_processed_total", ("worker",), "counter"),
}
LABEL_VALUES = {
    ("http", "job"): ["api", "web"], ("http", "instance"): INSTANCES,
    ("http", "method"): ["GET", "POST"], ("http", "code"): ["200", "404", "500"],
    ("cpu", "job"): ["node"], ("cpu", "instance"): INSTANCES,
    ("cpu", "cpu"): ["0", "1"], ("cpu", "mode"): ["idle", "user", "system"],
    ("mem", "job"): ["node"], ("mem", "instance"): INSTANCES, ("mem", "area"): ["heap", "stack"],
    ("temp", "sensor"): ["a", "b", "c", "d"], ("temp", "zone"): ["north", "south"],
    ("queue", "queue"): ["q1", "q2", "q3", "q4"],
    ("bucket", "job"): ["api", "web", "db"], ("bucket", "le"): LE,
    ("hsum", "job"): ["api", "web", "db"], ("hcount", "job"): ["api", "web", "db"],
    ("batch", "job"): ["batch"], ("batch", "task"): ["t1", "t2", "t3"],
    ("svc", "service"): ["a", "b", "c", "d", "e"],
    ("jobs", "worker"): ["w1", "w2", "w3"],
}
# families whose label sets can be joined on a shared label
SHARED = {"instance": ["http", "cpu", "mem"], "job": ["http", "bucket", "hsum", "hcount"]}

RANGES = ["1m", "2m", "90s", "5m", "5m", "10m", "3m30s"]
SUB_RANGES = [("5m", "1m"), ("10m", "1m"), ("10m", "2m"), ("15m", "30s"), ("6m", ""),
              ("30m", "5m"), ("4m", "45s")]
OFFSETS = ["1m", "5m", "90s", "10m", "1h", "-2m", "-5m", "-30s"]

RANGE_FNS_ANY = ["irate", "delta", "idelta", "deriv", "resets", "changes",
                 "avg_over_time", "min_over_time", "max_over_time", "sum_over_time",
                 "count_over_time", "stddev_over_time", "stdvar_over_time",
                 "last_over_time", "present_over_time", "absent_over_time"]
RANGE_FNS_COUNTER = ["rate", "increase"]
MATH_FNS = ["abs", "ceil", "floor", "sgn", "exp", "ln", "log2", "log10", "sqrt",
            "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh",
            "asinh", "acosh", "atanh", "deg", "rad"]
FINITE_MATH = {"abs", "ceil", "floor", "sgn", "sin", "cos", "atan", "tanh", "deg", "rad",
               "asinh"}
# functions whose result is ill-conditioned for `big` inputs, and those that
# pass `big` values through
ILL_CONDITIONED = {"stddev_over_time", "stdvar_over_time", "deriv"}
BIG_PRESERVING = {"avg_over_time", "min_over_time", "max_over_time", "sum_over_time",
                  "last_over_time"}
TIME_FNS = ["day_of_month", "day_of_week", "day_of_year", "days_in_month", "hour",
            "minute", "month", "year"]
AGG_SIMPLE = ["sum", "avg", "min", "max", "count", "group", "stddev", "stdvar"]
ARITH = ["+", "-", "*", "/", "%", "^"]
CMP = ["==", "!=", ">", "<", ">=", "<="]
SET = ["and", "or", "unless"]


class E:
    """A generated expression: text plus what the generator knows about it.

    fam:    family of the underlying series (None: unknown/mixed)
    shape:  frozenset of label names the result carries (besides __name__)
    finite: values cannot be NaN/±Inf
    named:  may carry __name__
    counter: a raw counter selector (allowed in rate/increase)
    big:    values are large with a tiny relative spread (Unix times):
            variance and regression over them are ill-conditioned, their
            result depends on the summation order even within one
            Prometheus (range evaluation iterates a Go map), so stddev,
            stdvar, *_over_time variants, deriv and predict_linear never
            take such inputs
    """
    __slots__ = ("s", "type", "fam", "shape", "finite", "named", "counter", "sub", "big")

    def __init__(self, s, type_, fam=None, shape=frozenset(), finite=True,
                 named=False, counter=False, sub=False, big=False):
        self.s, self.type, self.fam, self.shape = s, type_, fam, frozenset(shape)
        self.finite, self.named, self.counter, self.sub = finite, named, counter, sub
        self.big = big

    def __repr__(self):
        return f"E({self.s!r}, {self.type})"


def _paren(e):
    return e.s if _atomic(e.s) else f"({e.s})"


def _atomic(s):
    """True if s needs no parentheses as an operand: a literal, selector or
    call (balanced, no top-level space)."""
    depth = 0
    q = None
    for c in s:
        if q:
            if c == q:
                q = None
            continue
        if c in "\"'`":
            q = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == " " and depth == 0:
            return False
    return not s.startswith("-")


def _big_scalar(s):
    return any(w in s for w in ("time()", "batch_", "timestamp("))


class QueryGen:
    def __init__(self, seed, at_times):
        self.r = random.Random(seed)
        self.at_times = at_times            # list of float seconds (.537)

    # ---- small helpers ---------------------------------------------------
    def pick(self, xs):
        return self.r.choice(xs)

    def chance(self, p):
        return self.r.random() < p

    def fmt_at(self):
        if self.chance(0.2):
            return self.pick(["start()", "end()"])
        return f"{self.pick(self.at_times):.3f}"

    def matchers(self, fam):
        name, labels, _ = FAMS[fam]
        ms = []
        for lab in self.r.sample(labels, self.r.randint(0, min(2, len(labels)))):
            vals = LABEL_VALUES[(fam, lab)]
            op = self.pick(["=", "=", "!=", "=~", "!~"])
            if op in ("=", "!="):
                v = self.pick(vals + ["nope"]) if self.chance(0.1) else self.pick(vals)
            else:
                k = self.r.randint(1, len(vals))
                alts = self.r.sample(vals, k)
                v = "|".join(a.replace(".", "\\\\.").replace("+", "\\\\+") for a in alts)
                if self.chance(0.25):
                    v = self.pick([".*", ".+", alts[0][:1].replace("+", "\\\\+") + ".*",
                                   "(" + v + ")", "x|" + v])
            ms.append(f'{lab}{op}"{v}"')
        if self.chance(0.08):
            return f'{{__name__="{name}"' + "".join("," + m for m in ms) + "}"
        return name + ("{" + ",".join(ms) + "}" if ms else "")

    def modifiers(self, allow_at=True):
        out = ""
        if allow_at and self.chance(0.12):
            out += " @ " + self.fmt_at()
        if self.chance(0.18):
            out += " offset " + self.pick(OFFSETS)
        return out

    # ---- leaves ---------------------------------------------------------
    def selector(self, fam=None, counter=None, allow_at=True):
        if fam is None:
            fams = [f for f in FAMS if counter is None or (FAMS[f][2] == "counter") == counter]
            fam = self.pick(fams)
        name, labels, kind = FAMS[fam]
        return E(self.matchers(fam) + self.modifiers(allow_at), "vector", fam, labels,
                 named=True, counter=(kind == "counter"), big=(fam == "batch"))

    def matrix(self, fam=None, counter=None, allow_at=True, allow_sub=True):
        if allow_sub and self.chance(0.15):
            return self.subquery(counter=counter, allow_at=allow_at)
        if fam is None:
            fams = [f for f in FAMS if counter is None or (FAMS[f][2] == "counter") == counter]
            fam = self.pick(fams)
        name, labels, kind = FAMS[fam]
        s = self.matchers(fam) + "[" + self.pick(RANGES) + "]" + self.modifiers(allow_at)
        return E(s, "matrix", fam, labels, named=True, counter=(kind == "counter"),
                 big=(fam == "batch"))

    def subquery(self, counter=None, allow_at=True):
        rng_, step = self.pick(SUB_RANGES)
        if counter:
            # rate/increase over a subquery: keep the inner expression a counter
            fam = self.pick(["http", "cpu", "jobs", "hcount"])
            sel = self.selector(fam, allow_at=False)
            inner = self.pick([sel, E(f"sum by (job) ({sel.s})", "vector", fam, {"job"}),
                               E(f"max({sel.s})", "vector", fam, set())]) \
                if "job" in FAMS[fam][1] else sel
        else:
            inner = self.vector(2, allow_sub=False)
        s = f"{_paren(inner)}[{rng_}:{step}]"
        if allow_at and self.chance(0.1):
            s += " @ " + self.fmt_at()
        if self.chance(0.15):
            s += " offset " + self.pick(["1m", "5m", "-1m"])
        return E(s, "matrix", inner.fam, inner.shape, finite=inner.finite,
                 named=inner.named, counter=bool(counter), sub=True, big=inner.big)

    def scalar(self, depth=1, finite=True):
        c = self.r.random()
        if c < 0.55 or depth <= 0:
            v = self.pick(["2", "0.5", "10", "3", "100", "1e3", "0x10", "1.5", "0", "-1",
                           "1e-2", "7"])
            if v == "0" and finite:
                v = "4"
            return E(v, "scalar")
        if c < 0.7:
            return E(self.pick(["time()", "pi()"]), "scalar")
        if c < 0.85:
            v = self.vector(depth - 1)
            agg = self.pick(["sum", "max", "count", "min"])
            return E(f"scalar({agg}({v.s}))", "scalar", finite=False)
        a, b = self.scalar(0), self.scalar(0)
        op = self.pick(["+", "-", "*"] + ([] if finite else ["/", "%", "^"]))
        return E(f"{a.s} {op} {b.s}", "scalar", finite=True)

    # ---- vector productions ---------------------------------------------
    def vector(self, depth, allow_sub=True, fam=None):
        if depth <= 0:
            return self.selector(fam)
        prods = [
            (10, self.p_selector), (14, self.p_rangefn), (12, self.p_agg),
            (10, self.p_scalar_binop), (10, self.p_vv_binop), (5, self.p_setop),
            (6, self.p_math), (3, self.p_clamp), (4, self.p_label), (4, self.p_hq),
            (3, self.p_time), (2, self.p_absent), (1, self.p_vector_fn),
            (3, self.p_topk), (2, self.p_quantile), (1, self.p_count_values),
            (2, self.p_unary), (2, self.p_predict),
        ]
        if allow_sub:
            prods.append((4, self.p_subquery_fn))
        total = sum(w for w, _ in prods)
        x = self.r.uniform(0, total)
        for w, f in prods:
            x -= w
            if x <= 0:
                return f(depth, allow_sub)
        return self.selector()

    def p_selector(self, depth, allow_sub):
        return self.selector()

    def p_rangefn(self, depth, allow_sub):
        if self.chance(0.4):
            m = self.matrix(counter=True, allow_sub=allow_sub)
            fn = self.pick(RANGE_FNS_COUNTER + ["irate", "resets"])
        else:
            m = self.matrix(allow_sub=allow_sub)
            fn = self.pick(RANGE_FNS_ANY)
        if fn == "absent_over_time":
            return E(f"{fn}({m.s})", "vector", None, frozenset(), named=False)
        finite = fn not in ("deriv",) and m.finite
        if fn in ("stddev_over_time", "stdvar_over_time", "avg_over_time", "sum_over_time") \
                and not m.finite or fn in ILL_CONDITIONED and m.big:
            return self.p_rangefn(depth, allow_sub)
        return E(f"{fn}({m.s})", "vector", m.fam, m.shape, finite=finite,
                 named=(fn == "last_over_time" and m.named),
                 big=m.big and fn in BIG_PRESERVING)

    def p_subquery_fn(self, depth, allow_sub):
        if self.chance(0.35):
            m = self.subquery(counter=True)
            fn = self.pick(["rate", "increase", "irate", "resets"])
        else:
            m = self.subquery()
            fns = ["max_over_time", "min_over_time", "count_over_time", "last_over_time",
                   "changes", "idelta", "delta", "present_over_time"]
            if m.finite:
                fns += ["avg_over_time", "sum_over_time"]
                if not m.big:
                    fns += ["stddev_over_time", "deriv"]
            fn = self.pick(fns)
        return E(f"{fn}({m.s})", "vector", m.fam, m.shape, finite=m.finite,
                 named=(fn == "last_over_time" and m.named),
                 big=m.big and fn in BIG_PRESERVING)

    def grouping(self, e):
        labs = sorted(e.shape)
        if not labs or self.chance(0.2):
            return "", frozenset()
        k = self.r.randint(1, min(2, len(labs)))
        chosen = self.r.sample(labs, k)
        if self.chance(0.3):
            return f" without ({', '.join(chosen)})", e.shape - set(chosen)
        return f" by ({', '.join(chosen)})", frozenset(chosen)

    def finite_vector(self, depth, allow_sub=True, small=False):
        for _ in range(40):
            v = self.vector(depth, allow_sub)
            if v.finite and not (small and v.big):
                return v
        return self.selector(self.pick(["http", "temp", "queue"]))

    def p_agg(self, depth, allow_sub):
        op = self.pick(AGG_SIMPLE)
        v = self.vector(depth - 1, allow_sub) if op in ("count", "group", "min", "max") \
            else self.finite_vector(depth - 1, allow_sub, small=op in ("stddev", "stdvar"))
        g, shape = self.grouping(v)
        if self.chance(0.3) and g:
            s = f"{op}{g} ({v.s})"
        elif g:
            s = f"{op} ({v.s}){g}"
        else:
            s = f"{op}({v.s})"
        return E(s, "vector", v.fam, shape, finite=v.finite or op in ("count", "group"),
                 big=v.big and op in ("sum", "avg", "min", "max"))

    def distinct_vector(self):
        """Inputs for topk/bottomk whose values practically never tie: which
        of several tied series topk keeps is unspecified (and differs
        between runs of the same Prometheus)."""
        c = self.r.random()
        if c < 0.4:
            fam = self.pick(["http", "cpu", "hcount"])
            return E(f"rate({self.matrix(fam, allow_sub=False).s})", "vector", fam,
                     FAMS[fam][1])
        if c < 0.7:
            fam = self.pick(["cpu", "mem", "hsum"])
            return self.selector(fam)
        fam = self.pick(["temp", "mem", "cpu"])
        fn = self.pick(["avg_over_time", "max_over_time", "sum_over_time"])
        return E(f"{fn}({self.matrix(fam, allow_sub=False).s})", "vector", fam, FAMS[fam][1])

    def p_topk(self, depth, allow_sub):
        op = self.pick(["topk", "bottomk"])
        v = self.distinct_vector()
        g, _ = self.grouping(v)
        k = self.pick(["1", "2", "3", "5"])
        return E(f"{op}{g} ({k}, {v.s})", "vector", v.fam, v.shape, finite=True, named=v.named,
                 big=v.big)

    def p_quantile(self, depth, allow_sub):
        v = self.finite_vector(depth - 1, allow_sub)
        g, shape = self.grouping(v)
        phi = self.pick(["0.5", "0.9", "0.99", "0", "1", "0.25", "-0.5", "1.5"])
        return E(f"quantile{g} ({phi}, {v.s})", "vector", v.fam, shape, finite=False, big=v.big)

    def p_count_values(self, depth, allow_sub):
        v = self.pick([self.selector(self.pick(["queue", "svc", "http"])),
                       E(f"floor({self.selector('temp').s})", "vector", "temp",
                         FAMS["temp"][1])])
        g, shape = self.grouping(v)
        return E(f'count_values{g} ("value", {v.s})', "vector", None, shape | {"value"})

    def p_scalar_binop(self, depth, allow_sub):
        v = self.vector(depth - 1, allow_sub)
        sc = self.scalar(1)
        if self.chance(0.5):
            op = self.pick(ARITH)
            finite = v.finite and sc.finite and op in ("+", "-", "*")
            named = False
        else:
            op = self.pick(CMP)
            if self.chance(0.4):
                op += " bool"
                named = False
            else:
                named = v.named
            finite = v.finite
        if self.chance(0.5):
            s = f"{_paren(v)} {op} {_paren(sc)}"
        else:
            s = f"{_paren(sc)} {op} {_paren(v)}"
        return E(s, "vector", v.fam, v.shape, finite=finite, named=named,
                 big=v.big or _big_scalar(sc.s))

    def like(self, e, depth):
        """Another expression with e's family and label shape, so that a
        one-to-one vector match is possible."""
        fam = e.fam if e.fam in FAMS else None
        if fam is None:
            return None
        sel = self.selector(fam)
        c = self.r.random()
        if c < 0.3:
            base = sel
        elif c < 0.55 and FAMS[fam][2] == "counter":
            base = E(f"rate({self.matrix(fam, allow_sub=False).s})", "vector", fam, sel.shape)
        elif c < 0.75:
            fn = self.pick(["avg_over_time", "max_over_time", "delta", "idelta"])
            base = E(f"{fn}({self.matrix(fam, allow_sub=False).s})", "vector", fam, sel.shape)
        else:
            base = E(f"{_paren(sel)} * {self.pick(['2', '0.5', '3'])}", "vector", fam, sel.shape)
        if e.shape != base.shape:
            if not e.shape <= base.shape:
                return None
            agg = self.pick(["sum", "max", "min", "avg", "count"])
            lab = ", ".join(sorted(e.shape))
            base = E(f"{agg} by ({lab}) ({base.s})" if lab else f"{agg}({base.s})",
                     "vector", fam, e.shape)
        return base

    def p_vv_binop(self, depth, allow_sub):
        c = self.r.random()
        if c < 0.55:
            left = self.vector(depth - 1, allow_sub)
            right = self.like(left, depth - 1)
            if right is None:
                return self.p_scalar_binop(depth, allow_sub)
            match = ""
            if self.chance(0.3) and left.shape:
                labs = sorted(left.shape)
                if self.chance(0.5):
                    match = f" on ({', '.join(labs)})"
                else:
                    match = " ignoring ()" if self.chance(0.3) else ""
            if self.chance(0.5):
                left, right = right, left
            if self.chance(0.6):
                op = self.pick(ARITH)
                named = False
            else:
                op = self.pick(CMP)
                if self.chance(0.4):
                    op += " bool"
                    named = False
                else:
                    named = left.named
            s = f"{_paren(left)} {op}{match} {_paren(right)}"
            return E(s, "vector", left.fam, left.shape, finite=False, named=named,
                     big=left.big or right.big)
        # many-to-one / one-to-many with a shared label
        lab = self.pick(sorted(SHARED))
        fa, fb = self.pick(SHARED[lab]), self.pick(SHARED[lab])
        many = self.pick([self.selector(fa),
                          E(f"rate({self.matrix(fa, counter=None, allow_sub=False).s})",
                            "vector", fa, FAMS[fa][1])])
        if "rate(" in many.s and FAMS[fa][2] != "counter":
            many = self.selector(fa)
        agg = self.pick(["sum", "max", "count", "avg"])
        one = E(f"{agg} by ({lab}) ({self.selector(fb).s})", "vector", fb, {lab})
        extra = self.pick(["", "", f" ({self.pick([x for x in FAMS[fb][1] if x != lab] or [lab])})"])
        if extra and extra.strip("() ") in FAMS[fa][1]:
            extra = ""     # would clash with a label of the many side
        op = self.pick(["*", "/", "+", "-", ">", "<", "> bool"])
        if self.chance(0.5):
            left, right, side = _paren(many), _paren(one), "group_left"
        else:
            left, right, side = _paren(one), _paren(many), "group_right"
        if not extra and right.startswith("("):
            extra = " ()"     # else "(" would be read as the label list
        s = f"{left} {op} on ({lab}) {side}{extra} {right}"
        return E(s, "vector", fa, FAMS[fa][1], finite=False, named=(op in (">", "<")))

    def p_setop(self, depth, allow_sub):
        left = self.vector(depth - 1, allow_sub)
        op = self.pick(SET)
        if self.chance(0.6):
            right = self.like(left, depth - 1) or self.selector()
        else:
            right = self.vector(depth - 1, allow_sub)
        match = ""
        if self.chance(0.35):
            labs = sorted(left.shape & right.shape) or ["job"]
            k = self.r.randint(1, min(2, len(labs)))
            match = f" {self.pick(['on', 'ignoring'])} ({', '.join(self.r.sample(labs, k))})"
        s = f"{_paren(left)} {op}{match} {_paren(right)}"
        fam = left.fam if op != "or" or left.fam == right.fam else None
        shape = left.shape if op != "or" else left.shape & right.shape
        return E(s, "vector", fam, shape, finite=left.finite and right.finite,
                 named=left.named or right.named, big=left.big or right.big)

    def p_math(self, depth, allow_sub):
        v = self.vector(depth - 1, allow_sub)
        if not v.named and self.chance(0.25):
            if self.chance(0.5):
                return E(f"round({v.s})", "vector", v.fam, v.shape, finite=v.finite, big=v.big)
            return E(f"round({v.s}, {self.pick(['0.5', '10', '0.01'])})", "vector", v.fam,
                     v.shape, finite=v.finite, big=v.big)
        fn = self.pick(MATH_FNS)
        return E(f"{fn}({v.s})", "vector", v.fam, v.shape, finite=v.finite and fn in FINITE_MATH,
                 big=v.big)

    def p_clamp(self, depth, allow_sub):
        v = self.vector(depth - 1, allow_sub)
        c = self.r.random()
        if c < 0.4:
            s = f"clamp({v.s}, {self.pick(['0', '-5', '10'])}, {self.pick(['100', '20', '1e6', '5'])})"
        elif c < 0.7:
            s = f"clamp_min({v.s}, {self.scalar(0).s})"
        else:
            s = f"clamp_max({v.s}, {self.scalar(0).s})"
        return E(s, "vector", v.fam, v.shape, finite=v.finite, big=v.big)

    def p_label(self, depth, allow_sub):
        v = self.vector(depth - 1, allow_sub)
        labs = sorted(v.shape) or ["job"]
        if self.chance(0.6):
            src = self.pick(labs + ["nolabel"])
            dst = self.pick(["new", "dst", src])
            rx, rep = self.pick([("(.*)", "$1"), ("(.).*", "x-$1"), ("([0-9]+).*", "n$1"),
                                 ("(.*)", ""), (".+", "nonempty"), ("(a|w)(.*)", "$2$1")])
            s = f'label_replace({v.s}, "{dst}", "{rep}", "{src}", "{rx}")'
        else:
            srcs = self.r.sample(labs, min(len(labs), self.r.randint(1, 2)))
            dst = self.pick(["joined", srcs[0]])
            sep = self.pick(["-", "", ":"])
            s = f'label_join({v.s}, "{dst}", "{sep}", ' + ", ".join(f'"{x}"' for x in srcs) + ")"
        return E(s, "vector", v.fam, v.shape | {dst}, finite=v.finite, named=v.named, big=v.big)

    def p_hq(self, depth, allow_sub):
        phi = self.pick(["0.5", "0.9", "0.99", "0.95", "0", "1", "0.25", "1.5"])
        sel = self.selector("bucket", allow_at=False)
        r = self.pick(["1m", "5m", "10m"])
        c = self.r.random()
        if c < 0.25:
            b, shape = sel.s, {"job"}
        elif c < 0.5:
            b, shape = f"rate({self.matchers('bucket')}[{r}])", {"job"}
        elif c < 0.75:
            b, shape = f"sum by (le) (rate({self.matchers('bucket')}[{r}]))", set()
        else:
            b, shape = f"sum by (job, le) (increase({self.matchers('bucket')}[{r}]))", {"job"}
        return E(f"histogram_quantile({phi}, {b})", "vector", "hsum", shape, finite=False)

    def p_time(self, depth, allow_sub):
        fn = self.pick(TIME_FNS)
        c = self.r.random()
        if c < 0.4:
            arg = self.selector("batch").s
        elif c < 0.7:
            return E(f"{fn}(timestamp({self.selector().s}))", "vector", None, frozenset())
        elif c < 0.85:
            arg = f"{_paren(self.selector('temp'))} * 86400 * 30"
        else:
            return E(f"{fn}()", "vector", None, frozenset())
        return E(f"{fn}({arg})", "vector", None, frozenset(), finite=True)

    def p_absent(self, depth, allow_sub):
        if self.chance(0.5):
            sel = self.selector(allow_at=True)
            if self.chance(0.4):
                sel = E(sel.s.replace("{", '{job="missing",', 1) if "{" in sel.s
                        else sel.s + '{job="missing"}', "vector")
            return E(f"absent({sel.s})", "vector", None, frozenset())
        return E(f"absent_over_time({self.matrix(allow_sub=False).s})", "vector", None,
                 frozenset())

    def p_vector_fn(self, depth, allow_sub):
        sc = self.scalar(1)
        return E(f"vector({sc.s})", "vector", None, frozenset(), finite=False,
                 big=_big_scalar(sc.s))

    def p_unary(self, depth, allow_sub):
        v = self.vector(depth - 1, allow_sub)
        return E(f"-{_paren(v)}", "vector", v.fam, v.shape, finite=v.finite, big=v.big)

    def p_predict(self, depth, allow_sub):
        # no @ inside predict_linear: 2.42 mis-scopes such windows in range
        # queries (prometheus#11708); see docs/promql-compat.md
        m = self.matrix(allow_at=False, allow_sub=False)
        while m.big:
            m = self.matrix(allow_at=False, allow_sub=False)
        t = self.pick(["0", "60", "600", "3600", "-300"])
        if self.chance(0.5):
            return E(f"predict_linear({m.s}, {t})", "vector", m.fam, m.shape, finite=True)
        return E(f"deriv({m.s})", "vector", m.fam, m.shape, finite=True)

    # ---- top level ------------------------------------------------------
    def query(self):
        """Returns (query, kind) with kind in vector/scalar/matrix/error."""
        c = self.r.random()
        if c < 0.82:
            v = self.vector(self.r.randint(1, 3))
            if self.chance(0.08):
                return f"{self.pick(['sort', 'sort_desc'])}({v.s})", "vector"
            return v.s, "vector"
        if c < 0.9:
            return self.scalar(2, finite=False).s, "scalar"
        if c < 0.95:
            return self.matrix(allow_sub=True).s, "matrix"
        return self.error_query(), "error"

    def error_query(self):
        c = self.r.random()
        sel = self.selector().s
        opts = [
            f"rate({sel})",                       # wrong argument type
            f"sum({self.matrix(allow_sub=False).s})",
            f"{sel}[5m] + 1",
            f"sum by (job) ({sel}",               # syntax
            f"{sel} +",
            "http_requests_total{job=~\"(\"}",    # bad regex
            f"foo_bar({sel})",
            "http_requests_total + on(job) node_cpu_seconds_total",  # many-to-many (execution)
            "http_requests_total * on(job) group_left request_duration_seconds_count",
            "label_replace(http_requests_total, \"1bad\", \"x\", \"job\", \"(.*)\")",
            "topk(\"a\", http_requests_total)",
            "http_requests_total[5m:1m:1m]",
            "rate(http_requests_total[0s])" if False else "rate(http_requests_total[5m]) offset",
            "{job=\"api\"}[5m] @ end() offset",
        ]
        return opts[int(c * len(opts)) % len(opts)]


# Fixed queries that are always part of the set: each grammar item at least
# once in a predictable form, independent of the random draw.
FIXED_QUERIES = [
    ("http_requests_total", "vector"),
    ('http_requests_total{job="api",code!="200"}', "vector"),
    ('http_requests_total{method=~"G.*",code!~"4.."}', "vector"),
    ('{__name__=~"request_duration_seconds_(sum|count)"}', "vector"),
    ('{__name__=~"http_.*", job="web"}', "vector"),
    ("rate(http_requests_total[5m])", "vector"),
    ("irate(http_requests_total[1m])", "vector"),
    ('increase(jobs_processed_total[10m])', "vector"),
    ("resets(http_requests_total[30m])", "vector"),
    ("changes(service_up[20m])", "vector"),
    ("delta(temperature_celsius[10m])", "vector"),
    ("idelta(queue_depth[5m])", "vector"),
    ("deriv(memory_usage_bytes[10m])", "vector"),
    ("predict_linear(memory_usage_bytes[10m], 3600)", "vector"),
    ("sum by (job) (rate(http_requests_total[5m]))", "vector"),
    ("sum without (instance, method) (rate(http_requests_total[5m]))", "vector"),
    ("avg by (zone) (temperature_celsius)", "vector"),
    ("stddev(temperature_celsius)", "vector"),
    ("stdvar by (instance) (rate(node_cpu_seconds_total[5m]))", "vector"),
    ("topk(3, rate(http_requests_total[5m]))", "vector"),
    ("bottomk by (job) (2, http_requests_total)", "vector"),
    ("sort_desc(sum by (instance) (rate(node_cpu_seconds_total[5m])))", "vector"),
    ("sort(queue_depth)", "vector"),
    ("quantile(0.9, temperature_celsius)", "vector"),
    ('count_values("depth", queue_depth)', "vector"),
    ("group by (job) (http_requests_total)", "vector"),
    ("count(service_up == 1)", "vector"),
    ("histogram_quantile(0.9, sum by (job, le) (rate(request_duration_seconds_bucket[5m])))",
     "vector"),
    ("histogram_quantile(0.5, rate(request_duration_seconds_bucket[10m]))", "vector"),
    ("rate(request_duration_seconds_sum[5m]) / rate(request_duration_seconds_count[5m])",
     "vector"),
    ("http_requests_total / on (instance) group_left sum by (instance) (memory_usage_bytes)",
     "vector"),
    ("sum by (job) (http_requests_total) * on (job) group_right request_duration_seconds_count",
     "vector"),
    ("node_cpu_seconds_total * ignoring (mode) group_left "
     "sum without (mode) (node_cpu_seconds_total)", "vector"),
    ('http_requests_total and on (job) request_duration_seconds_count', "vector"),
    ('queue_depth or service_up', "vector"),
    ('http_requests_total unless http_requests_total{code="500"}', "vector"),
    ("temperature_celsius > 5", "vector"),
    ("temperature_celsius > bool 5", "vector"),
    ("1 + 2 * 3 ^ 2 ^ 0.5 - 4 % 3", "scalar"),
    ("-2 ^ 2", "scalar"),
    ("time() - 3600", "scalar"),
    ("scalar(sum(queue_depth))", "scalar"),
    ("vector(time())", "vector"),
    ("abs(temperature_celsius)", "vector"),
    ("ln(memory_usage_bytes)", "vector"),
    ("clamp(temperature_celsius, 0, 10)", "vector"),
    ("clamp_min(queue_depth, 5)", "vector"),
    ("clamp_max(queue_depth, 5)", "vector"),
    ('label_replace(http_requests_total, "ip", "$1", "instance", "(.*):.*")', "vector"),
    ('label_join(temperature_celsius, "where", "/", "sensor", "zone")', "vector"),
    ('absent(nonexistent_metric{job="x"})', "vector"),
    ("absent(queue_depth)", "vector"),
    ('absent_over_time(queue_depth{queue="q3"}[5m])', "vector"),
    ("hour(batch_last_run_timestamp_seconds)", "vector"),
    ("day_of_week(timestamp(queue_depth))", "vector"),
    ("timestamp(batch_last_run_timestamp_seconds)", "vector"),
    ("max_over_time(rate(http_requests_total[1m])[10m:1m])", "vector"),
    ("avg_over_time(queue_depth[10m:])", "vector"),
    ("rate(sum by (job) (http_requests_total)[10m:30s])", "vector"),
    ("http_requests_total offset 5m", "vector"),
    ("http_requests_total offset -5m", "vector"),
    ("rate(http_requests_total[5m] offset 10m)", "vector"),
    ("queue_depth @ end()", "vector"),
    ("rate(http_requests_total[5m] @ start())", "vector"),
    ("last_over_time(batch_last_run_timestamp_seconds[10m])", "vector"),
    ("present_over_time(queue_depth[2m])", "vector"),
    ("quantile_over_time(0.5, temperature_celsius[10m])", "vector"),
    ("count_over_time(queue_depth[15m])", "vector"),
    ("http_requests_total[5m]", "matrix"),
    ("queue_depth[10m:1m]", "matrix"),
    # errors
    ("sum(http_requests_total[5m])", "error"),
    ("rate(http_requests_total)", "error"),
    ("http_requests_total + on (job) node_cpu_seconds_total", "error"),
    ("sum(", "error"),
]


def generate(seed, at_times, n=320):
    """FIXED_QUERIES plus random ones until there are n distinct queries;
    returns [(query, kind)]."""
    g = QueryGen(seed, at_times)
    out, seen = [], set()
    for q, k in FIXED_QUERIES:
        if q not in seen:
            seen.add(q)
            out.append((q, k))
    # a few fixed @ queries need absolute times
    for q in (f"http_requests_total @ {at_times[0]:.3f}",
              f"sum(rate(http_requests_total[5m] @ {at_times[-1]:.3f}))",
              f"max_over_time(queue_depth[30m:1m] @ {at_times[1]:.3f})"):
        seen.add(q)
        out.append((q, "vector"))
    guard = 0
    while len(out) < n and guard < n * 50:
        guard += 1
        q, k = g.quantile_over_time() if g.chance(0.02) else g.query()
        if q not in seen:
            seen.add(q)
            out.append((q, k))
    return out


def _qot(self):
    m = self.matrix(allow_sub=True)
    phi = self.pick(["0.5", "0.9", "0", "1", "0.75"])
    return f"quantile_over_time({phi}, {m.s})", "vector"


QueryGen.quantile_over_time = _qot
