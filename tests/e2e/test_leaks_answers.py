"""A refused resource answers exactly as a missing one, for every operation that names one by
id (issue "Close every way a refused document still shows": "Same status, same body, same code
path"), tried from the attacker's side: the same status, the same body (ids aside), the same
headers that matter, and the same visible trace for the attacker.

Each case asks for something that exists and the caller may not reach (a masked document for an
unauthorised professional, a document hidden from the patient, another person's record) and
for something of the same shape that does not exist, and compares the two answers.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.factories import FHIR_JSON, TEST_OID, Person, Rules, consent_resource, random_nir

HEADERS = ("content-type", "etag", "location", "last-modified", "content-location")


@pytest.fixture()
def rules(http: httpx.Client, factory: Any) -> Rules:
    return Rules(http, factory)


class Stage:
    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self.author = rules.pro()
        self.ins, self.pid, self.patient = rules.record(self.author)
        self.masked = rules.doc(self.ins, self.author, labels=["N", "MASQUE_PS"])
        self.invisible = rules.doc(self.ins, self.author, labels=["N", "INVISIBLE_PATIENT"])
        self.stranger = rules.pro()
        r = rules.consent(self.patient, self.pid, rpps=rules.pro().rpps)
        assert r.status_code == 201, r.text
        self.consent_id = r.json()["id"]

    def stored(self, doc_id: str) -> dict[str, Any]:
        r = self.rules.read(self.author, doc_id)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def binary_of(self, doc_id: str) -> str:
        url = self.stored(doc_id)["content"][0]["attachment"]["url"]
        return str(url).rsplit("/", 1)[-1]

    def missing_doc(self) -> str:
        return f"{self.pid}-{secrets.token_hex(10)}"


@pytest.fixture()
def stage(rules: Rules) -> Stage:
    return Stage(rules)


def my_traces(s: Stage, person: Person) -> list[dict[str, Any]]:
    r = s.rules.http.get("/fhir/AuditEvent", params={"_count": 50}, headers=person.headers)
    assert r.status_code == 200, r.text
    me = f"rpps:{person.rpps}" if person.rpps else f"ins:{person.ins}"
    evs = [e["resource"] for e in r.json().get("entry", [])]
    return [
        e for e in evs if e["agent"][0]["altId"] == me and e["subtype"][0]["code"] != "audit.read"
    ][:2]


def same_traces(s: Stage, person: Person, real: str, ghost: str) -> None:
    """The caller's last two traces (the refused call, then the missing one) look alike."""
    newer, older = my_traces(s, person)
    forms = []
    for ev, ident in ((older, real), (newer, ghost)):
        shown = {k: v for k, v in ev.items() if k not in ("id", "meta", "recorded")}
        forms.append(json.dumps(shown, sort_keys=True).replace(ident, "ID"))
    assert forms[0] == forms[1]


def answer(r: httpx.Response, *ids: str) -> tuple[int, dict[str, str], str]:
    text = re.sub(r'"lastUpdated":"[^"]*"', '"lastUpdated":"T"', r.text)  # when it answered
    for ident in ids:
        text = text.replace(ident, "ID")
    headers = {h: r.headers[h].replace(ids[0], "ID") for h in HEADERS if h in r.headers}
    return r.status_code, headers, text


Call = Callable[[Stage, str], httpx.Response]


def _get(path: str) -> Callable[[Person], Call]:
    def who(person: Person) -> Call:
        def call(s: Stage, ident: str) -> httpx.Response:
            return s.rules.http.get(path.format(id=ident), headers=person.headers)

        return call

    return who


def _put_doc(person_of: Callable[[Stage], Person]) -> Call:
    def call(s: Stage, ident: str) -> httpx.Response:
        body = {**s.stored(s.masked), "id": ident, "status": "entered-in-error"}
        return s.rules.http.put(
            f"/fhir/DocumentReference/{ident}",
            content=json.dumps(body),
            headers={**person_of(s).headers, **FHIR_JSON},
        )

    return call


# (name, who asks, what exists: "masked" | "invisible" | "record" | "consent", the call)
DOC_READS = [
    "/fhir/DocumentReference/{id}",
    "/fhir/DocumentReference/{id}/_history",
    "/fhir/DocumentReference/{id}/_history/1",
]


def _doc_cases() -> list[tuple[str, str, str, str]]:
    out = []
    for path in DOC_READS:
        out.append((f"stranger GET {path}", "stranger", "masked", path))
        out.append((f"patient GET {path}", "patient", "invisible", path))
    out.append(("stranger GET Binary", "stranger", "masked-binary", "/fhir/Binary/{id}"))
    out.append(("patient GET Binary", "patient", "invisible-binary", "/fhir/Binary/{id}"))
    return out


@pytest.mark.parametrize(("name", "who", "what", "path"), _doc_cases(), ids=lambda x: str(x))
def test_a_refused_document_reads_as_a_missing_one(
    stage: Stage, name: str, who: str, what: str, path: str
) -> None:
    s = stage
    person = s.stranger if who == "stranger" else s.patient
    doc = s.masked if what.startswith("masked") else s.invisible
    real = s.binary_of(doc) if what.endswith("binary") else doc
    ghost = s.missing_doc()
    refused = s.rules.http.get(path.format(id=real), headers=person.headers)
    missing = s.rules.http.get(path.format(id=ghost), headers=person.headers)
    assert refused.status_code == 404, (name, refused.text)
    assert answer(refused, real) == answer(missing, ghost), name
    same_traces(s, person, real, ghost)


@pytest.mark.parametrize("who", ["stranger", "patient"])
def test_a_refused_document_change_answers_as_a_missing_one(stage: Stage, who: str) -> None:
    s = stage
    person = s.stranger if who == "stranger" else s.patient
    doc = s.masked if who == "stranger" else s.invisible
    ghost = s.missing_doc()
    put = _put_doc(lambda _s: person)
    refused, missing = put(s, doc), put(s, ghost)
    assert refused.status_code == 404, refused.text
    assert answer(refused, doc) == answer(missing, ghost)
    same_traces(s, person, doc, ghost)
    # nothing changed
    assert s.stored(doc)["status"] == "current"


RECORD_CALLS = [
    ("GET", "/fhir/Patient/{id}"),
    ("GET", "/fhir/Patient/{id}/_history"),
    ("GET", "/fhir/Patient/{id}/_history/1"),
    ("GET", "/fhir/Patient/{id}/$everything"),
    ("DELETE", "/fhir/Patient/{id}"),
]


@pytest.mark.parametrize(("method", "path"), RECORD_CALLS, ids=lambda x: str(x))
@pytest.mark.parametrize("who", ["stranger", "another patient"])
def test_another_persons_record_answers_as_a_missing_one(
    rules: Rules, stage: Stage, who: str, method: str, path: str
) -> None:
    s = stage
    person = s.stranger if who == "stranger" else rules.patient()
    ghost = secrets.token_hex(16)
    refused = rules.http.request(method, path.format(id=s.pid), headers=person.headers)
    missing = rules.http.request(method, path.format(id=ghost), headers=person.headers)
    assert refused.status_code in (403, 404), refused.text
    assert answer(refused, s.pid) == answer(missing, ghost)
    same_traces(s, person, s.pid, ghost)


@pytest.mark.parametrize("method", ["GET", "DELETE", "PUT"])
def test_another_persons_consent_answers_as_a_missing_one(
    rules: Rules, stage: Stage, method: str
) -> None:
    s = stage
    ghost = f"{s.pid}-{secrets.token_hex(10)}"
    other = rules.patient()
    body = {**consent_resource(s.pid, rpps=s.stranger.rpps), "status": "inactive"}

    def call(ident: str) -> httpx.Response:
        kw: dict[str, Any] = {}
        if method == "PUT":
            kw = {"content": json.dumps({**body, "id": ident}), "headers": FHIR_JSON}
        return rules.http.request(
            method,
            f"/fhir/Consent/{ident}",
            headers={**other.headers, **kw.pop("headers", {})},
            **kw,
        )

    refused, missing = call(s.consent_id), call(ghost)
    assert refused.status_code in (400, 403, 404, 422), refused.text
    assert answer(refused, s.consent_id) == answer(missing, ghost)
    same_traces(s, other, s.consent_id, ghost)


@pytest.mark.parametrize("resource", ["DocumentReference", "List"])
@pytest.mark.parametrize("by", ["patient", "patient.identifier"])
@pytest.mark.parametrize("attacker", ["patient", "blocked professional"])
def test_a_refused_search_answers_and_is_traced_as_one_of_a_missing_patient(
    rules: Rules, stage: Stage, resource: str, by: str, attacker: str
) -> None:
    s = stage
    # who is refused: another person (a record's existence is not theirs to know), or a
    # professional the patient blocked (an unauthorised one is allowed the search: it finds what
    # they authored, and a record's existence is told to professionals anyway, TD0.2)
    if attacker == "patient":
        stranger = rules.patient()
    else:
        stranger = rules.pro()
        r = rules.consent(s.patient, s.pid, rpps=stranger.rpps, decision="deny")
        assert r.status_code == 201, r.text
    if by == "patient":
        real, ghost = s.pid, secrets.token_hex(16)
    else:
        real, ghost = s.ins, random_nir()

    def value(ident: str) -> str:
        return ident if by == "patient" else f"urn:oid:{TEST_OID}|{ident}"

    refused = rules.http.get(
        f"/fhir/{resource}", params={by: value(real)}, headers=stranger.headers
    )
    missing = rules.http.get(
        f"/fhir/{resource}", params={by: value(ghost)}, headers=stranger.headers
    )
    assert refused.status_code == 200 and refused.json()["total"] == 0, refused.text
    assert answer(refused, real) == answer(missing, ghost)
    same_traces(s, stranger, real, ghost)
