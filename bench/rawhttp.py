"""A cheap HTTP/1.1 keep-alive client for the measured scenarios: one asyncio Protocol per
connection, requests written as prepared bytes, responses parsed by httptools (the C parser
uvicorn uses).

The load generator shares the machine's two cores with the server and PostgreSQL, so what it
costs per request is taken from them. httpx costs about 0.5 ms of CPU per request; this client
costs a few tens of microseconds (the run records ``loadgen_ms_per_request``). It does only
what the benchmark needs: one request at a time per connection, ``Content-Length`` or chunked
bodies, no redirects, no TLS, 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlencode, urlsplit

import httptools

KEEP = 600  # bytes of an error body kept for the report


class ConnectionLost(Exception):
    pass


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[tuple[int, int, bytes]] | None = None
        self.size = 0
        self.head = bytearray()
        self.keep_body = False
        self.closed = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionLost(f"bad response: {exc}"))
            if self.transport is not None:
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(ConnectionLost(f"connection closed: {exc}"))

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.size = 0
        self.head = bytearray()

    def on_headers_complete(self) -> None:
        self.keep_body = not 200 <= self.parser.get_status_code() < 300

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.keep_body and len(self.head) < KEEP:
            self.head += body[: KEEP - len(self.head)]

    def on_message_complete(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((self.parser.get_status_code(), self.size, bytes(self.head)))
        if not self.parser.should_keep_alive() and self.transport is not None:
            self.transport.close()

    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)


class RawConnection:
    """One keep-alive connection; reconnects when the server closed it."""

    def __init__(self, base_url: str, timeout: float = 60.0) -> None:
        parts = urlsplit(base_url)
        if parts.hostname != "127.0.0.1" or parts.scheme != "http":
            raise ValueError(f"the raw client only targets http://127.0.0.1, not {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.host_header = f"{self.host}:{self.port}".encode()
        self.timeout = timeout
        self.proto: _Protocol | None = None

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        _transport, proto = await loop.create_connection(_Protocol, self.host, self.port)
        return proto

    def encode(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: bytes | None,
        params: dict[str, str] | None = None,
    ) -> bytes:
        if params:
            path = f"{path}?{urlencode(params)}"
        lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: " + self.host_header]
        lines += [f"{k}: {v}".encode() for k, v in headers.items()]
        if body is not None or method in ("POST", "PUT"):
            lines.append(b"Content-Length: " + str(len(body or b"")).encode())
        head = b"\r\n".join(lines) + b"\r\n\r\n"
        return head + body if body else head

    async def send(self, raw: bytes) -> tuple[int, int, bytes]:
        """(status, body size, first bytes of the body: all of it, up to 600, for errors)."""
        proto = self.proto
        if proto is None or proto.closed:
            proto = self.proto = await self._connect()
        assert proto.transport is not None
        waiter: asyncio.Future[tuple[int, int, bytes]] = asyncio.get_running_loop().create_future()
        proto.waiter = waiter
        proto.transport.write(raw)
        try:
            return await asyncio.wait_for(waiter, self.timeout)
        except BaseException:
            proto.transport.close()
            self.proto = None
            raise

    async def aclose(self) -> None:
        if self.proto is not None and self.proto.transport is not None:
            self.proto.transport.close()
        self.proto = None


def encode_request(conn: RawConnection, request: Any) -> bytes:
    method, path, headers, body, params = request
    return conn.encode(method, path, headers, body, params)
