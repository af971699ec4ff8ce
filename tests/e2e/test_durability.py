"""Crash durability: every sample visible before a kill -9 must be returned,
unchanged, after a restart on the same data directory.

bongsu runs with --storage.tsdb.wal-fsync-interval=0s (fsync on every
commit), so every sample a query returned before the kill counts.  Other
binaries (i.e. Prometheus, which the suite is validated against) only
promise samples older than GRACE_OTHER seconds before the kill; the loss of
newer samples is printed, not failed.  (In practice Prometheus 2.42 loses
nothing on kill -9 either: its WAL pages are written to the kernel at the end
of every commit, so only an OS crash could lose them.)

Set E2E_SEED to reproduce the random kill moments.
"""

import os
import random
import time

import pytest

from conftest import wait_up

GRACE_OTHER = 10.0
EXTRA_KILLS = 3

CONFIG = """\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: self
    static_configs:
      - targets: ['127.0.0.1:{port}']
  - job_name: static
    static_configs:
      - targets: ['{target}']
"""


class StaticMetrics:
    """Serves a counter plus gauges with awkward float values that change on
    every scrape (so exact value round-trips are checked)."""

    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.n = 0

    def __call__(self, path):
        self.n += 1
        r = self.rng
        body = (
            "# TYPE e2e_scrapes_total counter\n"
            f"e2e_scrapes_total {self.n}\n"
            "# TYPE e2e_gauge gauge\n"
            f'e2e_gauge{{kind="frac"}} {r.random()!r}\n'
            f'e2e_gauge{{kind="big"}} {r.uniform(-1e300, 1e300)!r}\n'
            f'e2e_gauge{{kind="tiny"}} {r.uniform(-1e-300, 1e-300)!r}\n'
            f'e2e_gauge{{kind="int"}} {r.randrange(-2**53, 2**53)}\n'
            f'e2e_gauge{{kind="inf"}} {"+Inf" if self.n % 2 else "-Inf"}\n'
            f'e2e_gauge{{kind="nan"}} NaN\n'
            f'e2e_gauge{{kind="utf8",text="üñîçødé \\\\ \\"q\\""}} {self.n * 0.1!r}\n'
        )
        # a wider set so every round checks a few hundred samples
        body += "# TYPE e2e_many gauge\n" + "".join(
            f'e2e_many{{i="{i}"}} {r.random() * 10 ** r.randrange(-5, 6)!r}\n'
            for i in range(60))
        return 200, "text/plain; version=0.0.4", body


def snapshot(p, at):
    """All stored samples: {labels: {t: value-string}} via a range selector."""
    res = p.query('{__name__=~".+"}[1h]', time=at)
    assert res["resultType"] == "matrix"
    out = {}
    for s in res["result"]:
        key = tuple(sorted(s["metric"].items()))
        out[key] = {float(t): v for t, v in s["values"]}
    return out


def test_kill9_restart_keeps_samples(bongsu_factory, http_target_factory,
                                     is_bongsu):
    seed = int(os.environ.get("E2E_SEED", random.randrange(1 << 30)))
    print(f"E2E_SEED={seed}")
    rng = random.Random(seed)
    target = http_target_factory(StaticMetrics(seed))
    extra = ["--storage.tsdb.wal-fsync-interval=0s"] if is_bongsu else []
    grace = 0.0 if is_bongsu else GRACE_OTHER
    p = bongsu_factory(CONFIG.replace("{target}", target.address),
                       extra_args=extra, name="durable")

    required = {}       # labels -> {t: v}, samples that must survive
    lost_in_grace = 0
    static_key = (("__name__", "e2e_scrapes_total"),
                  ("instance", target.address), ("job", "static"))

    for rnd in range(1 + EXTRA_KILLS):
        if rnd == 0:
            # (Prometheus applies discovered targets only every 5s)
            wait_up(p, "self", p.address, timeout=15)
            wait_up(p, "static", target.address, timeout=15)
            time.sleep(5)
        else:
            time.sleep(rng.uniform(0.5, 3.0))
        at = time.time()
        snap = snapshot(p, at)
        assert static_key in snap, f"round {rnd}: static target not scraped"
        time.sleep(rng.uniform(0.0, 1.0))  # kill at a random moment
        killed_at = time.time()
        p.kill9()
        cutoff = killed_at - grace
        n_new = 0
        for key, samples in snap.items():
            for t, v in samples.items():
                if t <= cutoff:
                    if t not in required.setdefault(key, {}):
                        required[key][t] = v
                        n_new += 1
        restarted = time.time()
        p.start()
        got = snapshot(p, time.time())
        missing, changed = [], []
        for key, samples in required.items():
            have = got.get(key, {})
            for t, v in samples.items():
                if t not in have:
                    missing.append((key, t, v))
                elif have[t] != v:
                    changed.append((key, t, v, have[t]))
        if not is_bongsu:
            for key, samples in snap.items():
                have = got.get(key, {})
                lost_in_grace += sum(1 for t in samples
                                     if t > cutoff and t not in have)
        n_req = sum(len(s) for s in required.values())
        print(f"round {rnd}: {n_new} new required samples, {n_req} total, "
              f"{len(missing)} missing, {len(changed)} changed")
        assert not missing and not changed, (
            f"round {rnd} (seed {seed}): after kill -9 and restart "
            f"{len(missing)} of {n_req} samples missing, {len(changed)} changed; "
            f"first missing: {missing[:5]}; first changed: {changed[:5]}")
        # the restarted instance carries on scraping into the same series
        def resumed():
            r = p.query(f'timestamp(e2e_scrapes_total{{job="static"}}) > {restarted:.3f}')
            return r["result"]
        p.wait_for(resumed, 10, "scraping to resume after restart")

    if is_bongsu:
        n_req = sum(len(s) for s in required.values())
        assert n_req > 1000, f"only {n_req} samples checked"
    else:
        print(f"samples within the {grace}s grace lost by kill -9: {lost_in_grace}")
        # the check must not be vacuous for Prometheus either
        assert sum(len(s) for s in required.values()) > 0
