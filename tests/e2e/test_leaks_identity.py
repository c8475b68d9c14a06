"""Identity and scope, attacked from outside (issue 7, "Anyone authorised can silence the patient"
and "Identity and scope"): a professional cannot redirect or silence the patient's notices; one
record per INS value whatever its OID; an emergency access names one patient; RPPS and IdNatPS
are one professional; objections to creation are the person's own."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from carnet.store.db import create_engine
from carnet.store.tables import audit_events, notification_preferences, outbox
from tests.conftest import Server
from tests.factories import (
    CARNET_EXT,
    FHIR_JSON,
    NIR_OID,
    TEST_OID,
    Factory,
    Person,
    Rules,
    consent_resource,
    outcome,
    random_nir,
)

PREFS_EXT = f"{CARNET_EXT}/dmp-notification-preferences"


@pytest.fixture()
def rules(http: httpx.Client, factory: Factory) -> Rules:
    return Rules(http, factory)


def _db(server: Server, work: Any) -> Any:
    async def go() -> Any:
        engine = create_engine(server.settings)
        try:
            async with engine.begin() as conn:
                return await work(conn)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def _rows(server: Server, query: Any) -> list[dict[str, Any]]:
    async def work(conn: Any) -> list[dict[str, Any]]:
        return [dict(r._mapping) for r in await conn.execute(query)]

    out: list[dict[str, Any]] = _db(server, work)
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


def _unused(*_: object) -> None:  # keeps imports used while sections are added
    _ = (NIR_OID, Person, random_nir)
