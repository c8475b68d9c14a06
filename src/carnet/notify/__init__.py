"""Delivering notifications: the outbox worker, the daily digest, e-mail and portal channels.

What is told to whom is decided in :mod:`carnet.domain.notifications`; the core writes the
outbox rows with the events they tell of; this package delivers them. See
docs/notifications.md.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from carnet.notify.digest import run_digest
from carnet.notify.worker import Backoff, PassResult, Worker
from carnet.settings import Settings
from carnet.store.db import create_engine, migrate
from carnet.store.services import StoreServices

__all__ = ["Backoff", "PassResult", "Worker", "digest_now", "run_digest", "worker_for"]


@asynccontextmanager
async def worker_for(
    settings: Settings, *, lease_seconds: float, batch_size: int, max_attempts: int
) -> AsyncIterator[Worker]:
    """A worker on the configured store (migrated first, and the addresses left in clear by
    older versions sealed), closed on exit."""
    store = await StoreServices.start(settings)  # migrated, and old addresses sealed
    try:
        worker = Worker(
            store.engine,
            settings,
            lease_seconds=lease_seconds,
            batch_size=batch_size,
            max_attempts=max_attempts,
            keys=store.keys,  # to open patients' addresses
        )
        try:
            yield worker
        finally:
            await worker.close()
    finally:
        await store.close()


async def digest_now(settings: Settings, *, include_today: bool = False) -> int:
    """Write the daily digests of professionals' accesses now; how many were written."""
    engine = create_engine(settings)
    try:
        await migrate(engine)
        return await run_digest(engine, include_today=include_today)
    finally:
        await engine.dispose()
