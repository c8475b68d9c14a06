"""Consents (dmp.md §2-§3; DMP TD0.3): the patient authorises and blocks professionals and care
teams, and chooses the three emergency consents; a professional may record the patient's consent
to consultation, never a block. One active decision per professional: a new one replaces it.
Emergency consents live on the record (one source of truth) and are shown as consents."""

from __future__ import annotations

from dataclasses import replace

from carnet.access.consents.repository import active_for, of_record, one, source_column
from carnet.access.context import Context
from carnet.access.facts import LoadedRecord
from carnet.access.guard import NOT_FOUND
from carnet.access.policy import ConsentFacts
from carnet.access.records.repository import open_record, save_version
from carnet.access.unit_of_work import Unit
from carnet.domain.actions import Action
from carnet.domain.actors import ActorKind
from carnet.domain.clock import new_id
from carnet.domain.consents import (
    Consent,
    ConsentDecision,
    ConsentInput,
    ConsentStatus,
    EmergencyConsentView,
    StoredConsent,
    emergency_purpose_of_id,
)
from carnet.domain.errors import NotFound, Reason, Rejected, Stale
from carnet.domain.records import EmergencyConsents, EmergencyPurpose, PatientRef, Record
from carnet.store.batch import Insert, Update
from carnet.store.tables import consents, records


def emergency_views(record: Record) -> list[EmergencyConsentView]:
    """The record's emergency consents, as consents."""
    e = record.emergency
    values = {
        EmergencyPurpose.CENTRE_15: e.centre15,
        EmergencyPurpose.BRIS_DE_GLACE: e.bris_de_glace,
        EmergencyPurpose.MASKED: e.masked,
    }
    return [
        EmergencyConsentView(
            record.record_id,
            purpose,
            allowed,
            record.version_id,
            record.last_updated,
        )
        for purpose, allowed in values.items()
    ]


class ConsentService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.actor = ctx.actor
        self.guard = ctx.guard

    def _names(self) -> list[str]:
        return [v for v in (self.actor.rpps, self.actor.structure) if v]

    async def _target(self, unit: Unit, patient: PatientRef) -> LoadedRecord | None:
        if patient.record_id is not None:
            return await self.ctx.facts.load(unit, patient.record_id)
        assert patient.ins is not None
        return await self.ctx.facts.load_by_ins(unit, patient.ins)

    def _visible(
        self, unit: Unit, action: Action, loaded: LoadedRecord | None, detail: str
    ) -> None:
        """Refusing an operation on a record the actor cannot even know of: as if missing."""
        facts = loaded.facts if loaded else None
        if loaded is not None and (
            self.guard.allows(Action.RECORD_STATUS, facts)
            or self.guard.allows(Action.RECORD_READ, facts)
        ):
            return
        self.guard.require_visible(unit, action, Action.RECORD_READ, facts, detail=detail)

    # -- create -----------------------------------------------------------------------------------
    async def create(self, given: ConsentInput) -> Consent:
        async def operation(unit: Unit) -> Consent:
            loaded = await self._target(unit, given.patient)
            if given.purpose is not None:
                detail = f"emergency {given.purpose.value} {given.decision.value}"
                self._visible(unit, Action.CONSENT_EMERGENCY, loaded, detail)
                assert loaded is not None
                self.guard.check(
                    unit, Action.CONSENT_EMERGENCY, loaded.facts, detail=detail, hide=False
                )
                return await self._set_emergency(
                    unit, loaded, given.purpose, given.decision is ConsentDecision.PERMIT
                )
            if given.status is ConsentStatus.INACTIVE:
                action = Action.CONSENT_REVOKE  # a decision recorded as no longer holding
            elif given.decision is ConsentDecision.PERMIT:
                action = Action.CONSENT_AUTHORISE
            else:
                action = Action.CONSENT_BLOCK
            detail = f"{given.actor_kind} {given.actor_value}"
            self._visible(unit, action, loaded, detail)
            assert loaded is not None and given.actor_value and given.actor_kind
            rid = loaded.record_id
            current = await active_for(unit, rid, [given.actor_value])
            blocked = any(c.decision is ConsentDecision.DENY for c in current)
            self.guard.check(
                unit,
                action,
                loaded.facts,
                detail=detail,
                consent=ConsentFacts(target_blocked=blocked),
                hide=False,
            )
            now = self.ctx.now()
            if given.status is ConsentStatus.ACTIVE:  # one active decision per professional
                for c in current:
                    self._deactivate(unit, c, now)
            stored = StoredConsent(
                record_id=rid,
                consent_id=f"{rid}-{new_id()[:20]}",
                decision=given.decision,
                actor_kind=given.actor_kind,
                actor_system=given.actor_system or "",
                actor_value=given.actor_value,
                status=given.status,
                version_id=1,
                recorded_by=self.actor.id,
                created_at=now,
                last_updated=now,
                source=given.source,
            )
            unit.add(
                Insert(
                    consents,
                    [
                        {
                            "record_id": rid,
                            "consent_id": stored.consent_id,
                            "decision": stored.decision.value,
                            "actor_system": stored.actor_system,
                            "actor_value": stored.actor_value,
                            "actor_kind": stored.actor_kind.value,
                            "status": stored.status.value,
                            "version_id": 1,
                            "recorded_by": stored.recorded_by,
                            "created_at": now,
                            "last_updated": now,
                            "resource": source_column(given.source),
                        }
                    ],
                )
            )
            self._bump(unit, loaded)
            return stored

        return await self.ctx.write(operation)

    def _deactivate(self, unit: Unit, c: StoredConsent, now: object) -> None:
        unit.add(
            Update(
                consents,
                where={
                    "record_id": c.record_id,
                    "consent_id": c.consent_id,
                    "version_id": c.version_id,
                },
                values={
                    "status": ConsentStatus.INACTIVE.value,
                    "version_id": c.version_id + 1,
                    "last_updated": now,
                },
            )
        )

    def _bump(self, unit: Unit, loaded: LoadedRecord) -> None:
        """Authorisations and blocks are facts of the policy: their record's rules move on."""
        unit.add(
            Update(
                records,
                where={"record_id": loaded.record_id, "rules_version": loaded.rules_version},
                values={"rules_version": loaded.rules_version + 1},
            )
        )

    async def _set_emergency(
        self, unit: Unit, loaded: LoadedRecord, purpose: EmergencyPurpose, allowed: bool
    ) -> EmergencyConsentView:
        record = await open_record(unit, loaded.record, loaded.sealed)
        now = self.ctx.now()
        emergency = replace(record.emergency, **{purpose.attribute: allowed})
        updated = replace(
            record, emergency=emergency, version_id=record.version_id + 1, last_updated=now
        )
        await save_version(unit, record, updated, loaded.rules_version, policy_changed=True)
        return EmergencyConsentView(record.record_id, purpose, allowed, updated.version_id, now)

    # -- read -------------------------------------------------------------------------------------
    async def search(self, record_ids: list[str]) -> list[Consent]:
        """The consents of the records named, as the actor may see them: all of them for the
        patient (and representatives), a professional's own for a professional."""

        async def operation(unit: Unit) -> list[Consent]:
            out: list[Consent] = []
            names = set(self._names())
            for rid in record_ids:
                loaded = await self.ctx.facts.load(unit, rid)
                if loaded is None:
                    continue
                decision = self.guard.allows(Action.CONSENT_READ, loaded.facts)
                self.guard.trace(unit, Action.CONSENT_READ, decision, record_id=rid)
                if not decision:
                    continue
                for c in await of_record(unit, rid):
                    about = ConsentFacts(about_actor=c.actor_value in names)
                    if self.guard.allows(Action.CONSENT_READ, loaded.facts, consent=about):
                        out.append(c)
                if self.guard.allows(
                    Action.CONSENT_READ, loaded.facts, consent=ConsentFacts(about_actor=False)
                ):
                    out += emergency_views(loaded.record)
            return out

        return await self.ctx.read(operation)

    async def read(self, consent_id: str) -> Consent:
        rid = consent_id.split("-", 1)[0]
        found = [c for c in await self.search([rid]) if _id_of(c) == consent_id]
        if not found:
            raise NotFound(NOT_FOUND)
        return found[0]

    # -- revoke and update ---------------------------------------------------------------------
    async def revoke(self, consent_id: str, expected_version: int | None = None) -> Consent:
        """The consent stops applying (DELETE, or an update to status inactive); an emergency
        consent goes back to its default."""
        rid = consent_id.split("-", 1)[0]

        async def operation(unit: Unit) -> Consent:
            loaded = await self.ctx.facts.load(unit, rid)
            purpose = emergency_purpose_of_id(consent_id)
            detail = (
                f"emergency {purpose.value} back to its default"
                if purpose
                else f"revoke {consent_id}"
            )
            self.guard.check(
                unit, Action.CONSENT_REVOKE, loaded.facts if loaded else None, detail=detail
            )
            assert loaded is not None
            if purpose is not None:
                default = getattr(EmergencyConsents(), purpose.attribute)
                return await self._set_emergency(unit, loaded, purpose, bool(default))
            stored = await one(unit, rid, consent_id)
            if stored is None:
                raise NotFound(NOT_FOUND)
            if expected_version is not None and expected_version != stored.version_id:
                raise Stale(
                    f"the consent is at version {stored.version_id}, not {expected_version}",
                    field="version",
                )
            if stored.status is not ConsentStatus.ACTIVE:
                return stored  # revoking a stale decision must not end the current one
            now = self.ctx.now()
            self._deactivate(unit, stored, now)
            self._bump(unit, loaded)
            return replace(
                stored,
                status=ConsentStatus.INACTIVE,
                version_id=stored.version_id + 1,
                last_updated=now,
            )

        return await self.ctx.write(operation)

    async def update(
        self, consent_id: str, given: ConsentInput, expected_version: int | None = None
    ) -> Consent:
        purpose = emergency_purpose_of_id(consent_id)
        if purpose is not None:
            if given.purpose is not purpose:
                raise Rejected(
                    f"this is the {purpose.value} emergency consent",
                    field="consent.purpose",
                    reason=Reason.MISMATCH,
                )
            rid = consent_id.split("-", 1)[0]

            async def operation(unit: Unit) -> Consent:
                loaded = await self.ctx.facts.load(unit, rid)
                self.guard.check(
                    unit,
                    Action.CONSENT_EMERGENCY,
                    loaded.facts if loaded else None,
                    detail=f"emergency {purpose.value} {given.decision.value}",
                )
                assert loaded is not None
                return await self._set_emergency(
                    unit, loaded, purpose, given.decision is ConsentDecision.PERMIT
                )

            return await self.ctx.write(operation)
        if given.status is ConsentStatus.INACTIVE:
            return await self.revoke(consent_id, expected_version)
        raise Rejected(
            "a stored authorisation or block only changes to inactive; a new decision is a new "
            "consent",
            field="consent.status",
            reason=Reason.STATE,
        )


def _id_of(c: Consent) -> str:
    return c.consent_id


__all__ = ["ActorKind", "ConsentService", "emergency_views"]
