"""schemathesis against a running carnet server's published description (/openapi.json), as
tests/e2e/test_openapi_schemathesis.py (bounded) and bench/schemathesis_long.py (long) run it.

The schemathesis CLI (v4) runs its examples, coverage and fuzzing phases with every check but
the stateful ones (the description declares no links between operations) and
``positive_data_acceptance`` (a schema-valid FHIR resource may still break a rule of the
profile: 400/422, described). Bodies of FHIR resources are generated in positive mode only:
negative generation from HL7's FHIR schemas costs tens of seconds an example. The ids of a
seeded record, document, content and List are offered to the reads half of the time, so that
200 answers are checked against their schemas too."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx

from tests.factories import Factory, created_doc_ids, docref, pdf_bytes

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
EXCLUDED = (
    "use_after_free,ensure_resource_availability,object_level_authorization,"
    "positive_data_acceptance"
)


def seed(url: str) -> tuple[str, dict[str, str]]:
    """A professional's token, and the ids of their record, document, content and List."""
    with httpx.Client(base_url=url, timeout=60) as http:
        factory = Factory(http)
        pro = factory.professional()
        ins, patient_id = factory.open_record(pro)
        r = factory.publish(ins, [(docref(ins), pdf_bytes(), "application/pdf")], pro)
        (doc_id,) = created_doc_ids(r)
        locations = [e["response"]["location"] for e in r.json()["entry"]]
        binary = next(x for x in locations if "/Binary/" in x).rsplit("/", 1)[1]
        listed = next(x for x in locations if "/List/" in x).split("/List/")[1].split("/")[0]
    ids = {"Patient": patient_id, "DocumentReference": doc_id, "Binary": binary, "List": listed}
    return pro["Authorization"], ids


def config(examples: int, ids: dict[str, str], *, negative_bodies: bool = False) -> str:
    lines = [
        "[generation]",
        f"max-examples = {examples}",
        "deterministic = true",
        "",
        "[dictionaries]",
    ]
    lines += [f"{t} = {{ values = [{json.dumps(i)}] }}" for t, i in ids.items()]
    if not negative_bodies:
        lines += [
            "",
            "[[operations]]",
            'include-method-regex = "^(POST|PUT|PATCH)$"',
            'exclude-path = "/fhir/Binary"',
            'generation.mode = "positive"',
            "phases.coverage.enabled = false",
        ]
    for rtype in ids:
        lines += [
            "",
            "[[operations]]",
            'include-method = "GET"',
            f'include-path-regex = "^/fhir/{rtype}/"',
            f'parameters = {{ "path.id" = {{ dictionary = "{rtype}", probability = 0.5 }} }}',
        ]
    return "\n".join(lines) + "\n"


def run(
    url: str,
    authorization: str,
    ids: dict[str, str],
    examples: int,
    workdir: Path,
    *,
    negative_bodies: bool = False,
) -> subprocess.CompletedProcess[str]:
    """schemathesis run against ``url`` with ``authorization``; its output and exit code."""
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "schemathesis.toml"
    conf.write_text(config(examples, ids, negative_bodies=negative_bodies))
    return subprocess.run(
        [
            SCHEMATHESIS,
            "--no-color",
            "--config-file",
            str(conf),
            "run",
            f"{url}/openapi.json",
            "--include-path-regex",
            "^/fhir",
            "--header",
            f"Authorization: {authorization}",
            "--checks",
            "all",
            "--exclude-checks",
            EXCLUDED,
            "--phases",
            "examples,coverage,fuzzing",
            "--suppress-health-check",
            "all",
            "--workers",
            "1",
            "--request-timeout",
            "60",
            "--report",
            "junit",
            "--report-dir",
            str(workdir),
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=False,
    )
