"""What each service of the core is given: one narrow context, never the store's service bag.

A service (records, documents, consents, representatives, traces, lifecycle) sees the acting
person, the guard, the fact loader, the limits it enforces, and two ways to run an operation
in a unit of work (:meth:`Context.read`, :meth:`Context.write`). Keys and content leave the
store only through a unit of work (sealing, staging) and through :class:`ContentStream`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from carnet.access.facts import FactLoader
from carnet.access.guard import Guard
from carnet.access.tracing import TraceWriter
from carnet.access.unit_of_work import Unit, run
from carnet.domain.actors import Actor
from carnet.domain.audit_verify import VerifyReport
from carnet.domain.clock import utcnow
from carnet.domain.content import ContentInfo
from carnet.domain.errors import Reason, Rejected
from carnet.store.audit_scan import verify_store
from carnet.store.bulk import BulkStore
from carnet.store.content import StagedBlob, Upload
from carnet.store.services import StoreServices

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Limits:
    allow_test_ins: bool
    max_upload_bytes: int
    page_size_default: int
    page_size_max: int
    content_types: tuple[str, ...] = ()  # the media types content may have; () : any

    def check_media_type(self, content_type: str, field: str) -> None:
        """Refuse content whose media type is not one of the configured ones (dmp.md §6)."""
        media = content_type.split(";")[0].strip().lower()
        if self.content_types and media not in self.content_types:
            raise Rejected(
                f"media type {media or content_type!r} is not accepted here; accepted: "
                + ", ".join(self.content_types),
                field=field,
                reason=Reason.UNKNOWN_CODE,
            )


class ContentStream:
    """A document's content, access-checked, as an opaque stream: its facts, and its bytes (or a
    range of them) decrypted as they are read. The key stays inside."""

    def __init__(
        self,
        info: ContentInfo,
        reader: Callable[[int, int | None], AsyncIterator[bytes]],
    ) -> None:
        self.info = info
        self._reader = reader

    @property
    def size(self) -> int:
        return self.info.size

    def chunks(self, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Plaintext bytes ``[start, end)``."""
        return self._reader(start, end)

    async def read_all(self) -> bytes:
        return b"".join([c async for c in self.chunks()])


class Context:
    def __init__(
        self,
        actor: Actor,
        guard: Guard,
        facts: FactLoader,
        limits: Limits,
        store: StoreServices,
        writer: TraceWriter,
    ) -> None:
        self.actor = actor
        self.guard = guard
        self.facts = facts
        self.limits = limits
        self._store = store
        self._writer = writer

    def now(self) -> datetime:
        return utcnow()

    async def read(self, operation: Callable[[Unit], Awaitable[T]]) -> T:
        """Run a reading operation; its traces are committed before it returns."""
        return await run(self._store, self._writer, operation, writing=False)

    async def write(self, operation: Callable[[Unit], Awaitable[T]]) -> T:
        """Run a writing operation: its writes, traces and checks commit together."""
        return await run(self._store, self._writer, operation, writing=True)

    # -- keys and content, for the services that create, stream or destroy them -----------------
    async def create_key(self, record_id: str) -> None:
        await self._store.keys.create(record_id)

    async def shred(self, record_id: str) -> None:
        """Destroy a record's key and its content (dmp.md §2: irreversible and verifiable)."""
        await self._store.keys.destroy(record_id)
        for content in self._store.stores.values():
            await content.destroy(record_id)
        if self._store.engine.dialect.name == "sqlite":
            # move the overwritten pages out of the write-ahead log into the database file
            from sqlalchemy import text

            async with self._store.engine.connect() as conn:
                await conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))

    def bulk(self) -> BulkStore:
        """The bulk write path, for the operator's import (access/imports.py)."""
        return BulkStore(self._store)

    async def verify_chains(
        self, progress: Callable[[int, int], None] | None = None, jobs: int | None = None
    ) -> VerifyReport:
        """Recompute every trace chain (docs/traces.md), with ``jobs`` processes on PostgreSQL
        (None: one per core when the table is large)."""
        return await verify_store(self._store.engine, progress, jobs)

    async def settle(self, staged: StagedBlob, *, keep: bool) -> None:
        """Content written before the write that names it: kept or removed."""
        await self._store.stores[staged.store].settle(staged, keep=keep)

    async def discard(self, store: str, record_id: str, blob_id: str) -> None:
        """Remove stored content no row names any more (after the write that removed it)."""
        await self._store.stores[store].discard(record_id, blob_id)

    async def upload(self, record_id: str) -> Upload:
        return self._store.content.upload(record_id, await self._store.keys.key_for(record_id))

    def stream(
        self,
        info: ContentInfo,
        record_id: str,
        blob_id: str,
        store: str,
        key: bytes,
        first: bytes | None = None,
    ) -> ContentStream:
        content = self._store.stores[store]

        def reader(start: int, end: int | None) -> AsyncIterator[bytes]:
            return content.stream(record_id, blob_id, key, info.size, start, end, first)

        return ContentStream(info, reader)
