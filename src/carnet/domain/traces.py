"""Traces (dmp.md §5): every action and every denial, append-only and hash-chained per record
(docs/traces.md). This module is the pure part: the event, its canonical form and the chain.
Writing and reading them is the store's (:mod:`carnet.store.trace_chain`).

Each record has its own chain; events tied to no record form one more chain, ``record_id`` "".
An event carries ``seq`` (1, 2, 3… within its chain), ``prev_hash`` (the previous event's
``hash``, :data:`GENESIS` for the first) and ``hash`` = SHA-256(prev_hash ‖ canonical form of
the event), so that an edited, removed or inserted event breaks the chain
(:mod:`carnet.domain.audit_verify`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from carnet.domain.actions import Action
from carnet.domain.actors import Actor
from carnet.domain.clock import ordered_id, utcnow
from carnet.domain.ins import Ins
from carnet.domain.search import DateParam

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
ALLOW = "allow"
DENY = "deny"
# what a row of audit_events holds: the hashed fields and the chain values
STORED_FIELDS = (*HASHED_FIELDS, "prev_hash", "hash")


@dataclass(frozen=True, slots=True)
class TraceEvent:
    """One event to append: everything but its place in the chain."""

    record_id: str  # "" for events tied to no record
    event_id: str
    recorded_at: datetime
    actor_kind: str
    actor_id: str
    profession: str | None
    structure: str | None
    mode: str | None
    reason: str | None
    action: str
    doc_id: str | None
    outcome: str  # allow | deny
    rule: str | None
    detail: str | None

    @property
    def denied(self) -> bool:
        return self.outcome == DENY

    def fields(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in TraceEvent.__slots__}


def trace_event(
    actor: Actor,
    action: Action | str,
    record_id: str | None,
    *,
    allowed: bool,
    rule: str | None = None,
    doc_id: str | None = None,
    detail: str | None = None,
    now: datetime | None = None,
) -> TraceEvent:
    return TraceEvent(
        record_id=record_id or "",
        event_id=ordered_id(),
        recorded_at=now or utcnow(),
        actor_kind=actor.kind.value,
        actor_id=actor.id,
        profession=actor.profession,
        structure=actor.structure,
        mode=actor.mode.value,
        reason=actor.reason,
        action=str(action),
        doc_id=doc_id,
        outcome=ALLOW if allowed else DENY,
        rule=rule,
        detail=detail,
    )


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


def _canonical_of(event: TraceEvent, seq: int) -> bytes:
    return orjson.dumps(
        (
            FORMAT,
            seq,
            event.record_id,
            event.event_id,
            event.recorded_at.isoformat(timespec="microseconds"),
            event.actor_kind,
            event.actor_id,
            event.profession,
            event.structure,
            event.mode,
            event.reason,
            event.action,
            event.doc_id,
            event.outcome,
            event.rule,
            event.detail,
        )
    )


@dataclass(frozen=True, slots=True)
class ChainedEvent:
    event: TraceEvent
    seq: int
    prev_hash: str
    hash: str

    def row(self) -> dict[str, Any]:
        e = self.event
        return {
            "record_id": e.record_id,
            "event_id": e.event_id,
            "recorded_at": e.recorded_at,
            "actor_kind": e.actor_kind,
            "actor_id": e.actor_id,
            "profession": e.profession,
            "structure": e.structure,
            "mode": e.mode,
            "reason": e.reason,
            "action": e.action,
            "doc_id": e.doc_id,
            "outcome": e.outcome,
            "rule": e.rule,
            "detail": e.detail,
            "seq": self.seq,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


Head = tuple[int, str]  # (seq, hash) of a chain's last event; (0, GENESIS) for an empty chain


def extend(
    heads: Mapping[str, Head], events: Iterable[TraceEvent]
) -> tuple[list[ChainedEvent], dict[str, Head]]:
    """Chain ``events`` onto the chains whose heads are given (in the order given, each record's
    events after each other). Returns the chained events and the new heads. Pure."""
    new_heads: dict[str, Head] = {}
    out: list[ChainedEvent] = []
    for event in events:
        seq, prev = new_heads.get(event.record_id) or heads.get(event.record_id) or (0, GENESIS)
        seq += 1
        digest = hashlib.sha256(prev.encode("ascii") + _canonical_of(event, seq)).hexdigest()
        out.append(ChainedEvent(event, seq, prev, digest))
        new_heads[event.record_id] = (seq, digest)
    return out, new_heads


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
    # as shown to one reader (carnet.domain.trace_view): parts left out, chain values included
    partial: bool = False
    # a document it is about is hidden from the reader for now (neither named nor counted)
    hidden: bool = False

    def fields(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in StoredEvent.__slots__}


@dataclass(frozen=True, slots=True)
class ActionFilter:
    """Which actions a trace search matches: one code, or every code ending with one of
    ``verbs`` (``read`` matches ``document.read``), or (``other_than``) every code whose verb is
    none of them."""

    code: str | None = None
    verbs: frozenset[str] = frozenset()
    other_than: bool = False


@dataclass(slots=True)
class AuditCriteria:
    """Which traces: each outer list is a repeated condition (AND), each inner list its
    alternatives (OR)."""

    record_ids: list[list[str]] = field(default_factory=list)
    date: DateParam = field(default_factory=list)
    actions: list[list[ActionFilter]] = field(default_factory=list)
    outcomes: list[list[str]] = field(default_factory=list)  # allow | deny
    actor_ids: list[list[str]] = field(default_factory=list)  # rpps:…, ins:…
    # events about: ("record", id) or ("document", id)
    entities: list[list[tuple[str, str]]] = field(default_factory=list)
    count: int = 20
    cursor: tuple[str, str] | None = None  # (event_id, record_id) of the last one seen


@dataclass(frozen=True, slots=True)
class AuditPage:
    items: list[StoredEvent]
    total: int
    next_cursor: tuple[str, str] | None
    ins: dict[str, Ins] = field(default_factory=dict)  # record id → INS, to name a patient
