"""Who may do what: the one place that decides (dmp.md §3, "Apply in this order; the first rule
that decides, decides").

``decide`` is a pure function of facts gathered by the scoped service: it does no I/O, and every
answer names the rule that decided, so that traces can say why. The foundation implements the
first rules; the full DMP rules (authorisations, access matrix, masking, emergencies, legal
representatives) extend this module and nothing else.

Rules, in order:

1. ``record-missing``: no record, or a destroyed one: nothing, for anyone.
2. ``record-closed``: a closed record: nobody but the patient reads it; professionals may learn
   its status only (TD0.2).
3. ``document-deleted``: a deleted (entered-in-error) document is seen by nobody.
4. ``patient-own-record``: the patient reads and feeds their own record, nothing else.
5. ``professional-status``: any authenticated professional may learn whether a record exists
   and its status (TD0.2), without identity traits or documents.
6. ``professional-feeds``: a professional may add documents to an active record (and becomes
   one who fed it); a professional may open a record (create it) with the patient's consent.
7. ``document-author``: only a document's author replaces it or changes its metadata.
8. ``professional-opened-or-fed``: a professional reads the records they opened or fed.
9. ``default-deny``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from carnet.domain.actors import Actor, ActorKind


class Action(StrEnum):
    RECORD_CREATE = "record.create"
    RECORD_STATUS = "record.status"  # TD0.2: existence and state only
    RECORD_READ = "record.read"  # identity traits, Patient resource
    RECORD_UPDATE = "record.update"
    DOCUMENT_CREATE = "document.create"
    DOCUMENT_READ = "document.read"  # metadata and content
    DOCUMENT_REPLACE = "document.replace"
    DOCUMENT_UPDATE = "document.update"  # metadata: status, labels


class RecordState(StrEnum):
    ACTIVE = "active"
    CLOSED = "closed"
    DESTROYED = "destroyed"


class Relation(StrEnum):
    OPENED = "opened"
    FED = "fed"


@dataclass(frozen=True, slots=True)
class RecordFacts:
    record_id: str
    state: RecordState
    ins: str
    # relations of the *acting* professional with this record
    relations: frozenset[Relation] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class DocumentFacts:
    doc_id: str
    status: str  # FHIR: current, superseded, entered-in-error
    author_id: str | None


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    rule: str
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


def _allow(rule: str, reason: str) -> Decision:
    return Decision(True, rule, reason)


def _deny(rule: str, reason: str) -> Decision:
    return Decision(False, rule, reason)


_PATIENT_ACTIONS = frozenset(
    {
        Action.RECORD_CREATE,
        Action.RECORD_STATUS,
        Action.RECORD_READ,
        Action.RECORD_UPDATE,
        Action.DOCUMENT_CREATE,
        Action.DOCUMENT_READ,
    }
)


def decide(
    actor: Actor,
    action: Action,
    record: RecordFacts | None,
    document: DocumentFacts | None = None,
) -> Decision:
    """Allow or deny ``action`` by ``actor`` on ``record`` (and ``document``)."""
    if action is Action.RECORD_CREATE:
        return _decide_create(actor, record)
    # 1. missing or destroyed
    if record is None or record.state is RecordState.DESTROYED:
        return _deny("record-missing", "no such record")
    is_patient = actor.kind is ActorKind.PATIENT and actor.ins == record.ins
    # 2. closed: nobody but the patient; professionals get the status only
    if record.state is RecordState.CLOSED and not is_patient:
        if action is Action.RECORD_STATUS and actor.kind is ActorKind.PROFESSIONAL:
            return _allow("record-closed", "status of a closed record (TD0.2)")
        return _deny("record-closed", "the record is closed")
    # 3. deleted documents
    if document is not None and document.status == "entered-in-error":
        return _deny("document-deleted", "the document was deleted")
    # 4. the patient
    if actor.kind is ActorKind.PATIENT:
        if not is_patient:
            return _deny("patient-own-record", "a patient reaches only their own record")
        if action in _PATIENT_ACTIONS:
            return _allow("patient-own-record", "the patient's own record")
        return _deny("patient-own-record", f"a patient may not {action.value}")
    if actor.kind is not ActorKind.PROFESSIONAL:
        return _deny("default-deny", f"{actor.kind.value} actors read no medical data")
    # 5. status (TD0.2)
    if action is Action.RECORD_STATUS:
        return _allow("professional-status", "record status (TD0.2)")
    # 6. feeding
    if action is Action.DOCUMENT_CREATE:
        return _allow("professional-feeds", "professionals may add documents to an active record")
    # 7. author-only changes
    if action in (Action.DOCUMENT_REPLACE, Action.DOCUMENT_UPDATE):
        if document is not None and document.author_id == actor.id:
            return _allow("document-author", "the author changes their document")
        return _deny("document-author", "only the document's author may change it")
    # 8. opened or fed
    if action in (Action.RECORD_READ, Action.RECORD_UPDATE, Action.DOCUMENT_READ):
        if record.relations:
            return _allow(
                "professional-opened-or-fed",
                "the professional opened or fed this record",
            )
        return _deny("professional-opened-or-fed", "the professional has no access to this record")
    return _deny("default-deny", f"{action.value} is not allowed")


def _decide_create(actor: Actor, candidate: RecordFacts | None) -> Decision:
    """``candidate`` describes the record to be opened (its INS); existence is checked by the
    store, which answers 409 when a record already exists."""
    if actor.kind is ActorKind.PROFESSIONAL:
        return _allow("professional-opens", "a professional opens a record with consent")
    if actor.kind is ActorKind.PATIENT:
        if candidate is not None and candidate.ins == actor.ins:
            return _allow("patient-opens", "a patient opens their own record online")
        return _deny("patient-own-record", "a patient opens only their own record")
    return _deny("default-deny", f"{actor.kind.value} actors do not open records")
