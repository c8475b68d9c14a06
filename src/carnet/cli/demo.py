"""``carnet demo --patients N --documents M``: a population to measure on, generated
(carnet/demo/population.py) and written through the operator's bulk import (the core's
``scope.imports``: COPY on PostgreSQL), into the configured database (CARNET_DATABASE_URL,
CARNET_DATA_DIR), before or while the server runs."""

from __future__ import annotations

import asyncio
import csv
import time
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from carnet.domain.actors import Actor, ActorKind
from carnet.domain.errors import CoreError
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
    batch: int = 500,
    progress: bool = True,
) -> tuple[int, int, int]:
    """Generate and import; (records, documents, traces) written."""
    from carnet.access.core import Core
    from carnet.demo.population import (
        CSV_HEADER,
        Population,
        patient_rows,
        professional_rows,
    )

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
            for people, records in population.batches(batch):
                result = await imports.load(records)
                if writer is not None:
                    writer.writerows(patient_rows(people))
                done[0] += len(result.record_ids)
                done[1] += result.documents
                done[2] += result.traces
                bar.update(task_p, completed=done[0])
                bar.update(task_d, completed=done[1])
    finally:
        if fh is not None:
            fh.close()
        await core.close()
    return done[0], done[1], done[2]


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
    batch: Annotated[int, typer.Option("--batch", min=1, help="patients per transaction")] = 500,
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
            generate(settings, patients, documents, seed=seed, identities=identities, batch=batch)
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
