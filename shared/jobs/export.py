"""The ``export`` job: a JSON archive of everything stored about a user, for them to download.

It reads the same documents erasure deletes (`shared.subject_data`), as they are, minus what is
not the user's to hold: API keys' hashes (the document ids) and retrieval vectors. The archive is
written to ``exports/{pseudonym}/{job_id}.json`` in ``export_sink`` — a redelivered job writes the
same object again, so one job leaves one archive — and downloaded through a short-lived link.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

from shared import pseudonyms, subject_data
from shared.backup.sinks import open_sink
from shared.jobs.store import Job
from shared.settings import Settings

FORMAT = "ngx-export/1"
KIND = "export"
HIDDEN_FIELDS = {"embedding"}  # vectors: derived data, not the user's text
ID_HIDDEN = {"api_keys"}  # a key's document id is the hash of the key itself


def _plain(value: Any) -> Any:
    """A Firestore value as JSON: times as ISO 8601, bytes as base64, references as paths."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items() if k not in HIDDEN_FIELDS}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "path") and hasattr(value, "id"):  # a DocumentReference
        return value.path
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def object_name(settings: Settings, job: Job) -> str:
    return f"exports/{pseudonyms.of_subject(settings, job.owner)}/{job.job_id}.json"


class Exporter:
    """Builds and stores a user's archive."""

    def __init__(self, db: Any, settings: Settings) -> None:
        self._db = db
        self._settings = settings

    async def archive(self, subject: str) -> dict[str, Any]:
        """Every document of ``subject``, by collection."""
        owned = await subject_data.owned(self._db, subject)
        collections: dict[str, list[dict[str, Any]]] = {}
        for name, refs in owned.items():
            snapshots = [s async for s in self._db.get_all(refs)] if refs else []
            items = []
            for snapshot in sorted(snapshots, key=lambda s: s.reference.path):
                if not snapshot.exists:
                    continue
                item: dict[str, Any] = {"data": _plain(snapshot.to_dict())}
                if name not in ID_HIDDEN:
                    item["path"] = snapshot.reference.path
                items.append(item)
            collections[name] = items
        return {
            "format": FORMAT,
            "subject": subject,
            "exported_at": datetime.now(UTC).isoformat(),
            "collections": collections,
        }

    async def run(self, job: Job) -> dict[str, Any]:
        """Write ``job``'s archive; its place and size (the job's result)."""
        if not self._settings.export_sink:
            raise RuntimeError("export_sink is not configured")
        archive = await self.archive(job.owner)
        data = json.dumps(archive, ensure_ascii=False, sort_keys=True).encode()
        name = object_name(self._settings, job)
        await open_sink(self._settings.export_sink).put(name, data)
        counts = {k: len(v) for k, v in archive["collections"].items()}
        return {"object": name, "bytes": len(data), "documents": counts}

    async def link(self, job: Job) -> tuple[str, datetime]:
        """A download link of a finished export and when it stops working."""
        assert self._settings.export_sink and job.result is not None
        ttl = self._settings.export_url_ttl_s
        url = await open_sink(self._settings.export_sink).link(job.result["object"], ttl)
        expires = datetime.fromtimestamp(datetime.now(UTC).timestamp() + ttl, UTC)
        return url, expires
