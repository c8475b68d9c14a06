"""Every command `make run` prints works as printed: in a new shell (only PATH and HOME), from
another directory, with nothing but what the printed line sets itself."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from carnet.demo.people import PATIENTS, PROFESSIONALS

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
BIN = Path(sys.executable).absolute().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_run() -> tuple[list[str], dict[str, str]]:
    """The command and the variables of the Makefile's ``run`` recipe."""
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\nrun:", 1)[1].split("\n\n", 1)[0]
    assert "$(BIN)/carnet serve --demo" in recipe, recipe
    variables = dict(re.findall(r"(CARNET_[A-Z_]+)=\$\$\{\1:-([^}]*)\}", recipe))
    assert variables == {"CARNET_DEV_ISSUER": "1", "CARNET_ALLOW_TEST_INS": "1"}, recipe
    script = BIN / "carnet"
    program = [str(script)] if script.exists() else [sys.executable, "-m", "carnet"]
    return [*program, "serve", "--demo"], variables


def fresh_shell_env() -> dict[str, str]:
    """A new terminal's environment: PATH (without this virtualenv) and HOME, nothing else."""
    path = [
        p
        for p in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep)
        if p and Path(p).absolute() != BIN
    ]
    return {"PATH": os.pathsep.join(path), "HOME": os.environ.get("HOME", "/tmp")}


_COMMAND = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=|curl\b|[\w.~-]*/")


def printed_commands(text: str) -> list[str]:
    """The shell commands in the demo help: indented lines that start with a variable
    assignment, ``curl`` or a path, with their ``\\`` continuation lines."""
    commands: list[str] = []
    current: list[str] | None = None
    for line in text.splitlines():
        if current is not None:
            current.append(line)
        elif line.startswith("  ") and _COMMAND.match(line.strip()):
            current = [line]
        else:
            continue
        if not line.rstrip().endswith("\\"):
            commands.append("\n".join(current).strip())
            current = None
    assert current is None, "a command ends with a line continuation"
    return commands


def claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``make run``'s server, started from a checkout folder with the default CARNET_DATA_DIR
    (``var``, relative), on a free port; yields its URL and what it printed."""
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    checkout = tmp_path_factory.mktemp("checkout")
    port = free_port()
    command, variables = make_run()
    env = {**fresh_shell_env(), "PYTHONPATH": str(SRC), "CARNET_PORT": str(port), **variables}
    out_path = checkout / "stdout.txt"
    with out_path.open("wb") as out, (checkout / "stderr.txt").open("wb") as err:
        proc = subprocess.Popen(command, cwd=checkout, env=env, stdout=out, stderr=err)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise AssertionError((checkout / "stderr.txt").read_text())
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the demo server did not start"
            time.sleep(0.2)
        yield url, out_path.read_text(), checkout
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_in_fresh_shell(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", command],
        cwd=cwd,
        env=fresh_shell_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_every_printed_command_works_in_a_new_shell(
    demo: tuple[str, str, Path], tmp_path: Path
) -> None:
    url, printed, checkout = demo
    commands = printed_commands(printed)
    # nothing that looks like a command was left out of the list
    for line in printed.splitlines():
        if "carnet token" in line or "curl " in line:
            assert any(line.strip() in c for c in commands), line
    tokens_only = [c for c in commands if "curl" not in c]
    assert len(tokens_only) == len(PATIENTS) + len(PROFESSIONALS), commands
    assert len(commands) == len(tokens_only) + 4, commands
    assert (checkout / "var" / "dev-issuer-key.json").exists()  # the server's key, relative

    elsewhere = tmp_path / "elsewhere"  # not where the server started
    elsewhere.mkdir()
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda c: run_in_fresh_shell(c, elsewhere), commands))
    assert list(elsewhere.iterdir()) == []  # no stray data folder made by `carnet token`

    seen: set[str] = set()
    with httpx.Client(base_url=url, timeout=30) as http:
        for command, result in zip(commands, results, strict=True):
            assert result.returncode == 0, f"{command}\n{result.stderr}"
            out = result.stdout.strip()
            if "curl" not in command:  # `carnet token …`: a token for whom the line says
                who = claims(out)
                seen.add(who["sub"])
                assert who["sub"].split(":")[1] in command
                token = out
            elif "/dev/token" in command:
                token = json.loads(out)["access_token"]
            elif "/fhir/metadata" in command:
                assert json.loads(out)["resourceType"] == "CapabilityStatement"
                continue
            else:  # TOKEN=$(carnet token …) && curl …: a search answered with documents
                bundle = json.loads(out)
                assert bundle["resourceType"] == "Bundle", f"{command}\n{out}"
                assert bundle["total"] > 0 and bundle["entry"], command
                continue
            # the token is accepted by the server
            r = http.get(
                "/fhir/DocumentReference?_count=1", headers={"Authorization": f"Bearer {token}"}
            )
            assert r.status_code == 200, f"{command}\n{r.text}"
            assert r.json()["resourceType"] == "Bundle"
    assert seen == {f"ins:{p.ins}" for p in PATIENTS} | {f"rpps:{p.rpps}" for p in PROFESSIONALS}


def test_readme_try_it_mints_with_the_development_issuer() -> None:
    """README's "Try it" runs `carnet token` in the user's shell, where make run's
    CARNET_DEV_ISSUER=1 is not set: the line must set it."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Try it", 1)[1].split("\n## ", 1)[0]
    code = "".join(re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL))
    lines = [line for line in code.splitlines() if "carnet token" in line]
    assert lines
    assert all("CARNET_DEV_ISSUER=1" in line for line in lines), lines
