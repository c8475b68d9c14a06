"""Shared fixtures for the identity layer tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from carnet.settings import Settings


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def carnet_env(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> pytest.MonkeyPatch:
    """A clean CARNET_* environment with the development issuer on."""
    for name in (
        "CARNET_OIDC_ISSUERS",
        "CARNET_ALLOW_TEST_INS",
        "CARNET_TOKEN_TTL",
        "CARNET_AUDIENCE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CARNET_DATA_DIR", str(data_dir))
    monkeypatch.setenv("CARNET_DEV_ISSUER", "1")
    return monkeypatch


@pytest.fixture
def settings(carnet_env: pytest.MonkeyPatch) -> Settings:
    return Settings.from_env()
