"""Document operations of the scoped service: add and replace (TD2.1/TD2.2), read (TD3.2),
search (TD3.1), metadata update (TD3.3). dmp.md §4 and §6."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Row, and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from carnet.access.base import NOT_FOUND, record_id_of
from carnet.access.policy import Action, DocumentFacts, RecordFacts, RecordState, Relation
from carnet.access.publish_model import (
    NewDocument,
    PublishedDocument,
    PublishResult,
    SubjectRef,
    Submission,
)
from carnet.access.records import RecordOps
from carnet.cda.metadata import complete_from_cda
from carnet.domain.actors import RPPS_SYSTEM, AccessMode, ActorKind
from carnet.domain.clock import iso, new_id, utcnow
from carnet.domain.documents import CONFIDENTIALITY_CODES, DocumentEntry
from carnet.domain.ins import parse_ins
from carnet.domain.notifications import document_title, on_access, on_new_document
from carnet.domain.records import QUALIFIED, Record
from carnet.domain.search import DocumentCriteria, ListCriteria
from carnet.errors import (
    Conflict,
    Forbidden,
    Gone,
    InvalidInput,
    NotFound,
    PreconditionFailed,
    UnprocessableEntity,
)
from carnet.fhir.docref_resource import author_rpps, entry_from_docref
from carnet.store.content import BlobInfo, BlobWriter
from carnet.store.doc_query import document_conditions, list_conditions
from carnet.store.rows import record_from_row
from carnet.store.tables import (
    binaries,
    consents,
    contents,
    document_authors,
    document_history,
    documents,
    record_professionals,
    records,
    representatives,
    submission_sets,
)
from carnet.store.upsert import insert_ignore

LARGE = 1024 * 1024


@dataclass(frozen=True, slots=True)
class StoredDocument:
    record_id: str
    doc_id: str
    version_id: int
    status: str
    author_id: str | None
    binary_id: str
    sha256: str
    size: int
    content_type: str
    last_updated: datetime
    resource: bytes
    date: datetime | None
    labels: frozenset[str] = frozenset()
    archived: bool = False
    type_code: str | None = None
    class_code: str | None = None
    created_at: datetime | None = None

    @property
    def facts(self) -> DocumentFacts:
        return DocumentFacts(
            doc_id=self.doc_id,
            status=self.status,
            author_id=self.author_id,
            labels=self.labels,
            archived=self.archived,
            type_code=self.type_code,
            class_code=self.class_code,
            added_at=self.created_at,
        )


# the columns ``facts_of_row`` reads
FACT_COLUMNS = tuple(
    documents.c[name]
    for name in (
        "doc_id",
        "status",
        "archived",
        "author_id",
        "security_labels",
        "type_code",
        "class_code",
        "created_at",
    )
)


def facts_of_row(m: Any) -> DocumentFacts:
    """What the policy needs of a document, from a row (or a mapping) of ``documents``."""
    return DocumentFacts(
        doc_id=m["doc_id"],
        status=m["status"],
        author_id=m["author_id"],
        labels=frozenset(m["security_labels"].split()),
        archived=bool(m["archived"]),
        type_code=m["type_code"],
        class_code=m["class_code"],
        added_at=m["created_at"],
    )


def stored_from_row(row: Row[Any]) -> StoredDocument:
    m = row._mapping
    return StoredDocument(
        record_id=m["record_id"],
        doc_id=m["doc_id"],
        version_id=m["version_id"],
        status=m["status"],
        author_id=m["author_id"],
        binary_id=m["binary_id"],
        sha256=m["sha256"],
        size=m["size"],
        content_type=m["content_type"],
        last_updated=m["last_updated"],
        resource=bytes(m["resource"]),
        date=m["date"],
        labels=frozenset(m["security_labels"].split()),
        archived=bool(m["archived"]),
        type_code=m["type_code"],
        class_code=m["class_code"],
        created_at=m["created_at"],
    )


@dataclass(frozen=True, slots=True)
class Page:
    items: list[StoredDocument]
    total: int
    next_cursor: tuple[datetime, str] | None
    included: list[Record]


@dataclass(frozen=True, slots=True)
class ContentHandle:
    record_id: str
    blob_id: str
    key: bytes
    size: int
    sha1: bytes
    sha256: str
    content_type: str
    version_tag: str


class DocumentOps(RecordOps):
    # -- helpers ------------------------------------------------------------------------------
    def _author_key(self, entry: DocumentEntry) -> str:
        """Who the rules treat as the document's author: the patient for what a patient (or
        representative) adds; otherwise the author named in the metadata (a system may submit
        for the professional who wrote it)."""
        if self.actor.kind is ActorKind.PATIENT:
            return self.actor.id
        rpps = author_rpps(entry)
        if rpps:
            return f"rpps:{rpps}"
        return self.actor.id

    async def _resolve_subject(
        self, conn: AsyncConnection, subject: SubjectRef
    ) -> tuple[Record, RecordFacts]:
        if subject.record_id:
            record, facts = await self._load_record(conn, subject.record_id)
        else:
            ins = parse_ins(
                subject.ins_system,
                subject.ins_value,
                allow_test=self.settings.allow_test_ins,
                field="subject",
            )
            row = (
                await conn.execute(
                    select(records).where(
                        records.c.ins_oid == ins.oid, records.c.ins_value == ins.value
                    )
                )
            ).first()
            record = record_from_row(row) if row else None
            facts = await self._facts(conn, record) if record else None
        if record is None or facts is None or record.state is RecordState.DESTROYED:
            raise NotFound("no record for this patient: open it first (POST Patient, with consent)")
        return record, facts

    async def _load_document(
        self, conn: AsyncConnection, doc_id: str
    ) -> tuple[StoredDocument | None, Record | None, RecordFacts | None]:
        record_id = record_id_of(doc_id)
        row = (
            await conn.execute(
                select(documents).where(
                    documents.c.record_id == record_id, documents.c.doc_id == doc_id
                )
            )
        ).first()
        if row is None:
            return None, None, None
        record, facts = await self._load_record(conn, record_id)
        return stored_from_row(row), record, facts

    # -- publish ------------------------------------------------------------------------------
    async def publish(self, sub: Submission) -> PublishResult:
        """Store a submission: all of it or nothing (ITI-65 transaction semantics)."""
        async with self.services.engine.connect() as conn:
            record, facts = await self._resolve_subject(conn, sub.subject)
        decision = self.decide(Action.DOCUMENT_CREATE, facts)
        if not decision:
            raise await self.deny(Action.DOCUMENT_CREATE, record.record_id, decision, hide=False)
        if record.identity.identity_status != QUALIFIED:
            raise UnprocessableEntity(
                f"the INS of this record is not qualified (identityStatus "
                f"{record.identity.identity_status}): it may not be fed (dmp.md §2)",
                expression="subject",
            )
        for doc in sub.documents:
            if doc.data is not None:
                complete_from_cda(doc.entry, doc.resource, doc.data, doc.data_content_type)
            doc.entry.validate()
            self._check_patient(record, doc)
            per_doc = self.decide(
                Action.DOCUMENT_CREATE,
                facts,
                DocumentFacts(
                    doc_id="",
                    status="current",
                    author_id=None,
                    class_code=doc.entry.class_code,
                    type_code=doc.entry.type_code,
                ),
            )
            if not per_doc:
                raise await self.deny(Action.DOCUMENT_CREATE, record.record_id, per_doc, hide=False)
        ids = {id(d): f"{record.record_id}-{new_id()[:20]}" for d in sub.documents}
        key = await self._record_key(record.record_id)
        written: list[tuple[NewDocument, BlobInfo | None, BlobWriter | None]] = []
        try:
            for doc in sub.documents:
                info, writer = await self._write_content(record.record_id, key, doc)
                written.append((doc, info, writer))
            return await self._commit_publish(sub, record, ids, written)
        except BaseException:
            for _doc, _info, writer in written:
                if writer is not None:
                    writer.abort()
                    if _info is not None:
                        self.services.content.delete(record.record_id, _info.blob_id)
            raise

    def _check_patient(self, record: Record, doc: NewDocument) -> None:
        ins = record.identity.ins
        if doc.entry.patient_value == record.record_id and not doc.entry.patient_system:
            return  # named by its resource id (subject Patient/<id>): this very record
        if doc.entry.patient_value and (
            doc.entry.patient_value.upper() != ins.value
            or (doc.entry.patient_system and doc.entry.patient_system != ins.system)
        ):
            raise UnprocessableEntity(
                "the DocumentReference is for another patient than the submission",
                expression="DocumentReference.subject",
            )

    async def _record_key(self, record_id: str) -> bytes:
        return await self.services.keys.key_for(record_id)

    async def _write_content(
        self, record_id: str, key: bytes, doc: NewDocument
    ) -> tuple[BlobInfo | None, BlobWriter | None]:
        """Encrypt and write inline content; staged Binaries are already stored."""
        if doc.data is None:
            return None, None
        data = doc.data
        entry = doc.entry
        if (
            doc.data_content_type
            and entry.content_type
            and (
                doc.data_content_type.split(";")[0].strip()
                != entry.content_type.split(";")[0].strip()
            )
        ):
            raise UnprocessableEntity(
                f"the Binary's contentType {doc.data_content_type!r} contradicts the "
                f"DocumentReference's attachment.contentType {entry.content_type!r}",
                expression="Binary.contentType",
            )
        if entry.size is not None and entry.size != len(data):
            raise UnprocessableEntity(
                f"the content has {len(data)} bytes but attachment.size says {entry.size}",
                expression="DocumentReference.content.attachment.size",
            )
        store = self.services.content
        # in a thread: the write ends with an fsync, which must not stall the event loop
        info, writer = await asyncio.to_thread(store.put, record_id, key, data)
        if entry.hash_sha1 is not None and entry.hash_sha1 != info.sha1:
            writer.abort()
            raise UnprocessableEntity(
                "the content's SHA-1 is "
                f"{base64.b64encode(info.sha1).decode()} but attachment.hash says "
                f"{base64.b64encode(entry.hash_sha1).decode()}",
                expression="DocumentReference.content.attachment.hash",
            )
        return info, writer

    async def _commit_publish(
        self,
        sub: Submission,
        record: Record,
        ids: dict[int, str],
        written: list[tuple[NewDocument, BlobInfo | None, BlobWriter | None]],
    ) -> PublishResult:
        now = utcnow()
        rid = record.record_id
        set_id = f"{rid}-{new_id()[:20]}" if sub.submission_set else None
        result = PublishResult(
            rid, set_id, sub.submission_set.key if sub.submission_set else None, [], []
        )
        try:
            async with self.transaction() as conn:
                for doc, info, writer in written:
                    published = await self._store_document(
                        conn, record, ids[id(doc)], doc, info, now, set_id, sub, result
                    )
                    result.documents.append(published)
                    if writer is not None and info is not None:
                        if published.created and await self._content_is_ours(conn, rid, info):
                            writer.commit()
                        else:
                            writer.abort()
                if sub.submission_set and set_id:
                    await self._store_submission_set(conn, record, set_id, sub, result, now)
                if self.actor.kind is ActorKind.PROFESSIONAL:
                    await insert_ignore(
                        conn,
                        record_professionals,
                        {
                            "record_id": rid,
                            "professional_id": self.actor.id,
                            "relation": Relation.FED.value,
                            "first_at": now,
                        },
                    )
        except IntegrityError:
            raise Conflict(
                "a document with the same uniqueId was stored at the same time; send again"
            ) from None
        return result

    async def _content_is_ours(self, conn: AsyncConnection, rid: str, info: BlobInfo) -> bool:
        inserted = await insert_ignore(
            conn,
            contents,
            {
                "record_id": rid,
                "sha256": info.sha256,
                "blob_id": info.blob_id,
                "size": info.size,
                "sha1": info.sha1,
                "created_at": utcnow(),
            },
        )
        return inserted

    async def _store_document(
        self,
        conn: AsyncConnection,
        record: Record,
        doc_id: str,
        doc: NewDocument,
        info: BlobInfo | None,
        now: datetime,
        set_id: str | None,
        sub: Submission,
        result: PublishResult,
    ) -> PublishedDocument:
        rid = record.record_id
        entry = doc.entry
        # content facts
        if info is not None:
            sha256, size, sha1 = info.sha256, info.size, info.sha1
            binary_id = doc_id
            content_type = entry.content_type or doc.data_content_type or "application/octet-stream"
        elif doc.binary_id:
            staged = await self._staged_binary(conn, rid, doc.binary_id)
            sha256, size, sha1, content_type = staged
            if entry.size is not None and entry.size != size:
                raise UnprocessableEntity(
                    f"Binary/{doc.binary_id} has {size} bytes, attachment.size says {entry.size}",
                    expression="DocumentReference.content.attachment.size",
                )
            if entry.hash_sha1 is not None and entry.hash_sha1 != sha1:
                raise UnprocessableEntity(
                    f"Binary/{doc.binary_id}'s SHA-1 contradicts attachment.hash",
                    expression="DocumentReference.content.attachment.hash",
                )
            binary_id = doc.binary_id
        else:
            raise UnprocessableEntity(
                "the DocumentReference has no content: attachment.url must name a Binary of the "
                "bundle or an uploaded Binary, or attachment.data must carry it",
                expression="DocumentReference.content.attachment.url",
            )
        # idempotency: same uniqueId in this record
        existing = (
            await conn.execute(
                select(documents).where(
                    documents.c.record_id == rid, documents.c.unique_id == entry.unique_id
                )
            )
        ).first()
        if existing is not None:
            prior = stored_from_row(existing)
            if prior.sha256 != sha256:
                raise Conflict(
                    f"uniqueId {entry.unique_id} is already used by DocumentReference/"
                    f"{prior.doc_id} with other content (XDSDuplicateUniqueIdInRegistry)",
                )
            await self.trace(
                conn,
                Action.DOCUMENT_CREATE,
                rid,
                outcome="allow",
                doc_id=prior.doc_id,
                detail="duplicate uniqueId: already stored",
            )
            return PublishedDocument(
                doc.key,
                prior.doc_id,
                prior.version_id,
                False,
                prior.last_updated,
                prior.binary_id,
                doc.binary_key,
            )
        # replacement
        replaces_id: str | None = None
        if entry.replaces:
            replaces_id = await self._supersede(conn, record, entry.replaces, now, result)
        if info is not None:
            await conn.execute(
                binaries.insert().values(
                    record_id=rid,
                    binary_id=binary_id,
                    sha256=sha256,
                    content_type=content_type,
                    created_by=self.actor.id,
                    created_at=now,
                )
            )
        resource = self._render_document(doc, rid, doc_id, binary_id, size, sha1, now, replaces_id)
        sealed = await self.seal(rid, resource)
        labels = " " + " ".join(entry.confidentiality) + " "
        await conn.execute(
            documents.insert().values(
                record_id=rid,
                doc_id=doc_id,
                unique_id=entry.unique_id,
                version_id=1,
                status="current",
                archived=False,
                class_code=entry.class_code,
                type_system=entry.type_system,
                type_code=entry.type_code,
                date=entry.date or entry.creation_time or now,
                period_start=entry.service_start,
                period_end=entry.service_stop,
                facility_code=entry.facility_code,
                setting_code=entry.setting_code,
                format_code=entry.format_code,
                content_type=content_type,
                security_labels=labels,
                author_id=self._author_key(entry),
                submission_set_id=set_id,
                replaces_id=replaces_id,
                binary_id=binary_id,
                sha256=sha256,
                size=size,
                created_at=now,
                last_updated=now,
                resource=sealed,
            )
        )
        await conn.execute(
            document_history.insert().values(
                record_id=rid, doc_id=doc_id, version_id=1, last_updated=now, resource=sealed
            )
        )
        seen: set[tuple[str, str]] = set()
        for system, value in entry.author_ids:
            if (system, value) not in seen:
                seen.add((system, value))
                await conn.execute(
                    document_authors.insert().values(
                        record_id=rid, doc_id=doc_id, system=system, value=value
                    )
                )
        await self.trace(
            conn,
            Action.DOCUMENT_CREATE,
            rid,
            outcome="allow",
            doc_id=doc_id,
            detail=f"replaces {replaces_id}" if replaces_id else None,
        )
        if self.actor.kind is ActorKind.PROFESSIONAL:
            await on_new_document(
                conn, self.actor, rid, doc_id, entry.title, labels=entry.confidentiality, now=now
            )
        return PublishedDocument(doc.key, doc_id, 1, True, now, binary_id, doc.binary_key)

    def _render_document(
        self,
        doc: NewDocument,
        rid: str,
        doc_id: str,
        binary_id: str,
        size: int,
        sha1: bytes,
        now: datetime,
        replaces_id: str | None,
    ) -> bytes:
        out = dict(doc.resource)
        out["id"] = doc_id
        meta = dict(out.get("meta") or {})
        meta["versionId"] = "1"
        meta["lastUpdated"] = iso(now)
        out["meta"] = meta
        out["status"] = "current"
        subject: dict[str, Any] = {"reference": f"Patient/{rid}"}
        out["subject"] = subject
        content = [dict(c) for c in out.get("content") or []]
        if content:
            att = dict(content[0].get("attachment") or {})
            att.pop("data", None)
            att["url"] = f"{self.base_url}/Binary/{binary_id}"
            att["size"] = size
            att["hash"] = base64.b64encode(sha1).decode()
            content[0]["attachment"] = att
            out["content"] = content
        if replaces_id:
            out["relatesTo"] = [
                {"code": "replaces", "target": {"reference": f"DocumentReference/{replaces_id}"}}
                if (isinstance(r, dict) and r.get("code") == "replaces")
                else r
                for r in out.get("relatesTo") or []
            ]
        return orjson.dumps(out)

    async def _staged_binary(
        self, conn: AsyncConnection, rid: str, binary_id: str
    ) -> tuple[str, int, bytes, str]:
        row = (
            await conn.execute(
                select(
                    binaries.c.sha256,
                    contents.c.size,
                    contents.c.sha1,
                    binaries.c.content_type,
                    binaries.c.created_by,
                )
                .join(
                    contents,
                    and_(
                        contents.c.record_id == binaries.c.record_id,
                        contents.c.sha256 == binaries.c.sha256,
                    ),
                )
                .where(binaries.c.record_id == rid, binaries.c.binary_id == binary_id)
            )
        ).first()
        if row is None or row[4] != self.actor.id:
            raise UnprocessableEntity(
                f"Binary/{binary_id} is not a Binary you uploaded for this patient",
                expression="DocumentReference.content.attachment.url",
            )
        return row[0], row[1], bytes(row[2]), row[3]

    async def _supersede(
        self,
        conn: AsyncConnection,
        record: Record,
        target_id: str,
        now: datetime,
        result: PublishResult,
    ) -> str:
        rid = record.record_id
        row = (
            await conn.execute(
                select(documents).where(
                    documents.c.record_id == rid, documents.c.doc_id == target_id
                )
            )
        ).first()
        if row is None:
            raise UnprocessableEntity(
                f"relatesTo.replaces names DocumentReference/{target_id}, which is not a document "
                "of this patient's record",
                expression="DocumentReference.relatesTo",
            )
        target = stored_from_row(row)
        facts = await self._facts(conn, record)
        decision = self.decide(Action.DOCUMENT_REPLACE, facts, target.facts)
        if not decision:
            await self.trace(conn, Action.DOCUMENT_REPLACE, rid, decision, doc_id=target_id)
            raise Forbidden(f"DocumentReference/{target_id}: {decision.reason}")
        if target.status != "current":
            raise Conflict(
                f"DocumentReference/{target_id} is {target.status}: only a current document "
                "can be replaced"
            )
        version = target.version_id + 1
        body = orjson.loads(await self.unseal(rid, target.resource))
        body["status"] = "superseded"
        body["meta"] = {**body.get("meta", {}), "versionId": str(version), "lastUpdated": iso(now)}
        resource = await self.seal(rid, orjson.dumps(body))
        await conn.execute(
            update(documents)
            .where(documents.c.record_id == rid, documents.c.doc_id == target_id)
            .values(status="superseded", version_id=version, last_updated=now, resource=resource)
        )
        await conn.execute(
            document_history.insert().values(
                record_id=rid,
                doc_id=target_id,
                version_id=version,
                last_updated=now,
                resource=resource,
            )
        )
        await self.trace(conn, Action.DOCUMENT_REPLACE, rid, decision, doc_id=target_id)
        result.replaced.append((target_id, version))
        return target_id

    async def _store_submission_set(
        self,
        conn: AsyncConnection,
        record: Record,
        set_id: str,
        sub: Submission,
        result: PublishResult,
        now: datetime,
    ) -> None:
        ss = sub.submission_set
        assert ss is not None
        mapping = {d.key: f"DocumentReference/{d.doc_id}" for d in result.documents}
        body = dict(ss.resource)
        body["id"] = set_id
        body["meta"] = {**(body.get("meta") or {}), "versionId": "1", "lastUpdated": iso(now)}
        body["subject"] = {"reference": f"Patient/{record.record_id}"}
        entries = []
        for item in body.get("entry") or []:
            if isinstance(item, dict) and isinstance(item.get("item"), dict):
                ref = item["item"].get("reference")
                if ref in mapping:
                    item = {**item, "item": {"reference": mapping[ref]}}
            entries.append(item)
        if not entries:  # a set made by carnet (ITI-105) lists what it carried
            entries = [{"item": {"reference": ref}} for ref in mapping.values()]
        body["entry"] = entries
        existing = (
            await conn.execute(
                select(submission_sets.c.set_id).where(
                    submission_sets.c.record_id == record.record_id,
                    submission_sets.c.unique_id == ss.unique_id,
                )
            )
        ).first()
        if existing is not None:
            if any(d.created for d in result.documents):
                raise Conflict(
                    f"submission set uniqueId {ss.unique_id} was already used for other documents"
                )
            result.set_id = existing[0]
            return
        if result.documents and not any(d.created for d in result.documents):
            # every document was stored before (same uniqueIds): nothing new to list; answer
            # with the submission set that brought the first one
            prior = (
                await conn.execute(
                    select(documents.c.submission_set_id).where(
                        documents.c.record_id == record.record_id,
                        documents.c.doc_id == result.documents[0].doc_id,
                    )
                )
            ).scalar_one_or_none()
            if prior is not None:
                result.set_id = prior
                return
        await conn.execute(
            submission_sets.insert().values(
                record_id=record.record_id,
                set_id=set_id,
                unique_id=ss.unique_id,
                source_id=ss.source_id,
                submission_time=ss.submission_time,
                author_id=ss.author_id,
                created_at=now,
                resource=await self.seal(record.record_id, orjson.dumps(body)),
            )
        )

    # -- raw Binary upload ---------------------------------------------------------------------
    async def create_binary(
        self, record_id: str, content_type: str, chunks: Any
    ) -> tuple[str, int]:
        """Stream raw content into the store for a later DocumentReference (FHIR Binary create
        with X-Security-Context). Returns (binary id, size)."""
        async with self.services.engine.connect() as conn:
            record, facts = await self._load_record(conn, record_id)
        decision = self.decide(Action.DOCUMENT_CREATE, facts)
        if record is None or not decision:
            raise await self.deny(
                Action.DOCUMENT_CREATE, record_id if record else None, decision, hide=record is None
            )
        key = await self._record_key(record_id)
        writer = self.services.content.writer(record_id, key)
        limit = self.settings.max_upload_bytes
        try:
            async for chunk in chunks:
                if writer.size + len(chunk) > limit:
                    from carnet.errors import PayloadTooLarge

                    raise PayloadTooLarge(f"content exceeds the {limit}-byte limit")
                await asyncio.to_thread(writer.write, chunk) if len(
                    chunk
                ) > LARGE else writer.write(chunk)
            info = await asyncio.to_thread(writer.finish)
            binary_id = f"{record_id}-{new_id()[:20]}"
            now = utcnow()
            async with self.services.engine.begin() as conn:
                ours = await self._content_is_ours(conn, record_id, info)
                await conn.execute(
                    binaries.insert().values(
                        record_id=record_id,
                        binary_id=binary_id,
                        sha256=info.sha256,
                        content_type=content_type,
                        created_by=self.actor.id,
                        created_at=now,
                    )
                )
                await self.trace(
                    conn,
                    "binary.create",
                    record_id,
                    decision,
                    detail=f"Binary/{binary_id} {info.size} bytes",
                )
            if ours:
                writer.commit()
            else:
                writer.abort()
            return binary_id, info.size
        except BaseException:
            writer.abort()
            raise

    # -- reads ---------------------------------------------------------------------------------
    async def read_document(self, doc_id: str, version: int | None = None) -> StoredDocument:
        async with self.transaction() as conn:
            doc, record, facts = await self._load_document(conn, doc_id)
            if doc is None or record is None:
                raise NotFound(NOT_FOUND)
            decision = self.decide(Action.DOCUMENT_READ, facts, doc.facts)
            if not decision:
                await self.trace(
                    conn, Action.DOCUMENT_READ, record.record_id, decision, doc_id=doc_id
                )
                if decision.rule == "document-deleted" and self.decide(
                    Action.DOCUMENT_READ, facts, replace(doc.facts, status="current")
                ):  # 410 only to whoever could read it before: no leak of hidden documents
                    raise Gone(f"DocumentReference/{doc_id} was deleted")
                raise NotFound(NOT_FOUND)
            if version is not None and version != doc.version_id:
                row = (
                    await conn.execute(
                        select(document_history.c.resource, document_history.c.last_updated).where(
                            document_history.c.record_id == doc.record_id,
                            document_history.c.doc_id == doc_id,
                            document_history.c.version_id == version,
                        )
                    )
                ).first()
                if row is None:
                    raise NotFound(f"DocumentReference/{doc_id} has no version {version}")
                doc = StoredDocument(
                    **{
                        **_asdict(doc),
                        "version_id": version,
                        "resource": bytes(row[0]),
                        "last_updated": row[1],
                    }
                )
            doc = replace(doc, resource=await self.unseal(doc.record_id, doc.resource))
            await self.trace(conn, Action.DOCUMENT_READ, record.record_id, decision, doc_id=doc_id)
            if self.actor.kind is ActorKind.PROFESSIONAL:
                await on_access(
                    conn,
                    self.actor,
                    record.record_id,
                    doc_id,
                    record.treating_physician,
                    title=document_title(doc.resource),
                    labels=doc.labels,
                )
            return doc

    async def document_history(self, doc_id: str) -> list[tuple[int, datetime, bytes]]:
        doc = await self.read_document(doc_id)
        async with self.services.engine.connect() as conn:
            rows = await conn.execute(
                select(
                    document_history.c.version_id,
                    document_history.c.last_updated,
                    document_history.c.resource,
                )
                .where(
                    document_history.c.record_id == doc.record_id,
                    document_history.c.doc_id == doc_id,
                )
                .order_by(document_history.c.version_id.desc())
            )
            return [(r[0], r[1], await self.unseal(doc.record_id, bytes(r[2]))) for r in rows]

    async def open_content(self, binary_id: str) -> ContentHandle:
        """Access-checked handle on a Binary's content (ITI-68)."""
        rid = record_id_of(binary_id)
        async with self.transaction() as conn:
            row = (
                await conn.execute(
                    select(
                        binaries.c.sha256,
                        binaries.c.content_type,
                        binaries.c.created_by,
                        contents.c.blob_id,
                        contents.c.size,
                        contents.c.sha1,
                    )
                    .join(
                        contents,
                        and_(
                            contents.c.record_id == binaries.c.record_id,
                            contents.c.sha256 == binaries.c.sha256,
                        ),
                    )
                    .where(binaries.c.record_id == rid, binaries.c.binary_id == binary_id)
                )
            ).first()
            if row is None:
                raise NotFound(NOT_FOUND)
            record, facts = await self._load_record(conn, rid)
            doc_rows = (
                await conn.execute(
                    select(documents).where(
                        documents.c.record_id == rid, documents.c.binary_id == binary_id
                    )
                )
            ).all()
            decision = None
            allowed_doc: StoredDocument | None = None
            for dr in doc_rows:
                doc = stored_from_row(dr)
                decision = self.decide(Action.DOCUMENT_READ, facts, doc.facts)
                if decision:
                    allowed_doc = doc
                    break
            if allowed_doc is None:
                staged_by_me = not doc_rows and row[2] == self.actor.id
                upload_decision = self.decide(Action.DOCUMENT_CREATE, facts)
                if not (staged_by_me and upload_decision):
                    if decision is not None:
                        await self.trace(
                            conn, Action.DOCUMENT_READ, rid, decision, detail=f"Binary/{binary_id}"
                        )
                    raise NotFound(NOT_FOUND)
                decision = upload_decision
            await self.trace(
                conn,
                Action.DOCUMENT_READ,
                rid,
                decision,
                doc_id=allowed_doc.doc_id if allowed_doc else None,
                detail=f"content Binary/{binary_id}",
            )
            if self.actor.kind is ActorKind.PROFESSIONAL and allowed_doc and record:
                await on_access(
                    conn,
                    self.actor,
                    rid,
                    allowed_doc.doc_id,
                    record.treating_physician,
                    labels=allowed_doc.labels,
                )
            key = await self.services.keys.key_for(rid)
        return ContentHandle(rid, row[3], key, row[4], bytes(row[5]), row[0], row[1], row[0][:32])

    # -- metadata update -----------------------------------------------------------------------
    async def update_document(
        self, doc_id: str, resource: dict[str, Any], if_match: int | None
    ) -> StoredDocument:
        """TD3.3: the author changes the status (deletes: entered-in-error), archives
        (extension ``dmp-archived``) and sets the ``INVISIBLE_*`` flags; the patient masks or
        unmasks (``MASQUE_PS``). Each change is decided on its own; nothing else may change."""
        async with self.transaction() as conn:
            doc, record, facts = await self._load_document(conn, doc_id)
            read = self.decide(Action.DOCUMENT_READ, facts, doc.facts) if doc else None
            if doc is None or record is None or not read:
                if doc is not None and record is not None and read is not None:
                    await self.trace(
                        conn, Action.DOCUMENT_UPDATE, record.record_id, read, doc_id=doc_id
                    )
                raise NotFound(NOT_FOUND)
            if if_match is not None and if_match != doc.version_id:
                raise PreconditionFailed(
                    f"DocumentReference/{doc_id} is at version {doc.version_id}, not {if_match}"
                )
            stored = orjson.loads(await self.unseal(doc.record_id, doc.resource))
            changed = {
                k
                for k in set(stored) | set(resource)
                if k not in ("meta", "status", "securityLabel", "id", "text", "extension")
                and stored.get(k) != resource.get(k)
            }
            if _other_extensions(stored) != _other_extensions(resource):
                changed.add("extension")
            if changed:
                raise UnprocessableEntity(
                    "only status, securityLabel and the dmp-archived extension change on a stored "
                    f"document; to change {', '.join(sorted(changed))}, replace it (ITI-65 with "
                    "relatesTo)",
                    expression=f"DocumentReference.{sorted(changed)[0]}",
                )
            status = resource.get("status")
            if status not in ("current", "superseded", "entered-in-error"):
                raise InvalidInput(
                    "status must be current, superseded or entered-in-error",
                    expression="DocumentReference.status",
                )
            labels = entry_from_docref(
                {**resource, "content": stored.get("content")}
            ).confidentiality
            unknown = [c for c in labels if c not in CONFIDENTIALITY_CODES]
            if unknown:
                raise UnprocessableEntity(
                    f"unknown confidentiality codes {', '.join(unknown)}",
                    expression="DocumentReference.securityLabel",
                )
            archived = _archived(resource)
            old, new = set(doc.labels), set(labels)
            wants: list[tuple[Action, str]] = []
            if "MASQUE_PS" in old ^ new:
                wants.append((Action.DOCUMENT_MASK, "mask" if "MASQUE_PS" in new else "unmask"))
            author_changes = []
            if status != doc.status:
                author_changes.append(f"status={status}")
            if archived != doc.archived:
                author_changes.append("archive" if archived else "unarchive")
            if (old ^ new) - {"MASQUE_PS"}:
                author_changes.append("labels " + " ".join(sorted(new - {"MASQUE_PS"})))
            if author_changes:
                wants.append((Action.DOCUMENT_UPDATE, ", ".join(author_changes)))
            if not wants:
                return doc
            decisions = []
            for action, what in wants:
                decision = self.decide(action, facts, doc.facts)
                if not decision:
                    await self.trace(
                        conn, action, record.record_id, decision, doc_id=doc_id, detail=what
                    )
                    raise Forbidden(f"not allowed to {what}: {decision.reason}")
                decisions.append((action, decision, what))
            now = utcnow()
            version = doc.version_id + 1
            stored["status"] = status
            if resource.get("securityLabel") is not None:
                stored["securityLabel"] = resource["securityLabel"]
            else:
                stored.pop("securityLabel", None)
            exts = [e for e in stored.get("extension") or [] if e.get("url") != ARCHIVED]
            if archived:
                exts.append({"url": ARCHIVED, "valueBoolean": True})
            if exts:
                stored["extension"] = exts
            else:
                stored.pop("extension", None)
            stored["meta"] = {
                **stored.get("meta", {}),
                "versionId": str(version),
                "lastUpdated": iso(now),
            }
            body = orjson.dumps(stored)
            sealed = await self.seal(doc.record_id, body)
            res = await conn.execute(
                update(documents)
                .where(
                    documents.c.record_id == doc.record_id,
                    documents.c.doc_id == doc_id,
                    documents.c.version_id == doc.version_id,
                )
                .values(
                    status=status,
                    archived=archived,
                    version_id=version,
                    last_updated=now,
                    resource=sealed,
                    security_labels=" " + " ".join(labels) + " ",
                )
            )
            if res.rowcount != 1:
                raise PreconditionFailed(f"DocumentReference/{doc_id} changed meanwhile")
            await conn.execute(
                document_history.insert().values(
                    record_id=doc.record_id,
                    doc_id=doc_id,
                    version_id=version,
                    last_updated=now,
                    resource=sealed,
                )
            )
            for action, decision, what in decisions:
                await self.trace(conn, action, doc.record_id, decision, doc_id=doc_id, detail=what)
            return StoredDocument(
                **{
                    **_asdict(doc),
                    "version_id": version,
                    "status": status,
                    "archived": archived,
                    "labels": frozenset(labels),
                    "last_updated": now,
                    "resource": body,
                }
            )

    # -- search --------------------------------------------------------------------------------
    def _reachable_records(self, *, names_patient: bool = False) -> Any:
        """The records whose documents this actor may possibly be shown (SQL). Every row is then
        checked with ``decide``: this only keeps searches from scanning other records."""
        active = records.c.state == RecordState.ACTIVE.value
        if self.actor.kind is ActorKind.PATIENT:
            ins = self.actor.ins or ""
            return select(records.c.record_id).where(
                records.c.state != RecordState.DESTROYED.value,
                or_(
                    records.c.ins_value == ins,
                    records.c.record_id.in_(
                        select(representatives.c.record_id).where(
                            representatives.c.representative_ins == ins
                        )
                    ),
                ),
            )
        if self.actor.kind is ActorKind.PROFESSIONAL:
            if self.actor.mode is not AccessMode.NORMAL:
                if not names_patient:
                    raise InvalidInput(
                        "an emergency access (bris_de_glace, centre_15) names its patient: "
                        "add patient or patient.identifier",
                        expression="patient",
                    )
                return select(records.c.record_id).where(active)
            names = [v for v in (self.actor.rpps, self.actor.structure) if v]
            return select(records.c.record_id).where(
                active,
                or_(
                    records.c.treating_physician == self.actor.id,
                    records.c.record_id.in_(
                        select(consents.c.record_id).where(
                            consents.c.actor_value.in_(names),
                            consents.c.status == "active",
                            consents.c.decision == "permit",
                        )
                    ),
                    records.c.record_id.in_(
                        select(documents.c.record_id).where(documents.c.author_id == self.actor.id)
                    ),
                ),
            )
        return select(records.c.record_id).where(records.c.record_id == "")

    async def search_documents(self, criteria: DocumentCriteria) -> Page:
        """ITI-67. Every candidate row is checked with ``decide``; ``total``, the page and the
        next cursor are computed from what passed, so that a search reveals nothing a read would
        refuse."""
        conds = document_conditions(criteria)
        names_patient = bool(criteria.record_ids or criteria.patient_identifiers)
        conds.append(
            documents.c.record_id.in_(self._reachable_records(names_patient=names_patient))
        )
        conds.append(documents.c.status != "entered-in-error")
        if criteria.archived is not None:
            conds.append(documents.c.archived == criteria.archived)
        elif not (criteria.ids or criteria.identifier):
            conds.append(documents.c.archived == False)  # noqa: E712 - SQL expression
        d = documents.c
        order = (d.date.desc(), d.doc_id.desc()) if criteria.sort_desc else (d.date, d.doc_id)
        light = select(d.record_id, d.date, *FACT_COLUMNS).where(*conds).order_by(*order)
        async with self.services.engine.begin() as conn:
            facts_cache: dict[str, RecordFacts | None] = {}
            records_seen: dict[str, Record] = {}
            allowed: list[tuple[str, str, datetime]] = []
            refused: dict[str, int] = {}
            for row in (await conn.execute(light)).all():
                m = row._mapping
                rid = m["record_id"]
                if rid not in facts_cache:
                    record, facts = await self._load_record(conn, rid)
                    facts_cache[rid] = facts
                    if record is not None:
                        records_seen[rid] = record
                if self.decide(Action.DOCUMENT_READ, facts_cache[rid], facts_of_row(m)):
                    allowed.append((rid, m["doc_id"], m["date"]))
                else:
                    refused[rid] = refused.get(rid, 0) + 1
            start = 0
            if criteria.cursor is not None:
                cdate, cid = criteria.cursor
                key = (cdate, cid)
                start = next(
                    (
                        i
                        for i, (_r, did, date) in enumerate(allowed)
                        if ((date, did) < key if criteria.sort_desc else (date, did) > key)
                    ),
                    len(allowed),
                )
            page = allowed[start : start + criteria.count]
            more = start + criteria.count < len(allowed)
            items: list[StoredDocument] = []
            if page:
                rows = (
                    await conn.execute(
                        select(documents).where(
                            documents.c.record_id.in_({r for r, _d, _t in page}),
                            documents.c.doc_id.in_([did for _r, did, _t in page]),
                        )
                    )
                ).all()
                by_id = {stored_from_row(r).doc_id: stored_from_row(r) for r in rows}
                items = [
                    replace(by_id[did], resource=await self.unseal(rid, by_id[did].resource))
                    for rid, did, _t in page
                    if did in by_id
                ]
            returned: dict[str, list[str]] = {}
            for doc in items:
                returned.setdefault(doc.record_id, []).append(doc.doc_id)
            for rid in sorted(set(returned) | set(refused)):
                detail = "returned " + " ".join(returned.get(rid, []))
                if refused.get(rid):
                    detail += f"; {refused[rid]} left out by the rules"
                await self.trace(conn, "document.search", rid, outcome="allow", detail=detail)
                seen = records_seen.get(rid)
                if self.actor.kind is ActorKind.PROFESSIONAL and rid in returned and seen:
                    await on_access(conn, self.actor, rid, None, seen.treating_physician)
            included: list[Record] = []
            if criteria.include_subject:
                for rid in returned:
                    record = records_seen.get(rid)
                    if record is not None and self.decide(Action.RECORD_READ, facts_cache[rid]):
                        included.append(await self.opened(record))
        last = items[-1] if items else None
        next_cursor = (last.date, last.doc_id) if more and last and last.date else None
        return Page(items, len(allowed), next_cursor, included)

    async def search_lists(self, criteria: ListCriteria) -> tuple[list[bytes], int, Any]:
        """ITI-66. A submission set is shown with only the entries the caller may read, and
        not at all when it has none; ``total`` and paging count what is shown."""
        conds = list_conditions(criteria)
        names_patient = bool(criteria.record_ids or criteria.patient_identifiers)
        conds.append(
            submission_sets.c.record_id.in_(self._reachable_records(names_patient=names_patient))
        )
        if criteria.set_ids:
            conds.append(submission_sets.c.set_id.in_(criteria.set_ids))
        s = submission_sets.c
        async with self.services.engine.begin() as conn:
            sets = (
                await conn.execute(
                    select(s.record_id, s.set_id, s.submission_time)
                    .where(*conds)
                    .order_by(s.submission_time.desc(), s.set_id.desc())
                )
            ).all()
            d = documents.c
            visible: dict[str, set[str]] = {}
            facts_cache: dict[str, RecordFacts | None] = {}
            if sets:
                doc_rows = (
                    await conn.execute(
                        select(d.record_id, d.submission_set_id, *FACT_COLUMNS).where(
                            d.record_id.in_({r.record_id for r in sets}),
                            d.submission_set_id.in_([r.set_id for r in sets]),
                        )
                    )
                ).all()
                for m in (r._mapping for r in doc_rows):
                    rid = m["record_id"]
                    if rid not in facts_cache:
                        facts_cache[rid] = (await self._load_record(conn, rid))[1]
                    if self.decide(Action.DOCUMENT_READ, facts_cache[rid], facts_of_row(m)):
                        visible.setdefault(m["submission_set_id"], set()).add(m["doc_id"])
            shown = [r for r in sets if visible.get(r.set_id)]
            start = 0
            if criteria.cursor is not None:
                key = criteria.cursor
                start = next(
                    (i for i, r in enumerate(shown) if (r.submission_time, r.set_id) < key),
                    len(shown),
                )
            page = shown[start : start + criteria.count]
            out: list[bytes] = []
            if page:
                bodies = {
                    r.set_id: r.resource
                    for r in (
                        await conn.execute(
                            select(s.set_id, s.resource).where(
                                s.record_id.in_({r.record_id for r in page}),
                                s.set_id.in_([r.set_id for r in page]),
                            )
                        )
                    ).all()
                }
                for r in page:
                    body = orjson.loads(await self.unseal(r.record_id, bytes(bodies[r.set_id])))
                    allowed = visible[r.set_id]
                    body["entry"] = [
                        e
                        for e in body.get("entry") or []
                        if str((e.get("item") or {}).get("reference", "")).removeprefix(
                            "DocumentReference/"
                        )
                        in allowed
                    ]
                    out.append(orjson.dumps(body))
            for rid in sorted({r.record_id for r in page}):
                await self.trace(
                    conn,
                    "list.search",
                    rid,
                    outcome="allow",
                    detail="returned " + " ".join(r.set_id for r in page if r.record_id == rid),
                )
        nxt = None
        if start + criteria.count < len(shown) and page:
            nxt = (page[-1].submission_time, page[-1].set_id)
        return out, len(shown), nxt


ARCHIVED = "https://carnet.health/fhir/StructureDefinition/dmp-archived"


def _archived(resource: dict[str, Any]) -> bool:
    for ext in resource.get("extension") or []:
        if isinstance(ext, dict) and ext.get("url") == ARCHIVED:
            return ext.get("valueBoolean") is True
    return False


def _other_extensions(resource: dict[str, Any]) -> list[Any]:
    return [
        e
        for e in resource.get("extension") or []
        if not (isinstance(e, dict) and e.get("url") == ARCHIVED)
    ]


def _asdict(doc: StoredDocument) -> dict[str, Any]:
    return {f: getattr(doc, f) for f in StoredDocument.__slots__}


__all__ = ["RPPS_SYSTEM", "ContentHandle", "DocumentOps", "Page", "StoredDocument"]
