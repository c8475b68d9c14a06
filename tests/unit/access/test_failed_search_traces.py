"""A search that fails after it named a record keeps its decision traced (docs/traces.md, "An
operation that fails after a decision keeps it traced"); one rejected before it named any record
(a bad parameter) took no decision and leaves no trace. Issue 7, "a search that fails with an
error". On both backends.

The failure is injected right after the search decided on the records it names (what a
client's mistake found late, or the store failing, looks like to the core).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from carnet.access.core import Core
from carnet.access.documents.search import Searcher
from carnet.access.traces.service import TraceService
from carnet.domain.actors import RPPS_SYSTEM, Actor, ActorKind
from carnet.domain.consents import ConsentActorKind, ConsentDecision, ConsentInput
from carnet.domain.errors import Invalid, Reason
from carnet.domain.records import PatientRef
from carnet.domain.search import DocumentCriteria, ListCriteria
from carnet.domain.traces import AuditCriteria
from carnet.fhir.patient_resource import patient_input
from carnet.store.tables import audit_events
from tests.factories import TEST_OID, patient_resource, random_nir, random_rpps

LATE = "a client's mistake found after the records were decided"


def _late(real: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def failing(*args: Any, **kw: Any) -> Any:
        await real(*args, **kw)
        raise Invalid(LATE, field="patient", reason=Reason.MALFORMED)

    return failing


def _inject(monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_fast_path(*_a: Any, **_k: Any) -> None:
        return None  # PostgreSQL's one-patient path: take the general one, where it fails

    monkeypatch.setattr(Searcher, "_one_patient_pg", no_fast_path)
    monkeypatch.setattr(Searcher, "_decide_records", _late(Searcher._decide_records))

    real_scope = TraceService._scope

    def failing_scope(self: TraceService, *a: Any, **k: Any) -> Any:
        real_scope(self, *a, **k)
        raise Invalid(LATE, field="patient", reason=Reason.MALFORMED)

    monkeypatch.setattr(TraceService, "_scope", failing_scope)


async def _world(core: Core) -> tuple[str, Actor, Actor]:
    ins = random_nir()
    rpps = random_rpps()
    opener = Actor(ActorKind.PROFESSIONAL, f"sub-{rpps}", "test", rpps=rpps, profession="10")
    patient = Actor(ActorKind.PATIENT, f"sub-{ins}", "test", ins=ins, ins_oid=TEST_OID)
    record = await core.scope(opener).records.open(
        patient_input(patient_resource(ins), allow_test_ins=True)
    )
    await core.scope(patient).consents.create(
        ConsentInput(
            PatientRef(record_id=record.record_id),
            ConsentDecision.DENY,
            actor_kind=ConsentActorKind.PROFESSIONAL,
            actor_system=RPPS_SYSTEM,
            actor_value=opener.rpps,
        )
    )
    return record.record_id, patient, opener  # the opener is now blocked


async def _traces(engine: AsyncEngine, actor: Actor) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(audit_events).where(audit_events.c.actor_id == actor.id))
        return [dict(r._mapping) for r in rows]


SEARCHES: dict[str, tuple[str, Callable[[Any, list[str]], Awaitable[Any]]]] = {
    "DocumentReference": (
        "document.search",
        lambda s, rids: s.documents.search(DocumentCriteria(record_ids=[rids])),
    ),
    "List": ("list.search", lambda s, rids: s.documents.lists(ListCriteria(record_ids=[rids]))),
    "AuditEvent": (
        "audit.read",
        lambda s, rids: s.traces.search(AuditCriteria(record_ids=[rids])),
    ),
}


@pytest.mark.parametrize("kind", sorted(SEARCHES))
async def test_a_search_failing_after_naming_a_record_keeps_its_decision(
    core: Core, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    rid, patient, blocked = await _world(core)
    action, search = SEARCHES[kind]
    before = {a.id: len(await _traces(engine, a)) for a in (patient, blocked)}
    _inject(monkeypatch)
    # a blocked professional still reads their own traces
    refused = "allow" if kind == "AuditEvent" else "deny"
    for actor, outcome in ((blocked, refused), (patient, "allow")):
        with pytest.raises(Invalid):
            await search(core.scope(actor), [rid])
        new = (await _traces(engine, actor))[before[actor.id] :]
        assert [(t["record_id"], t["action"], t["outcome"]) for t in new] == [
            (rid, action, outcome)
        ], new
        if outcome == "allow":  # an allowed decision says the operation then failed
            assert new[0]["detail"] == "failed: malformed", new[0]


@pytest.mark.parametrize("kind", sorted(SEARCHES))
async def test_a_search_naming_too_many_patients_decides_nothing(
    core: Core, engine: AsyncEngine, kind: str
) -> None:
    """Too many patients at once is a bad parameter: refused before any record is looked up
    (whether the records exist or not), no decision, no trace."""
    rid, patient, _blocked = await _world(core)
    action, search = SEARCHES[kind]
    many = [rid] + [f"{rid[:-4]}{n:04d}" for n in range(100)]
    with pytest.raises(Invalid) as raised:
        await search(core.scope(patient), many)
    assert raised.value.reason is Reason.LIMIT
    assert [t for t in await _traces(engine, patient) if t["action"] == action] == []
