"""bongsutool, the promtool-like companion binary: check config / check rules,
tsdb create-blocks-from openmetrics (backfill), tsdb list and tsdb analyze.

The backfilled blocks are loaded by the real bongsu binary and read back with
/api/v1/query_range, sample for sample.  Where promtool (Prometheus 2.42) can
run the same command, its verdict and figures are compared with ours.

bongsutool is taken from $BONGSUTOOL_BIN, else from the directory of the
bongsu binary under test.
"""

import os
import random
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import BongsuProcess

PROMTOOL = shutil.which("promtool")
TWO_H = 2 * 3600 * 1000

pytestmark = pytest.mark.bongsu_only


@pytest.fixture(scope="module")
def tool(bongsu_bin):
    env = os.environ.get("BONGSUTOOL_BIN")
    path = Path(env).absolute() if env else Path(bongsu_bin).parent / "bongsutool"
    if not path.exists():
        pytest.skip(f"bongsutool not built: {path} is missing")
    return path


def run(binary, *args, cwd=None):
    p = subprocess.run([str(binary), *map(str, args)], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=120, cwd=cwd)
    return (p.returncode, p.stdout.decode("utf-8", "replace"),
            p.stderr.decode("utf-8", "replace"))


# --------------------------------------------------------------------------
# version and help


def test_version_and_help(tool):
    rc, out, _ = run(tool, "--version")
    assert rc == 0 and out.startswith("bongsutool, version "), out
    rc, out, _ = run(tool, "--help")
    assert rc == 0
    for cmd in ("check config", "check rules", "tsdb list", "tsdb analyze",
                "tsdb create-blocks-from openmetrics"):
        assert cmd in out, out
    rc, out, _ = run(tool, "tsdb", "list", "--help")
    assert rc == 0 and "--human-readable" in out, out
    rc, _, err = run(tool, "nonsense")
    assert rc == 1 and "expected command" in err, err
    rc, _, err = run(tool, "tsdb", "list", "--bogus")
    assert rc == 1 and "unknown long flag '--bogus'" in err, err


# --------------------------------------------------------------------------
# check config / check rules

GOOD_CONFIG = """\
global:
  scrape_interval: 15s
rule_files:
  - rules/*.yml
scrape_configs:
  - job_name: node
    static_configs:
      - targets: ['localhost:9100']
"""

# Line 6, column 22: the bad duration.
BAD_CONFIG = """\
global:
  scrape_interval: 15s
scrape_configs:
  - job_name: node
    static_configs: [{targets: ['localhost:9100']}]
    scrape_interval: 1x
"""

# A TLS file that does not exist: valid syntax, invalid config.
MISSING_FILE_CONFIG = """\
scrape_configs:
  - job_name: node
    tls_config:
      cert_file: nope.crt
      key_file: nope.key
    static_configs: [{targets: ['localhost:9100']}]
"""

MISSING_RULE_FILE_CONFIG = """\
rule_files: ['absent.yml']
"""

GOOD_RULES = """\
groups:
  - name: g
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
      - alert: Down
        expr: up == 0
        for: 5m
"""

BAD_RULES = """\
groups:
  - name: g
    rules:
      - record: job:up:sum
        expr: sum by (job) (up
"""


@pytest.fixture
def configs(tmp_path):
    d = tmp_path / "cfg"
    (d / "rules").mkdir(parents=True)
    (d / "rules" / "a.yml").write_text(GOOD_RULES)
    files = {"good": GOOD_CONFIG, "bad": BAD_CONFIG, "missing": MISSING_FILE_CONFIG,
             "norule": MISSING_RULE_FILE_CONFIG}
    for name, text in files.items():
        (d / f"{name}.yml").write_text(text)
    (d / "good_rules.yml").write_text(GOOD_RULES)
    (d / "bad_rules.yml").write_text(BAD_RULES)
    (d / "uses_bad_rules.yml").write_text("rule_files: ['bad_rules.yml']\n")
    return d


def test_check_config_good(tool, configs):
    rc, out, err = run(tool, "check", "config", "good.yml", cwd=configs)
    assert rc == 0, out + err
    assert out.startswith("Checking good.yml\n"), out
    assert "  SUCCESS: 1 rule files found\n" in out, out
    assert " SUCCESS: good.yml is valid prometheus config file syntax\n" in out, out
    assert "Checking rules/a.yml\n  SUCCESS: 2 rules found\n" in out, out


def test_check_config_bad(tool, configs):
    rc, out, err = run(tool, "check", "config", "bad.yml", cwd=configs)
    assert rc == 1, out + err
    assert out.startswith("Checking bad.yml\n"), out
    assert re.search(r'^  FAILED: bad\.yml:6:22: .*"1x"', err, re.M), err
    # Several files: every one is checked, the status is the worst.
    rc, out, err = run(tool, "check", "config", "bad.yml", "good.yml", cwd=configs)
    assert rc == 1
    assert "Checking bad.yml" in out and \
        " SUCCESS: good.yml is valid prometheus config file syntax" in out, out


def test_check_config_referenced_files(tool, configs):
    rc, _, err = run(tool, "check", "config", "missing.yml", cwd=configs)
    assert rc == 1 and re.search(r"missing\.yml:4:\d+: .*nope\.crt", err), err
    rc, _, err = run(tool, "check", "config", "norule.yml", cwd=configs)
    assert rc == 1 and '"absent.yml" does not point to an existing file' in err, err
    rc, out, err = run(tool, "check", "config", "uses_bad_rules.yml", cwd=configs)
    assert rc == 1, out + err
    assert "Checking bad_rules.yml" in out and "FAILED" in err, out + err
    assert re.search(r"bad_rules\.yml: ?5:\d+", err), err
    # --syntax-only leaves rule files alone.
    rc, out, err = run(tool, "check", "config", "--syntax-only", "uses_bad_rules.yml",
                       "norule.yml", cwd=configs)
    assert rc == 0, out + err
    rc, _, err = run(tool, "check", "config", "nowhere.yml", cwd=configs)
    assert rc == 1 and "path 'nowhere.yml' does not exist" in err, err


def test_check_rules(tool, configs):
    rc, out, err = run(tool, "check", "rules", "good_rules.yml", cwd=configs)
    assert rc == 0 and "SUCCESS: 2 rules found" in out, out + err
    rc, out, err = run(tool, "check", "rules", "bad_rules.yml", cwd=configs)
    assert rc == 1 and out.startswith("Checking bad_rules.yml\n"), out + err
    assert re.search(r"bad_rules\.yml: ?5:\d+: .*unclosed left parenthesis", err), err


@pytest.mark.skipif(not PROMTOOL, reason="promtool not installed")
def test_check_agrees_with_promtool(tool, configs):
    cases = [("config", "good.yml"), ("config", "bad.yml"), ("config", "missing.yml"),
             ("config", "norule.yml"), ("config", "uses_bad_rules.yml"),
             ("rules", "good_rules.yml"), ("rules", "bad_rules.yml")]
    for kind, f in cases:
        ours = run(tool, "check", kind, f, cwd=configs)
        theirs = run(PROMTOOL, "check", kind, f, cwd=configs)
        assert ours[0] == theirs[0], (kind, f, ours, theirs)
        # The same first line and the same SUCCESS lines.
        assert ours[1].splitlines()[0] == theirs[1].splitlines()[0]
        ok_ours = [l for l in ours[1].splitlines() if "SUCCESS" in l]
        ok_theirs = [l for l in theirs[1].splitlines() if "SUCCESS" in l]
        assert ok_ours == ok_theirs, (kind, f, ours, theirs)


# --------------------------------------------------------------------------
# backfill, list, analyze

CODES = ["200", "404", "500"]
INSTANCES = ["a", "b"]
STEP_S = 60
SPAN_S = 6 * 3600


def make_openmetrics(base_s, seed=7):
    """A 6 h OpenMetrics file: 6 counter series (code x instance) and one
    gauge, one sample a minute each, explicit timestamps.  Returns the text
    and {series key: [(t_s, value)]}."""
    rnd = random.Random(seed)
    expected = {}
    lines = ["# HELP http_requests Requests.", "# TYPE http_requests counter"]
    for code in CODES:
        for inst in INSTANCES:
            key = ("http_requests_total", code, inst)
            v = 0.0
            pts = []
            for t in range(base_s, base_s + SPAN_S, STEP_S):
                v += rnd.randint(0, 50)
                pts.append((t, v))
                lines.append(f'http_requests_total{{code="{code}",instance="{inst}"}} '
                             f'{int(v)} {t}')
            expected[key] = pts
    lines += ["# HELP room_temperature Temperature.", "# TYPE room_temperature gauge"]
    pts = []
    for t in range(base_s, base_s + SPAN_S, STEP_S):
        v = round(rnd.uniform(15, 30), 3) + rnd.random() * 1e-9
        pts.append((t, v))
        lines.append(f'room_temperature{{room="lab"}} {v!r} {t}')
    expected[("room_temperature", "lab")] = pts
    lines.append("# EOF")
    return "\n".join(lines) + "\n", expected


LIST_RE = re.compile(r"^([0-9A-HJKMNP-TV-Z]{26})\s+(\d+)\s+(\d+)\s+(\S+)\s+(\d+)\s+(\d+)"
                     r"\s+(\d+)\s+(\d+)$")


def parse_list(out):
    lines = out.strip().splitlines()
    assert lines[0].split() == ["BLOCK", "ULID", "MIN", "TIME", "MAX", "TIME", "DURATION",
                                "NUM", "SAMPLES", "NUM", "CHUNKS", "NUM", "SERIES", "SIZE"], out
    rows = []
    for l in lines[1:]:
        m = LIST_RE.match(l)
        assert m, l
        rows.append({"ulid": m.group(1), "mint": int(m.group(2)), "maxt": int(m.group(3)),
                     "duration": m.group(4), "samples": int(m.group(5)),
                     "chunks": int(m.group(6)), "series": int(m.group(7)),
                     "size": int(m.group(8))})
    return rows


def expected_blocks(expected, block_ms):
    """{window: (mint, maxt_exclusive, samples, series)} as promtool cuts."""
    wins = {}
    for pts in expected.values():
        seen = set()
        for t, _ in pts:
            ms = t * 1000
            w = ms // block_ms
            mint, maxt, n, s = wins.get(w, (ms, ms, 0, 0))
            if w not in seen:
                seen.add(w)
                s += 1
            wins[w] = (min(mint, ms), max(maxt, ms), n + 1, s)
    return [(mint, maxt + 1, n, s) for _, (mint, maxt, n, s) in sorted(wins.items())]


@pytest.fixture(scope="module")
def backfill(tool, tmp_path_factory):
    """The OpenMetrics file, its expected samples and the blocks bongsutool
    wrote (into a directory bongsu will use as its data directory)."""
    d = tmp_path_factory.mktemp("backfill")
    # Recent data, starting 40 minutes into a 2 h window, ending 2 h ago.
    end = int(time.time()) // 3600 * 3600 - 2 * 3600
    base = (end - SPAN_S) // 7200 * 7200 + 2400
    text, expected = make_openmetrics(base)
    om = d / "input.om"
    om.write_text(text)
    out_dir = d / "node" / "data"
    rc, out, err = run(tool, "tsdb", "create-blocks-from", "openmetrics", om, out_dir)
    assert rc == 0, out + err
    return {"dir": d, "om": om, "data": out_dir, "expected": expected, "base": base,
            "create_out": out}


def test_create_blocks_and_list(tool, backfill):
    want = expected_blocks(backfill["expected"], TWO_H)
    assert len(want) == 4, want     # 1h20m + 2h + 2h + 40m
    created = parse_list(backfill["create_out"])
    rc, out, err = run(tool, "tsdb", "list", backfill["data"])
    assert rc == 0, out + err
    rows = parse_list(out)
    assert [r["ulid"] for r in rows] == [r["ulid"] for r in created]
    got = [(r["mint"], r["maxt"], r["samples"], r["series"]) for r in rows]
    assert got == want, out
    for r in rows:
        assert r["chunks"] >= r["series"] and r["size"] > 0
        assert (backfill["data"] / r["ulid"] / "meta.json").is_file()
    assert rows[1]["duration"] == "1h59m0.001s", out
    # -r: dates and binary units.
    rc, out, _ = run(tool, "tsdb", "list", "-r", backfill["data"])
    assert rc == 0
    first = time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(want[0][0] // 1000))
    assert first in out, out
    assert re.search(r"\d+(KiB|B)\s*$", out.splitlines()[1]), out


@pytest.mark.skipif(not PROMTOOL, reason="promtool not installed")
def test_create_blocks_agrees_with_promtool(backfill, tmp_path):
    """promtool cuts the same file into blocks with the same bounds,
    sample and series counts."""
    rc, out, err = run(PROMTOOL, "tsdb", "create-blocks-from", "openmetrics",
                       backfill["om"], tmp_path / "prom")
    assert rc == 0, out + err
    rc, out, err = run(PROMTOOL, "tsdb", "list", tmp_path / "prom")
    theirs = [(r["mint"], r["maxt"], r["samples"], r["series"]) for r in parse_list(out)]
    assert theirs == expected_blocks(backfill["expected"], TWO_H)


def test_bongsu_serves_backfilled_samples(bongsu_bin, backfill, tmp_path):
    """The real server, started on the backfilled directory, returns every
    sample exactly."""
    # A copy: the server's compactor may merge blocks, which the list and
    # analyze tests must not see.
    work = tmp_path / "node"
    shutil.copytree(backfill["data"], work / "data")
    p = BongsuProcess(bongsu_bin, work)
    p.start()
    try:
        base = backfill["base"]
        end = base + SPAN_S - STEP_S
        for key, pts in backfill["expected"].items():
            if key[0] == "http_requests_total":
                q = f'http_requests_total{{code="{key[1]}",instance="{key[2]}"}}'
            else:
                q = f'room_temperature{{room="{key[1]}"}}'
            # Several ranges: the API caps points per series at 11000.
            got = []
            for s in range(base, end + 1, 3 * 3600):
                e = min(end, s + 3 * 3600 - STEP_S)
                res = p.query_range(q, s, e, STEP_S)["result"]
                assert len(res) == 1, (q, res)
                got += [(int(float(t)), float(v)) for t, v in res[0]["values"]]
            assert got == pts, q
        total = p.query(f"count_over_time(room_temperature[{SPAN_S}s])",
                        time=end)["result"]
        assert total[0]["value"][1] == str(SPAN_S // STEP_S)
    finally:
        p.stop()


def section(out, title):
    lines = out.splitlines()
    i = lines.index(title)
    body = []
    for l in lines[i + 1:]:
        if not l:
            break
        body.append(l)
    return body


def test_analyze(tool, backfill):
    rc, out, err = run(tool, "tsdb", "analyze", backfill["data"])
    assert rc == 0, out + err
    rc2, lst, _ = run(tool, "tsdb", "list", backfill["data"])
    rows = parse_list(lst)
    assert out.startswith(f"Block ID: {rows[-1]['ulid']}\n"), out   # newest by default
    assert "\nSeries: 7\n" in out and "\nLabel names: 4\n" in out, out
    # pairs: 2 names + 3 codes + 2 instances + 1 room
    assert "\nPostings (unique label pairs): 8\n" in out, out
    assert "\nPostings entries (total label pairs): 20\n" in out, out
    assert section(out, "Highest cardinality labels:") == \
        ["3 code", "2 __name__", "2 instance", "1 room"], out
    assert section(out, "Highest cardinality metric names:") == \
        ["6 http_requests_total", "1 room_temperature"], out
    assert section(out, "Most common label pairs:")[:3] == \
        ["6 __name__=http_requests_total", "3 instance=a", "3 instance=b"], out
    assert section(out, "Label names with highest cumulative label value length:")[0] == \
        "35 __name__", out
    # Every series covers its whole block: no churn.
    assert all(l.startswith("0 ") for l in
               section(out, "Label pairs most involved in churning:")), out
    # A chosen block, and --limit.
    rc, out, err = run(tool, "tsdb", "analyze", "--limit=2", backfill["data"], rows[0]["ulid"])
    assert rc == 0, out + err
    assert out.startswith(f"Block ID: {rows[0]['ulid']}\n"), out
    assert section(out, "Highest cardinality labels:") == ["3 code", "2 __name__"], out
    rc, _, err = run(tool, "tsdb", "analyze", backfill["data"], "01ARZ3NDEKTSV4RRFFQ69G5FAV")
    assert rc == 1 and "not found" in err, err


@pytest.mark.skipif(not PROMTOOL, reason="promtool not installed")
def test_analyze_agrees_with_promtool(tool, backfill, tmp_path):
    """Same figures as promtool's analysis of its own blocks from the same
    file (ties may be listed in another order: promtool's sort is unstable)."""
    rc, _, err = run(PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", "-q",
                     backfill["om"], tmp_path / "prom")
    assert rc == 0, err
    _, theirs, _ = run(PROMTOOL, "tsdb", "analyze", tmp_path / "prom")
    _, ours, _ = run(tool, "tsdb", "analyze", backfill["data"])
    t_lines, o_lines = theirs.splitlines(), ours.splitlines()
    assert t_lines[1:6] == o_lines[1:6]           # duration, counts
    for title in ("Most common label pairs:", "Highest cardinality labels:",
                  "Highest cardinality metric names:",
                  "Label names with highest cumulative label value length:",
                  "Label pairs most involved in churning:"):
        assert sorted(section(theirs, title)) == sorted(section(ours, title)), title


def test_max_block_duration(tool, backfill, tmp_path):
    out_dir = tmp_path / "big"
    rc, out, err = run(tool, "tsdb", "create-blocks-from", "openmetrics",
                       "--max-block-duration=8h", "-q", backfill["om"], out_dir)
    assert rc == 0 and out == "", out + err
    rc, out, _ = run(tool, "tsdb", "list", out_dir)
    got = [(r["mint"], r["maxt"], r["samples"], r["series"]) for r in parse_list(out)]
    assert got == expected_blocks(backfill["expected"], 3 * TWO_H), out   # 8h -> 6h windows
    assert sum(r[2] for r in got) == 7 * SPAN_S // STEP_S


def test_create_blocks_errors(tool, tmp_path):
    out_dir = tmp_path / "out"
    t = 1700000000
    no_ts = f'# TYPE m gauge\nm{{a="1"}} 1 {t}\nm{{a="2"}} 2\n# EOF\n'
    (tmp_path / "no_ts.om").write_text(no_ts)
    rc, _, err = run(tool, "tsdb", "create-blocks-from", "openmetrics", tmp_path / "no_ts.om",
                     out_dir)
    assert rc == 1 and re.search(r"no_ts\.om:3: expected timestamp for series", err), err
    (tmp_path / "no_eof.om").write_text(f"# TYPE m gauge\nm 1 {t}\n")
    rc, _, err = run(tool, "tsdb", "create-blocks-from", "openmetrics", tmp_path / "no_eof.om",
                     out_dir)
    assert rc == 1 and re.search(r"no_eof\.om:\d+", err) and "EOF" in err, err
    (tmp_path / "syntax.om").write_text(f"# TYPE m gauge\nm{{a=1}} 1 {t}\n# EOF\n")
    rc, _, err = run(tool, "tsdb", "create-blocks-from", "openmetrics", tmp_path / "syntax.om",
                     out_dir)
    assert rc == 1 and re.search(r"syntax\.om:2:\d+: ", err), err
    (tmp_path / "dup.om").write_text(f"# TYPE m gauge\nm 1 {t}\nm 2 {t}\n# EOF\n")
    rc, _, err = run(tool, "tsdb", "create-blocks-from", "openmetrics", tmp_path / "dup.om",
                     out_dir)
    assert rc == 1, err
    # Nothing was written by any failed import.
    assert not out_dir.exists() or not any(out_dir.iterdir())
    rc, _, err = run(tool, "tsdb", "create-blocks-from", "openmetrics", tmp_path / "none.om",
                     out_dir)
    assert rc == 1 and "does not exist" in err, err
