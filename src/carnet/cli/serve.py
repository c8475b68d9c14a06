"""``carnet serve`` and ``carnet migrate``."""

from __future__ import annotations

import asyncio
import logging

import typer
import uvicorn
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


def serve(
    demo: bool = typer.Option(
        False, "--demo", help="Load demo patients, professionals and documents."
    ),
) -> None:
    """Start the HTTP server (FHIR at /fhir) on CARNET_HOST:CARNET_PORT."""
    settings = _settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if demo:
        from carnet.demo.loader import load_demo, print_demo_help

        summary = asyncio.run(load_demo(settings))
        print_demo_help(settings, summary)
    from carnet.app import create_app

    try:
        app = create_app(settings)
    except CoreError as exc:
        console.print(f"[red]cannot start:[/red] {exc.message}")
        raise typer.Exit(2) from None
    console.print(f"carnet listening on http://{settings.host}:{settings.port}  (Ctrl-C stops)")
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level="info",
        workers=None,
        timeout_graceful_shutdown=10,
    )
