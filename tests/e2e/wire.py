"""Raw Streamable HTTP helpers for the end-to-end tests.

The SDK clients hide the wire; these helpers expose it (status codes, headers,
the exact JSON-RPC error objects) for the checks that are about the wire itself.
Every request has an httpx2 timeout, so a silent peer fails a test instead of
hanging it.
"""

from __future__ import annotations

import itertools
import json
import re
import socket
from dataclasses import dataclass, field
from typing import Any

import httpx2

ACCEPT = "application/json, text/event-stream"
MODERN = "2026-07-28"
HANDSHAKE_VERSIONS = ("2025-03-26", "2025-06-18", "2025-11-25")
SESSION_HEADER = "Mcp-Session-Id"
VERSION_HEADER = "MCP-Protocol-Version"

# JSON-RPC / MCP error codes the tests check.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
HEADER_MISMATCH = -32020
UNSUPPORTED_PROTOCOL_VERSION = -32022

DEFAULT_TIMEOUT = httpx2.Timeout(15.0, connect=5.0)
CLIENT_INFO = {"name": "gatehouse-e2e", "version": "1.0.0"}

_ids = itertools.count(1)


def next_id() -> int:
    return next(_ids)


def client() -> httpx2.AsyncClient:
    """An httpx2 client that ignores proxy settings from the environment."""
    return httpx2.AsyncClient(timeout=DEFAULT_TIMEOUT, trust_env=False)


@dataclass
class Reply:
    """One HTTP exchange: status, headers and the JSON-RPC messages in the body."""

    status: int
    headers: httpx2.Headers
    content_type: str
    messages: list[Any] = field(default_factory=list)
    raw: bytes = b""

    @property
    def response(self) -> dict[str, Any]:
        """The JSON-RPC response (the last message carrying result or error)."""
        for message in reversed(self.messages):
            if isinstance(message, dict) and ("result" in message or "error" in message):
                return message
        raise AssertionError(f"no JSON-RPC response in reply: {self.describe()}")

    @property
    def result(self) -> dict[str, Any]:
        response = self.response
        assert "result" in response, f"expected a result, got: {self.describe()}"
        return response["result"]

    @property
    def error(self) -> dict[str, Any]:
        response = self.response
        assert "error" in response, f"expected a JSON-RPC error, got: {self.describe()}"
        error = response["error"]
        assert isinstance(error, dict) and isinstance(error.get("code"), int), f"malformed error: {error!r}"
        assert isinstance(error.get("message"), str), f"error without a message: {error!r}"
        return error

    @property
    def notifications(self) -> list[dict[str, Any]]:
        return [m for m in self.messages if isinstance(m, dict) and "method" in m and "id" not in m]

    def describe(self) -> str:
        body = self.raw[:2000].decode("utf-8", "replace")
        return f"HTTP {self.status} {self.content_type!r} headers={dict(self.headers)} body={body!r}"


async def post(
    http: httpx2.AsyncClient,
    url: str,
    body: Any,
    headers: dict[str, str] | None = None,
    *,
    raw: bool = False,
) -> Reply:
    """POST one body (a JSON value, or bytes when raw=True) and collect the reply.

    An SSE reply is read event by event and the read stops at the first JSON-RPC
    response, so a server that keeps the stream open cannot stall the test.
    """
    content = body if raw else json.dumps(body).encode()
    all_headers = {"Accept": ACCEPT, "Content-Type": "application/json"}
    all_headers.update(headers or {})
    async with http.stream("POST", url, content=content, headers=all_headers) as response:
        content_type = response.headers.get("content-type", "")
        reply = Reply(status=response.status_code, headers=response.headers, content_type=content_type)
        if content_type.startswith("text/event-stream"):
            data_lines: list[str] = []
            collected = bytearray()
            async for line in response.aiter_lines():
                collected += line.encode() + b"\n"
                if line.startswith("data:"):
                    data_lines.append(line[5:].removeprefix(" "))
                    continue
                if line == "" and data_lines:
                    payload = "\n".join(data_lines)
                    data_lines = []
                    if not payload.strip():
                        continue  # a priming event (an id and empty data), 2025-11-25
                    try:
                        message = json.loads(payload)
                    except ValueError as error:
                        raise AssertionError(f"SSE event data is not JSON: {payload[:500]!r}") from error
                    reply.messages.append(message)
                    if isinstance(message, dict) and ("result" in message or "error" in message):
                        break
            reply.raw = bytes(collected)
        else:
            reply.raw = await response.aread()
            if reply.raw.strip():
                try:
                    decoded = json.loads(reply.raw)
                except ValueError:
                    decoded = None
                if isinstance(decoded, list):
                    reply.messages.extend(decoded)
                elif decoded is not None:
                    reply.messages.append(decoded)
    return reply


def request(method: str, params: dict[str, Any] | None = None, *, id: int | None = None) -> dict[str, Any]:  # noqa: A002
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": next_id() if id is None else id, "method": method}
    if params is not None:
        message["params"] = params
    return message


# --- 2026-07-28 (stateless) -------------------------------------------------------------


def modern_meta(version: str = MODERN) -> dict[str, Any]:
    return {
        "io.modelcontextprotocol/protocolVersion": version,
        "io.modelcontextprotocol/clientInfo": CLIENT_INFO,
        "io.modelcontextprotocol/clientCapabilities": {},
    }


def modern_request(method: str, params: dict[str, Any] | None = None, *, version: str = MODERN) -> dict[str, Any]:
    params = dict(params or {})
    params["_meta"] = modern_meta(version)
    return request(method, params)


def modern_headers(message: dict[str, Any], *, version: str = MODERN) -> dict[str, str]:
    """The request metadata headers a 2026-07-28 client sends for `message`."""
    headers = {VERSION_HEADER: version, "Mcp-Method": message["method"]}
    params = message.get("params") or {}
    if message["method"] in ("tools/call", "prompts/get"):
        headers["Mcp-Name"] = params["name"]
    elif message["method"] == "resources/read":
        headers["Mcp-Name"] = params["uri"]
    return headers


async def modern_call(http: httpx2.AsyncClient, url: str, method: str, params: dict[str, Any] | None = None) -> Reply:
    message = modern_request(method, params)
    return await post(http, url, message, modern_headers(message))


# --- 2025-03-26 .. 2025-11-25 (sessions) ------------------------------------------------


@dataclass
class Session:
    """A handshake-era session opened with raw HTTP."""

    url: str
    version: str
    session_id: str
    initialize: Reply

    def headers(self) -> dict[str, str]:
        headers = {SESSION_HEADER: self.session_id}
        if self.version != "2025-03-26":  # the header exists from 2025-06-18 on
            headers[VERSION_HEADER] = self.version
        return headers


async def open_session(http: httpx2.AsyncClient, url: str, version: str) -> Session:
    """initialize at `version` + notifications/initialized; returns the session."""
    init = request(
        "initialize",
        {"protocolVersion": version, "capabilities": {}, "clientInfo": CLIENT_INFO},
    )
    reply = await post(http, url, init)
    assert reply.status == 200, f"initialize at {version}: {reply.describe()}"
    result = reply.result
    assert result.get("protocolVersion") == version, f"initialize at {version} answered {result.get('protocolVersion')!r}"
    session_id = reply.headers.get(SESSION_HEADER)
    assert session_id, f"initialize at {version} returned no {SESSION_HEADER} header: {reply.describe()}"
    session = Session(url=url, version=version, session_id=session_id, initialize=reply)
    note = await post(http, url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, session.headers())
    assert note.status == 202, f"notifications/initialized at {version}: {note.describe()}"
    return session


async def session_call(http: httpx2.AsyncClient, session: Session, method: str, params: dict[str, Any] | None = None) -> Reply:
    return await post(http, session.url, request(method, params), session.headers())


async def close_session(http: httpx2.AsyncClient, session: Session) -> httpx2.Response:
    return await http.delete(session.url, headers=session.headers())


def session_id_entropy_ok(session_id: str) -> bool:
    """At least 128 bits: 32+ hex digits, or 22+ base64url characters."""
    if re.fullmatch(r"[0-9a-fA-F]+", session_id):
        return len(session_id) >= 32
    if re.fullmatch(r"[A-Za-z0-9_\-]+=*", session_id):
        return len(session_id.rstrip("=")) >= 22
    return False


# --- raw sockets ------------------------------------------------------------------------


def raw_http(host: str, port: int, data: bytes, timeout: float = 10.0) -> tuple[int, bytes]:
    """Send bytes as-is (e.g. a forged Host header) and return (status, whole response)."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks) and _complete(b"".join(chunks)):
                break
    response = b"".join(chunks)
    match = re.match(rb"HTTP/1\.[01] (\d{3})", response)
    assert match, f"not an HTTP response: {response[:500]!r}"
    return int(match.group(1)), response


def _complete(response: bytes) -> bool:
    head, _, body = response.partition(b"\r\n\r\n")
    match = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    if match:
        return len(body) >= int(match.group(1))
    if re.search(rb"(?im)^transfer-encoding:\s*chunked", head):
        return body.endswith(b"0\r\n\r\n")
    return False
