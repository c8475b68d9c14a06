"""Domain data as JSON, for the core part of sealed envelopes (store/envelope.py).

Explicit and versionless: each field by name, dates as ISO 8601, bytes as hex. A field added
later reads as its default from older rows.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

import orjson

from carnet.domain.documents import Author, DocumentEntry
from carnet.domain.ins import Ins
from carnet.domain.records import EmergencyConsents, Identity, Record, RecordState

_DATES = ("creation_time", "service_start", "service_stop", "date")
_TEXTS = (
    "unique_id",
    "entry_uuid",
    "class_code",
    "type_system",
    "type_code",
    "type_display",
    "format_system",
    "format_code",
    "content_type",
    "language",
    "facility_system",
    "facility_code",
    "setting_system",
    "setting_code",
    "title",
    "patient_system",
    "patient_value",
    "source_patient_id",
    "legal_authenticator",
    "replaces",
)


def _date(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def entry_to_json(entry: DocumentEntry) -> bytes:
    data: dict[str, Any] = {name: getattr(entry, name) for name in _TEXTS}
    for name in _DATES:
        data[name] = _date(getattr(entry, name))
    data["confidentiality"] = list(entry.confidentiality)
    data["authors"] = [[a.system, a.value, a.family, a.given] for a in entry.authors]
    data["author_has_role"] = entry.author_has_role
    data["hash_sha1"] = entry.hash_sha1.hex() if entry.hash_sha1 is not None else None
    data["size"] = entry.size
    data["events"] = [list(e) for e in entry.events]
    data["related"] = [list(r) for r in entry.related]
    return orjson.dumps({k: v for k, v in data.items() if v not in (None, [], False)})


def entry_from_json(raw: bytes) -> DocumentEntry:
    data: dict[str, Any] = orjson.loads(raw)
    entry = DocumentEntry()
    for name in _TEXTS:
        setattr(entry, name, data.get(name))
    for name in _DATES:
        value = data.get(name)
        setattr(entry, name, datetime.fromisoformat(value) if value else None)
    entry.confidentiality = list(data.get("confidentiality") or [])
    entry.authors = [Author(*a) for a in data.get("authors") or []]
    entry.author_has_role = bool(data.get("author_has_role"))
    sha1 = data.get("hash_sha1")
    entry.hash_sha1 = bytes.fromhex(sha1) if sha1 else None
    entry.size = data.get("size")
    entry.events = [(e[0], e[1]) for e in data.get("events") or []]
    entry.related = [(r[0], r[1], r[2]) for r in data.get("related") or []]
    return entry


def record_to_json(record: Record) -> bytes:
    """A record's identity traits and state, as sealed in its envelope (and in each past
    version's: the history shows each version as it was)."""
    i = record.identity
    return orjson.dumps(
        {
            "ins": [i.ins.oid, i.ins.value],
            "status": i.identity_status,
            "family": i.family,
            "given": i.given,
            "birth_date": i.birth_date,
            "gender": i.gender,
            "birth_place": i.birth_place,
            "state": record.state.value,
            "emergency": [
                record.emergency.centre15,
                record.emergency.bris_de_glace,
                record.emergency.masked,
            ],
            "treating_physician": record.treating_physician,
            "version_id": record.version_id,
            "last_updated": record.last_updated.isoformat(),
            "closed_at": _date(record.closed_at),
        }
    )


def record_from_json(raw: bytes, base: Record) -> Record:
    """``base`` (a record read from its row) as the envelope says it was."""
    data: dict[str, Any] = orjson.loads(raw)
    oid, value = data["ins"]
    identity = Identity(
        ins=Ins(oid, value),
        identity_status=data["status"],
        family=data["family"],
        given=data["given"],
        birth_date=data["birth_date"],
        gender=data["gender"],
        birth_place=data.get("birth_place"),
    )
    if "state" not in data:
        return replace(base, identity=identity)
    centre15, bris, masked = data["emergency"]
    closed = data.get("closed_at")
    return replace(
        base,
        identity=identity,
        state=RecordState(data["state"]),
        emergency=EmergencyConsents(centre15, bris, masked),
        treating_physician=data.get("treating_physician"),
        version_id=int(data["version_id"]),
        last_updated=datetime.fromisoformat(data["last_updated"]),
        closed_at=datetime.fromisoformat(closed) if closed else None,
    )
