"""``carnet audit verify`` on several cores (PostgreSQL): the chains split into ranges of
``record_id``, each range read by its own ``COPY`` and checked by its own process.

Checking is Python-bound (a SHA-256 and a few byte operations per event, about 2.5 µs), so one
process keeps one core busy while PostgreSQL, sending the rows, leaves the other half idle. The
split points are taken from ``audit_heads`` (one row per chain, read through its primary key):
every chain lies whole in one range, and the ranges together cover every ``record_id``, so an
event whose chain has lost its head is still read. This process checks the first range and
``jobs - 1`` spawned processes the others; their reports are put together in range order, which
is (record_id, seq) order, as one process would have given them.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import queue as queues
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from carnet.domain.audit_verify import VerifyReport
from carnet.domain.errors import ConfigurationError

Range = tuple[str | None, str | None]
PROGRESS_EVERY = 20_000  # events a child counts before it tells the parent
MIN_EVENTS_PER_JOB = 250_000  # below this, starting a process costs more than it saves


def jobs_for(events: int | None, cores: int, requested: int | None) -> int:
    """How many processes check ``events`` events: ``requested`` if given, else one per core
    (at most 4) when there are enough events to pay for starting them."""
    if requested is not None:
        return max(1, requested)
    if not events:
        return 1
    return max(1, min(cores, 4, events // MIN_EVENTS_PER_JOB))


def literal(value: str) -> str:
    """A string as an SQL literal (standard_conforming_strings, PostgreSQL's default)."""
    if "\x00" in value:
        raise ValueError("a record id with a NUL byte")
    return "'" + value.replace("'", "''") + "'"


def range_query(base: str, bounds: Range) -> str:
    """``base`` (``… FROM audit_events ORDER BY …``) narrowed to ``lo <= record_id < hi``."""
    lo, hi = bounds
    conds = []
    if lo is not None:
        conds.append(f"record_id >= {literal(lo)}")
    if hi is not None:
        conds.append(f"record_id < {literal(hi)}")
    if not conds:
        return base
    head, tail = base.split(" FROM audit_events ORDER BY ", 1)
    return f"{head} FROM audit_events WHERE {' AND '.join(conds)} ORDER BY {tail}"


async def split_points(engine: AsyncEngine, jobs: int) -> list[str]:
    """Up to ``jobs - 1`` record ids cutting the chains into ranges of about as many chains."""
    if jobs < 2:
        return []
    async with engine.connect() as conn:
        chains = (await conn.exec_driver_sql("SELECT count(*) FROM audit_heads")).scalar_one()
        points: list[str] = []
        for k in range(1, jobs):
            row = (
                await conn.exec_driver_sql(
                    "SELECT record_id FROM audit_heads ORDER BY record_id OFFSET $1 LIMIT 1",
                    (int(chains) * k // jobs,),
                )
            ).first()
            if row is not None and row[0] and (not points or row[0] > points[-1]):
                points.append(str(row[0]))
    return points


def ranges_of(points: list[str]) -> list[Range]:
    return list(zip([None, *points], [*points, None], strict=True))


def asyncpg_dsn(engine: AsyncEngine) -> str:
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


def merge(reports: list[VerifyReport]) -> VerifyReport:
    """Reports of consecutive ranges, in range order, as one."""
    out = VerifyReport()
    for r in reports:
        out.chains += r.chains
        out.events += r.events
        out.problems.extend(r.problems)
        out.broken_chains |= r.broken_chains
    return out


def _child(dsn: str, query: str, index: int, out: Any) -> None:
    """A spawned process: check one range, tell the parent as it goes and at the end."""
    from carnet.store.audit_scan import verify_copy  # the parent's module, imported fresh

    pending = 0

    def progress(n: int) -> None:
        nonlocal pending
        pending += n
        if pending >= PROGRESS_EVERY:
            out.put(("progress", index, pending))
            pending = 0

    async def run() -> VerifyReport:
        import asyncpg

        conn = await asyncpg.connect(dsn)
        try:
            return await verify_copy(conn, query, progress=progress)
        finally:
            await conn.close()

    try:
        report = asyncio.run(run())
    except BaseException as exc:  # told to the parent, which says it to the operator
        out.put(("error", index, f"{type(exc).__name__}: {exc}"))
        return
    if pending:
        out.put(("progress", index, pending))
    out.put(("done", index, report))


async def verify_split(
    engine: AsyncEngine,
    base_query: str,
    jobs: int,
    own: Callable[[str, Callable[[int], None]], Any],
    progress: Callable[[int], None] | None,
) -> VerifyReport | None:
    """Check the chains with ``jobs`` processes; None when they cannot be split (too few
    chains). ``own(query, progress)`` checks a range in this process."""
    points = await split_points(engine, jobs)
    if not points:
        return None
    ranges = ranges_of(points)
    context = multiprocessing.get_context("spawn")
    inbox: Any = context.Queue()
    dsn = asyncpg_dsn(engine)
    children = [
        context.Process(
            target=_child, args=(dsn, range_query(base_query, r), i, inbox), daemon=True
        )
        for i, r in enumerate(ranges[1:], start=1)
    ]
    reports: dict[int, VerifyReport] = {}

    def handle(message: tuple[str, int, Any]) -> None:
        kind, index, value = message
        if kind == "progress":
            if progress is not None:
                progress(value)
        elif kind == "done":
            reports[index] = value
        else:
            raise ConfigurationError(f"cannot read the database: {value}")

    def drain() -> None:
        while True:
            try:
                message = inbox.get_nowait()
            except queues.Empty:
                return
            handle(message)

    def step(n: int) -> None:
        if progress is not None:
            progress(n)
        drain()

    for child in children:
        child.start()
    try:
        reports[0] = await own(range_query(base_query, ranges[0]), step)
        while len(reports) < len(ranges):
            try:
                handle(await asyncio.to_thread(inbox.get, True, 0.5))
            except queues.Empty:
                dead = [c for c in children if not c.is_alive() and c.exitcode != 0]
                if dead:
                    drain()
                    if len(reports) < len(ranges):
                        raise ConfigurationError(
                            f"a verifying process stopped (exit code {dead[0].exitcode})"
                        ) from None
    finally:
        for child in children:
            if child.is_alive():
                child.terminate()
            child.join(timeout=5)
        inbox.close()
    return merge([reports[i] for i in range(len(ranges))])
