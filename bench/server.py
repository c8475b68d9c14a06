"""The server under test: a throw-away database and data directory, and uvicorn in a subprocess
(so that the load generator does not share the server's process or GIL)."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.sysinfo import REPO

PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def postgres_answers(host: str = LOOPBACK, port: int = 5432, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _pg_base(dsn: str) -> str:
    return dsn.rsplit("/", 1)[0]


async def create_database(admin_dsn: str) -> tuple[str, str]:
    """A fresh database: (name, DSN)."""
    import asyncpg

    name = f"carnet_bench_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name, f"{_pg_base(admin_dsn)}/{name}"


async def drop_database(admin_dsn: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


_DEV_KEY = (
    "import os; from pathlib import Path; from carnet.auth.dev_issuer import DevIssuer; "
    "DevIssuer.load_or_create(Path(os.environ['CARNET_DATA_DIR']), 'carnet', 3600)"
)

# The key store (a SQLite file beside the data unless CARNET_KEYSTORE_URL says otherwise) creates
# its table when a worker opens it: several workers starting at once race to create it, and the
# loser fails its start-up ("table record_keys already exists"), which stops uvicorn. Opened once
# here first. Tolerant of the internal API moving: the server would then create it as before.
_KEYSTORE = """
import asyncio
try:
    from carnet.settings import Settings
    from carnet.store.keystore import KeyStore
except ImportError as exc:
    print(f"key store not prepared: {exc}")
else:
    async def main():
        store = await KeyStore.open(Settings.from_env())
        await store.close()
    asyncio.run(main())
"""

PG_SETTINGS = (
    "shared_buffers",
    "max_connections",
    "synchronous_commit",
    "fsync",
    "wal_level",
    "autovacuum",
    "work_mem",
    "effective_cache_size",
)


async def postgres_info(dsn: str) -> dict[str, object]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        version = await conn.fetchval("SHOW server_version")
        full = await conn.fetchval("SELECT version()")
        settings = {
            row["name"]: row["setting"] + (row["unit"] or "")
            for row in await conn.fetch(
                "SELECT name, setting, unit FROM pg_settings WHERE name = ANY($1::text[])",
                list(PG_SETTINGS),
            )
        }
    finally:
        await conn.close()
    return {"server_version": version, "version": full, "settings": settings}


async def database_size(dsn: str) -> dict[str, int]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        size = await conn.fetchval("SELECT pg_database_size(current_database())")
        docs = await conn.fetchval(
            "SELECT coalesce(sum(n_live_tup), 0) FROM pg_stat_user_tables "
            "WHERE relname = 'documents'"
        )
    finally:
        await conn.close()
    return {"database_bytes": int(size), "documents_live_tuples": int(docs)}


_DB_COUNTERS = (
    "xact_commit",
    "xact_rollback",
    "tup_returned",
    "tup_fetched",
    "tup_inserted",
    "tup_updated",
    "tup_deleted",
    "blks_read",
    "blks_hit",
)


async def table_counters(dsn: str) -> dict[str, dict[str, int]]:
    """Rows inserted, updated and deleted so far, per table (pg_stat_user_tables)."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        rows = await conn.fetch(
            "SELECT relname, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables"
        )
    finally:
        await conn.close()
    return {
        r["relname"]: {
            "ins": int(r["n_tup_ins"]),
            "upd": int(r["n_tup_upd"]),
            "del": int(r["n_tup_del"]),
        }
        for r in rows
    }


def table_counters_per_request(
    before: dict[str, dict[str, int]], after: dict[str, dict[str, int]], requests: int
) -> dict[str, dict[str, float]]:
    """Per table, the rows inserted/updated/deleted per request (tables touched only)."""
    out: dict[str, dict[str, float]] = {}
    if not requests:
        return out
    for table, now in sorted(after.items()):
        then = before.get(table, {"ins": 0, "upd": 0, "del": 0})
        delta = {k: round((now[k] - then[k]) / requests, 2) for k in now}
        if any(delta.values()):
            out[table] = delta
    return out


async def database_counters(dsn: str) -> dict[str, int]:
    """pg_stat_database counters of the database (updated by backends at transaction end)."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        row = await conn.fetchrow(
            f"SELECT {', '.join(_DB_COUNTERS)} FROM pg_stat_database "
            "WHERE datname = current_database()"
        )
    finally:
        await conn.close()
    return {k: int(row[k] or 0) for k in _DB_COUNTERS} if row else {}


def counters_per_request(
    before: dict[str, int], after: dict[str, int], requests: int
) -> dict[str, float]:
    if not requests:
        return {}
    return {k: round((after[k] - before[k]) / requests, 2) for k in before if k in after}


@dataclass
class ServerProcess:
    backend: str
    workers: int
    admin_dsn: str = PG_ADMIN_DSN
    port: int = field(default_factory=free_port)
    data_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="carnet-bench-")))
    dbname: str | None = None
    dsn: str | None = None
    proc: subprocess.Popen[bytes] | None = None
    source_root: Path = REPO  # holds src/carnet (and tests/): the tree under test
    # run after the migrations, before the server starts, with the server's environment
    # (bench/population.py loads the population there)
    prepare: Callable[[dict[str, str]], None] | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "server.log"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "PYTHONPATH": f"{self.source_root / 'src'}{os.pathsep}{self.source_root}",
                "CARNET_DATA_DIR": str(self.data_dir),
                "CARNET_DEV_ISSUER": "1",
                "CARNET_ALLOW_TEST_INS": "1",
                "CARNET_HOST": LOOPBACK,
                "CARNET_PORT": str(self.port),
                "CARNET_WORKERS": str(self.workers),
                "CARNET_MASTER_KEY": secrets.token_hex(32),
            }
        )
        env.pop("CARNET_DATABASE_URL", None)
        if self.dsn:
            env["CARNET_DATABASE_URL"] = self.dsn
        return env

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "carnet.app:create_app",
            "--host",
            LOOPBACK,
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
            "--log-level",
            "warning",
            "--no-access-log",
        ]

    def start(self, timeout: float = 60.0) -> None:
        if self.backend == "postgresql":
            self.dbname, self.dsn = asyncio.run(create_database(self.admin_dsn))
        env = self.env()
        # Migrations, the dev issuer's key and the key store are prepared once, before the
        # workers start, so that several workers do not race to create them.
        for cmd in (
            [sys.executable, "-m", "carnet", "migrate"],
            [sys.executable, "-c", _DEV_KEY],
            [sys.executable, "-c", _KEYSTORE],
        ):
            done = subprocess.run(cmd, env=env, cwd=self.source_root, capture_output=True)
            if done.returncode:
                out = (done.stdout + done.stderr).decode(errors="replace")
                raise RuntimeError(f"{' '.join(cmd[1:3])} failed:\n{out[-3000:]}")
        if self.prepare is not None:
            self.prepare(env)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.command(), env=env, cwd=self.source_root, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.url, timeout=2) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited:\n{self.log_tail()}")
                try:
                    if client.get("/healthz").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        raise RuntimeError(f"server did not start in {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def log_error_count(self) -> int:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return 0
        return sum(1 for ln in text.splitlines() if "ERROR" in ln or ln.startswith("Traceback"))

    def log_first_errors(self, count: int = 3, context: int = 12) -> list[str]:
        """The first ``count`` error lines of the server log, each with the lines after it."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return []
        out: list[str] = []
        i = 0
        while i < len(lines) and len(out) < count:
            if "ERROR" in lines[i] or lines[i].startswith("Traceback"):
                out.append("\n".join(lines[i : i + context]))
                i += context
            else:
                i += 1
        return out

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.dbname:
            asyncio.run(drop_database(self.admin_dsn, self.dbname))
            self.dbname = None

    def cleanup(self) -> None:
        shutil.rmtree(self.data_dir, ignore_errors=True)
