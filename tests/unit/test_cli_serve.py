"""``carnet serve``: one process by default, or N uvicorn workers (--workers, CARNET_WORKERS)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

import carnet.cli.serve as serve
from carnet.cli.main import app
from carnet.domain.errors import ConfigurationError
from carnet.settings import Settings

SRC = Path(__file__).resolve().parents[2] / "src"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(**carnet: str) -> dict[str, str]:
    """PATH and HOME, carnet importable, and the given CARNET_* settings: nothing else."""
    env = {k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ}
    env["PYTHONPATH"] = str(SRC)
    env.update(carnet)
    return env


# -- the setting and the option, in-process --------------------------------------------------


def test_carnet_workers_setting() -> None:
    assert Settings.from_env({}).workers == 1
    assert Settings.from_env({"CARNET_WORKERS": "4"}).workers == 4
    for bad in ("0", "-1", "two"):
        with pytest.raises(ConfigurationError, match="CARNET_WORKERS"):
            Settings.from_env({"CARNET_WORKERS": bad})


@pytest.fixture
def uvicorn_calls(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[list[tuple[Any, dict[str, Any]]]]:
    """``carnet serve`` in-process, with uvicorn.run recorded instead of run."""
    for name in list(os.environ):
        if name.startswith("CARNET_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CARNET_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(serve.logging, "basicConfig", lambda **_: None)
    calls: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr(serve.uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    yield calls


def test_one_process_by_default(uvicorn_calls: list[tuple[Any, dict[str, Any]]]) -> None:
    result = CliRunner().invoke(app, ["serve"])
    assert result.exit_code == 0, result.output
    [(target, kwargs)] = uvicorn_calls
    assert not isinstance(target, str)  # the app object, built here, as before
    assert kwargs["workers"] is None and kwargs["factory"] is False


def test_workers_from_the_option_or_the_environment(
    uvicorn_calls: list[tuple[Any, dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    result = CliRunner().invoke(app, ["serve", "--workers", "3"])
    assert result.exit_code == 0, result.output
    monkeypatch.setenv("CARNET_WORKERS", "2")
    assert CliRunner().invoke(app, ["serve"]).exit_code == 0
    assert CliRunner().invoke(app, ["serve", "--workers", "1"]).exit_code == 0
    (first, one), (second, two), (third, three) = uvicorn_calls
    assert first == second == "carnet.app:create_app"
    assert one["factory"] is two["factory"] is True
    assert (one["workers"], two["workers"], three["workers"]) == (3, 2, None)
    assert not isinstance(third, str)
    # what the workers would race for was done once, before them
    data = tmp_path / "data"
    assert {"carnet.sqlite", "keys.sqlite", "master.key"} <= {p.name for p in data.iterdir()}


def test_bad_worker_counts_are_refused(
    uvicorn_calls: list[tuple[Any, dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    result = CliRunner().invoke(app, ["serve", "--workers", "0"])
    assert result.exit_code == 2
    monkeypatch.setenv("CARNET_WORKERS", "0")
    result = CliRunner().invoke(app, ["serve"])
    assert result.exit_code == 2
    assert "CARNET_WORKERS must be 1 or more" in result.output
    assert uvicorn_calls == []


# -- two real workers -------------------------------------------------------------------------

_STARTED = re.compile(r"Started server process \[(\d+)\]")


def _answered_by(log: Path, marker: str) -> set[int]:
    """Pids of the workers whose access log shows ``marker`` answered 200."""
    pids = set()
    for line in log.read_text(errors="replace").splitlines():
        found = re.match(r"\[(\d+)\] INFO: .*\"GET (\S+) HTTP/1.1\" 200", line)
        if found and marker in found.group(2):
            pids.add(int(found.group(1)))
    return pids


def _wait_until_up(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"carnet serve ended ({proc.returncode}):\n{log.read_text()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise AssertionError(f"carnet serve did not answer /healthz:\n{log.read_text()}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_serve_with_two_workers(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = clean_env(
        CARNET_DATA_DIR=str(tmp_path / "data"),
        CARNET_PORT=str(port),
        CARNET_DEV_ISSUER="1",
        CARNET_ALLOW_TEST_INS="1",
    )
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "carnet", "serve", "--workers", "2"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    workers: set[int] = set()
    try:
        _wait_until_up(proc, url, log)
        # a new connection per request, so that both workers get some
        with httpx.Client(
            base_url=url, timeout=30, limits=httpx.Limits(max_keepalive_connections=0)
        ) as http:
            for _ in range(5):
                r = http.get("/fhir/metadata")
                assert r.status_code == 200
                assert r.json()["resourceType"] == "CapabilityStatement"
            r = http.post(
                "/dev/token",
                json={"kind": "professional", "rpps": "810100000016", "profession": "10"},
            )
            assert r.status_code == 200, r.text
            token = r.json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            # the token minted by one worker verifies on both (the key is a file they share);
            # each request's _count tells its access-log line apart
            deadline = time.monotonic() + 60
            count = 0
            while time.monotonic() < deadline:
                count = count % 200 + 1
                r = http.get(f"/fhir/DocumentReference?_count={count}", headers=headers)
                assert r.status_code == 200, r.text
                assert r.json()["resourceType"] == "Bundle"
                started = {int(p) for p in _STARTED.findall(log.read_text(errors="replace"))}
                workers = started
                answered = _answered_by(log, "/fhir/DocumentReference?_count=")
                if len(answered) == 2:
                    break
            assert len(started) == 2 and proc.pid not in started, log.read_text()
            assert answered == started, f"only {answered} of {started} answered:\n{log.read_text()}"
            assert r.status_code == 200
        assert _alive(proc.pid)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()
    finally:
        if proc.poll() is None:  # the test failed: leave no process of ours behind
            proc.kill()
            proc.wait()
            for pid in workers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    text = log.read_text()
    for pid in workers:
        assert f"Finished server process [{pid}]" in text
        assert not _alive(pid)
    assert "Stopping parent process" in text
    assert "died" not in text and "Traceback" not in text, text


def test_the_public_base_url_comes_from_configuration_only() -> None:
    from carnet.settings import Settings

    assert Settings(host="127.0.0.1", port=8000).public_base_url == "http://127.0.0.1:8000"
    assert Settings(host="0.0.0.0", port=9000).public_base_url == "http://localhost:9000"
    assert Settings(host="0.0.0.0").base_url_is_guessed
    assert Settings(host="::1", port=80).public_base_url == "http://[::1]:80"
    configured = Settings(host="0.0.0.0", base_url="https://dmp.example.fr/")
    assert configured.public_base_url == "https://dmp.example.fr"
    assert not configured.base_url_is_guessed
