"""The end of a record (dmp.md §2): destruction on the patient's request, and the purge of
records closed for ten years (R1111-48), run by the operator.

Destruction is irreversible and verifiable: the record's key is destroyed in the key store (so
that no copy of its content, backups included, can be read), its content is removed, its
documents, consents and identity are deleted; what remains is a tombstone (the INS and the
state ``destroyed``) and the traces, which say that it happened.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from sqlalchemy import ColumnElement, Exists, and_, exists, func, select

from carnet.access.context import Context
from carnet.access.facts import LoadedRecord
from carnet.access.policy import RETENTION, UploadFacts
from carnet.access.records.repository import record_of_row, record_values
from carnet.access.unit_of_work import Unit
from carnet.domain import trace_view as details
from carnet.domain.actions import Action
from carnet.domain.records import Record, RecordState
from carnet.store.batch import Delete, Update
from carnet.store.tables import (
    binaries,
    consents,
    content_chunks,
    contents,
    document_authors,
    document_events,
    document_history,
    document_related,
    documents,
    folder_documents,
    folders,
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
    document_events,
    document_history,
    document_related,
    documents,
    binaries,
    content_chunks,
    contents,
    submission_sets,
    folder_documents,
    folders,
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

    # -- uploads no document named ----------------------------------------------------------
    async def stale_uploads(self, older_than: timedelta) -> list[tuple[str, str]]:
        """(record id, binary id) of raw uploads older than ``older_than`` that no document
        names: abandoned (an upload is meant to be named by a document soon after)."""
        limit = self.ctx.now() - older_than

        async def operation(unit: Unit) -> list[tuple[str, str]]:
            rows = await unit.conn.execute(
                select(binaries.c.record_id, binaries.c.binary_id)
                .where(binaries.c.created_at < limit, ~_named(binaries.c.record_id))
                .order_by(binaries.c.record_id, binaries.c.binary_id)
            )
            return [(r[0], r[1]) for r in rows]

        return await self.ctx.read(operation)

    async def purge_upload(self, record_id: str, binary_id: str) -> bool:
        """Remove an upload no document names (its row; its content when nothing else uses
        it): the operator's decision, traced. False if a document names it by now."""

        async def operation(unit: Unit) -> tuple[str, str] | bool | None:
            loaded = await self.ctx.facts.load(unit, record_id)
            row = (
                await unit.conn.execute(
                    select(binaries.c.sha256, _named(binaries.c.record_id).label("named")).where(
                        binaries.c.record_id == record_id, binaries.c.binary_id == binary_id
                    )
                )
            ).first()
            if row is None or loaded is None:
                return False
            if row.named:
                return False  # named by a document meanwhile: not abandoned
            self.guard.check(
                unit,
                Action.BINARY_PURGE,
                loaded.facts,
                upload=UploadFacts(by_actor=False, attached=bool(row.named)),
                record_id=record_id,
                detail=details.binary(binary_id),
                hide=False,
            )
            unit.add(Delete(binaries, {"record_id": record_id, "binary_id": binary_id}))
            # a publish deciding on this upload meanwhile decides again (and finds it gone)
            unit.add(
                Update(
                    records,
                    where={"record_id": record_id, "rules_version": loaded.rules_version},
                    values={"rules_version": loaded.rules_version + 1},
                )
            )
            others = (
                await unit.conn.execute(
                    select(func.count()).where(
                        binaries.c.record_id == record_id,
                        binaries.c.sha256 == row.sha256,
                        binaries.c.binary_id != binary_id,
                    )
                )
            ).scalar_one() + (
                await unit.conn.execute(
                    select(func.count()).where(
                        documents.c.record_id == record_id, documents.c.sha256 == row.sha256
                    )
                )
            ).scalar_one()
            if others:
                return None
            content = (
                await unit.conn.execute(
                    select(contents.c.blob_id, contents.c.store).where(
                        contents.c.record_id == record_id, contents.c.sha256 == row.sha256
                    )
                )
            ).first()
            if content is None:
                return None
            unit.add(Delete(contents, {"record_id": record_id, "sha256": row.sha256}))
            unit.add(Delete(content_chunks, {"record_id": record_id, "blob_id": content.blob_id}))
            return (content.store, content.blob_id)

        done = await self.ctx.write(operation)
        if isinstance(done, tuple):
            await self.ctx.discard(done[0], record_id, done[1])
        return done is not False


def _named(record_id: ColumnElement[str]) -> Exists:
    """Whether a document names the upload of the row at hand."""
    return exists().where(
        and_(documents.c.record_id == record_id, documents.c.binary_id == binaries.c.binary_id)
    )
