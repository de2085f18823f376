"""Messages that belong to no request, batches, and draining on shutdown (stdio demo upstream)."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import DEMO_BIN, Gateway, start_gateway, stdio_demo
from mcp import Client, ClientSession
from mcp.client.streamable_http import streamable_http_client
from wire import client, modern_headers, modern_request, open_session, post, request, session_call

pytestmark = [pytest.mark.anyio, pytest.mark.gateway_only]


@pytest.fixture
def stdio_gateway(scratch_dir: Path) -> Any:
    gateway = start_gateway(scratch_dir, stdio_demo(scratch_dir).spec, name="gateway-streams")
    try:
        yield gateway
    finally:
        gateway.proc.stop()


async def test_list_changed_reaches_the_session_stream(stdio_gateway: Gateway) -> None:
    received: list[Any] = []

    async def on_message(message: Any) -> None:
        received.append(message)

    async with streamable_http_client(stdio_gateway.mcp_url) as (read, write):
        async with ClientSession(read, write, message_handler=on_message) as session:
            await session.initialize()
            await anyio.sleep(0.3)  # the SDK opens its GET stream after initialized
            await session.call_tool("touch", {})
            with anyio.fail_after(5):
                while not any("tools/list_changed" in repr(m) for m in received):
                    await anyio.sleep(0.05)


async def test_list_changed_reaches_a_2026_listen_stream(stdio_gateway: Gateway) -> None:
    async with Client(stdio_gateway.mcp_url) as listener, Client(stdio_gateway.mcp_url) as caller:
        async with listener.listen(tools_list_changed=True) as events:
            await caller.call_tool("touch", {})
            with anyio.fail_after(5):
                async for event in events:
                    assert type(event).__name__ == "ToolsListChanged", event
                    break


async def test_listen_acknowledges_only_what_the_upstream_can_deliver(stdio_gateway: Gateway) -> None:
    message = modern_request("subscriptions/listen", {"notifications": {"toolsListChanged": True, "promptsListChanged": True}})
    async with client() as http:
        headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json", **modern_headers(message)}
        import json

        async with http.stream("POST", stdio_gateway.mcp_url, content=json.dumps(message), headers=headers) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    ack = json.loads(line[5:])
                    break
    assert ack["method"] == "notifications/subscriptions/acknowledged"
    assert ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == message["id"]
    # The demo server announces tool list changes but not prompt list changes.
    assert ack["params"]["notifications"] == {"toolsListChanged": True}


async def test_batches_work_in_2025_03_26(stdio_gateway: Gateway) -> None:
    async with client() as http:
        session = await open_session(http, stdio_gateway.mcp_url, "2025-03-26")
        batch = [
            request("tools/call", {"name": "echo", "arguments": {"message": "one"}}),
            {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": "x", "progress": 1}},
            request("tools/call", {"name": "add", "arguments": {"a": 1, "b": 2}}),
        ]
        reply = await post(http, stdio_gateway.mcp_url, batch, session.headers())
        assert reply.status == 200, reply.describe()
        answers = {m["id"]: m for m in reply.messages}
        assert answers[batch[0]["id"]]["result"]["content"][0]["text"] == "one"
        assert answers[batch[2]["id"]]["result"]["content"][0]["text"] == "3"
        assert len(reply.messages) == 2  # no answer to the notification


async def test_sigterm_lets_in_flight_requests_finish(stdio_gateway: Gateway) -> None:
    async with client() as http:
        session = await open_session(http, stdio_gateway.mcp_url, "2025-11-25")
        result: dict[str, Any] = {}

        async def call() -> None:
            reply = await session_call(http, session, "tools/call",
                                       {"name": "slow", "arguments": {"steps": 3, "intervalMs": 400}, "_meta": {"progressToken": "t"}})
            result["reply"] = reply

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(call)
            await anyio.sleep(0.5)
            stdio_gateway.proc.popen.send_signal(signal.SIGTERM)
        reply = result["reply"]
        assert reply.status == 200, reply.describe()
        assert reply.result["content"][0]["text"] == "done after 3 steps"
        started = time.monotonic()
        code = await anyio.to_thread.run_sync(lambda: stdio_gateway.proc.popen.wait(10))
        assert code == 0 and time.monotonic() - started < 10


async def test_a_stdio_server_that_dies_is_restarted(scratch_dir: Path) -> None:
    import os
    import subprocess

    marker = f"restart-{os.getpid()}-{int(time.monotonic() * 1000)}"
    spec = {"stdio": {"command": str(DEMO_BIN), "args": ["--stdio", "--name", marker], "restartDelaySeconds": 0.2}}
    gateway = start_gateway(scratch_dir, spec, name="gateway-restart")
    try:
        def child_pid() -> int | None:
            out = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout.split()
            return int(out[0]) if out else None

        first = child_pid()
        assert first, "the stdio child is not running"
        async with Client(gateway.mcp_url) as session:
            assert (await session.call_tool("echo", {"message": "before"})).content[0].text == "before"
            os.kill(first, signal.SIGKILL)
            with anyio.fail_after(10):
                while True:
                    try:
                        result = await session.call_tool("echo", {"message": "after"})
                        if not result.is_error:
                            break
                    except Exception as error:  # the gap while it restarts answers with a clear error
                        assert "upstream 'demo'" in str(error), str(error)
                    await anyio.sleep(0.1)
            assert result.content[0].text == "after"
        second = child_pid()
        assert second and second != first
        assert "exited" in gateway.proc.output() and "restarted" in gateway.proc.output()
    finally:
        gateway.proc.stop()
