"""Record lifecycle (dmp.md §2): destruction on the patient's request and the automatic purge
10 years after closure. Destruction is irreversible and verifiable: the record's key is
destroyed in the key store (so that no copy of its content, backups included, can be read),
its content files are removed, its documents, consents and identity are deleted; what remains is
a tombstone (the INS and the state ``destroyed``) and the traces, which say that it happened."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import orjson
from sqlalchemy import delete, select

from carnet.access.base import NOT_FOUND
from carnet.access.consents import ConsentOps
from carnet.access.policy import Action, Decision, RecordState
from carnet.domain.clock import iso, utcnow
from carnet.domain.records import Record
from carnet.errors import NotFound
from carnet.store.rows import record_values
from carnet.store.tables import (
    binaries,
    consents,
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

RETENTION = timedelta(days=3653)  # ten years, leap days included

PATIENT_TABLES = (
    document_authors,
    document_history,
    documents,
    binaries,
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


class LifecycleOps(ConsentOps):
    async def destroy_record(self, record_id: str, *, reason: str = "patient request") -> Record:
        async with self.services.engine.begin() as conn:
            record, facts = await self._load_record(conn, record_id)
            decision = self.decide(Action.RECORD_LIFECYCLE, facts)
            if record is None or not decision:
                if record is not None:
                    await self.trace(conn, "record.destroy", record_id, decision)
                raise NotFound(NOT_FOUND)
            tombstone = await self._destroy(conn, record, decision, reason)
        await self._shred(record_id)
        return tombstone

    async def _destroy(
        self, conn: object, record: Record, decision: Decision, reason: str
    ) -> Record:
        from sqlalchemy.ext.asyncio import AsyncConnection

        assert isinstance(conn, AsyncConnection)
        rid = record.record_id
        for table in PATIENT_TABLES:
            await conn.execute(delete(table).where(table.c.record_id == rid))
        now = utcnow()
        body = {
            "resourceType": "Patient",
            "id": rid,
            "meta": {"versionId": str(record.version_id + 1), "lastUpdated": iso(now)},
            "identifier": [
                {"system": record.identity.ins.system, "value": record.identity.ins.value}
            ],
            "active": False,
            "extension": [
                {
                    "url": "https://carnet.health/fhir/StructureDefinition/dmp-record-status",
                    "valueCode": "destroyed",
                }
            ],
        }
        identity = replace(
            record.identity, family="", given="", birth_date="", gender="unknown", birth_place=None
        )
        tomb = replace(
            record,
            identity=identity,
            state=RecordState.DESTROYED,
            version_id=record.version_id + 1,
            last_updated=now,
            treating_physician=None,
            resource=orjson.dumps(body),
        )
        await conn.execute(
            records.update()
            .where(records.c.record_id == rid)
            .values(**record_values(tomb, tomb.resource))
        )
        await self.trace(conn, "record.destroy", rid, decision, detail=reason)
        return tomb

    async def _shred(self, record_id: str) -> None:
        await self.services.keys.destroy(record_id)
        self.services.content.destroy_record(record_id)
        if self.services.engine.dialect.name == "sqlite":
            # move the overwritten pages out of the write-ahead log into the database file
            from sqlalchemy import text

            async with self.services.engine.connect() as conn:
                await conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))

    async def due_for_purge(self, now: datetime | None = None) -> list[Record]:
        from carnet.store.rows import record_from_row

        limit = (now or utcnow()) - RETENTION
        async with self.services.engine.connect() as conn:
            rows = await conn.execute(
                select(records).where(
                    records.c.state == RecordState.CLOSED.value, records.c.closed_at < limit
                )
            )
            return [record_from_row(r) for r in rows]

    async def purge(self, record: Record) -> Record:
        """Destroy a record closed for ten years (the operator's scheduled task)."""
        decision = Decision(True, "retention", "closed for more than ten years (R1111-48)")
        async with self.services.engine.begin() as conn:
            tomb = await self._destroy(conn, record, decision, "automatic purge")
        await self._shred(record.record_id)
        return tomb
