"""Every error is an OperationOutcome with the right status, and a client's mistake is never a
500 (the autouse guard of tests/e2e/conftest.py fails any test that sees one)."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from carnet.auth.dev_issuer import DevIssuer
from tests.conftest import Server
from tests.e2e.conftest import Pro, content_files
from tests.factories import (
    FHIR_JSON,
    Factory,
    bundle,
    created_doc_ids,
    docref,
    outcome,
    patient_resource,
    pdf_bytes,
    random_nir,
)


def _post(
    http: httpx.Client,
    url: str,
    headers: dict[str, str],
    body: bytes,
    ctype: str = "application/fhir+json",
) -> httpx.Response:
    return http.post(url, content=body, headers={**headers, "Content-Type": ctype})


# -- 400 -------------------------------------------------------------------------------------------


def test_400_malformed_requests(http: httpx.Client, factory: Factory, pro: Pro) -> None:
    h = pro.headers
    for url in ("/fhir/Patient", "/fhir", "/fhir/DocumentReference"):
        for body in (
            b"{not json",
            b"",
            b"   ",
            b"[1, 2]",
            b'"text"',
            b'{"no": "type"}',
            b"\xff\xfe",
        ):
            issue = outcome(_post(http, url, h, body), 400)
            assert issue["code"] == "invalid", (url, body)
    # wrong resourceType at the endpoint
    ins = random_nir()
    for url, resource in (
        ("/fhir/Patient", docref(ins)),
        ("/fhir/DocumentReference", patient_resource(ins)),
        ("/fhir", patient_resource(ins)),
    ):
        issue = outcome(http.post(url, json=resource, headers={**h, **FHIR_JSON}), 400)
        assert issue["expression"] == ["resourceType"]
        assert "expected" in issue["diagnostics"]
    # not valid FHIR R4
    bad = patient_resource(ins)
    bad["birthDate"] = 19800412
    issue = outcome(http.post("/fhir/Patient", json=bad, headers={**h, **FHIR_JSON}), 400)
    assert "birthDate" in issue["diagnostics"]
    bad = patient_resource(ins)
    bad["unknownElement"] = True
    outcome(http.post("/fhir/Patient", json=bad, headers={**h, **FHIR_JSON}), 400)
    # numbers orjson cannot read
    outcome(_post(http, "/fhir/Patient", h, b'{"resourceType": "Patient", "x": 1e999999}'), 400)
    outcome(
        _post(http, "/fhir/Patient", h, b'{"resourceType": "Patient", "x": ' + b"9" * 400 + b"}"),
        400,
    )
    # unknown search parameters, refused under Prefer: handling=strict (ignored otherwise:
    # tests/e2e/test_e2e_search_params.py)
    strict = {**h, "Prefer": "handling=strict"}
    for url in ("/fhir/Patient", "/fhir/DocumentReference", "/fhir/List"):
        issue = outcome(http.get(url, params={"unknown-param": "1"}, headers=strict), 400)
        assert "unknown-param" in issue["diagnostics"]
        assert issue["expression"] == ["unknown-param"]
    # a Bundle that is not a transaction
    b = bundle(ins, [])
    for kind in ("batch", "collection", "searchset", None):
        b["type"] = kind
        issue = outcome(http.post("/fhir", json=b, headers={**h, **FHIR_JSON}), 400)
    # If-Match that is no version
    _ins, pid = factory.open_record(h)
    r = http.put(
        f"/fhir/Patient/{pid}",
        json=patient_resource(_ins),
        headers={**h, **FHIR_JSON, "If-Match": "yesterday"},
    )
    assert outcome(r, 400)["expression"] == ["If-Match"]


# -- 401 -------------------------------------------------------------------------------------------


def test_401_authentication(http: httpx.Client, server: Server) -> None:
    requests: list[tuple[str, str]] = [
        ("GET", "/fhir/Patient"),
        ("GET", "/fhir/Patient/abc"),
        ("POST", "/fhir/Patient"),
        ("POST", "/fhir"),
        ("GET", "/fhir/DocumentReference"),
        ("GET", "/fhir/Binary/abc"),
        ("POST", "/fhir/Binary"),
        ("GET", "/fhir/List"),
    ]
    expired = DevIssuer.load_or_create(
        server.settings.data_dir, server.settings.audience, 60, clock=lambda: time.time() - 7200
    ).mint({"kind": "professional", "rpps": "810000000009", "profession": "10"})
    other_audience = DevIssuer.load_or_create(server.settings.data_dir, "somebody-else", 600).mint(
        {"kind": "professional", "rpps": "810000000009", "profession": "10"}
    )
    head, payload, _sig = expired.split(".")
    for auth, needle in (
        (None, "bearer token is required"),
        ("Bearer", "Bearer <token>"),
        ("Basic dXNlcjpwYXNz", "Bearer <token>"),
        ("Bearer garbage", None),
        ("Bearer a.b.c", None),
        (f"Bearer {expired}", "expired"),
        (f"Bearer {other_audience}", "audience"),
        (f"Bearer {head}.{payload}.", None),  # signature stripped
    ):
        for method, url in requests:
            headers = {"Authorization": auth} if auth else {}
            r = http.request(method, url, headers={**headers, **FHIR_JSON}, content=b"{}")
            issue = outcome(r, 401)
            assert issue["code"] == "login"
            assert r.headers["www-authenticate"].startswith("Bearer")
            if needle:
                assert needle in issue["diagnostics"], (auth, issue)


# -- 403 -------------------------------------------------------------------------------------------


def test_403_forbidden(http: httpx.Client, factory: Factory, pro: Pro, other_pro: Pro) -> None:
    ins, pid = factory.open_record(pro.headers)
    [did] = created_doc_ids(
        factory.publish(
            ins,
            [(docref(ins, content=(c := pdf_bytes()), author_rpps=pro.rpps), c, "application/pdf")],
            pro.headers,
        )
    )
    # the other professional feeds the record too (so they may read it), but did not author did
    [mine] = created_doc_ids(
        factory.publish(
            ins,
            [
                (
                    docref(ins, content=(c2 := pdf_bytes()), author_rpps=other_pro.rpps),
                    c2,
                    "application/pdf",
                )
            ],
            other_pro.headers,
        )
    )
    assert mine
    # replace: author only
    repl = docref(ins, content=(c3 := pdf_bytes()), author_rpps=other_pro.rpps, replaces=did)
    issue = outcome(factory.publish(ins, [(repl, c3, "application/pdf")], other_pro.headers), 422)
    assert issue["code"] == "business-rule"  # as for a missing document
    # metadata update: author only
    doc = http.get(f"/fhir/DocumentReference/{did}", headers=pro.headers).json()
    doc["status"] = "entered-in-error"
    r = http.put(
        f"/fhir/DocumentReference/{did}", json=doc, headers={**other_pro.headers, **FHIR_JSON}
    )
    assert r.status_code in (403, 404)
    outcome(r, r.status_code)
    assert (
        http.get(f"/fhir/DocumentReference/{did}", headers=pro.headers).json()["status"]
        == "current"
    )
    # closing the record: the patient only
    closing = patient_resource(
        ins,
        extra_extensions=[
            {
                "url": "https://carnet.health/fhir/StructureDefinition/dmp-record-status",
                "valueCode": "closed",
            }
        ],
    )
    outcome(
        http.put(f"/fhir/Patient/{pid}", json=closing, headers={**pro.headers, **FHIR_JSON}), 403
    )
    # a patient opens only their own record
    me = factory.patient(ins)
    outcome(
        http.post(
            "/fhir/Patient", json=patient_resource(random_nir()), headers={**me, **FHIR_JSON}
        ),
        403,
    )


# -- 404 -------------------------------------------------------------------------------------------


def test_404_looks_the_same_for_hidden_and_missing(
    http: httpx.Client, factory: Factory, pro: Pro, other_pro: Pro
) -> None:
    ins_a, _pid_a = factory.open_record(pro.headers)
    ins_b, pid_b = factory.open_record(pro.headers)
    c = pdf_bytes()
    [doc_b] = created_doc_ids(
        factory.publish(
            ins_b,
            [(docref(ins_b, content=c, author_rpps=pro.rpps), c, "application/pdf")],
            pro.headers,
        )
    )
    lists_b = http.get("/fhir/List", params={"patient": pid_b}, headers=pro.headers).json()
    list_b = lists_b["entry"][0]["resource"]["id"]
    patient_a = factory.patient(ins_a)
    missing_doc = doc_b[:-6] + "ffffff"
    pairs = [
        (f"/fhir/DocumentReference/{doc_b}", f"/fhir/DocumentReference/{missing_doc}"),
        (
            f"/fhir/DocumentReference/{doc_b}/_history/1",
            f"/fhir/DocumentReference/{missing_doc}/_history/1",
        ),
        (
            f"/fhir/DocumentReference/{doc_b}/_history",
            f"/fhir/DocumentReference/{missing_doc}/_history",
        ),
        (f"/fhir/Binary/{doc_b}", f"/fhir/Binary/{missing_doc}"),
        (f"/fhir/Patient/{pid_b}", f"/fhir/Patient/{pid_b[:-6]}ffffff"),
        (f"/fhir/List/{list_b}", f"/fhir/List/{list_b[:-6]}ffffff"),
    ]
    for who in (patient_a, other_pro.headers):
        for hidden, missing in pairs:
            h = http.get(hidden, headers=who)
            m = http.get(missing, headers=who)
            assert h.status_code == m.status_code == 404, (hidden, h.status_code, m.status_code)
            assert h.content == m.content, (hidden, h.text, m.text)
            assert h.headers["content-type"] == m.headers["content-type"]
            outcome(h, 404)
    # ids of any shape
    for path in (
        "/fhir/DocumentReference/x",
        "/fhir/DocumentReference/-",
        "/fhir/DocumentReference/%00",
        "/fhir/DocumentReference/" + "a" * 500,
        "/fhir/DocumentReference/'%20OR%201=1--",
        "/fhir/Binary/..%2F..%2Fetc%2Fpasswd",
        "/fhir/Patient/%E2%82%AC",
        "/fhir/List/x-y-z",
    ):
        outcome(http.get(path, headers=pro.headers), 404)


def test_404_unknown_route_and_405(http: httpx.Client, factory: Factory, pro: Pro) -> None:
    for path in (
        "/fhir/Foo",
        "/fhir/Observation/1",
        "/fhir/Patient/1/2/3/4",
        "/fhir/Patient/1/$everything",
    ):
        issue = outcome(http.get(path, headers=pro.headers), 404)
        assert issue["code"] == "not-found"
    # even without a token: the route does not exist
    outcome(http.get("/fhir/Foo"), 404)
    _ins, pid = factory.open_record(pro.headers)
    for method, path in (
        ("PATCH", f"/fhir/Patient/{pid}"),
        ("PUT", "/fhir/Patient"),
        ("DELETE", "/fhir/DocumentReference"),
        ("POST", f"/fhir/List/{pid}"),
        ("PUT", f"/fhir/Binary/{pid}"),
    ):
        issue = outcome(http.request(method, path, headers=pro.headers), 405)
        assert issue["code"] == "not-supported"


# -- 409 / 410 / 412 -------------------------------------------------------------------------------


def test_409_conflicts(http: httpx.Client, factory: Factory, pro: Pro) -> None:
    ins, _pid = factory.open_record(pro.headers)
    outcome(
        http.post(
            "/fhir/Patient", json=patient_resource(ins), headers={**pro.headers, **FHIR_JSON}
        ),
        409,
    )
    c = pdf_bytes()
    dr = docref(ins, content=c, author_rpps=pro.rpps)
    assert factory.publish(ins, [(dr, c, "application/pdf")], pro.headers).status_code == 200
    c2 = pdf_bytes()
    dr2 = docref(ins, content=c2, author_rpps=pro.rpps, unique_id=dr["masterIdentifier"]["value"])
    outcome(factory.publish(ins, [(dr2, c2, "application/pdf")], pro.headers), 409)


def test_410_deleted_document(
    http: httpx.Client, factory: Factory, pro: Pro, other_pro: Pro
) -> None:
    ins, pid = factory.open_record(pro.headers)
    c = pdf_bytes()
    [did] = created_doc_ids(
        factory.publish(
            ins, [(docref(ins, content=c, author_rpps=pro.rpps), c, "application/pdf")], pro.headers
        )
    )
    doc = http.get(f"/fhir/DocumentReference/{did}", headers=pro.headers).json()
    doc["status"] = "entered-in-error"
    r = http.put(
        f"/fhir/DocumentReference/{did}",
        json=doc,
        headers={**pro.headers, **FHIR_JSON, "If-Match": 'W/"1"'},
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "entered-in-error"
    assert r.headers["etag"] == 'W/"2"'
    issue = outcome(http.get(f"/fhir/DocumentReference/{did}", headers=pro.headers), 410)
    assert issue["code"] == "deleted"
    outcome(http.get(f"/fhir/DocumentReference/{did}/_history/1", headers=pro.headers), 410)
    # the content is gone with it
    assert http.get(f"/fhir/Binary/{did}", headers=pro.headers).status_code in (404, 410)
    # the patient, who may read the record, is told it was deleted
    outcome(http.get(f"/fhir/DocumentReference/{did}", headers=factory.patient(ins)), 410)
    # a stranger cannot tell it from a missing document
    s = http.get(f"/fhir/DocumentReference/{did}", headers=other_pro.headers)
    m = http.get(f"/fhir/DocumentReference/{did[:-6]}ffffff", headers=other_pro.headers)
    outcome(s, 404)
    assert s.content == m.content
    # a deleted document is not updated again
    doc["status"] = "current"
    r = http.put(f"/fhir/DocumentReference/{did}", json=doc, headers={**pro.headers, **FHIR_JSON})
    assert r.status_code in (404, 410)
    outcome(r, r.status_code)
    assert (
        http.get("/fhir/DocumentReference", params={"patient": pid}, headers=pro.headers).json()[
            "total"
        ]
        == 0
    )


def test_412_stale_versions(http: httpx.Client, factory: Factory, pro: Pro) -> None:
    ins, pid = factory.open_record(pro.headers)
    h = {**pro.headers, **FHIR_JSON}
    assert (
        http.put(
            f"/fhir/Patient/{pid}", json=patient_resource(ins), headers={**h, "If-Match": 'W/"1"'}
        ).status_code
        == 200
    )
    issue = outcome(
        http.put(
            f"/fhir/Patient/{pid}", json=patient_resource(ins), headers={**h, "If-Match": 'W/"1"'}
        ),
        412,
    )
    assert issue["code"] == "conflict"
    outcome(
        http.put(
            f"/fhir/Patient/{pid}", json=patient_resource(ins), headers={**h, "If-Match": '"7"'}
        ),
        412,
    )
    c = pdf_bytes()
    [did] = created_doc_ids(
        factory.publish(
            ins, [(docref(ins, content=c, author_rpps=pro.rpps), c, "application/pdf")], pro.headers
        )
    )
    doc = http.get(f"/fhir/DocumentReference/{did}", headers=pro.headers).json()
    doc["securityLabel"] = doc["securityLabel"] + [
        {
            "coding": [
                {
                    "system": "https://mos.esante.gouv.fr/NOS/TRE_A07-StatutVisibiliteDocument/FHIR/TRE-A07-StatutVisibiliteDocument",
                    "code": "INVISIBLE_PATIENT",
                }
            ]
        }
    ]
    outcome(
        http.put(f"/fhir/DocumentReference/{did}", json=doc, headers={**h, "If-Match": 'W/"2"'}),
        412,
    )
    ok = http.put(f"/fhir/DocumentReference/{did}", json=doc, headers={**h, "If-Match": 'W/"1"'})
    assert ok.status_code == 200, ok.text
    outcome(
        http.put(f"/fhir/DocumentReference/{did}", json=doc, headers={**h, "If-Match": 'W/"1"'}),
        412,
    )


# -- 413 -------------------------------------------------------------------------------------------


def test_413_body_too_large(small_server: Server) -> None:
    limit = small_server.settings.max_upload_bytes
    with httpx.Client(base_url=small_server.url, timeout=60) as http:
        http.event_hooks["response"].append(
            lambda r: (
                None
                if r.status_code < 500
                else pytest.fail(f"{r.status_code} from {r.request.url}")
            )
        )
        factory = Factory(http)
        pro = factory.professional(rpps="811111111115")
        ins, pid = factory.open_record(pro)
        before = content_files(small_server.settings.data_dir)
        big = pdf_bytes(size=limit * 2)
        # declared too large (Content-Length)
        dr = docref(ins, content=big, inline=True)
        issue = outcome(
            http.post("/fhir/DocumentReference", json=dr, headers={**pro, **FHIR_JSON}), 413
        )
        assert str(limit) in issue["diagnostics"]
        assert issue["code"] == "too-costly"
        outcome(
            http.post(
                "/fhir",
                json=bundle(ins, [(docref(ins, content=big), big, "application/pdf")]),
                headers={**pro, **FHIR_JSON},
            ),
            413,
        )
        padded = patient_resource(random_nir())
        padded["text"] = {"status": "generated", "div": "<div>" + "x" * limit + "</div>"}
        outcome(http.post("/fhir/Patient", json=padded, headers={**pro, **FHIR_JSON}), 413)
        raw = {**pro, "Content-Type": "application/pdf", "X-Security-Context": f"Patient/{pid}"}
        outcome(http.post("/fhir/Binary", content=big, headers=raw), 413)

        # streamed without a length (chunked): refused as soon as it passes the limit
        def chunks(data: bytes) -> Any:
            for i in range(0, len(data), 8192):
                yield data[i : i + 8192]

        outcome(http.post("/fhir/Binary", content=chunks(big), headers=raw), 413)
        body = json.dumps(dr).encode()
        outcome(
            http.post(
                "/fhir/DocumentReference", content=chunks(body), headers={**pro, **FHIR_JSON}
            ),
            413,
        )
        assert content_files(small_server.settings.data_dir) == before
        # just under the limit passes
        small = pdf_bytes(size=limit // 2)
        ok = http.post("/fhir/Binary", content=chunks(small), headers=raw)
        assert ok.status_code == 201, ok.text
        exact = pdf_bytes(size=limit)
        assert http.post("/fhir/Binary", content=exact, headers=raw).status_code == 201
        outcome(http.post("/fhir/Binary", content=exact + b"!", headers=raw), 413)


# -- 415 -------------------------------------------------------------------------------------------


def test_415_media_types(http: httpx.Client, factory: Factory, pro: Pro) -> None:
    ins, pid = factory.open_record(pro.headers)
    body = json.dumps(patient_resource(random_nir())).encode()
    for ctype in (
        "text/plain",
        "application/xml",
        "application/fhir+xml",
        "multipart/form-data",
        "",
    ):
        issue = outcome(_post(http, "/fhir/Patient", pro.headers, body, ctype), 415)
        assert issue["code"] == "not-supported"
    outcome(
        _post(http, "/fhir", pro.headers, json.dumps(bundle(ins, [])).encode(), "text/plain"), 415
    )
    outcome(
        _post(
            http,
            "/fhir/DocumentReference",
            pro.headers,
            json.dumps(docref(ins)).encode(),
            "text/plain",
        ),
        415,
    )
    r = http.put(
        f"/fhir/Patient/{pid}", content=body, headers={**pro.headers, "Content-Type": "text/plain"}
    )
    outcome(r, 415)
    # JSON with parameters is fine
    ok = _post(http, "/fhir/Patient", pro.headers, body, "application/fhir+json; charset=utf-8")
    assert ok.status_code == 201, ok.text
    ok = _post(
        http,
        "/fhir/Patient",
        pro.headers,
        json.dumps(patient_resource(random_nir())).encode(),
        "application/json",
    )
    assert ok.status_code == 201
    # an Accept the server cannot answer
    outcome(
        http.get(
            "/fhir/Patient",
            params={"_id": pid},
            headers={**pro.headers, "Accept": "application/fhir+xml"},
        ),
        406,
    )
    outcome(
        http.get("/fhir/Patient", params={"_id": pid, "_format": "xml"}, headers=pro.headers), 406
    )
    assert (
        http.get(
            "/fhir/Patient", params={"_id": pid, "_format": "json"}, headers=pro.headers
        ).status_code
        == 200
    )


# -- 422 -------------------------------------------------------------------------------------------


def test_422_business_rules(http: httpx.Client, factory: Factory, pro: Pro) -> None:
    ins, _pid = factory.open_record(pro.headers)
    h = {**pro.headers, **FHIR_JSON}
    c = pdf_bytes()
    # every required metadata is named
    dr = docref(ins, content=c, inline=True)
    for key in ("type", "category", "securityLabel"):
        dr.pop(key)
    issue = outcome(http.post("/fhir/DocumentReference", json=dr, headers=h), 422)
    for name in ("type", "category", "securityLabel"):
        assert name in issue["diagnostics"]
    assert issue["code"] == "business-rule"
    # unknown confidentiality code
    dr = docref(ins, content=c, inline=True, labels=["SECRET"])
    outcome(http.post("/fhir/DocumentReference", json=dr, headers=h), 422)
    # period end before start
    dr = docref(ins, content=c, inline=True)
    dr["context"]["period"]["end"] = "2000-01-01T00:00:00Z"
    outcome(http.post("/fhir/DocumentReference", json=dr, headers=h), 422)
    # a subject that is no INS
    dr = docref(ins, content=c, inline=True)
    dr["subject"] = {"reference": "Patient?identifier=urn:oid:1.2.250.1.213.1.4.13|" + ins}
    issue = outcome(http.post("/fhir/DocumentReference", json=dr, headers=h), 422)
    assert "subject" in issue["expression"][0]
    # two contents
    dr = docref(ins, content=c, inline=True)
    dr["content"].append(dr["content"][0])
    outcome(http.post("/fhir/DocumentReference", json=dr, headers=h), 422)
    # a record whose INS is not qualified cannot be opened
    outcome(
        http.post("/fhir/Patient", json=patient_resource(random_nir(), status="PROV"), headers=h),
        422,
    )
    # PUT DocumentReference changing more than status and labels
    [did] = created_doc_ids(
        factory.publish(
            ins, [(docref(ins, content=c, author_rpps=pro.rpps), c, "application/pdf")], pro.headers
        )
    )
    doc = http.get(f"/fhir/DocumentReference/{did}", headers=pro.headers).json()
    doc["type"]["coding"][0]["code"] = "11502-2"
    issue = outcome(http.put(f"/fhir/DocumentReference/{did}", json=doc, headers=h), 422)
    assert issue["expression"] == ["DocumentReference.type"]


# -- never a 500 -----------------------------------------------------------------------------------


def test_odd_requests_are_never_server_errors(
    http: httpx.Client, factory: Factory, pro: Pro
) -> None:
    ins, pid = factory.open_record(pro.headers)
    h = pro.headers
    odd: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/fhir/DocumentReference", {"params": {"date": "2025-13-45"}}),
        ("GET", "/fhir/DocumentReference", {"params": {"date": "2025-01-01T25:00:00Z"}}),
        ("GET", "/fhir/DocumentReference", {"params": {"date": "9999-12-31"}}),
        ("GET", "/fhir/DocumentReference", {"params": {"date": "0001-01-01"}}),
        ("GET", "/fhir/DocumentReference", {"params": {"period": "lt0001"}}),
        ("GET", "/fhir/DocumentReference", {"params": {"_count": "99999999999999999999"}}),
        ("GET", "/fhir/DocumentReference", {"params": {"_count": "abc"}}),
        ("GET", "/fhir/DocumentReference", {"params": {"_cursor": "MjAyNS0wMS0wMXxhYmM"}}),
        ("GET", "/fhir/DocumentReference", {"params": {"_cursor": "bm90IGEgZGF0ZXxhYmM"}}),
        ("GET", "/fhir/DocumentReference", {"params": {"patient": "Patient/"}}),
        ("GET", "/fhir/DocumentReference", {"params": {"patient": ","}}),
        ("GET", "/fhir/DocumentReference", {"params": {"identifier": "|"}}),
        ("GET", "/fhir/DocumentReference", {"params": {"patient.identifier": "x" * 5000}}),
        ("GET", "/fhir/DocumentReference", {"params": {"security-label": "%"}}),
        ("GET", "/fhir/Patient", {"params": {"family": "%_%"}}),
        ("GET", "/fhir/Patient", {"params": {"family": ""}}),
        ("GET", "/fhir/Patient", {"params": {"identifier": "|"}}),
        ("GET", "/fhir/Patient", {"params": {"birthdate": "ap1980"}}),
        ("GET", "/fhir/Patient", {"params": {"_count": "-5"}}),
        ("GET", "/fhir/List", {"params": {"date": "x"}}),
        ("GET", "/fhir/List", {"params": {"_cursor": "%%%"}}),
        ("GET", f"/fhir/Patient/{pid}/_history/99999999999999999999999", {}),
        ("GET", f"/fhir/Patient/{pid}/_history/-1", {}),
        ("GET", f"/fhir/Patient/{pid}/_history/%C2%B2", {}),
        ("GET", f"/fhir/DocumentReference/{pid}-x/_history/%C2%B2", {}),
        ("GET", "/fhir/DocumentReference", {"params": {"_count": "\u00b2"}}),
        ("GET", "/fhir/List", {"params": {"_count": "\u0663"}}),
        (
            "PUT",
            f"/fhir/Patient/{pid}",
            {"json": {"resourceType": "Patient"}, "headers": {"If-Match": b'W/"\xb2"'}},
        ),
        ("GET", "/fhir/Binary/x", {"headers": {"Range": "bytes=abc"}}),
        ("GET", "/fhir/Binary/x", {"headers": {"Range": "lines=1-2"}}),
        ("POST", "/fhir/Patient", {"content": b'{"resourceType": "Patient", "identifier": "x"}'}),
        (
            "POST",
            "/fhir/Patient",
            {"content": b'{"resourceType": "Patient", "identifier": [{"system": 1}]}'},
        ),
        (
            "POST",
            "/fhir/Patient",
            {
                "content": b'{"resourceType": "Patient", "extension": [{"url": "https://carnet.health/fhir/StructureDefinition/dmp-creation-objection", "valueBoolean": true}]}'
            },
        ),
        ("POST", "/fhir/Patient", {"content": b'{"resourceType": "Patient", "extension": "x"}'}),
        (
            "POST",
            "/fhir/Patient",
            {"content": b'{"resourceType": "Patient", "name": [{"family": "X"}]}'},
        ),
        ("POST", "/fhir/Patient", {"content": b'{"resourceType": 5}'}),
        (
            "POST",
            "/fhir/Patient",
            {"content": b'{"resourceType": "Patient", "birthDate": "1980-02-30"}'},
        ),
        (
            "POST",
            "/fhir",
            {"content": b'{"resourceType": "Bundle", "type": "transaction", "entry": [1, 2]}'},
        ),
        (
            "POST",
            "/fhir",
            {"content": b'{"resourceType": "Bundle", "type": "transaction", "entry": [{}]}'},
        ),
        (
            "POST",
            "/fhir",
            {
                "content": b'{"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": {"resourceType": "List"}}]}'
            },
        ),
        (
            "POST",
            "/fhir/DocumentReference",
            {
                "content": b'{"resourceType": "DocumentReference", "status": "current", "content": []}'
            },
        ),
        (
            "POST",
            "/fhir/DocumentReference",
            {
                "content": b'{"resourceType": "DocumentReference", "status": "current", "content": [{"attachment": {}}], "subject": {"reference": "Patient?identifier=x"}}'
            },
        ),
        (
            "POST",
            "/fhir/DocumentReference",
            {
                "content": b'{"resourceType": "DocumentReference", "status": "current", "content": [{"attachment": {"data": "!!"}}], "subject": {"reference": "Patient/'
                + pid.encode()
                + b'"}}'
            },
        ),
        (
            "PUT",
            f"/fhir/DocumentReference/{pid}-x",
            {
                "content": b'{"resourceType": "DocumentReference", "status": "current", "content": [{"attachment": {}}]}'
            },
        ),
        ("PUT", f"/fhir/Patient/{pid}", {"content": b'{"resourceType": "Patient"}'}),
    ]
    # NUL characters (PostgreSQL text cannot hold them): anywhere a client can put them
    nul_patient = patient_resource(random_nir(), family="DU\u0000PONT")
    nul_doc = docref(ins, content=b"x", inline=True)
    nul_doc["masterIdentifier"]["value"] = "urn:oid:1.2.3\u0000"
    odd += [
        ("GET", "/fhir/Patient/%00", {}),
        ("GET", "/fhir/Patient", {"params": {"family": "\u0000"}}),
        ("GET", "/fhir/Patient", {"params": {"identifier": "a\u0000|b"}}),
        ("GET", "/fhir/Patient", {"params": {"_id": "\u0000"}}),
        ("GET", "/fhir/DocumentReference", {"params": {"patient": "\u0000"}}),
        ("GET", "/fhir/DocumentReference", {"params": {"identifier": "a\u0000b"}}),
        ("GET", "/fhir/DocumentReference", {"params": {"_id": "a\u0000b"}}),
        ("GET", "/fhir/List", {"params": {"patient": "\u0000"}}),
        ("GET", "/fhir/List/%00", {}),
        ("GET", "/fhir/Binary/%00", {}),
        ("GET", "/fhir/DocumentReference/%00/_history", {}),
        ("POST", "/fhir/Patient", {"json": nul_patient}),
        ("POST", "/fhir/DocumentReference", {"json": nul_doc}),
        (
            "POST",
            "/fhir/DocumentReference",
            {
                "json": docref(ins, content=b"y", inline=True),
                "headers": {"If-None-Exist": "identifier=%00"},
            },
        ),
        (
            "POST",
            "/fhir/Binary",
            {
                "content": b"x",
                "headers": {"Content-Type": "application/pdf", "X-Security-Context": "Patient/%00"},
            },
        ),
    ]
    deep = b'{"resourceType": "Patient", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    odd += [
        ("POST", "/fhir/Patient", {"content": deep}),
        ("POST", "/fhir", {"content": deep.replace(b"Patient", b"Bundle")}),
        ("GET", f"/fhir/Binary/{pid}-x", {"headers": {"Range": "bytes=99999999999999999999-"}}),
        (
            "POST",
            "/fhir/DocumentReference",
            {
                "json": docref(ins, content=b"z", inline=True),
                "headers": {"If-None-Exist": "identifier=|"},
            },
        ),
    ]
    for method, url, kw in odd:
        headers = {**h, **FHIR_JSON, **kw.pop("headers", {})}
        r = http.request(method, url, headers=headers, **kw)
        assert r.status_code < 500, (method, url, kw, r.status_code, r.text[:300])
        if r.status_code >= 400:
            outcome(r, r.status_code)
    # subject reference to a Patient id that does not exist, and to a closed record
    dr = docref(ins, content=(c := pdf_bytes()), inline=True)
    dr["subject"] = {"reference": "Patient/doesnotexist"}
    outcome(http.post("/fhir/DocumentReference", json=dr, headers={**h, **FHIR_JSON}), 404)
    dr["subject"] = {"reference": f"Patient/{pid}"}
    assert (
        http.post("/fhir/DocumentReference", json=dr, headers={**h, **FHIR_JSON}).status_code == 201
    )
    assert c
