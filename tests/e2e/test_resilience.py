"""Resilient upstreams: a circuit breaker that fails fast while an upstream is down and probes to
close once it is back; retries for requests that are safe to repeat.

The upstream is the Swift-SDK demo server over HTTP on a fixed port, killed and started again
on the same port; the gateway has `resilience: {retries: 1, circuitBreaker: {failures: 2,
openSeconds: 1}}`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from conftest import DEMO_BIN, GATEHOUSE_BIN, Proc, _yaml, free_port, require_binary, wait_http_200

pytestmark = pytest.mark.anyio

META = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientInfo": {"name": "e2e", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {}}


def start_demo(log_dir: Path, port: int, name: str) -> Proc:
    proc = Proc(name, [str(DEMO_BIN), "--http", "--host", "127.0.0.1", "--port", str(port)], log_dir)
    proc.wait_for_line(r"listening on (http://\S+)")
    return proc


@pytest.fixture
def setup(scratch_dir: Path) -> Iterator[tuple[str, int, Path, Proc]]:
    require_binary(GATEHOUSE_BIN, "gatehouse")
    require_binary(DEMO_BIN, "gatehouse-demo-server")
    upstream_port = free_port()
    demo = start_demo(scratch_dir, upstream_port, "demo-1")
    port = free_port()
    gateway = {"apiVersion": "gatehouse.dev/v1alpha1", "kind": "Gateway", "metadata": {"name": "resilience"},
               "spec": {"listen": {"bind": "127.0.0.1", "port": port}, "upstream": "demo"}}
    server = {"apiVersion": "gatehouse.dev/v1alpha1", "kind": "MCPServer", "metadata": {"name": "demo"},
              "spec": {"http": {"url": f"http://127.0.0.1:{upstream_port}/mcp"},
                       "resilience": {"retries": 1, "retryBackoffSeconds": 0.05, "circuitBreaker": {"failures": 2, "openSeconds": 1}}}}
    config = scratch_dir / "gateway.yaml"
    config.write_text(_yaml(gateway) + "\n---\n" + _yaml(server) + "\n")
    proc = Proc("gateway", [str(GATEHOUSE_BIN), "serve", "--config", str(config), "--port", str(port)], scratch_dir)
    try:
        wait_http_200(proc, f"http://127.0.0.1:{port}/readyz")
        yield f"http://127.0.0.1:{port}/mcp", upstream_port, scratch_dir, demo
    finally:
        proc.stop()
        demo.stop()


async def tools_list(http: httpx2.AsyncClient, url: str) -> dict:
    reply = await http.post(url, headers={"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2026-07-28",
                                          "Mcp-Method": "tools/list"},
                            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": META}})
    return reply.json()


async def test_breaker_opens_fails_fast_and_closes_after_recovery(setup: tuple[str, int, Path, Proc]) -> None:
    url, upstream_port, log_dir, first_demo = setup
    async with httpx2.AsyncClient(trust_env=False, timeout=20) as http:
        assert "tools" in (await tools_list(http, url))["result"]
        # Kill the upstream: the first failing request was retried once (two failures) and opened the breaker.
        first_demo.stop()
        time.sleep(0.3)
        first = await tools_list(http, url)
        assert first["error"]["code"] == -32603 and "demo" in first["error"]["message"], first
        started = time.monotonic()
        fast = await tools_list(http, url)
        assert "circuit breaker is open" in fast["error"]["message"], fast
        assert time.monotonic() - started < 0.5, "an open breaker answers at once"
        # The upstream comes back; after openSeconds one probe closes the breaker.
        demo = start_demo(log_dir, upstream_port, "demo-2")
        try:
            time.sleep(1.2)
            recovered = await tools_list(http, url)
            assert "tools" in recovered.get("result", {}), recovered
            again = await tools_list(http, url)
            assert "tools" in again.get("result", {}), again
        finally:
            demo.stop()
