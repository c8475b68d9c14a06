"""Search criteria, independent of the interface that builds them (FHIR search, XDS query)."""

from __future__ import annotations

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


# each outer list: parameters repeated (AND); inner list: comma-separated values (OR)
TokenParam = list[list[Token]]
DateParam = list[DateRange]


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
    count: int = 20
    cursor: tuple[datetime, str] | None = None
