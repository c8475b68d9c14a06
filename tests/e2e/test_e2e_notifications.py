"""Notifications through the real server: a professional's read and a new document write their
outbox rows in the same transaction as the read or the write (docs/notifications.md)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
from sqlalchemy import select

from carnet.store.tables import outbox
from tests.conftest import Server, found_at_rest, on_database
from tests.e2e.conftest import Pro
from tests.factories import CARNET_EXT, FHIR_JSON, Factory, created_doc_ids, docref, pdf_bytes


def outbox_of(server: Server, record_id: str) -> list[dict[str, Any]]:
    async def work(conn: Any) -> list[dict[str, Any]]:
        q = select(outbox).where(outbox.c.record_id == record_id).order_by(outbox.c.event_id)
        return [dict(r._mapping) for r in await conn.execute(q)]

    out: list[dict[str, Any]] = on_database(server, work)
    return out


def publish_one(factory: Factory, pro: Pro, ins: str) -> str:
    content = pdf_bytes()
    r = factory.publish(
        ins, [(docref(ins, content=content), content, "application/pdf")], pro.headers
    )
    [doc_id] = created_doc_ids(r)
    return doc_id


def test_reads_and_new_documents_write_their_notifications(
    http: httpx.Client, factory: Factory, server: Server, pro: Pro
) -> None:
    ins, rid = factory.open_record(pro.headers)
    doc_id = publish_one(factory, pro, ins)
    assert outbox_of(server, rid) == []  # new documents: not asked for

    r = http.get(f"/fhir/DocumentReference/{doc_id}", headers=pro.headers)
    assert r.status_code == 200, r.text
    [row] = outbox_of(server, rid)
    assert (row["kind"], row["channel"], row["status"]) == ("access", "portal", "pending")
    assert row["recipient"] == f"ins:{ins}"
    payload = orjson.loads(row["payload"])
    assert payload["actor"]["id"] == f"rpps:{pro.rpps}"
    assert payload["doc_id"] == doc_id and "title" not in payload  # stored in clear: no title
    assert "Compte rendu" not in str(row)

    # the patient's own read tells nobody
    assert http.get(f"/fhir/DocumentReference/{doc_id}", headers=factory.patient(ins)).is_success
    assert len(outbox_of(server, rid)) == 1

    # the patient gives an address and asks for new documents, through Patient.telecom
    address = f"patient.{ins}@example.org"
    me = factory.patient(ins)
    mine = http.get(f"/fhir/Patient/{rid}", headers=me).json()
    mine["telecom"] = [{"system": "email", "value": address}]
    mine["extension"] = [
        *mine.get("extension", []),
        {
            "url": f"{CARNET_EXT}/dmp-notification-preferences",
            "extension": [{"url": "newDocuments", "valueBoolean": True}],
        },
    ]
    r = http.put(f"/fhir/Patient/{rid}", json=mine, headers={**me, **FHIR_JSON})
    assert r.status_code == 200, r.text
    read = http.get(f"/fhir/Patient/{rid}", headers=me).json()
    assert read["telecom"] == [{"system": "email", "value": address}]  # as given
    second = publish_one(factory, pro, ins)
    rows = [r for r in outbox_of(server, rid) if r["kind"] == "new_document"]
    assert sorted(r["channel"] for r in rows) == ["email", "portal"]
    assert all(orjson.loads(r["payload"])["doc_id"] == second for r in rows)
    # an ordinary read with an address: held for the daily digest
    assert http.get(f"/fhir/DocumentReference/{second}", headers=pro.headers).is_success
    held = [r for r in outbox_of(server, rid) if r["status"] == "held"]
    # the row names the patient, never their address (opened from the record at delivery)
    assert [(r["kind"], r["channel"], r["address"]) for r in held] == [("access", "email", None)]
    # the address is nowhere in the database in clear: it is sealed with the record's key
    assert asyncio.run(found_at_rest(server.settings, address)) == []
