"""Who reads which traces (dmp.md §5) through the scoped service: the patient all of their
record, the médecin traitant all, another professional their own; a denial traced in a failed
transaction is kept; reading traces is traced."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from carnet.access.policy import Action, RecordFacts, RecordState, decide
from carnet.access.scoped import Scope
from carnet.domain.actors import AccessMode, Actor, ActorKind
from carnet.domain.audit_verify import verify_chains
from carnet.domain.traces import AuditCriteria
from carnet.errors import NotFound
from carnet.services import Services
from carnet.store.tables import records
from tests.factories import patient_resource, random_nir

BASE = "http://carnet.test/fhir"


def pro(rpps: str) -> Actor:
    return Actor(ActorKind.PROFESSIONAL, f"sub-{rpps}", "test", rpps=rpps, profession="10")


def patient(ins: str) -> Actor:
    return Actor(ActorKind.PATIENT, f"sub-{ins}", "test", ins=ins, ins_oid="1.2.250.1.213.1.4.10")


async def traces(services: Services, actor: Actor, **criteria: object) -> list[tuple[str, str]]:
    page = await Scope(services, actor, BASE).search_audit(AuditCriteria(count=200, **criteria))  # type: ignore[arg-type]
    return [(e.actor_id, e.action) for e in page.items]


async def story(services: Services) -> tuple[str, str, Actor, Actor]:
    """A record opened by ``opener``; ``stranger`` refused a read of it."""
    ins = random_nir()
    opener, stranger = pro("81000000001"), pro("81000000002")
    record = await Scope(services, opener, BASE).create_record(patient_resource(ins))
    await Scope(services, opener, BASE).read_record(record.record_id)
    with pytest.raises(NotFound):
        await Scope(services, stranger, BASE).read_record(record.record_id)
    return ins, record.record_id, opener, stranger


async def test_a_denial_in_a_failed_transaction_is_kept(services: Services) -> None:
    ins, rid, _opener, stranger = await story(services)
    seen = await traces(services, patient(ins), record_ids=[[rid]])
    assert (stranger.id, "record.read") in seen
    assert await verify_chains(services.engine) == []


async def test_the_patient_reads_all_a_professional_their_own(services: Services) -> None:
    ins, rid, opener, stranger = await story(services)
    everything = await traces(services, patient(ins), record_ids=[[rid]])
    assert {a for a, _ in everything} >= {opener.id, stranger.id}
    assert {a for a, _ in await traces(services, opener, record_ids=[[rid]])} == {opener.id}
    assert {a for a, _ in await traces(services, stranger, record_ids=[[rid]])} == {stranger.id}
    assert await traces(services, patient(random_nir()), record_ids=[[rid]]) == []


async def test_the_treating_physician_reads_every_trace(services: Services) -> None:
    _ins, rid, opener, stranger = await story(services)
    assert {a for a, _ in await traces(services, stranger, record_ids=[[rid]])} == {stranger.id}
    async with services.engine.begin() as conn:
        await conn.execute(
            update(records).where(records.c.record_id == rid).values(treating_physician=stranger.id)
        )
    seen = await traces(services, stranger, record_ids=[[rid]])
    assert {a for a, _ in seen} >= {opener.id, stranger.id}
    assert (opener.id, "record.create") in seen


def test_the_policy_hook_for_the_treating_physician() -> None:
    facts = RecordFacts(record_id="r", state=RecordState.ACTIVE, ins="x")
    someone = pro("81000000003")
    assert decide(someone, Action.AUDIT_READ, facts).rule == "own-traces"
    treating = RecordFacts(
        record_id="r", state=RecordState.ACTIVE, ins="x", is_treating_physician=True
    )
    assert decide(someone, Action.AUDIT_READ, treating).rule != "own-traces"
    assert decide(someone, Action.AUDIT_READ, treating).allowed
    assert decide(someone, Action.AUDIT_READ, None).rule == "own-traces"  # traces of no record
    system = Actor(ActorKind.SYSTEM, "s", "test")
    assert not decide(system, Action.AUDIT_READ, None)


async def test_reading_traces_is_traced_on_the_record(services: Services) -> None:
    ins, rid, _opener, _stranger = await story(services)
    me = patient(ins)
    await traces(services, me, record_ids=[[rid]])
    assert (me.id, "audit.read") in await traces(services, me, record_ids=[[rid]])


async def test_a_professional_without_patient_gets_their_own_everywhere(services: Services) -> None:
    _ins, _rid, opener, _stranger = await story(services)
    ins2 = random_nir()
    await Scope(services, opener, BASE).create_record(patient_resource(ins2))
    mine = await traces(services, opener)
    assert {a for a, _ in mine} == {opener.id}
    assert sum(action == "record.create" for _, action in mine) == 2


async def test_emergency_mode_is_traced(services: Services) -> None:
    ins, rid, _opener, _stranger = await story(services)
    urgentist = Actor(
        ActorKind.PROFESSIONAL,
        "sub-u",
        "test",
        rpps="81000000009",
        profession="10",
        mode=AccessMode.BRIS_DE_GLACE,
        reason="inconscient",
    )
    await Scope(services, urgentist, BASE).read_record(rid)
    page = await Scope(services, patient(ins), BASE).search_audit(
        AuditCriteria(record_ids=[[rid]], count=200)
    )
    ev = next(e for e in page.items if e.actor_id == urgentist.id)
    assert (ev.mode, ev.reason, ev.outcome) == ("bris_de_glace", "inconscient", "allow")
