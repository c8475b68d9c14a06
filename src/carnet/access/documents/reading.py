"""Reading documents (dmp.md §3; DMP TD3.2): a document's metadata by id, its versions, its
content. One decision (``document.read``) per read, traced; a refused read answers exactly as a
missing document; a deleted document answers "deleted" only to whoever could read it before."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from carnet.access.context import ContentStream, Context
from carnet.access.documents.repository import (
    PG_CONTENT,
    BinaryRow,
    DocumentRow,
    Prefixed,
    binary,
    by_binary,
    by_id,
    contents_of,
    first_chunk,
    labels_of,
    open_document,
    past_states,
    prefetched_content,
    record_id_of,
)
from carnet.access.facts import LoadedRecord
from carnet.access.guard import NOT_FOUND
from carnet.access.policy import Decision, UploadFacts
from carnet.access.unit_of_work import Unit
from carnet.domain import trace_view as details
from carnet.domain.actions import Action
from carnet.domain.actors import ActorKind
from carnet.domain.content import ContentInfo
from carnet.domain.documents import DocumentState, DocumentStatus, StoredDocument
from carnet.domain.errors import Gone, NotFound
from carnet.domain.notifications import access_notices
from carnet.store.envelope import unpack


class Reader:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.actor = ctx.actor
        self.guard = ctx.guard

    async def _readable(
        self, unit: Unit, doc_id: str, *, detail: str | None = None
    ) -> tuple[DocumentRow, LoadedRecord]:
        """The document and its record, if the actor may read it (traced); else NotFound, or
        Gone to whoever could read it before it was deleted."""
        row = await by_id(unit, doc_id)
        if row is None:  # traced as a refused read is, so that both look alike to the reader
            # (and the record's facts read all the same: a refusal must not be told by its time)
            await self.ctx.facts.load(unit, record_id_of(doc_id))
            self.guard.trace(
                unit,
                Action.DOCUMENT_READ,
                self.guard.allows(Action.DOCUMENT_READ, None),
                record_id=None,
                doc_id=doc_id,
                detail=detail,
            )
            raise NotFound(NOT_FOUND)
        loaded = await self.ctx.facts.load(unit, row.record_id)
        facts = loaded.facts if loaded else None
        decision = self.guard.allows(Action.DOCUMENT_READ, facts, row.facts)
        self.guard.trace(
            unit,
            Action.DOCUMENT_READ,
            decision,
            record_id=row.record_id if loaded else None,
            doc_id=doc_id,
            detail=detail,
        )
        if not decision or loaded is None:
            if row.facts.status == DocumentStatus.DELETED and self.guard.allows(
                Action.DOCUMENT_READ,
                facts,
                replace(row.facts, status=DocumentStatus.CURRENT.value),
            ):  # 410 only to whoever could read it before: no leak of hidden documents
                raise Gone("the document was deleted")
            raise NotFound(NOT_FOUND)
        return row, loaded

    def _notify(self, unit: Unit, loaded: LoadedRecord, doc: StoredDocument | None) -> None:
        if self.actor.kind is not ActorKind.PROFESSIONAL:
            return
        for row in access_notices(
            self.actor,
            loaded.record_id,
            loaded.patient_id,
            loaded.preferences,
            doc.doc_id if doc else None,
            loaded.record.treating_physician,
            title=doc.title if doc else None,
            labels=doc.labels if doc else (),
        ):
            unit.notice(row)

    async def read(self, doc_id: str, version: int | None = None) -> StoredDocument:
        async def operation(unit: Unit) -> StoredDocument:
            row, loaded = await self._readable(unit, doc_id)
            doc = await open_document(unit, row)
            if version is not None and version != doc.version_id:
                doc = await self._version(unit, doc, version)
            self._notify(unit, loaded, doc)
            return doc

        return await self.ctx.read(operation)

    async def _version(self, unit: Unit, doc: StoredDocument, version: int) -> StoredDocument:
        for m, legacy in await past_states(unit, doc.record_id, doc.doc_id):
            if int(m["version_id"]) == version:
                return await self._as_was(unit, doc, m, legacy)
        raise NotFound(f"the document has no version {version}", field="version")

    async def _as_was(
        self, unit: Unit, doc: StoredDocument, m: Any, legacy: bytes | None
    ) -> StoredDocument:
        if legacy is not None:  # written before states were kept: the resource as it was
            _core, source = unpack(await unit.unseal(doc.record_id, legacy))
            state = replace(
                doc.state, version_id=int(m["version_id"]), last_updated=m["last_updated"]
            )
            return replace(doc, state=state, source=source)
        state = DocumentState(
            version_id=int(m["version_id"]),
            status=DocumentStatus(m["status"]),
            labels=labels_of(m["security_labels"] or ""),
            archived=bool(m["archived"]),
            last_updated=m["last_updated"],
        )
        return replace(doc, state=state)

    async def history(self, doc_id: str) -> list[StoredDocument]:
        """Every version of the document, newest first."""

        async def operation(unit: Unit) -> list[StoredDocument]:
            row, loaded = await self._readable(unit, doc_id, detail="history")
            doc = await open_document(unit, row)
            out = [doc]
            for m, legacy in await past_states(unit, doc.record_id, doc_id):
                if int(m["version_id"]) != doc.version_id:
                    out.append(await self._as_was(unit, doc, m, legacy))
            self._notify(unit, loaded, doc)
            return out

        return await self.ctx.read(operation)

    async def content(self, binary_id: str) -> ContentStream:
        """A document's content (ITI-68), or content its uploader reads back before naming it
        in a document."""

        async def operation(unit: Unit) -> ContentStream:
            rid = record_id_of(binary_id)
            if unit.pg:  # the facts, the documents, their content and first chunk at once
                loaded, rows = await self.ctx.facts.load_pg_rows(
                    unit, PG_CONTENT, rid, None, binary_id
                )
                docs = [DocumentRow(Prefixed(m)) for m in rows if m["d_doc_id"] is not None]
                if docs:
                    return await self._content(unit, binary_id, loaded, docs, None, True)
            else:
                docs = await by_binary(unit, rid, binary_id)
            uploaded = await binary(unit, rid, binary_id) if not docs else None
            if not docs and uploaded is None:  # traced as a refused read is (facts read too)
                if not unit.pg:
                    await self.ctx.facts.load(unit, rid)
                self.guard.trace(
                    unit,
                    Action.DOCUMENT_READ,
                    self.guard.allows(Action.DOCUMENT_READ, None),
                    record_id=None,
                    detail=details.content(binary_id),
                )
                raise NotFound(NOT_FOUND)
            loaded = await self.ctx.facts.load(unit, rid)
            return await self._content(unit, binary_id, loaded, docs, uploaded, False)

        return await self.ctx.read(operation)

    async def _content(
        self,
        unit: Unit,
        binary_id: str,
        loaded: LoadedRecord | None,
        docs: list[DocumentRow],
        uploaded: BinaryRow | None,
        prefetched: bool,
    ) -> ContentStream:
        """One ``document.read`` decided and traced on the content's documents (the first the
        actor may read stands), or on the upload; then the content's stream."""
        rid = record_id_of(binary_id)
        facts = loaded.facts if loaded else None
        allowed: DocumentRow | None = None
        decision: Decision | None = None
        for row in docs:
            decision = self.guard.allows(Action.DOCUMENT_READ, facts, row.facts)
            if decision:
                allowed = row
                break
        if uploaded is not None:
            decision = self.guard.allows(
                Action.DOCUMENT_READ,
                facts,
                upload=UploadFacts(by_actor=uploaded.created_by == self.actor.id, attached=False),
            )
        assert decision is not None
        self.guard.trace(
            unit,
            Action.DOCUMENT_READ,
            decision,
            record_id=rid if loaded else None,
            doc_id=allowed.doc_id if allowed else (docs[0].doc_id if docs else None),
            detail=details.content(binary_id),
        )
        if not decision or loaded is None:
            if docs and uploaded is None:  # a miss looks for staged content: the same work
                await binary(unit, rid, binary_id)
            raise NotFound(NOT_FOUND)
        first: bytes | None = None
        if allowed is not None:
            if prefetched:
                content, first = prefetched_content(allowed)
            else:
                content = (await contents_of(unit, rid, [allowed.m["sha256"]])).get(
                    allowed.m["sha256"]
                )
            content_type = str(allowed.m["content_type"])
            self._notify(unit, loaded, allowed.stored(None))
        else:
            assert uploaded is not None
            content = uploaded.content
            content_type = uploaded.content_type
        if content is None:
            raise NotFound(NOT_FOUND)
        info = ContentInfo(binary_id, content.size, content.sha256, content.sha1, content_type)
        if first is None and content.store == "db":
            first = await first_chunk(unit, rid, content.blob_id)
        return self.ctx.stream(
            info, rid, content.blob_id, content.store, await unit.key(rid), first
        )
