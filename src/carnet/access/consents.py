"""Consent operations of the scoped service: authorisations, blocks, care teams and emergency
consents (dmp.md §2 and §3; TD0.3). Emergency consents live on the record (one source of
truth); they are read and written as Consents too."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from carnet.access.base import NOT_FOUND, record_id_of
from carnet.access.documents import DocumentOps
from carnet.access.policy import Action, RecordFacts
from carnet.access.publish_model import SubjectRef
from carnet.domain.actors import ActorKind
from carnet.domain.clock import iso, new_id, utcnow
from carnet.domain.records import EmergencyConsents, Record
from carnet.errors import Forbidden, NotFound, PreconditionFailed, UnprocessableEntity
from carnet.fhir.consent_resource import (
    PURPOSES,
    ConsentInput,
    emergency_consent,
    parse_consent,
    purpose_of_id,
    render_consent,
    require_patient_ref,
)
from carnet.fhir.patient_resource import render_patient
from carnet.fhir.submission import subject_ref
from carnet.store.rows import record_values
from carnet.store.tables import consents, record_history, records


class ConsentOps(DocumentOps):
    async def _consent_target(
        self, conn: AsyncConnection, resource: dict[str, Any]
    ) -> tuple[Record, RecordFacts]:
        ref = require_patient_ref(resource.get("patient"))
        subject = subject_ref(ref, "Consent.patient", allow_test=self.settings.allow_test_ins)
        try:
            return await self._resolve_subject(conn, subject)
        except NotFound:
            raise NotFound(NOT_FOUND) from None

    def _consent_action(self, parsed: ConsentInput) -> Action:
        if (
            self.actor.kind is ActorKind.PROFESSIONAL
            and parsed.purpose is None
            and parsed.decision == "permit"
            and parsed.status == "active"
        ):
            return Action.CONSENT_AUTHORISE
        return Action.CONSENT_WRITE

    async def create_consent(self, resource: dict[str, Any]) -> dict[str, Any]:
        parsed = parse_consent(resource)
        async with self.transaction() as conn:
            record, facts = await self._consent_target(conn, resource)
            action = self._consent_action(parsed)
            decision = self.decide(action, facts)
            if not decision:
                await self.trace(
                    conn,
                    action,
                    record.record_id,
                    decision,
                    detail=f"consent {parsed.decision} {parsed.actor_value or parsed.purpose}",
                )
                if not self.decide(Action.RECORD_STATUS, facts) and not self.decide(
                    Action.RECORD_READ, facts
                ):
                    raise NotFound(NOT_FOUND)
                raise Forbidden(f"not allowed: {decision.reason}")
            if (
                action is Action.CONSENT_AUTHORISE
                and (
                    await conn.execute(
                        select(consents.c.consent_id).where(
                            consents.c.record_id == record.record_id,
                            consents.c.actor_value == parsed.actor_value,
                            consents.c.status == "active",
                            consents.c.decision == "deny",
                        )
                    )
                ).first()
                is not None
            ):
                # TD0.3 records the patient's consent; it never lifts the patient's block
                from carnet.access.policy import Decision

                blocked = Decision(
                    False,
                    "blocked",
                    "the patient blocked this professional: only the patient lifts a block",
                )
                await self.trace(
                    conn,
                    action,
                    record.record_id,
                    blocked,
                    detail=f"consent permit {parsed.actor_value}",
                )
                raise Forbidden(f"not allowed: {blocked.reason}")
            if parsed.purpose is not None:
                body = await self._set_emergency(
                    conn, record, parsed.purpose, parsed.decision == "permit"
                )
                await self.trace(
                    conn,
                    action,
                    record.record_id,
                    decision,
                    detail=f"emergency {parsed.purpose} {parsed.decision}",
                )
                return body
            now = utcnow()
            consent_id = f"{record.record_id}-{new_id()[:20]}"
            body = render_consent(
                resource,
                consent_id=consent_id,
                record_id=record.record_id,
                version_id=1,
                last_updated=iso(now),
                status=parsed.status,
                recorded_by=self.actor.id,
            )
            assert parsed.actor_value and parsed.actor_system and parsed.actor_kind
            # one active decision per professional: a new one replaces the old
            if parsed.status == "active":
                await self._deactivate(conn, record.record_id, parsed.actor_value, now)
            await conn.execute(
                consents.insert().values(
                    record_id=record.record_id,
                    consent_id=consent_id,
                    decision=parsed.decision,
                    actor_system=parsed.actor_system,
                    actor_value=parsed.actor_value,
                    actor_kind=parsed.actor_kind,
                    status=parsed.status,
                    version_id=1,
                    recorded_by=self.actor.id,
                    created_at=now,
                    last_updated=now,
                    resource=orjson.dumps(body),
                )
            )
            label = "block" if parsed.decision == "deny" else "authorise"
            await self.trace(
                conn,
                f"consent.{label}",
                record.record_id,
                decision,
                detail=f"{parsed.actor_kind} {parsed.actor_value}",
            )
            return body

    async def _deactivate(
        self, conn: AsyncConnection, record_id: str, actor_value: str, now: Any
    ) -> None:
        rows = (
            await conn.execute(
                select(consents).where(
                    consents.c.record_id == record_id,
                    consents.c.actor_value == actor_value,
                    consents.c.status == "active",
                )
            )
        ).all()
        for row in rows:
            m = row._mapping
            body = orjson.loads(m["resource"])
            version = m["version_id"] + 1
            body["status"] = "inactive"
            body["meta"] = {
                **body.get("meta", {}),
                "versionId": str(version),
                "lastUpdated": iso(now),
            }
            await conn.execute(
                update(consents)
                .where(consents.c.record_id == record_id, consents.c.consent_id == m["consent_id"])
                .values(
                    status="inactive",
                    version_id=version,
                    last_updated=now,
                    resource=orjson.dumps(body),
                )
            )

    async def _set_emergency(
        self, conn: AsyncConnection, record: Record, purpose: str, allowed: bool
    ) -> dict[str, Any]:
        field = PURPOSES[purpose]
        emergency = replace(record.emergency, **{field: allowed})
        now = utcnow()
        version = record.version_id + 1
        record = await self.opened(record)
        stored = orjson.loads(record.resource)
        updated = replace(record, emergency=emergency, version_id=version, last_updated=now)
        updated = replace(
            updated,
            resource=render_patient(
                stored,
                record_id=record.record_id,
                version_id=version,
                last_updated=iso(now),
                state=record.state,
                emergency=emergency,
                consent={
                    "by": record.consent_by,
                    "date": iso(record.consent_at),
                    "structure": record.consent_structure,
                },
            ),
        )
        result = await conn.execute(
            records.update()
            .where(
                records.c.record_id == record.record_id, records.c.version_id == record.version_id
            )
            .values(**record_values(updated, await self.seal(record.record_id, updated.resource)))
        )
        if result.rowcount != 1:
            raise PreconditionFailed("the record changed meanwhile; send again")
        await conn.execute(
            record_history.insert().values(
                record_id=record.record_id,
                version_id=version,
                last_updated=now,
                resource=await self.seal(record.record_id, updated.resource),
            )
        )
        return emergency_consent(record.record_id, purpose, allowed, iso(now), version)

    def _emergency_views(self, record: Record) -> list[dict[str, Any]]:
        e: EmergencyConsents = record.emergency
        values = {"ETREAT": e.centre15, "BTG": e.bris_de_glace, "MASKED": e.masked}
        return [
            emergency_consent(
                record.record_id, p, values[p], iso(record.last_updated), record.version_id
            )
            for p in ("ETREAT", "BTG", "MASKED")
        ]

    async def search_consents(self, record_ids: list[str]) -> list[dict[str, Any]]:
        """The consents of the records named, as the actor may see them: all of them for the
        patient (and representatives), a professional's own for a professional."""
        out: list[dict[str, Any]] = []
        async with self.services.engine.begin() as conn:
            for rid in record_ids:
                record, facts = await self._load_record(conn, rid)
                decision = self.decide(Action.CONSENT_READ, facts)
                if record is None or not decision:
                    if record is not None:
                        await self.trace(conn, Action.CONSENT_READ, rid, decision)
                    continue
                query = select(consents.c.resource).where(consents.c.record_id == rid)
                own_only = self.actor.kind is ActorKind.PROFESSIONAL
                if own_only:
                    query = query.where(
                        consents.c.actor_value.in_(
                            [v for v in (self.actor.rpps, self.actor.structure) if v]
                        )
                    )
                rows = await conn.execute(query.order_by(consents.c.created_at))
                out += [orjson.loads(r[0]) for r in rows]
                if not own_only:
                    out += self._emergency_views(record)
                await self.trace(conn, Action.CONSENT_READ, rid, decision)
        return out

    async def read_consent(self, consent_id: str) -> dict[str, Any]:
        rid = record_id_of(consent_id)
        found = [c for c in await self.search_consents([rid]) if c.get("id") == consent_id]
        if not found:
            raise NotFound(NOT_FOUND)
        return found[0]

    async def revoke_consent(self, consent_id: str, if_match: int | None = None) -> dict[str, Any]:
        """DELETE, or PUT with status inactive: the consent stops applying."""
        rid = record_id_of(consent_id)
        async with self.transaction() as conn:
            record, facts = await self._load_record(conn, rid)
            decision = self.decide(Action.CONSENT_WRITE, facts)
            if record is None or not decision:
                if record is not None:
                    await self.trace(
                        conn, Action.CONSENT_WRITE, rid, decision, detail=f"revoke {consent_id}"
                    )
                raise NotFound(NOT_FOUND)
            purpose = purpose_of_id(consent_id)
            if purpose is not None:
                default = getattr(EmergencyConsents(), PURPOSES[purpose])
                body = await self._set_emergency(conn, record, purpose, bool(default))
                await self.trace(
                    conn,
                    "consent.revoke",
                    rid,
                    decision,
                    detail=f"emergency {purpose} back to its default",
                )
                return body
            row = (
                await conn.execute(
                    select(consents).where(
                        consents.c.record_id == rid, consents.c.consent_id == consent_id
                    )
                )
            ).first()
            if row is None:
                raise NotFound(NOT_FOUND)
            m = row._mapping
            if if_match is not None and if_match != m["version_id"]:
                raise PreconditionFailed(
                    f"Consent/{consent_id} is at version {m['version_id']}, not {if_match}"
                )
            if m["status"] == "active":  # revoking a stale decision must not end the current one
                await self._deactivate(conn, rid, m["actor_value"], utcnow())
            await self.trace(
                conn,
                "consent.revoke",
                rid,
                decision,
                detail=f"{m['actor_kind']} {m['actor_value']}",
            )
            fresh = (
                await conn.execute(
                    select(consents.c.resource).where(
                        consents.c.record_id == rid, consents.c.consent_id == consent_id
                    )
                )
            ).scalar_one()
            result: dict[str, Any] = orjson.loads(fresh)
            return result

    async def update_consent(
        self, consent_id: str, resource: dict[str, Any], if_match: int | None
    ) -> dict[str, Any]:
        parsed = parse_consent(resource)
        purpose = purpose_of_id(consent_id)
        if purpose is not None:
            if parsed.purpose != purpose:
                raise UnprocessableEntity(
                    f"Consent/{consent_id} is the {purpose} emergency consent",
                    expression="Consent.provision.purpose",
                )
            async with self.transaction() as conn:
                record, facts = await self._load_record(conn, record_id_of(consent_id))
                decision = self.decide(Action.CONSENT_WRITE, facts)
                if record is None or not decision:
                    raise NotFound(NOT_FOUND)
                body = await self._set_emergency(conn, record, purpose, parsed.decision == "permit")
                await self.trace(
                    conn,
                    Action.CONSENT_WRITE,
                    record.record_id,
                    decision,
                    detail=f"emergency {purpose} {parsed.decision}",
                )
                return body
        if parsed.status == "inactive":
            return await self.revoke_consent(consent_id, if_match)
        raise UnprocessableEntity(
            "a stored authorisation or block only changes to status inactive; send a new "
            "Consent for a new decision",
            expression="Consent.status",
        )


__all__ = ["ConsentOps", "SubjectRef"]
