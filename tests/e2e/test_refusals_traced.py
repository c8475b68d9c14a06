"""Every refusal leaves exactly one trace (dmp.md §5; issue 7, "Refusals not traced").

Each test plays the refused actor (an attacker, or a professional or patient overstepping): it
makes the request, checks the answer tells nothing, then looks at what was stored: one trace of
the refusal, on the chain of the record it concerns (so that the patient sees it), naming no
document title. The traces are read from the database, and through the patient's own
``GET /fhir/AuditEvent``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from carnet.store.db import create_engine
from carnet.store.tables import audit_events
from tests.conftest import Server
from tests.e2e.conftest import Pro
from tests.factories import (
    FHIR_JSON,
    TEST_OID,
    Factory,
    bundle,
    consent_resource,
    created_doc_ids,
    docref,
    pdf_bytes,
    random_nir,
    related_person_resource,
)


async def _rows(server: Server, actor_id: str) -> list[dict[str, Any]]:
    engine = create_engine(server.settings)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(audit_events)
                .where(audit_events.c.actor_id == actor_id)
                .order_by(audit_events.c.record_id, audit_events.c.seq)
            )
            return [dict(r._mapping) for r in rows]
    finally:
        await engine.dispose()


def traces_of(server: Server, actor_id: str) -> list[dict[str, Any]]:
    """Every stored trace whose actor is ``actor_id``."""
    return asyncio.run(_rows(server, actor_id))


def denials(server: Server, actor_id: str) -> list[dict[str, Any]]:
    return [t for t in traces_of(server, actor_id) if t["outcome"] == "deny"]


def seen_by_patient(
    http: httpx.Client, patient: dict[str, str], pid: str, actor: str
) -> list[dict[str, Any]]:
    """The refusals of ``actor`` the patient reads on their record (GET /fhir/AuditEvent)."""
    r = http.get(
        "/fhir/AuditEvent",
        params={"patient": pid, "outcome": "deny", "_count": 100},
        headers=patient,
    )
    assert r.status_code == 200, r.text
    return [
        e["resource"]
        for e in r.json().get("entry", [])
        if e["resource"]["agent"][0].get("altId") == actor
    ]


def action_of(ev: dict[str, Any]) -> str:
    return str(ev["subtype"][0]["code"])


class Case:
    """A record opened by ``owner`` (who authored one document in it), its patient's token."""

    def __init__(self, http: httpx.Client, factory: Factory, owner: Pro) -> None:
        self.http, self.owner = http, owner
        self.ins, self.pid = factory.open_record(owner.headers)
        self.patient = factory.patient(self.ins)
        dr = docref(self.ins, author_rpps=owner.rpps)
        for k in ("size", "hash"):
            dr["content"][0]["attachment"].pop(k, None)
        (self.doc,) = created_doc_ids(
            factory.publish(self.ins, [(dr, pdf_bytes(), "application/pdf")], owner.headers)
        )

    def upload(self, who: Pro) -> str:
        r = self.http.post(
            "/fhir/Binary",
            content=pdf_bytes(),
            headers={
                **who.headers,
                "Content-Type": "application/pdf",
                "X-Security-Context": f"Patient/{self.pid}",
            },
        )
        assert r.status_code == 201, r.text
        return str(r.headers["Location"].rsplit("/Binary/", 1)[1])


@pytest.fixture()
def case(http: httpx.Client, factory: Factory, pro: Pro) -> Case:
    return Case(http, factory, pro)


def _one_refusal(
    server: Server, http: httpx.Client, case: Case, actor: str, action: str
) -> dict[str, Any]:
    """Exactly one refusal by ``actor``, on the case's record, seen by its patient."""
    found = denials(server, actor)
    assert [(t["record_id"], t["action"]) for t in found] == [(case.pid, action)], found
    seen = seen_by_patient(http, case.patient, case.pid, actor)
    assert [action_of(e) for e in seen] == [action], seen
    return found[0]


# -- another professional's staged Binary ----------------------------------------------------------


def test_reading_another_professionals_staged_binary_is_traced(
    server: Server, http: httpx.Client, case: Case, other_pro: Pro
) -> None:
    binary_id = case.upload(case.owner)
    r = http.get(f"/fhir/Binary/{binary_id}", headers=other_pro.headers)
    assert r.status_code == 404
    trace = _one_refusal(server, http, case, f"rpps:{other_pro.rpps}", "document.read")
    assert binary_id in (trace["detail"] or "")
    missing = http.get(f"/fhir/Binary/{case.pid}-00000000000000000000", headers=other_pro.headers)
    assert missing.status_code == 404 and r.json() == missing.json()


def test_attaching_another_professionals_staged_binary_is_traced(
    server: Server, http: httpx.Client, case: Case, other_pro: Pro
) -> None:
    binary_id = case.upload(case.owner)
    dr = docref(case.ins, author_rpps=other_pro.rpps)
    for k in ("size", "hash"):
        dr["content"][0]["attachment"].pop(k, None)
    body = bundle(case.ins, [(dr, b"", "application/pdf")])
    for e in body["entry"]:
        if e["resource"]["resourceType"] == "DocumentReference":
            e["resource"]["content"][0]["attachment"]["url"] = f"Binary/{binary_id}"
    body["entry"] = [e for e in body["entry"] if e["resource"]["resourceType"] != "Binary"]
    r = http.post("/fhir", json=body, headers={**other_pro.headers, **FHIR_JSON})
    assert r.status_code in (400, 404, 422), r.text
    actor = f"rpps:{other_pro.rpps}"
    _one_refusal(server, http, case, actor, "binary.attach")
    # nothing else of the refused publish was kept: its allowed decisions say it failed
    for t in traces_of(server, actor):
        if t["outcome"] == "allow":
            assert "failed" in (t["detail"] or ""), t


# -- a professional's PUT on an emergency consent ---------------------------------------------------


def test_a_professionals_put_on_an_emergency_consent_is_traced(
    server: Server, http: httpx.Client, case: Case
) -> None:
    r = http.get("/fhir/Consent", params={"patient": case.pid}, headers=case.patient)
    assert r.status_code == 200, r.text
    (btg,) = [
        e["resource"]
        for e in r.json()["entry"]
        if any(p.get("code") == "BTG" for p in e["resource"]["provision"].get("purpose") or [])
    ]
    r = http.put(
        f"/fhir/Consent/{btg['id']}",
        json={**btg, "provision": {**btg["provision"], "type": "deny"}},
        headers={**case.owner.headers, **FHIR_JSON},
    )
    assert r.status_code in (403, 404), r.text
    _one_refusal(server, http, case, f"rpps:{case.owner.rpps}", "consent.emergency")


# -- Patient searches ------------------------------------------------------------------------------


def test_a_patient_search_by_traits_on_a_record_one_may_not_read_is_traced(
    server: Server, http: httpx.Client, case: Case
) -> None:
    _block(http, case, case.owner.rpps)  # the patient blocks the professional who opened it
    actor = f"rpps:{case.owner.rpps}"
    for params in (
        {"family": "DURAND"},
        {"identifier": f"urn:oid:{TEST_OID}|{case.ins}", "birthdate": "1980-04-12"},
    ):
        before = len(denials(server, actor))
        r = http.get("/fhir/Patient", params=params, headers=case.owner.headers)
        assert r.status_code == 200, r.text
        assert r.json().get("total", 0) == 0, r.json()
        found = denials(server, actor)[before:]
        assert [(t["record_id"], t["action"]) for t in found] == [(case.pid, "record.read")]


def test_a_patient_searching_another_patients_ins_is_traced(
    server: Server, http: httpx.Client, factory: Factory, case: Case
) -> None:
    other = random_nir()
    intruder = factory.patient(other)
    r = http.get(
        "/fhir/Patient",
        params={"identifier": f"urn:oid:{TEST_OID}|{case.ins}"},
        headers=intruder,
    )
    assert r.status_code == 200, r.text
    assert r.json().get("total", 0) == 0
    nobody = http.get(
        "/fhir/Patient",
        params={"identifier": f"urn:oid:{TEST_OID}|{random_nir()}"},
        headers=intruder,
    )
    assert nobody.json().get("total", 0) == 0
    _one_refusal(server, http, case, f"ins:{other}", "record.read")


# -- DELETE RelatedPerson by a professional --------------------------------------------------------


def test_a_professional_deleting_a_related_person_is_traced(
    server: Server, http: httpx.Client, case: Case
) -> None:
    r = http.post(
        "/fhir/RelatedPerson",
        json=related_person_resource(case.pid, random_nir()),
        headers={**case.patient, **FHIR_JSON},
    )
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    d = http.delete(f"/fhir/RelatedPerson/{rid}", headers=case.owner.headers)
    assert d.status_code in (403, 404), d.text
    _one_refusal(server, http, case, f"rpps:{case.owner.rpps}", "representative.remove")
    r = http.get("/fhir/RelatedPerson", params={"patient": case.pid}, headers=case.patient)
    assert r.json()["total"] == 1


# -- an empty List search --------------------------------------------------------------------------


def _block(http: httpx.Client, case: Case, rpps: str) -> None:
    r = http.post(
        "/fhir/Consent",
        json=consent_resource(case.pid, decision="deny", rpps=rpps),
        headers={**case.patient, **FHIR_JSON},
    )
    assert r.status_code == 201, r.text


@pytest.mark.parametrize(
    "params",
    [{"code": "folder"}, {"status": "retired"}, {"code": "submissionset"}, {}],
    ids=["other code", "other status", "code", "plain"],
)
def test_an_empty_list_search_is_traced(
    server: Server, http: httpx.Client, case: Case, params: dict[str, str]
) -> None:
    """A List search naming a record is one decision on it, whatever it finds (the interface
    used to answer an empty Bundle itself when code or status could not match)."""
    _block(http, case, case.owner.rpps)
    r = http.get("/fhir/List", params={"patient": case.pid, **params}, headers=case.owner.headers)
    assert r.status_code == 200, r.text
    assert r.json()["total"] == 0
    _one_refusal(server, http, case, f"rpps:{case.owner.rpps}", "list.search")


def test_an_allowed_empty_list_search_is_traced(
    server: Server, http: httpx.Client, case: Case
) -> None:
    r = http.get("/fhir/List", params={"patient": case.pid, "code": "folder"}, headers=case.patient)
    assert r.status_code == 200 and r.json()["total"] == 0, r.text
    found = [t for t in traces_of(server, f"ins:{case.ins}") if t["action"] == "list.search"]
    assert [(t["record_id"], t["outcome"]) for t in found] == [(case.pid, "allow")]


@pytest.mark.parametrize("path", ["DocumentReference", "List"])
def test_a_search_naming_no_patient_traces_the_records_it_was_refused(
    server: Server, http: httpx.Client, case: Case, path: str
) -> None:
    """Without ``patient``, a professional's search looks into the records they may reach
    (here the one they opened and fed); blocked there, the refusal is traced on it."""
    _block(http, case, case.owner.rpps)
    r = http.get(f"/fhir/{path}", headers=case.owner.headers)
    assert r.status_code == 200 and r.json()["total"] == 0, r.text
    action = "document.search" if path == "DocumentReference" else "list.search"
    _one_refusal(server, http, case, f"rpps:{case.owner.rpps}", action)


# -- a search that fails with an error -------------------------------------------------------------
# A search that fails after it decided on the records it names keeps those decisions traced: see
# tests/unit/access/test_failed_search_traces.py (the failure is injected there: every client
# error the FHIR interface knows of is found before the search names a record).


def test_a_search_rejected_before_naming_a_record_is_not_traced(
    server: Server, http: httpx.Client, other_pro: Pro
) -> None:
    """A bad parameter is a client error: no record was named, no decision taken."""
    strict = {**other_pro.headers, "Prefer": "handling=strict"}
    for path in ("DocumentReference", "List", "AuditEvent"):
        r = http.get(f"/fhir/{path}", params={"nonsense": "1"}, headers=strict)
        assert r.status_code == 400, r.text
    many = ",".join(f"{n:032x}" for n in range(101))
    for path in ("DocumentReference", "List", "AuditEvent"):
        r = http.get(f"/fhir/{path}", params={"patient": many}, headers=other_pro.headers)
        assert r.status_code == 400, r.text
    assert traces_of(server, f"rpps:{other_pro.rpps}") == []
