"""The ANS PDSm examples (tests/fixtures/pdsm): as published they are refused with the exact
reason; with their known defects corrected they are accepted.

Their defects: the INS 123456789012345 has a wrong NIR key (45; the key of 1234567890123 is 11);
the ITI-65 Lists have no identifier (the submission set's uniqueId); the ITI-105 example lacks
most required metadata; the replacement example targets DocumentReference/doc-x-id, which is no
stored document.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx

from carnet.domain.ins import nir_key
from tests.factories import FHIR_JSON, TEST_OID, Factory, created_doc_ids, outcome

PDSM = Path(__file__).resolve().parents[1] / "fixtures" / "pdsm"
EXAMPLE_INS = "123456789012345"
EXAMPLE_SYSTEM = "urn:oid:1.2.250.1.213.1.4.8"
AUTHOR_RPPS = "899700218896"


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PDSM / name).read_text(encoding="utf-8"))
    return data


def _with_ins(resource: dict[str, Any], ins: str) -> dict[str, Any]:
    """The example with its INS replaced by a valid test INS (references and contained Patients)."""
    text = json.dumps(resource)
    text = text.replace(f"{EXAMPLE_SYSTEM}|{EXAMPLE_INS}", f"urn:oid:{TEST_OID}|{ins}")
    text = text.replace(EXAMPLE_INS, ins)
    out: dict[str, Any] = json.loads(text)
    return out


def _add_list_identifier(b: dict[str, Any]) -> str:
    uid = f"urn:uuid:{uuid.uuid4()}"
    for entry in b["entry"]:
        if entry["resource"]["resourceType"] == "List":
            entry["resource"]["identifier"] = [
                {"use": "official", "system": "urn:ietf:rfc:3986", "value": uid}
            ]
    return uid


def _author(factory: Factory) -> dict[str, str]:
    return factory.professional(rpps=AUTHOR_RPPS)


def test_the_example_ins_has_a_wrong_key() -> None:
    assert nir_key(EXAMPLE_INS[:13]) == 11
    assert EXAMPLE_INS[13:] == "45"


def test_examples_as_published_are_refused_for_the_nir_key(
    http: httpx.Client, factory: Factory
) -> None:
    pro = _author(factory)
    for name, url in (
        ("Bundle-example-td2-iti65-lot-soumission.json", "/fhir"),
        ("Bundle-example-td2-1-remplacement.json", "/fhir"),
        (
            "DocumentReference-example-td2-iti105-publication-simplifiee.json",
            "/fhir/DocumentReference",
        ),
    ):
        r = http.post(url, json=_load(name), headers={**pro, **FHIR_JSON})
        issue = outcome(r, 422)
        diag = issue["diagnostics"]
        assert "wrong NIR key 45" in diag, (name, diag)
        assert "is 11" in diag, (name, diag)
        assert "subject" in issue["expression"][0], (name, issue)


def test_iti65_lot_soumission_accepted_once_corrected(http: httpx.Client, factory: Factory) -> None:
    pro = _author(factory)
    ins, pid = factory.open_record(pro)
    b = _with_ins(_load("Bundle-example-td2-iti65-lot-soumission.json"), ins)
    # with a valid INS, the next defect is named: the submission set has no uniqueId
    issue = outcome(http.post("/fhir", json=b, headers={**pro, **FHIR_JSON}), 422)
    assert issue["expression"] == ["List.identifier"]
    assert "uniqueId" in issue["diagnostics"]
    _add_list_identifier(b)
    r = http.post("/fhir", json=b, headers={**pro, **FHIR_JSON})
    assert r.status_code == 200, r.text
    [did] = created_doc_ids(r)
    doc = http.get(f"/fhir/DocumentReference/{did}", headers=pro).json()
    src = b["entry"][1]["resource"]
    assert doc["masterIdentifier"] == src["masterIdentifier"]
    assert doc["type"] == src["type"] and doc["category"] == src["category"]
    assert doc["subject"] == {"reference": f"Patient/{pid}"}
    assert doc["content"][0]["attachment"]["size"] == 80
    assert doc["content"][0]["attachment"]["hash"] == "A/hMRrv6Y15BjSM8kMLidrz+mHc="
    content = http.get(f"/fhir/Binary/{did}", headers=pro)
    assert content.headers["content-type"].startswith("application/xml")
    assert content.content.startswith(b'<?xml version="1.0"')
    assert len(content.content) == 80
    lists = http.get("/fhir/List", params={"patient": pid}, headers=pro).json()
    assert lists["total"] == 1
    assert lists["entry"][0]["resource"]["entry"] == [
        {"item": {"reference": f"DocumentReference/{did}"}}
    ]


def test_replacement_example_accepted_on_a_real_document(
    http: httpx.Client, factory: Factory
) -> None:
    pro = _author(factory)
    ins, pid = factory.open_record(pro)
    first = _with_ins(_load("Bundle-example-td2-iti65-lot-soumission.json"), ins)
    _add_list_identifier(first)
    [old] = created_doc_ids(http.post("/fhir", json=first, headers={**pro, **FHIR_JSON}))
    repl = _with_ins(_load("Bundle-example-td2-1-remplacement.json"), ins)
    _add_list_identifier(repl)
    # as is, it replaces a document that does not exist
    missing = http.post("/fhir", json=repl, headers={**pro, **FHIR_JSON})
    issue = outcome(missing, 422)
    assert issue["expression"][0].endswith("relatesTo"), issue
    repl = json.loads(json.dumps(repl).replace("doc-x-id", old))
    # only the author replaces: anyone else is answered as for a missing document
    stranger = factory.professional(rpps="810000000090")
    refused = http.post("/fhir", json=repl, headers={**stranger, **FHIR_JSON})
    assert (refused.status_code, refused.content) == (missing.status_code, missing.content)
    r = http.post("/fhir", json=repl, headers={**pro, **FHIR_JSON})
    assert r.status_code == 200, r.text
    out = r.json()["entry"]
    created = next(
        e for e in out if e["fullUrl"] == "urn:uuid:bbbbbbbb-0000-0000-0000-000000000002"
    )
    assert created["response"]["status"] == "201 Created"
    new = created["response"]["location"].split("/DocumentReference/")[1].split("/")[0]
    assert set(created_doc_ids(r)) == {old, new}
    # the PATCH entry answers with the superseded document's new version
    patch = next(e for e in out if e["fullUrl"] == "urn:uuid:bbbbbbbb-0000-0000-0000-000000000004")
    assert patch["response"]["status"] == "200 OK"
    assert patch["response"]["location"].endswith(f"/DocumentReference/{old}/_history/2")
    prev = http.get(f"/fhir/DocumentReference/{old}", headers=pro).json()
    assert prev["status"] == "superseded" and prev["meta"]["versionId"] == "2"
    cur = http.get(f"/fhir/DocumentReference/{new}", headers=pro).json()
    assert cur["status"] == "current"
    assert cur["relatesTo"][0]["target"]["reference"] == f"DocumentReference/{old}"
    search = http.get(
        "/fhir/DocumentReference", params={"patient": pid, "status": "current"}, headers=pro
    ).json()
    assert [e["resource"]["id"] for e in search["entry"]] == [new]


def test_iti105_example_lists_missing_metadata(http: httpx.Client, factory: Factory) -> None:
    pro = _author(factory)
    ins, pid = factory.open_record(pro)
    dr = _with_ins(_load("DocumentReference-example-td2-iti105-publication-simplifiee.json"), ins)
    issue = outcome(
        http.post("/fhir/DocumentReference", json=dr, headers={**pro, **FHIR_JSON}), 422
    )
    diag = issue["diagnostics"]
    assert diag.startswith("missing required document metadata")
    for name in (
        "category (classCode)",
        "securityLabel (confidentialityCode)",
        "content.attachment.creation (creationTime)",
        "content.format (formatCode)",
        "content.attachment.language (languageCode)",
        "context.facilityType (healthcareFacilityTypeCode)",
        "context.practiceSetting (practiceSettingCode)",
        "context.period.start (serviceStartTime)",
        "context.sourcePatientInfo (sourcePatientId)",
    ):
        assert name in diag, (name, diag)
    # present metadata are not listed
    for name in ("masterIdentifier", "type (typeCode)", "title", "author", "mimeType"):
        assert name not in diag, (name, diag)
    assert issue["expression"][0].startswith("DocumentReference.")
    assert (
        http.get("/fhir/DocumentReference", params={"patient": pid}, headers=pro).json()["total"]
        == 0
    )


def test_iti105_example_with_pdf_content_lists_missing_metadata(
    http: httpx.Client, factory: Factory
) -> None:
    """The same example carrying a PDF (no CDA header to read metadata from)."""
    import base64

    pro = _author(factory)
    ins, _pid = factory.open_record(pro)
    dr = _with_ins(_load("DocumentReference-example-td2-iti105-publication-simplifiee.json"), ins)
    att = dr["content"][0]["attachment"]
    att["contentType"] = "application/pdf"
    att["data"] = base64.b64encode(b"%PDF-1.4 example").decode()
    issue = outcome(
        http.post("/fhir/DocumentReference", json=dr, headers={**pro, **FHIR_JSON}), 422
    )
    diag = issue["diagnostics"]
    assert diag.startswith("missing required document metadata")
    for name in (
        "category (classCode)",
        "securityLabel (confidentialityCode)",
        "content.attachment.creation (creationTime)",
        "content.format (formatCode)",
        "content.attachment.language (languageCode)",
        "context.facilityType (healthcareFacilityTypeCode)",
        "context.practiceSetting (practiceSettingCode)",
        "context.period.start (serviceStartTime)",
        "context.sourcePatientInfo (sourcePatientId)",
    ):
        assert name in diag, (name, diag)
