"""The plaintext of a sealed record or document: the core's data and the interface's form of it.

::

    version | len(core) (4 bytes, big-endian) | core (JSON)
         | len(media type) (1 byte) | media type | form

``version`` is 0x01, or 0x02 when the core completed the domain data beyond what the form says
(metadata read from a document's CDA header). ``core`` is the domain data the core needs (a
document entry, a patient's identity traits and state);
``form`` is an interface's own representation (the client's FHIR resource), opaque to the core,
absent when the media type is empty. Both are sealed together with the record's key
(:func:`carnet.store.crypto.seal`), so one decryption serves a read.

Rows written before this format hold a FHIR resource as the whole plaintext: :func:`unpack`
reads them as a form with no core data.
"""

from __future__ import annotations

import struct

from carnet.domain.content import Representation

VERSION = b"\x01"
COMPLETED = b"\x02"
_LEN = struct.Struct(">I")
LEGACY_MEDIA_TYPE = "application/fhir+json"


def pack(core: bytes, form: Representation | None, *, completed: bool = False) -> bytes:
    media = form.media_type.encode("ascii") if form is not None else b""
    if len(media) > 255:
        raise ValueError("media type too long")
    parts = [COMPLETED if completed else VERSION, _LEN.pack(len(core)), core]
    parts += [bytes((len(media),)), media]
    if form is not None:
        parts.append(form.data)
    return b"".join(parts)


def completed(plain: bytes) -> bool:
    return plain.startswith(COMPLETED)


def unpack(plain: bytes) -> tuple[bytes | None, Representation | None]:
    """(core data, the interface's form) of a plaintext written by :func:`pack` or before it."""
    if not plain.startswith((VERSION, COMPLETED)):
        return None, Representation(LEGACY_MEDIA_TYPE, plain) if plain else None
    (size,) = _LEN.unpack_from(plain, 1)
    start = 1 + _LEN.size
    core = plain[start : start + size]
    pos = start + size
    media_len = plain[pos]
    media = plain[pos + 1 : pos + 1 + media_len].decode("ascii")
    form = Representation(media, plain[pos + 1 + media_len :]) if media_len else None
    return core, form
