"""A refused write looks exactly like a write on nothing (issue 7), from the attacker's side.

- A uniqueId used by a document the caller may not read: the same 409 (status and body, byte for
  byte) whether the hidden document has the same content or not, and as for a collision with a
  document the caller reads; the answer and the caller's traces never name it. Whoever may not
  publish at all is refused before the uniqueId is looked at.
- ``relatesTo replaces``: a missing document, one of another record, one the caller may not
  read and one they read but did not author are refused with one answer.
- A patient posting to another person's INS (a record, none, a closed one), or reading,
  updating or opening another person's record: one answer whatever is there.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from carnet.domain.clock import new_id
from tests.factories import (
    FHIR_JSON,
    Factory,
    Person,
    Rules,
    bundle,
    created_doc_ids,
    docref,
    patient_resource,
    pdf_bytes,
    random_nir,
    related_person_resource,
)

PDF = "application/pdf"


@pytest.fixture()
def rules(http: httpx.Client, factory: Factory) -> Rules:
    return Rules(http, factory)


def _uid() -> str:
    return f"urn:oid:1.2.250.1.999.7.{int(new_id()[:12], 16)}"


def _post(
    rules: Rules,
    ins: str,
    who: Person,
    *,
    unique_id: str | None = None,
    content: bytes | None = None,
    class_code: str = "10",
    labels: list[str] | None = None,
    replaces: str | None = None,
    set_unique_id: str | None = None,
) -> httpx.Response:
    content = content if content is not None else pdf_bytes()
    dr = docref(
        ins,
        unique_id=unique_id or _uid(),
        content=content,
        class_code=class_code,
        labels=labels,
        author_rpps=who.rpps or "899700218896",
        replaces=replaces,
    )
    body = bundle(ins, [(dr, content, PDF)], set_unique_id=set_unique_id)
    return rules.http.post("/fhir", json=body, headers={**who.headers, **FHIR_JSON})


def _same(*responses: httpx.Response) -> None:
    """Byte-identical answers: status, the headers that matter, body."""
    first = responses[0]
    for r in responses[1:]:
        assert r.status_code == first.status_code, (r.status_code, first.status_code, r.text)
        assert r.content == first.content, (r.text, first.text)
        for h in ("content-type", "location", "etag", "last-modified"):
            assert r.headers.get(h) == first.headers.get(h), h


class Doc:
    def __init__(self, doc_id: str, unique_id: str, content: bytes) -> None:
        self.id = doc_id
        self.uid = unique_id
        self.content = content


class World:
    """A record opened by ``author`` with a plain document and one of each hidden kind."""

    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self.author = rules.pro()
        self.ins, self.pid, self.patient = rules.record(self.author)
        self.plain = self.doc(self.author)
        self.masked = self.doc(self.author, labels=["N", "MASQUE_PS"])
        self.invisible = self.doc(self.author, labels=["N", "INVISIBLE_PATIENT"])
        self.secret = self.doc(self.author, labels=["N", "INVISIBLE_REPRESENTANTS_LEGAUX"])

    def doc(self, who: Person, **kw: Any) -> Doc:
        uid, content = _uid(), pdf_bytes()
        r = _post(self.rules, self.ins, who, unique_id=uid, content=content, **kw)
        (doc_id,) = created_doc_ids(r)
        return Doc(doc_id, uid, content)

    def total(self) -> int:
        body = self.rules.search(self.author, self.pid, _count=200)
        return int(body["total"])

    def control(self) -> httpx.Response:
        """A collision its sender may read: the author's plain document, other content."""
        r = _post(self.rules, self.ins, self.author, unique_id=self.plain.uid)
        assert r.status_code == 409, r.text
        return r


@pytest.fixture()
def world(rules: Rules) -> World:
    return World(rules)


def _own_create_denials(rules: Rules, who: Person, actor_id: str, pid: str) -> list[str]:
    """The caller's own denied ``document.create`` traces, as they see them (shown as refusals
    of something missing, tied to no record: a search naming the record does not find them),
    without what differs by nature (ids, times, chain)."""
    r = rules.http.get(
        "/fhir/AuditEvent",
        params={"action": "document.create", "outcome": "4", "_count": 200},
        headers=who.headers,
    )
    assert r.status_code == 200, r.text
    out = []
    for e in r.json().get("entry") or []:
        ev = e["resource"]
        if ev["agent"][0].get("altId") != actor_id:
            continue
        shown = {k: ev.get(k) for k in ("subtype", "action", "outcome", "outcomeDesc")}
        shown["entity"] = [
            {"what": str((x.get("what") or {}).get("reference", "")).split("/")[0]}
            | {"detail": x.get("detail")}
            for x in ev.get("entity") or []
        ]
        out.append(json.dumps(shown, sort_keys=True))
    return out


def _collide(world: World, who: Person, hidden: Doc, class_code: str) -> list[httpx.Response]:
    """The hidden document's uniqueId with its very content, then with other content."""
    rules, ins = world.rules, world.ins
    before = world.total()
    same = _post(
        rules, ins, who, unique_id=hidden.uid, content=hidden.content, class_code=class_code
    )
    other = _post(rules, ins, who, unique_id=hidden.uid, class_code=class_code)
    assert world.total() == before
    for r in (same, other):
        assert hidden.id not in r.text
    return [same, other]


# -- 1. a uniqueId used by a document one may not read ---------------------------------------------


@pytest.mark.parametrize("attacker", ["blocked", "unrelated"])
def test_masked_document_unique_id(rules: Rules, world: World, attacker: str) -> None:
    w = world
    pro = rules.pro()
    if attacker == "blocked":
        r = rules.consent(w.patient, w.pid, decision="deny", rpps=pro.rpps)
        assert r.status_code == 201, r.text
    assert rules.read(pro, w.masked.id).status_code == 404
    hidden = _collide(w, pro, w.masked, "10")
    # the attacker's own document, other content under its uniqueId: the control
    mine = w.doc(pro)
    own = _post(rules, w.ins, pro, unique_id=mine.uid)
    _same(*hidden, own, w.control())
    assert hidden[0].status_code == 409
    issue = hidden[0].json()["issue"][0]
    assert issue["expression"] == ["DocumentReference.masterIdentifier"], issue
    # and what the attacker reads of their own traces tells the three apart no better
    traces = _own_create_denials(rules, pro, f"rpps:{pro.rpps}", w.pid)
    assert len(traces) == 3 and len(set(traces)) == 1, traces
    assert w.masked.id not in "".join(traces)
    # through ITI-105 too
    dr = docref(w.ins, unique_id=w.masked.uid, content=w.masked.content, author_rpps=pro.rpps)
    dr["content"][0]["attachment"]["data"] = base64.b64encode(w.masked.content).decode()
    del dr["content"][0]["attachment"]["url"]
    a = rules.http.post("/fhir/DocumentReference", json=dr, headers={**pro.headers, **FHIR_JSON})
    dr["masterIdentifier"]["value"] = mine.uid
    b = rules.http.post("/fhir/DocumentReference", json=dr, headers={**pro.headers, **FHIR_JSON})
    _same(a, b)
    assert a.status_code == 409 and w.masked.id not in a.text


def test_invisible_patient_document_unique_id(rules: Rules, world: World) -> None:
    w = world
    assert rules.read(w.patient, w.invisible.id).status_code == 404
    hidden = _collide(w, w.patient, w.invisible, "90")
    mine = w.doc(w.patient, class_code="90")
    own = _post(rules, w.ins, w.patient, unique_id=mine.uid, class_code="90")
    _same(*hidden, own, w.control())
    traces = _own_create_denials(rules, w.patient, f"ins:{w.ins}", w.pid)
    assert len(traces) == 3 and len(set(traces)) == 1, traces
    # what the patient may read stays idempotent: the same document again is that document
    again = _post(
        rules, w.ins, w.patient, unique_id=mine.uid, content=mine.content, class_code="90"
    )
    assert created_doc_ids(again) == [mine.id]
    # a class the patient may not add: refused before the uniqueId is looked at
    _same(
        _post(rules, w.ins, w.patient, unique_id=w.invisible.uid, content=w.invisible.content),
        _post(rules, w.ins, w.patient),
    )


def test_invisible_to_representatives_unique_id(rules: Rules, world: World) -> None:
    w = world
    rep = rules.patient(random_nir())
    r = rules.http.post(
        "/fhir/RelatedPerson",
        json=related_person_resource(w.pid, rep.ins or ""),
        headers={**w.patient.headers, **FHIR_JSON},
    )
    assert r.status_code == 201, r.text
    assert rules.read(rep, w.secret.id).status_code == 404
    assert rules.read(rep, w.plain.id).status_code == 200
    hidden = _collide(w, rep, w.secret, "90")
    mine = w.doc(rep, class_code="90")
    own = _post(rules, w.ins, rep, unique_id=mine.uid, class_code="90")
    _same(*hidden, own, w.control())


def test_who_may_not_publish_is_refused_before_the_unique_id(rules: Rules, world: World) -> None:
    w = world
    # a closed record: its author's own uniqueId or a fresh one, one answer
    r = rules.set_record_status(w.patient, w.pid, "closed")
    assert r.status_code == 200, r.text
    _same(
        _post(rules, w.ins, w.author, unique_id=w.plain.uid, content=w.plain.content),
        _post(rules, w.ins, w.author, unique_id=w.masked.uid),
        _post(rules, w.ins, w.author),
    )
    # a patient posting to another person's record
    stranger = rules.patient(random_nir())
    _same(
        _post(rules, w.ins, stranger, unique_id=w.plain.uid, class_code="90"),
        _post(rules, w.ins, stranger, class_code="90"),
    )


def test_submission_set_unique_id(rules: Rules, world: World) -> None:
    """A submission set's uniqueId used by a set of hidden documents: the same answer as one
    used by a set the caller reads, and never the hidden set itself."""
    w = world
    hidden_set = _uid()
    r = _post(rules, w.ins, w.author, labels=["N", "MASQUE_PS"], set_unique_id=hidden_set)
    assert r.status_code == 200, r.text
    hidden_list = r.json()["entry"][0]["response"]["location"]
    pro = rules.pro()
    own_set = _uid()
    content = pdf_bytes()
    uid = _uid()
    first = _post(rules, w.ins, pro, unique_id=uid, content=content, set_unique_id=own_set)
    assert first.status_code == 200, first.text
    # a new document in either set: one answer
    a = _post(rules, w.ins, pro, set_unique_id=hidden_set)
    b = _post(rules, w.ins, pro, set_unique_id=own_set)
    _same(a, b)
    assert a.status_code == 409
    # the attacker's own document again, under the hidden set's uniqueId: refused too (it was
    # not that set that brought it), never answered with the hidden set
    c = _post(rules, w.ins, pro, unique_id=uid, content=content, set_unique_id=hidden_set)
    _same(a, c)
    assert hidden_list.split("/_history")[0].rsplit("/", 1)[1] not in c.text
    # the same submission again is still answered with its set
    d = _post(rules, w.ins, pro, unique_id=uid, content=content, set_unique_id=own_set)
    assert (
        d.json()["entry"][0]["response"]["location"]
        == first.json()["entry"][0]["response"]["location"]
    )


# -- 2. replace: missing, not readable, not one's own ------------------------------------------


def test_replace_refused_like_missing(rules: Rules, world: World) -> None:
    w = world
    reader = rules.pro()
    r = rules.consent(w.patient, w.pid, rpps=reader.rpps)
    assert r.status_code == 201, r.text
    assert rules.read(reader, w.plain.id).status_code == 200
    assert rules.read(reader, w.masked.id).status_code == 404
    other_ins, _other_pid, _ = rules.record(w.author)
    elsewhere = World.doc(_other(rules, w.author, other_ins), w.author)
    missing = f"{w.pid}-{new_id()[:20]}"
    answers = [
        _post(rules, w.ins, reader, replaces=target)
        for target in (missing, w.masked.id, w.plain.id, elsewhere.id, "nothing")
    ]
    _same(*answers)
    assert answers[0].status_code == 422
    for r in answers:
        for doc in (w.masked, w.plain, elsewhere):
            assert doc.id not in r.text
    # a blocked professional and the patient (a document hidden from them) alike
    blocked = rules.pro()
    assert rules.consent(w.patient, w.pid, decision="deny", rpps=blocked.rpps).status_code == 201
    _same(
        *answers,
        _post(rules, w.ins, blocked, replaces=w.masked.id),
        _post(rules, w.ins, blocked, replaces=missing),
    )
    _same(
        _post(rules, w.ins, w.patient, class_code="90", replaces=w.invisible.id),
        _post(rules, w.ins, w.patient, class_code="90", replaces=missing),
        _post(rules, w.ins, w.patient, class_code="90", replaces=w.plain.id),
        *answers,
    )
    assert w.total() == 4
    # the author still replaces their document
    (new,) = created_doc_ids(_post(rules, w.ins, w.author, replaces=w.plain.id))
    assert new


def _other(rules: Rules, author: Person, ins: str) -> World:
    """A bare World on another record (for its ``doc``)."""
    other = World.__new__(World)
    other.rules, other.author, other.ins = rules, author, ins
    return other


# -- 3. a patient and another person's record --------------------------------------------------


def test_patient_and_another_persons_record(rules: Rules, world: World) -> None:
    w = world
    attacker = rules.patient(random_nir())
    closed_ins, closed_pid, closed_patient = rules.record(w.author)
    r = rules.set_record_status(closed_patient, closed_pid, "closed")
    assert r.status_code == 200, r.text
    missing_ins = random_nir()
    missing_pid = new_id()

    # publish: a record, none, a closed one
    posts = [
        _post(rules, ins, attacker, class_code="90") for ins in (w.ins, missing_ins, closed_ins)
    ]
    _same(*posts)
    assert posts[0].status_code == 404
    # traced: the record's patient sees the attempt on their record
    seen = rules.http.get(
        "/fhir/AuditEvent",
        params={"patient": w.pid, "action": "document.create", "outcome": "4"},
        headers=w.patient.headers,
    ).json()
    assert any(
        e["resource"]["agent"][0].get("altId") == f"ins:{attacker.ins}" for e in seen["entry"]
    ), seen
    # and the attacker's own traces of the three look alike (refusals of something missing)
    mine = rules.http.get(
        "/fhir/AuditEvent",
        params={"action": "document.create", "outcome": "4", "_count": 10},
        headers=attacker.headers,
    ).json()
    forms = {
        json.dumps(
            {k: v for k, v in e["resource"].items() if k not in ("id", "meta", "recorded")},
            sort_keys=True,
        )
        for e in mine["entry"]
    }
    assert len(mine["entry"]) == 3 and len(forms) == 1, forms

    # read, update, open
    reads = [
        rules.http.get(f"/fhir/Patient/{pid}", headers=attacker.headers)
        for pid in (w.pid, missing_pid, closed_pid)
    ]
    _same(*reads)
    assert reads[0].status_code == 404
    body = rules.patient_resource(w.patient, w.pid)
    updates = [
        rules.put_patient(attacker, {**body, "id": pid}) for pid in (w.pid, missing_pid, closed_pid)
    ]
    _same(*updates)
    assert updates[0].status_code == 404
    opens = [
        rules.http.post(
            "/fhir/Patient",
            json=patient_resource(ins),
            headers={**attacker.headers, **FHIR_JSON},
        )
        for ins in (w.ins, missing_ins, closed_ins)
    ]
    _same(*opens)
    assert opens[0].status_code == 403
    assert (
        rules.http.get(f"/fhir/Patient/{missing_pid}", headers=w.author.headers).status_code == 404
    )
