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



def start_limited_gateway(scratch_dir: Path, name: str) -> tuple[Proc, int]:
    """A gateway in front of the stdio demo server with `maxConcurrentRequests: 1`."""
    require_binary(GATEHOUSE_BIN, "gatehouse")
    port = free_port()
    gateway = {"apiVersion": "gatehouse.dev/v1alpha1", "kind": "Gateway", "metadata": {"name": name},
               "spec": {"listen": {"bind": "127.0.0.1", "port": port}, "upstream": "demo"}}
    server = {"apiVersion": "gatehouse.dev/v1alpha1", "kind": "MCPServer", "metadata": {"name": "demo"},
              "spec": {"stdio": {"command": str(DEMO_BIN), "args": ["--stdio"], "env": {}, "workingDirectory": str(scratch_dir)},
                       "maxConcurrentRequests": 1}}
    config = scratch_dir / f"{name}.yaml"
    config.write_text(_yaml(gateway) + "\n---\n" + _yaml(server) + "\n")
    proc = Proc(f"gateway-{name}", [str(GATEHOUSE_BIN), "serve", "--config", str(config), "--port", str(port)], scratch_dir)
    return proc, port

async def test_concurrency_limit_refuses_at_once_and_frees_the_slot(scratch_dir: Path) -> None:
    """`maxConcurrentRequests: 1`: while a slow call runs, another call is refused at once with
    429 and -32029 naming the upstream; after the slow call the slot is free again."""
    import anyio

    proc, port = start_limited_gateway(scratch_dir, "concurrency")
    url = f"http://127.0.0.1:{port}/mcp"

    async def call(http: httpx2.AsyncClient, name: str, arguments: dict) -> httpx2.Response:
        return await http.post(url, headers={"Accept": "application/json", "MCP-Protocol-Version": "2026-07-28",
                                             "Mcp-Method": "tools/call", "Mcp-Name": name},
                               json={"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                     "params": {"name": name, "arguments": arguments, "_meta": META}})

    try:
        wait_http_200(proc, f"http://127.0.0.1:{port}/readyz")
        async with httpx2.AsyncClient(trust_env=False, timeout=30) as http:
            results: dict[str, httpx2.Response] = {}

            async def slow() -> None:
                results["slow"] = await call(http, "slow", {"steps": 3, "intervalMs": 500})

            with anyio.fail_after(20):
                async with anyio.create_task_group() as group:
                    group.start_soon(slow)
                    await anyio.sleep(0.5)
                    started = time.monotonic()
                    busy = await call(http, "echo", {"message": "while busy"})
                    assert time.monotonic() - started < 0.5, "refused at once, not queued"
                assert busy.status_code == 429 and busy.headers.get("retry-after") == "1", busy.text
                error = busy.json()["error"]
                assert error["code"] == -32029 and "upstream 'demo' is at its limit of 1" in error["message"], error
                assert results["slow"].status_code == 200 and "result" in results["slow"].json(), results["slow"].text
                after = await call(http, "echo", {"message": "free again"})
                assert after.status_code == 200 and after.json()["result"]["content"][0]["text"] == "free again", after.text
    finally:
        proc.stop()


async def test_a_client_that_gives_up_frees_its_slot(scratch_dir: Path) -> None:
    """A client that closes its connection while a slow call runs (no event written yet) gets
    its request cancelled upstream, and the concurrency slot is free again at once, not when
    the upstream would have answered (9 s later here)."""
    import anyio

    proc, port = start_limited_gateway(scratch_dir, "gives-up")
    url = f"http://127.0.0.1:{port}/mcp"
    headers = {"Accept": "application/json", "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call"}

    def body(name: str, arguments: dict) -> dict:
        return {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": arguments, "_meta": META}}

    try:
        wait_http_200(proc, f"http://127.0.0.1:{port}/readyz")
        async with httpx2.AsyncClient(trust_env=False, timeout=0.7) as impatient:
            with pytest.raises(httpx2.TimeoutException):
                await impatient.post(url, headers={**headers, "Mcp-Name": "slow"}, json=body("slow", {"steps": 18, "intervalMs": 500}))
        async with httpx2.AsyncClient(trust_env=False, timeout=10) as http:
            # The abandoned call would hold the slot until about 9.7 s; 5 s is plenty once it is cancelled.
            with anyio.fail_after(5):
                while True:
                    reply = await http.post(url, headers={**headers, "Mcp-Name": "echo"}, json=body("echo", {"message": "free"}))
                    if reply.status_code == 200:
                        break
                    assert reply.status_code == 429, reply.text
                    await anyio.sleep(0.2)
            assert reply.json()["result"]["content"][0]["text"] == "free", reply.text
    finally:
        proc.stop()
