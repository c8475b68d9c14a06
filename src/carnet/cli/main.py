"""carnet's command line (Typer). ``carnet --help`` lists every command; docs/cli.md is generated
from it and a test keeps the two in step."""

from __future__ import annotations

import typer

from carnet.cli import audit, demo, lifecycle, notify, serve, token

app = typer.Typer(
    name="carnet",
    help="carnet: host for the French shared medical record (DMP).",
    no_args_is_help=True,
    add_completion=False,
)
app.command("serve")(serve.serve)
app.command("migrate")(serve.migrate)
app.command("demo")(demo.demo)
app.command("purge")(lifecycle.purge)
app.command("purge-uploads")(lifecycle.purge_uploads)
app.command("backup")(lifecycle.backup)
app.add_typer(token.app, name="token")
app.add_typer(audit.app, name="audit")
app.add_typer(notify.app, name="notify")


def main() -> None:
    app()
