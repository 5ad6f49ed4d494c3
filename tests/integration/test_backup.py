"""Logical backups on the Firestore emulator: exact round trips, consistency, damage, resume."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import zstandard

from shared import errors
from shared.backup import records
from shared.backup.gapic import Database, FirestoreApi
from shared.backup.jobs import Backups
from shared.backup.manifest import Manifest, created
from shared.backup.restore import Restorer, Target
from shared.backup.sinks import FileSink, Sink, open_sink
from shared.settings import Settings
from tests import dataset
from tests.conftest import LocalStack


@pytest.fixture
def settings(stack: LocalStack, tmp_path: Path) -> Settings:
    return stack.client_settings(
        backup_sink=f"file://{tmp_path / 'backups'}", backup_shard_documents=400
    )


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[FirestoreApi]:
    client = FirestoreApi(settings)
    yield client
    await client.close()


def source(settings: Settings) -> Database:
    return Database(settings.project_id)


async def test_round_trip_keeps_every_document_and_type(
    stack: LocalStack, settings: Settings, api: FirestoreApi
) -> None:
    db = source(settings)
    await dataset.write_all(api, db, dataset.documents(5000, seed=7, db=db))
    before = await dataset.snapshot(api, db)
    manifest = await Backups(settings).run()
    assert manifest.documents == len(before) == 5000
    assert sum(manifest.collections.values()) == 5000
    assert len(manifest.shards) >= 13  # 400 documents per shard at most

    stack.reset()  # wipe
    assert await dataset.snapshot(api, db) == {}
    report = await Restorer(settings).restore(
        open_sink(settings.backup_sink or ""), manifest.backup_id, Target(db)
    )
    after = await dataset.snapshot(api, db)
    lost = before.keys() - after.keys()
    changed = [path for path in before if path in after and before[path] != after[path]]
    assert (len(lost), len(changed), report["written"], report["failed"]) == (0, 0, 5000, 0)
    assert after == before


def epoch_ns(stamp: str) -> int:
    """An RFC 3339 UTC time as integer nanoseconds (its fraction has 0 to 9 digits, so the strings
    themselves do not sort by time)."""
    whole, _, fraction = stamp.removesuffix("Z").partition(".")
    seconds = datetime.fromisoformat(whole).replace(tzinfo=UTC).timestamp()
    return int(seconds) * 10**9 + int(fraction.ljust(9, "0"))


async def test_writes_during_a_backup_are_wholly_in_or_wholly_out(
    settings: Settings, api: FirestoreApi
) -> None:
    db = source(settings)
    await dataset.write_all(api, db, dataset.documents(3000, seed=3, db=db))
    from google.cloud.firestore_v1.types import write

    committed: dict[int, Any] = {}
    backup_done = asyncio.Event()
    some_landed = asyncio.Event()  # the backup starts once writes are under way

    async def writer() -> None:
        group = 0
        while not backup_done.is_set() and group < 2000:
            batch = []
            for i in range(20):
                item = write.Write.pb()()
                item.update.name = f"{db.root}conversations/grp{group:05d}-{i:02d}"
                item.update.fields["group"].integer_value = group
                batch.append(item)
            committed[group] = await api.commit(db, batch)
            group += 1
            if group == 5:
                some_landed.set()

    async def backup() -> Manifest:
        try:
            await some_landed.wait()
            return await Backups(settings).run(collections=["conversations"])
        finally:
            backup_done.set()

    writing = asyncio.create_task(writer())
    manifest = await backup()
    await writing
    sink = open_sink(settings.backup_sink or "")
    seen: dict[int, int] = {}
    for shard in manifest.shards:
        raw = zstandard.ZstdDecompressor().decompress(
            await sink.get(f"{manifest.backup_id}/{shard.name}"),
            max_output_size=shard.uncompressed_bytes,
        )
        for line in raw.splitlines():
            path, doc = records.decode(line)
            if path.startswith("conversations/grp"):
                group = doc.fields["group"].integer_value
                seen[group] = seen.get(group, 0) + 1
    read_time = epoch_ns(manifest.read_time)
    before = {g for g, at in committed.items() if epoch_ns(at.rfc3339()) <= read_time}
    after = set(committed) - before
    assert before and after, "the writer must commit on both sides of the read time"
    assert set(seen) == before
    assert {g: c for g, c in seen.items() if c != 20} == {}


async def damaged_backup(settings: Settings, api: FirestoreApi) -> tuple[Manifest, FileSink]:
    db = source(settings)
    await dataset.write_all(api, db, dataset.documents(1500, seed=11, db=db))
    manifest = await Backups(settings).run()
    sink = open_sink(settings.backup_sink or "")
    assert isinstance(sink, FileSink)
    return manifest, sink


async def test_verify_names_a_flipped_byte_and_a_missing_shard(
    settings: Settings, api: FirestoreApi
) -> None:
    manifest, sink = await damaged_backup(settings, api)
    backups = Backups(settings)
    assert (await backups.verify(manifest.backup_id))["ok"] is True
    flipped, missing = manifest.shards[1].name, manifest.shards[2].name
    shard_path = sink.root / manifest.backup_id / flipped
    data = bytearray(shard_path.read_bytes())
    data[len(data) // 2] ^= 0x01
    shard_path.write_bytes(bytes(data))
    (sink.root / manifest.backup_id / missing).unlink()

    report = await backups.verify(manifest.backup_id)
    assert report["ok"] is False
    assert report["problems"] == [
        {"shard": flipped, "problem": "checksum mismatch"},
        {"shard": missing, "problem": "missing"},
    ]


async def test_restore_refuses_a_damaged_backup_unless_forced(
    stack: LocalStack, settings: Settings, api: FirestoreApi
) -> None:
    manifest, sink = await damaged_backup(settings, api)
    flipped = manifest.shards[0].name
    shard_path = sink.root / manifest.backup_id / flipped
    data = bytearray(shard_path.read_bytes())
    data[-1] ^= 0x80
    shard_path.write_bytes(bytes(data))
    stack.reset()
    db = source(settings)
    with pytest.raises(errors.FailedPrecondition) as refused:
        await Restorer(settings).restore(sink, manifest.backup_id, Target(db))
    assert refused.value.details == [{"shard": flipped, "problem": "checksum mismatch"}]
    assert await dataset.snapshot(api, db) == {}  # nothing written

    report = await Restorer(settings).restore(sink, manifest.backup_id, Target(db), force=True)
    assert report["damaged_shards_skipped"] == [flipped]
    expected = manifest.documents - manifest.shards[0].documents
    assert report["written"] == expected
    assert len(await dataset.snapshot(api, db)) == expected


async def test_only_missing_keeps_existing_documents_and_overwrite_replaces_them(
    settings: Settings, api: FirestoreApi
) -> None:
    from google.cloud.firestore_v1.types import write

    db = source(settings)
    await dataset.write_all(api, db, dataset.documents(600, seed=5, db=db))
    original = await dataset.snapshot(api, db)
    manifest = await Backups(settings).run()
    changed_path = sorted(original)[10]
    item = write.Write.pb()()
    item.update.name = db.root + changed_path
    item.update.fields["edited"].boolean_value = True
    await api.commit(db, [item])
    sink = open_sink(settings.backup_sink or "")

    kept = await Restorer(settings).restore(sink, manifest.backup_id, Target(db), resume=False)
    assert (kept["written"], kept["skipped_existing"]) == (0, 600)
    assert (await dataset.snapshot(api, db))[changed_path] != original[changed_path]

    replaced = await Restorer(settings).restore(
        sink, manifest.backup_id, Target(db), mode="overwrite"
    )
    assert replaced["written"] == 600
    assert await dataset.snapshot(api, db) == original


async def test_restore_into_another_project_and_prefix_moves_references(
    settings: Settings, api: FirestoreApi
) -> None:
    db = source(settings)
    await dataset.write_all(api, db, dataset.documents(800, seed=9, db=db))
    original = await dataset.snapshot(api, db)
    manifest = await Backups(settings).run()
    other = Database("ngx-restore-target")
    sink = open_sink(settings.backup_sink or "")
    report = await Restorer(settings).restore(
        sink, manifest.backup_id, Target(other, "copy_"), mode="overwrite"
    )
    assert report["written"] == 800
    copied = await dataset.snapshot(api, other, prefix="copy_")
    assert copied.keys() == original.keys()
    references = 0
    async for doc in api.tree(other, "copy_conversations", None):
        for value in doc.fields.values():
            if value.WhichOneof("value_type") == "reference_value":
                references += 1
                assert value.reference_value.startswith(other.root + "copy_")
    assert references > 0


class FailingSink:
    """A sink that fails on its n-th shard read (a restore stopped half-way)."""

    def __init__(self, inner: Sink, fail_at: int) -> None:
        self.inner, self.url, self.fail_at, self.reads = inner, inner.url, fail_at, 0

    async def get(self, name: str) -> bytes:
        if name.endswith(".zst"):
            self.reads += 1
            if self.reads == self.fail_at:
                raise OSError("connection reset")
        return await self.inner.get(name)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_an_interrupted_restore_resumes_after_its_last_finished_shard(
    stack: LocalStack, settings: Settings, api: FirestoreApi
) -> None:
    db = source(settings)
    await dataset.write_all(api, db, dataset.documents(2000, seed=13, db=db))
    before = await dataset.snapshot(api, db)
    manifest = await Backups(settings).run()
    stack.reset()
    sink = open_sink(settings.backup_sink or "")
    shards = len(manifest.shards)
    # The integrity check reads every shard first; fail on the third shard of the restore proper.
    with pytest.raises(OSError):
        await Restorer(settings).restore(
            FailingSink(sink, shards + 3),
            manifest.backup_id,
            Target(db),  # type: ignore[arg-type]
        )
    report = await Restorer(settings).restore(sink, manifest.backup_id, Target(db))
    assert report["shards_already_done"] == 2
    assert report["shards_restored"] == shards - 2
    assert await dataset.snapshot(api, db) == before


async def test_prune_keeps_the_newest_and_the_young(settings: Settings, api: FirestoreApi) -> None:
    db = source(settings)
    await dataset.write_all(api, db, dataset.documents(50, seed=1, db=db))
    backups = Backups(settings)
    ids = [(await backups.run()).backup_id for _ in range(3)]
    sink = open_sink(settings.backup_sink or "")
    await sink.put("20200101T000000.000Z-abcdef/conversations/00000.ndjson.zst", b"left over")
    later = created(ids[-1]) + timedelta(days=2)

    dry = await backups.prune(keep_last=1, keep_days=1, dry_run=True, now=later)
    assert sorted(dry["deleted"]) == sorted([*ids[:2], "20200101T000000.000Z-abcdef"])
    assert len(await backups.list()) == 4

    done = await backups.prune(keep_last=1, keep_days=1, now=later)
    assert done["kept"] == [ids[-1]]
    assert [b["backup_id"] for b in await backups.list()] == [ids[-1]]
    assert json.loads(await sink.get(f"{ids[-1]}/manifest.json"))["backup_id"] == ids[-1]


async def test_a_cloud_storage_sink_round_trips_and_verifies(
    stack: LocalStack, settings: Settings, api: FirestoreApi, gcs_emulator: str
) -> None:
    db = source(settings)
    await dataset.write_all(api, db, dataset.documents(900, seed=21, db=db))
    before = await dataset.snapshot(api, db)
    url = "gs://ngx-backups/prod/firestore"
    backups = Backups(settings.model_copy(update={"backup_sinks": {"archive": url}}))
    manifest = await backups.run("archive")
    assert [b["backup_id"] for b in await backups.list("archive")] == [manifest.backup_id]
    assert (await backups.verify(None, "archive"))["ok"] is True
    stack.reset()
    report = await Restorer(settings).restore(open_sink(url), manifest.backup_id, Target(db))
    assert report["written"] == 900
    assert await dataset.snapshot(api, db) == before
