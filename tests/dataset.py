"""Randomized Firestore documents that use every value type, and exact snapshots of a database.

Shared by the backup tests and the restore benchmark. Documents are written and read as raw
protos, so a comparison covers types exactly (an int stays an int, NaN stays NaN, a reference stays
a reference).
"""

from __future__ import annotations

import asyncio
import math
import random
import string
from typing import Any

from shared.backup.gapic import Database, FirestoreApi

COLLECTIONS = ("conversations", "api_keys", "config", "usage")
DOUBLES = (math.nan, math.inf, -math.inf, -0.0, 0.0, 5e-324, 1.7976931348623157e308, 0.1)
INTS = (0, 1, -1, 2**63 - 1, -(2**63), 2**53 + 1)


class Generator:
    """Values of every Firestore type, nested, from a seeded random source."""

    def __init__(self, seed: int, db: Database, paths: list[str]) -> None:
        from google.cloud.firestore_v1.types import document

        self.rng = random.Random(seed)
        self.db = db
        self.paths = paths
        self.Value = document.Value.pb()

    def scalar(self, in_array: bool = False) -> Any:
        rng, value = self.rng, self.Value()
        kind = rng.randrange(9 if in_array else 10)  # Firestore keeps vectors out of arrays
        if kind == 0:
            value.null_value = 0
        elif kind == 1:
            value.boolean_value = rng.random() < 0.5
        elif kind == 2:
            value.integer_value = (
                rng.choice(INTS) if rng.random() < 0.3 else rng.randrange(-(2**63), 2**63)
            )
        elif kind == 3:
            value.double_value = (
                rng.choice(DOUBLES) if rng.random() < 0.3 else rng.uniform(-1e9, 1e9)
            )
        elif kind == 4:  # Firestore keeps microseconds
            value.timestamp_value.seconds = rng.randrange(-62135596800, 253402300799)
            value.timestamp_value.nanos = rng.randrange(0, 1_000_000) * 1000
        elif kind == 5:
            alphabet = string.ascii_letters + 'é漢字🙂\n\t"\\'
            value.string_value = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40)))
        elif kind == 6:
            value.bytes_value = rng.randbytes(rng.randrange(0, 64))
        elif kind == 7:
            value.reference_value = self.db.root + rng.choice(self.paths)
        elif kind == 8:
            value.geo_point_value.latitude = rng.uniform(-90, 90)
            value.geo_point_value.longitude = rng.uniform(-180, 180)
        else:  # a vector, as the client library stores one
            value.map_value.fields["__type__"].string_value = "__vector__"
            vector = value.map_value.fields["value"].array_value
            for _ in range(rng.randrange(1, 8)):
                vector.values.add().double_value = rng.uniform(-1, 1)
        return value

    def value(self, depth: int = 0, in_array: bool = False) -> Any:
        roll = self.rng.random()
        if depth < 3 and roll < 0.1:
            value = self.Value()
            value.map_value.SetInParent()  # an empty map is a value too
            for i in range(self.rng.randrange(0, 5)):
                value.map_value.fields[f"k{i}"].CopyFrom(self.value(depth + 1))
            return value
        if depth < 3 and roll < 0.2 and not in_array:  # arrays cannot hold arrays
            value = self.Value()
            value.array_value.SetInParent()
            for _ in range(self.rng.randrange(0, 5)):
                value.array_value.values.add().CopyFrom(self.value(depth + 1, in_array=True))
            return value
        return self.scalar(in_array)

    def fields(self) -> dict[str, Any]:
        return {f"f{i}": self.value() for i in range(self.rng.randrange(1, 12))}


def paths(count: int, seed: int) -> list[str]:
    """Document paths across the backed-up collections, a third of them in subcollections, one
    under a parent that does not exist."""
    rng = random.Random(seed)
    found: list[str] = ["conversations/ghost/messages/m0"]
    while len(found) < count:
        collection = rng.choice(COLLECTIONS)
        doc = f"{collection}/d{len(found):07d}"
        found.append(doc)
        if collection == "conversations" and len(found) < count and rng.random() < 0.5:
            found.append(f"{doc}/messages/m{len(found):07d}")
    return found


def documents(count: int, seed: int, db: Database) -> list[Any]:
    """``count`` Write protos (``update`` only) for a randomized dataset."""
    from google.cloud.firestore_v1.types import write

    names = paths(count, seed)
    generator = Generator(seed, db, names)
    make = write.Write.pb()
    writes = []
    for path in names:
        item = make()
        item.update.name = db.root + path
        for key, value in generator.fields().items():
            item.update.fields[key].CopyFrom(value)
        writes.append(item)
    return writes


async def write_all(api: FirestoreApi, db: Database, writes: list[Any], parallel: int = 4) -> None:
    """Commit in batches of 500, ``parallel`` at a time."""
    gate = asyncio.Semaphore(parallel)

    async def one(batch: list[Any]) -> None:
        async with gate:
            await api.commit(db, batch)

    await asyncio.gather(*(one(writes[i : i + 500]) for i in range(0, len(writes), 500)))


async def snapshot(
    api: FirestoreApi, db: Database, collections: tuple[str, ...] = COLLECTIONS, prefix: str = ""
) -> dict[str, bytes]:
    """Relative path → the document's fields, serialized deterministically (exact, NaN included)."""
    from google.cloud.firestore_v1.types import document

    found: dict[str, bytes] = {}
    for collection in collections:
        async for doc in api.tree(db, prefix + collection, None):
            fields = document.Document.pb()()
            fields.fields.MergeFrom(doc.fields)
            found[doc.name[len(db.root) + len(prefix) :]] = fields.SerializeToString(
                deterministic=True
            )
    return found
