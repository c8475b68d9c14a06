"""End-to-end fixtures: every test drives the real HTTP server of tests/conftest.py.

An autouse guard fails any test in which the server answered 5xx: a client's mistake must
never be a server error.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Server, running_server
from tests.factories import Factory, random_rpps


def _no_5xx(response: httpx.Response) -> None:
    if response.status_code >= 500:
        response.read()
        raise AssertionError(
            f"{response.request.method} {response.request.url} answered "
            f"{response.status_code}: {response.text[:1000]}"
        )


@pytest.fixture(autouse=True)
def _never_5xx(http: httpx.Client) -> None:
    http.event_hooks["response"].append(_no_5xx)


class Pro:
    """A professional with a fresh RPPS: records they open and documents they author stay
    theirs, so searches in one test never see another test's data."""

    def __init__(self, factory: Factory, rpps: str | None = None, **claims: str) -> None:
        self.rpps = rpps or random_rpps()
        self.headers = factory.professional(rpps=self.rpps, **claims)


@pytest.fixture()
def pro(factory: Factory) -> Pro:
    return Pro(factory)


@pytest.fixture()
def other_pro(factory: Factory) -> Pro:
    return Pro(factory)


def content_files(data_dir: Path) -> set[Path]:
    """Every file under the server's content folder (blobs and temporary files)."""
    root = data_dir / "content"
    return {p for p in root.rglob("*") if p.is_file()} if root.exists() else set()


@pytest.fixture(scope="module")
def small_server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A dedicated server whose CARNET_MAX_UPLOAD_BYTES is 64 KiB."""
    with running_server(
        backend, tmp_path_factory.mktemp(f"carnet-small-{backend}"), max_upload_bytes=64 * 1024
    ) as srv:
        yield srv
