"""Content store: encrypted blobs on the file system (the ``file`` content store; the ``db`` one
is store/content_db.py; S3-compatible stores plug in behind the same interface).

A blob is written as a stream into a temporary file (hashing the plaintext with SHA-256 and SHA-1
on the way, the latter because FHIR R4 ``Attachment.hash`` is SHA-1), then moved into place under
``<content>/<record id>/<blob id>``. Blob ids are random, so file names reveal nothing of the
content. Nothing but ciphertext ever touches the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from carnet.store.crypto import HEADER, ChunkDecryptor, ChunkEncryptor


@dataclass(frozen=True, slots=True)
class BlobInfo:
    blob_id: str
    sha256: str
    sha1: bytes
    size: int


@dataclass(slots=True)
class StagedBlob:
    """Content encrypted and ready, before the write that names it commits. ``settle`` it after:
    kept (moved into place) if the write committed and named it, discarded otherwise."""

    store: str  # file | db
    record_id: str
    info: BlobInfo
    chunks: list[bytes] = field(default_factory=list)  # db: the rows to write with the metadata
    writer: BlobWriter | None = None  # file: the temporary file
    uploaded: bool = False  # db: the rows were written as they streamed in


class BlobWriter:
    """Streams plaintext in, ciphertext out to a temporary file."""

    def __init__(self, store: FileContentStore, record_id: str, key: bytes) -> None:
        self.record_id = record_id
        self.blob_id = uuid.uuid4().hex
        self._store = store
        self._enc = ChunkEncryptor(key, self.blob_id)
        self._sha256 = hashlib.sha256()
        self._sha1 = hashlib.sha1()  # noqa: S324 - FHIR R4 Attachment.hash is SHA-1
        self._size = 0
        store.tmp_dir.mkdir(parents=True, exist_ok=True)
        self._tmp = store.tmp_dir / f"{self.blob_id}.part"
        self._fh = open(self._tmp, "wb")  # noqa: SIM115 - closed in finish/abort
        self._fh.write(self._enc.header())
        self._done = False

    @property
    def size(self) -> int:
        return self._size

    def write(self, data: bytes) -> None:
        self._sha256.update(data)
        self._sha1.update(data)
        self._size += len(data)
        out = self._enc.update(data)
        if out:
            self._fh.write(out)

    def finish(self) -> BlobInfo:
        """Seal the last chunk and close the temporary file; :meth:`commit` moves it in place."""
        self._fh.write(self._enc.final())
        self._fh.flush()
        if self._store.fsync:
            os.fsync(self._fh.fileno())
        self._fh.close()
        return BlobInfo(self.blob_id, self._sha256.hexdigest(), self._sha1.digest(), self._size)

    def commit(self) -> None:
        target = self._store.blob_path(self.record_id, self.blob_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._tmp, target)
        self._done = True

    def abort(self) -> None:
        if not self._fh.closed:
            self._fh.close()
        if not self._done:
            self._tmp.unlink(missing_ok=True)
        self._done = True


class FileContentStore:
    """Blobs under a folder. Thread-safe: each blob is its own file."""

    name = "file"

    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        self.root = root
        self.tmp_dir = root / ".tmp"
        self.fsync = fsync
        root.mkdir(parents=True, exist_ok=True)

    def blob_path(self, record_id: str, blob_id: str) -> Path:
        return self.root / record_id[:2] / record_id / blob_id

    def writer(self, record_id: str, key: bytes) -> BlobWriter:
        return BlobWriter(self, record_id, key)

    def put(self, record_id: str, key: bytes, data: bytes) -> tuple[BlobInfo, BlobWriter]:
        """Write a whole (small) blob; the caller commits or aborts the returned writer."""
        w = self.writer(record_id, key)
        try:
            w.write(data)
            return w.finish(), w
        except BaseException:
            w.abort()
            raise

    def delete(self, record_id: str, blob_id: str) -> None:
        self.blob_path(record_id, blob_id).unlink(missing_ok=True)

    def destroy_record(self, record_id: str) -> None:
        shutil.rmtree(self.root / record_id[:2] / record_id, ignore_errors=True)

    def read(
        self,
        record_id: str,
        blob_id: str,
        key: bytes,
        size: int,
        start: int = 0,
        end: int | None = None,
    ) -> Iterator[bytes]:
        """Plaintext bytes ``[start, end)`` of a blob, decrypting only the chunks needed."""
        stop = size if end is None else min(end, size)
        path = self.blob_path(record_id, blob_id)
        with open(path, "rb") as fh:
            dec = ChunkDecryptor(key, blob_id, fh.read(HEADER.size), size)
            if stop <= start:
                # still authenticate an empty blob's only chunk
                if size == 0:
                    fh.seek(dec.chunk_offset(0))
                    dec.open_chunk(0, fh.read(dec.chunk_cipher_len(0)))
                return
            first = start // dec.chunk_size
            last = (stop - 1) // dec.chunk_size
            for index in range(first, last + 1):
                fh.seek(dec.chunk_offset(index))
                plain = dec.open_chunk(index, fh.read(dec.chunk_cipher_len(index)))
                base = index * dec.chunk_size
                lo = max(start - base, 0)
                hi = min(stop - base, len(plain))
                yield plain[lo:hi] if (lo, hi) != (0, len(plain)) else plain

    def read_all(self, record_id: str, blob_id: str, key: bytes, size: int) -> bytes:
        return b"".join(self.read(record_id, blob_id, key, size))

    # -- the content-store interface the core uses (shared with store/content_db.py) ----------
    async def stage(
        self, record_id: str, key: bytes, data: bytes, sha256: str | None = None
    ) -> StagedBlob:
        # in a thread: the write ends with an fsync, which must not stall the event loop
        info, writer = await asyncio.to_thread(self.put, record_id, key, data)
        return StagedBlob(self.name, record_id, info, writer=writer)

    def rows(self, staged: StagedBlob) -> list[dict[str, object]]:
        return []

    async def settle(self, staged: StagedBlob, *, keep: bool) -> None:
        if staged.writer is None:
            return
        if keep:
            staged.writer.commit()
        else:
            staged.writer.abort()

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
        reader = self.read(record_id, blob_id, key, size, start, end)
        while True:
            chunk = await asyncio.to_thread(next, reader, None)
            if chunk is None:
                return
            yield chunk

    def upload(self, record_id: str, key: bytes) -> FileUpload:
        return FileUpload(self.writer(record_id, key), record_id, self.name)

    async def discard(self, record_id: str, blob_id: str) -> None:
        self.delete(record_id, blob_id)

    async def destroy(self, record_id: str) -> None:
        self.destroy_record(record_id)


LARGE = 1024 * 1024


class Upload(Protocol):
    @property
    def size(self) -> int: ...

    async def write(self, data: bytes) -> None: ...

    async def finish(self) -> StagedBlob: ...

    async def abort(self) -> None: ...


class ContentStore(Protocol):
    """What the core needs of a content store (file here, db in store/content_db.py)."""

    name: str

    async def stage(
        self, record_id: str, key: bytes, data: bytes, sha256: str | None = None
    ) -> StagedBlob: ...

    def rows(self, staged: StagedBlob) -> list[dict[str, object]]: ...

    async def settle(self, staged: StagedBlob, *, keep: bool) -> None: ...

    def stream(
        self,
        record_id: str,
        blob_id: str,
        key: bytes,
        size: int,
        start: int = 0,
        end: int | None = None,
        first: bytes | None = None,
    ) -> AsyncIterator[bytes]: ...

    def upload(self, record_id: str, key: bytes) -> Upload: ...

    async def discard(self, record_id: str, blob_id: str) -> None: ...

    async def destroy(self, record_id: str) -> None: ...


class FileUpload:
    def __init__(self, writer: BlobWriter, record_id: str, store: str) -> None:
        self.writer = writer
        self.record_id = record_id
        self.store = store

    @property
    def size(self) -> int:
        return self.writer.size

    async def write(self, data: bytes) -> None:
        if len(data) > LARGE:
            await asyncio.to_thread(self.writer.write, data)
        else:
            self.writer.write(data)

    async def finish(self) -> StagedBlob:
        info = await asyncio.to_thread(self.writer.finish)
        return StagedBlob(self.store, self.record_id, info, writer=self.writer)

    async def abort(self) -> None:
        self.writer.abort()


@contextlib.contextmanager
def aborting(writer: BlobWriter) -> Iterator[BlobWriter]:
    try:
        yield writer
    except BaseException:
        writer.abort()
        raise
