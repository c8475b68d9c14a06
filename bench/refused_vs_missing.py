"""Refused against missing (issue 7): does a refusal take as long as an answer about nothing?

A refused read answers exactly like a missing one (same status, same body); if it takes
measurably longer, the clock still tells them apart. This benchmark measures, against a real
server (a subprocess, as bench/run.py starts it), the latency of pairs of requests that must be
indistinguishable, sent one at a time on one keep-alive connection (bench/rawhttp.py), the two
kinds interleaved A B B A … so that drift (other people's work on the shared cores, the
database's caches, the trace tables growing) falls on both alike. Each pair's medians and p90s
are compared: the target is a ratio within 10 % (0.9 to 1.1).

- ``read``: ``GET DocumentReference/<id>`` of a document the caller may not read, against an
  id that does not exist, in the same record;
- ``binary``: ``GET Binary/<id>`` of that document, against an id that does not exist;
- ``replace``: ITI-65 whose ``relatesTo replaces`` names a document the caller may not read,
  against one naming an id that does not exist in the record;
- ``publish-unique-id``: ITI-65 whose uniqueId a document the caller may not read has (masked),
  against one whose uniqueId the caller's own document has, other content;
- ``publish-unique-id-content``: the hidden document's uniqueId with its very content, against
  other content;
- ``publish-other-ins``: a patient's ITI-65 to another person's record, against one to an INS
  that has no record.

For a uniqueId there is no "missing" counterpart that answers the same: a free uniqueId is
stored (201). What must not tell anything is *which* document holds it, so the fair pair is a
collision with a document the caller may not read against a collision the caller could have
caused themselves (their own document, other content): one answer, byte for byte, and the same
time. The second uniqueId pair checks that the content of a hidden document is no oracle either.

    .venv/bin/python -m bench.refused_vs_missing                     # both backends
    .venv/bin/python -m bench.refused_vs_missing --backend sqlite --reads 300 --publishes 100

Writes bench/results/<date>-refused-vs-missing-<backend>.json (machine, git state, packages,
parameters, every pair's figures) unless ``--no-save``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import secrets
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.rawhttp import RawConnection
from bench.server import ServerProcess, postgres_answers
from bench.sysinfo import REPO, git_state, machine, package_versions
from tests.factories import (
    FHIR_JSON,
    Factory,
    bundle,
    created_doc_ids,
    docref,
    random_nir,
    random_rpps,
)

BENCHMARK = "refused-vs-missing"
TARGET = 0.10  # |ratio - 1| of the medians (and p90s) at most this
PAIRS = (
    "read",
    "binary",
    "replace",
    "publish-unique-id",
    "publish-unique-id-content",
    "publish-other-ins",
)
READS = ("read", "binary")

Request = tuple[str, str, dict[str, str], bytes | None]  # method, path, headers, body


def _pdf(n: int) -> bytes:
    """A small content, different for every ``n``."""
    return b"%PDF-1.4\n% carnet bench refused-vs-missing " + f"{n:012d}".encode() + b" " * 900


def _uid() -> str:
    return f"urn:oid:1.2.250.1.999.77.{secrets.randbelow(10**15)}"


def _bundle(
    ins: str,
    rpps: str,
    *,
    unique_id: str | None = None,
    content: bytes,
    class_code: str = "10",
    replaces: str | None = None,
) -> bytes:
    dr = docref(
        ins,
        unique_id=unique_id or _uid(),
        content=content,
        author_rpps=rpps,
        class_code=class_code,
        replaces=replaces,
    )
    return orjson.dumps(bundle(ins, [(dr, content, "application/pdf")]))


@dataclass
class World:
    """A record opened by ``author``; documents the stranger may not read (``hidden``, one
    masked), the stranger's own document, and a patient with a record of their own."""

    ins: str
    pid: str
    author: dict[str, str]
    author_rpps: str
    stranger: dict[str, str]
    stranger_rpps: str
    patient: dict[str, str]  # another person, with a record of their own
    hidden: list[str] = field(default_factory=list)
    masked_uid: str = ""
    masked_content: bytes = b""
    own_uid: str = ""


def build_world(url: str, docs: int) -> World:
    with httpx.Client(base_url=url, timeout=60) as http:
        factory = Factory(http)
        author_rpps, stranger_rpps = random_rpps(), random_rpps()
        author = factory.professional(rpps=author_rpps)
        stranger = factory.professional(rpps=stranger_rpps)
        ins, pid = factory.open_record(author)
        other_ins, _ = factory.open_record(author)
        w = World(
            ins, pid, author, author_rpps, stranger, stranger_rpps, factory.patient(other_ins)
        )
        for n in range(docs):
            r = http.post(
                "/fhir",
                content=_bundle(ins, author_rpps, content=_pdf(n)),
                headers={**author, **FHIR_JSON},
            )
            w.hidden += created_doc_ids(r)
        w.masked_uid, w.masked_content = _uid(), _pdf(10**6)
        dr = docref(
            ins,
            unique_id=w.masked_uid,
            content=w.masked_content,
            author_rpps=author_rpps,
            labels=["N", "MASQUE_PS"],
        )
        r = factory.publish(ins, [(dr, w.masked_content, "application/pdf")], author)
        created_doc_ids(r)
        w.own_uid = _uid()
        r = http.post(
            "/fhir",
            content=_bundle(ins, stranger_rpps, unique_id=w.own_uid, content=_pdf(10**6 + 1)),
            headers={**stranger, **FHIR_JSON},
        )
        created_doc_ids(r)
        # the stranger reads none of the hidden documents (that is what is measured)
        probe = http.get(f"/fhir/DocumentReference/{w.hidden[0]}", headers=stranger)
        assert probe.status_code == 404, probe.text
    return w


def _missing_id(w: World) -> str:
    return f"{w.pid}-{secrets.token_hex(10)}"


def requests_for(pair: str, w: World, n: int) -> tuple[Request, Request]:
    """The n-th (refused, missing) requests of ``pair``."""
    s = {**w.stranger, "Accept": "application/fhir+json"}
    post = {**w.stranger, **FHIR_JSON}
    if pair == "read":
        doc = w.hidden[n % len(w.hidden)]
        return (
            ("GET", f"/fhir/DocumentReference/{doc}", s, None),
            ("GET", f"/fhir/DocumentReference/{_missing_id(w)}", s, None),
        )
    if pair == "binary":
        doc = w.hidden[n % len(w.hidden)]
        return (
            ("GET", f"/fhir/Binary/{doc}", s, None),
            ("GET", f"/fhir/Binary/{_missing_id(w)}", s, None),
        )
    content = _pdf(2 * 10**6 + n)
    if pair == "replace":
        doc = w.hidden[n % len(w.hidden)]
        return (
            ("POST", "/fhir", post, _bundle(w.ins, w.stranger_rpps, content=content, replaces=doc)),
            (
                "POST",
                "/fhir",
                post,
                _bundle(w.ins, w.stranger_rpps, content=content, replaces=_missing_id(w)),
            ),
        )
    if pair == "publish-unique-id":
        return (
            (
                "POST",
                "/fhir",
                post,
                _bundle(w.ins, w.stranger_rpps, unique_id=w.masked_uid, content=content),
            ),
            (
                "POST",
                "/fhir",
                post,
                _bundle(w.ins, w.stranger_rpps, unique_id=w.own_uid, content=content),
            ),
        )
    if pair == "publish-unique-id-content":
        return (
            (
                "POST",
                "/fhir",
                post,
                _bundle(w.ins, w.stranger_rpps, unique_id=w.masked_uid, content=w.masked_content),
            ),
            (
                "POST",
                "/fhir",
                post,
                _bundle(w.ins, w.stranger_rpps, unique_id=w.masked_uid, content=content),
            ),
        )
    if pair == "publish-other-ins":
        headers = {**w.patient, **FHIR_JSON}
        return (
            (
                "POST",
                "/fhir",
                headers,
                _bundle(w.ins, "899700218896", content=content, class_code="90"),
            ),
            (
                "POST",
                "/fhir",
                headers,
                _bundle(random_nir(), "899700218896", content=content, class_code="90"),
            ),
        )
    raise ValueError(pair)


def _stats(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    ms = [x * 1000 for x in ordered]
    return {
        "n": len(ms),
        "median_ms": round(statistics.median(ms), 3),
        "p90_ms": round(ms[min(len(ms) - 1, int(0.9 * len(ms)))], 3),
        "mean_ms": round(statistics.fmean(ms), 3),
        "min_ms": round(ms[0], 3),
    }


async def measure_pair(url: str, pair: str, w: World, count: int, warmup: int) -> dict[str, Any]:
    conn = RawConnection(url)
    # built beforehand: what is timed is the server's answer, not the building of a bundle
    prepared = [requests_for(pair, w, n) for n in range(count + warmup)]
    raw = [
        tuple(conn.encode(m, p, h, b) for (m, p, h, b) in both)  # type: ignore[misc]
        for both in prepared
    ]
    times: dict[str, list[float]] = {"refused": [], "missing": []}
    answers: dict[str, set[tuple[int, bytes]]] = {"refused": set(), "missing": set()}
    try:
        for n, (refused, missing) in enumerate(raw):
            # A B B A: each kind goes first half the time
            order = [("refused", refused), ("missing", missing)]
            if n % 2:
                order.reverse()
            for kind, request in order:
                t0 = time.perf_counter()
                status, _size, body = await conn.send(request)
                elapsed = time.perf_counter() - t0
                if n >= warmup:
                    times[kind].append(elapsed)
                    answers[kind].add((status, body))
    finally:
        await conn.aclose()
    refused, missing = _stats(times["refused"]), _stats(times["missing"])
    ratio_median = refused["median_ms"] / missing["median_ms"]
    ratio_p90 = refused["p90_ms"] / missing["p90_ms"]
    statuses = {k: sorted({s for s, _b in v}) for k, v in answers.items()}
    return {
        "refused": refused,
        "missing": missing,
        "statuses": statuses,
        # one answer for both kinds, body included (its first 600 bytes)
        "answers_identical": len(answers["refused"] | answers["missing"]) == 1,
        "answer": sorted(answers["refused"] | answers["missing"])[0][1].decode(errors="replace"),
        "ratio_median": round(ratio_median, 3),
        "ratio_p90": round(ratio_p90, 3),
        "within_target": abs(ratio_median - 1) <= TARGET and abs(ratio_p90 - 1) <= TARGET,
    }


def run_backend(args: argparse.Namespace, backend: str) -> dict[str, Any]:
    server = ServerProcess(backend=backend, workers=args.workers, source_root=REPO)
    started = time.perf_counter()
    try:
        server.start()
        world = build_world(server.url, args.docs)
        pairs: dict[str, Any] = {}
        for pair in args.pairs:
            count = args.reads if pair in READS else args.publishes
            warmup = args.warmup if pair in READS else max(5, args.warmup // 4)
            pairs[pair] = asyncio.run(measure_pair(server.url, pair, world, count, warmup))
            _print_row(backend, pair, pairs[pair])
        errors = server.log_error_count()
    finally:
        server.stop()
        server.cleanup()
    return {
        "benchmark": BENCHMARK,
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "backend": backend,
        "duration_s": round(time.perf_counter() - started, 1),
        "server_log_error_lines": errors,
        "pairs": pairs,
    }


def _print_row(backend: str, pair: str, r: dict[str, Any]) -> None:
    ok = "ok" if r["within_target"] else "OUT"
    same = "same answer" if r["answers_identical"] else f"ANSWERS DIFFER {r['statuses']}"
    print(
        f"{backend:10} {pair:26} refused {r['refused']['median_ms']:7.2f} / "
        f"{r['refused']['p90_ms']:7.2f} ms   missing {r['missing']['median_ms']:7.2f} / "
        f"{r['missing']['p90_ms']:7.2f} ms   ratio {r['ratio_median']:.3f} / "
        f"{r['ratio_p90']:.3f}  {ok}  {same}",
        flush=True,
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.refused_vs_missing", description=__doc__)
    p.add_argument(
        "--backend",
        choices=("sqlite", "postgresql", "both"),
        default="both" if postgres_answers() else "sqlite",
    )
    p.add_argument("--reads", type=int, default=400, help="requests of each kind per read pair")
    p.add_argument("--publishes", type=int, default=150, help="of each kind per ITI-65 pair")
    p.add_argument("--warmup", type=int, default=40, help="unmeasured requests of each kind first")
    p.add_argument("--docs", type=int, default=20, help="documents the stranger may not read")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument(
        "--pairs", type=lambda s: s.split(","), default=list(PAIRS), help=",".join(PAIRS)
    )
    p.add_argument("--results-dir", type=Path, default=REPO / "bench" / "results")
    p.add_argument("--no-save", action="store_true")
    args = p.parse_args(argv)
    unknown = set(args.pairs) - set(PAIRS)
    if unknown:
        p.error(f"unknown pairs: {', '.join(sorted(unknown))}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    if "postgresql" in backends and not postgres_answers():
        print("PostgreSQL does not answer on 127.0.0.1:5432", file=sys.stderr)
        return 2
    common = {
        "machine": machine(),
        "git": git_state(),
        "packages": package_versions(
            ["starlette", "uvicorn", "sqlalchemy", "asyncpg", "aiosqlite"]
        ),
        "parameters": {k: v for k, v in vars(args).items() if k not in ("results_dir", "no_save")},
        "target": f"refused / missing within 1 ± {TARGET} (medians and p90s)",
        "load_generator": "bench/rawhttp.py, one keep-alive connection, one request at a time",
    }
    print(
        f"{'backend':10} {'pair':26} {'median / p90':>28}   {'median / p90':>28}   "
        "ratio median / p90"
    )
    failed = False
    for backend in backends:
        doc = {**run_backend(args, backend), **common}
        doc["parameters"] = {**common["parameters"], "backend": backend}
        failed |= not all(
            p["within_target"] and p["answers_identical"] for p in doc["pairs"].values()
        )
        if not args.no_save:
            args.results_dir.mkdir(parents=True, exist_ok=True)
            path = args.results_dir / f"{dt.date.today().isoformat()}-{BENCHMARK}-{backend}.json"
            path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
            print(f"  written {path.relative_to(REPO)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
