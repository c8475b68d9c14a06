"""Reading FHIR requests and writing FHIR responses (FHIR R4 §3.1.0.1 "Content Types and
encodings"; http://hl7.org/fhir/R4/http.html#mime-type).

Only JSON is served. Bodies are read with a size limit (413 past it), parsed once with orjson,
and served back as stored bytes wherever possible.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from carnet.fhir.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType
from carnet.fhir.outcome import FHIR_JSON

JSON_TYPES = ("application/fhir+json", "application/json", "application/json+fhir")


def is_json_type(content_type: str | None) -> bool:
    if not content_type:
        return False
    return content_type.split(";", 1)[0].strip().lower() in JSON_TYPES


def check_accept(request: Request) -> None:
    accept = request.headers.get("accept")
    fmt = request.query_params.get("_format")
    if fmt and fmt not in ("json", *JSON_TYPES):
        raise UnsupportedMediaType(f"_format {fmt!r} is not supported: this server speaks JSON")
    if not accept:
        return
    kinds = [a.split(";", 1)[0].strip().lower() for a in accept.split(",")]
    if any(k in (*JSON_TYPES, "*/*", "application/*") for k in kinds):
        return
    raise UnsupportedMediaType(
        f"Accept {accept!r} cannot be served: this server answers application/fhir+json"
    )


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
