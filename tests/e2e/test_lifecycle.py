"""The gateway process itself: health endpoints, graceful shutdown, no orphaned stdio children."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import anyio
import pytest
import wire
from conftest import Gateway, start_gateway, stdio_demo

pytestmark = [pytest.mark.anyio, pytest.mark.gateway_only]


async def test_health_endpoints(gw: Gateway) -> None:
    async with wire.client() as http:
        with anyio.fail_after(10):
            for path in ("/healthz", "/readyz"):
                response = await http.get(f"{gw.base_url}{path}")
                assert response.status_code == 200, f"GET {path}: HTTP {response.status_code} {response.text[:200]}"


def descendants(pid: int) -> dict[int, str]:
    """Live (non-zombie) descendants of pid, with their command lines, from /proc."""
    parents: dict[int, int] = {}
    commands: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if "\nState:\tZ" in status:
            continue
        ppid = int(status.split("\nPPid:\t", 1)[1].split("\n", 1)[0])
        parents[int(entry.name)] = ppid
        commands[int(entry.name)] = cmdline
    found: dict[int, str] = {}
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for child, ppid in parents.items():
            if ppid == parent and child not in found:
                found[child] = commands[child]
                frontier.append(child)
    return found


def alive(pids: dict[int, str]) -> dict[int, str]:
    left = {}
    for pid, cmd in pids.items():
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        if "\nState:\tZ" not in status:
            left[pid] = cmd
    return left


async def test_sigterm_stops_gateway_and_stdio_child(scratch_dir: Path) -> None:
    gateway = start_gateway(scratch_dir, stdio_demo(scratch_dir).spec)
    try:
        async with wire.client() as http:
            with anyio.fail_after(15):
                session = await wire.open_session(http, gateway.mcp_url, "2025-11-25")
                reply = await wire.session_call(http, session, "tools/call", {"name": "echo", "arguments": {"message": "up"}})
                assert reply.result["content"][0]["text"] == "up", reply.describe()
        children = descendants(gateway.proc.popen.pid)
        assert any("gatehouse-demo-server" in c for c in children.values()), f"no stdio child found: {children}"

        gateway.proc.popen.send_signal(signal.SIGTERM)
        start = time.monotonic()
        try:
            code = gateway.proc.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the gateway did not exit within 10 s of SIGTERM\n{gateway.describe()}", pytrace=False)
        took = time.monotonic() - start
        deadline = time.monotonic() + 3
        while (left := alive(children)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not left, f"still running after the gateway exited: {left}"
        assert code == 0, f"exit code {code} after SIGTERM ({took:.1f}s)\n{gateway.describe()}"
    finally:
        gateway.proc.stop()
