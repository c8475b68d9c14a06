"""The wire as FHIR R4 clients meet it (http.html#mime, #binary): JSON only, and a clear 406
for a client that accepts no JSON; ``Last-Modified`` an HTTP date; ``GET Binary/{id}`` as the
Binary resource or the raw content by ``_format`` and Accept (q-values honoured);
base64Binary with MIME line breaks; Consents (and the DocumentReference) that validate as R4
(fhir.resources, R4B models, which R4 resources validate against for these types)."""

from __future__ import annotations

import base64
import json
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.consent import Consent
from fhir.resources.R4B.documentreference import DocumentReference

from tests.factories import (
    FHIR_JSON,
    Factory,
    Person,
    Rules,
    bundle,
    created_doc_ids,
    docref,
    outcome,
    pdf_bytes,
)


@pytest.fixture()
def rules(http: httpx.Client, factory: Factory) -> Rules:
    return Rules(http, factory)


class Doc:
    def __init__(self, rules: Rules) -> None:
        self.author = rules.pro()
        self.stranger = rules.pro()
        self.ins, self.pid, self.patient = rules.record(self.author)
        self.content = pdf_bytes()
        self.id = rules.doc(self.ins, self.author, content=self.content)
        self.missing = f"{self.pid}-{'0' * 20}"


@pytest.fixture()
def doc(rules: Rules) -> Doc:
    return Doc(rules)


def _get(http: httpx.Client, url: str, who: Person, **kw: Any) -> httpx.Response:
    headers = {**who.headers, **kw.pop("headers", {})}
    return http.get(url, headers=headers, **kw)


# -- 406: no JSON accepted -----------------------------------------------------------------------


def test_xml_is_refused_with_406_everywhere(http: httpx.Client, doc: Doc) -> None:
    a = doc.author
    urls = [
        "/fhir/metadata",
        f"/fhir/Patient/{doc.pid}",
        f"/fhir/DocumentReference/{doc.id}",
        f"/fhir/DocumentReference?patient={doc.pid}",
        f"/fhir/Binary/{doc.id}",
    ]
    for url in urls:
        for kw in (
            {"params": {"_format": "xml"}},
            {"params": {"_format": "application/fhir+xml"}},
            {"params": {"_format": "ttl"}},
            {"headers": {"Accept": "application/fhir+xml"}},
            {"headers": {"Accept": "application/xml+fhir;q=0.9, application/fhir+xml"}},
        ):
            r = _get(http, url, a, **kw)
            issue = outcome(r, 406)
            assert issue["code"] == "not-supported"
            assert "JSON" in issue["diagnostics"], (url, kw, issue)
    # resources: JSON refused by its q-value, or not named at all
    for url in urls[:4]:
        for accept in ("application/fhir+json;q=0", "text/html", "application/xml"):
            outcome(_get(http, url, a, headers={"Accept": accept}), 406)
    # JSON acceptable, even less preferred: JSON
    for url in urls[:4]:
        for kw in (
            {"headers": {"Accept": "application/fhir+xml, application/fhir+json;q=0.1"}},
            {"headers": {"Accept": "application/json"}},
            {"headers": {"Accept": "*/*"}},
            {"headers": {"Accept": "application/fhir+json; fhirVersion=4.0"}},
            {"params": {"_format": "json"}, "headers": {"Accept": "application/fhir+xml"}},
            {"params": {"_format": "application/fhir+json"}},
        ):
            r = _get(http, url, a, **kw)
            assert r.status_code == 200, (url, kw, r.text[:300])
            assert r.headers["content-type"].startswith("application/fhir+json")
    # a write whose answer cannot be JSON: refused before anything is stored
    content = pdf_bytes()
    dr = docref(doc.ins, author_rpps=a.rpps or "", content=content)
    r = http.post(
        "/fhir",
        json=bundle(doc.ins, [(dr, content, "application/pdf")]),
        headers={**a.headers, **FHIR_JSON, "Accept": "application/fhir+xml"},
    )
    outcome(r, 406)
    r = http.post(
        "/fhir/Binary",
        params={"_format": "xml"},
        content=pdf_bytes(),
        headers={
            **a.headers,
            "Content-Type": "application/pdf",
            "X-Security-Context": f"Patient/{doc.pid}",
        },
    )
    outcome(r, 406)
    search = _get(http, "/fhir/DocumentReference", a, params={"patient": doc.pid}).json()
    assert search["total"] == 1


def test_406_on_binary_tells_nothing_of_the_document(http: httpx.Client, doc: Doc) -> None:
    xml = {"Accept": "application/fhir+xml"}
    seen = _get(http, f"/fhir/Binary/{doc.id}", doc.author, headers=xml)
    refused = _get(http, f"/fhir/Binary/{doc.id}", doc.stranger, headers=xml)
    missing = _get(http, f"/fhir/Binary/{doc.missing}", doc.stranger, headers=xml)
    assert seen.status_code == refused.status_code == missing.status_code == 406
    assert seen.json() == refused.json() == missing.json()


# -- Last-Modified ------------------------------------------------------------------------------


def test_last_modified_is_an_http_date(http: httpx.Client, rules: Rules, doc: Doc) -> None:
    def check(r: httpx.Response, resource: dict[str, Any]) -> None:
        assert r.status_code == 200, r.text
        value = r.headers["last-modified"]
        # IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
        assert len(value) == 29 and value.endswith(" GMT") and value[3:5] == ", ", value
        when = parsedate_to_datetime(value)
        assert when.isoformat()[:19] == resource["meta"]["lastUpdated"][:19]

    r = _get(http, f"/fhir/DocumentReference/{doc.id}", doc.author)
    check(r, r.json())
    r = _get(http, f"/fhir/DocumentReference/{doc.id}/_history/1", doc.author)
    check(r, r.json())
    r = _get(http, f"/fhir/Patient/{doc.pid}", doc.author)
    check(r, r.json())
    r = rules.relabel(doc.patient, rules.read(doc.patient, doc.id).json(), ["N", "MASQUE_PS"])
    check(r, r.json())
    r = http.patch(
        f"/fhir/DocumentReference/{doc.id}",
        content=json.dumps([{"op": "replace", "path": "/status", "value": "entered-in-error"}]),
        headers={**doc.author.headers, "Content-Type": "application/json-patch+json"},
    )
    check(r, r.json())


# -- GET Binary: the resource or the content ------------------------------------------------------


def _is_resource(r: httpx.Response, doc: Doc) -> bool:
    assert r.status_code == 200, r.text[:300]
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in r.headers["content-security-policy"]
    assert "accept" in r.headers["vary"].lower()
    if r.headers["content-type"].startswith("application/fhir+json"):
        body = r.json()
        assert body["resourceType"] == "Binary" and body["id"] == doc.id
        assert body["contentType"] == "application/pdf"
        assert base64.b64decode(body["data"]) == doc.content
        return True
    assert r.headers["content-type"].startswith("application/pdf")
    assert r.content == doc.content
    return False


@pytest.mark.parametrize(
    ("kw", "resource"),
    [
        ({}, False),
        ({"headers": {"Accept": "*/*"}}, False),
        ({"headers": {"Accept": "application/pdf"}}, False),
        ({"headers": {"Accept": "application/*"}}, False),
        ({"headers": {"Accept": "text/html"}}, False),  # nothing better: the content itself
        ({"headers": {"Accept": "application/fhir+json"}}, True),
        ({"headers": {"Accept": "application/json"}}, True),
        ({"headers": {"Accept": "application/json+fhir"}}, True),
        ({"headers": {"Accept": "application/fhir+json; fhirVersion=4.0"}}, True),
        ({"headers": {"Accept": "application/fhir+json;q=0.5, application/pdf"}}, False),
        ({"headers": {"Accept": "application/pdf;q=0.5, application/fhir+json"}}, True),
        ({"headers": {"Accept": "application/fhir+json;q=0, */*"}}, False),
        ({"headers": {"Accept": "application/fhir+xml, application/fhir+json;q=0.2"}}, True),
        ({"headers": {"Accept": "application/fhir+json, */*;q=0.1"}}, True),
        ({"params": {"_format": "json"}}, True),
        ({"params": {"_format": "application/fhir+json"}}, True),
        ({"params": {"_format": "json"}, "headers": {"Accept": "application/pdf"}}, True),
    ],
)
def test_binary_resource_or_content(
    http: httpx.Client, doc: Doc, kw: dict[str, Any], resource: bool
) -> None:
    r = _get(http, f"/fhir/Binary/{doc.id}", doc.author, **kw)
    assert _is_resource(r, doc) is resource


def test_binary_resource_validators(http: httpx.Client, doc: Doc) -> None:
    fj = {"Accept": "application/fhir+json"}
    r = _get(http, f"/fhir/Binary/{doc.id}", doc.author, headers=fj)
    raw = _get(http, f"/fhir/Binary/{doc.id}", doc.author)
    # the same content, another representation: a weak validator
    assert r.headers["etag"] == f"W/{raw.headers['etag']}"
    again = _get(
        http,
        f"/fhir/Binary/{doc.id}",
        doc.author,
        headers={**fj, "If-None-Match": r.headers["etag"]},
    )
    assert again.status_code == 304 and again.content == b""
    assert again.headers["x-content-type-options"] == "nosniff"
    # refused and missing alike, whatever the representation asked for
    for kw in ({"headers": fj}, {"params": {"_format": "json"}}, {}):
        refused = _get(http, f"/fhir/Binary/{doc.id}", doc.stranger, **kw)
        missing = _get(http, f"/fhir/Binary/{doc.missing}", doc.stranger, **kw)
        assert outcome(refused, 404) == outcome(missing, 404)


# -- base64Binary with whitespace ----------------------------------------------------------------


def test_base64_with_mime_line_breaks_is_accepted(
    http: httpx.Client, factory: Factory, rules: Rules
) -> None:
    author = rules.pro()
    ins, _pid, _patient = rules.record(author)
    content = pdf_bytes(size=3000)
    mime = base64.encodebytes(content).decode().replace("\n", "\r\n")  # 76 per line, CRLF
    assert "\r\n" in mime.strip()
    # ITI-65: Binary.data
    dr = docref(ins, author_rpps=author.rpps or "", content=content)
    b = bundle(ins, [(dr, content, "application/pdf")])
    b["entry"][2]["resource"]["data"] = mime
    [did] = created_doc_ids(http.post("/fhir", json=b, headers={**author.headers, **FHIR_JSON}))
    assert _get(http, f"/fhir/Binary/{did}", author).content == content
    # ITI-105: attachment.data, with spaces and tabs too
    content2 = pdf_bytes(size=2000)
    dr = docref(ins, author_rpps=author.rpps or "", content=content2, inline=True)
    encoded = base64.b64encode(content2).decode()
    dr["content"][0]["attachment"]["data"] = " \t".join(
        encoded[i : i + 64] for i in range(0, len(encoded), 64)
    )
    r = http.post("/fhir/DocumentReference", json=dr, headers={**author.headers, **FHIR_JSON})
    assert r.status_code == 201, r.text
    assert _get(http, f"/fhir/Binary/{r.json()['id']}", author).content == content2
    # what is not base64 still is refused
    dr = docref(ins, author_rpps=author.rpps or "", content=content2, inline=True)
    dr["content"][0]["attachment"]["data"] = encoded[:40] + "\r\n*" + encoded[40:]
    r = http.post("/fhir/DocumentReference", json=dr, headers={**author.headers, **FHIR_JSON})
    assert "base64" in outcome(r, 400)["diagnostics"]


# -- resources that validate ----------------------------------------------------------------------


def _valid_consent(resource: dict[str, Any]) -> None:
    Consent.model_validate(resource)
    # invariants fhir.resources leaves out (R4 consent.html "Constraints")
    assert resource.get("policy") or resource.get("policyRule"), resource  # ppc-1
    assert resource["patient"]["reference"].startswith("Patient/")  # ppc-2 (patient-privacy)
    for actor in (resource.get("provision") or {}).get("actor") or []:
        assert actor["role"]["coding"][0]["code"], resource


def test_consents_validate_as_r4(http: httpx.Client, rules: Rules) -> None:
    opener, pro = rules.pro(), rules.pro()
    _ins, pid, patient = rules.record(opener)
    # what clients send, from the least to the most complete
    minimal = {
        "resourceType": "Consent",
        "status": "active",
        # no policy nor policyRule (R4 invariant ppc-1, which the JSON schema does not check)
        "scope": {"coding": [{"code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{pid}"},
        "provision": {
            "type": "permit",
            "actor": [
                {
                    "role": {"coding": [{"code": "PRCP"}]},
                    "reference": {
                        "identifier": {"system": "urn:oid:1.2.250.1.71.4.2.1", "value": pro.rpps}
                    },
                }
            ],
        },
    }
    r = http.post("/fhir/Consent", json=minimal, headers={**patient.headers, **FHIR_JSON})
    assert r.status_code == 201, r.text
    _valid_consent(r.json())
    assert r.json()["policyRule"]["coding"][0]["code"] == "OPTIN"
    block = rules.consent(patient, pid, rpps=rules.pro().rpps, decision="deny")
    assert block.status_code == 201, block.text
    _valid_consent(block.json())
    assert block.json()["policyRule"]["coding"][0]["code"] == "OPTOUT"
    team = rules.consent(patient, pid, structure="750712184")
    assert team.status_code == 201, team.text
    _valid_consent(team.json())
    own_policy = {
        **minimal,
        "policy": [{"uri": "https://www.legifrance.gouv.fr/codes/article_lc/LEGIARTI000031930136"}],
    }
    r = http.post("/fhir/Consent", json=own_policy, headers={**patient.headers, **FHIR_JSON})
    assert r.status_code == 201, r.text
    _valid_consent(r.json())
    assert "policyRule" not in r.json()  # the client's own policy is kept
    emergency = rules.consent(patient, pid, purpose="BTG", decision="deny")
    assert emergency.status_code == 201, emergency.text
    # every Consent of the record, as listed (the opener's, the emergency ones, those above)
    listed = rules.consents(patient, pid)
    assert listed.status_code == 200, listed.text
    resources = [e["resource"] for e in listed.json()["entry"]]
    assert len(resources) >= 7
    for resource in resources:
        _valid_consent(resource)
        r = http.get(f"/fhir/Consent/{resource['id']}", headers=patient.headers)
        assert r.status_code == 200, r.text
        _valid_consent(r.json())


def test_document_reference_validates_as_r4(http: httpx.Client, doc: Doc) -> None:
    r = _get(http, f"/fhir/DocumentReference/{doc.id}", doc.author)
    DocumentReference.model_validate(r.json())
    r = http.patch(
        f"/fhir/DocumentReference/{doc.id}",
        content=json.dumps(
            [
                {
                    "op": "replace",
                    "path": "/extension[url:'https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/pdsm-ext-is-archived']/valueBoolean",
                    "value": True,
                }
            ]
        ),
        headers={**doc.author.headers, "Content-Type": "application/json-patch+json"},
    )
    assert r.status_code == 200, r.text
    DocumentReference.model_validate(r.json())
