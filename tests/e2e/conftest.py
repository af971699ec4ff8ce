"""End-to-end test fixtures for bongsu.

The binary under test is taken from $BONGSU_BIN (default:
<repo>/build/release/bongsu).  bongsu is a drop-in Prometheus replacement, so
the whole suite can be (and is) validated against a real Prometheus:

    BONGSU_BIN=/usr/bin/prometheus /usr/bin/python3 -m pytest tests/e2e

Tests that depend on bongsu-only behaviour use the `bongsu_only` marker and are
skipped (with a reason) when `$BONGSU_BIN --version` does not mention bongsu.
"""

import http.server
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SHARED = REPO.parent / "shared"
ANCHORS_SH = SHARED / "tools" / "anchors.sh"

READY_TIMEOUT = 30.0

# Ports reserved for the anchor systems (see shared/tools/anchors.sh).
_RESERVED = [(18086, 18428), (19090, 19295), (9623, 9624), (9700, 9999)]


# --------------------------------------------------------------------------
# binary under test


def _binary_path():
    env = os.environ.get("BONGSU_BIN")
    if env:
        # Processes run in their own work directories: make a relative
        # BONGSU_BIN (build/x/bongsu) absolute against where pytest started.
        return Path(env).absolute(), True
    return REPO / "build" / "release" / "bongsu", False


_version_cache = {}


def binary_version_text(binary):
    key = str(binary)
    if key not in _version_cache:
        p = subprocess.run([key, "--version"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=20)
        _version_cache[key] = p.stdout.decode("utf-8", "replace")
    return _version_cache[key]


@pytest.fixture(scope="session")
def bongsu_bin():
    path, explicit = _binary_path()
    if not path.exists():
        if explicit:
            pytest.fail(f"BONGSU_BIN={path} does not exist")
        pytest.skip(f"binary under test not built: {path} is missing "
                    f"(run `make` or set BONGSU_BIN)")
    if not os.access(path, os.X_OK):
        pytest.fail(f"binary under test {path} is not executable")
    return path


@pytest.fixture(scope="session")
def is_bongsu(bongsu_bin):
    """True when the binary under test identifies itself as bongsu."""
    return "bongsu" in binary_version_text(bongsu_bin).lower()



@pytest.fixture(autouse=True)
def _bongsu_only_gate(request):
    if request.node.get_closest_marker("bongsu_only") is None:
        return
    binary = request.getfixturevalue("bongsu_bin")
    if not request.getfixturevalue("is_bongsu"):
        pytest.skip(f"bongsu-specific behaviour; {binary} --version does "
                    f"not mention bongsu")


# --------------------------------------------------------------------------
# paths / ports


@pytest.fixture(scope="session")
def repo_path():
    return REPO


@pytest.fixture(scope="session")
def shared_path():
    return SHARED


def _reserved(port):
    return any(lo <= port <= hi for lo, hi in _RESERVED)


def get_free_port():
    """A currently free TCP port on 127.0.0.1 (outside the anchor ranges)."""
    for _ in range(50):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        finally:
            s.close()
        if not _reserved(port):
            return port
    raise RuntimeError("could not find a free non-reserved port")


@pytest.fixture
def free_port():
    return get_free_port()


# --------------------------------------------------------------------------
# process helper

_all_processes = []


def _tail(path, n=40):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return f"<cannot read {path}: {e}>"
    lines = data.decode("utf-8", "replace").splitlines()
    return "\n".join(lines[-n:])


class BongsuError(AssertionError):
    pass


class BongsuProcess:
    """One instance of the binary under test.

    `config` is YAML text; the placeholder {port} (and any extra `fmt` keys)
    are substituted with str.format-like replacement of "{port}" only, so
    YAML braces stay untouched.  The process listens on 127.0.0.1:port and
    stores data in <workdir>/data.
    """

    def __init__(self, binary, workdir, config=None, port=None,
                 extra_args=(), config_name="bongsu.yml"):
        self.binary = Path(binary)
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or get_free_port()
        self.data_dir = self.workdir / "data"
        self.extra_args = list(extra_args)
        self.config_path = None
        if config is not None:
            self.config_path = self.workdir / config_name
            self.config_path.write_text(config.replace("{port}", str(self.port)))
        self.proc = None
        self.starts = 0
        self.stderr_path = None
        self.ended_at = None
        self.session = requests.Session()
        _all_processes.append(self)

    # ---- lifecycle -------------------------------------------------------
    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def args(self):
        a = [str(self.binary)]
        if self.config_path is not None:
            a.append(f"--config.file={self.config_path}")
        a += [f"--storage.tsdb.path={self.data_dir}",
              f"--web.listen-address=127.0.0.1:{self.port}"]
        return a + self.extra_args

    def start(self, wait_ready=True, timeout=READY_TIMEOUT):
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.starts += 1
        self.stderr_path = self.workdir / f"stderr.{self.starts}.log"
        self.ended_at = None
        with open(self.stderr_path, "wb") as err, \
                open(self.workdir / f"stdout.{self.starts}.log", "wb") as out:
            self.proc = subprocess.Popen(self.args(), cwd=self.workdir,
                                         stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=err)
        if wait_ready:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=READY_TIMEOUT):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                self.ended_at = time.time()
                raise BongsuError(
                    f"{self.binary} exited with code {rc} before becoming ready\n"
                    f"args: {self.args()}\n--- stderr tail ---\n{self.stderr_tail()}")
            try:
                r = self.session.get(self.url + "/-/ready", timeout=2)
                if r.status_code == 200:
                    return
                last = f"HTTP {r.status_code}"
            except requests.RequestException as e:
                last = repr(e)
            time.sleep(0.1)
        raise BongsuError(
            f"{self.binary} not ready within {timeout}s (last: {last})\n"
            f"--- stderr tail ---\n{self.stderr_tail()}")

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_exit(self, timeout):
        """Wait for the process to exit by itself; returns the exit code or
        None on timeout (the process is left running)."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self.ended_at = time.time()
        return rc

    def kill9(self):
        if self.running():
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)
            self.ended_at = time.time()

    def stop(self, timeout=15):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
            self.ended_at = time.time()
        return self.proc.returncode

    def restart(self, wait_ready=True, timeout=READY_TIMEOUT):
        self.stop()
        return self.start(wait_ready=wait_ready, timeout=timeout)

    def stderr_text(self):
        try:
            return self.stderr_path.read_text("utf-8", "replace")
        except (OSError, AttributeError):
            return ""

    def stderr_tail(self, n=40):
        if self.stderr_path is None:
            return "<not started>"
        return _tail(self.stderr_path, n)

    # ---- HTTP API ---------------------------------------------------------
    def get(self, path, **kw):
        kw.setdefault("timeout", 10)
        return self.session.get(self.url + path, **kw)

    def post(self, path, **kw):
        kw.setdefault("timeout", 10)
        return self.session.post(self.url + path, **kw)

    def api(self, path, params=None, method="GET"):
        """Call /api/v1/<path>; assert success and return the `data` field."""
        if method == "GET":
            r = self.get("/api/v1/" + path, params=params)
        else:
            r = self.post("/api/v1/" + path, data=params)
        assert r.status_code == 200, \
            f"{method} /api/v1/{path} {params} -> {r.status_code}: {r.text[:500]}"
        body = r.json()
        assert body.get("status") == "success", body
        return body["data"]

    def query(self, q, time=None, method="GET"):
        params = {"query": q}
        if time is not None:
            params["time"] = _fmt_ts(time)
        return self.api("query", params, method)

    def query_range(self, q, start, end, step, method="GET"):
        params = {"query": q, "start": _fmt_ts(start), "end": _fmt_ts(end),
                  "step": str(step)}
        return self.api("query_range", params, method)

    def targets(self):
        return self.api("targets")

    def wait_for(self, predicate, timeout, what, interval=0.25):
        """Poll predicate() until it returns a truthy value; return it."""
        deadline = time.monotonic() + timeout
        last_exc = None
        while time.monotonic() < deadline:
            try:
                v = predicate()
                if v:
                    return v
            except (requests.RequestException, AssertionError, KeyError,
                    ValueError, IndexError) as e:
                last_exc = e
            time.sleep(interval)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}"
                             + (f" (last error: {last_exc!r})" if last_exc else ""))


def _fmt_ts(t):
    if isinstance(t, (int, float)):
        return f"{t:.3f}"
    return str(t)


@pytest.fixture
def bongsu_factory(bongsu_bin, tmp_path):
    """Factory: bongsu_factory(config_yaml, extra_args=(), start=True)."""
    procs = []

    def make(config=None, extra_args=(), start=True, name=None, **kw):
        wd = tmp_path / (name or f"bongsu{len(procs)}")
        p = BongsuProcess(bongsu_bin, wd, config, extra_args=extra_args, **kw)
        procs.append(p)
        if start:
            p.start()
        return p

    yield make
    for p in procs:
        p.stop()


@pytest.fixture(scope="module")
def module_bongsu_factory(bongsu_bin, tmp_path_factory):
    procs = []

    def make(config=None, extra_args=(), start=True, name=None, **kw):
        wd = tmp_path_factory.mktemp(name or "bongsu")
        p = BongsuProcess(bongsu_bin, wd, config, extra_args=extra_args, **kw)
        procs.append(p)
        if start:
            p.start()
        return p

    yield make
    for p in procs:
        p.stop()


SELF_SCRAPE_CONFIG = """\
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: self
    scrape_interval: 1s
    static_configs:
      - targets: ['127.0.0.1:{port}']
"""


def wait_up(proc, job, instance, timeout=10.0):
    """Wait until up{job,instance} == 1; return the sample."""
    def check():
        res = proc.query(f'up{{job="{job}",instance="{instance}"}}')["result"]
        return res[0] if res and res[0]["value"][1] == "1" else None
    return proc.wait_for(check, timeout, f'up{{job="{job}",instance="{instance}"}} == 1')


@pytest.fixture(scope="module")
def self_scraping(module_bongsu_factory):
    """A module-scoped instance scraping itself every 1s as job "self",
    already verified to have up == 1."""
    p = module_bongsu_factory(SELF_SCRAPE_CONFIG, name="selfscrape")
    wait_up(p, "self", p.address, timeout=10)
    return p


# --------------------------------------------------------------------------
# tiny HTTP scrape targets served from a thread


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        status, ctype, body = self.server.responder(self.path)
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


class HttpTarget:
    def __init__(self, responder):
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.responder = responder
        self.port = self.server.server_address[1]
        self.address = f"127.0.0.1:{self.port}"
        self.hits = 0
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def http_target_factory():
    """http_target_factory(responder) -> HttpTarget.  responder(path) returns
    (status, content_type, body)."""
    made = []

    def make(responder):
        t = HttpTarget(responder)
        made.append(t)
        return t

    yield make
    for t in made:
        t.close()


@pytest.fixture(scope="module")
def module_http_target_factory():
    made = []

    def make(responder):
        t = HttpTarget(responder)
        made.append(t)
        return t

    yield make
    for t in made:
        t.close()


# --------------------------------------------------------------------------
# anchors


def _http_ok(url):
    try:
        return requests.get(url, timeout=3).status_code == 200
    except requests.RequestException:
        return False


def ensure_anchor(name, probe_url):
    """Start anchor NAME via anchors.sh unless it already answers probe_url.
    Anchors are left running."""
    if _http_ok(probe_url):
        return
    if not ANCHORS_SH.exists():
        pytest.skip(f"anchor {name} not running and {ANCHORS_SH} missing")
    p = subprocess.run(["bash", str(ANCHORS_SH), "start", name],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=120)
    out = p.stdout.decode("utf-8", "replace")
    if p.returncode != 0 and "not installed" in out.lower():
        pytest.skip(f"anchor {name} cannot be started (not installed): {out}")
    assert p.returncode == 0, f"anchors.sh start {name} failed:\n{out}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if _http_ok(probe_url):
            return
        time.sleep(0.5)
    raise AssertionError(f"anchor {name} not answering {probe_url}:\n{out}")


@pytest.fixture(scope="session")
def anchor_node_exporter():
    ensure_anchor("node_exporter", "http://127.0.0.1:19100/metrics")
    return "127.0.0.1:19100"


def wait_anchor_scrapes(prom, job, instance, timeout=60):
    """Wait until the anchor Prometheus at PROM has scraped JOB/INSTANCE at
    least once and found it up.  A Prometheus that was just started answers
    /-/ready before its scrape manager has applied the target groups (it
    does that on a 5 s tick), so an empty target list right after start is
    normal, not a misconfiguration."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = requests.get(prom + "/api/v1/targets", timeout=10).json()
            for t in last["data"]["activeTargets"]:
                if t["labels"].get("job") == job and \
                        t["labels"].get("instance") == instance and \
                        t.get("health") == "up":
                    return
        except (requests.RequestException, ValueError, KeyError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"anchor Prometheus {prom} has not scraped job={job} "
                         f"instance={instance} within {timeout}s: {last}")


@pytest.fixture(scope="session")
def anchor_prometheus():
    ensure_anchor("prometheus", "http://127.0.0.1:19090/-/ready")
    return "http://127.0.0.1:19090"


# --------------------------------------------------------------------------
# on failure, attach the stderr tails of the processes involved


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    started = time.time() - (call.duration or 0) - 1
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed:
        return
    for p in _all_processes:
        if p.stderr_path is None:
            continue
        if p.running() or (p.ended_at and p.ended_at >= started):
            rep.sections.append(
                (f"stderr tail of {p.binary.name} on :{p.port} ({p.stderr_path})",
                 p.stderr_tail(40)))
