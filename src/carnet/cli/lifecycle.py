"""``carnet purge`` and ``carnet backup``: the operator's lifecycle tasks."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import Progress

from carnet.access.scoped import Scope
from carnet.cli.serve import _settings
from carnet.domain.actors import Actor, ActorKind
from carnet.services import Services

console = Console(stderr=True)
OPERATOR = Actor(kind=ActorKind.SYSTEM, subject="carnet-purge", issuer="carnet")


def purge(
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be destroyed."),
) -> None:
    """Destroy the records closed more than ten years ago (dmp.md §2)."""
    settings = _settings()

    async def go() -> int:
        services = await Services.start(settings)
        try:
            scope = Scope(services, OPERATOR, settings.base_url or "")
            due = await scope.due_for_purge()
            if dry_run:
                for record in due:
                    console.print(
                        f"would destroy Patient/{record.record_id} "
                        f"(closed {record.closed_at:%Y-%m-%d})"
                    )
                console.print(f"{len(due)} record(s) due for purge (dry run: nothing changed)")
                return len(due)
            with Progress(console=console) as progress:
                task = progress.add_task("purging", total=len(due))
                for record in due:
                    await scope.purge(record)
                    progress.advance(task)
            console.print(f"{len(due)} record(s) destroyed")
            return len(due)
        finally:
            await services.close()

    asyncio.run(go())


def backup(
    destination: Path = typer.Argument(..., help="An empty or new folder for the backup."),
) -> None:
    """Back up the embedded store (SQLite + content) without the key store.

    A data backup holds only ciphertext: the record keys stay in the key store, backed up on
    its own schedule, so that destroying a record's key destroys every copy of its content.
    On PostgreSQL, back the database up with pg_dump and copy the content folder.
    """
    settings = _settings()
    if settings.is_postgresql:
        console.print(
            "[red]carnet backup copies the embedded SQLite store;[/red] on PostgreSQL "
            "use pg_dump and copy CARNET_DATA_DIR/content"
        )
        raise typer.Exit(2)
    if destination.exists() and any(destination.iterdir()):
        console.print(f"[red]{destination} is not empty[/red]")
        raise typer.Exit(2)
    source = settings.data_dir / "carnet.sqlite"
    if not source.exists():
        console.print(f"[red]no store at {source}[/red]")
        raise typer.Exit(2)
    destination.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(source) as conn:
        conn.execute("VACUUM INTO ?", (str(destination / "carnet.sqlite"),))
    if settings.content_dir.exists():
        shutil.copytree(
            settings.content_dir, destination / "content", ignore=shutil.ignore_patterns(".tmp")
        )
    console.print(f"backup written to {destination} (keys excluded)")
