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


@pytest.mark.parametrize("backend", BACKENDS)
def test_0007_one_identity_per_ins_and_idnatps(backend: str, tmp_path: Path) -> None:
    """Rows written before 0007: a tombstone sharing its INS value with a live record goes,
    bare RPPS numbers become IdNatPS; two live records of one INS value stop the migration."""
    from alembic import command
    from sqlalchemy import text

    from carnet.store.db import alembic_config

    settings, dbname = make_settings(backend, tmp_path)
    ins = "180017512345660"
    at = "2026-01-01 00:00:00"

    def record(rid: str, oid: str, state: str, treating: str | None) -> str:
        t = "NULL" if treating is None else f"'{treating}'"
        return (
            "INSERT INTO records (record_id, ins_oid, ins_value, identity_status, state, "
            "consent_by, consent_by_kind, consent_at, emergency_centre15, "
            "emergency_bris_de_glace, emergency_masked, version_id, created_at, last_updated, "
            f"treating_physician, resource) VALUES ('{rid}', '{oid}', '{ins}', 'VALI', "
            f"'{state}', 'rpps:10000000009', 'professional', '{at}', true, true, false, 1, "
            f"'{at}', '{at}', {t}, '')"
        )

    def before(conn: Connection) -> None:
        command.upgrade(alembic_config(conn), "0006")
        conn.execute(text(record("r1", "1.2.250.1.213.1.4.10", "active", "rpps:10000000009")))
        conn.execute(text(record("r2", "1.2.250.1.213.1.4.8", "destroyed", None)))
        conn.execute(
            text(
                "INSERT INTO consents (record_id, consent_id, decision, actor_system, "
                "actor_value, actor_kind, status, version_id, recorded_by, created_at, "
                f"last_updated) VALUES ('r1', 'r1-c', 'deny', 'x', '10000000009', "
                f"'professional', 'active', 1, 'ins:{ins}', '{at}', '{at}')"
            )
        )
        command.upgrade(alembic_config(conn), "head")

    def after(conn: Connection) -> list[Any]:
        return [
            conn.execute(
                text("SELECT record_id, treating_physician, consent_by FROM records")
            ).all(),
            conn.execute(text("SELECT actor_value FROM consents")).scalars().all(),
        ]

    async def go() -> list[Any]:
        engine = create_engine(settings)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(before)
            async with engine.connect() as conn:
                return await conn.run_sync(after)
        finally:
            await engine.dispose()

    try:
        rows, consents = asyncio.run(go())
    finally:
        if dbname and PG_URL:
            asyncio.run(_drop_database(PG_URL, dbname))
    assert [tuple(r) for r in rows] == [("r1", "rpps:810000000009", "rpps:810000000009")]
    assert consents == ["810000000009"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_0009_goes_down_and_up_again(backend: str, tmp_path: Path) -> None:
    """Migration 0009 (folders, entryUUIDs) reverts to 0008 and applies again, leaving the
    schema of tables.py."""
    from alembic import command

    from carnet.store.db import alembic_config

    settings, dbname = make_settings(backend, tmp_path)

    async def go() -> tuple[set[str], list[Any]]:
        engine = create_engine(settings)
        try:
            await migrate(engine)
            async with engine.begin() as conn:
                await conn.run_sync(lambda c: command.downgrade(alembic_config(c), "0008"))
                down = await conn.run_sync(
                    lambda c: set(MigrationContext.configure(c).impl.dialect.get_table_names(c))
                )
                await conn.run_sync(lambda c: command.upgrade(alembic_config(c), "head"))
            async with engine.connect() as conn:
                return down, await conn.run_sync(_diff)
        finally:
            await engine.dispose()

    try:
        down, diff = asyncio.run(go())
    finally:
        if dbname and PG_URL:
            asyncio.run(_drop_database(PG_URL, dbname))
    assert "folders" not in down and "folder_documents" not in down
    assert diff == []
