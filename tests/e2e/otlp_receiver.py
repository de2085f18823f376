"""A tiny OTLP/HTTP JSON trace receiver for the end-to-end tests (test_tracing.py).

It stands in for an OpenTelemetry collector: `POST /v1/traces` with `Content-Type:
application/json` (an ExportTraceServiceRequest, optionally gzip-encoded) is decoded, stored and
answered `200 {}`; another content type gets 415, another path 404, a body that is not JSON 400.
Runs on 127.0.0.1, port 0 (a free port), in a thread of the test process.

    with OTLPReceiver() as receiver:
        ...  # point spec.tracing.otlp.endpoint at receiver.endpoint
        spans = receiver.wait_for(lambda spans: [s for s in spans if s.name == "tools/call echo"])

`spans()` flattens every stored request into `ReceivedSpan`s (with the resource's service.name and
the attributes decoded: stringValue -> str, intValue -> int, doubleValue -> float, boolValue ->
bool). OTLP JSON ids are lowercase hex.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

T = TypeVar("T")

KIND_INTERNAL, KIND_SERVER, KIND_CLIENT = 1, 2, 3
STATUS_ERROR = 2


def attribute_value(value: dict[str, Any]) -> Any:
    """An OTLP AnyValue as a Python value."""
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        return int(value["intValue"])  # a decimal string in OTLP JSON (a number is tolerated)
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "arrayValue" in value:
        return [attribute_value(v) for v in (value["arrayValue"].get("values") or [])]
    if "kvlistValue" in value:
        return attributes_of(value["kvlistValue"].get("values") or [])
    if "bytesValue" in value:
        return value["bytesValue"]
    return None


def attributes_of(items: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {item["key"]: attribute_value(item.get("value") or {}) for item in items or []}


@dataclass
class ReceivedSpan:
    service: str | None
    scope: dict[str, Any]
    trace_id: str
    span_id: str
    parent_span_id: str | None  # None for a root span (absent or empty)
    name: str
    kind: int | None
    start: int | None
    end: int | None
    attributes: dict[str, Any]
    status: dict[str, Any]
    raw: dict[str, Any] = field(repr=False)

    @property
    def status_code(self) -> int:
        return int(self.status.get("code") or 0)

    def describe(self) -> str:
        parent = self.parent_span_id or "-"
        return (f"{self.name!r} kind={self.kind} trace={self.trace_id} span={self.span_id} parent={parent} "
                f"status={self.status} attributes={self.attributes}")


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class OTLPReceiver:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._lock = threading.Condition()
        self.requests: list[dict[str, Any]] = []  # decoded bodies of accepted exports, in order
        self.request_headers: list[dict[str, str]] = []  # their HTTP headers (names lowercased)
        self.rejected: list[tuple[int, str, str]] = []  # (status, path, content type) of refused requests
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (quiet)
                pass

            def _answer(self, status: int, body: bytes, content_type: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _read_body(self) -> bytes:
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass  # trailers
                            break
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    return b"".join(chunks)
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _refuse(self, status: int, message: str) -> None:
                with receiver._lock:
                    receiver.rejected.append((status, self.path, self.headers.get("Content-Type") or ""))
                    receiver._lock.notify_all()
                self._answer(status, json.dumps({"error": message}).encode())

            def do_POST(self) -> None:  # noqa: N802 (http.server naming)
                raw = self._read_body()
                if self.path.split("?")[0] != "/v1/traces":
                    self._refuse(404, f"no route {self.path}")
                    return
                content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
                if content_type != "application/json":
                    self._refuse(415, f"unsupported content type {content_type!r}; this receiver takes OTLP/HTTP JSON")
                    return
                encoding = (self.headers.get("Content-Encoding") or "").strip().lower()
                try:
                    if encoding == "gzip":
                        raw = gzip.decompress(raw)
                    elif encoding == "deflate":
                        raw = zlib.decompress(raw)
                    body = json.loads(raw)
                except (OSError, ValueError, zlib.error) as error:
                    self._refuse(400, f"not a JSON body: {error}")
                    return
                if not isinstance(body, dict):
                    self._refuse(400, "the body is not a JSON object")
                    return
                with receiver._lock:
                    receiver.requests.append(body)
                    receiver.request_headers.append({k.lower(): v for k, v in self.headers.items()})
                    receiver._lock.notify_all()
                self._answer(200, b"{}")

            def do_GET(self) -> None:  # noqa: N802
                self._answer(405, b'{"error": "POST OTLP/HTTP JSON to /v1/traces"}')

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def endpoint(self) -> str:
        """The base URL for spec.tracing.otlp.endpoint (the gateway appends /v1/traces)."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> OTLPReceiver:
        if self._thread is None:
            self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-receiver", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> OTLPReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- what was received -------------------------------------------------------------------

    def spans(self) -> list[ReceivedSpan]:
        """Every span received so far, flattened, in arrival order."""
        with self._lock:
            bodies = list(self.requests)
        out: list[ReceivedSpan] = []
        for body in bodies:
            for resource_spans in body.get("resourceSpans") or []:
                resource = attributes_of((resource_spans.get("resource") or {}).get("attributes"))
                service = resource.get("service.name")
                for scope_spans in resource_spans.get("scopeSpans") or []:
                    scope = scope_spans.get("scope") or {}
                    for span in scope_spans.get("spans") or []:
                        out.append(ReceivedSpan(
                            service=service,
                            scope=scope,
                            trace_id=str(span.get("traceId") or ""),
                            span_id=str(span.get("spanId") or ""),
                            parent_span_id=span.get("parentSpanId") or None,
                            name=str(span.get("name") or ""),
                            kind=_int_or_none(span.get("kind")),
                            start=_int_or_none(span.get("startTimeUnixNano")),
                            end=_int_or_none(span.get("endTimeUnixNano")),
                            attributes=attributes_of(span.get("attributes")),
                            status=span.get("status") or {},
                            raw=span,
                        ))
        return out

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        return [s for s in self.spans() if s.trace_id == trace_id]

    def describe(self) -> str:
        spans = self.spans()
        lines = [f"OTLP receiver {self.endpoint}: {len(self.requests)} export(s), {len(spans)} span(s), "
                 f"refused: {self.rejected}"]
        lines += ["  " + s.describe() for s in spans[-60:]]
        return "\n".join(lines)

    def wait_for(self, predicate: Callable[[list[ReceivedSpan]], T], timeout: float = 10.0, what: str = "spans") -> T:
        """Waits until `predicate(spans)` is truthy and returns its value; fails with what was received."""
        deadline = time.monotonic() + timeout
        while True:
            result = predicate(self.spans())
            if result:
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{self.describe()}")
            with self._lock:
                self._lock.wait(timeout=min(remaining, 0.2))
