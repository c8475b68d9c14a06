from __future__ import annotations

import httpx

from tests.factories import Factory, docref


def test_metadata_is_public(http: httpx.Client) -> None:
    r = http.get("/fhir/metadata")
    assert r.status_code == 200
    assert r.json()["resourceType"] == "CapabilityStatement"


def test_served_capability_statement_validates_and_follows_the_routes(http: httpx.Client) -> None:
    """What the server serves, not only what the unit test builds: valid R4(B), and drawn from
    the routes the app registered."""
    from fhir.resources.R4B.capabilitystatement import CapabilityStatement

    cs = http.get("/fhir/metadata").json()
    CapabilityStatement.model_validate(cs)
    resources = {r["type"]: r for r in cs["rest"][0]["resource"]}
    codes = {i["code"] for i in resources["DocumentReference"]["interaction"]}
    assert {"read", "vread", "update", "create", "search-type", "history-instance"} <= codes
    assert {p["name"] for p in resources["List"]["searchParam"]} >= {"patient", "identifier"}
    assert cs["rest"][0]["interaction"][0]["code"] == "transaction"


def test_open_publish_read(http: httpx.Client, factory: Factory) -> None:
    pro = factory.professional()
    ins, pid = factory.open_record(pro)
    content = b"%PDF-1.4 hello carnet"
    r = factory.publish(ins, [(docref(ins, content=content), content, "application/pdf")], pro)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["type"] == "transaction-response"
    loc = out["entry"][1]["response"]["location"]
    doc = http.get(loc.split("/_history")[0], headers=pro)
    assert doc.status_code == 200, doc.text
    url = doc.json()["content"][0]["attachment"]["url"]
    got = http.get(url, headers=pro)
    assert got.status_code == 200
    assert got.content == content
    s = http.get("/fhir/DocumentReference", params={"patient": pid}, headers=pro)
    assert s.status_code == 200, s.text
    assert s.json()["total"] == 1
