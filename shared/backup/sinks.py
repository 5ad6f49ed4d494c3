"""Where backups live: ``gs://bucket/prefix`` (Cloud Storage) or ``file:///dir`` (local use).

Objects are written whole (a file appears by rename, a GCS object on upload completion), so a
reader never sees half an object. Blocking client calls run in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import tempfile
import urllib.parse
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

from shared import errors

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]\Z")


class Missing(Exception):
    """The object does not exist."""


class Sink(Protocol):
    url: str

    async def put(self, name: str, data: bytes) -> None: ...

    async def get(self, name: str) -> bytes: ...

    async def list(self, prefix: str = "") -> list[str]: ...

    async def link(self, name: str, ttl_s: int) -> str: ...

    async def delete(self, name: str) -> None: ...


def _bad(url: str, why: str) -> errors.ValidationFailed:
    return errors.ValidationFailed(
        f"sink {url[:200]!r} {why}; expected gs://bucket/prefix or file:///absolute/dir",
        details=[{"field": "sink", "issue": why}],
    )


def open_sink(url: str) -> Sink:
    """The sink for ``url``, or a validation error naming what is wrong with it."""
    if url.startswith("file://"):
        path = url[len("file://") :]
        if not path.startswith("/"):
            raise _bad(url, "must name an absolute path (file:///dir)")
        if "\0" in path or any(part == ".." for part in path.split("/")):
            raise _bad(url, "must not contain '..'")
        return FileSink(url, Path(path))
    if url.startswith("gs://"):
        bucket, _, prefix = url[len("gs://") :].partition("/")
        if not _BUCKET.match(bucket):
            raise _bad(url, "has no valid bucket name")
        return GcsSink(url, bucket, prefix.strip("/"))
    raise _bad(url, "has an unsupported scheme")


def _check_name(name: str) -> str:
    if not name or name.startswith("/") or any(p in ("", ".", "..") for p in name.split("/")):
        raise ValueError(f"bad object name {name!r}")
    return name


class FileSink:
    """A directory tree; names are relative paths."""

    def __init__(self, url: str, root: Path) -> None:
        self.url = url
        self.root = root

    def _put(self, name: str, data: bytes) -> None:
        target = self.root / _check_name(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=target.parent, prefix=".partial-")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise

    async def put(self, name: str, data: bytes) -> None:
        await asyncio.to_thread(self._put, name, data)

    def _get(self, name: str) -> bytes:
        try:
            return (self.root / _check_name(name)).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise Missing(name) from None

    async def get(self, name: str) -> bytes:
        return await asyncio.to_thread(self._get, name)

    def _list(self, prefix: str) -> list[str]:
        if not self.root.is_dir():
            return []
        found = []
        for path in self.root.rglob("*"):
            if path.is_file() and not path.name.startswith(".partial-"):
                name = path.relative_to(self.root).as_posix()
                if name.startswith(prefix):
                    found.append(name)
        return sorted(found)

    async def list(self, prefix: str = "") -> list[str]:
        return await asyncio.to_thread(self._list, prefix)

    def _delete(self, name: str) -> None:
        path = self.root / _check_name(name)
        path.unlink(missing_ok=True)
        for parent in path.parents:  # tidy emptied folders, never the root itself
            if parent == self.root or not parent.is_relative_to(self.root):
                break
            try:
                parent.rmdir()
            except OSError:
                break

    async def delete(self, name: str) -> None:
        await asyncio.to_thread(self._delete, name)

    async def link(self, name: str, ttl_s: int) -> str:
        """A ``file://`` URL of the object (local stack: the client reads the same disk)."""
        return (self.root / _check_name(name)).as_uri()


class GcsSink:
    """A bucket and prefix in Cloud Storage, through ``google-cloud-storage``."""

    def __init__(self, url: str, bucket: str, prefix: str) -> None:
        self.url = url
        self.bucket_name = bucket
        self.prefix = f"{prefix}/" if prefix else ""
        self._bucket: Any = None

    def _handle(self) -> Any:
        if self._bucket is None:
            from google.auth.exceptions import DefaultCredentialsError
            from google.cloud import storage  # type: ignore[attr-defined]

            try:
                self._bucket = storage.Client().bucket(self.bucket_name)
            except DefaultCredentialsError:
                raise errors.Unavailable(
                    f"the backup destination {self.url} is unreachable: this process has no "
                    "Google credentials (give the service a service account, or set "
                    "GOOGLE_APPLICATION_CREDENTIALS)",
                    details=[{"setting": "credentials", "issue": "missing"}],
                ) from None
        return self._bucket

    def _put(self, name: str, data: bytes) -> None:
        blob = self._handle().blob(self.prefix + _check_name(name))
        blob.upload_from_string(data, content_type="application/octet-stream", checksum="crc32c")

    async def put(self, name: str, data: bytes) -> None:
        await asyncio.to_thread(self._put, name, data)

    def _link(self, name: str, ttl_s: int) -> str:
        object_name = self.prefix + _check_name(name)
        emulator = os.environ.get("STORAGE_EMULATOR_HOST")
        if emulator:  # the local storage emulator serves objects unsigned
            quoted = urllib.parse.quote(object_name, safe="")
            return f"{emulator}/download/storage/v1/b/{self.bucket_name}/o/{quoted}?alt=media"
        import google.auth
        from google.auth.transport.requests import Request

        credentials, _ = google.auth.default()
        credentials.refresh(Request())  # type: ignore[no-untyped-call]
        # V4 signing through the IAM API (signBlob): Cloud Run's identity holds no private key;
        # it needs roles/iam.serviceAccountTokenCreator on itself (Terraform grants it).
        url: str = (
            self._handle()
            .blob(object_name)
            .generate_signed_url(
                version="v4",
                expiration=timedelta(seconds=ttl_s),
                method="GET",
                service_account_email=credentials.service_account_email,  # type: ignore[attr-defined]
                access_token=credentials.token,
            )
        )
        return url

    async def link(self, name: str, ttl_s: int) -> str:
        """A V4 signed URL that reads the object for ``ttl_s`` seconds."""
        return await asyncio.to_thread(self._link, name, ttl_s)

    def _get(self, name: str) -> bytes:
        from google.api_core import exceptions

        try:
            data: bytes = self._handle().blob(self.prefix + _check_name(name)).download_as_bytes()
        except exceptions.NotFound:
            raise Missing(name) from None
        return data

    async def get(self, name: str) -> bytes:
        return await asyncio.to_thread(self._get, name)

    def _list(self, prefix: str) -> list[str]:
        blobs = self._handle().client.list_blobs(self.bucket_name, prefix=self.prefix + prefix)
        return sorted(blob.name[len(self.prefix) :] for blob in blobs)

    async def list(self, prefix: str = "") -> list[str]:
        return await asyncio.to_thread(self._list, prefix)

    def _delete(self, name: str) -> None:
        from google.api_core import exceptions

        with contextlib.suppress(exceptions.NotFound):
            self._handle().blob(self.prefix + _check_name(name)).delete()

    async def delete(self, name: str) -> None:
        await asyncio.to_thread(self._delete, name)
