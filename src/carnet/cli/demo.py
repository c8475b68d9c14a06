"""``carnet demo --patients N --documents M``: a population to measure on, generated
(carnet/demo/population.py) and written through the operator's bulk import (the core's
``scope.imports``: COPY on PostgreSQL), into the configured database (CARNET_DATABASE_URL,
CARNET_DATA_DIR), before or while the server runs."""

from __future__ import annotations

import asyncio
import csv
import multiprocessing
import time
from collections import deque
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from carnet.demo.population import Patient, Population, make_batch
from carnet.domain.actors import Actor, ActorKind
from carnet.domain.errors import CoreError
from carnet.domain.imports import ImportedRecord, ImportResult
from carnet.settings import Settings

console = Console(stderr=True)
OPERATOR = Actor(kind=ActorKind.OPERATOR, subject="carnet-demo", issuer="carnet")


async def generate(
    settings: Settings,
    patients: int,
    documents: int,
    *,
    seed: int = 1,
    identities: Path | None = None,
    batch: int = 250,
    progress: bool = True,
    workers: int = 0,
    in_flight: int = 3,
) -> tuple[int, int, int]:
    """Generate and import; (records, documents, traces) written."""
    from carnet.access.core import Core
    from carnet.demo.population import CSV_HEADER, patient_rows, professional_rows

    population = Population(patients, documents, seed=seed)
    core = await Core.start(replace(settings, allow_test_ins=True))
    fh = identities.open("w", newline="", encoding="utf-8") if identities else None
    done = [0, 0, 0]
    try:
        writer = csv.writer(fh) if fh else None
        if writer is not None:
            writer.writerow(CSV_HEADER)
            writer.writerows(professional_rows(population.professionals))
        imports = core.scope(OPERATOR).imports
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
            # ``in_flight`` batches at once: one is prepared (generated, validated, sealed,
            # encrypted: Python) while another is written (COPY: PostgreSQL)
            flying: deque[tuple[list[Patient], asyncio.Task[ImportResult]]] = deque()

            async def land() -> None:
                people, task = flying.popleft()
                result = await task
                if writer is not None:
                    writer.writerows(patient_rows(people))
                done[0] += len(result.record_ids)
                done[1] += result.documents
                done[2] += result.traces
                bar.update(task_p, completed=done[0])
                bar.update(task_d, completed=done[1])

            try:
                async for people, records in _made(population, batch, workers):
                    flying.append((people, asyncio.create_task(imports.load(records))))
                    await asyncio.sleep(0)  # let it start before the next batch is made
                    if len(flying) >= in_flight:
                        await land()
                while flying:
                    await land()
            finally:
                for _, task in flying:
                    task.cancel()
                await asyncio.gather(*(t for _, t in flying), return_exceptions=True)
    finally:
        if fh is not None:
            fh.close()
        await core.close()
    return done[0], done[1], done[2]


async def _made(
    population: Population, size: int, workers: int
) -> AsyncIterator[tuple[list[Patient], list[ImportedRecord]]]:
    """The population's batches in order, made ahead by ``workers`` processes (none: here)
    while the previous ones are written."""
    if workers < 1:
        for made in population.batches(size):
            yield made
        return
    loop = asyncio.get_running_loop()
    starts = iter(range(0, population.patients, size))
    ahead: deque[asyncio.Future[tuple[list[Patient], list[ImportedRecord]]]] = deque()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:

        def submit() -> None:
            start = next(starts, None)
            if start is not None:
                args = (population.patients, population.documents, population.seed, start, size)
                ahead.append(loop.run_in_executor(pool, make_batch, *args))

        for _ in range(workers + 2):
            submit()
        while ahead:
            made = await ahead.popleft()
            submit()
            yield made


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
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=0,
            help="processes generating ahead of the writes (0: none; slower on 2 cores)",
        ),
    ] = 0,
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
                workers=workers,
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
