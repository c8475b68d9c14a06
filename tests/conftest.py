"""Test fixtures: backends, a real HTTP server per backend, tokens, factories.

Every test that takes ``server`` runs on SQLite, and again on PostgreSQL when
CARNET_TEST_DATABASE_URL is set (``make test`` sets it when a server answers on 127.0.0.1:5432).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from sqlalchemy.ext.asyncio import AsyncEngine

from carnet.access.core import Core
from carnet.app import create_app
from carnet.settings import Settings
from carnet.store.db import create_engine
from tests.factories import Factory

T = TypeVar("T")

PG_URL = os.environ.get("CARNET_TEST_DATABASE_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])


async def found_at_rest(settings: Settings, needle: str) -> list[str]:
    """Where ``needle`` (or its hex form, as bytea prints) can be read in the database behind
    the API's back: the bytes of the SQLite files (database, WAL), or on PostgreSQL the text of
    every row of every table (every text and bytea column). Empty: nowhere."""
    from sqlalchemy import text

    from carnet.store.tables import metadata

    raw = needle.encode()
    if not settings.sqlalchemy_url.startswith("postgresql"):
        db = settings.data_dir / "carnet.sqlite"
        files = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
        return [f.name for f in files if f.exists() and raw in f.read_bytes()]
    found: list[str] = []
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            for table in metadata.sorted_tables:
                hits = await conn.execute(
                    text(
                        f"SELECT count(*) FROM {table.name} t "
                        "WHERE strpos(t::text, :needle) > 0 OR strpos(t::text, :hex) > 0"
                    ),
                    {"needle": needle, "hex": raw.hex()},
                )
                if hits.scalar_one():
                    found.append(table.name)
    finally:
        await engine.dispose()
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _create_database(admin_url: str, name: str) -> str:
    import asyncpg

    plain = admin_url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(plain)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base, _, _db = plain.rpartition("/")
    return f"{base}/{name}"


async def _drop_database(admin_url: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def make_settings(backend: str, data_dir: Path, **overrides: object) -> tuple[Settings, str | None]:
    database_url = None
    dbname = None
    if backend == "postgresql":
        assert PG_URL
        dbname = f"carnet_test_{secrets.token_hex(4)}"
        database_url = asyncio.run(_create_database(PG_URL, dbname))
    values: dict[str, object] = {
        "data_dir": data_dir,
        "database_url": database_url,
        "dev_issuer": True,
        "allow_test_ins": True,
    }
    values.update(overrides)
    return Settings(**values), dbname  # type: ignore[arg-type]


class Server:
    def __init__(self, settings: Settings) -> None:
        self.port = _free_port()
        # the address it listens on is its public address unless CARNET_BASE_URL says otherwise
        self.settings = settings = replace(settings, host="127.0.0.1", port=self.port)
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(settings),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.server.started:
                return
            time.sleep(0.05)
        raise RuntimeError("server did not start")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@contextmanager
def running_server(backend: str, data_dir: Path, **overrides: Any) -> Iterator[Server]:
    """A server of its own (its database and data folder), stopped and its database dropped
    at the end."""
    settings, dbname = make_settings(backend, data_dir, **overrides)
    srv = Server(settings)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
        if dbname and PG_URL:
            asyncio.run(_drop_database(PG_URL, dbname))


def on_database(server: Server, work: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``work(conn)`` in a transaction on the server's database (what a test checks
    behind the API's back)."""

    async def go() -> T:
        engine = create_engine(server.settings)
        try:
            async with engine.begin() as conn:
                return await work(conn)
        finally:
            await engine.dispose()

    return asyncio.run(go())


@pytest.fixture(scope="session")
def server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(backend, tmp_path_factory.mktemp(f"carnet-{backend}")) as srv:
        yield srv


@pytest.fixture()
def settings(backend: str, tmp_path: Path) -> Iterator[Settings]:
    """A fresh database (and data folder) per test, on the backend of the session."""
    made, dbname = make_settings(backend, tmp_path / "data")
    yield made
    if dbname and PG_URL:
        asyncio.run(_drop_database(PG_URL, dbname))


@pytest.fixture()
async def core(settings: Settings) -> AsyncIterator[Core]:
    """The core started in-process on ``settings`` (no HTTP server)."""
    started = await Core.start(settings)
    try:
        yield started
    finally:
        await started.close()


@pytest.fixture()
async def engine(core: Core) -> AsyncIterator[AsyncEngine]:
    """A database engine on the same store as ``core`` (for tests that look at the rows)."""
    made = create_engine(core.settings)
    try:
        yield made
    finally:
        await made.dispose()


@pytest.fixture()
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


@pytest.fixture()
def factory(http: httpx.Client) -> Factory:
    return Factory(http)
