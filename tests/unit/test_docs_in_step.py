"""Documentation that falls behind the code fails the build."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from typer.testing import CliRunner

from carnet.cli.main import app
from carnet.fhir.capability import capability_statement
from carnet.fhir.routes import fhir_router
from carnet.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_is_documented() -> None:
    text = (ROOT / "docs" / "settings.md").read_text()
    source = (ROOT / "src" / "carnet" / "settings.py").read_text()
    names = set(re.findall(r'"(CARNET_[A-Z0-9_]+)"', source))
    assert names, "no CARNET_ variables found"
    missing = [n for n in sorted(names) if f"`{n}`" not in text]
    assert not missing, f"undocumented settings: {missing}"
    assert len(dataclasses.fields(Settings)) >= len(names) - 2


def test_every_cli_command_is_documented() -> None:
    text = (ROOT / "docs" / "cli.md").read_text()
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    commands = re.findall(r"│ (\w[\w-]*)\s{2,}", result.output)
    assert commands
    missing = [c for c in commands if f"carnet {c}" not in text]
    assert not missing, f"commands missing from docs/cli.md: {missing}"


def test_capability_statement_declares_only_routes_that_exist() -> None:
    routes = {(m, r.path) for r in fhir_router().routes for m in getattr(r, "methods", set())}
    cs = capability_statement("http://x/fhir", fhir_router().routes)
    verbs = {
        "read": ("GET", "/fhir/{t}/{{id}}"),
        "vread": ("GET", "/fhir/{t}/{{id}}/_history/{{vid}}"),
        "history-instance": ("GET", "/fhir/{t}/{{id}}/_history"),
        "update": ("PUT", "/fhir/{t}/{{id}}"),
        "delete": ("DELETE", "/fhir/{t}/{{id}}"),
        "create": ("POST", "/fhir/{t}"),
        "search-type": ("GET", "/fhir/{t}"),
        "patch": ("PATCH", "/fhir/{t}/{{id}}"),
    }
    for resource in cs["rest"][0]["resource"]:
        for interaction in resource["interaction"]:
            method, template = verbs[interaction["code"]]
            path = template.format(t=resource["type"])
            assert (method, path) in routes, (resource["type"], interaction["code"])
    assert ("POST", "/fhir") in routes  # transaction
