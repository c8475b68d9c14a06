"""Authorisations, blocks, care teams and revocation through FHIR Consent (dmp.md §3 rule 5,
TD0.3; the contract of carnet/fhir/consent_resource.py): what each one lets a professional read,
and that a refusal looks exactly like a document that does not exist."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.factories import (
    FHIR_JSON,
    Factory,
    Person,
    Rules,
    consent_resource,
    created_doc_ids,
    outcome,
)


@pytest.fixture()
def rules(http: httpx.Client, factory: Factory) -> Rules:
    return Rules(http, factory)


class World:
    """A record opened by ``author`` with one document of theirs; ``reader`` is a médecin
    who has no access yet."""

    def __init__(self, rules: Rules) -> None:
        self.author = rules.pro()
        self.reader = rules.pro()
        self.ins, self.pid, self.patient = rules.record(self.author)
        self.doc = rules.doc(self.ins, self.author)
        # an id of this record that names no document, and one of no record at all
        self.missing = f"{self.pid}-{'0' * 20}"
        self.nowhere = f"{'f' * len(self.pid)}-{'0' * 20}"


@pytest.fixture()
def world(rules: Rules) -> World:
    return World(rules)


def _assert_no_access(rules: Rules, w: World, who: Person) -> None:
    """``who`` reads nothing of the record, and every refusal is the answer for a document that
    does not exist: same status, same body."""
    assert rules.visible(who, w.pid) == set()
    refused = rules.read(who, w.doc)
    missing = rules.read(who, w.missing)
    nowhere = rules.read(who, w.nowhere)
    outcome(refused, 404)
    assert refused.json() == missing.json() == nowhere.json()
    content = rules.content(who, w.doc)
    outcome(content, 404)
    assert content.json() == rules.content(who, w.missing).json()
    assert outcome(rules.read(who, w.doc), 404)["code"] == "not-found"


def _assert_reads(rules: Rules, w: World, who: Person) -> None:
    body = rules.search(who, w.pid)
    assert body["total"] > 0 and w.doc in {e["resource"]["id"] for e in body["entry"]}
    r = rules.read(who, w.doc)
    assert r.status_code == 200, r.text
    assert r.json()["id"] == w.doc
    c = rules.content(who, w.doc)
    assert c.status_code == 200, c.text
    assert c.content.startswith(b"%PDF-1.4")


def _consent_ids(rules: Rules, patient: Person, pid: str, status: str = "active") -> set[str]:
    r = rules.consents(patient, pid)
    assert r.status_code == 200, r.text
    return {
        e["resource"]["id"]
        for e in r.json().get("entry") or []
        if e["resource"]["status"] == status and "actor" in e["resource"]["provision"]
    }


def test_unauthorised_professional_reads_nothing(rules: Rules, world: World) -> None:
    _assert_no_access(rules, world, world.reader)
    _assert_reads(rules, world, world.author)


def test_authorise_then_revoke_with_delete(rules: Rules, world: World) -> None:
    w = world
    r = rules.consent(w.patient, w.pid, rpps=w.reader.rpps)
    assert r.status_code == 201, r.text
    consent = r.json()
    assert consent["resourceType"] == "Consent" and consent["status"] == "active"
    assert consent["patient"] == {"reference": f"Patient/{w.pid}"}
    assert r.headers["location"].endswith(f"/fhir/Consent/{consent['id']}")
    assert r.headers["etag"] == 'W/"1"'
    _assert_reads(rules, w, w.reader)

    # the professional sees the consent that concerns them; the patient sees all of them
    seen = rules.consents(w.reader, w.pid)
    assert seen.status_code == 200
    assert consent["id"] in {e["resource"]["id"] for e in seen.json()["entry"]}
    assert consent["id"] in _consent_ids(rules, w.patient, w.pid)
    read = rules.http.get(f"/fhir/Consent/{consent['id']}", headers=w.patient.headers)
    assert read.status_code == 200 and read.json()["provision"]["type"] == "permit"

    d = rules.http.delete(f"/fhir/Consent/{consent['id']}", headers=w.patient.headers)
    assert d.status_code == 200, d.text
    assert d.json()["status"] == "inactive"
    assert d.json()["meta"]["versionId"] == "2"
    _assert_no_access(rules, w, w.reader)
    assert consent["id"] in _consent_ids(rules, w.patient, w.pid, "inactive")


def test_authorise_then_revoke_with_status_inactive(rules: Rules, world: World) -> None:
    w = world
    r = rules.consent(w.patient, w.pid, rpps=w.reader.rpps)
    assert r.status_code == 201, r.text
    consent: dict[str, Any] = r.json()
    _assert_reads(rules, w, w.reader)

    # a stored decision only changes to inactive
    bad = rules.http.put(
        f"/fhir/Consent/{consent['id']}",
        json={**consent, "provision": {**consent["provision"], "type": "deny"}},
        headers={**w.patient.headers, **FHIR_JSON},
    )
    outcome(bad, 422)
    _assert_reads(rules, w, w.reader)

    u = rules.http.put(
        f"/fhir/Consent/{consent['id']}",
        json={**consent, "status": "inactive"},
        headers={**w.patient.headers, **FHIR_JSON, "If-Match": 'W/"1"'},
    )
    assert u.status_code == 200, u.text
    assert u.json()["status"] == "inactive"
    _assert_no_access(rules, w, w.reader)


def test_block_wins_over_an_earlier_authorisation(rules: Rules, world: World) -> None:
    w = world
    assert rules.consent(w.patient, w.pid, rpps=w.reader.rpps).status_code == 201
    _assert_reads(rules, w, w.reader)
    r = rules.consent(w.patient, w.pid, rpps=w.reader.rpps, decision="deny")
    assert r.status_code == 201, r.text
    assert r.json()["provision"]["type"] == "deny"
    _assert_no_access(rules, w, w.reader)

    # blocked, they still add documents (dmp.md §4) ... and do not read even those
    added = rules.publish(w.ins, w.reader)
    assert added.status_code == 200, added.text
    (own,) = created_doc_ids(added)
    assert rules.visible(w.reader, w.pid) == set()
    outcome(rules.read(w.reader, own), 404)

    # a professional cannot lift their own block by recording an authorisation (TD0.3)
    again = rules.consent(w.reader, w.pid, rpps=w.reader.rpps)
    assert again.status_code in (403, 404), again.text
    outcome(again, again.status_code)
    _assert_no_access(rules, w, w.reader)

    # the patient lifts the block
    blocks = [
        e["resource"]
        for e in rules.consents(w.patient, w.pid).json()["entry"]
        if e["resource"]["status"] == "active"
        and e["resource"]["provision"]["type"] == "deny"
        and "actor" in e["resource"]["provision"]
    ]
    assert len(blocks) == 1
    d = rules.http.delete(f"/fhir/Consent/{blocks[0]['id']}", headers=w.patient.headers)
    assert d.status_code == 200
    # revoking the block does not bring the earlier authorisation back: they read only what
    # they authored (rule 8)
    assert rules.visible(w.reader, w.pid) == {own}
    assert rules.read(w.reader, own).status_code == 200
    outcome(rules.read(w.reader, w.doc), 404)
    assert rules.consent(w.patient, w.pid, rpps=w.reader.rpps).status_code == 201
    _assert_reads(rules, w, w.reader)


def test_professional_records_an_authorisation_for_another(rules: Rules, world: World) -> None:
    """TD0.3: a professional records the patient's consent to another professional's access."""
    w = world
    r = rules.consent(w.author, w.pid, rpps=w.reader.rpps)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["performer"] == [
        {"identifier": {"system": "urn:oid:1.2.250.1.71.4.2.1", "value": w.author.rpps}}
    ]
    _assert_reads(rules, w, w.reader)
    assert body["id"] in _consent_ids(rules, w.patient, w.pid)


def test_professional_cannot_block_nor_revoke(rules: Rules, world: World) -> None:
    w = world
    victim = rules.pro()
    assert rules.consent(w.patient, w.pid, rpps=victim.rpps).status_code == 201
    before = rules.consents(w.patient, w.pid).json()

    r = rules.consent(w.author, w.pid, rpps=victim.rpps, decision="deny")
    assert r.status_code in (403, 404), r.text
    outcome(r, r.status_code)
    # nor an emergency consent, nor an inactive decision
    for kw in ({"purpose": "BTG", "decision": "deny"}, {"rpps": victim.rpps, "status": "inactive"}):
        r = rules.consent(w.author, w.pid, **kw)  # type: ignore[arg-type]
        assert r.status_code in (403, 404), r.text
        outcome(r, r.status_code)
    # nor revoke the patient's decision
    cid = next(
        e["resource"]["id"]
        for e in before["entry"]
        if e["resource"]["provision"].get("actor")
        and e["resource"]["provision"]["actor"][0]["reference"]["identifier"]["value"]
        == victim.rpps
    )
    d = rules.http.delete(f"/fhir/Consent/{cid}", headers=w.author.headers)
    outcome(d, 404)
    stored = rules.http.get(f"/fhir/Consent/{cid}", headers=w.patient.headers).json()
    p = rules.http.put(
        f"/fhir/Consent/{cid}",
        json={**stored, "status": "inactive"},
        headers={**w.author.headers, **FHIR_JSON},
    )
    outcome(p, 404)

    after = rules.consents(w.patient, w.pid).json()
    assert after["total"] == before["total"]
    assert [e["resource"] for e in after["entry"]] == [e["resource"] for e in before["entry"]]
    _assert_reads(rules, w, victim)


def test_unauthorised_professional_sees_no_consent_and_cannot_read_one(
    rules: Rules, world: World
) -> None:
    w = world
    c = rules.consent(w.patient, w.pid, rpps=rules.pro().rpps).json()
    stranger = rules.pro()
    r = rules.consents(stranger, w.pid)
    assert r.status_code == 200 and r.json()["total"] == 0
    outcome(rules.http.get(f"/fhir/Consent/{c['id']}", headers=stranger.headers), 404)
    other_patient = rules.patient()
    r = rules.consents(other_patient, w.pid)
    assert r.status_code == 200 and r.json()["total"] == 0
    outcome(rules.http.get(f"/fhir/Consent/{c['id']}", headers=other_patient.headers), 404)
    d = rules.http.delete(f"/fhir/Consent/{c['id']}", headers=other_patient.headers)
    outcome(d, 404)
    # a patient cannot authorise a professional on someone else's record
    r = rules.consent(other_patient, w.pid, rpps=stranger.rpps)
    outcome(r, 404)
    _assert_no_access(rules, w, stranger)
    assert c["id"] in _consent_ids(rules, w.patient, w.pid)


def test_search_consent_needs_a_patient(rules: Rules, world: World) -> None:
    outcome(rules.http.get("/fhir/Consent", headers=world.patient.headers), 400)
    issue = outcome(
        rules.http.get("/fhir/Consent", params={"actor": "x"}, headers=world.patient.headers), 400
    )
    assert issue["diagnostics"]


def test_care_team_by_structure(rules: Rules, world: World) -> None:
    w = world
    team = "750712184"
    member = rules.pro(structure=team)
    outsider = rules.pro(structure="130783236")
    no_structure = rules.pro()
    _assert_no_access(rules, w, member)

    r = rules.consent(w.patient, w.pid, structure=team)
    assert r.status_code == 201, r.text
    assert r.json()["provision"]["actor"][0]["reference"]["identifier"] == {
        "system": "urn:oid:1.2.250.1.71.4.2.2",
        "value": team,
    }
    _assert_reads(rules, w, member)
    other_member = rules.pro(profession="60", structure=team)  # an infirmier of the team
    _assert_reads(rules, w, other_member)
    _assert_no_access(rules, w, outsider)
    _assert_no_access(rules, w, no_structure)

    # a member blocked by name stays blocked
    assert rules.consent(w.patient, w.pid, rpps=member.rpps, decision="deny").status_code == 201
    _assert_no_access(rules, w, member)
    _assert_reads(rules, w, other_member)

    # a care team is authorised, never blocked: a block names a professional
    r = rules.consent(w.patient, w.pid, structure=team, decision="deny")
    issue = outcome(r, 422)
    assert "provision.actor" in issue["expression"][0]

    # revoking the team's consent ends it
    cid = next(
        e["resource"]["id"]
        for e in rules.consents(w.patient, w.pid).json()["entry"]
        if e["resource"]["status"] == "active"
        and e["resource"]["provision"].get("actor")
        and e["resource"]["provision"]["actor"][0]["reference"]["identifier"]["value"] == team
    )
    assert rules.http.delete(f"/fhir/Consent/{cid}", headers=w.patient.headers).status_code == 200
    _assert_no_access(rules, w, other_member)


@pytest.mark.parametrize(
    ("kw", "expression"),
    [
        ({"rpps": "812345678901"}, "Consent.provision.actor"),  # Luhn key wrong
        ({"rpps": "81234"}, "Consent.provision.actor"),
        ({"rpps": None}, "Consent.provision.actor"),
        ({"purpose": "HOPE"}, "Consent.provision.purpose"),
        ({"purpose": "TREAT"}, "Consent.provision.purpose"),
        ({"decision": "maybe", "rpps": "810100000016"}, "Consent.provision"),
    ],
)
def test_bad_consents_are_422_naming_the_field(
    rules: Rules, world: World, kw: dict[str, Any], expression: str
) -> None:
    w = world
    before = rules.consents(w.patient, w.pid).json()["total"]
    r = rules.consent(w.patient, w.pid, **kw)
    # 400 when FHIR R4's structural validation refuses it first
    issue = outcome(r, 400) if r.status_code == 400 else outcome(r, 422)
    assert issue["expression"][0].startswith(expression), issue
    assert rules.consents(w.patient, w.pid).json()["total"] == before


def test_unknown_professional_names_provision_actor(rules: Rules, world: World) -> None:
    r = rules.consent(world.patient, world.pid, rpps="899700218897")
    issue = outcome(r, 422)
    assert issue["expression"] == ["Consent.provision.actor[0].reference.identifier"]
    assert "899700218897" in issue["diagnostics"]


def test_consent_for_a_missing_record_is_404(rules: Rules, world: World) -> None:
    body = consent_resource("0" * len(world.pid), rpps=world.reader.rpps)
    r = rules.http.post("/fhir/Consent", json=body, headers={**world.patient.headers, **FHIR_JSON})
    outcome(r, 404)


def test_the_openers_authorisation_is_a_revocable_consent(rules: Rules, world: World) -> None:
    """The professional who opened the record is authorised by the consent given at creation:
    a Consent like the others. Revoked, they read only what they authored."""
    w = world
    others = rules.pro()
    foreign = rules.doc(w.ins, others)
    assert rules.visible(w.author, w.pid) == {w.doc, foreign}
    opener = [
        e["resource"]
        for e in rules.consents(w.patient, w.pid).json()["entry"]
        if e["resource"]["provision"].get("actor")
        and e["resource"]["provision"]["actor"][0]["reference"]["identifier"]["value"]
        == w.author.rpps
    ]
    assert len(opener) == 1 and opener[0]["status"] == "active"
    d = rules.http.delete(f"/fhir/Consent/{opener[0]['id']}", headers=w.patient.headers)
    assert d.status_code == 200, d.text
    assert rules.visible(w.author, w.pid) == {w.doc}
    outcome(rules.read(w.author, foreign), 404)
    outcome(rules.http.get(f"/fhir/Patient/{w.pid}", headers=w.author.headers), 404)


def test_consent_naming_the_patient_by_ins(rules: Rules, world: World) -> None:
    w = world
    body = consent_resource(w.pid, rpps=w.reader.rpps)
    body["patient"] = {"reference": f"Patient?identifier=urn:oid:1.2.250.1.213.1.4.10|{w.ins}"}
    r = rules.http.post("/fhir/Consent", json=body, headers={**w.patient.headers, **FHIR_JSON})
    assert r.status_code == 201, r.text
    assert r.json()["patient"] == {"reference": f"Patient/{w.pid}"}
    _assert_reads(rules, w, w.reader)
    r = rules.http.get(
        "/fhir/Consent",
        params={"patient.identifier": f"urn:oid:1.2.250.1.213.1.4.10|{w.ins}"},
        headers=w.patient.headers,
    )
    assert r.status_code == 200
    assert r.json()["total"] == len(rules.consents(w.patient, w.pid).json()["entry"])


def test_a_professional_does_not_lift_the_patients_block(rules: Rules, world: World) -> None:
    """TD0.3 records the patient's consent; recording one for a professional the patient
    blocked would lift the block, which only the patient does."""
    w = world
    r = rules.consent(w.patient, w.pid, rpps=w.reader.rpps, decision="deny")
    assert r.status_code == 201, r.text
    block = r.json()
    r = rules.consent(w.author, w.pid, rpps=w.reader.rpps)
    assert r.status_code == 403, r.text
    outcome(r, 403)
    _assert_no_access(rules, w, w.reader)
    stored = rules.http.get(f"/fhir/Consent/{block['id']}", headers=w.patient.headers).json()
    assert stored["status"] == "active" and stored["meta"]["versionId"] == "1"
    # the patient, not a professional, replaces a block by an authorisation
    assert rules.consent(w.patient, w.pid, rpps=w.reader.rpps).status_code == 201
    _assert_reads(rules, w, w.reader)


def test_revoking_a_stale_decision_leaves_the_current_one(rules: Rules, world: World) -> None:
    w = world
    old = rules.consent(w.patient, w.pid, rpps=w.reader.rpps).json()
    block = rules.consent(w.patient, w.pid, rpps=w.reader.rpps, decision="deny").json()
    stale = rules.http.get(f"/fhir/Consent/{old['id']}", headers=w.patient.headers).json()
    assert stale["status"] == "inactive"
    for revoke in (
        lambda: rules.http.delete(f"/fhir/Consent/{old['id']}", headers=w.patient.headers),
        lambda: rules.http.put(
            f"/fhir/Consent/{old['id']}",
            json={**stale, "status": "inactive"},
            headers={**w.patient.headers, **FHIR_JSON},
        ),
    ):
        r = revoke()
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "inactive"
        current = rules.http.get(f"/fhir/Consent/{block['id']}", headers=w.patient.headers)
        assert current.json()["status"] == "active", current.json()
    # still blocked, even once the care team they belong to is authorised
    member = Person(
        rules.factory.professional(rpps=w.reader.rpps, structure="750712184"), w.reader.rpps
    )
    assert rules.consent(w.patient, w.pid, structure="750712184").status_code == 201
    _assert_no_access(rules, w, member)
