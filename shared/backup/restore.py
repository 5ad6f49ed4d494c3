"""Restore a backup into the same or another project, database or collection prefix.

Never deletes. ``only-missing`` writes a document only where none exists (a per-write precondition,
so existing data always wins); ``overwrite`` replaces documents that the backup holds. Writes go in
batches of 500, several in flight, retried on transient errors; every finished shard is recorded in
a checkpoint beside the backup, so a restore that stops half-way resumes where it was.
A backup whose shards fail their checksums is refused unless forced (then the damaged shards are
skipped and named).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import zstandard

from shared import erasure, errors, pseudonyms
from shared.backup import records
from shared.backup.gapic import Database, FirestoreApi
from shared.backup.jobs import Progress, _quiet, check_shard, load_manifest
from shared.backup.manifest import Manifest, Shard
from shared.backup.sinks import Missing, Sink
from shared.settings import Settings

log = logging.getLogger("ngx.backup")
OWNER_FIELDS = ("owner", "subject")  # how a document names the subject it belongs to
Mode = Literal["only-missing", "overwrite"]
BATCH = 500
ATTEMPTS = 6
# gRPC codes: ALREADY_EXISTS and FAILED_PRECONDITION mean "a document is there" in only-missing.
EXISTS = frozenset({6, 9})
TRANSIENT = frozenset({4, 8, 10, 13, 14})
TRANSIENT_NAMES = frozenset(
    {"ServiceUnavailable", "DeadlineExceeded", "InternalServerError", "Aborted", "TooManyRequests"}
)


@dataclass
class Tally:
    written: int = 0
    skipped_existing: int = 0
    skipped_erased: int = 0  # documents of subjects erased after the backup was taken
    failed: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Target:
    database: Database
    prefix: str = ""

    def key(self, mode: Mode) -> str:
        return hashlib.sha256(f"{self.database.root}|{self.prefix}|{mode}".encode()).hexdigest()[
            :16
        ]


def check_prefix(prefix: str) -> str:
    if prefix and ("/" in prefix or prefix.startswith("__") or len(prefix) > 100):
        raise errors.ValidationFailed(
            "collection prefix must be a plain name fragment (no '/', not starting with '__')",
            details=[{"field": "prefix", "issue": "invalid"}],
        )
    return prefix


class Restorer:
    def __init__(self, settings: Settings, progress: Progress = _quiet) -> None:
        self.settings = settings
        self.progress = progress
        self.concurrency = settings.restore_concurrency

    async def restore(
        self,
        sink: Sink,
        backup_id: str,
        target: Target,
        mode: Mode = "only-missing",
        dry_run: bool = False,
        force: bool = False,
        resume: bool = True,
    ) -> dict[str, Any]:
        manifest = await load_manifest(sink, backup_id)
        check_prefix(target.prefix)
        damaged = await self._damaged(sink, manifest)
        if damaged and not force:
            raise errors.FailedPrecondition(
                f"backup {backup_id} is damaged ({len(damaged)} shard(s)); verify it, or force "
                "the restore to skip the damaged shards",
                details=[{"shard": name, "problem": why} for name, why in damaged.items()],
            )
        started = time.monotonic()
        erased = await self._erased(target.database, manifest)
        source_root = Database(manifest.project, manifest.database).root
        retarget = records.Retarget(source_root, target.database.root, target.prefix)
        checkpoint = f"{backup_id}/restores/{target.key(mode)}.json"
        done: list[str] = await self._checkpoint(sink, checkpoint) if resume and not dry_run else []
        todo = [s for s in manifest.shards if s.name not in damaged and s.name not in done]
        tally = Tally()
        total = 0
        restored = 0
        if dry_run:
            for shard in todo:
                total += len(await self._lines(sink, backup_id, shard))
                self.progress("restore", total)
        else:
            api = FirestoreApi(self.settings)
            writer = _Writer(api, target.database, mode, self.concurrency, tally)
            try:
                # Shard n+1 is decoded while shard n's batches are in flight; a shard enters the
                # checkpoint once all its writes landed, in order.
                pending: list[tuple[str, list[asyncio.Task[int]]]] = []
                for shard in todo:
                    lines = await self._lines(sink, backup_id, shard)
                    total += len(lines)
                    tasks = []
                    for start in range(0, len(lines), BATCH):
                        batch = _writes(lines[start : start + BATCH], start, retarget, mode)
                        kept = [w for w in batch if not erased.covers(w.update)]
                        tally.skipped_erased += len(batch) - len(kept)
                        if kept:
                            tasks.append(await writer.submit(kept))
                    pending.append((shard.name, tasks))
                    while pending and all(t.done() for t in pending[0][1]):
                        restored += await self._settle(pending.pop(0), done, sink, checkpoint)
                    self.progress("restore", total)
                while pending:
                    restored += await self._settle(pending.pop(0), done, sink, checkpoint)
            except BaseException:
                # Keep what did land: shards whose writes all finished go into the checkpoint,
                # so the rerun resumes after them.
                await writer.drain()
                with contextlib.suppress(Exception):
                    while pending and all(t.done() and not t.exception() for t in pending[0][1]):
                        await self._settle(pending.pop(0), done, sink, checkpoint)
                raise
            finally:
                await writer.drain()
                await api.close()
        report: dict[str, Any] = {
            "backup_id": backup_id,
            "target": target.database.path,
            "prefix": target.prefix,
            "mode": mode,
            "dry_run": dry_run,
            "documents": total,
            "shards_restored": len(todo) if dry_run else restored,
            "shards_already_done": len(manifest.shards) - len(todo) - len(damaged),
            "damaged_shards_skipped": sorted(damaged),
            "duration_s": round(time.monotonic() - started, 3),
        }
        if not dry_run:
            report |= {
                "written": tally.written,
                "skipped_existing": tally.skipped_existing,
                "skipped_erased": tally.skipped_erased,
                "failed": tally.failed,
                "errors": tally.errors[:10],
            }
        log.info("restore finished", extra={k: v for k, v in report.items() if k != "errors"})
        return report

    async def _erased(self, database: Database, manifest: Manifest) -> Erased:
        """The subjects erased (in the target database's ledger) after the backup was read."""
        from google.api_core.datetime_helpers import from_rfc3339

        from shared.stores.firestore import make_client

        scoped = self.settings.model_copy(
            update={"project_id": database.project, "firestore_database": database.database}
        )
        client = make_client(scoped)
        try:
            read_at = from_rfc3339(manifest.read_time)  # type: ignore[no-untyped-call]
            found = await erasure.erased_since(client, read_at)
        finally:
            client.close()
        if found:
            log.info("restore leaves out erased subjects", extra={"subjects": len(found)})
        return Erased(found, self.settings)

    async def _damaged(self, sink: Sink, manifest: Manifest) -> dict[str, str]:
        found = {}
        for shard in manifest.shards:
            status, _ = await check_shard(sink, manifest.backup_id, shard, decode=False)
            if status != "ok":
                found[shard.name] = status
        return found

    async def _checkpoint(self, sink: Sink, name: str) -> list[str]:
        try:
            done: list[str] = json.loads(await sink.get(name))["done"]
            return done
        except Missing:
            return []
        except (ValueError, KeyError, TypeError):
            log.warning("restore checkpoint unreadable; starting over", extra={"name": name})
            return []

    async def _lines(self, sink: Sink, backup_id: str, shard: Shard) -> list[bytes]:
        data = await sink.get(f"{backup_id}/{shard.name}")
        raw = await asyncio.to_thread(
            zstandard.ZstdDecompressor().decompress, data, max_output_size=shard.uncompressed_bytes
        )
        lines = raw.splitlines()
        if len(lines) != shard.documents:
            raise errors.FailedPrecondition(
                f"shard {shard.name} holds {len(lines)} documents, manifest says {shard.documents}"
            )
        return lines

    async def _settle(
        self, entry: tuple[str, list[asyncio.Task[int]]], done: list[str], sink: Sink, name: str
    ) -> int:
        """Wait for a shard's writes; checkpoint it when none failed. 1 if it was restored."""
        shard, tasks = entry
        failed = sum(await asyncio.gather(*tasks))
        if failed:
            return 0  # left out of the checkpoint: a rerun writes it again
        done.append(shard)
        await sink.put(name, json.dumps({"done": done}).encode())
        return 1


class Erased:
    """Tells whether a backed-up document belongs to a subject erased since the backup."""

    def __init__(self, pseudonyms_: set[str], settings: Settings) -> None:
        self._erased = pseudonyms_
        self._settings = settings

    def covers(self, doc: Any) -> bool:
        if not self._erased:
            return False
        for field_name in OWNER_FIELDS:
            value = doc.fields.get(field_name)
            if value is not None and value.WhichOneof("value_type") == "string_value":
                subject = pseudonyms.of_subject(self._settings, value.string_value)
                if subject in self._erased:
                    return True
        return False


def _writes(lines: list[bytes], offset: int, retarget: records.Retarget, mode: Mode) -> list[Any]:
    """The Write protos for a run of records (``offset``: the first one's index in its shard)."""
    from google.cloud.firestore_v1.types import write

    make = write.Write.pb()
    writes = []
    for number, line in enumerate(lines, offset + 1):
        try:
            path, doc = records.decode(line)
        except ValueError as exc:
            raise errors.FailedPrecondition(f"record {number} cannot be decoded: {exc}") from None
        retarget.fields(doc)
        doc.name = retarget.name(path)
        item = make(update=doc)
        if mode == "only-missing":
            item.current_document.exists = False
        writes.append(item)
    return writes


def _pause(attempt: int) -> float:
    """Full-jitter exponential backoff."""
    return random.uniform(0, min(8.0, 0.2 * 2**attempt))


class _Writer:
    """Sends batches, ``concurrency`` at a time; each task answers how many writes failed."""

    def __init__(
        self, api: FirestoreApi, db: Database, mode: Mode, concurrency: int, tally: Tally
    ) -> None:
        self.api, self.db, self.mode, self.tally = api, db, mode, tally
        self.gate = asyncio.Semaphore(concurrency)
        self.tasks: set[asyncio.Task[int]] = set()

    async def submit(self, batch: list[Any]) -> asyncio.Task[int]:
        await self.gate.acquire()  # back-pressure: decoding never runs far ahead of writing
        task = asyncio.create_task(self._send(batch))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def drain(self) -> None:
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _send(self, batch: list[Any]) -> int:
        try:
            if self.mode == "only-missing" and await self._commit(batch, fallback=True):
                return 0
            if self.mode == "overwrite":
                return 0 if await self._commit(batch, fallback=False) else len(batch)
            return await self._batch_write(batch)
        finally:
            self.gate.release()

    async def _commit(self, batch: list[Any], fallback: bool) -> bool:
        """One atomic commit, retried whole on a transient error. In only-missing mode a commit
        whose preconditions fail writes nothing and says so (False): the batch then goes through
        per-write statuses. Restoring into an empty database never needs that slower path."""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                await self.api.commit(self.db, batch)
                self.tally.written += len(batch)
                return True
            except Exception as exc:
                name = type(exc).__name__
                if fallback and name in ("AlreadyExists", "FailedPrecondition"):
                    return False
                if name not in TRANSIENT_NAMES or attempt == ATTEMPTS:
                    if fallback:
                        return False
                    self.tally.failed += len(batch)
                    self.tally.errors.append(f"{name}: {str(exc)[:200]}")
                    return False
                await asyncio.sleep(_pause(attempt))
        return False  # pragma: no cover - the loop always returns

    async def _batch_write(self, batch: list[Any]) -> int:
        """Only-missing, per write: existing documents are skipped, transient failures retried."""
        pending, tally = batch, self.tally
        for attempt in range(1, ATTEMPTS + 1):
            try:
                codes = await self.api.batch_write(self.db, pending)
            except Exception as exc:
                if type(exc).__name__ not in TRANSIENT_NAMES or attempt == ATTEMPTS:
                    tally.failed += len(pending)
                    tally.errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
                    return len(pending)
                await asyncio.sleep(_pause(attempt))
                continue
            retry = []
            failed = 0
            for item, code in zip(pending, codes, strict=True):
                if code == 0:
                    tally.written += 1
                elif code in EXISTS:
                    tally.skipped_existing += 1
                elif code in TRANSIENT and attempt < ATTEMPTS:
                    retry.append(item)
                else:
                    failed += 1
                    if len(tally.errors) < 10:
                        tally.errors.append(f"gRPC code {code} for {item.update.name}")
            tally.failed += failed
            if not retry:
                return failed
            pending = retry
            await asyncio.sleep(_pause(attempt))
        return len(pending)  # pragma: no cover - the last attempt never retries
