"""Each rule of dmp.md §3, in its order, table-driven against the pure policy function."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from carnet.access.policy import (
    Action,
    ConsentFacts,
    DocumentFacts,
    DuplicateFacts,
    EventFacts,
    RecordFacts,
    RecordState,
    SearchFacts,
    UploadFacts,
    decide,
)
from carnet.domain.actors import AccessMode, Actor, ActorKind

NOW = datetime(2026, 11, 23, 12, 0)
INS = "258037505612368"
OTHER_INS = "192116912304554"

PATIENT = Actor(ActorKind.PATIENT, "p", "t", ins=INS)
STRANGER = Actor(ActorKind.PATIENT, "s", "t", ins=OTHER_INS)
REP = Actor(ActorKind.PATIENT, "r", "t", ins=OTHER_INS)
GP = Actor(
    ActorKind.PROFESSIONAL, "gp", "t", rpps="810100000016", profession="10", specialty="SM54"
)
NURSE = Actor(ActorKind.PROFESSIONAL, "n", "t", rpps="810100000057", profession="60")
DENTIST = Actor(ActorKind.PROFESSIONAL, "d", "t", rpps="810100000073", profession="40")
BDG = replace(GP, mode=AccessMode.BRIS_DE_GLACE, reason="coma, urgences")
BDG_NO_REASON = replace(GP, mode=AccessMode.BRIS_DE_GLACE, reason=None)
C15 = replace(GP, mode=AccessMode.CENTRE_15)
OPERATOR = Actor(ActorKind.OPERATOR, "op", "t")

REC = RecordFacts("r1", RecordState.ACTIVE, INS, now=NOW)
AUTH = replace(REC, authorised=True)
DOC = DocumentFacts(
    "d1",
    "current",
    "rpps:899700218896",
    frozenset({"N"}),
    type_code="11488-4",
    class_code="10",
    added_at=NOW - timedelta(days=60),
)


def matrix(
    profession: str | None, specialty: str | None, type_code: str | None, class_code: str | None
) -> bool:
    """A small matrix for these tests: nurses do not read consultation notes."""
    return not (profession == "60" and type_code == "11488-4")


def labelled(*labels: str, **kw: object) -> DocumentFacts:
    return replace(DOC, labels=frozenset(labels), **kw)  # type: ignore[arg-type]


CASES: list[tuple[str, Actor, Action, RecordFacts | None, DocumentFacts | None, bool, str]] = [
    # rule 1: missing, destroyed, closed
    ("missing record", GP, Action.DOCUMENT_READ, None, DOC, False, "record-missing"),
    (
        "destroyed record",
        PATIENT,
        Action.RECORD_READ,
        replace(REC, state=RecordState.DESTROYED),
        None,
        False,
        "record-missing",
    ),
    (
        "closed: professional reads nothing",
        GP,
        Action.DOCUMENT_READ,
        replace(AUTH, state=RecordState.CLOSED),
        DOC,
        False,
        "record-closed",
    ),
    (
        "closed: professional learns the status",
        GP,
        Action.RECORD_STATUS,
        replace(AUTH, state=RecordState.CLOSED),
        None,
        True,
        "record-closed",
    ),
    (
        "closed: the patient still reads",
        PATIENT,
        Action.DOCUMENT_READ,
        replace(REC, state=RecordState.CLOSED),
        DOC,
        True,
        "patient",
    ),
    (
        "closed: a representative does not",
        REP,
        Action.DOCUMENT_READ,
        replace(REC, state=RecordState.CLOSED, is_representative=True),
        DOC,
        False,
        "record-closed",
    ),
    # rule 2: deleted documents
    (
        "deleted: not even the patient",
        PATIENT,
        Action.DOCUMENT_READ,
        REC,
        replace(DOC, status="entered-in-error"),
        False,
        "document-deleted",
    ),
    (
        "deleted: not even the author",
        replace(GP, rpps="899700218896"),
        Action.DOCUMENT_READ,
        AUTH,
        replace(DOC, status="entered-in-error"),
        False,
        "document-deleted",
    ),
    (
        "archived documents stay readable",
        PATIENT,
        Action.DOCUMENT_READ,
        REC,
        replace(DOC, archived=True),
        True,
        "patient",
    ),
    # rule 3: the patient
    ("patient reads own", PATIENT, Action.DOCUMENT_READ, REC, DOC, True, "patient"),
    (
        "patient reads a masked document",
        PATIENT,
        Action.DOCUMENT_READ,
        REC,
        labelled("MASQUE_PS"),
        True,
        "patient",
    ),
    (
        "INVISIBLE_PATIENT within the month",
        PATIENT,
        Action.DOCUMENT_READ,
        REC,
        labelled("INVISIBLE_PATIENT", added_at=NOW - timedelta(days=3)),
        False,
        "patient",
    ),
    (
        "INVISIBLE_PATIENT lifts after a month",
        PATIENT,
        Action.DOCUMENT_READ,
        REC,
        labelled("INVISIBLE_PATIENT", added_at=NOW - timedelta(days=31)),
        True,
        "patient",
    ),
    ("another patient's record", STRANGER, Action.DOCUMENT_READ, REC, DOC, False, "patient"),
    (
        "patient adds class 90",
        PATIENT,
        Action.DOCUMENT_CREATE,
        REC,
        replace(DOC, class_code="90"),
        True,
        "patient",
    ),
    ("patient adds no other class", PATIENT, Action.DOCUMENT_CREATE, REC, DOC, False, "patient"),
    ("patient closes", PATIENT, Action.RECORD_CLOSE, REC, None, True, "patient"),
    ("patient destroys", PATIENT, Action.RECORD_DESTROY, REC, None, True, "patient"),
    ("patient masks", PATIENT, Action.DOCUMENT_MASK, REC, DOC, True, "patient"),
    ("patient manages consents", PATIENT, Action.CONSENT_BLOCK, REC, None, True, "patient"),
    (
        "patient chooses emergency consents",
        PATIENT,
        Action.CONSENT_EMERGENCY,
        REC,
        None,
        True,
        "patient",
    ),
    (
        "patient names the médecin traitant",
        PATIENT,
        Action.RECORD_DESIGNATE,
        REC,
        None,
        True,
        "patient",
    ),
    # rule 4: legal representatives
    (
        "representative reads",
        REP,
        Action.DOCUMENT_READ,
        replace(REC, is_representative=True),
        DOC,
        True,
        "legal-representative",
    ),
    (
        "representative: INVISIBLE_REPRESENTANTS_LEGAUX",
        REP,
        Action.DOCUMENT_READ,
        replace(REC, is_representative=True),
        labelled("INVISIBLE_REPRESENTANTS_LEGAUX"),
        False,
        "legal-representative",
    ),
    (
        "representative does not destroy",
        REP,
        Action.RECORD_DESTROY,
        replace(REC, is_representative=True),
        None,
        False,
        "legal-representative",
    ),
    # rule 5: professionals in normal mode
    (
        "blocked: no read",
        GP,
        Action.DOCUMENT_READ,
        replace(AUTH, blocked=True),
        DOC,
        False,
        "blocked",
    ),
    (
        "blocked: still adds",
        GP,
        Action.DOCUMENT_CREATE,
        replace(REC, blocked=True),
        DOC,
        True,
        "professional-feeds",
    ),
    ("not authorised", GP, Action.DOCUMENT_READ, REC, DOC, False, "not-authorised"),
    (
        "not authorised: status only",
        GP,
        Action.RECORD_STATUS,
        REC,
        None,
        True,
        "professional-status",
    ),
    ("authorised reads", GP, Action.DOCUMENT_READ, AUTH, DOC, True, "authorised"),
    (
        "médecin traitant is authorised",
        GP,
        Action.DOCUMENT_READ,
        replace(REC, is_treating_physician=True),
        DOC,
        True,
        "authorised",
    ),
    ("matrix refuses", NURSE, Action.DOCUMENT_READ, AUTH, DOC, False, "matrix"),
    (
        "masked from professionals",
        GP,
        Action.DOCUMENT_READ,
        AUTH,
        labelled("MASQUE_PS"),
        False,
        "masked",
    ),
    (
        "masked: médecin traitant reads",
        GP,
        Action.DOCUMENT_READ,
        replace(AUTH, is_treating_physician=True),
        labelled("MASQUE_PS"),
        True,
        "authorised",
    ),
    ("professional does not mask", GP, Action.DOCUMENT_MASK, AUTH, DOC, False, "patient-only"),
    ("professional does not block", GP, Action.CONSENT_BLOCK, AUTH, None, False, "patient-only"),
    ("professional does not revoke", GP, Action.CONSENT_REVOKE, AUTH, None, False, "patient-only"),
    (
        "professional does not change emergency consents",
        GP,
        Action.CONSENT_EMERGENCY,
        AUTH,
        None,
        False,
        "patient-only",
    ),
    (
        "professional does not name the médecin traitant",
        GP,
        Action.RECORD_DESIGNATE,
        AUTH,
        None,
        False,
        "patient-only",
    ),
    (
        "professional does not change contact details or notifications",
        GP,
        Action.RECORD_CONTACT,
        AUTH,
        None,
        False,
        "patient-only",
    ),
    (
        "patient changes contact details and notifications",
        PATIENT,
        Action.RECORD_CONTACT,
        REC,
        None,
        True,
        "patient",
    ),
    (
        "representative changes contact details and notifications",
        REP,
        Action.RECORD_CONTACT,
        replace(REC, is_representative=True),
        None,
        True,
        "legal-representative",
    ),
    (
        "professional updates identity traits",
        GP,
        Action.RECORD_UPDATE,
        AUTH,
        None,
        True,
        "authorised",
    ),
    ("professional does not close", GP, Action.RECORD_CLOSE, AUTH, None, False, "patient-only"),
    (
        "a search finds what one authored, unauthorised",
        GP,
        Action.DOCUMENT_SEARCH,
        REC,
        None,
        True,
        "document-author",
    ),
    (
        "a blocked professional finds nothing",
        GP,
        Action.DOCUMENT_SEARCH,
        replace(REC, blocked=True),
        None,
        False,
        "blocked",
    ),
    (
        "professional records an authorisation",
        GP,
        Action.CONSENT_AUTHORISE,
        REC,
        None,
        True,
        "consent",
    ),
    (
        "blocked professional cannot authorise",
        GP,
        Action.CONSENT_AUTHORISE,
        replace(REC, blocked=True),
        None,
        False,
        "blocked",
    ),
    # rule 6: bris de glace
    (
        "bris de glace without authorisation",
        BDG,
        Action.DOCUMENT_READ,
        REC,
        DOC,
        True,
        "bris-de-glace",
    ),
    (
        "bris de glace refused by the patient",
        BDG,
        Action.DOCUMENT_READ,
        replace(REC, allows_bris_de_glace=False),
        DOC,
        False,
        "bris-de-glace",
    ),
    (
        "bris de glace needs a reason",
        BDG_NO_REASON,
        Action.DOCUMENT_READ,
        REC,
        DOC,
        False,
        "bris-de-glace",
    ),
    (
        "bris de glace keeps the matrix",
        replace(NURSE, mode=AccessMode.BRIS_DE_GLACE, reason="x"),
        Action.DOCUMENT_READ,
        REC,
        DOC,
        False,
        "matrix",
    ),
    (
        "bris de glace: masked refused by default",
        BDG,
        Action.DOCUMENT_READ,
        REC,
        labelled("MASQUE_PS"),
        False,
        "masked",
    ),
    (
        "bris de glace: masked allowed by the patient",
        BDG,
        Action.DOCUMENT_READ,
        replace(REC, allows_masked_in_emergency=True),
        labelled("MASQUE_PS"),
        True,
        "bris-de-glace",
    ),
    (
        "bris de glace: blocked stays blocked",
        BDG,
        Action.DOCUMENT_READ,
        replace(REC, blocked=True),
        DOC,
        False,
        "blocked",
    ),
    # rule 7: centre 15
    ("centre 15 without authorisation", C15, Action.DOCUMENT_READ, REC, DOC, True, "centre-15"),
    (
        "centre 15 refused by the patient",
        C15,
        Action.DOCUMENT_READ,
        replace(REC, allows_centre15=False),
        DOC,
        False,
        "centre-15",
    ),
    (
        "centre 15: blocked stays blocked",
        C15,
        Action.DOCUMENT_READ,
        replace(REC, blocked=True),
        DOC,
        False,
        "blocked",
    ),
    # rule 8: the author
    (
        "author reads without authorisation",
        replace(GP, rpps="899700218896"),
        Action.DOCUMENT_READ,
        REC,
        DOC,
        True,
        "document-author",
    ),
    (
        "author reads a masked document",
        replace(GP, rpps="899700218896"),
        Action.DOCUMENT_READ,
        REC,
        labelled("MASQUE_PS"),
        True,
        "document-author",
    ),
    ("only the author replaces", GP, Action.DOCUMENT_REPLACE, AUTH, DOC, False, "document-author"),
    (
        "the author replaces",
        replace(GP, rpps="899700218896"),
        Action.DOCUMENT_REPLACE,
        REC,
        DOC,
        True,
        "document-author",
    ),
    # others
    (
        "the operator reads no medical data",
        OPERATOR,
        Action.DOCUMENT_READ,
        REC,
        DOC,
        False,
        "operator",
    ),
    (
        "a professional opens a record",
        GP,
        Action.RECORD_CREATE,
        REC,
        None,
        True,
        "professional-opens",
    ),
    ("a patient opens only their own", STRANGER, Action.RECORD_CREATE, REC, None, False, "patient"),
]


@pytest.mark.parametrize(
    ("actor", "action", "record", "document", "allowed", "rule"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_rule(
    actor: Actor,
    action: Action,
    record: RecordFacts | None,
    document: DocumentFacts | None,
    allowed: bool,
    rule: str,
) -> None:
    decision = decide(actor, action, record, document, matrix=matrix)
    assert decision.allowed is allowed, decision
    assert decision.rule == rule, decision
    assert decision.reason


def test_matrix_defaults_to_deny() -> None:
    """Forgetting the matrix fails closed."""
    assert not decide(GP, Action.DOCUMENT_READ, AUTH, DOC)


def test_every_rule_of_the_module_is_exercised() -> None:
    rules = {c[6] for c in CASES}
    for rule in (
        "record-missing",
        "record-closed",
        "document-deleted",
        "patient",
        "legal-representative",
        "blocked",
        "document-author",
        "not-authorised",
        "matrix",
        "masked",
        "bris-de-glace",
        "centre-15",
    ):
        assert rule in rules


# -- the facts beyond record and document: a consent's target, uploads, traces, the operator ----

CLOSED_LONG_AGO = replace(
    REC, state=RecordState.CLOSED, closed_at=NOW - timedelta(days=3700), now=NOW
)
CLOSED_RECENTLY = replace(CLOSED_LONG_AGO, closed_at=NOW - timedelta(days=300))

MORE: list[tuple[str, Actor, Action, RecordFacts | None, dict[str, object], bool, str]] = [
    (
        "a professional does not lift a block by recording a consent",
        GP,
        Action.CONSENT_AUTHORISE,
        REC,
        {"consent": ConsentFacts(target_blocked=True)},
        False,
        "blocked",
    ),
    (
        "the patient lifts a block by authorising",
        PATIENT,
        Action.CONSENT_AUTHORISE,
        REC,
        {"consent": ConsentFacts(target_blocked=True)},
        True,
        "patient",
    ),
    (
        "a professional sees the consents about them",
        GP,
        Action.CONSENT_READ,
        REC,
        {"consent": ConsentFacts(about_actor=True)},
        True,
        "consent",
    ),
    (
        "not those about others",
        GP,
        Action.CONSENT_READ,
        REC,
        {"consent": ConsentFacts(about_actor=False)},
        False,
        "consent",
    ),
    (
        "the uploader names their content",
        GP,
        Action.BINARY_ATTACH,
        REC,
        {"upload": UploadFacts(by_actor=True, attached=False)},
        True,
        "uploader",
    ),
    (
        "nobody else does",
        NURSE,
        Action.BINARY_ATTACH,
        AUTH,
        {"upload": UploadFacts(by_actor=False, attached=False)},
        False,
        "uploader",
    ),
    (
        "a professional reads their own trace",
        GP,
        Action.AUDIT_READ,
        AUTH,
        {"event": EventFacts(own=True)},
        True,
        "own-traces",
    ),
    (
        "not another's",
        GP,
        Action.AUDIT_READ,
        AUTH,
        {"event": EventFacts(own=False)},
        False,
        "own-traces",
    ),
    (
        "the médecin traitant reads every trace",
        GP,
        Action.AUDIT_READ,
        replace(AUTH, is_treating_physician=True),
        {"event": EventFacts(own=False)},
        True,
        "treating-physician",
    ),
    (
        "the patient reads every trace",
        PATIENT,
        Action.AUDIT_READ,
        REC,
        {"event": EventFacts(own=False)},
        True,
        "patient",
    ),
    (
        "the operator purges after ten years",
        OPERATOR,
        Action.RECORD_PURGE,
        CLOSED_LONG_AGO,
        {},
        True,
        "retention",
    ),
    ("not before", OPERATOR, Action.RECORD_PURGE, CLOSED_RECENTLY, {}, False, "retention"),
    ("nor an open record", OPERATOR, Action.RECORD_PURGE, REC, {}, False, "retention"),
    (
        "nobody else purges",
        PATIENT,
        Action.RECORD_PURGE,
        CLOSED_LONG_AGO,
        {},
        False,
        "operator-only",
    ),
    (
        "the operator purges an upload no document names",
        OPERATOR,
        Action.BINARY_PURGE,
        REC,
        {"upload": UploadFacts(by_actor=False, attached=False)},
        True,
        "retention",
    ),
    (
        "not one a document names",
        OPERATOR,
        Action.BINARY_PURGE,
        REC,
        {"upload": UploadFacts(by_actor=False, attached=True)},
        False,
        "retention",
    ),
    (
        "nobody else purges uploads, not even their uploader",
        GP,
        Action.BINARY_PURGE,
        AUTH,
        {"upload": UploadFacts(by_actor=True, attached=False)},
        False,
        "operator-only",
    ),
    ("the operator verifies the chains", OPERATOR, Action.AUDIT_VERIFY, None, {}, True, "operator"),
    ("nobody else verifies", GP, Action.AUDIT_VERIFY, AUTH, {}, False, "operator-only"),
    ("the operator reads no document", OPERATOR, Action.DOCUMENT_READ, AUTH, {}, False, "operator"),
]


@pytest.mark.parametrize(
    ("actor", "action", "record", "facts", "allowed", "rule"),
    [c[1:] for c in MORE],
    ids=[c[0] for c in MORE],
)
def test_more_facts(
    actor: Actor,
    action: Action,
    record: RecordFacts | None,
    facts: dict[str, object],
    allowed: bool,
    rule: str,
) -> None:
    decision = decide(actor, action, record, matrix=matrix, **facts)  # type: ignore[arg-type]
    assert decision.allowed is allowed, decision
    assert decision.rule == rule, decision


# -- a uniqueId used again (dmp.md §4): what the stored document may tell -------------------------

NEW = DocumentFacts("", "current", None, type_code="11488-4", class_code="10")
NEW_90 = replace(NEW, class_code="90")
MASKED_DOC = labelled("N", "MASQUE_PS")
INVISIBLE_DOC = labelled("N", "INVISIBLE_PATIENT", added_at=NOW - timedelta(days=2))

DUPLICATES: list[tuple[str, Actor, RecordFacts, DocumentFacts, DocumentFacts, bool, str]] = [
    ("a reader sends the same document again", GP, AUTH, NEW, DOC, True, "same-document"),
    ("a masked document, to an authorised reader", GP, AUTH, NEW, MASKED_DOC, False, "unique-id"),
    ("a blocked professional", GP, replace(AUTH, blocked=True), NEW, DOC, False, "unique-id"),
    ("an unrelated professional", GP, REC, NEW, DOC, False, "unique-id"),
    ("INVISIBLE_PATIENT, to the patient", PATIENT, REC, NEW_90, INVISIBLE_DOC, False, "unique-id"),
    ("the patient's own document again", PATIENT, REC, NEW_90, DOC, True, "same-document"),
    ("a class the patient does not add", PATIENT, REC, NEW, INVISIBLE_DOC, False, "patient"),
    (
        "a closed record",
        GP,
        replace(AUTH, state=RecordState.CLOSED),
        NEW,
        DOC,
        False,
        "record-closed",
    ),
]


@pytest.mark.parametrize(
    ("actor", "record", "new", "stored", "same_allowed", "rule"),
    [c[1:] for c in DUPLICATES],
    ids=[c[0] for c in DUPLICATES],
)
def test_duplicate_unique_id(
    actor: Actor,
    record: RecordFacts,
    new: DocumentFacts,
    stored: DocumentFacts,
    same_allowed: bool,
    rule: str,
) -> None:
    """Whoever may not add is refused as without the stored document; other content, or a
    stored document the actor may not read, is one refusal whatever the content."""
    without = decide(actor, Action.DOCUMENT_CREATE, record, new, matrix=matrix)
    same, other = (
        decide(
            actor,
            Action.DOCUMENT_CREATE,
            record,
            new,
            duplicate=DuplicateFacts(stored, same_content=same_content),
            matrix=matrix,
        )
        for same_content in (True, False)
    )
    assert same.allowed is same_allowed and same.rule == rule, same
    assert not other
    if not without:
        assert same == other == without
    elif not same:
        assert same == other  # nothing tells a hidden document's content apart
    else:
        assert (other.rule, other.reason) == (
            "unique-id",
            "the uniqueId is used by another document",
        )


def test_an_emergency_access_names_exactly_one_patient() -> None:
    for actor in (BDG, C15):
        for named in (0, 2, 4):
            d = decide(actor, Action.DOCUMENT_SEARCH, None, search=SearchFacts(named))
            assert not d and "exactly one patient" in d.reason
        assert decide(actor, Action.DOCUMENT_SEARCH, None, search=SearchFacts(1))
    for actor in (GP, PATIENT):
        assert decide(actor, Action.DOCUMENT_SEARCH, None, search=SearchFacts(0))
        assert decide(actor, Action.LIST_SEARCH, None, search=SearchFacts(3))


def test_objections_to_creation_are_the_persons_own() -> None:
    candidate = RecordFacts("", RecordState.ACTIVE, INS, now=NOW)
    objected = replace(candidate, objected=True)
    mine = replace(objected, objection_own=True)
    # recording: the person online, a professional at their office (normal mode)
    assert decide(PATIENT, Action.RECORD_OBJECTION, candidate)
    assert not decide(STRANGER, Action.RECORD_OBJECTION, candidate)
    assert decide(GP, Action.RECORD_OBJECTION, candidate)
    assert not decide(BDG, Action.RECORD_OBJECTION, candidate)
    assert not decide(C15, Action.RECORD_OBJECTION, candidate)
    # withdrawing: the person always; the professional who recorded it; nobody else, and a
    # refusal reads the same whether there is an objection or none
    assert decide(PATIENT, Action.RECORD_WITHDRAW, objected)
    assert decide(PATIENT, Action.RECORD_WITHDRAW, candidate)
    assert not decide(STRANGER, Action.RECORD_WITHDRAW, objected)
    assert decide(GP, Action.RECORD_WITHDRAW, mine)
    assert decide(GP, Action.RECORD_WITHDRAW, objected) == decide(
        GP, Action.RECORD_WITHDRAW, candidate
    )
    assert not decide(GP, Action.RECORD_WITHDRAW, objected)
    # opening: a professional not against an objection; the person online, objection or not
    assert decide(GP, Action.RECORD_CREATE, candidate)
    refused = decide(GP, Action.RECORD_CREATE, objected)
    assert not refused and "object" not in refused.reason
    assert decide(PATIENT, Action.RECORD_CREATE, objected)
