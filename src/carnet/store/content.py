"""Content store: encrypted blobs on the file system (S3-compatible stores plug in behind the same
interface, see docs/architecture.md).

A blob is written as a stream into a temporary file (hashing the plaintext with SHA-256 and SHA-1
on the way, the latter because FHIR R4 ``Attachment.hash`` is SHA-1), then moved into place under
``<content>/<record id>/<blob id>``. Blob ids are random, so file names reveal nothing of the
content. Nothing but ciphertext ever touches the disk.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from carnet.store.crypto import HEADER, ChunkDecryptor, ChunkEncryptor


@dataclass(frozen=True, slots=True)
class BlobInfo:
    blob_id: str
    sha256: str
    sha1: bytes
    size: int


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


@contextlib.contextmanager
def aborting(writer: BlobWriter) -> Iterator[BlobWriter]:
    try:
        yield writer
    except BaseException:
        writer.abort()
        raise
