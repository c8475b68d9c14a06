"""The key store: record keys, wrapped by the master key, kept apart from the data.

Destroying a record must leave nothing of its content readable, backups included (dmp.md §2).
Content is encrypted with the record's own key, so destroying that key destroys the content —
provided the key is not also in the data backups. The keys therefore live in their own store
(by default ``keys.sqlite`` beside the data, or ``CARNET_KEYSTORE_URL``), which ``carnet backup``
leaves out: a data backup holds only ciphertext. The key store is backed up on its own schedule;
its retention bounds how long a destroyed record's key may survive (docs/lifecycle.md).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import Column, DateTime, LargeBinary, MetaData, String, Table, delete, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from carnet.domain.clock import utcnow
from carnet.settings import Settings, normalise_database_url
from carnet.store.db import _sqlite_pragmas

key_metadata = MetaData()
keys_table = Table(
    "record_keys",
    key_metadata,
    Column("record_id", String(64), primary_key=True),
    Column("wrapped_key", LargeBinary, nullable=False),
    Column("created_at", DateTime, nullable=False),
)


def keystore_url(settings: Settings) -> str:
    if settings.keystore_url:
        return normalise_database_url(settings.keystore_url)
    return f"sqlite+aiosqlite:///{(settings.data_dir / 'keys.sqlite').resolve()}"


class KeyStore:
    def __init__(self, engine: AsyncEngine, local: Path | None = None) -> None:
        self.engine = engine
        self._local = local  # the SQLite file, read directly (see get)
        self._reader: sqlite3.Connection | None = None

    @classmethod
    async def open(cls, settings: Settings) -> KeyStore:
        url = keystore_url(settings)
        local: Path | None = None
        if url.startswith("sqlite"):
            database = make_url(url).database
            if database and database != ":memory:":
                local = Path(database)
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            engine = create_async_engine(url, connect_args={"timeout": 30})
            from sqlalchemy import event

            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        else:
            engine = create_async_engine(url, pool_size=settings.db_pool_size)
        async with engine.begin() as conn:
            await conn.run_sync(key_metadata.create_all)
        return cls(engine, local)

    async def put(self, record_id: str, wrapped: bytes) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                keys_table.insert().values(
                    record_id=record_id, wrapped_key=wrapped, created_at=utcnow()
                )
            )

    async def put_many(self, rows: list[tuple[str, bytes]]) -> None:
        """Many new keys at once (the operator's bulk import), in one transaction: directly in
        the local SQLite file when there is one (no hand-off to aiosqlite's thread)."""
        now = utcnow()
        if self._local is not None:
            stamp = now.strftime("%Y-%m-%d %H:%M:%S.%f")  # as SQLAlchemy writes it
            local = sqlite3.connect(self._local, timeout=30)
            try:
                with local:  # one transaction, committed on success
                    local.executemany(
                        "INSERT INTO record_keys (record_id, wrapped_key, created_at) "
                        "VALUES (?, ?, ?)",
                        [(rid, wrapped, stamp) for rid, wrapped in rows],
                    )
            finally:
                local.close()
            return
        async with self.engine.begin() as conn:
            await conn.execute(
                keys_table.insert(),
                [{"record_id": r, "wrapped_key": w, "created_at": now} for r, w in rows],
            )

    async def get(self, record_id: str) -> bytes | None:
        if self._local is not None:
            return self._read_local(record_id)
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(keys_table.c.wrapped_key).where(keys_table.c.record_id == record_id)
                )
            ).first()
        return bytes(row[0]) if row else None

    async def delete(self, record_id: str) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                delete(keys_table).where(keys_table.c.record_id == record_id)
            )
        return bool(result.rowcount)

    def _read_local(self, record_id: str) -> bytes | None:
        """A point read in the local SQLite file, on the event loop's thread: tens of
        microseconds (WAL: a reader never waits for a writer), where a hand-off to aiosqlite's
        thread costs a millisecond of a loaded worker's time, on every first use of a key."""
        assert self._local is not None
        if self._reader is None:
            self._reader = sqlite3.connect(self._local, timeout=10, check_same_thread=False)
        row = self._reader.execute(
            "SELECT wrapped_key FROM record_keys WHERE record_id = ?", (record_id,)
        ).fetchone()
        return bytes(row[0]) if row else None

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        await self.engine.dispose()
