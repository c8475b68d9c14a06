"""Validation of what FHIR clients receive from carnet, with two independent validators:

- fhir.resources (PyPI), its FHIR R4B models (``fhir.resources.R4B``): every JSON body is parsed
  into the model of its ``resourceType`` (unknown elements, wrong types and cardinalities are
  errors);
- the npm ``fhir`` package (lantanagroup), ``new Fhir().validate(resource, {errorOnUnexpected:
  true})``, run by ``tests/clients/js/validate.mjs`` in one Node process for a batch of bodies.

:class:`Recorder` captures every response that a ``requests``-based client (fhirpy's sync client,
fhirclient) receives, so that a test validates all of them, not only those it looks at.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from fhir.resources.R4B import get_fhir_model_class

JS = Path(__file__).resolve().parent / "js"


def r4b_errors(body: dict[str, Any]) -> list[str]:
    """What fhir.resources' R4B model of ``body['resourceType']`` finds wrong (empty: valid)."""
    kind = body.get("resourceType")
    if not isinstance(kind, str):
        return ["no resourceType"]
    try:
        model = get_fhir_model_class(kind)
    except (KeyError, ValueError) as exc:
        return [f"unknown resourceType {kind!r}: {exc}"]
    try:
        model.model_validate(body)
    except Exception as exc:  # pydantic's ValidationError, and fhir_core's own errors
        return [str(exc)]
    return []


def node() -> str:
    found = shutil.which("node")
    assert found, "node (>= 20) is needed by the client proof (make test installs tests/clients/js)"
    return found


def npm_fhir_errors(bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The npm ``fhir`` validator's errors for each body, in one Node process: a list with, for
    every invalid body, its index, resourceType and error messages (empty: all valid)."""
    assert (JS / "node_modules" / "fhir").is_dir(), "run `make test` (npm ci in tests/clients/js)"
    done = subprocess.run(
        [node(), str(JS / "validate.mjs")],
        input=json.dumps(bodies),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    out: list[dict[str, Any]] = json.loads(done.stdout)
    return out


def assert_all_valid(bodies: Iterable[dict[str, Any]]) -> int:
    """Every body validates with both validators; returns how many were checked."""
    batch = list(bodies)
    r4b = [(i, b.get("resourceType"), errs) for i, b in enumerate(batch) if (errs := r4b_errors(b))]
    assert not r4b, f"fhir.resources (R4B) refused: {r4b}"
    npm = npm_fhir_errors(batch)
    assert not npm, f"npm fhir validator refused: {npm}"
    return len(batch)


@dataclass
class Exchange:
    method: str
    url: str
    status: int
    content_type: str
    body: Any


@dataclass
class Recorder:
    """Every response received through ``requests`` while :meth:`recording`."""

    exchanges: list[Exchange] = field(default_factory=list)

    @contextmanager
    def recording(self) -> Iterator[Recorder]:
        original = requests.Session.send

        def send(session: requests.Session, request: Any, **kwargs: Any) -> requests.Response:
            response = original(session, request, **kwargs)
            ctype = response.headers.get("content-type", "")
            body: Any = None
            if "json" in ctype and response.content:
                body = json.loads(response.content)
            self.exchanges.append(
                Exchange(str(request.method), str(request.url), response.status_code, ctype, body)
            )
            return response

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(requests.Session, "send", send)
            yield self

    def fhir_bodies(self) -> list[dict[str, Any]]:
        """The FHIR JSON bodies received (raw document content is not a FHIR resource)."""
        return [
            e.body for e in self.exchanges if isinstance(e.body, dict) and "resourceType" in e.body
        ]

    def server_errors(self) -> list[Exchange]:
        return [e for e in self.exchanges if e.status >= 500]
