"""Encryption at rest: chunked AES-256-GCM, key wrapping, streaming, ranges, tampering."""

from __future__ import annotations

import hashlib
import os
import stat
import tracemalloc
from pathlib import Path

import pytest

from carnet.domain.errors import ConfigurationError
from carnet.store.content import FileContentStore
from carnet.store.crypto import CHUNK_SIZE, DecryptionError, MasterKey, load_master_key


def test_master_key_file_is_created_0600(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    key = load_master_key(None, path)
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_master_key(None, path) == key


def test_master_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    load_master_key(None, path)
    path.chmod(0o644)
    with pytest.raises(ConfigurationError):
        load_master_key(None, path)


def test_wrapped_key_is_bound_to_its_record() -> None:
    master = MasterKey(os.urandom(32))
    key, wrapped = master.new_record_key("record-a")
    assert master.unwrap("record-a", wrapped) == key
    with pytest.raises(DecryptionError):
        master.unwrap("record-b", wrapped)
    with pytest.raises(DecryptionError):
        MasterKey(os.urandom(32)).unwrap("record-a", wrapped)


@pytest.mark.parametrize(
    "size", [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE + 17]
)
def test_round_trip_and_ranges(tmp_path: Path, size: int) -> None:
    store = FileContentStore(tmp_path, fsync=False)
    key = os.urandom(32)
    data = os.urandom(size)
    info, writer = store.put("r" * 32, key, data)
    writer.commit()
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert store.read_all("r" * 32, info.blob_id, key, size) == data
    for start, end in [(0, 10), (CHUNK_SIZE - 5, CHUNK_SIZE + 5), (size // 2, size)]:
        got = b"".join(store.read("r" * 32, info.blob_id, key, size, start, end))
        assert got == data[start:end]
    # the file holds no plaintext
    raw = store.blob_path("r" * 32, info.blob_id).read_bytes()
    if size >= 64:
        assert data[:64] not in raw


def test_tampering_and_truncation_are_detected(tmp_path: Path) -> None:
    store = FileContentStore(tmp_path, fsync=False)
    key = os.urandom(32)
    data = os.urandom(2 * CHUNK_SIZE + 10)
    info, writer = store.put("t" * 32, key, data)
    writer.commit()
    path = store.blob_path("t" * 32, info.blob_id)
    raw = bytearray(path.read_bytes())
    raw[100] ^= 1
    path.write_bytes(bytes(raw))
    with pytest.raises(DecryptionError):
        store.read_all("t" * 32, info.blob_id, key, len(data))
    info2, writer2 = store.put("t" * 32, key, data)
    writer2.commit()
    path2 = store.blob_path("t" * 32, info2.blob_id)
    path2.write_bytes(path2.read_bytes()[: -(CHUNK_SIZE // 2)])
    with pytest.raises((DecryptionError, ValueError)):
        store.read_all("t" * 32, info2.blob_id, key, len(data))


def test_streaming_20_mb_never_holds_it_whole(tmp_path: Path) -> None:
    """A 20 MB content written and read chunk by chunk: peak Python memory stays a few MB."""
    store = FileContentStore(tmp_path, fsync=False)
    key = os.urandom(32)
    block = os.urandom(256 * 1024)
    total = 20 * 1024 * 1024
    digest = hashlib.sha256()
    tracemalloc.start()
    try:
        writer = store.writer("s" * 32, key)
        for _ in range(total // len(block)):
            writer.write(block)
            digest.update(block)
        info = writer.finish()
        writer.commit()
        read_digest = hashlib.sha256()
        for chunk in store.read("s" * 32, info.blob_id, key, info.size):
            read_digest.update(chunk)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.size == total
    assert read_digest.hexdigest() == digest.hexdigest() == info.sha256
    assert peak < 6 * 1024 * 1024, f"peak {peak} bytes"
