"""Raw uploads no document names are purged (issue 7: "Staged Binaries never attached are never
purged", a disk that fills): by the server every CARNET_STAGED_PURGE_INTERVAL seconds, and by
``carnet purge-uploads``; each removal the operator's decision, traced."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from carnet.access.core import Core
from carnet.domain.actors import Actor, ActorKind
from carnet.store.tables import audit_events, binaries, contents
from tests.conftest import Server, running_server
from tests.factories import FHIR_JSON, Factory, docref, fetch_sql, pdf_bytes, random_rpps

OPERATOR = Actor(kind=ActorKind.OPERATOR, subject="test-purge", issuer="carnet")


@pytest.fixture(scope="module")
def purging_server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(
        backend,
        tmp_path_factory.mktemp(f"carnet-purge-{backend}"),
        staged_max_age_seconds=2,
        staged_purge_interval_seconds=1,
    ) as srv:
        yield srv


def _upload(client: httpx.Client, headers: dict[str, str], pid: str, body: bytes) -> str:
    r = client.post(
        "/fhir/Binary",
        content=body,
        headers={
            **headers,
            "Content-Type": "application/pdf",
            "X-Security-Context": f"Patient/{pid}",
        },
    )
    assert r.status_code == 201, r.text
    return str(r.headers["location"].rsplit("/Binary/", 1)[1])


def test_the_server_purges_abandoned_uploads(purging_server: Server) -> None:
    url = purging_server.settings.sqlalchemy_url
    with httpx.Client(base_url=purging_server.url, timeout=60) as client:
        factory = Factory(client)
        rpps = random_rpps()
        pro = factory.professional(rpps=rpps)
        ins, pid = factory.open_record(pro)
        abandoned = _upload(client, pro, pid, pdf_bytes(b"abandoned"))
        shared_body = pdf_bytes(b"shared")
        named = _upload(client, pro, pid, shared_body)
        twin = _upload(client, pro, pid, shared_body)  # same content, never named
        r = client.post(
            "/fhir/DocumentReference",
            json=docref(ins, binary_url=f"Binary/{named}", author_rpps=rpps),
            headers={**pro, **FHIR_JSON},
        )
        assert r.status_code == 201, r.text
        doc_url = r.json()["content"][0]["attachment"]["url"]

        deadline = time.monotonic() + 20
        left: set[str] = set()
        while time.monotonic() < deadline:
            left = {
                row[0]
                for row in fetch_sql(
                    url, select(binaries.c.binary_id).where(binaries.c.record_id == pid)
                )
            }
            if abandoned not in left and twin not in left:
                break
            time.sleep(0.5)
        assert left == {named}, left
        # the abandoned content is gone; the content a document names stays, and is served
        stored = fetch_sql(url, select(contents.c.sha256).where(contents.c.record_id == pid))
        assert len(stored) == 1
        served = client.get("/fhir/Binary/" + doc_url.rsplit("/Binary/", 1)[1], headers=pro)
        assert served.status_code == 200 and served.content == shared_body
        # naming a purged upload now is refused (422), not a 500
        r = client.post(
            "/fhir/DocumentReference",
            json=docref(ins, binary_url=f"Binary/{abandoned}", author_rpps=rpps),
            headers={**pro, **FHIR_JSON},
        )
        assert r.status_code == 422, r.text
        # each removal is traced as the operator's decision
        traces = fetch_sql(
            url,
            select(audit_events.c.action, audit_events.c.outcome, audit_events.c.actor_kind).where(
                audit_events.c.record_id == pid, audit_events.c.action == "binary.purge"
            ),
        )
        assert sorted(traces) == [("binary.purge", "allow", "operator")] * 2, traces


async def test_purge_uploads_through_the_core(core: Core) -> None:
    # nothing to purge in an empty store; the command's path runs end to end
    assert await core.purge_stale_uploads(OPERATOR) == 0
    assert await core.scope(OPERATOR).lifecycle.stale_uploads(timedelta(0)) == []
