"""One backed-up document per NDJSON line, in Firestore's own JSON mapping of ``Document``.

That mapping is exact for every Firestore type — 64-bit integers as strings, ``"NaN"`` and
``"Infinity"`` doubles, RFC 3339 timestamps with nanoseconds, base64 bytes, geopoints, references,
nested maps and arrays, vectors — and readable by any tool that speaks the REST API. ``name`` is
kept relative to the database (``conversations/c1/messages/m1``) so a backup restores anywhere.
"""

from __future__ import annotations

import base64
import binascii
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
    if not isinstance(path, str):
        raise TypeError("name")
    parts = path.split("/")
    if len(parts) < 2 or len(parts) % 2 or not all(parts):
        raise ValueError(f"not a document path: {path[:200]!r}")
    return path


def decode(line: bytes) -> tuple[str, Any]:
    """The relative path and the ``Document`` proto (fields only) of one line.

    The exact inverse of `encode` for values, written out rather than through
    ``json_format.ParseDict``, which is about five times slower and dominates a restore.
    """
    from google.cloud.firestore_v1.types import document

    try:
        data = json.loads(line)
        path = check_path(data["name"])
        doc = document.Document.pb()()
        fields = data.get("fields", {})
        if not isinstance(fields, dict):
            raise TypeError("fields")
        for key, value in fields.items():
            _value(doc.fields[key], value)
    except (KeyError, TypeError, AttributeError, UnicodeDecodeError, binascii.Error) as exc:
        raise ValueError(f"not a backup record: {type(exc).__name__}") from None
    return path, doc


def _value(target: Any, data: dict[str, Any]) -> None:
    """Fill a ``Value`` proto from Firestore's JSON mapping of it (one key: the value's type)."""
    if len(data) != 1:
        raise TypeError("a value has exactly one type")
    ((kind, raw),) = data.items()
    if kind == "stringValue" and isinstance(raw, str):
        target.string_value = raw
    elif kind == "integerValue" and isinstance(raw, str | int) and not isinstance(raw, bool):
        target.integer_value = int(raw)
    elif kind == "doubleValue" and isinstance(raw, str | int | float) and not isinstance(raw, bool):
        if isinstance(raw, str) and raw not in ("NaN", "Infinity", "-Infinity"):
            raise TypeError("doubleValue")
        target.double_value = float(raw)
    elif kind == "booleanValue" and isinstance(raw, bool):
        target.boolean_value = raw
    elif kind == "nullValue" and raw in (None, "NULL_VALUE"):
        target.null_value = 0
    elif kind == "timestampValue" and isinstance(raw, str):
        target.timestamp_value.FromJsonString(raw)
    elif kind == "bytesValue" and isinstance(raw, str):
        target.bytes_value = base64.b64decode(raw, validate=True)
    elif kind == "referenceValue" and isinstance(raw, str):
        target.reference_value = raw
    elif kind == "geoPointValue" and isinstance(raw, dict):
        point = target.geo_point_value
        point.SetInParent()
        point.latitude = float(raw.get("latitude", 0.0))
        point.longitude = float(raw.get("longitude", 0.0))
    elif kind == "arrayValue" and isinstance(raw, dict):
        array = target.array_value
        array.SetInParent()
        for item in raw.get("values", []):
            _value(array.values.add(), item)
    elif kind == "mapValue" and isinstance(raw, dict):
        mapping = target.map_value
        mapping.SetInParent()
        for key, item in raw.get("fields", {}).items():
            _value(mapping.fields[key], item)
    else:
        raise TypeError(f"unknown or malformed value type {kind[:40]!r}")


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
