"""Unit tests of the harness's pure parts: ``pytest bench/test_harness.py`` (not timed; the
project's suite under tests/ does not collect them)."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

from bench.load import LoadResult, percentile
from bench.population import parse_identities, parse_population
from bench.rawhttp import RawConnection
from bench.run import comparisons, evaluate_targets


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([7.0], 99) == 7
    assert math.isnan(percentile([], 50))


def test_parse_population() -> None:
    assert parse_population("100000x2000000") == (100_000, 2_000_000)
    assert parse_population("10_000 x 200,000") == (10_000, 200_000)
    with pytest.raises(ValueError):
        parse_population("10000")


def test_parse_identities() -> None:
    csv = [
        "kind,id,oid,profession,specialty,structure\n",
        "patient,180057512345678,1.2.250.1.213.1.4.10,,,\n",
        "professional,810001234567,,10,SM54,750000001\n",
        "structure,750000001,,,,\n",
    ]
    ids = parse_identities(csv)
    assert ids.patients == [("180057512345678", "1.2.250.1.213.1.4.10")]
    pro = ids.professionals["rpps:810001234567"]
    assert pro.token_request() == {
        "kind": "professional",
        "rpps": "810001234567",
        "profession": "10",
        "specialty": "SM54",
        "structure": "750000001",
    }
    assert ids.other_kinds == {"structure": 1}
    with pytest.raises(ValueError, match="lacks column"):
        parse_identities(["kind,id\n"])


def test_raw_request_encoding() -> None:
    conn = RawConnection("http://127.0.0.1:8000")
    raw = conn.encode("POST", "/fhir", {"Authorization": "Bearer t"}, b"{}")
    assert raw == (
        b"POST /fhir HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nAuthorization: Bearer t\r\n"
        b"Content-Length: 2\r\n\r\n{}"
    )
    get = conn.encode("GET", "/fhir/Patient", {}, None, {"identifier": "a|b"})
    assert get.startswith(b"GET /fhir/Patient?identifier=a%7Cb HTTP/1.1\r\n")
    with pytest.raises(ValueError):
        RawConnection("http://example.org")


def test_raw_client_against_a_keep_alive_server() -> None:
    async def main() -> list[tuple[int, int, bytes]]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            for status, body in ((200, b"x" * 70_000), (404, b"missing")):
                await reader.readuntil(b"\r\n\r\n")
                writer.write(
                    f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
                )
            await reader.readuntil(b"\r\n\r\n")  # a chunked answer
            writer.write(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
            )
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        conn = RawConnection(f"http://127.0.0.1:{port}")
        out = [await conn.send(conn.encode("GET", "/", {}, None)) for _ in range(3)]
        await conn.aclose()
        server.close()
        await server.wait_closed()
        return out

    ok, missing, chunked = asyncio.run(main())
    assert ok == (200, 70_000, b"")
    assert missing == (404, 7, b"missing")
    assert chunked == (200, 3, b"")


def _metrics(
    ok_per_s: float, p50: float = 1.0, p99: float = 2.0, rss: float = 100.0
) -> dict[str, Any]:
    m = LoadResult(ok=1, elapsed=1.0).metrics()
    m["ok_per_s"] = ok_per_s
    m["latency_ms"].update(p50=p50, p90=p99, p99=p99)
    m["cpu"] = {"pg_ms_per_request": 1.0, "pg_ours_ms_per_request": 1.0}
    m["server_memory"] = {"max_rss_mib_per_worker": rss}
    return m


def test_targets_and_ratios() -> None:
    scenarios = {
        "publish": _metrics(900, p99=40, rss=200),
        "minimal-publish-cte": _metrics(1500),
        "minimal-publish-tx": _metrics(1000),
        "search-patient": _metrics(3500, p50=2, p99=20),
    }
    by_what = {t["what"]: t for t in evaluate_targets(scenarios)}
    assert by_what["ITI-65 publish throughput"]["met"] is False
    assert by_what["ITI-65 publish p99"]["met"] is True
    assert by_what["ITI-65 publish vs the minimal script (one-statement CTE)"]["measured"] == 0.6
    assert by_what["ITI-65 publish vs the minimal script (one-statement CTE)"]["met"] is True
    assert by_what["ITI-67 search p99"]["met"] is False
    assert by_what["ITI-68 retrieve throughput"]["met"] is None  # not measured
    memory = by_what["server memory per worker process (max RSS, every scenario)"]
    assert memory["measured"] == round(200 * 2**20 / 1e6, 1)
    assert memory["met"] is True
    scenarios["publish"]["cpu"]["server_ms_per_request"] = 3.0
    comp = comparisons(scenarios, cores=2)
    assert comp["publish"]["minimal-publish-tx"]["ratio"] == 0.9
    assert comp["publish"]["carnet_cpu_ms_per_request"] == 4.0
    assert comp["publish"]["carnet_cpu_bound_ceiling_per_s"] == 500.0
    assert comp["publish"]["minimal-publish-cte"]["cpu_ratio"] == 0.25
