"""Bundles assembled from stored JSON without re-serialising it (limits.md: serialisation
through models costs 0.35 ms a resource)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from urllib.parse import urlencode

import orjson
from starlette.datastructures import QueryParams

from carnet.domain.clock import iso, utcnow
from carnet.fhir.outcome import fhir_string


def _entry(full_url: str, resource: bytes, mode: str | None = None) -> bytes:
    head = b'{"fullUrl":' + orjson.dumps(full_url) + b',"resource":' + resource
    if mode:
        head += b',"search":{"mode":"' + mode.encode() + b'"}'
    return head + b"}"


def searchset(
    *,
    self_url: str,
    next_url: str | None,
    total: int,
    matches: list[tuple[str, bytes]],
    includes: list[tuple[str, bytes]] = (),  # type: ignore[assignment]
    ignored: Sequence[str] = (),
) -> bytes:
    """A searchset; ``ignored``: the parameters left out (unknown here), each named in an
    OperationOutcome entry (``search.mode`` ``outcome``, FHIR R4 §3.1.1.2 "handling")."""
    links = [{"relation": "self", "url": self_url}]
    if next_url:
        links.append({"relation": "next", "url": next_url})
    head = {
        "resourceType": "Bundle",
        "type": "searchset",
        "meta": {"lastUpdated": iso(utcnow())},
        "total": total,
        "link": links,
    }
    entries = [_entry(u, r, "match") for u, r in matches]
    entries += [_entry(u, r, "include") for u, r in includes]
    if ignored:
        entries.append(_entry(f"urn:uuid:{uuid.uuid4()}", ignored_outcome(ignored), "outcome"))
    body = orjson.dumps(head)[:-1]
    return body + b',"entry":[' + b",".join(entries) + b"]}"


def ignored_outcome(ignored: Sequence[str]) -> bytes:
    """The warning that names each search parameter the server ignored."""
    return orjson.dumps(
        {
            "resourceType": "OperationOutcome",
            "issue": [
                {
                    "severity": "warning",
                    "code": "not-supported",
                    "diagnostics": fhir_string(
                        f"unknown search parameter {name!r} ignored "
                        "(send Prefer: handling=strict to have it refused)"
                    ),
                    "expression": [fhir_string(name)],
                }
                for name in ignored
            ],
        }
    )


def history(self_url: str, entries: list[tuple[str, bytes, str, str]]) -> bytes:
    """entries: (fullUrl, resource, lastUpdated, method)."""
    head = {
        "resourceType": "Bundle",
        "type": "history",
        "total": len(entries),
        "link": [{"relation": "self", "url": self_url}],
    }
    parts = []
    for full_url, resource, last_updated, method in entries:
        parts.append(
            b'{"fullUrl":'
            + orjson.dumps(full_url)
            + b',"resource":'
            + resource
            + b',"request":'
            + orjson.dumps({"method": method, "url": full_url.split("/fhir/", 1)[-1]})
            + b',"response":'
            + orjson.dumps({"status": "200", "lastModified": last_updated})
            + b"}"
        )
    return orjson.dumps(head)[:-1] + b',"entry":[' + b",".join(parts) + b"]}"


def page_url(
    base: str, params: QueryParams, cursor: str | None, ignored: Sequence[str] = ()
) -> str:
    """A link to a page of the search: its parameters (less those ignored) and the cursor."""
    items = [(k, v) for k, v in params.multi_items() if k != "_cursor" and k not in ignored]
    if cursor:
        items.append(("_cursor", cursor))
    query = urlencode(items)
    return f"{base}?{query}" if query else base
