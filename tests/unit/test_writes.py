"""The exchange's hand-built Write protos are exactly what ``WriteBatch.set`` would send."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from shared.stores import writes

NOW = datetime(2026, 12, 5, 14, 30, 1, 123456, tzinfo=UTC)
VALUES: dict[str, Any] = {
    "text": "héllo — ünïcode ✓",
    "raw": b"\x00\xff",
    "empty": "",
    "yes": True,
    "no": False,
    "count": 120,
    "negative": -(2**63),
    "largest": 2**63 - 1,
    "ratio": 0.25,
    "nothing": None,
    "created_at": NOW,
    "elsewhere": NOW.astimezone(timezone(timedelta(hours=-8))),
    "before_epoch": datetime(1969, 7, 20, 20, 17, 40, 5, tzinfo=UTC),
}


@pytest.fixture
def db(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:9")  # never contacted
    from google.cloud.firestore_v1.async_client import AsyncClient

    return AsyncClient(project="ngx-test")


def sdk_writes(db: Any, build: Any) -> list[Any]:
    batch = db.batch()
    build(batch)
    return [write._pb for write in batch._write_pbs]


def test_a_set_is_the_sdks(db: Any) -> None:
    ref = db.collection("conversations").document("c1").collection("messages").document("m-q")
    expected = sdk_writes(db, lambda batch: batch.set(ref, VALUES))
    assert [writes.set_write(ref._document_path, VALUES)] == expected


def test_a_create_is_the_sdks(db: Any) -> None:
    ref = db.collection("conversations").document("c1").collection("messages").document("m")
    expected = sdk_writes(db, lambda batch: batch.create(ref, VALUES))
    assert [writes.create_write(ref._document_path, VALUES)] == expected


def test_a_merge_with_an_increment_is_the_sdks(db: Any) -> None:
    from google.cloud.firestore_v1.transforms import Increment

    ref = db.collection("conversations").document("c1")
    header = {"owner": "user:alice", "updated_at": NOW, "summary": "so far", "title": "t"}
    expected = sdk_writes(
        db, lambda batch: batch.set(ref, {**header, "message_count": Increment(2)}, merge=True)
    )
    assert [writes.merge_write(ref._document_path, header, {"message_count": 2})] == expected


@pytest.mark.parametrize(
    ("data", "error", "match"),
    [
        ({"at": datetime(2026, 1, 1)}, ValueError, "timezone-aware"),
        ({"big": 2**63}, ValueError, "64-bit"),
        ({"raw": bytearray(b"x")}, TypeError, "bytearray"),
        ({"calls": [{"at": {1, 2}}]}, TypeError, "set"),
        ({"a.b": 1}, ValueError, "plain identifier"),
        ({"`x`": 1}, ValueError, "plain identifier"),
    ],
)
def test_values_outside_the_exchange_types_are_refused(
    data: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        writes.set_write("projects/p/databases/(default)/documents/c/d", data)


def test_lists_and_maps_are_encoded_as_the_sdk_does(db: Any) -> None:
    ref = db.collection("c").document("d")
    data = {
        "tool_calls": [
            {"name": "order_status", "arguments": {"order_id": "A-1", "n": 2.5}, "ok": True},
            {"name": "x", "arguments": {}, "tags": []},
        ],
        "empty": [],
    }
    expected = sdk_writes(db, lambda batch: batch.set(ref, data))
    assert [writes.set_write(ref._document_path, data)] == expected


def test_an_increment_on_a_dotted_path_is_refused() -> None:
    with pytest.raises(ValueError, match="plain identifier"):
        writes.merge_write("projects/p/databases/(default)/documents/c/d", {}, {"a.b": 1})


def test_a_conditional_update_is_the_sdks(db: Any) -> None:
    from google.protobuf.timestamp_pb2 import Timestamp

    ref = db.collection("idempotency").document("abc")
    when = Timestamp(seconds=1_796_480_000, nanos=123_456_000)
    done = {"state": "done", "status": 200, "body": b'{"text":"\xc3\xa9"}', "media_type": "a/b"}
    option = db.write_option(last_update_time=when)
    expected = sdk_writes(db, lambda batch: batch.update(ref, done, option=option))
    assert [writes.merge_write(ref._document_path, done, last_update_time=when)] == expected
