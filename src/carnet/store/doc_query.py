"""SQL conditions for document and submission-set searches (FHIR search semantics:
http://hl7.org/fhir/R4/search.html#token and #date)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, exists, false, not_, or_, select
from sqlalchemy.sql import ColumnElement

from carnet.domain.ins import names_an_ins
from carnet.domain.search import DateParam, DocumentCriteria, ListCriteria, Token, TokenParam
from carnet.store.tables import document_authors, documents, folders, records, submission_sets


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
    return conds


def folder_conditions(c: ListCriteria) -> list[ColumnElement[bool]]:
    """ITI-66 on folders: what a folder has (its patient, identifiers, lastUpdateTime); a
    parameter only submission sets have (their sourceId) finds no folder."""
    f = folders.c
    conds: list[ColumnElement[bool]] = []
    conds += _in_lists(f.record_id, c.record_ids)
    conds += _patients(f.record_id, c.patient_identifiers)
    conds += _identifiers(f.unique_id, f.entry_uuid, c.identifier)
    conds += [false() for _ in c.source_id]
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
