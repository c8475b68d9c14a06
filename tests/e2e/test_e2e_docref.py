"""DocumentReference read, vread, history, and ITI-67 search (TD3.1): every parameter, sort,
_include, and keyset paging that stays exact while documents are added."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Pro
from tests.factories import (
    RPPS,
    TEST_OID,
    Factory,
    created_doc_ids,
    docref,
    outcome,
    pdf_bytes,
    random_nir,
    random_rpps,
)

SNOMED = "http://snomed.info/sct"


def _publish(factory: Factory, ins: str, pro: Pro, drs: list[dict[str, Any]]) -> list[str]:
    docs = []
    for dr in drs:
        content = pdf_bytes()
        att = dr["content"][0]["attachment"]
        att.pop("size", None)
        att.pop("hash", None)
        docs.append((dr, content, att["contentType"]))
    return created_doc_ids(factory.publish(ins, docs, pro.headers))


class Corpus:
    """One record with four documents whose metadata differ on every search parameter."""

    def __init__(self, factory: Factory, pro: Pro) -> None:
        self.pro = pro
        self.author_b = random_rpps()
        self.ins, self.pid = factory.open_record(pro.headers)
        d1 = docref(
            self.ins,
            date="2025-03-15T10:00:00Z",
            author_rpps=pro.rpps,
            type_code="11488-4",
            class_code="10",
            labels=["N"],
        )
        d2 = docref(
            self.ins,
            date="2025-03-20T08:30:00Z",
            author_rpps=self.author_b,
            type_code="11502-2",
            class_code="10",
            labels=["R"],
            practice_setting="408478003",
            facility="394747008",
            content_type="text/plain",
            format_code="urn:ihe:iti:xds:2017:mimeTypeSufficient",
        )
        d3 = docref(
            self.ins,
            date="2024-12-31T23:00:00Z",
            author_rpps=pro.rpps,
            type_code="60591-5",
            class_code="11",
            labels=["N", "MASQUE_PS"],
        )
        d3["context"]["period"] = {"start": "2024-12-01T09:00:00Z", "end": "2025-01-10T18:00:00Z"}
        d4 = docref(
            self.ins,
            date="2025-04-01T00:00:00+02:00",  # 2025-03-31T22:00Z
            author_rpps=pro.rpps,
            type_code="18748-4",
            class_code="31",
            labels=["N"],
        )
        self.unique = {
            "d1": d1["masterIdentifier"]["value"],
            "d2": d2["masterIdentifier"]["value"],
        }
        ids = _publish(factory, self.ins, pro, [d1, d2, d3, d4])
        self.ids = dict(zip(("d1", "d2", "d3", "d4"), ids, strict=True))
        self.names = {v: k for k, v in self.ids.items()}


@pytest.fixture()
def corpus(factory: Factory, pro: Pro) -> Corpus:
    return Corpus(factory, pro)


def _search(
    http: httpx.Client, headers: dict[str, str], params: dict[str, Any] | list[tuple[str, str]]
) -> dict[str, Any]:
    r = http.get("/fhir/DocumentReference", params=params, headers=headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert body["resourceType"] == "Bundle" and body["type"] == "searchset"
    return body


def test_read_vread_history(http: httpx.Client, corpus: Corpus) -> None:
    did = corpus.ids["d1"]
    r = http.get(f"/fhir/DocumentReference/{did}", headers=corpus.pro.headers)
    assert r.status_code == 200, r.text
    assert r.headers["etag"] == 'W/"1"'
    assert r.headers["last-modified"]
    doc = r.json()
    assert doc["id"] == did
    assert doc["meta"]["versionId"] == "1"
    assert doc["status"] == "current"
    assert doc["subject"] == {"reference": f"Patient/{corpus.pid}"}
    att = doc["content"][0]["attachment"]
    assert att["url"].endswith(f"/fhir/Binary/{did}")
    assert isinstance(att["size"], int) and len(att["hash"]) == 28
    assert "data" not in att
    assert doc["masterIdentifier"]["value"] == corpus.unique["d1"]
    v = http.get(f"/fhir/DocumentReference/{did}/_history/1", headers=corpus.pro.headers)
    assert v.status_code == 200 and v.json() == doc
    outcome(http.get(f"/fhir/DocumentReference/{did}/_history/2", headers=corpus.pro.headers), 404)
    h = http.get(f"/fhir/DocumentReference/{did}/_history", headers=corpus.pro.headers)
    assert h.status_code == 200
    hb = h.json()
    assert hb["type"] == "history" and hb["total"] == 1
    assert hb["entry"][0]["resource"] == doc
    assert hb["entry"][0]["fullUrl"].endswith(f"/DocumentReference/{did}/_history/1")


def _names(corpus: Corpus, body: dict[str, Any]) -> list[str]:
    return [
        corpus.names[e["resource"]["id"]] for e in body["entry"] if e["search"]["mode"] == "match"
    ]


def _find(http: httpx.Client, corpus: Corpus, **params: str) -> list[str]:
    body = _search(http, corpus.pro.headers, {"patient": corpus.pid, **params})
    names = _names(corpus, body)
    assert body["total"] == len(names), (params, body["total"], names)
    return sorted(names)


def test_search_tokens(http: httpx.Client, corpus: Corpus) -> None:
    f = lambda **p: _find(http, corpus, **p)  # noqa: E731
    assert f() == ["d1", "d2", "d3", "d4"]
    assert f(patient=f"Patient/{corpus.pid}") == ["d1", "d2", "d3", "d4"]
    # patient.identifier, without patient
    pi = _search(
        http, corpus.pro.headers, {"patient.identifier": f"urn:oid:{TEST_OID}|{corpus.ins}"}
    )
    assert pi["total"] == 4
    pi = _search(http, corpus.pro.headers, {"patient.identifier": corpus.ins})
    assert pi["total"] == 4
    pi = _search(http, corpus.pro.headers, {"patient.identifier": random_nir()})
    assert pi["total"] == 0 and pi["entry"] == []
    assert f(type="11488-4") == ["d1"]
    assert f(type="http://loinc.org|11502-2") == ["d2"]
    assert f(type="http://example.org|11502-2") == []
    assert f(type="11488-4,18748-4") == ["d1", "d4"]
    assert f(category="10") == ["d1", "d2"]
    assert f(
        category="https://mos.esante.gouv.fr/NOS/TRE_A03-ClasseDocument/FHIR/TRE-A03-ClasseDocument|31"
    ) == ["d4"]
    assert f(category="11,31") == ["d3", "d4"]
    assert f(status="current") == ["d1", "d2", "d3", "d4"]
    assert f(status="superseded") == []
    assert f(setting="408478003") == ["d2"]
    assert f(setting=f"{SNOMED}|394802001") == ["d1", "d3", "d4"]
    assert f(facility="394747008") == ["d2"]
    assert f(facility="22232009") == ["d1", "d3", "d4"]
    assert f(format="urn:ihe:iti:xds:2017:mimeTypeSufficient") == ["d2"]
    assert f(
        format="http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode|urn:ihe:iti:xds-sd:pdf:2008"
    ) == ["d1", "d3", "d4"]
    assert f(**{"security-label": "MASQUE_PS"}) == ["d3"]
    assert f(**{"security-label": "R"}) == ["d2"]
    assert f(**{"security-label": "N"}) == ["d1", "d3", "d4"]
    assert f(**{"security-label": "R,MASQUE_PS"}) == ["d2", "d3"]
    assert f(identifier=corpus.unique["d1"]) == ["d1"]
    assert f(identifier=f"urn:ietf:rfc:3986|{corpus.unique['d2']}") == ["d2"]
    assert f(identifier="urn:oid:1.2.3.4.5.6.7.8.9") == []
    assert f(**{"author.identifier": corpus.author_b}) == ["d2"]
    assert f(**{"author.identifier": f"{RPPS}|{corpus.author_b}"}) == ["d2"]
    assert f(**{"author.identifier": f"{RPPS}|{corpus.pro.rpps}"}) == ["d1", "d3", "d4"]
    assert f(**{"author.identifier": f"urn:oid:1.2.3|{corpus.author_b}"}) == []
    assert f(_id=corpus.ids["d3"]) == ["d3"]
    # repeated parameters are ANDed
    body = _search(
        http,
        corpus.pro.headers,
        [("patient", corpus.pid), ("category", "10"), ("type", "11502-2")],
    )
    assert _names(corpus, body) == ["d2"]


def test_search_dates(http: httpx.Client, corpus: Corpus) -> None:
    f = lambda *dates: sorted(  # noqa: E731
        _names(
            corpus,
            _search(
                http, corpus.pro.headers, [("patient", corpus.pid)] + [("date", d) for d in dates]
            ),
        )
    )
    # year, month, day, dateTime precisions
    assert f("2025") == ["d1", "d2", "d4"]
    assert f("2024") == ["d3"]
    assert f("2025-03") == ["d1", "d2", "d4"]  # d4 is 2025-03-31T22:00Z
    assert f("2025-03-15") == ["d1"]
    assert f("eq2025-03-15") == ["d1"]
    assert f("2025-03-15T10:00:00Z") == ["d1"]
    assert f("2025-03-15T11:00:00+01:00") == ["d1"]
    assert f("2025-03-15T10:00:01Z") == []
    # prefixes
    assert f("ge2025-03-20") == ["d2", "d4"]
    assert f("gt2025-03-20") == ["d4"]
    assert f("gt2025-03-20T08:30:00Z") == ["d4"]
    assert f("ge2025-03-20T08:30:00Z") == ["d2", "d4"]
    assert f("lt2025") == ["d3"]
    assert f("lt2025-03-15T10:00:00Z") == ["d3"]
    assert f("le2025-03-15T10:00:00Z") == ["d1", "d3"]
    assert f("le2025-03") == ["d1", "d2", "d3", "d4"]
    assert f("le2025-02") == ["d3"]
    assert f("gt2024") == ["d1", "d2", "d4"]
    assert f("ge2024-12-31") == ["d1", "d2", "d3", "d4"]
    assert f("ne2025-03-15") == ["d2", "d3", "d4"]
    # a range: both bounds
    assert f("ge2025-01-01", "lt2025-03-20") == ["d1"]
    assert f("gt2025-03-15", "le2025-03-20") == ["d2"]
    # malformed dates: 400
    for bad in ("2025-3-15", "yesterday", "xx2025", "2025-02-30"):
        outcome(
            http.get(
                "/fhir/DocumentReference",
                params={"patient": corpus.pid, "date": bad},
                headers=corpus.pro.headers,
            ),
            400,
        )


def test_search_period(http: httpx.Client, corpus: Corpus) -> None:
    def f(*values: str) -> list[str]:
        params = [("patient", corpus.pid)] + [("period", v) for v in values]
        return sorted(_names(corpus, _search(http, corpus.pro.headers, params)))

    # d3: 2024-12-01T09:00Z .. 2025-01-10T18:00Z; others: a start only
    assert f("ge2025-01-05") == ["d1", "d2", "d3", "d4"]
    assert f("ge2025-01-11") == ["d1", "d2", "d4"]
    assert f("lt2025-01-05") == ["d3"]
    assert f("lt2024-12-01") == []
    assert f("le2024-12-01") == ["d3"]
    assert f("2025-03-15") == ["d1"]
    assert f("2024-12") == []  # d3's period is not within December
    assert f("2024-12", "2025") == []
    assert f("ge2024-12-01", "le2025-01-31") == ["d3"]
    assert f("gt2025-03-15") == ["d2", "d4"]


def test_sort_count_include(http: httpx.Client, corpus: Corpus) -> None:
    h = corpus.pro.headers
    newest = _search(http, h, {"patient": corpus.pid})
    assert _names(corpus, newest) == ["d4", "d2", "d1", "d3"]
    assert _names(corpus, _search(http, h, {"patient": corpus.pid, "_sort": "-date"})) == [
        "d4",
        "d2",
        "d1",
        "d3",
    ]
    assert _names(corpus, _search(http, h, {"patient": corpus.pid, "_sort": "date"})) == [
        "d3",
        "d1",
        "d2",
        "d4",
    ]
    two = _search(http, h, {"patient": corpus.pid, "_count": "2"})
    assert _names(corpus, two) == ["d4", "d2"]
    assert two["total"] == 4
    links = {link["relation"]: link["url"] for link in two["link"]}
    assert "next" in links and links["self"].startswith("http")
    assert "_count=2" in links["next"]
    # _count=0 is read as 1 (a page is never empty when something matches)
    assert len(_search(http, h, {"patient": corpus.pid, "_count": "0"})["entry"]) <= 1
    big = _search(http, h, {"patient": corpus.pid, "_count": "100000"})
    assert len(big["entry"]) == 4 and "next" not in {x["relation"] for x in big["link"]}
    outcome(http.get("/fhir/DocumentReference", params={"_sort": "title"}, headers=h), 400)
    outcome(http.get("/fhir/DocumentReference", params={"_count": "-1"}, headers=h), 400)
    # _include=DocumentReference:subject: the Patient once, in mode include
    inc = _search(
        http, h, {"patient": corpus.pid, "_include": "DocumentReference:subject", "_count": "3"}
    )
    matches = [e for e in inc["entry"] if e["search"]["mode"] == "match"]
    included = [e for e in inc["entry"] if e["search"]["mode"] == "include"]
    assert len(matches) == 3 and inc["total"] == 4
    assert len(included) == 1
    assert included[0]["resource"]["resourceType"] == "Patient"
    assert included[0]["resource"]["id"] == corpus.pid
    assert included[0]["fullUrl"].endswith(f"/Patient/{corpus.pid}")
    outcome(
        http.get(
            "/fhir/DocumentReference",
            params={"patient": corpus.pid, "_include": "DocumentReference:author"},
            headers=h,
        ),
        400,
    )


def test_total_counts_only_what_the_caller_may_read(
    http: httpx.Client, factory: Factory, corpus: Corpus, other_pro: Pro
) -> None:
    stranger = _search(http, other_pro.headers, {"patient": corpus.pid})
    assert stranger["total"] == 0 and stranger["entry"] == []
    stranger = _search(http, other_pro.headers, {"patient.identifier": corpus.ins})
    assert stranger["total"] == 0
    stranger = _search(http, other_pro.headers, {"identifier": corpus.unique["d1"]})
    assert stranger["total"] == 0
    # the patient sees their whole record
    me = factory.patient(corpus.ins)
    mine = _search(http, me, {"patient": corpus.pid})
    assert mine["total"] == 4
    mine = _search(http, me, {})
    assert mine["total"] == 4
    # another patient sees nothing of it
    other = factory.patient(random_nir())
    assert _search(http, other, {"patient": corpus.pid})["total"] == 0
    # a deleted document leaves the counts
    did = corpus.ids["d1"]
    doc = http.get(f"/fhir/DocumentReference/{did}", headers=corpus.pro.headers).json()
    doc["status"] = "entered-in-error"
    r = http.put(
        f"/fhir/DocumentReference/{did}",
        json=doc,
        headers={**corpus.pro.headers, "Content-Type": "application/fhir+json"},
    )
    assert r.status_code == 200, r.text
    assert _search(http, corpus.pro.headers, {"patient": corpus.pid})["total"] == 3
    assert _search(http, me, {"patient": corpus.pid})["total"] == 3
    gone = _search(http, corpus.pro.headers, {"patient": corpus.pid, "status": "entered-in-error"})
    assert gone["total"] == 0


def _walk(
    http: httpx.Client, headers: dict[str, str], url: str, params: dict[str, str]
) -> list[str]:
    seen: list[str] = []
    r = http.get(url, params=params, headers=headers)
    while True:
        assert r.status_code == 200, r.text
        body = r.json()
        seen += [e["resource"]["id"] for e in body["entry"]]
        nxt = [link["url"] for link in body["link"] if link["relation"] == "next"]
        if not nxt:
            return seen
        r = http.get(nxt[0], headers=headers)


@pytest.mark.parametrize("sort", ["-date", "date"])
def test_paging_returns_each_document_once(
    http: httpx.Client, factory: Factory, pro: Pro, sort: str
) -> None:
    ins, pid = factory.open_record(pro.headers)
    # eleven documents, several sharing a date (the cursor breaks ties by id)
    dates = [
        "2025-01-01T10:00:00Z",
        "2025-01-01T10:00:00Z",
        "2025-01-01T10:00:00Z",
        "2025-02-01T10:00:00Z",
        "2025-03-01T10:00:00Z",
        "2025-03-01T10:00:00Z",
        "2025-04-01T10:00:00Z",
        "2025-05-01T10:00:00Z",
        "2025-05-01T10:00:00Z",
        "2025-05-01T10:00:00Z",
        "2025-06-01T10:00:00Z",
    ]
    ids = _publish(factory, ins, pro, [docref(ins, date=d) for d in dates])
    assert len(set(ids)) == 11
    for count in ("1", "2", "3", "4", "10", "11", "20"):
        got = _walk(
            http,
            pro.headers,
            "/fhir/DocumentReference",
            {"patient": pid, "_count": count, "_sort": sort},
        )
        assert sorted(got) == sorted(ids), count
        assert len(got) == len(set(got))
    # every page reports the same total
    first = _search(http, pro.headers, {"patient": pid, "_count": "4", "_sort": sort})
    assert first["total"] == 11


@pytest.mark.parametrize("sort", ["-date", "date"])
def test_paging_is_stable_while_documents_are_added(
    http: httpx.Client, factory: Factory, pro: Pro, sort: str
) -> None:
    ins, pid = factory.open_record(pro.headers)
    originals = _publish(
        factory, ins, pro, [docref(ins, date=f"2025-0{m}-15T12:00:00Z") for m in range(1, 8)]
    )
    params = {"patient": pid, "_count": "3", "_sort": sort}
    r = http.get("/fhir/DocumentReference", params=params, headers=pro.headers)
    seen = [e["resource"]["id"] for e in r.json()["entry"]]
    added: list[str] = []
    while True:
        # between every two pages, a document before and one after everything read so far
        added += _publish(
            factory,
            ins,
            pro,
            [docref(ins, date="2020-01-01T00:00:00Z"), docref(ins, date="2030-01-01T00:00:00Z")],
        )
        nxt = [link["url"] for link in r.json()["link"] if link["relation"] == "next"]
        if not nxt:
            break
        r = http.get(nxt[0], headers=pro.headers)
        assert r.status_code == 200
        seen += [e["resource"]["id"] for e in r.json()["entry"]]
    assert len(seen) == len(set(seen)), "a document came twice"
    assert set(originals) <= set(seen), "a document was skipped"
    assert set(seen) <= set(originals) | set(added)
    total = _search(http, pro.headers, {"patient": pid})["total"]
    assert total == len(originals) + len(added)


def test_bad_search_parameters(http: httpx.Client, pro: Pro) -> None:
    h = pro.headers
    strict = {**h, "Prefer": "handling=strict"}
    issue = outcome(http.get("/fhir/DocumentReference", params={"foo": "bar"}, headers=strict), 400)
    assert issue["expression"] == ["foo"]
    for params in (
        {"patient:missing": "x", "subject": "y"},
        {"patient:above": "Patient/1"},
        {"patient": "Practitioner/1"},
        {"type": ""},
        {"type": "http://loinc.org|"},
        {"_cursor": "!!!"},
        {"date": "ge"},
    ):
        issue = outcome(http.get("/fhir/DocumentReference", params=params, headers=h), 400)
        assert issue["code"] == "invalid", params


def test_total_and_paging_skip_what_the_rules_hide(
    http: httpx.Client, factory: Factory, pro: Pro
) -> None:
    """An authorised professional: MASQUE_PS documents of another author and types the access
    matrix refuses to their profession count nowhere (total, pages, next links)."""
    from tests.factories import consent_resource

    ins, pid = factory.open_record(pro.headers)
    # 6 readable consultation notes, 3 masked ones, 2 letters a pharmacist may not read (matrix)
    drs = [
        docref(ins, author_rpps=pro.rpps, date=f"2025-01-{d:02d}T10:00:00Z") for d in range(1, 7)
    ]
    drs += [
        docref(ins, author_rpps=pro.rpps, labels=["N", "MASQUE_PS"], date=f"2025-02-0{d}T10:00:00Z")
        for d in range(1, 4)
    ]
    drs += [
        docref(ins, author_rpps=pro.rpps, type_code="83981-1", date=f"2025-03-0{d}T10:00:00Z")
        for d in range(1, 3)
    ]
    ids = _publish(factory, ins, pro, drs)
    readable, masked, letters = ids[:6], ids[6:9], ids[9:]
    me = factory.patient(ins)
    doctor = Pro(factory)
    pharmacist = Pro(factory, profession="21")
    for who in (doctor, pharmacist):
        r = http.post(
            "/fhir/Consent",
            json=consent_resource(pid, rpps=who.rpps),
            headers={**me, "Content-Type": "application/fhir+json"},
        )
        assert r.status_code == 201, r.text
    expected = {
        pro.rpps: set(ids),  # the author
        doctor.rpps: set(readable) | set(letters),
        pharmacist.rpps: set(readable),
    }
    for who in (pro, doctor, pharmacist):
        first = _search(http, who.headers, {"patient": pid, "_count": "2"})
        assert first["total"] == len(expected[who.rpps]), who.rpps
        got = _walk(http, who.headers, "/fhir/DocumentReference", {"patient": pid, "_count": "2"})
        assert len(got) == len(set(got))
        assert set(got) == expected[who.rpps], who.rpps
        # _include brings the Patient for whoever may read the record
        inc = _search(http, who.headers, {"patient": pid, "_include": "DocumentReference:subject"})
        assert [e["resource"]["id"] for e in inc["entry"] if e["search"]["mode"] == "include"] == [
            pid
        ]
    # what a search hides, a read refuses like a missing document
    for did in masked:
        hidden = http.get(f"/fhir/DocumentReference/{did}", headers=doctor.headers)
        missing = http.get(f"/fhir/DocumentReference/{did[:-6]}ffffff", headers=doctor.headers)
        outcome(hidden, 404)
        assert hidden.content == missing.content
    outcome(http.get(f"/fhir/Binary/{letters[0]}", headers=pharmacist.headers), 404)
    assert http.get(f"/fhir/Binary/{letters[0]}", headers=doctor.headers).status_code == 200
