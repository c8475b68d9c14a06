"""Traces are hash-chained per record (docs/traces.md): building the chain, verifying it, finding
edited, removed and inserted events, and no fork when many transactions append at once — on
SQLite, and on PostgreSQL when CARNET_TEST_DATABASE_URL is set."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from typing import Any

import orjson
import pytest
from alembic import command
from sqlalchemy import event, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from carnet.access.core import Core
from carnet.domain.actors import Actor, ActorKind
from carnet.domain.audit_verify import ProblemKind
from carnet.domain.content import InlineContent
from carnet.domain.documents import NewDocument, Submission
from carnet.domain.ins import Ins
from carnet.domain.records import PatientRef
from carnet.domain.traces import GENESIS, canonical, chain_hash, trace_event
from carnet.fhir.docref_resource import entry_from_docref
from carnet.fhir.patient_resource import patient_input
from carnet.settings import Settings
from carnet.store.audit_scan import verify_all, verify_chains
from carnet.store.db import alembic_config, create_engine
from carnet.store.tables import audit_events, audit_heads
from carnet.store.trace_chain import append_events
from tests.factories import TEST_OID, docref, patient_resource, random_nir

PRO = Actor(ActorKind.PROFESSIONAL, "sub-pro", "test", rpps="810000000001", profession="10")
PATIENT = Actor(ActorKind.PATIENT, "sub-pat", "test", ins="180017512345678")


def ev(rid: str | None, action: str, **kw: Any) -> Any:
    return trace_event(PRO, action, rid, allowed=True, **kw)


async def append(engine: AsyncEngine, *calls: list[tuple[str | None, str]]) -> None:
    """One transaction; each call is one append of (record_id, action) events."""
    async with engine.begin() as conn:
        for rows in calls:
            await append_events(conn, [ev(rid, action) for rid, action in rows])


async def chain(engine: AsyncEngine, record_id: str) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(audit_events)
            .where(audit_events.c.record_id == record_id)
            .order_by(audit_events.c.seq)
        )
        return [dict(r._mapping) for r in rows]


async def tamper(engine: AsyncEngine, *statements: str, **params: object) -> None:
    """What someone with the database owner's rights can do: drop the append-only triggers,
    then change the table."""
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("DROP TRIGGER audit_events_append_only ON audit_events"))
            await conn.execute(text("ALTER TABLE audit_events DROP CONSTRAINT uq_audit_events_seq"))
        else:
            await conn.execute(text("DROP TRIGGER audit_events_no_update"))
            await conn.execute(text("DROP TRIGGER audit_events_no_delete"))
        for sql in statements:
            await conn.execute(text(sql), params)


def assert_linear(events: list[dict[str, Any]]) -> None:
    prev = GENESIS
    for i, ev in enumerate(events, start=1):
        assert ev["seq"] == i
        assert ev["prev_hash"] == prev
        assert ev["hash"] == chain_hash(prev, ev)
        prev = ev["hash"]


# -- building ------------------------------------------------------------------------------------


async def test_each_record_has_its_own_chain(engine: AsyncEngine) -> None:
    await append(engine, [("rec-a", "document.read"), ("rec-b", "document.read")])
    await append(engine, [("rec-a", "document.create")], [("rec-a", "document.read")])
    await append(engine, [(None, "record.create")])
    a, b, none = await chain(engine, "rec-a"), await chain(engine, "rec-b"), await chain(engine, "")
    assert [e["action"] for e in a] == ["document.read", "document.create", "document.read"]
    assert len(b) == 1 and len(none) == 1
    for events in (a, b, none):
        assert_linear(events)
    assert a[0]["prev_hash"] == "0" * 64
    assert await verify_chains(engine) == []
    report = await verify_all(engine)
    assert (report.chains, report.events) == (3, 5)


async def test_rows_of_one_call_chain_onto_each_other(engine: AsyncEngine) -> None:
    await append(engine, [("rec-a", "x.one"), ("rec-a", "x.two"), ("rec-a", "x.three")])
    events = await chain(engine, "rec-a")
    assert [e["action"] for e in events] == ["x.one", "x.two", "x.three"]
    assert_linear(events)


async def test_the_head_is_kept_in_one_row_per_chain(engine: AsyncEngine) -> None:
    """Appending compares and sets the chain's head (audit_heads): it never reads the chain's
    events, and the head always names its last event."""
    reads: list[str] = []

    def count(_conn: Connection, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "audit_events" in statement:
            reads.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        await append(engine, [("rec-a", "a")], [("rec-a", "b")], [("rec-a", "c"), ("rec-b", "d")])
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)
    assert reads == []
    events = await chain(engine, "rec-a")
    assert_linear(events)
    async with engine.connect() as conn:
        head = (
            await conn.execute(
                select(audit_heads.c.seq, audit_heads.c.hash).where(
                    audit_heads.c.record_id == "rec-a"
                )
            )
        ).one()
    assert (head[0], head[1]) == (3, events[-1]["hash"])


async def test_a_rolled_back_transaction_leaves_no_trace_and_no_hole(engine: AsyncEngine) -> None:
    await append(engine, [("rec-a", "a")])
    with pytest.raises(RuntimeError):
        async with engine.begin() as conn:
            await append_events(conn, [ev("rec-a", "b")])
            raise RuntimeError("the action failed")
    await append(engine, [("rec-a", "c")])
    events = await chain(engine, "rec-a")
    assert [e["action"] for e in events] == ["a", "c"]
    assert_linear(events)


def test_canonical_form_is_stable() -> None:
    row = trace_event(PRO, "document.read", "rec", allowed=False, detail="é").fields()
    row["seq"] = 1
    form = orjson.loads(canonical(row))
    assert form[0] == "carnet.audit/1"
    assert form[1:3] == [1, "rec"]
    assert form[4] == row["recorded_at"].isoformat(timespec="microseconds")  # type: ignore[attr-defined]
    assert form[-1] == "é"
    expected = hashlib.sha256(GENESIS.encode() + canonical(row)).hexdigest()
    assert chain_hash(GENESIS, row) == expected


async def test_the_table_is_append_only(engine: AsyncEngine) -> None:
    await append(engine, [("rec-a", "a")])
    for sql in (
        "UPDATE audit_events SET detail = 'forged'",
        "DELETE FROM audit_events",
    ):
        with pytest.raises(Exception, match="append-only"):
            async with engine.begin() as conn:
                await conn.execute(text(sql))
    assert len(await chain(engine, "rec-a")) == 1


# -- verifying -----------------------------------------------------------------------------------


async def test_an_edited_event_is_found(engine: AsyncEngine) -> None:
    await append(engine, [("rec-a", "a"), ("rec-a", "b"), ("rec-a", "c")], [("rec-b", "d")])
    victim = (await chain(engine, "rec-a"))[1]
    await tamper(
        engine,
        "UPDATE audit_events SET outcome = 'deny' WHERE record_id = 'rec-a' AND seq = 2",
    )
    problems = await verify_chains(engine)
    assert [(p.record_id, p.seq, p.kind) for p in problems] == [("rec-a", 2, ProblemKind.HASH)]
    assert problems[0].event_id == victim["event_id"]
    assert "edited" in str(problems[0])


async def test_an_edited_and_rehashed_event_breaks_the_next_link(engine: AsyncEngine) -> None:
    await append(engine, [("rec-a", "a"), ("rec-a", "b"), ("rec-a", "c")])
    victim = (await chain(engine, "rec-a"))[1]
    forged = chain_hash(victim["prev_hash"], {**victim, "detail": "nothing to see"})
    await tamper(
        engine,
        "UPDATE audit_events SET detail = 'nothing to see', hash = :h "
        "WHERE record_id = 'rec-a' AND seq = 2",
        h=forged,
    )
    problems = await verify_chains(engine)
    assert [(p.seq, p.kind) for p in problems] == [(3, ProblemKind.LINK)]


async def test_a_removed_event_is_found(engine: AsyncEngine) -> None:
    await append(engine, [("rec-a", "a"), ("rec-a", "b"), ("rec-a", "c"), ("rec-a", "d")])
    await tamper(engine, "DELETE FROM audit_events WHERE record_id = 'rec-a' AND seq IN (2, 3)")
    problems = await verify_chains(engine)
    assert [(p.record_id, p.seq, p.kind) for p in problems] == [("rec-a", 4, ProblemKind.GAP)]
    assert "seq 2–3" in problems[0].message


async def test_a_removed_first_event_is_found(engine: AsyncEngine) -> None:
    await append(engine, [("rec-a", "a"), ("rec-a", "b")])
    await tamper(engine, "DELETE FROM audit_events WHERE record_id = 'rec-a' AND seq = 1")
    assert [(p.seq, p.kind) for p in await verify_chains(engine)] == [(2, ProblemKind.GAP)]


async def test_an_inserted_event_is_found(engine: AsyncEngine) -> None:
    """A forged event slipped in after seq 1, with a valid hash of its own, the later events
    renumbered: the renumbered events no longer hash, and the next link is broken."""
    await append(engine, [("rec-a", "a"), ("rec-a", "b"), ("rec-a", "c")])
    first = (await chain(engine, "rec-a"))[0]
    forged = {**ev("rec-a", "document.read").fields(), "seq": 2}
    forged_hash = chain_hash(first["hash"], forged)
    await tamper(
        engine,
        "UPDATE audit_events SET seq = seq + 1000 WHERE record_id = 'rec-a' AND seq >= 2",
        "UPDATE audit_events SET seq = seq - 999 WHERE record_id = 'rec-a' AND seq > 1000",
    )
    async with engine.begin() as conn:
        await conn.execute(
            audit_events.insert().values(**forged, prev_hash=first["hash"], hash=forged_hash)
        )
    problems = await verify_chains(engine)
    assert (3, ProblemKind.LINK) in [(p.seq, p.kind) for p in problems]
    assert {p.seq for p in problems} == {3, 4}
    assert all(p.record_id == "rec-a" for p in problems)


async def test_a_replaced_event_is_found(engine: AsyncEngine) -> None:
    await append(engine, [("rec-a", "a"), ("rec-a", "b"), ("rec-a", "c")])
    events = await chain(engine, "rec-a")
    forged = {**ev("rec-a", "nothing").fields(), "seq": 2}
    await tamper(engine, "DELETE FROM audit_events WHERE record_id = 'rec-a' AND seq = 2")
    async with engine.begin() as conn:
        await conn.execute(
            audit_events.insert().values(
                **forged, prev_hash=events[0]["hash"], hash=chain_hash(events[0]["hash"], forged)
            )
        )
    assert [(p.seq, p.kind) for p in await verify_chains(engine)] == [(3, ProblemKind.LINK)]


# -- concurrency ---------------------------------------------------------------------------------


def _submission(ins: str, n: int) -> Submission:
    content = f"%PDF-1.4 concurrent {n}".encode()
    resource = docref(ins, content=content, inline=True)
    resource["content"][0]["attachment"]["data"] = base64.b64encode(content).decode()
    entry = entry_from_docref(resource)
    entry.patient_system = f"urn:oid:{TEST_OID}"
    entry.patient_value = ins
    return Submission(
        patient=PatientRef(ins=Ins(TEST_OID, ins)),
        documents=[NewDocument(f"doc-{n}", entry, InlineContent(content))],
    )


async def test_concurrent_publishes_and_reads_make_one_linear_chain(
    core: Core, engine: AsyncEngine
) -> None:
    scope = core.scope(PRO)
    ins = random_nir()
    record = await scope.records.open(patient_input(patient_resource(ins), allow_test_ins=True))
    before = len(await chain(engine, record.record_id))

    async def publish(n: int) -> None:
        await core.scope(PRO).documents.publish(_submission(ins, n))

    async def read() -> None:
        await core.scope(PRO).records.read(record.record_id)

    await asyncio.gather(*(publish(n) if n % 2 else read() for n in range(20)))
    events = await chain(engine, record.record_id)
    assert_linear(events)
    assert len(events) - before >= 20
    assert sum(e["action"] == "document.create" for e in events) == 10
    assert await verify_chains(engine) == []


async def test_concurrent_transactions_on_one_chain_never_fork(engine: AsyncEngine) -> None:
    async def one(n: int) -> None:
        async with engine.begin() as conn:
            await conn.execute(select(audit_events.c.seq).limit(1))  # a read first
            await append_events(conn, [ev("rec-a", f"x.{n}")])
            await asyncio.sleep(0)
            await append_events(conn, [ev("rec-a", f"y.{n}")])

    await asyncio.gather(*(one(n) for n in range(20)))
    events = await chain(engine, "rec-a")
    assert len(events) == 40
    assert_linear(events)


# -- the migration -------------------------------------------------------------------------------


async def test_the_migration_chains_events_stored_before_it(settings: Settings) -> None:
    engine = create_engine(settings)

    def to(revision: str) -> Any:
        return lambda sync: command.upgrade(alembic_config(sync), revision)

    try:
        async with engine.begin() as conn:
            await conn.run_sync(to("0001"))
        rids = ["rec-a", "rec-b", "rec-a", None, "rec-a"]
        old = [ev(rid, f"old.{n}").fields() for n, rid in enumerate(rids)]
        async with engine.begin() as conn:
            await conn.execute(audit_events.insert(), old)  # only the columns of 0001
        async with engine.begin() as conn:
            await conn.run_sync(to("0002"))
        a = await chain(engine, "rec-a")
        in_order = sorted(
            (r for r in old if r["record_id"] == "rec-a"), key=lambda r: r["event_id"]
        )
        assert [e["action"] for e in a] == [r["action"] for r in in_order]  # event_id order
        assert_linear(a)
        report = await verify_all(engine)
        assert (report.chains, report.events, report.problems) == (3, 5, [])
        async with engine.begin() as conn:
            await conn.run_sync(to("head"))  # 0006 keeps each chain's head
        await append(engine, [("rec-a", "new")])
        assert_linear(await chain(engine, "rec-a"))
    finally:
        await engine.dispose()
