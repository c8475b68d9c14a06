"""Encryption at rest (architecture.md, "content stored once … encrypted with the record's key").

- Each record has its own 256-bit key. It is stored only *wrapped* (AES-256-GCM) by the master
  key, with the record id as associated data so a wrapped key cannot be moved to another record.
- The master key comes from CARNET_MASTER_KEY (base64 or hex of 32 bytes) or from a key file
  created with mode 0600 on first start.
- Content is encrypted in chunks (AES-256-GCM, 1 MiB plaintext per chunk) so that it can be
  written and read as a stream and a byte range can be served by decrypting only the chunks it
  touches. Each chunk's nonce is an 8-byte random prefix + the chunk counter; the associated data
  binds the record, the blob, the chunk index and whether it is the last chunk (no truncation or
  reordering goes unseen).
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import struct
from collections import OrderedDict
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from carnet.domain.errors import ConfigurationError

KEY_BYTES = 32
CHUNK_SIZE = 1024 * 1024
TAG_BYTES = 16
MAGIC = b"CRNT1"
HEADER = struct.Struct(">5sI8s")  # magic, chunk size, nonce prefix
WRAP_VERSION = b"\x01"


class DecryptionError(Exception):
    """Content or key failed authentication: tampered, truncated or wrong key."""


def _decode_key(text: str) -> bytes:
    text = text.strip()
    for decoder in (bytes.fromhex, base64.b64decode, base64.urlsafe_b64decode):
        try:
            raw = decoder(text)
        except (ValueError, binascii.Error):
            continue
        if len(raw) == KEY_BYTES:
            return raw
    raise ConfigurationError("the master key must be 32 bytes given as hex or base64")


def load_master_key(configured: str | None, key_file: Path) -> bytes:
    """The master key: from configuration, else from ``key_file`` (created 0600 if missing)."""
    if configured:
        return _decode_key(configured)
    if key_file.exists():
        mode = key_file.stat().st_mode & 0o777
        if mode & 0o077:
            raise ConfigurationError(
                f"{key_file} is readable by others (mode {mode:o}); chmod 600 it"
            )
        return _decode_key(key_file.read_text())
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(KEY_BYTES)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(base64.b64encode(key).decode() + "\n")
    return key


class MasterKey:
    """Wraps and unwraps record keys."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ConfigurationError("master key must be 32 bytes")
        self._aead = AESGCM(key)

    def new_record_key(self, record_id: str) -> tuple[bytes, bytes]:
        """A fresh record key and its wrapped form."""
        key = AESGCM.generate_key(bit_length=256)
        return key, self.wrap(record_id, key)

    def wrap(self, record_id: str, key: bytes) -> bytes:
        nonce = secrets.token_bytes(12)
        return WRAP_VERSION + nonce + self._aead.encrypt(nonce, key, record_id.encode())

    def unwrap(self, record_id: str, wrapped: bytes) -> bytes:
        if not wrapped or wrapped[:1] != WRAP_VERSION:
            raise DecryptionError("unknown wrapped-key format")
        try:
            return self._aead.decrypt(wrapped[1:13], wrapped[13:], record_id.encode())
        except InvalidTag:
            raise DecryptionError("record key does not unwrap with this master key") from None


def _aad(blob_id: str, index: int, last: bool) -> bytes:
    return blob_id.encode() + struct.pack(">QB", index, 1 if last else 0)


class ChunkEncryptor:
    """Encrypts a stream chunk by chunk: plaintext in :meth:`update`, the end in :meth:`final`."""

    def __init__(self, key: bytes, blob_id: str, chunk_size: int = CHUNK_SIZE) -> None:
        self._aead = AESGCM(key)
        self._blob_id = blob_id
        self._chunk_size = chunk_size
        self._prefix = secrets.token_bytes(8)
        self._index = 0
        self._pending = bytearray()

    def header(self) -> bytes:
        return HEADER.pack(MAGIC, self._chunk_size, self._prefix)

    @property
    def chunk_size_sealed(self) -> int:
        """The size of a sealed chunk (all but the last)."""
        return self._chunk_size + TAG_BYTES

    def _seal(self, chunk: bytes, last: bool) -> bytes:
        nonce = self._prefix + struct.pack(">I", self._index)
        out = self._aead.encrypt(nonce, chunk, _aad(self._blob_id, self._index, last))
        self._index += 1
        return out

    def update(self, data: bytes) -> bytes:
        self._pending += data
        out = bytearray()
        # keep at least one byte pending so that the last chunk is sealed as last
        while len(self._pending) > self._chunk_size:
            chunk = bytes(self._pending[: self._chunk_size])
            del self._pending[: self._chunk_size]
            out += self._seal(chunk, last=False)
        return bytes(out)

    def final(self) -> bytes:
        chunk = bytes(self._pending)
        self._pending.clear()
        return self._seal(chunk, last=True)


def encrypted_size(plain_size: int, chunk_size: int = CHUNK_SIZE) -> int:
    chunks = max(1, -(-plain_size // chunk_size))
    return HEADER.size + plain_size + chunks * TAG_BYTES


class ChunkDecryptor:
    """Random-access decryption of a blob written by :class:`ChunkEncryptor`."""

    def __init__(self, key: bytes, blob_id: str, header: bytes, plain_size: int) -> None:
        magic, chunk_size, prefix = HEADER.unpack(header)
        if magic != MAGIC:
            raise DecryptionError("not a carnet encrypted blob")
        self._aead = AESGCM(key)
        self._blob_id = blob_id
        self.chunk_size: int = chunk_size
        self._prefix: bytes = prefix
        self.plain_size = plain_size
        self.chunk_count = max(1, -(-plain_size // chunk_size))

    def chunk_offset(self, index: int) -> int:
        return HEADER.size + index * (self.chunk_size + TAG_BYTES)

    def chunk_cipher_len(self, index: int) -> int:
        if index < self.chunk_count - 1:
            return self.chunk_size + TAG_BYTES
        return self.plain_size - index * self.chunk_size + TAG_BYTES

    def open_chunk(self, index: int, sealed: bytes) -> bytes:
        nonce = self._prefix + struct.pack(">I", index)
        last = index == self.chunk_count - 1
        try:
            return self._aead.decrypt(nonce, sealed, _aad(self._blob_id, index, last))
        except InvalidTag:
            raise DecryptionError(f"chunk {index} failed authentication") from None


SEALED = b"\xa5S1"  # never the first bytes of JSON


_AEADS: OrderedDict[bytes, AESGCM] = OrderedDict()
AEADS_KEPT = 8192


def _aead(key: bytes) -> AESGCM:
    """One AES-GCM context per record key in use (its key schedule computed once)."""
    aead = _AEADS.get(key)
    if aead is None:
        aead = _AEADS[key] = AESGCM(key)
        if len(_AEADS) > AEADS_KEPT:
            _AEADS.popitem(last=False)
    return aead


def forget(key: bytes) -> None:
    """Drop a destroyed record's key from memory."""
    _AEADS.pop(key, None)


def seal(key: bytes, aad: bytes, plaintext: bytes) -> bytes:
    """Encrypt a small value (a stored resource) with a record key: AES-256-GCM, the record id as
    associated data, so that a sealed value cannot be moved to another record."""
    nonce = secrets.token_bytes(12)
    return SEALED + nonce + _aead(key).encrypt(nonce, plaintext, aad)


def unseal(key: bytes, aad: bytes, data: bytes) -> bytes:
    if not data.startswith(SEALED):
        return data  # stored in clear: tombstones, and rows written before sealing existed
    try:
        return _aead(key).decrypt(data[3:15], data[15:], aad)
    except InvalidTag:
        raise DecryptionError("a sealed value failed authentication") from None


def is_sealed(data: bytes) -> bool:
    return data.startswith(SEALED)
