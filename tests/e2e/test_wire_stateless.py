"""The stateless 2026-07-28 protocol checked on the wire with raw HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import pytest
import wire
from conftest import DIRECT, Upstream

pytestmark = pytest.mark.anyio


@pytest.fixture
def url(mcp_url: str, upstream: Upstream) -> Iterator[str]:
    if DIRECT and upstream.kind != "http-python":
        pytest.skip("the demo server speaks the handshake era only; the gateway bridges it to 2026-07-28")
    yield mcp_url


async def test_discover(url: str) -> None:
    async with wire.client() as http:
        with anyio.fail_after(10):
            reply = await wire.modern_call(http, url, "server/discover")
    assert reply.status == 200, reply.describe()
    result = reply.result
    assert result.get("resultType") == "complete", reply.describe()
    assert "2026-07-28" in result.get("supportedVersions", []), reply.describe()
    assert isinstance(result.get("capabilities"), dict), reply.describe()


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("tools/list", {}),
        ("tools/call", {"name": "echo", "arguments": {"message": "stateless"}}),
        ("resources/list", {}),
        ("resources/read", {"uri": "demo://readme"}),
        ("prompts/list", {}),
        ("prompts/get", {"name": "greet", "arguments": {"name": "Ada"}}),
    ],
)
async def test_results_carry_result_type(url: str, method: str, params: dict) -> None:
    async with wire.client() as http:
        with anyio.fail_after(10):
            reply = await wire.modern_call(http, url, method, params)
    assert reply.status == 200, reply.describe()
    assert reply.result.get("resultType") == "complete", reply.describe()
    assert wire.SESSION_HEADER.lower() not in {k.lower() for k in reply.headers}, "2026-07-28 has no sessions"


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("server/discover", None),
        ("tools/list", {}),
        ("prompts/list", {}),
        ("resources/list", {}),
        ("resources/templates/list", {}),
        ("resources/read", {"uri": "demo://items/7"}),
    ],
)
async def test_cacheable_results_carry_cache_hints(url: str, method: str, params: dict | None) -> None:
    """2026-07-28 server/utilities/caching: these complete results MUST carry ttlMs (>= 0) and cacheScope."""
    async with wire.client() as http:
        with anyio.fail_after(10):
            reply = await wire.modern_call(http, url, method, params)
    result = reply.result
    ttl = result.get("ttlMs")
    assert isinstance(ttl, int) and not isinstance(ttl, bool) and ttl >= 0, f"ttlMs missing or invalid: {reply.describe()}"
    assert result.get("cacheScope") in ("public", "private"), f"cacheScope missing or invalid: {reply.describe()}"


async def test_stateless_call_content(url: str) -> None:
    async with wire.client() as http:
        with anyio.fail_after(10):
            reply = await wire.modern_call(http, url, "tools/call", {"name": "add", "arguments": {"a": 2, "b": 3}})
    assert reply.result["content"][0]["text"] == "5", reply.describe()


@pytest.mark.parametrize("mismatch", ["Mcp-Method", "Mcp-Name"])
async def test_header_mismatch(url: str, mismatch: str) -> None:
    message = wire.modern_request("tools/call", {"name": "echo", "arguments": {"message": "x"}})
    headers = wire.modern_headers(message)
    headers[mismatch] = {"Mcp-Method": "tools/list", "Mcp-Name": "add"}[mismatch]
    async with wire.client() as http:
        with anyio.fail_after(10):
            reply = await wire.post(http, url, message, headers)
            assert reply.status == 400, reply.describe()
            assert reply.error["code"] == wire.HEADER_MISMATCH, reply.describe()
            await assert_still_serving_modern(http, url)


async def test_unsupported_protocol_version(url: str) -> None:
    message = wire.modern_request("tools/list", {}, version="2099-01-01")
    headers = wire.modern_headers(message, version="2099-01-01")
    async with wire.client() as http:
        with anyio.fail_after(10):
            reply = await wire.post(http, url, message, headers)
            assert reply.status == 400, reply.describe()
            error = reply.error
            assert error["code"] == wire.UNSUPPORTED_PROTOCOL_VERSION, reply.describe()
            supported = (error.get("data") or {}).get("supported")
            assert isinstance(supported, list) and "2026-07-28" in supported, reply.describe()
            await assert_still_serving_modern(http, url)


async def test_unknown_method(url: str) -> None:
    async with wire.client() as http:
        with anyio.fail_after(10):
            reply = await wire.modern_call(http, url, "demo/no-such-method", {})
            assert reply.status == 404, reply.describe()
            assert reply.error["code"] == wire.METHOD_NOT_FOUND, reply.describe()
            await assert_still_serving_modern(http, url)


async def test_slow_progress_over_raw_sse(url: str) -> None:
    """With a progressToken, a stateless tools/call streams progress before the result."""
    message = wire.modern_request("tools/call", {"name": "slow", "arguments": {"steps": 2, "intervalMs": 200}})
    message["params"]["_meta"]["progressToken"] = "p-1"
    async with wire.client() as http:
        with anyio.fail_after(10):
            reply = await wire.post(http, url, message, wire.modern_headers(message))
    assert reply.status == 200, reply.describe()
    assert reply.content_type.startswith("text/event-stream"), reply.describe()
    progress = [n for n in reply.notifications if n["method"] == "notifications/progress"]
    assert [n["params"]["progress"] for n in progress] == [1, 2], reply.describe()
    assert all(n["params"]["progressToken"] == "p-1" for n in progress), reply.describe()
    assert reply.result["content"][0]["text"] == "done after 2 steps"


async def assert_still_serving_modern(http, url: str) -> None:  # noqa: ANN001
    reply = await wire.modern_call(http, url, "tools/list", {})
    assert reply.status == 200, f"after a rejected request the server stopped answering: {reply.describe()}"
    assert reply.result["tools"], reply.describe()
