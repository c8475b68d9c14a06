"""GET /fhir/Binary/{id}: IHE MHD ITI-68 Retrieve Document (https://profiles.ihe.net/ITI/MHD/ITI-68.html;
DMP TD3.2). The content is streamed as stored, with its own Content-Type and an ETag (its
SHA-256); byte ranges (RFC 9110 §14) are served by decrypting only the chunks they touch.
A client asking for FHIR JSON gets a Binary resource instead (FHIR R4 Binary read)."""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from carnet.access.documents import ContentHandle
from carnet.fhir.context import scope_of, services_of
from carnet.fhir.outcome import outcome_response
from carnet.fhir.wire import fhir_response
from carnet.services import Services

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _stream(services: Services, h: ContentHandle, start: int, end: int) -> AsyncIterator[bytes]:
    async def gen() -> AsyncIterator[bytes]:
        reader = services.content.read(h.record_id, h.blob_id, h.key, h.size, start, end)
        while True:
            chunk = await asyncio.to_thread(next, reader, None)
            if chunk is None:
                return
            yield chunk

    return gen()


def _none_match(header: str | None, tag: str) -> bool:
    """If-None-Match (RFC 9110 §13.1.2): ``*`` or a list of tags, compared weakly."""
    if header is None:
        return False
    if header.strip() == "*":
        return True
    return any(t.strip().removeprefix("W/") == tag for t in header.split(","))


async def retrieve(request: Request) -> Response:
    scope = await scope_of(request)
    services = services_of(request)
    handle = await scope.open_content(request.path_params["id"])
    tag = f'"{handle.sha256}"'
    accept = request.headers.get("accept", "")
    if "application/fhir+json" in accept or request.query_params.get("_format") == "json":
        data = services.content.read_all(handle.record_id, handle.blob_id, handle.key, handle.size)
        return fhir_response(
            {
                "resourceType": "Binary",
                "id": request.path_params["id"],
                "contentType": handle.content_type,
                "data": base64.b64encode(data).decode(),
            },
            headers={"ETag": tag},
        )
    if _none_match(request.headers.get("if-none-match"), tag):
        return Response(status_code=304, headers={"ETag": tag})
    headers = {"ETag": tag, "Accept-Ranges": "bytes", "Cache-Control": "private, no-store"}
    range_header = request.headers.get("range")
    if range_header and request.headers.get("if-range", tag) == tag:
        m = _RANGE.match(range_header.strip())
        if m is None or (not m[1] and not m[2]):
            return outcome_response(
                416,
                "invalid",
                f"Range {range_header!r} is not bytes=a-b",
                headers={"Content-Range": f"bytes */{handle.size}"},
            )
        if m[1]:
            start = int(m[1])
            end = min(int(m[2]) + 1, handle.size) if m[2] else handle.size
        else:
            start = max(handle.size - int(m[2]), 0)
            end = handle.size
        if start >= handle.size or end <= start:
            return outcome_response(
                416,
                "invalid",
                f"Range {range_header!r} is outside 0-{handle.size - 1}",
                headers={"Content-Range": f"bytes */{handle.size}"},
            )
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{handle.size}"
        headers["Content-Length"] = str(end - start)
        return StreamingResponse(
            _stream(services, handle, start, end),
            status_code=206,
            media_type=handle.content_type,
            headers=headers,
        )
    headers["Content-Length"] = str(handle.size)
    return StreamingResponse(
        _stream(services, handle, 0, handle.size), media_type=handle.content_type, headers=headers
    )
