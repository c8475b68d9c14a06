"""The vendor scenario shared by the three clients (fhirpy, fhirclient, fhir-kit-client).

An ITI-65 Provide Document Bundle as IHE MHD 4.2.3 defines it: the SubmissionSet's uniqueId is
the ``identifier`` with ``use=usual`` (an ``urn:oid:``), its entryUUID the optional ``official``
one (a ``urn:uuid:``); a Folder (List, code ``folder``) holds the published document; the
documents are PDSm comprehensive DocumentReferences (tests/factories.py ``docref``).
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field
from typing import Any

from tests.factories import RPPS, TEST_OID, docref, pdf_bytes

MHD_LIST_TYPES = "https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes"
MHD_EXT = "https://profiles.ihe.net/ITI/MHD/StructureDefinition"
CLASSE = "https://mos.esante.gouv.fr/NOS/TRE_A03-ClasseDocument/FHIR/TRE-A03-ClasseDocument"
RFC3986 = "urn:ietf:rfc:3986"
PDSM_ARCHIVED = (
    "https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/pdsm-ext-is-archived"
)
VISIBILITY = (
    "https://mos.esante.gouv.fr/NOS/TRE_A07-StatutVisibiliteDocument/FHIR/"
    "TRE-A07-StatutVisibiliteDocument"
)
SEEDED = 5  # documents seeded in the record that is searched, so that _count=2 gives 3 pages


def oid() -> str:
    return f"urn:oid:1.2.250.1.999.{uuid.uuid4().int % 10**12}"


@dataclass
class Publication:
    """An ITI-65 bundle and the identifiers it carries."""

    bundle: dict[str, Any]
    set_unique_id: str
    folder_unique_id: str | None
    doc_unique_ids: list[str] = field(default_factory=list)
    contents: list[bytes] = field(default_factory=list)


def _designation() -> dict[str, Any]:
    return {
        "url": f"{MHD_EXT}/ihe-designationType",
        "valueCodeableConcept": {"coding": [{"system": CLASSE, "code": "11"}]},
    }


def publication(
    ins: str, n_docs: int = 1, *, folder: bool = True, entry_uuid: bool = False, author: str
) -> Publication:
    """An MHD 4.2.3 ITI-65 transaction for the record of ``ins``: a SubmissionSet whose uniqueId
    is ``usual`` (plus its ``official`` entryUUID when ``entry_uuid``), ``n_docs`` PDF documents
    by ``author`` (an IdNatPS), and a Folder holding them when ``folder``."""
    subject = {"reference": f"Patient?identifier=urn:oid:{TEST_OID}|{ins}"}
    set_uid = oid()
    pub = Publication(bundle={}, set_unique_id=set_uid, folder_unique_id=None)
    docs: list[dict[str, Any]] = []
    items: list[dict[str, Any]] = []
    for _ in range(n_docs):
        content = pdf_bytes()
        uid = oid()
        doc_url, bin_url = f"urn:uuid:{uuid.uuid4()}", f"urn:uuid:{uuid.uuid4()}"
        dr = docref(ins, unique_id=uid, content=content, binary_url=bin_url, author_rpps=author)
        docs += [
            {
                "fullUrl": doc_url,
                "resource": dr,
                "request": {"method": "POST", "url": "DocumentReference"},
            },
            {
                "fullUrl": bin_url,
                "resource": {
                    "resourceType": "Binary",
                    "contentType": "application/pdf",
                    "data": base64.b64encode(content).decode(),
                },
                "request": {"method": "POST", "url": "Binary"},
            },
        ]
        items.append({"item": {"reference": doc_url}})
        pub.doc_unique_ids.append(uid)
        pub.contents.append(content)
    identifiers = [{"use": "usual", "system": RFC3986, "value": set_uid}]
    if entry_uuid:
        identifiers.append(
            {"use": "official", "system": RFC3986, "value": f"urn:uuid:{uuid.uuid4()}"}
        )
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": f"urn:uuid:{uuid.uuid4()}",
            "resource": {
                "resourceType": "List",
                "contained": [
                    {
                        "resourceType": "Practitioner",
                        "id": "a",
                        "identifier": [{"system": RPPS, "value": author}],
                    }
                ],
                "extension": [
                    _designation(),
                    {
                        "url": f"{MHD_EXT}/ihe-sourceId",
                        "valueIdentifier": {"system": RFC3986, "value": "urn:oid:1.2.3.4.5"},
                    },
                ],
                "identifier": identifiers,
                "status": "current",
                "mode": "working",
                "code": {"coding": [{"system": MHD_LIST_TYPES, "code": "submissionset"}]},
                "subject": subject,
                "date": "2026-06-12T10:00:00+02:00",
                "source": {"reference": "#a"},
                "entry": list(items),
            },
            "request": {"method": "POST", "url": "List"},
        }
    ]
    if folder:
        pub.folder_unique_id = oid()
        folder_url = f"urn:uuid:{uuid.uuid4()}"
        entries.append(
            {
                "fullUrl": folder_url,
                "resource": {
                    "resourceType": "List",
                    "extension": [_designation()],
                    "identifier": [
                        {"use": "usual", "system": RFC3986, "value": pub.folder_unique_id},
                        {"use": "official", "system": RFC3986, "value": f"urn:uuid:{uuid.uuid4()}"},
                    ],
                    "status": "current",
                    "mode": "working",
                    "title": "Suivi de grossesse",
                    "code": {"coding": [{"system": MHD_LIST_TYPES, "code": "folder"}]},
                    "subject": subject,
                    "date": "2026-06-12T10:00:00+02:00",
                    "entry": list(items),
                },
                "request": {"method": "POST", "url": "List"},
            }
        )
        # the submission set lists the folder it creates too (MHD 4.2.3 §2:3.65.4.1.2.1)
        entries[0]["resource"]["entry"].append({"item": {"reference": folder_url}})
    pub.bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries + docs}
    return pub


def json_patch_status(status: str) -> list[dict[str, Any]]:
    """TD3.3c: ``[{op: replace, path: /status, value: …}]`` (RFC 6902)."""
    return [{"op": "replace", "path": "/status", "value": status}]


def json_patch_add_label(code: str) -> list[dict[str, Any]]:
    """TD3.3b: add a visibility code (TRE_A07) to ``securityLabel``."""
    return [
        {
            "op": "add",
            "path": "/securityLabel/-",
            "value": {"coding": [{"system": VISIBILITY, "code": code}]},
        }
    ]


def json_patch_archive(resource: dict[str, Any]) -> list[dict[str, Any]]:
    """TD3.3d: set the PDSm archive extension to true (RFC 6902: append it to ``extension``,
    or create the array)."""
    ext = {"url": PDSM_ARCHIVED, "valueBoolean": True}
    if resource.get("extension"):
        return [{"op": "add", "path": "/extension/-", "value": ext}]
    return [{"op": "add", "path": "/extension", "value": [ext]}]


def label_codes(resource: dict[str, Any]) -> set[str]:
    return {
        str(c.get("code"))
        for label in resource.get("securityLabel") or []
        for c in label.get("coding") or []
    }


def is_archived(resource: dict[str, Any]) -> bool:
    return any(
        e.get("url") == PDSM_ARCHIVED and e.get("valueBoolean") is True
        for e in resource.get("extension") or []
    )
