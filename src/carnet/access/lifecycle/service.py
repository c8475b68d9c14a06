"""The end of a record (dmp.md §2): destruction on the patient's request, and the purge of
records closed for ten years (R1111-48), run by the operator.

Destruction is irreversible and verifiable: the record's key is destroyed in the key store (so
that no copy of its content, backups included, can be read), its content is removed, its
documents, consents and identity are deleted; what remains is a tombstone (the INS and the
state ``destroyed``) and the traces, which say that it happened.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import select

from carnet.access.context import Context
from carnet.access.facts import LoadedRecord
from carnet.access.policy import RETENTION
from carnet.access.records.repository import record_of_row, record_values
from carnet.access.unit_of_work import Unit
from carnet.domain.actions import Action
from carnet.domain.records import Record, RecordState
from carnet.store.batch import Delete, Update
from carnet.store.tables import (
    binaries,
    consents,
    content_chunks,
    contents,
    document_authors,
    document_history,
    documents,
    notification_preferences,
    outbox,
    portal_notifications,
    record_history,
    record_professionals,
    records,
    representatives,
    submission_sets,
)

PATIENT_TABLES = (
    document_authors,
    document_history,
    documents,
    binaries,
    content_chunks,
    contents,
    submission_sets,
    consents,
    representatives,
    record_professionals,
    record_history,
    outbox,
    notification_preferences,
    portal_notifications,
)


class LifecycleService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.guard = ctx.guard

    async def destroy(self, record_id: str, *, reason: str = "patient request") -> Record:
        async def operation(unit: Unit) -> Record:
            loaded = await self.ctx.facts.load(unit, record_id)
            self.guard.check(
                unit, Action.RECORD_DESTROY, loaded.facts if loaded else None, detail=reason
            )
            assert loaded is not None
            return self._destroy(unit, loaded)

        tomb = await self.ctx.write(operation)
        await self.ctx.shred(record_id)
        return tomb

    def _destroy(self, unit: Unit, loaded: LoadedRecord) -> Record:
        rid = loaded.record_id
        for table in PATIENT_TABLES:
            unit.add(Delete(table, {"record_id": rid}))
        now = self.ctx.now()
        record = loaded.record
        tomb = replace(
            record,
            identity=replace(
                record.identity,
                family="",
                given="",
                birth_date="",
                gender="unknown",
                birth_place=None,
            ),
            state=RecordState.DESTROYED,
            version_id=record.version_id + 1,
            last_updated=now,
            treating_physician=None,
            source=None,
        )
        unit.add(
            Update(
                records,
                where={"record_id": rid, "rules_version": loaded.rules_version},
                values=record_values(tomb, b"", loaded.rules_version + 1),
            )
        )
        return tomb

    async def due_for_purge(self) -> list[str]:
        """The records closed for more than ten years (the operator's scheduled task)."""
        limit = self.ctx.now() - RETENTION

        async def operation(unit: Unit) -> list[str]:
            rows = await unit.conn.execute(
                select(records).where(
                    records.c.state == RecordState.CLOSED.value, records.c.closed_at < limit
                )
            )
            return [record_of_row(r._mapping).record_id for r in rows]

        return await self.ctx.read(operation)

    async def purge(self, record_id: str) -> Record:
        """Destroy a record closed for ten years (R1111-48): the operator's decision, traced."""

        async def operation(unit: Unit) -> Record:
            loaded = await self.ctx.facts.load(unit, record_id)
            self.guard.check(
                unit,
                Action.RECORD_PURGE,
                loaded.facts if loaded else None,
                detail="automatic purge",
                hide=False,
            )
            assert loaded is not None
            return self._destroy(unit, loaded)

        tomb = await self.ctx.write(operation)
        await self.ctx.shred(record_id)
        return tomb
