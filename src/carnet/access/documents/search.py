"""Finding documents and submission sets (dmp.md §3; DMP TD3.1; IHE MHD ITI-67 and ITI-66).

A search is one decision per record it looks into (``document.search``: may this actor find
anything in this record at all), traced with what it returned; then every row is decided on its
own (``document.read``, the same decision a read takes), so that a search never shows what a
read would refuse. Rows are read in pages by keyset (``LIMIT`` in SQL), each page decided, until
the page asked for is full: the cost follows what is returned, not what the record holds. The
total counts what the caller may read, and costs one more pass only when the page did not
already see every candidate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import and_, or_, select
from sqlalchemy.sql import ColumnElement

from carnet.access.context import Context
from carnet.access.documents.repository import (
    DOC_COLUMNS,
    FACT_COLUMNS,
    DocumentRow,
    Prefixed,
    facts_of_row,
    open_document,
)
from carnet.access.facts import LoadedRecord, pg_facts_sql
from carnet.access.policy import Decision
from carnet.access.records.repository import open_record
from carnet.access.unit_of_work import Unit
from carnet.domain import trace_view as details
from carnet.domain.actions import Action
from carnet.domain.actors import AccessMode, ActorKind
from carnet.domain.content import Representation
from carnet.domain.documents import (
    DocumentPage,
    DocumentStatus,
    StoredFolder,
    StoredList,
    StoredSubmissionSet,
)
from carnet.domain.errors import Invalid, Reason
from carnet.domain.ins import names_an_ins
from carnet.domain.notifications import access_notices
from carnet.domain.records import RecordState
from carnet.domain.search import (
    DocumentCriteria,
    ListCriteria,
    TextParam,
    TokenParam,
    text_matches,
)
from carnet.store.doc_query import document_conditions, folder_conditions, list_conditions
from carnet.store.envelope import unpack
from carnet.store.tables import (
    consents,
    documents,
    folder_documents,
    folders,
    records,
    representatives,
    submission_sets,
)

SLACK = 8  # rows read beyond the page, so that a few refused rows cost no second query
MAX_NAMED = 100


@dataclass(slots=True)
class _Scan:
    """What a search met, record by record."""

    loaded: dict[str, LoadedRecord] = field(default_factory=dict)
    decisions: dict[str, Decision] = field(default_factory=dict)  # document.search, per record
    returned: dict[str, list[str]] = field(default_factory=dict)
    named: list[str] | None = None  # the records the search names (None: it names none)
    traced: set[str] = field(default_factory=set)  # the records whose decision is traced


class Searcher:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.actor = ctx.actor
        self.guard = ctx.guard

    # -- which records -----------------------------------------------------------------------
    async def _named(
        self, unit: Unit, record_ids: list[list[str]], identifiers: TokenParam
    ) -> list[str] | None:
        """The records a search names (every group of ``patient`` and ``patient.identifier``
        must match: their intersection), None when it names none."""
        groups: list[set[str]] = [set(g) for g in record_ids]
        for values in identifiers:
            ors = []
            for t in values:
                if names_an_ins(t.system):
                    ors.append(records.c.ins_value == t.code.upper())
            found: set[str] = set()
            if ors:
                rows = await unit.conn.execute(select(records.c.record_id).where(or_(*ors)))
                found = {r[0] for r in rows}
            groups.append(found)
        if not groups:
            return None
        named = set.intersection(*groups)
        if len(named) > MAX_NAMED:
            raise Invalid(
                f"the search names {len(named)} patients; at most {MAX_NAMED} at once",
                field="patient",
                reason=Reason.LIMIT,
            )
        return sorted(named)

    def _reachable(self) -> Any:
        """The records whose documents this actor may possibly be shown, when the search names
        none (SQL). It only keeps such a search from scanning other records; every record met
        is then decided, and every row."""
        active = records.c.state == RecordState.ACTIVE.value
        if self.actor.kind is ActorKind.PATIENT:
            ins = self.actor.ins or ""
            return select(records.c.record_id).where(
                records.c.state != RecordState.DESTROYED.value,
                or_(
                    records.c.ins_value == ins,
                    records.c.record_id.in_(
                        select(representatives.c.record_id).where(
                            representatives.c.representative_ins == ins
                        )
                    ),
                ),
            )
        if self.actor.kind is ActorKind.PROFESSIONAL:
            if self.actor.mode is not AccessMode.NORMAL:
                raise Invalid(
                    "an emergency access (bris_de_glace, centre_15) names its patient",
                    field="patient",
                    reason=Reason.MISSING,
                )
            names = [v for v in (self.actor.rpps, self.actor.structure) if v]
            return select(records.c.record_id).where(
                active,
                or_(
                    records.c.treating_physician == self.actor.id,
                    records.c.record_id.in_(
                        select(consents.c.record_id).where(
                            consents.c.actor_value.in_(names),
                            consents.c.status == "active",
                            consents.c.decision == "permit",
                        )
                    ),
                    records.c.record_id.in_(
                        select(documents.c.record_id).where(documents.c.author_id == self.actor.id)
                    ),
                ),
            )
        return None

    async def _decide_records(self, unit: Unit, scan: _Scan, record_ids: Sequence[str]) -> None:
        new = [r for r in record_ids if r not in scan.loaded]
        if not new:
            return
        scan.loaded.update(await self.ctx.facts.load_many(unit, new))
        for rid in new:
            one = scan.loaded.get(rid)
            if one is not None:
                scan.decisions[rid] = self.guard.allows(Action.DOCUMENT_SEARCH, one.facts)

    # -- ITI-67 ---------------------------------------------------------------------------------
    async def search(self, criteria: DocumentCriteria) -> DocumentPage:
        _check_named(criteria.record_ids, criteria.patient_identifiers)

        async def operation(unit: Unit) -> DocumentPage:
            self.guard.check_scope(unit, Action.DOCUMENT_SEARCH, _patients_named(criteria))
            scans = [_Scan()]
            try:
                return await self._search(unit, scans, criteria)
            except BaseException:
                self._trace_failed(unit, scans[-1], Action.DOCUMENT_SEARCH)
                raise

        return await self.ctx.read(operation)

    async def _search(
        self, unit: Unit, scans: list[_Scan], criteria: DocumentCriteria
    ) -> DocumentPage:
        """``scans[-1]``: what the search met so far (traced if it fails)."""
        if unit.pg and _one_patient(criteria):
            fast = await self._one_patient_pg(unit, scans[-1], criteria)
            if fast is not None:
                return fast
            scans.append(_Scan())
        scan = scans[-1]
        named = await self._named(unit, criteria.record_ids, criteria.patient_identifiers)
        scan.named = named
        conds: list[ColumnElement[bool]] = document_conditions(criteria)
        conds.append(documents.c.status != DocumentStatus.DELETED.value)
        if criteria.archived is not None:
            conds.append(documents.c.archived == criteria.archived)
        elif not (criteria.ids or criteria.identifier):
            conds.append(documents.c.archived == False)  # noqa: E712 - SQL expression
        if named is not None:
            await self._decide_records(unit, scan, named)
            allowed = [r for r, d in scan.decisions.items() if d]
            conds.append(documents.c.record_id.in_(allowed))
        else:
            reach = self._reachable()
            if reach is None:
                return DocumentPage([], 0, None, [])
            conds.append(documents.c.record_id.in_(reach))
        rows, more, exhausted = await self._page(unit, scan, conds, criteria)
        total = len(rows)
        if not (exhausted and criteria.cursor is None):
            total = await self._count(unit, scan, conds)
        items = [await open_document(unit, r) for r in rows]
        for doc in items:
            scan.returned.setdefault(doc.record_id, []).append(doc.doc_id)
        self._trace(unit, scan, named)
        included = []
        if criteria.include_subject:
            for rid in scan.returned:
                one = scan.loaded[rid]
                if self.guard.allows(Action.RECORD_READ, one.facts):
                    included.append(await open_record(unit, one.record, one.sealed))
        last = items[-1] if items else None
        next_cursor = (last.date, last.doc_id) if more and last and last.date else None
        return DocumentPage(items, total, next_cursor, included)

    async def _one_patient_pg(
        self, unit: Unit, scan: _Scan, criteria: DocumentCriteria
    ) -> DocumentPage | None:
        """PostgreSQL, the common ITI-67 search (one patient, no filter but paging): the
        record's facts and the page's rows in one round trip. None when the page needs more rows
        than one read gives (refused rows in the way): the general path takes over."""
        limit = criteria.count + 1 + SLACK
        cursor = criteria.cursor
        if criteria.record_ids:
            sql = PG_PAGE_BY_ID_DESC if criteria.sort_desc else PG_PAGE_BY_ID_ASC
            first: str | None = criteria.record_ids[0][0]
            second: str | None = None
        else:
            token = criteria.patient_identifiers[0][0]
            sql = PG_PAGE_BY_INS_DESC if criteria.sort_desc else PG_PAGE_BY_INS_ASC
            first = None  # an INS is matched on its value, whatever its OID
            second = token.code.upper()
            if not names_an_ins(token.system):
                return None  # not an INS system: the general path, which matches nothing
        loaded, rows = await self.ctx.facts.load_pg_rows(
            unit,
            sql,
            first,
            second,
            cursor is not None,
            cursor[0] if cursor else None,
            cursor[1] if cursor else None,
            limit,
        )
        if loaded is None:
            self._trace_missing(unit, Action.DOCUMENT_SEARCH, scan, [])
            return DocumentPage([], 0, None, [])
        rid = loaded.record_id
        scan.named = [rid]
        scan.loaded[rid] = loaded
        scan.decisions[rid] = decision = self.guard.allows(Action.DOCUMENT_SEARCH, loaded.facts)
        found = [DocumentRow(Prefixed(m)) for m in rows if m["d_doc_id"] is not None]
        out: list[DocumentRow] = []
        if decision:
            for row in found:
                if self._visible(scan, rid, row.m):
                    out.append(row)
        more = len(out) > criteria.count
        if not more and len(found) == limit:
            return None  # refused rows filled the read: read on, the general way
        out = out[: criteria.count]
        total = len(out)
        if more or cursor is not None:
            conds = [
                documents.c.record_id == rid,
                documents.c.status != DocumentStatus.DELETED.value,
                documents.c.archived == False,  # noqa: E712 - SQL expression
            ]
            total = await self._count(unit, scan, conds) if decision else 0
        key = await unit.key(rid) if out else b""
        items = [r.stored(unit.unseal_with(key, rid, bytes(r.m["resource"]))) for r in out]
        for doc in items:
            scan.returned.setdefault(rid, []).append(doc.doc_id)
        self._trace(unit, scan, [rid])
        included = []
        if (
            criteria.include_subject
            and items
            and self.guard.allows(Action.RECORD_READ, loaded.facts)
        ):
            included.append(await open_record(unit, loaded.record, loaded.sealed))
        last = items[-1] if items else None
        next_cursor = (last.date, last.doc_id) if more and last and last.date else None
        return DocumentPage(items, total, next_cursor, included)

    def _order(self, criteria: DocumentCriteria) -> tuple[Any, ...]:
        d = documents.c
        return (d.date.desc(), d.doc_id.desc()) if criteria.sort_desc else (d.date, d.doc_id)

    def _after(self, key: tuple[datetime, str], desc: bool) -> ColumnElement[bool]:
        d = documents.c
        date, doc_id = key
        if desc:
            return or_(d.date < date, and_(d.date == date, d.doc_id < doc_id))
        return or_(d.date > date, and_(d.date == date, d.doc_id > doc_id))

    async def _page(
        self,
        unit: Unit,
        scan: _Scan,
        conds: list[ColumnElement[bool]],
        criteria: DocumentCriteria,
    ) -> tuple[list[DocumentRow], bool, bool]:
        """The rows of the page (each decided), whether more follow, and whether every
        candidate was seen."""
        want = criteria.count + 1
        out: list[DocumentRow] = []
        key = criteria.cursor
        while True:
            page_conds = list(conds)
            if key is not None:
                page_conds.append(self._after(key, criteria.sort_desc))
            limit = want - len(out) + SLACK
            rows = [
                DocumentRow(r._mapping)
                for r in await unit.conn.execute(
                    select(documents)
                    .where(*page_conds)
                    .order_by(*self._order(criteria))
                    .limit(limit)
                )
            ]
            await self._decide_records(unit, scan, [r.record_id for r in rows])
            for row in rows:
                if self._visible(scan, row.record_id, row.m):
                    out.append(row)
                    if len(out) == want:
                        return out[: criteria.count], True, False
            if len(rows) < limit:
                return out, False, True
            key = (rows[-1].m["date"], rows[-1].doc_id)

    def _visible(self, scan: _Scan, record_id: str, m: Any) -> bool:
        decision = scan.decisions.get(record_id)
        if not decision:
            return False
        return bool(
            self.guard.allows(Action.DOCUMENT_READ, scan.loaded[record_id].facts, facts_of_row(m))
        )

    async def _count(self, unit: Unit, scan: _Scan, conds: list[ColumnElement[bool]]) -> int:
        """Every candidate's facts only, decided one by one: the total a read would allow."""
        rows = (await unit.conn.execute(select(*FACT_COLUMNS).where(*conds))).all()
        await self._decide_records(unit, scan, sorted({r._mapping["record_id"] for r in rows}))
        return sum(1 for r in rows if self._visible(scan, r._mapping["record_id"], r._mapping))

    def _trace(self, unit: Unit, scan: _Scan, named: list[str] | None) -> None:
        """One ``document.search`` per record looked into: every record named; for a search
        naming none, the records it returned documents of and the records it was refused."""
        if named is not None:
            traced = sorted(named)
            self._trace_missing(unit, Action.DOCUMENT_SEARCH, scan, named)
        else:
            refused = {rid for rid, d in scan.decisions.items() if not d}
            traced = sorted(set(scan.returned) | refused)
        for rid in traced:
            decision = scan.decisions.get(rid)
            if decision is None or rid in scan.traced:
                continue  # no such record: traced above, on the chain of no record
            scan.traced.add(rid)
            returned = scan.returned.get(rid, [])
            self.guard.trace(
                unit,
                Action.DOCUMENT_SEARCH,
                decision,
                record_id=rid,
                detail=details.returned(returned) if decision else None,
            )
            if returned and self.actor.kind is ActorKind.PROFESSIONAL:
                one = scan.loaded[rid]
                for row in access_notices(
                    self.actor,
                    rid,
                    one.patient_id,
                    one.preferences,
                    None,
                    one.record.treating_physician,
                ):
                    unit.notice(row)

    def _trace_missing(self, unit: Unit, action: Action, scan: _Scan, named: list[str]) -> None:
        """A search naming a record that does not exist (or an INS no record has) is traced as
        a refused one is, on the chain of no record: to its actor the two look alike."""
        missing = [rid for rid in named if rid not in scan.decisions] or ([] if named else [""])
        for _ in missing:
            self.guard.trace(unit, action, self.guard.allows(action, None), record_id=None)

    def _trace_failed(self, unit: Unit, scan: _Scan, action: Action) -> None:
        """The search failed after deciding (a client's mistake found late, the store…): the
        decisions it took stay traced, as they would have been (every record named; for a
        search naming none, the records refused), the allowed ones then saying ``failed: …``
        (the unit of work). A search rejected before it named a record took no decision."""
        if scan.named is not None:
            met = sorted(scan.named)
        else:
            met = sorted(rid for rid, d in scan.decisions.items() if not d)
        for rid in met:
            decision = scan.decisions.get(rid)
            if decision is None or rid in scan.traced:
                continue
            scan.traced.add(rid)
            self.guard.trace(unit, action, decision, record_id=rid)

    # -- ITI-66 ---------------------------------------------------------------------------------
    async def lists(
        self, criteria: ListCriteria
    ) -> tuple[list[StoredList], int, tuple[datetime, str] | None]:
        """Submission sets and folders, each shown with only the documents the caller may read,
        and not at all when it has none; ``total`` and paging count what is shown."""

        _check_named(criteria.record_ids, criteria.patient_identifiers)

        async def operation(
            unit: Unit,
        ) -> tuple[list[StoredList], int, tuple[datetime, str] | None]:
            self.guard.check_scope(unit, Action.LIST_SEARCH, _patients_named(criteria))
            scan = _Scan()
            try:
                return await self._lists(unit, scan, criteria)
            except BaseException:
                self._trace_failed(unit, scan, Action.LIST_SEARCH)
                raise

        return await self.ctx.read(operation)

    async def _lists(
        self, unit: Unit, scan: _Scan, criteria: ListCriteria
    ) -> tuple[list[StoredList], int, tuple[datetime, str] | None]:
        named = await self._named(unit, criteria.record_ids, criteria.patient_identifiers)
        scan.named = named
        s = submission_sets.c
        f = folders.c
        set_conds = list_conditions(criteria)
        folder_conds = folder_conditions(criteria)
        if criteria.set_ids:
            set_conds.append(s.set_id.in_(criteria.set_ids))
            folder_conds.append(f.folder_id.in_(criteria.set_ids))
        if named is not None:
            await self._decide_records(unit, scan, named)
            allowed = [r for r, d in scan.decisions.items() if d]
            set_conds.append(s.record_id.in_(allowed))
            folder_conds.append(f.record_id.in_(allowed))
        else:
            reach = self._reachable()
            if reach is None:
                return [], 0, None
            set_conds.append(s.record_id.in_(reach))
            folder_conds.append(f.record_id.in_(reach))
        sets = (
            await unit.conn.execute(
                select(s.record_id, s.set_id, s.submission_time).where(*set_conds)
            )
        ).all()
        found_folders = (
            await unit.conn.execute(
                select(f.record_id, f.folder_id, f.last_updated).where(*folder_conds)
            )
        ).all()
        await self._decide_records(
            unit, scan, sorted({r.record_id for r in sets} | {r.record_id for r in found_folders})
        )
        visible: dict[str, list[str]] = {}  # list id → the documents the caller may read
        d = documents.c
        if sets:
            doc_rows = await unit.conn.execute(
                select(d.submission_set_id, *FACT_COLUMNS)
                .where(
                    d.record_id.in_({r.record_id for r in sets}),
                    d.submission_set_id.in_([r.set_id for r in sets]),
                )
                .order_by(d.doc_id)
            )
            for m in (r._mapping for r in doc_rows):
                if self._visible(scan, m["record_id"], m):
                    visible.setdefault(m["submission_set_id"], []).append(m["doc_id"])
        if found_folders:
            fd = folder_documents.c
            filed = await unit.conn.execute(
                select(fd.folder_id, *FACT_COLUMNS)
                .select_from(
                    folder_documents.join(
                        documents, and_(d.record_id == fd.record_id, d.doc_id == fd.doc_id)
                    )
                )
                .where(
                    fd.record_id.in_({r.record_id for r in found_folders}),
                    fd.folder_id.in_([r.folder_id for r in found_folders]),
                )
                .order_by(fd.added_at, d.doc_id)
            )
            for m in (r._mapping for r in filed):
                if self._visible(scan, m["record_id"], m):
                    visible.setdefault(m["folder_id"], []).append(m["doc_id"])
        # a submission set or a folder is shown with the documents the caller may read, and not
        # at all when it has none (a read of it is refused alike)
        candidates = [(r.submission_time, r.set_id, r.record_id, False) for r in sets]
        candidates += [(r.last_updated, r.folder_id, r.record_id, True) for r in found_folders]
        shown = sorted((c for c in candidates if visible.get(c[1])), reverse=True)
        if criteria.title:
            # the title is sealed (it may be clinical): every candidate the caller may see is
            # opened and matched here, so that the total counts exactly what is shown
            rows = await self._full_lists(unit, shown)
            kept = []
            for c in shown:
                core, source = unpack(await unit.unseal(c[2], bytes(rows[c[1]]["resource"])))
                if _title_matches(core, source, criteria.title):
                    kept.append(c)
            shown = kept
        start = 0
        if criteria.cursor is not None:
            key = criteria.cursor
            start = next((i for i, c in enumerate(shown) if (c[0], c[1]) < key), len(shown))
        page = shown[start : start + criteria.count]
        out: list[StoredList] = []
        if page:
            full = await self._full_lists(unit, page)
            for when, list_id, rid, is_folder in page:
                m = full[list_id]
                core, source = unpack(await unit.unseal(rid, bytes(m["resource"])))
                shown_docs = _in_order(visible[list_id], core)
                if is_folder:
                    out.append(
                        StoredFolder(
                            record_id=rid,
                            folder_id=list_id,
                            unique_id=m["unique_id"],
                            entry_uuid=m["entry_uuid"],
                            created_at=m["created_at"],
                            last_updated=when,
                            documents=shown_docs,
                            source=source,
                        )
                    )
                    continue
                out.append(
                    StoredSubmissionSet(
                        record_id=m["record_id"],
                        set_id=m["set_id"],
                        unique_id=m["unique_id"],
                        source_id=m["source_id"],
                        submission_time=m["submission_time"],
                        author_id=m["author_id"],
                        created_at=m["created_at"],
                        documents=shown_docs,
                        source=source,
                        entry_uuid=m["entry_uuid"],
                    )
                )
        # one decision per record looked into: each named; for a search naming none, each
        # returned from and each refused
        if named is not None:
            traced = sorted(named)
            self._trace_missing(unit, Action.LIST_SEARCH, scan, named)
        else:
            refused = {rid for rid, dec in scan.decisions.items() if not dec}
            traced = sorted({c[2] for c in page} | refused)
        for rid in traced:
            decision = scan.decisions.get(rid)
            if decision is None or rid in scan.traced:
                continue  # no such record: traced above, on the chain of no record
            scan.traced.add(rid)
            returned = [c[1] for c in page if c[2] == rid]
            self.guard.trace(
                unit,
                Action.LIST_SEARCH,
                decision,
                record_id=rid,
                detail=details.returned(returned) if decision else None,
            )
        nxt = None
        if start + criteria.count < len(shown) and page:
            nxt = (page[-1][0], page[-1][1])
        return out, len(shown), nxt

    async def _full_lists(
        self, unit: Unit, page: list[tuple[datetime, str, str, bool]]
    ) -> dict[str, Any]:
        """The rows of the page's submission sets and folders, by their id."""
        full: dict[str, Any] = {}
        s = submission_sets.c
        f = folders.c
        for table, key, is_folder in (
            (submission_sets, s.set_id, False),
            (folders, f.folder_id, True),
        ):
            ids = [c[1] for c in page if c[3] is is_folder]
            if not ids:
                continue
            rids = {c[2] for c in page if c[3] is is_folder}
            rows = await unit.conn.execute(
                select(table).where(table.c.record_id.in_(rids), key.in_(ids))
            )
            for r in rows:
                full[r._mapping[key.name]] = r._mapping
        return full


def _title_matches(core: bytes | None, source: Representation | None, title: TextParam) -> bool:
    """Every ``title`` parameter (AND) has a value (OR) that the list's sealed title matches
    (the submission set's, or the title of the List the client sent)."""
    text = orjson.loads(core).get("title") if core else None
    if text is None and source is not None and source.media_type == "application/fhir+json":
        text = orjson.loads(source.data).get("title")
    return all(any(text_matches(text, t) for t in values) for values in title)


def _check_named(record_ids: list[list[str]], identifiers: TokenParam) -> None:
    """At most :data:`MAX_NAMED` patients at once, counted on the request itself: a search
    naming more is the client's mistake, refused before any record is looked up (no decision,
    no trace; nor does the answer depend on which of them exist)."""
    sizes = [len(set(g)) for g in record_ids] + [len(set(g)) for g in identifiers]
    if sizes and min(sizes) > MAX_NAMED:
        raise Invalid(
            f"the search names {min(sizes)} patients; at most {MAX_NAMED} at once",
            field="patient",
            reason=Reason.LIMIT,
        )


def _patients_named(c: DocumentCriteria | ListCriteria) -> int:
    """How many patients a search names: each ``patient`` or ``patient.identifier`` parameter
    is one group of alternatives (an INS by its value, whatever its OID) and the groups must all
    match, so the search names as many as its widest group (0 when it names none)."""
    groups = [{v for v in g} for g in c.record_ids]
    groups += [{t.code.upper() for t in values} for values in c.patient_identifiers]
    return max((len(g) for g in groups), default=0)


def _one_patient(c: DocumentCriteria) -> bool:
    """The search names one patient (by record id, or by one INS) and filters nothing else."""
    named = (
        len(c.record_ids) == 1 and len(c.record_ids[0]) == 1 and not c.patient_identifiers
    ) or (
        len(c.patient_identifiers) == 1 and len(c.patient_identifiers[0]) == 1 and not c.record_ids
    )
    filters = (
        c.ids,
        c.identifier,
        c.type,
        c.category,
        c.status,
        c.setting,
        c.facility,
        c.format,
        c.security_label,
        c.author_identifier,
        c.date,
        c.period,
        c.creation,
        c.period_start,
        c.period_end,
        c.last_updated,
        c.author_given,
        c.author_family,
        c.event,
        c.related,
        c.relates_to,
    )
    return named and not any(filters) and c.archived is None


_PG_PAGE = """ LEFT JOIN LATERAL (
  SELECT {columns} FROM documents d
   WHERE d.record_id = r.record_id AND d.status <> 'entered-in-error' AND NOT d.archived
     AND (NOT $5::boolean OR (d.date, d.doc_id) {cmp} ($6::timestamp, $7::text))
   ORDER BY d.date {order}, d.doc_id {order}
   LIMIT $8) d ON true"""


def _page_sql(by_ins: bool, desc: bool) -> str:
    page = _PG_PAGE.format(
        columns=DOC_COLUMNS, cmp="<" if desc else ">", order="DESC" if desc else "ASC"
    )
    return pg_facts_sql(", d.*", by_ins=by_ins, join=page)


PG_PAGE_BY_ID_DESC = _page_sql(False, True)
PG_PAGE_BY_ID_ASC = _page_sql(False, False)
PG_PAGE_BY_INS_DESC = _page_sql(True, True)
PG_PAGE_BY_INS_ASC = _page_sql(True, False)


def _in_order(doc_ids: list[str], core: bytes | None) -> list[str]:
    """A submission set's documents in the order it carried them."""
    order: list[str] = orjson.loads(core)["documents"] if core else []
    rank = {d: n for n, d in enumerate(order)}
    return sorted(doc_ids, key=lambda d: (rank.get(d, len(order)), d))
