"""The fact loader: what the policy needs to know of records, for one actor, read in the unit of
work that will write (or trace) what is decided on them.

One read gathers, for each record asked (one, or a batch for a search over many): the record's
row (state, emergency consents, médecin traitant, ``rules_version``), the acting professional's
authorisations and blocks (their own and their care team's), whether the acting person is a
legal representative, the patient's notification preferences and the head of the record's
trace chain. :func:`record_facts` turns them into the policy's :class:`RecordFacts`; nothing
else is read (``decide`` needs nothing else).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from carnet.access.policy import RecordFacts
from carnet.access.records.repository import record_of_row
from carnet.access.unit_of_work import Unit
from carnet.domain.actors import Actor, ActorKind
from carnet.domain.clock import utcnow
from carnet.domain.ins import Ins
from carnet.domain.notifications import Preferences
from carnet.domain.records import Record, RecordState
from carnet.store.preferences import has_email_column, preferences_of_row
from carnet.store.tables import (
    audit_heads,
    consents,
    notification_preferences,
    records,
    representatives,
)
from carnet.store.trace_chain import lock_heads


@dataclass(frozen=True, slots=True)
class LoadedRecord:
    """A record as read for one actor: its row, the policy's facts, what writes check."""

    record: Record  # identity traits blank: see records.repository.open_record
    facts: RecordFacts
    rules_version: int
    sealed: bytes  # the record's sealed envelope
    preferences: Preferences

    @property
    def record_id(self) -> str:
        return self.record.record_id

    @property
    def patient_id(self) -> str:
        """The patient's actor id (``ins:<INS>``), to whom notifications go."""
        return f"ins:{self.record.identity.ins.value}"


def _consent_names(actor: Actor) -> list[str]:
    """The values an authorisation or a block of this actor is recorded under."""
    if actor.kind is not ActorKind.PROFESSIONAL:
        return []
    names = [actor.rpps] if actor.rpps else []
    if actor.structure:
        names.append(actor.structure)
    return names


def record_facts(
    actor: Actor,
    record: Record,
    consent_rows: Iterable[tuple[str, str, str]],
    representative: bool,
    now: datetime,
) -> RecordFacts:
    """The policy's facts of ``record`` for ``actor``: ``consent_rows`` are the active
    (decision, actor kind, actor value) rows naming the actor or their structure."""
    authorised = blocked = False
    if actor.kind is ActorKind.PROFESSIONAL:
        for decision, kind, value in consent_rows:
            if kind == "professional" and value == actor.rpps:
                if decision == "deny":
                    blocked = True
                else:
                    authorised = True
            elif kind == "structure" and value == actor.structure and decision == "permit":
                authorised = True  # care-team presumption (R1111-46)
    return RecordFacts(
        record_id=record.record_id,
        state=record.state,
        ins=record.identity.ins.value,
        authorised=authorised,
        blocked=blocked,
        is_treating_physician=(
            actor.kind is ActorKind.PROFESSIONAL and record.treating_physician == actor.id
        ),
        is_representative=representative,
        allows_centre15=record.emergency.centre15,
        allows_bris_de_glace=record.emergency.bris_de_glace,
        allows_masked_in_emergency=record.emergency.masked,
        now=now,
        closed_at=record.closed_at,
    )


def candidate_facts(
    ins: Ins, now: datetime, *, objected: bool = False, objection_own: bool = False
) -> RecordFacts:
    """The facts of a record about to be opened for ``ins`` (or of an objection to it): whether
    the person objected to its creation, and whether the actor recorded that objection."""
    return RecordFacts(
        record_id="",
        state=RecordState.ACTIVE,
        ins=ins.value,
        now=now,
        objected=objected,
        objection_own=objection_own,
    )


_PG_FACTS = """
SELECT r.*, h.seq AS head_seq, h.hash AS head_hash{extra},
       (np.email_sealed IS NOT NULL OR np.email IS NOT NULL) AS has_email,
       np.new_documents, np.access_mode, np.portal,
       (SELECT array_agg(c.decision || ' ' || c.actor_kind || ' ' || c.actor_value)
          FROM consents c
         WHERE c.record_id = r.record_id AND c.status = 'active'
           AND c.actor_value = ANY($1::text[])) AS granted,
       EXISTS (SELECT 1 FROM representatives p
                WHERE p.record_id = r.record_id AND p.representative_ins = $2) AS represented
  FROM records r
  LEFT JOIN audit_heads h ON h.record_id = r.record_id
  LEFT JOIN notification_preferences np ON np.record_id = r.record_id
"""
PG_BY_IDS = _PG_FACTS.format(extra="") + " WHERE r.record_id = ANY($3::text[])"
# an INS is matched on its value, whatever its OID (one record per person, domain/ins.py)
PG_BY_INS = _PG_FACTS.format(extra="") + " WHERE r.ins_value = $4 AND $3::text IS NULL"


def pg_facts_sql(extra: str, *, by_ins: bool, join: str = "") -> str:
    """The fact query with ``extra`` columns (subqueries on ``r``, the record; their own
    parameters start at $5) and an extra ``join``: what an operation needs beyond the facts, in
    the same round trip."""
    where = (
        " WHERE r.ins_value = $4 AND $3::text IS NULL"
        if by_ins
        else (" WHERE r.record_id = $3 AND $4::text IS NULL")
    )
    return _PG_FACTS.format(extra=extra) + join + where


NO_RECORD = "-"  # a record id no record has (ids are hex): asked about when none was found


class FactLoader:
    def __init__(self, actor: Actor, clock: Callable[[], datetime] = utcnow) -> None:
        self.actor = actor
        self.clock = clock

    async def load(self, unit: Unit, record_id: str) -> LoadedRecord | None:
        return (await self.load_many(unit, [record_id])).get(record_id)

    async def load_by_ins(self, unit: Unit, ins: Ins) -> LoadedRecord | None:
        if unit.pg:
            found = await self._load_pg(unit, PG_BY_INS, None, ins.value)
            return next(iter(found.values()), None)
        row = (
            await unit.conn.execute(
                select(records.c.record_id).where(records.c.ins_value == ins.value)
            )
        ).first()
        # a miss asks the same questions as a hit (a refusal must not be told by its time)
        return await self.load(unit, row[0] if row is not None else NO_RECORD)

    async def load_many(self, unit: Unit, record_ids: Iterable[str]) -> dict[str, LoadedRecord]:
        ids = sorted({r for r in record_ids if r})
        if not ids:
            return {}
        if unit.pg:
            return await self._load_pg(unit, PG_BY_IDS, ids)
        np = notification_preferences.c
        rows = (
            await unit.conn.execute(
                select(
                    records,
                    audit_heads.c.seq.label("head_seq"),
                    audit_heads.c.hash.label("head_hash"),
                    has_email_column(),
                    np.new_documents,
                    np.access_mode,
                    np.portal,
                )
                .outerjoin(audit_heads, audit_heads.c.record_id == records.c.record_id)
                .outerjoin(notification_preferences, np.record_id == records.c.record_id)
                .where(records.c.record_id.in_(ids))
            )
        ).all()
        found = [r._mapping for r in rows]
        # on a miss, the same questions all the same: its time must not tell it from a refusal
        asked = [m["record_id"] for m in found] or ids
        names = _consent_names(self.actor)
        granted: dict[str, list[tuple[str, str, str]]] = {}
        if names:
            for rid, decision, kind, value in await unit.conn.execute(
                select(
                    consents.c.record_id,
                    consents.c.decision,
                    consents.c.actor_kind,
                    consents.c.actor_value,
                ).where(
                    consents.c.record_id.in_(asked),
                    consents.c.actor_value.in_(names),
                    consents.c.status == "active",
                )
            ):
                granted.setdefault(rid, []).append((decision, kind, value))
        represented: set[str] = set()
        if self.actor.kind is ActorKind.PATIENT and self.actor.ins:
            represented = {
                r[0]
                for r in await unit.conn.execute(
                    select(representatives.c.record_id).where(
                        representatives.c.record_id.in_(asked),
                        representatives.c.representative_ins == self.actor.ins,
                    )
                )
            }
        now = self.clock()
        return {m["record_id"]: self._loaded(unit, m, granted, represented, now) for m in found}

    async def _load_pg(self, unit: Unit, sql: str, *where: Any) -> dict[str, LoadedRecord]:
        """PostgreSQL: everything in one round trip (the hot path of every request)."""
        rows = await self._fetch(unit, sql, *where)
        now = self.clock()
        return {m["record_id"]: self._loaded_pg(unit, m, now) for m in rows}

    async def load_pg_with(
        self, unit: Unit, sql: str, *args: Any
    ) -> tuple[LoadedRecord | None, Any]:
        """PostgreSQL: one record's facts and the extra columns of ``sql`` (:func:`pg_facts_sql`)
        in one round trip; (None, None) when there is no such record."""
        rows = await self._fetch(unit, sql, *args)
        if not rows:
            return None, None
        return self._loaded_pg(unit, rows[0], self.clock()), rows[0]

    async def load_pg_rows(
        self, unit: Unit, sql: str, *args: Any
    ) -> tuple[LoadedRecord | None, list[Any]]:
        """PostgreSQL: one record's facts and the rows of ``sql``'s join (each row repeating
        the facts), in one round trip; (None, []) when there is no such record."""
        rows = await self._fetch(unit, sql, *args)
        if not rows:
            return None, []
        return self._loaded_pg(unit, rows[0], self.clock()), rows

    async def _fetch(self, unit: Unit, sql: str, *args: Any) -> list[Any]:
        """The rows of a fact query. A unit in locking mode (a write retried after a conflict)
        first locks the chain heads of the records it found, then reads them again: its facts,
        and the time it decides at, come after every write committed to those records before
        it, and none can commit to them until it does."""
        rows: list[Any] = await unit.driver.fetch(
            sql, _consent_names(self.actor), self.actor.ins or "", *args
        )
        if unit.locking and rows:
            await lock_heads(unit.driver, {m["record_id"] for m in rows})
            rows = await unit.driver.fetch(
                sql, _consent_names(self.actor), self.actor.ins or "", *args
            )
        return rows

    def _loaded_pg(self, unit: Unit, m: Any, now: datetime) -> LoadedRecord:
        rid = m["record_id"]
        granted = {rid: [tuple(g.split(" ", 2)) for g in m["granted"] or ()]}
        represented = {rid} if m["represented"] else set()
        return self._loaded(unit, m, granted, represented, now)

    def _loaded(
        self,
        unit: Unit,
        m: Any,
        granted: dict[str, list[tuple[str, str, str]]],
        represented: set[str],
        now: datetime,
    ) -> LoadedRecord:
        record = record_of_row(m)
        rid = record.record_id
        if m["head_seq"] is not None:
            unit.heads[rid] = (int(m["head_seq"]), str(m["head_hash"]))
        representative = rid in represented and self.actor.ins != record.identity.ins.value
        return LoadedRecord(
            record=record,
            facts=record_facts(self.actor, record, granted.get(rid, ()), representative, now),
            rules_version=int(m["rules_version"]),
            sealed=bytes(m["resource"]),
            preferences=preferences_of_row(m),
        )
