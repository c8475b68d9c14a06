"""Who may do what: the one place that decides (dmp.md §3, "Apply in this order; the first rule
that decides, decides"; CSP L1111-15 to L1111-17, R1111-46 to R1111-53).

``decide`` is a pure function of facts gathered by the core's fact loader: it does no I/O,
reads no clock (the time is one of the facts), and every answer names the rule that decided,
so that traces can say why and tests can check each rule on its own. Nothing else in carnet
allows or refuses anything: the guard (:mod:`carnet.access.guard`) asks ``decide`` and traces
the answer; searches ask it for every row they return.

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
too; the patient only class ``90``); content uploaded before its metadata is attached only by
whoever uploaded it; only the author replaces, deletes, archives or changes the ``INVISIBLE_*``
flags of a document; the patient (or a representative) masks and unmasks (``MASQUE_PS``), and
the author masks their own document (with the patient's agreement, at submission or later:
dmp.md §4, PDSm for DMP TD3.3a) but never lifts a mask (CSP L1111-15: making information
inaccessible is the patient's right; docs/access.md "Masking"); the patient manages consents,
emergency consents, representatives, the médecin traitant, contact details and notification
preferences (a professional changes identity traits only); the patient alone
closes, reopens and destroys the record. A professional may record the patient's consent
to their own or another professional's access (TD0.3), never a block, and never lift one.
A document whose uniqueId a stored document has is that document again only for whoever may read
the stored one and sends the same content; for anyone else it is one refusal (``unique-id``)
that tells nothing of the stored document.

Traces: the patient and their representatives read every trace of the record, the médecin
traitant too (unless blocked), any other professional only their own; everyone reads their own
refusals wherever they were traced (shown as refusals of something missing, by
:mod:`carnet.domain.trace_view`, which also leaves out of every trace what the reader may not
read). The operator verifies the
chains and purges records closed for ten years (R1111-48); nobody else does either.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from carnet.domain.actions import Action
from carnet.domain.actors import AccessMode, Actor, ActorKind
from carnet.domain.documents import (
    INVISIBLE_PATIENT,
    INVISIBLE_REPRESENTATIVES,
    MASKED,
    PATIENT_CLASS,
    DocumentStatus,
)
from carnet.domain.records import RecordState

INVISIBLE_PATIENT_DELAY = timedelta(days=30)  # "un mois", R1111-53
RETENTION = timedelta(days=3653)  # a closed record is kept ten years, leap days included

__all__ = [
    "RETENTION",
    "Action",
    "ConsentFacts",
    "Decision",
    "DocumentFacts",
    "DuplicateFacts",
    "EventFacts",
    "MatrixCheck",
    "RecordFacts",
    "RecordState",
    "SearchFacts",
    "UploadFacts",
    "decide",
]


@dataclass(frozen=True, slots=True)
class RecordFacts:
    """What is known of a record and of the acting person's relation to it."""

    record_id: str
    state: RecordState
    ins: str
    authorised: bool = False  # the patient's consent to consultation (or care-team presumption)
    blocked: bool = False  # the patient blocked this professional
    is_treating_physician: bool = False  # the actor is the médecin traitant
    is_representative: bool = False  # the actor is a legal representative of the patient
    allows_centre15: bool = True  # emergency consents (dmp.md §2)
    allows_bris_de_glace: bool = True
    allows_masked_in_emergency: bool = False
    now: datetime = datetime(1970, 1, 1)
    closed_at: datetime | None = None
    # a record to be opened (RECORD_CREATE, objections): the person objected to its creation;
    # the acting person recorded that objection
    objected: bool = False
    objection_own: bool = False


@dataclass(frozen=True, slots=True)
class DocumentFacts:
    doc_id: str
    status: str  # DocumentStatus value
    author_id: str | None
    labels: frozenset[str] = field(default_factory=frozenset)
    archived: bool = False
    type_code: str | None = None
    class_code: str | None = None
    added_at: datetime | None = None  # when carnet stored it (starts INVISIBLE_PATIENT's month)


@dataclass(frozen=True, slots=True)
class ConsentFacts:
    """A consent, as the acting person relates to it."""

    target_blocked: bool = False  # the patient blocked the professional being authorised
    about_actor: bool = True  # it names the acting professional (or their care team)


@dataclass(frozen=True, slots=True)
class UploadFacts:
    """Content uploaded before its metadata (a raw Binary)."""

    by_actor: bool  # the acting person uploaded it
    attached: bool  # a document names it already


@dataclass(frozen=True, slots=True)
class EventFacts:
    """A trace, as its reader relates to it."""

    own: bool  # the reader is the trace's actor
    refusal: bool = False  # it traces a refusal of the reader's (shown as of something missing)


@dataclass(frozen=True, slots=True)
class DuplicateFacts:
    """A document stored before under the uniqueId a new document uses again (dmp.md §4)."""

    stored: DocumentFacts
    same_content: bool  # the new document's content is the stored one's


@dataclass(frozen=True, slots=True)
class SearchFacts:
    """What a request names before any record is looked at: how many distinct patients (by
    record id or INS value; 0 when it names none). Decided on its own, ``record`` None."""

    patients_named: int


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    rule: str
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


MatrixCheck = Callable[[str | None, str | None, str | None, str | None], bool]

_PATIENT_MANAGES = frozenset(
    {
        Action.RECORD_UPDATE,
        Action.RECORD_CONTACT,
        Action.RECORD_DESIGNATE,
        Action.CONSENT_AUTHORISE,
        Action.CONSENT_BLOCK,
        Action.CONSENT_REVOKE,
        Action.CONSENT_EMERGENCY,
        Action.REPRESENTATIVE_ADD,
        Action.REPRESENTATIVE_REMOVE,
    }
)
_PATIENT_READS = frozenset(
    {
        Action.RECORD_STATUS,
        Action.RECORD_READ,
        Action.CONSENT_READ,
        Action.REPRESENTATIVE_READ,
        Action.AUDIT_READ,
    }
)
_OPERATOR_ONLY = frozenset(
    {Action.AUDIT_VERIFY, Action.RECORD_PURGE, Action.RECORD_IMPORT, Action.BINARY_PURGE}
)
_LIFECYCLE = frozenset({Action.RECORD_CLOSE, Action.RECORD_REOPEN, Action.RECORD_DESTROY})
_SEARCHES = frozenset({Action.DOCUMENT_SEARCH, Action.LIST_SEARCH})
_AUTHOR_CHANGES = frozenset({Action.DOCUMENT_REPLACE, Action.DOCUMENT_UPDATE})


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
    consent: ConsentFacts | None = None,
    upload: UploadFacts | None = None,
    event: EventFacts | None = None,
    duplicate: DuplicateFacts | None = None,
    search: SearchFacts | None = None,
    matrix: MatrixCheck = _deny_all,
) -> Decision:
    """Allow or deny ``action`` by ``actor`` on ``record`` (and ``document``, the professional
    a consent is about, uploaded content, a trace, the document stored before under a new
    document's uniqueId).

    ``matrix(profession, specialty, type_code, class_code)`` is the access matrix (configuration);
    the default denies everything, so that forgetting it fails closed.
    """
    if duplicate is not None and action is Action.DOCUMENT_CREATE:
        return _decide_duplicate(actor, record, document, duplicate, matrix)
    if action in (Action.RECORD_CREATE, Action.RECORD_OBJECTION, Action.RECORD_WITHDRAW):
        return _decide_create(actor, action, record)
    if search is not None:
        return _search_scope(actor, search)
    if actor.kind is ActorKind.OPERATOR:
        return _operator(action, record, upload)
    if action in _OPERATOR_ONLY:
        return _deny("operator-only", "only the operator does this")
    if action is Action.AUDIT_READ and event is not None and event.own and event.refusal:
        # one's own refusals, wherever they are traced, shown as of something missing
        # (carnet.domain.trace_view): a refusal must read as a missing resource does
        return _allow("own-refusals", "one's own refusals, without what was refused")
    if action is Action.AUDIT_READ and record is None:
        # traces tied to no record (record_id ""): each person reads their own
        if actor.kind in (ActorKind.PATIENT, ActorKind.PROFESSIONAL) and (
            event is None or event.own
        ):
            return _allow("own-traces", "one's own traces tied to no record")
        return _deny("own-traces", "traces tied to no record are read by their actor only")
    # 1. missing, destroyed, closed
    if record is None or record.state is RecordState.DESTROYED:
        return _deny("record-missing", "no such record")
    is_patient = actor.kind is ActorKind.PATIENT and actor.ins == record.ins
    if record.state is RecordState.CLOSED and not is_patient:
        if action is Action.RECORD_STATUS and actor.kind is ActorKind.PROFESSIONAL:
            return _allow("record-closed", "status of a closed record (TD0.2)")
        return _deny("record-closed", "the record is closed")
    # 2. deleted documents
    if document is not None and document.status == DocumentStatus.DELETED:
        return _deny("document-deleted", "the document was deleted")
    if actor.kind is ActorKind.PATIENT:
        if is_patient:
            return _patient(actor, action, record, document, upload, representative=False)
        if record.is_representative:
            return _patient(actor, action, record, document, upload, representative=True)
        return _deny("patient", "a patient reaches only their own record")
    if actor.kind is ActorKind.PROFESSIONAL:
        return _professional(actor, action, record, document, consent, upload, event, matrix)
    return _deny("default-deny", f"{actor.kind.value} actors reach no medical data")


# -- the operator ---------------------------------------------------------------------------


def _operator(action: Action, record: RecordFacts | None, upload: UploadFacts | None) -> Decision:
    """The operator runs the service and never reads medical content (dmp.md §1)."""
    if action is Action.AUDIT_VERIFY:
        return _allow("operator", "the operator verifies the trace chains")
    if action is Action.RECORD_IMPORT:
        return _allow("operator", "the operator loads records in bulk")
    if action is Action.BINARY_PURGE:
        if upload is None or upload.attached:
            return _deny("retention", "only uploaded content that no document names is purged")
        return _allow("retention", "uploaded content that no document named in time is purged")
    if action is Action.RECORD_PURGE:
        if record is None or record.state is not RecordState.CLOSED or record.closed_at is None:
            return _deny("retention", "only a closed record is purged")
        if record.now < record.closed_at + RETENTION:
            return _deny("retention", "a closed record is kept ten years (R1111-48)")
        return _allow("retention", "closed for more than ten years (R1111-48)")
    return _deny("operator", "the operator reaches no medical data")


# -- 3 and 4: the patient and legal representatives ----------------------------------------


def _invisible_to_patient(record: RecordFacts, doc: DocumentFacts) -> bool:
    if INVISIBLE_PATIENT not in doc.labels:
        return False
    if doc.added_at is None:
        return True
    return record.now < doc.added_at + INVISIBLE_PATIENT_DELAY


def _patient(
    actor: Actor,
    action: Action,
    record: RecordFacts,
    document: DocumentFacts | None,
    upload: UploadFacts | None,
    *,
    representative: bool,
) -> Decision:
    rule = "legal-representative" if representative else "patient"
    who = "a legal representative" if representative else "the patient"
    closed = record.state is not RecordState.ACTIVE
    if action in (Action.DOCUMENT_READ, Action.DOCUMENT_MASK) and document is not None:
        if _invisible_to_patient(record, document):
            return _deny(rule, "the document is not yet visible to the patient (INVISIBLE_PATIENT)")
        if representative and INVISIBLE_REPRESENTATIVES in document.labels:
            return _deny(rule, "the document is not visible to legal representatives")
        if action is Action.DOCUMENT_MASK:
            if closed:
                return _deny(rule, "the record is closed: reopen it first")
            if document.status != DocumentStatus.CURRENT:
                return _deny(rule, "only a current document is masked or unmasked")
        return _allow(rule, f"{who} reads their record")
    if action is Action.DOCUMENT_READ and upload is not None:
        return _uploaded(upload, closed)
    if action in _SEARCHES or action is Action.DOCUMENT_READ:
        return _allow(rule, f"{who} reads their record")
    if action in (Action.DOCUMENT_CREATE, Action.BINARY_CREATE, Action.BINARY_ATTACH):
        if document is not None and document.class_code != PATIENT_CLASS:
            return _deny(rule, f"{who} adds only documents of class 90 (déposé par le patient)")
        if closed:
            return _deny(rule, "the record is closed: reopen it first")
        if action is Action.BINARY_ATTACH:
            return _uploaded(upload, closed)
        return _allow(rule, f"{who} adds a document")
    if action in _AUTHOR_CHANGES:
        return _author_changes(actor, record, document)
    if action in _LIFECYCLE:
        if representative:
            return _deny(rule, "only the patient closes, reopens or destroys the record")
        if action is Action.RECORD_CLOSE and closed:
            return _deny(rule, "the record is closed already")
        return _allow(rule, "the patient decides the life of their record")
    if action in _PATIENT_READS:
        return _allow(rule, f"{who} reads their record")
    if action in _PATIENT_MANAGES:
        if closed:
            return _deny(rule, "the record is closed: reopen it first")
        return _allow(rule, f"{who} manages their record")
    return _deny(rule, f"{action.value} is not for {who}")


def _uploaded(upload: UploadFacts | None, closed: bool) -> Decision:
    """Content uploaded before its metadata: its uploader alone names it in a document (or
    reads it back before then)."""
    if upload is None or not upload.by_actor:
        return _deny("uploader", "only whoever uploaded the content may use it")
    if closed:
        return _deny("uploader", "the record is closed")
    return _allow("uploader", "the uploader uses the content they uploaded")


def _author_changes(actor: Actor, record: RecordFacts, document: DocumentFacts | None) -> Decision:
    if document is None or document.author_id != actor.id:
        return _deny("document-author", "only the document's author may change it")
    if record.state is not RecordState.ACTIVE:
        return _deny("document-author", "the record is closed: reopen it first")
    return _allow("document-author", "the author changes their document")


def _author_masks(actor: Actor, record: RecordFacts, document: DocumentFacts | None) -> Decision:
    """``MASQUE_PS`` set or lifted by a professional (``document.labels``: the labels before the
    change, so a masked document is being unmasked). dmp.md §4: the flag is "set by the
    patient, or by the author at submission with the patient's agreement"; the ANS guide PDSm
    for DMP (TD3.3a) lets the professional's software mask a stored document too: the author
    masks their own document, the patient's agreement being theirs to obtain as at submission.
    Lifting a mask stays the patient's (CSP L1111-15: "certaines informations peuvent être
    rendues inaccessibles par le titulaire"): carnet does not record who masked, and an
    author's unmasking could undo the patient's own choice."""
    if document is not None and MASKED in document.labels:
        return _deny(
            "patient-only", "only the patient (or a representative) lifts a mask (MASQUE_PS)"
        )
    if not _author_changes(actor, record, document):
        return _deny(
            "patient-only",
            "only the patient, or the document's author with the patient's agreement, masks it",
        )
    if document is not None and document.status != DocumentStatus.CURRENT:
        return _deny("document-author", "only a current document is masked")
    return _allow("document-author", "the author masks their document with the patient's agreement")


# -- 5 to 8: professionals ---------------------------------------------------------------------


def _professional(
    actor: Actor,
    action: Action,
    record: RecordFacts,
    document: DocumentFacts | None,
    consent: ConsentFacts | None,
    upload: UploadFacts | None,
    event: EventFacts | None,
    matrix: MatrixCheck,
) -> Decision:
    if action is Action.RECORD_STATUS:
        return _allow("professional-status", "record status (TD0.2)")
    if action in (Action.DOCUMENT_CREATE, Action.BINARY_CREATE):
        # dmp.md §4: any professional feeds an active record; a blocked one too
        return _allow("professional-feeds", "professionals add documents to an active record")
    if action is Action.BINARY_ATTACH:
        return _uploaded(upload, closed=False)
    if action in _AUTHOR_CHANGES:
        return _author_changes(actor, record, document)
    if action is Action.CONSENT_AUTHORISE:
        if record.blocked:
            return _deny("blocked", "the patient blocked this professional")
        if actor.mode is not AccessMode.NORMAL:
            return _deny("consent", "consent is recorded in normal mode only")
        if consent is not None and consent.target_blocked:
            return _deny(
                "blocked", "the patient blocked this professional: only the patient lifts a block"
            )
        return _allow("consent", "a professional records the patient's consent (TD0.3)")
    if action is Action.RECORD_CONTACT:
        # dmp.md §5: the patient is told of every access; whoever could change where they are
        # told, or turn notices off, could read unseen
        return _deny(
            "patient-only",
            "only the patient (or a representative) changes contact details and notifications",
        )
    if action is Action.DOCUMENT_MASK:
        return _author_masks(actor, record, document)
    if action is Action.RECORD_DESIGNATE or action in _LIFECYCLE:
        return _deny("patient-only", "only the patient does this")
    if action in _PATIENT_MANAGES and action is not Action.RECORD_UPDATE:
        return _deny("patient-only", "only the patient does this")
    if action is Action.CONSENT_READ:
        if consent is not None and not consent.about_actor:
            return _deny("consent", "a professional sees only the consents that concern them")
        return _allow("consent", "a professional sees the consents that concern them")
    if action is Action.AUDIT_READ:
        if record.is_treating_physician and not record.blocked:
            return _allow("treating-physician", "the médecin traitant reads every trace")
        if event is None or event.own:
            return _allow("own-traces", "a professional reads their own traces")
        return _deny("own-traces", "a professional reads only their own traces")
    if action is Action.DOCUMENT_READ and document is None and upload is not None:
        return _uploaded(upload, closed=False)
    # reads: RECORD_READ, RECORD_UPDATE, REPRESENTATIVE_READ, searches, DOCUMENT_READ
    if actor.mode is AccessMode.BRIS_DE_GLACE:
        return _emergency(actor, action, record, document, matrix, "bris-de-glace")
    if actor.mode is AccessMode.CENTRE_15:
        return _emergency(actor, action, record, document, matrix, "centre-15")
    # 5. mode normal
    if record.blocked:
        return _deny("blocked", "the patient blocked this professional")
    if document is not None and document.author_id == actor.id:
        return _allow("document-author", "the author reads what they authored")
    if action in _SEARCHES and not (record.authorised or record.is_treating_physician):
        # rule 8: an author finds what they authored; each row is then decided on its own
        return _allow("document-author", "a professional finds the documents they authored")
    if not (record.authorised or record.is_treating_physician):
        return _deny("not-authorised", "the patient has not authorised this professional")
    if document is None:
        return _allow("authorised", "the patient authorised this professional")
    if not matrix(actor.profession, actor.specialty, document.type_code, document.class_code):
        return _deny("matrix", "the access matrix does not allow this document type")
    if MASKED in document.labels and not record.is_treating_physician:
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
    if MASKED in document.labels and not (
        record.allows_masked_in_emergency or record.is_treating_physician
    ):
        return _deny("masked", "the patient did not allow masked documents in an emergency")
    return _allow(rule, "emergency access")


def _decide_duplicate(
    actor: Actor,
    record: RecordFacts | None,
    document: DocumentFacts | None,
    duplicate: DuplicateFacts,
    matrix: MatrixCheck,
) -> Decision:
    """A new document whose uniqueId a stored document has (dmp.md §4: the same document twice
    is not stored twice). Whoever may not add the document is refused as if the uniqueId were
    free; whoever may read the stored one and sends the same content gets it again (the
    submission is idempotent); every other case (other content, or a stored document the actor
    may not read, whatever its content) is one and the same refusal, which tells nothing of the
    stored document."""
    create = decide(actor, Action.DOCUMENT_CREATE, record, document, matrix=matrix)
    if not create:
        return create
    seen = decide(actor, Action.DOCUMENT_READ, record, duplicate.stored, matrix=matrix)
    if seen and duplicate.same_content:
        return _allow("same-document", "the same document again: the stored one stands")
    return _deny("unique-id", "the uniqueId is used by another document")


def _search_scope(actor: Actor, search: SearchFacts) -> Decision:
    """What a search may name, before any record: an emergency access (rules 6 and 7) is for
    one patient in distress, so it names exactly one patient per request (dmp.md §3)."""
    if actor.kind is ActorKind.PROFESSIONAL and actor.mode is not AccessMode.NORMAL:
        rule = "bris-de-glace" if actor.mode is AccessMode.BRIS_DE_GLACE else "centre-15"
        if search.patients_named != 1:
            return _deny(
                rule,
                "an emergency access (bris_de_glace, centre_15) names exactly one patient per "
                f"request; this one names {search.patients_named}",
            )
    return _allow("search-scope", "the request names what it may")


def _decide_create(actor: Actor, action: Action, candidate: RecordFacts | None) -> Decision:
    """Opening a record, and objecting to it (dmp.md §2; CSP L1111-14: a record is created
    with the person's consent, and the person may refuse it). ``candidate`` describes the record
    to be opened (its INS, whether the person objected); existence is checked by the store,
    which refuses a second record for the same INS.

    - An objection is the person's own will: they record it themself online, or a professional
      records it in normal mode at their office, with the person there (as consent to creation
      is taken). Nobody records one for someone else online, nor in an emergency.
    - The person withdraws their objection at any time, and opening their own record online
      withdraws it; the professional who recorded one may withdraw it (their own mistake).
      Nobody else does.
    - A professional does not open a record for a person who objected; the refusal does not
      tell the objection apart from other refusals (nor any other professional that there is
      one).
    """
    own = actor.kind is ActorKind.PATIENT and candidate is not None and candidate.ins == actor.ins
    if actor.kind is ActorKind.PROFESSIONAL:
        rule = "professional-opens"
        if actor.mode is not AccessMode.NORMAL:
            return _deny(rule, "a record is opened in normal mode, with the person's consent")
        if action is Action.RECORD_WITHDRAW:
            if candidate is not None and candidate.objection_own:
                return _allow(rule, "the professional who recorded an objection withdraws it")
            return _deny(rule, "only the person, or who recorded it, withdraws an objection")
        if action is Action.RECORD_OBJECTION:
            return _allow(rule, "a professional records the person's objection at their office")
        if candidate is not None and candidate.objected:
            return _deny(rule, "a record cannot be opened for this person here")
        return _allow(rule, "a professional opens a record with consent")
    if actor.kind is ActorKind.PATIENT:
        if own:
            return _allow("patient-opens", "the person decides whether they have a record")
        return _deny("patient", "a person decides only for themself")
    return _deny("default-deny", f"{actor.kind.value} actors do not open records")
