"""PATCH /fhir/DocumentReference/{id} and PATCH /fhir/DocumentReference?identifier=…: FHIR R4
patch and conditional patch (http://hl7.org/fhir/R4/http.html#patch) with JSON Patch (RFC 6902,
``application/json-patch+json``), as the ANS PDSm 3.1.1 document sharing server declares it
(CapabilityStatement PDSm-GestionnaireDePartageDeDocuments: DocumentReference ``patch``; PDSm
Flux 03 "mise à jour des métadonnées de la fiche") and the ANS PDSm for DMP guide uses it for
TD3.3a–d (mask, patient visibility, delete, archive).

- Only ``/status``, ``/securityLabel`` and the archive extension change (PDSm: « les mises à
  jour sont restreintes aux éléments DocumentReference.status, DocumentReference.securityLabel
  et l'extension PDSm_IsArchived »); an operation on any other path is refused with a 422
  naming it (``test`` operations read anywhere).
- The patch is applied inside the core's update, to the document as a read serves it, once the
  core decided the caller may see it: a target the caller may not see answers exactly as a
  missing one. The patched resource then takes the path of a PUT (docref_update.py
  ``document_change``: the same reading, rules, traces, versions and ``If-Match``).
- Conditional patch: ``identifier`` (the uniqueId) selects, among the documents the caller may
  read, the one to patch: none is 404 (as any missing document), several 412.
- The ANS guides write the archive extension's path ``/extension[url:'…']/valueBoolean``, which is
  not a JSON Pointer (RFC 6901): carnet reads ``/extension[url:'<url>']`` as the index of the
  extension with that url (422 when there is none).
- A patch that cannot apply (a ``test`` that fails, a path that does not exist) is 422; a body
  that is not a JSON Patch document is 400; another media type (FHIRPath Patch, XML Patch) 415.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import jsonpatch
import jsonpointer
import orjson
from starlette.requests import Request
from starlette.responses import Response

from carnet.domain.documents import DocumentChange, StoredDocument
from carnet.fhir import openapi as api
from carnet.fhir.conditional import IDENTIFIER, named_document, update_replies
from carnet.fhir.context import base_url, scope_of, settings_of
from carnet.fhir.docref_resource import render_docref
from carnet.fhir.docref_update import document_change, updated_response
from carnet.fhir.errors import (
    InvalidInput,
    UnprocessableEntity,
    UnsupportedMediaType,
)
from carnet.fhir.validation import validate
from carnet.fhir.wire import JSON_PATCH, media_type, parse_if_match, read_body

OPERATIONS = frozenset({"add", "remove", "replace", "move", "copy", "test"})
CHANGEABLE = frozenset({"status", "securityLabel", "extension"})
"""The elements a patch may change (PDSm Flux 03); docref_update refuses every other change."""

_SELECTOR = re.compile(
    r"^/extension\[url:\s*['\"‘’“”](?P<url>[^'\"‘’“”\]]+)['\"‘’“”]\s*\](?P<rest>/.*)?$"
)

Operation = dict[str, Any]


def operations(patch: object, where: str = "PATCH") -> list[Operation]:
    """The operations of a JSON Patch document (RFC 6902 §3, §4): 400 when it is not one, 422
    when an operation would change anything but status, securityLabel and the extensions."""
    if not isinstance(patch, list):
        raise InvalidInput(
            f"{where}: a JSON Patch document is a JSON array of operations (RFC 6902)"
        )
    ops: list[Operation] = []
    for n, op in enumerate(patch):
        at = f"{where} operation {n}"
        if not isinstance(op, dict):
            raise InvalidInput(f"{at} is not a JSON object")
        kind = op.get("op")
        if kind not in OPERATIONS:
            raise InvalidInput(
                f"{at}: op {kind!r} is not one of {', '.join(sorted(OPERATIONS))} (RFC 6902 §4)"
            )
        for key in ("path", "from") if kind in ("move", "copy") else ("path",):
            if not isinstance(op.get(key), str):
                raise InvalidInput(f"{at} ({kind}) needs a {key!r} string")
        for key in ("path", "from"):
            if key in op and op[key] and not str(op[key]).startswith("/"):
                raise InvalidInput(f"{at}: {key} {op[key]!r} is not a JSON Pointer (RFC 6901)")
        if kind in ("add", "replace", "test") and "value" not in op:
            raise InvalidInput(f"{at} ({kind}) needs a 'value'")
        changed = [op["path"]] if kind != "test" else []
        if kind == "move":
            changed.append(op["from"])  # moved away from there
        for path in changed:
            name = _element(path)
            if name not in CHANGEABLE:
                shown = name or "the whole resource"
                raise UnprocessableEntity(
                    f"{at} ({kind} {path}): only /status, /securityLabel and the archive "
                    "extension (pdsm-ext-is-archived) change on a stored document (PDSm Flux "
                    f"03); to change {shown}, replace the document (ITI-65 with relatesTo)",
                    expression=f"DocumentReference.{name}" if name else "DocumentReference",
                )
        ops.append(op)
    return ops


def supersedes(ops: list[Operation]) -> bool:
    """Whether a patch only sets ``status`` to ``superseded`` (IHE MHD ITI-65 UpdateDocumentRefs,
    as a JSON Patch carried by a Binary, FHIR R4 http.html#transaction)."""
    return bool(ops) and all(
        op["op"] in ("replace", "add") and op["path"] == "/status" and op["value"] == "superseded"
        for op in ops
    )


def _element(path: str) -> str:
    """The top-level element a JSON Pointer (or the guides' extension selector) names."""
    if not path.startswith("/"):
        return ""
    first = path[1:].split("/", 1)[0]
    if first.startswith("extension["):
        return "extension"
    return first.replace("~1", "/").replace("~0", "~")


def _resolve(path: str, resource: dict[str, Any], at: str) -> str:
    """``/extension[url:'<url>']…`` → ``/extension/<index>…`` in ``resource``."""
    m = _SELECTOR.match(path)
    if m is None:
        return path
    url = m["url"].strip()
    for n, ext in enumerate(resource.get("extension") or []):
        if isinstance(ext, dict) and ext.get("url") == url:
            return f"/extension/{n}{m['rest'] or ''}"
    raise UnprocessableEntity(
        f"{at}: the document has no extension {url!r}", expression="DocumentReference.extension"
    )


def apply(ops: list[Operation], resource: dict[str, Any]) -> dict[str, Any]:
    """``resource`` patched (a copy), each operation in turn (RFC 6902 §5: all or nothing)."""
    out = resource
    for n, op in enumerate(ops):
        at = f"PATCH operation {n} ({op['op']} {op['path']})"
        one = {**op, "path": _resolve(op["path"], out, at)}
        if "from" in op:
            one["from"] = _resolve(op["from"], out, at)
        try:
            out = jsonpatch.apply_patch(out, [one])
        except jsonpatch.JsonPatchTestFailed as exc:
            raise UnprocessableEntity(
                f"{at}: the test failed ({exc})", expression=_expression(op["path"])
            ) from None
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
            raise UnprocessableEntity(
                f"{at} does not apply to the document: {exc}", expression=_expression(op["path"])
            ) from None
    if not isinstance(out, dict):
        raise UnprocessableEntity("the patched document is not a resource")
    return out


def _expression(path: str) -> str:
    name = _element(path)
    return f"DocumentReference.{name}" if name else "DocumentReference"


def patch_change(ops: list[Operation], base: str) -> Callable[[StoredDocument], DocumentChange]:
    """The change a patch asks for, given the document as stored (and seen by the caller)."""

    def change_of(doc: StoredDocument) -> DocumentChange:
        stored: dict[str, Any] = orjson.loads(render_docref(doc, base))
        patched = apply(ops, stored)
        validate(patched)
        return document_change(patched, stored, doc)

    return change_of


async def read_patch(request: Request) -> list[Operation]:
    content_type = request.headers.get("content-type")
    if media_type(content_type) != JSON_PATCH:
        raise UnsupportedMediaType(
            f"Content-Type {content_type!r} is not supported for PATCH: send a JSON Patch "
            f"({JSON_PATCH}, RFC 6902); FHIRPath Patch and XML Patch are not supported"
        )
    body = await read_body(request, settings_of(request).max_upload_bytes)
    try:
        patch = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"the body is not valid JSON: {exc}") from None
    return operations(patch)


async def patch_docref(request: Request) -> Response:
    scope = await scope_of(request)
    ops = await read_patch(request)
    base = base_url(request)
    doc = await scope.documents.update(
        request.path_params["id"],
        patch_change(ops, base),
        parse_if_match(request.headers.get("if-match")),
    )
    return updated_response(doc, base)


async def conditional_patch_docref(request: Request) -> Response:
    scope = await scope_of(request)
    ops = await read_patch(request)
    did = await named_document(request, scope, "PATCH")
    base = base_url(request)
    doc = await scope.documents.update(
        did,
        patch_change(ops, base),
        parse_if_match(request.headers.get("if-match")),
    )
    return updated_response(doc, base)


PATCH = api.Operation(
    "Patch a document's metadata with JSON Patch: status, securityLabel, archiving (TD3.3a-d)",
    update_replies("patched"),
    description="Only /status, /securityLabel and the archive extension change (PDSm Flux 03); "
    "the same rules, traces and If-Match as PUT.",
    headers=(api.IF_MATCH,),
    body={api.JSON_PATCH: api.JSON_PATCH_DOCUMENT},
)
CONDITIONAL_PATCH = api.Operation(
    "Patch the one document an identifier names (conditional patch)",
    update_replies("patched"),
    description="identifier: the uniqueId or entryUUID, among the documents the caller may "
    "read; none is 404, several 412.",
    headers=(api.IF_MATCH,),
    body={api.JSON_PATCH: api.JSON_PATCH_DOCUMENT},
    extra=(IDENTIFIER,),
)
