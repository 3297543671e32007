"""Transport security: HTTPS from `graft serve`, security headers, CORS only when configured."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from graft.cli import cli
from graft.config import load_settings
from graft.errors import ConfigError
from graft.server.headers import HSTS, SECURITY_HEADERS
from graft.testing import FakeModel

EXPECTED = {name.decode(): value.decode() for name, value in SECURITY_HEADERS}


def assert_security_headers(response: httpx.Response) -> None:
    for name, value in EXPECTED.items():
        assert response.headers.get(name) == value, name


def test_every_response_carries_the_security_headers(graft_factory, live_server) -> None:
    server = live_server(graft_factory(FakeModel("hi", "streamed")))
    body = {"model": "default", "messages": [{"role": "user", "content": "x"}]}
    responses = [
        httpx.post(f"{server.url}/v1/chat/completions", json=body),
        httpx.post(f"{server.url}/v1/chat/completions", json={**body, "stream": True}),
        httpx.get(f"{server.url}/healthz"),
        httpx.get(f"{server.url}/no/such/route"),
        httpx.post(f"{server.url}/v1/chat/completions", content=b"{not json"),
    ]
    assert [r.status_code for r in responses] == [200, 200, 200, 404, 400]
    for response in responses:
        assert_security_headers(response)
        # Plain HTTP: no HSTS (a browser would ignore it, and it would lie about the scheme).
        assert "strict-transport-security" not in response.headers


def test_cross_origin_calls_are_refused_unless_configured(graft_factory, live_server) -> None:
    preflight = {
        "origin": "https://evil.example",
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization,content-type",
    }
    closed = live_server(graft_factory(FakeModel()))
    answer = httpx.options(f"{closed.url}/v1/chat/completions", headers=preflight)
    assert "access-control-allow-origin" not in answer.headers
    listed = httpx.get(f"{closed.url}/v1/models", headers={"origin": "https://evil.example"})
    assert listed.status_code == 200
    assert "access-control-allow-origin" not in listed.headers

    opened = live_server(graft_factory(FakeModel(), cors_origins=["https://app.example.com/"]))
    allowed = httpx.options(
        f"{opened.url}/v1/chat/completions",
        headers={**preflight, "origin": "https://app.example.com"},
    )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    # Renaming a conversation (PATCH) and saving an assistant (PUT) work cross-origin too.
    methods = allowed.headers["access-control-allow-methods"]
    assert {"PUT", "PATCH", "DELETE"} <= {m.strip() for m in methods.split(",")}
    refused = httpx.options(f"{opened.url}/v1/chat/completions", headers=preflight)
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers
    assert_security_headers(refused)


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({"cors_origins": ["*"]}, "'*' is not accepted"),
        ({"cors_origins": ["app.example.com"]}, "not an origin"),
        ({"cors_origins": ["https://app.example.com/chat"]}, "no path"),
        ({"ssl_certfile": "cert.pem"}, "needs both ssl_certfile and ssl_keyfile"),
    ],
)
def test_transport_settings_are_checked(settings: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        load_settings(**settings)


def test_serve_refuses_missing_tls_files(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        ["serve", "--ssl-certfile", str(tmp_path / "no.pem"), "--ssl-keyfile", "key.pem"],
        env={"GRAFT_HOME": str(tmp_path)},
    )
    assert result.exit_code != 0
    assert "no.pem" in result.output and "does not exist" in result.output


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("the TLS test needs the openssl command (apt-get install openssl)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
        + ["-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    key.chmod(0o600)
    return cert, key


def test_graft_serve_speaks_https(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAFT_")}
    env.update(GRAFT_HOME=str(tmp_path), GRAFT_DATABASE_URL="memory://")
    graft = Path(sys.executable).with_name("graft")
    process = subprocess.Popen(
        [str(graft), "serve", "--port", str(port), "--no-access-log"]
        + ["--ssl-certfile", str(cert), "--ssl-keyfile", str(key)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"https://127.0.0.1:{port}"
    trusted = ssl.create_default_context(cafile=str(cert))
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stdout.read()  # type: ignore[union-attr]
            try:
                health = httpx.get(f"{url}/healthz", verify=trusted, timeout=2)
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline, "graft serve did not come up over HTTPS"
                time.sleep(0.2)
        assert health.status_code == 200
        assert health.headers["strict-transport-security"] == HSTS[1].decode()
        assert_security_headers(health)
        # The same port does not answer plain HTTP.
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).raise_for_status()
        # And a client that checks certificates refuses one it was not told to trust.
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/healthz", timeout=2)
    finally:
        process.terminate()
        output = process.communicate(timeout=20)[0]
    assert f"on {url}/v1" in output
