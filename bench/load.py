"""A closed-loop HTTP load generator, bounded in time and in requests.

``concurrency`` tasks each send one request, wait for the answer, and send the next, until the
duration has passed or ``max_requests`` have been sent. Latency is measured from just before
the request is handed to the client to the end of the response body, on the client's clock.

Two clients: :class:`Clients` (httpx, used for set-up and with ``--client httpx``) and
:class:`RawClients` (bench/rawhttp.py, a few tens of microseconds of CPU per request, the
default for the measured scenarios).
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from bench.rawhttp import RawConnection

MAX_SECONDS = 600.0
MAX_REQUESTS = 1_000_000

# (method, path, headers, body or None, query params or None)
Request = tuple[str, str, dict[str, str], bytes | None, dict[str, str] | None]
RequestFactory = Callable[[int], Request]


def check_loopback(base_url: str) -> None:
    host = urlsplit(base_url).hostname
    if host != "127.0.0.1":
        raise ValueError(f"the load generator only targets 127.0.0.1, not {host!r}")


class Clients:
    """One httpx.AsyncClient per concurrent task, each with a single keep-alive connection.

    httpx's shared connection pool costs O(connections) of bookkeeping per request: with one
    client of 32 connections, GET /healthz reached 430/s at 2.3 ms of load-generator CPU per
    request on the reference machine; with 32 clients of one connection, 1,820/s at 0.55 ms.
    """

    def __init__(self, base_url: str, concurrency: int, timeout: float = 60.0) -> None:
        check_loopback(base_url)
        self.base_url = base_url
        self.clients = [
            httpx.AsyncClient(
                base_url=base_url,
                timeout=timeout,
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
                trust_env=False,
            )
            for _ in range(concurrency)
        ]

    def __len__(self) -> int:
        return len(self.clients)

    @property
    def first(self) -> httpx.AsyncClient:
        return self.clients[0]

    async def __aenter__(self) -> Clients:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.gather(*(c.aclose() for c in self.clients))


class RawClients:
    """One :class:`RawConnection` per concurrent task (see bench/rawhttp.py)."""

    name = "raw asyncio HTTP/1.1 keep-alive client (httptools parser)"

    def __init__(self, base_url: str, concurrency: int, timeout: float = 60.0) -> None:
        check_loopback(base_url)
        self.base_url = base_url
        self.clients = [RawConnection(base_url, timeout) for _ in range(concurrency)]

    def __len__(self) -> int:
        return len(self.clients)

    async def __aenter__(self) -> RawClients:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.gather(*(c.aclose() for c in self.clients))


AnyClients = Clients | RawClients


async def _fetch_httpx(client: httpx.AsyncClient, request: Request) -> tuple[int, int, bytes]:
    method, path, headers, body, params = request
    resp = await client.request(method, path, headers=headers, content=body, params=params)
    content = resp.content
    return resp.status_code, len(content), content[:600]


async def _fetch_raw(client: RawConnection, request: Request) -> tuple[int, int, bytes]:
    method, path, headers, body, params = request
    return await client.send(client.encode(method, path, headers, body, params))


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list (q in [0, 100])."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass
class LoadResult:
    sent: int = 0
    ok: int = 0
    errors: int = 0
    elapsed: float = 0.0
    latencies_ok: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    error_samples: list[dict[str, Any]] = field(default_factory=list)
    response_bytes: int = 0
    per_second_ok: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)  # request numbers that got no 2xx

    def metrics(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ok)
        ms = 1000.0

        def p(q: float) -> float:
            return round(percentile(lat, q) * ms, 2)

        return {
            "requests": self.sent,
            "ok": self.ok,
            "errors": self.errors,
            "elapsed_s": round(self.elapsed, 3),
            "ok_per_s": round(self.ok / self.elapsed, 1) if self.elapsed else 0.0,
            "latency_ms": {
                "p50": p(50),
                "p90": p(90),
                "p95": p(95),
                "p99": p(99),
                "max": round(lat[-1] * ms, 2) if lat else math.nan,
                "mean": round(sum(lat) / len(lat) * ms, 2) if lat else math.nan,
            },
            "status_counts": {str(k): v for k, v in sorted(self.statuses.items())},
            "mean_response_bytes": round(self.response_bytes / self.sent) if self.sent else 0,
            "ok_per_second_timeline": self.per_second_ok,
            "error_samples": self.error_samples,
        }


async def run_load(
    clients: AnyClients,
    make_request: RequestFactory,
    *,
    concurrency: int | None = None,
    seconds: float,
    max_requests: int,
    start_index: int = 0,
    max_error_samples: int = 5,
) -> LoadResult:
    seconds = min(seconds, MAX_SECONDS)
    max_requests = min(max_requests, MAX_REQUESTS)
    result = LoadResult()
    counter = itertools.count(start_index)
    stop_index = start_index + max_requests
    t0 = time.perf_counter()
    deadline = t0 + seconds
    buckets: Counter[int] = Counter()
    fetch: Callable[[Any, Request], Any] = (
        _fetch_raw if isinstance(clients, RawClients) else _fetch_httpx
    )

    async def worker(client: Any) -> None:
        while True:
            now = time.perf_counter()
            if now >= deadline:
                return
            n = next(counter)
            if n >= stop_index:
                return
            request = make_request(n)
            result.sent += 1
            started = time.perf_counter()
            try:
                status, size, content = await fetch(client, request)
            except Exception as exc:  # transport errors count as errors (status 0)
                status, content = 0, f"{type(exc).__name__}: {exc}".encode()
                size = 0
            finished = time.perf_counter()
            result.statuses[status] += 1
            result.response_bytes += size
            if 200 <= status < 300:
                result.ok += 1
                result.latencies_ok.append(finished - started)
                buckets[int(finished - t0)] += 1
            else:
                result.errors += 1
                result.failed.append(n)
                if len(result.error_samples) < max_error_samples:
                    result.error_samples.append(
                        {
                            "request": n,
                            "status": status,
                            "body": content[:600].decode("utf-8", errors="replace"),
                        }
                    )

    used = clients.clients[: concurrency or len(clients)]
    await asyncio.gather(*(worker(c) for c in used))
    result.elapsed = time.perf_counter() - t0
    last = int(result.elapsed)
    result.per_second_ok = [buckets.get(i, 0) for i in range(last + 1)]
    return result
