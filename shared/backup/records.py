"""One backed-up document per NDJSON line, in Firestore's own JSON mapping of ``Document``.

That mapping is exact for every Firestore type — 64-bit integers as strings, ``"NaN"`` and
``"Infinity"`` doubles, RFC 3339 timestamps with nanoseconds, base64 bytes, geopoints, references,
nested maps and arrays, vectors — and readable by any tool that speaks the REST API. ``name`` is
kept relative to the database (``conversations/c1/messages/m1``) so a backup restores anywhere.
"""

from __future__ import annotations

import json
from typing import Any

from google.protobuf import json_format

FORMAT = "ngx-firestore-backup/1"


def encode(doc: Any, root: str) -> bytes:
    """The NDJSON line of a ``Document`` proto whose name starts with ``root``."""
    data = json_format.MessageToDict(doc)
    data["name"] = doc.name[len(root) :]
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def check_path(path: str) -> str:
    """A relative document path: collection/id pairs, no empty segment."""
    parts = path.split("/")
    if len(parts) < 2 or len(parts) % 2 or not all(parts):
        raise ValueError(f"not a document path: {path[:200]!r}")
    return path


def decode(line: bytes) -> tuple[str, Any]:
    """The relative path and the ``Document`` proto (fields only) of one line."""
    from google.cloud.firestore_v1.types import document

    try:
        data = json.loads(line)
        path = check_path(str(data["name"]))
        doc = document.Document.pb()()
        json_format.ParseDict({"fields": data.get("fields", {})}, doc)
    except (json_format.ParseError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise ValueError(f"not a backup record: {type(exc).__name__}") from None
    return path, doc


class Retarget:
    """Rewrites names and references from the source database to a restore target.

    A reference into the backed-up database is moved with the data (same prefix rules), so restored
    documents point at restored documents; references elsewhere are kept as they are.
    """

    def __init__(self, source_root: str, target_root: str, prefix: str = "") -> None:
        self.source_root = source_root
        self.target_root = target_root
        self.prefix = prefix
        self.identity = source_root == target_root and not prefix

    def name(self, path: str) -> str:
        return self.target_root + self.prefix + path

    def fields(self, doc: Any) -> None:
        """Move references in place (nothing to do when restoring where the data came from)."""
        if not self.identity:
            for value in doc.fields.values():
                self._value(value)

    def _value(self, value: Any) -> None:
        kind = value.WhichOneof("value_type")
        if kind == "reference_value" and value.reference_value.startswith(self.source_root):
            value.reference_value = self.name(value.reference_value[len(self.source_root) :])
        elif kind == "map_value":
            for inner in value.map_value.fields.values():
                self._value(inner)
        elif kind == "array_value":
            for inner in value.array_value.values:
                self._value(inner)
