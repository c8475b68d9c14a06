"""Publishing as IHE MHD 4.2.3 defines it (issue 8, "Publish as MHD 4.2.3 defines it"):

- the submission set's uniqueId is its ``usual`` identifier (``urn:oid:``), the entryUUID its
  ``official`` one (``urn:uuid:``); carnet's earlier form (an ``official`` identifier alone) is
  still read; what is missing is said;
- ``DocumentReference.identifier`` carries the entryUUID (sent, or assigned), and the
  ``identifier`` searches find by uniqueId or entryUUID (TD3.1b);
- Folders (List with the code ``folder``) in ITI-65, stored, searched and read in ITI-66 with
  the confidentiality of submission sets;
- FHIR documents served at ``GET Bundle/{id}`` (PDSm for DMP TD3.2 case 3), a refused one as a
  missing one;
- the Lists ITI-105 makes carry a usual uniqueId, an entryUUID, a sourceId (an OID), their
  author and designationType.

The ANS examples (tests/fixtures/pdsm) are used with their INS corrected (the published key 45
is wrong, see test_e2e_pdsm_examples.py).
"""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from carnet.domain.documents import is_entry_uuid
from tests.factories import (
    FHIR_JSON,
    TEST_OID,
    Factory,
    Person,
    Rules,
    bundle,
    created_doc_ids,
    docref,
    outcome,
    pdf_bytes,
)

PDSM = Path(__file__).resolve().parents[1] / "fixtures" / "pdsm"
EXAMPLE_INS = "123456789012345"
EXAMPLE_SYSTEM = "urn:oid:1.2.250.1.213.1.4.8"
MHD_LIST_TYPES = "https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes"
SOURCE_ID = "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-sourceId"
DESIGNATION_TYPE = "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-designationType"
RFC3986 = "urn:ietf:rfc:3986"
PDF = "application/pdf"


@pytest.fixture()
def rules(http: httpx.Client, factory: Factory) -> Rules:
    return Rules(http, factory)


def _example(name: str, ins: str) -> dict[str, Any]:
    """An ANS example with its INS replaced by a valid test INS."""
    text = (PDSM / name).read_text(encoding="utf-8")
    text = text.replace(f"{EXAMPLE_SYSTEM}|{EXAMPLE_INS}", f"urn:oid:{TEST_OID}|{ins}")
    out: dict[str, Any] = json.loads(text.replace(EXAMPLE_INS, ins))
    return out


def _oid() -> str:
    return f"urn:oid:1.2.250.1.999.42.{uuid.uuid4().int % 10**15}"


def _uuid() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def _set(b: dict[str, Any]) -> dict[str, Any]:
    lists = [e["resource"] for e in b["entry"] if e["resource"]["resourceType"] == "List"]
    return lists[0]


def _post(http: httpx.Client, who: dict[str, str], body: dict[str, Any]) -> httpx.Response:
    return http.post("/fhir", json=body, headers={**who, **FHIR_JSON})


def _lists(http: httpx.Client, who: dict[str, str], **params: str) -> dict[str, Any]:
    r = http.get("/fhir/List", params=params, headers=who)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _ids(body: dict[str, Any]) -> list[str]:
    return [e["resource"]["id"] for e in body.get("entry") or []]


def _entries(resource: dict[str, Any]) -> list[str]:
    return [i["item"]["reference"].rsplit("/", 1)[-1] for i in resource.get("entry") or []]


def _location_id(r: httpx.Response, n: int) -> str:
    loc: str = r.json()["entry"][n]["response"]["location"]
    return loc.split("/_history")[0].rsplit("/", 1)[-1]


def _folder(
    ins: str, items: list[str], unique_id: str | None = None, entry_uuid: str | None = None
) -> dict[str, Any]:
    """A Folder (IHE MHD 4.2.3 Folder Comprehensive) filing ``items`` (references)."""
    identifiers = [{"use": "usual", "system": RFC3986, "value": unique_id or _oid()}]
    if entry_uuid:
        identifiers.append({"use": "official", "system": RFC3986, "value": entry_uuid})
    return {
        "fullUrl": f"urn:uuid:{uuid.uuid4()}",
        "resource": {
            "resourceType": "List",
            "identifier": identifiers,
            "extension": [
                {
                    "url": DESIGNATION_TYPE,
                    "valueCodeableConcept": {
                        "coding": [{"system": "http://snomed.info/sct", "code": "225728007"}]
                    },
                }
            ],
            "status": "current",
            "mode": "working",
            "title": "Suivi de grossesse",
            "code": {"coding": [{"system": MHD_LIST_TYPES, "code": "folder"}]},
            "subject": {"reference": f"Patient?identifier=urn:oid:{TEST_OID}|{ins}"},
            "entry": [{"item": {"reference": ref}} for ref in items],
        },
        "request": {"method": "POST", "url": "List"},
    }


def _with_folder(
    ins: str,
    docs: list[tuple[dict[str, Any], bytes, str]],
    stored: tuple[str, ...] = (),
    **kw: Any,
) -> dict[str, Any]:
    """A bundle of ``docs`` and one Folder filing all of them and the ``stored`` documents."""
    b = bundle(ins, docs)
    new = [e["fullUrl"] for e in b["entry"] if e["resource"]["resourceType"] == "DocumentReference"]
    b["entry"].append(_folder(ins, new + [f"DocumentReference/{d}" for d in stored], **kw))
    return b


def _doc(ins: str, rpps: str, labels: list[str] | None = None) -> tuple[dict[str, Any], bytes, str]:
    content = pdf_bytes()
    return docref(ins, content=content, author_rpps=rpps, labels=labels), content, PDF


# -- submission set identifiers ----------------------------------------------------------------


def test_usual_unique_id_and_official_entry_uuid(http: httpx.Client, factory: Factory) -> None:
    """The ANS ITI-65 example with an MHD 4.2.3 submission set identifier: both stored in their
    place, served back, and found by either."""
    pro = factory.professional(rpps="899700218896")
    ins, pid = factory.open_record(pro)
    b = _example("Bundle-example-td2-iti65-lot-soumission.json", ins)
    set_uid, set_uuid, doc_uuid = _oid(), _uuid(), _uuid()
    _set(b)["identifier"] = [
        {"use": "usual", "system": RFC3986, "value": set_uid},
        {"use": "official", "system": RFC3986, "value": set_uuid},
    ]
    dr = b["entry"][1]["resource"]
    dr["identifier"] = [{"use": "official", "system": RFC3986, "value": doc_uuid}]
    r = _post(http, pro, b)
    assert r.status_code == 200, r.text
    [did] = created_doc_ids(r)
    set_id = _location_id(r, 0)
    listed = http.get(f"/fhir/List/{set_id}", headers=pro).json()
    assert listed["identifier"] == [
        {"use": "usual", "system": RFC3986, "value": set_uid},
        {"use": "official", "system": RFC3986, "value": set_uuid},
    ]
    for value in (set_uid, set_uuid, f"{RFC3986}|{set_uid}"):
        found = _lists(http, pro, patient=pid, identifier=value)
        assert _ids(found) == [set_id] and found["total"] == 1, value
    assert _lists(http, pro, patient=pid, identifier=_oid())["total"] == 0
    doc = http.get(f"/fhir/DocumentReference/{did}", headers=pro).json()
    assert doc["identifier"] == [{"use": "official", "system": RFC3986, "value": doc_uuid}]
    uid = dr["masterIdentifier"]["value"]
    for value in (doc_uuid, uid, f"{RFC3986}|{doc_uuid}"):
        r = http.get(
            "/fhir/DocumentReference", params={"patient": pid, "identifier": value}, headers=pro
        )
        assert [e["resource"]["id"] for e in r.json()["entry"]] == [did], value
    # without naming the patient too (TD3.1b: by identifier)
    r = http.get("/fhir/DocumentReference", params={"identifier": doc_uuid}, headers=pro)
    assert [e["resource"]["id"] for e in r.json()["entry"]] == [did]


def test_entry_uuids_assigned_when_none_was_sent(http: httpx.Client, factory: Factory) -> None:
    pro = factory.professional()
    ins, pid = factory.open_record(pro)
    r = factory.publish(ins, [_doc(ins, "899700218896")], pro)
    assert r.status_code == 200, r.text
    [did] = created_doc_ids(r)
    doc = http.get(f"/fhir/DocumentReference/{did}", headers=pro).json()
    [ident] = doc["identifier"]
    assert ident["use"] == "official" and ident["system"] == RFC3986
    assert is_entry_uuid(ident["value"]), ident
    # the same document read twice: the same entryUUID (stored, not made up at each read)
    again = http.get(f"/fhir/DocumentReference/{did}", headers=pro).json()
    assert again["identifier"] == doc["identifier"]
    found = http.get(
        "/fhir/DocumentReference", params={"identifier": ident["value"]}, headers=pro
    ).json()
    assert [e["resource"]["id"] for e in found["entry"]] == [did]
    [listed] = _lists(http, pro, patient=pid)["entry"]
    uses = [(i["use"], i["value"].split(":")[1]) for i in listed["resource"]["identifier"]]
    assert uses == [("usual", "oid"), ("official", "uuid")]
    assert is_entry_uuid(listed["resource"]["identifier"][1]["value"])


def test_earlier_form_official_identifier_alone(http: httpx.Client, factory: Factory) -> None:
    """carnet's earlier form: an official identifier alone is the uniqueId (and, being a
    urn:uuid, the entryUUID too); it is served as sent, and a resubmission is answered alike."""
    pro = factory.professional()
    ins, pid = factory.open_record(pro)
    content = pdf_bytes()
    dr = docref(ins, content=content)
    b = bundle(ins, [(dr, content, PDF)])
    value = _uuid()
    _set(b)["identifier"] = [{"use": "official", "system": RFC3986, "value": value}]
    first = _post(http, pro, json.loads(json.dumps(b)))
    assert first.status_code == 200, first.text
    set_id = _location_id(first, 0)
    listed = http.get(f"/fhir/List/{set_id}", headers=pro).json()
    assert listed["identifier"] == [{"use": "official", "system": RFC3986, "value": value}]
    assert _ids(_lists(http, pro, patient=pid, identifier=value)) == [set_id]
    again = _post(http, pro, b)
    assert again.status_code == 200, again.text
    assert _location_id(again, 0) == set_id


@pytest.mark.parametrize(
    ("identifiers", "said"),
    [
        (None, ["has no uniqueId", "use 'usual'", "urn:oid:<OID>", "use 'official'"]),
        ([{"use": "secondary", "system": RFC3986, "value": "x"}], ["has no uniqueId"]),
        ([{"use": "usual", "system": RFC3986, "value": _uuid()}], ["is not urn:oid:<OID>"]),
        (
            [
                {"use": "usual", "system": RFC3986, "value": _oid()},
                {"use": "official", "system": RFC3986, "value": "urn:uuid:not-a-uuid"},
            ],
            ["entryUUID", "is not urn:uuid:<UUID>"],
        ),
        (
            [
                {"use": "usual", "system": RFC3986, "value": _oid()},
                {"use": "usual", "system": RFC3986, "value": _oid()},
            ],
            ["more than one uniqueId"],
        ),
    ],
)
def test_what_is_wrong_with_the_identifier_is_said(
    http: httpx.Client, factory: Factory, identifiers: list[Any] | None, said: list[str]
) -> None:
    pro = factory.professional(rpps="899700218896")
    ins, pid = factory.open_record(pro)
    b = _example("Bundle-example-td2-iti65-lot-soumission.json", ins)
    if identifiers is not None:
        _set(b)["identifier"] = identifiers
    issue = outcome(_post(http, pro, b), 422)
    assert issue["expression"] == ["List.identifier"], issue
    for words in said:
        assert words in issue["diagnostics"], (words, issue["diagnostics"])
    assert _lists(http, pro, patient=pid)["total"] == 0


def test_an_entry_uuid_used_by_another_document_is_refused(
    http: httpx.Client, factory: Factory
) -> None:
    pro = factory.professional()
    ins, pid = factory.open_record(pro)
    taken = _uuid()
    first, content = docref(ins, content=(c := pdf_bytes())), c
    first["identifier"] = [{"use": "official", "system": RFC3986, "value": taken}]
    r = factory.publish(ins, [(first, content, PDF)], pro)
    assert r.status_code == 200, r.text
    # the same document again keeps its entryUUID: answered, not refused
    again = factory.publish(ins, [(json.loads(json.dumps(first)), content, PDF)], pro)
    assert again.status_code == 200, again.text
    assert created_doc_ids(again) == created_doc_ids(r)
    other = docref(ins, content=(c2 := pdf_bytes()))
    other["identifier"] = [{"use": "official", "system": RFC3986, "value": taken}]
    issue = outcome(factory.publish(ins, [(other, c2, PDF)], pro), 409)
    assert "entryUUID" in issue["diagnostics"]
    assert issue["expression"][0].endswith("identifier"), issue
    bad = docref(ins, content=(c3 := pdf_bytes()))
    bad["identifier"] = [{"use": "official", "system": RFC3986, "value": "urn:uuid:1234"}]
    issue = outcome(factory.publish(ins, [(bad, c3, PDF)], pro), 422)
    assert "entryUUID" in issue["diagnostics"]
    total = http.get("/fhir/DocumentReference", params={"patient": pid}, headers=pro).json()
    assert total["total"] == 1


# -- folders -------------------------------------------------------------------------------------


def test_folder_stored_searched_and_read(http: httpx.Client, factory: Factory) -> None:
    pro = factory.professional()
    ins, pid = factory.open_record(pro)
    folder_uid, folder_uuid = _oid(), _uuid()
    b = _with_folder(
        ins,
        [_doc(ins, "899700218896"), _doc(ins, "899700218896")],
        unique_id=folder_uid,
        entry_uuid=folder_uuid,
    )
    r = _post(http, pro, b)
    assert r.status_code == 200, r.text
    docs = created_doc_ids(r)
    out = r.json()["entry"]
    assert out[-1]["response"]["status"] == "201 Created"
    assert "/List/" in out[-1]["response"]["location"]
    folder_id, set_id = _location_id(r, len(out) - 1), _location_id(r, 0)
    assert folder_id != set_id
    folder = http.get(f"/fhir/List/{folder_id}", headers=pro).json()
    assert folder["code"]["coding"][0]["code"] == "folder"
    assert folder["title"] == "Suivi de grossesse"
    assert folder["subject"] == {"reference": f"Patient/{pid}"}
    assert folder["identifier"] == [
        {"use": "usual", "system": RFC3986, "value": folder_uid},
        {"use": "official", "system": RFC3986, "value": folder_uuid},
    ]
    assert _entries(folder) == docs
    assert folder["date"]  # lastUpdateTime
    everything = _lists(http, pro, patient=pid)
    assert set(_ids(everything)) == {set_id, folder_id} and everything["total"] == 2
    assert _ids(_lists(http, pro, patient=pid, code="folder")) == [folder_id]
    assert _ids(_lists(http, pro, patient=pid, code="submissionset")) == [set_id]
    assert _ids(_lists(http, pro, patient=pid, code=f"{MHD_LIST_TYPES}|folder")) == [folder_id]
    for value in (folder_uid, folder_uuid):
        assert _ids(_lists(http, pro, patient=pid, identifier=value)) == [folder_id]
    # sourceId is a submission set's: no folder has one
    assert _ids(_lists(http, pro, patient=pid, **{"source.identifier": "urn:oid:1.2.3.4.5"})) == [
        set_id
    ]
    paged = _lists(http, pro, patient=pid, _count="1")
    assert paged["total"] == 2 and len(paged["entry"]) == 1
    nxt = next(link["url"] for link in paged["link"] if link["relation"] == "next")
    second = http.get(nxt, headers=pro).json()
    assert {*_ids(paged), *_ids(second)} == {set_id, folder_id}


def test_folder_files_a_stored_document_and_grows(http: httpx.Client, factory: Factory) -> None:
    """A Folder may file documents stored before; sent again (its uniqueId), it adds the
    documents it lists (ITI-65: folders are created or updated; XDS only adds)."""
    pro = factory.professional()
    ins, pid = factory.open_record(pro)
    [old] = created_doc_ids(factory.publish(ins, [_doc(ins, "899700218896")], pro))
    folder_uid = _oid()
    r = _post(
        http, pro, _with_folder(ins, [_doc(ins, "899700218896")], (old,), unique_id=folder_uid)
    )
    assert r.status_code == 200, r.text
    [first] = created_doc_ids(r)
    folder_id = _location_id(r, len(r.json()["entry"]) - 1)
    assert set(_entries(http.get(f"/fhir/List/{folder_id}", headers=pro).json())) == {old, first}
    r = _post(http, pro, _with_folder(ins, [_doc(ins, "899700218896")], unique_id=folder_uid))
    assert r.status_code == 200, r.text
    [second] = created_doc_ids(r)
    assert r.json()["entry"][-1]["response"]["status"] == "200 OK"
    assert _location_id(r, len(r.json()["entry"]) - 1) == folder_id
    folder = http.get(f"/fhir/List/{folder_id}", headers=pro).json()
    assert set(_entries(folder)) == {old, first, second}
    assert _lists(http, pro, patient=pid, code="folder")["total"] == 1


def test_folder_errors_are_said(http: httpx.Client, factory: Factory) -> None:
    pro = factory.professional()
    ins, _pid = factory.open_record(pro)
    b = _with_folder(ins, [_doc(ins, "899700218896")])
    b["entry"][-1]["resource"]["identifier"] = []
    issue = outcome(_post(http, pro, b), 422)
    assert "folder has no uniqueId" in issue["diagnostics"]
    assert issue["expression"][0].startswith("Bundle.entry[3].resource"), issue
    b = _with_folder(ins, [_doc(ins, "899700218896")])
    b["entry"][-1]["resource"]["entry"] = [{"item": {"reference": "urn:uuid:nothing"}}]
    issue = outcome(_post(http, pro, b), 422)
    assert issue["expression"] == ["Bundle.entry[3].resource.entry[0].item"], issue
    other_ins, _ = factory.open_record(pro)
    b = _with_folder(ins, [_doc(ins, "899700218896")])
    b["entry"][-1]["resource"]["subject"] = {
        "reference": f"Patient?identifier=urn:oid:{TEST_OID}|{other_ins}"
    }
    issue = outcome(_post(http, pro, b), 422)
    assert "another patient" in issue["diagnostics"]


class World:
    """A record opened by ``author``; ``reader`` authorised by the patient; one folder filing a
    plain and a masked document, another filing only a masked one."""

    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        http = rules.http
        self.author = rules.pro()
        self.reader = rules.pro()
        self.ins, self.pid, self.patient = rules.record(self.author)
        assert rules.consent(self.patient, self.pid, rpps=self.reader.rpps).status_code == 201
        rpps = self.author.rpps or ""
        self.masked_uid = _oid()
        r = _post(
            http,
            self.author.headers,
            _with_folder(
                self.ins,
                [_doc(self.ins, rpps), _doc(self.ins, rpps, ["N", "MASQUE_PS"])],
            ),
        )
        self.plain, self.masked = created_doc_ids(r)
        self.mixed = _location_id(r, len(r.json()["entry"]) - 1)
        r = _post(
            http,
            self.author.headers,
            _with_folder(
                self.ins, [_doc(self.ins, rpps, ["N", "MASQUE_PS"])], unique_id=self.masked_uid
            ),
        )
        [self.masked_only_doc] = created_doc_ids(r)
        self.masked_only = _location_id(r, len(r.json()["entry"]) - 1)

    def folders(self, who: Person, **params: str) -> dict[str, Any]:
        return _lists(self.rules.http, who.headers, patient=self.pid, code="folder", **params)


@pytest.fixture()
def world(rules: Rules) -> World:
    return World(rules)


def test_folders_show_only_what_the_caller_may_read(rules: Rules, world: World) -> None:
    w = world
    http = rules.http
    seen = w.folders(w.author)
    assert set(_ids(seen)) == {w.mixed, w.masked_only} and seen["total"] == 2
    # the authorised reader: the mixed folder with its plain document only; the folder of a
    # masked document not at all (nor counted), and read as a missing one
    seen = w.folders(w.reader)
    assert _ids(seen) == [w.mixed] and seen["total"] == 1
    assert _entries(seen["entry"][0]["resource"]) == [w.plain]
    assert w.masked not in json.dumps(seen) and w.masked_only_doc not in json.dumps(seen)
    hidden = http.get(f"/fhir/List/{w.masked_only}", headers=w.reader.headers)
    missing = http.get(f"/fhir/List/{w.pid}-{'0' * 20}", headers=w.reader.headers)
    assert hidden.status_code == missing.status_code == 404
    assert hidden.content == missing.content
    assert _ids(_lists(http, w.reader.headers, patient=w.pid, identifier=w.masked_uid)) == []
    mixed = http.get(f"/fhir/List/{w.mixed}", headers=w.reader.headers).json()
    assert _entries(mixed) == [w.plain]
    # the patient sees both; a professional without authorisation sees nothing
    assert w.folders(w.patient)["total"] == 2
    stranger = rules.pro()
    assert w.folders(stranger)["total"] == 0
    assert http.get(f"/fhir/List/{w.mixed}", headers=stranger.headers).content == missing.content


def _own_read_denials(rules: Rules, who: Person) -> list[str]:
    """The caller's own denied ``document.read`` traces as they see them, without what differs
    by nature (ids of events, times, chain values)."""
    r = rules.http.get(
        "/fhir/AuditEvent",
        params={"action": "document.read", "outcome": "4", "_count": 200},
        headers=who.headers,
    )
    assert r.status_code == 200, r.text
    out = []
    for e in r.json().get("entry") or []:
        ev = e["resource"]
        shown = {k: ev.get(k) for k in ("subtype", "action", "outcome", "outcomeDesc", "entity")}
        out.append(json.dumps(shown, sort_keys=True))
    return out


def test_a_folder_is_changed_only_by_whoever_sees_it(rules: Rules, world: World) -> None:
    """Adding to a folder the sender may not see answers as adding to a folder of another
    sender's they may not change; filing a document they may not read answers as filing a
    missing one."""
    w = world
    http = rules.http
    rpps = w.reader.rpps or ""
    hidden = _post(
        http, w.reader.headers, _with_folder(w.ins, [_doc(w.ins, rpps)], unique_id=w.masked_uid)
    )
    issue = outcome(hidden, 409)
    assert w.masked_only not in hidden.text
    assert "folder" in issue["diagnostics"]
    before = _own_read_denials(rules, w.reader)
    filed_masked = _post(
        http, w.reader.headers, _with_folder(w.ins, [_doc(w.ins, rpps)], (w.masked,))
    )
    after_masked = _own_read_denials(rules, w.reader)
    filed_missing = _post(
        http, w.reader.headers, _with_folder(w.ins, [_doc(w.ins, rpps)], (f"{w.pid}-{'0' * 20}",))
    )
    assert filed_masked.status_code == filed_missing.status_code == 422
    assert (
        filed_masked.json()["issue"][0]["diagnostics"]
        == (filed_missing.json()["issue"][0]["diagnostics"])
    )
    # each refusal traced once, and the two traces look alike to their actor (the refused
    # document's id, as they named it, aside)
    after_missing = _own_read_denials(rules, w.reader)
    assert len(after_masked) == len(before) + 1 == len(after_missing) - 1
    new_masked = [t for t in after_masked if t not in before]
    new_missing = [t for t in after_missing if t not in after_masked]
    assert [t.replace(w.masked, "X") for t in new_masked] == [
        t.replace(f"{w.pid}-{'0' * 20}", "X") for t in new_missing
    ]
    assert w.folders(w.author)["total"] == 2
    # what the reader may see, they add to
    ok = _post(http, w.reader.headers, _with_folder(w.ins, [_doc(w.ins, rpps)], (w.plain,)))
    assert ok.status_code == 200, ok.text


# -- FHIR documents (TD3.2 case 3) ---------------------------------------------------------------


def _fhir_document_bundle(ins: str, rpps: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """An ITI-65 bundle whose document is the ANS FHIR document example, and that example."""
    document = _example("Bundle-example-annexe-fhir-document.json", ins)
    data = json.dumps(document).encode()
    dr = docref(ins, content=data, author_rpps=rpps, content_type="application/fhir+json")
    dr["content"][0]["format"]["code"] = "urn:ihe:iti:xds:2017:mimeTypeSufficient"
    return bundle(ins, [(dr, data, "application/fhir+json")]), document


def test_fhir_document_served_as_its_bundle(rules: Rules, world: World) -> None:
    w = world
    http = rules.http
    b, document = _fhir_document_bundle(w.ins, w.author.rpps or "")
    r = _post(http, w.author.headers, b)
    assert r.status_code == 200, r.text
    [did] = created_doc_ids(r)
    doc = http.get(f"/fhir/DocumentReference/{did}", headers=w.reader.headers).json()
    url = doc["content"][0]["attachment"]["url"]
    assert url.rsplit("/", 2)[-2] == "Bundle", url
    bid = url.rsplit("/", 1)[-1]
    got = http.get(
        f"/fhir/Bundle/{bid}", headers={**w.reader.headers, "Accept": "application/fhir+json"}
    )
    assert got.status_code == 200, got.text
    assert got.headers["content-type"].startswith("application/fhir+json")
    served = got.json()
    assert served["id"] == bid
    assert {k: v for k, v in served.items() if k != "id"} == {
        k: v for k, v in document.items() if k != "id"
    }
    # the same content as Binary/{id}
    raw = http.get(f"/fhir/Binary/{bid}", headers=w.reader.headers)
    assert json.loads(raw.content) == document


def test_a_refused_fhir_document_looks_missing(rules: Rules, world: World) -> None:
    w = world
    http = rules.http
    b, _document = _fhir_document_bundle(w.ins, w.author.rpps or "")
    dr = next(
        e["resource"] for e in b["entry"] if e["resource"]["resourceType"] == "DocumentReference"
    )
    dr["securityLabel"].append(
        {
            "coding": [
                {
                    "system": "https://mos.esante.gouv.fr/NOS/TRE_A07-StatutVisibiliteDocument/FHIR/TRE-A07-StatutVisibiliteDocument",
                    "code": "MASQUE_PS",
                }
            ]
        }
    )
    [did] = created_doc_ids(_post(http, w.author.headers, b))
    assert http.get(f"/fhir/Bundle/{did}", headers=w.author.headers).status_code == 200
    refused = http.get(f"/fhir/Bundle/{did}", headers=w.reader.headers)
    missing = http.get(f"/fhir/Bundle/{w.pid}-{'0' * 20}", headers=w.reader.headers)
    stranger = http.get(f"/fhir/Bundle/{did}", headers=rules.pro().headers)
    assert refused.status_code == missing.status_code == stranger.status_code == 404
    assert refused.content == missing.content == stranger.content
    assert refused.content == http.get(f"/fhir/Binary/{did}", headers=w.reader.headers).content
    # a document that is no FHIR document is not a Bundle either
    not_bundle = http.get(f"/fhir/Bundle/{w.plain}", headers=w.reader.headers)
    assert (not_bundle.status_code, not_bundle.content) == (404, missing.content)


def test_fhir_document_reads_are_traced_as_binary_reads(rules: Rules, world: World) -> None:
    w = world
    http = rules.http
    b, _document = _fhir_document_bundle(w.ins, w.author.rpps or "")
    [did] = created_doc_ids(_post(http, w.author.headers, b))

    def reads() -> list[tuple[str, str]]:
        r = http.get(
            "/fhir/AuditEvent",
            params={"patient": w.pid, "action": "document.read", "_count": 200},
            headers=w.patient.headers,
        )
        assert r.status_code == 200, r.text
        return [
            (e["resource"]["outcome"], json.dumps(e["resource"].get("entity")))
            for e in r.json().get("entry") or []
            if did in json.dumps(e["resource"].get("entity"))
        ]

    before = len(reads())
    assert http.get(f"/fhir/Bundle/{did}", headers=w.reader.headers).status_code == 200
    after_bundle = reads()
    assert len(after_bundle) == before + 1
    assert http.get(f"/fhir/Binary/{did}", headers=w.reader.headers).status_code == 200
    after_binary = reads()
    assert len(after_binary) == before + 2
    assert {after_bundle[0][0]} == {after_binary[0][0]}


def test_fhir_json_content_must_be_a_document_bundle(http: httpx.Client, factory: Factory) -> None:
    pro = factory.professional()
    ins, _pid = factory.open_record(pro)
    data = json.dumps({"resourceType": "Bundle", "type": "collection"}).encode()
    dr = docref(ins, content=data, content_type="application/fhir+json")
    issue = outcome(factory.publish(ins, [(dr, data, "application/fhir+json")], pro), 422)
    assert "FHIR document" in issue["diagnostics"]
    assert issue["expression"][0].endswith("content[0].attachment"), issue


# -- ITI-105: the submission set carnet makes ----------------------------------------------------


def test_iti105_submission_set(http: httpx.Client, factory: Factory) -> None:
    pro = factory.professional(rpps="899700218896", structure="10B0176734")
    ins, pid = factory.open_record(pro)
    content = pdf_bytes()
    dr = docref(ins, content=content, inline=True, class_code="11")
    r = http.post("/fhir/DocumentReference", json=dr, headers={**pro, **FHIR_JSON})
    assert r.status_code == 201, r.text
    [found] = _lists(http, pro, patient=pid)["entry"]
    ss = found["resource"]
    usual, official = ss["identifier"]
    assert usual["use"] == "usual" and usual["value"].startswith("urn:oid:2.25.")
    assert len(usual["value"]) <= len("urn:oid:") + 64
    assert official["use"] == "official" and is_entry_uuid(official["value"])
    [source_id] = [e for e in ss["extension"] if e["url"] == SOURCE_ID]
    assert source_id["valueIdentifier"]["value"].startswith("urn:oid:")
    [designation] = [e for e in ss["extension"] if e["url"] == DESIGNATION_TYPE]
    assert designation["valueCodeableConcept"]["coding"][0]["code"] == "11"
    author = next(c for c in ss["contained"] if "#" + c["id"] == ss["source"]["reference"])
    assert author["identifier"] == [
        {"system": "urn:oid:1.2.250.1.71.4.2.1", "value": "899700218896"}
    ]
    # the same structure, the same sourceId; another structure, another
    r2 = http.post(
        "/fhir/DocumentReference",
        json=docref(ins, content=(c := pdf_bytes()), inline=True),
        headers={**pro, **FHIR_JSON},
    )
    assert r2.status_code == 201, r2.text
    assert c
    sources = {
        next(x for x in e["resource"]["extension"] if x["url"] == SOURCE_ID)["valueIdentifier"][
            "value"
        ]
        for e in _lists(http, pro, patient=pid)["entry"]
    }
    assert sources == {source_id["valueIdentifier"]["value"]}
    for value in (usual["value"], official["value"]):
        assert _lists(http, pro, patient=pid, identifier=value)["total"] == 1


def test_inline_binary_data_example_publishes_with_a_folder(
    http: httpx.Client, factory: Factory
) -> None:
    """The ANS ITI-65 example (INS corrected, an MHD 4.2.3 uniqueId added) with a Folder filing
    its document: accepted; the Folder found by the patient's INS too."""
    pro = factory.professional(rpps="899700218896")
    ins, _pid = factory.open_record(pro)
    b = _example("Bundle-example-td2-iti65-lot-soumission.json", ins)
    _set(b)["identifier"] = [{"use": "usual", "system": RFC3986, "value": _oid()}]
    b["entry"].append(_folder(ins, [b["entry"][1]["fullUrl"]]))
    r = _post(http, pro, b)
    assert r.status_code == 200, r.text
    [did] = created_doc_ids(r)
    by_ins = _lists(
        http, pro, **{"patient.identifier": f"urn:oid:{TEST_OID}|{ins}", "code": "folder"}
    )
    [folder] = by_ins["entry"]
    assert _entries(folder["resource"]) == [did]
    assert (
        base64.b64decode(b["entry"][2]["resource"]["data"])
        == http.get(f"/fhir/Binary/{did}", headers=pro).content
    )


def test_list_search_traces_name_the_folders_returned(rules: Rules, world: World) -> None:
    """A search that returned a folder is traced naming it; whoever reads the trace sees it
    (it files a document they may read)."""
    w = world
    assert _ids(w.folders(w.reader)) == [w.mixed]

    def reader_searches(who: Person) -> list[str]:
        r = rules.http.get(
            "/fhir/AuditEvent",
            params={"patient": w.pid, "action": "list.search", "_count": 200},
            headers=who.headers,
        )
        assert r.status_code == 200, r.text
        return [
            json.dumps(e["resource"])
            for e in r.json().get("entry") or []
            if w.reader.rpps and w.reader.rpps in json.dumps(e["resource"]["agent"])
        ]

    for who in (w.patient, w.reader):
        [seen] = reader_searches(who)
        assert w.mixed in seen, seen
        assert w.masked_only not in seen
