"""Opaque access tokens through RFC 7662 introspection.

A small introspection endpoint (stdlib http.server in a thread of this process, like
jwt_issuer.TestIssuer) knows a few opaque tokens; the gateway trusts its issuer with
`introspection: {url, clientID, clientSecret}` and must: accept an active token for its resource,
refuse inactive, expired, foreign-audience and foreign-issuer answers with 401 invalid_token,
authenticate to the endpoint with its client credentials, cache an answer briefly instead of
asking on every request, and fail closed (401) when the endpoint is down.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx2
import pytest
from auth_e2e import start_auth_gateway, stdio_demo_spec
from conftest import free_port

pytestmark = pytest.mark.anyio

CLIENT_ID = "gatehouse"
CLIENT_SECRET = "introspection-secret-" + secrets.token_urlsafe(8)


@dataclass
class Introspector:
    port: int
    tokens: dict[str, dict] = field(default_factory=dict)
    calls: list[dict] = field(default_factory=list)
    down: bool = False
    server: ThreadingHTTPServer | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", "0"))).decode()
                form = dict(urllib.parse.parse_qsl(body))
                outer.calls.append({"authorization": self.headers.get("authorization", ""), "form": form})
                if outer.down:
                    self.send_response(503)
                    self.end_headers()
                    return
                expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
                if self.headers.get("authorization") != expected:
                    self.send_response(401)
                    self.end_headers()
                    return
                answer = outer.tokens.get(form.get("token", ""), {"active": False})
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture(scope="module")
def log_dir(log_root: Path) -> Path:
    path = log_root / "auth-introspection"
    path.mkdir(exist_ok=True)
    return path


@dataclass
class Setup:
    mcp: str
    introspector: Introspector


@pytest.fixture(scope="module")
def setup(log_dir: Path) -> Iterator[Setup]:
    introspector = Introspector(port=free_port())
    introspector.start()
    port = free_port()
    gateway = start_auth_gateway(log_dir, "introspection-gw", port, {
        "apiKeys": False,
        "cacheSeconds": 30,
        "issuers": [{"issuer": introspector.issuer, "jwksURL": f"{introspector.issuer}/jwks",
                     "introspection": {"url": f"{introspector.issuer}/introspect", "clientID": CLIENT_ID,
                                       "clientSecret": {"valueFrom": {"env": "INTROSPECTION_SECRET"}}}}],
    }, env={"INTROSPECTION_SECRET": CLIENT_SECRET}, upstream_spec=stdio_demo_spec(log_dir))
    try:
        yield Setup(mcp=f"http://127.0.0.1:{port}/mcp", introspector=introspector)
    finally:
        gateway.proc.stop()
        introspector.stop()


async def discover(url: str, token: str) -> httpx2.Response:
    async with httpx2.AsyncClient(trust_env=False, timeout=20) as http:
        return await http.post(url, headers={
            "Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "server/discover"}, json={
            "jsonrpc": "2.0", "id": 1, "method": "server/discover",
            "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                                 "io.modelcontextprotocol/clientInfo": {"name": "e2e", "version": "1"},
                                 "io.modelcontextprotocol/clientCapabilities": {}}}})


def opaque(setup: Setup, **claims: object) -> str:
    token = "opaque-" + secrets.token_urlsafe(16)
    base = {"active": True, "iss": setup.introspector.issuer, "aud": setup.mcp, "sub": "carol", "client_id": "cli",
            "scope": "mcp", "exp": int(time.time()) + 300}
    setup.introspector.tokens[token] = {**base, **claims}
    return token


async def test_active_token_accepted_with_client_credentials_and_cached(setup: Setup) -> None:
    token = opaque(setup)
    before = len(setup.introspector.calls)
    reply = await discover(setup.mcp, token)
    assert reply.status_code == 200, reply.text
    call = setup.introspector.calls[before]
    assert call["form"]["token"] == token and call["authorization"].startswith("Basic ")
    for _ in range(5):
        assert (await discover(setup.mcp, token)).status_code == 200
    assert len(setup.introspector.calls) == before + 1, "a valid answer is cached, not asked for on every request"


@pytest.mark.parametrize("claims, why", [
    ({"active": False}, "inactive"),
    ({"exp": int(time.time()) - 60}, "expired"),
    ({"aud": "http://127.0.0.1:1/other"}, "another resource"),
    ({"iss": "http://evil.example"}, "another issuer"),
    ({"aud": None}, "no audience"),
])
async def test_refused_answers(setup: Setup, claims: dict, why: str) -> None:
    token = opaque(setup, **{k: v for k, v in claims.items() if v is not None})
    if claims.get("aud", "") is None:
        del setup.introspector.tokens[token]["aud"]
    reply = await discover(setup.mcp, token)
    assert reply.status_code == 401, f"{why}: {reply.status_code} {reply.text}"
    assert 'error="invalid_token"' in reply.headers.get("www-authenticate", ""), why


async def test_unknown_token_and_endpoint_down_fail_closed(setup: Setup) -> None:
    assert (await discover(setup.mcp, "opaque-never-issued")).status_code == 401
    token = opaque(setup)
    setup.introspector.down = True
    try:
        reply = await discover(setup.mcp, token)
        assert reply.status_code == 401, reply.text
        assert "cannot be reached" in reply.headers.get("www-authenticate", ""), reply.headers
    finally:
        setup.introspector.down = False
    assert (await discover(setup.mcp, token)).status_code == 200, "serves again once the endpoint is back"
