"""SSRF: http tools aimed at the metadata server, loopback, private networks (IPv4 and IPv6), names
resolving to them, or redirected to them are refused before any connection, and the model is told.
Listeners on every reachable target prove that nothing connected."""

from __future__ import annotations

import asyncio
import socket
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from shared.agent import config
from shared.agent.egress import Egress, EgressRefused, refused_address
from shared.agent.runner import ToolRunner
from shared.agent.tools import ToolContext
from shared.errors import SettingsError
from tests.conftest import LocalStack, start_function


class Listener:
    """A TCP listener that only counts the connections it accepts."""

    def __init__(self, family: int, host: str) -> None:
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


class Recorder:
    """An HTTP server answering each path as told, recording each request's headers."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, dict[str, str]]] = {}
        self.seen: list[tuple[str, dict[str, str]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                status, headers = outer.routes.get(self.path, (200, {}))
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listeners() -> Iterator[tuple[Listener, Listener]]:
    v4, v6 = Listener(socket.AF_INET, "127.0.0.1"), Listener(socket.AF_INET6, "::1")
    yield v4, v6
    v4.close()
    v6.close()


@pytest.fixture
def redirector() -> Iterator[Recorder]:
    """The "public-looking" host: it redirects every request to its ``target``."""
    server = Recorder()
    yield server
    server.close()


async def fake_resolver(host: str, port: int) -> list[str]:
    """``internal.example`` resolves to a private address; others through the system."""
    if host == "internal.example":
        return ["10.1.2.3"]
    if host == "sneaky.example":
        return ["93.184.216.34", "192.168.1.7"]  # one public, one private: refused
    from shared.agent.egress import system_resolver

    return await system_resolver(host, port)


def tools_toml(urls: dict[str, str]) -> str:
    parts = []
    for name, url in urls.items():
        parts.append(
            textwrap.dedent(
                f"""
                [tools.{name}]
                kind = "http"
                description = "Fetch {name}."
                url = "{url}"
                allow_hosts = ["*"]
                timeout_s = 2
                """
            )
        )
    return "\n".join(parts)


def targets(v4: int, v6: int, redirect: int) -> dict[str, str]:
    return {
        "metadata": "http://169.254.169.254/computeMetadata/v1/",
        "metadata_name": "http://metadata.google.internal/computeMetadata/v1/",
        "loopback": f"http://127.0.0.1:{v4}/",
        "loopback_v6": f"http://[::1]:{v6}/",
        "mapped_v6": f"http://[::ffff:127.0.0.1]:{v4}/",
        "unspecified": f"http://0.0.0.0:{v4}/",
        "decimal": f"http://2130706433:{v4}/",
        "private": "http://10.0.0.1/",
        "localhost": f"http://localhost:{v4}/",
        "internal_name": "http://internal.example/",
        "mixed_name": "http://sneaky.example/",
        "redirected": f"http://127.0.0.1:{redirect}/start",
    }


async def run_all(
    tmp_path: Path, v4: int, v6: int, redirect: int, redirect_to: str, r: Recorder
) -> dict[str, Any]:
    path = tmp_path / "tools.toml"
    urls = targets(v4, v6, redirect)
    path.write_text(tools_toml(urls))
    # Literal private addresses are refused when the file is read (tested below); here they are
    # let through the file check so that the egress, under test, meets them at call time.
    literal = [f"{u.hostname}:{u.port or 80}" for u in map(urlsplit, urls.values())]
    egress = Egress(exempt=[f"127.0.0.1:{redirect}"], resolver=fake_resolver)
    registry = config.build(config.read(str(path), exempt=literal), egress, None, 2.0)
    runner = ToolRunner(None, 2000)
    r.routes["/start"] = (302, {"Location": redirect_to})
    context = ToolContext(subject="user:alice")
    try:
        outcomes = await asyncio.gather(
            *(runner.call(tool, {}, context) for tool in registry.tools.values())
        )
    finally:
        await egress.close()
    return dict(zip(registry.tools, outcomes, strict=True))


@pytest.mark.parametrize(
    "redirect_to",
    ["http://127.0.0.1:{v4}/", "http://[::1]:{v6}/", "http://169.254.169.254/latest/"],
)
def test_every_private_target_is_refused_and_never_connected(
    tmp_path: Path,
    listeners: tuple[Listener, Listener],
    redirector: Recorder,
    redirect_to: str,
) -> None:
    v4, v6 = listeners
    target = redirect_to.format(v4=v4.port, v6=v6.port)
    outcomes = asyncio.run(run_all(tmp_path, v4.port, v6.port, redirector.port, target, redirector))
    for name, outcome in outcomes.items():
        assert outcome.status == "refused", (name, outcome)
        error = outcome.response["error"]
        assert error["code"] == "refused"
        assert any(
            word in error["message"]
            for word in ("loopback", "private", "link-local", "does not resolve")
        ), (name, error)
    assert "link-local" in outcomes["metadata"].response["error"]["message"]
    for name in ("internal_name", "mixed_name"):  # refused, without telling what they resolve to
        message = outcomes[name].response["error"]["message"]
        assert "private" in message and "10.1.2.3" not in message and "192.168" not in message
    assert len(redirector.seen) == 1  # the exempt "public" host was reached; its redirect was not
    assert v4.accepted == 0 and v6.accepted == 0


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/computeMetadata/v1/",
        "http://127.0.0.1:8080/",
        "http://[::1]/",
        "http://10.0.0.1/",
        "http://[::ffff:10.0.0.1]/",
    ],
)
def test_a_tools_file_naming_a_private_address_stops_the_start(tmp_path: Path, url: str) -> None:
    path = tmp_path / "tools.toml"
    path.write_text(tools_toml({"inside": url}))
    with pytest.raises(SettingsError, match="address"):
        config.read(str(path))


def test_the_allow_list_and_schemes_are_enforced(tmp_path: Path) -> None:
    async def pin(url: str, hosts: list[str]) -> str:
        try:
            await Egress(resolver=fake_resolver).pin(url, hosts)
        except Exception as exc:
            return str(exc)
        return "allowed"

    async def main() -> None:
        assert "allow-list" in await pin("http://evil.example/", ["api.example.com"])
        assert "allow-list" in await pin(
            "http://api.example.com.evil.example/", ["api.example.com"]
        )
        assert "scheme" in await pin("file:///etc/passwd", ["*"])
        assert "scheme" in await pin("gopher://x/", ["*"])
        assert "credentials" in await pin("http://u:p@api.example.com/", ["*"])
        assert "port" in await pin("http://api.example.com:99999/", ["*"])

    asyncio.run(main())


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.0.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "::",
        "fe80::1",
        "fd00:ec2::254",
        "::ffff:10.0.0.1",
        "64:ff9b::a00:1",
        "2002:a00:1::1",
        "2001:0:4136:e378:8000:63bf:f5ff:fffe",  # Teredo: the client address 10.0.0.1
        "::127.0.0.1",  # IPv4-compatible
        "::a9fe:a9fe",  # IPv4-compatible metadata address
        "::ffff:0:7f00:1",  # IPv4-translated
        "fec0::1",  # site-local
        "100::1",  # discard-only
    ],
)
def test_non_public_addresses_are_named(address: str) -> None:
    import ipaddress

    assert refused_address(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2001:4860:4860::8888"])
def test_public_addresses_pass(address: str) -> None:
    import ipaddress

    assert refused_address(ipaddress.ip_address(address)) is None


async def names_to_loopback(host: str, port: int) -> list[str]:
    return ["127.0.0.1"]


def test_no_cookie_crosses_from_one_call_to_another() -> None:
    server = Recorder()
    server.routes["/login"] = (200, {"Set-Cookie": "session=USER_A; Path=/"})
    exempt = [f"a.test:{server.port}", f"b.test:{server.port}"]

    async def main() -> None:
        egress = Egress(exempt=exempt, resolver=names_to_loopback)
        try:
            for url in (f"http://a.test:{server.port}/login", f"http://b.test:{server.port}/x"):
                await egress.fetch(
                    "GET", url, allow_hosts=["*.test"], headers={}, max_bytes=100, timeout_s=5
                )
        finally:
            await egress.close()

    try:
        asyncio.run(main())
    finally:
        server.close()
    assert all("cookie" not in headers for _, headers in server.seen)


def test_a_redirect_to_another_host_loses_the_credential() -> None:
    server = Recorder()
    server.routes["/start"] = (302, {"Location": f"http://b.test:{server.port}/landing"})
    exempt = [f"a.test:{server.port}", f"b.test:{server.port}"]

    async def main() -> None:
        egress = Egress(exempt=exempt, resolver=names_to_loopback)
        try:
            await egress.fetch(
                "GET",
                f"http://a.test:{server.port}/start",
                allow_hosts=["*.test"],
                headers={"X-Api-Token": "SECRET", "Accept": "application/json"},
                secret_headers=["X-Api-Token"],
                max_bytes=100,
                timeout_s=5,
            )
        finally:
            await egress.close()

    try:
        asyncio.run(main())
    finally:
        server.close()
    (first, sent), (second, forwarded) = server.seen
    assert first == "/start" and sent["x-api-token"] == "SECRET"
    assert second == "/landing" and "x-api-token" not in forwarded
    assert forwarded["accept"] == "application/json" and forwarded["host"].startswith("b.test")


def test_a_redirect_to_another_port_is_refused(listeners: tuple[Listener, Listener]) -> None:
    v4, _ = listeners
    server = Recorder()
    server.routes["/start"] = (302, {"Location": f"http://a.test:{v4.port}/admin"})
    exempt = [f"a.test:{server.port}", f"a.test:{v4.port}"]  # reachable, were it not the port

    async def main() -> str:
        egress = Egress(exempt=exempt, resolver=names_to_loopback)
        try:
            await egress.fetch(
                "GET",
                f"http://a.test:{server.port}/start",
                allow_hosts=["a.test"],
                headers={},
                max_bytes=100,
                timeout_s=5,
            )
        except EgressRefused as exc:
            return str(exc)
        finally:
            await egress.close()
        return "fetched"

    try:
        refused = asyncio.run(main())
    finally:
        server.close()
    assert f"port {v4.port}" in refused
    assert v4.accepted == 0


def test_the_model_is_told_why_a_tool_was_refused(
    stack: LocalStack, tmp_path: Path, listeners: tuple[Listener, Listener]
) -> None:
    import httpx

    v4, _ = listeners
    path = tmp_path / "tools.toml"
    path.write_text(tools_toml({"internal_status": f"http://localhost:{v4.port}/status"}))
    url, process = start_function(stack.settings, "chat", NGX_TOOLS_FILE=str(path))
    try:
        response = httpx.post(
            f"{url}/v1/chat",
            json={"message": "tool:internal_status"},
            headers=stack.auth(),
            timeout=30,
        )
    finally:
        process.kill()
    assert response.status_code == 200, response.text
    body = response.json()
    [call] = body["tool_calls"]
    assert call["status"] == "refused"
    assert "loopback" in call["summary"]
    assert "loopback" in body["text"]  # the model's answer quotes the error it was given
    assert v4.accepted == 0
