"""The trace writer: appends the traces of reads (and the denials of refused operations) for every
request of this process, several requests' traces in one write (group commit).

Every read writes a trace (dmp.md §5), so reads are writes: a request hands its events (and the
notification rows they cause) to :meth:`TraceWriter.append` and waits until they are committed
before it answers, so that no read is ever served untraced. Meanwhile other requests' events
queue up; the writer commits each queue in one write (one statement on PostgreSQL), extending
each record's chain by compare-and-set on its head (store/trace_chain.py): no lock is held, no
round trip is spent reading heads it knows. A chain whose head moved meanwhile (another process
appended to it) is read again and retried.

Writes of the units of work (publish, consents…) carry their own traces in their own commit;
they tell the writer the heads they moved (:meth:`learn`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from carnet.domain.traces import Head, TraceEvent, extend
from carnet.store.services import StoreServices
from carnet.store.sqlite import write_lock
from carnet.store.trace_chain import append_pg, append_sql, read_heads

log = logging.getLogger("carnet.traces")

MAX_ROUNDS = 20  # a chain contended this often in one batch is a bug, not bad luck
HEADS_CACHED = 200_000


@dataclass(slots=True)
class _Pending:
    events: list[TraceEvent]
    notices: list[dict[str, Any]]
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class TraceWriter:
    def __init__(self, store: StoreServices) -> None:
        self.store = store
        self._queue: list[_Pending] = []
        self._task: asyncio.Task[None] | None = None
        self._heads: OrderedDict[str, Head] = OrderedDict()

    # -- what the units of work use ------------------------------------------------------------
    async def append(
        self,
        events: Sequence[TraceEvent],
        notices: Sequence[dict[str, Any]] = (),
        heads: Mapping[str, Head] | None = None,
    ) -> None:
        """Append these events (and write these notification rows); returns once committed."""
        if not events and not notices:
            return
        if heads:
            self.learn(heads)
        pending = _Pending(list(events), list(notices))
        self._queue.append(pending)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        await pending.done

    def learn(self, heads: Mapping[str, Head]) -> None:
        """Heads seen elsewhere (a fact query, a committed write): keep the newest."""
        for record_id, head in heads.items():
            known = self._heads.get(record_id)
            if known is None or known[0] < head[0]:
                self._heads[record_id] = head
                self._heads.move_to_end(record_id)
        while len(self._heads) > HEADS_CACHED:
            self._heads.popitem(last=False)

    def known_head(self, record_id: str) -> Head | None:
        return self._heads.get(record_id)

    async def close(self) -> None:
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    # -- the loop -------------------------------------------------------------------------------
    async def _run(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                await self._write(batch)
            except BaseException as exc:  # every waiting request learns it failed
                for p in batch:
                    if not p.done.done():
                        p.done.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
            else:
                for p in batch:
                    if not p.done.done():
                        p.done.set_result(None)

    async def _write(self, batch: list[_Pending]) -> None:
        events = [e for p in batch for e in p.events]
        notices = [n for p in batch for n in p.notices]
        if self.store.postgresql:
            await self._write_pg(events, notices)
        else:
            await self._write_sql(events, notices)

    async def _write_pg(self, events: list[TraceEvent], notices: list[dict[str, Any]]) -> None:
        """Notices ride with an event of their record: they are written if and only if it is."""
        async with self.store.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            driver = (await conn.get_raw_connection()).driver_connection
            moved: set[str] = set()
            for _ in range(MAX_ROUNDS):
                chains = {e.record_id for e in events}
                unknown = [r for r in chains if r not in self._heads]
                if unknown:
                    self.learn(await read_heads(conn, unknown))
                before = {r: h for r in chains if (h := self._heads.get(r)) is not None}
                chained, after = extend(before, events)
                moved = await append_pg(driver, before, after, chained, notices)
                self.learn({r: h for r, h in after.items() if r not in moved})
                if not moved:
                    return
                for record_id in moved:
                    self._heads.pop(record_id, None)
                events = [e for e in events if e.record_id in moved]
                notices = [n for n in notices if n["record_id"] in moved]
        raise RuntimeError(f"trace chains kept moving: {sorted(moved)[:5]}")

    async def _write_sql(self, events: list[TraceEvent], notices: list[dict[str, Any]]) -> None:
        async with self.store.engine.begin() as conn:
            await write_lock(conn)
            chains = {e.record_id for e in events}
            before = await read_heads(conn, chains)
            chained, after = extend(before, events)
            await append_sql(conn, before, after, chained, notices)
        self.learn(after)
