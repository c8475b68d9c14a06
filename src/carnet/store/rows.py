"""Row ↔ domain conversions shared by the scoped service.

A record's identity traits (names, birth date, sex, birth place) are not columns: they live in
the Patient resource, sealed with the record's key (see ``ScopeBase.opened``), so that nothing
of them remains readable once the record's key is destroyed. Only the INS (the key of the
record) and its qualification status are stored in clear.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
from sqlalchemy import Row

from carnet.access.policy import RecordState
from carnet.domain.ins import Ins
from carnet.domain.records import EmergencyConsents, Identity, Record
from carnet.store.crypto import is_sealed

_INSEE = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-address-insee-code"
_BIRTH_PLACE = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"


def record_from_row(row: Row[Any]) -> Record:
    """The record of a row; while its resource is sealed, its identity traits are blank."""
    m = row._mapping
    record = Record(
        record_id=m["record_id"],
        identity=Identity(
            ins=Ins(m["ins_oid"], m["ins_value"]),
            identity_status=m["identity_status"],
            family="",
            given="",
            birth_date="",
            gender="unknown",
            birth_place=None,
        ),
        state=RecordState(m["state"]),
        consent_by=m["consent_by"],
        consent_by_kind=m["consent_by_kind"],
        consent_structure=m["consent_structure"],
        consent_at=m["consent_at"],
        emergency=EmergencyConsents(
            centre15=m["emergency_centre15"],
            bris_de_glace=m["emergency_bris_de_glace"],
            masked=m["emergency_masked"],
        ),
        version_id=m["version_id"],
        created_at=m["created_at"],
        last_updated=m["last_updated"],
        closed_at=m["closed_at"],
        resource=bytes(m["resource"]),
        treating_physician=m["treating_physician"],
    )
    if not is_sealed(record.resource):
        return with_identity(record, record.resource)
    return record


def with_identity(record: Record, plain: bytes) -> Record:
    """``record`` with its decrypted Patient resource and the identity traits read from it."""
    try:
        data = orjson.loads(plain)
    except orjson.JSONDecodeError:
        return replace(record, resource=plain)
    names = data.get("name") or []
    name = next(
        (n for n in names if isinstance(n, dict) and n.get("use") == "official"),
        names[0] if names else {},
    )
    family = name.get("family") if isinstance(name, dict) else None
    given = name.get("given") if isinstance(name, dict) else None
    birth_place = None
    for ext in data.get("extension") or []:
        if isinstance(ext, dict) and ext.get("url") == _BIRTH_PLACE:
            addr = ext.get("valueAddress") or {}
            for sub in addr.get("extension") or []:
                if isinstance(sub, dict) and sub.get("url") == _INSEE:
                    birth_place = (sub.get("valueCoding") or {}).get("code")
            birth_place = birth_place or addr.get("district")
    identity = replace(
        record.identity,
        family=str(family or ""),
        given=" ".join(str(g) for g in given) if isinstance(given, list) else "",
        birth_date=str(data.get("birthDate") or ""),
        gender=str(data.get("gender") or "unknown"),
        birth_place=str(birth_place) if birth_place else None,
    )
    return replace(record, identity=identity, resource=plain)


def record_values(record: Record, sealed_resource: bytes) -> dict[str, object]:
    """The columns of a record; its resource as sealed by the caller."""
    i = record.identity
    return {
        "record_id": record.record_id,
        "ins_oid": i.ins.oid,
        "ins_value": i.ins.value,
        "identity_status": i.identity_status,
        "state": record.state.value,
        "consent_by": record.consent_by,
        "consent_by_kind": record.consent_by_kind,
        "consent_structure": record.consent_structure,
        "consent_at": record.consent_at,
        "emergency_centre15": record.emergency.centre15,
        "emergency_bris_de_glace": record.emergency.bris_de_glace,
        "emergency_masked": record.emergency.masked,
        "version_id": record.version_id,
        "created_at": record.created_at,
        "last_updated": record.last_updated,
        "closed_at": record.closed_at,
        "resource": sealed_resource,
        "treating_physician": record.treating_physician,
    }
