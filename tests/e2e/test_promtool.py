"""promtool (the Prometheus CLI) used as an API client against the binary."""

import re
import shutil
import subprocess
import time

import pytest

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


@pytest.fixture(scope="module")
def promtool():
    if not shutil.which(PROMTOOL):
        pytest.skip("promtool not installed (apt-get install prometheus)")
    return PROMTOOL


def run(promtool, *args):
    p = subprocess.run([promtool, *args], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    out = p.stdout.decode("utf-8", "replace")
    err = p.stderr.decode("utf-8", "replace")
    assert p.returncode == 0, f"promtool {args} exit {p.returncode}\n{out}\n{err}"
    return out


def test_query_instant(promtool, self_scraping):
    p = self_scraping
    out = run(promtool, "query", "instant", p.url, 'up{job="self"}')
    line = re.escape(f'up{{instance="{p.address}", job="self"}}') + \
        r" => 1 @\[(\d+(?:\.\d+)?)\]"
    m = re.search("^" + line + "$", out, re.M)
    assert m, out
    assert abs(float(m.group(1)) - time.time()) < 10


def test_query_range(promtool, self_scraping):
    p = self_scraping
    p.wait_for(lambda: p.query('count_over_time(up{job="self"}[1m]) >= 6')["result"],
               15, ">= 6 scrapes of up")
    end = int(time.time())
    start = end - 3
    out = run(promtool, "query", "range", f"--start={start}", f"--end={end}",
              "--step=1s", p.url, 'up{job="self"}')
    lines = out.strip().splitlines()
    assert lines[0] == f'up{{instance="{p.address}", job="self"}} =>', out
    vals = [re.fullmatch(r"(\S+) @\[(\d+(?:\.\d+)?)\]", l.strip()) for l in lines[1:]]
    assert all(vals), out
    assert [v.group(1) for v in vals] == ["1"] * 4, out
    assert [float(v.group(2)) for v in vals] == [float(t) for t in range(start, end + 1)], out


def test_query_series(promtool, self_scraping):
    p = self_scraping
    out = run(promtool, "query", "series", "--match=up", p.url)
    assert out.strip().splitlines() == \
        [f'{{__name__="up", instance="{p.address}", job="self"}}'], out


def test_query_labels(promtool, self_scraping):
    p = self_scraping
    out = run(promtool, "query", "labels", p.url, "job")
    assert out.strip().splitlines() == ["self"], out
    out = run(promtool, "query", "labels", p.url, "instance")
    assert out.strip().splitlines() == [p.address], out
