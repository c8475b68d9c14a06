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
from dataclasses import dataclass, field

from sqlalchemy import and_, false, func, not_, or_, select, true
from sqlalchemy.sql import ColumnElement

from carnet.access.context import Context
from carnet.access.documents.repository import FACT_COLUMNS, facts_of_row, record_id_of
from carnet.access.facts import LoadedRecord
from carnet.access.policy import Decision, EventFacts
from carnet.access.unit_of_work import Unit
from carnet.domain.actions import Action
from carnet.domain.actors import ActorKind
from carnet.domain.audit_verify import VerifyReport
from carnet.domain.errors import Invalid, Reason, Refused
from carnet.domain.ins import Ins
from carnet.domain.records import RecordState
from carnet.domain.trace_view import NAMING_ACTIONS, Reading, refs_of, view
from carnet.domain.traces import DENY, ActionFilter, AuditCriteria, AuditPage, StoredEvent
from carnet.store.doc_query import _dates
from carnet.store.tables import audit_events, documents, folder_documents, records
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
class _Documents:
    """What the reader may read now of the documents the traces name."""

    readable: dict[str, bool] = field(default_factory=dict)
    of_binary: dict[str, tuple[str, ...]] = field(default_factory=dict)
    of_set: dict[str, tuple[str, ...]] = field(default_factory=dict)


def _named_documents(c: AuditCriteria) -> list[str]:
    return [ident for group in c.entities for kind, ident in group if kind == "document"]


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


def filter_conditions(
    c: AuditCriteria, *, exclude_entities: bool = False
) -> list[ColumnElement[bool]]:
    ev = audit_events.c
    conds: list[ColumnElement[bool]] = []
    conds += _dates(ev.recorded_at, c.date)
    conds += _action_conds(c.actions)
    conds += _in(ev.outcome, c.outcomes)
    conds += _in(ev.actor_id, c.actor_ids)
    for group in [] if exclude_entities else c.entities:
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
        """The traces this actor may read that match ``criteria``, newest first, each as this
        actor may see it (:mod:`carnet.domain.trace_view`)."""

        named = _named_records(criteria)  # too many: the client's mistake, before any decision

        async def operation(unit: Unit) -> AuditPage:
            reach: dict[str, _Reach] = {}
            refused: list[tuple[str, _Reach]] = []
            try:
                return await self._search(unit, criteria, named, reach, refused)
            except BaseException:
                # decided, then failed: the decisions taken stay traced (docs/traces.md)
                if not unit.events:
                    for rid, r in [*refused, *reach.items()]:
                        if rid:
                            self._trace_one(unit, rid, r.decision, None, r.exists)
                raise

        return await self.ctx.read(operation)

    async def _search(
        self,
        unit: Unit,
        criteria: AuditCriteria,
        named: list[str] | None,
        reach: dict[str, _Reach],
        refused: list[tuple[str, _Reach]],
    ) -> AuditPage:
        """The search itself; ``reach`` and ``refused``: the decisions taken, as they are."""
        ins: dict[str, Ins] = {}
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
        docs = _Documents()
        await self._learn(unit, docs, reach, ins, _named_documents(criteria), [], [])
        scope = self._scope(reach, every_record, named is not None)
        items: list[StoredEvent] = []
        total = 0
        more = False
        if scope is not None:
            conds = [scope, *await self._filters(unit, criteria, reach, docs, ins)]
            page_conds = list(conds)
            if criteria.cursor is not None:
                ce, cr = criteria.cursor
                ev = audit_events.c
                page_conds.append(or_(ev.event_id < ce, and_(ev.event_id == ce, ev.record_id < cr)))
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
                own = event.actor_id == self.me
                if self.guard.allows(
                    Action.AUDIT_READ,
                    facts,
                    event=EventFacts(own=own, refusal=own and event.outcome == DENY),
                ):
                    items.append(event)
            refs = [refs_of(e) for e in items]
            await self._learn(
                unit,
                docs,
                reach,
                ins,
                [d for r in refs for d in r.doc_ids],
                [b for r in refs for b in r.binary_ids],
                [x for r in refs for x in r.set_ids],
            )
        self._trace_reads(unit, items, reach, refused, every_record)
        reading = self._reading(reach, docs)
        shown = [view(e, reading) for e in items]
        last = shown[-1] if shown else None
        next_cursor = (last.event_id, last.record_id) if more and last else None
        return AuditPage(shown, total, next_cursor, ins)

    @property
    def me(self) -> str:
        return self.actor.id

    # -- what the reader may read of the documents traces name ----------------------------------
    def _reading(self, reach: dict[str, _Reach], docs: _Documents) -> Reading:
        return Reading(
            reader_id=self.me,
            full_records=frozenset(rid for rid, r in reach.items() if r.every and rid),
            readable=lambda doc_id: docs.readable.get(doc_id, False),
            binary_docs=docs.of_binary,
            set_docs=docs.of_set,
        )

    async def _learn(
        self,
        unit: Unit,
        docs: _Documents,
        reach: dict[str, _Reach],
        ins: dict[str, Ins],
        doc_ids: list[str],
        binary_ids: list[str],
        set_ids: list[str],
    ) -> None:
        """Decide, untraced, whether the reader may read now each document named (directly, by
        its content, or by its submission set); a document that does not exist is not readable.
        """
        d = documents.c
        new_binaries = sorted(set(binary_ids) - docs.of_binary.keys())
        new_sets = sorted(set(set_ids) - docs.of_set.keys())
        if new_binaries or new_sets:
            ors: list[ColumnElement[bool]] = []
            if new_binaries:
                ors.append(
                    and_(
                        d.record_id.in_({record_id_of(b) for b in new_binaries}),
                        d.binary_id.in_(new_binaries),
                    )
                )
            if new_sets:
                ors.append(
                    and_(
                        d.record_id.in_({record_id_of(x) for x in new_sets}),
                        d.submission_set_id.in_(new_sets),
                    )
                )
            for b in new_binaries:
                docs.of_binary[b] = ()
            for x in new_sets:
                docs.of_set[x] = ()
            for row in await unit.conn.execute(
                select(d.doc_id, d.binary_id, d.submission_set_id).where(or_(*ors))
            ):
                if row.binary_id in docs.of_binary:
                    docs.of_binary[row.binary_id] += (row.doc_id,)
                if row.submission_set_id in docs.of_set:
                    docs.of_set[row.submission_set_id] += (row.doc_id,)
                doc_ids.append(row.doc_id)
            if new_sets:  # a list search returns folders too: the documents they file
                fd = folder_documents.c
                filed = await unit.conn.execute(
                    select(fd.folder_id, fd.doc_id).where(
                        fd.record_id.in_({record_id_of(x) for x in new_sets}),
                        fd.folder_id.in_(new_sets),
                    )
                )
                for folder_id, doc_id in filed:
                    docs.of_set[folder_id] += (doc_id,)
                    doc_ids.append(doc_id)
        wanted = sorted(set(doc_ids) - docs.readable.keys())
        if not wanted:
            return
        for doc_id in wanted:
            docs.readable[doc_id] = False
        rids = {record_id_of(x) for x in wanted}
        for rid, one in (await self.ctx.facts.load_many(unit, rids - reach.keys())).items():
            reach[rid] = self._reach(rid, one, ins)
        rows = await unit.conn.execute(
            select(*FACT_COLUMNS).where(d.record_id.in_(rids), d.doc_id.in_(wanted))
        )
        for m in (r._mapping for r in rows):
            r = reach.get(m["record_id"])
            facts = r.loaded.facts if r is not None and r.loaded is not None else None
            docs.readable[m["doc_id"]] = bool(
                self.guard.allows(Action.DOCUMENT_READ, facts, facts_of_row(m))
            )

    async def _filters(
        self,
        unit: Unit,
        criteria: AuditCriteria,
        reach: dict[str, _Reach],
        docs: _Documents,
        ins: dict[str, Ins],
    ) -> list[ColumnElement[bool]]:
        """The criteria as SQL, matching events as the reader sees them: a document the reader
        may not read is found only in the reader's own refusals that name it (as a missing one
        would be), and a search by record leaves out the reader's refusals, which are shown
        tied to no record."""
        ev = audit_events.c
        me = self.me
        conds = filter_conditions(criteria, exclude_entities=True)
        for group in criteria.entities:
            ors: list[ColumnElement[bool]] = []
            for kind, ident in group:
                if kind == "record":
                    ors.append(ev.record_id == ident)
                elif docs.readable.get(ident, False):
                    ors.append(ev.doc_id == ident)
                else:
                    ors.append(
                        and_(
                            ev.doc_id == ident,
                            ev.actor_id == me,
                            ev.outcome == DENY,
                            ev.action.in_(sorted(NAMING_ACTIONS)),
                            or_(ev.detail.is_(None), not_(ev.detail.like("content Binary/%"))),
                        )
                    )
            conds.append(or_(*ors) if ors else false())
        by_record = criteria.record_ids or any(
            kind == "record" for group in criteria.entities for kind, _ in group
        )
        if by_record:
            full = sorted(rid for rid, r in reach.items() if r.every and rid)
            hidden = await self._unreadable_documents(unit, full, reach, docs, ins)
            refusal: list[ColumnElement[bool]] = [ev.record_id.notin_(full) if full else true()]
            if hidden:
                refusal.append(ev.doc_id.in_(hidden))
            conds.append(
                not_(and_(ev.actor_id == me, ev.outcome == DENY, or_(ev.record_id == "", *refusal)))
            )
        return conds

    async def _unreadable_documents(
        self,
        unit: Unit,
        record_ids: list[str],
        reach: dict[str, _Reach],
        docs: _Documents,
        ins: dict[str, Ins],
    ) -> list[str]:
        """The documents of these records the reader may not read now."""
        if not record_ids:
            return []
        d = documents.c
        rows = await unit.conn.execute(select(d.doc_id).where(d.record_id.in_(record_ids)))
        await self._learn(unit, docs, reach, ins, [r.doc_id for r in rows], [], [])
        return sorted(
            x for x, ok in docs.readable.items() if not ok and record_id_of(x) in record_ids
        )

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

    def _scope(
        self, reach: dict[str, _Reach], every_record: bool, named: bool
    ) -> ColumnElement[bool] | None:
        """Which events: of the records reached, every one or the reader's own; and, unless
        records are named, the reader's own refusals wherever they are (each shown as a refusal
        of something missing, as a read of a missing id is)."""
        ev = audit_events.c
        me = self.actor.id
        own_refusals = and_(ev.actor_id == me, ev.outcome == DENY)
        if every_record:
            reachable = select(records.c.record_id).where(
                records.c.state == RecordState.ACTIVE.value
            )
            return and_(
                ev.actor_id == me,
                or_(ev.record_id == "", ev.record_id.in_(reachable), ev.outcome == DENY),
            )
        full = [rid for rid, r in reach.items() if r.every]
        own = [rid for rid, r in reach.items() if not r.every]
        ors: list[ColumnElement[bool]] = []
        if full:
            ors.append(ev.record_id.in_(full))
        if own:
            ors.append(and_(ev.record_id.in_(own), ev.actor_id == me))
        if not named and self.actor.kind in (ActorKind.PATIENT, ActorKind.PROFESSIONAL):
            ors.append(own_refusals)
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
            self._trace_one(unit, rid, decision, detail, exists)
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

    def _trace_one(
        self, unit: Unit, rid: str, decision: Decision, detail: str | None, exists: bool
    ) -> None:
        """One ``audit.read``; a record that does not exist gets no chain: its read is traced on
        the chain of no record, naming it."""
        if not exists:
            rid, detail = "", f"Patient/{rid}" + (f": {detail}" if detail else "")
        self.guard.trace(unit, Action.AUDIT_READ, decision, record_id=rid, detail=detail)

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
