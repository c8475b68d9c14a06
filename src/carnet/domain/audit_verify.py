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

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

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
    out: list[ChainProblem] = []

    def problem(kind: ProblemKind, message: str) -> None:
        out.append(ChainProblem(event.record_id, event.seq, event.event_id, kind, message))

    if event.seq <= prev_seq:
        problem(ProblemKind.ORDER, f"seq {event.seq} repeats or goes back after seq {prev_seq}")
    elif event.seq != prev_seq + 1:
        missing = event.seq - prev_seq - 1
        first = prev_seq + 1
        span = f"seq {first}" if missing == 1 else f"seq {first}–{event.seq - 1}"
        problem(ProblemKind.GAP, f"{missing} event(s) missing before it ({span}): removed")
    elif event.prev_hash != prev_hash:
        what = "genesis" if prev_seq == 0 else f"seq {prev_seq}'s hash"
        problem(
            ProblemKind.LINK,
            f"prev_hash {event.prev_hash[:12]}… is not {what} {prev_hash[:12]}…: "
            "an event was inserted, replaced or re-hashed",
        )
    expected = chain_hash(event.prev_hash, event.fields())
    if expected != event.hash:
        problem(
            ProblemKind.HASH,
            f"content does not match its hash (stored {event.hash[:12]}…, computed "
            f"{expected[:12]}…): the event was edited",
        )
    return out


@dataclass(slots=True)
class ChainWalker:
    """Checks events given in (record_id, seq) order, chain after chain, into ``report``."""

    report: VerifyReport = field(default_factory=VerifyReport)
    current: str | None = None
    prev_seq: int = 0
    prev_hash: str = GENESIS

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
