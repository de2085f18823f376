"""Zero-downtime reload of the whole config and the admin API (issue 7, ops2 spec sections 2 and 3),
end to end: a real gateway (`gatehouse serve --config FILE`, listen and admin ports taken from the
file itself, so a change of `spec.listen` is a real change), real upstreams (the Swift demo server
over HTTP and stdio, and `upstream_server.py`, the Python SDK's own server), raw HTTP (httpx2) where
status codes matter and the official SDK's `ClientSession` where a session-era client is needed.

Endpoints are `Gateway.spec.endpoints[]` (there is no separate MCPEndpoint kind in the config format).

1. Reload under load: 4 loops of stateless `tools/call echo` for ~8 s while the config file is
   rewritten four times (add an MCPServer + endpoint /extra, tighten a rate limit, remove /extra,
   relax the limit), picked up by the file watcher, SIGHUP and `POST /reload`: no call fails, each
   reload gives a new version and the next generation, /extra answers while configured and 404 after.
2. A session-era SDK session opened before reloads keeps working after them (HTTP and stdio
   upstreams); an unchanged stdio server keeps its child process, a removed one's child goes away
   (after `spec.shutdown.gracePeriodSeconds`, which is how long a retired server is kept).
3. In-flight: a slow call on /extra finishes after /extra is removed by a reload.
4. Refused reloads (`POST /reload` -> 422, `--no-watch` so counters are exact): invalid YAML, an
   endpoint naming an unknown server (also through SIGHUP), a Rego file that does not compile (a new
   one, and a changed one under a running policy); the old config keeps serving;
   `gatehouse_config_reloads_total{result="refused"}`. The file-watch path: a bad file is refused
   (logged), the old version serves, a good one is taken.
5. Changes that need a restart (spec.listen, spec.admin, spec.sessions.key) -> 422 saying "restart".
6. `POST /reload` with nothing changed -> `changed: false`; `--no-watch` really stops the watcher;
   five concurrent `POST /reload` apply one change once.
7. File watch: a valid change (a tool-scoped rate limit) is live within 5 s without any signal.
8. The admin API: token (literal and from env), 401 + WWW-Authenticate, /healthz and /readyz open;
   /config redacted; /config/version (= SHA-256 of the file); /status; /upstreams (breaker state
   with and without a circuit breaker); /sessions; `gatehouse validate` and `serve` refuse a
   non-loopback admin bind without a token, and a token under 16 characters.

Gateway bugs found are written up in /work/notes/reload-failures.md.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
import wire
from conftest import (
    DEMO_BIN,
    GATEHOUSE_BIN,
    Proc,
    Upstream,
    _yaml,
    free_port,
    require_binary,
    start_demo_http,
    start_python_http,
    wait_http_200,
)
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from test_operations import BROKEN, Metrics, assert_echoed, assert_rate_limited, parse_metrics, raw_call

pytestmark = [pytest.mark.anyio, pytest.mark.gateway_only]

TEST_BUDGET = 40  # seconds per test (anyio.fail_after); conftest's SIGALRM guard is the backstop
SDK_TIMEOUT = 15
ADMIN_TOKEN = "admin-token-0123456789abcdef"
UPSTREAM_SECRET = "very-secret-upstream-value"
REFUSED_LOG = re.compile(r"config reload refused", re.IGNORECASE)

ALLOW_ALL_POLICY = """package gatehouse

import rego.v1

default decision := true
"""

DENY_ADD_POLICY = """package gatehouse

import rego.v1

default decision := true

decision := {"allow": false, "reasons": ["add is off"]} if input.request.tool == "add"
"""

_DEFAULT = object()  # "use the gateway's admin token"


# --- the config -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cfg:
    """One config file's content; `render()` gives the YAML. Change with `dataclasses.replace`."""

    port: int
    admin_port: int
    servers: dict[str, dict[str, Any]]  # name -> MCPServer spec (without timeouts)
    endpoints: tuple[tuple[str, tuple[str, ...]], ...]  # (path, servers)
    admin_bind: str = "127.0.0.1"
    admin_token: Any = None  # a literal string or {"valueFrom": ...}
    rate_limits: tuple[dict[str, Any], ...] = ()
    policy: dict[str, Any] | None = None
    sessions_key: str | None = None
    grace_seconds: int | None = None  # spec.shutdown.gracePeriodSeconds: also how long a retired server is kept
    name: str = "reload-e2e"

    def render(self) -> str:
        spec: dict[str, Any] = {"listen": {"bind": "127.0.0.1", "port": self.port}}
        admin: dict[str, Any] = {"listen": {"bind": self.admin_bind, "port": self.admin_port}}
        if self.admin_token is not None:
            admin["token"] = self.admin_token
        spec["admin"] = admin
        if self.sessions_key is not None:
            spec["sessions"] = {"key": self.sessions_key}
        if self.grace_seconds is not None:
            spec["shutdown"] = {"gracePeriodSeconds": self.grace_seconds}
        if self.policy is not None:
            spec["policy"] = self.policy
        if self.rate_limits:
            spec["rateLimits"] = list(self.rate_limits)
        spec["endpoints"] = [{"path": path, "servers": list(servers)} for path, servers in self.endpoints]
        documents = [{"apiVersion": "gatehouse.dev/v1alpha1", "kind": "Gateway", "metadata": {"name": self.name}, "spec": spec}]
        for name, server_spec in self.servers.items():
            documents.append({"apiVersion": "gatehouse.dev/v1alpha1", "kind": "MCPServer", "metadata": {"name": name},
                              "spec": {**server_spec, "timeouts": {"requestSeconds": 10}}})
        return "\n---\n".join(_yaml(d) for d in documents) + "\n"

    def with_server(self, name: str, spec: dict[str, Any], path: str) -> Cfg:
        return dataclasses.replace(self, servers={**self.servers, name: spec}, endpoints=(*self.endpoints, (path, (name,))))

    def without_server(self, name: str) -> Cfg:
        return dataclasses.replace(self, servers={k: v for k, v in self.servers.items() if k != name},
                                   endpoints=tuple(e for e in self.endpoints if name not in e[1]))


def add_limit(requests_per_second: float, burst: int) -> dict[str, Any]:
    return {"name": "add-limit", "requestsPerSecond": requests_per_second, "burst": burst, "tools": ["add"]}


def config_version_of(*files: Path) -> str:
    """The documented version: the first 12 hex digits of SHA-256 over the config file's bytes
    (and its policy files' bytes, when it has some)."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


# --- a gateway whose config the test rewrites ----------------------------------------------------------


@dataclass
class ReloadGateway:
    dir: Path
    cfg: Cfg
    config_path: Path
    proc: Proc
    token: str | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.cfg.port}"

    @property
    def mcp_url(self) -> str:
        return f"{self.base_url}/mcp"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.cfg.admin_port}"

    @property
    def pid(self) -> int:
        return self.proc.popen.pid

    def describe(self) -> str:
        return f"{self.proc.describe()}\n--- {self.config_path} (now) ---\n{self.config_path.read_text(errors='replace')}"

    def log(self) -> str:
        return self.proc.output(limit=1 << 20)

    def alive(self) -> None:
        assert self.proc.popen.poll() is None, f"the gateway died\n{self.describe()}"

    def write(self, content: Cfg | str) -> None:
        """Replace the config file atomically (a watcher never sees half a file). A Cfg becomes the
        gateway's `cfg` only once a test has seen it applied; see `applied()`."""
        text = content.render() if isinstance(content, Cfg) else content
        tmp = self.config_path.with_name(self.config_path.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.config_path)

    def write_file(self, relative: str, text: str) -> Path:
        path = self.dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
        return path

    def sighup(self) -> None:
        self.alive()
        os.kill(self.pid, signal.SIGHUP)

    async def admin(self, method: str, path: str, token: Any = _DEFAULT) -> httpx2.Response:
        token = self.token if token is _DEFAULT else token
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        async with wire.client() as http:
            return await http.request(method, f"{self.admin_url}{path}", headers=headers)

    async def admin_json(self, method: str, path: str) -> dict[str, Any]:
        response = await self.admin(method, path)
        assert response.status_code == 200, f"{method} {path} on the admin port -> HTTP {response.status_code}: {response.text[:800]}"
        try:
            body = response.json()
        except ValueError as error:
            raise AssertionError(f"{method} {path}: not JSON: {response.text[:800]!r}") from error
        assert isinstance(body, dict), f"{method} {path}: not a JSON object: {body!r}"
        return body

    async def version(self) -> dict[str, Any]:
        return await self.admin_json("GET", "/config/version")

    async def reload(self) -> httpx2.Response:
        with anyio.fail_after(15):
            return await self.admin("POST", "/reload")

    async def metrics(self) -> Metrics:
        response = await self.admin("GET", "/metrics")
        assert response.status_code == 200, f"GET /metrics -> HTTP {response.status_code}: {response.text[:500]}"
        return parse_metrics(response.text)

    async def reloads(self) -> dict[str, float]:
        metrics = await self.metrics()
        return {result: metrics.value("gatehouse_config_reloads_total", result=result) or 0
                for result in ("success", "refused", "unchanged")}

    async def call(self, tool: str, arguments: dict[str, Any], path: str = "/mcp",
                   http: httpx2.AsyncClient | None = None) -> wire.Reply:
        return await raw_call(f"{self.base_url}{path}", None, "tools/call", {"name": tool, "arguments": arguments}, http)

    async def echo_ok(self, message: str, path: str = "/mcp", what: str = "") -> None:
        assert_echoed(await self.call("echo", {"message": message}, path), message, what or f"echo on {path}")

    async def wait_version_change(self, old: str, timeout: float, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        current: dict[str, Any] = {}
        while time.monotonic() < deadline:
            current = await self.version()
            if current.get("version") != old:
                return current
            await anyio.sleep(0.1)
        raise AssertionError(f"{what}: /config/version still {current} after {timeout:.0f} s\n{self.describe()}")


class Lab:
    """Upstreams and gateways of one test; everything is stopped at the end (gateways first)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.gateways: list[ReloadGateway] = []
        self.upstreams: list[Proc] = []

    def demo_http(self, name: str = "demo-http") -> Upstream:
        up = start_demo_http(self.base, name)
        assert up.proc is not None
        self.upstreams.append(up.proc)
        return up

    def python_http(self, name: str = "python-http") -> Upstream:
        up = start_python_http(self.base, name)
        assert up.proc is not None
        self.upstreams.append(up.proc)
        return up

    def stdio_spec(self, role: str) -> dict[str, Any]:
        """A stdio demo server whose working directory names its role (to find its process)."""
        require_binary(DEMO_BIN, "gatehouse-demo-server")
        cwd = self.base / f"cwd-{role}"
        cwd.mkdir(exist_ok=True)
        return {"stdio": {"command": str(DEMO_BIN), "args": ["--stdio"], "env": {}, "workingDirectory": str(cwd)}}

    def gateway(self, cfg: Cfg, *, watch: bool = True, name: str = "gateway", token: str | None = None,
                env: dict[str, str] | None = None) -> ReloadGateway:
        require_binary(GATEHOUSE_BIN, "gatehouse")
        work = self.base / name
        work.mkdir(exist_ok=True)
        config_path = work / "gateway.yaml"
        config_path.write_text(cfg.render())
        argv = [str(GATEHOUSE_BIN), "serve", "--config", str(config_path)] + ([] if watch else ["--no-watch"])
        proc = Proc(name, argv, work, env=env)
        gw = ReloadGateway(dir=work, cfg=cfg, config_path=config_path, proc=proc, token=token)
        self.gateways.append(gw)
        context = f"--- {config_path} ---\n{config_path.read_text()}\n"
        wait_http_200(proc, f"{gw.base_url}/readyz", context=context)
        wait_http_200(proc, f"{gw.admin_url}/healthz", context=context)
        return gw

    def close(self) -> None:
        for gw in self.gateways:
            print(gw.describe())
            gw.proc.stop()
        for proc in self.upstreams:
            proc.stop()


@pytest.fixture
def lab(scratch_dir: Path) -> Iterator[Lab]:
    lab = Lab(scratch_dir)
    try:
        yield lab
    finally:
        lab.close()


def base_cfg(upstream_spec: dict[str, Any], **kwargs: Any) -> Cfg:
    return Cfg(port=free_port(), admin_port=free_port(), servers={"demo": upstream_spec}, endpoints=(("/mcp", ("demo",)),), **kwargs)


def processes_in(cwd: Path) -> list[int]:
    """Live (non-zombie) processes whose working directory is `cwd`."""
    found = []
    target = str(cwd.resolve())
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/cwd") != target:
                continue
            with open(f"/proc/{entry}/stat") as stat:
                state = stat.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            found.append(int(entry))
    return sorted(found)


async def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await anyio.sleep(0.1)
    raise AssertionError(f"{what} (waited {timeout:.0f} s)")


async def echo_eventually(gw: ReloadGateway, path: str, timeout: float, what: str) -> None:
    """A newly added upstream may need a moment to come up: retry until an echo on `path` passes."""
    deadline = time.monotonic() + timeout
    last = "no attempt"
    while time.monotonic() < deadline:
        reply = await gw.call("echo", {"message": "hello-extra"}, path)
        try:
            assert_echoed(reply, "hello-extra", what)
            return
        except AssertionError as error:
            last = str(error)
        await anyio.sleep(0.2)
    raise AssertionError(f"{what}: no echo on {path} within {timeout:.0f} s; last: {last}\n{gw.describe()}")


def assert_refusal(response: httpx2.Response, running: str, what: str) -> str:
    """422 {"error": "<diagnostics>", "version": "<running version>"}; returns the error text."""
    assert response.status_code == 422, f"{what}: POST /reload -> HTTP {response.status_code}, expected 422: {response.text[:1000]}"
    try:
        body = response.json()
    except ValueError as error:
        raise AssertionError(f"{what}: the 422 body is not JSON: {response.text[:800]!r}") from error
    assert isinstance(body.get("error"), str) and body["error"].strip(), f"{what}: the 422 body has no error text: {body}"
    assert body.get("version") == running, f"{what}: the 422 body should carry the running version {running!r}: {body}"
    return body["error"]


def assert_reloaded(response: httpx2.Response, what: str) -> dict[str, Any]:
    assert response.status_code == 200, f"{what}: POST /reload -> HTTP {response.status_code}, expected 200: {response.text[:1000]}"
    body = response.json()
    assert isinstance(body.get("version"), str) and isinstance(body.get("generation"), int) and isinstance(body.get("changed"), bool), (
        f"{what}: POST /reload body should be {{version, generation, changed}}: {body}"
    )
    return body


# --- 1. reload under load -------------------------------------------------------------------------------


async def test_reload_under_load(lab: Lab) -> None:
    demo = lab.demo_http("demo-http")
    extra = lab.python_http("extra-python")
    cfg0 = base_cfg({"http": {"url": demo.url}}, rate_limits=(add_limit(1000, 1000),))
    gw = lab.gateway(cfg0)
    cfg1 = cfg0.with_server("extra", {"http": {"url": extra.url}}, "/extra")  # + MCPServer, + endpoint /extra
    cfg2 = dataclasses.replace(cfg1, rate_limits=(add_limit(0.001, 1),))  # the add limit tightened
    cfg3 = cfg2.without_server("extra")  # /extra gone again
    cfg4 = dataclasses.replace(cfg3, rate_limits=(add_limit(500, 500),))  # relaxed again (not the first file's bytes)

    loops = 4
    duration = 8.0
    ok = [0] * loops
    failures: list[str] = []
    step = ["start"]
    stop = anyio.Event()
    started = time.monotonic()

    async def load(i: int) -> None:
        async with httpx2.AsyncClient(timeout=wire.DEFAULT_TIMEOUT, trust_env=False) as http:
            n = 0
            while not stop.is_set():
                message = f"loop{i}-{n}"
                n += 1
                at = time.monotonic() - started
                try:
                    reply = await gw.call("echo", {"message": message}, "/mcp", http)
                    assert_echoed(reply, message, f"{message} at {at:.2f} s (during {step[0]})")
                    ok[i] += 1
                except Exception as error:  # noqa: BLE001 (every failure is a finding)
                    failures.append(f"{type(error).__name__}: {error}")
                    await anyio.sleep(0.05)

    versions: list[dict[str, Any]] = []
    with anyio.fail_after(TEST_BUDGET):
        versions.append(await gw.version())
        assert versions[0].get("generation") == 1, f"generation at start: {versions[0]}"
        gone = await gw.call("echo", {"message": "x"}, "/extra")
        assert gone.status == 404, f"/extra before it is configured: {gone.describe()}"

        async with anyio.create_task_group() as tg:
            for i in range(loops):
                tg.start_soon(load, i)
            try:
                await anyio.sleep(1.0)

                # a) the file watcher picks up a new server and endpoint
                step[0] = "reload 1 (file watch: + /extra)"
                gw.write(cfg1)
                versions.append(await gw.wait_version_change(versions[-1]["version"], 5, step[0]))
                await echo_eventually(gw, "/extra", 5, "/extra after it was added")
                await anyio.sleep(1.0)

                # b) SIGHUP: the add limit is tightened
                step[0] = "reload 2 (SIGHUP: rate limit burst 1)"
                gw.write(cfg2)
                gw.sighup()
                versions.append(await gw.wait_version_change(versions[-1]["version"], 5, step[0]))
                first_add = await gw.call("add", {"a": 2, "b": 3})
                assert first_add.status == 200 and first_add.result["content"][0]["text"] == "5", f"add after {step[0]}: {first_add.describe()}"
                assert_rate_limited(await gw.call("add", {"a": 2, "b": 3}), "add-limit", f"the second add after {step[0]}")
                await echo_eventually(gw, "/extra", 2, f"/extra after {step[0]}")
                await anyio.sleep(1.0)

                # c) POST /reload: /extra is removed
                step[0] = "reload 3 (POST /reload: - /extra)"
                gw.write(cfg3)
                body = assert_reloaded(await gw.reload(), step[0])
                assert body["version"] != versions[-1]["version"] and body["generation"] > versions[-1]["generation"], (
                    f"{step[0]}: {body} (before: {versions[-1]})"
                )
                versions.append(await gw.version())
                assert versions[-1]["version"] == body["version"], f"/config/version {versions[-1]} after POST /reload {body}"
                removed = await gw.call("echo", {"message": "x"}, "/extra")
                assert removed.status == 404, f"/extra after it was removed: {removed.describe()}"
                await anyio.sleep(1.0)

                # d) the watcher again: the limit relaxed
                step[0] = "reload 4 (file watch: rate limit relaxed)"
                gw.write(cfg4)
                versions.append(await gw.wait_version_change(versions[-1]["version"], 5, step[0]))
                for i in range(2):
                    add = await gw.call("add", {"a": 2, "b": 3})
                    assert add.status == 200 and add.result["content"][0]["text"] == "5", f"add #{i} after {step[0]}: {add.describe()}"
                step[0] = "after the reloads"
                await anyio.sleep(max(0.5, started + duration - time.monotonic()))
            finally:
                stop.set()

        print(f"echo calls per loop during the reloads: {ok}")
        assert not failures, f"{len(failures)} of {len(failures) + sum(ok)} echo calls failed during reloads:\n  " + "\n  ".join(failures[:20])
        assert all(n >= 10 for n in ok), f"echo calls per loop {ok}: the load did not run"
        assert [v.get("generation") for v in versions] == [1, 2, 3, 4, 5], f"generations across 4 reloads: {versions}"
        for before, after in zip(versions, versions[1:]):
            assert after.get("version") != before.get("version"), f"the version did not change: {before} -> {after}"
        reloads = await gw.reloads()
        assert reloads["success"] == 4 and reloads["refused"] == 0, f"gatehouse_config_reloads_total after 4 reloads: {reloads}"
        metrics = await gw.metrics()
        assert metrics.value("gatehouse_config_info", version=versions[-1]["version"]) == 1, metrics.dump("gatehouse_config_info")
    gw.alive()


# --- 2. sessions survive reloads ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["http-python", "stdio-demo"])
async def test_session_survives_reloads(lab: Lab, kind: str) -> None:
    if kind == "http-python":
        up = lab.python_http("demo-python")
        demo_spec: dict[str, Any] = {"http": {"url": up.url}}
    else:
        demo_spec = lab.stdio_spec("demo")
    # A retired server is stopped after the shutdown grace period (its requests' time to end): 2 s here.
    cfg0 = base_cfg(demo_spec, grace_seconds=2)
    gw = lab.gateway(cfg0)
    cfg1 = dataclasses.replace(cfg0.with_server("extra", lab.stdio_spec("extra"), "/extra"), rate_limits=(add_limit(0.001, 1),))
    cfg2 = cfg1.without_server("extra")
    demo_cwd = lab.base / "cwd-demo"
    extra_cwd = lab.base / "cwd-extra"

    with anyio.fail_after(TEST_BUDGET):
        v0 = await gw.version()
        demo_children = processes_in(demo_cwd) if kind == "stdio-demo" else []
        if kind == "stdio-demo":
            assert len(demo_children) == 1, f"the stdio demo server's process (cwd {demo_cwd}): {demo_children}"
        async with httpx2.AsyncClient(timeout=httpx2.Timeout(30.0, read=60.0), trust_env=False) as http:
            async with streamable_http_client(gw.mcp_url, http_client=http) as (read, write):
                async with ClientSession(read, write, read_timeout_seconds=SDK_TIMEOUT) as session:
                    with anyio.fail_after(SDK_TIMEOUT):
                        init = await session.initialize()
                    assert init.protocol_version in wire.HANDSHAKE_VERSIONS, f"negotiated {init.protocol_version}: not a session"

                    async def echo(message: str, when: str) -> None:
                        with anyio.fail_after(SDK_TIMEOUT):
                            result = await session.call_tool("echo", {"message": message})
                        assert not result.is_error and result.content[0].text == message, f"echo {when}: {result!r}"

                    await echo("before", "before any reload")

                    gw.write(cfg1)
                    body = assert_reloaded(await gw.reload(), "POST /reload (+ /extra, + a rate limit)")
                    assert body["changed"] is True and body["version"] != v0["version"], f"{body} (before: {v0})"
                    await echo("after-1", "after POST /reload (+ /extra, + a rate limit)")
                    with anyio.fail_after(SDK_TIMEOUT):
                        listed = await session.list_tools()
                    assert {"echo", "add"} <= {t.name for t in listed.tools}, f"tools/list in the session after the reload: {listed}"
                    await echo_eventually(gw, "/extra", 5, "/extra (stdio) after it was added")
                    assert len(processes_in(extra_cwd)) == 1, f"the extra stdio server's process: {processes_in(extra_cwd)}"

                    gw.write(cfg2)
                    gw.sighup()
                    await gw.wait_version_change(body["version"], 5, "SIGHUP (- /extra)")
                    await echo("after-2", "after SIGHUP (- /extra)")
                    with anyio.fail_after(SDK_TIMEOUT):
                        added = await session.call_tool("add", {"a": 2, "b": 3})
                    assert not added.is_error and added.content[0].text == "5", f"add in the session after the reloads: {added!r}"

        if kind == "stdio-demo":
            assert processes_in(demo_cwd) == demo_children, (
                f"the demo server's spec never changed, so its stdio process should be kept: {demo_children} -> {processes_in(demo_cwd)}"
            )
        await wait_for(lambda: not processes_in(extra_cwd), 8,
                       f"the removed server's stdio process is still running 2 s (grace) + 6 s after its removal: {processes_in(extra_cwd)}")
    gw.alive()


# --- 3. in-flight requests finish on their snapshot ---------------------------------------------------------


async def test_in_flight_call_finishes_after_its_endpoint_is_removed(lab: Lab) -> None:
    demo = lab.demo_http()
    cfg0 = base_cfg({"http": {"url": demo.url}}).with_server("extra", lab.stdio_spec("extra"), "/extra")
    gw = lab.gateway(cfg0)
    slow_reply: dict[str, wire.Reply] = {}

    with anyio.fail_after(TEST_BUDGET):
        await echo_eventually(gw, "/extra", 5, "/extra at start")

        async def slow() -> None:
            slow_reply["reply"] = await gw.call("slow", {"steps": 6, "intervalMs": 500}, "/extra")

        async with anyio.create_task_group() as tg:
            tg.start_soon(slow)
            await anyio.sleep(1.0)
            gw.write(cfg0.without_server("extra"))
            assert_reloaded(await gw.reload(), "POST /reload (- /extra, a call in flight)")
            reloaded_at = time.monotonic()
            gone = await gw.call("echo", {"message": "x"}, "/extra")
            assert gone.status == 404, f"a new request to /extra after it was removed: {gone.describe()}"
            await gw.echo_ok("still-here", "/mcp", "echo on /mcp during the in-flight call")
        reply = slow_reply["reply"]
        assert reply.status == 200 and "result" in reply.response and reply.result["content"][0]["text"] == "done after 6 steps", (
            f"the slow call in flight while its endpoint was removed should finish on its snapshot: {reply.describe()}"
        )
        # Retired servers are stopped after the shutdown grace period (10 s by default), not before.
        assert processes_in(lab.base / "cwd-extra"), "the removed server's process was stopped before the grace period"
        await wait_for(lambda: not processes_in(lab.base / "cwd-extra"), max(1.0, reloaded_at + 15 - time.monotonic()),
                       "the removed server's stdio process is still running 15 s after its removal (grace period 10 s)")
    gw.alive()


# --- 4. refused reloads --------------------------------------------------------------------------------------


async def test_bad_configs_are_refused_and_the_old_one_keeps_serving(lab: Lab) -> None:
    demo = lab.demo_http()
    cfg0 = base_cfg({"http": {"url": demo.url}})
    gw = lab.gateway(cfg0, watch=False)  # only POST /reload reloads: the counters are exact
    good_text = cfg0.render()

    with anyio.fail_after(TEST_BUDGET):
        v0 = await gw.version()
        assert v0.get("generation") == 1, v0
        running = v0["version"]
        before = await gw.reloads()

        async def refused(what: str, expect: re.Pattern[str] | str) -> str:
            nonlocal before
            error = assert_refusal(await gw.reload(), running, what)
            if isinstance(expect, str):
                assert expect in error, f"{what}: the error should name {expect!r}: {error!r}"
            else:
                assert expect.search(error), f"{what}: the error should match /{expect.pattern}/: {error!r}"
            now = await gw.version()
            assert now.get("version") == running and now.get("generation") == v0["generation"], f"{what}: /config/version {now} (was {v0})"
            await gw.echo_ok(f"after {what}", what=f"echo after the refused reload ({what})")
            counts = await gw.reloads()
            assert counts == {**before, "refused": before["refused"] + 1}, f"{what}: gatehouse_config_reloads_total {before} -> {counts}"
            before = counts
            gw.alive()
            return error

        # a) not YAML
        gw.write(good_text + "---\napiVersion: gatehouse.dev/v1alpha1\nkind: [unclosed\n")
        await refused("invalid YAML", re.compile(r"gateway\.yaml:\d+"))

        # b) an endpoint naming a server that does not exist
        gw.write(dataclasses.replace(cfg0, endpoints=(*cfg0.endpoints, ("/ghost", ("ghost-server",)))))
        await refused("an endpoint naming an unknown server", "ghost-server")

        # ... the same file through SIGHUP: refused too (logged), and the gateway keeps running.
        gw.sighup()
        deadline = time.monotonic() + 5
        while (counts := await gw.reloads())["refused"] < before["refused"] + 1:
            assert time.monotonic() < deadline, f"SIGHUP with a bad file: gatehouse_config_reloads_total {counts} (before {before})"
            await anyio.sleep(0.1)
        assert counts == {**before, "refused": before["refused"] + 1}, f"SIGHUP with a bad file: {before} -> {counts}"
        before = counts
        assert await gw.version() == v0, "SIGHUP with a bad file changed /config/version"
        await gw.echo_ok("after-sighup", what="echo after a refused SIGHUP reload")
        assert REFUSED_LOG.search(gw.log()) and "ghost-server" in gw.log(), f"the refusals are logged:\n{gw.log()[-3000:]}"
        gw.alive()

        # c) a Rego policy file that does not compile
        gw.write_file("bad-policy/broken.rego", BROKEN)
        gw.write(dataclasses.replace(cfg0, policy={"rego": {"paths": ["bad-policy"]}, "deniedTools": "error"}))
        await refused("a policy file that does not compile", re.compile(r"broken\.rego:\d+"))

        # A good config with a policy file is taken; the version covers the policy's bytes.
        policy_path = gw.write_file("policy/policy.rego", DENY_ADD_POLICY)
        with_policy = dataclasses.replace(cfg0, policy={"rego": {"paths": ["policy"]}, "deniedTools": "error"})
        gw.write(with_policy)
        body = assert_reloaded(await gw.reload(), "a good config with a policy file")
        assert body["changed"] is True and body["version"] != running and body["generation"] == 2, body
        running = body["version"]
        denied = await gw.call("add", {"a": 2, "b": 3})
        assert denied.status == 200 and denied.error["code"] == -32001, f"add under the new policy: {denied.describe()}"
        before = await gw.reloads()
        v0 = await gw.version()

        # d) the policy file alone changes and no longer compiles: refused, the old policy keeps deciding
        gw.write_file("policy/policy.rego", BROKEN)
        await refused("a changed policy file that does not compile", re.compile(r"policy\.rego:\d+"))
        still = await gw.call("add", {"a": 2, "b": 3})
        assert still.status == 200 and still.error["code"] == -32001, f"add after the refused policy change: {still.describe()}"

        # ... and a good policy change alone is a new version.
        gw.write_file("policy/policy.rego", ALLOW_ALL_POLICY)
        body = assert_reloaded(await gw.reload(), "a changed policy file (config unchanged)")
        assert body["changed"] is True and body["version"] != running and body["generation"] == 3, body
        added = await gw.call("add", {"a": 2, "b": 3})
        assert added.status == 200 and added.result["content"][0]["text"] == "5", f"add under the allow-all policy: {added.describe()}"
        assert policy_path.exists()
    gw.alive()


async def test_file_watch_refuses_a_bad_file_and_takes_the_next_good_one(lab: Lab) -> None:
    demo = lab.demo_http()
    cfg0 = base_cfg({"http": {"url": demo.url}})
    gw = lab.gateway(cfg0)

    with anyio.fail_after(TEST_BUDGET):
        v0 = await gw.version()
        assert not REFUSED_LOG.search(gw.log()), "a refusal logged before any reload"
        gw.write(dataclasses.replace(cfg0, endpoints=(*cfg0.endpoints, ("/ghost", ("ghost-server",)))))
        await anyio.sleep(3.0)
        now = await gw.version()
        assert now.get("version") == v0["version"] and now.get("generation") == 1, f"after a bad file: {now} (was {v0})"
        await gw.echo_ok("after-bad-file", what="echo after the watcher saw a bad file")
        log = gw.log()
        assert REFUSED_LOG.search(log), f"the gateway's output should say `config reload refused`:\n{log[-3000:]}"
        assert "ghost-server" in log, f"the logged refusal should name the unknown server:\n{log[-3000:]}"
        assert (await gw.reloads())["refused"] >= 1, "gatehouse_config_reloads_total{result=refused} after the watcher refused a file"

        good = dataclasses.replace(cfg0, rate_limits=(add_limit(0.001, 1),))
        gw.write(good)
        after = await gw.wait_version_change(v0["version"], 5, "a good file after a bad one (file watch)")
        assert after.get("generation") == 2, after
        assert after["version"] == config_version_of(gw.config_path), f"{after} vs SHA-256 of {gw.config_path}"
    gw.alive()


# --- 5. what needs a restart ---------------------------------------------------------------------------------


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def test_changes_that_need_a_restart_are_refused(lab: Lab) -> None:
    demo = lab.demo_http()
    cfg0 = base_cfg({"http": {"url": demo.url}})
    gw = lab.gateway(cfg0, watch=False)
    new_port, new_admin_port = free_port(), free_port()
    cases = [
        ("spec.listen.port", dataclasses.replace(cfg0, port=new_port), "listen"),
        ("spec.admin.listen.port", dataclasses.replace(cfg0, admin_port=new_admin_port), "admin"),
        ("spec.admin.token", dataclasses.replace(cfg0, admin_token=ADMIN_TOKEN), "admin"),
        ("spec.sessions.key", dataclasses.replace(cfg0, sessions_key="k" * 48), "sessions"),
        # a restart-only change together with a valid one: the whole file is refused
        ("spec.listen.port + a rate limit", dataclasses.replace(cfg0, port=new_port, rate_limits=(add_limit(0.001, 1),)), "listen"),
    ]
    with anyio.fail_after(TEST_BUDGET):
        v0 = await gw.version()
        for what, cfg, names in cases:
            gw.write(cfg)
            error = assert_refusal(await gw.reload(), v0["version"], what)
            assert "restart" in error.lower(), f"{what}: the refusal should say it needs a restart: {error!r}"
            assert names in error, f"{what}: the refusal should name the setting ({names!r}): {error!r}"
            assert await gw.version() == v0, f"{what}: /config/version changed"
            await gw.echo_ok(f"after {what}", what=f"echo on the old port after the refused {what}")
            assert not port_open(new_port), f"{what}: something listens on the new port {new_port}"
            gw.alive()
        # The refused rate limit is not in effect.
        for i in range(2):
            add = await gw.call("add", {"a": 2, "b": 3})
            assert add.status == 200, f"add #{i}: the refused file's rate limit must not apply: {add.describe()}"
        assert not port_open(new_admin_port), "the admin listener moved although the change was refused"
        # Back to the running file: nothing changed.
        gw.write(cfg0)
        body = assert_reloaded(await gw.reload(), "the original file again")
        assert body["changed"] is False and body["version"] == v0["version"] and body["generation"] == 1, body
    gw.alive()


# --- 6. unchanged, and --no-watch ------------------------------------------------------------------------------


async def test_reload_unchanged_and_no_watch(lab: Lab) -> None:
    demo = lab.demo_http()
    cfg0 = base_cfg({"http": {"url": demo.url}})
    gw = lab.gateway(cfg0, watch=False)
    with anyio.fail_after(TEST_BUDGET):
        v0 = await gw.version()
        body = assert_reloaded(await gw.reload(), "nothing changed")
        assert body == {**body, "changed": False, "version": v0["version"], "generation": 1}, f"POST /reload with nothing changed: {body}"
        assert await gw.reloads() == {"success": 0, "refused": 0, "unchanged": 1}

        changed = dataclasses.replace(cfg0, rate_limits=(add_limit(0.001, 1),))
        gw.write(changed)
        await anyio.sleep(2.5)
        assert (await gw.version()) == v0, "with --no-watch a changed file must not be loaded without a trigger"
        for i in range(2):
            add = await gw.call("add", {"a": 2, "b": 3})
            assert add.status == 200, f"add #{i} before the reload: {add.describe()}"

        body = assert_reloaded(await gw.reload(), "a rate limit added")
        assert body["changed"] is True and body["version"] != v0["version"] and body["generation"] == 2, body
        assert body["version"] == config_version_of(gw.config_path), f"{body} vs SHA-256 of the file"
        assert (await gw.call("add", {"a": 2, "b": 3})).status == 200
        assert_rate_limited(await gw.call("add", {"a": 2, "b": 3}), "add-limit", "the second add after the reload")
        assert await gw.reloads() == {"success": 1, "refused": 0, "unchanged": 1}
    gw.alive()


async def test_concurrent_reloads_apply_a_change_once(lab: Lab) -> None:
    """Reloads never overlap: five POST /reload at once after one change -> one `changed: true`,
    the others `changed: false`, all with the new version, and the generation goes up by one."""
    demo = lab.demo_http()
    cfg0 = base_cfg({"http": {"url": demo.url}})
    gw = lab.gateway(cfg0, watch=False)
    answers: list[httpx2.Response] = []
    with anyio.fail_after(TEST_BUDGET):
        v0 = await gw.version()
        gw.write(dataclasses.replace(cfg0, rate_limits=(add_limit(0.001, 1),)))

        async def one() -> None:
            answers.append(await gw.reload())

        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(one)
        bodies = [assert_reloaded(a, "one of five concurrent POST /reload") for a in answers]
        new = config_version_of(gw.config_path)
        assert sorted(b["changed"] for b in bodies) == [False, False, False, False, True], f"five concurrent reloads: {bodies}"
        assert all(b["version"] == new and b["generation"] == 2 for b in bodies), f"five concurrent reloads (new version {new}): {bodies}"
        assert await gw.reloads() == {"success": 1, "refused": 0, "unchanged": 4}
        after = await gw.version()
        assert after["version"] == new != v0["version"] and after["generation"] == 2, after
        first = await gw.call("add", {"a": 1, "b": 1})
        assert first.status == 200, f"the first add under the reloaded limit: {first.describe()}"
        assert_rate_limited(await gw.call("add", {"a": 1, "b": 1}), "add-limit", "the second add under the reloaded limit")
    gw.alive()


# --- 7. the file watcher takes a valid change -------------------------------------------------------------------


async def test_file_watch_applies_a_valid_change(lab: Lab) -> None:
    demo = lab.demo_http()
    cfg0 = base_cfg({"http": {"url": demo.url}})
    gw = lab.gateway(cfg0)
    with anyio.fail_after(TEST_BUDGET):
        v0 = await gw.version()
        for i in range(2):
            assert (await gw.call("add", {"a": 2, "b": 3})).status == 200, f"add #{i} before the change"
        gw.write(dataclasses.replace(cfg0, rate_limits=(add_limit(0.001, 1),)))
        written = time.monotonic()
        v1 = await gw.wait_version_change(v0["version"], 5, "a rate limit added to the file (no signal, no POST)")
        took = time.monotonic() - written
        assert v1.get("generation") == 2, v1
        assert (await gw.call("add", {"a": 2, "b": 3})).status == 200
        assert_rate_limited(await gw.call("add", {"a": 2, "b": 3}), "add-limit", "the second add after the watched change")
        await gw.echo_ok("echo-unlimited", what="echo is not under the tool-scoped limit")
        metrics = await gw.metrics()
        assert metrics.value("gatehouse_config_reloads_total", result="success") == 1, metrics.dump("gatehouse_config_reloads")
        info = {ls.get("version"): value for ls, value in metrics.find("gatehouse_config_info")}
        assert info.get(v1["version"]) == 1 and all(v == 0 for k, v in info.items() if k != v1["version"]), (
            f"gatehouse_config_info should show the new version {v1['version']} (old {v0['version']}): {info}"
        )
        print(f"the watcher applied the change after {took:.2f} s")
    gw.alive()


# --- 8. the admin API -------------------------------------------------------------------------------------------------


def www_authenticate_ok(response: httpx2.Response) -> bool:
    value = response.headers.get("www-authenticate", "")
    return value.lower().startswith("bearer") and 'realm="gatehouse-admin"' in value


def session_count(body: dict[str, Any], endpoint: str = "/mcp") -> int:
    """`{"endpoints": {"/mcp": {"sessions": N, "streams": M}}}`; an endpoint left out counts 0."""
    endpoints = body.get("endpoints")
    assert isinstance(endpoints, dict), f"/sessions: {body}"
    entry = endpoints.get(endpoint)
    if entry is None:
        return 0
    assert isinstance(entry, dict) and isinstance(entry.get("sessions"), int), f"/sessions {endpoint}: {body}"
    return entry["sessions"]


async def test_admin_api(lab: Lab) -> None:
    up = lab.python_http("demo-python")
    upstream_spec = {"http": {"url": up.url, "headers": {"Authorization": f"Bearer {UPSTREAM_SECRET}"}},
                     "resilience": {"circuitBreaker": {"failures": 5, "openSeconds": 30}}}
    cfg = base_cfg(upstream_spec, admin_token=ADMIN_TOKEN, rate_limits=(add_limit(10, 10),))
    gw = lab.gateway(cfg, token=ADMIN_TOKEN)

    with anyio.fail_after(TEST_BUDGET):
        # Open routes.
        for path in ("/healthz", "/readyz"):
            response = await gw.admin("GET", path, token=None)
            assert response.status_code == 200, f"GET {path} without a token -> HTTP {response.status_code}: {response.text[:300]}"
        assert (await gw.admin("GET", "/healthz", token=None)).json() == {"status": "ok"}

        # Every other route needs the token.
        protected = [("GET", "/metrics"), ("GET", "/status"), ("GET", "/config"), ("GET", "/config/version"),
                     ("GET", "/upstreams"), ("GET", "/sessions"), ("POST", "/reload"), ("POST", "/policy/reload")]
        for method, path in protected:
            for token, which in ((None, "no token"), ("wrong-token-0123456789abcdef", "a wrong token")):
                response = await gw.admin(method, path, token=token)
                assert response.status_code == 401, f"{method} {path} with {which} -> HTTP {response.status_code}: {response.text[:300]}"
                assert www_authenticate_ok(response), (
                    f"{method} {path} with {which}: WWW-Authenticate {response.headers.get('www-authenticate')!r}, "
                    'expected Bearer realm="gatehouse-admin"'
                )
                try:
                    body = response.json()
                except ValueError:
                    body = None
                assert isinstance(body, dict) and isinstance(body.get("error"), str), f"{method} {path} 401 body: {response.text[:300]!r}"
        metrics_response = await gw.admin("GET", "/metrics")
        assert metrics_response.status_code == 200 and "gatehouse_" in metrics_response.text, (
            f"GET /metrics with the token -> HTTP {metrics_response.status_code}: {metrics_response.text[:300]}"
        )
        assert metrics_response.headers.get("content-type", "").startswith("text/plain")

        # Traffic, so the upstream has requests.
        await gw.echo_ok("admin-1")

        # GET /config: the effective config, secrets redacted.
        config_response = await gw.admin("GET", "/config")
        assert config_response.status_code == 200, f"GET /config -> HTTP {config_response.status_code}: {config_response.text[:500]}"
        config_body = config_response.json()
        assert isinstance(config_body, dict), config_body
        # Searched in the raw text and in the decoded JSON (which undoes escapes such as \/).
        config_text = config_response.text + "\n" + json.dumps(config_body, ensure_ascii=False)
        assert "demo" in config_text and up.url in config_text, f"GET /config should show the server demo and its URL: {config_text[:2000]}"
        assert UPSTREAM_SECRET not in config_text, f"GET /config leaks the upstream header secret: {config_text[:3000]}"
        assert ADMIN_TOKEN not in config_text, f"GET /config leaks the admin token: {config_text[:3000]}"
        assert "<redacted>" in config_text, f"GET /config should show secrets as \"<redacted>\": {config_text[:3000]}"
        assert "add-limit" in config_text, f"GET /config should show the rate limit: {config_text[:2000]}"

        # GET /config/version
        version = await gw.version()
        assert set(version) >= {"version", "generation", "loadedAt"}, f"/config/version: {version}"
        assert re.fullmatch(r"[0-9a-f]{12}", str(version["version"])), f"version should be 12 hex digits: {version}"
        assert version["version"] == config_version_of(gw.config_path), (
            f"version should be the first 12 hex digits of SHA-256 over the file: {version} vs {config_version_of(gw.config_path)}"
        )
        assert version["generation"] == 1, version
        loaded_at = datetime.fromisoformat(str(version["loadedAt"]).replace("Z", "+00:00"))
        assert loaded_at.tzinfo is not None, f"loadedAt should be RFC 3339 with an offset: {version}"
        assert abs(time.time() - loaded_at.timestamp()) < 120, f"loadedAt far from now: {version}"

        status = await gw.admin_json("GET", "/status")
        assert status.get("configVersion") == version["version"], f"/status configVersion: {status}"
        metrics = await gw.metrics()
        assert metrics.value("gatehouse_config_info", version=version["version"]) == 1, metrics.dump("gatehouse_config_info")

        # GET /upstreams
        upstreams = await gw.admin_json("GET", "/upstreams")
        servers = upstreams.get("servers")
        assert isinstance(servers, dict) and set(servers) == {"demo"}, f"/upstreams: {upstreams}"
        demo = servers["demo"]
        assert demo.get("ready") is True and demo.get("breaker") == "closed" and isinstance(demo.get("inFlight"), int), f"/upstreams demo: {demo}"
        endpoints = demo.get("endpoints")
        assert isinstance(endpoints, list) and len(endpoints) == 1, f"/upstreams demo endpoints: {demo}"
        member = endpoints[0]
        assert member.get("url") == up.url and member.get("healthy") is True and member.get("ejected") is False, f"/upstreams member: {member}"
        assert isinstance(member.get("inFlight"), int) and isinstance(member.get("requests"), int) and member["requests"] >= 1, (
            f"/upstreams member after one call: {member}"
        )

        # GET /sessions counts a session opened here, and forgets it once it is closed.
        sessions = await gw.admin_json("GET", "/sessions")
        assert session_count(sessions) == 0, f"/sessions before any session: {sessions}"
        async with httpx2.AsyncClient(timeout=httpx2.Timeout(30.0, read=60.0), trust_env=False) as http:
            async with streamable_http_client(gw.mcp_url, http_client=http) as (read, write):
                async with ClientSession(read, write, read_timeout_seconds=SDK_TIMEOUT) as session:
                    with anyio.fail_after(SDK_TIMEOUT):
                        await session.initialize()
                        result = await session.call_tool("echo", {"message": "in-session"})
                    assert result.content[0].text == "in-session"
                    sessions = await gw.admin_json("GET", "/sessions")
                    entry = sessions.get("endpoints", {}).get("/mcp", {})
                    assert entry.get("sessions") == 1 and isinstance(entry.get("streams"), int), f"/sessions with one open session: {sessions}"

        async def closed() -> bool:
            return session_count(await gw.admin_json("GET", "/sessions")) == 0

        deadline = time.monotonic() + 5
        while not await closed():
            assert time.monotonic() < deadline, f"/sessions still counts the closed session: {await gw.admin_json('GET', '/sessions')}"
            await anyio.sleep(0.2)

        # The MCP port serves none of this.
        async with wire.client() as http:
            for path in ("/config", "/config/version", "/upstreams", "/sessions"):
                response = await http.get(f"{gw.base_url}{path}", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
                assert response.status_code == 404, f"GET {path} on the MCP port -> HTTP {response.status_code}"

        # POST /reload with the token works.
        body = assert_reloaded(await gw.reload(), "POST /reload with the token")
        assert body["changed"] is False
    gw.alive()


async def test_upstreams_breaker_state_without_a_breaker(lab: Lab) -> None:
    """The spec gives `breaker` as one of closed|open|half-open; a server without
    `resilience.circuitBreaker` never opens, so it reads "closed"."""
    demo = lab.demo_http()
    gw = lab.gateway(base_cfg({"http": {"url": demo.url}}))
    with anyio.fail_after(TEST_BUDGET):
        demo_state = (await gw.admin_json("GET", "/upstreams"))["servers"]["demo"]
        assert demo_state.get("ready") is True, demo_state
        assert demo_state.get("breaker") in ("closed", "open", "half-open"), (
            f"/upstreams breaker of a server without a circuit breaker: {demo_state.get('breaker')!r}, expected one of closed|open|half-open"
        )
        assert demo_state["breaker"] == "closed", demo_state
    gw.alive()


async def test_admin_token_from_env(lab: Lab) -> None:
    demo = lab.demo_http()
    token = "env-admin-token-fedcba9876543210"
    cfg = base_cfg({"http": {"url": demo.url}}, admin_token={"valueFrom": {"env": "GATEHOUSE_ADMIN_TOKEN"}})
    gw = lab.gateway(cfg, token=token, env={"GATEHOUSE_ADMIN_TOKEN": token})
    with anyio.fail_after(TEST_BUDGET):
        assert (await gw.admin("GET", "/metrics", token=None)).status_code == 401
        assert (await gw.admin("GET", "/metrics", token=ADMIN_TOKEN)).status_code == 401
        assert (await gw.admin("GET", "/metrics")).status_code == 200
        config_text = (await gw.admin("GET", "/config")).text
        assert token not in config_text and "<redacted>" in config_text, f"GET /config with a token from the environment: {config_text[:2000]}"
        # The env token survives a reload (the environment is read again, same value).
        gw.write(dataclasses.replace(cfg, rate_limits=(add_limit(5, 5),)))
        assert_reloaded(await gw.reload(), "a reload with the token from the environment")
        assert (await gw.admin("GET", "/metrics")).status_code == 200
    gw.alive()


# --- `gatehouse validate` / `serve` and the admin token rule ------------------------------------------


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    require_binary(GATEHOUSE_BIN, "gatehouse")
    env = {k: v for k, v in os.environ.items() if k != "GATEHOUSE_ADMIN_TOKEN"}
    usage = subprocess.run([str(GATEHOUSE_BIN), "validate", "--help"], capture_output=True, text=True, timeout=20, env=env)
    argv = ["validate", "--config", str(path)] if "--config" in usage.stdout + usage.stderr else ["validate", str(path)]
    return subprocess.run([str(GATEHOUSE_BIN), *argv], capture_output=True, text=True, timeout=20, env=env)


@pytest.mark.parametrize(
    ("bind", "token", "accepted"),
    [
        ("0.0.0.0", None, False),
        ("0.0.0.0", ADMIN_TOKEN, True),
        ("127.0.0.1", None, True),
        ("localhost", None, True),
        ("::1", None, True),
        ("10.0.0.1", None, False),
        ("127.0.0.1", "too-short", False),
    ],
    ids=["public-no-token", "public-with-token", "loopback-no-token", "localhost-no-token", "ipv6-loopback-no-token",
         "private-address-no-token", "short-token"],
)
def test_validate_admin_token_rules(scratch_dir: Path, bind: str, token: str | None, accepted: bool) -> None:
    cfg = Cfg(port=free_port(), admin_port=free_port(), servers={"demo": {"http": {"url": "http://127.0.0.1:9/mcp"}}},
              endpoints=(("/mcp", ("demo",)),), admin_bind=bind, admin_token=token)
    path = scratch_dir / "admin.yaml"
    path.write_text(cfg.render())
    result = validate(path)
    output = result.stdout + result.stderr
    if accepted:
        assert result.returncode == 0, f"`gatehouse validate` refused admin bind {bind} token {token!r}: {output}\n{path.read_text()}"
    else:
        assert result.returncode != 0, f"`gatehouse validate` accepted admin bind {bind} token {token!r}: {output}\n{path.read_text()}"
        assert "token" in output, f"`gatehouse validate` should name the token: {output}"
        assert "admin" in output, f"`gatehouse validate` should say it is about spec.admin: {output}"


def test_serve_refuses_public_admin_without_token(scratch_dir: Path) -> None:
    require_binary(GATEHOUSE_BIN, "gatehouse")
    cfg = Cfg(port=free_port(), admin_port=free_port(), servers={"demo": {"http": {"url": "http://127.0.0.1:9/mcp"}}},
              endpoints=(("/mcp", ("demo",)),), admin_bind="0.0.0.0")
    path = scratch_dir / "public-admin.yaml"
    path.write_text(cfg.render())
    proc = Proc("gateway-public-admin", [str(GATEHOUSE_BIN), "serve", "--config", str(path)], scratch_dir)
    try:
        try:
            code = proc.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            code = None
        assert code is not None and code != 0, (
            f"`gatehouse serve` with an admin listener on 0.0.0.0 and no token should refuse to start\n{proc.describe()}"
        )
        assert "token" in proc.output(), f"the startup error should name the token\n{proc.describe()}"
    finally:
        proc.stop()


def test_harness_renders_the_config_as_intended() -> None:
    """The helper's YAML carries the admin token and the secret header as the tests assume."""
    cfg = base_cfg({"http": {"url": "http://127.0.0.1:9/mcp", "headers": {"Authorization": f"Bearer {UPSTREAM_SECRET}"}}},
                   admin_token=ADMIN_TOKEN, rate_limits=(add_limit(0.001, 1),))
    text = cfg.render()
    assert f'Authorization: "Bearer {UPSTREAM_SECRET}"' in text and f"token: {ADMIN_TOKEN}" in text, text
    assert '"tools": ["add"]' in text and "endpoints: [" in text, text
