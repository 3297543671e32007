"""The network guard: every outbound call graft makes for a model or a plugin goes through it.

A tool, a webhook or a URL to ingest hands graft an address chosen by someone else; without
a guard that is server-side request forgery: the cloud metadata service at 169.254.169.254,
an admin port on localhost, a database on the intranet. This module owns the rules and the
one HTTP client that obeys them:

- **The URL**, parsed once, by httpx (the parse the connection uses: no second parser can
  read it otherwise): scheme and port on allowlists; no user info (``http://a@b/`` hides the
  real host from readers); the host a DNS name or a canonical IP literal, never an IPv4
  address in a form only the resolver reads (``0x7f000001``, ``2130706433``, ``127.1``).
- **Every address the host resolves to** (one bad answer refuses the call) against the table
  ``_REFUSED`` below, IPv4 inside IPv6 (mapped, NAT64, 6to4) by its IPv4 address, and
  whatever else ``ipaddress`` does not call global.
- **Pinning.** ``GuardedBackend`` is an httpcore network backend: httpcore hands it the host
  of each new connection, it resolves that host (the only DNS lookup of the call), checks
  every answer and connects to a checked IP. A DNS answer that changes between check and
  connect (rebinding) cannot matter: there is no second lookup. httpcore still starts TLS
  with the URL's host name as SNI and checks the certificate against it, and the ``Host``
  header comes from the URL, so virtual hosts and certificates work as without the guard.
- **Redirects** are not followed by default. A client made with ``follow_redirects=True``
  sends every hop through the same transport, so each hop is checked like the first.
- ``NetworkPolicy.allow_hosts``: host names (``wiki.corp``, ``*.corp``) or addresses and
  CIDRs (``10.1.0.0/16``) an admin allows even though they are private: intranet services.
  Unspecified and multicast addresses stay refused: they name no single host.

A refusal raises ``graft.errors.NetworkBlocked`` naming the host, the address and the rule.
The guard needs no store: the client calls ``on_blocked`` before raising, and
``audit_blocked(store, actor=...)`` makes the callback that records ``network.blocked``::

    client = guarded_client(policy, on_blocked=audit_blocked(store, actor=ctx.principal.user_id))
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Final

import anyio
import httpcore
import httpx
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from graft.audit import AuditEvent, record
from graft.errors import ConfigError, NetworkBlocked

if TYPE_CHECKING:
    from graft.store.base import Store

__all__ = [
    "AllowHosts",
    "GuardedBackend",
    "GuardedTransport",
    "NetworkPolicy",
    "NetworkSettings",
    "OnBlocked",
    "Pinned",
    "Resolver",
    "audit_blocked",
    "blocked_event",
    "check_address",
    "check_url",
    "guarded_client",
    "resolve",
    "system_resolver",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""``(host, port) -> addresses``: the one DNS lookup of a connection."""
OnBlocked = Callable[[NetworkBlocked], Awaitable[None]]

DEFAULT_PORTS: Final = {"http": 80, "https": 443}

_REFUSED: Final[tuple[tuple[IPNetwork, str], ...]] = tuple(
    (ipaddress.ip_network(cidr), name)
    for cidr, name in (
        ("0.0.0.0/8", "unspecified ('this network')"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "CGNAT shared address space"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local (cloud metadata lives here)"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "IETF protocol assignments"),
        ("192.0.2.0/24", "documentation"),
        ("192.88.99.0/24", "6to4 relay anycast"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("64:ff9b:1::/48", "local-use NAT64"),
        ("::/8", "reserved (IPv4-compatible and other legacy forms)"),
        ("100::/64", "discard-only"),
        ("2001::/32", "Teredo"),
        ("2001:db8::/32", "documentation"),
        ("fc00::/7", "unique-local"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local"),
        ("ff00::/8", "multicast"),
    )
)
_MAPPED = ipaddress.ip_network("::ffff:0:0/96")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_HOST_NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?")


def _embedded(address: IPAddress) -> tuple[ipaddress.IPv4Address, str] | None:
    """The IPv4 address an IPv6 address carries, and how: mapped, NAT64 or 6to4."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address in _MAPPED:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF), "IPv4-mapped"
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF), "NAT64"
    if address.sixtofour is not None:
        return address.sixtofour, "6to4"
    return None


def _refusal(address: IPAddress) -> str | None:
    """Why ``address`` is refused (``"loopback (127.0.0.0/8)"``), or ``None`` if it is public."""
    embedded = _embedded(address)
    if embedded is not None:
        v4, how = embedded
        inner = _refusal(v4)
        return None if inner is None else f"{how} form of {v4}, which is {inner}"
    for network, name in _REFUSED:
        if address.version == network.version and address in network:
            return f"{name} ({network})"
    return None if address.is_global else "not globally routable"


def _names_no_host(address: IPAddress) -> bool:
    """Unspecified or multicast, also inside an IPv6 form: refused even when allowed."""
    embedded = _embedded(address)
    target = embedded[0] if embedded else address
    zero = isinstance(target, ipaddress.IPv4Address) and target.packed[0] == 0
    return zero or target.is_unspecified or target.is_multicast


def _allow_entry(entry: str) -> str | IPNetwork:
    """An ``allow_hosts`` entry as a network or a normalised (IDNA, lower case) host name."""
    text = entry.strip()
    try:
        return ipaddress.ip_network(text.replace("[", "").replace("]", ""), strict=False)
    except ValueError:
        pass
    wildcard = text.startswith("*.")
    try:
        name = httpx.URL(f"http://{text[2:] if wildcard else text}/").raw_host.decode("ascii")
    except httpx.InvalidURL:
        name = ""
    if not _HOST_NAME.fullmatch(name):
        raise ConfigError(f"allow_hosts entry {entry!r} is neither a host name nor a CIDR")
    return ("*." if wildcard else "") + name.rstrip(".")


@dataclass(frozen=True, slots=True)
class NetworkPolicy:
    """What outbound calls may reach. Per service: ``policy.allowing("wiki.corp")``."""

    schemes: Collection[str] = frozenset({"http", "https"})
    ports: Collection[int] = frozenset({80, 443})
    allow_hosts: Collection[str] = ()
    """Host names (``*.corp`` for subdomains) or addresses/CIDRs allowed even if private."""
    _names: frozenset[str] = field(init=False, repr=False, compare=False)
    _networks: tuple[IPNetwork, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        entries = [_allow_entry(entry) for entry in self.allow_hosts]
        object.__setattr__(self, "schemes", frozenset(s.lower() for s in self.schemes))
        object.__setattr__(self, "ports", frozenset(self.ports))
        object.__setattr__(self, "allow_hosts", tuple(self.allow_hosts))
        object.__setattr__(self, "_names", frozenset(e for e in entries if isinstance(e, str)))
        object.__setattr__(self, "_networks", tuple(e for e in entries if not isinstance(e, str)))

    def allowing(self, *hosts: str, ports: Iterable[int] = ()) -> NetworkPolicy:
        """A copy with more ``allow_hosts`` and ``ports``: a service's own intranet hosts."""
        return NetworkPolicy(self.schemes, {*self.ports, *ports}, (*self.allow_hosts, *hosts))

    def allows_host(self, host: str) -> bool:
        """Whether an admin allowed the host name ``host`` (IDNA, as httpx encodes it)."""
        name = host.lower().rstrip(".")
        return name in self._names or any(
            entry.startswith("*.") and name.endswith(entry[1:]) for entry in self._names
        )

    def allows_address(self, address: IPAddress) -> bool:
        """Whether ``address`` lies in a CIDR of ``allow_hosts``."""
        return any(address.version == n.version and address in n for n in self._networks)


def _checked_allow_hosts(value: list[str]) -> list[str]:
    """Refuse (as a settings error) an entry that is neither a host name nor a CIDR."""
    for entry in value:
        try:
            _allow_entry(entry)
        except ConfigError as exc:
            raise ValueError(exc.message) from None
    return value


AllowHosts = Annotated[list[str], AfterValidator(_checked_allow_hosts)]
"""An ``allow_hosts`` setting: host names (``*.corp``) or CIDRs, checked as the settings load."""


class NetworkSettings(BaseModel):
    """``[network]`` in the settings: the policy of every outbound call."""

    model_config = ConfigDict(extra="forbid")

    allow_hosts: AllowHosts = Field(
        default_factory=list,
        description="Host names (`*.corp` for subdomains) or CIDRs that outbound calls may "
        "reach although they are private, loopback or link-local: intranet services.",
    )
    allow_ports: list[Annotated[int, Field(ge=1, le=65535)]] = Field(
        default_factory=list, description="Ports allowed besides 80 and 443."
    )
    allow_http: bool = Field(default=True, description="Allow plain `http://` besides https.")

    def policy(self) -> NetworkPolicy:
        """The policy these settings describe."""
        schemes = {"https", "http"} if self.allow_http else {"https"}
        return NetworkPolicy(schemes, {80, 443, *self.allow_ports}, self.allow_hosts)


# --- checks -----------------------------------------------------------------------------------


def _blocked(why: str, rule: str, host: str = "", **facts: Any) -> NetworkBlocked:
    return NetworkBlocked(f"blocked by the network policy: {why}", rule=rule, host=host, **facts)


def _literal(host: str) -> IPAddress | None:
    """``host`` as an IP address if it is one; refuses names that are not valid host names."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        numeric = socket.inet_aton(host)
    except OSError:
        numeric = None
    if numeric is not None:  # the resolver would read it as this address
        why = (
            f"host {host!r} is an IPv4 address in a non-standard form "
            f"({ipaddress.IPv4Address(numeric)}); write it as a dotted quad"
        )
        raise _blocked(why, "host", host)
    if not _HOST_NAME.fullmatch(host):
        raise _blocked(f"host {host!r} is not a valid host name", "host", host)
    return None


def check_url(url: str | httpx.URL, policy: NetworkPolicy) -> httpx.URL:
    """Parse ``url`` (once) and check its scheme, user info, host and port; return the parse."""
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise _blocked(f"not a valid URL ({exc})", "url") from None
    scheme, host = parsed.scheme, parsed.raw_host.decode("ascii")
    if scheme not in policy.schemes:
        allowed = ", ".join(sorted(policy.schemes))
        raise _blocked(f"scheme {scheme!r} is not allowed (allowed: {allowed})", "scheme", host)
    if parsed.userinfo:
        raise _blocked(f"the URL for {host!r} carries user info ('…@')", "userinfo", host)
    if not host:
        raise _blocked("the URL has no host", "host")
    _literal(host)
    port = DEFAULT_PORTS.get(scheme) if parsed.port is None else parsed.port
    _check_port(host, port, policy)
    return parsed


def _check_port(host: str, port: int | None, policy: NetworkPolicy) -> None:
    if port not in policy.ports:
        allowed = ", ".join(map(str, sorted(policy.ports)))
        why = f"port {port} of {host!r} is not allowed (allowed: {allowed})"
        raise _blocked(why, "port", host, port=port)


def check_address(
    address: str | IPAddress,
    policy: NetworkPolicy,
    *,
    host: str = "",
    setting: str = "network.allow_hosts",
) -> IPAddress:
    """Refuse ``address`` (which ``host`` resolved to) unless it is public or allowed.

    ``setting`` is where the refusal tells the admin to allow an intranet host.
    """
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    reason = _refusal(ip)
    if reason is None:
        return ip
    allowed = policy.allows_address(ip) or (host != "" and policy.allows_host(host))
    if allowed and not _names_no_host(ip):
        return ip
    name = f"{host!r} resolves to {ip}, which" if host and host != str(ip) else str(ip)
    hint = "" if allowed else f"; an admin can allow an intranet host in {setting}"
    raise _blocked(f"{name} is {reason}{hint}", "address", host or str(ip), address=str(ip))


async def system_resolver(host: str, port: int) -> list[str]:
    """The system's resolver (``getaddrinfo`` in a worker thread), addresses in its order."""
    try:
        infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise httpcore.ConnectError(f"cannot resolve {host!r}: {exc}") from exc
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def _resolve_checked(
    host: str, port: int, policy: NetworkPolicy, resolver: Resolver
) -> list[IPAddress]:
    _check_port(host, port, policy)
    literal = _literal(host)
    answers = [str(literal)] if literal is not None else await resolver(host, port)
    if not answers:
        raise httpcore.ConnectError(f"{host!r} resolves to no address")
    return [check_address(answer, policy, host=host) for answer in answers]


@dataclass(frozen=True, slots=True)
class Pinned:
    """A checked URL and the checked addresses to connect to, in order."""

    url: httpx.URL
    host: str
    port: int
    addresses: tuple[IPAddress, ...]

    @property
    def address(self) -> IPAddress:
        """The first address: connect to this one, not to ``host``."""
        return self.addresses[0]


async def resolve(
    url: str | httpx.URL, policy: NetworkPolicy, *, resolver: Resolver | None = None
) -> Pinned:
    """Check ``url``, resolve its host once and check every address.

    For clients other than httpx (a database driver, a socket): connect to
    ``pinned.address``, never to the host name, or the check proves nothing. HTTP calls use
    ``guarded_client``, which does this for every connection it opens.
    """
    parsed = check_url(url, policy)
    host = parsed.raw_host.decode("ascii")
    port = DEFAULT_PORTS[parsed.scheme] if parsed.port is None else parsed.port
    addresses = await _resolve_checked(host, port, policy, resolver or system_resolver)
    return Pinned(parsed, host, port, tuple(addresses))


# --- httpx integration --------------------------------------------------------------------------


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore backend that resolves, checks, and connects to the checked address."""

    def __init__(
        self,
        policy: NetworkPolicy,
        *,
        resolver: Resolver | None = None,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self.policy = policy
        self._resolver = resolver or system_resolver
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Connect to the first checked address of ``host`` that answers."""
        with anyio.move_on_after(timeout) as scope:
            addresses = await _resolve_checked(host, port, self.policy, self._resolver)
        if scope.cancelled_caught:
            raise httpcore.ConnectTimeout(f"resolving {host!r} took over {timeout} s")
        error: httpcore.ConnectError | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except httpcore.ConnectError as exc:
                error = exc
        assert error is not None
        raise error

    async def sleep(self, seconds: float) -> None:
        """Sleep as the inner backend does."""
        await self._inner.sleep(seconds)


_LIMITS: Final = httpx.Limits(max_connections=100, max_keepalive_connections=20)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport, with the URL checked per request and a ``GuardedBackend``.

    httpx 0.28 takes no network backend, so the connection pool it builds is replaced by an
    identical one that has the guarded backend (``_pool`` is the one private name used; a
    test fails if httpx renames it). No proxy: a proxy would resolve the host itself.
    """

    def __init__(
        self,
        policy: NetworkPolicy,
        *,
        on_blocked: OnBlocked | None = None,
        resolver: Resolver | None = None,
        backend: httpcore.AsyncNetworkBackend | None = None,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits = _LIMITS,
    ) -> None:
        context = (
            verify
            if isinstance(verify, ssl.SSLContext)
            else httpx.create_ssl_context(verify, trust_env=False)
        )
        super().__init__(verify=context, limits=limits, trust_env=False)
        self.policy = policy
        self._on_blocked = on_blocked
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(policy, resolver=resolver, inner=backend),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Check the URL, then send; a refusal goes to ``on_blocked`` before it is raised."""
        try:
            check_url(request.url, self.policy)
            return await super().handle_async_request(request)
        except NetworkBlocked as exc:
            if self._on_blocked is not None:
                await self._on_blocked(exc)
            raise


_NOT_OPTIONS: Final = frozenset({"transport", "mounts", "proxy", "trust_env", "app"})


def guarded_client(
    policy: NetworkPolicy,
    *,
    on_blocked: OnBlocked | None = None,
    resolver: Resolver | None = None,
    follow_redirects: bool = False,
    timeout: float | httpx.Timeout = 10.0,
    verify: ssl.SSLContext | bool = True,
    **options: Any,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` whose every request and redirect hop obeys ``policy``.

    ``options`` go to ``httpx.AsyncClient`` (``headers``, ``base_url``, ...); those that
    would bypass the guard (``transport``, ``mounts``, ``proxy``, ``trust_env``) are refused.
    """
    bypass = _NOT_OPTIONS.intersection(options)
    if bypass:
        raise TypeError(f"guarded_client takes no {', '.join(sorted(bypass))}")
    transport = GuardedTransport(policy, on_blocked=on_blocked, resolver=resolver, verify=verify)
    return httpx.AsyncClient(
        transport=transport,
        trust_env=False,
        follow_redirects=follow_redirects,
        timeout=timeout,
        **options,
    )


# --- audit -----------------------------------------------------------------------------------


def blocked_event(
    exc: NetworkBlocked, *, actor: str, tenant: str = "", service: str = ""
) -> AuditEvent:
    """The ``network.blocked`` audit event for a refusal (the target is the host)."""
    details = {"rule": exc.rule, "address": exc.address, "port": exc.port, "reason": exc.message}
    if service:
        details["service"] = service
    return AuditEvent("network.blocked", actor, tenant, exc.host, "denied", details)


def audit_blocked(store: Store, *, actor: str, tenant: str = "", service: str = "") -> OnBlocked:
    """An ``on_blocked`` callback that records each refusal in ``store``'s audit log."""

    async def on_blocked(exc: NetworkBlocked) -> None:
        await record(store, blocked_event(exc, actor=actor, tenant=tenant, service=service))

    return on_blocked
