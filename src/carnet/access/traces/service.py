"""Reading the traces (dmp.md §5; docs/traces.md "Who reads what"), and verifying the chains.

The policy decides, for each record, whether the caller reads its traces at all
(``audit.read``), and for each trace whether they read that one (a professional other than the
médecin traitant reads only their own). The SQL narrows to what the policy would allow (asked
with a trace that is not the caller's: if that is allowed, every trace; else the caller's own),
and each trace returned is decided again. Naming a record one may not read gives an empty
result, never an error that would tell it exists; the refusal is traced. Reading traces is
itself traced (``audit.read``), one per chain read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import and_, false, func, not_, or_, select
from sqlalchemy.sql import ColumnElement

from carnet.access.context import Context
from carnet.access.facts import LoadedRecord
from carnet.access.policy import Decision, EventFacts
from carnet.access.unit_of_work import Unit
from carnet.domain.actions import Action
from carnet.domain.actors import ActorKind
from carnet.domain.audit_verify import VerifyReport
from carnet.domain.errors import Invalid, Reason, Refused
from carnet.domain.ins import Ins
from carnet.domain.records import RecordState
from carnet.domain.traces import ActionFilter, AuditCriteria, AuditPage, StoredEvent
from carnet.store.doc_query import _dates
from carnet.store.tables import audit_events, records
from carnet.store.trace_chain import event_from_row

MAX_RECORDS = 100
KNOWN_VERBS = frozenset(
    {
        "create",
        "objection",
        "read",
        "search",
        "status",
        "update",
        "replace",
        "mask",
        "lifecycle",
        "write",
        "authorise",
        "delete",
        "destroy",
    }
)


@dataclass(slots=True)
class _Reach:
    """What the caller may read of one record's chain."""

    decision: Decision
    loaded: LoadedRecord | None
    every: bool  # every trace, not only the caller's own
    exists: bool  # False: no such record (or destroyed): traced on the chain of no record


def _action_conds(groups: list[list[ActionFilter]]) -> list[ColumnElement[bool]]:
    col = audit_events.c.action
    out: list[ColumnElement[bool]] = []
    for filters in groups:
        ors: list[ColumnElement[bool]] = []
        for f in filters:
            if f.code is not None:
                ors.append(col == f.code)
            elif f.other_than:
                ors.append(and_(*[not_(col.like(f"%.{v}")) for v in sorted(f.verbs)]))
            elif f.verbs:
                ors.append(or_(*[col.like(f"%.{v}") for v in sorted(f.verbs)]))
        out.append(or_(*ors) if ors else false())
    return out


def _in(column: object, groups: list[list[str]]) -> list[ColumnElement[bool]]:
    return [column.in_(values) if values else false() for values in groups]  # type: ignore[attr-defined]


def filter_conditions(c: AuditCriteria) -> list[ColumnElement[bool]]:
    ev = audit_events.c
    conds: list[ColumnElement[bool]] = []
    conds += _dates(ev.recorded_at, c.date)
    conds += _action_conds(c.actions)
    conds += _in(ev.outcome, c.outcomes)
    conds += _in(ev.actor_id, c.actor_ids)
    for group in c.entities:
        ors = [(ev.record_id if kind == "record" else ev.doc_id) == ident for kind, ident in group]
        conds.append(or_(*ors) if ors else false())
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
        raise Invalid(
            f"the search names {len(out)} records; at most {MAX_RECORDS} at once",
            field="patient",
            reason=Reason.LIMIT,
        )
    return out


class TraceService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.actor = ctx.actor
        self.guard = ctx.guard

    async def search(self, criteria: AuditCriteria) -> AuditPage:
        """The traces this actor may read that match ``criteria``, newest first."""

        async def operation(unit: Unit) -> AuditPage:
            me = self.actor.id
            reach: dict[str, _Reach] = {}
            refused: list[tuple[str, _Reach]] = []
            ins: dict[str, Ins] = {}
            named = _named_records(criteria)
            every_record = False  # a professional's own traces on any record they still reach
            if named is not None:
                candidates = named
            elif self.actor.kind is ActorKind.PATIENT:
                candidates = await self._own_records(unit) + [""]
            elif self.actor.kind is ActorKind.PROFESSIONAL:
                candidates, every_record = [], True
            else:
                candidates = []
            loaded = await self.ctx.facts.load_many(unit, candidates)
            for rid in candidates:
                found = self._reach(rid, loaded.get(rid), ins)
                if found.decision:
                    reach[rid] = found
                else:
                    refused.append((rid, found))
            scope = self._scope(reach, every_record)
            items: list[StoredEvent] = []
            total = 0
            more = False
            if scope is not None:
                conds = [scope, *filter_conditions(criteria)]
                page_conds = list(conds)
                if criteria.cursor is not None:
                    ce, cr = criteria.cursor
                    ev = audit_events.c
                    page_conds.append(
                        or_(ev.event_id < ce, and_(ev.event_id == ce, ev.record_id < cr))
                    )
                rows = (
                    await unit.conn.execute(
                        select(audit_events)
                        .where(*page_conds)
                        .order_by(audit_events.c.event_id.desc(), audit_events.c.record_id.desc())
                        .limit(criteria.count + 1)
                    )
                ).all()
                total = int(
                    (
                        await unit.conn.execute(
                            select(func.count()).select_from(audit_events).where(*conds)
                        )
                    ).scalar_one()
                )
                more = len(rows) > criteria.count
                events = [event_from_row(r) for r in rows[: criteria.count]]
                unseen = sorted({e.record_id for e in events} - reach.keys() - {""})
                for rid, one in (await self.ctx.facts.load_many(unit, unseen)).items():
                    reach[rid] = self._reach(rid, one, ins)
                if any(e.record_id == "" for e in events) and "" not in reach:
                    reach[""] = self._reach("", None, ins)
                for event in events:
                    r = reach.get(event.record_id) or self._reach(event.record_id, None, ins)
                    facts = r.loaded.facts if r.loaded else None
                    if self.guard.allows(
                        Action.AUDIT_READ, facts, event=EventFacts(own=event.actor_id == me)
                    ):
                        items.append(event)
            self._trace_reads(unit, items, reach, refused, every_record)
            last = items[-1] if items else None
            next_cursor = (last.event_id, last.record_id) if more and last else None
            return AuditPage(items, total, next_cursor, ins)

        return await self.ctx.read(operation)

    async def _own_records(self, unit: Unit) -> list[str]:
        rows = await unit.conn.execute(
            select(records.c.record_id).where(
                records.c.ins_value == (self.actor.ins or ""),
                records.c.state != RecordState.DESTROYED.value,
            )
        )
        return sorted(r[0] for r in rows)

    def _reach(self, record_id: str, loaded: LoadedRecord | None, ins: dict[str, Ins]) -> _Reach:
        if record_id == "":
            decision = self.guard.allows(Action.AUDIT_READ, None)
            return _Reach(decision, None, False, True)
        if loaded is not None:
            ins[record_id] = loaded.record.identity.ins
        facts = loaded.facts if loaded else None
        exists = loaded is not None and loaded.record.state is not RecordState.DESTROYED
        decision = self.guard.allows(Action.AUDIT_READ, facts)
        every = bool(self.guard.allows(Action.AUDIT_READ, facts, event=EventFacts(own=False)))
        return _Reach(decision, loaded, every, exists)

    def _scope(self, reach: dict[str, _Reach], every_record: bool) -> ColumnElement[bool] | None:
        ev = audit_events.c
        me = self.actor.id
        if every_record:
            reachable = select(records.c.record_id).where(
                records.c.state == RecordState.ACTIVE.value
            )
            return and_(ev.actor_id == me, or_(ev.record_id == "", ev.record_id.in_(reachable)))
        full = [rid for rid, r in reach.items() if r.every]
        own = [rid for rid, r in reach.items() if not r.every]
        ors: list[ColumnElement[bool]] = []
        if full:
            ors.append(ev.record_id.in_(full))
        if own:
            ors.append(and_(ev.record_id.in_(own), ev.actor_id == me))
        return or_(*ors) if ors else None

    def _trace_reads(
        self,
        unit: Unit,
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
        traced = 0

        def add(rid: str, decision: Decision, detail: str | None, exists: bool) -> None:
            nonlocal traced
            if not exists:
                rid, detail = "", f"Patient/{rid}" + (f": {detail}" if detail else "")
            self.guard.trace(unit, Action.AUDIT_READ, decision, record_id=rid, detail=detail)
            traced += 1

        for rid, r in refused:
            add(rid, r.decision, None, r.exists)
        for rid in chains:
            r = reach[rid]
            add(rid, r.decision, f"returned {returned.get(rid, 0)} events", r.exists)
        if not traced:  # a professional's search of their own traces that found nothing
            self.guard.trace(
                unit,
                Action.AUDIT_READ,
                self.guard.allows(Action.AUDIT_READ, None),
                record_id=None,
                detail="returned 0 events",
            )

    # -- verification (the operator) -----------------------------------------------------------
    async def verify(
        self, progress: Callable[[int, int], None] | None = None, jobs: int | None = None
    ) -> VerifyReport:
        """``carnet audit verify``: recompute every chain (the operator only);
        ``progress(done, total)`` as it goes; ``jobs`` processes on PostgreSQL (None: one per
        core when the table is large)."""

        decision = self.guard.allows(Action.AUDIT_VERIFY, None)
        report = await self.ctx.verify_chains(progress, jobs) if decision else None

        async def trace(unit: Unit) -> None:
            detail = None
            if report is not None:
                detail = f"{report.events} events in {report.chains} chains, "
                detail += f"{len(report.problems)} problems"
            self.guard.trace(unit, Action.AUDIT_VERIFY, decision, record_id=None, detail=detail)
            if not decision:
                raise Refused(f"not allowed: {decision.reason}")

        await self.ctx.read(trace)
        assert report is not None
        return report
