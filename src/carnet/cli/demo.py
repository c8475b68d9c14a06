"""``carnet demo --patients N --documents M``: a population to measure on, generated
(carnet/demo/population.py) and written through the operator's bulk import (the core's
``scope.imports``: COPY on PostgreSQL), into the configured database (CARNET_DATABASE_URL,
CARNET_DATA_DIR), before or while the server runs."""

from __future__ import annotations

import asyncio
import csv
import multiprocessing
import os
import queue as queues
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from carnet.domain import errors
from carnet.domain.actors import Actor, ActorKind
from carnet.domain.errors import CoreError
from carnet.domain.imports import ImportResult
from carnet.settings import Settings

console = Console(stderr=True)
OPERATOR = Actor(kind=ActorKind.OPERATOR, subject="carnet-demo", issuer="carnet")


Report = Callable[[int, int, int, int], None]  # batch start, records, documents, traces
Args = tuple[Settings, int, int, int, int, int]  # settings, patients, documents, seed, batch, …


async def generate(
    settings: Settings,
    patients: int,
    documents: int,
    *,
    seed: int = 1,
    identities: Path | None = None,
    batch: int = 250,
    progress: bool = True,
    jobs: int = 1,
    in_flight: int = 3,
) -> tuple[int, int, int]:
    """Generate and import; (records, documents, traces) written. ``jobs`` processes import
    (each every ``jobs``-th batch: this one, and ``jobs - 1`` others)."""
    from carnet.demo.population import CSV_HEADER, Population, patient_rows, professional_rows

    population = Population(patients, documents, seed=seed)
    fh = identities.open("w", newline="", encoding="utf-8") if identities else None
    done = [0, 0, 0]
    try:
        writer = csv.writer(fh) if fh else None
        if writer is not None:
            writer.writerow(CSV_HEADER)
            writer.writerows(professional_rows(population.professionals))
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=not progress,
        ) as bar:
            task_p = bar.add_task("patients", total=patients)
            task_d = bar.add_task("documents", total=documents)

            def report(start: int, records: int, docs: int, traces: int) -> None:
                if writer is not None:
                    writer.writerows(patient_rows(population.people(start, batch)))
                done[0] += records
                done[1] += docs
                done[2] += traces
                bar.update(task_p, completed=done[0])
                bar.update(task_d, completed=done[1])

            args: Args = (settings, patients, documents, seed, batch, in_flight)
            if jobs <= 1:
                await import_part(*args, 0, 1, report)
            else:
                await _in_processes(args, jobs, report)
    finally:
        if fh is not None:
            fh.close()
    return done[0], done[1], done[2]


async def import_part(
    settings: Settings,
    patients: int,
    documents: int,
    seed: int,
    batch: int,
    in_flight: int,
    part: int,
    parts: int,
    report: Report,
) -> None:
    """Import the batches ``part``, ``part + parts``, … of the population, ``in_flight`` at
    once: one is prepared (generated, validated, sealed, encrypted: Python) while others are
    written (COPY: PostgreSQL)."""
    from carnet.access.core import Core
    from carnet.demo.population import Population  # fpdf: only when generating

    population = Population(patients, documents, seed=seed)
    counts = population.counts()
    core = await Core.start(replace(settings, allow_test_ins=True))
    imports = core.scope(OPERATOR).imports
    flying: deque[tuple[int, asyncio.Task[ImportResult]]] = deque()

    async def land() -> None:
        start, task = flying.popleft()
        result = await task
        report(start, len(result.record_ids), result.documents, result.traces)

    try:
        starts = range(part * batch, patients, parts * batch)
        for start in starts:
            _, records = population.batch(start, batch, counts)
            flying.append((start, asyncio.create_task(imports.load(records))))
            await asyncio.sleep(0)  # let it start before the next batch is made
            if len(flying) >= in_flight:
                await land()
        while flying:
            await land()
    finally:
        for _, task in flying:
            task.cancel()
        await asyncio.gather(*(t for _, t in flying), return_exceptions=True)
        await core.close()


def _child(args: Args, part: int, parts: int, queue: Any, parent: int) -> None:
    """A process importing its part; progress, then its end or the core's refusal, through
    ``queue``. It stops when its parent is gone (killed: nobody would follow it any more)."""

    def report(start: int, records: int, docs: int, traces: int) -> None:
        if os.getppid() != parent:
            raise SystemExit(1)
        queue.put(("progress", part, (start, records, docs, traces)))

    try:
        asyncio.run(import_part(*args, part, parts, report))
    except CoreError as exc:
        queue.put(("refused", part, (type(exc).__name__, exc.message, exc.field or "")))
        return
    queue.put(("done", part, None))


async def _in_processes(args: Args, jobs: int, report: Report) -> None:
    """Parts 1… in spawned processes, part 0 here. If this process stops (an error, Ctrl-C,
    SIGTERM), so do the others, at once."""
    context = multiprocessing.get_context("spawn")
    queue: Any = context.Queue()
    children = [
        context.Process(target=_child, args=(args, part, jobs, queue, os.getpid()), daemon=True)
        for part in range(1, jobs)
    ]
    ended: dict[int, tuple[str, ...] | None] = {}

    def drain() -> None:
        while True:
            try:
                kind, part, value = queue.get_nowait()
            except queues.Empty:
                return
            if kind == "progress":
                report(*value)
            else:
                ended[part] = value

    async def follow() -> None:
        while True:
            await asyncio.sleep(0.2)
            drain()

    previous = signal.signal(signal.SIGTERM, _terminated)
    for child in children:
        child.start()
    follower = asyncio.create_task(follow())
    try:
        await import_part(*args, 0, jobs, report)
        while len(ended) < len(children):
            await asyncio.sleep(0.2)
            drain()
            if len(ended) < len(children) and any(
                not c.is_alive() and c.exitcode for c in children
            ):
                drain()
                if len(ended) < len(children):
                    raise errors.CoreError("an importing process stopped; see its output above")
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)
        for child in children:
            if child.is_alive():
                child.terminate()
            child.join(timeout=10)
        signal.signal(signal.SIGTERM, previous)
    drain()
    refusals = [r for r in ended.values() if r is not None]
    if refusals:
        kind, message, field = refusals[0]
        raise getattr(errors, kind, errors.CoreError)(message, field=field or None)


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def demo(
    patients: Annotated[int, typer.Option("--patients", min=1, help="patients to generate")],
    documents: Annotated[int, typer.Option("--documents", min=0, help="documents, in all")],
    identities: Annotated[
        Path | None,
        typer.Option(
            "--identities",
            help="write the identities load generators need to this CSV file "
            "(kind,id,oid,profession,specialty,structure)",
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", help="the same seed makes the same population")
    ] = 1,
    batch: Annotated[int, typer.Option("--batch", min=1, help="patients per transaction")] = 250,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            min=1,
            help="processes importing at once [default: 2 on PostgreSQL, 1 on SQLite]",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Generate a population to measure on (fictional patients with test INS, professionals of
    every profession, authorisations, blocks, masked documents, CDA and PDF documents) and load
    it in bulk into the configured database, before or while the server runs. Records are
    added: a second run needs another --seed."""
    try:
        settings = Settings.from_env()
    except CoreError as exc:
        console.print(f"[red]configuration error:[/red] {exc.message}")
        raise typer.Exit(2) from None
    start = time.perf_counter()
    try:
        records, docs, traces = asyncio.run(
            generate(
                settings,
                patients,
                documents,
                seed=seed,
                identities=identities,
                batch=batch,
                jobs=jobs or (2 if settings.sqlalchemy_url.startswith("postgresql") else 1),
            )
        )
    except CoreError as exc:
        where = f" ({exc.field})" if getattr(exc, "field", None) else ""
        console.print(f"[red]refused:[/red] {exc.message}{where}")
        raise typer.Exit(1) from None
    seconds = time.perf_counter() - start
    rate = docs / seconds if seconds else 0.0
    console.print(
        f"{records} records, {docs} documents, {traces} traces in {seconds:.1f} s "
        f"({rate:,.0f} documents/s)" + (f"; identities in {identities}" if identities else "")
    )
