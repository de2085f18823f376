"""The official Python SDK (mcp 2.3.0) as the client, in both protocol eras.

- session era: `ClientSession` over `streamable_http_client`, 2025-11-25 initialize handshake;
- stateless era: `mcp.Client(url)`, which probes `server/discover` and speaks 2026-07-28.

Each test runs for every upstream kind (stdio-demo, http-demo, http-python) and era.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from conftest import DIRECT, Upstream
from mcp import Client, ClientSession
from mcp.client.streamable_http import streamable_http_client

pytestmark = pytest.mark.anyio

ERAS = ("session-2025-11-25", "stateless-2026-07-28")
CONNECT_TIMEOUT = 20
READ_TIMEOUT = 20  # seconds, per request


@pytest.fixture(params=ERAS)
async def sdk(request: pytest.FixtureRequest, mcp_url: str, upstream: Upstream) -> AsyncIterator[Any]:
    """A connected SDK client: a ClientSession (session era) or an mcp.Client (stateless era)."""
    era = request.param
    if era.startswith("session"):
        async with streamable_http_client(mcp_url) as (read, write):
            async with ClientSession(read, write, read_timeout_seconds=READ_TIMEOUT) as session:
                with anyio.fail_after(CONNECT_TIMEOUT):
                    init = await session.initialize()
                assert init.protocol_version == "2025-11-25", f"negotiated {init.protocol_version}"
                yield session
    else:
        if DIRECT and upstream.kind != "http-python":
            pytest.skip("the demo server speaks the handshake era only; the gateway bridges it to 2026-07-28")
        # read_timeout_seconds bounds every request, the discover probe included (the SDK caps it at 10 s).
        async with Client(mcp_url, read_timeout_seconds=READ_TIMEOUT) as client:
            assert client.protocol_version == "2026-07-28", (
                f"mcp.Client fell back to {client.protocol_version}: server/discover was not answered as 2026-07-28"
            )
            yield client


def text_of(result: Any) -> str:
    assert result.content, f"no content in {result!r}"
    first = result.content[0]
    assert first.type == "text", f"expected text content, got {first!r}"
    return first.text


async def test_list_tools(sdk: Any) -> None:
    with anyio.fail_after(10):
        result = await sdk.list_tools()
    names = {tool.name for tool in result.tools}
    assert {"echo", "add", "slow", "fail"} <= names, f"tools: {sorted(names)}"
    echo = next(tool for tool in result.tools if tool.name == "echo")
    assert "message" in echo.input_schema.get("properties", {}), f"echo inputSchema: {echo.input_schema}"


async def test_echo_and_add(sdk: Any) -> None:
    with anyio.fail_after(10):
        echo = await sdk.call_tool("echo", {"message": "hello through the gate"})
        add = await sdk.call_tool("add", {"a": 2, "b": 3})
    assert not echo.is_error, echo
    assert text_of(echo) == "hello through the gate"
    assert not add.is_error, add
    assert text_of(add) == "5"


async def test_slow_streams_progress_while_running(sdk: Any) -> None:
    start = time.monotonic()
    progress: list[tuple[float, float, float | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((time.monotonic() - start, value, total))

    with anyio.fail_after(15):
        result = await sdk.call_tool("slow", {"steps": 3, "intervalMs": 500}, progress_callback=on_progress)
    finished = time.monotonic() - start
    assert not result.is_error, result
    assert text_of(result) == "done after 3 steps"
    assert [p[1] for p in progress] == [1, 2, 3], f"progress values: {progress}"
    assert all(p[2] == 3 for p in progress), f"progress totals: {progress}"
    first = progress[0][0]
    assert finished - first >= 0.3, (
        f"first progress arrived at {first:.2f}s, the result at {finished:.2f}s: progress was not relayed while "
        "the tool ran (buffered until the end?)"
    )


async def test_fail_is_a_tool_error(sdk: Any) -> None:
    with anyio.fail_after(10):
        result = await sdk.call_tool("fail", {})
    assert result.is_error is True, result
    assert text_of(result) == "the fail tool always fails"


async def test_resources(sdk: Any) -> None:
    with anyio.fail_after(10):
        listed = await sdk.list_resources()
        uris = {str(resource.uri) for resource in listed.resources}
        assert "demo://readme" in uris, f"resources: {sorted(uris)}"
        read = await sdk.read_resource("demo://readme")
    assert len(read.contents) == 1, read
    assert str(read.contents[0].uri) == "demo://readme"
    assert read.contents[0].text == "Gatehouse demo server"


async def test_resource_template(sdk: Any) -> None:
    with anyio.fail_after(10):
        templates = await sdk.list_resource_templates()
        patterns = {template.uri_template for template in templates.resource_templates}
        assert "demo://items/{id}" in patterns, f"templates: {sorted(patterns)}"
        read = await sdk.read_resource("demo://items/42")
    assert read.contents[0].text == "item 42", read


async def test_prompt(sdk: Any) -> None:
    with anyio.fail_after(10):
        prompts = await sdk.list_prompts()
        names = {prompt.name for prompt in prompts.prompts}
        assert "greet" in names, f"prompts: {sorted(names)}"
        prompt = await sdk.get_prompt("greet", {"name": "Ada"})
    assert len(prompt.messages) == 1, prompt
    message = prompt.messages[0]
    assert message.role == "user"
    assert message.content.type == "text"
    assert message.content.text == "Say hello to Ada."
