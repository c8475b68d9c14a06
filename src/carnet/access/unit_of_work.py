"""The unit of work: the only way the core reaches the store, and opens a transaction.

An operation of the core runs as a function of one :class:`Unit`:

1. it **reads** what it needs through the unit (the facts of a record, documents…);
2. the guard **decides** and queues one trace per decision in the unit (allowed or denied);
3. it **queues its writes** (rows to insert, update, delete) and the **checks** its decisions
   rest on (a record's ``rules_version``, a document's version);
4. :func:`run` **commits** it all at once: the writes, their traces and notification rows, the
   checks verified in the same statement (PostgreSQL: one statement, checks read under a share
   lock; SQLite: one transaction that took the write lock before step 1). If a check no longer
   holds, or a unique key was taken meanwhile, nothing is written and the function runs again
   on fresh facts: a decision never goes stale before its write.

If the function raises (a refusal, a client's mistake), nothing it queued is written but its
**denials**: their traces are appended on their own (the trace writer), so a refusal is always
traced even though what was refused left nothing behind. Reads commit no write; their traces
go to the trace writer, and :func:`run` returns only once they are committed.

Content (the file store) is written before the commit and kept only if the commit names it;
the ``db`` store's rows are part of the write itself.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection

from carnet.access.tracing import TraceWriter
from carnet.domain.errors import Busy, CoreError, NotFound
from carnet.domain.traces import Head, TraceEvent, extend
from carnet.store.batch import Insert, Op, Write, WriteConflict, execute_pg, execute_sql
from carnet.store.content import ContentStore, StagedBlob
from carnet.store.crypto import is_sealed, seal, unseal
from carnet.store.keyring import KeyGone
from carnet.store.services import StoreServices
from carnet.store.sqlite import write_lock
from carnet.store.tables import content_chunks, outbox
from carnet.store.trace_chain import chain_ops, lock_heads, read_heads

T = TypeVar("T")
log = logging.getLogger("carnet.access")

ATTEMPTS = 8


@dataclass(slots=True)
class Unit:
    """What one attempt of an operation read, decided and wants written."""

    store: StoreServices
    conn: AsyncConnection
    driver: Any  # the asyncpg connection on PostgreSQL (raw queries of the hot paths), else None
    writing: bool
    locking: bool = False  # PostgreSQL, after a conflict: wait for the chain heads (see run)
    write: Write = field(default_factory=Write)
    events: list[TraceEvent] = field(default_factory=list)
    notices: list[dict[str, Any]] = field(default_factory=list)
    heads: dict[str, Head] = field(default_factory=dict)  # chain heads read with the facts
    staged: list[StagedBlob] = field(default_factory=list)  # content encrypted for this unit
    kept: set[str] = field(default_factory=set)  # the blob ids this unit's write names
    after_commit: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    @property
    def pg(self) -> bool:
        return self.driver is not None

    # -- queueing ---------------------------------------------------------------------------------
    def add(self, op: Op) -> None:
        if not self.writing:
            raise RuntimeError("a read-only unit of work writes nothing but traces")
        self.write.add(op)

    def trace(self, event: TraceEvent) -> None:
        self.events.append(event)

    def notice(self, row: dict[str, Any]) -> None:
        self.notices.append(row)

    def kept_after(self, exc: BaseException) -> list[TraceEvent]:
        """The traces of an attempt that failed: every decision taken stays traced (dmp.md §5),
        denials as they are, and allowed ones saying the operation then failed."""
        why = exc.reason.value if isinstance(exc, CoreError) else "error"
        return [
            e
            if e.denied
            else replace(e, detail=f"{e.detail}; failed: {why}" if e.detail else f"failed: {why}")
            for e in self.events
        ]

    # -- keys and sealing (never leave the core) ------------------------------------------------
    async def key(self, record_id: str) -> bytes:
        try:
            return await self.store.keys.key_for(record_id)
        except KeyGone:
            raise NotFound("no such record") from None

    async def seal(self, record_id: str, plain: bytes) -> bytes:
        return seal(await self.key(record_id), record_id.encode(), plain)

    def unseal_with(self, key: bytes, record_id: str, data: bytes) -> bytes:
        """Unseal with a key already in hand (many values of one record)."""
        if not is_sealed(data):
            return data
        return unseal(key, record_id.encode(), data)

    async def unseal(self, record_id: str, data: bytes) -> bytes:
        if not is_sealed(data):
            return data
        return unseal(await self.key(record_id), record_id.encode(), data)

    # -- content ---------------------------------------------------------------------------------
    @property
    def content(self) -> ContentStore:
        return self.store.content

    async def stage(self, record_id: str, data: bytes, sha256: str | None = None) -> StagedBlob:
        """Encrypt ``data`` for ``record_id`` (``sha256``: its hash, if known already)."""
        staged = await self.store.content.stage(record_id, await self.key(record_id), data, sha256)
        self.staged.append(staged)
        return staged

    def keep_content(self, staged: StagedBlob) -> None:
        """This write names the content: keep it if it commits (the db store's rows join it)."""
        self.kept.add(staged.info.blob_id)
        rows = [] if staged.uploaded else self.store.stores[staged.store].rows(staged)
        if rows:
            self.add(Insert(content_chunks, rows))

    # -- commit ----------------------------------------------------------------------------------
    async def _heads_for(self, chains: set[str], writer: TraceWriter) -> dict[str, Head]:
        if not self.pg:  # SQLite: read under the write lock, always current
            return await read_heads(self.conn, chains)
        known: dict[str, Head] = {}
        unknown = []
        for r in chains:
            head = self.heads.get(r) or writer.known_head(r)
            if head is None:
                unknown.append(r)
            else:
                known[r] = head
        known.update(await read_heads(self.conn, unknown))
        return known

    async def commit(self, writer: TraceWriter) -> dict[str, Head]:
        """Write everything queued (writes, traces, notices) at once; the heads it moved."""
        if not self.events and not self.write:
            return {}
        chains = {e.record_id for e in self.events}
        if self.locking:
            before = await lock_heads(self.driver, chains)
        else:
            before = await self._heads_for(chains, writer)
        chained, after = extend(before, self.events)
        for op in chain_ops(before, after, chained):
            self.write.add(op)
        self.write.add(Insert(outbox, self.notices))
        if self.pg:
            await execute_pg(self.driver, self.write)
        else:
            await execute_sql(self.conn, self.write)
            await self.conn.commit()
        return after

    async def settle(self, *, committed: bool) -> None:
        """Keep the content the committed write names; discard the rest."""
        for staged in self.staged:
            keep = committed and staged.info.blob_id in self.kept
            try:
                await self.store.stores[staged.store].settle(staged, keep=keep)
            except Exception:  # unreachable either way; the orphan sweep finds it later
                log.exception("could not settle staged content %s", staged.info.blob_id)
        self.staged.clear()


@asynccontextmanager
async def _connection(
    store: StoreServices, *, writing: bool, locking: bool = False
) -> AsyncIterator[Unit]:
    async with store.engine.connect() as conn:
        if store.postgresql:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            driver: Any = (await conn.get_raw_connection()).driver_connection
            if not (writing and locking):
                yield Unit(store, conn, driver, writing)
                return
            # after a conflict: a transaction in which the commit waits for the chain heads
            async with driver.transaction():
                yield Unit(store, conn, driver, writing, locking=True)
        else:
            if writing:
                await write_lock(conn)
            yield Unit(store, conn, None, writing)


async def run(
    store: StoreServices,
    writer: TraceWriter,
    operation: Callable[[Unit], Awaitable[T]],
    *,
    writing: bool,
) -> T:
    """Run ``operation`` in a unit of work and commit it; again on fresh facts if they changed
    before the commit (at most :data:`ATTEMPTS` times).

    The first attempt takes no lock (one round trip on PostgreSQL). After a conflict — most
    often another write extending the same record's trace chain at the same moment — the next
    attempts run in a transaction that locks the chain heads of the records it reads (``FOR
    UPDATE``, by the fact loader, before the facts are read again), so that writers to one record
    queue up instead of racing each other again, and each decides on facts and at a time that
    follow every write committed before it."""
    for attempt in range(ATTEMPTS):
        denials: list[TraceEvent] = []
        if attempt:
            await asyncio.sleep(random.uniform(0, 0.002 * attempt))
        try:
            async with _connection(store, writing=writing, locking=attempt > 0) as unit:
                try:
                    result = await operation(unit)
                    after = await unit.commit(writer) if writing else {}
                except BaseException as exc:
                    await unit.settle(committed=False)
                    if not isinstance(exc, WriteConflict):
                        denials = unit.kept_after(exc)
                    raise
        except WriteConflict:
            continue
        except OperationalError as exc:
            await _keep_denials(writer, denials)
            raise Busy(f"the store is busy or unreachable: {exc.orig}") from None
        except PoolTimeout:
            await _keep_denials(writer, denials)
            raise Busy("every connection to the store stayed busy") from None
        except BaseException:
            # once the unit's connection (and SQLite's write lock) is let go
            await _keep_denials(writer, denials)
            raise
        await unit.settle(committed=True)
        if writing:
            writer.learn(after)
        else:
            try:
                await writer.append(unit.events, unit.notices, unit.heads)
            except OperationalError as exc:  # nothing is served untraced
                raise Busy(f"the store is busy or unreachable: {exc.orig}") from None
            except PoolTimeout:
                raise Busy("every connection to the store stayed busy") from None
        for task in unit.after_commit:
            await task()
        return result
    raise Busy("the record kept changing while this was decided; try again")


async def _keep_denials(writer: TraceWriter, denials: list[TraceEvent]) -> None:
    """dmp.md §5: every decision is traced, even when what it allowed or refused is rolled
    back."""
    if not denials:
        return
    try:
        await writer.append(denials)
    except Exception:  # the refusal itself matters more; this is logged
        log.exception("could not keep %d denial trace(s)", len(denials))
