"""Upstream credentials: the gateway authenticates to an upstream with its own token, obtained
with OAuth client credentials from the upstream's authorization server — never with the client's.

The upstream's authorization server is a second Gatehouse ("inner") running the embedded
authorization server, with a confidential client `gw-outer`. The gateway under test ("outer")
requires API keys from its own clients and reaches:

- `/mcp` → the inner gateway's protected `/mcp` (demo server behind it): the inner gateway only
  answers a token its own authorization server issued to `gw-outer`, so a working tool call proves
  the outer gateway fetched and sent that token (a passed-through API key would get 401);
- `/rec` → a recording Python MCP server: what it saw is checked header by header.
"""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from auth_e2e import SCOPE, _yaml, gatehouse, jwt_header_claims, sdk_echo, start_auth_gateway, stdio_demo_spec
from conftest import GATEHOUSE_BIN, PYTHON_UPSTREAM, Proc, free_port, require_binary, wait_http_200

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def log_dir(log_root: Path) -> Path:
    path = log_root / "auth-upstream"
    path.mkdir(exist_ok=True)
    return path


@dataclass
class Chain:
    inner_url: str
    outer_url: str
    outer_config: Path
    rec_log: Path
    env: dict[str, str]


def outer_yaml(port: int, inner: str, rec: str, secret_env: str, db: Path) -> str:
    gateway = {
        "apiVersion": "gatehouse.dev/v1alpha1", "kind": "Gateway", "metadata": {"name": "outer"},
        "spec": {
            "listen": {"bind": "127.0.0.1", "port": port},
            "storage": {"sqlite": {"path": str(db)}},
            "auth": {"apiKeys": True, "cacheSeconds": 1},
            "endpoints": [
                {"path": "/mcp", "servers": ["inner"], "auth": {"mode": "required", "scopes": [SCOPE]}},
                {"path": "/rec", "servers": ["rec"], "auth": {"mode": "required", "scopes": [SCOPE]}},
            ],
        },
    }

    def server(name: str, url: str) -> dict[str, Any]:
        return {"apiVersion": "gatehouse.dev/v1alpha1", "kind": "MCPServer", "metadata": {"name": name},
                "spec": {"http": {"url": url, "clientCredentials": {
                    "tokenURL": f"{inner}/oauth/token", "clientID": "gw-outer",
                    "clientSecret": {"valueFrom": {"env": secret_env}}, "scopes": [SCOPE], "resource": f"{inner}/mcp"}}}}

    return "\n---\n".join(_yaml(d) for d in (gateway, server("inner", f"{inner}/mcp"), server("rec", rec))) + "\n"


@pytest.fixture(scope="module")
def chain(log_dir: Path) -> Iterator[Chain]:
    require_binary(GATEHOUSE_BIN, "gatehouse")
    secret = secrets.token_urlsafe(32)
    inner_port = free_port()
    inner_url = f"http://127.0.0.1:{inner_port}"
    inner = start_auth_gateway(log_dir, "inner", inner_port, {
        "publicURL": inner_url,
        "authorizationServer": {"scopes": [SCOPE], "clients": [
            {"clientID": "gw-outer", "clientSecret": {"valueFrom": {"env": "GW_OUTER_SECRET"}},
             "grantTypes": ["client_credentials"], "scopes": [SCOPE]}]},
    }, storage={"sqlite": {"path": str(log_dir / "inner.db")}}, env={"GW_OUTER_SECRET": secret},
        upstream_spec=stdio_demo_spec(log_dir))
    rec_log = log_dir / "rec.jsonl"
    rec_port = free_port()
    rec = Proc("rec-upstream", [sys.executable, str(PYTHON_UPSTREAM), "--host", "127.0.0.1", "--port", str(rec_port),
                                "--record-headers", str(rec_log)], log_dir)
    rec_url = rec.wait_for_line(r"listening on (http://\S+)").group(1)
    outer_port = free_port()
    config = log_dir / "outer.yaml"
    config.write_text(outer_yaml(outer_port, inner_url, rec_url, "OUTER_UPSTREAM_SECRET", log_dir / "outer.db"))
    env = {"OUTER_UPSTREAM_SECRET": secret}
    outer = Proc("outer", [str(GATEHOUSE_BIN), "serve", "--config", str(config), "--port", str(outer_port)], log_dir, env=env)
    try:
        wait_http_200(outer, f"http://127.0.0.1:{outer_port}/readyz", context=config.read_text())
        yield Chain(inner_url=inner_url, outer_url=f"http://127.0.0.1:{outer_port}", outer_config=config, rec_log=rec_log, env=env)
    finally:
        outer.stop()
        rec.stop()
        inner.proc.stop()


@pytest.fixture(scope="module")
def api_key(chain: Chain) -> str:
    out = gatehouse("apikey", "create", "--config", str(chain.outer_config), "--name", "e2e", "--owner", "tests",
                    "--scope", SCOPE, env=chain.env)
    return next(line.split(": ", 1)[1] for line in out.stdout.splitlines() if line.startswith("key: "))


async def test_tool_call_reaches_an_upstream_that_requires_its_own_token(chain: Chain, api_key: str) -> None:
    # The inner gateway refuses anything but its own authorization server's tokens.
    async with httpx2.AsyncClient(trust_env=False) as http:
        refused = await http.post(f"{chain.inner_url}/mcp", headers={"Authorization": f"Bearer {api_key}"},
                                  json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert refused.status_code == 401
    for era in ("session", "stateless"):
        assert await sdk_echo(f"{chain.outer_url}/mcp", api_key, f"chained {era}", era=era) == f"chained {era}"


async def test_upstream_sees_the_gateways_token_never_the_clients(chain: Chain, api_key: str) -> None:
    before = chain.rec_log.read_text().count("\n") if chain.rec_log.exists() else 0
    assert await sdk_echo(f"{chain.outer_url}/rec", api_key, "recorded", era="session") == "recorded"
    lines = chain.rec_log.read_text().splitlines()[before:]
    assert lines, "the recording upstream saw no request"
    seen_tokens = set()
    for line in lines:
        entry = json.loads(line)
        headers = {name.lower(): value for name, value in entry["headers"]}
        assert all(api_key not in value for value in headers.values()), f"the client's API key reached the upstream: {entry}"
        authorization = headers.get("authorization", "")
        assert authorization.startswith("Bearer "), f"no upstream credential was sent: {entry}"
        seen_tokens.add(authorization[7:])
    # One cached token served every request; it is the inner authorization server's, for gw-outer.
    assert len(seen_tokens) == 1
    _, claims = jwt_header_claims(seen_tokens.pop())
    assert claims["iss"] == chain.inner_url and claims["sub"] == "gw-outer" and claims["aud"] == f"{chain.inner_url}/mcp"


async def test_refused_upstream_credentials_give_a_clear_error_and_the_gateway_keeps_serving(log_dir: Path, chain: Chain) -> None:
    port = free_port()
    config = log_dir / "outer-bad.yaml"
    config.write_text(outer_yaml(port, chain.inner_url, f"{chain.inner_url}/unused", "OUTER_BAD_SECRET", log_dir / "outer-bad.db"))
    env = {"OUTER_BAD_SECRET": "not-the-secret-at-all"}
    bad = Proc("outer-bad", [str(GATEHOUSE_BIN), "serve", "--config", str(config), "--port", str(port)], log_dir, env=env)
    try:
        wait_http_200(bad, f"http://127.0.0.1:{port}/healthz", context=config.read_text())
        out = gatehouse("apikey", "create", "--config", str(config), "--name", "bad", "--owner", "tests", "--scope", SCOPE, env=env)
        key = next(line.split(": ", 1)[1] for line in out.stdout.splitlines() if line.startswith("key: "))
        async with httpx2.AsyncClient(trust_env=False, timeout=20) as http:
            headers = {"Authorization": f"Bearer {key}", "Accept": "application/json, text/event-stream",
                       "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "server/discover"}
            reply = await http.post(f"http://127.0.0.1:{port}/mcp", headers=headers, json={
                "jsonrpc": "2.0", "id": 7, "method": "server/discover",
                "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                                     "io.modelcontextprotocol/clientInfo": {"name": "e2e", "version": "1"},
                                     "io.modelcontextprotocol/clientCapabilities": {}}}})
            text = reply.text
            # The client learns which upstream failed and why (its token endpoint said invalid_client).
            assert reply.status_code == 200 and "inner" in text and "invalid_client" in text, text
            assert "not-the-secret-at-all" not in text
            assert (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
        assert "not-the-secret-at-all" not in bad.output()
    finally:
        bad.stop()
