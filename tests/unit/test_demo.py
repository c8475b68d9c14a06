"""`make run`'s demo data: loaded through the access service, idempotent, readable by whom the
rules allow."""

from __future__ import annotations

import asyncio
from pathlib import Path

from carnet.access.core import Core
from carnet.demo.loader import _patient_actor, load_demo
from carnet.demo.people import PATIENTS, PROFESSIONALS
from carnet.domain.professionals import check_finess, check_idnatps
from carnet.domain.search import DocumentCriteria
from carnet.settings import Settings


def test_demo_loads_once_and_follows_the_rules(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, dev_issuer=True, allow_test_ins=True)
    first = asyncio.run(load_demo(settings))
    assert first.records_created == len(PATIENTS)
    assert first.documents_created == first.documents_total == 6 * len(PATIENTS)
    again = asyncio.run(load_demo(settings))
    assert again.records_created == 0 and again.documents_created == 0

    async def visible(actor_kind: str) -> int:
        core = await Core.start(settings)
        try:
            actor = (
                _patient_actor(PATIENTS[0])
                if actor_kind == "patient"
                else PROFESSIONALS[6 if actor_kind == "dentist" else 0].actor()
            )
            page = await core.scope(actor).documents.search(DocumentCriteria(count=100))
            assert page.total is not None
            return page.total
        finally:
            await core.close()

    assert asyncio.run(visible("patient")) == 6
    # the médecin traitant (who opened the records) reads every demo document
    assert asyncio.run(visible("gp")) == 6 * len(PATIENTS)
    # the dentist was never authorised and authored nothing
    assert asyncio.run(visible("dentist")) == 0


def test_demo_cast_identifiers_carry_valid_keys() -> None:
    """The demo cast's RPPS and FINESS numbers pass the same checks as real ones."""
    for pro in PROFESSIONALS:
        assert check_idnatps(pro.rpps, field="rpps") == pro.rpps
        assert check_finess(pro.structure, field="structure") == pro.structure
