"""Pseudonyms of subjects: a keyed hash that names a user in logs and in the erasure ledger.

Stable for as long as ``NGX_SUBJECT_KEY`` (default: the project id) is; not reversible without
it. Rotating the key makes older log lines and ledger entries unmatchable, so it is set once.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

from shared.settings import Settings


@lru_cache(maxsize=4096)
def pseudonym(subject: str, key: bytes) -> str:
    """A keyed hash of a subject (remembered per subject: a user's requests hash it once)."""
    return "sub_" + hmac.new(key, subject.encode(), hashlib.sha256).hexdigest()[:20]


def of_subject(settings: Settings, subject: str) -> str:
    """The pseudonym of ``subject`` under the configured key."""
    key = settings.subject_key
    secret = key.get_secret_value() if key else settings.project_id
    return pseudonym(subject, secret.encode())
