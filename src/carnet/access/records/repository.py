"""Records in the store: rows ↔ :class:`~carnet.domain.records.Record`, the sealed envelope of a
record (its identity traits and the interface's form of the patient), and the queries of the
records service."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import false, or_, select
from sqlalchemy.sql import ColumnElement

from carnet.access.unit_of_work import Unit
from carnet.domain.actors import Actor, ActorKind
from carnet.domain.content import Representation
from carnet.domain.ins import Ins, names_an_ins
from carnet.domain.records import (
    CreationConsent,
    EmergencyConsents,
    Identity,
    Record,
    RecordCriteria,
    RecordState,
)
from carnet.store.batch import Insert, Update
from carnet.store.codec import record_from_json, record_to_json
from carnet.store.envelope import pack, unpack
from carnet.store.legacy import legacy_identity_traits
from carnet.store.tables import consents, record_history, record_professionals, records


def record_of_row(m: Any) -> Record:
    """The record of a row, its identity traits blank until opened (:func:`open_record`)."""
    return Record(
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
        consent=CreationConsent(
            by=m["consent_by"],
            by_kind=m["consent_by_kind"],
            structure=m["consent_structure"],
            at=m["consent_at"],
        ),
        emergency=EmergencyConsents(
            centre15=bool(m["emergency_centre15"]),
            bris_de_glace=bool(m["emergency_bris_de_glace"]),
            masked=bool(m["emergency_masked"]),
        ),
        version_id=m["version_id"],
        created_at=m["created_at"],
        last_updated=m["last_updated"],
        closed_at=m["closed_at"],
        treating_physician=m["treating_physician"],
    )


def record_values(record: Record, sealed: bytes, rules_version: int) -> dict[str, Any]:
    i = record.identity
    return {
        "record_id": record.record_id,
        "ins_oid": i.ins.oid,
        "ins_value": i.ins.value,
        "identity_status": i.identity_status,
        "state": record.state.value,
        "consent_by": record.consent.by,
        "consent_by_kind": record.consent.by_kind,
        "consent_structure": record.consent.structure,
        "consent_at": record.consent.at,
        "emergency_centre15": record.emergency.centre15,
        "emergency_bris_de_glace": record.emergency.bris_de_glace,
        "emergency_masked": record.emergency.masked,
        "version_id": record.version_id,
        "created_at": record.created_at,
        "last_updated": record.last_updated,
        "closed_at": record.closed_at,
        "treating_physician": record.treating_physician,
        "resource": sealed,
        "rules_version": rules_version,
    }


def open_envelope(record: Record, plain: bytes, *, as_stored: bool = False) -> Record:
    """The record with its identity traits and source from its envelope's plaintext; with
    ``as_stored``, also the state the envelope records (a past version)."""
    core, source = unpack(plain)
    if core is not None:
        opened = record_from_json(core, record)
        if not as_stored:
            opened = replace(record, identity=opened.identity)
        return replace(opened, source=source)
    traits = legacy_identity_traits(plain) if plain else {}
    return replace(record, identity=replace(record.identity, **traits), source=source)


async def open_record(unit: Unit, record: Record, sealed: bytes) -> Record:
    if not sealed:
        return record
    return open_envelope(record, await unit.unseal(record.record_id, sealed))


async def seal_record(unit: Unit, record: Record) -> bytes:
    """The sealed envelope of a record: its identity traits, its state, its source."""
    return await unit.seal(record.record_id, pack(record_to_json(record), record.source))


def history_row(record: Record, sealed: bytes) -> dict[str, Any]:
    return {
        "record_id": record.record_id,
        "version_id": record.version_id,
        "last_updated": record.last_updated,
        "resource": sealed,
    }


# -- the history of a record ------------------------------------------------------------------
async def history_rows(unit: Unit, record_id: str) -> list[tuple[int, datetime, bytes]]:
    rows = await unit.conn.execute(
        select(
            record_history.c.version_id, record_history.c.last_updated, record_history.c.resource
        )
        .where(record_history.c.record_id == record_id)
        .order_by(record_history.c.version_id.desc())
    )
    return [(int(r[0]), r[1], bytes(r[2])) for r in rows]


async def version_row(unit: Unit, record_id: str, version: int) -> bytes | None:
    row = (
        await unit.conn.execute(
            select(record_history.c.resource).where(
                record_history.c.record_id == record_id, record_history.c.version_id == version
            )
        )
    ).first()
    return bytes(row[0]) if row is not None else None


# -- patient search ---------------------------------------------------------------------------
def search_conditions(actor: Actor, criteria: RecordCriteria) -> list[ColumnElement[bool]] | None:
    """The SQL narrowing of a patient search (every row is then decided on its own, and a
    refusal traced): the records named (by INS or id), else the records the actor may possibly
    read; None when it names none and the actor can reach no record at all."""
    conds: list[ColumnElement[bool]] = []
    exact_ins = bool(criteria.identifiers)
    if criteria.identifiers:
        # an INS is matched on its value, whatever its OID (domain/ins.py names_an_ins)
        conds.append(
            or_(
                false(),
                *[
                    records.c.ins_value == value.upper()
                    for system, value in criteria.identifiers
                    if names_an_ins(system)
                ],
            )
        )
    if criteria.ids:
        conds.append(records.c.record_id.in_(criteria.ids))
    named = exact_ins or bool(criteria.ids)
    if actor.kind is ActorKind.PATIENT:
        if not named:  # a patient naming a record has it decided (and the refusal traced)
            conds.append(records.c.ins_value == (actor.ins or ""))
    elif actor.kind is ActorKind.PROFESSIONAL:
        if not named:
            names = [v for v in (actor.rpps, actor.structure) if v]
            conds.append(
                or_(
                    records.c.treating_physician == actor.id,
                    records.c.record_id.in_(
                        select(record_professionals.c.record_id).where(
                            record_professionals.c.professional_id == actor.id
                        )
                    ),
                    records.c.record_id.in_(
                        select(consents.c.record_id).where(
                            consents.c.actor_value.in_(names),
                            consents.c.status == "active",
                            consents.c.decision == "permit",
                        )
                    ),
                )
            )
    elif not named:
        return None  # other actors reach no record: only the records they name are decided
    return conds


async def find_ids(unit: Unit, conds: list[ColumnElement[bool]], limit: int) -> list[str]:
    rows = await unit.conn.execute(
        select(records.c.record_id).where(*conds).order_by(records.c.record_id).limit(limit)
    )
    return [r[0] for r in rows]


def representation(media_type: str, data: bytes | None) -> Representation | None:
    return Representation(media_type, data) if data is not None else None


async def save_version(
    unit: Unit, before: Record, after: Record, rules_version: int, *, policy_changed: bool
) -> None:
    """Queue the write of ``after``, the next version of ``before``: the row (checked to be
    still at ``before``'s version and ``rules_version``) and its history."""
    sealed = await seal_record(unit, after)
    unit.add(
        Update(
            records,
            where={
                "record_id": before.record_id,
                "version_id": before.version_id,
                "rules_version": rules_version,
            },
            values=record_values(
                after, sealed, rules_version + 1 if policy_changed else rules_version
            ),
        )
    )
    unit.add(Insert(record_history, [history_row(after, sealed)]))
