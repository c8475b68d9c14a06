"""Legal representatives (dmp.md §1, rule 4 of §3; R1111-50): a person, identified by their own
INS, who acts for a minor or a protected adult. They read the record as the patient does,
minus documents flagged ``INVISIBLE_REPRESENTANTS_LEGAUX``. Shown as FHIR RelatedPerson."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select

from carnet.access.base import NOT_FOUND, ScopeBase
from carnet.access.policy import Action
from carnet.domain.clock import iso, utcnow
from carnet.domain.ins import find_ins, parse_ins
from carnet.errors import Forbidden, NotFound, UnprocessableEntity
from carnet.store.tables import representatives

ROLE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
LEGAL_ROLES = {"GUARD", "PRN", "MTH", "FTH", "LEGAL"}


def related_person(
    record_id: str, ins_oid: str, ins_value: str, relationship: str, created_at: str
) -> dict[str, Any]:
    return {
        "resourceType": "RelatedPerson",
        "id": f"{record_id}-{ins_value}",
        "meta": {"versionId": "1", "lastUpdated": created_at},
        "active": True,
        "patient": {"reference": f"Patient/{record_id}"},
        "identifier": [{"system": f"urn:oid:{ins_oid}", "value": ins_value}],
        "relationship": [{"coding": [{"system": ROLE_SYSTEM, "code": relationship}]}],
    }


class RepresentativeOps(ScopeBase):
    async def add_representative(self, record_id: str, resource: dict[str, Any]) -> dict[str, Any]:
        idents = resource.get("identifier")
        ident = find_ins(idents) if isinstance(idents, list) else None
        if ident is None:
            raise UnprocessableEntity(
                "the representative is identified by their INS",
                expression="RelatedPerson.identifier",
            )
        ins = parse_ins(
            str(ident.get("system") or ""),
            str(ident.get("value") or ""),
            allow_test=self.settings.allow_test_ins,
            field="RelatedPerson.identifier",
        )
        codes = [
            c.get("code")
            for rel in resource.get("relationship") or []
            if isinstance(rel, dict)
            for c in rel.get("coding") or []
            if isinstance(c, dict)
        ]
        role = next((c for c in codes if c in LEGAL_ROLES), None)
        if role is None:
            raise UnprocessableEntity(
                "relationship must say a legal representative (v3-RoleCode GUARD, PRN, MTH, FTH)",
                expression="RelatedPerson.relationship",
            )
        async with self.services.engine.begin() as conn:
            record, facts = await self._load_record(conn, record_id)
            # a representative reads as the patient (masked documents included) and manages
            # consents: naming one is the patient's decision, like a consent (not RECORD_UPDATE,
            # which an authorised professional may do)
            decision = self.decide(Action.CONSENT_WRITE, facts)
            if record is None or not self.decide(Action.RECORD_READ, facts):
                raise NotFound(NOT_FOUND)
            if not decision:
                await self.trace(conn, "representative.add", record_id, decision)
                raise Forbidden(f"not allowed: {decision.reason}")
            if ins.value == record.identity.ins.value:
                raise UnprocessableEntity(
                    "the patient is not their own representative",
                    expression="RelatedPerson.identifier",
                )
            now = utcnow()
            existing = (
                await conn.execute(
                    select(representatives.c.record_id).where(
                        representatives.c.record_id == record_id,
                        representatives.c.representative_ins == ins.value,
                    )
                )
            ).first()
            if existing is None:
                await conn.execute(
                    representatives.insert().values(
                        record_id=record_id,
                        representative_ins=ins.value,
                        relationship=role,
                        recorded_by=self.actor.id,
                        created_at=now,
                    )
                )
            await self.trace(
                conn, "representative.add", record_id, decision, detail=f"{role} ins:{ins.value}"
            )
        return related_person(record_id, ins.oid, ins.value, role, iso(now))

    async def list_representatives(self, record_id: str) -> list[dict[str, Any]]:
        async with self.services.engine.begin() as conn:
            record, facts = await self._load_record(conn, record_id)
            decision = self.decide(Action.RECORD_READ, facts)
            if record is None or not decision:
                return []
            rows = await conn.execute(
                select(representatives).where(representatives.c.record_id == record_id)
            )
            out = [
                related_person(
                    record_id,
                    record.identity.ins.oid,
                    r.representative_ins,
                    r.relationship,
                    iso(r.created_at),
                )
                for r in rows
            ]
            await self.trace(conn, "representative.read", record_id, decision)
            return out

    async def remove_representative(self, related_id: str) -> None:
        record_id, _, ins_value = related_id.partition("-")
        async with self.services.engine.begin() as conn:
            record, facts = await self._load_record(conn, record_id)
            decision = self.decide(Action.CONSENT_WRITE, facts)
            if record is None or not self.decide(Action.RECORD_READ, facts):
                raise NotFound(NOT_FOUND)
            if not decision:
                await self.trace(conn, "representative.remove", record_id, decision)
                raise Forbidden(f"not allowed: {decision.reason}")
            result = await conn.execute(
                delete(representatives).where(
                    representatives.c.record_id == record_id,
                    representatives.c.representative_ins == ins_value,
                )
            )
            if not result.rowcount:
                raise NotFound(NOT_FOUND)
            await self.trace(
                conn, "representative.remove", record_id, decision, detail=f"ins:{ins_value}"
            )
