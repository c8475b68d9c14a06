"""The Alembic migrations build exactly the schema of carnet/store/tables.py, on both backends."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from carnet.store.db import create_engine, migrate
from carnet.store.tables import metadata
from tests.conftest import BACKENDS, PG_URL, _drop_database, make_settings


def _diff(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return [d for d in compare_metadata(context, metadata)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_migrations_match_tables(backend: str, tmp_path: Path) -> None:
    settings, dbname = make_settings(backend, tmp_path)

    async def go() -> list[Any]:
        engine = create_engine(settings)
        try:
            await migrate(engine)
            await migrate(engine)  # idempotent
            async with engine.connect() as conn:
                return await conn.run_sync(_diff)
        finally:
            await engine.dispose()

    try:
        diff = asyncio.run(go())
    finally:
        if dbname and PG_URL:
            asyncio.run(_drop_database(PG_URL, dbname))
    assert diff == []
