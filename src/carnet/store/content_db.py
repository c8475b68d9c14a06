"""Content kept in the database (the ``db`` content store): the same encrypted chunks as the file
store (store/crypto.py), one row of ``content_chunks`` per 1 MiB chunk, the first row starting
with the blob's header. A blob's rows are written in the same statement as its metadata, so
that a publish is one round trip and nothing half-stored survives a crash.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator

from sqlalchemy import and_, delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from carnet.store.content import BlobInfo, StagedBlob
from carnet.store.crypto import HEADER, ChunkDecryptor, ChunkEncryptor
from carnet.store.tables import content_chunks

NAME = "db"


def encrypt_chunks(
    key: bytes, blob_id: str, data: bytes, sha256: str | None = None
) -> tuple[list[bytes], BlobInfo]:
    """The encrypted chunks of ``data`` (the header in front of the first) and its facts."""
    enc = ChunkEncryptor(key, blob_id)
    body = enc.update(data) + enc.final()
    size = enc.chunk_size_sealed
    chunks = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
    chunks[0] = enc.header() + chunks[0]
    info = BlobInfo(
        blob_id,
        sha256 or hashlib.sha256(data).hexdigest(),
        hashlib.sha1(data).digest(),  # noqa: S324 - FHIR R4 Attachment.hash is SHA-1
        len(data),
    )
    return chunks, info


class DbContentStore:
    name = NAME

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def stage(
        self, record_id: str, key: bytes, data: bytes, sha256: str | None = None
    ) -> StagedBlob:
        blob_id = uuid.uuid4().hex
        chunks, info = encrypt_chunks(key, blob_id, data, sha256)
        return StagedBlob(NAME, record_id, info, chunks=chunks)

    def rows(self, staged: StagedBlob) -> list[dict[str, object]]:
        return [
            {
                "record_id": staged.record_id,
                "blob_id": staged.info.blob_id,
                "chunk_no": n,
                "data": chunk,
            }
            for n, chunk in enumerate(staged.chunks)
        ]

    async def settle(self, staged: StagedBlob, *, keep: bool) -> None:
        """Staged rows were part of the write (or not written); streamed ones were written
        as they came, and go if the write that would name them did not."""
        if staged.uploaded and not keep:
            await self.discard(staged.record_id, staged.info.blob_id)

    async def stream(
        self,
        record_id: str,
        blob_id: str,
        key: bytes,
        size: int,
        start: int = 0,
        end: int | None = None,
        first: bytes | None = None,
    ) -> AsyncIterator[bytes]:
        """Plaintext bytes ``[start, end)``, decrypting only the chunks they touch. ``first``:
        the first row's data when the caller fetched it already."""
        stop = size if end is None else min(end, size)
        if first is None:
            first = await self._chunk(record_id, blob_id, 0)
        dec = ChunkDecryptor(key, blob_id, first[: HEADER.size], size)
        if stop <= start:
            if size == 0:
                dec.open_chunk(0, first[HEADER.size :])
            return
        for index in range(start // dec.chunk_size, (stop - 1) // dec.chunk_size + 1):
            sealed = (
                first[HEADER.size :] if index == 0 else await self._chunk(record_id, blob_id, index)
            )
            plain = dec.open_chunk(index, sealed)
            base = index * dec.chunk_size
            lo, hi = max(start - base, 0), min(stop - base, len(plain))
            yield plain[lo:hi] if (lo, hi) != (0, len(plain)) else plain

    async def _chunk(self, record_id: str, blob_id: str, index: int) -> bytes:
        c = content_chunks.c
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(c.data).where(
                        and_(c.record_id == record_id, c.blob_id == blob_id, c.chunk_no == index)
                    )
                )
            ).first()
        if row is None:
            raise FileNotFoundError(f"content chunk {index} of blob {blob_id} is missing")
        return bytes(row[0])

    def upload(self, record_id: str, key: bytes) -> DbUpload:
        return DbUpload(self, record_id, key)

    async def discard(self, record_id: str, blob_id: str) -> None:
        c = content_chunks.c
        async with self.engine.begin() as conn:
            await conn.execute(
                delete(content_chunks).where(c.record_id == record_id, c.blob_id == blob_id)
            )

    async def destroy(self, record_id: str) -> None:
        """The destroying write deleted the rows already (they are a patient table)."""


class DbUpload:
    """A streamed upload: each chunk is written as soon as it is sealed, so memory stays flat;
    :meth:`abort` removes what was written."""

    def __init__(self, store: DbContentStore, record_id: str, key: bytes) -> None:
        self.store = store
        self.record_id = record_id
        self.blob_id = uuid.uuid4().hex
        self._enc = ChunkEncryptor(key, self.blob_id)
        self._sha256 = hashlib.sha256()
        self._sha1 = hashlib.sha1()  # noqa: S324 - FHIR R4 Attachment.hash is SHA-1
        self.size = 0
        self._pending = bytearray(self._enc.header())
        self._next = 0
        self._written = False

    async def write(self, data: bytes) -> None:
        self._sha256.update(data)
        self._sha1.update(data)
        self.size += len(data)
        self._pending += self._enc.update(data)
        await self._flush(final=False)

    async def _flush(self, *, final: bool) -> None:
        size = self._enc.chunk_size_sealed + (HEADER.size if self._next == 0 else 0)
        rows = []
        while len(self._pending) >= size or (final and self._pending):
            take = len(self._pending) if final and len(self._pending) < size else size
            rows.append(
                {
                    "record_id": self.record_id,
                    "blob_id": self.blob_id,
                    "chunk_no": self._next,
                    "data": bytes(self._pending[:take]),
                }
            )
            del self._pending[:take]
            self._next += 1
            size = self._enc.chunk_size_sealed
        if rows:
            self._written = True
            async with self.store.engine.begin() as conn:
                await conn.execute(content_chunks.insert(), rows)

    async def finish(self) -> StagedBlob:
        self._pending += self._enc.final()
        await self._flush(final=True)
        info = BlobInfo(self.blob_id, self._sha256.hexdigest(), self._sha1.digest(), self.size)
        return StagedBlob(NAME, self.record_id, info, chunks=[], uploaded=True)

    async def abort(self) -> None:
        if self._written:
            await self.store.discard(self.record_id, self.blob_id)
