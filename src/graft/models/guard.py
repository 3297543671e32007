"""The network guard (``graft.netguard``) for calls to model providers, which use aiohttp.

A provider's ``base_url`` is written by an admin, not by a user or a tool, but the name in it
still resolves at call time: a public name (``api.openai.com``) that suddenly resolves to
``10.0.0.5`` or ``169.254.169.254`` would carry the API key and every prompt into the
intranet. So model calls obey the same policy as plugins, with one allowance that follows
from who wrote the URL:

- a ``base_url`` whose host is an IP address or ``localhost`` (vLLM or Ollama on this machine
  or at a fixed address) is allowed as written: the admin named the address itself and no DNS
  answer stands between the setting and the connection. Unspecified (``0.0.0.0``) and
  multicast addresses stay refused: they name no single host;
- a host *name* must resolve to public addresses, unless the admin allows it (an intranet
  GPU server ``gpu.corp``) in ``providers.NAME.allow_hosts`` or ``network.allow_hosts``;
- the ``base_url``'s port is allowed, whatever ``network.allow_ports`` says;
- redirects are never followed (the provider sends ``allow_redirects=False``).

``GuardedResolver`` is the aiohttp resolver that does the check: aiohttp connects to the
addresses a resolver returns, so the answer that was checked is the one connected to (no
second lookup). aiohttp does not ask the resolver about IP literals, which is why
``provider_policy`` checks a literal host once, up front.

With a proxy from the environment (``HTTPS_PROXY``) the connection goes to the proxy, which
the admin chose and which resolves the provider's name itself: the proxy's host is allowed
like the ``base_url``'s, and the guard can check no more than the URL.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Final

import httpcore
import httpx
from aiohttp.abc import AbstractResolver, ResolveResult

from graft.netguard import (
    DEFAULT_PORTS,
    NetworkPolicy,
    Resolver,
    check_address,
    check_url,
    system_resolver,
)

__all__ = ["GuardedResolver", "provider_policy"]

_FAMILIES: Final = {4: socket.AF_INET, 6: socket.AF_INET6}


def _written_address(host: str) -> bool:
    """Whether ``host`` is an IP literal or ``localhost``: an address, not a name to look up."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def provider_policy(
    network: NetworkPolicy,
    url: str,
    *,
    allow_hosts: tuple[str, ...] | list[str] = (),
    setting: str = "network.allow_hosts",
    proxy: str | None = None,
) -> NetworkPolicy:
    """The policy for calls to ``url`` (a provider's endpoint), checked once here.

    Raises ``NetworkBlocked`` when the URL itself is refused (its scheme, user info, a literal
    address that names no single host); the addresses a name resolves to are checked by
    ``GuardedResolver`` at each new connection.
    """
    parsed = httpx.URL(url)
    host = parsed.raw_host.decode("ascii")
    port = parsed.port or DEFAULT_PORTS.get(parsed.scheme, 443)
    written = [host] if _written_address(host) else []
    policy = network.allowing(*allow_hosts, *written, ports=[port])
    if proxy is not None:
        proxied = httpx.URL(proxy)
        proxy_port = proxied.port or DEFAULT_PORTS.get(proxied.scheme, 443)
        policy = policy.allowing(proxied.raw_host.decode("ascii"), ports=[proxy_port])
    check_url(parsed, policy)
    if written and host.lower().rstrip(".") != "localhost":
        check_address(host, policy, host=host, setting=setting)
    return policy


class GuardedResolver(AbstractResolver):
    """An aiohttp resolver that checks every address a host resolves to against a policy.

    ``resolver`` is the one DNS lookup (``graft.netguard.system_resolver`` by default, a
    scripted one in tests); one refused answer refuses the call with ``NetworkBlocked``,
    which aiohttp passes through to the caller unchanged.
    """

    def __init__(
        self,
        policy: NetworkPolicy,
        *,
        resolver: Resolver | None = None,
        setting: str = "network.allow_hosts",
    ) -> None:
        self.policy = policy
        self._resolver = resolver or system_resolver
        self._setting = setting

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Resolve ``host``, check every answer, and return those of ``family``."""
        try:
            answers = await self._resolver(host, port)
        except httpcore.ConnectError as exc:  # aiohttp reports an OSError as a DNS failure
            raise OSError(str(exc)) from exc
        checked = [
            check_address(answer, self.policy, host=host, setting=self._setting)
            for answer in answers
        ]
        results: list[ResolveResult] = [
            {
                "hostname": host,
                "host": str(address),
                "port": port,
                "family": _FAMILIES[address.version],
                "proto": socket.IPPROTO_TCP,
                "flags": socket.AI_NUMERICHOST,
            }
            for address in checked
            if family in (socket.AF_UNSPEC, _FAMILIES[address.version])
        ]
        if not results:
            raise OSError(f"{host!r} has no address of the family asked for")
        return results

    async def close(self) -> None:
        """Nothing to release: each lookup is a call of its own."""
