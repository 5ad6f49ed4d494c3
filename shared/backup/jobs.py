"""Backup run, list, verify and prune.

A run reads every configured collection (subcollections included) at one ``read_time``, taken
from the commit that records the run in ``backups/{id}``, so it is a consistent snapshot: a write
committed before that instant is in it, a later one is not. Shards are zstd-compressed NDJSON
(`records`); the manifest goes last.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import zstandard

from shared import errors
from shared.backup import records
from shared.backup.gapic import Database, FirestoreApi
from shared.backup.manifest import (
    MANIFEST,
    Manifest,
    Shard,
    check_backup_id,
    created,
    new_backup_id,
)
from shared.backup.sinks import Missing, Sink, open_sink
from shared.settings import Settings

log = logging.getLogger("ngx.backup")
Progress = Callable[[str, int], None]  # (what, documents so far)
RETRYABLE = frozenset({"ServiceUnavailable", "DeadlineExceeded", "InternalServerError", "Aborted"})
INCOMPLETE_GRACE = timedelta(days=1)


def _quiet(_: str, __: int) -> None:
    pass


async def load_manifest(sink: Sink, backup_id: str) -> Manifest:
    check_backup_id(backup_id)
    try:
        raw = await sink.get(f"{backup_id}/{MANIFEST}")
    except Missing:
        raise errors.NotFound(f"backup {backup_id} not found in {sink.url}") from None
    try:
        return Manifest.model_validate_json(raw)
    except ValueError:
        raise errors.FailedPrecondition(f"backup {backup_id} has a damaged manifest") from None


class Backups:
    """The backup operations, shared by the HTTP function and ``agentctl backup``."""

    def __init__(self, settings: Settings, progress: Progress = _quiet) -> None:
        self.settings = settings
        self.progress = progress
        self.source = Database(settings.project_id, settings.firestore_database)

    def destinations(self) -> dict[str, str]:
        """The configured destinations by name: ``default`` (NGX_BACKUP_SINK) and the named ones."""
        found = dict(self.settings.backup_sinks)
        if self.settings.backup_sink:
            found["default"] = self.settings.backup_sink
        return found

    def sink(self, name: str | None) -> Sink:
        """The destination a request names, from configuration only: a caller can never point a
        backup, a listing or a prune at a place of its choosing."""
        destinations = self.destinations()
        chosen = destinations.get(name or "default")
        if chosen is None:
            if not destinations:
                raise errors.Unavailable(
                    "no backup destination is configured (NGX_BACKUP_SINK)",
                    details=[{"setting": "NGX_BACKUP_SINK", "issue": "missing"}],
                )
            names = ", ".join(sorted(destinations))
            raise errors.ValidationFailed(
                f"sink must name a configured destination ({names}), not a URL",
                details=[{"field": "sink", "issue": f"not one of: {names}"}],
            )
        return open_sink(chosen)

    # --- run --------------------------------------------------------------------------------

    async def run(
        self, destination: str | None = None, collections: list[str] | None = None, who: str = ""
    ) -> Manifest:
        sink = self.sink(destination)
        chosen = collections or self.settings.backup_collections
        started = datetime.now(UTC)
        backup_id = new_backup_id(started, secrets.token_hex(3))
        api = FirestoreApi(self.settings)
        clock = time.monotonic()
        try:
            read_time = await self._record(api, backup_id, {"state": "running", "sink": sink.url})
            shards: list[Shard] = []
            counts: dict[str, int] = {}
            for collection in chosen:
                counts[collection] = 0
                async for shard in self._shards(api, sink, backup_id, collection, read_time):
                    shards.append(shard)
                    counts[collection] += shard.documents
            manifest = Manifest(
                format=records.FORMAT,
                backup_id=backup_id,
                project=self.source.project,
                database=self.source.database,
                read_time=read_time.rfc3339(),
                collections=counts,
                shards=shards,
                documents=sum(counts.values()),
                bytes=sum(s.bytes for s in shards),
                started_at=started,
                finished_at=datetime.now(UTC),
                duration_s=round(time.monotonic() - clock, 3),
                created_by=who,
            )
            await sink.put(f"{backup_id}/{MANIFEST}", manifest.model_dump_json(indent=1).encode())
            await self._record(
                api,
                backup_id,
                {"state": "complete", "documents": manifest.documents, "bytes": manifest.bytes},
            )
            log.info(
                "backup complete",
                extra={"backup_id": backup_id, "documents": manifest.documents},
            )
            return manifest
        except Exception as exc:
            log.error(
                "backup failed", extra={"backup_id": backup_id, "error_type": type(exc).__name__}
            )
            try:
                await self._record(api, backup_id, {"state": "failed", "error": type(exc).__name__})
            except Exception:  # the failure we report is the first one
                log.warning("could not record the failed backup", extra={"backup_id": backup_id})
            raise
        finally:
            await api.close()

    async def _record(self, api: FirestoreApi, backup_id: str, fields: dict[str, Any]) -> Any:
        """Write the run's record in ``backups/{id}``; its commit time is the server's clock."""
        from google.cloud.firestore_v1.types import common, document, write

        values = {
            key: document.Value(integer_value=value)
            if isinstance(value, int)
            else document.Value(string_value=str(value))
            for key, value in fields.items()
        }
        update = document.Document(name=f"{self.source.root}backups/{backup_id}", fields=values)
        mask = common.DocumentMask(field_paths=list(fields))
        return await api.commit(self.source, [write.Write(update=update, update_mask=mask)])

    async def _documents(
        self, api: FirestoreApi, collection: str, read_time: Any
    ) -> AsyncIterator[Any]:
        """The collection's tree at ``read_time``; a broken stream resumes after the last name."""
        after: str | None = None
        attempt = 0
        while True:
            try:
                async for doc in api.tree(self.source, collection, read_time, after):
                    after = doc.name[len(self.source.root) :]
                    attempt = 0
                    yield doc
                return
            except Exception as exc:
                attempt += 1
                if type(exc).__name__ not in RETRYABLE or attempt > 5:
                    raise
                log.warning(
                    "backup read interrupted; resuming",
                    extra={"collection": collection, "error_type": type(exc).__name__},
                )
                await asyncio.sleep(min(8.0, 0.25 * 2**attempt))

    async def _shards(
        self, api: FirestoreApi, sink: Sink, backup_id: str, collection: str, read_time: Any
    ) -> AsyncIterator[Shard]:
        limit = self.settings.backup_shard_documents
        lines: list[bytes] = []
        index = done = 0
        async for doc in self._documents(api, collection, read_time):
            lines.append(records.encode(doc, self.source.root))
            done += 1
            if len(lines) >= limit:
                yield await self._write_shard(sink, backup_id, collection, index, lines)
                index, lines = index + 1, []
                self.progress(collection, done)
        if lines:
            yield await self._write_shard(sink, backup_id, collection, index, lines)
        self.progress(collection, done)

    async def _write_shard(
        self, sink: Sink, backup_id: str, collection: str, index: int, lines: list[bytes]
    ) -> Shard:
        raw = b"".join(lines)
        data = await asyncio.to_thread(zstandard.ZstdCompressor(level=3).compress, raw)
        name = f"{collection}/{index:05d}.ndjson.zst"
        await sink.put(f"{backup_id}/{name}", data)
        return Shard(
            name=name,
            collection=collection,
            documents=len(lines),
            bytes=len(data),
            uncompressed_bytes=len(raw),
            sha256=hashlib.sha256(data).hexdigest(),
        )

    # --- list -------------------------------------------------------------------------------

    async def list(self, destination: str | None = None) -> list[dict[str, Any]]:
        """Every backup in the sink, newest first; those without a manifest are ``incomplete``."""
        sink = self.sink(destination)
        ids: dict[str, bool] = {}
        for name in await sink.list():
            backup_id, _, rest = name.partition("/")
            ids[backup_id] = ids.get(backup_id, False) or rest == MANIFEST
        found: list[dict[str, Any]] = []
        for backup_id in sorted(ids, reverse=True):
            if not ids[backup_id]:
                found.append({"backup_id": backup_id, "state": "incomplete"})
                continue
            try:
                m = await load_manifest(sink, backup_id)
            except errors.AppError as exc:
                found.append({"backup_id": backup_id, "state": "damaged", "error": exc.message})
                continue
            found.append(
                {
                    "backup_id": backup_id,
                    "state": "complete",
                    "read_time": m.read_time,
                    "documents": m.documents,
                    "bytes": m.bytes,
                    "shards": len(m.shards),
                    "collections": m.collections,
                    "duration_s": m.duration_s,
                }
            )
        return found

    # --- verify -----------------------------------------------------------------------------

    async def verify(self, backup_id: str | None, destination: str | None = None) -> dict[str, Any]:
        """Recompute every checksum, decode every record, compare counts; name what is wrong.
        Without an id, the newest complete backup (what the weekly schedule checks)."""
        sink = self.sink(destination)
        if backup_id is None:
            complete = [b for b in await self.list(destination) if b["state"] == "complete"]
            if not complete:
                raise errors.NotFound(f"no complete backup in {sink.url} to verify")
            backup_id = str(complete[0]["backup_id"])
        manifest = await load_manifest(sink, backup_id)
        problems: list[dict[str, str]] = []
        checked = 0
        for shard in manifest.shards:
            status, count = await check_shard(sink, backup_id, shard, decode=True)
            checked += count
            if status != "ok":
                problems.append({"shard": shard.name, "problem": status})
            self.progress("verify", checked)
        return {
            "backup_id": backup_id,
            "ok": not problems,
            "documents_checked": checked,
            "documents_expected": manifest.documents,
            "shards": len(manifest.shards),
            "problems": problems,
        }

    # --- prune ------------------------------------------------------------------------------

    async def prune(
        self,
        destination: str | None = None,
        keep_last: int | None = None,
        keep_days: int | None = None,
        dry_run: bool = False,
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """Keep the newest ``keep_last`` complete backups and any younger than ``keep_days``;
        delete the rest (manifest first, so a half-deleted backup is never taken as whole).
        Incomplete backups older than a day are leftovers of failed runs and go too."""
        sink = self.sink(destination)
        keep_last = keep_last if keep_last is not None else self.settings.backup_keep_last
        keep_days = keep_days if keep_days is not None else self.settings.backup_keep_days
        if keep_last < 1:
            raise errors.ValidationFailed(
                "keep_last must be at least 1", details=[{"field": "keep_last", "issue": "< 1"}]
            )
        now = now or datetime.now(UTC)
        cutoff = now - timedelta(days=keep_days)
        kept: list[str] = []
        doomed: list[str] = []
        complete_seen = 0
        for entry in await self.list(destination):
            backup_id = entry["backup_id"]
            try:
                born = created(check_backup_id(backup_id))
            except (errors.AppError, ValueError):
                continue  # not ours: never touched
            if entry["state"] == "complete":
                complete_seen += 1
                keep = complete_seen <= keep_last or born >= cutoff
            else:
                keep = born >= now - INCOMPLETE_GRACE
            (kept if keep else doomed).append(backup_id)
        if not dry_run:
            for backup_id in doomed:
                names = await sink.list(f"{backup_id}/")
                names.sort(key=lambda n: n != f"{backup_id}/{MANIFEST}")
                for name in names:
                    await sink.delete(name)
        return {"dry_run": dry_run, "kept": kept, "deleted": doomed}


async def check_shard(sink: Sink, backup_id: str, shard: Shard, decode: bool) -> tuple[str, int]:
    """``ok`` or what is wrong with one shard, and how many records decoded."""
    try:
        data = await sink.get(f"{backup_id}/{shard.name}")
    except Missing:
        return "missing", 0
    if hashlib.sha256(data).hexdigest() != shard.sha256:
        return "checksum mismatch", 0
    if not decode:
        return "ok", shard.documents
    try:
        raw = zstandard.ZstdDecompressor().decompress(
            data, max_output_size=shard.uncompressed_bytes
        )
    except zstandard.ZstdError:
        return "cannot be decompressed", 0
    count = 0
    for line in raw.splitlines():
        try:
            records.decode(line)
        except (ValueError, KeyError):
            return f"record {count + 1} cannot be decoded", count
        count += 1
    if count != shard.documents:
        return f"holds {count} documents, manifest says {shard.documents}", count
    return "ok", count
