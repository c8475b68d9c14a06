"""``python -m bench.run``: the foundation benchmark (ITI-65 publish, ITI-67 search) over HTTP.

See bench/README.md. Each backend gets a fresh database and data directory, a uvicorn server in
a subprocess on 127.0.0.1, and a closed-loop httpx load generator in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import secrets
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx
import orjson
from rich.console import Console
from rich.table import Table

from bench.load import MAX_REQUESTS, MAX_SECONDS, Clients, LoadResult, Request, run_load
from bench.server import (
    PG_ADMIN_DSN,
    ServerProcess,
    counters_per_request,
    database_counters,
    database_size,
    postgres_answers,
    postgres_info,
)
from bench.sysinfo import (
    REPO,
    CpuSampler,
    export_source,
    git_state,
    loadavg,
    machine,
    package_versions,
)

console = Console()
if not console.is_terminal:
    console = Console(width=160)
FHIR_JSON = "application/fhir+json"
PROFESSIONAL = {"kind": "professional", "rpps": "899700218896", "profession": "10"}
SCENARIOS = ("publish", "search-patient", "search-identifier")
TARGET = "1,000 ITI-65 publishes/s (one 50 KB PDF each) on 2 cores with PostgreSQL"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    ap.add_argument(
        "--backend",
        choices=["sqlite", "postgresql", "both"],
        default=None,
        help="default: both if PostgreSQL answers on 127.0.0.1:5432, else sqlite",
    )
    ap.add_argument("--seconds", type=float, default=20.0, help="measured seconds per scenario")
    ap.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds per scenario")
    ap.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    ap.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    ap.add_argument(
        "--max-requests", type=int, default=200_000, help="cap on requests per scenario"
    )
    ap.add_argument(
        "--same-content",
        action="store_true",
        help="send the very same 50 KB in every document (the store then deduplicates it) "
        "instead of varying 24 bytes per document",
    )
    ap.add_argument("--publish-patients", type=int, default=200)
    ap.add_argument("--search-patients", type=int, default=100)
    ap.add_argument("--docs-per-patient", type=int, default=10)
    ap.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated subset of {', '.join(SCENARIOS)}",
    )
    ap.add_argument(
        "--source",
        default="worktree",
        help="code under test: the working tree (default), or a git ref (e.g. HEAD) exported "
        "read-only with git archive, immune to edits made while the benchmark runs",
    )
    ap.add_argument("--pg-dsn", default=PG_ADMIN_DSN, help="admin DSN used to create databases")
    ap.add_argument("--results-dir", type=Path, default=REPO / "bench" / "results")
    ap.add_argument("--no-save", action="store_true", help="do not write the JSON results")
    ap.add_argument(
        "--profile",
        action="store_true",
        help="record the server with py-spy during the measured publish scenario",
    )
    ap.add_argument(
        "--profile-native",
        action="store_true",
        help="with --profile: also sample native frames (C extensions); costlier",
    )
    ap.add_argument("--profile-dir", type=Path, default=Path("/tmp/carnet-bench-profile"))
    args = ap.parse_args(argv)
    if args.backend is None:
        args.backend = "both" if postgres_answers() else "sqlite"
    if not 0 < args.seconds <= MAX_SECONDS:
        ap.error(f"--seconds must be in (0, {MAX_SECONDS:.0f}]")
    if not 1 <= args.max_requests <= MAX_REQUESTS:
        ap.error(f"--max-requests must be in [1, {MAX_REQUESTS}]")
    if not 1 <= args.concurrency <= 1024:
        ap.error("--concurrency must be in [1, 1024]")
    if not 1 <= args.workers <= 64:
        ap.error("--workers must be in [1, 64]")
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        ap.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    args.scenarios = scenarios
    return args


async def _setup(
    clients: Clients,
    requests: list[Request],
    concurrency: int,
    what: str,
) -> list[httpx.Response]:
    """Send untimed set-up requests; every one must succeed."""
    todo = iter(enumerate(requests))
    responses: list[httpx.Response | None] = [None] * len(requests)

    async def worker(client: httpx.AsyncClient) -> None:
        for i, (method, path, headers, body, params) in todo:
            responses[i] = await client.request(
                method, path, headers=headers, content=body, params=params
            )

    await asyncio.gather(*(worker(c) for c in clients.clients[:concurrency]))
    done = [r for r in responses if r is not None]
    bad = [r for r in done if not 200 <= r.status_code < 300]
    if bad or len(done) != len(requests):
        first = f"{bad[0].status_code} {bad[0].text}" if bad else "missing responses"
        raise RuntimeError(f"{what}: {len(bad)} failed, first: {first}")
    return done


class Indexer:
    """Request numbers never reused across warm-up and measurement (unique identifiers)."""

    def __init__(self) -> None:
        self.next = 0

    def advance(self, result: LoadResult) -> None:
        self.next += result.sent


async def measure(
    name: str,
    clients: Clients,
    make: Callable[[int], Request],
    index: Indexer,
    args: argparse.Namespace,
    server: ServerProcess,
    *,
    profile: bool = False,
) -> dict[str, Any]:
    if args.warmup > 0:
        warm = await run_load(
            clients,
            make,
            concurrency=args.concurrency,
            seconds=args.warmup,
            max_requests=args.max_requests,
            start_index=index.next,
        )
        index.advance(warm)
    recorder = None
    profile_file = None
    if profile:
        from bench.profile import start_recording

        args.profile_dir.mkdir(parents=True, exist_ok=True)
        profile_file = args.profile_dir / f"{server.backend}-{name}.raw.txt"
        recorder = start_recording(
            server.pid,
            args.seconds,
            profile_file,
            subprocesses=args.workers > 1,
            native=args.profile_native,
        )
        await asyncio.sleep(0.5)  # let py-spy attach
    counters = await database_counters(server.dsn) if server.dsn else None
    sampler = CpuSampler(server.pid, server.dbname)
    load_before = loadavg()
    sampler.start()
    result = await run_load(
        clients,
        make,
        concurrency=args.concurrency,
        seconds=args.seconds,
        max_requests=args.max_requests,
        start_index=index.next,
    )
    cpu = sampler.stop(result.ok)
    index.advance(result)
    metrics = result.metrics()
    metrics["cpu"] = cpu
    metrics["loadavg_before"] = load_before
    if counters is not None and server.dsn:
        # Backends flush their statistics at most once a second (an idle one may wait
        # longer): counts are approximate, to about a second of traffic at either end.
        await asyncio.sleep(1.1)
        metrics["pg_stat_database_per_request"] = counters_per_request(
            counters, await database_counters(server.dsn), result.ok
        )
    if recorder is not None and profile_file is not None:
        out, _ = await asyncio.to_thread(recorder.communicate, None, args.seconds + 60)
        from bench.profile import report

        spy_out = out.decode(errors="replace")[-2000:]
        if profile_file.exists():
            report_file = args.profile_dir / f"{server.backend}-{name}.report.txt"
            report_file.write_text(report(profile_file, wall_seconds=args.seconds) + "\n")
            metrics["profile"] = {"raw": str(profile_file), "report": str(report_file)}
        else:
            console.print(f"    [red]py-spy recorded nothing[/red]: {spy_out}")
            metrics["profile"] = {"error": spy_out}
    errs = metrics["errors"]
    console.print(
        f"  {name}: {metrics['ok_per_s']}/s, p50 {metrics['latency_ms']['p50']} ms, "
        f"p99 {metrics['latency_ms']['p99']} ms, errors {errs}"
    )
    other = cpu["other_percent"] + cpu["pg_other_percent"] + cpu["unaccounted_percent"]
    metrics["disturbed"] = other > 15
    if metrics["disturbed"]:
        console.print(
            f"    [yellow]warning[/yellow]: other work used {other:.0f} % of the machine during "
            f"this scenario (load average before: {load_before}); throughput and latency are "
            "understated, the CPU per request figures are less affected"
        )
    for sample in metrics["error_samples"][:3]:
        console.print(f"    [red]error {sample['status']}[/red]: {sample['body'][:300]}")
    return metrics


async def run_backend(server: ServerProcess, args: argparse.Namespace) -> dict[str, Any]:
    from bench.payloads import TEST_OID, BundleFactory, patient_body, pseudo_pdf, unique_inses

    run_id = secrets.randbelow(10**9)
    payload = pseudo_pdf()
    scenarios: dict[str, Any] = {}
    setup: dict[str, Any] = {}
    async with Clients(server.url, args.concurrency) as clients:
        client = clients.first
        r = await client.post("/dev/token", json=PROFESSIONAL)
        r.raise_for_status()
        auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
        post_headers = {**auth, "Content-Type": FHIR_JSON, "Accept": FHIR_JSON}
        get_headers = {**auth, "Accept": FHIR_JSON}

        n_pub, n_search = args.publish_patients, args.search_patients
        inses = unique_inses(n_pub + n_search, seed=run_id)
        t0 = time.perf_counter()
        created = await _setup(
            clients,
            [("POST", "/fhir/Patient", post_headers, patient_body(i), None) for i in inses],
            min(16, args.concurrency),
            "creating patients",
        )
        ids = [resp.json()["id"] for resp in created]
        setup["patients"] = len(ids)
        setup["patients_seconds"] = round(time.perf_counter() - t0, 2)
        pub_inses = inses[:n_pub]
        search = list(zip(ids[n_pub:], inses[n_pub:], strict=True))
        console.print(f"  {len(ids)} patients created in {setup['patients_seconds']} s")

        if "publish" in args.scenarios:
            factory = BundleFactory(
                pub_inses, payload, run_id, unique_content=not args.same_content
            )
            index = Indexer()
            first = factory.make(index.next)
            check = await client.post("/fhir", content=first, headers=post_headers)
            index.next += 1
            if check.status_code != 200 or '"transaction-response"' not in check.text:
                raise RuntimeError(f"publish check failed: {check.status_code} {check.text[:800]}")
            setup["publish_body_bytes"] = len(first)

            def make_publish(n: int) -> Request:
                return ("POST", "/fhir", post_headers, factory.make(n), None)

            scenarios["publish"] = await measure(
                "publish", clients, make_publish, index, args, server, profile=args.profile
            )

        if any(s.startswith("search") for s in args.scenarios):
            # Load the searched patients' documents (untimed), docs_per_patient each.
            factory_s = BundleFactory(
                [ins for _, ins in search],
                payload,
                run_id + 1,
                unique_content=not args.same_content,
            )
            total = len(search) * args.docs_per_patient
            t0 = time.perf_counter()
            make_load: Callable[[int], Request] = lambda n: (  # noqa: E731
                "POST",
                "/fhir",
                post_headers,
                factory_s.make(n),
                None,
            )
            loaded = await run_load(
                clients,
                make_load,
                concurrency=args.concurrency,
                seconds=MAX_SECONDS,
                max_requests=total,
            )
            setup["search_load_errors"] = loaded.errors
            setup["search_load_error_samples"] = loaded.error_samples[:3]
            retry = loaded.failed
            for _attempt in range(3):  # the searched patients need all their documents
                if not retry:
                    break
                failed: list[int] = []
                for n in retry:
                    method, path, headers, body, params = make_load(n)
                    r = await client.request(method, path, headers=headers, content=body)
                    if not 200 <= r.status_code < 300:
                        failed.append(n)
                retry = failed
            if retry:
                raise RuntimeError(f"loading search data: {loaded.error_samples[:2]}")
            if loaded.errors:
                console.print(
                    f"  [yellow]{loaded.errors} errors while loading search data (retried one "
                    f"at a time), first: {loaded.error_samples[0]['body'][:200]}[/yellow]"
                )
            setup["search_documents_loaded"] = total
            setup["search_load_seconds"] = round(time.perf_counter() - t0, 2)
            setup["search_load_docs_per_s"] = round(loaded.ok / loaded.elapsed, 1)
            console.print(
                f"  {loaded.ok} documents loaded for search in {setup['search_load_seconds']} s"
            )

            def make_by_id(n: int) -> Request:
                pid, _ins = search[n % len(search)]
                return (
                    "GET",
                    "/fhir/DocumentReference",
                    get_headers,
                    None,
                    {"patient": pid, "_count": "20"},
                )

            def make_by_identifier(n: int) -> Request:
                _pid, ins = search[n % len(search)]
                return (
                    "GET",
                    "/fhir/DocumentReference",
                    get_headers,
                    None,
                    {"patient.identifier": f"urn:oid:{TEST_OID}|{ins}", "_count": "20"},
                )

            for name, make in (
                ("search-patient", make_by_id),
                ("search-identifier", make_by_identifier),
            ):
                if name not in args.scenarios:
                    continue
                method, path, headers, _body, params = make(0)
                probe = await client.request(method, path, headers=headers, params=params)
                body = probe.json() if probe.status_code == 200 else {}
                found = {
                    "status": probe.status_code,
                    "total": body.get("total"),
                    "entries": len(body.get("entry") or []),
                    "expected": args.docs_per_patient,
                }
                if found["entries"] != args.docs_per_patient:
                    raise RuntimeError(f"{name} check failed: {found} {probe.text[:800]}")
                metrics = await measure(name, clients, make, Indexer(), args, server)
                metrics["check"] = found
                scenarios[name] = metrics

    return {"setup": setup, "scenarios": scenarios}


def _loop_factory() -> tuple[Callable[[], asyncio.AbstractEventLoop] | None, str]:
    try:
        import uvloop
    except ImportError:
        return None, "asyncio"
    return uvloop.new_event_loop, "uvloop"


def run_async(coro: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    factory, _name = _loop_factory()
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)


def bench_backend(backend: str, args: argparse.Namespace, common: dict[str, Any]) -> Path | None:
    console.rule(f"[bold]{backend}[/bold]")
    server = ServerProcess(
        backend, args.workers, admin_dsn=args.pg_dsn, source_root=args.source_root
    )
    started = time.perf_counter()
    pg: dict[str, Any] | None = None
    try:
        server.start()
        console.print(f"  server pid {server.pid} on {server.url}, data in {server.data_dir}")
        if server.dsn:
            pg = asyncio.run(postgres_info(server.dsn))
        outcome = run_async(run_backend(server, args))
        if server.dsn:
            outcome["setup"]["database_after"] = asyncio.run(database_size(server.dsn))
        outcome["setup"]["server_log_error_lines"] = server.log_error_count()
        if outcome["setup"]["server_log_error_lines"]:
            outcome["setup"]["server_log_first_errors"] = server.log_first_errors()
        outcome["setup"]["server_rss_mib"] = _rss_mib(server.pid)
    except Exception:
        console.print(f"[red]server log tail:[/red]\n{server.log_tail()}")
        raise
    finally:
        server.stop()
        server.cleanup()
    doc = {
        "benchmark": "foundation",
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "backend": backend,
        **common,
        "postgresql": pg,
        "duration_s": round(time.perf_counter() - started, 1),
        **outcome,
    }
    doc["parameters"] = {**common["parameters"], "backend": backend}
    console.print(f"  backend done in {doc['duration_s']} s")
    if args.no_save:
        _remember(doc)
        return None
    args.results_dir.mkdir(parents=True, exist_ok=True)
    path = args.results_dir / f"{dt.date.today().isoformat()}-foundation-{backend}.json"
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    _remember(doc)
    return path


def _rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


_DONE: list[dict[str, Any]] = []


def _remember(doc: dict[str, Any]) -> None:
    _DONE.append(doc)


def summary_table(docs: list[dict[str, Any]]) -> Table:
    t = Table(title="carnet foundation benchmark", show_lines=False)
    for col, justify in (
        ("backend", "left"),
        ("scenario", "left"),
        ("ok/s", "right"),
        ("p50 ms", "right"),
        ("p95 ms", "right"),
        ("p99 ms", "right"),
        ("errors", "right"),
        ("requests", "right"),
        ("server ms/req", "right"),
        ("pg ms/req", "right"),
        ("loadgen ms/req", "right"),
        ("pg conns opened", "right"),
        ("machine busy", "right"),
        ("other work", "right"),
    ):
        t.add_column(col, justify=justify, no_wrap=col in ("backend", "scenario"))  # type: ignore[arg-type]
    for doc in docs:
        for name, m in doc["scenarios"].items():
            cpu = m["cpu"]
            t.add_row(
                doc["backend"],
                name,
                f"{m['ok_per_s']:,.1f}",
                f"{m['latency_ms']['p50']:.1f}",
                f"{m['latency_ms']['p95']:.1f}",
                f"{m['latency_ms']['p99']:.1f}",
                f"[red]{m['errors']}[/red]" if m["errors"] else "0",
                f"{m['requests']:,}",
                f"{cpu.get('server_ms_per_request', float('nan')):.2f}",
                f"{cpu.get('pg_ms_per_request', float('nan')):.2f}",
                f"{cpu.get('loadgen_ms_per_request', float('nan')):.2f}",
                str(cpu.get("pg_backends_started", "")) if doc["backend"] == "postgresql" else "",
                f"{cpu['machine_busy_percent']:.0f} %",
                f"{cpu['other_percent'] + cpu['pg_other_percent']:.0f} %",
            )
    return t


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    if "postgresql" in backends and not postgres_answers():
        console.print("[red]PostgreSQL does not answer on 127.0.0.1:5432[/red]")
        return 2
    args.source_root = REPO
    if args.source != "worktree":
        args.source_root = export_source(args.source)
        # this process builds its requests with the same tree's tests.factories
        sys.path[:0] = [str(args.source_root / "src"), str(args.source_root)]
    from bench.payloads import PAYLOAD_SIZE

    _factory, loop_name = _loop_factory()
    common: dict[str, Any] = {
        "machine": machine(),
        "git": git_state(args.source),
        "packages": package_versions(
            [
                "fastapi",
                "starlette",
                "uvicorn",
                "sqlalchemy",
                "asyncpg",
                "aiosqlite",
                "pydantic",
                "fhir.resources",
                "orjson",
                "httpx",
                "uvloop",
                "httptools",
            ]
        ),
        "target": TARGET,
        "parameters": {
            "seconds": args.seconds,
            "warmup_seconds": args.warmup,
            "concurrency": args.concurrency,
            "workers": args.workers,
            "max_requests": args.max_requests,
            "publish_patients": args.publish_patients,
            "search_patients": args.search_patients,
            "docs_per_patient": args.docs_per_patient,
            "payload_bytes": PAYLOAD_SIZE,
            "unique_content": not args.same_content,
            "scenarios": args.scenarios,
            "source": args.source,
            "profiled": args.profile,
            "server": "python -m uvicorn --factory carnet.app:create_app (subprocess, "
            "--no-access-log, default db_pool_size)",
            "load_generator": f"httpx.AsyncClient, closed loop, {loop_name}, 127.0.0.1 only",
        },
    }
    console.print(
        f"carnet foundation benchmark: backends {', '.join(backends)}; {args.seconds:g} s "
        f"(+{args.warmup:g} s warm-up) per scenario; concurrency {args.concurrency}; "
        f"{args.workers} worker(s); git {common['git']['commit']}"
        + (" (working tree modified)" if common["git"]["dirty"] else "")
    )
    paths = [bench_backend(b, args, common) for b in backends]
    console.print(summary_table(_DONE))
    for p in paths:
        if p is not None:
            console.print(f"results: {p.relative_to(REPO) if p.is_relative_to(REPO) else p}")
    for doc in _DONE:
        for name, m in doc["scenarios"].items():
            if "report" in m.get("profile", {}):
                console.print(f"profile of {doc['backend']} {name}: {m['profile']['report']}")
                console.print(Path(m["profile"]["report"]).read_text())
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
