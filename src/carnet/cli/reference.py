"""Render docs/cli.md from the commands' own help (``python -m carnet.cli.reference``)."""

from __future__ import annotations

import sys
from typing import Any

import typer.main
from typer.testing import CliRunner

from carnet.cli.main import app


def _paths(command: Any, path: list[str]) -> list[list[str]]:
    out = [path]
    children = getattr(command, "commands", None)
    if isinstance(children, dict):
        for name in sorted(children):
            out += _paths(children[name], [*path, name])
    return out


def render() -> str:
    runner = CliRunner()
    lines = [
        "# Command line",
        "",
        "Generated from the commands' `--help` by",
        "`python -m carnet.cli.reference > docs/cli.md`; a test fails when a command is missing.",
        "",
    ]
    for path in _paths(typer.main.get_command(app), []):
        result = runner.invoke(
            app, [*path, "--help"], env={"COLUMNS": "100", "NO_COLOR": "1"}, terminal_width=100
        )
        text = "\n".join(line.rstrip() for line in result.output.strip("\n").splitlines())
        lines += [f"## `{' '.join(['carnet', *path])}`", "", "```", text, "```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(render())
