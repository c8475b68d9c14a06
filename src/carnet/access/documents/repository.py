"""Documents in the store: rows ↔ :class:`~carnet.domain.documents.StoredDocument`, the sealed
envelope of a document (its entry and the interface's form of it), and the queries of the
documents service."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import and_, select

from carnet.access.facts import FactLoader, LoadedRecord, pg_facts_sql
from carnet.access.policy import DocumentFacts
from carnet.access.unit_of_work import Unit
from carnet.domain.actors import RPPS_SYSTEM
from carnet.domain.content import Representation
from carnet.domain.documents import (
    Author,
    DocumentEntry,
    DocumentState,
    DocumentStatus,
    StoredDocument,
)
from carnet.domain.records import PatientRef, normalise_name
from carnet.store.codec import entry_from_json, entry_to_json
from carnet.store.envelope import completed, pack, unpack
from carnet.store.tables import (
    binaries,
    content_chunks,
    contents,
    document_history,
    documents,
    submission_sets,
)

# the columns a document's policy facts are read from
FACT_COLUMNS = tuple(
    documents.c[name]
    for name in (
        "record_id",
        "doc_id",
        "date",
        "status",
        "archived",
        "author_id",
        "security_labels",
        "type_code",
        "class_code",
        "created_at",
    )
)


def labels_of(text: str) -> frozenset[str]:
    return frozenset(text.split())


def labels_text(labels: Iterable[str]) -> str:
    """Stored with a space on each side, so that ``LIKE '% CODE %'`` finds one exactly."""
    return " " + " ".join(sorted(labels)) + " "


DOC_COLUMNS = ", ".join(f"d.{c.name} AS d_{c.name}" for c in documents.columns)
"""The columns of ``documents d`` named ``d_<name>``, beside a record's facts in one row."""


class Prefixed:
    """A document's columns in a row that carries the record's facts too (``d_<name>``)."""

    __slots__ = ("row",)

    def __init__(self, row: Any) -> None:
        self.row = row

    def __getitem__(self, name: str) -> Any:
        return self.row["d_" + name]


def facts_of_row(m: Any) -> DocumentFacts:
    """What the policy needs of a document, from a row (or a mapping) of ``documents``."""
    return DocumentFacts(
        doc_id=m["doc_id"],
        status=m["status"],
        author_id=m["author_id"],
        labels=labels_of(m["security_labels"]),
        archived=bool(m["archived"]),
        type_code=m["type_code"],
        class_code=m["class_code"],
        added_at=m["created_at"],
    )


@dataclass(frozen=True, slots=True)
class DocumentRow:
    """A row of ``documents``, its envelope still sealed."""

    m: Any

    @property
    def record_id(self) -> str:
        return str(self.m["record_id"])

    @property
    def doc_id(self) -> str:
        return str(self.m["doc_id"])

    @property
    def facts(self) -> DocumentFacts:
        return facts_of_row(self.m)

    @property
    def state(self) -> DocumentState:
        m = self.m
        return DocumentState(
            version_id=int(m["version_id"]),
            status=DocumentStatus(m["status"]),
            labels=labels_of(m["security_labels"]),
            archived=bool(m["archived"]),
            last_updated=m["last_updated"],
        )

    def stored(self, plain: bytes | None) -> StoredDocument:
        """The stored document, with its envelope's plaintext (None: not opened)."""
        m = self.m
        core: bytes | None = None
        source: Representation | None = None
        if plain is not None:
            core, source = unpack(plain)
        return StoredDocument(
            record_id=m["record_id"],
            doc_id=m["doc_id"],
            state=self.state,
            unique_id=m["unique_id"],
            binary_id=m["binary_id"],
            sha256=m["sha256"],
            size=int(m["size"]),
            content_type=m["content_type"],
            date=m["date"],
            created_at=m["created_at"],
            type_code=m["type_code"],
            class_code=m["class_code"],
            author_id=m["author_id"],
            submission_set_id=m["submission_set_id"],
            replaces_id=m["replaces_id"],
            source=source,
            completed=plain is not None and completed(plain),
            entry_uuid=m["entry_uuid"],
            entry_loader=(lambda: entry_from_json(core)) if core else (lambda: None),
        )


async def open_document(unit: Unit, row: DocumentRow) -> StoredDocument:
    return row.stored(await unit.unseal(row.record_id, bytes(row.m["resource"])))


async def seal_document(
    unit: Unit,
    record_id: str,
    entry: DocumentEntry,
    source: Representation | None,
    *,
    completed: bool = False,
) -> bytes:
    return await unit.seal(record_id, pack(entry_to_json(entry), source, completed=completed))


def record_id_of(resource_id: str) -> str:
    """Resource ids are routable: ``<record id>-<suffix>`` (see store/tables.py)."""
    return resource_id.split("-", 1)[0]


# -- queries -------------------------------------------------------------------------------------
async def by_id(unit: Unit, doc_id: str) -> DocumentRow | None:
    row = (
        await unit.conn.execute(
            select(documents).where(
                documents.c.record_id == record_id_of(doc_id), documents.c.doc_id == doc_id
            )
        )
    ).first()
    return DocumentRow(row._mapping) if row is not None else None


async def by_ids(
    unit: Unit, record_ids: Iterable[str], doc_ids: Sequence[str]
) -> list[DocumentRow]:
    if not doc_ids:
        return []
    rows = await unit.conn.execute(
        select(documents).where(
            documents.c.record_id.in_(sorted(set(record_ids))), documents.c.doc_id.in_(doc_ids)
        )
    )
    return [DocumentRow(r._mapping) for r in rows]


async def by_unique_ids(
    unit: Unit, record_id: str, unique_ids: Sequence[str]
) -> dict[str, DocumentRow]:
    if not unique_ids:
        return {}
    rows = await unit.conn.execute(
        select(documents).where(
            documents.c.record_id == record_id, documents.c.unique_id.in_(unique_ids)
        )
    )
    return {r._mapping["unique_id"]: DocumentRow(r._mapping) for r in rows}


async def by_binary(unit: Unit, record_id: str, binary_id: str) -> list[DocumentRow]:
    rows = await unit.conn.execute(
        select(documents).where(
            documents.c.record_id == record_id, documents.c.binary_id == binary_id
        )
    )
    return [DocumentRow(r._mapping) for r in rows]


@dataclass(frozen=True, slots=True)
class ContentRow:
    sha256: str
    blob_id: str
    size: int
    sha1: bytes
    store: str


async def contents_of(unit: Unit, record_id: str, sha256s: Iterable[str]) -> dict[str, ContentRow]:
    wanted = sorted(set(sha256s))
    if not wanted:
        return {}
    c = contents.c
    rows = await unit.conn.execute(
        select(c.sha256, c.blob_id, c.size, c.sha1, c.store).where(
            c.record_id == record_id, c.sha256.in_(wanted)
        )
    )
    return {r[0]: ContentRow(r[0], r[1], int(r[2]), bytes(r[3]), r[4]) for r in rows}


@dataclass(frozen=True, slots=True)
class BinaryRow:
    binary_id: str
    sha256: str
    content_type: str
    created_by: str
    content: ContentRow


async def binary(unit: Unit, record_id: str, binary_id: str) -> BinaryRow | None:
    """An uploaded Binary (content uploaded before its metadata), with its content."""
    b, c = binaries.c, contents.c
    row = (
        await unit.conn.execute(
            select(b.sha256, b.content_type, b.created_by, c.blob_id, c.size, c.sha1, c.store)
            .join(contents, and_(c.record_id == b.record_id, c.sha256 == b.sha256))
            .where(b.record_id == record_id, b.binary_id == binary_id)
        )
    ).first()
    if row is None:
        return None
    return BinaryRow(
        binary_id,
        row[0],
        row[1],
        row[2],
        ContentRow(row[0], row[3], int(row[4]), bytes(row[5]), row[6]),
    )


_PG_CONTENT = """ LEFT JOIN LATERAL (
  SELECT {columns}, ct.blob_id AS d_ct_blob_id, ct.size AS d_ct_size, ct.sha1 AS d_ct_sha1,
         ct.store AS d_ct_store, ch.data AS d_ch_data
    FROM documents d
    LEFT JOIN contents ct ON ct.record_id = d.record_id AND ct.sha256 = d.sha256
    LEFT JOIN content_chunks ch
           ON ch.record_id = ct.record_id AND ch.blob_id = ct.blob_id AND ch.chunk_no = 0
   WHERE d.record_id = r.record_id AND d.binary_id = $5
   ORDER BY d.doc_id) d ON true"""
PG_CONTENT = pg_facts_sql(", d.*", by_ins=False, join=_PG_CONTENT.format(columns=DOC_COLUMNS))
"""PostgreSQL, ITI-68: a record's facts, the documents naming a Binary, their content's row and
its first chunk, in one round trip (``$3`` the record, ``$4`` NULL, ``$5`` the Binary)."""


def prefetched_content(row: DocumentRow) -> tuple[ContentRow | None, bytes | None]:
    """The content row and first chunk read with a document by :data:`PG_CONTENT`."""
    m = row.m
    if m["ct_blob_id"] is None:
        return None, None
    content = ContentRow(
        m["sha256"], m["ct_blob_id"], int(m["ct_size"]), bytes(m["ct_sha1"]), m["ct_store"]
    )
    first = m["ch_data"]
    return content, bytes(first) if first is not None else None


async def first_chunk(unit: Unit, record_id: str, blob_id: str) -> bytes | None:
    c = content_chunks.c
    row = (
        await unit.conn.execute(
            select(c.data).where(c.record_id == record_id, c.blob_id == blob_id, c.chunk_no == 0)
        )
    ).first()
    return bytes(row[0]) if row is not None else None


async def past_states(unit: Unit, record_id: str, doc_id: str) -> list[tuple[Any, bytes | None]]:
    """The past versions of a document: (state row, legacy sealed resource or None)."""
    h = document_history.c
    rows = await unit.conn.execute(
        select(h.version_id, h.last_updated, h.status, h.archived, h.security_labels, h.resource)
        .where(h.record_id == record_id, h.doc_id == doc_id)
        .order_by(h.version_id.desc())
    )
    return [(r._mapping, bytes(r[5]) if r[5] is not None else None) for r in rows]


def history_row(doc: DocumentRow | StoredDocument, at: datetime | None = None) -> dict[str, Any]:
    """The row that keeps a version's state when the document moves to the next one."""
    state = doc.state
    record_id = doc.record_id
    doc_id = doc.doc_id
    return {
        "record_id": record_id,
        "doc_id": doc_id,
        "version_id": state.version_id,
        "last_updated": state.last_updated,
        "resource": None,
        "status": state.status.value,
        "archived": state.archived,
        "security_labels": labels_text(state.labels),
    }


def author_rows(record_id: str, doc_id: str, entry: DocumentEntry) -> list[dict[str, Any]]:
    """A document's author persons, searched by ``author.identifier``, ``author.given`` and
    ``author.family``: a professional's names (public directory data) are kept beside the
    identifier; any other author's (the patient's, a representative's) stay sealed."""
    seen: set[tuple[str, str]] = set()
    out = []
    for a in entry.authors:
        if (a.system, a.value) in seen:
            continue
        seen.add((a.system, a.value))
        row: dict[str, Any] = {
            "record_id": record_id,
            "doc_id": doc_id,
            "system": a.system,
            "value": a.value,
        }
        out.append(row | person_names(a))
    return out


def person_names(a: Author | None, prefix: str = "") -> dict[str, str | None]:
    """The name columns of a professional author (RPPS/ADELI: the national directory's
    identifier system), as sent and folded; none for anyone else."""
    family = given = None
    if a is not None and a.system == RPPS_SYSTEM:
        family = a.family[:128] if a.family else None
        given = a.given[:256] if a.given else None
    return {
        f"{prefix}family": family,
        f"{prefix}given": given,
        f"{prefix}family_key": normalise_name(family)[:128] if family else None,
        f"{prefix}given_key": normalise_name(given)[:256] if given else None,
    }


def event_rows(record_id: str, doc_id: str, entry: DocumentEntry) -> list[dict[str, Any]]:
    """A document's event codes (eventCodeList), searched by ``event``."""
    keys = sorted({((system or "")[:128], code[:64]) for system, code in entry.events if code})
    return [
        {"record_id": record_id, "doc_id": doc_id, "system": system, "code": code}
        for system, code in keys
    ]


def related_rows(record_id: str, doc_id: str, entry: DocumentEntry) -> list[dict[str, Any]]:
    """A document's related objects (referenceIdList), searched by ``related``."""
    keys: set[tuple[str, str, str]] = set()
    for reference, system, value in entry.related:
        if reference:
            keys.add(("reference", "", reference[:256]))
        if value:
            keys.add(("identifier", (system or "")[:256], value[:256]))
    return [
        {"record_id": record_id, "doc_id": doc_id, "kind": k, "system": s, "value": v}
        for k, s, v in sorted(keys)
    ]


# -- what a publish needs to know, in one read --------------------------------------------------


@dataclass(frozen=True, slots=True)
class Prior:
    """A document stored before under a uniqueId a submission uses again."""

    unique_id: str
    doc_id: str
    sha256: str
    version_id: int
    last_updated: datetime
    binary_id: str
    submission_set_id: str | None
    facts: DocumentFacts  # what the policy needs of it (may the submitter read it?)


@dataclass(frozen=True, slots=True)
class Known:
    """What of a submission is stored already."""

    prior: dict[str, Prior]  # by uniqueId
    contents: set[str]  # the sha256 of the contents stored in the record
    set_id: str | None  # the submission set stored under its uniqueId


_PG_PUBLISH_EXTRA = """,
  (SELECT json_agg(json_build_object(
          'unique_id', d.unique_id, 'doc_id', d.doc_id, 'sha256', d.sha256,
          'version_id', d.version_id, 'last_updated', d.last_updated,
          'binary_id', d.binary_id, 'submission_set_id', d.submission_set_id,
          'record_id', d.record_id, 'status', d.status, 'archived', d.archived,
          'author_id', d.author_id, 'security_labels', d.security_labels,
          'type_code', d.type_code, 'class_code', d.class_code, 'created_at', d.created_at))
     FROM documents d
    WHERE d.record_id = r.record_id AND d.unique_id = ANY($5::text[])) AS prior,
  (SELECT array_agg(c.sha256) FROM contents c
    WHERE c.record_id = r.record_id AND c.sha256 = ANY($6::text[])) AS stored_contents,
  (SELECT s.set_id FROM submission_sets s
    WHERE s.record_id = r.record_id AND s.unique_id = $7) AS stored_set"""
PG_PUBLISH_BY_ID = pg_facts_sql(_PG_PUBLISH_EXTRA, by_ins=False)
PG_PUBLISH_BY_INS = pg_facts_sql(_PG_PUBLISH_EXTRA, by_ins=True)


def _prior_of(m: Any) -> Prior:
    def when(value: Any) -> Any:  # JSON (PostgreSQL's json_agg) carries dates as text
        return datetime.fromisoformat(value) if isinstance(value, str) else value

    return Prior(
        m["unique_id"],
        m["doc_id"],
        m["sha256"],
        int(m["version_id"]),
        when(m["last_updated"]),
        m["binary_id"],
        m["submission_set_id"],
        facts_of_row({**m, "created_at": when(m["created_at"])}),
    )


async def load_publish_facts(
    unit: Unit,
    facts: FactLoader,
    patient: PatientRef,
    unique_ids: Sequence[str],
    sha256s: Sequence[str],
    set_uid: str | None,
    check: Callable[[LoadedRecord | None], None],
) -> tuple[LoadedRecord, Known]:
    """The record's facts, and what of the submission it holds already (documents under the
    same uniqueIds, the same contents, the same submission set): one round trip on PostgreSQL.
    ``check`` is called on the record's facts (None: no record) before anything else is read
    on SQLite, so that a refusal does the same work whether the record exists or not; it raises
    to refuse."""
    if unit.pg:
        first: str | None
        second: str | None
        if patient.ins is not None:
            sql, first, second = PG_PUBLISH_BY_INS, None, patient.ins.value
        else:
            sql, first, second = PG_PUBLISH_BY_ID, patient.record_id, None
        loaded, m = await facts.load_pg_with(
            unit, sql, first, second, list(unique_ids), list(sha256s), set_uid
        )
        check(loaded)
        assert loaded is not None
        found = m["prior"] or []
        if isinstance(found, str | bytes):  # without the json codec SQLAlchemy installs
            found = orjson.loads(found)
        prior = [_prior_of(p) for p in found]
        return loaded, Known(
            {p.unique_id: p for p in prior}, set(m["stored_contents"] or ()), m["stored_set"]
        )
    if patient.ins is not None:
        loaded = await facts.load_by_ins(unit, patient.ins)
    else:
        assert patient.record_id is not None
        loaded = await facts.load(unit, patient.record_id)
    check(loaded)
    assert loaded is not None
    rid = loaded.record_id
    rows = await by_unique_ids(unit, rid, unique_ids)
    stored_set = None
    if set_uid is not None:
        stored_set = (
            await unit.conn.execute(
                select(submission_sets.c.set_id).where(
                    submission_sets.c.record_id == rid, submission_sets.c.unique_id == set_uid
                )
            )
        ).scalar_one_or_none()
    return loaded, Known(
        {uid: _prior_of(row.m) for uid, row in rows.items()},
        set(await contents_of(unit, rid, sha256s)),
        stored_set,
    )
