"""Request bodies: a fixed 50 KB pseudo-PDF and ITI-65 bundle templates.

The bundle comes from the test suite's factories (``tests.factories``) so that the benchmark sends
exactly what the tests accept. It is serialised once per patient with placeholders; each request
only substitutes its unique identifiers into the bytes, which keeps the load generator cheap
(it shares the machine's cores with the server and the database).
"""

from __future__ import annotations

import base64
import hashlib
import random
import re
import uuid
from dataclasses import dataclass

import orjson

from tests.factories import TEST_OID, bundle, docref, patient_resource, random_nir

PAYLOAD_SIZE = 50 * 1024
PDF_TAIL = b"\nendstream\n%%EOF\n"
NONCE_LEN = 24  # bytes of the payload that differ per request (see UniqueContent)
_PH = re.compile(rb"@@([A-Z0-9_]+)@@")


def pseudo_pdf(size: int = PAYLOAD_SIZE, seed: int = 20260612) -> bytes:
    """``size`` bytes that start like a PDF and end with ``%%EOF``; incompressible filler."""
    head = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\nstream\n"
    tail = PDF_TAIL
    filler = random.Random(seed).randbytes(size - len(head) - len(tail))
    out = head + filler + tail
    assert len(out) == size
    return out


@dataclass(frozen=True)
class Template:
    """Bytes split on ``@@NAME@@`` placeholders: ``parts[0::2]`` literals, ``parts[1::2]`` names."""

    parts: tuple[bytes, ...]

    @classmethod
    def of(cls, data: bytes) -> Template:
        return cls(tuple(_PH.split(data)))

    def render(self, values: dict[str, bytes]) -> bytes:
        parts = self.parts
        out = list(parts)
        for i in range(1, len(parts), 2):
            out[i] = values[parts[i].decode()]
        return b"".join(out)


class UniqueContent:
    """Per-request variants of the fixed payload, cheap to make.

    The content store deduplicates identical content within a record (same SHA-256): with one
    fixed payload, every publish after a patient's first would take the "already stored" path.
    So the ``NONCE_LEN`` bytes just before the PDF trailer carry the request number. The bytes
    before them are a multiple of 3 long, so their base64 text never changes, and their SHA-1
    state is computed once and copied. Only a 56-character base64 tail and the 28-character
    ``attachment.hash`` change per request.
    """

    def __init__(self, payload: bytes) -> None:
        self.split = len(payload) - len(PDF_TAIL) - NONCE_LEN
        if self.split % 3 or not payload.endswith(PDF_TAIL):
            raise ValueError("payload size does not allow a base64-aligned nonce")
        self.payload = payload
        self.prefix_sha1 = hashlib.sha1(payload[: self.split])
        self.b64_tail = base64.b64encode(payload[self.split :])
        self.sha1_b64 = base64.b64encode(hashlib.sha1(payload).digest())

    def variant(self, nonce: bytes) -> tuple[bytes, bytes]:
        """(base64 of the varying tail, base64 SHA-1 of the whole content)."""
        if len(nonce) != NONCE_LEN:
            raise ValueError(f"the nonce must be {NONCE_LEN} bytes")
        tail = nonce + PDF_TAIL
        h = self.prefix_sha1.copy()
        h.update(tail)
        return base64.b64encode(tail), base64.b64encode(h.digest())

    def content(self, nonce: bytes) -> bytes:
        return self.payload[: self.split] + nonce + PDF_TAIL


def bundle_template(ins: str, payload: bytes, unique: UniqueContent | None = None) -> Template:
    """An ITI-65 bundle (List + DocumentReference + Binary) for one patient, with placeholders
    DOC_UID (masterIdentifier), SET_UID (submission set identifier), U0..U2 (fullUrls) and,
    with ``unique``, DATA_TAIL and SHA1 (the varying end of the content and its hash)."""
    dr = docref(ins, unique_id="@@DOC_UID@@", content=payload)
    b = bundle(ins, [(dr, payload, "application/pdf")], set_unique_id="@@SET_UID@@")
    raw = orjson.dumps(b)
    for i, entry in enumerate(b["entry"]):
        full_url = entry["fullUrl"].split("urn:uuid:", 1)[1].encode()
        raw = raw.replace(full_url, f"@@U{i}@@".encode())
    if unique is not None:
        whole = base64.b64encode(payload)
        if raw.count(whole) != 1 or raw.count(unique.sha1_b64) != 1:
            raise ValueError("unexpected bundle layout: content or hash not found once")
        raw = raw.replace(whole, whole[: -len(unique.b64_tail)] + b"@@DATA_TAIL@@")
        raw = raw.replace(unique.sha1_b64, b"@@SHA1@@")
    return Template.of(raw)


class BundleFactory:
    """Unique ITI-65 bundles for a set of patients, round-robin. With ``unique_content`` (the
    default) each document's content differs too (see :class:`UniqueContent`)."""

    def __init__(
        self, inses: list[str], payload: bytes, run_id: int, *, unique_content: bool = True
    ) -> None:
        self.unique = UniqueContent(payload) if unique_content else None
        self.templates = [bundle_template(ins, payload, self.unique) for ins in inses]
        self.run_id = run_id

    def nonce(self, n: int) -> bytes:
        return f"{self.run_id % 10**9:09d}{n:015d}".encode()

    def make(self, n: int) -> bytes:
        t = self.templates[n % len(self.templates)]
        values = {
            "DOC_UID": f"urn:oid:1.2.250.1.999.{self.run_id}.1.{n}".encode(),
            "SET_UID": f"urn:oid:1.2.250.1.999.{self.run_id}.2.{n}".encode(),
            "U0": str(uuid.uuid4()).encode(),
            "U1": str(uuid.uuid4()).encode(),
            "U2": str(uuid.uuid4()).encode(),
        }
        if self.unique is not None:
            values["DATA_TAIL"], values["SHA1"] = self.unique.variant(self.nonce(n))
        return t.render(values)


def unique_inses(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    seen: dict[str, None] = {}
    while len(seen) < count:
        seen[random_nir(rng)] = None
    return list(seen)


def patient_body(ins: str) -> bytes:
    return orjson.dumps(patient_resource(ins))


__all__ = [
    "PAYLOAD_SIZE",
    "TEST_OID",
    "BundleFactory",
    "Template",
    "UniqueContent",
    "bundle_template",
    "patient_body",
    "pseudo_pdf",
    "unique_inses",
]
