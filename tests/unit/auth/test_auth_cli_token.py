"""``carnet token``: prints only a token that verifies, refuses readably otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from carnet.auth.tokens import DEV_ISSUER_URL, TokenVerifier
from carnet.cli.token import app
from carnet.domain.actors import AccessMode, ActorKind
from carnet.domain.ins import OID_NIA, make_nir
from carnet.settings import Settings

PATIENT_INS = make_nir("1800175123456")


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


async def test_patient_token_verifies(
    runner: CliRunner, carnet_env: pytest.MonkeyPatch, data_dir: Path
) -> None:
    result = runner.invoke(app, ["patient", PATIENT_INS, "--ins-oid", OID_NIA])
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    token = result.stdout.strip()
    assert result.stdout == token + "\n"
    assert token.count(".") == 2
    assert (data_dir / "dev-issuer-key.json").exists()
    actor = await TokenVerifier(Settings.from_env()).verify(token)
    assert (actor.kind, actor.ins, actor.ins_oid, actor.issuer) == (
        ActorKind.PATIENT,
        PATIENT_INS,
        OID_NIA,
        DEV_ISSUER_URL,
    )


async def test_professional_token_verifies(
    runner: CliRunner, carnet_env: pytest.MonkeyPatch
) -> None:
    carnet_env.setenv("CARNET_TOKEN_TTL", "120")
    result = runner.invoke(
        app,
        [
            "professional",
            "--rpps",
            "810000000009",
            "--profession",
            "10",
            "--specialty",
            "SM26",
            "--structure",
            "750712184",
            "--mode",
            "bris_de_glace",
            "--reason",
            "urgence vitale",
            "--name",
            "Dr Jean Dupont",
        ],
    )
    assert result.exit_code == 0, result.stderr
    actor = await TokenVerifier(Settings.from_env()).verify(result.stdout.strip())
    assert (
        actor.kind,
        actor.rpps,
        actor.profession,
        actor.specialty,
        actor.structure,
        actor.mode,
        actor.reason,
        actor.name,
    ) == (
        ActorKind.PROFESSIONAL,
        "810000000009",
        "10",
        "SM26",
        "750712184",
        AccessMode.BRIS_DE_GLACE,
        "urgence vitale",
        "Dr Jean Dupont",
    )


def test_refused_when_dev_issuer_off(
    runner: CliRunner, carnet_env: pytest.MonkeyPatch, data_dir: Path
) -> None:
    carnet_env.delenv("CARNET_DEV_ISSUER")
    result = runner.invoke(app, ["patient", PATIENT_INS])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(
        "carnet token: the development issuer is off; set CARNET_DEV_ISSUER=1"
    )
    assert "Traceback" not in result.output
    assert not data_dir.exists()


def test_bad_environment_is_readable(runner: CliRunner, carnet_env: pytest.MonkeyPatch) -> None:
    carnet_env.setenv("CARNET_DEV_ISSUER", "maybe")
    result = runner.invoke(app, ["patient", PATIENT_INS])
    assert result.exit_code == 2
    assert result.stderr == "carnet token: not a boolean: 'maybe'\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["patient", "12345"], "carnet token: ins: INS '12345' must have 15 characters"),
        (
            [
                "professional",
                "--rpps",
                "810000000009",
                "--profession",
                "10",
                "--mode",
                "bris_de_glace",
            ],
            "carnet token: reason: required when mode is bris_de_glace",
        ),
    ],
)
def test_invalid_request_is_readable(
    runner: CliRunner, carnet_env: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(message), result.stderr
    assert "Traceback" not in result.output


def test_missing_option_is_a_usage_error(runner: CliRunner, carnet_env: pytest.MonkeyPatch) -> None:
    result = runner.invoke(app, ["professional", "--profession", "10"])
    assert result.exit_code == 2
    assert "--rpps" in result.stderr
    assert result.stdout == ""
