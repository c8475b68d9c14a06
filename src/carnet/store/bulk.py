"""The bulk write path (the operator's import, ``carnet demo --patients N``): many records'
rows at once, written as the normal paths write them, only faster.

- record keys: made and wrapped by the master key like :meth:`KeyRing.create`, put in the key
  store in one transaction (before the data that needs them, as a record's opening does);
- content: encrypted in 1 MiB chunks with the record's key (:func:`encrypt_chunks`), either as
  rows of ``content_chunks`` (the ``db`` store) or as files of the ``file`` store;
- rows: on PostgreSQL ``COPY`` (asyncpg ``copy_records_to_table``), every table of a batch in
  one transaction; on SQLite ``executemany`` in one transaction under the write lock.

Rows are tuples in the order of the table's columns (:func:`columns`). Nothing here decides
anything: the core (access/imports.py) validated and decided what is written.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy.exc import IntegrityError

from carnet.store.content import FileContentStore
from carnet.store.content_db import encrypt_chunks
from carnet.store.crypto import seal
from carnet.store.services import StoreServices
from carnet.store.sqlite import write_lock
from carnet.store.tables import metadata as data_metadata
from carnet.store.tables import records

Row = tuple[Any, ...]

ANALYZE_MIN_RECORDS = 1_000
# the tables an import fills that its own lookups and the server's hot queries plan on
ANALYZED = ("records", "record_professionals", "documents", "contents", "audit_heads")
_GROWTH: dict[str, tuple[int, int]] = {}  # database → (records written since, size at ANALYZE)


class Duplicate(Exception):
    """A row's unique key is taken."""


__all__ = ["BulkStore", "Duplicate", "Row", "columns", "seal"]


def columns(table: str) -> tuple[str, ...]:
    return tuple(c.name for c in data_metadata.tables[table].columns)


class BulkStore:
    """The store's bulk operations, for one import."""

    def __init__(self, store: StoreServices) -> None:
        self.store = store
        self.postgresql = store.postgresql
        self.content_store = store.content.name
        self._files = store.stores["file"]

    # -- keys ----------------------------------------------------------------------------------
    async def new_keys(self, record_ids: Sequence[str], now: datetime) -> list[bytes]:
        """A new key for each record, wrapped and stored in the key store (one transaction)."""
        master = self.store.keys.master
        keys: list[bytes] = []
        rows: list[tuple[str, bytes]] = []
        for rid in record_ids:
            key, wrapped = master.new_record_key(rid)
            keys.append(key)
            rows.append((rid, wrapped))
        await self.store.keys.store.put_many(rows)
        return keys

    async def drop_keys(self, record_ids: Sequence[str]) -> None:
        """The keys of records that were not written (the write failed)."""
        for rid in record_ids:
            await self.store.keys.destroy(rid)

    # -- content -------------------------------------------------------------------------------
    def encrypt(
        self, record_id: str, key: bytes, data: bytes, sha256: str
    ) -> tuple[str, list[bytes], bytes]:
        """(blob id, encrypted chunks, SHA-1) of ``data``."""
        blob_id = os.urandom(16).hex()
        chunks, info = encrypt_chunks(key, blob_id, data, sha256)
        return blob_id, chunks, info.sha1

    def write_file(self, record_id: str, blob_id: str, chunks: Sequence[bytes]) -> None:
        """The ``file`` store: the blob's file, in place (the rows naming it follow; a failed
        import leaves unnamed files, as an interrupted upload can)."""
        files = self._files
        assert isinstance(files, FileContentStore)
        path = files.blob_path(record_id, blob_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)

    # -- rows ----------------------------------------------------------------------------------
    async def existing_ins(self, ins: Iterable[tuple[str, str]]) -> list[str]:
        """Which of these (OID, INS value) have a record already, under any OID (one record per
        person: the unique index is on the INS value alone)."""
        values = sorted({value for _oid, value in ins})
        found: list[str] = []
        async with self.store.engine.connect() as conn:
            for start in range(0, len(values), 5000):
                rows = await conn.execute(
                    records.select()
                    .with_only_columns(records.c.ins_oid, records.c.ins_value)
                    .where(records.c.ins_value.in_(values[start : start + 5000]))
                )
                found += [f"{r[0]}|{r[1]}" for r in rows]
        return found

    async def write(self, batches: dict[str, list[Row]]) -> None:
        """Every table's rows, in one transaction (all or nothing); :class:`Duplicate` when a
        unique key was taken meanwhile (another import of the same people)."""
        try:
            await self._write(batches)
        except (IntegrityError, asyncpg.UniqueViolationError) as exc:
            raise Duplicate(str(exc).splitlines()[0]) from None
        if self.postgresql:
            await self._analyze_if_grown(len(batches.get("records", ())))

    async def _analyze_if_grown(self, records_written: int) -> None:
        """ANALYZE the tables an import fills each time this process has written as many
        records as the table held at the last ANALYZE (at least 1,000): their statistics stay
        within a factor of two of the truth while they grow. Without them (autovacuum off, or
        behind a bulk load) PostgreSQL plans for empty tables: looking up 250 INS then reads
        every record, and the import slows down as the table grows; the server's queries
        would be planned as badly."""
        key = self.store.engine.url.render_as_string(hide_password=True)
        since, size = _GROWTH.get(key, (0, 0))
        since += records_written
        if since < max(ANALYZE_MIN_RECORDS, size):
            _GROWTH[key] = (since, size)
            return
        async with self.store.engine.connect() as conn:
            await conn.exec_driver_sql(f"ANALYZE {', '.join(ANALYZED)}")
            reltuples = (
                await conn.exec_driver_sql(
                    "SELECT reltuples::bigint FROM pg_class WHERE oid = 'records'::regclass"
                )
            ).scalar_one()
            await conn.commit()
        _GROWTH[key] = (0, max(int(reltuples), 0))

    async def _write(self, batches: dict[str, list[Row]]) -> None:
        async with self.store.engine.begin() as conn:
            if self.postgresql:
                driver: Any = (await conn.get_raw_connection()).driver_connection
                for name, rows in batches.items():
                    if rows:
                        await driver.copy_records_to_table(
                            name, records=rows, columns=list(columns(name))
                        )
            else:
                await write_lock(conn)
                for name, rows in batches.items():
                    if not rows:
                        continue
                    cols = columns(name)
                    sql = (
                        f"INSERT INTO {name} ({', '.join(cols)}) "  # noqa: S608 - table metadata
                        f"VALUES ({', '.join('?' for _ in cols)})"
                    )
                    await conn.exec_driver_sql(sql, rows)
