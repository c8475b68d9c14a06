"""``carnet audit verify``'s fast path (carnet/store/audit_scan.py): the canonical bytes it builds
from the columns are the write path's, byte for byte, whatever the text (quotes, backslashes,
control characters, non-ASCII, nulls, a whole second); and it finds what the reference path
(SQLAlchemy rows, :class:`StoredEvent`) finds, tampering of every kind — on SQLite, and on
PostgreSQL when CARNET_TEST_DATABASE_URL is set."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from carnet.domain.audit_verify import ChainWalker, RawEvent
from carnet.domain.traces import canonical, trace_event
from carnet.store import audit_scan
from carnet.store.audit_scan import verify_all, verify_rows
from carnet.store.trace_chain import append_events
from tests.unit.test_traces_chain import PRO, append, chain, tamper

TRICKY = [
    'a "quoted" detail',
    "back\\slash \\N and \\\\",
    "tab\there, newline\nthere, return\r",
    "control \x01\x1f and DEL \x7f",
    "accents é, CJK 漢字, emoji 🩺, U+2028 \u2028",
    "",
    None,
]


async def _fill(engine: AsyncEngine) -> None:
    events = [
        trace_event(PRO, "document.read", "rec-a", allowed=True, detail=d, doc_id=d) for d in TRICKY
    ]
    events += [
        trace_event(PRO, "record.read", 'rec-"b"\\', allowed=False, rule="r\tx"),
        trace_event(PRO, "record.read", None, allowed=True, now=datetime(2026, 1, 2, 3, 4, 5)),
        trace_event(PRO, "record.read", "rec-c", allowed=True),
    ]
    async with engine.begin() as conn:
        await append_events(conn, events)


async def _fast_events(engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> list[RawEvent]:
    seen: list[RawEvent] = []
    feed = ChainWalker.feed_raw

    def spy(self: ChainWalker, events: Any) -> None:
        batch = list(events)
        seen.extend(batch)
        feed(self, batch)

    monkeypatch.setattr(ChainWalker, "feed_raw", spy)
    report = await verify_all(engine)
    assert report.ok, report.problems
    return seen


async def test_the_fast_canonical_bytes_are_the_write_paths(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _fill(engine)
    seen = await _fast_events(engine, monkeypatch)
    assert len(seen) == len(TRICKY) + 3
    for record_id in ("rec-a", 'rec-"b"\\', "", "rec-c"):
        stored = await chain(engine, record_id)
        fast = [e for e in seen if audit_scan_text(e[0]) == record_id]
        assert [int(e[1]) for e in fast] == [r["seq"] for r in stored]
        for raw, row in zip(fast, stored, strict=True):
            assert raw[4] == row["prev_hash"].encode() + canonical(row)  # byte for byte
            assert raw[2] == row["prev_hash"].encode() and raw[3] == row["hash"].encode()


def audit_scan_text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def test_the_fast_path_is_the_one_taken(engine: AsyncEngine) -> None:
    """PostgreSQL and a SQLite file read through the fast path (the walker's raw feed)."""
    await append(engine, [("rec-a", "a"), ("rec-a", "b")])
    walker_feed = ChainWalker.feed
    calls: list[str] = []

    def spy(self: ChainWalker, events: Any) -> None:
        calls.append("slow")
        walker_feed(self, events)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ChainWalker, "feed", spy)
        report = await verify_all(engine)
    assert report.events == 2 and not calls


TAMPERING = {
    "edit": ["UPDATE audit_events SET outcome = 'deny' WHERE record_id = 'rec-a' AND seq = 2"],
    "edit a hash": [
        "UPDATE audit_events SET hash = 'x' WHERE record_id = 'rec-a' AND seq = 3",
    ],
    "delete middle": ["DELETE FROM audit_events WHERE record_id = 'rec-a' AND seq = 3"],
    "delete first": ["DELETE FROM audit_events WHERE record_id = 'rec-b' AND seq = 1"],
    "insert (duplicate seq)": [
        "INSERT INTO audit_events (record_id, event_id, recorded_at, actor_kind, actor_id, "
        "action, outcome, seq, prev_hash, hash) SELECT record_id, 'ff' || substr(event_id, 3), "
        "recorded_at, actor_kind, actor_id, action, outcome, seq, prev_hash, hash "
        "FROM audit_events WHERE record_id = 'rec-a' AND seq = 2",
    ],
    "reorder": [
        "UPDATE audit_events SET seq = 100 WHERE record_id = 'rec-a' AND seq = 2",
        "UPDATE audit_events SET seq = 2 WHERE record_id = 'rec-a' AND seq = 3",
        "UPDATE audit_events SET seq = 3 WHERE record_id = 'rec-a' AND seq = 100",
    ],
    "edit a quoted detail": [
        "UPDATE audit_events SET detail = 'x\"y' WHERE record_id = 'rec-b' AND seq = 2",
    ],
}


@pytest.mark.parametrize("case", sorted(TAMPERING))
async def test_tampering_is_found_by_the_fast_path_as_by_the_reference(
    engine: AsyncEngine, case: str
) -> None:
    await append(
        engine,
        [("rec-a", "a"), ("rec-a", "b"), ("rec-a", "c"), ("rec-a", "d")],
        [("rec-b", "e"), ("rec-b", "f"), ("rec-c", "g")],
    )
    if case.startswith("insert") and engine.dialect.name == "sqlite":
        pytest.skip("SQLite's unique constraint cannot be dropped in place")
    await tamper(engine, *TAMPERING[case])
    fast = await verify_all(engine)
    reference = await verify_rows(engine)
    assert fast.problems, case
    assert fast.problems == reference.problems
    assert (fast.chains, fast.events, fast.broken_chains) == (
        reference.chains,
        reference.events,
        reference.broken_chains,
    )


async def test_a_chain_across_batches(engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    """The walker keeps its place from one batch to the next (SQLite: batches of 2 rows)."""
    await append(engine, [("rec-a", x) for x in "abcde"], [("rec-b", x) for x in "fgh"])
    await tamper(engine, "DELETE FROM audit_events WHERE record_id = 'rec-a' AND seq = 4")
    monkeypatch.setattr(audit_scan, "SQLITE_BATCH", 2)
    fast = await verify_all(engine)
    assert (fast.chains, fast.events) == (2, 7)
    assert fast.problems == (await verify_rows(engine)).problems
