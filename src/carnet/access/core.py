"""The core, started once per process: the store's services, the trace writer, the access
matrix. Interfaces hold a :class:`Core` and ask it for a :class:`~carnet.access.scope.Scope` per
request; they never see the engine, a key or the content store."""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass
class Core:
    settings: Settings
    matrix: AccessMatrix
    limits: Limits
    _store: StoreServices
    _writer: TraceWriter

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
        await self._writer.close()
        await self._store.close()

    # -- the operator's infrastructure tasks (no medical data involved) -------------------------
    @staticmethod
    async def migrate(settings: Settings) -> None:
        from carnet.store.db import create_engine, migrate

        engine = create_engine(settings)
        try:
            await migrate(engine)
        finally:
            await engine.dispose()

    @staticmethod
    def backup(settings: Settings, destination: Path) -> str:
        from carnet.store.backup import backup

        return backup(settings, destination)
