"""Every error a client (or a broken upstream) can cause: one test each, and after each
the gateway must still answer a normal request.

Tests marked gateway_only depend on the gateway's own configuration (limits,
allowlists, upstream timeouts) and are skipped with GATEHOUSE_E2E_DIRECT=1.
"""

from __future__ import annotations

import json
import time
import uuid
from urllib.parse import urlsplit

import anyio
import httpx2
import pytest
import wire
from conftest import ALLOWED_ORIGIN, MAX_BODY_BYTES, MAX_JSON_DEPTH, Gateway, Upstream, start_gateway

pytestmark = pytest.mark.anyio


async def assert_still_serving(http: httpx2.AsyncClient, url: str) -> None:
    """A normal session still works: initialize, tools/call echo, DELETE."""
    session = await wire.open_session(http, url, "2025-11-25")
    reply = await wire.session_call(http, session, "tools/call", {"name": "echo", "arguments": {"message": "still here"}})
    assert reply.status == 200, f"after the bad request, a normal call failed: {reply.describe()}"
    assert reply.result["content"][0]["text"] == "still here", reply.describe()
    await wire.close_session(http, session)


# --- malformed messages -----------------------------------------------------------------------


async def test_invalid_json(mcp_url: str) -> None:
    async with wire.client() as http:
        with anyio.fail_after(15):
            reply = await wire.post(http, mcp_url, b'{"jsonrpc": "2.0", "id": 1, "method": ', raw=True)
            assert reply.status == 400, reply.describe()
            assert reply.error["code"] == wire.PARSE_ERROR, reply.describe()
            await assert_still_serving(http, mcp_url)


@pytest.mark.gateway_only  # the Python SDK server answers -32602 here, against JSON-RPC 2.0
async def test_json_that_is_not_json_rpc(mcp_url: str) -> None:
    async with wire.client() as http:
        with anyio.fail_after(15):
            reply = await wire.post(http, mcp_url, {"foo": 1})
            assert reply.status == 400, reply.describe()
            assert reply.error["code"] == wire.INVALID_REQUEST, reply.describe()
            await assert_still_serving(http, mcp_url)


@pytest.mark.gateway_only
async def test_body_over_limit(mcp_url: str) -> None:
    message = wire.request("initialize", {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": wire.CLIENT_INFO})
    message["params"]["padding"] = "x" * (MAX_BODY_BYTES + 1024)
    async with wire.client() as http:
        with anyio.fail_after(15):
            reply = await wire.post(http, mcp_url, message)
            assert reply.status == 413, reply.describe()
            await assert_still_serving(http, mcp_url)


@pytest.mark.gateway_only
async def test_body_over_limit_chunked(mcp_url: str) -> None:
    """The same limit holds when the client sends no Content-Length."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"pad": "x" * (MAX_BODY_BYTES * 2)}}).encode()

    async def chunks():
        for i in range(0, len(body), 8192):
            yield body[i : i + 8192]

    async with wire.client() as http:
        with anyio.fail_after(15):
            try:
                response = await http.post(
                    mcp_url, content=chunks(), headers={"Accept": wire.ACCEPT, "Content-Type": "application/json"}
                )
                assert response.status_code == 413, f"HTTP {response.status_code}: {response.text[:300]}"
            except (httpx2.WriteError, httpx2.RemoteProtocolError, httpx2.ReadError):
                pass  # closing the connection on an oversized stream is also a refusal
            await assert_still_serving(http, mcp_url)


@pytest.mark.gateway_only
async def test_json_nested_too_deep(mcp_url: str) -> None:
    depth = MAX_JSON_DEPTH * 4
    nested = "[" * depth + "]" * depth
    body = (
        '{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", '
        f'"arguments": {{"message": "deep", "extra": {nested}}}}}}}'
    ).encode()
    json.loads(body)  # the test's own body must be valid JSON: only its depth is wrong
    async with wire.client() as http:
        with anyio.fail_after(15):
            reply = await wire.post(http, mcp_url, body, raw=True)
            assert reply.status == 400, reply.describe()
            reply.error  # a JSON-RPC error object, whatever its code  # noqa: B018
            await assert_still_serving(http, mcp_url)


# --- sessions and versions ------------------------------------------------------------------


async def test_unknown_session_id(mcp_url: str) -> None:
    headers = {wire.SESSION_HEADER: uuid.uuid4().hex + uuid.uuid4().hex, wire.VERSION_HEADER: "2025-11-25"}
    async with wire.client() as http:
        with anyio.fail_after(15):
            reply = await wire.post(http, mcp_url, wire.request("tools/list", {}), headers)
            assert reply.status == 404, reply.describe()
            await assert_still_serving(http, mcp_url)


async def test_unsupported_protocol_version_header(mcp_url: str) -> None:
    async with wire.client() as http:
        with anyio.fail_after(15):
            session = await wire.open_session(http, mcp_url, "2025-11-25")
            headers = {wire.SESSION_HEADER: session.session_id, wire.VERSION_HEADER: "1999-01-01"}
            reply = await wire.post(http, mcp_url, wire.request("tools/list", {}), headers)
            assert reply.status == 400, reply.describe()
            # The session itself is unharmed.
            ok = await wire.session_call(http, session, "tools/list", {})
            assert ok.status == 200, ok.describe()
            await wire.close_session(http, session)
            await assert_still_serving(http, mcp_url)


@pytest.mark.gateway_only  # the Python SDK server answers -32602 here, against JSON-RPC 2.0
async def test_batch_rejected_from_2025_06_18(mcp_url: str) -> None:
    async with wire.client() as http:
        with anyio.fail_after(15):
            session = await wire.open_session(http, mcp_url, "2025-06-18")
            batch = [wire.request("tools/list", {}), wire.request("prompts/list", {})]
            reply = await wire.post(http, mcp_url, batch, session.headers())
            assert reply.status == 400, reply.describe()
            assert reply.error["code"] == wire.INVALID_REQUEST, reply.describe()
            await wire.close_session(http, session)
            await assert_still_serving(http, mcp_url)


async def test_unknown_method_in_session(mcp_url: str) -> None:
    async with wire.client() as http:
        with anyio.fail_after(15):
            session = await wire.open_session(http, mcp_url, "2025-11-25")
            reply = await wire.session_call(http, session, "demo/no-such-method", {})
            assert reply.error["code"] == wire.METHOD_NOT_FOUND, reply.describe()
            ok = await wire.session_call(http, session, "tools/list", {})
            assert ok.status == 200, ok.describe()
            await wire.close_session(http, session)


# --- origin and host --------------------------------------------------------------------------


@pytest.mark.gateway_only
async def test_origin_not_allowed(mcp_url: str) -> None:
    message = wire.request("initialize", {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": wire.CLIENT_INFO})
    async with wire.client() as http:
        with anyio.fail_after(15):
            reply = await wire.post(http, mcp_url, message, {"Origin": "http://evil.example"})
            assert reply.status == 403, reply.describe()
            await assert_still_serving(http, mcp_url)


@pytest.mark.gateway_only
async def test_origin_allowed(mcp_url: str) -> None:
    message = wire.request("initialize", {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": wire.CLIENT_INFO})
    async with wire.client() as http:
        with anyio.fail_after(15):
            reply = await wire.post(http, mcp_url, message, {"Origin": ALLOWED_ORIGIN})
            assert reply.status == 200, reply.describe()
            assert reply.result["protocolVersion"] == "2025-11-25"
            session_id = reply.headers.get(wire.SESSION_HEADER)
            if session_id:
                await http.delete(mcp_url, headers={wire.SESSION_HEADER: session_id, wire.VERSION_HEADER: "2025-11-25"})


@pytest.mark.gateway_only  # the Python SDK server answers 421 Misdirected Request here
async def test_host_not_allowed(mcp_url: str) -> None:
    parts = urlsplit(mcp_url)
    body = json.dumps(wire.request("initialize", {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": wire.CLIENT_INFO})).encode()
    raw = (
        f"POST {parts.path} HTTP/1.1\r\nHost: evil.example\r\nAccept: {wire.ACCEPT}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    status, response = await anyio.to_thread.run_sync(wire.raw_http, parts.hostname, parts.port, raw)
    assert status == 403, response[:500]
    async with wire.client() as http:
        with anyio.fail_after(15):
            await assert_still_serving(http, mcp_url)


# --- upstream failures ------------------------------------------------------------------------


@pytest.mark.gateway_only
async def test_upstream_down(scratch_dir) -> None:  # noqa: ANN001
    """An HTTP upstream on a closed port: a prompt JSON-RPC error naming the upstream, never a hang."""
    from conftest import free_port

    name = "demo-down"
    gateway = start_gateway(
        scratch_dir, {"http": {"url": f"http://127.0.0.1:{free_port()}/mcp"}}, upstream_name=name, ready_path="/healthz"
    )
    try:
        async with wire.client() as http:
            for attempt in range(2):  # the second time too: no cached hang, no crash
                start = time.monotonic()
                with anyio.fail_after(10):
                    reply = await wire.modern_call(http, gateway.mcp_url, "tools/call", {"name": "echo", "arguments": {"message": "x"}})
                elapsed = time.monotonic() - start
                assert elapsed < 5, f"attempt {attempt}: took {elapsed:.1f}s"
                error = reply.error
                assert name in error["message"], f"the error should name upstream {name!r}: {reply.describe()}"

            start = time.monotonic()
            with anyio.fail_after(10):
                error = await first_session_error(http, gateway.mcp_url)
            assert time.monotonic() - start < 8
            assert name in error["message"], f"the error should name upstream {name!r}: {error}"

            health = await http.get(f"{gateway.base_url}/healthz")
            assert health.status_code == 200, "the gateway itself is alive"
    except BaseException:
        print(gateway.describe())
        raise
    finally:
        gateway.proc.stop()


async def first_session_error(http: httpx2.AsyncClient, url: str) -> dict:
    """initialize + tools/call in the session era; return the first JSON-RPC error."""
    init = await wire.post(http, url, wire.request("initialize", {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": wire.CLIENT_INFO}))
    if "error" in init.response:
        return init.error
    session_id = init.headers.get(wire.SESSION_HEADER)
    assert session_id, init.describe()
    session = wire.Session(url=url, version="2025-11-25", session_id=session_id, initialize=init)
    await wire.post(http, url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, session.headers())
    call = await wire.session_call(http, session, "tools/call", {"name": "echo", "arguments": {"message": "x"}})
    await wire.close_session(http, session)
    return call.error


@pytest.mark.gateway_only
async def test_upstream_timeout(upstream: Upstream, scratch_dir) -> None:  # noqa: ANN001
    """A request that outlives timeouts.requestSeconds: a JSON-RPC error naming the upstream; the upstream stays usable."""
    name = "demo-slow"
    gateway: Gateway = start_gateway(scratch_dir, upstream.spec, upstream_name=name, request_seconds=1)
    slow = {"name": "slow", "arguments": {"steps": 1, "intervalMs": 6000}}
    try:
        async with wire.client() as http:
            # session era
            session = await wire.open_session(http, gateway.mcp_url, "2025-11-25")
            start = time.monotonic()
            with anyio.fail_after(10):
                reply = await wire.session_call(http, session, "tools/call", slow)
            elapsed = time.monotonic() - start
            error = reply.error
            assert name in error["message"], f"the error should name upstream {name!r}: {reply.describe()}"
            assert 0.8 <= elapsed < 4, f"timed out after {elapsed:.1f}s with requestSeconds: 1"
            echo = await wire.session_call(http, session, "tools/call", {"name": "echo", "arguments": {"message": "after"}})
            assert echo.result["content"][0]["text"] == "after", echo.describe()
            await wire.close_session(http, session)

            # stateless era
            start = time.monotonic()
            with anyio.fail_after(10):
                reply = await wire.modern_call(http, gateway.mcp_url, "tools/call", slow)
            elapsed = time.monotonic() - start
            assert name in reply.error["message"], reply.describe()
            assert 0.8 <= elapsed < 4, f"timed out after {elapsed:.1f}s with requestSeconds: 1"
            with anyio.fail_after(10):
                await assert_still_serving(http, gateway.mcp_url)
    except BaseException:
        print(gateway.describe())
        raise
    finally:
        gateway.proc.stop()
