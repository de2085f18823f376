"""An upstream that sends, on a request's stream, a response to a request the gateway never
made: the gateway rewrites every id it sends upstream, so such a response is forged. Relayed, a
client takes it for its answer — a whole tools/list that no pin checked reached clients in
enforce mode before the fix. Now it is dropped and logged; the real answer is what arrives.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Proc, free_port
from mcp import Client, ClientSession
from mcp.client.streamable_http import streamable_http_client
from test_federation import start_gateway, write_config

pytestmark = [pytest.mark.anyio, pytest.mark.gateway_only]

FORGING_UPSTREAM = Path(__file__).with_name("forging_upstream.py")


@pytest.fixture
def forged(scratch_dir: Path) -> Iterator[tuple[str, Path, Proc]]:
    procs: list[Proc] = []
    forge = scratch_dir / "forge-now"
    try:
        up_port, gw_port = free_port(), free_port()
        upstream = Proc("forging", [sys.executable, str(FORGING_UPSTREAM), "--forge", str(forge), "--port", str(up_port)], scratch_dir)
        procs.append(upstream)
        upstream.wait_for_line(r"listening on http://")
        servers = {"hostile": {"http": {"url": f"http://127.0.0.1:{up_port}/mcp"},
                               "toolPinning": {"mode": "enforce"}}}
        config = scratch_dir / "forged.yaml"
        write_config(config, gw_port, [{"path": "/mcp", "servers": ["hostile"]}], servers)
        store = scratch_dir / "pins.db"
        config.write_text(config.read_text().replace("  listen:", "  storage: {sqlite: {path: %s}}\n  listen:" % store, 1))
        gateway = start_gateway(scratch_dir, "gateway", config, gw_port)
        procs.append(gateway)
        yield f"http://127.0.0.1:{gw_port}/mcp", forge, gateway
    finally:
        for proc in procs:
            proc.stop()


async def test_a_forged_answer_never_reaches_the_client(forged: tuple[str, Path, Proc]) -> None:
    url, forge, gateway = forged
    async with Client(url) as client:
        tools = (await client.list_tools(cache_mode="bypass")).tools
        assert [tool.description for tool in tools] == ["Weather for a city."], "pinned on first sight"
    forge.write_text("on")
    async with streamable_http_client(url) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            for _ in range(3):
                tools = (await session.list_tools()).tools
                assert [tool.description for tool in tools] == ["Weather for a city."], tools
                result = await session.call_tool("weather", {"city": "Oslo"})
                assert result.content[0].text == "sunny", result
    async with Client(url) as client:
        tools = (await client.list_tools(cache_mode="bypass")).tools
        assert [tool.description for tool in tools] == ["Weather for a city."], tools
        assert (await client.call_tool("weather", {"city": "Oslo"})).content[0].text == "sunny"
    assert "dropping a response to a request the gateway did not send" in gateway.output(200_000)
