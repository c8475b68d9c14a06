"""Traces reveal nothing a reader may not read (issue: "Close every way a refused document still
shows"), tried from the attacker's side through `GET /fhir/AuditEvent`:

- a search's trace names and counts only what its reader may read now (the blocked médecin's
  "10 left out", the pharmacist's "1 left out" are gone);
- the patient does not find the id of a document hidden from them (`INVISIBLE_PATIENT`) in any
  trace they read (the author's `document.create`, professionals' reads and searches, their own
  searches), and `entity=DocumentReference/<hidden>` finds exactly what it finds for a missing
  id; a legal representative likewise for `INVISIBLE_REPRESENTANTS_LEGAUX`;
- a refused read by id leaves its actor the same visible trace as a read of a missing id (no
  record, no rule), on DocumentReference and Binary.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.factories import (
    FHIR_JSON,
    Person,
    Rules,
    random_nir,
    related_person_resource,
)

PHARMACIST = "21"


@pytest.fixture()
def rules(http: httpx.Client, factory: Any) -> Rules:
    return Rules(http, factory)


def audit(rules: Rules, who: Person, **params: Any) -> dict[str, Any]:
    r = rules.http.get("/fhir/AuditEvent", params={"_count": 500, **params}, headers=who.headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def events(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in body.get("entry", [])]


def text_of(body: dict[str, Any]) -> str:
    return json.dumps(body)


def details(ev: dict[str, Any]) -> list[str]:
    return [d["valueString"] for e in ev.get("entity", []) for d in e.get("detail", [])]


def action(ev: dict[str, Any]) -> str:
    return str(ev["subtype"][0]["code"])


def visible_form(ev: dict[str, Any]) -> dict[str, Any]:
    """A trace as its reader sees it, less what differs between any two events (id, time)."""
    out = {k: v for k, v in ev.items() if k not in ("id", "meta", "recorded")}
    return json.loads(json.dumps(out))


def own_refusal(ev: dict[str, Any]) -> bool:
    """The reader's own refusal, shown as one of something missing."""
    return ev.get("outcomeDesc") == "refused, or no such resource" and "Patient/" not in text_of(ev)


def counts_nothing(ev: dict[str, Any]) -> None:
    for d in details(ev):
        assert "left out" not in d, d


class Stage:
    """A record opened by ``author`` holding ten documents, one masked (MASQUE_PS), one
    INVISIBLE_PATIENT, one INVISIBLE_REPRESENTANTS_LEGAUX; a médecin and a pharmacist authorised
    by the patient; a legal representative."""

    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self.author = rules.pro()
        self.ins, self.pid, self.patient = rules.record(self.author)
        self.plain = [rules.doc(self.ins, self.author) for _ in range(7)]
        self.masked = rules.doc(self.ins, self.author, labels=["N", "MASQUE_PS"])
        self.invisible = rules.doc(self.ins, self.author, labels=["N", "INVISIBLE_PATIENT"])
        self.secret = rules.doc(
            self.ins, self.author, labels=["N", "INVISIBLE_REPRESENTANTS_LEGAUX"]
        )
        self.medecin = rules.pro()
        self.pharmacist = rules.pro(profession=PHARMACIST)
        for who in (self.medecin, self.pharmacist):
            r = rules.consent(self.patient, self.pid, rpps=who.rpps)
            assert r.status_code == 201, r.text
        self.rep = rules.patient(random_nir())
        r = rules.http.post(
            "/fhir/RelatedPerson",
            json=related_person_resource(self.pid, self.rep.ins),
            headers={**self.patient.headers, **FHIR_JSON},
        )
        assert r.status_code == 201, r.text


@pytest.fixture()
def stage(rules: Rules) -> Stage:
    return Stage(rules)


def test_a_blocked_medecins_traces_count_nothing(rules: Rules, stage: Stage) -> None:
    s = stage
    everything = rules.visible(s.medecin, s.pid)
    assert s.invisible in everything and s.masked not in everything
    r = rules.consent(s.patient, s.pid, rpps=s.medecin.rpps, decision="deny")
    assert r.status_code == 201, r.text
    assert rules.visible(s.medecin, s.pid) == set()
    body = audit(rules, s.medecin)
    text = text_of(body)
    for doc_id in [*s.plain, s.masked, s.invisible, s.secret]:
        assert doc_id not in text, "a blocked médecin's traces name a document"
    searches = [e for e in events(body) if action(e) == "document.search"]
    assert searches, "the searches are the médecin's to see"
    for ev in searches:
        counts_nothing(ev)
        assert all(d == "returned" or d == "refused" for d in details(ev) if d != "authorised")
    # the search while blocked: a refusal shown as one of something missing
    refused = [e for e in searches if e["outcome"] == "4"]
    assert refused and all("Patient/" not in text_of(e) for e in refused)
    assert all(e["outcomeDesc"] == "refused, or no such resource" for e in refused)


def test_an_authorised_pharmacists_traces_name_only_what_they_read(
    rules: Rules, stage: Stage
) -> None:
    s = stage
    seen = rules.visible(s.pharmacist, s.pid)
    assert s.masked not in seen and seen
    body = audit(rules, s.pharmacist)
    assert s.masked not in text_of(body)
    [search] = [e for e in events(body) if action(e) == "document.search"]
    counts_nothing(search)
    [returned] = [d for d in details(search) if d.startswith("returned")]
    assert set(returned.split()[1:]) == seen


def test_the_patient_finds_no_trace_of_a_document_hidden_from_them(
    rules: Rules, stage: Stage
) -> None:
    s = stage
    assert rules.read(s.patient, s.invisible).status_code == 404
    # professionals read and search it; the author's own create names it
    assert rules.read(s.medecin, s.invisible).status_code == 200
    assert rules.content(s.medecin, s.invisible).status_code in (200, 404)
    assert s.invisible in rules.visible(s.medecin, s.pid)
    assert rules.read(s.pharmacist, s.invisible).status_code == 200
    assert rules.read(rules.pro(), s.invisible).status_code == 404  # refused: not authorised
    assert s.invisible not in rules.visible(s.patient, s.pid)
    body = audit(rules, s.patient)
    # only their own refused read names it, as they typed it, the way a missing id would be
    leaking = [e for e in events(body) if s.invisible in text_of(e) and not own_refusal(e)]
    assert not leaking, json.dumps(leaking, indent=1)[:3000]
    assert s.plain[0] in text_of(body)  # what they may read stays named
    # the accesses still show: "a professional accessed a document hidden from you for now"
    hidden = [
        e
        for e in events(body)
        if any(
            x.get("what", {}).get("display", "").startswith("a document hidden")
            for x in e.get("entity", [])
        )
    ]
    assert {action(e) for e in hidden} >= {"document.create", "document.read"}
    assert all("extension" not in e for e in hidden)  # no chain values to guess from
    for e in events(body):
        counts_nothing(e)
    # naming it finds what naming a missing document the patient tried to read finds: their
    # own attempt, and nothing of anyone else's
    missing = f"{s.pid}-{'0' * 8}"
    assert rules.read(s.patient, missing).status_code == 404
    named = audit(rules, s.patient, entity=f"DocumentReference/{s.invisible}")
    absent = audit(rules, s.patient, entity=f"DocumentReference/{missing}")
    assert named["total"] == absent["total"] == 1
    a, b = visible_form(events(named)[0]), visible_form(events(absent)[0])
    assert json.dumps(a).replace(s.invisible, "ID") == json.dumps(b).replace(missing, "ID")


def test_a_representative_finds_no_trace_of_a_document_kept_from_them(
    rules: Rules, stage: Stage
) -> None:
    s = stage
    assert rules.read(s.rep, s.secret).status_code == 404
    assert rules.read(s.medecin, s.secret).status_code == 200
    assert rules.visible(s.rep, s.pid) == set(s.plain) | {s.masked}
    body = audit(rules, s.rep, patient=s.pid)
    text = text_of(body)
    assert s.secret not in text and s.invisible not in text
    assert s.plain[0] in text
    for e in events(body):
        counts_nothing(e)
    named = audit(rules, s.rep, entity=f"DocumentReference/{s.secret}")
    assert named["total"] == 1 and own_refusal(events(named)[0])  # their own attempt only
    # the patient, who may read it, sees it named
    assert s.secret in text_of(audit(rules, s.patient))


@pytest.mark.parametrize("what", ["DocumentReference", "Binary"])
def test_a_refused_read_leaves_its_actor_the_trace_of_a_missing_one(
    rules: Rules, stage: Stage, what: str
) -> None:
    s = stage
    stranger = rules.pro()
    missing = f"{s.pid}-{'0' * 8}"
    read = rules.read if what == "DocumentReference" else rules.content
    refused_answer = read(stranger, s.masked)
    missing_answer = read(stranger, missing)
    assert refused_answer.status_code == missing_answer.status_code == 404
    assert refused_answer.content == missing_answer.content
    mine = [e for e in events(audit(rules, stranger)) if action(e) == "document.read"]
    assert len(mine) == 2, mine
    newer, older = mine  # newest first: the missing one, then the refused one
    assert older["outcome"] == newer["outcome"] == "4"
    a, b = visible_form(older), visible_form(newer)
    assert json.dumps(a).replace(s.masked, "ID") == json.dumps(b).replace(missing, "ID")
    for ev in (older, newer):
        assert "Patient/" not in text_of(ev) and "masked" not in text_of(ev)
    # the patient sees the refused attempt on their record, in full
    theirs = [
        e
        for e in events(audit(rules, s.patient, action="document.read", outcome="4"))
        if e["agent"][0]["altId"] == f"rpps:{stranger.rpps}"
    ]
    assert len(theirs) == 1 and f"Patient/{s.pid}" in text_of(theirs[0])
