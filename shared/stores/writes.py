"""Firestore ``Write`` protos built straight from plain values, for the per-chat exchange.

``WriteBatch.set`` encodes through proto-plus wrappers, ≈ 55 µs a document on a 2-core VM — a
fifth of a cache-hit chat's CPU. The exchange stores a few flat documents of known types, so its
writes are built as the raw protobuf messages the client library itself sends (≈ 10 µs a
document) and handed to the same batch. Values: ``str``, ``bytes``, ``bool``, ``int`` (64-bit),
``float``, ``None`` and timezone-aware ``datetime``; field names are plain identifiers. Anything
else is a programming error and raises `TypeError`/`ValueError` before anything is written.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from shared.stores.firestore import raw_types

_NAME = re.compile(r"[A-Za-z_][A-Za-z_0-9]*\Z")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INT64 = 2**63


def _fill(value_pb: Any, value: Any) -> None:
    if isinstance(value, str):
        value_pb.string_value = value
    elif isinstance(value, bytes):
        value_pb.bytes_value = value
    elif isinstance(value, bool):  # before int: bool is an int
        value_pb.boolean_value = value
    elif isinstance(value, int):
        if not -_INT64 <= value < _INT64:
            raise ValueError(f"{value} does not fit a 64-bit Firestore integer")
        value_pb.integer_value = value
    elif isinstance(value, float):
        value_pb.double_value = value
    elif value is None:
        value_pb.null_value = 0
    elif isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("datetimes must be timezone-aware")
        delta = value - _EPOCH
        stamp = value_pb.timestamp_value
        stamp.seconds = delta.days * 86400 + delta.seconds
        stamp.nanos = delta.microseconds * 1000
    elif isinstance(value, list | tuple):
        array = value_pb.array_value
        array.SetInParent()  # an empty list is an empty array, not a missing value
        for item in value:
            _fill(array.values.add(), item)
    elif isinstance(value, dict):
        fields = value_pb.map_value
        fields.SetInParent()
        for key, item in value.items():
            _fill(fields.fields[str(key)], item)
    else:
        raise TypeError(f"cannot store a {type(value).__name__} in an exchange document")


def _document(name: str, data: dict[str, Any]) -> Any:
    document = raw_types().Document(name=name)
    fields = document.fields
    for key, value in data.items():
        if not _NAME.match(key):
            raise ValueError(f"field name {key!r} is not a plain identifier")
        _fill(fields[key], value)
    return document


def set_write(name: str, data: dict[str, Any]) -> Any:
    """``set(data)``: the document at ``name`` (a full resource name) becomes ``data``."""
    return raw_types().Write(update=_document(name, data))


def create_write(name: str, data: dict[str, Any]) -> Any:
    """``create(data)``: as `set_write`, on the condition that no document ``name`` exists yet."""
    write = set_write(name, data)
    write.current_document.exists = False
    return write


def merge_write(
    name: str,
    data: dict[str, Any],
    increments: dict[str, int] | None = None,
    *,
    last_update_time: Any = None,
) -> Any:
    """``set(data, merge=True)`` plus server-side ``Increment`` of each field in ``increments``.

    With ``last_update_time`` (a ``Timestamp``) it is ``update(data)`` on the condition that the
    document was last written then: the whole commit fails if anyone wrote it since.
    """
    types = raw_types()
    write = types.Write(update=_document(name, data))
    write.update_mask.field_paths.extend(sorted(data))
    if last_update_time is not None:
        write.current_document.update_time.CopyFrom(last_update_time)
    for path, amount in (increments or {}).items():
        if not _NAME.match(path):
            raise ValueError(f"field name {path!r} is not a plain identifier")
        transform = write.update_transforms.add(field_path=path)
        _fill(transform.increment, amount)
    return write
