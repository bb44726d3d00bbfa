"""A small local HTTP server that provider emulators build on.

Each emulator registers routes (method + regex) on an ``EmulatorServer`` and keeps its own data.
The harness gives every emulator the same knobs: a base URL on 127.0.0.1, a call log and counters,
artificial latency, and a queue of injected faults (an HTTP status with body/headers, or a dropped
connection) consumed by the next matching requests.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import json
import re
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    body: bytes
    match: re.Match[str] | None = None

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default


@dataclass(slots=True)
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
        hdrs = {"Content-Type": "application/json;charset=utf-8", **(headers or {})}
        return cls(status=status, body=json.dumps(payload).encode(), headers=hdrs)

    @classmethod
    def empty(cls, status: int = 204, headers: Mapping[str, str] | None = None) -> Response:
        return cls(status=status, headers=dict(headers or {}))


DROP = "drop"  # a fault that closes the connection without an answer


@dataclass(slots=True)
class Fault:
    """An injected failure for the next request whose method and path match."""

    status: int | str  # an HTTP status, or DROP
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    method: str | None = None
    path_pattern: str | None = None  # regex searched in the path
    raw: bytes | None = None  # a body sent as is (malformed JSON, HTML error pages), instead of ``body``

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method != method:
            return False
        return not self.path_pattern or re.search(self.path_pattern, path) is not None


Handler = Callable[[Request], Response]


class EmulatorServer:
    """Routes, faults and counters on a ThreadingHTTPServer bound to 127.0.0.1."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, latency_s: float = 0.0) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self.latency_s = latency_s
        self.calls: Counter[str] = Counter()  # "METHOD /route-pattern" -> count
        self.log: deque[tuple[str, str, int]] = deque(maxlen=10_000)  # (method, path, status)
        self.before_request: Callable[[Request], Response | None] | None = None
        self.clock: Callable[[], dt.datetime] | None = None  # the Date header's clock (an emulator's own time)
        self._server = ThreadingHTTPServer((host, port), self._make_handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- routes and faults -------------------------------------------------------------------
    def route(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        compiled = re.compile(pattern + r"\Z")

        def register(handler: Handler) -> Handler:
            self._routes.append((method, compiled, handler))
            return handler

        return register

    def add_route(self, method: str, pattern: str, handler: Handler) -> None:
        self._routes.append((method, re.compile(pattern + r"\Z"), handler))

    def inject(self, *faults: Fault) -> None:
        with self._lock:
            self._faults.extend(faults)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def call_count(self, method: str | None = None, pattern: str | None = None) -> int:
        return sum(
            n
            for key, n in self.calls.items()
            if (method is None or key.split(" ", 1)[0] == method) and (pattern is None or re.search(pattern, key))
        )

    def reset_counters(self) -> None:
        self.calls.clear()
        self.log.clear()

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> EmulatorServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- dispatch ----------------------------------------------------------------------------
    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    self._faults.remove(fault)
                    return fault
        return None

    def dispatch(self, request: Request) -> Response | None:
        """Answer one request; None means drop the connection."""
        if self.latency_s:
            time.sleep(self.latency_s)
        for method, pattern, handler in self._routes:
            match = pattern.match(request.path)
            if method == request.method and match:
                with self._lock:
                    self.calls[f"{method} {pattern.pattern[:-2]}"] += 1
                fault = self._take_fault(request.method, request.path)
                if fault is not None:
                    if fault.status == DROP:
                        return None
                    if fault.raw is not None:
                        return Response(status=int(fault.status), body=fault.raw, headers=dict(fault.headers))
                    return Response.json(fault.body, int(fault.status), fault.headers)
                if self.before_request is not None:
                    early = self.before_request(request)
                    if early is not None:
                        return early
                request.match = match
                return handler(request)
        return Response.json({"message": "not found", "status": 404}, 404)

    def _make_handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # headers and body leave in two writes: without NODELAY each answer waits ~40 ms for a delayed ACK
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def date_time_string(self, timestamp: float | None = None) -> str:
                if server.clock is None or timestamp is not None:
                    return super().date_time_string(timestamp)
                return email.utils.formatdate(server.clock().timestamp(), usegmt=True)

            def log_message(self, format: str, *args: Any) -> None:
                return  # quiet: emulators serve tests and benchmarks

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Request(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query, keep_blank_values=True),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                try:
                    response = server.dispatch(request)
                except Exception as exc:  # an emulator bug must answer, not hang the client
                    response = Response.json({"message": f"emulator error: {type(exc).__name__}"}, 500)
                if response is None:
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                server.log.append((request.method, request.path, response.status))
                self.send_response(response.status)
                for key, value in response.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(response.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(response.body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

        return _Handler
