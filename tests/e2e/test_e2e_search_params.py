"""The search parameters of IHE MHD 4.2.3 ITI-67 and ITI-66 and of the PDSm guide, with real
values: each finds what it should and not what it should not, and never what the caller may not
read (a document masked by another author, counted nowhere). Also ``POST [type]/_search``,
``_count=0``, ``_summary=count``, ``_total`` and the handling of unknown parameters (ignored
with an OperationOutcome entry, or refused under ``Prefer: handling=strict``)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Pro
from tests.factories import (
    FHIR_JSON,
    RPPS,
    TEST_OID,
    Factory,
    bundle,
    created_doc_ids,
    docref,
    outcome,
    pdf_bytes,
    random_rpps,
)

CCAM = "urn:oid:1.2.250.1.213.2.5"
ORDERS = "urn:oid:1.2.250.1.999.7"
LOINC = "http://loinc.org"
FINESS = "urn:oid:1.2.250.1.71.4.2.2"
ARCHIVED_EXT = "https://carnet.health/fhir/StructureDefinition/dmp-archived"
AUTHOR_ORG = "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-authorOrg"
DESIGNATION = "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-designationType"
SOURCE_ID = "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-sourceId"


def _named(dr: dict[str, Any], family: str, given: list[str]) -> dict[str, Any]:
    author = next(c for c in dr["contained"] if c["id"] == "author")
    author["name"] = [{"family": family, "given": given}]
    return dr


def _doc(
    ins: str,
    rpps: str,
    names: tuple[str, list[str]],
    *,
    creation: str,
    period: dict[str, str],
    events: list[str] = (),  # type: ignore[assignment]
    related: list[dict[str, Any]] = (),  # type: ignore[assignment]
    labels: list[str] | None = None,
    replaces: str | None = None,
) -> dict[str, Any]:
    dr = _named(
        docref(ins, date=creation, author_rpps=rpps, labels=labels, replaces=replaces), *names
    )
    dr["context"]["period"] = period
    if events:
        dr["context"]["event"] = [{"coding": [{"system": CCAM, "code": e}]} for e in events]
    if related:
        dr["context"]["related"] = list(related)
    return dr


def _publish_docs(
    factory: Factory, ins: str, pro: Pro, drs: list[dict[str, Any]], lst: dict[str, Any] | None
) -> list[str]:
    docs = []
    for dr in drs:
        att = dr["content"][0]["attachment"]
        att.pop("size", None)
        att.pop("hash", None)
        docs.append((dr, pdf_bytes(), att["contentType"]))
    b = bundle(ins, docs)
    if lst is not None:
        b["entry"][0]["resource"].update(lst)
    r = factory.http.post("/fhir", json=b, headers={**pro.headers, **FHIR_JSON})
    return created_doc_ids(r)


class Corpus:
    """One record: documents and submission sets that differ on every new parameter, and one
    of each that the searching professional may not read (masked by another author), which
    matches every filter the others are searched with."""

    def __init__(self, http: httpx.Client, factory: Factory, pro: Pro) -> None:
        self.http = http
        self.pro = pro
        self.other = random_rpps()
        ins, self.pid = factory.open_record(pro.headers)
        self.ins = ins
        dupont = ("Dupont", ["Jean-Pierre"])
        lefevre = ("Lefèvre", ["Hélène"])
        a = _doc(
            ins,
            pro.rpps,
            dupont,
            creation="2025-03-15T10:00:00Z",
            period={"start": "2025-03-01T08:00:00Z", "end": "2025-03-10T18:00:00Z"},
            events=["DEQP003"],
            related=[{"identifier": {"system": ORDERS, "value": "ORD-1"}}],
        )
        b = _doc(
            ins,
            self.other,
            lefevre,
            creation="2025-03-20T10:00:00Z",
            period={"start": "2025-03-18T08:00:00Z", "end": "2025-03-25T18:00:00Z"},
            events=["YYYY600"],
            related=[{"reference": "Encounter/enc-2"}],
        )
        d = _doc(
            ins,
            pro.rpps,
            dupont,
            creation="2024-01-05T10:00:00Z",
            period={"start": "2024-01-02T08:00:00Z"},
            events=["DEQP003"],
        )
        # masked by another author: the searching professional may not read it
        m = _doc(
            ins,
            self.other,
            ("Dupont", ["Jean"]),
            creation="2025-03-15T10:00:00Z",
            period={"start": "2025-03-01T08:00:00Z", "end": "2025-03-10T18:00:00Z"},
            events=["DEQP003", "YYYY600"],
            related=[
                {"identifier": {"system": ORDERS, "value": "ORD-1"}},
                {"reference": "Encounter/enc-2"},
            ],
            labels=["N", "MASQUE_PS"],
        )
        s1 = self._set(
            "Bilan cardiologique",
            "34133-9",
            "1750000001",
            pro.rpps,
            dupont,
            "urn:oid:1.2.250.1.999.1",
        )
        s2 = self._set("Suivi diabète", "11369-6", "1750000002", self.other, lefevre, "urn:oid:9.8")
        s3 = self._set(
            "Bilan caché", "34133-9", "1750000001", self.other, dupont, "urn:oid:1.2.250.1.999.1"
        )
        ids = _publish_docs(factory, ins, pro, [a, d], s1)
        self.docs = {"a": ids[0], "d": ids[1]}
        self.docs["b"] = _publish_docs(factory, ins, pro, [b], s2)[0]
        self.docs["m"] = _publish_docs(factory, ins, pro, [m], s3)[0]
        c = _doc(
            ins,
            pro.rpps,
            dupont,
            creation="2025-04-02T10:00:00Z",
            period={"start": "2025-04-01T08:00:00Z"},
            replaces=self.docs["a"],
        )
        self.docs["c"] = _publish_docs(factory, ins, pro, [c], None)[0]
        # d archived by its author
        stored = http.get(f"/fhir/DocumentReference/{self.docs['d']}", headers=pro.headers).json()
        stored["extension"] = [{"url": ARCHIVED_EXT, "valueBoolean": True}]
        r = http.put(
            f"/fhir/DocumentReference/{self.docs['d']}",
            json=stored,
            headers={**pro.headers, **FHIR_JSON},
        )
        assert r.status_code == 200, r.text
        self.names = {v: k for k, v in self.docs.items()}
        lists = self.search("List", {"patient": self.pid})
        self.sets: dict[str, str] = {}
        for e in lists["entry"]:
            title = e["resource"].get("title")
            names = {"Bilan cardiologique": "s1", "Suivi diabète": "s2", "Bilan caché": "s3"}
            self.sets[names.get(title, "s0")] = e["resource"]["id"]
        # s0 brought c; s3 (the masked document's) shows to no one but its author
        assert set(self.sets) == {"s0", "s1", "s2"}, lists
        self.set_names = {v: k for k, v in self.sets.items()}

    def _set(
        self,
        title: str,
        designation: str,
        org: str,
        rpps: str,
        names: tuple[str, list[str]],
        source_id: str,
    ) -> dict[str, Any]:
        return {
            "title": title,
            "contained": [
                {
                    "resourceType": "Practitioner",
                    "id": "a",
                    "identifier": [{"system": RPPS, "value": rpps}],
                    "name": [{"family": names[0], "given": names[1]}],
                },
                {
                    "resourceType": "Organization",
                    "id": "org",
                    "identifier": [{"system": FINESS, "value": org}],
                },
            ],
            "extension": [
                {
                    "url": SOURCE_ID,
                    "valueIdentifier": {"system": "urn:ietf:rfc:3986", "value": source_id},
                },
                {"url": AUTHOR_ORG, "valueReference": {"reference": "#org"}},
                {
                    "url": DESIGNATION,
                    "valueCodeableConcept": {"coding": [{"system": LOINC, "code": designation}]},
                },
            ],
        }

    def search(
        self,
        kind: str,
        params: dict[str, str] | list[tuple[str, str]],
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        r = self.http.get(f"/fhir/{kind}", params=params, headers=headers or self.pro.headers)
        assert r.status_code == 200, (params, r.text)
        body: dict[str, Any] = r.json()
        assert body["type"] == "searchset"
        return body

    def find(self, **params: str) -> list[str]:
        """The documents found (by name), checking that the total counts exactly them."""
        body = self.search("DocumentReference", {"patient": self.pid, **params})
        found = [
            self.names.get(e["resource"]["id"], "?")
            for e in body["entry"]
            if e["search"]["mode"] == "match"
        ]
        assert body["total"] == len(found), (params, body["total"], found)
        return sorted(found)

    def find_sets(self, **params: str) -> list[str]:
        body = self.search("List", {"patient": self.pid, **params})
        found = [
            self.set_names.get(e["resource"]["id"], "?")
            for e in body["entry"]
            if e["search"]["mode"] == "match"
        ]
        assert body["total"] == len(found), (params, body["total"], found)
        return sorted(found)


@pytest.fixture()
def corpus(http: httpx.Client, factory: Factory, pro: Pro) -> Corpus:
    return Corpus(http, factory, pro)


def test_iti67_parameters(corpus: Corpus) -> None:
    f = corpus.find
    d, pro, other = corpus.docs, corpus.pro, corpus.other
    assert f() == ["a", "b", "c"]  # d archived, m masked by another author
    # creation (content.attachment.creation), with prefixes and precisions
    assert f(creation="2025-03-15") == ["a"]
    assert f(creation="ge2025-03-16") == ["b", "c"]
    assert f(creation="lt2025-03-16") == ["a"]
    assert f(creation="2025-03") == ["a", "b"]
    assert f(creation="2024") == []
    # author.given / author.family: starts with, case and accents ignored; :exact; :contains
    assert f(**{"author.family": "dupont"}) == ["a", "c"]
    assert f(**{"author.family": "LEFEVRE"}) == ["b"]
    assert f(**{"author.family": "lef"}) == ["b"]
    assert f(**{"author.family": "upont"}) == []
    assert f(**{"author.family:contains": "upon"}) == ["a", "c"]
    assert f(**{"author.family:exact": "Lefèvre"}) == ["b"]
    assert f(**{"author.family:exact": "lefevre"}) == []
    assert f(**{"author.given": "pierre"}) == ["a", "c"]  # a word of Jean-Pierre
    assert f(**{"author.given": "helene,jean"}) == ["a", "b", "c"]
    assert f(**{"author.given": "jean", "author.family": "lefevre"}) == []
    # author: the PDSm token on the author's identifier, and :identifier
    assert f(author=f"{RPPS}|{other}") == ["b"]
    assert f(author=pro.rpps) == ["a", "c"]
    assert f(**{"author:identifier": f"{RPPS}|{pro.rpps}"}) == ["a", "c"]
    # subject (the Patient)
    assert f(subject=f"Patient/{corpus.pid}") == ["a", "b", "c"]
    # event (context.event)
    assert f(event="DEQP003") == ["a"]
    assert f(event=f"{CCAM}|YYYY600") == ["b"]
    assert f(event="http://other|DEQP003") == []
    # related (context.related): a reference, or an identifier with :identifier
    assert f(related="Encounter/enc-2") == ["b"]
    assert f(**{"related:identifier": f"{ORDERS}|ORD-1"}) == ["a"]
    assert f(**{"related:identifier": "ORD-1"}) == ["a"]
    assert f(**{"related:identifier": f"{ORDERS}|ORD-2"}) == []
    # relatesto: the document that replaces another
    assert f(relatesto=f"DocumentReference/{d['a']}") == ["c"]
    assert f(relatesto=d["b"]) == []
    # period-start / period-end (the PDSm parameters on context.period)
    assert f(**{"period-start": "ge2025-03-15"}) == ["b", "c"]
    assert f(**{"period-start": "2025-03-01"}) == ["a"]
    assert f(**{"period-end": "le2025-03-10"}) == ["a"]
    assert f(**{"period-end": "gt2025-03-11"}) == ["b"]  # c has no end
    # _lastUpdated: a was superseded by c after b was published
    b_updated = corpus.search("DocumentReference", {"_id": d["b"], "patient": corpus.pid})
    last = b_updated["entry"][0]["resource"]["meta"]["lastUpdated"]
    assert f(_lastUpdated=f"gt{last}") == ["a", "c"]
    assert f(_lastUpdated="lt2000-01-01") == []
    # isArchived (PDSm) and carnet's archived alias
    assert f(isArchived="true") == ["d"]
    assert f(archived="true") == ["d"]
    assert f(isArchived="false") == ["a", "b", "c"]
    assert f(isArchived="true", event="DEQP003") == ["d"]
    # combined, AND across parameters
    assert f(event="DEQP003", **{"author.family": "dupont", "creation": "2025-03"}) == ["a"]


def test_iti67_bad_values_are_400(corpus: Corpus) -> None:
    h = corpus.pro.headers
    for params in (
        {"creation": "yesterday"},
        {"author.given": ""},
        {"author.given:below": "x"},
        {"author": "Practitioner/123"},
        {"relatesto": "Patient/1"},
        {"relatesto:identifier": "x|y"},
        {"isArchived": "maybe"},
        {"isArchived": "true", "archived": "false"},
        {"_summary": "true"},
        {"_total": "all"},
        {"_count": "-1"},
    ):
        r = corpus.http.get(
            "/fhir/DocumentReference", params={"patient": corpus.pid, **params}, headers=h
        )
        outcome(r, 400)


def test_iti66_parameters(corpus: Corpus) -> None:
    f = corpus.find_sets
    pro, other = corpus.pro, corpus.other
    assert f() == ["s0", "s1", "s2"]
    assert f(title="bilan") == ["s1"]
    assert f(title="BILAN CARDIO") == ["s1"]
    assert f(title="cardiologique") == ["s1"]  # a word of the title
    assert f(**{"title:contains": "diab"}) == ["s2"]
    assert f(**{"title:exact": "Suivi diabète"}) == ["s2"]
    assert f(**{"title:exact": "suivi diabete"}) == []
    assert f(title="radiologie") == []
    assert f(designationType=f"{LOINC}|34133-9") == ["s1"]
    assert f(designationType="11369-6") == ["s2"]
    assert f(sourceId="urn:oid:9.8") == ["s2"]
    assert f(**{"source.identifier": "urn:oid:1.2.250.1.999.1"}) == ["s1"]
    assert f(**{"source.given": "jean"}) == ["s1"]
    assert f(**{"source.family": "lefevre"}) == ["s2"]
    assert f(**{"source.family:exact": "Lefèvre"}) == ["s2"]
    assert f(source=f"{RPPS}|{pro.rpps}") == ["s1"]
    assert f(**{"source:identifier": f"{RPPS}|{other}"}) == ["s2"]
    assert f(authorOrg=f"{FINESS}|1750000001") == ["s1"]
    assert f(**{"authorOrg:identifier": "1750000002"}) == ["s2"]
    assert f(isArchived="false") == ["s0", "s1", "s2"]
    assert f(isArchived="true") == []
    assert f(title="bilan", designationType="11369-6") == []
    outcome(
        corpus.http.get(
            "/fhir/List",
            params={"patient": corpus.pid, "source": "PractitionerRole/1"},
            headers=pro.headers,
        ),
        400,
    )


def test_count_only(corpus: Corpus) -> None:
    """``_count=0`` and ``_summary=count``: the total the caller may read, and no entry; as
    fhirpy's ``count()`` asks (``_count=0&_totalMethod=count``)."""
    for kind, expected in (("DocumentReference", 3), ("List", 3)):
        for extra in (
            {"_count": "0"},
            {"_summary": "count"},
            {"_count": "0", "_total": "accurate"},
        ):
            body = corpus.search(kind, {"patient": corpus.pid, **extra})
            assert body["total"] == expected, (kind, extra)
            assert body.get("entry", []) == []
            assert [link["relation"] for link in body["link"]] == ["self"]
        fhirpy = corpus.search(
            kind, {"patient": corpus.pid, "_count": "0", "_totalMethod": "count"}
        )
        assert fhirpy["total"] == expected
        assert [e["search"]["mode"] for e in fhirpy["entry"]] == ["outcome"]
    body = corpus.search(
        "DocumentReference",
        {"patient": corpus.pid, "_summary": "count", "author.family": "dupont"},
    )
    assert body["total"] == 2  # a and c; never the masked m


def test_post_search(corpus: Corpus) -> None:
    """POST [type]/_search: the form body and the URL's parameters together."""
    http, h = corpus.http, corpus.pro.headers
    form = {**h, "Content-Type": "application/x-www-form-urlencoded"}
    r = http.post(
        "/fhir/DocumentReference/_search",
        params={"patient": corpus.pid},
        content="author.family=lef%C3%A8vre&creation=ge2025-01-01&_count=1",
        headers=form,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == 1
    assert [e["resource"]["id"] for e in body["entry"]] == [corpus.docs["b"]]
    r = http.post("/fhir/List/_search", content=f"patient={corpus.pid}&title=suivi", headers=form)
    assert r.status_code == 200, r.text
    assert [e["resource"]["id"] for e in r.json()["entry"]] == [corpus.sets["s2"]]
    # paging through a POST search: next links carry the parameters as a GET URL
    r = http.post(
        "/fhir/DocumentReference/_search", content=f"patient={corpus.pid}&_count=1", headers=form
    )
    body = r.json()
    seen = [e["resource"]["id"] for e in body["entry"]]
    while nxt := next((x["url"] for x in body["link"] if x["relation"] == "next"), None):
        body = http.get(nxt, headers=h).json()
        seen += [e["resource"]["id"] for e in body["entry"]]
    assert sorted(seen) == sorted(corpus.docs[k] for k in ("a", "b", "c"))
    # another body is refused clearly
    outcome(
        http.post(
            "/fhir/DocumentReference/_search",
            json={"patient": corpus.pid},
            headers={**h, **FHIR_JSON},
        ),
        415,
    )


def test_unknown_parameters(corpus: Corpus, factory: Factory) -> None:
    """Ignored by default, each named in an OperationOutcome entry; refused with 400 under
    ``Prefer: handling=strict``; on every search."""
    h = corpus.pro.headers
    patient = factory.patient(corpus.ins)
    searches = (
        ("DocumentReference", {"patient": corpus.pid}, h),
        ("List", {"patient": corpus.pid}, h),
        ("Patient", {"identifier": f"urn:oid:{TEST_OID}|{corpus.ins}"}, h),
        ("AuditEvent", {"patient": corpus.pid}, patient),
        ("Consent", {"patient": corpus.pid}, patient),
        ("RelatedPerson", {"patient": corpus.pid}, patient),
    )
    for kind, params, headers in searches:
        plain = corpus.search(kind, params, headers)
        body = corpus.search(kind, {**params, "bogus": "1", "other:exact": "2"}, headers)
        if kind != "AuditEvent":  # reading the traces is itself traced
            assert body["total"] == plain["total"], kind
        modes = [e["search"]["mode"] for e in body.get("entry", [])]
        assert modes.count("outcome") == 1, (kind, modes)
        issues = next(e for e in body["entry"] if e["search"]["mode"] == "outcome")["resource"]
        assert issues["resourceType"] == "OperationOutcome"
        assert [i["expression"] for i in issues["issue"]] == [["bogus"], ["other:exact"]]
        assert {i["severity"] for i in issues["issue"]} == {"warning"}
        assert "bogus" not in body["link"][0]["url"]
        strict = {**headers, "Prefer": "handling=strict"}
        r = corpus.http.get(f"/fhir/{kind}", params={**params, "bogus": "1"}, headers=strict)
        assert outcome(r, 400)["expression"] == ["bogus"], kind
        lenient = {**headers, "Prefer": "handling=lenient"}
        r = corpus.http.get(f"/fhir/{kind}", params={**params, "bogus": "1"}, headers=lenient)
        assert r.status_code == 200, kind
