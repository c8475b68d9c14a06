"""No URL carnet stores or serves follows a request's ``Host`` or ``X-Forwarded-*`` headers.

An absolute URL built from them would let whoever sends one request choose where every later
reader's client sends its bearer token (``attachment.url``, ``Location``, bundle links). carnet
builds absolute URLs from configuration only (``CARNET_BASE_URL``, else the address it listens
on): these tests send forged headers on every kind of request and look for the forged host in
every answer, then read everything back with honest headers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Server, running_server
from tests.factories import (
    FHIR_JSON,
    Factory,
    bundle,
    docref,
    patient_resource,
    pdf_bytes,
    random_nir,
)

EVIL = "evil.example"
FORGED = {
    "Host": f"{EVIL}:8443",
    "X-Forwarded-Host": f"{EVIL}:8443",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Port": "8443",
    "X-Forwarded-Prefix": "/steal",
    "X-Forwarded-For": "203.0.113.7",
    "Forwarded": f"for=203.0.113.7;host={EVIL}:8443;proto=https",
}


def _clean(r: httpx.Response) -> None:
    """Neither the headers nor the body of an answer name the forged host."""
    assert r.status_code < 500, r.text
    for name, value in r.headers.items():
        assert EVIL not in value and "/steal" not in value, (name, value)
    assert EVIL not in r.text and "/steal" not in r.text, r.text[:500]


def _forged_round(http: httpx.Client, factory: Factory, base: str) -> None:
    pro = factory.professional()
    forged = {**pro, **FORGED}
    ins = random_nir()
    r = http.post(
        "/fhir/Patient",
        json=patient_resource(ins),
        headers={**forged, **FHIR_JSON},
    )
    _clean(r)
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    assert r.headers["location"].startswith(f"{base}/fhir/Patient/")

    # ITI-65 with forged headers: the stored document must not remember them
    r = http.post(
        "/fhir",
        json=bundle(ins, [(docref(ins), pdf_bytes(b"forged"), "application/pdf")]),
        headers={**forged, **FHIR_JSON},
    )
    _clean(r)
    assert r.status_code == 200, r.text
    locations = [
        e["response"]["location"] for e in r.json()["entry"] if e["response"].get("location")
    ]
    assert locations and all(loc.startswith(f"{base}/fhir/") for loc in locations), locations

    # ITI-105 and a Binary upload with forged headers
    r = http.post(
        "/fhir/Binary",
        content=pdf_bytes(b"bin"),
        headers={**forged, "Content-Type": "application/pdf"},
    )
    _clean(r)

    # every read and search, with forged headers
    search = http.get(f"/fhir/DocumentReference?patient={pid}&_count=1", headers=forged)
    _clean(search)
    body = search.json()
    assert body["entry"], body
    doc = body["entry"][0]["resource"]
    assert doc["content"][0]["attachment"]["url"].startswith(f"{base}/fhir/Binary/")
    for link in body["link"]:
        assert link["url"].startswith(f"{base}/fhir/"), link
    for path in (
        f"/fhir/DocumentReference/{doc['id']}",
        f"/fhir/DocumentReference/{doc['id']}/_history",
        f"/fhir/List?patient={pid}",
        f"/fhir/Patient/{pid}",
        f"/fhir/Patient?identifier=urn:oid:1.2.250.1.213.1.4.10|{ins}",
        f"/fhir/Patient/{pid}/$everything",
        f"/fhir/AuditEvent?patient={pid}",
        f"/fhir/Consent?patient={pid}",
        "/fhir/metadata",
        "/fhir/DocumentReference/no-such-doc",
    ):
        _clean(http.get(path, headers=forged))
    binary = doc["content"][0]["attachment"]["url"].rsplit("/", 1)[1]
    _clean(http.get(f"/fhir/Binary/{binary}", headers=forged))

    # read back honestly: what was stored names no forged host either
    honest = http.get(f"/fhir/DocumentReference/{doc['id']}", headers=pro)
    _clean(honest)
    assert honest.json()["content"][0]["attachment"]["url"] == f"{base}/fhir/Binary/{binary}"
    assert http.get(f"/fhir/Binary/{binary}", headers=pro).status_code == 200


def test_no_url_follows_forged_headers(
    http: httpx.Client, factory: Factory, server: Server
) -> None:
    """``CARNET_BASE_URL`` unset: the URLs name the address the server listens on."""
    assert server.settings.base_url is None
    _forged_round(http, factory, server.url)


@pytest.fixture(scope="module")
def configured(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(
        backend, Path(tmp_path_factory.mktemp("carnet-base")), base_url="https://dmp.example.fr/"
    ) as srv:
        yield srv


def test_urls_follow_the_configured_base(configured: Server) -> None:
    with httpx.Client(base_url=configured.url, timeout=60) as client:
        _forged_round(client, Factory(client), "https://dmp.example.fr")
