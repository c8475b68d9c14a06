"""Who reads which traces (dmp.md §5) through the scoped service: the patient all of their
record, the médecin traitant all, another professional their own; a denial traced in a failed
transaction is kept; reading traces is traced."""

from __future__ import annotations

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from carnet.access.core import Core
from carnet.access.policy import Action, RecordFacts, RecordState, decide
from carnet.domain.actors import AccessMode, Actor, ActorKind
from carnet.domain.errors import NotFound
from carnet.domain.traces import AuditCriteria
from carnet.fhir.patient_resource import patient_input
from carnet.store.audit_scan import verify_chains
from carnet.store.tables import records
from tests.factories import patient_resource, random_nir


def pro(rpps: str) -> Actor:
    return Actor(ActorKind.PROFESSIONAL, f"sub-{rpps}", "test", rpps=rpps, profession="10")


def patient(ins: str) -> Actor:
    return Actor(ActorKind.PATIENT, f"sub-{ins}", "test", ins=ins, ins_oid="1.2.250.1.213.1.4.10")


async def traces(core: Core, actor: Actor, **criteria: object) -> list[tuple[str, str]]:
    page = await core.scope(actor).traces.search(AuditCriteria(count=200, **criteria))  # type: ignore[arg-type]
    return [(e.actor_id, e.action) for e in page.items]


def opening(ins: str) -> object:
    return patient_input(patient_resource(ins), allow_test_ins=True)


async def story(core: Core) -> tuple[str, str, Actor, Actor]:
    """A record opened by ``opener``; ``stranger`` refused a read of it."""
    ins = random_nir()
    opener, stranger = pro("81000000001"), pro("81000000002")
    record = await core.scope(opener).records.open(opening(ins))  # type: ignore[arg-type]
    await core.scope(opener).records.read(record.record_id)
    with pytest.raises(NotFound):
        await core.scope(stranger).records.read(record.record_id)
    return ins, record.record_id, opener, stranger


async def test_a_denial_in_a_failed_transaction_is_kept(core: Core, engine: AsyncEngine) -> None:
    ins, rid, _opener, stranger = await story(core)
    seen = await traces(core, patient(ins), record_ids=[[rid]])
    assert (stranger.id, "record.read") in seen
    assert await verify_chains(engine) == []


async def test_the_patient_reads_all_a_professional_their_own(
    core: Core, engine: AsyncEngine
) -> None:
    ins, rid, opener, stranger = await story(core)
    everything = await traces(core, patient(ins), record_ids=[[rid]])
    assert {a for a, _ in everything} >= {opener.id, stranger.id}
    assert {a for a, _ in await traces(core, opener, record_ids=[[rid]])} == {opener.id}
    # the stranger's refusal is theirs, shown as a refusal of something missing: tied to no
    # record (so naming the record does not find it)
    assert await traces(core, stranger, record_ids=[[rid]]) == []
    page = await core.scope(stranger).traces.search(AuditCriteria(count=200))
    [refusal] = [e for e in page.items if e.action == "record.read"]
    assert (refusal.actor_id, refusal.record_id, refusal.rule) == (stranger.id, "", "refused")
    assert refusal.partial and (refusal.seq, refusal.hash) == (0, "")
    assert await traces(core, patient(random_nir()), record_ids=[[rid]]) == []


async def test_the_treating_physician_reads_every_trace(core: Core, engine: AsyncEngine) -> None:
    _ins, rid, opener, stranger = await story(core)
    assert await traces(core, stranger, record_ids=[[rid]]) == []
    async with engine.begin() as conn:
        await conn.execute(
            update(records).where(records.c.record_id == rid).values(treating_physician=stranger.id)
        )
    seen = await traces(core, stranger, record_ids=[[rid]])
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


async def test_reading_traces_is_traced_on_the_record(core: Core, engine: AsyncEngine) -> None:
    ins, rid, _opener, _stranger = await story(core)
    me = patient(ins)
    await traces(core, me, record_ids=[[rid]])
    assert (me.id, "audit.read") in await traces(core, me, record_ids=[[rid]])


async def test_a_professional_without_patient_gets_their_own_everywhere(
    core: Core, engine: AsyncEngine
) -> None:
    _ins, _rid, opener, _stranger = await story(core)
    ins2 = random_nir()
    await core.scope(opener).records.open(opening(ins2))  # type: ignore[arg-type]
    mine = await traces(core, opener)
    assert {a for a, _ in mine} == {opener.id}
    assert sum(action == "record.create" for _, action in mine) == 2


async def test_emergency_mode_is_traced(core: Core, engine: AsyncEngine) -> None:
    ins, rid, _opener, _stranger = await story(core)
    urgentist = Actor(
        ActorKind.PROFESSIONAL,
        "sub-u",
        "test",
        rpps="81000000009",
        profession="10",
        mode=AccessMode.BRIS_DE_GLACE,
        reason="inconscient",
    )
    await core.scope(urgentist).records.read(rid)
    page = await core.scope(patient(ins)).traces.search(
        AuditCriteria(record_ids=[[rid]], count=200)
    )
    ev = next(e for e in page.items if e.actor_id == urgentist.id)
    assert (ev.mode, ev.reason, ev.outcome) == ("bris_de_glace", "inconscient", "allow")
