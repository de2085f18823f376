"""Policy in the data plane, end to end: a real gateway deciding every MCP request with a Rego
policy, in front of a real upstream, driven by the official Python SDK (mcp 2.3.0) in both eras
(ClientSession at 2025-11-25, mcp.Client at 2026-07-28) and by raw HTTP where the wire matters.

Each test starts its own upstream (policy_upstream.py: the Python SDK with annotated tools and a
log of every HTTP request *with its body*, so a test can tell whether a tools/call reached it),
its own gateway on a free port (API keys in SQLite, `/mcp` requiring scope `mcp`), and writes its
own policy files next to the gateway's config (`spec.policy.rego.paths` is relative to it).

1. tools/list is filtered per caller (tool annotations in `input.tool`), a denied call answers
   like an unknown tool (`deniedTools: hide`) or -32001 policy_denied (`deniedTools: error`) and
   never reaches the upstream; prompts and resources are filtered too; the shipped example policy
   (examples/policies/gateway_authz) against the demo server.
2. Redaction of answers (email, Luhn-checked cards, phone, national ids, named fields; text and
   structured content).
3. SIGHUP reload: a broken policy is refused (old one keeps deciding), a good one replaces it.
4. An evaluation error (division by zero, conflicting values, type error) denies with -32001
   policy_error and no policy internals in the message.
5. The match pipeline (client IP with trusted proxies and X-Forwarded-For, header, claim and user
   agent matchers): 403 + -32001 when the expression is false.
6. The decision log (file sink): one JSON line per decision, masked arguments, rotation by rename.
7. The input document (every documented field, both eras); list items decided like a call from the
   same request (client IP, protocol era); a custom query over `rego.paths` or `rego.inline`, an
   undefined decision, decision response headers; a broken policy refused by `gatehouse validate` and
   at startup; a hidden tool indistinguishable from a missing one.

Known failures against the current binary are written up in /work/notes/policy-failures.md.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
import wire
from auth_e2e import bearer, gatehouse
from conftest import DEMO_BIN, GATEHOUSE_BIN, HERE, REPO, Proc, _yaml, free_port, require_binary, wait_http_200
from mcp import Client, ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

pytestmark = [pytest.mark.anyio, pytest.mark.gateway_only]

POLICY_UPSTREAM = HERE / "policy_upstream.py"
ERAS = ("session", "stateless")
SDK_TIMEOUT = 20
POLICY_DENIED = -32001
INVALID_PARAMS = -32602
SERVER = "demo"

# Who calls: a writer (may call every tool) and a contractor (read-only tools only).
KEYS = {"writer": ["mcp", "tools:write"], "contractor": ["mcp"]}


# --- the setup: upstream + gateway + keys + policy ------------------------------------------------


@dataclass
class PolicyGateway:
    dir: Path
    port: int
    config_path: Path
    proc: Proc
    upstream: Proc | None
    record_path: Path
    keys: dict[str, str] = field(default_factory=dict)
    key_ids: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def mcp_url(self) -> str:
        return f"{self.base_url}/mcp"

    @property
    def policy_dir(self) -> Path:
        return self.dir / "policy"

    def describe(self) -> str:
        parts = [self.proc.describe(), f"--- {self.config_path} ---\n{self.config_path.read_text()}"]
        for rego in sorted(self.policy_dir.glob("*.rego")) if self.policy_dir.is_dir() else []:
            parts.append(f"--- {rego} ---\n{rego.read_text()}")
        if self.upstream is not None:
            parts.append(self.upstream.describe())
        return "\n".join(parts)

    def alive(self) -> None:
        assert self.proc.popen.poll() is None, f"the gateway died\n{self.describe()}"

    def log(self) -> str:
        return self.proc.output(limit=1 << 22)

    def upstream_requests(self) -> list[dict[str, Any]]:
        """Every HTTP request the upstream received (with its JSON body)."""
        if not self.record_path.exists():
            return []
        return [json.loads(line) for line in self.record_path.read_text().splitlines() if line.strip()]

    def upstream_calls(self, tool: str) -> list[dict[str, Any]]:
        """The tools/call requests for `tool` that reached the upstream (JSON-RPC messages)."""
        calls = []
        for entry in self.upstream_requests():
            body = entry.get("body")
            for message in body if isinstance(body, list) else [body]:
                if (isinstance(message, dict) and message.get("method") == "tools/call"
                        and (message.get("params") or {}).get("name") == tool):
                    calls.append(message)
        return calls

    def write_policy(self, text: str, name: str = "policy.rego") -> None:
        self.policy_dir.mkdir(exist_ok=True)
        path = self.policy_dir / name
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)  # atomic: a reload never sees half a file

    def sighup(self) -> None:
        self.alive()
        os.kill(self.proc.popen.pid, signal.SIGHUP)

    def stop(self) -> None:
        self.proc.stop()
        if self.upstream is not None:
            self.upstream.stop()


def config_yaml(port: int, upstream_spec: dict[str, Any], policy: dict[str, Any]) -> str:
    spec: dict[str, Any] = {
        "listen": {"bind": "127.0.0.1", "port": port},
        "storage": {"sqlite": {"path": "gatehouse.db"}},
        "auth": {"apiKeys": True},
        "policy": policy,
        "endpoints": [{"path": "/mcp", "servers": [SERVER], "auth": {"mode": "required", "scopes": ["mcp"]}}],
    }
    gateway = {"apiVersion": "gatehouse.dev/v1alpha1", "kind": "Gateway", "metadata": {"name": "policy-e2e"}, "spec": spec}
    server = {"apiVersion": "gatehouse.dev/v1alpha1", "kind": "MCPServer", "metadata": {"name": SERVER, "labels": {"team": "platform"}},
              "spec": {**upstream_spec, "timeouts": {"requestSeconds": 10}}}
    return _yaml(gateway) + "\n---\n" + _yaml(server) + "\n"


def start_policy_upstream(log_dir: Path, record_path: Path) -> tuple[Proc, str]:
    proc = Proc("upstream", [sys.executable, str(POLICY_UPSTREAM), "--host", "127.0.0.1", "--port", "0",
                             "--record", str(record_path)], log_dir)
    try:
        match = proc.wait_for_line(r"listening on (http://\S+)")
    except BaseException:
        proc.stop()
        raise
    return proc, match.group(1)


def launch(
    base: Path,
    name: str,
    *,
    rego: str | None,
    policy: dict[str, Any] | None = None,
    keys: dict[str, list[str]] | None = None,
    upstream: str = "python",
    policy_files: Path | None = None,
) -> PolicyGateway:
    """Upstream + keys + policy files + gateway; `policy` is spec.policy minus `rego` (added when rego is given)."""
    require_binary(GATEHOUSE_BIN, "gatehouse")
    work = base / name
    work.mkdir(parents=True, exist_ok=True)
    record_path = work / "upstream-requests.jsonl"
    up_proc: Proc | None = None
    if upstream == "python":
        up_proc, url = start_policy_upstream(work, record_path)
        upstream_spec: dict[str, Any] = {"http": {"url": url}}
    else:
        require_binary(DEMO_BIN, "gatehouse-demo-server")
        upstream_spec = {"stdio": {"command": str(DEMO_BIN), "args": ["--stdio"], "env": {}, "workingDirectory": str(work)}}
    policy_config = dict(policy or {})
    if rego is not None or policy_files is not None:
        policy_config.setdefault("rego", {"paths": ["policy"]})
    port = free_port()
    config_path = work / "gateway.yaml"
    config_path.write_text(config_yaml(port, upstream_spec, policy_config))
    if policy_files is not None:
        shutil.copytree(policy_files, work / "policy", dirs_exist_ok=True)
    if rego is not None:
        (work / "policy").mkdir(exist_ok=True)
        (work / "policy" / "policy.rego").write_text(rego)
    made_keys: dict[str, str] = {}
    key_ids: dict[str, str] = {}
    try:
        for key_name, scopes in (keys if keys is not None else KEYS).items():
            argv = ["apikey", "create", "--config", str(config_path), "--name", key_name, "--owner", f"{key_name}-owner"]
            for scope in scopes:
                argv += ["--scope", scope]
            out = gatehouse(*argv).stdout
            key = re.search(r"\bghk_[A-Za-z0-9_\-]+", out)
            key_id = re.search(r"(?m)^id:\s*(\S+)", out)
            assert key and key_id, f"`gatehouse {' '.join(argv)}` printed no id/key: {out!r}"
            made_keys[key_name] = key.group(0)
            key_ids[key_name] = key_id.group(1)
    except BaseException:
        if up_proc:
            up_proc.stop()
        raise
    proc = Proc("gateway", [str(GATEHOUSE_BIN), "serve", "--config", str(config_path), "--port", str(port)], work)
    gw = PolicyGateway(dir=work, port=port, config_path=config_path, proc=proc, upstream=up_proc, record_path=record_path,
                       keys=made_keys, key_ids=key_ids)
    try:
        wait_http_200(proc, f"{gw.base_url}/readyz", context=f"--- {config_path} ---\n{config_path.read_text()}\n")
    except BaseException:
        gw.stop()
        raise
    return gw


@pytest.fixture
def gateways(scratch_dir: Path) -> Iterator[Callable[..., PolicyGateway]]:
    """A launcher; every gateway (and upstream) it started is stopped after the test, its output printed
    (pytest shows it for a failed test)."""
    started: list[PolicyGateway] = []

    def start(name: str = "gw", **kwargs: Any) -> PolicyGateway:
        gw = launch(scratch_dir, name, **kwargs)
        started.append(gw)
        return gw

    yield start
    for gw in started:
        print(gw.describe())
        gw.stop()


# --- SDK clients with a bearer token --------------------------------------------------------------


@asynccontextmanager
async def sdk(url: str, token: str, era: str, headers: dict[str, str] | None = None) -> AsyncIterator[Any]:
    """A connected ClientSession (era "session", 2025-11-25) or mcp.Client (era "stateless", 2026-07-28)."""
    http = httpx2.AsyncClient(headers={**bearer(token), **(headers or {})}, timeout=httpx2.Timeout(30.0, read=60.0),
                              trust_env=False)
    async with http:
        if era == "session":
            async with streamable_http_client(url, http_client=http) as (read, write):
                async with ClientSession(read, write, read_timeout_seconds=SDK_TIMEOUT) as session:
                    with anyio.fail_after(SDK_TIMEOUT):
                        init = await session.initialize()
                    assert init.protocol_version == "2025-11-25", f"negotiated {init.protocol_version}"
                    yield session
        else:
            async with Client(streamable_http_client(url, http_client=http), read_timeout_seconds=SDK_TIMEOUT) as client:
                assert client.protocol_version == "2026-07-28", f"mcp.Client negotiated {client.protocol_version}"
                yield client


def text_of(result: Any) -> str:
    assert not result.is_error, f"tool error: {result!r}"
    assert result.content and result.content[0].type == "text", f"expected text content: {result!r}"
    return result.content[0].text


async def call_error(client: Any, tool: str, arguments: dict[str, Any]) -> MCPError:
    """Calls a tool that must be refused with a JSON-RPC error; returns it."""
    with anyio.fail_after(SDK_TIMEOUT):
        try:
            result = await client.call_tool(tool, arguments)
        except MCPError as error:
            return error
    raise AssertionError(f"tools/call {tool} {arguments} was answered instead of refused: {result!r}")


def reason_of(error: MCPError) -> Any:
    data = error.data
    return data.get("gatehouse", {}).get("reason") if isinstance(data, dict) else None


async def tool_names(client: Any) -> set[str]:
    with anyio.fail_after(SDK_TIMEOUT):
        listed = await client.list_tools()
    return {tool.name for tool in listed.tools}


async def raw_call(gw: PolicyGateway, token: str, method: str, params: dict[str, Any] | None = None,
                   headers: dict[str, str] | None = None) -> wire.Reply:
    """One stateless (2026-07-28) request over raw HTTP: exactly one HTTP request to the gateway."""
    message = wire.modern_request(method, params)
    all_headers = {**wire.modern_headers(message), **bearer(token), **(headers or {})}
    async with wire.client() as http:
        with anyio.fail_after(SDK_TIMEOUT):
            reply = await wire.post(http, gw.mcp_url, message, all_headers)
    reply.request_id = message["id"]  # type: ignore[attr-defined]
    return reply


async def raw_initialize(gw: PolicyGateway, token: str, headers: dict[str, str] | None = None) -> wire.Reply:
    message = wire.request("initialize", {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": wire.CLIENT_INFO})
    async with wire.client() as http:
        with anyio.fail_after(SDK_TIMEOUT):
            return await wire.post(http, gw.mcp_url, message, {**bearer(token), **(headers or {})})


def luhn_ok(number: str) -> bool:
    digits = [int(c) for c in number if c.isdigit()]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d *= 2
            d = d - 9 if d > 9 else d
        total += d
    return total % 10 == 0


# --- 1. filtering and refusing by tool annotations ------------------------------------------------

ANNOTATION_POLICY = """package gatehouse

import rego.v1

writer if "tools:write" in input.identity.scopes

read_only_tool if input.tool.annotations.readOnlyHint == true

default allow := false

allow if {
	input.request.method == "tools/call"
	writer
}

allow if {
	input.request.method == "tools/call"
	read_only_tool
}

# Prompts and resources: writers only (contractors see neither greet nor demo://readme).
allow if {
	input.request.method in {"prompts/get", "resources/read"}
	writer
}

allow if not input.request.method in {"tools/call", "prompts/get", "resources/read"}

decision := {"allow": allow, "reasons": ["annotation policy"], "message": "contractors may call read-only tools only"}
"""


@pytest.mark.parametrize("era", ERAS)
async def test_contractor_sees_and_calls_read_only_tools_only(gateways: Callable[..., PolicyGateway], era: str) -> None:
    gw = gateways(rego=ANNOTATION_POLICY)
    with anyio.fail_after(60):
        async with sdk(gw.mcp_url, gw.keys["contractor"], era) as contractor:
            names = await tool_names(contractor)
            assert names == {"echo", "add", "profile"}, (
                f"contractor's tools/list: {sorted(names)}; expected only the read-only tools (no delete_item)"
            )
            assert text_of(await contractor.call_tool("echo", {"message": "hi"})) == "hi"
            error = await call_error(contractor, "delete_item", {"id": "7"})
            assert error.code == INVALID_PARAMS, f"contractor's delete_item: expected -32602, got {error.code} {error.message!r} {error.data!r}"
            assert error.message == "Unknown tool: delete_item", f"contractor's delete_item: message {error.message!r}"
            assert "policy" not in json.dumps(error.data or {}).lower(), f"a hidden denial must not say why: {error.data!r}"
            with anyio.fail_after(SDK_TIMEOUT):
                prompts = await contractor.list_prompts()
                resources = await contractor.list_resources()
            assert "greet" not in {p.name for p in prompts.prompts}, f"contractor's prompts/list: {prompts!r}"
            assert "demo://readme" not in {str(r.uri) for r in resources.resources}, f"contractor's resources/list: {resources!r}"
            with anyio.fail_after(SDK_TIMEOUT):
                try:
                    read = await contractor.read_resource("demo://readme")
                except MCPError as read_error:
                    assert read_error.code in (POLICY_DENIED, INVALID_PARAMS, -32002), (
                        f"contractor's resources/read: {read_error.code} {read_error.message!r} {read_error.data!r}"
                    )
                else:
                    raise AssertionError(f"contractor's resources/read demo://readme was answered: {read!r}")
            with anyio.fail_after(SDK_TIMEOUT):
                try:
                    got = await contractor.get_prompt("greet", {"name": "x"})
                except MCPError as prompt_error:
                    assert prompt_error.code == INVALID_PARAMS, f"contractor's prompts/get greet: {prompt_error.code} {prompt_error.message!r}"
                    assert prompt_error.message == "Unknown prompt: greet", f"contractor's prompts/get greet: {prompt_error.message!r}"
                else:
                    raise AssertionError(f"contractor's prompts/get greet was answered: {got!r}")

        assert gw.upstream_calls("delete_item") == [], (
            f"the contractor's refused delete_item reached the upstream: {gw.upstream_calls('delete_item')}"
        )
        reads = [e for e in gw.upstream_requests() if isinstance(e.get("body"), dict) and e["body"].get("method") == "resources/read"]
        assert reads == [], f"the contractor's refused resources/read reached the upstream: {reads}"
        assert len(gw.upstream_calls("echo")) == 1, f"the allowed echo should reach the upstream once: {gw.upstream_calls('echo')}"

        async with sdk(gw.mcp_url, gw.keys["writer"], era) as writer:
            names = await tool_names(writer)
            assert {"echo", "add", "profile", "delete_item"} <= names, f"writer's tools/list: {sorted(names)}"
            assert text_of(await writer.call_tool("delete_item", {"id": "7"})) == "deleted 7"
            with anyio.fail_after(SDK_TIMEOUT):
                prompts = await writer.list_prompts()
            assert "greet" in {p.name for p in prompts.prompts}, f"writer's prompts/list: {prompts!r}"
        calls = gw.upstream_calls("delete_item")
        assert len(calls) == 1 and calls[0]["params"]["arguments"] == {"id": "7"}, f"upstream delete_item calls: {calls}"
    gw.alive()


async def test_denied_tools_error_mode(gateways: Callable[..., PolicyGateway]) -> None:
    gw = gateways(rego=ANNOTATION_POLICY, policy={"deniedTools": "error"})
    with anyio.fail_after(60):
        for era in ERAS:
            async with sdk(gw.mcp_url, gw.keys["contractor"], era) as contractor:
                assert "delete_item" not in await tool_names(contractor), f"{era}: deniedTools: error still filters lists"
                error = await call_error(contractor, "delete_item", {"id": "9"})
                assert error.code == POLICY_DENIED, f"{era}: expected -32001, got {error.code} {error.message!r} {error.data!r}"
                assert error.message.startswith("Forbidden"), f"{era}: message {error.message!r}"
                assert reason_of(error) == "policy_denied", f"{era}: data {error.data!r}"
                assert "contractors may call read-only tools only" in error.message, (
                    f"{era}: the decision's message should be in the refusal: {error.message!r}"
                )
        assert gw.upstream_calls("delete_item") == [], f"refused calls reached the upstream: {gw.upstream_calls('delete_item')}"
        # Raw, to see the HTTP status of a refused call (a JSON-RPC error, not an HTTP error).
        reply = await raw_call(gw, gw.keys["contractor"], "tools/call", {"name": "delete_item", "arguments": {"id": "9"}})
        assert reply.status == 200, f"a policy refusal is a JSON-RPC error in a 200: {reply.describe()}"
        assert reply.error["code"] == POLICY_DENIED, reply.describe()
    gw.alive()


async def test_example_policy_with_demo_server(gateways: Callable[..., PolicyGateway]) -> None:
    """examples/policies/gateway_authz as shipped, in front of the demo server (stdio)."""
    gw = gateways(rego=None, upstream="demo", policy_files=REPO / "examples" / "policies" / "gateway_authz")
    with anyio.fail_after(60):
        async with sdk(gw.mcp_url, gw.keys["contractor"], "session") as contractor:
            names = await tool_names(contractor)
            assert "echo" in names and "delete_item" not in names, f"contractor's tools/list: {sorted(names)}"
            error = await call_error(contractor, "delete_item", {"id": "1"})
            assert (error.code, error.message) == (INVALID_PARAMS, "Unknown tool: delete_item"), (error.code, error.message, error.data)
            echoed = text_of(await contractor.call_tool("echo", {"message": "mail carol@example.org"}))
            assert echoed == "mail [REDACTED:email]", f"the example policy redacts emails: {echoed!r}"
        async with sdk(gw.mcp_url, gw.keys["writer"], "stateless") as writer:
            assert "delete_item" in await tool_names(writer)
            assert not (await writer.call_tool("delete_item", {"id": "1"})).is_error
        reply = await raw_call(gw, gw.keys["contractor"], "tools/call", {"name": "echo", "arguments": {"message": "x"}})
        assert reply.status == 200 and reply.result, reply.describe()
        assert reply.headers.get("x-gatehouse-policy") == "gateway_authz", (
            f"the decision's response header X-Gatehouse-Policy is missing: {reply.describe()}"
        )
    # No audit configured: the decision log goes to stdout (default sink), one JSON line per decision.
    decisions = []
    for line in gw.log().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("kind") == "decision":
            decisions.append(entry)
    denied = [d for d in decisions if d.get("stage") == "request" and d.get("target") == "delete_item" and d.get("decision") == "deny"]
    assert len(denied) == 1, f"stdout decision log: expected one denied delete_item line, got {denied}\nall: {decisions}"
    assert denied[0]["reasons"] == ["only writers may call tools that are not read-only"], denied[0]
    gw.alive()


# --- 2. redaction ---------------------------------------------------------------------------------

REDACT_POLICY = """package gatehouse

import rego.v1

writer if "tools:write" in input.identity.scopes

detectors := ["email", "card", "phone", "national_id"] if writer
else := ["email", "card"]

decision := {
	"allow": true,
	"reasons": ["everything is allowed; answers are redacted"],
	"redact": {"detectors": detectors, "fields": ["ssn"]},
}
"""

NOT_LUHN = "1234 5678 9012 3456"


@pytest.mark.parametrize("era", ERAS)
async def test_redaction(gateways: Callable[..., PolicyGateway], era: str) -> None:
    assert luhn_ok("4111 1111 1111 1111") and not luhn_ok(NOT_LUHN)
    gw = gateways(rego=REDACT_POLICY)
    message = f"write to bob@example.com, card 4111 1111 1111 1111, order {NOT_LUHN}, ssn field"
    with anyio.fail_after(60):
        async with sdk(gw.mcp_url, gw.keys["contractor"], era) as contractor:
            echoed = text_of(await contractor.call_tool("echo", {"message": message}))
            assert echoed == f"write to [REDACTED:email], card [REDACTED:card], order {NOT_LUHN}, ssn field", (
                f"echo of {message!r} came back as {echoed!r}"
            )
            # Phone and national id detectors are not in the contractor's decision: left alone.
            plain = "call +1 415 555 0100, ssn 123-45-6789"
            assert text_of(await contractor.call_tool("echo", {"message": plain})) == plain

            result = await contractor.call_tool("profile", {"name": "bob"})
            assert not result.is_error, result
            structured = result.structured_content
            assert structured == {
                "name": "bob", "email": "[REDACTED:email]", "card": "[REDACTED:card]", "ssn": "[REDACTED]",
                "note": f"order {NOT_LUHN} shipped",
            }, f"structured content: {structured!r}"
            text = text_of(result)
            assert "alice@example.com" not in text and "4111 1111 1111 1111" not in text, f"text content leaks: {text!r}"
            assert "[REDACTED:email]" in text and "[REDACTED:card]" in text and NOT_LUHN in text, f"text content: {text!r}"
            # Prompt messages are answers too.
            with anyio.fail_after(SDK_TIMEOUT):
                prompt = await contractor.get_prompt("greet", {"name": "bob@example.com"})
            texts = [m.content.text for m in prompt.messages if getattr(m.content, "type", "") == "text"]
            assert texts == ["Say hello to [REDACTED:email]."], f"prompts/get greet: {prompt!r}"
        # The upstream did answer the real values: the gateway redacted them.
        async with sdk(gw.mcp_url, gw.keys["writer"], era) as writer:
            redacted = text_of(await writer.call_tool("echo", {"message": "call +1 415 555 0100, ssn 123-45-6789, x@y.io"}))
            assert redacted == "call [REDACTED:phone], ssn [REDACTED:national_id], [REDACTED:email]", redacted
    gw.alive()


# --- 3. SIGHUP reload -----------------------------------------------------------------------------

ALLOW_ALL = """package gatehouse

import rego.v1

default decision := true
"""

BROKEN = """package gatehouse

import rego.v1

decision := {"allow": true if {
"""

DENY_ECHO = """package gatehouse

import rego.v1

default decision := true

decision := {"allow": false, "reasons": ["echo is off"]} if input.request.tool == "echo"
"""


async def echo_outcome(gw: PolicyGateway, token: str) -> str:
    """"allowed" or the refusal's code and message, from one stateless echo."""
    reply = await raw_call(gw, token, "tools/call", {"name": "echo", "arguments": {"message": "ping"}})
    assert reply.status == 200, reply.describe()
    response = reply.response
    if "result" in response:
        assert response["result"]["content"][0]["text"] == "ping", reply.describe()
        return "allowed"
    return f"{response['error']['code']} {response['error']['message']}"


async def test_sighup_reload(gateways: Callable[..., PolicyGateway]) -> None:
    gw = gateways(rego=ALLOW_ALL)
    token = gw.keys["contractor"]
    with anyio.fail_after(50):
        assert await echo_outcome(gw, token) == "allowed"
        refused_before = gw.log().count("reload refused")

        gw.write_policy(BROKEN)
        gw.sighup()
        deadline = time.monotonic() + 10
        while gw.log().count("reload refused") == refused_before and time.monotonic() < deadline:
            await anyio.sleep(0.1)
        assert gw.log().count("reload refused") > refused_before, (
            f"no 'reload refused' in the gateway's log 10 s after SIGHUP with a broken policy\n{gw.proc.output()}"
        )
        gw.alive()
        assert await echo_outcome(gw, token) == "allowed", "after a refused reload the previous policy must keep deciding"
        assert "delete_item" in {t["name"] for t in (await raw_call(gw, token, "tools/list")).result["tools"]}

        gw.write_policy(DENY_ECHO)
        gw.sighup()
        deadline = time.monotonic() + 10
        outcome = ""
        while time.monotonic() < deadline:
            outcome = await echo_outcome(gw, token)
            if outcome != "allowed":
                break
            await anyio.sleep(0.2)
        assert outcome == f"{INVALID_PARAMS} Unknown tool: echo", f"after reloading a policy that denies echo: {outcome!r}"
        assert "reloaded" in gw.log(), f"no 'policy reloaded' line in the log\n{gw.proc.output()}"
        listed = {t["name"] for t in (await raw_call(gw, token, "tools/list")).result["tools"]}
        assert "echo" not in listed and "add" in listed, f"tools/list after the reload: {sorted(listed)}"
        add = await raw_call(gw, token, "tools/call", {"name": "add", "arguments": {"a": 1, "b": 2}})
        assert add.result["content"][0]["text"] == "3", add.describe()
    assert len(gw.upstream_calls("echo")) == 2, f"echo calls that reached the upstream: {gw.upstream_calls('echo')}"
    # The decision log (stdout by default) names the policy version that decided: two policies, two versions.
    versions = []
    for line in gw.log().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("kind") == "decision" and entry.get("target") == "echo":
            versions.append((entry.get("decision"), entry.get("policy_version")))
    allowed = {v for d, v in versions if d == "allow"}
    denied = {v for d, v in versions if d == "deny"}
    assert len(allowed) == 1 and len(denied) == 1 and allowed != denied and None not in allowed | denied, (
        f"(decision, policy_version) of the echo decisions: {versions}"
    )
    gw.alive()


# --- 4. evaluation errors deny --------------------------------------------------------------------

ERROR_POLICY = """package gatehouse

import rego.v1

default decision := true

ratio := 10 / input.request.arguments.a

decision := {"allow": true, "reasons": [sprintf("ratio %v", [ratio])]} if {
	input.request.tool == "add"
	ratio
}

# b == 13: a second, different value for the same complete rule (conflict).
decision := false if input.request.arguments.b == 13

# b == 99: count() of a number (type error at run time).
decision := false if {
	input.request.arguments.b == 99
	count(input.request.arguments.a) > 0
}
"""

INTERNALS = ("ratio", "divi", "zero", "policy.rego", "eval_", "rego", "conflict", "count(", "data.gatehouse", "type")


@pytest.mark.parametrize("era", ERAS)
async def test_evaluation_error_denies(gateways: Callable[..., PolicyGateway], era: str) -> None:
    gw = gateways(rego=ERROR_POLICY)
    with anyio.fail_after(60):
        async with sdk(gw.mcp_url, gw.keys["writer"], era) as client:
            assert text_of(await client.call_tool("add", {"a": 2, "b": 3})) == "5"
            for args, what in (({"a": 0, "b": 1}, "division by zero"), ({"a": 1, "b": 13}, "conflicting values"),
                               ({"a": 1, "b": 99}, "type error")):
                error = await call_error(client, "add", args)
                assert error.code == POLICY_DENIED, f"{what} (add {args}): expected -32001, got {error.code} {error.message!r} {error.data!r}"
                assert reason_of(error) == "policy_error", f"{what}: data {error.data!r}"
                leaked = [word for word in INTERNALS if word in error.message.lower() + json.dumps(error.data).lower()]
                assert not leaked, f"{what}: the refusal shows policy internals {leaked}: {error.message!r} {error.data!r}"
            assert text_of(await client.call_tool("add", {"a": 5, "b": 1})) == "6"
            assert text_of(await client.call_tool("echo", {"message": "still fine"})) == "still fine"
    calls = [c["params"]["arguments"] for c in gw.upstream_calls("add")]
    assert calls == [{"a": 2, "b": 3}, {"a": 5, "b": 1}], f"add calls that reached the upstream: {calls}"
    assert "policy evaluation failed" in gw.log(), "the operator's log should have the evaluation error"
    gw.alive()


# --- 5. the match pipeline ------------------------------------------------------------------------

PIPELINE_POLICY = """package gatehouse

import rego.v1

default decision := true

# Canaries: credentials must never be in the input document.
decision := false if input.context.headers.authorization
decision := false if input.context.headers.cookie

# The client IP the pipeline saw (after X-Forwarded-For) is the one Rego sees.
decision := {"allow": false, "reasons": ["no echo from .8"]} if {
	input.request.tool == "echo"
	input.context.client_ip == "198.51.100.8"
	input.analysis.client_ip.address == "198.51.100.8"
	input.analysis.client_ip.version == 4
}
"""


def assert_pipeline_denied(reply: wire.Reply, what: str) -> None:
    assert reply.status == 403, f"{what}: expected HTTP 403, got {reply.describe()}"
    assert reply.error["code"] == POLICY_DENIED, f"{what}: expected JSON-RPC -32001, got {reply.describe()}"


def assert_admitted(reply: wire.Reply, what: str) -> None:
    assert reply.status == 200, f"{what}: expected 200, got {reply.describe()}"
    assert reply.result.get("protocolVersion") == "2025-11-25", f"{what}: {reply.describe()}"


async def test_pipeline_client_ip(gateways: Callable[..., PolicyGateway]) -> None:
    pipeline = {
        "trustedProxies": ["127.0.0.1/32"],
        "matchers": [
            {"name": "local", "clientIP": ["127.0.0.0/8"]},
            {"name": "partner", "clientIP": ["198.51.100.0/24"]},
            {"name": "blocked", "clientIP": ["203.0.113.0/24"]},
        ],
        "expression": "(local || partner) && !blocked",
    }
    gw = gateways(rego=PIPELINE_POLICY, policy={"pipeline": pipeline})
    token = gw.keys["contractor"]
    with anyio.fail_after(50):
        assert_pipeline_denied(await raw_initialize(gw, token, {"X-Forwarded-For": "203.0.113.9"}), "XFF 203.0.113.9 (blocked)")
        assert_admitted(await raw_initialize(gw, token, {"X-Forwarded-For": "198.51.100.7"}), "XFF 198.51.100.7 (partner)")
        assert_pipeline_denied(await raw_initialize(gw, token, {"X-Forwarded-For": "192.0.2.1"}), "XFF 192.0.2.1 (neither)")
        assert_admitted(await raw_initialize(gw, token), "no X-Forwarded-For (local)")
        # The last hop that is not a trusted proxy counts: a forged first hop does not help.
        assert_pipeline_denied(await raw_initialize(gw, token, {"X-Forwarded-For": "198.51.100.7, 203.0.113.9"}),
                               "XFF 198.51.100.7, 203.0.113.9")
        assert_admitted(await raw_initialize(gw, token, {"X-Forwarded-For": "203.0.113.9, 198.51.100.7, 127.0.0.1"}),
                        "XFF 203.0.113.9, 198.51.100.7, 127.0.0.1")
        # Stateless requests are decided per HTTP request too.
        denied = await raw_call(gw, token, "tools/call", {"name": "echo", "arguments": {"message": "x"}},
                                {"X-Forwarded-For": "203.0.113.9"})
        assert_pipeline_denied(denied, "stateless tools/call from 203.0.113.9")
        # A whole SDK session from a partner address; Rego sees the same client IP.
        async with sdk(gw.mcp_url, token, "session", {"X-Forwarded-For": "198.51.100.7", "Cookie": "c=1"}) as partner:
            assert text_of(await partner.call_tool("echo", {"message": "from a partner"})) == "from a partner"
        async with sdk(gw.mcp_url, token, "stateless", {"X-Forwarded-For": "198.51.100.8"}) as other:
            error = await call_error(other, "echo", {"message": "x"})
            assert (error.code, error.message) == (INVALID_PARAMS, "Unknown tool: echo"), (error.code, error.message)
            assert text_of(await other.call_tool("add", {"a": 1, "b": 1})) == "2"
    assert len(gw.upstream_calls("echo")) == 1, f"echo calls that reached the upstream: {gw.upstream_calls('echo')}"
    gw.alive()


async def test_pipeline_header_claim_and_user_agent(gateways: Callable[..., PolicyGateway]) -> None:
    pipeline = {
        "matchers": [
            {"name": "tenant", "header": {"name": "X-Tenant", "values": ["acme"]}},
            {"name": "writer", "claim": {"name": "scopes", "values": ["tools:write"]}},
            {"name": "vendor", "claim": {"name": "owner", "values": ["contractor-owner"]}},
            {"name": "bot", "userAgent": ["badbot"]},
        ],
        "expression": "(tenant || writer) && !bot",
    }
    gw = gateways(rego=ALLOW_ALL, policy={"pipeline": pipeline})
    contractor, writer = gw.keys["contractor"], gw.keys["writer"]
    with anyio.fail_after(50):
        assert_pipeline_denied(await raw_initialize(gw, contractor), "contractor without X-Tenant")
        assert_admitted(await raw_initialize(gw, contractor, {"X-Tenant": "acme"}), "contractor with X-Tenant: acme")
        assert_admitted(await raw_initialize(gw, contractor, {"X-Tenant": "ACME"}), "header values compare case-insensitively")
        assert_pipeline_denied(await raw_initialize(gw, contractor, {"X-Tenant": "globex"}), "contractor with X-Tenant: globex")
        assert_admitted(await raw_initialize(gw, writer), "writer (claim scopes contains tools:write)")
        assert_pipeline_denied(await raw_initialize(gw, writer, {"User-Agent": "BadBot/2.0 (crawler)"}), "writer as BadBot")
        assert_pipeline_denied(await raw_initialize(gw, contractor, {"X-Tenant": "acme", "User-Agent": "x badbot y"}),
                               "contractor with tenant as badbot")
        async with sdk(gw.mcp_url, contractor, "stateless", {"X-Tenant": "acme"}) as client:
            assert text_of(await client.call_tool("echo", {"message": "tenant"})) == "tenant"
        # Authentication comes first: no token is a 401, not a pipeline 403.
        async with wire.client() as http:
            message = wire.request("initialize", {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": wire.CLIENT_INFO})
            anonymous = await wire.post(http, gw.mcp_url, message, {"X-Tenant": "acme"})
        assert anonymous.status == 401, f"no token: {anonymous.describe()}"
    gw.alive()


# --- 6. the decision log --------------------------------------------------------------------------

AUDIT_POLICY = ANNOTATION_POLICY

REQUEST_KEYS = {"time", "kind", "stage", "endpoint", "identity", "method", "server", "target", "request_id", "arguments",
                "client_ip", "decision", "reasons", "policy_version", "evaluation_us"}
LIST_KEYS = {"time", "kind", "stage", "endpoint", "identity", "method", "server", "request_id", "client_ip", "decision",
             "reasons", "policy_version", "evaluation_us", "hidden_items"}
PIPELINE_KEYS = {"time", "kind", "stage", "endpoint", "identity", "method", "client_ip", "decision", "reasons", "evaluation_us"}


def audit_lines(*paths: Path) -> list[dict[str, Any]]:
    lines = []
    for path in paths:
        if not path.exists():
            continue
        for raw in path.read_text().splitlines():
            assert raw.strip(), f"an empty line in {path}"
            try:
                lines.append(json.loads(raw))
            except ValueError as error:
                raise AssertionError(f"{path}: not a JSON line: {raw!r}") from error
    return lines


async def test_decision_log(gateways: Callable[..., PolicyGateway], scratch_dir: Path) -> None:
    work_audit = "audit.log"
    log_path = scratch_dir / "gw" / work_audit
    pipeline = {
        "trustedProxies": ["127.0.0.1/32"],
        "matchers": [{"name": "local", "clientIP": ["127.0.0.0/8"]}, {"name": "blocked", "clientIP": ["203.0.113.0/24"]}],
        "expression": "local && !blocked",
    }
    gw = gateways(rego=AUDIT_POLICY, policy={
        "audit": {"sink": "file", "path": str(log_path), "maskArguments": ["message"]}, "pipeline": pipeline,
    })
    contractor, writer = gw.keys["contractor"], gw.keys["writer"]
    # The MCP-level lines we expect, besides one pipeline line per HTTP request: (stage, request_id, decision, target).
    expected: list[tuple[str, Any, str, Any]] = []
    http_requests = {"allow": 0, "deny": 0}

    async def do(token: str, method: str, params: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> wire.Reply:
        return await raw_call(gw, token, method, params, headers)

    with anyio.fail_after(50):
        # Batch 1.
        r = await do(contractor, "tools/list")
        assert "delete_item" not in {t["name"] for t in r.result["tools"]}
        http_requests["allow"] += 1
        expected.append(("list", r.request_id, "filter", None))
        r = await do(contractor, "tools/call", {"name": "echo", "arguments": {"message": "my secret text"}})
        assert r.result["content"][0]["text"] == "my secret text", r.describe()
        http_requests["allow"] += 1
        expected.append(("request", r.request_id, "allow", "echo"))
        r = await do(contractor, "tools/call", {"name": "delete_item", "arguments": {"id": "42"}})
        assert r.error["code"] == INVALID_PARAMS, r.describe()
        http_requests["allow"] += 1
        expected.append(("request", r.request_id, "deny", "delete_item"))
        r = await do(writer, "tools/call", {"name": "add", "arguments": {"a": 1, "b": 2}})
        assert r.result["content"][0]["text"] == "3", r.describe()
        http_requests["allow"] += 1
        expected.append(("request", r.request_id, "allow", "add"))
        r = await do(writer, "tools/call", {"name": "add", "arguments": {"a": 1, "b": 2}}, {"X-Forwarded-For": "203.0.113.9"})
        assert r.status == 403, r.describe()
        http_requests["deny"] += 1

        deadline = time.monotonic() + 5
        total_expected = len(expected) + sum(http_requests.values())
        while len(audit_lines(log_path)) < total_expected and time.monotonic() < deadline:
            await anyio.sleep(0.1)
        first = audit_lines(log_path)
        assert len(first) == total_expected, (
            f"{log_path}: expected {total_expected} decision lines ({len(expected)} MCP + {sum(http_requests.values())} pipeline), "
            f"got {len(first)}:\n" + "\n".join(json.dumps(line) for line in first)
        )

        by_id: dict[Any, list[dict[str, Any]]] = {}
        for line in first:
            assert line.get("kind") == "decision", line
            assert line.get("endpoint") == "/mcp", line
            assert re.match(r"\d{4}-\d\d-\d\dT", str(line.get("time"))), line
            assert isinstance(line.get("evaluation_us"), int), line
            if line.get("stage") != "pipeline":
                by_id.setdefault(line.get("request_id"), []).append(line)
        for stage, request_id, decision, target in expected:
            lines = by_id.get(request_id, [])
            assert len(lines) == 1, f"request id {request_id}: expected exactly one {stage} line, got {lines}"
            line = lines[0]
            keys = REQUEST_KEYS if stage == "request" else LIST_KEYS
            missing = keys - set(line)
            assert not missing, f"{stage} line for request {request_id} lacks {sorted(missing)}: {line}"
            assert line["stage"] == stage and line["decision"] == decision, f"request {request_id}: {line}"
            assert line["server"] == SERVER, line
            assert line["client_ip"] == "127.0.0.1", line
            assert isinstance(line["policy_version"], str) and line["policy_version"], line
            if target is not None:
                assert line["target"] == target and line["method"] == "tools/call", line
            else:
                assert line["method"] == "tools/list" and line["hidden_items"] == 1, f"contractor's list hides delete_item: {line}"
        echo_line = next(line for line in first if line.get("target") == "echo")
        assert echo_line["arguments"] == {"message": "***"}, f"maskArguments [message]: {echo_line}"
        assert "my secret text" not in log_path.read_text(), "a masked argument reached the decision log"
        add_line = next(line for line in first if line.get("target") == "add")
        assert add_line["arguments"] == {"a": 1, "b": 2}, add_line
        assert add_line["identity"]["subject"] == f"apikey:{gw.key_ids['writer']}", add_line
        assert add_line["identity"]["client_id"] == "writer", add_line
        assert add_line["identity"]["kind"], add_line
        delete_line = next(line for line in first if line.get("target") == "delete_item")
        assert delete_line["identity"]["subject"] == f"apikey:{gw.key_ids['contractor']}", delete_line
        assert delete_line["reasons"], f"a denial should carry the decision's reasons: {delete_line}"
        pipeline_lines = [line for line in first if line.get("stage") == "pipeline"]
        assert len(pipeline_lines) == sum(http_requests.values()), pipeline_lines
        for line in pipeline_lines:
            missing = PIPELINE_KEYS - set(line)
            assert not missing, f"pipeline line lacks {sorted(missing)}: {line}"
        assert sorted(line["decision"] for line in pipeline_lines) == ["allow"] * http_requests["allow"] + ["deny"] * http_requests["deny"]
        assert [line["client_ip"] for line in pipeline_lines if line["decision"] == "deny"] == ["203.0.113.9"], pipeline_lines
        assert contractor not in log_path.read_text() and writer not in log_path.read_text(), "an API key in the decision log"

        # Rotation: move the file away (logrotate's move-and-create) and keep deciding.
        os.rename(log_path, log_path.with_name(work_audit + ".1"))
        more = 0
        for i in range(3):
            r = await do(writer, "tools/call", {"name": "add", "arguments": {"a": i, "b": 1}})
            assert r.result["content"][0]["text"] == str(i + 1), r.describe()
            more += 2  # pipeline + request
            await anyio.sleep(0.6)
        await anyio.sleep(1.2)
        for i in range(3):
            r = await do(contractor, "tools/list")
            assert r.status == 200, r.describe()
            more += 2  # pipeline + list
        total = total_expected + more
        deadline = time.monotonic() + 5
        rotated = log_path.with_name(work_audit + ".1")
        while len(audit_lines(rotated, log_path)) < total and time.monotonic() < deadline:
            await anyio.sleep(0.1)
        old, new = audit_lines(rotated), audit_lines(log_path)
        assert len(old) + len(new) == total, (
            f"after rotation: {len(old)} lines in {rotated.name} + {len(new)} in {log_path.name} != {total} decisions"
        )
        assert log_path.exists() and new, f"the gateway did not reopen {log_path} after it was moved away"
        assert new[-1]["stage"] in ("list", "pipeline"), new[-1]
    gw.alive()


# --- the input document ---------------------------------------------------------------------------

INPUT_POLICY = """package gatehouse

import rego.v1

default decision := true

expect := json.unmarshal(input.request.arguments.message)

failed contains "identity.kind" if input.identity.kind != "machine"
failed contains "identity.subject" if input.identity.subject != concat("", ["apikey:", input.identity.claims.key_id])
failed contains "identity.subject" if not input.identity.subject
failed contains "identity.client_id" if input.identity.client_id != expect.key
failed contains "identity.scopes" if not "mcp" in input.identity.scopes
failed contains "identity.claims.owner" if input.identity.claims.owner != concat("", [expect.key, "-owner"])
failed contains "identity.claims.name" if input.identity.claims.name != expect.key
failed contains "identity.groups" if not is_array(input.identity.groups)
failed contains "identity.roles" if not is_array(input.identity.roles)
failed contains "identity.source" if input.identity.source != "api_key"
failed contains "request.method" if input.request.method != "tools/call"
failed contains "request.phase" if input.request.phase != "call"
failed contains "request.protocol_version" if input.request.protocol_version != expect.version
failed contains "request.session" if input.request.session != expect.session
failed contains "request.server" if input.request.server != "demo"
failed contains "request.name" if input.request.name != "echo"
failed contains "request.tool" if input.request.tool != "echo"
failed contains "request.arguments" if not is_string(input.request.arguments.message)
failed contains "server.name" if input.server.name != "demo"
failed contains "server.labels" if input.server.labels.team != "platform"
failed contains "tool.name" if input.tool.name != "echo"
failed contains "tool.annotations" if input.tool.annotations.readOnlyHint != true
failed contains "tool.inputSchema" if not input.tool.inputSchema.properties.message
failed contains "context.client_ip" if input.context.client_ip != "127.0.0.1"
failed contains "context.endpoint" if input.context.endpoint != "/mcp"
failed contains "context.headers.x-custom" if input.context.headers["x-custom"] != "Yes"
failed contains "context.headers.user-agent" if input.context.headers["user-agent"] != expect.ua
failed contains "context.headers.authorization" if input.context.headers.authorization
failed contains "context.headers.cookie" if input.context.headers.cookie
failed contains "context.headers lowercased" if input.context.headers["X-Custom"]
failed contains "context.time" if not is_string(input.context.time)
failed contains "context.time_ns" if input.context.time_ns < 1700000000000000000
failed contains "analysis.client_ip.address" if input.analysis.client_ip.address != "127.0.0.1"
failed contains "analysis.client_ip.version" if input.analysis.client_ip.version != 4
failed contains "analysis.client_ip.loopback" if input.analysis.client_ip.loopback != true
failed contains "analysis.user_agent.raw" if input.analysis.user_agent.raw != expect.ua
failed contains "analysis.user_agent.product" if input.analysis.user_agent.product != "policy-e2e"
failed contains "analysis.user_agent.version" if input.analysis.user_agent.version != "1.2"

# A missing field makes its comparison undefined, which would not add a failure: require them.
required := ["identity", "request", "server", "tool", "context", "analysis"]
failed contains concat("", ["missing ", name]) if {
	some name in required
	not input[name]
}

decision := {"allow": count(failed) == 0, "message": concat(",", sort(failed))} if {
	input.request.phase == "call"
	input.request.tool == "echo"
}

# The list phase: input.request.phase is "list", no arguments, input.tool is the listed item.
decision := false if {
	input.request.phase == "list"
	input.request.tool == "add"
	input.tool.name == "add"
	count(input.request.arguments) == 0
	input.request.session == false
}
"""


async def test_input_document(gateways: Callable[..., PolicyGateway]) -> None:
    # One key per era: the list decisions of one caller are cached (see the list-filter tests).
    gw = gateways(rego=INPUT_POLICY, policy={"deniedTools": "error"}, keys={"reader": ["mcp"], "reader2": ["mcp"]})
    ua = "policy-e2e/1.2 (pytest)"
    headers = {"User-Agent": ua, "X-Custom": "Yes", "Cookie": "session=abc"}
    with anyio.fail_after(60):
        for era, version, session, key in (("session", "2025-11-25", True, "reader"), ("stateless", "2026-07-28", False, "reader2")):
            async with sdk(gw.mcp_url, gw.keys[key], era, headers) as client:
                message = json.dumps({"version": version, "session": session, "ua": ua, "key": key})
                with anyio.fail_after(SDK_TIMEOUT):
                    try:
                        result = await client.call_tool("echo", {"message": message})
                    except MCPError as error:
                        raise AssertionError(f"{era}: the input document failed checks: {error.message!r} {error.data!r}") from error
                assert text_of(result) == message
                # The list phase: `add` is hidden for stateless requests only.
                names = await tool_names(client)
                if session:
                    assert "add" in names, f"{era}: tools/list {sorted(names)} (add is hidden for stateless requests only)"
                else:
                    assert "add" not in names, f"{era}: tools/list {sorted(names)} (add is hidden for stateless requests)"
                    assert text_of(await client.call_tool("add", {"a": 1, "b": 2})) == "3", "the list phase rule must not deny calls"
    gw.alive()


LIST_BY_IP_POLICY = """package gatehouse

import rego.v1

default decision := true

decision := false if {
	input.request.tool == "echo"
	input.context.client_ip == "198.51.100.8"
}
"""


async def test_list_filter_follows_the_request_not_a_cache(gateways: Callable[..., PolicyGateway]) -> None:
    """Each list item is decided as if calling it: same key, different client IPs, different lists."""
    pipeline = {"trustedProxies": ["127.0.0.1/32"], "matchers": [{"name": "any", "clientIP": ["0.0.0.0/0"]}], "expression": "any"}
    gw = gateways(rego=LIST_BY_IP_POLICY, policy={"pipeline": pipeline})
    token = gw.keys["contractor"]
    with anyio.fail_after(30):
        results = []
        for ip in ("198.51.100.8", "198.51.100.7", "198.51.100.8"):
            listed = await raw_call(gw, token, "tools/list", None, {"X-Forwarded-For": ip})
            names = {t["name"] for t in listed.result["tools"]}
            called = await raw_call(gw, token, "tools/call", {"name": "echo", "arguments": {"message": "m"}}, {"X-Forwarded-For": ip})
            results.append((ip, "echo" in names, "result" in called.response))
        assert results == [("198.51.100.8", False, False), ("198.51.100.7", True, True), ("198.51.100.8", False, False)], (
            f"(client ip, echo listed, echo callable): {results}; a listed item must be decided like a call from the same request"
        )
    gw.alive()


LIST_BY_ERA_POLICY = """package gatehouse

import rego.v1

default decision := true

decision := false if {
	input.request.tool == "add"
	input.request.session == false
}
"""


async def test_list_filter_follows_the_protocol_era(gateways: Callable[..., PolicyGateway]) -> None:
    """Same key, a session (2025-11-25) then a stateless (2026-07-28) client: `add` is for sessions only."""
    gw = gateways(rego=LIST_BY_ERA_POLICY)
    token = gw.keys["contractor"]
    with anyio.fail_after(40):
        seen = []
        for era in ("session", "stateless", "session"):
            async with sdk(gw.mcp_url, token, era) as client:
                listed = "add" in await tool_names(client)
                try:
                    with anyio.fail_after(SDK_TIMEOUT):
                        callable_ = not (await client.call_tool("add", {"a": 1, "b": 1})).is_error
                except MCPError:
                    callable_ = False
            seen.append((era, listed, callable_))
        assert seen == [("session", True, True), ("stateless", False, False), ("session", True, True)], (
            f"(era, add listed, add callable): {seen}; a listed item must be decided like a call from the same request"
        )
    gw.alive()


# --- inline modules, a custom query, undefined decisions, response headers, validation -----------

INLINE_MODULE = """package custom.authz

import rego.v1

verdict := {"allow": true, "headers": {
	"response": {"X-Policy-Version": "7", "Set-Cookie": "evil=1"},
	"upstream": {"X-Gatehouse-Caller": input.identity.subject, "Authorization": "Bearer evil"},
}} if {
	input.request.tool != "echo"
}
"""


@pytest.mark.parametrize("source", ("paths", "inline"))
async def test_custom_query_and_undefined_decision(gateways: Callable[..., PolicyGateway], source: str) -> None:
    """`query: data.custom.authz.verdict` over a module from `rego.paths` or `rego.inline`; the verdict is
    undefined for echo (a denial); the decision's X- response headers reach the client, others do not."""
    if source == "paths":
        gw = gateways(rego=INLINE_MODULE, policy={"rego": {"paths": ["policy"], "query": "data.custom.authz.verdict"}})
    else:
        gw = gateways(rego=None, policy={"rego": {"inline": INLINE_MODULE, "query": "data.custom.authz.verdict"}})
    token = gw.keys["contractor"]
    with anyio.fail_after(30):
        listed = {t["name"] for t in (await raw_call(gw, token, "tools/list")).result["tools"]}
        assert "echo" not in listed and "add" in listed, f"tools/list with an undefined decision for echo: {sorted(listed)}"
        echo = await raw_call(gw, token, "tools/call", {"name": "echo", "arguments": {"message": "x"}})
        assert echo.error["code"] == INVALID_PARAMS and echo.error["message"] == "Unknown tool: echo", echo.describe()
        add = await raw_call(gw, token, "tools/call", {"name": "add", "arguments": {"a": 2, "b": 2}})
        assert add.result["content"][0]["text"] == "4", add.describe()
        assert add.headers.get("x-policy-version") == "7", f"the decision's X- header is missing: {add.describe()}"
        assert "evil=1" not in str(add.headers.get_list("set-cookie")), f"a non-X- decision header reached the client: {add.describe()}"
    assert gw.upstream_calls("echo") == [], f"an undefined decision let echo through: {gw.upstream_calls('echo')}"
    # The decision's X- headers reach the upstream request; others (Authorization) never do.
    add_requests = [entry for entry in gw.upstream_requests()
                    if isinstance(entry.get("body"), dict) and entry["body"].get("method") == "tools/call"
                    and (entry["body"].get("params") or {}).get("name") == "add"]
    assert add_requests, "the add call did not reach the upstream"
    headers = {name.lower(): value for name, value in add_requests[-1]["headers"]}
    assert headers.get("x-gatehouse-caller", "").startswith("apikey:"), f"upstream headers: {headers}"
    assert headers.get("authorization") != "Bearer evil", f"a policy set the upstream's Authorization: {headers}"
    gw.alive()


def test_broken_policy_is_refused_at_validate_and_startup(scratch_dir: Path) -> None:
    require_binary(GATEHOUSE_BIN, "gatehouse")
    (scratch_dir / "policy").mkdir(exist_ok=True)
    (scratch_dir / "policy" / "policy.rego").write_text(BROKEN)
    config = scratch_dir / "gateway.yaml"
    config.write_text(config_yaml(free_port(), {"stdio": {"command": str(DEMO_BIN), "args": ["--stdio"]}},
                                  {"rego": {"paths": ["policy"]}}))
    validated = gatehouse("validate", str(config), check=False)
    output = validated.stdout + validated.stderr
    assert validated.returncode != 0, f"`gatehouse validate` accepted a broken policy: {output}"
    assert re.search(r"policy\.rego:\d+:\d+", output), f"`gatehouse validate` should name file:line:column: {output}"
    proc = Proc("gateway", [str(GATEHOUSE_BIN), "serve", "--config", str(config)], scratch_dir)
    try:
        proc.popen.wait(timeout=15)
    except Exception:  # noqa: BLE001
        pass
    finally:
        proc.stop()
    assert proc.popen.returncode not in (None, 0), f"the gateway started with a broken policy:\n{proc.output()}"
    assert "policy.rego" in proc.output(), f"the startup error should name the policy file:\n{proc.output()}"


NAME_POLICY = """package gatehouse

import rego.v1

default decision := true

# By name: the contractor may not use delete_item; every other name is left to the server.
decision := false if {
	input.request.tool == "delete_item"
	not "tools:write" in input.identity.scopes
}
"""


@pytest.mark.parametrize("upstream", ("demo", "python"))
async def test_hidden_tool_answers_like_a_missing_one(gateways: Callable[..., PolicyGateway], upstream: str) -> None:
    """docs/policy.md: with `deniedTools: hide` "existence does not leak" — a denied tool's refusal and a
    missing tool's answer must look the same to the caller (apart from the name)."""
    gw = gateways(rego=NAME_POLICY, upstream=upstream)
    token = gw.keys["contractor"]
    with anyio.fail_after(30):
        hidden = await raw_call(gw, token, "tools/call", {"name": "delete_item", "arguments": {"id": "1"}})
        missing = await raw_call(gw, token, "tools/call", {"name": "no_such_tool", "arguments": {"id": "1"}})

    def shape(reply: wire.Reply, name: str) -> Any:
        response = dict(reply.response)
        response.pop("id", None)
        response.pop("jsonrpc", None)
        if "result" in response:
            response["result"] = {k: v for k, v in response["result"].items() if k != "_meta"}
        return json.loads(json.dumps(response).replace(name, "NAME"))

    assert shape(hidden, "delete_item") == shape(missing, "no_such_tool"), (
        f"a hidden tool and a missing one can be told apart:\n  denied delete_item -> {hidden.describe()}\n"
        f"  missing no_such_tool -> {missing.describe()}"
    )
    assert gw.upstream_calls("delete_item") == []
    gw.alive()
