"""Fixtures of the client proof: one real carnet server per test module (per backend), a
professional with a fresh RPPS, two records of test INS, and one of them seeded with
:data:`tests.clients.scenario.SEEDED` documents (published through HTTP with the MHD 4.2.3
SubmissionSet shape, ``usual`` uniqueId and ``official`` entryUUID) so that paging and counting
have something to walk.

The client scenarios run in order inside a module and share its :class:`World` (each step
records what the next ones use).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.clients.scenario import SEEDED, publication
from tests.clients.validate import Recorder
from tests.conftest import Server, running_server
from tests.factories import FHIR_JSON, Factory, created_doc_ids, random_rpps


@dataclass
class World:
    server: Server
    base: str  # the FHIR base, http://127.0.0.1:port/fhir
    token: str  # the professional's bearer token (no "Bearer ")
    rpps: str
    ins: str  # the seeded record
    pid: str
    seeded: list[str]  # its documents' ids
    seeded_unique_ids: list[str]
    other_ins: str  # the record the client publishes into
    other_pid: str
    recorder: Recorder = field(default_factory=Recorder)
    state: dict[str, Any] = field(default_factory=dict)  # what a step leaves to the next ones

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture(scope="module")
def world(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with (
        running_server(backend, tmp_path_factory.mktemp(f"carnet-clients-{backend}")) as srv,
        httpx.Client(base_url=srv.url, timeout=60) as http,
    ):
        factory = Factory(http)
        rpps = random_rpps()
        pro = factory.professional(rpps=rpps)
        ins, pid = factory.open_record(pro)
        other_ins, other_pid = factory.open_record(pro)
        seed = publication(ins, SEEDED, folder=False, entry_uuid=True, author=rpps)
        r = http.post("/fhir", json=seed.bundle, headers={**pro, **FHIR_JSON})
        seeded = created_doc_ids(r)
        assert len(seeded) == SEEDED, r.text
        yield World(
            server=srv,
            base=f"{srv.url}/fhir",
            token=pro["Authorization"].removeprefix("Bearer "),
            rpps=rpps,
            ins=ins,
            pid=pid,
            seeded=seeded,
            seeded_unique_ids=seed.doc_unique_ids,
            other_ins=other_ins,
            other_pid=other_pid,
        )
