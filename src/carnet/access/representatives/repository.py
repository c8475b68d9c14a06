"""Legal representatives in the store."""

from __future__ import annotations

from sqlalchemy import select

from carnet.access.unit_of_work import Unit
from carnet.domain.ins import Ins
from carnet.domain.representatives import Representative
from carnet.store.tables import representatives


async def of_record(unit: Unit, record_id: str, ins_oid: str) -> list[Representative]:
    rows = await unit.conn.execute(
        select(representatives)
        .where(representatives.c.record_id == record_id)
        .order_by(representatives.c.created_at)
    )
    return [
        Representative(
            record_id=r.record_id,
            ins=Ins(ins_oid, r.representative_ins),
            relationship=r.relationship,
            recorded_by=r.recorded_by,
            created_at=r.created_at,
        )
        for r in rows
    ]


async def exists(unit: Unit, record_id: str, ins_value: str) -> bool:
    row = (
        await unit.conn.execute(
            select(representatives.c.record_id).where(
                representatives.c.record_id == record_id,
                representatives.c.representative_ins == ins_value,
            )
        )
    ).first()
    return row is not None
