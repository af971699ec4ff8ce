"""Scraping over TLS with client certificates and basic auth, end to end.

The test makes its own CA, server and client certificates with the openssl
command line tool, serves metrics from a Python HTTPS server that requires a
client certificate signed by that CA and checks the Authorization header,
and starts the binary under test with scrape configs using tls_config and
basic_auth (password inline and from password_file). What the server saw
(client certificate CN, user) comes back in the scraped series, so the test
checks both sides of the handshake.
"""

import base64
import http.server
import shutil
import ssl
import subprocess
import threading

import pytest

from conftest import wait_up

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None,
                                reason="the openssl command is not installed")

USER, PASSWORD = "scraper", "s3cret pass"


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def make_pki(d):
    """CA, a server certificate for 127.0.0.1/localhost, a client certificate."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=e2e test CA", "-keyout", "ca.key", "-out", "ca.crt", cwd=d)
    (d / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name in ("server", "client"):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN=e2e-{name}",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext",
                "-out", f"{name}.crt", cwd=d)


class _TLSHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        want = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if self.headers.get("Authorization") != want:
            self.send_response(401)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        cert = self.connection.getpeercert() or {}
        cn = dict(x[0] for x in cert.get("subject", ())).get("commonName", "")
        body = (f'# TYPE tls_scraped gauge\ntls_scraped{{client_cn="{cn}"}} 42\n').encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


class _TLSServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, d):
        super().__init__(("127.0.0.1", 0), _TLSHandler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(d / "server.crt", d / "server.key")
        ctx.load_verify_locations(d / "ca.crt")
        ctx.verify_mode = ssl.CERT_REQUIRED
        self.ctx = ctx

    def get_request(self):
        sock, addr = super().get_request()
        # Handshake in the handler thread, so a failed one (client without
        # a certificate) only costs that connection.
        return self.ctx.wrap_socket(sock, server_side=True,
                                    do_handshake_on_connect=False), addr

    def finish_request(self, request, client_address):
        try:
            request.do_handshake()
        except (ssl.SSLError, OSError):
            return
        super().finish_request(request, client_address)


@pytest.fixture
def tls_target(tmp_path):
    d = tmp_path / "pki"
    d.mkdir()
    make_pki(d)
    srv = _TLSServer(d)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield d, srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def test_tls_client_cert_and_basic_auth(bongsu_factory, tls_target):
    d, port = tls_target
    (d / "password").write_text(PASSWORD + "\n")
    target = f"127.0.0.1:{port}"
    config = f"""\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: tls_ok
    scheme: https
    tls_config: {{ca_file: {d}/ca.crt, cert_file: {d}/client.crt, key_file: {d}/client.key}}
    basic_auth: {{username: {USER}, password: "{PASSWORD}"}}
    static_configs: [{{targets: ['{target}']}}]
  - job_name: tls_password_file
    scheme: https
    tls_config: {{ca_file: {d}/ca.crt, cert_file: {d}/client.crt, key_file: {d}/client.key}}
    basic_auth: {{username: {USER}, password_file: {d}/password}}
    static_configs: [{{targets: ['{target}']}}]
  - job_name: tls_no_client_cert
    scheme: https
    tls_config: {{ca_file: {d}/ca.crt}}
    basic_auth: {{username: {USER}, password: "{PASSWORD}"}}
    static_configs: [{{targets: ['{target}']}}]
  - job_name: tls_wrong_password
    scheme: https
    tls_config: {{ca_file: {d}/ca.crt, cert_file: {d}/client.crt, key_file: {d}/client.key}}
    basic_auth: {{username: {USER}, password: nope}}
    static_configs: [{{targets: ['{target}']}}]
  - job_name: tls_unknown_ca
    scheme: https
    tls_config: {{cert_file: {d}/client.crt, key_file: {d}/client.key}}
    basic_auth: {{username: {USER}, password: "{PASSWORD}"}}
    static_configs: [{{targets: ['{target}']}}]
"""
    p = bongsu_factory(config)
    for job in ("tls_ok", "tls_password_file"):
        wait_up(p, job, target, timeout=15)
        res = p.query(f'tls_scraped{{job="{job}"}}')["result"]
        assert len(res) == 1, res
        assert res[0]["metric"]["client_cn"] == "e2e-client"
        assert res[0]["value"][1] == "42"

    def down_with_errors():
        out = {}
        for t in p.targets()["activeTargets"]:
            job = t["labels"]["job"]
            if job in ("tls_no_client_cert", "tls_wrong_password", "tls_unknown_ca"):
                if t["health"] != "down" or not t["lastError"]:
                    return None
                out[job] = t["lastError"]
        return out if len(out) == 3 else None

    errors = p.wait_for(down_with_errors, 15, "the three failing TLS targets to be down")
    assert "401" in errors["tls_wrong_password"], errors
    for job in ("tls_no_client_cert", "tls_wrong_password", "tls_unknown_ca"):
        res = p.query(f'up{{job="{job}"}}')["result"]
        assert res and res[0]["value"][1] == "0", (job, res)
        assert p.query(f'tls_scraped{{job="{job}"}}')["result"] == []
