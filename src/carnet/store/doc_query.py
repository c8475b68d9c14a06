"""SQL conditions for document and submission-set searches (FHIR search semantics:
http://hl7.org/fhir/R4/search.html#token and #date)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, exists, false, not_, or_, select
from sqlalchemy.sql import ColumnElement

from carnet.domain.ins import names_an_ins
from carnet.domain.search import (
    DateParam,
    DocumentCriteria,
    ListCriteria,
    RefParam,
    Text,
    TextParam,
    Token,
    TokenParam,
)
from carnet.store.tables import (
    document_authors,
    document_events,
    document_related,
    documents,
    folders,
    records,
    submission_sets,
)


def _token(column: Any, system_column: Any | None, param: TokenParam) -> list[ColumnElement[bool]]:
    out: list[ColumnElement[bool]] = []
    for values in param:
        ors: list[ColumnElement[bool]] = []
        for t in values:
            cond: ColumnElement[bool] = column == t.code
            if system_column is not None and t.system:
                cond = and_(cond, system_column == t.system)
            ors.append(cond)
        out.append(or_(*ors) if ors else false())
    return out


def _dates(column: Any, param: DateParam) -> list[ColumnElement[bool]]:
    out: list[ColumnElement[bool]] = []
    for d in param:
        p = d.prefix
        if p == "eq":
            out.append(and_(column >= d.lo, column < d.hi))
        elif p == "ne":
            out.append(or_(column < d.lo, column >= d.hi))
        elif p in ("gt", "sa"):
            out.append(column >= d.hi)
        elif p == "ge":
            out.append(column >= d.lo)
        elif p in ("lt", "eb"):
            out.append(column < d.lo)
        elif p == "le":
            out.append(column < d.hi)
        else:  # ap: within the range, widened by nothing more here
            out.append(and_(column >= d.lo, column < d.hi))
    return out


def _period(param: DateParam) -> list[ColumnElement[bool]]:
    """context.period as a range [start, end or start]: FHIR period comparison."""
    start = documents.c.period_start
    end = documents.c.period_end
    out: list[ColumnElement[bool]] = []
    for d in param:
        p = d.prefix
        upper = or_(end >= d.lo, and_(end.is_(None), start >= d.lo))
        if p == "eq":
            out.append(and_(start >= d.lo, start < d.hi, or_(end.is_(None), end < d.hi)))
        elif p == "ne":
            out.append(not_(and_(start >= d.lo, start < d.hi, or_(end.is_(None), end < d.hi))))
        elif p in ("gt", "sa"):
            out.append(or_(end >= d.hi, and_(end.is_(None), start >= d.hi)))
        elif p == "ge":
            out.append(upper)
        elif p in ("lt", "eb"):
            out.append(start < d.lo)
        elif p == "le":
            out.append(start < d.hi)
        else:
            out.append(and_(start < d.hi, upper))
    return out


def _labels(param: TokenParam) -> list[ColumnElement[bool]]:
    out: list[ColumnElement[bool]] = []
    for values in param:
        # one whole label: LIKE's wildcards in the code escaped; a code with a space is no label
        out.append(
            or_(
                *[
                    documents.c.security_labels.contains(f" {t.code} ", autoescape=True)
                    if t.code and not any(ch.isspace() for ch in t.code)
                    else false()
                    for t in values
                ]
            )
        )
    return out


def _authors(param: TokenParam) -> list[ColumnElement[bool]]:
    out: list[ColumnElement[bool]] = []
    for values in param:
        ors = []
        for t in values:
            cond = and_(
                document_authors.c.record_id == documents.c.record_id,
                document_authors.c.doc_id == documents.c.doc_id,
                document_authors.c.value == t.code,
            )
            if t.system:
                cond = and_(cond, document_authors.c.system == t.system)
            ors.append(exists(select(document_authors.c.doc_id).where(cond)))
        out.append(or_(*ors))
    return out


def _text(folded: Any, exact: Any, t: Text) -> ColumnElement[bool]:
    """FHIR string search (http://hl7.org/fhir/R4/search.html#string): by default a word of the
    folded value starts with the folded search value; ``:contains`` anywhere in it; ``:exact``
    the whole value as sent. LIKE's wildcards in the value are escaped."""
    if t.match == "exact":
        return exact == t.value  # type: ignore[no-any-return]
    if t.match == "contains":
        return folded.contains(t.value, autoescape=True)  # type: ignore[no-any-return]
    return or_(
        folded.startswith(t.value, autoescape=True),
        folded.contains(" " + t.value, autoescape=True),
    )


def _texts(folded: Any, exact: Any, param: TextParam) -> list[ColumnElement[bool]]:
    return [or_(false(), *[_text(folded, exact, t) for t in values]) for values in param]


def _author_names(param: TextParam, part: str) -> list[ColumnElement[bool]]:
    """``author.given`` / ``author.family``: a professional author of the document has a name
    matching (chained search on the author, http://hl7.org/fhir/R4/search.html#chaining)."""
    a = document_authors.c
    out: list[ColumnElement[bool]] = []
    for values in param:
        ors = [_text(a[f"{part}_key"], a[part], t) for t in values]
        out.append(
            exists(
                select(a.doc_id).where(
                    a.record_id == documents.c.record_id,
                    a.doc_id == documents.c.doc_id,
                    or_(false(), *ors),
                )
            )
        )
    return out


def _events(param: TokenParam) -> list[ColumnElement[bool]]:
    e = document_events.c
    out: list[ColumnElement[bool]] = []
    for values in param:
        ors = []
        for t in values:
            cond = e.code == t.code
            if t.system is not None:
                cond = and_(cond, e.system == t.system)
            ors.append(cond)
        out.append(
            exists(
                select(e.doc_id).where(
                    e.record_id == documents.c.record_id,
                    e.doc_id == documents.c.doc_id,
                    or_(false(), *ors),
                )
            )
        )
    return out


def _related(param: RefParam) -> list[ColumnElement[bool]]:
    """``related``: a reference as sent (``Type/id`` or an absolute URL), or with
    ``:identifier`` an identifier of a related object (referenceIdList)."""
    r = document_related.c
    out: list[ColumnElement[bool]] = []
    for values in param:
        ors = []
        for v in values:
            if v.identifier is not None:
                cond = and_(r.kind == "identifier", r.value == v.identifier.code)
                if v.identifier.system is not None:
                    cond = and_(cond, r.system == v.identifier.system)
            else:
                cond = and_(r.kind == "reference", r.value == v.reference)
            ors.append(cond)
        out.append(
            exists(
                select(r.doc_id).where(
                    r.record_id == documents.c.record_id,
                    r.doc_id == documents.c.doc_id,
                    or_(false(), *ors),
                )
            )
        )
    return out


def _patients(column: Any, param: TokenParam) -> list[ColumnElement[bool]]:
    out: list[ColumnElement[bool]] = []
    for values in param:
        ors = []
        # an INS is matched on its value, whatever its OID (domain/ins.py names_an_ins)
        ors = [records.c.ins_value == t.code.upper() for t in values if names_an_ins(t.system)]
        out.append(column.in_(select(records.c.record_id).where(or_(false(), *ors))))
    return out


def _in_lists(column: Any, param: list[list[str]]) -> list[ColumnElement[bool]]:
    return [column.in_(values) for values in param]


def document_conditions(c: DocumentCriteria) -> list[ColumnElement[bool]]:
    d = documents.c
    conds: list[ColumnElement[bool]] = []
    conds += _in_lists(d.record_id, c.record_ids)
    conds += _in_lists(d.doc_id, c.ids)
    conds += _patients(d.record_id, c.patient_identifiers)
    conds += _identifiers(d.unique_id, d.entry_uuid, c.identifier)  # uniqueId or entryUUID
    conds += _token(d.type_code, d.type_system, c.type)
    conds += _token(d.class_code, None, c.category)
    conds += _token(d.status, None, c.status)
    conds += _token(d.setting_code, None, c.setting)
    conds += _token(d.facility_code, None, c.facility)
    conds += _token(d.format_code, None, c.format)
    conds += _labels(c.security_label)
    conds += _authors(c.author_identifier)
    conds += _dates(d.date, c.date)
    conds += _period(c.period)
    conds += _dates(d.creation_time, c.creation)
    conds += _dates(d.period_start, c.period_start)
    conds += _dates(d.period_end, c.period_end)
    conds += _dates(d.last_updated, c.last_updated)
    conds += _author_names(c.author_given, "given")
    conds += _author_names(c.author_family, "family")
    conds += _events(c.event)
    conds += _related(c.related)
    conds += _in_lists(d.replaces_id, c.relates_to)
    return conds


def list_conditions(c: ListCriteria) -> list[ColumnElement[bool]]:
    s = submission_sets.c
    conds: list[ColumnElement[bool]] = []
    conds += _in_lists(s.record_id, c.record_ids)
    conds += _patients(s.record_id, c.patient_identifiers)
    conds += _identifiers(s.unique_id, s.entry_uuid, c.identifier)
    conds += _token(s.source_id, None, c.source_id)
    conds += _dates(s.submission_time, c.date)
    conds += _fixed(c.code, "submissionset")
    conds += _fixed(c.status, "current")
    conds += _token(s.designation_code, s.designation_system, c.designation_type)
    conds += _texts(s.author_given_key, s.author_given, c.source_given)
    conds += _texts(s.author_family_key, s.author_family, c.source_family)
    conds += _token(s.author_id, s.author_system, c.source)
    conds += _token(s.author_org_value, s.author_org_system, c.author_org)
    if c.archived:
        conds.append(false())  # a submission set is never archived (docs/fhir.md)
    return conds


def folder_conditions(c: ListCriteria) -> list[ColumnElement[bool]]:
    """ITI-66 on folders: what a folder has (its patient, identifiers, lastUpdateTime, its
    title, matched sealed by the searcher); a parameter only submission sets have (sourceId,
    source and its names, authorOrg, designationType) finds no folder, and no folder is
    archived."""
    f = folders.c
    conds: list[ColumnElement[bool]] = []
    conds += _in_lists(f.record_id, c.record_ids)
    conds += _patients(f.record_id, c.patient_identifiers)
    conds += _identifiers(f.unique_id, f.entry_uuid, c.identifier)
    only_sets = (
        c.source_id,
        c.designation_type,
        c.source_given,
        c.source_family,
        c.source,
        c.author_org,
    )
    conds += [false() for param in only_sets for _ in param]
    if c.archived:
        conds.append(false())
    conds += _dates(f.last_updated, c.date)
    conds += _fixed(c.code, "folder")
    conds += _fixed(c.status, "current")
    return conds


def _identifiers(unique_id: Any, entry_uuid: Any, param: TokenParam) -> list[ColumnElement[bool]]:
    """``identifier``: the uniqueId or the entryUUID (IHE MHD; DMP TD3.1b), whatever the
    system sent with it."""
    return [
        or_(false(), *[or_(unique_id == t.code, entry_uuid == t.code) for t in values])
        for values in param
    ]


def _fixed(param: TokenParam, value: str) -> list[ColumnElement[bool]]:
    """A parameter every submission set has the same value of: a group without it matches
    nothing."""
    return [false() for values in param if not any(t.code == value for t in values)]


__all__ = ["Token", "document_conditions", "folder_conditions", "list_conditions"]
