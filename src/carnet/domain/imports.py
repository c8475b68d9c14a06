"""What the operator's bulk import takes (``carnet demo --patients N``): records with their
documents, authorisations and flags, as domain types. The core validates them, seals them with
each record's own key and writes them as the publish path would have (access/imports.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from carnet.domain.actors import Actor
from carnet.domain.documents import DocumentEntry
from carnet.domain.records import EmergencyConsents, Identity


@dataclass(slots=True)
class ImportedDocument:
    entry: DocumentEntry  # complete (dmp.md §6): validated by the import
    content: bytes
    author: Actor  # who published it: a professional, or the patient (class 90)


@dataclass(slots=True)
class ImportedRecord:
    identity: Identity  # a qualified INS
    opened_by: Actor  # the professional who opened it (authorised, as TD1.1 does)
    opened_at: datetime
    treating_physician: str | None = None  # actor id rpps:<IdNatPS>
    emergency: EmergencyConsents = field(default_factory=EmergencyConsents)
    email: str | None = None
    authorised: list[str] = field(default_factory=list)  # IdNatPS of authorised professionals
    blocked: list[str] = field(default_factory=list)  # IdNatPS of blocked professionals
    closed: bool = False
    documents: list[ImportedDocument] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ImportResult:
    record_ids: list[str]
    documents: int
    traces: int
