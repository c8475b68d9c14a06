"""Traces (dmp.md §5): every action and every denial, written in the same transaction as the
action itself, append-only and hash-chained per record (docs/traces.md).

Each record has its own chain; events tied to no record form one more chain, ``record_id`` "".
An event carries ``seq`` (1, 2, 3… within its chain), ``prev_hash`` (the previous event's
``hash``, :data:`GENESIS` for the first) and ``hash`` = SHA-256(prev_hash ‖ canonical form of
the event), so that an edited, removed or inserted event breaks the chain
(:mod:`carnet.domain.audit_verify`).

Appending must not fork a chain when two transactions trace on the same record at once: on
PostgreSQL a transaction-scoped advisory lock per chain is taken before the chain's head is
read; on SQLite the head is read inside a write transaction (``BEGIN IMMEDIATE`` when none is
open yet), and SQLite has one writer at a time. The unique constraint (record_id, seq) is the
backstop.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Row, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from carnet.access.policy import Action, Decision
from carnet.domain.actors import Actor
from carnet.domain.clock import ordered_id, utcnow
from carnet.domain.search import DateParam, TokenParam
from carnet.store.tables import audit_events

GENESIS = "0" * 64
FORMAT = "carnet.audit/1"  # first element of the canonical form: changes if the form changes

# the fields covered by the hash, in this order (seq and record_id first)
HASHED_FIELDS = (
    "seq",
    "record_id",
    "event_id",
    "recorded_at",
    "actor_kind",
    "actor_id",
    "profession",
    "structure",
    "mode",
    "reason",
    "action",
    "doc_id",
    "outcome",
    "rule",
    "detail",
)

_HEADS_KEY = "carnet.audit_heads"


def trace_row(
    actor: Actor,
    action: Action | str,
    record_id: str | None,
    *,
    decision: Decision | None = None,
    outcome: str | None = None,
    doc_id: str | None = None,
    detail: str | None = None,
) -> dict[str, object]:
    allowed = decision.allowed if decision is not None else outcome != "deny"
    return {
        "record_id": record_id or "",
        "event_id": ordered_id(),
        "recorded_at": utcnow(),
        "actor_kind": actor.kind.value,
        "actor_id": actor.id,
        "profession": actor.profession,
        "structure": actor.structure,
        "mode": actor.mode.value,
        "reason": actor.reason,
        "action": str(action),
        "doc_id": doc_id,
        "outcome": outcome or ("allow" if allowed else "deny"),
        "rule": decision.rule if decision is not None else None,
        "detail": detail,
    }


# -- the chain -----------------------------------------------------------------------------------
def canonical(event: Mapping[str, Any]) -> bytes:
    """The event's canonical form: a JSON array of :data:`HASHED_FIELDS` (UTF-8, no spaces),
    ``recorded_at`` as ISO 8601 with microseconds, absent values as null."""
    values: list[Any] = [FORMAT]
    for name in HASHED_FIELDS:
        value = event.get(name)
        if name == "recorded_at" and isinstance(value, datetime):
            value = value.isoformat(timespec="microseconds")
        values.append(value)
    return orjson.dumps(values)


def chain_hash(prev_hash: str, event: Mapping[str, Any]) -> str:
    """SHA-256(prev_hash ‖ canonical(event)), hex; prev_hash as its 64 hex characters."""
    return hashlib.sha256(prev_hash.encode("ascii") + canonical(event)).hexdigest()


@dataclass(slots=True)
class _Heads:
    """Chain heads known to this transaction: (seq, hash) per record_id."""

    transaction: object
    heads: dict[str, tuple[int, str]] = field(default_factory=dict)


def _heads_of(conn: AsyncConnection) -> dict[str, tuple[int, str]]:
    """The heads cached for the current transaction (the cache lives on the connection and is
    dropped when the transaction changes; savepoints are not cached across)."""
    sync = conn.sync_connection
    assert sync is not None
    info = sync.info
    transaction = sync.get_transaction()
    if sync.get_nested_transaction() is not None:
        info.pop(_HEADS_KEY, None)
        return {}
    cached = info.get(_HEADS_KEY)
    if isinstance(cached, _Heads) and cached.transaction is transaction:
        return cached.heads
    fresh = _Heads(transaction)
    info[_HEADS_KEY] = fresh
    return fresh.heads


async def _hold_write_lock(conn: AsyncConnection) -> None:
    """SQLite: make sure the chain head is read inside the write transaction that appends.

    The sqlite3 driver opens its transaction lazily, at the first INSERT/UPDATE/DELETE: reads
    before it run outside any transaction, so another writer could commit between our read of
    the head and our INSERT. ``BEGIN IMMEDIATE`` takes the write lock first (waiting for
    ``busy_timeout``); when a transaction is already open it has written, so it holds the lock.
    """
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    if driver is not None and not bool(getattr(driver, "in_transaction", True)):
        await conn.exec_driver_sql("BEGIN IMMEDIATE")


async def _lock_and_read_head(conn: AsyncConnection, record_id: str) -> tuple[int, str]:
    if conn.dialect.name == "postgresql":
        await conn.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:record_id))"), {"record_id": record_id}
        )
    head = (
        await conn.execute(
            select(audit_events.c.seq, audit_events.c.hash)
            .where(audit_events.c.record_id == record_id)
            .order_by(audit_events.c.seq.desc())
            .limit(1)
        )
    ).first()
    if head is None:
        return 0, GENESIS
    return int(head[0]), str(head[1])


async def write_traces(conn: AsyncConnection, rows: list[dict[str, object]]) -> None:
    """Append ``rows`` (from :func:`trace_row`) to their chains, in the caller's transaction.

    One read of each chain's head per transaction (locks taken in record_id order, so that two
    transactions never wait on each other in a cycle within one call), then one INSERT.
    """
    if not rows:
        return
    heads = _heads_of(conn)
    missing = sorted({str(r["record_id"]) for r in rows} - heads.keys())
    known = dict(heads)
    if missing:
        if conn.dialect.name == "sqlite":
            await _hold_write_lock(conn)
        for record_id in missing:
            known[record_id] = await _lock_and_read_head(conn, record_id)
    chained: list[dict[str, object]] = []
    for row in rows:
        record_id = str(row["record_id"])
        seq, prev = known[record_id]
        event = {**row, "seq": seq + 1, "prev_hash": prev}
        event["hash"] = chain_hash(prev, event)
        known[record_id] = (seq + 1, str(event["hash"]))
        chained.append(event)
    await conn.execute(audit_events.insert(), chained)
    heads.update(known)


# -- reading -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class StoredEvent:
    record_id: str
    event_id: str
    seq: int
    recorded_at: datetime
    actor_kind: str
    actor_id: str
    profession: str | None
    structure: str | None
    mode: str | None
    reason: str | None
    action: str
    doc_id: str | None
    outcome: str
    rule: str | None
    detail: str | None
    prev_hash: str
    hash: str

    def fields(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in StoredEvent.__slots__}


def event_from_row(row: Row[Any]) -> StoredEvent:
    m = row._mapping
    return StoredEvent(**{f: m[f] for f in StoredEvent.__slots__})


@dataclass(slots=True)
class AuditCriteria:
    """GET AuditEvent?…: each outer list is a repeated parameter (AND), each inner list the
    comma-separated values (OR)."""

    record_ids: list[list[str]] = field(default_factory=list)
    date: DateParam = field(default_factory=list)
    action: TokenParam = field(default_factory=list)  # our codes, or C R U D E
    subtype: TokenParam = field(default_factory=list)  # our codes
    outcome: TokenParam = field(default_factory=list)
    agent_identifier: TokenParam = field(default_factory=list)
    entity: list[list[str]] = field(default_factory=list)  # document ids
    count: int = 20
    cursor: tuple[str, str] | None = None  # (event_id, record_id) of the last one seen
