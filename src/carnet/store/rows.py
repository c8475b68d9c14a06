"""Row ↔ domain conversions shared by the scoped service."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row

from carnet.access.policy import RecordState
from carnet.domain.ins import Ins
from carnet.domain.records import EmergencyConsents, Identity, Record


def record_from_row(row: Row[Any]) -> Record:
    m = row._mapping
    return Record(
        record_id=m["record_id"],
        identity=Identity(
            ins=Ins(m["ins_oid"], m["ins_value"]),
            identity_status=m["identity_status"],
            family=m["family"],
            given=m["given"],
            birth_date=m["birth_date"],
            gender=m["gender"],
            birth_place=m["birth_place"],
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


def record_values(record: Record) -> dict[str, object]:
    from carnet.domain.records import normalise_name

    i = record.identity
    return {
        "record_id": record.record_id,
        "ins_oid": i.ins.oid,
        "ins_value": i.ins.value,
        "identity_status": i.identity_status,
        "family": i.family,
        "given": i.given,
        "family_norm": normalise_name(i.family),
        "given_norm": normalise_name(i.given),
        "birth_date": i.birth_date,
        "gender": i.gender,
        "birth_place": i.birth_place,
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
        "resource": record.resource,
        "treating_physician": record.treating_physician,
    }
