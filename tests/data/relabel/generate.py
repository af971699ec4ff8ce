#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Regenerate the relabeling test cases from a real Prometheus.

Every case below is a list of relabel_configs plus a static target with
extra labels. The script writes one prometheus.yml with one scrape job per
case (job_name "cNNN", a 1h scrape_interval so Prometheus barely scrapes),
starts /usr/bin/prometheus on a private port with a temporary storage dir,
waits until /api/v1/targets?state=any lists every case, and writes each case
as tests/data/relabel/NNN-name.case:

    # comment lines
    in<TAB>name<TAB>value        the relabeling input (discoveredLabels)
    rule                          starts one relabel config
    action<TAB>replace            fields exactly as written in the YAML;
    source_labels<TAB>a<TAB>b     a field that is absent takes Prometheus's
    separator<TAB>;               default, a field with an empty value was
    regex<TAB>(.*)                given as "" in the YAML
    modulus<TAB>10
    target_label<TAB>x
    replacement<TAB>$1
    out<TAB>name<TAB>value        the target's "labels" as the API shows them
    dropped                       instead of out lines: a dropped target

Values escape backslash, tab and newline as \\\\, \\t and \\n.

Invalid configurations (ERROR_CASES) are checked with `promtool check config`
instead, one file per case, and the case file ends with
    error<TAB>message
holding Prometheus's message for the first invalid relabel config.

Usage: tests/data/relabel/generate.py [--prometheus BIN] [--promtool BIN]
       [--port N]
Python 3 standard library only.
"""
import argparse
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ADDR = "127.0.0.1:1"

# (name, extra static labels, relabel configs[, target address])
CASES = [
    # ----------------------------------------------------------- replace
    ("replace-copy-default", {"env": "prod"},
     [{"source_labels": ["env"], "target_label": "dst"}]),
    ("replace-missing-source-deletes", {"dst": "old"},
     [{"source_labels": ["nosuch"], "target_label": "dst"}]),
    ("replace-static-value", {},
     [{"target_label": "team", "replacement": "infra"}]),
    ("replace-regex-no-match-unchanged", {"env": "prod"},
     [{"source_labels": ["env"], "regex": "stag.*", "target_label": "env",
       "replacement": "x"}]),
    ("replace-anchored", {"env": "production"},
     [{"source_labels": ["env"], "regex": "prod", "target_label": "short",
       "replacement": "p"}]),
    ("replace-two-groups", {},
     [{"source_labels": ["__address__"], "regex": "(.*):(\\d+)",
       "target_label": "hostport", "replacement": "$2-$1"}]),
    ("replace-dollar-1x-is-a-name", {"v": "val", "dst": "old"},
     [{"source_labels": ["v"], "target_label": "dst", "replacement": "$1x"}]),
    ("replace-braced-1x", {"v": "val"},
     [{"source_labels": ["v"], "target_label": "dst", "replacement": "${1}x"}]),
    ("replace-named-groups", {},
     [{"source_labels": ["__address__"],
       "regex": "(?P<host>[^:]+):(?P<port>\\d+)",
       "target_label": "swapped", "replacement": "${port}/${host}"}]),
    ("replace-unknown-name-empty", {"v": "val"},
     [{"source_labels": ["v"], "regex": "(?P<host>.*)",
       "target_label": "dst", "replacement": "pre-$host_suffix"}]),
    ("replace-double-dollar", {"v": "val"},
     [{"source_labels": ["v"], "target_label": "dst",
       "replacement": "$$1-$1"}]),
    ("replace-separator-missing-middle", {"a": "x", "c": "z"},
     [{"source_labels": ["a", "b", "c"], "separator": "/",
       "target_label": "joined"}]),
    ("replace-separator-empty", {"a": "x", "b": "y"},
     [{"source_labels": ["a", "b"], "separator": "", "target_label": "joined"}]),
    ("replace-separator-multichar", {"a": "x", "b": "y"},
     [{"source_labels": ["a", "b"], "separator": "::",
       "target_label": "joined"}]),
    ("replace-default-separator", {"a": "x", "b": "y"},
     [{"source_labels": ["a", "b"], "target_label": "joined"}]),
    ("replace-target-expansion", {"kind": "disk"},
     [{"source_labels": ["kind"], "target_label": "has_${1}",
       "replacement": "yes"}]),
    ("replace-target-expansion-invalid", {"kind": "9bad"},
     [{"source_labels": ["kind"], "target_label": "${1}",
       "replacement": "yes"}]),
    ("replace-expanded-target-empty-result", {"victim": "alive", "name": "victim"},
     [{"source_labels": ["name"], "target_label": "${1}", "replacement": ""}]),
    ("replace-empty-regex-matches-empty", {},
     [{"source_labels": ["nosuch"], "regex": "", "target_label": "t",
       "replacement": "was-empty"}]),
    ("replace-empty-regex-no-match", {"v": "x"},
     [{"source_labels": ["v"], "regex": "", "target_label": "t",
       "replacement": "was-empty"}]),
    ("replace-address", {},
     [{"source_labels": ["__address__"], "regex": "(.*):1",
       "target_label": "__address__", "replacement": "${1}:2"}]),
    ("replace-instance", {"host": "db1"},
     [{"source_labels": ["host"], "target_label": "instance"}]),
    ("replace-case-insensitive", {"env": "PROD"},
     [{"source_labels": ["env"], "regex": "(?i)prod", "target_label": "is_prod",
       "replacement": "true"}]),
    ("replace-dot-does-not-match-newline", {"v": "a\nb"},
     [{"source_labels": ["v"], "target_label": "copy"}]),
    ("replace-dotall-flag", {"v": "a\nb"},
     [{"source_labels": ["v"], "regex": "(?s)(.*)", "target_label": "copy"}]),
    ("replace-unicode-rune-group", {"v": "\u00e9t\u00e9"},
     [{"source_labels": ["v"], "regex": "(.)(.*)", "target_label": "rot",
       "replacement": "$2$1"}]),
    ("replace-group-10", {"v": "abcdefghij"},
     [{"source_labels": ["v"], "regex": "(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)",
       "target_label": "g", "replacement": "$10-${1}0"}]),
    ("replace-group-0", {"v": "abc"},
     [{"source_labels": ["v"], "regex": "b*(a)b*(.*)", "target_label": "g",
       "replacement": "<$0>"}]),
    ("replace-trailing-dollar", {"v": "5"},
     [{"source_labels": ["v"], "target_label": "price",
       "replacement": "$1$"}]),
    ("replace-unclosed-brace", {"v": "x"},
     [{"source_labels": ["v"], "target_label": "dst",
       "replacement": "${1-${unclosed"}]),
    ("replace-leading-zero-group", {"v": "x"},
     [{"source_labels": ["v"], "target_label": "dst",
       "replacement": "[${01}][$01][${1}]"}]),
    ("replace-unmatched-group", {"v": "b"},
     [{"source_labels": ["v"], "regex": "(a)|(b)", "target_label": "dst",
       "replacement": "[$1][$2]"}]),
    ("replace-tmp-chain", {"dc": "eu1", "rack": "r7"},
     [{"source_labels": ["dc", "rack"], "separator": "-",
       "target_label": "__tmp_loc"},
      {"source_labels": ["__tmp_loc"], "regex": "(.*)-r(\\d+)",
       "target_label": "location", "replacement": "${1}/rack${2}"}]),
    ("replace-overwrites-job", {},
     [{"source_labels": ["job"], "regex": "c(\\d+)", "target_label": "job",
       "replacement": "job-$1"}]),
    ("replace-metrics-path-param", {"__param_module": "http_2xx"},
     [{"source_labels": ["__param_module"], "target_label": "module"}]),
    ("replace-greedy-groups", {"v": "a.b.c"},
     [{"source_labels": ["v"], "regex": "(.*)\\.(.*)", "target_label": "dst",
       "replacement": "$1|$2"}]),
    ("replace-lazy-groups", {"v": "a.b.c"},
     [{"source_labels": ["v"], "regex": "(.*?)\\.(.*)", "target_label": "dst",
       "replacement": "$1|$2"}]),
    ("replace-optional-group-missing", {"v": "host"},
     [{"source_labels": ["v"], "regex": "([^:]+)(?::(\\d+))?",
       "target_label": "dst", "replacement": "$1:${2}"}]),
    # -------------------------------------------------------- keep / drop
    ("keep-match", {"env": "prod"},
     [{"action": "keep", "source_labels": ["env"], "regex": "prod|stage"}]),
    ("keep-no-match", {"env": "dev"},
     [{"action": "keep", "source_labels": ["env"], "regex": "prod|stage"}]),
    ("keep-missing-nonempty-regex", {},
     [{"action": "keep", "source_labels": ["env"], "regex": ".+"}]),
    ("keep-missing-empty-regex", {},
     [{"action": "keep", "source_labels": ["env"], "regex": ""}]),
    ("keep-joined", {"a": "1", "b": "2"},
     [{"action": "keep", "source_labels": ["a", "b"], "regex": "1;2"}]),
    ("drop-match", {"env": "dev"},
     [{"action": "drop", "source_labels": ["env"], "regex": "dev"}]),
    ("drop-no-match", {"env": "prod"},
     [{"action": "drop", "source_labels": ["env"], "regex": "dev"}]),
    ("drop-default-regex-drops-all", {},
     [{"action": "drop", "source_labels": ["nosuch"]}]),
    ("drop-after-replace", {"env": "dev"},
     [{"source_labels": ["env"], "target_label": "__tmp_env",
       "replacement": "x$1"},
      {"action": "drop", "source_labels": ["__tmp_env"], "regex": "xdev"}]),
    ("keep-uppercase-action", {"env": "prod"},
     [{"action": "Keep", "source_labels": ["env"], "regex": "prod"}]),
    # ------------------------------------------------ keepequal/dropequal
    ("keepequal-equal", {"a": "x", "b": "x"},
     [{"action": "keepequal", "source_labels": ["a"], "target_label": "b"}]),
    ("keepequal-differ", {"a": "x", "b": "y"},
     [{"action": "keepequal", "source_labels": ["a"], "target_label": "b"}]),
    ("keepequal-both-missing", {},
     [{"action": "keepequal", "source_labels": ["nosuch"],
       "target_label": "nosuch2"}]),
    ("keepequal-joined", {"a": "x", "b": "y", "c": "x;y"},
     [{"action": "keepequal", "source_labels": ["a", "b"],
       "target_label": "c"}]),
    ("dropequal-equal", {"a": "x", "b": "x"},
     [{"action": "dropequal", "source_labels": ["a"], "target_label": "b"}]),
    ("dropequal-differ", {"a": "x", "b": "y"},
     [{"action": "dropequal", "source_labels": ["a"], "target_label": "b"}]),
    ("dropequal-port", {"port": "1"},
     [{"source_labels": ["__address__"], "regex": ".*:(\\d+)",
       "target_label": "__tmp_port"},
      {"action": "dropequal", "source_labels": ["port"],
       "target_label": "__tmp_port"}]),
    # ----------------------------------------------------------- hashmod
    ("hashmod-1", {},
     [{"action": "hashmod", "source_labels": ["__address__"], "modulus": 1,
       "target_label": "shard"}]),
    ("hashmod-2", {},
     [{"action": "hashmod", "source_labels": ["__address__"], "modulus": 2,
       "target_label": "shard"}]),
    ("hashmod-10-other-address", {},
     [{"action": "hashmod", "source_labels": ["__address__"], "modulus": 10,
       "target_label": "shard"}], "127.0.0.3:9100"),
    ("hashmod-1000-joined", {"a": "alpha", "b": "beta"},
     [{"action": "hashmod", "source_labels": ["a", "b"], "modulus": 1000,
       "target_label": "shard"}]),
    ("hashmod-large", {"a": "alpha"},
     [{"action": "hashmod", "source_labels": ["a"],
       "modulus": 18446744073709551615, "target_label": "shard"}]),
    ("hashmod-2pow32-empty", {},
     [{"action": "hashmod", "source_labels": ["nosuch"], "modulus": 4294967296,
       "target_label": "shard"}]),
    ("hashmod-then-keep", {},
     [{"action": "hashmod", "source_labels": ["__address__"], "modulus": 8,
       "target_label": "__tmp_hash"},
      {"action": "keep", "source_labels": ["__tmp_hash"], "regex": "[0-3]"}],
     "10.0.0.1:9100"),
    ("hashmod-unicode", {"a": "\u65e5\u672c"},
     [{"action": "hashmod", "source_labels": ["a"], "modulus": 97,
       "target_label": "shard"}]),
    # ---------------------------------------------------------- labelmap
    ("labelmap-meta", {"__meta_kubernetes_pod_label_app": "web",
                       "__meta_kubernetes_pod_label_tier": "front",
                       "__meta_other": "x"},
     [{"action": "labelmap",
       "regex": "__meta_kubernetes_pod_label_(.+)"}]),
    ("labelmap-braced-replacement", {"__meta_a": "1", "__meta_b": "2"},
     [{"action": "labelmap", "regex": "__meta_(.*)",
       "replacement": "meta_${1}_x"}]),
    ("labelmap-no-match", {"__meta_a": "1"},
     [{"action": "labelmap", "regex": "nothing_(.*)"}]),
    ("labelmap-overrides-existing", {"__meta_env": "from-meta", "env": "orig"},
     [{"action": "labelmap", "regex": "__meta_(.*)"}]),
    ("labelmap-collision-last-wins", {"__meta_a_x": "from-a",
                                      "__meta_b_x": "from-b"},
     [{"action": "labelmap", "regex": "__meta_[ab]_(.*)"}]),
    ("labelmap-copy-all", {"env": "prod"},
     [{"action": "labelmap", "regex": "([a-z]+)", "replacement": "copy_$1"}]),
    # --------------------------------------------------------- labeldrop
    ("labeldrop-plain", {"tmp_a": "1", "tmp_b": "2", "keep_me": "3"},
     [{"action": "labeldrop", "regex": "tmp_.*"}]),
    ("labeldrop-meta-then-labelmap", {"__meta_drop_a": "1", "__meta_keep_b": "2"},
     [{"action": "labeldrop", "regex": "__meta_drop_.*"},
      {"action": "labelmap", "regex": "__meta_(.*)"}]),
    ("labeldrop-job", {"env": "prod"},
     [{"action": "labeldrop", "regex": "job"}]),
    ("labeldrop-anchored", {"ab": "1", "abc": "2"},
     [{"action": "labeldrop", "regex": "ab"}]),
    ("labeldrop-instance-readded", {"instance": "manual"},
     [{"action": "labeldrop", "regex": "instance"}]),
    # --------------------------------------------------------- labelkeep
    ("labelkeep-basic", {"env": "prod", "team": "a", "zone": "z1"},
     [{"action": "labelkeep", "regex": "__.*|env|job"}]),
    ("labelkeep-drops-job", {"env": "prod"},
     [{"action": "labelkeep", "regex": "__.*|env"}]),
    ("labelkeep-then-replace", {"env": "prod", "x": "1"},
     [{"action": "labelkeep", "regex": "__.*|env"},
      {"source_labels": ["x"], "target_label": "y", "replacement": "had-$1"}]),
    # ------------------------------------------------- lowercase/uppercase
    ("lowercase-ascii", {"host": "DB-01.Example.COM"},
     [{"action": "lowercase", "source_labels": ["host"],
       "target_label": "host"}]),
    ("uppercase-ascii", {"env": "prod"},
     [{"action": "uppercase", "source_labels": ["env"],
       "target_label": "env_upper"}]),
    ("uppercase-unicode", {"v": "\u00e4\u00f6\u00fc stra\u00dfe \u01c5 \u1f80 \u0149"},
     [{"action": "uppercase", "source_labels": ["v"], "target_label": "up"}]),
    ("lowercase-unicode", {"v": "\u00c4\u00d6\u00dc \u0130STANBUL \u03a3\u0391\u03a3 \u01c5 \u1f88 \u212a"},
     [{"action": "lowercase", "source_labels": ["v"], "target_label": "low"}]),
    ("lowercase-missing-deletes", {"low": "old"},
     [{"action": "lowercase", "source_labels": ["nosuch"],
       "target_label": "low"}]),
    ("uppercase-template-target-is-literal", {"a": "x"},
     [{"action": "uppercase", "source_labels": ["a"], "target_label": "${1}"}]),
    ("keepequal-template-target-is-literal", {"a": "x"},
     [{"action": "keepequal", "source_labels": ["nosuch"],
       "target_label": "x$a"}]),
    ("uppercase-joined", {"a": "x", "b": "y"},
     [{"action": "uppercase", "source_labels": ["a", "b"], "separator": "+",
       "target_label": "up"}]),
    ("lowercase-unicode-cyrillic-armenian",
     {"v": "\u041f\u0420\u0418\u0412\u0415\u0422 \u0531\u0532 \U00010400 \u24b6"},
     [{"action": "lowercase", "source_labels": ["v"], "target_label": "low"}]),
    ("uppercase-unicode-misc",
     {"v": "\u0131 \u017f \u03c2 \u1e9e \u00b5 \u0250 \U00010428 \u24d0 \u2c65"},
     [{"action": "uppercase", "source_labels": ["v"], "target_label": "up"}]),
]

# Invalid configurations: (name, relabel configs). Checked with promtool.
ERROR_CASES = [
    ("err-replace-no-target", [{"source_labels": ["a"]}]),
    ("err-replace-invalid-target", [{"source_labels": ["a"], "target_label": "1bad"}]),
    ("err-replace-invalid-target-template",
     [{"source_labels": ["a"], "target_label": "${1}-x"}]),
    ("err-replace-target-digit-template",
     [{"source_labels": ["a"], "target_label": "1${1}"}]),
    ("err-hashmod-no-modulus",
     [{"action": "hashmod", "source_labels": ["a"], "target_label": "t"}]),
    ("err-hashmod-no-target",
     [{"action": "hashmod", "source_labels": ["a"], "modulus": 3}]),
    ("err-hashmod-invalid-target",
     [{"action": "hashmod", "source_labels": ["a"], "modulus": 3,
       "target_label": "a-b"}]),
    ("err-labeldrop-source",
     [{"action": "labeldrop", "source_labels": ["a"], "regex": "x"}]),
    ("err-labelkeep-target",
     [{"action": "labelkeep", "regex": "x", "target_label": "t"}]),
    ("err-labeldrop-separator",
     [{"action": "labeldrop", "regex": "x", "separator": ","}]),
    ("err-keepequal-regex",
     [{"action": "keepequal", "source_labels": ["a"], "target_label": "b",
       "regex": "x"}]),
    ("err-dropequal-no-target",
     [{"action": "dropequal", "source_labels": ["a"]}]),
    ("err-lowercase-replacement",
     [{"action": "lowercase", "source_labels": ["a"], "target_label": "b",
       "replacement": "x"}]),
    ("err-uppercase-invalid-target",
     [{"action": "uppercase", "source_labels": ["a"], "target_label": "a-b"}]),
    ("err-keepequal-invalid-target",
     [{"action": "keepequal", "source_labels": ["a"], "target_label": "1x"}]),
    ("err-keepequal-separator",
     [{"action": "keepequal", "source_labels": ["a"], "target_label": "b",
       "separator": ","}]),
    ("err-labelkeep-replacement",
     [{"action": "labelkeep", "regex": "x", "replacement": "y"}]),
    ("err-labeldrop-modulus",
     [{"action": "labeldrop", "regex": "x", "modulus": 2}]),
    ("err-hashmod-zero-modulus",
     [{"action": "hashmod", "source_labels": ["a"], "target_label": "t",
       "modulus": 0}]),
    ("err-labelmap-replacement-leading-digit",
     [{"action": "labelmap", "regex": "(.*)", "replacement": "1$1"}]),
    ("err-empty-action", [{"action": "", "source_labels": ["a"]}]),
    ("err-labelmap-invalid-replacement",
     [{"action": "labelmap", "regex": "(.*)", "replacement": "a-$1"}]),
    ("err-unknown-action", [{"action": "frobnicate", "source_labels": ["a"]}]),
]

FIELDS = ["action", "source_labels", "separator", "regex", "modulus",
          "target_label", "replacement"]


def esc(s):
    return s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def rule_lines(rules):
    out = []
    for r in rules:
        out.append("rule")
        for k in FIELDS:
            if k not in r:
                continue
            v = r[k]
            if k == "source_labels":
                out.append("\t".join([k] + [esc(x) for x in v]))
            else:
                out.append("%s\t%s" % (k, esc(str(v))))
    return out


def yaml_job(job, rules, labels, addr):
    # JSON is a subset of the YAML Prometheus reads; ensure_ascii=False keeps
    # astral-plane characters out of \u surrogate pairs.
    job_cfg = {
        "job_name": job,
        "scrape_interval": "1h",
        "scrape_timeout": "10s",
        "static_configs": [{"targets": [addr], "labels": labels}],
        "relabel_configs": rules,
    }
    return "  - " + json.dumps(job_cfg, ensure_ascii=False) + "\n"


def get_json(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read().decode("utf-8"))


def write_case(path, header, labels_in, rules, tail):
    lines = ["# " + h for h in header]
    lines += ["in\t%s\t%s" % (esc(k), esc(v)) for k, v in sorted(labels_in.items())]
    lines += rule_lines(rules)
    lines += tail
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def run_prometheus(args, tmp):
    cfg = os.path.join(tmp, "prometheus.yml")
    with open(cfg, "w", encoding="utf-8") as f:
        f.write("global:\n  scrape_interval: 1h\nscrape_configs:\n")
        for i, c in enumerate(CASES):
            addr = c[3] if len(c) > 3 else ADDR
            f.write(yaml_job("c%03d" % (i + 1), c[2], c[1], addr))
    log = open(os.path.join(tmp, "prometheus.log"), "w")
    proc = subprocess.Popen(
        [args.prometheus, "--config.file=" + cfg,
         "--storage.tsdb.path=" + os.path.join(tmp, "data"),
         "--web.listen-address=127.0.0.1:%d" % args.port],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        url = "http://127.0.0.1:%d/api/v1/targets?state=any" % args.port
        deadline = time.time() + 90
        while True:
            if proc.poll() is not None:
                sys.exit("prometheus exited; see %s/prometheus.log" % tmp)
            try:
                d = get_json(url)["data"]
                seen = len(d["activeTargets"]) + len(d["droppedTargets"])
                if seen >= len(CASES):
                    return d
            except OSError:
                pass
            if time.time() > deadline:
                sys.exit("timed out waiting for %d targets" % len(CASES))
            time.sleep(1)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prometheus", default="/usr/bin/prometheus")
    ap.add_argument("--promtool", default="/usr/bin/promtool")
    ap.add_argument("--port", type=int, default=29090)
    args = ap.parse_args()

    version = subprocess.run([args.prometheus, "--version"], capture_output=True,
                             text=True).stdout.splitlines()[0]
    tmp = tempfile.mkdtemp(prefix="bongsu-relabel-")
    try:
        data = run_prometheus(args, tmp)
        by_job = {}
        for t in data["activeTargets"]:
            by_job[t["scrapePool"]] = ("active", t)
        for t in data["droppedTargets"]:
            # 2.42 lists no scrapePool for dropped targets; a dropped
            # target's discoveredLabels were never rewritten (see below).
            by_job[t["discoveredLabels"]["job"]] = ("dropped", t)

        for old in glob.glob(os.path.join(HERE, "*.case")):
            os.remove(old)
        for i, c in enumerate(CASES):
            job = "c%03d" % (i + 1)
            if job not in by_job:
                sys.exit("case %s (%s) missing from /api/v1/targets" % (job, c[0]))
            state, t = by_job[job]
            # The relabeling input is what scrape.PopulateLabels builds: the
            # target's labels plus job, interval, timeout, path and scheme
            # where absent. We compute it rather than trust the API, because
            # Prometheus 2.42's relabel.Process can rewrite its input slice
            # in place, so "discoveredLabels" sometimes shows a half-relabeled
            # set (e.g. labelkeep followed by replace).
            labels_in = {"__address__": c[3] if len(c) > 3 else ADDR,
                         "__metrics_path__": "/metrics", "__scheme__": "http",
                         "__scrape_interval__": "1h", "__scrape_timeout__": "10s",
                         "job": job}
            labels_in.update(c[1])
            header = ["generated by generate.py from " + version,
                      "job " + job + ": " + c[0]]
            if t["discoveredLabels"] != labels_in:
                header.append("note: the API showed discoveredLabels " +
                              json.dumps(t["discoveredLabels"], sort_keys=True,
                                         ensure_ascii=False) +
                              " (input rewritten in place by Prometheus 2.42)")
            if state == "active":
                tail = ["out\t%s\t%s" % (esc(k), esc(v))
                        for k, v in sorted(t["labels"].items())]
            else:
                tail = ["dropped"]
            write_case(os.path.join(HERE, "%03d-%s.case" % (i + 1, c[0])),
                       header, labels_in, c[2], tail)

        for j, (name, rules) in enumerate(ERROR_CASES):
            n = len(CASES) + j + 1
            cfg = os.path.join(tmp, "err.yml")
            with open(cfg, "w", encoding="utf-8") as f:
                f.write("scrape_configs:\n" + yaml_job("e", rules, {}, ADDR))
            r = subprocess.run([args.promtool, "check", "config", cfg],
                               capture_output=True, text=True)
            text = r.stdout + r.stderr
            marker = "parsing YAML file %s: " % cfg
            if r.returncode == 0 or marker not in text:
                sys.exit("promtool accepted or misreported %s:\n%s" % (name, text))
            msg = text.split(marker, 1)[1].splitlines()[0].strip()
            write_case(os.path.join(HERE, "%03d-%s.case" % (n, name)),
                       ["generated by generate.py from `promtool check config`, " + version,
                        name], {}, rules, ["error\t" + esc(msg)])
        print("wrote %d cases and %d error cases" % (len(CASES), len(ERROR_CASES)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
