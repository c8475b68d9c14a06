"""Documents (dmp.md §3, §4, §6; DMP TD2.1 to TD3.3): publish, upload, read, search, change.

One facade over the modules that do each: publish.py (add and replace), upload.py (content
before its metadata), reading.py
(read, versions, content), search.py (documents and submission sets), update.py (metadata
changes). Every operation takes and returns domain types (carnet.domain.documents).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime

from carnet.access.context import ContentStream, Context
from carnet.access.documents.publish import Publisher
from carnet.access.documents.reading import Reader
from carnet.access.documents.search import Searcher
from carnet.access.documents.update import Updater
from carnet.access.documents.upload import Uploader
from carnet.domain.documents import (
    DocumentChange,
    DocumentPage,
    Published,
    StoredDocument,
    StoredList,
    Submission,
)
from carnet.domain.search import DocumentCriteria, ListCriteria


class DocumentService:
    def __init__(self, ctx: Context) -> None:
        self._publisher = Publisher(ctx)
        self._reader = Reader(ctx)
        self._searcher = Searcher(ctx)
        self._updater = Updater(ctx)
        self._uploader = Uploader(ctx)

    async def publish(self, submission: Submission) -> Published:
        """Add documents (and replace others) for one patient: all of them or none."""
        return await self._publisher.publish(submission)

    async def upload(
        self, record_id: str, content_type: str, chunks: AsyncIterator[bytes]
    ) -> tuple[str, int]:
        """Store content before its metadata (streamed); its binary id and size."""
        return await self._uploader.upload(record_id, content_type, chunks)

    async def read(self, doc_id: str, version: int | None = None) -> StoredDocument:
        return await self._reader.read(doc_id, version)

    async def history(self, doc_id: str) -> list[StoredDocument]:
        return await self._reader.history(doc_id)

    async def content(self, binary_id: str) -> ContentStream:
        return await self._reader.content(binary_id)

    async def search(self, criteria: DocumentCriteria) -> DocumentPage:
        return await self._searcher.search(criteria)

    async def lists(
        self, criteria: ListCriteria
    ) -> tuple[list[StoredList], int, tuple[datetime, str] | None]:
        """ITI-66: submission sets and folders."""
        return await self._searcher.lists(criteria)

    async def update(
        self,
        doc_id: str,
        change_of: Callable[[StoredDocument], DocumentChange],
        expected_version: int | None = None,
    ) -> StoredDocument:
        return await self._updater.update(doc_id, change_of, expected_version)
