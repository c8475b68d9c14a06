"""Emergency access (dmp.md §3 rules 6 and 7, §2 emergency consents): bris de glace and the
SAMU regulator (centre 15), the patient's emergency Consents (purpose BTG, ETREAT, MASKED), and
that the mode comes from the token alone."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.factories import (
    FHIR_JSON,
    Factory,
    Person,
    Rules,
    outcome,
)

REASON = "patient inconscient aux urgences"


@pytest.fixture()
def rules(http: httpx.Client, factory: Factory) -> Rules:
    return Rules(http, factory)


class World:
    def __init__(self, rules: Rules) -> None:
        self.author = rules.pro()
        self.ins, self.pid, self.patient = rules.record(self.author)
        self.plain = rules.doc(self.ins, self.author)
        self.masked = rules.doc(self.ins, self.author, labels=["N", "MASQUE_PS"])
        self.psy = rules.doc(self.ins, self.author, type_code="68599-0", class_code="11")


@pytest.fixture()
def world(rules: Rules) -> World:
    return World(rules)


def _emergency(rules: Rules, mode: str, profession: str = "10", rpps: str | None = None) -> Person:
    claims: dict[str, Any] = {"mode": mode}
    if mode == "bris_de_glace":
        claims["reason"] = REASON
    return rules.pro(profession=profession, rpps=rpps, **claims)


def _reads(rules: Rules, who: Person, doc_id: str) -> bool:
    r = rules.read(who, doc_id)
    assert r.status_code in (200, 404), r.text
    return r.status_code == 200


def _emergency_consent(rules: Rules, w: World, purpose: str) -> dict[str, Any]:
    r = rules.consents(w.patient, w.pid)
    assert r.status_code == 200, r.text
    found = [
        e["resource"]
        for e in r.json()["entry"]
        if any(p.get("code") == purpose for p in e["resource"]["provision"].get("purpose") or [])
    ]
    assert len(found) == 1, r.json()
    return found[0]


def test_default_emergency_consents_are_listed(rules: Rules, world: World) -> None:
    w = world
    assert _emergency_consent(rules, w, "ETREAT")["provision"]["type"] == "permit"
    assert _emergency_consent(rules, w, "BTG")["provision"]["type"] == "permit"
    assert _emergency_consent(rules, w, "MASKED")["provision"]["type"] == "deny"
    # a professional sees only the consents that concern them, not the emergency ones
    r = rules.consents(w.author, w.pid)
    assert r.status_code == 200
    assert all("purpose" not in e["resource"]["provision"] for e in r.json()["entry"])


@pytest.mark.parametrize(("mode", "purpose"), [("bris_de_glace", "BTG"), ("centre_15", "ETREAT")])
def test_emergency_access(rules: Rules, world: World, mode: str, purpose: str) -> None:
    w = world
    doctor = _emergency(rules, mode)
    # no authorisation needed; the matrix still applies; masked documents are left out
    assert rules.visible(doctor, w.pid) == {w.plain, w.psy}
    assert _reads(rules, doctor, w.plain)
    assert rules.content(doctor, w.plain).status_code == 200
    assert not _reads(rules, doctor, w.masked)
    dentist = _emergency(rules, mode, profession="40")
    assert rules.visible(dentist, w.pid) == {w.plain}
    assert not _reads(rules, dentist, w.psy)

    # an emergency search names its patient
    r = rules.http.get("/fhir/DocumentReference", headers=doctor.headers)
    assert outcome(r, 400)["expression"] == ["patient"]
    r = rules.http.get(
        "/fhir/DocumentReference", params={"type": "11488-4"}, headers=doctor.headers
    )
    outcome(r, 400)
    r = rules.http.get(
        "/fhir/DocumentReference",
        params={"patient.identifier": f"urn:oid:1.2.250.1.213.1.4.10|{w.ins}"},
        headers=doctor.headers,
    )
    assert r.status_code == 200 and r.json()["total"] == 2

    # masked documents once the patient allows them in an emergency
    r = rules.consent(w.patient, w.pid, purpose="MASKED", decision="permit")
    assert r.status_code == 201, r.text
    assert rules.visible(doctor, w.pid) == {w.plain, w.psy, w.masked}
    assert _reads(rules, doctor, w.masked)

    # the patient refuses this emergency access: nothing, exactly as for no document
    r = rules.consent(w.patient, w.pid, purpose=purpose, decision="deny")
    assert r.status_code == 201, r.text
    assert r.json()["provision"]["type"] == "deny"
    assert _emergency_consent(rules, w, purpose)["provision"]["type"] == "deny"
    assert rules.search(doctor, w.pid)["total"] == 0
    refused = rules.read(doctor, w.plain)
    outcome(refused, 404)
    assert refused.json() == rules.read(doctor, f"{w.pid}-{'0' * 20}").json()
    outcome(rules.content(doctor, w.plain), 404)
    outcome(rules.http.get(f"/fhir/Patient/{w.pid}", headers=doctor.headers), 404)

    # the other emergency mode is not refused by it
    other = "centre_15" if mode == "bris_de_glace" else "bris_de_glace"
    assert _reads(rules, _emergency(rules, other), w.plain)

    # and a revocation of the refusal brings the default back (allowed)
    cid = _emergency_consent(rules, w, purpose)["id"]
    d = rules.http.delete(f"/fhir/Consent/{cid}", headers=w.patient.headers)
    assert d.status_code == 200, d.text
    assert d.json()["provision"]["type"] == "permit"
    assert _reads(rules, doctor, w.plain)


def test_emergency_consents_set_by_put(rules: Rules, world: World) -> None:
    w = world
    consent = _emergency_consent(rules, w, "BTG")
    r = rules.http.put(
        f"/fhir/Consent/{consent['id']}",
        json={**consent, "provision": {**consent["provision"], "type": "deny"}},
        headers={**w.patient.headers, **FHIR_JSON},
    )
    assert r.status_code == 200, r.text
    doctor = _emergency(rules, "bris_de_glace")
    assert not _reads(rules, doctor, w.plain)
    # a professional does not change it back
    r = rules.http.put(
        f"/fhir/Consent/{consent['id']}",
        json={**consent, "provision": {**consent["provision"], "type": "permit"}},
        headers={**w.author.headers, **FHIR_JSON},
    )
    assert r.status_code in (403, 404), r.text
    assert not _reads(rules, doctor, w.plain)
    assert _emergency_consent(rules, w, "BTG")["provision"]["type"] == "deny"


def test_bris_de_glace_keeps_a_block(rules: Rules, world: World) -> None:
    w = world
    doctor = _emergency(rules, "bris_de_glace")
    assert rules.consent(w.patient, w.pid, rpps=doctor.rpps, decision="deny").status_code == 201
    assert rules.search(doctor, w.pid)["total"] == 0
    assert not _reads(rules, doctor, w.plain)


def test_emergency_mode_does_not_change_the_record(rules: Rules, world: World) -> None:
    w = world
    for mode in ("bris_de_glace", "centre_15"):
        doctor = _emergency(rules, mode)
        body = rules.patient_resource(w.patient, w.pid)
        r = rules.put_patient(
            doctor, {**body, "name": [{"use": "official", "family": "X", "given": ["Y"]}]}
        )
        assert r.status_code in (403, 404), r.text
        # nor records a lasting authorisation for themselves
        r = rules.consent(doctor, w.pid, rpps=doctor.rpps)
        assert r.status_code in (403, 404), r.text
        outcome(r, r.status_code)
    assert rules.patient_resource(w.patient, w.pid)["name"][0]["family"] == "DURAND"


def test_bris_de_glace_needs_a_reason(rules: Rules, factory: Factory) -> None:
    for extra in ({}, {"reason": ""}, {"reason": "   "}):
        r = factory.http.post(
            "/dev/token",
            json={
                "kind": "professional",
                "rpps": "810100000016",
                "profession": "10",
                "mode": "bris_de_glace",
                **extra,
            },
        )
        assert r.status_code == 400, r.text
        assert r.json()["error"] == "invalid_request"
        assert "reason" in r.json()["error_description"]
    r = factory.http.post(
        "/dev/token",
        json={
            "kind": "professional",
            "rpps": "810100000016",
            "profession": "10",
            "mode": "urgence",
        },
    )
    assert r.status_code == 400, r.text
    assert "mode" in r.json()["error_description"]


def test_normal_mode_has_no_emergency_path(rules: Rules, world: World) -> None:
    """The mode is a claim of the signed token: no header nor parameter turns a normal access
    into an emergency one."""
    w = world
    stranger = rules.pro()
    for headers in (
        {},
        {"X-Access-Mode": "bris_de_glace", "X-Reason": REASON},
        {"Purpose-Of-Use": "BTG"},
    ):
        r = rules.http.get(
            "/fhir/DocumentReference",
            params={"patient": w.pid},
            headers={**stranger.headers, **headers},
        )
        assert r.status_code == 200 and r.json()["total"] == 0, r.text
        r = rules.http.get(
            f"/fhir/DocumentReference/{w.plain}", headers={**stranger.headers, **headers}
        )
        outcome(r, 404)
    # a "mode" parameter is no search parameter: ignored (and said so), or refused when strict
    r = rules.http.get(
        "/fhir/DocumentReference",
        params={"patient": w.pid, "mode": "bris_de_glace"},
        headers=stranger.headers,
    )
    assert r.status_code == 200 and r.json()["total"] == 0, r.text
    [warning] = [e for e in r.json()["entry"] if e["search"]["mode"] == "outcome"]
    assert warning["resource"]["issue"][0]["expression"] == ["mode"]
    r = rules.http.get(
        "/fhir/DocumentReference",
        params={"patient": w.pid, "mode": "bris_de_glace"},
        headers={**stranger.headers, "Prefer": "handling=strict"},
    )
    outcome(r, 400)
    r = rules.http.get(f"/fhir/Patient/{w.pid}/$everything", headers=stranger.headers)
    outcome(r, 404)


def test_emergency_accesses_are_traced_for_the_patient(rules: Rules, world: World) -> None:
    w = world
    r = rules.http.get("/fhir/AuditEvent", params={"patient": w.pid}, headers=w.patient.headers)
    assert r.status_code == 200, r.text
    doctor = _emergency(rules, "bris_de_glace")
    assert _reads(rules, doctor, w.plain)
    assert rules.consent(w.patient, w.pid, purpose="BTG", decision="deny").status_code == 201
    assert not _reads(rules, doctor, w.plain)
    r = rules.http.get(
        "/fhir/AuditEvent", params={"patient": w.pid, "_count": 200}, headers=w.patient.headers
    )
    assert r.status_code == 200, r.text
    mine = [
        e["resource"]
        for e in r.json()["entry"]
        if e["resource"]["agent"][0].get("altId") == f"rpps:{doctor.rpps}"
    ]
    reads = [
        ev for ev in mine if any(c.get("code") == "document.read" for c in ev.get("subtype") or [])
    ]
    assert {ev["outcome"] for ev in reads} == {"0", "4"}, reads
    for ev in reads:
        purpose = ev["agent"][0]["purposeOfUse"][0]
        assert purpose["coding"][0]["code"] == "bris_de_glace"
        assert purpose["text"] == REASON
