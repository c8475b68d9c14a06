"""Content uploaded before its metadata (a raw FHIR Binary, streamed): stored encrypted for a
record, named by a document later (``binary.attach``, publish.py). Deciding ``binary.create``
before the stream is read, and again with what was stored."""

from __future__ import annotations

from collections.abc import AsyncIterator

from carnet.access.context import Context
from carnet.access.documents.repository import contents_of
from carnet.access.guard import NOT_FOUND
from carnet.access.unit_of_work import Unit
from carnet.domain import trace_view as details
from carnet.domain.actions import Action
from carnet.domain.clock import new_id
from carnet.domain.errors import NotFound, Refused, TooLarge
from carnet.store.batch import Check, Insert
from carnet.store.tables import binaries, contents, records


class Uploader:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.actor = ctx.actor
        self.guard = ctx.guard

    async def upload(
        self, record_id: str, content_type: str, chunks: AsyncIterator[bytes]
    ) -> tuple[str, int]:
        """Stream raw content into the store for a later document; (binary id, size)."""

        async def check(unit: Unit) -> None:
            """Refuse before reading the stream; the decision is traced when it is stored."""
            loaded = await self.ctx.facts.load(unit, record_id)
            decision = self.guard.allows(Action.BINARY_CREATE, loaded.facts if loaded else None)
            if not decision:
                self.guard.trace(
                    unit, Action.BINARY_CREATE, decision, record_id=record_id if loaded else None
                )
                raise (
                    NotFound(NOT_FOUND)
                    if loaded is None
                    else Refused(f"not allowed: {decision.reason}")
                )

        self.ctx.limits.check_media_type(content_type, "content.content_type")
        await self.ctx.read(check)
        upload = await self.ctx.upload(record_id)
        limit = self.ctx.limits.max_upload_bytes
        try:
            async for chunk in chunks:
                if upload.size + len(chunk) > limit:
                    raise TooLarge(f"content exceeds the {limit}-byte limit", field="content")
                await upload.write(chunk)
            staged = await upload.finish()
        except BaseException:
            await upload.abort()
            raise
        binary_id = f"{record_id}-{new_id()[:20]}"

        async def store(unit: Unit) -> bool:
            """Name the uploaded content; True if it is new to the record (kept)."""
            loaded = await self.ctx.facts.load(unit, record_id)
            self.guard.check(
                unit,
                Action.BINARY_CREATE,
                loaded.facts if loaded else None,
                record_id=record_id,
                detail=details.binary(binary_id, staged.info.size),
                hide=loaded is None,
            )
            assert loaded is not None
            now = self.ctx.now()
            found = await contents_of(unit, record_id, [staged.info.sha256])
            new = staged.info.sha256 not in found
            if new:
                unit.add(
                    Insert(
                        contents,
                        [
                            {
                                "record_id": record_id,
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
            unit.add(
                Insert(
                    binaries,
                    [
                        {
                            "record_id": record_id,
                            "binary_id": binary_id,
                            "sha256": staged.info.sha256,
                            "content_type": content_type,
                            "created_by": self.actor.id,
                            "created_at": now,
                        }
                    ],
                )
            )
            unit.add(
                Check(records, {"record_id": record_id, "rules_version": loaded.rules_version})
            )
            return new

        try:
            kept = await self.ctx.write(store)
        except BaseException:
            await self.ctx.settle(staged, keep=False)
            raise
        await self.ctx.settle(staged, keep=kept)
        return binary_id, staged.info.size
