"""An upstream URL that answers with a redirect (e.g. a framework that moves /mcp to /mcp/):
Gatehouse does not follow it — an answer must not steer the gateway elsewhere — and says
where it points, so the operator can put the final URL in the config. The gateway keeps
serving its other routes meanwhile.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import anyio
import pytest
import wire
from conftest import start_gateway

pytestmark = [pytest.mark.anyio, pytest.mark.gateway_only]


class RedirectingHandler(BaseHTTPRequestHandler):
    def _redirect(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(307)
        self.send_header("Location", "/mcp/?api_key=SECRET123")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = _redirect
    do_GET = _redirect
    do_DELETE = _redirect

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


@pytest.fixture
def redirecting_upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), RedirectingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/mcp"
    server.shutdown()
    server.server_close()


async def test_a_redirecting_upstream_is_named_not_followed(redirecting_upstream: str, log_root: Path) -> None:
    log_dir = log_root / "redirect"
    log_dir.mkdir(exist_ok=True)
    gateway = start_gateway(log_dir, {"http": {"url": redirecting_upstream}}, name="gateway-redirect", ready_path="/healthz")
    try:
        async with wire.client() as http:
            message = ""
            with anyio.fail_after(20):
                while "HTTP 307" not in message:
                    reply = await wire.post(http, gateway.mcp_url, {
                        "jsonrpc": "2.0", "id": 1, "method": "tools/list",
                        "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}},
                    }, headers={"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/list"})
                    message = reply.error["message"]
                    if "HTTP 307" not in message:
                        await anyio.sleep(0.3)
            assert "HTTP 307" in message and "spec.http.url" in message, message
            # Where it points is for the operator (it may name internal hosts or carry secrets):
            # in the gateway's log, not in what any client sees.
            assert "/mcp/" not in message and "SECRET123" not in message, message
            log = gateway.proc.log_path.read_text(errors="replace")
            assert "redirecting to /mcp/" in log, log[-2000:]
            assert "SECRET123" not in log, "the target's query (it may carry credentials) is not logged"
            # Still serving: health answers, readiness says the upstream is not ready.
            health = await http.get(f"{gateway.base_url}/healthz")
            assert health.status_code == 200
            ready = await http.get(f"{gateway.base_url}/readyz")
            assert ready.status_code == 503, ready.text
    finally:
        gateway.proc.stop()
