"""The gateway's plaintext HTTP/1.1 front (Sources/GatehouseServer/HTTP1Front.swift): bodies
gathered whole before the endpoint sees them, in any number of chunks; pipelined requests
answered in order; broken HTTP refused without harming anyone else; Connection: close honoured.
"""

from __future__ import annotations

import json
import re
import socket
import time
from urllib.parse import urlsplit

import anyio
import pytest
import wire
from conftest import MAX_BODY_BYTES
from test_bad_input import assert_still_serving

pytestmark = [pytest.mark.anyio, pytest.mark.gateway_only]


def _echo_request(text: str) -> tuple[dict, dict[str, str]]:
    message = wire.modern_request("tools/call", {"name": "echo", "arguments": {"message": text}})
    headers = {"Accept": wire.ACCEPT, "Content-Type": "application/json", **wire.modern_headers(message)}
    return message, headers


def _raw_post(path: str, host: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _read_responses(sock: socket.socket, count: int, deadline: float) -> list[tuple[int, dict, bytes]]:
    """Reads `count` HTTP responses with Content-Length bodies: (status, headers, body) each."""
    data = b""
    out: list[tuple[int, dict, bytes]] = []
    while len(out) < count:
        while b"\r\n\r\n" not in data:
            assert time.monotonic() < deadline, f"timed out after {len(out)} responses: {data[:300]!r}"
            chunk = sock.recv(65536)
            assert chunk, f"connection closed after {len(out)} responses: {data[:300]!r}"
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        status = int(re.match(rb"HTTP/1\.1 (\d{3})", head).group(1))
        fields = {}
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            fields[name.strip().lower().decode()] = value.strip().decode()
        length = int(fields.get("content-length", "0"))
        while len(rest) < length:
            assert time.monotonic() < deadline, "timed out reading a body"
            chunk = sock.recv(65536)
            assert chunk, "connection closed inside a body"
            rest += chunk
        out.append((status, fields, rest[:length]))
        data = rest[length:]
    return out


async def test_chunked_body_under_the_limit_arrives_whole(mcp_url: str) -> None:
    """A message sent in many small chunks (no Content-Length) reaches the upstream intact."""
    text = "".join(f"{i:07d}," for i in range((MAX_BODY_BYTES - 4096) // 8))
    message, headers = _echo_request(text)
    body = json.dumps(message).encode()
    assert len(body) < MAX_BODY_BYTES

    async def chunks():
        for i in range(0, len(body), 1000):
            yield body[i : i + 1000]

    async with wire.client() as http:
        with anyio.fail_after(20):
            response = await http.post(mcp_url, content=chunks(), headers=headers)
            assert response.status_code == 200, f"HTTP {response.status_code}: {response.text[:300]}"
            answer = response.json()
            assert answer["id"] == message["id"], answer
            assert answer["result"]["content"][0]["text"] == text, "the echoed text differs from what was sent"


async def test_pipelined_requests_are_answered_in_order(mcp_url: str) -> None:
    """Several requests written at once on one connection get their answers in the same order."""
    parts = urlsplit(mcp_url)
    requests = [_echo_request(f"pipelined {n}") for n in range(4)]
    data = b"".join(_raw_post(parts.path, parts.netloc, json.dumps(m).encode(), h) for m, h in requests)

    def run() -> list[tuple[int, dict, bytes]]:
        with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
            sock.sendall(data)
            return _read_responses(sock, len(requests), time.monotonic() + 15)

    answers = await anyio.to_thread.run_sync(run)
    for (message, _), (status, _, body) in zip(requests, answers):
        assert status == 200, body[:300]
        answer = json.loads(body)
        assert answer["id"] == message["id"], f"answers out of order: {answer}"
        assert answer["result"]["content"][0]["text"] == message["params"]["arguments"]["message"]


async def test_malformed_http_gets_400_and_the_gateway_keeps_serving(mcp_url: str) -> None:
    parts = urlsplit(mcp_url)
    status, response = await anyio.to_thread.run_sync(wire.raw_http, parts.hostname, parts.port, b"NOT HTTP AT ALL\r\n\r\n")
    assert status == 400, response[:300]
    async with wire.client() as http:
        with anyio.fail_after(15):
            await assert_still_serving(http, mcp_url)


async def test_connection_close_is_honoured(mcp_url: str) -> None:
    parts = urlsplit(mcp_url)
    message, headers = _echo_request("then close")
    headers["Connection"] = "close"
    data = _raw_post(parts.path, parts.netloc, json.dumps(message).encode(), headers)

    def run() -> tuple[int, bytes, bytes]:
        with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
            sock.sendall(data)
            [(status, _, body)] = _read_responses(sock, 1, time.monotonic() + 15)
            sock.settimeout(5)
            return status, body, sock.recv(1024)  # b"" once the gateway closed its side

    status, body, after = await anyio.to_thread.run_sync(run)
    assert status == 200, body[:300]
    assert json.loads(body)["id"] == message["id"]
    assert after == b"", f"the connection stayed open after Connection: close: {after[:100]!r}"



async def test_a_session_stream_answers_at_once(mcp_url: str) -> None:
    """A session's GET stream may carry nothing for a long time (its keep-alive comes every 15 s):
    its status and headers must not wait for the first event."""
    async with wire.client() as http:
        session = await wire.open_session(http, mcp_url, "2025-11-25")
        headers = {"Accept": "text/event-stream", **session.headers()}
        started = time.monotonic()
        with anyio.fail_after(5):
            async with http.stream("GET", mcp_url, headers=headers) as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
        assert time.monotonic() - started < 5


async def test_refusals_come_before_the_body(mcp_url: str) -> None:
    """A request the guards refuse (here a forged Host) is answered from its head alone: the
    gateway neither waits for nor keeps a body it will not use."""
    parts = urlsplit(mcp_url)
    head = (
        f"POST {parts.path} HTTP/1.1\r\nHost: evil.example\r\nAccept: {wire.ACCEPT}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {MAX_BODY_BYTES}\r\n\r\n"
    ).encode()

    def run() -> list[tuple[int, dict, bytes]]:
        with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
            sock.sendall(head + b"{")  # the head and one byte of a 64 KB body that never comes
            return _read_responses(sock, 1, time.monotonic() + 5)

    [(status, _, body)] = await anyio.to_thread.run_sync(run)
    assert status == 403, body[:300]
    async with wire.client() as http:
        with anyio.fail_after(15):
            await assert_still_serving(http, mcp_url)
