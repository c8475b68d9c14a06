"""Appending traces to their chains, and reading them back (docs/traces.md).

Each chain's last event is in ``audit_heads`` (seq, hash). Appending is *compare and set*:
the events are chained in Python from the head the writer knows (:func:`carnet.domain.traces.
extend`), and the write moves the head only if it is still the one they were chained from. Two
writers that append to the same chain at once never fork it: the second one's compare fails and
it chains again from the new head. No lock is held between reading a head and writing.

- :func:`chain_ops`: the operations that append events inside a larger write (store/batch.py),
  the head's compare-and-set being one of the write's checks;
- :func:`append_pg`: a batch of events of many chains, from many requests, in one statement;
  the chains whose head moved meanwhile are reported and retried by the caller;
- :func:`append_sql`: the same in a transaction that holds SQLite's write lock.

The unique constraint (record_id, seq) of ``audit_events`` is the backstop.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import asyncpg
from sqlalchemy import Row, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from carnet.domain.traces import (
    GENESIS,
    STORED_FIELDS,
    ChainedEvent,
    Head,
    StoredEvent,
    TraceEvent,
    extend,
)
from carnet.store.batch import Insert, Op, Update, Write, WriteConflict, execute_sql
from carnet.store.sqlite import write_lock
from carnet.store.tables import audit_events, audit_heads, outbox

EVENT_COLUMNS = tuple(c.name for c in audit_events.columns)
OUTBOX_COLUMNS = tuple(c.name for c in outbox.columns)


def event_from_row(row: Row[Any]) -> StoredEvent:
    m = row._mapping
    return StoredEvent(**{f: m[f] for f in STORED_FIELDS})


async def read_heads(conn: AsyncConnection, record_ids: Iterable[str]) -> dict[str, Head]:
    """The heads of these chains (absent: an empty chain)."""
    ids = sorted(set(record_ids))
    if not ids:
        return {}
    rows = await conn.execute(
        select(audit_heads.c.record_id, audit_heads.c.seq, audit_heads.c.hash).where(
            audit_heads.c.record_id.in_(ids)
        )
    )
    return {r[0]: (int(r[1]), str(r[2])) for r in rows}


async def lock_heads(driver: Any, record_ids: Iterable[str]) -> dict[str, Head]:
    """PostgreSQL, in a transaction: the heads of these chains, locked until it ends (in
    record_id order, so that two writers never wait on each other in a cycle)."""
    try:
        rows = await driver.fetch(
            "SELECT record_id, seq, hash FROM audit_heads WHERE record_id = ANY($1::text[]) "
            "ORDER BY record_id FOR UPDATE",
            sorted(set(record_ids)),
        )
    except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError) as exc:
        raise WriteConflict(str(exc)) from None  # the server chose this one to give way: again
    return {r["record_id"]: (int(r["seq"]), str(r["hash"])) for r in rows}


def chain_ops(
    before: Mapping[str, Head], after: Mapping[str, Head], chained: Sequence[ChainedEvent]
) -> list[Op]:
    """Append ``chained`` (made from the heads ``before``) and move each head to ``after``."""
    ops: list[Op] = []
    new_chains = []
    for record_id, (seq, digest) in sorted(after.items()):
        old = before.get(record_id)
        if old is None:  # no head row yet
            new_chains.append({"record_id": record_id, "seq": seq, "hash": digest})
        else:
            ops.append(
                Update(
                    audit_heads,
                    where={"record_id": record_id, "seq": old[0]},
                    values={"seq": seq, "hash": digest},
                )
            )
    if new_chains:  # a second writer creating the same chain fails on the primary key
        ops.append(Insert(audit_heads, new_chains))
    ops.append(Insert(audit_events, [c.row() for c in chained]))
    return ops


_PG_APPEND = """
WITH u AS (
    SELECT * FROM unnest($1::text[], $2::integer[], $3::integer[], $4::text[])
        AS u(record_id, old_seq, new_seq, new_hash)
), moved AS (
    UPDATE audit_heads AS h SET seq = u.new_seq, hash = u.new_hash
    FROM u WHERE h.record_id = u.record_id AND h.seq = u.old_seq
    RETURNING h.record_id
), created AS (
    INSERT INTO audit_heads (record_id, seq, hash)
    SELECT record_id, new_seq, new_hash FROM u WHERE old_seq = 0
    ON CONFLICT DO NOTHING RETURNING record_id
), ok AS (
    SELECT record_id FROM moved UNION ALL SELECT record_id FROM created
), ev AS (
    INSERT INTO audit_events ({event_columns})
    SELECT * FROM unnest({event_arrays}) AS e({event_columns})
    WHERE e.record_id IN (SELECT record_id FROM ok)
    RETURNING 1
), ob AS (
    INSERT INTO outbox ({outbox_columns})
    SELECT * FROM unnest({outbox_arrays}) AS o({outbox_columns})
    WHERE o.record_id IN (SELECT record_id FROM ok)
    RETURNING 1
)
SELECT record_id FROM ok
"""


def _arrays(table_columns: Sequence[str], start: int, types: Mapping[str, str]) -> str:
    return ", ".join(f"${start + i}::{types[c]}[]" for i, c in enumerate(table_columns))


_TYPES = {
    "record_id": "text",
    "event_id": "text",
    "recorded_at": "timestamp",
    "actor_kind": "text",
    "actor_id": "text",
    "profession": "text",
    "structure": "text",
    "mode": "text",
    "reason": "text",
    "action": "text",
    "doc_id": "text",
    "outcome": "text",
    "rule": "text",
    "detail": "text",
    "seq": "integer",
    "prev_hash": "text",
    "hash": "text",
    "kind": "text",
    "channel": "text",
    "recipient": "text",
    "address": "text",
    "payload": "text",
    "status": "text",
    "attempts": "integer",
    "next_attempt_at": "timestamp",
    "last_error": "text",
    "created_at": "timestamp",
    "sent_at": "timestamp",
    "lease_until": "timestamp",
    "lease_owner": "text",
}

PG_APPEND_SQL = _PG_APPEND.format(
    event_columns=", ".join(EVENT_COLUMNS),
    event_arrays=_arrays(EVENT_COLUMNS, 5, _TYPES),
    outbox_columns=", ".join(OUTBOX_COLUMNS),
    outbox_arrays=_arrays(OUTBOX_COLUMNS, 5 + len(EVENT_COLUMNS), _TYPES),
)


async def append_pg(
    driver: Any,
    before: Mapping[str, Head],
    after: Mapping[str, Head],
    chained: Sequence[ChainedEvent],
    notices: Sequence[dict[str, Any]],
) -> set[str]:
    """Append in one statement; returns the chains whose head moved meanwhile (nothing of
    theirs, events or notices, was written)."""
    ids = sorted(after)
    rows = [c.row() for c in chained]
    args: list[Any] = [
        ids,
        [before.get(r, (0, GENESIS))[0] for r in ids],
        [after[r][0] for r in ids],
        [after[r][1] for r in ids],
    ]
    args += [[row[c] for row in rows] for c in EVENT_COLUMNS]
    args += [[n.get(c) for n in notices] for c in OUTBOX_COLUMNS]
    written = {r["record_id"] for r in await driver.fetch(PG_APPEND_SQL, *args)}
    return set(ids) - written


async def append_events(conn: AsyncConnection, events: Sequence[TraceEvent]) -> None:
    """Append ``events`` inside the caller's transaction, waiting for the chains' heads (a row
    lock on PostgreSQL, the write lock on SQLite): for operator tools and tests, not for
    requests (access/tracing.py appends without waiting)."""
    if not events:
        return
    chains = sorted({e.record_id for e in events})
    if conn.dialect.name == "postgresql":
        await conn.execute(
            pg_insert(audit_heads)
            .values([{"record_id": r, "seq": 0, "hash": GENESIS} for r in chains])
            .on_conflict_do_nothing()
        )
        rows = await conn.execute(
            select(audit_heads.c.record_id, audit_heads.c.seq, audit_heads.c.hash)
            .where(audit_heads.c.record_id.in_(chains))
            .order_by(audit_heads.c.record_id)
            .with_for_update()
        )
        before = {r[0]: (int(r[1]), str(r[2])) for r in rows}
    else:
        await write_lock(conn)
        before = await read_heads(conn, chains)
    chained, after = extend(before, events)
    await append_sql(conn, before, after, chained, [])


async def append_sql(
    conn: AsyncConnection,
    before: Mapping[str, Head],
    after: Mapping[str, Head],
    chained: Sequence[ChainedEvent],
    notices: Sequence[dict[str, Any]],
) -> None:
    """Append inside the caller's transaction, which holds the write lock (SQLite)."""
    write = Write()
    for op in chain_ops(before, after, chained):
        write.add(op)
    write.add(Insert(outbox, list(notices)))
    await execute_sql(conn, write)
