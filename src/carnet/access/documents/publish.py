"""Adding and replacing documents (dmp.md §4 and §6; DMP TD2.1, TD2.2), whatever interface
brought them: a submission of one or more documents for one patient, all of it or nothing.

Each document is completed from its CDA header where it is one (cda/metadata.py), validated,
decided (``document.create``, and ``document.replace`` for the document it replaces, and
``binary.attach`` for content uploaded before), its content encrypted with the record's key,
and everything (metadata, content, submission set, traces, notifications) committed in one
write that checks the record's facts are still those decided on (access/unit_of_work.py).

The same uniqueId with the same content is the same document: stored once, answered again.
With other content, it is refused (XDSDuplicateUniqueIdInRegistry).
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import select

from carnet.access.context import Context
from carnet.access.documents.repository import (
    FACT_COLUMNS,
    BinaryRow,
    ContentRow,
    Known,
    Prior,
    author_rows,
    binary,
    by_id,
    event_rows,
    facts_of_row,
    history_row,
    labels_text,
    load_publish_facts,
    person_names,
    record_id_of,
    related_rows,
    seal_document,
)
from carnet.access.facts import LoadedRecord
from carnet.access.policy import Decision, DocumentFacts, DuplicateFacts, UploadFacts
from carnet.access.unit_of_work import Unit
from carnet.cda.metadata import complete_from_cda
from carnet.domain import trace_view as details
from carnet.domain.actions import Action
from carnet.domain.actors import ActorKind
from carnet.domain.clock import new_id
from carnet.domain.content import InlineContent, UploadedContent
from carnet.domain.documents import (
    DocumentStatus,
    NewDocument,
    Published,
    PublishedDocument,
    Submission,
    SubmissionSetInput,
    new_entry_uuid,
)
from carnet.domain.errors import (
    Conflict,
    CoreError,
    NotFound,
    Reason,
    Refused,
    Rejected,
)
from carnet.domain.ins import names_an_ins
from carnet.domain.notifications import new_document_notices
from carnet.domain.professionals import same_professional_id
from carnet.domain.records import RecordState
from carnet.store.batch import Check, Insert, Update
from carnet.store.content import StagedBlob
from carnet.store.envelope import pack
from carnet.store.tables import (
    contents,
    document_authors,
    document_events,
    document_history,
    document_related,
    documents,
    folder_documents,
    folders,
    record_professionals,
    records,
    submission_sets,
)

UNIQUE_ID_USED = "the uniqueId is already used by another document (XDSDuplicateUniqueIdInRegistry)"
SET_UNIQUE_ID_USED = "the submission set's uniqueId was already used for other documents"
NOT_REPLACEABLE = (
    "the document replaced is not one of this patient's record that you may replace "
    "(only its author replaces a document)"
)
NO_RECORD = "no record for this patient: open it first (with the patient's consent)"
ENTRY_UUID_USED = "the entryUUID is already used by another document of this patient"
FOLDER_UNIQUE_ID_USED = "the folder's uniqueId is already used by a folder you may not change"
NOT_FILEABLE = (
    "a folder's entry names no document of this submission nor a document of this patient's "
    "record that you may read"
)


@dataclass(slots=True)
class _Content:
    """Where a new document's content is: staged now, stored before, or uploaded before."""

    sha256: str
    sha1: bytes
    size: int
    content_type: str
    binary_id: str | None = None  # an uploaded Binary it names
    staged: StagedBlob | None = None


OFF_LOOP_BYTES = 256 * 1024
"""Submissions with more inline content than this are read (CDA headers, hashes) in a thread."""


class Publisher:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.actor = ctx.actor
        self.guard = ctx.guard

    async def publish(self, submission: Submission) -> Published:
        # what needs no store, once (the write below may run again on fresh facts): each entry
        # completed from its CDA header and validated, the content hashed; in a thread when the
        # content is large, so that other requests do not wait for it
        size = sum(
            len(d.content.data)
            for d in submission.documents
            if isinstance(d.content, InlineContent)
        )
        if size > OFF_LOOP_BYTES:
            completed, hashes = await asyncio.to_thread(self._prepare, submission)
        else:
            completed, hashes = self._prepare(submission)
        return await self.ctx.write(lambda unit: self._publish(unit, submission, completed, hashes))

    def _prepare(self, submission: Submission) -> tuple[set[str], dict[str, str]]:
        """(keys of the documents the core completed, SHA-256 of each inline content)."""
        completed: set[str] = set()
        for index, doc in enumerate(submission.documents):
            try:
                if self._complete(doc):
                    completed.add(doc.key)
                doc.entry.validate()
            except CoreError as exc:
                if len(submission.documents) > 1:
                    exc.at(f"documents[{index}]")
                raise
        _same_unique_ids(submission)
        hashes = {
            d.key: hashlib.sha256(d.content.data).hexdigest()
            for d in submission.documents
            if isinstance(d.content, InlineContent)
        }
        return completed, hashes

    async def _publish(
        self, unit: Unit, sub: Submission, completed: set[str], hashes: dict[str, str]
    ) -> Published:
        # one read: the record's facts, and what of this submission is stored already
        loaded, known = await self._load(unit, sub, set(hashes.values()))
        record = loaded.record
        rid = record.record_id
        record.identity.require_qualified(
            "a record whose INS is not qualified is not fed", traits=False
        )
        decisions: list[Decision] = []
        for index, doc in enumerate(sub.documents):
            try:
                self._same_patient(loaded, doc)
            except CoreError as exc:
                if len(sub.documents) > 1:
                    exc.at(f"documents[{index}]")
                raise
            decision = self.guard.allows(Action.DOCUMENT_CREATE, loaded.facts, _new_facts(doc))
            if not decision:
                self.guard.trace(unit, Action.DOCUMENT_CREATE, decision, record_id=rid)
                raise Refused(f"not allowed: {decision.reason}")
            decisions.append(decision)  # traced below, naming the document
        now = self.ctx.now()
        prior = known.prior
        contents_here: dict[str, ContentRow] = {}
        published: list[PublishedDocument] = []
        replaced: list[tuple[str, int]] = []
        new_docs: list[tuple[NewDocument, str]] = []
        rows: list[dict[str, object]] = []  # written once the submission set is known
        authors: list[dict[str, Any]] = []
        uuids_used = await self._entry_uuids_used(unit, rid, sub)
        events: list[dict[str, Any]] = []
        related: list[dict[str, Any]] = []
        for index, doc in enumerate(sub.documents):
            where = f"documents[{index}]" if len(sub.documents) > 1 else None
            content = await self._content(unit, loaded, doc, where, hashes.get(doc.key))
            doc.entry.hash_sha1, doc.entry.size = content.sha1, content.size
            old = prior.get(doc.entry.unique_id or "")
            if old is not None:
                published.append(self._duplicate(unit, loaded, doc, old, content))
                continue
            doc_id = f"{rid}-{new_id()[:20]}"
            if doc.entry.entry_uuid is None:
                doc.entry.entry_uuid = new_entry_uuid()
            elif doc.entry.entry_uuid in uuids_used:
                clash = Conflict(
                    ENTRY_UUID_USED, field="document.entry_uuid", reason=Reason.DUPLICATE
                )
                raise clash.at(where) if where else clash
            uuids_used.add(doc.entry.entry_uuid)
            if content.staged is not None:
                if content.sha256 in known.contents or content.sha256 in contents_here:
                    content.staged = None  # the same content is stored once per record
                else:
                    contents_here[content.sha256] = self._store_content(unit, rid, content, now)
            replaces = None
            if doc.entry.replaces:
                replaces = await self._supersede(unit, loaded, doc.entry.replaces, replaced)
            binary_id = content.binary_id or doc_id
            rows.append(
                {
                    "record_id": rid,
                    "doc_id": doc_id,
                    "unique_id": doc.entry.unique_id,
                    "version_id": 1,
                    "status": DocumentStatus.CURRENT.value,
                    "archived": False,
                    "class_code": doc.entry.class_code,
                    "type_system": doc.entry.type_system,
                    "type_code": doc.entry.type_code,
                    "date": doc.entry.date or doc.entry.creation_time or now,
                    "period_start": doc.entry.service_start,
                    "period_end": doc.entry.service_stop,
                    "facility_code": doc.entry.facility_code,
                    "setting_code": doc.entry.setting_code,
                    "format_code": doc.entry.format_code,
                    "content_type": content.content_type,
                    "security_labels": labels_text(doc.entry.confidentiality),
                    "author_id": self._author_of(doc),
                    "submission_set_id": None,
                    "replaces_id": replaces,
                    "entry_uuid": doc.entry.entry_uuid,
                    "binary_id": binary_id,
                    "sha256": content.sha256,
                    "size": content.size,
                    "created_at": now,
                    "last_updated": now,
                    "resource": await seal_document(unit, rid, doc.entry, doc.source),
                    "creation_time": doc.entry.creation_time,
                }
            )
            authors += author_rows(rid, doc_id, doc.entry)
            events += event_rows(rid, doc_id, doc.entry)
            related += related_rows(rid, doc_id, doc.entry)
            self.guard.trace(
                unit,
                Action.DOCUMENT_CREATE,
                decisions[index],
                record_id=rid,
                doc_id=doc_id,
                detail=details.replaces(replaces) if replaces else None,
            )
            for row in new_document_notices(
                self.actor,
                rid,
                loaded.patient_id,
                loaded.preferences,
                doc_id,
                doc.entry.title,
                labels=doc.entry.confidentiality,
                now=now,
            ):
                unit.notice(row)
            published.append(PublishedDocument(doc.key, doc_id, 1, True, now, binary_id))
            new_docs.append((doc, doc_id))
        set_id = await self._submission_set(unit, loaded, known, sub.submission_set, published, now)
        for row in rows:
            row["submission_set_id"] = set_id
        unit.add(Insert(documents, rows))
        unit.add(Insert(document_authors, authors))
        filed = await self._folders(unit, loaded, sub, published, now)
        unit.add(Insert(document_events, events))
        unit.add(Insert(document_related, related))
        if self.actor.kind is ActorKind.PROFESSIONAL and new_docs:
            unit.add(
                Insert(
                    record_professionals,
                    [
                        {
                            "record_id": rid,
                            "professional_id": self.actor.id,
                            "relation": "fed",
                            "first_at": now,
                        }
                    ],
                    ignore_conflicts=True,
                )
            )
        # the facts decided on must still hold when this commits
        unit.add(Check(records, {"record_id": rid, "rules_version": loaded.rules_version}))
        return Published(rid, set_id, published, replaced, filed)

    # -- steps ------------------------------------------------------------------------------------
    async def _load(
        self, unit: Unit, sub: Submission, sha256s: set[str]
    ) -> tuple[LoadedRecord, Known]:
        unique_ids = sorted({d.entry.unique_id for d in sub.documents if d.entry.unique_id})
        set_uid = sub.submission_set.unique_id if sub.submission_set else None

        def check(loaded: LoadedRecord | None) -> None:
            # a record the actor may not know of (another person's, to a patient; a closed
            # one, to a representative) is answered as a missing one, its refusal traced alike
            facts = loaded.facts if loaded is not None else None
            if facts is not None and facts.state is RecordState.DESTROYED:
                facts = None
            seen = self.guard.allows(Action.RECORD_STATUS, facts)
            if not seen:
                self.guard.trace(
                    unit,
                    Action.DOCUMENT_CREATE,
                    seen,
                    record_id=facts.record_id if facts else None,
                )
                raise NotFound(NO_RECORD, field="submission.patient")

        return await load_publish_facts(
            unit, self.ctx.facts, sub.patient, unique_ids, sorted(sha256s), set_uid, check
        )

    def _complete(self, doc: NewDocument) -> bool:
        """Complete the entry from the content's CDA header; whether anything was filled."""
        if isinstance(doc.content, InlineContent):
            return bool(complete_from_cda(doc.entry, doc.content.data, doc.content.content_type))
        return False

    def _same_patient(self, loaded: LoadedRecord, doc: NewDocument) -> None:
        ins = loaded.record.identity.ins
        entry = doc.entry
        if entry.patient_value == loaded.record_id and not entry.patient_system:
            return  # named by the record's id: this very record
        if entry.patient_value and (
            entry.patient_value.upper() != ins.value or not names_an_ins(entry.patient_system)
        ):
            raise Rejected(
                "the document is for another patient than the submission",
                field="document.patient",
                reason=Reason.MISMATCH,
            )

    def _author_of(self, doc: NewDocument) -> str:
        """Who the rules treat as the document's author: the patient for what a patient (or a
        representative) adds; otherwise the author named in the metadata (a system may submit
        for the professional who wrote it)."""
        if self.actor.kind is ActorKind.PATIENT:
            return self.actor.id
        rpps = doc.entry.author_rpps()
        return same_professional_id(rpps) if rpps else self.actor.id

    async def _content(
        self,
        unit: Unit,
        loaded: LoadedRecord,
        doc: NewDocument,
        where: str | None,
        sha256: str | None,
    ) -> _Content:
        entry = doc.entry
        try:
            if isinstance(doc.content, UploadedContent):
                return await self._uploaded(unit, loaded, doc.content.binary_id, doc)
            data = doc.content
            declared = data.content_type
            if declared and entry.content_type and _media(declared) != _media(entry.content_type):
                raise Rejected(
                    f"the content's media type {declared!r} contradicts the document's "
                    f"{entry.content_type!r}",
                    field="content.content_type",
                    reason=Reason.MISMATCH,
                )
            if entry.size is not None and entry.size != len(data.data):
                raise Rejected(
                    f"the content has {len(data.data)} bytes but the document says {entry.size}",
                    field="document.size",
                    reason=Reason.MISMATCH,
                )
            self.ctx.limits.check_media_type(
                entry.content_type or declared or "", "document.content_type"
            )
            staged = await unit.stage(loaded.record_id, data.data, sha256)
            if entry.hash_sha1 is not None and entry.hash_sha1 != staged.info.sha1:
                raise Rejected(
                    f"the content's SHA-1 is {staged.info.sha1.hex()} but the document says "
                    f"{entry.hash_sha1.hex()}",
                    field="document.hash",
                    reason=Reason.MISMATCH,
                )
            return _Content(
                staged.info.sha256,
                staged.info.sha1,
                staged.info.size,
                entry.content_type or declared or "application/octet-stream",
                staged=staged,
            )
        except CoreError as exc:
            if where:
                exc.at(where)
            raise

    async def _uploaded(
        self, unit: Unit, loaded: LoadedRecord, binary_id: str, doc: NewDocument
    ) -> _Content:
        found: BinaryRow | None = await binary(unit, loaded.record_id, binary_id)
        decision = self.guard.allows(
            Action.BINARY_ATTACH,
            loaded.facts,
            upload=UploadFacts(
                by_actor=found is not None and found.created_by == self.actor.id, attached=False
            ),
        )
        self.guard.trace(
            unit,
            Action.BINARY_ATTACH,
            decision,
            record_id=loaded.record_id,
            detail=details.binary(binary_id),
        )
        if found is None or not decision:
            raise Rejected(
                f"Binary/{binary_id} is not content you uploaded for this patient",
                field="content.binary",
                reason=Reason.NOT_FOUND,
            )
        self.ctx.limits.check_media_type(found.content_type, "content.content_type")
        entry = doc.entry
        if entry.size is not None and entry.size != found.content.size:
            raise Rejected(
                f"Binary/{binary_id} has {found.content.size} bytes, the document says "
                f"{entry.size}",
                field="document.size",
                reason=Reason.MISMATCH,
            )
        if entry.hash_sha1 is not None and entry.hash_sha1 != found.content.sha1:
            raise Rejected(
                f"Binary/{binary_id}'s SHA-1 contradicts the document's hash",
                field="document.hash",
                reason=Reason.MISMATCH,
            )
        return _Content(
            found.sha256, found.content.sha1, found.content.size, found.content_type, binary_id
        )

    def _store_content(self, unit: Unit, rid: str, content: _Content, now: object) -> ContentRow:
        staged = content.staged
        assert staged is not None
        unit.add(
            Insert(
                contents,
                [
                    {
                        "record_id": rid,
                        "sha256": staged.info.sha256,
                        "blob_id": staged.info.blob_id,
                        "size": staged.info.size,
                        "sha1": staged.info.sha1,
                        "created_at": now,
                        "store": staged.store,
                    }
                ],
            )
        )
        unit.keep_content(staged)
        return ContentRow(
            staged.info.sha256,
            staged.info.blob_id,
            staged.info.size,
            staged.info.sha1,
            staged.store,
        )

    def _duplicate(
        self,
        unit: Unit,
        loaded: LoadedRecord,
        doc: NewDocument,
        old: Prior,
        content: _Content,
    ) -> PublishedDocument:
        """The same uniqueId again: the same document if the actor may read the stored one and
        the content is the same; otherwise one refusal that names no document and is the same
        whatever the stored document is (policy.py, ``_decide_duplicate``)."""
        content.staged = None
        decision = self.guard.allows(
            Action.DOCUMENT_CREATE,
            loaded.facts,
            _new_facts(doc),
            duplicate=DuplicateFacts(old.facts, same_content=old.sha256 == content.sha256),
        )
        self.guard.trace(
            unit,
            Action.DOCUMENT_CREATE,
            decision,
            record_id=loaded.record_id,
            doc_id=old.doc_id if decision else None,
            detail="duplicate uniqueId: already stored" if decision else "duplicate uniqueId",
        )
        if not decision:
            raise Conflict(UNIQUE_ID_USED, field="document.unique_id", reason=Reason.DUPLICATE)
        return PublishedDocument(
            doc.key, old.doc_id, old.version_id, False, old.last_updated, old.binary_id
        )

    async def _supersede(
        self, unit: Unit, loaded: LoadedRecord, target_id: str, replaced: list[tuple[str, int]]
    ) -> str:
        # one decision, one answer: a missing document, one of another record, one the actor
        # may not read and one they read but did not author are refused alike (nothing tells
        # them apart)
        rid = loaded.record_id
        found = await by_id(unit, target_id)
        target = found if found is not None and found.record_id == rid else None
        decision = self.guard.allows(
            Action.DOCUMENT_REPLACE, loaded.facts, target.facts if target else None
        )
        self.guard.trace(
            unit,
            Action.DOCUMENT_REPLACE,
            decision,
            record_id=rid,
            doc_id=target_id if record_id_of(target_id) == rid else None,
        )
        if not decision or target is None:
            raise Rejected(NOT_REPLACEABLE, field="document.replaces", reason=Reason.NOT_FOUND)
        if target.m["status"] != DocumentStatus.CURRENT.value:
            raise Conflict(
                f"the document replaced ({target_id}) is {target.m['status']}: only a current "
                "document can be replaced",
                field="document.replaces",
                reason=Reason.STATE,
            )
        now = self.ctx.now()
        version = int(target.m["version_id"])
        unit.add(
            Update(
                documents,
                where={"record_id": loaded.record_id, "doc_id": target_id, "version_id": version},
                values={
                    "status": DocumentStatus.SUPERSEDED.value,
                    "version_id": version + 1,
                    "last_updated": now,
                },
            )
        )
        unit.add(Insert(document_history, [history_row(target)]))
        replaced.append((target_id, version + 1))
        return target_id

    async def _submission_set(
        self,
        unit: Unit,
        loaded: LoadedRecord,
        known: Known,
        ss: SubmissionSetInput | None,
        published: list[PublishedDocument],
        now: datetime,
    ) -> str | None:
        if ss is None:
            return None
        rid = loaded.record_id
        created = any(d.created for d in published)
        if known.set_id is not None:
            # the same submission again (every document stored before, by that very set: the
            # actor may read them, or _duplicate refused) is answered with its set; a set
            # uniqueId used for anything else is refused without telling what it holds
            brought = {p.submission_set_id for p in known.prior.values()}
            if created or known.set_id not in brought:
                raise Conflict(
                    SET_UNIQUE_ID_USED, field="submission.unique_id", reason=Reason.DUPLICATE
                )
            return known.set_id
        if published and not created:
            # every document was stored before: answer with the set that brought the first one
            first = next((p for p in known.prior.values() if p.doc_id == published[0].doc_id), None)
            if first is not None and first.submission_set_id:
                return first.submission_set_id
        set_id = f"{rid}-{new_id()[:20]}"
        core: dict[str, Any] = {"documents": [d.doc_id for d in published]}
        if ss.title:
            core["title"] = ss.title  # sealed: a title may be clinical
        listed = orjson.dumps(core)
        unit.add(
            Insert(
                submission_sets,
                [
                    {
                        "record_id": rid,
                        "set_id": set_id,
                        "unique_id": ss.unique_id,
                        "source_id": ss.source_id,
                        "submission_time": ss.submission_time,
                        "author_id": ss.author_id,
                        "created_at": now,
                        "entry_uuid": ss.entry_uuid or new_entry_uuid(),
                        "resource": await unit.seal(rid, pack(listed, ss.source)),
                        "author_system": ss.author.system[:128] if ss.author else None,
                        **person_names(ss.author, "author_"),
                        "author_org_system": ss.author_org[0][:128] if ss.author_org else None,
                        "author_org_value": ss.author_org[1][:64] if ss.author_org else None,
                        "designation_system": (
                            ss.designation_type[0][:128] if ss.designation_type else None
                        ),
                        "designation_code": (
                            ss.designation_type[1][:64] if ss.designation_type else None
                        ),
                    }
                ],
            )
        )
        return set_id

    async def _entry_uuids_used(self, unit: Unit, rid: str, sub: Submission) -> set[str]:
        """The entryUUIDs the submission's documents carry that the record's documents use
        already (one query, only when some were sent)."""
        sent = sorted({d.entry.entry_uuid for d in sub.documents if d.entry.entry_uuid})
        if not sent:
            return set()
        # a document sent again (the same uniqueId) keeps its entryUUID: not a collision
        again = {d.entry.unique_id for d in sub.documents}
        rows = await unit.conn.execute(
            select(documents.c.entry_uuid, documents.c.unique_id).where(
                documents.c.record_id == rid, documents.c.entry_uuid.in_(sent)
            )
        )
        return {r.entry_uuid for r in rows if r.unique_id not in again}

    # -- folders (IHE MHD Folder; XDS Folder) --------------------------------------------------
    async def _folders(
        self,
        unit: Unit,
        loaded: LoadedRecord,
        sub: Submission,
        published: list[PublishedDocument],
        now: datetime,
    ) -> list[tuple[str, str, bool]]:
        """Store the submission's folders: new ones, and documents added to folders stored
        before (their uniqueId again: XDS only adds to a folder). A stored document is filed
        only by whoever may read it; a stored folder is changed only by whoever sees it (it
        files a document they may read): otherwise one answer each, whatever is stored."""
        if not sub.folders:
            return []
        rid = loaded.record_id
        by_key = {p.key: p.doc_id for p in published}
        s = folders.c
        stored = {
            r.unique_id: r.folder_id
            for r in await unit.conn.execute(
                select(s.unique_id, s.folder_id).where(
                    s.record_id == rid, s.unique_id.in_([f.unique_id for f in sub.folders])
                )
            )
        }
        out: list[tuple[str, str, bool]] = []
        links: list[dict[str, Any]] = []
        for index, folder in enumerate(sub.folders):
            where = f"folders[{index}]"
            doc_ids = [by_key[k] for k in folder.new_documents if k in by_key]
            doc_ids += [
                await self._fileable(unit, loaded, d, where) for d in folder.stored_documents
            ]
            folder_id = stored.get(folder.unique_id)
            created = folder_id is None
            if folder_id is None:
                folder_id = f"{rid}-{new_id()[:20]}"
                listed = orjson.dumps({"documents": doc_ids})
                unit.add(
                    Insert(
                        folders,
                        [
                            {
                                "record_id": rid,
                                "folder_id": folder_id,
                                "unique_id": folder.unique_id,
                                "entry_uuid": folder.entry_uuid or new_entry_uuid(),
                                "created_by": self.actor.id,
                                "created_at": now,
                                "last_updated": now,
                                "resource": await unit.seal(rid, pack(listed, folder.source)),
                            }
                        ],
                    )
                )
                stored[folder.unique_id] = folder_id
            else:
                await self._may_change_folder(unit, loaded, folder_id, where)
                unit.add(
                    Update(
                        folders,
                        where={"record_id": rid, "folder_id": folder_id},
                        values={"last_updated": now},
                    )
                )
            links += [
                {"record_id": rid, "folder_id": folder_id, "doc_id": d, "added_at": now}
                for d in dict.fromkeys(doc_ids)
            ]
            out.append((folder.key, folder_id, created))
        unit.add(Insert(folder_documents, links, ignore_conflicts=True))
        return out

    async def _fileable(self, unit: Unit, loaded: LoadedRecord, doc_id: str, where: str) -> str:
        """A stored document a folder files: one of this record the actor may read (the same
        decision a read takes, traced as a read traces it: reading.py ``_readable``); a missing
        one, one of another record and a refused one are refused alike."""
        rid = loaded.record_id
        found = await by_id(unit, doc_id)
        target = found if found is not None and found.record_id == rid else None
        if target is None:  # traced as a read of a missing document is
            decision = self.guard.allows(Action.DOCUMENT_READ, None)
            self.guard.trace(unit, Action.DOCUMENT_READ, decision, record_id=None, doc_id=doc_id)
        else:
            decision = self.guard.allows(Action.DOCUMENT_READ, loaded.facts, target.facts)
            self.guard.trace(
                unit,
                Action.DOCUMENT_READ,
                decision,
                record_id=rid,
                doc_id=doc_id,
                detail="filed in a folder" if decision else None,
            )
        if not decision or target is None:
            raise Rejected(NOT_FILEABLE, field=f"{where}.folder.entry", reason=Reason.NOT_FOUND)
        return doc_id

    async def _may_change_folder(
        self, unit: Unit, loaded: LoadedRecord, folder_id: str, where: str
    ) -> None:
        """A stored folder is changed only by whoever would be shown it: it files a document
        they may read (as ITI-66 shows it). Otherwise the refusal of a read of its documents is
        traced, naming nothing, and one fixed 409 answers."""
        d = documents.c
        rows = await unit.conn.execute(
            select(*FACT_COLUMNS).where(
                d.record_id == loaded.record_id,
                d.doc_id.in_(
                    select(folder_documents.c.doc_id).where(
                        folder_documents.c.record_id == loaded.record_id,
                        folder_documents.c.folder_id == folder_id,
                    )
                ),
            )
        )
        refusal = self.guard.allows(Action.DOCUMENT_READ, loaded.facts, None)
        for m in (r._mapping for r in rows):
            decision = self.guard.allows(Action.DOCUMENT_READ, loaded.facts, facts_of_row(m))
            if decision:
                return
            refusal = decision
        # the decision that refused: traced, naming neither the folder nor its documents
        self.guard.trace(unit, Action.DOCUMENT_READ, refusal, record_id=loaded.record_id)
        raise Conflict(
            FOLDER_UNIQUE_ID_USED, field=f"{where}.folder.unique_id", reason=Reason.DUPLICATE
        )


def _same_unique_ids(sub: Submission) -> None:
    """Two documents of one submission with one uniqueId: the same document sent twice is
    stored once; with other content it is refused (XDSDuplicateUniqueIdInRegistry)."""
    seen: dict[str, NewDocument] = {}
    for doc in sub.documents:
        uid = doc.entry.unique_id or ""
        first = seen.setdefault(uid, doc)
        if first is doc:
            continue
        same = (
            isinstance(first.content, InlineContent)
            and isinstance(doc.content, InlineContent)
            and first.content.data == doc.content.data
        )
        if not same:
            raise Conflict(
                f"uniqueId {uid} is used by two documents of this submission with other "
                "content (XDSDuplicateUniqueIdInRegistry)",
                field="document.unique_id",
                reason=Reason.DUPLICATE,
            )


def _new_facts(doc: NewDocument) -> DocumentFacts:
    """What the policy needs of a document about to be added."""
    return DocumentFacts(
        doc_id="",
        status=DocumentStatus.CURRENT,
        author_id=None,
        class_code=doc.entry.class_code,
        type_code=doc.entry.type_code,
    )


def _media(content_type: str) -> str:
    return content_type.split(";")[0].strip().lower()
