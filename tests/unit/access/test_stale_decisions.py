"""A decision never goes stale before its write (docs/architecture.md, "Where a transaction
opens"): a record closed while a publish is being decided makes the publish decide again, and
refuse (PostgreSQL: the write's check of the record's rules_version fails), or makes the close
wait until the publish is written (SQLite: the publish holds the write lock). Never a document
filed into a closed record. On both backends."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from carnet.access.core import Core
from carnet.access.documents import publish as publish_module
from carnet.domain.actors import Actor, ActorKind
from carnet.domain.content import InlineContent
from carnet.domain.documents import NewDocument, Submission
from carnet.domain.errors import Refused
from carnet.domain.ins import Ins
from carnet.domain.records import PatientRef
from carnet.fhir.docref_resource import entry_from_docref
from carnet.fhir.patient_resource import patient_input
from carnet.store.tables import documents, records
from tests.factories import TEST_OID, docref, patient_resource, random_nir, random_rpps

CLOSED = {
    "url": "https://carnet.health/fhir/StructureDefinition/dmp-record-status",
    "valueCode": "closed",
}


def _submission(ins: str, n: int, author: str) -> Submission:
    content = f"%PDF-1.4 while closing {n}".encode()
    resource = docref(ins, content=content, inline=True, author_rpps=author)
    resource["content"][0]["attachment"]["data"] = base64.b64encode(content).decode()
    entry = entry_from_docref(resource)
    entry.patient_system = f"urn:oid:{TEST_OID}"
    entry.patient_value = ins
    return Submission(
        patient=PatientRef(ins=Ins(TEST_OID, ins)),
        documents=[NewDocument(f"doc-{n}", entry, InlineContent(content))],
    )


async def _open(core: Core) -> tuple[str, str, Actor, Actor]:
    ins = random_nir()
    rpps = random_rpps()
    pro = Actor(ActorKind.PROFESSIONAL, f"sub-{rpps}", "test", rpps=rpps, profession="10")
    patient = Actor(ActorKind.PATIENT, f"sub-{ins}", "test", ins=ins, ins_oid=TEST_OID)
    record = await core.scope(pro).records.open(
        patient_input(patient_resource(ins), allow_test_ins=True)
    )
    return ins, record.record_id, pro, patient


async def _close(core: Core, patient: Actor, ins: str, rid: str) -> None:
    body = patient_resource(ins, extra_extensions=[CLOSED])
    await core.scope(patient).records.update(rid, patient_input(body, allow_test_ins=True))


async def _stored(engine: AsyncEngine, rid: str) -> tuple[Any, list[Any]]:
    async with engine.connect() as conn:
        closed_at = (
            await conn.execute(select(records.c.closed_at).where(records.c.record_id == rid))
        ).scalar_one()
        created = [
            r[0]
            for r in await conn.execute(
                select(documents.c.created_at).where(documents.c.record_id == rid)
            )
        ]
    return closed_at, created


async def test_a_record_closed_while_a_publish_is_decided(
    core: Core, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The publish reads the record's facts, then the record is closed before it writes."""
    ins, rid, pro, patient = await _open(core)
    facts_read = asyncio.Event()
    real = publish_module.Publisher._load

    async def slow_load(self: Any, unit: Any, sub: Any, hashes: Any) -> Any:
        loaded = await real(self, unit, sub, hashes)
        if not facts_read.is_set():
            facts_read.set()
            await asyncio.sleep(0.3)  # the close runs now
        return loaded

    monkeypatch.setattr(publish_module.Publisher, "_load", slow_load)

    async def publish() -> str:
        try:
            await core.scope(pro).documents.publish(_submission(ins, 0, pro.rpps or ""))
        except Refused:
            return "refused"
        return "published"

    async def close() -> None:
        await facts_read.wait()
        await _close(core, patient, ins, rid)

    outcome, _ = await asyncio.gather(publish(), close())
    closed_at, created = await _stored(engine, rid)
    assert closed_at is not None
    if engine.dialect.name == "postgresql":
        # the write's check failed: decided again on the closed record, and refused
        assert outcome == "refused"
        assert created == []
    else:
        # the publish held the write lock from its first read: the close waited for it
        assert outcome == "published"
        assert len(created) == 1
    assert all(at <= closed_at for at in created), "a document was filed into a closed record"


async def test_publishes_racing_a_close_never_land_after_it(
    core: Core, engine: AsyncEngine
) -> None:
    ins, rid, pro, patient = await _open(core)
    outcomes: list[str] = []

    async def publish(n: int) -> None:
        await asyncio.sleep(0.002 * n)
        try:
            await core.scope(pro).documents.publish(_submission(ins, n, pro.rpps or ""))
            outcomes.append("published")
        except Refused:
            outcomes.append("refused")

    async def close() -> None:
        await asyncio.sleep(0.01)
        await _close(core, patient, ins, rid)

    await asyncio.gather(close(), *(publish(n) for n in range(12)))
    closed_at, created = await _stored(engine, rid)
    assert closed_at is not None
    assert len(created) == outcomes.count("published")
    assert all(at <= closed_at for at in created), "a document was filed into a closed record"
