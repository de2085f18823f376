"""Virtual servers: an endpoint made of chosen tools of three servers, under names the operator
picks, with descriptions, titles and annotations replaced and tools hidden — in both eras,
with each call reaching its server under the server's own name.

Upstreams: the Swift demo server over stdio and over HTTP, and the Python SDK server over HTTP
(2026-07-28); clients: the official Python SDK in both eras.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import DEMO_BIN, Proc, free_port, require_binary
from mcp import Client, ClientSession
from mcp.client.streamable_http import streamable_http_client
from test_federation import start_http_demo, start_python, start_gateway, write_config
from wire import client, modern_call

pytestmark = [pytest.mark.anyio, pytest.mark.gateway_only]


@pytest.fixture
def virtual(scratch_dir: Path) -> Iterator[tuple[int, dict[str, Proc]]]:
    require_binary(DEMO_BIN, "gatehouse-demo-server")
    procs: dict[str, Proc] = {}
    try:
        http_port, py_port, gw_port = free_port(), free_port(), free_port()
        procs["web"] = start_http_demo(scratch_dir, "web", http_port, "--tools", "echo,add,fail,touch")
        procs["py"] = start_python(scratch_dir, "py", py_port)
        servers = {
            "local": {"stdio": {"command": str(DEMO_BIN), "args": ["--stdio", "--name", "local", "--tools", "echo,ask_roots"]}},
            "web": {"http": {"url": f"http://127.0.0.1:{http_port}/mcp"}},
            "py": {"http": {"url": f"http://127.0.0.1:{py_port}/mcp"}},
        }
        endpoints = [
            {"path": "/mcp/assistant", "servers": ["local", "web", "py"], "toolSelection": "listed", "tools": [
                {"server": "local", "tool": "echo", "name": "shout", "description": "Repeat the message back, loudly."},
                {"server": "web", "tool": "add", "name": "sum", "title": "Add two numbers", "annotations": {"readOnlyHint": True}},
                {"server": "py", "tool": "echo", "name": "py_echo"},
                {"server": "web", "tool": "touch", "hide": True},
            ]},
            {"path": "/mcp", "servers": ["local", "web", "py"], "tools": [
                {"server": "web", "tool": "touch", "hide": True},
                {"server": "py", "tool": "add", "name": "plus"},
            ]},
        ]
        config = scratch_dir / "virtual.yaml"
        write_config(config, gw_port, endpoints, servers)
        procs["gateway"] = start_gateway(scratch_dir, "gateway", config, gw_port)
        yield gw_port, procs
    finally:
        for proc in procs.values():
            proc.stop()


async def each_era(url: str, body: Any) -> None:
    async with streamable_http_client(url) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            await body(session)
    async with Client(url) as session:
        assert session.protocol_version == "2026-07-28"
        await body(session)


async def list_tools(session: Any) -> list[Any]:
    if isinstance(session, ClientSession):
        return (await session.list_tools()).tools
    return (await session.list_tools(cache_mode="bypass")).tools


async def test_a_virtual_server_exposes_the_chosen_tools_under_new_names(virtual: tuple[int, dict[str, Proc]]) -> None:
    port, procs = virtual
    url = f"http://127.0.0.1:{port}/mcp/assistant"

    async def exercise(session: Any) -> None:
        tools = {tool.name: tool for tool in await list_tools(session)}
        assert sorted(tools) == ["py_echo", "shout", "sum"], sorted(tools)
        assert tools["shout"].description == "Repeat the message back, loudly."
        assert tools["sum"].title == "Add two numbers"
        assert tools["sum"].annotations is not None and tools["sum"].annotations.read_only_hint is True
        assert (await session.call_tool("shout", {"message": "hi"})).content[0].text == "hi"
        assert (await session.call_tool("sum", {"a": 2, "b": 3})).content[0].text == "5"
        assert (await session.call_tool("py_echo", {"message": "from python"})).content[0].text == "from python"

    await each_era(url, exercise)
    # The servers' own and prefixed names are unknown here; so is the hidden tool.
    async with client() as http:
        for name in ["echo", "local__echo", "web__add", "add", "web__touch", "web__fail", "py__echo"]:
            reply = await modern_call(http, url, "tools/call", {"name": name, "arguments": {}})
            assert reply.error is not None and reply.error["code"] == -32602, (name, reply)
            assert reply.error["message"] == f"Unknown tool: {name}"
    assert procs["gateway"].popen.poll() is None, "the gateway keeps serving"


async def test_overrides_on_a_federated_endpoint_keep_everything_else(virtual: tuple[int, dict[str, Proc]]) -> None:
    port, _ = virtual
    url = f"http://127.0.0.1:{port}/mcp"

    async def exercise(session: Any) -> None:
        names = [tool.name for tool in await list_tools(session)]
        assert "web__touch" not in names and "py__add" not in names, names
        assert "plus" in names and "local__echo" in names and "web__add" in names, names
        assert (await session.call_tool("plus", {"a": 1, "b": 1})).content[0].text == "2"
        assert (await session.call_tool("web__add", {"a": 2, "b": 2})).content[0].text == "4"

    await each_era(url, exercise)
    async with client() as http:
        for name in ["web__touch", "py__add"]:
            reply = await modern_call(http, url, "tools/call", {"name": name, "arguments": {}})
            assert reply.error is not None and reply.error["message"] == f"Unknown tool: {name}", (name, reply)
