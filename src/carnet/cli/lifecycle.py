"""``carnet purge``, ``purge-uploads`` and ``backup``: the operator's lifecycle tasks."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import Progress

from carnet.access.core import Core
from carnet.cli.serve import _settings
from carnet.domain.actors import Actor, ActorKind
from carnet.domain.errors import CoreError

console = Console(stderr=True)
OPERATOR = Actor(kind=ActorKind.OPERATOR, subject="carnet-purge", issuer="carnet")


def purge(
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be destroyed."),
) -> None:
    """Destroy the records closed more than ten years ago (dmp.md §2)."""
    settings = _settings()

    async def go() -> int:
        core = await Core.start(settings)
        try:
            lifecycle = core.scope(OPERATOR).lifecycle
            due = await lifecycle.due_for_purge()
            if dry_run:
                for record_id in due:
                    console.print(f"would destroy Patient/{record_id}")
                console.print(f"{len(due)} record(s) due for purge (dry run: nothing changed)")
                return len(due)
            with Progress(console=console) as progress:
                task = progress.add_task("purging", total=len(due))
                for record_id in due:
                    await lifecycle.purge(record_id)
                    progress.advance(task)
            console.print(f"{len(due)} record(s) destroyed")
            return len(due)
        finally:
            await core.close()

    asyncio.run(go())


def purge_uploads(
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be removed."),
) -> None:
    """Remove raw uploads (Binary) that no document named within CARNET_STAGED_MAX_AGE.

    The server does it every CARNET_STAGED_PURGE_INTERVAL seconds; this runs it now (from cron
    when the interval is 0). Each removal is the operator's decision, traced in the record.
    """
    settings = _settings()

    async def go() -> int:
        core = await Core.start(settings)
        try:
            if dry_run:
                due = await core.scope(OPERATOR).lifecycle.stale_uploads(
                    timedelta(seconds=settings.staged_max_age_seconds)
                )
                for record_id, binary_id in due:
                    console.print(f"would remove Binary/{binary_id} of Patient/{record_id}")
                console.print(f"{len(due)} upload(s) due (dry run: nothing changed)")
                return len(due)
            removed = await core.purge_stale_uploads(OPERATOR)
            console.print(f"{removed} abandoned upload(s) removed")
            return removed
        finally:
            await core.close()

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
    try:
        console.print(Core.backup(settings, destination))
    except CoreError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(2) from None
