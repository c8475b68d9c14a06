"""The API's description (OpenAPI 3.1, https://spec.openapis.org/oas/v3.1.0, served at
``/openapi.json``): each FHIR interaction's module declares its :class:`Operation` next to its
handler, and routes.py cannot register a route without one (it becomes the route's
``openapi_extra``). An operation names its parameters, its request body with its media types,
and every status it answers with its media type and schema; the schemas are HL7's FHIR R4 JSON
schema (the subset of carnet/data/fhir-r4.schema.json), published under
``components/schemas`` by :func:`add_components`.

The statuses every authenticated operation may answer (401, 403, 406 for an Accept or a
``_format`` that is not FHIR JSON, 415 for a body of another media type, 503) are added by the
builder; a search's parameters come from its search table (capability.py), so that what is
described is what is parsed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import Response

from carnet.fhir.search_spec import SearchParam

Schema = dict[str, Any]

FHIR_JSON = "application/fhir+json"
JSON_PATCH = "application/json-patch+json"
FORM = "application/x-www-form-urlencoded"
ANY = "*/*"

ID_PATTERN = r"^[A-Za-z0-9\-][A-Za-z0-9\-.]{0,63}$"
"""The ids carnet issues (FHIR R4 ``id``, not starting with a dot); any other answers 404."""

BEARER = "bearer"


def ref(name: str) -> Schema:
    """A FHIR R4 definition of components/schemas (a resource or a data type)."""
    return {"$ref": f"#/components/schemas/{name}"}


OUTCOME = ref("OperationOutcome")
BUNDLE = ref("Bundle")
RAW: Schema = {"type": "string", "format": "binary"}
JSON_PATCH_DOCUMENT: Schema = {
    "description": "a JSON Patch document (RFC 6902)",
    "type": "array",
    "items": {
        "type": "object",
        "required": ["op", "path"],
        "properties": {
            "op": {"enum": ["add", "remove", "replace", "move", "copy", "test"]},
            "path": {"type": "string"},
            "from": {"type": "string"},
            "value": {},
        },
    },
}


@dataclass(frozen=True, slots=True)
class Reply:
    """One status of an operation: what it means, its media types (each with a schema) and
    the headers it carries (name → meaning)."""

    description: str
    content: Mapping[str, Schema] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)

    def openapi(self) -> dict[str, Any]:
        out: dict[str, Any] = {"description": self.description}
        if self.content:
            out["content"] = {m: {"schema": s} for m, s in self.content.items()}
        if self.headers:
            out["headers"] = {
                h: {"description": d, "schema": {"type": "string"}} for h, d in self.headers.items()
            }
        return out


def resource(name: str, description: str, **headers: str) -> Reply:
    """A FHIR resource (``name``, or ``Bundle``) in FHIR JSON."""
    return Reply(description, {FHIR_JSON: ref(name)}, _headers(headers))


def outcome(description: str, **headers: str) -> Reply:
    """An OperationOutcome in FHIR JSON."""
    return Reply(description, {FHIR_JSON: OUTCOME}, _headers(headers))


def body(name: str) -> dict[str, Schema]:
    """A request body: the FHIR resource ``name`` in FHIR JSON (or plain JSON)."""
    return {FHIR_JSON: ref(name), "application/json": ref(name)}


def _headers(given: Mapping[str, str]) -> dict[str, str]:
    """Keyword names to header names: ``Last_Modified`` → ``Last-Modified``."""
    return {k.replace("_", "-"): v for k, v in given.items()}


ETAG = 'the version, as W/"<versionId>"'
LOCATION = "the URL of what was made"

ERRORS: dict[int, Reply] = {
    400: outcome(
        "the request is malformed: an unknown or badly formed search parameter, a body that is "
        "not FHIR R4 JSON (OperationOutcome.issue.expression names where)"
    ),
    401: outcome(
        "no bearer token, or one that does not verify (docs/tokens.md)",
        WWW_Authenticate='Bearer realm="carnet"',
    ),
    403: outcome("the token's actor may not do this (docs/access.md)"),
    404: outcome(
        "no such resource, or no access to it: a refused read is answered exactly as a missing one"
    ),
    409: outcome("conflicts with what is stored (a uniqueId already used, a state that forbids)"),
    410: outcome("deleted (answered only to whoever could read it before)"),
    412: outcome(
        "If-Match names another version than the current one, or a condition matches "
        "more than one resource"
    ),
    413: outcome("the body exceeds CARNET_MAX_UPLOAD_BYTES"),
    406: outcome("an Accept or _format that carnet cannot serve (it serves FHIR JSON only)"),
    415: outcome("a Content-Type that carnet does not read for this operation"),
    422: outcome("parses, but breaks a rule of the profile or of the DMP (dmp.md)"),
    503: outcome("the server is busy: retry", Retry_After="seconds to wait"),
}
"""What each error status means, the same on every operation."""

COMMON = (401, 403, 503)
"""What every authenticated operation may answer."""

FORMAT = SearchParam(
    "_format",
    "special",
    "http://hl7.org/fhir/R4/http.html#parameters",
    "json, application/fhir+json or application/json: carnet speaks FHIR JSON only (406 otherwise)",
)


@dataclass(frozen=True, slots=True)
class Header:
    """A request header the operation reads."""

    name: str
    description: str
    pattern: str | None = None
    required: bool = False

    def openapi(self) -> dict[str, Any]:
        schema: Schema = {"type": "string"}
        if self.pattern:
            schema["pattern"] = self.pattern
        return {
            "name": self.name,
            "in": "header",
            "required": self.required,
            "description": self.description,
            "schema": schema,
        }


IF_MATCH = Header(
    "If-Match",
    'the version the change applies to, as W/"<versionId>" (412 if another is current)',
    r'^(W/)?"[0-9]{1,9}"$',
)

_SEARCH_SCHEMAS: dict[str, Schema] = {
    "date": {
        "type": "string",
        "pattern": r"^(eq|ne|gt|lt|ge|le|sa|eb|ap)?[0-9]{4}(-[0-9]{2}(-[0-9]{2})?)?$",
    },
    "number": {"type": "string", "pattern": r"^[0-9]+$"},
}
COUNT = SearchParam(
    "_count",
    "number",
    "http://hl7.org/fhir/R4/search.html#count",
    "the page size (capped by the server's maximum)",
)
CURSOR = SearchParam(
    "_cursor",
    "special",
    "http://hl7.org/fhir/R4/http.html#paging",
    "the opaque cursor of a next link, as this server issued it (400 otherwise)",
)
SUMMARY = SearchParam(
    "_summary",
    "special",
    "http://hl7.org/fhir/R4/search.html#summary",
    "count: the total alone, no entries",
)
TOTAL = SearchParam(
    "_total",
    "special",
    "http://hl7.org/fhir/R4/search.html#total",
    "none, estimate or accurate (carnet always counts exactly what the caller may read)",
)
PAGING = (COUNT, CURSOR)
COUNTING = (SUMMARY, TOTAL)
"""A paged search's own parameters (give them in ``extra``)."""


def _query(p: SearchParam, *, repeat: bool) -> dict[str, Any]:
    value = _SEARCH_SCHEMAS.get(p.type, {"type": "string", "minLength": 1})
    if p.type == "string":  # an empty string value matches every one (no 400)
        value = {"type": "string"}
    out: dict[str, Any] = {
        "name": p.name,
        "in": "query",
        "required": False,
        "description": f"{p.documentation} (FHIR {p.type}; {p.definition})",
    }
    if repeat:  # FHIR search: a repeated parameter is an AND, commas within one an OR
        out.update(style="form", explode=True, schema={"type": "array", "items": value})
    else:
        out["schema"] = value
    return out


def search_form(
    table: Mapping[str, SearchParam], extra: tuple[SearchParam, ...] = PAGING
) -> dict[str, Schema]:
    """The body of ``POST [type]/_search``: the same parameters, form-encoded."""
    props = {
        p.name: _SEARCH_SCHEMAS.get(p.type, {"type": "string"}) for p in (*table.values(), *extra)
    }
    return {FORM: {"type": "object", "properties": props}}


@dataclass(frozen=True, slots=True)
class Operation:
    """One FHIR interaction as the API's description shows it.

    ``responses``: the statuses particular to it (error statuses by number take their meaning
    from :data:`ERRORS`); ``search``: its search table; ``extra``: other query parameters;
    ``body``: its request body's media types and schemas; ``public``: no token needed;
    ``negotiates``: it refuses an Accept or ``_format`` other than FHIR JSON (406)."""

    summary: str
    responses: Mapping[int, Reply | None]
    description: str = ""
    search: Mapping[str, SearchParam] | None = None
    extra: tuple[SearchParam, ...] = ()
    headers: tuple[Header, ...] = ()
    body: Mapping[str, Schema] | None = None
    public: bool = False
    negotiates: bool = True

    @property
    def success(self) -> int:
        return min(s for s in self.responses if s < 400)

    def replies(self) -> dict[int, Reply]:
        statuses = set(self.responses)
        if not self.public:
            statuses |= set(COMMON)
        if self.negotiates:
            statuses.add(406)
        if self.body:
            statuses.add(415)
        if self.search is not None:
            statuses.add(400)
        out: dict[int, Reply] = {}
        for status in sorted(statuses):
            given = self.responses.get(status)
            out[status] = given if given is not None else ERRORS[status]
        return out

    def openapi(self, path: str) -> dict[str, Any]:
        """The operation object of ``path`` (its path parameters named by the path itself)."""
        params: list[dict[str, Any]] = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "description": "the version id" if name == "vid" else "the resource id",
                "schema": {"type": "string", "pattern": r"^[0-9]{1,9}$"}
                if name == "vid"
                else {"type": "string", "pattern": ID_PATTERN},
            }
            for name in re.findall(r"{(\w+)}", path)
        ]
        if self.search is not None:
            params += [_query(p, repeat=True) for p in self.search.values()]
        params += [_query(p, repeat=False) for p in self.extra]
        if self.negotiates:
            params.append(
                {
                    **_query(FORMAT, repeat=False),
                    "schema": {
                        # empty: as if absent (wire.check_accept)
                        "enum": [
                            "",
                            "json",
                            "application/fhir+json",
                            "application/json",
                            "application/json+fhir",
                        ],
                    },
                }
            )
        params += [h.openapi() for h in self.headers]
        out: dict[str, Any] = {
            "summary": self.summary,
            "parameters": params,
            "responses": {str(s): r.openapi() for s, r in self.replies().items()},
        }
        if self.description:
            out["description"] = self.description
        if not self.public:
            out["security"] = [{BEARER: []}]
        if self.body:
            out["requestBody"] = {
                "required": True,
                "content": {m: {"schema": s} for m, s in self.body.items()},
            }
        return out

    def route_args(self, path: str) -> dict[str, Any]:
        """What routes.py gives ``add_api_route``: the description, and no default response
        of FastAPI's (a handler answers its own Response, whatever these say)."""
        return {
            "openapi_extra": self.openapi(path),
            "status_code": self.success,
            "response_class": Response,
            "response_description": self.replies()[self.success].description,
            "summary": self.summary,
        }


def add_components(document: dict[str, Any], definitions: Mapping[str, Any]) -> None:
    """Publish the FHIR R4 definitions (``#/definitions/X`` of HL7's JSON schema) as
    components/schemas, and the bearer token as the security scheme."""
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name, schema in definitions.items():
        schemas.setdefault(name, _rebased(schema))
    components.setdefault("securitySchemes", {})[BEARER] = {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "a token of CARNET_TOKEN_ISSUERS or of the development issuer "
        "(docs/tokens.md)",
    }


def _rebased(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: v.replace("#/definitions/", "#/components/schemas/")
            if k == "$ref" and isinstance(v, str)
            else _rebased(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rebased(v) for v in node]
    return node
