"""Reading every trace chain for ``carnet audit verify`` (docs/traces.md): the events streamed in
(record_id, seq) order, so that memory stays flat whatever the size of the table, each batch
checked by the pure walker of carnet/domain/audit_verify.py."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from carnet.domain.audit_verify import ChainProblem, ChainWalker, VerifyReport
from carnet.domain.errors import ConfigurationError
from carnet.store.tables import audit_events
from carnet.store.trace_chain import event_from_row

BATCH = 2000


async def count_events(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(
            (await conn.execute(select(func.count()).select_from(audit_events))).scalar_one()
        )


async def verify_all(
    engine: AsyncEngine, *, progress: Callable[[int], None] | None = None
) -> VerifyReport:
    """Check every chain; ``progress(n)`` is called after each batch of ``n`` events."""
    walker = ChainWalker()
    stmt = (
        select(audit_events)
        .order_by(audit_events.c.record_id, audit_events.c.seq)
        .execution_options(yield_per=BATCH)
    )
    async with engine.connect() as conn:
        result = await conn.stream(stmt)
        async for partition in result.partitions(BATCH):
            walker.feed(event_from_row(row) for row in partition)
            if progress is not None:
                progress(len(partition))
    return walker.report


async def verify_chains(engine: AsyncEngine) -> list[ChainProblem]:
    """Every problem of every chain, in (record_id, seq) order; empty when all is intact."""
    return (await verify_all(engine)).problems


async def verify_store(
    engine: AsyncEngine, progress: Callable[[int, int], None] | None = None
) -> VerifyReport:
    """``carnet audit verify``: ``progress(done, total)`` as it goes; a store that cannot be read
    is a :class:`ConfigurationError` saying why."""
    try:
        total = await count_events(engine)
        done = 0

        def step(n: int) -> None:
            nonlocal done
            done += n
            if progress is not None:
                progress(done, total)

        return await verify_all(engine, progress=step)
    except SQLAlchemyError as exc:
        raise ConfigurationError(_explain(exc)) from None


def _explain(exc: SQLAlchemyError) -> str:
    text = str(exc.orig if isinstance(exc, DBAPIError) else exc).strip().splitlines()[0]
    low = text.lower()
    missing = ("no such table", "no such column", 'relation "audit_events" does not exist')
    if any(m in low for m in missing) or ("column" in low and "does not exist" in low):
        return f"the database has no hash-chained traces ({text}); run `carnet migrate` first"
    return f"cannot read the database: {text}"
