"""Identity and scope, attacked from outside (issue 7, "Anyone authorised can silence the patient"
and "Identity and scope"): a professional cannot redirect or silence the patient's notices; one
record per INS value whatever its OID; an emergency access names one patient; RPPS and IdNatPS
are one professional; objections to creation are the person's own."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from carnet.store.tables import audit_events, notification_preferences, outbox, records
from tests.conftest import Server, on_database
from tests.factories import (
    CARNET_EXT,
    FHIR_JSON,
    NIR_OID,
    RPPS,
    TEST_OID,
    Factory,
    Person,
    Rules,
    bundle,
    consent_resource,
    docref,
    outcome,
    patient_resource,
    pdf_bytes,
    random_idnatps,
    random_nir,
)

PREFS_EXT = f"{CARNET_EXT}/dmp-notification-preferences"


@pytest.fixture()
def rules(http: httpx.Client, factory: Factory) -> Rules:
    return Rules(http, factory)


def _rows(server: Server, query: Any) -> list[dict[str, Any]]:
    async def work(conn: Any) -> list[dict[str, Any]]:
        return [dict(r._mapping) for r in await conn.execute(query)]

    out: list[dict[str, Any]] = on_database(server, work)
    return out


def _traces(server: Server, actor_id: str) -> list[dict[str, Any]]:
    return _rows(
        server,
        select(audit_events)
        .where(audit_events.c.actor_id == actor_id)
        .order_by(audit_events.c.event_id),
    )


def _with_contact(resource: dict[str, Any], email: str, *, notices: str) -> dict[str, Any]:
    out = dict(resource)
    out["telecom"] = [{"system": "email", "value": email}]
    out["extension"] = [
        *[e for e in resource.get("extension", []) if e.get("url") != PREFS_EXT],
        {
            "url": PREFS_EXT,
            "extension": [
                {"url": "accessNotices", "valueCode": notices},
                {"url": "portal", "valueBoolean": notices != "none"},
            ],
        },
    ]
    return out


# -- 1. only the patient changes where and whether they are told ------------------------------


def test_an_authorised_professional_cannot_silence_the_patient(
    rules: Rules, server: Server
) -> None:
    opener = rules.pro()
    ins, pid, patient = rules.record(opener)
    doc = rules.doc(ins, opener)
    mine = rules.patient_resource(patient, pid)
    r = rules.put_patient(patient, _with_contact(mine, "marie@example.org", notices="immediate"))
    assert r.status_code == 200, r.text

    # the attacker records the patient's consent to their own access (TD0.3)...
    attacker = rules.pro()
    r = rules.http.post(
        "/fhir/Consent",
        json=consent_resource(pid, rpps=attacker.rpps),
        headers={**attacker.headers, **FHIR_JSON},
    )
    assert r.status_code == 201, r.text
    # ...then tries to put their own address and turn notices off
    current = rules.patient_resource(attacker, pid)
    silenced = _with_contact(current, "attacker@example.org", notices="none")
    r = rules.put_patient(attacker, silenced)
    body = outcome(r, 403)
    assert "contact" in body["diagnostics"]
    # notices alone, or the address alone: refused as well
    r = rules.put_patient(attacker, _with_contact(current, "marie@example.org", notices="none"))
    outcome(r, 403)
    r = rules.put_patient(
        attacker, _with_contact(current, "attacker@example.org", notices="immediate")
    )
    outcome(r, 403)

    # nothing changed: the patient's address and choices hold, the Patient reads as before
    [prefs] = _rows(
        server,
        select(notification_preferences).where(notification_preferences.c.record_id == pid),
    )
    assert prefs["access_mode"] == "immediate" and prefs["portal"] is True
    assert rules.patient_resource(patient, pid)["telecom"] == [
        {"system": "email", "value": "marie@example.org"}
    ]
    # each refusal traced once, as such
    refused = [
        t for t in _traces(server, f"rpps:{attacker.rpps}") if t["action"] == "record.contact"
    ]
    assert len(refused) == 3
    assert {(t["outcome"], t["rule"]) for t in refused} == {("deny", "patient-only")}

    # the identity traits, what a professional may change, still go through
    fixed = dict(current)
    fixed["name"] = [{"use": "official", "family": "DURAND-MARTIN", "given": ["Marie"]}]
    r = rules.put_patient(attacker, fixed)
    assert r.status_code == 200, r.text

    # and the patient is still told, at once, of the attacker's reads
    before = {o["event_id"] for o in _rows(server, select(outbox).where(outbox.c.record_id == pid))}
    assert rules.read(attacker, doc).status_code == 200
    told = [
        o
        for o in _rows(server, select(outbox).where(outbox.c.record_id == pid))
        if o["event_id"] not in before and o["kind"] == "access"
    ]
    assert {o["channel"] for o in told} >= {"email", "portal"}
    assert "attacker@example.org" not in {o["recipient"] for o in told}


def test_the_patient_and_a_representative_change_the_contact(rules: Rules) -> None:
    opener = rules.pro()
    _ins, pid, patient = rules.record(opener)
    mine = rules.patient_resource(patient, pid)
    r = rules.put_patient(patient, _with_contact(mine, "marie@example.org", notices="none"))
    assert r.status_code == 200, r.text
    guardian = rules.patient()
    r = rules.http.post(
        "/fhir/RelatedPerson",
        json={
            "resourceType": "RelatedPerson",
            "patient": {"reference": f"Patient/{pid}"},
            "identifier": [{"system": f"urn:oid:{TEST_OID}", "value": guardian.ins}],
            "relationship": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode",
                            "code": "GUARD",
                        }
                    ]
                }
            ],
        },
        headers={**patient.headers, **FHIR_JSON},
    )
    assert r.status_code == 201, r.text
    theirs = rules.patient_resource(guardian, pid)
    r = rules.put_patient(guardian, _with_contact(theirs, "tuteur@example.org", notices="digest"))
    assert r.status_code == 200, r.text


# -- 2. one record per person, whatever the OID of their INS -----------------------------------


def test_the_same_ins_under_another_oid_is_the_same_person(
    rules: Rules, factory: Factory, server: Server
) -> None:
    opener = rules.pro()
    ins, pid, _patient = rules.record(opener)  # INS-NIR de test
    doc = rules.doc(ins, opener)
    # a second record for the same INS value under INS-NIR: refused as a duplicate
    attacker = rules.pro()
    r = rules.http.post(
        "/fhir/Patient",
        json=patient_resource(ins, oid=NIR_OID, family="AUTRE"),
        headers={**attacker.headers, **FHIR_JSON},
    )
    assert "already exists" in outcome(r, 409)["diagnostics"]
    # nor by the person themself online, with a token of the other OID
    as_nir = Person(factory.token(kind="patient", ins=ins, ins_oid=NIR_OID), ins=ins)
    r = rules.http.post(
        "/fhir/Patient",
        json=patient_resource(ins, oid=NIR_OID),
        headers={**as_nir.headers, **FHIR_JSON},
    )
    assert "already exists" in outcome(r, 409)["diagnostics"]
    # the one record is theirs whatever the OID of their token; they see it once
    assert rules.read(as_nir, doc).status_code == 200
    r = rules.http.get("/fhir/Patient", headers=as_nir.headers)
    assert [e["resource"]["id"] for e in r.json().get("entry", [])] == [pid]
    # searches by INS match the value, under any INS OID; any other system names nobody
    for system in (NIR_OID, TEST_OID, "1.2.250.1.213.1.4.9"):
        r = rules.http.get(
            "/fhir/DocumentReference",
            params={"patient.identifier": f"urn:oid:{system}|{ins}"},
            headers=opener.headers,
        )
        assert [e["resource"]["id"] for e in r.json().get("entry", [])] == [doc], system
        r = rules.http.get(
            "/fhir/Patient",
            params={"identifier": f"urn:oid:{system}|{ins}"},
            headers=opener.headers,
        )
        assert [e["resource"]["id"] for e in r.json()["entry"]] == [pid], system
    for system in ("urn:oid:1.2.3.4", "urn:oid:1.2.250.1.213.1.4.13"):
        r = rules.http.get(
            "/fhir/DocumentReference",
            params={"patient.identifier": f"{system}|{ins}"},
            headers=opener.headers,
        )
        assert r.status_code == 200 and r.json()["total"] == 0, r.text
    # a document posted for the INS under INS-NIR lands in the same record
    r = rules.http.post(
        "/fhir",
        json=bundle(ins, [(docref(ins, oid=NIR_OID), pdf_bytes(), "application/pdf")], oid=NIR_OID),
        headers={**opener.headers, **FHIR_JSON},
    )
    assert r.status_code == 200, r.text
    assert len(rules.visible(opener, pid)) == 2
    rows = _rows(server, select(records.c.record_id).where(records.c.ins_value == ins))
    assert [row["record_id"] for row in rows] == [pid]


# -- 3. an emergency access names exactly one patient per request ------------------------------

REASON = "patient inconscient aux urgences"


@pytest.mark.parametrize("mode", ["bris_de_glace", "centre_15"])
def test_an_emergency_access_names_one_patient(rules: Rules, server: Server, mode: str) -> None:
    opener = rules.pro()
    people = [rules.record(opener) for _ in range(3)]
    for ins, _pid, _patient in people:
        rules.doc(ins, opener)
    claims = {"mode": mode, **({"reason": REASON} if mode == "bris_de_glace" else {})}
    doctor = rules.pro(**claims)
    inses = ",".join(f"urn:oid:{TEST_OID}|{ins}" for ins, _p, _x in people)
    pids = ",".join(pid for _i, pid, _x in people)
    refused = [
        ("/fhir/DocumentReference", {"patient.identifier": inses}),
        ("/fhir/DocumentReference", {"patient": pids}),
        ("/fhir/DocumentReference", {"type": "11488-4"}),
        ("/fhir/DocumentReference", {}),
        ("/fhir/List", {"patient.identifier": inses}),
        ("/fhir/List", {"patient": pids}),
        ("/fhir/List", {}),
        ("/fhir/Patient", {"identifier": inses}),
        ("/fhir/Patient", {"_id": pids}),
        ("/fhir/Patient", {"family": "DURAND"}),
    ]
    for path, params in refused:
        r = rules.http.get(path, params=params, headers=doctor.headers)
        issue = outcome(r, 400)
        assert issue["expression"] == ["patient"], (path, params, issue)
        assert "exactly one patient" in issue["diagnostics"], issue
    # each refusal traced once, as such, on no record
    traces = [t for t in _traces(server, f"rpps:{doctor.rpps}") if t["outcome"] == "deny"]
    assert len(traces) == len(refused)
    assert {t["record_id"] for t in traces} == {""}
    assert {t["rule"] for t in traces} == {mode.replace("_", "-")}
    # the same INS under two OIDs is one patient; one patient works on every path
    ins, pid, _patient = people[0]
    one = f"urn:oid:{TEST_OID}|{ins},urn:oid:{NIR_OID}|{ins}"
    for path, params in [
        ("/fhir/DocumentReference", {"patient.identifier": one}),
        ("/fhir/DocumentReference", {"patient": pid}),
        ("/fhir/List", {"patient": pid}),
        ("/fhir/Patient", {"identifier": one}),
    ]:
        r = rules.http.get(path, params=params, headers=doctor.headers)
        assert r.status_code == 200 and r.json()["total"] == 1, (path, r.text)


# -- 4. RPPS and IdNatPS are one professional -------------------------------------------------


def test_a_bare_rpps_token_is_the_blocked_idnatps(rules: Rules, factory: Factory) -> None:
    opener = rules.pro()
    ins, pid, patient = rules.record(opener)
    doc = rules.doc(ins, opener)
    structure = "750712184"
    target = random_idnatps()  # 8 + RPPS
    bare = target[1:]
    # the patient authorises the care team of a structure, and blocks one professional of it
    assert rules.consent(patient, pid, structure=structure).status_code == 201
    assert rules.consent(patient, pid, decision="deny", rpps=target).status_code == 201
    colleague = Person(factory.professional(rpps=random_idnatps(), structure=structure))
    assert rules.read(colleague, doc).status_code == 200
    # the blocked professional comes back with the bare RPPS number in their token: still them
    for rpps in (bare, target):
        blocked = Person(factory.professional(rpps=rpps, structure=structure), rpps=rpps)
        outcome(rules.read(blocked, doc), 404)
        assert rules.search(blocked, pid)["total"] == 0
    # a token can carry neither a full-width digit nor a wrong Luhn key
    for rpps in (target[:5] + "\uff10" + target[6:], target[:-1] + str((int(target[-1]) + 1) % 10)):
        r = rules.http.post(
            "/dev/token", json={"kind": "professional", "rpps": rpps, "profession": "10"}
        )
        assert r.status_code == 400 and "rpps" in r.text, r.text


def test_a_block_must_name_a_professional_in_ascii_digits(rules: Rules) -> None:
    opener = rules.pro()
    ins, pid, patient = rules.record(opener)
    target = random_idnatps()
    wide = target[:4] + chr(0xFF10 + int(target[4])) + target[5:]  # one full-width digit
    r = rules.consent(patient, pid, decision="deny", rpps=wide)
    assert r.status_code in (400, 422), r.text
    outcome(r, r.status_code)
    r = rules.consent(patient, pid, decision="deny", rpps=target[1:])  # bare RPPS: accepted
    assert r.status_code == 201, r.text
    doc = rules.doc(ins, opener)
    assert rules.consent(patient, pid, rpps=opener.rpps).status_code == 201
    blocked = Person(rules.factory.professional(rpps=target), rpps=target)
    outcome(rules.read(blocked, doc), 404)


def test_the_treating_physician_named_by_bare_rpps_is_their_idnatps(rules: Rules) -> None:
    opener = rules.pro()
    ins, pid, patient = rules.record(opener)
    masked = rules.doc(ins, opener, labels=["N", "MASQUE_PS"])
    gp = random_idnatps()
    body = rules.patient_resource(patient, pid)
    body["generalPractitioner"] = [{"identifier": {"system": RPPS, "value": gp[1:]}}]
    r = rules.put_patient(patient, body)
    assert r.status_code == 200, r.text
    assert r.json()["generalPractitioner"] == [{"identifier": {"system": RPPS, "value": gp[1:]}}]
    for rpps in (gp, gp[1:]):
        doctor = Person(rules.factory.professional(rpps=rpps), rpps=rpps)
        assert rules.read(doctor, masked).status_code == 200  # the médecin traitant reads masked
    body["generalPractitioner"] = [
        {"identifier": {"system": RPPS, "value": gp[:3] + "\uff11" + gp[4:]}}
    ]
    outcome(rules.put_patient(patient, body), 422)


# -- 5. an objection to creation is the person's own ----------------------------------------------

OBJECTION = f"{CARNET_EXT}/dmp-creation-objection"
WITHDRAWN = f"{CARNET_EXT}/dmp-creation-objection-withdrawn"


def _post(rules: Rules, who: Person, ins: str, url: str | None = None) -> httpx.Response:
    exts = [{"url": url, "valueBoolean": True}] if url else []
    return rules.http.post(
        "/fhir/Patient",
        json=patient_resource(ins, extra_extensions=exts),
        headers={**who.headers, **FHIR_JSON},
    )


def test_nobody_objects_for_someone_else(rules: Rules, server: Server) -> None:
    ins = random_nir()
    # another person online, or a professional in an emergency: refused, traced
    stranger = rules.patient()
    outcome(_post(rules, stranger, ins, OBJECTION), 403)
    for mode, extra in (("bris_de_glace", {"reason": REASON}), ("centre_15", {})):
        urgent = rules.pro(mode=mode, **extra)
        outcome(_post(rules, urgent, ins, OBJECTION), 403)
    assert [t["outcome"] for t in _traces(server, f"ins:{stranger.ins}")] == ["deny"]
    # nothing was recorded: the person's record opens
    assert _post(rules, rules.pro(), ins).status_code == 201


def test_an_objection_is_withdrawn_by_the_person_and_never_told(rules: Rules) -> None:
    ins = random_nir()
    office = rules.pro()  # the person objects at their doctor's office
    assert _post(rules, office, ins, OBJECTION).status_code == 200
    # another professional: cannot open, cannot withdraw, and learns nothing of the objection:
    # the answers are those for a person who never objected
    attacker = rules.pro()
    refused = _post(rules, attacker, ins)
    assert "object" not in outcome(refused, 403)["diagnostics"]
    withdraw = _post(rules, attacker, ins, WITHDRAWN)
    never = _post(rules, attacker, random_nir(), WITHDRAWN)
    assert (withdraw.status_code, withdraw.json()) == (never.status_code, never.json())
    outcome(withdraw, 403)
    assert _post(rules, attacker, ins).status_code == 403  # still there
    # the person withdraws it online (and again: no error)
    person = rules.patient(ins)
    for _ in range(2):
        assert _post(rules, person, ins, WITHDRAWN).status_code == 200
    assert _post(rules, attacker, ins).status_code == 201


def test_the_person_opening_their_record_withdraws_their_objection(
    rules: Rules, server: Server
) -> None:
    ins = random_nir()
    person = rules.patient(ins)
    assert _post(rules, person, ins, OBJECTION).status_code == 200
    outcome(_post(rules, rules.pro(), ins), 403)
    r = _post(rules, person, ins)
    assert r.status_code == 201, r.text
    actions = [(t["action"], t["outcome"]) for t in _traces(server, f"ins:{ins}")]
    assert sorted(actions[-2:]) == [("record.create", "allow"), ("record.withdraw", "allow")]


def test_the_recording_professional_may_withdraw_their_own_entry(rules: Rules) -> None:
    ins = random_nir()
    office = rules.pro()
    assert _post(rules, office, ins, OBJECTION).status_code == 200
    assert _post(rules, office, ins, WITHDRAWN).status_code == 200
    assert _post(rules, office, ins).status_code == 201
