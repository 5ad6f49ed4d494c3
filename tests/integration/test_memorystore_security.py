"""Memorystore with IAM authentication and server-authenticated TLS, against a real redis-server
started with a password (the access token) and TLS, as a Memorystore instance with both is."""

from __future__ import annotations

import datetime as dt
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from emulator.settings import free_ports
from shared.errors import SettingsError
from shared.memorystore import Memorystore, StoreUnavailable
from shared.redis_auth import AccessTokenPassword
from shared.settings import load_settings
from tests.conftest import wait_for_port

TOKEN = "ya29.token-of-the-service-account"


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def make_ca(common: str) -> tuple[Any, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common))
        .issuer_name(_name(common))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def make_server_cert(ca_key: Any, ca: x509.Certificate) -> tuple[Any, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("memorystore-instance"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


@dataclass
class SecureRedis:
    port: int
    ca_pem: str
    process: subprocess.Popen[bytes]


@pytest.fixture
def secure_redis(tmp_path: Path) -> Iterator[SecureRedis]:
    ca_key, ca = make_ca("instance CA")
    key, cert = make_server_cert(ca_key, ca)
    (tmp_path / "ca.pem").write_bytes(_pem(ca))
    (tmp_path / "server.pem").write_bytes(_pem(cert))
    (tmp_path / "server.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    port = free_ports(1)[0]
    process = subprocess.Popen(
        [
            "redis-server",
            *("--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1"),
            *("--tls-cert-file", str(tmp_path / "server.pem")),
            *("--tls-key-file", str(tmp_path / "server.key")),
            *("--tls-ca-cert-file", str(tmp_path / "ca.pem")),
            *("--tls-auth-clients", "no", "--requirepass", TOKEN),
            *("--save", "", "--appendonly", "no", "--dir", str(tmp_path)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, process)
    yield SecureRedis(port, _pem(ca).decode(), process)
    process.terminate()
    process.wait(10)


@dataclass
class FakeCredentials:
    """google.auth credentials as the provider sees them: a token, its expiry, refresh()."""

    tokens: list[str]
    lifetime_s: float = 3600.0
    token: str | None = None
    expiry: dt.datetime | None = None
    refreshed: list[str] = field(default_factory=list)

    def refresh(self, request: Any) -> None:
        self.token = self.tokens[min(len(self.refreshed), len(self.tokens) - 1)]
        self.refreshed.append(self.token)
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        self.expiry = now + dt.timedelta(seconds=self.lifetime_s)


def store(redis: SecureRedis, credentials: Any, **overrides: Any) -> Memorystore:
    settings = load_settings(
        **{
            "environment": "test",
            "redis_url": f"rediss://127.0.0.1:{redis.port}/0",
            "redis_tls_ca": redis.ca_pem,
            "redis_iam_auth": True,
            "redis_timeout_s": 2.0,
            **overrides,
        }
    )
    return Memorystore(settings, credentials)


async def test_iam_token_and_verified_tls_reach_the_instance(secure_redis: SecureRedis) -> None:
    credentials = FakeCredentials([TOKEN])
    memorystore = store(secure_redis, credentials)
    try:
        await memorystore.run(lambda r: r.set("k", "v"))
        assert await memorystore.run(lambda r: r.get("k")) == b"v"
        assert credentials.refreshed == [TOKEN]  # one token for every connection while fresh
    finally:
        await memorystore.close()


async def test_a_token_near_its_expiry_is_refreshed_before_connecting(
    secure_redis: SecureRedis,
) -> None:
    # The first token is stale within the refresh margin: the next connection takes a new one.
    credentials = FakeCredentials(["stale-token", TOKEN], lifetime_s=60)
    provider = AccessTokenPassword(credentials)
    assert await provider.get_credentials_async() == ("stale-token",)
    credentials.lifetime_s = 3600
    assert await provider.get_credentials_async() == (TOKEN,)
    assert provider.refreshes == 2
    assert await provider.get_credentials_async() == (TOKEN,) and provider.refreshes == 2


@pytest.mark.parametrize(
    "case", ["wrong token", "another CA", "plain connection"], ids=lambda c: c.replace(" ", "-")
)
async def test_the_wrong_token_or_server_is_refused(secure_redis: SecureRedis, case: str) -> None:
    overrides: dict[str, Any] = {}
    credentials = FakeCredentials([TOKEN])
    if case == "wrong token":
        credentials = FakeCredentials(["someone-elses-token"])
    elif case == "another CA":
        overrides["redis_tls_ca"] = _pem(make_ca("impostor CA")[1]).decode()
    else:
        # Without TLS (and so without the token, which never travels in clear): refused.
        overrides |= {
            "redis_url": f"redis://:{TOKEN}@127.0.0.1:{secure_redis.port}/0",
            "redis_iam_auth": False,
        }
    memorystore = store(secure_redis, credentials, **overrides)
    try:
        with pytest.raises(StoreUnavailable):
            await memorystore.run(lambda r: r.ping())
    finally:
        await memorystore.close()


def test_a_tls_url_without_its_authority_is_a_settings_error() -> None:
    with pytest.raises(SettingsError, match="needs NGX_REDIS_TLS_CA"):
        load_settings(redis_url="rediss://10.0.0.3:6379/0")


def test_an_access_token_never_crosses_the_network_in_clear() -> None:
    with pytest.raises(SettingsError, match="needs a rediss:// NGX_REDIS_URL"):
        load_settings(redis_iam_auth=True, redis_url="redis://10.0.0.3:6379/0")
