"""Development identity: a local RSA signing key, its JWKS, and ID tokens minted with it.

Only the local stack and tests use this (``agentctl token --user alice``); deployed services verify
Firebase / Identity Platform tokens and never see this key.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from emulator.settings import StackSettings

KEY_FILE = "dev-signing-key.pem"
LOCAL_HOST = "127.0.0.1"


def ensure_key(directory: Path) -> Path:
    """The directory's signing key, created on first use (mode 0600)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / KEY_FILE
    if not path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path.touch(mode=0o600)
        path.write_bytes(pem)
    return path


def _private_key(path: Path) -> Any:
    return serialization.load_pem_private_key(path.read_bytes(), password=None)


def key_id(path: Path) -> str:
    """A stable kid derived from the public key."""
    public = _private_key(path).public_key()
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return uuid.uuid5(uuid.NAMESPACE_OID, der.hex()).hex[:16]


def jwks(path: Path) -> dict[str, Any]:
    """The public half as a JSON Web Key Set."""
    public = _private_key(path).public_key()
    jwk: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public))
    jwk |= {"kid": key_id(path), "alg": "RS256", "use": "sig"}
    return {"keys": [jwk]}


def mint(
    path: Path, *, user: str, issuer: str, audience: str, ttl_s: int = 3600, **claims: Any
) -> str:
    """An RS256 ID token for ``user``, shaped like a Firebase one."""
    now = int(time.time())
    payload = {
        "iss": issuer,
        "aud": audience,
        "sub": user,
        "user_id": user,
        "iat": now,
        "auth_time": now,
        "exp": now + ttl_s,
        **claims,
    }
    return jwt.encode(payload, _private_key(path), algorithm="RS256", headers={"kid": key_id(path)})


def issuer(settings: StackSettings) -> str:
    """The local identity provider's issuer URL (it serves the JWKS too)."""
    return f"http://{LOCAL_HOST}:{settings.stack_auth_port}"


def key_dir(settings: StackSettings) -> Path:
    return settings.stack_dir / "auth"


def local_token(settings: StackSettings, user: str, ttl_s: int = 3600, **claims: Any) -> str:
    """An ID token that the local stack's functions accept, for ``user``."""
    return mint(
        ensure_key(key_dir(settings)),
        user=user,
        issuer=issuer(settings),
        audience=settings.project_id,
        ttl_s=ttl_s,
        **claims,
    )


def scheduler_account(settings: StackSettings) -> str:
    """The local stand-in for Cloud Scheduler's service account."""
    return f"scheduler@{settings.project_id}.iam.gserviceaccount.com"


def push_account(settings: StackSettings) -> str:
    """The local stand-in for the Pub/Sub push subscription's identity (calls the worker)."""
    return f"pubsub-push@{settings.project_id}.iam.gserviceaccount.com"


def event_account(settings: StackSettings) -> str:
    """The local stand-in for the Eventarc trigger's service account (calls ingest)."""
    return f"eventarc@{settings.project_id}.iam.gserviceaccount.com"


def operator_account(settings: StackSettings) -> str:
    """The local stand-in for an operator's service account (may restore)."""
    return f"operator@{settings.project_id}.iam.gserviceaccount.com"


def invoker_token(settings: StackSettings, email: str, audience: str, ttl_s: int = 3600) -> str:
    """A Google-style OIDC ID token for a service account, as Cloud Scheduler sends one."""
    return mint(
        ensure_key(key_dir(settings)),
        user=email,
        issuer=issuer(settings),
        audience=audience,
        ttl_s=ttl_s,
        email=email,
        email_verified=True,
    )
