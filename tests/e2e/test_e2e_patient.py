"""Patient: open a record (TD1.1), read, vread, history, update (TD1.2), search (TD0.2),
INS checks, duplicates, objection to creation, emergency consents (dmp.md §1, §2, §7)."""

from __future__ import annotations

import random
import string
from typing import Any

import httpx
import pytest

from carnet.domain.ins import make_nir
from tests.e2e.conftest import Pro
from tests.factories import (
    CARNET_EXT,
    FHIR_JSON,
    NIR_OID,
    TEST_OID,
    Factory,
    ext,
    outcome,
    patient_resource,
    random_nir,
    sub_ext,
)

RECORD_STATUS = f"{CARNET_EXT}/dmp-record-status"
EMERGENCY = f"{CARNET_EXT}/dmp-emergency-consents"
CONSENT = f"{CARNET_EXT}/dmp-creation-consent"
OBJECTION = f"{CARNET_EXT}/dmp-creation-objection"
ACCESS = f"{CARNET_EXT}/dmp-professional-access"


def _unique_family(prefix: str = "") -> str:
    return prefix + "".join(random.choices(string.ascii_uppercase, k=10))


def _create(
    http: httpx.Client, headers: dict[str, str], resource: dict[str, Any]
) -> httpx.Response:
    return http.post("/fhir/Patient", json=resource, headers={**headers, **FHIR_JSON})


def _emergency(resource: dict[str, Any]) -> dict[str, bool]:
    e = ext(resource, EMERGENCY)
    assert e is not None, resource
    return {k: sub_ext(e, k) for k in ("centre15", "brisDeGlace", "maskedDocuments")}


def test_create_opens_a_record(http: httpx.Client, factory: Factory) -> None:
    rpps = "12345678903"  # a bare RPPS number: kept as its IdNatPS
    headers = factory.professional(rpps=rpps, structure="FINESS-750000001")
    ins = random_nir()
    r = _create(http, headers, patient_resource(ins))
    assert r.status_code == 201, r.text
    body = r.json()
    pid = body["id"]
    assert r.headers["location"].endswith(f"/fhir/Patient/{pid}/_history/1")
    assert r.headers["location"].startswith("http")
    assert r.headers["etag"] == 'W/"1"'
    assert r.headers["content-type"].startswith("application/fhir+json")
    assert body["meta"]["versionId"] == "1"
    assert body["active"] is True
    assert body["identifier"][0] == {"system": f"urn:oid:{TEST_OID}", "value": ins}
    assert ext(body, RECORD_STATUS) == {"url": RECORD_STATUS, "valueCode": "active"}
    assert _emergency(body) == {"centre15": True, "brisDeGlace": True, "maskedDocuments": False}
    consent = ext(body, CONSENT)
    assert consent is not None
    assert sub_ext(consent, "by") == f"rpps:8{rpps}"
    assert sub_ext(consent, "structure") == "FINESS-750000001"
    assert sub_ext(consent, "date")[:4].isdigit()
    # the stored form is what a read returns
    read = http.get(f"/fhir/Patient/{pid}", headers=headers)
    assert read.status_code == 200
    assert read.json() == body
    assert read.headers["etag"] == 'W/"1"'


def test_patient_opens_own_record_online(http: httpx.Client, factory: Factory) -> None:
    ins = random_nir()
    me = factory.patient(ins)
    r = _create(http, me, patient_resource(ins))
    assert r.status_code == 201, r.text
    consent = ext(r.json(), CONSENT)
    assert consent is not None and sub_ext(consent, "by") == f"ins:{ins}"
    # but not somebody else's
    outcome(_create(http, me, patient_resource(random_nir())), 403)


def test_emergency_consents_override(http: httpx.Client, pro: Pro) -> None:
    res = patient_resource(
        random_nir(),
        extra_extensions=[
            {
                "url": EMERGENCY,
                "extension": [
                    {"url": "centre15", "valueBoolean": False},
                    {"url": "maskedDocuments", "valueBoolean": True},
                ],
            }
        ],
    )
    r = _create(http, pro.headers, res)
    assert r.status_code == 201, r.text
    # brisDeGlace keeps its default
    assert _emergency(r.json()) == {
        "centre15": False,
        "brisDeGlace": True,
        "maskedDocuments": True,
    }
    # only one copy of carnet's extension is stored
    assert [e["url"] for e in r.json()["extension"]].count(EMERGENCY) == 1
    bad = patient_resource(
        random_nir(),
        extra_extensions=[
            {"url": EMERGENCY, "extension": [{"url": "centre15", "valueString": "no"}]}
        ],
    )
    issue = outcome(_create(http, pro.headers, bad), 422)
    assert "centre15" in issue["expression"][0]


def test_read_vread_history_update(http: httpx.Client, pro: Pro) -> None:
    ins = random_nir()
    r = _create(http, pro.headers, patient_resource(ins, family="MARTIN"))
    pid = r.json()["id"]
    v1 = r.json()
    # update with the right version
    change = patient_resource(ins, family="MARTIN", given=["Anne"])
    change["id"] = pid
    u = http.put(
        f"/fhir/Patient/{pid}",
        json=change,
        headers={**pro.headers, **FHIR_JSON, "If-Match": 'W/"1"'},
    )
    assert u.status_code == 200, u.text
    assert u.headers["etag"] == 'W/"2"'
    assert u.json()["meta"]["versionId"] == "2"
    assert u.json()["name"][0]["given"] == ["Anne"]
    # consent and emergency consents survive the update
    assert ext(u.json(), CONSENT) == ext(v1, CONSENT)
    assert _emergency(u.json()) == _emergency(v1)
    # a stale version is refused, nothing changes
    stale = http.put(
        f"/fhir/Patient/{pid}",
        json=patient_resource(ins, family="MARTIN", given=["Zoé"]),
        headers={**pro.headers, **FHIR_JSON, "If-Match": 'W/"1"'},
    )
    issue = outcome(stale, 412)
    assert "version 2" in issue["diagnostics"]
    # read, vread
    cur = http.get(f"/fhir/Patient/{pid}", headers=pro.headers)
    assert cur.json()["meta"]["versionId"] == "2"
    assert cur.json()["name"][0]["given"] == ["Anne"]
    old = http.get(f"/fhir/Patient/{pid}/_history/1", headers=pro.headers)
    assert old.status_code == 200
    assert old.json() == v1
    assert old.headers["etag"] == 'W/"1"'
    outcome(http.get(f"/fhir/Patient/{pid}/_history/9", headers=pro.headers), 404)
    outcome(http.get(f"/fhir/Patient/{pid}/_history/x", headers=pro.headers), 404)
    # history, newest first
    h = http.get(f"/fhir/Patient/{pid}/_history", headers=pro.headers)
    assert h.status_code == 200
    hb = h.json()
    assert hb["type"] == "history" and hb["total"] == 2
    assert [e["resource"]["meta"]["versionId"] for e in hb["entry"]] == ["2", "1"]
    assert [e["request"]["method"] for e in hb["entry"]] == ["PUT", "POST"]
    assert hb["entry"][1]["resource"] == v1
    # id in the body must match the URL
    wrong = patient_resource(ins)
    wrong["id"] = "someone-else"
    issue = outcome(
        http.put(f"/fhir/Patient/{pid}", json=wrong, headers={**pro.headers, **FHIR_JSON}), 400
    )
    assert issue["expression"] == ["Patient.id"]
    # the INS is the key of the record
    other = patient_resource(random_nir())
    issue = outcome(
        http.put(f"/fhir/Patient/{pid}", json=other, headers={**pro.headers, **FHIR_JSON}), 422
    )
    assert issue["expression"] == ["Patient.identifier"]


def test_update_without_if_match_and_closing(
    http: httpx.Client, factory: Factory, pro: Pro
) -> None:
    ins = random_nir()
    pid = _create(http, pro.headers, patient_resource(ins)).json()["id"]
    res = patient_resource(ins, given=["Louise"])
    u = http.put(f"/fhir/Patient/{pid}", json=res, headers={**pro.headers, **FHIR_JSON})
    assert u.status_code == 200 and u.headers["etag"] == 'W/"2"'
    # a professional does not close a record: only the patient does
    closing = patient_resource(
        ins, extra_extensions=[{"url": RECORD_STATUS, "valueCode": "closed"}]
    )
    outcome(
        http.put(f"/fhir/Patient/{pid}", json=closing, headers={**pro.headers, **FHIR_JSON}), 403
    )
    me = factory.patient(ins)
    c = http.put(f"/fhir/Patient/{pid}", json=closing, headers={**me, **FHIR_JSON})
    assert c.status_code == 200, c.text
    assert ext(c.json(), RECORD_STATUS) == {"url": RECORD_STATUS, "valueCode": "closed"}
    assert c.json()["active"] is False
    # closed: the professional who opened it no longer reads it, but learns its state (TD0.2)
    outcome(http.get(f"/fhir/Patient/{pid}", headers=pro.headers), 404)
    s = http.get("/fhir/Patient", params={"identifier": ins}, headers=pro.headers).json()
    assert s["total"] == 1
    assert ext(s["entry"][0]["resource"], RECORD_STATUS)["valueCode"] == "closed"
    assert "name" not in s["entry"][0]["resource"]
    # the patient reopens
    reopen = patient_resource(ins, extra_extensions=[{"url": RECORD_STATUS, "valueCode": "active"}])
    o = http.put(f"/fhir/Patient/{pid}", json=reopen, headers={**me, **FHIR_JSON})
    assert o.status_code == 200 and o.json()["active"] is True
    assert http.get(f"/fhir/Patient/{pid}", headers=pro.headers).status_code == 200


def test_search_by_identifier_name_birthdate(http: httpx.Client, pro: Pro) -> None:
    family = _unique_family("ÉLÉONORE-")
    ins = random_nir()
    pid = _create(
        http,
        pro.headers,
        patient_resource(ins, family=family, given=["Hélène", "Zoé"], birth_date="1975-11-03"),
    ).json()["id"]
    other_ins = random_nir()
    other = _create(
        http,
        pro.headers,
        patient_resource(other_ins, family=family + "X", given=["Paul"], birth_date="1990-01-20"),
    ).json()["id"]

    def ids(**params: str) -> list[str]:
        r = http.get("/fhir/Patient", params=params, headers=pro.headers)
        assert r.status_code == 200, r.text
        b = r.json()
        assert b["type"] == "searchset"
        assert b["total"] == len(b["entry"])
        return sorted(e["resource"]["id"] for e in b["entry"])

    both = sorted([pid, other])
    assert ids(identifier=f"urn:oid:{TEST_OID}|{ins}") == [pid]
    assert ids(identifier=ins) == [pid]
    # one person whatever the OID of their INS (issue 7); another system names nobody
    assert ids(identifier=f"urn:oid:{NIR_OID}|{ins}") == [pid]
    assert ids(identifier=f"urn:oid:1.2.3.4|{ins}") == []
    # family: prefix, case and accent insensitive
    plain = family.replace("É", "E")
    assert ids(family=plain.lower()) == both
    assert ids(family=plain[:12].lower()) == both
    assert ids(family=family) == both
    assert ids(family=plain.lower() + "x") == [other]
    assert ids(family=family[1:]) == []  # a prefix, not a substring
    # given: any of the first names, prefix, accent insensitive
    assert ids(family=plain, given="helene") == [pid]
    assert ids(family=plain, given="zoe") == [pid]
    assert ids(family=plain, given="HÉL") == [pid]
    assert ids(family=plain, given="pau") == [other]
    assert ids(family=plain, given="ene") == []
    # birthdate at several precisions
    assert ids(family=plain, birthdate="1975-11-03") == [pid]
    assert ids(family=plain, birthdate="eq1975-11-03") == [pid]
    assert ids(family=plain, birthdate="1975-11") == [pid]
    assert ids(family=plain, birthdate="1975") == [pid]
    assert ids(family=plain, birthdate="1975-11-04") == []
    assert ids(family=plain, birthdate="ge1980-01-01") == [other]
    assert ids(family=plain, birthdate="lt1980") == [pid]
    assert ids(family=plain, birthdate="le1990-01-20") == both
    assert ids(family=plain, birthdate="gt1990-01-20") == []
    assert ids(family=plain, birthdate="ne1975-11-03") == [other]
    # _id
    assert ids(_id=pid) == [pid]
    outcome(http.get("/fhir/Patient", params={"birthdate": "1975-13"}, headers=pro.headers), 400)


def test_td02_status_only_for_professional_without_access(
    http: httpx.Client, pro: Pro, other_pro: Pro
) -> None:
    family = _unique_family()
    ins = random_nir()
    pid = _create(http, pro.headers, patient_resource(ins, family=family)).json()["id"]
    # the professional who opened it gets the full Patient
    mine = http.get("/fhir/Patient", params={"identifier": ins}, headers=pro.headers).json()
    assert mine["entry"][0]["resource"]["name"][0]["family"] == family
    # another professional naming the exact INS learns the state, nothing else
    r = http.get(
        "/fhir/Patient",
        params={"identifier": f"urn:oid:{TEST_OID}|{ins}"},
        headers=other_pro.headers,
    )
    assert r.status_code == 200
    b = r.json()
    assert b["total"] == 1
    res = b["entry"][0]["resource"]
    assert res["id"] == pid
    assert ext(res, RECORD_STATUS)["valueCode"] == "active"
    assert ext(res, ACCESS)["valueCode"] == "none"
    for trait in ("name", "birthDate", "gender", "address", "telecom"):
        assert trait not in res, trait
    assert ext(res, EMERGENCY) is None and ext(res, CONSENT) is None
    assert family not in r.text
    # by name: nothing at all
    for params in ({"family": family}, {"family": family[:4]}, {"birthdate": "1980-04-12"}):
        n = http.get("/fhir/Patient", params=params, headers=other_pro.headers).json()
        assert all(e["resource"]["id"] != pid for e in n.get("entry", [])), params
    n = http.get("/fhir/Patient", params={"family": family}, headers=other_pro.headers).json()
    assert n["total"] == 0 and n["entry"] == []
    # combining the INS with a trait must not turn search into an oracle on identity traits
    for params in (
        {"identifier": ins, "family": family},
        {"identifier": ins, "family": "WRONG"},
        {"identifier": ins, "birthdate": "1980-04-12"},
    ):
        c = http.get("/fhir/Patient", params=params, headers=other_pro.headers).json()
        assert c["total"] == 0, params
    # and the read itself is refused like a missing record
    outcome(http.get(f"/fhir/Patient/{pid}", headers=other_pro.headers), 404)
    outcome(http.get(f"/fhir/Patient/{pid}/_history", headers=other_pro.headers), 404)
    # an unknown INS: nothing
    u = http.get("/fhir/Patient", params={"identifier": random_nir()}, headers=other_pro.headers)
    assert u.json()["total"] == 0


def test_patient_sees_only_own_record(http: httpx.Client, factory: Factory, pro: Pro) -> None:
    family = _unique_family()
    ins_a, ins_b = random_nir(), random_nir()
    a = _create(http, pro.headers, patient_resource(ins_a, family=family)).json()["id"]
    b = _create(http, pro.headers, patient_resource(ins_b, family=family)).json()["id"]
    me = factory.patient(ins_a)
    assert http.get(f"/fhir/Patient/{a}", headers=me).status_code == 200
    mine = outcome(http.get(f"/fhir/Patient/{b}", headers=me), 404)
    missing = outcome(http.get(f"/fhir/Patient/{b[:-4]}0000", headers=me), 404)
    assert mine == missing
    expected: list[tuple[dict[str, str], list[str]]] = [
        ({}, [a]),
        ({"family": family}, [a]),
        ({"identifier": ins_a}, [a]),
        ({"identifier": ins_b}, []),
        ({"_id": b}, []),
        ({"_id": f"{a},{b}"}, [a]),
    ]
    for params, want in expected:
        s = http.get("/fhir/Patient", params=params, headers=me).json()
        assert [e["resource"]["id"] for e in s["entry"]] == want, params
        assert s["total"] == len(want)
    # a patient does not update somebody else's record either
    outcome(
        http.put(f"/fhir/Patient/{b}", json=patient_resource(ins_b), headers={**me, **FHIR_JSON}),
        404,
    )


@pytest.mark.parametrize(
    ("identifier", "needle"),
    [
        ({"system": f"urn:oid:{TEST_OID}", "value": "123456789012345"}, "key"),
        ({"system": f"urn:oid:{TEST_OID}", "value": "12345678901234"}, "15 characters"),
        ({"system": f"urn:oid:{TEST_OID}", "value": "9234567890123AB"}, "malformed"),
        ({"system": f"urn:oid:{TEST_OID}", "value": "ABCDEFGHIJKLMNO"}, "malformed"),
        ({"system": "urn:oid:1.2.250.1.213.1.4.13", "value": None}, "not an INS"),
        ({"system": "urn:oid:1.2.3.4", "value": None}, "INS"),
    ],
)
def test_bad_ins_is_422_naming_the_field(
    http: httpx.Client, pro: Pro, identifier: dict[str, Any], needle: str
) -> None:
    res = patient_resource(random_nir())
    ident = dict(identifier)
    if ident["value"] is None:
        ident["value"] = random_nir()
    res["identifier"] = [{"system": "urn:oid:1.2.3", "value": "IPP-77"}, ident]
    issue = outcome(_create(http, pro.headers, res), 422)
    assert needle in issue["diagnostics"], issue
    assert issue["code"] == "business-rule"
    if ident["system"].endswith(("1.4.13", "1.4.10")):
        assert issue["expression"][0].startswith("Patient.identifier[1]"), issue
    else:
        assert issue["expression"][0].startswith("Patient.identifier"), issue


def test_wrong_nir_key_names_the_right_key(http: httpx.Client, pro: Pro) -> None:
    first13 = "1800275123456"
    good = make_nir(first13)
    wrong = first13 + f"{(int(good[13:]) + 1) % 97:02d}"
    issue = outcome(_create(http, pro.headers, patient_resource(wrong)), 422)
    assert issue["expression"] == ["Patient.identifier[0].value"]
    assert f"the key of {first13} is {good[13:]}" in issue["diagnostics"]
    # Corsica: 2A / 2B read as 19 / 18
    corsica = make_nir("180022A004001")
    assert corsica[5:7] == "2A"
    r = _create(http, pro.headers, patient_resource(corsica))
    assert r.status_code == 201, r.text


def test_unqualified_identity_is_refused(http: httpx.Client, pro: Pro) -> None:
    for status in ("PROV", "VIDE", "DOUTE"):
        issue = outcome(
            _create(http, pro.headers, patient_resource(random_nir(), status=status)), 422
        )
        assert status in issue["diagnostics"]
        assert issue["expression"] == ["Patient.extension:identityReliability"]
    no_status = patient_resource(random_nir())
    no_status["extension"] = no_status["extension"][1:]
    issue = outcome(_create(http, pro.headers, no_status), 422)
    assert issue["expression"] == ["Patient.extension:identityReliability"]
    issue = outcome(
        _create(http, pro.headers, patient_resource(random_nir(), birth_place=None)), 422
    )
    assert issue["expression"] == ["Patient.extension:birthPlace"]


def test_duplicate_record_is_409(http: httpx.Client, pro: Pro, other_pro: Pro) -> None:
    ins = random_nir()
    assert _create(http, pro.headers, patient_resource(ins)).status_code == 201
    issue = outcome(_create(http, other_pro.headers, patient_resource(ins, family="AUTRE")), 409)
    assert "already exists" in issue["diagnostics"]
    assert issue["code"] == "conflict"


def test_objection_to_creation(http: httpx.Client, pro: Pro) -> None:
    ins = random_nir()
    objection = patient_resource(ins, extra_extensions=[{"url": OBJECTION, "valueBoolean": True}])
    r = _create(http, pro.headers, objection)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["severity"] == "information"
    assert ins in body["issue"][0]["diagnostics"]
    # recorded twice: still one objection, still no record
    assert _create(http, pro.headers, objection).status_code == 200
    s = http.get("/fhir/Patient", params={"identifier": ins}, headers=pro.headers).json()
    assert s["total"] == 0
    issue = outcome(_create(http, pro.headers, patient_resource(ins)), 403)
    assert "object" not in issue["diagnostics"]
    # an objection with valueBoolean false is no objection
    ins2 = random_nir()
    not_obj = patient_resource(ins2, extra_extensions=[{"url": OBJECTION, "valueBoolean": False}])
    assert _create(http, pro.headers, not_obj).status_code == 201
