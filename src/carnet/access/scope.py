"""The scope: every operation of the core for one acting person, by concern.

``scope.records.open(...)``, ``scope.documents.publish(...)``, ``scope.traces.search(...)``:
each concern is a service of its own (access/<concern>/service.py) given the same narrow
context (the actor, the guard, the fact loader, the units of work); the scope only composes
them. An interface builds one scope per request (:meth:`carnet.access.core.Core.scope`) and
calls nothing else to reach records, documents, consents, representatives and traces.
"""

from __future__ import annotations

from functools import cached_property

from carnet.access.consents.service import ConsentService
from carnet.access.context import ContentStream, Context
from carnet.access.documents.service import DocumentService
from carnet.access.imports import ImportService
from carnet.access.lifecycle.service import LifecycleService
from carnet.access.records.service import RecordService
from carnet.access.representatives.service import RepresentativeService
from carnet.access.traces.service import TraceService
from carnet.domain.actors import Actor

__all__ = ["ContentStream", "Scope"]  # ContentStream: what scope.documents.content returns


class Scope:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    @property
    def actor(self) -> Actor:
        return self._ctx.actor

    @cached_property
    def records(self) -> RecordService:
        return RecordService(self._ctx)

    @cached_property
    def documents(self) -> DocumentService:
        return DocumentService(self._ctx)

    @cached_property
    def consents(self) -> ConsentService:
        return ConsentService(self._ctx)

    @cached_property
    def representatives(self) -> RepresentativeService:
        return RepresentativeService(self._ctx)

    @cached_property
    def traces(self) -> TraceService:
        return TraceService(self._ctx)

    @cached_property
    def imports(self) -> ImportService:
        """The operator's bulk import (``carnet demo --patients N``)."""
        return ImportService(self._ctx)

    @cached_property
    def lifecycle(self) -> LifecycleService:
        return LifecycleService(self._ctx)
