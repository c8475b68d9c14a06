"""Consents in the store: rows ↔ :class:`~carnet.domain.consents.StoredConsent`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from carnet.access.unit_of_work import Unit
from carnet.domain.consents import (
    ConsentActorKind,
    ConsentDecision,
    ConsentStatus,
    StoredConsent,
)
from carnet.domain.content import Representation
from carnet.store.envelope import pack, unpack
from carnet.store.tables import consents


def consent_of_row(m: Any) -> StoredConsent:
    source = None
    if m["resource"] is not None:
        _core, source = unpack(bytes(m["resource"]))
    return StoredConsent(
        record_id=m["record_id"],
        consent_id=m["consent_id"],
        decision=ConsentDecision(m["decision"]),
        actor_kind=ConsentActorKind(m["actor_kind"]),
        actor_system=m["actor_system"],
        actor_value=m["actor_value"],
        status=ConsentStatus(m["status"]),
        version_id=int(m["version_id"]),
        recorded_by=m["recorded_by"],
        created_at=m["created_at"],
        last_updated=m["last_updated"],
        source=source,
    )


def source_column(source: Representation | None) -> bytes | None:
    """Consents are not sealed: they say who may read, not what (dmp.md §3)."""
    return pack(b"", source) if source is not None else None


async def of_record(unit: Unit, record_id: str) -> list[StoredConsent]:
    rows = await unit.conn.execute(
        select(consents).where(consents.c.record_id == record_id).order_by(consents.c.created_at)
    )
    return [consent_of_row(r._mapping) for r in rows]


async def one(unit: Unit, record_id: str, consent_id: str) -> StoredConsent | None:
    row = (
        await unit.conn.execute(
            select(consents).where(
                consents.c.record_id == record_id, consents.c.consent_id == consent_id
            )
        )
    ).first()
    return consent_of_row(row._mapping) if row is not None else None


async def active_for(
    unit: Unit, record_id: str, actor_values: Sequence[str]
) -> list[StoredConsent]:
    rows = await unit.conn.execute(
        select(consents).where(
            consents.c.record_id == record_id,
            consents.c.actor_value.in_(list(actor_values)),
            consents.c.status == ConsentStatus.ACTIVE.value,
        )
    )
    return [consent_of_row(r._mapping) for r in rows]
