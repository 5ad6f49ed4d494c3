"""Outbound HTTP for tools, safe against server-side request forgery.

A connector names a URL; the model chooses its arguments, so a URL is untrusted input. Before any
connection the host must be on the tool's allow-list and every address it resolves to must be a
public one: private, loopback, link-local (the metadata server at 169.254.169.254), shared,
reserved and multicast addresses are refused, for IPv4 and IPv6 alike, including IPv4 addresses
carried inside IPv6 ones (mapped, 6to4, Teredo, NAT64). The connection then goes to the address
that was checked (never resolved again, so DNS rebinding cannot swap it), with the name kept in
``Host`` and in TLS SNI for certificate checks. Redirects are followed by hand, each hop checked
the same way. Exceptions for the local stack are ``host:port`` pairs, refused outside it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]
REDIRECTS = frozenset({301, 302, 303, 307, 308})
GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")  # every public IPv6 address is in it
SENSITIVE_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
MAX_POOLS = 64  # hosts with a connection pool of their own; beyond, a connection per request


class EgressRefused(Exception):
    """A request that was never sent: its URL, host or address is not one a tool may reach."""


@dataclass(frozen=True)
class Fetched:
    """A response: status, media type, the body up to the size cap, and whether it was cut."""

    status: int
    content_type: str
    body: bytes
    truncated: bool
    url: str


def refused_address(ip: IpAddress) -> str | None:
    """Why ``ip`` may not be reached (``None``: a public address). IPv6 must be global unicast
    (2000::/3), which leaves out every IPv4-compatible, -mapped, -translated and NAT64 form, and
    an IPv4 address carried in a 6to4 or Teredo one is judged itself."""
    if ip.is_multicast:
        return "multicast"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if isinstance(ip, ipaddress.IPv6Address):
        inner = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if inner is not None:
            return refused_address(inner)
        if ip not in GLOBAL_UNICAST_V6:
            return "non-global IPv6"
    if not ip.is_global:
        return "private"
    return None


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for ``host``."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def host_allowed(host: str, patterns: Iterable[str]) -> bool:
    """Whether ``host`` matches the allow-list (``*`` any host, ``*.example.com`` a domain)."""
    host = host.lower().rstrip(".")
    return any(fnmatchcase(host, pattern.lower()) for pattern in patterns)


class Egress:
    """Sends tool requests; one per process (it pools connections)."""

    def __init__(
        self,
        exempt: Iterable[str] = (),
        resolver: Resolver = system_resolver,
        max_redirects: int = 3,
    ) -> None:
        self._exempt = frozenset(exempt)
        self._resolve = resolver
        self._max_redirects = max_redirects
        self._pools: dict[str, httpx.AsyncClient] = {}

    def _http(self, host: str) -> tuple[httpx.AsyncClient, bool]:
        """The client for a host name, and whether it is a one-off to close after use.

        No environment proxies or .netrc (a proxy would resolve names itself) and no cookies
        (a jar would carry one user's session into another's call)."""
        client = self._pools.get(host)
        if client is not None:
            return client, False
        client = httpx.AsyncClient(trust_env=False, follow_redirects=False, cookies=_NoCookies())
        if len(self._pools) >= MAX_POOLS:
            return client, True
        self._pools[host] = client
        return client, False

    async def pin(
        self, url: str, allow_hosts: Iterable[str], ports: Iterable[int] = ()
    ) -> tuple[str, str, str]:
        """Check ``url`` and resolve its host: (URL with the checked address, host, port).
        ``ports``: the ports it may name (any, when empty)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise EgressRefused(f"scheme {parts.scheme or 'none'!r} is not http or https")
        if parts.username or parts.password:
            raise EgressRefused("URLs with credentials in them are refused")
        host = parts.hostname
        if not host:
            raise EgressRefused("the URL names no host")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise EgressRefused("the URL's port is not a number from 1 to 65535") from None
        if not host_allowed(host, allow_hosts):
            raise EgressRefused(f"host {host!r} is not on this tool's allow-list")
        try:
            literal: IpAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            addresses = [str(literal)]
        else:
            try:
                addresses = await self._resolve(host, port)
            except OSError as exc:
                raise EgressRefused(f"host {host!r} does not resolve ({exc})") from None
        if not addresses:
            raise EgressRefused(f"host {host!r} does not resolve")
        exempt = f"{host}:{port}" in self._exempt
        for address in addresses:
            why = refused_address(ipaddress.ip_address(address.split("%", 1)[0]))
            if why and not exempt:
                shown = f" ({address})" if literal is not None else ""  # no internal DNS leaks
                raise EgressRefused(f"host {host!r} resolves to a {why} address{shown}")
        allowed_ports = set(ports)
        if allowed_ports and port not in allowed_ports:
            raise EgressRefused(f"port {port} is not one this tool may reach")
        chosen = ipaddress.ip_address(addresses[0].split("%", 1)[0])
        netloc = f"[{chosen}]:{port}" if chosen.version == 6 else f"{chosen}:{port}"
        return urlunsplit(parts._replace(netloc=netloc)), host, str(port)

    async def fetch(
        self,
        method: str,
        url: str,
        *,
        allow_hosts: Iterable[str],
        headers: Mapping[str, str],
        json_body: Any | None = None,
        max_bytes: int,
        timeout_s: float,
        secret_headers: Iterable[str] = (),
    ) -> Fetched:
        """Send one request, following up to ``max_redirects`` checked redirects; a hop to another
        origin goes without ``secret_headers`` (the tool's credential) and cookies."""
        allow = tuple(allow_hosts)
        first = urlsplit(url)
        origin = (first.scheme, first.hostname, first.port)
        ports = {80, 443, first.port or (443 if first.scheme == "https" else 80)}
        secrets = {h.lower() for h in secret_headers} | SENSITIVE_HEADERS
        sent_headers = dict(headers)
        for _ in range(self._max_redirects + 1):
            pinned, host, port = await self.pin(url, allow, ports)
            scheme = urlsplit(url).scheme
            named = f"[{host}]" if ":" in host else host
            sent = {**sent_headers, "Host": named if port in ("80", "443") else f"{named}:{port}"}
            extensions = {"sni_hostname": host} if scheme == "https" else {}
            client, one_off = self._http(host)
            try:
                request = client.build_request(
                    method,
                    pinned,
                    headers=sent,
                    json=json_body,
                    timeout=timeout_s,
                    extensions=extensions,
                )
                response = await client.send(request, stream=True)
                try:
                    if response.status_code in REDIRECTS and "location" in response.headers:
                        target = urljoin(url, response.headers["location"])
                        hop = urlsplit(target)
                        if scheme == "https" and hop.scheme != "https":
                            raise EgressRefused("a redirect from https to http is refused")
                        if (hop.scheme, hop.hostname, hop.port) != origin:
                            sent_headers = {
                                k: v for k, v in sent_headers.items() if k.lower() not in secrets
                            }
                        url = target
                        if response.status_code == 303 or (
                            response.status_code in (301, 302) and method == "POST"
                        ):
                            method, json_body = "GET", None
                        continue
                    body, truncated = await _read_capped(response, max_bytes)
                    return Fetched(
                        status=response.status_code,
                        content_type=response.headers.get("content-type", ""),
                        body=body,
                        truncated=truncated,
                        url=url,
                    )
                finally:
                    await response.aclose()
            finally:
                if one_off:
                    await client.aclose()
        raise EgressRefused(f"more than {self._max_redirects} redirects")

    async def close(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for client in pools:
            await client.aclose()


class _NoCookies(CookieJar):
    """A cookie jar that keeps nothing."""

    def __init__(self) -> None:
        super().__init__(policy=DefaultCookiePolicy(allowed_domains=[]))


async def _read_capped(response: httpx.Response, max_bytes: int) -> tuple[bytes, bool]:
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body.extend(chunk)
        if len(body) > max_bytes:
            return bytes(body[:max_bytes]), True
    return bytes(body), False
