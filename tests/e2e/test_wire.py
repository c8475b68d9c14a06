"""On the wire, from an attacker's side (issue 7, "At rest and on the wire"): malformed cursors
and identifiers answer 4xx, content is served so that a browser runs none of it, only the
configured media types are accepted, a PUT that changes nothing answers the stored resource,
``security-label`` takes no LIKE wildcard, the API description is served only where meant."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import Server, running_server
from tests.e2e.conftest import Pro
from tests.factories import (
    FHIR_JSON,
    Factory,
    created_doc_ids,
    docref,
    label_codes,
    outcome,
    pdf_bytes,
    related_person_resource,
    search_ids,
    security_labels,
)


def _cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


BAD_CURSORS = [
    _cursor("2026-06-12T10:00:00+02:00|x-1"),  # a time zone: compared with naive dates, a 500
    _cursor("2026-06-12T10:00:00Z|x-1"),
    _cursor("2026-06-12T10:00:00-05:30|x-1"),
    _cursor("2026-06-12|"),
    _cursor("not a date|x"),
    _cursor("2026-06-12T10:00:00"),
    _cursor("|"),
    _cursor("2026-06-12T10:00:00|\x00"),
    "%%%",
    "",
    "a",
    base64.urlsafe_b64encode(b"\xff\xfe|x").decode(),
]


@pytest.mark.parametrize("resource", ["DocumentReference", "List"])
def test_malformed_cursors_are_client_errors(
    http: httpx.Client, factory: Factory, pro: Pro, resource: str
) -> None:
    _ins, pid = factory.open_record(pro.headers)
    for cursor in BAD_CURSORS:
        r = http.get(
            f"/fhir/{resource}", params={"patient": pid, "_cursor": cursor}, headers=pro.headers
        )
        if cursor == "":
            assert r.status_code in (200, 400), r.text
            continue
        issue = outcome(r, 400)
        assert issue["expression"] == ["_cursor"], (cursor, issue)
    # a cursor the server issued still works
    good = _cursor(f"{datetime(2030, 1, 1).isoformat()}|{pid}-zzz")
    r = http.get(f"/fhir/{resource}", params={"patient": pid, "_cursor": good}, headers=pro.headers)
    assert r.status_code == 200, r.text


BAD_IDENTIFIERS: list[object] = [
    ["x"],
    [None],
    [1, 2],
    [[]],
    [{"system": ["urn:oid:1.2.250.1.213.1.4.10"], "value": "x"}],
    [{"system": "urn:oid:1.2.250.1.213.1.4.10", "value": {"a": 1}}],
    [{"system": "urn:oid:1.2.250.1.213.1.4.10"}],
    {"system": "urn:oid:1.2.250.1.213.1.4.10", "value": "x"},
    "x",
    None,
    [],
]


def test_related_person_identifier_shapes_are_client_errors(
    http: httpx.Client, factory: Factory, pro: Pro
) -> None:
    ins, pid = factory.open_record(pro.headers)
    patient = factory.patient(ins)
    base = related_person_resource(pid, "100000000000000")
    for ident in BAD_IDENTIFIERS:
        r = http.post(
            "/fhir/RelatedPerson",
            json={**base, "identifier": ident},
            headers={**patient, **FHIR_JSON},
        )
        assert 400 <= r.status_code < 500, (ident, r.status_code, r.text)
        assert r.json()["resourceType"] == "OperationOutcome"
    for relationship in (5, "x", [5], [{"coding": 5}], [{"coding": [{"code": ["GUARD"]}]}]):
        r = http.post(
            "/fhir/RelatedPerson",
            json={**base, "relationship": relationship},
            headers={**patient, **FHIR_JSON},
        )
        assert 400 <= r.status_code < 500, (relationship, r.status_code, r.text)
    for ref in ({"reference": "Patient/"}, {"reference": 5}, "Patient/x", None):
        r = http.post(
            "/fhir/RelatedPerson", json={**base, "patient": ref}, headers={**patient, **FHIR_JSON}
        )
        assert 400 <= r.status_code < 500, (ref, r.status_code, r.text)


def _upload(http: httpx.Client, pro: Pro, pid: str, body: bytes, media: str) -> httpx.Response:
    return http.post(
        "/fhir/Binary",
        content=body,
        headers={**pro.headers, "Content-Type": media, "X-Security-Context": f"Patient/{pid}"},
    )


ACTIVE = [
    ("text/html", b"<html><script>alert(document.cookie)</script></html>"),
    ("image/svg+xml", b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>'),
    ("application/javascript", b"alert(1)"),
    ("application/xhtml+xml", b'<html xmlns="http://www.w3.org/1999/xhtml"><script/></html>'),
    ("text/html; charset=utf-8", b"<script>alert(1)</script>"),
    ("application/octet-stream", b"\x00\x01"),
]


def test_active_media_types_are_refused(http: httpx.Client, factory: Factory, pro: Pro) -> None:
    ins, pid = factory.open_record(pro.headers)
    for media, body in ACTIVE:
        issue = outcome(_upload(http, pro, pid, body, media), 422)
        assert "not accepted" in issue["diagnostics"], issue
        # ITI-105 inline and ITI-65 alike
        r105 = http.post(
            "/fhir/DocumentReference",
            json=docref(ins, content=body, inline=True, content_type=media, author_rpps=pro.rpps),
            headers={**pro.headers, **FHIR_JSON},
        )
        assert r105.status_code in (400, 422), (media, r105.text)
        r65 = factory.publish(
            ins, [(docref(ins, content=body, content_type=media), body, media)], pro.headers
        )
        assert r65.status_code in (400, 422), (media, r65.text)
    # what is allowed still is
    assert _upload(http, pro, pid, pdf_bytes(), "application/pdf").status_code == 201


def test_content_is_served_sandboxed(http: httpx.Client, factory: Factory, pro: Pro) -> None:
    ins, pid = factory.open_record(pro.headers)
    served = {}
    for media, body in [
        ("application/pdf", pdf_bytes()),
        ("text/plain", b"Compte rendu"),
        ("text/xml", b"<?xml-stylesheet href='x.xsl'?><ClinicalDocument/>"),
    ]:
        up = _upload(http, pro, pid, body, media)
        assert up.status_code == 201, up.text
        bid = up.headers["location"].rsplit("/Binary/", 1)[1]
        dr = docref(ins, binary_url=f"Binary/{bid}", author_rpps=pro.rpps, content_type=media)
        r = http.post("/fhir/DocumentReference", json=dr, headers={**pro.headers, **FHIR_JSON})
        assert r.status_code == 201, r.text
        url = r.json()["content"][0]["attachment"]["url"]
        served[media] = (url.rsplit("/Binary/", 1)[1], bid)
    for media, (doc_id, bid) in served.items():
        for target in {doc_id, bid}:
            for extra in ({}, {"Range": "bytes=0-3"}):
                r = http.get(f"/fhir/Binary/{target}", headers={**pro.headers, **extra})
                assert r.status_code in (200, 206), r.text
                assert r.headers["x-content-type-options"] == "nosniff"
                csp = r.headers["content-security-policy"]
                assert "sandbox" in csp and "default-src 'none'" in csp
                disposition = r.headers["content-disposition"]
                expected = "attachment" if media == "text/xml" else "inline"
                assert disposition.startswith(expected), (media, disposition)
        r = http.get(f"/fhir/Binary/{doc_id}?_format=json", headers=pro.headers)
        assert r.headers["x-content-type-options"] == "nosniff"


def test_put_changing_nothing_answers_the_stored_resource(
    http: httpx.Client, factory: Factory, pro: Pro
) -> None:
    ins, _pid = factory.open_record(pro.headers)
    content = pdf_bytes()
    [did] = created_doc_ids(
        factory.publish(
            ins,
            [(docref(ins, content=content, author_rpps=pro.rpps), content, "application/pdf")],
            pro.headers,
        )
    )
    stored = http.get(f"/fhir/DocumentReference/{did}", headers=pro.headers)
    assert stored.status_code == 200
    r = http.put(
        f"/fhir/DocumentReference/{did}", json=stored.json(), headers={**pro.headers, **FHIR_JSON}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["resourceType"] == "DocumentReference" and body["id"] == did
    assert body == stored.json()
    assert r.headers["etag"] == stored.headers["etag"]
    # the patient's no-op, with If-Match, and after a real change (version 2)
    patient = factory.patient(ins)
    mine = http.get(f"/fhir/DocumentReference/{did}", headers=patient)
    r = http.put(
        f"/fhir/DocumentReference/{did}",
        json=mine.json(),
        headers={**patient, **FHIR_JSON, "If-Match": mine.headers["etag"]},
    )
    assert r.status_code == 200, r.text
    assert r.json() == mine.json()
    masked = {**mine.json()}
    masked["securityLabel"] = security_labels([*sorted(label_codes(masked)), "MASQUE_PS"])
    r = http.put(f"/fhir/DocumentReference/{did}", json=masked, headers={**patient, **FHIR_JSON})
    assert r.status_code == 200, r.text
    again = http.put(
        f"/fhir/DocumentReference/{did}", json=r.json(), headers={**patient, **FHIR_JSON}
    )
    assert again.status_code == 200, again.text
    assert again.json() == r.json()
    assert again.json()["meta"]["versionId"] == "2"


def test_security_label_takes_no_wildcard(http: httpx.Client, factory: Factory, pro: Pro) -> None:
    ins, pid = factory.open_record(pro.headers)
    content = pdf_bytes()
    [did] = created_doc_ids(
        factory.publish(
            ins,
            [(docref(ins, content=content, author_rpps=pro.rpps), content, "application/pdf")],
            pro.headers,
        )
    )

    def found(label: str) -> list[str]:
        r = http.get(
            "/fhir/DocumentReference",
            params={"patient": pid, "security-label": label},
            headers=pro.headers,
        )
        assert r.status_code in (200, 400), r.text
        return search_ids(r.json()) if r.status_code == 200 else []

    assert found("N") == [did]
    for wildcard in ("%", "_", "%N%", "N%", "_%", "\\", "N R", "N%R"):
        assert found(wildcard) == [], wildcard


@pytest.fixture(scope="module", params=[False, True])
def prod_server(
    request: pytest.FixtureRequest, backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, bool]]:
    """A server without the development issuer: API docs off by default, on when configured."""
    with running_server(
        "sqlite",
        tmp_path_factory.mktemp("carnet-prod"),
        dev_issuer=False,
        api_docs=True if request.param else None,
    ) as srv:
        yield srv, bool(request.param)


def test_api_docs_follow_the_setting(prod_server: tuple[Server, bool], server: Server) -> None:
    srv, configured = prod_server
    with httpx.Client(base_url=srv.url) as client:
        for path in ("/docs", "/openapi.json"):
            assert client.get(path).status_code == (200 if configured else 404), path
        assert client.get("/healthz").status_code == 200
    with httpx.Client(base_url=server.url) as client:  # the development server shows them
        assert client.get("/openapi.json").status_code == 200


# -- a 40 MB CDA of empty elements ------------------------------------------------------------

FILLER_MB = 40


def _cda(header_filler: bytes, body_filler: bytes) -> bytes:
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<ClinicalDocument xmlns="urn:hl7-org:v3">'
        b'<id root="1.2.250.1.999" extension="big"/><code code="11488-4" '
        b'codeSystem="2.16.840.1.113883.6.1"/><title>Gros</title>'
        + header_filler
        + b'<component><nonXMLBody><text mediaType="text/plain" representation="TXT">'
        + body_filler
        + b"</text></nonXMLBody></component></ClinicalDocument>"
    )


def _rss() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _while_posting(http: httpx.Client, post: Any) -> tuple[httpx.Response, int, float]:
    """Run ``post`` in a thread; meanwhile sample this process's RSS (the server runs in it)
    and time other requests. (response, peak RSS growth, slowest other request)."""
    import threading
    import time

    base = _rss()
    peak = base
    slowest = 0.0
    done = threading.Event()
    out: list[httpx.Response] = []

    def run() -> None:
        try:
            out.append(post())
        finally:
            done.set()

    worker = threading.Thread(target=run)
    worker.start()
    with httpx.Client(base_url=str(http.base_url), timeout=60) as other:
        while not done.is_set():
            peak = max(peak, _rss())
            started = time.monotonic()
            assert other.get("/healthz").status_code == 200
            slowest = max(slowest, time.monotonic() - started)
            time.sleep(0.02)
    worker.join()
    return out[0], peak - base, slowest


@pytest.mark.parametrize("where", ["body", "header"])
def test_a_40mb_cda_of_empty_elements_is_read_bounded_and_off_the_loop(
    http: httpx.Client, factory: Factory, pro: Pro, where: str
) -> None:
    ins, _pid = factory.open_record(pro.headers)
    filler = b"<x/>" * (FILLER_MB * 1024 * 1024 // 4)
    data = _cda(filler, b"") if where == "header" else _cda(b"", filler)
    assert len(data) >= FILLER_MB * 1024 * 1024
    resource = docref(ins, content=data, inline=True, content_type="text/xml", author_rpps=pro.rpps)
    if where == "header":
        del resource["content"][0]["attachment"]["title"]  # to be read from the header
    body = orjson.dumps(resource)
    del filler, data, resource

    def post() -> httpx.Response:
        return http.post(
            "/fhir/DocumentReference", content=body, headers={**pro.headers, **FHIR_JSON}
        )

    r, grew, slowest = _while_posting(http, post)
    if where == "header":
        # the header is needed and too large to read: a clear refusal
        issue = outcome(r, 422)
        assert "too large" in issue["diagnostics"], issue
    else:
        # the body is never parsed: the document is stored as any other
        assert r.status_code == 201, r.text[:500]
    print(f"{where}: RSS +{grew / 2**20:.0f} MiB, slowest other request {slowest:.3f} s")
    # before: the whole tree built (1.5 GB for 40 MB), on the event loop (8.6 s waits)
    assert grew < 700 * 1024 * 1024, f"RSS grew by {grew / 2**20:.0f} MiB"
    assert slowest < 3.0, f"another request waited {slowest:.2f} s"


# -- a method a path does not take ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/fhir/DocumentReference", "GET, POST, PUT, PATCH"),
        ("PATCH", "/fhir/Patient/abc", "GET, PUT, DELETE"),
        ("GET", "/fhir", "POST"),
        ("PUT", "/fhir/Binary/abc", "GET"),
    ],
)
def test_a_wrong_method_answers_405_with_allow(
    http: httpx.Client, method: str, path: str, allowed: str
) -> None:
    """RFC 9110 §15.5.6: every method of the path, where Starlette named only one route's."""
    r = http.request(method, path, headers={"Content-Type": "application/fhir+json"})
    issue = outcome(r, 405)
    assert r.headers["allow"] == allowed
    assert method in issue["diagnostics"]


# -- what schemathesis found (bench/schemathesis_long.py) -----------------------------------------

FHIR_STRING = re.compile(r"^[ \r\n\t\S]+$")


@pytest.mark.parametrize("path", ["/fhir/DocumentReference", "/fhir/RelatedPerson"])
def test_an_echoed_parameter_name_stays_a_fhir_string(
    http: httpx.Client, factory: Factory, path: str
) -> None:
    """An unknown parameter named with a vertical tab: the OperationOutcome names it, escaped,
    and stays valid FHIR (a string holds no whitespace but space, tab, CR and LF): refused under
    ``Prefer: handling=strict``, and named in the warning of a lenient search."""
    pro = factory.professional()
    r = http.get(f"{path}?V%0B%C2%85=1", headers={**pro, "Prefer": "handling=strict"})
    issue = outcome(r, 400)
    assert FHIR_STRING.match(issue["diagnostics"]), issue
    assert issue["expression"] == ["V\\u000b\\u0085"]
    if path == "/fhir/DocumentReference":
        r = http.get(f"{path}?V%0B%C2%85=1", headers=pro)
        assert r.status_code == 200, r.text
        [warning] = [
            e["resource"]
            for e in r.json().get("entry", [])
            if e.get("search", {}).get("mode") == "outcome"
        ]
        for one in warning["issue"]:
            assert FHIR_STRING.match(one["diagnostics"]), one
            for expression in one.get("expression", []):
                assert FHIR_STRING.match(expression) and "\x0b" not in expression, one


def test_an_empty_patient_id_is_refused_like_any_empty_token(
    http: httpx.Client, factory: Factory
) -> None:
    issue = outcome(http.get("/fhir/Patient?_id=", headers=factory.professional()), 400)
    assert issue["expression"] == ["_id"]
