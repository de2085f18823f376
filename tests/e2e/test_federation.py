"""Federation: several upstream servers of mixed kinds and revisions behind one endpoint.

Upstreams: a stdio demo server (2025-11-25, Swift SDK), an HTTP demo server (2025-11-25, Swift
SDK) whose tools/list pages two tools at a time, and the Python SDK server over HTTP
(2026-07-28). Clients: the official Python SDK in both eras, and raw HTTP where the wire matters.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import (
    DEMO_BIN,
    GATEHOUSE_BIN,
    PYTHON_UPSTREAM,
    Proc,
    _yaml,
    free_port,
    require_binary,
    wait_http_200,
)
from mcp import Client, ClientSession, types
from mcp.client.streamable_http import streamable_http_client
from wire import client, modern_call, open_session, post, request, session_call

import sys

pytestmark = [pytest.mark.anyio, pytest.mark.gateway_only]


@dataclass
class Fed:
    port: int
    procs: dict[str, Proc]
    config_path: Path
    log_dir: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"


def start_http_demo(log_dir: Path, name: str, port: int, *extra: str) -> Proc:
    proc = Proc(name, [str(DEMO_BIN), "--http", "--host", "127.0.0.1", "--port", str(port), "--name", name, *extra], log_dir)
    proc.wait_for_line(r"listening on http://")
    return proc


def start_python(log_dir: Path, name: str, port: int) -> Proc:
    proc = Proc(name, [sys.executable, str(PYTHON_UPSTREAM), "--host", "127.0.0.1", "--port", str(port)], log_dir)
    proc.wait_for_line(r"listening on http://")
    return proc


def write_config(path: Path, port: int, endpoints: list[dict[str, Any]], servers: dict[str, dict[str, Any]], key: str | None = None) -> None:
    spec: dict[str, Any] = {"listen": {"bind": "127.0.0.1", "port": port}}
    docs = []
    gateway_yaml = _yaml({"apiVersion": "gatehouse.dev/v1alpha1", "kind": "Gateway", "metadata": {"name": "fed"}, "spec": spec})
    # endpoints are a list of mappings: emit them as JSON flow (valid YAML)
    gateway_yaml += "\n  endpoints: " + json.dumps(endpoints)
    if key:
        gateway_yaml += "\n  sessions: " + json.dumps({"key": key})
    docs.append(gateway_yaml)
    for name, server_spec in servers.items():
        docs.append(_yaml({"apiVersion": "gatehouse.dev/v1alpha1", "kind": "MCPServer", "metadata": {"name": name},
                           "spec": server_spec}))
    path.write_text("\n---\n".join(docs) + "\n")


def start_gateway(log_dir: Path, name: str, config_path: Path, port: int) -> Proc:
    require_binary(GATEHOUSE_BIN, "gatehouse")
    proc = Proc(name, [str(GATEHOUSE_BIN), "serve", "--config", str(config_path), "--port", str(port)], log_dir)
    try:
        wait_http_200(proc, f"http://127.0.0.1:{port}/readyz", context=config_path.read_text(), every_server=True)
    except BaseException:
        proc.stop()
        raise
    return proc


@pytest.fixture
def fed(scratch_dir: Path) -> Iterator[Fed]:
    """Three upstreams of mixed kinds behind /mcp (prefix: always) and /mcp/dev (on-collision)."""
    require_binary(DEMO_BIN, "gatehouse-demo-server")
    procs: dict[str, Proc] = {}
    try:
        http_port, py_port, gw_port = free_port(), free_port(), free_port()
        procs["web"] = start_http_demo(scratch_dir, "web", http_port, "--tools", "echo,add,fail,slow,touch", "--page-size", "2")
        procs["py"] = start_python(scratch_dir, "py", py_port)
        servers = {
            "local": {"stdio": {"command": str(DEMO_BIN), "args": ["--stdio", "--name", "local", "--tools", "echo,ask_roots"]},
                      "timeouts": {"requestSeconds": 10}},
            "web": {"http": {"url": f"http://127.0.0.1:{http_port}/mcp"}, "timeouts": {"requestSeconds": 10}},
            "py": {"http": {"url": f"http://127.0.0.1:{py_port}/mcp"}, "timeouts": {"requestSeconds": 10}},
        }
        endpoints = [
            {"path": "/mcp", "listTimeoutSeconds": 2},
            {"path": "/mcp/dev", "servers": ["local", "web"], "naming": {"prefix": "on-collision"}},
        ]
        config = scratch_dir / "fed.yaml"
        write_config(config, gw_port, endpoints, servers)
        procs["gateway"] = start_gateway(scratch_dir, "gateway", config, gw_port)
        yield Fed(port=gw_port, procs=procs, config_path=config, log_dir=scratch_dir)
    finally:
        for proc in procs.values():
            proc.stop()


EXPECTED_TOOLS = (
    ["local__echo", "local__ask_roots"]
    + ["web__echo", "web__add", "web__slow", "web__fail", "web__touch"]
    + ["py__echo", "py__add", "py__slow", "py__fail"]
)


async def list_all_tools(session: Any) -> tuple[list[str], int]:
    names: list[str] = []
    pages = 0
    cursor = None
    while True:
        if isinstance(session, ClientSession):
            params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
            result = await session.list_tools(params=params)
        else:
            result = await session.list_tools(cursor=cursor, cache_mode="bypass") if cursor else await session.list_tools(cache_mode="bypass")
        pages += 1
        names += [tool.name for tool in result.tools]
        cursor = result.next_cursor
        if not cursor:
            return names, pages
        assert pages < 20, "pagination does not end"


@pytest.mark.parametrize("era", ["session-2025-11-25", "stateless-2026-07-28"])
async def test_lists_and_calls_through_one_endpoint(fed: Fed, era: str) -> None:
    async def exercise(session: Any) -> None:
        names, pages = await list_all_tools(session)
        # Deterministic order: server order, then each server's own order; every page merged.
        py_tools = [n for n in names if n.startswith("py__")]
        assert [n for n in names if not n.startswith("py__")] == [n for n in EXPECTED_TOOLS if not n.startswith("py__")], names
        assert sorted(py_tools) == sorted(n for n in EXPECTED_TOOLS if n.startswith("py__")), names
        assert pages >= 3, f"web pages its tools two at a time, so the merged list must page too (got {pages} page)"
        result = await session.call_tool("web__add", {"a": 2, "b": 3})
        assert result.content[0].text == "5"
        result = await session.call_tool("py__echo", {"message": "from python"})
        assert result.content[0].text == "from python"
        result = await session.call_tool("local__echo", {"message": "from stdio"})
        assert result.content[0].text == "from stdio"
        failed = await session.call_tool("web__fail", {})
        assert failed.is_error
        progress: list[float] = []

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            progress.append(value)

        slow = await session.call_tool("py__slow", {"steps": 2, "intervalMs": 100}, progress_callback=on_progress)
        assert slow.content[0].text == "done after 2 steps"
        assert progress == [1.0, 2.0]
        resources = [str(r.uri) for r in (await session.list_resources()).resources]
        assert "local+demo://readme" in resources and "web+demo://readme" in resources
        read = await session.read_resource("web+demo://items/9")
        assert read.contents[0].text == "item 9"
        assert str(read.contents[0].uri) == "web+demo://items/9"
        prompts = [p.name for p in (await session.list_prompts()).prompts]
        assert prompts[:2] == ["local__greet", "web__greet"]
        prompt = await session.get_prompt("local__greet", {"name": "Ada"})
        assert prompt.messages[0].content.text == "Say hello to Ada."

    if era == "session-2025-11-25":
        async with streamable_http_client(fed.url) as (read, write):
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                assert init.capabilities.tools is not None
                assert init.capabilities.tools.list_changed  # the union: web announces changes
                await exercise(session)
    else:
        async with Client(fed.url) as session:
            assert session.protocol_version == "2026-07-28"
            await exercise(session)


async def test_unknown_names_and_cursors_get_clear_errors(fed: Fed) -> None:
    async with client() as http:
        reply = await modern_call(http, fed.url, "tools/call", {"name": "nobody__echo", "arguments": {}})
        assert "Unknown tool: nobody__echo" in reply.error["message"]
        reply = await modern_call(http, fed.url, "tools/list", {"cursor": "not-a-cursor"})
        assert reply.error["code"] == -32602 and "cursor" in reply.error["message"]
        reply = await modern_call(http, fed.url, "resources/read", {"uri": "demo://readme"})
        assert reply.error["code"] == -32602 and "<server>+" in reply.error["message"]


async def test_on_collision_prefixes_only_shared_names(fed: Fed) -> None:
    async with Client(fed.url + "/dev") as session:
        names, _ = await list_all_tools(session)
        assert "local__echo" in names and "web__echo" in names, names  # both offer echo
        assert "ask_roots" in names and "add" in names, names  # unique names stay as they are
        result = await session.call_tool("add", {"a": 1, "b": 1})
        assert result.content[0].text == "2"
        result = await session.call_tool("web__echo", {"message": "w"})
        assert result.content[0].text == "w"


async def test_server_to_client_requests_reach_the_session_and_back(fed: Fed) -> None:
    from mcp import types

    async def roots(context: Any) -> types.ListRootsResult:
        return types.ListRootsResult(roots=[types.Root(uri="file:///fed")])

    async with streamable_http_client(fed.url) as (read, write):
        async with ClientSession(read, write, list_roots_callback=roots) as session:
            await session.initialize()
            result = await session.call_tool("local__ask_roots", {})
            assert result.content[0].text == "file:///fed"


async def test_a_dead_server_is_left_out_and_used_again_when_back(fed: Fed) -> None:
    web = fed.procs["web"]
    port = int(web.argv[web.argv.index("--port") + 1])
    async with Client(fed.url) as session:
        assert "web__add" in (await list_all_tools(session))[0]
        web.stop()
        with anyio.fail_after(8):  # listTimeoutSeconds is 2
            names, _ = await list_all_tools(session)
        assert not any(n.startswith("web__") for n in names), names
        assert "local__echo" in names and "py__echo" in names
        with anyio.fail_after(15):
            try:
                result = await session.call_tool("web__add", {"a": 1, "b": 2})
                raise AssertionError(f"expected an error, got {result}")
            except Exception as error:  # McpError from the SDK
                assert "upstream 'web'" in str(error), str(error)
        fed.procs["web"] = start_http_demo(fed.log_dir, "web-again", port, "--tools", "echo,add,fail,slow,touch", "--page-size", "2")
        with anyio.fail_after(15):
            result = await session.call_tool("web__add", {"a": 1, "b": 2})
        assert result.content[0].text == "3"
        assert "web__add" in (await list_all_tools(session))[0]


async def test_list_meta_names_the_server_left_out(fed: Fed) -> None:
    fed.procs["py"].stop()
    async with client() as http:
        with anyio.fail_after(8):
            reply = await modern_call(http, fed.url, "tools/list")
        assert reply.result["_meta"]["gatehouse/unavailableServers"] == ["py"]
        assert any(t["name"] == "local__echo" for t in reply.result["tools"])


def alias(full: str) -> str:
    if len(full) <= 64:
        return full
    return full[:55] + "_" + hashlib.sha256(full.encode()).hexdigest()[:8]


async def test_names_over_64_characters_and_never_mode_collisions(scratch_dir: Path) -> None:
    long_name = "a-server-with-a-name-long-enough-to-push-tools-past-the-limit"
    assert len(long_name) <= 63
    servers = {
        long_name: {"stdio": {"command": str(DEMO_BIN), "args": ["--stdio", "--tools", "echo,ask_roots"]}},
        "b": {"stdio": {"command": str(DEMO_BIN), "args": ["--stdio", "--tools", "echo,add"]}},
    }
    port = free_port()
    config = scratch_dir / "names.yaml"
    write_config(config, port, [
        {"path": "/mcp"},
        {"path": "/never", "naming": {"prefix": "never"}},
        {"path": "/collide", "naming": {"prefix": "on-collision", "separator": "."}},
    ], servers)
    proc = start_gateway(scratch_dir, "gateway-names", config, port)
    try:
        async with Client(f"http://127.0.0.1:{port}/mcp") as session:
            names = [t.name for t in (await session.list_tools()).tools]
            # The documented rule: a prefixed name over 64 characters becomes its first 55
            # characters, "_", and the first 8 hex digits of SHA-256 of the full name.
            expected = [alias(f"{long_name}__echo"), alias(f"{long_name}__ask_roots"), "b__echo", "b__add"]
            assert names == expected, names
            assert all(len(n) <= 64 for n in names)
            assert names[0] != f"{long_name}__echo"
            again = [t.name for t in (await session.list_tools()).tools]
            assert again == names  # stable
            result = await session.call_tool(names[0], {"message": "via alias"})
            assert result.content[0].text == "via alias"
        async with client() as http:
            reply = await modern_call(http, f"http://127.0.0.1:{port}/never", "tools/list")
            message = reply.error["message"]
            assert "'echo'" in message and long_name in message and "'b'" in message, message
        async with Client(f"http://127.0.0.1:{port}/collide") as session:
            names = [t.name for t in (await session.list_tools()).tools]
            assert "b.echo" in names and "add" in names and "ask_roots" in names, names
    finally:
        proc.stop()


async def test_a_session_moves_between_replicas_with_the_same_key(scratch_dir: Path) -> None:
    key = base64.b64encode(os.urandom(48)).decode()
    http_port = free_port()
    upstream = start_http_demo(scratch_dir, "shared-upstream", http_port)
    ports = [free_port(), free_port()]
    procs = [upstream]
    try:
        for index, port in enumerate(ports):
            config = scratch_dir / f"replica{index}.yaml"
            write_config(config, port, [{"path": "/mcp"}],
                         {"demo": {"http": {"url": f"http://127.0.0.1:{http_port}/mcp"}}}, key=key)
            procs.append(start_gateway(scratch_dir, f"replica{index}", config, port))
        a, b = (f"http://127.0.0.1:{port}/mcp" for port in ports)
        async with client() as http:
            session = await open_session(http, a, "2025-11-25")
            reply = await session_call(http, session, "tools/call", {"name": "echo", "arguments": {"message": "on a"}})
            assert reply.result["content"][0]["text"] == "on a"
            session.url = b  # the same client session, now on the other replica
            reply = await session_call(http, session, "tools/call", {"name": "echo", "arguments": {"message": "on b"}})
            assert reply.status == 200, reply.describe()
            assert reply.result["content"][0]["text"] == "on b"
            tampered = session.session_id[:-2] + ("AA" if not session.session_id.endswith("AA") else "BB")
            headers = {**session.headers(), "Mcp-Session-Id": tampered}
            reply = await post(http, b, request("tools/list"), headers)
            assert reply.status == 404, reply.describe()
            # Ending the session on b ends the upstream session; a then answers 404 too.
            deleted = await http.delete(b, headers=session.headers())
            assert deleted.status_code in (200, 204)
            session.url = a
            reply = await session_call(http, session, "tools/list")
            assert reply.status == 404, reply.describe()
    finally:
        for proc in procs:
            proc.stop()
