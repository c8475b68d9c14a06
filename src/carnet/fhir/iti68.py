"""GET /fhir/Binary/{id}: IHE MHD ITI-68 Retrieve Document (https://profiles.ihe.net/ITI/MHD/ITI-68.html;
DMP TD3.2). The content is streamed as stored, with its own Content-Type and an ETag (its
SHA-256); byte ranges (RFC 9110 §14) are served by decrypting only the chunks they touch.

A client asking for FHIR JSON gets a Binary resource instead, its ``data`` the base64 content
(FHIR R4 http.html#binary: "the server SHALL return a Binary resource" when the Accept header
names a FHIR type): ``_format=json`` (which overrides Accept), or an Accept whose best match
(q-values honoured, RFC 9110 §12.5.1) is ``application/fhir+json`` or ``application/json``
rather than the content's own type. A client that accepts only FHIR XML, or names another
``_format``, gets 406. Both representations carry the security headers and ``Vary: Accept``."""

from __future__ import annotations

import base64
import re

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from carnet.access.scope import ContentStream
from carnet.fhir.context import scope_of
from carnet.fhir.errors import NotAcceptable
from carnet.fhir.openapi import (
    ANY,
    FHIR_JSON,
    RAW,
    Header,
    Operation,
    Reply,
    outcome,
    ref,
)
from carnet.fhir.outcome import outcome_response
from carnet.fhir.search_spec import SearchParam
from carnet.fhir.wire import JSON_TYPES, best_of, fhir_response, format_asked, only_fhir_xml

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
WHOLE = 1024 * 1024
"""Content up to this size is sent as one body (most documents: a streamed response costs a task
and a send per chunk); larger content is streamed chunk by chunk."""


SAFE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "sandbox; default-src 'none'",
}
"""On every content response: the browser takes the Content-Type as given, and whatever it
renders runs in a sandbox with nothing loaded from anywhere (no script, style, image or frame)."""

INLINE_TYPES = frozenset({"application/pdf", "text/plain", "image/jpeg", "image/png", "image/tiff"})
"""Media types a browser shows without running anything: served inline. Anything else (HTML, SVG,
XML with its stylesheets, scripts, unknown types) is served as an attachment, to be saved."""


def content_headers(content_type: str, name: str) -> dict[str, str]:
    media = content_type.split(";")[0].strip().lower()
    disposition = "inline" if media in INLINE_TYPES else "attachment"
    safe_name = "".join(c for c in name if c.isalnum() or c in "-_.")[:100] or "content"
    return {**SAFE_HEADERS, "Content-Disposition": f'{disposition}; filename="{safe_name}"'}


def _none_match(header: str | None, tag: str) -> bool:
    """If-None-Match (RFC 9110 §13.1.2): ``*`` or a list of tags, compared weakly."""
    if header is None:
        return False
    if header.strip() == "*":
        return True
    return any(t.strip().removeprefix("W/") == tag for t in header.split(","))


def _wants_resource(request: Request, content_type: str) -> bool:
    """Whether to serve the Binary resource (FHIR JSON) rather than the raw content."""
    if format_asked(request) is not None:  # a JSON _format (406 otherwise, checked before)
        return True
    accept = request.headers.get("accept")
    if not accept:
        return False
    raw = content_type.split(";", 1)[0].strip().lower()
    offered = [t for t in JSON_TYPES if t != raw] + [raw]  # the content wins a tie
    best = best_of(offered, accept)
    return best is not None and best != raw


async def retrieve(request: Request) -> Response:
    scope = await scope_of(request)  # who asks first: 401 before anything else
    # what cannot be served is refused before the content is read (and its read traced)
    format_asked(request)
    if only_fhir_xml(request.headers.get("accept")):
        raise NotAcceptable(
            f"Accept {request.headers.get('accept')!r} cannot be served: the Binary resource "
            "is served as FHIR JSON (application/fhir+json), or the content as it is"
        )
    content = await scope.documents.content(request.path_params["id"])
    size = content.size
    tag = f'"{content.info.etag}"'
    if _wants_resource(request, content.info.content_type):
        # the same content, another representation: its validator is weak (RFC 9110 §8.8.1)
        weak = f"W/{tag}"
        headers = {
            "ETag": weak,
            "Vary": "Accept",
            "Cache-Control": "private, no-store",
            **SAFE_HEADERS,
        }
        if _none_match(request.headers.get("if-none-match"), tag):
            return Response(status_code=304, headers=headers)
        data = await content.read_all()
        return fhir_response(
            {
                "resourceType": "Binary",
                "id": request.path_params["id"],
                "contentType": content.info.content_type,
                "data": base64.b64encode(data).decode(),
            },
            headers=headers,
        )
    if _none_match(request.headers.get("if-none-match"), tag):
        return Response(status_code=304, headers={"ETag": tag, "Vary": "Accept", **SAFE_HEADERS})
    headers = {
        "ETag": tag,
        "Vary": "Accept",
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, no-store",
        **content_headers(content.info.content_type, request.path_params["id"]),
    }
    range_header = request.headers.get("range")
    if range_header and request.headers.get("if-range", tag) == tag:
        m = _RANGE.match(range_header.strip())
        if m is None or (not m[1] and not m[2]):
            return outcome_response(
                416,
                "invalid",
                f"Range {range_header!r} is not bytes=a-b",
                headers={"Content-Range": f"bytes */{size}"},
            )
        if m[1]:
            start = int(m[1])
            end = min(int(m[2]) + 1, size) if m[2] else size
        else:
            start = max(size - int(m[2]), 0)
            end = size
        if start >= size or end <= start:
            return outcome_response(
                416,
                "invalid",
                f"Range {range_header!r} is outside 0-{size - 1}",
                headers={"Content-Range": f"bytes */{size}"},
            )
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        return await _body(content, start, end, 206, headers)
    return await _body(content, 0, size, 200, headers)


async def _body(
    content: ContentStream, start: int, end: int, status: int, headers: dict[str, str]
) -> Response:
    media_type = content.info.content_type
    if end - start <= WHOLE:
        data = b"".join([c async for c in content.chunks(start, end)])
        return Response(data, status_code=status, media_type=media_type, headers=headers)
    headers["Content-Length"] = str(end - start)
    return StreamingResponse(
        content.chunks(start, end), status_code=status, media_type=media_type, headers=headers
    )


FORMAT_JSON = SearchParam(
    "_format",
    "special",
    "http://hl7.org/fhir/R4/http.html#parameters",
    "json: the content as a Binary resource (FHIR JSON); any other value: the content as stored",
)
_CONTENT_HEADERS = {
    "Content-Disposition": "inline for PDF, text and images, attachment for anything else",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "sandbox; default-src 'none'",
}

RETRIEVE = Operation(
    "Retrieve Document (ITI-68): the content as stored, or as a Binary resource",
    {
        200: Reply(
            "the content with its own media type; a Binary resource when FHIR JSON is asked "
            "for (Accept: application/fhir+json or _format=json)",
            {ANY: RAW, FHIR_JSON: ref("Binary")},
            {"ETag": "the content's SHA-256", **_CONTENT_HEADERS},
        ),
        206: Reply(
            "the byte range asked for",
            {ANY: RAW},
            {"Content-Range": "the range served", "ETag": "the content's SHA-256"},
        ),
        304: Reply("unchanged (If-None-Match)", {}, {"ETag": "the content's SHA-256"}),
        404: None,
        406: None,
        410: None,
        416: outcome("the Range cannot be served", Content_Range="bytes */<size>"),
    },
    description="IHE MHD ITI-68, DMP TD3.2; byte ranges (RFC 9110 §14).",
    extra=(FORMAT_JSON,),
    headers=(
        Header("Range", "bytes=<first>-<last>: a part of the content"),
        Header("If-Range", "the ETag the Range holds for"),
        Header("If-None-Match", "ETags already held (304 if one matches)"),
    ),
    negotiates=False,
)
