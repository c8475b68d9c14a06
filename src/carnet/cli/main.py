"""carnet's command line (Typer). ``carnet --help`` lists every command; docs/cli.md is generated
from it and a test keeps the two in step."""

from __future__ import annotations

import typer

from carnet.cli import serve, token

app = typer.Typer(
    name="carnet",
    help="carnet: host for the French shared medical record (DMP).",
    no_args_is_help=True,
    add_completion=False,
)
app.command("serve")(serve.serve)
app.command("migrate")(serve.migrate)
app.add_typer(token.app, name="token")


def main() -> None:
    app()
