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
                "identifier": [
                    {
                        "use": "official",
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
