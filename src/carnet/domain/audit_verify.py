"""``carnet audit verify``: walk every trace chain and recompute it (docs/traces.md). This is the
pure part: the events come from the store (carnet/store/audit_scan.py).

The events are streamed in (record_id, seq) order, so memory stays flat whatever the size of the
table. For each chain, each event must

- follow the previous one: ``seq`` one more than the previous ``seq`` (1 for the first); a gap
  means events were removed;
- link to it: ``prev_hash`` equal to the previous event's ``hash`` (the genesis value for the
  first); a mismatch without a gap means an event was inserted, replaced or re-hashed;
- hash to what it says: SHA-256(prev_hash ‖ canonical form) equal to ``hash``; a mismatch means
  the event was edited.

What a chain cannot show by itself: the removal of the *last* events of a chain, and events
appended at the end by someone who can write to the database and recomputes the hashes (see
docs/traces.md).
"""

from __future__ import annotations

import hashlib
from binascii import hexlify
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

import orjson

from carnet.domain.traces import GENESIS, StoredEvent, chain_hash

BATCH = 2000


class ProblemKind(StrEnum):
    HASH = "hash"  # the event's content does not match its hash: edited
    LINK = "link"  # prev_hash is not the previous event's hash: inserted or replaced
    GAP = "gap"  # seq jumps: events removed
    ORDER = "order"  # seq repeats or goes back (the unique constraint was removed)


@dataclass(frozen=True, slots=True)
class ChainProblem:
    record_id: str  # "" for the chain of events tied to no record
    seq: int
    event_id: str
    kind: ProblemKind
    message: str

    @property
    def chain(self) -> str:
        return self.record_id or "(no record)"

    def __str__(self) -> str:
        return f"chain {self.chain} seq {self.seq} event {self.event_id}: {self.message}"


@dataclass(slots=True)
class VerifyReport:
    chains: int = 0
    events: int = 0
    problems: list[ChainProblem] = field(default_factory=list)
    broken_chains: set[str] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_event(event: StoredEvent, prev_seq: int, prev_hash: str) -> list[ChainProblem]:
    """The problems of ``event`` given the previous event of its chain (0, GENESIS: none)."""
    expected = chain_hash(event.prev_hash, event.fields())
    return _problems(
        event.record_id,
        event.seq,
        event.event_id,
        event.prev_hash,
        event.hash,
        expected,
        prev_seq,
        prev_hash,
    )


def _problems(
    record_id: str,
    seq: int,
    event_id: str,
    stored_prev: str,
    stored_hash: str,
    computed_hash: str,
    prev_seq: int,
    prev_hash: str,
) -> list[ChainProblem]:
    out: list[ChainProblem] = []

    def problem(kind: ProblemKind, message: str) -> None:
        out.append(ChainProblem(record_id, seq, event_id, kind, message))

    if seq <= prev_seq:
        problem(ProblemKind.ORDER, f"seq {seq} repeats or goes back after seq {prev_seq}")
    elif seq != prev_seq + 1:
        missing = seq - prev_seq - 1
        first = prev_seq + 1
        span = f"seq {first}" if missing == 1 else f"seq {first}–{seq - 1}"
        problem(ProblemKind.GAP, f"{missing} event(s) missing before it ({span}): removed")
    elif stored_prev != prev_hash:
        what = "genesis" if prev_seq == 0 else f"seq {prev_seq}'s hash"
        problem(
            ProblemKind.LINK,
            f"prev_hash {stored_prev[:12]}… is not {what} {prev_hash[:12]}…: "
            "an event was inserted, replaced or re-hashed",
        )
    if computed_hash != stored_hash:
        problem(
            ProblemKind.HASH,
            f"content does not match its hash (stored {stored_hash[:12]}…, computed "
            f"{computed_hash[:12]}…): the event was edited",
        )
    return out


# One event as the fast path reads it: (record_id, seq, prev_hash, hash, hashed bytes), the
# hashes as their 64 ASCII hex bytes, the hashed bytes prev_hash ‖ the canonical form as
# carnet.domain.traces.canonical gives it (the store builds them from the columns; tests check
# they are the same bytes).
RawEvent = tuple[str | bytes, int | bytes, bytes, bytes, bytes]
_GENESIS_B = GENESIS.encode("ascii")


def _text(value: str | bytes) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


@dataclass(slots=True)
class ChainWalker:
    """Checks events given in (record_id, seq) order, chain after chain, into ``report``."""

    report: VerifyReport = field(default_factory=VerifyReport)
    current: str | None = None
    prev_seq: int = 0
    prev_hash: str = GENESIS
    # feed_raw's current chain and its last hash, as the store gives them
    raw_current: str | bytes | None = None
    raw_prev_hash: bytes = GENESIS.encode("ascii")

    def feed(self, events: Iterable[StoredEvent]) -> None:
        report = self.report
        for event in events:
            if event.record_id != self.current:
                self.current, self.prev_seq, self.prev_hash = event.record_id, 0, GENESIS
                report.chains += 1
            found = check_event(event, self.prev_seq, self.prev_hash)
            if found:
                report.problems.extend(found)
                report.broken_chains.add(event.record_id)
            self.prev_seq, self.prev_hash = event.seq, event.hash
            report.events += 1

    def feed_raw(self, events: Iterable[RawEvent]) -> None:
        """The same check over :data:`RawEvent` tuples (``carnet audit verify``'s fast path):
        each event costs one SHA-256 and a few comparisons; an event with a problem is looked at
        again, slowly, to say what it is."""
        report = self.report
        sha256 = hashlib.sha256
        current = self.raw_current
        prev_seq = self.prev_seq
        prev_hash = self.raw_prev_hash
        chains = 0
        n = 0
        for record_id, seq_v, stored_prev, stored_hash, hashed in events:
            n += 1
            seq = int(seq_v)
            if record_id != current:
                current, prev_seq, prev_hash = record_id, 0, _GENESIS_B
                chains += 1
            computed = hexlify(sha256(hashed).digest())
            if seq != prev_seq + 1 or stored_prev != prev_hash or computed != stored_hash:
                found = _problems(
                    _text(record_id),
                    seq,
                    _event_id(hashed[len(stored_prev) :]),
                    stored_prev.decode("ascii", "replace"),
                    stored_hash.decode("ascii", "replace"),
                    computed.decode("ascii"),
                    prev_seq,
                    prev_hash.decode("ascii", "replace"),
                )
                report.problems.extend(found)
                report.broken_chains.add(_text(record_id))
            prev_seq, prev_hash = seq, stored_hash
        report.chains += chains
        report.events += n
        # for a next batch, possibly of the same chain
        self.raw_current, self.prev_seq, self.raw_prev_hash = current, prev_seq, prev_hash


def _event_id(canon: bytes) -> str:
    try:
        return str(orjson.loads(canon)[3])
    except (orjson.JSONDecodeError, IndexError):
        return "?"
