"""POST /fhir (transaction Bundle): IHE MHD ITI-65 Provide Document Bundle
(https://profiles.ihe.net/ITI/MHD/ITI-65.html;
ANS PDSm "pdsm-comprehensive-provide-document-bundle";
DMP TD2.1 add, TD2.2 replace).

The bundle holds one submission set (List), its DocumentReferences and their Binaries, and 0..*
Folders (List with the code ``folder``, IHE MHD 4.2.3 Folder Comprehensive) filing documents of
the bundle or documents already stored for the patient; a Folder whose uniqueId is stored
already adds its entries to that folder (XDS only adds to a folder). It is stored all or
nothing. A DocumentReference whose ``relatesTo`` says ``replaces`` supersedes the
target (XDS RPLC); a PATCH entry that sets that same target's status to ``superseded`` (as the
PDSm replacement example carries as a FHIRPath Patch in a Parameters, or a JSON Patch in a
Binary, FHIR R4 http.html#transaction, read by docref_patch.operations) is accepted as
redundant: the replacement supersedes its target in the same all-or-nothing write, which a
separate PATCH could not be part of. Any other PATCH is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from carnet.domain.clock import iso
from carnet.domain.content import ContentSource, InlineContent, UploadedContent
from carnet.domain.documents import NewDocument, Published, Submission
from carnet.domain.errors import CoreError
from carnet.fhir.context import base_url, scope_of, settings_of
from carnet.fhir.docref_patch import operations, supersedes
from carnet.fhir.docref_resource import entry_from_docref, publishable
from carnet.fhir.errors import InvalidInput, UnprocessableEntity, from_core
from carnet.fhir.openapi import Operation, body, resource
from carnet.fhir.submission import (
    check_fhir_document,
    decode_data,
    folder_from_list,
    is_folder,
    subject_ref,
    submission_set_from_list,
)
from carnet.fhir.wire import JSON_PATCH, etag, fhir_response, media_type, read_valid_resource


@dataclass(slots=True)
class ParsedBundle:
    """An ITI-65 bundle read into the core's submission, with where each document was."""

    submission: Submission
    where: dict[str, str] = field(default_factory=dict)  # documents[i] → Bundle.entry[n].resource
    binaries: dict[str, str] = field(default_factory=dict)  # document key → its Binary's fullUrl
    folders: dict[str, int] = field(default_factory=dict)  # a Folder's key → its index


def _patch_target(entry: dict[str, Any], index: int) -> str:
    request = entry.get("request") or {}
    url = str(request.get("url") or "")
    resource = entry.get("resource") or {}
    where = f"Bundle.entry[{index}]"
    rtype = resource.get("resourceType")
    json_patch = rtype == "Binary" and media_type(resource.get("contentType")) == JSON_PATCH
    if (rtype != "Parameters" and not json_patch) or not url.startswith("DocumentReference/"):
        raise UnprocessableEntity(
            f"{where}: only a FHIRPath Patch (Parameters) or a JSON Patch (Binary, "
            f"{JSON_PATCH}) of a DocumentReference is accepted",
            expression=where,
        )
    if json_patch:
        data = decode_data(resource.get("data"), f"{where}.resource.data")
        try:
            patch = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(
                f"{where}.resource.data is not JSON: {exc}", expression=f"{where}.resource.data"
            ) from None
        redundant = supersedes(operations(patch, where))
    else:
        redundant = True
        for op in resource.get("parameter") or []:
            parts = {p.get("name"): p for p in op.get("part") or [] if isinstance(p, dict)}
            redundant = redundant and (
                parts.get("type", {}).get("valueCode") == "replace"
                and parts.get("path", {}).get("valueString") == "DocumentReference.status"
                and parts.get("value", {}).get("valueCode") == "superseded"
            )
    if not redundant:
        raise UnprocessableEntity(
            f"{where}: the only PATCH accepted in ITI-65 sets DocumentReference.status to "
            "superseded, next to the DocumentReference that replaces it",
            expression=where,
        )
    return url.split("/", 1)[1].split("/", 1)[0]


def build_submission(bundle: dict[str, Any], *, allow_test: bool, actor_id: str) -> ParsedBundle:
    if bundle.get("type") != "transaction":
        raise InvalidInput(
            f"ITI-65 needs a Bundle of type transaction, not {bundle.get('type')!r}",
            expression="Bundle.type",
        )
    entries = bundle.get("entry")
    if not isinstance(entries, list) or not entries:
        raise InvalidInput("the transaction Bundle has no entry", expression="Bundle.entry")
    lists: list[tuple[int, dict[str, Any], str]] = []
    folder_lists: list[tuple[int, dict[str, Any], str]] = []
    docrefs: list[tuple[int, dict[str, Any], str]] = []
    binaries: dict[str, tuple[int, dict[str, Any]]] = {}
    patches: list[str] = []
    for index, entry in enumerate(entries):
        where = f"Bundle.entry[{index}]"
        resource = entry.get("resource")
        if not isinstance(resource, dict):
            raise InvalidInput(f"{where} has no resource", expression=where)
        method = (entry.get("request") or {}).get("method")
        rtype = resource.get("resourceType")
        key = str(entry.get("fullUrl") or f"entry-{index}")
        if method == "PATCH":
            patches.append(_patch_target(entry, index))
            continue
        if method != "POST":
            raise UnprocessableEntity(
                f"{where}.request.method must be POST in ITI-65 (got {method!r})",
                expression=f"{where}.request.method",
            )
        if rtype == "List" and is_folder(resource):
            folder_lists.append((index, resource, key))
        elif rtype == "List":
            lists.append((index, resource, key))
        elif rtype == "DocumentReference":
            docrefs.append((index, resource, key))
        elif rtype == "Binary":
            binaries[key] = (index, resource)
        else:
            raise UnprocessableEntity(
                f"{where}: {rtype} is not part of an ITI-65 Provide Document Bundle "
                "(List, DocumentReference, Binary)",
                expression=f"{where}.resource.resourceType",
            )
    if len(lists) != 1:
        raise UnprocessableEntity(
            "an ITI-65 bundle carries exactly one submission set (List with the code "
            "submissionset), "
            f"this one has {len(lists)}",
            expression="Bundle.entry",
        )
    if not docrefs:
        raise UnprocessableEntity(
            "the bundle carries no DocumentReference", expression="Bundle.entry"
        )
    list_index, list_resource, list_key = lists[0]
    subject = subject_ref(
        list_resource.get("subject"),
        f"Bundle.entry[{list_index}].resource.subject",
        allow_test=allow_test,
    )
    submission_set = submission_set_from_list(list_resource, list_key, actor_id)
    listed = {
        (e.get("item") or {}).get("reference")
        for e in list_resource.get("entry") or []
        if isinstance(e, dict)
    }
    documents: list[NewDocument] = []
    used_binaries: set[str] = set()
    parsed = ParsedBundle(Submission(subject, documents, submission_set))
    for index, resource, key in docrefs:
        where = f"Bundle.entry[{index}].resource"
        doc_subject = subject_ref(
            resource.get("subject"), f"{where}.subject", allow_test=allow_test
        )
        if doc_subject != subject:
            raise UnprocessableEntity(
                f"{where}.subject names another patient than the submission set",
                expression=f"{where}.subject",
            )
        if key not in listed:
            raise UnprocessableEntity(
                f"{where} ({key}) is not listed in the submission set's List.entry",
                expression="List.entry",
            )
        att = ((resource.get("content") or [{}])[0] or {}).get("attachment") or {}
        url = att.get("url")
        content: ContentSource
        if isinstance(url, str) and url in binaries:
            b_index, binary = binaries[url]
            data = decode_data(binary.get("data"), f"Bundle.entry[{b_index}].resource.data")
            content = InlineContent(data, binary.get("contentType"))
            parsed.binaries[key] = url
            used_binaries.add(url)
        elif att.get("data") is not None:
            content = InlineContent(
                decode_data(att.get("data"), f"{where}.content[0].attachment.data")
            )
        elif isinstance(url, str) and "Binary/" in url:
            content = UploadedContent(url.rsplit("Binary/", 1)[1].split("/", 1)[0])
        else:
            raise UnprocessableEntity(
                f"{where}.content[0].attachment.url {url!r} names no Binary of this bundle",
                expression=f"{where}.content[0].attachment.url",
            )
        check_fhir_document(content, att.get("contentType"), f"{where}.content[0].attachment")
        entry = entry_from_docref(resource)
        if subject.ins is not None:
            entry.patient_system = subject.ins.system
            entry.patient_value = subject.ins.value
        else:
            entry.patient_value = subject.record_id
        parsed.where[f"documents[{len(documents)}]"] = where
        documents.append(NewDocument(key, entry, content, publishable(resource, content, entry)))
    unused = set(binaries) - used_binaries
    if unused:
        raise UnprocessableEntity(
            f"Binary entries {', '.join(sorted(unused))} are referenced by no DocumentReference",
            expression="Bundle.entry",
        )
    keys = {key for _, _, key in docrefs}
    for index, resource, key in folder_lists:
        where = f"Bundle.entry[{index}].resource"
        folder_subject = subject_ref(
            resource.get("subject"), f"{where}.subject", allow_test=allow_test
        )
        if folder_subject != subject:
            raise UnprocessableEntity(
                f"{where}.subject names another patient than the submission set",
                expression=f"{where}.subject",
            )
        parsed.where[f"folders[{len(parsed.submission.folders)}]"] = where
        parsed.folders[key] = len(parsed.submission.folders)
        parsed.submission.folders.append(
            folder_from_list(resource, key, where, {k: k for k in keys})
        )
    replaced = {d.entry.replaces for d in documents if d.entry.replaces}
    stray = [p for p in patches if p not in replaced]
    if stray:
        raise UnprocessableEntity(
            "PATCH of DocumentReference/" + ", ".join(stray) + " without a DocumentReference "
            "that replaces it (relatesTo.code = replaces)",
            expression="Bundle.entry.request",
        )
    return parsed


def transaction_response(
    bundle: dict[str, Any], parsed: ParsedBundle, result: Published, base: str
) -> bytes:
    by_key = {d.key: d for d in result.documents}
    by_binary = {url: by_key[key] for key, url in parsed.binaries.items()}
    replaced = dict(result.replaced)
    out = []
    for index, entry in enumerate(bundle["entry"]):
        key = str(entry.get("fullUrl") or f"entry-{index}")
        rtype = (entry.get("resource") or {}).get("resourceType")
        method = (entry.get("request") or {}).get("method")
        response: dict[str, Any]
        if method == "PATCH":
            target = str(entry["request"]["url"]).split("/", 1)[1].split("/", 1)[0]
            v = replaced.get(target, 1)
            response = {
                "status": "200 OK",
                "location": f"{base}/DocumentReference/{target}/_history/{v}",
                "etag": etag(v),
            }
        elif rtype == "List" and key in parsed.folders:
            _fkey, folder_id, created = result.folders[parsed.folders[key]]
            response = {
                "status": "201 Created" if created else "200 OK",
                "location": f"{base}/List/{folder_id}/_history/1",
                "etag": etag(1),
            }
        elif rtype == "List":
            response = {
                "status": "201 Created" if any(d.created for d in result.documents) else "200 OK",
                "location": f"{base}/List/{result.set_id}/_history/1",
                "etag": etag(1),
            }
        elif rtype == "DocumentReference":
            d = by_key[key]
            response = {
                "status": "201 Created" if d.created else "200 OK",
                "location": f"{base}/DocumentReference/{d.doc_id}/_history/{d.version_id}",
                "etag": etag(d.version_id),
                "lastModified": iso(d.last_updated),
            }
        else:
            d = by_binary[key]
            response = {
                "status": "201 Created" if d.created else "200 OK",
                "location": f"{base}/Binary/{d.binary_id}",
            }
        out.append({"fullUrl": key, "response": response})
    return orjson.dumps({"resourceType": "Bundle", "type": "transaction-response", "entry": out})


async def provide_document_bundle(request: Request) -> Response:
    scope = await scope_of(request)
    settings = settings_of(request)
    bundle = await read_valid_resource(request, settings.max_upload_bytes, "Bundle")
    parsed = build_submission(bundle, allow_test=settings.allow_test_ins, actor_id=scope.actor.id)
    try:
        result = await scope.documents.publish(parsed.submission)
    except CoreError as exc:
        where = parsed.where if len(parsed.where) > 1 else {}
        raise from_core(exc, where) from None
    return fhir_response(transaction_response(bundle, parsed, result, base_url(request)))


PROVIDE = Operation(
    "Provide Document Bundle (ITI-65): a transaction Bundle",
    {
        200: resource("Bundle", "the transaction-response Bundle"),
        400: None,
        404: None,
        409: None,
        413: None,
        422: None,
    },
    description="IHE MHD ITI-65, ANS PDSm pdsm-comprehensive-provide-document-bundle; DMP "
    "TD2.1, TD2.2. Stored all or nothing.",
    body=body("Bundle"),
)
