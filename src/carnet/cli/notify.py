"""``carnet notify``: deliver notifications from the outbox (docs/notifications.md)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Annotated

import typer

from carnet.domain.errors import CoreError
from carnet.notify import PassResult, digest_now, worker_for
from carnet.settings import Settings

app = typer.Typer(
    help="Deliver notifications (e-mail, patient portal) written to the outbox.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except CoreError as exc:
        typer.echo(f"carnet notify: configuration error: {exc.message}", err=True)
        raise typer.Exit(2) from None


Lease = Annotated[
    float,
    typer.Option(
        "--lease-seconds",
        help="How long a claimed notification stays with this worker before another may "
        "take it over (if this one died).",
    ),
]
Batch = Annotated[int, typer.Option("--batch", help="Notifications claimed at a time.")]
MaxAttempts = Annotated[
    int, typer.Option("--max-attempts", help="Attempts before a notification is marked dead.")
]


def _summary(r: PassResult) -> str:
    return (
        f"claimed {r.claimed}, sent {r.sent}, retried {r.retried}, dead {r.dead}, "
        f"skipped {r.skipped}, lost {r.lost}"
    )


@app.command("run")
def run(
    interval: Annotated[
        float, typer.Option("--interval", help="Seconds between passes when idle.")
    ] = 5.0,
    digest_every: Annotated[
        float,
        typer.Option(
            "--digest-every",
            help="Seconds between two looks for completed days to digest (0: never; then run "
            "`carnet notify digest` from cron).",
        ),
    ] = 3600.0,
    lease_seconds: Lease = 300.0,
    batch: Batch = 50,
    max_attempts: MaxAttempts = 8,
) -> None:
    """Deliver notifications until SIGINT or SIGTERM.

    The batch under way is finished first; a second signal stops at once, and what was
    claimed is taken over by the next worker when its lease expires.
    """
    settings = _settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    async def work() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()

        def on_signal() -> None:
            if stop.is_set() and task is not None:
                task.cancel()
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        async with worker_for(
            settings, lease_seconds=lease_seconds, batch_size=batch, max_attempts=max_attempts
        ) as worker:
            logging.getLogger("carnet.notify").info(
                "notification worker %s started (e-mail %s)",
                worker.owner,
                f"via {settings.smtp_host}:{settings.smtp_port}" if worker.email_enabled else "off",
            )
            with contextlib.suppress(asyncio.CancelledError):
                await worker.run(stop, interval=interval, digest_every=digest_every)
        logging.getLogger("carnet.notify").info("notification worker stopped")

    asyncio.run(work())


@app.command("once")
def once(
    drain: Annotated[
        bool, typer.Option("--all", help="Pass again and again until nothing is due.")
    ] = False,
    lease_seconds: Lease = 300.0,
    batch: Batch = 50,
    max_attempts: MaxAttempts = 8,
) -> None:
    """Deliver what is due now, in one pass, and exit (for cron and tests)."""
    settings = _settings()

    async def work() -> PassResult:
        async with worker_for(
            settings, lease_seconds=lease_seconds, batch_size=batch, max_attempts=max_attempts
        ) as worker:
            return await (worker.drain() if drain else worker.run_once())

    result = asyncio.run(work())
    typer.echo(_summary(result))


@app.command("digest")
def digest(
    include_today: Annotated[
        bool,
        typer.Option("--include-today", help="Also digest today's accesses so far."),
    ] = False,
) -> None:
    """Write the daily digests of professionals' accesses now.

    Completed days (Paris time) only, unless --include-today; the worker delivers them.
    """
    settings = _settings()

    made = asyncio.run(digest_now(settings, include_today=include_today))
    typer.echo(f"{made} digest(s) written")
