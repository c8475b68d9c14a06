"""``carnet audit verify`` at speed (docs/traces.md): a fresh database filled with N hash-chained
trace events (chained by carnet.domain.traces.extend, loaded by COPY / executemany), then, in
rounds that alternate, the CLI as a user runs it (a subprocess, CARNET_DATABASE_URL), the core's
call in process, and a minimal script (the same columns in the same order, one SHA-256 per
event, no check). Writes bench/results/<date>-audit-verify-<backend>.json.

    .venv/bin/python -m bench.audit_verify                       # both backends
    .venv/bin/python -m bench.audit_verify --backend postgresql --events 2000000
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import secrets
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from bench.sysinfo import REPO, git_state, machine, package_versions
from carnet.access.core import Core
from carnet.domain.actors import Actor, ActorKind
from carnet.domain.traces import ChainedEvent, extend, trace_event
from carnet.settings import Settings
from carnet.store.audit_scan import PG_QUERY, SQLITE_SQL
from carnet.store.trace_chain import EVENT_COLUMNS

MEASURED = ("cli", "cli_jobs_1", "core")
PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"
TARGET = 500_000  # entries/s
OPERATOR = Actor(kind=ActorKind.OPERATOR, subject="bench-audit-verify", issuer="carnet")
PRO = Actor(ActorKind.PROFESSIONAL, "sub-pro", "bench", rpps="810000000001", profession="10")
ACTIONS = ("document.read", "document.search", "record.read", "document.create")


HEADS_SQL = (
    "INSERT INTO audit_heads (record_id, seq, hash) SELECT e.record_id, e.seq, e.hash "
    "FROM audit_events e JOIN (SELECT record_id, max(seq) AS seq FROM audit_events "
    "GROUP BY record_id) m ON m.record_id = e.record_id AND m.seq = e.seq"
)


def events(n: int, records: int) -> list[ChainedEvent]:
    """n events over ``records`` records, chained by the project's own code."""
    rids = [f"rec-{i:07d}" for i in range(records)]
    made = [
        trace_event(
            PRO,
            ACTIONS[i % 4],
            rids[i % records],
            allowed=i % 7 != 0,
            rule="professional.care",
            doc_id=f"doc-{i}" if i % 3 else None,
            detail="returned 3 events" if i % 5 == 0 else None,
        )
        for i in range(n)
    ]
    chained, _ = extend({}, sorted(made, key=lambda e: e.record_id))
    return chained


async def migrate(settings: Settings) -> None:
    core = await Core.start(settings)
    await core.close()


async def load_pg(dsn: str, chained: list[ChainedEvent]) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        rows = [tuple(c.row()[k] for k in EVENT_COLUMNS) for c in chained]
        await conn.copy_records_to_table("audit_events", records=rows, columns=EVENT_COLUMNS)
        await conn.execute(HEADS_SQL)  # as the write path leaves them: one per chain
        await conn.execute("ANALYZE audit_events")
        await conn.execute("ANALYZE audit_heads")
    finally:
        await conn.close()


def load_sqlite(path: Path, chained: list[ChainedEvent]) -> None:
    db = sqlite3.connect(path)
    cols = ", ".join(EVENT_COLUMNS)
    marks = ", ".join("?" for _ in EVENT_COLUMNS)
    rows = []
    for c in chained:
        r = c.row()
        r["recorded_at"] = r["recorded_at"].isoformat(" ", "microseconds")  # SQLAlchemy's form
        rows.append(tuple(r[k] for k in EVENT_COLUMNS))
    with db:
        db.executemany(f"INSERT INTO audit_events ({cols}) VALUES ({marks})", rows)
        db.execute(HEADS_SQL)
    db.close()


# -- the three ways ------------------------------------------------------------------------------
def run_cli(url: str, data_dir: Path, *options: str) -> tuple[float, str]:
    env = dict(os.environ, CARNET_DATABASE_URL=url, CARNET_DATA_DIR=str(data_dir))
    cmd = [str(Path(sys.executable).with_name("carnet")), "audit", "verify", "--no-progress"]
    cmd += options
    t0 = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"carnet audit verify exited {out.returncode}: {out.stdout}{out.stderr}")
    return seconds, out.stdout


async def run_core(settings: Settings) -> tuple[float, int]:
    t0 = time.perf_counter()
    core = await Core.start(settings, run_migrations=False)
    try:
        report = await core.scope(OPERATOR).traces.verify()
    finally:
        await core.close()
    assert report.ok, report.problems[:3]
    return time.perf_counter() - t0, report.events


async def minimal_pg(dsn: str) -> tuple[float, int]:
    """asyncpg, the same COPY, one SHA-256 per line over prev_hash and the rest; no check."""
    t0 = time.perf_counter()
    conn = await asyncpg.connect(dsn)
    n = 0
    tail = b""
    sha256 = hashlib.sha256

    async def sink(data: bytes) -> None:
        nonlocal n, tail
        chunk = tail + data if tail else bytes(data)
        end = chunk.rfind(b"\n") + 1
        tail = chunk[end:]
        lines = chunk[:end].split(b"\n")
        lines.pop()
        for line in lines:
            prev, _digest, rest = line.split(b"\t", 2)
            sha256(prev + rest).hexdigest()
        n += len(lines)

    try:
        await conn.copy_from_query(PG_QUERY, output=sink)
    finally:
        await conn.close()
    return time.perf_counter() - t0, n


def minimal_sqlite(path: Path) -> tuple[float, int]:
    """sqlite3, the same SELECT, orjson's canonical form and one SHA-256 per row; no check."""
    t0 = time.perf_counter()
    db = sqlite3.connect(path)
    n = 0
    sha256, dumps = hashlib.sha256, orjson.dumps
    cur = db.execute(SQLITE_SQL)
    while rows := cur.fetchmany(20_000):
        for row in rows:
            sha256(row[0] + dumps(row[2:])).hexdigest()
        n += len(rows)
    db.close()
    return time.perf_counter() - t0, n


# -- a backend -----------------------------------------------------------------------------------
async def bench_backend(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    n = args.events if backend == "postgresql" else args.sqlite_events
    records = args.records if backend == "postgresql" else max(1, args.records * n // args.events)
    tmp = Path(tempfile.mkdtemp(prefix="carnet-bench-verify-"))
    name = f"carnet_bench_verify_{secrets.token_hex(4)}"
    if backend == "postgresql":
        admin = await asyncpg.connect(args.pg_dsn)
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        dsn = args.pg_dsn.rsplit("/", 1)[0] + f"/{name}"
        url = dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
    else:
        dsn = ""
        url = f"sqlite+aiosqlite:///{tmp / 'carnet.sqlite'}"
    settings = Settings(data_dir=tmp, database_url=url)  # type: ignore[call-arg]
    try:
        await migrate(settings)
        t0 = time.perf_counter()
        chained = events(n, records)
        chain_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        if backend == "postgresql":
            await load_pg(dsn, chained)
        else:
            load_sqlite(tmp / "carnet.sqlite", chained)
        load_s = time.perf_counter() - t0
        del chained
        print(
            f"{backend}: {n} events over {records} records (chained {chain_s:.1f} s, "
            f"loaded {load_s:.1f} s)",
            flush=True,
        )
        times: dict[str, list[float]] = {"cli": [], "cli_jobs_1": [], "core": [], "minimal": []}
        for r in range(args.rounds):
            seconds, out = run_cli(url, tmp)
            assert "all chains intact" in out, out  # each run adds its own audit.verify trace
            times["cli"].append(seconds)
            seconds, out = run_cli(url, tmp, "--jobs", "1")
            assert "all chains intact" in out, out
            times["cli_jobs_1"].append(seconds)
            seconds, checked = await run_core(settings)
            assert checked >= n
            times["core"].append(seconds)
            if backend == "postgresql":
                seconds, checked = await minimal_pg(dsn)
            else:
                seconds, checked = minimal_sqlite(tmp / "carnet.sqlite")
            assert checked >= n
            times["minimal"].append(seconds)
            print(
                f"  round {r + 1}: "
                + ", ".join(f"{k} {v[-1]:.2f} s ({n / v[-1]:,.0f}/s)" for k, v in times.items()),
                flush=True,
            )
    finally:
        if backend == "postgresql":
            admin = await asyncpg.connect(args.pg_dsn)
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
    best = {k: min(v) for k, v in times.items()}
    rate = {k: round(n / s) for k, s in best.items()}
    return {
        "benchmark": "audit-verify",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "backend": backend,
        "machine": machine(),
        "git": git_state(),
        "packages": package_versions(["sqlalchemy", "asyncpg", "aiosqlite", "orjson"]),
        "parameters": {"events": n, "records": records, "rounds": args.rounds},
        "command": "carnet audit verify --no-progress (subprocess, CARNET_DATABASE_URL); "
        "cli_jobs_1: the same with --jobs 1 (one process; the default splits the chains over "
        "one process per core on PostgreSQL when there are more than 500,000 events); core: "
        "the core's call in process (default jobs); minimal: one process, no check",
        "seconds": {k: [round(s, 3) for s in v] for k, v in times.items()},
        "best_seconds": {k: round(s, 3) for k, s in best.items()},
        "entries_per_second": rate,
        "ratio_to_minimal": {k: round(rate[k] / rate["minimal"], 3) for k in MEASURED},
        "target_entries_per_second": TARGET,
        "target_met": {k: rate[k] >= TARGET for k in MEASURED},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--backend", choices=["postgresql", "sqlite", "both"], default="both")
    ap.add_argument("--events", type=int, default=2_000_000, help="PostgreSQL")
    ap.add_argument("--records", type=int, default=100_000, help="PostgreSQL")
    ap.add_argument("--sqlite-events", type=int, default=500_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pg-dsn", default=PG_ADMIN_DSN, help="admin DSN used to create databases")
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args(argv)
    backends = ["postgresql", "sqlite"] if args.backend == "both" else [args.backend]
    for backend in backends:
        doc = asyncio.run(bench_backend(backend, args))
        print(
            json.dumps(
                {k: doc[k] for k in ("entries_per_second", "ratio_to_minimal", "target_met")}
            )
        )
        if not args.no_write:
            out = REPO / "bench" / "results" / f"{doc['date'][:10]}-audit-verify-{backend}.json"
            out.write_text(json.dumps(doc, indent=2) + "\n")
            print(f"wrote {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
