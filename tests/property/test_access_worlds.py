"""Property-based proof of the access rules (dmp.md §3): random worlds, every actor, every path.

Hypothesis draws a *plan* of a world: 3-5 professionals of several professions (some in a care
team), 1-2 patients, each with the professional who opened the record, maybe a médecin traitant
(at creation or later), a legal representative, authorisations (some revoked), care-team
authorisations, blocks (some lifted), emergency consents (as Consents or on the Patient), and
documents of random types (the access matrix's rows) and visibility flags, later masked or
unmasked by the patient, their INVISIBLE_PATIENT flag lifted by the author or lapsed (added 40
days ago), replaced, deleted or archived; and maybe the record closed, or closed and reopened.
The plan is played through the core (:class:`carnet.access.scope.Scope`, in process, its
inputs read from FHIR resources by the FHIR interface's own parsers) with fresh identities (so examples never collide in the shared database), while a
model of the world is kept on the side.

The ORACLE is computed from that model only, never from the database: the facts of each record
and document are rebuilt from what the plan did, and :func:`carnet.access.policy.decide` (with
the access matrix of the running core, ``core.matrix.allows``) says what each actor may
see. Every way of reaching documents is then compared with it, for every actor (each
professional in modes normal, bris_de_glace with and without a reason, centre_15; each patient,
representative, a stranger, an operator or system): read by id (and 404 / 410 as due), vread,
history, content (ITI-68), search (ITI-67) with random filters, ``_count``, sort and paging to
the end, ``_include`` of the Patient, ``$everything`` (read the Patient, then search archived
and not), a search naming no patient, and the submission sets (ITI-66 List). What comes back
must be exactly what the policy allows, never more and never less. The test thereby checks fact
gathering, SQL filtering and paging against the pure policy; a hand-made world pins the policy
itself to dmp.md §3, rule by rule.

Runs on SQLite, and on PostgreSQL when CARNET_TEST_DATABASE_URL is set (tests/conftest.py).
CARNET_WORLDS sets the number of random worlds per backend (14 in `make test`, which must stay
well under 20 minutes on 2 cores: each world also reads every actor's traces and tries uniqueId
collisions; `CARNET_WORLDS=200 pytest tests/property` is a long run); CARNET_WORLDS_SHRINK=1
lets Hypothesis shrink a failing world (slow: each world takes seconds).
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import os
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

import carnet.access.context as clock_module
from carnet.access.core import Core
from carnet.access.policy import Action, Decision, DocumentFacts, RecordFacts, RecordState, decide
from carnet.access.scope import Scope
from carnet.domain.actors import RPPS_SYSTEM, AccessMode, Actor, ActorKind
from carnet.domain.clock import utcnow
from carnet.domain.documents import StoredDocument
from carnet.domain.errors import Gone, NotFound
from carnet.domain.errors import Invalid as InvalidInput
from carnet.domain.ins import make_nir
from carnet.domain.professionals import STRUCTURE_SYSTEM
from carnet.domain.search import (
    DateRange,
    DocumentCriteria,
    ListCriteria,
    Ref,
    Text,
    Token,
    normalise_name,
)
from carnet.domain.trace_view import REFUSED, refs_of
from carnet.domain.traces import AuditCriteria, StoredEvent
from carnet.fhir.consent_resource import parse_consent, render_consent
from carnet.fhir.docref_resource import render_docref
from carnet.fhir.docref_update import change_from
from carnet.fhir.iti65 import ParsedBundle, build_submission
from carnet.fhir.list_search import render_list
from carnet.fhir.patient_resource import patient_input
from carnet.fhir.related_person import parse_related_person
from carnet.fhir.submission import subject_ref
from tests.conftest import PG_URL, _drop_database, make_settings
from tests.factories import TEST_OID, bundle, docref, patient_resource

BASE = "http://test/fhir"
CARNET = "https://carnet.health/fhir/StructureDefinition"
ARCHIVED_URL = f"{CARNET}/dmp-archived"
RECORD_STATUS_URL = f"{CARNET}/dmp-record-status"
EMERGENCY_URL = f"{CARNET}/dmp-emergency-consents"
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
# what documents and their submission sets carry for the searches of MHD 4.2.3 and PDSm, drawn
# from the model (the author's RPPS, the hour, the day) so that the oracle knows it
NAMES = (("Dupont", "Jean-Pierre"), ("Lefèvre", "Hélène"), ("Martin", "Marc"))
EVENTS = ("DEQP003", "YYYY600")  # CCAM, by the document's hour (8, 14)
TITLES = ("Bilan cardiologique", "Suivi diabète")  # by the hour
DESIGNATIONS = ("34133-9", "11369-6")  # by the day's parity
CCAM = "urn:oid:1.2.250.1.213.2.5"
ORDERS = "urn:oid:1.2.250.1.999.7"
BASE_DAY = datetime(2025, 3, 3)  # document dates: BASE_DAY + 0..3 days, 08:00 or 14:00 UTC
REASON = "urgence vitale : patient inconscient aux urgences"
MAX_PAGES = 200
WORLDS = int(os.environ.get("CARNET_WORLDS") or 14)  # examples per backend
# no explain phase (it traces every line run, slowing each world) and, unless asked, no shrinking
PHASES = (Phase.explicit, Phase.reuse, Phase.generate, Phase.target) + (
    (Phase.shrink,) if os.environ.get("CARNET_WORLDS_SHRINK") else ()
)

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
    """A valid INS-NIR de test; now and then born in Corsica (department 2A / 2B)."""
    department = _rng.choice(["2A", "2B"] + [f"{_rng.randint(1, 95):02d}"] * 8)
    first13 = (
        f"{_rng.choice('12')}{_rng.randint(40, 99):02d}{_rng.randint(1, 12):02d}"
        f"{department}{_rng.randint(1, 999):03d}{_rng.randint(1, 999):03d}"
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
    mask: bool = False  # the patient toggles MASQUE_PS (masks, or unmasks) after it was added
    lift: bool = False  # the author lifts INVISIBLE_PATIENT
    old: bool = False  # added 40 days ago: INVISIBLE_PATIENT has lapsed (R1111-53)
    replacement: DocPlan | None = None  # the author replaces it (ITI-65 relatesTo)


@dataclass(frozen=True)
class PatientPlan:
    opener: int
    treating: int | None = None
    treating_at_creation: bool = False  # Patient.generalPractitioner at creation, else updated
    representative: str | None = None  # None | "fresh" | "other" (the other patient)
    authorised: tuple[int, ...] = ()  # professionals authorised by the patient
    care_teams: tuple[int, ...] = ()  # structures authorised (care-team presumption, R1111-46)
    revoked: tuple[int, ...] = ()  # authorisations (of ``authorised``) revoked afterwards
    blocked: tuple[int, ...] = ()
    unblocked: tuple[int, ...] = ()  # blocks (of ``blocked``) revoked afterwards
    # (ETREAT | BTG | MASKED, permit | deny, by "consent" or by a "patient" update)
    emergency: tuple[tuple[str, str, str], ...] = ()
    docs: tuple[DocPlan, ...] = ()
    lifecycle: str = "active"  # active | closed | reopened


@dataclass(frozen=True)
class SearchPlan:
    by_identifier: bool = False  # patient.identifier=<INS> rather than patient=<id>
    types: tuple[tuple[int, bool], ...] = ()  # (palette index, with its system); OR
    categories: tuple[str, ...] = ()  # OR
    statuses: tuple[str, ...] = ()  # OR
    labels: tuple[str, ...] = ()  # OR
    dates: tuple[tuple[str, int], ...] = ()  # (prefix, day); AND
    authors: tuple[int, ...] = ()  # professional index, -1: the patient; OR
    named: str | None = None  # None | "id" (_id) | "identifier" (masterIdentifier)
    picks: tuple[int, ...] = ()  # the documents named: indices in the record (modulo)
    archived: bool | None = None
    count: int = 20
    sort_desc: bool = True
    include: bool = False
    # the parameters of MHD 4.2.3 and PDSm (AND between them; each one value)
    creation: tuple[tuple[str, int], ...] = ()  # (prefix, day), as dates
    period_start: tuple[tuple[str, int], ...] = ()
    period_end: tuple[tuple[str, int], ...] = ()  # no document has an end: matches none
    last_updated: str | None = None  # "ge" or "lt" 2000-01-01
    given: int | None = None  # index in NAMES; an author's given name
    family: int | None = None  # index in NAMES
    event: int | None = None  # index in EVENTS
    related: int | None = None  # the day of the order number ORD-<day>
    relates_to: bool = False  # relatesto: the picked documents' ids (what replaced them)
    # ITI-66: the Lists' filters (one submission set per document here)
    list_title: int | None = None  # index in TITLES
    list_designation: int | None = None  # index in DESIGNATIONS
    list_family: int | None = None  # index in NAMES: the set's author
    list_archived: bool | None = None


@dataclass(frozen=True)
class WorldPlan:
    pros: tuple[tuple[str, str | None, int | None], ...]  # profession, speciality, structure
    palette: tuple[TypeRow, ...]
    patients: tuple[PatientPlan, ...]
    searches: tuple[SearchPlan, ...]
    operator: ActorKind = ActorKind.OPERATOR


def _rarely(p: int = 4) -> st.SearchStrategy[bool]:
    return st.sampled_from((True,) + (False,) * (p - 1))


def _doc_plans(n_pros: int, n_palette: int, *, nested: bool = False) -> st.SearchStrategy[DocPlan]:
    return st.builds(
        DocPlan,
        author=st.integers(0, n_pros - 1),
        kind=st.integers(0, n_palette - 1),
        labels=st.lists(st.sampled_from(LABELS), max_size=3, unique=True).map(tuple),
        day=st.integers(0, 3),
        hour=st.sampled_from((8, 14)),
        later=st.sampled_from(("keep", "keep", "delete", "archive")),
        mask=_rarely(),
        lift=_rarely(),
        old=_rarely(5),
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
    docs = draw(st.lists(_doc_plans(n_pros, n_palette), min_size=2, max_size=4))
    if PATIENT_TYPES and draw(st.booleans()):
        docs.insert(draw(st.integers(0, len(docs))), draw(_patient_doc_plans()))
    authorised = draw(st.lists(pro, max_size=3, unique=True))
    blocked = draw(st.lists(pro, max_size=2, unique=True))
    some_of = lambda items: st.sets(st.sampled_from(items)).map(tuple) if items else st.just(())  # noqa: E731
    return PatientPlan(
        opener=draw(pro),
        treating=draw(st.none() | pro),
        treating_at_creation=draw(st.booleans()),
        representative=draw(
            st.sampled_from((None, "fresh") + (("other",) if n_patients > 1 else ()))
        ),
        authorised=tuple(authorised),
        care_teams=draw(_some(st.sampled_from((0, 1)), 1)),
        revoked=draw(st.just(()) | some_of(authorised)),
        blocked=tuple(blocked),
        unblocked=draw(st.just(()) | some_of(blocked)),
        emergency=tuple(
            draw(
                st.lists(
                    st.tuples(
                        st.sampled_from(("ETREAT", "BTG", "MASKED")),
                        st.sampled_from(("permit", "deny")),
                        st.sampled_from(("consent", "patient")),
                    ),
                    max_size=3,
                )
            )
        ),
        docs=tuple(docs),
        lifecycle=draw(st.sampled_from(("active", "active", "active", "closed", "reopened"))),
    )


def _some(
    strategy: st.SearchStrategy[Any], max_size: int = 2
) -> st.SearchStrategy[tuple[Any, ...]]:
    """No parameter (often), or one parameter with 1..max_size values."""
    return st.just(()) | st.just(()) | st.lists(strategy, min_size=1, max_size=max_size).map(tuple)


def _search_plans(palette: tuple[TypeRow, ...], n_pros: int) -> st.SearchStrategy[SearchPlan]:
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
        authors=_some(st.integers(-1, n_pros - 1)),
        named=st.sampled_from((None, None, None, "id", "identifier")),
        picks=st.lists(st.integers(0, 20), min_size=1, max_size=3).map(tuple),
        archived=st.sampled_from((None, None, True, False)),
        count=st.integers(1, 5),
        sort_desc=st.booleans(),
        include=st.booleans(),
        creation=_day_filters(),
        period_start=_day_filters(),
        period_end=st.just(()) | st.just(()) | _day_filters(),
        last_updated=st.sampled_from((None, None, None, "ge", "lt")),
        given=_maybe(len(NAMES)),
        family=_maybe(len(NAMES)),
        event=_maybe(len(EVENTS)),
        related=_maybe(4),
        relates_to=_rarely(),
        list_title=_maybe(len(TITLES)),
        list_designation=_maybe(len(DESIGNATIONS)),
        list_family=_maybe(len(NAMES)),
        list_archived=st.sampled_from((None, None, False, True)),
    )


def _maybe(n: int) -> st.SearchStrategy[int | None]:
    """None (mostly), or an index below ``n``."""
    return st.none() | st.none() | st.integers(0, n - 1)


def _day_filters() -> st.SearchStrategy[tuple[tuple[str, int], ...]]:
    return st.just(()) | st.lists(
        st.tuples(st.sampled_from(DATE_PREFIXES), st.integers(-1, 4)), max_size=1
    ).map(tuple)


@st.composite
def world_plans(draw: st.DrawFn) -> WorldPlan:
    kinds = draw(st.lists(st.sampled_from(PRO_KINDS), min_size=3, max_size=5))
    structures = draw(st.lists(st.none() | st.sampled_from((0, 1)), min_size=5, max_size=5))
    pros = tuple((p, sp, structures[i]) for i, (p, sp) in enumerate(kinds))
    palette = tuple(draw(st.lists(st.sampled_from(PRO_TYPES), min_size=2, max_size=5, unique=True)))
    n_patients = draw(st.integers(1, 2))
    patients = tuple(
        draw(_patient_plans(len(pros), len(palette), n_patients)) for _ in range(n_patients)
    )
    searches = tuple(draw(st.lists(_search_plans(palette, len(pros)), min_size=1, max_size=2)))
    operator = draw(st.sampled_from((ActorKind.OPERATOR, ActorKind.SYSTEM)))
    return WorldPlan(pros, palette, patients, searches, operator)


# -- the model of a built world (the oracle's only source) -----------------------------------------


@dataclass(frozen=True)
class Pro:
    idnatps: str
    profession: str
    specialty: str | None
    structure: str | None = None  # FINESS of the care team it belongs to

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
            structure=self.structure,
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
    unique_id: str
    author_id: str
    author_ident: tuple[str, str]  # the author's identifier in the metadata (system, value)
    type_code: str
    type_system: str
    class_code: str
    labels: frozenset[str]
    date: datetime
    added_at: datetime
    status: str = "current"
    archived: bool = False
    versions: int = 1
    status_before_deletion: str = ""
    content: bytes = b""
    names: tuple[str, str] | None = None  # a professional author's (family, given)
    replaces_id: str | None = None

    def facts(self, *, before_deletion: bool = False) -> DocumentFacts:
        return DocumentFacts(
            doc_id=self.doc_id,
            status=self.status_before_deletion if before_deletion else self.status,
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
    care_teams: set[str] = field(default_factory=set)  # structures
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
            authorised=pro
            and (actor.rpps in self.authorised or actor.structure in self.care_teams),
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
        lines = [
            f"pros: {[(p.idnatps, p.profession, p.specialty, p.structure) for p in self.pros]}"
        ]
        for r in self.records:
            lines.append(
                f"{r.name} ins={r.ins} rid={r.rid} treating={r.treating} reps={r.representatives}"
                f" authorised={r.authorised} teams={r.care_teams} blocked={r.blocked}"
                f" c15={r.centre15}"
                f" bdg={r.bris_de_glace} masked={r.masked} closed={r.closed}"
            )
            for d in r.docs:
                lines.append(
                    f"  {d.name} {d.doc_id} by {d.author_id} {d.type_code}/{d.class_code}"
                    f" {sorted(d.labels)} {d.date:%Y-%m-%dT%H} added {d.added_at:%Y-%m-%d}"
                    f" {d.status}"
                    f"{' archived' if d.archived else ''} v{d.versions}"
                )
        return "\n".join(lines + self.notes)


# -- playing a plan through the scoped service -------------------------------------------------


class Stored:
    """A stored document with the DocumentReference the FHIR interface serves of it."""

    def __init__(self, doc: StoredDocument) -> None:
        self.doc = doc
        self.resource = render_docref(doc, BASE)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.doc, name)


class FhirScope:
    """The core's scope, driven with FHIR resources through the FHIR interface's parsers and
    renderers (what the FHIR handlers do, minus HTTP)."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.actor = scope.actor

    async def create_record(self, body: dict[str, Any]) -> Any:
        return await self.scope.records.open(patient_input(body, allow_test_ins=True))

    async def update_record(self, rid: str, body: dict[str, Any], version: int | None) -> Any:
        return await self.scope.records.update(
            rid, patient_input(body, allow_test_ins=True), version
        )

    async def read_record(self, rid: str) -> Any:
        return await self.scope.records.read(rid)

    async def add_representative(self, rid: str, body: dict[str, Any]) -> Any:
        return await self.scope.representatives.add(
            rid, parse_related_person(body, allow_test=True)
        )

    async def create_consent(self, body: dict[str, Any]) -> dict[str, Any]:
        patient = subject_ref(body["patient"], "Consent.patient", allow_test=True)
        return render_consent(await self.scope.consents.create(parse_consent(body, patient)))

    async def revoke_consent(self, consent_id: str) -> dict[str, Any]:
        return render_consent(await self.scope.consents.revoke(consent_id))

    async def publish(self, parsed: ParsedBundle) -> Any:
        return await self.scope.documents.publish(parsed.submission)

    async def read_document(self, doc_id: str, version: int | None = None) -> Stored:
        return Stored(await self.scope.documents.read(doc_id, version))

    async def update_document(self, doc_id: str, resource: dict[str, Any], version: int) -> Any:
        return await self.scope.documents.update(doc_id, change_from(resource, BASE), version)

    async def document_history(self, doc_id: str) -> list[tuple[int, datetime, bytes]]:
        versions = await self.scope.documents.history(doc_id)
        return [(d.version_id, d.last_updated, render_docref(d, BASE)) for d in versions]

    async def open_content(self, binary_id: str) -> Any:
        content = await self.scope.documents.content(binary_id)
        return content.info

    async def search_documents(self, criteria: DocumentCriteria) -> Any:
        return await self.scope.documents.search(criteria)

    async def search_lists(self, criteria: ListCriteria) -> tuple[list[bytes], int, Any]:
        sets, total, nxt = await self.scope.documents.lists(criteria)
        return [render_list(s) for s in sets], total, nxt


class Env:
    """One core for one backend, on one event loop reused by every example."""

    def __init__(self, backend: str, settings: Any, dbname: str | None) -> None:
        self.backend = backend
        self.dbname = dbname
        self.loop = asyncio.new_event_loop()
        self.core: Core = self.loop.run_until_complete(Core.start(settings))
        self.stats: Counter[str] = Counter()
        self.rules: Counter[tuple[str, bool]] = Counter()
        self.seconds = 0.0
        self.hand_made: World | None = None
        self.collision_answers: set[tuple[str, str]] = set()  # one answer, whatever collided

    def run(self, coro: Awaitable[Any]) -> Any:
        return self.loop.run_until_complete(coro)

    def scope(self, actor: Actor) -> FhirScope:
        return FhirScope(self.core.scope(actor))

    def close(self) -> None:
        try:
            self.loop.run_until_complete(self.core.close())
        finally:
            self.loop.close()


def _event_of(date: datetime) -> str:
    return EVENTS[0 if date.hour < 12 else 1]


def _order_of(date: datetime) -> str:
    return f"ORD-{(date - BASE_DAY).days}"


def _designation_of(date: datetime) -> str:
    return DESIGNATIONS[(date - BASE_DAY).days % 2]


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _patient_body(rec: RecordModel, *extensions: dict[str, Any]) -> dict[str, Any]:
    body = patient_resource(rec.ins, extra_extensions=list(extensions))
    if rec.treating:
        body["generalPractitioner"] = [
            {"identifier": {"system": RPPS_SYSTEM, "value": rec.treating}}
        ]
    return body


def _consent(
    rec: RecordModel,
    decision: str,
    *,
    rpps: str | None = None,
    structure: str | None = None,
    purpose: str | None = None,
) -> dict[str, Any]:
    provision: dict[str, Any] = {"type": decision}
    if rpps:
        provision["actor"] = [{"reference": {"identifier": {"system": RPPS_SYSTEM, "value": rpps}}}]
    if structure:
        provision["actor"] = [
            {"reference": {"identifier": {"system": STRUCTURE_SYSTEM, "value": structure}}}
        ]
    if purpose:
        provision["purpose"] = [{"system": PURPOSE_SYSTEMS[purpose], "code": purpose}]
    return {
        "resourceType": "Consent",
        "status": "active",
        "patient": {"reference": f"Patient/{rec.rid}"},
        "provision": provision,
    }


@contextmanager
def _clock_back(days: int) -> Iterator[timedelta]:
    """Store documents as if added ``days`` ago (the clock the core's services write with);
    yields the offset actually applied (none if that clock cannot be set)."""
    real = getattr(clock_module, "utcnow", None)
    if days == 0 or real is None:
        yield timedelta(0)
        return
    offset = timedelta(days=days)
    clock_module.utcnow = lambda: real() - offset  # type: ignore[attr-defined]
    try:
        yield offset
    finally:
        clock_module.utcnow = real  # type: ignore[attr-defined]


async def _publish(
    env: Env,
    actor: Actor,
    rec: RecordModel,
    name: str,
    row: TypeRow,
    labels: tuple[str, ...],
    date: datetime,
    *,
    replaces: DocModel | None = None,
    age_days: int = 0,
) -> DocModel:
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
    names = None if by_patient else NAMES[int(actor.rpps or "0") % len(NAMES)]
    if by_patient:  # the patient is the author: no RPPS, the document is theirs
        dr["contained"][1] = {
            "resourceType": "Patient",
            "id": "author",
            "identifier": [{"system": f"urn:oid:{TEST_OID}", "value": rec.ins}],
            "name": [{"family": "Patient", "given": ["Jean"]}],  # never searchable
        }
    else:
        assert names is not None
        dr["contained"][1]["name"] = [{"family": names[0], "given": [names[1]]}]
    dr["context"]["event"] = [{"coding": [{"system": CCAM, "code": _event_of(date)}]}]
    dr["context"]["related"] = [{"identifier": {"system": ORDERS, "value": _order_of(date)}}]
    b = bundle(rec.ins, [(dr, content, "application/pdf")])
    lst = b["entry"][0]["resource"]
    lst["title"] = TITLES[0 if date.hour < 12 else 1]
    lst["extension"].append(
        {
            "url": "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-designationType",
            "valueCodeableConcept": {
                "coding": [{"system": "http://loinc.org", "code": _designation_of(date)}]
            },
        }
    )
    lst["contained"][0] = dr["contained"][1] | {"id": "a"}
    submission = build_submission(b, allow_test=True, actor_id=actor.id)
    with _clock_back(age_days) as offset:
        added_at = utcnow() - offset
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
        unique_id=dr["masterIdentifier"]["value"],
        author_id=actor.id,
        author_ident=(
            (f"urn:oid:{TEST_OID}", rec.ins) if by_patient else (RPPS_SYSTEM, actor.rpps or "")
        ),
        type_code=row[0],
        type_system=row[1],
        class_code=row[2],
        labels=frozenset(labels or ("N",)),
        date=date,
        added_at=added_at,
        content=content,
        names=names,
        replaces_id=replaces.doc_id if replaces else None,
    )
    rec.docs.append(doc)
    return doc


async def _update(
    env: Env, actor: Actor, doc: DocModel, change: Callable[[dict[str, Any]], None]
) -> None:
    scope = env.scope(actor)
    stored = await scope.read_document(doc.doc_id)
    resource = json.loads(stored.resource)
    change(resource)
    await scope.update_document(doc.doc_id, resource, stored.version_id)
    doc.versions += 1


def _set_label(code: str, present: bool) -> Callable[[dict[str, Any]], None]:
    def change(resource: dict[str, Any]) -> None:
        labels = [
            label
            for label in resource.get("securityLabel") or []
            if code not in {c.get("code") for c in label.get("coding") or []}
        ]
        if present:
            labels.append({"coding": [{"system": VISIBILITY_SYSTEM, "code": code}]})
        resource["securityLabel"] = labels

    return change


def _delete(resource: dict[str, Any]) -> None:
    resource["status"] = "entered-in-error"


def _archive(resource: dict[str, Any]) -> None:
    resource.setdefault("extension", []).append({"url": ARCHIVED_URL, "valueBoolean": True})


async def _later(env: Env, author: Actor, doc: DocModel, later: str) -> None:
    if later == "delete":
        await _update(env, author, doc, _delete)
        doc.status_before_deletion = doc.status
        doc.status = "entered-in-error"
    elif later == "archive":
        await _update(env, author, doc, _archive)
        doc.archived = True


async def _toggle_mask(env: Env, world: World, patient: Actor, doc: DocModel) -> None:
    """The patient masks (or unmasks) a document: only one they see (dmp.md §3 rule 3)."""
    masked = "MASQUE_PS" in doc.labels
    invisible = "INVISIBLE_PATIENT" in doc.labels and utcnow() < doc.added_at + timedelta(days=30)
    try:
        await _update(env, patient, doc, _set_label("MASQUE_PS", not masked))
    except NotFound:
        assert invisible, f"{doc.name}: the patient could not (un)mask a document they see"
        world.notes.append(f"{doc.name}: (un)mask refused (INVISIBLE_PATIENT)")
        return
    assert not invisible, f"{doc.name}: the patient (un)masked a document they do not see"
    doc.labels = doc.labels - {"MASQUE_PS"} if masked else doc.labels | {"MASQUE_PS"}


async def _set_emergency(
    env: Env, patient: Actor, rec: RecordModel, purpose: str, decision: str, via: str
) -> None:
    value = decision == "permit"
    if via == "consent":
        await env.scope(patient).create_consent(_consent(rec, decision, purpose=purpose))
    else:  # the same consent through the Patient resource (TD1.2)
        key = {"ETREAT": "centre15", "BTG": "brisDeGlace", "MASKED": "maskedDocuments"}[purpose]
        ext = {"url": EMERGENCY_URL, "extension": [{"url": key, "valueBoolean": value}]}
        await env.scope(patient).update_record(rec.rid, _patient_body(rec, ext), None)
    if purpose == "ETREAT":
        rec.centre15 = value
    elif purpose == "BTG":
        rec.bris_de_glace = value
    else:
        rec.masked = value


async def build_world(env: Env, plan: WorldPlan) -> World:
    structures = [f"1{_rng.randint(0, 10**8 - 1):08d}" for _ in range(2)]  # FINESS-like
    pros = [
        Pro(fresh_idnatps(), p, sp, None if st_ is None else structures[st_])
        for p, sp, st_ in plan.pros
    ]
    records = [RecordModel(name="ABCDEFGH"[i], ins=fresh_ins()) for i in range(len(plan.patients))]
    world = World(plan, pros, records, [fresh_ins()])  # and an unrelated person
    for rec, pp in zip(records, plan.patients, strict=True):
        patient = patient_actor(rec.ins)
        opener = pros[pp.opener]
        if pp.treating is not None:
            rec.treating = pros[pp.treating].idnatps
        body = _patient_body(rec) if pp.treating_at_creation else patient_resource(rec.ins)
        created = await env.scope(opener.actor()).create_record(body)
        rec.rid = created.record_id
        rec.authorised.add(opener.idnatps)  # the opener is authorised by the creation consent
        if pp.treating is not None and not pp.treating_at_creation:
            await env.scope(patient).update_record(rec.rid, _patient_body(rec), None)
        current = await env.scope(patient).read_record(rec.rid)
        assert current.treating_physician == (f"rpps:{rec.treating}" if rec.treating else None)
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
        consent_ids: dict[tuple[str, int], str] = {}
        for i in pp.authorised:
            body = _consent(rec, "permit", rpps=pros[i].idnatps)
            consent_ids["permit", i] = (await env.scope(patient).create_consent(body))["id"]
            rec.authorised.add(pros[i].idnatps)
        for team in pp.care_teams:
            await env.scope(patient).create_consent(
                _consent(rec, "permit", structure=structures[team])
            )
            rec.care_teams.add(structures[team])
        for i in pp.revoked:
            await env.scope(patient).revoke_consent(consent_ids["permit", i])
            rec.authorised.discard(pros[i].idnatps)  # every active decision about them ends
        # documents, then what their authors and the patient do with them
        made: list[tuple[DocPlan, DocModel, Actor]] = []
        for n, dp in enumerate(pp.docs):
            author = patient if dp.author < 0 else pros[dp.author].actor()
            row = PATIENT_TYPES[dp.kind] if dp.author < 0 else plan.palette[dp.kind]
            when = BASE_DAY + timedelta(days=dp.day, hours=dp.hour)
            doc = await _publish(
                env, author, rec, f"{rec.name}.d{n}", row, dp.labels, when,
                age_days=40 if dp.old else 0,
            )  # fmt: skip
            made.append((dp, doc, author))
        for dp, doc, author in made:
            if dp.lift and "INVISIBLE_PATIENT" in doc.labels:
                await _update(env, author, doc, _set_label("INVISIBLE_PATIENT", False))
                doc.labels = doc.labels - {"INVISIBLE_PATIENT"}
            if dp.mask:
                await _toggle_mask(env, world, patient, doc)
            if dp.replacement is not None:
                rp = dp.replacement
                row = PATIENT_TYPES[rp.kind] if dp.author < 0 else plan.palette[rp.kind]
                when = BASE_DAY + timedelta(days=rp.day, hours=rp.hour)
                new = await _publish(
                    env, author, rec, f"{doc.name}r", row, rp.labels, when, replaces=doc
                )
                await _later(env, author, new, rp.later)
            await _later(env, author, doc, dp.later)
        for i in pp.blocked:
            body = _consent(rec, "deny", rpps=pros[i].idnatps)
            consent_ids["deny", i] = (await env.scope(patient).create_consent(body))["id"]
            rec.blocked.add(pros[i].idnatps)
            rec.authorised.discard(pros[i].idnatps)  # a new decision replaces the old one
        for i in pp.unblocked:
            await env.scope(patient).revoke_consent(consent_ids["deny", i])
            rec.blocked.discard(pros[i].idnatps)
        for purpose, decision, via in pp.emergency:
            await _set_emergency(env, patient, rec, purpose, decision, via)
        if pp.lifecycle != "active":
            closing = _patient_body(rec, {"url": RECORD_STATUS_URL, "valueCode": "closed"})
            closed = await env.scope(patient).update_record(rec.rid, closing, None)
            assert closed.state is RecordState.CLOSED
            rec.closed = True
        if pp.lifecycle == "reopened":
            opening = _patient_body(rec, {"url": RECORD_STATUS_URL, "valueCode": "active"})
            opened = await env.scope(patient).update_record(rec.rid, opening, None)
            assert opened.state is RecordState.ACTIVE
            rec.closed = False
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


def _author_ident(world: World, rec: RecordModel, index: int) -> tuple[str, str]:
    if index < 0:
        return (f"urn:oid:{TEST_OID}", rec.ins)
    return (RPPS_SYSTEM, world.pros[index].idnatps)


def _picked(rec: RecordModel, s: SearchPlan) -> list[DocModel]:
    return [rec.docs[i % len(rec.docs)] for i in s.picks] if rec.docs else []


def _matches(doc: DocModel, s: SearchPlan, world: World, rec: RecordModel) -> bool:
    """Whether ``doc`` of ``rec`` meets the search's parameters (FHIR search semantics)."""
    palette = world.plan.palette
    if s.named is not None and doc not in _picked(rec, s):
        return False
    if s.authors and doc.author_ident not in {_author_ident(world, rec, i) for i in s.authors}:
        return False
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
    # creation and period-start are the document's date here (docref's attachment.creation and
    # context.period.start); no document has a period end
    if not all(_date_matches(doc.date, p, d) for p, d in s.creation + s.period_start):
        return False
    if s.period_end or s.last_updated == "lt":
        return False
    if s.given is not None and not (doc.names and doc.names[1] == NAMES[s.given][1]):
        return False
    if s.family is not None and not (doc.names and doc.names[0] == NAMES[s.family][0]):
        return False
    if s.event is not None and _event_of(doc.date) != EVENTS[s.event]:
        return False
    if s.related is not None and _order_of(doc.date) != f"ORD-{s.related}":
        return False
    if s.relates_to and doc.replaces_id not in {d.doc_id for d in _picked(rec, s)}:
        return False
    if s.archived is None:  # archived documents: asked for explicitly, or named
        return s.named is not None or not doc.archived
    return doc.archived == s.archived


def _criteria(world: World, rec: RecordModel, s: SearchPlan) -> DocumentCriteria:
    palette = world.plan.palette
    c = DocumentCriteria(
        sort_desc=s.sort_desc, count=s.count, include_subject=s.include, archived=s.archived
    )
    if s.by_identifier:
        c.patient_identifiers = [[Token(f"urn:oid:{TEST_OID}", rec.ins)]]
    else:
        c.record_ids = [[rec.rid]]
    if s.named == "id":
        c.ids = [[d.doc_id for d in _picked(rec, s)]]
    elif s.named == "identifier":
        c.identifier = [[Token(None, d.unique_id) for d in _picked(rec, s)]]
    if s.authors:
        c.author_identifier = [[Token(*_author_ident(world, rec, i)) for i in s.authors]]
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
    c.creation = [_day_range(p, d) for p, d in s.creation]
    c.period_start = [_day_range(p, d) for p, d in s.period_start]
    c.period_end = [_day_range(p, d) for p, d in s.period_end]
    if s.last_updated:
        c.last_updated = [DateRange(s.last_updated, datetime(2000, 1, 1), datetime(2000, 1, 2))]
    if s.given is not None:
        c.author_given = [[Text(normalise_name(NAMES[s.given][1].split("-")[0]))]]
    if s.family is not None:
        c.author_family = [[Text(normalise_name(NAMES[s.family][0]))]]
    if s.event is not None:
        c.event = [[Token(CCAM, EVENTS[s.event])]]
    if s.related is not None:
        c.related = [[Ref(identifier=Token(ORDERS, f"ORD-{s.related}"))]]
    if s.relates_to:
        c.relates_to = [[d.doc_id for d in _picked(rec, s)] or ["none"]]
    return c


def _day_range(prefix: str, day: int) -> DateRange:
    lo = BASE_DAY + timedelta(days=day)
    return DateRange(prefix, lo, lo + timedelta(days=1))


def _list_criteria(rec: RecordModel, s: SearchPlan) -> ListCriteria:
    c = ListCriteria(record_ids=[[rec.rid]], count=s.count, archived=s.list_archived)
    if s.list_title is not None:
        c.title = [[Text(normalise_name(TITLES[s.list_title].split()[1]))]]
    if s.list_designation is not None:
        c.designation_type = [[Token("http://loinc.org", DESIGNATIONS[s.list_designation])]]
    if s.list_family is not None:
        c.source_family = [[Text(normalise_name(NAMES[s.list_family][0]))]]
    return c


def _list_filters(s: SearchPlan) -> dict[str, Any]:
    return {
        "list_title": s.list_title,
        "list_designation": s.list_designation,
        "list_family": s.list_family,
        "list_archived": s.list_archived,
    }


def _list_matches(doc: DocModel, s: SearchPlan) -> bool:
    """Whether the submission set that brought ``doc`` meets the List filters of ``s``."""
    if s.list_archived:
        return False  # a submission set is never archived
    if s.list_title is not None and TITLES[0 if doc.date.hour < 12 else 1] != TITLES[s.list_title]:
        return False
    if (
        s.list_designation is not None
        and _designation_of(doc.date) != DESIGNATIONS[s.list_designation]
    ):
        return False
    return s.list_family is None or bool(doc.names and doc.names[0] == NAMES[s.list_family][0])


async def _search_all(
    scope: FhirScope,
    criteria: DocumentCriteria,
    check: Check,
    where: str,
    by_id: dict[str, DocModel],
    expected_included: set[str] | None,
) -> tuple[str, list[str], set[int]]:
    """Follow the next cursors to the end. Returns (outcome, doc ids in order, totals)."""
    ids: list[str] = []
    totals: set[int] = set()
    for _ in range(MAX_PAGES):
        status, page = await _outcome(scope.search_documents(criteria))
        if status != "ok":
            return status, ids, totals
        totals.add(page.total)
        check.expect(
            len(page.items) <= criteria.count,
            f"{where}: {len(page.items)} items on a page of {criteria.count}",
        )
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


async def _lists_all(
    scope: FhirScope, criteria: ListCriteria, check: Check, where: str
) -> tuple[str, list[str], list[str], set[int]]:
    """ITI-66, following the next cursors. Returns (outcome, set ids, documents named, totals)."""
    sets: list[str] = []
    named: list[str] = []
    totals: set[int] = set()
    for _ in range(MAX_PAGES):
        status, found = await _outcome(scope.search_lists(criteria))
        if status != "ok":
            return status, sets, named, totals
        bodies, total, next_cursor = found
        totals.add(total)
        check.expect(
            len(bodies) <= criteria.count,
            f"{where}: {len(bodies)} Lists on a page of {criteria.count}",
        )
        for body in map(json.loads, bodies):
            sets.append(body["id"])
            entries = [e["item"]["reference"].rsplit("/", 1)[-1] for e in body.get("entry") or []]
            check.expect(bool(entries), f"{where}: List {body['id']} shown with no entry")
            named += entries
        if next_cursor is None:
            return "ok", sets, named, totals
        criteria.cursor = next_cursor
    return "endless paging", sets, named, totals


async def check_actor(env: Env, world: World, who: str, actor: Actor, check: Check) -> None:
    scope = env.scope(actor)
    matrix = env.core.matrix.allows
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
        check.expect(
            status == ("ok" if record_read else "notfound"),
            f"{who}: read_record {rec.name} -> {status}, policy {_show(record_read)}",
        )
        for doc in rec.docs:
            d = decide(actor, Action.DOCUMENT_READ, facts, doc.facts(), matrix=matrix)
            env.rules[(d.rule, d.allowed)] += 1
            allowed[doc.doc_id] = d.allowed
            if d:
                want = "ok"
            elif doc.status == "entered-in-error" and decide(
                actor, Action.DOCUMENT_READ, facts, doc.facts(before_deletion=True), matrix=matrix
            ):
                want = "gone"  # said only to whoever could read it before: no leak
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
            if doc.versions > 1:  # vread of the first version: the same rule as a read
                status, first = await _outcome(scope.read_document(doc.doc_id, 1))
                check.expect(status == want, f"{what} vread 1 -> {status}, policy {_show(d)}")
                if status == "ok":
                    meta = json.loads(first.resource).get("meta") or {}
                    check.expect(meta.get("versionId") == "1", f"{what} vread 1: {meta}")
            status, history = await _outcome(scope.document_history(doc.doc_id))
            check.expect(status == want, f"{what} history -> {status}, policy {_show(d)}")
            if status == "ok":
                versions = [v for v, _t, _r in history]
                check.expect(
                    versions == list(range(doc.versions, 0, -1)),
                    f"{what} history: versions {versions}, expected {doc.versions}..1",
                )
            status, handle = await _outcome(scope.open_content(doc.binary_id))
            check.expect(
                status == ("ok" if d else "notfound"),
                f"{what} content -> {status}, policy {_show(d)}",
            )
            if status == "ok":
                check.expect(handle.sha256 == doc.sha256, f"{what} content: another blob")

        def visible(s: SearchPlan, rec: RecordModel = rec) -> set[str]:
            return {d.doc_id for d in rec.docs if allowed[d.doc_id] and _matches(d, s, world, rec)}

        # searches naming this patient, with the world's random filters, paged to the end
        for n, s in enumerate(world.plan.searches):
            where = f"{who}: search#{n} {rec.name} {s}"
            want = visible(s)
            criteria = _criteria(world, rec, s)
            status, ids, totals = await _search_all(
                scope, criteria, check, where, by_id, readable_records
            )
            check.expect(status == "ok", f"{where}: -> {status}")
            check.expect(len(ids) == len(set(ids)), f"{where}: duplicates {ids}")
            check.expect(
                set(ids) == want,
                f"{where}: got {_names(ids, by_id)}, expected {_names(want, by_id)}",
            )
            check.expect(totals <= {len(want)}, f"{where}: total {totals}, expected {len(want)}")
            check.decisions += len(rec.docs)
        # ITI-66: the submission sets (one per document here) name only readable documents
        # unfiltered, and with the List filters of the world's first search when it has any
        first = world.plan.searches[0]
        plain_lists = SearchPlan(count=first.count)
        for ls in dict.fromkeys((plain_lists, replace(plain_lists, **_list_filters(first)))):
            readable = {d.doc_id for d in rec.docs if allowed[d.doc_id] and _list_matches(d, ls)}
            where = f"{who}: Lists of {rec.name} ({ls})"
            status, sets, named, totals = await _lists_all(
                scope, _list_criteria(rec, ls), check, where
            )
            check.expect(status == "ok", f"{where}: -> {status}")
            check.expect(len(sets) == len(set(sets)), f"{where}: duplicate Lists {sets}")
            check.expect(
                sorted(named) == sorted(readable),
                f"{where}: name {_names(named, by_id)}, expected {_names(readable, by_id)}",
            )
            check.expect(totals <= {len(readable)}, f"{where}: total {totals}, not {len(readable)}")
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
            check.expect(
                sorted(got_all) == sorted(want_all),
                f"{who}: everything {rec.name}: got {_names(got_all, by_id)}, "
                f"expected {_names(want_all, by_id)}",
            )
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
        check.expect(
            set(ids) == want, f"{where}: got {_names(ids, by_id)}, expected {_names(want, by_id)}"
        )
        check.expect(totals <= {len(want)}, f"{where}: total {totals}, expected {len(want)}")
    check.decisions += len(by_id)
    await _check_unique_ids(env, world, who, actor, allowed, check)
    await _check_traces(env, world, who, actor, allowed, check)
    # and the Lists of every record the actor reaches
    where = f"{who}: Lists without patient"
    status, sets, named, totals = await _lists_all(scope, ListCriteria(count=4), check, where)
    if emergency:
        check.expect(status == "invalid", f"{where}: emergency access -> {status}, not invalid")
    else:
        want = {i for i, ok in allowed.items() if ok}
        check.expect(status == "ok", f"{where}: -> {status}")
        check.expect(
            sorted(named) == sorted(want),
            f"{where}: name {_names(named, by_id)}, expected {_names(want, by_id)}",
        )
        check.expect(totals <= {len(want)}, f"{where}: total {totals}, not {len(want)}")
    check.decisions += len(by_id)


def _collision(rec: RecordModel, doc: DocModel, actor: Actor, content: bytes) -> Any:
    """A submission of a new document under ``doc``'s uniqueId (its type and class)."""
    dr = docref(
        rec.ins,
        unique_id=doc.unique_id,
        type_code=doc.type_code,
        class_code=doc.class_code,
        author_rpps=actor.rpps or "",
        content=content,
    )
    dr["type"]["coding"][0]["system"] = doc.type_system
    if actor.kind is ActorKind.PATIENT:
        dr["contained"][1] = {
            "resourceType": "Patient",
            "id": "author",
            "identifier": [{"system": f"urn:oid:{TEST_OID}", "value": rec.ins}],
        }
    return build_submission(
        bundle(rec.ins, [(dr, content, "application/pdf")]), allow_test=True, actor_id=actor.id
    )


async def _answer(call: Awaitable[Any]) -> tuple[str, str]:
    """An operation's answer as its caller sees it: the kind of error and its message."""
    try:
        result = await call
    except Exception as exc:  # the error is the answer
        return type(exc).__name__, str(exc)
    return "ok", ",".join(d.doc_id for d in result.documents)


async def _check_unique_ids(
    env: Env, world: World, who: str, actor: Actor, allowed: dict[str, bool], check: Check
) -> None:
    """A uniqueId collision tells a caller nothing of a document they may not read (issue "Close
    every way a refused document still shows"): whoever may read the stored document and sends
    its content gets it back; every other collision gets one answer, the same whatever the
    stored document and its content, naming no document; whoever may not publish gets the
    answer a free uniqueId gets."""
    if actor.kind not in (ActorKind.PATIENT, ActorKind.PROFESSIONAL):
        return
    if actor.mode is not AccessMode.NORMAL:
        return  # adding a document does not depend on the mode: the normal one stands for all
    scope = env.scope(actor)
    now = utcnow()
    matrix = env.core.matrix.allows
    for rec in world.records:
        facts = rec.facts(actor, now)
        live = [d for d in rec.docs if d.status != "entered-in-error" and d.content]
        picked = [d for d in live if allowed[d.doc_id]][:1]
        picked += [d for d in live if not allowed[d.doc_id]][:1]
        for doc in picked:
            where = (
                f"{who}: uniqueId of {doc.name} ({'readable' if allowed[doc.doc_id] else 'hidden'})"
            )
            new = DocumentFacts(
                "", "current", None, type_code=doc.type_code, class_code=doc.class_code
            )
            may_publish = decide(actor, Action.DOCUMENT_CREATE, facts, new, matrix=matrix)
            other = b"%PDF-1.4\n% another " + uuid.uuid4().hex.encode() + b"\n"
            same_answer = await _answer(scope.publish(_collision(rec, doc, actor, doc.content)))
            other_answer = await _answer(scope.publish(_collision(rec, doc, actor, other)))
            for _kind, text in (same_answer, other_answer):
                check.expect(
                    allowed[doc.doc_id] or doc.doc_id not in text,
                    f"{where}: the answer names it: {text}",
                )
            if not may_publish:
                free = replace(doc, unique_id=f"2.25.{uuid.uuid4().int}")
                free_answer = await _answer(scope.publish(_collision(rec, free, actor, other)))
                check.expect(
                    same_answer == other_answer == free_answer,
                    f"{where}: one who may not publish is told of the uniqueId: "
                    f"{same_answer} {other_answer} / free {free_answer}",
                )
                continue
            if allowed[doc.doc_id]:
                check.expect(
                    same_answer == ("ok", doc.doc_id),
                    f"{where}: the same document again -> {same_answer}",
                )
            else:
                check.expect(
                    same_answer == other_answer,
                    f"{where}: its content changes the answer: {same_answer} / {other_answer}",
                )
            check.expect(other_answer[0] == "Conflict", f"{where}: other content -> {other_answer}")
            env.stats["collisions"] += 1
            env.collision_answers.add(other_answer)
            check.expect(
                len(env.collision_answers) == 1,
                f"{where}: collisions answer differently: {sorted(env.collision_answers)}",
            )


def _form(e: StoredEvent, *names: str) -> tuple[Any, ...]:
    """A trace as its reader sees it, less its id and time, the ids in ``names`` as ``ID``."""
    fields = e.fields()
    fields.pop("event_id")
    fields.pop("recorded_at")
    text = json.dumps(fields, sort_keys=True, default=str)
    for name in names:
        if name:
            text = text.replace(name, "ID")
    return (text,)


async def _check_traces(
    env: Env, world: World, who: str, actor: Actor, allowed: dict[str, bool], check: Check
) -> None:
    """What the actor reads of the traces (their own, and those of every record named) names
    and counts only documents they may read now; their own refusals read exactly as reads of
    a missing id do (issue "Close every way a refused document still shows")."""
    if actor.kind not in (ActorKind.PATIENT, ActorKind.PROFESSIONAL):
        return
    scope = env.scope(actor)
    by_id = {d.doc_id: d for r in world.records for d in r.docs}
    by_binary = {d.binary_id: d.doc_id for d in by_id.values()}
    missing: list[str] = []
    for rec in world.records[:1]:  # read a missing id the three ways a document is read
        ghost = f"{rec.rid}-{secrets.token_hex(10)}"
        missing.append(ghost)
        for call in (
            scope.read_document(ghost),
            scope.document_history(ghost),
            scope.open_content(ghost),
        ):
            status, _ = await _outcome(call)
            check.expect(status == "notfound", f"{who}: read of a missing id -> {status}")
    pages = [AuditCriteria(count=500)]
    pages += [AuditCriteria(record_ids=[[r.rid]], count=500) for r in world.records]
    missing_forms: set[tuple[Any, ...]] = set()
    refused_forms: list[tuple[str, tuple[Any, ...]]] = []
    for criteria in pages:
        page = await scope.scope.traces.search(criteria)
        for e in page.items:
            where = f"{who}: trace {e.action} {e.outcome} {e.rule} {e.detail!r}"
            check.expect("left out" not in (e.detail or ""), f"{where}: counts what was left out")
            if e.actor_id == actor.id and e.rule == REFUSED:
                check.expect(
                    e.outcome == "deny" and e.record_id == "" and e.partial and not e.hash,
                    f"{where}: a refusal shown with its record or chain",
                )
                named = e.doc_id or ""
                binary = (e.detail or "").removeprefix("content Binary/")
                if named not in by_id and binary not in by_binary:  # a missing id (any mode's)
                    missing_forms.add(_form(e, named, binary))
                elif e.action == "document.read":
                    refused_forms.append((where, _form(e, named, binary)))
                continue
            refs = refs_of(e)
            docs = [*refs.doc_ids, *(by_binary.get(b, b) for b in refs.binary_ids)]
            for doc_id in docs:
                check.expect(
                    allowed.get(doc_id, False),
                    f"{where}: names {by_id[doc_id].name if doc_id in by_id else doc_id}, "
                    "which the reader may not read now",
                )
    if missing:
        for where, form in refused_forms:
            check.expect(form in missing_forms, f"{where}: differs from the trace of a missing id")


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
def env(
    backend: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Env]:
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
        f"against the policy ({sum(e.rules.values())} policy decisions, {denied} denials), "
        f"{s['collisions']} uniqueId collisions"
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
    max_examples=WORLDS,
    deadline=None,
    database=None,
    # a world takes seconds: shrinking a failure could take many minutes, and the failure
    # already shows the whole world; CARNET_WORLDS_SHRINK=1 shrinks it all the same
    phases=PHASES,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
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
    pros=(  # GP and NURSE work in one structure (care team 0), DOCTOR in another
        ("10", "SM54", 0),
        ("21", None, None),
        ("40", None, None),
        ("60", None, 0),
        ("10", "SM04", 1),
    ),
    palette=HAND_PALETTE,
    patients=(
        # A: médecin traitant, representative, a blocked dentist; break-the-glass refused
        PatientPlan(
            opener=GP,
            treating=GP,
            representative="fresh",
            authorised=(PHARMA, DOCTOR, DENTIST),
            blocked=(DENTIST,),
            emergency=(("BTG", "deny", "consent"), ("MASKED", "deny", "patient")),
            docs=(
                DocPlan(PHARMA, 0, ("N", "MASQUE_PS"), 0, 8),  # A.d0 masked
                DocPlan(GP, 1, ("INVISIBLE_PATIENT",), 1, 8),  # A.d1 not yet for the patient
                DocPlan(DENTIST, 2, ("INVISIBLE_REPRESENTANTS_LEGAUX",), 1, 14),  # A.d2
                DocPlan(GP, 3, ("N",), 2, 8),  # A.d3 psychiatric
                DocPlan(PHARMA, 4, ("N",), 2, 8, later="delete"),  # A.d4 deleted
                DocPlan(GP, 5, ("N",), 3, 8, later="archive"),  # A.d5 archived
                DocPlan(
                    GP,
                    6,
                    ("N",),
                    3,
                    14,  # A.d6 replaced by A.d6r
                    replacement=DocPlan(GP, 6, ("N",), 3, 14),
                ),
                DocPlan(-1, 0, ("N",), 0, 14, mask=True),  # A.d7 the patient's, masked by them
                DocPlan(NURSE, 0, ("INVISIBLE_PATIENT",), 0, 8, mask=True),  # A.d8 mask refused
            ),
        ),
        # B: centre 15 and break-the-glass allowed, masked documents too in an emergency
        PatientPlan(
            opener=NURSE,
            representative="other",  # the patient of A represents B
            emergency=(("MASKED", "permit", "consent"),),
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
            emergency=(("ETREAT", "deny", "consent"),),
            docs=(DocPlan(GP, 0, ("N",), 0, 8), DocPlan(NURSE, 4, ("N",), 1, 8, later="delete")),
            lifecycle="closed",
        ),
        # D: care team, revoked authorisation, lifted block, médecin traitant from the start,
        # emergency consents changed back and forth, record closed then reopened
        PatientPlan(
            opener=GP,
            treating=DOCTOR,
            treating_at_creation=True,
            authorised=(PHARMA, DENTIST),
            care_teams=(0,),
            revoked=(PHARMA,),
            blocked=(DENTIST, NURSE),
            unblocked=(DENTIST,),
            emergency=(
                ("ETREAT", "deny", "patient"),
                ("BTG", "deny", "consent"),
                ("BTG", "permit", "patient"),
                ("MASKED", "permit", "consent"),
            ),
            docs=(
                DocPlan(GP, 0, ("INVISIBLE_PATIENT",), 0, 8, old=True),  # D.d0 flag lapsed
                DocPlan(GP, 1, ("INVISIBLE_PATIENT",), 1, 8, lift=True),  # D.d1 flag lifted
                DocPlan(DOCTOR, 2, ("MASQUE_PS",), 2, 8, mask=True),  # D.d2 unmasked
                DocPlan(NURSE, 0, ("N",), 3, 8),  # D.d3
                DocPlan(GP, 3, ("MASQUE_PS",), 3, 14),  # D.d4 masked psychiatric
                DocPlan(GP, 5, ("MASQUE_PS",), 3, 14),  # D.d5 masked imaging
            ),
            lifecycle="reopened",
        ),
    ),
    searches=(
        SearchPlan(count=2, list_title=0, list_family=0, list_designation=1),
        SearchPlan(archived=True, count=1, sort_desc=False, include=True),
        # the parameters of MHD 4.2.3 and PDSm (their values drawn from the model)
        SearchPlan(family=0, event=0, creation=(("ge", 1),), period_start=(("lt", 3),), count=1),
        SearchPlan(given=1, related=1, last_updated="ge", count=2, by_identifier=True),
        SearchPlan(relates_to=True, picks=tuple(range(12)), count=1),
        SearchPlan(period_end=(("ge", 0),), last_updated="lt"),
        SearchPlan(labels=("MASQUE_PS",), include=True, by_identifier=True),
        SearchPlan(statuses=("superseded",), count=1),
        SearchPlan(dates=(("ge", 1), ("lt", 3)), types=((0, True), (2, False)), count=1),
        SearchPlan(categories=("10", "90"), statuses=("current", "entered-in-error"), count=2),
        SearchPlan(named="id", picks=(4, 5, 0, 7), count=1),  # deleted, archived, masked
        SearchPlan(named="identifier", picks=(1, 8, 2), archived=False, by_identifier=True),
        SearchPlan(authors=(GP, -1), count=2, include=True),
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


def _hand_made_world(env: Env) -> World:
    if env.hand_made is None:
        env.hand_made = env.run(build_world(env, HAND_PLAN))
    return env.hand_made


def test_hand_made_world_every_rule(env: Env) -> None:
    world = _hand_made_world(env)
    check = env.run(check_world(env, world))
    _fail_if_any(check, world)
    a, b, c, d = world.records
    gp, pharma, dentist, nurse, doctor = world.pros
    rep = next(iter(a.representatives))
    assert b.representatives == {a.ins}
    assert "A.d8: (un)mask refused (INVISIBLE_PATIENT)" in world.notes
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
    for actor in (
        gp.actor(),
        nurse.actor(),
        gp.actor(AccessMode.BRIS_DE_GLACE, REASON),
        gp.actor(AccessMode.CENTRE_15),
    ):
        assert seen(actor, c) == set()
    assert seen(patient_actor(c.ins), c) == {"d0"}
    # the patient of A, representative of B, reads B too; a stranger reads nothing
    assert seen(patient_actor(a.ins), b) == {"d0", "d1", "d2"}
    assert seen(patient_actor(world.others[0]), a) == set()
    # D: a lapsed and a lifted INVISIBLE_PATIENT, a document unmasked by the patient
    everything_d = {"d0", "d1", "d2", "d3", "d4", "d5"}
    assert not d.closed and d.care_teams and d.treating == doctor.idnatps
    assert seen(patient_actor(d.ins), d) == everything_d
    # the GP (opener, care team) reads d2 only because the patient unmasked it (d4, d5 are
    # the GP's own); the médecin traitant, named at creation, reads everything
    assert seen(gp.actor(), d) == everything_d
    assert seen(doctor.actor(), d) == everything_d
    # blocked, although in the authorised care team; unblocked and revoked: not authorised
    assert seen(nurse.actor(), d) == set()
    assert seen(dentist.actor(), d) == set()
    assert seen(pharma.actor(), d) == set()
    # break the glass allowed again (last change), masked documents allowed, matrix kept
    assert seen(pharma.actor(AccessMode.BRIS_DE_GLACE, REASON), d) == everything_d - {"d4"}
    # centre 15 refused through the Patient resource: not even one's own document
    assert seen(nurse.actor(AccessMode.CENTRE_15), d) == set()
    # an operator reads no medical content
    operator = Actor(kind=ActorKind.OPERATOR, subject="op", issuer="property-test")
    assert seen(operator, a) == seen(operator, b) == set()
    # every rule of the policy was met by the oracle on the way
    rules = {rule for rule, _ok in env.rules}
    for rule in (
        "blocked",
        "not-authorised",
        "matrix",
        "masked",
        "document-author",
        "document-deleted",
        "patient",
        "legal-representative",
        "bris-de-glace",
        "centre-15",
        "record-closed",
        "authorised",
        "default-deny",
    ):
        assert rule in rules, (rule, sorted(rules))
