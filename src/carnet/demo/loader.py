"""``carnet serve --demo``: load the demo cast and documents through the same access-scoped
service every interface uses (so the demo also leaves traces), then tell how to try it.
Loading is idempotent: a second start finds the records and documents and adds nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import Progress

from carnet.access.core import Core
from carnet.demo.documents import bundle_for, documents_for
from carnet.demo.people import PATIENTS, PROFESSIONALS, DemoPatient, DemoProfessional
from carnet.domain.actors import AccessMode, Actor, ActorKind
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


def _pro_actor(p: DemoProfessional) -> Actor:
    return Actor(
        kind=ActorKind.PROFESSIONAL,
        subject=f"rpps:{p.rpps}",
        issuer="demo",
        rpps=p.rpps,
        profession=p.profession,
        specialty=p.specialty,
        structure=p.structure,
        mode=AccessMode.NORMAL,
        name=p.display,
    )


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
                opener = core.scope(_pro_actor(gp))
                try:
                    await opener.records.open(
                        patient_input(_patient_resource(patient, gp), allow_test_ins=True)
                    )
                    summary.records_created += 1
                except Conflict:
                    pass
                for doc in documents_for(patient, pros, index):
                    actor = _pro_actor(doc.author) if doc.author else _patient_actor(patient)
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


def print_demo_help(settings: Settings, summary: DemoSummary) -> None:
    console = Console()
    url = f"http://{settings.host}:{settings.port}"
    console.rule("[bold]carnet — demo")
    console.print(
        f"Demo data: {len(summary.patients)} patients, {len(summary.professionals)} professionals, "
        f"{summary.documents_total} documents ({summary.records_created} records and "
        f"{summary.documents_created} documents new this start)."
    )
    console.print("\n[bold]Patients[/bold] (INS-NIR de test, OID 1.2.250.1.213.1.4.10):")
    for p in summary.patients:
        console.print(
            f"  {p.display}, born {p.birth_date}: INS {p.ins}\n"
            f"    .venv/bin/carnet token patient {p.ins} --ins-oid {p.oid}",
            soft_wrap=True,
        )
    console.print("\n[bold]Professionals[/bold] (RPPS as IdNatPS):")
    for pr in summary.professionals:
        spec = f" --specialty {pr.specialty}" if pr.specialty else ""
        console.print(
            f"  {pr.display}, {pr.label}, {pr.structure_name}: RPPS {pr.rpps}\n"
            f"    .venv/bin/carnet token professional --rpps {pr.rpps} "
            f"--profession {pr.profession}{spec} --structure {pr.structure}",
            soft_wrap=True,
        )
    first = summary.patients[0]
    console.print(
        f"\nServer: [bold]{url}[/bold]   FHIR: {url}/fhir   API docs: {url}/docs\n"
        "Try:\n"
        f"  TOKEN=$(.venv/bin/carnet token patient {first.ins} --ins-oid {first.oid})\n"
        f"  curl -H \"Authorization: Bearer $TOKEN\" '{url}/fhir/DocumentReference?_count=5'\n"
        f"  TOKEN=$(.venv/bin/carnet token professional --rpps {summary.professionals[0].rpps} "
        f"--profession 10 --specialty SM54)\n"
        f"  or: curl -X POST {url}/dev/token -H 'Content-Type: application/json' "
        f'-d \'{{"kind": "patient", "ins": "{first.ins}", "ins_oid": "{first.oid}"}}\'\n',
        soft_wrap=True,
    )
