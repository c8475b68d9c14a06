"""GET /fhir/AuditEvent (dmp.md §5; docs/traces.md): after reads, publishes and denials the
patient sees every trace of their record, a professional only their own, another patient
nothing; paging and every filter; the FHIR R4 AuditEvent each trace becomes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Pro
from tests.factories import (
    RPPS,
    TEST_OID,
    Factory,
    created_doc_ids,
    docref,
    outcome,
    pdf_bytes,
    random_nir,
)

DCM = "http://dicom.nema.org/resources/ontology/DCM"
G15 = "https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante"
R248 = "https://mos.esante.gouv.fr/NOS/TRE_R248-ModeAcces/FHIR/TRE-R248-ModeAcces"
ACTIONS = "https://carnet.health/fhir/CodeSystem/dmp-action"
CHAIN = "https://carnet.health/fhir/StructureDefinition/dmp-audit-chain"


class Story:
    """A record opened by ``pro``, one document published and read by them, a stranger refused
    the document, an emergency physician reading the Patient in bris de glace."""

    def __init__(self, http: httpx.Client, factory: Factory, pro: Pro, stranger: Pro) -> None:
        self.http, self.pro, self.stranger = http, pro, stranger
        self.ins, self.pid = factory.open_record(pro.headers)
        self.patient = factory.patient(self.ins)
        content = pdf_bytes()
        dr = docref(self.ins, author_rpps=pro.rpps)
        for k in ("size", "hash"):
            dr["content"][0]["attachment"].pop(k, None)
        (self.doc,) = created_doc_ids(
            factory.publish(self.ins, [(dr, content, "application/pdf")], pro.headers)
        )
        assert (
            http.get(f"/fhir/DocumentReference/{self.doc}", headers=pro.headers).status_code == 200
        )
        refused = http.get(f"/fhir/DocumentReference/{self.doc}", headers=stranger.headers)
        assert refused.status_code == 404
        self.urgentist = Pro(
            factory,
            structure="750712184",
            mode="bris_de_glace",
            reason="patient inconscient aux urgences",
        )
        r = http.get(f"/fhir/Patient/{self.pid}", headers=self.urgentist.headers)
        assert r.status_code == 200, r.text

    def search(self, headers: dict[str, str], **params: Any) -> dict[str, Any]:
        r = self.http.get("/fhir/AuditEvent", params=params, headers=headers)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("application/fhir+json")
        body: dict[str, Any] = r.json()
        assert body["resourceType"] == "Bundle" and body["type"] == "searchset"
        return body


@pytest.fixture()
def story(http: httpx.Client, factory: Factory, pro: Pro, other_pro: Pro) -> Story:
    return Story(http, factory, pro, other_pro)


def events(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle.get("entry", [])]


def action(ev: dict[str, Any]) -> str:
    return str(ev["subtype"][0]["code"])


def rpps_of(ev: dict[str, Any]) -> str | None:
    ident = ev["agent"][0]["who"].get("identifier") or {}
    return ident.get("value") if ident.get("system") == RPPS else None


def entities(ev: dict[str, Any]) -> list[str]:
    return [e["what"]["reference"] for e in ev.get("entity", []) if "what" in e]


# -- who reads what -------------------------------------------------------------------------------


def test_the_patient_sees_every_trace_of_their_record(story: Story) -> None:
    body = story.search(story.patient, patient=f"Patient/{story.pid}")
    evs = events(body)
    assert body["total"] == len(evs)
    seen = {(action(e), rpps_of(e), e["outcome"]) for e in evs}
    assert ("record.create", story.pro.rpps, "0") in seen
    assert ("document.create", story.pro.rpps, "0") in seen
    assert ("document.read", story.pro.rpps, "0") in seen
    assert ("document.read", story.stranger.rpps, "4") in seen  # the denial, traced
    assert ("record.read", story.urgentist.rpps, "0") in seen
    assert all(f"Patient/{story.pid}" in entities(e) for e in evs)
    # newest first
    recorded = [e["recorded"] for e in evs]
    assert recorded == sorted(recorded, reverse=True)


def test_bare_patient_id_and_no_patient_give_the_same(story: Story) -> None:
    by_ref = story.search(story.patient, patient=f"Patient/{story.pid}")
    by_id = story.search(story.patient, patient=story.pid)
    mine = story.search(story.patient)
    ids = {e["id"] for e in events(by_ref)}
    assert ids <= {e["id"] for e in events(by_id)}
    assert ids <= {e["id"] for e in events(mine)}


def test_reading_traces_is_traced(story: Story) -> None:
    story.search(story.patient, patient=story.pid)
    again = events(story.search(story.patient, patient=story.pid, action="audit.read"))
    assert again, "the first read must show in the second"
    ev = again[0]
    assert ev["outcome"] == "0"
    assert ev["agent"][0]["altId"] == f"ins:{story.ins}"
    assert ev["agent"][0]["who"]["identifier"] == {
        "system": f"urn:oid:{TEST_OID}",
        "value": story.ins,
    }
    assert any(d["valueString"].startswith("returned ") for d in ev["entity"][-1]["detail"])


def test_another_patient_sees_nothing(story: Story, factory: Factory) -> None:
    other = factory.patient(random_nir())
    body = story.search(other, patient=f"Patient/{story.pid}")
    assert body["total"] == 0
    assert events(body) == []
    # ... and the attempt is on the record's chain, for its patient to see
    denied = events(
        story.search(story.patient, patient=story.pid, action="audit.read", outcome="4")
    )
    assert denied and denied[0]["agent"][0]["altId"].startswith("ins:")


def test_a_professional_sees_only_their_own(story: Story) -> None:
    evs = events(story.search(story.pro.headers, patient=story.pid, _count=200))
    assert evs
    assert {rpps_of(e) for e in evs} == {story.pro.rpps}
    # the stranger's refused read is theirs to see, but as a refusal of something missing:
    # tied to no record, so a search naming the record does not find it
    named = events(story.search(story.stranger.headers, patient=story.pid))
    assert ("document.read", "4") not in {(action(e), e["outcome"]) for e in named}
    stranger = events(story.search(story.stranger.headers, action="document.read"))
    assert [(action(e), e["outcome"]) for e in stranger] == [("document.read", "4")]
    assert not any(r.startswith("Patient/") for r in entities(stranger[0]))
    assert stranger[0]["outcomeDesc"] == "refused, or no such resource"
    assert "extension" not in stranger[0]  # no chain values of a trace shown in part
    # without patient: their own traces on every record
    own = events(story.search(story.pro.headers, _count=200))
    assert {rpps_of(e) for e in own} == {story.pro.rpps}
    assert {"record.create", "document.create", "document.read"} <= {action(e) for e in own}


def test_an_unknown_record_gives_an_empty_bundle(story: Story) -> None:
    body = story.search(story.patient, patient="Patient/0000000000000000000000000000dead")
    assert (body["total"], events(body)) == (0, [])


# -- paging and filters ---------------------------------------------------------------------------


def test_paging_walks_every_event_once(story: Story) -> None:
    first = story.search(story.patient, patient=story.pid, _count=2)
    total = first["total"]
    assert total >= 5
    seen: list[str] = []
    page: dict[str, Any] | None = first
    pages = 0
    while page is not None:
        evs = events(page)
        assert len(evs) <= 2
        seen += [e["id"] for e in evs]
        nxt = [link["url"] for link in page["link"] if link["relation"] == "next"]
        pages += 1
        if nxt:
            r = story.http.get(nxt[0], headers=story.patient)
            assert r.status_code == 200, r.text
            page = r.json()
        else:
            page = None
    assert len(seen) == len(set(seen)) == total  # the reads made while paging are newer
    assert pages == (total + 1) // 2
    assert seen == sorted(seen, reverse=True)


def test_filters(story: Story) -> None:
    p = story.patient

    def ids(**params: Any) -> list[dict[str, Any]]:
        return events(story.search(p, patient=story.pid, _count=200, **params))

    reads = ids(action="document.read")
    assert reads and {action(e) for e in reads} == {"document.read"}
    assert {e["action"] for e in ids(action="C")} == {"C"}
    assert {action(e) for e in ids(action="C")} >= {"record.create", "document.create"}
    assert {action(e) for e in ids(subtype=f"{ACTIONS}|document.create")} == {"document.create"}
    denied = ids(outcome="4")
    assert denied and {e["outcome"] for e in denied} == {"4"}
    assert {e["outcome"] for e in ids(outcome="deny")} == {"4"}
    assert {e["outcome"] for e in ids(outcome="0")} == {"0"}
    stranger = ids(**{"agent.identifier": f"{RPPS}|{story.stranger.rpps}"})
    assert stranger and {rpps_of(e) for e in stranger} == {story.stranger.rpps}
    bare = ids(**{"agent.identifier": story.stranger.rpps})
    assert {e["id"] for e in bare} == {e["id"] for e in stranger}
    doc = ids(entity=f"DocumentReference/{story.doc}")
    assert doc and all(f"DocumentReference/{story.doc}" in entities(e) for e in doc)
    assert {e["id"] for e in ids(entity=story.doc)} == {e["id"] for e in doc}
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert ids(date=f"ge{today}")
    assert ids(date="lt2000-01-01") == []
    combined = ids(action="document.read", outcome="4")
    assert {(action(e), rpps_of(e)) for e in combined} == {("document.read", story.stranger.rpps)}
    # OR within a parameter
    either = ids(action="document.create,record.create")
    assert {action(e) for e in either} == {"document.create", "record.create"}


@pytest.mark.parametrize(
    ("params", "expression"),
    [
        ({"foo": "1"}, "foo"),
        ({"_cursor": "%%%"}, "_cursor"),
        ({"_sort": "date"}, "_sort"),
        ({"date": "yesterday"}, "date"),
        ({"entity": "Binary/1"}, "entity"),
        ({"patient": "Practitioner/1"}, "patient"),
    ],
)
def test_bad_parameters_are_400(
    http: httpx.Client, factory: Factory, params: dict[str, str], expression: str
) -> None:
    headers = {**factory.patient(random_nir()), "Prefer": "handling=strict"}
    r = http.get("/fhir/AuditEvent", params=params, headers=headers)
    issue = outcome(r, 400)
    assert expression in issue.get("expression", [expression])[0]


def test_a_token_is_required(http: httpx.Client) -> None:
    outcome(http.get("/fhir/AuditEvent"), 401)


# -- the AuditEvent -------------------------------------------------------------------------------


def test_the_audit_event_resource(story: Story) -> None:
    evs = events(story.search(story.patient, patient=story.pid, _count=200))
    read = next(e for e in evs if action(e) == "document.read" and rpps_of(e) == story.pro.rpps)
    assert read["resourceType"] == "AuditEvent"
    assert read["type"] == {"system": DCM, "code": "110110", "display": "Patient Record"}
    assert read["subtype"] == [{"system": ACTIONS, "code": "document.read"}]
    assert read["action"] == "R"
    assert read["outcome"] == "0"
    assert read["recorded"].endswith("Z")
    agent = read["agent"][0]
    assert agent["requestor"] is True
    assert agent["who"]["identifier"] == {"system": RPPS, "value": story.pro.rpps}
    assert {"system": G15, "code": "10"} in [c for r in agent["role"] for c in r["coding"]]
    assert agent["purposeOfUse"][0]["coding"] == [{"system": R248, "code": "normal"}]
    assert read["source"]["observer"]["display"] == "carnet"
    assert entities(read) == [f"Patient/{story.pid}", f"DocumentReference/{story.doc}"]
    chain = next(x for x in read["extension"] if x["url"] == CHAIN)
    parts = {
        x["url"]: next(v for k, v in x.items() if k.startswith("value")) for x in chain["extension"]
    }
    assert parts["seq"] >= 1 and len(parts["hash"]) == len(parts["prevHash"]) == 64

    denial = next(e for e in evs if action(e) == "document.read" and e["outcome"] == "4")
    assert rpps_of(denial) == story.stranger.rpps
    assert denial["outcomeDesc"].startswith("denied by rule ")
    details = {d["type"]: d["valueString"] for d in denial["entity"][-1]["detail"]}
    assert details["rule"]

    emergency = next(e for e in evs if rpps_of(e) == story.urgentist.rpps)
    purpose = emergency["agent"][0]["purposeOfUse"][0]
    assert purpose["coding"] == [{"system": R248, "code": "bris_de_glace"}]
    assert purpose["text"] == "patient inconscient aux urgences"
    assert emergency["agent"][0]["extension"][0]["valueIdentifier"] == {"value": "750712184"}

    create = next(e for e in evs if action(e) == "document.create")
    assert create["action"] == "C"


def test_the_capability_statement_declares_audit_event(http: httpx.Client) -> None:
    cs = http.get("/fhir/metadata").json()
    res = next(r for r in cs["rest"][0]["resource"] if r["type"] == "AuditEvent")
    assert res["interaction"] == [{"code": "search-type"}]
    names = {p["name"] for p in res["searchParam"]}
    assert {"patient", "date", "action", "outcome", "agent.identifier", "entity"} <= names
