"""``carnet audit verify`` split over processes (carnet/store/audit_split.py): the ranges cover
every record id, chains lie whole in one range, and the merged report is the one process's,
tampering included (PostgreSQL, when CARNET_TEST_DATABASE_URL is set; the pure parts always)."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from carnet.domain.audit_verify import ChainProblem, ProblemKind, VerifyReport
from carnet.store.audit_scan import PG_QUERY, verify_all, verify_rows
from carnet.store.audit_split import jobs_for, literal, merge, range_query, ranges_of
from tests.unit.test_audit_verify_fast import TAMPERING
from tests.unit.test_traces_chain import append, tamper


def test_jobs_one_per_core_only_for_a_large_table() -> None:
    assert jobs_for(None, 2, None) == 1
    assert jobs_for(10_000, 2, None) == 1
    assert jobs_for(2_000_000, 2, None) == 2
    assert jobs_for(50_000_000, 16, None) == 4
    assert jobs_for(10, 2, 3) == 3  # asked for: as asked
    assert jobs_for(10, 2, 0) == 1


def test_ranges_cover_every_record_id() -> None:
    assert ranges_of([]) == [(None, None)]
    assert ranges_of(["m"]) == [(None, "m"), ("m", None)]
    assert ranges_of(["f", "p"]) == [(None, "f"), ("f", "p"), ("p", None)]
    assert range_query(PG_QUERY, (None, None)) == PG_QUERY
    query = range_query(PG_QUERY, ("a'b", "c"))
    assert (
        "WHERE record_id >= 'a''b' AND record_id < 'c' ORDER BY record_id, seq, event_id" in query
    )
    with pytest.raises(ValueError):
        literal("a\x00b")


def test_merged_reports_keep_range_order() -> None:
    p1 = ChainProblem("a", 2, "e1", ProblemKind.HASH, "x")
    p2 = ChainProblem("m", 1, "e2", ProblemKind.GAP, "y")
    out = merge(
        [
            VerifyReport(chains=2, events=5, problems=[p1], broken_chains={"a"}),
            VerifyReport(chains=1, events=3, problems=[p2], broken_chains={"m"}),
        ]
    )
    assert (out.chains, out.events, out.problems, out.broken_chains) == (3, 8, [p1, p2], {"a", "m"})


def _pg_only(engine: AsyncEngine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("the split is PostgreSQL's (SQLite is read by one process)")


async def _many_chains(engine: AsyncEngine) -> None:
    await append(
        engine,
        [("rec-a", "a"), ("rec-a", "b"), ("rec-a", "c"), ("rec-a", "d")],
        [("rec-b", "e"), ("rec-b", "f"), ("rec-c", "g"), (None, "h")],
        [(f"rec-{x}", "i") for x in "defghijklmnop"],
        [("rec-p", "j"), ("rec-p", "k")],
    )


@pytest.mark.parametrize("jobs", [2, 3])
async def test_split_reads_every_event_once(engine: AsyncEngine, jobs: int) -> None:
    _pg_only(engine)
    await _many_chains(engine)
    split = await verify_all(engine, jobs=jobs)
    one = await verify_all(engine, jobs=1)
    assert split.ok and one.ok
    assert (split.chains, split.events) == (one.chains, one.events) == (17, 23)


@pytest.mark.parametrize("case", sorted(TAMPERING))
async def test_split_finds_what_one_process_finds(engine: AsyncEngine, case: str) -> None:
    _pg_only(engine)
    await _many_chains(engine)
    # the head of rec-a gone too: its events are still read, in whichever range holds them
    await tamper(engine, *TAMPERING[case], "DELETE FROM audit_heads WHERE record_id = 'rec-a'")
    progress: list[int] = []
    split = await verify_all(engine, jobs=3, progress=progress.append)
    reference = await verify_rows(engine)
    assert split.problems, case
    assert split.problems == reference.problems
    assert (split.chains, split.events, split.broken_chains) == (
        reference.chains,
        reference.events,
        reference.broken_chains,
    )
    assert sum(progress) == reference.events
