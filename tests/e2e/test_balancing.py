"""Several endpoints per upstream server (`spec.http.urls`), balancing, health checks and outlier
detection, end to end (/work/notes/ops2-spec.md section 1, admin GET /upstreams from section 3).

Each test starts its own pool members (member_upstream.py: the Python SDK over Streamable HTTP,
tool `whoami` answering the member's instance name, so every answer says who served it), its own
gateway (`spec.upstream: pool`, no auth) and its admin listener on free ports.

1. round-robin (explicit, and as the default): 40 stateless calls over two members -> 15..25 each.
2. least-requests: member A answers after 2 s, B at once; eight callers keep calls in flight for
   3 s -> A serves at most a fifth of them (round robin would give it half).
3. session affinity: session-era members; each SDK ClientSession (2025-11-25) stays on one member
   for its 10 calls; new sessions are balanced (four sessions use both members).
4. failover (active health checks, HTTP path probe and MCP probe): member A killed -> 20 stateless
   calls (tools/call and tools/list) all succeed on B; GET /upstreams shows A unhealthy and
   gatehouse_upstream_endpoint_healthy{url=A} 0; A restarted on its port -> healthy again within
   ~5 s and serving again.
   Health by path decides even while the member still answers MCP; all members unhealthy -> fail
   open (every member is tried).
   Outlier detection: connection failures eject A; while ejected it gets nothing even though it
   is back; after ejectionSeconds it serves again.
5. metrics: gatehouse_upstream_endpoint_requests_total{server,url} per member grows by exactly the
   calls that member answered; GET /upstreams `requests` too; the document's shape.
6. `gatehouse validate`: `url` and `urls` together, `urls: []`, `balance: random` are refused
   with a message naming them (a good two-member config passes).

Known failures against a binary are written up in /work/notes/balancing-failures.md.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
import wire
from auth_e2e import gatehouse
from conftest import GATEHOUSE_BIN, HERE, Proc, _yaml, free_port, require_binary, wait_http_200
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from test_operations import Metrics, parse_metrics

pytestmark = [pytest.mark.anyio, pytest.mark.gateway_only]

MEMBER_UPSTREAM = HERE / "member_upstream.py"
SERVER = "pool"
TEST_BUDGET = 45  # seconds, each test
SDK_TIMEOUT = 20
HEALTH_INTERVAL = 1


# --- pool members -----------------------------------------------------------------------------------


@dataclass
class Member:
    """One member_upstream.py process on a fixed port (so it can be restarted on the same URL)."""

    name: str
    port: int
    log_dir: Path
    mode: str = "stateless"
    delay: float = 0.0
    health_file: Path | None = None
    proc: Proc | None = None
    started: int = 0
    old: list[Proc] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def start(self) -> float:
        """Starts the process; returns time.monotonic() when it is listening."""
        self.started += 1
        argv = [sys.executable, str(MEMBER_UPSTREAM), "--name", self.name, "--mode", self.mode,
                "--host", "127.0.0.1", "--port", str(self.port), "--delay", str(self.delay)]
        if self.health_file is not None:
            argv += ["--health-file", str(self.health_file)]
        self.proc = Proc(f"member-{self.name}-{self.started}", argv, self.log_dir)
        self.proc.wait_for_line(r"listening on http://")
        return time.monotonic()

    def kill(self) -> None:
        """SIGKILL, like a crash: no graceful close of its connections."""
        assert self.proc is not None
        try:
            os.killpg(self.proc.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.proc.stop()
        self.old.append(self.proc)
        self.proc = None

    def set_healthy(self, healthy: bool) -> None:
        """Flip what GET /healthz answers (the process keeps serving MCP either way)."""
        assert self.health_file is not None, f"member {self.name} was started without --health-file"
        if healthy:
            self.health_file.unlink(missing_ok=True)
        else:
            self.health_file.write_text("sick\n")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            self.old.append(self.proc)
            self.proc = None

    def describe(self) -> str:
        return "\n".join(p.describe() for p in [*self.old, *([self.proc] if self.proc else [])])


# --- the gateway ------------------------------------------------------------------------------------


def pool_config(port: int, admin_port: int, server_spec: dict[str, Any], *, server: str = SERVER) -> str:
    gateway = {
        "apiVersion": "gatehouse.dev/v1alpha1", "kind": "Gateway", "metadata": {"name": "balancing-e2e"},
        "spec": {
            "listen": {"bind": "127.0.0.1", "port": port},
            "upstream": server,
            "admin": {"listen": {"bind": "127.0.0.1", "port": admin_port}},
        },
    }
    mcp_server = {"apiVersion": "gatehouse.dev/v1alpha1", "kind": "MCPServer", "metadata": {"name": server},
                  "spec": {"timeouts": {"requestSeconds": 10}, **server_spec}}
    return _yaml(gateway) + "\n---\n" + _yaml(mcp_server) + "\n"


def http_spec(urls: list[str], balance: str | None = None) -> dict[str, Any]:
    http: dict[str, Any] = {"urls": urls}
    if balance is not None:
        http["balance"] = balance
    return {"http": http}


@dataclass
class PoolGateway:
    dir: Path
    port: int
    admin_port: int
    config_path: Path
    proc: Proc
    members: dict[str, Member]

    @property
    def mcp_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def describe(self) -> str:
        parts = [self.proc.describe(), f"--- {self.config_path} ---\n{self.config_path.read_text()}"]
        parts += [m.describe() for m in self.members.values()]
        return "\n".join(parts)

    def alive(self) -> None:
        assert self.proc.popen.poll() is None, f"the gateway died\n{self.describe()}"

    def name_of(self, url: str) -> str:
        return next(m.name for m in self.members.values() if m.url == url)


@pytest.fixture
def pool(scratch_dir: Path) -> Iterator[Callable[..., PoolGateway]]:
    """pool(names, server_spec=lambda urls: {...}, mode=..., delays={...}, health_files=bool) -> PoolGateway."""
    gateways: list[PoolGateway] = []
    members: list[Member] = []

    def start(names: tuple[str, ...] = ("A", "B"), *, spec: Callable[[list[str]], dict[str, Any]],
              mode: str = "stateless", delays: dict[str, float] | None = None, health_files: bool = False) -> PoolGateway:
        require_binary(GATEHOUSE_BIN, "gatehouse")
        started: dict[str, Member] = {}
        for name in names:
            member = Member(name=name, port=free_port(), log_dir=scratch_dir, mode=mode, delay=(delays or {}).get(name, 0.0),
                            health_file=scratch_dir / f"{name}.sick" if health_files else None)
            members.append(member)
            member.start()
            started[name] = member
        port, admin_port = free_port(), free_port()
        config_path = scratch_dir / "gateway.yaml"
        config_path.write_text(pool_config(port, admin_port, spec([m.url for m in started.values()])))
        proc = Proc("gateway", [str(GATEHOUSE_BIN), "serve", "--config", str(config_path), "--port", str(port)], scratch_dir)
        gw = PoolGateway(dir=scratch_dir, port=port, admin_port=admin_port, config_path=config_path, proc=proc, members=started)
        gateways.append(gw)
        context = f"--- {config_path} ---\n{config_path.read_text()}\n"
        wait_http_200(proc, f"http://127.0.0.1:{port}/readyz", context=context)
        wait_http_200(proc, f"{gw.admin_url}/status", context=context)
        return gw

    yield start
    for gw in gateways:
        print(gw.describe())  # shown by pytest only when the test failed
        gw.proc.stop()
    for member in members:
        member.stop()


# --- calls ------------------------------------------------------------------------------------------


@dataclass
class Answer:
    member: str | None  # the instance name, None when the call failed
    reply: wire.Reply

    def describe(self) -> str:
        return self.reply.describe()


async def call(http: httpx2.AsyncClient, gw: PoolGateway, tool: str = "whoami", arguments: dict[str, Any] | None = None) -> Answer:
    """One stateless (2026-07-28) tools/call over raw HTTP: exactly one HTTP request to the gateway."""
    reply = await wire.modern_call(http, gw.mcp_url, "tools/call", {"name": tool, "arguments": arguments or {}})
    member = None
    result = result_of(reply)
    if reply.status == 200 and result is not None and not result.get("isError"):
        content = result.get("content") or []
        if content and isinstance(content[0], dict):
            member = content[0].get("text")
    return Answer(member, reply)


def result_of(reply: wire.Reply) -> dict[str, Any] | None:
    """The JSON-RPC result of a reply, or None (an error, or no response at all)."""
    for message in reversed(reply.messages):
        if isinstance(message, dict) and ("result" in message or "error" in message):
            result = message.get("result")
            return result if isinstance(result, dict) else None
    return None


async def whoami(http: httpx2.AsyncClient, gw: PoolGateway, what: str) -> str:
    answer = await call(http, gw)
    assert answer.member in gw.members, f"{what}: expected a member's name, got {answer.describe()}\n{gw.describe()}"
    return answer.member


async def whoami_n(gw: PoolGateway, n: int, what: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    async with wire.client() as http:
        for i in range(n):
            counts[await whoami(http, gw, f"{what} #{i}")] += 1
    return counts


def http_client(connections: int = 20) -> httpx2.AsyncClient:
    limits = httpx2.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx2.AsyncClient(timeout=wire.DEFAULT_TIMEOUT, trust_env=False, limits=limits)


@asynccontextmanager
async def sdk_session(url: str) -> AsyncIterator[ClientSession]:
    """A session-era SDK client (ClientSession, initialize handshake) through the gateway."""
    http = httpx2.AsyncClient(timeout=httpx2.Timeout(30.0, read=60.0), trust_env=False)
    async with http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write, read_timeout_seconds=SDK_TIMEOUT) as session:
                with anyio.fail_after(SDK_TIMEOUT):
                    init = await session.initialize()
                assert init.protocol_version == "2025-11-25", f"negotiated {init.protocol_version}"
                yield session


# --- admin ------------------------------------------------------------------------------------------


async def upstreams(gw: PoolGateway) -> dict[str, Any]:
    async with wire.client() as http:
        response = await http.get(f"{gw.admin_url}/upstreams")
    assert response.status_code == 200, f"GET /upstreams on the admin port -> HTTP {response.status_code}: {response.text[:500]}"
    return response.json()


def endpoint_entry(document: dict[str, Any], url: str) -> dict[str, Any]:
    server = (document.get("servers") or {}).get(SERVER)
    assert isinstance(server, dict), f"GET /upstreams has no server {SERVER!r}: {document}"
    entries = [e for e in server.get("endpoints") or [] if isinstance(e, dict) and e.get("url") == url]
    assert len(entries) == 1, f"GET /upstreams: expected one endpoint with url {url!r} under {SERVER!r}: {document}"
    return entries[0]


async def wait_endpoint(gw: PoolGateway, member: Member, predicate: Callable[[dict[str, Any]], bool], timeout: float,
                        what: str) -> float:
    """Polls GET /upstreams until `predicate(member's entry)`; returns the seconds it took."""
    started = time.monotonic()
    last: dict[str, Any] = {}
    while True:
        document = await upstreams(gw)
        last = endpoint_entry(document, member.url)
        if predicate(last):
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not within {timeout:.1f}s; last GET /upstreams: {document}\n{gw.describe()}")
        await anyio.sleep(0.1)


async def scrape(gw: PoolGateway) -> Metrics:
    async with wire.client() as http:
        response = await http.get(f"{gw.admin_url}/metrics")
    assert response.status_code == 200, f"GET /metrics on the admin port -> HTTP {response.status_code}: {response.text[:500]}"
    return parse_metrics(response.text)


REQUESTS_METRIC = "gatehouse_upstream_endpoint_requests_total"
HEALTHY_METRIC = "gatehouse_upstream_endpoint_healthy"


# --- 1. round robin ---------------------------------------------------------------------------------


@pytest.mark.parametrize("balance", ["round-robin", None], ids=["explicit", "default"])
async def test_round_robin_spreads_stateless_calls(pool: Callable[..., PoolGateway], balance: str | None) -> None:
    gw = pool(spec=lambda urls: http_spec(urls, balance))
    with anyio.fail_after(TEST_BUDGET):
        counts = await whoami_n(gw, 40, "stateless call")
    assert set(counts) == {"A", "B"} and all(15 <= counts[m] <= 25 for m in ("A", "B")), (
        f"40 stateless calls over two members with balance {balance or '(default: round-robin)'}: "
        f"expected 15..25 each, got {dict(counts)}"
    )
    gw.alive()


# --- 2. least requests ------------------------------------------------------------------------------


async def test_least_requests_prefers_the_member_with_fewer_calls_in_flight(pool: Callable[..., PoolGateway]) -> None:
    """Eight callers, each calling again as soon as its answer arrives, for 3 s. A call on A takes
    2 s, on B a few milliseconds: whenever a call is balanced, A has calls in flight and B (almost)
    none, so least-requests sends it to B. A gets a call only when B momentarily has as many in
    flight as A (at most a handful over the window), so it serves far below a fifth of the calls,
    whereas round robin would hand it every other one (about half)."""
    gw = pool(spec=lambda urls: http_spec(urls, "least-requests"), delays={"A": 2.0})
    window = 3.0
    counts: Counter[str] = Counter()
    failures: list[str] = []
    in_flight_on_a: list[int] = []
    with anyio.fail_after(TEST_BUDGET):
        async with http_client(connections=20) as http:
            stop_at = time.monotonic() + window

            async def caller() -> None:
                while time.monotonic() < stop_at:
                    answer = await call(http, gw)
                    if answer.member in gw.members:
                        counts[answer.member] += 1
                    else:
                        failures.append(answer.describe())

            async def watch() -> None:  # what the admin API says while the load runs (diagnostics)
                while time.monotonic() < stop_at:
                    try:
                        entry = endpoint_entry(await upstreams(gw), gw.members["A"].url)
                        in_flight_on_a.append(int(entry.get("inFlight", -1)))
                    except AssertionError:
                        pass
                    await anyio.sleep(0.5)

            async with anyio.create_task_group() as group:
                for _ in range(8):
                    group.start_soon(caller)
                group.start_soon(watch)
    total = counts["A"] + counts["B"]
    assert not failures, f"{len(failures)} calls failed under load, e.g. {failures[:3]}"
    assert total >= 20, f"only {total} calls completed in {window}s: {dict(counts)}"
    assert counts["A"] <= total / 5, (
        f"least-requests with A slow (2 s) and B fast, eight callers for {window}s: A should serve at most a fifth of the "
        f"calls, got {dict(counts)} (A's inFlight seen on GET /upstreams: {in_flight_on_a})"
    )
    gw.alive()


# --- 3. session affinity ----------------------------------------------------------------------------


async def test_session_affinity_for_session_era_members(pool: Callable[..., PoolGateway]) -> None:
    """Session-era members (they refuse 2026-07-28, so the gateway opens upstream sessions):
    every call of one client session lands on the member holding its upstream session; new
    sessions are balanced, so four sessions use both members."""
    gw = pool(spec=lambda urls: http_spec(urls, "round-robin"), mode="session")
    served: list[list[str]] = []
    with anyio.fail_after(TEST_BUDGET):
        for _ in range(4):
            async with sdk_session(gw.mcp_url) as session:
                names = []
                for i in range(10):
                    with anyio.fail_after(SDK_TIMEOUT):
                        result = await session.call_tool("whoami", {})
                    assert not result.is_error and result.content, f"whoami #{i}: {result}"
                    names.append(result.content[0].text)  # type: ignore[union-attr]
                served.append(names)
    for index, names in enumerate(served):
        assert len(set(names)) == 1 and names[0] in gw.members, (
            f"session {index}: its 10 calls should all land on the member holding its upstream session, got {names}"
        )
    assert {names[0] for names in served} == {"A", "B"}, (
        f"new sessions are balanced (round robin): four sessions should use both members, got {[n[0] for n in served]}"
    )
    gw.alive()


# --- 4. failover, health checks, outlier detection --------------------------------------------------


def health_check(probe: str, **extra: Any) -> dict[str, Any]:
    check: dict[str, Any] = {"intervalSeconds": HEALTH_INTERVAL, "timeoutSeconds": 1, "unhealthyThreshold": 2, "healthyThreshold": 1}
    if probe == "path":
        check["path"] = "/healthz"
    check.update(extra)
    return check


RETRY = {"retries": 1, "retryBackoffSeconds": 0.05}


@pytest.mark.parametrize("probe", ["path", "mcp"])
async def test_failover_when_a_member_dies_and_recovery_when_it_returns(pool: Callable[..., PoolGateway], probe: str) -> None:
    """Active health checks every second (GET /healthz, or without a path an MCP probe:
    server/discover for these 2026-07-28 members). A refused connection never reached the member,
    so the gateway retries it on the other member whatever the method (resilience.retries 1)."""
    gw = pool(spec=lambda urls: {**http_spec(urls, "round-robin"), "healthCheck": health_check(probe), "resilience": RETRY})
    a, b = gw.members["A"], gw.members["B"]
    with anyio.fail_after(TEST_BUDGET):
        before = await whoami_n(gw, 6, "before the kill")
        assert set(before) == {"A", "B"}, f"both members serve before the kill: {dict(before)}"

        a.kill()
        failures: list[str] = []
        served: Counter[str] = Counter()
        async with wire.client() as http:
            for i in range(20):
                if i % 2 == 0:
                    answer = await call(http, gw)
                    if answer.member == "B":
                        served["B"] += 1
                    else:
                        failures.append(f"#{i} tools/call whoami: {answer.describe()}")
                else:
                    reply = await wire.modern_call(http, gw.mcp_url, "tools/list", {})
                    tools = (result_of(reply) or {}).get("tools") or []
                    if reply.status != 200 or "whoami" not in [t.get("name") for t in tools]:
                        failures.append(f"#{i} tools/list: {reply.describe()}")
        assert not failures, (
            f"after member A was killed, {len(failures)} of 20 calls failed; a refused connection should be retried on B "
            f"(any method: the request never reached A):\n  " + "\n  ".join(failures[:6])
        )

        took = await wait_endpoint(gw, a, lambda e: e.get("healthy") is False, 2 * HEALTH_INTERVAL + 4,
                                   f"GET /upstreams shows the killed member A unhealthy ({probe} probe)")
        metrics = await scrape(gw)
        assert metrics.value(HEALTHY_METRIC, server=SERVER, url=a.url) == 0, (
            f"{HEALTHY_METRIC}{{url={a.url}}} after A was marked unhealthy ({took:.1f}s):\n{metrics.dump(HEALTHY_METRIC)}"
        )
        assert metrics.value(HEALTHY_METRIC, server=SERVER, url=b.url) == 1, metrics.dump(HEALTHY_METRIC)
        while_down = await whoami_n(gw, 6, "while A is marked unhealthy")
        assert dict(while_down) == {"B": 6}, f"an unhealthy member gets no traffic: {dict(while_down)}"

        listening = a.start()  # the same port, so the same URL
        back = await wait_endpoint(gw, a, lambda e: e.get("healthy") is True and not e.get("ejected"), 6,
                                   f"the restarted member A healthy again ({probe} probe, healthyThreshold 1, every {HEALTH_INTERVAL}s)")
        print(f"A unhealthy {took:.1f}s after the 20 calls; healthy again {time.monotonic() - listening:.1f}s after restarting "
              f"(polled for {back:.1f}s)")
        after = await whoami_n(gw, 10, "after A is back")
        assert after["A"] >= 3, f"A gets traffic again once healthy (round robin, 10 calls): {dict(after)}"
        metrics = await scrape(gw)
        assert metrics.value(HEALTHY_METRIC, server=SERVER, url=a.url) == 1, metrics.dump(HEALTHY_METRIC)
    gw.alive()


async def test_health_path_decides_and_all_unhealthy_fails_open(pool: Callable[..., PoolGateway]) -> None:
    """GET /healthz answering 503 takes a member out even though it still answers MCP; when every
    member is unhealthy the gateway fails open and tries them all; back to 200, back in."""
    gw = pool(spec=lambda urls: {**http_spec(urls, "round-robin"), "healthCheck": health_check("path")}, health_files=True)
    a, b = gw.members["A"], gw.members["B"]
    window = 2 * HEALTH_INTERVAL + 4
    with anyio.fail_after(TEST_BUDGET):
        await wait_endpoint(gw, a, lambda e: e.get("healthy") is True, window, "A healthy at start")
        await wait_endpoint(gw, b, lambda e: e.get("healthy") is True, window, "B healthy at start")

        a.set_healthy(False)
        await wait_endpoint(gw, a, lambda e: e.get("healthy") is False, window, "A unhealthy after its /healthz answers 503")
        only_b = await whoami_n(gw, 10, "A unhealthy")
        assert dict(only_b) == {"B": 10}, f"A's /healthz answers 503: every call should go to B, got {dict(only_b)}"

        b.set_healthy(False)
        await wait_endpoint(gw, b, lambda e: e.get("healthy") is False, window, "B unhealthy after its /healthz answers 503")
        metrics = await scrape(gw)
        assert [metrics.value(HEALTHY_METRIC, server=SERVER, url=m.url) for m in (a, b)] == [0, 0], metrics.dump(HEALTHY_METRIC)
        open_counts = await whoami_n(gw, 10, "all members unhealthy (fail open)")
        assert set(open_counts) == {"A", "B"}, (
            f"with every member unhealthy the gateway fails open and tries all members (round robin): {dict(open_counts)}"
        )

        a.set_healthy(True)
        await wait_endpoint(gw, a, lambda e: e.get("healthy") is True, window, "A healthy again after /healthz answers 200")
        only_a = await whoami_n(gw, 10, "B still unhealthy")
        assert dict(only_a) == {"A": 10}, f"A healthy, B unhealthy: every call should go to A, got {dict(only_a)}"
        b.set_healthy(True)
        await wait_endpoint(gw, b, lambda e: e.get("healthy") is True, window, "B healthy again")
        both = await whoami_n(gw, 10, "both healthy again")
        assert set(both) == {"A", "B"}, f"both healthy again: {dict(both)}"
    gw.alive()


async def test_outlier_detection_ejects_and_readmits(pool: Callable[..., PoolGateway]) -> None:
    """No active checks: connection failures from real traffic eject A (consecutiveFailures 2);
    while ejected it gets no traffic although it is running again; after ejectionSeconds it does."""
    ejection = 5
    gw = pool(spec=lambda urls: {**http_spec(urls, "round-robin"), "resilience": RETRY,
                                 "outlierDetection": {"consecutiveFailures": 2, "ejectionSeconds": ejection}})
    a = gw.members["A"]
    with anyio.fail_after(TEST_BUDGET):
        assert set(await whoami_n(gw, 4, "before the kill")) == {"A", "B"}
        a.kill()
        failures: list[str] = []
        async with wire.client() as http:
            for i in range(8):
                answer = await call(http, gw)
                if answer.member != "B":
                    failures.append(f"#{i}: {answer.describe()}")
        assert not failures, f"after A was killed, calls should be retried on B: {failures[:4]}"
        await wait_endpoint(gw, a, lambda e: e.get("ejected") is True, 3, "A ejected after connection failures")
        ejected_seen = time.monotonic()

        a.start()
        during = await whoami_n(gw, 6, "A running again but still ejected")
        still = endpoint_entry(await upstreams(gw), a.url).get("ejected")
        if still is True:  # only meaningful while the ejection lasts (it does: 5 s, a restart takes ~1 s)
            assert dict(during) == {"B": 6}, f"an ejected member gets no traffic: {dict(during)}"
        print(f"calls while ejected: {dict(during)} (still ejected afterwards: {still}, "
              f"{time.monotonic() - ejected_seen:.1f}s after the ejection was seen)")

        # The ejection began before we saw it, so it is over by ejected_seen + ejection. Whether the
        # gateway readmits A on a timer or lazily at the next pick, traffic must find A again.
        await anyio.sleep(max(0.0, ejected_seen + ejection + 0.2 - time.monotonic()))
        readmitted: Counter[str] = Counter()
        deadline = time.monotonic() + 3
        while readmitted["A"] == 0 and time.monotonic() < deadline:
            readmitted += await whoami_n(gw, 2, "probing for A after its ejection")
        assert readmitted["A"] > 0, f"A still gets no traffic {ejection + 3}s after it was ejected for {ejection}s: {dict(readmitted)}"
        after = await whoami_n(gw, 10, "after the ejection")
        assert after["A"] >= 3, f"A gets traffic again after its ejection (round robin, 10 calls): {dict(after)}"
        entry = endpoint_entry(await upstreams(gw), a.url)
        assert entry.get("ejected") is False and entry.get("healthy") is True, f"GET /upstreams for A after its ejection: {entry}"
    gw.alive()


# --- 5. metrics and the admin document --------------------------------------------------------------


async def test_endpoint_metrics_and_admin_upstreams(pool: Callable[..., PoolGateway]) -> None:
    gw = pool(spec=lambda urls: http_spec(urls, "round-robin"))
    a, b = gw.members["A"], gw.members["B"]
    with anyio.fail_after(TEST_BUDGET):
        before = await scrape(gw)
        admin_before = await upstreams(gw)
        counts = await whoami_n(gw, 30, "counted call")
        after = await scrape(gw)
        document = await upstreams(gw)

    problems: list[str] = []
    for member in (a, b):
        grown = (after.value(REQUESTS_METRIC, server=SERVER, url=member.url) or 0) - (before.value(REQUESTS_METRIC, server=SERVER, url=member.url) or 0)
        if grown != counts[member.name]:
            problems.append(f"{REQUESTS_METRIC}{{server={SERVER},url={member.url}}} grew by {grown}, "
                            f"but member {member.name} answered {counts[member.name]} calls")
        healthy = after.value(HEALTHY_METRIC, server=SERVER, url=member.url)
        if healthy != 1:
            problems.append(f"{HEALTHY_METRIC}{{url={member.url}}}: expected 1 (no checks, serving), got {healthy}")
        entry, entry_before = endpoint_entry(document, member.url), endpoint_entry(admin_before, member.url)
        for key, kind in (("url", str), ("healthy", bool), ("ejected", bool), ("inFlight", int), ("requests", int)):
            if not isinstance(entry.get(key), kind):
                problems.append(f"GET /upstreams endpoint {member.name}: {key!r} should be {kind.__name__}: {entry}")
        if isinstance(entry.get("requests"), int) and isinstance(entry_before.get("requests"), int):
            if entry["requests"] - entry_before["requests"] != counts[member.name]:
                problems.append(f"GET /upstreams requests of {member.name} grew by {entry['requests'] - entry_before['requests']}, "
                                f"it answered {counts[member.name]}")
        if entry.get("healthy") is not True or entry.get("ejected") is not False or entry.get("inFlight") != 0:
            problems.append(f"GET /upstreams endpoint {member.name} at rest: {entry}")
    if after.types.get(REQUESTS_METRIC) != "counter":
        problems.append(f"# TYPE {REQUESTS_METRIC}: {after.types.get(REQUESTS_METRIC)!r}")
    if after.types.get(HEALTHY_METRIC) != "gauge":
        problems.append(f"# TYPE {HEALTHY_METRIC}: {after.types.get(HEALTHY_METRIC)!r}")
    server = document.get("servers", {}).get(SERVER, {})
    if server.get("ready") is not True or server.get("breaker") not in ("closed", "open", "half-open") or server.get("inFlight") != 0:
        problems.append(f"GET /upstreams server {SERVER}: {server}")
    if sorted(e.get("url") for e in server.get("endpoints") or []) != sorted([a.url, b.url]):
        problems.append(f"GET /upstreams endpoints should be exactly the two members: {server}")
    assert not problems, (f"after 30 calls ({dict(counts)}):\n  " + "\n  ".join(problems)
                          + f"\n--- /metrics ---\n{after.dump('gatehouse_upstream_endpoint')}\n--- /upstreams ---\n{document}")
    gw.alive()


# --- 6. configuration errors ------------------------------------------------------------------------

A_URL = "http://127.0.0.1:9001/mcp"
B_URL = "http://127.0.0.1:9002/mcp"


def validate(scratch_dir: Path, name: str, server_spec: dict[str, Any]) -> tuple[int, str]:
    path = scratch_dir / f"{name}.yaml"
    path.write_text(pool_config(free_port(), free_port(), server_spec))
    result = gatehouse("validate", str(path), check=False)
    return result.returncode, result.stdout + result.stderr


def test_validate_accepts_a_pool(scratch_dir: Path) -> None:
    require_binary(GATEHOUSE_BIN, "gatehouse")
    spec = {"http": {"urls": [A_URL, B_URL], "balance": "least-requests"}, "healthCheck": health_check("path"),
            "outlierDetection": {"consecutiveFailures": 3, "ejectionSeconds": 10}}
    code, output = validate(scratch_dir, "good", spec)
    assert code == 0, f"`gatehouse validate` refused a good pool config (exit {code}): {output}"


@pytest.mark.parametrize(
    ("http", "named"),
    [
        ({"url": A_URL, "urls": [A_URL, B_URL]}, (r"\burl\b", r"\burls\b")),
        ({"urls": []}, (r"\burls\b",)),
        ({"urls": [A_URL, B_URL], "balance": "random"}, (r"\brandom\b", r"balance|round-robin|least-requests")),
    ],
    ids=["url-and-urls", "empty-urls", "unknown-balance"],
)
def test_validate_rejects_bad_pools(scratch_dir: Path, http: dict[str, Any], named: tuple[str, ...]) -> None:
    require_binary(GATEHOUSE_BIN, "gatehouse")
    code, output = validate(scratch_dir, "bad", {"http": http})
    assert code != 0, f"`gatehouse validate` accepted spec.http {http}: {output}"
    for pattern in named:
        assert re.search(pattern, output), f"`gatehouse validate` on spec.http {http} should name /{pattern}/: {output}"
    assert re.search(r"bad\.yaml:\d+:\d+", output), f"`gatehouse validate` should point at file:line:column: {output}"
