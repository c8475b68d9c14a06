"""Records (dmp.md §2; DMP TD0.2 status, TD1.1 create, TD1.2 update and reopen): open a record
with the patient's consent, record an objection, read it (and its versions), update it, find it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import time, timedelta

from sqlalchemy import select

from carnet.access.context import Context
from carnet.access.facts import LoadedRecord, candidate_facts
from carnet.access.records.repository import (
    find_ids,
    history_row,
    history_rows,
    open_envelope,
    open_record,
    record_values,
    save_version,
    seal_record,
    search_conditions,
    version_row,
)
from carnet.access.unit_of_work import Unit
from carnet.domain.actions import Action
from carnet.domain.actors import RPPS_SYSTEM, ActorKind
from carnet.domain.clock import new_id
from carnet.domain.errors import Conflict, NotFound, Reason, Refused, Rejected, Stale
from carnet.domain.ins import Ins
from carnet.domain.notifications import Preferences
from carnet.domain.records import (
    CreationConsent,
    EmergencyChoices,
    EmergencyConsents,
    PatientInput,
    Record,
    RecordCriteria,
    RecordState,
    RecordVersion,
    RecordView,
    normalise_name,
)
from carnet.domain.search import DateRange
from carnet.store.batch import Delete, Insert, Update
from carnet.store.preferences import (
    default_row,
    preference_changes,
    sealed_columns,
    stored_email,
)
from carnet.store.tables import (
    consents,
    notification_preferences,
    objections,
    record_history,
    record_professionals,
    records,
)

NOT_FOUND = "no such resource, or no access to it"


class RecordService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.actor = ctx.actor
        self.guard = ctx.guard

    # -- TD1.1: open a record ------------------------------------------------------------------
    async def open(self, patient: PatientInput) -> Record:
        """Open a record with the consent taken from the request itself (who, which structure,
        when). A tombstone of a destroyed record for the same INS is replaced."""
        identity = patient.identity
        identity.require_qualified("only a qualified INS may label health data (dmp.md §2)")
        record_id = new_id()
        await self.ctx.create_key(record_id)

        async def operation(unit: Unit) -> Record:
            now = self.ctx.now()
            objected, own = await self._objection(unit, identity.ins)
            candidate = candidate_facts(identity.ins, now, objected=objected, objection_own=own)
            # traced on the new record's chain (the chain of no record if refused)
            decision = self.guard.allows(Action.RECORD_CREATE, candidate)
            self.guard.trace(
                unit, Action.RECORD_CREATE, decision, record_id=record_id if decision else None
            )
            if not decision:
                raise Refused(f"not allowed: {decision.reason}")
            if objected:  # the person opens their own record: their objection is withdrawn
                self.guard.check(
                    unit, Action.RECORD_WITHDRAW, candidate, record_id=record_id, hide=False
                )
                unit.add(Delete(objections, {"ins_value": identity.ins.value}))
            await self._refuse_duplicate(unit, identity.ins)
            record = Record(
                record_id=record_id,
                identity=identity,
                state=RecordState.ACTIVE,
                consent=CreationConsent(
                    by=self.actor.id,
                    by_kind=self.actor.kind.value,
                    structure=self.actor.structure,
                    at=now,
                ),
                emergency=(patient.emergency or EmergencyChoices()).applied_to(EmergencyConsents()),
                version_id=1,
                created_at=now,
                last_updated=now,
                closed_at=None,
                treating_physician=patient.treating_physician,
                source=patient.source,
            )
            sealed = await seal_record(unit, record)
            unit.add(Insert(records, [record_values(record, sealed, 1)]))
            unit.add(Insert(record_history, [history_row(record, sealed)]))
            if self.actor.kind is ActorKind.PROFESSIONAL:
                unit.add(
                    Insert(
                        record_professionals,
                        [
                            {
                                "record_id": record_id,
                                "professional_id": self.actor.id,
                                "relation": "opened",
                                "first_at": now,
                            }
                        ],
                    )
                )
                self._authorise_opener(unit, record_id, now)
            await self._preferences(unit, record_id, patient, now)
            return record

        try:
            return await self.ctx.write(operation)
        except BaseException:
            await self.ctx.shred(record_id)  # the key of a record that was not opened
            raise

    def _authorise_opener(self, unit: Unit, record_id: str, now: object) -> None:
        """The consent given at creation covers consultation by the professional who opened
        the record: recorded as an authorisation, visible to the patient and revocable."""
        if not self.actor.rpps:
            return
        unit.add(
            Insert(
                consents,
                [
                    {
                        "record_id": record_id,
                        "consent_id": f"{record_id}-{new_id()[:20]}",
                        "decision": "permit",
                        "actor_system": RPPS_SYSTEM,
                        "actor_value": self.actor.rpps,
                        "actor_kind": "professional",
                        "status": "active",
                        "version_id": 1,
                        "recorded_by": self.actor.id,
                        "created_at": now,
                        "last_updated": now,
                        "resource": None,
                    }
                ],
            )
        )

    async def _preferences(
        self, unit: Unit, record_id: str, patient: PatientInput, now: object
    ) -> None:
        """The patient's e-mail address (sealed with the record's key) and notification
        choices (docs/notifications.md)."""
        changes = preference_changes(email=patient.email)
        if patient.preferences is not None:
            p = patient.preferences
            if p.new_documents is not None:
                changes["new_documents"] = p.new_documents
            if p.portal is not None:
                changes["portal"] = p.portal
            if p.access_mode is not None:
                changes.update(preference_changes(access_mode=p.access_mode))
        key = await unit.key(record_id) if changes.get("email") else None
        changes = sealed_columns(changes, key, record_id)
        unit.add(
            Insert(
                notification_preferences,
                [{**default_row(record_id, now), **changes}],
                ignore_conflicts=True,
            )
        )
        unit.add(
            Update(
                notification_preferences,
                where={"record_id": record_id},
                values={**changes, "updated_at": now},
                expect_rows=None,
            )
        )

    async def _objection(self, unit: Unit, ins: Ins) -> tuple[bool, bool]:
        """Whether the person objected to the creation of their record (under any OID of their
        INS), and whether the actor recorded that objection."""
        rows = await unit.conn.execute(
            select(objections.c.recorded_by).where(objections.c.ins_value == ins.value)
        )
        by = {r[0] for r in rows}
        return bool(by), self.actor.id in by

    async def _refuse_duplicate(self, unit: Unit, ins: Ins) -> None:
        existing = (
            await unit.conn.execute(
                # one record per person: the same INS value under any OID is the same INS
                select(records.c.record_id, records.c.state).where(records.c.ins_value == ins.value)
            )
        ).first()
        if existing is not None and existing[1] == RecordState.DESTROYED.value:
            # a destroyed record leaves a tombstone; the person may open a new record
            unit.add(Delete(records, {"record_id": existing[0], "state": "destroyed"}))
            existing = None
        if existing is not None:
            raise Conflict(
                f"a record already exists for INS {ins.value} (state {existing[1]})",
                field="patient.ins",
                reason=Reason.EXISTS,
            )

    # -- objection -------------------------------------------------------------------------------
    async def object(self, patient: PatientInput) -> Ins:
        """Record a person's objection to the creation of their record (dmp.md §2)."""
        ins = patient.identity.ins

        async def operation(unit: Unit) -> Ins:
            objected, own = await self._objection(unit, ins)
            self.guard.check(
                unit,
                Action.RECORD_OBJECTION,
                candidate_facts(ins, self.ctx.now(), objected=objected, objection_own=own),
                detail=str(ins),
                hide=False,
            )
            unit.add(
                Insert(
                    objections,
                    [
                        {
                            "ins_oid": ins.oid,
                            "ins_value": ins.value,
                            "recorded_at": self.ctx.now(),
                            "recorded_by": self.actor.id,
                            "structure": self.actor.structure,
                        }
                    ],
                    ignore_conflicts=True,
                )
            )
            return ins

        return await self.ctx.write(operation)

    async def withdraw_objection(self, patient: PatientInput) -> Ins:
        """Withdraw an objection to creation (dmp.md §2): the person themself, or the
        professional who recorded it. Withdrawing none is no error for the person; a professional
        is refused alike whether there is none or it is someone else's."""
        ins = patient.identity.ins

        async def operation(unit: Unit) -> Ins:
            objected, own = await self._objection(unit, ins)
            self.guard.check(
                unit,
                Action.RECORD_WITHDRAW,
                candidate_facts(ins, self.ctx.now(), objected=objected, objection_own=own),
                detail=str(ins),
                hide=False,
            )
            if objected:
                unit.add(Delete(objections, {"ins_value": ins.value}))
            return ins

        return await self.ctx.write(operation)

    # -- reads -----------------------------------------------------------------------------------
    async def _readable(self, unit: Unit, record_id: str, action: Action) -> LoadedRecord:
        """The record, if the actor may read it (``action`` traced); else NotFound."""
        loaded = await self.ctx.facts.load(unit, record_id)
        self.guard.check(unit, action, loaded.facts if loaded else None)
        assert loaded is not None
        return loaded

    async def read(self, record_id: str, version: int | None = None) -> Record:
        async def operation(unit: Unit) -> Record:
            loaded = await self._readable(unit, record_id, Action.RECORD_READ)
            if version is not None and version != loaded.record.version_id:
                sealed = await version_row(unit, record_id, version)
                if sealed is None:
                    raise NotFound(f"the record has no version {version}", field="version")
                plain = await unit.unseal(record_id, sealed)
                opened = open_envelope(loaded.record, plain, as_stored=True)
                return replace(opened, version_id=version)
            return await open_record(unit, loaded.record, loaded.sealed)

        return await self.ctx.read(operation)

    async def history(self, record_id: str) -> list[RecordVersion]:
        async def operation(unit: Unit) -> list[RecordVersion]:
            loaded = await self._readable(unit, record_id, Action.RECORD_READ)
            out = []
            for version, updated, sealed in await history_rows(unit, record_id):
                plain = await unit.unseal(record_id, sealed)
                opened = open_envelope(loaded.record, plain, as_stored=True)
                opened = replace(opened, version_id=version, last_updated=updated)
                out.append(RecordVersion(version, updated, opened))
            return out

        return await self.ctx.read(operation)

    # -- TD1.2: update, close, reopen -----------------------------------------------------------
    async def update(
        self, record_id: str, patient: PatientInput, expected_version: int | None = None
    ) -> Record:
        """Update the patient's identity traits, emergency consents, médecin traitant and
        notification choices; close or reopen. Each kind of change is decided on its own."""

        async def operation(unit: Unit) -> Record:
            loaded = await self.ctx.facts.load(unit, record_id)
            self.guard.require_visible(
                unit, Action.RECORD_UPDATE, Action.RECORD_READ, loaded.facts if loaded else None
            )
            assert loaded is not None
            record = await open_record(unit, loaded.record, loaded.sealed)
            if expected_version is not None and expected_version != record.version_id:
                raise Stale(
                    f"the record is at version {record.version_id}, not {expected_version}",
                    field="version",
                )
            if patient.identity.ins != record.identity.ins:
                raise Rejected(
                    "the INS of a record cannot change (it is the record's key)",
                    field="patient.ins",
                    reason=Reason.MISMATCH,
                )
            state = patient.state or record.state
            emergency = (patient.emergency or EmergencyChoices()).applied_to(record.emergency)
            treating = (
                patient.treating_physician if patient.treating_given else record.treating_physician
            )
            # reopen first, close last: what changes in between is decided on an open record
            changes: list[tuple[Action, str | None]] = []
            if state is RecordState.ACTIVE and record.state is RecordState.CLOSED:
                changes.append((Action.RECORD_REOPEN, None))
            if emergency != record.emergency:
                changes.append((Action.CONSENT_EMERGENCY, _emergency_detail(emergency)))
            if treating != record.treating_physician:
                changes.append((Action.RECORD_DESIGNATE, treating or "none"))
            contact = _contact_changes(
                loaded.preferences, await _stored_email(unit, loaded), patient
            )
            if contact:
                changes.append((Action.RECORD_CONTACT, " ".join(contact)))
            changes.append((Action.RECORD_UPDATE, None))
            if state is RecordState.CLOSED and record.state is RecordState.ACTIVE:
                changes.append((Action.RECORD_CLOSE, None))
            facts = loaded.facts
            for action, detail in changes:
                self.guard.check(unit, action, facts, detail=detail, hide=False)
                if action is Action.RECORD_REOPEN:  # what follows is decided on the reopened record
                    facts = replace(facts, state=RecordState.ACTIVE)
            now = self.ctx.now()
            updated = replace(
                record,
                identity=patient.identity,
                state=state,
                emergency=emergency,
                treating_physician=treating,
                version_id=record.version_id + 1,
                last_updated=now,
                closed_at=(now if state is RecordState.CLOSED else None),
                source=patient.source if patient.source is not None else record.source,
            )
            await save_version(
                unit,
                record,
                updated,
                loaded.rules_version,
                policy_changed=(
                    state is not record.state
                    or emergency != record.emergency
                    or treating != record.treating_physician
                ),
            )
            await self._preferences(unit, record_id, patient, now)
            return updated

        return await self.ctx.write(operation)

    # -- TD0.2 and patient search ----------------------------------------------------------------
    async def search(self, criteria: RecordCriteria) -> list[RecordView]:
        """Patients the actor may read, in full; a record named by its exact INS, its status
        only (TD0.2) when the professional may not read it. Every record looked into is
        decided, and traced: one returned (``record.read`` or ``record.status``), and one
        refused (``record.read`` denied, whether or not its traits match: the refusal's trace
        must not depend on what the actor may not see)."""
        conds = search_conditions(self.actor, criteria)
        if conds is None:
            return []
        exact_ins = bool(criteria.identifiers)
        traits = bool(criteria.family or criteria.given or criteria.birthdate)
        limit = 10 * self.ctx.limits.page_size_max

        async def operation(unit: Unit) -> list[RecordView]:
            self.guard.check_scope(unit, Action.RECORD_READ, _patients_named(criteria))
            ids = await find_ids(unit, conds, limit)
            loaded = await self.ctx.facts.load_many(unit, ids)
            views: list[RecordView] = []
            for rid in sorted(loaded):
                one = loaded[rid]
                read = self.guard.allows(Action.RECORD_READ, one.facts)
                if read:
                    record = await open_record(unit, one.record, one.sealed)
                    if _traits_match(record, criteria):
                        views.append(RecordView(record, True))
                        self.guard.trace(
                            unit, Action.RECORD_READ, read, record_id=rid, detail="search"
                        )
                    continue
                status = self.guard.allows(Action.RECORD_STATUS, one.facts)
                # TD0.2 answers by the INS alone: filtering on identity traits would let a
                # professional without access test them (status only, never an oracle)
                if status and exact_ins and not traits:
                    views.append(RecordView(one.record, False))
                    self.guard.trace(
                        unit, Action.RECORD_STATUS, status, record_id=rid, detail="search"
                    )
                    continue
                self.guard.trace(unit, Action.RECORD_READ, read, record_id=rid, detail="search")
            views.sort(key=lambda v: (normalise_name(v.record.identity.family), v.record.record_id))
            return views[: self.ctx.limits.page_size_max]

        return await self.ctx.read(operation)


async def _stored_email(unit: Unit, loaded: LoadedRecord) -> str | None:
    """The patient's address, opened with the record's key (None without one)."""
    if not loaded.preferences.has_email:
        return None
    rid = loaded.record_id
    return await stored_email(unit.conn, await unit.key(rid), rid)


def _contact_changes(
    stored: Preferences, stored_address: str | None, patient: PatientInput
) -> list[str]:
    """Which of the patient's contact details and notification choices ``patient`` changes
    (their names, never their values: a trace does not carry an address)."""
    asked = preference_changes(email=patient.email)
    p = patient.preferences
    changed = ["email"] if asked.get("email") != stored_address else []
    if p is not None:
        if p.new_documents is not None and p.new_documents != stored.new_documents:
            changed.append("new_documents")
        if p.portal is not None and p.portal != stored.portal:
            changed.append("portal")
        if p.access_mode is not None:
            mode = preference_changes(access_mode=p.access_mode)["access_mode"]
            if mode != stored.access_mode.value:
                changed.append("access_notices")
    return changed


def _patients_named(criteria: RecordCriteria) -> int:
    """How many patients a Patient search names: by INS value (whatever the OID) or by id;
    both given must match together. 0 when it names none (identity traits name nobody)."""
    by_ins = {value.upper() for _system, value in criteria.identifiers}
    by_id = set(criteria.ids)
    return max(len(by_ins), len(by_id))


def _emergency_detail(e: EmergencyConsents) -> str:
    def yes(v: bool) -> str:
        return "yes" if v else "no"

    return f"centre15={yes(e.centre15)} bris_de_glace={yes(e.bris_de_glace)} masked={yes(e.masked)}"


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


__all__ = ["RecordService"]
