"""``carnet token``: mint development tokens on the command line (CARNET_DEV_ISSUER=1 only).

Only the token goes to stdout, so ``TOKEN=$(carnet token patient 2…)`` works; errors go to
stderr with exit code 2.
"""

from __future__ import annotations

from typing import Annotated, Any, NoReturn

import typer

from carnet.auth.dev_issuer import DevIssuer
from carnet.domain.actors import AccessMode
from carnet.domain.errors import CoreError
from carnet.settings import Settings

app = typer.Typer(
    help="Mint development tokens signed by the built-in issuer (needs CARNET_DEV_ISSUER=1).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _fail(message: str) -> NoReturn:
    typer.echo(f"carnet token: {message}", err=True)
    raise typer.Exit(code=2)


def _mint(request: dict[str, Any]) -> None:
    try:
        settings = Settings.from_env()
    except CoreError as exc:
        _fail(exc.message)
    if not settings.dev_issuer:
        _fail(
            "the development issuer is off; set CARNET_DEV_ISSUER=1 "
            "(never on a server holding real patients)"
        )
    try:
        issuer = DevIssuer.load_or_create(
            settings.data_dir, settings.audience, settings.token_ttl_seconds
        )
        token = issuer.mint({k: v for k, v in request.items() if v is not None})
    except CoreError as exc:
        _fail(exc.message)
    except OSError as exc:
        _fail(f"cannot use the data directory {settings.data_dir}: {exc.strerror or exc}")
    typer.echo(token)


@app.command("patient")
def patient(
    ins: Annotated[str, typer.Argument(help="The patient's INS: 15 characters (NIR + key).")],
    ins_oid: Annotated[
        str | None,
        typer.Option(
            "--ins-oid",
            help="INS OID: 1.2.250.1.213.1.4.8 (NIR, default), …4.9 (NIA) or …4.10 (test).",
        ),
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Display name.")] = None,
) -> None:
    """Print a patient token for INS."""
    _mint({"kind": "patient", "ins": ins, "ins_oid": ins_oid, "name": name})


@app.command("professional")
def professional(
    rpps: Annotated[str, typer.Option("--rpps", help="IdNatPS (RPPS-based national id).")],
    profession: Annotated[
        str, typer.Option("--profession", help="TRE_G15 profession code, e.g. 10 (médecin).")
    ],
    specialty: Annotated[
        str | None, typer.Option("--specialty", help="Specialty code (médecins).")
    ] = None,
    structure: Annotated[
        str | None, typer.Option("--structure", help="FINESS or SIRET of the structure.")
    ] = None,
    mode: Annotated[
        AccessMode, typer.Option("--mode", help="Access mode (TRE_R248).")
    ] = AccessMode.NORMAL,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why: required with --mode bris_de_glace.")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Display name.")] = None,
) -> None:
    """Print a professional token."""
    _mint(
        {
            "kind": "professional",
            "rpps": rpps,
            "profession": profession,
            "specialty": specialty,
            "structure": structure,
            "mode": mode.value,
            "reason": reason,
            "name": name,
        }
    )
