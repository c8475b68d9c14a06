"""A vendor's software on fhirclient (PyPI, the SMART on FHIR Python client: its ``FHIRServer``
and its R4 models, which refuse what does not fit them) against a real carnet server: the
CapabilityStatement parsed by its model, publish an IHE MHD 4.2.3 ITI-65 (``usual``
SubmissionSet uniqueId and a Folder), search with paging (``perform_iter`` follows ``next``
links), count (``_summary=count``, ``_count=0``), read, retrieve the document (ITI-68, raw bytes),
PATCH (JSON Patch, with ``If-Match``) a document's visibility and status, conditional PATCH on
``DocumentReference?identifier=…``. fhirclient has no PATCH of its own: a vendor sends it on the
client's ``requests`` session, with the client's headers. Every FHIR body received validates with
fhir.resources (R4B) and the npm ``fhir`` validator (last test).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fhirclient import client as smart_client
from fhirclient.models.bundle import Bundle
from fhirclient.models.capabilitystatement import CapabilityStatement
from fhirclient.models.documentreference import DocumentReference
from fhirclient.models.list import List as FhirList

from tests.clients.conftest import World
from tests.clients.scenario import (
    RFC3986,
    SEEDED,
    is_archived,
    json_patch_add_label,
    json_patch_archive,
    json_patch_status,
    label_codes,
    publication,
)
from tests.clients.validate import assert_all_valid

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def smart(world: World) -> Iterator[smart_client.FHIRClient]:
    with world.recorder.recording():
        made = smart_client.FHIRClient(
            settings={"app_id": "carnet-proof", "api_base": f"{world.base}/"}
        )
        made.server.session.headers["Authorization"] = f"Bearer {world.token}"
        yield made


def _patch(
    smart: smart_client.FHIRClient, path: str, ops: list[dict[str, Any]], **headers: str
) -> Any:
    server = smart.server
    r = server.session.patch(
        f"{server.base_uri}{path}",
        data=json.dumps(ops),
        headers={
            "Content-Type": "application/json-patch+json",
            "Accept": "application/fhir+json",
            **headers,
        },
    )
    server.raise_for_status(r)
    return DocumentReference(r.json())


def test_capability_statement_parses(smart: smart_client.FHIRClient) -> None:
    smart.prepare()  # GET metadata, parsed by fhirclient's CapabilityStatement model
    caps = smart.server.capabilityStatement
    assert isinstance(caps, CapabilityStatement)
    assert caps.fhirVersion == "4.0.1"
    [rest] = caps.rest
    docref = next(r for r in rest.resource if r.type == "DocumentReference")
    assert {i.code for i in docref.interaction} >= {"read", "search-type", "patch"}
    names = {p.name for p in docref.searchParam}
    assert {"isArchived", "creation", "author.family", "event", "relatesto"} <= names


def test_publish_usual_uniqueid_and_folder(world: World, smart: smart_client.FHIRClient) -> None:
    pub = publication(world.other_ins, 1, folder=True, author=world.rpps)
    answer = Bundle(smart.server.post_json("", pub.bundle).json())
    assert answer.type == "transaction-response"
    assert all(e.response.status.startswith("201") for e in answer.entry)
    [doc_loc] = [
        e.response.location for e in answer.entry if "/DocumentReference/" in e.response.location
    ]
    doc_id = doc_loc.split("/DocumentReference/")[1].split("/")[0]
    doc = DocumentReference.read(doc_id, smart.server)
    assert doc.masterIdentifier.value == pub.doc_unique_ids[0]
    subsets = list(
        FhirList.where(
            struct={"patient": world.other_pid, "identifier": f"{RFC3986}|{pub.set_unique_id}"}
        ).perform_resources_iter(smart.server)
    )
    assert len(subsets) == 1
    assert [i.value for i in subsets[0].identifier if i.use == "usual"] == [pub.set_unique_id]
    [folder] = FhirList.where(
        struct={"patient": world.other_pid, "code": "folder"}
    ).perform_resources_iter(smart.server)
    assert folder.title == "Suivi de grossesse"
    assert [i.value for i in folder.identifier if i.use == "usual"] == [pub.folder_unique_id]
    assert [e.item.reference for e in folder.entry] == [f"DocumentReference/{doc_id}"]


def test_search_pages_through_next_links(world: World, smart: smart_client.FHIRClient) -> None:
    search = DocumentReference.where(struct={"patient": world.pid, "_count": "2"})
    pages = list(search.perform_iter(smart.server))
    assert len(pages) == 3
    assert {p.total for p in pages} == {SEEDED}
    found = [e.resource.id for p in pages for e in p.entry or []]
    assert sorted(found) == sorted(world.seeded)


def test_count(world: World, smart: smart_client.FHIRClient) -> None:
    for params in ({"_summary": "count"}, {"_count": "0"}):
        [bundle] = DocumentReference.where(struct={"patient": world.pid, **params}).perform_iter(
            smart.server
        )
        assert bundle.total == SEEDED, params
        assert not bundle.entry, params


def test_read(world: World, smart: smart_client.FHIRClient) -> None:
    doc = DocumentReference.read(world.seeded[0], smart.server)
    assert doc.id == world.seeded[0]
    assert doc.masterIdentifier.value == world.seeded_unique_ids[0]
    assert doc.subject.reference == f"Patient/{world.pid}"
    assert doc.meta.versionId == "1"


def test_retrieve_document(world: World, smart: smart_client.FHIRClient) -> None:
    doc = DocumentReference.read(world.seeded[0], smart.server)
    attachment = doc.content[0].attachment
    assert attachment.url.startswith(f"{world.base}/Binary/"), attachment.url
    data = smart.server.request_data(attachment.url, headers={"Accept": "application/pdf"})
    assert len(data) == attachment.size
    assert data.startswith(b"%PDF-1.4")


def test_patch_visibility_and_status(world: World, smart: smart_client.FHIRClient) -> None:
    target = world.seeded[2]
    version = DocumentReference.read(target, smart.server).meta.versionId
    hidden = _patch(
        smart,
        f"DocumentReference/{target}",
        json_patch_add_label("INVISIBLE_PATIENT"),
        **{"If-Match": f'W/"{version}"'},
    )
    assert "INVISIBLE_PATIENT" in label_codes(hidden.as_json())
    assert hidden.meta.versionId == str(int(version) + 1)
    deleted = world.seeded[4]
    version = DocumentReference.read(deleted, smart.server).meta.versionId
    gone = _patch(
        smart,
        f"DocumentReference/{deleted}",
        json_patch_status("entered-in-error"),
        **{"If-Match": f'W/"{version}"'},
    )
    assert gone.status == "entered-in-error"
    left = [
        d.id
        for d in DocumentReference.where(struct={"patient": world.pid}).perform_resources_iter(
            smart.server
        )
    ]
    assert deleted not in left and target in left


def test_conditional_patch_archives(world: World, smart: smart_client.FHIRClient) -> None:
    target = world.seeded[1]
    current = DocumentReference.read(target, smart.server).as_json()
    archived = _patch(
        smart,
        f"DocumentReference?identifier={RFC3986}|{world.seeded_unique_ids[1]}",
        json_patch_archive(current),
    )
    assert archived.id == target and is_archived(archived.as_json())
    only = DocumentReference.where(
        struct={"patient": world.pid, "isArchived": "true"}
    ).perform_resources_iter(smart.server)
    assert [d.id for d in only] == [target]


def test_every_response_validates(world: World, smart: smart_client.FHIRClient) -> None:
    assert not world.recorder.server_errors(), world.recorder.server_errors()
    assert assert_all_valid(world.recorder.fhir_bodies()) >= 10
