"""The common part of the access-scoped service: gathering facts, deciding, tracing.

A scope is built per request for one actor. It is the only path to records and documents:
interfaces call it, it asks :func:`carnet.access.policy.decide` about every record and document
it touches, and writes the trace in the same transaction as the read or the write.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from carnet.access.policy import Action, Decision, DocumentFacts, RecordFacts, Relation, decide
from carnet.domain.actors import Actor, ActorKind
from carnet.domain.clock import utcnow
from carnet.domain.records import Record
from carnet.domain.traces import trace_row, write_traces
from carnet.errors import Forbidden, NotFound
from carnet.services import Services
from carnet.store.crypto import is_sealed, seal, unseal
from carnet.store.rows import record_from_row, with_identity
from carnet.store.tables import consents, record_professionals, records, representatives

NOT_FOUND = "no such resource, or no access to it"

log = logging.getLogger("carnet.access")


def record_id_of(resource_id: str) -> str:
    """Resource ids are routable: ``<record id>-<suffix>`` (see store/tables.py)."""
    return resource_id.split("-", 1)[0]


class ScopeBase:
    def __init__(self, services: Services, actor: Actor, base_url: str) -> None:
        self.services = services
        self.actor = actor
        self.base_url = base_url.rstrip("/")
        self.settings = services.settings
        self._denials: list[dict[str, object]] | None = None  # see transaction()

    # -- facts -------------------------------------------------------------------------------
    async def _relations(self, conn: AsyncConnection, record_id: str) -> frozenset[Relation]:
        if self.actor.kind is not ActorKind.PROFESSIONAL:
            return frozenset()
        rows = await conn.execute(
            select(record_professionals.c.relation).where(
                record_professionals.c.record_id == record_id,
                record_professionals.c.professional_id == self.actor.id,
            )
        )
        return frozenset(Relation(r[0]) for r in rows)

    async def _load_record(
        self, conn: AsyncConnection, record_id: str
    ) -> tuple[Record | None, RecordFacts | None]:
        row = (await conn.execute(select(records).where(records.c.record_id == record_id))).first()
        if row is None:
            return None, None
        record = record_from_row(row)
        return record, await self._facts(conn, record)

    async def _facts(self, conn: AsyncConnection, record: Record) -> RecordFacts:
        """Everything the policy needs about ``record`` and the actor's place in it."""
        actor = self.actor
        authorised = blocked = representative = False
        if actor.kind is ActorKind.PROFESSIONAL:
            names = [actor.id.removeprefix("rpps:")] if actor.rpps else []
            if actor.structure:
                names.append(actor.structure)
            if names:
                rows = await conn.execute(
                    select(
                        consents.c.decision, consents.c.actor_kind, consents.c.actor_value
                    ).where(
                        consents.c.record_id == record.record_id,
                        consents.c.actor_value.in_(names),
                        consents.c.status == "active",
                    )
                )
                for decision, kind, value in rows:
                    if kind == "professional" and value == actor.rpps:
                        if decision == "deny":
                            blocked = True
                        else:
                            authorised = True
                    elif kind == "structure" and value == actor.structure and decision == "permit":
                        authorised = True  # care-team presumption (R1111-46)
        elif (
            actor.kind is ActorKind.PATIENT and actor.ins and actor.ins != record.identity.ins.value
        ):
            representative = (
                await conn.execute(
                    select(representatives.c.record_id).where(
                        representatives.c.record_id == record.record_id,
                        representatives.c.representative_ins == actor.ins,
                    )
                )
            ).first() is not None
        return RecordFacts(
            record_id=record.record_id,
            state=record.state,
            ins=record.identity.ins.value,
            relations=await self._relations(conn, record.record_id),
            authorised=authorised,
            blocked=blocked,
            is_treating_physician=(
                actor.kind is ActorKind.PROFESSIONAL and record.treating_physician == actor.id
            ),
            is_representative=representative,
            allows_centre15=record.emergency.centre15,
            allows_bris_de_glace=record.emergency.bris_de_glace,
            allows_masked_in_emergency=record.emergency.masked,
            now=utcnow(),
        )

    # -- sealed resources ------------------------------------------------------------------------
    async def seal(self, record_id: str, data: bytes) -> bytes:
        """Stored resources (documents' metadata, the Patient) are sealed with the record's key:
        destroying the key leaves nothing of them readable, backups included."""
        return seal(await self.services.keys.key_for(record_id), record_id.encode(), data)

    async def unseal(self, record_id: str, data: bytes) -> bytes:
        if not is_sealed(data):
            return data
        return unseal(await self.services.keys.key_for(record_id), record_id.encode(), data)

    async def opened(self, record: Record) -> Record:
        """The record with its Patient resource decrypted and its identity traits read from it."""
        if not is_sealed(record.resource):
            return record
        plain = await self.unseal(record.record_id, record.resource)
        return with_identity(record, plain)

    # -- decisions ---------------------------------------------------------------------------
    def decide(
        self, action: Action, facts: RecordFacts | None, document: DocumentFacts | None = None
    ) -> Decision:
        return decide(self.actor, action, facts, document, matrix=self.services.matrix.allows)

    async def trace(
        self,
        conn: AsyncConnection,
        action: Action | str,
        record_id: str | None,
        decision: Decision | None = None,
        *,
        doc_id: str | None = None,
        detail: str | None = None,
        outcome: str | None = None,
    ) -> None:
        row = trace_row(
            self.actor,
            action,
            record_id,
            decision=decision,
            doc_id=doc_id,
            detail=detail,
            outcome=outcome,
        )
        await write_traces(conn, [row])
        if self._denials is not None and row["outcome"] == "deny":
            self._denials.append(row)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """``engine.begin()`` for an operation that may trace a denial and then raise.

        The raise rolls the transaction back, and the denial's trace with it: the denials
        traced in the transaction are then written again in a transaction of their own
        (dmp.md §5: every denial is traced), and the error goes on.
        """
        outer = self._denials
        denials: list[dict[str, object]] = []
        self._denials = denials
        try:
            async with self.services.engine.begin() as conn:
                yield conn
        except Exception:
            if denials:
                await self._keep_denials(denials)
            raise
        finally:
            self._denials = outer

    async def _keep_denials(self, rows: list[dict[str, object]]) -> None:
        try:
            async with self.services.engine.begin() as conn:
                await write_traces(conn, rows)
        except Exception:  # the original error matters more; this one is logged
            log.exception("could not keep %d denial trace(s) of %s", len(rows), self.actor.id)

    async def deny(
        self,
        action: Action,
        record_id: str | None,
        decision: Decision,
        *,
        doc_id: str | None = None,
        hide: bool = True,
    ) -> NotFound | Forbidden:
        """Trace a denial in its own transaction and return the error to raise.

        ``hide``: answer 404, exactly as for a missing resource, so that a refusal never
        reveals that something exists to someone with no right to it.
        """
        async with self.services.engine.begin() as conn:
            await self.trace(conn, action, record_id, decision, doc_id=doc_id)
        if hide:
            return NotFound(NOT_FOUND)
        return Forbidden(f"not allowed: {decision.reason}")
