"""``python -m bench.run``: the core benchmark (ITI-65 publish, ITI-68 retrieve, ITI-67 search)
over HTTP, each beside a minimal asyncpg script doing the same database work in the same run.

See bench/README.md. Each backend gets a fresh database and data directory, a uvicorn server in
a subprocess on 127.0.0.1, and a closed-loop load generator in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
from rich.console import Console
from rich.table import Table

from bench.load import (
    MAX_REQUESTS,
    MAX_SECONDS,
    AnyClients,
    Clients,
    LoadResult,
    RawClients,
    Request,
    run_load,
)
from bench.server import (
    PG_ADMIN_DSN,
    ServerProcess,
    counters_per_request,
    database_counters,
    database_size,
    postgres_answers,
    postgres_info,
    table_counters,
    table_counters_per_request,
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
SCENARIOS = ("floor", "publish", "retrieve", "search-patient", "search-identifier")
BENCHMARK = "core"
DEFAULT_POPULATION_CAP = 4000  # documents loaded through HTTP when the bulk generator is absent

# The targets of the current issue (2 cores, PostgreSQL, every rule, trace, encryption and
# the outbox on). Each: scenario, metric, comparison, value.
TARGETS: list[dict[str, Any]] = [
    {
        "what": "ITI-65 publish throughput",
        "scenario": "publish",
        "metric": "ok_per_s",
        "op": ">=",
        "value": 1000,
        "unit": "documents/s",
    },
    {
        "what": "ITI-65 publish p99",
        "scenario": "publish",
        "metric": "p99",
        "op": "<=",
        "value": 50,
        "unit": "ms",
    },
    {
        "what": "ITI-65 publish vs the minimal script (one-statement CTE)",
        "scenario": "publish",
        "metric": "ratio:minimal-publish-cte",
        "op": ">=",
        "value": 0.6,
        "unit": "×",
    },
    {
        "what": "ITI-65 publish vs the minimal script (transaction of 7 statements)",
        "scenario": "publish",
        "metric": "ratio:minimal-publish-tx",
        "op": ">=",
        "value": 0.6,
        "unit": "×",
    },
    {
        "what": "ITI-67 search throughput",
        "scenario": "search-patient",
        "metric": "ok_per_s",
        "op": ">=",
        "value": 3000,
        "unit": "searches/s",
    },
    {
        "what": "ITI-67 search p50",
        "scenario": "search-patient",
        "metric": "p50",
        "op": "<=",
        "value": 3,
        "unit": "ms",
    },
    {
        "what": "ITI-67 search p99",
        "scenario": "search-patient",
        "metric": "p99",
        "op": "<=",
        "value": 15,
        "unit": "ms",
    },
    {
        "what": "ITI-68 retrieve throughput",
        "scenario": "retrieve",
        "metric": "ok_per_s",
        "op": ">=",
        "value": 3000,
        "unit": "documents/s",
    },
    {
        "what": "server memory per worker process (max RSS, every scenario)",
        "scenario": "*",
        "metric": "max_rss_mb",
        "op": "<=",
        "value": 250,
        "unit": "MB (10^6 bytes)",
    },
]
# carnet scenario -> minimal scripts beside it
MINIMAL_OF = {
    "publish": ("minimal-publish-tx", "minimal-publish-cte"),
    "retrieve": ("minimal-retrieve",),
    "search-patient": ("minimal-search",),
    "search-identifier": ("minimal-search",),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    ap.add_argument(
        "--backend",
        choices=["sqlite", "postgresql", "both"],
        default=None,
        help="default: postgresql if it answers on 127.0.0.1:5432, else sqlite",
    )
    ap.add_argument("--seconds", type=float, default=15.0, help="measured seconds per scenario")
    ap.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds per scenario")
    ap.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    ap.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    ap.add_argument(
        "--max-requests", type=int, default=500_000, help="cap on requests per scenario"
    )
    ap.add_argument(
        "--client",
        choices=["raw", "httpx"],
        default="raw",
        help="load generator of the measured scenarios: raw (asyncio + httptools, cheap) or "
        "httpx (what the first benchmark used)",
    )
    ap.add_argument(
        "--same-content",
        action="store_true",
        help="send the very same 50 KB in every document (the store then deduplicates it) "
        "instead of varying 24 bytes per document",
    )
    ap.add_argument("--publish-patients", type=int, default=1000)
    ap.add_argument("--search-patients", type=int, default=100)
    ap.add_argument("--docs-per-patient", type=int, default=20)
    ap.add_argument(
        "--population",
        default=None,
        metavar="PATIENTSxDOCUMENTS",
        help="search a population loaded by `carnet demo --patients P --documents D "
        "--identities FILE` (e.g. 100000x2000000); without the generator, a smaller one "
        "loaded through HTTP (see --population-cap)",
    )
    ap.add_argument(
        "--population-sample",
        type=int,
        default=1000,
        help="patients of the population searched (round robin)",
    )
    ap.add_argument(
        "--population-cap",
        type=int,
        default=DEFAULT_POPULATION_CAP,
        help="documents loaded through HTTP in place of the population when the bulk "
        "generator is absent",
    )
    ap.add_argument("--no-minimal", action="store_true", help="skip the minimal asyncpg scripts")
    ap.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure each scenario and its minimal script this many times, alternately; "
        "the best round is reported, with every round's figures and ratios",
    )
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
        help="record the server with py-spy during each measured carnet scenario",
    )
    ap.add_argument(
        "--profile-native",
        action="store_true",
        help="with --profile: also sample native frames (C extensions); costlier",
    )
    ap.add_argument(
        "--profile-dir",
        type=Path,
        default=None,
        help="default: /tmp/carnet-bench-profile/<date-time> (a directory per run: other "
        "people's runs on the machine write there too)",
    )
    args = ap.parse_args(argv)
    if args.backend is None:
        args.backend = "postgresql" if postgres_answers() else "sqlite"
    if not 0 < args.seconds <= MAX_SECONDS:
        ap.error(f"--seconds must be in (0, {MAX_SECONDS:.0f}]")
    if not 1 <= args.max_requests <= MAX_REQUESTS:
        ap.error(f"--max-requests must be in [1, {MAX_REQUESTS}]")
    if not 1 <= args.concurrency <= 1024:
        ap.error("--concurrency must be in [1, 1024]")
    if not 1 <= args.rounds <= 20:
        ap.error("--rounds must be in [1, 20]")
    if not 1 <= args.workers <= 64:
        ap.error("--workers must be in [1, 64]")
    if args.publish_patients < 1 or args.search_patients < 1 or args.docs_per_patient < 1:
        ap.error("--publish-patients, --search-patients and --docs-per-patient must be ≥ 1")
    if args.profile_dir is None:
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        args.profile_dir = Path("/tmp/carnet-bench-profile") / stamp
    args.population_size = None
    if args.population:
        from bench.population import parse_population

        try:
            args.population_size = parse_population(args.population)
        except ValueError as exc:
            ap.error(f"--population: {exc}")
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
    attempts: int = 4,
) -> list[httpx.Response]:
    """Send untimed set-up requests; every one must succeed (failures are retried: a busy
    store answers 503)."""
    responses: list[httpx.Response | None] = [None] * len(requests)
    todo = list(range(len(requests)))
    last_bad: httpx.Response | None = None
    for attempt in range(attempts):

        async def worker(client: httpx.AsyncClient, queue: Iterator[int]) -> None:
            for i in queue:
                method, path, headers, body, params = requests[i]
                responses[i] = await client.request(
                    method, path, headers=headers, content=body, params=params
                )

        queue = iter(todo)
        await asyncio.gather(*(worker(c, queue) for c in clients.clients[:concurrency]))
        failed = [i for i in todo if not 200 <= responses[i].status_code < 300]  # type: ignore[union-attr]
        if failed:
            last_bad = responses[failed[0]]
            if attempt == 0:
                console.print(f"  [yellow]{what}: {len(failed)} failed, retrying[/yellow]")
            await asyncio.sleep(0.5)
        todo = failed
        if not todo:
            break
    if todo:
        assert last_bad is not None
        raise RuntimeError(
            f"{what}: {len(todo)} failed, first: {last_bad.status_code} {last_bad.text[:800]}"
        )
    return [r for r in responses if r is not None]


def _locations(response: httpx.Response) -> dict[str, str]:
    """Resource type -> id of a transaction-response's entries (DocumentReference, Binary…)."""
    out: dict[str, str] = {}
    for entry in response.json().get("entry") or []:
        location = (entry.get("response") or {}).get("location") or ""
        parts = location.split("/fhir/", 1)[-1].split("/")
        if len(parts) >= 2:
            out.setdefault(parts[0], parts[1])
    return out


class Indexer:
    """Request numbers never reused across warm-up and measurement (unique identifiers)."""

    def __init__(self) -> None:
        self.next = 0

    def advance(self, result: LoadResult) -> None:
        self.next += result.sent


class Runner:
    """Runs the measured scenarios of one backend against one server."""

    def __init__(self, server: ServerProcess, args: argparse.Namespace) -> None:
        self.server = server
        self.args = args

    async def _measured(
        self,
        name: str,
        go: Callable[[int, float], Awaitable[LoadResult]],
        index: Indexer,
        *,
        profile: bool = False,
        loadgen: str,
    ) -> dict[str, Any]:
        """Warm up, then measure ``go(start_index, seconds)`` with CPU, memory and database
        counters around it."""
        args, server = self.args, self.server
        if args.warmup > 0:
            index.advance(await go(index.next, args.warmup))
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
        tables = await table_counters(server.dsn) if server.dsn else None
        sampler = CpuSampler(server.pid, server.dbname, workers=args.workers)
        load_before = loadavg()
        sampler.start()
        result = await go(index.next, args.seconds)
        cpu = sampler.stop(result.ok)
        index.advance(result)
        metrics = result.metrics()
        metrics["load_generator"] = loadgen
        metrics["cpu"] = cpu
        metrics["server_memory"] = sampler.memory()
        metrics["loadavg_before"] = load_before
        if counters is not None and tables is not None and server.dsn:
            # Backends flush their statistics at most once a second (an idle one may wait
            # longer): counts are approximate, to about a second of traffic at either end.
            await asyncio.sleep(1.1)
            metrics["pg_stat_database_per_request"] = counters_per_request(
                counters, await database_counters(server.dsn), result.ok
            )
            metrics["rows_per_request"] = table_counters_per_request(
                tables, await table_counters(server.dsn), result.ok
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
        _print_metrics(name, metrics)
        return metrics

    async def http(
        self, name: str, clients: AnyClients, make: Callable[[int], Request], index: Indexer
    ) -> dict[str, Any]:
        args = self.args

        async def go(start: int, seconds: float) -> LoadResult:
            return await run_load(
                clients,
                make,
                concurrency=args.concurrency,
                seconds=seconds,
                max_requests=args.max_requests,
                start_index=start,
            )

        loadgen = RawClients.name if isinstance(clients, RawClients) else "httpx.AsyncClient"
        return await self._measured(name, go, index, profile=args.profile, loadgen=loadgen)

    async def minimal(
        self, name: str, op: Callable[[int], Awaitable[None]], index: Indexer
    ) -> dict[str, Any]:
        from bench.minimal import run_ops

        args = self.args

        async def go(start: int, seconds: float) -> LoadResult:
            return await run_ops(
                op,
                concurrency=args.concurrency,
                seconds=seconds,
                max_requests=args.max_requests,
                start_index=start,
            )

        return await self._measured(
            name,
            go,
            index,
            loadgen=f"asyncpg pool of {args.concurrency} connections, {args.concurrency} tasks "
            "(the loadgen CPU is the script's own)",
        )


def keep(scenarios: dict[str, Any], name: str, metrics: dict[str, Any]) -> None:
    """Record a round of ``name``: the best round (most successes per second) stands for the
    scenario, since other work on the machine only ever slows a round down; ``rounds`` keeps
    every round's figures."""
    lat = metrics["latency_ms"]
    this = {
        "ok_per_s": metrics["ok_per_s"],
        "p50_ms": lat["p50"],
        "p99_ms": lat["p99"],
        "errors": metrics["errors"],
        "other_work_percent": round(_other_work(metrics["cpu"]), 1),
        "cpu_ms_per_request": cpu_ms_per_request(metrics),
    }
    prev = scenarios.get(name)
    rounds = [*(prev["rounds"] if prev else []), this]
    best = metrics if prev is None or metrics["ok_per_s"] > prev["ok_per_s"] else prev
    best["rounds"] = rounds
    best["errors_all_rounds"] = sum(r["errors"] for r in rounds)
    scenarios[name] = best


def _round(index: int, rounds: int) -> None:
    if rounds > 1:
        console.print(f"  [bold]round {index + 1} of {rounds}[/bold]")


def _other_work(cpu: dict[str, Any]) -> float:
    """Share of the machine taken by work that is not the benchmark's (noise)."""
    return float(
        cpu["other_percent"]
        + cpu["pg_other_percent"]
        + cpu["unaccounted_percent"]
        + cpu.get("steal_percent", 0.0)
    )


def _print_metrics(name: str, metrics: dict[str, Any]) -> None:
    cpu = metrics["cpu"]
    errs = metrics["errors"]
    mem = metrics["server_memory"]
    rss = mem["max_rss_mib_per_worker"]
    console.print(
        f"  {name}: {metrics['ok_per_s']:,}/s, p50 {metrics['latency_ms']['p50']} ms, "
        f"p99 {metrics['latency_ms']['p99']} ms, errors {errs}; CPU % of the machine: server "
        f"{cpu['server_percent']}, pg {cpu['pg_ours_percent'] + cpu['pg_shared_percent']:.1f}, "
        f"loadgen {cpu['loadgen_percent']}, other work {_other_work(cpu):.0f}"
        + (f"; worker RSS ≤ {rss} MiB" if rss else "")
    )
    other = _other_work(cpu)
    metrics["disturbed"] = other > 15
    if metrics["disturbed"]:
        console.print(
            f"    [yellow]warning[/yellow]: other work used {other:.0f} % of the machine during "
            f"this scenario (load average before: {metrics['loadavg_before']}); throughput and "
            "latency are understated, the CPU per request figures are less affected"
        )
    for sample in metrics["error_samples"][:3]:
        console.print(f"    [red]error {sample['status']}[/red]: {sample['body'][:300]}")


async def run_backend(server: ServerProcess, args: argparse.Namespace) -> dict[str, Any]:
    from bench.payloads import TEST_OID, BundleFactory, patient_body, pseudo_pdf, unique_inses

    run_id = secrets.randbelow(10**9)
    payload = pseudo_pdf()
    scenarios: dict[str, Any] = {}
    setup: dict[str, Any] = {"population": getattr(args, "population_info", None)}
    runner = Runner(server, args)
    minimal = server.dsn is not None and not args.no_minimal
    pool = None
    load_cls = RawClients if args.client == "raw" else Clients
    async with (
        Clients(server.url, args.concurrency) as hclients,
        load_cls(server.url, args.concurrency) as lclients,
    ):
        client = hclients.first
        r = await client.post("/dev/token", json=PROFESSIONAL)
        r.raise_for_status()
        auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
        post_headers = {**auth, "Content-Type": FHIR_JSON, "Accept": FHIR_JSON}
        get_headers = {**auth, "Accept": FHIR_JSON}
        if minimal:
            from bench.minimal import create_pool

            assert server.dsn is not None
            pool = await create_pool(server.dsn, args.concurrency)

        # The HTTP-loaded search set: the population's stand-in without the bulk generator.
        http_patients, http_docs = args.search_patients, args.docs_per_patient
        # the population is PostgreSQL's (its patients are picked with asyncpg)
        population = args.population_size if server.dsn else None
        bulk = bool(setup["population"] and setup["population"].get("loader") == "carnet demo")
        if population and not bulk:
            pop_patients, pop_docs = population
            http_docs = max(1, round(pop_docs / pop_patients))
            http_patients = max(1, min(pop_patients, args.population_cap // http_docs))
        n_pub = args.publish_patients if "publish" in args.scenarios else 1
        inses = unique_inses(n_pub + http_patients, seed=run_id)
        t0 = time.perf_counter()
        created = await _setup(
            hclients,
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

        # -- the floor: the same server and load generator on an empty endpoint -------------------
        if "floor" in args.scenarios:

            def make_floor(n: int) -> Request:
                return ("GET", "/healthz", {}, None, None)

            for rnd in range(args.rounds):
                _round(rnd, args.rounds)
                keep(
                    scenarios, "floor", await runner.http("floor", lclients, make_floor, Indexer())
                )

        # -- ITI-65 publish ---------------------------------------------------------------------
        factory = BundleFactory(pub_inses, payload, run_id, unique_content=not args.same_content)
        pub_index = Indexer()
        first = factory.make(pub_index.next)
        check = await client.post("/fhir", content=first, headers=post_headers)
        pub_index.next += 1
        if check.status_code != 200 or '"transaction-response"' not in check.text:
            raise RuntimeError(f"publish check failed: {check.status_code} {check.text[:800]}")
        setup["publish_body_bytes"] = len(first)
        template = None
        if minimal:
            from bench.minimal import publish_template

            assert server.dsn is not None
            template = await publish_template(server.dsn, _locations(check)["DocumentReference"])
            setup["minimal_publish_rows"] = template.row_counts()
            setup["minimal_publish_bytea_bytes"] = template.byte_sizes()

        if "publish" in args.scenarios:

            def make_publish(n: int) -> Request:
                return ("POST", "/fhir", post_headers, factory.make(n), None)

            mp = None
            if pool is not None and template is not None:
                from bench.minimal import MinimalPublish

                mp = MinimalPublish(template, args.publish_patients, run_id)
                await mp.prepare(pool)
            idx = Indexer()
            for rnd in range(args.rounds):
                _round(rnd, args.rounds)
                keep(
                    scenarios,
                    "publish",
                    await runner.http("publish", lclients, make_publish, pub_index),
                )
                if mp is not None:
                    for name, op in (
                        ("minimal-publish-tx", mp.tx_op(pool)),
                        ("minimal-publish-cte", mp.cte_op(pool)),
                    ):
                        keep(scenarios, name, await runner.minimal(name, op, idx))

        # -- the HTTP-loaded set: documents to retrieve (and to search without a population) ---
        needs_set = "retrieve" in args.scenarios or (
            not bulk and any(s.startswith("search") for s in args.scenarios)
        )
        binaries: list[str] = []
        if needs_set:
            factory_s = BundleFactory(
                [ins for _, ins in search],
                payload,
                run_id + 1,
                unique_content=not args.same_content,
            )
            total = len(search) * http_docs
            t0 = time.perf_counter()
            loaded = await _setup(
                hclients,
                [("POST", "/fhir", post_headers, factory_s.make(n), None) for n in range(total)],
                args.concurrency,
                "loading the search and retrieve documents",
            )
            binaries = [_locations(resp)["Binary"] for resp in loaded]
            setup["http_set"] = {
                "patients": len(search),
                "documents_per_patient": http_docs,
                "documents": total,
                "seconds": round(time.perf_counter() - t0, 2),
                "documents_per_s": round(total / (time.perf_counter() - t0), 1),
            }
            console.print(
                f"  {total} documents loaded through ITI-65 for {len(search)} patients in "
                f"{setup['http_set']['seconds']} s"
            )

        # -- ITI-68 retrieve ----------------------------------------------------------------------
        if "retrieve" in args.scenarios:
            binary_headers = {**auth, "Accept": "application/pdf"}
            probe = await client.get(f"/fhir/Binary/{binaries[0]}", headers=binary_headers)
            if probe.status_code != 200 or len(probe.content) != len(payload):
                raise RuntimeError(
                    f"retrieve check failed: {probe.status_code} {len(probe.content)} bytes "
                    f"{probe.text[:300]}"
                )
            paths = [f"/fhir/Binary/{b}" for b in binaries]

            def make_retrieve(n: int) -> Request:
                return ("GET", paths[n % len(paths)], binary_headers, None, None)

            keys = None
            if pool is not None:
                from bench.minimal import content_keys, retrieve_op

                assert server.dsn is not None
                keys = await content_keys(server.dsn, binaries)
            for rnd in range(args.rounds):
                _round(rnd, args.rounds)
                keep(
                    scenarios,
                    "retrieve",
                    await runner.http("retrieve", lclients, make_retrieve, Indexer()),
                )
                if keys is not None:
                    keep(
                        scenarios,
                        "minimal-retrieve",
                        await runner.minimal(
                            "minimal-retrieve", retrieve_op(pool, keys), Indexer()
                        ),
                    )
            scenarios["retrieve"]["check"] = {"documents": len(paths), "bytes": len(payload)}

        # -- ITI-67 search ------------------------------------------------------------------------
        if any(s.startswith("search") for s in args.scenarios):
            # (record id, INS, INS OID, headers, documents expected)
            targets: list[tuple[str, str, str, dict[str, str], int]]
            if population:
                if not bulk:
                    # the HTTP-loaded stand-in, described as the generator would: the same
                    # path picks the patients and their professionals' tokens
                    _write_identities(
                        Path(setup["population"]["identities_file"]), search, PROFESSIONAL
                    )
                targets = await _population_targets(server, args, client, setup, run_id)
            else:
                targets = [(pid, ins, TEST_OID, get_headers, http_docs) for pid, ins in search]
            expected_page = min(20, targets[0][4])
            by_id_paths = [
                (f"/fhir/DocumentReference?patient={rid}&_count=20", h)
                for rid, _ins, _oid, h, _n in targets
            ]
            by_ins_paths = [
                (
                    f"/fhir/DocumentReference?patient.identifier=urn%3Aoid%3A{oid}%7C{ins}"
                    "&_count=20",
                    h,
                )
                for _rid, ins, oid, h, _n in targets
            ]
            setup["search_set"] = {
                "source": "population (carnet demo)" if bulk else "HTTP-loaded set",
                "patients_searched": len(targets),
                "documents_per_patient_mean": round(sum(t[4] for t in targets) / len(targets), 1),
            }
            makers: list[tuple[str, Callable[[int], Request], dict[str, Any]]] = []
            for name, table in (
                ("search-patient", by_id_paths),
                ("search-identifier", by_ins_paths),
            ):
                if name not in args.scenarios:
                    continue
                path, headers = table[0]
                probe = await client.get(path, headers=headers)
                body = probe.json() if probe.status_code == 200 else {}
                entries = len(body.get("entry") or [])
                found = {
                    "status": probe.status_code,
                    "total": body.get("total"),
                    "entries": entries,
                    "expected": expected_page,
                    "bytes": len(probe.content),
                }
                # a generated population holds documents a professional may not see (masked,
                # or outside their profession's matrix): there, some entries are enough
                wrong = entries < 1 if bulk else entries != expected_page
                if probe.status_code != 200 or wrong:
                    raise RuntimeError(f"{name} check failed: {found} {probe.text[:800]}")

                def make_search(n: int, table: list[tuple[str, dict[str, str]]] = table) -> Request:
                    p, h = table[n % len(table)]
                    return ("GET", p, h, None, None)

                makers.append((name, make_search, found))
            for rnd in range(args.rounds):
                _round(rnd, args.rounds)
                for name, make_s, found in makers:
                    keep(scenarios, name, await runner.http(name, lclients, make_s, Indexer()))
                    scenarios[name]["check"] = found
                if pool is not None:
                    from bench.minimal import search_op

                    keep(
                        scenarios,
                        "minimal-search",
                        await runner.minimal(
                            "minimal-search", search_op(pool, [t[0] for t in targets]), Indexer()
                        ),
                    )
        if pool is not None:
            await pool.close()

    return {"setup": setup, "scenarios": scenarios}


async def _population_targets(
    server: ServerProcess,
    args: argparse.Namespace,
    client: httpx.AsyncClient,
    setup: dict[str, Any],
    seed: int,
) -> list[tuple[str, str, str, dict[str, str], int]]:
    """The searched patients of the bulk-loaded population, each with a token of a
    professional the generated data authorises for them."""
    from bench.population import distinct_professionals, pick_searched, read_identities

    assert server.dsn is not None
    identities = read_identities(Path(setup["population"]["identities_file"]))
    picked, stats = await pick_searched(server.dsn, identities, args.population_sample, seed)
    setup["population"]["identities"] = {
        "patients": len(identities.patients),
        "professionals": len(identities.professionals),
        "other_kinds": identities.other_kinds,
    }
    setup["population"]["searched"] = {**stats, "kept": len(picked)}
    if not picked:
        raise RuntimeError(f"no searchable patient in the population: {stats}")
    tokens: dict[str, dict[str, str]] = {}
    for pro in distinct_professionals(picked):
        r = await client.post("/dev/token", json=pro.token_request())
        r.raise_for_status()
        tokens[pro.actor_id] = {
            "Authorization": f"Bearer {r.json()['access_token']}",
            "Accept": FHIR_JSON,
        }
    setup["population"]["tokens_minted"] = len(tokens)
    return [
        (p.record_id, p.ins, p.oid, tokens[p.professional.actor_id], p.documents)
        for p in picked
        if p.documents > 0
    ]


def _write_identities(
    path: Path, patients: list[tuple[str, str]], professional: dict[str, str]
) -> None:
    """The identities CSV of the HTTP-loaded set (``carnet demo --identities``'s format)."""
    from bench.payloads import TEST_OID
    from bench.population import CSV_HEADER

    lines = [",".join(CSV_HEADER)]
    lines += [f"patient,{ins},{TEST_OID},,," for _pid, ins in patients]
    lines.append(f"professional,{professional['rpps']},,{professional['profession']},,")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _prepare_population(
    args: argparse.Namespace, workdir: Path
) -> Callable[[dict[str, str]], None]:
    """The ServerProcess hook that loads the population before the server starts."""
    from bench.population import bulk_generator_available, run_bulk_generator

    def prepare(env: dict[str, str]) -> None:
        patients, documents = args.population_size
        info: dict[str, Any] = {"requested": args.population}
        ok, why = bulk_generator_available(env, args.source_root)
        if not ok:
            per = max(1, round(documents / patients))
            loaded_patients = max(1, min(patients, args.population_cap // per))
            info.update(
                loader="http",
                identities_file=str(workdir / "identities.csv"),
                reason=f"{why}: loaded a smaller set through ITI-65 instead "
                f"(--population-cap {args.population_cap})",
                loaded=f"{loaded_patients}x{loaded_patients * per}",
            )
            console.print(f"  [yellow]population: {info['reason']}[/yellow]")
        else:
            identities = workdir / "identities.csv"
            console.print(
                f"  population: carnet demo --patients {patients} --documents {documents}"
            )
            info.update(
                loader="carnet demo",
                identities_file=str(identities),
                loaded=args.population,
                **run_bulk_generator(env, args.source_root, patients, documents, identities),
            )
            console.print(f"  population loaded in {info['seconds']} s")
        args.population_info = info

    return prepare


def evaluate_targets(scenarios: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with the value measured and whether it is met (None: not measured)."""
    out = []
    for t in TARGETS:
        value: float | None = None
        metric = t["metric"]
        if t["scenario"] == "*":
            values = [
                m["server_memory"]["max_rss_mib_per_worker"]
                for name, m in scenarios.items()
                if not name.startswith("minimal") and m["server_memory"]["max_rss_mib_per_worker"]
            ]
            value = round(max(values) * 2**20 / 1e6, 1) if values else None
        else:
            m = scenarios.get(t["scenario"])
            if m is not None:
                if metric == "ok_per_s":
                    value = m["ok_per_s"]
                elif metric in ("p50", "p99"):
                    value = m["latency_ms"][metric]
                elif metric.startswith("ratio:"):
                    other = scenarios.get(metric.split(":", 1)[1])
                    if other is not None and other["ok_per_s"]:
                        value = round(m["ok_per_s"] / other["ok_per_s"], 3)
        met = None
        if value is not None:
            met = value >= t["value"] if t["op"] == ">=" else value <= t["value"]
        out.append({**t, "measured": value, "met": met})
    return out


CPU_PARTS = ("server", "pg_ours", "pg_shared", "loadgen")


def cpu_ms_per_request(m: dict[str, Any]) -> float | None:
    """CPU the machine spent per success: server, PostgreSQL (our backends and the shared
    processes) and the load generator (for a minimal script: the script itself)."""
    cpu = m.get("cpu") or {}
    parts = [cpu.get(f"{p}_ms_per_request") for p in CPU_PARTS]
    if all(v is None for v in parts):
        return None
    return round(sum(v or 0.0 for v in parts), 3)


def least_cpu_ms_per_request(m: dict[str, Any]) -> float | None:
    """The least CPU per request of any round (the least disturbed: contention for the cores'
    caches and shared execution units inflates CPU times too)."""
    values = [r["cpu_ms_per_request"] for r in m.get("rounds", []) if r.get("cpu_ms_per_request")]
    return min(values) if values else cpu_ms_per_request(m)


def comparisons(scenarios: dict[str, Any], cores: int = 2) -> dict[str, Any]:
    """carnet beside the minimal scripts, scenario by scenario.

    Besides throughput, the CPU each spent per success (the least of any round): less
    disturbed by other work than throughput, and ``cores`` × 1000 / (ms per request) is what the
    machine could do if it did nothing else and were CPU-bound (``cpu_bound_ceiling_per_s``)."""
    out: dict[str, Any] = {}
    for name, minimal_names in MINIMAL_OF.items():
        m = scenarios.get(name)
        if m is None:
            continue
        carnet_cpu = least_cpu_ms_per_request(m)
        entry: dict[str, Any] = {
            "carnet_ok_per_s": m["ok_per_s"],
            "carnet_latency_ms": {k: m["latency_ms"][k] for k in ("p50", "p90", "p99")},
            "carnet_cpu_ms_per_request": carnet_cpu,
            "carnet_cpu_bound_ceiling_per_s": round(cores * 1000 / carnet_cpu, 1)
            if carnet_cpu
            else None,
        }
        for mn in minimal_names:
            mm = scenarios.get(mn)
            if mm is None:
                continue
            per_round = [
                round(a["ok_per_s"] / b["ok_per_s"], 3)
                for a, b in zip(m.get("rounds", []), mm.get("rounds", []), strict=False)
                if b["ok_per_s"]
            ]
            entry[mn] = {
                "ok_per_s": mm["ok_per_s"],
                "ratio_per_round": per_round,
                "ratio_median_of_rounds": statistics.median(per_round) if per_round else None,
                "latency_ms": {k: mm["latency_ms"][k] for k in ("p50", "p90", "p99")},
                "ratio": round(m["ok_per_s"] / mm["ok_per_s"], 3) if mm["ok_per_s"] else None,
                "pg_ms_per_request": {
                    "carnet": m["cpu"].get("pg_ms_per_request"),
                    "minimal": mm["cpu"].get("pg_ms_per_request"),
                },
                "cpu_ms_per_request": least_cpu_ms_per_request(mm),
                "cpu_bound_ceiling_per_s": None,
                "cpu_ratio": None,  # the minimal's CPU per request / carnet's
            }
            minimal_cpu = entry[mn]["cpu_ms_per_request"]
            if minimal_cpu:
                entry[mn]["cpu_bound_ceiling_per_s"] = round(cores * 1000 / minimal_cpu, 1)
                if carnet_cpu:
                    entry[mn]["cpu_ratio"] = round(minimal_cpu / carnet_cpu, 3)
        out[name] = entry
    return out


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
    workdir = Path(tempfile.mkdtemp(prefix="carnet-bench-population-"))
    args.population_info = None
    server = ServerProcess(
        backend,
        args.workers,
        admin_dsn=args.pg_dsn,
        source_root=args.source_root,
        prepare=_prepare_population(args, workdir)
        if args.population_size and backend == "postgresql"
        else None,
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
    except Exception:
        console.print(f"[red]server log tail:[/red]\n{server.log_tail()}")
        raise
    finally:
        server.stop()
        server.cleanup()
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    scenarios = outcome["scenarios"]
    doc = {
        "benchmark": BENCHMARK,
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "backend": backend,
        **common,
        "postgresql": pg,
        "duration_s": round(time.perf_counter() - started, 1),
        "targets": evaluate_targets(scenarios) if backend == "postgresql" else None,
        "comparison": comparisons(scenarios, int(common["machine"]["nproc"])),
        **outcome,
    }
    doc["parameters"] = {**common["parameters"], "backend": backend}
    console.print(f"  backend done in {doc['duration_s']} s")
    _DONE.append(doc)
    if args.no_save:
        return None
    args.results_dir.mkdir(parents=True, exist_ok=True)
    path: Path = args.results_dir / f"{dt.date.today().isoformat()}-{BENCHMARK}-{backend}.json"
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    return path


_DONE: list[dict[str, Any]] = []


def summary_table(docs: list[dict[str, Any]]) -> Table:
    t = Table(title="carnet core benchmark", show_lines=False)
    for col, justify in (
        ("backend", "left"),
        ("scenario", "left"),
        ("ok/s", "right"),
        ("p50 ms", "right"),
        ("p90 ms", "right"),
        ("p99 ms", "right"),
        ("errors", "right"),
        ("server ms/req", "right"),
        ("pg ms/req", "right"),
        ("loadgen ms/req", "right"),
        ("server %", "right"),
        ("pg %", "right"),
        ("loadgen %", "right"),
        ("other work", "right"),
        ("max RSS/worker MiB", "right"),
    ):
        t.add_column(col, justify=justify, no_wrap=col in ("backend", "scenario"))  # type: ignore[arg-type]
    for doc in docs:
        for name, m in doc["scenarios"].items():
            cpu = m["cpu"]
            rss = m["server_memory"]["max_rss_mib_per_worker"]
            minimal = name.startswith("minimal")
            t.add_row(
                doc["backend"],
                name,
                f"{m['ok_per_s']:,.1f}",
                f"{m['latency_ms']['p50']:.1f}",
                f"{m['latency_ms']['p90']:.1f}",
                f"{m['latency_ms']['p99']:.1f}",
                f"[red]{m['errors']}[/red]" if m["errors"] else "0",
                "" if minimal else f"{cpu.get('server_ms_per_request', float('nan')):.2f}",
                f"{cpu.get('pg_ms_per_request', float('nan')):.2f}",
                f"{cpu.get('loadgen_ms_per_request', float('nan')):.3f}",
                "" if minimal else f"{cpu['server_percent']:.0f}",
                f"{cpu['pg_ours_percent'] + cpu['pg_shared_percent']:.0f}",
                f"{cpu['loadgen_percent']:.0f}",
                f"{_other_work(cpu):.0f} %",
                "" if minimal or rss is None else f"{rss:.0f}",
            )
    return t


def targets_table(docs: list[dict[str, Any]]) -> Table:
    t = Table(title="targets (PostgreSQL)", show_lines=False)
    for col in ("target", "wanted", "measured", "met"):
        t.add_column(col, justify="left" if col == "target" else "right")
    for doc in docs:
        for tg in doc.get("targets") or []:
            met = tg["met"]
            t.add_row(
                tg["what"],
                f"{tg['op']} {tg['value']:,} {tg['unit']}",
                "–" if tg["measured"] is None else f"{tg['measured']:,}",
                "–" if met is None else ("[green]yes[/green]" if met else "[red]no[/red]"),
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
    load_generator = (
        f"{RawClients.name}, closed loop, {loop_name}, 127.0.0.1 only"
        if args.client == "raw"
        else f"httpx.AsyncClient (one per task), closed loop, {loop_name}, 127.0.0.1 only"
    )
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
                "httptools",
                "uvloop",
            ]
        ),
        "parameters": {
            "seconds": args.seconds,
            "warmup_seconds": args.warmup,
            "concurrency": args.concurrency,
            "workers": args.workers,
            "max_requests": args.max_requests,
            "publish_patients": args.publish_patients,
            "search_patients": args.search_patients,
            "docs_per_patient": args.docs_per_patient,
            "population": args.population,
            "population_sample": args.population_sample,
            "payload_bytes": PAYLOAD_SIZE,
            "unique_content": not args.same_content,
            "scenarios": args.scenarios,
            "minimal_scripts": not args.no_minimal,
            "rounds": args.rounds,
            "source": args.source,
            "profiled": args.profile,
            "server": f"python -m uvicorn --factory carnet.app:create_app --workers "
            f"{args.workers} (subprocess, --no-access-log, default db_pool_size)",
            "load_generator": load_generator,
        },
    }
    console.print(
        f"carnet core benchmark: backends {', '.join(backends)}; {args.seconds:g} s "
        f"(+{args.warmup:g} s warm-up) per scenario; concurrency {args.concurrency}; "
        f"{args.workers} worker(s); client {args.client}; git {common['git']['commit']}"
        + (" (working tree modified)" if common["git"]["dirty"] else "")
    )
    paths = [bench_backend(b, args, common) for b in backends]
    console.print(summary_table(_DONE))
    if any(doc.get("targets") for doc in _DONE):
        console.print(targets_table(_DONE))
    for doc in _DONE:
        for name, c in doc["comparison"].items():
            parts = [
                f"{mn} {v['ok_per_s']:,}/s, {v['cpu_ms_per_request']} ms CPU "
                f"(ratio {v['ratio']}, by CPU {v['cpu_ratio']})"
                for mn, v in c.items()
                if mn.startswith("minimal")
            ]
            if parts:
                console.print(
                    f"{doc['backend']} {name}: carnet {c['carnet_ok_per_s']:,}/s, "
                    f"{c['carnet_cpu_ms_per_request']} ms CPU per request, beside "
                    + "; ".join(parts)
                )
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
