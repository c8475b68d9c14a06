"""``carnet serve --demo``: load the demo cast and documents through the same access-scoped
service every interface uses (so the demo also leaves traces), then tell how to try it.
Loading is idempotent: a second start finds the records and documents and adds nothing."""

from __future__ import annotations

import json
import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress

from carnet.access.core import Core
from carnet.demo.documents import bundle_for, documents_for
from carnet.demo.people import PATIENTS, PROFESSIONALS, DemoPatient, DemoProfessional
from carnet.domain.actors import Actor, ActorKind
from carnet.domain.errors import Conflict
from carnet.fhir.iti65 import build_submission
from carnet.fhir.patient_resource import patient_input
from carnet.settings import Settings


@dataclass
class DemoSummary:
    patients: list[DemoPatient] = field(default_factory=list)
    professionals: list[DemoProfessional] = field(default_factory=list)
    records_created: int = 0
    documents_created: int = 0
    documents_total: int = 0


def _patient_actor(p: DemoPatient) -> Actor:
    return Actor(
        kind=ActorKind.PATIENT,
        subject=f"ins:{p.ins}",
        issuer="demo",
        ins=p.ins,
        ins_oid=p.oid,
        name=p.display,
    )


def _patient_resource(p: DemoPatient, gp: DemoProfessional) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "extension": [
            {
                "url": "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-identity-reliability",
                "extension": [
                    {
                        "url": "identityStatus",
                        "valueCoding": {
                            "system": "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0445",
                            "code": "VALI",
                        },
                    }
                ],
            },
            {
                "url": "http://hl7.org/fhir/StructureDefinition/patient-birthPlace",
                "valueAddress": {
                    "extension": [
                        {
                            "url": "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-address-insee-code",
                            "valueCoding": {"code": p.birth_place},
                        }
                    ]
                },
            },
        ],
        "identifier": [{"system": f"urn:oid:{p.oid}", "value": p.ins}],
        "name": [{"use": "official", "family": p.family, "given": list(p.given)}],
        "telecom": [{"system": "email", "value": p.email}],
        "gender": p.gender,
        "birthDate": p.birth_date,
        "generalPractitioner": [
            {
                "identifier": {"system": "urn:oid:1.2.250.1.71.4.2.1", "value": gp.rpps},
                "display": f"Dr {gp.display}",
            }
        ],
    }


async def load_demo(settings: Settings) -> DemoSummary:
    core = await Core.start(settings)
    summary = DemoSummary(list(PATIENTS), list(PROFESSIONALS))
    pros = {
        f"{p.profession}/{p.specialty}" if p.specialty else p.profession: p for p in PROFESSIONALS
    }
    gp = pros["10/SM54"]
    try:
        with Progress(transient=True) as progress:
            task = progress.add_task("demo data", total=len(PATIENTS))
            for index, patient in enumerate(PATIENTS):
                opener = core.scope(gp.actor())
                try:
                    await opener.records.open(
                        patient_input(_patient_resource(patient, gp), allow_test_ins=True)
                    )
                    summary.records_created += 1
                except Conflict:
                    pass
                for doc in documents_for(patient, pros, index):
                    actor = doc.author.actor() if doc.author else _patient_actor(patient)
                    parsed = build_submission(
                        bundle_for(patient, doc), allow_test=True, actor_id=actor.id
                    )
                    result = await core.scope(actor).documents.publish(parsed.submission)
                    summary.documents_total += 1
                    summary.documents_created += sum(d.created for d in result.documents)
                progress.advance(task)
    finally:
        await core.close()
    return summary


def _carnet_program() -> list[str]:
    """How to run this very carnet from any shell: the ``carnet`` script beside our Python."""
    script = Path(sys.executable).absolute().parent / "carnet"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [str(Path(sys.executable).absolute()), "-m", "carnet"]


def token_command(settings: Settings, *args: str) -> str:
    """A ``carnet token …`` line that works as is in a new shell, from any directory.

    ``carnet token`` mints only with CARNET_DEV_ISSUER=1, and signs with the key under
    CARNET_DATA_DIR (``var``, relative to where the server started, by default): both are on
    the line, with absolute paths, and so is the audience when the server expects another one.
    """
    env = {"CARNET_DEV_ISSUER": "1", "CARNET_DATA_DIR": str(settings.data_dir.resolve())}
    defaults = Settings()
    if settings.audience != defaults.audience:
        env["CARNET_AUDIENCE"] = settings.audience
    if settings.token_ttl_seconds != defaults.token_ttl_seconds:
        env["CARNET_TOKEN_TTL"] = str(settings.token_ttl_seconds)
    words = [f"{name}={shlex.quote(value)}" for name, value in env.items()]
    return " ".join([*words, shlex.join([*_carnet_program(), "token", *args])])


def _local_url(settings: Settings) -> str:
    """The server's URL for a client on this machine (a wildcard address is not one to call)."""
    wildcards = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}  # noqa: S104 (not bound)
    host = wildcards.get(settings.host, settings.host)
    return f"http://[{host}]:{settings.port}" if ":" in host else f"http://{host}:{settings.port}"


def _with_token(token: str, url: str) -> str:
    return (
        f'TOKEN=$({token}) && \\\n    curl -s -H "Authorization: Bearer $TOKEN" {shlex.quote(url)}'
    )


def print_demo_help(settings: Settings, summary: DemoSummary) -> None:
    """Who is in the demo, and the shell commands to try it: each works as printed, in a new
    shell and from any directory (tests/unit/test_demo_help.py runs them all)."""
    console = Console(highlight=False, soft_wrap=True)

    def say(text: str = "") -> None:
        console.print(text, markup=False)

    url = _local_url(settings)
    dev = settings.dev_issuer
    console.rule("[bold]carnet — demo")
    say(
        f"Demo data: {len(summary.patients)} patients, {len(summary.professionals)} professionals, "
        f"{summary.documents_total} documents ({summary.records_created} records and "
        f"{summary.documents_created} documents new this start)."
    )
    console.print("\n[bold]Patients[/bold] (INS-NIR de test, OID 1.2.250.1.213.1.4.10):")
    for p in summary.patients:
        say(f"  {p.display}, born {p.birth_date}: INS {p.ins}")
        if dev:
            say("    " + token_command(settings, "patient", p.ins, "--ins-oid", p.oid))
    console.print("\n[bold]Professionals[/bold] (RPPS as IdNatPS):")
    for pr in summary.professionals:
        say(f"  {pr.display}, {pr.label}, {pr.structure_name}: RPPS {pr.rpps}")
        if dev:
            spec = ["--specialty", pr.specialty] if pr.specialty else []
            say(
                "    "
                + token_command(
                    settings,
                    "professional",
                    "--rpps",
                    pr.rpps,
                    "--profession",
                    pr.profession,
                    *spec,
                    "--structure",
                    pr.structure,
                )
            )
    say(f"\nServer: {url}   FHIR: {url}/fhir   API docs: {url}/docs")
    if not dev:
        say(
            "The development issuer is off (CARNET_DEV_ISSUER): tokens come from the issuers of "
            "CARNET_OIDC_ISSUERS. `make run` turns it on."
        )
        console.file.flush()
        return
    if not settings.allow_test_ins:
        say(
            "The demo patients have test INS, refused by this server: start it with "
            "CARNET_ALLOW_TEST_INS=1 (as `make run` does) for their tokens to work."
        )
    first = summary.patients[0]
    gp = summary.professionals[0]
    body = json.dumps({"kind": "patient", "ins": first.ins, "ins_oid": first.oid})
    console.print(
        "\n[bold]Try it[/bold]: each command below works as is in a new shell, from any directory."
    )
    say(f"  curl -s {shlex.quote(url + '/fhir/metadata')}")
    say(
        "  "
        + _with_token(
            token_command(settings, "patient", first.ins, "--ins-oid", first.oid),
            f"{url}/fhir/DocumentReference?_count=5",
        )
    )
    gp_spec = ["--specialty", gp.specialty] if gp.specialty else []
    say(
        "  "
        + _with_token(
            token_command(
                settings, "professional", "--rpps", gp.rpps, "--profession", gp.profession, *gp_spec
            ),
            f"{url}/fhir/DocumentReference?_sort=-date&_count=5",
        )
    )
    say("or over HTTP, the token in the JSON answer:")
    say(
        f"  curl -s -X POST {shlex.quote(url + '/dev/token')} "
        f"-H 'Content-Type: application/json' -d {shlex.quote(body)}"
    )
    say()
    console.file.flush()  # before uvicorn's lines, even when stdout is a pipe or a file
