"""SQLite specifics."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection


async def write_lock(conn: AsyncConnection) -> None:
    """Take SQLite's write lock now, so that what is read next is read inside the write.

    The sqlite3 driver opens its transaction lazily, at the first INSERT/UPDATE/DELETE: reads
    before it run outside any transaction, so another writer could commit between a read and
    the write decided on it. ``BEGIN IMMEDIATE`` takes the write lock first (waiting for
    ``busy_timeout``); when a transaction is open already it has written, so it holds the lock.
    Nothing to do on other databases.
    """
    if conn.dialect.name != "sqlite":
        return
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    if driver is not None and not bool(getattr(driver, "in_transaction", True)):
        await conn.exec_driver_sql("BEGIN IMMEDIATE")
