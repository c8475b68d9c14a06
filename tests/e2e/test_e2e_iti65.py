"""ITI-65 Provide Document Bundle (TD2.1 / TD2.2), ITI-66 List search, ITI-105 simplified
publish: all or nothing, replacement, idempotency, content checks (dmp.md §4, §6)."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Server
from tests.e2e.conftest import Pro, content_files
from tests.factories import (
    FHIR_JSON,
    TEST_OID,
    Factory,
    bundle,
    created_doc_ids,
    docref,
    outcome,
    pdf_bytes,
)


def _doc(
    ins: str, pro: Pro, content: bytes | None = None, **kw: Any
) -> tuple[dict[str, Any], bytes, str]:
    content = content if content is not None else pdf_bytes()
    return docref(ins, content=content, author_rpps=pro.rpps, **kw), content, "application/pdf"


def _total(http: httpx.Client, headers: dict[str, str], pid: str, **params: str) -> int:
    r = http.get("/fhir/DocumentReference", params={"patient": pid, **params}, headers=headers)
    assert r.status_code == 200, r.text
    return int(r.json()["total"])


def _record_files(server: Server, pid: str) -> set[Path]:
    return {p for p in content_files(server.settings.data_dir) if pid in str(p) or ".tmp" in str(p)}


def test_multi_document_bundle(http: httpx.Client, factory: Factory, pro: Pro) -> None:
    ins, pid = factory.open_record(pro.headers)
    docs = [_doc(ins, pro) for _ in range(3)]
    r = factory.publish(ins, docs, pro.headers)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["resourceType"] == "Bundle" and out["type"] == "transaction-response"
    statuses = [e["response"]["status"] for e in out["entry"]]
    assert statuses == ["201 Created"] * 7
    list_loc = out["entry"][0]["response"]["location"]
    assert "/List/" in list_loc
    ids = created_doc_ids(r)
    assert len(set(ids)) == 3
    for (dr, content, _ctype), did in zip(docs, ids, strict=True):
        doc = http.get(f"/fhir/DocumentReference/{did}", headers=pro.headers).json()
        assert doc["masterIdentifier"] == dr["masterIdentifier"]
        got = http.get(doc["content"][0]["attachment"]["url"], headers=pro.headers)
        assert got.content == content
    # Binary entries answer with the Binary's location
    binaries = [
        e["response"]["location"] for e in out["entry"] if "/Binary/" in e["response"]["location"]
    ]
    assert len(binaries) == 3
    assert _total(http, pro.headers, pid) == 3


@pytest.mark.parametrize("fault", ["metadata", "hash", "size", "replaces", "class", "binary-type"])
def test_bundle_is_all_or_nothing(
    http: httpx.Client, factory: Factory, pro: Pro, server: Server, fault: str
) -> None:
    ins, pid = factory.open_record(pro.headers)
    first = _doc(ins, pro, pdf_bytes(size=3 * 1024 * 1024))  # large: written in a thread
    dr, content, ctype = _doc(ins, pro)
    expected = 422
    if fault == "metadata":
        del dr["type"]
    elif fault == "hash":
        dr["content"][0]["attachment"]["hash"] = base64.b64encode(
            hashlib.sha1(b"x").digest()
        ).decode()
    elif fault == "size":
        dr["content"][0]["attachment"]["size"] = len(content) + 1
    elif fault == "replaces":
        dr["relatesTo"] = [
            {"code": "replaces", "target": {"reference": f"DocumentReference/{pid}-nope"}}
        ]
    elif fault == "class":
        dr["category"][0]["coding"][0]["code"] = "99"
    elif fault == "binary-type":
        ctype = "text/plain"
    before = content_files(server.settings.data_dir)
    r = factory.publish(ins, [first, (dr, content, ctype)], pro.headers)
    issue = outcome(r, expected)
    assert issue["code"] in ("business-rule", "invalid")
    assert _total(http, pro.headers, pid) == 0
    lists = http.get("/fhir/List", params={"patient": pid}, headers=pro.headers).json()
    assert lists["total"] == 0
    assert content_files(server.settings.data_dir) == before
    # and the first document alone is then accepted
    assert factory.publish(ins, [first], pro.headers).status_code == 200
    assert _total(http, pro.headers, pid) == 1


def test_replacement(http: httpx.Client, factory: Factory, pro: Pro, other_pro: Pro) -> None:
    ins, pid = factory.open_record(pro.headers)
    [old] = created_doc_ids(factory.publish(ins, [_doc(ins, pro)], pro.headers))
    # another professional may add documents, not replace this one
    # (answered as if it did not exist: tests/e2e/test_refused_like_missing.py)
    stranger_doc = _doc(ins, other_pro, replaces=old)
    r = factory.publish(ins, [stranger_doc], other_pro.headers)
    issue = outcome(r, 422)
    assert old not in issue["diagnostics"]
    assert _total(http, pro.headers, pid) == 1
    # even when claiming the original author in the metadata
    claim = _doc(ins, pro, replaces=old)
    outcome(factory.publish(ins, [claim], other_pro.headers), 422)
    # a replacement in a bundle that fails later leaves the old document as it was
    bad = _doc(ins, pro)
    bad[0]["relatesTo"] = [
        {"code": "replaces", "target": {"reference": f"DocumentReference/{pid}-nope"}}
    ]
    outcome(factory.publish(ins, [_doc(ins, pro, replaces=old), bad], pro.headers), 422)
    kept = http.get(f"/fhir/DocumentReference/{old}", headers=pro.headers)
    assert kept.json()["status"] == "current" and kept.headers["etag"] == 'W/"1"'
    assert (
        http.get(f"/fhir/DocumentReference/{old}/_history", headers=pro.headers).json()["total"]
        == 1
    )
    # the author replaces it
    new_content = pdf_bytes(b"version 2")
    r = factory.publish(ins, [_doc(ins, pro, new_content, replaces=old)], pro.headers)
    assert r.status_code == 200, r.text
    [new] = created_doc_ids(r)
    prev = http.get(f"/fhir/DocumentReference/{old}", headers=pro.headers)
    assert prev.status_code == 200
    assert prev.json()["status"] == "superseded"
    assert prev.json()["meta"]["versionId"] == "2"
    assert prev.headers["etag"] == 'W/"2"'
    cur = http.get(f"/fhir/DocumentReference/{new}", headers=pro.headers).json()
    assert cur["status"] == "current"
    assert cur["relatesTo"] == [
        {"code": "replaces", "target": {"reference": f"DocumentReference/{old}"}}
    ]
    h = http.get(f"/fhir/DocumentReference/{old}/_history", headers=pro.headers).json()
    assert h["total"] == 2
    assert [(e["resource"]["meta"]["versionId"], e["resource"]["status"]) for e in h["entry"]] == [
        ("2", "superseded"),
        ("1", "current"),
    ]
    v1 = http.get(f"/fhir/DocumentReference/{old}/_history/1", headers=pro.headers).json()
    assert v1["status"] == "current"
    # the old content stays readable
    assert http.get(f"/fhir/Binary/{old}", headers=pro.headers).status_code == 200
    assert http.get(f"/fhir/Binary/{new}", headers=pro.headers).content == new_content
    # searches
    assert _total(http, pro.headers, pid) == 2
    assert _total(http, pro.headers, pid, status="current") == 1
    assert _total(http, pro.headers, pid, status="superseded") == 1
    # a superseded document is not replaced again
    issue = outcome(factory.publish(ins, [_doc(ins, pro, replaces=old)], pro.headers), 409)
    assert "superseded" in issue["diagnostics"]
    # nor is a document of another record
    ins2, _pid2 = factory.open_record(pro.headers)
    outcome(factory.publish(ins2, [_doc(ins2, pro, replaces=new)], pro.headers), 422)


def test_same_unique_id_twice_makes_one_document(
    http: httpx.Client, factory: Factory, pro: Pro
) -> None:
    ins, pid = factory.open_record(pro.headers)
    b = bundle(ins, [_doc(ins, pro)])
    raw = json.dumps(b)
    headers = {**pro.headers, **FHIR_JSON}
    r1 = http.post("/fhir", content=raw, headers=headers)
    assert r1.status_code == 200, r1.text
    assert r1.json()["entry"][1]["response"]["status"] == "201 Created"
    r2 = http.post("/fhir", content=raw, headers=headers)
    assert r2.status_code == 200, r2.text
    assert r2.json()["entry"][1]["response"]["status"] == "200 OK"
    assert created_doc_ids(r1) == created_doc_ids(r2)
    assert (
        r1.json()["entry"][0]["response"]["location"]
        == r2.json()["entry"][0]["response"]["location"]
    )
    assert _total(http, pro.headers, pid) == 1
    assert http.get("/fhir/List", params={"patient": pid}, headers=pro.headers).json()["total"] == 1
    # the same document in a new submission set: still one document
    dr, content, ctype = (
        b["entry"][1]["resource"],
        base64.b64decode(b["entry"][2]["resource"]["data"]),
        "application/pdf",
    )
    r3 = factory.publish(ins, [(json.loads(json.dumps(dr)), content, ctype)], pro.headers)
    assert r3.status_code == 200, r3.text
    assert r3.json()["entry"][1]["response"]["status"] == "200 OK"
    assert created_doc_ids(r3) == created_doc_ids(r1)
    assert _total(http, pro.headers, pid) == 1


def test_same_unique_id_other_content_is_409(
    http: httpx.Client, factory: Factory, pro: Pro, server: Server
) -> None:
    ins, pid = factory.open_record(pro.headers)
    dr, content, ctype = _doc(ins, pro)
    assert factory.publish(ins, [(dr, content, ctype)], pro.headers).status_code == 200
    other = pdf_bytes(b"other")
    dr2 = docref(
        ins, content=other, unique_id=dr["masterIdentifier"]["value"], author_rpps=pro.rpps
    )
    before = content_files(server.settings.data_dir)
    issue = outcome(factory.publish(ins, [(dr2, other, ctype)], pro.headers), 409)
    assert "XDSDuplicateUniqueIdInRegistry" in issue["diagnostics"]
    assert issue["expression"] == ["DocumentReference.masterIdentifier"]
    assert content_files(server.settings.data_dir) == before
    assert _total(http, pro.headers, pid) == 1
    # two documents with one uniqueId in one bundle, different content: 409 too
    a = _doc(ins, pro)
    b_content = pdf_bytes()
    b = (
        docref(
            ins,
            content=b_content,
            unique_id=a[0]["masterIdentifier"]["value"],
            author_rpps=pro.rpps,
        ),
        b_content,
        "application/pdf",
    )
    outcome(factory.publish(ins, [a, b], pro.headers), 409)
    assert _total(http, pro.headers, pid) == 1


def test_iti66_list_search(http: httpx.Client, factory: Factory, pro: Pro, other_pro: Pro) -> None:
    ins, pid = factory.open_record(pro.headers)
    b = bundle(ins, [_doc(ins, pro), _doc(ins, pro)])
    set_uid = b["entry"][0]["resource"]["identifier"][0]["value"]
    r = http.post("/fhir", json=b, headers={**pro.headers, **FHIR_JSON})
    ids = created_doc_ids(r)
    s = http.get("/fhir/List", params={"patient": pid}, headers=pro.headers)
    assert s.status_code == 200, s.text
    body = s.json()
    assert body["total"] == 1
    lst = body["entry"][0]["resource"]
    assert lst["resourceType"] == "List"
    assert lst["subject"] == {"reference": f"Patient/{pid}"}
    assert [e["item"]["reference"] for e in lst["entry"]] == [f"DocumentReference/{i}" for i in ids]
    assert lst["identifier"][0]["value"] == set_uid
    assert body["entry"][0]["fullUrl"].endswith(f"/List/{lst['id']}")
    # read, and the other search parameters
    one = http.get(f"/fhir/List/{lst['id']}", headers=pro.headers)
    assert one.status_code == 200 and one.json() == lst
    for params in (
        {"patient.identifier": f"urn:oid:{TEST_OID}|{ins}"},
        {"patient": pid, "code": "submissionset"},
        {"patient": pid, "status": "current"},
        {"patient": pid, "identifier": set_uid},
        {"patient": pid, "source.identifier": "urn:oid:1.2.3.4.5"},
        {"patient": pid, "date": "2026-06-12"},
    ):
        assert http.get("/fhir/List", params=params, headers=pro.headers).json()["total"] == 1, (
            params
        )
    for params in (
        {"patient": pid, "code": "folder"},
        {"patient": pid, "status": "retired"},
        {"patient": pid, "date": "2020"},
    ):
        assert http.get("/fhir/List", params=params, headers=pro.headers).json()["total"] == 0, (
            params
        )
    # a stranger sees none of it
    assert (
        http.get("/fhir/List", params={"patient": pid}, headers=other_pro.headers).json()["total"]
        == 0
    )
    outcome(http.get(f"/fhir/List/{lst['id']}", headers=other_pro.headers), 404)
    strict = {**pro.headers, "Prefer": "handling=strict"}
    outcome(http.get("/fhir/List", params={"foo": "1"}, headers=strict), 400)


def test_iti105_simplified_publish(http: httpx.Client, factory: Factory, pro: Pro) -> None:
    ins, pid = factory.open_record(pro.headers)
    content = pdf_bytes(b"iti-105")
    dr = docref(ins, content=content, inline=True, author_rpps=pro.rpps)
    headers = {**pro.headers, **FHIR_JSON}
    r = http.post("/fhir/DocumentReference", json=dr, headers=headers)
    assert r.status_code == 201, r.text
    doc = r.json()
    assert r.headers["location"].endswith(f"/DocumentReference/{doc['id']}/_history/1")
    assert r.headers["etag"] == 'W/"1"'
    assert "data" not in doc["content"][0]["attachment"]
    assert http.get(doc["content"][0]["attachment"]["url"], headers=pro.headers).content == content
    # the same again, without If-None-Exist: one document, 200
    again = http.post("/fhir/DocumentReference", json=dr, headers=headers)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == doc["id"]
    # with If-None-Exist on its identifier: 200 and the stored document, nothing stored
    uid = dr["masterIdentifier"]["value"]
    cond = http.post(
        "/fhir/DocumentReference",
        json=dr,
        headers={**headers, "If-None-Exist": f"identifier=urn:ietf:rfc:3986|{uid}"},
    )
    assert cond.status_code == 200, cond.text
    assert cond.json()["id"] == doc["id"]
    # If-None-Exist that matches nothing: created
    dr2 = docref(ins, content=pdf_bytes(), inline=True, author_rpps=pro.rpps)
    new = http.post(
        "/fhir/DocumentReference",
        json=dr2,
        headers={**headers, "If-None-Exist": f"identifier={dr2['masterIdentifier']['value']}"},
    )
    assert new.status_code == 201, new.text
    assert _total(http, pro.headers, pid) == 2
    # ITI-105 made one submission set per stored document
    lists = http.get("/fhir/List", params={"patient": pid}, headers=pro.headers).json()
    refs = sorted(e["item"]["reference"] for x in lists["entry"] for e in x["resource"]["entry"])
    assert refs == sorted(
        [f"DocumentReference/{doc['id']}", f"DocumentReference/{new.json()['id']}"]
    )
    # a bad If-None-Exist
    outcome(
        http.post(
            "/fhir/DocumentReference", json=dr, headers={**headers, "If-None-Exist": "type=1"}
        ),
        400,
    )
    # ITI-105 without content
    nodata = docref(ins, author_rpps=pro.rpps)
    nodata["content"][0]["attachment"].pop("url")
    outcome(http.post("/fhir/DocumentReference", json=nodata, headers=headers), 422)
    # ITI-105 whose subject is Patient/<id>
    dr3 = docref(ins, content=pdf_bytes(), inline=True, author_rpps=pro.rpps)
    dr3["subject"] = {"reference": f"Patient/{pid}"}
    assert http.post("/fhir/DocumentReference", json=dr3, headers=headers).status_code == 201
    assert _total(http, pro.headers, pid) == 3


def test_iti105_to_a_missing_record(http: httpx.Client, pro: Pro) -> None:
    from tests.factories import random_nir

    ins = random_nir()
    dr = docref(ins, content=pdf_bytes(), inline=True, author_rpps=pro.rpps)
    issue = outcome(
        http.post("/fhir/DocumentReference", json=dr, headers={**pro.headers, **FHIR_JSON}), 404
    )
    assert "open it first" in issue["diagnostics"]


def test_bundle_shape_errors(http: httpx.Client, factory: Factory, pro: Pro) -> None:
    ins, _pid = factory.open_record(pro.headers)
    headers = {**pro.headers, **FHIR_JSON}

    def send(b: dict[str, Any]) -> httpx.Response:
        return http.post("/fhir", json=b, headers=headers)

    good = bundle(ins, [_doc(ins, pro)])
    b = json.loads(json.dumps(good))
    b["type"] = "batch"
    issue = outcome(send(b), 400)
    assert issue["expression"] == ["Bundle.type"]
    b = json.loads(json.dumps(good))
    b["type"] = "document"
    outcome(send(b), 400)
    # no List
    b = json.loads(json.dumps(good))
    b["entry"] = b["entry"][1:]
    outcome(send(b), 422)
    # a DocumentReference not listed in the List
    b = json.loads(json.dumps(good))
    b["entry"][0]["resource"]["entry"] = []
    outcome(send(b), 422)
    # List without uniqueId
    b = json.loads(json.dumps(good))
    del b["entry"][0]["resource"]["identifier"]
    issue = outcome(send(b), 422)
    assert issue["expression"] == ["List.identifier"]
    # a stray Binary
    b = json.loads(json.dumps(good))
    b["entry"].append(
        {
            "fullUrl": "urn:uuid:stray",
            "resource": {"resourceType": "Binary", "contentType": "text/plain", "data": "eA=="},
            "request": {"method": "POST", "url": "Binary"},
        }
    )
    outcome(send(b), 422)
    # another patient in a DocumentReference
    b = json.loads(json.dumps(good))
    from tests.factories import random_nir

    b["entry"][1]["resource"]["subject"]["reference"] = (
        f"Patient?identifier=urn:oid:{TEST_OID}|{random_nir()}"
    )
    outcome(send(b), 422)
    # bad base64
    b = json.loads(json.dumps(good))
    b["entry"][2]["resource"]["data"] = "not base64!"
    outcome(send(b), 400)
    # a PUT entry
    b = json.loads(json.dumps(good))
    b["entry"][1]["request"]["method"] = "PUT"
    outcome(send(b), 422)
    # a Patient entry
    b = json.loads(json.dumps(good))
    b["entry"].append(
        {"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}}
    )
    outcome(send(b), 422)
    # no entry at all
    outcome(send({"resourceType": "Bundle", "type": "transaction"}), 400)
    # structurally invalid FHIR
    b = json.loads(json.dumps(good))
    b["entry"][1]["resource"]["status"] = 12
    outcome(send(b), 400)
