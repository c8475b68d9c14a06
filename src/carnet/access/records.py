"""Record operations of the scoped service (dmp.md §2; TD0.2, TD1.1, TD1.2)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import time, timedelta
from typing import Any

import orjson
from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from carnet.access.base import NOT_FOUND, ScopeBase
from carnet.access.policy import Action, RecordFacts, RecordState, Relation
from carnet.domain.actors import RPPS_SYSTEM, ActorKind
from carnet.domain.clock import iso, new_id, utcnow
from carnet.domain.ins import Ins
from carnet.domain.notifications import set_preferences
from carnet.domain.records import EmergencyConsents, Record, normalise_name
from carnet.domain.search import DateRange
from carnet.errors import Conflict, Forbidden, NotFound, PreconditionFailed, UnprocessableEntity
from carnet.fhir.consent_resource import render_consent
from carnet.fhir.extensions import NOTIFICATION_PREFERENCES, find_extension
from carnet.fhir.patient_resource import (
    emergency_consents,
    identity_from_patient,
    render_patient,
    requested_state,
    require_qualified,
    treating_physician_of,
)
from carnet.store.rows import record_from_row, record_values
from carnet.store.tables import (
    consents,
    objections,
    record_history,
    record_professionals,
    records,
)


@dataclass(frozen=True, slots=True)
class RecordCriteria:
    identifiers: list[tuple[str | None, str]] = field(default_factory=list)
    family: list[str] = field(default_factory=list)
    given: list[str] = field(default_factory=list)
    birthdate: list[DateRange] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)


def _birth_date_matches(birth_date: str, d: DateRange) -> bool:
    """FHIR date search on a birth date (a day, YYYY-MM-DD: its text sorts as the date does).
    The searched value is the range [lo, hi) of its precision."""
    if not birth_date:
        return False
    lo = d.lo.date().isoformat()
    hi_day = d.hi.date() if d.hi.time() == time.min else d.hi.date() + timedelta(days=1)
    hi = hi_day.isoformat()
    within = lo <= birth_date < hi
    return {
        "eq": within,
        "ap": within,
        "ne": not within,
        "gt": birth_date >= hi,
        "sa": birth_date >= hi,
        "ge": birth_date >= lo,
        "lt": birth_date < lo,
        "eb": birth_date < lo,
        "le": birth_date < hi,
    }[d.prefix]


def _traits_match(record: Record, criteria: RecordCriteria) -> bool:
    family = normalise_name(record.identity.family)
    given = normalise_name(record.identity.given)
    names = given.split()
    return (
        all(family.startswith(normalise_name(f)) for f in criteria.family)
        and all(
            given.startswith(normalise_name(g))
            or any(n.startswith(normalise_name(g)) for n in names)
            for g in criteria.given
        )
        and all(_birth_date_matches(record.identity.birth_date, d) for d in criteria.birthdate)
    )


@dataclass(frozen=True, slots=True)
class RecordView:
    record: Record
    full: bool  # False: status only (TD0.2)
    access: str  # the professional's access: "read" or "none"


class RecordOps(ScopeBase):
    def _consent(self, record: Record) -> dict[str, str | None]:
        return {
            "by": record.consent_by,
            "date": iso(record.consent_at),
            "structure": record.consent_structure,
        }

    async def record_objection(self, resource: dict[str, Any]) -> Ins:
        """Record a person's objection to the creation of their record (dmp.md §2)."""
        identity = identity_from_patient(resource, allow_test_ins=self.settings.allow_test_ins)
        facts = RecordFacts(record_id="", state=RecordState.ACTIVE, ins=identity.ins.value)
        decision = self.decide(Action.RECORD_CREATE, facts)
        if not decision:
            raise await self.deny(Action.RECORD_CREATE, None, decision, hide=False)
        async with self.services.engine.begin() as conn:
            existing = (
                await conn.execute(
                    select(objections.c.ins_value).where(
                        objections.c.ins_oid == identity.ins.oid,
                        objections.c.ins_value == identity.ins.value,
                    )
                )
            ).first()
            if existing is None:
                await conn.execute(
                    objections.insert().values(
                        ins_oid=identity.ins.oid,
                        ins_value=identity.ins.value,
                        recorded_at=utcnow(),
                        recorded_by=self.actor.id,
                        structure=self.actor.structure,
                    )
                )
            await self.trace(conn, "record.objection", None, decision, detail=str(identity.ins))
        return identity.ins

    async def create_record(self, resource: dict[str, Any]) -> Record:
        """Open a record (TD1.1) with the consent taken from the request itself."""
        identity = identity_from_patient(resource, allow_test_ins=self.settings.allow_test_ins)
        require_qualified(identity, "only a qualified INS may label health data (dmp.md §2)")
        facts = RecordFacts(record_id="", state=RecordState.ACTIVE, ins=identity.ins.value)
        decision = self.decide(Action.RECORD_CREATE, facts)
        if not decision:
            raise await self.deny(Action.RECORD_CREATE, None, decision, hide=False)
        emergency = emergency_consents(resource, EmergencyConsents())
        now = utcnow()
        record_id = new_id()
        version = 1
        record = Record(
            record_id=record_id,
            identity=identity,
            state=RecordState.ACTIVE,
            consent_by=self.actor.id,
            consent_by_kind=self.actor.kind.value,
            consent_structure=self.actor.structure,
            consent_at=now,
            emergency=emergency,
            version_id=version,
            created_at=now,
            last_updated=now,
            closed_at=None,
            resource=b"",
            treating_physician=treating_physician_of(resource),
        )
        record = replace(
            record,
            resource=render_patient(
                resource,
                record_id=record_id,
                version_id=version,
                last_updated=iso(now),
                state=RecordState.ACTIVE,
                emergency=emergency,
                consent=self._consent(record),
            ),
        )
        await self.services.keys.create(record_id)
        try:
            async with self.services.engine.begin() as conn:
                await self._refuse_objection_or_duplicate(conn, identity.ins)
                sealed = await self.seal(record_id, record.resource)
                await conn.execute(records.insert().values(**record_values(record, sealed)))
                await conn.execute(
                    record_history.insert().values(
                        record_id=record_id,
                        version_id=version,
                        last_updated=now,
                        resource=sealed,
                    )
                )
                if self.actor.kind is ActorKind.PROFESSIONAL:
                    await conn.execute(
                        record_professionals.insert().values(
                            record_id=record_id,
                            professional_id=self.actor.id,
                            relation=Relation.OPENED.value,
                            first_at=now,
                        )
                    )
                    await self._authorise_opener(conn, record_id, now)
                await self.trace(conn, Action.RECORD_CREATE, record_id, decision)
                await self._notification_preferences(conn, record_id, resource)
        except IntegrityError:
            raise Conflict(f"a record already exists for INS {identity.ins.value}") from None
        return record

    async def _notification_preferences(
        self, conn: AsyncConnection, record_id: str, resource: dict[str, Any]
    ) -> None:
        """Patient.telecom (system email) is where the patient is told; carnet's extension
        ``dmp-notification-preferences`` carries the choices (docs/notifications.md)."""
        email = next(
            (
                str(t["value"])
                for t in resource.get("telecom") or []
                if isinstance(t, dict) and t.get("system") == "email" and t.get("value")
            ),
            None,
        )
        changes: dict[str, Any] = {"email": email}
        ext = find_extension(resource.get("extension"), NOTIFICATION_PREFERENCES)
        subs = ext.get("extension") if ext is not None else None
        if isinstance(subs, list):
            for sub in subs:
                if not isinstance(sub, dict):
                    continue
                if sub.get("url") == "newDocuments" and isinstance(sub.get("valueBoolean"), bool):
                    changes["new_documents"] = sub["valueBoolean"]
                elif sub.get("url") == "portal" and isinstance(sub.get("valueBoolean"), bool):
                    changes["portal"] = sub["valueBoolean"]
                elif sub.get("url") == "accessNotices" and sub.get("valueCode") in (
                    "digest",
                    "immediate",
                    "none",
                ):
                    changes["access_mode"] = sub["valueCode"]
                else:
                    raise UnprocessableEntity(
                        "dmp-notification-preferences takes newDocuments (valueBoolean), portal "
                        "(valueBoolean) and accessNotices (valueCode digest, immediate or none)",
                        expression="Patient.extension:notificationPreferences",
                    )
        await set_preferences(conn, record_id, **changes)

    async def _authorise_opener(self, conn: AsyncConnection, record_id: str, now: Any) -> None:
        """The consent given at creation covers consultation by the professional who opened
        the record: recorded as an authorisation, visible to the patient and revocable."""
        if not self.actor.rpps:
            return
        consent_id = f"{record_id}-{new_id()[:20]}"
        body = render_consent(
            {
                "resourceType": "Consent",
                "provision": {
                    "type": "permit",
                    "actor": [
                        {
                            "reference": {
                                "identifier": {"system": RPPS_SYSTEM, "value": self.actor.rpps}
                            }
                        }
                    ],
                },
            },
            consent_id=consent_id,
            record_id=record_id,
            version_id=1,
            last_updated=iso(now),
            status="active",
            recorded_by=self.actor.id,
        )
        await conn.execute(
            consents.insert().values(
                record_id=record_id,
                consent_id=consent_id,
                decision="permit",
                actor_system=RPPS_SYSTEM,
                actor_value=self.actor.rpps,
                actor_kind="professional",
                status="active",
                version_id=1,
                recorded_by=self.actor.id,
                created_at=now,
                last_updated=now,
                resource=orjson.dumps(body),
            )
        )

    async def _refuse_objection_or_duplicate(self, conn: AsyncConnection, ins: Ins) -> None:
        objected = (
            await conn.execute(
                select(objections.c.recorded_at).where(
                    objections.c.ins_oid == ins.oid, objections.c.ins_value == ins.value
                )
            )
        ).first()
        if objected is not None:
            raise Conflict(
                f"this person objected to the creation of a record on {iso(objected[0])}: "
                "no record is created"
            )
        existing = (
            await conn.execute(
                select(records.c.record_id, records.c.state).where(
                    records.c.ins_oid == ins.oid, records.c.ins_value == ins.value
                )
            )
        ).first()
        if existing is not None and existing[1] == RecordState.DESTROYED.value:
            # a destroyed record leaves a tombstone; the person may open a new record
            await conn.execute(records.delete().where(records.c.record_id == existing[0]))
            existing = None
        if existing is not None:
            raise Conflict(
                f"a record already exists for INS {ins.value} (state {existing[1]}); "
                "find it with GET Patient?identifier=…"
            )

    async def read_record(self, record_id: str, version: int | None = None) -> Record:
        async with self.transaction() as conn:
            record, facts = await self._load_record(conn, record_id)
            decision = self.decide(Action.RECORD_READ, facts)
            if record is None or not decision:
                await self.trace(conn, Action.RECORD_READ, record_id if record else None, decision)
                raise NotFound(NOT_FOUND)
            if version is not None and version != record.version_id:
                row = (
                    await conn.execute(
                        select(record_history.c.resource).where(
                            record_history.c.record_id == record_id,
                            record_history.c.version_id == version,
                        )
                    )
                ).first()
                if row is None:
                    raise NotFound(f"Patient/{record_id} has no version {version}")
                plain = await self.unseal(record_id, bytes(row[0]))
                record = replace(record, version_id=version, resource=plain)
            await self.trace(conn, Action.RECORD_READ, record_id, decision)
            return await self.opened(record)

    async def update_record(
        self, record_id: str, resource: dict[str, Any], if_match: int | None
    ) -> Record:
        """Update the Patient (TD1.2: identity, emergency consents, close / reopen)."""
        identity = identity_from_patient(resource, allow_test_ins=self.settings.allow_test_ins)
        async with self.transaction() as conn:
            record, facts = await self._load_record(conn, record_id)
            read = self.decide(Action.RECORD_READ, facts)
            wanted = requested_state(resource)
            lifecycle = record is not None and wanted is not None and wanted is not record.state
            decision = self.decide(
                Action.RECORD_LIFECYCLE if lifecycle else Action.RECORD_UPDATE, facts
            )
            if record is None or not read:
                await self.trace(conn, Action.RECORD_UPDATE, record_id if record else None, read)
                raise NotFound(NOT_FOUND)
            if not decision:
                await self.trace(conn, Action.RECORD_UPDATE, record_id, decision)
                raise Forbidden(f"not allowed: {decision.reason}")
            if if_match is not None and if_match != record.version_id:
                raise PreconditionFailed(
                    f"Patient/{record_id} is at version {record.version_id}, not {if_match}"
                )
            if identity.ins != record.identity.ins:
                raise UnprocessableEntity(
                    "the INS of a record cannot change (it is the record's key)",
                    expression="Patient.identifier",
                )
            state = wanted or record.state
            if record.state is RecordState.CLOSED and state is RecordState.CLOSED:
                raise Forbidden("the record is closed: reopen it first")
            now = utcnow()
            version = record.version_id + 1
            emergency = emergency_consents(resource, record.emergency)
            if emergency != record.emergency and self.actor.kind is not ActorKind.PATIENT:
                raise Forbidden("only the patient changes their emergency consents")
            treating = treating_physician_of(resource)
            if treating != record.treating_physician and self.actor.kind is not ActorKind.PATIENT:
                raise Forbidden("only the patient designates their médecin traitant")
            updated = replace(
                record,
                identity=identity,
                state=state,
                emergency=emergency,
                version_id=version,
                last_updated=now,
                closed_at=(now if state is RecordState.CLOSED else None),
                treating_physician=treating,
            )
            updated = replace(
                updated,
                resource=render_patient(
                    resource,
                    record_id=record_id,
                    version_id=version,
                    last_updated=iso(now),
                    state=state,
                    emergency=emergency,
                    consent=self._consent(record),
                ),
            )
            sealed = await self.seal(record_id, updated.resource)
            values = record_values(updated, sealed)
            result = await conn.execute(
                records.update()
                .where(records.c.record_id == record_id, records.c.version_id == record.version_id)
                .values(**values)
            )
            if result.rowcount != 1:
                raise PreconditionFailed(f"Patient/{record_id} changed meanwhile; read it again")
            await conn.execute(
                record_history.insert().values(
                    record_id=record_id,
                    version_id=version,
                    last_updated=now,
                    resource=sealed,
                )
            )
            await self.trace(conn, Action.RECORD_UPDATE, record_id, decision)
            await self._notification_preferences(conn, record_id, resource)
            return updated

    async def record_history(self, record_id: str) -> list[tuple[int, str, bytes]]:
        record = await self.read_record(record_id)
        async with self.services.engine.connect() as conn:
            rows = await conn.execute(
                select(
                    record_history.c.version_id,
                    record_history.c.last_updated,
                    record_history.c.resource,
                )
                .where(record_history.c.record_id == record.record_id)
                .order_by(record_history.c.version_id.desc())
            )
            return [
                (r[0], iso(r[1]), await self.unseal(record.record_id, bytes(r[2]))) for r in rows
            ]

    async def search_records(self, criteria: RecordCriteria) -> list[RecordView]:
        """Patient search. Professionals see full records they may read, and the status only
        (TD0.2) of a record they name by its exact INS."""
        query = select(records)
        conds = []
        exact_ins = bool(criteria.identifiers)
        if criteria.identifiers:
            conds.append(
                or_(
                    *[
                        and_(
                            records.c.ins_value == value.upper(),
                            *(
                                [records.c.ins_oid == system.removeprefix("urn:oid:")]
                                if system
                                else []
                            ),
                        )
                        for system, value in criteria.identifiers
                    ]
                )
            )
        if criteria.ids:
            conds.append(records.c.record_id.in_(criteria.ids))
        if self.actor.kind is ActorKind.PATIENT:
            conds.append(records.c.ins_value == (self.actor.ins or ""))
        elif self.actor.kind is ActorKind.PROFESSIONAL and not exact_ins:
            names = [v for v in (self.actor.rpps, self.actor.structure) if v]
            conds.append(
                or_(
                    records.c.treating_physician == self.actor.id,
                    records.c.record_id.in_(
                        select(record_professionals.c.record_id).where(
                            record_professionals.c.professional_id == self.actor.id
                        )
                    ),
                    records.c.record_id.in_(
                        select(consents.c.record_id).where(
                            consents.c.actor_value.in_(names),
                            consents.c.status == "active",
                            consents.c.decision == "permit",
                        )
                    ),
                )
            )
        elif self.actor.kind not in (ActorKind.PATIENT, ActorKind.PROFESSIONAL):
            return []
        query = (
            query.where(*conds)
            .order_by(records.c.record_id)
            .limit(10 * self.settings.page_size_max)
        )
        views: list[RecordView] = []
        async with self.services.engine.begin() as conn:
            rows = (await conn.execute(query)).all()
            traces = []
            for row in rows:
                record = record_from_row(row)
                facts = await self._facts(conn, record)
                read = self.decide(Action.RECORD_READ, facts)
                if read:
                    record = await self.opened(record)
                    if _traits_match(record, criteria):
                        views.append(RecordView(record, True, "read"))
                        traces.append((Action.RECORD_READ, record.record_id, read))
                    continue
                status = self.decide(Action.RECORD_STATUS, facts)
                # TD0.2 answers by the INS alone: filtering on identity traits would let a
                # professional without access test them (status only, never an oracle)
                traits = criteria.family or criteria.given or criteria.birthdate
                if status and exact_ins and not traits:
                    views.append(RecordView(record, False, "none"))
                    traces.append((Action.RECORD_STATUS, record.record_id, status))
            for action, rid, decision in sorted(traces, key=lambda t: t[1]):
                await self.trace(conn, action, rid, decision, detail="search")
        views.sort(key=lambda v: (normalise_name(v.record.identity.family), v.record.record_id))
        return views[: self.settings.page_size_max]

    @staticmethod
    def patient_json(record: Record) -> dict[str, Any]:
        data: dict[str, Any] = orjson.loads(record.resource)
        return data
