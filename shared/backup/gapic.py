"""Firestore at the protocol level, for backups: raw ``Document`` protos, ``read_time`` queries and
non-atomic batched writes.

The high-level client decodes values into Python objects; a backup must keep every value exactly as
stored (64-bit ints, NaN, nanosecond timestamps, references), so it reads and writes the protos
themselves through the GAPIC ``FirestoreAsyncClient``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from shared.grpc_clients import gapic_client
from shared.settings import Settings

# The smallest document id, as the client library's recursive queries use it.
MIN_ID = "__id-9223372036854775808__"
EMULATOR_METADATA = (("authorization", "Bearer owner"),)


@dataclass(frozen=True)
class Database:
    """A project's database, as resource names spell it."""

    project: str
    database: str = "(default)"

    @property
    def root(self) -> str:
        """The prefix of every document name: ``projects/p/databases/d/documents/``."""
        return f"projects/{self.project}/databases/{self.database}/documents/"

    @property
    def path(self) -> str:
        return f"projects/{self.project}/databases/{self.database}"


class FirestoreApi:
    """One GAPIC client over one channel; on the emulator when one is configured."""

    def __init__(self, settings: Settings) -> None:
        from google.cloud.firestore_v1.services.firestore import async_client

        self.emulator = settings.firestore_emulator_host or os.environ.get(
            "FIRESTORE_EMULATOR_HOST"
        )
        from google.cloud.firestore_v1.services.firestore.transports import grpc_asyncio

        self.client = gapic_client(
            async_client.FirestoreAsyncClient,
            grpc_asyncio.FirestoreGrpcAsyncIOTransport,
            self.emulator,
            options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)],
        )
        self.metadata: tuple[tuple[str, str], ...] = EMULATOR_METADATA if self.emulator else ()

    async def close(self) -> None:
        await self.client.transport.close()

    async def commit(self, db: Database, writes: list[Any]) -> Any:
        """An atomic commit; returns the commit time."""
        from google.cloud.firestore_v1.types import firestore

        response = await self.client.commit(
            request=firestore.CommitRequest(database=db.path, writes=writes),
            metadata=self.metadata,
        )
        return response.commit_time

    async def batch_write(self, db: Database, writes: list[Any]) -> list[int]:
        """A non-atomic batch: one gRPC status code per write."""
        from google.cloud.firestore_v1.types import firestore

        response = await self.client.batch_write(
            request=firestore.BatchWriteRequest(database=db.path, writes=writes),
            metadata=self.metadata,
        )
        return [status.code for status in response.status]

    async def tree(
        self, db: Database, collection: str, read_time: Any, after: str | None = None
    ) -> AsyncIterator[Any]:
        """Every document under a top-level collection, subcollections included, as it was at
        ``read_time``, in name order (optionally after the document named ``after``)."""
        from google.cloud.firestore_v1.types import document, firestore, query

        q = query.StructuredQuery

        def bound(op: str, path: str) -> Any:
            return q.Filter(
                field_filter=q.FieldFilter(
                    field=q.FieldReference(field_path="__name__"),
                    op=op,
                    value=document.Value(reference_value=db.root + path),
                )
            )

        filters = [
            bound("GREATER_THAN", after)
            if after
            else bound("GREATER_THAN_OR_EQUAL", f"{collection}/{MIN_ID}"),
            bound("LESS_THAN", f"{collection}\0/{MIN_ID}"),
        ]
        structured = q(
            from_=[q.CollectionSelector(all_descendants=True)],
            where=q.Filter(composite_filter=q.CompositeFilter(op="AND", filters=filters)),
            order_by=[
                q.Order(field=q.FieldReference(field_path="__name__"), direction="ASCENDING")
            ],
        )
        stream = await self.client.run_query(
            request=firestore.RunQueryRequest(
                parent=db.root.rstrip("/"), structured_query=structured, read_time=read_time
            ),
            metadata=self.metadata,
        )
        async for response in stream:
            if response.document:
                yield document.Document.pb(response.document)
