"""``carnet serve`` and ``carnet migrate``."""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import Any

import typer
import uvicorn
import uvicorn.config
from rich.console import Console

from carnet.domain.errors import CoreError
from carnet.settings import Settings

console = Console(stderr=True)


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except CoreError as exc:
        console.print(f"[red]configuration error:[/red] {exc.message}")
        raise typer.Exit(2) from None


def migrate() -> None:
    """Apply the database migrations and exit."""
    from carnet.access.core import Core

    settings = _settings()
    asyncio.run(Core.migrate(settings))
    console.print(f"migrations applied to {settings.sqlalchemy_url.split('@')[-1]}")


#: Log lines of carnet's own loggers (the root logger), in the parent and in every worker.
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def _log_config(workers: int) -> dict[str, Any]:
    """uvicorn's logging, plus carnet's loggers; with several workers, each line names its pid.

    Worker processes are spawned afresh and configure logging from this dictionary only, so
    carnet's log lines would be lost in them without the root entry.
    """
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    formatters = config["formatters"]
    carnet_format = LOG_FORMAT
    if workers > 1:
        carnet_format = "%(asctime)s [%(process)d] %(levelname)s %(name)s %(message)s"
        for formatter in formatters.values():
            if "fmt" in formatter:
                formatter["fmt"] = "[%(process)d] " + formatter["fmt"]
    formatters["carnet"] = {"format": carnet_format}
    config["handlers"]["carnet"] = {
        "class": "logging.StreamHandler",
        "formatter": "carnet",
        "stream": "ext://sys.stderr",
    }
    config["root"] = {"handlers": ["carnet"], "level": "INFO"}
    return config


async def _prepare(settings: Settings) -> None:
    """What the first start does once, before several workers could race to do it: apply the
    migrations, create the master key file and the key store, and check the token issuers."""
    from carnet.access.core import Core
    from carnet.auth.tokens import parse_oidc_issuers

    parse_oidc_issuers(settings.oidc_issuers)
    core = await Core.start(settings)
    await core.close()


def serve(
    demo: bool = typer.Option(
        False, "--demo", help="Load demo patients, professionals and documents."
    ),
    workers: int | None = typer.Option(
        None,
        "--workers",
        min=1,
        help="Worker processes, each with its own memory (default: CARNET_WORKERS, else 1).",
        show_default=False,
    ),
) -> None:
    """Start the HTTP server (FHIR at /fhir) on CARNET_HOST:CARNET_PORT."""
    settings = _settings()
    count = workers if workers is not None else settings.workers
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    if demo:
        from carnet.demo.loader import load_demo, print_demo_help

        summary = asyncio.run(load_demo(settings))
        print_demo_help(settings, summary)
    from carnet.app import create_app

    try:
        app = create_app(settings)
        if count > 1:
            asyncio.run(_prepare(settings))
    except CoreError as exc:
        console.print(f"[red]cannot start:[/red] {exc.message}")
        raise typer.Exit(2) from None
    processes = f", {count} worker processes" if count > 1 else ""
    if settings.base_url_is_guessed:
        console.print(
            f"[yellow]CARNET_BASE_URL is not set:[/yellow] the URLs carnet serves name "
            f"{settings.public_base_url}; set CARNET_BASE_URL to the address clients use"
        )
    console.print(
        f"carnet listening on http://{settings.host}:{settings.port}{processes}  (Ctrl-C stops)"
    )
    uvicorn.run(
        # Each worker imports the factory and builds its own app from the same environment.
        app if count == 1 else "carnet.app:create_app",
        factory=count > 1,
        host=settings.host,
        port=settings.port,
        log_level="info",
        log_config=_log_config(count),
        workers=count if count > 1 else None,
        # A new worker answers the parent's health checks only once it has imported carnet,
        # which takes seconds on a busy machine: uvicorn's 5 s would kill it while it starts.
        timeout_worker_healthcheck=30,
        timeout_graceful_shutdown=10,
    )
