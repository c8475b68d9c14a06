"""Every example of the ANS "PDSm for DMP" guide (ansforge/IG-FHIR-PDSM4DMP-EEDS, its
input/examples and the JSON Patch bodies of its pages TD3.3a–d, copied in tests/fixtures/pdsm),
sent through carnet the way the guide uses it, each row of :data:`ROWS` with its expected
outcome: accepted, or refused with the reason when the example itself is wrong.

The published INS ``123456789012345`` is wrong: its NIR key is 45, and the key of
``1234567890123`` is 11 (97 − 1234567890123 mod 97). The examples are sent once as published
(refused for that key, exactly), then from a copy made at test time where the INS is
``123456789012311`` (same system, urn:oid:1.2.250.1.213.1.4.8, the key fixed), the record of
that INS being opened first. Other corrections, where an example is wrong or incomplete, are
made in the same way and named in each row (tests/fixtures/pdsm/README.md lists them).

All rows share one server of their own (per backend) and one record, in the order of the table:
document X is published before the TD2.1 replacement supersedes it; the documents that the
TD3.3 examples name by uniqueId (…99999.101, the consultation report, and …99999.102, the
prescription) are published before they are patched.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from carnet.domain.ins import make_nir, nir_key
from tests.clients.validate import npm_fhir_errors, r4b_errors
from tests.conftest import running_server
from tests.e2e.conftest import _no_5xx as no_5xx
from tests.factories import FHIR_JSON, NIR_OID, Factory, created_doc_ids, outcome, patient_resource

pytestmark = pytest.mark.e2e

PDSM = Path(__file__).resolve().parents[1] / "fixtures" / "pdsm"
PUBLISHED_INS = "123456789012345"
FIXED_INS = make_nir(PUBLISHED_INS[:13])  # 123456789012311
AUTHOR_RPPS = "899700218896"  # the examples' author
RFC3986 = "urn:ietf:rfc:3986"
PDSM_ARCHIVED = (
    "https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/pdsm-ext-is-archived"
)
CR_CONSULTATION = "urn:oid:1.2.250.1.213.1.4.8.99999.101"  # TD3.3a, c, d name it
ORDONNANCE = "urn:oid:1.2.250.1.213.1.4.8.99999.102"  # TD3.3b names it
PATCH_JSON = {"Content-Type": "application/json-patch+json", "Accept": "application/fhir+json"}


def load(name: str) -> Any:
    return json.loads((PDSM / name).read_text(encoding="utf-8"))


def fixed(resource: Any) -> Any:
    """A copy of an example with its INS key fixed (45 → 11)."""
    out = json.loads(json.dumps(resource).replace(PUBLISHED_INS, FIXED_INS))
    return out


def with_usual_unique_id(bundle: dict[str, Any]) -> str:
    """Give the ITI-65 example's SubmissionSet the uniqueId it lacks (IHE MHD 4.2.3: the
    ``identifier`` with ``use=usual``, an ``urn:oid:``)."""
    uid = f"urn:oid:1.2.250.1.999.7.{uuid.uuid4().int % 10**12}"
    for entry in bundle["entry"]:
        res = entry["resource"]
        if res["resourceType"] == "List":
            res["identifier"] = [{"use": "usual", "system": RFC3986, "value": uid}]
    return uid


def doc_ids(r: httpx.Response) -> list[str]:
    return created_doc_ids(r)


def location_id(location: str, kind: str) -> str:
    return location.split(f"/{kind}/", 1)[1].split("/", 1)[0]


def iti65_of(docref: dict[str, Any], content: bytes, content_type: str) -> dict[str, Any]:
    """An ITI-65 transaction carrying one DocumentReference of the guide and its content, the
    SubmissionSet taken from the guide's TD2 example (INS fixed, uniqueId ``usual``, and its
    entryUUID ``official`` so that the prerequisites are published however the SubmissionSet
    is read)."""
    bundle = fixed(load("Bundle-example-td2-iti65-lot-soumission.json"))
    subset = bundle["entry"][0]
    subset["resource"]["identifier"] = [
        {
            "use": "usual",
            "system": RFC3986,
            "value": f"urn:oid:1.2.250.1.999.8.{uuid.uuid4().int % 10**12}",
        },
        {"use": "official", "system": RFC3986, "value": f"urn:uuid:{uuid.uuid4()}"},
    ]
    doc = copy.deepcopy(docref)
    doc.pop("id", None)
    doc.pop("meta", None)
    doc["status"] = "current"
    bin_url, doc_url = f"urn:uuid:{uuid.uuid4()}", f"urn:uuid:{uuid.uuid4()}"
    doc["content"][0]["attachment"]["url"] = bin_url
    subset["resource"]["entry"] = [{"item": {"reference": doc_url}}]
    bundle["entry"] = [
        subset,
        {
            "fullUrl": doc_url,
            "resource": doc,
            "request": {"method": "POST", "url": "DocumentReference"},
        },
        {
            "fullUrl": bin_url,
            "resource": {
                "resourceType": "Binary",
                "contentType": content_type,
                "data": base64.b64encode(content).decode(),
            },
            "request": {"method": "POST", "url": "Binary"},
        },
    ]
    return bundle


# the CDA of the guide's examples (80 bytes; its SHA-1 is the examples' hash A/hMRrv6…)
CDA = base64.b64decode(
    load("Bundle-example-td2-iti65-lot-soumission.json")["entry"][2]["resource"]["data"]
)


@dataclass
class Guide:
    """What the rows share: the server, the author's token, the record, what rows left."""

    http: httpx.Client
    author: dict[str, str]
    patient: dict[str, str]  # the record's holder
    pid: str
    done: dict[str, Any] = field(default_factory=dict)

    def post(self, url: str, body: Any, **headers: str) -> httpx.Response:
        return self.http.post(url, json=body, headers={**self.author, **FHIR_JSON, **headers})

    def read(self, did: str) -> dict[str, Any]:
        r = self.http.get(f"/fhir/DocumentReference/{did}", headers=self.author)
        assert r.status_code == 200, r.text
        doc: dict[str, Any] = r.json()
        return doc

    def patch(self, query: str, ops: Any, who: dict[str, str] | None = None) -> httpx.Response:
        return self.http.patch(
            f"/fhir/DocumentReference?identifier={RFC3986}|{query}",
            content=json.dumps(ops),
            headers={**(who or self.author), **PATCH_JSON},
        )

    def publish(self, docref: dict[str, Any], content: bytes, ctype: str) -> str:
        r = self.post("/fhir", iti65_of(docref, content, ctype))
        [did] = doc_ids(r)
        return did


@pytest.fixture(scope="module")
def guide(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guide]:
    with (
        running_server(backend, tmp_path_factory.mktemp(f"carnet-pdsm-{backend}")) as srv,
        httpx.Client(base_url=srv.url, timeout=60, event_hooks={"response": [no_5xx]}) as http,
    ):
        factory = Factory(http)
        author = factory.professional(rpps=AUTHOR_RPPS)
        patient = factory.token(kind="patient", ins=FIXED_INS, ins_oid=NIR_OID)
        r = http.post(
            "/fhir/Patient",
            json=patient_resource(FIXED_INS, oid=NIR_OID),
            headers={**author, **FHIR_JSON},
        )
        assert r.status_code == 201, r.text
        yield Guide(http=http, author=author, patient=patient, pid=r.json()["id"])


# -- the rows ---------------------------------------------------------------------------------


def refused_for_nir_key(g: Guide, name: str, url: str) -> None:
    issue = outcome(g.post(url, load(name)), 422)
    assert "wrong NIR key 45" in issue["diagnostics"] and "is 11" in issue["diagnostics"]
    assert "subject" in issue["expression"][0]


def lot_without_unique_id(g: Guide) -> None:
    issue = outcome(
        g.post("/fhir", fixed(load("Bundle-example-td2-iti65-lot-soumission.json"))), 422
    )
    assert issue["expression"] == ["List.identifier"]
    assert "uniqueId" in issue["diagnostics"]


def lot_accepted(g: Guide) -> None:
    b = fixed(load("Bundle-example-td2-iti65-lot-soumission.json"))
    uid = with_usual_unique_id(b)
    r = g.post("/fhir", b)
    [did] = doc_ids(r)
    doc = g.read(did)
    src = b["entry"][1]["resource"]
    assert doc["masterIdentifier"] == src["masterIdentifier"]
    assert doc["subject"] == {"reference": f"Patient/{g.pid}"}
    assert doc["content"][0]["attachment"]["hash"] == src["content"][0]["attachment"]["hash"]
    content = g.http.get(f"/fhir/Binary/{did}", headers=g.author)
    assert content.content == CDA
    sets = g.http.get(
        "/fhir/List", params={"patient": g.pid, "identifier": f"{RFC3986}|{uid}"}, headers=g.author
    ).json()
    assert sets["total"] == 1
    assert {"use": "usual", "system": RFC3986, "value": uid} in sets["entry"][0]["resource"][
        "identifier"
    ]


def doc_x_published(g: Guide) -> None:
    """Document X of TD2.1, as the guide shows it (its content is the examples' CDA)."""
    x = fixed(load("DocumentReference-doc-x-id.json"))
    did = g.publish(x, CDA, "application/xml")
    assert g.read(did)["masterIdentifier"] == x["masterIdentifier"]
    g.done["x"] = did


def replacement_of_missing_x(g: Guide) -> None:
    b = fixed(load("Bundle-example-td2-1-remplacement.json"))
    with_usual_unique_id(b)
    issue = outcome(g.post("/fhir", b), 422)
    assert issue["expression"][0].endswith("relatesTo"), issue


def replacement_accepted(g: Guide) -> None:
    x = g.done["x"]
    b = fixed(load("Bundle-example-td2-1-remplacement.json"))
    with_usual_unique_id(b)
    b = json.loads(json.dumps(b).replace("doc-x-id", x))
    r = g.post("/fhir", b)
    assert r.status_code == 200, r.text
    entries = {e["fullUrl"]: e["response"] for e in r.json()["entry"]}
    created = entries["urn:uuid:bbbbbbbb-0000-0000-0000-000000000002"]
    assert created["status"] == "201 Created"
    new = location_id(created["location"], "DocumentReference")
    patched = entries["urn:uuid:bbbbbbbb-0000-0000-0000-000000000004"]  # its PATCH entry
    assert patched["status"] == "200 OK"
    assert location_id(patched["location"], "DocumentReference") == x
    cur = g.read(new)
    assert cur["status"] == "current"
    assert cur["relatesTo"][0] == {
        "code": "replaces",
        "target": {"reference": f"DocumentReference/{x}"},
    }


def doc_x_reads_as_the_example(g: Guide) -> None:
    """After the replacement, X is what the guide's DocumentReference-doc-x-id shows."""
    example = fixed(load("DocumentReference-doc-x-id.json"))
    served = g.read(g.done["x"])
    assert served["status"] == example["status"] == "superseded"
    for element in ("masterIdentifier", "type", "category", "securityLabel", "date", "author"):
        assert served[element] == example[element], element
    for element in ("contentType", "size", "hash", "title", "creation", "language"):
        assert (
            served["content"][0]["attachment"][element]
            == example["content"][0]["attachment"][element]
        )
    assert not r4b_errors(served)


def iti105_missing_metadata(g: Guide) -> None:
    dr = fixed(load("DocumentReference-example-td2-iti105-publication-simplifiee.json"))
    issue = outcome(g.post("/fhir/DocumentReference", dr), 422)
    assert issue["diagnostics"].startswith("missing required document metadata")
    for name in (
        "category (classCode)",
        "securityLabel (confidentialityCode)",
        "content.format (formatCode)",
    ):
        assert name in issue["diagnostics"], name


def _annex(name: str) -> dict[str, Any]:
    search = fixed(load("Bundle-example-annexe-searchset-documentreferences.json"))
    [doc] = [e["resource"] for e in search["entry"] if e["resource"]["id"] == name]
    return doc


FHIR_DOCUMENT = fixed(load("Bundle-example-annexe-fhir-document.json"))
FHIR_DOCUMENT_BYTES = json.dumps(FHIR_DOCUMENT).encode()


def fhir_document_wrong_size(g: Guide) -> None:
    """The annex DocumentReference declares size 4096 and a hash that is no SHA-1 of its
    document (``C/jOTtuBZ37DlUN0mNPjfsu1nHf=`` is not even canonical base64)."""
    bundle = iti65_of(
        _annex("example-annexe-docref-fhir"), FHIR_DOCUMENT_BYTES, "application/fhir+json"
    )
    issue = outcome(g.post("/fhir", bundle), 422)
    assert (
        "attachment.size" in issue["expression"][0] or "attachment.hash" in issue["expression"][0]
    ), issue


def fhir_document_served_as_bundle(g: Guide) -> None:
    """TD3.2 case 3: the FHIR document published as the annex shows it is served at
    ``GET Bundle/{id}`` as the Bundle (size and hash left for carnet to compute)."""
    doc = _annex("example-annexe-docref-fhir")
    att = doc["content"][0]["attachment"]
    att.pop("size"), att.pop("hash")
    did = g.publish(doc, FHIR_DOCUMENT_BYTES, "application/fhir+json")
    served = g.read(did)
    url = served["content"][0]["attachment"]["url"]
    path = url.split("/fhir/", 1)[1] if "/Bundle/" in url else f"Bundle/{did}"
    r = g.http.get(f"/fhir/{path}", headers={**g.author, "Accept": "application/fhir+json"})
    assert r.status_code == 200, r.text
    served_bundle = r.json()
    assert served_bundle["id"] == path.rsplit("/", 1)[1]  # the server's id, as any read
    drop = {"id", "meta"}
    assert {k: v for k, v in served_bundle.items() if k not in drop} == {
        k: v for k, v in FHIR_DOCUMENT.items() if k not in drop
    }
    assert not r4b_errors(served_bundle)
    g.done["fhir-document"] = did


def searchset_parsed_like_the_example(g: Guide) -> None:
    """The annex searchset is what a client parses after ITI-67: the example parses with both
    validators, and carnet's answer for the same two documents (published with the example's
    metadata, its CDA's size fixed: 128 declared, 80 bytes) has the same shape."""
    example = fixed(load("Bundle-example-annexe-searchset-documentreferences.json"))
    assert not r4b_errors(example)
    cda = _annex("example-annexe-docref-cda")
    att = cda["content"][0]["attachment"]
    att.pop("size")
    cda_id = g.publish(cda, CDA, "application/xml")
    fhir_id = g.done.get("fhir-document")
    assert fhir_id, "the FHIR document row was not accepted"
    r = g.http.get(
        "/fhir/DocumentReference",
        params={
            "patient": g.pid,
            "identifier": f"{RFC3986}|urn:oid:1.2.250.1.213.1.4.8.99999.201,{RFC3986}|urn:oid:1.2.250.1.213.1.4.8.99999.202",
        },
        headers=g.author,
    )
    served = r.json()
    assert served["type"] == example["type"] and served["total"] == example["total"] == 2
    assert {e["resource"]["id"] for e in served["entry"]} == {cda_id, fhir_id}
    for ours, theirs in zip(
        sorted(served["entry"], key=lambda e: e["resource"]["masterIdentifier"]["value"]),
        sorted(example["entry"], key=lambda e: e["resource"]["masterIdentifier"]["value"]),
        strict=True,
    ):
        assert ours["search"]["mode"] == theirs["search"]["mode"] == "match"
        assert set(theirs["resource"]) <= set(ours["resource"]) | {"authenticator"}
        for element in ("masterIdentifier", "type", "category", "securityLabel", "context"):
            assert ours["resource"][element] == theirs["resource"][element], element
    assert not r4b_errors(served)
    assert not npm_fhir_errors([example, served])


def prerequisites_td33(g: Guide) -> None:
    """The documents that TD3.3 names by uniqueId: the consultation report (…101) and the
    prescription (…102), with the guide's TD3.1a metadata on the TD2 example's document."""
    base = fixed(load("Bundle-example-td2-iti65-lot-soumission.json"))["entry"][1]["resource"]
    for uid, key in ((CR_CONSULTATION, "cr"), (ORDONNANCE, "ord")):
        doc = copy.deepcopy(base)
        doc["masterIdentifier"] = {"system": RFC3986, "value": uid}
        g.done[key] = g.publish(doc, CDA, "application/xml")


def patched(g: Guide, uid: str, fixture: str) -> dict[str, Any]:
    r = g.patch(uid, load(fixture))
    assert r.status_code == 200, r.text
    doc: dict[str, Any] = r.json()
    assert doc["resourceType"] == "DocumentReference"
    assert doc["masterIdentifier"]["value"] == uid
    return doc


def codes(doc: dict[str, Any]) -> set[str]:
    return {c["code"] for label in doc.get("securityLabel", []) for c in label["coding"]}


def td33a_mask(g: Guide) -> None:
    doc = patched(g, CR_CONSULTATION, "Patch-td3.3a-masquage.json")
    assert "MASQUE_PS" in codes(doc)
    assert "MASQUE_PS" in codes(g.read(g.done["cr"]))


def td33a_unmask(g: Guide) -> None:
    """The author's software sends TD3.3a « démasquer »: refused, unmasking is the patient's
    (CSP L1111-15; carnet's decision in docs/access.md "Masking"); the patient's is accepted."""
    ops = load("Patch-td3.3a-demasquage.json")
    refused = g.patch(CR_CONSULTATION, ops)
    outcome(refused, 403)
    assert "MASQUE_PS" in codes(g.read(g.done["cr"]))
    r = g.patch(CR_CONSULTATION, ops, who=g.patient)
    assert r.status_code == 200, r.text
    assert "MASQUE_PS" not in codes(r.json()) and "N" in codes(r.json())


def td33b_invisible(g: Guide) -> None:
    doc = patched(g, ORDONNANCE, "Patch-td3.3b-invisible-patient.json")
    assert "INVISIBLE_PATIENT" in codes(doc)


def td33b_visible(g: Guide) -> None:
    doc = patched(g, ORDONNANCE, "Patch-td3.3b-visible-patient.json")
    assert "INVISIBLE_PATIENT" not in codes(doc) and "N" in codes(doc)


def td33d_as_published(fixture: str) -> Callable[[Guide], None]:
    def run(g: Guide) -> None:
        """Its path ``/extension[url:'…']/valueBoolean`` is FHIRPath, not the JSON Pointer
        (RFC 6901) a JSON Patch path is; carnet reads that selector as the index of the
        extension with that url (fhir/README.md "PATCH"), so the guide's body works as sent."""
        value = next(op["value"] for op in load(fixture) if op["op"] in ("add", "replace"))
        r = g.patch(CR_CONSULTATION, load(fixture))
        assert r.status_code == 200, r.text
        flags = [e["valueBoolean"] for e in r.json()["extension"] if e["url"] == PDSM_ARCHIVED]
        assert flags == [value], r.json()["extension"]
        found = g.http.get(
            "/fhir/DocumentReference",
            params={"patient": g.pid, "isArchived": "true"},
            headers=g.author,
        ).json()
        shown = [e["resource"]["id"] for e in found.get("entry", [])]
        assert shown == ([g.done["cr"]] if value else []), shown

    return run


def td33d_archive_corrected(g: Guide) -> None:
    """TD3.3d's intent in RFC 6902: add the PDSm archive extension."""
    current = g.read(g.done["cr"])
    ext = {"url": PDSM_ARCHIVED, "valueBoolean": True}
    ops = (
        [{"op": "add", "path": "/extension/-", "value": ext}]
        if current.get("extension")
        else [{"op": "add", "path": "/extension", "value": [ext]}]
    )
    r = g.patch(CR_CONSULTATION, ops)
    assert r.status_code == 200, r.text
    found = g.http.get(
        "/fhir/DocumentReference", params={"patient": g.pid, "isArchived": "true"}, headers=g.author
    ).json()
    assert [e["resource"]["id"] for e in found.get("entry", [])] == [g.done["cr"]]


def td33d_unarchive_corrected(g: Guide) -> None:
    current = g.read(g.done["cr"])
    [i] = [n for n, e in enumerate(current["extension"]) if e["url"] == PDSM_ARCHIVED]
    r = g.patch(
        CR_CONSULTATION, [{"op": "replace", "path": f"/extension/{i}/valueBoolean", "value": False}]
    )
    assert r.status_code == 200, r.text
    found = g.http.get(
        "/fhir/DocumentReference", params={"patient": g.pid, "isArchived": "true"}, headers=g.author
    ).json()
    assert found["total"] == 0


def td33c_delete(g: Guide) -> None:
    doc = patched(g, CR_CONSULTATION, "Patch-td3.3c-suppression.json")
    assert doc["status"] == "entered-in-error"
    left = g.http.get("/fhir/DocumentReference", params={"patient": g.pid}, headers=g.author).json()
    assert g.done["cr"] not in {e["resource"]["id"] for e in left.get("entry", [])}


@dataclass(frozen=True)
class Row:
    example: str  # the file in tests/fixtures/pdsm
    use: str  # how the guide uses it
    expected: str  # the outcome
    run: Callable[[Guide], None]


def _nir(name: str, url: str) -> Callable[[Guide], None]:
    return lambda g: refused_for_nir_key(g, name, url)


LOT = "Bundle-example-td2-iti65-lot-soumission.json"
REPL = "Bundle-example-td2-1-remplacement.json"
ITI105 = "DocumentReference-example-td2-iti105-publication-simplifiee.json"

ROWS: list[Row] = [
    Row(
        LOT, "ITI-65 POST [base] (TD2)", "refused 422: wrong NIR key 45 (is 11)", _nir(LOT, "/fhir")
    ),
    Row(
        LOT,
        "ITI-65, INS fixed",
        "refused 422 List.identifier: the SubmissionSet has no uniqueId",
        lot_without_unique_id,
    ),
    Row(LOT, "ITI-65, INS fixed, usual uniqueId added", "accepted", lot_accepted),
    Row(
        "DocumentReference-doc-x-id.json",
        "document X published (ITI-65)",
        "accepted",
        doc_x_published,
    ),
    Row(
        REPL,
        "ITI-65 with replaces + PATCH entry (TD2.1)",
        "refused 422: wrong NIR key 45 (is 11)",
        _nir(REPL, "/fhir"),
    ),
    Row(
        REPL,
        "TD2.1, INS fixed, uniqueId added",
        "refused 422 relatesTo: doc-x-id is no stored document",
        replacement_of_missing_x,
    ),
    Row(
        REPL,
        "TD2.1 on the real document X",
        "accepted: new version current, PATCH entry 200, X superseded",
        replacement_accepted,
    ),
    Row(
        "DocumentReference-doc-x-id.json",
        "ITI-67 read of X after TD2.1",
        "X reads as the example (superseded)",
        doc_x_reads_as_the_example,
    ),
    Row(
        ITI105,
        "ITI-105 POST DocumentReference (TD2)",
        "refused 422: wrong NIR key 45 (is 11)",
        _nir(ITI105, "/fhir/DocumentReference"),
    ),
    Row(
        ITI105,
        "ITI-105, INS fixed",
        "refused 422: missing required document metadata (listed)",
        iti105_missing_metadata,
    ),
    Row(
        "Bundle-example-annexe-fhir-document.json",
        "FHIR document in ITI-65, annex DocumentReference",
        "refused 422: declared size/hash are not its content's",
        fhir_document_wrong_size,
    ),
    Row(
        "Bundle-example-annexe-fhir-document.json",
        "FHIR document, size/hash computed; GET Bundle/{id} (TD3.2)",
        "accepted, served as the Bundle",
        fhir_document_served_as_bundle,
    ),
    Row(
        "Bundle-example-annexe-searchset-documentreferences.json",
        "ITI-67 searchset parsed by the client",
        "same shape as carnet's answer; both validate",
        searchset_parsed_like_the_example,
    ),
    Row(
        LOT,
        "TD3.3 prerequisites: documents …101 and …102 published",
        "accepted",
        prerequisites_td33,
    ),
    Row(
        "Patch-td3.3a-masquage.json",
        "PATCH DocumentReference?identifier=…101 (TD3.3a)",
        "accepted: MASQUE_PS",
        td33a_mask,
    ),
    Row(
        "Patch-td3.3a-demasquage.json",
        "PATCH ?identifier=…101 (TD3.3a), by the author, then the patient",
        "refused 403 to the author (unmasking is the patient's); accepted from the patient: N",
        td33a_unmask,
    ),
    Row(
        "Patch-td3.3b-invisible-patient.json",
        "PATCH ?identifier=…102 (TD3.3b)",
        "accepted: INVISIBLE_PATIENT",
        td33b_invisible,
    ),
    Row(
        "Patch-td3.3b-visible-patient.json",
        "PATCH ?identifier=…102 (TD3.3b)",
        "accepted: N",
        td33b_visible,
    ),
    Row(
        "Patch-td3.3d-archivage.json",
        "PATCH ?identifier=…101 (TD3.3d)",
        "refused 4xx: its path is FHIRPath, not a JSON Pointer",
        td33d_as_published("Patch-td3.3d-archivage.json"),
    ),
    Row(
        "Patch-td3.3d-archivage.json",
        "TD3.3d in RFC 6902 (add the extension)",
        "accepted; isArchived=true finds it",
        td33d_archive_corrected,
    ),
    Row(
        "Patch-td3.3d-desarchivage.json",
        "PATCH ?identifier=…101 (TD3.3d)",
        "refused 4xx: its path is FHIRPath, not a JSON Pointer",
        td33d_as_published("Patch-td3.3d-desarchivage.json"),
    ),
    Row(
        "Patch-td3.3d-desarchivage.json",
        "TD3.3d in RFC 6902 (replace the value)",
        "accepted; isArchived=true finds none",
        td33d_unarchive_corrected,
    ),
    Row(
        "Patch-td3.3c-suppression.json",
        "PATCH ?identifier=…101 (TD3.3c)",
        "accepted: entered-in-error, out of searches",
        td33c_delete,
    ),
]


def test_the_published_ins_key_is_wrong() -> None:
    assert nir_key(PUBLISHED_INS[:13]) == 11 and PUBLISHED_INS[13:] == "45"
    assert FIXED_INS == "123456789012311"


def test_every_example_of_the_guide_has_a_row() -> None:
    examples = {p.name for p in PDSM.glob("*.json")}
    assert examples == {row.example for row in ROWS}


def test_the_cda_is_the_examples_content() -> None:
    assert base64.b64encode(hashlib.sha1(CDA).digest()).decode() == "A/hMRrv6Y15BjSM8kMLidrz+mHc="
    assert len(CDA) == 80


@pytest.mark.parametrize(
    "row", ROWS, ids=[f"{i:02d}-{r.example.removesuffix('.json')}" for i, r in enumerate(ROWS)]
)
def test_guide_example(guide: Guide, row: Row) -> None:
    row.run(guide)
