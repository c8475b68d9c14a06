"""Trace reading of the scoped service (dmp.md §5; docs/traces.md "Who reads what").

The patient reads every trace of their record, the médecin traitant too, any other professional
only their own: :func:`carnet.access.policy.decide` answers ``audit.read`` for each record, and
an ``own-traces`` answer narrows the query to the events whose actor is the caller. Naming a
record one may not read gives an empty result, never an error that would tell it exists; the
refusal is traced. Reading traces is itself traced (``audit.read``), in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import and_, false, func, not_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ColumnElement

from carnet.access.base import ScopeBase
from carnet.access.policy import Action, Decision, RecordFacts, RecordState
from carnet.domain.actors import RPPS_SYSTEM, ActorKind
from carnet.domain.ins import Ins
from carnet.domain.search import Token, TokenParam
from carnet.domain.traces import AuditCriteria, StoredEvent, event_from_row, trace_row, write_traces
from carnet.errors import InvalidInput
from carnet.store.doc_query import _dates
from carnet.store.tables import audit_events, records

OWN_TRACES = "own-traces"  # the rule of policy.decide that limits audit.read to one's own events
MAX_RECORDS = 100

ACTION_SYSTEM = "https://carnet.health/fhir/CodeSystem/dmp-action"
FHIR_ACTION_SYSTEM = "http://hl7.org/fhir/audit-event-action"
OUTCOME_SYSTEM = "http://terminology.hl7.org/CodeSystem/audit-event-outcome"
INS_SYSTEMS = frozenset(
    f"urn:oid:{oid}"
    for oid in ("1.2.250.1.213.1.4.8", "1.2.250.1.213.1.4.9", "1.2.250.1.213.1.4.10")
)

# AuditEvent.action (C R U D E) from the verb that ends our action codes (``document.read``)
VERBS: dict[str, str] = {
    "create": "C",
    "objection": "C",
    "read": "R",
    "search": "R",
    "status": "R",
    "update": "U",
    "replace": "U",
    "mask": "U",
    "lifecycle": "U",
    "write": "U",
    "authorise": "U",
    "delete": "D",
    "destroy": "D",
}


def fhir_action(action: str) -> str:
    """C, R, U, D or E (execute: anything else) for one of our action codes."""
    return VERBS.get(action.rsplit(".", 1)[-1], "E")


@dataclass(frozen=True, slots=True)
class AuditPage:
    items: list[StoredEvent]
    total: int
    next_cursor: tuple[str, str] | None
    # the INS of each record met, to name a patient who acts on their own record
    ins: dict[str, Ins] = field(default_factory=dict)


@dataclass(slots=True)
class _Reach:
    """What the caller may read of one record's chain."""

    decision: Decision
    facts: RecordFacts | None
    exists: bool  # False: no such record (or destroyed): traced on the chain of no record

    @property
    def own_only(self) -> bool:
        return self.decision.rule == OWN_TRACES


# -- SQL conditions of the filters -------------------------------------------------------------


def _action_conds(param: TokenParam) -> list[ColumnElement[bool]]:
    col = audit_events.c.action
    out: list[ColumnElement[bool]] = []
    for values in param:
        ors: list[ColumnElement[bool]] = []
        for t in values:
            if t.code in ("C", "R", "U", "D", "E") and t.system in (None, FHIR_ACTION_SYSTEM):
                verbs = [v for v, letter in VERBS.items() if letter == t.code]
                likes = [col.like(f"%.{v}") for v in VERBS]
                if t.code == "E":
                    ors.append(and_(*[not_(c) for c in likes]))
                else:
                    ors.append(or_(*[col.like(f"%.{v}") for v in verbs]))
            elif t.system in (None, ACTION_SYSTEM):
                ors.append(col == t.code)
        out.append(or_(*ors) if ors else false())
    return out


def _codes(param: TokenParam, system: str) -> list[ColumnElement[bool]]:
    out: list[ColumnElement[bool]] = []
    for values in param:
        codes = [t.code for t in values if t.system in (None, system)]
        out.append(audit_events.c.action.in_(codes) if codes else false())
    return out


def _outcome_conds(param: TokenParam) -> list[ColumnElement[bool]]:
    names = {"0": "allow", "allow": "allow", "4": "deny", "deny": "deny"}
    out: list[ColumnElement[bool]] = []
    for values in param:
        wanted = [
            names[t.code] for t in values if t.code in names and t.system in (None, OUTCOME_SYSTEM)
        ]
        out.append(audit_events.c.outcome.in_(wanted) if wanted else false())
    return out


def _actor_ids(t: Token) -> list[str]:
    if t.system == RPPS_SYSTEM:
        return [f"rpps:{t.code}"]
    if t.system in INS_SYSTEMS:
        return [f"ins:{t.code.upper()}"]
    if t.system is None:
        return [f"rpps:{t.code}", f"ins:{t.code.upper()}", t.code]
    return []


def _agent_conds(param: TokenParam) -> list[ColumnElement[bool]]:
    out: list[ColumnElement[bool]] = []
    for values in param:
        ids = [i for t in values for i in _actor_ids(t)]
        out.append(audit_events.c.actor_id.in_(ids) if ids else false())
    return out


def _entity_conds(param: list[list[str]]) -> list[ColumnElement[bool]]:
    out: list[ColumnElement[bool]] = []
    for values in param:
        ors: list[ColumnElement[bool]] = []
        for ref in values:
            kind, _, ident = ref.rpartition("/")
            if kind.endswith("Patient"):
                ors.append(audit_events.c.record_id == ident)
            elif kind == "" or kind.endswith("DocumentReference"):
                ors.append(audit_events.c.doc_id == ident)
            else:
                raise InvalidInput(
                    f"entity={ref!r}: only DocumentReference and Patient entities are traced",
                    expression="entity",
                )
        out.append(or_(*ors))
    return out


def filter_conditions(c: AuditCriteria) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    conds += _dates(audit_events.c.recorded_at, c.date)
    conds += _action_conds(c.action)
    conds += _codes(c.subtype, ACTION_SYSTEM)
    conds += _outcome_conds(c.outcome)
    conds += _agent_conds(c.agent_identifier)
    conds += _entity_conds(c.entity)
    return conds


def _named_records(c: AuditCriteria) -> list[str] | None:
    """The records named by ``patient`` (repeated: all of them), None when not named."""
    if not c.record_ids:
        return None
    named: set[str] | None = None
    for values in c.record_ids:
        group = set(values)
        named = group if named is None else named & group
    out = sorted(named or ())
    if len(out) > MAX_RECORDS:
        raise InvalidInput(
            f"patient names {len(out)} records; at most {MAX_RECORDS} at once",
            expression="patient",
        )
    return out


# -- the scoped operation ----------------------------------------------------------------------


class AuditOps(ScopeBase):
    async def search_audit(self, criteria: AuditCriteria) -> AuditPage:
        """The traces this actor may read that match ``criteria``, newest first."""
        me = self.actor.id
        async with self.services.engine.begin() as conn:
            reach: dict[str, _Reach] = {}
            ins: dict[str, Ins] = {}
            refused: list[tuple[str, _Reach]] = []
            named = _named_records(criteria)
            every_record = False  # a professional's own traces on any record they still reach
            if named is not None:
                candidates = named
            elif self.actor.kind is ActorKind.PATIENT:
                candidates = await self._own_records(conn)
                candidates.append("")
            elif self.actor.kind is ActorKind.PROFESSIONAL:
                candidates, every_record = [], True
            else:
                candidates = []
            for rid in candidates:
                found = await self._reach(conn, rid, ins)
                if found.decision:
                    reach[rid] = found
                else:
                    refused.append((rid, found))
            scope = self._scope_condition(reach, every_record)
            items: list[StoredEvent] = []
            total = 0
            more = False
            if scope is not None:
                conds = [scope, *filter_conditions(criteria)]
                page_conds = list(conds)
                if criteria.cursor is not None:
                    ce, cr = criteria.cursor
                    page_conds.append(
                        or_(
                            audit_events.c.event_id < ce,
                            and_(audit_events.c.event_id == ce, audit_events.c.record_id < cr),
                        )
                    )
                rows = (
                    await conn.execute(
                        select(audit_events)
                        .where(*page_conds)
                        .order_by(audit_events.c.event_id.desc(), audit_events.c.record_id.desc())
                        .limit(criteria.count + 1)
                    )
                ).all()
                total = int(
                    (
                        await conn.execute(
                            select(func.count()).select_from(audit_events).where(*conds)
                        )
                    ).scalar_one()
                )
                more = len(rows) > criteria.count
                for row in rows[: criteria.count]:
                    event = event_from_row(row)
                    if event.record_id not in reach:  # every_record: decide as rows come
                        found = await self._reach(conn, event.record_id, ins)
                        reach[event.record_id] = found
                    r = reach[event.record_id]
                    if r.decision and (not r.own_only or event.actor_id == me):
                        items.append(event)  # the SQL scope is the policy; this is the guard
            await self._trace_reads(conn, items, reach, refused, every_record)
        last = items[-1] if items else None
        next_cursor = (last.event_id, last.record_id) if more and last else None
        return AuditPage(items, total, next_cursor, ins)

    async def _own_records(self, conn: AsyncConnection) -> list[str]:
        rows = await conn.execute(
            select(records.c.record_id).where(
                records.c.ins_value == (self.actor.ins or ""),
                records.c.state != RecordState.DESTROYED.value,
            )
        )
        return sorted(r[0] for r in rows)

    async def _reach(self, conn: AsyncConnection, record_id: str, ins: dict[str, Ins]) -> _Reach:
        if record_id == "":
            return _Reach(self.decide(Action.AUDIT_READ, None), None, True)
        record, facts = await self._load_record(conn, record_id)
        if record is not None:
            ins[record_id] = record.identity.ins
        exists = record is not None and record.state is not RecordState.DESTROYED
        return _Reach(self.decide(Action.AUDIT_READ, facts), facts, exists)

    def _scope_condition(
        self, reach: dict[str, _Reach], every_record: bool
    ) -> ColumnElement[bool] | None:
        ev = audit_events.c
        me = self.actor.id
        if every_record:
            reachable = select(records.c.record_id).where(
                records.c.state == RecordState.ACTIVE.value
            )
            return and_(ev.actor_id == me, or_(ev.record_id == "", ev.record_id.in_(reachable)))
        full = [rid for rid, r in reach.items() if not r.own_only]
        own = [rid for rid, r in reach.items() if r.own_only]
        ors: list[ColumnElement[bool]] = []
        if full:
            ors.append(ev.record_id.in_(full))
        if own:
            ors.append(and_(ev.record_id.in_(own), ev.actor_id == me))
        return or_(*ors) if ors else None

    async def _trace_reads(
        self,
        conn: AsyncConnection,
        items: list[StoredEvent],
        reach: dict[str, _Reach],
        refused: list[tuple[str, _Reach]],
        every_record: bool,
    ) -> None:
        """One ``audit.read`` per chain read (with how many events it returned), one per
        refusal. A record that does not exist gets no chain: its read is traced on the chain of
        no record, naming it."""
        returned: dict[str, int] = {}
        for event in items:
            returned[event.record_id] = returned.get(event.record_id, 0) + 1
        if every_record:
            chains = sorted(returned)
        else:
            chains = sorted(rid for rid in reach if rid or returned.get(rid))
        rows: list[dict[str, object]] = []

        def add(rid: str, decision: Decision, detail: str | None, exists: bool) -> None:
            if not exists:
                rid, detail = "", f"Patient/{rid}" + (f": {detail}" if detail else "")
            rows.append(
                trace_row(self.actor, Action.AUDIT_READ, rid, decision=decision, detail=detail)
            )

        for rid, r in refused:
            add(rid, r.decision, None, r.exists)
        for rid in chains:
            r = reach[rid]
            add(rid, r.decision, f"returned {returned.get(rid, 0)} events", r.exists)
        if not rows:  # a professional's search of their own traces that found nothing
            rows.append(
                trace_row(
                    self.actor,
                    Action.AUDIT_READ,
                    None,
                    decision=self.decide(Action.AUDIT_READ, None),
                    detail="returned 0 events",
                )
            )
        await write_traces(conn, rows)


__all__ = ["ACTION_SYSTEM", "AuditOps", "AuditPage", "fhir_action"]
