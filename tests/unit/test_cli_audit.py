"""``carnet audit verify``: 0 on intact chains; 1 after someone with database access drops the
append-only trigger and edits a trace, naming the record and the seq; 2, readably, when it
cannot run."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from typer.testing import CliRunner

from carnet.cli.main import app
from carnet.domain.actors import Actor, ActorKind
from carnet.domain.traces import trace_event
from carnet.settings import Settings
from carnet.store.db import create_engine, migrate
from carnet.store.trace_chain import append_events
from tests.conftest import PG_URL, _drop_database, make_settings

PRO = Actor(ActorKind.PROFESSIONAL, "sub", "test", rpps="810000000001", profession="10")
RECORD = "0123456789abcdef0123456789abcdef"


@pytest.fixture()
def settings(backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    made, dbname = make_settings(backend, tmp_path / "data")
    monkeypatch.setenv("CARNET_DATA_DIR", str(made.data_dir))
    if made.database_url:
        monkeypatch.setenv("CARNET_DATABASE_URL", made.database_url)
    else:
        monkeypatch.delenv("CARNET_DATABASE_URL", raising=False)
    yield made
    if dbname and PG_URL:
        asyncio.run(_drop_database(PG_URL, dbname))


async def _fill(settings: Settings) -> None:
    engine = create_engine(settings)
    try:
        await migrate(engine)
        for n in range(3):
            async with engine.begin() as conn:
                await append_events(
                    conn,
                    [
                        trace_event(PRO, f"document.read.{n}", RECORD, allowed=True),
                        trace_event(PRO, "record.create", None, allowed=False),
                    ],
                )
    finally:
        await engine.dispose()


async def _pg_tamper(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute("DROP TRIGGER audit_events_append_only ON audit_events")
        await conn.execute(sql)
    finally:
        await conn.close()


def tamper(settings: Settings, sql: str) -> None:
    """Bypass the application: a raw connection, the trigger dropped, the table changed."""
    if settings.database_url:
        asyncio.run(_pg_tamper(settings.database_url, sql))
        return
    raw = sqlite3.connect(settings.data_dir / "carnet.sqlite")
    try:
        raw.execute("DROP TRIGGER audit_events_no_update")
        raw.execute("DROP TRIGGER audit_events_no_delete")
        raw.execute(sql)
        raw.commit()
    finally:
        raw.close()


def test_intact_chains_exit_0(settings: Settings) -> None:
    asyncio.run(_fill(settings))
    result = CliRunner().invoke(app, ["audit", "verify"])
    assert result.exit_code == 0, result.output
    assert "chains checked: 2" in result.stdout
    assert "events checked: 6" in result.stdout  # the verify is traced once it is done
    assert "all chains intact" in result.stdout


def test_an_edited_trace_exits_1_and_names_record_and_seq(settings: Settings) -> None:
    asyncio.run(_fill(settings))
    tamper(
        settings,
        f"UPDATE audit_events SET detail = 'nothing happened' "
        f"WHERE record_id = '{RECORD}' AND seq = 2",
    )
    result = CliRunner().invoke(app, ["audit", "verify"])
    assert result.exit_code == 1, result.output
    assert f"record {RECORD} seq 2 " in result.stdout
    assert "hash" in result.stdout and "edited" in result.stdout
    assert "1 problem(s) in 1 chain(s)" in result.stdout
    assert "Traceback" not in result.output


def test_a_removed_trace_exits_1(settings: Settings) -> None:
    asyncio.run(_fill(settings))
    tamper(settings, "DELETE FROM audit_events WHERE record_id = '' AND seq = 1")
    result = CliRunner().invoke(app, ["audit", "verify"])
    assert result.exit_code == 1, result.output
    assert "record (no record) seq 2 " in result.stdout
    assert "gap" in result.stdout and "removed" in result.stdout


def test_limit_shortens_the_list(settings: Settings) -> None:
    asyncio.run(_fill(settings))
    tamper(settings, f"UPDATE audit_events SET detail = 'x' WHERE record_id = '{RECORD}'")
    result = CliRunner().invoke(app, ["audit", "verify", "--limit", "1", "--no-progress"])
    assert result.exit_code == 1, result.output
    assert "3 problem(s) in 1 chain(s)" in result.stdout
    assert "… and 2 more" in result.stdout


def test_no_database_is_a_readable_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARNET_DATA_DIR", str(tmp_path / "nowhere"))
    monkeypatch.delenv("CARNET_DATABASE_URL", raising=False)
    result = CliRunner().invoke(app, ["audit", "verify"])
    assert result.exit_code == 2
    assert "no database at" in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "nowhere" / "carnet.sqlite").exists()


def test_an_unmigrated_database_is_a_readable_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data").mkdir()
    sqlite3.connect(tmp_path / "data" / "carnet.sqlite").close()
    monkeypatch.setenv("CARNET_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("CARNET_DATABASE_URL", raising=False)
    result = CliRunner().invoke(app, ["audit", "verify"])
    assert result.exit_code == 2
    assert "carnet migrate" in result.stderr
    assert "Traceback" not in result.output


def test_verify_is_listed_in_help() -> None:
    result = CliRunner().invoke(app, ["audit", "--help"])
    assert result.exit_code == 0
    assert "verify" in result.stdout
