"""PATCH of a DocumentReference with JSON Patch, by id and conditional on its identifier (FHIR R4
http.html#patch; PDSm Flux 03; PDSm for DMP TD3.3a–d), through a real server.

The request bodies of TD3.3a–d are those of the ANS PDSm for DMP guide (transaction_td3.3*.md),
sent as the guide writes them, the archive extension's selector path included.
"""

from __future__ import annotations

import base64
import json
import uuid
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import pytest

from tests.factories import (
    FHIR_JSON,
    Factory,
    Person,
    Rules,
    bundle,
    created_doc_ids,
    docref,
    label_codes,
    outcome,
    pdf_bytes,
    security_labels,
)

JSON_PATCH = {"Content-Type": "application/json-patch+json", "Accept": "application/fhir+json"}
VISIBILITY = (
    "https://mos.esante.gouv.fr/NOS/TRE_A07-StatutVisibiliteDocument/FHIR/"
    "TRE-A07-StatutVisibiliteDocument"
)
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
PDSM_ARCHIVED = (
    "https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/pdsm-ext-is-archived"
)
DMP_ARCHIVED = "https://carnet.health/fhir/StructureDefinition/dmp-archived"

# the guide's bodies (PDSm for DMP, transaction_td3.3a.md … td3.3d.md)
MASK = [
    {
        "op": "replace",
        "path": "/securityLabel/0",
        "value": {
            "coding": [
                {
                    "system": VISIBILITY,
                    "code": "MASQUE_PS",
                    "display": "Masqué aux professionnels de santé",
                }
            ]
        },
    }
]
NORMAL = [
    {
        "op": "replace",
        "path": "/securityLabel/0",
        "value": {"coding": [{"system": CONFIDENTIALITY, "code": "N", "display": "normal"}]},
    }
]
INVISIBLE_PATIENT = [
    {
        "op": "replace",
        "path": "/securityLabel/0",
        "value": {
            "coding": [
                {
                    "system": VISIBILITY,
                    "code": "INVISIBLE_PATIENT",
                    "display": "Non visible par le patient",
                }
            ]
        },
    }
]
DELETE = [{"op": "replace", "path": "/status", "value": "entered-in-error"}]


def archive(value: bool) -> list[dict[str, Any]]:
    return [
        {
            "op": "replace",
            "path": f"/extension[url:'{PDSM_ARCHIVED}']/valueBoolean",
            "value": value,
        }
    ]


class World:
    """A record opened by ``author``, ``reader`` authorised by the patient, one plain document
    and one masked at submission (both by ``author``), and a professional who is neither."""

    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self.http = rules.http
        self.author = rules.pro()
        self.reader = rules.pro()
        self.stranger = rules.pro()
        self.ins, self.pid, self.patient = rules.record(self.author)
        self.plain = rules.doc(self.ins, self.author)
        self.masked = rules.doc(self.ins, self.author, labels=["N", "MASQUE_PS"])
        assert rules.consent(self.patient, self.pid, rpps=self.reader.rpps).status_code == 201

    def stored(self, doc_id: str, who: Person | None = None) -> dict[str, Any]:
        r = self.rules.read(who or self.author, doc_id)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def unique_id(self, doc_id: str) -> str:
        return str(self.stored(doc_id)["masterIdentifier"]["value"])

    def patch(self, who: Person, doc_id: str, ops: Any, **headers: str) -> httpx.Response:
        return self.http.patch(
            f"/fhir/DocumentReference/{doc_id}",
            content=json.dumps(ops),
            headers={**who.headers, **JSON_PATCH, **headers},
        )

    def cpatch(self, who: Person, identifier: str, ops: Any, **headers: str) -> httpx.Response:
        """Conditional PATCH, as the guide writes it: by the uniqueId (system urn:ietf:rfc:3986)."""
        return self.http.patch(
            "/fhir/DocumentReference",
            params={"identifier": f"urn:ietf:rfc:3986|{identifier}"},
            content=json.dumps(ops),
            headers={**who.headers, **JSON_PATCH, **headers},
        )

    def missing(self) -> str:
        return f"{self.pid}-{'0' * 20}"


@pytest.fixture()
def rules(http: httpx.Client, factory: Factory) -> Rules:
    return Rules(http, factory)


@pytest.fixture()
def w(rules: Rules) -> World:
    return World(rules)


def _codes_in_order(resource: dict[str, Any]) -> list[str]:
    return [label["coding"][0]["code"] for label in resource.get("securityLabel") or []]


def _archived_exts(resource: dict[str, Any]) -> dict[str, bool]:
    return {
        e["url"]: e["valueBoolean"]
        for e in resource.get("extension") or []
        if e["url"] in (PDSM_ARCHIVED, DMP_ARCHIVED)
    }


# -- TD3.3a: mask, unmask -----------------------------------------------------------------------


def test_td33a_author_masks_by_identifier_and_only_the_patient_unmasks(w: World) -> None:
    assert w.rules.visible(w.reader, w.pid) == {w.plain}
    r = w.cpatch(w.author, w.unique_id(w.plain), MASK)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == w.plain and body["meta"]["versionId"] == "2"
    assert r.headers["etag"] == 'W/"2"'
    # Last-Modified is an HTTP date, the one of meta.lastUpdated
    modified = parsedate_to_datetime(r.headers["last-modified"])
    assert r.headers["last-modified"].endswith(" GMT")
    assert modified.isoformat()[:19] == body["meta"]["lastUpdated"][:19]
    # the confidentiality code stays; the visibility code is served first (securityLabel/0)
    assert _codes_in_order(body) == ["MASQUE_PS", "N"]
    assert w.rules.visible(w.reader, w.pid) == set()
    outcome(w.rules.read(w.reader, w.plain), 404)
    assert w.rules.read(w.author, w.plain).status_code == 200
    assert w.rules.read(w.patient, w.plain).status_code == 200

    # the guide's « démasquer » from the author's software: refused, it is the patient's
    issue = outcome(w.cpatch(w.author, w.unique_id(w.plain), NORMAL), 403)
    assert "patient" in issue["diagnostics"]
    assert w.stored(w.plain)["meta"]["versionId"] == "2"
    # the reader, who may no longer see it, is answered as for a missing document
    refused = w.patch(w.reader, w.plain, NORMAL)
    assert (refused.status_code, refused.json()) == (
        404,
        w.patch(w.reader, w.missing(), NORMAL).json(),
    )

    # the patient unmasks, with the same body
    r = w.patch(w.patient, w.plain, NORMAL)
    assert r.status_code == 200, r.text
    assert label_codes(r.json()) == {"N"}
    assert r.json()["meta"]["versionId"] == "3"
    assert w.rules.visible(w.reader, w.pid) == {w.plain}


def test_td33a_what_the_author_masked_at_submission_the_author_does_not_unmask(w: World) -> None:
    stored = w.stored(w.masked)
    assert _codes_in_order(stored) == ["MASQUE_PS", "N"]
    outcome(w.patch(w.author, w.masked, NORMAL), 403)
    r = w.patch(w.patient, w.masked, NORMAL)
    assert r.status_code == 200, r.text
    assert w.rules.visible(w.reader, w.pid) == {w.plain, w.masked}


def test_masking_by_a_professional_who_is_not_the_author(w: World) -> None:
    # an authorised reader sees the document, may not mask it: 403
    outcome(w.patch(w.reader, w.plain, MASK), 403)
    outcome(w.rules.relabel(w.reader, w.stored(w.plain), ["N", "MASQUE_PS"]), 403)
    # a professional the patient did not authorise: as for a missing document
    for r in (
        w.patch(w.stranger, w.plain, MASK),
        w.cpatch(w.stranger, w.unique_id(w.plain), MASK),
    ):
        assert r.status_code == 404
        assert r.json() == w.patch(w.stranger, w.missing(), MASK).json()
        assert r.json() == w.cpatch(w.stranger, f"urn:oid:1.2.3.{uuid.uuid4().int}", MASK).json()
    assert w.stored(w.plain)["meta"]["versionId"] == "1"
    assert w.rules.visible(w.reader, w.pid) == {w.plain}


def test_masking_through_put_follows_the_same_rule(w: World) -> None:
    r = w.rules.relabel(w.author, w.stored(w.plain), ["N", "MASQUE_PS"])
    assert r.status_code == 200, r.text
    assert r.headers["last-modified"].endswith(" GMT")
    assert w.rules.visible(w.reader, w.pid) == set()
    outcome(w.rules.relabel(w.author, r.json(), ["N"]), 403)
    # the reader, who may no longer see it: as missing
    refused = w.rules.relabel(w.reader, r.json(), ["N"])
    missing = w.rules.put_doc(
        w.reader, {**r.json(), "id": w.missing(), "securityLabel": security_labels(["N"])}
    )
    outcome(missing, 404)
    assert (refused.status_code, refused.json()) == (404, missing.json())
    r = w.rules.relabel(w.patient, w.stored(w.plain, w.patient), ["N"])
    assert r.status_code == 200, r.text
    assert w.rules.visible(w.reader, w.pid) == {w.plain}


# -- TD3.3b: visibility to the patient ------------------------------------------------------------


def test_td33b_author_hides_from_the_patient_then_shows(w: World) -> None:
    r = w.cpatch(w.author, w.unique_id(w.plain), INVISIBLE_PATIENT)
    assert r.status_code == 200, r.text
    assert _codes_in_order(r.json()) == ["INVISIBLE_PATIENT", "N"]
    assert w.plain not in w.rules.visible(w.patient, w.pid)
    # the patient, who may not see it now, cannot lift it: as missing
    refused = w.patch(w.patient, w.plain, NORMAL)
    assert (refused.status_code, refused.json()) == (
        404,
        w.patch(w.patient, w.missing(), NORMAL).json(),
    )
    # nor may another professional
    outcome(w.patch(w.reader, w.plain, NORMAL), 403)
    r = w.cpatch(w.author, w.unique_id(w.plain), NORMAL)
    assert r.status_code == 200, r.text
    assert label_codes(r.json()) == {"N"}
    assert w.plain in w.rules.visible(w.patient, w.pid)


# -- TD3.3c: delete -------------------------------------------------------------------------------


def test_td33c_only_the_author_deletes(w: World) -> None:
    uid = w.unique_id(w.plain)
    outcome(w.cpatch(w.reader, uid, DELETE), 403)
    outcome(w.cpatch(w.patient, uid, DELETE), 403)
    r = w.cpatch(w.author, uid, DELETE)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "entered-in-error"
    # 410 to whoever could read it before, 404 to anyone else
    outcome(w.rules.read(w.author, w.plain), 410)
    outcome(w.rules.read(w.reader, w.plain), 410)
    outcome(w.rules.read(w.stranger, w.plain), 404)
    # a deleted document is found by nobody: deleting it again finds nothing
    outcome(w.cpatch(w.author, uid, DELETE), 404)


# -- TD3.3d: archive ------------------------------------------------------------------------------


def test_td33d_archive_and_unarchive_with_the_guides_selector(w: World) -> None:
    # PDSm's extension is always served; carnet's dmp-archived alias only when archived
    assert _archived_exts(w.stored(w.plain)) == {PDSM_ARCHIVED: False}
    outcome(w.cpatch(w.reader, w.unique_id(w.plain), archive(True)), 403)
    r = w.cpatch(w.author, w.unique_id(w.plain), archive(True))
    assert r.status_code == 200, r.text
    assert _archived_exts(r.json()) == {PDSM_ARCHIVED: True, DMP_ARCHIVED: True}
    assert w.plain not in w.rules.visible(w.reader, w.pid)
    assert w.plain in w.rules.visible(w.reader, w.pid, archived="true")
    # an archived document is still found by its identifier, to unarchive it
    r = w.cpatch(w.author, w.unique_id(w.plain), archive(False))
    assert r.status_code == 200, r.text
    assert _archived_exts(r.json()) == {PDSM_ARCHIVED: False}
    assert w.plain in w.rules.visible(w.reader, w.pid)


def test_archive_by_json_pointer_and_by_the_alias(w: World) -> None:
    stored = w.stored(w.plain)
    index = next(i for i, e in enumerate(stored["extension"]) if e["url"] == PDSM_ARCHIVED)
    r = w.patch(
        w.author,
        w.plain,
        [
            {"op": "test", "path": f"/extension/{index}/valueBoolean", "value": False},
            {"op": "replace", "path": f"/extension/{index}/valueBoolean", "value": True},
        ],
    )
    assert r.status_code == 200, r.text
    assert w.plain not in w.rules.visible(w.reader, w.pid)
    # a client that knows only carnet's alias removes it, changing nothing of PDSm's: unarchived
    body = r.json()
    alias = next(i for i, e in enumerate(body["extension"]) if e["url"] == DMP_ARCHIVED)
    r = w.patch(w.author, w.plain, [{"op": "remove", "path": f"/extension/{alias}"}])
    assert r.status_code == 200, r.text
    assert _archived_exts(r.json())[PDSM_ARCHIVED] is True  # PDSm's says archived still
    # … whereas changing the alias' value does
    alias_ops = [
        {"op": "add", "path": "/extension/-", "value": {"url": DMP_ARCHIVED, "valueBoolean": False}}
    ]
    r = w.patch(w.author, w.plain, alias_ops)
    assert r.status_code == 200, r.text
    assert _archived_exts(r.json()) == {PDSM_ARCHIVED: False}
    assert w.plain in w.rules.visible(w.reader, w.pid)
    # and through PUT, the alias alone archives, as before
    stored = w.stored(w.plain)
    r = w.rules.put_doc(
        w.author, {**stored, "extension": [{"url": DMP_ARCHIVED, "valueBoolean": True}]}
    )
    assert r.status_code == 200, r.text
    assert _archived_exts(r.json()) == {PDSM_ARCHIVED: True, DMP_ARCHIVED: True}


# -- what a PATCH may not do ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ops", "expression"),
    [
        (
            [{"op": "replace", "path": "/description", "value": "x"}],
            "DocumentReference.description",
        ),
        ([{"op": "add", "path": "/description", "value": "x"}], "DocumentReference.description"),
        ([{"op": "remove", "path": "/subject"}], "DocumentReference.subject"),
        ([{"op": "replace", "path": "/meta/versionId", "value": "9"}], "DocumentReference.meta"),
        ([{"op": "replace", "path": "/id", "value": "other"}], "DocumentReference.id"),
        ([{"op": "replace", "path": "", "value": {}}], "DocumentReference"),
        (
            [{"op": "move", "from": "/description", "path": "/status"}],
            "DocumentReference.description",
        ),
        (
            [{"op": "replace", "path": "/content/0/attachment/title", "value": "x"}],
            "DocumentReference.content",
        ),
    ],
)
def test_a_patch_changes_only_status_labels_and_the_archive_flag(
    w: World, ops: list[dict[str, Any]], expression: str
) -> None:
    issue = outcome(w.patch(w.author, w.plain, ops), 422)
    assert issue["expression"] == [expression], issue
    assert "/status, /securityLabel and the archive extension" in issue["diagnostics"]
    assert w.stored(w.plain)["meta"]["versionId"] == "1"


def test_a_patch_that_does_not_apply(w: World) -> None:
    cases: list[tuple[Any, int, str]] = [
        # another extension changed through /extension: refused as by PUT
        (
            [{"op": "add", "path": "/extension/-", "value": {"url": "urn:x", "valueString": "y"}}],
            422,
            "DocumentReference.extension",
        ),
        (
            [{"op": "replace", "path": "/securityLabel/7", "value": {}}],
            422,
            "DocumentReference.securityLabel",
        ),
        (
            [{"op": "test", "path": "/status", "value": "superseded"}, *DELETE],
            422,
            "DocumentReference.status",
        ),
        (
            [
                {
                    "op": "replace",
                    "path": "/extension[url:'urn:no-such']/valueBoolean",
                    "value": True,
                }
            ],
            422,
            "DocumentReference.extension",
        ),
        (
            [{"op": "replace", "path": "/status", "value": "archived"}],
            400,
            "DocumentReference.status",
        ),
        (
            [{"op": "replace", "path": "/securityLabel/0", "value": {"coding": [{"code": "XX"}]}}],
            422,
            "DocumentReference.securityLabel",
        ),
    ]
    for ops, status, expression in cases:
        issue = outcome(w.patch(w.author, w.plain, ops), status)
        assert issue.get("expression", [None])[0] == expression, (ops, issue)
    for body, status in (
        ({"op": "replace"}, 400),  # not an array
        ([{"op": "frobnicate", "path": "/status"}], 400),
        ([{"op": "replace", "path": "/status"}], 400),  # no value
        ([{"op": "replace", "path": "status", "value": "current"}], 400),  # not a pointer
        (["replace"], 400),
    ):
        outcome(w.patch(w.author, w.plain, body), status)
    r = w.http.patch(
        f"/fhir/DocumentReference/{w.plain}",
        content=b"[{",
        headers={**w.author.headers, **JSON_PATCH},
    )
    outcome(r, 400)
    # FHIRPath Patch and merge patch: 415, naming JSON Patch
    for ctype in ("application/fhir+json", "application/merge-patch+json", "application/xml"):
        r = w.http.patch(
            f"/fhir/DocumentReference/{w.plain}",
            content=json.dumps({"resourceType": "Parameters"}),
            headers={**w.author.headers, "Content-Type": ctype},
        )
        assert "json-patch+json" in outcome(r, 415)["diagnostics"]
    assert w.stored(w.plain)["meta"]["versionId"] == "1"
    # an empty patch changes nothing
    r = w.patch(w.author, w.plain, [])
    assert r.status_code == 200 and r.json()["meta"]["versionId"] == "1"


def test_if_match(w: World) -> None:
    outcome(w.patch(w.author, w.plain, DELETE, **{"If-Match": 'W/"5"'}), 412)
    outcome(w.cpatch(w.author, w.unique_id(w.plain), DELETE, **{"If-Match": 'W/"5"'}), 412)
    outcome(w.patch(w.author, w.plain, DELETE, **{"If-Match": "five"}), 400)
    r = w.patch(w.author, w.plain, MASK, **{"If-Match": 'W/"1"'})
    assert r.status_code == 200 and r.headers["etag"] == 'W/"2"'
    # a stale version of a document the caller may not see: as missing, not 412
    refused = w.patch(w.stranger, w.plain, MASK, **{"If-Match": 'W/"1"'})
    assert (refused.status_code, refused.json()) == (
        404,
        w.patch(w.stranger, w.missing(), MASK).json(),
    )


# -- conditional PATCH ----------------------------------------------------------------------------


def test_conditional_patch_selects_one_readable_document(w: World, factory: Factory) -> None:
    # no identifier, several, other parameters: 400
    for params in ({}, {"identifier": ["a", "b"]}, {"identifier": "a", "status": "current"}):
        r = w.http.patch(
            "/fhir/DocumentReference",
            params=params,
            content=json.dumps(MASK),
            headers={**w.author.headers, **JSON_PATCH},
        )
        outcome(r, 400)
    # the same uniqueId in two records the author fed: 412, nothing changed
    uid = f"urn:oid:1.2.250.1.999.{uuid.uuid4().int % 10**12}"
    docs, records = [], []
    for _ in range(2):
        ins, pid = factory.open_record(w.author.headers)
        records.append((ins, pid))
        content = pdf_bytes()
        dr = docref(ins, unique_id=uid, author_rpps=w.author.rpps or "")
        docs += created_doc_ids(
            factory.publish(ins, [(dr, content, "application/pdf")], w.author.headers)
        )
    assert len(set(docs)) == 2
    outcome(w.cpatch(w.author, uid, MASK), 412)
    assert {w.stored(d)["meta"]["versionId"] for d in docs} == {"1"}
    # … whereas a professional who reads one of the two finds that one
    reader = w.rules.pro()
    ins0, pid0 = records[0]
    assert w.rules.consent(w.rules.patient(ins0), pid0, rpps=reader.rpps).status_code == 201
    outcome(w.cpatch(reader, uid, MASK), 403)  # found and read, not theirs to mask
    r = w.cpatch(reader, uid, [{"op": "test", "path": "/id", "value": docs[0]}])
    assert r.status_code == 200 and r.json()["id"] == docs[0]
    # identifier without a system, as a search takes it
    r = w.http.patch(
        "/fhir/DocumentReference",
        params={"identifier": uid},
        content=json.dumps(MASK),
        headers={**w.author.headers, **JSON_PATCH},
    )
    outcome(r, 412)


def test_conditional_put_updates_the_one_readable_document(w: World) -> None:
    """``PUT DocumentReference?identifier=…``: the same rules as PUT by id; a document the
    caller may not read answers as a missing one (404), and nothing is created."""
    uid = w.unique_id(w.plain)
    stored = w.stored(w.plain)
    archived = {
        **stored,
        "extension": [
            {
                "url": "https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/"
                "pdsm-ext-is-archived",
                "valueBoolean": True,
            }
        ],
    }

    def cput(who: Any, body: dict[str, Any], identifier: str = uid) -> httpx.Response:
        return w.http.put(
            "/fhir/DocumentReference",
            params={"identifier": identifier},
            content=json.dumps(body),
            headers={**who.headers, "Content-Type": "application/fhir+json"},
        )

    outsider = w.rules.pro()
    refused = cput(outsider, archived)
    missing = cput(outsider, archived, "urn:oid:1.2.250.1.999.404")
    assert refused.status_code == missing.status_code == 404
    assert refused.json() == missing.json()
    r = cput(w.author, archived)
    assert r.status_code == 200, r.text
    assert r.json()["id"] == w.plain and r.json()["meta"]["versionId"] == "2"
    assert w.stored(w.plain)["meta"]["versionId"] == "2"


# -- ITI-65: the superseding PATCH as a Binary JSON Patch ------------------------------------------


def _replacement_bundle(
    ins: str, old: str, patch_entry: dict[str, Any], author: str
) -> dict[str, Any]:
    content = pdf_bytes()
    new = docref(ins, author_rpps=author, content=content, replaces=old)
    b = bundle(ins, [(new, content, "application/pdf")])
    b["entry"].append(patch_entry)
    return b


def _json_patch_entry(
    target: str, ops: list[dict[str, Any]], *, lines: bool = False
) -> dict[str, Any]:
    raw = json.dumps(ops).encode()
    data = base64.encodebytes(raw).decode() if lines else base64.b64encode(raw).decode()
    return {
        "fullUrl": "urn:uuid:patch",
        "resource": {
            "resourceType": "Binary",
            "contentType": "application/json-patch+json",
            "data": data,
        },
        "request": {"method": "PATCH", "url": f"DocumentReference/{target}"},
    }


def test_iti65_accepts_the_superseding_patch_as_a_binary_json_patch(
    w: World, factory: Factory
) -> None:
    author = w.author.rpps or ""
    superseding = [{"op": "replace", "path": "/status", "value": "superseded"}]
    # any other JSON Patch in a transaction: refused, nothing stored
    for ops in (MASK, DELETE, [*superseding, *archive(True)]):
        b = _replacement_bundle(w.ins, w.plain, _json_patch_entry(w.plain, ops), author)
        issue = outcome(
            w.http.post("/fhir", json=b, headers={**w.author.headers, **FHIR_JSON}), 422
        )
        assert issue["expression"] == ["Bundle.entry[3]"], issue
    assert w.stored(w.plain)["status"] == "current"
    # the superseding one (its base64 with MIME line breaks) is accepted as redundant
    b = _replacement_bundle(
        w.ins, w.plain, _json_patch_entry(w.plain, superseding, lines=True), author
    )
    r = w.http.post("/fhir", json=b, headers={**w.author.headers, **FHIR_JSON})
    assert r.status_code == 200, r.text
    patched = r.json()["entry"][3]["response"]
    assert patched["status"] == "200 OK"
    assert patched["location"].endswith(f"/DocumentReference/{w.plain}/_history/2")
    assert w.stored(w.plain)["status"] == "superseded"
