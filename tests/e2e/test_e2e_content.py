"""ITI-68 Retrieve Document (TD3.2): Content-Type, ETag, conditional requests, byte ranges across
the store's 1 MiB encrypted chunks; raw Binary upload streamed, then referenced (FHIR Binary)."""

from __future__ import annotations

import base64
import hashlib
import random
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Server
from tests.e2e.conftest import Pro, content_files
from tests.factories import FHIR_JSON, Factory, bundle, created_doc_ids, docref, outcome

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def big() -> bytes:
    """2 MiB + 12345 bytes: three chunks, the last one partial."""
    return random.Random(68).randbytes(2 * MIB + 12345)


def test_retrieve_content_ranges(
    http: httpx.Client, factory: Factory, pro: Pro, big: bytes
) -> None:
    ins, _pid = factory.open_record(pro.headers)
    dr = docref(ins, content=big, author_rpps=pro.rpps)
    [did] = created_doc_ids(factory.publish(ins, [(dr, big, "application/pdf")], pro.headers))
    url = http.get(f"/fhir/DocumentReference/{did}", headers=pro.headers).json()["content"][0][
        "attachment"
    ]["url"]
    r = http.get(url, headers=pro.headers)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/pdf"
    assert r.headers["content-length"] == str(len(big))
    assert r.headers["accept-ranges"] == "bytes"
    sha = hashlib.sha256(big).hexdigest()
    assert r.headers["etag"] == f'"{sha}"'
    assert r.content == big
    tag = r.headers["etag"]
    # conditional GET
    nm = http.get(url, headers={**pro.headers, "If-None-Match": tag})
    assert nm.status_code == 304 and nm.content == b""
    assert nm.headers["etag"] == tag
    for value in (f"W/{tag}", f'"nope", {tag}', "*"):
        assert http.get(url, headers={**pro.headers, "If-None-Match": value}).status_code == 304
    assert http.get(url, headers={**pro.headers, "If-None-Match": '"other"'}).status_code == 200
    size = len(big)

    def ranged(spec: str, start: int, end: int) -> None:
        g = http.get(url, headers={**pro.headers, "Range": spec})
        assert g.status_code == 206, (spec, g.status_code, g.text[:200])
        assert g.headers["content-range"] == f"bytes {start}-{end - 1}/{size}", spec
        assert g.headers["content-length"] == str(end - start)
        assert g.headers["content-type"] == "application/pdf"
        assert g.content == big[start:end], spec

    ranged("bytes=0-9", 0, 10)
    ranged("bytes=-5", size - 5, size)
    ranged("bytes=0-0", 0, 1)
    ranged(f"bytes={MIB - 10}-{MIB + 9}", MIB - 10, MIB + 10)  # across the first boundary
    ranged(f"bytes={MIB}-{MIB}", MIB, MIB + 1)  # first byte of the second chunk
    ranged(f"bytes={MIB - 1}-{2 * MIB}", MIB - 1, 2 * MIB + 1)  # spans three chunks
    ranged(f"bytes={2 * MIB + 5}-", 2 * MIB + 5, size)  # open-ended, inside the last chunk
    ranged(f"bytes={MIB // 2}-", MIB // 2, size)  # open-ended, across every boundary
    ranged(f"bytes=0-{size + 1000}", 0, size)  # end past the size is clipped
    ranged(f"bytes=-{size + 10}", 0, size)  # suffix longer than the content
    ranged(f"bytes={size - 1}-", size - 1, size)
    # unsatisfiable
    for spec in (f"bytes={size}-", f"bytes={size + 5}-{size + 10}", "bytes=-0"):
        g = http.get(url, headers={**pro.headers, "Range": spec})
        assert g.status_code == 416, spec
        assert g.headers["content-range"] == f"bytes */{size}"
    # If-Range with another validator: the whole content
    whole = http.get(url, headers={**pro.headers, "Range": "bytes=0-9", "If-Range": '"x"'})
    assert whole.status_code == 200 and whole.content == big
    same = http.get(url, headers={**pro.headers, "Range": "bytes=0-9", "If-Range": tag})
    assert same.status_code == 206 and same.content == big[:10]
    # FHIR JSON Binary when asked for
    fj = http.get(url, headers={**pro.headers, "Accept": "application/fhir+json"})
    assert fj.status_code == 200
    body = fj.json()
    assert body["resourceType"] == "Binary" and body["contentType"] == "application/pdf"
    assert base64.b64decode(body["data"]) == big


def test_retrieve_keeps_content_type(http: httpx.Client, factory: Factory, pro: Pro) -> None:
    ins, _pid = factory.open_record(pro.headers)
    text = "Compte rendu : état général conservé.\n".encode()
    xml = b'<?xml version="1.0"?><ClinicalDocument xmlns="urn:hl7-org:v3"/>'
    docs = [
        (
            docref(ins, content=text, content_type="text/plain", author_rpps=pro.rpps),
            text,
            "text/plain",
        ),
        (
            docref(
                ins,
                content=xml,
                content_type="application/xml",
                format_code="urn:ihe:iti:xds:2017:mimeTypeSufficient",
                author_rpps=pro.rpps,
            ),
            xml,
            "application/xml",
        ),
    ]
    ids = created_doc_ids(factory.publish(ins, docs, pro.headers))
    for did, (_dr, content, ctype) in zip(ids, docs, strict=True):
        g = http.get(f"/fhir/Binary/{did}", headers=pro.headers)
        assert g.status_code == 200
        assert g.headers["content-type"].split(";")[0] == ctype
        assert g.content == content


def _stream(total: int, seed: int, chunk: int = 256 * 1024) -> tuple[Iterator[bytes], Any]:
    """A generator of ``total`` pseudo-random bytes and the SHA-256 it will have produced."""
    digest = hashlib.sha256()

    def gen() -> Iterator[bytes]:
        rng = random.Random(seed)
        left = total
        while left:
            n = min(chunk, left)
            part = rng.randbytes(n)
            digest.update(part)
            left -= n
            yield part

    return gen(), digest


@pytest.mark.parametrize("via", ["iti105", "iti65"])
def test_raw_binary_upload_20mb(
    http: httpx.Client, factory: Factory, pro: Pro, other_pro: Pro, via: str
) -> None:
    ins, pid = factory.open_record(pro.headers)
    size = 20 * 1000 * 1000
    body, digest = _stream(size, seed=len(via))
    r = http.post(
        "/fhir/Binary",
        content=body,  # an iterator: sent chunked, never whole in memory on either side
        headers={
            **pro.headers,
            "Content-Type": "application/pdf",
            "X-Security-Context": f"Patient/{pid}",
        },
    )
    assert r.status_code == 201, r.text
    location = r.headers["location"]
    bid = location.rsplit("/Binary/", 1)[1]
    assert str(size) in r.json()["issue"][0]["diagnostics"]
    sha = digest.hexdigest()
    # the uploader reads it back before any DocumentReference points at it; nobody else does
    staged = http.get(f"/fhir/Binary/{bid}", headers={**pro.headers, "Range": "bytes=0-3"})
    assert staged.status_code == 206
    outcome(http.get(f"/fhir/Binary/{bid}", headers=other_pro.headers), 404)
    # another professional cannot reference somebody else's upload
    other_dr = docref(ins, binary_url=f"Binary/{bid}", author_rpps=other_pro.rpps)
    outcome(
        http.post(
            "/fhir/DocumentReference", json=other_dr, headers={**other_pro.headers, **FHIR_JSON}
        ),
        422,
    )
    dr = docref(ins, binary_url=f"Binary/{bid}", author_rpps=pro.rpps)
    dr["content"][0]["attachment"]["size"] = size
    if via == "iti105":
        p = http.post("/fhir/DocumentReference", json=dr, headers={**pro.headers, **FHIR_JSON})
        assert p.status_code == 201, p.text
        did = p.json()["id"]
    else:
        b = bundle(ins, [])
        b["entry"][0]["resource"]["entry"] = [{"item": {"reference": "urn:uuid:doc-1"}}]
        b["entry"].append(
            {
                "fullUrl": "urn:uuid:doc-1",
                "resource": dr,
                "request": {"method": "POST", "url": "DocumentReference"},
            }
        )
        p = http.post("/fhir", json=b, headers={**pro.headers, **FHIR_JSON})
        [did] = created_doc_ids(p)
    doc = http.get(f"/fhir/DocumentReference/{did}", headers=pro.headers).json()
    att = doc["content"][0]["attachment"]
    assert att["size"] == size
    assert att["url"].endswith(f"/Binary/{bid}")
    got = hashlib.sha256()
    n = 0
    with http.stream("GET", att["url"], headers=pro.headers) as s:
        assert s.status_code == 200
        assert s.headers["content-type"] == "application/pdf"
        assert s.headers["etag"] == f'"{sha}"'
        for part in s.iter_bytes():
            got.update(part)
            n += len(part)
    assert n == size
    assert got.hexdigest() == sha
    # the patient reads it too
    me = factory.patient(ins)
    tail = http.get(att["url"], headers={**me, "Range": "bytes=-16"})
    assert tail.status_code == 206 and len(tail.content) == 16


def test_raw_binary_upload_errors(
    http: httpx.Client, factory: Factory, pro: Pro, server: Server
) -> None:
    _ins, pid = factory.open_record(pro.headers)
    ok = {**pro.headers, "Content-Type": "application/pdf", "X-Security-Context": f"Patient/{pid}"}
    before = content_files(server.settings.data_dir)
    # no security context
    outcome(
        http.post(
            "/fhir/Binary", content=b"x", headers={**pro.headers, "Content-Type": "application/pdf"}
        ),
        400,
    )
    # JSON is not raw content
    outcome(
        http.post(
            "/fhir/Binary", content=b"{}", headers={**ok, "Content-Type": "application/fhir+json"}
        ),
        415,
    )
    # no content type
    r = http.post(
        "/fhir/Binary",
        content=b"x",
        headers={**pro.headers, "X-Security-Context": f"Patient/{pid}", "Content-Type": ""},
    )
    outcome(r, 415)
    # unknown record
    outcome(
        http.post(
            "/fhir/Binary", content=b"x", headers={**ok, "X-Security-Context": "Patient/nope"}
        ),
        404,
    )
    assert content_files(server.settings.data_dir) == before
    # a patient uploads to their own record only
    ins2, pid2 = factory.open_record(pro.headers)
    me = factory.patient(ins2)
    mine = http.post(
        "/fhir/Binary",
        content=b"%PDF-1.4 patient",
        headers={**me, "Content-Type": "application/pdf", "X-Security-Context": f"Patient/{pid2}"},
    )
    assert mine.status_code == 201, mine.text
    theirs = http.post(
        "/fhir/Binary",
        content=b"%PDF-1.4 patient",
        headers={**me, "Content-Type": "application/pdf", "X-Security-Context": f"Patient/{pid}"},
    )
    assert theirs.status_code in (403, 404)
    outcome(theirs, theirs.status_code)
