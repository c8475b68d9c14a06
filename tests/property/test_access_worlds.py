"""Property-based proof of the access rules (dmp.md §3): random worlds, every actor, every path.

Hypothesis draws a *plan* of a world: professionals of several professions, 1-2 patients, each
with the professional who opened the record, maybe a médecin traitant, a legal representative,
authorisations, blocks, emergency consents, documents of random types and visibility flags,
later masked, replaced, deleted or archived, and maybe the record closed. The plan is played
through the access-scoped service (:class:`carnet.access.scoped.Scope`, in process) with fresh
identities (so examples never collide in the shared database), while a model of the world is
kept on the side.

The ORACLE is computed from that model only, never from the database: the facts of each record
and document are rebuilt from what the plan did, and :func:`carnet.access.policy.decide` (with
the packaged access matrix, ``services.matrix.allows``) says what each actor may see. Every way
of reaching documents is then compared with it, for every actor: read by id, history, content,
search with random filters, paging and ``_include``, the ``$everything`` reads, and a search
that names no patient. What comes back must be exactly what the policy allows, never more and
never less. The test thereby checks fact gathering, SQL filtering and paging against the pure
policy; a smaller hand-made world pins the policy itself to dmp.md §3, rule by rule.

Runs on SQLite, and on PostgreSQL when CARNET_TEST_DATABASE_URL is set (tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from carnet.access.policy import Action, Decision, DocumentFacts, RecordFacts, RecordState, decide
from carnet.access.scoped import Scope
from carnet.domain.actors import RPPS_SYSTEM, AccessMode, Actor, ActorKind
from carnet.domain.clock import utcnow
from carnet.domain.ins import make_nir
from carnet.domain.search import DateRange, DocumentCriteria, Token
from carnet.errors import Gone, InvalidInput, NotFound
from carnet.fhir.iti65 import build_submission
from carnet.services import Services
from tests.conftest import PG_URL, _drop_database, make_settings
from tests.factories import TEST_OID, bundle, docref, patient_resource

BASE = "http://test/fhir"
CARNET = "https://carnet.health/fhir/StructureDefinition"
ARCHIVED_URL = f"{CARNET}/dmp-archived"
RECORD_STATUS_URL = f"{CARNET}/dmp-record-status"
VISIBILITY_SYSTEM = (
    "https://mos.esante.gouv.fr/NOS/TRE_A07-StatutVisibiliteDocument/FHIR/"
    "TRE-A07-StatutVisibiliteDocument"
)
ROLE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
PURPOSE_SYSTEMS = {
    "ETREAT": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
    "BTG": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
    "MASKED": "https://carnet.health/fhir/CodeSystem/dmp-emergency-purpose",
}
LABELS = ("N", "MASQUE_PS", "INVISIBLE_PATIENT", "INVISIBLE_REPRESENTANTS_LEGAUX")
PRO_KINDS: tuple[tuple[str, str | None], ...] = (
    ("10", "SM54"),  # médecin généraliste
    ("10", "SM04"),  # médecin, another speciality
    ("21", None),  # pharmacien
    ("40", None),  # chirurgien-dentiste
    ("60", None),  # infirmier
)
DATE_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
BASE_DAY = datetime(2025, 3, 3)  # document dates: BASE_DAY + 0..3 days, 08:00 or 14:00 UTC
REASON = "urgence vitale : patient inconscient aux urgences"
MAX_PAGES = 200

TypeRow = tuple[str, str, str]  # type code, type system, class code


# -- the document types: the packaged access matrix's rows ----------------------------------------


def _type_catalog() -> tuple[list[TypeRow], list[TypeRow]]:
    """(types professionals publish, class 90 types the patient publishes)."""
    try:
        text = (resources.files("carnet") / "data" / "access_matrix.csv").read_text("utf-8")
    except (FileNotFoundError, OSError):
        loinc = "http://loinc.org"
        pro = [
            ("11488-4", loinc, "10"),
            ("11502-2", loinc, "10"),
            ("60591-5", loinc, "11"),
            ("18748-4", loinc, "31"),
            ("87273-9", loinc, "52"),
        ]
        return pro, [("74465-6", loinc, "90")]
    rows = [
        (r["type_code"], r["type_system"], r["class_code"])
        for r in csv.DictReader(io.StringIO(text))
        if r["type_code"] != "*"
    ]
    # plus types the matrix does not name: the class's default row decides
    unknown = [("99999-9", "http://loinc.org", c) for c in ("10", "42", "95")]
    return [r for r in rows if r[2] != "90"] + unknown, [r for r in rows if r[2] == "90"]


PRO_TYPES, PATIENT_TYPES = _type_catalog()


# -- fresh identities (never from Hypothesis: replayed examples must not collide) ------------------

_rng = secrets.SystemRandom()


def fresh_ins() -> str:
    first13 = (
        f"{_rng.choice('12')}{_rng.randint(40, 99):02d}{_rng.randint(1, 12):02d}"
        f"{_rng.randint(1, 95):02d}{_rng.randint(1, 999):03d}{_rng.randint(1, 999):03d}"
    )
    return make_nir(first13)


def _luhn_digit(partial: str) -> str:
    """The check digit that makes ``partial + digit`` pass the Luhn test."""
    total = 0
    for i, c in enumerate(reversed(partial)):
        d = int(c)
        if i % 2 == 0:  # doubled: these will sit at odd positions from the right
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str((10 - total % 10) % 10)


def fresh_idnatps() -> str:
    """An IdNatPS: ``8`` + an 11-digit RPPS number whose last digit is its Luhn key."""
    body = f"1{_rng.randint(0, 10**9 - 1):09d}"
    return "8" + body + _luhn_digit(body)


# -- plans (what Hypothesis draws) ---------------------------------------------------------------


@dataclass(frozen=True)
class DocPlan:
    author: int  # index of the professional; -1: the patient (class 90)
    kind: int  # index in the world's palette (patient: in PATIENT_TYPES)
    labels: tuple[str, ...]
    day: int
    hour: int
    later: str = "keep"  # keep | delete | archive (by the author)
    mask: bool = False  # the patient masks it (MASQUE_PS) after it was added
    replacement: DocPlan | None = None  # the author replaces it (ITI-65 relatesTo)


@dataclass(frozen=True)
class PatientPlan:
    opener: int
    treating: int | None = None
    representative: str | None = None  # None | "fresh" | "other" (the other patient)
    authorised: tuple[int, ...] = ()
    blocked: tuple[int, ...] = ()
    emergency: tuple[tuple[str, str], ...] = ()  # (ETREAT | BTG | MASKED, permit | deny)
    docs: tuple[DocPlan, ...] = ()
    closed: bool = False


@dataclass(frozen=True)
class SearchPlan:
    by_identifier: bool = False  # patient.identifier=<INS> rather than patient=<id>
    types: tuple[tuple[int, bool], ...] = ()  # (palette index, with its system); OR
    categories: tuple[str, ...] = ()  # OR
    statuses: tuple[str, ...] = ()  # OR
    labels: tuple[str, ...] = ()  # OR
    dates: tuple[tuple[str, int], ...] = ()  # (prefix, day); AND
    archived: bool | None = None
    count: int = 20
    sort_desc: bool = True
    include: bool = False


@dataclass(frozen=True)
class WorldPlan:
    pros: tuple[tuple[str, str | None], ...]
    palette: tuple[TypeRow, ...]
    patients: tuple[PatientPlan, ...]
    searches: tuple[SearchPlan, ...]
    operator: ActorKind = ActorKind.OPERATOR


def _doc_plans(n_pros: int, n_palette: int, *, nested: bool = False) -> st.SearchStrategy[DocPlan]:
    return st.builds(
        DocPlan,
        author=st.integers(0, n_pros - 1),
        kind=st.integers(0, n_palette - 1),
        labels=st.lists(st.sampled_from(LABELS), max_size=3, unique=True).map(tuple),
        day=st.integers(0, 3),
        hour=st.sampled_from((8, 14)),
        later=st.sampled_from(("keep", "keep", "delete", "archive")),
        mask=st.sampled_from((False, False, False, True)),
        replacement=(
            st.none()
            if nested
            else st.none() | st.none() | _doc_plans(n_pros, n_palette, nested=True)
        ),
    )


def _patient_doc_plans() -> st.SearchStrategy[DocPlan]:
    return st.builds(
        DocPlan,
        author=st.just(-1),
        kind=st.integers(0, len(PATIENT_TYPES) - 1),
        labels=st.lists(st.sampled_from(("N", "MASQUE_PS")), max_size=2, unique=True).map(tuple),
        day=st.integers(0, 3),
        hour=st.sampled_from((8, 14)),
        later=st.sampled_from(("keep", "keep", "delete", "archive")),
        mask=st.booleans(),
        replacement=st.none(),
    )


@st.composite
def _patient_plans(draw: st.DrawFn, n_pros: int, n_palette: int, n_patients: int) -> PatientPlan:
    pro = st.integers(0, n_pros - 1)
    docs = draw(st.lists(_doc_plans(n_pros, n_palette), min_size=2, max_size=6))
    if PATIENT_TYPES and draw(st.booleans()):
        docs.insert(draw(st.integers(0, len(docs))), draw(_patient_doc_plans()))
    return PatientPlan(
        opener=draw(pro),
        treating=draw(st.none() | pro),
        representative=draw(
            st.sampled_from((None, "fresh") + (("other",) if n_patients > 1 else ()))
        ),
        authorised=tuple(draw(st.lists(pro, max_size=3, unique=True))),
        blocked=tuple(draw(st.lists(pro, max_size=2, unique=True))),
        emergency=tuple(
            draw(
                st.lists(
                    st.tuples(
                        st.sampled_from(("ETREAT", "BTG", "MASKED")),
                        st.sampled_from(("permit", "deny")),
                    ),
                    max_size=3,
                )
            )
        ),
        docs=tuple(docs),
        closed=draw(st.sampled_from((False, False, False, True))),
    )


def _some(strategy: st.SearchStrategy[Any], max_size: int = 2) -> st.SearchStrategy[tuple[Any, ...]]:
    """No parameter (often), or one parameter with 1..max_size values."""
    return st.just(()) | st.just(()) | st.lists(strategy, min_size=1, max_size=max_size).map(tuple)


def _search_plans(palette: tuple[TypeRow, ...]) -> st.SearchStrategy[SearchPlan]:
    n = len(palette)
    return st.builds(
        SearchPlan,
        by_identifier=st.booleans(),
        types=_some(st.tuples(st.integers(0, n - 1), st.booleans())),
        categories=_some(st.sampled_from(sorted({r[2] for r in palette} | {"90"}))),
        statuses=_some(st.sampled_from(("current", "superseded", "entered-in-error"))),
        labels=_some(st.sampled_from(LABELS)),
        dates=st.lists(
            st.tuples(st.sampled_from(DATE_PREFIXES), st.integers(-1, 4)), max_size=2
        ).map(tuple),
        archived=st.sampled_from((None, None, True, False)),
        count=st.integers(1, 5),
        sort_desc=st.booleans(),
        include=st.booleans(),
    )


@st.composite
def world_plans(draw: st.DrawFn) -> WorldPlan:
    pros = tuple(draw(st.lists(st.sampled_from(PRO_KINDS), min_size=3, max_size=5)))
    palette = tuple(draw(st.lists(st.sampled_from(PRO_TYPES), min_size=2, max_size=5, unique=True)))
    n_patients = draw(st.integers(1, 2))
    patients = tuple(
        draw(_patient_plans(len(pros), len(palette), n_patients)) for _ in range(n_patients)
    )
    searches = tuple(draw(st.lists(_search_plans(palette), min_size=1, max_size=3)))
    operator = draw(st.sampled_from((ActorKind.OPERATOR, ActorKind.SYSTEM)))
    return WorldPlan(pros, palette, patients, searches, operator)


# -- the model of a built world (the oracle's only source) -----------------------------------------


@dataclass(frozen=True)
class Pro:
    idnatps: str
    profession: str
    specialty: str | None

    @property
    def actor_id(self) -> str:
        return f"rpps:{self.idnatps}"

    def actor(self, mode: AccessMode = AccessMode.NORMAL, reason: str | None = None) -> Actor:
        return Actor(
            kind=ActorKind.PROFESSIONAL,
            subject=self.actor_id,
            issuer="property-test",
            rpps=self.idnatps,
            profession=self.profession,
            specialty=self.specialty,
            mode=mode,
            reason=reason,
        )


def patient_actor(ins: str) -> Actor:
    return Actor(
        kind=ActorKind.PATIENT,
        subject=f"ins:{ins}",
        issuer="property-test",
        ins=ins,
        ins_oid=TEST_OID,
    )


@dataclass
class DocModel:
    name: str
    doc_id: str
    binary_id: str
    sha256: str
    author_id: str
    type_code: str
    type_system: str
    class_code: str
    labels: frozenset[str]
    date: datetime
    added_at: datetime
    status: str = "current"
    archived: bool = False
    versions: int = 1

    def facts(self) -> DocumentFacts:
        return DocumentFacts(
            doc_id=self.doc_id,
            status=self.status,
            author_id=self.author_id,
            labels=self.labels,
            archived=self.archived,
            type_code=self.type_code,
            class_code=self.class_code,
            added_at=self.added_at,
        )


@dataclass
class RecordModel:
    name: str
    ins: str
    rid: str = ""
    treating: str | None = None  # IdNatPS
    representatives: set[str] = field(default_factory=set)  # INS
    authorised: set[str] = field(default_factory=set)  # IdNatPS
    blocked: set[str] = field(default_factory=set)
    centre15: bool = True  # dmp.md §2: ticked by default
    bris_de_glace: bool = True
    masked: bool = False
    closed: bool = False
    docs: list[DocModel] = field(default_factory=list)

    def facts(self, actor: Actor, now: datetime) -> RecordFacts:
        pro = actor.kind is ActorKind.PROFESSIONAL
        return RecordFacts(
            record_id=self.rid,
            state=RecordState.CLOSED if self.closed else RecordState.ACTIVE,
            ins=self.ins,
            authorised=pro and actor.rpps in self.authorised,
            blocked=pro and actor.rpps in self.blocked,
            is_treating_physician=pro and actor.rpps is not None and actor.rpps == self.treating,
            is_representative=(
                actor.kind is ActorKind.PATIENT
                and actor.ins != self.ins
                and actor.ins in self.representatives
            ),
            allows_centre15=self.centre15,
            allows_bris_de_glace=self.bris_de_glace,
            allows_masked_in_emergency=self.masked,
            now=now,
        )


@dataclass
class World:
    plan: WorldPlan
    pros: list[Pro]
    records: list[RecordModel]
    others: list[str]  # INS of people without a record: representatives, an unrelated patient
    notes: list[str] = field(default_factory=list)

    def doc(self, name: str) -> DocModel:
        return next(d for r in self.records for d in r.docs if d.name == name)

    def record(self, name: str) -> RecordModel:
        return next(r for r in self.records if r.name == name)

    def describe(self) -> str:
        lines = [f"pros: {[(p.idnatps, p.profession, p.specialty) for p in self.pros]}"]
        for r in self.records:
            lines.append(
                f"{r.name} ins={r.ins} rid={r.rid} treating={r.treating} reps={r.representatives}"
                f" authorised={r.authorised} blocked={r.blocked} c15={r.centre15}"
                f" bdg={r.bris_de_glace} masked={r.masked} closed={r.closed}"
            )
            for d in r.docs:
                lines.append(
                    f"  {d.name} {d.doc_id} by {d.author_id} {d.type_code}/{d.class_code}"
                    f" {sorted(d.labels)} {d.date:%Y-%m-%dT%H} {d.status}"
                    f"{' archived' if d.archived else ''} v{d.versions}"
                )
        return "\n".join(lines + self.notes)


# -- playing a plan through the scoped service -------------------------------------------------


class Env:
    """One Services for one backend, on one event loop reused by every example."""

    def __init__(self, backend: str, settings: Any, dbname: str | None) -> None:
        self.backend = backend
        self.dbname = dbname
        self.loop = asyncio.new_event_loop()
        self.services: Services = self.loop.run_until_complete(Services.start(settings))
        self.stats: Counter[str] = Counter()
        self.rules: Counter[tuple[str, bool]] = Counter()
        self.seconds = 0.0

    def run(self, coro: Awaitable[Any]) -> Any:
        return self.loop.run_until_complete(coro)

    def scope(self, actor: Actor) -> Scope:
        return Scope(self.services, actor, BASE)

    def close(self) -> None:
        try:
            self.loop.run_until_complete(self.services.close())
        finally:
            self.loop.close()


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _patient_body(rec: RecordModel, *extensions: dict[str, Any]) -> dict[str, Any]:
    body = patient_resource(rec.ins, extra_extensions=list(extensions))
    if rec.treating:
        body["generalPractitioner"] = [
            {"identifier": {"system": RPPS_SYSTEM, "value": rec.treating}}
        ]
    return body


def _consent(rec: RecordModel, decision: str, *, rpps: str | None = None,
             purpose: str | None = None) -> dict[str, Any]:
    provision: dict[str, Any] = {"type": decision}
    if rpps:
        provision["actor"] = [{"reference": {"identifier": {"system": RPPS_SYSTEM, "value": rpps}}}]
    if purpose:
        provision["purpose"] = [{"system": PURPOSE_SYSTEMS[purpose], "code": purpose}]
    return {
        "resourceType": "Consent",
        "status": "active",
        "patient": {"reference": f"Patient/{rec.rid}"},
        "provision": provision,
    }


async def _publish(env: Env, actor: Actor, rec: RecordModel, name: str, row: TypeRow,
                   labels: tuple[str, ...], date: datetime, *,
                   replaces: DocModel | None = None) -> DocModel:
    content = b"%PDF-1.4\n% carnet property test " + uuid.uuid4().hex.encode() + b"\n"
    by_patient = actor.kind is ActorKind.PATIENT
    dr = docref(
        rec.ins,
        type_code=row[0],
        class_code=row[2],
        labels=list(labels) or ["N"],
        date=_iso(date),
        author_rpps=actor.rpps or "",
        content=content,
        replaces=replaces.doc_id if replaces else None,
    )
    dr["type"]["coding"][0]["system"] = row[1]
    if by_patient:  # the patient is the author: no RPPS, the document is theirs
        dr["contained"][1] = {
            "resourceType": "Patient",
            "id": "author",
            "identifier": [{"system": f"urn:oid:{TEST_OID}", "value": rec.ins}],
        }
    submission = build_submission(
        bundle(rec.ins, [(dr, content, "application/pdf")]), allow_test=True, actor_id=actor.id
    )
    added_at = utcnow()
    result = await env.scope(actor).publish(submission)
    published = result.documents[0]
    assert published.created, published
    if replaces is not None:
        assert [t for t, _v in result.replaced] == [replaces.doc_id], result.replaced
        replaces.status = "superseded"
        replaces.versions += 1
    doc = DocModel(
        name=name,
        doc_id=published.doc_id,
        binary_id=published.binary_id,
        sha256=hashlib.sha256(content).hexdigest(),
        author_id=actor.id,
        type_code=row[0],
        type_system=row[1],
        class_code=row[2],
        labels=frozenset(labels or ("N",)),
        date=date,
        added_at=added_at,
    )
    rec.docs.append(doc)
    return doc


async def _update(env: Env, actor: Actor, doc: DocModel,
                  change: Callable[[dict[str, Any]], None]) -> None:
    scope = env.scope(actor)
    stored = await scope.read_document(doc.doc_id)
    resource = json.loads(stored.resource)
    change(resource)
    await scope.update_document(doc.doc_id, resource, stored.version_id)
    doc.versions += 1


def _mask(resource: dict[str, Any]) -> None:
    resource.setdefault("securityLabel", []).append(
        {"coding": [{"system": VISIBILITY_SYSTEM, "code": "MASQUE_PS"}]}
    )


def _delete(resource: dict[str, Any]) -> None:
    resource["status"] = "entered-in-error"


def _archive(resource: dict[str, Any]) -> None:
    resource.setdefault("extension", []).append({"url": ARCHIVED_URL, "valueBoolean": True})


async def _later(env: Env, author: Actor, doc: DocModel, later: str) -> None:
    if later == "delete":
        await _update(env, author, doc, _delete)
        doc.status = "entered-in-error"
    elif later == "archive":
        await _update(env, author, doc, _archive)
        doc.archived = True


async def build_world(env: Env, plan: WorldPlan) -> World:
    pros = [Pro(fresh_idnatps(), p, s) for p, s in plan.pros]
    records = [RecordModel(name="ABCDEFGH"[i], ins=fresh_ins()) for i in range(len(plan.patients))]
    unrelated = fresh_ins()
    world = World(plan, pros, records, [unrelated])
    for rec, pp in zip(records, plan.patients, strict=True):
        patient = patient_actor(rec.ins)
        opener = pros[pp.opener]
        created = await env.scope(opener.actor()).create_record(patient_resource(rec.ins))
        rec.rid = created.record_id
        rec.authorised.add(opener.idnatps)  # the opener is authorised by the creation consent
        if pp.treating is not None:
            rec.treating = pros[pp.treating].idnatps
            updated = await env.scope(patient).update_record(rec.rid, _patient_body(rec), None)
            assert updated.treating_physician == f"rpps:{rec.treating}"
        if pp.representative is not None:
            if pp.representative == "other":
                rep_ins = next(r.ins for r in records if r is not rec)
            else:
                rep_ins = fresh_ins()
                world.others.append(rep_ins)
            await env.scope(patient).add_representative(
                rec.rid,
                {
                    "resourceType": "RelatedPerson",
                    "identifier": [{"system": f"urn:oid:{TEST_OID}", "value": rep_ins}],
                    "relationship": [{"coding": [{"system": ROLE_SYSTEM, "code": "GUARD"}]}],
                },
            )
            rec.representatives.add(rep_ins)
        for i in pp.authorised:
            await env.scope(patient).create_consent(_consent(rec, "permit", rpps=pros[i].idnatps))
            rec.authorised.add(pros[i].idnatps)
        # documents, then what their authors and the patient do with them
        made: list[tuple[DocPlan, DocModel, Actor]] = []
        for n, dp in enumerate(pp.docs):
            author = patient if dp.author < 0 else pros[dp.author].actor()
            row = PATIENT_TYPES[dp.kind] if dp.author < 0 else plan.palette[dp.kind]
            when = BASE_DAY + timedelta(days=dp.day, hours=dp.hour)
            doc = await _publish(env, author, rec, f"{rec.name}.d{n}", row, dp.labels, when)
            made.append((dp, doc, author))
        for dp, doc, author in made:
            if dp.mask and "MASQUE_PS" not in doc.labels:
                if "INVISIBLE_PATIENT" in doc.labels:
                    # the patient does not see it yet: they cannot mask it either
                    try:
                        await _update(env, patient, doc, _mask)
                    except NotFound:
                        world.notes.append(f"{doc.name}: mask refused (INVISIBLE_PATIENT)")
                    else:
                        raise AssertionError(f"{doc.name}: the patient masked an invisible doc")
                else:
                    await _update(env, patient, doc, _mask)
                    doc.labels = doc.labels | {"MASQUE_PS"}
            if dp.replacement is not None:
                rp = dp.replacement
                row = PATIENT_TYPES[rp.kind] if dp.author < 0 else plan.palette[rp.kind]
                when = BASE_DAY + timedelta(days=rp.day, hours=rp.hour)
                new = await _publish(env, author, rec, f"{doc.name}r", row, rp.labels, when,
                                     replaces=doc)
                await _later(env, author, new, rp.later)
            await _later(env, author, doc, dp.later)
        for i in pp.blocked:
            await env.scope(patient).create_consent(_consent(rec, "deny", rpps=pros[i].idnatps))
            rec.blocked.add(pros[i].idnatps)
            rec.authorised.discard(pros[i].idnatps)  # a new decision replaces the old one
        for purpose, decision in pp.emergency:
            await env.scope(patient).create_consent(_consent(rec, decision, purpose=purpose))
            value = decision == "permit"
            if purpose == "ETREAT":
                rec.centre15 = value
            elif purpose == "BTG":
                rec.bris_de_glace = value
            else:
                rec.masked = value
        if pp.closed:
            closing = _patient_body(rec, {"url": RECORD_STATUS_URL, "valueCode": "closed"})
            closed = await env.scope(patient).update_record(rec.rid, closing, None)
            assert closed.state is RecordState.CLOSED
            rec.closed = True
    return world


# -- the actors ------------------------------------------------------------------------------


def world_actors(world: World) -> list[tuple[str, Actor]]:
    out: list[tuple[str, Actor]] = []
    for i, pro in enumerate(world.pros):
        who = f"pro{i}({pro.profession}{'/' + pro.specialty if pro.specialty else ''})"
        out += [
            (f"{who} normal", pro.actor()),
            (f"{who} bris_de_glace", pro.actor(AccessMode.BRIS_DE_GLACE, REASON)),
            (f"{who} bris_de_glace no reason", pro.actor(AccessMode.BRIS_DE_GLACE, None)),
            (f"{who} centre_15", pro.actor(AccessMode.CENTRE_15)),
        ]
    for rec in world.records:
        out.append((f"patient {rec.name}", patient_actor(rec.ins)))
    for n, ins in enumerate(world.others):
        out.append((f"person{n} (no record)", patient_actor(ins)))
    kind = world.plan.operator
    out.append((kind.value, Actor(kind=kind, subject=f"{kind.value}-1", issuer="property-test")))
    return out


# -- the oracle and the checks -------------------------------------------------------------------


class Check:
    def __init__(self, env: Env) -> None:
        self.env = env
        self.problems: list[str] = []
        self.decisions = 0

    def expect(self, ok: bool, message: str) -> None:
        self.decisions += 1
        if not ok:
            self.problems.append(message)


async def _outcome(call: Awaitable[Any]) -> tuple[str, Any]:
    try:
        return "ok", await call
    except Gone:
        return "gone", None
    except NotFound:
        return "notfound", None
    except InvalidInput:
        return "invalid", None
    except Exception as exc:  # any other answer is a discrepancy, reported with the others
        return f"error {type(exc).__name__}: {exc}", None


def _date_matches(date: datetime, prefix: str, day: int) -> bool:
    """FHIR date search on an instant (http://hl7.org/fhir/R4/search.html#date): the value
    ``BASE_DAY + day`` is the day [lo, hi)."""
    lo = BASE_DAY + timedelta(days=day)
    hi = lo + timedelta(days=1)
    within = lo <= date < hi
    return {
        "eq": within,
        "ap": within,
        "ne": not within,
        "gt": date >= hi,
        "sa": date >= hi,
        "ge": date >= lo,
        "lt": date < lo,
        "eb": date < lo,
        "le": date < hi,
    }[prefix]


def _matches(doc: DocModel, s: SearchPlan, palette: tuple[TypeRow, ...]) -> bool:
    if s.types and not any(
        doc.type_code == palette[i][0] and (not with_system or doc.type_system == palette[i][1])
        for i, with_system in s.types
    ):
        return False
    if s.categories and doc.class_code not in s.categories:
        return False
    if s.statuses and doc.status not in s.statuses:
        return False
    if s.labels and not doc.labels & set(s.labels):
        return False
    if not all(_date_matches(doc.date, p, d) for p, d in s.dates):
        return False
    if s.archived is None:
        return not doc.archived
    return doc.archived == s.archived


def _criteria(rec: RecordModel | None, s: SearchPlan, palette: tuple[TypeRow, ...]
              ) -> DocumentCriteria:
    c = DocumentCriteria(
        sort_desc=s.sort_desc, count=s.count, include_subject=s.include, archived=s.archived
    )
    if rec is not None:
        if s.by_identifier:
            c.patient_identifiers = [[Token(f"urn:oid:{TEST_OID}", rec.ins)]]
        else:
            c.record_ids = [[rec.rid]]
    if s.types:
        c.type = [[Token(palette[i][1] if w else None, palette[i][0]) for i, w in s.types]]
    if s.categories:
        c.category = [[Token(None, code) for code in s.categories]]
    if s.statuses:
        c.status = [[Token(None, code) for code in s.statuses]]
    if s.labels:
        c.security_label = [[Token(None, code) for code in s.labels]]
    for prefix, day in s.dates:
        lo = BASE_DAY + timedelta(days=day)
        c.date.append(DateRange(prefix, lo, lo + timedelta(days=1)))
    return c


async def _search_all(scope: Scope, criteria: DocumentCriteria, check: Check, where: str,
                      by_id: dict[str, DocModel], expected_included: set[str] | None
                      ) -> tuple[str, list[str], set[int]]:
    """Follow the next cursors to the end. Returns (outcome, doc ids in order, totals)."""
    ids: list[str] = []
    totals: set[int] = set()
    for _ in range(MAX_PAGES):
        status, page = await _outcome(scope.search_documents(criteria))
        if status != "ok":
            return status, ids, totals
        totals.add(page.total)
        check.expect(len(page.items) <= criteria.count,
                     f"{where}: {len(page.items)} items on a page of {criteria.count}")
        ids += [d.doc_id for d in page.items]
        dates = [by_id[d.doc_id].date for d in page.items if d.doc_id in by_id]
        ordered = sorted(dates, reverse=criteria.sort_desc)
        check.expect(dates == ordered, f"{where}: page not sorted by date")
        if expected_included is not None:
            page_records = {d.record_id for d in page.items}
            got = {r.record_id for r in page.included}
            want = page_records & expected_included if criteria.include_subject else set()
            check.expect(got == want, f"{where}: included Patients {got}, expected {want}")
        if page.next_cursor is None:
            return "ok", ids, totals
        criteria.cursor = page.next_cursor
    return "endless paging", ids, totals


async def check_actor(env: Env, world: World, who: str, actor: Actor, check: Check) -> None:
    scope = env.scope(actor)
    matrix = env.services.matrix.allows
    now = utcnow()
    emergency = actor.kind is ActorKind.PROFESSIONAL and actor.mode is not AccessMode.NORMAL
    by_id = {d.doc_id: d for r in world.records for d in r.docs}
    allowed: dict[str, bool] = {}
    readable_records: set[str] = set()
    for rec in world.records:
        facts = rec.facts(actor, now)
        record_read = decide(actor, Action.RECORD_READ, facts, matrix=matrix)
        env.rules[(f"record:{record_read.rule}", record_read.allowed)] += 1
        if record_read:
            readable_records.add(rec.rid)
        # read_record (the Patient), first step of $everything
        status, _ = await _outcome(scope.read_record(rec.rid))
        check.expect(status == ("ok" if record_read else "notfound"),
                     f"{who}: read_record {rec.name} -> {status}, policy {_show(record_read)}")
        for doc in rec.docs:
            d = decide(actor, Action.DOCUMENT_READ, facts, doc.facts(), matrix=matrix)
            env.rules[(d.rule, d.allowed)] += 1
            allowed[doc.doc_id] = d.allowed
            if d:
                want = "ok"
            elif doc.status == "entered-in-error" and record_read:
                want = "gone"  # said only to someone who may read the record
            else:
                want = "notfound"
            what = f"{who}: {doc.name}"
            status, got = await _outcome(scope.read_document(doc.doc_id))
            check.expect(status == want, f"{what} read -> {status}, policy {_show(d)}")
            if status == "ok":
                check.expect(
                    (got.doc_id, got.status, got.archived, got.labels, got.author_id)
                    == (doc.doc_id, doc.status, doc.archived, doc.labels, doc.author_id),
                    f"{what} read: stored facts {got.status} {got.archived} "
                    f"{sorted(got.labels)} {got.author_id} differ from the model",
                )
            status, history = await _outcome(scope.document_history(doc.doc_id))
            check.expect(status == want, f"{what} history -> {status}, policy {_show(d)}")
            if status == "ok":
                versions = [v for v, _t, _r in history]
                check.expect(versions == list(range(doc.versions, 0, -1)),
                             f"{what} history: versions {versions}, expected {doc.versions}..1")
            status, handle = await _outcome(scope.open_content(doc.binary_id))
            check.expect(status == ("ok" if d else "notfound"),
                         f"{what} content -> {status}, policy {_show(d)}")
            if status == "ok":
                check.expect(handle.sha256 == doc.sha256, f"{what} content: another blob")

        def visible(s: SearchPlan, rec: RecordModel = rec) -> set[str]:
            return {
                d.doc_id for d in rec.docs
                if allowed[d.doc_id] and _matches(d, s, world.plan.palette)
            }

        # searches naming this patient, with the world's random filters, paged to the end
        for n, s in enumerate(world.plan.searches):
            where = f"{who}: search#{n} {rec.name} {s}"
            want = visible(s)
            criteria = _criteria(rec, s, world.plan.palette)
            status, ids, totals = await _search_all(scope, criteria, check, where, by_id,
                                                    readable_records)
            check.expect(status == "ok", f"{where}: -> {status}")
            check.expect(len(ids) == len(set(ids)), f"{where}: duplicates {ids}")
            check.expect(set(ids) == want, f"{where}: got {_names(ids, by_id)}, "
                                           f"expected {_names(want, by_id)}")
            check.expect(totals <= {len(want)}, f"{where}: total {totals}, expected {len(want)}")
            check.decisions += len(rec.docs)
        # $everything: the Patient, then every document, archived or not
        if record_read:
            got_all: list[str] = []
            for archived in (False, True):
                criteria = DocumentCriteria(record_ids=[[rec.rid]], count=200, archived=archived)
                where = f"{who}: everything {rec.name} archived={archived}"
                status, ids, _t = await _search_all(scope, criteria, check, where, by_id, None)
                check.expect(status == "ok", f"{where}: -> {status}")
                got_all += ids
            want_all = {d.doc_id for d in rec.docs if allowed[d.doc_id]}
            check.expect(sorted(got_all) == sorted(want_all),
                         f"{who}: everything {rec.name}: got {_names(got_all, by_id)}, "
                         f"expected {_names(want_all, by_id)}")
            check.decisions += len(rec.docs)
    # a search that names no patient: every record the actor reaches
    plain = DocumentCriteria(count=3)
    where = f"{who}: search without patient"
    status, ids, totals = await _search_all(scope, plain, check, where, by_id, None)
    if emergency:
        check.expect(status == "invalid", f"{where}: emergency access -> {status}, not invalid")
    else:
        want = {
            d.doc_id for r in world.records for d in r.docs if allowed[d.doc_id] and not d.archived
        }
        check.expect(status == "ok", f"{where}: -> {status}")
        check.expect(len(ids) == len(set(ids)), f"{where}: duplicates")
        stray = [i for i in ids if i not in by_id]
        check.expect(not stray, f"{where}: documents of another world {stray}")
        check.expect(set(ids) == want,
                     f"{where}: got {_names(ids, by_id)}, expected {_names(want, by_id)}")
        check.expect(totals <= {len(want)}, f"{where}: total {totals}, expected {len(want)}")
    check.decisions += len(by_id)


def _show(d: Decision) -> str:
    return f"{'allow' if d else 'deny'} ({d.rule}: {d.reason})"


def _names(ids: Any, by_id: dict[str, DocModel]) -> list[str]:
    return sorted(by_id[i].name if i in by_id else i for i in ids)


async def check_world(env: Env, world: World) -> Check:
    check = Check(env)
    actors = world_actors(world)
    for who, actor in actors:
        await check_actor(env, world, who, actor, check)
    env.stats["worlds"] += 1
    env.stats["actors"] += len(actors)
    env.stats["decisions"] += check.decisions
    return check


def _fail_if_any(check: Check, world: World) -> None:
    if check.problems:
        shown = "\n".join(check.problems[:25])
        more = f"\n… and {len(check.problems) - 25} more" if len(check.problems) > 25 else ""
        raise AssertionError(
            f"{len(check.problems)} discrepancies between the paths and the policy:\n"
            f"{shown}{more}\nworld:\n{world.describe()}"
        )


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def env(backend: str, tmp_path_factory: pytest.TempPathFactory,
        request: pytest.FixtureRequest) -> Iterator[Env]:
    data_dir: Path = tmp_path_factory.mktemp(f"worlds-{backend}")
    settings_, dbname = make_settings(backend, data_dir, dev_issuer=False, allow_test_ins=True)
    environment = Env(backend, settings_, dbname)
    try:
        yield environment
    finally:
        environment.close()
        if dbname and PG_URL:
            asyncio.run(_drop_database(PG_URL, dbname))
        _report(request.config, environment)


def _report(config: pytest.Config, e: Env) -> None:
    s = e.stats
    denied = sum(n for (_rule, ok), n in e.rules.items() if not ok)
    text = (
        f"access worlds [{e.backend}]: {s['worlds']} worlds ({s['random_worlds']} random in "
        f"{e.seconds:.1f} s), {s['actors']} actors, {s['decisions']} path decisions checked "
        f"against the policy ({sum(e.rules.values())} policy decisions, {denied} denials)"
    )
    reporter = config.pluginmanager.getplugin("terminalreporter")
    capture = config.pluginmanager.getplugin("capturemanager")
    if reporter is None or capture is None:
        print(text)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        reporter.write_line(text)


# -- the property ------------------------------------------------------------------------------


@settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.large_base_example],
)
@given(plan=world_plans())
def test_random_worlds_show_exactly_what_the_policy_allows(env: Env, plan: WorldPlan) -> None:
    started = time.perf_counter()
    world = env.run(build_world(env, plan))
    note(world.describe())
    check = env.run(check_world(env, world))
    env.stats["random_worlds"] += 1
    env.seconds += time.perf_counter() - started
    _fail_if_any(check, world)


# -- one hand-made world, every rule of dmp.md §3 on purpose ------------------------------------

LOINC = "http://loinc.org"
HAND_PALETTE: tuple[TypeRow, ...] = (
    ("11488-4", LOINC, "10"),  # 0 consultation
    ("11502-2", LOINC, "10"),  # 1 biologie
    ("60591-5", LOINC, "11"),  # 2 synthèse
    ("68599-0", LOINC, "11"),  # 3 synthèse psychiatrique: not for dentists nor pharmacists
    ("87273-9", LOINC, "52"),  # 4 vaccination
    ("18748-4", LOINC, "31"),  # 5 imagerie
    ("34112-3", LOINC, "10"),  # 6 CR hospitalier
)
GP, PHARMA, DENTIST, NURSE, DOCTOR = range(5)
HAND_PLAN = WorldPlan(
    pros=(("10", "SM54"), ("21", None), ("40", None), ("60", None), ("10", "SM04")),
    palette=HAND_PALETTE,
    patients=(
        # A: médecin traitant, representative, a blocked dentist; break-the-glass refused
        PatientPlan(
            opener=GP,
            treating=GP,
            representative="fresh",
            authorised=(PHARMA, DOCTOR, DENTIST),
            blocked=(DENTIST,),
            emergency=(("BTG", "deny"), ("MASKED", "deny")),
            docs=(
                DocPlan(PHARMA, 0, ("N", "MASQUE_PS"), 0, 8),  # A.d0 masked
                DocPlan(GP, 1, ("INVISIBLE_PATIENT",), 1, 8),  # A.d1 not yet for the patient
                DocPlan(DENTIST, 2, ("INVISIBLE_REPRESENTANTS_LEGAUX",), 1, 14),  # A.d2
                DocPlan(GP, 3, ("N",), 2, 8),  # A.d3 psychiatric
                DocPlan(PHARMA, 4, ("N",), 2, 8, later="delete"),  # A.d4 deleted
                DocPlan(GP, 5, ("N",), 3, 8, later="archive"),  # A.d5 archived
                DocPlan(GP, 6, ("N",), 3, 14,  # A.d6 replaced by A.d6r
                        replacement=DocPlan(GP, 6, ("N",), 3, 14)),
                DocPlan(-1, 0, ("N",), 0, 14, mask=True),  # A.d7 the patient's, masked by them
                DocPlan(NURSE, 0, ("INVISIBLE_PATIENT",), 0, 8, mask=True),  # A.d8 mask refused
            ),
        ),
        # B: centre 15 and break-the-glass allowed, masked documents too in an emergency
        PatientPlan(
            opener=NURSE,
            representative="other",  # the patient of A represents B
            emergency=(("MASKED", "permit"),),
            docs=(
                DocPlan(NURSE, 0, ("N",), 0, 8),  # B.d0
                DocPlan(GP, 2, ("MASQUE_PS",), 1, 8),  # B.d1
                DocPlan(GP, 3, ("N",), 1, 8),  # B.d2 psychiatric
            ),
        ),
        # C: closed by the patient; centre 15 refused
        PatientPlan(
            opener=GP,
            treating=GP,
            authorised=(NURSE,),
            emergency=(("ETREAT", "deny"),),
            docs=(DocPlan(GP, 0, ("N",), 0, 8), DocPlan(NURSE, 4, ("N",), 1, 8, later="delete")),
            closed=True,
        ),
    ),
    searches=(
        SearchPlan(count=2),
        SearchPlan(archived=True, count=1, sort_desc=False, include=True),
        SearchPlan(labels=("MASQUE_PS",), include=True, by_identifier=True),
        SearchPlan(statuses=("superseded",), count=1),
        SearchPlan(dates=(("ge", 1), ("lt", 3)), types=((0, True), (2, False)), count=1),
        SearchPlan(categories=("10", "90"), statuses=("current", "entered-in-error"), count=2),
    ),
)


async def _visible(env: Env, actor: Actor, rec: RecordModel) -> set[str]:
    """What ``actor`` finds of ``rec`` (read by id, every document): doc names."""
    scope = env.scope(actor)
    out = set()
    for doc in rec.docs:
        status, _ = await _outcome(scope.read_document(doc.doc_id))
        if status == "ok":
            out.add(doc.name.split(".", 1)[1])
    return out


def test_hand_made_world_every_rule(env: Env) -> None:
    world = env.run(build_world(env, HAND_PLAN))
    check = env.run(check_world(env, world))
    _fail_if_any(check, world)
    a, b, c = world.records
    gp, pharma, dentist, nurse, doctor = world.pros
    rep = next(iter(a.representatives))
    assert b.representatives == {a.ins}
    assert "A.d8: mask refused (INVISIBLE_PATIENT)" in world.notes
    seen = lambda actor, rec: env.run(_visible(env, actor, rec))  # noqa: E731

    # dmp.md §3, stated by hand (this pins the oracle, decide, to the spec):
    everything_a = {"d0", "d1", "d2", "d3", "d5", "d6", "d6r", "d7", "d8"}  # d4 deleted
    # médecin traitant: everything, masked documents included (L1111-16)
    assert seen(gp.actor(), a) == everything_a
    # the patient: all but INVISIBLE_PATIENT (d1, d8); the deleted one is Gone
    assert seen(patient_actor(a.ins), a) == everything_a - {"d1", "d8"}
    outcome = env.run(_outcome(env.scope(patient_actor(a.ins)).read_document(a.docs[4].doc_id)))
    assert outcome[0] == "gone"
    # the representative: as the patient, minus INVISIBLE_REPRESENTANTS_LEGAUX (d2)
    assert seen(patient_actor(rep), a) == everything_a - {"d1", "d8", "d2"}
    # blocked: nothing, not even what the dentist wrote (d2)
    assert seen(dentist.actor(), a) == set()
    # authorised pharmacist: own masked d0; not the psychiatric summary (matrix), nor the
    # patient's masked d7
    assert "d0" in seen(pharma.actor(), a)
    assert not {"d3", "d7"} & seen(pharma.actor(), a)
    # authorised médecin, not traitant: no masked documents (d0, d7)
    assert seen(doctor.actor(), a) == everything_a - {"d0", "d7"}
    # the nurse, not authorised on A, reads only what she wrote
    assert seen(nurse.actor(), a) == {"d8"}
    # break the glass refused by the patient of A; with no reason refused everywhere
    assert seen(doctor.actor(AccessMode.BRIS_DE_GLACE, REASON), a) == set()
    assert seen(doctor.actor(AccessMode.BRIS_DE_GLACE, None), b) == set()
    # break the glass on B, masked allowed in an emergency: everything the matrix allows
    assert seen(doctor.actor(AccessMode.BRIS_DE_GLACE, REASON), b) == {"d0", "d1", "d2"}
    assert seen(dentist.actor(AccessMode.BRIS_DE_GLACE, REASON), b) == {"d0", "d1"}
    # centre 15 allowed on A (the default) and B; masked documents on A refused
    assert seen(nurse.actor(AccessMode.CENTRE_15), a) == {"d1", "d2", "d5", "d6", "d6r", "d8"}
    assert seen(doctor.actor(AccessMode.CENTRE_15), b) == {"d0", "d1", "d2"}
    # C is closed: no professional reads it, whatever the mode; the patient still does
    for actor in (gp.actor(), nurse.actor(), gp.actor(AccessMode.BRIS_DE_GLACE, REASON),
                  gp.actor(AccessMode.CENTRE_15)):
        assert seen(actor, c) == set()
    assert seen(patient_actor(c.ins), c) == {"d0"}
    # the patient of A, representative of B, reads B too; a stranger reads nothing
    assert seen(patient_actor(a.ins), b) == {"d0", "d1", "d2"}
    assert seen(patient_actor(world.others[0]), a) == set()
    # an operator reads no medical content
    operator = Actor(kind=ActorKind.OPERATOR, subject="op", issuer="property-test")
    assert seen(operator, a) == seen(operator, b) == set()
    # every rule of the policy was met by the oracle on the way
    rules = {rule for rule, _ok in env.rules}
    for rule in ("blocked", "not-authorised", "matrix", "masked", "document-author",
                 "document-deleted", "patient", "legal-representative", "bris-de-glace",
                 "centre-15", "record-closed", "authorised", "default-deny"):
        assert rule in rules, (rule, sorted(rules))
