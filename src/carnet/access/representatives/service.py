"""Legal representatives (dmp.md §1, rule 4 of §3; R1111-50): a person, identified by their own
INS, who acts for a minor or a protected adult; naming or removing one is the patient's
decision (as a consent is), and changes who may read the record."""

from __future__ import annotations

from carnet.access.context import Context
from carnet.access.guard import NOT_FOUND
from carnet.access.representatives.repository import exists, of_record
from carnet.access.unit_of_work import Unit
from carnet.domain.actions import Action
from carnet.domain.errors import NotFound, Reason, Rejected
from carnet.domain.representatives import LEGAL_ROLES, Representative, RepresentativeInput
from carnet.store.batch import Delete, Insert, Update
from carnet.store.tables import records, representatives


class RepresentativeService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.actor = ctx.actor
        self.guard = ctx.guard

    async def add(self, record_id: str, given: RepresentativeInput) -> Representative:
        if given.relationship not in LEGAL_ROLES:
            raise Rejected(
                "the relationship must say a legal representative (GUARD, PRN, MTH, FTH, LEGAL)",
                field="representative.relationship",
                reason=Reason.UNKNOWN_CODE,
            )

        async def operation(unit: Unit) -> Representative:
            loaded = await self.ctx.facts.load(unit, record_id)
            facts = loaded.facts if loaded else None
            detail = f"{given.relationship} ins:{given.ins.value}"
            self.guard.require_visible(
                unit, Action.REPRESENTATIVE_ADD, Action.RECORD_READ, facts, detail=detail
            )
            assert loaded is not None
            self.guard.check(unit, Action.REPRESENTATIVE_ADD, facts, detail=detail, hide=False)
            if given.ins.value == loaded.record.identity.ins.value:
                raise Rejected(
                    "the patient is not their own representative",
                    field="representative.ins",
                    reason=Reason.MISMATCH,
                )
            now = self.ctx.now()
            if not await exists(unit, record_id, given.ins.value):
                unit.add(
                    Insert(
                        representatives,
                        [
                            {
                                "record_id": record_id,
                                "representative_ins": given.ins.value,
                                "relationship": given.relationship,
                                "recorded_by": self.actor.id,
                                "created_at": now,
                            }
                        ],
                    )
                )
                self._bump(unit, record_id, loaded.rules_version)
            return Representative(record_id, given.ins, given.relationship, self.actor.id, now)

        return await self.ctx.write(operation)

    def _bump(self, unit: Unit, record_id: str, rules_version: int) -> None:
        unit.add(
            Update(
                records,
                where={"record_id": record_id, "rules_version": rules_version},
                values={"rules_version": rules_version + 1},
            )
        )

    async def list(self, record_id: str) -> list[Representative]:
        async def operation(unit: Unit) -> list[Representative]:
            loaded = await self.ctx.facts.load(unit, record_id)
            if loaded is None:
                return []
            decision = self.guard.allows(Action.REPRESENTATIVE_READ, loaded.facts)
            self.guard.trace(unit, Action.REPRESENTATIVE_READ, decision, record_id=record_id)
            if not decision:
                return []
            return await of_record(unit, record_id, loaded.record.identity.ins.oid)

        return await self.ctx.read(operation)

    async def remove(self, representative_id: str) -> None:
        record_id, _, ins_value = representative_id.partition("-")

        async def operation(unit: Unit) -> None:
            loaded = await self.ctx.facts.load(unit, record_id)
            facts = loaded.facts if loaded else None
            detail = f"ins:{ins_value}"
            self.guard.require_visible(
                unit, Action.REPRESENTATIVE_REMOVE, Action.RECORD_READ, facts, detail=detail
            )
            assert loaded is not None
            self.guard.check(unit, Action.REPRESENTATIVE_REMOVE, facts, detail=detail, hide=False)
            if not await exists(unit, record_id, ins_value):
                raise NotFound(NOT_FOUND)
            unit.add(
                Delete(
                    representatives,
                    {"record_id": record_id, "representative_ins": ins_value},
                )
            )
            self._bump(unit, record_id, loaded.rules_version)

        await self.ctx.write(operation)
