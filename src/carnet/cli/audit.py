"""``carnet audit``: check the traces (docs/traces.md).

``carnet audit verify`` walks every hash chain of the ``audit_events`` table and prints what is
broken and where. Exit codes: 0 all chains intact, 1 a problem was found, 2 the check could not
run (configuration, database).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from carnet.access.core import Core
from carnet.domain.actors import Actor, ActorKind
from carnet.domain.audit_verify import VerifyReport
from carnet.domain.errors import CoreError
from carnet.settings import Settings

app = typer.Typer(
    help="Check the traces: every action and denial, hash-chained per record.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]carnet audit verify:[/red] {escape(message)}")
    return typer.Exit(code=2)


def _where(settings: Settings) -> str:
    url = settings.sqlalchemy_url
    return url.split("@")[-1] if "@" in url else url.split("///", 1)[-1]


OPERATOR = Actor(kind=ActorKind.OPERATOR, subject="carnet-audit-verify", issuer="carnet")


async def _run(settings: Settings, show_progress: bool, jobs: int | None) -> VerifyReport:
    core = await Core.start(settings, run_migrations=False)
    try:
        with Progress(
            TextColumn("verifying traces"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=True,
            disable=not show_progress,
        ) as bar:
            task = bar.add_task("verify", total=None)
            return await core.scope(OPERATOR).traces.verify(
                progress=lambda done, total: bar.update(task, completed=done, total=total),
                jobs=jobs,
            )
    finally:
        await core.close()


@app.command("verify")
def verify(
    limit: Annotated[
        int,
        typer.Option("--limit", min=0, help="List at most this many problems (0: all)."),
    ] = 100,
    progress: Annotated[
        bool | None,
        typer.Option(
            "--progress/--no-progress",
            help="Show a progress bar (default: when stderr is a terminal).",
        ),
    ] = None,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs",
            min=0,
            help="Processes checking the chains on PostgreSQL (0: one per core, at most 4, "
            "when there are more than 500,000 events).",
        ),
    ] = 0,
) -> None:
    """Recompute every trace chain; list edited, removed or inserted events; exit 1 if any."""
    try:
        settings = Settings.from_env()
    except CoreError as exc:
        raise _fail(exc.message) from None
    if not settings.is_postgresql:
        path = Path(_where(settings))
        if not path.exists() and path.name != ":memory:":
            raise _fail(f"no database at {path} (set CARNET_DATA_DIR or CARNET_DATABASE_URL)")
    show = err.is_terminal if progress is None else progress
    try:
        report = asyncio.run(_run(settings, show, jobs or None))
    except CoreError as exc:
        raise _fail(exc.message) from None
    except OSError as exc:
        raise _fail(f"cannot read the database: {exc}") from None
    _print(report, settings, limit)
    if not report.ok:
        raise typer.Exit(code=1)


def _print(report: VerifyReport, settings: Settings, limit: int) -> None:
    out.print(f"database: {escape(_where(settings))}")
    out.print(f"chains checked: {report.chains}")
    out.print(f"events checked: {report.events}")
    if report.ok:
        out.print("[green]all chains intact[/green]")
        return
    out.print(
        f"[red]{len(report.problems)} problem(s) in {len(report.broken_chains)} chain(s)[/red]"
    )
    shown = report.problems if limit == 0 else report.problems[:limit]
    for p in shown:
        out.print(
            f"  record {escape(p.chain)} seq {p.seq} event {p.event_id}: "
            f"[bold]{p.kind.value}[/bold]: {escape(p.message)}"
        )
    if len(shown) < len(report.problems):
        out.print(f"  … and {len(report.problems) - len(shown)} more (--limit 0 lists all)")
