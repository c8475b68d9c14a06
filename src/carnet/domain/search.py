"""Search criteria, independent of the interface that builds them (FHIR search, XDS query)."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Token:
    system: str | None  # None: any system; "": no system
    code: str


@dataclass(frozen=True, slots=True)
class DateRange:
    """A FHIR date search value: ``prefix`` applied to the precision range [lo, hi)."""

    prefix: str  # eq ne gt lt ge le sa eb ap
    lo: datetime
    hi: datetime


@dataclass(frozen=True, slots=True)
class Text:
    """A FHIR string search value (http://hl7.org/fhir/R4/search.html#string).

    ``value`` is in the folded form of :func:`carnet.domain.records.normalise_name` (case and
    accents ignored) unless ``match`` is ``exact``, which compares the value as given."""

    value: str
    match: str = "start"  # start (the default: a word starts with it) | exact | contains


def normalise_name(text: str) -> str:
    """Case- and accent-insensitive form used by name searches."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.upper().replace("-", " ").replace("'", " ").split())


def text_matches(text: str | None, t: Text) -> bool:
    """Whether ``text`` matches a string search value (the semantics of the SQL conditions in
    store/doc_query.py, for values matched once opened)."""
    if not text:
        return False
    if t.match == "exact":
        return text == t.value
    folded = normalise_name(text)
    if t.match == "contains":
        return t.value in folded
    return folded.startswith(t.value) or f" {t.value}" in folded


@dataclass(frozen=True, slots=True)
class Ref:
    """A FHIR reference search value: a reference (``Type/id``, an absolute URL) or, with the
    ``:identifier`` modifier, an identifier (``system|value``)."""

    reference: str | None = None
    identifier: Token | None = None


# each outer list: parameters repeated (AND); inner list: comma-separated values (OR)
TokenParam = list[list[Token]]
DateParam = list[DateRange]
TextParam = list[list[Text]]
RefParam = list[list[Ref]]


@dataclass(slots=True)
class DocumentCriteria:
    record_ids: list[list[str]] = field(default_factory=list)
    patient_identifiers: TokenParam = field(default_factory=list)
    ids: list[list[str]] = field(default_factory=list)
    identifier: TokenParam = field(default_factory=list)
    type: TokenParam = field(default_factory=list)
    category: TokenParam = field(default_factory=list)
    status: TokenParam = field(default_factory=list)
    setting: TokenParam = field(default_factory=list)
    facility: TokenParam = field(default_factory=list)
    format: TokenParam = field(default_factory=list)
    security_label: TokenParam = field(default_factory=list)
    author_identifier: TokenParam = field(default_factory=list)
    date: DateParam = field(default_factory=list)
    period: DateParam = field(default_factory=list)
    # IHE MHD 4.2.3 ITI-67 and the PDSm guide (docs/fhir.md "Search parameters")
    creation: DateParam = field(default_factory=list)  # the entry's creationTime
    period_start: DateParam = field(default_factory=list)  # serviceStartTime
    period_end: DateParam = field(default_factory=list)  # serviceStopTime
    last_updated: DateParam = field(default_factory=list)  # the document's last version
    author_given: TextParam = field(default_factory=list)  # a professional author's names
    author_family: TextParam = field(default_factory=list)
    event: TokenParam = field(default_factory=list)  # eventCodeList
    related: RefParam = field(default_factory=list)  # referenceIdList
    relates_to: list[list[str]] = field(default_factory=list)  # the replaced document's id
    sort_desc: bool = True
    count: int = 20
    cursor: tuple[datetime, str] | None = None
    include_subject: bool = False
    archived: bool | None = None  # None: leave archived documents out unless named by id


@dataclass(slots=True)
class ListCriteria:
    record_ids: list[list[str]] = field(default_factory=list)
    patient_identifiers: TokenParam = field(default_factory=list)
    identifier: TokenParam = field(default_factory=list)
    source_id: TokenParam = field(default_factory=list)
    set_ids: list[str] = field(default_factory=list)
    date: DateParam = field(default_factory=list)
    # a submission set's code is always ``submissionset`` and its status ``current``: asking
    # for another finds nothing (and is still decided and traced, like any search)
    code: TokenParam = field(default_factory=list)
    status: TokenParam = field(default_factory=list)
    # IHE MHD 4.2.3 ITI-66 and the PDSm guide (docs/fhir.md "Search parameters")
    designation_type: TokenParam = field(default_factory=list)
    source_given: TextParam = field(default_factory=list)  # a professional author's names
    source_family: TextParam = field(default_factory=list)
    source: TokenParam = field(default_factory=list)  # the author's identifier
    author_org: TokenParam = field(default_factory=list)  # the authoring organisation's
    # a submission set is never archived (only documents are): true finds none
    archived: bool | None = None
    # the title is sealed with the record (it may be clinical): matched once each set is
    # opened, inside the searcher's per-row decisions
    title: TextParam = field(default_factory=list)
    count: int = 20
    cursor: tuple[datetime, str] | None = None
