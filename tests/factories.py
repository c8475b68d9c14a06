"""Factories for test data: valid INS, Patients, DocumentReferences, ITI-65 bundles, tokens."""

from __future__ import annotations

import base64
import hashlib
import random
import uuid
from typing import Any

import httpx

from carnet.domain.ins import make_nir

TEST_OID = "1.2.250.1.213.1.4.10"
NIR_OID = "1.2.250.1.213.1.4.8"
RPPS = "urn:oid:1.2.250.1.71.4.2.1"
FHIR_JSON = {"Content-Type": "application/fhir+json"}


def random_nir(rng: random.Random | None = None) -> str:
    r = rng or random.Random()
    first13 = f"{r.choice('12')}{r.randint(40, 99):02d}{r.randint(1, 12):02d}{r.randint(1, 95):02d}{r.randint(1, 999):03d}{r.randint(1, 999):03d}"
    return make_nir(first13)


def patient_resource(
    ins: str,
    *,
    oid: str = TEST_OID,
    status: str = "VALI",
    family: str = "DURAND",
    given: list[str] | None = None,
    birth_date: str = "1980-04-12",
    gender: str = "female",
    birth_place: str | None = "75056",
    extra_extensions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    exts: list[dict[str, Any]] = [
        {
            "url": "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-identity-reliability",
            "extension": [
                {
                    "url": "identityStatus",
                    "valueCoding": {
                        "system": "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0445",
                        "code": status,
                    },
                }
            ],
        }
    ]
    if birth_place:
        exts.append(
            {
                "url": "http://hl7.org/fhir/StructureDefinition/patient-birthPlace",
                "valueAddress": {
                    "extension": [
                        {
                            "url": "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-address-insee-code",
                            "valueCoding": {"code": birth_place},
                        }
                    ]
                },
            }
        )
    exts += extra_extensions or []
    return {
        "resourceType": "Patient",
        "extension": exts,
        "identifier": [{"system": f"urn:oid:{oid}", "value": ins}],
        "name": [{"use": "official", "family": family, "given": given or ["Marie", "Claire"]}],
        "gender": gender,
        "birthDate": birth_date,
    }


def docref(
    ins: str,
    *,
    oid: str = TEST_OID,
    unique_id: str | None = None,
    binary_url: str = "urn:uuid:binary-1",
    content: bytes | None = None,
    type_code: str = "11488-4",
    class_code: str = "10",
    labels: list[str] | None = None,
    date: str = "2026-06-12T10:00:00+02:00",
    author_rpps: str = "899700218896",
    content_type: str = "application/pdf",
    replaces: str | None = None,
    inline: bool = False,
    practice_setting: str = "394802001",
    facility: str = "22232009",
    format_code: str = "urn:ihe:iti:xds-sd:pdf:2008",
) -> dict[str, Any]:
    attachment: dict[str, Any] = {
        "contentType": content_type,
        "language": "fr-FR",
        "title": "Compte rendu",
        "creation": date,
    }
    if inline and content is not None:
        attachment["data"] = base64.b64encode(content).decode()
    else:
        attachment["url"] = binary_url
    if content is not None:
        attachment["size"] = len(content)
        attachment["hash"] = base64.b64encode(hashlib.sha1(content).digest()).decode()
    labels = labels or ["N"]
    resource: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "contained": [
            {
                "resourceType": "Patient",
                "id": "src",
                "identifier": [{"system": "urn:oid:1.2.3", "value": "IPP-1"}],
            },
            {
                "resourceType": "Practitioner",
                "id": "author",
                "identifier": [{"system": RPPS, "value": author_rpps}],
            },
        ],
        "masterIdentifier": {
            "system": "urn:ietf:rfc:3986",
            "value": unique_id or f"urn:oid:1.2.250.1.999.{uuid.uuid4().int % 10**12}",
        },
        "status": "current",
        "type": {"coding": [{"system": "http://loinc.org", "code": type_code}]},
        "category": [
            {
                "coding": [
                    {
                        "system": "https://mos.esante.gouv.fr/NOS/TRE_A03-ClasseDocument/FHIR/TRE-A03-ClasseDocument",
                        "code": class_code,
                    }
                ]
            }
        ],
        "subject": {"reference": f"Patient?identifier=urn:oid:{oid}|{ins}"},
        "date": date,
        "author": [{"reference": "#author"}],
        "securityLabel": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
                        if c in "NRV"
                        else "https://mos.esante.gouv.fr/NOS/TRE_A07-StatutVisibiliteDocument/FHIR/TRE-A07-StatutVisibiliteDocument",
                        "code": c,
                    }
                ]
            }
            for c in labels
        ],
        "content": [
            {
                "attachment": attachment,
                "format": {
                    "system": "http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode",
                    "code": format_code,
                },
            }
        ],
        "context": {
            "period": {"start": date},
            "sourcePatientInfo": {"reference": "#src"},
            "facilityType": {"coding": [{"system": "http://snomed.info/sct", "code": facility}]},
            "practiceSetting": {
                "coding": [{"system": "http://snomed.info/sct", "code": practice_setting}]
            },
        },
    }
    if replaces:
        resource["relatesTo"] = [
            {"code": "replaces", "target": {"reference": f"DocumentReference/{replaces}"}}
        ]
    return resource


def bundle(
    ins: str,
    docs: list[tuple[dict[str, Any], bytes, str]],
    *,
    oid: str = TEST_OID,
    set_unique_id: str | None = None,
) -> dict[str, Any]:
    """docs: (DocumentReference, content, content type); binaries referenced by fullUrl."""
    entries: list[dict[str, Any]] = []
    items = []
    doc_entries = []
    for i, (dr, content, ctype) in enumerate(docs):
        bin_url = f"urn:uuid:{uuid.uuid4()}"
        doc_url = f"urn:uuid:{uuid.uuid4()}"
        dr["content"][0]["attachment"]["url"] = bin_url
        items.append({"item": {"reference": doc_url}})
        doc_entries.append(
            {
                "fullUrl": doc_url,
                "resource": dr,
                "request": {"method": "POST", "url": "DocumentReference"},
            }
        )
        doc_entries.append(
            {
                "fullUrl": bin_url,
                "resource": {
                    "resourceType": "Binary",
                    "contentType": ctype,
                    "data": base64.b64encode(content).decode(),
                },
                "request": {"method": "POST", "url": "Binary"},
            }
        )
    entries.append(
        {
            "fullUrl": f"urn:uuid:{uuid.uuid4()}",
            "resource": {
                "resourceType": "List",
                "contained": [
                    {
                        "resourceType": "Practitioner",
                        "id": "a",
                        "identifier": [{"system": RPPS, "value": "899700218896"}],
                    }
                ],
                "extension": [
                    {
                        "url": "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-sourceId",
                        "valueIdentifier": {
                            "system": "urn:ietf:rfc:3986",
                            "value": "urn:oid:1.2.3.4.5",
                        },
                    },
                ],
                "identifier": [  # IHE MHD 4.2.3: the uniqueId is the usual identifier
                    {
                        "use": "usual",
                        "system": "urn:ietf:rfc:3986",
                        "value": set_unique_id
                        or f"urn:oid:1.2.250.1.999.9.{uuid.uuid4().int % 10**12}",
                    }
                ],
                "status": "current",
                "mode": "working",
                "code": {
                    "coding": [
                        {
                            "system": "https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes",
                            "code": "submissionset",
                        }
                    ]
                },
                "subject": {"reference": f"Patient?identifier=urn:oid:{oid}|{ins}"},
                "date": "2026-06-12T10:00:00+02:00",
                "source": {"reference": "#a"},
                "entry": items,
            },
            "request": {"method": "POST", "url": "List"},
        }
    )
    entries += doc_entries
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


class Factory:
    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def token(self, **claims: Any) -> dict[str, str]:
        r = self.http.post("/dev/token", json=claims)
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['access_token']}"}

    def professional(
        self, rpps: str = "899700218896", profession: str = "10", **kw: Any
    ) -> dict[str, str]:
        return self.token(kind="professional", rpps=rpps, profession=profession, **kw)

    def patient(self, ins: str) -> dict[str, str]:
        return self.token(kind="patient", ins=ins, ins_oid=TEST_OID)

    def open_record(self, headers: dict[str, str] | None = None, **kw: Any) -> tuple[str, str]:
        """Create a record; returns (INS, Patient id)."""
        ins = random_nir()
        r = self.http.post(
            "/fhir/Patient",
            json=patient_resource(ins, **kw),
            headers={**(headers or self.professional()), **FHIR_JSON},
        )
        assert r.status_code == 201, r.text
        return ins, r.json()["id"]

    def publish(
        self,
        ins: str,
        docs: list[tuple[dict[str, Any], bytes, str]],
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        return self.http.post(
            "/fhir",
            json=bundle(ins, docs),
            headers={**(headers or self.professional()), **FHIR_JSON},
        )


# -- helpers added for the end-to-end suite (tests/e2e) -----------------------------------------

CARNET_EXT = "https://carnet.health/fhir/StructureDefinition"


def random_rpps(rng: random.Random | None = None) -> str:
    """A random professional's IdNatPS (``8`` + an 11-digit RPPS number whose last digit is its
    Luhn key), like the default 899700218896: distinct per test so that searches stay isolated."""
    r = rng or random.Random()
    body = f"{r.randint(10**9, 10**10 - 1)}"
    for key in "0123456789":
        total = 0
        for i, c in enumerate(reversed(body + key)):
            d = int(c) * (2 if i % 2 else 1)
            total += d - 9 if d > 9 else d
        if total % 10 == 0:
            return "8" + body + key
    raise AssertionError("unreachable: one Luhn key fits")


def ext(resource: dict[str, Any], url: str) -> dict[str, Any] | None:
    """The first extension of ``resource`` with ``url``."""
    for e in resource.get("extension") or []:
        if e.get("url") == url:
            return dict(e)
    return None


def sub_ext(extension: dict[str, Any], url: str) -> Any:
    """The value[x] of the sub-extension ``url``."""
    for e in extension.get("extension") or []:
        if e.get("url") == url:
            return next(v for k, v in e.items() if k.startswith("value"))
    return None


def outcome(r: httpx.Response, status: int) -> dict[str, Any]:
    """Assert that ``r`` is an OperationOutcome error with ``status``; return its first issue."""
    assert r.status_code == status, (r.status_code, r.text[:2000])
    assert r.headers["content-type"].startswith("application/fhir+json"), r.headers
    body = r.json()
    assert body["resourceType"] == "OperationOutcome", body
    assert body["issue"] and body["issue"][0]["severity"] in ("error", "fatal"), body
    issue: dict[str, Any] = body["issue"][0]
    assert issue.get("diagnostics"), body
    return issue


def created_doc_ids(r: httpx.Response) -> list[str]:
    """The DocumentReference ids of an ITI-65 transaction-response."""
    assert r.status_code == 200, r.text[:2000]
    out = []
    for e in r.json()["entry"]:
        loc = e["response"].get("location", "")
        if "/DocumentReference/" in loc:
            out.append(loc.split("/DocumentReference/", 1)[1].split("/", 1)[0])
    return out


def pdf_bytes(marker: bytes = b"", size: int = 0) -> bytes:
    """A small PDF-looking content, unique per call; padded to ``size`` bytes when given."""
    body = b"%PDF-1.4\n% carnet e2e " + uuid.uuid4().hex.encode() + b"\n" + marker
    if size > len(body):
        body += random.Random(body).randbytes(size - len(body))
    return body


# -- helpers added for the access-rule suite (tests/e2e/test_rules_*) ----------------------------

STRUCTURE_SYSTEM = "urn:oid:1.2.250.1.71.4.2.2"
ROLE_CODE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
VISIBILITY = (
    "https://mos.esante.gouv.fr/NOS/TRE_A07-StatutVisibiliteDocument/FHIR/"
    "TRE-A07-StatutVisibiliteDocument"
)
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
ARCHIVED_EXT = f"{CARNET_EXT}/dmp-archived"
RECORD_STATUS_EXT = f"{CARNET_EXT}/dmp-record-status"
OBJECTION_EXT = f"{CARNET_EXT}/dmp-creation-objection"
ACCESS_EXT = f"{CARNET_EXT}/dmp-professional-access"


def random_idnatps(rng: random.Random | None = None) -> str:
    """An IdNatPS that Consents accept: ``8`` + an 11-digit RPPS whose last digit is its Luhn
    key; random, so that each test has professionals of its own."""
    from carnet.domain.professionals import luhn_ok

    r = rng or random.Random()
    body = f"1{r.randint(0, 10**9 - 1):09d}"
    key = next(k for k in "0123456789" if luhn_ok(body + k))
    return "8" + body + key


def security_labels(codes: list[str]) -> list[dict[str, Any]]:
    """DocumentReference.securityLabel for confidentiality and visibility codes."""
    return [
        {"coding": [{"system": CONFIDENTIALITY if c in ("N", "R", "V") else VISIBILITY, "code": c}]}
        for c in codes
    ]


def label_codes(resource: dict[str, Any]) -> set[str]:
    return {
        str(c.get("code"))
        for label in resource.get("securityLabel") or []
        for c in label.get("coding") or []
    }


def consent_resource(
    pid: str,
    *,
    decision: str = "permit",
    rpps: str | None = None,
    structure: str | None = None,
    purpose: str | None = None,
    status: str = "active",
) -> dict[str, Any]:
    """A Consent of carnet's contract (docs/consents.md): an authorisation (permit) or a block
    (deny) of a professional named by RPPS, a care team named by structure, or an emergency
    consent (purpose ETREAT, BTG, MASKED)."""
    provision: dict[str, Any] = {"type": decision}
    if rpps is not None:
        provision["actor"] = [
            {
                "role": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                            "code": "PRCP",
                        }
                    ]
                },
                "reference": {"identifier": {"system": RPPS, "value": rpps}},
            }
        ]
    elif structure is not None:
        provision["actor"] = [
            {
                "role": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                            "code": "PRCP",
                        }
                    ]
                },
                "reference": {"identifier": {"system": STRUCTURE_SYSTEM, "value": structure}},
            }
        ]
    if purpose is not None:
        provision["purpose"] = [{"system": ACT_REASON, "code": purpose}]
    return {
        "resourceType": "Consent",
        "status": status,
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                }
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{pid}"},
        "provision": provision,
    }


def related_person_resource(
    pid: str, ins: str, relationship: str = "GUARD", oid: str = TEST_OID
) -> dict[str, Any]:
    return {
        "resourceType": "RelatedPerson",
        "patient": {"reference": f"Patient/{pid}"},
        "identifier": [{"system": f"urn:oid:{oid}", "value": ins}],
        "relationship": [{"coding": [{"system": ROLE_CODE, "code": relationship}]}],
    }


def search_ids(body: dict[str, Any]) -> list[str]:
    """The ids of the ``match`` entries of a searchset Bundle."""
    return [
        e["resource"]["id"]
        for e in body.get("entry") or []
        if (e.get("search") or {}).get("mode", "match") == "match"
    ]


class Person:
    """Someone who calls carnet: their token headers and, for a professional, their IdNatPS."""

    def __init__(
        self, headers: dict[str, str], rpps: str | None = None, ins: str | None = None
    ) -> None:
        self.headers = headers
        self.rpps = rpps
        self.ins = ins


class Rules:
    """Short calls for the access-rule suite: people, records, documents, consents, reads."""

    def __init__(self, http: httpx.Client, factory: Factory) -> None:
        self.http = http
        self.factory = factory

    # people
    def pro(self, profession: str = "10", rpps: str | None = None, **claims: Any) -> Person:
        rpps = rpps or random_idnatps()
        return Person(self.factory.professional(rpps=rpps, profession=profession, **claims), rpps)

    def patient(self, ins: str | None = None) -> Person:
        ins = ins or random_nir()
        return Person(self.factory.patient(ins), ins=ins)

    def record(self, opener: Person) -> tuple[str, str, Person]:
        """A record opened by ``opener``: (INS, Patient id, the patient)."""
        ins, pid = self.factory.open_record(opener.headers)
        return ins, pid, self.patient(ins)

    # documents
    def publish(
        self,
        ins: str,
        author: Person,
        *,
        labels: list[str] | None = None,
        type_code: str = "11488-4",
        class_code: str = "10",
        content: bytes | None = None,
        replaces: str | None = None,
        by: Person | None = None,
    ) -> httpx.Response:
        dr = docref(
            ins,
            author_rpps=author.rpps or "899700218896",
            labels=labels,
            type_code=type_code,
            class_code=class_code,
            replaces=replaces,
        )
        return self.factory.publish(
            ins, [(dr, content or pdf_bytes(), "application/pdf")], (by or author).headers
        )

    def doc(self, ins: str, author: Person, **kw: Any) -> str:
        ids = created_doc_ids(self.publish(ins, author, **kw))
        assert len(ids) == 1, ids
        return ids[0]

    def search(self, who: Person, pid: str, **params: Any) -> dict[str, Any]:
        r = self.http.get(
            "/fhir/DocumentReference", params={"patient": pid, **params}, headers=who.headers
        )
        assert r.status_code == 200, r.text[:2000]
        body: dict[str, Any] = r.json()
        return body

    def visible(self, who: Person, pid: str, **params: Any) -> set[str]:
        body = self.search(who, pid, _count=200, **params)
        ids = search_ids(body)
        assert body["total"] == len(ids), body
        return set(ids)

    def read(self, who: Person, doc_id: str) -> httpx.Response:
        return self.http.get(f"/fhir/DocumentReference/{doc_id}", headers=who.headers)

    def content(self, who: Person, doc_id: str, binary_id: str | None = None) -> httpx.Response:
        return self.http.get(f"/fhir/Binary/{binary_id or doc_id}", headers=who.headers)

    def put_doc(self, who: Person, resource: dict[str, Any]) -> httpx.Response:
        return self.http.put(
            f"/fhir/DocumentReference/{resource['id']}",
            json=resource,
            headers={**who.headers, **FHIR_JSON},
        )

    def relabel(self, who: Person, stored: dict[str, Any], codes: list[str]) -> httpx.Response:
        """PUT the stored DocumentReference with only its securityLabel changed."""
        return self.put_doc(who, {**stored, "securityLabel": security_labels(codes)})

    # consents and records
    def consent(self, who: Person, pid: str, **kw: Any) -> httpx.Response:
        return self.http.post(
            "/fhir/Consent", json=consent_resource(pid, **kw), headers={**who.headers, **FHIR_JSON}
        )

    def consents(self, who: Person, pid: str) -> httpx.Response:
        return self.http.get("/fhir/Consent", params={"patient": pid}, headers=who.headers)

    def patient_resource(self, who: Person, pid: str) -> dict[str, Any]:
        r = self.http.get(f"/fhir/Patient/{pid}", headers=who.headers)
        assert r.status_code == 200, r.text[:2000]
        body: dict[str, Any] = r.json()
        return body

    def put_patient(self, who: Person, resource: dict[str, Any]) -> httpx.Response:
        return self.http.put(
            f"/fhir/Patient/{resource['id']}", json=resource, headers={**who.headers, **FHIR_JSON}
        )

    def set_record_status(
        self, who: Person, pid: str, status: str, reader: Person | None = None
    ) -> httpx.Response:
        body = self.patient_resource(reader or who, pid)
        exts = [e for e in body.get("extension") or [] if e.get("url") != RECORD_STATUS_EXT]
        exts.append({"url": RECORD_STATUS_EXT, "valueCode": status})
        return self.put_patient(who, {**body, "extension": exts})


def execute_sql(url: str, statement: Any) -> int:
    """Run one SQLAlchemy statement against a server's database (its ``sqlalchemy_url``), for
    tests that must age data (closure dates, document dates); returns the rows changed."""
    import asyncio

    from sqlalchemy.ext.asyncio import create_async_engine

    async def go() -> int:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as conn:
                return int((await conn.execute(statement)).rowcount)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def fetch_sql(url: str, statement: Any) -> list[Any]:
    """Rows of one SQLAlchemy query against a server's database (its ``sqlalchemy_url``)."""
    import asyncio

    from sqlalchemy.ext.asyncio import create_async_engine

    async def go() -> list[Any]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                return list((await conn.execute(statement)).all())
        finally:
            await engine.dispose()

    return asyncio.run(go())


def stored_blobs(settings: Any, record_id: str) -> dict[str, bytes]:
    """The encrypted blobs of a record as stored, whichever content store holds them: files
    under the content folder, or rows of ``content_chunks`` (concatenated, they are the same
    bytes as a file: the header, then the sealed chunks)."""
    from sqlalchemy import select

    from carnet.store.tables import content_chunks

    out: dict[str, bytes] = {}
    folder = settings.content_dir / record_id[:2] / record_id
    if folder.is_dir():
        out.update({p.name: p.read_bytes() for p in folder.iterdir()})
    c = content_chunks.c
    rows = fetch_sql(
        settings.sqlalchemy_url,
        select(c.blob_id, c.data).where(c.record_id == record_id).order_by(c.blob_id, c.chunk_no),
    )
    for blob_id, data in rows:
        out[blob_id] = out.get(blob_id, b"") + bytes(data)
    return out


def open_blob(blob: bytes, blob_id: str, key: bytes, size: int) -> bytes:
    """Decrypt a stored blob (as :func:`stored_blobs` gives it)."""
    from carnet.store.crypto import HEADER, ChunkDecryptor

    dec = ChunkDecryptor(key, blob_id, blob[: HEADER.size], size)
    return b"".join(
        dec.open_chunk(i, blob[dec.chunk_offset(i) : dec.chunk_offset(i) + dec.chunk_cipher_len(i)])
        for i in range(dec.chunk_count)
    )
