"""Changing a stored document's metadata (dmp.md §4; DMP TD3.3a–d): its author deletes it
(status deleted), archives it, sets or lifts ``INVISIBLE_PATIENT`` and
``INVISIBLE_REPRESENTANTS_LEGAUX``; the patient masks or unmasks it (``MASQUE_PS``). Each kind of
change is its own decision. Which fields an interface lets a client change, and how they are
read from its request, is the interface's business: it hands a function from the stored
document to the :class:`~carnet.domain.documents.DocumentChange` it asks for."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from carnet.access.context import Context
from carnet.access.documents.repository import (
    by_id,
    history_row,
    labels_text,
    open_document,
    record_id_of,
)
from carnet.access.guard import NOT_FOUND
from carnet.access.unit_of_work import Unit
from carnet.domain.actions import Action
from carnet.domain.documents import (
    MASKED,
    DocumentChange,
    DocumentState,
    DocumentStatus,
    StoredDocument,
    check_labels,
)
from carnet.domain.errors import NotFound, Stale
from carnet.store.batch import Check, Insert, Update
from carnet.store.tables import document_history, documents, records


class Updater:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.guard = ctx.guard

    async def update(
        self,
        doc_id: str,
        change_of: Callable[[StoredDocument], DocumentChange],
        expected_version: int | None = None,
    ) -> StoredDocument:
        async def operation(unit: Unit) -> StoredDocument:
            row = await by_id(unit, doc_id)
            loaded = await self.ctx.facts.load(unit, row.record_id if row else record_id_of(doc_id))
            if row is None:  # traced as a refusal is: the two look alike to the caller
                self.guard.trace(
                    unit,
                    Action.DOCUMENT_UPDATE,
                    self.guard.allows(Action.DOCUMENT_READ, None),
                    record_id=None,
                    doc_id=doc_id,
                )
                raise NotFound(NOT_FOUND)
            facts = loaded.facts if loaded else None
            self.guard.require_visible(
                unit, Action.DOCUMENT_UPDATE, Action.DOCUMENT_READ, facts, row.facts
            )
            assert loaded is not None
            doc = await open_document(unit, row)
            if expected_version is not None and expected_version != doc.version_id:
                raise Stale(
                    f"the document is at version {doc.version_id}, not {expected_version}",
                    field="version",
                )
            change = change_of(doc)
            status = change.status or doc.status
            archived = doc.archived if change.archived is None else change.archived
            labels = doc.labels if change.labels is None else frozenset(change.labels)
            check_labels(labels, "document.confidentiality")
            wanted: list[tuple[Action, str]] = []
            if MASKED in labels ^ doc.labels:
                wanted.append((Action.DOCUMENT_MASK, "mask" if MASKED in labels else "unmask"))
            by_author = []
            if status != doc.status:
                by_author.append(f"status={status.value}")
            if archived != doc.archived:
                by_author.append("archive" if archived else "unarchive")
            if (labels ^ doc.labels) - {MASKED}:
                by_author.append("labels " + " ".join(sorted(labels - {MASKED})))
            if by_author:
                wanted.append((Action.DOCUMENT_UPDATE, ", ".join(by_author)))
            if not wanted:
                return doc
            for action, what in wanted:
                self.guard.check(unit, action, facts, row.facts, detail=what, hide=False)
            now = self.ctx.now()
            state = DocumentState(doc.version_id + 1, status, labels, archived, now)
            unit.add(
                Update(
                    documents,
                    where={
                        "record_id": doc.record_id,
                        "doc_id": doc_id,
                        "version_id": doc.version_id,
                    },
                    values={
                        "status": status.value,
                        "archived": archived,
                        "version_id": state.version_id,
                        "last_updated": now,
                        "security_labels": labels_text(labels),
                    },
                )
            )
            unit.add(Insert(document_history, [history_row(doc)]))
            unit.add(
                Check(records, {"record_id": doc.record_id, "rules_version": loaded.rules_version})
            )
            return replace(doc, state=state)

        return await self.ctx.write(operation)


__all__ = ["DocumentStatus", "Updater"]
