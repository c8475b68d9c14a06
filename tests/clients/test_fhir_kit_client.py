"""A vendor's JavaScript software on fhir-kit-client (npm) against a real carnet server, run
by Node 20 from ``tests/clients/js/scenario.mjs`` (installed by ``make test``: ``npm ci`` in
tests/clients/js): publish an IHE MHD 4.2.3 ITI-65 (``usual`` SubmissionSet uniqueId and a
Folder), search with paging (``nextPage``), ``POST DocumentReference/_search``, count
(``_summary=count``, ``_count=0``), read, retrieve the Binary, PATCH (``client.patch``, JSON
Patch) a document's visibility and status, conditional PATCH on
``DocumentReference?identifier=…``. The script runs once per module; each step is reported on
its own and checked by its own test. Every FHIR body the client received validates with the npm
``fhir`` validator (in the script) and with fhir.resources (R4B).
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from tests.clients.conftest import World
from tests.clients.scenario import publication
from tests.clients.validate import JS, node, r4b_errors

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def report(world: World) -> dict[str, Any]:
    assert (JS / "node_modules" / "fhir-kit-client").is_dir(), "run `make test` (npm ci)"
    pub = publication(world.other_ins, 1, folder=True, author=world.rpps)
    given = {
        "base": world.base,
        "token": world.token,
        "pid": world.pid,
        "seeded": world.seeded,
        "seededUniqueIds": world.seeded_unique_ids,
        "otherPid": world.other_pid,
        "publication": {
            "bundle": pub.bundle,
            "setUniqueId": pub.set_unique_id,
            "folderUniqueId": pub.folder_unique_id,
            "docUniqueIds": pub.doc_unique_ids,
        },
    }
    done = subprocess.run(
        [node(), str(JS / "scenario.mjs")],
        input=json.dumps(given),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    out: dict[str, Any] = json.loads(done.stdout)
    return out


@pytest.mark.parametrize(
    "step",
    [
        "publish",
        "search_paging",
        "post_search",
        "count_summary",
        "count_zero",
        "read",
        "retrieve_binary",
        "patch_visibility_status",
        "conditional_patch",
    ],
)
def test_step(report: dict[str, Any], step: str) -> None:
    outcome = report["steps"][step]
    assert outcome["ok"], outcome["error"]


def test_every_response_validates(report: dict[str, Any]) -> None:
    assert not report["serverErrors"], report["serverErrors"]
    bodies = report["bodies"]
    assert len(bodies) >= 10
    assert not report["invalid"], f"npm fhir validator refused: {report['invalid']}"
    r4b = [(i, b.get("resourceType"), e) for i, b in enumerate(bodies) if (e := r4b_errors(b))]
    assert not r4b, f"fhir.resources (R4B) refused: {r4b}"
