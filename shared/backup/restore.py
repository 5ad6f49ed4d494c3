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
import hashlib
import json
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import zstandard

from shared import errors
from shared.backup import records
from shared.backup.gapic import Database, FirestoreApi
from shared.backup.jobs import Progress, _quiet, check_shard, load_manifest
from shared.backup.manifest import Manifest, Shard
from shared.backup.sinks import Missing, Sink
from shared.settings import Settings

log = logging.getLogger("ngx.backup")
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
        source_root = Database(manifest.project, manifest.database).root
        retarget = records.Retarget(source_root, target.database.root, target.prefix)
        checkpoint = f"{backup_id}/restores/{target.key(mode)}.json"
        done: list[str] = await self._checkpoint(sink, checkpoint) if resume and not dry_run else []
        todo = [s for s in manifest.shards if s.name not in damaged and s.name not in done]
        tally = Tally()
        api = None if dry_run else FirestoreApi(self.settings)
        try:
            total = 0
            for shard in todo:
                lines = await self._lines(sink, backup_id, shard)
                total += len(lines)
                if api is not None:
                    await self._write_shard(api, target, retarget, mode, lines, tally)
                    done.append(shard.name)
                    await sink.put(checkpoint, json.dumps({"done": done}).encode())
                self.progress("restore", total)
        finally:
            if api is not None:
                await api.close()
        report: dict[str, Any] = {
            "backup_id": backup_id,
            "target": target.database.path,
            "prefix": target.prefix,
            "mode": mode,
            "dry_run": dry_run,
            "documents": total,
            "shards_restored": len(todo),
            "shards_already_done": len(manifest.shards) - len(todo) - len(damaged),
            "damaged_shards_skipped": sorted(damaged),
            "duration_s": round(time.monotonic() - started, 3),
        }
        if not dry_run:
            report |= {
                "written": tally.written,
                "skipped_existing": tally.skipped_existing,
                "failed": tally.failed,
                "errors": tally.errors[:10],
            }
        log.info("restore finished", extra={k: v for k, v in report.items() if k != "errors"})
        return report

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

    async def _write_shard(
        self,
        api: FirestoreApi,
        target: Target,
        retarget: records.Retarget,
        mode: Mode,
        lines: list[bytes],
        tally: Tally,
    ) -> None:
        from google.cloud.firestore_v1.types import write

        make = write.Write.pb()
        writes = []
        for number, line in enumerate(lines, 1):
            try:
                path, doc = records.decode(line)
            except ValueError as exc:
                raise errors.FailedPrecondition(
                    f"record {number} cannot be decoded: {exc}"
                ) from None
            retarget.fields(doc)
            doc.name = retarget.name(path)
            item = make(update=doc)
            if mode == "only-missing":
                item.current_document.exists = False
            writes.append(item)
        gate = asyncio.Semaphore(self.concurrency)

        async def send(batch: list[Any]) -> None:
            async with gate:
                if mode == "overwrite":
                    await self._commit(api, target.database, batch, tally)
                else:
                    await self._batch_write(api, target.database, batch, tally)

        await asyncio.gather(*(send(writes[i : i + BATCH]) for i in range(0, len(writes), BATCH)))

    async def _commit(
        self, api: FirestoreApi, db: Database, batch: list[Any], tally: Tally
    ) -> None:
        """Overwrite: one atomic commit of plain sets, retried whole on a transient error."""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                await api.commit(db, batch)
                tally.written += len(batch)
                return
            except Exception as exc:
                if type(exc).__name__ not in TRANSIENT_NAMES or attempt == ATTEMPTS:
                    tally.failed += len(batch)
                    tally.errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
                    return
                await asyncio.sleep(random.uniform(0, min(8.0, 0.2 * 2**attempt)))

    async def _batch_write(
        self, api: FirestoreApi, db: Database, batch: list[Any], tally: Tally
    ) -> None:
        """Only-missing: per-write preconditions; transient failures are retried one by one."""
        pending = batch
        for attempt in range(1, ATTEMPTS + 1):
            try:
                codes = await api.batch_write(db, pending)
            except Exception as exc:
                if type(exc).__name__ not in TRANSIENT_NAMES or attempt == ATTEMPTS:
                    tally.failed += len(pending)
                    tally.errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
                    return
                await asyncio.sleep(random.uniform(0, min(8.0, 0.2 * 2**attempt)))
                continue
            retry = []
            for item, code in zip(pending, codes, strict=True):
                if code == 0:
                    tally.written += 1
                elif code in EXISTS:
                    tally.skipped_existing += 1
                elif code in TRANSIENT and attempt < ATTEMPTS:
                    retry.append(item)
                else:
                    tally.failed += 1
                    if len(tally.errors) < 10:
                        tally.errors.append(f"gRPC code {code} for {item.update.name}")
            if not retry:
                return
            pending = retry
            await asyncio.sleep(random.uniform(0, min(8.0, 0.2 * 2**attempt)))
