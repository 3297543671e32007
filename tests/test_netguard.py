"""The network guard against real HTTP(S) servers on 127.0.0.1, with a scripted resolver."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import threading
from collections.abc import Iterable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpcore
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from graft.audit import tail
from graft.errors import NetworkBlocked, PermissionDenied
from graft.netguard import (
    GuardedTransport,
    NetworkPolicy,
    NetworkSettings,
    Resolver,
    audit_blocked,
    check_address,
    check_url,
    guarded_client,
    resolve,
)
from graft.testing import MemoryStore


class Server:
    """A threaded HTTP server on 127.0.0.1 that records each request's path, Host and SNI."""

    def __init__(self, redirects: dict[str, str], context: ssl.SSLContext | None = None) -> None:
        seen: list[tuple[str, str]] = []
        self.seen = seen
        self.sni: list[str | None] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append((self.path, self.headers["Host"]))
                target = redirects.get(self.path)
                self.send_response(302 if target else 200)
                if target:
                    self.send_header("Location", target.format(port=port))
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        port = self.port = self.httpd.server_address[1]
        if context is not None:
            context.sni_callback = lambda sock, name, ctx: self.sni.append(name)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        threading.Thread(target=self.httpd.serve_forever, args=(0.01,), daemon=True).start()


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server({"/hop-out": "http://127.0.0.1:{port}/secret", "/hop-in": "/ok"})
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


def scripted(*answers: Sequence[str]) -> tuple[Resolver, list[str]]:
    """A resolver that gives ``answers`` in turn and records each host it was asked for."""
    calls: list[str] = []
    queue = list(answers)

    async def resolver(host: str, port: int) -> Sequence[str]:
        calls.append(host)
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return resolver, calls


def policy(port: int, *allow: str) -> NetworkPolicy:
    return NetworkPolicy(ports={80, 443, port}, allow_hosts=allow)


# --- addresses and URLs ------------------------------------------------------------------------

BLOCKED = [
    ("127.0.0.1", "loopback"),
    ("::1", "loopback"),
    ("::ffff:127.0.0.1", "IPv4-mapped form of 127.0.0.1, which is loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("192.168.1.1", "private"),
    ("100.64.0.1", "CGNAT"),
    ("169.254.169.254", "link-local"),
    ("fe80::1", "link-local"),
    ("fd00::1", "unique-local"),
    ("fec0::1", "site-local"),
    ("64:ff9b::a00:1", "NAT64 form of 10.0.0.1, which is private"),
    ("64:ff9b:1::1", "local-use NAT64"),
    ("2002:a00:1::", "6to4 form of 10.0.0.1, which is private"),
    ("2002:7f00:1::1", "6to4 form of 127.0.0.1, which is loopback"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "unspecified"),
    ("::", "unspecified"),
    ("::7f00:1", "reserved"),
    ("224.0.0.1", "multicast"),
    ("ff02::1", "multicast"),
    ("255.255.255.255", "reserved"),
    ("240.0.0.1", "reserved"),
    ("192.0.2.1", "documentation"),
    ("2001:db8::1", "documentation"),
    ("198.18.0.1", "benchmarking"),
]


@pytest.mark.parametrize(("address", "rule"), BLOCKED)
def test_refused_ranges(address: str, rule: str) -> None:
    with pytest.raises(NetworkBlocked, match=rule) as caught:
        check_address(address, NetworkPolicy(), host="svc.example")
    assert caught.value.address == str(ipaddress.ip_address(address))
    assert caught.value.rule == "address"
    assert f"'svc.example' resolves to {ipaddress.ip_address(address)}" in caught.value.message


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "2606:4700::1111",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::",
    ],
)
def test_public_addresses_pass(address: str) -> None:
    assert check_address(address, NetworkPolicy()) == ipaddress.ip_address(address)


def test_allow_hosts_by_cidr_and_name_but_never_unspecified_or_multicast() -> None:
    allowed = NetworkPolicy(allow_hosts=["10.0.0.0/8", "wiki.corp", "*.lab.corp"])
    assert str(check_address("10.9.9.9", allowed)) == "10.9.9.9"
    assert str(check_address("192.168.0.5", allowed, host="WIKI.corp.")) == "192.168.0.5"
    assert str(check_address("127.0.0.1", allowed, host="a.lab.corp")) == "127.0.0.1"
    with pytest.raises(NetworkBlocked):
        check_address("127.0.0.1", allowed, host="lab.corp")
    with pytest.raises(NetworkBlocked):
        check_address("192.168.0.5", allowed, host="wiki.corp.evil.com")
    for never in ("0.0.0.0", "224.0.0.1", "::ffff:0.0.0.0"):
        with pytest.raises(NetworkBlocked, match="unspecified|multicast"):
            check_address(never, allowed, host="wiki.corp")
    assert allowed.allowing("db.corp").allows_host("db.corp")
    assert allowed.allowing("db.corp", ports=[5432]).ports == {80, 443, 5432}
    assert not allowed.allows_host("db.corp")


@pytest.mark.parametrize(
    ("url", "rule", "says"),
    [
        ("file:///etc/passwd", "scheme", "scheme 'file' is not allowed"),
        ("gopher://example.com/", "scheme", "scheme 'gopher'"),
        ("ftp://example.com/", "scheme", "scheme 'ftp'"),
        ("http://example.com:22/", "port", "port 22 of 'example.com' is not allowed"),
        ("https://example.com:8443/", "port", "port 8443"),
        ("http://example.com:0/", "port", "port 0 "),
        ("http://127.0.0.1@evil.com/", "userinfo", "'evil.com' carries user info"),
        ("http://evil.com\\@127.0.0.1/", "userinfo", "user info"),
        ("http://user:pw@example.com/", "userinfo", "user info"),
        ("http://0x7f000001/", "host", r"non-standard form \(127.0.0.1\)"),
        ("http://2130706433/", "host", r"non-standard form \(127.0.0.1\)"),
        ("http://127.1/", "host", r"non-standard form \(127.0.0.1\)"),
        ("http://0177.0.0.1/", "url", "not a valid URL"),
        ("http://ⓛocalhost/", "url", "not a valid URL"),
        ("http://a b/", "host", "not a valid host name"),
        ("http:///path", "host", "no host"),
    ],
)
def test_refused_urls(url: str, rule: str, says: str) -> None:
    with pytest.raises(NetworkBlocked, match=says) as caught:
        check_url(url, NetworkPolicy())
    assert caught.value.rule == rule
    assert caught.value.status == 403 and caught.value.code == "network_blocked"
    assert isinstance(caught.value, PermissionDenied)


def test_https_only_policy_and_the_parse_is_returned() -> None:
    with pytest.raises(NetworkBlocked, match="scheme 'http'"):
        check_url("http://example.com/", NetworkSettings(allow_http=False).policy())
    parsed = check_url("https://例え.jp/a?token=x", NetworkPolicy())
    assert parsed.raw_host == b"xn--r8jz45g.jp"


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("http://[::1]/", "::1"),
        ("http://127。0。0。1/", "127.0.0.1"),
        ("http://[::ffff:7f00:1]/", ""),
    ],
)
async def test_ip_literals_are_checked_without_a_lookup(url: str, address: str) -> None:
    resolver, calls = scripted(["8.8.8.8"])
    with pytest.raises(NetworkBlocked, match="loopback"):
        await resolve(url, NetworkPolicy(), resolver=resolver)
    assert calls == []


async def test_resolve_pins_and_refuses_mixed_answers() -> None:
    resolver, _ = scripted(["10.0.0.7", "10.0.0.8"])
    pinned = await resolve(
        "http://db.corp/x", NetworkPolicy(allow_hosts=["db.corp"]), resolver=resolver
    )
    assert (pinned.host, pinned.port, str(pinned.address)) == ("db.corp", 80, "10.0.0.7")
    mixed, _ = scripted(["8.8.8.8", "169.254.169.254"])
    with pytest.raises(NetworkBlocked, match="'evil.example' resolves to 169.254.169.254"):
        await resolve("https://evil.example/", NetworkPolicy(), resolver=mixed)


def test_settings_model() -> None:
    settings = NetworkSettings(
        allow_hosts=["wiki.corp", "*.lab.corp", "10.0.0.0/8", "[fd00::]/8"], allow_ports=[8080]
    )
    built = settings.policy()
    assert built.ports == {80, 443, 8080} and built.schemes == {"http", "https"}
    assert built.allows_host("x.lab.corp") and built.allows_address(ipaddress.ip_address("fd00::5"))
    for bad in ({"allow_hosts": ["not a host"]}, {"allow_ports": [0]}, {"proxy": "x"}):
        with pytest.raises(ValidationError):
            NetworkSettings.model_validate(bad)


# --- the client ----------------------------------------------------------------------------


async def test_loopback_is_blocked_by_default(server: Server) -> None:
    refused: list[NetworkBlocked] = []

    async def on_blocked(exc: NetworkBlocked) -> None:
        refused.append(exc)

    async with guarded_client(policy(server.port), on_blocked=on_blocked) as client:
        for host in ("127.0.0.1", "localhost"):
            with pytest.raises(NetworkBlocked, match="loopback"):
                await client.get(f"http://{host}:{server.port}/")
    assert server.seen == []
    assert [exc.host for exc in refused] == ["127.0.0.1", "localhost"]


@pytest.mark.parametrize("allowed", ["127.0.0.1", "localhost", "127.0.0.0/8"])
async def test_loopback_allowed_when_an_admin_allows_it(server: Server, allowed: str) -> None:
    host = "localhost" if allowed == "localhost" else "127.0.0.1"
    async with guarded_client(policy(server.port, allowed)) as client:
        response = await client.get(f"http://{host}:{server.port}/")
    assert response.text == "ok" and server.seen == [("/", f"{host}:{server.port}")]


class Recording(httpcore.AsyncNetworkBackend):
    """The real backend, which records where it is asked to connect; the "public" IP is us."""

    def __init__(self, public: str) -> None:
        self.public, self.hosts, self.real = public, list[str](), httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:  # noqa: ASYNC109
        self.hosts.append(host)
        return await self.real.connect_tcp(
            "127.0.0.1" if host == self.public else host, port, timeout
        )


async def test_connection_goes_to_the_checked_address_no_second_lookup(server: Server) -> None:
    # First answer public, every later one loopback: a second lookup would connect to (or be
    # refused at) 127.0.0.1 and the records below would show it.
    resolver, calls = scripted(["93.184.215.14"], ["127.0.0.1"])
    backend = Recording("93.184.215.14")
    transport = GuardedTransport(policy(server.port), resolver=resolver, backend=backend)
    assert isinstance(transport._pool, httpcore.AsyncConnectionPool)  # the one private name
    async with httpx.AsyncClient(transport=transport) as client:
        response = await client.get(f"http://rebind.test:{server.port}/")
        assert response.text == "ok"
        assert calls == ["rebind.test"] and backend.hosts == ["93.184.215.14"]
        assert server.seen == [("/", f"rebind.test:{server.port}")]
        # The server closed that connection: the next one resolves anew, and is checked anew.
        with pytest.raises(NetworkBlocked, match="'rebind.test' resolves to 127.0.0.1"):
            await client.get(f"http://rebind.test:{server.port}/again")
    assert calls == ["rebind.test", "rebind.test"] and backend.hosts == ["93.184.215.14"]


async def test_redirects_are_not_followed_by_default(server: Server) -> None:
    resolver, _ = scripted(["127.0.0.1"])
    async with guarded_client(policy(server.port, "intranet.test"), resolver=resolver) as client:
        response = await client.get(f"http://intranet.test:{server.port}/hop-out")
    assert response.status_code == 302 and [p for p, _ in server.seen] == ["/hop-out"]


async def test_each_redirect_hop_is_checked(server: Server) -> None:
    resolver, calls = scripted(["127.0.0.1"])
    allowed = policy(server.port, "intranet.test")
    async with guarded_client(allowed, resolver=resolver, follow_redirects=True) as client:
        ok = await client.get(f"http://intranet.test:{server.port}/hop-in")
        assert ok.text == "ok" and len(calls) == 2
        with pytest.raises(NetworkBlocked, match="127.0.0.1 is loopback") as caught:
            await client.get(f"http://intranet.test:{server.port}/hop-out")
    assert caught.value.host == "127.0.0.1"
    assert [p for p, _ in server.seen] == ["/hop-in", "/ok", "/hop-out"]  # never /secret


def test_the_client_takes_no_bypass() -> None:
    with pytest.raises(TypeError, match="proxy, transport"):
        guarded_client(NetworkPolicy(), transport=httpx.AsyncHTTPTransport(), proxy="http://p")


async def test_blocked_calls_are_audited() -> None:
    store = MemoryStore()
    on_blocked = audit_blocked(store, actor="u1", tenant="acme", service="translate")
    async with guarded_client(NetworkPolicy(), on_blocked=on_blocked) as client:
        with pytest.raises(NetworkBlocked):
            await client.get("http://169.254.169.254/latest/meta-data/?token=s3cret")
    [rec] = await tail(store)
    assert (rec.action, rec.actor, rec.tenant, rec.target, rec.outcome) == (
        "network.blocked",
        "u1",
        "acme",
        "169.254.169.254",
        "denied",
    )
    assert '"rule":"address"' in rec.details and '"service":"translate"' in rec.details
    assert "s3cret" not in rec.details and "meta-data" not in rec.details


# --- TLS: connect to the checked IP, verify the certificate for the host name --------------------


def certificate(tmp_path: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for ``name``: the server's context and a client trusting it."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (tmp_path / "cert.pem").write_bytes(pem)
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    served = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    served.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    return served, ssl.create_default_context(cadata=pem.decode())


@pytest.mark.parametrize("cert_name", ["secure.test", "other.test"])
async def test_tls_uses_the_host_name_for_sni_and_verification(
    tmp_path: Path, cert_name: str
) -> None:
    served, trusted = certificate(tmp_path, cert_name)
    srv = Server({}, served)
    try:
        resolver, _ = scripted(["127.0.0.1"])
        allowed = policy(srv.port, "secure.test")
        async with guarded_client(allowed, resolver=resolver, verify=trusted) as client:
            if cert_name == "secure.test":
                response = await client.get(f"https://secure.test:{srv.port}/")
                assert response.text == "ok" and srv.seen == [("/", f"secure.test:{srv.port}")]
            else:
                with pytest.raises(httpx.ConnectError, match="certificate|hostname"):
                    await client.get(f"https://secure.test:{srv.port}/")
        assert srv.sni[:1] == ["secure.test"]
    finally:
        srv.httpd.shutdown()
        srv.httpd.server_close()
