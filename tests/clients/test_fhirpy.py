"""A vendor's software on fhirpy (PyPI, beda.software's FHIR client; its sync client, on
``requests``) against a real carnet server: publish an IHE MHD 4.2.3 ITI-65 (``usual``
SubmissionSet uniqueId and a Folder), search with paging (fhirpy follows ``next`` links), count
(``.count()``, ``_summary=count``, ``_count=0``), read, retrieve the Binary, PATCH (JSON Patch) a
document's visibility and status, conditional PATCH on ``DocumentReference?identifier=…``
(TD3.3a–d of the PDSm for DMP guide). Every FHIR body fhirpy received validates with
fhir.resources (R4B) and the npm ``fhir`` validator (last test).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from fhirpy import SyncFHIRClient

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
from tests.clients.validate import assert_all_valid, r4b_errors

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def client(world: World) -> Iterator[SyncFHIRClient]:
    with world.recorder.recording():
        yield SyncFHIRClient(world.base, authorization=f"Bearer {world.token}")


@pytest.fixture(scope="module")
def patcher(world: World, client: SyncFHIRClient) -> SyncFHIRClient:
    """fhirpy's own ``patch()`` sends a partial resource (merge patch); a vendor sends the JSON
    Patch the PDSm guide shows with a client whose requests say so."""
    return SyncFHIRClient(
        world.base,
        authorization=f"Bearer {world.token}",
        extra_headers={"Content-Type": "application/json-patch+json"},
    )


def _plain(value: Any) -> Any:
    """fhirpy's AttrDicts and resources as plain JSON."""
    if hasattr(value, "serialize"):
        return value.serialize()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def test_publish_usual_uniqueid_and_folder(world: World, client: SyncFHIRClient) -> None:
    pub = publication(world.other_ins, 1, folder=True, author=world.rpps)
    answer = _plain(client.execute(world.base, method="post", data=pub.bundle))
    assert answer["type"] == "transaction-response"
    statuses = [e["response"]["status"] for e in answer["entry"]]
    assert statuses and all(s.startswith("201") for s in statuses), statuses
    locations = [e["response"]["location"] for e in answer["entry"]]
    [doc_id] = [
        loc.split("/DocumentReference/")[1].split("/")[0]
        for loc in locations
        if "/DocumentReference/" in loc
    ]
    assert sum("/List/" in loc for loc in locations) == 2  # the submission set and the folder
    doc = _plain(client.get("DocumentReference", doc_id))
    assert doc["masterIdentifier"]["value"] == pub.doc_unique_ids[0]
    # ITI-66: the submission set by its uniqueId, the folder by its code, holding the document
    [subset] = (
        client.resources("List")
        .search(patient=world.other_pid, identifier=f"{RFC3986}|{pub.set_unique_id}")
        .fetch_all()
    )
    usual = [i for i in _plain(subset)["identifier"] if i.get("use") == "usual"]
    assert [i["value"] for i in usual] == [pub.set_unique_id]
    [folder] = client.resources("List").search(patient=world.other_pid, code="folder").fetch_all()
    folder = _plain(folder)
    assert folder["title"] == "Suivi de grossesse"
    assert {"use": "usual", "system": RFC3986, "value": pub.folder_unique_id} in folder[
        "identifier"
    ]
    assert [e["item"]["reference"] for e in folder["entry"]] == [f"DocumentReference/{doc_id}"]


def test_search_pages_through_next_links(world: World, client: SyncFHIRClient) -> None:
    search = client.resources("DocumentReference").search(patient=world.pid).limit(2)
    first = _plain(search.fetch_raw())
    assert first["total"] == SEEDED
    assert any(link["relation"] == "next" for link in first["link"])
    before = len(world.recorder.exchanges)
    found = [d.id for d in search.fetch_all()]  # fhirpy follows the next links
    pages = world.recorder.exchanges[before:]
    assert len(pages) == 3, [p.url for p in pages]
    assert sorted(found) == sorted(world.seeded)


def test_count(world: World, client: SyncFHIRClient) -> None:
    search = client.resources("DocumentReference").search(patient=world.pid)
    assert search.count() == SEEDED  # _count=0&_totalMethod=count
    for params in ({"_summary": "count"}, {"_count": 0}):
        bundle = _plain(
            client.resources("DocumentReference").search(patient=world.pid, **params).fetch_raw()
        )
        assert bundle["total"] == SEEDED, params
        assert not bundle.get("entry"), params


def test_read(world: World, client: SyncFHIRClient) -> None:
    doc = _plain(client.get("DocumentReference", world.seeded[0]))
    assert not r4b_errors(doc)
    assert doc["id"] == world.seeded[0]
    assert doc["masterIdentifier"] == {"system": RFC3986, "value": world.seeded_unique_ids[0]}
    assert doc["subject"] == {"reference": f"Patient/{world.pid}"}
    world.state["fhirpy.read"] = doc


def test_retrieve_binary(world: World, client: SyncFHIRClient) -> None:
    doc = _plain(client.get("DocumentReference", world.seeded[0]))
    url = doc["content"][0]["attachment"]["url"]
    assert url.startswith(f"{world.base}/Binary/"), url
    binary = _plain(client.get("Binary", url.rsplit("/", 1)[1]))  # Accept: application/fhir+json
    assert binary["resourceType"] == "Binary"
    assert binary["contentType"] == "application/pdf"
    data = base64.b64decode(binary["data"])
    assert len(data) == doc["content"][0]["attachment"]["size"]
    assert data.startswith(b"%PDF-1.4")


def test_patch_visibility_and_status(
    world: World, client: SyncFHIRClient, patcher: SyncFHIRClient
) -> None:
    target = world.seeded[2]
    hidden = _plain(
        patcher.execute(
            f"DocumentReference/{target}",
            method="patch",
            data=json_patch_add_label("INVISIBLE_PATIENT"),
        )
    )
    assert "INVISIBLE_PATIENT" in label_codes(hidden)
    assert "INVISIBLE_PATIENT" in label_codes(_plain(client.get("DocumentReference", target)))
    deleted = world.seeded[4]
    gone = _plain(
        patcher.execute(
            f"DocumentReference/{deleted}",
            method="patch",
            data=json_patch_status("entered-in-error"),
        )
    )
    assert gone["status"] == "entered-in-error"
    left = [d.id for d in client.resources("DocumentReference").search(patient=world.pid)]
    assert deleted not in left and target in left


def test_conditional_patch_archives(
    world: World, client: SyncFHIRClient, patcher: SyncFHIRClient
) -> None:
    target = world.seeded[1]
    current = _plain(client.get("DocumentReference", target))
    archived = _plain(
        patcher.execute(
            "DocumentReference",
            method="patch",
            data=json_patch_archive(current),
            params={"identifier": f"{RFC3986}|{world.seeded_unique_ids[1]}"},
        )
    )
    assert archived["id"] == target and is_archived(archived)
    shown = [d.id for d in client.resources("DocumentReference").search(patient=world.pid)]
    assert target not in shown
    only = client.resources("DocumentReference").search(patient=world.pid, isArchived="true")
    assert [d.id for d in only] == [target]


def test_every_response_validates(world: World, client: SyncFHIRClient) -> None:
    assert not world.recorder.server_errors(), world.recorder.server_errors()
    assert assert_all_valid(world.recorder.fhir_bodies()) >= 10
