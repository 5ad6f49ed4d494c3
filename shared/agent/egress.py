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
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]
REDIRECTS = frozenset({301, 302, 303, 307, 308})
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


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
    """Why ``ip`` may not be reached (``None``: a public address)."""
    if ip.is_multicast:
        return "multicast"
    if not ip.is_global:
        return "loopback" if ip.is_loopback else "link-local" if ip.is_link_local else "private"
    if isinstance(ip, ipaddress.IPv6Address):
        inner = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if inner is None and any(ip in net for net in _NAT64):
            inner = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if inner is not None:
            return refused_address(inner)
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
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            # No environment proxies or .netrc: a proxy would resolve names itself.
            self._client = httpx.AsyncClient(trust_env=False, follow_redirects=False)
        return self._client

    async def pin(self, url: str, allow_hosts: Iterable[str]) -> tuple[str, str, str]:
        """Check ``url`` and resolve its host: (URL with the checked address, host, port)."""
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
                raise EgressRefused(f"host {host!r} resolves to a {why} address ({address})")
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
    ) -> Fetched:
        """Send one request, following up to ``max_redirects`` checked redirects."""
        allow = tuple(allow_hosts)
        for _ in range(self._max_redirects + 1):
            pinned, host, port = await self.pin(url, allow)
            named = f"[{host}]" if ":" in host else host
            sent = {**headers, "Host": named if port in ("80", "443") else f"{named}:{port}"}
            extensions = {"sni_hostname": host} if url.startswith("https:") else {}
            request = self._http().build_request(
                method,
                pinned,
                headers=sent,
                json=json_body,
                timeout=timeout_s,
                extensions=extensions,
            )
            response = await self._http().send(request, stream=True)
            try:
                if response.status_code in REDIRECTS and "location" in response.headers:
                    url = urljoin(url, response.headers["location"])
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
        raise EgressRefused(f"more than {self._max_redirects} redirects")

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


async def _read_capped(response: httpx.Response, max_bytes: int) -> tuple[bytes, bool]:
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body.extend(chunk)
        if len(body) > max_bytes:
            return bytes(body[:max_bytes]), True
    return bytes(body), False
