"""Who sets and lifts ``MASQUE_PS`` (docs/access.md "Masking"): the patient and representatives
both ways; the document's author sets it (dmp.md §4, with the patient's agreement; ANS PDSm for
DMP TD3.3a, later too) but never lifts it (CSP L1111-15: the patient's right); nobody else.

``decide(…, Action.DOCUMENT_MASK, …)`` is given the document's labels before the change: a
document that carries ``MASQUE_PS`` is being unmasked."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from carnet.access.policy import Action, DocumentFacts, RecordFacts, RecordState, decide
from carnet.domain.actors import AccessMode, Actor, ActorKind

NOW = datetime(2026, 11, 23, 12, 0)
INS = "258037505612368"
AUTHOR_RPPS = "899700218896"

AUTHOR = Actor(
    ActorKind.PROFESSIONAL, f"rpps:{AUTHOR_RPPS}", "t", rpps=AUTHOR_RPPS, profession="10"
)
OTHER = Actor(
    ActorKind.PROFESSIONAL, "rpps:810100000016", "t", rpps="810100000016", profession="10"
)
PATIENT = Actor(ActorKind.PATIENT, "p", "t", ins=INS)
REP = Actor(ActorKind.PATIENT, "r", "t", ins="192116912304554")

REC = RecordFacts("r1", RecordState.ACTIVE, INS, now=NOW)
AUTH = replace(REC, authorised=True)
GP = replace(REC, authorised=True, is_treating_physician=True)
AS_REP = replace(REC, is_representative=True)
PLAIN = DocumentFacts(
    "d1",
    "current",
    f"rpps:{AUTHOR_RPPS}",
    frozenset({"N"}),
    type_code="11488-4",
    class_code="10",
    added_at=NOW - timedelta(days=60),
)
MASKED = replace(PLAIN, labels=frozenset({"N", "MASQUE_PS"}))


def _all(*_: object) -> bool:
    return True


CASES: list[tuple[str, Actor, RecordFacts, DocumentFacts, bool, str]] = [
    # the patient and representatives: both ways
    ("patient masks", PATIENT, REC, PLAIN, True, "patient"),
    ("patient unmasks", PATIENT, REC, MASKED, True, "patient"),
    ("representative masks", REP, AS_REP, PLAIN, True, "legal-representative"),
    ("representative unmasks", REP, AS_REP, MASKED, True, "legal-representative"),
    # the author sets it on their own document, authorised or not (profil Alimentation)
    ("author masks, authorised", AUTHOR, AUTH, PLAIN, True, "document-author"),
    ("author masks, not authorised", AUTHOR, REC, PLAIN, True, "document-author"),
    (
        "author masks in bris de glace",
        replace(AUTHOR, mode=AccessMode.BRIS_DE_GLACE, reason="x"),
        REC,
        PLAIN,
        True,
        "document-author",
    ),
    # … but never lifts it, even one they set
    ("author does not unmask", AUTHOR, AUTH, MASKED, False, "patient-only"),
    ("author médecin traitant does not unmask", AUTHOR, GP, MASKED, False, "patient-only"),
    # nobody else
    ("authorised professional does not mask", OTHER, AUTH, PLAIN, False, "patient-only"),
    ("authorised professional does not unmask", OTHER, AUTH, MASKED, False, "patient-only"),
    ("médecin traitant does not mask", OTHER, GP, PLAIN, False, "patient-only"),
    ("médecin traitant does not unmask", OTHER, GP, MASKED, False, "patient-only"),
    # what holds for every change
    (
        "author: only a current document",
        AUTHOR,
        AUTH,
        replace(PLAIN, status="superseded"),
        False,
        "document-author",
    ),
    (
        "author: closed record",
        AUTHOR,
        replace(AUTH, state=RecordState.CLOSED),
        PLAIN,
        False,
        "record-closed",
    ),
    (
        "author: deleted document",
        AUTHOR,
        AUTH,
        replace(PLAIN, status="entered-in-error"),
        False,
        "document-deleted",
    ),
    (
        "patient: only a current document",
        PATIENT,
        REC,
        replace(MASKED, status="superseded"),
        False,
        "patient",
    ),
]


@pytest.mark.parametrize(
    ("actor", "record", "document", "allowed", "rule"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_masking(
    actor: Actor, record: RecordFacts, document: DocumentFacts, allowed: bool, rule: str
) -> None:
    decision = decide(actor, Action.DOCUMENT_MASK, record, document, matrix=_all)
    assert decision.allowed is allowed, decision
    assert decision.rule == rule, decision
    assert decision.reason


def test_the_author_who_masked_still_reads_and_others_do_not() -> None:
    """What masking does once set, whoever set it (dmp.md §3 rule 5)."""
    assert decide(AUTHOR, Action.DOCUMENT_READ, AUTH, MASKED, matrix=_all)
    assert not decide(OTHER, Action.DOCUMENT_READ, AUTH, MASKED, matrix=_all)
    assert decide(OTHER, Action.DOCUMENT_READ, GP, MASKED, matrix=_all)
    assert decide(PATIENT, Action.DOCUMENT_READ, REC, MASKED, matrix=_all)
