"""Who may do what: the one place that decides (dmp.md §3, "Apply in this order; the first rule
that decides, decides"; CSP L1111-15 to L1111-17, R1111-46 to R1111-53).

``decide`` is a pure function of facts gathered by the scoped service: it does no I/O, reads no
clock (the time is one of the facts), and every answer names the rule that decided, so that
traces can say why and tests can check each rule on its own.

Reading, in order (rule names as they appear in traces):

1. ``record-missing`` / ``record-closed``: no record, or a destroyed one: nothing, for anyone. A
   closed record: nobody but the patient; a professional learns its status only (TD0.2).
2. ``document-deleted``: a deleted document is seen by nobody. (Archived documents are readable;
   default searches leave them out.)
3. ``patient``: the patient reads every document of their record except one flagged
   ``INVISIBLE_PATIENT`` while the flag holds (one month after it was added, R1111-53, or until
   the author lifts it).
4. ``legal-representative``: as the patient, minus ``INVISIBLE_REPRESENTANTS_LEGAUX``.
5. Professionals, mode ``normal``: ``blocked`` (no read at all); the document's author reads it
   (``document-author``, rule 8 of dmp.md, applied here because it must not be shadowed by the
   next ones); ``not-authorised`` (the médecin traitant counts as authorised); ``matrix`` (the
   access matrix must allow the document's type); ``masked`` (``MASQUE_PS``: author and médecin
   traitant only).
6. ``bris-de-glace``: refused if the patient refused it or gave no reason, or blocked the
   professional; ignores authorisation, keeps the matrix; masked documents only if the patient
   allowed them in an emergency.
7. ``centre-15``: refused if the patient refused it, or blocked the professional; no
   authorisation needed; matrix and masked documents as in rule 6.

Writing: anyone who may reach an active record adds documents to it (a blocked professional
too; the patient only class ``90``); only the author replaces, deletes, archives or changes the
``INVISIBLE_*`` flags of a document; the patient (or a representative) masks and unmasks
(``MASQUE_PS``); the patient closes, reopens and destroys the record and manages consents; a
professional may record the patient's consent to their own or another professional's access
(TD0.3), never a block.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from carnet.domain.actors import AccessMode, Actor, ActorKind

INVISIBLE_PATIENT_DELAY = timedelta(days=30)  # "un mois", R1111-53
PATIENT_CLASS = "90"


class Action(StrEnum):
    RECORD_CREATE = "record.create"
    RECORD_STATUS = "record.status"  # TD0.2: existence and state only
    RECORD_READ = "record.read"  # identity traits, Patient resource
    RECORD_UPDATE = "record.update"  # identity, médecin traitant, emergency consents
    RECORD_LIFECYCLE = "record.lifecycle"  # close, reopen, destroy
    DOCUMENT_CREATE = "document.create"
    DOCUMENT_READ = "document.read"  # metadata and content
    DOCUMENT_REPLACE = "document.replace"
    DOCUMENT_UPDATE = "document.update"  # status, archive, INVISIBLE_* flags: the author
    DOCUMENT_MASK = "document.mask"  # MASQUE_PS: the patient
    CONSENT_READ = "consent.read"
    CONSENT_WRITE = "consent.write"  # authorisations, blocks, emergency consents
    CONSENT_AUTHORISE = "consent.authorise"  # a professional records the patient's consent
    AUDIT_READ = "audit.read"


class RecordState(StrEnum):
    ACTIVE = "active"
    CLOSED = "closed"
    DESTROYED = "destroyed"


class Relation(StrEnum):
    OPENED = "opened"
    FED = "fed"


@dataclass(frozen=True, slots=True)
class RecordFacts:
    """What is known of a record and of the acting person's relation to it."""

    record_id: str
    state: RecordState
    ins: str
    relations: frozenset[Relation] = field(default_factory=frozenset)
    authorised: bool = False  # the patient's consent to consultation (or care-team presumption)
    blocked: bool = False  # the patient blocked this professional
    is_treating_physician: bool = False  # the actor is the médecin traitant
    is_representative: bool = False  # the actor is a legal representative of the patient
    allows_centre15: bool = True  # emergency consents (dmp.md §2)
    allows_bris_de_glace: bool = True
    allows_masked_in_emergency: bool = False
    now: datetime = datetime(1970, 1, 1)


@dataclass(frozen=True, slots=True)
class DocumentFacts:
    doc_id: str
    status: str  # FHIR: current, superseded, entered-in-error
    author_id: str | None
    labels: frozenset[str] = field(default_factory=frozenset)
    archived: bool = False
    type_code: str | None = None
    class_code: str | None = None
    added_at: datetime | None = None  # when carnet stored it (starts INVISIBLE_PATIENT's month)


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    rule: str
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


MatrixCheck = Callable[[str | None, str | None, str | None, str | None], bool]


def _allow(rule: str, reason: str) -> Decision:
    return Decision(True, rule, reason)


def _deny(rule: str, reason: str) -> Decision:
    return Decision(False, rule, reason)


def _deny_all(_p: str | None, _s: str | None, _t: str | None, _c: str | None) -> bool:
    return False


def decide(
    actor: Actor,
    action: Action,
    record: RecordFacts | None,
    document: DocumentFacts | None = None,
    *,
    matrix: MatrixCheck = _deny_all,
) -> Decision:
    """Allow or deny ``action`` by ``actor`` on ``record`` (and ``document``).

    ``matrix(profession, specialty, type_code, class_code)`` is the access matrix (configuration);
    the default denies everything, so that forgetting it fails closed.
    """
    if action is Action.RECORD_CREATE:
        return _decide_create(actor, record)
    if action is Action.AUDIT_READ and record is None:
        # traces tied to no record (record_id ""): each person reads their own
        if actor.kind in (ActorKind.PATIENT, ActorKind.PROFESSIONAL):
            return _allow("own-traces", "one's own traces tied to no record")
        return _deny("default-deny", f"{actor.kind.value} actors read no traces")
    # 1. missing, destroyed, closed
    if record is None or record.state is RecordState.DESTROYED:
        return _deny("record-missing", "no such record")
    is_patient = actor.kind is ActorKind.PATIENT and actor.ins == record.ins
    if record.state is RecordState.CLOSED and not is_patient:
        if action is Action.RECORD_STATUS and actor.kind is ActorKind.PROFESSIONAL:
            return _allow("record-closed", "status of a closed record (TD0.2)")
        return _deny("record-closed", "the record is closed")
    # 2. deleted documents
    if document is not None and document.status == "entered-in-error":
        return _deny("document-deleted", "the document was deleted")
    if actor.kind is ActorKind.PATIENT:
        if is_patient:
            return _patient(actor, action, record, document, representative=False)
        if record.is_representative:
            return _patient(actor, action, record, document, representative=True)
        return _deny("patient", "a patient reaches only their own record")
    if actor.kind is ActorKind.PROFESSIONAL:
        return _professional(actor, action, record, document, matrix)
    return _deny("default-deny", f"{actor.kind.value} actors reach no medical data")


# -- 3 and 4: the patient and legal representatives ----------------------------------------


def _invisible_to_patient(record: RecordFacts, doc: DocumentFacts) -> bool:
    if "INVISIBLE_PATIENT" not in doc.labels:
        return False
    if doc.added_at is None:
        return True
    return record.now < doc.added_at + INVISIBLE_PATIENT_DELAY


def _patient(
    actor: Actor,
    action: Action,
    record: RecordFacts,
    document: DocumentFacts | None,
    *,
    representative: bool,
) -> Decision:
    rule = "legal-representative" if representative else "patient"
    who = "a legal representative" if representative else "the patient"
    if action in (Action.DOCUMENT_READ, Action.DOCUMENT_MASK) and document is not None:
        if _invisible_to_patient(record, document):
            return _deny(rule, "the document is not yet visible to the patient (INVISIBLE_PATIENT)")
        if representative and "INVISIBLE_REPRESENTANTS_LEGAUX" in document.labels:
            return _deny(rule, "the document is not visible to legal representatives")
        if action is Action.DOCUMENT_MASK and document.status != "current":
            return _deny(rule, "only a current document is masked or unmasked")
        return _allow(rule, f"{who} reads their record")
    if action is Action.DOCUMENT_CREATE:
        if document is not None and document.class_code != PATIENT_CLASS:
            return _deny(rule, f"{who} adds only documents of class 90 (déposé par le patient)")
        if record.state is not RecordState.ACTIVE:
            return _deny(rule, "the record is closed: reopen it first")
        return _allow(rule, f"{who} adds a document")
    if action in (Action.DOCUMENT_REPLACE, Action.DOCUMENT_UPDATE):
        if document is not None and document.author_id == actor.id:
            return _allow("document-author", "the author changes their document")
        return _deny("document-author", "only the document's author may change it")
    if action is Action.RECORD_LIFECYCLE:
        if representative:
            return _deny(rule, "only the patient closes, reopens or destroys the record")
        return _allow(rule, "the patient decides the life of their record")
    if action in (
        Action.RECORD_STATUS,
        Action.RECORD_READ,
        Action.RECORD_UPDATE,
        Action.CONSENT_READ,
        Action.CONSENT_WRITE,
        Action.CONSENT_AUTHORISE,
        Action.AUDIT_READ,
    ):
        if record.state is RecordState.CLOSED and action not in (
            Action.RECORD_STATUS,
            Action.RECORD_READ,
            Action.AUDIT_READ,
            Action.CONSENT_READ,
        ):
            return _deny(rule, "the record is closed: reopen it first")
        return _allow(rule, f"{who} manages their record")
    return _deny(rule, f"{action.value} is not for {who}")


# -- 5 to 8: professionals ---------------------------------------------------------------------


def _professional(
    actor: Actor,
    action: Action,
    record: RecordFacts,
    document: DocumentFacts | None,
    matrix: MatrixCheck,
) -> Decision:
    if action is Action.RECORD_STATUS:
        return _allow("professional-status", "record status (TD0.2)")
    if action is Action.DOCUMENT_CREATE:
        # dmp.md §4: any professional feeds an active record; a blocked one too
        return _allow("professional-feeds", "professionals add documents to an active record")
    if action in (Action.DOCUMENT_REPLACE, Action.DOCUMENT_UPDATE):
        if document is not None and document.author_id == actor.id:
            return _allow("document-author", "the author changes their document")
        return _deny("document-author", "only the document's author may change it")
    if action in (Action.DOCUMENT_MASK, Action.RECORD_LIFECYCLE, Action.CONSENT_WRITE):
        return _deny("patient-only", "only the patient does this")
    if action is Action.CONSENT_AUTHORISE:
        if record.blocked:
            return _deny("blocked", "the patient blocked this professional")
        if actor.mode is not AccessMode.NORMAL:
            return _deny("consent", "consent is recorded in normal mode only")
        return _allow("consent", "a professional records the patient's consent (TD0.3)")
    if action is Action.CONSENT_READ:
        return _allow("consent", "a professional sees the consents that concern them")
    if action is Action.AUDIT_READ:
        if record.is_treating_physician and not record.blocked:
            return _allow("treating-physician", "the médecin traitant reads every trace")
        return _allow("own-traces", "a professional reads their own traces")
    # reads: RECORD_READ, RECORD_UPDATE, DOCUMENT_READ
    if actor.mode is AccessMode.BRIS_DE_GLACE:
        return _emergency(actor, action, record, document, matrix, "bris-de-glace")
    if actor.mode is AccessMode.CENTRE_15:
        return _emergency(actor, action, record, document, matrix, "centre-15")
    # 5. mode normal
    if record.blocked:
        return _deny("blocked", "the patient blocked this professional")
    if document is not None and document.author_id == actor.id:
        return _allow("document-author", "the author reads what they authored")
    if not (record.authorised or record.is_treating_physician):
        return _deny("not-authorised", "the patient has not authorised this professional")
    if document is None:
        return _allow("authorised", "the patient authorised this professional")
    if not matrix(actor.profession, actor.specialty, document.type_code, document.class_code):
        return _deny("matrix", "the access matrix does not allow this document type")
    if "MASQUE_PS" in document.labels and not record.is_treating_physician:
        return _deny("masked", "the patient masked this document from professionals")
    return _allow("authorised", "authorised, allowed by the matrix")


def _emergency(
    actor: Actor,
    action: Action,
    record: RecordFacts,
    document: DocumentFacts | None,
    matrix: MatrixCheck,
    rule: str,
) -> Decision:
    if rule == "bris-de-glace":
        if not record.allows_bris_de_glace:
            return _deny(rule, "the patient refused break-the-glass access")
        if not (actor.reason and actor.reason.strip()):
            return _deny(rule, "break-the-glass access needs a written reason")
    elif not record.allows_centre15:
        return _deny(rule, "the patient refused access by the SAMU regulator (centre 15)")
    if record.blocked:  # the patient's refusal of this professional holds in an emergency too
        return _deny("blocked", "the patient blocked this professional")
    if action is Action.RECORD_UPDATE:
        return _deny(rule, "emergency access reads; it does not change the record")
    if document is None:
        return _allow(rule, "emergency access")
    if document.author_id == actor.id:
        return _allow("document-author", "the author reads what they authored")
    if not matrix(actor.profession, actor.specialty, document.type_code, document.class_code):
        return _deny("matrix", "the access matrix does not allow this document type")
    if "MASQUE_PS" in document.labels and not (
        record.allows_masked_in_emergency or record.is_treating_physician
    ):
        return _deny("masked", "the patient did not allow masked documents in an emergency")
    return _allow(rule, "emergency access")


def _decide_create(actor: Actor, candidate: RecordFacts | None) -> Decision:
    """``candidate`` describes the record to be opened (its INS); existence is checked by the
    store, which answers 409 when a record already exists."""
    if actor.kind is ActorKind.PROFESSIONAL:
        if actor.mode is not AccessMode.NORMAL:
            return _deny("professional-opens", "a record is opened in normal mode")
        return _allow("professional-opens", "a professional opens a record with consent")
    if actor.kind is ActorKind.PATIENT:
        if candidate is not None and candidate.ins == actor.ins:
            return _allow("patient-opens", "a patient opens their own record online")
        return _deny("patient", "a patient opens only their own record")
    return _deny("default-deny", f"{actor.kind.value} actors do not open records")
