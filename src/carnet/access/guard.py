"""The guard: asks the policy, traces the answer, refuses.

Every decision of the core goes through :meth:`Guard.check` (or :meth:`Guard.record_refusal` for
what has no record to decide on): it asks :func:`carnet.access.policy.decide`, queues exactly
one trace of the answer in the unit of work (allowed or denied, with the rule that decided),
and raises the refusal. A denial's trace survives the rollback of what was refused (the unit of
work keeps it). :meth:`Guard.allows` asks without tracing: for the rows of a search, which are
traced as the one decision of the search that returned them.

A refusal of something the caller may not know exists is answered exactly as a missing one
(:class:`~carnet.domain.errors.NotFound`): ``hide=True``, the default.
"""

from __future__ import annotations

from dataclasses import dataclass

from carnet.access.matrix import AccessMatrix
from carnet.access.policy import (
    ConsentFacts,
    Decision,
    DocumentFacts,
    DuplicateFacts,
    EventFacts,
    RecordFacts,
    SearchFacts,
    UploadFacts,
    decide,
)
from carnet.access.unit_of_work import Unit
from carnet.domain.actions import Action
from carnet.domain.actors import Actor
from carnet.domain.errors import Invalid, NotFound, Reason, Refused
from carnet.domain.traces import trace_event

NOT_FOUND = "no such resource, or no access to it"


@dataclass(frozen=True, slots=True)
class Guard:
    actor: Actor
    matrix: AccessMatrix

    def allows(
        self,
        action: Action,
        record: RecordFacts | None,
        document: DocumentFacts | None = None,
        *,
        consent: ConsentFacts | None = None,
        upload: UploadFacts | None = None,
        event: EventFacts | None = None,
        duplicate: DuplicateFacts | None = None,
        search: SearchFacts | None = None,
    ) -> Decision:
        """The policy's answer, untraced (a row of a decision traced otherwise)."""
        return decide(
            self.actor,
            action,
            record,
            document,
            consent=consent,
            upload=upload,
            event=event,
            duplicate=duplicate,
            search=search,
            matrix=self.matrix.allows,
        )

    def check(
        self,
        unit: Unit,
        action: Action,
        record: RecordFacts | None,
        document: DocumentFacts | None = None,
        *,
        record_id: str | None = None,
        doc_id: str | None = None,
        detail: str | None = None,
        consent: ConsentFacts | None = None,
        upload: UploadFacts | None = None,
        hide: bool = True,
        about: str | None = None,
    ) -> Decision:
        """Decide, trace, and raise the refusal (NotFound when ``hide``, else Refused, its
        message naming ``about``: what the caller named themselves)."""
        decision = self.allows(action, record, document, consent=consent, upload=upload)
        self.trace(
            unit,
            action,
            decision,
            record_id=record.record_id if record is not None else record_id,
            doc_id=doc_id if doc_id is not None else (document.doc_id if document else None),
            detail=detail,
        )
        if not decision:
            if hide:
                raise NotFound(NOT_FOUND)
            raise Refused(f"{about or 'not allowed'}: {decision.reason}")
        return decision

    def check_scope(self, unit: Unit, action: Action, patients_named: int) -> None:
        """What a search names, decided before any record is looked at (an emergency access
        names one patient): a refusal is traced once, tied to no record, and raised as the
        client's mistake it is (:class:`Invalid` on ``patient``); an allowed scope is not
        traced (the search's own decisions are)."""
        decision = self.allows(action, None, search=SearchFacts(patients_named))
        if decision:
            return
        self.trace(
            unit, action, decision, record_id=None, detail=f"names {patients_named} patients"
        )
        raise Invalid(
            decision.reason,
            field="patient",
            reason=Reason.MISSING if patients_named == 0 else Reason.LIMIT,
        )

    def require_visible(
        self,
        unit: Unit,
        action: Action,
        visible_via: Action,
        record: RecordFacts | None,
        document: DocumentFacts | None = None,
        *,
        record_id: str | None = None,
        doc_id: str | None = None,
        detail: str | None = None,
    ) -> None:
        """An operation on something the actor may not even see is refused as if it did not
        exist: ``visible_via`` (a read) is decided, and if refused, ``action`` is traced with
        that refusal and NotFound raised. Nothing is traced when it is visible: the operation's
        own decisions are."""
        seen = self.allows(visible_via, record, document)
        if seen:
            return
        self.trace(
            unit,
            action,
            seen,
            record_id=record.record_id if record is not None else record_id,
            doc_id=doc_id if doc_id is not None else (document.doc_id if document else None),
            detail=detail,
        )
        raise NotFound(NOT_FOUND)

    def trace(
        self,
        unit: Unit,
        action: Action,
        decision: Decision,
        *,
        record_id: str | None,
        doc_id: str | None = None,
        detail: str | None = None,
    ) -> None:
        """Queue the trace of a decision taken (one trace per decision)."""
        unit.trace(
            trace_event(
                self.actor,
                action,
                record_id,
                allowed=decision.allowed,
                rule=decision.rule,
                doc_id=doc_id or None,
                detail=detail,
            )
        )
