"""Every decision leaves exactly one trace, denials included (dmp.md §5; docs/traces.md).

Hypothesis draws small worlds — a record, open or closed, with authorisations, blocks, a
médecin traitant, a legal representative, emergency consents, documents of several authors with
random visibility flags, content uploaded before its metadata — and then EVERY operation of the
core is tried by EVERY kind of actor: the patient, a representative, another patient, authorised,
unauthorised and blocked professionals, the médecin traitant, the author, professionals in
break-the-glass (with and without a reason) and centre-15 mode, the operator and a system.

For each try, the guard's decisions are counted as they are taken (``Guard.trace``, the one place
a decision becomes a trace) and the traces actually stored are counted in the database. They
must be equal: a decision whose operation then failed (a refusal, a client's mistake, a write
that was rolled back) keeps its denial; an allowed decision is stored with what it allowed;
nothing is traced twice; and no operation that returned data did so without an allowed
decision traced. Runs on SQLite, and on PostgreSQL when CARNET_TEST_DATABASE_URL is set.
CARNET_TRACE_WORLDS sets the number of worlds per backend (6).
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from carnet.access.core import Core
from carnet.access.documents.search import Searcher
from carnet.access.guard import Guard
from carnet.access.traces.service import TraceService
from carnet.domain.actors import RPPS_SYSTEM, AccessMode, Actor, ActorKind
from carnet.domain.consents import ConsentActorKind, ConsentDecision, ConsentInput
from carnet.domain.content import InlineContent, UploadedContent
from carnet.domain.documents import (
    DocumentChange,
    DocumentPage,
    DocumentStatus,
    NewDocument,
    Submission,
)
from carnet.domain.errors import CoreError, Invalid, Reason
from carnet.domain.ins import Ins
from carnet.domain.records import (
    EmergencyChoices,
    EmergencyPurpose,
    PatientRef,
    RecordCriteria,
    RecordState,
)
from carnet.domain.representatives import RepresentativeInput
from carnet.domain.search import DocumentCriteria, ListCriteria, Token
from carnet.domain.traces import AuditCriteria
from carnet.fhir.docref_resource import entry_from_docref
from carnet.fhir.patient_resource import patient_input
from carnet.store.db import create_engine
from carnet.store.tables import audit_events
from tests.conftest import PG_URL, _drop_database, make_settings
from tests.factories import TEST_OID, docref, patient_resource, random_nir, random_rpps

WORLDS = int(os.environ.get("CARNET_TRACE_WORLDS") or 6)
REASON = "patient inconscient, urgence vitale"
LABELS = ("N", "MASQUE_PS", "INVISIBLE_PATIENT", "INVISIBLE_REPRESENTANTS_LEGAUX")
TYPES = (("11488-4", "10"), ("11502-2", "10"), ("60591-5", "11"), ("18748-4", "31"))


# -- counting decisions and traces ---------------------------------------------------------------


@dataclass
class Tally:
    decisions: int = 0
    denials: int = 0


@pytest.fixture(scope="module")
def tally() -> Iterator[Tally]:
    """Count every decision the guard turns into a trace, for the whole module."""
    counted = Tally()
    real = Guard.trace

    def counting(self: Guard, unit: Any, action: Any, decision: Any, **kw: Any) -> None:
        counted.decisions += 1
        counted.denials += 0 if decision else 1
        real(self, unit, action, decision, **kw)

    Guard.trace = counting  # type: ignore[method-assign]
    try:
        yield counted
    finally:
        Guard.trace = real  # type: ignore[method-assign]


class Env:
    def __init__(self, backend: str, tmp: Any) -> None:
        self.settings, self.dbname = make_settings(backend, tmp)
        self.loop = asyncio.new_event_loop()
        self.core: Core = self.loop.run_until_complete(Core.start(self.settings))
        self.engine = create_engine(self.settings)
        self.tries = 0
        self.outcomes: Counter[str] = Counter()

    def run(self, coro: Awaitable[Any]) -> Any:
        return self.loop.run_until_complete(coro)

    async def stored_traces(self) -> tuple[int, int]:
        async with self.engine.connect() as conn:
            total = (await conn.execute(select(func.count()).select_from(audit_events))).scalar()
            denied = (
                await conn.execute(
                    select(func.count())
                    .select_from(audit_events)
                    .where(audit_events.c.outcome == "deny")
                )
            ).scalar()
        return int(total or 0), int(denied or 0)

    def close(self) -> None:
        try:
            self.run(self.core.close())
            self.run(self.engine.dispose())
        finally:
            self.loop.close()
        if self.dbname and PG_URL:
            asyncio.run(_drop_database(PG_URL, self.dbname))


@pytest.fixture(scope="module")
def env(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    made = Env(backend, tmp_path_factory.mktemp(f"traces-{backend}"))
    try:
        yield made
    finally:
        made.close()


# -- worlds ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    closed: bool
    authorised: bool  # the "authorised" professional (else only the opener is)
    blocked: bool  # the "blocked" professional is blocked
    treating: bool  # the médecin traitant is designated
    representative: bool
    emergency: tuple[bool, bool, bool]  # centre 15, bris de glace, masked
    docs: tuple[
        tuple[int, str, int], ...
    ]  # (author: 0 opener / 1 authorised / 2 patient, label, type)


plans = st.builds(
    Plan,
    closed=st.booleans(),
    authorised=st.booleans(),
    blocked=st.booleans(),
    treating=st.booleans(),
    representative=st.booleans(),
    emergency=st.tuples(st.booleans(), st.booleans(), st.booleans()),
    docs=st.lists(
        st.tuples(st.integers(0, 2), st.sampled_from(LABELS), st.integers(0, len(TYPES) - 1)),
        min_size=1,
        max_size=3,
    ).map(tuple),
)


def _pro(
    profession: str = "10",
    mode: AccessMode = AccessMode.NORMAL,
    reason: str | None = None,
    rpps: str | None = None,
) -> Actor:
    rpps = rpps or random_rpps()
    return Actor(
        ActorKind.PROFESSIONAL,
        f"sub-{rpps}",
        "test",
        rpps=rpps,
        profession=profession,
        specialty="SM54" if profession == "10" else None,
        mode=mode,
        reason=reason,
    )


def _patient(ins: str) -> Actor:
    return Actor(ActorKind.PATIENT, f"sub-{ins}", "test", ins=ins, ins_oid=TEST_OID)


@dataclass
class World:
    ins: str
    rid: str
    opener: Actor
    authorised: Actor
    blocked: Actor
    stranger: Actor
    patient: Actor
    representative: Actor
    doc_ids: list[str] = field(default_factory=list)
    binary_id: str = ""
    set_id: str = ""
    consent_id: str = ""


def _submission(
    ins: str, author: Actor, label: str, kind: int, *, replaces: str | None = None
) -> Submission:
    type_code, class_code = TYPES[kind]
    if author.kind is ActorKind.PATIENT:
        class_code, type_code = "90", "74465-6"
    content = f"%PDF-1.4 {random_nir()}".encode()
    resource = docref(
        ins,
        content=content,
        inline=True,
        labels=[label],
        type_code=type_code,
        class_code=class_code,
        author_rpps=author.rpps or "",
        replaces=replaces,
    )
    resource["content"][0]["attachment"]["data"] = base64.b64encode(content).decode()
    entry = entry_from_docref(resource)
    entry.patient_system = f"urn:oid:{TEST_OID}"
    entry.patient_value = ins
    return Submission(
        PatientRef(ins=Ins(TEST_OID, ins)), [NewDocument("d", entry, InlineContent(content))]
    )


async def build(env: Env, plan: Plan) -> World:
    core = env.core
    ins = random_nir()
    opener = _pro()
    w = World(ins, "", opener, _pro(), _pro(), _pro("21"), _patient(ins), _patient(random_nir()))
    body = patient_resource(ins)
    if plan.treating:
        body["generalPractitioner"] = [
            {"identifier": {"system": RPPS_SYSTEM, "value": opener.rpps}}
        ]
    w.rid = (
        await core.scope(opener).records.open(patient_input(body, allow_test_ins=True))
    ).record_id
    me = core.scope(w.patient)
    ref = PatientRef(record_id=w.rid)
    if plan.authorised:
        c = await me.consents.create(
            ConsentInput(
                ref,
                ConsentDecision.PERMIT,
                actor_kind=ConsentActorKind.PROFESSIONAL,
                actor_system=RPPS_SYSTEM,
                actor_value=w.authorised.rpps,
            )
        )
        w.consent_id = c.consent_id
    if plan.blocked:
        await me.consents.create(
            ConsentInput(
                ref,
                ConsentDecision.DENY,
                actor_kind=ConsentActorKind.PROFESSIONAL,
                actor_system=RPPS_SYSTEM,
                actor_value=w.blocked.rpps,
            )
        )
    if plan.representative:
        assert w.representative.ins
        await me.representatives.add(
            w.rid, RepresentativeInput(Ins(TEST_OID, w.representative.ins), "GUARD")
        )
    centre15, bris, masked = plan.emergency
    body = patient_resource(ins)
    if plan.treating:
        body["generalPractitioner"] = [
            {"identifier": {"system": RPPS_SYSTEM, "value": opener.rpps}}
        ]
    update = replace(
        patient_input(body, allow_test_ins=True),
        emergency=EmergencyChoices(centre15, bris, masked),
    )
    await me.records.update(w.rid, update)
    authors = (opener, w.authorised, w.patient)
    for author, label, kind in plan.docs:
        result = await core.scope(authors[author]).documents.publish(
            _submission(ins, authors[author], label, kind)
        )
        w.doc_ids.append(result.documents[0].doc_id)
        w.set_id = result.set_id or w.set_id
    w.binary_id, _ = await core.scope(opener).documents.upload(w.rid, "application/pdf", _chunks())
    if plan.closed:
        closing = replace(update, state=RecordState.CLOSED)
        await me.records.update(w.rid, closing)
    return w


async def _chunks() -> Any:
    yield b"%PDF-1.4 uploaded before its metadata"


# -- the operations ----------------------------------------------------------------------------


async def _failing_late(op: Callable[[], Awaitable[Any]]) -> Any:
    """Run a search that fails right after it decided on the records it names (a client's
    mistake found late, the store failing): its decisions must stay traced."""

    def late(real: Callable[..., Any]) -> Callable[..., Any]:
        async def failing(*args: Any, **kw: Any) -> Any:
            await real(*args, **kw)
            raise Invalid("failed after deciding", reason=Reason.MALFORMED)

        return failing

    async def no_fast_path(*_a: Any, **_k: Any) -> None:
        return None

    real_scope = TraceService._scope

    def failing_scope(self: TraceService, *a: Any, **k: Any) -> Any:
        real_scope(self, *a, **k)
        raise Invalid("failed after deciding", reason=Reason.MALFORMED)

    saved = (Searcher._one_patient_pg, Searcher._decide_records)
    Searcher._one_patient_pg = no_fast_path  # type: ignore[assignment,method-assign]
    Searcher._decide_records = late(Searcher._decide_records)  # type: ignore[method-assign]
    TraceService._scope = failing_scope  # type: ignore[method-assign]
    try:
        return await op()
    finally:
        Searcher._one_patient_pg, Searcher._decide_records = saved  # type: ignore[method-assign]
        TraceService._scope = real_scope  # type: ignore[method-assign]


def operations(w: World) -> list[tuple[str, Callable[[Any], Awaitable[Any]]]]:
    """Every operation of the core, with arguments that make sense in world ``w``."""
    doc = w.doc_ids[0]
    ref = PatientRef(record_id=w.rid)

    async def publish(scope: Any) -> Any:
        return await scope.documents.publish(_submission(w.ins, scope.actor, "N", 0))

    async def replace_doc(scope: Any) -> Any:
        return await scope.documents.publish(
            _submission(w.ins, scope.actor, "N", 0, replaces=w.doc_ids[-1])
        )

    async def attach(scope: Any) -> Any:
        sub = _submission(w.ins, scope.actor, "N", 0)
        new = NewDocument("d", sub.documents[0].entry, UploadedContent(w.binary_id))
        return await scope.documents.publish(Submission(sub.patient, [new]))

    async def mask(scope: Any) -> Any:
        return await scope.documents.update(
            doc, lambda d: DocumentChange(labels=d.labels ^ {"MASQUE_PS"})
        )

    async def delete(scope: Any) -> Any:
        return await scope.documents.update(
            doc, lambda d: DocumentChange(status=DocumentStatus.DELETED)
        )

    async def update_record(scope: Any) -> Any:
        body = patient_resource(w.ins, given=["Louise"])
        return await scope.records.update(
            w.rid, replace(patient_input(body, allow_test_ins=True), treating_given=False)
        )

    async def authorise(scope: Any) -> Any:
        return await scope.consents.create(
            ConsentInput(
                ref,
                ConsentDecision.PERMIT,
                actor_kind=ConsentActorKind.PROFESSIONAL,
                actor_system=RPPS_SYSTEM,
                actor_value=w.stranger.rpps,
            )
        )

    async def block(scope: Any) -> Any:
        return await scope.consents.create(
            ConsentInput(
                ref,
                ConsentDecision.DENY,
                actor_kind=ConsentActorKind.PROFESSIONAL,
                actor_system=RPPS_SYSTEM,
                actor_value=w.stranger.rpps,
            )
        )

    async def emergency_put(scope: Any) -> Any:
        return await scope.consents.update(
            f"{w.rid}-btg",
            ConsentInput(ref, ConsentDecision.DENY, purpose=EmergencyPurpose.BRIS_DE_GLACE),
        )

    by_ins = [(f"urn:oid:{TEST_OID}", w.ins)]
    return [
        ("record.read", lambda s: s.records.read(w.rid)),
        ("record.history", lambda s: s.records.history(w.rid)),
        (
            "record.search",
            lambda s: s.records.search(
                RecordCriteria(identifiers=[(f"urn:oid:{TEST_OID}", w.ins)])
            ),
        ),
        # identity traits, on every record the actor is related to (issue 7)
        ("record.search traits", lambda s: s.records.search(RecordCriteria(family=["DURAND"]))),
        (
            "record.search INS and traits",
            lambda s: s.records.search(RecordCriteria(identifiers=by_ins, birthdate=[])),
        ),
        ("record.search id", lambda s: s.records.search(RecordCriteria(ids=[w.rid]))),
        ("record.update", update_record),
        ("document.read", lambda s: s.documents.read(doc)),
        ("document.history", lambda s: s.documents.history(doc)),
        ("document.content", lambda s: s.documents.content(doc)),
        ("binary.content", lambda s: s.documents.content(w.binary_id)),
        ("document.search", lambda s: s.documents.search(DocumentCriteria(record_ids=[[w.rid]]))),
        ("list.search", lambda s: s.documents.lists(ListCriteria(record_ids=[[w.rid]]))),
        (
            "list.search empty",  # a code no submission set has (issue 7)
            lambda s: s.documents.lists(
                ListCriteria(record_ids=[[w.rid]], code=[[Token(None, "folder")]])
            ),
        ),
        ("document.search unnamed", lambda s: s.documents.search(DocumentCriteria())),
        ("list.search unnamed", lambda s: s.documents.lists(ListCriteria())),
        (
            "document.search failing",
            lambda s: _failing_late(
                lambda: s.documents.search(DocumentCriteria(record_ids=[[w.rid]]))
            ),
        ),
        (
            "list.search failing",
            lambda s: _failing_late(lambda: s.documents.lists(ListCriteria(record_ids=[[w.rid]]))),
        ),
        (
            "traces.search failing",
            lambda s: _failing_late(lambda: s.traces.search(AuditCriteria(record_ids=[[w.rid]]))),
        ),
        ("document.publish", publish),
        ("document.replace", replace_doc),
        ("binary.attach", attach),
        ("document.mask", mask),
        ("document.delete", delete),
        ("consent.search", lambda s: s.consents.search([w.rid])),
        ("consent.authorise", authorise),
        ("consent.block", block),
        ("consent.revoke", lambda s: s.consents.revoke(w.consent_id or f"{w.rid}-none")),
        ("consent.emergency PUT", emergency_put),
        ("representative.list", lambda s: s.representatives.list(w.rid)),
        (
            "representative.remove",
            lambda s: s.representatives.remove(f"{w.rid}-{w.representative.ins}"),
        ),
        ("traces.search", lambda s: s.traces.search(AuditCriteria(record_ids=[[w.rid]]))),
        ("traces.own", lambda s: s.traces.search(AuditCriteria())),
        ("traces.verify", lambda s: s.traces.verify()),
    ]


def actors(w: World) -> list[tuple[str, Actor]]:
    return [
        ("patient", w.patient),
        ("representative", w.representative),
        ("stranger patient", _patient(random_nir())),
        ("opener", w.opener),
        ("authorised", w.authorised),
        ("blocked", w.blocked),
        ("unauthorised", w.stranger),
        ("bris de glace", replace(w.stranger, mode=AccessMode.BRIS_DE_GLACE, reason=REASON)),
        (
            "bris de glace, no reason",
            replace(w.stranger, mode=AccessMode.BRIS_DE_GLACE, reason=None),
        ),
        ("centre 15", replace(w.stranger, mode=AccessMode.CENTRE_15)),
        ("operator", Actor(ActorKind.OPERATOR, "operator", "test")),
        ("system", Actor(ActorKind.SYSTEM, "system", "test")),
    ]


def _returned(name: str, result: Any) -> bool:
    """Whether an operation returned data (a search naming no record may find nothing, and
    then decides nothing)."""
    if name.startswith("record.search"):
        return False  # what a Patient search returns is checked by NAMING
    if name.endswith("unnamed"):
        return bool(result.items if isinstance(result, DocumentPage) else result[0])
    return bool(result)


# operations that name the world's record: each leaves at least one trace, for every actor
NAMING = frozenset(
    {
        "record.read",
        "record.history",
        "record.search",
        "record.search INS and traits",
        "record.search id",
        "record.update",
        "document.read",
        "document.history",
        "document.content",
        "binary.content",
        "document.search",
        "list.search",
        "list.search empty",
        "document.search failing",
        "list.search failing",
        "traces.search failing",
        "binary.attach",
        "document.mask",
        "document.delete",
        "consent.search",
        "consent.authorise",
        "consent.block",
        "consent.revoke",
        "consent.emergency PUT",
        "representative.list",
        "representative.remove",
        "traces.search",
    }
)


async def try_everything(env: Env, tally: Tally, w: World) -> list[str]:
    problems: list[str] = []
    # actors that may change the world go last, so the others meet it as built
    for who, actor in actors(w):
        scope = env.core.scope(actor)
        for name, op in operations(w):
            before_decisions, before_denials = tally.decisions, tally.denials
            before_total, before_denied = await env.stored_traces()
            try:
                result = await op(scope)
                outcome = "ok"
            except CoreError as exc:
                result, outcome = None, type(exc).__name__
            env.tries += 1
            env.outcomes[outcome] += 1
            after_total, after_denied = await env.stored_traces()
            decisions = tally.decisions - before_decisions
            denials = tally.denials - before_denials
            stored, stored_denied = after_total - before_total, after_denied - before_denied
            where = f"{who} {name} -> {outcome}"
            if stored != decisions or stored_denied != denials:
                problems.append(
                    f"{where}: {decisions} decisions ({denials} denied), "
                    f"{stored} traces stored ({stored_denied} denied)"
                )
            if outcome == "ok" and decisions == 0 and _returned(name, result):
                problems.append(
                    f"{where}: returned {type(result).__name__} with no decision traced"
                )
            if outcome not in ("ok", "Invalid") and decisions and denials == 0 and stored == 0:
                problems.append(f"{where}: failed, and nothing of its decisions was kept")
            # a refusal is a decision: it leaves a trace (issue 7, "Refusals not traced")
            if outcome in ("NotFound", "Refused", "Gone") and decisions == 0:
                problems.append(f"{where}: refused with no decision traced")
            # an operation naming the world's record decides on it, whatever it finds or fails
            if name in NAMING and decisions == 0:
                problems.append(f"{where}: named the record and left no trace")
            # the opener is related to the record: a traits search always looks into it
            if name == "record.search traits" and who == "opener" and decisions == 0:
                problems.append(f"{where}: looked into the record and left no trace")
    return problems


@settings(
    max_examples=WORLDS,
    deadline=None,
    derandomize=False,
    database=None,
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
    suppress_health_check=list(HealthCheck),
)
@given(plan=plans)
def test_every_decision_leaves_one_trace(env: Env, tally: Tally, plan: Plan) -> None:
    world = env.run(build(env, plan))
    problems = env.run(try_everything(env, tally, world))
    assert not problems, f"{len(problems)} problems in {plan}:\n" + "\n".join(problems[:40])


def test_report(env: Env) -> None:
    """What the worlds tried (printed with -s; asserts they tried enough to mean something)."""
    print(
        f"\ntraces per decision [{env.settings.sqlalchemy_url.split(':')[0]}]: {env.tries} tries, {dict(env.outcomes)}"
    )
    assert env.tries >= 33 * 12  # at least one world: every operation by every actor
    assert env.outcomes["ok"] > 0 and sum(v for k, v in env.outcomes.items() if k != "ok") > 0
