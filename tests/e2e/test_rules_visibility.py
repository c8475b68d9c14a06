"""Who sees which document (dmp.md §3 rules 2-5 and 8, §4): médecin traitant, access matrix,
MASQUE_PS set by the patient, INVISIBLE_PATIENT set by the author, legal representatives, and the
author's own changes (replace, delete, archive)."""

from __future__ import annotations

import csv
from datetime import timedelta
from importlib import resources
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from carnet.domain.clock import utcnow
from carnet.store.tables import documents
from tests.conftest import Server
from tests.factories import (
    ARCHIVED_EXT,
    FHIR_JSON,
    RPPS,
    Factory,
    Person,
    Rules,
    created_doc_ids,
    execute_sql,
    label_codes,
    outcome,
    random_nir,
    related_person_resource,
)


@pytest.fixture()
def rules(http: httpx.Client, factory: Factory) -> Rules:
    return Rules(http, factory)


class World:
    """A record opened by ``author``; ``reader`` authorised by the patient; ``plain`` and
    ``masked`` (MASQUE_PS at submission, with the patient's agreement) by ``author``."""

    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self.author = rules.pro()
        self.reader = rules.pro()
        self.ins, self.pid, self.patient = rules.record(self.author)
        self.plain = rules.doc(self.ins, self.author)
        self.masked = rules.doc(self.ins, self.author, labels=["N", "MASQUE_PS"])
        r = rules.consent(self.patient, self.pid, rpps=self.reader.rpps)
        assert r.status_code == 201, r.text

    def stored(self, doc_id: str, who: Person | None = None) -> dict[str, Any]:
        r = self.rules.read(who or self.author, doc_id)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body


@pytest.fixture()
def world(rules: Rules) -> World:
    return World(rules)


def _reads(rules: Rules, who: Person, doc_id: str) -> bool:
    r = rules.read(who, doc_id)
    assert r.status_code in (200, 404), r.text
    c = rules.content(who, doc_id)
    assert c.status_code == r.status_code, (r.status_code, c.status_code)
    return r.status_code == 200


# -- médecin traitant ----------------------------------------------------------------------------


def _designate(rules: Rules, w: World, who: Person, rpps: str) -> httpx.Response:
    body = rules.patient_resource(w.patient, w.pid)
    body["generalPractitioner"] = [{"identifier": {"system": RPPS, "value": rpps}}]
    return rules.put_patient(who, body)


def test_masked_documents_author_and_treating_physician_only(rules: Rules, world: World) -> None:
    w = world
    gp = rules.pro(specialty="SM54")
    # masked: the authorised reader does not see it; the author does
    assert rules.visible(w.reader, w.pid) == {w.plain}
    assert not _reads(rules, w.reader, w.masked)
    assert rules.visible(w.author, w.pid) == {w.plain, w.masked}
    assert _reads(rules, w.author, w.masked)
    # not yet médecin traitant: nothing
    assert rules.visible(gp, w.pid) == set()

    r = _designate(rules, w, w.patient, gp.rpps)
    assert r.status_code == 200, r.text
    assert r.json()["generalPractitioner"][0]["identifier"]["value"] == gp.rpps
    assert rules.visible(gp, w.pid) == {w.plain, w.masked}
    assert _reads(rules, gp, w.masked) and _reads(rules, gp, w.plain)
    assert rules.visible(w.reader, w.pid) == {w.plain}
    assert not _reads(rules, w.reader, w.masked)

    # another médecin traitant replaces them
    other = rules.pro()
    assert _designate(rules, w, w.patient, other.rpps).status_code == 200
    assert rules.visible(gp, w.pid) == set()
    assert not _reads(rules, gp, w.masked)
    assert _reads(rules, other, w.masked)

    # a blocked médecin traitant reads nothing
    assert rules.consent(w.patient, w.pid, rpps=other.rpps, decision="deny").status_code == 201
    assert rules.visible(other, w.pid) == set()
    assert not _reads(rules, other, w.plain)


def test_unauthorised_professional_cannot_make_themselves_treating_physician(
    rules: Rules, world: World
) -> None:
    w = world
    intruder = rules.pro()
    r = _designate(rules, w, intruder, intruder.rpps)
    outcome(r, 404)
    assert "generalPractitioner" not in rules.patient_resource(w.patient, w.pid)
    assert not _reads(rules, intruder, w.masked)


# -- access matrix -------------------------------------------------------------------------------


def _matrix_rows() -> list[dict[str, str]]:
    try:
        text = resources.files("carnet.data").joinpath("access_matrix.csv").read_text("utf-8")
    except (FileNotFoundError, ModuleNotFoundError):
        return []
    return list(csv.DictReader(text.splitlines()))


PSY_LABELS = ("psychiatri", "psycholog")


def test_dentist_does_not_read_psychiatric_documents(rules: Rules) -> None:
    rows = _matrix_rows()
    assert rows, "the packaged access matrix is empty"
    psy = [
        r
        for r in rows
        if any(k in r["label"].lower() for k in PSY_LABELS) and r["type_code"] != "*"
    ]
    assert {r["type_code"] for r in psy} >= {"68599-0", "83901-9"}, psy
    for row in psy:
        assert row["40"] == "N" and row["10"] == "Y", row
    author = rules.pro()
    dentist = rules.pro(profession="40")
    medecin = rules.pro(profession="10", specialty="SM54")
    ins, pid, patient = rules.record(author)
    for who in (dentist, medecin):
        assert rules.consent(patient, pid, rpps=who.rpps).status_code == 201
    consult = rules.doc(ins, author, type_code="11488-4", class_code="10")
    psy_docs = {
        rules.doc(ins, author, type_code=r["type_code"], class_code=r["class_code"]) for r in psy
    }
    assert rules.visible(medecin, pid) == psy_docs | {consult}
    assert rules.visible(dentist, pid) == {consult}
    for did in psy_docs:
        assert _reads(rules, medecin, did)
        assert not _reads(rules, dentist, did)
        # asking for the type explicitly changes nothing
    codes = ",".join(r["type_code"] for r in psy)
    assert rules.search(dentist, pid, type=codes)["total"] == 0
    assert rules.search(medecin, pid, type=codes)["total"] == len(psy_docs)
    # the patient reads everything
    assert rules.visible(patient, pid) == psy_docs | {consult}


# -- MASQUE_PS, set by the patient ----------------------------------------------------------------


def test_patient_masks_and_unmasks(rules: Rules, world: World) -> None:
    w = world
    assert rules.visible(w.reader, w.pid) == {w.plain}
    stored = w.stored(w.plain, w.patient)
    r = rules.relabel(w.patient, stored, ["N", "MASQUE_PS"])
    assert r.status_code == 200, r.text
    assert label_codes(r.json()) == {"N", "MASQUE_PS"}
    assert r.json()["meta"]["versionId"] == "2"
    assert r.headers["etag"] == 'W/"2"'
    assert rules.search(w.reader, w.pid)["total"] == 0
    outcome(rules.read(w.reader, w.plain), 404)
    outcome(rules.content(w.reader, w.plain), 404)
    assert _reads(rules, w.author, w.plain)  # the author still reads
    assert _reads(rules, w.patient, w.plain)  # and the patient

    # unmask
    r = rules.relabel(w.patient, r.json(), ["N"])
    assert r.status_code == 200, r.text
    assert r.json()["meta"]["versionId"] == "3"
    assert rules.visible(w.reader, w.pid) == {w.plain}
    assert _reads(rules, w.reader, w.plain)

    # the patient also unmasks what the author masked at submission
    r = rules.relabel(w.patient, w.stored(w.masked, w.patient), ["N"])
    assert r.status_code == 200, r.text
    assert rules.visible(w.reader, w.pid) == {w.plain, w.masked}


def test_professionals_do_not_unmask_and_only_the_author_masks(rules: Rules, world: World) -> None:
    """docs/access.md "Masking": the author masks (dmp.md §4, PDSm for DMP TD3.3a), only the
    patient unmasks (CSP L1111-15)."""
    w = world
    # the authorised reader: neither way (the masked document it may not see: as missing)
    outcome(rules.relabel(w.reader, w.stored(w.plain), ["N", "MASQUE_PS"]), 403)
    outcome(rules.relabel(w.reader, w.stored(w.masked), ["N"]), 404)
    # the author: not the mask set at submission
    outcome(rules.relabel(w.author, w.stored(w.masked), ["N"]), 403)
    assert w.stored(w.plain)["meta"]["versionId"] == "1"
    assert w.stored(w.masked)["meta"]["versionId"] == "1"
    assert rules.visible(w.reader, w.pid) == {w.plain}
    # the author masks later, with the patient's agreement, and may not lift it again
    r = rules.relabel(w.author, w.stored(w.plain), ["N", "MASQUE_PS"])
    assert r.status_code == 200, r.text
    assert rules.visible(w.reader, w.pid) == set()
    outcome(rules.relabel(w.author, r.json(), ["N"]), 403)


def test_patient_cannot_mask_someone_elses_document(rules: Rules, world: World) -> None:
    w = world
    stranger = rules.patient()
    stored = w.stored(w.plain)
    r = rules.relabel(stranger, stored, ["N", "MASQUE_PS"])
    refused = outcome(r, 404)
    missing = rules.http.put(
        f"/fhir/DocumentReference/{w.pid}-{'0' * 20}",
        json={**stored, "id": f"{w.pid}-{'0' * 20}"},
        headers={**stranger.headers, **FHIR_JSON},
    )
    assert refused == outcome(missing, 404)
    after = w.stored(w.plain)
    assert after["meta"]["versionId"] == "1"
    assert label_codes(after) == {"N"}
    assert rules.visible(w.reader, w.pid) == {w.plain}


def test_update_changes_only_status_and_labels(rules: Rules, world: World) -> None:
    w = world
    stored = w.stored(w.plain, w.patient)
    r = rules.put_doc(
        w.patient,
        {
            **stored,
            "description": "changed",
            "securityLabel": [{"coding": [{"code": "MASQUE_PS"}]}],
        },
    )
    issue = outcome(r, 422)
    assert issue["expression"] == ["DocumentReference.description"]
    assert w.stored(w.plain)["meta"]["versionId"] == "1"
    r = rules.http.put(
        f"/fhir/DocumentReference/{w.plain}",
        json={**stored, "securityLabel": [{"coding": [{"code": "MASQUE_PS"}]}]},
        headers={**w.patient.headers, **FHIR_JSON, "If-Match": 'W/"7"'},
    )
    outcome(r, 412)


# -- INVISIBLE_PATIENT, set by the author --------------------------------------------------------


def test_invisible_patient_at_submission(rules: Rules, world: World) -> None:
    w = world
    hidden = rules.doc(w.ins, w.author, labels=["N", "INVISIBLE_PATIENT"])
    assert hidden not in rules.visible(w.patient, w.pid)
    assert rules.visible(w.patient, w.pid) == {w.plain, w.masked}
    assert not _reads(rules, w.patient, hidden)
    assert (
        rules.read(w.patient, hidden).json() == rules.read(w.patient, f"{w.pid}-{'0' * 20}").json()
    )
    assert _reads(rules, w.author, hidden)
    assert _reads(rules, w.reader, hidden)
    assert hidden in rules.visible(w.reader, w.pid)

    # the patient cannot lift it
    stored = w.stored(hidden)
    r = rules.relabel(w.patient, stored, ["N"])
    assert r.status_code in (403, 404), r.text
    outcome(r, r.status_code)
    assert w.stored(hidden)["meta"]["versionId"] == "1"
    # nor can another professional
    r = rules.relabel(w.reader, stored, ["N"])
    outcome(r, 403)
    assert w.stored(hidden)["meta"]["versionId"] == "1"
    # the author lifts it
    r = rules.relabel(w.author, stored, ["N"])
    assert r.status_code == 200, r.text
    assert _reads(rules, w.patient, hidden)
    assert hidden in rules.visible(w.patient, w.pid)


def test_invisible_patient_set_by_the_author_later(rules: Rules, world: World) -> None:
    w = world
    assert _reads(rules, w.patient, w.plain)
    r = rules.relabel(w.author, w.stored(w.plain), ["N", "INVISIBLE_PATIENT"])
    assert r.status_code == 200, r.text
    assert not _reads(rules, w.patient, w.plain)
    assert w.plain not in rules.visible(w.patient, w.pid)
    assert _reads(rules, w.reader, w.plain)
    # $everything leaves it out too
    e = rules.http.get(f"/fhir/Patient/{w.pid}/$everything", headers=w.patient.headers)
    assert e.status_code == 200
    assert w.plain not in {x["resource"]["id"] for x in e.json()["entry"]}
    # another professional does not set it
    r = rules.relabel(w.reader, w.stored(w.masked), ["N", "MASQUE_PS", "INVISIBLE_PATIENT"])
    outcome(r, 404)  # the reader does not even see the masked document
    r = rules.relabel(w.reader, w.stored(w.plain), ["N"])
    outcome(r, 403)
    assert not _reads(rules, w.patient, w.plain)


# -- legal representatives -----------------------------------------------------------------------


def test_legal_representative_reads_as_the_patient(rules: Rules, world: World) -> None:
    w = world
    secret = rules.doc(w.ins, w.author, labels=["N", "INVISIBLE_REPRESENTANTS_LEGAUX"])
    hidden = rules.doc(w.ins, w.author, labels=["N", "INVISIBLE_PATIENT"])
    rep = rules.patient(random_nir())
    assert rules.visible(rep, w.pid) == set()
    assert not _reads(rules, rep, w.plain)

    # only the patient names a representative
    for who in (w.author, rules.patient()):
        r = rules.http.post(
            "/fhir/RelatedPerson",
            json=related_person_resource(w.pid, rep.ins),
            headers={**who.headers, **FHIR_JSON},
        )
        assert r.status_code in (403, 404), r.text
    assert rules.visible(rep, w.pid) == set()

    r = rules.http.post(
        "/fhir/RelatedPerson",
        json=related_person_resource(w.pid, rep.ins),
        headers={**w.patient.headers, **FHIR_JSON},
    )
    assert r.status_code == 201, r.text
    related = r.json()
    assert related["resourceType"] == "RelatedPerson"
    assert related["patient"] == {"reference": f"Patient/{w.pid}"}

    assert rules.visible(w.patient, w.pid) == {w.plain, w.masked, secret}
    assert rules.visible(rep, w.pid) == {w.plain, w.masked}
    assert _reads(rules, rep, w.plain) and _reads(rules, rep, w.masked)
    assert not _reads(rules, rep, secret)
    assert not _reads(rules, rep, hidden)
    assert rules.http.get(f"/fhir/Patient/{w.pid}", headers=rep.headers).status_code == 200

    # a representative does not close nor destroy the record
    r = rules.set_record_status(rep, w.pid, "closed")
    assert r.status_code in (403, 404), r.text
    outcome(rules.http.delete(f"/fhir/Patient/{w.pid}", headers=rep.headers), 404)
    assert rules.visible(w.reader, w.pid) == {w.plain, secret, hidden}

    # nobody but the patient reads a closed record, not even a representative
    assert rules.set_record_status(w.patient, w.pid, "closed").status_code == 200
    assert rules.search(rep, w.pid)["total"] == 0
    assert not _reads(rules, rep, w.plain)
    outcome(rules.http.get(f"/fhir/Patient/{w.pid}", headers=rep.headers), 404)
    assert rules.set_record_status(w.patient, w.pid, "active").status_code == 200
    assert _reads(rules, rep, w.plain)

    # the patient removes them
    d = rules.http.delete(f"/fhir/RelatedPerson/{related['id']}", headers=w.patient.headers)
    assert d.status_code == 204, d.text
    assert rules.visible(rep, w.pid) == set()
    assert not _reads(rules, rep, w.plain)


def test_relationship_must_be_a_legal_representative(rules: Rules, world: World) -> None:
    body = related_person_resource(world.pid, random_nir(), relationship="FRND")
    r = rules.http.post(
        "/fhir/RelatedPerson", json=body, headers={**world.patient.headers, **FHIR_JSON}
    )
    issue = outcome(r, 422)
    assert issue["expression"] == ["RelatedPerson.relationship"]


# -- the author's changes: replace, delete, archive -----------------------------------------------


def test_only_the_author_replaces(rules: Rules, world: World) -> None:
    w = world
    # refused as if the document did not exist (tests/e2e/test_refused_like_missing.py)
    r = rules.publish(w.ins, w.reader, replaces=w.plain)
    assert r.status_code == 422, r.text
    outcome(r, 422)
    # naming the author in the new version's metadata does not make the sender its author
    r = rules.publish(w.ins, w.author, replaces=w.plain, by=w.reader)
    outcome(r, 422)
    assert w.stored(w.plain)["status"] == "current"

    r = rules.publish(w.ins, w.author, replaces=w.plain)
    (new,) = created_doc_ids(r)
    old = w.stored(w.plain)
    assert old["status"] == "superseded"
    assert rules.read(w.reader, w.plain).status_code == 200  # stays readable in the history
    assert {w.plain, new} <= rules.visible(w.reader, w.pid)


def test_only_the_author_deletes(rules: Rules, world: World) -> None:
    w = world
    stranger = rules.pro()
    stored = w.stored(w.plain)
    for who in (w.reader, w.patient):
        r = rules.put_doc(who, {**stored, "status": "entered-in-error"})
        outcome(r, 403)
    assert w.stored(w.plain)["status"] == "current"

    r = rules.put_doc(w.author, {**stored, "status": "entered-in-error"})
    assert r.status_code == 200, r.text
    for who in (w.author, w.reader, w.patient):
        assert w.plain not in rules.visible(who, w.pid)
        assert w.plain not in rules.visible(who, w.pid, status="entered-in-error")
        outcome(rules.read(who, w.plain), 410)
        outcome(rules.content(who, w.plain), 404)
    for who in (stranger, rules.patient()):
        gone = rules.read(who, w.plain)
        outcome(gone, 404)
        assert gone.json() == rules.read(who, f"{w.pid}-{'0' * 20}").json()
    # not even the author brings it back
    r = rules.put_doc(w.author, {**stored, "status": "current"})
    assert r.status_code in (404, 410), r.text


def test_only_the_author_archives(rules: Rules, world: World) -> None:
    w = world
    stored = w.stored(w.plain)
    archived = {**stored, "extension": [{"url": ARCHIVED_EXT, "valueBoolean": True}]}
    for who in (w.reader, w.patient):
        outcome(rules.put_doc(who, archived), 403)
    assert rules.visible(w.reader, w.pid) == {w.plain}

    r = rules.put_doc(w.author, archived)
    assert r.status_code == 200, r.text
    for who in (w.author, w.reader, w.patient):
        assert w.plain not in rules.visible(who, w.pid)
        assert w.plain in rules.visible(who, w.pid, archived="true")
        assert w.plain not in rules.visible(who, w.pid, archived="false")
        assert rules.read(who, w.plain).status_code == 200
        body = rules.search(who, w.pid, _id=w.plain)
        assert [e["resource"]["id"] for e in body["entry"]] == [w.plain]
    assert rules.visible(w.reader, w.pid, archived="true") == {w.plain}
    assert rules.visible(rules.pro(), w.pid, archived="true") == set()

    # un-archive
    back = {**r.json()}
    back.pop("extension", None)
    r = rules.put_doc(w.author, back)
    assert r.status_code == 200, r.text
    assert w.plain in rules.visible(w.reader, w.pid)


def test_invisible_patient_lifts_by_itself_after_a_month(
    rules: Rules, world: World, server: Server
) -> None:
    """R1111-53: the flag holds one month after the document was stored."""
    w = world
    hidden = rules.doc(w.ins, w.author, labels=["N", "INVISIBLE_PATIENT"])

    def age(days: int) -> None:
        changed = execute_sql(
            server.settings.sqlalchemy_url,
            update(documents)
            .where(documents.c.doc_id == hidden)
            .values(created_at=utcnow() - timedelta(days=days)),
        )
        assert changed == 1

    age(29)
    assert not _reads(rules, w.patient, hidden)
    assert hidden not in rules.visible(w.patient, w.pid)
    age(31)
    assert _reads(rules, w.patient, hidden)
    assert hidden in rules.visible(w.patient, w.pid)
    # INVISIBLE_REPRESENTANTS_LEGAUX does not lift with time
    secret = rules.doc(w.ins, w.author, labels=["N", "INVISIBLE_REPRESENTANTS_LEGAUX"])
    rep = rules.patient()
    r = rules.http.post(
        "/fhir/RelatedPerson",
        json=related_person_resource(w.pid, rep.ins),
        headers={**w.patient.headers, **FHIR_JSON},
    )
    assert r.status_code == 201, r.text
    execute_sql(
        server.settings.sqlalchemy_url,
        update(documents)
        .where(documents.c.doc_id == secret)
        .values(created_at=utcnow() - timedelta(days=400)),
    )
    assert not _reads(rules, rep, secret)
    assert _reads(rules, rep, hidden)


def test_submission_sets_reveal_no_hidden_document(rules: Rules, world: World) -> None:
    w = world
    hidden = rules.doc(w.ins, w.author, labels=["N", "INVISIBLE_PATIENT"])

    def listed(who: Person) -> tuple[int, set[str]]:
        r = rules.http.get("/fhir/List", params={"patient": w.pid}, headers=who.headers)
        assert r.status_code == 200, r.text
        refs = {
            i["item"]["reference"].rsplit("/", 1)[-1]
            for e in r.json().get("entry") or []
            for i in e["resource"].get("entry") or []
        }
        return r.json()["total"], refs

    total, refs = listed(w.reader)
    assert w.masked not in refs
    assert refs == {w.plain, hidden} and total == 2
    total, refs = listed(w.patient)
    assert hidden not in refs
    assert refs == {w.plain, w.masked} and total == 2
    assert listed(rules.pro()) == (0, set())
