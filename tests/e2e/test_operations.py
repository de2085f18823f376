"""Operations end to end: rate limits (`spec.rateLimits`) and the admin listener (`spec.admin`:
GET /metrics, GET /status, POST /policy/reload) of a real gateway, in front of a real upstream,
driven by raw HTTP where status codes and headers matter and by the official Python SDK (mcp 2.3.0)
where a client is involved.

Each test starts its own upstream, its own gateway on free ports (API keys in SQLite, `/mcp`
requiring scope `mcp`) and, where it needs one, its own admin listener on another free port.

1. A limit keyed on [identity, tool]: the burst passes, the next call gets HTTP 429 + Retry-After +
   JSON-RPC -32029 naming the limit and never reaches the upstream (policy_upstream.py --record);
   another key and another tool are not affected; after Retry-After one more call passes.
2. Exact under concurrency: 20 concurrent calls against burst 5 and a tiny refill rate -> 5 pass.
3. The session era (ClientSession, 2025-11-25): the SDK surfaces the -32029 error with the limit's name;
   unauthenticated and policy-denied requests take no token (the limit comes after auth and policy).
4. Metrics: counters, histograms and gauges after known traffic (ok, tool error, 401, rate limited,
   policy denied); the MCP port does not serve /metrics.
5. POST /policy/reload: a broken policy -> 409 with the compile error and the old version (which
   keeps deciding); a good one -> 200 with a new version; reload counters; /status shows the version.
6. `gatehouse validate` refuses a rate limit without requestsPerSecond or with an unknown key dimension.

Known failures against the current binary are written up in /work/notes/ops-failures.md.
"""

from __future__ import annotations

import json
import math
import os
import re
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
from conftest import DEMO_BIN, GATEHOUSE_BIN, HERE, Proc, _yaml, free_port, require_binary, wait_http_200
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

pytestmark = [pytest.mark.anyio, pytest.mark.gateway_only]

POLICY_UPSTREAM = HERE / "policy_upstream.py"
SDK_TIMEOUT = 20
RATE_LIMITED = -32029
SERVER = "demo"
ENDPOINT = "/mcp"


# --- the setup: upstream + gateway (+ admin listener) + keys --------------------------------------


@dataclass
class OpsGateway:
    dir: Path
    port: int
    admin_port: int | None
    config_path: Path
    proc: Proc
    upstream: Proc | None
    record_path: Path
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def mcp_url(self) -> str:
        return f"{self.base_url}{ENDPOINT}"

    @property
    def admin_url(self) -> str:
        assert self.admin_port is not None, "this gateway has no admin listener"
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def policy_dir(self) -> Path:
        return self.dir / "policy"

    def describe(self) -> str:
        parts = [self.proc.describe(), f"--- {self.config_path} ---\n{self.config_path.read_text()}"]
        if self.upstream is not None:
            parts.append(self.upstream.describe())
        return "\n".join(parts)

    def alive(self) -> None:
        assert self.proc.popen.poll() is None, f"the gateway died\n{self.describe()}"

    def upstream_requests(self) -> list[dict[str, Any]]:
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

    def upstream_messages(self, tool: str) -> list[str]:
        """The `message` arguments of the echo calls that reached the upstream."""
        return [str((c.get("params") or {}).get("arguments", {}).get("message")) for c in self.upstream_calls(tool)]

    def write_policy(self, text: str, name: str = "policy.rego") -> None:
        self.policy_dir.mkdir(exist_ok=True)
        path = self.policy_dir / name
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)

    def stop(self) -> None:
        self.proc.stop()
        if self.upstream is not None:
            self.upstream.stop()


def config_yaml(
    port: int,
    upstream_spec: dict[str, Any],
    *,
    rate_limits: list[dict[str, Any]] | None = None,
    admin_port: int | None = None,
    policy: dict[str, Any] | None = None,
) -> str:
    spec: dict[str, Any] = {
        "listen": {"bind": "127.0.0.1", "port": port},
        "storage": {"sqlite": {"path": "gatehouse.db"}},
        "auth": {"apiKeys": True},
    }
    if policy:
        spec["policy"] = policy
    if rate_limits is not None:
        spec["rateLimits"] = rate_limits
    if admin_port is not None:
        spec["admin"] = {"listen": {"bind": "127.0.0.1", "port": admin_port}}
    spec["endpoints"] = [{"path": ENDPOINT, "servers": [SERVER], "auth": {"mode": "required", "scopes": ["mcp"]}}]
    gateway = {"apiVersion": "gatehouse.dev/v1alpha1", "kind": "Gateway", "metadata": {"name": "ops-e2e"}, "spec": spec}
    server = {"apiVersion": "gatehouse.dev/v1alpha1", "kind": "MCPServer", "metadata": {"name": SERVER},
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


def create_key(config_path: Path, name: str) -> str:
    argv = ["apikey", "create", "--config", str(config_path), "--name", name, "--owner", f"{name}-owner", "--scope", "mcp"]
    out = gatehouse(*argv).stdout
    key = re.search(r"\bghk_[A-Za-z0-9_\-]+", out)
    assert key, f"`gatehouse {' '.join(argv)}` printed no key: {out!r}"
    return key.group(0)


def launch(
    base: Path,
    name: str,
    *,
    upstream: str = "python",
    rate_limits: list[dict[str, Any]] | None = None,
    admin: bool = False,
    policy: dict[str, Any] | None = None,
    rego: str | None = None,
    keys: tuple[str, ...] = ("alice", "bob"),
) -> OpsGateway:
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
    if rego is not None:
        (work / "policy").mkdir(exist_ok=True)
        (work / "policy" / "policy.rego").write_text(rego)
        policy_config.setdefault("rego", {"paths": ["policy"]})
    port = free_port()
    admin_port = free_port() if admin else None
    config_path = work / "gateway.yaml"
    config_path.write_text(config_yaml(port, upstream_spec, rate_limits=rate_limits, admin_port=admin_port, policy=policy_config))
    made: dict[str, str] = {}
    try:
        for key_name in keys:
            made[key_name] = create_key(config_path, key_name)
    except BaseException:
        if up_proc:
            up_proc.stop()
        raise
    proc = Proc("gateway", [str(GATEHOUSE_BIN), "serve", "--config", str(config_path), "--port", str(port)], work)
    gw = OpsGateway(dir=work, port=port, admin_port=admin_port, config_path=config_path, proc=proc, upstream=up_proc,
                    record_path=record_path, keys=made)
    context = f"--- {config_path} ---\n{config_path.read_text()}\n"
    try:
        wait_http_200(proc, f"{gw.base_url}/readyz", context=context)
        if admin_port is not None:
            wait_http_200(proc, f"{gw.admin_url}/status", context=context)
    except BaseException:
        gw.stop()
        raise
    return gw


@pytest.fixture
def gateways(scratch_dir: Path) -> Iterator[Callable[..., OpsGateway]]:
    started: list[OpsGateway] = []

    def start(name: str = "gw", **kwargs: Any) -> OpsGateway:
        gw = launch(scratch_dir, name, **kwargs)
        started.append(gw)
        return gw

    yield start
    for gw in started:
        print(gw.describe())
        gw.stop()


# --- raw HTTP and SDK helpers ----------------------------------------------------------------------


async def raw_call(url: str, token: str | None, method: str, params: dict[str, Any] | None = None,
                   http: httpx2.AsyncClient | None = None) -> wire.Reply:
    """One stateless (2026-07-28) request over raw HTTP: exactly one HTTP request to the gateway."""
    message = wire.modern_request(method, params)
    headers = wire.modern_headers(message)
    if token is not None:
        headers.update(bearer(token))
    with anyio.fail_after(SDK_TIMEOUT):
        if http is not None:
            return await wire.post(http, url, message, headers)
        async with wire.client() as own:
            return await wire.post(own, url, message, headers)


async def echo(gw: OpsGateway, token: str | None, message: str, http: httpx2.AsyncClient | None = None) -> wire.Reply:
    return await raw_call(gw.mcp_url, token, "tools/call", {"name": "echo", "arguments": {"message": message}}, http)


def assert_echoed(reply: wire.Reply, message: str, what: str) -> None:
    assert reply.status == 200, f"{what}: expected HTTP 200, got {reply.describe()}"
    result = reply.result
    assert not result.get("isError") and result["content"][0]["text"] == message, f"{what}: {reply.describe()}"


def assert_rate_limited(reply: wire.Reply, limit: str, what: str) -> int:
    """HTTP 429 + Retry-After + JSON-RPC -32029 naming `limit`; returns Retry-After in seconds."""
    assert reply.status == 429, f"{what}: expected HTTP 429, got {reply.describe()}"
    retry_after = reply.headers.get("retry-after")
    assert retry_after is not None and retry_after.strip().isdigit(), f"{what}: Retry-After must be whole seconds: {reply.describe()}"
    seconds = int(retry_after)
    assert seconds >= 1, f"{what}: Retry-After {seconds}"
    error = reply.error
    assert error["code"] == RATE_LIMITED, f"{what}: expected JSON-RPC {RATE_LIMITED}, got {reply.describe()}"
    assert error["message"].startswith("Too many requests"), f"{what}: message {error['message']!r}"
    assert f"'{limit}'" in error["message"], f"{what}: the message should name the limit {limit!r}: {error['message']!r}"
    data = (error.get("data") or {}).get("gatehouse") or {}
    assert data.get("reason") == "rate_limited" and data.get("limit") == limit, f"{what}: error.data {error.get('data')!r}"
    assert data.get("retryAfterSeconds") == seconds, f"{what}: retryAfterSeconds {data.get('retryAfterSeconds')!r} != Retry-After {seconds}"
    return seconds


@asynccontextmanager
async def session_client(url: str, token: str) -> AsyncIterator[ClientSession]:
    http = httpx2.AsyncClient(headers=bearer(token), timeout=httpx2.Timeout(30.0, read=60.0), trust_env=False)
    async with http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write, read_timeout_seconds=SDK_TIMEOUT) as session:
                with anyio.fail_after(SDK_TIMEOUT):
                    init = await session.initialize()
                assert init.protocol_version == "2025-11-25", f"negotiated {init.protocol_version}"
                yield session


# --- the Prometheus text format -------------------------------------------------------------------

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?\s*')


@dataclass
class Metrics:
    text: str
    samples: list[tuple[str, dict[str, str], float]]
    types: dict[str, str]

    def find(self, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
        return [(ls, v) for n, ls, v in self.samples if n == name and all(ls.get(k) == val for k, val in labels.items())]

    def value(self, name: str, **labels: str) -> float | None:
        """The value of the one series `name` whose labels include `labels` (None when there is none)."""
        found = self.find(name, **labels)
        if not found:
            return None
        assert len(found) == 1, f"{name}{labels} matches several series: {found}"
        return found[0][1]

    def total(self, name: str, **labels: str) -> float:
        return sum(v for _, v in self.find(name, **labels))

    def dump(self, prefix: str) -> str:
        return "\n".join(line for line in self.text.splitlines() if line.startswith(prefix))


def parse_metrics(text: str) -> Metrics:
    samples: list[tuple[str, dict[str, str], float]] = []
    types: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 4 and parts[1] == "TYPE":
                types[parts[2]] = parts[3].strip()
            continue
        match = _SAMPLE.match(line.strip())
        assert match, f"not a Prometheus sample line: {line!r}"
        name, label_text, raw_value = match.groups()
        labels: dict[str, str] = {}
        if label_text:
            consumed = 0
            for lm in _LABEL.finditer(label_text):
                assert lm.start() == consumed, f"malformed labels in {line!r}"
                labels[lm.group(1)] = re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), lm.group(2))
                consumed = lm.end()
            assert consumed == len(label_text), f"malformed labels in {line!r}"
        value = {"+Inf": math.inf, "-Inf": -math.inf, "NaN": math.nan}.get(raw_value)
        samples.append((name, labels, float(raw_value) if value is None else value))
    return Metrics(text=text, samples=samples, types=types)


async def scrape(gw: OpsGateway) -> Metrics:
    async with wire.client() as http:
        response = await http.get(f"{gw.admin_url}/metrics")
    assert response.status_code == 200, f"GET /metrics on the admin port -> HTTP {response.status_code}: {response.text[:500]}"
    content_type = response.headers.get("content-type", "")
    assert content_type.startswith("text/plain"), f"GET /metrics Content-Type {content_type!r} (Prometheus text is text/plain)"
    return parse_metrics(response.text)


async def admin_get(gw: OpsGateway, path: str) -> httpx2.Response:
    async with wire.client() as http:
        return await http.get(f"{gw.admin_url}{path}")


async def admin_post(gw: OpsGateway, path: str) -> httpx2.Response:
    async with wire.client() as http:
        return await http.post(f"{gw.admin_url}{path}")


def assert_histogram(metrics: Metrics, name: str, **labels: str) -> float:
    """Buckets cumulative and ending at +Inf == _count; _sum present; returns _count."""
    count = metrics.value(f"{name}_count", **labels)
    assert count is not None, f"no {name}_count{labels}\n{metrics.dump(name)}"
    total = metrics.value(f"{name}_sum", **labels)
    assert total is not None and total >= 0, f"{name}_sum{labels}: {total}\n{metrics.dump(name)}"
    buckets = sorted(((float(ls["le"]) if ls["le"] != "+Inf" else math.inf, v) for ls, v in metrics.find(f"{name}_bucket", **labels)),
                     key=lambda b: b[0])
    assert buckets and buckets[-1][0] == math.inf, f"{name}{labels}: no le=\"+Inf\" bucket\n{metrics.dump(name)}"
    values = [v for _, v in buckets]
    assert values == sorted(values), f"{name}{labels}: buckets are not cumulative: {buckets}"
    assert buckets[-1][1] == count, f"{name}{labels}: +Inf bucket {buckets[-1][1]} != _count {count}"
    return count


DENY_DELETE_POLICY = """package gatehouse

import rego.v1

default decision := true

decision := {"allow": false, "reasons": ["no deletes"]} if input.request.tool == "delete_item"
"""


# --- 1. a limit per identity and tool -------------------------------------------------------------


async def test_rate_limit_per_identity_and_tool(gateways: Callable[..., OpsGateway]) -> None:
    limit = "per-caller-tool"
    gw = gateways(rate_limits=[{"name": limit, "key": ["identity", "tool"], "requestsPerSecond": 0.5, "burst": 3}])
    alice, bob = gw.keys["alice"], gw.keys["bob"]
    with anyio.fail_after(45):
        for i in range(1, 4):
            assert_echoed(await echo(gw, alice, f"alice-{i}"), f"alice-{i}", f"alice's echo #{i} (within the burst of 3)")
        refused = await echo(gw, alice, "alice-refused-1")
        refused_at = time.monotonic()
        retry_after = assert_rate_limited(refused, limit, "alice's 4th echo")
        assert retry_after <= 2, f"with 0.5 requests/s a token is back within 2 s; Retry-After {retry_after}"
        refused_again = await echo(gw, alice, "alice-refused-2")
        assert_rate_limited(refused_again, limit, "alice's 5th echo (still no token)")

        # Another key has its own bucket.
        for i in range(1, 4):
            assert_echoed(await echo(gw, bob, f"bob-{i}"), f"bob-{i}", f"bob's echo #{i} (a different identity)")
        # Another tool by the same key has its own bucket (tool is in the key).
        add = await raw_call(gw.mcp_url, alice, "tools/call", {"name": "add", "arguments": {"a": 2, "b": 3}})
        assert add.status == 200 and add.result["content"][0]["text"] == "5", f"alice's add (another tool): {add.describe()}"

        # After Retry-After one more echo passes, and the one after it is limited again.
        # (Counted from the refusal, so the bucket holds just over one token: the next call is limited again.)
        await anyio.sleep(max(0.0, refused_at + retry_after + 0.3 - time.monotonic()))
        assert_echoed(await echo(gw, alice, "alice-after-wait"), "alice-after-wait", f"alice's echo {retry_after + 0.3:.1f} s later")
        assert_rate_limited(await echo(gw, alice, "alice-refused-3"), limit, "alice's echo right after the refilled token")

    reached = gw.upstream_messages("echo")
    assert not [m for m in reached if "refused" in m], f"rate-limited calls reached the upstream: {reached}"
    assert sorted(reached) == sorted(["alice-1", "alice-2", "alice-3", "bob-1", "bob-2", "bob-3", "alice-after-wait"]), (
        f"echo calls at the upstream: {reached}"
    )
    assert len(gw.upstream_calls("add")) == 1
    gw.alive()


# --- 2. exact under concurrency -------------------------------------------------------------------


async def test_rate_limit_exact_under_concurrency(gateways: Callable[..., OpsGateway]) -> None:
    limit = "tight"
    gw = gateways(rate_limits=[{"name": limit, "requestsPerSecond": 0.001, "burst": 5}], admin=True, keys=("alice",))
    token = gw.keys["alice"]
    replies: dict[int, wire.Reply] = {}
    with anyio.fail_after(45):
        limits = httpx2.Limits(max_connections=50, max_keepalive_connections=50)
        async with httpx2.AsyncClient(timeout=wire.DEFAULT_TIMEOUT, trust_env=False, limits=limits) as http:
            start = anyio.Event()

            async def one(i: int) -> None:
                await start.wait()
                replies[i] = await echo(gw, token, f"c-{i}", http)

            async with anyio.create_task_group() as tg:
                for i in range(20):
                    tg.start_soon(one, i)
                await anyio.sleep(0.05)
                start.set()
    statuses = sorted(reply.status for reply in replies.values())
    ok = [i for i, r in replies.items() if r.status == 200]
    limited = [i for i, r in replies.items() if r.status == 429]
    assert len(replies) == 20 and len(ok) == 5 and len(limited) == 15, (
        f"20 concurrent calls against burst 5: expected 5 x 200 and 15 x 429, got statuses {statuses}"
    )
    for i in ok:
        assert_echoed(replies[i], f"c-{i}", f"concurrent call {i}")
    for i in limited:
        assert_rate_limited(replies[i], limit, f"concurrent call {i}")
    reached = gw.upstream_messages("echo")
    assert sorted(reached) == sorted(f"c-{i}" for i in ok), f"the upstream saw {sorted(reached)}; the admitted ones were {sorted(ok)}"
    metrics = await scrape(gw)
    assert metrics.value("gatehouse_rate_limited_total", limit=limit) == 15, metrics.dump("gatehouse_rate_limited_total")
    gw.alive()


# --- 3. the session era ---------------------------------------------------------------------------


async def test_rate_limit_in_session_era(gateways: Callable[..., OpsGateway]) -> None:
    limit = "session-calls"
    gw = gateways(rate_limits=[{"name": limit, "key": ["identity"], "requestsPerSecond": 0.001, "burst": 2}], keys=("alice",))
    with anyio.fail_after(45):
        async with session_client(gw.mcp_url, gw.keys["alice"]) as session:
            for i in range(2):
                with anyio.fail_after(SDK_TIMEOUT):
                    result = await session.call_tool("echo", {"message": f"s-{i}"})
                assert not result.is_error and result.content[0].text == f"s-{i}", result
            with anyio.fail_after(SDK_TIMEOUT):
                try:
                    result = await session.call_tool("echo", {"message": "s-refused"})
                except MCPError as error:
                    refusal = error
                else:
                    raise AssertionError(f"the 3rd echo in the session was answered: {result!r}")
            assert refusal.code == RATE_LIMITED, f"expected {RATE_LIMITED}, got {refusal.code} {refusal.message!r} {refusal.data!r}"
            assert f"'{limit}'" in refusal.message, f"the SDK's error should name the limit: {refusal.message!r}"
            data = refusal.data if isinstance(refusal.data, dict) else {}
            assert data.get("gatehouse", {}).get("limit") == limit, f"error.data {refusal.data!r}"
            # The limit covers tools/call only (the default methods): the session keeps working.
            with anyio.fail_after(SDK_TIMEOUT):
                listed = await session.list_tools()
            assert "echo" in {t.name for t in listed.tools}, listed
    assert gw.upstream_messages("echo") == ["s-0", "s-1"], f"echo calls at the upstream: {gw.upstream_messages('echo')}"
    gw.alive()


async def test_rate_limit_checked_after_authentication_and_policy(gateways: Callable[..., OpsGateway]) -> None:
    """Unauthenticated and policy-denied requests do not use up tokens (they never get to the limit)."""
    limit = "one-call"
    gw = gateways(rate_limits=[{"name": limit, "requestsPerSecond": 0.001, "burst": 1}],
                  policy={"rego": {"inline": DENY_DELETE_POLICY}, "deniedTools": "error"}, keys=("alice",))
    token = gw.keys["alice"]
    with anyio.fail_after(30):
        for i in range(3):
            unauthenticated = await echo(gw, None, f"anon-{i}")
            assert unauthenticated.status == 401, f"echo without a token #{i}: {unauthenticated.describe()}"
            denied = await raw_call(gw.mcp_url, token, "tools/call", {"name": "delete_item", "arguments": {"id": str(i)}})
            assert denied.status == 200 and denied.error["code"] == -32001, f"denied delete_item #{i}: {denied.describe()}"
        assert_echoed(await echo(gw, token, "first"), "first", "the first allowed call (denied ones took no token)")
        assert_rate_limited(await echo(gw, token, "second-refused"), limit, "the second allowed call")
        # A denied call is still denied (policy first), not rate limited.
        denied = await raw_call(gw.mcp_url, token, "tools/call", {"name": "delete_item", "arguments": {"id": "9"}})
        assert denied.status == 200 and denied.error["code"] == -32001, f"denied delete_item with an empty bucket: {denied.describe()}"
    assert gw.upstream_messages("echo") == ["first"] and gw.upstream_calls("delete_item") == []
    gw.alive()


# --- 4. metrics -----------------------------------------------------------------------------------



@pytest.mark.parametrize("denied_tools", ("hide", "error"))
async def test_metrics(gateways: Callable[..., OpsGateway], denied_tools: str) -> None:
    """`deniedTools: hide` (the default) answers a denied call like an unknown tool; either way the
    operator's metrics count it as outcome="denied"."""
    limit = "add-once"
    gw = gateways(
        upstream="demo",
        admin=True,
        rate_limits=[{"name": limit, "requestsPerSecond": 0.001, "burst": 1, "tools": ["add"]}],
        policy={"rego": {"inline": DENY_DELETE_POLICY}, "deniedTools": denied_tools},
        keys=("alice",),
    )
    token = gw.keys["alice"]
    call = {"endpoint": ENDPOINT, "mcp_method_name": "tools/call"}
    with anyio.fail_after(50):
        for i in range(3):
            assert_echoed(await echo(gw, token, f"m-{i}"), f"m-{i}", f"echo #{i}")
        failed = await raw_call(gw.mcp_url, token, "tools/call", {"name": "fail", "arguments": {}})
        assert failed.status == 200 and failed.result.get("isError") is True, f"fail: {failed.describe()}"
        unauthenticated = await echo(gw, None, "no-token")
        assert unauthenticated.status == 401, f"echo without a token: {unauthenticated.describe()}"
        add = await raw_call(gw.mcp_url, token, "tools/call", {"name": "add", "arguments": {"a": 1, "b": 2}})
        assert add.status == 200 and add.result["content"][0]["text"] == "3", f"add: {add.describe()}"
        assert_rate_limited(await raw_call(gw.mcp_url, token, "tools/call", {"name": "add", "arguments": {"a": 1, "b": 2}}),
                            limit, "the second add")
        denied = await raw_call(gw.mcp_url, token, "tools/call", {"name": "delete_item", "arguments": {"id": "1"}})
        assert denied.status == 200 and "error" in denied.response, f"delete_item (denied by policy): {denied.describe()}"

        async with wire.client() as http:
            # A session-era session, open while we scrape (with the key: /mcp requires it).
            init = wire.request("initialize", {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": wire.CLIENT_INFO})
            opened = await wire.post(http, gw.mcp_url, init, bearer(token))
            assert opened.status == 200, f"initialize: {opened.describe()}"
            session_id = opened.headers.get(wire.SESSION_HEADER)
            assert session_id, f"no session id: {opened.describe()}"
            note = await wire.post(http, gw.mcp_url, {"jsonrpc": "2.0", "method": "notifications/initialized"},
                                   {**bearer(token), wire.SESSION_HEADER: session_id, wire.VERSION_HEADER: "2025-11-25"})
            assert note.status == 202, note.describe()
            metrics = await scrape(gw)

            # The MCP port does not serve metrics.
            on_mcp = await http.get(f"{gw.base_url}/metrics", headers=bearer(token))
            assert on_mcp.status_code != 200 and "gatehouse_requests_total" not in on_mcp.text, (
                f"GET /metrics on the MCP port -> HTTP {on_mcp.status_code}: {on_mcp.text[:300]}"
            )
            assert on_mcp.status_code == 404, f"GET /metrics on the MCP port -> HTTP {on_mcp.status_code} (expected 404)"

    problems: list[str] = []

    def expect(what: str, got: Any, want: Any) -> None:
        if got != want:
            problems.append(f"{what}: expected {want!r}, got {got!r}")

    requests = "gatehouse_requests_total"
    expect(f'{requests} echo ok', metrics.value(requests, **call, server=SERVER, gen_ai_tool_name="echo", outcome="ok"), 3)
    expect(f'{requests} fail tool_error', metrics.value(requests, **call, server=SERVER, gen_ai_tool_name="fail", outcome="tool_error"), 1)
    expect(f'{requests} add ok', metrics.value(requests, **call, server=SERVER, gen_ai_tool_name="add", outcome="ok"), 1)
    expect(f'{requests} add rate_limited', metrics.value(requests, **call, server=SERVER, gen_ai_tool_name="add", outcome="rate_limited"), 1)
    # The denied call was routed to `demo` (the decision log says so): its server label is demo too.
    expect(f'{requests} delete_item denied', metrics.total(requests, **call, gen_ai_tool_name="delete_item", outcome="denied"), 1)
    expect(f'{requests} delete_item denied, server label',
           [ls.get("server") for ls, _ in metrics.find(requests, gen_ai_tool_name="delete_item")], [SERVER])
    expect(f'{requests} delete_item not ok', metrics.total(requests, gen_ai_tool_name="delete_item", outcome="ok"), 0)
    for series, _ in metrics.find(requests):
        if series.get("outcome") not in ("ok", "error", "tool_error", "denied", "rate_limited"):
            problems.append(f"{requests} with an undocumented outcome: {series}")
    expect("gatehouse_rate_limited_total{limit}", metrics.value("gatehouse_rate_limited_total", limit=limit), 1)
    expect("gatehouse_auth_failures_total{reason=missing}",
           metrics.value("gatehouse_auth_failures_total", endpoint=ENDPOINT, reason="missing"), 1)
    expect("gatehouse_http_requests_total{status=401}",
           metrics.value("gatehouse_http_requests_total", endpoint=ENDPOINT, method="POST", status="401"), 1)
    expect("gatehouse_http_requests_total{status=429}",
           metrics.value("gatehouse_http_requests_total", endpoint=ENDPOINT, method="POST", status="429"), 1)
    ok_http = metrics.value("gatehouse_http_requests_total", endpoint=ENDPOINT, method="POST", status="200") or 0
    if ok_http < 7:  # 3 echo + fail + add + delete_item + initialize
        problems.append(f"gatehouse_http_requests_total{{status=200}}: expected >= 7, got {ok_http}")
    expect("gatehouse_policy_decisions_total{request,deny}", metrics.value("gatehouse_policy_decisions_total", stage="request", decision="deny"), 1)
    allowed = metrics.value("gatehouse_policy_decisions_total", stage="request", decision="allow") or 0
    if allowed < 6:  # 3 echo + fail + 2 add (the policy decides before the rate limit)
        problems.append(f"gatehouse_policy_decisions_total{{request,allow}}: expected >= 6, got {allowed}")
    expect("gatehouse_policy_decisions_total{request,error}", metrics.value("gatehouse_policy_decisions_total", stage="request", decision="error") or 0, 0)
    try:
        evaluations = assert_histogram(metrics, "gatehouse_policy_evaluation_seconds", stage="request")
        if evaluations < 7:
            problems.append(f"gatehouse_policy_evaluation_seconds_count{{request}}: expected >= 7, got {evaluations}")
    except AssertionError as error:
        problems.append(str(error))
    try:
        expect("mcp_server_operation_duration_seconds_count{echo, ok}",
               assert_histogram(metrics, "mcp_server_operation_duration_seconds", **call, gen_ai_tool_name="echo", error_type=""), 3)
    except AssertionError as error:
        problems.append(str(error))
    operation_types = {ls.get("error_type") for ls, _ in metrics.find("mcp_server_operation_duration_seconds_count", gen_ai_tool_name="fail")}
    expect("mcp_server_operation_duration_seconds error_type of fail", operation_types, {"tool_error"})
    try:
        # 3 echo + fail + add reached the upstream; the rate-limited add and the denied delete_item did not.
        expect("gatehouse_upstream_duration_seconds_count{tools/call}",
               assert_histogram(metrics, "gatehouse_upstream_duration_seconds", server=SERVER, mcp_method_name="tools/call"), 5)
    except AssertionError as error:
        problems.append(str(error))
    expect("gatehouse_upstream_ready{demo}", metrics.value("gatehouse_upstream_ready", server=SERVER), 1)
    expect("gatehouse_sessions_active{/mcp}", metrics.value("gatehouse_sessions_active", endpoint=ENDPOINT), 1)
    if metrics.value("gatehouse_streams_active", endpoint=ENDPOINT) is None:
        problems.append("gatehouse_streams_active{/mcp}: missing")
    for name, kind in (("gatehouse_requests_total", "counter"), ("mcp_server_operation_duration_seconds", "histogram"),
                       ("gatehouse_upstream_duration_seconds", "histogram"), ("gatehouse_sessions_active", "gauge"),
                       ("gatehouse_upstream_ready", "gauge"), ("gatehouse_rate_limited_total", "counter"),
                       ("gatehouse_streams_active", "gauge"), ("gatehouse_config_info", "gauge")):
        expect(f"# TYPE {name}", metrics.types.get(name), kind)
    assert not problems, "metrics after known traffic:\n  " + "\n  ".join(problems) + f"\n--- /metrics ---\n{metrics.text}"
    gw.alive()


# --- 5. POST /policy/reload and /status -----------------------------------------------------------

POLICY_V1 = """package gatehouse

import rego.v1

default decision := true

decision := {"allow": false, "reasons": ["no deletes"]} if input.request.tool == "delete_item"
"""

BROKEN = """package gatehouse

import rego.v1

decision := {"allow": true if {
"""

POLICY_V2 = """package gatehouse

import rego.v1

default decision := true

decision := {"allow": false, "reasons": ["echo is off"]} if input.request.tool == "echo"
"""


async def outcome(gw: OpsGateway, token: str, tool: str, arguments: dict[str, Any]) -> str:
    reply = await raw_call(gw.mcp_url, token, "tools/call", {"name": tool, "arguments": arguments})
    assert reply.status == 200, reply.describe()
    response = reply.response
    return "allowed" if "result" in response else f"refused {response['error']['code']}"


async def test_admin_policy_reload(gateways: Callable[..., OpsGateway]) -> None:
    gw = gateways(admin=True, rego=POLICY_V1, keys=("alice",))
    token = gw.keys["alice"]
    with anyio.fail_after(45):
        status = await admin_get(gw, "/status")
        assert status.status_code == 200, f"GET /status -> HTTP {status.status_code}: {status.text[:300]}"
        body = status.json()
        assert body.get("gateway") == "ops-e2e", f"/status gateway: {body}"
        assert body.get("servers") == {SERVER: "ready"}, f"/status servers: {body}"
        v1 = body.get("policyVersion")
        assert isinstance(v1, str) and v1, f"/status has no policyVersion with a Rego policy: {body}"
        assert await outcome(gw, token, "echo", {"message": "x"}) == "allowed"
        assert (await outcome(gw, token, "delete_item", {"id": "1"})).startswith("refused")

        gw.write_policy(BROKEN)
        refused = await admin_post(gw, "/policy/reload")
        assert refused.status_code == 409, f"POST /policy/reload with a broken policy -> HTTP {refused.status_code}: {refused.text[:500]}"
        answer = refused.json()
        assert isinstance(answer.get("error"), str) and answer["error"], f"409 body without the compile error: {answer}"
        assert "policy.rego" in answer["error"], f"the compile error should name the file: {answer['error']!r}"
        assert answer.get("policyVersion") == v1, f"409 body should carry the old version {v1!r}: {answer}"
        gw.alive()
        # The old policy keeps deciding.
        assert await outcome(gw, token, "echo", {"message": "x"}) == "allowed", "after a refused reload"
        assert (await outcome(gw, token, "delete_item", {"id": "2"})).startswith("refused"), "after a refused reload"
        assert (await admin_get(gw, "/status")).json().get("policyVersion") == v1, "/status after a refused reload"

        gw.write_policy(POLICY_V2)
        reloaded = await admin_post(gw, "/policy/reload")
        assert reloaded.status_code == 200, f"POST /policy/reload with a good policy -> HTTP {reloaded.status_code}: {reloaded.text[:500]}"
        v2 = reloaded.json().get("policyVersion")
        assert isinstance(v2, str) and v2 and v2 != v1, f"the new policyVersion {v2!r} (old {v1!r})"
        assert (await outcome(gw, token, "echo", {"message": "x"})).startswith("refused"), "the new policy denies echo"
        assert await outcome(gw, token, "delete_item", {"id": "3"}) == "allowed", "the new policy allows delete_item"
        after = (await admin_get(gw, "/status")).json()
        assert after.get("policyVersion") == v2, f"/status after the reload should show {v2!r}: {after}"

        metrics = await scrape(gw)
        reloads = {result: metrics.value("gatehouse_policy_reloads_total", result=result) for result in ("refused", "success")}
        assert reloads == {"refused": 1, "success": 1}, f"gatehouse_policy_reloads_total: {reloads}\n{metrics.dump('gatehouse_policy_reloads')}"
    assert [c["params"]["arguments"] for c in gw.upstream_calls("delete_item")] == [{"id": "3"}]
    gw.alive()


async def test_admin_status_without_policy_and_not_on_mcp_port(gateways: Callable[..., OpsGateway]) -> None:
    gw = gateways(admin=True, keys=("alice",))
    with anyio.fail_after(30):
        status = await admin_get(gw, "/status")
        assert status.status_code == 200, status.text
        body = status.json()
        assert body.get("servers") == {SERVER: "ready"} and "policyVersion" not in body, f"/status without a policy: {body}"
        async with wire.client() as http:
            for path in ("/metrics", "/status"):
                response = await http.get(f"{gw.base_url}{path}", headers=bearer(gw.keys["alice"]))
                assert response.status_code == 404, f"GET {path} on the MCP port -> HTTP {response.status_code}: {response.text[:200]}"
            response = await http.post(f"{gw.base_url}/policy/reload", headers=bearer(gw.keys["alice"]))
            assert response.status_code in (404, 405), f"POST /policy/reload on the MCP port -> HTTP {response.status_code}"
    gw.alive()


# --- 6. configuration errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limit", "named"),
    [
        ({"name": "no-rate", "burst": 3}, "requestsPerSecond"),
        ({"name": "bad-key", "key": ["identity", "user"], "requestsPerSecond": 1, "burst": 3}, "user"),
    ],
    ids=["missing-requestsPerSecond", "unknown-key-dimension"],
)
def test_validate_rejects_bad_rate_limits(scratch_dir: Path, limit: dict[str, Any], named: str) -> None:
    require_binary(GATEHOUSE_BIN, "gatehouse")
    upstream = {"stdio": {"command": str(DEMO_BIN), "args": ["--stdio"]}}
    good = scratch_dir / "good.yaml"
    good.write_text(config_yaml(free_port(), upstream, rate_limits=[{"name": "ok", "requestsPerSecond": 1, "burst": 2}],
                                admin_port=free_port()))
    accepted = gatehouse("validate", str(good), check=False)
    assert accepted.returncode == 0, f"`gatehouse validate` refused a good config: {accepted.stdout}{accepted.stderr}\n{good.read_text()}"
    bad = scratch_dir / "bad.yaml"
    bad.write_text(config_yaml(free_port(), upstream, rate_limits=[limit]))
    result = gatehouse("validate", str(bad), check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 1, f"`gatehouse validate` on {limit}: exit {result.returncode}, expected 1: {output}"
    assert named in output, f"`gatehouse validate` should name {named!r}: {output}"
    assert re.search(r"rate ?limit", output, re.IGNORECASE), f"`gatehouse validate` should say it is about a rate limit: {output}"
    assert re.search(r"bad\.yaml:\d+:\d+", output), f"`gatehouse validate` should point at file:line:column: {output}"
