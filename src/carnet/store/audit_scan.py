"""Reading every trace chain for ``carnet audit verify`` (docs/traces.md): the events streamed in
(record_id, seq) order, so that memory stays flat whatever the size of the table, each batch
checked by the pure walker of carnet/domain/audit_verify.py.

The fast path reads only the hashed columns and the chain's, and gives the walker each event's
canonical form as bytes (:data:`carnet.domain.audit_verify.RawEvent`), built here with a few
bytes operations instead of an object per event:

- PostgreSQL: ``COPY (SELECT … ORDER BY record_id, seq) TO STDOUT`` on the engine's asyncpg
  connection, the text format cut into lines in bulk; ``recorded_at`` formatted by the server
  as the canonical form wants it. A line whose text needs escaping in JSON (a quote, a
  backslash, a control character: rare in traces) takes the slow path, through
  :func:`carnet.domain.traces.canonical`;
- SQLite (a file): the sqlite3 module directly, in a thread, the canonical form by orjson;
- otherwise (an in-memory SQLite database…): SQLAlchemy rows and :class:`StoredEvent`.

tests/unit/test_audit_verify_fast.py checks that these bytes are the write path's.
"""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from carnet.domain.audit_verify import ChainProblem, ChainWalker, RawEvent, VerifyReport
from carnet.domain.errors import ConfigurationError
from carnet.domain.traces import FORMAT, HASHED_FIELDS, canonical
from carnet.store.audit_split import jobs_for, verify_split
from carnet.store.tables import audit_events
from carnet.store.trace_chain import event_from_row

BATCH = 2000
SQLITE_BATCH = 20_000

Progress = Callable[[int], None]

# prev_hash, hash, then the hashed fields in canonical order (seq, record_id, event_id, …)
assert HASHED_FIELDS[:4] == ("seq", "record_id", "event_id", "recorded_at")
PG_QUERY = (
    "SELECT prev_hash, hash, seq, record_id, event_id, "
    "to_char(recorded_at, 'YYYY-MM-DD\"T\"HH24:MI:SS.US'), "
    "actor_kind, actor_id, profession, structure, mode, reason, action, doc_id, outcome, rule, "
    "detail FROM audit_events ORDER BY record_id, seq, event_id"
)
SQLITE_SQL = (
    "SELECT CAST(prev_hash AS BLOB), CAST(hash AS BLOB), seq, record_id, event_id, "
    "replace(recorded_at, ' ', 'T'), "
    "actor_kind, actor_id, profession, structure, mode, reason, action, doc_id, outcome, rule, "
    "detail FROM audit_events ORDER BY record_id, seq, event_id"
)
_PREFIX = b"[" + orjson.dumps(FORMAT) + b","  # b'["carnet.audit/1",'
# bytes a JSON string must escape, but COPY's text format sends as they are (it escapes
# backslash, tab, newline and carriage return itself)
_CONTROL = bytes(b for b in range(32) if b not in (9, 10))


async def count_events(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(
            (await conn.execute(select(func.count()).select_from(audit_events))).scalar_one()
        )


async def estimate_events(engine: AsyncEngine) -> int | None:
    """The number of events: PostgreSQL's estimate (pg_class.reltuples, free) there, an exact
    count elsewhere; None when unknown (a table never analysed)."""
    if engine.dialect.name != "postgresql":
        return await count_events(engine)
    async with engine.connect() as conn:
        raw = await conn.exec_driver_sql(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = 'audit_events'::regclass"
        )
        value = raw.scalar_one_or_none()
    return int(value) if value is not None and value > 0 else None


async def verify_all(
    engine: AsyncEngine, *, progress: Progress | None = None, jobs: int | None = None
) -> VerifyReport:
    """Check every chain; ``progress(n)`` is called after each batch of ``n`` events; ``jobs``:
    processes on PostgreSQL (None: one per core for a large table)."""
    if engine.dialect.name == "postgresql":
        return await verify_pg(engine, progress=progress, jobs=jobs)
    path = _sqlite_file(engine)
    if path is not None:
        return await asyncio.to_thread(verify_sqlite_file, path, progress)
    return await verify_rows(engine, progress=progress)


async def verify_rows(engine: AsyncEngine, *, progress: Progress | None = None) -> VerifyReport:
    """The reference path: SQLAlchemy rows, one :class:`StoredEvent` each (any database)."""
    walker = ChainWalker()
    stmt = (
        select(audit_events)
        .order_by(audit_events.c.record_id, audit_events.c.seq, audit_events.c.event_id)
        .execution_options(yield_per=BATCH)
    )
    async with engine.connect() as conn:
        result = await conn.stream(stmt)
        async for partition in result.partitions(BATCH):
            walker.feed(event_from_row(row) for row in partition)
            if progress is not None:
                progress(len(partition))
    return walker.report


# -- PostgreSQL ----------------------------------------------------------------------------------
async def verify_pg(
    engine: AsyncEngine, *, progress: Progress | None = None, jobs: int | None = None
) -> VerifyReport:
    """Every chain; with ``jobs`` > 1 (by default: one per core when the table is large), split
    over as many processes (store/audit_split.py)."""
    estimate = await estimate_events(engine)
    n = jobs_for(estimate, os.cpu_count() or 1, jobs)
    if n > 1:

        async def own(query: str, step: Progress) -> VerifyReport:
            return await _verify_engine(engine, query, step)

        report = await verify_split(engine, PG_QUERY, n, own, progress)
        if report is not None:
            return report
    return await _verify_engine(engine, PG_QUERY, progress)


async def _verify_engine(
    engine: AsyncEngine, query: str, progress: Progress | None
) -> VerifyReport:
    async with engine.connect() as conn:
        driver: Any = (await conn.get_raw_connection()).driver_connection
        return await verify_copy(driver, query, progress=progress)


async def verify_copy(driver: Any, query: str, *, progress: Progress | None = None) -> VerifyReport:
    """The chains ``query`` (:data:`PG_QUERY`, or a range of it) returns, read by ``COPY`` on
    an asyncpg connection."""
    walker = ChainWalker()
    tail = b""
    failed: BaseException | None = None

    async def sink(data: bytes | bytearray) -> None:
        nonlocal tail, failed
        if failed is not None:  # asyncpg waits for the end of the COPY after a sink's error
            return
        chunk = tail + data if tail else bytes(data)
        end = chunk.rfind(b"\n") + 1
        tail = chunk[end:]
        if not end:
            return
        lines = chunk[:end].split(b"\n")
        lines.pop()  # after the last newline: empty
        try:
            walker.feed_raw(raw_events_pg(lines, clean=_clean(chunk, end)))
            if progress is not None:
                progress(len(lines))
        except Exception as exc:  # raised below, once the COPY is over
            failed = exc

    # the (record_id, seq) index gives the order (event_id only breaks the ties of a tampered
    # table, in the same order for every path): a table filled over time holds the chains
    # interleaved, and the planner would rather sort it all (9 M events: 29 s against 18 s)
    await driver.execute("SET enable_sort = off")
    try:
        await driver.copy_from_query(query, output=sink)
    finally:
        if not driver.is_closed():
            await driver.execute("RESET enable_sort")
    if failed is not None:
        raise failed
    if tail:
        raise ConfigurationError("cannot read the database: COPY ended in the middle of a row")
    return walker.report


def _clean(chunk: bytes, end: int) -> bool:
    """No byte in these lines needs escaping in JSON: no quote, no backslash but those of COPY's
    NULL (``\\N``), no control character but the tab and newline of COPY's text format."""
    part = chunk[:end] if end != len(chunk) else chunk
    return (
        b'"' not in part
        and part.count(b"\\") == part.count(b"\\N")
        and len(part.translate(None, _CONTROL)) == len(part)
    )


def raw_events_pg(lines: list[bytes], *, clean: bool) -> Iterator[RawEvent]:
    """COPY text lines (prev_hash, hash, seq, record_id, event_id, recorded_at, …, detail) as
    :data:`RawEvent`; ``clean``: none needs escaping in JSON (see :func:`_clean`)."""
    prefix = _PREFIX
    if not clean:
        for line in lines:
            yield _slow_pg(line)
        return
    for line in lines:
        prev, digest, seq, record_id, rest = line.split(b"\t", 4)
        hashed = b"".join(
            (prev, prefix, seq, b',"', record_id, b'","', rest.replace(b"\t", b'","'), b'"]')
        )
        if b"\\N" in rest:  # COPY's NULL: JSON's null (no other backslash in a clean line)
            hashed = hashed.replace(b'"\\N"', b"null")
        yield record_id, seq, prev, digest, hashed


_ESCAPE = re.compile(rb"\\(.)")
_UNESCAPE = {b"b": b"\b", b"f": b"\f", b"n": b"\n", b"r": b"\r", b"t": b"\t", b"v": b"\v"}


def _copy_value(field: bytes) -> str | None:
    """One field of COPY's text format (PostgreSQL escapes only these on output)."""
    if field == b"\\N":
        return None
    if b"\\" in field:
        field = _ESCAPE.sub(lambda m: _UNESCAPE.get(m.group(1), m.group(1)), field)
    return field.decode("utf-8")


def _slow_pg(line: bytes) -> RawEvent:
    fields = line.split(b"\t")
    values = [_copy_value(f) for f in fields]
    event: dict[str, Any] = dict(zip(HASHED_FIELDS, values[2:], strict=False))
    event["seq"] = int(fields[2])
    return (
        (values[3] or "").encode("utf-8"),
        fields[2],
        (values[0] or "").encode("utf-8"),
        (values[1] or "").encode("utf-8"),
        (values[0] or "").encode("utf-8") + canonical(event),
    )


# -- SQLite ---------------------------------------------------------------------------------------
def _sqlite_file(engine: AsyncEngine) -> Path | None:
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:"):
        return None
    path = Path(database)
    return path if path.exists() else None


def verify_sqlite_file(path: Path, progress: Progress | None = None) -> VerifyReport:
    walker = ChainWalker()
    db = sqlite3.connect(path)
    try:
        cursor = db.execute(SQLITE_SQL)
        while rows := cursor.fetchmany(SQLITE_BATCH):
            walker.feed_raw(raw_events_sqlite(rows))
            if progress is not None:
                progress(len(rows))
    except sqlite3.Error as exc:
        raise ConfigurationError(_explain_text(str(exc))) from None
    finally:
        db.close()
    return walker.report


def raw_events_sqlite(rows: list[tuple[Any, ...]]) -> Iterator[RawEvent]:
    dumps = orjson.dumps
    fmt = (FORMAT,)
    for row in rows:
        yield row[3], row[2], row[0], row[1], row[0] + dumps(fmt + row[2:])


# -- the command ---------------------------------------------------------------------------------
async def verify_chains(engine: AsyncEngine) -> list[ChainProblem]:
    """Every problem of every chain, in (record_id, seq) order; empty when all is intact."""
    return (await verify_all(engine)).problems


async def verify_store(
    engine: AsyncEngine,
    progress: Callable[[int, int], None] | None = None,
    jobs: int | None = None,
) -> VerifyReport:
    """``carnet audit verify``: ``progress(done, total)`` as it goes (``total`` an estimate on
    PostgreSQL until the end); a store that cannot be read is a :class:`ConfigurationError`
    saying why."""
    try:
        total = await estimate_events(engine) if progress is not None else 0
        done = 0

        def step(n: int) -> None:
            nonlocal done
            done += n
            if progress is not None:
                progress(done, max(total or 0, done))

        report = await verify_all(engine, progress=step, jobs=jobs)
        if progress is not None:
            progress(report.events, report.events)
        return report
    except SQLAlchemyError as exc:
        raise ConfigurationError(_explain(exc)) from None
    except Exception as exc:  # asyncpg's own errors, through the raw connection
        if type(exc).__module__.startswith("asyncpg"):
            raise ConfigurationError(_explain_text(str(exc))) from None
        raise


def _explain(exc: SQLAlchemyError) -> str:
    return _explain_text(str(exc.orig if isinstance(exc, DBAPIError) else exc))


def _explain_text(message: str) -> str:
    text = (message.strip().splitlines() or [""])[0]
    low = text.lower()
    missing = ("no such table", "no such column", 'relation "audit_events" does not exist')
    if any(m in low for m in missing) or ("column" in low and "does not exist" in low):
        return f"the database has no hash-chained traces ({text}); run `carnet migrate` first"
    return f"cannot read the database: {text}"
