"""The core, started once per process: the store's services, the trace writer, the access
matrix. Interfaces hold a :class:`Core` and ask it for a :class:`~carnet.access.scope.Scope` per
request; they never see the engine, a key or the content store."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from carnet.access.context import Context, Limits
from carnet.access.facts import FactLoader
from carnet.access.guard import Guard
from carnet.access.matrix import AccessMatrix, load_matrix
from carnet.access.scope import Scope
from carnet.access.tracing import TraceWriter
from carnet.domain.actors import Actor
from carnet.settings import Settings
from carnet.store.services import StoreServices

log = logging.getLogger("carnet")


@dataclass
class Core:
    settings: Settings
    matrix: AccessMatrix
    limits: Limits
    _store: StoreServices
    _writer: TraceWriter
    _purger: asyncio.Task[None] | None = field(default=None, repr=False)

    @classmethod
    async def start(cls, settings: Settings, *, run_migrations: bool = True) -> Core:
        matrix = load_matrix(settings.access_matrix)
        store = await StoreServices.start(settings, run_migrations=run_migrations)
        return cls(
            settings=settings,
            matrix=matrix,
            limits=Limits(
                allow_test_ins=settings.allow_test_ins,
                max_upload_bytes=settings.max_upload_bytes,
                page_size_default=settings.page_size_default,
                page_size_max=settings.page_size_max,
                content_types=settings.content_types,
            ),
            _store=store,
            _writer=TraceWriter(store),
        )

    def scope(self, actor: Actor) -> Scope:
        """Every operation of the core, for ``actor`` (built from a verified identity)."""
        return Scope(
            Context(
                actor,
                Guard(actor, self.matrix),
                FactLoader(actor),
                self.limits,
                self._store,
                self._writer,
            )
        )

    async def close(self) -> None:
        if self._purger is not None:
            self._purger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._purger
            self._purger = None
        await self._writer.close()
        await self._store.close()

    # -- abandoned uploads ----------------------------------------------------------------------
    async def purge_stale_uploads(self, operator: Actor) -> int:
        """Remove the raw uploads no document named within ``staged_max_age_seconds``, each
        the operator's decision (traced); how many were removed."""
        lifecycle = self.scope(operator).lifecycle
        due = await lifecycle.stale_uploads(timedelta(seconds=self.settings.staged_max_age_seconds))
        removed = 0
        for record_id, binary_id in due:
            if await lifecycle.purge_upload(record_id, binary_id):
                removed += 1
        return removed

    def start_upload_purger(self, operator: Actor) -> None:
        """Purge abandoned uploads every ``staged_purge_interval_seconds`` (0: never) while the
        core runs (the server's background task)."""
        interval = self.settings.staged_purge_interval_seconds
        if interval <= 0 or self._purger is not None:
            return

        async def loop() -> None:
            while True:
                try:
                    removed = await self.purge_stale_uploads(operator)
                    if removed:
                        log.info("%d abandoned upload(s) removed", removed)
                except Exception:  # the database went away, …: try again next time
                    log.exception("purge of abandoned uploads failed")
                await asyncio.sleep(interval)

        self._purger = asyncio.get_running_loop().create_task(loop())

    # -- the operator's infrastructure tasks (no medical data involved) -------------------------
    @staticmethod
    async def migrate(settings: Settings) -> None:
        """Apply the migrations, then what they leave to the core's keys (addresses sealed)."""
        store = await StoreServices.start(settings, run_migrations=True)
        await store.close()

    @staticmethod
    def backup(settings: Settings, destination: Path) -> str:
        from carnet.store.backup import backup

        return backup(settings, destination)
