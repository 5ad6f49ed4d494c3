"""How the runtime authenticates to Memorystore and verifies it: IAM access tokens and TLS.

Memorystore's IAM authentication takes the caller's OAuth access token as the ``AUTH`` password.
`AccessTokenPassword` hands redis-py the service account's token for each new connection and
refreshes it a margin before it expires (a token lives about an hour; refreshing is an HTTP call,
made off the event loop). In-transit encryption is server-authenticated TLS: ``rediss://`` and the
instance's certificate authority (``NGX_REDIS_TLS_CA``, PEM), so the client rejects any server the
instance's CA did not sign.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import UTC
from typing import Any

from redis.credentials import CredentialProvider

from shared.settings import Settings

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
REFRESH_MARGIN_S = 300.0  # refresh when less than this is left


class AccessTokenPassword(CredentialProvider):
    """The service account's access token as the password of each new Redis connection."""

    def __init__(
        self,
        credentials: Any = None,
        clock: Callable[[], float] = time.time,
        margin_s: float = REFRESH_MARGIN_S,
    ) -> None:
        self._credentials = credentials  # google.auth credentials; default ones on first use
        self._clock = clock
        self._margin_s = margin_s
        self._lock = threading.Lock()
        self.refreshes = 0

    def _fresh(self) -> bool:
        creds = self._credentials
        if creds is None or not creds.token or creds.expiry is None:
            return False
        expiry: float = creds.expiry.replace(tzinfo=UTC).timestamp()  # google.auth: naive UTC
        return expiry - self._clock() > self._margin_s

    def _refresh(self) -> None:
        with self._lock:
            if self._fresh():
                return
            if self._credentials is None:
                import google.auth

                self._credentials, _ = google.auth.default(scopes=[SCOPE])
            from google.auth.transport.requests import Request

            self._credentials.refresh(Request())
            self.refreshes += 1

    def get_credentials(self) -> tuple[str]:
        if not self._fresh():
            self._refresh()
        return (str(self._credentials.token),)

    async def get_credentials_async(self) -> tuple[str]:
        if not self._fresh():
            await asyncio.to_thread(self._refresh)
        return (str(self._credentials.token),)


def connection_options(settings: Settings, credentials: Any = None) -> dict[str, Any]:
    """redis-py connection arguments for the configured authentication and TLS; ``credentials``:
    google.auth credentials to take tokens from (default: the process's default credentials)."""
    options: dict[str, Any] = {}
    if settings.redis_iam_auth:
        options["credential_provider"] = AccessTokenPassword(credentials)
    if settings.redis_url.startswith("rediss://"):
        options |= {
            "ssl_cert_reqs": "required",
            "ssl_ca_data": settings.redis_tls_ca,
            # Memorystore's server certificates name no host the client dials (a PSC address):
            # the chain to the instance's own CA is what proves the server.
            "ssl_check_hostname": False,
        }
    return options
