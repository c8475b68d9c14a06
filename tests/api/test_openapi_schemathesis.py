"""The published API description tells the truth: schemathesis
(https://schemathesis.readthedocs.io) reads /openapi.json from a real carnet server and sends
what it describes, with a valid token and with an invalid one; every answer must be described
(status, media type, headers, body schema), a method a path does not take must answer 405 with
``Allow``, and none may be a 5xx. Bounded for `make test` (a few examples per operation,
derandomized: about a minute a token on two cores); bench/schemathesis_long.py runs it long."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import openapi_fuzz
from tests.conftest import Server, running_server

EXAMPLES = 3


@pytest.fixture(scope="module")
def described_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of its own, on SQLite (bounded time; the FHIR interface is the same on both
    backends): what the fuzzing stores stays there."""
    with running_server("sqlite", tmp_path_factory.mktemp("carnet-openapi")) as srv:
        yield srv


@pytest.mark.parametrize("token", ["valid", "invalid"])
def test_schemathesis_finds_nothing(described_server: Server, token: str, tmp_path: Path) -> None:
    authorization, ids = openapi_fuzz.seed(described_server.url)
    if token == "invalid":
        authorization = "Bearer not-a-token"
    done = openapi_fuzz.run(described_server.url, authorization, ids, EXAMPLES, tmp_path)
    report = done.stdout + done.stderr
    assert done.returncode == 0, report[-20000:]
    cases = re.search(r"Test cases:\s+(\d+) generated, (\d+) passed(.*)", report)
    assert cases and int(cases[1]) > 0 and "failed" not in cases[3], report[-5000:]
    assert "✅ Coverage" in report and "✅ Fuzzing" in report, report[-5000:]
