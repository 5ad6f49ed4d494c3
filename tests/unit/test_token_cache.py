"""Verified tokens are remembered, but never past their expiry or a change of signing keys.

A real JWKS endpoint on 127.0.0.1 serves the keys; tokens are minted and checked with the real
RSA keys, and the count of full verifications is what the cache saves.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from emulator import devtokens
from shared import errors
from shared.auth import tokens
from shared.settings import load_settings

ISSUER = "https://issuer.example"
AUDIENCE = "ngx-test"


class JwksServer:
    """Serves whichever key set `keys` holds now."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # the http.server hook
                body = json.dumps({"keys": outer.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    served = JwksServer()
    thread = threading.Thread(target=served.server.serve_forever, daemon=True)
    thread.start()
    yield served
    served.server.shutdown()
    served.server.server_close()


@pytest.fixture
def full_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every token that goes through the full signature and claims check."""
    seen: list[str] = []
    real = tokens.decode

    async def counting(token: str, *args: Any) -> dict[str, Any]:
        seen.append(token)
        return await real(token, *args)

    monkeypatch.setattr(tokens, "decode", counting)
    return seen


def signing_key(directory: Path) -> Path:
    return devtokens.ensure_key(directory)


def served_key(server: JwksServer, directory: Path) -> Path:
    """A new signing key, the only one ``server`` publishes."""
    key = signing_key(directory)
    server.keys = devtokens.jwks(key)["keys"]
    return key


def mint(key: Path, user: str, ttl_s: int = 3600, **claims: Any) -> str:
    return devtokens.mint(key, user=user, issuer=ISSUER, audience=AUDIENCE, ttl_s=ttl_s, **claims)


def verifier(
    server: JwksServer, clock: Callable[[], float] = time.time, **overrides: Any
) -> tokens.TokenVerifier:
    settings = load_settings(
        environment="test",
        auth_issuer=ISSUER,
        auth_audience=AUDIENCE,
        auth_jwks_url=server.url,
        **overrides,
    )
    return tokens.TokenVerifier(settings, clock)


async def test_a_token_is_fully_verified_once(
    jwks_server: JwksServer, full_checks: list[str], tmp_path: Path
) -> None:
    key = served_key(jwks_server, tmp_path)
    check = verifier(jwks_server)
    token = mint(key, "alice")
    first = await check.verify(token)
    again = [await check.verify(token) for _ in range(5)]
    assert all(p.subject == first.subject == "user:alice" for p in again)
    assert full_checks == [token]
    with pytest.raises(errors.Unauthenticated):  # a changed signature is not the cached token
        await check.verify(token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"))


async def test_a_remembered_token_still_expires(
    jwks_server: JwksServer, full_checks: list[str], tmp_path: Path
) -> None:
    key = served_key(jwks_server, tmp_path)
    now = [time.time()]
    check = verifier(jwks_server, clock=lambda: now[0], auth_clock_skew_s=0)
    token = mint(key, "alice", ttl_s=60)
    claims = (await check.verify(token)).claims
    now[0] = float(str(claims["exp"])) - 1  # a second of life left: still remembered
    await check.verify(token)
    assert full_checks == [token]
    now[0] += 1  # at exp, no skew allowed: the remembered entry ends and the full check refuses
    with pytest.raises(errors.Unauthenticated, match="expired"):
        await check.verify(token)
    assert full_checks == [token, token]


async def test_a_withdrawn_key_stops_being_honoured(
    jwks_server: JwksServer,
    full_checks: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tokens, "MIN_REFRESH_S", 0.0)  # let each unknown kid refetch at once
    old, new = signing_key(tmp_path / "old"), signing_key(tmp_path / "new")
    jwks_server.keys = devtokens.jwks(old)["keys"]
    check = verifier(jwks_server)
    old_token = mint(old, "alice")
    await check.verify(old_token)
    jwks_server.keys = devtokens.jwks(new)["keys"]  # rotated: the old key is withdrawn
    await check.verify(mint(new, "bob"))  # an unknown kid makes the verifier refetch the keys
    with pytest.raises(errors.Unauthenticated, match="unknown key"):
        await check.verify(old_token)


async def test_the_cache_is_bounded(
    jwks_server: JwksServer, full_checks: list[str], tmp_path: Path
) -> None:
    key = served_key(jwks_server, tmp_path)
    check = verifier(jwks_server, auth_token_cache_size=2)
    a, b, c = (mint(key, user) for user in ("a", "b", "c"))
    for token in (a, b, a, c, a, b):  # c pushes out b, the least recently used
        await check.verify(token)
    assert full_checks == [a, b, c, b]


async def test_size_zero_turns_the_cache_off(
    jwks_server: JwksServer, full_checks: list[str], tmp_path: Path
) -> None:
    key = served_key(jwks_server, tmp_path)
    check = verifier(jwks_server, auth_token_cache_size=0)
    token = mint(key, "alice")
    await check.verify(token)
    await check.verify(token)
    assert full_checks == [token, token]


async def test_a_key_replaced_under_the_same_kid_stops_being_honoured(
    jwks_server: JwksServer,
    full_checks: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import jwt
    from cryptography.hazmat.primitives import serialization

    monkeypatch.setattr(tokens, "MIN_REFRESH_S", 0.0)
    old, new = signing_key(tmp_path / "old"), signing_key(tmp_path / "new")

    def keys_as(path: Path, kid: str) -> list[dict[str, Any]]:
        return [{**devtokens.jwks(path)["keys"][0], "kid": kid}]

    def token_as(path: Path, kid: str) -> str:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 600}
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})  # type: ignore[arg-type]

    jwks_server.keys = keys_as(old, "k1")
    check = verifier(jwks_server)
    old_token = token_as(old, "k1")
    await check.verify(old_token)
    jwks_server.keys = keys_as(new, "k1")  # the same kid now names another key
    with pytest.raises(errors.Unauthenticated, match="unknown key"):
        await check.verify(token_as(new, "zz"))  # an unknown kid: the key set is fetched again
    with pytest.raises(errors.Unauthenticated, match="not valid"):
        await check.verify(old_token)


@pytest.mark.parametrize("exp", [float("nan"), float("inf"), 1e300, True, "9999999999", 10**400])
async def test_an_expiry_that_is_not_a_whole_number_is_refused(
    jwks_server: JwksServer, tmp_path: Path, exp: object
) -> None:
    key = served_key(jwks_server, tmp_path)
    check = verifier(jwks_server)
    if exp == 10**400:  # a whole number, absurdly far: valid, and nothing overflows
        token = mint(key, "alice", exp=exp)
        assert (await check.verify(token)).subject == "user:alice"
        return
    with pytest.raises(errors.Unauthenticated, match="not valid"):
        await check.verify(mint(key, "alice", exp=exp))


async def test_a_tier_claim_becomes_the_callers_tier(
    jwks_server: JwksServer, tmp_path: Path
) -> None:
    key = served_key(jwks_server, tmp_path)
    check = verifier(jwks_server)
    assert (await check.verify(mint(key, "ivan", tier="premium"))).tier == "premium"
    assert (await check.verify(mint(key, "judy"))).tier is None
    assert (await check.verify(mint(key, "kim", tier=["premium"]))).tier is None  # not a name
