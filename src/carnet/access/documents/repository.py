"""Documents in the store: rows ↔ :class:`~carnet.domain.documents.StoredDocument`, the sealed
envelope of a document (its entry and the interface's form of it), and the queries of the
documents service."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.sql import ColumnElement

from carnet.access.policy import DocumentFacts
from carnet.access.unit_of_work import Unit
from carnet.domain.content import Representation
from carnet.domain.documents import (
    DocumentEntry,
    DocumentState,
    DocumentStatus,
    StoredDocument,
)
from carnet.store.codec import entry_from_json, entry_to_json
from carnet.store.envelope import completed, pack, unpack
from carnet.store.tables import (
    binaries,
    content_chunks,
    contents,
    document_authors,
    document_history,
    documents,
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
    seen: set[tuple[str, str]] = set()
    out = []
    for system, value in entry.author_ids:
        if (system, value) not in seen:
            seen.add((system, value))
            out.append({"record_id": record_id, "doc_id": doc_id, "system": system, "value": value})
    return out


def no_conditions() -> list[ColumnElement[bool]]:
    return []


__all__ = ["document_authors"]
