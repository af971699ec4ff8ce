# SPDX-License-Identifier: Apache-2.0
"""Storage torture: 30 kill -9 at random moments while samples arrive
through remote write and the store compacts, each followed by a restart and
a check that every acknowledged sample is back, unchanged, exactly once.

bongsu runs with --storage.tsdb.wal-fsync-interval=0s, so a 2xx answer to a
remote-write request means its samples are in the fsynced WAL.  Sample
times are synthetic: they start 400 days in the past and advance 5 minutes
per request, so a few seconds of pushing cover many 2 h blocks and the
compactor (woken by commits once the head spans 3 h) cuts head blocks,
checkpoints the WAL and merges blocks (2 h -> 6 h -> 18 h) all the time;
kills land in the middle of all of it.  When the binary knows
--storage.tsdb.min-block-duration / --storage.tsdb.max-block-duration they
are set (1 h / 9 h) to make blocks and merges more frequent still.

Per round, the check: for every series, the samples returned by a range
selector are exactly the acknowledged requests' samples, plus possibly the
one request in flight at the kill (committed but not answered); values
bit-exact (compared as the API's strings).  A sample stored twice could only
hide behind the querier's de-duplication; the C-level torture test
(tests/unit/test_tsdb_torture.c) checks that invariant inside the store.

Set E2E_SEED to reproduce the random kill moments.
"""

import os
import random
import threading
import time

import pytest
import requests

import rw_encode

KILLS = 30
SERIES = 4
STEP_MS = 300_000            # sample time between requests
DAY_MS = 86_400_000


def value_of(i, b):
    # integers, decimals and a constant: what the dense codec specialises in
    if i == 0:
        return float(b)
    if i == 1:
        return round(b * 0.1, 1)
    if i == 2:
        return 7.0
    return float((b * 7919) % 1013) / 8.0


def _flags_known(binary, *names):
    import subprocess
    out = subprocess.run([str(binary), "--help"], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, timeout=20).stdout.decode()
    return all(n in out for n in names)


class Pusher(threading.Thread):
    """Pushes request b (one sample per series at base + b*STEP_MS) in a
    loop; `acked` is the last request answered 2xx, `sent` the last one
    sent."""

    def __init__(self, url, base_ms, first):
        super().__init__(daemon=True)
        self.url, self.base_ms = url, base_ms
        self.acked = first - 1
        self.sent = first - 1
        self.stop = False
        self.error = None

    def run(self):
        s = requests.Session()
        b = self.acked + 1
        limit = (time.time() - 86400) * 1000   # stay clear of "too far in the future"
        while not self.stop:
            t = self.base_ms + b * STEP_MS
            if t > limit:
                time.sleep(0.05)
                continue
            series = [({"__name__": "torture", "series": f"s{i}"},
                       [(t, value_of(i, b))]) for i in range(SERIES)]
            self.sent = b
            try:
                r = s.post(self.url, data=rw_encode.build_body(series),
                           headers=rw_encode.HEADERS, timeout=10)
            except requests.RequestException:
                return              # killed
            if not 200 <= r.status_code < 300:
                self.error = f"request {b}: HTTP {r.status_code}: {r.text[:200]}"
                return
            self.acked = b
            b += 1


def stored(p, base_ms, last_b):
    """{series: {b: value string}} from a range selector over everything."""
    at = (base_ms + (last_b + 2) * STEP_MS) / 1000.0
    span_s = (last_b + 3) * STEP_MS // 1000
    res = p.query(f'torture[{span_s}s]', time=at)
    out = {}
    for s in res["result"]:
        vals = {}
        for t, v in s["values"]:
            b, rem = divmod(round(float(t) * 1000) - base_ms, STEP_MS)
            assert rem == 0, f"unexpected timestamp {t}"
            assert b not in vals, f"{s['metric']}: timestamp {t} returned twice"
            vals[b] = v
        out[s["metric"]["series"]] = vals
    return out


@pytest.mark.bongsu_only
def test_kill9_torture(bongsu_factory):
    seed = int(os.environ.get("E2E_SEED", random.randrange(1 << 30)))
    print(f"E2E_SEED={seed}")
    rng = random.Random(seed)
    # retention far beyond the synthetic time span: nothing may age out
    extra = ["--storage.tsdb.wal-fsync-interval=0s",
             "--storage.tsdb.retention.time=3650d",
             "--web.enable-remote-write-receiver"]
    # no scrape jobs: a scraped sample at wall-clock time would put the
    # head's newest time ahead of the synthetic samples (out of bounds)
    p = bongsu_factory("global:\n  scrape_interval: 15s\nscrape_configs: []\n",
                       extra_args=extra, name="torture", start=False)
    if _flags_known(p.binary, "storage.tsdb.min-block-duration",
                    "storage.tsdb.max-block-duration"):
        p.extra_args += ["--storage.tsdb.min-block-duration=1h",
                         "--storage.tsdb.max-block-duration=9h"]
        print("using 1h blocks, merged up to 9h")
    else:
        print("--storage.tsdb.min/max-block-duration not available: default 2h blocks")
    base_ms = (int(time.time() * 1000) // DAY_MS - 400) * DAY_MS
    acked = -1
    checked = 0
    for rnd in range(KILLS):
        if not p.running():
            p.start()
        pusher = Pusher(p.url + "/api/v1/write", base_ms, acked + 1)
        pusher.start()
        time.sleep(rng.uniform(0.2, 2.5))
        p.kill9()
        pusher.stop = True
        pusher.join(15)
        assert pusher.error is None, pusher.error
        acked = pusher.acked
        in_flight = pusher.sent if pusher.sent > acked else None

        p.start()
        got = stored(p, base_ms, max(acked, 0) + 1)
        assert sorted(got) == [f"s{i}" for i in range(SERIES)] or acked < 0, \
            f"round {rnd}: series {sorted(got)}"
        for i in range(SERIES):
            have = got.get(f"s{i}", {})
            missing = [b for b in range(acked + 1) if b not in have]
            extra_b = [b for b in have if b > acked and b != in_flight]
            wrong = [(b, have[b]) for b in range(acked + 1)
                     if b in have and float(have[b]) != value_of(i, b)]
            assert not missing and not extra_b and not wrong, (
                f"round {rnd} (seed {seed}), series s{i}: {len(missing)} of "
                f"{acked + 1} acknowledged samples missing (first {missing[:5]}), "
                f"unexpected {extra_b[:5]}, wrong values {wrong[:5]}")
            checked += acked + 1
        if in_flight is not None and in_flight in got.get("s0", {}):
            acked = in_flight       # it was committed: the next round goes on
        print(f"round {rnd}: {acked + 1} requests acknowledged "
              f"({(acked + 1) * STEP_MS / 3_600_000:.0f} h of samples)")
    print(f"{KILLS} kills, {checked} sample checks")
    assert acked > 100
