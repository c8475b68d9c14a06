"""Reading FHIR requests and writing FHIR responses (FHIR R4 §3.1.0.1 "Content Types and
encodings"; http://hl7.org/fhir/R4/http.html#mime-type).

Only JSON is served. What a client accepts (``_format``, which overrides ``Accept``; then
``Accept`` with its q-values, RFC 9110 §12.5.1, read with python-mimeparse) is checked before
anything is read: a client that accepts no JSON (``_format=xml``, ``Accept:
application/fhir+xml``) gets 406 Not Acceptable with an OperationOutcome, never JSON it did not
ask for. A body of another media type than JSON is 415. Bodies are read with a size limit (413
past it), parsed once with orjson, and served back as stored bytes wherever possible.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import mimeparse
import orjson
from starlette.requests import Request
from starlette.responses import Response

from carnet.fhir.errors import InvalidInput, NotAcceptable, PayloadTooLarge, UnsupportedMediaType
from carnet.fhir.outcome import FHIR_JSON

JSON_TYPES = ("application/json+fhir", "application/json", "application/fhir+json")
"""The JSON media types, the preferred one last (python-mimeparse takes the last of equals)."""
JSON_FORMATS = frozenset({"json", *JSON_TYPES})
"""What ``_format`` may say (FHIR R4 http.html#mime: ``json`` or a JSON media type)."""
FHIR_XML_TYPES = frozenset({"application/fhir+xml", "application/xml+fhir"})
JSON_PATCH = "application/json-patch+json"


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_json_type(content_type: str | None) -> bool:
    return media_type(content_type) in JSON_TYPES


def best_of(offered: list[str], accept: str) -> str | None:
    """The best of ``offered`` for an Accept header (q-values and specificity honoured, the
    last of equals preferred); None if none is acceptable or the header cannot be read."""
    try:
        best = mimeparse.best_match(offered, accept)
    except ValueError:
        return None
    return best or None


def format_asked(request: Request) -> str | None:
    """``_format``, normalised; 406 unless it names JSON."""
    fmt = request.query_params.get("_format")
    if not fmt:  # absent, or empty: as if absent
        return None
    if media_type(fmt) not in JSON_FORMATS:
        raise NotAcceptable(
            f"_format={fmt!r} cannot be served: this server answers FHIR JSON only "
            "(_format=json, application/fhir+json)"
        )
    return media_type(fmt)


def check_accept(request: Request) -> None:
    """A FHIR resource is served as JSON: refuse (406) a client that accepts no JSON."""
    if format_asked(request) is not None:
        return
    accept = request.headers.get("accept")
    if not accept or best_of(list(JSON_TYPES), accept):
        return
    raise NotAcceptable(
        f"Accept {accept!r} cannot be served: this server answers FHIR JSON only "
        "(application/fhir+json)"
    )


def only_fhir_xml(accept: str | None) -> bool:
    """Whether an Accept header asks for FHIR XML and nothing else (q > 0)."""
    if not accept:
        return False
    kinds = set()
    for part in accept.split(","):
        if not part.strip():
            continue
        try:
            kind, sub, params = mimeparse.parse_media_range(part)
            q = float(params.get("q", "1"))
        except ValueError:
            return False
        if q > 0:
            kinds.add(f"{kind}/{sub}".lower())
    return bool(kinds) and kinds <= FHIR_XML_TYPES


def http_date(moment: datetime) -> str:
    """An HTTP date (RFC 9110 §5.6.7 IMF-fixdate, ``Sun, 06 Nov 1994 08:49:37 GMT``), for
    ``Last-Modified``; a naive datetime is UTC, as carnet keeps them."""
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return format_datetime(aware, usegmt=True)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(
            f"request body of {int(declared)} bytes exceeds the {limit}-byte limit"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_resource(request: Request, limit: int, expected: str | None) -> dict[str, Any]:
    """Parse a JSON resource body; 415 for another media type, 400 if malformed."""
    if not is_json_type(request.headers.get("content-type")):
        raise UnsupportedMediaType(
            f"Content-Type {request.headers.get('content-type')!r} is not supported: "
            "send application/fhir+json"
        )
    body = await read_body(request, limit)
    if len(body) > OFF_LOOP_BYTES:
        return await asyncio.to_thread(parse_resource, body, expected)
    return parse_resource(body, expected)


async def read_valid_resource(request: Request, limit: int, expected: str | None) -> dict[str, Any]:
    """:func:`read_resource`, validated as FHIR R4 (400 naming the first problem); a large
    body is parsed and validated in a thread, so that other requests do not wait for it."""
    from carnet.fhir.validation import validate  # the validators import this module's errors

    if not is_json_type(request.headers.get("content-type")):
        return await read_resource(request, limit, expected)  # the 415
    body = await read_body(request, limit)

    def parse_and_validate() -> dict[str, Any]:
        resource = parse_resource(body, expected)
        validate(resource)
        return resource

    if len(body) > OFF_LOOP_BYTES:
        return await asyncio.to_thread(parse_and_validate)
    return parse_and_validate()


OFF_LOOP_BYTES = 256 * 1024
"""Bodies larger than this are parsed (and validated) in a thread."""

_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def parse_resource(body: bytes, expected: str | None) -> dict[str, Any]:
    if not body.strip():
        raise InvalidInput("the request body is empty")
    if b"\\u0000" in body and _JSON_NUL.search(body):
        raise InvalidInput(
            "the body contains a NUL character (\\u0000), which FHIR strings exclude"
        )
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInput("the body must be a JSON object (a FHIR resource)")
    rtype = data.get("resourceType")
    if not isinstance(rtype, str):
        raise InvalidInput("the resource has no resourceType", expression="resourceType")
    if expected and rtype != expected:
        raise InvalidInput(
            f"resourceType is {rtype!r}, expected {expected!r} at this endpoint",
            expression="resourceType",
        )
    return data


def fhir_response(
    body: bytes | dict[str, Any],
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return Response(raw, status_code=status, media_type=FHIR_JSON, headers=headers)


def etag(version_id: int) -> str:
    return f'W/"{version_id}"'


def parse_if_match(value: str | None) -> int | None:
    """The version an If-Match header asks for (W/"3" or "3")."""
    if value is None:
        return None
    v = value.strip()
    if v.startswith("W/"):
        v = v[2:]
    v = v.strip('"')
    if not (v.isascii() and v.isdigit()):
        raise InvalidInput(
            f'If-Match {value!r} is not a version ETag like W/"3"', expression="If-Match"
        )
    return int(v)
